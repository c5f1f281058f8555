/*
 * frame_fuzz.c: libFuzzer target for the frame reader.
 *
 * The first two bytes pick the maximum frame size and a chunking pattern; the
 * rest is a stream. The stream is fed to an sl_frame_reader in chunks, and
 * the frames it hands out are compared with a reference parse of the whole
 * stream by sl_frame_read_header(): same frames, same bytes, same error.
 */
#include <stdlib.h>
#include <string.h>

#include "starling/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint64_t max_frame = (uint64_t)data[0] * 8;
    uint8_t pattern = data[1];
    data += 2;
    size -= 2;

    /* reference: walk the whole stream */
    size_t ref_off = 0;
    int ref_end = SL_ERR_AGAIN; /* how the stream ends: AGAIN (incomplete) or TOO_BIG */

    sl_frame_reader r;
    sl_frame_reader_init(&r, max_frame, NULL);
    size_t off = 0, k = 0;
    int rc = SL_ERR_AGAIN;
    while (off < size) {
        size_t chunk = 1 + ((pattern >> (k % 8)) & 1) * 37 + (k % 3);
        k++;
        if (chunk > size - off)
            chunk = size - off;
        size_t pos = 0;
        while (pos < chunk) {
            size_t used;
            const uint8_t *f;
            size_t fl;
            rc = sl_frame_reader_feed(&r, data + off + pos, chunk - pos, &used, &f, &fl);
            pos += used;
            if (rc == SL_ERR_AGAIN)
                break;
            if (rc != SL_OK)
                goto done;
            /* the reference must see the same frame here */
            uint64_t rl;
            size_t hl;
            if (sl_frame_read_header(data + ref_off, size - ref_off, max_frame, &rl, &hl) != SL_OK)
                abort();
            if (rl != fl || rl > size - ref_off - hl || memcmp(f, data + ref_off + hl, fl) != 0)
                abort();
            ref_off += hl + fl;
        }
        off += chunk;
    }
done:
    if (rc == SL_ERR_DECODE_TOO_BIG) {
        uint64_t rl;
        size_t hl;
        ref_end = sl_frame_read_header(data + ref_off, size - ref_off, max_frame, &rl, &hl);
        if (ref_end != SL_ERR_DECODE_TOO_BIG)
            abort();
    } else if (rc != SL_OK && rc != SL_ERR_AGAIN) {
        abort();
    }
    sl_frame_reader_fini(&r);
    return 0;
}
