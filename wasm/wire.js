// wire.js: the Starling envelope and stream framing in JavaScript.
//
// The same codec as schemas/envelope.c and schemas/frame.c, written from
// the normative text of schemas/README.md (sections 1, 3 and 4) and checked
// against schemas/vectors.json by the tests. The runtime in the module uses
// the C codec; this one is for JavaScript that handles Starling bytes
// itself (tools, a transport written in JS, tests).
//
// 64-bit fields (node ids, local ids, corr, frame lengths) are BigInts.
// An envelope is
//   { prio, kind, flags, type, to: {node, local}, from: {node, local},
//     corr, status, code, payload: Uint8Array }
// Decoding never copies the payload: it is a view into the input.

import { decodeError } from './errors.js';
import { DEFAULT_LIMITS } from './msgpack.js';

const U32_MAX = 0xffffffffn;
const U64_MAX = (1n << 64n) - 1n;
const KIND_WIRE_MAX = 14; // SL_KIND_WIRE_COUNT - 1 (include/starling/actor.h)
/** Largest encoding of everything but the payload (SL_ENVELOPE_MAX_OVERHEAD). */
export const ENVELOPE_MAX_OVERHEAD = 69;
/** Largest frame length a QUIC varint holds (SL_FRAME_VARINT_MAX). */
export const FRAME_VARINT_MAX = (1n << 62n) - 1n;

// ------------------------------------------------------------- encoding

class Out {
  constructor(n) {
    this.b = new Uint8Array(n);
    this.v = new DataView(this.b.buffer);
    this.p = 0;
  }
  u8(x) {
    this.b[this.p++] = x;
  }
  // An unsigned integer (BigInt or Number) in its shortest msgpack format.
  uint(x) {
    x = BigInt(x);
    if (x < 0x80n) this.u8(Number(x));
    else if (x <= 0xffn) {
      this.u8(0xcc);
      this.u8(Number(x));
    } else if (x <= 0xffffn) {
      this.u8(0xcd);
      this.v.setUint16(this.p, Number(x));
      this.p += 2;
    } else if (x <= U32_MAX) {
      this.u8(0xce);
      this.v.setUint32(this.p, Number(x));
      this.p += 4;
    } else {
      this.u8(0xcf);
      this.v.setBigUint64(this.p, x);
      this.p += 8;
    }
  }
  // A signed 32-bit integer as msgpack_pack_int32 writes it.
  int32(x) {
    if (x >= 0) return this.uint(x);
    if (x >= -32) this.u8(x & 0xff);
    else if (x >= -128) {
      this.u8(0xd0);
      this.u8(x & 0xff);
    } else if (x >= -32768) {
      this.u8(0xd1);
      this.v.setInt16(this.p, x);
      this.p += 2;
    } else {
      this.u8(0xd2);
      this.v.setInt32(this.p, x);
      this.p += 4;
    }
  }
  id(id, implied) {
    const local = BigInt(id.local);
    if (local === 0n) return this.uint(0n);
    const node = BigInt(id.node);
    if (node === BigInt(implied)) return this.uint(local);
    this.u8(0x92);
    this.uint(node);
    this.uint(local);
  }
}

function isU64(x) {
  try {
    x = BigInt(x);
  } catch {
    return false;
  }
  return x >= 0n && x <= U64_MAX;
}

function isInt32(x) {
  return Number.isInteger(x) && x >= -2147483648 && x <= 2147483647;
}

/**
 * Encode an envelope in the canonical form (what sl_envelope_encode writes).
 * Ids whose node is the implied node of their position are written short.
 * Throws RangeError for what the C encoder refuses with SL_ERR_INVAL.
 */
