// starling.js: the JavaScript API of Starling in a web page (or Node.js).
//
//   import { Starling } from './starling.js';
//   const node = await Starling.create();
//   const echo = node.spawn('echo');                 // a C agent, by name
//   const greeter = node.spawn({                     // an actor in JavaScript
//     onMessage(ctx, msg) {
//       if (msg.kind === 'ask') ctx.reply(msg, `hello, ${msg.value}!`);
//     },
//   });
//   console.log(await node.ask(greeter, 'world', { deadlineMs: 1000 }));
//   await node.shutdown();
//
// The actor core is the C one (actors/, schemas/), compiled to WebAssembly;
// this module loads it (starling-core.mjs + .wasm), drives it on the page's
// event loop (wasm/platform.c and library_starling.js) and turns JavaScript
// values into msgpack payloads and back (msgpack.js). Ids are strings in
// their printable form ("00000000000000a1.42"), priorities are names
// ('critical', 'high', 'normal', 'low', 'background'), errors are
// StarlingErrors carrying the C error name (err.code === 'SL_ERR_TIMEOUT').
//
// How calls cross between C and JavaScript: every JavaScript actor is the
// same C behaviour whose callbacks call three wasm imports with the actor's
// JS handle (an index into Host.actors) and a pointer to the sl_msg, whose
// fields are read straight from the module's memory at offsets C reports;
// the payload is decoded from a view of that memory (no copy before
// decoding). In the other direction the API calls sl__js_* exports with ids
// as 32-bit halves and the payload encoded into one reused buffer in the
// module's memory (bridge.c). No per-actor function-table entries are made.

import createCore from './starling-core.mjs';
import { StarlingError } from './errors.js';
import { encodeTemp, encode, decode, decodeAt, check, Ext, DEFAULT_LIMITS } from './msgpack.js';

export { StarlingError, encode, decode, check, Ext, DEFAULT_LIMITS };
export {
  encodeEnvelope,
  decodeEnvelope,
  writeFrameHeader,
  readFrameHeader,
  frameHeaderSize,
} from './wire.js';

/** Priority classes, most urgent first (index = sl_prio). */
export const PRIORITIES = Object.freeze(['critical', 'high', 'normal', 'low', 'background']);
/** Message kinds (index = sl_kind). */
export const KINDS = Object.freeze(['send', 'ask', 'reply', 'chunk', 'end', 'fail', 'cancel', 'down', 'exit']);
/** Stop reasons (index = sl_reason). */
export const REASONS = Object.freeze(['normal', 'crash', 'killed', 'noproc', 'noconnection', 'shutdown']);
/** The crash code of an actor whose callback threw (or whose promise rejected). */
export const JS_EXCEPTION_CODE = 1;

const OVERFLOW = { reject: 0, 'drop-new': 1, 'drop-oldest': 2 };
const PRIO_INDEX = Object.freeze({ critical: 0, high: 1, normal: 2, low: 3, background: 4 });
const KIND_SEND = 0, KIND_ASK = 1, KIND_REPLY = 2, KIND_CHUNK = 3, KIND_END = 4, KIND_FAIL = 5;
const KIND_DOWN = 7, KIND_EXIT = 8;
const REASON_CRASH = 1;
const TWO32 = 0x100000000;
const REQ = Symbol('starling.request');
const DEFAULT_ASK_MS = 30000;

const isNode = typeof process === 'object' && !!process.versions && !!process.versions.node;
const textEncoder = new TextEncoder();
const SCRATCH_KEEP = 1 << 20; // a bigger payload buffer is freed after use

// --------------------------------------------------------------- values

function prioOf(p) {
  if (p === undefined) return 2;
  const i = PRIO_INDEX[p];
  if (i === undefined) throw new TypeError(`priority must be one of ${PRIORITIES.join(', ')}; got ${String(p)}`);
  return i;
}

function typeOf(t) {
  if (t === undefined) return 0;
  if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new TypeError('message type must be an integer 0..2^32-1');
  return t;
}

function msOf(ms, dflt) {
  if (ms === undefined) return dflt;
  if (typeof ms !== 'number' || !(ms >= 0)) throw new TypeError('milliseconds must be a number >= 0');
  return ms;
}

// The pending asks of an actor, by ask id. Most agents wait for one answer
// at a time: that ask is kept in a slot of its own, the others in a Map (a
// Map entry added and deleted per ask makes V8 reallocate the Map's table
// every few asks).
class AskTable {
  constructor() {
    this.key = -1;
    this.ask = null;
    this.more = null;
  }
  get(key) {
    if (this.ask !== null && key === this.key) return this.ask;
    return this.more === null ? undefined : this.more.get(key);
  }
  set(key, ask) {
    if (this.ask === null) {
      this.key = key;
      this.ask = ask;
    } else {
      if (this.more === null) this.more = new Map();
      this.more.set(key, ask);
    }
  }
  delete(key) {
    if (this.ask !== null && key === this.key) {
      this.key = -1;
      this.ask = null;
    } else if (this.more !== null) {
      this.more.delete(key);
    }
  }
  values() {
    const all = this.more === null ? [] : [...this.more.values()];
    if (this.ask !== null) all.unshift(this.ask);
    return all;
  }
  clear() {
    this.key = -1;
    this.ask = null;
    this.more = null;
  }
}

// A promise's resolve and reject functions, without a closure per promise:
// new Promise(grab) leaves them in `grabbed` (the executor runs at once).
const grabbed = [null, null];
function grab(resolve, reject) {
  grabbed[0] = resolve;
  grabbed[1] = reject;
}

