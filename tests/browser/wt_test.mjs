// wt_test.mjs: Chromium against Starling's WebTransport server.
//
// Run by tests/browser_wt_test.sh, which makes the development certificate
// (`starling cert dev`) and passes its SHA-256. This script:
//  1. serves an empty page from two origins on 127.0.0.1 (node:http), A and B;
//  2. starts tests/wt_echo_server with that certificate, a token, and only
//     origin A on the allow-list;
//  3. drives Debian's Chromium (/usr/bin/chromium, headless, fresh profile)
//     with playwright-core; from a page of origin A it opens
//     `new WebTransport('https://127.0.0.1:PORT/starling?token=...',
//     {serverCertificateHashes})` and checks that a bidirectional stream, a
//     unidirectional stream (answered on a server-opened one) and a datagram
//     are echoed, then asks the server to close the session and checks that
//     `transport.closed` resolves with the server's closeCode and reason;
//     then a second session is closed by the page with a code and reason,
//     which the server must report;
//  4. checks that a wrong token is refused (from A) and that the right token
//     from origin B (not allowed) is refused, and that the server logged why;
//  5. stops the server with SIGTERM and checks it exited cleanly.
// Prints one line per check; exits 0 if all passed. Bounded: 150 s overall.
//
// usage: node wt_test.mjs --server BIN --cert F --key F --hash HEX [--netlog FILE]

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['server', 'cert', 'key', 'hash']) {
  if (!args[k]) {
    console.error(`usage: node wt_test.mjs --server BIN --cert F --key F --hash HEX (missing --${k})`);
    process.exit(2);
  }
}
const TOKEN = 'browser-test-token';
const failures = [];
let passed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failures.push(name);
    console.log(`FAIL ${name}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`);
  }
}

const overall = setTimeout(() => {
  console.log('FAIL overall timeout (150 s)');
  dumpServer();
  process.exit(1);
}, 150000);

