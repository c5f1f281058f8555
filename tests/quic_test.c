/*
 * quic_test.c: the native QUIC transport over real UDP sockets on 127.0.0.1.
 *
 * Both endpoints live in this process on one libuv loop: a server
 * transport listening on an ephemeral port and a client transport. Every
 * loop run is bounded by a watchdog timer. Transfers are checked with
 * SHA-256 of what was sent against what arrived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "starling/transport.h"
#include "transport/tls.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_STREAMS 1100

typedef struct rx_stream {
    sl_stream *s;
    gnutls_hash_hd_t h;
    uint64_t bytes;
    bool fin, closed, reset, stopped;
    uint64_t reset_code;
} rx_stream;

typedef struct side {
    sl_transport *t;
    sl_conn *conn;
    int ready, closed;
    sl_close_info why;
    char reason[128];
    rx_stream rx[MAX_STREAMS];
    int nrx;
    int streams_closed;
    bool consume; /* return credit as data arrives */
    int dgrams;
    size_t dgram_bytes;
    int writable;
} side;

typedef struct harness {
    uv_loop_t loop;
    uv_timer_t watchdog;
    side srv, cli;
    bool (*done)(struct harness *h);
    uv_idle_t check;
    bool timed_out;
} harness;

static harness *H;

static rx_stream *rx_of(side *sd, sl_stream *s)
{
    rx_stream *r = sl_stream_data(s);
    if (r)
        return r;
    assert_true(sd->nrx < MAX_STREAMS);
    r = &sd->rx[sd->nrx++];
    memset(r, 0, sizeof *r);
    r->s = s;
    gnutls_hash_init(&r->h, GNUTLS_DIG_SHA256);
    sl_stream_set_data(s, r);
    return r;
}

static void cb_ready(sl_conn *c, void *ud)
{
    side *sd = ud;
    sd->ready++;
    sd->conn = c;
}

static void cb_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    side *sd = ud;
    sd->closed++;
    sd->why = *why;
    snprintf(sd->reason, sizeof sd->reason, "%s", why->reason ? why->reason : "");
    if (sd->conn == c)
        sd->conn = NULL;
}

static void cb_stream_open(sl_stream *s, void *ud) { rx_of(ud, s); }

static void cb_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    side *sd = ud;
    rx_stream *r = rx_of(sd, s);
    gnutls_hash(r->h, data, len);
    r->bytes += len;
    if (fin)
        r->fin = true;
    if (sd->consume)
        sl_stream_consume(s, len);
}

static void cb_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    rx_stream *r = rx_of(ud, s);
    r->reset = true;
    r->reset_code = code;
}

static void cb_stream_stop(sl_stream *s, uint64_t code, void *ud) { rx_of(ud, s)->stopped = true; }

static void cb_stream_closed(sl_stream *s, void *ud)
{
    side *sd = ud;
    rx_stream *r = sl_stream_data(s);
    if (r) {
        r->closed = true;
        r->s = NULL;
    }
    sd->streams_closed++;
}

static void cb_writable(sl_stream *s, void *ud) { ((side *)ud)->writable++; }

static void cb_dgram(sl_conn *c, const uint8_t *d, size_t len, void *ud)
{
    side *sd = ud;
    sd->dgrams++;
    sd->dgram_bytes += len;
}

static void watchdog_cb(uv_timer_t *t)
{
    H->timed_out = true;
    uv_stop(&H->loop);
}

static void check_cb(uv_idle_t *i)
{
    if (H->done && H->done(H))
        uv_stop(&H->loop);
}

static void settings_for(sl_transport_settings *s, side *sd, harness *h)
{
    sl_transport_settings_default(s);
    s->loop = &h->loop;
    s->ud = sd;
    s->cb.on_conn_ready = cb_ready;
    s->cb.on_conn_closed = cb_closed;
    s->cb.on_stream_open = cb_stream_open;
    s->cb.on_stream_data = cb_stream_data;
    s->cb.on_stream_reset = cb_stream_reset;
    s->cb.on_stream_stop_sending = cb_stream_stop;
    s->cb.on_stream_closed = cb_stream_closed;
    s->cb.on_stream_writable = cb_writable;
    s->cb.on_datagram = cb_dgram;
    sd->consume = true;
}

