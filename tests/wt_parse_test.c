/*
 * wt_parse_test.c: the HTTP/3 and WebTransport codecs of
 * transport/webtransport/ (h3.c, headers.c) without any network.
 *
 * Every reader is fed its input whole, split at every byte position, and
 * one byte at a time, and must give the same result each way; every parser
 * of a complete payload is given each truncation of a valid input and
 * hostile values (repeated, reserved, oversized, out of range) and must
 * name the HTTP/3 error the RFCs give. QPACK round trips go through
 * nghttp3 with a counting allocator that must end with nothing live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sl_test.h"
#include "transport/webtransport/h3.h"
#include "transport/webtransport/headers.h"

/* -------------------------------------------------------------- varints */

typedef struct vcase {
    uint64_t v;
    uint8_t enc[8];
    size_t len;
} vcase;

/* RFC 9000 A.1 and the encodings notes/webtransport.md lists. */
static const vcase VCASES[] = {
    {151288809941952652ull, {0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 8},
    {494878333, {0x9d, 0x7f, 0x3e, 0x7d}, 4},
    {15293, {0x7b, 0xbd}, 2},
    {37, {0x25}, 1},
    {0x41, {0x40, 0x41}, 2},
    {0x54, {0x40, 0x54}, 2},
    {0x2843, {0x68, 0x43}, 2},
    {0x2b603742, {0xab, 0x60, 0x37, 0x42}, 4},
    {0xc671706aull, {0xc0, 0x00, 0x00, 0x00, 0xc6, 0x71, 0x70, 0x6a}, 8},
    {0x33, {0x33}, 1},
    {0x14e9cd29, {0x94, 0xe9, 0xcd, 0x29}, 4},
};

static void test_varint_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VCASES / sizeof VCASES[0]; i++) {
        const vcase *c = &VCASES[i];
        uint8_t buf[8];
        assert_int_equal(sl__varint_len(c->v), c->len);
        assert_int_equal(sl__varint_put(buf, c->v), c->len);
        assert_memory_equal(buf, c->enc, c->len);
        uint64_t v = 0;
        assert_int_equal(sl__varint_get(c->enc, c->len, &v), c->len);
        assert_true(v == c->v);
        /* Every truncation is "need more", and leaves the output alone. */
        for (size_t k = 0; k < c->len; k++) {
            v = 7;
            assert_int_equal(sl__varint_get(c->enc, k, &v), 0);
            assert_true(v == 7);
        }
    }
    /* A non-minimal encoding is valid: 37 in two bytes (RFC 9000 A.1). */
    uint64_t v;
    const uint8_t nonmin[] = {0x40, 0x25};
    assert_int_equal(sl__varint_get(nonmin, 2, &v), 2);
    assert_true(v == 37);
}

static void test_varint_boundaries(void **state)
{
    (void)state;
    const uint64_t vals[] = {
        0, 63, 64, 16383, 16384, 1073741823, 1073741824, SL__VARINT_MAX - 1, SL__VARINT_MAX};
    const size_t lens[] = {1, 1, 2, 2, 4, 4, 8, 8, 8};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t buf[8];
        assert_int_equal(sl__varint_len(vals[i]), lens[i]);
        size_t n = sl__varint_put(buf, vals[i]);
        assert_int_equal(n, lens[i]);
        uint64_t v;
        assert_int_equal(sl__varint_get(buf, n, &v), n);
        assert_true(v == vals[i]);
    }
    assert_int_equal(sl__varint_len(SL__VARINT_MAX + 1), 0);
    assert_int_equal(sl__varint_len(UINT64_MAX), 0);
}

static void test_varint_reader_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VCASES / sizeof VCASES[0]; i++) {
        const vcase *c = &VCASES[i];
        /* Byte by byte, with an empty feed between bytes. */
        sl__varint_rd r;
        sl__varint_rd_init(&r);
        bool done = false;
        for (size_t k = 0; k < c->len; k++) {
            assert_false(done);
            assert_int_equal(sl__varint_rd_feed(&r, c->enc + k, 0, &done), 0);
            assert_false(done);
            assert_int_equal(sl__varint_rd_feed(&r, c->enc + k, 1, &done), 1);
        }
        assert_true(done);
        assert_true(r.v == c->v);
        /* Once done it takes nothing more. */
        assert_int_equal(sl__varint_rd_feed(&r, c->enc, c->len, &done), 0);
        assert_true(done);
        /* Whole, with trailing bytes left for the caller. */
        uint8_t buf[16];
        memcpy(buf, c->enc, c->len);
        memset(buf + c->len, 0xff, 4);
        sl__varint_rd_init(&r);
        assert_int_equal(sl__varint_rd_feed(&r, buf, c->len + 4, &done), c->len);
        assert_true(done && r.v == c->v);
    }
}

