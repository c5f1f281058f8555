/*
 * wt.c: the WebTransport server. HTTP/3 on the QUIC connections that chose
 * the ALPN "h3", extended CONNECT, and each accepted WebTransport session
 * handed to the application as an sl_conn of its own.
 *
 * Layering. The QUIC transport sends every event of an "h3" connection
 * here (sl__wt_conn_callbacks) instead of to the application. We talk
 * HTTP/3 on that connection with the same public functions an application
 * would use (sl_stream_open/write/consume/reset, sl_datagram_send,
 * sl_conn_close), so nothing here knows ngtcp2. Per connection (h3_conn):
 * our control stream with SETTINGS and our two QPACK streams, the peer's
 * three, nghttp3's QPACK encoder and decoder, and an h3_stream per QUIC
 * stream with the state of its parser.
 *
 * A session (wt_session) embeds struct sl_conn with ops = wt_ops, so
 * sl_conn_close, sl_stream_open, sl_datagram_send, ... on it come here;
 * each WebTransport stream is the h3_stream of its QUIC stream, whose
 * first member is the sl_stream the application sees (its `c` is the
 * session). The application's callbacks fire for sessions and their
 * streams as for native connections:
 *  - on_conn_ready when the CONNECT was accepted (after the 200 went out);
 *  - on_stream_open when a peer stream's preamble (0x41 / 0x54 + session
 *    id) has arrived; on_stream_data with the bytes after it (the preamble
 *    is consumed here, the rest is the application's to consume, so
 *    flow control stays the consumer's); _writable, _reset (with the
 *    WebTransport code, 0 if the code was not one), _stop_sending, _closed
 *    as the QUIC stream under it reports them;
 *  - on_datagram for HTTP/3 datagrams whose quarter stream id names the
 *    session;
 *  - on_conn_closed when the session ended: the peer's close capsule or FIN
 *    on the CONNECT stream, its reset, our sl_conn_close, or the QUIC
 *    connection going away.
 *
 * Lifetimes. Memory is never freed under a caller's feet: an h3_stream
 * goes when its QUIC stream reports closed, an h3_conn when its connection
 * does (the transport reports all streams first). A session that ends
 * while its connection lives is put on a reap list, and a zero-delay timer
 * reports its remaining streams closed, then the session, then frees it:
 * so sl_conn_close() on a session inside any callback is safe, and the
 * application hears on_conn_closed later, as with native connections. A
 * session whose connection dies is reported at once, from the
 * connection's own teardown. The same timer closes "h3" connections that
 * have no session: 10 s after they were made (a client that never asks),
 * 2 s after their last session ended (a client that does not close).
 *
 * Errors. A problem with one request or stream is answered or reset on
 * that stream (H3_MESSAGE_ERROR, H3_REQUEST_INCOMPLETE, a 4xx); a problem
 * with the connection's HTTP/3 state (control stream, SETTINGS, frames
 * where they may not be, QPACK) closes that QUIC connection with the
 * RFC 9114 code and a reason, and its sessions end with SL_ERR_PROTO. A
 * bad capsule ends only its session.
 */
#include "transport/webtransport/wt.h"

#include <stdio.h>
#include <string.h>

#include <nghttp3/nghttp3.h>

#include "transport/transport_int.h"
#include "transport/webtransport/h3.h"
#include "transport/webtransport/headers.h"

#define H3_HEADERS_MAX 16384 /* bytes of one HEADERS payload we keep */
#define H3_IDLE_MS 10000     /* an "h3" connection that never had a session */
#define H3_LINGER_MS 2000    /* one whose last session ended */
#define DEFAULT_MAX_SESSIONS 4
#define TOKEN_MAX 1024 /* bytes of a decoded token */
#define DGRAM_BUF 1600 /* larger than any datagram a QUIC packet holds */

typedef struct h3_conn h3_conn;
typedef struct h3_stream h3_stream;
typedef struct wt_session wt_session;

/* What a QUIC stream of an "h3" connection is to us. */
enum {
    HS_UNI_HEAD, /* a peer uni stream whose type has not arrived yet */
    HS_CONTROL,  /* the peer's control stream */
    HS_QPACK_ENC,
    HS_QPACK_DEC,
    HS_DISCARD, /* input is consumed and ignored */
    HS_REQUEST, /* a client bidi stream: frames, a request */
    HS_CONNECT, /* the CONNECT stream of an accepted session */
    HS_WT,      /* a WebTransport stream */
    HS_OWN      /* one of our control/QPACK streams */
};

struct h3_stream {
    sl_stream wt; /* the WebTransport face; first, so an sl_stream* is an h3_stream* */
    h3_conn *hc;
    sl_stream *s;           /* the QUIC stream; NULL once it closed */
    h3_stream *prev, *next; /* hc->streams */
    uint8_t kind;
    bool first;   /* request: no frame yet (only then may 0x41 come) */
    bool headers; /* request: its HEADERS were handled */
    bool keep;    /* the current frame's payload goes to buf */
    sl__h3_uni_rd uni;
    sl__tlv_rd fr; /* frames */
    uint8_t *buf;  /* kept payload of the current frame (exact size) */
    size_t blen, bcap;
    /* CONNECT stream */
    wt_session *owner;
    sl__tlv_rd cap; /* capsules inside DATA payloads */
    bool ckeep;
    uint8_t *cbuf;
    size_t cblen, cbcap;
    /* WebTransport stream */
    wt_session *sess; /* NULL once detached from its session */
    h3_stream *sprev, *snext;
    bool user;                /* the application holds wt (not yet told it closed) */
    uint64_t pre_in, pre_out; /* preamble bytes received / written */
};

struct h3_conn {
    sl__wt_server *w;
    sl_conn *c;  /* the QUIC connection */
    bool ready;  /* handshake complete */
    bool failed; /* we closed it for an HTTP/3 error: input is ignored */
    bool dying;  /* its teardown is reporting */
    sl_close_info fail_why;
    char fail_reason[96];
    h3_stream *ctrl_in, *qenc_in, *qdec_in;
    h3_stream *ctrl_out, *qenc_out, *qdec_out;
    bool settings_rx;
    sl__h3_settings peer;
    nghttp3_qpack_encoder *enc;
    nghttp3_qpack_decoder *dec;
    h3_stream *streams;
    wt_session *sessions;
    uint32_t nsessions;
    uint64_t deadline; /* ms (uv_now) when it is closed if still without session */
    bool timed;        /* in the deadline list */
    h3_conn *tprev, *tnext;
};

struct wt_session {
    sl_conn base; /* first: an sl_conn* of ours is a wt_session* */
    sl__wt_server *w;
    h3_conn *hc;
    h3_stream *connect; /* NULL once the CONNECT stream closed */
    uint64_t id;        /* the CONNECT stream's id */
    bool open;          /* accepted and not ended */
    bool capsule_sent;  /* we closed it with CLOSE_WEBTRANSPORT_SESSION */
    bool reaping;
    uint64_t reap_by;   /* ms (uv_now): finish by then even if the capsule is not out */
    wt_session *prev, *next;   /* hc->sessions */
    wt_session *rprev, *rnext; /* w->reap */
    h3_stream *streams;
    uint32_t nstreams;
    sl_close_info why;
    char reason[SL__WT_CLOSE_REASON_MAX + 1];
    uint64_t dgrams_sent, dgrams_recv;
    const char *path, *token, *origin, *authority; /* into strs */
    char strs[];
};

struct sl__wt_server {
    sl_transport *t;
    uv_loop_t *loop;
    sl_mem mem;
    nghttp3_mem nmem;
    char *path, *health, *token;
    char **origins;
    size_t n_origins;
    bool (*check_token)(const char *token, const char *origin, void *ud);
    void (*on_refused)(const char *path, const char *origin, int status, const char *reason,
                       void *ud);
    void *ud;
    uint32_t max_sessions;
    uv_timer_t timer;
    bool timer_init, closing;
    void (*done)(void *);
    void *done_arg;
    wt_session *reap_head, *reap_tail;
    h3_conn *tq_head, *tq_tail; /* connections with a deadline, earliest first */
    uint64_t n_sessions, n_refused, n_requests, n_errors;
};

static const sl_transport_ops wt_ops;

/* -------------------------------------------------------------- memory */

