import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The console's files: the page (console/ in the package) and uPlot, served from node_modules so the
 * page needs no CDN and no build step. Read once, kept in memory (about 100 KB), revalidated by ETag.
 */
export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const PAGE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    '/console/vendor/uPlot.iife.min.js': require.resolve('uplot/dist/uPlot.iife.min.js'),
    '/console/vendor/uPlot.min.css': require.resolve('uplot/dist/uPlot.min.css'),
  };
}

function assetOf(file: string): Asset {
  const body = readFileSync(file);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, type: TYPES[extname(file)] ?? 'application/octet-stream', etag };
}

let assets: Map<string, Asset> | undefined;

/** URL path -> asset; `/` is the page. */
export function consoleAssets(): Map<string, Asset> {
  if (assets) return assets;
  const map = new Map<string, Asset>();
  for (const name of readdirSync(PAGE_DIR)) {
    if (!(extname(name) in TYPES)) continue;
    map.set(`/console/${name}`, assetOf(join(PAGE_DIR, name)));
  }
  const page = map.get('/console/index.html');
  if (page) map.set('/', page);
  for (const [path, file] of Object.entries(vendorFiles())) map.set(path, assetOf(file));
  assets = map;
  return map;
}