static void test_grease(void **state)
{
    (void)state;
    assert_true(sl__h3_is_grease(0x21));
    assert_true(sl__h3_is_grease(0x21 + 0x1f));
    assert_true(sl__h3_is_grease(0x21 + 0x1f * 1000003ull));
    assert_false(sl__h3_is_grease(0x20));
    assert_false(sl__h3_is_grease(0x22));
    assert_false(sl__h3_is_grease(0));
    assert_false(sl__h3_is_grease(0x2843));
}

/* ------------------------------------------------------ frames / capsules */

/* What a TLV reader saw: per element, its type, declared length and the
 * payload bytes put back together (capped), plus protocol checks. */
typedef struct tlv_log {
    int n;
    uint64_t type[16], len[16];
    uint8_t payload[16][64];
    size_t got[16];
    int ends;
    int bad; /* an event out of order */
} tlv_log;

static void tlv_feed(sl__tlv_rd *r, const uint8_t *p, size_t len, tlv_log *log)
{
    for (int guard = 0; guard < 100000; guard++) {
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(r, p, len, &ev);
        assert_true(n <= len);
        p += n;
        len -= n;
        if (ev.kind == SL__TLV_NONE) {
            assert_int_equal(len, 0);
            return;
        }
        if (ev.kind == SL__TLV_HEADER) {
            if (log->n >= 16) {
                log->bad++;
                continue;
            }
            log->type[log->n] = ev.type;
            log->len[log->n] = ev.len;
            log->got[log->n] = 0;
            log->n++;
        } else if (ev.kind == SL__TLV_PAYLOAD) {
            int i = log->n - 1;
            if (i < 0 || ev.type != log->type[i] || ev.n == 0)
                log->bad++;
            else {
                for (size_t k = 0; k < ev.n; k++, log->got[i]++)
                    if (log->got[i] < 64)
                        log->payload[i][log->got[i]] = ev.data[k];
            }
        } else if (ev.kind == SL__TLV_END) {
            int i = log->n - 1;
            if (i < 0 || log->got[i] != log->len[i])
                log->bad++;
            log->ends++;
        }
    }
    fail_msg("tlv reader did not stop");
}

/* Offsets where each frame of build_frames() starts, and its end. */
static size_t FRAME_AT[5];

static size_t build_frames(uint8_t *b)
{
    size_t o = 0;
    FRAME_AT[0] = 0;
    /* SETTINGS with two pairs. */
    const uint64_t kv[2][2] = {{SL__H3_SET_H3_DATAGRAM, 1}, {SL__H3_SET_ENABLE_WEBTRANSPORT, 1}};
    o += sl__h3_settings_frame(b + o, 64, kv, 2);
    FRAME_AT[1] = o;
    /* An empty DATA frame. */
    o += sl__h3_frame_hdr(b + o, SL__H3_FRAME_DATA, 0);
    FRAME_AT[2] = o;
    /* A GREASE frame with a 3-byte payload. */
    o += sl__h3_frame_hdr(b + o, 0x21 + 0x1f * 7, 3);
    memcpy(b + o, "abc", 3);
    o += 3;
    FRAME_AT[3] = o;
    /* HEADERS with a 40-byte payload, 8-byte length encoding. */
    b[o++] = 0x01;
    const uint8_t len8[] = {0xc0, 0, 0, 0, 0, 0, 0, 40};
    memcpy(b + o, len8, 8);
    o += 8;
    for (int i = 0; i < 40; i++)
        b[o++] = (uint8_t)i;
    FRAME_AT[4] = o;
    return o;
}

