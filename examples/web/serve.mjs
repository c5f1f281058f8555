// serve.mjs: the tiny static web server of act 3 of `make demo`
// (examples/demo.sh starts it). Node.js's own http module, no packages.
//
//   node examples/web/serve.mjs --dist BUILD_WASM --config FILE
//        [--port 0] [--port-file FILE] [--parent PID]
//
// Serves, on 127.0.0.1 only:
//   /                the page (index.html), /app.mjs, /style.css from this folder
//   /dist/NAME       the wasm build: starling.js, starling-core.mjs/.wasm, ...
//   /config.json     FILE as written by the gateway (browser_demo gateway
//                    --config-out): the gateway's WebTransport URL, port,
//                    token and certificate hash; 503 until it exists
// Writes the bound port to --port-file once listening. Exits 0 on SIGINT
// or SIGTERM, and by itself when process PID (the demo's shell) is gone,
// so it never outlives the demo.
import http from 'node:http';
import { readFile, writeFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = { port: '0' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!['dist', 'config', 'port', 'port-file', 'parent'].includes(k) || process.argv[i + 1] === undefined) {
    console.error(`serve.mjs: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  args[k] = process.argv[i + 1];
}
if (!args.dist || !args.config) {
  console.error('usage: node serve.mjs --dist BUILD_WASM --config FILE [--port 0] [--port-file FILE] [--parent PID]');
  process.exit(2);
}
const dist = path.resolve(args.dist);
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};
const pages = { '/': 'index.html', '/index.html': 'index.html', '/app.mjs': 'app.mjs', '/style.css': 'style.css' };

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

const server = http.createServer(async (req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'GET only\n');
  let url;
  try {
    url = new URL(req.url, 'http://127.0.0.1');
  } catch {
    return send(res, 400, 'text/plain', 'bad request\n');
  }
  const p = url.pathname;
  let file = null;
  if (p === '/config.json') {
    try {
      return send(res, 200, types['.json'], await readFile(args.config));
    } catch {
      return send(res, 503, types['.json'], '{"error": "the gateway is not ready yet"}\n');
    }
  }
  if (pages[p]) file = path.join(here, pages[p]);
  else if (p.startsWith('/dist/')) {
    const name = p.slice('/dist/'.length);
    // One plain file name: no directories, no dot files, no traversal.
    if (/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) file = path.join(dist, name);
  }
  if (!file) return send(res, 404, 'text/plain', 'not found\n');
  try {
    const body = await readFile(file);
    send(res, 200, types[path.extname(file)] || 'application/octet-stream', req.method === 'HEAD' ? undefined : body);
  } catch {
    send(res, 404, 'text/plain', 'not found\n');
  }
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

server.on('error', (err) => {
  console.error(`serve.mjs: cannot listen on 127.0.0.1:${args.port}: ${err.message}`);
  process.exit(1);
});
server.listen(Number(args.port), '127.0.0.1', async () => {
  const port = server.address().port;
  if (args['port-file']) {
    // Atomically, so the shell never reads half a number.
    await writeFile(`${args['port-file']}.tmp`, `${port}\n`);
    await rename(`${args['port-file']}.tmp`, args['port-file']);
  }
});

if (args.parent) {
  const parent = Number(args.parent);
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      stop(); // the demo's shell is gone
    }
  }, 1000).unref();
}
