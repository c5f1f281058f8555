/*
 * cluster_badpeer_test.c: a node under attack by a hostile peer, while a
 * well-behaved peer keeps talking to it.
 *
 * Three endpoints share one libuv loop on 127.0.0.1:
 *   T  the target: a real networked sl_node (listening), with a probe actor
 *      `srv` that records what it receives;
 *   G  a good peer: another sl_node connected to T, whose actors send
 *      numbered messages and asks to `srv` after (and around) every attack;
 *   H  the hostile peer: a bare QUIC transport (sl_quic_new, its own dev
 *      certificate, mutual TLS, the default ALPN) driven by the test through
 *      tests/support/quic_harness, writing whatever bytes it likes. Its node
 *      id is its transport's sl_transport_node_id(), so the envelopes it
 *      writes are those a real node with its key would write.
 *
 * Each case checks what the wire design (runtime/README.md, "On the wire")
 * promises for bad input: the offending stream is closed with the right
 * application code, the connection and every other stream go on, nothing
 * refused reaches an actor, the node's memory stays bounded, and G's
 * traffic arrives complete and in order. T and G allocate through counting
 * allocators (both the node and its QUIC endpoint), so every test also
 * proves that the node freed everything once stopped.
 *
 * The cases: garbage on a lane (1), unknown stream types (2), unknown
 * actors on a lane and in an ask (3), forged or misaddressed envelopes (4),
 * frames over the size limit (5), msgpack bombs in the envelope and in the
 * payload (6), a flood of stream opens (7), a peer that never reads (8), a
 * SEND on the control stream (9), bad DATAGRAMs (10), a duplicate ask (11),
 * bad bytes behind frames paused for a full mailbox (12), bad answers to
 * the node's own asks (13), the frame limit when the nodes allow more
 * than 64 MiB (14), and big frames cut off midway or not envelopes (15).
 *
 * Seeing the codes. The transport API gives the hostile side the code of a
 * RESET_STREAM (on_stream_reset) but not that of a STOP_SENDING: ngtcp2 1.11
 * has no callback for a received STOP_SENDING, it answers it with
 * RESET_STREAM by itself and closes the stream. It does pass the code to its
 * stream_close callback, which the transport drops. So this file interposes
 * ngtcp2_conn_client_new_versioned() (libngtcp2 is linked dynamically; the
 * definition below wins at link time, as pack_test.c does for msgpack-c),
 * wraps the stream_close callback of the hostile connection only, and
 * records each stream's close code: exactly what H received on the wire.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>

#include "actors/core_int.h"
#include "quic_harness.h"
#include "runtime/cluster.h"
#include "starling/node.h"
#include "starling/pack.h"
#include "starling/schema.h"

/* Application codes of runtime/README.md. */
#define E_PROTOCOL 0x10
#define E_TOO_BIG 0x11

/* Message types the probe on T tells apart. */
enum {
    T_GOOD = 100,       /* from G: u32 sequence number */
    T_HOST = 200,       /* from H, well-formed: u32 sequence number */
    T_COUNT = 201,      /* from H, well-formed, on several lanes: counted only */
    T_BAD = 0xBAD,      /* from H, must never be delivered */
    T_BOMB = 300,       /* payload given to sl_unpack, result recorded */
    T_ASK = 400,        /* ASK: answered "pong" */
    T_ASK_SILENT = 401, /* ASK: never answered */
    T_BIG = 500,        /* T -> H flood */
    T_HUGE = 600        /* G -> T, over 64 MiB: length recorded */
};

#define WAIT_MS 4000 /* bound of every wait; tests finish far sooner */

/* ------------------------------------------- ngtcp2 stream-close spy */

#define SPY_MAX 4096

typedef struct spy_close {
    int64_t id;
    bool code_set;
    uint64_t code;
} spy_close;

static struct {
    bool capture_next;  /* the next client connection created is H's */
    ngtcp2_conn *hconn; /* H's ngtcp2 connection */
    ngtcp2_stream_close orig;
    ngtcp2_callbacks cb; /* the callbacks given to ngtcp2, stream_close wrapped */
    spy_close rec[SPY_MAX];
    int n;
} spy;

static int spy_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t id, uint64_t code, void *ud,
                            void *sud)
{
    if (conn == spy.hconn && spy.n < SPY_MAX) {
        spy.rec[spy.n].id = id;
        spy.rec[spy.n].code_set = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0;
        spy.rec[spy.n].code = code;
        spy.n++;
    }
    return spy.orig ? spy.orig(conn, flags, id, code, ud, sud) : 0;
}

typedef int (*client_new_fn)(ngtcp2_conn **, const ngtcp2_cid *, const ngtcp2_cid *,
                             const ngtcp2_path *, uint32_t, int, const ngtcp2_callbacks *, int,
                             const ngtcp2_settings *, int, const ngtcp2_transport_params *,
                             const ngtcp2_mem *, void *);

int ngtcp2_conn_client_new_versioned(ngtcp2_conn **pconn, const ngtcp2_cid *dcid,
                                     const ngtcp2_cid *scid, const ngtcp2_path *path,
                                     uint32_t version, int callbacks_version,
                                     const ngtcp2_callbacks *callbacks, int settings_version,
                                     const ngtcp2_settings *settings, int params_version,
                                     const ngtcp2_transport_params *params, const ngtcp2_mem *mem,
                                     void *user_data)
{
    static client_new_fn real;
    if (!real)
        real = (client_new_fn)dlsym(RTLD_NEXT, "ngtcp2_conn_client_new_versioned");
    if (!real)
        return NGTCP2_ERR_NOMEM;
    if (!spy.capture_next)
        return real(pconn, dcid, scid, path, version, callbacks_version, callbacks,
                    settings_version, settings, params_version, params, mem, user_data);
    /* H's connection: the same callbacks, stream_close recorded first. */
    spy.capture_next = false;
    spy.cb = *callbacks;
    spy.orig = callbacks->stream_close;
    spy.cb.stream_close = spy_stream_close;
    int rv = real(pconn, dcid, scid, path, version, callbacks_version, &spy.cb, settings_version,
                  settings, params_version, params, mem, user_data);
    if (rv == 0)
        spy.hconn = *pconn;
    return rv;
}

/* The close record of H's stream `id`, or NULL if it has not closed. */
static const spy_close *spy_find(int64_t id)
{
    for (int i = 0; i < spy.n; i++)
        if (spy.rec[i].id == id)
            return &spy.rec[i];
    return NULL;
}

/* ------------------------------------------------------ the probe on T */

typedef struct tprobe {
    int total;       /* messages handed to on_message */
    uint32_t g_next; /* next T_GOOD sequence expected */
    int g_order_err; /* T_GOOD out of order or duplicated */
    uint32_t h_next; /* next T_HOST sequence expected */
    int h_order_err;
    int counted; /* T_COUNT deliveries */
    int bad;     /* T_BAD deliveries (must stay 0) */
    int asks, asks_silent, cancels;
    size_t huge_len;      /* payload length of the last T_HUGE */
    uint32_t huge_sum;    /* and a checksum of its bytes */
    int huge_n, huge_bad; /* T_HUGE deliveries, and those whose checksum was not huge_want */
    uint32_t huge_want;
    int bombs;
    int bomb_rc[8]; /* sl_unpack() of each T_BOMB payload */
    size_t bomb_len[8];
} tprobe;

static uint32_t u32_of(const sl_msg *m)
{
    uint32_t v = UINT32_MAX;
    if (m->len == 4)
        memcpy(&v, m->data, 4);
    return v;
}

