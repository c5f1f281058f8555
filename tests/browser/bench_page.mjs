// bench_page.mjs: the page of bench/browser_bench.sh (driven by
// bench_browser.mjs, which serves it with the wasm build, runs
// tests/gateway_peer and a WebSocket server built on the `ws` package).
//
// Everything is measured here, in the page, with performance.now() (the page
// is cross-origin isolated, so its clock has 5 µs resolution, not 100 µs).
// Both sides move the same 64 bytes per message:
//   Starling  a browser agent asks the gateway's `echo` (64-byte payload:
//             a msgpack bin of 62 bytes, 64 bytes encoded); a browser agent
//             receives `blaster`'s messages (the same 64-byte encoded payload)
//   WebSocket a 64-byte binary message to the echo server, awaiting its echo;
//             the server's blast of 64-byte binary messages.
// The page runs at once with the parameters of its query string and POSTs
// {rounds: [{starling_rtt, ws_rtt, starling_tp, ws_tp}, ...], info} (or
// {error}) to /result. POST /mark?name=N makes the harness snapshot the CPU
// time of the processes involved (between phases, never inside one).
import { Starling } from '/dist/starling.js';

const q = new URLSearchParams(location.search);
const PORT = Number(q.get('port'));
const HASH = q.get('hash');
const TOKEN = q.get('token');
const WS_URL = q.get('ws');
const WSS_URL = q.get('wss'); // the same server over TLS (or none)

const T_BLAST = 40, T_BLAST_MSG = 41, T_BLAST_DONE = 42;

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
function concat(arrays) {
  const out = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}
function summary(samples) {
  const s = Float64Array.from(samples).sort();
  // mean_us: of the samples up to p99 (finer than the 5 µs clock's p50)
  const cut = s.subarray(0, Math.max(1, Math.floor(s.length * 0.99)));
  const mean = cut.reduce((a, b) => a + b, 0) / cut.length;
  return { p50_us: percentile(s, 50) * 1000, p99_us: percentile(s, 99) * 1000, max_us: s[s.length - 1] * 1000, mean_us: mean * 1000 };
}
const post = (what, body) => fetch(what, { method: 'POST', body });
const mark = (name) => post(`/mark?name=${encodeURIComponent(name)}`, '');

// ------------------------------------------------------------- Starling
let node = null;
let echo = null;
let blaster = null;

async function starlingConnect() {
  node = await Starling.connect({
    url: `https://127.0.0.1:${PORT}/starling?token=${encodeURIComponent(TOKEN)}`,
    certificateHash: HASH,
    connectTimeoutMs: 10000,
  });
  const ex = node.exposed();
  echo = ex.get('echo');
  blaster = ex.get('blaster');
  if (!echo || !blaster) throw new Error(`gateway exposes no echo/blaster: ${JSON.stringify([...ex])}`);
}

// One browser agent asks echo `n` times, one at a time; resolves with the
// round-trip time of each ask in ms.
function starlingAsks(n, payload) {
  return new Promise((resolve, reject) => {
    const times = new Float64Array(n);
    const agent = node.spawn({
      async onMessage(ctx) {
        try {
          for (let i = 0; i < n; i++) {
            const t0 = performance.now();
            const r = await ctx.ask(echo, payload, { deadlineMs: 5000 });
            times[i] = performance.now() - t0;
            if (!(r instanceof Uint8Array) || r.length !== payload.length) throw new Error(`echo gave ${r}`);
          }
          resolve(times);
        } catch (e) {
          reject(e);
        }
        ctx.stop();
      },
    });
    node.send(agent, 0);
  });
}

// One browser agent asks blaster for n messages and counts them until the
// final one; resolves with {count, ms} (ms from the request to the final).
function starlingBlast(n) {
  return new Promise((resolve, reject) => {
    let count = 0;
    let bytes = 0;
    let t0 = 0;
    const agent = node.spawn({
      onMessage(ctx, m) {
        if (m.kind !== 'send') return;
        if (m.type === T_BLAST_MSG) {
          count++;
          bytes += m.value.length;
        } else if (m.type === T_BLAST_DONE) {
          const ms = performance.now() - t0;
          if (m.value !== count) reject(new Error(`blaster sent ${m.value}, got ${count}`));
          else resolve({ count, ms, bytes });
          ctx.stop();
        } else if (m.type === 0) {
          t0 = performance.now();
          ctx.send(blaster, n, { type: T_BLAST });
        }
      },
    });
    node.send(agent, 0);
  });
}

