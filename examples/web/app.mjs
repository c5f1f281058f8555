// app.mjs: the page of act 3 of `make demo`. It loads the Starling runtime
// (WebAssembly, /dist/starling.js), joins the demo cluster through the
// gateway over WebTransport, and runs two kinds of agents:
//
//  - a viewer: subscribes to the hub's dispatcher (exposed by the gateway),
//    which then sends it a log of what it does and the cluster's state
//    twice a second; the page draws both;
//  - browser workers (one at start, more with the button): each joins the
//    dispatcher (an ask), answers its task asks after the task's work time
//    with the FNV-1a chain the dispatcher checks, and sends telemetry every
//    250 ms as unreliable messages (WebTransport datagrams).
//
// The message types match examples/browser_demo.c. window.demo exposes the
// page's state for tests/browser_demo_test.sh.
import { Starling } from '/dist/starling.js';

const T = { JOIN: 1, TASK: 2, TELEMETRY: 3, SUBSCRIBE: 4, EVENT: 5, STATE: 6, RATE: 7, BURST: 8, TICK: 101 };
const WORK_ROUNDS = 100000;
const LOG_MAX = 200;
const TELEMETRY_EVERY_MS = 250;

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const demo = { ready: false, error: null, node: null, gateway: null, workers: [], state: null, dispatcherDown: false, ended: false };
window.demo = demo;

// The task's result: FNV-1a of "task-<n>", then WORK_ROUNDS rounds feeding the
// hash its own 4 bytes (32-bit arithmetic, as the C side does).
function taskResult(n) {
  let h = 0x811c9dc5;
  const s = `task-${n}`;
  for (let i = 0; i < s.length; i++) {
    h = (h ^ s.charCodeAt(i)) >>> 0;
    h = Math.imul(h, 16777619) >>> 0;
  }
  for (let r = 0; r < WORK_ROUNDS; r++) {
    const x = h;
    for (let j = 0; j < 4; j++) {
      h = (h ^ ((x >>> (8 * j)) & 0xff)) >>> 0;
      h = Math.imul(h, 16777619) >>> 0;
    }
  }
  return h;
}

// ------------------------------------------------------------------ logs
let paused = false;
$('pause').addEventListener('change', (e) => (paused = e.target.checked));
const t0 = performance.now();
function stamp() {
  const s = (performance.now() - t0) / 1000;
  return s.toFixed(1).padStart(6, ' ') + 's';
}
function log(which, { dir = '', ev, prio, text }) {
  if (paused) return;
  const ol = $(which === 'local' ? 'log-local' : 'log-cluster');
  const li = document.createElement('li');
  li.className = 'fresh';
  const parts = [['t', stamp()], ['dir', dir], [`ev ${ev}`, ev]];
  for (const [cls, txt] of parts) {
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = txt;
    li.append(span);
  }
  if (prio) {
    const p = document.createElement('span');
    p.className = `prio ${prio}`;
    p.textContent = prio;
    li.append(p);
  }
  li.append(document.createTextNode(text));
  const atTop = ol.scrollTop < 8;
  ol.prepend(li);
  while (ol.children.length > LOG_MAX) ol.lastChild.remove();
  if (atTop) ol.scrollTop = 0;
}

function setStatus(cls, text) {
  const s = $('status');
  s.className = `status ${cls}`;
  s.textContent = text;
}

