// cluster_page.mjs: a page whose agents join a Starling cluster through
// tests/gateway_peer (run by cluster_test.mjs, which serves this page and the
// wasm build). Every check is recorded in window.__results as
// {name, ok, detail}; window.harness(cmd) (a playwright binding) asks the
// harness to act on the native side: 'restart' kills the gateway process and
// starts it again on the same port and certificate.
import { Starling, StarlingError } from '/dist/starling.js';

const q = new URLSearchParams(location.search);
const PORT = Number(q.get('port'));
const HASH = q.get('hash');
const TOKEN = q.get('token');
const MODE = q.get('mode') || 'full';
const URL_OK = `https://127.0.0.1:${PORT}/starling`;

const T = { PROBE: 1, BULK: 10, URGENT: 11, QUESTION: 20, ANSWER: 21, IGNORED: 22, IGNORED_RESULT: 23, DGRAM: 30, SCRIPT_DONE: 31 };

const results = [];
const notes = [];
function check(name, ok, detail) {
  results.push({ name, ok: !!ok, detail: ok ? undefined : detail });
}
function note(s) {
  notes.push(s);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms, step = 20) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (pred()) return true;
    await sleep(step);
  }
  return pred();
}
async function rejects(p) {
  try {
    await p;
    return null;
  } catch (e) {
    return e;
  }
}

// A wrong token, or a page whose origin the gateway does not allow: refused.
async function refused(token, name) {
  const t0 = performance.now();
  const err = await rejects(Starling.connect({ url: URL_OK, certificateHash: HASH, token, connectTimeoutMs: 2500, reconnectMinMs: 200 }));
  check(name, err instanceof StarlingError && err.code === 'SL_ERR_TIMEOUT', `connect gave ${err && (err.code || err)} after ${Math.round(performance.now() - t0)} ms`);
}