static void *w_alloc(sl__wt_server *w, size_t n)
{
    return w->mem.malloc(n, w->mem.ud);
}
static void *w_calloc(sl__wt_server *w, size_t n, size_t s)
{
    return w->mem.calloc(n, s, w->mem.ud);
}
static void w_free(sl__wt_server *w, void *p)
{
    if (p)
        w->mem.free(p, w->mem.ud);
}

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

static char *w_strdup(sl__wt_server *w, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = w_alloc(w, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static const sl_transport_callbacks *ucb(const sl__wt_server *w)
{
    return &w->t->set.cb;
}
static void *uud(const sl__wt_server *w)
{
    return w->t->set.ud;
}

/* ------------------------------------------------------------- timing */

static void arm(sl__wt_server *w);

static void tq_remove(h3_conn *hc)
{
    sl__wt_server *w = hc->w;
    if (!hc->timed)
        return;
    if (hc->tprev)
        hc->tprev->tnext = hc->tnext;
    else
        w->tq_head = hc->tnext;
    if (hc->tnext)
        hc->tnext->tprev = hc->tprev;
    else
        w->tq_tail = hc->tprev;
    hc->tprev = hc->tnext = NULL;
    hc->timed = false;
}

/* Give hc a deadline. Deadlines are nearly monotonic (two fixed delays),
 * so the sorted insert from the tail is short. */
static void tq_add(h3_conn *hc, uint64_t delay_ms)
{
    sl__wt_server *w = hc->w;
    tq_remove(hc);
    hc->deadline = uv_now(w->loop) + delay_ms;
    h3_conn *after = w->tq_tail;
    while (after && after->deadline > hc->deadline)
        after = after->tprev;
    hc->tprev = after;
    hc->tnext = after ? after->tnext : w->tq_head;
    if (hc->tnext)
        hc->tnext->tprev = hc;
    else
        w->tq_tail = hc;
    if (after)
        after->tnext = hc;
    else
        w->tq_head = hc;
    hc->timed = true;
    arm(w);
}

static void reap_remove(wt_session *ss)
{
    sl__wt_server *w = ss->w;
    if (!ss->reaping)
        return;
    if (ss->rprev)
        ss->rprev->rnext = ss->rnext;
    else
        w->reap_head = ss->rnext;
    if (ss->rnext)
        ss->rnext->rprev = ss->rprev;
    else
        w->reap_tail = ss->rprev;
    ss->rprev = ss->rnext = NULL;
    ss->reaping = false;
}

static void reap_push(wt_session *ss)
{
    sl__wt_server *w = ss->w;
    if (ss->reaping)
        return;
    ss->reaping = true;
    ss->rnext = NULL;
    ss->rprev = w->reap_tail;
    if (w->reap_tail)
        w->reap_tail->rnext = ss;
    else
        w->reap_head = ss;
    w->reap_tail = ss;
    arm(w);
}

static void session_finish(wt_session *ss);

/* A session we closed with a capsule is finished (its streams reset) only
 * once the capsule left in a packet of its own flight, or after
 * CAPSULE_WAIT_MS if it cannot leave (congestion, a dead path): resets in
 * the same flight made Chromium sometimes report "Connection lost" or
 * stream errors instead of our close code. */
#define CAPSULE_WAIT_MS 200
static bool reap_ready(const wt_session *ss)
{
    if (!ss->capsule_sent || !ss->connect || !ss->connect->s)
        return true;
    sl_stream_stats st;
    if (sl_stream_stats_get(ss->connect->s, &st) != SL_OK || st.bytes_sent >= st.bytes_written)
        return true;
    return uv_now(ss->w->loop) >= ss->reap_by;
}

static wt_session *reap_first_ready(sl__wt_server *w)
{
    for (wt_session *ss = w->reap_head; ss; ss = ss->rnext)
        if (reap_ready(ss))
            return ss;
    return NULL;
}

static void on_timer(uv_timer_t *h)
{
    sl__wt_server *w = h->data;
    /* Bounded: each pass removes a session or a connection from its list
     * (a callback may end others: the list is read again each time). */
    for (wt_session *ss; (ss = reap_first_ready(w));)
        session_finish(ss);
    uint64_t now = uv_now(w->loop);
    while (w->tq_head && w->tq_head->deadline <= now) {
        h3_conn *hc = w->tq_head;
        tq_remove(hc);
        if (hc->nsessions == 0 && !hc->failed && !hc->dying)
            sl_conn_close(hc->c, SL__H3_NO_ERROR, "no WebTransport session");
    }
    arm(w);
}

static bool timer_ensure(sl__wt_server *w)
{
    if (w->timer_init)
        return true;
    if (w->closing || uv_timer_init(w->loop, &w->timer) != 0)
        return false;
    w->timer.data = w;
    uv_unref((uv_handle_t *)&w->timer); /* never keeps the loop alive by itself */
    w->timer_init = true;
    return true;
}

static void arm(sl__wt_server *w)
{
    if (!timer_ensure(w))
        return;
    if (w->reap_head) {
        /* 1 ms when every one waits for its capsule to leave (it leaves
         * when the loop flushes, before it polls again). */
        uv_timer_start(&w->timer, on_timer, reap_first_ready(w) ? 0 : 1, 0);
    } else if (w->tq_head) {
        uint64_t now = uv_now(w->loop);
        uv_timer_start(&w->timer, on_timer,
                       w->tq_head->deadline > now ? w->tq_head->deadline - now : 0, 0);
    } else {
        uv_timer_stop(&w->timer);
    }
}

/* ------------------------------------------------- streams, connections */

static h3_stream *hs_new(h3_conn *hc, sl_stream *s, int kind)
{
    h3_stream *hs = w_calloc(hc->w, 1, sizeof *hs);
    if (!hs)
        return NULL;
    hs->hc = hc;
    hs->s = s;
    hs->kind = (uint8_t)kind;
    hs->first = true;
    hs->next = hc->streams;
    if (hc->streams)
        hc->streams->prev = hs;
    hc->streams = hs;
    return hs;
}

static void hs_unlink_session(h3_stream *hs)
{
    wt_session *ss = hs->sess;
    if (!ss)
        return;
    if (hs->sprev)
        hs->sprev->snext = hs->snext;
    else
        ss->streams = hs->snext;
    if (hs->snext)
        hs->snext->sprev = hs->sprev;
    hs->sprev = hs->snext = NULL;
    hs->sess = NULL;
    ss->nstreams--;
}

static void hs_free(h3_stream *hs)
{
    h3_conn *hc = hs->hc;
    hs_unlink_session(hs);
    if (hs->owner && hs->owner->connect == hs)
        hs->owner->connect = NULL;
    if (hs->prev)
        hs->prev->next = hs->next;
    else
        hc->streams = hs->next;
    if (hs->next)
        hs->next->prev = hs->prev;
    h3_stream **crit[] = {&hc->ctrl_in,  &hc->qenc_in,  &hc->qdec_in,
                          &hc->ctrl_out, &hc->qenc_out, &hc->qdec_out};
    for (size_t i = 0; i < sizeof crit / sizeof crit[0]; i++)
        if (*crit[i] == hs)
            *crit[i] = NULL;
    w_free(hc->w, hs->buf);
    w_free(hc->w, hs->cbuf);
    w_free(hc->w, hs);
}

/* Close the connection for an HTTP/3 error (RFC 9114 8). Its sessions end
 * with SL_ERR_PROTO when its teardown reports. */
static void hc_fail(h3_conn *hc, uint64_t code, const char *why)
{
    if (hc->failed || hc->dying)
        return;
    hc->failed = true;
    hc->w->n_errors++;
    snprintf(hc->fail_reason, sizeof hc->fail_reason, "%s", why);
    memset(&hc->fail_why, 0, sizeof hc->fail_why);
    hc->fail_why.err = SL_ERR_PROTO;
    hc->fail_why.app = true;
    hc->fail_why.code = code;
    hc->fail_why.reason = hc->fail_reason;
    sl_conn_close(hc->c, code, why);
}

/* A stream error: abort both directions with `code`, ignore what follows. */
static void hs_fail(h3_stream *hs, uint64_t code)
{
    if (hs->s) {
        sl_stream_reset(hs->s, code);
        sl_stream_stop_sending(hs->s, code);
    }
    hs->kind = HS_DISCARD;
}

static int write_all(sl_stream *s, const void *p, size_t n)
{
    return s ? sl_stream_write(s, p, n, NULL) : SL_ERR_CLOSED;
}

static h3_stream *open_own(h3_conn *hc, const uint8_t *head, size_t n)
{
    h3_stream *hs = hs_new(hc, NULL, HS_OWN);
    if (!hs)
        return NULL;
    sl_stream *s;
    if (sl_stream_open(hc->c, false, SL_PRIO_CRITICAL, hs, &s) != SL_OK) {
        hs_free(hs);
        return NULL;
    }
    hs->s = s;
    if (write_all(s, head, n) != SL_OK)
        return NULL; /* the connection fails; the stream goes with it */
    return hs;
}

/* Our control stream with SETTINGS, and our QPACK encoder/decoder streams
 * (they stay silent: no dynamic table). */
static void open_own_streams(h3_conn *hc)
{
    const uint64_t kv[][2] = {
        {SL__H3_SET_QPACK_MAX_TABLE_CAPACITY, 0},
        {SL__H3_SET_QPACK_BLOCKED_STREAMS, 0},
        {SL__H3_SET_MAX_FIELD_SECTION_SIZE, H3_HEADERS_MAX},
        {SL__H3_SET_ENABLE_CONNECT_PROTOCOL, 1},
        {SL__H3_SET_H3_DATAGRAM, 1},
        {SL__H3_SET_ENABLE_WEBTRANSPORT, 1},
    };
    uint8_t ctl[128];
    ctl[0] = SL__H3_UNI_CONTROL;
    size_t n = 1 + sl__h3_settings_frame(ctl + 1, sizeof ctl - 1, kv, sizeof kv / sizeof kv[0]);
    const uint8_t enc = SL__H3_UNI_QPACK_ENCODER, dec = SL__H3_UNI_QPACK_DECODER;
    if (!(hc->ctrl_out = open_own(hc, ctl, n)) || !(hc->qenc_out = open_own(hc, &enc, 1)) ||
        !(hc->qdec_out = open_own(hc, &dec, 1)))
        hc_fail(hc, SL__H3_INTERNAL_ERROR, "cannot open the control and QPACK streams");
}

static h3_conn *hc_of(sl__wt_server *w, sl_conn *c)
{
    h3_conn *hc = sl_conn_data(c);
    if (hc)
        return hc;
    hc = w_calloc(w, 1, sizeof *hc);
    if (!hc)
        goto fail;
    hc->w = w;
    hc->c = c;
    if (nghttp3_qpack_encoder_new(&hc->enc, 0, &w->nmem) != 0 ||
        nghttp3_qpack_decoder_new(&hc->dec, 0, 0, &w->nmem) != 0) {
        nghttp3_qpack_encoder_del(hc->enc);
        w_free(w, hc);
        goto fail;
    }
    sl_conn_set_data(c, hc);
    tq_add(hc, H3_IDLE_MS);
    return hc;
fail:
    sl_conn_close(c, SL__H3_INTERNAL_ERROR, "out of memory");
    return NULL;
}

/* Pending QPACK decoder instructions (none without a dynamic table, but
 * the decoder decides) go out on our decoder stream. */
static void flush_decoder_stream(h3_conn *hc)
{
    size_t n = nghttp3_qpack_decoder_get_decoder_streamlen(hc->dec);
    if (n == 0 || !hc->qdec_out)
        return;
    uint8_t *p = w_alloc(hc->w, n);
    if (!p) {
        hc_fail(hc, SL__H3_INTERNAL_ERROR, "out of memory");
        return;
    }
    nghttp3_buf b = {p, p + n, p, p};
    nghttp3_qpack_decoder_write_decoder(hc->dec, &b);
    write_all(hc->qdec_out->s, p, (size_t)(b.last - b.pos));
    w_free(hc->w, p);
}

/* ------------------------------------------------------------- sessions */

static wt_session *find_session(h3_conn *hc, uint64_t id)
{
    for (wt_session *ss = hc->sessions; ss; ss = ss->next)
        if (ss->id == id)
            return ss;
    return NULL;
}

/* The session ended while its connection lives: abort its streams, and
 * report (streams, then the session) from the timer. */
static void reset_streams(wt_session *ss)
{
    for (h3_stream *hs = ss->streams; hs; hs = hs->snext) {
        if (hs->s) {
            sl_stream_reset(hs->s, SL__WT_SESSION_GONE);
            sl_stream_stop_sending(hs->s, SL__WT_SESSION_GONE);
        }
    }
}

static void session_end(wt_session *ss, const sl_close_info *why)
{
    if (!ss->open)
        return;
    ss->open = false;
    ss->why = *why;
    snprintf(ss->reason, sizeof ss->reason, "%s", why->reason ? why->reason : "");
    ss->why.reason = ss->reason;
    /* When we close with a capsule, the streams are reset when the session
     * is reaped, after the capsule left (reap_ready). */
    if (!ss->capsule_sent)
        reset_streams(ss);
    ss->reap_by = uv_now(ss->w->loop) + CAPSULE_WAIT_MS;
    reap_push(ss);
}

/* Report a session's end to the application and free it. */
static void session_finish(wt_session *ss)
{
    sl__wt_server *w = ss->w;
    const sl_transport_callbacks *cb = ucb(w);
    reap_remove(ss);
    ss->open = false;
    if (ss->capsule_sent)
        reset_streams(ss);
    while (ss->streams) {
        h3_stream *hs = ss->streams;
        hs_unlink_session(hs);
        if (hs->user) {
            hs->user = false;
            if (cb->on_stream_closed)
                cb->on_stream_closed(&hs->wt, uud(w));
        }
    }
    if (cb->on_conn_closed)
        cb->on_conn_closed(&ss->base, &ss->why, uud(w));
    h3_conn *hc = ss->hc;
    if (hc) {
        if (ss->prev)
            ss->prev->next = ss->next;
        else
            hc->sessions = ss->next;
        if (ss->next)
            ss->next->prev = ss->prev;
        hc->nsessions--;
        if (hc->nsessions == 0 && !hc->failed && !hc->dying)
            tq_add(hc, H3_LINGER_MS);
    }
    if (ss->connect)
        ss->connect->owner = NULL;
    w_free(w, ss);
}

static void peer_closed_session(wt_session *ss, uint32_t code, const uint8_t *reason, size_t rlen)
{
    char r[SL__WT_CLOSE_REASON_MAX + 1];
    memcpy(r, reason, rlen);
    r[rlen] = 0;
    sl_close_info why = {.err = SL_OK, .by_peer = true, .app = true, .code = code, .reason = r};
    /* Answer with our FIN (the draft's orderly close), nothing more. */
    if (ss->connect && ss->connect->s)
        sl_stream_finish(ss->connect->s);
    session_end(ss, &why);
}

/* A bad capsule, or a frame the CONNECT stream may not carry: a stream
 * error that ends only this session. */
static void connect_fail(h3_stream *hs, uint64_t code, const char *reason)
{
    wt_session *ss = hs->owner;
    hs_fail(hs, code);
    if (ss) {
        sl_close_info why = {.err = SL_ERR_PROTO, .code = code, .reason = reason};
        session_end(ss, &why);
    }
}

/* ------------------------------------------------------- WT stream input */

/* The preamble named session `sid`: make hs a WebTransport stream of it. */
static void attach(h3_stream *hs, uint64_t sid)
{
    h3_conn *hc = hs->hc;
    if (!sl__wt_session_id_valid(sid)) {
        hc_fail(hc, SL__H3_ID_ERROR, "WebTransport session id is not a client bidi stream");
        return;
    }
    wt_session *ss = find_session(hc, sid);
    if (!ss || !ss->open) {
        /* Unknown (or gone) session: we do not buffer streams for
         * sessions that may come later; refuse this one. */
        hs_fail(hs, SL__WT_BUFFERED_STREAM_REJECTED);
        return;
    }
    hs->kind = HS_WT;
    hs->sess = ss;
    hs->snext = ss->streams;
    if (ss->streams)
        ss->streams->sprev = hs;
    ss->streams = hs;
    ss->nstreams++;
    hs->user = true;
    hs->wt.c = &ss->base;
    hs->wt.id = sl_stream_id(hs->s);
    hs->wt.prio = (uint8_t)sl_stream_prio(hs->s);
    hs->wt.ud = NULL;
    if (ucb(hc->w)->on_stream_open)
        ucb(hc->w)->on_stream_open(&hs->wt, uud(hc->w));
}

static void wt_input(h3_stream *hs, const uint8_t *p, size_t len, bool fin)
{
    const sl_transport_callbacks *cb = ucb(hs->hc->w);
    if (!hs->user || !hs->sess || !hs->sess->open || !cb->on_stream_data) {
        if (len && hs->s)
            sl_stream_consume(hs->s, len);
        return;
    }
    if (len || fin)
        cb->on_stream_data(&hs->wt, p, len, fin, uud(hs->hc->w));
}

/* ------------------------------------------------------ control streams */

/* Keep the payload of the frame (or capsule) now starting, len bytes. */
static bool keep_start(sl__wt_server *w, uint8_t **buf, size_t *blen, size_t *bcap, uint64_t len)
{
    w_free(w, *buf);
    *buf = NULL;
    *blen = 0;
    *bcap = (size_t)len;
    if (len == 0)
        return true;
    *buf = w_alloc(w, (size_t)len);
    return *buf != NULL;
}

static void keep_data(uint8_t *buf, size_t *blen, size_t bcap, const uint8_t *p, size_t n)
{
    if (buf && *blen + n <= bcap) {
        memcpy(buf + *blen, p, n);
        *blen += n;
    }
}

/* A frame that carries one varint and nothing else (GOAWAY, MAX_PUSH_ID,
 * CANCEL_PUSH). */
static bool one_varint(const uint8_t *p, size_t len)
{
    uint64_t v;
    return len > 0 && sl__varint_get(p, len, &v) == len;
}

static void control_frame_end(h3_stream *hs, uint64_t type)
{
    h3_conn *hc = hs->hc;
    if (type == SL__H3_FRAME_SETTINGS) {
        const char *why = NULL;
        uint64_t e = sl__h3_settings_parse(hs->buf, hs->blen, &hc->peer, &why);
        if (e) {
            hc_fail(hc, e, why);
            return;
        }
        hc->settings_rx = true;
    } else if (!one_varint(hs->buf, hs->blen)) {
        hc_fail(hc, SL__H3_FRAME_ERROR, "GOAWAY/MAX_PUSH_ID/CANCEL_PUSH is not one varint");
    }
    /* GOAWAY from a client only limits pushes, which we never make. */
}

static void control_input(h3_stream *hs, const uint8_t *p, size_t len, bool fin)
{
    h3_conn *hc = hs->hc;
    sl__wt_server *w = hc->w;
    for (;;) {
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(&hs->fr, p, len, &ev);
        p += n;
        len -= n;
        if (ev.kind == SL__TLV_NONE)
            break;
        if (ev.kind == SL__TLV_HEADER) {
            uint64_t t = ev.type;
            hs->keep = false;
            if (!hc->settings_rx && hs->first && t != SL__H3_FRAME_SETTINGS) {
                hc_fail(hc, SL__H3_MISSING_SETTINGS, "the control stream must start with SETTINGS");
                return;
            }
            hs->first = false;
            if (t == SL__H3_FRAME_SETTINGS) {
                if (hc->settings_rx) {
                    hc_fail(hc, SL__H3_FRAME_UNEXPECTED, "second SETTINGS frame");
                    return;
                }
                if (ev.len > SL__H3_SETTINGS_MAX) {
                    hc_fail(hc, SL__H3_EXCESSIVE_LOAD, "SETTINGS frame too large");
                    return;
                }
                hs->keep = true;
            } else if (t == SL__H3_FRAME_GOAWAY || t == SL__H3_FRAME_MAX_PUSH_ID ||
                       t == SL__H3_FRAME_CANCEL_PUSH) {
                if (ev.len > SL__H3_SMALL_FRAME_MAX) {
                    hc_fail(hc, SL__H3_FRAME_ERROR, "control frame too large");
                    return;
                }
                hs->keep = true;
            } else if (t == SL__H3_FRAME_DATA || t == SL__H3_FRAME_HEADERS ||
                       t == SL__H3_FRAME_PUSH_PROMISE || t == SL__H3_FRAME_WT_STREAM ||
                       sl__h3_frame_reserved_h2(t)) {
                hc_fail(hc, SL__H3_FRAME_UNEXPECTED, "frame not allowed on the control stream");
                return;
            }
            if (hs->keep && !keep_start(w, &hs->buf, &hs->blen, &hs->bcap, ev.len)) {
                hc_fail(hc, SL__H3_INTERNAL_ERROR, "out of memory");
                return;
            }
        } else if (ev.kind == SL__TLV_PAYLOAD) {
            if (hs->keep)
                keep_data(hs->buf, &hs->blen, hs->bcap, ev.data, ev.n);
        } else if (ev.kind == SL__TLV_END && hs->keep) {
            control_frame_end(hs, ev.type);
            hs->keep = false;
            if (hc->failed)
                return;
        }
    }
    if (fin)
        hc_fail(hc, SL__H3_CLOSED_CRITICAL_STREAM, "the peer closed its control stream");
}

static void qpack_input(h3_stream *hs, const uint8_t *p, size_t len, bool fin)
{
    h3_conn *hc = hs->hc;
    if (hs->kind == HS_QPACK_ENC) {
        if (len && nghttp3_qpack_decoder_read_encoder(hc->dec, p, len) != (nghttp3_ssize)len) {
            hc_fail(hc, SL__QPACK_ENCODER_STREAM_ERROR, "bad QPACK encoder stream");
            return;
        }
        flush_decoder_stream(hc);
    } else if (len && nghttp3_qpack_encoder_read_decoder(hc->enc, p, len) != (nghttp3_ssize)len) {
        hc_fail(hc, SL__QPACK_DECODER_STREAM_ERROR, "bad QPACK decoder stream");
        return;
    }
    if (fin)
        hc_fail(hc, SL__H3_CLOSED_CRITICAL_STREAM, "the peer closed a QPACK stream");
}

/* The type of a peer's uni stream arrived. */
static void uni_typed(h3_stream *hs)
{
    h3_conn *hc = hs->hc;
    uint64_t type = hs->uni.type;
    h3_stream **slot = NULL;
    int kind = HS_DISCARD;
    switch (type) {
    case SL__H3_UNI_CONTROL:
        slot = &hc->ctrl_in;
        kind = HS_CONTROL;
        break;
    case SL__H3_UNI_QPACK_ENCODER:
        slot = &hc->qenc_in;
        kind = HS_QPACK_ENC;
        break;
    case SL__H3_UNI_QPACK_DECODER:
        slot = &hc->qdec_in;
        kind = HS_QPACK_DEC;
        break;
    case SL__H3_UNI_PUSH:
        hc_fail(hc, SL__H3_STREAM_CREATION_ERROR, "a client opened a push stream");
        return;
    case SL__H3_UNI_WT:
        attach(hs, hs->uni.session);
        return;
    default:
        /* Unknown or GREASE type: abort reading (RFC 9114 6.2). */
        if (hs->s)
            sl_stream_stop_sending(hs->s, SL__H3_STREAM_CREATION_ERROR);
        hs->kind = HS_DISCARD;
        return;
    }
    if (*slot) {
        hc_fail(hc, SL__H3_STREAM_CREATION_ERROR, "a second control or QPACK stream");
        return;
    }
    *slot = hs;
    hs->kind = (uint8_t)kind;
    hs->first = true;
    sl__tlv_rd_init(&hs->fr);
}

/* ------------------------------------------------------------- requests */

/* Write a complete response: HEADERS, a text body unless HEAD, FIN. */
static void respond(h3_stream *hs, int status, const char *body, bool head)
{
    h3_conn *hc = hs->hc;
    char st[8], cl[24];
    snprintf(st, sizeof st, "%d", status);
    size_t blen = body ? strlen(body) : 0;
    snprintf(cl, sizeof cl, "%zu", blen);
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(n), (const uint8_t *)(v), strlen(n), strlen(v), NGHTTP3_NV_FLAG_NONE     \
    }
    const nghttp3_nv nva[] = {NV(":status", st), NV("content-type", "text/plain; charset=utf-8"),
                              NV("content-length", cl), NV("server", "starling")};
#undef NV
    uint8_t *f;
    size_t flen;
    if (sl__qpack_headers_frame(hc->enc, &hc->w->nmem, sl_stream_id(hs->s), nva, 4, &f, &flen)) {
        hs_fail(hs, SL__H3_INTERNAL_ERROR);
        return;
    }
    write_all(hs->s, f, flen);
    w_free(hc->w, f);
    if (blen && !head) {
        uint8_t h[16];
        write_all(hs->s, h, sl__h3_frame_hdr(h, SL__H3_FRAME_DATA, blen));
        write_all(hs->s, body, blen);
    }
    sl_stream_finish(hs->s);
    hs->kind = HS_DISCARD; /* the rest of the request does not matter */
}

static void refuse(h3_stream *hs, const sl__h3_request *req, int status, const char *reason)
{
    sl__wt_server *w = hs->hc->w;
    w->n_refused++;
    if (w->on_refused)
        w->on_refused(req->path, req->origin, status, reason, w->ud);
    char body[160];
    snprintf(body, sizeof body, "starling: %s\n", reason);
    respond(hs, status, body, false);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The `token` parameter of a query, percent-decoded into out (cap bytes).
 * Returns false if it is malformed or too long; "" if absent. */
static bool query_token(const char *q, char *out, size_t cap)
{
    out[0] = 0;
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        if (n >= 6 && memcmp(q, "token=", 6) == 0) {
            size_t o = 0;
            for (size_t i = 6; i < n; i++) {
                char c = q[i];
                if (c == '%') {
                    int a = i + 2 < n ? hexval(q[i + 1]) : -1, b = a >= 0 ? hexval(q[i + 2]) : -1;
                    if (a < 0 || b < 0 || (a == 0 && b == 0))
                        return false;
                    c = (char)(a * 16 + b);
                    i += 2;
                }
                if (o + 1 >= cap)
                    return false;
                out[o++] = c;
            }
            out[o] = 0;
            return true;
        }
        q = end ? end + 1 : NULL;
    }
    return true;
}

static bool token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static bool origin_allowed(const sl__wt_server *w, const sl__h3_request *req)
{
    if (w->n_origins == 0)
        return true;
    if (!(req->seen & SL__REQ_ORIGIN))
        return false;
    for (size_t i = 0; i < w->n_origins; i++)
        if (strcmp(w->origins[i], "*") == 0 || strcmp(w->origins[i], req->origin) == 0)
            return true;
    return false;
}

static wt_session *session_new(h3_conn *hc, h3_stream *hs, const sl__h3_request *req, size_t plen,
                               const char *token)
{
    sl__wt_server *w = hc->w;
    size_t tl = strlen(token), ol = strlen(req->origin), al = strlen(req->authority);
    wt_session *ss = w_calloc(w, 1, sizeof *ss + plen + tl + ol + al + 4);
    if (!ss)
        return NULL;
    char *p = ss->strs;
    ss->path = p;
    memcpy(p, req->path, plen);
    p += plen;
    *p++ = 0;
    ss->token = p;
    memcpy(p, token, tl + 1);
    p += tl + 1;
    ss->origin = p;
    memcpy(p, req->origin, ol + 1);
    p += ol + 1;
    ss->authority = p;
    memcpy(p, req->authority, al + 1);
    ss->base.ops = &wt_ops;
    ss->base.t = w->t;
    ss->base.client = false;
    snprintf(ss->base.alpn, sizeof ss->base.alpn, "%s", SL__WT_ALPN);
    ss->w = w;
    ss->hc = hc;
    ss->connect = hs;
    ss->id = (uint64_t)sl_stream_id(hs->s);
    ss->open = true;
    ss->next = hc->sessions;
    if (hc->sessions)
        hc->sessions->prev = ss;
    hc->sessions = ss;
    hc->nsessions++;
    return ss;
}

/* An extended CONNECT: check it, then accept (200, no FIN) or refuse. */
static void connect_request(h3_stream *hs, const sl__h3_request *req)
{
    h3_conn *hc = hs->hc;
    sl__wt_server *w = hc->w;
    if (strcmp(req->protocol, "webtransport") != 0 &&
        strcmp(req->protocol, "webtransport-h3") != 0) {
        refuse(hs, req, 400, "unsupported :protocol (want webtransport)");
        return;
    }
    if (!hc->ready) {
        refuse(hs, req, 425, "WebTransport sessions are not accepted in 0-RTT");
        return;
    }
    const char *q = strchr(req->path, '?');
    size_t plen = q ? (size_t)(q - req->path) : strlen(req->path);
    if (plen != strlen(w->path) || memcmp(req->path, w->path, plen) != 0) {
        refuse(hs, req, 404, "no WebTransport endpoint at this path");
        return;
    }
    if (!origin_allowed(w, req)) {
        refuse(hs, req, 403,
               (req->seen & SL__REQ_ORIGIN) ? "origin not allowed" : "origin missing");
        return;
    }
    char token[TOKEN_MAX];
    bool ok = query_token(q ? q + 1 : NULL, token, sizeof token);
    if (ok)
        ok = w->check_token ? w->check_token(token, req->origin, w->ud)
                            : token_equal(token, w->token);
    if (!ok) {
        refuse(hs, req, 403, "invalid or missing token");
        return;
    }
    if (hc->nsessions >= w->max_sessions) {
        refuse(hs, req, 429, "too many WebTransport sessions on this connection");
        return;
    }
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (const uint8_t *)(n), (const uint8_t *)(v), strlen(n), strlen(v), NGHTTP3_NV_FLAG_NONE     \
    }
    const nghttp3_nv nva[] = {NV(":status", "200"), NV("sec-webtransport-http3-draft", "draft02"),
                              NV("server", "starling")};
#undef NV
    uint8_t *f;
    size_t flen;
    wt_session *ss = NULL;
    if (sl__qpack_headers_frame(hc->enc, &w->nmem, sl_stream_id(hs->s), nva, 3, &f, &flen) == 0) {
        ss = session_new(hc, hs, req, plen, token);
        if (!ss)
            w_free(w, f);
    }
    if (!ss) {
        refuse(hs, req, 503, "out of memory");
        return;
    }
    write_all(hs->s, f, flen);
    w_free(w, f);
    hs->kind = HS_CONNECT;
    hs->owner = ss;
    sl__tlv_rd_init(&hs->cap);
    w->n_sessions++;
    tq_remove(hc);
    if (ucb(w)->on_conn_ready)
        ucb(w)->on_conn_ready(&ss->base, uud(w));
}