// ------------------------------------------------------------------ state
const PRIOS = ['critical', 'high', 'normal', 'low', 'background'];
function renderState(s) {
  demo.state = s;
  for (const k of ['created', 'done', 'verified', 'queued', 'inflight', 'reassigned', 'telemetry', 'viewers']) $(`c-${k}`).textContent = String(s[k] ?? 0);
  $('topo-hub').textContent = s.hub || '…';
  const bars = $('c-prio');
  const max = Math.max(1, ...(s.byPrio || []));
  bars.replaceChildren(
    ...PRIOS.map((p, i) => {
      const d = document.createElement('div');
      const n = (s.byPrio || [])[i] || 0;
      d.style.height = `${Math.max(2, (n / max) * 34)}px`;
      d.style.background = `var(--${p})`;
      d.title = `${p}: ${n}`;
      const label = document.createElement('span');
      label.textContent = String(n);
      d.append(label);
      return d;
    }),
  );
  if ($('rate') !== document.activeElement && s.rate !== undefined) {
    $('rate').value = String(s.rate);
    $('rate-out').textContent = `${s.rate}/s`;
  }
  const mine = new Map(demo.workers.map((w) => [w.name, w]));
  const rows = (s.workers || []).map(([name, where, node, up, inflight, done, telemetry]) => {
    const tr = document.createElement('tr');
    tr.dataset.worker = name;
    if (mine.has(name)) tr.classList.add('mine');
    if (!up) tr.classList.add('gone');
    const cells = [
      [name],
      [where, `pill ${where}`],
      [node, 'mono'],
      [up ? 'up' : 'down', `pill ${up ? 'up' : 'down'}`],
      [String(inflight)],
      [String(done), 'done'],
      [String(telemetry), 'telemetry'],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      if (cls && cls.startsWith('pill')) {
        const span = document.createElement('span');
        span.className = cls;
        span.textContent = text;
        td.append(span);
      } else {
        if (cls) td.className = cls;
        td.textContent = text;
      }
      tr.append(td);
    }
    const td = document.createElement('td');
    const w = mine.get(name);
    if (w && up && !w.stopped) {
      const b = document.createElement('button');
      b.className = 'small';
      b.textContent = 'stop';
      b.title = 'stop this worker agent: the dispatcher gets DOWN(normal)';
      b.addEventListener('click', () => stopWorker(w));
      td.append(b);
    }
    tr.append(td);
    return tr;
  });
  $('workers').tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ agents
let node = null;
let dispatcher = null;
let workerSeq = 0;

function viewerBehavior() {
  return {
    onStart(ctx) {
      this.ref = ctx.monitor(dispatcher);
      ctx.send(dispatcher, [], { type: T.SUBSCRIBE, prio: 'high' });
      log('local', { dir: '→', ev: 'subscribe', text: 'viewer subscribes to the dispatcher' });
    },
    onMessage(ctx, m) {
      if (m.kind === 'send' && m.type === T.STATE && m.value) renderState(m.value);
      else if (m.kind === 'send' && m.type === T.EVENT && m.value) {
        const e = m.value;
        log('cluster', { dir: e.ev === 'ask' ? '→' : e.ev === 'reply' || e.ev === 'fail' || e.ev === 'wrong' ? '←' : '•', ev: e.ev, prio: e.prio, text: e.text });
      } else if (m.kind === 'down' && m.from === dispatcher) {
        demo.dispatcherDown = true;
        log('local', { dir: '←', ev: 'down', text: `DOWN dispatcher: ${m.reason}` });
        setStatus('down', `the dispatcher is gone (${m.reason}): the demo has ended`);
      }
    },
  };
}

function workerBehavior(w) {
  return {
    async onStart(ctx) {
      ctx.monitor(dispatcher);
      ctx.sendEvery(ctx.self, TELEMETRY_EVERY_MS, null, { type: T.TICK, prio: 'low' });
      log('local', { dir: '→', ev: 'join', prio: 'high', text: `${w.name} asks the dispatcher to join` });
      try {
        const r = await ctx.ask(dispatcher, [w.name], { type: T.JOIN, prio: 'high', deadlineMs: 3000 });
        w.joined = true;
        log('local', { dir: '←', ev: 'join', text: `${w.name} joined as a ${r[1]} worker, ${r[2]} tasks in flight at most` });
      } catch (err) {
        log('local', { dir: '←', ev: 'fail', text: `${w.name}: join failed: ${err.code || err}` });
      }
    },
    onMessage(ctx, m) {
      if (m.kind === 'ask' && m.type === T.TASK && Array.isArray(m.value)) {
        const [task, workMs] = m.value;
        const key = `${m.from}/${m.corr}`;
        w.busy++;
        log('local', { dir: '←', ev: 'ask', prio: m.prio, text: `${w.name}: task #${task} (${workMs} ms of work)` });
        // The work: a timer stands for the time it takes, then the real computation.
        const timer = setTimeout(() => {
          w.jobs.delete(key);
          w.busy--;
          const result = taskResult(task);
          try {
            ctx.reply(m, [task, w.name, result]);
            w.done++;
            log('local', { dir: '→', ev: 'reply', prio: m.prio, text: `${w.name}: task #${task} = ${result.toString(16).padStart(8, '0')}` });
          } catch (err) {
            log('local', { dir: '→', ev: 'fail', text: `${w.name}: reply to task #${task} failed: ${err.code || err}` });
          }
        }, Math.min(Number(workMs) || 0, 10000));
        w.jobs.set(key, timer);
      } else if (m.kind === 'cancel') {
        const key = `${m.from}/${m.corr}`;
        const timer = w.jobs.get(key);
        if (timer !== undefined) {
          clearTimeout(timer);
          w.jobs.delete(key);
          w.busy--;
          log('local', { dir: '←', ev: 'cancel', text: `${w.name}: a task was cancelled (its deadline passed)` });
        }
      } else if (m.kind === 'send' && m.type === T.TICK && w.joined) {
        try {
          ctx.sendUnreliable(dispatcher, [w.name, w.telemetry + 1, w.busy, w.done], { type: T.TELEMETRY, prio: 'low' });
          w.telemetry++;
          if (w.telemetry % 40 === 1) log('local', { dir: '→', ev: 'telemetry', prio: 'low', text: `${w.name}: telemetry #${w.telemetry} (a datagram; ${node.unreliableMax(dispatcher)} B max)` });
        } catch (err) {
          w.telemetryRefused++;
        }
      } else if (m.kind === 'down' && m.from === dispatcher) {
        w.joined = false;
      }
    },
    onStop() {
      for (const timer of w.jobs.values()) clearTimeout(timer);
      w.jobs.clear();
      w.busy = 0;
    },
  };
}

function addWorker() {
  const w = { name: `browser-${node.id.slice(-4)}.${++workerSeq}`, id: null, joined: false, stopped: false, busy: 0, done: 0, telemetry: 0, telemetryRefused: 0, jobs: new Map() };
  demo.workers.push(w);
  w.id = node.spawn(workerBehavior(w));
  $('topo-tab-agents').textContent = ['viewer', ...demo.workers.filter((x) => !x.stopped).map((x) => x.name)].join(' · ');
  return w;
}

function stopWorker(w) {
  if (w.stopped) return;
  w.stopped = true;
  node.stopActor(w.id, 'normal');
  log('local', { dir: '•', ev: 'stop', text: `${w.name} stopped: the dispatcher gets DOWN(normal)` });
  $('topo-tab-agents').textContent = ['viewer', ...demo.workers.filter((x) => !x.stopped).map((x) => x.name)].join(' · ');
}

// ------------------------------------------------------------------ start
async function config() {
  for (let i = 0; i < 50; i++) {
    const r = await fetch('/config.json', { cache: 'no-store' });
    if (r.ok) return r.json();
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('the demo gave no configuration (/config.json): is the gateway running?');
}

let away = null; // the status updater while the gateway is away

async function main() {
  if (typeof WebTransport === 'undefined') throw new Error('this browser has no WebTransport: use Chromium or Chrome (or Firefox 114+), on http://127.0.0.1');
  const cfg = await config();
  setStatus('connecting', `joining the cluster through the gateway ${cfg.url} …`);
  node = await Starling.connect({
    url: cfg.url,
    certificateHash: cfg.certificateHash,
    token: cfg.token,
    reconnectMinMs: 500,
    reconnectMaxMs: 5000,
    onPeer: (peer, up) => {
      if (peer !== node?.gateway) return;
      clearInterval(away);
      if (up) setStatus('up', `connected: browser node ${node.id} via gateway ${peer}`);
      else {
        demo.ended = true;
        setStatus('down', 'the gateway closed the session: the demo has ended (or restarts: this tab retries)');
        log('local', { dir: '•', ev: 'down', text: `gateway ${peer} down` });
        // while it is away, say how the reconnects end
        away = setInterval(() => {
          const f = node.connectFailure();
          if (f) setStatus('down', `the gateway is away: ${f.failures} reconnect attempt${f.failures === 1 ? '' : 's'} failed (${f.code}${f.reason ? `: ${f.reason}` : ''}); this tab keeps trying`);
        }, 1000);
      }
    },
  });
  demo.node = node.id;
  demo.gateway = node.gateway;
  dispatcher = node.exposed().get('dispatcher');
  if (!dispatcher) throw new Error('the gateway exposes no "dispatcher"');
  $('topo-tab').textContent = node.id;
  $('topo-gw').textContent = `${node.gateway} · 127.0.0.1:${cfg.port}`;
  setStatus('up', `connected: browser node ${node.id} via gateway ${node.gateway}`);
  log('local', { dir: '•', ev: 'connect', text: `joined: this tab is browser node ${node.id}; dispatcher is ${dispatcher}` });

  node.spawn(viewerBehavior());
  const initial = q.has('workers') ? Math.max(0, Math.min(8, Number(q.get('workers')) || 0)) : 1;
  for (let i = 0; i < initial; i++) addWorker();

  $('add').disabled = false;
  $('burst').disabled = false;
  $('rate').disabled = false;
  $('add').addEventListener('click', () => addWorker());
  $('burst').addEventListener('click', () => {
    node.send(dispatcher, [20], { type: T.BURST, prio: 'high' });
    log('local', { dir: '→', ev: 'burst', prio: 'high', text: 'asked the dispatcher for a burst of 20 tasks' });
  });
  $('rate').addEventListener('input', (e) => ($('rate-out').textContent = `${e.target.value}/s`));
  $('rate').addEventListener('change', (e) => {
    const r = Number(e.target.value);
    node.send(dispatcher, [r], { type: T.RATE, prio: 'high' });
    log('local', { dir: '→', ev: 'rate', prio: 'high', text: `asked the dispatcher for ${r} tasks per second` });
  });
  demo.ready = true;
}

main().catch((err) => {
  demo.error = String(err && err.message ? err.message : err);
  setStatus('down', `could not join: ${demo.error}`);
  console.error(err);
});