// A 64-bit value from its halves: a Number while exact, else a BigInt.
function u64(lo, hi) {
  return hi < 0x200000 ? hi * TWO32 + lo : (BigInt(hi) << 32n) | BigInt(lo);
}

// The halves of an ask id, monitor ref or timer id.
function halves(v) {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return [v >>> 0, Math.floor(v / TWO32)];
  if (typeof v === 'bigint' && v >= 0n && v < 1n << 64n) return [Number(v & 0xffffffffn), Number(v >> 32n)];
  throw new TypeError('expected an id returned by the API (a non-negative Number or BigInt)');
}

const ID_RE = /^[0-9a-fA-F]{16}\.[0-9]{1,20}$/;
const idCache = new Map();

// "<16 hex>.<decimal>" -> [node lo, node hi, local lo, local hi], as sl_id_parse.
function parseId(s) {
  const hit = idCache.get(s);
  if (hit) return hit;
  if (typeof s !== 'string') throw new TypeError(`an actor id is a string; got ${typeof s}`);
  if (!ID_RE.test(s)) throw new StarlingError('SL_ERR_BAD_ID', `malformed actor id text: ${JSON.stringify(s)}`, -16);
  const nh = parseInt(s.slice(0, 8), 16);
  const nl = parseInt(s.slice(8, 16), 16);
  const dec = s.slice(17);
  let ll, lh;
  if (dec.length <= 15) {
    const n = Number(dec);
    ll = n >>> 0;
    lh = Math.floor(n / TWO32);
  } else {
    const n = BigInt(dec);
    if (n >= 1n << 64n) throw new StarlingError('SL_ERR_BAD_ID', `actor id out of range: ${s}`, -16);
    ll = Number(n & 0xffffffffn);
    lh = Number(n >> 32n);
  }
  const parts = [nl, nh, ll, lh];
  if (idCache.size >= 4096) idCache.clear();
  idCache.set(s, parts);
  return parts;
}

function hex8(x) {
  return x.toString(16).padStart(8, '0');
}

// The hex form of the nodes seen last. Every message formats two ids (from,
// to) and those of a remote sender alternate between two nodes, so one
// remembered node missed every time: formatting node ids was half of the
// page's main-thread time when receiving a stream of remote messages
// (bench/README.md, browser_throughput). Two slots, most recent first, and
// a bounded map behind them.
let nodeLo0 = -1, nodeHi0 = -1, nodeHex0 = '';
let nodeLo1 = -1, nodeHi1 = -1, nodeHex1 = '';
const nodeHexes = new Map(); // hi -> Map(lo -> hex)

function nodeHex(nl, nh) {
  if (nl === nodeLo0 && nh === nodeHi0) return nodeHex0;
  let hex;
  if (nl === nodeLo1 && nh === nodeHi1) {
    hex = nodeHex1;
  } else {
    let byLo = nodeHexes.get(nh);
    if (!byLo) {
      if (nodeHexes.size >= 64) nodeHexes.clear();
      byLo = new Map();
      nodeHexes.set(nh, byLo);
    }
    hex = byLo.get(nl);
    if (hex === undefined) {
      if (byLo.size >= 256) byLo.clear();
      hex = hex8(nh) + hex8(nl);
      byLo.set(nl, hex);
    }
  }
  nodeLo1 = nodeLo0;
  nodeHi1 = nodeHi0;
  nodeHex1 = nodeHex0;
  nodeLo0 = nl;
  nodeHi0 = nh;
  nodeHex0 = hex;
  return hex;
}

// The printable form of an id given as halves (sl_id_format).
function formatId(nl, nh, ll, lh) {
  return `${nodeHex(nl, nh)}.${u64(ll, lh)}`;
}

// ---------------------------------------------------------------- module

// Load and instantiate the Emscripten module. `wasm` may be a URL (string or
// URL) of starling-core.wasm, its bytes, or a compiled WebAssembly.Module.
async function instantiate(wasm) {
  const arg = {};
  if (typeof WebAssembly.Module === 'function' && wasm instanceof WebAssembly.Module) {
    arg.instantiateWasm = (imports, receive) => {
      WebAssembly.instantiate(wasm, imports).then((inst) => receive(inst));
      return {};
    };
  } else if (wasm instanceof ArrayBuffer || ArrayBuffer.isView(wasm)) {
    arg.wasmBinary = wasm;
  } else {
    const url = new URL(wasm === undefined ? './starling-core.wasm' : String(wasm), import.meta.url);
    if (isNode && url.protocol === 'file:') {
      // The module is built for the web; under Node.js we read the file ourselves.
      const fs = await import('node:fs/promises');
      arg.wasmBinary = await fs.readFile(url);
    } else {
      arg.locateFile = () => url.href;
    }
  }
  arg.print = (s) => console.log(s);
  arg.printErr = (s) => console.error(s);
  const M = await createCore(arg);
  const host = new Host(M);
  M.slHost = host;
  return host;
}

let defaultHost = null;

// ------------------------------------------------------------------ host