// A browser agent and echo play ping-pong with messages (lanes: one stream
// each way, opened once), n round trips; resolves with each one's time in ms.
function starlingPingPong(n, payload) {
  return new Promise((resolve, reject) => {
    const times = new Float64Array(n);
    let i = 0;
    let t0 = 0;
    const agent = node.spawn({
      onMessage(ctx, m) {
        if (m.kind !== 'send') return;
        if (m.type === 7) {
          times[i++] = performance.now() - t0;
          if (!(m.value instanceof Uint8Array)) reject(new Error(`echo sent ${m.value}`));
        }
        if (i === n) {
          resolve(times);
          ctx.stop();
          return;
        }
        t0 = performance.now();
        ctx.send(echo, payload, { type: 7 });
      },
    });
    node.send(agent, 0);
  });
}

// -------------------------------------------------- raw WebTransport (diag)
// Against tests/wt_echo_server (echoes every bidi stream): what the browser's
// WebTransport itself costs, without Starling. mode 'one': one
// bidirectional stream for all; 'per': a new stream per round trip (as a
// Starling ask once did); 'pre': the same with each stream created one
// round trip ahead; 'byob': one stream read as the runtime reads (BYOB,
// 64 KiB); 'uni' / 'uni-byob': a stream each way as Starling's lanes are
// (wt_echo_server's LANE echo).
async function rawWT(url, n, mode) {
  const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: hexBytes(HASH) }] });
  await wt.ready;
  const times = new Float64Array(n);
  const open = new Float64Array(n); // createBidirectionalStream resolved
  const first = new Float64Array(n); // the echo's bytes arrived
  const data = new Uint8Array(64).fill(0x42);
  let st = null, w = null, r = null, next = null;
  const byob = mode === 'byob' || mode === 'uni-byob';
  const ends = mode === 'per' || mode === 'pre'; // a stream per round trip, closed after it
  let buf = new ArrayBuffer(65536);
  const read = async () => {
    if (!byob) return r.read();
    const res = await r.read(new Uint8Array(buf));
    if (res.value) buf = res.value.buffer;
    return res;
  };
  if (mode === 'uni' || mode === 'uni-byob') {
    const out = await wt.createUnidirectionalStream();
    w = out.getWriter();
    w.write(new TextEncoder().encode('LANE\n')).catch(() => {});
    w.write(data).catch(() => {}); // makes the server open its lane
    const inc = wt.incomingUnidirectionalStreams.getReader();
    const { value: rs } = await inc.read();
    inc.releaseLock();
    r = byob ? rs.getReader({ mode: 'byob' }) : rs.getReader();
    for (let got = 0; got < 64; ) got += (await read()).value.length;
    st = true;
  }
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    if (mode === 'pre') {
      // the stream was made during the previous round trip (a pool of one)
      st = await (next || wt.createBidirectionalStream());
      next = wt.createBidirectionalStream();
      w = st.writable.getWriter();
      r = st.readable.getReader();
    } else if (mode === 'per' || !st) {
      st = await wt.createBidirectionalStream();
      w = st.writable.getWriter();
      r = byob ? st.readable.getReader({ mode: 'byob' }) : st.readable.getReader();
    }
    open[i] = performance.now() - t0;
    w.write(data).catch(() => {});
    if (ends) w.close().catch(() => {});
    let got = 0;
    while (got < 64) {
      const { value, done } = await read();
      if (done) break;
      got += value.length;
    }
    first[i] = performance.now() - t0;
    if (ends) {
      const { done } = await r.read();
      if (!done) throw new Error('raw WT: more than the echo');
    }
    times[i] = performance.now() - t0;
    if (got !== 64) throw new Error(`raw WT: echo of ${got} bytes`);
  }
  wt.closed.catch(() => {});
  if (w) w.releaseLock();
  if (r) r.releaseLock();
  wt.close();
  await wt.closed.catch(() => {});
  return { times, open: summary(open), first: summary(first) };
}
// A raw WebTransport session with one bidirectional stream to the echo
// server, kept open: rtt(n) makes n sequential 64-byte round trips (the
// floor under Starling's lanes, taken in turns with the others by --diag).
async function rawSession(url) {
  const wt = new WebTransport(url, { serverCertificateHashes: [{ algorithm: 'sha-256', value: hexBytes(HASH) }] });
  await wt.ready;
  wt.closed.catch(() => {});
  const st = await wt.createBidirectionalStream();
  const w = st.writable.getWriter();
  const r = st.readable.getReader();
  const data = new Uint8Array(64).fill(0x42);
  return {
    async rtt(n) {
      const times = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        w.write(data).catch(() => {});
        for (let got = 0; got < 64; ) {
          const { value, done } = await r.read();
          if (done) throw new Error('raw WT: the echo stream ended');
          got += value.length;
        }
        times[i] = performance.now() - t0;
      }
      return times;
    },
    close() {
      wt.close();
    },
  };
}
function hexBytes(h) {
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(i * 2, 2), 16);
  return b;
}

