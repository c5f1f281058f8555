/*
 * cluster_wire_test.c: the distributed-actor promises on the wire, between
 * networked nodes on 127.0.0.1 (one libuv loop, real QUIC): remote monitors,
 * links and stop; name lookups across nodes; unreliable sends as DATAGRAMs;
 * streamed replies cancelled mid-stream; backpressure with a slow receiver;
 * head-of-line isolation; priority on the wire; FIFO per (sender,
 * receiver, class) under load; reconnection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cluster_harness.h"
#include "runtime/cluster.h"
#include "sl_test.h"

#define T_GO 1000 /* "start your script" (sent from outside) */

static slc_world *G;
static sl_core *core_of(int i) { return sl_node_core(G->n[i]); }

static void go(int i, sl_id who) { assert_int_equal(sl_core_send(core_of(i), who, T_GO, 0, NULL, 0), SL_OK); }

static slc_probe *new_probe(void) { return calloc(1, sizeof(slc_probe)); }

static sl__cluster_stats kstats(int i)
{
    sl__cluster_stats s;
    sl__cluster_stats_get(sl__node_cluster(G->n[i]), &s);
    return s;
}

/* --------------------------------------------------- monitors, links */

typedef struct watch_ctx {
    sl_id target, ghost;
    uint64_t ref, ghost_ref;
} watch_ctx;

static int watcher_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    watch_ctx *x = p->ud;
    if (m->type == T_GO && m->kind == SL_KIND_SEND) {
        assert_int_equal(sl_monitor(self, x->target, &x->ref), SL_OK);
        assert_int_equal(sl_monitor(self, x->ghost, &x->ghost_ref), SL_OK);
    }
    return 0;
}

static slc_probe *g_a, *g_b;
static bool b_has_2(slc_world *w) { (void)w; return g_b->n >= 2; }

static void test_remote_monitor_fires_on_actor_death(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *target = new_probe(), *watcher = new_probe();
    watch_ctx x = {0};
    x.target = slc_spawn(&w, 0, target, NULL);
    x.ghost = (sl_id){sl_node_id(w.n[0]), 999999}; /* never existed */
    watcher->hook = watcher_hook;
    watcher->ud = &x;
    sl_id wid = slc_spawn(&w, 1, watcher, NULL);
    g_b = watcher;
    go(1, wid);
    /* The ghost answers DOWN(noproc) from its node. */
    assert_true(slc_run_until(&w, b_has_2, 3000)); /* GO + DOWN(ghost) */
    const slc_rec *d = slc_find(watcher, SL_KIND_DOWN);
    assert_non_null(d);
    assert_int_equal(d->corr, x.ghost_ref);
    assert_int_equal(d->status, SL_REASON_NOPROC);
    /* The target stops on its node: DOWN with its reason, not at node loss. */
    slc_run_for(&w, 50);
    assert_int_equal(sl_stop(core_of(0), x.target, SL_REASON_SHUTDOWN), SL_OK);
    int before = watcher->n;
    for (int i = 0; i < 100 && watcher->n == before; i++)
        slc_run_for(&w, 20);
    d = slc_find(watcher, SL_KIND_DOWN);
    assert_int_equal(d->corr, x.ref);
    assert_int_equal(d->status, SL_REASON_SHUTDOWN);
    assert_true(sl_id_eq(d->from, x.target));
    assert_int_equal(w.down[1], 0); /* the nodes stayed connected */
    slc_down(&w);
    free(target);
    free(watcher);
}

static int demon_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    watch_ctx *x = p->ud;
    if (m->type == T_GO) {
        assert_int_equal(sl_monitor(self, x->target, &x->ref), SL_OK);
        assert_int_equal(sl_demonitor(self, x->ref), SL_OK);
    }
    return 0;
}

static void test_remote_demonitor_stops_down(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *target = new_probe(), *watcher = new_probe();
    watch_ctx x = {0};
    x.target = slc_spawn(&w, 0, target, NULL);
    watcher->hook = demon_hook;
    watcher->ud = &x;
    sl_id wid = slc_spawn(&w, 1, watcher, NULL);
    go(1, wid);
    slc_run_for(&w, 100);
    assert_int_equal(sl_stop(core_of(0), x.target, SL_REASON_SHUTDOWN), SL_OK);
    slc_run_for(&w, 300);
    assert_null(slc_find(watcher, SL_KIND_DOWN));
    slc_down(&w);
    free(target);
    free(watcher);
}

typedef struct link_ctx {
    sl_id other;
} link_ctx;

static int linker_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    link_ctx *x = p->ud;
    if (m->type == T_GO && m->kind == SL_KIND_SEND)
        assert_int_equal(sl_link(self, x->other), SL_OK);
    return 0;
}

