/*
 * monitor_test.c: black-box tests of monitors and links (sl_monitor,
 * sl_demonitor, sl_link, sl_unlink, sl_trap_exit, spawn link_to/trap_exit)
 * and of stop reasons: NORMAL, CRASH (with code), KILLED, SHUTDOWN, NOPROC.
 */
#include "sl_test.h"

/* ---- running code inside probes */

typedef struct mon_args {
    sl_id target;
    uint64_t ref;
    int rc;
} mon_args;

static int fn_monitor(sl_actor *self, slt_probe *p, void *ud)
{
    mon_args *a = ud;
    (void)p;
    a->rc = sl_monitor(self, a->target, &a->ref);
    return 0;
}

static int fn_demonitor(sl_actor *self, slt_probe *p, void *ud)
{
    mon_args *a = ud;
    (void)p;
    a->rc = sl_demonitor(self, a->ref);
    return 0;
}

static int fn_link(sl_actor *self, slt_probe *p, void *ud)
{
    mon_args *a = ud;
    (void)p;
    a->rc = sl_link(self, a->target);
    return 0;
}

static int fn_unlink(sl_actor *self, slt_probe *p, void *ud)
{
    mon_args *a = ud;
    (void)p;
    a->rc = sl_unlink(self, a->target);
    return 0;
}

static int fn_link_self(sl_actor *self, slt_probe *p, void *ud)
{
    mon_args *a = ud;
    (void)p;
    a->rc = sl_link(self, sl_self(self));
    return 0;
}

static int fn_trap(sl_actor *self, slt_probe *p, void *ud)
{
    (void)p;
    sl_trap_exit(self, *(bool *)ud);
    return 0;
}

static uint64_t monitor(slt_env *e, sl_id watcher, sl_id target)
{
    mon_args a = {target, 0, 1};
    slt_exec(e, watcher, fn_monitor, &a);
    SLT_OK(a.rc);
    assert_true(a.ref != 0);
    return a.ref;
}

static int demonitor(slt_env *e, sl_id watcher, uint64_t ref)
{
    mon_args a = {SL_ID_NONE, ref, 1};
    slt_exec(e, watcher, fn_demonitor, &a);
    return a.rc;
}

static int do_link(slt_env *e, sl_id a_id, sl_id b_id)
{
    mon_args a = {b_id, 0, 1};
    slt_exec(e, a_id, fn_link, &a);
    return a.rc;
}

static int do_unlink(slt_env *e, sl_id a_id, sl_id b_id)
{
    mon_args a = {b_id, 0, 1};
    slt_exec(e, a_id, fn_unlink, &a);
    return a.rc;
}

static void trap(slt_env *e, sl_id id, bool on)
{
    slt_exec(e, id, fn_trap, &on);
}

static sl_id spawn_trapping(slt_env *e, slt_probe *p)
{
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.trap_exit = true;
    return slt_spawn(e, p, &o);
}

/* Check that record `r` is a DOWN for `ref` about `target`. */
static void expect_down(const slt_rec *r, uint64_t ref, sl_id target, int reason, int code)
{
    assert_int_equal(r->kind, SL_KIND_DOWN);
    assert_true(r->corr == ref);
    SLT_ID_EQ(r->from, target);
    assert_int_equal(r->status, reason);
    assert_int_equal(r->code, code);
}

static void expect_exit(const slt_rec *r, sl_id from, int reason, int code)
{
    assert_int_equal(r->kind, SL_KIND_EXIT);
    SLT_ID_EQ(r->from, from);
    assert_int_equal(r->status, reason);
    assert_int_equal(r->code, code);
}

/* --------------------------------------------------------------- monitors */

enum { HOW_EXIT_NORMAL, HOW_CRASH, HOW_KILL, HOW_SHUTDOWN, HOW_EXIT_CRASH };

