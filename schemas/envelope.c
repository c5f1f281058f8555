/*
 * envelope.c: the envelope codec.
 *
 * An envelope is the msgpack array
 *     [flags, type, to, from, corr, payload (, status (, code))]
 * where flags packs priority and kind, an id is either its local part alone
 * (its node is implied by the link it travels on) or [node, local], and the
 * payload is a bin holding the user's msgpack bytes. schemas/README.md is the
 * normative description; this file implements it.
 *
 * Encoding goes through msgpack-c's msgpack_packer with a write callback into
 * the caller's buffer, so the bytes are exactly what msgpack-c writes (always
 * the shortest form of each integer). The size is computed first, so a buffer
 * that is too small is reported before anything is written.
 *
 * Decoding does NOT go through msgpack_unpack(): that would allocate a zone
 * (and an object array) for every message on the hot path of remote
 * messaging, would copy nothing we need, and sizes its allocations from the
 * lengths in the input before it has seen the bytes behind them. Instead a
 * zero-allocation cursor (wire.h) reads the fixed shape field by field,
 * checking every count and length against the bytes that remain, and returns
 * the payload as a pointer into the input. The payload itself is opaque here.
 */
#include <msgpack.h>

#include "wire.h"

/* ------------------------------------------------------------ sizes */

/* Encoded size of an unsigned integer, as msgpack-c writes it. */
static size_t uint_size(uint64_t v)
{
    if (v < 0x80)
        return 1;
    if (v <= 0xff)
        return 2;
    if (v <= 0xffff)
        return 3;
    if (v <= 0xffffffffu)
        return 5;
    return 9;
}

/* Encoded size of a signed 32-bit integer, as msgpack_pack_int32 writes it. */
static size_t int32_size(int32_t v)
{
    if (v >= 0)
        return uint_size((uint64_t)v);
    if (v >= -32)
        return 1;
    if (v >= -128)
        return 2;
    if (v >= -32768)
        return 3;
    return 5;
}

/* Encoded size of an id in a position whose implied node is `implied`. */
static size_t id_size(sl_id id, uint64_t implied)
{
    if (id.local == 0)
        return 1;
    if (id.node == implied)
        return uint_size(id.local);
    return 1 + uint_size(id.node) + uint_size(id.local);
}

/* Number of array elements: 6, or 7/8 when status/code are not zero. */
static unsigned field_count(const sl_envelope *e)
{
    if (e->code != 0)
        return 8;
    if (e->status != 0)
        return 7;
    return 6;
}

static bool valid(const sl_envelope *e)
{
    return e != NULL && e->prio < SL_PRIO_COUNT && e->kind < SL_KIND_WIRE_COUNT && e->flags == 0 &&
           !(e->len > 0 && e->data == NULL) && (uint64_t)e->len <= UINT32_MAX;
}

static size_t bin_header_size(size_t len)
{
    return len <= 0xff ? 2 : len <= 0xffff ? 3 : 5;
}

size_t sl_envelope_max_size(size_t payload_len)
{
    if (payload_len > SIZE_MAX - SL_ENVELOPE_MAX_OVERHEAD)
        return SIZE_MAX;
    return payload_len + SL_ENVELOPE_MAX_OVERHEAD;
}

size_t sl_envelope_encoded_size(const sl_envelope *e, uint64_t implied_to_node,
                                uint64_t implied_from_node)
{
    if (!valid(e))
        return 0;
    unsigned n = field_count(e);
    size_t s = 1; /* fixarray */
    s += uint_size((uint64_t)e->prio | ((uint64_t)e->kind << 3));
    s += uint_size(e->type);
    s += id_size(e->to, implied_to_node);
    s += id_size(e->from, implied_from_node);
    s += uint_size(e->corr);
    s += bin_header_size(e->len) + e->len;
    if (n >= 7)
        s += int32_size(e->status);
    if (n >= 8)
        s += int32_size(e->code);
    return s;
}

/* ---------------------------------------------------------- encoding */

/* Where msgpack_packer writes: a fixed caller buffer. */
typedef struct wbuf {
    uint8_t *p;
    size_t cap;
    size_t len;
} wbuf;

static int wbuf_write(void *data, const char *buf, size_t len)
{
    wbuf *w = data;
    if (len > w->cap - w->len)
        return -1; /* cannot happen: the size was computed first */
    memcpy(w->p + w->len, buf, len);
    w->len += len;
    return 0;
}

static int pack_id(msgpack_packer *pk, sl_id id, uint64_t implied)
{
    if (id.local == 0)
        return msgpack_pack_uint64(pk, 0);
    if (id.node == implied)
        return msgpack_pack_uint64(pk, id.local);
    return msgpack_pack_array(pk, 2) || msgpack_pack_uint64(pk, id.node) ||
           msgpack_pack_uint64(pk, id.local);
}