static int srv_msg(sl_actor *self, const sl_msg *m)
{
    tprobe *p = sl_state(self);
    p->total++;
    if (m->kind == SL_KIND_CANCEL) {
        p->cancels++;
        return 0;
    }
    switch (m->type) {
    case T_GOOD:
        if (u32_of(m) != p->g_next)
            p->g_order_err++;
        p->g_next++;
        break;
    case T_HOST:
        if (u32_of(m) != p->h_next)
            p->h_order_err++;
        p->h_next++;
        break;
    case T_COUNT:
        p->counted++;
        break;
    case T_BAD:
        p->bad++;
        break;
    case T_BOMB:
        if (p->bombs < 8) {
            sl_unpacked u;
            p->bomb_rc[p->bombs] = sl_unpack(m->data, m->len, NULL, &u);
            p->bomb_len[p->bombs] = m->len;
            sl_unpacked_fini(&u);
        }
        p->bombs++;
        break;
    case T_ASK:
        p->asks++;
        if (m->kind == SL_KIND_ASK)
            sl_reply(self, sl_req_of(m), T_ASK, "pong", 4);
        break;
    case T_HUGE:
        p->huge_len = m->len;
        p->huge_sum = 0;
        for (size_t i = 0; i < m->len; i++)
            p->huge_sum = p->huge_sum * 31 + m->data[i];
        p->huge_n++;
        p->huge_bad += p->huge_want && p->huge_sum != p->huge_want;
        break;
    case T_ASK_SILENT:
        p->asks_silent++;
        break;
    }
    return 0;
}

static const sl_behavior srv_b = {.on_message = srv_msg, .name = "srv"};

/* -------------------------------------------------- the good client on G */

typedef struct gclient {
    sl_id srv;
    uint32_t first, n; /* sends sequence numbers first .. first+n-1 */
    int send_err;      /* the first send that failed */
    uint64_t ask_id;
    int replies, fails;
} gclient;

static int gcli_start(sl_actor *self, void *arg)
{
    gclient *c = arg;
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t seq = c->first + i;
        int rc = sl_send(self, c->srv, T_GOOD, SL_PRIO_NORMAL, &seq, 4);
        if (rc && !c->send_err)
            c->send_err = rc;
    }
    int rc = sl_ask(self, c->srv, T_ASK, SL_PRIO_NORMAL, "ping", 4, 3000, &c->ask_id);
    if (rc && !c->send_err)
        c->send_err = rc;
    return 0;
}

static int gcli_msg(sl_actor *self, const sl_msg *m)
{
    gclient *c = sl_state(self);
    if (m->corr == c->ask_id && m->kind == SL_KIND_REPLY)
        c->replies++;
    else if (m->corr == c->ask_id && m->kind == SL_KIND_FAIL)
        c->fails++;
    return 0;
}

static const sl_behavior gcli_b = {.on_start = gcli_start, .on_message = gcli_msg};

/* ------------------------------------------------- T's flooder (case 8) */

typedef struct flooder {
    sl_id to[16];
    int nto;
    uint8_t *buf; /* 64 KiB */
    int sent;     /* sends that returned SL_OK */
    int last_rc;  /* the send that stopped a burst */
    int again;    /* bursts that ended with SL_ERR_AGAIN */
    int resumed;  /* SL_TYPE_RESUME messages */
    bool stop;    /* no more bursts */
} flooder;

#define BIG (64u * 1024)

static void flood_burst(sl_actor *self, flooder *f)
{
    for (int r = 0; r < f->nto && !f->stop; r++)
        for (int i = 0; i < 4096; i++) {
            int rc = sl_send(self, f->to[r], T_BIG, SL_PRIO_NORMAL, f->buf, BIG);
            if (rc) {
                f->last_rc = rc;
                f->again += rc == SL_ERR_AGAIN;
                break;
            }
            f->sent++;
        }
}

static int flood_start(sl_actor *self, void *arg)
{
    flood_burst(self, arg);
    return 0;
}

static int flood_msg(sl_actor *self, const sl_msg *m)
{
    flooder *f = sl_state(self);
    if (m->type == SL_TYPE_RESUME) {
        f->resumed++;
        flood_burst(self, f);
    }
    return 0;
}

static const sl_behavior flood_b = {.on_start = flood_start, .on_message = flood_msg};

/* ------------------------------------------------------------ the world */

#define CAP_MAX (64u * 1024)

/* Bytes H received on one stream (the first CAP_MAX). */
typedef struct capture {
    uint8_t *buf;
    size_t len;
    bool fin;
} capture;

typedef struct bp_cfg {
    uint32_t t_streams_uni, t_streams_bidi; /* 0 = default */
    size_t t_stream_buffer, t_conn_buffer;  /* 0 = default */
    size_t max_message;                     /* T's and G's max_message_size; 0 = default */
} bp_cfg;

typedef struct bp {
    qh_harness *h;
    qh_side *hs; /* H */
    qh_conn *hc; /* H's connection to T */
    slt_mem tmem, gmem;
    sl_node *t, *g;
    uint64_t tnode, gnode, hnode;
    int t_up_g, t_up_h, t_down_h, g_up;
    tprobe srv;
    sl_id srv_id;
    gclient gc[16];
    int ngc;
    uint32_t g_seq; /* T_GOOD numbers sent so far */
    uint32_t h_seq; /* T_HOST numbers sent so far */
    capture cap[QH_MAX_STREAMS];
} bp;

static void bp_peer(sl_node *n, uint64_t peer, bool up, void *ud)
{
    bp *w = ud;
    if (n == w->t) {
        if (peer == w->hnode)
            up ? w->t_up_h++ : w->t_down_h++;
        else if (up)
            w->t_up_g++;
    } else if (up) {
        w->g_up++;
    }
}

static void h_data(qh_stream *r, const uint8_t *data, size_t len, bool fin)
{
    bp *w = r->side->ud;
    capture *c = &w->cap[r - r->side->streams];
    if (!c->buf)
        c->buf = malloc(CAP_MAX);
    size_t take = len < CAP_MAX - c->len ? len : CAP_MAX - c->len;
    if (c->buf && take) {
        memcpy(c->buf + c->len, data, take);
        c->len += take;
    }
    if (fin)
        c->fin = true;
}

static sl_node *bp_node(bp *w, slt_mem *mem, const bp_cfg *cfg)
{
    sl_transport_settings ts;
    sl_transport_settings_default(&ts);
    ts.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    ts.mem = &mem->hooks;
    if (cfg) {
        if (cfg->t_streams_uni)
            ts.max_streams_uni = cfg->t_streams_uni;
        if (cfg->t_streams_bidi)
            ts.max_streams_bidi = cfg->t_streams_bidi;
        if (cfg->t_stream_buffer)
            ts.max_stream_buffer = cfg->t_stream_buffer;
        if (cfg->t_conn_buffer)
            ts.max_conn_buffer = cfg->t_conn_buffer;
    }
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    if (cfg && cfg->max_message)
        ns.core.max_message_size = cfg->max_message;
    ns.core.mem = &mem->hooks;
    ns.loop = &w->h->loop;
    ns.quic = &ts;
    ns.on_peer = bp_peer;
    ns.ud = w;
    ns.quiet = true; /* refused input is counted; the log would only be noise here */
    sl_node *n = NULL;
    SLT_OK(sl_node_new(&ns, &n));
    return n;
}

static bool all_up(qh_harness *h, void *arg)
{
    bp *w = arg;
    return w->t_up_g && w->g_up && w->t_up_h && w->hc->ready;
}

/* T listening, G and H connected to it, `srv` spawned on T. */
static bp *bp_up(const bp_cfg *cfg)
{
    bp *w = calloc(1, sizeof *w);
    assert_non_null(w);
    memset(&spy, 0, sizeof spy);
    w->h = qh_new();
    slt_mem_init(&w->tmem);
    slt_mem_init(&w->gmem);
    bp_cfg gcfg = {.max_message = cfg ? cfg->max_message : 0};
    w->t = bp_node(w, &w->tmem, cfg);
    w->g = bp_node(w, &w->gmem, &gcfg);
    w->tnode = sl_node_id(w->t);
    w->gnode = sl_node_id(w->g);
    SLT_OK(sl_node_listen(w->t, "127.0.0.1", 0));
    uint16_t port;
    SLT_OK(sl_node_port(w->t, &port));
    SLT_OK(sl_node_connect(w->g, "127.0.0.1", port));

    w->hs = qh_side_add(w->h, "hostile");
    w->hs->ud = w;
    w->hs->on_data = h_data;
    sl_transport_settings hs;
    qh_settings(w->hs, &hs);
    hs.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY; /* and a generated dev certificate */
    SLT_OK(qh_side_start(w->hs, &hs));
    SLT_OK(sl_transport_node_id(w->hs->t, &w->hnode));
    assert_true(w->hnode != w->tnode && w->hnode != w->gnode);
    spy.capture_next = true;
    w->hc = qh_connect(w->hs, port);
    spy.capture_next = false;
    assert_non_null(spy.hconn);
    assert_true(qh_run(w->h, all_up, w, WAIT_MS));
    assert_int_equal(w->hc->peer_node, w->tnode);
    SLT_OK(sl_spawn(sl_node_core(w->t), &srv_b, &w->srv, NULL, &w->srv_id));
    return w;
}

