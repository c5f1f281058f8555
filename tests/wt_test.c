/*
 * wt_test.c: the WebTransport server over real QUIC on 127.0.0.1.
 *
 * The server is a QUIC endpoint with sl_webtransport_settings whose
 * callbacks are the quic harness's recorders, unchanged: a WebTransport
 * session shows up as a recorded connection and its streams as recorded
 * streams, which is the point (the transport's user cannot tell a browser
 * session from a native connection). Hooks on the server side echo.
 *
 * The client is a small HTTP/3 + WebTransport client written here on top
 * of a plain QUIC transport with the ALPN "h3": it opens the control and
 * QPACK streams, sends requests encoded with nghttp3's QPACK, parses the
 * server's SETTINGS, responses, capsules, WebTransport streams and
 * datagrams, and can send any bytes at all, so each test can also play a
 * hostile peer and check the HTTP/3 error code the server closes a stream
 * or the connection with. Interop with clients we did not write is in
 * wt_gtlsclient_test.sh (ngtcp2's) and browser_wt_test.sh (Chromium).
 *
 * Every loop run is bounded by the harness watchdog; every test ends with
 * qh_finish(), which proves all memory (the server's, the client's and
 * their QPACK codecs') was freed and the loop closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nghttp3/nghttp3.h>

#include "quic_harness.h"
#include "transport/webtransport/h3.h"
#include "transport/webtransport/headers.h"

#define TOKEN "s3cret-token"
#define RUN_MS 5000

/* ================================================================ client */

enum { M_REQ, M_UNI_HEAD, M_CONTROL, M_SRV_BIDI_HEAD, M_RAW, M_IGNORE };

typedef struct wtc wtc;

typedef struct wtc_stream {
    wtc *w;
    sl_stream *s;
    int64_t id;
    int mode;
    sl__h3_uni_rd head;
    sl__tlv_rd fr, cap;
    uint8_t hbuf[4096];
    size_t hlen;
    int status;         /* response :status (0 = none yet) */
    bool connect;       /* an extended CONNECT: DATA carries capsules once 200 */
    uint8_t body[8192]; /* response body, or raw WebTransport data (first 8 KiB) */
    size_t blen;
    uint64_t raw; /* raw data bytes received */
    uint8_t capbuf[1100];
    size_t caplen;
    bool in_close;
    bool close_rx; /* a CLOSE_WEBTRANSPORT_SESSION capsule arrived */
    uint32_t close_code;
    char close_reason[1100];
    uint64_t sid;  /* WebTransport stream: its session */
    uint64_t type; /* uni stream: its type */
    bool fin, reset, stopped, closed;
    uint64_t reset_code;
} wtc_stream;

struct wtc {
    qh_harness *h;
    qh_side *side;
    nghttp3_mem nmem;
    sl_conn *c;
    bool ready, closed;
    sl_close_info why;
    char reason[256];
    nghttp3_qpack_encoder *enc;
    nghttp3_qpack_decoder *dec;
    sl_stream *ctrl, *qenc, *qdec;
    bool settings_rx;
    uint64_t settings_err;
    sl__h3_settings settings;
    wtc_stream st[64];
    int n;
    int dgrams;
    uint8_t dgram[1500];
    size_t dlen;
    uint64_t dsid;
    bool hold; /* WebTransport streams' data is not consumed (no credit back) */
};

static void *nm_malloc(size_t n, void *ud)
{
    return ((sl_mem *)ud)->malloc(n, ((sl_mem *)ud)->ud);
}
static void nm_free(void *p, void *ud)
{
    if (p)
        ((sl_mem *)ud)->free(p, ((sl_mem *)ud)->ud);
}
static void *nm_calloc(size_t n, size_t s, void *ud)
{
    return ((sl_mem *)ud)->calloc(n, s, ((sl_mem *)ud)->ud);
}
static void *nm_realloc(void *p, size_t n, void *ud)
{
    return ((sl_mem *)ud)->realloc(p, n, ((sl_mem *)ud)->ud);
}

static wtc_stream *rec_new(wtc *w, sl_stream *s, int mode)
{
    assert_true(w->n < 64);
    wtc_stream *r = &w->st[w->n++];
    memset(r, 0, sizeof *r);
    r->w = w;
    r->s = s;
    r->id = s ? sl_stream_id(s) : -1;
    r->mode = mode;
    if (s)
        sl_stream_set_data(s, r);
    return r;
}

static void resp_field(const uint8_t *n, size_t nl, const uint8_t *v, size_t vl, void *ud)
{
    wtc_stream *r = ud;
    if (nl == 7 && memcmp(n, ":status", 7) == 0)
        r->status = atoi((const char *)v);
}

static void raw_data(wtc_stream *r, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++, r->raw++)
        if (r->blen < sizeof r->body)
            r->body[r->blen++] = p[i];
}

static void capsules(wtc_stream *r, const uint8_t *p, size_t len)
{
    for (;;) {
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(&r->cap, p, len, &ev);
        p += n;
        len -= n;
        if (ev.kind == SL__TLV_NONE)
            return;
        if (ev.kind == SL__TLV_HEADER) {
            r->in_close = ev.type == SL__CAPSULE_CLOSE_WT_SESSION;
            r->caplen = 0;
        } else if (ev.kind == SL__TLV_PAYLOAD && r->in_close) {
            if (r->caplen + ev.n <= sizeof r->capbuf) {
                memcpy(r->capbuf + r->caplen, ev.data, ev.n);
                r->caplen += ev.n;
            }
        } else if (ev.kind == SL__TLV_END && r->in_close) {
            const uint8_t *rs;
            size_t rl;
            if (sl__wt_close_parse(r->capbuf, r->caplen, &r->close_code, &rs, &rl) == 0) {
                memcpy(r->close_reason, rs, rl);
                r->close_reason[rl] = 0;
                r->close_rx = true;
            }
        }
    }
}

static void frames(wtc_stream *r, const uint8_t *p, size_t len)
{
    wtc *w = r->w;
    for (;;) {
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(&r->fr, p, len, &ev);
        p += n;
        len -= n;
        if (ev.kind == SL__TLV_NONE)
            return;
        if (ev.kind == SL__TLV_HEADER) {
            r->hlen = 0;
            if (r->mode == M_SRV_BIDI_HEAD) {
                assert_true(ev.type == SL__H3_FRAME_WT_STREAM);
                r->sid = ev.len;
                r->mode = M_RAW;
                raw_data(r, p, len);
                return;
            }
        } else if (ev.kind == SL__TLV_PAYLOAD) {
            if (ev.type == SL__H3_FRAME_HEADERS ||
                (r->mode == M_CONTROL && ev.type == SL__H3_FRAME_SETTINGS)) {
                if (r->hlen + ev.n <= sizeof r->hbuf) {
                    memcpy(r->hbuf + r->hlen, ev.data, ev.n);
                    r->hlen += ev.n;
                }
            } else if (ev.type == SL__H3_FRAME_DATA && r->mode == M_REQ) {
                if (r->status == 200 && r->connect)
                    capsules(r, ev.data, ev.n);
                else
                    for (size_t i = 0; i < ev.n && r->blen < sizeof r->body; i++)
                        r->body[r->blen++] = ev.data[i];
            }
        } else if (ev.kind == SL__TLV_END) {
            if (ev.type == SL__H3_FRAME_HEADERS && r->mode == M_REQ)
                assert_true(sl__qpack_decode(w->dec, &w->nmem, r->id, r->hbuf, r->hlen, resp_field,
                                             r) == 0);
            if (ev.type == SL__H3_FRAME_SETTINGS && r->mode == M_CONTROL) {
                w->settings_err = sl__h3_settings_parse(r->hbuf, r->hlen, &w->settings, NULL);
                w->settings_rx = true;
            }
        }
    }
}

static void cl_ready(sl_conn *c, void *ud)
{
    wtc *w = ud;
    w->ready = true;
    w->c = c;
}

static void cl_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    wtc *w = ud;
    w->closed = true;
    w->why = *why;
    snprintf(w->reason, sizeof w->reason, "%s", why->reason ? why->reason : "");
    w->why.reason = w->reason;
    w->c = NULL;
}

