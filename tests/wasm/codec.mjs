// codec.mjs: the JS msgpack codec, envelope and framing against
// schemas/vectors.json (every vector, both directions where a vector gives
// bytes for a value), hostile inputs, canonical encodings and round trips.
// Run by node_test.mjs and by the Chromium page. `cCheck(bytes, limits)`,
// when given, is the C validator (sl_msgpack_check in the wasm module): the
// JS decoder must agree with it on every input tried here.

const hex = (s) => new Uint8Array((s.match(/../g) || []).map((x) => parseInt(x, 16)));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

// sl_limits fields of a vector (snake_case) as the JS options (camelCase).
function jsLimits(l) {
  if (!l) return undefined;
  const map = { max_depth: 'maxDepth', max_size: 'maxSize', max_elements: 'maxElements', max_str_len: 'maxStrLen', max_bin_len: 'maxBinLen', max_ext_len: 'maxExtLen', ext_allow: 'extAllow' };
  const out = {};
  for (const [k, v] of Object.entries(l)) {
    if (!map[k]) throw new Error(`unknown limit in vectors.json: ${k}`);
    out[map[k]] = v;
  }
  return out;
}

function codeOf(fn) {
  try {
    fn();
    return null;
  } catch (err) {
    return err && err.code ? err.code : `threw ${err}`;
  }
}

// Deep equality that knows BigInt, Uint8Array, Map, Ext and NaN/-0.
function same(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== typeof b) return false;
  if (a instanceof Uint8Array) return b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    const ea = [...a], eb = [...b];
    return ea.every(([k, v], i) => same(k, eb[i][0]) && same(v, eb[i][1]));
  }
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object') {
    if (a.constructor !== b.constructor && !(Object.getPrototypeOf(a) === null || Object.getPrototypeOf(b) === null)) return false;
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
  }
  return false;
}

