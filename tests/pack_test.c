/*
 * pack_test.c: the payload helpers (sl_pack, sl_unpack, the getters).
 *
 * Packing is compared byte for byte with msgpack-c's own sbuffer and with
 * hand-written msgpack, and run under a counting allocator that fails the Nth
 * allocation to prove the sticky error and that nothing leaks.
 *
 * Unpacking is attacked with truncated, deeply nested, huge-length and
 * unknown-extension inputs. To prove that msgpack-c is never handed bytes that
 * did not pass validation, this file interposes msgpack_unpack_next(): the
 * definition below wins over libmsgpackc's at link time (the library is linked
 * dynamically, as pkg-config gives it), counts every call, re-validates the
 * exact bytes it was given, and forwards to the real function found with
 * dlsym(RTLD_NEXT). So "no big allocation" is shown by msgpack-c not being
 * called at all for hostile input, and the calls that do happen are shown to
 * carry only validated bytes.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <cmocka.h>

#include "starling/pack.h"

/* ----------------------------------------- msgpack_unpack_next spy */

typedef msgpack_unpack_return (*unpack_next_fn)(msgpack_unpacked *, const char *, size_t, size_t *);
static struct {
    unsigned calls;       /* calls since the last spy_reset() */
    unsigned unvalidated; /* calls whose bytes fail a permissive sl_msgpack_check */
    const char *data;     /* last call's arguments */
    size_t len;
} spy;

static void spy_reset(void)
{
    memset(&spy, 0, sizeof spy);
}

static unpack_next_fn real_unpack_next(void)
{
    static unpack_next_fn real;
    if (real == NULL) {
        real = (unpack_next_fn)dlsym(RTLD_NEXT, "msgpack_unpack_next");
        if (real == NULL)
            fail_msg("cannot find the real msgpack_unpack_next (is msgpackc linked statically?)");
    }
    return real;
}

msgpack_unpack_return msgpack_unpack_next(msgpack_unpacked *result, const char *data, size_t len,
                                          size_t *off)
{
    spy.calls++;
    spy.data = data;
    spy.len = len;
    /* What msgpack-c is about to parse must be one complete value that every
     * length, depth and reserved-byte rule accepts (ext types and budgets are
     * policy, so this check allows them all). */
    sl_limits any;
    sl_limits_default(&any);
    any.max_depth = SL_UNPACK_MAX_DEPTH;
    any.max_size = SIZE_MAX;
    any.max_elements = UINT32_MAX;
    memset(any.ext_allow, 0xff, sizeof any.ext_allow);
    size_t used;
    if (data == NULL || *off > len ||
        sl_msgpack_check((const uint8_t *)data + *off, len - *off, &any, &used) != SL_OK)
        spy.unvalidated++;
    return real_unpack_next()(result, data, len, off);
}

/* ---------------------------------------------- counting allocator */

typedef struct counting {
    sl_mem mem;
    size_t calls;   /* allocation calls (malloc and realloc) */
    size_t fail_at; /* fail the Nth call (1-based); 0 = never */
    size_t allocs, frees;
} counting;

