/*
 * webtransport_client.c: the browser transport (sl_web_transport_new) in
 * a real Chromium page against tests/wt_echo_server, through the public
 * transport API only. Built by wasm/CMakeLists.txt into a test-only module
 * (build-wasm/tests/webtransport-client.mjs) and run by
 * tests/browser_webtransport_test.sh (tests/browser/webtransport_run.mjs),
 * which passes the server's port, its certificate's SHA-256 and the token
 * as arguments.
 *
 * The steps run one after the other; each has a start and a poll function,
 * polled after every transport callback and every 20 ms, with a deadline.
 * Output: "ok <check>" / "FAIL <check>: <detail>" / "note ..." lines, then
 * "DONE passed=P failed=F". Every transport uses a counting allocator, and
 * the program checks at the end that all memory was returned and every
 * stream and connection handle it saw was reported closed, and that no
 * closed callback ran inside the call that caused it.
 */
#include <emscripten.h>
#include <emscripten/eventloop.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "starling/web.h"

#define MIB (1024u * 1024u)
#define FLOW_TOTAL (48u * MIB) /* the SEND of the flow-control step */
#define FLOW_HOLD (1u * MIB)   /* consumed before the consumer stops */

static int passed, failed;
static void check(const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(const char *name, bool ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
        return;
    }
    failed++;
    char detail[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    printf("FAIL %s: %s\n", name, detail);
}

/* ------------------------------------------------- counting allocator */

static long long mem_blocks, mem_bytes;
typedef struct {
    size_t n;
    size_t pad;
} hdr;
static void *c_malloc(size_t n, void *ud)
{
    hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->n = n;
    mem_blocks++;
    mem_bytes += (long long)n;
    return h + 1;
}
static void c_free(void *p, void *ud)
{
    if (!p)
        return;
    hdr *h = (hdr *)p - 1;
    mem_blocks--;
    mem_bytes -= (long long)h->n;
    free(h);
}
static void *c_calloc(size_t n, size_t sz, void *ud)
{
    void *p = c_malloc(n * sz, ud);
    if (p)
        memset(p, 0, n * sz);
    return p;
}
static void *c_realloc(void *p, size_t n, void *ud)
{
    void *q = c_malloc(n, ud);
    if (q && p) {
        size_t old = ((hdr *)p - 1)->n;
        memcpy(q, p, old < n ? old : n);
        c_free(p, ud);
    }
    return q;
}
static const sl_mem counting = {c_malloc, c_free, c_calloc, c_realloc, NULL};

/* ------------------------------------------------------ test objects */

static uint8_t pattern_at(uint64_t i)
{
    return (uint8_t)((i * 7 + (i >> 12)) & 255);
}

typedef struct tconn {
    sl_conn *c;
    bool ready, closed;
    int err;
    bool by_peer, app;
    uint64_t code;
    char reason[256];
    int streams_open; /* handles of this connection not yet closed */
    bool streams_left_at_close;
    int dgrams;
    char dgram[64];
} tconn;

typedef struct tstream {
    sl_stream *s;
    tconn *tc;
    const uint8_t *out; /* to write (not owned) */
    size_t out_len, out_off;
    bool fin_after; /* finish once out is written */
    bool small;     /* write in pieces of 1..2048 bytes, lengths varying */
    unsigned writes;
    bool again;   /* saw SL_ERR_AGAIN */
    int writable; /* on_stream_writable calls */
    uint8_t *in;  /* received (if keep) */
    size_t in_len, in_cap;
    bool keep;
    bool check_pattern; /* check received bytes against pattern_at() */
    bool pattern_bad;
    uint64_t recv;
    bool fin, reset, stopped, closed;
    uint64_t reset_code, stop_code;
    bool hold; /* stop consuming once consumed >= hold_after */
    uint64_t hold_after, consumed, held;
    uint64_t max_unconsumed; /* largest recv - consumed seen */
} tstream;

static struct {
    sl_transport *t1, *t2, *t3;
    tconn c1, c2, c3a, c3b, c3c;
    int streams_opened, streams_closed, conns_opened, conns_closed;
    int aborts; /* on_stream_reset + on_stream_stop_sending calls */
    int aborts_at_close;
    bool in_call; /* inside a call that may end something */
    bool closed_inside_call;
    bool t_closed[4];
    tstream *incoming[16]; /* streams the server opened */
    int n_incoming;
    double t0;   /* step start */
    double mark; /* a time inside a step */
    int phase;
    char host[64];
    int port;
    uint8_t pin[32];
    const char *token;
} g;

static tstream *ts_new(tconn *tc, bool keep)
{
    tstream *ts = calloc(1, sizeof *ts);
    ts->tc = tc;
    ts->keep = keep;
    return ts;
}

static void ts_free(tstream *ts)
{
    if (ts) {
        free(ts->in);
        free(ts);
    }
}

/* Write what is left of ts->out, then FIN if asked. */
static void pump(tstream *ts)
{
    while (ts->s && ts->out_off < ts->out_len) {
        size_t n = ts->out_len - ts->out_off;
        size_t most = ts->small ? 1 + (ts->writes * 577u) % 2048 : 256 * 1024;
        if (n > most)
            n = most;
        int rc = sl_stream_write(ts->s, ts->out + ts->out_off, n, NULL);
        if (rc == SL_ERR_AGAIN) {
            ts->again = true;
            return;
        }
        if (rc != SL_OK)
            return;
        ts->out_off += n;
        ts->writes++;
    }
    if (ts->s && ts->fin_after && ts->out_off == ts->out_len) {
        ts->fin_after = false;
        sl_stream_finish(ts->s);
    }
}

static tstream *open_stream(tconn *tc, bool bidi, int prio, const void *out, size_t len, bool fin)
{
    tstream *ts = ts_new(tc, true);
    sl_stream *s;
    int rc = sl_stream_open(tc->c, bidi, prio, ts, &s);
    if (rc != SL_OK) {
        check("sl_stream_open", false, "%s", sl_err_name(rc));
        ts_free(ts);
        return NULL;
    }
    ts->s = s;
    tc->streams_open++;
    g.streams_opened++;
    ts->out = out;
    ts->out_len = len;
    ts->fin_after = fin;
    pump(ts);
    return ts;
}

static tstream *command(tconn *tc, const char *line)
{
    return open_stream(tc, true, SL_PRIO_HIGH, line, strlen(line), false);
}

/* ------------------------------------------------------- callbacks */

static void poll_now(void);

static void on_ready(sl_conn *c, void *ud)
{
    tconn *tc = sl_conn_data(c);
    tc->ready = true;
    poll_now();
}

static void on_conn_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    tconn *tc = sl_conn_data(c);
    if (g.in_call)
        g.closed_inside_call = true;
    tc->closed = true;
    tc->err = why->err;
    tc->by_peer = why->by_peer;
    tc->app = why->app;
    tc->code = why->code;
    snprintf(tc->reason, sizeof tc->reason, "%s", why->reason ? why->reason : "(null)");
    tc->streams_left_at_close = tc->streams_open != 0;
    tc->c = NULL;
    g.conns_closed++;
    poll_now();
}

