// errors.js: the one error class of the JavaScript API.
//
// Every failure the Starling JS API reports is a StarlingError whose `code`
// is the symbolic name of the C error (`sl_err_name()`), e.g. 'SL_ERR_TIMEOUT'
// for an ask that ran out of time or 'SL_ERR_DECODE_DEPTH' for msgpack nested
// too deep, `errno` its negative number, and `message` the C library's text
// (`sl_strerror()`). Programming mistakes (a bad argument type) are
// TypeError / RangeError, as in the rest of JavaScript.

/** A Starling error: `code` is the C error name, `errno` its value. */
export class StarlingError extends Error {
  constructor(code, message, errno) {
    super(message || code);
    this.name = 'StarlingError';
    this.code = code;
    this.errno = errno === undefined ? ERRNO[code] : errno;
  }
}

// The decoding errors, which the JS codec reports without the wasm module
// (values and texts as in include/starling/common.h).
export const DECODE_ERRORS = Object.freeze({
  SL_ERR_DECODE_TRUNCATED: [-40, 'msgpack input ends before the value does'],
  SL_ERR_DECODE_DEPTH: [-41, 'msgpack nesting deeper than the limit'],
  SL_ERR_DECODE_LENGTH: [-42, 'msgpack length exceeds the remaining bytes or the limit'],
  SL_ERR_DECODE_BUDGET: [-43, 'msgpack message exceeds its element budget'],
  SL_ERR_DECODE_EXT: [-44, 'msgpack extension type not allowed'],
  SL_ERR_DECODE_TYPE: [-45, 'msgpack value has the wrong type for this field'],
  SL_ERR_DECODE_TRAILING: [-46, 'bytes left over after the message'],
  SL_ERR_DECODE_VERSION: [-47, 'unsupported envelope version or shape'],
  SL_ERR_DECODE_TOO_BIG: [-48, 'encoded message larger than the maximum size'],
  SL_ERR_DECODE_RESERVED: [-49, 'reserved byte 0xc1 or reserved flag bits set'],
});

const ERRNO = Object.create(null);
for (const [name, [errno]] of Object.entries(DECODE_ERRORS)) ERRNO[name] = errno;

/** A StarlingError for one of the decoding errors (by name). */
export function decodeError(code) {
  const e = DECODE_ERRORS[code];
  return new StarlingError(code, e ? e[1] : code, e ? e[0] : undefined);
}
