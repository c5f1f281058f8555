/*
 * transport_web.c: the transport of the browser build, a client of a
 * node's WebTransport server over the browser's `WebTransport` object.
 *
 * It implements the ops table of include/starling/transport.h, so the
 * generic sl_conn_* / sl_stream_* / sl_datagram_* functions (and the
 * cluster layer above them) work on a page as on a native node. The
 * browser does the QUIC, TLS and HTTP/3; library_webtransport.js drives
 * its promises and streams, and this file keeps the state the contract
 * needs: handles, buffered-byte accounting and limits, the consumer's
 * flow control, and the rule that a closed callback never runs inside the
 * call that caused it.
 *
 * Connections. sl_transport_connect opens a session to
 * https://host:port<path>[?&]token=<token> (path and token from
 * settings.webtransport), pinning the certificate with
 * serverCertificateHashes under SL_VERIFY_PIN_CERT, the browser's Web PKI
 * otherwise. on_conn_ready when `ready` resolves; on_conn_closed once, when
 * `closed` settles, or at once (in a later macrotask) after sl_conn_close
 * or sl_transport_close.
 *
 * Streams. Their handles are usable at once; JavaScript queues writes
 * until the browser's stream exists. Stream ids are synthetic (the browser
 * does not show QUIC's) but keep QUIC's two low bits: bit 0 set for
 * server-opened streams, bit 1 for unidirectional ones. Written bytes
 * count as buffered until the browser's writer took them (its write
 * promise resolved); per-stream and per-connection limits and
 * on_stream_writable follow quic.c's rules exactly.
 *
 * Flow control is the consumer's. JavaScript reads a stream only when
 * asked (sl__wt_stream_read), and we ask only when every byte delivered so
 * far has been consumed (sl_stream_consume). A read takes at most
 * SL__WT_READ_CHUNK bytes (a BYOB read into a buffer that big), so at most
 * that many bytes per stream sit delivered but unconsumed, and nothing
 * else is taken from the browser: what the server sends beyond that stays
 * in the browser's stream buffers, which stop extending QUIC credit when
 * full, and the server's writes back up.
 *
 * Lifetimes. Streams and connections that end are put on a reap queue;
 * one macrotask per burst (sl__wt_post) reports them, streams before their
 * connection, frees them, and finally reports a transport close. So every
 * handle stays valid until its closed callback returned, and no callback
 * runs inside the user's call that caused it.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/mem.h"
#include "transport/transport_int.h"
#include "wasm/transport_web.h"

#define REASON_MAX 1024 /* bytes of a session close reason (the draft's cap) */
#define URL_MAX 4096

struct w_transport {
    struct sl_transport base;    /* first: the generic functions see this */
    char *path, *token;          /* copies of settings.webtransport's */
    bool pinned;                 /* SL_VERIFY_PIN_CERT: base.set.tls.pin */
    w_conn *conns;               /* every connection not yet freed */
    void *reap_head, *reap_tail; /* w_stream / w_conn, linked by reap_next */
    bool posted;                 /* a reap macrotask is pending */
    bool closing, close_done;
    void (*on_closed)(sl_transport *, void *);
    void *close_ud;
    sl_transport_stats st;
};

/* What is on the reap queue: both start with this. */
typedef struct reapable {
    void *reap_next;
    bool is_conn;
} reapable;

struct w_conn {
    struct sl_conn base; /* first */
    reapable r;
    w_transport *t;
    w_conn *prev, *next;             /* t->conns */
    w_stream *streams;               /* every stream not yet freed */
    w_stream *want_head, *want_tail; /* refused for the connection's buffer, FIFO */
    int js;                          /* the session's JS handle */
    bool ready;
    bool dead; /* ended: on_conn_closed is due (reap queue) */
    bool kick; /* wake want_* from the reap macrotask */
    int why_err;
    bool why_by_peer, why_app;
    uint64_t why_code;
    char *why_reason;                       /* owned, or NULL */
    size_t buffered;                        /* bytes of all streams the browser has not taken */
    uint64_t next_local[2], next_remote[2]; /* [bidi=0, uni=1] */
    sl_conn_stats st;
};