static void on_stream_open(sl_stream *s, void *ud)
{
    tconn *tc = sl_conn_data(sl_stream_conn(s));
    tstream *ts = ts_new(tc, true);
    ts->s = s;
    sl_stream_set_data(s, ts);
    tc->streams_open++;
    g.streams_opened++;
    if (g.n_incoming < 16)
        g.incoming[g.n_incoming++] = ts;
}

static void on_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    tstream *ts = sl_stream_data(s);
    if (ts->check_pattern) {
        for (size_t i = 0; i < len && !ts->pattern_bad; i++)
            if (data[i] != pattern_at(ts->recv + i))
                ts->pattern_bad = true;
    } else if (ts->keep && len) {
        if (ts->in_len + len > ts->in_cap) {
            ts->in_cap = (ts->in_len + len) * 2;
            ts->in = realloc(ts->in, ts->in_cap);
        }
        memcpy(ts->in + ts->in_len, data, len);
        ts->in_len += len;
    }
    ts->recv += len;
    if (fin)
        ts->fin = true;
    if (ts->hold && ts->consumed >= ts->hold_after) {
        ts->held += len;
    } else {
        sl_stream_consume(s, len);
        ts->consumed += len;
    }
    if (ts->recv - ts->consumed > ts->max_unconsumed)
        ts->max_unconsumed = ts->recv - ts->consumed;
    poll_now();
}

static void on_writable(sl_stream *s, void *ud)
{
    tstream *ts = sl_stream_data(s);
    ts->writable++;
    pump(ts);
}

