/*
 * quic_limits_test.c: the native QUIC transport's limits and its behaviour
 * under bad input, over real UDP on 127.0.0.1.
 *
 * Every limit in sl_transport_settings has a default, a setting and a clear
 * error when it is hit, and one bad peer never affects another connection:
 *  - connections in total, per source address and in handshake at once: a
 *    refused client is closed by its peer with CONNECTION_REFUSED (0x2) and a
 *    reason, the admitted ones keep working, and a freed slot admits again;
 *  - peer-opened streams: sl_stream_open returns SL_ERR_LIMIT at the
 *    peer's limit, and MAX_STREAMS is extended as streams close;
 *  - bytes buffered for sending, per stream and per connection: a write
 *    that does not fit returns SL_ERR_AGAIN and queues nothing, and
 *    on_stream_writable follows once the peer consumes;
 *  - datagram size: SL_ERR_MSG_TOO_BIG above sl_datagram_max, and
 *    SL_ERR_UNSUPPORTED towards a peer that accepts none;
 *  - RESET_STREAM + STOP_SENDING per connection: past max_resets the peer
 *    is closed as abusive (application code 0x5354), others are untouched;
 *  - garbage UDP datagrams on the server port neither disturb an
 *    established connection nor create connections.
 *
 * Servers use a generated development certificate and accept any client
 * certificate; clients pin the server's certificate. Endpoints come from
 * tests/support/quic_harness.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "quic_harness.h"

#define APP_ABUSE 0x5354 /* documented close code for an abusive peer */
#define QUIC_CONNECTION_REFUSED 0x2

/* ------------------------------------------------------------- helpers */

/* A listening server; `tweak` adjusts its settings first (may be NULL). */
static qh_side *start_server(qh_harness *h, void (*tweak)(sl_transport_settings *))
{
    qh_side *srv = qh_side_add(h, "server");
    sl_transport_settings s;
    qh_settings(srv, &s);
    s.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    if (tweak)
        tweak(&s);
    SLT_OK(qh_side_start(srv, &s));
    qh_listen(srv);
    return srv;
}

/* A client transport pinning srv's certificate; `tweak` may be NULL. */
static qh_side *start_client(qh_harness *h, qh_side *srv, const char *name,
                             void (*tweak)(sl_transport_settings *))
{
    qh_side *cli = qh_side_add(h, name);
    sl_transport_settings s;
    qh_settings(cli, &s);
    s.tls.verify = SL_VERIFY_PIN_CERT;
    SLT_OK(sl_transport_cert_sha256(srv->t, s.tls.pin));
    if (tweak)
        tweak(&s);
    SLT_OK(qh_side_start(cli, &s));
    return cli;
}

/* Connect and wait for the client's side to be ready. */
static qh_conn *connect_ready(qh_side *cli, qh_side *srv)
{
    qh_conn *c = qh_connect(cli, srv->port);
    assert_true(qh_run(cli->h, qh_until_ready, c, 5000));
    assert_int_equal(c->closed, 0);
    return c;
}

typedef struct count_wait {
    const int *value;
    int want;
} count_wait;

static bool count_reached(qh_harness *h, void *arg)
{
    count_wait *w = arg;
    return *w->value >= w->want;
}

/* Run until *value >= want (bounded). */
static bool wait_count(qh_harness *h, const int *value, int want, uint64_t ms)
{
    count_wait w = {value, want};
    return qh_run(h, count_reached, &w, ms);
}

/* A client connection refused by the server's admission control. */
static void assert_refused(const qh_conn *c, const char *reason_part)
{
    assert_int_equal(c->ready, 0);
    assert_int_equal(c->closed, 1);
    assert_true(c->why.by_peer);
    assert_false(c->why.app);
    assert_int_equal(c->why.code, QUIC_CONNECTION_REFUSED);
    /* The peer refused: an error, learnt from the peer, not a timeout. */
    assert_true(c->why.err != SL_OK && c->why.err != SL_ERR_TIMEOUT);
    if (strstr(c->reason, reason_part) == NULL)
        print_error("reason \"%s\" does not mention \"%s\"\n", c->reason, reason_part);
    assert_non_null(strstr(c->reason, reason_part));
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **st)
{
    sl_transport_settings s;
    sl_transport_settings_default(&s);
    assert_int_equal(s.max_streams_bidi, 1024);
    assert_int_equal(s.max_streams_uni, 1024);
    assert_int_equal(s.max_stream_buffer, 8u << 20);
    assert_int_equal(s.max_conn_buffer, 64u << 20);
    assert_int_equal(s.low_water, 256u << 10);
    assert_int_equal(s.max_connections, 10000);
    assert_int_equal(s.max_connections_per_addr, 256);
    assert_int_equal(s.max_handshakes, 1024);
    assert_int_equal(s.max_datagram, 1200);
    assert_int_equal(s.max_resets, 10000);
    assert_int_equal(s.bulk_inflight, 64u << 10);
    assert_int_equal(s.bulk_window, 64u << 10);
}

/* ---------------------------------------------------------- connections */

static void two_conns(sl_transport_settings *s)
{
    s->max_connections = 2;
}

/* (a) max_connections = 2: the third is refused, the first two keep working,
 * and a closed one frees its slot. */
