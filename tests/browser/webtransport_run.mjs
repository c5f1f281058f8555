// webtransport_run.mjs: the browser build's transport (wasm/transport_web.c +
// wasm/library_webtransport.js) in Debian's Chromium against
// tests/wt_echo_server.
//
// Run by tests/browser_webtransport_test.sh, which makes the development
// certificate and passes its SHA-256. This script starts the server with
// that certificate and a token, serves a page and the test-only module
// build-wasm/tests/webtransport-client.{mjs,wasm} (tests/wasm/
// webtransport_client.c) from 127.0.0.1 (a secure context), opens the page
// in headless Chromium through playwright-core, and relays the program's
// lines ("ok ...", "FAIL ...", "note ...", "DONE passed=P failed=F"). The
// C program does the checking through the public transport API; this
// script adds that the server exited cleanly. Bounded: 170 s overall.
//
// usage: node webtransport_run.mjs --server BIN --cert F --key F --hash HEX --wasm DIR

import { spawn } from 'node:child_process';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['server', 'cert', 'key', 'hash', 'wasm']) {
  if (!args[k]) {
    console.error(`usage: node webtransport_run.mjs --server BIN --cert F --key F --hash HEX --wasm DIR (missing --${k})`);
    process.exit(2);
  }
}
const TOKEN = 'browser-transport-token';
const executablePath = process.env.SL_CHROMIUM || '/usr/bin/chromium';
let failed = 0;
const overall = setTimeout(() => {
  console.log('FAIL overall timeout (170 s)');
  dumpServer();
  process.exit(1);
}, 170000);

// --------------------------------------------------------------- the server
const serverLines = [];
let serverErr = '';
const server = spawn(args.server, ['--host', '127.0.0.1', '--port', '0', '--cert', args.cert,
  '--key', args.key, '--token', TOKEN, '--timeout', '160'], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverExit = null;
const serverExited = new Promise((resolve) => server.on('exit', (code, sig) => {
  serverExit = { code, sig };
  resolve();
}));
let lineBuf = '';
let readyLine = null;
let onReady = () => {};
server.stdout.on('data', (d) => {
  lineBuf += d.toString();
  let i;
  while ((i = lineBuf.indexOf('\n')) >= 0) {
    const line = lineBuf.slice(0, i);
    lineBuf = lineBuf.slice(i + 1);
    serverLines.push(line);
    if (!readyLine && line.startsWith('READY ')) {
      readyLine = line;
      onReady();
    }
  }
});
server.stderr.on('data', (d) => { serverErr += d.toString(); });
function dumpServer() {
  console.log('--- server stdout (last 40)\n' + serverLines.slice(-40).join('\n'));
  console.log('--- server stderr\n' + serverErr.split('\n').slice(-30).join('\n'));
}
await new Promise((resolve) => {
  onReady = resolve;
  setTimeout(resolve, 10000);
});
if (!readyLine) {
  console.log('FAIL server did not start');
  dumpServer();
  process.exit(1);
}
const port = Number(/port=(\d+)/.exec(readyLine)[1]);

// ----------------------------------------------------------------- the page
const page = `<!doctype html><meta charset="utf-8"><title>starling web transport test</title>
<script type="module">
window.__lines = [];
window.__done = false;
const push = (l) => { window.__lines.push(l); if (l.startsWith('DONE ')) window.__done = true; };
import('/tests/webtransport-client.mjs').then((m) => m.default({
  arguments: [${JSON.stringify(String(port))}, ${JSON.stringify(args.hash)}, ${JSON.stringify(TOKEN)}],
  print: push,
  printErr: (l) => push('stderr: ' + l),
})).catch((e) => { push('FAIL module: ' + (e && e.stack || e)); push('DONE passed=0 failed=1'); });
</script>`;
const types = { '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const web = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/favicon.ico') {
    res.writeHead(204);
    res.end();
    return;
  }
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
    return;
  }
  const m = /^\/tests\/(webtransport-client\.(mjs|wasm))$/.exec(url.pathname);
  try {
    if (!m) throw new Error('not found');
    const body = await readFile(path.join(args.wasm, 'tests', m[1]));
    res.writeHead(200, { 'content-type': types[path.extname(m[1])], 'cache-control': 'no-store' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));

// ------------------------------------------------------------------ browser
let browser;
const pageErrors = [];
try {
  browser = await chromium.launch({
    executablePath, headless: true, timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  console.log(`chromium ${browser.version()}`);
  const p = await browser.newPage();
  p.on('pageerror', (e) => pageErrors.push(String(e && e.stack || e)));
  p.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(`console.error: ${msg.text()}`); });
  await p.goto(`http://127.0.0.1:${web.address().port}/`, { timeout: 15000 });
  let shown = 0;
  const deadline = Date.now() + 150000;
  for (;;) {
    const lines = await p.evaluate(() => window.__lines);
    for (; shown < lines.length; shown++) console.log(lines[shown]);
    if (await p.evaluate(() => window.__done)) break;
    if (Date.now() > deadline) {
      console.log('FAIL the page did not finish in 150 s');
      failed++;
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const lines = await p.evaluate(() => window.__lines);
  const done = lines.find((l) => l.startsWith('DONE '));
  const m = done && /passed=(\d+) failed=(\d+)/.exec(done);
  if (!m || Number(m[2]) !== 0 || Number(m[1]) < 30) {
    failed++;
    console.log(`FAIL the program reported: ${done || 'nothing'}`);
  }
  // The program's own errors are its FAIL lines; WebTransport's rejected
  // handshakes are logged by Chromium as console errors, which are expected.
  for (const e of pageErrors) {
    if (/WebTransport|Opening handshake failed|net::ERR_/.test(e)) console.log(`note ${e}`);
    else {
      failed++;
      console.log(`FAIL page error: ${e}`);
    }
  }
} catch (e) {
  failed++;
  console.log(`FAIL browser run: ${e && e.stack || e}`);
}
if (browser) await browser.close();
web.close();
server.kill('SIGTERM');
await Promise.race([serverExited, new Promise((r) => setTimeout(r, 10000))]);
if (!(serverExit && serverExit.code === 0 && serverLines.includes('EXIT loop_close=0'))) {
  failed++;
  console.log(`FAIL server exited cleanly: ${JSON.stringify(serverExit)}`);
} else console.log('ok   server exited cleanly');
clearTimeout(overall);
if (failed) dumpServer();
console.log(`browser_webtransport_test: ${failed ? 'FAIL' : 'ok'}`);
process.exit(failed ? 1 : 0);