static bool nodes_stopped(qh_harness *h, void *arg)
{
    bp *w = arg;
    return sl_node_stopped(w->t) && sl_node_stopped(w->g);
}

/* Stop both nodes, prove they freed everything, then close H (qh_finish
 * proves H freed everything and the loop closed with nothing alive). */
static void bp_down(bp *w)
{
    sl_node_stop(w->t, NULL, NULL);
    sl_node_stop(w->g, NULL, NULL);
    assert_true(qh_run(w->h, nodes_stopped, w, WAIT_MS));
    sl_node_del(w->t);
    sl_node_del(w->g);
    if (w->tmem.live)
        print_error("T: %zu blocks (%zu bytes) left\n", w->tmem.live, w->tmem.live_bytes);
    assert_int_equal(w->tmem.live, 0);
    assert_int_equal(w->tmem.bad_frees, 0);
    assert_int_equal(w->gmem.live, 0);
    assert_int_equal(w->gmem.bad_frees, 0);
    qh_finish(w->h);
    spy.hconn = NULL;
    for (int i = 0; i < QH_MAX_STREAMS; i++)
        free(w->cap[i].buf);
    free(w);
}

static sl__cluster_stats t_stats(bp *w)
{
    sl__cluster_stats st;
    sl__cluster_stats_get(sl__node_cluster(w->t), &st);
    return st;
}

static sl_core_stats t_core(bp *w)
{
    sl_core_stats st;
    sl_core_stats_get(sl_node_core(w->t), &st);
    return st;
}

/* ------------------------------------------------- the good peer's round */

static bool round_done(qh_harness *h, void *arg)
{
    bp *w = arg;
    gclient *c = &w->gc[w->ngc - 1];
    return c->send_err || c->fails || (w->srv.g_next >= w->g_seq && c->replies);
}

/*
 * A fresh actor on G sends `n` numbered messages and one ask to srv; all of
 * them arrive, in order, and the ask is answered.
 */
static void good_round(bp *w, uint32_t n)
{
    assert_true(w->ngc < 16);
    gclient *c = &w->gc[w->ngc++];
    c->srv = w->srv_id;
    c->first = w->g_seq;
    c->n = n;
    w->g_seq += n;
    sl_id id;
    SLT_OK(sl_spawn(sl_node_core(w->g), &gcli_b, c, NULL, &id));
    assert_true(qh_run(w->h, round_done, w, WAIT_MS));
    SLT_OK(c->send_err);
    assert_int_equal(c->fails, 0);
    assert_int_equal(c->replies, 1);
    assert_int_equal(w->srv.g_next, w->g_seq);
    assert_int_equal(w->srv.g_order_err, 0);
}

/* ------------------------------------------------------ H's instruments */

static sl_id h_actor(bp *w)
{
    return (sl_id){w->hnode, 77};
}

/* One frame (varint length + envelope) as H would write it to T. */
static uint8_t *h_frame(bp *w, const sl_envelope *e, size_t *len)
{
    size_t cap = sl_envelope_max_size(e->len) + SL_FRAME_MAX_HEADER;
    uint8_t *b = malloc(cap);
    assert_non_null(b);
    size_t elen = sl_envelope_encoded_size(e, w->tnode, w->hnode);
    assert_true(elen > 0);
    size_t hl = 0, el = 0;
    SLT_OK(sl_frame_write_header(elen, b, cap, &hl));
    SLT_OK(sl_envelope_encode(e, w->tnode, w->hnode, b + hl, cap - hl, &el));
    *len = hl + el;
    return b;
}

static sl_envelope env(sl_id from, sl_id to, uint8_t kind, uint32_t type, const void *data,
                       size_t len)
{
    sl_envelope e;
    memset(&e, 0, sizeof e);
    e.from = from;
    e.to = to;
    e.kind = kind;
    e.prio = SL_PRIO_NORMAL;
    e.type = type;
    e.data = data;
    e.len = len;
    return e;
}

static void h_write(qh_stream *s, const void *data, size_t len)
{
    assert_non_null(s->s);
    SLT_OK(sl_stream_write(s->s, data, len, NULL));
}

static void h_send(bp *w, qh_stream *s, const sl_envelope *e)
{
    size_t n;
    uint8_t *f = h_frame(w, e, &n);
    h_write(s, f, n);
    free(f);
}

/* A uni stream with its first byte written (0x00 control, 0x01 lane, ...). */
static qh_stream *h_uni(bp *w, uint8_t first)
{
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(w->hc, false, SL_PRIO_NORMAL, &s));
    h_write(s, &first, 1);
    return s;
}

static qh_stream *h_bidi(bp *w)
{
    qh_stream *s = NULL;
    SLT_OK(qh_stream_open(w->hc, true, SL_PRIO_NORMAL, &s));
    return s;
}

/* A well-formed SEND from H's actor to srv with the next T_HOST number. */
static void h_good(bp *w, qh_stream *s)
{
    uint32_t seq = w->h_seq++;
    sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_HOST, &seq, 4);
    h_send(w, s, &e);
}

static bool h_closed(qh_harness *h, void *arg)
{
    return spy_find(((qh_stream *)arg)->id) != NULL;
}

/* Run until T closed H's stream `s`; assert it did so with `code`. */
static void expect_closed(bp *w, qh_stream *s, uint64_t code)
{
    assert_true(qh_run(w->h, h_closed, s, WAIT_MS));
    const spy_close *c = spy_find(s->id);
    assert_true(c->code_set);
    assert_int_equal(c->code, code);
    assert_int_equal(w->hc->closed, 0); /* the connection goes on */
}

static bool h_got_all(qh_harness *h, void *arg)
{
    bp *w = arg;
    return w->srv.h_next >= w->h_seq;
}

/* Run until srv got every T_HOST message H sent, in order. */
static void expect_h_delivered(bp *w)
{
    assert_true(qh_run(w->h, h_got_all, w, WAIT_MS));
    assert_int_equal(w->srv.h_next, w->h_seq);
    assert_int_equal(w->srv.h_order_err, 0);
}

/* The connection and H's stream `s` are still open after a short while. */
static void expect_open(bp *w, qh_stream *s)
{
    qh_run(w->h, NULL, NULL, 100);
    assert_null(spy_find(s->id));
    assert_false(s->closed);
    assert_int_equal(w->hc->closed, 0);
}

/* -------------------------------------------------------------- cases */

/* 1. Garbage after a lane preamble: that lane is stopped (0x10), H's other
 *    lane keeps delivering, and the connection survives. */
static void test_garbage_on_lane(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 50);
    qh_stream *good = h_uni(w, 0x01);
    h_good(w, good);
    h_good(w, good);
    expect_h_delivered(w);
    sl__cluster_stats st0 = t_stats(w);

    qh_stream *bad = h_uni(w, 0x01);
    /* A frame of 4 bytes that is no envelope (0xde: a map 16 header). */
    static const uint8_t junk[] = {0x04, 0xde, 0xad, 0xbe, 0xef, 0x13, 0x37};
    h_write(bad, junk, sizeof junk);
    expect_closed(w, bad, E_PROTOCOL);
    assert_int_equal(t_stats(w).rejected, st0.rejected + 1);

    for (int i = 0; i < 20; i++)
        h_good(w, good);
    expect_h_delivered(w);
    expect_open(w, good);
    assert_int_equal(w->srv.bad, 0);
    good_round(w, 50);
    bp_down(w);
}

/* 2. A uni stream whose first byte is no known stream type, and a second
 *    control stream: each is stopped (0x10), the connection survives. */