static void run_monitor_down(int how, int want_reason, int want_code)
{
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "watcher");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    uint64_t ref = monitor(&e, wid, tid);
    slt_run(&e);
    assert_int_equal(w->n, 0); /* nothing while it lives */
    switch (how) {
    case HOW_EXIT_NORMAL:
        slt_exit(&e, tid, SL_REASON_NORMAL, 0);
        break;
    case HOW_CRASH:
        slt_crash(&e, tid, 77);
        break;
    case HOW_KILL:
        SLT_OK(sl_stop(e.core, tid, SL_REASON_KILLED));
        break;
    case HOW_SHUTDOWN:
        SLT_OK(sl_stop(e.core, tid, SL_REASON_SHUTDOWN));
        break;
    case HOW_EXIT_CRASH:
        slt_exit(&e, tid, SL_REASON_CRASH, 13);
        break;
    }
    slt_run(&e);
    assert_int_equal(t->stops, 1);
    assert_int_equal(t->stop_reason, want_reason);
    assert_int_equal(w->n, 1);
    expect_down(&w->log[0], ref, tid, want_reason, want_code);
    assert_true(w->log[0].at == SLT_T0);
    assert_true(sl_alive(e.core, wid));
    /* The monitor fired once and is gone. */
    SLT_ERR(demonitor(&e, wid, ref), SL_ERR_NOTFOUND);
    slt_run_idle(&e);
    assert_int_equal(w->n, 1);
    assert_int_equal(slt_stats(&e).crashed, want_reason == SL_REASON_CRASH ? 1 : 0);
    slt_env_close(&e);
    test_free(w);
    test_free(t);
}

static void test_monitor_down_normal(void **state)
{
    (void)state;
    run_monitor_down(HOW_EXIT_NORMAL, SL_REASON_NORMAL, 0);
}

static void test_monitor_down_crash_with_code(void **state)
{
    (void)state;
    run_monitor_down(HOW_CRASH, SL_REASON_CRASH, 77);
}

static void test_monitor_down_exit_crash_with_code(void **state)
{
    (void)state;
    run_monitor_down(HOW_EXIT_CRASH, SL_REASON_CRASH, 13);
}

static void test_monitor_down_killed(void **state)
{
    (void)state;
    run_monitor_down(HOW_KILL, SL_REASON_KILLED, 0);
}

static void test_monitor_down_shutdown(void **state)
{
    (void)state;
    run_monitor_down(HOW_SHUTDOWN, SL_REASON_SHUTDOWN, 0);
}

static void test_monitor_dead_actor_gives_noproc_at_once(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "watcher");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    SLT_OK(sl_stop(e.core, tid, SL_REASON_NORMAL));
    slt_run(&e);
    uint64_t ref = monitor(&e, wid, tid);
    slt_run(&e); /* no time passes */
    assert_int_equal(w->n, 1);
    expect_down(&w->log[0], ref, tid, SL_REASON_NOPROC, 0);
    assert_true(w->log[0].at == SLT_T0);

    sl_id never = {SLT_NODE, 424242};
    uint64_t ref2 = monitor(&e, wid, never);
    assert_true(ref2 != ref);
    slt_run(&e);
    assert_int_equal(w->n, 2);
    expect_down(&w->log[1], ref2, never, SL_REASON_NOPROC, 0);
    slt_run_idle(&e);
    assert_int_equal(w->n, 2);
    slt_env_close(&e);
    test_free(w);
    test_free(t);
}

static void test_demonitor_no_down(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "watcher");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    uint64_t ref = monitor(&e, wid, tid);
    SLT_OK(demonitor(&e, wid, ref));
    SLT_ERR(demonitor(&e, wid, ref), SL_ERR_NOTFOUND);
    SLT_ERR(demonitor(&e, wid, ref + 1000), SL_ERR_NOTFOUND);
    slt_crash(&e, tid, 1);
    slt_run_idle(&e);
    assert_int_equal(t->stops, 1);
    assert_int_equal(w->n, 0);
    slt_env_close(&e);
    test_free(w);
    test_free(t);
}

static void test_demonitor_is_per_watcher(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *v = test_calloc(1, sizeof *v),
              *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "watcher");
    slt_probe_init(v, &e, "other");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id vid = slt_spawn(&e, v, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    uint64_t ref = monitor(&e, wid, tid);
    SLT_ERR(demonitor(&e, vid, ref), SL_ERR_NOTFOUND); /* not v's monitor */
    SLT_OK(sl_stop(e.core, tid, SL_REASON_NORMAL));
    slt_run(&e);
    assert_int_equal(w->n, 1);
    expect_down(&w->log[0], ref, tid, SL_REASON_NORMAL, 0);
    slt_env_close(&e);
    test_free(w);
    test_free(v);
    test_free(t);
}

