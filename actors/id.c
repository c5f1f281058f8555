/*
 * id.c: the printable form of actor ids, "<16 hex digits of node>.<decimal
 * local id>", and its strict parser (no signs, no spaces, no overflow).
 */
#include <inttypes.h>
#include <stdio.h>

#include "starling/actor.h"

int sl_id_format(sl_id id, char *buf, size_t size)
{
    if (!buf)
        return SL_ERR_INVAL;
    int n = snprintf(buf, size, "%016" PRIx64 ".%" PRIu64, id.node, id.local);
    if (n < 0 || (size_t)n >= size)
        return SL_ERR_INVAL;
    return n;
}

int sl_id_parse(const char *s, sl_id *out)
{
    if (!s || !out)
        return SL_ERR_BAD_ID;
    uint64_t node = 0, local = 0;
    int i = 0;
    for (; i < 16; i++) {
        char ch = s[i];
        unsigned v;
        if (ch >= '0' && ch <= '9')
            v = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v = (unsigned)(ch - 'A' + 10);
        else
            return SL_ERR_BAD_ID;
        node = (node << 4) | v;
    }
    if (s[i++] != '.')
        return SL_ERR_BAD_ID;
    if (s[i] < '0' || s[i] > '9')
        return SL_ERR_BAD_ID;
    for (int digits = 0; s[i]; i++, digits++) {
        if (s[i] < '0' || s[i] > '9' || digits >= 20)
            return SL_ERR_BAD_ID;
        unsigned d = (unsigned)(s[i] - '0');
        if (local > (UINT64_MAX - d) / 10)
            return SL_ERR_BAD_ID;
        local = local * 10 + d;
    }
    out->node = node;
    out->local = local;
    return SL_OK;
}
