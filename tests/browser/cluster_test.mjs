// cluster_test.mjs: browser agents as cluster members, in Debian's Chromium.
//
//   node cluster_test.mjs --peer BUILD/tests/gateway_peer --dist BUILD_WASM
//        --cert C --key K --hash HEX [--wtecho BUILD/tests/wt_echo_server]
//
//  1. serves cluster_page.html/.mjs and the wasm build from two origins on
//     127.0.0.1 (node:http): A is on the gateway's Origin allow-list, B not;
//  2. starts tests/gateway_peer (a gateway node and a node behind it) with
//     the certificate the page pins (serverCertificateHashes);
//  3. opens the page of origin A in headless Chromium (playwright-core): its
//     agents join through the gateway and check every direction (see the
//     page); `window.harness('kill')` kills the gateway process and
//     `window.harness('start')` starts it again on the same port, so the page
//     sees DOWN, failed reconnects, then a reconnect;
//     `window.harness('far-stop')` stops the node behind the gateway;
//  4. closes that page and checks that the native agent monitoring one of
//     its agents got DOWN(noconnection);
//  5. opens the page of origin B, whose connect must be refused;
//  6. opens a page of hostile raw sessions (one says no HELLO: closed at
//     gateway_peer's --hello-ms 1500 deadline);
//  7. with --wtecho, a page that joins a WebTransport server which is no
//     gateway (it never welcomes): connect must say so.
// Exit 0 when every check passed.
import http from 'node:http';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serveStatic } from './static_files.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['peer', 'dist', 'cert', 'key', 'hash']) {
  if (!args[k]) {
    console.error(`cluster_test.mjs: --${k} is required`);
    process.exit(2);
  }
}
const TOKEN = 'cluster-test-token';
const executablePath = process.env.SL_CHROMIUM || '/usr/bin/chromium';
let failed = 0;
function check(name, ok, detail) {
  if (ok) console.log(`ok   ${name}`);
  else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? `\n     ${String(detail).replace(/\n/g, '\n     ')}` : ''}`);
  }
}

// ------------------------------------------------------------ static pages
const mounts = { '/dist/': path.resolve(args.dist), '/page/': here };
const index = path.join(here, 'cluster_page.html');
function staticServer() {
  return http.createServer((req, res) => serveStatic(req, res, { mounts, index }));
}
const pageA = staticServer();
const pageB = staticServer();
await new Promise((r) => pageA.listen(0, '127.0.0.1', r));
await new Promise((r) => pageB.listen(0, '127.0.0.1', r));
const originA = `http://127.0.0.1:${pageA.address().port}`;
const originB = `http://127.0.0.1:${pageB.address().port}`;

// ------------------------------------------------------------ the native side
let peer = null;
let lines = [];
let waiters = [];
function startPeer(port) {
  const p = spawn(args.peer, ['--port', String(port), '--cert', args.cert, '--key', args.key, '--token', TOKEN,
    '--origin', originA, '--far', '--hello-ms', '1500', '--timeout', '150'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (process.env.SL_VERBOSE) console.log(`peer: ${line}`);
      waiters = waiters.filter((w) => !(w.re.test(line) && (w.resolve(line), true)));
    }
  });
  p.stderr.on('data', (d) => {
    if (process.env.SL_VERBOSE) process.stderr.write(`peer stderr: ${d}`);
  });
  p.exited = new Promise((r) => p.on('exit', (code, sig) => r({ code, sig })));
  return p;
}
function waitLine(re, ms) {
  const have = lines.find((l) => re.test(l));
  if (have) return Promise.resolve(have);
  return new Promise((resolve) => {
    const w = { re, resolve };
    waiters.push(w);
    setTimeout(() => {
      waiters = waiters.filter((x) => x !== w);
      resolve(null);
    }, ms);
  });
}

