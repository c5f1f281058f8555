/*
 * pack.c: payload helpers over msgpack-c.
 *
 * Packing: an sl_pack is a growable buffer whose msgpack_packer write
 * callback appends to it, growing by doubling through the sl_mem hook. A
 * failed allocation makes the sl_pack's error sticky and every later write a
 * no-op, so a user packs a whole message and checks once.
 *
 * Unpacking: sl_unpack() is the only place msgpack-c's unpacker sees bytes
 * from outside. They go through sl_msgpack_check() first, with the depth
 * clamped to msgpack-c's own fixed stack (SL_UNPACK_MAX_DEPTH), so that
 * whatever msgpack-c is given it can parse, and its zone allocations are
 * bounded by the element count the validator already proved fits in the
 * input. The getters turn the usual msgpack_object type switch into one call
 * per field.
 */
#include <msgpack.h>

#include "starling/pack.h"
#include "wire.h"

/* -------------------------------------------------------------- pack */

static int grow(sl_pack *p, size_t more)
{
    if (p->err != SL_OK)
        return p->err;
    if (more <= p->cap - p->len)
        return SL_OK;
    if (more > SIZE_MAX - p->len) {
        p->err = SL_ERR_NOMEM;
        return p->err;
    }
    size_t need = p->len + more;
    size_t cap = p->cap < 64 ? 64 : p->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = sl__wire_realloc(p->mem, p->data, p->len, cap);
    if (d == NULL) {
        p->err = SL_ERR_NOMEM;
        return p->err;
    }
    p->data = d;
    p->cap = cap;
    return SL_OK;
}

/* The msgpack_packer write callback: append, or fail (msgpack-c then returns non-zero). */
static int pack_write(void *data, const char *buf, size_t len)
{
    sl_pack *p = data;
    if (len == 0)
        return p->err == SL_OK ? 0 : -1;
    if (grow(p, len) != SL_OK)
        return -1;
    memcpy(p->data + p->len, buf, len);
    p->len += len;
    return 0;
}

void sl_pack_init(sl_pack *p, const sl_mem *mem)
{
    memset(p, 0, sizeof *p);
    p->mem = mem != NULL ? mem : sl_mem_default();
    msgpack_packer_init(&p->pk, p, pack_write);
}

void sl_pack_reset(sl_pack *p)
{
    p->len = 0;
    p->err = SL_OK;
}

void sl_pack_fini(sl_pack *p)
{
    if (p == NULL)
        return;
    sl__wire_free(p->mem, p->data);
    p->data = NULL;
    p->len = 0;
    p->cap = 0;
}

const uint8_t *sl_pack_data(const sl_pack *p)
{
    return p->len > 0 ? p->data : NULL;
}

size_t sl_pack_len(const sl_pack *p)
{
    return p->len;
}

int sl_pack_error(const sl_pack *p)
{
    return p->err;
}

int sl_pack_reserve(sl_pack *p, size_t n)
{
    return grow(p, n);
}

int sl_pack_str(sl_pack *p, const char *s)
{
    if (s == NULL)
        return msgpack_pack_nil(&p->pk) == 0 ? SL_OK : p->err;
    return sl_pack_strn(p, s, strlen(s));
}

int sl_pack_strn(sl_pack *p, const char *s, size_t n)
{
    if (msgpack_pack_str(&p->pk, n) != 0 || (n > 0 && msgpack_pack_str_body(&p->pk, s, n) != 0))
        return p->err;
    return SL_OK;
}

int sl_pack_bin(sl_pack *p, const void *b, size_t n)
{
    if (msgpack_pack_bin(&p->pk, n) != 0 || (n > 0 && msgpack_pack_bin_body(&p->pk, b, n) != 0))
        return p->err;
    return SL_OK;
}

int sl_pack_raw(sl_pack *p, const void *b, size_t n)
{
    if (n > 0)
        (void)pack_write(p, b, n);
    return p->err;
}

/* ------------------------------------------------------------ unpack */

int sl_unpack(const void *data, size_t len, const sl_limits *lim, sl_unpacked *out)
{
    if (out == NULL)
        return SL_ERR_INVAL;
    memset(out, 0, sizeof *out);
    out->root.type = MSGPACK_OBJECT_NIL;
    msgpack_unpacked_init(&out->mp);
    if (data == NULL && len > 0)
        return SL_ERR_INVAL;

    sl_limits l;
    if (lim != NULL)
        l = *lim;
    else
        sl_limits_default(&l);
    if (l.max_depth > SL_UNPACK_MAX_DEPTH)
        l.max_depth = SL_UNPACK_MAX_DEPTH;
    int rc = sl_msgpack_check(data, len, &l, NULL);
    if (rc != SL_OK)
        return rc;

    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&out->mp, data, len, &off);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
        sl_unpacked_fini(out);
        return SL_ERR_NOMEM;
    }
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        sl_unpacked_fini(out);
        return SL_ERR_PROTO;
    }
    out->root = out->mp.data;
    return SL_OK;
}

void sl_unpacked_fini(sl_unpacked *u)
{
    if (u == NULL)
        return;
    msgpack_unpacked_destroy(&u->mp);
    msgpack_unpacked_init(&u->mp);
    u->root.type = MSGPACK_OBJECT_NIL;
}

/* ----------------------------------------------------------- getters */