// The latency of one macrotask hop (a MessageChannel message to ourselves,
// as wasm/library_starling.js posts the runtime's turns), n times.
async function macrotaskHops(n) {
  const ch = new MessageChannel();
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise((r) => {
      ch.port1.onmessage = r;
      ch.port2.postMessage(0);
    });
    times[i] = performance.now() - t0;
  }
  ch.port1.close();
  return times;
}

// The JS Self-Profiling API (the document has Document-Policy: js-profiling):
// samples of the page's main thread while fn runs; returns the functions with
// the most samples at the top of the stack (self) and anywhere (total).
async function profiled(fn) {
  if (typeof Profiler !== 'function') return { result: await fn(), profile: 'no Profiler API' };
  const prof = new Profiler({ sampleInterval: 1, maxBufferSize: 200000 });
  const result = await fn();
  const tr = await prof.stop();
  const self = new Map();
  const total = new Map();
  const name = (fi) => {
    const f = tr.frames[fi];
    const res = f.resourceId !== undefined ? tr.resources[f.resourceId].replace(/^.*\//, '') : '';
    return `${f.name || '(anon)'} ${res}:${f.line ?? ''}`;
  };
  let idle = 0;
  for (const smp of tr.samples) {
    if (smp.stackId === undefined) {
      idle++;
      continue;
    }
    let st = tr.stacks[smp.stackId];
    self.set(name(st.frameId), (self.get(name(st.frameId)) || 0) + 1);
    const seen = new Set();
    for (; st; st = st.parentId === undefined ? null : tr.stacks[st.parentId]) {
      const nm = name(st.frameId);
      if (!seen.has(nm)) total.set(nm, (total.get(nm) || 0) + 1);
      seen.add(nm);
    }
  }
  const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, 25);
  return { result, profile: { samples: tr.samples.length, idle, self: top(self), total: top(total) } };
}

// ------------------------------------------------------------ WebSocket
// A connection: {sock, on}; `on` is the current message handler.
function wsConnect(url) {
  return new Promise((resolve, reject) => {
    const c = { sock: new WebSocket(url), on: null };
    c.sock.binaryType = 'arraybuffer';
    c.sock.onopen = () => resolve(c);
    c.sock.onerror = () => reject(new Error(`WebSocket ${url} failed`));
    c.sock.onmessage = (ev) => c.on(ev);
  });
}

async function wsAsks(c, n, payload) {
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const got = await new Promise((resolve) => {
      c.on = (ev) => resolve(ev.data);
      c.sock.send(payload);
    });
    times[i] = performance.now() - t0;
    if (!(got instanceof ArrayBuffer) || got.byteLength !== payload.length) throw new Error(`ws echo gave ${got}`);
  }
  return times;
}

function wsBlast(c, n) {
  return new Promise((resolve, reject) => {
    let count = 0;
    let bytes = 0;
    const t0 = performance.now();
    c.on = (ev) => {
      if (typeof ev.data !== 'string') {
        count++;
        bytes += ev.data.byteLength;
        return;
      }
      const ms = performance.now() - t0;
      const m = /^done (\d+)$/.exec(ev.data);
      if (!m || Number(m[1]) !== count) reject(new Error(`ws blast: ${ev.data}, got ${count}`));
      else resolve({ count, ms, bytes });
    };
    c.sock.send(`blast ${n}`);
  });
}