export function encodeEnvelope(e, impliedToNode, impliedFromNode) {
  const payload = e.payload || new Uint8Array(0);
  const status = e.status || 0;
  const code = e.code || 0;
  if (!Number.isInteger(e.prio) || e.prio < 0 || e.prio > 4) throw new RangeError('prio must be 0..4');
  // 0..8 are what actors receive; 9..14 are the node-to-node control kinds
  // (MONITOR, DEMONITOR, LINK, UNLINK, STOP, NODE); 15 is reserved.
  if (!Number.isInteger(e.kind) || e.kind < 0 || e.kind > KIND_WIRE_MAX) throw new RangeError('kind must be 0..14');
  if ((e.flags || 0) !== 0) throw new RangeError('flags must be 0 in envelope version 1');
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 0xffffffff) throw new RangeError('type must be a uint32');
  if (!isInt32(status) || !isInt32(code)) throw new RangeError('status and code must be int32');
  for (const x of [e.to.node, e.to.local, e.from.node, e.from.local, e.corr || 0n]) {
    if (!isU64(x)) throw new RangeError('ids and corr must be uint64');
  }
  if (payload.length > 0xffffffff) throw new RangeError('payload too large');
  const n = code !== 0 ? 8 : status !== 0 ? 7 : 6;
  const o = new Out(ENVELOPE_MAX_OVERHEAD + payload.length);
  o.u8(0x90 | n);
  o.uint(e.prio | (e.kind << 3));
  o.uint(e.type);
  o.id(e.to, impliedToNode);
  o.id(e.from, impliedFromNode);
  o.uint(e.corr || 0n);
  const len = payload.length;
  if (len <= 0xff) {
    o.u8(0xc4);
    o.u8(len);
  } else if (len <= 0xffff) {
    o.u8(0xc5);
    o.v.setUint16(o.p, len);
    o.p += 2;
  } else {
    o.u8(0xc6);
    o.v.setUint32(o.p, len);
    o.p += 4;
  }
  o.b.set(payload, o.p);
  o.p += len;
  if (n >= 7) o.int32(status);
  if (n >= 8) o.int32(code);
  return o.b.slice(0, o.p);
}

// ------------------------------------------------------------- decoding

// The msgpack header cursor of schemas/wire.h: one header at a time.
const NIL = 0, BOOL = 1, UINT = 2, INT = 3, FLOAT = 4, STR = 5, BIN = 6, EXT = 7, ARRAY = 8, MAP = 9;