static void test_remote_links_carry_exits_both_ways(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    /* B's trapping linker <-> A's target: A's end stops -> B gets EXIT. */
    slc_probe *t1 = new_probe(), *l1 = new_probe();
    link_ctx x1 = {slc_spawn(&w, 0, t1, NULL)};
    l1->trap = true;
    l1->hook = linker_hook;
    l1->ud = &x1;
    sl_id lid1 = slc_spawn(&w, 1, l1, NULL);
    /* B's non-trapping linker <-> A's trapping actor: B's end crashes ->
     * A's actor gets EXIT; and A's non-trapping t3 linked from B's l3 dies
     * when l3 is stopped. */
    slc_probe *t2 = new_probe(), *l2 = new_probe();
    t2->trap = true;
    link_ctx x2 = {slc_spawn(&w, 0, t2, NULL)};
    l2->hook = linker_hook;
    l2->ud = &x2;
    sl_id lid2 = slc_spawn(&w, 1, l2, NULL);
    slc_probe *t3 = new_probe(), *l3 = new_probe();
    link_ctx x3 = {slc_spawn(&w, 0, t3, NULL)};
    l3->hook = linker_hook;
    l3->ud = &x3;
    sl_id lid3 = slc_spawn(&w, 1, l3, NULL);
    go(1, lid1);
    go(1, lid2);
    go(1, lid3);
    slc_run_for(&w, 150);

    assert_int_equal(sl_stop(core_of(0), x1.other, SL_REASON_SHUTDOWN), SL_OK);
    assert_int_equal(sl_stop(core_of(1), lid2, SL_REASON_KILLED), SL_OK);
    assert_int_equal(sl_stop(core_of(1), lid3, SL_REASON_SHUTDOWN), SL_OK);
    for (int i = 0; i < 100; i++) {
        if (slc_find(l1, SL_KIND_EXIT) && slc_find(t2, SL_KIND_EXIT) &&
            !sl_alive(core_of(0), x3.other))
            break;
        slc_run_for(&w, 20);
    }
    const slc_rec *e = slc_find(l1, SL_KIND_EXIT);
    assert_non_null(e);
    assert_int_equal(e->status, SL_REASON_SHUTDOWN);
    assert_true(sl_id_eq(e->from, x1.other));
    assert_true(sl_alive(core_of(1), lid1)); /* trapped, so alive */
    e = slc_find(t2, SL_KIND_EXIT);
    assert_non_null(e);
    assert_int_equal(e->status, SL_REASON_KILLED);
    assert_true(sl_id_eq(e->from, lid2));
    assert_false(sl_alive(core_of(0), x3.other)); /* not trapping: died along */
    slc_down(&w);
    free(t1), free(l1), free(t2), free(l2), free(t3), free(l3);
}

static void test_remote_link_to_missing_actor_exits_noproc(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *l = new_probe();
    link_ctx x = {{sl_node_id(w.n[0]), 777777}};
    l->trap = true;
    l->hook = linker_hook;
    l->ud = &x;
    sl_id lid = slc_spawn(&w, 1, l, NULL);
    go(1, lid);
    for (int i = 0; i < 100 && !slc_find(l, SL_KIND_EXIT); i++)
        slc_run_for(&w, 20);
    const slc_rec *e = slc_find(l, SL_KIND_EXIT);
    assert_non_null(e);
    assert_int_equal(e->status, SL_REASON_NOPROC);
    slc_down(&w);
    free(l);
}

static void test_remote_stop(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *t = new_probe();
    sl_id tid = slc_spawn(&w, 0, t, NULL);
    /* Stopping an actor on another node goes through its node. */
    assert_int_equal(sl_stop(core_of(1), tid, SL_REASON_SHUTDOWN), SL_OK);
    assert_int_equal(sl_stop(core_of(1), tid, 42), SL_ERR_INVAL);
    for (int i = 0; i < 100 && sl_alive(core_of(0), tid); i++)
        slc_run_for(&w, 20);
    assert_false(sl_alive(core_of(0), tid));
    slc_down(&w);
    free(t);
}

/* ---------------------------------------------------------- registry */

typedef struct reg_ctx {
    uint64_t node_a, node_b;
    uint64_t ask_found, ask_missing, ask_local, ask_bad;
} reg_ctx;

static int lookup_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    reg_ctx *x = p->ud;
    if (m->type == T_GO && m->kind == SL_KIND_SEND) {
        assert_int_equal(sl_ask_whereis(self, x->node_a, "srv", 2000, &x->ask_found), SL_OK);
        assert_int_equal(sl_ask_whereis(self, x->node_a, "nope", 2000, &x->ask_missing), SL_OK);
        assert_int_equal(sl_ask_whereis(self, x->node_b, "me", 2000, &x->ask_local), SL_OK);
        assert_int_equal(sl_ask_whereis(self, x->node_a, "", 2000, NULL), SL_ERR_BAD_NAME);
        /* Not a lookup: the registry says so instead of guessing. */
        assert_int_equal(sl_ask(self, (sl_id){x->node_a, SL_LOCAL_REGISTRY}, 1, SL_PRIO_HIGH,
                                "\x01", 1, 2000, &x->ask_bad),
                         SL_OK);
    }
    return 0;
}

static bool b_has_5(slc_world *w) { (void)w; return g_b->n >= 5; }