static void *c_malloc(size_t n, void *ud)
{
    counting *c = ud;
    if (++c->calls == c->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        c->allocs++;
    return p;
}

static void *c_realloc(void *p, size_t n, void *ud)
{
    counting *c = ud;
    if (++c->calls == c->fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q != NULL && p == NULL)
        c->allocs++;
    return q;
}

static void c_free(void *p, void *ud)
{
    counting *c = ud;
    if (p != NULL)
        c->frees++;
    free(p);
}

static void counting_init(counting *c, bool with_realloc)
{
    memset(c, 0, sizeof *c);
    c->mem.malloc = c_malloc;
    c->mem.free = c_free;
    c->mem.realloc = with_realloc ? c_realloc : NULL;
    c->mem.ud = c;
}

/* ------------------------------------------------------------ packing */

/*
 * A message using every writer: [42, -3, "hello", 1.5, true, nil, bin(3), {"k": []},
 * [nil, nil]], the last one appended as pre-encoded bytes; "k" is the first byte of "key".
 */
static void pack_sample(sl_pack *p)
{
    static const uint8_t blob[3] = {1, 2, 3};
    msgpack_pack_array(&p->pk, 9);
    msgpack_pack_uint32(&p->pk, 42);
    msgpack_pack_int(&p->pk, -3);
    sl_pack_str(p, "hello");
    msgpack_pack_double(&p->pk, 1.5);
    msgpack_pack_true(&p->pk);
    sl_pack_str(p, NULL);
    sl_pack_bin(p, blob, sizeof blob);
    msgpack_pack_map(&p->pk, 1);
    sl_pack_strn(p, "key", 1);
    msgpack_pack_array(&p->pk, 0);
    static const uint8_t nested[3] = {0x92, 0xc0, 0xc0};
    sl_pack_raw(p, nested, sizeof nested);
}

static const uint8_t sample_bytes[] = {
    0x99, 0x2a, 0xfd, 0xa5, 'h',  'e',  'l',  'l',  'o',  0xcb, 0x3f, 0xf8, 0,    0,    0,    0,
    0,    0,    0xc3, 0xc0, 0xc4, 0x03, 0x01, 0x02, 0x03, 0x81, 0xa1, 'k',  0x90, 0x92, 0xc0, 0xc0};

static void test_pack_bytes(void **state)
{
    (void)state;
    sl_pack p;
    sl_pack_init(&p, NULL);
    assert_null(sl_pack_data(&p));
    assert_int_equal(sl_pack_len(&p), 0);
    pack_sample(&p);
    assert_int_equal(sl_pack_error(&p), SL_OK);
    assert_int_equal(sl_pack_len(&p), sizeof sample_bytes);
    assert_memory_equal(sl_pack_data(&p), sample_bytes, sizeof sample_bytes);
    /* reset forgets the bytes, keeps the buffer */
    const uint8_t *before = p.data;
    size_t cap = p.cap;
    sl_pack_reset(&p);
    assert_int_equal(sl_pack_len(&p), 0);
    pack_sample(&p);
    assert_ptr_equal(p.data, before);
    assert_int_equal(p.cap, cap);
    assert_memory_equal(sl_pack_data(&p), sample_bytes, sizeof sample_bytes);
    sl_pack_fini(&p);
    assert_null(p.data);
    sl_pack_fini(&p); /* idempotent */
}

/* A long message matches msgpack-c's own sbuffer byte for byte. */
static void test_pack_matches_sbuffer(void **state)
{
    (void)state;
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer spk;
    msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
    char text[300];
    memset(text, 'x', sizeof text);
    msgpack_pack_array(&p.pk, 100000);
    msgpack_pack_array(&spk, 100000);
    for (int k = 0; k < 100000; k++) {
        int64_t v = (int64_t)k * k * (k % 2 ? -1 : 1);
        msgpack_pack_int64(&p.pk, v);
        msgpack_pack_int64(&spk, v);
        if (k % 1000 == 0) {
            size_t n = (size_t)k % sizeof text;
            sl_pack_strn(&p, text, n);
            msgpack_pack_str_with_body(&spk, text, n);
        }
    }
    assert_int_equal(sl_pack_error(&p), SL_OK);
    assert_int_equal(sl_pack_len(&p), sb.size);
    assert_memory_equal(sl_pack_data(&p), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    sl_pack_fini(&p);
}

/* Every allocation failure is reported, sticky, and leaks nothing. */
static void test_pack_fault_injection(void **state)
{
    (void)state;
    for (int with_realloc = 0; with_realloc < 2; with_realloc++) {
        size_t failures = 0;
        for (size_t fail = 1; fail <= 12; fail++) {
            counting c;
            counting_init(&c, with_realloc);
            c.fail_at = fail;
            sl_pack p;
            sl_pack_init(&p, &c.mem);
            char big[1000];
            memset(big, 'y', sizeof big);
            pack_sample(&p);
            for (int k = 0; k < 20; k++)
                sl_pack_strn(&p, big, sizeof big);
            if (c.calls >= fail) {
                failures++;
                assert_int_equal(sl_pack_error(&p), SL_ERR_NOMEM);
                /* sticky: later writes fail too, even small ones */
                assert_int_equal(sl_pack_str(&p, "x"), SL_ERR_NOMEM);
                assert_int_equal(sl_pack_raw(&p, "x", 1), SL_ERR_NOMEM);
                assert_int_not_equal(msgpack_pack_nil(&p.pk), 0);
                /* reset clears it and the sl_pack works again */
                sl_pack_reset(&p);
                assert_int_equal(sl_pack_error(&p), SL_OK);
                pack_sample(&p);
                assert_int_equal(sl_pack_error(&p), SL_OK);
                assert_memory_equal(sl_pack_data(&p), sample_bytes, sizeof sample_bytes);
            } else {
                assert_int_equal(sl_pack_error(&p), SL_OK);
            }
            sl_pack_fini(&p);
            assert_int_equal(c.allocs, c.frees);
        }
        assert_true(failures >= 5);
    }
}

static void test_pack_reserve(void **state)
{
    (void)state;
    counting c;
    counting_init(&c, true);
    sl_pack p;
    sl_pack_init(&p, &c.mem);
    assert_int_equal(c.calls, 0); /* init allocates nothing */
    assert_int_equal(sl_pack_reserve(&p, 5000), SL_OK);
    size_t calls = c.calls;
    for (int k = 0; k < 1000; k++)
        msgpack_pack_uint32(&p.pk, 0xffffffffu); /* 5 bytes each */
    assert_int_equal(c.calls, calls);            /* no allocation after reserve */
    assert_int_equal(sl_pack_len(&p), 5000);
    assert_int_equal(sl_pack_reserve(&p, SIZE_MAX), SL_ERR_NOMEM);
    assert_int_equal(sl_pack_error(&p), SL_ERR_NOMEM);
    sl_pack_fini(&p);
    assert_int_equal(c.allocs, c.frees);
}

/* ---------------------------------------------------------- unpacking */

static void test_unpack_and_getters(void **state)
{
    (void)state;
    uint8_t *in = malloc(sizeof sample_bytes);
    memcpy(in, sample_bytes, sizeof sample_bytes);
    sl_unpacked u;
    spy_reset();
    assert_int_equal(sl_unpack(in, sizeof sample_bytes, NULL, &u), SL_OK);
    assert_int_equal(spy.calls, 1);
    assert_int_equal(spy.unvalidated, 0);
    assert_ptr_equal(spy.data, in);
    assert_int_equal(spy.len, sizeof sample_bytes);

    uint32_t n;
    assert_int_equal(sl_msgpack_get_array(&u.root, &n), SL_OK);
    assert_int_equal(n, 9);
    uint64_t uv;
    int64_t iv;
    double dv;
    bool bv;
    const char *s;
    size_t sl;
    const uint8_t *b;
    const msgpack_object *o;
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 0, &uv), SL_OK);
    assert_int_equal(uv, 42);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 0, &iv), SL_OK);
    assert_int_equal(iv, 42);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 1, &iv), SL_OK);
    assert_int_equal(iv, -3);
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 1, &uv), SL_ERR_DECODE_TYPE);
    assert_int_equal(sl_msgpack_at_str(&u.root, 2, &s, &sl), SL_OK);
    assert_int_equal(sl, 5);
    assert_memory_equal(s, "hello", 5);
    assert_true((const uint8_t *)s >= in && (const uint8_t *)s < in + sizeof sample_bytes);
    assert_int_equal(sl_msgpack_at_double(&u.root, 3, &dv), SL_OK);
    assert_true(dv == 1.5);
    assert_int_equal(sl_msgpack_at_double(&u.root, 0, &dv), SL_OK); /* ints read as doubles */
    assert_true(dv == 42.0);
    assert_int_equal(sl_msgpack_at_double(&u.root, 1, &dv), SL_OK);
    assert_true(dv == -3.0);
    assert_int_equal(sl_msgpack_at_bool(&u.root, 4, &bv), SL_OK);
    assert_true(bv);
    assert_int_equal(sl_msgpack_at_bool(&u.root, 5, &bv), SL_ERR_DECODE_TYPE); /* nil */
    assert_int_equal(sl_msgpack_at_bin(&u.root, 6, &b, &sl), SL_OK);
    assert_int_equal(sl, 3);
    assert_int_equal(b[2], 3);
    assert_int_equal(sl_msgpack_at_str(&u.root, 6, &s, &sl), SL_ERR_DECODE_TYPE);
    assert_int_equal(sl_msgpack_at(&u.root, 7, &o), SL_OK);
    assert_int_equal(sl_msgpack_get_map(o, &n), SL_OK);
    assert_int_equal(n, 1);
    const msgpack_object *val;
    assert_int_equal(sl_msgpack_map_get(o, "k", &val), SL_OK);
    assert_int_equal(sl_msgpack_get_array(val, &n), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sl_msgpack_map_get(o, "missing", &val), SL_ERR_NOTFOUND);
    assert_int_equal(sl_msgpack_map_get(o, "", &val), SL_ERR_NOTFOUND);
    assert_int_equal(sl_msgpack_map_get(&u.root, "k", &val), SL_ERR_DECODE_TYPE);
    assert_int_equal(sl_msgpack_at(&u.root, 9, &o), SL_ERR_NOTFOUND);
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 100, &uv), SL_ERR_NOTFOUND);
    assert_int_equal(sl_msgpack_at(o, 0, &o), SL_ERR_DECODE_TYPE); /* a map is not an array */
    /* copy_str */
    char small[5], fits[6];
    assert_int_equal(sl_msgpack_at(&u.root, 2, &o), SL_OK);
    assert_int_equal(sl_msgpack_copy_str(o, small, sizeof small), SL_ERR_DECODE_LENGTH);
    assert_int_equal(sl_msgpack_copy_str(o, fits, sizeof fits), SL_OK);
    assert_string_equal(fits, "hello");
    assert_int_equal(sl_msgpack_copy_str(&u.root, fits, sizeof fits), SL_ERR_DECODE_TYPE);
    /* argument errors */
    assert_int_equal(sl_msgpack_get_uint64(NULL, &uv), SL_ERR_INVAL);
    assert_int_equal(sl_msgpack_get_str(o, NULL, &sl), SL_ERR_INVAL);
    assert_int_equal(sl_msgpack_at(NULL, 0, &o), SL_ERR_INVAL);
    sl_unpacked_fini(&u);
    sl_unpacked_fini(&u); /* idempotent */
    free(in);
}

