/*
 * frame.c: length-prefixed framing of envelopes on a stream.
 *
 * On a QUIC stream each envelope is preceded by its length as a QUIC
 * variable-length integer (RFC 9000 section 16), the encoding every QUIC and
 * HTTP/3 implementation, and the browser side, already has: one byte for
 * frames under 64 bytes, two under 16 KiB, four under 1 GiB.
 *
 * The reader checks the announced length against the maximum as soon as the
 * varint is complete, before it keeps a single byte of the frame, and grows
 * its buffer only as bytes actually arrive, so that a peer that announces a
 * 64 MiB frame and then stalls costs us what it sent, not what it announced.
 * A frame that arrives whole within one chunk is handed out in place.
 */
#include <string.h>

#include "wire.h"

/* Reassembly buffers larger than this are freed once their frame is used. */
#define SL__FRAME_KEEP ((size_t)64 * 1024)

size_t sl_frame_header_size(uint64_t frame_len)
{
    if (frame_len < 64)
        return 1;
    if (frame_len < 16384)
        return 2;
    if (frame_len < (UINT64_C(1) << 30))
        return 4;
    if (frame_len <= SL_FRAME_VARINT_MAX)
        return 8;
    return 0;
}

int sl_frame_write_header(uint64_t frame_len, uint8_t *buf, size_t cap, size_t *hdr_len)
{
    size_t n = sl_frame_header_size(frame_len);
    if (n == 0 || hdr_len == NULL || (buf == NULL && cap > 0))
        return SL_ERR_INVAL;
    if (cap < n)
        return SL_ERR_AGAIN;
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
    for (size_t k = 0; k < n; k++)
        buf[k] = (uint8_t)(frame_len >> (8 * (n - 1 - k)));
    buf[0] |= prefix[n];
    *hdr_len = n;
    return SL_OK;
}

int sl_frame_read_header(const uint8_t *buf, size_t len, uint64_t max_frame, uint64_t *frame_len,
                         size_t *hdr_len)
{
    if ((buf == NULL && len > 0) || frame_len == NULL || hdr_len == NULL)
        return SL_ERR_INVAL;
    if (len == 0)
        return SL_ERR_AGAIN;
    size_t n = (size_t)1 << (buf[0] >> 6);
    if (len < n)
        return SL_ERR_AGAIN;
    uint64_t v = buf[0] & 0x3f;
    for (size_t k = 1; k < n; k++)
        v = (v << 8) | buf[k];
    if (v > max_frame)
        return SL_ERR_DECODE_TOO_BIG;
    *frame_len = v;
    *hdr_len = n;
    return SL_OK;
}

/* ------------------------------------------------------------ reader */

void sl_frame_reader_init(sl_frame_reader *r, uint64_t max_frame, const sl_mem *mem)
{
    memset(r, 0, sizeof *r);
    r->mem = mem != NULL ? mem : sl_mem_default();
    r->max_frame = max_frame;
}

void sl_frame_reader_fini(sl_frame_reader *r)
{
    if (r == NULL)
        return;
    sl__wire_free(r->mem, r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->have = 0;
}

bool sl_frame_reader_pending(const sl_frame_reader *r)
{
    return r->hdr_have > 0 || (r->have_len && !r->ready);
}

/* Make room for `more` bytes after r->have, doubling up to r->want. */
static int reserve(sl_frame_reader *r, size_t more)
{
    size_t need = r->have + more; /* <= want <= max_frame, which fits in memory */
    if (need <= r->cap)
        return SL_OK;
    size_t cap = r->cap < 256 ? 256 : r->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > r->want)
        cap = (size_t)r->want;
    uint8_t *p = sl__wire_realloc(r->mem, r->buf, r->have, cap);
    if (p == NULL)
        return SL_ERR_NOMEM;
    r->buf = p;
    r->cap = cap;
    return SL_OK;
}

int sl_frame_reader_feed(sl_frame_reader *r, const uint8_t *data, size_t len, size_t *used,
                         const uint8_t **frame, size_t *frame_len)
{
    if (r == NULL || used == NULL || frame == NULL || frame_len == NULL ||
        (data == NULL && len > 0))
        return SL_ERR_INVAL;
    *used = 0;
    if (r->err != SL_OK)
        return r->err;
    if (r->ready) { /* the frame handed out last time is no longer needed */
        r->ready = false;
        r->have_len = false;
        r->have = 0;
        if (r->cap > SL__FRAME_KEEP) { /* do not hold a big buffer for an idle stream */
            sl__wire_free(r->mem, r->buf);
            r->buf = NULL;
            r->cap = 0;
        }
    }
    size_t off = 0;
    /* Complete the header, one byte at a time if it arrives that way. */
    while (!r->have_len) {
        if (off == len) {
            *used = off;
            return SL_ERR_AGAIN;
        }
        r->hdr[r->hdr_have++] = data[off++];
        size_t hlen;
        int rc = sl_frame_read_header(r->hdr, r->hdr_have, r->max_frame, &r->want, &hlen);
        if (rc == SL_ERR_AGAIN)
            continue;
        r->hdr_have = 0;
        if (rc != SL_OK) {
            r->err = rc;
            *used = off;
            return rc;
        }
        r->have_len = true;
        r->have = 0;
    }
    /* Zero copy: nothing of the frame is buffered and all of it is in this chunk. */
    if (r->have == 0 && r->want <= len - off) {
        *frame = data + off;
        *frame_len = (size_t)r->want;
        *used = off + (size_t)r->want;
        r->have_len = false;
        return SL_OK;
    }
    size_t take = len - off;
    if (take > r->want - r->have)
        take = (size_t)(r->want - r->have);
    if (take > 0) {
        int rc = reserve(r, take);
        if (rc != SL_OK) {
            r->err = rc;
            *used = off;
            return rc;
        }
        memcpy(r->buf + r->have, data + off, take);
        r->have += take;
        off += take;
    }
    *used = off;
    if (r->have < r->want)
        return SL_ERR_AGAIN;
    *frame = r->buf;
    *frame_len = r->have;
    r->ready = true;
    return SL_OK;
}
