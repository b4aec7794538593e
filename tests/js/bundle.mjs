// Bundle a page for the browser tests with the pinned esbuild, from the local node_modules only (nothing fetched).
//
// Usage: node bundle.mjs <entry.jsx> <out dir>
// Writes <out dir>/app.js (one ES module: React, the page, its SDK) and <out dir>/index.html that loads it.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const [entry, outdir] = process.argv.slice(2);
await build({
  entryPoints: [entry],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'chrome120',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  outfile: join(outdir, 'app.js'),
  logLevel: 'warning',
});
await writeFile(join(outdir, 'index.html'),
  '<!doctype html>\n<html><head><meta charset="utf-8"><title>useStream</title></head>\n' +
  '<body><div id="root"></div><script type="module" src="app.js"></script></body></html>\n');
console.log(JSON.stringify({ ok: true, outdir }));