struct w_stream {
    struct sl_stream base; /* first */
    reapable r;
    w_conn *c;
    w_stream *prev, *next; /* c->streams */
    w_stream *want_prev, *want_next;
    bool want_conn; /* on c->want_* */
    bool want_own;  /* refused for its own buffer */
    int js;
    bool wr_done;    /* sending side over (finished, reset, stopped) */
    bool wr_dropped; /* reset or stopped: later "sent" reports are stale */
    bool fin_req;    /* sl_stream_finish called */
    bool rd_done;    /* receiving side over (FIN, reset, stop_sending) */
    bool reading;    /* a read was asked and not answered */
    bool dead;       /* on_stream_closed is due */
    size_t buffered;
    sl_stream_stats st;
};

static const sl_transport_ops web_ops;
static void maybe_read(w_stream *s);
static const uint8_t empty[1];

/* ------------------------------------------------------------- memory */

static void *t_alloc(w_transport *t, size_t n)
{
    return t->base.mem.malloc(n, t->base.mem.ud);
}
static void t_free(w_transport *t, void *p)
{
    if (p)
        t->base.mem.free(p, t->base.mem.ud);
}

static char *t_strdup(w_transport *t, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = t_alloc(t, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void *sl__wt_alloc(w_transport *t, size_t n)
{
    return t_alloc(t, n ? n : 1);
}

/* ---------------------------------------------------------- reaping */

static void post(w_transport *t)
{
    if (!t->posted) {
        t->posted = true;
        sl__wt_post(t);
    }
}

static void reap_add(w_transport *t, reapable *r)
{
    r->reap_next = NULL;
    if (t->reap_tail)
        ((reapable *)t->reap_tail)->reap_next = r;
    else
        t->reap_head = r;
    t->reap_tail = r;
    post(t);
}

static void want_del(w_conn *c, w_stream *s)
{
    if (!s->want_conn)
        return;
    if (s->want_prev)
        s->want_prev->want_next = s->want_next;
    else
        c->want_head = s->want_next;
    if (s->want_next)
        s->want_next->want_prev = s->want_prev;
    else
        c->want_tail = s->want_prev;
    s->want_prev = s->want_next = NULL;
    s->want_conn = false;
}

static void want_add(w_conn *c, w_stream *s)
{
    if (s->want_conn)
        return;
    s->want_conn = true;
    s->want_next = NULL;
    s->want_prev = c->want_tail;
    if (c->want_tail)
        c->want_tail->want_next = s;
    else
        c->want_head = s;
    c->want_tail = s;
}

/* Drop what the stream has buffered from its connection's count. */
static void drop_buffered(w_stream *s)
{
    s->c->buffered -= s->buffered;
    s->buffered = 0;
    s->st.buffered = 0;
    if (s->c->want_head) {
        s->c->kick = true; /* the room may wake the FIFO: later, not inside a user call */
        post(s->c->t);
    }
}

/* The stream ends (both directions over, or its connection ended). */
static void stream_kill(w_stream *s)
{
    if (s->dead)
        return;
    s->dead = true;
    s->rd_done = s->wr_done = true;
    want_del(s->c, s);
    s->want_own = false;
    s->c->st.streams_open--;
    reap_add(s->c->t, &s->r);
}

static void maybe_close(w_stream *s)
{
    if (s->rd_done && s->wr_done)
        stream_kill(s);
}

/* The connection ends: its streams first, then it, from the reap queue. */
static void conn_kill(w_conn *c, int err, bool by_peer, bool app, uint64_t code, char *reason)
{
    if (c->dead) {
        t_free(c->t, reason);
        return;
    }
    c->dead = true;
    c->why_err = err;
    c->why_by_peer = by_peer;
    c->why_app = app;
    c->why_code = code;
    c->why_reason = reason;
    for (w_stream *s = c->streams; s; s = s->next)
        stream_kill(s);
    if (c->ready)
        c->t->st.conns--;
    reap_add(c->t, &c->r);
}

static void stream_free(w_stream *s)
{
    w_conn *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->buffered -= s->buffered;
    if (s->js)
        sl__wt_stream_forget(s->js);
    t_free(c->t, s);
}

static void conn_free(w_conn *c)
{
    w_transport *t = c->t;
    while (c->streams)
        stream_free(c->streams);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->js > 0)
        sl__wt_session_forget(c->js);
    t_free(t, c->why_reason);
    t_free(t, c);
}

/*
 * on_stream_writable for refused streams, as quic.c does it: a stream
 * refused for its own buffer once that drops below the low-water mark; the
 * streams refused for the connection's buffer in order while the
 * connection has room for another low-water's worth.
 */
static void notify_writable(w_conn *c, w_stream *s)
{
    const sl_transport_settings *set = &c->t->base.set;
    const sl_transport_callbacks *cb = &set->cb;
    if (s && s->want_own && !s->dead && s->buffered < set->low_water) {
        s->want_own = false;
        if (cb->on_stream_writable)
            cb->on_stream_writable(&s->base, set->ud);
    }
    for (w_stream *last = c->want_tail;
         c->want_head && !c->dead && c->buffered + set->low_water <= set->max_conn_buffer;) {
        w_stream *w = c->want_head;
        bool was_last = w == last;
        want_del(c, w);
        if (cb->on_stream_writable)
            cb->on_stream_writable(&w->base, set->ud);
        if (was_last)
            break;
    }
}

void sl__wt_on_post(w_transport *t)
{
    const sl_transport_settings *set = &t->base.set;
    t->posted = false;
    for (w_conn *c = t->conns; c; c = c->next) {
        if (c->kick) {
            c->kick = false;
            notify_writable(c, NULL);
        }
    }
    /* Bounded by what is queued: each object is reported once (dead is
     * set before it is queued and never cleared). */
    while (t->reap_head) {
        reapable *r = t->reap_head;
        t->reap_head = r->reap_next;
        if (!t->reap_head)
            t->reap_tail = NULL;
        if (r->is_conn) {
            w_conn *c = (w_conn *)((char *)r - offsetof(w_conn, r));
            sl_close_info why = {.err = c->why_err,
                                 .by_peer = c->why_by_peer,
                                 .app = c->why_app,
                                 .code = c->why_code,
                                 .reason = c->why_reason ? c->why_reason : ""};
            if (set->cb.on_conn_closed)
                set->cb.on_conn_closed(&c->base, &why, set->ud);
            conn_free(c);
        } else {
            w_stream *s = (w_stream *)((char *)r - offsetof(w_stream, r));
            if (set->cb.on_stream_closed)
                set->cb.on_stream_closed(&s->base, set->ud);
            stream_free(s);
        }
    }
    if (t->closing && !t->conns && !t->close_done) {
        t->close_done = true;
        if (t->on_closed)
            t->on_closed(&t->base, t->close_ud);
    }
}

/* ------------------------------------------------------ connections */

/* Percent-encode everything but RFC 3986's unreserved characters. */
static size_t pct_encode(char *out, size_t cap, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (plain) {
            if (n + 1 < cap)
                out[n] = (char)*p;
            n++;
        } else {
            if (n + 3 < cap) {
                out[n] = '%';
                out[n + 1] = hex[*p >> 4];
                out[n + 2] = hex[*p & 15];
            }
            n += 3;
        }
    }
    if (cap)
        out[n < cap ? n : cap - 1] = 0;
    return n;
}

