/*
 * schema_test.c: the wire schema (envelope codec, msgpack validator, limits,
 * frames).
 *
 * The heart of it is schemas/vectors.json: every vector is decoded and
 * compared field by field or error by error, and every decoded envelope is
 * encoded again and compared byte by byte. Around the vectors the tests attack
 * the decoders the way a hostile peer would: every prefix of every valid
 * message, every single-byte mutation, runs of 0x91 a million long, 2^32
 * lengths with nothing behind them, an input whose bytes are unreadable
 * memory (to prove the size is refused before a byte is read). Inputs are
 * copied into heap blocks of exactly their size so that AddressSanitizer sees
 * any read past the end. The frame reader is run with a counting allocator
 * that can fail the Nth allocation and proves nothing leaks.
 *
 * The vectors file is read with the small JSON reader at the top of this
 * file (only what vectors.json uses: objects, arrays, strings, numbers, true).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "starling/schema.h"
#include "starling/pack.h"

#ifndef SL_SOURCE_DIR
#error "SL_SOURCE_DIR must name the source tree (tests/CMakeLists.txt defines it)"
#endif

/* ------------------------------------------------------- JSON reader */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    bool b;
    double num;
    char *str;          /* J_STR: NUL-terminated */
    size_t n;           /* J_ARR / J_OBJ: item count */
    struct jval *items; /* J_ARR / J_OBJ: items */
    char **keys;        /* J_OBJ: keys */
} jval;

typedef struct jparser {
    const char *p, *end;
} jparser;

static void jskip(jparser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static bool jparse(jparser *j, jval *v, int depth);

static bool jparse_str(jparser *j, char **out)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    size_t cap = 16, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end)
                break;
            c = *j->p++;
            switch (c) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': { /* ASCII only: vectors.json has nothing else */
                if (j->end - j->p < 4)
                    goto fail;
                char hex[5] = {j->p[0], j->p[1], j->p[2], j->p[3], 0};
                j->p += 4;
                long u = strtol(hex, NULL, 16);
                if (u <= 0 || u > 127)
                    goto fail;
                c = (char)u;
                break;
            }
            default:
                break; /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
        s[n++] = c;
    }
    if (j->p >= j->end)
        goto fail;
    j->p++;
    s[n] = 0;
    *out = s;
    return true;
fail:
    free(s);
    return false;
}

static bool jparse_items(jparser *j, jval *v, int depth, char close, bool obj)
{
    size_t cap = 8;
    v->items = calloc(cap, sizeof *v->items);
    v->keys = obj ? calloc(cap, sizeof *v->keys) : NULL;
    assert_non_null(v->items);
    jskip(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        if (v->n == cap) {
            cap *= 2;
            v->items = realloc(v->items, cap * sizeof *v->items);
            assert_non_null(v->items);
            if (obj) {
                v->keys = realloc(v->keys, cap * sizeof *v->keys);
                assert_non_null(v->keys);
            }
        }
        jskip(j);
        if (obj) {
            if (!jparse_str(j, &v->keys[v->n]))
                return false;
            jskip(j);
            if (j->p >= j->end || *j->p++ != ':')
                return false;
        }
        memset(&v->items[v->n], 0, sizeof v->items[v->n]);
        v->n++; /* counted before parsing so that a failure frees it */
        if (!jparse(j, &v->items[v->n - 1], depth + 1))
            return false;
        jskip(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        return false;
    }
}

static bool jparse(jparser *j, jval *v, int depth)
{
    memset(v, 0, sizeof *v);
    if (depth > 32)
        return false;
    jskip(j);
    if (j->p >= j->end)
        return false;
    char c = *j->p;
    if (c == '{' || c == '[') {
        j->p++;
        v->t = c == '{' ? J_OBJ : J_ARR;
        return jparse_items(j, v, depth, c == '{' ? '}' : ']', c == '{');
    }
    if (c == '"') {
        v->t = J_STR;
        return jparse_str(j, &v->str);
    }
    if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
        v->t = J_BOOL;
        v->b = true;
        j->p += 4;
        return true;
    }
    if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
        v->t = J_BOOL;
        j->p += 5;
        return true;
    }
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return true;
    }
    char *e;
    v->t = J_NUM;
    v->num = strtod(j->p, &e);
    if (e == j->p || e > j->end)
        return false;
    j->p = e;
    return true;
}

static void jfree(jval *v)
{
    for (size_t k = 0; k < v->n; k++) {
        jfree(&v->items[k]);
        if (v->keys != NULL)
            free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

static const jval *jget(const jval *o, const char *key)
{
    if (o == NULL || o->t != J_OBJ)
        return NULL;
    for (size_t k = 0; k < o->n; k++)
        if (strcmp(o->keys[k], key) == 0)
            return &o->items[k];
    return NULL;
}

static const char *jstr(const jval *o, const char *key)
{
    const jval *v = jget(o, key);
    return v != NULL && v->t == J_STR ? v->str : NULL;
}

/* A 64-bit value written as a decimal string. */
static uint64_t ju64(const jval *o, const char *key)
{
    const char *s = jstr(o, key);
    if (s == NULL)
        fail_msg("missing 64-bit string field %s", key);
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (*s == '\0' || *e != '\0' || *s == '-')
        fail_msg("bad 64-bit string %s=%s", key, s);
    return v;
}

static double jnum(const jval *o, const char *key)
{
    const jval *v = jget(o, key);
    if (v == NULL || v->t != J_NUM)
        fail_msg("missing number field %s", key);
    return v->num;
}

/* Load schemas/vectors.json; the caller jfree()s it. */
static void load_vectors(jval *doc)
{
    const char *path = SL_SOURCE_DIR "/schemas/vectors.json";
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n > 0);
    char *text = malloc((size_t)n);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    jparser j = {text, text + n};
    bool ok = jparse(&j, doc, 0);
    free(text);
    if (!ok)
        fail_msg("%s is not valid JSON (near byte %ld)", path, (long)(j.p - text));
    assert_int_equal(doc->t, J_OBJ);
    assert_int_equal((int)jnum(doc, "version"), 1);
}

/* ------------------------------------------------------------ helpers */

/* Decode hex into a heap block of exactly the byte count (NULL-safe for 0 bytes). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t h = strlen(hex);
    if (h % 2 != 0)
        fail_msg("odd hex length: %s", hex);
    *len = h / 2;
    uint8_t *b = malloc(*len > 0 ? *len : 1);
    assert_non_null(b);
    for (size_t k = 0; k < *len; k++) {
        unsigned v;
        if (sscanf(hex + 2 * k, "%2x", &v) != 1)
            fail_msg("bad hex: %s", hex);
        b[k] = (uint8_t)v;
    }
    return b;
}

static char *tohex(const uint8_t *b, size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    for (size_t k = 0; k < n; k++)
        sprintf(s + 2 * k, "%02x", b[k]);
    s[2 * n] = 0;
    return s;
}

/* A copy of b[0..n) in a heap block of exactly n bytes, so ASan sees overreads. */
static uint8_t *exact_copy(const uint8_t *b, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, b, n);
    return c;
}