peer = startPeer(0);
const ready = await waitLine(/^READY /, 10000);
if (!ready) {
  console.log('FAIL gateway_peer did not start');
  process.exit(1);
}
const port = Number(/port=(\d+)/.exec(ready)[1]);
const secret = /^SECRET secret (\S+)/.exec((await waitLine(/^SECRET /, 1000)) || '');
const echoId = /^EXPOSED echo (\S+)/.exec((await waitLine(/^EXPOSED echo /, 1000)) || '');

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const ctx = await browser.newContext();
  await ctx.exposeBinding('harness', async (_src, cmd) => {
    if (cmd === 'kill') {
      peer.kill('SIGKILL');
      await peer.exited;
      return true;
    }
    if (cmd === 'start') {
      lines = [];
      peer = startPeer(port);
      const again = await waitLine(/^READY /, 10000);
      check('gateway restarted on the same port', again !== null, again);
      return true;
    }
    if (cmd === 'far-stop') {
      const seen = waitLine(/^FAR-STOPPED$/, 10000);
      peer.kill('SIGUSR1');
      return (await seen) !== null;
    }
    throw new Error(`unknown harness command ${cmd}`);
  });
  const pageErrors = [];
  async function run(origin, mode, more = {}) {
    const page = await ctx.newPage();
    page.on('console', (m) => {
      if (process.env.SL_VERBOSE || m.type() === 'error') console.log(`${origin} console.${m.type()}: ${m.text()}`);
    });
    const qs = new URLSearchParams({ port: String(port), hash: args.hash, token: TOKEN, mode, secret: secret ? secret[1] : '', echo: echoId ? echoId[1] : '', ...more });
    // An uncaught error is reported at the end; one before the results
    // (e.g. the page's module does not parse) ends the wait at once, with
    // its cause, instead of after the 90 s timeout.
    let broke = null;
    const broken = new Promise((_, reject) => { broke = reject; });
    broken.catch(() => {});
    page.on('pageerror', (err) => {
      const e = `${origin}: ${err && err.stack ? err.stack : err}`;
      pageErrors.push(e);
      broke(new Error(`page error: ${e}`));
    });
    await page.goto(`${origin}/?${qs}`);
    await Promise.race([page.waitForFunction(() => window.__results !== undefined, null, { timeout: 90000 }), broken]);
    const results = await page.evaluate(() => window.__results);
    for (const r of results) check(`${mode}: ${r.name}`, r.ok, r.detail);
    return page;
  }
  const a = await run(originA, 'full');
  // The native side monitors an agent of that page (the prober): closing the
  // page ends the session, and the monitor fires.
  lines = lines.filter((l) => !/^PROBER-DOWN/.test(l));
  await a.close();
  const pd = await waitLine(/^PROBER-DOWN /, 8000);
  check('page closed: the native agent monitoring a browser agent gets DOWN(noconnection)', pd === 'PROBER-DOWN noconnection', pd);
  // ...and its ask to a browser agent that never answered (30 s deadline)
  // fails with SL_ERR_NOCONN when the gateway sees the session gone
  const ph = await waitLine(/^PROBER-HANG /, 4000);
  check('page closed: a native ask pending at a browser agent fails with SL_ERR_NOCONN, not at its deadline', ph === 'PROBER-HANG SL_ERR_NOCONN', ph);
  const fh = await waitLine(/^FAR-PROBER-HANG /, 4000);
  check('page closed: the same ask relayed by the gateway from the node behind it fails with SL_ERR_NOCONN', fh === 'FAR-PROBER-HANG SL_ERR_NOCONN', fh);
  const b = await run(originB, 'refused');
  await b.close();
  const h = await run(originA, 'hostile');
  await h.close();
  if (args.wtecho) {
    // not a gateway: tests/wt_echo_server accepts the session, never welcomes
    const we = spawn(args.wtecho, ['--port', '0', '--cert', args.cert, '--key', args.key, '--token', TOKEN,
      '--origin', originA, '--timeout', '60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const weReady = new Promise((resolve) => {
      we.stdout.on('data', (d) => {
        out += d;
        const m = /^READY port=(\d+)/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      setTimeout(() => resolve(null), 10000);
    });
    const wport = await weReady;
    check('wt_echo_server started', wport !== null, out);
    if (wport) {
      const n = await run(originA, 'notgateway', { wtport: String(wport) });
      await n.close();
      check('the server saw the browser close its sessions for want of a welcome (code 23)',
        /CLOSED .*code=23 reason="starling: no welcome within 600 ms: not a Starling gateway, or it is stuck"/.test(out), out);
    }
    we.kill('SIGTERM');
  }
  for (const e of pageErrors) check('no page error', false, e);
} catch (e) {
  check('harness', false, e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close();
  peer.kill('SIGTERM');
  const ex = await Promise.race([peer.exited, new Promise((r) => setTimeout(() => r({ code: 'timeout' }), 5000))]);
  check('gateway_peer exits cleanly on SIGTERM', ex.code === 0, JSON.stringify(ex));
  pageA.close();
  pageB.close();
}
console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