static void test_max_connections(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, two_conns);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c1 = connect_ready(cli, srv);
    qh_conn *c2 = connect_ready(cli, srv);
    assert_true(wait_count(h, &srv->ready, 2, 2000));
    qh_conn *c3 = qh_connect(cli, srv->port);
    assert_true(qh_run(h, qh_until_closed, c3, 5000));
    assert_refused(c3, "connection limit");
    print_message("     refused: err %s, reason \"%s\"\n", sl_err_name(c3->why.err), c3->reason);
    /* The server never saw the refused one as a connection, and counted it. */
    assert_int_equal(srv->ready, 2);
    assert_int_equal(srv->closed, 0);
    assert_int_equal(srv->nconns, 2);
    sl_transport_stats ts;
    SLT_OK(sl_transport_stats_get(srv->t, &ts));
    assert_int_equal(ts.conns, 2);
    assert_int_equal(ts.accepted, 2);
    assert_int_equal(ts.refused, 1);
    /* The admitted ones are unaffected. */
    qh_transfer(c1, srv, 3000, 5000);
    qh_transfer(c2, srv, 3000, 5000);
    assert_int_equal(c1->closed + c2->closed, 0);

    /* Closing one frees a slot. */
    SLT_OK(sl_conn_close(c1->c, 0, "done"));
    assert_true(wait_count(h, &srv->closed, 1, 5000));
    qh_conn *c4 = connect_ready(cli, srv);
    qh_transfer(c4, srv, 100, 5000);
    qh_transfer(c2, srv, 100, 5000);
    qh_finish(h);
}

static void one_conn(sl_transport_settings *s)
{
    s->max_connections = 1;
}

/* The client's own max_connections: sl_transport_connect says SL_ERR_LIMIT. */
static void test_max_connections_outbound(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, NULL);
    qh_side *cli = start_client(h, srv, "client", one_conn);
    qh_conn *c1 = connect_ready(cli, srv);
    qh_conn *c2 = NULL;
    SLT_ERR(qh_connect_rc(cli, srv->port, &c2), SL_ERR_LIMIT);
    qh_transfer(c1, srv, 100, 5000);
    qh_finish(h);
}

static void one_per_addr(sl_transport_settings *s)
{
    s->max_connections_per_addr = 1;
}

/* (b) max_connections_per_addr = 1: a second connection from 127.0.0.1 is
 * refused (also from another port), one from 127.0.0.2 is admitted. */
static void test_max_connections_per_addr(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, one_per_addr);
    qh_side *a = start_client(h, srv, "a", NULL);
    qh_side *b = start_client(h, srv, "b", NULL);
    qh_conn *ca = connect_ready(a, srv);
    qh_conn *cb = qh_connect(b, srv->port);
    assert_true(qh_run(h, qh_until_closed, cb, 5000));
    assert_refused(cb, "per-address");
    qh_conn *ca2 = qh_connect(a, srv->port); /* same address and port */
    assert_true(qh_run(h, qh_until_closed, ca2, 5000));
    assert_refused(ca2, "per-address");

    /* Another source address is another budget. */
    qh_side *o = start_client(h, srv, "other addr", NULL);
    SLT_OK(sl_transport_listen(o->t, "127.0.0.2", 0));
    qh_conn *co = connect_ready(o, srv);
    assert_true(wait_count(h, &srv->ready, 2, 2000));
    assert_int_equal(srv->closed, 0);
    qh_transfer(ca, srv, 2000, 5000);
    qh_transfer(co, srv, 2000, 5000);
    qh_finish(h);
}

static void one_handshake(sl_transport_settings *s)
{
    s->max_handshakes = 1;
}

typedef struct pair_wait {
    qh_conn *a, *b;
} pair_wait;

static bool one_closed_one_ready(qh_harness *h, void *arg)
{
    pair_wait *w = arg;
    return (w->a->closed && w->b->ready) || (w->b->closed && w->a->ready);
}

/* max_handshakes = 1: of two Initials arriving together the second is
 * refused; once the first handshake is done, a new one is admitted. */
static void test_max_handshakes(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, one_handshake);
    qh_side *a = start_client(h, srv, "a", NULL);
    qh_side *b = start_client(h, srv, "b", NULL);
    qh_conn *ca = qh_connect(a, srv->port);
    qh_conn *cb = qh_connect(b, srv->port);
    /* Which Initial the server reads first is not ours to choose. */
    pair_wait w = {ca, cb};
    assert_true(qh_run(h, one_closed_one_ready, &w, 5000));
    qh_conn *won = ca->ready ? ca : cb, *lost = ca->ready ? cb : ca;
    assert_refused(lost, "handshake");
    assert_int_equal(won->closed, 0);
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    /* The handshake slot is free again. */
    qh_conn *again = connect_ready(lost->side, srv);
    qh_transfer(won, srv, 100, 5000);
    qh_transfer(again, srv, 100, 5000);
    assert_int_equal(srv->closed, 0);
    qh_finish(h);
}

/* -------------------------------------------------------------- streams */

static void ten_streams(sl_transport_settings *s)
{
    s->max_streams_bidi = 10;
    s->max_streams_uni = 3;
}

/* The server answers a finished stream by finishing its side too, so the
 * stream closes on both sides. */
static void finish_on_fin(qh_stream *r, const uint8_t *d, size_t len, bool fin)
{
    if (fin && r->s && !r->local && (r->id & 2) == 0) /* a bidi stream */
        sl_stream_finish(r->s);
}

