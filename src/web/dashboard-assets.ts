import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file of the dashboard page, ready to send: whatever serves HTTP mounts these as GET routes. */
export interface DashboardAsset {
  /** The URL path: /dashboard for the page, /dashboard/<file> for what it loads. */
  readonly path: string;
  readonly contentType: string;
  readonly body: Buffer;
  /** Response headers besides Content-Type: the page's security policy and caching. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Everything the page loads comes from this origin: its script and styles are bundled at build
 * time (web/build.mjs), and it talks only to /graphql over HTTP and WebSocket. Inline scripts and
 * styles are refused, so an injected tag cannot run either.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "script-src 'self'",
  "style-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** dist/web, where the build puts the bundle (this module runs from dist/src/web). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/**
 * Reads the bundled page once, at start-up, so a request never touches the disk. Fails loudly when
 * the bundle is missing: `npm run build` makes it, and a gateway without its page is a broken build.
 */
export function loadDashboardAssets(dir: string = DASHBOARD_DIR): DashboardAsset[] {
  const headers = {
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    // Rebuilt with every release under the same names: revalidate rather than cache blindly.
    'cache-control': 'no-cache',
  };
  return readdirSync(dir)
    .filter((file) => CONTENT_TYPES[extname(file)])
    .map((file) => ({
      path: file === 'index.html' ? '/dashboard' : `/dashboard/${file}`,
      contentType: CONTENT_TYPES[extname(file)]!,
      body: readFileSync(join(dir, file)),
      headers,
    }));
}
