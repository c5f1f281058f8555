/*
 * h3.c: QUIC varints, HTTP/3 frames, SETTINGS, stream heads, capsules and
 * HTTP/3 datagram prefixes, as the WebTransport server reads and writes
 * them.
 *
 * The readers are small state machines fed whatever bytes a QUIC stream
 * delivered, split anywhere: a varint keeps its partial value, a
 * type-length-value element (an HTTP/3 frame or a capsule: the same shape)
 * reports its header, then its payload piece by piece, then its end. The
 * reader never copies a payload; whoever needs one whole (SETTINGS, a
 * header block, a close capsule) buffers it under its own limit, decided
 * at the header event, before a byte of it is taken. Parsers of complete
 * payloads (SETTINGS, close capsule, datagram prefix) validate every length
 * against what is there and name the HTTP/3 error that a violation is.
 *
 * Varints are RFC 9000 16: the top two bits of the first byte give the
 * length (1, 2, 4, 8), big-endian, non-minimal encodings allowed.
 */
#include "transport/webtransport/h3.h"

#include <string.h>

/* ------------------------------------------------------------- varints */

size_t sl__varint_len(uint64_t v)
{
    if (v < 64)
        return 1;
    if (v < 16384)
        return 2;
    if (v < 1073741824)
        return 4;
    if (v <= SL__VARINT_MAX)
        return 8;
    return 0;
}