typedef struct closed_wait {
    qh_stream **s;
    int n;
    qh_side *srv;
    int srv_closed;
} closed_wait;

static bool streams_closed(qh_harness *h, void *arg)
{
    closed_wait *w = arg;
    for (int i = 0; i < w->n; i++)
        if (!w->s[i]->closed)
            return false;
    return w->srv->streams_closed >= w->srv_closed;
}

/* (c) max_streams_bidi = 10: 10 open, the 11th is SL_ERR_LIMIT; after 5 have
 * finished and closed on both sides, exactly 5 more can be opened. Uni
 * streams have their own limit (3). */
static void test_max_streams(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, ten_streams);
    srv->on_data = finish_on_fin;
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    qh_stream *s[16];
    for (int i = 0; i < 10; i++)
        SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s[i]));
    qh_stream *extra = NULL;
    SLT_ERR(qh_stream_open(c, true, SL_PRIO_NORMAL, &extra), SL_ERR_LIMIT);
    /* Uni streams are counted separately. */
    qh_stream *u[4];
    for (int i = 0; i < 3; i++)
        SLT_OK(qh_stream_open(c, false, SL_PRIO_NORMAL, &u[i]));
    SLT_ERR(qh_stream_open(c, false, SL_PRIO_NORMAL, &extra), SL_ERR_LIMIT);

    /* Finish five; the server finishes its side; all five close. */
    for (int i = 0; i < 5; i++) {
        SLT_OK(sl_stream_write(s[i]->s, "x", 1, NULL));
        SLT_OK(sl_stream_finish(s[i]->s));
    }
    closed_wait w = {s, 5, srv, 5};
    assert_true(qh_run(h, streams_closed, &w, 5000));
    /* Give MAX_STREAMS time to arrive. */
    qh_run(h, NULL, NULL, 200);
    for (int i = 10; i < 15; i++) {
        int rc = qh_stream_open(c, true, SL_PRIO_NORMAL, &s[i]);
        if (rc != SL_OK)
            print_error("re-opening stream %d of 5 after 5 closed: %s\n", i - 9, sl_err_name(rc));
        SLT_OK(rc);
    }
    SLT_ERR(qh_stream_open(c, true, SL_PRIO_NORMAL, &extra), SL_ERR_LIMIT);
    /* The new ones carry data. */
    SLT_OK(sl_stream_write(s[14]->s, "hello", 5, NULL));
    SLT_OK(sl_stream_finish(s[14]->s));
    assert_true(qh_run(h, qh_until_stream_closed, s[14], 5000));
    assert_int_equal(c->closed, 0);
    qh_finish(h);
}

/* ------------------------------------------------------------- buffers */

static void small_window(sl_transport_settings *s)
{
    s->stream_window = 16u << 10;
}

static void small_buffers(sl_transport_settings *s)
{
    s->max_stream_buffer = 64u << 10;
    s->max_conn_buffer = 96u << 10;
    s->low_water = 16u << 10;
}

static bool all_writable(qh_harness *h, void *arg)
{
    qh_stream **s = arg;
    for (int i = 0; i < 3; i++)
        if (s[i]->writable == 0)
            return false;
    return true;
}

static void assert_stats(const qh_stream *s, uint64_t written, size_t max_buffered)
{
    sl_stream_stats ss;
    SLT_OK(sl_stream_stats_get(s->s, &ss));
    assert_int_equal(ss.bytes_written, written);
    assert_true(ss.buffered <= max_buffered);
}

/*
 * (d) max_stream_buffer = 64 KiB, max_conn_buffer = 96 KiB, against a
 * server with a 16 KiB stream window that does not consume: writes that
 * would exceed either limit return SL_ERR_AGAIN and queue nothing (checked
 * by stats and, at the end, by the exact bytes the server received), also on
 * a stream that has nothing buffered itself; once the server consumes,
 * every refused stream gets on_stream_writable.
 */