/* Run the loop until done(h) or `ms` pass. Returns true if done. */
static bool run_until(harness *h, bool (*done)(harness *), uint64_t ms)
{
    h->done = done;
    h->timed_out = false;
    uv_timer_start(&h->watchdog, watchdog_cb, ms, 0);
    uv_idle_start(&h->check, check_cb);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_idle_stop(&h->check);
    uv_timer_stop(&h->watchdog);
    return !h->timed_out && (!done || done(h));
}

static uint16_t server_port;

/* Start a server (settings tweaked by `srv_tweak`) and a client that pins
 * the server's certificate unless `cli_tweak` says otherwise. */
static void start(harness *h, void (*srv_tweak)(sl_transport_settings *),
                  void (*cli_tweak)(sl_transport_settings *, const uint8_t *pin))
{
    memset(h, 0, sizeof *h);
    H = h;
    uv_loop_init(&h->loop);
    uv_timer_init(&h->loop, &h->watchdog);
    uv_idle_init(&h->loop, &h->check);
    sl_transport_settings ss, cs;
    settings_for(&ss, &h->srv, h);
    /* Clients present generated dev certificates: require one (so the
     * server learns the client's node id) but accept any. */
    ss.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    ss.tls.require_client_cert = true;
    if (srv_tweak)
        srv_tweak(&ss);
    assert_int_equal(sl_quic_new(&ss, &h->srv.t), SL_OK);
    assert_int_equal(sl_transport_listen(h->srv.t, "127.0.0.1", 0), SL_OK);
    assert_int_equal(sl_transport_local_port(h->srv.t, &server_port), SL_OK);
    uint8_t pin[32];
    assert_int_equal(sl_transport_cert_sha256(h->srv.t, pin), SL_OK);
    settings_for(&cs, &h->cli, h);
    cs.tls.verify = SL_VERIFY_PIN_CERT;
    memcpy(cs.tls.pin, pin, 32);
    if (cli_tweak)
        cli_tweak(&cs, pin);
    assert_int_equal(sl_quic_new(&cs, &h->cli.t), SL_OK);
}

static void closed_cb(sl_transport *t, void *ud) { (*(int *)ud)++; }

static void finish(harness *h)
{
    int n = 0;
    sl_transport_close(h->cli.t, closed_cb, &n);
    sl_transport_close(h->srv.t, closed_cb, &n);
    uv_close((uv_handle_t *)&h->watchdog, NULL);
    uv_close((uv_handle_t *)&h->check, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 2);
    sl_transport_del(h->cli.t);
    sl_transport_del(h->srv.t);
    for (int i = 0; i < h->srv.nrx; i++)
        if (h->srv.rx[i].h)
            gnutls_hash_deinit(h->srv.rx[i].h, NULL);
    for (int i = 0; i < h->cli.nrx; i++)
        if (h->cli.rx[i].h)
            gnutls_hash_deinit(h->cli.rx[i].h, NULL);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static bool both_ready(harness *h) { return h->srv.ready && h->cli.ready; }
static bool cli_closed(harness *h) { return h->cli.closed > 0; }

static void connect_ok(harness *h)
{
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h->cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(h, both_ready, 5000));
}

/* ------------------------------------------------------------ handshake */

static void test_handshake_pinned(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    /* Well inside the 1 s initial PTO: the server must process the very
     * Initial that created its connection (it once dropped it, and every
     * handshake waited for the client's retransmission). */
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(&h, both_ready, 500));
    assert_string_equal(sl_conn_alpn(h.cli.conn), SL_ALPN);
    assert_string_equal(sl_conn_alpn(h.srv.conn), SL_ALPN);
    /* Each side sees the other's key-derived node id. */
    uint64_t a = 0, b = 0;
    assert_int_equal(sl_conn_peer_node_id(h.cli.conn, &a), SL_OK);
    assert_int_equal(sl_conn_peer_node_id(h.srv.conn, &b), SL_OK);
    assert_true(a != 0 && b != 0 && a != b);
    assert_true(sl_conn_is_client(h.cli.conn));
    assert_false(sl_conn_is_client(h.srv.conn));
    finish(&h);
}

static void wrong_pin(sl_transport_settings *s, const uint8_t *pin) { s->tls.pin[0] ^= 0xff; }

