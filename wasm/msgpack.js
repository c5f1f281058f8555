// msgpack.js: a small msgpack encoder and a hostile-input-safe decoder.
//
// Every Starling payload is msgpack; this is how JavaScript values become
// payloads and back. No dependency, no eval, no recursion beyond the
// nesting limit.
//
// Encoding (JS -> msgpack), canonical as msgpack-c writes it (the shortest
// format of every integer and header):
//   undefined, null -> nil         boolean -> bool
//   integer Number (safe range, not -0) -> int; other Number -> float 64
//   BigInt in [-2^63, 2^64) -> int (RangeError outside)
//   string -> str (UTF-8; lone surrogates become U+FFFD, as TextEncoder does)
//   Uint8Array, ArrayBuffer, any ArrayBufferView -> bin (its bytes)
//   Array -> array        Map -> map (any keys)        Ext -> ext
//   other objects -> map of their own enumerable string keys (like JSON)
//   functions, symbols, Dates -> TypeError (send a number or a string);
//   nesting deeper than 32 containers (also cycles) -> RangeError, because
//   the C side refuses deeper payloads.
//
// Decoding (msgpack -> JS) applies the limits of the C validator
// sl_msgpack_check() (schemas/README.md section 3), in the same order, so
// the same bytes fail with the same error code on both sides: size before
// anything is read (TOO_BIG), each header complete (TRUNCATED), 0xc1
// (RESERVED), ext types on an allow-list (EXT, none allowed by default),
// every declared length and element count against the bytes that remain and
// the per-type limits (LENGTH), nesting (DEPTH), an element budget charged
// when a container announces its children (BUDGET), and exactly one value
// (TRAILING). Errors are StarlingErrors with code 'SL_ERR_DECODE_*'.
//   nil -> null; int -> Number, or BigInt outside the safe range;
//   float 32/64 -> Number; str -> string (invalid UTF-8 -> U+FFFD);
//   bin -> Uint8Array (a copy); ext -> Ext (only if allowed);
//   map -> a plain object if every key is a string (a "__proto__" key is an
//   own property, never the prototype), else a Map; {maps: 'map'} always
//   gives Maps.

import { decodeError } from './errors.js';

const MiB = 1024 * 1024;

/** The limits of sl_limits_default(), in camelCase. */
export const DEFAULT_LIMITS = Object.freeze({
  maxDepth: 32,
  maxSize: 64 * MiB + 1024,
  maxElements: 1 << 20,
  maxStrLen: 64 * MiB,
  maxBinLen: 64 * MiB,
  maxExtLen: 64 * MiB,
  extAllow: Object.freeze([]),
});

/** sl_msgpack_check() tracks at most this many open containers. */
export const DEPTH_CAP = 128;
/** The deepest nesting encode() writes (what sl_unpack() accepts). */
export const MAX_ENCODE_DEPTH = 32;

/** An extension value: `type` in -128..127, `data` its bytes. */
export class Ext {
  constructor(type, data) {
    if (!Number.isInteger(type) || type < -128 || type > 127) throw new RangeError('ext type must be -128..127');
    this.type = type;
    this.data = data instanceof Uint8Array ? data : new Uint8Array(data);
  }
}

// ------------------------------------------------------------- encoding

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

class Writer {
  constructor(size) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  ensure(n) {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }
}

// One writer is reused for every encode; a re-entrant encode (a getter that
// sends a message while its object is being encoded) gets its own.
let shared = new Writer(4096);
let sharedBusy = false;
// encodeTemp's last view of shared.buf: the next value of the same length
// gets the same view again (a request loop allocates none).
let sharedView = null;

function head(w, byte) {
  w.ensure(1);
  w.buf[w.pos++] = byte;
}

function head8(w, byte, v) {
  w.ensure(2);
  w.buf[w.pos++] = byte;
  w.buf[w.pos++] = v;
}