static void test_send_buffer_limits(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, small_window);
    srv->consume = false;
    qh_side *cli = start_client(h, srv, "client", small_buffers);
    qh_conn *c = connect_ready(cli, srv);
    uint8_t *data = qh_pattern(128u << 10, 7);
    qh_stream *s[3];
    for (int i = 0; i < 3; i++)
        SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s[i]));
    size_t buffered = 0;

    /* Stream limit. */
    SLT_OK(sl_stream_write(s[0]->s, data, 64u << 10, &buffered));
    assert_int_equal(buffered, 64u << 10);
    SLT_ERR(sl_stream_write(s[0]->s, data + (64u << 10), 1, &buffered), SL_ERR_AGAIN);
    assert_int_equal(buffered, 64u << 10);
    assert_stats(s[0], 64u << 10, 64u << 10);
    /* Connection limit: s1 is under its own limit but the connection is full. */
    SLT_OK(sl_stream_write(s[1]->s, data, 32u << 10, &buffered));
    SLT_ERR(sl_stream_write(s[1]->s, data, 1, &buffered), SL_ERR_AGAIN);
    assert_int_equal(buffered, 32u << 10);
    assert_stats(s[1], 32u << 10, 32u << 10);
    /* A stream with nothing buffered is refused by the connection limit too. */
    SLT_ERR(sl_stream_write(s[2]->s, data, 1, &buffered), SL_ERR_AGAIN);
    assert_int_equal(buffered, 0);
    assert_stats(s[2], 0, 0);
    /* A zero-length write queues nothing and is not refused. */
    SLT_OK(sl_stream_write(s[0]->s, data, 0, NULL));

    /* The server gets one window per stream and no more; s0 stays above
     * its low-water mark, so it is not writable yet. */
    qh_run(h, NULL, NULL, 300);
    assert_int_equal(s[0]->writable, 0);
    int rx = 0;
    for (int i = 0; i < srv->nstreams; i++)
        rx += (int)srv->streams[i].bytes;
    assert_int_equal(rx, 2 * (16 << 10));

    /* The server consumes from now on: every refused stream hears. */
    srv->consume = true;
    qh_consume_all(srv);
    bool ok = qh_run(h, all_writable, s, 3000);
    if (!ok)
        print_error("on_stream_writable: s0 %d, s1 %d, s2 (nothing buffered) %d\n", s[0]->writable,
                    s[1]->writable, s[2]->writable);
    assert_true(ok);

    /* Writes fit again; finish s0 and check the server got exactly what
     * was accepted: 64 KiB, then the next 16 KiB. */
    SLT_OK(sl_stream_write(s[0]->s, data + (64u << 10), 16u << 10, NULL));
    SLT_OK(sl_stream_finish(s[0]->s));
    qh_stream *peer = NULL;
    for (int i = 0; i < srv->nstreams; i++)
        if (srv->streams[i].id == s[0]->id)
            peer = &srv->streams[i];
    assert_non_null(peer);
    assert_true(qh_run(h, qh_until_fin, peer, 5000));
    assert_int_equal(peer->bytes, 80u << 10);
    uint8_t want[32], got[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, 80u << 10, want);
    gnutls_hash_output(peer->h, got);
    assert_memory_equal(want, got, 32);
    free(data);
    assert_int_equal(c->closed, 0);
    qh_finish(h);
}

/* ------------------------------------------------------- credit by class */

/*
 * What the credit test saw. The server names each stream's class from its
 * first byte ('B' BACKGROUND, 'C' CRITICAL), as the node does from a lane's
 * first envelope, before it consumes anything.
 */
static struct {
    qh_stream *bg_tx[2]; /* the client's BACKGROUND streams */
    qh_stream *bg_rx[2]; /* the server's records of them */
    int nbg;
    qh_stream *crit_rx;         /* the server's record of the CRITICAL stream */
    uint64_t max_inflight;      /* sender: max bytes of both sent and not acknowledged */
    uint64_t max_credit;        /* receiver: max credit ahead of consumption */
    uint64_t max_credit_late;   /* the same once the initial window was consumed */
    uint64_t bg_at_send;        /* BACKGROUND bytes (both) received when CRITICAL was written */
    uint64_t bg_at_arrival;     /* ... when all of CRITICAL had arrived */
    uint64_t crit_limit;        /* CRITICAL's credit (offset it may send up to) */
    bool crit_done;
} CR;

/* BACKGROUND bytes the server received, both streams. */
static uint64_t bg_bytes(void)
{
    uint64_t n = 0;
    for (int i = 0; i < CR.nbg; i++)
        n += CR.bg_rx[i]->bytes;
    return n;
}

static void class_by_first_byte(qh_stream *r, const uint8_t *d, size_t len, bool fin)
{
    if (len && r->bytes == len) { /* the stream's first bytes */
        bool bg = d[0] == 'B';
        sl_stream_set_prio(r->s, bg ? SL_PRIO_BACKGROUND : SL_PRIO_CRITICAL);
        if (bg && CR.nbg < 2)
            CR.bg_rx[CR.nbg++] = r;
        else if (!bg)
            CR.crit_rx = r;
    }
    if (len) {
        sl_stream_consume(r->s, len);
        r->unconsumed -= len;
    }
    if (r == CR.crit_rx) {
        sl_stream_stats ss;
        if (sl_stream_stats_get(r->s, &ss) == SL_OK)
            CR.crit_limit = ss.recv_limit;
        if (fin) {
            CR.crit_done = true;
            CR.bg_at_arrival = bg_bytes();
        }
    }
}

/* Sample both ends of the BACKGROUND stream (every loop iteration). */
static void credit_sample(void)
{
    sl_stream_stats ss;
    uint64_t flight = 0;
    for (int i = 0; i < 2; i++)
        if (CR.bg_tx[i] && CR.bg_tx[i]->s && sl_stream_stats_get(CR.bg_tx[i]->s, &ss) == SL_OK)
            flight += ss.bytes_sent - ss.bytes_acked;
    if (flight > CR.max_inflight)
        CR.max_inflight = flight;
    for (int i = 0; i < CR.nbg; i++) {
        if (!CR.bg_rx[i]->s || sl_stream_stats_get(CR.bg_rx[i]->s, &ss) != SL_OK)
            continue;
        uint64_t ahead = ss.recv_limit - ss.bytes_consumed;
        if (ahead > CR.max_credit)
            CR.max_credit = ahead;
        if (ss.bytes_consumed >= (128u << 10) && ahead > CR.max_credit_late)
            CR.max_credit_late = ahead;
    }
}