static void cl_stream_open(sl_stream *s, void *ud)
{
    bool uni = (sl_stream_id(s) & 2) != 0;
    rec_new(ud, s, uni ? M_UNI_HEAD : M_SRV_BIDI_HEAD);
}

static void cl_stream_data(sl_stream *s, const uint8_t *p, size_t len, bool fin, void *ud)
{
    wtc_stream *r = sl_stream_data(s);
    if (!(r && r->mode == M_RAW && r->w->hold))
        sl_stream_consume(s, len);
    if (!r)
        return;
    const uint8_t *q = p;
    size_t ql = len;
    if (r->mode == M_UNI_HEAD) {
        bool done;
        size_t n = sl__h3_uni_head(&r->head, q, ql, &done);
        q += n;
        ql -= n;
        if (done) {
            r->type = r->head.type;
            r->sid = r->head.session;
            r->mode = r->type == SL__H3_UNI_CONTROL ? M_CONTROL
                      : r->type == SL__H3_UNI_WT    ? M_RAW
                                                    : M_IGNORE;
        }
    }
    if (r->mode == M_RAW)
        raw_data(r, q, ql);
    else if (r->mode == M_REQ || r->mode == M_CONTROL || r->mode == M_SRV_BIDI_HEAD)
        frames(r, q, ql);
    if (fin)
        r->fin = true;
}

static void cl_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    wtc_stream *r = sl_stream_data(s);
    if (r) {
        r->reset = true;
        r->reset_code = code;
    }
}

static void cl_stream_stop(sl_stream *s, uint64_t code, void *ud)
{
    wtc_stream *r = sl_stream_data(s);
    if (r)
        r->stopped = true;
}

static void cl_stream_closed(sl_stream *s, void *ud)
{
    wtc_stream *r = sl_stream_data(s);
    if (r) {
        r->closed = true;
        r->s = NULL;
    }
}

static void cl_dgram(sl_conn *c, const uint8_t *d, size_t len, void *ud)
{
    wtc *w = ud;
    uint64_t sid;
    size_t n = sl__h3_dgram_parse(d, len, &sid);
    assert_true(n > 0);
    w->dgrams++;
    w->dsid = sid;
    w->dlen = len - n;
    memcpy(w->dgram, d + n, w->dlen);
}

static bool until_client_settled(qh_harness *h, void *arg)
{
    wtc *w = arg;
    return w->ready || w->closed;
}

static bool until_client_settings(qh_harness *h, void *arg)
{
    wtc *w = arg;
    return w->settings_rx || w->closed;
}

static bool until_client_closed(qh_harness *h, void *arg)
{
    return ((wtc *)arg)->closed;
}

static bool until_status(qh_harness *h, void *arg)
{
    wtc_stream *r = arg;
    return r->status != 0 || r->reset || r->w->closed;
}

static bool until_fin(qh_harness *h, void *arg)
{
    wtc_stream *r = arg;
    return r->fin || r->reset || r->w->closed;
}

static bool until_reset(qh_harness *h, void *arg)
{
    wtc_stream *r = arg;
    return r->reset || r->w->closed;
}

static bool until_close_capsule(qh_harness *h, void *arg)
{
    wtc_stream *r = arg;
    return (r->close_rx && r->fin) || r->reset || r->w->closed;
}

/* Write bytes on a client stream (asserting). */
static void put(sl_stream *s, const void *p, size_t n)
{
    SLT_OK(sl_stream_write(s, p, n, NULL));
}

static sl_stream *open_uni(wtc *w, const void *head, size_t n)
{
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, false, SL_PRIO_CRITICAL, NULL, &s));
    if (n)
        put(s, head, n);
    return s;
}

/* Our control stream with a valid SETTINGS (and a GREASE setting), and
 * the two QPACK streams. */
static void std_control(wtc *w)
{
    const uint64_t kv[][2] = {{SL__H3_SET_QPACK_MAX_TABLE_CAPACITY, 0},
                              {SL__H3_SET_QPACK_BLOCKED_STREAMS, 0},
                              {SL__H3_SET_H3_DATAGRAM, 1},
                              {SL__H3_SET_ENABLE_WEBTRANSPORT, 1},
                              {0x21 + 0x1f * 3, 12345}};
    uint8_t b[128];
    b[0] = SL__H3_UNI_CONTROL;
    size_t n = 1 + sl__h3_settings_frame(b + 1, sizeof b - 1, kv, 5);
    w->ctrl = open_uni(w, b, n);
    uint8_t e = SL__H3_UNI_QPACK_ENCODER, d = SL__H3_UNI_QPACK_DECODER;
    w->qenc = open_uni(w, &e, 1);
    w->qdec = open_uni(w, &d, 1);
}

/* A client; window: its receive windows (stream and connection), 0 = the
 * defaults. */
static wtc *wtc_new_window(qh_harness *h, qh_side *srv, bool control, uint32_t window)
{
    wtc *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->h = h;
    w->nmem = (nghttp3_mem){&h->mem.hooks, nm_malloc, nm_free, nm_calloc, nm_realloc};
    assert_int_equal(nghttp3_qpack_encoder_new(&w->enc, 0, &w->nmem), 0);
    assert_int_equal(nghttp3_qpack_decoder_new(&w->dec, 0, 0, &w->nmem), 0);
    w->side = qh_side_add(h, "wtc");
    sl_transport_settings s;
    qh_settings(w->side, &s);
    s.ud = w;
    s.alpn = "h3";
    if (window) {
        s.stream_window = window;
        s.conn_window = window;
    }
    s.cb = (sl_transport_callbacks){.on_conn_ready = cl_ready,
                                    .on_conn_closed = cl_closed,
                                    .on_stream_open = cl_stream_open,
                                    .on_stream_data = cl_stream_data,
                                    .on_stream_reset = cl_stream_reset,
                                    .on_stream_stop_sending = cl_stream_stop,
                                    .on_stream_closed = cl_stream_closed,
                                    .on_datagram = cl_dgram};
    s.tls.verify = SL_VERIFY_PIN_CERT;
    SLT_OK(sl_transport_cert_sha256(srv->t, s.tls.pin));
    SLT_OK(qh_side_start(w->side, &s));
    SLT_OK(sl_transport_connect(w->side->t, "127.0.0.1", srv->port, NULL, NULL));
    assert_true(qh_run(h, until_client_settled, w, RUN_MS));
    assert_true(w->ready);
    if (control)
        std_control(w);
    return w;
}

static wtc *wtc_new(qh_harness *h, qh_side *srv, bool control)
{
    return wtc_new_window(h, srv, control, 0);
}

/* Free the client's codecs (before qh_finish counts allocations). */
static void wtc_fini(wtc *w)
{
    nghttp3_qpack_encoder_del(w->enc);
    nghttp3_qpack_decoder_del(w->dec);
    w->enc = NULL;
    w->dec = NULL;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(n), (const uint8_t *)(v), strlen(n), strlen(v), 0                        \
    }

/* Send a request's HEADERS on a new bidi stream (no FIN). */
static wtc_stream *wtc_request(wtc *w, const nghttp3_nv *nva, size_t n)
{
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    wtc_stream *r = rec_new(w, s, M_REQ);
    uint8_t *f;
    size_t flen;
    assert_int_equal(sl__qpack_headers_frame(w->enc, &w->nmem, r->id, nva, n, &f, &flen), 0);
    put(s, f, flen);
    w->nmem.free(f, w->nmem.user_data);
    return r;
}

/* An extended CONNECT for path (with query) and origin (NULL = none). */
static wtc_stream *wtc_connect(wtc *w, const char *path, const char *origin)
{
    nghttp3_nv nva[8] = {NV(":method", "CONNECT"), NV(":protocol", "webtransport"),
                         NV(":scheme", "https"),   NV(":authority", "127.0.0.1"),
                         NV(":path", path),        NV("sec-webtransport-http3-draft02", "1")};
    size_t n = 6;
    if (origin)
        nva[n++] = (nghttp3_nv)NV("origin", origin);
    wtc_stream *r = wtc_request(w, nva, n);
    r->connect = true;
    assert_true(qh_run(w->h, until_status, r, RUN_MS));
    return r;
}