static void test_monitor_twice_and_two_watchers(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *v = test_calloc(1, sizeof *v),
              *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "w");
    slt_probe_init(v, &e, "v");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id vid = slt_spawn(&e, v, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    uint64_t r1 = monitor(&e, wid, tid);
    uint64_t r2 = monitor(&e, wid, tid);
    uint64_t r3 = monitor(&e, vid, tid);
    assert_true(r1 != r2);
    SLT_OK(sl_stop(e.core, tid, SL_REASON_KILLED));
    slt_run(&e);
    assert_int_equal(w->n, 2);
    assert_true(slt_find(w, SL_KIND_DOWN, r1, 0) >= 0);
    assert_true(slt_find(w, SL_KIND_DOWN, r2, 0) >= 0);
    assert_int_equal(v->n, 1);
    expect_down(&v->log[0], r3, tid, SL_REASON_KILLED, 0);
    slt_env_close(&e);
    test_free(w);
    test_free(v);
    test_free(t);
}

static void test_watcher_dies_first(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *w = test_calloc(1, sizeof *w), *t = test_calloc(1, sizeof *t);
    slt_probe_init(w, &e, "watcher");
    slt_probe_init(t, &e, "target");
    sl_id wid = slt_spawn(&e, w, NULL);
    sl_id tid = slt_spawn(&e, t, NULL);
    monitor(&e, wid, tid);
    SLT_OK(sl_stop(e.core, wid, SL_REASON_NORMAL));
    slt_run(&e);
    uint64_t dl = slt_stats(&e).dead_letters;
    SLT_OK(sl_stop(e.core, tid, SL_REASON_NORMAL));
    slt_run_idle(&e);
    assert_int_equal(w->n, 0);
    /* The dead watcher's monitor went with it: no DOWN is sent into the void. */
    assert_int_equal(slt_stats(&e).dead_letters, dl);
    assert_int_equal(e.dead_n, 0);
    slt_env_close(&e);
    test_free(w);
    test_free(t);
}

/* ------------------------------------------------------------------ links */

static void run_link_propagates(int how, int want_reason)
{
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *m = test_calloc(1, sizeof *m);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    slt_probe_init(m, &e, "monitor");
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_id bid = slt_spawn(&e, b, NULL);
    sl_id mid = slt_spawn(&e, m, NULL);
    SLT_OK(do_link(&e, aid, bid));
    uint64_t ref = monitor(&e, mid, aid);
    switch (how) {
    case HOW_CRASH:
        slt_crash(&e, bid, 5);
        break;
    case HOW_KILL:
        SLT_OK(sl_stop(e.core, bid, SL_REASON_KILLED));
        break;
    case HOW_SHUTDOWN:
        SLT_OK(sl_stop(e.core, bid, SL_REASON_SHUTDOWN));
        break;
    }
    slt_run(&e);
    assert_int_equal(b->stops, 1);
    assert_int_equal(b->stop_reason, want_reason);
    /* The linked actor stopped with the same reason. */
    assert_int_equal(a->stops, 1);
    assert_int_equal(a->stop_reason, want_reason);
    assert_false(sl_alive(e.core, aid));
    assert_int_equal(a->n, 0); /* not trapping: no EXIT message */
    assert_int_equal(m->n, 1);
    assert_int_equal(m->log[0].kind, SL_KIND_DOWN);
    assert_true(m->log[0].corr == ref);
    assert_int_equal(m->log[0].status, want_reason);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(m);
}

static void test_link_crash_kills_linked(void **state)
{
    (void)state;
    run_link_propagates(HOW_CRASH, SL_REASON_CRASH);
}

static void test_link_killed_kills_linked(void **state)
{
    (void)state;
    run_link_propagates(HOW_KILL, SL_REASON_KILLED);
}

