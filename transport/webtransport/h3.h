/*
 * h3.h: the small wire codecs of HTTP/3 and WebTransport over HTTP/3 that
 * the WebTransport server needs, written to be fed bytes as they arrive.
 * Internal to transport/ (sl__* names); see the narrative in h3.c.
 *
 * Nothing here allocates, does I/O or reads a clock. Every reader takes
 * input split at any byte and keeps at most a few integers of state; the
 * element bodies it does not need are streamed or skipped, never buffered,
 * so the memory a peer can make us hold is decided by the caller's limits
 * (SL__H3_*_MAX below), not by lengths on the wire.
 */
#ifndef SL_WT_H3_H
#define SL_WT_H3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ constants */

#define SL__VARINT_MAX 0x3fffffffffffffffull /* largest QUIC varint (2^62 - 1) */

/* HTTP/3 frame types (RFC 9114 7.2) and WebTransport's stream signal. */
#define SL__H3_FRAME_DATA 0x00
#define SL__H3_FRAME_HEADERS 0x01
#define SL__H3_FRAME_CANCEL_PUSH 0x03
#define SL__H3_FRAME_SETTINGS 0x04
#define SL__H3_FRAME_PUSH_PROMISE 0x05
#define SL__H3_FRAME_GOAWAY 0x07
#define SL__H3_FRAME_MAX_PUSH_ID 0x0d
#define SL__H3_FRAME_WT_STREAM 0x41 /* WEBTRANSPORT_STREAM: session id follows, not a length */

/* Unidirectional stream types (RFC 9114 6.2, RFC 9204 4.2, WebTransport). */
#define SL__H3_UNI_CONTROL 0x00
#define SL__H3_UNI_PUSH 0x01
#define SL__H3_UNI_QPACK_ENCODER 0x02
#define SL__H3_UNI_QPACK_DECODER 0x03
#define SL__H3_UNI_WT 0x54

/* SETTINGS identifiers. */
#define SL__H3_SET_QPACK_MAX_TABLE_CAPACITY 0x01
#define SL__H3_SET_MAX_FIELD_SECTION_SIZE 0x06
#define SL__H3_SET_QPACK_BLOCKED_STREAMS 0x07
#define SL__H3_SET_ENABLE_CONNECT_PROTOCOL 0x08 /* RFC 9220 */
#define SL__H3_SET_H3_DATAGRAM 0x33             /* RFC 9297 */
#define SL__H3_SET_H3_DATAGRAM_DRAFT04 0xffd277
#define SL__H3_SET_ENABLE_WEBTRANSPORT 0x2b603742 /* draft-02 */
#define SL__H3_SET_WT_MAX_SESSIONS_DRAFT07 0xc671706a

/* Capsule types (RFC 9297, WebTransport). */
#define SL__CAPSULE_DATAGRAM 0x00
#define SL__CAPSULE_CLOSE_WT_SESSION 0x2843
#define SL__CAPSULE_DRAIN_WT_SESSION 0x78ae

/* HTTP/3 error codes (RFC 9114 8.1, RFC 9204 6) and WebTransport's. */
#define SL__H3_NO_ERROR 0x100
#define SL__H3_GENERAL_PROTOCOL_ERROR 0x101
#define SL__H3_INTERNAL_ERROR 0x102
#define SL__H3_STREAM_CREATION_ERROR 0x103
#define SL__H3_CLOSED_CRITICAL_STREAM 0x104
#define SL__H3_FRAME_UNEXPECTED 0x105
#define SL__H3_FRAME_ERROR 0x106
#define SL__H3_EXCESSIVE_LOAD 0x107
#define SL__H3_ID_ERROR 0x108
#define SL__H3_SETTINGS_ERROR 0x109
#define SL__H3_MISSING_SETTINGS 0x10a
#define SL__H3_REQUEST_REJECTED 0x10b
#define SL__H3_REQUEST_CANCELLED 0x10c
#define SL__H3_REQUEST_INCOMPLETE 0x10d
#define SL__H3_MESSAGE_ERROR 0x10e
#define SL__H3_CONNECT_ERROR 0x10f
#define SL__QPACK_DECOMPRESSION_FAILED 0x200
#define SL__QPACK_ENCODER_STREAM_ERROR 0x201
#define SL__QPACK_DECODER_STREAM_ERROR 0x202
#define SL__WT_SESSION_GONE 0x170d7b68
#define SL__WT_BUFFERED_STREAM_REJECTED 0x3994bd84