size_t sl__varint_put(uint8_t *out, uint64_t v)
{
    size_t n = sl__varint_len(v);
    static const uint8_t tag[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    out[0] |= tag[n];
    return n;
}

size_t sl__varint_get(const uint8_t *p, size_t len, uint64_t *v)
{
    if (len == 0)
        return 0;
    size_t n = (size_t)1 << (p[0] >> 6);
    if (len < n)
        return 0;
    uint64_t x = p[0] & 0x3f;
    for (size_t i = 1; i < n; i++)
        x = (x << 8) | p[i];
    *v = x;
    return n;
}

void sl__varint_rd_init(sl__varint_rd *r)
{
    memset(r, 0, sizeof *r);
}

size_t sl__varint_rd_feed(sl__varint_rd *r, const uint8_t *p, size_t len, bool *done)
{
    size_t used = 0;
    if (r->need == 0) {
        if (len == 0) {
            *done = false;
            return 0;
        }
        r->need = (uint8_t)(1u << (p[0] >> 6));
        r->v = p[0] & 0x3f;
        r->have = 1;
        used = 1;
    }
    while (r->have < r->need && used < len) {
        r->v = (r->v << 8) | p[used++];
        r->have++;
    }
    *done = r->have == r->need;
    return used;
}

bool sl__h3_is_grease(uint64_t v)
{
    return v >= 0x21 && (v - 0x21) % 0x1f == 0;
}

/* ---------------------------------------------------- type-length-value */

void sl__tlv_rd_init(sl__tlv_rd *r)
{
    memset(r, 0, sizeof *r);
}

bool sl__tlv_rd_idle(const sl__tlv_rd *r)
{
    return r->state == 0 && r->vr.need == 0;
}

size_t sl__tlv_read(sl__tlv_rd *r, const uint8_t *p, size_t len, sl__tlv_ev *ev)
{
    size_t used = 0;
    bool done;
    memset(ev, 0, sizeof *ev);
    switch (r->state) {
    case 0:
        used += sl__varint_rd_feed(&r->vr, p, len, &done);
        if (!done)
            return used;
        r->type = r->vr.v;
        sl__varint_rd_init(&r->vr);
        r->state = 1;
        /* fall through */
    case 1:
        used += sl__varint_rd_feed(&r->vr, p + used, len - used, &done);
        if (!done)
            return used;
        r->len = r->left = r->vr.v;
        sl__varint_rd_init(&r->vr);
        r->state = 2;
        ev->kind = SL__TLV_HEADER;
        ev->type = r->type;
        ev->len = r->len;
        return used;
    default:
        ev->type = r->type;
        ev->len = r->len;
        if (r->left == 0) {
            r->state = 0;
            ev->kind = SL__TLV_END;
            return 0;
        }
        if (len == 0)
            return 0; /* NONE: the payload continues in later input */
        size_t n = r->left < len ? (size_t)r->left : len;
        r->left -= n;
        ev->kind = SL__TLV_PAYLOAD;
        ev->data = p;
        ev->n = n;
        return n;
    }
}

/* -------------------------------------------------------------- frames */

bool sl__h3_frame_reserved_h2(uint64_t type)
{
    /* PRIORITY, PING, WINDOW_UPDATE, CONTINUATION. */
    return type == 0x02 || type == 0x06 || type == 0x08 || type == 0x09;
}

size_t sl__h3_frame_hdr(uint8_t *out, uint64_t type, uint64_t len)
{
    size_t n = sl__varint_put(out, type);
    return n + sl__varint_put(out + n, len);
}

/* ------------------------------------------------------------ SETTINGS */

static uint64_t settings_fail(const char **why, const char *msg, uint64_t code)
{
    if (why)
        *why = msg;
    return code;
}

uint64_t sl__h3_settings_parse(const uint8_t *p, size_t len, sl__h3_settings *out, const char **why)
{
    uint64_t seen[SL__H3_SETTINGS_PAIRS_MAX];
    memset(out, 0, sizeof *out);
    out->max_field_section_size = UINT64_MAX;
    size_t off = 0;
    while (off < len) {
        uint64_t id, val;
        size_t a = sl__varint_get(p + off, len - off, &id);
        if (a == 0)
            return settings_fail(why, "SETTINGS: identifier cut short", SL__H3_FRAME_ERROR);
        size_t b = sl__varint_get(p + off + a, len - off - a, &val);
        if (b == 0)
            return settings_fail(why, "SETTINGS: value cut short", SL__H3_FRAME_ERROR);
        off += a + b;
        if (out->pairs == SL__H3_SETTINGS_PAIRS_MAX)
            return settings_fail(why, "SETTINGS: too many identifiers", SL__H3_EXCESSIVE_LOAD);
        for (unsigned i = 0; i < out->pairs; i++)
            if (seen[i] == id)
                return settings_fail(why, "SETTINGS: identifier repeated", SL__H3_SETTINGS_ERROR);
        seen[out->pairs++] = id;
        switch (id) {
        case 0x02:
        case 0x03:
        case 0x04:
        case 0x05:
            return settings_fail(why, "SETTINGS: HTTP/2-only identifier", SL__H3_SETTINGS_ERROR);
        case SL__H3_SET_QPACK_MAX_TABLE_CAPACITY:
            out->qpack_max_table_capacity = val;
            break;
        case SL__H3_SET_QPACK_BLOCKED_STREAMS:
            out->qpack_blocked_streams = val;
            break;
        case SL__H3_SET_MAX_FIELD_SECTION_SIZE:
            out->max_field_section_size = val;
            break;
        case SL__H3_SET_ENABLE_CONNECT_PROTOCOL:
        case SL__H3_SET_H3_DATAGRAM:
        case SL__H3_SET_H3_DATAGRAM_DRAFT04:
        case SL__H3_SET_ENABLE_WEBTRANSPORT:
            if (val > 1)
                return settings_fail(why, "SETTINGS: a boolean setting is neither 0 nor 1",
                                     SL__H3_SETTINGS_ERROR);
            if (id == SL__H3_SET_ENABLE_CONNECT_PROTOCOL)
                out->enable_connect_protocol = val;
            else if (id == SL__H3_SET_H3_DATAGRAM)
                out->h3_datagram = val;
            else if (id == SL__H3_SET_H3_DATAGRAM_DRAFT04)
                out->h3_datagram_draft04 = val;
            else
                out->enable_webtransport = val;
            break;
        case SL__H3_SET_WT_MAX_SESSIONS_DRAFT07:
            out->wt_max_sessions = val;
            break;
        default:
            break; /* unknown or GREASE: ignored (RFC 9114 7.2.4.1) */
        }
    }
    return 0;
}

size_t sl__h3_settings_frame(uint8_t *out, size_t cap, const uint64_t (*kv)[2], size_t n)
{
    uint64_t plen = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = sl__varint_len(kv[i][0]), b = sl__varint_len(kv[i][1]);
        if (a == 0 || b == 0)
            return 0;
        plen += a + b;
    }
    size_t hlen = sl__varint_len(SL__H3_FRAME_SETTINGS) + sl__varint_len(plen);
    if (hlen + plen > cap)
        return 0;
    size_t off = sl__h3_frame_hdr(out, SL__H3_FRAME_SETTINGS, plen);
    for (size_t i = 0; i < n; i++) {
        off += sl__varint_put(out + off, kv[i][0]);
        off += sl__varint_put(out + off, kv[i][1]);
    }
    return off;
}

