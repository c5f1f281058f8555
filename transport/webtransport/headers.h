/*
 * headers.h: HTTP/3 header blocks through nghttp3's QPACK codec, and the
 * checks of a request's header section. Internal to transport/.
 *
 * Both directions use QPACK without a dynamic table: we announce
 * QPACK_MAX_TABLE_CAPACITY 0 and QPACK_BLOCKED_STREAMS 0, so a peer's
 * field sections may only use the static table and literals (a section
 * that refers to the dynamic table fails to decode: a connection error of
 * type QPACK_DECOMPRESSION_FAILED), and our encoder, created with a
 * capacity of 0, never writes to its encoder stream.
 */
#ifndef SL_WT_HEADERS_H
#define SL_WT_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp3/nghttp3.h>

/* One decoded field; name and value are NUL-terminated too. */
typedef void (*sl__qpack_field_fn)(const uint8_t *name, size_t nlen, const uint8_t *value,
                                   size_t vlen, void *ud);

/*
 * Decode one complete field section (a HEADERS frame payload) of stream
 * `sid`, calling fn for each field in order. Returns 0, or the HTTP/3 error
 * code of the connection error: QPACK_DECOMPRESSION_FAILED (malformed, cut
 * short, too large for nghttp3, or needing the dynamic table),
 * H3_INTERNAL_ERROR (out of memory).
 */
uint64_t sl__qpack_decode(nghttp3_qpack_decoder *dec, const nghttp3_mem *mem, int64_t sid,
                          const uint8_t *p, size_t len, sl__qpack_field_fn fn, void *ud);

/*
 * Encode fields into a complete HEADERS frame (frame header included) for
 * stream `sid`. *out is allocated with mem (free with mem->free). Returns 0,
 * or -1 when out of memory.
 */
int sl__qpack_headers_frame(nghttp3_qpack_encoder *enc, const nghttp3_mem *mem, int64_t sid,
                            const nghttp3_nv *nva, size_t n, uint8_t **out, size_t *outlen);

/* What the server keeps of a request's header section. */
typedef struct sl__h3_request {
    char method[16];
    char scheme[16];
    char protocol[32]; /* :protocol (extended CONNECT, RFC 9220) */
    char authority[256];
    char path[2048]; /* :path with its query */
    char origin[512];
    unsigned seen; /* bit per pseudo-header (below) and for origin */
    bool regular;  /* a regular field was seen (pseudo-headers must come first) */
    /* A value did not fit its buffer: answer 431, not an error. */
    bool too_large;
    /* Non-NULL: the request is malformed (RFC 9114 4.1.2), a stream error
     * of type H3_MESSAGE_ERROR; says why. */
    const char *malformed;
} sl__h3_request;

enum {
    SL__REQ_METHOD = 1,
    SL__REQ_SCHEME = 2,
    SL__REQ_AUTHORITY = 4,
    SL__REQ_PATH = 8,
    SL__REQ_PROTOCOL = 16,
    SL__REQ_ORIGIN = 32
};

/*
 * Decode a request's HEADERS payload into req and check it: field names in
 * lower case without separators, no unknown, repeated or late
 * pseudo-headers, no CR/LF/NUL in values, the pseudo-headers the method
 * needs (:protocol only with CONNECT; extended CONNECT needs :scheme,
 * :path and :authority), one Origin at most. Returns what sl__qpack_decode
 * returns; on 0, see req->malformed and req->too_large.
 */
uint64_t sl__h3_request_decode(nghttp3_qpack_decoder *dec, const nghttp3_mem *mem, int64_t sid,
                               const uint8_t *p, size_t len, sl__h3_request *req);

#endif
