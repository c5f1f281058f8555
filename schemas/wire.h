/*
 * schemas/wire.h: internal msgpack cursor shared by the validator (check.c)
 * and the envelope decoder (envelope.c).
 *
 * A cursor is a window [p, end) over the input. sl__mp_read_head() reads one
 * msgpack header (the type byte plus its fixed-size length or value bytes,
 * plus the type byte of an ext) and classifies it; it never looks at the body
 * of a str/bin/ext or at the children of a container, and never checks a
 * declared length: the callers do that, in the order README.md specifies.
 *
 * When the window was clipped at max_size before the real end of the input,
 * running out of window is reported as SL_ERR_DECODE_TOO_BIG rather than
 * TRUNCATED/LENGTH, because the value would need more than max_size bytes.
 */
#ifndef SL_SCHEMAS_WIRE_H
#define SL_SCHEMAS_WIRE_H

#include <string.h>

#include "starling/schema.h"

/* What a header announced. */
enum {
    SL__MP_NIL,
    SL__MP_BOOL,  /* u = 0 or 1 */
    SL__MP_UINT,  /* positive fixint, uint 8/16/32/64: u = value */
    SL__MP_INT,   /* negative fixint, int 8/16/32/64: i = value (may be >= 0) */
    SL__MP_FLOAT, /* float 32/64: the value is not decoded */
    SL__MP_STR,   /* u = byte length */
    SL__MP_BIN,   /* u = byte length */
    SL__MP_EXT,   /* u = data length, ext = type */
    SL__MP_ARRAY, /* u = element count */
    SL__MP_MAP    /* u = pair count */
};

typedef struct sl__mp_head {
    uint8_t kind; /* SL__MP_* */
    int8_t ext;   /* ext type, for SL__MP_EXT */
    uint64_t u;   /* unsigned value, length or count */
    int64_t i;    /* signed value, for SL__MP_INT */
} sl__mp_head;

typedef struct sl__cursor {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* end of the window */
    bool clipped;       /* the window stops at max_size before the input does */
} sl__cursor;

/* Bytes left in the window. */
static inline size_t sl__cur_left(const sl__cursor *c)
{
    return (size_t)(c->end - c->p);
}

/* The error for "the window ends too soon": `err`, or TOO_BIG if clipped. */
static inline int sl__cur_short(const sl__cursor *c, int err)
{
    return c->clipped ? SL_ERR_DECODE_TOO_BIG : err;
}

/*
 * Open a window over buf[0..len) limited to max_size bytes. With exact set
 * (the caller wants one value filling the input) an input over max_size is an
 * error at once. Returns SL_OK or SL_ERR_DECODE_TOO_BIG.
 */
static inline int sl__cur_open(sl__cursor *c, const uint8_t *buf, size_t len, size_t max_size,
                               bool exact)
{
    c->p = buf;
    c->clipped = false;
    if (len > max_size) {
        if (exact)
            return SL_ERR_DECODE_TOO_BIG;
        len = max_size;
        c->clipped = true;
    }
    c->end = len > 0 ? buf + len : buf; /* NULL + 0 is undefined in C */
    return SL_OK;
}

/*
 * Bytes an envelope can take before its payload's first byte, and then
 * some: array header 5, flags 9, type 9, two ids of 5 + 9 + 9, corr 9 and
 * the payload's header, at most 9 read even when it is of the wrong type.
 */
#define SL__ENVELOPE_HEAD_MAX 96

/*
 * Decode the part of an envelope of `len` bytes that comes before the
 * payload, from its first `have` bytes (at least SL__ENVELOPE_HEAD_MAX, or
 * all `len`): the checks of sl_envelope_decode() with an exact fit, in the
 * same order, up to and including the payload's length (against `len` and
 * max_bin_len), so a frame can be judged before its payload has arrived.
 * On SL_OK, *out has every field but data, status and code (0), and
 * *payload_off is where the payload starts. The complete envelope must
 * still be decoded with sl_envelope_decode() once it is all there (status,
 * code, trailing bytes). Returns SL_OK, the SL_ERR_DECODE_* codes, or
 * SL_ERR_INVAL (too few bytes given).
 */
int sl__envelope_decode_head(const uint8_t *buf, size_t have, size_t len, uint64_t implied_to_node,
                             uint64_t implied_from_node, const sl_limits *lim, sl_envelope *out,
                             size_t *payload_off);

static inline uint64_t sl__be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++)
        v = (v << 8) | p[k];
    return v;
}

/*
 * Read one header at c->p and advance past it. Returns SL_OK,
 * SL_ERR_DECODE_TRUNCATED (or TOO_BIG when clipped) if the header is not
 * complete, SL_ERR_DECODE_RESERVED for 0xc1. Never reads past c->end.
 */
