/*
 * check_fuzz.c: libFuzzer target for sl_msgpack_check() and sl_unpack().
 *
 * The first byte picks the limits (default, tight, or every ext type
 * allowed); the rest is one msgpack value. It checks the property the whole
 * design rests on: whatever the validator accepts, msgpack-c parses without
 * error (sl_unpack never reports SL_ERR_PROTO), and whatever it rejects,
 * sl_unpack rejects with the same code. It also checks that the exact-fit and
 * consumed-count modes agree.
 */
#include <stdlib.h>
#include <string.h>

#include "starling/schema.h"
#include "starling/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    sl_limits lim;
    sl_limits_default(&lim);
    switch (mode % 4) {
    case 1:
        lim.max_depth = 3;
        lim.max_elements = 16;
        lim.max_str_len = 8;
        lim.max_bin_len = 8;
        lim.max_size = 128;
        break;
    case 2:
        memset(lim.ext_allow, 0xff, sizeof lim.ext_allow);
        lim.max_ext_len = 32;
        break;
    case 3:
        lim.max_depth = 200; /* above both caps */
        break;
    default:
        break;
    }
    int rc = sl_msgpack_check(data, size, &lim, NULL);
    size_t used = 0;
    int rc2 = sl_msgpack_check(data, size, &lim, &used);
    if (rc == SL_OK && (rc2 != SL_OK || used != size))
        abort();
    if (rc2 == SL_OK && used < size && rc != SL_ERR_DECODE_TRAILING && rc != SL_ERR_DECODE_TOO_BIG)
        abort();
    if (rc2 == SL_OK && used > size)
        abort();

    /* sl_unpack is the validator with max_depth clamped to msgpack-c's stack */
    sl_limits clamped = lim;
    if (clamped.max_depth > SL_UNPACK_MAX_DEPTH)
        clamped.max_depth = SL_UNPACK_MAX_DEPTH;
    int rcc = sl_msgpack_check(data, size, &clamped, NULL);
    sl_unpacked u;
    int ru = sl_unpack(data, size, &lim, &u);
    if (ru == SL_ERR_PROTO || ru == SL_ERR_NOMEM)
        abort(); /* the validator accepted what msgpack-c cannot parse */
    if (ru != rcc)
        abort();
    if (rc == SL_OK && ru != SL_OK && ru != SL_ERR_DECODE_DEPTH)
        abort();
    sl_unpacked_fini(&u);
    return 0;
}