static void check_frames(const tlv_log *log)
{
    assert_int_equal(log->bad, 0);
    assert_int_equal(log->n, 4);
    assert_int_equal(log->ends, 4);
    assert_true(log->type[0] == SL__H3_FRAME_SETTINGS);
    assert_true(log->type[1] == SL__H3_FRAME_DATA && log->len[1] == 0);
    assert_true(log->type[2] == 0x21 + 0x1f * 7 && log->len[2] == 3);
    assert_memory_equal(log->payload[2], "abc", 3);
    assert_true(log->type[3] == SL__H3_FRAME_HEADERS && log->len[3] == 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(log->payload[3][i], i);
    sl__h3_settings st;
    assert_true(sl__h3_settings_parse(log->payload[0], log->got[0], &st, NULL) == 0);
    assert_true(st.h3_datagram && st.enable_webtransport && st.pairs == 2);
}

static void test_tlv_split_everywhere(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = build_frames(b);
    /* Whole. */
    tlv_log log;
    memset(&log, 0, sizeof log);
    sl__tlv_rd r;
    sl__tlv_rd_init(&r);
    tlv_feed(&r, b, n, &log);
    check_frames(&log);
    assert_true(sl__tlv_rd_idle(&r));
    /* Two pieces, cut at every position. */
    for (size_t cut = 0; cut <= n; cut++) {
        memset(&log, 0, sizeof log);
        sl__tlv_rd_init(&r);
        tlv_feed(&r, b, cut, &log);
        tlv_feed(&r, b + cut, n - cut, &log);
        check_frames(&log);
        assert_true(sl__tlv_rd_idle(&r));
    }
    /* Byte by byte: idle only at element boundaries. */
    memset(&log, 0, sizeof log);
    sl__tlv_rd_init(&r);
    for (size_t i = 0; i < n; i++) {
        tlv_feed(&r, b + i, 1, &log);
        bool boundary = false;
        for (int k = 0; k < 5; k++)
            boundary |= FRAME_AT[k] == i + 1;
        assert_true(sl__tlv_rd_idle(&r) == boundary);
    }
    check_frames(&log);
}

static void test_tlv_huge_length_streams(void **state)
{
    (void)state;
    /* A frame that claims 2^62 - 1 bytes is streamed, never buffered: the
     * reader reports the header and then every byte given as payload. */
    uint8_t b[32];
    size_t o = sl__h3_frame_hdr(b, 0x21, SL__VARINT_MAX);
    memset(b + o, 0x5a, sizeof b - o);
    sl__tlv_rd r;
    sl__tlv_rd_init(&r);
    sl__tlv_ev ev;
    size_t used = sl__tlv_read(&r, b, sizeof b, &ev);
    assert_int_equal(used, o);
    assert_int_equal(ev.kind, SL__TLV_HEADER);
    assert_true(ev.len == SL__VARINT_MAX);
    used = sl__tlv_read(&r, b + o, sizeof b - o, &ev);
    assert_int_equal(ev.kind, SL__TLV_PAYLOAD);
    assert_int_equal(ev.n, sizeof b - o);
    assert_int_equal(used, sizeof b - o);
    assert_int_equal(sl__tlv_read(&r, NULL, 0, &ev), 0);
    assert_int_equal(ev.kind, SL__TLV_NONE);
    assert_false(sl__tlv_rd_idle(&r));
}

static void test_tlv_wt_stream_signal(void **state)
{
    (void)state;
    /* 0x41 then the session id (not a length), then raw data: the reader
     * stops at the header and the rest is the caller's. */
    const uint8_t b[] = {0x40, 0x41, 0x00, 'h', 'i'};
    for (size_t cut = 0; cut < 3; cut++) {
        sl__tlv_rd r;
        sl__tlv_rd_init(&r);
        sl__tlv_ev ev;
        size_t used = sl__tlv_read(&r, b, cut, &ev);
        assert_int_equal(ev.kind, SL__TLV_NONE);
        assert_int_equal(used, cut);
        used += sl__tlv_read(&r, b + cut, sizeof b - cut, &ev);
        assert_int_equal(ev.kind, SL__TLV_HEADER);
        assert_true(ev.type == SL__H3_FRAME_WT_STREAM && ev.len == 0);
        assert_int_equal(used, 3);
    }
}

static void test_reserved_h2_frames(void **state)
{
    (void)state;
    const uint64_t reserved[] = {0x02, 0x06, 0x08, 0x09};
    for (size_t i = 0; i < 4; i++)
        assert_true(sl__h3_frame_reserved_h2(reserved[i]));
    const uint64_t fine[] = {0x00, 0x01, 0x03, 0x04, 0x05, 0x07, 0x0d, 0x21, 0x41, 0xf0700};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        assert_false(sl__h3_frame_reserved_h2(fine[i]));
}

/* ------------------------------------------------------------- SETTINGS */

static size_t pairs(uint8_t *b, const uint64_t (*kv)[2], size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        o += sl__varint_put(b + o, kv[i][0]);
        o += sl__varint_put(b + o, kv[i][1]);
    }
    return o;
}

static void test_settings_chromium(void **state)
{
    (void)state;
    /* What Chromium 156 sends, plus one GREASE setting. */
    const uint64_t kv[][2] = {{0x06, 16384},
                              {0x07, 100},
                              {0x01, 0},
                              {0x33, 1},
                              {0xffd277, 1},
                              {0x2b603742, 1},
                              {0x21 + 0x1f * 99, 0x1234567}};
    uint8_t b[128];
    size_t n = pairs(b, kv, 7);
    sl__h3_settings st;
    const char *why = NULL;
    assert_true(sl__h3_settings_parse(b, n, &st, &why) == 0);
    assert_true(st.max_field_section_size == 16384);
    assert_true(st.qpack_blocked_streams == 100);
    assert_true(st.h3_datagram && st.h3_datagram_draft04 && st.enable_webtransport);
    assert_false(st.enable_connect_protocol);
    assert_int_equal(st.pairs, 7);
    /* Every truncation: a clean stop at a pair boundary, else FRAME_ERROR. */
    size_t bounds[8], nb = 0, o = 0;
    bounds[nb++] = 0;
    for (size_t i = 0; i < 7; i++) {
        o += sl__varint_len(kv[i][0]) + sl__varint_len(kv[i][1]);
        bounds[nb++] = o;
    }
    for (size_t cut = 0; cut < n; cut++) {
        bool at_bound = false;
        for (size_t k = 0; k < nb; k++)
            at_bound |= bounds[k] == cut;
        uint64_t e = sl__h3_settings_parse(b, cut, &st, &why);
        if (at_bound)
            assert_true(e == 0);
        else
            assert_true(e == SL__H3_FRAME_ERROR);
    }
    /* Empty SETTINGS are fine, and mean "all defaults". */
    assert_true(sl__h3_settings_parse(b, 0, &st, NULL) == 0);
    assert_true(st.max_field_section_size == UINT64_MAX && !st.h3_datagram);
}