static void on_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    tstream *ts = sl_stream_data(s);
    g.aborts++;
    ts->reset = true;
    ts->reset_code = code;
    poll_now();
}

static void on_stop_sending(sl_stream *s, uint64_t code, void *ud)
{
    tstream *ts = sl_stream_data(s);
    g.aborts++;
    ts->stopped = true;
    ts->stop_code = code;
    poll_now();
}

static void on_stream_closed(sl_stream *s, void *ud)
{
    tstream *ts = sl_stream_data(s);
    if (g.in_call)
        g.closed_inside_call = true;
    ts->closed = true;
    ts->s = NULL;
    ts->tc->streams_open--;
    g.streams_closed++;
    poll_now();
}

static void on_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    tconn *tc = sl_conn_data(c);
    tc->dgrams++;
    snprintf(tc->dgram, sizeof tc->dgram, "%.*s", (int)(len < 63 ? len : 63), (const char *)data);
    poll_now();
}

static void on_transport_closed(sl_transport *t, void *ud)
{
    if (g.in_call)
        g.closed_inside_call = true;
    g.t_closed[(intptr_t)ud] = true;
    poll_now();
}

static int new_transport(const char *token, sl_transport **out)
{
    static sl_webtransport_settings ws[4];
    static int n;
    sl_webtransport_settings *w = &ws[n++ & 3];
    memset(w, 0, sizeof *w);
    w->path = "/starling";
    w->token = token;
    sl_transport_settings s;
    sl_transport_settings_default(&s);
    s.mem = &counting;
    s.webtransport = w;
    s.tls.verify = SL_VERIFY_PIN_CERT;
    memcpy(s.tls.pin, g.pin, 32);
    s.max_stream_buffer = 1 * MIB; /* so the 3 MiB echo meets SL_ERR_AGAIN */
    s.cb.on_conn_ready = on_ready;
    s.cb.on_conn_closed = on_conn_closed;
    s.cb.on_stream_open = on_stream_open;
    s.cb.on_stream_data = on_stream_data;
    s.cb.on_stream_writable = on_writable;
    s.cb.on_stream_reset = on_stream_reset;
    s.cb.on_stream_stop_sending = on_stop_sending;
    s.cb.on_stream_closed = on_stream_closed;
    s.cb.on_datagram = on_datagram;
    return sl_web_transport_new(&s, out);
}

static bool connect_to(sl_transport *t, tconn *tc)
{
    memset(tc, 0, sizeof *tc);
    int rc = sl_transport_connect(t, g.host, (uint16_t)g.port, tc, &tc->c);
    if (rc == SL_OK)
        g.conns_opened++;
    else
        check("sl_transport_connect", false, "%s", sl_err_name(rc));
    return rc == SL_OK;
}

/* ----------------------------------------------------------- steps */

static double now(void)
{
    return emscripten_get_now();
}
static double since(void)
{
    return now() - g.t0;
}

/* Parse a STATS answer. */
static bool parse_stats(const tstream *ts, unsigned long long *w, unsigned long long *a,
                        unsigned long long *b, int *done)
{
    char buf[200];
    size_t n = ts->in_len < sizeof buf - 1 ? ts->in_len : sizeof buf - 1;
    memcpy(buf, ts->in ? (const char *)ts->in : "", n);
    buf[n] = 0;
    unsigned long long total;
    return sscanf(buf, "written=%llu acked=%llu buffered=%llu total=%llu done=%d", w, a, b, &total,
                  done) == 5;
}

static uint8_t *big;    /* pattern bytes for the echoes */
static tstream *st[16]; /* the current step's streams */
static int nst;
static const size_t sizes[] = {0, 1, 1000, 65543, 300000, 3 * MIB + 5};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* 0: connect with the right token. */
static void s_connect_start(void)
{
    int rc = new_transport(g.token, &g.t1);
    check("sl_web_transport_new", rc == SL_OK, "%s", sl_err_name(rc));
    if (rc == SL_OK)
        connect_to(g.t1, &g.c1);
}
static int s_connect_poll(void)
{
    if (g.c1.closed) {
        check("session ready", false, "closed: %s %s", sl_err_name(g.c1.err), g.c1.reason);
        return -1;
    }
    if (!g.c1.ready)
        return 0;
    uint64_t id;
    check("session ready", true, NULL);
    check("sl_conn_is_client", sl_conn_is_client(g.c1.c), NULL);
    check("sl_conn_peer_node_id is NOTFOUND", sl_conn_peer_node_id(g.c1.c, &id) == SL_ERR_NOTFOUND,
          NULL);
    check("sl_conn_alpn is h3", sl_conn_alpn(g.c1.c) && !strcmp(sl_conn_alpn(g.c1.c), "h3"), NULL);
    check("sl_transport_node_id is NOTFOUND", sl_transport_node_id(g.t1, &id) == SL_ERR_NOTFOUND,
          NULL);
    check("sl_transport_listen is UNSUPPORTED",
          sl_transport_listen(g.t1, "127.0.0.1", 0) == SL_ERR_UNSUPPORTED, NULL);
    return 1;
}