/* The sl_err code of a name such as "SL_ERR_DECODE_DEPTH"; fails the test if unknown. */
static int err_code(const char *name)
{
    if (strcmp(name, "SL_OK") == 0)
        return SL_OK;
#define XX(n, v, m)                                                                                \
    if (strcmp(name, "SL_ERR_" #n) == 0)                                                           \
        return (v);
    SL_ERRNO_MAP(XX)
#undef XX
    fail_msg("unknown error name %s", name);
    return 1;
}

static bool is_decode_err(int rc)
{
    return rc <= SL_ERR_DECODE_TRUNCATED && rc >= SL_ERR_DECODE_RESERVED;
}

/* sl_limits_default() plus the overrides of a vector's "limits" object. */
static void vector_limits(const jval *v, sl_limits *lim)
{
    sl_limits_default(lim);
    const jval *l = jget(v, "limits");
    if (l == NULL)
        return;
    for (size_t k = 0; k < l->n; k++) {
        const char *key = l->keys[k];
        const jval *x = &l->items[k];
        if (strcmp(key, "ext_allow") == 0) {
            assert_int_equal(x->t, J_ARR);
            for (size_t i = 0; i < x->n; i++)
                sl_limits_allow_ext(lim, (int8_t)x->items[i].num, true);
            continue;
        }
        assert_int_equal(x->t, J_NUM);
        if (strcmp(key, "max_depth") == 0)
            lim->max_depth = (uint32_t)x->num;
        else if (strcmp(key, "max_size") == 0)
            lim->max_size = (size_t)x->num;
        else if (strcmp(key, "max_elements") == 0)
            lim->max_elements = (uint32_t)x->num;
        else if (strcmp(key, "max_str_len") == 0)
            lim->max_str_len = (size_t)x->num;
        else if (strcmp(key, "max_bin_len") == 0)
            lim->max_bin_len = (size_t)x->num;
        else if (strcmp(key, "max_ext_len") == 0)
            lim->max_ext_len = (size_t)x->num;
        else
            fail_msg("unknown limit %s", key);
    }
}

static bool env_equal(const sl_envelope *a, const sl_envelope *b)
{
    return sl_id_eq(a->from, b->from) && sl_id_eq(a->to, b->to) && a->corr == b->corr &&
           a->type == b->type && a->kind == b->kind && a->prio == b->prio && a->flags == b->flags &&
           a->status == b->status && a->code == b->code && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The envelope a vector's "envelope" object describes; *payload is heap (free it). */
static void vector_envelope(const jval *v, sl_envelope *e, uint8_t **payload)
{
    const jval *o = jget(v, "envelope");
    assert_non_null(o);
    memset(e, 0, sizeof *e);
    e->prio = (uint8_t)jnum(o, "prio");
    e->kind = (uint8_t)jnum(o, "kind");
    e->flags = (uint16_t)jnum(o, "flags");
    e->type = (uint32_t)jnum(o, "type");
    e->status = (int32_t)jnum(o, "status");
    e->code = (int32_t)jnum(o, "code");
    e->to.node = ju64(jget(o, "to"), "node");
    e->to.local = ju64(jget(o, "to"), "local");
    e->from.node = ju64(jget(o, "from"), "node");
    e->from.local = ju64(jget(o, "from"), "local");
    e->corr = ju64(o, "corr");
    *payload = unhex(jstr(o, "payload"), &e->len);
    e->data = e->len > 0 ? *payload : NULL;
}

#define VCHECK(name, cond)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("vector %s: %s", (name), #cond);                                              \
    } while (0)

/* ----------------------------------------------------- vector tests */

static void test_vectors_envelope(void **state)
{
    (void)state;
    jval doc;
    load_vectors(&doc);
    const jval *list = jget(&doc, "envelope");
    assert_non_null(list);
    assert_int_equal(list->t, J_ARR);
    size_t oks = 0, errs = 0;
    for (size_t k = 0; k < list->n; k++) {
        const jval *v = &list->items[k];
        const char *name = jstr(v, "name");
        assert_non_null(name);
        uint64_t ito = ju64(v, "implied_to_node"), ifrom = ju64(v, "implied_from_node");
        sl_limits lim;
        vector_limits(v, &lim);
        size_t len;
        uint8_t *bytes = unhex(jstr(v, "hex"), &len);
        sl_envelope got;
        int rc = sl_envelope_decode(bytes, len, ito, ifrom, &lim, &got, NULL);
        const char *errname = jstr(v, "error");
        if (errname != NULL) {
            errs++;
            int want = err_code(errname);
            if (rc != want)
                fail_msg("vector %s: decode gave %s, want %s", name, sl_err_name(rc), errname);
            /* With a consumed count, trailing bytes are fine and clipping may turn
             * TOO_BIG into success; every other error must stay the same. */
            size_t used = 0;
            int rc2 = sl_envelope_decode(bytes, len, ito, ifrom, &lim, &got, &used);
            if (want != SL_ERR_DECODE_TRAILING && want != SL_ERR_DECODE_TOO_BIG)
                VCHECK(name, rc2 == want);
            if (want == SL_ERR_DECODE_TRAILING)
                VCHECK(name, rc2 == SL_OK && used < len);
        } else {
            oks++;
            if (rc != SL_OK)
                fail_msg("vector %s: decode gave %s", name, sl_err_name(rc));
            sl_envelope want;
            uint8_t *payload;
            vector_envelope(v, &want, &payload);
            VCHECK(name, env_equal(&got, &want));
            VCHECK(name, got.len == 0 || (got.data >= bytes && got.data + got.len <= bytes + len));
            /* consumed mode agrees */
            size_t used = 0;
            sl_envelope got2;
            VCHECK(name, sl_envelope_decode(bytes, len, ito, ifrom, &lim, &got2, &used) == SL_OK);
            VCHECK(name, used == len && env_equal(&got2, &want));
            /* an envelope is valid msgpack */
            VCHECK(name, sl_msgpack_check(bytes, len, NULL, NULL) == SL_OK);
            /* encode gives exactly the canonical bytes */
            const char *canon = jstr(v, "canonical_hex");
            size_t clen;
            uint8_t *cbytes = unhex(canon != NULL ? canon : jstr(v, "hex"), &clen);
            uint8_t *out = malloc(clen);
            size_t outlen = 0;
            rc = sl_envelope_encode(&want, ito, ifrom, out, clen, &outlen);
            if (rc != SL_OK)
                fail_msg("vector %s: encode gave %s", name, sl_err_name(rc));
            if (outlen != clen || memcmp(out, cbytes, clen) != 0) {
                char *h = tohex(out, outlen);
                fail_msg("vector %s: encoded %s, want %s", name, h,
                         canon != NULL ? canon : jstr(v, "hex"));
            }
            VCHECK(name, sl_envelope_encoded_size(&want, ito, ifrom) == clen);
            VCHECK(name, clen <= sl_envelope_max_size(want.len));
            free(out);
            free(cbytes);
            free(payload);
        }
        free(bytes);
    }
    assert_true(oks >= 10);
    assert_true(errs >= 30);
    jfree(&doc);
}

static void test_vectors_msgpack(void **state)
{
    (void)state;
    jval doc;
    load_vectors(&doc);
    const jval *list = jget(&doc, "msgpack");
    assert_non_null(list);
    size_t count = 0;
    for (size_t k = 0; k < list->n; k++, count++) {
        const jval *v = &list->items[k];
        const char *name = jstr(v, "name");
        sl_limits lim;
        vector_limits(v, &lim);
        size_t len;
        uint8_t *bytes = unhex(jstr(v, "hex"), &len);
        const char *errname = jstr(v, "error");
        int want = errname != NULL ? err_code(errname) : SL_OK;
        VCHECK(name, errname != NULL || jget(v, "ok") != NULL);
        int rc = sl_msgpack_check(bytes, len, &lim, NULL);
        if (rc != want)
            fail_msg("vector %s: check gave %s, want %s", name, sl_err_name(rc), sl_err_name(want));
        /* sl_unpack reports the same, and msgpack-c agrees with what passed */
        sl_unpacked u;
        rc = sl_unpack(bytes, len, &lim, &u);
        if (rc != want)
            fail_msg("vector %s: unpack gave %s, want %s", name, sl_err_name(rc),
                     sl_err_name(want));
        sl_unpacked_fini(&u);
        free(bytes);
    }
    assert_true(count >= 30);
    jfree(&doc);
}

static void test_vectors_frame(void **state)
{
    (void)state;
    jval doc;
    load_vectors(&doc);
    const jval *list = jget(&doc, "frame");
    assert_non_null(list);
    assert_true(list->n >= 10);
    for (size_t k = 0; k < list->n; k++) {
        const jval *v = &list->items[k];
        const char *name = jstr(v, "name");
        size_t len;
        uint8_t *bytes = unhex(jstr(v, "hex"), &len);
        uint64_t max = jget(v, "max_frame") != NULL ? ju64(v, "max_frame") : SL_FRAME_VARINT_MAX;
        uint64_t flen = 0;
        size_t hlen = 0;
        int rc = sl_frame_read_header(bytes, len, max, &flen, &hlen);
        const char *errname = jstr(v, "error");
        if (errname != NULL) {
            VCHECK(name, rc == err_code(errname));
        } else {
            VCHECK(name, rc == SL_OK);
            VCHECK(name, flen == ju64(v, "length"));
            VCHECK(name, hlen == len);
            /* every shorter prefix asks for more */
            for (size_t cut = 0; cut < len; cut++)
                VCHECK(name, sl_frame_read_header(bytes, cut, max, &flen, &hlen) == SL_ERR_AGAIN);
            const char *canon = jstr(v, "canonical_hex");
            size_t clen;
            uint8_t *cbytes = unhex(canon != NULL ? canon : jstr(v, "hex"), &clen);
            uint8_t out[SL_FRAME_MAX_HEADER];
            size_t olen = 0;
            VCHECK(name, sl_frame_write_header(ju64(v, "length"), out, sizeof out, &olen) == SL_OK);
            VCHECK(name, olen == clen && memcmp(out, cbytes, clen) == 0);
            VCHECK(name, sl_frame_header_size(ju64(v, "length")) == clen);
            free(cbytes);
        }
        free(bytes);
    }
    jfree(&doc);
}

/* Every decoding error code is exercised by at least one vector. */
static void test_vectors_cover_every_error(void **state)
{
    (void)state;
    jval doc;
    load_vectors(&doc);
    static const int codes[] = {SL_ERR_DECODE_TRUNCATED, SL_ERR_DECODE_DEPTH,
                                SL_ERR_DECODE_LENGTH,    SL_ERR_DECODE_BUDGET,
                                SL_ERR_DECODE_EXT,       SL_ERR_DECODE_TYPE,
                                SL_ERR_DECODE_TRAILING,  SL_ERR_DECODE_VERSION,
                                SL_ERR_DECODE_TOO_BIG,   SL_ERR_DECODE_RESERVED};
    bool seen[sizeof codes / sizeof codes[0]] = {false};
    const char *sections[] = {"envelope", "msgpack", "frame"};
    for (size_t s = 0; s < 3; s++) {
        const jval *list = jget(&doc, sections[s]);
        for (size_t k = 0; k < list->n; k++) {
            const char *e = jstr(&list->items[k], "error");
            if (e == NULL)
                continue;
            int c = err_code(e);
            for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
                seen[i] |= codes[i] == c;
        }
    }
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!seen[i])
            fail_msg("no vector for %s", sl_err_name(codes[i]));
    jfree(&doc);
}

/* Valid vectors' bytes, for the sweeps below. */
typedef struct sample {
    uint8_t *b;
    size_t n;
    uint64_t ito, ifrom;
} sample;

static size_t load_valid_envelopes(sample *out, size_t max)
{
    jval doc;
    load_vectors(&doc);
    const jval *list = jget(&doc, "envelope");
    size_t n = 0;
    for (size_t k = 0; k < list->n && n < max; k++) {
        const jval *v = &list->items[k];
        if (jget(v, "error") != NULL || jget(v, "limits") != NULL)
            continue;
        out[n].b = unhex(jstr(v, "hex"), &out[n].n);
        out[n].ito = ju64(v, "implied_to_node");
        out[n].ifrom = ju64(v, "implied_from_node");
        n++;
    }
    jfree(&doc);
    return n;
}

/* --------------------------------------------------- hostile sweeps */

/* Every proper prefix of every valid envelope fails cleanly, never reading past it. */
static void test_truncation_sweep(void **state)
{
    (void)state;
    sample s[64];
    size_t n = load_valid_envelopes(s, 64);
    assert_true(n >= 10);
    for (size_t k = 0; k < n; k++) {
        for (size_t cut = 0; cut < s[k].n; cut++) {
            uint8_t *b = exact_copy(s[k].b, cut);
            sl_envelope e;
            int rc = sl_envelope_decode(b, cut, s[k].ito, s[k].ifrom, NULL, &e, NULL);
            if (rc != SL_ERR_DECODE_TRUNCATED && rc != SL_ERR_DECODE_LENGTH)
                fail_msg("prefix %zu of sample %zu: %s", cut, k, sl_err_name(rc));
            size_t used;
            assert_int_equal(sl_envelope_decode(b, cut, s[k].ito, s[k].ifrom, NULL, &e, &used), rc);
            rc = sl_msgpack_check(b, cut, NULL, NULL);
            assert_true(rc == SL_ERR_DECODE_TRUNCATED || rc == SL_ERR_DECODE_LENGTH);
            free(b);
        }
        free(s[k].b);
    }
}

/*
 * Every single-byte substitution, deletion and insertion of every valid
 * envelope: no crash, only SL_OK or a decode error, and whatever decodes
 * re-encodes into something that decodes to the same envelope.
 */
static void test_mutation_sweep(void **state)
{
    (void)state;
    sample s[64];
    size_t n = load_valid_envelopes(s, 64);
    size_t decoded = 0, rejected = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len = s[k].n;
        if (len > 80)
            len = 80; /* the long payloads add nothing but time */
        for (size_t pos = 0; pos < len; pos++) {
            for (int op = 0; op < 258; op++) {
                /* op 0..255: substitute; 256: delete; 257: insert 0xc1 */
                size_t m = s[k].n + (op == 257) - (op == 256);
                uint8_t *b = malloc(m + 1);
                assert_non_null(b);
                if (op < 256) {
                    memcpy(b, s[k].b, s[k].n);
                    b[pos] = (uint8_t)op;
                } else if (op == 256) {
                    memcpy(b, s[k].b, pos);
                    memcpy(b + pos, s[k].b + pos + 1, s[k].n - pos - 1);
                } else {
                    memcpy(b, s[k].b, pos);
                    b[pos] = 0xc1;
                    memcpy(b + pos + 1, s[k].b + pos, s[k].n - pos);
                }
                uint8_t *c = exact_copy(b, m);
                free(b);
                sl_envelope e;
                int rc = sl_envelope_decode(c, m, s[k].ito, s[k].ifrom, NULL, &e, NULL);
                if (rc == SL_OK) {
                    decoded++;
                    uint8_t out[512 + SL_ENVELOPE_MAX_OVERHEAD];
                    size_t olen;
                    assert_true(e.len <= 512);
                    assert_int_equal(
                        sl_envelope_encode(&e, s[k].ito, s[k].ifrom, out, sizeof out, &olen),
                        SL_OK);
                    sl_envelope e2;
                    assert_int_equal(
                        sl_envelope_decode(out, olen, s[k].ito, s[k].ifrom, NULL, &e2, NULL),
                        SL_OK);
                    assert_true(env_equal(&e, &e2));
                    assert_int_equal(sl_msgpack_check(c, m, NULL, NULL), SL_OK);
                } else {
                    rejected++;
                    if (!is_decode_err(rc))
                        fail_msg("mutation gave %s", sl_err_name(rc));
                }
                rc = sl_msgpack_check(c, m, NULL, NULL);
                assert_true(rc == SL_OK || is_decode_err(rc));
                free(c);
            }
        }
        free(s[k].b);
    }
    assert_true(decoded > 1000);
    assert_true(rejected > 1000);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const size_t n = 1000000;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    memset(b, 0x91, n);
    assert_int_equal(sl_msgpack_check(b, n, NULL, NULL), SL_ERR_DECODE_DEPTH);
    size_t used;
    assert_int_equal(sl_msgpack_check(b, n, NULL, &used), SL_ERR_DECODE_DEPTH);
    sl_envelope e;
    assert_int_equal(sl_envelope_decode(b, n, 0, 0, NULL, &e, NULL), SL_ERR_DECODE_VERSION);
    sl_unpacked u;
    assert_int_equal(sl_unpack(b, n, NULL, &u), SL_ERR_DECODE_DEPTH);
    sl_unpacked_fini(&u);
    /* maps nest too: {nil: {nil: ...}} */
    for (size_t k = 0; k + 1 < n; k += 2) {
        b[k] = 0x81;
        b[k + 1] = 0xc0;
    }
    assert_int_equal(sl_msgpack_check(b, n, NULL, NULL), SL_ERR_DECODE_DEPTH);

    /* exactly at the limit passes, one more fails, for several limits */
    sl_limits lim;
    sl_limits_default(&lim);
    for (uint32_t d = 0; d <= 140; d++) {
        memset(b, 0x91, d);
        b[d] = 0xc0;
        uint32_t max = d % 7 == 0 ? 200 : (d + 1) / 2 * 2; /* sometimes above the cap */
        lim.max_depth = max;
        uint32_t eff = max < SL_LIMITS_DEPTH_CAP ? max : SL_LIMITS_DEPTH_CAP;
        int rc = sl_msgpack_check(b, d + 1, &lim, NULL);
        assert_int_equal(rc, d <= eff ? SL_OK : SL_ERR_DECODE_DEPTH);
    }
    free(b);
}