class Cursor {
  constructor(b) {
    this.b = b;
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.p = 0;
    this.end = b.length;
  }
  left() {
    return this.end - this.p;
  }
  // Read one header: {kind, u (BigInt: value, length or count), i (BigInt), ext}.
  head() {
    if (this.p >= this.end) throw decodeError('SL_ERR_DECODE_TRUNCATED');
    const b = this.b[this.p];
    const h = { kind: 0, u: 0n, i: 0n, ext: 0 };
    if (b <= 0x7f) {
      h.kind = UINT;
      h.u = BigInt(b);
      this.p++;
      return h;
    }
    if (b >= 0xe0) {
      h.kind = INT;
      h.i = BigInt(b - 0x100);
      this.p++;
      return h;
    }
    if (b <= 0xbf) {
      h.kind = b <= 0x8f ? MAP : b <= 0x9f ? ARRAY : STR;
      h.u = BigInt(b & (b >= 0xa0 ? 0x1f : 0x0f));
      this.p++;
      return h;
    }
    let n = 0;
    switch (b) {
      case 0xc0: h.kind = NIL; break;
      case 0xc1: throw decodeError('SL_ERR_DECODE_RESERVED');
      case 0xc2: case 0xc3: h.kind = BOOL; h.u = BigInt(b & 1); break;
      case 0xc4: h.kind = BIN; n = 1; break;
      case 0xc5: h.kind = BIN; n = 2; break;
      case 0xc6: h.kind = BIN; n = 4; break;
      case 0xc7: h.kind = EXT; n = 1; break;
      case 0xc8: h.kind = EXT; n = 2; break;
      case 0xc9: h.kind = EXT; n = 4; break;
      case 0xca: h.kind = FLOAT; n = 4; break;
      case 0xcb: h.kind = FLOAT; n = 8; break;
      case 0xcc: h.kind = UINT; n = 1; break;
      case 0xcd: h.kind = UINT; n = 2; break;
      case 0xce: h.kind = UINT; n = 4; break;
      case 0xcf: h.kind = UINT; n = 8; break;
      case 0xd0: h.kind = INT; n = 1; break;
      case 0xd1: h.kind = INT; n = 2; break;
      case 0xd2: h.kind = INT; n = 4; break;
      case 0xd3: h.kind = INT; n = 8; break;
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        h.kind = EXT;
        h.u = BigInt(1 << (b - 0xd4));
        n = 1;
        break;
      case 0xd9: h.kind = STR; n = 1; break;
      case 0xda: h.kind = STR; n = 2; break;
      case 0xdb: h.kind = STR; n = 4; break;
      case 0xdc: h.kind = ARRAY; n = 2; break;
      case 0xdd: h.kind = ARRAY; n = 4; break;
      case 0xde: h.kind = MAP; n = 2; break;
      case 0xdf: h.kind = MAP; n = 4; break;
    }
    const extra = b >= 0xc7 && b <= 0xc9 ? 1 : 0;
    if (this.left() - 1 < n + extra) throw decodeError('SL_ERR_DECODE_TRUNCATED');
    const q = this.p + 1;
    if (b >= 0xd4 && b <= 0xd8) {
      h.ext = this.v.getInt8(q);
    } else if (h.kind === INT) {
      h.i = n === 1 ? BigInt(this.v.getInt8(q)) : n === 2 ? BigInt(this.v.getInt16(q))
        : n === 4 ? BigInt(this.v.getInt32(q)) : this.v.getBigInt64(q);
    } else if (h.kind !== FLOAT && n > 0) {
      h.u = n === 1 ? BigInt(this.b[q]) : n === 2 ? BigInt(this.v.getUint16(q))
        : n === 4 ? BigInt(this.v.getUint32(q)) : this.v.getBigUint64(q);
      if (extra) h.ext = this.v.getInt8(q + n);
    }
    this.p += 1 + n + extra;
    return h;
  }
}

function extAllowed(lim, t) {
  return (lim.extAllow || []).includes(t);
}

function wrongType(h, lim) {
  if (h.kind === EXT && !extAllowed(lim, h.ext)) return decodeError('SL_ERR_DECODE_EXT');
  return decodeError('SL_ERR_DECODE_TYPE');
}

function rdUint(c, lim, max) {
  const h = c.head();
  if (h.kind !== UINT) throw wrongType(h, lim);
  if (h.u > max) throw decodeError('SL_ERR_DECODE_TYPE');
  return h.u;
}

function rdInt32(c, lim) {
  const h = c.head();
  if (h.kind === UINT && h.u <= 0x7fffffffn) return Number(h.u);
  if (h.kind === INT && h.i >= -0x80000000n && h.i <= 0x7fffffffn) return Number(h.i);
  if (h.kind === UINT || h.kind === INT) throw decodeError('SL_ERR_DECODE_TYPE');
  throw wrongType(h, lim);
}

function rdId(c, lim, implied) {
  const h = c.head();
  if (h.kind === UINT) return { node: h.u === 0n ? 0n : implied, local: h.u };
  if (h.kind !== ARRAY) throw wrongType(h, lim);
  if (h.u > BigInt(c.left())) throw decodeError('SL_ERR_DECODE_LENGTH');
  if (h.u !== 2n) throw decodeError('SL_ERR_DECODE_TYPE');
  const node = rdUint(c, lim, U64_MAX);
  const local = rdUint(c, lim, U64_MAX);
  return { node: local === 0n ? 0n : node, local };
}