/* --------------------------------------------- unidirectional stream head */

size_t sl__h3_uni_head(sl__h3_uni_rd *r, const uint8_t *p, size_t len, bool *done)
{
    size_t used = 0;
    bool got;
    *done = false;
    if (r->state == 0) {
        used += sl__varint_rd_feed(&r->vr, p, len, &got);
        if (!got)
            return used;
        r->type = r->vr.v;
        sl__varint_rd_init(&r->vr);
        r->state = r->type == SL__H3_UNI_WT ? 1 : 2;
    }
    if (r->state == 1) {
        used += sl__varint_rd_feed(&r->vr, p + used, len - used, &got);
        if (!got)
            return used;
        r->session = r->vr.v;
        r->state = 2;
    }
    *done = true;
    return used;
}

/* -------------------------------------------------------- WebTransport */

size_t sl__wt_close_frame(uint8_t out[SL__WT_CLOSE_FRAME_MAX], uint32_t code, const char *reason,
                          size_t rlen)
{
    if (!reason)
        rlen = 0;
    if (rlen > SL__WT_CLOSE_REASON_MAX) {
        rlen = SL__WT_CLOSE_REASON_MAX;
        /* Do not cut a UTF-8 sequence: back off over continuation bytes. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xc0) == 0x80)
            rlen--;
    }
    uint64_t vlen = 4 + rlen;
    uint64_t clen = sl__varint_len(SL__CAPSULE_CLOSE_WT_SESSION) + sl__varint_len(vlen) + vlen;
    size_t off = sl__h3_frame_hdr(out, SL__H3_FRAME_DATA, clen);
    off += sl__h3_frame_hdr(out + off, SL__CAPSULE_CLOSE_WT_SESSION, vlen);
    out[off++] = (uint8_t)(code >> 24);
    out[off++] = (uint8_t)(code >> 16);
    out[off++] = (uint8_t)(code >> 8);
    out[off++] = (uint8_t)code;
    if (rlen)
        memcpy(out + off, reason, rlen);
    return off + rlen;
}

uint64_t sl__wt_close_parse(const uint8_t *p, size_t len, uint32_t *code, const uint8_t **reason,
                            size_t *rlen)
{
    if (len < 4 || len - 4 > SL__WT_CLOSE_REASON_MAX)
        return SL__H3_MESSAGE_ERROR;
    *code = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    *reason = p + 4;
    *rlen = len - 4;
    return 0;
}

#define WT_CODE_FIRST 0x52e4a40fa8dbull
#define WT_CODE_LAST 0x52e5ac983162ull

uint64_t sl__wt_code_to_h3(uint32_t code)
{
    return WT_CODE_FIRST + code + code / 0x1e;
}

bool sl__wt_code_from_h3(uint64_t h3, uint32_t *code)
{
    if (h3 < WT_CODE_FIRST || h3 > WT_CODE_LAST || sl__h3_is_grease(h3))
        return false;
    uint64_t shifted = h3 - WT_CODE_FIRST;
    *code = (uint32_t)(shifted - shifted / 0x1f);
    return true;
}

size_t sl__h3_dgram_parse(const uint8_t *p, size_t len, uint64_t *session_id)
{
    uint64_t q;
    size_t n = sl__varint_get(p, len, &q);
    if (n == 0 || q > (SL__VARINT_MAX >> 2))
        return 0;
    *session_id = q << 2;
    return n;
}

size_t sl__h3_dgram_prefix(uint8_t *out, uint64_t session_id)
{
    return sl__varint_put(out, session_id >> 2);
}