static void handle_request(h3_stream *hs)
{
    h3_conn *hc = hs->hc;
    sl__wt_server *w = hc->w;
    sl__h3_request *req = w_alloc(w, sizeof *req);
    if (!req) {
        hs_fail(hs, SL__H3_INTERNAL_ERROR);
        return;
    }
    uint64_t e =
        sl__h3_request_decode(hc->dec, &w->nmem, sl_stream_id(hs->s), hs->buf, hs->blen, req);
    w_free(w, hs->buf);
    hs->buf = NULL;
    hs->blen = hs->bcap = 0;
    hs->headers = true;
    if (e) {
        hc_fail(hc, e, e == SL__H3_INTERNAL_ERROR ? "out of memory" : "QPACK: bad header block");
        goto out;
    }
    flush_decoder_stream(hc);
    if (req->malformed) {
        hs_fail(hs, SL__H3_MESSAGE_ERROR);
        goto out;
    }
    if (req->too_large) {
        respond(hs, 431, "starling: request header fields too large\n", false);
        goto out;
    }
    bool head = strcmp(req->method, "HEAD") == 0;
    if (strcmp(req->method, "CONNECT") == 0) {
        if (req->seen & SL__REQ_PROTOCOL)
            connect_request(hs, req);
        else
            refuse(hs, req, 405, "plain CONNECT is not supported");
    } else if (head || strcmp(req->method, "GET") == 0) {
        w->n_requests++;
        const char *q = strchr(req->path, '?');
        size_t plen = q ? (size_t)(q - req->path) : strlen(req->path);
        if (w->health && plen == strlen(w->health) && memcmp(req->path, w->health, plen) == 0)
            respond(hs, 200, "ok\n", head);
        else
            respond(hs, 404, "starling: not found\n", head);
    } else {
        w->n_requests++;
        respond(hs, 405, "starling: method not allowed\n", false);
    }
out:
    w_free(w, req);
}