/* 1: bidi echo of several sizes, concurrently, byte for byte. */
static void s_echo_start(void)
{
    nst = 0;
    for (size_t i = 0; i < NSIZES; i++)
        st[nst++] = open_stream(&g.c1, true, SL_PRIO_NORMAL, big, sizes[i], true);
}
static int s_echo_poll(void)
{
    for (int i = 0; i < nst; i++)
        if (!st[i] || !st[i]->fin)
            return 0;
    /* both directions ended: closed follows in a later macrotask */
    if (since() < 5000)
        for (int i = 0; i < nst; i++)
            if (!st[i]->closed)
                return 0;
    for (size_t i = 0; i < NSIZES; i++) {
        char name[64];
        snprintf(name, sizeof name, "bidi echo of %zu bytes", sizes[i]);
        check(name, st[i]->in_len == sizes[i] && (!sizes[i] || !memcmp(st[i]->in, big, sizes[i])),
              "got %zu bytes", st[i]->in_len);
        free(st[i]->in);
        st[i]->in = NULL;
    }
    tstream *last = st[NSIZES - 1];
    check("3 MiB write met SL_ERR_AGAIN (1 MiB stream buffer) and on_stream_writable",
          last->again && last->writable > 0, "again=%d writable=%d", last->again, last->writable);
    bool ids = true;
    for (int i = 0; i < nst; i++)
        ids = ids && st[i]->closed;
    check("echo streams closed after both FINs", ids, NULL);
    return 1;
}

/* 1b: many small writes, made before the browser's stream exists and
 * while the writer is backed up (the stream buffer is 1 MiB): JavaScript
 * copies small writes into buffers it uses again, only once the write that
 * carried them settled; the echo must come back byte for byte. */
#define SMALL_TOTAL (1536u * 1024u)
static void s_small_start(void)
{
    nst = 0;
    tstream *ts = open_stream(&g.c1, true, SL_PRIO_NORMAL, big, 0, false); /* nothing yet */
    if (!ts)
        return;
    ts->out_len = SMALL_TOTAL;
    ts->fin_after = true;
    ts->small = true;
    pump(ts);
    st[nst++] = ts;
}
static int s_small_poll(void)
{
    if (nst < 1 || !st[0] || !st[0]->fin)
        return nst < 1 ? -1 : 0;
    tstream *ts = st[0];
    check("echo of 1.5 MiB written in pieces of 1..2048 bytes, byte for byte",
          ts->in_len == SMALL_TOTAL && !memcmp(ts->in, big, SMALL_TOTAL),
          "got %zu bytes in %u writes", ts->in_len, ts->writes);
    check("the small writes met SL_ERR_AGAIN (so some waited in the browser)", ts->again,
          "%u writes", ts->writes);
    free(ts->in);
    ts->in = NULL;
    return 1;
}

/* 2: uni stream echo (the server answers on a stream it opens). */
static void s_uni_start(void)
{
    g.n_incoming = 0;
    nst = 0;
    st[nst++] = open_stream(&g.c1, false, SL_PRIO_NORMAL, big, 200000, true);
}
static int s_uni_poll(void)
{
    if (g.n_incoming < 1 || !g.incoming[0]->fin)
        return 0;
    tstream *in = g.incoming[0];
    check("uni stream echoed on a server-opened uni stream",
          in->in_len == 200000 && !memcmp(in->in, big, 200000), "got %zu", in->in_len);
    check("stream ids keep QUIC's low bits",
          (sl_stream_id(st[0]->s ? st[0]->s : in->s) & 3) == (st[0]->s ? 2 : 3) &&
              (in->s == NULL || (sl_stream_id(in->s) & 3) == 3),
          NULL);
    return 1;
}