static void test_settings_hostile(void **state)
{
    (void)state;
    uint8_t b[1024];
    sl__h3_settings st;
    const char *why = NULL;
    /* Repeated identifier. */
    const uint64_t dup[][2] = {{0x33, 1}, {0x06, 1}, {0x33, 1}};
    assert_true(sl__h3_settings_parse(b, pairs(b, dup, 3), &st, &why) == SL__H3_SETTINGS_ERROR);
    assert_non_null(why);
    /* HTTP/2-only identifiers. */
    for (uint64_t id = 2; id <= 5; id++) {
        const uint64_t h2[][2] = {{id, 0}};
        assert_true(sl__h3_settings_parse(b, pairs(b, h2, 1), &st, NULL) == SL__H3_SETTINGS_ERROR);
    }
    /* Booleans other than 0/1. */
    const uint64_t bools[] = {0x08, 0x33, 0xffd277, 0x2b603742};
    for (size_t i = 0; i < 4; i++) {
        const uint64_t bad[][2] = {{bools[i], 2}};
        assert_true(sl__h3_settings_parse(b, pairs(b, bad, 1), &st, NULL) == SL__H3_SETTINGS_ERROR);
        const uint64_t big[][2] = {{bools[i], SL__VARINT_MAX}};
        assert_true(sl__h3_settings_parse(b, pairs(b, big, 1), &st, NULL) == SL__H3_SETTINGS_ERROR);
    }
    /* Too many pairs (distinct GREASE ids). */
    uint64_t many[SL__H3_SETTINGS_PAIRS_MAX + 1][2];
    for (size_t i = 0; i <= SL__H3_SETTINGS_PAIRS_MAX; i++) {
        many[i][0] = 0x21 + 0x1f * (i + 1);
        many[i][1] = i;
    }
    size_t n = pairs(b, many, SL__H3_SETTINGS_PAIRS_MAX);
    assert_true(sl__h3_settings_parse(b, n, &st, NULL) == 0);
    n = pairs(b, many, SL__H3_SETTINGS_PAIRS_MAX + 1);
    assert_true(sl__h3_settings_parse(b, n, &st, NULL) == SL__H3_EXCESSIVE_LOAD);
}

static void test_settings_frame_roundtrip(void **state)
{
    (void)state;
    const uint64_t kv[][2] = {
        {SL__H3_SET_QPACK_MAX_TABLE_CAPACITY, 0}, {SL__H3_SET_QPACK_BLOCKED_STREAMS, 0},
        {SL__H3_SET_ENABLE_CONNECT_PROTOCOL, 1},  {SL__H3_SET_H3_DATAGRAM, 1},
        {SL__H3_SET_ENABLE_WEBTRANSPORT, 1},      {SL__H3_SET_WT_MAX_SESSIONS_DRAFT07, 3}};
    uint8_t b[64];
    size_t n = sl__h3_settings_frame(b, sizeof b, kv, 6);
    assert_true(n > 0);
    /* Too small a buffer: 0, nothing claimed. */
    assert_int_equal(sl__h3_settings_frame(b, n - 1, kv, 6), 0);
    const uint64_t bad[][2] = {{0x33, SL__VARINT_MAX + 1}};
    assert_int_equal(sl__h3_settings_frame(b, sizeof b, bad, 1), 0);
    n = sl__h3_settings_frame(b, sizeof b, kv, 6);
    tlv_log log;
    memset(&log, 0, sizeof log);
    sl__tlv_rd r;
    sl__tlv_rd_init(&r);
    tlv_feed(&r, b, n, &log);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ends, 1);
    assert_true(log.type[0] == SL__H3_FRAME_SETTINGS);
    sl__h3_settings st;
    assert_true(sl__h3_settings_parse(log.payload[0], log.got[0], &st, NULL) == 0);
    assert_true(st.enable_connect_protocol && st.h3_datagram && st.enable_webtransport);
    assert_true(st.wt_max_sessions == 3 && st.qpack_max_table_capacity == 0);
}

/* -------------------------------------------------------- stream heads */