static inline int sl__mp_read_head(sl__cursor *c, sl__mp_head *h)
{
    if (c->p >= c->end)
        return sl__cur_short(c, SL_ERR_DECODE_TRUNCATED);
    uint8_t b = *c->p;
    unsigned n = 0; /* fixed bytes after the type byte */
    h->ext = 0;
    h->i = 0;
    h->u = 0;
    if (b <= 0x7f) {
        h->kind = SL__MP_UINT;
        h->u = b;
        c->p++;
        return SL_OK;
    }
    if (b >= 0xe0) {
        h->kind = SL__MP_INT;
        h->i = (int8_t)b;
        c->p++;
        return SL_OK;
    }
    if (b <= 0xbf) { /* fixmap 0x80-0x8f, fixarray 0x90-0x9f, fixstr 0xa0-0xbf */
        h->kind = b <= 0x8f ? SL__MP_MAP : b <= 0x9f ? SL__MP_ARRAY : SL__MP_STR;
        h->u = b & (b >= 0xa0 ? 0x1f : 0x0f);
        c->p++;
        return SL_OK;
    }
    /* one line per format byte, like the table of the msgpack spec */
    // clang-format off
    switch (b) {
    case 0xc0: h->kind = SL__MP_NIL; break;
    case 0xc1: return SL_ERR_DECODE_RESERVED;
    case 0xc2: case 0xc3: h->kind = SL__MP_BOOL; h->u = b & 1; break;
    case 0xc4: h->kind = SL__MP_BIN; n = 1; break;
    case 0xc5: h->kind = SL__MP_BIN; n = 2; break;
    case 0xc6: h->kind = SL__MP_BIN; n = 4; break;
    case 0xc7: h->kind = SL__MP_EXT; n = 1; break;
    case 0xc8: h->kind = SL__MP_EXT; n = 2; break;
    case 0xc9: h->kind = SL__MP_EXT; n = 4; break;
    case 0xca: h->kind = SL__MP_FLOAT; n = 4; break;
    case 0xcb: h->kind = SL__MP_FLOAT; n = 8; break;
    case 0xcc: h->kind = SL__MP_UINT; n = 1; break;
    case 0xcd: h->kind = SL__MP_UINT; n = 2; break;
    case 0xce: h->kind = SL__MP_UINT; n = 4; break;
    case 0xcf: h->kind = SL__MP_UINT; n = 8; break;
    case 0xd0: h->kind = SL__MP_INT; n = 1; break;
    case 0xd1: h->kind = SL__MP_INT; n = 2; break;
    case 0xd2: h->kind = SL__MP_INT; n = 4; break;
    case 0xd3: h->kind = SL__MP_INT; n = 8; break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        /* fixext 1, 2, 4, 8, 16: only the type byte follows */
        h->kind = SL__MP_EXT;
        h->u = (uint64_t)1 << (b - 0xd4);
        n = 1;
        break;
    case 0xd9: h->kind = SL__MP_STR; n = 1; break;
    case 0xda: h->kind = SL__MP_STR; n = 2; break;
    case 0xdb: h->kind = SL__MP_STR; n = 4; break;
    case 0xdc: h->kind = SL__MP_ARRAY; n = 2; break;
    case 0xdd: h->kind = SL__MP_ARRAY; n = 4; break;
    case 0xde: h->kind = SL__MP_MAP; n = 2; break;
    case 0xdf: h->kind = SL__MP_MAP; n = 4; break;
    default: return SL_ERR_DECODE_RESERVED; /* unreachable: every byte is covered */
    }
    // clang-format on
    /* ext 8/16/32 carry a type byte after the length */
    unsigned extra = (b >= 0xc7 && b <= 0xc9) ? 1 : 0;
    if (sl__cur_left(c) - 1 < (size_t)n + extra)
        return sl__cur_short(c, SL_ERR_DECODE_TRUNCATED);
    const uint8_t *q = c->p + 1;
    if (b >= 0xd4 && b <= 0xd8) {
        h->ext = (int8_t)q[0];
    } else if (h->kind == SL__MP_INT) {
        uint64_t v = sl__be(q, n);
        switch (n) {
        case 1:
            h->i = (int8_t)v;
            break;
        case 2:
            h->i = (int16_t)v;
            break;
        case 4:
            h->i = (int32_t)v;
            break;
        default:
            h->i = (int64_t)v;
            break;
        }
    } else if (h->kind != SL__MP_FLOAT) {
        h->u = sl__be(q, n);
        if (extra)
            h->ext = (int8_t)q[n];
    }
    c->p += 1 + n + extra;
    return SL_OK;
}

/* True if `lim` allows ext type t. */
static inline bool sl__ext_allowed(const sl_limits *lim, int8_t t)
{
    uint8_t k = (uint8_t)t;
    return (lim->ext_allow[k >> 6] >> (k & 63)) & 1;
}

/* Free through an sl_mem hook (a NULL field means the C library). */
static inline void sl__wire_free(const sl_mem *m, void *p)
{
    if (p == NULL)
        return;
    if (m->free != NULL)
        m->free(p, m->ud);
    else
        sl_mem_default()->free(p, NULL);
}

/*
 * Resize `p` (holding `old` bytes) to `n` bytes through an sl_mem hook. A hook
 * with malloc but no realloc gets malloc + copy + free, so that a custom free
 * never sees a block the C library allocated.
 */
static inline void *sl__wire_realloc(const sl_mem *m, void *p, size_t old, size_t n)
{
    if (m->realloc != NULL)
        return m->realloc(p, n, m->ud);
    if (m->malloc == NULL)
        return sl_mem_default()->realloc(p, n, NULL);
    void *q = m->malloc(n, m->ud);
    if (q != NULL && p != NULL) {
        memcpy(q, p, old < n ? old : n);
        sl__wire_free(m, p);
    }
    return q;
}

#endif /* SL_SCHEMAS_WIRE_H */