/* 3: datagrams. */
static int dgram_tries;
static void s_dgram_start(void)
{
    dgram_tries = 0;
    g.mark = 0;
    size_t max = sl_datagram_max(g.c1.c);
    printf("note datagram_max=%zu\n", max);
    check("sl_datagram_max > 0", max > 0, "%zu", max);
    check("datagram over the max is MSG_TOO_BIG",
          sl_datagram_send(g.c1.c, big, max + 1) == SL_ERR_MSG_TOO_BIG, NULL);
}
static int s_dgram_poll(void)
{
    if (g.c1.dgrams > 0) {
        check("datagram echoed", !strcmp(g.c1.dgram, "hello datagram"), "%s", g.c1.dgram);
        return 1;
    }
    if (now() - g.mark > 200) {
        if (++dgram_tries > 25) {
            check("datagram echoed", false, "nothing after 25 tries");
            return -1;
        }
        g.mark = now();
        int rc = sl_datagram_send(g.c1.c, "hello datagram", 14);
        if (rc)
            check("sl_datagram_send", false, "%s", sl_err_name(rc));
    }
    return 0;
}

/* 4: priorities: every class opens, one changes class, all echo. */
static void s_prio_start(void)
{
    static char msg[SL_PRIO_COUNT][16];
    nst = 0;
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        snprintf(msg[p], sizeof msg[p], "prio-%d", p);
        st[nst++] = open_stream(&g.c1, true, p, msg[p], strlen(msg[p]), true);
    }
    int rc = st[SL_PRIO_BACKGROUND]
                 ? sl_stream_set_prio(st[SL_PRIO_BACKGROUND]->s, SL_PRIO_CRITICAL)
                 : -1;
    check("sl_stream_set_prio",
          rc == SL_OK && sl_stream_prio(st[SL_PRIO_BACKGROUND]->s) == SL_PRIO_CRITICAL, "%d", rc);
}
static int s_prio_poll(void)
{
    for (int i = 0; i < nst; i++)
        if (!st[i] || !st[i]->fin)
            return 0;
    bool ok = true;
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        char want[16];
        snprintf(want, sizeof want, "prio-%d", p);
        ok = ok && st[p]->in_len == strlen(want) && !memcmp(st[p]->in, want, st[p]->in_len);
    }
    check("streams of every priority class echo (sendOrder set)", ok, NULL);
    return 1;
}

/* 5: flow control. The consumer stops after FLOW_HOLD bytes: the server's
 * side must stop (its acked bytes stay put below the total), then finish
 * once the consumer resumes. */
static tstream *flow, *q1, *q2, *q3;
static unsigned long long a1, a2, w1, w2;
static void s_flow_start(void)
{
    static char line[64];
    snprintf(line, sizeof line, "SEND %u\n", FLOW_TOTAL);
    flow = command(&g.c1, line);
    flow->check_pattern = true;
    flow->hold = true;
    flow->hold_after = FLOW_HOLD;
    q1 = q2 = q3 = NULL;
    g.phase = 0;
}
static int s_flow_poll(void)
{
    switch (g.phase) {
    case 0: /* the consumer has stopped: wait for the server to back up */
        if (flow->consumed < FLOW_HOLD)
            return 0;
        g.mark = now();
        g.phase = 1;
        return 0;
    case 1:
        if (now() - g.mark < 2000)
            return 0;
        q1 = command(&g.c1, "STATS\n");
        g.phase = 2;
        return 0;
    case 2: {
        if (!q1->fin)
            return 0;
        int d;
        unsigned long long b;
        if (!parse_stats(q1, &w1, &a1, &b, &d)) {
            check("STATS answer", false, "%.*s", (int)q1->in_len, q1->in);
            return -1;
        }
        g.mark = now();
        g.phase = 3;
        return 0;
    }
    case 3:
        if (now() - g.mark < 1000)
            return 0;
        q2 = command(&g.c1, "STATS\n");
        g.phase = 4;
        return 0;
    case 4: {
        if (!q2->fin)
            return 0;
        int d;
        unsigned long long b;
        parse_stats(q2, &w2, &a2, &b, &d);
        printf("note flow: consumed=%llu delivered=%llu server written=%llu acked=%llu "
               "buffered=%llu of %u (browser holds %llu bytes beyond what was consumed)\n",
               (unsigned long long)flow->consumed, (unsigned long long)flow->recv, w2, a2, b,
               FLOW_TOTAL, a2 - flow->consumed);
        check("stopped consumer: the server's sending stops (acked bytes stay put)",
              a1 == a2 && w2 < FLOW_TOTAL && a2 < FLOW_TOTAL, "acked %llu then %llu, written %llu",
              a1, a2, w2);
        check("stopped consumer: the server's writes back up (buffered bytes stay up)", b > 0,
              "buffered=%llu", b);
        check("at most 64 KiB delivered and not consumed", flow->max_unconsumed <= 65536,
              "max %llu", (unsigned long long)flow->max_unconsumed);
        /* resume */
        flow->hold = false;
        sl_stream_consume(flow->s, flow->held);
        flow->consumed += flow->held;
        flow->held = 0;
        g.phase = 5;
        return 0;
    }
    case 5:
        if (!flow->fin)
            return 0;
        check("resumed consumer: all bytes arrive in order with FIN",
              flow->recv == FLOW_TOTAL && !flow->pattern_bad, "recv=%llu bad=%d",
              (unsigned long long)flow->recv, flow->pattern_bad);
        q3 = command(&g.c1, "STATS\n");
        g.phase = 6;
        return 0;
    case 6: {
        if (!q3->fin)
            return 0;
        int d = 0;
        unsigned long long b, w, a;
        parse_stats(q3, &w, &a, &b, &d);
        check("the server finished its SEND", d == 1 && w == FLOW_TOTAL, "written=%llu done=%d", w,
              d);
        /* our side of the SEND stream is still open: finish it so it closes */
        sl_stream_finish(flow->s);
        return 1;
    }
    }
    return 0;
}

