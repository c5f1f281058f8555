// static_files.mjs: the tiny static file server the browser test drivers
// share (wasm_run.mjs, cluster_test.mjs, bench_browser.mjs). Only plain file
// names directly below a mount are served (no paths, no dot files); `/`
// is the page itself; anything else is a 404.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html; charset=utf-8' };

// Answer req with a file. mounts: URL prefix -> directory; index: the file
// for `/`; headers: more response headers for every file served.
export async function serveStatic(req, res, { mounts, index, headers = {} }) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/favicon.ico') {
    res.writeHead(204);
    res.end();
    return;
  }
  let file = null;
  if (url.pathname === '/' || url.pathname === '/index.html') file = index;
  for (const [prefix, dir] of Object.entries(mounts)) {
    const name = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null;
    if (name && /^[A-Za-z0-9._-]+$/.test(name) && !name.startsWith('.')) file = path.join(dir, name);
  }
  try {
    if (!file) throw new Error('not found');
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store', ...headers });
    res.end(body);
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }
}