static void test_whereis_across_nodes(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *srv = new_probe(), *cli = new_probe();
    sl_id sid = slc_spawn(&w, 0, srv, NULL);
    assert_int_equal(sl_register(core_of(0), "srv", sid), SL_OK);
    reg_ctx x = {sl_node_id(w.n[0]), sl_node_id(w.n[1]), 0, 0, 0, 0};
    cli->hook = lookup_hook;
    cli->ud = &x;
    sl_id cid = slc_spawn(&w, 1, cli, NULL);
    assert_int_equal(sl_register(core_of(1), "me", cid), SL_OK);
    g_b = cli;
    go(1, cid);
    assert_true(slc_run_until(&w, b_has_5, 3000));
    int seen = 0;
    for (int i = 1; i < cli->n; i++) {
        const slc_rec *r = &cli->log[i];
        sl_msg m = {.kind = r->kind, .len = r->len, .data = (const uint8_t *)r->data};
        sl_id got;
        if (r->corr == x.ask_found) {
            assert_int_equal(r->kind, SL_KIND_REPLY);
            assert_int_equal(sl_whereis_reply(&m, &got), SL_OK);
            assert_true(sl_id_eq(got, sid));
            seen++;
        } else if (r->corr == x.ask_missing) {
            assert_int_equal(r->kind, SL_KIND_FAIL);
            assert_int_equal(r->status, SL_ERR_NOTFOUND);
            seen++;
        } else if (r->corr == x.ask_local) {
            assert_int_equal(sl_whereis_reply(&m, &got), SL_OK);
            assert_true(sl_id_eq(got, cid));
            seen++;
        } else if (r->corr == x.ask_bad) {
            assert_int_equal(r->kind, SL_KIND_FAIL);
            assert_int_equal(r->status, SL_ERR_INVAL);
            assert_int_equal(sl_whereis_reply(&m, &got), SL_ERR_INVAL);
            seen++;
        }
    }
    assert_int_equal(seen, 4);
    slc_down(&w);
    free(srv);
    free(cli);
}

/* -------------------------------------------------------- unreliable */

typedef struct dg_ctx {
    sl_id to;
    size_t max;
    int sent;
} dg_ctx;

static int dgram_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    dg_ctx *x = p->ud;
    if (m->type != T_GO)
        return 0;
    x->max = sl_unreliable_max(sl_actor_core(self), x->to);
    assert_true(x->max > 100 && x->max < 1200);
    static uint8_t big[2000];
    assert_int_equal(sl_send_unreliable(self, x->to, 5, SL_PRIO_LOW, big, x->max + 1),
                     SL_ERR_MSG_TOO_BIG);
    assert_int_equal(sl_send_unreliable(self, x->to, 6, SL_PRIO_LOW, big, x->max), SL_OK);
    for (int i = 0; i < 50; i++) {
        char b[32];
        int n = snprintf(b, sizeof b, "t%d", i);
        if (sl_send_unreliable(self, x->to, 7, SL_PRIO_LOW, b, (size_t)n) == SL_OK)
            x->sent++;
    }
    return 0;
}

static bool a_has_40(slc_world *w) { (void)w; return g_a->total >= 40; }
static bool a_has_1(slc_world *w) { (void)w; return g_a->total >= 1; }

static void test_unreliable_as_datagrams(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    slc_probe *rx = new_probe(), *tx = new_probe();
    dg_ctx x = {slc_spawn(&w, 0, rx, NULL), 0, 0};
    tx->hook = dgram_hook;
    tx->ud = &x;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    /* Not connected: nothing can be sent unreliably there. */
    assert_int_equal(sl_unreliable_max(core_of(1), (sl_id){0xabcdef, 1}), 0);
    g_a = rx;
    go(1, t);
    assert_true(slc_run_until(&w, a_has_40, 3000)); /* loopback: few or no losses */
    assert_true(x.sent >= 40);
    /* The max-size one may be lost like any datagram; if it came, it is whole. */
    for (int i = 0; i < rx->n; i++) {
        assert_true(rx->log[i].flags & SL_MSG_UNRELIABLE);
        if (rx->log[i].type == 6)
            assert_int_equal(rx->log[i].len, x.max);
    }
    slc_down(&w);
    free(rx);
    free(tx);
}

/* ------------------------------------------- streamed reply + cancel */

typedef struct stream_ctx {
    sl_id replier;
    sl_req req;
    uint64_t ask_id, timer;
    int chunks_sent, chunks_got;
    int after_cancel_rc;
    bool cancelled;
    int chunks_at_cancel;
} stream_ctx;

static stream_ctx SX;

static int replier_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->kind == SL_KIND_ASK) {
        SX.req = sl_req_of(m);
        assert_int_equal(sl_send_every(self, sl_self(self), 10, 77, SL_PRIO_NORMAL, NULL, 0,
                                       &SX.timer),
                         SL_OK);
    } else if (m->kind == SL_KIND_SEND && m->type == 77) {
        int rc = sl_reply_chunk(self, SX.req, 1, "tok", 3);
        if (SX.cancelled) {
            SX.after_cancel_rc = rc;
            sl_timer_cancel(self, SX.timer);
        } else if (rc == SL_OK) {
            SX.chunks_sent++;
        }
    } else if (m->kind == SL_KIND_CANCEL) {
        SX.cancelled = true;
    }
    return 0;
}

static int asker_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == T_GO && m->kind == SL_KIND_SEND) {
        assert_int_equal(sl_ask(self, SX.replier, 1, SL_PRIO_HIGH, "go", 2, 5000, &SX.ask_id),
                         SL_OK);
    } else if (m->kind == SL_KIND_CHUNK) {
        SX.chunks_got++;
        if (SX.chunks_got == 3) {
            SX.chunks_at_cancel = 3;
            assert_int_equal(sl_ask_cancel(self, SX.ask_id), SL_OK);
        }
    }
    return 0;
}