static void test_unknown_stream_type(void **state)
{
    bp *w = bp_up(NULL);
    qh_stream *good = h_uni(w, 0x01);
    h_good(w, good);
    qh_stream *ctl = h_uni(w, 0x00); /* H's (legitimate) control stream */

    qh_stream *odd = h_uni(w, 0x7f);
    expect_closed(w, odd, E_PROTOCOL);
    qh_stream *ctl2 = h_uni(w, 0x00); /* a second one is not a control stream */
    expect_closed(w, ctl2, E_PROTOCOL);
    qh_stream *hi = h_uni(w, 0xff);
    expect_closed(w, hi, E_PROTOCOL);

    h_good(w, good);
    expect_h_delivered(w);
    expect_open(w, ctl);
    expect_open(w, good);
    good_round(w, 50);
    bp_down(w);
}

/* Decode H's stream capture `c` as frames; returns the envelopes found. */
static int h_decode(bp *w, const capture *c, sl_envelope *out, int max)
{
    size_t off = 0;
    int n = 0;
    while (n < max && off < c->len) {
        uint64_t flen;
        size_t hl;
        if (sl_frame_read_header(c->buf + off, c->len - off, UINT32_MAX, &flen, &hl) != SL_OK ||
            flen > c->len - off - hl)
            break;
        if (sl_envelope_decode(c->buf + off + hl, (size_t)flen, w->hnode, w->tnode, NULL, &out[n],
                               NULL) != SL_OK)
            break;
        n++;
        off += hl + (size_t)flen;
    }
    return n;
}

static bool h_fin(qh_harness *h, void *arg)
{
    qh_stream *s = arg;
    bp *w = s->side->ud;
    return w->cap[s - s->side->streams].fin || s->reset;
}

/* 3. Envelopes for an actor that does not exist: on a lane, dead letters
 *    (counted) and the lane stays open; an ASK on a bidi stream is answered
 *    FAIL(NOACTOR) on that stream. Nothing else is affected. */
static void test_unknown_actor(void **state)
{
    bp *w = bp_up(NULL);
    sl_id ghost = {w->tnode, 999999};
    qh_stream *good = h_uni(w, 0x01);
    h_good(w, good);
    expect_h_delivered(w);
    sl_core_stats c0 = t_core(w);

    qh_stream *lane = h_uni(w, 0x01);
    for (int i = 0; i < 3; i++) {
        sl_envelope e = env(h_actor(w), ghost, SL_KIND_SEND, T_BAD, "x", 1);
        h_send(w, lane, &e);
    }
    h_good(w, good);
    expect_h_delivered(w);
    expect_open(w, lane);
    assert_int_equal(t_core(w).dead_letters, c0.dead_letters + 3);

    qh_stream *ask = h_bidi(w);
    sl_envelope a = env(h_actor(w), ghost, SL_KIND_ASK, T_BAD, "ping", 4);
    a.corr = 4242;
    h_send(w, ask, &a);
    assert_true(qh_run(w->h, h_fin, ask, WAIT_MS));
    assert_false(ask->reset);
    sl_envelope got[2];
    assert_int_equal(h_decode(w, &w->cap[ask - w->hs->streams], got, 2), 1);
    assert_int_equal(got[0].kind, SL_KIND_FAIL);
    assert_int_equal(got[0].status, SL_ERR_NOACTOR);
    assert_int_equal(got[0].corr, 4242);
    SLT_ID_EQ(got[0].to, h_actor(w));
    SLT_ID_EQ(got[0].from, ghost);
    assert_int_equal(t_core(w).dead_letters, c0.dead_letters + 4);

    assert_int_equal(w->srv.bad, 0);
    assert_int_equal(w->hc->closed, 0);
    good_round(w, 50);
    bp_down(w);
}

/* 4. Forged senders and misaddressed envelopes: refused, stream closed
 *    0x10, nothing delivered. */
static void test_forged_sender(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 10);
    sl_id forged[] = {
        {w->gnode, 1},              /* the good node's actor */
        {0x1234567890abcdefull, 5}, /* some other node's */
        {w->tnode, w->srv_id.local} /* T's own actor */
    };
    qh_stream *lanes[3];
    for (int i = 0; i < 3; i++) {
        lanes[i] = h_uni(w, 0x01);
        sl_envelope e = env(forged[i], w->srv_id, SL_KIND_SEND, T_BAD, "f", 1);
        h_send(w, lanes[i], &e);
    }
    for (int i = 0; i < 3; i++)
        expect_closed(w, lanes[i], E_PROTOCOL);

    /* Addressed to another node through T: no forwarding. */
    qh_stream *fwd = h_uni(w, 0x01);
    sl_envelope e = env(h_actor(w), (sl_id){w->gnode, 1}, SL_KIND_SEND, T_BAD, "f", 1);
    h_send(w, fwd, &e);
    expect_closed(w, fwd, E_PROTOCOL);

    /* A lane is one receiver's: a second receiver on it is refused, the
     * first message stands. */
    sl_id other;
    tprobe other_p;
    memset(&other_p, 0, sizeof other_p);
    SLT_OK(sl_spawn(sl_node_core(w->t), &srv_b, &other_p, NULL, &other));
    qh_stream *mixed = h_uni(w, 0x01);
    h_good(w, mixed);
    e = env(h_actor(w), other, SL_KIND_SEND, T_BAD, "f", 1);
    h_send(w, mixed, &e);
    expect_closed(w, mixed, E_PROTOCOL);
    expect_h_delivered(w);

    /* A forged ASK on a bidi stream: reset and stopped, both 0x10. */
    qh_stream *ask = h_bidi(w);
    sl_envelope a = env(forged[0], w->srv_id, SL_KIND_ASK, T_BAD, "f", 1);
    a.corr = 7;
    h_send(w, ask, &a);
    expect_closed(w, ask, E_PROTOCOL);
    assert_true(ask->reset);
    assert_int_equal(ask->reset_code, E_PROTOCOL);

    /* An ASK with no asker: nobody to answer, refused the same way. */
    qh_stream *anon = h_bidi(w);
    a = env(SL_ID_NONE, w->srv_id, SL_KIND_ASK, T_BAD, "f", 1);
    a.corr = 8;
    h_send(w, anon, &a);
    expect_closed(w, anon, E_PROTOCOL);

    assert_int_equal(w->srv.bad, 0);
    assert_int_equal(other_p.total, 0);
    assert_int_equal(w->srv.asks, 1); /* good_round's only */
    assert_true(t_stats(w).rejected >= 7);
    good_round(w, 50);
    bp_down(w);
}

/* 5. Frame lengths over the limit (64 MiB + envelope): stopped with 0x11
 *    as soon as the length is read, before any of it is buffered; an
 *    announced maximal frame costs what was actually sent, not 64 MiB. */
static void test_frame_too_big(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = w->tmem.live_bytes;
    uint64_t max = SL_LIMITS_DEFAULT_PAYLOAD + SL_ENVELOPE_MAX_OVERHEAD;

    uint8_t hdr[8];
    size_t hl;
    qh_stream *over = h_uni(w, 0x01);
    SLT_OK(sl_frame_write_header(max + 1, hdr, sizeof hdr, &hl));
    h_write(over, hdr, hl);
    h_write(over, "abcdefgh", 8);
    expect_closed(w, over, E_TOO_BIG);

    qh_stream *huge = h_uni(w, 0x01);
    SLT_OK(sl_frame_write_header(SL_FRAME_VARINT_MAX, hdr, sizeof hdr, &hl));
    h_write(huge, hdr, hl);
    expect_closed(w, huge, E_TOO_BIG);

    /* On an ask stream: reset and stopped with 0x11. */
    qh_stream *ask = h_bidi(w);
    SLT_OK(sl_frame_write_header(max + 1, hdr, sizeof hdr, &hl));
    h_write(ask, hdr, hl);
    expect_closed(w, ask, E_TOO_BIG);
    assert_true(ask->reset);
    assert_int_equal(ask->reset_code, E_TOO_BIG);

    /* Exactly the maximum is allowed, and announcing it costs nothing
     * until the bytes come: send 1 KiB of it and stall. */
    qh_stream *stall = h_uni(w, 0x01);
    SLT_OK(sl_frame_write_header(max, hdr, sizeof hdr, &hl));
    h_write(stall, hdr, hl);
    uint8_t kib[1024];
    memset(kib, 0x42, sizeof kib);
    h_write(stall, kib, sizeof kib);
    expect_open(w, stall);
    assert_true(w->tmem.live_bytes < base + 256 * 1024);

    good_round(w, 50);
    assert_true(w->tmem.live_bytes < base + 1024 * 1024);
    assert_int_equal(w->hc->closed, 0);
    bp_down(w);
}