/* Limits the server applies to what it buffers. */
#define SL__H3_SETTINGS_MAX 4096     /* bytes of one SETTINGS payload */
#define SL__H3_SETTINGS_PAIRS_MAX 64 /* identifier/value pairs in it */
#define SL__H3_SMALL_FRAME_MAX 8     /* GOAWAY, MAX_PUSH_ID, CANCEL_PUSH: one varint */
#define SL__WT_CLOSE_REASON_MAX 1024 /* bytes of a session close reason (the draft's cap) */
/* A DATA frame holding one CLOSE_WEBTRANSPORT_SESSION capsule, at most. */
#define SL__WT_CLOSE_FRAME_MAX (1 + 2 + 4 + 2 + 4 + SL__WT_CLOSE_REASON_MAX)

/* ------------------------------------------------------------- varints */

/* Bytes needed to encode v (1, 2, 4 or 8), or 0 if v > SL__VARINT_MAX. */
size_t sl__varint_len(uint64_t v);
/* Encode v (<= SL__VARINT_MAX) at out (room for sl__varint_len(v)). Returns the length. */
size_t sl__varint_put(uint8_t *out, uint64_t v);
/* Decode one varint from a buffer. Returns its length, or 0 if `len` bytes
 * do not hold all of it (then *v is untouched). */
size_t sl__varint_get(const uint8_t *p, size_t len, uint64_t *v);

/* A varint arriving in pieces. Zero-initialise (or _init) before each one. */
typedef struct sl__varint_rd {
    uint64_t v;   /* the value so far; final when done */
    uint8_t need; /* its encoded length; 0 until the first byte arrived */
    uint8_t have; /* bytes taken */
} sl__varint_rd;

void sl__varint_rd_init(sl__varint_rd *r);
/* Take bytes of the varint from p[0..len). Returns how many were taken;
 * *done is true once the varint is complete (r->v). Takes nothing once done. */
size_t sl__varint_rd_feed(sl__varint_rd *r, const uint8_t *p, size_t len, bool *done);

/* True for the reserved "GREASE" values 0x1f * N + 0x21 (frame, stream,
 * setting and capsule types, error codes). */
bool sl__h3_is_grease(uint64_t v);

/* ---------------------------------------------------- type-length-value */

/*
 * HTTP/3 frames and capsules share one shape: type varint, length varint,
 * `length` bytes of payload. The reader turns a byte stream of them into
 * events, one per call:
 *   SL__TLV_HEADER   type and len are known (nothing of the payload yet);
 *   SL__TLV_PAYLOAD  data[0..n) is the next piece of the payload;
 *   SL__TLV_END      the element is complete;
 *   SL__TLV_NONE     all input was taken and more is needed.
 * A zero-length element gives HEADER then END. Call in a loop, advancing
 * by the return value, until the event is NONE:
 *
 *     for (;;) { size_t n = sl__tlv_read(r, p, len, &ev); p += n; len -= n;
 *                if (ev.kind == SL__TLV_NONE) break; ... }
 *
 * For the WebTransport stream signal (type 0x41) the second varint is the
 * session id, and what follows is raw stream data: after that HEADER event
 * the caller stops feeding the reader and takes the rest itself.
 */
typedef enum sl__tlv_kind {
    SL__TLV_NONE = 0,
    SL__TLV_HEADER = 1,
    SL__TLV_PAYLOAD = 2,
    SL__TLV_END = 3
} sl__tlv_kind;

typedef struct sl__tlv_ev {
    sl__tlv_kind kind;
    uint64_t type, len;  /* of the current element (HEADER, PAYLOAD, END) */
    const uint8_t *data; /* PAYLOAD: into the caller's input */
    size_t n;
} sl__tlv_ev;

typedef struct sl__tlv_rd {
    uint8_t state; /* 0 type, 1 length, 2 payload */
    sl__varint_rd vr;
    uint64_t type, len;
    uint64_t left; /* payload bytes still to come */
} sl__tlv_rd;

void sl__tlv_rd_init(sl__tlv_rd *r);
size_t sl__tlv_read(sl__tlv_rd *r, const uint8_t *p, size_t len, sl__tlv_ev *ev);
/* True between elements (an input that ends here ends cleanly). */
bool sl__tlv_rd_idle(const sl__tlv_rd *r);

/* ------------------------------------------------------------- frames */

/* HTTP/2 frame types that HTTP/3 reserves (RFC 9114 7.2.8): receiving one is
 * a connection error of type H3_FRAME_UNEXPECTED. */
bool sl__h3_frame_reserved_h2(uint64_t type);
/* Write a frame (or capsule) header. `out` needs 16 bytes. Returns its length. */
size_t sl__h3_frame_hdr(uint8_t *out, uint64_t type, uint64_t len);

