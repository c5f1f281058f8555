/*
 * quic_harness.c: endpoints on one libuv loop whose transport callbacks
 * record into per-connection and per-stream records, a watchdog-bounded
 * loop runner, and a teardown that proves everything was freed. See
 * quic_harness.h for the design.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "quic_harness.h"

/* ------------------------------------------------------------ records */

/* The record of connection `c` on `sd`, created on first sight (a server
 * connection's first callback). NULL when the table is full (counted). */
static qh_conn *conn_rec(qh_side *sd, sl_conn *c)
{
    qh_conn *r = sl_conn_data(c);
    if (r)
        return r;
    if (sd->nconns == QH_MAX_CONNS) {
        sd->overflow++;
        return NULL;
    }
    r = &sd->conns[sd->nconns++];
    memset(r, 0, sizeof *r);
    r->side = sd;
    r->c = c;
    sl_conn_set_data(c, r);
    return r;
}

static qh_stream *stream_new_rec(qh_side *sd)
{
    if (sd->nstreams == QH_MAX_STREAMS) {
        sd->overflow++;
        return NULL;
    }
    qh_stream *r = &sd->streams[sd->nstreams++];
    memset(r, 0, sizeof *r);
    r->side = sd;
    if (gnutls_hash_init(&r->h, GNUTLS_DIG_SHA256) != 0)
        r->h = NULL;
    return r;
}

/* The record of stream `s` on `sd`, created on first sight. */
static qh_stream *stream_rec(qh_side *sd, sl_stream *s)
{
    qh_stream *r = sl_stream_data(s);
    if (r)
        return r;
    r = stream_new_rec(sd);
    if (!r)
        return NULL;
    r->s = s;
    r->id = sl_stream_id(s);
    r->conn = conn_rec(sd, sl_stream_conn(s));
    sl_stream_set_data(s, r);
    return r;
}

/* ---------------------------------------------------------- callbacks */

static void cb_ready(sl_conn *c, void *ud)
{
    qh_side *sd = ud;
    sd->ready++;
    qh_conn *r = conn_rec(sd, c);
    if (!r)
        return;
    r->ready++;
    r->c = c;
    uint64_t id;
    if (sl_conn_peer_node_id(c, &id) == SL_OK) {
        r->has_peer_node = true;
        r->peer_node = id;
    }
    const char *alpn = sl_conn_alpn(c);
    snprintf(r->alpn, sizeof r->alpn, "%s", alpn ? alpn : "");
    if (sd->on_ready)
        sd->on_ready(r);
}

static void cb_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    qh_side *sd = ud;
    sd->closed++;
    qh_conn *r = conn_rec(sd, c);
    if (!r)
        return;
    r->closed++;
    r->why = *why;
    snprintf(r->reason, sizeof r->reason, "%s", why->reason ? why->reason : "");
    r->why.reason = r->reason;
    r->c = NULL;
    if (sd->on_closed)
        sd->on_closed(r);
}

static void cb_stream_open(sl_stream *s, void *ud)
{
    (void)stream_rec(ud, s);
}

static void cb_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    qh_side *sd = ud;
    qh_stream *r = stream_rec(sd, s);
    if (!r) {
        sl_stream_consume(s, len);
        return;
    }
    if (r->h && len)
        gnutls_hash(r->h, data, len);
    r->bytes += len;
    if (fin)
        r->fin = true;
    if (sd->consume)
        sl_stream_consume(s, len);
    else
        r->unconsumed += len;
    if (sd->on_data)
        sd->on_data(r, data, len, fin);
}

static void cb_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    qh_stream *r = stream_rec(ud, s);
    if (r) {
        r->reset = true;
        r->reset_code = code;
    }
}

static void cb_stream_stop(sl_stream *s, uint64_t code, void *ud)
{
    qh_stream *r = stream_rec(ud, s);
    if (r) {
        r->stopped = true;
        r->stop_code = code;
    }
}

static void cb_stream_closed(sl_stream *s, void *ud)
{
    qh_side *sd = ud;
    sd->streams_closed++;
    qh_stream *r = sl_stream_data(s);
    if (r) {
        r->closed = true;
        r->s = NULL;
    }
}

static void cb_writable(sl_stream *s, void *ud)
{
    qh_side *sd = ud;
    sd->writable++;
    qh_stream *r = stream_rec(sd, s);
    if (!r)
        return;
    r->writable++;
    if (sd->on_writable)
        sd->on_writable(r);
}

static void cb_dgram(sl_conn *c, const uint8_t *d, size_t len, void *ud)
{
    qh_conn *r = conn_rec(ud, c);
    if (r) {
        r->dgrams++;
        r->dgram_bytes += len;
        if (r->side->on_dgram)
            r->side->on_dgram(r, d, len);
    }
}

/* ------------------------------------------------------------- harness */

static void watchdog_cb(uv_timer_t *t)
{
    qh_harness *h = t->data;
    h->timed_out = true;
    uv_stop(&h->loop);
}