static void test_getter_ranges(void **state)
{
    (void)state;
    /* [2^64-1, 2^63, -2^63, "a\0b", 1.5f, false] */
    static const uint8_t in[] = {0x96, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                 0xcf, 0x80, 0,    0,    0,    0,    0,    0,    0,    0xd3,
                                 0x80, 0,    0,    0,    0,    0,    0,    0,    0xa3, 'a',
                                 0,    'b',  0xca, 0x3f, 0xc0, 0,    0,    0xc2};
    sl_unpacked u;
    assert_int_equal(sl_unpack(in, sizeof in, NULL, &u), SL_OK);
    uint64_t uv;
    int64_t iv;
    double dv;
    bool bv;
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 0, &uv), SL_OK);
    assert_true(uv == UINT64_MAX);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 0, &iv), SL_ERR_DECODE_TYPE);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 1, &iv), SL_ERR_DECODE_TYPE); /* 2^63 */
    assert_int_equal(sl_msgpack_at_int64(&u.root, 2, &iv), SL_OK);
    assert_true(iv == INT64_MIN);
    const msgpack_object *o;
    char buf[8];
    assert_int_equal(sl_msgpack_at(&u.root, 3, &o), SL_OK);
    assert_int_equal(sl_msgpack_copy_str(o, buf, sizeof buf), SL_ERR_DECODE_TYPE); /* NUL */
    assert_int_equal(sl_msgpack_at_double(&u.root, 4, &dv), SL_OK);
    assert_true(dv == 1.5);
    assert_int_equal(sl_msgpack_at_bool(&u.root, 5, &bv), SL_OK);
    assert_false(bv);
    assert_int_equal(sl_msgpack_at_double(&u.root, 5, &dv), SL_ERR_DECODE_TYPE);
    sl_unpacked_fini(&u);
}

