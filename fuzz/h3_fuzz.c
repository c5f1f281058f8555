/*
 * h3_fuzz.c: libFuzzer target for the HTTP/3 and WebTransport readers of
 * transport/webtransport/ (h3.c, headers.c), which read bytes from browsers.
 *
 * The first input byte selects a mode, the second (where used) a chunk
 * size; the rest is the wire input.
 *   0  type-length-value reader (frames, capsules): fed whole and fed in
 *      chunks of 1..256 bytes it must report the same elements, the same
 *      payload bytes and end in the same state; payload pieces lie inside
 *      the input and never exceed the declared length.
 *   1  SETTINGS payload: only 0 or one of the documented HTTP/3 codes.
 *   2  unidirectional stream head: whole and byte by byte agree on the
 *      type, the session id and the bytes taken.
 *   3  close capsule value: on success, encoding the code and reason again
 *      and parsing that gives them back.
 *   4  request header block through nghttp3's QPACK decoder (no dynamic
 *      table) and the request checks: only 0 or a QPACK/internal code, and
 *      nothing leaks (LeakSanitizer).
 *   5  datagram prefix: on success, re-encoding the session id gives a
 *      prefix of the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/webtransport/h3.h"
#include "transport/webtransport/headers.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

typedef struct tlv_sum {
    uint64_t n, ends, bytes, hash;
    uint64_t last_type, last_len;
} tlv_sum;

static void tlv_run(const uint8_t *p, size_t len, size_t chunk, tlv_sum *s, sl__tlv_rd *r)
{
    memset(s, 0, sizeof *s);
    sl__tlv_rd_init(r);
    uint64_t got = 0;
    size_t off = 0;
    while (off < len) {
        size_t take = len - off < chunk ? len - off : chunk;
        const uint8_t *q = p + off;
        size_t ql = take;
        for (;;) {
            sl__tlv_ev ev;
            size_t n = sl__tlv_read(r, q, ql, &ev);
            CHECK(n <= ql);
            q += n;
            ql -= n;
            if (ev.kind == SL__TLV_NONE) {
                CHECK(ql == 0);
                break;
            }
            if (ev.kind == SL__TLV_HEADER) {
                s->n++;
                s->last_type = ev.type;
                s->last_len = ev.len;
                got = 0;
                s->hash = s->hash * 31 + ev.type * 7 + ev.len;
            } else if (ev.kind == SL__TLV_PAYLOAD) {
                CHECK(ev.n > 0 && ev.data >= p && ev.data + ev.n <= p + len);
                got += ev.n;
                CHECK(got <= s->last_len);
                s->bytes += ev.n;
                for (size_t i = 0; i < ev.n; i++)
                    s->hash = s->hash * 131 + ev.data[i];
            } else {
                CHECK(got == s->last_len);
                s->ends++;
            }
        }
        off += take;
    }
}

static void *m_malloc(size_t n, void *ud)
{
    return malloc(n);
}
static void m_free(void *p, void *ud)
{
    free(p);
}
static void *m_calloc(size_t n, size_t s, void *ud)
{
    return calloc(n, s);
}
static void *m_realloc(void *p, size_t n, void *ud)
{
    return realloc(p, n);
}
static const nghttp3_mem MEM = {NULL, m_malloc, m_free, m_calloc, m_realloc};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0] % 6;
    size_t chunk = (size_t)data[1] + 1;
    const uint8_t *p = data + 2;
    size_t len = size - 2;
    switch (mode) {
    case 0: {
        tlv_sum a, b;
        sl__tlv_rd ra, rb;
        tlv_run(p, len, len ? len : 1, &a, &ra);
        tlv_run(p, len, chunk, &b, &rb);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
        CHECK(sl__tlv_rd_idle(&ra) == sl__tlv_rd_idle(&rb));
        break;
    }
    case 1: {
        sl__h3_settings st;
        const char *why = NULL;
        uint64_t e = sl__h3_settings_parse(p, len, &st, &why);
        CHECK(e == 0 || e == SL__H3_FRAME_ERROR || e == SL__H3_SETTINGS_ERROR ||
              e == SL__H3_EXCESSIVE_LOAD);
        CHECK(e == 0 || why != NULL);
        CHECK(st.pairs <= SL__H3_SETTINGS_PAIRS_MAX);
        break;
    }
    case 2: {
        sl__h3_uni_rd a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        bool da = false, db = false;
        size_t ua = sl__h3_uni_head(&a, p, len, &da), ub = 0;
        for (size_t i = 0; i < len && !db; i++)
            ub += sl__h3_uni_head(&b, p + i, 1, &db);
        CHECK(da == db && ua == ub && ua <= len);
        if (da)
            CHECK(a.type == b.type && a.session == b.session);
        break;
    }
    case 3: {
        uint32_t code;
        const uint8_t *r;
        size_t rl;
        if (sl__wt_close_parse(p, len, &code, &r, &rl) == 0) {
            uint8_t f[SL__WT_CLOSE_FRAME_MAX];
            size_t n = sl__wt_close_frame(f, code, (const char *)r, rl);
            CHECK(n <= sizeof f);
            /* DATA header (2 bytes) + capsule header (2 + 1 or 2 bytes). */
            uint64_t t, l, ct, cl;
            size_t a = sl__varint_get(f, n, &t);
            size_t b = sl__varint_get(f + a, n - a, &l);
            size_t c = sl__varint_get(f + a + b, n - a - b, &ct);
            size_t d = sl__varint_get(f + a + b + c, n - a - b - c, &cl);
            CHECK(a && b && c && d && t == 0 && ct == SL__CAPSULE_CLOSE_WT_SESSION);
            CHECK(a + b + l == n && a + b + c + d + cl == n);
            uint32_t code2;
            const uint8_t *r2;
            size_t rl2;
            CHECK(sl__wt_close_parse(f + a + b + c + d, (size_t)cl, &code2, &r2, &rl2) == 0);
            CHECK(code2 == code && rl2 == rl && memcmp(r2, r, rl) == 0);
        }
        break;
    }
    case 4: {
        nghttp3_qpack_decoder *dec;
        if (nghttp3_qpack_decoder_new(&dec, 0, 0, &MEM) != 0)
            return 0;
        sl__h3_request req;
        uint64_t e = sl__h3_request_decode(dec, &MEM, 0, p, len, &req);
        CHECK(e == 0 || e == SL__QPACK_DECOMPRESSION_FAILED || e == SL__H3_INTERNAL_ERROR);
        if (e == 0) {
            CHECK(strlen(req.path) < sizeof req.path && strlen(req.origin) < sizeof req.origin);
            CHECK(strlen(req.method) < sizeof req.method);
        }
        nghttp3_qpack_decoder_del(dec);
        break;
    }
    default: {
        uint64_t sid;
        size_t n = sl__h3_dgram_parse(p, len, &sid);
        if (n) {
            CHECK(n <= len && (sid & 3) == 0);
            uint8_t b[8];
            size_t m = sl__h3_dgram_prefix(b, sid);
            uint64_t sid2;
            CHECK(sl__h3_dgram_parse(b, m, &sid2) == m && sid2 == sid);
        }
        break;
    }
    }
    return 0;
}
