/*
 * starling/schema.h: the wire schema, its limits and its framing.
 *
 * Every message that leaves a node is an envelope: one msgpack array carrying
 * the sender, the receiver, the user type, the correlation id, the priority,
 * the kind and the opaque payload bytes (themselves msgpack, packed by the
 * user with the helpers in starling/pack.h). schemas/README.md is the
 * normative description of the bytes; schemas/vectors.json holds test vectors
 * that the C tests check and the JS side checks too.
 *
 * Everything here is hostile-input safe and allocation-free except the frame
 * reader (which buffers a frame through an sl_mem allocator):
 *  - sl_msgpack_check() walks exactly one msgpack value, enforcing the limits
 *    of an sl_limits (depth, lengths against the remaining bytes, an element
 *    budget, a maximum size, an extension-type allow-list) without recursion
 *    and without allocating. Nothing is handed to msgpack-c before it passed.
 *  - sl_envelope_decode() reads an envelope with a zero-allocation cursor and
 *    returns the payload as a pointer into the input buffer.
 *  - sl_frame_* put a QUIC variable-length integer before each envelope on a
 *    stream, and reject a frame whose announced length is over the maximum
 *    before buffering any of it.
 *
 * Each decoding failure has its own code (SL_ERR_DECODE_* in common.h); the
 * order in which the checks are made is part of the format (README.md), so
 * that the C and JS decoders report the same code for the same bytes.
 */
#ifndef STARLING_SCHEMA_H
#define STARLING_SCHEMA_H

#include "common.h"
#include "actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ limits */

/* Default maximum payload, matching sl_core_settings.max_message_size. */
#define SL_LIMITS_DEFAULT_PAYLOAD ((size_t)64 * 1024 * 1024)
/* What the default max_size allows on top of the payload for headers. */
#define SL_LIMITS_HEADER_ALLOWANCE ((size_t)1024)
/* Defaults of sl_limits_default(). */
#define SL_LIMITS_DEFAULT_DEPTH 32u
#define SL_LIMITS_DEFAULT_SIZE (SL_LIMITS_DEFAULT_PAYLOAD + SL_LIMITS_HEADER_ALLOWANCE)
#define SL_LIMITS_DEFAULT_ELEMENTS ((uint32_t)1 << 20)
/*
 * sl_msgpack_check() keeps one counter per open container on the C stack, so
 * max_depth values above this cap behave as the cap.
 */
#define SL_LIMITS_DEPTH_CAP 128u

/*
 * Decoding limits. Fill with sl_limits_default() and change what you need;
 * new fields are only ever appended. Every decoding function that takes a
 * `const sl_limits *` accepts NULL for the defaults.
 */
typedef struct sl_limits {
    /*
     * Maximum nesting of arrays and maps; the outermost container is depth 1,
     * empty containers count, so 0 allows scalars only. Default 32, which is
     * also the most msgpack-c's unpacker can handle (sl_unpack() clamps to it).
     */
    uint32_t max_depth;
    /* Maximum encoded size of one message in bytes, checked before anything is
     * read. Default 64 MiB + 1 KiB. */
    size_t max_size;
    /*
     * Element budget per message: the number of values (scalars, containers,
     * map keys and map values each count one, the outermost value included),
     * charged when a container header announces its children. Default 2^20.
     */
    uint32_t max_elements;
    size_t max_str_len; /* maximum length of one str (default 64 MiB) */
    size_t max_bin_len; /* maximum length of one bin, also the envelope payload (64 MiB) */
    size_t max_ext_len; /* maximum data length of one allowed ext value (64 MiB) */
    /*
     * Extension-type allow-list: bit (t & 255) set allows ext type t (int8).
     * Default: nothing is allowed, not even the timestamp type -1. Use
     * sl_limits_allow_ext() to set a bit.
     */
    uint64_t ext_allow[4];
} sl_limits;

/* Fill `lim` with the defaults above. */
SL_EXTERN void sl_limits_default(sl_limits *lim);
/* Allow (on = true) or forbid msgpack extension type `type` in `lim`. */
SL_EXTERN void sl_limits_allow_ext(sl_limits *lim, int8_t type, bool on);

/*
 * Validate exactly one msgpack value at p[0..len) without allocating and
 * without recursion. Checks, for each value in order: its header is complete
 * (TRUNCATED), it is not the reserved byte 0xc1 (RESERVED), an ext type is on
 * the allow-list (EXT), a container does not open deeper than max_depth
 * (DEPTH), a declared length or element count fits in the remaining bytes and
 * under max_str_len / max_bin_len / max_ext_len (LENGTH), and a container's
 * children keep the message within max_elements (BUDGET).
 *
 * If `consumed` is NULL the value must fill the input exactly (bytes after it
 * give SL_ERR_DECODE_TRAILING) and an input longer than lim->max_size fails
 * at once with SL_ERR_DECODE_TOO_BIG, before any byte is read. If `consumed`
 * is not NULL, trailing bytes are allowed, *consumed receives the size of the
 * value on success, and only the first max_size bytes are ever read: a value
 * that needs more gives SL_ERR_DECODE_TOO_BIG.
 *
 * Returns SL_OK, SL_ERR_INVAL (p NULL with len > 0), or one of
 * SL_ERR_DECODE_TRUNCATED, _RESERVED, _EXT, _DEPTH, _LENGTH, _BUDGET,
 * _TRAILING, _TOO_BIG.
 */