static bool replier_saw_cancel_and_tried(slc_world *w)
{
    (void)w;
    return SX.cancelled && SX.after_cancel_rc != 0;
}

static void test_streamed_reply_cancelled_midway(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    memset(&SX, 0, sizeof SX);
    slc_probe *rep = new_probe(), *ask = new_probe();
    rep->hook = replier_hook;
    rep->silent = true;
    SX.replier = slc_spawn(&w, 0, rep, NULL);
    ask->hook = asker_hook;
    sl_id a = slc_spawn(&w, 1, ask, NULL);
    go(1, a);
    assert_true(slc_run_until(&w, replier_saw_cancel_and_tried, 3000));
    /* The replier hears CANCEL and its next chunk is refused. */
    assert_int_equal(SX.after_cancel_rc, SL_ERR_CANCELLED);
    const slc_rec *c = slc_find(rep, SL_KIND_CANCEL);
    assert_non_null(c);
    assert_int_equal(c->corr, SX.ask_id);
    /* No chunk surfaces at the asker after its cancel. */
    slc_run_for(&w, 100);
    assert_int_equal(SX.chunks_got, 3);
    assert_null(slc_find(ask, SL_KIND_FAIL));
    /* On the wire: the asker reset the ask's stream, the replier's node
     * turned the reset into the CANCEL. */
    assert_int_equal(kstats(1).asks_cancelled, 1);
    assert_int_equal(kstats(0).asks_cancelled, 1);
    slc_down(&w);
    free(rep);
    free(ask);
}

/* ------------------------------------------------------ backpressure */

#define BP_MSGS 1500
#define BP_SIZE 8192

typedef struct bp_ctx {
    sl_id to;
    int next;     /* next sequence number to send */
    int again, resumes;
    int got, bad_order;
} bp_ctx;

static bp_ctx BP;

static void bp_pump(sl_actor *self)
{
    static uint8_t buf[BP_SIZE];
    while (BP.next < BP_MSGS) {
        memcpy(buf, &BP.next, sizeof BP.next);
        int rc = sl_send(self, BP.to, 3, SL_PRIO_NORMAL, buf, sizeof buf);
        if (rc == SL_ERR_AGAIN) {
            BP.again++;
            return; /* SL_TYPE_RESUME will come */
        }
        assert_int_equal(rc, SL_OK);
        BP.next++;
    }
}

static int bp_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == SL_TYPE_RESUME) {
        assert_true(sl_id_eq(m->from, BP.to));
        BP.resumes++;
    }
    if (m->type == T_GO || m->type == SL_TYPE_RESUME)
        bp_pump(self);
    return 0;
}

static int bp_receiver_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type != 3)
        return 0;
    int seq;
    memcpy(&seq, m->data, sizeof seq);
    if (seq != BP.got)
        BP.bad_order++;
    BP.got++;
    usleep(1000); /* a slow receiver: ~1,000 messages per second */
    return 0;
}

static void bp_tune(int i, sl_transport_settings *ts, sl_node_settings *ns)
{
    (void)ns;
    ts->stream_window = 256 * 1024;     /* the receiver (node 0) withholds this much at most */
    ts->max_stream_buffer = 256 * 1024; /* the sender's per-lane bound */
    ts->idle_timeout_ms = 5000;
    (void)i;
}

static bool bp_done(slc_world *w) { (void)w; return BP.got >= BP_MSGS; }

static void test_backpressure_slow_receiver_bounded(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slt_mem mem;
    slt_mem_init(&mem);
    w.mem[0] = &mem.hooks;
    w.tune = bp_tune;
    slc_up(&w, 2);
    memset(&BP, 0, sizeof BP);
    slc_probe *rx = new_probe(), *tx = new_probe();
    rx->hook = bp_receiver_hook;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.mailbox_capacity = 8;
    BP.to = slc_spawn(&w, 0, rx, &o);
    tx->hook = bp_sender_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    size_t base = mem.live_bytes;
    go(1, t);
    assert_true(slc_run_until(&w, bp_done, 30000));
    /* Everything arrived, in order, nothing refused by the mailbox. */
    assert_int_equal(BP.got, BP_MSGS);
    assert_int_equal(BP.bad_order, 0);
    sl_actor_stats as;
    assert_int_equal(sl_actor_stats_get(core_of(0), BP.to, &as), SL_OK);
    assert_int_equal(as.rejected, 0);
    assert_int_equal(as.dropped, 0);
    /* The sender was slowed down, not buffered without bound... */
    assert_true(BP.again > 0);
    assert_true(BP.resumes > 0);
    assert_true(kstats(0).lanes_paused > 0); /* the receiver paused the lane */
    /* ...and the receiving node never held more than about one stream
     * window plus a full mailbox, though 12 MiB went through. */
    size_t peak = mem.peak_bytes - base;
    printf("backpressure: %d AGAIN, %d RESUME, receiver peak +%zu KiB for %d KiB sent\n", BP.again,
           BP.resumes, peak / 1024, BP_MSGS * BP_SIZE / 1024);
    assert_true(peak < 2u * 1024 * 1024);
    slc_down(&w);
    free(rx);
    free(tx);
}

/* ------------------------------------ head-of-line, priority on wire */

#define BIG (32u << 20)

typedef struct hol_ctx {
    sl_id x, y;
    int y_got;
    uint64_t x_total_when_y_done;
    bool y_done;
} hol_ctx;