async function full() {
  await refused('wrong-token', 'a wrong token is refused (no welcome, connect rejects)');

  const peers = [];
  const node = await Starling.connect({
    url: `${URL_OK}?token=${encodeURIComponent(TOKEN)}`,
    certificateHash: HASH,
    reconnectMinMs: 100,
    reconnectMaxMs: 400,
    onPeer: (id, up) => peers.push({ id, up }),
  });
  const gw = node.gateway;
  check('connect: the gateway assigns the node id', /^[0-9a-f]{16}$/.test(node.id) && gw && node.id !== gw, `id ${node.id} gateway ${gw}`);
  const ex = node.exposed();
  check('the exposed list arrives with the welcome', ['echo', 'silent', 'prober', 'blaster', 'far-echo'].every((n) => ex.has(n)) && !ex.has('secret'), JSON.stringify([...ex]));
  const echo = ex.get('echo');
  const far = ex.get('far-echo');

  // asks from the browser
  const v = { hello: 'native', n: [1, 2, 3], big: 2n ** 60n };
  const r = await node.ask(echo, v, { deadlineMs: 3000 });
  check('ask browser -> native: reply', r && r.hello === 'native' && r.n.length === 3 && r.big === 2n ** 60n, JSON.stringify(r, (k, x) => (typeof x === 'bigint' ? String(x) : x)));
  const rf = await node.ask(far, 'via gateway', { deadlineMs: 3000 });
  check('ask browser -> node behind the gateway (relayed): reply', rf === 'via gateway', String(rf));
  const t0 = performance.now();
  const et = await rejects(node.ask(ex.get('silent'), 1, { deadlineMs: 300 }));
  const took = performance.now() - t0;
  check('ask browser -> native with a timeout: SL_ERR_TIMEOUT at the deadline', et && et.code === 'SL_ERR_TIMEOUT' && took >= 280 && took < 2000, `${et && et.code} after ${Math.round(took)} ms`);
  const secret = q.get('secret');
  const ef = await rejects(node.ask(secret, 1, { deadlineMs: 1000 }));
  check('an actor that was not exposed: SL_ERR_FORBIDDEN', ef && ef.code === 'SL_ERR_FORBIDDEN', String(ef && (ef.code || ef)));
  let sendErr = null;
  try {
    node.send(secret, 1);
  } catch (e) {
    sendErr = e;
  }
  check('a send to an actor that was not exposed: SL_ERR_FORBIDDEN', sendErr && sendErr.code === 'SL_ERR_FORBIDDEN', String(sendErr));

  // messages both ways, priorities, datagrams, a native monitor of us
  const got = [];
  const x = node.spawn({
    onStart(ctx) {
      this.ref = ctx.monitor(echo);
    },
    onMessage(ctx, m) {
      if (m.kind === 'ask' && m.type === T.QUESTION) {
        ctx.reply(m, m.value + 1);
        return;
      }
      if (m.kind === 'ask') return; // IGNORED: never answered, the native side times out
      got.push({ kind: m.kind, type: m.type, prio: m.prio, value: m.value, from: m.from, reason: m.reason });
    },
  });
  // echo sends back what a browser actor sends it (same type and class)
  const sender = node.spawn({
    onMessage(ctx, m) {
      if (m.kind === 'send' && m.type === 99) got.push({ kind: 'echoed', type: m.type, prio: m.prio, value: m.value, from: m.from });
      if (m.kind === 'send' && m.type === 98) got.push({ kind: 'echoed-dgram', value: m.value });
      if (m.kind === 'send' && m.type === 1) {
        ctx.send(echo, { ping: 1 }, { type: 99, prio: 'high' });
        const max = ctx.node.unreliableMax(echo);
        got.push({ kind: 'umax', value: max });
        for (let i = 0; i < 20; i++) ctx.sendUnreliable(echo, i, { type: 98 });
      }
    },
  });
  node.send(sender, 0, { type: 1 });
  await until(() => got.some((g) => g.kind === 'echoed') && got.filter((g) => g.kind === 'echoed-dgram').length >= 20, 3000);
  const e1 = got.find((g) => g.kind === 'echoed');
  check('message browser -> native and back: type, class, value kept', e1 && e1.prio === 'high' && e1.value.ping === 1 && e1.from === echo, JSON.stringify(e1));
  const umax = got.find((g) => g.kind === 'umax');
  const dg = got.filter((g) => g.kind === 'echoed-dgram').length;
  check('datagrams browser -> native -> browser (unreliable both ways)', umax && umax.value > 100 && dg >= 15, `max ${umax && umax.value}, ${dg}/20 came back`);

  // the native node restarts: DOWN for the monitored agent, then reconnect with the same id
  got.length = 0;
  peers.length = 0;
  const idBefore = node.id;
  await window.harness('restart');
  const down = await until(() => got.some((g) => g.kind === 'down'), 8000);
  const d = got.find((g) => g.kind === 'down');
  check('native node killed: the browser agent monitoring it gets DOWN(noconnection)', down && d.from === echo && d.reason === 'noconnection', JSON.stringify(got));
  const back = await until(() => peers.some((p) => p.id === gw && p.up), 10000);
  check('the browser node reconnects to the restarted gateway', back && peers.some((p) => p.id === gw && !p.up), JSON.stringify(peers));
  const ex2 = node.exposed();
  const echo2 = ex2.get('echo');
  const r2 = back ? await rejects(node.ask(echo2, 'again', { deadlineMs: 3000 }).then((v2) => { if (v2 !== 'again') throw new Error(String(v2)); })) : 'no reconnect';
  check('after reconnecting: same node id, asks work', node.id === idBefore && r2 === null, `${node.id} vs ${idBefore}: ${r2}`);
  // the native prober's script (see tests/gateway_peer.c), for an agent of ours
  got.length = 0;
  const proberFrom = node.spawn({
    onStart(ctx) {
      ctx.send(node.exposed().get('prober'), null, { type: T.PROBE });
    },
    onMessage(ctx, m) {
      if (m.kind === 'ask' && m.type === T.QUESTION) ctx.reply(m, m.value + 1);
      else if (m.kind !== 'ask') got.push({ kind: m.kind, type: m.type, prio: m.prio, value: m.value });
    },
  });
  void proberFrom;
  await until(() => got.some((g) => g.type === T.SCRIPT_DONE), 8000);
  // datagrams travel apart from the stream that carries SCRIPT_DONE
  await until(() => got.filter((g) => g.type === T.DGRAM).length >= 20, 1000);
  const bulk = got.map((g, i) => [g.type, i]).filter(([t]) => t === T.BULK);
  const urgentAt = got.findIndex((g) => g.type === T.URGENT);
  const lastBulk = bulk.length ? bulk[bulk.length - 1][1] : -1;
  check('native -> browser messages arrive (16 BACKGROUND bulk of 128 KiB)', bulk.length === 16, `${bulk.length} bulk`);
  check('priority: a CRITICAL sent after queued BACKGROUND bulk overtakes it', urgentAt >= 0 && urgentAt < lastBulk, `urgent at ${urgentAt}, last bulk at ${lastBulk}`);
  const ans = got.find((g) => g.type === T.ANSWER);
  check('ask native -> browser: the browser agent replied (43)', ans && ans.value === 43, JSON.stringify(ans));
  const ign = got.find((g) => g.type === T.IGNORED_RESULT);
  check('ask native -> browser with a timeout: the native asker got SL_ERR_TIMEOUT (-5)', ign && ign.value === -5, JSON.stringify(ign));
  const done = got.find((g) => g.type === T.SCRIPT_DONE);
  const dgr = got.filter((g) => g.type === T.DGRAM).length;
  check('datagrams native -> browser', done && done.value > 0 && dgr > 0 && dgr <= done.value, `${dgr} of ${done && done.value}`);

  void x;
  window.__node = node;
}

try {
  if (MODE === 'refused') await refused(TOKEN, 'a page from an origin the gateway does not allow is refused');
  else await full();
} catch (e) {
  check('no exception', false, String(e && e.stack ? e.stack : e));
}
window.__notes = notes;
window.__results = results;