SL_EXTERN int sl_msgpack_check(const uint8_t *p, size_t len, const sl_limits *lim,
                               size_t *consumed);

/* ---------------------------------------------------------- envelope */

/*
 * A decoded or to-be-encoded envelope. Its fields mirror sl_msg so that the
 * runtime can move between the two field by field.
 */
typedef struct sl_envelope {
    sl_id from;          /* sender; SL_ID_NONE when sent from outside any actor */
    sl_id to;            /* receiver */
    uint64_t corr;       /* correlation: ask id, monitor ref, timer id, or 0 */
    uint32_t type;       /* user message type */
    uint8_t kind;        /* sl_kind, 0..8 */
    uint8_t prio;        /* sl_prio, 0..4 */
    uint16_t flags;      /* extra wire flag bits; none is defined in version 1: must be 0 */
    int32_t status;      /* FAIL: sl_err; DOWN/EXIT: sl_reason; else 0 */
    int32_t code;        /* DOWN/EXIT with reason CRASH: the crash code; else 0 */
    size_t len;          /* payload length in bytes */
    const uint8_t *data; /* payload bytes (opaque; msgpack by convention), NULL if len is 0 */
} sl_envelope;

/* Largest encoding of everything but the payload (the worst case of README.md). */
#define SL_ENVELOPE_MAX_OVERHEAD 69u
/* Envelope version this codec reads and writes. */
#define SL_ENVELOPE_VERSION 1

/*
 * A buffer size that always holds the envelope of a `payload_len`-byte
 * payload: payload_len + SL_ENVELOPE_MAX_OVERHEAD, or SIZE_MAX if that
 * overflows.
 */
SL_EXTERN size_t sl_envelope_max_size(size_t payload_len);

/*
 * The exact encoded size of `e` with the given implied nodes, or 0 if `e` is
 * invalid (see sl_envelope_encode for what makes it invalid).
 */
SL_EXTERN size_t sl_envelope_encoded_size(const sl_envelope *e, uint64_t implied_to_node,
                                          uint64_t implied_from_node);

/*
 * Encode `e` into buf[0..cap) with msgpack-c's packer. An id whose node
 * equals the implied node of its position (`implied_to_node` for e->to,
 * `implied_from_node` for e->from) is written in the short form (its local
 * part only); any id with local 0 is written as 0 (no actor). status and code
 * are written only when non-zero. The caller keeps ownership of `buf` and of
 * e->data; nothing is allocated.
 *
 * Returns SL_OK and sets *len to the bytes written; SL_ERR_AGAIN if cap is too
 * small, with nothing written and *len set to the size needed (retry with a
 * bigger buffer; sl_envelope_max_size() never needs a retry); SL_ERR_INVAL if
 * an argument is NULL, prio > 4, kind > 8, flags is not 0, e->len > 0 with
 * e->data NULL, or e->len > UINT32_MAX.
 */