static void test_huge_lengths(void **state)
{
    (void)state;
    static const struct {
        uint8_t b[5];
        size_t n;
    } heads[] = {
        {{0xdd, 0xff, 0xff, 0xff, 0xff}, 5}, /* array 32 */
        {{0xdf, 0xff, 0xff, 0xff, 0xff}, 5}, /* map 32 */
        {{0xdb, 0xff, 0xff, 0xff, 0xff}, 5}, /* str 32 */
        {{0xc6, 0xff, 0xff, 0xff, 0xff}, 5}, /* bin 32 */
        {{0xdc, 0xff, 0xff}, 3},             /* array 16 */
        {{0xde, 0xff, 0xff}, 3},             /* map 16 */
        {{0xda, 0xff, 0xff}, 3},             /* str 16 */
        {{0xc5, 0xff, 0xff}, 3},             /* bin 16 */
        {{0xd9, 0xff}, 2},                   /* str 8 */
        {{0xc4, 0xff}, 2},                   /* bin 8 */
    };
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_elements = UINT32_MAX; /* so the length check, not the budget, must catch it */
    for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
        size_t hl = heads[k].n;
        /* alone, after 100 bytes of filler inside an array, and with some bytes behind */
        uint8_t buf[200];
        memcpy(buf, heads[k].b, hl);
        memset(buf + hl, 0x00, 100);
        for (size_t tail = 0; tail <= 100; tail += 50) {
            uint8_t *b = exact_copy(buf, hl + tail);
            assert_int_equal(sl_msgpack_check(b, hl + tail, &lim, NULL), SL_ERR_DECODE_LENGTH);
            sl_unpacked u;
            assert_int_equal(sl_unpack(b, hl + tail, &lim, &u), SL_ERR_DECODE_LENGTH);
            sl_unpacked_fini(&u);
            free(b);
        }
        buf[0] = 0x91;
        memcpy(buf + 1, heads[k].b, hl);
        uint8_t *b = exact_copy(buf, hl + 1);
        assert_int_equal(sl_msgpack_check(b, hl + 1, &lim, NULL), SL_ERR_DECODE_LENGTH);
        free(b);
    }
    /* the envelope with a huge top-level array, id array and payload */
    uint8_t env1[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    uint8_t env2[] = {0x96, 0x02, 0x07, 0xdd, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    uint8_t env3[] = {0x96, 0x02, 0x07, 0x05, 0x09, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff};
    sl_envelope e;
    assert_int_equal(sl_envelope_decode(env1, sizeof env1, 0, 0, NULL, &e, NULL),
                     SL_ERR_DECODE_LENGTH);
    assert_int_equal(sl_envelope_decode(env2, sizeof env2, 0, 0, NULL, &e, NULL),
                     SL_ERR_DECODE_LENGTH);
    assert_int_equal(sl_envelope_decode(env3, sizeof env3, 0, 0, NULL, &e, NULL),
                     SL_ERR_DECODE_LENGTH);
}

/*
 * An input over max_size is refused before a single byte is read: the bytes
 * here are PROT_NONE memory, so any read would crash the test.
 */
static void test_too_big_reads_nothing(void **state)
{
    (void)state;
    size_t size = SL_LIMITS_DEFAULT_SIZE + 1;
    void *m = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(m != MAP_FAILED);
    sl_envelope e;
    sl_unpacked u;
    assert_int_equal(sl_envelope_decode(m, size, 1, 2, NULL, &e, NULL), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(sl_msgpack_check(m, size, NULL, NULL), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(sl_unpack(m, size, NULL, &u), SL_ERR_DECODE_TOO_BIG);
    sl_unpacked_fini(&u);
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_size = 16;
    assert_int_equal(sl_envelope_decode(m, 17, 1, 2, &lim, &e, NULL), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(sl_msgpack_check(m, 17, &lim, NULL), SL_ERR_DECODE_TOO_BIG);
    /* a frame header announcing more than the maximum: nothing buffered */
    uint8_t hdr[8];
    size_t hl;
    uint64_t flen;
    assert_int_equal(sl_frame_write_header(size, hdr, sizeof hdr, &hl), SL_OK);
    assert_int_equal(sl_frame_read_header(hdr, hl, SL_LIMITS_DEFAULT_SIZE, &flen, &hl),
                     SL_ERR_DECODE_TOO_BIG);
    munmap(m, size);
}

/* With a consumed count, only the first max_size bytes are looked at. */
static void test_consumed_window(void **state)
{
    (void)state;
    sl_envelope a = {.to = {1, 5}, .from = {2, 9}, .type = 7, .prio = 2};
    uint8_t payload[40];
    memset(payload, 0xab, sizeof payload);
    a.data = payload;
    a.len = sizeof payload;
    uint8_t buf[200];
    size_t l1, l2;
    assert_int_equal(sl_envelope_encode(&a, 1, 2, buf, sizeof buf, &l1), SL_OK);
    a.kind = SL_KIND_ASK;
    a.corr = 1234;
    assert_int_equal(sl_envelope_encode(&a, 1, 2, buf + l1, sizeof buf - l1, &l2), SL_OK);
    /* two envelopes back to back */
    sl_envelope e;
    size_t used;
    assert_int_equal(sl_envelope_decode(buf, l1 + l2, 1, 2, NULL, &e, &used), SL_OK);
    assert_int_equal(used, l1);
    assert_int_equal(e.kind, SL_KIND_SEND);
    assert_int_equal(sl_envelope_decode(buf + l1, l2, 1, 2, NULL, &e, &used), SL_OK);
    assert_int_equal(used, l2);
    assert_int_equal(e.kind, SL_KIND_ASK);
    assert_int_equal(e.corr, 1234);
    assert_int_equal(sl_envelope_decode(buf, l1 + l2, 1, 2, NULL, &e, NULL),
                     SL_ERR_DECODE_TRAILING);
    /* window: max_size >= the first envelope is enough, less is TOO_BIG */
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_size = l1;
    assert_int_equal(sl_envelope_decode(buf, l1 + l2, 1, 2, &lim, &e, &used), SL_OK);
    assert_int_equal(used, l1);
    assert_int_equal(sl_msgpack_check(buf, l1 + l2, &lim, &used), SL_OK);
    assert_int_equal(used, l1);
    for (size_t m = 0; m < l1; m++) {
        lim.max_size = m;
        assert_int_equal(sl_envelope_decode(buf, l1 + l2, 1, 2, &lim, &e, &used),
                         SL_ERR_DECODE_TOO_BIG);
        assert_int_equal(sl_msgpack_check(buf, l1 + l2, &lim, &used), SL_ERR_DECODE_TOO_BIG);
    }
}

static void test_ext_allow_list(void **state)
{
    (void)state;
    sl_limits lim;
    sl_limits_default(&lim);
    for (int t = -128; t < 128; t++) {
        uint8_t fix[3] = {0xd4, (uint8_t)t, 0};
        uint8_t ext8[4] = {0xc7, 1, (uint8_t)t, 0};
        assert_int_equal(sl_msgpack_check(fix, 3, &lim, NULL), SL_ERR_DECODE_EXT);
        assert_int_equal(sl_msgpack_check(ext8, 4, &lim, NULL), SL_ERR_DECODE_EXT);
    }
    sl_limits_allow_ext(&lim, 7, true);
    sl_limits_allow_ext(&lim, -1, true);
    sl_limits_allow_ext(&lim, -128, true);
    for (int t = -128; t < 128; t++) {
        bool allowed = t == 7 || t == -1 || t == -128;
        uint8_t fix[3] = {0xd4, (uint8_t)t, 0};
        assert_int_equal(sl_msgpack_check(fix, 3, &lim, NULL), allowed ? SL_OK : SL_ERR_DECODE_EXT);
    }
    sl_limits_allow_ext(&lim, 7, false);
    uint8_t fix7[3] = {0xd4, 7, 0};
    assert_int_equal(sl_msgpack_check(fix7, 3, &lim, NULL), SL_ERR_DECODE_EXT);
    /* every fixext size and ext 8/16/32 */
    sl_limits_allow_ext(&lim, 7, true);
    uint8_t buf[40] = {0};
    for (int k = 0; k < 5; k++) {
        buf[0] = (uint8_t)(0xd4 + k);
        buf[1] = 7;
        assert_int_equal(sl_msgpack_check(buf, 2 + (1u << k), &lim, NULL), SL_OK);
        assert_int_equal(sl_msgpack_check(buf, 1 + (1u << k), &lim, NULL), SL_ERR_DECODE_LENGTH);
    }
    uint8_t e16[] = {0xc8, 0x00, 0x02, 7, 1, 2};
    uint8_t e32[] = {0xc9, 0x00, 0x00, 0x00, 0x01, 7, 1};
    assert_int_equal(sl_msgpack_check(e16, sizeof e16, &lim, NULL), SL_OK);
    assert_int_equal(sl_msgpack_check(e32, sizeof e32, &lim, NULL), SL_OK);
    lim.max_ext_len = 1;
    assert_int_equal(sl_msgpack_check(e16, sizeof e16, &lim, NULL), SL_ERR_DECODE_LENGTH);
    assert_int_equal(sl_msgpack_check(e32, sizeof e32, &lim, NULL), SL_OK);
}

static void test_element_budget(void **state)
{
    (void)state;
    /* an array of 2^20 nils: 2^20 + 1 elements, one over the default budget */
    size_t n = SL_LIMITS_DEFAULT_ELEMENTS;
    uint8_t *b = malloc(n + 5);
    assert_non_null(b);
    b[0] = 0xdd;
    b[1] = (uint8_t)(n >> 24);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    memset(b + 5, 0xc0, n);
    assert_int_equal(sl_msgpack_check(b, n + 5, NULL, NULL), SL_ERR_DECODE_BUDGET);
    /* one fewer element fits */
    b[4] = (uint8_t)(n - 1);
    b[3] = (uint8_t)((n - 1) >> 8);
    b[2] = (uint8_t)((n - 1) >> 16);
    assert_int_equal(sl_msgpack_check(b, n + 4, NULL, NULL), SL_OK);
    free(b);
    /* the budget counts nested children as they are announced */
    uint8_t nested[] = {0x92, 0x92, 0x01, 0x02, 0x92, 0x03, 0x04}; /* 7 elements */
    sl_limits lim;
    sl_limits_default(&lim);
    lim.max_elements = 7;
    assert_int_equal(sl_msgpack_check(nested, sizeof nested, &lim, NULL), SL_OK);
    lim.max_elements = 6;
    assert_int_equal(sl_msgpack_check(nested, sizeof nested, &lim, NULL), SL_ERR_DECODE_BUDGET);
    lim.max_elements = 0;
    assert_int_equal(sl_msgpack_check(nested, 1, &lim, NULL), SL_ERR_DECODE_BUDGET);
}

static void test_limits_default(void **state)
{
    (void)state;
    sl_limits lim;
    memset(&lim, 0x5a, sizeof lim);
    sl_limits_default(&lim);
    assert_int_equal(lim.max_depth, 32);
    assert_int_equal(lim.max_size, 64 * 1024 * 1024 + 1024);
    assert_int_equal(lim.max_elements, 1u << 20);
    assert_int_equal(lim.max_str_len, 64 * 1024 * 1024);
    assert_int_equal(lim.max_bin_len, 64 * 1024 * 1024);
    assert_int_equal(lim.max_ext_len, 64 * 1024 * 1024);
    for (int k = 0; k < 4; k++)
        assert_int_equal(lim.ext_allow[k], 0);
    sl_limits_default(NULL); /* harmless */
    /* the default max_size holds the largest default payload in an envelope */
    assert_true(sl_envelope_max_size(SL_LIMITS_DEFAULT_PAYLOAD) <= lim.max_size);
}

/* ------------------------------------------------------- the codec */

static void test_overhead(void **state)
{
    (void)state;
    uint8_t payload[64];
    for (int k = 0; k < 64; k++)
        payload[k] = (uint8_t)k;
    const uint64_t A = 0x8f3a91c2d4e5f607ull, B = 0x1b2c3d4e5f607182ull; /* two node ids */
    sl_envelope e = {.to = {B, 5},
                     .from = {A, 9},
                     .type = 7,
                     .prio = SL_PRIO_NORMAL,
                     .data = payload,
                     .len = 64};
    /* short form: the link's nodes are the ids' nodes */
    size_t s = sl_envelope_encoded_size(&e, B, A);
    print_message("64-byte payload, short ids, small type, no corr: %zu bytes overhead\n", s - 64);
    assert_true(s - 64 < 32);
    assert_int_equal(s - 64, 8);
    /* realistic short form: type 1000, locals ~ 10^6, a 40-bit corr */
    e.type = 1000;
    e.to.local = 1000000;
    e.from.local = 2000000;
    e.corr = (1ull << 40) + 17;
    s = sl_envelope_encoded_size(&e, B, A);
    print_message("64-byte payload, short ids, type 1000, locals ~10^6, ask corr: %zu bytes\n",
                  s - 64);
    assert_true(s - 64 < 32);
    /* full form, 64-bit nodes, the same values */
    s = sl_envelope_encoded_size(&e, 0, 0);
    print_message("64-byte payload, full-form ids (64-bit nodes), same values: %zu bytes\n",
                  s - 64);
    assert_int_equal(s - 64, 46);
    /* full form with small locals and no corr */
    e.type = 7;
    e.to.local = 5;
    e.from.local = 9;
    e.corr = 0;
    s = sl_envelope_encoded_size(&e, 0, 0);
    print_message("64-byte payload, full-form ids, small values: %zu bytes\n", s - 64);
    assert_int_equal(s - 64, 28);
    /* the worst case is exactly SL_ENVELOPE_MAX_OVERHEAD */
    size_t big = 70000;
    uint8_t *p = calloc(1, big);
    assert_non_null(p);
    sl_envelope w = {.to = {UINT64_MAX, UINT64_MAX},
                     .from = {UINT64_MAX, UINT64_MAX},
                     .corr = UINT64_MAX,
                     .type = UINT32_MAX,
                     .kind = SL_KIND_EXIT,
                     .prio = SL_PRIO_BACKGROUND,
                     .status = INT32_MIN,
                     .code = INT32_MIN,
                     .data = p,
                     .len = big};
    s = sl_envelope_encoded_size(&w, 0, 0);
    assert_int_equal(s, big + SL_ENVELOPE_MAX_OVERHEAD);
    assert_int_equal(sl_envelope_max_size(big), s);
    uint8_t *out = malloc(s);
    size_t olen;
    assert_int_equal(sl_envelope_encode(&w, 0, 0, out, s, &olen), SL_OK);
    assert_int_equal(olen, s);
    sl_envelope d;
    assert_int_equal(sl_envelope_decode(out, olen, 0, 0, NULL, &d, NULL), SL_OK);
    assert_true(env_equal(&d, &w));
    free(out);
    free(p);
    assert_int_equal(sl_envelope_max_size(SIZE_MAX), SIZE_MAX);
    assert_int_equal(sl_envelope_max_size(SIZE_MAX - SL_ENVELOPE_MAX_OVERHEAD), SIZE_MAX);
}

static void test_encode_errors(void **state)
{
    (void)state;
    uint8_t payload[10] = {1, 2, 3};
    sl_envelope e = {.to = {1, 5}, .from = {2, 9}, .type = 7, .data = payload, .len = 10};
    uint8_t buf[128];
    size_t len = 12345;
    assert_int_equal(sl_envelope_encode(&e, 1, 2, buf, sizeof buf, &len), SL_OK);
    size_t need = len;
    assert_int_equal(need, sl_envelope_encoded_size(&e, 1, 2));
    /* size query */
    len = 0;
    assert_int_equal(sl_envelope_encode(&e, 1, 2, NULL, 0, &len), SL_ERR_AGAIN);
    assert_int_equal(len, need);
    /* every short buffer: AGAIN, the size needed, and nothing written */
    for (size_t cap = 0; cap < need; cap++) {
        uint8_t *b = malloc(cap + 1);
        memset(b, 0xee, cap + 1);
        len = 0;
        assert_int_equal(sl_envelope_encode(&e, 1, 2, b, cap, &len), SL_ERR_AGAIN);
        assert_int_equal(len, need);
        for (size_t k = 0; k <= cap; k++)
            assert_int_equal(b[k], 0xee);
        free(b);
    }
    /* invalid envelopes */
    sl_envelope bad = e;
    bad.prio = 5;
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_encoded_size(&bad, 1, 2), 0);
    bad = e;
    bad.kind = SL_KIND_WIRE_COUNT; /* 15: no such kind */
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    bad = e;
    bad.flags = 1;
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    bad = e;
    bad.data = NULL;
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    bad = e;
    bad.len = (size_t)UINT32_MAX + 1;
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_encode(NULL, 1, 2, buf, sizeof buf, &len), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_encode(&e, 1, 2, buf, sizeof buf, NULL), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_encode(&e, 1, 2, NULL, 10, &len), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_encoded_size(NULL, 1, 2), 0);
    /* an empty payload may have a NULL pointer */
    bad = e;
    bad.data = NULL;
    bad.len = 0;
    assert_int_equal(sl_envelope_encode(&bad, 1, 2, buf, sizeof buf, &len), SL_OK);
    sl_envelope d;
    assert_int_equal(sl_envelope_decode(buf, len, 1, 2, NULL, &d, NULL), SL_OK);
    assert_null(d.data);
    assert_int_equal(d.len, 0);
    /* decode argument errors */
    assert_int_equal(sl_envelope_decode(NULL, 1, 1, 2, NULL, &d, NULL), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_decode(buf, len, 1, 2, NULL, NULL, NULL), SL_ERR_INVAL);
    assert_int_equal(sl_envelope_decode(NULL, 0, 1, 2, NULL, &d, NULL), SL_ERR_DECODE_TRUNCATED);
    assert_int_equal(sl_msgpack_check(NULL, 1, NULL, NULL), SL_ERR_INVAL);
    assert_int_equal(sl_msgpack_check(NULL, 0, NULL, NULL), SL_ERR_DECODE_TRUNCATED);
}

static void test_id_forms(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len;
    sl_envelope e = {.to = {10, 3}, .from = {20, 4}, .type = 1};
    sl_envelope d;
    /* both implied: short */
    assert_int_equal(sl_envelope_encode(&e, 10, 20, buf, sizeof buf, &len), SL_OK);
    uint8_t short_form[] = {0x96, 0x00, 0x01, 0x03, 0x04, 0x00, 0xc4, 0x00};
    assert_int_equal(len, sizeof short_form);
    assert_memory_equal(buf, short_form, len);
    assert_int_equal(sl_envelope_decode(buf, len, 10, 20, NULL, &d, NULL), SL_OK);
    assert_true(env_equal(&d, &e));
    /* the same bytes on another link mean other nodes: the context matters */
    assert_int_equal(sl_envelope_decode(buf, len, 11, 21, NULL, &d, NULL), SL_OK);
    assert_int_equal(d.to.node, 11);
    assert_int_equal(d.from.node, 21);
    /* implied nodes swapped: both long */
    assert_int_equal(sl_envelope_encode(&e, 20, 10, buf, sizeof buf, &len), SL_OK);
    uint8_t long_form[] = {0x96, 0x00, 0x01, 0x92, 0x0a, 0x03, 0x92, 0x14, 0x04, 0x00, 0xc4, 0x00};
    assert_int_equal(len, sizeof long_form);
    assert_memory_equal(buf, long_form, len);
    assert_int_equal(sl_envelope_decode(buf, len, 20, 10, NULL, &d, NULL), SL_OK);
    assert_true(env_equal(&d, &e));
    /* local 0 is "none" whatever its node: one byte, decodes as {0, 0} */
    e.from = (sl_id){77, 0};
    assert_int_equal(sl_envelope_encode(&e, 10, 20, buf, sizeof buf, &len), SL_OK);
    assert_int_equal(buf[4], 0x00);
    assert_int_equal(sl_envelope_decode(buf, len, 10, 20, NULL, &d, NULL), SL_OK);
    assert_true(sl_id_eq(d.from, SL_ID_NONE));
    /* a node 0 actor on a link whose implied node is not 0 goes long */
    e.from = (sl_id){0, 4};
    assert_int_equal(sl_envelope_encode(&e, 10, 20, buf, sizeof buf, &len), SL_OK);
    assert_int_equal(sl_envelope_decode(buf, len, 10, 20, NULL, &d, NULL), SL_OK);
    assert_true(sl_id_eq(d.from, e.from));
}

/* A small deterministic PRNG (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* A value of a random size class, so every integer width is hit. */
static uint64_t rnd_width(void)
{
    static const int bits[] = {0, 5, 7, 8, 15, 16, 31, 32, 63, 64};
    int b = bits[rnd() % 10];
    return b == 64 ? rnd() : rnd() & ((1ull << b) - 1);
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    uint8_t payload[300];
    for (size_t k = 0; k < sizeof payload; k++)
        payload[k] = (uint8_t)rnd();
    uint8_t buf[sizeof payload + SL_ENVELOPE_MAX_OVERHEAD + 8];
    for (int i = 0; i < 20000; i++) {
        uint64_t ito = rnd_width(), ifrom = rnd_width();
        sl_envelope e = {0};
        e.to.node = rnd() % 3 == 0 ? ito : rnd_width();
        e.to.local = rnd_width();
        e.from.node = rnd() % 3 == 0 ? ifrom : rnd_width();
        e.from.local = rnd_width();
        if (e.to.local == 0)
            e.to.node = 0;
        if (e.from.local == 0)
            e.from.node = 0;
        e.corr = rnd_width();
        e.type = (uint32_t)rnd_width();
        e.prio = (uint8_t)(rnd() % SL_PRIO_COUNT);
        e.kind = (uint8_t)(rnd() % SL_KIND_WIRE_COUNT);
        e.status = rnd() % 2 ? (int32_t)rnd_width() : 0;
        e.code = rnd() % 3 == 0 ? (int32_t)rnd_width() : 0;
        static const size_t lens[] = {0, 1, 31, 64, 255, 256, 300};
        e.len = lens[rnd() % 7];
        e.data = e.len > 0 ? payload : NULL;
        size_t len;
        assert_int_equal(sl_envelope_encode(&e, ito, ifrom, buf, sizeof buf, &len), SL_OK);
        assert_true(len <= sl_envelope_max_size(e.len));
        assert_int_equal(len, sl_envelope_encoded_size(&e, ito, ifrom));
        uint8_t *c = exact_copy(buf, len);
        sl_envelope d;
        assert_int_equal(sl_envelope_decode(c, len, ito, ifrom, NULL, &d, NULL), SL_OK);
        if (!env_equal(&d, &e))
            fail_msg("round trip %d differs", i);
        assert_int_equal(sl_msgpack_check(c, len, NULL, NULL), SL_OK);
        free(c);
        /* with garbage behind it, in consumed mode */
        buf[len] = 0xc1;
        size_t used;
        assert_int_equal(sl_envelope_decode(buf, len + 1, ito, ifrom, NULL, &d, &used), SL_OK);
        assert_int_equal(used, len);
    }
}

/* The encoder's bytes are what msgpack-c itself unpacks to the same fields. */
static void test_encoding_is_msgpack(void **state)
{
    (void)state;
    uint8_t payload[5] = {0x93, 1, 2, 3, 0xc0};
    sl_envelope e = {.to = {1, 300},
                     .from = {99, 70000},
                     .corr = 1ull << 33,
                     .type = 65536,
                     .kind = SL_KIND_DOWN,
                     .prio = SL_PRIO_CRITICAL,
                     .status = 1,
                     .code = -7,
                     .data = payload,
                     .len = 4};
    uint8_t buf[100];
    size_t len;
    assert_int_equal(sl_envelope_encode(&e, 1, 2, buf, sizeof buf, &len), SL_OK);
    sl_unpacked u;
    assert_int_equal(sl_unpack(buf, len, NULL, &u), SL_OK);
    uint32_t n;
    assert_int_equal(sl_msgpack_get_array(&u.root, &n), SL_OK);
    assert_int_equal(n, 8);
    uint64_t v;
    int64_t i;
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 0, &v), SL_OK);
    assert_int_equal(v, SL_PRIO_CRITICAL | SL_KIND_DOWN << 3);
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 1, &v), SL_OK);
    assert_int_equal(v, 65536);
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 2, &v), SL_OK);
    assert_int_equal(v, 300);
    const msgpack_object *from;
    assert_int_equal(sl_msgpack_at(&u.root, 3, &from), SL_OK);
    assert_int_equal(sl_msgpack_at_uint64(from, 0, &v), SL_OK);
    assert_int_equal(v, 99);
    assert_int_equal(sl_msgpack_at_uint64(from, 1, &v), SL_OK);
    assert_int_equal(v, 70000);
    assert_int_equal(sl_msgpack_at_uint64(&u.root, 4, &v), SL_OK);
    assert_int_equal(v, 1ull << 33);
    const uint8_t *b;
    size_t bl;
    assert_int_equal(sl_msgpack_at_bin(&u.root, 5, &b, &bl), SL_OK);
    assert_int_equal(bl, 4);
    assert_memory_equal(b, payload, 4);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 6, &i), SL_OK);
    assert_int_equal(i, 1);
    assert_int_equal(sl_msgpack_at_int64(&u.root, 7, &i), SL_OK);
    assert_int_equal(i, -7);
    sl_unpacked_fini(&u);
}