// One per module instance: the JS side of bridge.c. It owns the table of JS
// actors (handle -> record), the scratch buffer for payloads, the layout of
// the C structs it reads, and the nodes living in this module.
class Host {
  constructor(M) {
    this.M = M;
    this.actors = [];
    this.free = [];
    this.nodes = new Map();
    this.scratch = 0;
    this.scratchCap = 0;
    this.scratchBusy = false;
    this.vlen = 0; // the length of the last valueIn()
    const countPtr = M._malloc(4);
    const lp = M._sl__js_layout(countPtr) >> 2;
    const n = M.HEAPU32[countPtr >> 2];
    M._free(countPtr);
    const L = Array.from(M.HEAPU32.subarray(lp, lp + n));
    this.L = {
      ioId: L[1], ioRef: L[2], ioNode: L[3], ioName: L[4], ioAgent: L[5],
      fromNode: L[6], fromLocal: L[7], toNode: L[8], toLocal: L[9], corr: L[10],
      type: L[11], kind: L[12], prio: L[13], status: L[14], code: L[15], len: L[16], data: L[17],
      stats: L.slice(18, 29),
    };
    this.io = M._sl__js_io_get();
    // The C error table, both ways.
    this.errName = new Map();
    this.errNo = new Map();
    for (let e = -1; e >= -64; e--) {
      const name = M.UTF8ToString(M._sl__js_err_name(e));
      if (name.startsWith('SL_ERR_')) {
        this.errName.set(e, name);
        this.errNo.set(name, e);
      }
    }
  }

  error(rc, what) {
    const name = this.errName.get(rc) || `SL_ERR_${rc}`;
    const text = this.M.UTF8ToString(this.M._sl__js_strerror(rc));
    return new StarlingError(name, what ? `${what}: ${text}` : text, rc);
  }

  // io.id as a string, or null for SL_ID_NONE.
  ioId() {
    const p = (this.io + this.L.ioId) >> 2;
    const H = this.M.HEAPU32;
    return H[p + 2] === 0 && H[p + 3] === 0 ? null : formatId(H[p], H[p + 1], H[p + 2], H[p + 3]);
  }

  ioRef() {
    const p = (this.io + this.L.ioRef) >> 2;
    return u64(this.M.HEAPU32[p], this.M.HEAPU32[p + 1]);
  }

  // Write a name (NUL-terminated UTF-8, at most 128 bytes) into io.name or io.agent.
  ioString(off, s, errName) {
    if (typeof s !== 'string') throw new TypeError('a name is a string');
    const at = this.io + off;
    const r = textEncoder.encodeInto(s, this.M.HEAPU8.subarray(at, at + 128));
    if (r.read !== s.length) throw new StarlingError(errName, `name longer than 128 bytes: ${s.slice(0, 40)}...`, this.errNo.get(errName));
    this.M.HEAPU8[at + r.written] = 0;
  }

  // Copy `bytes` into the module's memory for one call into C: returns the
  // pointer (0 when empty); give it back with bytesOut(p) after the call.
  // The hot paths use this pair rather than withValue (no closures made).
  bytesIn(bytes) {
    const M = this.M;
    const n = bytes.length;
    if (n === 0) return 0;
    if (this.scratchBusy) {
      // re-entered (a callback ran inside the call): a buffer of its own
      const p = M._malloc(n);
      if (!p) throw this.error(-1);
      M.HEAPU8.set(bytes, p);
      return p;
    }
    if (n > this.scratchCap) {
      if (this.scratch) M._free(this.scratch);
      const cap = Math.max(256, 2 ** Math.ceil(Math.log2(n)));
      this.scratch = M._malloc(cap);
      this.scratchCap = this.scratch ? cap : 0;
      if (!this.scratch) throw this.error(-1);
    }
    M.HEAPU8.set(bytes, this.scratch);
    this.scratchBusy = true;
    return this.scratch;
  }

  bytesOut(p) {
    if (!p) return;
    if (p !== this.scratch || !this.scratchBusy) {
      this.M._free(p);
      return;
    }
    this.scratchBusy = false;
    if (this.scratchCap > SCRATCH_KEEP) {
      this.M._free(this.scratch);
      this.scratch = 0;
      this.scratchCap = 0;
    }
  }

  // A value (undefined = no payload) encoded into the module's memory as by
  // bytesIn(); its length is left in this.vlen.
  valueIn(value) {
    if (value === undefined) {
      this.vlen = 0;
      return 0;
    }
    const bytes = encodeTemp(value);
    this.vlen = bytes.length;
    return this.bytesIn(bytes);
  }

  // Encode a value (undefined = no payload) and call fn(ptr, len).
  withValue(value, fn) {
    const p = this.valueIn(value);
    try {
      return fn(p, this.vlen);
    } finally {
      this.bytesOut(p);
    }
  }

  // The payload of the sl_msg at m: [value] or throws a StarlingError.
  payload(m) {
    const H = this.M.HEAPU32;
    const len = H[(m + this.L.len) >> 2];
    if (len === 0) return undefined;
    const data = H[(m + this.L.data) >> 2];
    return decodeAt(this.M.HEAPU8, data, data + len);
  }

  newActor(rec) {
    const h = this.free.length ? this.free.pop() : this.actors.length;
    this.actors[h] = rec;
    rec.handle = h;
    return h;
  }

  releaseActor(rec) {
    if (rec.handle >= 0 && this.actors[rec.handle] === rec) {
      this.actors[rec.handle] = null;
      this.free.push(rec.handle);
    }
    rec.handle = -1;
  }

  report(node, err, actorId) {
    try {
      node.onError(err, actorId);
    } catch (e) {
      console.error('starling: onError threw', e);
    }
  }