SL_EXTERN int sl_envelope_encode(const sl_envelope *e, uint64_t implied_to_node,
                                 uint64_t implied_from_node, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decode one envelope from buf[0..len) into *out without allocating. On
 * success out->data points into `buf` (no copy): `buf` must outlive the use
 * of out->data. A short-form id gets the implied node of its position. The
 * payload is opaque here; check it with sl_unpack() or sl_msgpack_check().
 * `lim` may be NULL for the defaults; max_size and max_bin_len apply
 * (the envelope has a fixed shape, so depth and budget cannot be exceeded).
 *
 * `consumed` works as in sl_msgpack_check(): NULL means the envelope must
 * fill the input exactly and an input over lim->max_size is refused before
 * any byte is read.
 *
 * The checks happen in the order README.md gives. Returns SL_OK or:
 * SL_ERR_INVAL (buf or out NULL), SL_ERR_DECODE_TOO_BIG (over max_size),
 * _TRUNCATED (the input ends inside a header), _LENGTH (a declared count or
 * length exceeds the remaining bytes or max_bin_len), _VERSION (not an array
 * of 6, 7 or 8 elements), _TYPE (a field has the wrong msgpack type or an
 * out-of-range value), _RESERVED (byte 0xc1, reserved flag bits, priority
 * 5..7 or kind 9..15), _EXT (an extension type where a field should be),
 * _TRAILING (bytes after the envelope when consumed is NULL). On failure
 * *out is unspecified.
 */
SL_EXTERN int sl_envelope_decode(const uint8_t *buf, size_t len, uint64_t implied_to_node,
                                 uint64_t implied_from_node, const sl_limits *lim, sl_envelope *out,
                                 size_t *consumed);

/* ------------------------------------------------------------ frames */

/*
 * Framing for streams: each envelope is preceded by its length as a QUIC
 * variable-length integer (RFC 9000 section 16: the two high bits of the first
 * byte give the size, 1, 2, 4 or 8 bytes, big-endian, values below 2^62).
 */
#define SL_FRAME_MAX_HEADER 8
#define SL_FRAME_VARINT_MAX ((UINT64_C(1) << 62) - 1)

/* Bytes needed to write `frame_len` as a QUIC varint (1, 2, 4 or 8), or 0 if it is >= 2^62. */
SL_EXTERN size_t sl_frame_header_size(uint64_t frame_len);

/*
 * Write the shortest varint for `frame_len` into buf[0..cap).
 * Returns SL_OK and sets *hdr_len; SL_ERR_AGAIN if cap is too small (nothing
 * written); SL_ERR_INVAL if frame_len >= 2^62 or an argument is NULL.
 */
SL_EXTERN int sl_frame_write_header(uint64_t frame_len, uint8_t *buf, size_t cap, size_t *hdr_len);

/*
 * Read a frame header from buf[0..len). Longer-than-needed varint encodings
 * are accepted, as RFC 9000 allows. The length is checked against max_frame
 * here, so that the caller never buffers any byte of an oversize frame.
 * Returns SL_OK (sets *frame_len and *hdr_len), SL_ERR_AGAIN (the varint is
 * not complete yet: feed more bytes), SL_ERR_DECODE_TOO_BIG (frame_len >
 * max_frame), SL_ERR_INVAL (a NULL argument).
 */
SL_EXTERN int sl_frame_read_header(const uint8_t *buf, size_t len, uint64_t max_frame,
                                   uint64_t *frame_len, size_t *hdr_len);

/*
 * Incremental frame reader for one stream. Feed it the bytes as they arrive;
 * it hands out one complete frame at a time. A frame that arrives whole in one
 * chunk is returned in place (no copy); otherwise the reader buffers it,
 * growing its buffer by doubling as bytes actually arrive (never to the
 * announced size in one go), so a peer that announces a large frame and sends
 * little costs at most twice what it sent. Caller-provided storage:
 * sl_frame_reader_init() / sl_frame_reader_fini().
 */
typedef struct sl_frame_reader {
    const sl_mem *mem;                /* allocator for the reassembly buffer */
    uint64_t max_frame;               /* largest acceptable frame length */
    uint8_t hdr[SL_FRAME_MAX_HEADER]; /* header bytes received so far */
    uint8_t hdr_have;                 /* count of bytes in hdr */
    bool have_len;                    /* header complete; want is valid */
    bool ready;    /* the last feed returned a buffered frame; drop it next time */
    int err;       /* sticky error: after one, every feed returns it */
    uint64_t want; /* length of the frame being assembled */
    uint8_t *buf;  /* reassembly buffer (owned) */
    size_t cap;    /* its capacity */
    size_t have;   /* bytes of the frame in buf */
} sl_frame_reader;

/*
 * Initialise a reader that refuses frames over `max_frame` bytes. `mem` may be
 * NULL for the C library's allocator; otherwise it must outlive the reader.
 * Allocates nothing.
 */
SL_EXTERN void sl_frame_reader_init(sl_frame_reader *r, uint64_t max_frame, const sl_mem *mem);

/*
 * Consume bytes from data[0..len) until one frame is complete or the input is
 * used up; *used receives the bytes consumed (call again with the rest).
 * Returns SL_OK with *frame / *frame_len set to the complete frame (it points
 * into `data` or into the reader, and is valid until the next call on this
 * reader); SL_ERR_AGAIN when all input was consumed and no frame is complete
 * yet; SL_ERR_DECODE_TOO_BIG when a header announces more than max_frame (no
 * byte of that frame is buffered); SL_ERR_NOMEM; SL_ERR_INVAL (NULL
 * argument). After TOO_BIG or NOMEM the stream is out of sync: the reader
 * keeps returning that error and the caller should reset the stream.
 */
SL_EXTERN int sl_frame_reader_feed(sl_frame_reader *r, const uint8_t *data, size_t len,
                                   size_t *used, const uint8_t **frame, size_t *frame_len);

/* True if the reader holds part of a frame (or of a header). */
SL_EXTERN bool sl_frame_reader_pending(const sl_frame_reader *r);

/* Free the reassembly buffer. The reader may be initialised again afterwards. */
SL_EXTERN void sl_frame_reader_fini(sl_frame_reader *r);

#ifdef __cplusplus
}
#endif
#endif /* STARLING_SCHEMA_H */