function head16(w, byte, v) {
  w.ensure(3);
  w.buf[w.pos] = byte;
  w.view.setUint16(w.pos + 1, v);
  w.pos += 3;
}

function head32(w, byte, v) {
  w.ensure(5);
  w.buf[w.pos] = byte;
  w.view.setUint32(w.pos + 1, v);
  w.pos += 5;
}

function encUint(w, v) {
  if (v < 0x80) head(w, v);
  else if (v < 0x100) head8(w, 0xcc, v);
  else if (v < 0x10000) head16(w, 0xcd, v);
  else if (v < 0x100000000) head32(w, 0xce, v);
  else {
    w.ensure(9);
    w.buf[w.pos] = 0xcf;
    w.view.setUint32(w.pos + 1, Math.floor(v / 0x100000000));
    w.view.setUint32(w.pos + 5, v >>> 0);
    w.pos += 9;
  }
}

function encInt(w, v) {
  if (v >= 0) return encUint(w, v);
  if (v >= -32) head(w, v & 0xff);
  else if (v >= -128) head8(w, 0xd0, v & 0xff);
  else if (v >= -32768) head16(w, 0xd1, v & 0xffff);
  else if (v >= -2147483648) head32(w, 0xd2, v >>> 0);
  else {
    const hi = Math.floor(v / 0x100000000); // v = hi * 2^32 + lo, 0 <= lo < 2^32
    w.ensure(9);
    w.buf[w.pos] = 0xd3;
    w.view.setInt32(w.pos + 1, hi);
    w.view.setUint32(w.pos + 5, v - hi * 0x100000000);
    w.pos += 9;
  }
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

function encBigInt(w, v) {
  if (v >= -2147483648n && v < 0x100000000n) return encInt(w, Number(v));
  if (v > U64_MAX || v < I64_MIN) throw new RangeError(`BigInt ${v} does not fit in 64 bits`);
  w.ensure(9);
  if (v >= 0n) {
    w.buf[w.pos] = 0xcf;
    w.view.setBigUint64(w.pos + 1, v);
  } else {
    w.buf[w.pos] = 0xd3;
    w.view.setBigInt64(w.pos + 1, v);
  }
  w.pos += 9;
}

// UTF-8 length of a string, lone surrogates counted as U+FFFD (3 bytes).
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function writeUtf8(w, s) {
  const b = w.buf;
  let p = w.pos;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      b[p++] = c;
      continue;
    }
    if (c < 0x800) {
      b[p++] = 0xc0 | (c >> 6);
      b[p++] = 0x80 | (c & 63);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = c <= 0xdbff && i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        b[p++] = 0xf0 | (c >> 18);
        b[p++] = 0x80 | ((c >> 12) & 63);
        b[p++] = 0x80 | ((c >> 6) & 63);
        b[p++] = 0x80 | (c & 63);
        continue;
      }
      c = 0xfffd; // a lone surrogate
    }
    b[p++] = 0xe0 | (c >> 12);
    b[p++] = 0x80 | ((c >> 6) & 63);
    b[p++] = 0x80 | (c & 63);
  }
  w.pos = p;
}

function strHeader(w, n) {
  if (n < 32) head(w, 0xa0 | n);
  else if (n < 0x100) head8(w, 0xd9, n);
  else if (n < 0x10000) head16(w, 0xda, n);
  else head32(w, 0xdb, n);
}

function encStr(w, s) {
  if (s.length < 4096) {
    const n = utf8Length(s);
    strHeader(w, n);
    w.ensure(n);
    writeUtf8(w, s);
    return;
  }
  // Long strings: TextEncoder into room for the worst case, then the header.
  w.ensure(5 + s.length * 3);
  const start = w.pos + 5;
  const n = textEncoder.encodeInto(s, w.buf.subarray(start)).written;
  const hl = n < 0x10000 ? 3 : 5; // n >= 4096: str 16 or str 32
  w.buf.copyWithin(w.pos + hl, start, start + n);
  if (hl === 3) head16(w, 0xda, n);
  else head32(w, 0xdb, n);
  w.pos += n;
}