// ------------------------------------------------------------ page origins
function pageServer() {
  return new Promise((resolve) => {
    const srv = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>starling wt test</title><p>wt test</p>');
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}
const pageA = await pageServer();
const pageB = await pageServer();
const originA = `http://127.0.0.1:${pageA.address().port}`;
const originB = `http://127.0.0.1:${pageB.address().port}`;

// --------------------------------------------------------------- the server
const serverLines = [];
let serverErr = '';
const server = spawn(args.server, ['--host', '127.0.0.1', '--port', '0', '--cert', args.cert,
  '--key', args.key, '--token', TOKEN, '--origin', originA, '--timeout', '140'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
let serverExit = null;
const serverExited = new Promise((resolve) => server.on('exit', (code, sig) => {
  serverExit = { code, sig };
  resolve();
}));
let lineBuf = '';
let onLine = () => {};
server.stdout.on('data', (d) => {
  lineBuf += d.toString();
  let i;
  while ((i = lineBuf.indexOf('\n')) >= 0) {
    const line = lineBuf.slice(0, i);
    lineBuf = lineBuf.slice(i + 1);
    serverLines.push(line);
    onLine(line);
  }
});
server.stderr.on('data', (d) => { serverErr += d.toString(); });
function dumpServer() {
  console.log('--- server stdout\n' + serverLines.join('\n'));
  console.log('--- server stderr\n' + serverErr.split('\n').slice(-30).join('\n'));
}
function waitLine(re, ms) {
  return new Promise((resolve) => {
    const hit = serverLines.find((l) => re.test(l));
    if (hit) return resolve(hit);
    const t = setTimeout(() => resolve(null), ms);
    const prev = onLine;
    onLine = (l) => {
      prev(l);
      if (re.test(l)) {
        clearTimeout(t);
        onLine = prev;
        resolve(l);
      }
    };
  });
}
const ready = await waitLine(/^READY /, 10000);
if (!ready) {
  console.log('FAIL server did not start');
  dumpServer();
  process.exit(1);
}
const port = Number(/port=(\d+)/.exec(ready)[1]);
const served = /sha256=([0-9a-f]{64})/.exec(ready)[1];
check('server serves the pinned certificate', served === args.hash, { served, want: args.hash });

// ------------------------------------------------------------------ browser
const flags = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
if (args.netlog) flags.push(`--log-net-log=${args.netlog}`, '--net-log-capture-mode=Everything');
let browser;
try {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: flags, timeout: 60000 });
} catch (e) {
  console.log(`FAIL chromium did not start: ${e.message}`);
  server.kill('SIGTERM');
  process.exit(1);
}
console.log(`chromium ${browser.version()}`);

// Runs in the page. Every wait has its own deadline so a stuck step reports
// itself instead of hanging.
async function inPage({ port, hash, token, full, clientClose }) {
  const enc = (s) => new TextEncoder().encode(s);
  const dec = (b) => new TextDecoder().decode(b);
  const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
  async function readAll(readable) {
    const r = readable.getReader();
    const parts = [];
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      parts.push(...value);
    }
    return dec(new Uint8Array(parts));
  }
  const value = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
  const res = { steps: [] };
  let wt;
  try {
    wt = new WebTransport(`https://127.0.0.1:${port}/starling?token=${encodeURIComponent(token)}`,
      { serverCertificateHashes: [{ algorithm: 'sha-256', value }] });
    wt.closed.catch(() => {}); // observed below; never unhandled
    await within(wt.ready, 15000, 'ready');
    res.ready = true;
  } catch (e) {
    res.ready = false;
    res.error = String(e && e.message || e);
    return res;
  }
  if (clientClose) {
    // The page closes: the server must see the code and reason.
    wt.close({ closeCode: 7, reason: 'client bye' });
    const info = await within(wt.closed, 10000, 'closed after close()');
    res.closeCode = info.closeCode;
    return res;
  }
  if (!full) {
    wt.close();
    return res;
  }
  try {
    const bs = await within(wt.createBidirectionalStream(), 5000, 'createBidirectionalStream');
    const w = bs.writable.getWriter();
    await w.write(enc('hello bidi'));
    await w.close();
    res.bidi = await within(readAll(bs.readable), 5000, 'bidi echo');
    res.steps.push('bidi');

    const incoming = wt.incomingUnidirectionalStreams.getReader();
    const us = await within(wt.createUnidirectionalStream(), 5000, 'createUnidirectionalStream');
    const uw = us.getWriter();
    await uw.write(enc('hello uni'));
    await uw.close();
    const { value: inUni } = await within(incoming.read(), 5000, 'server uni stream');
    res.uni = await within(readAll(inUni), 5000, 'uni echo');
    res.steps.push('uni');

    const dw = wt.datagrams.writable.getWriter();
    const dr = wt.datagrams.readable.getReader();
    const got = dr.read();
    let echoed = null;
    for (let i = 0; i < 20 && echoed === null; i++) {
      await dw.write(enc('hello dgram'));
      echoed = await Promise.race([got.then((r) => dec(r.value)),
        new Promise((r) => setTimeout(() => r(null), 250))]);
    }
    res.dgram = echoed;
    res.steps.push('dgram');

    const cs = await within(wt.createBidirectionalStream(), 5000, 'close stream');
    const cw = cs.writable.getWriter();
    await cw.write(enc('CLOSE'));
    const info = await within(wt.closed, 10000, 'closed');
    res.closeCode = info.closeCode;
    res.reason = info.reason;
    res.steps.push('closed');
  } catch (e) {
    res.error = String(e && e.message || e);
  }
  return res;
}

const consoleLines = [];
async function openPage(origin) {
  const page = await browser.newPage();
  page.on('console', (m) => consoleLines.push(`${origin} console: ${m.text()}`));
  await page.goto(origin + '/', { timeout: 15000 });
  return page;
}

try {
  const a = await openPage(originA);
  const ok = await a.evaluate(inPage, { port, hash: args.hash, token: TOKEN, full: true });
  console.log(`session from ${originA}: ${JSON.stringify(ok)}`);
  check('session ready (origin and token accepted)', ok.ready === true, ok);
  check('bidirectional stream echoed', ok.bidi === 'hello bidi', ok);
  check('unidirectional stream echoed on a server stream', ok.uni === 'hello uni', ok);
  check('datagram echoed', ok.dgram === 'hello dgram', ok);
  check('closed resolves with the server close code', ok.closeCode === 4242, ok);
  check('closed carries the server reason', ok.reason === 'bye from starling', ok);
  const closedLine = await waitLine(/^CLOSED .*code=4242/, 5000);
  check('server reported the session closed', closedLine !== null && /by_peer=0/.test(closedLine), closedLine);

  const cc = await a.evaluate(inPage, { port, hash: args.hash, token: TOKEN, clientClose: true });
  console.log(`client close: ${JSON.stringify(cc)}`);
  check('second session ready', cc.ready === true, cc);
  const ccLine = await waitLine(/^CLOSED .*by_peer=1 app=1 code=7 reason="client bye"/, 5000);
  check('server got the page close code and reason', ccLine !== null, ccLine);

  const bad = await a.evaluate(inPage, { port, hash: args.hash, token: 'wrong-token', full: false });
  console.log(`wrong token: ${JSON.stringify(bad)}`);
  check('wrong token refused in the browser', bad.ready === false, bad);
  const tokLine = await waitLine(/^REFUSED status=403 reason="invalid or missing token"/, 5000);
  check('server refused the token with 403', tokLine !== null, tokLine);

  const b = await openPage(originB);
  const other = await b.evaluate(inPage, { port, hash: args.hash, token: TOKEN, full: false });
  console.log(`from ${originB}: ${JSON.stringify(other)}`);
  check('other origin refused in the browser', other.ready === false, other);
  const orLine = await waitLine(new RegExp(`^REFUSED status=403 reason="origin not allowed" origin=${originB}`), 5000);
  check('server refused the origin with 403', orLine !== null, orLine);
  const readyLine = serverLines.find((l) => l.startsWith('SESSION ready'));
  check('server saw the session with origin A', readyLine && readyLine.includes(`origin=${originA}`), readyLine);
} catch (e) {
  check('browser run', false, String(e && e.stack || e));
}

await browser.close();
pageA.close();
pageB.close();
server.kill('SIGTERM');
await Promise.race([serverExited, new Promise((r) => setTimeout(r, 10000))]);
check('server exited cleanly', serverExit && serverExit.code === 0 &&
  serverLines.some((l) => l === 'EXIT loop_close=0'), serverExit);
clearTimeout(overall);
if (failures.length) {
  for (const l of consoleLines) console.log(l);
  dumpServer();
}
console.log(`browser_wt_test: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