static hol_ctx HX;
static slc_probe *g_x;

static int hol_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type != T_GO)
        return 0;
    uint8_t *big = calloc(1, (64u << 20) + 1);
    /* Over the 64 MiB default: refused at the sender. */
    assert_int_equal(sl_send(self, HX.x, 1, SL_PRIO_NORMAL, big, (64u << 20) + 1),
                     SL_ERR_MSG_TOO_BIG);
    assert_int_equal(sl_send(self, HX.x, 1, SL_PRIO_NORMAL, big, BIG), SL_OK);
    free(big);
    char small[100] = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_send(self, HX.y, 2, SL_PRIO_NORMAL, small, sizeof small), SL_OK);
    return 0;
}

static int y_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type == 2 && ++HX.y_got == 100) {
        HX.y_done = true;
        HX.x_total_when_y_done = g_x->total;
    }
    return 0;
}

static bool hol_done(slc_world *w) { (void)w; return HX.y_done && g_x->total >= 1; }

static void test_head_of_line_isolation(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    memset(&HX, 0, sizeof HX);
    slc_probe *x = new_probe(), *y = new_probe(), *tx = new_probe();
    g_x = x;
    HX.x = slc_spawn(&w, 0, x, NULL);
    y->hook = y_hook;
    HX.y = slc_spawn(&w, 0, y, NULL);
    tx->hook = hol_sender_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    go(1, t);
    assert_true(slc_run_until(&w, hol_done, 20000));
    /* Y's 100 small messages, sent after X's 32 MiB one, were all there
     * before X's message finished arriving. */
    assert_int_equal(HX.x_total_when_y_done, 0);
    assert_int_equal(x->log[0].len, BIG);
    slc_down(&w);
    free(x), free(y), free(tx);
}

/* A 32 MiB message costs each node about its size, not twice: the sender
 * encodes it straight into the buffer fed to the transport, the receiver
 * assembles it straight into the block the actor gets. */
typedef struct bigmem_ctx {
    sl_id x;
    uint8_t *payload;
    int send_rc;
    uint32_t sum, got_sum;
    size_t got_len;
} bigmem_ctx;

static bigmem_ctx BM;

static uint32_t bm_sum(const uint8_t *b, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 31 + b[i];
    return v;
}

static int bm_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == T_GO)
        BM.send_rc = sl_send(self, BM.x, 3, SL_PRIO_NORMAL, BM.payload, BIG);
    return 0;
}

static int bm_x_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type == 3) {
        BM.got_len = m->len;
        BM.got_sum = bm_sum(m->data, m->len);
    }
    return 0;
}

static bool bm_done(slc_world *w)
{
    (void)w;
    return BM.got_len != 0;
}

static void test_big_message_memory(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slt_mem rmem, smem;
    slt_mem_init(&rmem);
    slt_mem_init(&smem);
    w.mem[0] = &rmem.hooks;
    w.mem[1] = &smem.hooks;
    slc_up(&w, 2);
    memset(&BM, 0, sizeof BM);
    BM.payload = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        BM.payload[i] = (uint8_t)(i * 7 + (i >> 12));
    BM.sum = bm_sum(BM.payload, BIG);
    slc_probe *x = new_probe(), *tx = new_probe();
    x->hook = bm_x_hook;
    BM.x = slc_spawn(&w, 0, x, NULL);
    tx->hook = bm_sender_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    slc_run_for(&w, 50);
    size_t r0 = rmem.live_bytes, s0 = smem.live_bytes;
    rmem.peak_bytes = r0;
    smem.peak_bytes = s0;
    go(1, t);
    assert_true(slc_run_until(&w, bm_done, 60000));
    assert_int_equal(BM.send_rc, SL_OK);
    assert_int_equal(BM.got_len, BIG);
    assert_int_equal(BM.got_sum, BM.sum);
    size_t rpeak = rmem.peak_bytes - r0, speak = smem.peak_bytes - s0;
    printf("big message: %u MiB, receiver peak +%zu KiB, sender peak +%zu KiB\n", BIG >> 20,
           rpeak / 1024, speak / 1024);
    assert_true(rpeak < (size_t)BIG * 13 / 10);
    assert_true(speak < (size_t)BIG * 13 / 10);
    slc_down(&w);
    assert_int_equal(rmem.live, 0);
    assert_int_equal(smem.live, 0);
    free(BM.payload);
    free(x), free(tx);
}

#define BULK 24

typedef struct prio_ctx {
    sl_id x;
    int next;
    bool crit_sent;
} prio_ctx;

static prio_ctx PX;

static void prio_pump(sl_actor *self)
{
    static uint8_t mb[1 << 20];
    while (PX.next < BULK) {
        int rc = sl_send(self, PX.x, 10, SL_PRIO_BACKGROUND, mb, sizeof mb);
        if (rc == SL_ERR_AGAIN)
            break;
        assert_int_equal(rc, SL_OK);
        PX.next++;
    }
    if (!PX.crit_sent && PX.next >= 2) {
        /* Bulk is queued for that node: a CRITICAL message now. */
        assert_int_equal(sl_send(self, PX.x, 11, SL_PRIO_CRITICAL, "now", 3), SL_OK);
        PX.crit_sent = true;
    }
}

static int prio_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == T_GO || m->type == SL_TYPE_RESUME)
        prio_pump(self);
    return 0;
}