/* ------------------------------------------------------------ frames */

typedef struct counting {
    sl_mem mem;
    size_t allocs, frees, live_bytes, peak_bytes;
    size_t fail_at; /* fail the Nth allocation (1-based); 0 = never */
    size_t calls;
} counting;

/* Each block carries its size in a header so live bytes can be counted. */
static void *c_malloc(size_t n, void *ud)
{
    counting *c = ud;
    if (++c->calls == c->fail_at)
        return NULL;
    size_t *p = malloc(sizeof(size_t) + n);
    if (p == NULL)
        return NULL;
    *p = n;
    c->allocs++;
    c->live_bytes += n;
    if (c->live_bytes > c->peak_bytes)
        c->peak_bytes = c->live_bytes;
    return p + 1;
}

static void c_free(void *ptr, void *ud)
{
    counting *c = ud;
    if (ptr == NULL)
        return;
    size_t *p = (size_t *)ptr - 1;
    c->frees++;
    c->live_bytes -= *p;
    free(p);
}

static void *c_realloc(void *ptr, size_t n, void *ud)
{
    counting *c = ud;
    if (ptr == NULL)
        return c_malloc(n, ud);
    if (++c->calls == c->fail_at)
        return NULL;
    size_t *p = (size_t *)ptr - 1;
    size_t old = *p;
    size_t *q = realloc(p, sizeof(size_t) + n);
    if (q == NULL)
        return NULL;
    *q = n;
    c->live_bytes += n - old;
    if (c->live_bytes > c->peak_bytes)
        c->peak_bytes = c->live_bytes;
    return q + 1;
}