function encBin(w, bytes) {
  const n = bytes.length;
  if (n < 0x100) head8(w, 0xc4, n);
  else if (n < 0x10000) head16(w, 0xc5, n);
  else head32(w, 0xc6, n);
  w.ensure(n);
  w.buf.set(bytes, w.pos);
  w.pos += n;
}

function encExt(w, e) {
  const n = e.data.length;
  const t = e.type & 0xff;
  const fix = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }[n];
  if (fix) head8(w, fix, t);
  else if (n < 0x100) {
    head8(w, 0xc7, n);
    head(w, t);
  } else if (n < 0x10000) {
    head16(w, 0xc8, n);
    head(w, t);
  } else {
    head32(w, 0xc9, n);
    head(w, t);
  }
  w.ensure(n);
  w.buf.set(e.data, w.pos);
  w.pos += n;
}

function containerHeader(w, n, fix, b16, b32) {
  if (n < 16) head(w, fix | n);
  else if (n < 0x10000) head16(w, b16, n);
  else head32(w, b32, n);
}

function enc(w, v, depth) {
  switch (typeof v) {
    case 'undefined':
      return head(w, 0xc0);
    case 'boolean':
      return head(w, v ? 0xc3 : 0xc2);
    case 'number':
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) return encInt(w, v);
      w.ensure(9);
      w.buf[w.pos] = 0xcb;
      w.view.setFloat64(w.pos + 1, v);
      w.pos += 9;
      return;
    case 'bigint':
      return encBigInt(w, v);
    case 'string':
      return encStr(w, v);
    case 'object':
      break;
    default:
      throw new TypeError(`cannot encode a ${typeof v} as msgpack`);
  }
  if (v === null) return head(w, 0xc0);
  if (v instanceof Uint8Array) return encBin(w, v);
  if (ArrayBuffer.isView(v)) return encBin(w, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (v instanceof ArrayBuffer) return encBin(w, new Uint8Array(v));
  if (v instanceof Ext) return encExt(w, v);
  if (v instanceof Date) throw new TypeError('cannot encode a Date as msgpack: send a number or a string');
  if (depth >= MAX_ENCODE_DEPTH) {
    throw new RangeError(`msgpack nesting deeper than ${MAX_ENCODE_DEPTH} (or a cycle)`);
  }
  if (Array.isArray(v)) {
    containerHeader(w, v.length, 0x90, 0xdc, 0xdd);
    for (let i = 0; i < v.length; i++) enc(w, v[i], depth + 1);
    return;
  }
  if (v instanceof Map) {
    containerHeader(w, v.size, 0x80, 0xde, 0xdf);
    for (const [k, x] of v) {
      enc(w, k, depth + 1);
      enc(w, x, depth + 1);
    }
    return;
  }
  const keys = Object.keys(v);
  containerHeader(w, keys.length, 0x80, 0xde, 0xdf);
  for (let i = 0; i < keys.length; i++) {
    encStr(w, keys[i]);
    enc(w, v[keys[i]], depth + 1);
  }
}

/**
 * Encode into the shared buffer and return a view of the bytes, valid only
 * until the next encode: the caller copies them at once. For the API's hot
 * path (one copy, into the wasm memory, instead of two). The view may be
 * the one returned last time.
 */
export function encodeTemp(value) {
  if (sharedBusy) return encode(value); // re-entered by a getter of the value
  const w = shared;
  sharedBusy = true;
  try {
    w.pos = 0;
    enc(w, value, 0);
  } finally {
    sharedBusy = false;
  }
  let out = sharedView;
  if (out === null || out.length !== w.pos || out.buffer !== w.buf.buffer) out = sharedView = w.buf.subarray(0, w.pos);
  if (w.buf.length > 1 << 20) { // do not pin a big buffer
    shared = new Writer(4096);
    sharedView = null;
  }
  return out;
}