/* 6: resets both ways. */
static tstream *r_client, *r_server, *r_stop, *r_cstop, *r_events, *r_big;
static void s_reset_start(void)
{
    r_client = open_stream(&g.c1, true, SL_PRIO_NORMAL, "hello", 5, false);
    r_server = command(&g.c1, "RESET 99\n");
    r_big = command(&g.c1, "RESET 100000\n");
    r_stop = command(&g.c1, "STOP 98\n");
    static char line[64];
    snprintf(line, sizeof line, "SEND %u\n", 64 * MIB);
    r_cstop = command(&g.c1, line);
    r_cstop->keep = false;
    r_events = NULL;
    g.phase = 0;
    g.mark = now();
}
static int s_reset_poll(void)
{
    switch (g.phase) {
    case 0:
        /* Keep writing on the STOP stream until the browser says stop. */
        if (r_stop->s && !r_stop->stopped && now() - g.mark > 50) {
            g.mark = now();
            sl_stream_write(r_stop->s, "x", 1, NULL);
        }
        if (r_client->recv < 5 || !r_server->reset || !r_stop->stopped || r_cstop->recv == 0 ||
            !r_big->reset)
            return 0;
        printf("note a server reset with code 100000 arrives as code %llu\n",
               (unsigned long long)r_big->reset_code);
        check("sl_stream_reset with a code the browser cannot send is INVAL",
              sl_stream_reset(r_client->s, 1ull << 40) == SL_ERR_INVAL, NULL);
        g.in_call = true;
        int rc1 = sl_stream_reset(r_client->s, 77);
        int rc2 = sl_stream_stop_sending(r_cstop->s, 78);
        g.in_call = false;
        check("sl_stream_reset", rc1 == SL_OK, "%s", sl_err_name(rc1));
        check("sl_stream_stop_sending", rc2 == SL_OK, "%s", sl_err_name(rc2));
        check("server reset reaches on_stream_reset with its code", r_server->reset_code == 99,
              "code %llu", (unsigned long long)r_server->reset_code);
        /* Chromium 156 shows a STOP_SENDING either as a WebTransportError
         * with the code or, when it races a write, as a NetworkError "The
         * stream was aborted by the remote server" without one (code 0). */
        printf("note server STOP_SENDING 98 arrived with code %llu\n",
               (unsigned long long)r_stop->stop_code);
        check("server STOP_SENDING reaches on_stream_stop_sending (code 98, or 0 = unknown)",
              r_stop->stop_code == 98 || r_stop->stop_code == 0, "code %llu",
              (unsigned long long)r_stop->stop_code);
        g.mark = now();
        g.phase = 1;
        return 0;
    case 1:
        if (now() - g.mark < 500)
            return 0;
        r_events = command(&g.c1, "EVENTS\n");
        g.phase = 2;
        return 0;
    case 2: {
        if (!r_events->fin)
            return 0;
        char ev[512];
        snprintf(ev, sizeof ev, "%.*s", (int)r_events->in_len,
                 r_events->in ? (char *)r_events->in : "");
        for (char *p = ev; *p; p++)
            if (*p == '\n')
                *p = ';';
        printf("note server events: %s\n", ev);
        check("client reset reaches the server with its code", strstr(ev, "reset code=77;") != NULL,
              "%s", ev);
        check("client STOP_SENDING reaches the server", strstr(ev, "stop code=") != NULL, "%s", ev);
        return 1;
    }
    }
    return 0;
}