// A small deterministic PRNG (xorshift32) so failures are reproducible.
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export function codecTests(api, vectors, t, cCheck) {
  const { encode, decode, check, Ext, encodeEnvelope, decodeEnvelope, writeFrameHeader, readFrameHeader } = api;

  // ---- msgpack vectors: check, decode, and back to bytes
  const nonCanonical = new Set(['scalars', 'array16-and-map16']); // float 32, wide headers
  let n = 0;
  for (const v of vectors.msgpack) {
    const bytes = hex(v.hex);
    const lim = jsLimits(v.limits);
    const want = v.ok ? null : v.error;
    t.eq(check(bytes, lim), want, `msgpack vector ${v.name}: check`);
    t.eq(codeOf(() => decode(bytes, { limits: lim })), want, `msgpack vector ${v.name}: decode`);
    if (v.ok) {
      const value = decode(bytes, { limits: lim });
      const again = encode(value);
      if (nonCanonical.has(v.name)) {
        t.ok(same(decode(again, { limits: lim }), value), `msgpack vector ${v.name}: value round trip`);
      } else {
        t.eq(toHex(again), v.hex, `msgpack vector ${v.name}: encode(decode(hex)) == hex`);
      }
    }
    n++;
  }
  t.ok(n === vectors.msgpack.length && n > 0, `all ${n} msgpack vectors checked`);

  // ---- envelope vectors: decode, and encode back to the canonical bytes
  for (const v of vectors.envelope) {
    const bytes = hex(v.hex);
    const lim = jsLimits(v.limits);
    const impliedTo = BigInt(v.implied_to_node);
    const impliedFrom = BigInt(v.implied_from_node);
    if (v.error) {
      t.eq(codeOf(() => decodeEnvelope(bytes, impliedTo, impliedFrom, lim)), v.error, `envelope vector ${v.name}: error`);
      continue;
    }
    let e;
    try {
      e = decodeEnvelope(bytes, impliedTo, impliedFrom, lim);
    } catch (err) {
      t.ok(false, `envelope vector ${v.name}: decode`, String(err && err.code));
      continue;
    }
    const x = v.envelope;
    const fields = [
      ['prio', e.prio, x.prio], ['kind', e.kind, x.kind], ['flags', e.flags, x.flags], ['type', e.type, x.type],
      ['to.node', e.to.node, BigInt(x.to.node)], ['to.local', e.to.local, BigInt(x.to.local)],
      ['from.node', e.from.node, BigInt(x.from.node)], ['from.local', e.from.local, BigInt(x.from.local)],
      ['corr', e.corr, BigInt(x.corr)], ['status', e.status, x.status], ['code', e.code, x.code],
      ['payload', toHex(e.payload), x.payload],
    ];
    const bad = fields.filter(([, a, b]) => a !== b).map(([k, a, b]) => `${k}: ${a} != ${b}`);
    t.eq(bad.join('; '), '', `envelope vector ${v.name}: fields`);
    const out = encodeEnvelope({ ...e, payload: hex(x.payload) }, impliedTo, impliedFrom);
    t.eq(toHex(out), v.canonical_hex || v.hex, `envelope vector ${v.name}: encode`);
  }
  t.ok(vectors.envelope.length > 0, `all ${vectors.envelope.length} envelope vectors checked`);

  // ---- frame vectors
  for (const v of vectors.frame) {
    const bytes = hex(v.hex);
    const max = v.max_frame !== undefined ? BigInt(v.max_frame) : undefined;
    if (v.error) {
      t.eq(codeOf(() => readFrameHeader(bytes, max)), v.error, `frame vector ${v.name}: error`);
      continue;
    }
    const r = readFrameHeader(bytes, max);
    t.ok(r && r.length === BigInt(v.length) && r.headerLength === bytes.length, `frame vector ${v.name}: read`, JSON.stringify(r, (k, x) => (typeof x === 'bigint' ? String(x) : x)));
    t.eq(toHex(writeFrameHeader(BigInt(v.length))), v.canonical_hex || v.hex, `frame vector ${v.name}: write`);
  }
  t.eq(readFrameHeader(hex('c00000')), null, 'frame header: incomplete varint needs more bytes');
  t.ok(vectors.frame.length > 0, `all ${vectors.frame.length} frame vectors checked`);

  // ---- canonical integers, as msgpack-c writes them
  const ints = [
    [0, '00'], [127, '7f'], [128, 'cc80'], [255, 'ccff'], [256, 'cd0100'], [65535, 'cdffff'], [65536, 'ce00010000'],
    [2 ** 32 - 1, 'ceffffffff'], [2 ** 32, 'cf0000000100000000'], [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    [-1, 'ff'], [-32, 'e0'], [-33, 'd0df'], [-128, 'd080'], [-129, 'd1ff7f'], [-32768, 'd18000'], [-32769, 'd2ffff7fff'],
    [-(2 ** 31), 'd280000000'], [-(2 ** 31) - 1, 'd3ffffffff7fffffff'], [Number.MIN_SAFE_INTEGER, 'd3ffe0000000000001'],
    [2n ** 64n - 1n, 'cfffffffffffffffff'], [-(2n ** 63n), 'd38000000000000000'], [5n, '05'],
    [1.5, 'cb3ff8000000000000'], [-0, 'cb8000000000000000'], [2 ** 53, 'cb4340000000000000'],
    [null, 'c0'], [undefined, 'c0'], [true, 'c3'], [false, 'c2'], ['', 'a0'], ['a'.repeat(31), 'bf' + '61'.repeat(31)],
    ['a'.repeat(32), 'd920' + '61'.repeat(32)], [new Uint8Array(0), 'c400'], [[], '90'], [{}, '80'], [new Map(), '80'],
    [new Ext(1, new Uint8Array([9])), 'd40109'], [new Ext(-1, new Uint8Array(3)), 'c703ff000000'],
  ];
  for (const [val, h] of ints) t.eq(toHex(encode(val)), h, `canonical encoding of ${typeof val === 'bigint' ? `${val}n` : Object.is(val, -0) ? '-0' : JSON.stringify(val)}`);

  // ---- decoding of every format
  const dec = [
    ['ca3fc00000', 1.5], ['cf0020000000000000', 2n ** 53n], ['cf001fffffffffffff', 2 ** 53 - 1], ['d3ffe0000000000000', -(2n ** 53n)],
    ['d3ffe0000000000001', -(2 ** 53 - 1)], ['d3ffffffffffffffff', -1], ['d0ff', -1], ['d1ff00', -256], ['cd0100', 256],
    ['d90161', 'a'], ['da000161', 'a'], ['db0000000161', 'a'], ['c5000101', new Uint8Array([1])], ['c60000000101', new Uint8Array([1])],
    ['dc000101', [1]], ['dd0000000101', [1]], ['de0001a16101', { a: 1 }], ['df00000001a16101', { a: 1 }],
    ['82a16101a16202', { a: 1, b: 2 }], ['820102a16103', new Map([[1, 2], ['a', 3]])], ['a3e282ac', '€'], ['a2c328', '\ufffd('],
  ];
  for (const [h, want] of dec) t.ok(same(decode(hex(h)), want), `decode ${h}`);
  t.ok(decode(hex('82a16101a16202'), { maps: 'map' }) instanceof Map, "decode {maps: 'map'}");
  const proto = decode(hex('81a95f5f70726f746f5f5f81a17801'));
  t.ok(Object.getPrototypeOf(proto) === Object.prototype && proto.x === undefined && Object.keys(proto)[0] === '__proto__', 'a "__proto__" key is an own property, not the prototype');
  t.ok(same(decode(hex('d40105'), { limits: { extAllow: [1] } }), new Ext(1, new Uint8Array([5]))), 'an allowed ext decodes to Ext');

  // ---- round trips across the size boundaries of every format
  const r = rng(7);
  const str = (len) => Array.from({ length: len }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join('');
  const values = [
    str(0), str(31), str(32), str(255), str(256), str(65535), str(65536), str(5000), 'é'.repeat(3000), '😀 mixed ✓ ascii'.repeat(400),
    new Uint8Array(255), new Uint8Array(256), new Uint8Array(65535), new Uint8Array(65536),
    Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 65536 }, (_, i) => i & 1),
    Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])), new Map(Array.from({ length: 17 }, (_, i) => [i, [i]])),
    [1e300, -1e-300, Infinity, -Infinity, 0.1, 2 ** 63, -(2 ** 63)], [2n ** 63n, -(2n ** 63n) + 1n, 2n ** 64n - 1n, -(2n ** 53n) - 1n],
    { nested: { deeper: [{ and: [1, { deepest: true }] }] } },
  ];
  for (let i = 0; i < 200; i++) values.push(Array.from({ length: r() % 8 }, () => (r() % 2 ? r() - 2 ** 31 : str(r() % 40))));
  let rt = 0;
  for (const v of values) if (same(decode(encode(v)), v)) rt++;
  t.eq(rt, values.length, 'round trip of values across format boundaries');
  const nan = decode(encode(NaN));
  t.ok(Number.isNaN(nan), 'NaN round trip');
  t.eq(toHex(encode('\ud800x')), 'a4efbfbd78', 'a lone surrogate is encoded as U+FFFD (as TextEncoder does)');
  t.eq(toHex(encode('\ud83d\ude00'.repeat(1200)).subarray(0, 3)), 'da12c0', 'long strings get the shortest header (str 16 for 4800 bytes)');

  // ---- what the encoder refuses
  const cyc = [];
  cyc.push(cyc);
  let deep = 1;
  for (let i = 0; i < 33; i++) deep = [deep];
  let ok32 = 1;
  for (let i = 0; i < 31; i++) ok32 = [ok32];
  ok32 = [ok32];
  t.ok(codeOf(() => encode(cyc)) !== null && (() => { try { encode(cyc); } catch (e) { return e instanceof RangeError; } })(), 'a cycle is a RangeError');
  t.ok((() => { try { encode(deep); } catch (e) { return e instanceof RangeError; } })(), 'nesting 33 deep is a RangeError');
  t.eq(check(encode(ok32)), null, 'nesting 32 deep encodes and passes the default limits');
  for (const [what, val, cls] of [['BigInt >= 2^64', 2n ** 64n, RangeError], ['BigInt < -2^63', -(2n ** 63n) - 1n, RangeError], ['a function', () => 1, TypeError], ['a symbol', Symbol('x'), TypeError], ['a Date', new Date(0), TypeError]]) {
    let e = null;
    try {
      encode(val);
    } catch (err) {
      e = err;
    }
    t.ok(e instanceof cls, `encode refuses ${what}`, String(e));
  }

  // ---- hostile inputs
  const hostile = [
    ['91'.repeat(100000) + 'c0', 'SL_ERR_DECODE_DEPTH', undefined, 'nesting 100000 deep (no stack overflow)'],
    ['dbffffffff', 'SL_ERR_DECODE_LENGTH', undefined, 'str 32 announcing 4 GiB'],
    ['dd7fffffff' + '00'.repeat(16), 'SL_ERR_DECODE_LENGTH', undefined, 'array announcing 2^31 elements in 16 bytes'],
    ['df00100000' + '00'.repeat(40), 'SL_ERR_DECODE_LENGTH', undefined, 'map announcing 2^20 pairs'],
    ['dc0010' + 'c0'.repeat(16), 'SL_ERR_DECODE_BUDGET', { maxElements: 10 }, 'element budget'],
    ['c70101', 'SL_ERR_DECODE_EXT', undefined, 'ext 8 not allowed'],
    ['c7020101', 'SL_ERR_DECODE_LENGTH', { extAllow: [1] }, 'allowed ext longer than the input'],
    ['c4', 'SL_ERR_DECODE_TRUNCATED', undefined, 'bin 8 header cut'],
    ['cb000000', 'SL_ERR_DECODE_TRUNCATED', undefined, 'float 64 cut'],
    ['9291c1', 'SL_ERR_DECODE_RESERVED', undefined, 'nested 0xc1'],
    ['c0c0', 'SL_ERR_DECODE_TRAILING', undefined, 'two values'],
    ['93010203', 'SL_ERR_DECODE_TOO_BIG', { maxSize: 3 }, 'over maxSize before reading'],
    ['92', 'SL_ERR_DECODE_LENGTH', undefined, 'array of 2 with no element'],
  ];
  for (const [h, want, lim, what] of hostile) t.eq(codeOf(() => decode(hex(h), { limits: lim })), want, `hostile: ${what}`);
  // The decoder's state is kept between decodes: one that failed deep inside
  // a value leaves nothing behind for the next.
  const nested = '91'.repeat(20) + '93010203';
  let afterFail = null;
  for (const h of ['91'.repeat(100000) + 'c0', '9291c1', '92', 'dc0010' + 'c0'.repeat(16)]) {
    codeOf(() => decode(hex(h), { limits: { maxElements: 10 } }));
    let v = decode(hex(nested));
    for (let i = 0; i < 20 && Array.isArray(v) && v.length === 1; i++) v = v[0];
    afterFail = afterFail === false ? false : same(v, [1, 2, 3]);
  }
  t.ok(afterFail, 'a decode after a failed one (too deep, reserved byte, truncated, over budget) is whole');

  // ---- the JS decoder against the C validator, on random and mutated bytes
  if (cCheck) {
    const seeds = vectors.msgpack.map((v) => hex(v.hex)).concat(values.slice(0, 30).map((v) => encode(v)).filter((b) => b.length < 4096));
    const gen = rng(12345);
    let agree = 0, total = 0;
    const mismatches = [];
    const lims = [undefined, { maxDepth: 3 }, { maxElements: 5 }, { maxSize: 16 }];
    const tryOne = (bytes) => {
      const lim = lims[total % lims.length];
      const js = check(bytes, lim);
      const c = cCheck(bytes, lim);
      total++;
      if (js === c) agree++;
      else if (mismatches.length < 5) mismatches.push(`${toHex(bytes.subarray(0, 24))}: js ${js}, c ${c}`);
    };
    for (let i = 0; i < 4000; i++) {
      const len = gen() % 24;
      tryOne(Uint8Array.from({ length: len }, () => gen() & 255));
    }
    for (let i = 0; i < 4000; i++) {
      const b = seeds[gen() % seeds.length].slice();
      if (b.length === 0) continue;
      const k = 1 + (gen() % 3);
      for (let j = 0; j < k; j++) b[gen() % b.length] = gen() & 255;
      tryOne(gen() % 4 === 0 ? b.subarray(0, gen() % (b.length + 1)) : b);
    }
    for (const v of values.slice(0, 40)) {
      const b = encode(v);
      if (b.length < 200000) tryOne(b);
    }
    t.eq(`${agree}/${total}`, `${total}/${total}`, 'JS decoder and C validator agree on random, mutated and encoded inputs', mismatches.join('\n'));
  }
}