/** Encode a JavaScript value as msgpack; returns a new Uint8Array. */
export function encode(value) {
  const w = new Writer(256);
  enc(w, value, 0);
  return w.buf.slice(0, w.pos);
}

// ------------------------------------------------------------- decoding

function normLimits(l) {
  if (!l) return DEFAULT_LIMITS;
  const d = DEFAULT_LIMITS;
  const lim = {
    maxDepth: l.maxDepth ?? d.maxDepth,
    maxSize: l.maxSize ?? d.maxSize,
    maxElements: l.maxElements ?? d.maxElements,
    maxStrLen: l.maxStrLen ?? d.maxStrLen,
    maxBinLen: l.maxBinLen ?? d.maxBinLen,
    maxExtLen: l.maxExtLen ?? d.maxExtLen,
    extAllow: l.extAllow ?? d.extAllow,
  };
  for (const k of ['maxDepth', 'maxSize', 'maxElements', 'maxStrLen', 'maxBinLen', 'maxExtLen']) {
    if (typeof lim[k] !== 'number' || !(lim[k] >= 0)) throw new TypeError(`limits.${k} must be a number >= 0`);
  }
  return lim;
}

function extAllowed(lim, t) {
  const a = lim.extAllow;
  for (let i = 0; i < a.length; i++) if (a[i] === t) return true;
  return false;
}

// One decoding pass over bytes[start, end). With build false it only
// validates (check()). Positions are indices into bytes.
class Reader {
  constructor(bytes, lim, build, mapsAsMaps, start, end) {
    this.reset(bytes, lim, build, mapsAsMaps, start, end);
  }

  reset(bytes, lim, build, mapsAsMaps, start, end) {
    this.b = bytes;
    this.dv = null; // made when a multi-byte number is read (see v)
    this.p = start;
    this.end = end;
    this.lim = lim;
    this.maxDepth = Math.min(lim.maxDepth, DEPTH_CAP);
    this.depth = 0;
    this.elements = 1; // the outermost value
    this.build = build;
    this.mapsAsMaps = mapsAsMaps;
  }

  // A DataView of the input, made on first use: most messages (small ints,
  // short strings and binaries) never need one.
  get v() {
    return this.dv || (this.dv = new DataView(this.b.buffer, this.b.byteOffset, this.b.byteLength));
  }

  // Need n fixed header bytes after the type byte at p.
  need(n) {
    if (this.end - this.p - 1 < n) throw decodeError('SL_ERR_DECODE_TRUNCATED');
  }