/* Append `s` to url[0..n) (URL_MAX bytes); the length it would have. */
static size_t cat(char *url, size_t n, const char *s)
{
    size_t l = strlen(s);
    if (n + l < URL_MAX) {
        memcpy(url + n, s, l + 1);
    }
    return n + l;
}

static int w_connect(sl_transport *bt, const char *host, uint16_t port, void *conn_ud,
                     sl_conn **out)
{
    w_transport *t = (w_transport *)bt;
    if (!host || !host[0] || !port || !out || strpbrk(host, "/?#@ "))
        return SL_ERR_INVAL;
    if (t->closing)
        return SL_ERR_CLOSED;
    char url[URL_MAX];
    char portbuf[8];
    char *p = portbuf + sizeof portbuf;
    *--p = 0;
    for (unsigned v = port; v; v /= 10)
        *--p = (char)('0' + v % 10);
    /* An IPv6 literal goes in brackets. */
    bool v6 = strchr(host, ':') && host[0] != '[';
    size_t n = 0;
    n = cat(url, n, "https://");
    n = cat(url, n, v6 ? "[" : "");
    n = cat(url, n, host);
    n = cat(url, n, v6 ? "]:" : ":");
    n = cat(url, n, p);
    n = cat(url, n, t->path);
    if (t->token) {
        n = cat(url, n, strchr(t->path, '?') ? "&token=" : "?token=");
        if (n < sizeof url)
            n += pct_encode(url + n, sizeof url - n, t->token);
    }
    if (n >= sizeof url)
        return SL_ERR_INVAL;
    w_conn *c = t_alloc(t, sizeof *c);
    if (!c)
        return SL_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    c->base.ops = &web_ops;
    c->base.t = &t->base;
    c->base.ud = conn_ud;
    c->base.client = true;
    memcpy(c->base.alpn, "h3", 3);
    c->r.is_conn = true;
    c->t = t;
    int js = sl__wt_connect(t, c, url, t->pinned ? t->base.set.tls.pin : NULL);
    if (js <= 0) {
        t_free(t, c);
        return js == -2 ? SL_ERR_UNSUPPORTED : SL_ERR_INVAL;
    }
    c->js = js;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    *out = &c->base;
    return SL_OK;
}