static bool prio_done(slc_world *w) { (void)w; return g_x->total >= BULK + 1; }

static void test_critical_overtakes_bulk_on_the_wire(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    memset(&PX, 0, sizeof PX);
    slc_probe *x = new_probe(), *tx = new_probe();
    g_x = x;
    PX.x = slc_spawn(&w, 0, x, NULL);
    tx->hook = prio_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    go(1, t);
    assert_true(slc_run_until(&w, prio_done, 30000));
    int at = -1;
    for (int i = 0; i < x->n; i++)
        if (x->log[i].type == 11)
            at = i;
    printf("priority: the CRITICAL message arrived after %d of %d bulk messages\n", at, BULK);
    assert_true(at >= 0);
    assert_true(at <= BULK / 2); /* it did not wait behind the bulk queued before it */
    slc_down(&w);
    free(x), free(tx);
}

/*
 * Credit by class, end to end, over a path with 5 ms of delay each way (on
 * one loop without delay nothing stays in flight): node 1 keeps a
 * BACKGROUND lane to X full (8 KiB messages, refilled on RESUME), then
 * sends one CRITICAL message to Y. Counted on node 0 in envelopes its
 * cluster layer delivered: between the CRITICAL send and Y's handling of
 * it, at most what the sender's transport lets the bulk classes have in
 * flight (bulk_inflight, 64 KiB) plus the one message those bytes may
 * complete. Without the bound (both bulk settings 0) it was 14-16
 * messages, what the congestion window let through the relay.
 */
#define CB_SIZE 8192
#define CB_CRIT_AT 600 /* X's count: well past slow start and the lane's first window */
#define CB_TOTAL 1200
#define T_TICK 22

typedef struct credit_ctx {
    sl_id x, y;
    int next;
    uint64_t timer;
    bool crit_sent;
    uint64_t at_send, at_handle;
    bool handled;
} credit_ctx;

static credit_ctx CB;

static void cb_pump(sl_actor *self)
{
    static uint8_t buf[CB_SIZE];
    for (;;) {
        int rc = sl_send(self, CB.x, 20, SL_PRIO_BACKGROUND, buf, sizeof buf);
        if (rc == SL_ERR_AGAIN)
            break; /* SL_TYPE_RESUME will come */
        assert_int_equal(rc, SL_OK);
        if (++CB.next >= CB_TOTAL)
            break; /* enough bulk */
    }
}

/* Every millisecond: once X has CB_CRIT_AT, the CRITICAL message (the lane
 * is full and busy then: its sender queued far more). */
static void cb_tick(sl_actor *self)
{
    if (CB.crit_sent || g_x->total < CB_CRIT_AT)
        return;
    CB.at_send = kstats(0).delivered;
    assert_int_equal(sl_send(self, CB.y, 21, SL_PRIO_CRITICAL, "now", 3), SL_OK);
    CB.crit_sent = true;
    sl_timer_cancel(self, CB.timer);
}

static int cb_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == T_GO)
        assert_int_equal(
            sl_send_every(self, sl_self(self), 1, T_TICK, SL_PRIO_CRITICAL, NULL, 0, &CB.timer),
            SL_OK);
    if (m->type == T_GO || m->type == SL_TYPE_RESUME)
        cb_pump(self);
    if (m->type == T_TICK)
        cb_tick(self);
    return 0;
}

static int cb_y_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type == 21 && !CB.handled) {
        CB.at_handle = kstats(0).delivered;
        CB.handled = true;
    }
    return 0;
}

static bool cb_done(slc_world *w)
{
    (void)w;
    return CB.handled && g_x->total >= CB_TOTAL;
}

static void test_critical_behind_at_most_bulk_inflight(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    w.delay_ms = 5;
    slc_up(&w, 2);
    memset(&CB, 0, sizeof CB);
    slc_probe *x = new_probe(), *y = new_probe(), *tx = new_probe();
    g_x = x;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.mailbox_capacity = 100000; /* X never pauses its lane: delivered = received */
    CB.x = slc_spawn(&w, 0, x, &o);
    y->hook = cb_y_hook;
    CB.y = slc_spawn(&w, 0, y, NULL);
    tx->hook = cb_sender_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    go(1, t);
    assert_true(slc_run_until(&w, cb_done, 30000));
    uint64_t behind = CB.at_handle - CB.at_send - 1; /* BACKGROUND ones, not itself */
    printf("credit: the CRITICAL message was behind %llu BACKGROUND messages of %d bytes\n",
           (unsigned long long)behind, CB_SIZE);
    assert_true(behind <= (64u << 10) / CB_SIZE + 1);
    assert_int_equal(kstats(0).lanes_paused, 0);
    slc_down(&w);
    free(x), free(y), free(tx);
}

/* ------------------------------------------------------- under loss */

#define LOSS_DG 1500
#define LOSS_REL 300

typedef struct loss_ctx {
    sl_id to;
    int dg_sent, rel_sent, rounds;
    uint64_t timer;
    int rel_got, rel_bad;
    int dg_got;
    uint8_t dg_seen[LOSS_DG];
    int dg_dup;
} loss_ctx;

static loss_ctx LX;