static void test_uni_heads(void **state)
{
    (void)state;
    struct {
        uint8_t b[12];
        size_t len, head;
        uint64_t type, session;
    } cases[] = {
        {{0x00, 0x04, 0x00}, 3, 1, SL__H3_UNI_CONTROL, 0},
        {{0x02}, 1, 1, SL__H3_UNI_QPACK_ENCODER, 0},
        {{0x03}, 1, 1, SL__H3_UNI_QPACK_DECODER, 0},
        {{0x40, 0x54, 0x00, 'x'}, 4, 3, SL__H3_UNI_WT, 0},
        {{0x40, 0x54, 0x80, 0, 0x10, 0x04, 'x', 'y'}, 8, 6, SL__H3_UNI_WT, 0x1004},
        {{0x40, 0x21, 0xff}, 3, 2, 0x21, 0}, /* GREASE type: head is the type only */
        {{0x01, 0x00}, 2, 1, SL__H3_UNI_PUSH, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t cut = 0; cut <= cases[i].len; cut++) {
            sl__h3_uni_rd r;
            memset(&r, 0, sizeof r);
            bool done = false;
            size_t used = sl__h3_uni_head(&r, cases[i].b, cut, &done);
            if (!done)
                used += sl__h3_uni_head(&r, cases[i].b + used, cases[i].len - used, &done);
            assert_true(done);
            assert_int_equal(used, cases[i].head);
            assert_true(r.type == cases[i].type);
            assert_true(r.session == cases[i].session);
        }
    }
    /* Byte by byte. */
    sl__h3_uni_rd r;
    memset(&r, 0, sizeof r);
    bool done = false;
    const uint8_t wt[] = {0x40, 0x54, 0x44, 0x00};
    for (size_t i = 0; i < sizeof wt; i++) {
        assert_false(done);
        assert_int_equal(sl__h3_uni_head(&r, wt + i, 1, &done), 1);
    }
    assert_true(done && r.type == SL__H3_UNI_WT && r.session == 0x400);
}

/* -------------------------------------------------------- WebTransport */

static void close_roundtrip(uint32_t code, const char *reason, size_t rlen, size_t want_rlen)
{
    uint8_t f[SL__WT_CLOSE_FRAME_MAX];
    size_t n = sl__wt_close_frame(f, code, reason, rlen);
    assert_true(n <= sizeof f);
    /* DATA frame -> capsule -> close value, each through the TLV reader,
     * one byte at a time. */
    sl__tlv_rd fr, cr;
    sl__tlv_rd_init(&fr);
    sl__tlv_rd_init(&cr);
    uint8_t val[SL__WT_CLOSE_REASON_MAX + 4];
    size_t vlen = 0;
    int capsules = 0, frames = 0;
    uint64_t ctype = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = f + i;
        size_t len = 1;
        for (;;) {
            sl__tlv_ev ev;
            size_t u = sl__tlv_read(&fr, p, len, &ev);
            p += u;
            len -= u;
            if (ev.kind == SL__TLV_NONE)
                break;
            if (ev.kind == SL__TLV_HEADER)
                assert_true(ev.type == SL__H3_FRAME_DATA);
            if (ev.kind == SL__TLV_END)
                frames++;
            if (ev.kind != SL__TLV_PAYLOAD)
                continue;
            const uint8_t *q = ev.data;
            size_t ql = ev.n;
            for (;;) {
                sl__tlv_ev ce;
                size_t cu = sl__tlv_read(&cr, q, ql, &ce);
                q += cu;
                ql -= cu;
                if (ce.kind == SL__TLV_NONE)
                    break;
                if (ce.kind == SL__TLV_HEADER)
                    ctype = ce.type;
                if (ce.kind == SL__TLV_PAYLOAD) {
                    memcpy(val + vlen, ce.data, ce.n);
                    vlen += ce.n;
                }
                if (ce.kind == SL__TLV_END)
                    capsules++;
            }
        }
    }
    assert_int_equal(frames, 1);
    assert_int_equal(capsules, 1);
    assert_true(ctype == SL__CAPSULE_CLOSE_WT_SESSION);
    uint32_t got;
    const uint8_t *r;
    size_t rl;
    assert_true(sl__wt_close_parse(val, vlen, &got, &r, &rl) == 0);
    assert_true(got == code);
    assert_int_equal(rl, want_rlen);
    if (want_rlen)
        assert_memory_equal(r, reason, want_rlen);
}