  // A callback returned a promise: its rejection crashes the actor.
  watch(rec, result) {
    if (result && typeof result.then === 'function') {
      result.then(undefined, (err) => {
        this.report(rec.node, err, rec.id);
        if (rec.ptr) this.M._sl__js_exit(rec.ptr, REASON_CRASH, JS_EXCEPTION_CODE);
      });
    }
  }

  // ---- the imports of bridge.c (see library_starling.js)

  start(handle, self) {
    const rec = this.actors[handle];
    rec.ptr = self;
    this.M._sl__js_self(self);
    rec.id = this.ioId();
    const beh = rec.beh;
    if (!beh.onStart) return 0;
    try {
      this.watch(rec, beh.onStart(rec.ctx));
      return 0;
    } catch (err) {
      this.report(rec.node, err, rec.id);
      return JS_EXCEPTION_CODE;
    }
  }

  message(handle, self, m) {
    const rec = this.actors[handle];
    const L = this.L;
    const kind = this.M.HEAPU8[m + L.kind];
    if (kind >= KIND_REPLY && kind <= KIND_FAIL) {
      const H = this.M.HEAPU32;
      const key = u64(H[(m + L.corr) >> 2], H[(m + L.corr + 4) >> 2]);
      const ask = rec.asks.get(key);
      if (ask) {
        this.settle(rec, ask, key, kind, m);
        return 0;
      }
    }
    let msg;
    try {
      msg = this.readMessage(m, kind);
    } catch (err) {
      // A payload that is not valid msgpack is not delivered; the failure is
      // reported, and an asker gets FAIL(SL_ERR_PROTO) instead of silence.
      this.report(rec.node, err, rec.id);
      if (kind === KIND_ASK) {
        const r = this.request(m);
        this.M._sl__js_reply_error(self, r[0], r[1], r[2], r[3], r[4], r[5], r[6], this.errNo.get('SL_ERR_PROTO'));
      }
      return 0;
    }
    const beh = rec.beh;
    if (!beh.onMessage) return 0;
    try {
      this.watch(rec, beh.onMessage(rec.ctx, msg));
      return 0;
    } catch (err) {
      this.report(rec.node, err, rec.id);
      return JS_EXCEPTION_CODE;
    }
  }

  stop(handle, reason) {
    const rec = this.actors[handle];
    try {
      if (rec.beh.onStop) this.watchStop(rec, rec.beh.onStop(rec.ctx, REASONS[reason] || String(reason)));
    } catch (err) {
      this.report(rec.node, err, rec.id);
    }
    rec.ptr = 0; // the C actor is freed after this returns
    this.releaseActor(rec);
    for (const ask of rec.asks.values()) {
      if (ask.cleanup) ask.cleanup();
      ask.reject(new StarlingError('SL_ERR_CANCELLED', 'the asking actor stopped', this.errNo.get('SL_ERR_CANCELLED')));
    }
    rec.asks.clear();
  }

  watchStop(rec, result) {
    if (result && typeof result.then === 'function') result.then(undefined, (err) => this.report(rec.node, err, rec.id));
  }

  stopped(n) {
    const node = this.nodes.get(n);
    if (node) node._stopped();
  }

  peer(n, lo, hi, up) {
    const node = this.nodes.get(n);
    if (node) node._peer(hex8(hi) + hex8(lo), up);
  }

  // ---- messages

  // [asker node lo, hi, local lo, hi, corr lo, hi, prio] of an ASK at m.
  request(m) {
    const H = this.M.HEAPU32;
    const L = this.L;
    const f = (m + L.fromNode) >> 2, fl = (m + L.fromLocal) >> 2, c = (m + L.corr) >> 2;
    return [H[f], H[f + 1], H[fl], H[fl + 1], H[c], H[c + 1], this.M.HEAPU8[m + L.prio]];
  }

  readMessage(m, kind) {
    const M = this.M;
    const H = M.HEAPU32;
    const L = this.L;
    const f = (m + L.fromNode) >> 2, fl = (m + L.fromLocal) >> 2;
    const t = (m + L.toNode) >> 2, tl = (m + L.toLocal) >> 2, c = (m + L.corr) >> 2;
    const msg = new Message();
    msg.kind = KINDS[kind];
    msg.from = H[fl] === 0 && H[fl + 1] === 0 ? null : formatId(H[f], H[f + 1], H[fl], H[fl + 1]);
    msg.to = formatId(H[t], H[t + 1], H[tl], H[tl + 1]);
    msg.type = H[(m + L.type) >> 2];
    msg.prio = PRIORITIES[M.HEAPU8[m + L.prio]];
    msg.corr = u64(H[c], H[c + 1]);
    msg.value = this.payload(m);
    if (kind === KIND_FAIL) {
      const st = M.HEAP32[(m + L.status) >> 2];
      msg.error = this.errName.get(st) || String(st);
    } else if (kind === KIND_DOWN || kind === KIND_EXIT) {
      msg.reason = REASONS[M.HEAP32[(m + L.status) >> 2]];
      msg.code = M.HEAP32[(m + L.code) >> 2];
    }
    if (kind === KIND_ASK) msg[REQ] = this.request(m);
    return msg;
  }