/* ---------------------------------------------------------- SETTINGS */

/* What a peer's SETTINGS said (absent = 0 / false). */
typedef struct sl__h3_settings {
    uint64_t qpack_max_table_capacity;
    uint64_t qpack_blocked_streams;
    uint64_t max_field_section_size; /* UINT64_MAX when absent (unlimited) */
    bool enable_connect_protocol;
    bool h3_datagram;         /* 0x33 = 1 */
    bool h3_datagram_draft04; /* 0xffd277 = 1 */
    bool enable_webtransport; /* 0x2b603742 = 1 */
    uint64_t wt_max_sessions; /* 0xc671706a */
    unsigned pairs;           /* identifier/value pairs read */
} sl__h3_settings;

/*
 * Parse a complete SETTINGS payload. Returns 0, or the HTTP/3 error code of
 * the connection error it is: H3_FRAME_ERROR (a pair cut short),
 * H3_SETTINGS_ERROR (an identifier twice, an HTTP/2-only identifier 0x02 -
 * 0x05, a 0-or-1 setting with another value), H3_EXCESSIVE_LOAD (more than
 * SL__H3_SETTINGS_PAIRS_MAX pairs). Unknown and GREASE identifiers are
 * ignored. `why` (may be NULL) gets a static explanation on error.
 */
uint64_t sl__h3_settings_parse(const uint8_t *p, size_t len, sl__h3_settings *out,
                               const char **why);

/* Encode a whole SETTINGS frame of n (identifier, value) pairs. Returns its
 * length, or 0 if it does not fit in cap (or a value is not a varint). */
size_t sl__h3_settings_frame(uint8_t *out, size_t cap, const uint64_t (*kv)[2], size_t n);

/* ------------------------------------------------ unidirectional streams */

/*
 * The head of a peer's unidirectional stream: its type varint and, for a
 * WebTransport stream (0x54), the session id varint after it. Zero-init.
 */
typedef struct sl__h3_uni_rd {
    uint8_t state; /* 0 type, 1 session id, 2 done */
    sl__varint_rd vr;
    uint64_t type;
    uint64_t session; /* SL__H3_UNI_WT only */
} sl__h3_uni_rd;

/* Take head bytes; returns how many. *done once the head is complete: the
 * bytes after it are the stream's body. */
size_t sl__h3_uni_head(sl__h3_uni_rd *r, const uint8_t *p, size_t len, bool *done);

/* ---------------------------------------------------------- WebTransport */

/* A session id must be a client-initiated bidirectional stream id. */
static inline bool sl__wt_session_id_valid(uint64_t id)
{
    return (id & 3) == 0;
}

/*
 * Encode a DATA frame carrying a CLOSE_WEBTRANSPORT_SESSION capsule: the
 * 32-bit code, then the reason (cut to SL__WT_CLOSE_REASON_MAX bytes at a
 * UTF-8 character boundary). Returns the length (<= SL__WT_CLOSE_FRAME_MAX).
 */
size_t sl__wt_close_frame(uint8_t out[SL__WT_CLOSE_FRAME_MAX], uint32_t code, const char *reason,
                          size_t rlen);

/* Parse a CLOSE_WEBTRANSPORT_SESSION capsule value. Returns 0, or
 * H3_MESSAGE_ERROR (shorter than the code, reason over the cap). */
uint64_t sl__wt_close_parse(const uint8_t *p, size_t len, uint32_t *code, const uint8_t **reason,
                            size_t *rlen);

/*
 * WebTransport application error codes (32 bits) travel in RESET_STREAM and
 * STOP_SENDING as HTTP/3 codes in a reserved range that skips the GREASE
 * values. to_h3 maps one way; from_h3 the other, false for a code outside
 * the range or a GREASE value (the stream was ended by something else).
 */
uint64_t sl__wt_code_to_h3(uint32_t code);
bool sl__wt_code_from_h3(uint64_t h3, uint32_t *code);

/*
 * HTTP/3 datagram (RFC 9297): varint(quarter stream id = session id / 4)
 * then the payload. parse returns the prefix length and the session id, or
 * 0 for a datagram without a whole prefix or with a quarter id too large
 * to name a stream.
 */
size_t sl__h3_dgram_parse(const uint8_t *p, size_t len, uint64_t *session_id);
/* Write the prefix for session_id (out: 8 bytes). Returns its length. */
size_t sl__h3_dgram_prefix(uint8_t *out, uint64_t session_id);

#endif