static void test_close_capsule(void **state)
{
    (void)state;
    /* The example of notes/webtransport.md 6: code 0, no reason. */
    uint8_t f[SL__WT_CLOSE_FRAME_MAX];
    size_t n = sl__wt_close_frame(f, 0, NULL, 0);
    const uint8_t want[] = {0x00, 0x07, 0x68, 0x43, 0x04, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(f, want, sizeof want);
    close_roundtrip(0, NULL, 0, 0);
    close_roundtrip(4242, "bye", 3, 3);
    close_roundtrip(0xffffffffu, "", 0, 0);
    /* A long reason is cut at 1024 bytes, on a UTF-8 boundary: "é" is two
     * bytes, and 1023 ASCII bytes + "é" would split it. */
    char longr[1100];
    memset(longr, 'a', 1023);
    memcpy(longr + 1023, "\xc3\xa9", 2);
    memset(longr + 1025, 'b', 20);
    close_roundtrip(7, longr, 1045, 1023);
    memset(longr, 'a', sizeof longr);
    close_roundtrip(7, longr, sizeof longr, 1024);
}

static void test_close_parse_hostile(void **state)
{
    (void)state;
    uint8_t v[SL__WT_CLOSE_REASON_MAX + 8];
    memset(v, 'r', sizeof v);
    uint32_t code;
    const uint8_t *r;
    size_t rl;
    for (size_t len = 0; len < 4; len++)
        assert_true(sl__wt_close_parse(v, len, &code, &r, &rl) == SL__H3_MESSAGE_ERROR);
    assert_true(sl__wt_close_parse(v, 4 + SL__WT_CLOSE_REASON_MAX, &code, &r, &rl) == 0);
    assert_true(sl__wt_close_parse(v, 5 + SL__WT_CLOSE_REASON_MAX, &code, &r, &rl) ==
                SL__H3_MESSAGE_ERROR);
}

static void test_wt_error_codes(void **state)
{
    (void)state;
    assert_true(sl__wt_code_to_h3(0) == 0x52e4a40fa8dbull);
    assert_true(sl__wt_code_to_h3(0xffffffffu) == 0x52e5ac983162ull);
    const uint32_t vals[] = {0,    1,    0x1c,       0x1d,        0x1e,       0x1f,
                             0x3c, 4242, 0x7fffffff, 0xfffffffeu, 0xffffffffu};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t h = sl__wt_code_to_h3(vals[i]);
        assert_false(sl__h3_is_grease(h));
        uint32_t back = 0;
        assert_true(sl__wt_code_from_h3(h, &back));
        assert_true(back == vals[i]);
    }
    /* Dense check of a stretch: the mapping is one to one and skips GREASE. */
    uint64_t prev = 0;
    for (uint32_t e = 0; e < 2000; e++) {
        uint64_t h = sl__wt_code_to_h3(e);
        assert_true(h > prev);
        prev = h;
        uint32_t back;
        assert_true(sl__wt_code_from_h3(h, &back) && back == e);
    }
    uint32_t x;
    assert_false(sl__wt_code_from_h3(0x52e4a40fa8dbull - 1, &x));
    assert_false(sl__wt_code_from_h3(0x52e5ac983162ull + 1, &x));
    assert_false(sl__wt_code_from_h3(SL__H3_NO_ERROR, &x));
    assert_false(sl__wt_code_from_h3(0, &x));
    /* A GREASE value inside the range maps to nothing. */
    uint64_t g = 0x52e4a40fa8dbull;
    while (!sl__h3_is_grease(g))
        g++;
    assert_false(sl__wt_code_from_h3(g, &x));
}

static void test_datagram_prefix(void **state)
{
    (void)state;
    uint8_t b[16];
    const uint64_t sids[] = {0, 4, 8, 252, 256, 65536, (SL__VARINT_MAX >> 2) << 2};
    for (size_t i = 0; i < sizeof sids / sizeof sids[0]; i++) {
        size_t n = sl__h3_dgram_prefix(b, sids[i]);
        b[n] = 'p';
        uint64_t sid = 1;
        assert_int_equal(sl__h3_dgram_parse(b, n + 1, &sid), n);
        assert_true(sid == sids[i]);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(sl__h3_dgram_parse(b, k, &sid), 0);
    }
    /* Session 0 is the single byte 0x00. */
    assert_int_equal(sl__h3_dgram_prefix(b, 0), 1);
    assert_int_equal(b[0], 0);
    assert_int_equal(sl__h3_dgram_parse(b, 0, &(uint64_t){0}), 0);
    assert_true(sl__wt_session_id_valid(0) && sl__wt_session_id_valid(8));
    assert_false(sl__wt_session_id_valid(1) || sl__wt_session_id_valid(2) ||
                 sl__wt_session_id_valid(3));
}

/* ---------------------------------------------------------------- QPACK */

static slt_mem MEM;

static void *m_malloc(size_t n, void *ud)
{
    (void)ud;
    return MEM.hooks.malloc(n, MEM.hooks.ud);
}
static void m_free(void *p, void *ud)
{
    (void)ud;
    if (p)
        MEM.hooks.free(p, MEM.hooks.ud);
}
static void *m_calloc(size_t n, size_t s, void *ud)
{
    (void)ud;
    return MEM.hooks.calloc(n, s, MEM.hooks.ud);
}
static void *m_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return MEM.hooks.realloc(p, n, MEM.hooks.ud);
}

static const nghttp3_mem NMEM = {NULL, m_malloc, m_free, m_calloc, m_realloc};