  value() {
    if (this.p >= this.end) throw decodeError('SL_ERR_DECODE_TRUNCATED');
    const b = this.b;
    const t = b[this.p];
    if (t <= 0x7f) {
      this.p++;
      return t;
    }
    if (t >= 0xe0) {
      this.p++;
      return t - 0x100;
    }
    if (t <= 0x8f) {
      this.p++;
      return this.map(t & 0x0f);
    }
    if (t <= 0x9f) {
      this.p++;
      return this.array(t & 0x0f);
    }
    if (t <= 0xbf) {
      this.p++;
      return this.str(t & 0x1f);
    }
    let p = this.p;
    let n;
    switch (t) {
      case 0xc0:
        this.p++;
        return null;
      case 0xc1:
        throw decodeError('SL_ERR_DECODE_RESERVED');
      case 0xc2:
        this.p++;
        return false;
      case 0xc3:
        this.p++;
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6:
        n = this.len(t - 0xc4);
        return this.bin(n);
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const w = 1 << (t - 0xc7);
        this.need(w + 1);
        n = w === 1 ? b[p + 1] : w === 2 ? this.v.getUint16(p + 1) : this.v.getUint32(p + 1);
        const type = this.v.getInt8(p + 1 + w);
        this.p = p + 2 + w;
        return this.ext(type, n);
      }
      case 0xca:
        this.need(4);
        this.p = p + 5;
        return this.v.getFloat32(p + 1);
      case 0xcb:
        this.need(8);
        this.p = p + 9;
        return this.v.getFloat64(p + 1);
      case 0xcc:
        this.need(1);
        this.p = p + 2;
        return b[p + 1];
      case 0xcd:
        this.need(2);
        this.p = p + 3;
        return this.v.getUint16(p + 1);
      case 0xce:
        this.need(4);
        this.p = p + 5;
        return this.v.getUint32(p + 1);
      case 0xcf: {
        this.need(8);
        this.p = p + 9;
        const hi = this.v.getUint32(p + 1);
        if (hi < 0x200000) return hi * 0x100000000 + this.v.getUint32(p + 5);
        return this.v.getBigUint64(p + 1);
      }
      case 0xd0:
        this.need(1);
        this.p = p + 2;
        return this.v.getInt8(p + 1);
      case 0xd1:
        this.need(2);
        this.p = p + 3;
        return this.v.getInt16(p + 1);
      case 0xd2:
        this.need(4);
        this.p = p + 5;
        return this.v.getInt32(p + 1);
      case 0xd3: {
        this.need(8);
        this.p = p + 9;
        const hi = this.v.getInt32(p + 1);
        const lo = this.v.getUint32(p + 5);
        if (hi >= -0x200000 && hi < 0x200000 && !(hi === -0x200000 && lo === 0)) return hi * 0x100000000 + lo;
        return this.v.getBigInt64(p + 1);
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8: {
        this.need(1);
        const type = this.v.getInt8(p + 1);
        this.p = p + 2;
        return this.ext(type, 1 << (t - 0xd4));
      }
      case 0xd9:
      case 0xda:
      case 0xdb:
        n = this.len(t - 0xd9);
        return this.str(n);
      case 0xdc:
      case 0xdd:
        n = this.len(t - 0xdc + 1);
        return this.array(n);
      case 0xde:
      case 0xdf:
        n = this.len(t - 0xde + 1);
        return this.map(n);
    }
    /* unreachable: every byte value is handled above */
    throw decodeError('SL_ERR_DECODE_RESERVED');
  }

  // A length of 1 << k bytes after the type byte; moves past the header.
  len(k) {
    const w = 1 << k;
    this.need(w);
    const p = this.p;
    this.p = p + 1 + w;
    return w === 1 ? this.b[p + 1] : w === 2 ? this.v.getUint16(p + 1) : this.v.getUint32(p + 1);
  }