static void test_handshake_wrong_pin_fails(void **st)
{
    harness h;
    start(&h, NULL, wrong_pin);
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(&h, cli_closed, 5000));
    assert_int_equal(h.cli.ready, 0);
    assert_int_equal(h.cli.why.err, SL_ERR_TLS);
    finish(&h);
}

static void other_alpn(sl_transport_settings *s, const uint8_t *pin) { s->alpn = "not-starling"; }

static void test_handshake_alpn_mismatch_fails(void **st)
{
    harness h;
    start(&h, NULL, other_alpn);
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(&h, cli_closed, 5000));
    assert_int_equal(h.cli.ready, 0);
    assert_int_equal(h.cli.why.err, SL_ERR_TLS);
    assert_int_equal(h.srv.ready, 0);
    finish(&h);
}

static const char *const two_alpns[] = {"starling/1", "h3"};

static void server_two_alpns(sl_transport_settings *s)
{
    s->accept_alpns = two_alpns;
    s->n_accept_alpns = 2;
}

static void client_h3(sl_transport_settings *s, const uint8_t *pin) { s->alpn = "h3"; }

/* One endpoint serves several ALPNs; the chosen one is visible for dispatch. */
static void test_alpn_dispatch_on_one_endpoint(void **st)
{
    harness h;
    start(&h, server_two_alpns, client_h3);
    connect_ok(&h);
    assert_string_equal(sl_conn_alpn(h.srv.conn), "h3");
    assert_string_equal(sl_conn_alpn(h.cli.conn), "h3");
    finish(&h);
    start(&h, server_two_alpns, NULL);
    connect_ok(&h);
    assert_string_equal(sl_conn_alpn(h.srv.conn), SL_ALPN);
    finish(&h);
}

/* ------------------------------------------------------------ transfers */

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

typedef struct sender {
    sl_stream *s;
    const uint8_t *data;
    size_t len, off;
    bool finished;
} sender;

static sender g_send;

/* Push as much as the stream accepts; finish at the end. */
static void pump(sender *sd)
{
    while (sd->off < sd->len) {
        size_t n = sd->len - sd->off;
        if (n > 256 * 1024)
            n = 256 * 1024;
        int rc = sl_stream_write(sd->s, sd->data + sd->off, n, NULL);
        if (rc == SL_ERR_AGAIN)
            return;
        assert_int_equal(rc, SL_OK);
        sd->off += n;
    }
    if (!sd->finished) {
        assert_int_equal(sl_stream_finish(sd->s), SL_OK);
        sd->finished = true;
    }
}

static void pump_writable(sl_stream *s, void *ud)
{
    ((side *)ud)->writable++;
    if (g_send.s == s)
        pump(&g_send);
}

static bool srv_got_fin(harness *h) { return h->srv.nrx > 0 && h->srv.rx[0].fin; }

static void transfer(size_t n, bool bidi)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    uint8_t *data = pattern(n);
    memset(&g_send, 0, sizeof g_send);
    /* The client's writable callback keeps the pump going. */
    h.cli.writable = 0;
    sl_stream *s;
    assert_int_equal(sl_stream_open(h.cli.conn, bidi, SL_PRIO_NORMAL, NULL, &s), SL_OK);
    g_send.s = s;
    g_send.data = data;
    g_send.len = n;
    pump(&g_send);
    assert_true(run_until(&h, srv_got_fin, 60000));
    assert_int_equal(h.srv.rx[0].bytes, n);
    uint8_t want[32], got[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, want);
    gnutls_hash_deinit(h.srv.rx[0].h, got);
    h.srv.rx[0].h = NULL;
    assert_memory_equal(want, got, 32);
    free(data);
    finish(&h);
}

static void writable_pump_settings(sl_transport_settings *s, const uint8_t *pin)
{
    s->cb.on_stream_writable = pump_writable;
}

static void transfer2(size_t n, bool bidi)
{
    harness h;
    start(&h, NULL, writable_pump_settings);
    connect_ok(&h);
    uint8_t *data = pattern(n);
    memset(&g_send, 0, sizeof g_send);
    sl_stream *s;
    assert_int_equal(sl_stream_open(h.cli.conn, bidi, SL_PRIO_NORMAL, NULL, &s), SL_OK);
    g_send.s = s;
    g_send.data = data;
    g_send.len = n;
    pump(&g_send);
    assert_true(run_until(&h, srv_got_fin, 120000));
    assert_int_equal(h.srv.rx[0].bytes, n);
    uint8_t want[32], got[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, want);
    gnutls_hash_deinit(h.srv.rx[0].h, got);
    h.srv.rx[0].h = NULL;
    assert_memory_equal(want, got, 32);
    free(data);
    finish(&h);
}