/* Hostile inputs get the right error and never reach msgpack-c. */
static void test_unpack_hostile(void **state)
{
    (void)state;
    static uint8_t deep[100000];
    memset(deep, 0x91, sizeof deep);
    static uint8_t deep33[34];
    memset(deep33, 0x91, 33);
    deep33[33] = 0xc0;
    static const struct {
        const char *name;
        const uint8_t *b;
        size_t n;
        int err;
    } cases[] = {
        {"empty", (const uint8_t *)"", 0, SL_ERR_DECODE_TRUNCATED},
        {"uint16 cut", (const uint8_t *)"\xcd\x01", 2, SL_ERR_DECODE_TRUNCATED},
        {"array cut", (const uint8_t *)"\x93\x01\x02", 3, SL_ERR_DECODE_LENGTH},
        {"str cut", (const uint8_t *)"\xa5hel", 4, SL_ERR_DECODE_LENGTH},
        {"0x91 x 100000", deep, sizeof deep, SL_ERR_DECODE_DEPTH},
        {"33 nested", deep33, sizeof deep33, SL_ERR_DECODE_DEPTH},
        {"array32 2^32-1", (const uint8_t *)"\xdd\xff\xff\xff\xff", 5, SL_ERR_DECODE_LENGTH},
        {"map32 2^32-1", (const uint8_t *)"\xdf\xff\xff\xff\xff", 5, SL_ERR_DECODE_LENGTH},
        {"str32 2^32-1", (const uint8_t *)"\xdb\xff\xff\xff\xff", 5, SL_ERR_DECODE_LENGTH},
        {"bin32 2^32-1", (const uint8_t *)"\xc6\xff\xff\xff\xff", 5, SL_ERR_DECODE_LENGTH},
        {"[array32 2^32-1]", (const uint8_t *)"\x91\xdd\xff\xff\xff\xff", 6, SL_ERR_DECODE_LENGTH},
        {"fixext1", (const uint8_t *)"\xd4\x01\x00", 3, SL_ERR_DECODE_EXT},
        {"timestamp32", (const uint8_t *)"\xd6\xff\x00\x00\x00\x00", 6, SL_ERR_DECODE_EXT},
        {"ext32 huge", (const uint8_t *)"\xc9\xff\xff\xff\xff\x05", 6, SL_ERR_DECODE_EXT},
        {"[1, ext8]", (const uint8_t *)"\x92\x01\xc7\x00\x09", 5, SL_ERR_DECODE_EXT},
        {"0xc1", (const uint8_t *)"\xc1", 1, SL_ERR_DECODE_RESERVED},
        {"two values", (const uint8_t *)"\x01\x02", 2, SL_ERR_DECODE_TRAILING},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t *b = malloc(cases[k].n > 0 ? cases[k].n : 1); /* exact size for ASan */
        memcpy(b, cases[k].b, cases[k].n);
        sl_unpacked u;
        spy_reset();
        int rc = sl_unpack(b, cases[k].n, NULL, &u);
        if (rc != cases[k].err)
            fail_msg("%s: got %s, want %s", cases[k].name, sl_err_name(rc),
                     sl_err_name(cases[k].err));
        if (spy.calls != 0)
            fail_msg("%s: msgpack-c was called", cases[k].name);
        assert_int_equal(u.root.type, MSGPACK_OBJECT_NIL);
        sl_unpacked_fini(&u); /* safe after a failure */
        free(b);
    }
    /* limits apply too */
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_elements = 3;
    sl_unpacked u;
    spy_reset();
    assert_int_equal(sl_unpack("\x93\x01\x02\x03", 4, &lim, &u), SL_ERR_DECODE_BUDGET);
    lim.max_elements = 4;
    assert_int_equal(sl_unpack("\x93\x01\x02\x03", 4, &lim, &u), SL_OK);
    sl_unpacked_fini(&u);
    lim.max_size = 3;
    assert_int_equal(sl_unpack("\x93\x01\x02\x03", 4, &lim, &u), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(spy.calls, 1); /* only the one that passed */
    assert_int_equal(spy.unvalidated, 0);
    /* argument errors */
    assert_int_equal(sl_unpack(NULL, 1, NULL, &u), SL_ERR_INVAL);
    assert_int_equal(sl_unpack("\xc0", 1, NULL, NULL), SL_ERR_INVAL);
    sl_unpacked_fini(&u);
    sl_unpacked_fini(NULL);
}

/*
 * The depth clamp matches msgpack-c: 32 nested containers unpack, 33 are
 * refused by us (DEPTH) even when the limits ask for more, and msgpack-c
 * itself indeed cannot parse 33 (so the clamp is needed, not just cautious).
 */
static void test_unpack_depth_clamp(void **state)
{
    (void)state;
    uint8_t b[40];
    memset(b, 0x91, 32);
    b[32] = 0x2a;
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_depth = 100;
    sl_unpacked u;
    spy_reset();
    assert_int_equal(sl_unpack(b, 33, &lim, &u), SL_OK);
    const msgpack_object *o = &u.root;
    for (int d = 0; d < 32; d++)
        assert_int_equal(sl_msgpack_at(o, 0, &o), SL_OK);
    uint64_t v;
    assert_int_equal(sl_msgpack_get_uint64(o, &v), SL_OK);
    assert_int_equal(v, 42);
    sl_unpacked_fini(&u);

    memset(b, 0x91, 33);
    b[33] = 0x2a;
    assert_int_equal(sl_msgpack_check(b, 34, &lim, NULL), SL_OK); /* the validator alone: fine */
    assert_int_equal(sl_unpack(b, 34, &lim, &u), SL_ERR_DECODE_DEPTH);
    sl_unpacked_fini(&u);
    assert_int_equal(spy.calls, 1);
    /* msgpack-c on its own (a small, validated buffer) fails at 33 */
    msgpack_unpacked raw;
    msgpack_unpacked_init(&raw);
    size_t off = 0;
    msgpack_unpack_return r = real_unpack_next()(&raw, (const char *)b, 34, &off);
    assert_true(r < 0);
    msgpack_unpacked_destroy(&raw);
}

static void test_unpack_ext_allowed(void **state)
{
    (void)state;
    sl_limits lim;
    sl_limits_default(&lim);
    sl_limits_allow_ext(&lim, 5, true);
    static const uint8_t in[] = {0x92, 0xd5, 0x05, 'h', 'i', 0xc7, 0x01, 0x05, '!'};
    sl_unpacked u;
    assert_int_equal(sl_unpack(in, sizeof in, &lim, &u), SL_OK);
    const msgpack_object *o;
    assert_int_equal(sl_msgpack_at(&u.root, 0, &o), SL_OK);
    assert_int_equal(o->type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o->via.ext.type, 5);
    assert_int_equal(o->via.ext.size, 2);
    sl_unpacked_fini(&u);
    sl_limits_allow_ext(&lim, 5, false);
    assert_int_equal(sl_unpack(in, sizeof in, &lim, &u), SL_ERR_DECODE_EXT);
    sl_unpacked_fini(&u);
}

/* A big validated array costs msgpack-c objects, not surprises. */
static void test_unpack_large(void **state)
{
    (void)state;
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_pack_array(&p.pk, 200000);
    for (int k = 0; k < 200000; k++)
        msgpack_pack_int(&p.pk, k);
    assert_int_equal(sl_pack_error(&p), SL_OK);
    sl_unpacked u;
    spy_reset();
    assert_int_equal(sl_unpack(sl_pack_data(&p), sl_pack_len(&p), NULL, &u), SL_OK);
    assert_int_equal(spy.calls, 1);
    assert_int_equal(spy.unvalidated, 0);
    int64_t v;
    assert_int_equal(sl_msgpack_at_int64(&u.root, 199999, &v), SL_OK);
    assert_int_equal(v, 199999);
    sl_unpacked_fini(&u);
    /* the same array truncated by one byte never reaches msgpack-c */
    spy_reset();
    assert_int_equal(sl_unpack(sl_pack_data(&p), sl_pack_len(&p) - 1, NULL, &u),
                     SL_ERR_DECODE_TRUNCATED);
    assert_int_equal(spy.calls, 0);
    sl_unpacked_fini(&u);
    sl_pack_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_bytes),           cmocka_unit_test(test_pack_matches_sbuffer),
        cmocka_unit_test(test_pack_fault_injection), cmocka_unit_test(test_pack_reserve),
        cmocka_unit_test(test_unpack_and_getters),   cmocka_unit_test(test_getter_ranges),
        cmocka_unit_test(test_unpack_hostile),       cmocka_unit_test(test_unpack_depth_clamp),
        cmocka_unit_test(test_unpack_ext_allowed),   cmocka_unit_test(test_unpack_large),
    };
    return cmocka_run_group_tests_name("pack", tests, NULL, NULL);
}
