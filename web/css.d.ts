// esbuild bundles imported stylesheets into dist/web/dashboard.css (web/build.mjs).
declare module '*.css';