static void test_transfer_0B_bidi(void **st) { transfer(0, true); }
static void test_transfer_1B_bidi(void **st) { transfer(1, true); }
static void test_transfer_1MiB_bidi(void **st) { transfer(1 << 20, true); }
static void test_transfer_0B_uni(void **st) { transfer(0, false); }
static void test_transfer_1B_uni(void **st) { transfer(1, false); }
static void test_transfer_1MiB_uni(void **st) { transfer(1 << 20, false); }
static void test_transfer_64MiB_bidi(void **st) { transfer2(64u << 20, true); }
static void test_transfer_64MiB_uni(void **st) { transfer2(64u << 20, false); }

/* ------------------------------------------------------- many streams */

static int g_nstreams;
static bool all_streams_in(harness *h)
{
    int fins = 0;
    for (int i = 0; i < h->srv.nrx; i++)
        fins += h->srv.rx[i].fin && h->srv.rx[i].bytes == 1000;
    return fins == g_nstreams;
}

static void test_1000_concurrent_streams(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    g_nstreams = 1000;
    uint8_t *data = pattern(1000);
    for (int i = 0; i < g_nstreams; i++) {
        sl_stream *s;
        assert_int_equal(sl_stream_open(h.cli.conn, true, i % SL_PRIO_COUNT, NULL, &s), SL_OK);
        assert_int_equal(sl_stream_write(s, data, 1000, NULL), SL_OK);
        assert_int_equal(sl_stream_finish(s), SL_OK);
    }
    assert_true(run_until(&h, all_streams_in, 30000));
    free(data);
    finish(&h);
}

/* ------------------------------------------------------------ datagrams */

static bool ten_dgrams(harness *h) { return h->srv.dgrams >= 10 && h->cli.dgrams >= 10; }

static void test_datagrams_both_ways_and_oversize(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    size_t max = sl_datagram_max(h.cli.conn);
    assert_true(max >= 1000);
    assert_true(max < 1500);
    uint8_t buf[2000];
    memset(buf, 7, sizeof buf);
    assert_int_equal(sl_datagram_send(h.cli.conn, buf, max + 1), SL_ERR_MSG_TOO_BIG);
    size_t smax = sl_datagram_max(h.srv.conn);
    assert_true(smax >= 1000);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sl_datagram_send(h.cli.conn, buf, 100), SL_OK);
        assert_int_equal(sl_datagram_send(h.srv.conn, buf, smax), SL_OK);
    }
    assert_true(run_until(&h, ten_dgrams, 5000));
    assert_int_equal(h.srv.dgram_bytes, 1000);
    assert_int_equal(h.cli.dgram_bytes, 10 * smax);
    sl_conn_stats cs;
    assert_int_equal(sl_conn_stats_get(h.cli.conn, &cs), SL_OK);
    assert_int_equal(cs.datagrams_sent, 10);
    assert_int_equal(cs.datagrams_recv, 10);
    finish(&h);
}

/* ---------------------------------------------------------- slow reader */

static bool stalled(harness *h)
{
    return g_send.off > 0 && g_send.off < g_send.len && h->srv.nrx > 0 &&
           h->srv.rx[0].bytes >= (128u << 10);
}

static void test_slow_reader_bounds_sender(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    h.srv.consume = false; /* the server never returns credit */
    connect_ok(&h);
    size_t n = 64u << 20;
    uint8_t *data = pattern(n);
    memset(&g_send, 0, sizeof g_send);
    sl_stream *s;
    assert_int_equal(sl_stream_open(h.cli.conn, true, SL_PRIO_NORMAL, NULL, &s), SL_OK);
    g_send.s = s;
    g_send.data = data;
    g_send.len = n;
    pump(&g_send);
    /* The receiver got the initial window (min(stream_window, 2 x
     * bulk_window): a stream gets its class's window at its first consume,
     * which never comes) and nothing more arrives. */
    assert_true(run_until(&h, stalled, 10000));
    run_until(&h, NULL, 300);
    assert_int_equal(h.srv.rx[0].bytes, 128u << 10);
    sl_stream_stats ss;
    assert_int_equal(sl_stream_stats_get(s, &ss), SL_OK);
    assert_true(ss.buffered <= (8u << 20));
    /* The sender accepted at most its buffer plus what the receiver took. */
    assert_true(g_send.off <= (8u << 20) + (1u << 20));
    assert_int_equal(sl_stream_write(s, data, 2u << 20, NULL), SL_ERR_AGAIN);
    free(data);
    finish(&h);
}