/* 6. Decode bombs. In the envelope (deep nesting, counts and lengths far
 *    beyond the bytes, the reserved byte): refused, lane stopped 0x10. In
 *    the payload of a valid envelope: delivered as opaque bytes, refused by
 *    sl_unpack() in the actor. No big allocation either way. */
static void test_decode_bombs(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = w->tmem.live_bytes;

    /* The envelope itself a bomb: each frame refused, its lane stopped 0x10. */
    enum { DEEP = 10000 };
    uint8_t *deep = malloc(DEEP + 1);
    memset(deep, 0x91, DEEP); /* [[[[ ... nil ]]]] */
    deep[DEEP] = 0xc0;
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};    /* array of 2^32-1 */
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};    /* map of 2^32-1 pairs */
    static const uint8_t reserved[] = {0x96, 0xc1, 0, 0, 0, 0, 0xc4}; /* 0xc1 inside */
    /* A valid-looking SEND whose bin payload claims 4 GiB - 1 in 2 bytes. */
    uint8_t binlie[] = {0x96, 0x00, 0x01, 0x01, 0x00, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff, 'a', 'b'};
    binlie[3] = (uint8_t)w->srv_id.local; /* short ids: locals < 128 */
    assert_true(w->srv_id.local < 128);
    const struct {
        const uint8_t *p;
        size_t n;
    } env_bombs[] = {
        {deep, DEEP + 1},        {arr32, sizeof arr32},
        {map32, sizeof map32},   {reserved, sizeof reserved},
        {binlie, sizeof binlie},
    };
    for (size_t i = 0; i < sizeof env_bombs / sizeof env_bombs[0]; i++) {
        qh_stream *s = h_uni(w, 0x01);
        uint8_t hdr[8];
        size_t hl;
        SLT_OK(sl_frame_write_header(env_bombs[i].n, hdr, sizeof hdr, &hl));
        h_write(s, hdr, hl);
        h_write(s, env_bombs[i].p, env_bombs[i].n);
        expect_closed(w, s, E_PROTOCOL);
    }

    /*
     * Bombs in the payload of an otherwise valid envelope. schemas/README.md
     * makes the payload opaque to the envelope decoder ("The envelope
     * decoder does not look inside"); receivers validate it with
     * sl_unpack(). So the contract is: delivered byte for byte, refused by
     * sl_unpack with the limit it breaks, no big allocation anywhere.
     */
    static const uint8_t str_lie[] = {0xdb, 0x00, 0x01, 0x00,
                                      0x00, 'a',  'b'}; /* str 64 KiB, 2 bytes */
    static const uint8_t fine[] = {0x92, 0x01, 0xa1, 'x'};
    const struct {
        const uint8_t *p;
        size_t n;
        int rc;
    } pay[] = {
        {deep, DEEP + 1, SL_ERR_DECODE_DEPTH},
        {map32, sizeof map32, SL_ERR_DECODE_LENGTH},
        {arr32, sizeof arr32, SL_ERR_DECODE_LENGTH},
        {str_lie, sizeof str_lie, SL_ERR_DECODE_LENGTH},
        {fine, sizeof fine, SL_OK},
    };
    enum { NPAY = sizeof pay / sizeof pay[0] };
    qh_stream *lane = h_uni(w, 0x01);
    for (int i = 0; i < NPAY; i++) {
        sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_BOMB, pay[i].p, pay[i].n);
        h_send(w, lane, &e);
    }
    h_good(w, lane);
    expect_h_delivered(w);
    assert_int_equal(w->srv.bombs, NPAY);
    for (int i = 0; i < NPAY; i++) {
        assert_int_equal(w->srv.bomb_len[i], pay[i].n);
        SLT_ERR(w->srv.bomb_rc[i], pay[i].rc);
    }
    expect_open(w, lane);
    assert_true(w->tmem.live_bytes < base + 1024 * 1024);
    free(deep);
    good_round(w, 50);
    bp_down(w);
}

/* 7. A flood of stream opens against max_streams_uni/bidi = 16: QUIC
 *    refuses the 17th at H (SL_ERR_LIMIT), T holds at most 16 of each, its
 *    memory stays small, G is served, and closed streams give credit back. */
static bool flood_delivered(qh_harness *h, void *arg)
{
    bp *w = arg;
    return w->srv.counted >= 16 && w->srv.asks_silent >= 16;
}

static bool reopened(qh_harness *h, void *arg)
{
    bp *w = arg;
    qh_stream *s = NULL;
    return qh_stream_open(w->hc, false, SL_PRIO_NORMAL, &s) == SL_OK;
}

static void test_stream_flood(void **state)
{
    bp_cfg cfg = {.t_streams_uni = 16, .t_streams_bidi = 16};
    bp *w = bp_up(&cfg);
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = w->tmem.live_bytes;

    qh_stream *uni[16];
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        qh_stream *s = NULL;
        int rc = qh_stream_open(w->hc, false, SL_PRIO_NORMAL, &s);
        if (rc) {
            SLT_ERR(rc, SL_ERR_LIMIT);
            break;
        }
        assert_true(n < 16);
        uni[n++] = s;
        uint8_t pre = 0x01;
        h_write(s, &pre, 1);
        sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_COUNT, "n", 1);
        h_send(w, s, &e);
    }
    assert_int_equal(n, 16);
    for (int i = 0; i < 1000; i++) {
        qh_stream *s = NULL;
        int rc = qh_stream_open(w->hc, true, SL_PRIO_NORMAL, &s);
        if (rc) {
            SLT_ERR(rc, SL_ERR_LIMIT);
            assert_int_equal(i, 16);
            break;
        }
        assert_true(i < 16);
        sl_envelope a = env(h_actor(w), w->srv_id, SL_KIND_ASK, T_ASK_SILENT, "?", 1);
        a.corr = 1000 + (uint64_t)i;
        h_send(w, s, &a);
    }
    /* Every one of the 16 lanes and 16 asks delivered. */
    assert_true(qh_run(w->h, flood_delivered, w, WAIT_MS));
    good_round(w, 100);
    assert_int_equal(w->srv.counted, 16);
    assert_int_equal(w->srv.asks_silent, 16);
    assert_true(w->tmem.live_bytes < base + 1024 * 1024);
    assert_int_equal(w->hc->closed, 0);

    /* Finishing lanes gives their credit back: H can open again. */
    for (int i = 0; i < 4; i++)
        SLT_OK(sl_stream_finish(uni[i]->s));
    assert_true(qh_run(w->h, reopened, w, WAIT_MS));
    good_round(w, 10);
    bp_down(w);
}

/* 8. A peer that never reads: T's actor floods 64 KiB messages at actors
 *    on H, which never gives credit back. Sends end in SL_ERR_AGAIN, T's
 *    memory stays within the configured buffers, G is served; when H
 *    finally reads, the sender hears SL_TYPE_RESUME. */
static bool flood_ended(qh_harness *h, void *arg)
{
    flooder *f = arg;
    return f->last_rc != 0;
}

static bool flood_resumed(qh_harness *h, void *arg)
{
    flooder *f = arg;
    return f->resumed > 0;
}