// --diag: count the browser API calls the runtime makes (wrapped prototypes).
const calls = {};
const unwraps = [];
function countCalls() {
  const wrap = (proto, name, label) => {
    const f = proto && proto[name];
    if (typeof f !== 'function') return;
    unwraps.push(() => {
      proto[name] = f;
    });
    proto[name] = function (...a) {
      calls[label] = (calls[label] || 0) + 1;
      return f.apply(this, a);
    };
  };
  wrap(WritableStreamDefaultWriter.prototype, 'write', 'writer.write');
  wrap(WritableStreamDefaultWriter.prototype, 'close', 'writer.close');
  wrap(ReadableStreamBYOBReader.prototype, 'read', 'byob.read');
  wrap(ReadableStreamDefaultReader.prototype, 'read', 'reader.read');
  wrap(WebTransport.prototype, 'createBidirectionalStream', 'wt.createBidi');
  wrap(WebTransport.prototype, 'createUnidirectionalStream', 'wt.createUni');
  wrap(MessagePort.prototype, 'postMessage', 'port.postMessage');
  wrap(WebSocket.prototype, 'send', 'ws.send');
  wrap(globalThis, 'setTimeout', 'setTimeout');
  wrap(globalThis, 'clearTimeout', 'clearTimeout');
  wrap(globalThis, 'queueMicrotask', 'queueMicrotask');
  wrap(Performance.prototype, 'now', 'performance.now');
}
async function counted(n, fn) {
  const before = { ...calls };
  const r = await fn();
  const per = {};
  for (const k of Object.keys(calls)) {
    const d = calls[k] - (before[k] || 0);
    if (d) per[k] = Math.round((d / n) * 100) / 100;
  }
  return { r, per };
}