static void test_link_shutdown_kills_linked(void **state)
{
    (void)state;
    run_link_propagates(HOW_SHUTDOWN, SL_REASON_SHUTDOWN);
}

static void test_link_is_both_ways(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_id bid = slt_spawn(&e, b, NULL);
    SLT_OK(do_link(&e, aid, bid));
    slt_crash(&e, aid, 8); /* the one that called sl_link dies */
    slt_run(&e);
    assert_int_equal(b->stops, 1);
    assert_int_equal(b->stop_reason, SL_REASON_CRASH);
    assert_int_equal(sl_core_alive(e.core), 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
}

static void test_link_chain_propagates(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *p = test_calloc(4, sizeof *p);
    sl_id id[4];
    for (int i = 0; i < 4; i++) {
        slt_probe_init(&p[i], &e, "chain");
        id[i] = slt_spawn(&e, &p[i], NULL);
    }
    for (int i = 0; i < 3; i++)
        SLT_OK(do_link(&e, id[i], id[i + 1]));
    slt_crash(&e, id[3], 2);
    slt_run(&e);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(p[i].stops, 1);
        assert_int_equal(p[i].stop_reason, SL_REASON_CRASH);
    }
    assert_int_equal(sl_core_alive(e.core), 0);
    slt_env_close(&e);
    test_free(p);
}