int sl_envelope_encode(const sl_envelope *e, uint64_t implied_to_node, uint64_t implied_from_node,
                       uint8_t *buf, size_t cap, size_t *len)
{
    if (len == NULL || !valid(e) || (buf == NULL && cap > 0))
        return SL_ERR_INVAL;
    size_t need = sl_envelope_encoded_size(e, implied_to_node, implied_from_node);
    *len = need;
    if (need > cap)
        return SL_ERR_AGAIN;

    wbuf w = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, wbuf_write);
    unsigned n = field_count(e);
    int bad = msgpack_pack_array(&pk, n) ||
              msgpack_pack_uint32(&pk, (uint32_t)e->prio | ((uint32_t)e->kind << 3)) ||
              msgpack_pack_uint32(&pk, e->type) || pack_id(&pk, e->to, implied_to_node) ||
              pack_id(&pk, e->from, implied_from_node) || msgpack_pack_uint64(&pk, e->corr) ||
              msgpack_pack_bin(&pk, e->len) ||
              (e->len > 0 && msgpack_pack_bin_body(&pk, e->data, e->len)) ||
              (n >= 7 && msgpack_pack_int32(&pk, e->status)) ||
              (n >= 8 && msgpack_pack_int32(&pk, e->code));
    /* The size computation and msgpack-c must agree byte for byte. */
    if (bad || w.len != need)
        return SL_ERR_INVAL;
    return SL_OK;
}

/* ---------------------------------------------------------- decoding */

/* The error for a field that is not of the expected type. */
static int wrong_type(const sl__mp_head *h, const sl_limits *lim)
{
    if (h->kind == SL__MP_EXT && !sl__ext_allowed(lim, h->ext))
        return SL_ERR_DECODE_EXT;
    return SL_ERR_DECODE_TYPE;
}

static int rd_uint(sl__cursor *c, const sl_limits *lim, uint64_t max, uint64_t *v)
{
    sl__mp_head h;
    int rc = sl__mp_read_head(c, &h);
    if (rc != SL_OK)
        return rc;
    if (h.kind != SL__MP_UINT)
        return wrong_type(&h, lim);
    if (h.u > max)
        return SL_ERR_DECODE_TYPE;
    *v = h.u;
    return SL_OK;
}

static int rd_int32(sl__cursor *c, const sl_limits *lim, int32_t *v)
{
    sl__mp_head h;
    int rc = sl__mp_read_head(c, &h);
    if (rc != SL_OK)
        return rc;
    if (h.kind == SL__MP_UINT && h.u <= INT32_MAX) {
        *v = (int32_t)h.u;
        return SL_OK;
    }
    if (h.kind == SL__MP_INT && h.i >= INT32_MIN && h.i <= INT32_MAX) {
        *v = (int32_t)h.i;
        return SL_OK;
    }
    if (h.kind == SL__MP_UINT || h.kind == SL__MP_INT)
        return SL_ERR_DECODE_TYPE; /* an integer, but out of int32 range */
    return wrong_type(&h, lim);
}

/* An id: a uint (local part, node implied) or [node uint, local uint]. */
static int rd_id(sl__cursor *c, const sl_limits *lim, uint64_t implied, sl_id *id)
{
    sl__mp_head h;
    int rc = sl__mp_read_head(c, &h);
    if (rc != SL_OK)
        return rc;
    if (h.kind == SL__MP_UINT) {
        id->node = h.u == 0 ? 0 : implied;
        id->local = h.u;
        return SL_OK;
    }
    if (h.kind != SL__MP_ARRAY)
        return wrong_type(&h, lim);
    if (h.u > sl__cur_left(c))
        return sl__cur_short(c, SL_ERR_DECODE_LENGTH);
    if (h.u != 2)
        return SL_ERR_DECODE_TYPE;
    uint64_t node, local;
    if ((rc = rd_uint(c, lim, UINT64_MAX, &node)) != SL_OK ||
        (rc = rd_uint(c, lim, UINT64_MAX, &local)) != SL_OK)
        return rc;
    /* local 0 is "no actor" whatever the node says */
    id->node = local == 0 ? 0 : node;
    id->local = local;
    return SL_OK;
}

/*
 * Steps 2 to 5 of decoding (README.md section 3): the array header, the
 * fields before the payload and the payload's bin header, checked against
 * the window `c`. Leaves c->p at the payload's first byte, out->len set and
 * the element count in *n. Reads at most SL__ENVELOPE_HEAD_MAX bytes.
 */
