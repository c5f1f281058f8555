// bench_browser.mjs: Starling in a browser page against a WebSocket baseline
// in the same Chromium and the same page (run by bench/browser_bench.sh).
//
//   node bench_browser.mjs --peer BUILD/tests/gateway_peer --dist BUILD_WASM
//        --cert C --key K --hash HEX [--only browser_rtt|browser_throughput]
//        [--rounds 3] [--asks 10000] [--msgs 500000] [--ws-msgs 50000]
//        [--warmup 1000] [--blocks 20] [--verbose 1] [--diag 1]
//        [--wtecho BUILD/tests/wt_echo_server]
//
//  1. serves bench_page.html/.mjs and the wasm build on 127.0.0.1 (node:http,
//     cross-origin isolated so that performance.now() has 5 µs resolution),
//     with a WebSocket server (the `ws` package) on the same port at /ws: it
//     echoes every binary message, and answers the text "blast N" with N
//     64-byte binary messages (writing only while the socket's buffer holds
//     less than 1 MiB, resuming on 'drain') and then the text "done N";
//  2. starts tests/gateway_peer (exposes `echo` and `blaster`);
//  3. opens the page in headless Chromium (started directly, no DevTools
//     client: see below), which measures both sides in alternation for each
//     round (bench_page.mjs) and POSTs its results to /result; the round
//     trips of each round are taken in --blocks turns (raw WebTransport
//     echo when --wtecho is given, Starling asks, ws, wss, Starling sends,
//     then again), so that every way sees the same
//     machine; --blocks 1 measures them one after another, with the CPU
//     time of each;
//  4. prints one JSON line per benchmark, each figure the median over the
//     rounds. With --verbose, every round and the CPU time each process used
//     in each phase (gateway, Chromium's processes, this Node.js) go to stderr.
// Exit 0 on success; 1 with a message on stderr on any failure. Bounded:
// every wait has a timeout, and the whole run is killed after --limit s.
import http from 'node:http';
import https from 'node:https';
import { X509Certificate, createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { serveStatic } from './static_files.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = { budget: '110', rounds: '3', asks: '10000', msgs: '500000', 'ws-msgs': '50000', warmup: '1000', limit: '170', blocks: '20' };
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
function die(msg) {
  process.stderr.write(`browser_bench: ${msg}\n`);
  process.exit(1);
}
for (const k of ['peer', 'dist', 'cert', 'key', 'hash']) if (!args[k]) die(`--${k} is required`);
const only = args.only || '';
if (only && !['browser_rtt', 'browser_throughput'].includes(only)) die(`unknown benchmark ${only}`);
const P = {
  rounds: Number(args.rounds),
  asks: Number(args.asks),
  msgs: Number(args.msgs),
  wsMsgs: Number(args['ws-msgs']),
  budgetMs: Number(args.budget) * 1000,
  warmup: Number(args.warmup),
  blocks: Math.max(1, Number(args.blocks)), // rtt: the ways take turns in this many blocks (1: one after another)
  rtt: !only || only === 'browser_rtt',
  tp: !only || only === 'browser_throughput',
};
const verbose = !!Number(args.verbose || 0) || !!Number(args.diag || 0);
P.diag = !!Number(args.diag || 0);
const log = (s) => verbose && process.stderr.write(`${s}\n`);
const TOKEN = 'bench-token';
const executablePath = process.env.SL_CHROMIUM || '/usr/bin/chromium';
let cleanupFns = [];
async function cleanup() {
  for (const f of cleanupFns.reverse()) {
    try {
      await f();
    } catch {
      /* best effort */
    }
  }
  cleanupFns = [];
}
const hardLimit = setTimeout(async () => {
  process.stderr.write(`browser_bench: gave up after ${args.limit} s\n`);
  await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(1);
}, Number(args.limit) * 1000);
hardLimit.unref();

// ------------------------------------------------------------ CPU time
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux
// /proc/<what>/stat of a process or a thread ("PID/task/TID"): CPU seconds
// (utime + stime, fields 14 and 15), kernel seconds, minor page faults
// (field 10); zeros once it is gone. The name (field 2) may hold spaces.
function procStat(what) {
  try {
    const s = readFileSync(`/proc/${what}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, sys: Number(f[12]) / CLK_TCK, faults: Number(f[7]) };
  } catch {
    return { cpu: 0, sys: 0, faults: 0 };
  }
}
const procCpu = (pid) => procStat(pid).cpu;
async function descendants(root) {
  // every pid whose ancestry reaches root
  const parent = new Map();
  const comm = new Map();
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const t = /--type=([a-z-]+)/.exec(cmd);
      const u = /--utility-sub-type=([A-Za-z.]+)/.exec(cmd);
      if (cmd.includes('chrom')) comm.set(Number(d), t ? (u ? u[1].replace(/^.*\./, '') : t[1]) : 'browser');
    } catch {
      /* gone */
    }
  }
  const out = [];
  for (const pid of parent.keys()) {
    let p = pid;
    for (let i = 0; i < 64 && p > 1; i++) {
      if (p === root && comm.has(pid)) {
        out.push({ pid, kind: comm.get(pid) });
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

// ------------------------------------------------------------ static pages + ws
const mounts = { '/dist/': path.resolve(args.dist), '/page/': here };
const marks = [];
let wtEcho = null;
let resolveResult;
const pageResult = new Promise((r) => { resolveResult = r; });
// UDP datagrams sent on this machine's network namespace so far (every
// QUIC packet of every process here, the loopback's both ends counted once).
function udpOut() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp: '));
    const head = lines[0].split(' ');
    return Number(lines[1].split(' ')[head.indexOf('OutDatagrams')]);
  } catch {
    return 0;
  }
}
async function mark(name) {
  const procs = await descendants(process.pid);
  const cpu = { gateway: procCpu(peer.pid), node: (process.cpuUsage().user + process.cpuUsage().system) / 1e6, udp_datagrams: udpOut() };
  if (wtEcho) cpu.wt_echo_server = procCpu(wtEcho.pid);
  for (const p of procs) {
    if (p.pid === peer.pid) continue;
    cpu[`chromium:${p.kind}`] = (cpu[`chromium:${p.kind}`] || 0) + procCpu(p.pid);
    if (P.diag && (p.kind === 'renderer' || p.kind === 'NetworkService')) {
      // --diag: which threads of these two processes use the CPU
      let tids = [];
      try {
        tids = await readdir(`/proc/${p.pid}/task`);
      } catch {
        /* gone */
      }
      for (const tid of tids) {
        let comm = '?';
        try {
          comm = readFileSync(`/proc/${p.pid}/task/${tid}/comm`, 'utf8').trim();
        } catch {
          continue;
        }
        const k = `  ${p.kind}/${comm}`;
        const st = procStat(`${p.pid}/task/${tid}`);
        const add = (key, x) => {
          cpu[key] = (cpu[key] || 0) + x;
        };
        add(k, st.cpu);
        add(`${k}:sys`, st.sys);
        add(`${k}:pagefaults/1000`, st.faults / 1000);
        try {
          const sw = /voluntary_ctxt_switches:\s*(\d+)/.exec(readFileSync(`/proc/${p.pid}/task/${tid}/status`, 'utf8'));
          add(`${k}:wakeups/1000`, Number(sw[1]) / 1000);
        } catch {
          /* gone */
        }
      }
    }
  }
  marks.push({ name, t: performance.now(), cpu });
}
function body(req) {
  return new Promise((resolve) => {
    let b = '';
    req.on('data', (d) => { b += d; });
    req.on('end', () => resolve(b));
  });
}
async function serve(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'POST' && url.pathname === '/mark') {
    await mark(url.searchParams.get('name'));
    res.writeHead(204);
    res.end();
    return;
  }
  if (req.method === 'POST' && url.pathname === '/result') {
    const b = await body(req);
    res.writeHead(204);
    res.end();
    try {
      resolveResult(JSON.parse(b));
    } catch (e) {
      resolveResult({ error: `bad result from the page: ${b.slice(0, 200)}` });
    }
    return;
  }
  if (req.method === 'POST' && url.pathname === '/log') {
    log(`page: ${await body(req)}`);
    res.writeHead(204);
    res.end();
    return;
  }
  await serveStatic(req, res, {
    mounts,
    index: path.join(here, 'bench_page.html'),
    headers: {
      // cross-origin isolation: performance.now() at 5 µs instead of 100 µs
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'document-policy': 'js-profiling', // the JS Self-Profiling API, for --diag
    },
  });
}
const server = http.createServer(serve);
// The same WebSocket server over TLS too (wss), with the certificate the
// gateway uses: Chromium accepts it by its key (--ignore-certificate-errors-spki-list).
const tlsServer = https.createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) }, serve);
const spki = createHash('sha256')
  .update(new X509Certificate(readFileSync(args.cert)).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');
const BLAST_MSG = Buffer.alloc(64, 0x42);
const HIGH_WATER = 1 << 20;
function onWs(sock) {
  const raw = sock._socket;
  raw.setNoDelay(true);
  sock.on('message', (data, isBinary) => {
    if (isBinary) {
      sock.send(data, { binary: true });
      return;
    }
    const m = /^blast (\d+)$/.exec(String(data));
    if (!m) return;
    let left = Number(m[1]);
    const total = left;
    const pump = () => {
      // corked: the frames written in one turn go out in few TCP writes
      raw.cork();
      process.nextTick(() => raw.uncork());
      while (left > 0) {
        sock.send(BLAST_MSG, { binary: true });
        left--;
        if (raw.writableLength >= HIGH_WATER) {
          raw.once('drain', pump);
          return;
        }
      }
      sock.send(`done ${total}`);
    };
    pump();
  });
}
const wsServers = [server, tlsServer].map((srv) => new WebSocketServer({ server: srv, path: '/ws', perMessageDeflate: false }));
for (const w of wsServers) w.on('connection', onWs);
await new Promise((r) => server.listen(0, '127.0.0.1', r));
await new Promise((r) => tlsServer.listen(0, '127.0.0.1', r));
cleanupFns.push(() => {
  for (const w of wsServers) w.close();
  for (const srv of [server, tlsServer]) {
    srv.close();
    srv.closeAllConnections();
  }
});
const origin = `http://127.0.0.1:${server.address().port}`;

// ------------------------------------------------------------ the gateway
const peer = spawn(args.peer, ['--port', '0', '--cert', args.cert, '--key', args.key, '--token', TOKEN,
  '--origin', origin, '--timeout', String(Number(args.limit) + 10)], { stdio: ['ignore', 'pipe', 'pipe'] });
const peerExited = new Promise((r) => peer.on('exit', (code, sig) => r({ code, sig })));
cleanupFns.push(async () => {
  peer.kill('SIGTERM');
  await Promise.race([peerExited, new Promise((r) => setTimeout(r, 3000))]);
  peer.kill('SIGKILL');
});
let peerOut = '';
let peerErr = '';
peer.stderr.on('data', (d) => { peerErr += d; });
const readyLine = await new Promise((resolve) => {
  const t = setTimeout(() => resolve(null), 10000);
  peer.stdout.on('data', (d) => {
    peerOut += d;
    const m = /^READY .*$/m.exec(peerOut);
    if (m) {
      clearTimeout(t);
      resolve(m[0]);
    }
  });
  peer.on('exit', () => resolve(null));
});
// --wtecho: a plain WebTransport echo server too, the floor under Starling's
// asks (browser_rtt's raw_wt_* figures; --diag's raw measurements)
if (args.wtecho) {
  const we = (wtEcho = spawn(args.wtecho, ['--port', '0', '--cert', args.cert, '--key', args.key, '--token', TOKEN,
    '--timeout', String(Number(args.limit) + 10)], { stdio: ['ignore', 'pipe', 'ignore'] }));
  cleanupFns.push(() => we.kill('SIGTERM'));
  const wport = await new Promise((resolve) => {
    let o = '';
    const t = setTimeout(() => resolve(null), 10000);
    we.stdout.on('data', (d) => {
      o += d;
      const m = /^READY port=(\d+)/m.exec(o);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  if (wport) P.wtUrl = `https://127.0.0.1:${wport}/starling?token=${TOKEN}`;
}
if (!readyLine) {
  await cleanup();
  die(`gateway_peer did not start: ${peerErr.trim()}`);
}
const port = Number(/port=(\d+)/.exec(readyLine)[1]);

// ------------------------------------------------------------ the browser
// Chromium is started directly, not through playwright: a DevTools client
// enables the Network domain, which reports every WebSocket frame to it and
// costs the browser process more CPU than the page itself (with playwright
// the WebSocket blast ran at ~8.5k msgs/s). The page reports over HTTP.
const userDir = await mkdtemp(path.join(tmpdir(), 'sl-bench-chromium-'));
cleanupFns.push(() => rm(userDir, { recursive: true, force: true }));
const qs = new URLSearchParams({
  port: String(port), hash: args.hash, token: TOKEN, ws: `ws://127.0.0.1:${server.address().port}/ws`,
  wss: `wss://127.0.0.1:${tlsServer.address().port}/ws`,
  params: JSON.stringify(P),
});
const chrome = spawn(executablePath, ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--mute-audio',
  `--ignore-certificate-errors-spki-list=${spki}`,
  `--user-data-dir=${userDir}`, `${origin}/?${qs}`], { stdio: ['ignore', 'ignore', verbose ? 'inherit' : 'ignore'], detached: true });
const chromeExited = new Promise((r) => chrome.on('exit', (code, sig) => r({ code, sig })));
cleanupFns.push(async () => {
  try {
    process.kill(-chrome.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  await Promise.race([chromeExited, new Promise((r) => setTimeout(r, 3000))]);
  try {
    process.kill(-chrome.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
});
const result = await Promise.race([
  pageResult,
  chromeExited.then((e) => ({ error: `chromium exited early: ${JSON.stringify(e)}` })),
  peerExited.then((e) => ({ error: `gateway_peer exited: ${JSON.stringify(e)}` })),
]);
if (result.error) {
  await cleanup();
  die(`${result.error}\ngateway_peer stderr: ${peerErr.trim()}`);
}
await cleanup();

// ------------------------------------------------------------ report
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}
const R = result.rounds;
const r1 = (x) => Math.round(x * 10) / 10;
if (verbose) {
  log(`page: crossOriginIsolated=${result.info.crossOriginIsolated} ${result.info.userAgent}`);
  R.forEach((r, i) => log(`round ${i}: ${JSON.stringify(r)}`));
  if (result.info.diag) log(`diag: ${JSON.stringify(result.info.diag, null, 1)}`);
  log(`stats: ${JSON.stringify(result.info.stats)}`);
  for (let i = 0; i + 1 < marks.length; i++) {
    const a = marks[i];
    const b = marks[i + 1];
    if (/ end$/.test(a.name)) continue;
    const d = Object.keys(b.cpu).filter((k) => k !== 'udp_datagrams' && b.cpu[k] - (a.cpu[k] || 0) >= 0.005)
      .map((k) => `${k}=${(b.cpu[k] - (a.cpu[k] || 0)).toFixed(2)}`).join(' ');
    const udp = b.cpu.udp_datagrams - a.cpu.udp_datagrams;
    log(`cpu s in ${a.name} (${((b.t - a.t) / 1000).toFixed(2)} s wall): ${d} (udp datagrams sent: ${udp})`);
  }
}
if (!result.info.crossOriginIsolated) process.stderr.write('browser_bench: warning: the page is not cross-origin isolated (100 µs clock)\n');
if (P.rtt) {
  console.log(JSON.stringify({
    bench: 'browser_rtt', asks: P.asks, payload: 64, rounds: R.length,
    p50_us: r1(median(R.map((r) => r.starling_rtt.p50_us))),
    p99_us: r1(median(R.map((r) => r.starling_rtt.p99_us))),
    mean_us: r1(median(R.map((r) => r.starling_rtt.mean_us))),
    send_p50_us: r1(median(R.map((r) => r.starling_pingpong.p50_us))),
    send_p99_us: r1(median(R.map((r) => r.starling_pingpong.p99_us))),
    ws_p50_us: r1(median(R.map((r) => r.ws_rtt.p50_us))),
    ws_p99_us: r1(median(R.map((r) => r.ws_rtt.p99_us))),
    ws_mean_us: r1(median(R.map((r) => r.ws_rtt.mean_us))),
    wss_p50_us: r1(median(R.map((r) => r.wss_rtt.p50_us))),
    wss_p99_us: r1(median(R.map((r) => r.wss_rtt.p99_us))),
    ...(R.every((r) => r.raw_wt) ? {
      raw_wt_p50_us: r1(median(R.map((r) => r.raw_wt.p50_us))),
      raw_wt_p99_us: r1(median(R.map((r) => r.raw_wt.p99_us))),
      raw_wt_mean_us: r1(median(R.map((r) => r.raw_wt.mean_us))),
    } : {}),
  }));
}
if (P.tp) {
  console.log(JSON.stringify({
    bench: 'browser_throughput', msgs: P.msgs, ws_msgs: P.wsMsgs, payload: 64, rounds: R.length,
    msgs_per_s: Math.round(median(R.map((r) => r.starling_tp.msgs_per_s))),
    ws_msgs_per_s: Math.round(median(R.map((r) => r.ws_tp.msgs_per_s))),
    wss_msgs_per_s: Math.round(median(R.map((r) => r.wss_tp.msgs_per_s))),
  }));
}
process.exit(0);