static void test_peer_never_reads(void **state)
{
    const size_t sbuf = 1024 * 1024, cbuf = 4 * 1024 * 1024;
    bp_cfg cfg = {.t_stream_buffer = sbuf, .t_conn_buffer = cbuf};
    bp *w = bp_up(&cfg);
    w->hs->consume = false;
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = w->tmem.live_bytes;

    flooder *f = calloc(1, sizeof *f);
    f->buf = calloc(1, BIG);
    f->nto = 8; /* eight receivers: eight lanes, each bounded, all by the connection */
    for (int i = 0; i < f->nto; i++)
        f->to[i] = (sl_id){w->hnode, 100 + (uint64_t)i};
    sl_id fid;
    SLT_OK(sl_spawn(sl_node_core(w->t), &flood_b, f, NULL, &fid));
    assert_true(qh_run(w->h, flood_ended, f, WAIT_MS));
    SLT_ERR(f->last_rc, SL_ERR_AGAIN);
    /* Keep it up (it sends again at every RESUME) until H's windows are
     * used up: then it is stuck, not slow, nothing more is accepted. */
    good_round(w, 100);
    int sent = -1;
    for (int i = 0; i < 25 && f->sent != sent; i++) {
        sent = f->sent;
        qh_run(w->h, NULL, NULL, 200);
    }
    assert_int_equal(f->sent, sent);
    size_t grown = w->tmem.live_bytes > base ? w->tmem.live_bytes - base : 0;
    /* H's windows: 1 MiB a stream, 16 MiB the connection (its defaults). */
    size_t windows = 8u * 1024 * 1024;
    assert_true((size_t)sent * BIG <= cbuf + windows + 8 * BIG);
    assert_true(grown <= cbuf + 1024 * 1024);
    SLT_ERR(f->last_rc, SL_ERR_AGAIN);
    assert_int_equal(w->hc->closed, 0);

    /* H reads at last: the lanes drain and the flooder may send again. */
    f->stop = true;
    f->resumed = 0;
    w->hs->consume = true;
    qh_consume_all(w->hs);
    assert_true(qh_run(w->h, flood_resumed, f, WAIT_MS));
    good_round(w, 10);
    bp_down(w);
    free(f->buf);
    free(f);
}

/* 9. A SEND on the control stream: the control stream is stopped (0x10),
 *    the SEND not delivered; signals sent on it before stand, T's own
 *    control stream to H still works, and so does everything else. */
static bool h_has_down(qh_harness *h, void *arg)
{
    bp *w = arg;
    for (int i = 0; i < w->hs->nstreams; i++) {
        qh_stream *s = &w->hs->streams[i];
        if (s->local || (s->id & 2) == 0 || w->cap[i].len < 1 || w->cap[i].buf[0] != 0x00)
            continue;
        capture c = w->cap[i];
        c.buf++;
        c.len--;
        sl_envelope e[16];
        int n = h_decode(w, &c, e, 16);
        for (int k = 0; k < n; k++)
            if (e[k].kind == SL_KIND_DOWN && e[k].corr == 5)
                return true;
    }
    return false;
}

static void test_send_on_control_stream(void **state)
{
    bp *w = bp_up(NULL);
    sl_id victim;
    tprobe vp;
    memset(&vp, 0, sizeof vp);
    SLT_OK(sl_spawn(sl_node_core(w->t), &srv_b, &vp, NULL, &victim));
    qh_stream *good = h_uni(w, 0x01);
    h_good(w, good);

    qh_stream *ctl = h_uni(w, 0x00);
    sl_envelope mon = env(h_actor(w), victim, SL_KIND_MONITOR, 0, NULL, 0);
    mon.prio = SL_PRIO_CRITICAL;
    mon.corr = 5;
    h_send(w, ctl, &mon);
    sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_BAD, "c", 1);
    h_send(w, ctl, &e);
    expect_closed(w, ctl, E_PROTOCOL);
    assert_int_equal(w->srv.bad, 0);

    /* The monitor set before the refused frame holds: T reports the
     * victim's stop on its own control stream to H. */
    SLT_OK(sl_stop(sl_node_core(w->t), victim, SL_REASON_NORMAL));
    assert_true(qh_run(w->h, h_has_down, w, WAIT_MS));

    h_good(w, good);
    expect_h_delivered(w);
    assert_int_equal(w->hc->closed, 0);
    good_round(w, 50);
    bp_down(w);
}

/* 10. Bad DATAGRAMs: dropped and counted; a good one still arrives. */
static bool dgram_done(qh_harness *h, void *arg)
{
    bp *w = arg;
    return w->srv.h_next >= w->h_seq && t_stats(w).datagrams_recv >= 1;
}

static void test_bad_datagrams(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 10);
    sl__cluster_stats st0 = t_stats(w);
    static const uint8_t junk[] = {0xc1, 0xc1, 0xc1};
    static const uint8_t cut[] = {0x96, 0x00};
    SLT_OK(sl_datagram_send(w->hc->c, junk, sizeof junk));
    SLT_OK(sl_datagram_send(w->hc->c, cut, sizeof cut));
    uint8_t b[256];
    size_t n;
    sl_envelope bad[3];
    bad[0] = env((sl_id){w->gnode, 1}, w->srv_id, SL_KIND_SEND, T_BAD, "d", 1);  /* forged */
    bad[1] = env(h_actor(w), w->srv_id, SL_KIND_ASK, T_BAD, "d", 1);             /* not a SEND */
    bad[2] = env(h_actor(w), (sl_id){w->gnode, 1}, SL_KIND_SEND, T_BAD, "d", 1); /* not T's */
    for (int i = 0; i < 3; i++) {
        SLT_OK(sl_envelope_encode(&bad[i], w->tnode, w->hnode, b, sizeof b, &n));
        SLT_OK(sl_datagram_send(w->hc->c, b, n));
    }
    /* An envelope with bytes after it. */
    uint32_t seq = 999;
    sl_envelope tr = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_BAD, &seq, 4);
    SLT_OK(sl_envelope_encode(&tr, w->tnode, w->hnode, b, sizeof b, &n));
    b[n++] = 0x00;
    SLT_OK(sl_datagram_send(w->hc->c, b, n));
    /* And a good one. */
    seq = w->h_seq++;
    sl_envelope ok = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_HOST, &seq, 4);
    SLT_OK(sl_envelope_encode(&ok, w->tnode, w->hnode, b, sizeof b, &n));
    SLT_OK(sl_datagram_send(w->hc->c, b, n));
    assert_true(qh_run(w->h, dgram_done, w, WAIT_MS));
    qh_run(w->h, NULL, NULL, 100);
    sl__cluster_stats st = t_stats(w);
    assert_int_equal(st.datagrams_recv, st0.datagrams_recv + 1);
    assert_int_equal(st.rejected, st0.rejected + 6);
    assert_int_equal(w->srv.bad, 0);
    assert_int_equal(w->srv.h_order_err, 0);
    assert_int_equal(w->hc->closed, 0);
    good_round(w, 50);
    bp_down(w);
}

/* 11. The same ask (asker, ask id) on a second stream while the first is
 *     pending: the second stream is refused (0x10) and the actor does not
 *     get the ask twice. */
static bool one_silent_ask(qh_harness *h, void *arg)
{
    return ((bp *)arg)->srv.asks_silent >= 1;
}

static void test_duplicate_ask(void **state)
{
    bp *w = bp_up(NULL);
    sl_envelope a = env(h_actor(w), w->srv_id, SL_KIND_ASK, T_ASK_SILENT, "?", 1);
    a.corr = 9;
    qh_stream *first = h_bidi(w);
    h_send(w, first, &a);
    assert_true(qh_run(w->h, one_silent_ask, w, WAIT_MS));
    qh_stream *again = h_bidi(w);
    h_send(w, again, &a);
    expect_closed(w, again, E_PROTOCOL);
    qh_run(w->h, NULL, NULL, 100);
    assert_int_equal(w->srv.asks_silent, 1);
    expect_open(w, first);
    good_round(w, 20);
    bp_down(w);
}

/* 12. Bad bytes behind frames that wait for a full mailbox: the frames
 *     before them are delivered in order once there is room, then the lane
 *     is stopped (0x10); with a FIN after the bad bytes (the stream closes
 *     while paused) the same, and nothing leaks. */
typedef struct slow_wait {
    tprobe *p;
    int want;
} slow_wait;

static bool slow_got(qh_harness *h, void *arg)
{
    slow_wait *sw = arg;
    return (int)sw->p->h_next >= sw->want;
}