static wtc_stream *wtc_get(wtc *w, const char *method, const char *path)
{
    const nghttp3_nv nva[] = {NV(":method", method), NV(":scheme", "https"),
                              NV(":authority", "127.0.0.1"), NV(":path", path)};
    wtc_stream *r = wtc_request(w, nva, 4);
    SLT_OK(sl_stream_finish(r->s));
    assert_true(qh_run(w->h, until_fin, r, RUN_MS));
    return r;
}

/* A WebTransport stream of session sid with its preamble written. */
static wtc_stream *wtc_wt_stream(wtc *w, bool bidi, uint64_t sid)
{
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, bidi, SL_PRIO_NORMAL, NULL, &s));
    wtc_stream *r = rec_new(w, s, bidi ? M_RAW : M_IGNORE);
    uint8_t pre[16];
    size_t n = sl__varint_put(pre, bidi ? SL__H3_FRAME_WT_STREAM : SL__H3_UNI_WT);
    n += sl__varint_put(pre + n, sid);
    put(s, pre, n);
    r->sid = sid;
    return r;
}

static void wtc_dgram(wtc *w, uint64_t sid, const void *p, size_t len)
{
    uint8_t b[1500];
    size_t n = sl__h3_dgram_prefix(b, sid);
    memcpy(b + n, p, len);
    SLT_OK(sl_datagram_send(w->c, b, n + len));
}

/* ================================================================ server */

typedef struct srv_state {
    int refused;
    int last_status;
    char last_reason[128];
    char last_origin[128];
    bool echo;           /* echo bidi, uni (on a new uni) and datagrams */
    bool close_on_ready; /* sl_conn_close a session inside on_conn_ready */
    uint8_t uni[8192];   /* bytes of the current peer uni stream */
    size_t unilen;
    sl_wt_info info; /* of the last session made ready */
    char token[64], origin[128], path[64];
    int info_rc;
    uint64_t node_rc;
    int hook_errors; /* calls in hooks that did not return SL_OK */
} srv_state;

static srv_state SRV;

/* Hooks run inside transport callbacks: they never assert (a failed
 * cmocka assertion would longjmp out of the transport); they count. */
#define HOOK_OK(x)                                                                                 \
    do {                                                                                           \
        if ((x) != SL_OK)                                                                          \
            SRV.hook_errors++;                                                                     \
    } while (0)

static bool check_token_cb(const char *token, const char *origin, void *ud)
{
    (void)origin;
    (void)ud;
    return strcmp(token, TOKEN) == 0;
}

static void refused_cb(const char *path, const char *origin, int status, const char *reason,
                       void *ud)
{
    SRV.refused++;
    SRV.last_status = status;
    snprintf(SRV.last_reason, sizeof SRV.last_reason, "%s", reason);
    snprintf(SRV.last_origin, sizeof SRV.last_origin, "%s", origin);
}

static void srv_on_ready(qh_conn *r)
{
    SRV.info_rc = sl_conn_wt_info(r->c, &SRV.info);
    if (SRV.info_rc == SL_OK) {
        snprintf(SRV.token, sizeof SRV.token, "%s", SRV.info.token);
        snprintf(SRV.origin, sizeof SRV.origin, "%s", SRV.info.origin);
        snprintf(SRV.path, sizeof SRV.path, "%s", SRV.info.path);
    }
    uint64_t id;
    SRV.node_rc = (uint64_t)sl_conn_peer_node_id(r->c, &id);
    if (SRV.close_on_ready)
        HOOK_OK(sl_conn_close(r->c, 77, "closed in on_conn_ready"));
}

static void srv_on_data(qh_stream *r, const uint8_t *data, size_t len, bool fin)
{
    if (!SRV.echo || !r->s)
        return;
    bool uni = (r->id & 2) != 0;
    if (!uni) {
        if (len == 5 && memcmp(data, "CLOSE", 5) == 0) {
            HOOK_OK(sl_conn_close(r->conn->c, 4242, "bye from starling"));
            return;
        }
        if (len)
            HOOK_OK(sl_stream_write(r->s, data, len, NULL));
        if (fin)
            HOOK_OK(sl_stream_finish(r->s));
        return;
    }
    if (SRV.unilen + len > sizeof SRV.uni) {
        SRV.hook_errors++;
        return;
    }
    memcpy(SRV.uni + SRV.unilen, data, len);
    SRV.unilen += len;
    if (fin) {
        sl_stream *s;
        size_t n = SRV.unilen;
        SRV.unilen = 0;
        int rc = sl_stream_open(r->conn->c, false, SL_PRIO_NORMAL, NULL, &s);
        HOOK_OK(rc);
        if (rc != SL_OK)
            return;
        HOOK_OK(sl_stream_write(s, SRV.uni, n, NULL));
        HOOK_OK(sl_stream_finish(s));
    }
}

static void srv_on_dgram(qh_conn *r, const uint8_t *d, size_t len)
{
    if (SRV.echo && r->c)
        HOOK_OK(sl_datagram_send(r->c, d, len));
}

static sl_webtransport_settings WTS;
static const char *ORIGINS[] = {"http://127.0.0.1:8080", "null"};

/* A harness with a WebTransport server side (echo on) listening. */
static qh_side *server(qh_harness *h, uint32_t max_sessions, bool origins)
{
    memset(&SRV, 0, sizeof SRV);
    SRV.echo = true;
    qh_side *srv = qh_side_add(h, "srv");
    sl_transport_settings s;
    qh_settings(srv, &s);
    WTS = (sl_webtransport_settings){.path = "/starling",
                                     .health_path = "/health",
                                     .origins = origins ? ORIGINS : NULL,
                                     .n_origins = origins ? 2 : 0,
                                     .check_token = check_token_cb,
                                     .on_refused = refused_cb,
                                     .max_sessions = max_sessions};
    s.webtransport = &WTS;
    srv->on_ready = srv_on_ready;
    srv->on_data = srv_on_data;
    srv->on_dgram = srv_on_dgram;
    SLT_OK(qh_side_start(srv, &s));
    qh_listen(srv);
    return srv;
}

static qh_conn *srv_session(qh_side *srv, int i)
{
    assert_true(i < srv->nconns);
    return &srv->conns[i];
}

static bool until_srv_ready(qh_harness *h, void *arg)
{
    return ((qh_side *)arg)->ready > 0;
}

static bool until_srv_closed(qh_harness *h, void *arg)
{
    return ((qh_side *)arg)->closed > 0;
}

static bool until_dgram(qh_harness *h, void *arg)
{
    wtc *w = arg;
    return w->dgrams > 0 || w->closed;
}

/* An accepted session: client + server records. */
static wtc_stream *open_session(wtc *w, qh_side *srv)
{
    wtc_stream *cs = wtc_connect(w, "/starling?token=" TOKEN, NULL);
    assert_int_equal(cs->status, 200);
    assert_true(qh_run(w->h, until_srv_ready, srv, RUN_MS));
    return cs;
}

/* The stream the client opened with id `id` (raw data) or that the server
 * opened as uni (any). */
static wtc_stream *client_uni_from_server(wtc *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->st[i].type == SL__H3_UNI_WT && w->st[i].mode == M_RAW)
            return &w->st[i];
    return NULL;
}

typedef struct uni_wait {
    wtc *w;
    size_t want;
} uni_wait;

static bool until_uni_echo(qh_harness *h, void *arg)
{
    uni_wait *u = arg;
    wtc_stream *r = client_uni_from_server(u->w);
    return (r && r->fin && r->raw >= u->want) || u->w->closed;
}

/* ================================================================= tests */

