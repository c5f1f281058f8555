/*
 * headers.c: header blocks with nghttp3's QPACK encoder and decoder (no
 * dynamic table, see headers.h), and the request checks of RFC 9114 4.3.1
 * and RFC 9220 that decide whether a request is malformed before anyone
 * looks at its path.
 *
 * Decoding goes through nghttp3_qpack_decoder_read_request with the whole
 * field section at once (the caller buffered the HEADERS payload under its
 * limit); every decoded name and value is a reference-counted nghttp3
 * buffer, released right after the callback saw it.
 */
#include "transport/webtransport/headers.h"

#include <stdio.h>
#include <string.h>

#include "transport/webtransport/h3.h"

uint64_t sl__qpack_decode(nghttp3_qpack_decoder *dec, const nghttp3_mem *mem, int64_t sid,
                          const uint8_t *p, size_t len, sl__qpack_field_fn fn, void *ud)
{
    nghttp3_qpack_stream_context *sctx = NULL;
    if (nghttp3_qpack_stream_context_new(&sctx, sid, mem) != 0)
        return SL__H3_INTERNAL_ERROR;
    uint64_t err = SL__QPACK_DECOMPRESSION_FAILED;
    /* Each call either takes input or emits a field, so len + fields bound
     * the loop; the guard also stops a call that does neither. */
    for (;;) {
        nghttp3_qpack_nv nv;
        uint8_t flags = 0;
        nghttp3_ssize n = nghttp3_qpack_decoder_read_request(dec, sctx, &nv, &flags, p, len, 1);
        if (n < 0) {
            if (n == NGHTTP3_ERR_NOMEM)
                err = SL__H3_INTERNAL_ERROR;
            goto out;
        }
        p += n;
        len -= (size_t)n;
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
            nghttp3_vec name = nghttp3_rcbuf_get_buf(nv.name);
            nghttp3_vec value = nghttp3_rcbuf_get_buf(nv.value);
            if (fn)
                fn(name.base, name.len, value.base, value.len, ud);
            nghttp3_rcbuf_decref(nv.name);
            nghttp3_rcbuf_decref(nv.value);
        }
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL)
            break;
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED)
            goto out; /* needs dynamic table entries: we allow no blocked streams */
        if (n == 0 && !(flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT))
            goto out; /* no progress: the section is cut short */
    }
    err = len == 0 ? 0 : SL__QPACK_DECOMPRESSION_FAILED; /* bytes after the section */
out:
    nghttp3_qpack_stream_context_del(sctx);
    return err;
}

int sl__qpack_headers_frame(nghttp3_qpack_encoder *enc, const nghttp3_mem *mem, int64_t sid,
                            const nghttp3_nv *nva, size_t n, uint8_t **out, size_t *outlen)
{
    nghttp3_buf pbuf, rbuf, ebuf;
    nghttp3_buf_init(&pbuf);
    nghttp3_buf_init(&rbuf);
    nghttp3_buf_init(&ebuf);
    int rc = -1;
    if (nghttp3_qpack_encoder_encode(enc, &pbuf, &rbuf, &ebuf, sid, nva, n) != 0)
        goto out;
    size_t plen = nghttp3_buf_len(&pbuf), rlen = nghttp3_buf_len(&rbuf);
    /* nghttp3 (1.8 and still in 2026) ignores a failed allocation of the
     * field section prefix and returns 0 with an empty pbuf; the prefix is
     * never shorter than 2 bytes, so an empty one is that failure. */
    if (plen < 2)
        goto out;
    uint8_t *f = mem->malloc(16 + plen + rlen, mem->user_data);
    if (!f)
        goto out;
    size_t off = sl__h3_frame_hdr(f, SL__H3_FRAME_HEADERS, plen + rlen);
    if (plen)
        memcpy(f + off, pbuf.pos, plen);
    if (rlen)
        memcpy(f + off + plen, rbuf.pos, rlen);
    *out = f;
    *outlen = off + plen + rlen;
    rc = 0;
out:
    /* With a dynamic table capacity of 0 the encoder stream stays empty. */
    nghttp3_buf_free(&pbuf, mem);
    nghttp3_buf_free(&rbuf, mem);
    nghttp3_buf_free(&ebuf, mem);
    return rc;
}