/* 7: the server closes the session (code 4242, "bye from starling"). */
static void s_close_start(void)
{
    g.in_call = false;
    g.aborts_at_close = g.aborts;
    command(&g.c1, "CLOSE");
}
static int s_close_poll(void)
{
    if (!g.c1.closed)
        return 0;
    check("server close: on_conn_closed with its code and reason",
          g.c1.err == SL_OK && g.c1.app && g.c1.by_peer && g.c1.code == 4242 &&
              !strcmp(g.c1.reason, "bye from starling"),
          "err=%s app=%d by_peer=%d code=%llu reason=%s", sl_err_name(g.c1.err), g.c1.app,
          g.c1.by_peer, (unsigned long long)g.c1.code, g.c1.reason);
    check("server close: every stream reported closed before the session",
          !g.c1.streams_left_at_close, NULL);
    check("server close: no stream reset or stop reported for the session's end",
          g.aborts == g.aborts_at_close, "%d", g.aborts - g.aborts_at_close);
    g.in_call = true;
    sl_transport_close(g.t1, on_transport_closed, (void *)1);
    g.in_call = false;
    return 1;
}

/* 8: a wrong token is refused: closed, never ready. */
static void s_refused_start(void)
{
    int rc = new_transport("wrong-token", &g.t2);
    if (rc == SL_OK)
        connect_to(g.t2, &g.c2);
}
static int s_refused_poll(void)
{
    if (!g.c2.closed || !g.t_closed[1])
        return 0;
    printf("note refused session: err=%s reason=\"%s\"\n", sl_err_name(g.c2.err), g.c2.reason);
    check("wrong token: on_conn_closed, never ready", !g.c2.ready && g.c2.err == SL_ERR_NOCONN,
          "ready=%d err=%s", g.c2.ready, sl_err_name(g.c2.err));
    check("transport 1 closed", g.t_closed[1], NULL);
    g.in_call = true;
    sl_transport_close(g.t2, on_transport_closed, (void *)2);
    g.in_call = false;
    return 1;
}

/* 9: transport close with sessions, streams and an early close open. */
static void s_tclose_start(void)
{
    int rc = new_transport(g.token, &g.t3);
    if (rc != SL_OK)
        return;
    connect_to(g.t3, &g.c3a);
    connect_to(g.t3, &g.c3b);
    connect_to(g.t3, &g.c3c);
    g.in_call = true;
    rc = sl_conn_close(g.c3c.c, 5, "early");
    g.in_call = false;
    check("sl_conn_close before ready", rc == SL_OK, "%s", sl_err_name(rc));
    g.phase = 0;
}
static int s_tclose_poll(void)
{
    switch (g.phase) {
    case 0:
        if (!g.c3a.ready || !g.c3b.ready || !g.c3c.closed || !g.t_closed[2])
            return 0;
        check("early sl_conn_close reported with its code",
              g.c3c.app && g.c3c.code == 5 && !strcmp(g.c3c.reason, "early") && !g.c3c.by_peer,
              "code=%llu reason=%s", (unsigned long long)g.c3c.code, g.c3c.reason);
        static char line[64];
        snprintf(line, sizeof line, "SEND %u\n", 64 * MIB);
        tstream *h = command(&g.c3a, line);
        h->hold = true; /* never consumes */
        h->keep = false;
        open_stream(&g.c3a, true, SL_PRIO_LOW, big, 2 * MIB, false);
        open_stream(&g.c3b, false, SL_PRIO_BACKGROUND, big, 100000, false);
        open_stream(&g.c3b, true, SL_PRIO_CRITICAL, "x", 1, true);
        g.mark = now();
        g.phase = 1;
        return 0;
    case 1:
        if (now() - g.mark < 300)
            return 0;
        g.in_call = true;
        sl_transport_close(g.t3, on_transport_closed, (void *)3);
        g.in_call = false;
        g.phase = 2;
        return 0;
    case 2:
        if (!g.t_closed[3])
            return 0;
        check("transport close: sessions reported closed",
              g.c3a.closed && g.c3b.closed && g.c3a.err == SL_OK && !g.c3a.by_peer, NULL);
        check("transport close: streams reported closed before their sessions",
              !g.c3a.streams_left_at_close && !g.c3b.streams_left_at_close, NULL);
        return 1;
    }
    return 0;
}