static bool bg_received(qh_harness *h, void *arg)
{
    credit_sample();
    return bg_bytes() >= *(uint64_t *)arg;
}

static bool crit_and_bg_done(qh_harness *h, void *arg)
{
    credit_sample();
    return CR.crit_done && CR.nbg == 2 && CR.bg_rx[0]->fin && CR.bg_rx[1]->fin;
}

/*
 * Defaults (bulk_inflight = bulk_window = 64 KiB, stream_window 1 MiB): two
 * BACKGROUND streams pushing 2 MiB each never have more than 64 KiB sent
 * and unacknowledged together, and the receiver never gives either more
 * than 64 KiB of credit ahead once past the initial 128 KiB; a CRITICAL
 * message written in the middle arrives behind at most 64 KiB of
 * BACKGROUND bytes;
 * the CRITICAL stream itself gets the full stream window as soon as it
 * is named.
 */
static void test_credit_by_class(void **st)
{
    memset(&CR, 0, sizeof CR);
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, NULL);
    srv->consume = false; /* the hook names the class, then consumes */
    srv->on_data = class_by_first_byte;
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    size_t n = 2u << 20;
    uint8_t *data = qh_pattern(n, 11);
    data[0] = 'B';
    for (int i = 0; i < 2; i++) {
        SLT_OK(qh_stream_open(c, false, SL_PRIO_BACKGROUND, &CR.bg_tx[i]));
        for (size_t off = 0; off < n; off += 64u << 10)
            SLT_OK(sl_stream_write(CR.bg_tx[i]->s, data + off, 64u << 10, NULL));
        SLT_OK(sl_stream_finish(CR.bg_tx[i]->s));
    }
    uint64_t some = 1u << 20;
    assert_true(qh_run(h, bg_received, &some, 10000));

    qh_stream *crit;
    SLT_OK(qh_stream_open(c, false, SL_PRIO_CRITICAL, &crit));
    uint8_t ping[64];
    memset(ping, 'C', sizeof ping);
    CR.bg_at_send = bg_bytes();
    SLT_OK(sl_stream_write(crit->s, ping, sizeof ping, NULL));
    SLT_OK(sl_stream_finish(crit->s));
    assert_true(qh_run(h, crit_and_bg_done, NULL, 10000));

    printf("credit: in flight <= %llu, credit <= %llu (%llu late), CRITICAL behind %llu bytes\n",
           (unsigned long long)CR.max_inflight, (unsigned long long)CR.max_credit,
           (unsigned long long)CR.max_credit_late,
           (unsigned long long)(CR.bg_at_arrival - CR.bg_at_send));
    assert_int_equal(CR.nbg, 2);
    assert_int_equal(CR.bg_rx[0]->bytes, n);
    assert_int_equal(CR.bg_rx[1]->bytes, n);
    assert_true(CR.max_inflight > 0);
    assert_true(CR.max_inflight <= (64u << 10));
    assert_true(CR.max_credit <= (128u << 10));
    assert_true(CR.max_credit_late <= (64u << 10));
    assert_true(CR.bg_at_arrival - CR.bg_at_send <= (64u << 10));
    assert_int_equal(CR.crit_limit, 1u << 20); /* a stream window, not 128 KiB */
    free(data);
    qh_finish(h);
}

/* ----------------------------------------------------------- datagrams */

static void no_datagrams(sl_transport_settings *s)
{
    s->max_datagram = 0;
}
static void dgram_100(sl_transport_settings *s)
{
    s->max_datagram = 100;
}

/* (e) Oversized datagrams: SL_ERR_MSG_TOO_BIG. */
static void test_datagram_too_big(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, NULL);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    size_t max = sl_datagram_max(c->c);
    assert_true(max > 0 && max <= 1200);
    uint8_t buf[2048];
    memset(buf, 0xab, sizeof buf);
    SLT_ERR(sl_datagram_send(c->c, buf, max + 1), SL_ERR_MSG_TOO_BIG);
    SLT_ERR(sl_datagram_send(c->c, buf, sizeof buf), SL_ERR_MSG_TOO_BIG);
    SLT_OK(sl_datagram_send(c->c, buf, max));
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    qh_conn *sc = &srv->conns[0];
    assert_true(wait_count(h, &sc->dgrams, 1, 2000));
    assert_int_equal(sc->dgram_bytes, max);
    qh_finish(h);
}

/* (e) A server that accepts no datagrams (max_datagram = 0): the client's
 * sl_datagram_max is 0 and sl_datagram_send says SL_ERR_UNSUPPORTED; the
 * other direction still works. */
static void test_datagram_unsupported_by_peer(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, no_datagrams);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    assert_int_equal(sl_datagram_max(c->c), 0);
    SLT_ERR(sl_datagram_send(c->c, "x", 1), SL_ERR_UNSUPPORTED);
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    qh_conn *sc = &srv->conns[0];
    assert_true(sl_datagram_max(sc->c) > 0);
    SLT_OK(sl_datagram_send(sc->c, "hello", 5));
    assert_true(wait_count(h, &c->dgrams, 1, 2000));
    qh_finish(h);
}

/* max_datagram is documented as the DATAGRAM frame *payload* we accept: a
 * server with 100 lets the client send 100-byte datagrams, not fewer. */