/* ------------------------------------------------------------- requests */

static bool name_ok(const uint8_t *n, size_t len, bool pseudo)
{
    if (len == (pseudo ? 1u : 0u))
        return false;
    for (size_t i = pseudo ? 1 : 0; i < len; i++) {
        uint8_t c = n[i];
        /* RFC 9110 token characters, lower case only (RFC 9114 4.2). */
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool value_ok(const uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (v[i] == 0 || v[i] == '\r' || v[i] == '\n')
            return false;
    return true;
}

static void keep(sl__h3_request *r, char *dst, size_t cap, unsigned bit, const uint8_t *v,
                 size_t vlen)
{
    if (r->seen & bit) {
        r->malformed = bit == SL__REQ_ORIGIN ? "more than one origin field"
                                             : "a pseudo-header field is repeated";
        return;
    }
    r->seen |= bit;
    if (vlen >= cap) {
        r->too_large = true;
        dst[0] = 0;
        return;
    }
    memcpy(dst, v, vlen);
    dst[vlen] = 0;
}

static void on_field(const uint8_t *n, size_t nlen, const uint8_t *v, size_t vlen, void *ud)
{
    sl__h3_request *r = ud;
    if (r->malformed)
        return;
    bool pseudo = nlen > 0 && n[0] == ':';
    if (!name_ok(n, nlen, pseudo)) {
        r->malformed = "invalid field name (HTTP/3 field names are lower case tokens)";
        return;
    }
    if (!value_ok(v, vlen)) {
        r->malformed = "field value contains CR, LF or NUL";
        return;
    }
    if (!pseudo) {
        r->regular = true;
        if (nlen == 6 && memcmp(n, "origin", 6) == 0)
            keep(r, r->origin, sizeof r->origin, SL__REQ_ORIGIN, v, vlen);
        return;
    }
    if (r->regular) {
        r->malformed = "pseudo-header field after a regular field";
        return;
    }
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(n, lit, nlen) == 0)
    if (IS(":method"))
        keep(r, r->method, sizeof r->method, SL__REQ_METHOD, v, vlen);
    else if (IS(":scheme"))
        keep(r, r->scheme, sizeof r->scheme, SL__REQ_SCHEME, v, vlen);
    else if (IS(":authority"))
        keep(r, r->authority, sizeof r->authority, SL__REQ_AUTHORITY, v, vlen);
    else if (IS(":path"))
        keep(r, r->path, sizeof r->path, SL__REQ_PATH, v, vlen);
    else if (IS(":protocol"))
        keep(r, r->protocol, sizeof r->protocol, SL__REQ_PROTOCOL, v, vlen);
    else
        r->malformed = "unknown pseudo-header field";
#undef IS
}

uint64_t sl__h3_request_decode(nghttp3_qpack_decoder *dec, const nghttp3_mem *mem, int64_t sid,
                               const uint8_t *p, size_t len, sl__h3_request *req)
{
    memset(req, 0, sizeof *req);
    uint64_t err = sl__qpack_decode(dec, mem, sid, p, len, on_field, req);
    if (err || req->malformed || req->too_large)
        return err;
    unsigned s = req->seen;
    bool connect = strcmp(req->method, "CONNECT") == 0;
    if (!(s & SL__REQ_METHOD) || !req->method[0])
        req->malformed = "no :method";
    else if ((s & SL__REQ_PROTOCOL) && !connect)
        req->malformed = ":protocol without CONNECT";
    else if (connect && (s & SL__REQ_PROTOCOL)) {
        if (!(s & SL__REQ_SCHEME) || !(s & SL__REQ_PATH) || !(s & SL__REQ_AUTHORITY) ||
            !req->path[0] || !req->authority[0])
            req->malformed = "extended CONNECT needs :scheme, :path and :authority";
    } else if (connect) {
        if ((s & SL__REQ_SCHEME) || (s & SL__REQ_PATH) || !(s & SL__REQ_AUTHORITY))
            req->malformed = "CONNECT needs :authority and no :scheme or :path";
    } else if (!(s & SL__REQ_SCHEME) || !(s & SL__REQ_PATH) || !req->path[0]) {
        req->malformed = "request without :scheme or :path";
    }
    return 0;
}