static void check_cb(uv_idle_t *i)
{
    qh_harness *h = i->data;
    if (h->done && h->done(h, h->done_arg))
        uv_stop(&h->loop);
}

/* The harness of the running test, until qh_finish; qh_teardown frees it
 * when a failed assertion left it behind. */
static qh_harness *current;

static void cleanup_quiet(qh_harness *h);

qh_harness *qh_new(void)
{
    if (current)
        cleanup_quiet(current);
    qh_harness *h = calloc(1, sizeof *h);
    current = h;
    assert_non_null(h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->watchdog);
    uv_idle_init(&h->loop, &h->check);
    h->watchdog.data = h;
    h->check.data = h;
    slt_mem_init(&h->mem);
    return h;
}

qh_side *qh_side_add(qh_harness *h, const char *name)
{
    assert_true(h->nsides < QH_MAX_SIDES);
    qh_side *sd = &h->sides[h->nsides++];
    sd->h = h;
    sd->name = name;
    sd->consume = true;
    return sd;
}

void qh_settings(qh_side *sd, sl_transport_settings *s)
{
    sl_transport_settings_default(s);
    s->loop = &sd->h->loop;
    s->mem = &sd->h->mem.hooks;
    s->ud = sd;
    s->cb.on_conn_ready = cb_ready;
    s->cb.on_conn_closed = cb_closed;
    s->cb.on_stream_open = cb_stream_open;
    s->cb.on_stream_data = cb_stream_data;
    s->cb.on_stream_writable = cb_writable;
    s->cb.on_stream_reset = cb_stream_reset;
    s->cb.on_stream_stop_sending = cb_stream_stop;
    s->cb.on_stream_closed = cb_stream_closed;
    s->cb.on_datagram = cb_dgram;
}

int qh_side_start(qh_side *sd, const sl_transport_settings *s)
{
    sl_transport *t = NULL;
    int rc = sl_quic_new(s, &t);
    if (rc == SL_OK)
        sd->t = t;
    return rc;
}

void qh_listen(qh_side *sd)
{
    assert_non_null(sd->t);
    SLT_OK(sl_transport_listen(sd->t, "127.0.0.1", 0));
    SLT_OK(sl_transport_local_port(sd->t, &sd->port));
    assert_true(sd->port != 0);
}

int qh_connect_rc(qh_side *sd, uint16_t port, qh_conn **out)
{
    assert_non_null(sd->t);
    assert_true(sd->nconns < QH_MAX_CONNS);
    qh_conn *r = &sd->conns[sd->nconns];
    memset(r, 0, sizeof *r);
    r->side = sd;
    sl_conn *c = NULL;
    int rc = sl_transport_connect(sd->t, "127.0.0.1", port, r, &c);
    if (rc != SL_OK)
        return rc;
    sd->nconns++;
    r->c = c;
    if (out)
        *out = r;
    return SL_OK;
}

qh_conn *qh_connect(qh_side *sd, uint16_t port)
{
    qh_conn *r = NULL;
    SLT_OK(qh_connect_rc(sd, port, &r));
    return r;
}

bool qh_run(qh_harness *h, bool (*done)(qh_harness *, void *), void *arg, uint64_t ms)
{
    h->done = done;
    h->done_arg = arg;
    h->timed_out = false;
    if (done && done(h, arg))
        return true;
    uv_timer_start(&h->watchdog, watchdog_cb, ms, 0);
    uv_idle_start(&h->check, check_cb);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_idle_stop(&h->check);
    uv_timer_stop(&h->watchdog);
    h->done = NULL;
    if (!done)
        return true;
    return done(h, arg);
}

static void transport_closed(sl_transport *t, void *ud)
{
    (void)t;
    (*(int *)ud)++;
}

void qh_finish(qh_harness *h)
{
    current = NULL;
    int want = 0, n = 0;
    for (int i = 0; i < h->nsides; i++)
        if (h->sides[i].t) {
            sl_transport_close(h->sides[i].t, transport_closed, &n);
            want++;
        }
    uv_close((uv_handle_t *)&h->watchdog, NULL);
    uv_close((uv_handle_t *)&h->check, NULL);
    /* Bounded: a transport that never reports closed fails below, it does
     * not hang (only its own handles keep the loop alive). */
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, want);
    int overflow = 0;
    for (int i = 0; i < h->nsides; i++) {
        qh_side *sd = &h->sides[i];
        if (sd->t)
            sl_transport_del(sd->t);
        sd->t = NULL;
        for (int k = 0; k < sd->nstreams; k++)
            if (sd->streams[k].h) {
                gnutls_hash_deinit(sd->streams[k].h, NULL);
                sd->streams[k].h = NULL;
            }
        overflow += sd->overflow;
    }
    assert_int_equal(uv_loop_close(&h->loop), 0);
    assert_int_equal(overflow, 0);
    if (h->mem.live != 0)
        print_error("quic harness: %zu blocks (%zu bytes) left allocated\n", h->mem.live,
                    h->mem.live_bytes);
    assert_int_equal(h->mem.live, 0);
    assert_int_equal(h->mem.bad_frees, 0);
    free(h);
}