/* 10: everything freed. */
static void s_end_start(void)
{
    sl_transport_del(g.t1);
    sl_transport_del(g.t2);
    sl_transport_del(g.t3);
}
static int s_end_poll(void)
{
    check("every stream handle reported closed", g.streams_opened == g.streams_closed,
          "opened %d closed %d", g.streams_opened, g.streams_closed);
    check("every connection reported closed", g.conns_opened == g.conns_closed,
          "opened %d closed %d", g.conns_opened, g.conns_closed);
    check("no closed callback inside the call that caused it", !g.closed_inside_call, NULL);
    check("the transports returned all their memory", mem_blocks == 0 && mem_bytes == 0,
          "%lld blocks, %lld bytes", mem_blocks, mem_bytes);
    return 1;
}

static const struct step {
    const char *name;
    void (*start)(void);
    int (*poll)(void);
    double timeout_ms;
} steps[] = {
    {"connect", s_connect_start, s_connect_poll, 15000},
    {"bidi echo", s_echo_start, s_echo_poll, 30000},
    {"small writes", s_small_start, s_small_poll, 30000},
    {"uni echo", s_uni_start, s_uni_poll, 10000},
    {"datagrams", s_dgram_start, s_dgram_poll, 10000},
    {"priorities", s_prio_start, s_prio_poll, 10000},
    {"flow control", s_flow_start, s_flow_poll, 60000},
    {"resets", s_reset_start, s_reset_poll, 15000},
    {"server close", s_close_start, s_close_poll, 10000},
    {"refused", s_refused_start, s_refused_poll, 15000},
    {"transport close", s_tclose_start, s_tclose_poll, 20000},
    {"end", s_end_start, s_end_poll, 1000},
};
#define NSTEPS (int)(sizeof steps / sizeof steps[0])

static int cur = -1;
static bool finished;

static void finish(void)
{
    if (finished)
        return;
    finished = true;
    printf("DONE passed=%d failed=%d\n", passed, failed);
}

static void start_step(int i)
{
    cur = i;
    if (cur >= NSTEPS) {
        finish();
        return;
    }
    printf("step %s\n", steps[cur].name);
    g.t0 = now();
    steps[cur].start();
}

static bool advancing; /* the step is done, the next one starts in a new macrotask */

static void advance(void *ud)
{
    advancing = false;
    start_step(cur + 1);
}

static bool polling;
static void poll_now(void)
{
    if (polling || advancing || finished || cur < 0 || cur >= NSTEPS)
        return;
    polling = true;
    int r = steps[cur].poll();
    if (r == 0 && since() > steps[cur].timeout_ms) {
        check(steps[cur].name, false, "timeout after %.0f ms (phase %d)", steps[cur].timeout_ms,
              g.phase);
        r = -1;
    }
    polling = false;
    if (r == 1) {
        advancing = true; /* not from inside a transport callback */
        emscripten_set_timeout(advance, 0, NULL);
    } else if (r < 0) {
        finish();
    }
}

static void tick(void *ud)
{
    if (finished)
        return;
    poll_now();
    emscripten_set_timeout(tick, 20, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        printf("usage: webtransport_client HOST:PORT SHA256HEX TOKEN\n");
        return 2;
    }
    snprintf(g.host, sizeof g.host, "127.0.0.1");
    g.port = atoi(argv[1]);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(argv[2] + 2 * i, "%2x", &v);
        g.pin[i] = (uint8_t)v;
    }
    g.token = argv[3];
    big = malloc(4 * MIB);
    for (size_t i = 0; i < 4 * MIB; i++)
        big[i] = pattern_at(i);
    start_step(0);
    emscripten_set_timeout(tick, 20, NULL);
    return 0;
}