void sl__wt_on_ready(w_conn *c)
{
    if (c->dead || c->ready)
        return;
    c->ready = true;
    c->t->st.conns++;
    c->t->st.wt_sessions++;
    const sl_transport_settings *set = &c->t->base.set;
    if (set->cb.on_conn_ready)
        set->cb.on_conn_ready(&c->base, set->ud);
}

void sl__wt_on_closed(w_conn *c, int kind, uint32_t code, char *reason)
{
    if (c->dead) {
        t_free(c->t, reason);
        return;
    }
    if (!c->ready)
        c->t->st.wt_refused++;
    if (kind == 0)
        conn_kill(c, SL_OK, true, true, code, reason);
    else
        conn_kill(c, SL_ERR_NOCONN, false, false, 0, reason);
}

static int w_conn_close(sl_conn *bc, uint64_t code, const char *reason)
{
    w_conn *c = (w_conn *)bc;
    if (c->dead)
        return SL_ERR_CLOSED;
    if (code > UINT32_MAX)
        return SL_ERR_INVAL;
    size_t len = reason ? strlen(reason) : 0;
    if (len > REASON_MAX) {
        len = REASON_MAX;
        while (len && ((unsigned char)reason[len] & 0xC0) == 0x80)
            len--; /* never cut a UTF-8 sequence */
    }
    char *copy = t_alloc(c->t, len + 1);
    if (copy) {
        if (len)
            memcpy(copy, reason, len);
        copy[len] = 0;
    }
    sl__wt_session_close(c->js, (uint32_t)code, copy ? copy : "", copy ? len : 0);
    conn_kill(c, SL_OK, false, true, code, copy);
    return SL_OK;
}

static int w_conn_stats(const sl_conn *bc, sl_conn_stats *out)
{
    const w_conn *c = (const w_conn *)bc;
    *out = c->st;
    return SL_OK;
}

static size_t w_datagram_max(const sl_conn *bc)
{
    const w_conn *c = (const w_conn *)bc;
    return c->dead ? 0 : sl__wt_datagram_max(c->js);
}

static int w_datagram_send(sl_conn *bc, const void *data, size_t len)
{
    w_conn *c = (w_conn *)bc;
    if (c->dead)
        return SL_ERR_CLOSED;
    if (len && !data)
        return SL_ERR_INVAL;
    size_t max = sl__wt_datagram_max(c->js);
    if (c->ready && max == 0)
        return SL_ERR_UNSUPPORTED;
    if (max && len > max)
        return SL_ERR_MSG_TOO_BIG;
    int rc = sl__wt_datagram_send(c->js, data ? data : empty, len);
    if (rc == -1)
        return SL_ERR_AGAIN;
    if (rc)
        return SL_ERR_CLOSED;
    c->st.datagrams_sent++;
    c->st.bytes_sent += len;
    return SL_OK;
}