static void test_garbage_behind_paused_lane(void **state)
{
    bp *w = bp_up(NULL);
    for (int fin = 0; fin < 2; fin++) {
        tprobe sp;
        memset(&sp, 0, sizeof sp);
        sl_spawn_opts o;
        sl_spawn_opts_default(&o);
        o.mailbox_capacity = 2;
        sl_id slow;
        SLT_OK(sl_spawn(sl_node_core(w->t), &srv_b, &sp, &o, &slow));
        sl__cluster_stats st0 = t_stats(w);
        /* Eight frames and the garbage in one write: one callback on T. */
        uint8_t buf[1024];
        size_t len = 0;
        buf[len++] = 0x01;
        for (uint32_t i = 0; i < 8; i++) {
            sl_envelope e = env(h_actor(w), slow, SL_KIND_SEND, T_HOST, &i, 4);
            size_t n;
            uint8_t *f = h_frame(w, &e, &n);
            memcpy(buf + len, f, n);
            len += n;
            free(f);
        }
        static const uint8_t junk[] = {0x04, 0xde, 0xad, 0xbe, 0xef};
        memcpy(buf + len, junk, sizeof junk);
        len += sizeof junk;
        qh_stream *s = NULL;
        SLT_OK(qh_stream_open(w->hc, false, SL_PRIO_NORMAL, &s));
        h_write(s, buf, len);
        if (fin)
            SLT_OK(sl_stream_finish(s->s));
        slow_wait sw = {&sp, 8};
        assert_true(qh_run(w->h, slow_got, &sw, WAIT_MS));
        if (!fin)
            expect_closed(w, s, E_PROTOCOL);
        qh_run(w->h, NULL, NULL, 50);
        assert_int_equal(sp.h_next, 8);
        assert_int_equal(sp.h_order_err, 0);
        sl__cluster_stats st = t_stats(w);
        assert_true(st.lanes_paused > st0.lanes_paused); /* it did wait for room */
        assert_int_equal(st.rejected, st0.rejected + 1);
        SLT_OK(sl_stop(sl_node_core(w->t), slow, SL_REASON_NORMAL));
        qh_run(w->h, NULL, NULL, 20);
        assert_false(sl_alive(sl_node_core(w->t), slow));
    }
    assert_int_equal(w->hc->closed, 0);
    good_round(w, 20);
    bp_down(w);
}

/* 13. H answers T's asks badly (garbage, a REPLY for another ask): the ask
 *     stream is closed 0x10 and the asker on T hears FAIL(PROTO) at once,
 *     not at its deadline. H resetting the ask stream (what a replier's
 *     node does when it has no memory for it, 0x13): FAIL(NOMEM) at once.
 *     A correct answer from H still gets through. */
typedef struct asker {
    sl_id to;
    uint64_t ask_id;
    int n;
    uint8_t kind;
    int32_t status;
    uint64_t corr;
} asker;

static int asker_start(sl_actor *self, void *arg)
{
    asker *a = arg;
    return sl_ask(self, a->to, T_ASK, SL_PRIO_NORMAL, "q", 1, 30000, &a->ask_id);
}

static int asker_msg(sl_actor *self, const sl_msg *m)
{
    asker *a = sl_state(self);
    if (a->n++ == 0) {
        a->kind = m->kind;
        a->status = m->status;
        a->corr = m->corr;
    }
    return 0;
}

static const sl_behavior asker_b = {.on_start = asker_start, .on_message = asker_msg};

typedef struct ask_seen {
    bp *w;
    bool found;
    qh_stream *s; /* the ask stream found last */
    sl_envelope e;
    int64_t answered[8]; /* ids of the ask streams already handled */
    int nanswered;
} ask_seen;

/* A T-opened bidi stream on H holding one complete ASK not yet answered. */
static bool h_got_ask(qh_harness *h, void *arg)
{
    ask_seen *as = arg;
    bp *w = as->w;
    for (int i = 0; i < w->hs->nstreams && !as->found; i++) {
        qh_stream *s = &w->hs->streams[i];
        bool old = false;
        for (int k = 0; k < as->nanswered; k++)
            old |= as->answered[k] == s->id;
        if (old || s->local || (s->id & 2) != 0 || s->bytes == 0)
            continue;
        sl_envelope e;
        if (h_decode(w, &w->cap[i], &e, 1) == 1 && e.kind == SL_KIND_ASK) {
            as->found = true;
            as->s = s;
            as->e = e;
            if (as->nanswered < 8)
                as->answered[as->nanswered++] = s->id;
        }
    }
    return as->found;
}

static bool asker_answered(qh_harness *h, void *arg)
{
    return ((asker *)arg)->n > 0;
}

static void test_bad_answers(void **state)
{
    bp *w = bp_up(NULL);
    ask_seen as = {.w = w};
    enum { GARBAGE, WRONG_CORR, PEER_RESET, GOOD, ROUNDS };
    for (int round = 0; round < ROUNDS; round++) {
        asker a = {.to = h_actor(w)};
        sl_id aid;
        SLT_OK(sl_spawn(sl_node_core(w->t), &asker_b, &a, NULL, &aid));
        as.found = false;
        assert_true(qh_run(w->h, h_got_ask, &as, WAIT_MS));
        assert_int_equal(as.e.corr, a.ask_id);
        SLT_ID_EQ(as.e.from, aid);
        sl_envelope r = env(h_actor(w), aid, SL_KIND_REPLY, T_ASK, "pong", 4);
        r.corr = round == WRONG_CORR ? a.ask_id + 1000 : a.ask_id;
        static const uint8_t junk[] = {0x03, 0xc1, 0xc1, 0xc1};
        switch (round) {
        case GARBAGE:
            h_write(as.s, junk, sizeof junk);
            expect_closed(w, as.s, E_PROTOCOL);
            break;
        case WRONG_CORR:
            h_send(w, as.s, &r);
            expect_closed(w, as.s, E_PROTOCOL);
            break;
        case PEER_RESET: /* as a replier's node out of memory does (0x13) */
            SLT_OK(sl_stream_reset(as.s->s, 0x13));
            break;
        case GOOD:
            h_send(w, as.s, &r);
            break;
        }
        assert_true(qh_run(w->h, asker_answered, &a, 2000)); /* its deadline is 30 s */
        assert_int_equal(a.n, 1);
        assert_int_equal(a.corr, a.ask_id);
        assert_int_equal(a.kind, round == GOOD ? SL_KIND_REPLY : SL_KIND_FAIL);
        if (round == GARBAGE || round == WRONG_CORR)
            SLT_ERR(a.status, SL_ERR_PROTO);
        if (round == PEER_RESET)
            SLT_ERR(a.status, SL_ERR_NOMEM);
        SLT_OK(sl_stop(sl_node_core(w->t), aid, SL_REASON_NORMAL));
        qh_run(w->h, NULL, NULL, 20); /* let it stop: `a` lives on this stack */
        assert_false(sl_alive(sl_node_core(w->t), aid));
    }
    assert_int_equal(w->hc->closed, 0);
    good_round(w, 20);
    bp_down(w);
}

/* 14. The frame limit is the nodes' max_message_size plus the envelope,
 *     not the schema's default: with both nodes allowing 65 MiB, G's
 *     64 MiB + 256 KiB message arrives whole, and H's frame one byte over
 *     the configured limit is still refused with 0x11. */
typedef struct huge_sender {
    sl_id srv;
    size_t len;
    int rc;
} huge_sender;

static int huge_start(sl_actor *self, void *arg)
{
    huge_sender *hs = arg;
    uint8_t *b = calloc(1, hs->len);
    if (!b)
        return SL_ERR_NOMEM;
    b[0] = 0x5a;
    b[hs->len - 1] = 0xa5;
    hs->rc = sl_send(self, hs->srv, T_HUGE, SL_PRIO_NORMAL, b, hs->len);
    free(b);
    return 0;
}

static const sl_behavior huge_b = {.on_start = huge_start};

static bool huge_arrived(qh_harness *h, void *arg)
{
    bp *w = arg;
    return w->srv.huge_len != 0;
}