static void test_datagram_size_setting_is_payload(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, dgram_100);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    size_t max = sl_datagram_max(c->c);
    if (max != 100)
        print_error("server max_datagram = 100, client's sl_datagram_max = %zu\n", max);
    assert_int_equal(max, 100);
    uint8_t buf[101];
    memset(buf, 1, sizeof buf);
    SLT_ERR(sl_datagram_send(c->c, buf, 101), SL_ERR_MSG_TOO_BIG);
    SLT_OK(sl_datagram_send(c->c, buf, 100));
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    assert_true(wait_count(h, &srv->conns[0].dgrams, 1, 2000));
    assert_int_equal(srv->conns[0].dgram_bytes, 100);
    assert_int_equal(c->closed, 0);
    qh_finish(h);
}

/* --------------------------------------------------------------- resets */

static void five_resets(sl_transport_settings *s)
{
    s->max_resets = 5;
}

/* One abusive act from the client on a fresh stream. */
static void abuse(qh_conn *c, int i, bool mixed)
{
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s));
    SLT_OK(sl_stream_write(s->s, "a", 1, NULL));
    if (mixed && i % 2)
        SLT_OK(sl_stream_stop_sending(s->s, 8));
    else
        SLT_OK(sl_stream_reset(s->s, 7));
}

static void resets_close_abuser(bool mixed)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, five_resets);
    qh_side *bad = start_client(h, srv, "abuser", NULL);
    qh_side *good = start_client(h, srv, "good", NULL);
    qh_conn *cg = connect_ready(good, srv);
    qh_conn *cb = connect_ready(bad, srv);
    assert_true(wait_count(h, &srv->ready, 2, 2000));
    qh_conn *sb = NULL; /* the abuser's connection on the server */
    /* Five are allowed. */
    for (int i = 0; i < 5; i++)
        abuse(cb, i, mixed);
    qh_run(h, NULL, NULL, 300);
    assert_int_equal(cb->closed, 0);
    for (int i = 0; i < srv->nconns; i++) {
        sl_conn_stats cs;
        if (!srv->conns[i].c)
            continue;
        SLT_OK(sl_conn_stats_get(srv->conns[i].c, &cs));
        if (cs.resets_recv) {
            assert_null(sb);
            sb = &srv->conns[i];
            assert_int_equal(cs.resets_recv, 5);
        }
    }
    assert_non_null(sb);
    /* The sixth closes the abuser. */
    abuse(cb, 5, mixed);
    assert_true(qh_run(h, qh_until_closed, cb, 5000));
    assert_int_equal(cb->closed, 1);
    assert_true(cb->why.by_peer);
    assert_true(cb->why.app);
    assert_int_equal(cb->why.code, APP_ABUSE);
    assert_string_equal(cb->reason, "too many stream resets");
    SLT_ERR(cb->why.err, SL_OK); /* an application close by the peer */
    /* The server closed it as abusive: a limit was hit. */
    assert_true(wait_count(h, &srv->closed, 1, 2000));
    assert_int_equal(sb->closed, 1);
    assert_false(sb->why.by_peer);
    assert_true(sb->why.app);
    assert_int_equal(sb->why.code, APP_ABUSE);
    /* The well-behaved client is untouched. */
    qh_transfer(cg, srv, 20000, 5000);
    assert_int_equal(cg->closed, 0);
    assert_int_equal(srv->closed, 1);
    /* The server hit a limit: its own close info says so. */
    if (sb->why.err != SL_ERR_LIMIT)
        print_error("server side of the abusive connection: err %s, expected SL_ERR_LIMIT\n",
                    sl_err_name(sb->why.err));
    SLT_ERR(sb->why.err, SL_ERR_LIMIT);
    qh_finish(h);
}

/* (f) max_resets = 5: six RESET_STREAMs close the abuser; another client
 * of the same server keeps working. */
static void test_resets_close_abuser(void **st)
{
    resets_close_abuser(false);
}

/*
 * STOP_SENDING is the receiver's business: when the client asks the server
 * to stop sending, the server releases what it still had queued for that
 * stream, its on_stream_stop_sending fires and it counts the request
 * against max_resets; the client does not count the RESET_STREAM that the
 * server sends in answer. ngtcp2 1.11 has no callback for a received
 * STOP_SENDING: the transport sees it when it next tries to send on the
 * stream, so the server here sends after the request arrived, and the code
 * it reports is 0 (unknown). Six such requests against max_resets 5 close
 * the client.
 */
static void stop_one(qh_harness *h, qh_side *srv, qh_conn *c, int k, uint64_t code)
{
    static uint8_t some[64u << 10];
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s));
    SLT_OK(sl_stream_write(s->s, "a", 1, NULL));
    assert_true(wait_count(h, &srv->nstreams, k + 1, 2000));
    qh_stream *peer = &srv->streams[k];
    SLT_OK(sl_stream_stop_sending(s->s, code));
    qh_run(h, NULL, NULL, 100);
    /* The request has arrived; the server's next send meets it. */
    SLT_OK(sl_stream_write(peer->s, some, sizeof some, NULL));
    qh_run(h, NULL, NULL, 50);
}