/* ---------------------------------------------------- close and timeout */

static bool srv_closed(harness *h) { return h->srv.closed > 0; }

static void test_app_close_reaches_peer(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    assert_int_equal(sl_conn_close(h.cli.conn, 42, "bye"), SL_OK);
    assert_true(run_until(&h, srv_closed, 5000));
    assert_true(h.srv.why.app);
    assert_int_equal(h.srv.why.code, 42);
    assert_string_equal(h.srv.reason, "bye");
    assert_int_equal(h.cli.closed, 1);
    finish(&h);
}

static void short_idle(sl_transport_settings *s)
{
    s->idle_timeout_ms = 300;
    s->keepalive_ms = 0;
}

static void short_idle_cli(sl_transport_settings *s, const uint8_t *pin) { short_idle(s); }

static bool both_closed(harness *h) { return h->srv.closed && h->cli.closed; }

static void test_idle_timeout(void **st)
{
    harness h;
    start(&h, short_idle, short_idle_cli);
    connect_ok(&h);
    uint64_t t0 = uv_hrtime();
    assert_true(run_until(&h, both_closed, 5000));
    assert_true(uv_hrtime() - t0 >= 250 * 1000000ull);
    assert_int_equal(h.cli.why.err, SL_ERR_TIMEOUT);
    assert_int_equal(h.srv.why.err, SL_ERR_TIMEOUT);
    /* and they say which timeout it was */
    assert_non_null(strstr(h.cli.reason, "idle timeout"));
    assert_non_null(strstr(h.srv.reason, "idle timeout"));
    finish(&h);
}

static void fast_keepalive(sl_transport_settings *s, const uint8_t *pin) { s->keepalive_ms = 100; }

static void test_keepalive_keeps_idle_conn(void **st)
{
    harness h;
    start(&h, short_idle, fast_keepalive);
    /* The client pings every 100 ms: the server's 300 ms idle timer never fires. */
    connect_ok(&h);
    run_until(&h, NULL, 900);
    assert_int_equal(h.srv.closed, 0);
    assert_int_equal(h.cli.closed, 0);
    finish(&h);
}

/* ------------------------------------------------------- reset, stop */

static bool srv_saw_reset(harness *h) { return h->srv.nrx > 0 && h->srv.rx[0].reset; }

static void test_stream_reset_reaches_peer(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    sl_stream *s;
    assert_int_equal(sl_stream_open(h.cli.conn, true, SL_PRIO_HIGH, NULL, &s), SL_OK);
    assert_int_equal(sl_stream_write(s, "abc", 3, NULL), SL_OK);
    run_until(&h, NULL, 100);
    assert_int_equal(sl_stream_reset(s, 99), SL_OK);
    assert_true(run_until(&h, srv_saw_reset, 5000));
    assert_int_equal(h.srv.rx[0].reset_code, 99);
    assert_int_equal(sl_stream_write(s, "x", 1, NULL), SL_ERR_CLOSED);
    finish(&h);
}

/* ------------------------------------------------ resumption and 0-RTT */

static bool srv_two_ready(harness *h) { return h->srv.ready >= 2; }

