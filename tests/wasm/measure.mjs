// measure.mjs: what a message costs across the C/JS boundary. Small and
// quick (well under a second), printed for the record, never asserted: the
// machines that run the tests are shared.

async function timeIt(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function measure(api, N = 20000, rounds = 4) {
  // The first rounds pay for JIT compilation and for growing the wasm
  // memory; report the best round.
  const best = {};
  for (let r = 0; r < rounds; r++) {
    for (const [k, v] of Object.entries(await once(api, N))) best[k] = Math.min(best[k] ?? Infinity, v);
  }
  const out = {};
  for (const [k, v] of Object.entries(best)) out[k] = k.includes('ask/reply') ? `${v.toFixed(1)} us/ask` : `${v.toFixed(0)} ns/msg`;
  return out;
}

async function once(api, N) {
  const { Starling } = api;
  const node = await Starling.create({ mailboxCapacity: N + 16 });
  const out = {};

  // One-way JS -> JS: encode, copy into wasm memory, enqueue (C), dispatch
  // through the import, read the sl_msg, decode.
  for (const [label, value] of [['no payload', undefined], ['small map', { i: 1, s: 'abc' }]]) {
    let got = 0;
    let done;
    const finished = new Promise((r) => (done = r));
    const sink = node.spawn({ onMessage: () => ++got === N && done() });
    const ms = await timeIt(async () => {
      node.spawn({
        onStart(ctx) {
          for (let i = 0; i < N; i++) ctx.send(sink, value);
        },
      });
      await finished;
    });
    out[`js->js one-way, ${label}`] = (ms * 1e6) / N;
  }

  // JS -> C (echo) -> JS: two crossings per message.
  {
    const echo = node.spawn('echo', { mailboxCapacity: N + 16 });
    let got = 0;
    let done;
    const finished = new Promise((r) => (done = r));
    const ms = await timeIt(async () => {
      node.spawn({
        onStart(ctx) {
          for (let i = 0; i < N; i++) ctx.send(echo, i);
        },
        onMessage: () => ++got === N && done(),
      });
      await finished;
    });
    out['js->c->js round trip, small int'] = (ms * 1e6) / N;
  }

  // Ask/reply between two JS actors, one at a time: includes a promise and a
  // macrotask per round trip (what a chatty request/response costs).
  {
    const replier = node.spawn({ onMessage: (ctx, m) => m.kind === 'ask' && ctx.reply(m, m.value) });
    const M = 500;
    const ms = await timeIt(async () => {
      for (let i = 0; i < M; i++) await node.ask(replier, i);
    });
    out['ask/reply js<->js, sequential'] = (ms * 1e3) / M;
  }
  await node.shutdown();
  return out;
}