/* Capsules in the DATA payload of a CONNECT stream. */
static void capsule_input(h3_stream *hs, const uint8_t *p, size_t len)
{
    sl__wt_server *w = hs->hc->w;
    for (;;) {
        wt_session *ss = hs->owner;
        if (!ss || !ss->open || hs->kind != HS_CONNECT)
            return; /* after the close capsule nothing counts */
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(&hs->cap, p, len, &ev);
        p += n;
        len -= n;
        if (ev.kind == SL__TLV_NONE)
            return;
        if (ev.kind == SL__TLV_HEADER) {
            hs->ckeep = false;
            if (ev.type == SL__CAPSULE_CLOSE_WT_SESSION) {
                if (ev.len < 4 || ev.len > 4 + SL__WT_CLOSE_REASON_MAX) {
                    connect_fail(hs, SL__H3_MESSAGE_ERROR, "malformed close capsule");
                    return;
                }
                if (!keep_start(w, &hs->cbuf, &hs->cblen, &hs->cbcap, ev.len)) {
                    connect_fail(hs, SL__H3_INTERNAL_ERROR, "out of memory");
                    return;
                }
                hs->ckeep = true;
            }
            /* DRAIN, DATAGRAM, GREASE and unknown capsules are skipped. */
        } else if (ev.kind == SL__TLV_PAYLOAD) {
            if (hs->ckeep)
                keep_data(hs->cbuf, &hs->cblen, hs->cbcap, ev.data, ev.n);
        } else if (ev.kind == SL__TLV_END && hs->ckeep) {
            uint32_t code;
            const uint8_t *r;
            size_t rl;
            hs->ckeep = false;
            if (sl__wt_close_parse(hs->cbuf, hs->cblen, &code, &r, &rl) != 0) {
                connect_fail(hs, SL__H3_MESSAGE_ERROR, "malformed close capsule");
                return;
            }
            peer_closed_session(ss, code, r, rl);
            return;
        }
    }
}