void sl__wt_on_datagram(w_conn *c, uint8_t *data, size_t len)
{
    w_transport *t = c->t;
    if (!c->dead) {
        const sl_transport_settings *set = &t->base.set;
        c->st.datagrams_recv++;
        c->st.bytes_recv += len;
        if (set->cb.on_datagram)
            set->cb.on_datagram(&c->base, data ? data : empty, len, set->ud);
    }
    t_free(t, data);
}

/* ---------------------------------------------------------- streams */

/* sendOrder from a priority class: higher goes first, CRITICAL highest. */
static int send_order(int prio)
{
    return (SL_PRIO_COUNT - 1 - prio) * 1000;
}

static w_stream *stream_new(w_conn *c, bool bidi, bool local, int prio, void *ud)
{
    w_stream *s = t_alloc(c->t, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->c = c;
    s->base.c = &c->base;
    s->base.ud = ud;
    s->base.prio = (uint8_t)prio;
    uint64_t *ctr = local ? &c->next_local[!bidi] : &c->next_remote[!bidi];
    s->base.id = (int64_t)((*ctr)++ << 2 | (local ? 0u : 1u) | (bidi ? 0u : 2u));
    if (!bidi) {
        s->rd_done = local;  /* ours: nothing to read */
        s->wr_done = !local; /* theirs: nothing to write */
    }
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->st.streams_open++;
    return s;
}

static int w_stream_open(sl_conn *bc, bool bidi, int prio, void *ud, sl_stream **out)
{
    w_conn *c = (w_conn *)bc;
    if (c->dead)
        return SL_ERR_CLOSED;
    if (!out)
        return SL_ERR_INVAL;
    w_stream *s = stream_new(c, bidi, true, prio, ud);
    if (!s)
        return SL_ERR_NOMEM;
    s->js = sl__wt_stream_open(c->js, s, bidi, send_order(prio));
    maybe_read(s); /* answered once the browser's stream exists */
    *out = &s->base;
    return SL_OK;
}

w_stream *sl__wt_on_stream_open(w_conn *c, int js, int bidi)
{
    if (c->dead)
        return NULL;
    const sl_transport_settings *set = &c->t->base.set;
    w_stream *s = stream_new(c, bidi != 0, false, SL_PRIO_NORMAL, NULL);
    if (!s)
        return NULL;
    s->js = js;
    if (set->cb.on_stream_open)
        set->cb.on_stream_open(&s->base, set->ud);
    maybe_read(s);
    return s;
}

/* Ask for the next chunk if everything delivered has been consumed. */
static void maybe_read(w_stream *s)
{
    if (!s->rd_done && !s->reading && !s->dead && s->st.bytes_consumed >= s->st.bytes_recv) {
        s->reading = true;
        sl__wt_stream_read(s->js);
    }
}

void sl__wt_on_data(w_stream *s, uint8_t *data, size_t len, int fin)
{
    w_transport *t = s->c->t;
    s->reading = false;
    if (!s->dead && !s->rd_done) {
        const sl_transport_settings *set = &t->base.set;
        s->st.bytes_recv += len;
        s->c->st.bytes_recv += len;
        if (fin)
            s->rd_done = true;
        if (set->cb.on_stream_data)
            set->cb.on_stream_data(&s->base, data ? data : empty, len, fin != 0, set->ud);
        if (fin)
            maybe_close(s);
        else
            maybe_read(s);
    }
    t_free(t, data);
}

void sl__wt_on_read_end(w_stream *s, int kind, uint32_t code)
{
    s->reading = false;
    if (s->dead || s->rd_done)
        return;
    s->rd_done = true;
    const sl_transport_settings *set = &s->c->t->base.set;
    s->c->st.resets_recv += kind == 1;
    if (set->cb.on_stream_reset)
        set->cb.on_stream_reset(&s->base, kind == 1 ? code : 0, set->ud);
    maybe_close(s);
}

static int w_stream_consume(sl_stream *bs, size_t n)
{
    w_stream *s = (w_stream *)bs;
    if (s->dead || s->c->dead)
        return SL_ERR_CLOSED;
    s->st.bytes_consumed += n;
    if (s->st.bytes_consumed > s->st.bytes_recv)
        s->st.bytes_consumed = s->st.bytes_recv;
    maybe_read(s);
    return SL_OK;
}

static int w_stream_write(sl_stream *bs, const void *data, size_t len, size_t *buffered)
{
    w_stream *s = (w_stream *)bs;
    w_conn *c = s->c;
    const sl_transport_settings *set = &c->t->base.set;
    if (c->dead || s->dead || s->wr_done || s->fin_req)
        return SL_ERR_CLOSED;
    if (len &&
        (s->buffered + len > set->max_stream_buffer || c->buffered + len > set->max_conn_buffer)) {
        if (s->buffered + len > set->max_stream_buffer)
            s->want_own = true;
        else
            want_add(c, s);
        if (buffered)
            *buffered = s->buffered;
        return SL_ERR_AGAIN;
    }
    if (len && sl__wt_stream_write(s->js, data, len) != 0)
        return SL_ERR_NOMEM;
    s->buffered += len;
    c->buffered += len;
    s->st.bytes_written += len;
    s->st.buffered = s->buffered;
    if (buffered)
        *buffered = s->buffered;
    return SL_OK;
}

void sl__wt_on_sent(w_stream *s, size_t n)
{
    w_conn *c = s->c;
    if (s->dead || s->wr_dropped || n > s->buffered)
        return;
    s->buffered -= n;
    c->buffered -= n;
    s->st.buffered = s->buffered;
    s->st.bytes_sent += n;
    c->st.bytes_sent += n;
    notify_writable(c, s);
}

void sl__wt_on_write_end(w_stream *s, int kind, uint32_t code)
{
    if (s->dead || s->wr_done)
        return;
    s->wr_done = true;
    if (kind != 0) {
        s->wr_dropped = true;
        drop_buffered(s);
        const sl_transport_settings *set = &s->c->t->base.set;
        s->c->st.resets_recv += kind == 1;
        if (set->cb.on_stream_stop_sending)
            set->cb.on_stream_stop_sending(&s->base, kind == 1 ? code : 0, set->ud);
    }
    maybe_close(s);
}

static int w_stream_finish(sl_stream *bs)
{
    w_stream *s = (w_stream *)bs;
    if (s->c->dead || s->dead || s->wr_done || s->fin_req)
        return SL_ERR_CLOSED;
    s->fin_req = true;
    sl__wt_stream_finish(s->js);
    return SL_OK;
}

static int w_stream_reset(sl_stream *bs, uint64_t code)
{
    w_stream *s = (w_stream *)bs;
    if (code > sl__wt_max_code())
        return SL_ERR_INVAL;
    if (s->c->dead || s->dead || s->wr_done)
        return SL_ERR_CLOSED;
    s->wr_done = s->wr_dropped = true;
    want_del(s->c, s);
    s->want_own = false;
    drop_buffered(s);
    sl__wt_stream_reset(s->js, (uint32_t)code);
    maybe_close(s);
    return SL_OK;
}

static int w_stream_stop_sending(sl_stream *bs, uint64_t code)
{
    w_stream *s = (w_stream *)bs;
    if (code > sl__wt_max_code())
        return SL_ERR_INVAL;
    if (s->c->dead || s->dead || s->rd_done)
        return SL_ERR_CLOSED;
    s->rd_done = true;
    sl__wt_stream_stop(s->js, (uint32_t)code);
    maybe_close(s);
    return SL_OK;
}

static int w_stream_set_prio(sl_stream *bs, int prio)
{
    w_stream *s = (w_stream *)bs;
    s->base.prio = (uint8_t)prio;
    if (!s->dead)
        sl__wt_stream_order(s->js, send_order(prio));
    return SL_OK;
}

static int w_stream_stats(const sl_stream *bs, sl_stream_stats *out)
{
    const w_stream *s = (const w_stream *)bs;
    *out = s->st;
    return SL_OK;
}

/* 0-RTT is the browser's business; nothing to mark. */
static int w_stream_allow_early(sl_stream *bs)
{
    return SL_OK;
}

/* --------------------------------------------------------- endpoint */

static int w_listen(sl_transport *t, const char *host, uint16_t port)
{
    return SL_ERR_UNSUPPORTED;
}
static int w_local_port(const sl_transport *t, uint16_t *port)
{
    return SL_ERR_INVAL;
}

static void w_close(sl_transport *bt, void (*on_closed)(sl_transport *, void *), void *ud)
{
    w_transport *t = (w_transport *)bt;
    if (t->closing)
        return;
    t->closing = true;
    t->on_closed = on_closed;
    t->close_ud = ud;
    for (w_conn *c = t->conns; c; c = c->next)
        if (!c->dead) {
            sl__wt_session_close(c->js, 0, "", 0);
            conn_kill(c, SL_OK, false, true, 0, NULL);
        }
    post(t); /* on_closed from a macrotask, even with nothing open */
}

static void w_del(sl_transport *bt)
{
    w_transport *t = (w_transport *)bt;
    if (!t)
        return;
    while (t->conns)
        conn_free(t->conns);
    sl__wt_transport_forget(t);
    t_free(t, t->path);
    t_free(t, t->token);
    sl_mem mem = t->base.mem;
    mem.free(t, mem.ud);
}

static int w_stats(const sl_transport *bt, sl_transport_stats *out)
{
    *out = ((const w_transport *)bt)->st;
    return SL_OK;
}

/* A page has no key of its own: its gateway assigns its node id. */
static int w_node_id(const sl_transport *t, uint64_t *out)
{
    return SL_ERR_NOTFOUND;
}

static const sl_transport_ops web_ops = {
    .name = "webtransport-browser",
    .listen = w_listen,
    .connect = w_connect,
    .local_port = w_local_port,
    .close = w_close,
    .del = w_del,
    .conn_close = w_conn_close,
    .conn_stats = w_conn_stats,
    .stream_open = w_stream_open,
    .stream_write = w_stream_write,
    .stream_finish = w_stream_finish,
    .stream_reset = w_stream_reset,
    .stream_stop_sending = w_stream_stop_sending,
    .stream_consume = w_stream_consume,
    .stream_set_prio = w_stream_set_prio,
    .stream_stats = w_stream_stats,
    .stream_allow_early = w_stream_allow_early,
    .stats = w_stats,
    .node_id = w_node_id,
    .datagram_send = w_datagram_send,
    .datagram_max = w_datagram_max,
};

int sl_web_transport_new(const sl_transport_settings *s, sl_transport **out)
{
    if (!s || !out || !s->webtransport || !s->webtransport->path || s->webtransport->path[0] != '/')
        return SL_ERR_INVAL;
    const sl_tls_settings *tls = &s->tls;
    /* What a page cannot do is refused, not quietly weakened: no SPKI pins
     * and no unverified mode in the WebTransport API, and no private CA. */
    if (tls->verify != SL_VERIFY_CA && tls->verify != SL_VERIFY_PIN_CERT)
        return SL_ERR_UNSUPPORTED;
    if (tls->verify == SL_VERIFY_CA && tls->ca_file)
        return SL_ERR_UNSUPPORTED;
    const char *tok = s->webtransport->token;
    if (strlen(s->webtransport->path) > URL_MAX / 2 || (tok && strlen(tok) > URL_MAX / 8))
        return SL_ERR_INVAL;
    sl_mem mem;
    sl__mem_resolve(s->mem, &mem);
    w_transport *t = mem.malloc(sizeof *t, mem.ud);
    if (!t)
        return SL_ERR_NOMEM;
    memset(t, 0, sizeof *t);
    t->base.ops = &web_ops;
    t->base.set = *s;
    t->base.set.webtransport = NULL; /* ours are the copies below */
    t->base.set.mem = NULL;
    t->base.mem = mem;
    t->pinned = tls->verify == SL_VERIFY_PIN_CERT;
    t->path = t_strdup(t, s->webtransport->path);
    t->token = tok && tok[0] ? t_strdup(t, tok) : NULL;
    if (!t->path || (tok && tok[0] && !t->token)) {
        t_free(t, t->path);
        t_free(t, t->token);
        mem.free(t, mem.ud);
        return SL_ERR_NOMEM;
    }
    *out = &t->base;
    return SL_OK;
}

/* The WebTransport server's session info and the certificate hash are
 * server-side things; a page's sessions have neither. */
int sl_conn_wt_info(const sl_conn *c, sl_wt_info *out)
{
    return SL_ERR_INVAL;
}
int sl_transport_cert_sha256(const sl_transport *t, uint8_t out[32])
{
    return SL_ERR_UNSUPPORTED;
}