typedef struct qp {
    nghttp3_qpack_encoder *enc;
    nghttp3_qpack_decoder *dec;
} qp;

static void qp_open(qp *q)
{
    slt_mem_init(&MEM);
    assert_int_equal(nghttp3_qpack_encoder_new(&q->enc, 0, &NMEM), 0);
    assert_int_equal(nghttp3_qpack_decoder_new(&q->dec, 0, 0, &NMEM), 0);
}

static void qp_close(qp *q)
{
    nghttp3_qpack_encoder_del(q->enc);
    nghttp3_qpack_decoder_del(q->dec);
    assert_int_equal(MEM.live, 0);
    assert_int_equal(MEM.bad_frees, 0);
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(n), (const uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP3_NV_FLAG_NONE \
    }

/* Encode nva as a HEADERS frame for stream 0 and decode its payload as a
 * request. Returns the decode result. */
static uint64_t req_roundtrip(qp *q, const nghttp3_nv *nva, size_t n, sl__h3_request *req)
{
    uint8_t *f;
    size_t flen;
    assert_int_equal(sl__qpack_headers_frame(q->enc, &NMEM, 0, nva, n, &f, &flen), 0);
    uint64_t type, len;
    size_t a = sl__varint_get(f, flen, &type);
    size_t b = sl__varint_get(f + a, flen - a, &len);
    assert_true(type == SL__H3_FRAME_HEADERS);
    assert_int_equal(a + b + len, flen);
    uint64_t e = sl__h3_request_decode(q->dec, &NMEM, 0, f + a + b, (size_t)len, req);
    NMEM.free(f, NULL);
    return e;
}

static void test_qpack_connect_request(void **state)
{
    (void)state;
    qp q;
    qp_open(&q);
    const nghttp3_nv nva[] = {
        NV(":method", "CONNECT"),
        NV(":protocol", "webtransport"),
        NV(":scheme", "https"),
        NV(":authority", "127.0.0.1:4433"),
        NV(":path", "/starling?token=abc"),
        NV("sec-webtransport-http3-draft02", "1"),
        NV("origin", "http://127.0.0.1:8080"),
        NV("user-agent", "test"),
    };
    sl__h3_request req;
    assert_true(req_roundtrip(&q, nva, 8, &req) == 0);
    assert_null(req.malformed);
    assert_false(req.too_large);
    assert_string_equal(req.method, "CONNECT");
    assert_string_equal(req.protocol, "webtransport");
    assert_string_equal(req.scheme, "https");
    assert_string_equal(req.authority, "127.0.0.1:4433");
    assert_string_equal(req.path, "/starling?token=abc");
    assert_string_equal(req.origin, "http://127.0.0.1:8080");
    /* A GET without :authority is fine too (RFC 9114 allows Host). */
    const nghttp3_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/health")};
    assert_true(req_roundtrip(&q, get, 3, &req) == 0);
    assert_null(req.malformed);
    assert_string_equal(req.path, "/health");
    qp_close(&q);
}

static void test_qpack_malformed_requests(void **state)
{
    (void)state;
    qp q;
    qp_open(&q);
    sl__h3_request req;
    struct {
        nghttp3_nv nva[6];
        size_t n;
    } bad[] = {
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"), NV("X-Up", "1")}, 4},
        {{NV(":method", "GET"), NV("a", "1"), NV(":scheme", "https"), NV(":path", "/")}, 4},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"), NV(":bogus", "1")}, 4},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"), NV(":path", "/x")}, 4},
        {{NV(":method", "GET"), NV(":protocol", "webtransport"), NV(":scheme", "https"),
          NV(":path", "/")},
         4},
        {{NV(":method", "CONNECT"), NV(":protocol", "webtransport"), NV(":scheme", "https"),
          NV(":path", "/")},
         4},
        {{NV(":method", "CONNECT"), NV(":authority", "a"), NV(":path", "/")}, 3},
        {{NV(":scheme", "https"), NV(":path", "/")}, 2},
        {{NV(":method", "GET"), NV(":scheme", "https")}, 2},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/\r\nx: y")}, 3},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"), NV("origin", "a"),
          NV("origin", "b")},
         5},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/"), NV("bad name", "1")}, 4},
        {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "")}, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(req_roundtrip(&q, bad[i].nva, bad[i].n, &req) == 0);
        if (!req.malformed)
            fail_msg("case %zu not found malformed", i);
    }
    /* A path longer than its buffer: not malformed, "too large" (431). */
    char longpath[4000];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = 0;
    const nghttp3_nv big[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":path", longpath)};
    assert_true(req_roundtrip(&q, big, 3, &req) == 0);
    assert_true(req.too_large);
    qp_close(&q);
}