  // A reply, chunk, end or failure of one of the actor's asks.
  settle(rec, ask, key, kind, m) {
    let value;
    try {
      value = this.payload(m);
    } catch (err) {
      if (kind === KIND_CHUNK) {
        // a bad chunk ends the ask: cancel it so that nothing more comes
        this.M._sl__js_ask_cancel(rec.ptr, ...halves(key));
      }
      rec.asks.delete(key);
      if (ask.cleanup) ask.cleanup();
      ask.reject(err);
      return;
    }
    if (kind === KIND_CHUNK) {
      if (ask.onChunk) {
        try {
          ask.onChunk(value);
        } catch (err) {
          this.report(rec.node, err, rec.id);
        }
      } else {
        (ask.chunks || (ask.chunks = [])).push(value);
      }
      return;
    }
    rec.asks.delete(key);
    if (ask.cleanup) ask.cleanup();
    if (kind === KIND_REPLY) ask.resolve(value);
    else if (kind === KIND_END) {
      if (ask.onChunk) ask.resolve(value);
      else {
        const chunks = ask.chunks || [];
        if (value !== undefined) chunks.push(value);
        ask.resolve(chunks);
      }
    } else {
      const st = this.M.HEAP32[(m + this.L.status) >> 2];
      ask.reject(this.error(st));
    }
  }
}

/** A message as an actor receives it (see starling.d.ts). */
class Message {}

// ------------------------------------------------------------- contexts

// What an actor's callbacks receive: its id and what it can do.
class ActorContext {
  constructor(rec) {
    this._r = rec;
  }

  /** This actor's id. */
  get self() {
    return this._r.id;
  }

  /** The node this actor runs on. */
  get node() {
    return this._r.node;
  }

  _ptr() {
    const p = this._r.ptr;
    if (!p) throw new StarlingError('SL_ERR_NOACTOR', 'this actor has stopped', -3);
    return p;
  }

  send(to, value, opts) {
    this._r.node._send(this._ptr(), to, value, opts);
  }

  sendUnreliable(to, value, opts) {
    const node = this._r.node;
    const host = node._host;
    const self = this._ptr();
    node._live();
    const id = parseId(to);
    const prio = prioOf(opts && opts.prio);
    const type = typeOf(opts && opts.type);
    const rc = host.withValue(value, (p, n) => host.M._sl__js_send_unreliable(self, id[0], id[1], id[2], id[3], type, prio, p, n));
    if (rc) throw host.error(rc, `unreliable send to ${to}`);
  }