static void test_settings_and_session(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    /* The server's SETTINGS, as Chromium needs them. */
    assert_true(qh_run(h, until_client_settings, w, RUN_MS));
    assert_true(w->settings_err == 0);
    assert_true(w->settings.enable_connect_protocol);
    assert_true(w->settings.h3_datagram);
    assert_true(w->settings.enable_webtransport);
    assert_true(w->settings.qpack_max_table_capacity == 0);
    assert_true(w->settings.qpack_blocked_streams == 0);
    wtc_stream *cs = open_session(w, srv);
    assert_int_equal(cs->id, 0);
    /* The session is an sl_conn recorded like any other. */
    qh_conn *sc = srv_session(srv, 0);
    assert_int_equal(sc->ready, 1);
    assert_string_equal(sc->alpn, "h3");
    assert_false(sc->has_peer_node);
    assert_int_equal((int)SRV.node_rc, SL_ERR_NOTFOUND);
    assert_false(sl_conn_is_client(sc->c));
    assert_int_equal(SRV.info_rc, SL_OK);
    assert_string_equal(SRV.path, "/starling");
    assert_string_equal(SRV.token, TOKEN);
    assert_string_equal(SRV.origin, "");
    assert_true(SRV.info.session_id == 0);
    assert_true(sl_conn_transport(sc->c) == srv->t);
    sl_wt_info info;
    assert_int_equal(sl_conn_wt_info(w->c, &info), SL_ERR_INVAL); /* a native connection */
    sl_transport_stats ts;
    SLT_OK(sl_transport_stats_get(srv->t, &ts));
    assert_true(ts.wt_sessions == 1 && ts.wt_refused == 0);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_bidi_uni_datagram_echo(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    open_session(w, srv);
    qh_conn *sc = srv_session(srv, 0);

    /* Bidi: 100 KiB in pieces, echoed, FIN echoed. */
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    uint8_t *data = qh_pattern(100000, 7);
    for (size_t off = 0; off < 100000; off += 10000)
        put(b->s, data + off, 10000);
    SLT_OK(sl_stream_finish(b->s));
    assert_true(qh_run(h, until_fin, b, RUN_MS));
    assert_true(b->raw == 100000);
    assert_memory_equal(b->body, data, sizeof b->body);
    /* The server saw one WebTransport stream with exactly the payload. */
    qh_stream *sr = &srv->streams[0];
    assert_true(sr->conn == sc);
    assert_true(sr->bytes == 100000 && sr->fin);
    sl_stream_stats sst;
    /* Uni: echoed on a server-opened uni stream (0x54 + session id). */
    wtc_stream *u = wtc_wt_stream(w, false, 0);
    put(u->s, "hello uni", 9);
    SLT_OK(sl_stream_finish(u->s));
    uni_wait uw = {w, 9};
    assert_true(qh_run(h, until_uni_echo, &uw, RUN_MS));
    wtc_stream *ue = client_uni_from_server(w);
    assert_true(ue->sid == 0);
    assert_memory_equal(ue->body, "hello uni", 9);
    /* Datagram: echoed with the session's quarter stream id. */
    size_t max = sl_datagram_max(sc->c);
    assert_true(max > 1000 && max == sl_datagram_max(w->c) - 1);
    wtc_dgram(w, 0, "hello dgram", 11);
    assert_true(qh_run(h, until_dgram, w, RUN_MS));
    assert_int_equal(w->dlen, 11);
    assert_memory_equal(w->dgram, "hello dgram", 11);
    assert_true(w->dsid == 0);
    assert_int_equal(sl_datagram_send(sc->c, data, max + 1), SL_ERR_MSG_TOO_BIG);
    /* A server-opened bidi stream: preamble 0x41 + id, then data. */
    sl_stream *ss;
    SLT_OK(sl_stream_open(sc->c, true, SL_PRIO_HIGH, NULL, &ss));
    assert_int_equal(sl_stream_prio(ss), SL_PRIO_HIGH);
    assert_true(sl_stream_conn(ss) == sc->c);
    SLT_OK(sl_stream_write(ss, "from server", 11, NULL));
    SLT_OK(sl_stream_finish(ss));
    SLT_OK(sl_stream_stats_get(ss, &sst));
    assert_true(sst.bytes_written == 11); /* the preamble is not counted */
    wtc_stream *sb = NULL;
    for (int i = 0; i < 200 && !sb; i++) {
        qh_run(h, NULL, NULL, 10);
        for (int k = 0; k < w->n; k++)
            if (w->st[k].mode == M_RAW && (w->st[k].id & 3) == 1 && w->st[k].fin)
                sb = &w->st[k];
    }
    assert_non_null(sb);
    assert_true(sb->sid == 0 && sb->raw == 11);
    assert_memory_equal(sb->body, "from server", 11);
    /* Stats of the session. */
    sl_conn_stats cst;
    SLT_OK(sl_conn_stats_get(sc->c, &cst));
    assert_true(cst.datagrams_recv == 1 && cst.datagrams_sent == 1);
    assert_true(cst.bytes_recv > 100000);
    free(data);
    assert_int_equal(SRV.hook_errors, 0);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_server_closes_session(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    wtc_stream *cs = open_session(w, srv);
    qh_conn *sc = srv_session(srv, 0);
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    put(b->s, "x", 1);
    assert_true(qh_run(h, until_srv_ready, srv, RUN_MS));
    for (int i = 0; i < 100 && srv->nstreams == 0; i++)
        qh_run(h, NULL, NULL, 10);
    assert_int_equal(srv->nstreams, 1);
    /* The application closes: capsule with code and reason, then FIN. */
    SLT_OK(sl_conn_close(sc->c, 4242, "bye from starling"));
    assert_int_equal(sl_conn_close(sc->c, 1, "again"), SL_ERR_CLOSED);
    assert_int_equal(sl_conn_close(sc->c, 1ull << 32, "x"), SL_ERR_CLOSED);
    assert_true(qh_run(h, until_close_capsule, cs, RUN_MS));
    assert_true(cs->close_rx && cs->fin && !cs->reset);
    assert_true(cs->close_code == 4242);
    assert_string_equal(cs->close_reason, "bye from starling");
    /* The application hears on_conn_closed (later, not inside the call),
     * after the session's streams. */
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    assert_int_equal(sc->closed, 1);
    assert_true(sc->why.err == SL_OK && sc->why.app && !sc->why.by_peer);
    assert_true(sc->why.code == 4242);
    assert_string_equal(sc->reason, "bye from starling");
    assert_true(srv->streams[0].closed);
    /* The WebTransport stream was reset with WT_SESSION_GONE. */
    assert_true(qh_run(h, until_reset, b, RUN_MS));
    assert_true(b->reset_code == SL__WT_SESSION_GONE);
    /* With no session left, the server closes the connection (H3_NO_ERROR)
     * after its linger time. */
    assert_true(qh_run(h, until_client_closed, w, 6000));
    assert_true(w->why.app && w->why.code == SL__H3_NO_ERROR);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

/* A session closed while its capsule cannot leave (the client gives back
 * no flow-control credit, so the connection's window is spent by a stream
 * of the session) is finished all the same after CAPSULE_WAIT_MS: the
 * application hears on_conn_closed and the client sees the session's
 * stream reset, not a session that hangs until the peer reads. */
static void test_close_capsule_blocked(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new_window(h, srv, true, 65536);
    w->hold = true;
    wtc_stream *cs = open_session(w, srv);
    qh_conn *sc = srv_session(srv, 0);
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    size_t total = 3 * 65536;
    uint8_t *data = qh_pattern(total, 5);
    put(b->s, data, total);
    /* The echo stops at the client's window (the preamble and the control
     * streams' bytes count against the connection window too). */
    for (int i = 0; i < 100 && b->raw < 60000; i++)
        qh_run(h, NULL, NULL, 10);
    qh_run(h, NULL, NULL, 100);
    assert_true(b->raw >= 60000 && b->raw <= 65536);
    uint64_t t0 = uv_now(&h->loop);
    SLT_OK(sl_conn_close(sc->c, 4242, "bye from starling"));
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    uint64_t waited = uv_now(&h->loop) - t0;
    assert_true(waited >= 150 && waited < 2000);
    assert_true(sc->why.err == SL_OK && sc->why.app && !sc->why.by_peer && sc->why.code == 4242);
    /* The capsule never reached the client; the stream was reset. */
    assert_true(qh_run(h, until_reset, b, RUN_MS));
    assert_true(b->reset && b->reset_code == SL__WT_SESSION_GONE);
    assert_false(cs->close_rx);
    free(data);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_client_closes_session(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    wtc_stream *cs = open_session(w, srv);
    qh_conn *sc = srv_session(srv, 0);
    /* A GREASE capsule and a DRAIN capsule first: ignored. */
    uint8_t g[64];
    size_t gl = sl__h3_frame_hdr(g + 2, 0x29 * 3 + 0x17, 3);
    memcpy(g + 2 + gl, "abc", 3);
    size_t capl = gl + 3;
    capl += sl__h3_frame_hdr(g + 2 + capl, SL__CAPSULE_DRAIN_WT_SESSION, 0);
    size_t fh = sl__h3_frame_hdr(g, SL__H3_FRAME_DATA, capl);
    assert_int_equal(fh, 2);
    put(cs->s, g, fh + capl);
    qh_run(h, NULL, NULL, 50);
    assert_int_equal(sc->closed, 0);
    /* Close capsule split across two DATA frames, then FIN. */
    uint8_t f[SL__WT_CLOSE_FRAME_MAX];
    size_t n = sl__wt_close_frame(f, 7, "client bye", 10);
    uint8_t hdr[16];
    const uint8_t *cap = f + 2; /* skip the DATA header the helper wrote */
    size_t clen = n - 2;
    put(cs->s, hdr, sl__h3_frame_hdr(hdr, SL__H3_FRAME_DATA, 3));
    put(cs->s, cap, 3);
    put(cs->s, hdr, sl__h3_frame_hdr(hdr, SL__H3_FRAME_DATA, clen - 3));
    put(cs->s, cap + 3, clen - 3);
    SLT_OK(sl_stream_finish(cs->s));
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    assert_true(sc->why.err == SL_OK && sc->why.app && sc->why.by_peer);
    assert_true(sc->why.code == 7);
    assert_string_equal(sc->reason, "client bye");
    /* The server answers with its FIN. */
    assert_true(qh_run(h, until_fin, cs, RUN_MS));
    assert_false(cs->reset);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_client_fin_closes_with_code_0(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    wtc_stream *cs = open_session(w, srv);
    qh_conn *sc = srv_session(srv, 0);
    SLT_OK(sl_stream_finish(cs->s));
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    assert_true(sc->why.err == SL_OK && sc->why.app && sc->why.by_peer && sc->why.code == 0);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_close_inside_on_conn_ready(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    SRV.close_on_ready = true;
    wtc *w = wtc_new(h, srv, true);
    wtc_stream *cs = wtc_connect(w, "/starling?token=" TOKEN, NULL);
    assert_int_equal(cs->status, 200);
    assert_true(qh_run(h, until_close_capsule, cs, RUN_MS));
    assert_true(cs->close_code == 77);
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    assert_int_equal(srv_session(srv, 0)->ready, 1);
    assert_int_equal(srv_session(srv, 0)->closed, 1);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_refusals_and_plain_requests(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 1, true);
    wtc *w = wtc_new(h, srv, true);
    struct {
        const char *path, *origin;
        int status;
        const char *why;
    } cases[] = {
        {"/elsewhere?token=" TOKEN, "null", 404, "no WebTransport endpoint at this path"},
        {"/starling?token=wrong", "null", 403, "invalid or missing token"},
        {"/starling", "null", 403, "invalid or missing token"},
        {"/starling?token=%zz", "null", 403, "invalid or missing token"},
        {"/starling?token=" TOKEN, "http://evil.example", 403, "origin not allowed"},
        {"/starling?token=" TOKEN, NULL, 403, "origin missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wtc_stream *r = wtc_connect(w, cases[i].path, cases[i].origin);
        assert_int_equal(r->status, cases[i].status);
        assert_true(qh_run(h, until_fin, r, RUN_MS));
        assert_int_equal(SRV.last_status, cases[i].status);
        assert_string_equal(SRV.last_reason, cases[i].why);
        char body[200];
        snprintf(body, sizeof body, "starling: %s\n", cases[i].why);
        assert_int_equal(r->blen, strlen(body));
        assert_memory_equal(r->body, body, r->blen);
    }
    assert_int_equal(SRV.refused, 6);
    assert_int_equal(srv->ready, 0);
    /* Percent-encoding in the token, allowed origin: accepted. */
    wtc_stream *ok =
        wtc_connect(w, "/starling?x=1&token=s3cret%2Dtoken&y", "http://127.0.0.1:8080");
    assert_int_equal(ok->status, 200);
    assert_true(qh_run(h, until_srv_ready, srv, RUN_MS));
    assert_string_equal(SRV.origin, "http://127.0.0.1:8080");
    assert_string_equal(SRV.token, TOKEN);
    /* max_sessions 1: a second session on the connection is refused. */
    wtc_stream *r = wtc_connect(w, "/starling?token=" TOKEN, "null");
    assert_int_equal(r->status, 429);
    /* Plain HTTP/3. */
    r = wtc_get(w, "GET", "/health");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 3);
    assert_memory_equal(r->body, "ok\n", 3);
    r = wtc_get(w, "HEAD", "/health");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->blen, 0);
    r = wtc_get(w, "GET", "/health?probe=1");
    assert_int_equal(r->status, 200);
    r = wtc_get(w, "GET", "/nope");
    assert_int_equal(r->status, 404);
    r = wtc_get(w, "POST", "/health");
    assert_int_equal(r->status, 405);
    const nghttp3_nv plain[] = {NV(":method", "CONNECT"), NV(":authority", "127.0.0.1:1")};
    r = wtc_request(w, plain, 2);
    assert_true(qh_run(h, until_status, r, RUN_MS));
    assert_int_equal(r->status, 405);
    const nghttp3_nv other[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"),          NV(":scheme", "https"),
        NV(":authority", "a"),    NV(":path", "/starling?token=" TOKEN), NV("origin", "null")};
    r = wtc_request(w, other, 6);
    assert_true(qh_run(h, until_status, r, RUN_MS));
    assert_int_equal(r->status, 400);
    /* The accepted session still works. */
    assert_true(SRV.info.session_id == (uint64_t)ok->id);
    wtc_dgram(w, (uint64_t)ok->id, "still here", 10);
    assert_true(qh_run(h, until_dgram, w, RUN_MS));
    assert_int_equal(w->dlen, 10);
    assert_true(w->dsid == (uint64_t)ok->id);
    sl_transport_stats ts;
    SLT_OK(sl_transport_stats_get(srv->t, &ts));
    assert_true(ts.wt_sessions == 1);
    assert_true(ts.wt_refused == 9);
    assert_true(ts.h3_requests == 5);
    assert_false(w->closed);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_grease_everywhere(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, false);
    /* Control stream: SETTINGS with GREASE, then a GREASE frame, a
     * PRIORITY_UPDATE-like unknown frame and a GOAWAY. */
    const uint64_t kv[][2] = {{0x21, 1}, {SL__H3_SET_H3_DATAGRAM, 1}, {0x21 + 0x1f * 77, 5}};
    uint8_t b[256];
    size_t n = 0;
    b[n++] = 0x00;
    n += sl__h3_settings_frame(b + n, sizeof b - n, kv, 3);
    n += sl__h3_frame_hdr(b + n, 0x21 + 0x1f * 5, 4);
    memcpy(b + n, "grea", 4);
    n += 4;
    n += sl__h3_frame_hdr(b + n, 0xf0700, 2);
    b[n++] = 0x00;
    b[n++] = 0x00;
    n += sl__h3_frame_hdr(b + n, SL__H3_FRAME_GOAWAY, 1);
    b[n++] = 0x00;
    /* Sent one byte at a time: the parsers must not care. */
    w->ctrl = open_uni(w, NULL, 0);
    for (size_t i = 0; i < n; i++)
        put(w->ctrl, b + i, 1);
    uint8_t e = SL__H3_UNI_QPACK_ENCODER, d = SL__H3_UNI_QPACK_DECODER;
    w->qenc = open_uni(w, &e, 1);
    w->qdec = open_uni(w, &d, 1);
    /* A GREASE uni stream type: the server stops it, nothing else. */
    uint8_t gs[8];
    size_t gn = sl__varint_put(gs, 0x21 + 0x1f * 9);
    sl_stream *grease = open_uni(w, gs, gn);
    put(grease, "whatever", 8);
    wtc_stream *gr = rec_new(w, grease, M_IGNORE);
    /* The session, with a GREASE capsule in DATA right after HEADERS (as
     * Chromium does). */
    wtc_stream *cs = open_session(w, srv);
    uint8_t cap[32];
    size_t cl = sl__h3_frame_hdr(cap + 2, 0x17 + 0x29 * 11, 5);
    memcpy(cap + 2 + cl, "\x01\x02\x03\x04\x05", 5);
    cl += 5;
    sl__h3_frame_hdr(cap, SL__H3_FRAME_DATA, cl);
    put(cs->s, cap, 2 + cl);
    /* An unknown frame type on the CONNECT stream too. */
    n = sl__h3_frame_hdr(b, 0x21 + 0x1f * 2, 3);
    memcpy(b + n, "xyz", 3);
    put(cs->s, b, n + 3);
    wtc_stream *bs = wtc_wt_stream(w, true, 0);
    put(bs->s, "ping", 4);
    SLT_OK(sl_stream_finish(bs->s));
    assert_true(qh_run(h, until_fin, bs, RUN_MS));
    assert_true(bs->raw == 4);
    /* ngtcp2 1.11 tells a sender of STOP_SENDING when it next writes. */
    for (int i = 0; i < 100 && !gr->stopped && gr->s; i++) {
        (void)sl_stream_write(gr->s, "x", 1, NULL);
        qh_run(h, NULL, NULL, 10);
    }
    assert_true(gr->stopped || gr->closed);
    assert_false(w->closed);
    assert_int_equal(srv_session(srv, 0)->closed, 0);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

/* ------------------------------------------- connection-level violations */

typedef void (*abuse_fn)(wtc *w, qh_side *srv);

/* Run an abuse on a fresh connection; the server must close that
 * connection with `code`, and a second client's session must not notice. */
static void expect_conn_error(abuse_fn fn, uint64_t code)
{
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *good = wtc_new(h, srv, true);
    open_session(good, srv);
    wtc *w = wtc_new(h, srv, false);
    fn(w, srv);
    assert_true(qh_run(h, until_client_closed, w, RUN_MS));
    if (!(w->why.app && w->why.code == code))
        fail_msg("want H3 code 0x%llx, got app=%d code=0x%llx (%s)", (unsigned long long)code,
                 w->why.app, (unsigned long long)w->why.code, w->reason);
    assert_true(w->why.by_peer);
    wtc_dgram(good, 0, "alive", 5);
    assert_true(qh_run(h, until_dgram, good, RUN_MS));
    assert_false(good->closed);
    sl_transport_stats ts;
    SLT_OK(sl_transport_stats_get(srv->t, &ts));
    assert_true(ts.h3_errors == 1);
    wtc_fini(good);
    wtc_fini(w);
    qh_finish(h);
    free(good);
    free(w);
}

static void ab_missing_settings(wtc *w, qh_side *srv)
{
    uint8_t b[8];
    size_t n = 1;
    b[0] = 0;
    n += sl__h3_frame_hdr(b + n, SL__H3_FRAME_GOAWAY, 1);
    b[n++] = 0;
    open_uni(w, b, n);
}

static void ab_second_settings(wtc *w, qh_side *srv)
{
    std_control(w);
    uint8_t b[4] = {SL__H3_FRAME_SETTINGS, 0};
    put(w->ctrl, b, 2);
}

static void ab_data_on_control(wtc *w, qh_side *srv)
{
    std_control(w);
    uint8_t b[4] = {SL__H3_FRAME_DATA, 1, 'x'};
    put(w->ctrl, b, 3);
}

static void ab_h2_frame_on_control(wtc *w, qh_side *srv)
{
    std_control(w);
    uint8_t b[4] = {0x08, 1, 0}; /* WINDOW_UPDATE */
    put(w->ctrl, b, 3);
}

static void ab_duplicate_setting(wtc *w, qh_side *srv)
{
    const uint64_t kv[][2] = {{0x33, 1}, {0x33, 1}};
    uint8_t b[32];
    b[0] = 0;
    size_t n = 1 + sl__h3_settings_frame(b + 1, sizeof b - 1, kv, 2);
    open_uni(w, b, n);
}

static void ab_bad_boolean_setting(wtc *w, qh_side *srv)
{
    const uint64_t kv[][2] = {{SL__H3_SET_ENABLE_CONNECT_PROTOCOL, 2}};
    uint8_t b[32];
    b[0] = 0;
    size_t n = 1 + sl__h3_settings_frame(b + 1, sizeof b - 1, kv, 1);
    open_uni(w, b, n);
}

static void ab_huge_settings(wtc *w, qh_side *srv)
{
    uint8_t b[16];
    b[0] = 0;
    size_t n = 1 + sl__h3_frame_hdr(b + 1, SL__H3_FRAME_SETTINGS, SL__H3_SETTINGS_MAX + 1);
    open_uni(w, b, n); /* refused at the header, before any payload */
}

static void ab_second_control(wtc *w, qh_side *srv)
{
    std_control(w);
    uint8_t b[4] = {0, SL__H3_FRAME_SETTINGS, 0};
    open_uni(w, b, 3);
}

static void ab_push_stream(wtc *w, qh_side *srv)
{
    std_control(w);
    uint8_t b[2] = {SL__H3_UNI_PUSH, 0};
    open_uni(w, b, 2);
}

static void ab_control_fin(wtc *w, qh_side *srv)
{
    std_control(w);
    SLT_OK(sl_stream_finish(w->ctrl));
}

static void ab_bad_qpack(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {SL__H3_FRAME_HEADERS, 4, 0x00, 0x00, 0xff, 0xff};
    put(s, b, sizeof b);
}

static void ab_qpack_dynamic_ref(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {SL__H3_FRAME_HEADERS, 3, 0x02, 0x00, 0x80};
    put(s, b, sizeof b);
}

static void ab_data_before_headers(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {SL__H3_FRAME_DATA, 1, 'x'};
    put(s, b, sizeof b);
}

static void ab_settings_on_request(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {SL__H3_FRAME_SETTINGS, 0};
    put(s, b, sizeof b);
}

static void ab_h2_frame_on_request(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {0x09, 1, 0}; /* CONTINUATION */
    put(s, b, sizeof b);
}

static void ab_fin_inside_frame(wtc *w, qh_side *srv)
{
    std_control(w);
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    const uint8_t b[] = {0x21, 10, 'a', 'b'}; /* an unknown frame, cut short */
    put(s, b, sizeof b);
    SLT_OK(sl_stream_finish(s));
}

static void ab_bad_session_id(wtc *w, qh_side *srv)
{
    std_control(w);
    wtc_wt_stream(w, true, 1); /* not a client bidi stream id */
}

static void ab_bad_encoder_stream(wtc *w, qh_side *srv)
{
    std_control(w);
    /* Set Dynamic Table Capacity 4096: more than the 0 we allow. */
    const uint8_t b[] = {0x3f, 0xe1, 0x1f};
    put(w->qenc, b, sizeof b);
}

static void test_conn_errors(void **state)
{
    (void)state;
    expect_conn_error(ab_missing_settings, SL__H3_MISSING_SETTINGS);
    expect_conn_error(ab_second_settings, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_data_on_control, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_h2_frame_on_control, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_duplicate_setting, SL__H3_SETTINGS_ERROR);
    expect_conn_error(ab_bad_boolean_setting, SL__H3_SETTINGS_ERROR);
    expect_conn_error(ab_huge_settings, SL__H3_EXCESSIVE_LOAD);
    expect_conn_error(ab_second_control, SL__H3_STREAM_CREATION_ERROR);
    expect_conn_error(ab_push_stream, SL__H3_STREAM_CREATION_ERROR);
    expect_conn_error(ab_control_fin, SL__H3_CLOSED_CRITICAL_STREAM);
    expect_conn_error(ab_bad_qpack, SL__QPACK_DECOMPRESSION_FAILED);
    expect_conn_error(ab_qpack_dynamic_ref, SL__QPACK_DECOMPRESSION_FAILED);
    expect_conn_error(ab_data_before_headers, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_settings_on_request, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_h2_frame_on_request, SL__H3_FRAME_UNEXPECTED);
    expect_conn_error(ab_fin_inside_frame, SL__H3_FRAME_ERROR);
    expect_conn_error(ab_bad_session_id, SL__H3_ID_ERROR);
    expect_conn_error(ab_bad_encoder_stream, SL__QPACK_ENCODER_STREAM_ERROR);
}

static void test_conn_error_ends_sessions_with_proto(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    open_session(w, srv);
    uint8_t b[4] = {SL__H3_FRAME_DATA, 1, 'x'};
    put(w->ctrl, b, 3);
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    qh_conn *sc = srv_session(srv, 0);
    assert_int_equal(sc->why.err, SL_ERR_PROTO);
    assert_true(sc->why.code == SL__H3_FRAME_UNEXPECTED);
    assert_true(qh_run(h, until_client_closed, w, RUN_MS));
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

/* ---------------------------------------------- stream-level violations */

static void test_stream_errors(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    /* A malformed request (upper-case field name): that stream is reset
     * with H3_MESSAGE_ERROR, nothing else. */
    const nghttp3_nv bad[] = {NV(":method", "GET"), NV(":scheme", "https"), NV(":path", "/health"),
                              NV("X-Upper", "1")};
    wtc_stream *r = wtc_request(w, bad, 4);
    assert_true(qh_run(h, until_reset, r, RUN_MS));
    assert_true(r->reset_code == SL__H3_MESSAGE_ERROR);
    /* A request that ends without HEADERS: H3_REQUEST_INCOMPLETE. */
    sl_stream *s;
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    wtc_stream *inc = rec_new(w, s, M_REQ);
    const uint8_t unk[] = {0x21, 1, 'z'};
    put(s, unk, 3);
    SLT_OK(sl_stream_finish(s));
    assert_true(qh_run(h, until_reset, inc, RUN_MS));
    assert_true(inc->reset_code == SL__H3_REQUEST_INCOMPLETE);
    /* A header block over the limit: 431, without reading it. */
    SLT_OK(sl_stream_open(w->c, true, SL_PRIO_NORMAL, NULL, &s));
    wtc_stream *big = rec_new(w, s, M_REQ);
    uint8_t hb[16];
    put(s, hb, sl__h3_frame_hdr(hb, SL__H3_FRAME_HEADERS, 20000));
    assert_true(qh_run(h, until_status, big, RUN_MS));
    assert_int_equal(big->status, 431);
    /* A WebTransport stream for a session that does not exist: refused
     * with WT_BUFFERED_STREAM_REJECTED. */
    wtc_stream *orphan = wtc_wt_stream(w, true, 8);
    put(orphan->s, "lost", 4);
    assert_true(qh_run(h, until_reset, orphan, RUN_MS));
    assert_true(orphan->reset_code == SL__WT_BUFFERED_STREAM_REJECTED);
    /* A malformed close capsule (2 bytes): only its session ends, with
     * SL_ERR_PROTO; the CONNECT stream is reset with H3_MESSAGE_ERROR. */
    wtc_stream *cs = open_session(w, srv);
    const uint8_t badcap[] = {SL__H3_FRAME_DATA, 5, 0x68, 0x43, 2, 0, 0};
    put(cs->s, badcap, sizeof badcap);
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    qh_conn *sc = srv_session(srv, 0);
    assert_int_equal(sc->why.err, SL_ERR_PROTO);
    assert_true(sc->why.code == SL__H3_MESSAGE_ERROR);
    assert_true(qh_run(h, until_reset, cs, RUN_MS));
    assert_true(cs->reset_code == SL__H3_MESSAGE_ERROR);
    /* The connection is fine: a new session and a GET work. */
    wtc_stream *cs2 = open_session(w, srv);
    assert_int_equal(cs2->status, 200);
    r = wtc_get(w, "GET", "/health");
    assert_int_equal(r->status, 200);
    assert_false(w->closed);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static bool until_srv_stream_reset(qh_harness *h, void *arg)
{
    qh_side *srv = arg;
    return srv->nstreams > 0 && srv->streams[0].reset;
}

static void test_reset_codes_map(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    SRV.echo = false;
    wtc *w = wtc_new(h, srv, true);
    open_session(w, srv);
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    put(b->s, "abc", 3);
    for (int i = 0; i < 100 && srv->nstreams == 0; i++)
        qh_run(h, NULL, NULL, 10);
    assert_int_equal(srv->nstreams, 1);
    qh_stream *sr = &srv->streams[0];
    /* Client resets with the HTTP/3 code of WebTransport code 77: the
     * application sees 77. */
    SLT_OK(sl_stream_reset(b->s, sl__wt_code_to_h3(77)));
    assert_true(qh_run(h, until_srv_stream_reset, srv, RUN_MS));
    assert_true(sr->reset_code == 77);
    /* The server resets with 99: the client sees its HTTP/3 code. */
    assert_int_equal(sl_stream_reset(sr->s, 1ull << 32), SL_ERR_INVAL);
    assert_int_equal(sl_stream_stop_sending(sr->s, 1ull << 40), SL_ERR_INVAL);
    SLT_OK(sl_stream_reset(sr->s, 99));
    assert_true(qh_run(h, until_reset, b, RUN_MS));
    assert_true(b->reset_code == sl__wt_code_to_h3(99));
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

/* Flow control stays the consumer's: a WebTransport stream whose
 * application does not consume stops its sender at the stream window. */
static void test_flow_control_is_the_consumers(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    SRV.echo = false;
    srv->consume = false;
    wtc *w = wtc_new(h, srv, true);
    open_session(w, srv);
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    size_t total = 3u << 20; /* 3 x the 1 MiB stream window */
    uint8_t *data = qh_pattern(total, 3);
    for (size_t off = 0; off < total; off += 65536)
        put(b->s, data + off, 65536);
    SLT_OK(sl_stream_finish(b->s));
    qh_run(h, NULL, NULL, 500);
    assert_int_equal(srv->nstreams, 1);
    qh_stream *sr = &srv->streams[0];
    /* The window minus the preamble bytes the server consumed itself. */
    assert_true(sr->bytes < (1u << 20) + 16);
    assert_true(sr->bytes > (1u << 20) - 16);
    for (int i = 0; i < 400 && !sr->fin; i++) {
        qh_consume_all(srv);
        qh_run(h, NULL, NULL, 10);
    }
    assert_true(sr->fin && sr->bytes == total);
    free(data);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_connection_loss_ends_session(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    wtc *w = wtc_new(h, srv, true);
    open_session(w, srv);
    wtc_stream *b = wtc_wt_stream(w, true, 0);
    put(b->s, "abc", 3);
    for (int i = 0; i < 100 && srv->nstreams == 0; i++)
        qh_run(h, NULL, NULL, 10);
    /* The client closes the whole QUIC connection. */
    SLT_OK(sl_conn_close(w->c, 0x100, "gone"));
    assert_true(qh_run(h, until_srv_closed, srv, RUN_MS));
    qh_conn *sc = srv_session(srv, 0);
    assert_true(sc->why.by_peer);
    assert_true(sc->why.app && sc->why.code == 0x100);
    assert_string_equal(sc->reason, "gone");
    assert_true(srv->streams[0].closed);
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

/* Under mutual TLS a native client without a trusted certificate is
 * refused, and an "h3" client (a browser has no certificate) is not asked
 * for one. */
static void test_mutual_tls_spares_h3(void **state)
{
    (void)state;
    qh_harness *h = qh_new();
    memset(&SRV, 0, sizeof SRV);
    qh_side *srv = qh_side_add(h, "srv");
    sl_transport_settings s;
    qh_settings(srv, &s);
    WTS = (sl_webtransport_settings){.path = "/starling", .token = TOKEN};
    s.webtransport = &WTS;
    s.tls.require_client_cert = true;
    s.tls.verify = SL_VERIFY_PIN_CERT;
    memset(s.tls.pin, 0xab, 32); /* no client has this certificate */
    srv->on_ready = srv_on_ready;
    SLT_OK(qh_side_start(srv, &s));
    qh_listen(srv);
    wtc *w = wtc_new(h, srv, true);
    wtc_stream *cs = open_session(w, srv);
    assert_int_equal(cs->status, 200);
    /* A native client on the same port is still held to mutual TLS. */
    qh_side *nat = qh_side_add(h, "native");
    qh_settings(nat, &s);
    s.tls.verify = SL_VERIFY_PIN_CERT;
    SLT_OK(sl_transport_cert_sha256(srv->t, s.tls.pin));
    SLT_OK(qh_side_start(nat, &s));
    qh_conn *nc = qh_connect(nat, srv->port);
    assert_true(qh_run(h, qh_until_closed, nc, RUN_MS));
    assert_int_equal(nc->ready, 0);
    assert_int_equal(nc->why.err, SL_ERR_TLS);
    assert_int_equal(srv->ready, 1); /* only the session */
    wtc_fini(w);
    qh_finish(h);
    free(w);
}

static void test_native_alpn_still_served(void **state)
{
    (void)state;
    /* The endpoint serves its own ALPN as before, next to h3. */
    qh_harness *h = qh_new();
    qh_side *srv = server(h, 0, false);
    SRV.echo = false;
    qh_side *cli = qh_side_add(h, "native");
    sl_transport_settings s;
    qh_settings(cli, &s);
    s.tls.verify = SL_VERIFY_PIN_CERT;
    SLT_OK(sl_transport_cert_sha256(srv->t, s.tls.pin));
    SLT_OK(qh_side_start(cli, &s));
    qh_conn *c = qh_connect(cli, srv->port);
    assert_true(qh_run(h, qh_until_ready, c, RUN_MS));
    assert_string_equal(c->alpn, SL_ALPN);
    qh_transfer(c, srv, 50000, RUN_MS);
    assert_true(qh_run(h, until_srv_ready, srv, RUN_MS));
    assert_string_equal(srv->conns[0].alpn, SL_ALPN);
    sl_wt_info info;
    assert_int_equal(sl_conn_wt_info(srv->conns[0].c, &info), SL_ERR_INVAL);
    qh_finish(h);
}

/* ------------------------------------------------- allocation failures */

static bool until_any_end(qh_harness *h, void *arg)
{
    wtc_stream *r = arg;
    return r->fin || r->reset || r->closed || r->w->closed;
}

/*
 * One session's life (CONNECT, bidi echo, uni echo, datagram, close by the
 * client) with the server's allocator failing its k-th allocation after
 * the connection is up. Whatever fails must fail cleanly: nothing leaks,
 * nothing crashes, the loop closes. Returns the server allocations made.
 */
static uint64_t session_with_failure(uint64_t k)
{
    qh_harness *h = qh_new();
    static slt_mem smem;
    slt_mem_init(&smem);
    memset(&SRV, 0, sizeof SRV);
    SRV.echo = true;
    qh_side *srv = qh_side_add(h, "srv");
    sl_transport_settings s;
    qh_settings(srv, &s);
    s.mem = &smem.hooks;
    WTS = (sl_webtransport_settings){
        .path = "/starling", .check_token = check_token_cb, .health_path = "/health"};
    s.webtransport = &WTS;
    srv->on_data = srv_on_data;
    srv->on_dgram = srv_on_dgram;
    SLT_OK(qh_side_start(srv, &s));
    qh_listen(srv);
    wtc *w = wtc_new(h, srv, true);
    qh_run(h, until_client_settings, w, 1000);
    uint64_t before = smem.calls;
    if (k)
        slt_mem_fail_after(&smem, k, 0);
    const nghttp3_nv nva[] = {NV(":method", "CONNECT"), NV(":protocol", "webtransport"),
                              NV(":scheme", "https"), NV(":authority", "127.0.0.1"),
                              NV(":path", "/starling?token=" TOKEN)};
    wtc_stream *cs = w->closed ? NULL : wtc_request(w, nva, 5);
    if (cs) {
        cs->connect = true;
        qh_run(h, until_status, cs, 1000);
    }
    if (cs && cs->status == 200 && !w->closed) {
        wtc_stream *b = wtc_wt_stream(w, true, 0);
        put(b->s, "abc", 3);
        SLT_OK(sl_stream_finish(b->s));
        qh_run(h, until_any_end, b, 1000);
        if (!w->closed) {
            wtc_stream *u = wtc_wt_stream(w, false, 0);
            put(u->s, "uni", 3);
            SLT_OK(sl_stream_finish(u->s));
            wtc_dgram(w, 0, "dg", 2);
            qh_run(h, NULL, NULL, 50);
        }
        if (!w->closed && cs->s) {
            uint8_t f[SL__WT_CLOSE_FRAME_MAX];
            size_t n = sl__wt_close_frame(f, 5, "done", 4);
            (void)sl_stream_write(cs->s, f, n, NULL);
            (void)sl_stream_finish(cs->s);
            qh_run(h, until_srv_closed, srv, 1000);
        }
    }
    if (!w->closed) {
        wtc_stream *g =
            wtc_request(w,
                        (const nghttp3_nv[]){NV(":method", "GET"), NV(":scheme", "https"),
                                             NV(":path", "/health")},
                        3);
        SLT_OK(sl_stream_finish(g->s));
        qh_run(h, until_any_end, g, 1000);
    }
    slt_mem_fail_off(&smem);
    uint64_t used = smem.calls - before;
    wtc_fini(w);
    qh_finish(h);
    free(w);
    assert_int_equal(smem.live, 0);
    assert_int_equal(smem.bad_frees, 0);
    return used;
}

static void test_server_allocation_failures(void **state)
{
    (void)state;
    uint64_t total = session_with_failure(0);
    assert_true(total > 10);
    print_message("failing each of the %llu server allocations of a session in turn\n",
                  (unsigned long long)total);
    /* Every allocation of the session's life, failed in turn. */
    for (uint64_t k = 1; k <= total; k++)
        session_with_failure(k);
}

static void test_settings_validation(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_transport_settings s;
    sl_transport_settings_default(&s);
    s.loop = &loop;
    sl_webtransport_settings ws = {.path = "starling", .token = "t"};
    s.webtransport = &ws;
    sl_transport *t = NULL;
    assert_int_equal(sl_quic_new(&s, &t), SL_ERR_INVAL); /* no leading '/' */
    ws.path = "/s?x=1";
    assert_int_equal(sl_quic_new(&s, &t), SL_ERR_INVAL); /* query in the path */
    ws.path = "/s";
    ws.token = NULL;
    assert_int_equal(sl_quic_new(&s, &t), SL_ERR_INVAL); /* no token check at all */
    ws.token = "t";
    ws.n_origins = 1;
    assert_int_equal(sl_quic_new(&s, &t), SL_ERR_INVAL); /* count without list */
    ws.n_origins = 0;
    ws.health_path = "health";
    assert_int_equal(sl_quic_new(&s, &t), SL_ERR_INVAL);
    ws.health_path = NULL;
    SLT_OK(sl_quic_new(&s, &t));
    sl_transport_del(t); /* never listened: no handle to close */
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_settings_and_session, qh_teardown),
        cmocka_unit_test_teardown(test_bidi_uni_datagram_echo, qh_teardown),
        cmocka_unit_test_teardown(test_server_closes_session, qh_teardown),
        cmocka_unit_test_teardown(test_close_capsule_blocked, qh_teardown),
        cmocka_unit_test_teardown(test_client_closes_session, qh_teardown),
        cmocka_unit_test_teardown(test_client_fin_closes_with_code_0, qh_teardown),
        cmocka_unit_test_teardown(test_close_inside_on_conn_ready, qh_teardown),
        cmocka_unit_test_teardown(test_refusals_and_plain_requests, qh_teardown),
        cmocka_unit_test_teardown(test_grease_everywhere, qh_teardown),
        cmocka_unit_test_teardown(test_conn_errors, qh_teardown),
        cmocka_unit_test_teardown(test_conn_error_ends_sessions_with_proto, qh_teardown),
        cmocka_unit_test_teardown(test_stream_errors, qh_teardown),
        cmocka_unit_test_teardown(test_reset_codes_map, qh_teardown),
        cmocka_unit_test_teardown(test_flow_control_is_the_consumers, qh_teardown),
        cmocka_unit_test_teardown(test_connection_loss_ends_session, qh_teardown),
        cmocka_unit_test_teardown(test_mutual_tls_spares_h3, qh_teardown),
        cmocka_unit_test_teardown(test_native_alpn_still_served, qh_teardown),
        cmocka_unit_test_teardown(test_server_allocation_failures, qh_teardown),
        cmocka_unit_test(test_settings_validation),
    };
    return cmocka_run_group_tests_name("wt", tests, NULL, NULL);
}