static int loss_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)p;
    if (m->type == T_GO) /* a burst every 2 ms: unreliable + reliable mixed */
        return sl_send_every(self, sl_self(self), 2, 50, SL_PRIO_NORMAL, NULL, 0, &LX.timer);
    if (m->type != 50)
        return 0;
    for (int i = 0; i < 15 && LX.dg_sent < LOSS_DG; i++) {
        uint16_t seq = (uint16_t)LX.dg_sent;
        int rc = sl_send_unreliable(self, LX.to, 60, SL_PRIO_LOW, &seq, sizeof seq);
        if (rc == SL_ERR_AGAIN)
            break;
        assert_int_equal(rc, SL_OK);
        LX.dg_sent++;
    }
    for (int i = 0; i < 3 && LX.rel_sent < LOSS_REL; i++) {
        int32_t seq = LX.rel_sent;
        int rc = sl_send(self, LX.to, 61, SL_PRIO_NORMAL, &seq, sizeof seq);
        if (rc == SL_ERR_AGAIN)
            break;
        assert_int_equal(rc, SL_OK);
        LX.rel_sent++;
    }
    if (LX.dg_sent >= LOSS_DG && LX.rel_sent >= LOSS_REL)
        sl_timer_cancel(self, LX.timer);
    return 0;
}

static int loss_rx_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type == 60) {
        uint16_t seq;
        memcpy(&seq, m->data, sizeof seq);
        assert_true(m->flags & SL_MSG_UNRELIABLE);
        if (LX.dg_seen[seq]++)
            LX.dg_dup++;
        LX.dg_got++;
    } else if (m->type == 61) {
        int32_t seq;
        memcpy(&seq, m->data, sizeof seq);
        if (seq != LX.rel_got)
            LX.rel_bad++;
        LX.rel_got++;
    }
    return 0;
}

static bool loss_done(slc_world *w) { (void)w; return LX.rel_got >= LOSS_REL && LX.dg_sent >= LOSS_DG; }

static void test_unreliable_under_loss(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    w.loss_pct = 10; /* each direction, through the relay */
    slc_up(&w, 2);
    memset(&LX, 0, sizeof LX);
    slc_probe *rx = new_probe(), *tx = new_probe();
    rx->hook = loss_rx_hook;
    LX.to = slc_spawn(&w, 0, rx, NULL);
    tx->hook = loss_sender_hook;
    sl_id t = slc_spawn(&w, 1, tx, NULL);
    go(1, t);
    assert_true(slc_run_until(&w, loss_done, 30000));
    slc_run_for(&w, 200); /* the last datagrams in flight */
    printf("loss: relay dropped %llu packets; %d of %d unreliable messages arrived, %d of %d "
           "reliable\n",
           (unsigned long long)slc_relay_dropped(w.relay), LX.dg_got, LX.dg_sent, LX.rel_got,
           LX.rel_sent);
    /* Reliable messages: all of them, in order, despite the loss. */
    assert_int_equal(LX.rel_got, LOSS_REL);
    assert_int_equal(LX.rel_bad, 0);
    /* Unreliable ones: some lost and never retransmitted (no duplicates),
     * most arrived. */
    assert_true(slc_relay_dropped(w.relay) > 0);
    assert_true(LX.dg_got < LX.dg_sent);
    assert_true(LX.dg_got > LX.dg_sent / 2);
    assert_int_equal(LX.dg_dup, 0);
    slc_down(&w);
    free(rx), free(tx);
}

/* ------------------------------------------------ ordering under load */

#define ORD_MSGS 6000

typedef struct ord_sender {
    sl_id to;
    int next;
    int32_t seq[SL_PRIO_COUNT];
} ord_sender;

typedef struct ord_rx {
    int got, bad;
    sl_id senders[4];
    int32_t last[4][SL_PRIO_COUNT];
} ord_rx;

static ord_rx OR;

static void ord_pump(sl_actor *self, ord_sender *s)
{
    while (s->next < ORD_MSGS) {
        int prio = s->next % SL_PRIO_COUNT;
        uint8_t b[48] = {0};
        memcpy(b, &s->seq[prio], sizeof(int32_t));
        int rc = sl_send(self, s->to, 5, prio, b, sizeof b);
        if (rc == SL_ERR_AGAIN)
            return;
        assert_int_equal(rc, SL_OK);
        s->seq[prio]++;
        s->next++;
    }
}

static int ord_sender_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    if (m->type == T_GO || m->type == SL_TYPE_RESUME)
        ord_pump(self, p->ud);
    return 0;
}

static int ord_rx_hook(sl_actor *self, const sl_msg *m, slc_probe *p)
{
    (void)self, (void)p;
    if (m->type != 5)
        return 0;
    int k = -1;
    for (int i = 0; i < 4; i++) {
        if (sl_id_eq(OR.senders[i], m->from)) {
            k = i;
            break;
        }
        if (sl_id_is_none(OR.senders[i])) {
            OR.senders[i] = m->from;
            k = i;
            break;
        }
    }
    assert_true(k >= 0);
    int32_t seq;
    memcpy(&seq, m->data, sizeof seq);
    if (seq != OR.last[k][m->prio] + 1)
        OR.bad++;
    OR.last[k][m->prio] = seq;
    OR.got++;
    return 0;
}

static bool ord_done(slc_world *w) { (void)w; return OR.got >= 3 * ORD_MSGS; }