  ask(to, value, opts) {
    const rec = this._r;
    const node = rec.node;
    const host = node._host;
    const M = host.M;
    let self, id, prio, type, ms;
    try {
      self = this._ptr();
      id = parseId(to);
      prio = prioOf(opts && opts.prio);
      type = typeOf(opts && opts.type);
      ms = msOf(opts && opts.deadlineMs, DEFAULT_ASK_MS);
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = opts && opts.signal;
    if (signal && signal.aborted) return Promise.reject(signal.reason);
    // No closures on this path: an agent may ask in a tight loop, and what
    // it allocates the page's garbage collector pays for.
    const p = host.valueIn(value);
    let rc;
    try {
      rc = M._sl__js_ask(self, id[0], id[1], id[2], id[3], type, prio, p, host.vlen, ms);
    } finally {
      host.bytesOut(p);
    }
    if (rc) return Promise.reject(host.error(rc, `ask ${to}`));
    const key = host.ioRef();
    // chunks: made by the first chunk; cleanup: set with a signal
    const promise = new Promise(grab);
    const ask = { resolve: grabbed[0], reject: grabbed[1], chunks: null, onChunk: (opts && opts.onChunk) || null, cleanup: null };
    if (signal) {
      const onAbort = () => {
        if (rec.asks.get(key) !== ask) return;
        rec.asks.delete(key);
        if (rec.ptr) M._sl__js_ask_cancel(rec.ptr, ...halves(key));
        ask.reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      ask.cleanup = () => signal.removeEventListener('abort', onAbort);
    }
    rec.asks.set(key, ask);
    return promise;
  }

  _reply(kind, msg, value, opts) {
    const r = msg && msg[REQ];
    if (!r) throw new TypeError('reply to the ask message itself (msg.kind === "ask")');
    const self = this._ptr();
    const host = this._r.node._host;
    const type = typeOf(opts && opts.type !== undefined ? opts.type : msg.type);
    const rc = host.withValue(value, (p, n) =>
      host.M._sl__js_reply(self, kind, r[0], r[1], r[2], r[3], r[4], r[5], r[6], type, p, n));
    if (rc) throw host.error(rc, 'reply');
  }

  reply(msg, value, opts) {
    this._reply(KIND_REPLY, msg, value, opts);
  }

  replyChunk(msg, value, opts) {
    this._reply(KIND_CHUNK, msg, value, opts);
  }

  replyEnd(msg, value, opts) {
    this._reply(KIND_END, msg, value, opts);
  }

  replyError(msg, error) {
    const r = msg && msg[REQ];
    if (!r) throw new TypeError('reply to the ask message itself (msg.kind === "ask")');
    const host = this._r.node._host;
    const err = typeof error === 'number' ? error : host.errNo.get(error);
    if (!(err < 0)) throw new TypeError(`unknown Starling error: ${String(error)}`);
    const rc = host.M._sl__js_reply_error(this._ptr(), r[0], r[1], r[2], r[3], r[4], r[5], r[6], err);
    if (rc) throw host.error(rc, 'replyError');
  }

  monitor(target) {
    const id = parseId(target);
    const host = this._r.node._host;
    const rc = host.M._sl__js_monitor(this._ptr(), id[0], id[1], id[2], id[3]);
    if (rc) throw host.error(rc, 'monitor');
    return host.ioRef();
  }

  demonitor(ref) {
    const host = this._r.node._host;
    const rc = host.M._sl__js_demonitor(this._ptr(), ...halves(ref));
    if (rc) throw host.error(rc, 'demonitor');
  }

  link(other) {
    this._link(1, other);
  }

  unlink(other) {
    this._link(0, other);
  }

  _link(on, other) {
    const id = parseId(other);
    const host = this._r.node._host;
    const rc = host.M._sl__js_link(this._ptr(), on, id[0], id[1], id[2], id[3]);
    if (rc) throw host.error(rc, on ? 'link' : 'unlink');
  }

  trapExit(on = true) {
    this._r.node._host.M._sl__js_trap_exit(this._ptr(), on ? 1 : 0);
  }

  _timer(periodic, to, ms, value, opts) {
    const id = parseId(to);
    const host = this._r.node._host;
    const self = this._ptr();
    const delay = msOf(ms, 0);
    const rc = host.withValue(value, (p, n) =>
      host.M._sl__js_timer(self, id[0], id[1], id[2], id[3], delay, periodic, typeOf(opts && opts.type), prioOf(opts && opts.prio), p, n));
    if (rc) throw host.error(rc, periodic ? 'sendEvery' : 'sendAfter');
    return host.ioRef();
  }

  sendAfter(to, ms, value, opts) {
    return this._timer(0, to, ms, value, opts);
  }

  sendEvery(to, ms, value, opts) {
    return this._timer(1, to, ms, value, opts);
  }

  cancelTimer(timer) {
    const host = this._r.node._host;
    const rc = host.M._sl__js_timer_cancel(this._ptr(), ...halves(timer));
    if (rc) throw host.error(rc, 'cancelTimer');
  }

  stop(reason = 'normal', code = 0) {
    const r = REASONS.indexOf(reason);
    if (r < 0) throw new TypeError(`reason must be one of ${REASONS.join(', ')}`);
    if (!Number.isInteger(code) || code < -2147483648 || code > 2147483647) throw new TypeError('code must be an int32');
    this._r.node._host.M._sl__js_exit(this._ptr(), r, code);
  }

  spawn(behavior, opts) {
    return this._r.node.spawn(behavior, opts);
  }
}

// ----------------------------------------------------------------- node

class StarlingNode {
  constructor(host, ptr, opts, joining) {
    this._host = host;
    this._ptr = ptr;
    this._stopping = null;
    this._resolveStop = null;
    this.onError = opts.onError || ((err, actor) => console.error(`starling: actor ${actor} failed:`, err));
    this.onPeer = opts.onPeer || null;
    this.gateway = null;
    this._welcome = null;
    this._readId();
    host.nodes.set(ptr, this);
    // The actor that asks on behalf of node.ask() (from outside any actor);
    // a node joining a cluster makes it once its gateway gave it its id.
    this._proxy = null;
    if (!joining) this._proxy = this._spawnRecord({}, {});
  }

  _readId() {
    const H = this._host.M.HEAPU32;
    const nodeId = this._host.M._sl__js_node_id(this._ptr);
    this.id = hex8(H[(nodeId >> 2) + 1]) + hex8(H[nodeId >> 2]);
  }

  _peer(peer, up) {
    if (up && this.gateway === null) {
      this.gateway = peer;
      this._readId();
      if (this._welcome) this._welcome.resolve();
    }
    if (this.onPeer) {
      try {
        this.onPeer(peer, up);
      } catch (err) {
        this.onError(err, null);
      }
    }
  }

  /**
   * Why this node is not connected to its gateway (yet, or again): null when
   * no attempt failed since it was last welcomed, else { failures, code,
   * reason } of the last one (a browser says no more than "Opening handshake
   * failed." about a refused token or origin, a wrong path or certificate
   * hash, or no gateway at that address).
   */
  connectFailure() {
    const host = this._host;
    const M = host.M;
    const p = M._sl__js_connect_failure(this._live());
    if (!p) return null;
    const r = (host.io + host.L.ioRef) >> 2;
    const err = M.HEAP32[r + 1];
    return { failures: M.HEAPU32[r], code: host.errName.get(err) || `SL_ERR_${err}`, reason: M.UTF8ToString(p) };
  }

  /** What the gateway exposed to this node: name -> actor id. */
  exposed() {
    const M = this._host.M;
    const out = new Map();
    const node = this._live();
    for (let i = 0; ; i++) {
      const p = M._sl__js_exposed(node, i);
      if (!p) return out;
      out.set(M.UTF8ToString(p), this._host.ioId());
    }
  }

  /** The largest payload ctx.sendUnreliable() takes for `to` now (0: none). */
  unreliableMax(to) {
    const id = parseId(to);
    return this._host.M._sl__js_unreliable_max(this._live(), id[0], id[1], id[2], id[3]);
  }

  _live() {
    if (!this._ptr || this._stopping) throw new StarlingError('SL_ERR_STOPPED', 'the node is stopping or stopped', -9);
    return this._ptr;
  }

  _spawnRecord(behavior, opts) {
    const host = this._host;
    const M = host.M;
    const node = this._live();
    const cap = opts.mailboxCapacity === undefined ? 0 : opts.mailboxCapacity;
    if (!Number.isInteger(cap) || cap < 0 || cap > 0xffffffff) throw new TypeError('mailboxCapacity must be an integer >= 0');
    const overflow = OVERFLOW[opts.overflow === undefined ? 'reject' : opts.overflow];
    if (overflow === undefined) throw new TypeError("overflow must be 'reject', 'drop-new' or 'drop-oldest'");
    const link = opts.linkTo === undefined ? [0, 0, 0, 0] : parseId(opts.linkTo);
    if (opts.name !== undefined) host.ioString(host.L.ioName, opts.name, 'SL_ERR_BAD_NAME');
    const hasName = opts.name !== undefined ? 1 : 0;
    const trap = opts.trapExit ? 1 : 0;
    if (typeof behavior === 'string') {
      host.ioString(host.L.ioAgent, behavior, 'SL_ERR_NOTFOUND');
      const hasInit = opts.init !== undefined ? 1 : 0;
      const rc = host.withValue(opts.init, (p, n) =>
        M._sl__js_spawn(node, -1, p, n, hasInit, cap, overflow, trap, hasName, link[0], link[1], link[2], link[3]));
      if (rc) throw host.error(rc, `spawn ${behavior}`);
      return { id: host.ioId() };
    }
    if (behavior === null || typeof behavior !== 'object') {
      throw new TypeError('spawn a behaviour object {onStart, onMessage, onStop} or a C agent name');
    }
    const rec = { handle: -1, beh: behavior, node: this, ptr: 0, id: null, asks: new AskTable(), ctx: null };
    rec.ctx = new ActorContext(rec);
    const handle = host.newActor(rec);
    const rc = M._sl__js_spawn(node, handle, 0, 0, 0, cap, overflow, trap, hasName, link[0], link[1], link[2], link[3]);
    if (rc) {
      if (rec.handle >= 0 && !rec.ptr) host.releaseActor(rec); // never started
      throw host.error(rc, 'spawn');
    }
    return rec;
  }

  spawn(behavior, opts) {
    return this._spawnRecord(behavior, opts || {}).id;
  }

  agents() {
    const M = this._host.M;
    const names = [];
    for (let i = 0; ; i++) {
      const p = M._sl__js_agent_name(i);
      if (!p) return names;
      names.push(M.UTF8ToString(p));
    }
  }

  _send(self, to, value, opts) {
    const host = this._host;
    const node = this._live();
    const id = parseId(to);
    const prio = prioOf(opts && opts.prio);
    const type = typeOf(opts && opts.type);
    const p = host.valueIn(value); // (no closure: the hot path of sends)
    let rc;
    try {
      rc = host.M._sl__js_send(node, self, id[0], id[1], id[2], id[3], type, prio, p, host.vlen);
    } finally {
      host.bytesOut(p);
    }
    if (rc) throw host.error(rc, `send to ${to}`);
  }

  send(to, value, opts) {
    this._send(0, to, value, opts);
  }

  ask(to, value, opts) {
    if (!this._ptr || this._stopping) return Promise.reject(new StarlingError('SL_ERR_STOPPED', 'the node is stopping or stopped', -9));
    return this._proxy.ctx.ask(to, value, opts);
  }

  stopActor(id, reason = 'normal') {
    const r = REASONS.indexOf(reason);
    if (r < 0) throw new TypeError(`reason must be one of ${REASONS.join(', ')}`);
    const p = parseId(id);
    const host = this._host;
    const rc = host.M._sl__js_stop(this._live(), p[0], p[1], p[2], p[3], r);
    if (rc) throw host.error(rc, `stop ${id}`);
  }

  alive(id) {
    const p = parseId(id);
    return !!this._ptr && this._host.M._sl__js_alive(this._ptr, p[0], p[1], p[2], p[3]) !== 0;
  }

  register(name, id) {
    const host = this._host;
    const p = parseId(id);
    host.ioString(host.L.ioName, name, 'SL_ERR_BAD_NAME');
    const rc = host.M._sl__js_register(this._live(), p[0], p[1], p[2], p[3]);
    if (rc) throw host.error(rc, `register ${name}`);
  }

  unregister(name) {
    const host = this._host;
    host.ioString(host.L.ioName, name, 'SL_ERR_BAD_NAME');
    const rc = host.M._sl__js_unregister(this._live());
    if (rc) throw host.error(rc, `unregister ${name}`);
  }

  whereis(name) {
    const host = this._host;
    try {
      host.ioString(host.L.ioName, name, 'SL_ERR_BAD_NAME');
    } catch (err) {
      if (err instanceof StarlingError) return null;
      throw err;
    }
    return host.M._sl__js_whereis(this._live()) === 0 ? host.ioId() : null;
  }

  stats() {
    const host = this._host;
    const M = host.M;
    const p = M._sl__js_stats(this._live());
    const H = M.HEAPU32;
    const s = host.L.stats;
    const q = (i) => u64(H[(p + s[i]) >> 2], H[(p + s[i] + 4) >> 2]);
    return {
      spawned: q(0), stopped: q(1), crashed: q(2), sent: q(3), processed: q(4),
      deadLetters: q(5), dropped: q(6), lateReplies: q(7), timeouts: q(8),
      alive: H[(p + s[9]) >> 2], timers: H[(p + s[10]) >> 2],
    };
  }

  shutdown() {
    if (this._stopping) return this._stopping;
    if (!this._ptr) return Promise.resolve();
    this._stopping = new Promise((resolve) => {
      this._resolveStop = resolve;
    });
    this._host.M._sl__js_node_shutdown(this._ptr);
    return this._stopping;
  }

  // From C, inside the node's last macrotask: free it once the stack unwound.
  _stopped() {
    const ptr = this._ptr;
    queueMicrotask(() => {
      this._host.nodes.delete(ptr);
      this._host.M._sl__js_node_del(ptr);
      this._ptr = 0;
      this._resolveStop();
    });
  }
}

// ---------------------------------------------------------------- entry

function u32opt(opts, k) {
  const v = opts[k];
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`${k} must be an integer 0..2^32-1`);
  return v;
}

/** The entry point: `const node = await Starling.create(options)`. */
export const Starling = Object.freeze({
  async create(opts = {}) {
    let host;
    if (opts.wasm !== undefined) host = await instantiate(opts.wasm);
    else {
      if (!defaultHost) defaultHost = instantiate(undefined);
      try {
        host = await defaultHost;
      } catch (err) {
        defaultHost = null;
        throw err;
      }
    }
    let nl = 0, nh = 0;
    if (opts.nodeId !== undefined) {
      if (typeof opts.nodeId !== 'string' || !/^[0-9a-fA-F]{16}$/.test(opts.nodeId) || /^0{16}$/.test(opts.nodeId)) {
        throw new TypeError('nodeId must be 16 hex digits, not all zero');
      }
      nh = parseInt(opts.nodeId.slice(0, 8), 16);
      nl = parseInt(opts.nodeId.slice(8), 16);
    }
    const budget = opts.budgetMs === undefined ? 8 : opts.budgetMs;
    if (!Number.isInteger(budget) || budget < 0) throw new TypeError('budgetMs must be an integer >= 0');
    const rc = host.M._sl__js_node_new(nl, nh, u32opt(opts, 'mailboxCapacity'), u32opt(opts, 'batch'),
      u32opt(opts, 'slice'), budget, u32opt(opts, 'maxMessageSize'));
    if (rc) throw host.error(rc, 'create');
    const ptr = host.M.HEAPU32[(host.io + host.L.ioNode) >> 2];
    return new StarlingNode(host, ptr, opts, !!opts._joining);
  },

  /**
   * Join a cluster through a gateway node: `url` is its WebTransport URL
   * (https://host:port/path, the token may be in the query or in `token`),
   * `certificateHash` the SHA-256 of its certificate (hex or bytes) for
   * serverCertificateHashes. Resolves with the node once the gateway gave it
   * its id (rejects after `connectTimeoutMs`, default 10 s); it then stays
   * connected, reconnecting after a loss with the same id.
   */
  async connect(opts = {}) {
    let url;
    try {
      url = new URL(opts.url);
    } catch (err) {
      throw new TypeError('url must be a https:// URL of the gateway');
    }
    if (url.protocol !== 'https:') throw new TypeError('url must be a https:// URL of the gateway');
    const port = url.port ? Number(url.port) : 443;
    let token = opts.token !== undefined ? String(opts.token) : url.searchParams.get('token');
    const params = new URLSearchParams(url.search);
    params.delete('token');
    const rest = params.toString();
    const path = (url.pathname || '/') + (rest ? '?' + rest : '');
    let hash = null;
    if (opts.certificateHash !== undefined) {
      hash = typeof opts.certificateHash === 'string' ? hexBytes(opts.certificateHash) : new Uint8Array(opts.certificateHash);
      if (hash.length !== 32) throw new TypeError('certificateHash must be a SHA-256 (32 bytes, or 64 hex digits)');
    }
    const timeout = opts.connectTimeoutMs === undefined ? 10000 : opts.connectTimeoutMs;
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2147483647) throw new TypeError('connectTimeoutMs must be an integer 1..2^31-1');
    // options checked before a node exists (a bad one leaves nothing behind)
    const cfg = [url.hostname.replace(/^\[|\]$/g, ''), port, path, token === null ? null : token, hash,
      u32opt(opts, 'reconnectMinMs'), u32opt(opts, 'reconnectMaxMs'), u32opt(opts, 'welcomeTimeoutMs')];
    const node = await Starling.create(Object.assign({}, opts, { _joining: true }));
    const host = node._host;
    let timer = null;
    const welcomed = new Promise((resolve, reject) => {
      node._welcome = { resolve, reject };
      timer = setTimeout(() => reject(joinError(node, url.host, timeout)), timeout);
    });
    const rc = host.withValue(cfg, (p, n) => host.M._sl__js_node_connect(node._ptr, p, n));
    if (rc) {
      clearTimeout(timer);
      await node.shutdown();
      throw host.error(rc, 'connect');
    }
    try {
      await welcomed;
    } catch (err) {
      await node.shutdown();
      throw err;
    } finally {
      clearTimeout(timer);
      node._welcome = null;
    }
    node._proxy = node._spawnRecord({}, {});
    return node;
  },
});

// connect() got no welcome in time: say how the attempts ended, if they did.
function joinError(node, where, ms) {
  const f = node.connectFailure();
  if (!f) {
    return new StarlingError('SL_ERR_TIMEOUT', `no welcome from the gateway ${where} within ${ms} ms (no attempt failed yet)`,
      node._host.errNo.get('SL_ERR_TIMEOUT'));
  }
  return new StarlingError('SL_ERR_NOCONN', `the gateway ${where} did not let this node join within ${ms} ms: ` +
    `${f.failures} attempt${f.failures === 1 ? '' : 's'} failed, the last with ${f.code}${f.reason ? ` "${f.reason}"` : ''} ` +
    '(a refused token or origin, a wrong path or certificate hash, or no gateway at that address)', node._host.errNo.get('SL_ERR_NOCONN'));
}

function hexBytes(s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new TypeError('certificateHash must be hex digits');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export default Starling;