/**
 * Decode one envelope that fills `bytes` exactly, with the checks in the
 * order of schemas/README.md section 3. limits: {maxSize, maxBinLen,
 * extAllow} (others do not apply to the fixed shape). Throws a
 * StarlingError ('SL_ERR_DECODE_*').
 */
export function decodeEnvelope(bytes, impliedToNode, impliedFromNode, limits) {
  const lim = { ...DEFAULT_LIMITS, ...(limits || {}) };
  const implTo = BigInt(impliedToNode);
  const implFrom = BigInt(impliedFromNode);
  if (bytes.length > lim.maxSize) throw decodeError('SL_ERR_DECODE_TOO_BIG');
  const c = new Cursor(bytes);
  let h = c.head();
  if (h.kind !== ARRAY) throw wrongType(h, lim);
  if (h.u > BigInt(c.left())) throw decodeError('SL_ERR_DECODE_LENGTH');
  if (h.u < 6n || h.u > 8n) throw decodeError('SL_ERR_DECODE_VERSION');
  const n = Number(h.u);
  const flags = rdUint(c, lim, U64_MAX);
  if (flags >> 7n !== 0n || (flags & 7n) >= 5n || ((flags >> 3n) & 15n) > BigInt(KIND_WIRE_MAX)) {
    throw decodeError('SL_ERR_DECODE_RESERVED');
  }
  const e = { prio: Number(flags & 7n), kind: Number((flags >> 3n) & 15n), flags: 0 };
  e.type = Number(rdUint(c, lim, U32_MAX));
  e.to = rdId(c, lim, implTo);
  e.from = rdId(c, lim, implFrom);
  e.corr = rdUint(c, lim, U64_MAX);
  h = c.head();
  if (h.kind !== BIN) throw wrongType(h, lim);
  if (h.u > BigInt(c.left())) throw decodeError('SL_ERR_DECODE_LENGTH');
  if (h.u > BigInt(lim.maxBinLen)) throw decodeError('SL_ERR_DECODE_LENGTH');
  const len = Number(h.u);
  e.payload = bytes.subarray(c.p, c.p + len);
  c.p += len;
  e.status = n >= 7 ? rdInt32(c, lim) : 0;
  e.code = n >= 8 ? rdInt32(c, lim) : 0;
  if (c.p !== bytes.length) throw decodeError('SL_ERR_DECODE_TRAILING');
  return e;
}

// --------------------------------------------------------------- frames

/** Bytes of the shortest QUIC varint for `len` (1, 2, 4 or 8), 0 if >= 2^62. */
export function frameHeaderSize(len) {
  len = BigInt(len);
  if (len < 0n) return 0;
  if (len < 64n) return 1;
  if (len < 16384n) return 2;
  if (len < 1n << 30n) return 4;
  if (len <= FRAME_VARINT_MAX) return 8;
  return 0;
}

/** The shortest varint for a frame length, as sl_frame_write_header writes it. */
export function writeFrameHeader(len) {
  len = BigInt(len);
  const n = frameHeaderSize(len);
  if (n === 0) throw new RangeError('frame length must be 0..2^62-1');
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = Number((len >> BigInt(8 * (n - 1 - k))) & 0xffn);
  out[0] |= [0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0][n];
  return out;
}

/**
 * Read a frame header (any varint width, as RFC 9000 allows). Returns
 * {length: BigInt, headerLength}, or null if more bytes are needed; throws
 * SL_ERR_DECODE_TOO_BIG if the length is over maxFrame (default 2^62-1).
 */
export function readFrameHeader(bytes, maxFrame = FRAME_VARINT_MAX) {
  if (bytes.length === 0) return null;
  const n = 1 << (bytes[0] >> 6);
  if (bytes.length < n) return null;
  let v = BigInt(bytes[0] & 0x3f);
  for (let k = 1; k < n; k++) v = (v << 8n) | BigInt(bytes[k]);
  if (v > BigInt(maxFrame)) throw decodeError('SL_ERR_DECODE_TOO_BIG');
  return { length: v, headerLength: n };
}