static void test_resumption_with_0rtt(void **st)
{
    harness h;
    start(&h, NULL, NULL);
    connect_ok(&h);
    sl_conn_stats cs;
    assert_int_equal(sl_conn_stats_get(h.cli.conn, &cs), SL_OK);
    assert_false(cs.resumed);
    run_until(&h, NULL, 100); /* the session ticket and NEW_TOKEN arrive */
    assert_int_equal(sl_conn_close(h.cli.conn, 0, "again"), SL_OK);
    assert_true(run_until(&h, both_closed, 5000));
    h.cli.ready = 0;
    /* Second connection: a replay-safe stream written before the handshake
     * completes goes as 0-RTT. */
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    sl_stream *s;
    assert_int_equal(sl_stream_open(c, true, SL_PRIO_HIGH, NULL, &s), SL_OK);
    assert_int_equal(sl_stream_allow_early_data(s), SL_OK);
    assert_int_equal(sl_stream_write(s, "early bytes", 11, NULL), SL_OK);
    assert_int_equal(sl_stream_finish(s), SL_OK);
    assert_true(run_until(&h, srv_two_ready, 5000));
    assert_true(run_until(&h, both_ready, 5000));
    bool got = false;
    for (int i = 0; i < h.srv.nrx; i++)
        got |= h.srv.rx[i].fin && h.srv.rx[i].bytes == 11;
    if (!got)
        assert_true(run_until(&h, srv_got_fin, 5000));
    assert_int_equal(sl_conn_stats_get(c, &cs), SL_OK);
    assert_true(cs.resumed);
    assert_true(cs.early_data_accepted);
    assert_int_equal(sl_conn_stats_get(h.srv.conn, &cs), SL_OK);
    assert_true(cs.resumed);
    assert_true(cs.early_data_accepted);
    /* The key-derived peer id survives resumption. */
    uint64_t nid = 0, own = 0;
    assert_int_equal(sl_conn_peer_node_id(c, &nid), SL_OK);
    assert_int_equal(sl_transport_node_id(h.srv.t, &own), SL_OK);
    assert_int_equal(nid, own);
    finish(&h);
}

static void no_early(sl_transport_settings *s) { s->accept_early_data = false; }

static bool srv_has_11(harness *h)
{
    for (int i = 0; i < h->srv.nrx; i++)
        if (h->srv.rx[i].fin && h->srv.rx[i].bytes == 11)
            return true;
    return false;
}

static void test_rejected_early_data_is_resent(void **st)
{
    harness h;
    start(&h, no_early, NULL);
    connect_ok(&h);
    run_until(&h, NULL, 100);
    assert_int_equal(sl_conn_close(h.cli.conn, 0, "again"), SL_OK);
    assert_true(run_until(&h, both_closed, 5000));
    h.cli.ready = 0;
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    sl_stream *s;
    assert_int_equal(sl_stream_open(c, true, SL_PRIO_HIGH, NULL, &s), SL_OK);
    assert_int_equal(sl_stream_allow_early_data(s), SL_OK);
    assert_int_equal(sl_stream_write(s, "early bytes", 11, NULL), SL_OK);
    assert_int_equal(sl_stream_finish(s), SL_OK);
    assert_true(run_until(&h, srv_has_11, 5000));
    sl_conn_stats cs;
    assert_int_equal(sl_conn_stats_get(c, &cs), SL_OK);
    assert_true(cs.resumed);
    assert_false(cs.early_data_accepted);
    finish(&h);
}

static void no_session_cache(sl_transport_settings *s, const uint8_t *pin)
{
    s->session_cache = false;
}

static void test_no_early_data_without_resumption(void **st)
{
    harness h;
    start(&h, NULL, no_session_cache);
    connect_ok(&h);
    run_until(&h, NULL, 100);
    assert_int_equal(sl_conn_close(h.cli.conn, 0, "again"), SL_OK);
    assert_true(run_until(&h, both_closed, 5000));
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    /* Without remembered parameters no stream can exist before the handshake. */
    sl_stream *s;
    assert_int_equal(sl_stream_open(c, true, SL_PRIO_HIGH, NULL, &s), SL_ERR_LIMIT);
    assert_true(run_until(&h, srv_two_ready, 5000));
    sl_conn_stats cs;
    assert_int_equal(sl_conn_stats_get(h.srv.conn, &cs), SL_OK);
    assert_false(cs.resumed);
    finish(&h);
}

/* ------------------------------------------------------ address validation */

static void retry_always(sl_transport_settings *s) { s->retry = SL_RETRY_ALWAYS; }