static void test_fifo_per_pair_under_load(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 3);
    memset(&OR, 0, sizeof OR);
    for (int i = 0; i < 4; i++)
        for (int p = 0; p < SL_PRIO_COUNT; p++)
            OR.last[i][p] = -1;
    slc_probe *rx = new_probe();
    rx->hook = ord_rx_hook;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.mailbox_capacity = 64; /* small: lanes pause and resume all along */
    sl_id rid = slc_spawn(&w, 0, rx, &o);
    /* Two senders on node 1 and one on node 2, all five classes mixed. */
    ord_sender s[3];
    slc_probe *tx[3];
    for (int i = 0; i < 3; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].to = rid;
        tx[i] = new_probe();
        tx[i]->hook = ord_sender_hook;
        tx[i]->ud = &s[i];
        go(i < 2 ? 1 : 2, slc_spawn(&w, i < 2 ? 1 : 2, tx[i], NULL));
    }
    assert_true(slc_run_until(&w, ord_done, 30000));
    assert_int_equal(OR.bad, 0);
    sl_actor_stats as;
    assert_int_equal(sl_actor_stats_get(core_of(0), rid, &as), SL_OK);
    assert_int_equal(as.rejected + as.dropped, 0);
    slc_down(&w);
    free(rx);
    for (int i = 0; i < 3; i++)
        free(tx[i]);
}

/* --------------------------------------------------------- reconnect */

static bool b_reconnected(slc_world *w) { return w->up[1] >= 2; }
static bool a_stopped(slc_world *w) { return sl_node_stopped(w->n[0]); }

static void test_reconnect_after_restart(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    slc_up(&w, 2);
    sl_node_stop(w.n[0], NULL, NULL);
    assert_true(slc_run_until(&w, a_stopped, 5000));
    sl_node_del(w.n[0]);
    w.n[0] = NULL;
    assert_true(w.down[1] >= 1);
    slc_run_for(&w, 300); /* B retries with backoff meanwhile */
    /* A new node on the same address: B finds it by itself. */
    w.n[0] = slc_node(&w, 0);
    assert_int_equal(sl_node_listen(w.n[0], "127.0.0.1", w.port), SL_OK);
    assert_true(slc_run_until(&w, b_reconnected, 5000));
    slc_probe *rx = new_probe();
    sl_id rid = slc_spawn(&w, 0, rx, NULL);
    assert_int_equal(sl_core_send(core_of(1), rid, 1, SL_PRIO_NORMAL, "hi", 2), SL_OK);
    g_a = rx;
    assert_true(slc_run_until(&w, a_has_1, 3000));
    assert_int_equal(rx->total, 1);
    slc_down(&w);
    free(rx);
}

/* --------------------------------------------------- refused peers */

static void pin_tune(int i, sl_transport_settings *ts, sl_node_settings *ns)
{
    (void)ns;
    if (i == 0) {
        ts->tls.verify = SL_VERIFY_PIN_SPKI; /* a pin no peer matches */
        memset(ts->tls.pin, 0xab, sizeof ts->tls.pin);
    }
}

static bool a_refused_one(slc_world *w)
{
    sl__cluster_stats s;
    sl__cluster_stats_get(sl__node_cluster(w->n[0]), &s);
    return s.handshakes_failed >= 1;
}

static void test_refused_inbound_peer_is_counted(void **st)
{
    (void)st;
    slc_world w = {0};
    G = &w;
    w.tune = pin_tune;
    w.nodes = 2;
    uv_loop_init(&w.loop);
    uv_timer_init(&w.loop, &w.watchdog);
    uv_idle_init(&w.loop, &w.check);
    w.n[0] = slc_node(&w, 0);
    w.n[1] = slc_node(&w, 1);
    assert_int_equal(sl_node_listen(w.n[0], "127.0.0.1", 0), SL_OK);
    assert_int_equal(sl_node_port(w.n[0], &w.port), SL_OK);
    assert_int_equal(sl_node_connect(w.n[1], "127.0.0.1", w.port), SL_OK);
    /* The listener refuses B's certificate: it counts (and logs) it. */
    assert_true(slc_run_until(&w, a_refused_one, 5000));
    assert_int_equal(w.up[0], 0);
    assert_int_equal(w.up[1], 0);
    slc_down(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_monitor_fires_on_actor_death),
        cmocka_unit_test(test_remote_demonitor_stops_down),
        cmocka_unit_test(test_remote_links_carry_exits_both_ways),
        cmocka_unit_test(test_remote_link_to_missing_actor_exits_noproc),
        cmocka_unit_test(test_remote_stop),
        cmocka_unit_test(test_whereis_across_nodes),
        cmocka_unit_test(test_unreliable_as_datagrams),
        cmocka_unit_test(test_unreliable_under_loss),
        cmocka_unit_test(test_streamed_reply_cancelled_midway),
        cmocka_unit_test(test_backpressure_slow_receiver_bounded),
        cmocka_unit_test(test_head_of_line_isolation),
        cmocka_unit_test(test_big_message_memory),
        cmocka_unit_test(test_critical_overtakes_bulk_on_the_wire),
        cmocka_unit_test(test_critical_behind_at_most_bulk_inflight),
        cmocka_unit_test(test_fifo_per_pair_under_load),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_refused_inbound_peer_is_counted),
    };
    return cmocka_run_group_tests_name("cluster_wire", tests, NULL, NULL);
}