static void counting_init(counting *c)
{
    memset(c, 0, sizeof *c);
    c->mem.malloc = c_malloc;
    c->mem.free = c_free;
    c->mem.realloc = c_realloc;
    c->mem.ud = c;
}

/* Write frames of the given lengths (payload byte k of frame f = f + k) into buf. */
static size_t make_stream(uint8_t *buf, size_t cap, const size_t *lens, size_t n)
{
    size_t off = 0;
    for (size_t f = 0; f < n; f++) {
        size_t hl;
        assert_int_equal(sl_frame_write_header(lens[f], buf + off, cap - off, &hl), SL_OK);
        off += hl;
        for (size_t k = 0; k < lens[f]; k++)
            buf[off + k] = (uint8_t)(f + k);
        off += lens[f];
    }
    return off;
}

/* Feed `stream` in chunks of `chunk` bytes and check the frames that come out. */
static void feed_and_check(const uint8_t *stream, size_t len, size_t chunk, const size_t *lens,
                           size_t n, counting *c)
{
    sl_frame_reader r;
    sl_frame_reader_init(&r, 1 << 20, &c->mem);
    size_t got = 0, off = 0;
    while (off < len) {
        size_t take = len - off < chunk ? len - off : chunk;
        uint8_t *piece = exact_copy(stream + off, take);
        size_t pos = 0;
        for (;;) {
            size_t used;
            const uint8_t *frame = NULL;
            size_t flen = 0;
            int rc = sl_frame_reader_feed(&r, piece + pos, take - pos, &used, &frame, &flen);
            pos += used;
            if (rc == SL_ERR_AGAIN) {
                assert_int_equal(pos, take);
                break;
            }
            assert_int_equal(rc, SL_OK);
            assert_true(got < n);
            assert_int_equal(flen, lens[got]);
            for (size_t k = 0; k < flen; k++)
                assert_int_equal(frame[k], (uint8_t)(got + k));
            got++;
            if (pos == take)
                break;
        }
        free(piece);
        off += take;
    }
    assert_int_equal(got, n);
    assert_false(sl_frame_reader_pending(&r));
    sl_frame_reader_fini(&r);
}