// ------------------------------------------------------------ the run
async function run(p) {
  if (p.diag) countCalls();
  const rounds = [];
  const payload = new Uint8Array(62).fill(0x42); // msgpack bin 8: 2 + 62 = 64 bytes
  const wsPayload = new Uint8Array(64).fill(0x42);
  await starlingConnect();
  const ws = await wsConnect(WS_URL);
  const wss = WSS_URL ? await wsConnect(WSS_URL) : null;
  const info = { crossOriginIsolated: self.crossOriginIsolated, nodeId: node.id, userAgent: navigator.userAgent };
  // warm-up of both paths (JIT, streams, congestion windows)
  await starlingAsks(p.warmup, payload);
  await wsAsks(ws, p.warmup, wsPayload);
  if (wss) await wsAsks(wss, p.warmup, wsPayload);
  await starlingBlast(Math.min(p.msgs, 20000));
  await wsBlast(ws, Math.min(p.wsMsgs, 20000));
  if (wss) await wsBlast(wss, Math.min(p.wsMsgs, 20000));
  await starlingPingPong(p.warmup, payload);
  // Rounds stop early (at least one runs) when the next one would end after
  // p.budgetMs from the start: the whole run stays bounded on a busy machine.
  const start = performance.now();
  for (let r = 0; r < p.rounds; r++) {
    const spent = performance.now() - start;
    if (r && spent + spent / r > p.budgetMs) break;
    const round = {};
    if (p.rtt && p.blocks > 1) {
      // Interleaved: the ways take turns in blocks, so that all of them
      // see the same machine (a shared 2-core machine changes its speed by
      // tens of percent within seconds); the CPU marks then cover them all.
      await mark(`r${r} rtt (interleaved)`);
      const per = Math.ceil(p.asks / p.blocks);
      const acc = { starling_rtt: [], ws_rtt: [], wss_rtt: [], starling_pingpong: [], raw_wt: [] };
      // the raw WebTransport echo: Chromium's WebTransport with no Starling
      const raw = p.wtUrl ? await rawSession(p.wtUrl) : null;
      if (raw) await raw.rtt(Math.min(p.warmup, 1000));
      for (let b = 0; b < p.blocks; b++) {
        if (raw) acc.raw_wt.push(await raw.rtt(per));
        acc.starling_rtt.push(await starlingAsks(per, payload));
        acc.ws_rtt.push(await wsAsks(ws, per, wsPayload));
        if (wss) acc.wss_rtt.push(await wsAsks(wss, per, wsPayload));
        acc.starling_pingpong.push(await starlingPingPong(per, payload));
      }
      if (raw) raw.close();
      for (const k of Object.keys(acc)) if (acc[k].length) round[k] = summary(concat(acc[k]));
    } else if (p.rtt) {
      await mark(`r${r} starling_rtt`);
      round.starling_rtt = summary(await starlingAsks(p.asks, payload));
      await mark(`r${r} ws_rtt`);
      round.ws_rtt = summary(await wsAsks(ws, p.asks, wsPayload));
      if (wss) {
        await mark(`r${r} wss_rtt`);
        round.wss_rtt = summary(await wsAsks(wss, p.asks, wsPayload));
      }
      await mark(`r${r} starling_pingpong`);
      round.starling_pingpong = summary(await starlingPingPong(p.asks, payload));
    }
    if (p.tp) {
      await mark(`r${r} starling_tp`);
      const s = await starlingBlast(p.msgs);
      round.starling_tp = { msgs_per_s: s.count / (s.ms / 1000), ms: s.ms, count: s.count };
      await mark(`r${r} ws_tp`);
      const w = await wsBlast(ws, p.wsMsgs);
      round.ws_tp = { msgs_per_s: w.count / (w.ms / 1000), ms: w.ms, count: w.count };
      if (wss) {
        await mark(`r${r} wss_tp`);
        const x = await wsBlast(wss, p.wsMsgs);
        round.wss_tp = { msgs_per_s: x.count / (x.ms / 1000), ms: x.ms, count: x.count };
      }
    }
    await mark(`r${r} end`);
    rounds.push(round);
  }
  if (p.diag) {
    const d = (info.diag = {});
    d.macrotask_hop = summary(await macrotaskHops(p.asks));
    const n = Math.min(p.asks, 2000);
    d.calls_per_ask = (await counted(n, () => starlingAsks(n, payload))).per;
    d.calls_per_pingpong = (await counted(n, () => starlingPingPong(n, payload))).per;
    d.calls_per_ws_rtt = (await counted(n, () => wsAsks(ws, n, wsPayload))).per;
    d.calls_per_blast_msg = (await counted(p.msgs, () => starlingBlast(p.msgs))).per;
    for (const u of unwraps) u(); // the profiles below see the real callers
    if (p.wtUrl) {
      await mark('diag raw_wt_one_stream');
      const a = await rawWT(p.wtUrl, p.asks, 'one');
      d.raw_wt_one_stream = summary(a.times);
      for (const mode of ['byob', 'uni', 'uni-byob']) {
        await mark(`diag raw_wt_${mode}`);
        d[`raw_wt_${mode}`] = summary((await rawWT(p.wtUrl, p.asks, mode)).times);
      }
      await mark('diag raw_wt_stream_per_rtt');
      const b = await rawWT(p.wtUrl, p.asks, 'per');
      d.raw_wt_stream_per_rtt = { ...summary(b.times), open: b.open, echo: b.first };
      await mark('diag raw_wt_prestream_per_rtt');
      const c = await rawWT(p.wtUrl, p.asks, 'pre');
      d.raw_wt_prestream_per_rtt = { ...summary(c.times), open: c.open, echo: c.first };
    }
    await mark('diag profiled asks');
    const pa = await profiled(() => starlingAsks(p.asks, payload));
    d.starling_rtt_profiled = summary(pa.result);
    d.profile_asks = pa.profile;
    const pw = await profiled(() => wsAsks(ws, p.asks, wsPayload));
    d.profile_ws = pw.profile;
    await mark('diag profiled blast');
    const pb = await profiled(() => starlingBlast(p.msgs));
    d.starling_blast_profiled = pb.result.count / (pb.result.ms / 1000);
    d.profile_blast = pb.profile;
    await mark('diag end');
  }
  info.stats = node.stats();
  ws.sock.close();
  if (wss) wss.sock.close();
  await node.shutdown();
  return { rounds, info };
}

let reported = false;
function report(r) {
  if (reported) return;
  reported = true;
  post('/result', JSON.stringify(r));
}
const errText = (e) => String(e && e.stack ? e.stack : e);
window.addEventListener('error', (ev) => report({ error: `page error: ${errText(ev.error || ev.message)}` }));
window.addEventListener('unhandledrejection', (ev) => report({ error: `unhandled rejection: ${errText(ev.reason)}` }));
run(JSON.parse(q.get('params'))).then(report, (e) => report({ error: errText(e) }));