/* qh_finish without assertions, for a harness a failed test left behind:
 * bounded, and leaks rather than hangs if a transport does not close. */
static void cleanup_quiet(qh_harness *h)
{
    current = NULL;
    int want = 0, n = 0;
    for (int i = 0; i < h->nsides; i++)
        if (h->sides[i].t) {
            sl_transport_close(h->sides[i].t, transport_closed, &n);
            want++;
        }
    if (!uv_is_closing((uv_handle_t *)&h->watchdog))
        uv_close((uv_handle_t *)&h->watchdog, NULL);
    if (!uv_is_closing((uv_handle_t *)&h->check))
        uv_close((uv_handle_t *)&h->check, NULL);
    for (int i = 0; i < 1000 && uv_run(&h->loop, UV_RUN_NOWAIT) != 0; i++)
        usleep(1000);
    if (n != want || uv_loop_close(&h->loop) != 0)
        return; /* leave it: freeing live handles would be worse */
    for (int i = 0; i < h->nsides; i++) {
        qh_side *sd = &h->sides[i];
        if (sd->t)
            sl_transport_del(sd->t);
        for (int k = 0; k < sd->nstreams; k++)
            if (sd->streams[k].h)
                gnutls_hash_deinit(sd->streams[k].h, NULL);
    }
    free(h);
}

int qh_teardown(void **state)
{
    (void)state;
    if (current)
        cleanup_quiet(current);
    return 0;
}

int qh_stream_open(qh_conn *c, bool bidi, int prio, qh_stream **out)
{
    assert_non_null(c->c);
    qh_side *sd = c->side;
    assert_true(sd->nstreams < QH_MAX_STREAMS);
    qh_stream *r = stream_new_rec(sd);
    sl_stream *s = NULL;
    int rc = sl_stream_open(c->c, bidi, prio, r, &s);
    if (rc != SL_OK) {
        /* Give the record back. */
        if (r->h)
            gnutls_hash_deinit(r->h, NULL);
        sd->nstreams--;
        return rc;
    }
    r->s = s;
    r->id = sl_stream_id(s);
    r->conn = c;
    r->local = true;
    if (out)
        *out = r;
    return SL_OK;
}

void qh_consume_all(qh_side *sd)
{
    for (int i = 0; i < sd->nstreams; i++) {
        qh_stream *r = &sd->streams[i];
        if (r->s && r->unconsumed) {
            sl_stream_consume(r->s, (size_t)r->unconsumed);
            r->unconsumed = 0;
        }
    }
}

/* ---------------------------------------------------------- predicates */

bool qh_until_ready(qh_harness *h, void *conn)
{
    return ((qh_conn *)conn)->ready > 0;
}
bool qh_until_closed(qh_harness *h, void *conn)
{
    return ((qh_conn *)conn)->closed > 0;
}
bool qh_until_settled(qh_harness *h, void *conn)
{
    const qh_conn *c = conn;
    return c->ready > 0 || c->closed > 0;
}
bool qh_until_fin(qh_harness *h, void *stream)
{
    return ((qh_stream *)stream)->fin;
}
bool qh_until_stream_closed(qh_harness *h, void *stream)
{
    return ((qh_stream *)stream)->closed;
}

/* ----------------------------------------------------------- transfers */

uint8_t *qh_pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed ? seed : 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

typedef struct xfer_wait {
    qh_side *peer;
    int from;   /* peer records before this index predate the transfer */
    int64_t id; /* stream id */
    qh_conn *c; /* sender's connection: fail fast if it closes */
    qh_stream *found;
} xfer_wait;

static bool xfer_done(qh_harness *h, void *arg)
{
    xfer_wait *w = arg;
    if (w->c->closed)
        return true;
    for (int i = w->from; i < w->peer->nstreams; i++) {
        qh_stream *r = &w->peer->streams[i];
        if (r->id == w->id && !r->local && r->fin) {
            w->found = r;
            return true;
        }
    }
    return false;
}

qh_stream *qh_transfer(qh_conn *c, qh_side *peer, size_t n, uint64_t ms)
{
    static uint32_t seed = 12345;
    uint8_t *data = qh_pattern(n, seed++);
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s));
    xfer_wait w = {.peer = peer, .from = peer->nstreams, .id = s->id, .c = c};
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < 65536 ? n - off : 65536;
        SLT_OK(sl_stream_write(s->s, data + off, k, NULL));
        off += k;
    }
    SLT_OK(sl_stream_finish(s->s));
    assert_true(qh_run(c->side->h, xfer_done, &w, ms));
    assert_int_equal(c->closed, 0);
    assert_non_null(w.found);
    assert_int_equal(w.found->bytes, n);
    uint8_t want[32], got[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, want);
    gnutls_hash_output(w.found->h, got); /* output resets the context; fine */
    assert_memory_equal(want, got, 32);
    free(data);
    return w.found;
}
