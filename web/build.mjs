// Bundles the dashboard page (web/) into dist/web, which src/web/dashboard-assets.ts serves at
// /dashboard. Everything the page needs ends up in these files: nothing is loaded from elsewhere.
// Type checking is tsc's job (web/tsconfig.json, run by `npm run build` before this).
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const outdir = new URL('../dist/web/', import.meta.url);
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: [new URL('./dashboard.ts', import.meta.url).pathname],
  outdir: outdir.pathname,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  logLevel: 'warning',
});
await copyFile(new URL('./index.html', import.meta.url), new URL('./index.html', outdir));
