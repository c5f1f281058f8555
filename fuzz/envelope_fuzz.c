/*
 * envelope_fuzz.c: libFuzzer target for sl_envelope_decode().
 *
 * The first byte picks the implied nodes and the decoding mode (exact fit or
 * with a consumed count, default or tight limits); the rest is the envelope.
 * Beyond "no crash, no sanitizer report", it checks the codec's invariants on
 * everything that decodes: the payload points inside the input, the input is
 * valid msgpack, and re-encoding gives bytes that decode to the same envelope
 * and are no longer than the input (the canonical form is the shortest).
 */
#include <stdlib.h>
#include <string.h>

#include "starling/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const sl_envelope *a, const sl_envelope *b)
{
    return sl_id_eq(a->from, b->from) && sl_id_eq(a->to, b->to) && a->corr == b->corr &&
           a->type == b->type && a->kind == b->kind && a->prio == b->prio && a->flags == b->flags &&
           a->status == b->status && a->code == b->code && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    static const uint64_t nodes[4] = {0, 0x1111, 0x2222, UINT64_MAX};
    uint64_t ito = nodes[mode & 3], ifrom = nodes[(mode >> 2) & 3];
    sl_limits lim;
    sl_limits_default(&lim);
    if (mode & 0x20) {
        lim.max_size = 64;
        lim.max_bin_len = 16;
    }
    size_t used = 0;
    sl_envelope e;
    int rc = sl_envelope_decode(data, size, ito, ifrom, &lim, &e, (mode & 0x10) ? &used : NULL);
    if (rc != SL_OK) {
        if (rc > SL_ERR_DECODE_TRUNCATED || rc < SL_ERR_DECODE_RESERVED)
            abort(); /* only decode errors are possible for non-NULL arguments */
        return 0;
    }
    if (!(mode & 0x10))
        used = size;
    if (used > size || (e.len > 0 && (e.data < data || e.data + e.len > data + used)))
        abort();
    if (sl_msgpack_check(data, used, NULL, NULL) != SL_OK)
        abort();
    size_t cap = sl_envelope_max_size(e.len);
    uint8_t *out = malloc(cap);
    size_t olen;
    if (out == NULL || sl_envelope_encode(&e, ito, ifrom, out, cap, &olen) != SL_OK)
        abort();
    sl_envelope d;
    if (olen > used || sl_envelope_decode(out, olen, ito, ifrom, NULL, &d, NULL) != SL_OK ||
        !same(&d, &e))
        abort();
    free(out);
    return 0;
}