static void test_limit_follows_max_message(void **state)
{
    const size_t max = (size_t)65 << 20;
    bp_cfg cfg = {.max_message = max};
    bp *w = bp_up(&cfg);
    sl__cluster_stats st0 = t_stats(w);
    huge_sender hsend = {.srv = w->srv_id, .len = ((size_t)64 << 20) + 256 * 1024};
    sl_id id;
    SLT_OK(sl_spawn(sl_node_core(w->g), &huge_b, &hsend, NULL, &id));
    SLT_OK(hsend.rc);
    assert_true(qh_run(w->h, huge_arrived, w, 3 * WAIT_MS));
    assert_int_equal(w->srv.huge_len, hsend.len);
    assert_int_equal(t_stats(w).rejected, st0.rejected);
    good_round(w, 20);

    qh_stream *over = h_uni(w, 0x01);
    uint8_t hdr[8];
    size_t hl;
    SLT_OK(sl_frame_write_header(max + SL_ENVELOPE_MAX_OVERHEAD + 1, hdr, sizeof hdr, &hl));
    h_write(over, hdr, hl);
    expect_closed(w, over, E_TOO_BIG);
    bp_down(w);
}

/* 15. Big frames (over 64 KiB) are received straight into the message
 *     block the actor gets, allocated once the envelope's head decoded. A
 *     frame whose head is no envelope gets no block and is refused (0x10)
 *     at its end; a frame cut off by a stream reset, or by the loss of the
 *     connection, frees its block at once; a whole one arrives intact and
 *     costs T about its own size, not twice. */
#define BIG15 ((size_t)4 << 20)

/* T's allocated bytes, less the core's spare big block (kept for reuse). */
static size_t t_held(bp *w)
{
    const sl_core *c = sl_node_core(w->t);
    return w->tmem.live_bytes - (c->spare ? sizeof(sl__msg) + c->spare->cap : 0);
}

static size_t held_above;
static bool t_holds(qh_harness *h, void *arg)
{
    (void)h;
    return t_held(arg) >= held_above;
}
static bool t_released(qh_harness *h, void *arg)
{
    (void)h;
    return t_held(arg) < held_above;
}
static bool huge_arrived(qh_harness *h, void *arg);

static uint32_t sum_of(const uint8_t *b, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 31 + b[i];
    return v;
}

static void test_big_frames(void **state)
{
    bp *w = bp_up(NULL);
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = t_held(w);
    uint8_t *pay = qh_pattern(BIG15, 15);
    sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_HUGE, pay, BIG15);
    size_t n;
    uint8_t *f = h_frame(w, &e, &n);

    /* Not an envelope: nothing allocated for it, refused at its end. */
    qh_stream *junk = h_uni(w, 0x01);
    uint8_t hdr[8];
    size_t hl;
    SLT_OK(sl_frame_write_header(BIG15, hdr, sizeof hdr, &hl));
    h_write(junk, hdr, hl);
    uint8_t *x42 = malloc(BIG15);
    memset(x42, 0x42, BIG15);
    h_write(junk, x42, BIG15 / 2);
    expect_open(w, junk);
    assert_true(t_held(w) < base + 256 * 1024);
    h_write(junk, x42 + BIG15 / 2, BIG15 - BIG15 / 2);
    expect_closed(w, junk, E_PROTOCOL);
    free(x42);

    /* Cut off by RESET_STREAM: its block goes with it. */
    qh_stream *cut = h_uni(w, 0x01);
    h_write(cut, f, n / 2);
    held_above = base + BIG15;
    assert_true(qh_run(w->h, t_holds, w, WAIT_MS)); /* the block, allocated whole */
    sl_stream_reset(cut->s, 0x99);
    held_above = base + 256 * 1024;
    assert_true(qh_run(w->h, t_released, w, WAIT_MS));

    /* Whole: delivered intact, without a second copy on T. */
    qh_run(w->h, NULL, NULL, 50);
    w->tmem.peak_bytes = w->tmem.live_bytes;
    size_t live0 = w->tmem.live_bytes;
    qh_stream *whole = h_uni(w, 0x01);
    h_write(whole, f, n);
    assert_true(qh_run(w->h, huge_arrived, w, WAIT_MS));
    assert_int_equal(w->srv.huge_len, BIG15);
    assert_int_equal(w->srv.huge_sum, sum_of(pay, BIG15));
    assert_true(w->tmem.peak_bytes - live0 < BIG15 * 13 / 10);
    assert_int_equal(w->srv.bad, 0);
    good_round(w, 10);

    /* Cut off by the loss of the connection: freed with the link. */
    base = t_held(w);
    qh_stream *lost = h_uni(w, 0x01);
    h_write(lost, f, n / 2);
    held_above = base + BIG15;
    assert_true(qh_run(w->h, t_holds, w, WAIT_MS));
    sl_conn_close(w->hc->c, 0, "gone");
    held_above = base + 256 * 1024;
    assert_true(qh_run(w->h, t_released, w, WAIT_MS));
    good_round(w, 10);
    free(f);
    free(pay);
    bp_down(w);
}

/* 16. Big frames in progress on one connection share a budget of two
 *     messages: a third waits unconsumed (its peer is flow-controlled),
 *     nothing is closed, the node serves others meanwhile, and every frame
 *     goes through as the ones before it complete. Before the budget, every
 *     lane got a block of the announced size at once. */
static int huge_target;
static bool huge_all(qh_harness *h, void *arg)
{
    (void)h;
    return ((bp *)arg)->srv.huge_n >= huge_target;
}

static void test_big_budget(void **state)
{
    bp_cfg cfg = {.max_message = BIG15 + 1024};
    bp *w = bp_up(&cfg);
    good_round(w, 10);
    qh_run(w->h, NULL, NULL, 50);
    size_t base = t_held(w);
    uint8_t *pay = qh_pattern(BIG15, 16);
    w->srv.huge_want = sum_of(pay, BIG15);
    sl_envelope e = env(h_actor(w), w->srv_id, SL_KIND_SEND, T_HUGE, pay, BIG15);
    size_t n;
    uint8_t *f = h_frame(w, &e, &n);
    enum { NB = 5 };
    qh_stream *s[NB];
    for (int i = 0; i < NB; i++) {
        s[i] = h_uni(w, 0x01);
        h_write(s[i], f, n / 2);
    }
    held_above = base + 2 * BIG15;
    assert_true(qh_run(w->h, t_holds, w, WAIT_MS)); /* two blocks */
    qh_run(w->h, NULL, NULL, 300);
    assert_true(t_held(w) < base + 3 * BIG15); /* never a third */
    assert_true(t_stats(w).lanes_paused_budget >= NB - 2);
    for (int i = 0; i < NB; i++)
        expect_open(w, s[i]);
    good_round(w, 10);
    for (int i = 0; i < NB; i++)
        h_write(s[i], f + n / 2, n - n / 2);
    huge_target = NB;
    assert_true(qh_run(w->h, huge_all, w, 3 * WAIT_MS));
    assert_int_equal(w->srv.huge_n, NB);
    assert_int_equal(w->srv.huge_bad, 0);
    assert_int_equal(w->srv.bad, 0);
    good_round(w, 10);
    free(f);
    free(pay);
    bp_down(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_garbage_on_lane, qh_teardown),
        cmocka_unit_test_teardown(test_unknown_stream_type, qh_teardown),
        cmocka_unit_test_teardown(test_unknown_actor, qh_teardown),
        cmocka_unit_test_teardown(test_forged_sender, qh_teardown),
        cmocka_unit_test_teardown(test_frame_too_big, qh_teardown),
        cmocka_unit_test_teardown(test_decode_bombs, qh_teardown),
        cmocka_unit_test_teardown(test_stream_flood, qh_teardown),
        cmocka_unit_test_teardown(test_peer_never_reads, qh_teardown),
        cmocka_unit_test_teardown(test_send_on_control_stream, qh_teardown),
        cmocka_unit_test_teardown(test_bad_datagrams, qh_teardown),
        cmocka_unit_test_teardown(test_duplicate_ask, qh_teardown),
        cmocka_unit_test_teardown(test_garbage_behind_paused_lane, qh_teardown),
        cmocka_unit_test_teardown(test_bad_answers, qh_teardown),
        cmocka_unit_test_teardown(test_limit_follows_max_message, qh_teardown),
        cmocka_unit_test_teardown(test_big_frames, qh_teardown),
        cmocka_unit_test_teardown(test_big_budget, qh_teardown),
    };
    return cmocka_run_group_tests_name("cluster_badpeer", tests, NULL, NULL);
}