static void test_frame_reader(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 63, 64, 200, 16383, 16384, 70000, 5, 0, 100000, 3};
    size_t n = sizeof lens / sizeof lens[0];
    size_t cap = 300000;
    uint8_t *stream = malloc(cap);
    size_t len = make_stream(stream, cap, lens, n);
    static const size_t chunks[] = {1, 2, 3, 7, 64, 1000, 65536, 300000};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        counting c;
        counting_init(&c);
        feed_and_check(stream, len, chunks[k], lens, n, &c);
        assert_int_equal(c.live_bytes, 0);
        assert_int_equal(c.allocs, c.frees);
        /* buffering only when a frame straddles chunks, never above the largest frame,
         * and growing by doubling: a handful of reallocations per frame, not one per chunk */
        assert_true(c.peak_bytes <= 100000);
        assert_true(c.calls <= 12 * 10);
        if (chunks[k] == 300000)
            assert_int_equal(c.allocs, 0); /* everything zero-copy */
    }
    free(stream);
}

static void test_frame_reader_zero_copy(void **state)
{
    (void)state;
    uint8_t buf[64];
    static const size_t lens[] = {10, 20};
    size_t len = make_stream(buf, sizeof buf, lens, 2);
    counting c;
    counting_init(&c);
    sl_frame_reader r;
    sl_frame_reader_init(&r, 100, &c.mem);
    size_t used;
    const uint8_t *f;
    size_t fl;
    assert_int_equal(sl_frame_reader_feed(&r, buf, len, &used, &f, &fl), SL_OK);
    assert_ptr_equal(f, buf + 1);
    assert_int_equal(fl, 10);
    assert_int_equal(used, 11);
    assert_int_equal(sl_frame_reader_feed(&r, buf + used, len - used, &used, &f, &fl), SL_OK);
    assert_ptr_equal(f, buf + 12);
    assert_int_equal(fl, 20);
    assert_int_equal(c.allocs, 0);
    /* an empty feed when idle */
    assert_int_equal(sl_frame_reader_feed(&r, NULL, 0, &used, &f, &fl), SL_ERR_AGAIN);
    assert_false(sl_frame_reader_pending(&r));
    /* argument errors */
    assert_int_equal(sl_frame_reader_feed(&r, NULL, 1, &used, &f, &fl), SL_ERR_INVAL);
    assert_int_equal(sl_frame_reader_feed(NULL, buf, 1, &used, &f, &fl), SL_ERR_INVAL);
    sl_frame_reader_fini(&r);
}

