// node_test.mjs BUILD_WASM_DIR: the WASM module under Node.js.
//   - actor scenarios (scenarios.mjs): JS and C actors, asks, timeouts,
//     monitors, links, priorities, timers, registry, yielding, shutdown;
//   - the JS codec (codec.mjs) against every vector of schemas/vectors.json,
//     hostile inputs, and against the C validator of the same module;
//   - what a message costs across the C/JS boundary (printed, not asserted).
// Exits non-zero if any check failed. The process must also end by itself:
// a node that leaked a timer or a macrotask would keep it alive (ctest's
// timeout then fails the test).
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { recorder, cValidator } from './harness.mjs';
import { actorScenarios } from './scenarios.mjs';
import { codecTests } from './codec.mjs';
import { measure } from './measure.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.argv[2] || path.join(here, '../../build-wasm'));
const api = await import(pathToFileURL(path.join(dist, 'starling.js')).href);
const { default: createCore } = await import(pathToFileURL(path.join(dist, 'starling-core.mjs')).href);
const vectors = JSON.parse(await readFile(path.join(here, '../../schemas/vectors.json'), 'utf8'));

// starling.d.ts declares exactly what starling.js exports, and the members
// of StarlingNode and ActorContext are the public members of the objects.
async function declarationsMatch(api, t) {
  const dts = await readFile(path.join(dist, 'starling.d.ts'), 'utf8');
  const declared = new Set([...dts.matchAll(/^export (?:declare )?(?:const|function|class) (\w+)/gm)].map((m) => m[1]));
  if (/^export default /m.test(dts)) declared.add('default');
  t.eq([...declared].sort().join(' '), Object.keys(api).sort().join(' '), 'starling.d.ts declares exactly the exports of starling.js');
  const members = (name) => {
    const m = dts.match(new RegExp(`^export interface ${name} \\{\\n([\\s\\S]*?)^\\}`, 'm'));
    return m ? [...m[1].matchAll(/^  (?:readonly )?(\w+)[?]?[(<:]/gm)].map((x) => x[1]).sort().join(' ') : '';
  };
  const pub = (o) => [...new Set([...Object.keys(o), ...Object.getOwnPropertyNames(Object.getPrototypeOf(o))])]
    .filter((k) => !k.startsWith('_') && k !== 'constructor').sort().join(' ');
  const node = await api.Starling.create();
  let ctx = null;
  node.spawn({ onStart: (c) => { ctx = c; } });
  t.eq(members('StarlingNode'), pub(node), 'StarlingNode in starling.d.ts matches the node object');
  t.eq(members('ActorContext'), pub(ctx), 'ActorContext in starling.d.ts matches the context object');
  await node.shutdown();
}

const t = recorder();
const cCheck = await cValidator(createCore, { wasmBinary: await readFile(path.join(dist, 'starling-core.wasm')) });
codecTests(api, vectors, t, cCheck);
await actorScenarios(api, t);
await declarationsMatch(api, t);
const cost = await measure(api);

let failed = 0;
for (const r of t.results) {
  if (!r.ok) {
    failed++;
    console.log(`FAIL ${r.name}${r.detail ? `\n     ${r.detail.replace(/\n/g, '\n     ')}` : ''}`);
  }
}
for (const n of t.notes) console.log(`note: ${n}`);
for (const [k, v] of Object.entries(cost)) console.log(`cost: ${k}: ${v}`);
console.log(`wasm node test: ${t.results.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