static void test_stop_sending_counted_by_receiver(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, five_resets);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    qh_conn *sc = &srv->conns[0];
    stop_one(h, srv, c, 0, 42);
    qh_run(h, NULL, NULL, 200);
    qh_stream *peer = &srv->streams[0];
    sl_conn_stats cs, ss;
    SLT_OK(sl_conn_stats_get(c->c, &cs));
    SLT_OK(sl_conn_stats_get(sc->c, &ss));
    assert_true(peer->stopped);
    assert_int_equal(ss.resets_recv, 1);
    assert_int_equal(cs.resets_recv, 0); /* the answer to its own request */
    /* The server released the queued bytes. */
    sl_stream_stats pst;
    if (peer->s && sl_stream_stats_get(peer->s, &pst) == SL_OK)
        assert_int_equal(pst.buffered, 0);
    /* Five more: the server closes the client as abusive. */
    for (int i = 1; i < 6 && !c->closed; i++)
        stop_one(h, srv, c, i, 43);
    assert_true(qh_run(h, qh_until_closed, c, 3000));
    assert_true(c->why.by_peer);
    assert_true(c->why.app);
    assert_int_equal(c->why.code, APP_ABUSE);
    qh_finish(h);
}

/* -------------------------------------------------------------- garbage */

static void garbage_limits(sl_transport_settings *s)
{
    s->max_connections = 2;
    s->max_handshakes = 1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A QUIC v1-style long header: flags, version, DCID, SCID (8 bytes each);
 * for Initial (type 0) a zero-length token and a 2-byte length. Returns the
 * header length. */
static size_t long_header(uint8_t *p, uint8_t type, uint32_t version, uint16_t length,
                          uint32_t seed)
{
    size_t n = 0;
    p[n++] = (uint8_t)(0xc0 | (type << 4) | 0x03); /* 4-byte packet number */
    put_u32(p + n, version);
    n += 4;
    p[n++] = 8;
    uint8_t *cid = qh_pattern(16, seed);
    memcpy(p + n, cid, 8);
    n += 8;
    p[n++] = 8;
    memcpy(p + n, cid + 8, 8);
    n += 8;
    free(cid);
    if (type == 0)
        p[n++] = 0; /* token length */
    p[n++] = (uint8_t)(0x40 | (length >> 8));
    p[n++] = (uint8_t)length;
    return n;
}

/*
 * (g) Garbage datagrams from a plain UDP socket on the server port: random
 * bytes of many sizes, empty datagrams, truncated Initials, a full-size
 * Initial whose payload is noise, long headers with a bogus version, short
 * headers with unknown connection ids. The established connection still
 * transfers, the server reports no connection event, and (max_handshakes
 * = 1, max_connections = 2) a real client is still admitted at once: the
 * garbage holds no handshake or connection slot.
 */
static void test_garbage_datagrams(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, garbage_limits);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    assert_true(wait_count(h, &srv->ready, 1, 2000));
    sl_transport_stats before, after;
    SLT_OK(sl_transport_stats_get(srv->t, &before));
    assert_int_equal(before.accepted, 1);
    /* Keep one transfer in flight while the garbage arrives. */
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(c, true, SL_PRIO_NORMAL, &s));
    uint8_t *payload = qh_pattern(200000, 99);
    SLT_OK(sl_stream_write(s->s, payload, 200000, NULL));

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(srv->port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
#define SEND(buf, len)                                                                             \
    assert_true(sendto(fd, (buf), (len), 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)(len))
    uint8_t pkt[1500];
    int sent = 0;
    /* Random bytes, every size class. */
    for (int i = 0; i < 40; i++) {
        size_t len = 1 + (size_t)(i * 37) % 1400;
        uint8_t *r = qh_pattern(len, 1000 + (uint32_t)i);
        SEND(r, len);
        free(r);
        sent++;
    }
    /* Random bytes that look like long-header Initials (first byte 0xc3). */
    for (int i = 0; i < 10; i++) {
        uint8_t *r = qh_pattern(1200, 2000 + (uint32_t)i);
        r[0] = 0xc3;
        put_u32(r + 1, 1);
        SEND(r, 1200);
        free(r);
        sent++;
    }
    /* Truncated Initials: header only, header cut in the middle, and a
     * header announcing 1100 bytes followed by 20. */
    size_t hl = long_header(pkt, 0, 1, 1100, 3);
    SEND(pkt, 5);
    SEND(pkt, 14);
    SEND(pkt, hl);
    memset(pkt + hl, 0x5a, 20);
    SEND(pkt, hl + 20);
    /* A full-size Initial whose protected payload is noise. */
    for (int i = 0; i < 4; i++) {
        hl = long_header(pkt, 0, 1, 0, 4 + (uint32_t)i); /* measure the header */
        hl = long_header(pkt, 0, 1, (uint16_t)(1200 - hl), 4 + (uint32_t)i);
        uint8_t *r = qh_pattern(1200 - hl, 5 + (uint32_t)i);
        memcpy(pkt + hl, r, 1200 - hl);
        free(r);
        SEND(pkt, 1200);
    }
    /* Long headers with a bogus version (would need version negotiation). */
    for (int i = 0; i < 4; i++) {
        hl = long_header(pkt, 0, 0x1a2a3a4a + (uint32_t)i, 1100, 6 + (uint32_t)i);
        memset(pkt + hl, 0, 1200 - hl);
        SEND(pkt, 1200);
    }
    /* Handshake and 0-RTT long headers with unknown connection ids. */
    hl = long_header(pkt, 2, 1, 100, 7);
    memset(pkt + hl, 1, 100);
    SEND(pkt, hl + 100);
    hl = long_header(pkt, 1, 1, 100, 8);
    SEND(pkt, hl + 100);
    /* Short headers with unknown 16-byte connection ids. */
    for (int i = 0; i < 8; i++) {
        uint8_t *r = qh_pattern(60, 3000 + (uint32_t)i);
        r[0] = 0x40 | (r[0] & 0x3f);
        SEND(r, 60);
        free(r);
    }
#undef SEND
    qh_run(h, NULL, NULL, 300);
    close(fd);

    /* The established connection finishes its transfer. */
    SLT_OK(sl_stream_finish(s->s));
    qh_stream *peer = NULL;
    for (int i = 0; i < srv->nstreams; i++)
        if (srv->streams[i].id == s->id)
            peer = &srv->streams[i];
    assert_non_null(peer);
    assert_true(qh_run(h, qh_until_fin, peer, 5000));
    assert_int_equal(peer->bytes, 200000);
    uint8_t want[32], got[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, payload, 200000, want);
    gnutls_hash_output(peer->h, got);
    assert_memory_equal(want, got, 32);
    free(payload);
    assert_int_equal(c->closed, 0);

    SLT_OK(sl_transport_stats_get(srv->t, &after));
    int phantom_closed = srv->closed, phantom_records = srv->nconns - 1;
    sl_close_info phantom = phantom_closed ? srv->conns[srv->nconns - 1].why : (sl_close_info){0};
    assert_int_equal(srv->ready, 1);

    /* The garbage holds no slot: a real client is admitted now. */
    qh_side *late = start_client(h, srv, "late", NULL);
    qh_conn *cl = qh_connect(late, srv->port);
    assert_true(qh_run(h, qh_until_settled, cl, 5000));
    if (cl->closed)
        print_error("late client refused: \"%s\"\n", cl->reason);
    assert_int_equal(cl->closed, 0);
    assert_int_equal(cl->ready, 1);
    qh_transfer(cl, srv, 1000, 5000);
    qh_transfer(c, srv, 1000, 5000);

    /* And no connection came out of the garbage: the server's user saw no
     * event for it (no on_conn_ready, no on_conn_closed). */
    if (phantom_closed || phantom_records)
        print_error("garbage produced %d on_conn_closed on the server (%d records; last: err %s, "
                    "by_peer %d, code 0x%llx)\n",
                    phantom_closed, phantom_records, sl_err_name(phantom.err), phantom.by_peer,
                    (unsigned long long)phantom.code);
    /* Nothing lingers either. (A noise Initial may still be counted in
     * `accepted`: ngtcp2 needs a connection object to try to decrypt it.) */
    if (after.accepted != before.accepted)
        print_message("     garbage: sl_transport_stats.accepted %llu -> %llu, dropped_pkts %llu\n",
                      (unsigned long long)before.accepted, (unsigned long long)after.accepted,
                      (unsigned long long)after.dropped_pkts);
    assert_int_equal(phantom_closed, 0);
    assert_int_equal(phantom_records, 0);
    assert_int_equal(after.conns, 1);
    assert_int_equal(after.handshakes, 0);
    qh_finish(h);
}