static void test_frame_reader_hostile(void **state)
{
    (void)state;
    counting c;
    counting_init(&c);
    sl_frame_reader r;
    /* a header announcing more than the maximum: refused, nothing allocated, sticky */
    sl_frame_reader_init(&r, 1000, &c.mem);
    uint8_t hdr[8];
    size_t hl, used;
    const uint8_t *f;
    size_t fl;
    assert_int_equal(sl_frame_write_header(1001, hdr, sizeof hdr, &hl), SL_OK);
    uint8_t more[8] = {0};
    memcpy(more, hdr, hl);
    /* byte by byte: AGAIN, then TOO_BIG on the last header byte */
    assert_int_equal(sl_frame_reader_feed(&r, more, 1, &used, &f, &fl), SL_ERR_AGAIN);
    assert_true(sl_frame_reader_pending(&r));
    assert_int_equal(sl_frame_reader_feed(&r, more + 1, 7, &used, &f, &fl), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(used, 1); /* only the header byte was consumed */
    assert_int_equal(sl_frame_reader_feed(&r, more, 8, &used, &f, &fl), SL_ERR_DECODE_TOO_BIG);
    assert_int_equal(used, 0);
    assert_int_equal(c.calls, 0);
    sl_frame_reader_fini(&r);

    /* a frame announced at 60 MiB but trickling in costs what arrived, not 60 MiB */
    counting_init(&c);
    sl_frame_reader_init(&r, SL_LIMITS_DEFAULT_SIZE, &c.mem);
    assert_int_equal(sl_frame_write_header(60u << 20, hdr, sizeof hdr, &hl), SL_OK);
    assert_int_equal(sl_frame_reader_feed(&r, hdr, hl, &used, &f, &fl), SL_ERR_AGAIN);
    uint8_t chunk[1000] = {0};
    for (int k = 0; k < 10; k++)
        assert_int_equal(sl_frame_reader_feed(&r, chunk, sizeof chunk, &used, &f, &fl),
                         SL_ERR_AGAIN);
    assert_true(c.peak_bytes <= 2 * 10000);
    sl_frame_reader_fini(&r);
    assert_int_equal(c.live_bytes, 0);

    /* allocation failures: NOMEM, sticky, nothing leaked */
    for (size_t fail = 1; fail <= 8; fail++) {
        counting_init(&c);
        c.fail_at = fail;
        sl_frame_reader_init(&r, 1 << 20, &c.mem);
        assert_int_equal(sl_frame_write_header(5000, hdr, sizeof hdr, &hl), SL_OK);
        int rc = sl_frame_reader_feed(&r, hdr, hl, &used, &f, &fl);
        assert_int_equal(rc, SL_ERR_AGAIN);
        uint8_t piece[100] = {0};
        for (int k = 0; k < 50 && rc == SL_ERR_AGAIN; k++)
            rc = sl_frame_reader_feed(&r, piece, sizeof piece, &used, &f, &fl);
        if (rc == SL_ERR_NOMEM)
            assert_int_equal(sl_frame_reader_feed(&r, piece, 1, &used, &f, &fl), SL_ERR_NOMEM);
        else
            assert_int_equal(rc, SL_OK); /* fail_at beyond what growing to 5000 needs */
        sl_frame_reader_fini(&r);
        assert_int_equal(c.live_bytes, 0);
        assert_int_equal(c.allocs, c.frees);
    }
}

static void test_frame_header_errors(void **state)
{
    (void)state;
    uint8_t b[8];
    size_t hl;
    uint64_t fl;
    assert_int_equal(sl_frame_write_header(SL_FRAME_VARINT_MAX + 1, b, 8, &hl), SL_ERR_INVAL);
    assert_int_equal(sl_frame_header_size(SL_FRAME_VARINT_MAX + 1), 0);
    assert_int_equal(sl_frame_write_header(64, b, 1, &hl), SL_ERR_AGAIN);
    assert_int_equal(sl_frame_write_header(64, NULL, 0, &hl), SL_ERR_AGAIN);
    assert_int_equal(sl_frame_write_header(64, b, 8, NULL), SL_ERR_INVAL);
    assert_int_equal(sl_frame_read_header(b, 0, 100, &fl, &hl), SL_ERR_AGAIN);
    assert_int_equal(sl_frame_read_header(NULL, 1, 100, &fl, &hl), SL_ERR_INVAL);
    /* every value round-trips at the boundaries of each size */
    static const uint64_t vals[] = {
        0, 1, 62, 63, 64, 16383, 16384, (1u << 30) - 1, 1u << 30, SL_FRAME_VARINT_MAX};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        assert_int_equal(sl_frame_write_header(vals[k], b, 8, &hl), SL_OK);
        size_t hl2;
        assert_int_equal(sl_frame_read_header(b, hl, UINT64_MAX, &fl, &hl2), SL_OK);
        assert_int_equal(fl, vals[k]);
        assert_int_equal(hl2, hl);
        if (vals[k] > 0) {
            assert_int_equal(sl_frame_read_header(b, hl, vals[k] - 1, &fl, &hl2),
                             SL_ERR_DECODE_TOO_BIG);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_envelope),
        cmocka_unit_test(test_vectors_msgpack),
        cmocka_unit_test(test_vectors_frame),
        cmocka_unit_test(test_vectors_cover_every_error),
        cmocka_unit_test(test_truncation_sweep),
        cmocka_unit_test(test_mutation_sweep),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_too_big_reads_nothing),
        cmocka_unit_test(test_consumed_window),
        cmocka_unit_test(test_ext_allow_list),
        cmocka_unit_test(test_element_budget),
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_overhead),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_id_forms),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_encoding_is_msgpack),
        cmocka_unit_test(test_frame_reader),
        cmocka_unit_test(test_frame_reader_zero_copy),
        cmocka_unit_test(test_frame_reader_hostile),
        cmocka_unit_test(test_frame_header_errors),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
