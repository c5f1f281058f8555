/*
 * check.c: decoding limits and the msgpack validator.
 *
 * sl_msgpack_check() is the gate in front of msgpack-c: msgpack-c's unpacker
 * allocates an array of objects as soon as it reads a container header
 * (given the 5 bytes dd ff ff ff ff, msgpack-c 4.0 asks malloc for 128 GiB
 * before a single element has arrived), recurses no deeper than its fixed 32-entry stack, and
 * accepts every extension type. So nothing reaches msgpack-c until this walk has proved, in one
 * pass over the bytes and without allocating, that the value is complete, that every declared
 * length and count fits in the bytes that remain, and that the depth, element budget and ext
 * allow-list hold.
 *
 * The walk is iterative: one counter of outstanding children per open
 * container lives in a fixed array on the stack (SL_LIMITS_DEPTH_CAP deep), so
 * hostile nesting cannot exhaust the C stack either. Because every child
 * takes at least one byte, "count <= remaining bytes" bounds any allocation a
 * later msgpack-c unpack can make to a small multiple of the input size.
 */
#include "wire.h"

void sl_limits_default(sl_limits *lim)
{
    if (lim == NULL)
        return;
    memset(lim, 0, sizeof *lim);
    lim->max_depth = SL_LIMITS_DEFAULT_DEPTH;
    lim->max_size = SL_LIMITS_DEFAULT_SIZE;
    lim->max_elements = SL_LIMITS_DEFAULT_ELEMENTS;
    lim->max_str_len = SL_LIMITS_DEFAULT_PAYLOAD;
    lim->max_bin_len = SL_LIMITS_DEFAULT_PAYLOAD;
    lim->max_ext_len = SL_LIMITS_DEFAULT_PAYLOAD;
}

void sl_limits_allow_ext(sl_limits *lim, int8_t type, bool on)
{
    if (lim == NULL)
        return;
    uint8_t k = (uint8_t)type;
    uint64_t bit = (uint64_t)1 << (k & 63);
    if (on)
        lim->ext_allow[k >> 6] |= bit;
    else
        lim->ext_allow[k >> 6] &= ~bit;
}

int sl_msgpack_check(const uint8_t *p, size_t len, const sl_limits *lim, size_t *consumed)
{
    sl_limits defaults;
    if (lim == NULL) {
        sl_limits_default(&defaults);
        lim = &defaults;
    }
    if (p == NULL && len > 0)
        return SL_ERR_INVAL;

    sl__cursor c;
    int rc = sl__cur_open(&c, p, len, lim->max_size, consumed == NULL);
    if (rc != SL_OK)
        return rc;

    /* open[k] = children still expected by the container at depth k + 1 */
    uint64_t open[SL_LIMITS_DEPTH_CAP];
    uint32_t max_depth =
        lim->max_depth < SL_LIMITS_DEPTH_CAP ? lim->max_depth : SL_LIMITS_DEPTH_CAP;
    uint32_t depth = 0;
    uint64_t elements = 1; /* the outermost value */
    if (elements > lim->max_elements)
        return SL_ERR_DECODE_BUDGET;

    for (;;) {
        sl__mp_head h;
        rc = sl__mp_read_head(&c, &h);
        if (rc != SL_OK)
            return rc;
        size_t left = sl__cur_left(&c);
        switch (h.kind) {
        case SL__MP_FLOAT:
            /* the value bytes were part of the header */
            break;
        case SL__MP_EXT:
            if (!sl__ext_allowed(lim, h.ext))
                return SL_ERR_DECODE_EXT;
            if (h.u > left)
                return sl__cur_short(&c, SL_ERR_DECODE_LENGTH);
            if (h.u > lim->max_ext_len)
                return SL_ERR_DECODE_LENGTH;
            c.p += h.u;
            break;
        case SL__MP_STR:
        case SL__MP_BIN:
            if (h.u > left)
                return sl__cur_short(&c, SL_ERR_DECODE_LENGTH);
            if (h.u > (h.kind == SL__MP_STR ? lim->max_str_len : lim->max_bin_len))
                return SL_ERR_DECODE_LENGTH;
            c.p += h.u;
            break;
        case SL__MP_ARRAY:
        case SL__MP_MAP: {
            if (depth >= max_depth)
                return SL_ERR_DECODE_DEPTH;
            /* a map of n pairs has 2n children; n < 2^32 so this cannot overflow */
            uint64_t kids = h.kind == SL__MP_MAP ? h.u * 2 : h.u;
            if (kids > left)
                return sl__cur_short(&c, SL_ERR_DECODE_LENGTH);
            elements += kids;
            if (elements > lim->max_elements)
                return SL_ERR_DECODE_BUDGET;
            if (kids > 0) {
                open[depth++] = kids;
                continue; /* the container is complete only after its children */
            }
            break;
        }
        default: /* nil, bool, ints: the header was the whole value */
            break;
        }
        /* A value is complete: count it off its container, closing finished ones. */
        while (depth > 0 && --open[depth - 1] == 0)
            depth--;
        if (depth == 0)
            break;
    }

    size_t used = (size_t)(c.p - p);
    if (consumed != NULL)
        *consumed = used;
    else if (used != len)
        return SL_ERR_DECODE_TRAILING;
    return SL_OK;
}