/* A frame starts on a request or CONNECT stream. */
static void request_frame_start(h3_stream *hs, const sl__tlv_ev *ev)
{
    h3_conn *hc = hs->hc;
    uint64_t t = ev->type;
    hs->keep = false;
    if (t == SL__H3_FRAME_SETTINGS || t == SL__H3_FRAME_GOAWAY || t == SL__H3_FRAME_MAX_PUSH_ID ||
        t == SL__H3_FRAME_CANCEL_PUSH || t == SL__H3_FRAME_PUSH_PROMISE ||
        t == SL__H3_FRAME_WT_STREAM || sl__h3_frame_reserved_h2(t)) {
        hc_fail(hc, SL__H3_FRAME_UNEXPECTED, "frame not allowed on a request stream");
        return;
    }
    if (t == SL__H3_FRAME_HEADERS && hs->kind == HS_REQUEST && !hs->headers) {
        if (ev->len > H3_HEADERS_MAX) {
            respond(hs, 431, "starling: request header fields too large\n", false);
            return;
        }
        if (!keep_start(hc->w, &hs->buf, &hs->blen, &hs->bcap, ev->len)) {
            hs_fail(hs, SL__H3_INTERNAL_ERROR);
            return;
        }
        hs->keep = true;
    } else if (t == SL__H3_FRAME_DATA && hs->kind == HS_REQUEST && !hs->headers) {
        hc_fail(hc, SL__H3_FRAME_UNEXPECTED, "DATA before HEADERS");
    }
    /* Other frames (a body, trailers, unknown types) are skipped. */
}

