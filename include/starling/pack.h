/*
 * starling/pack.h: packing and unpacking payloads with msgpack-c.
 *
 * A payload is msgpack bytes. To build one, use an sl_pack: a growable buffer
 * (allocated through an sl_mem hook) plus a msgpack_packer that writes into
 * it, so every msgpack_pack_*() function of msgpack-c works on &p.pk. Errors
 * are sticky: pack everything, then check sl_pack_error() once.
 *
 *     sl_pack p;
 *     sl_pack_init(&p, NULL);
 *     msgpack_pack_array(&p.pk, 2);
 *     msgpack_pack_uint32(&p.pk, 42);
 *     sl_pack_str(&p, "hello");
 *     if (sl_pack_error(&p) == SL_OK)
 *         rc = sl_send(self, to, MY_TYPE, SL_PRIO_NORMAL, sl_pack_data(&p), sl_pack_len(&p));
 *     sl_pack_fini(&p);
 *
 * To read one, sl_unpack() validates the bytes with sl_msgpack_check() and
 * only then hands them to msgpack-c's msgpack_unpack_next(); the getters
 * below read fields with type checks (SL_ERR_DECODE_TYPE on a mismatch):
 *
 *     sl_unpacked u;
 *     uint64_t n; const char *s; size_t slen;
 *     if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK &&
 *         sl_msgpack_at_uint64(&u.root, 0, &n) == SL_OK &&
 *         sl_msgpack_at_str(&u.root, 1, &s, &slen) == SL_OK) { ... }
 *     sl_unpacked_fini(&u);
 */
#ifndef STARLING_PACK_H
#define STARLING_PACK_H

#include <msgpack.h>

#include "common.h"
#include "schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -------------------------------------------------------------- pack */

/*
 * A growable msgpack output buffer. Caller-provided storage; the buffer it
 * owns is freed by sl_pack_fini(). Do not copy an initialised sl_pack (the
 * packer points back at it).
 */
typedef struct sl_pack {
    msgpack_packer pk; /* pass &p.pk to msgpack_pack_*() */
    uint8_t *data;     /* the bytes packed so far (owned) */
    size_t len;        /* their count */
    size_t cap;        /* capacity of data */
    const sl_mem *mem; /* allocator for data */
    int err;           /* sticky: SL_OK or SL_ERR_NOMEM once a write failed */
} sl_pack;

/*
 * Initialise an empty sl_pack; `mem` may be NULL for the C library, otherwise
 * it must outlive the sl_pack. Allocates nothing.
 */
SL_EXTERN void sl_pack_init(sl_pack *p, const sl_mem *mem);
/* Forget the bytes and the sticky error, keep the memory for the next message. */
SL_EXTERN void sl_pack_reset(sl_pack *p);
/* Free the buffer. The sl_pack may be initialised again afterwards. */
SL_EXTERN void sl_pack_fini(sl_pack *p);
/* The packed bytes (NULL while empty); valid until the next write, reset or fini. */
SL_EXTERN const uint8_t *sl_pack_data(const sl_pack *p);
/* The number of packed bytes. */
SL_EXTERN size_t sl_pack_len(const sl_pack *p);
/* SL_OK, or SL_ERR_NOMEM if any write since init/reset failed (the bytes are then incomplete). */
SL_EXTERN int sl_pack_error(const sl_pack *p);

/*
 * Make room for `n` more bytes so the following writes cannot fail.
 * Returns SL_OK or SL_ERR_NOMEM (also made sticky).
 */
SL_EXTERN int sl_pack_reserve(sl_pack *p, size_t n);

/*
 * Convenience writers for what takes two msgpack-c calls. Each returns
 * SL_OK or SL_ERR_NOMEM (also made sticky; a write after a failure is
 * skipped and returns the sticky error).
 *  - sl_pack_str: a NUL-terminated string as msgpack str (NULL packs nil);
 *  - sl_pack_strn: `n` bytes as msgpack str;
 *  - sl_pack_bin: `n` bytes as msgpack bin;
 *  - sl_pack_raw: `n` bytes that already are msgpack (e.g. a nested payload), appended as is.
 */
SL_EXTERN int sl_pack_str(sl_pack *p, const char *s);
SL_EXTERN int sl_pack_strn(sl_pack *p, const char *s, size_t n);
SL_EXTERN int sl_pack_bin(sl_pack *p, const void *b, size_t n);
SL_EXTERN int sl_pack_raw(sl_pack *p, const void *b, size_t n);

/* ------------------------------------------------------------ unpack */

/*
 * The deepest nesting msgpack-c's unpacker parses: its stack is a fixed
 * array of MSGPACK_EMBED_STACK_SIZE (32) open containers, fixed when
 * libmsgpackc was compiled (pack_test checks that 32 works and 33 fails).
 */
#define SL_UNPACK_MAX_DEPTH 32u

/*
 * One unpacked value. The objects live in msgpack-c's zone and str/bin/ext
 * objects point into the input bytes: keep the input alive and unchanged
 * until sl_unpacked_fini().
 */