static void test_retry_then_new_token(void **st)
{
    harness h;
    start(&h, retry_always, NULL);
    connect_ok(&h);
    sl_transport_stats ts;
    assert_int_equal(sl_transport_stats_get(h.srv.t, &ts), SL_OK);
    assert_int_equal(ts.retries_sent, 1);
    assert_int_equal(ts.accepted, 1);
    run_until(&h, NULL, 100); /* NEW_TOKEN arrives */
    assert_int_equal(sl_conn_close(h.cli.conn, 0, "again"), SL_OK);
    assert_true(run_until(&h, both_closed, 5000));
    /* The NEW_TOKEN token validates the address: no second Retry. */
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(&h, srv_two_ready, 5000));
    assert_int_equal(sl_transport_stats_get(h.srv.t, &ts), SL_OK);
    assert_int_equal(ts.retries_sent, 1);
    assert_int_equal(ts.accepted, 2);
    finish(&h);
}

static void retry_always_no_cache(sl_transport_settings *s, const uint8_t *pin)
{
    s->session_cache = false;
}

static void test_retry_every_time_without_token(void **st)
{
    harness h;
    start(&h, retry_always, retry_always_no_cache);
    connect_ok(&h);
    assert_int_equal(sl_conn_close(h.cli.conn, 0, "again"), SL_OK);
    assert_true(run_until(&h, both_closed, 5000));
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", server_port, NULL, &c), SL_OK);
    assert_true(run_until(&h, srv_two_ready, 5000));
    sl_transport_stats ts;
    assert_int_equal(sl_transport_stats_get(h.srv.t, &ts), SL_OK);
    assert_int_equal(ts.retries_sent, 2);
    finish(&h);
}

/* --------------------------------------------- restart -> stateless reset */

static char rs_dir[64], rs_cert[128], rs_key[128];

/* The child: a server with the key files, until it is killed. */
static void child_server(int fd)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_transport_settings ss;
    sl_transport_settings_default(&ss);
    ss.loop = &loop;
    ss.tls.cert_file = rs_cert;
    ss.tls.key_file = rs_key;
    ss.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    sl_transport *t;
    uint16_t port = 0;
    if (sl_quic_new(&ss, &t) || sl_transport_listen(t, "127.0.0.1", 0) ||
        sl_transport_local_port(t, &port))
        _exit(1);
    if (write(fd, &port, sizeof port) != sizeof port)
        _exit(1);
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGKILL (bounded by the parent) */
    _exit(0);
}

static bool cli_closed_any(harness *h) { return h->cli.closed > 0; }
static bool cli_ready1(harness *h) { return h->cli.ready > 0; }