static void request_fin(h3_stream *hs)
{
    h3_conn *hc = hs->hc;
    if (!sl__tlv_rd_idle(&hs->fr)) {
        hc_fail(hc, SL__H3_FRAME_ERROR, "a request stream ended inside a frame");
        return;
    }
    if (hs->kind == HS_REQUEST) {
        if (!hs->headers)
            hs_fail(hs, SL__H3_REQUEST_INCOMPLETE);
        return;
    }
    wt_session *ss = hs->owner;
    if (ss && ss->open)
        peer_closed_session(ss, 0, (const uint8_t *)"", 0); /* FIN alone: code 0 */
}

/* Frames on a client bidi stream. Returns the bytes taken: all of them,
 * unless the stream turned out to be a WebTransport stream (0x41 first),
 * whose remaining bytes are data. */
static size_t request_input(h3_stream *hs, const uint8_t *p, size_t len, bool fin)
{
    h3_conn *hc = hs->hc;
    size_t used = 0;
    for (;;) {
        sl__tlv_ev ev;
        size_t n = sl__tlv_read(&hs->fr, p + used, len - used, &ev);
        used += n;
        if (ev.kind == SL__TLV_NONE)
            break;
        if (ev.kind == SL__TLV_HEADER) {
            if (ev.type == SL__H3_FRAME_WT_STREAM && hs->kind == HS_REQUEST && hs->first) {
                hs->pre_in = used;
                attach(hs, ev.len);
                return used;
            }
            hs->first = false;
            request_frame_start(hs, &ev);
        } else if (ev.kind == SL__TLV_PAYLOAD) {
            if (hs->keep)
                keep_data(hs->buf, &hs->blen, hs->bcap, ev.data, ev.n);
            else if (hs->kind == HS_CONNECT && ev.type == SL__H3_FRAME_DATA)
                capsule_input(hs, ev.data, ev.n);
        } else if (ev.kind == SL__TLV_END && hs->keep) {
            hs->keep = false;
            handle_request(hs);
        }
        if (hc->failed || (hs->kind != HS_REQUEST && hs->kind != HS_CONNECT))
            return len;
    }
    if (fin)
        request_fin(hs);
    return used;
}

/* ------------------------------------------------------ transport events */

/* Everything that arrives on a stream of an "h3" connection. Bytes the
 * protocol takes (stream types, frames, preambles) are consumed here; the
 * data of WebTransport streams is the application's to consume. */
static void stream_input(h3_stream *hs, const uint8_t *p, size_t len, bool fin)
{
    h3_conn *hc = hs->hc;
    sl_stream *s = hs->s;
    size_t own = 0;
    /* Bounded: each turn either ends or changes hs->kind away from
     * UNI_HEAD/REQUEST, which it never returns to. */
    for (;;) {
        if (hc->failed) {
            own += len;
            break;
        }
        if (hs->kind == HS_UNI_HEAD) {
            bool done;
            size_t n = sl__h3_uni_head(&hs->uni, p, len, &done);
            p += n;
            len -= n;
            own += n;
            if (!done)
                break; /* (a stream that ends before its type is ignored) */
            hs->pre_in = own;
            uni_typed(hs);
            continue;
        }
        if (hs->kind == HS_REQUEST || hs->kind == HS_CONNECT) {
            int before = hs->kind;
            size_t n = request_input(hs, p, len, fin);
            p += n;
            len -= n;
            own += n;
            if (hs->kind != before && hs->kind != HS_CONNECT && len)
                continue; /* now a WebTransport stream (or discarded) */
            if (hs->kind == HS_WT && len == 0 && fin)
                continue; /* the FIN belongs to the WebTransport stream */
            break;
        }
        if (hs->kind == HS_WT) {
            if (own && s)
                sl_stream_consume(s, own);
            wt_input(hs, p, len, fin);
            return;
        }
        own += len;
        if (hs->kind == HS_CONTROL)
            control_input(hs, p, len, fin);
        else if (hs->kind == HS_QPACK_ENC || hs->kind == HS_QPACK_DEC)
            qpack_input(hs, p, len, fin);
        break; /* HS_DISCARD, HS_OWN: consumed */
    }
    if (own && s)
        sl_stream_consume(s, own);
}

static void ev_conn_ready(sl_conn *c, void *ud)
{
    h3_conn *hc = hc_of(ud, c);
    if (!hc)
        return;
    hc->ready = true;
    open_own_streams(hc);
}

static void ev_stream_open(sl_stream *s, void *ud)
{
    h3_conn *hc = hc_of(ud, sl_stream_conn(s));
    if (!hc)
        return;
    bool uni = (sl_stream_id(s) & 2) != 0;
    h3_stream *hs = hs_new(hc, s, uni ? HS_UNI_HEAD : HS_REQUEST);
    if (!hs) {
        sl_stream_stop_sending(s, SL__H3_INTERNAL_ERROR);
        sl_stream_reset(s, SL__H3_INTERNAL_ERROR);
        return;
    }
    sl_stream_set_data(s, hs);
}

static void ev_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    h3_stream *hs = sl_stream_data(s);
    if (!hs) {
        sl_stream_consume(s, len);
        return;
    }
    stream_input(hs, data, len, fin);
}