static void test_trap_exit_receives_exit(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *c = test_calloc(1, sizeof *c), *d = test_calloc(1, sizeof *d);
    slt_probe_init(a, &e, "trap-by-opts");
    slt_probe_init(b, &e, "b");
    slt_probe_init(c, &e, "trap-by-call");
    slt_probe_init(d, &e, "d");
    sl_id aid = spawn_trapping(&e, a);
    sl_id bid = slt_spawn(&e, b, NULL);
    sl_id cid = slt_spawn(&e, c, NULL);
    sl_id did = slt_spawn(&e, d, NULL);
    trap(&e, cid, true);
    SLT_OK(do_link(&e, aid, bid));
    SLT_OK(do_link(&e, cid, did));
    slt_crash(&e, bid, 5);
    SLT_OK(sl_stop(e.core, did, SL_REASON_SHUTDOWN));
    slt_run(&e);
    assert_true(sl_alive(e.core, aid));
    assert_int_equal(a->stops, 0);
    assert_int_equal(a->n, 1);
    expect_exit(&a->log[0], bid, SL_REASON_CRASH, 5);
    assert_true(sl_alive(e.core, cid));
    assert_int_equal(c->n, 1);
    expect_exit(&c->log[0], did, SL_REASON_SHUTDOWN, 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(c);
    test_free(d);
}

static void test_trap_exit_can_be_turned_off(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    sl_id aid = spawn_trapping(&e, a);
    sl_id bid = slt_spawn(&e, b, NULL);
    SLT_OK(do_link(&e, aid, bid));
    trap(&e, aid, false);
    slt_crash(&e, bid, 5);
    slt_run(&e);
    assert_int_equal(a->stops, 1);
    assert_int_equal(a->stop_reason, SL_REASON_CRASH);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
}

static void test_normal_exit_does_not_kill_linked(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *c = test_calloc(1, sizeof *c), *d = test_calloc(1, sizeof *d);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    slt_probe_init(c, &e, "trapping");
    slt_probe_init(d, &e, "d");
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_id bid = slt_spawn(&e, b, NULL);
    sl_id cid = spawn_trapping(&e, c);
    sl_id did = slt_spawn(&e, d, NULL);
    SLT_OK(do_link(&e, aid, bid));
    SLT_OK(do_link(&e, cid, did));
    slt_exit(&e, bid, SL_REASON_NORMAL, 0);
    SLT_OK(sl_stop(e.core, did, SL_REASON_NORMAL));
    slt_run_idle(&e);
    assert_int_equal(b->stops, 1);
    assert_true(sl_alive(e.core, aid));
    assert_int_equal(a->stops, 0);
    assert_int_equal(a->n, 0); /* not trapping: NORMAL is not delivered */
    assert_true(sl_alive(e.core, cid));
    assert_int_equal(c->n, 1); /* trapping: it is */
    expect_exit(&c->log[0], did, SL_REASON_NORMAL, 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(c);
    test_free(d);
}

static void test_killed_not_trappable_by_killed_actor(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *m = test_calloc(1, sizeof *m);
    slt_probe_init(a, &e, "trapping-victim");
    slt_probe_init(b, &e, "trapping-link");
    slt_probe_init(m, &e, "monitor");
    sl_id aid = spawn_trapping(&e, a);
    sl_id bid = spawn_trapping(&e, b);
    sl_id mid = slt_spawn(&e, m, NULL);
    SLT_OK(do_link(&e, aid, bid));
    uint64_t ref = monitor(&e, mid, aid);
    SLT_OK(sl_stop(e.core, aid, SL_REASON_KILLED));
    slt_run(&e);
    /* The killed actor dies even though it traps exits ... */
    assert_int_equal(a->stops, 1);
    assert_int_equal(a->stop_reason, SL_REASON_KILLED);
    assert_int_equal(a->n, 0);
    assert_false(sl_alive(e.core, aid));
    expect_down(&m->log[0], ref, aid, SL_REASON_KILLED, 0);
    /* ... while a trapping linked actor just hears about it. */
    assert_true(sl_alive(e.core, bid));
    assert_int_equal(b->n, 1);
    expect_exit(&b->log[0], aid, SL_REASON_KILLED, 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(m);
}

static void test_link_to_dead_actor_is_noproc(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *d = test_calloc(1, sizeof *d);
    slt_probe_init(a, &e, "trapping");
    slt_probe_init(b, &e, "not-trapping");
    slt_probe_init(d, &e, "dead");
    sl_id aid = spawn_trapping(&e, a);
    sl_id bid = slt_spawn(&e, b, NULL);
    sl_id did = slt_spawn(&e, d, NULL);
    SLT_OK(sl_stop(e.core, did, SL_REASON_NORMAL));
    slt_run(&e);
    SLT_OK(do_link(&e, aid, did));
    slt_run(&e);
    assert_true(sl_alive(e.core, aid));
    assert_int_equal(a->n, 1);
    expect_exit(&a->log[0], did, SL_REASON_NOPROC, 0);
    SLT_OK(do_link(&e, bid, did));
    slt_run(&e);
    assert_int_equal(b->stops, 1);
    assert_int_equal(b->stop_reason, SL_REASON_NOPROC);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(d);
}

static void test_link_self_is_invalid(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    mon_args m = {SL_ID_NONE, 0, 1};
    slt_exec(&e, aid, fn_link_self, &m);
    SLT_ERR(m.rc, SL_ERR_INVAL);
    slt_run_idle(&e);
    assert_true(sl_alive(e.core, aid));
    slt_env_close(&e);
}

static void test_unlink(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *c = test_calloc(1, sizeof *c);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    slt_probe_init(c, &e, "c");
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_id bid = slt_spawn(&e, b, NULL);
    sl_id cid = slt_spawn(&e, c, NULL);
    SLT_OK(do_link(&e, aid, bid));
    SLT_OK(do_link(&e, aid, cid));
    SLT_OK(do_unlink(&e, aid, bid));
    SLT_ERR(do_unlink(&e, aid, bid), SL_ERR_NOTFOUND);
    SLT_OK(do_unlink(&e, cid, aid)); /* removed both ways, from either side */
    SLT_ERR(do_unlink(&e, aid, cid), SL_ERR_NOTFOUND);
    slt_crash(&e, bid, 4);
    slt_crash(&e, cid, 4);
    slt_run_idle(&e);
    assert_true(sl_alive(e.core, aid));
    assert_int_equal(a->stops, 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(c);
}

static void test_link_twice_one_exit(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    slt_probe_init(a, &e, "a");
    slt_probe_init(b, &e, "b");
    sl_id aid = spawn_trapping(&e, a);
    sl_id bid = slt_spawn(&e, b, NULL);
    SLT_OK(do_link(&e, aid, bid));
    SLT_OK(do_link(&e, aid, bid));
    SLT_OK(do_link(&e, bid, aid));
    slt_crash(&e, bid, 6);
    slt_run_idle(&e);
    assert_int_equal(a->n, 1); /* a link is a relation, not a counter */
    expect_exit(&a->log[0], bid, SL_REASON_CRASH, 6);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
}

static void test_spawn_link_to(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b),
              *c = test_calloc(1, sizeof *c), *d = test_calloc(1, sizeof *d);
    slt_probe_init(a, &e, "parent");
    slt_probe_init(b, &e, "child");
    slt_probe_init(c, &e, "orphan");
    slt_probe_init(d, &e, "trapping-orphan");
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.link_to = aid;
    sl_id bid = slt_spawn(&e, b, &o);
    slt_crash(&e, aid, 3);
    slt_run(&e);
    assert_int_equal(b->stops, 1);
    assert_int_equal(b->stop_reason, SL_REASON_CRASH);
    assert_false(sl_alive(e.core, bid));

    /* link_to a dead actor without trapping: refused, nothing left running. */
    sl_id cid = SL_ID_NONE;
    SLT_ERR(slt_try_spawn(&e, c, &o, &cid), SL_ERR_NOACTOR);
    assert_int_equal(sl_core_alive(e.core), 0);
    /* With trapping: spawned, and told at once. */
    o.trap_exit = true;
    sl_id did = slt_spawn(&e, d, &o);
    slt_run(&e);
    assert_true(sl_alive(e.core, did));
    assert_int_equal(d->n, 1);
    expect_exit(&d->log[0], aid, SL_REASON_NOPROC, 0);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
    test_free(c);
    test_free(d);
}

static int start_fail_9(sl_actor *self, slt_probe *p)
{
    (void)self;
    (void)p;
    return 9;
}

static void test_spawn_link_to_start_failure_notifies_link(void **state)
{
    /* The failed actor "is stopped with reason CRASH"; it was linked
     * atomically at spawn, so a trapping link hears about it. */
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *b = test_calloc(1, sizeof *b);
    slt_probe_init(a, &e, "trapping-parent");
    slt_probe_init(b, &e, "failing-child");
    sl_id aid = spawn_trapping(&e, a);
    b->start_hook = start_fail_9;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.link_to = aid;
    sl_id bid = SL_ID_NONE;
    assert_int_equal(slt_try_spawn(&e, b, &o, &bid), 9);
    slt_run_idle(&e);
    assert_true(sl_alive(e.core, aid));
    assert_int_equal(a->n, 1);
    expect_exit(&a->log[0], b->id, SL_REASON_CRASH, 9);
    slt_env_close(&e);
    test_free(a);
    test_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_down_normal),
        cmocka_unit_test(test_monitor_down_crash_with_code),
        cmocka_unit_test(test_monitor_down_exit_crash_with_code),
        cmocka_unit_test(test_monitor_down_killed),
        cmocka_unit_test(test_monitor_down_shutdown),
        cmocka_unit_test(test_monitor_dead_actor_gives_noproc_at_once),
        cmocka_unit_test(test_demonitor_no_down),
        cmocka_unit_test(test_demonitor_is_per_watcher),
        cmocka_unit_test(test_monitor_twice_and_two_watchers),
        cmocka_unit_test(test_watcher_dies_first),
        cmocka_unit_test(test_link_crash_kills_linked),
        cmocka_unit_test(test_link_killed_kills_linked),
        cmocka_unit_test(test_link_shutdown_kills_linked),
        cmocka_unit_test(test_link_is_both_ways),
        cmocka_unit_test(test_link_chain_propagates),
        cmocka_unit_test(test_trap_exit_receives_exit),
        cmocka_unit_test(test_trap_exit_can_be_turned_off),
        cmocka_unit_test(test_normal_exit_does_not_kill_linked),
        cmocka_unit_test(test_killed_not_trappable_by_killed_actor),
        cmocka_unit_test(test_link_to_dead_actor_is_noproc),
        cmocka_unit_test(test_link_self_is_invalid),
        cmocka_unit_test(test_unlink),
        cmocka_unit_test(test_link_twice_one_exit),
        cmocka_unit_test(test_spawn_link_to),
        cmocka_unit_test(test_spawn_link_to_start_failure_notifies_link),
    };
    return cmocka_run_group_tests_name("monitor", tests, NULL, NULL);
}