static void test_restart_with_same_key_resets_peer(void **st)
{
    snprintf(rs_dir, sizeof rs_dir, "/tmp/sl_quic_rs_XXXXXX");
    assert_non_null(mkdtemp(rs_dir));
    snprintf(rs_cert, sizeof rs_cert, "%s/node.pem", rs_dir);
    snprintf(rs_key, sizeof rs_key, "%s/node.key", rs_dir);
    sl__tls_cert_opts o;
    memset(&o, 0, sizeof o);
    assert_int_equal(sl__tls_make_dev_cert(rs_cert, rs_key, &o), SL_OK);
    uint8_t pin[32];
    assert_int_equal(sl__tls_fingerprint(rs_cert, pin, NULL, NULL), SL_OK);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_server(fds[1]);
    }
    close(fds[1]);
    uint16_t port = 0;
    assert_int_equal(read(fds[0], &port, sizeof port), (ssize_t)sizeof port);
    close(fds[0]);

    harness h;
    memset(&h, 0, sizeof h);
    H = &h;
    uv_loop_init(&h.loop);
    uv_timer_init(&h.loop, &h.watchdog);
    uv_idle_init(&h.loop, &h.check);
    sl_transport_settings cs;
    settings_for(&cs, &h.cli, &h);
    cs.tls.verify = SL_VERIFY_PIN_CERT;
    memcpy(cs.tls.pin, pin, 32);
    assert_int_equal(sl_quic_new(&cs, &h.cli.t), SL_OK);
    sl_conn *c;
    assert_int_equal(sl_transport_connect(h.cli.t, "127.0.0.1", port, NULL, &c), SL_OK);
    bool ok = run_until(&h, cli_ready1, 10000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(ok);

    /* The node comes back with the same key on the same port. */
    sl_transport_settings ss;
    settings_for(&ss, &h.srv, &h);
    ss.tls.cert_file = rs_cert;
    ss.tls.key_file = rs_key;
    ss.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    assert_int_equal(sl_quic_new(&ss, &h.srv.t), SL_OK);
    assert_int_equal(sl_transport_listen(h.srv.t, "127.0.0.1", port), SL_OK);
    /* The key-bound secret: another endpoint on the same key derives the
     * same one; another label or another key gives another. */
    sl_transport *twin;
    assert_int_equal(sl_quic_new(&ss, &twin), SL_OK);
    uint8_t sa[32], sb[32], sc[32];
    assert_int_equal(sl_transport_key_secret(h.srv.t, "test label", sa), SL_OK);
    assert_int_equal(sl_transport_key_secret(twin, "test label", sb), SL_OK);
    assert_memory_equal(sa, sb, 32);
    assert_int_equal(sl_transport_key_secret(twin, "test label 2", sb), SL_OK);
    assert_memory_not_equal(sa, sb, 32);
    assert_int_equal(sl_transport_key_secret(h.cli.t, "test label", sc), SL_OK);
    assert_memory_not_equal(sa, sc, 32);
    assert_int_equal(sl_transport_key_secret(twin, NULL, sc), SL_ERR_INVAL);
    sl_transport_del(twin);

    /* The client's next packets meet the new process: it answers each with
     * a Stateless Reset and the client closes at the first, long before its
     * 30 s idle timeout. (Several packets, so that resets also arrive after
     * the client let the connection go.) */
    sl_stream *s;
    static uint8_t hello[4000];
    memset(hello, 'h', sizeof hello);
    assert_int_equal(sl_stream_open(h.cli.conn, true, SL_PRIO_NORMAL, NULL, &s), SL_OK);
    assert_int_equal(sl_stream_write(s, hello, sizeof hello, NULL), SL_OK);
    assert_true(run_until(&h, cli_closed_any, 10000));
    run_until(&h, NULL, 300); /* the later resets arrive */
    assert_int_equal(h.cli.why.err, SL_ERR_CLOSED);
    assert_non_null(strstr(h.cli.reason, "stateless reset"));
    sl_transport_stats ts;
    assert_int_equal(sl_transport_stats_get(h.srv.t, &ts), SL_OK);
    assert_true(ts.resets_sent >= 1);
    /* The client recognised the resets by their token, the later ones too
     * (the connection was gone by then): it never answered a reset with a
     * reset of its own (they once ping-ponged). */
    assert_int_equal(sl_transport_stats_get(h.cli.t, &ts), SL_OK);
    assert_int_equal(ts.resets_sent, 0);
    finish(&h);
    unlink(rs_cert);
    unlink(rs_key);
    rmdir(rs_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_pinned),
        cmocka_unit_test(test_handshake_wrong_pin_fails),
        cmocka_unit_test(test_handshake_alpn_mismatch_fails),
        cmocka_unit_test(test_alpn_dispatch_on_one_endpoint),
        cmocka_unit_test(test_transfer_0B_bidi),
        cmocka_unit_test(test_transfer_1B_bidi),
        cmocka_unit_test(test_transfer_1MiB_bidi),
        cmocka_unit_test(test_transfer_0B_uni),
        cmocka_unit_test(test_transfer_1B_uni),
        cmocka_unit_test(test_transfer_1MiB_uni),
        cmocka_unit_test(test_transfer_64MiB_bidi),
        cmocka_unit_test(test_transfer_64MiB_uni),
        cmocka_unit_test(test_1000_concurrent_streams),
        cmocka_unit_test(test_datagrams_both_ways_and_oversize),
        cmocka_unit_test(test_slow_reader_bounds_sender),
        cmocka_unit_test(test_app_close_reaches_peer),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_keepalive_keeps_idle_conn),
        cmocka_unit_test(test_stream_reset_reaches_peer),
        cmocka_unit_test(test_resumption_with_0rtt),
        cmocka_unit_test(test_no_early_data_without_resumption),
        cmocka_unit_test(test_rejected_early_data_is_resent),
        cmocka_unit_test(test_retry_then_new_token),
        cmocka_unit_test(test_retry_every_time_without_token),
        cmocka_unit_test(test_restart_with_same_key_resets_peer),
    };
    return cmocka_run_group_tests_name("quic", tests, NULL, NULL);
}