static void test_qpack_hostile_blocks(void **state)
{
    (void)state;
    /* A valid section cut at every length fails to decode (never crashes,
     * never leaks); garbage fails; a reference to the dynamic table (which
     * we said is empty) fails. Each is a connection error. */
    qp q;
    qp_open(&q);
    const nghttp3_nv nva[] = {NV(":method", "CONNECT"),
                              NV(":protocol", "webtransport"),
                              NV(":scheme", "https"),
                              NV(":authority", "example.org"),
                              NV(":path", "/starling?token=abcdefghijklmnop"),
                              NV("origin", "https://example.org")};
    uint8_t *f;
    size_t flen;
    assert_int_equal(sl__qpack_headers_frame(q.enc, &NMEM, 0, nva, 6, &f, &flen), 0);
    uint64_t type, len;
    size_t a = sl__varint_get(f, flen, &type);
    size_t b = sl__varint_get(f + a, flen - a, &len);
    const uint8_t *block = f + a + b;
    sl__h3_request req;
    size_t failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        nghttp3_qpack_decoder *dec;
        assert_int_equal(nghttp3_qpack_decoder_new(&dec, 0, 0, &NMEM), 0);
        uint64_t e = sl__h3_request_decode(dec, &NMEM, 0, block, cut, &req);
        /* A cut on a field boundary is a shorter valid section (which the
         * request checks then judge); anywhere else it cannot decode. */
        assert_true(e == 0 || e == SL__QPACK_DECOMPRESSION_FAILED);
        if (e != 0)
            failed++;
        nghttp3_qpack_decoder_del(dec);
    }
    assert_true(failed + 6 >= len);
    /* Trailing garbage after a complete section. */
    uint8_t withtail[512];
    memcpy(withtail, block, (size_t)len);
    withtail[len] = 0xff;
    assert_true(sl__h3_request_decode(q.dec, &NMEM, 0, withtail, (size_t)len + 1, &req) != 0);
    NMEM.free(f, NULL);
    /* Required Insert Count 1: needs the dynamic table. */
    nghttp3_qpack_decoder *dec;
    assert_int_equal(nghttp3_qpack_decoder_new(&dec, 0, 0, &NMEM), 0);
    const uint8_t dyn[] = {0x02, 0x00, 0x80};
    assert_true(sl__h3_request_decode(dec, &NMEM, 0, dyn, sizeof dyn, &req) ==
                SL__QPACK_DECOMPRESSION_FAILED);
    nghttp3_qpack_decoder_del(dec);
    /* Pseudo-random garbage, many seeds: any error but never a crash. */
    uint32_t x = 12345;
    for (int round = 0; round < 300; round++) {
        uint8_t g[64];
        size_t gl = (size_t)(round % 64);
        for (size_t i = 0; i < gl; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            g[i] = (uint8_t)x;
        }
        if (gl >= 2) {
            g[0] = 0; /* no dynamic table: reach the field lines */
            g[1] = 0;
        }
        assert_int_equal(nghttp3_qpack_decoder_new(&dec, 0, 0, &NMEM), 0);
        (void)sl__h3_request_decode(dec, &NMEM, 0, g, gl, &req);
        nghttp3_qpack_decoder_del(dec);
    }
    qp_close(&q);
}

static void test_qpack_encode_nomem(void **state)
{
    (void)state;
    /* Failing each allocation in turn: -1, nothing leaked. */
    qp q;
    qp_open(&q);
    const nghttp3_nv nva[] = {NV(":status", "200"), NV("sec-webtransport-http3-draft", "draft02")};
    for (uint64_t k = 1; k < 20; k++) {
        slt_mem_fail_after(&MEM, k, 0);
        uint8_t *f = NULL;
        size_t flen;
        int rc = sl__qpack_headers_frame(q.enc, &NMEM, 0, nva, 2, &f, &flen);
        slt_mem_fail_off(&MEM);
        if (rc == 0)
            NMEM.free(f, NULL);
    }
    qp_close(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_vectors),
        cmocka_unit_test(test_varint_boundaries),
        cmocka_unit_test(test_varint_reader_split),
        cmocka_unit_test(test_grease),
        cmocka_unit_test(test_tlv_split_everywhere),
        cmocka_unit_test(test_tlv_huge_length_streams),
        cmocka_unit_test(test_tlv_wt_stream_signal),
        cmocka_unit_test(test_reserved_h2_frames),
        cmocka_unit_test(test_settings_chromium),
        cmocka_unit_test(test_settings_hostile),
        cmocka_unit_test(test_settings_frame_roundtrip),
        cmocka_unit_test(test_uni_heads),
        cmocka_unit_test(test_close_capsule),
        cmocka_unit_test(test_close_parse_hostile),
        cmocka_unit_test(test_wt_error_codes),
        cmocka_unit_test(test_datagram_prefix),
        cmocka_unit_test(test_qpack_connect_request),
        cmocka_unit_test(test_qpack_malformed_requests),
        cmocka_unit_test(test_qpack_hostile_blocks),
        cmocka_unit_test(test_qpack_encode_nomem),
    };
    return cmocka_run_group_tests_name("wt_parse", tests, NULL, NULL);
}