  str(n) {
    if (n > this.end - this.p) throw decodeError('SL_ERR_DECODE_LENGTH');
    if (n > this.lim.maxStrLen) throw decodeError('SL_ERR_DECODE_LENGTH');
    const p = this.p;
    this.p = p + n;
    if (!this.build) return undefined;
    if (n < 24) {
      // short ASCII strings are faster without TextDecoder
      const b = this.b;
      let s = '';
      for (let i = p; i < p + n; i++) {
        const c = b[i];
        if (c >= 0x80) return textDecoder.decode(b.subarray(p, p + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return textDecoder.decode(this.b.subarray(p, p + n));
  }

  bin(n) {
    if (n > this.end - this.p) throw decodeError('SL_ERR_DECODE_LENGTH');
    if (n > this.lim.maxBinLen) throw decodeError('SL_ERR_DECODE_LENGTH');
    const p = this.p;
    this.p = p + n;
    return this.build ? this.b.slice(p, p + n) : undefined;
  }

  ext(type, n) {
    if (!extAllowed(this.lim, type)) throw decodeError('SL_ERR_DECODE_EXT');
    if (n > this.end - this.p) throw decodeError('SL_ERR_DECODE_LENGTH');
    if (n > this.lim.maxExtLen) throw decodeError('SL_ERR_DECODE_LENGTH');
    const p = this.p;
    this.p = p + n;
    return this.build ? new Ext(type, this.b.slice(p, p + n)) : undefined;
  }

  // A container announcing `kids` children: depth, length, budget, in that order.
  open(kids) {
    if (this.depth >= this.maxDepth) throw decodeError('SL_ERR_DECODE_DEPTH');
    if (kids > this.end - this.p) throw decodeError('SL_ERR_DECODE_LENGTH');
    this.elements += kids;
    if (this.elements > this.lim.maxElements) throw decodeError('SL_ERR_DECODE_BUDGET');
    this.depth++;
  }

  array(n) {
    this.open(n);
    let a;
    if (this.build) {
      a = new Array(n);
      for (let i = 0; i < n; i++) a[i] = this.value();
    } else {
      for (let i = 0; i < n; i++) this.value();
    }
    this.depth--;
    return a;
  }

  map(n) {
    this.open(n * 2);
    if (!this.build) {
      for (let i = 0; i < 2 * n; i++) this.value();
      this.depth--;
      return undefined;
    }
    const kv = new Array(2 * n);
    let allStr = !this.mapsAsMaps;
    for (let i = 0; i < 2 * n; i += 2) {
      kv[i] = this.value();
      kv[i + 1] = this.value();
      if (typeof kv[i] !== 'string') allStr = false;
    }
    this.depth--;
    if (!allStr) {
      const m = new Map();
      for (let i = 0; i < 2 * n; i += 2) m.set(kv[i], kv[i + 1]);
      return m;
    }
    const o = {};
    for (let i = 0; i < 2 * n; i += 2) {
      if (kv[i] === '__proto__') {
        Object.defineProperty(o, '__proto__', { value: kv[i + 1], enumerable: true, writable: true, configurable: true });
      } else {
        o[kv[i]] = kv[i + 1];
      }
    }
    return o;
  }
}

function toBytes(bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new TypeError('msgpack input must be a Uint8Array, an ArrayBuffer or a view');
}

function run(bytes, limits, build, mapsAsMaps) {
  const b = toBytes(bytes);
  return runAt(b, 0, b.length, normLimits(limits), build, mapsAsMaps);
}

// A Reader kept between decodes (a message loop decodes one value per
// message); a decode inside a decode takes a new one.
let spareReader = null;

function runAt(b, start, end, lim, build, mapsAsMaps) {
  if (end - start > lim.maxSize) throw decodeError('SL_ERR_DECODE_TOO_BIG');
  let r = spareReader;
  if (r === null) r = new Reader(b, lim, build, mapsAsMaps, start, end);
  else {
    spareReader = null;
    r.reset(b, lim, build, mapsAsMaps, start, end);
  }
  try {
    if (r.elements > lim.maxElements) throw decodeError('SL_ERR_DECODE_BUDGET');
    const v = r.value();
    if (r.p !== end) throw decodeError('SL_ERR_DECODE_TRAILING');
    return v;
  } finally {
    r.b = null; // pins neither the input nor the wasm memory
    r.dv = null;
    spareReader = r;
  }
}

/**
 * Decode exactly one msgpack value. options: {limits, maps: 'object'|'map'}.
 * Throws a StarlingError ('SL_ERR_DECODE_*') for input the C side rejects too.
 */
export function decode(bytes, options) {
  return run(bytes, options && options.limits, true, !!options && options.maps === 'map');
}

/**
 * decode() of bytes[start, end) of a Uint8Array, with the default limits
 * (no view of the range is made: for decoding in place in the wasm memory).
 */
export function decodeAt(bytes, start, end) {
  return runAt(bytes, start, end, DEFAULT_LIMITS, true, false);
}

/**
 * Validate exactly one msgpack value as sl_msgpack_check() does, without
 * building it. Returns null if the bytes are acceptable, else the error name.
 */
export function check(bytes, limits) {
  try {
    run(bytes, limits, false, false);
    return null;
  } catch (e) {
    if (e && typeof e.code === 'string' && e.code.startsWith('SL_ERR_DECODE_')) return e.code;
    throw e;
  }
}