static void ev_stream_writable(sl_stream *s, void *ud)
{
    h3_stream *hs = sl_stream_data(s);
    sl__wt_server *w = ud;
    if (hs && hs->kind == HS_WT && hs->user && ucb(w)->on_stream_writable)
        ucb(w)->on_stream_writable(&hs->wt, uud(w));
}

static void ev_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    h3_stream *hs = sl_stream_data(s);
    sl__wt_server *w = ud;
    if (!hs)
        return;
    if (hs->kind == HS_WT) {
        uint32_t e = 0;
        (void)sl__wt_code_from_h3(code, &e);
        if (hs->user && ucb(w)->on_stream_reset)
            ucb(w)->on_stream_reset(&hs->wt, e, uud(w));
    } else if (hs == hs->hc->ctrl_in || hs == hs->hc->qenc_in || hs == hs->hc->qdec_in) {
        hc_fail(hs->hc, SL__H3_CLOSED_CRITICAL_STREAM, "the peer reset a critical stream");
    } else if (hs->kind == HS_CONNECT && hs->owner && hs->owner->open) {
        sl_close_info why = {.err = SL_ERR_CLOSED,
                             .by_peer = true,
                             .code = code,
                             .reason = "the peer reset the CONNECT stream"};
        if (hs->s)
            sl_stream_finish(hs->s);
        session_end(hs->owner, &why);
        hs->kind = HS_DISCARD;
    }
}

static void ev_stream_stop_sending(sl_stream *s, uint64_t code, void *ud)
{
    h3_stream *hs = sl_stream_data(s);
    sl__wt_server *w = ud;
    if (!hs)
        return;
    if (hs->kind == HS_WT) {
        if (hs->user && ucb(w)->on_stream_stop_sending)
            ucb(w)->on_stream_stop_sending(&hs->wt, 0, uud(w)); /* code unknown (ngtcp2 1.11) */
    } else if (hs == hs->hc->ctrl_out || hs == hs->hc->qenc_out || hs == hs->hc->qdec_out) {
        hc_fail(hs->hc, SL__H3_CLOSED_CRITICAL_STREAM, "the peer stopped a critical stream");
    } else if (hs->kind == HS_CONNECT && hs->owner && hs->owner->open) {
        sl_close_info why = {.err = SL_ERR_CLOSED,
                             .by_peer = true,
                             .reason = "the peer stopped reading the CONNECT stream"};
        session_end(hs->owner, &why);
    }
}

static void ev_stream_closed(sl_stream *s, void *ud)
{
    h3_stream *hs = sl_stream_data(s);
    sl__wt_server *w = ud;
    if (!hs)
        return;
    hs->s = NULL;
    if (hs->kind == HS_WT && hs->user) {
        hs->user = false;
        hs_unlink_session(hs);
        if (ucb(w)->on_stream_closed)
            ucb(w)->on_stream_closed(&hs->wt, uud(w));
    }
    hs_free(hs);
}

static void ev_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    sl__wt_server *w = ud;
    h3_conn *hc = hc_of(w, c);
    uint64_t sid;
    size_t n = hc ? sl__h3_dgram_parse(data, len, &sid) : 0;
    if (n == 0)
        return; /* no prefix: dropped, as datagrams may be */
    wt_session *ss = find_session(hc, sid);
    if (!ss || !ss->open)
        return;
    ss->dgrams_recv++;
    if (ucb(w)->on_datagram)
        ucb(w)->on_datagram(&ss->base, data + n, len - n, uud(w));
}

static void ev_conn_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    sl__wt_server *w = ud;
    h3_conn *hc = sl_conn_data(c);
    if (!hc)
        return;
    hc->dying = true;
    tq_remove(hc);
    /* Sessions still open end now, for the connection's reason (or ours, if
     * we closed it for an HTTP/3 error); ended ones keep theirs. */
    for (wt_session *ss = hc->sessions; ss; ss = ss->next) {
        if (!ss->open)
            continue;
        ss->open = false;
        ss->why = hc->failed ? hc->fail_why : *why;
        snprintf(ss->reason, sizeof ss->reason, "%s", ss->why.reason ? ss->why.reason : "");
        ss->why.reason = ss->reason;
    }
    while (hc->sessions)
        session_finish(hc->sessions);
    while (hc->streams) /* normally none: the transport closed them first */
        hs_free(hc->streams);
    nghttp3_qpack_encoder_del(hc->enc);
    nghttp3_qpack_decoder_del(hc->dec);
    sl_conn_set_data(c, NULL);
    w_free(w, hc);
    arm(w);
}

const sl_transport_callbacks sl__wt_conn_callbacks = {
    .on_conn_ready = ev_conn_ready,
    .on_conn_closed = ev_conn_closed,
    .on_stream_open = ev_stream_open,
    .on_stream_data = ev_stream_data,
    .on_stream_writable = ev_stream_writable,
    .on_stream_reset = ev_stream_reset,
    .on_stream_stop_sending = ev_stream_stop_sending,
    .on_stream_closed = ev_stream_closed,
    .on_datagram = ev_datagram,
};

/* ------------------------------------------------------ session ops */

static bool session_live(const wt_session *ss)
{
    return ss->open && ss->hc && !ss->hc->failed && !ss->hc->dying;
}

static int ws_conn_close(sl_conn *bc, uint64_t code, const char *reason)
{
    wt_session *ss = (wt_session *)bc;
    if (!ss->open)
        return SL_ERR_CLOSED;
    if (code > UINT32_MAX)
        return SL_ERR_INVAL;
    if (ss->connect && ss->connect->s && session_live(ss)) {
        uint8_t f[SL__WT_CLOSE_FRAME_MAX];
        size_t n = sl__wt_close_frame(f, (uint32_t)code, reason, reason ? strlen(reason) : 0);
        write_all(ss->connect->s, f, n);
        sl_stream_finish(ss->connect->s);
        ss->capsule_sent = true;
    }
    sl_close_info why = {.err = SL_OK, .app = true, .code = code, .reason = reason};
    session_end(ss, &why);
    return SL_OK;
}

static int ws_conn_stats(const sl_conn *bc, sl_conn_stats *out)
{
    const wt_session *ss = (const wt_session *)bc;
    memset(out, 0, sizeof *out);
    if (ss->hc)
        sl_conn_stats_get(ss->hc->c, out);
    out->streams_open = ss->nstreams;
    out->datagrams_sent = ss->dgrams_sent;
    out->datagrams_recv = ss->dgrams_recv;
    return SL_OK;
}

static bool peer_datagrams(const h3_conn *hc)
{
    return !hc->settings_rx || hc->peer.h3_datagram || hc->peer.h3_datagram_draft04;
}

static size_t ws_datagram_max(const sl_conn *bc)
{
    const wt_session *ss = (const wt_session *)bc;
    if (!session_live(ss) || !peer_datagrams(ss->hc))
        return 0;
    size_t raw = sl_datagram_max(ss->hc->c);
    size_t pre = sl__varint_len(ss->id >> 2);
    return raw > pre ? raw - pre : 0;
}

static int ws_datagram_send(sl_conn *bc, const void *data, size_t len)
{
    wt_session *ss = (wt_session *)bc;
    if (!session_live(ss))
        return SL_ERR_CLOSED;
    size_t max = ws_datagram_max(bc);
    if (max == 0)
        return SL_ERR_UNSUPPORTED;
    if (len > max)
        return SL_ERR_MSG_TOO_BIG;
    uint8_t buf[DGRAM_BUF];
    size_t pre = sl__h3_dgram_prefix(buf, ss->id);
    if (pre + len > sizeof buf)
        return SL_ERR_MSG_TOO_BIG;
    if (len)
        memcpy(buf + pre, data, len);
    int rc = sl_datagram_send(ss->hc->c, buf, pre + len);
    if (rc == SL_OK)
        ss->dgrams_sent++;
    return rc;
}