/*
 * An empty UDP datagram on the server port is dropped like any garbage:
 * the established connection still transfers. (Kept last in the suite:
 * should the transport abort on it, the other tests have run.)
 */
static void test_empty_datagram(void **st)
{
    qh_harness *h = qh_new();
    qh_side *srv = start_server(h, NULL);
    qh_side *cli = start_client(h, srv, "client", NULL);
    qh_conn *c = connect_ready(cli, srv);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(srv->port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    uint8_t none = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sendto(fd, &none, 0, 0, (struct sockaddr *)&to, sizeof to), 0);
    qh_run(h, NULL, NULL, 100);
    close(fd);
    qh_transfer(c, srv, 1000, 5000);
    assert_int_equal(srv->closed, 0);
    qh_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, qh_teardown),
        cmocka_unit_test_teardown(test_max_connections, qh_teardown),
        cmocka_unit_test_teardown(test_max_connections_outbound, qh_teardown),
        cmocka_unit_test_teardown(test_max_connections_per_addr, qh_teardown),
        cmocka_unit_test_teardown(test_max_handshakes, qh_teardown),
        cmocka_unit_test_teardown(test_max_streams, qh_teardown),
        cmocka_unit_test_teardown(test_send_buffer_limits, qh_teardown),
        cmocka_unit_test_teardown(test_credit_by_class, qh_teardown),
        cmocka_unit_test_teardown(test_datagram_too_big, qh_teardown),
        cmocka_unit_test_teardown(test_datagram_unsupported_by_peer, qh_teardown),
        cmocka_unit_test_teardown(test_datagram_size_setting_is_payload, qh_teardown),
        cmocka_unit_test_teardown(test_resets_close_abuser, qh_teardown),
        cmocka_unit_test_teardown(test_stop_sending_counted_by_receiver, qh_teardown),
        cmocka_unit_test_teardown(test_garbage_datagrams, qh_teardown),
        cmocka_unit_test_teardown(test_empty_datagram, qh_teardown), /* last: see its comment */
    };
    return cmocka_run_group_tests_name("quic_limits", tests, NULL, NULL);
}