typedef struct sl_unpacked {
    msgpack_object root; /* the value (nil until sl_unpack succeeds) */
    msgpack_unpacked mp; /* msgpack-c's result, owning the zone */
} sl_unpacked;

/*
 * Validate data[0..len) as exactly one msgpack value with sl_msgpack_check()
 * under `lim` (NULL = defaults; max_depth is clamped to SL_UNPACK_MAX_DEPTH,
 * the deepest that msgpack-c's unpacker accepts), then unpack it with msgpack_unpack_next().
 * Bytes that fail validation are never handed to msgpack-c, so msgpack-c's
 * allocations stay within about 48 bytes per element of a validated input
 * (24 per msgpack_object, doubled by its zone's power-of-two chunks).
 * *out is always initialised, so sl_unpacked_fini() may be called after a
 * failure too.
 * Returns SL_OK, SL_ERR_INVAL (NULL argument), any error of
 * sl_msgpack_check() with consumed == NULL (SL_ERR_DECODE_TRUNCATED,
 * _RESERVED, _EXT, _DEPTH, _LENGTH, _BUDGET, _TRAILING, _TOO_BIG),
 * SL_ERR_NOMEM (msgpack-c could not allocate), or SL_ERR_PROTO if msgpack-c
 * rejected bytes the validator accepted (a bug in one of them).
 */
SL_EXTERN int sl_unpack(const void *data, size_t len, const sl_limits *lim, sl_unpacked *out);
/* Free what sl_unpack() allocated. Idempotent. */
SL_EXTERN void sl_unpacked_fini(sl_unpacked *u);

/* ----------------------------------------------------------- getters */

/*
 * Typed reads of one msgpack_object. Each returns SL_OK, SL_ERR_INVAL (a NULL
 * argument), or SL_ERR_DECODE_TYPE if the object is not of the asked type or
 * its value does not fit; on error *out is not written.
 *  - uint64: a non-negative integer;
 *  - int64: an integer in int64 range;
 *  - double: a float or an integer (JavaScript encoders write 1.0 as 1);
 *  - str / bin: pointer into the input and length (str is not NUL-terminated);
 *  - array / map: the element or pair count.
 */
SL_EXTERN int sl_msgpack_get_uint64(const msgpack_object *o, uint64_t *out);
SL_EXTERN int sl_msgpack_get_int64(const msgpack_object *o, int64_t *out);
SL_EXTERN int sl_msgpack_get_double(const msgpack_object *o, double *out);
SL_EXTERN int sl_msgpack_get_bool(const msgpack_object *o, bool *out);
SL_EXTERN int sl_msgpack_get_str(const msgpack_object *o, const char **s, size_t *len);
SL_EXTERN int sl_msgpack_get_bin(const msgpack_object *o, const uint8_t **b, size_t *len);
SL_EXTERN int sl_msgpack_get_array(const msgpack_object *o, uint32_t *n);
SL_EXTERN int sl_msgpack_get_map(const msgpack_object *o, uint32_t *n);

/*
 * Copy a str into buf as a NUL-terminated C string. Returns SL_OK,
 * SL_ERR_INVAL, SL_ERR_DECODE_TYPE (not a str, or it contains a NUL byte),
 * SL_ERR_DECODE_LENGTH (it needs more than `size` bytes with the NUL).
 */
SL_EXTERN int sl_msgpack_copy_str(const msgpack_object *o, char *buf, size_t size);

/*
 * Element `i` of an array. Returns SL_OK, SL_ERR_INVAL, SL_ERR_DECODE_TYPE
 * (not an array), SL_ERR_NOTFOUND (i is out of range).
 */
SL_EXTERN int sl_msgpack_at(const msgpack_object *arr, uint32_t i, const msgpack_object **out);

/*
 * The value of the first pair of a map whose key is the str `key`. Returns
 * SL_OK, SL_ERR_INVAL, SL_ERR_DECODE_TYPE (not a map), SL_ERR_NOTFOUND.
 */
SL_EXTERN int sl_msgpack_map_get(const msgpack_object *map, const char *key,
                                 const msgpack_object **out);

/*
 * sl_msgpack_at() followed by the getter of that type: the returns of both.
 */
SL_EXTERN int sl_msgpack_at_uint64(const msgpack_object *arr, uint32_t i, uint64_t *out);
SL_EXTERN int sl_msgpack_at_int64(const msgpack_object *arr, uint32_t i, int64_t *out);
SL_EXTERN int sl_msgpack_at_double(const msgpack_object *arr, uint32_t i, double *out);
SL_EXTERN int sl_msgpack_at_bool(const msgpack_object *arr, uint32_t i, bool *out);
SL_EXTERN int sl_msgpack_at_str(const msgpack_object *arr, uint32_t i, const char **s, size_t *len);
SL_EXTERN int sl_msgpack_at_bin(const msgpack_object *arr, uint32_t i, const uint8_t **b,
                                size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* STARLING_PACK_H */