static int ws_stream_open(sl_conn *bc, bool bidi, int prio, void *ud, sl_stream **out)
{
    wt_session *ss = (wt_session *)bc;
    if (!session_live(ss))
        return SL_ERR_CLOSED;
    h3_conn *hc = ss->hc;
    h3_stream *hs = hs_new(hc, NULL, HS_DISCARD);
    if (!hs)
        return SL_ERR_NOMEM;
    sl_stream *s;
    int rc = sl_stream_open(hc->c, bidi, prio, hs, &s);
    if (rc != SL_OK) {
        hs_free(hs);
        return rc;
    }
    hs->s = s;
    uint8_t pre[16];
    size_t n = sl__varint_put(pre, bidi ? SL__H3_FRAME_WT_STREAM : SL__H3_UNI_WT);
    n += sl__varint_put(pre + n, ss->id);
    rc = sl_stream_write(s, pre, n, NULL);
    if (rc != SL_OK) {
        sl_stream_reset(s, SL__H3_INTERNAL_ERROR); /* hs goes when s closes */
        return rc;
    }
    hs->pre_out = n;
    hs->kind = HS_WT;
    hs->sess = ss;
    hs->snext = ss->streams;
    if (ss->streams)
        ss->streams->sprev = hs;
    ss->streams = hs;
    ss->nstreams++;
    hs->user = true;
    hs->wt.c = &ss->base;
    hs->wt.ud = ud;
    hs->wt.id = sl_stream_id(s);
    hs->wt.prio = (uint8_t)prio;
    *out = &hs->wt;
    return SL_OK;
}

/* The QUIC stream under a WebTransport stream the application may still
 * write to, or NULL. */
static sl_stream *ws_raw(const sl_stream *bs)
{
    const h3_stream *hs = (const h3_stream *)bs;
    return hs->s && hs->sess && hs->sess->open ? hs->s : NULL;
}

static int ws_stream_write(sl_stream *bs, const void *data, size_t len, size_t *buffered)
{
    sl_stream *s = ws_raw(bs);
    return s ? sl_stream_write(s, data, len, buffered) : SL_ERR_CLOSED;
}

static int ws_stream_finish(sl_stream *bs)
{
    sl_stream *s = ws_raw(bs);
    return s ? sl_stream_finish(s) : SL_ERR_CLOSED;
}

static int ws_stream_reset(sl_stream *bs, uint64_t code)
{
    if (code > UINT32_MAX)
        return SL_ERR_INVAL;
    sl_stream *s = ws_raw(bs);
    return s ? sl_stream_reset(s, sl__wt_code_to_h3((uint32_t)code)) : SL_ERR_CLOSED;
}

static int ws_stream_stop_sending(sl_stream *bs, uint64_t code)
{
    if (code > UINT32_MAX)
        return SL_ERR_INVAL;
    sl_stream *s = ws_raw(bs);
    return s ? sl_stream_stop_sending(s, sl__wt_code_to_h3((uint32_t)code)) : SL_ERR_CLOSED;
}

static int ws_stream_consume(sl_stream *bs, size_t n)
{
    /* Credit may be returned even after the session ended. */
    const h3_stream *hs = (const h3_stream *)bs;
    return hs->s ? sl_stream_consume(hs->s, n) : SL_ERR_CLOSED;
}

static int ws_stream_set_prio(sl_stream *bs, int prio)
{
    h3_stream *hs = (h3_stream *)bs;
    hs->wt.prio = (uint8_t)prio;
    return hs->s ? sl_stream_set_prio(hs->s, prio) : SL_OK;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static int ws_stream_stats(const sl_stream *bs, sl_stream_stats *out)
{
    const h3_stream *hs = (const h3_stream *)bs;
    memset(out, 0, sizeof *out);
    if (!hs->s)
        return SL_OK;
    int rc = sl_stream_stats_get(hs->s, out);
    /* The preambles are ours, not the application's bytes. */
    out->bytes_written = sub0(out->bytes_written, hs->pre_out);
    out->bytes_sent = sub0(out->bytes_sent, hs->pre_out);
    out->bytes_acked = sub0(out->bytes_acked, hs->pre_out);
    out->buffered = (size_t)sub0(out->buffered, out->bytes_acked ? 0 : hs->pre_out);
    out->bytes_recv = sub0(out->bytes_recv, hs->pre_in);
    out->bytes_consumed = sub0(out->bytes_consumed, hs->pre_in);
    return rc;
}

static int ws_stream_allow_early(sl_stream *bs)
{
    (void)bs;
    return SL_OK; /* sessions exist only after the handshake */
}

static const sl_transport_ops wt_ops = {
    .name = "webtransport",
    .conn_close = ws_conn_close,
    .conn_stats = ws_conn_stats,
    .stream_open = ws_stream_open,
    .stream_write = ws_stream_write,
    .stream_finish = ws_stream_finish,
    .stream_reset = ws_stream_reset,
    .stream_stop_sending = ws_stream_stop_sending,
    .stream_consume = ws_stream_consume,
    .stream_set_prio = ws_stream_set_prio,
    .stream_stats = ws_stream_stats,
    .stream_allow_early = ws_stream_allow_early,
    .datagram_send = ws_datagram_send,
    .datagram_max = ws_datagram_max,
};

int sl_conn_wt_info(const sl_conn *c, sl_wt_info *out)
{
    if (!c || !out || c->ops != &wt_ops)
        return SL_ERR_INVAL;
    const wt_session *ss = (const wt_session *)c;
    out->path = ss->path;
    out->token = ss->token;
    out->origin = ss->origin;
    out->authority = ss->authority;
    out->session_id = ss->id;
    return SL_OK;
}

/* -------------------------------------------------------------- server */

int sl__wt_settings_check(const sl_webtransport_settings *s)
{
    if (!s || !s->path || s->path[0] != '/' || strchr(s->path, '?'))
        return SL_ERR_INVAL;
    if (!s->check_token && (!s->token || strlen(s->token) >= TOKEN_MAX))
        return SL_ERR_INVAL;
    if (s->health_path && s->health_path[0] != '/')
        return SL_ERR_INVAL;
    if (s->n_origins && !s->origins)
        return SL_ERR_INVAL;
    for (size_t i = 0; i < s->n_origins; i++)
        if (!s->origins[i])
            return SL_ERR_INVAL;
    return SL_OK;
}

int sl__wt_server_new(sl_transport *t, uv_loop_t *loop, const sl_webtransport_settings *s,
                      sl__wt_server **out)
{
    int rc = sl__wt_settings_check(s);
    if (rc)
        return rc;
    sl__wt_server *w = t->mem.calloc(1, sizeof *w, t->mem.ud);
    if (!w)
        return SL_ERR_NOMEM;
    w->t = t;
    w->loop = loop;
    w->mem = t->mem;
    w->nmem = (nghttp3_mem){&w->mem, nm_malloc, nm_free, nm_calloc, nm_realloc};
    w->check_token = s->check_token;
    w->on_refused = s->on_refused;
    w->ud = s->ud;
    w->max_sessions = s->max_sessions ? s->max_sessions : DEFAULT_MAX_SESSIONS;
    w->n_origins = s->n_origins;
    if (!(w->path = w_strdup(w, s->path)) ||
        (s->health_path && !(w->health = w_strdup(w, s->health_path))) ||
        (s->token && !(w->token = w_strdup(w, s->token))) ||
        (s->n_origins && !(w->origins = w_calloc(w, s->n_origins, sizeof(char *)))))
        goto nomem;
    for (size_t i = 0; i < s->n_origins; i++)
        if (!(w->origins[i] = w_strdup(w, s->origins[i])))
            goto nomem;
    *out = w;
    return SL_OK;
nomem:
    sl__wt_server_del(w);
    return SL_ERR_NOMEM;
}

static void timer_closed(uv_handle_t *h)
{
    sl__wt_server *w = h->data;
    if (w->done)
        w->done(w->done_arg);
}

bool sl__wt_server_close(sl__wt_server *w, void (*done)(void *), void *arg)
{
    if (!w || w->closing)
        return false;
    w->closing = true;
    while (w->reap_head) /* normally none: every connection is gone */
        session_finish(w->reap_head);
    if (!w->timer_init)
        return false;
    w->done = done;
    w->done_arg = arg;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, timer_closed);
    return true;
}

void sl__wt_server_del(sl__wt_server *w)
{
    if (!w)
        return;
    w_free(w, w->path);
    w_free(w, w->health);
    w_free(w, w->token);
    if (w->origins)
        for (size_t i = 0; i < w->n_origins; i++)
            w_free(w, w->origins[i]);
    w_free(w, w->origins);
    w_free(w, w);
}

void sl__wt_server_stats(const sl__wt_server *w, sl_transport_stats *out)
{
    if (!w)
        return;
    out->wt_sessions = w->n_sessions;
    out->wt_refused = w->n_refused;
    out->h3_requests = w->n_requests;
    out->h3_errors = w->n_errors;
}