int sl_msgpack_get_uint64(const msgpack_object *o, uint64_t *out)
{
    if (o == NULL || out == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SL_ERR_DECODE_TYPE;
    *out = o->via.u64;
    return SL_OK;
}

int sl_msgpack_get_int64(const msgpack_object *o, int64_t *out)
{
    if (o == NULL || out == NULL)
        return SL_ERR_INVAL;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return SL_OK;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return SL_OK;
    }
    return SL_ERR_DECODE_TYPE;
}

int sl_msgpack_get_double(const msgpack_object *o, double *out)
{
    if (o == NULL || out == NULL)
        return SL_ERR_INVAL;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return SL_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return SL_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return SL_OK;
    default:
        return SL_ERR_DECODE_TYPE;
    }
}

int sl_msgpack_get_bool(const msgpack_object *o, bool *out)
{
    if (o == NULL || out == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return SL_ERR_DECODE_TYPE;
    *out = o->via.boolean;
    return SL_OK;
}

int sl_msgpack_get_str(const msgpack_object *o, const char **s, size_t *len)
{
    if (o == NULL || s == NULL || len == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_STR)
        return SL_ERR_DECODE_TYPE;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return SL_OK;
}

int sl_msgpack_get_bin(const msgpack_object *o, const uint8_t **b, size_t *len)
{
    if (o == NULL || b == NULL || len == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_BIN)
        return SL_ERR_DECODE_TYPE;
    *b = (const uint8_t *)o->via.bin.ptr;
    *len = o->via.bin.size;
    return SL_OK;
}

int sl_msgpack_get_array(const msgpack_object *o, uint32_t *n)
{
    if (o == NULL || n == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return SL_ERR_DECODE_TYPE;
    *n = o->via.array.size;
    return SL_OK;
}

int sl_msgpack_get_map(const msgpack_object *o, uint32_t *n)
{
    if (o == NULL || n == NULL)
        return SL_ERR_INVAL;
    if (o->type != MSGPACK_OBJECT_MAP)
        return SL_ERR_DECODE_TYPE;
    *n = o->via.map.size;
    return SL_OK;
}

int sl_msgpack_copy_str(const msgpack_object *o, char *buf, size_t size)
{
    const char *s;
    size_t n;
    if (buf == NULL)
        return SL_ERR_INVAL;
    int rc = sl_msgpack_get_str(o, &s, &n);
    if (rc != SL_OK)
        return rc;
    if (n > 0 && memchr(s, 0, n) != NULL)
        return SL_ERR_DECODE_TYPE;
    if (n >= size)
        return SL_ERR_DECODE_LENGTH;
    if (n > 0)
        memcpy(buf, s, n);
    buf[n] = '\0';
    return SL_OK;
}

int sl_msgpack_at(const msgpack_object *arr, uint32_t i, const msgpack_object **out)
{
    if (arr == NULL || out == NULL)
        return SL_ERR_INVAL;
    if (arr->type != MSGPACK_OBJECT_ARRAY)
        return SL_ERR_DECODE_TYPE;
    if (i >= arr->via.array.size)
        return SL_ERR_NOTFOUND;
    *out = &arr->via.array.ptr[i];
    return SL_OK;
}

int sl_msgpack_map_get(const msgpack_object *map, const char *key, const msgpack_object **out)
{
    if (map == NULL || key == NULL || out == NULL)
        return SL_ERR_INVAL;
    if (map->type != MSGPACK_OBJECT_MAP)
        return SL_ERR_DECODE_TYPE;
    size_t klen = strlen(key);
    for (uint32_t k = 0; k < map->via.map.size; k++) {
        const msgpack_object *kk = &map->via.map.ptr[k].key;
        if (kk->type == MSGPACK_OBJECT_STR && kk->via.str.size == klen &&
            (klen == 0 || memcmp(kk->via.str.ptr, key, klen) == 0)) {
            *out = &map->via.map.ptr[k].val;
            return SL_OK;
        }
    }
    return SL_ERR_NOTFOUND;
}

/* Element i of arr, or an error; `out` of the getter is checked by the getter. */
#define SL__AT(arr, i, getter, ...)                                                                \
    do {                                                                                           \
        const msgpack_object *o_;                                                                  \
        int rc_ = sl_msgpack_at((arr), (i), &o_);                                                  \
        if (rc_ != SL_OK)                                                                          \
            return rc_;                                                                            \
        return getter(o_, __VA_ARGS__);                                                            \
    } while (0)

int sl_msgpack_at_uint64(const msgpack_object *arr, uint32_t i, uint64_t *out)
{
    SL__AT(arr, i, sl_msgpack_get_uint64, out);
}

int sl_msgpack_at_int64(const msgpack_object *arr, uint32_t i, int64_t *out)
{
    SL__AT(arr, i, sl_msgpack_get_int64, out);
}

int sl_msgpack_at_double(const msgpack_object *arr, uint32_t i, double *out)
{
    SL__AT(arr, i, sl_msgpack_get_double, out);
}

int sl_msgpack_at_bool(const msgpack_object *arr, uint32_t i, bool *out)
{
    SL__AT(arr, i, sl_msgpack_get_bool, out);
}

int sl_msgpack_at_str(const msgpack_object *arr, uint32_t i, const char **s, size_t *len)
{
    SL__AT(arr, i, sl_msgpack_get_str, s, len);
}

int sl_msgpack_at_bin(const msgpack_object *arr, uint32_t i, const uint8_t **b, size_t *len)
{
    SL__AT(arr, i, sl_msgpack_get_bin, b, len);
}