static int decode_head(sl__cursor *c, uint64_t implied_to_node, uint64_t implied_from_node,
                       const sl_limits *lim, sl_envelope *out, unsigned *count)
{
    int rc;
    /* 2. the array header, its count against the bytes left, then its shape */
    sl__mp_head h;
    if ((rc = sl__mp_read_head(c, &h)) != SL_OK)
        return rc;
    if (h.kind != SL__MP_ARRAY)
        return wrong_type(&h, lim);
    if (h.u > sl__cur_left(c))
        return sl__cur_short(c, SL_ERR_DECODE_LENGTH);
    if (h.u < 6 || h.u > 8)
        return SL_ERR_DECODE_VERSION;
    *count = (unsigned)h.u;

    /* 3. flags: priority in bits 0-2, kind in bits 3-6, the rest reserved */
    uint64_t flags, v;
    if ((rc = rd_uint(c, lim, UINT64_MAX, &flags)) != SL_OK)
        return rc;
    if ((flags >> 7) != 0 || (flags & 7) >= SL_PRIO_COUNT || ((flags >> 3) & 15) >= SL_KIND_WIRE_COUNT)
        return SL_ERR_DECODE_RESERVED;
    out->prio = (uint8_t)(flags & 7);
    out->kind = (uint8_t)((flags >> 3) & 15);
    out->flags = 0;

    /* 4. type, to, from, corr */
    if ((rc = rd_uint(c, lim, UINT32_MAX, &v)) != SL_OK)
        return rc;
    out->type = (uint32_t)v;
    if ((rc = rd_id(c, lim, implied_to_node, &out->to)) != SL_OK ||
        (rc = rd_id(c, lim, implied_from_node, &out->from)) != SL_OK ||
        (rc = rd_uint(c, lim, UINT64_MAX, &out->corr)) != SL_OK)
        return rc;

    /* 5. payload: a bin, returned in place */
    if ((rc = sl__mp_read_head(c, &h)) != SL_OK)
        return rc;
    if (h.kind != SL__MP_BIN)
        return wrong_type(&h, lim);
    if (h.u > sl__cur_left(c))
        return sl__cur_short(c, SL_ERR_DECODE_LENGTH);
    if (h.u > lim->max_bin_len)
        return SL_ERR_DECODE_LENGTH;
    out->len = (size_t)h.u;
    return SL_OK;
}

int sl__envelope_decode_head(const uint8_t *buf, size_t have, size_t len, uint64_t implied_to_node,
                             uint64_t implied_from_node, const sl_limits *lim, sl_envelope *out,
                             size_t *payload_off)
{
    sl_limits defaults;
    if (lim == NULL) {
        sl_limits_default(&defaults);
        lim = &defaults;
    }
    if (buf == NULL || out == NULL || payload_off == NULL || have > len ||
        (have < len && have < SL__ENVELOPE_HEAD_MAX))
        return SL_ERR_INVAL;
    /* The window is the whole envelope, so every count and length is
     * checked as sl_envelope_decode() checks it; only the first
     * SL__ENVELOPE_HEAD_MAX bytes (all present) are read. */
    sl__cursor c;
    unsigned n;
    int rc = sl__cur_open(&c, buf, len, lim->max_size, true);
    if (rc == SL_OK)
        rc = decode_head(&c, implied_to_node, implied_from_node, lim, out, &n);
    if (rc != SL_OK)
        return rc;
    *payload_off = (size_t)(c.p - buf);
    out->data = NULL;
    out->status = 0;
    out->code = 0;
    return SL_OK;
}

int sl_envelope_decode(const uint8_t *buf, size_t len, uint64_t implied_to_node,
                       uint64_t implied_from_node, const sl_limits *lim, sl_envelope *out,
                       size_t *consumed)
{
    sl_limits defaults;
    if (lim == NULL) {
        sl_limits_default(&defaults);
        lim = &defaults;
    }
    if ((buf == NULL && len > 0) || out == NULL)
        return SL_ERR_INVAL;

    /* 1. size, before reading anything */
    sl__cursor c;
    int rc = sl__cur_open(&c, buf, len, lim->max_size, consumed == NULL);
    if (rc != SL_OK)
        return rc;
    /* 2-5. */
    unsigned n;
    if ((rc = decode_head(&c, implied_to_node, implied_from_node, lim, out, &n)) != SL_OK)
        return rc;
    out->data = out->len > 0 ? c.p : NULL;
    c.p += out->len;

    /* 6. optional status and code */
    out->status = 0;
    out->code = 0;
    if (n >= 7 && (rc = rd_int32(&c, lim, &out->status)) != SL_OK)
        return rc;
    if (n >= 8 && (rc = rd_int32(&c, lim, &out->code)) != SL_OK)
        return rc;

    /* 7. nothing after it, unless the caller takes the count */
    size_t used = (size_t)(c.p - buf);
    if (consumed != NULL)
        *consumed = used;
    else if (used != len)
        return SL_ERR_DECODE_TRAILING;
    return SL_OK;
}
