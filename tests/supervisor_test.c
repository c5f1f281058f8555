/*
 * supervisor_test.c: black-box tests of supervisors (starling/supervisor.h):
 * start order, one_for_one / one_for_all / rest_for_one, permanent /
 * transient / temporary children, the restart intensity window and its
 * defaults, a supervisor giving up and reporting it up the tree, nested
 * trees, child names and mailbox capacity, orderly stop, failed start.
 *
 * Children are probes (stateful ones where a fresh state must be proven), so
 * the tests can crash them, message them and count their starts and stops.
 */
#include "sl_test.h"

enum { T_PING = 1 };

typedef struct restart_log {
    size_t n;
    struct {
        size_t child;
        sl_id old_id, new_id;
        int reason;
    } r[32];
} restart_log;

static void on_restart(sl_actor *sup, size_t child, sl_id old_id, sl_id new_id, int reason,
                       void *ud)
{
    restart_log *l = ud;
    (void)sup;
    if (l->n < 32) {
        l->r[l->n].child = child;
        l->r[l->n].old_id = old_id;
        l->r[l->n].new_id = new_id;
        l->r[l->n].reason = reason;
    }
    l->n++;
}

#define MAXC 5

typedef struct tree {
    slt_env e;
    slt_probe c[MAXC];
    sl_child_spec specs[MAXC];
    sl_sup_spec spec;
    restart_log log;
    sl_id sup;
} tree;

/* Prepare a supervisor spec over n stateful probe children, all permanent. */
static tree *tree_new(int strategy, uint32_t intensity, uint64_t period_ms, size_t n)
{
    tree *t = test_calloc(1, sizeof *t);
    slt_env_open(&t->e);
    for (size_t i = 0; i < n; i++) {
        slt_probe_init(&t->c[i], &t->e, "child");
        t->specs[i].name = NULL;
        t->specs[i].behavior = slt_stateful_behavior();
        t->specs[i].arg = &t->c[i];
        t->specs[i].restart = SL_RESTART_PERMANENT;
        t->specs[i].mailbox_capacity = 0;
    }
    t->spec.strategy = (uint8_t)strategy;
    t->spec.intensity = intensity;
    t->spec.period_ms = period_ms;
    t->spec.children = t->specs;
    t->spec.n_children = n;
    t->spec.on_restart = on_restart;
    t->spec.ud = &t->log;
    return t;
}

static void tree_start(tree *t)
{
    SLT_OK(sl_supervisor_spawn(t->e.core, &t->spec, NULL, &t->sup));
    assert_false(sl_id_is_none(t->sup));
    slt_run(&t->e);
}

static void tree_free(tree *t)
{
    slt_env_close(&t->e);
    test_free(t);
}

static sl_id child_id(tree *t, size_t i)
{
    sl_id id = {1, 1};
    SLT_OK(sl_supervisor_child(t->e.core, t->sup, i, &id));
    return id;
}

static uint64_t restarts(slt_env *e, sl_id sup)
{
    uint64_t n = 12345;
    SLT_OK(sl_supervisor_restarts(e->core, sup, &n));
    return n;
}

/* Monitor `target` from a fresh probe `w`; returns the ref. */
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

static uint64_t watch(slt_env *e, slt_probe *w, sl_id target)
{
    slt_probe_init(w, e, "watcher");
    sl_id wid = slt_spawn(e, w, NULL);
    mon_args a = {target, 0, 1};
    slt_exec(e, wid, fn_monitor, &a);
    SLT_OK(a.rc);
    return a.ref;
}

/* ------------------------------------------------------------------ tests */

static void test_sup_starts_children_in_order(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 3);
    tree_start(t);
    assert_true(sl_alive(t->e.core, t->sup));
    assert_int_equal(sl_core_alive(t->e.core), 4);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t->c[i].starts, 1);
        assert_int_equal(t->c[i].bad_state, 0);
        SLT_ID_EQ(child_id(t, i), t->c[i].id);
        assert_true(sl_alive(t->e.core, t->c[i].id));
        if (i)
            assert_true(t->c[i - 1].start_seq < t->c[i].start_seq);
    }
    assert_int_equal(restarts(&t->e, t->sup), 0);
    sl_id x;
    uint64_t n;
    SLT_ERR(sl_supervisor_child(t->e.core, t->sup, 3, &x), SL_ERR_INVAL);
    SLT_ERR(sl_supervisor_child(t->e.core, t->c[0].id, 0, &x), SL_ERR_NOACTOR);
    SLT_ERR(sl_supervisor_restarts(t->e.core, t->c[0].id, &n), SL_ERR_NOACTOR);
    tree_free(t);
}

static void test_one_for_one(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 3);
    tree_start(t);
    sl_id old = t->c[1].id;
    for (uint32_t i = 0; i < 3; i++)
        SLT_OK(slt_send_u32(&t->e, old, T_PING, SL_PRIO_NORMAL, i));
    slt_run(&t->e);
    assert_int_equal(t->c[1].log[2].count, 3);
    slt_crash(&t->e, old, 42);
    slt_run(&t->e);

    /* Only the crashed child was restarted: new id, fresh state. */
    assert_int_equal(t->c[1].stops, 1);
    assert_int_equal(t->c[1].stop_reason, SL_REASON_CRASH);
    assert_int_equal(t->c[1].starts, 2);
    sl_id neu = child_id(t, 1);
    SLT_ID_NE(neu, old);
    SLT_ID_EQ(neu, t->c[1].id);
    assert_true(sl_alive(t->e.core, neu));
    assert_false(sl_alive(t->e.core, old));
    SLT_ERR(slt_send_u32(&t->e, old, T_PING, SL_PRIO_NORMAL, 9), SL_ERR_NOACTOR);
    assert_int_equal(t->c[1].bad_state, 0);
    SLT_OK(slt_send_u32(&t->e, neu, T_PING, SL_PRIO_NORMAL, 9));
    slt_run(&t->e);
    assert_int_equal(t->c[1].log[3].count, 1); /* the state started over */
    SLT_ID_EQ(t->c[1].log[3].self, neu);
    for (size_t i = 0; i < 3; i += 2) {
        assert_int_equal(t->c[i].starts, 1);
        assert_int_equal(t->c[i].stops, 0);
        SLT_ID_EQ(child_id(t, i), t->c[i].first_id);
    }
    assert_int_equal(restarts(&t->e, t->sup), 1);
    assert_int_equal(t->log.n, 1);
    assert_int_equal(t->log.r[0].child, 1);
    SLT_ID_EQ(t->log.r[0].old_id, old);
    SLT_ID_EQ(t->log.r[0].new_id, neu);
    assert_int_equal(t->log.r[0].reason, SL_REASON_CRASH);
    assert_int_equal(sl_core_alive(t->e.core), 4);
    tree_free(t);
}

static void test_one_for_all(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ALL, 3, 1000, 3);
    tree_start(t);
    sl_id old[3];
    for (size_t i = 0; i < 3; i++)
        old[i] = t->c[i].id;
    uint64_t seq0 = t->e.seq;
    slt_crash(&t->e, old[1], 1);
    slt_run(&t->e);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t->c[i].stops, 1);
        assert_int_equal(t->c[i].starts, 2);
        assert_int_equal(t->c[i].bad_state, 0);
        sl_id neu = child_id(t, i);
        SLT_ID_NE(neu, old[i]);
        SLT_ID_EQ(neu, t->c[i].id);
        assert_false(sl_alive(t->e.core, old[i]));
        assert_true(sl_alive(t->e.core, neu));
        assert_true(t->c[i].start_seq > seq0);
    }
    assert_int_equal(t->c[1].stop_reason, SL_REASON_CRASH);
    assert_int_equal(t->c[0].stop_reason, SL_REASON_SHUTDOWN);
    assert_int_equal(t->c[2].stop_reason, SL_REASON_SHUTDOWN);
    /* Others stopped in reverse order, then all restarted in order: an old
     * incarnation is gone (on_stop ran) before the new one starts. */
    if (!(t->c[0].stop_seq < t->c[0].start_seq && t->c[2].stop_seq < t->c[2].start_seq))
        for (size_t i = 0; i < 3; i++)
            print_error("child %zu: stop seq %llu, start seq %llu\n", i,
                        (unsigned long long)t->c[i].stop_seq,
                        (unsigned long long)t->c[i].start_seq);
    assert_true(t->c[2].stop_seq < t->c[0].stop_seq);
    assert_true(t->c[0].start_seq < t->c[1].start_seq);
    assert_true(t->c[1].start_seq < t->c[2].start_seq);
    assert_true(t->c[0].stop_seq < t->c[0].start_seq);
    assert_true(t->c[2].stop_seq < t->c[2].start_seq);
    assert_true(restarts(&t->e, t->sup) >= 1);
    assert_int_equal(sl_core_alive(t->e.core), 4);
    tree_free(t);
}

static void test_rest_for_one(void **state)
{
    (void)state;
    tree *t = tree_new(SL_REST_FOR_ONE, 3, 1000, 4);
    tree_start(t);
    sl_id old[4];
    for (size_t i = 0; i < 4; i++)
        old[i] = t->c[i].id;
    slt_crash(&t->e, old[1], 1);
    slt_run(&t->e);
    /* c0 untouched */
    assert_int_equal(t->c[0].starts, 1);
    assert_int_equal(t->c[0].stops, 0);
    SLT_ID_EQ(child_id(t, 0), old[0]);
    /* c1..c3 restarted in order; c2, c3 stopped in reverse order first */
    for (size_t i = 1; i < 4; i++) {
        assert_int_equal(t->c[i].stops, 1);
        assert_int_equal(t->c[i].starts, 2);
        sl_id neu = child_id(t, i);
        SLT_ID_NE(neu, old[i]);
        assert_true(sl_alive(t->e.core, neu));
    }
    assert_int_equal(t->c[1].stop_reason, SL_REASON_CRASH);
    assert_int_equal(t->c[2].stop_reason, SL_REASON_SHUTDOWN);
    assert_int_equal(t->c[3].stop_reason, SL_REASON_SHUTDOWN);
    assert_true(t->c[3].stop_seq < t->c[2].stop_seq);
    assert_true(t->c[2].stop_seq < t->c[2].start_seq); /* old gone before new starts */
    assert_true(t->c[3].stop_seq < t->c[3].start_seq);
    assert_true(t->c[1].start_seq < t->c[2].start_seq);
    assert_true(t->c[2].start_seq < t->c[3].start_seq);
    assert_int_equal(sl_core_alive(t->e.core), 5);
    tree_free(t);
}

static void test_restart_types(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 10, 1000, 5);
    t->specs[0].restart = SL_RESTART_PERMANENT; /* exits NORMAL: restarted */
    t->specs[1].restart = SL_RESTART_TRANSIENT; /* exits NORMAL: not restarted */
    t->specs[2].restart = SL_RESTART_TEMPORARY; /* crashes: not restarted */
    t->specs[3].restart = SL_RESTART_TRANSIENT; /* crashes: restarted */
    t->specs[4].restart = SL_RESTART_TRANSIENT; /* exits SHUTDOWN: not restarted */
    tree_start(t);
    slt_exit(&t->e, t->c[0].id, SL_REASON_NORMAL, 0);
    slt_exit(&t->e, t->c[1].id, SL_REASON_NORMAL, 0);
    slt_crash(&t->e, t->c[2].id, 2);
    slt_crash(&t->e, t->c[3].id, 3);
    slt_exit(&t->e, t->c[4].id, SL_REASON_SHUTDOWN, 0);
    slt_run(&t->e);
    static const int want_starts[5] = {2, 1, 1, 2, 1};
    for (size_t i = 0; i < 5; i++) {
        if (t->c[i].starts != want_starts[i])
            print_error("child %zu started %d times, expected %d\n", i, t->c[i].starts,
                        want_starts[i]);
        assert_int_equal(t->c[i].stops, 1);
        assert_int_equal(t->c[i].starts, want_starts[i]);
        sl_id id = child_id(t, i);
        if (want_starts[i] == 2) {
            assert_true(sl_alive(t->e.core, id));
            SLT_ID_EQ(id, t->c[i].id);
        } else {
            assert_true(sl_id_is_none(id)); /* "SL_ID_NONE while it is not running" */
        }
    }
    assert_int_equal(restarts(&t->e, t->sup), 2);
    assert_int_equal(t->log.n, 2);
    assert_true(sl_alive(t->e.core, t->sup));
    assert_int_equal(sl_core_alive(t->e.core), 3);
    tree_free(t);
}

static void test_intensity_exceeded_stops_supervisor(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 2, 1000, 2);
    tree_start(t);
    slt_probe *w = test_calloc(1, sizeof *w);
    uint64_t ref = watch(&t->e, w, t->sup);
    for (int i = 0; i < 2; i++) {
        slt_crash(&t->e, child_id(t, 0), 1);
        slt_run(&t->e);
        assert_true(sl_alive(t->e.core, t->sup));
    }
    assert_int_equal(restarts(&t->e, t->sup), 2);
    assert_int_equal(t->c[0].starts, 3);
    /* A third restart within the period is one too many. */
    slt_crash(&t->e, child_id(t, 0), 1);
    slt_run(&t->e);
    assert_false(sl_alive(t->e.core, t->sup));
    assert_int_equal(t->c[0].starts, 3);
    assert_int_equal(t->c[1].stops, 1);
    assert_int_equal(t->c[1].stop_reason, SL_REASON_SHUTDOWN);
    assert_int_equal(w->n, 1);
    assert_int_equal(w->log[0].kind, SL_KIND_DOWN);
    assert_true(w->log[0].corr == ref);
    SLT_ID_EQ(w->log[0].from, t->sup);
    assert_int_equal(w->log[0].status, SL_REASON_SHUTDOWN);
    assert_int_equal(sl_core_alive(t->e.core), 1); /* only the watcher */
    sl_id x;
    SLT_ERR(sl_supervisor_child(t->e.core, t->sup, 0, &x), SL_ERR_NOACTOR);
    uint64_t n;
    SLT_ERR(sl_supervisor_restarts(t->e.core, t->sup, &n), SL_ERR_NOACTOR);
    tree_free(t);
    test_free(w);
}

static void test_intensity_window_slides(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 1, 100, 1);
    tree_start(t);
    for (int i = 0; i < 3; i++) {
        slt_crash(&t->e, child_id(t, 0), 1);
        slt_run(&t->e);
        assert_true(sl_alive(t->e.core, t->sup));
        slt_advance(&t->e, 150); /* the previous restart leaves the window */
    }
    assert_int_equal(restarts(&t->e, t->sup), 3);
    assert_int_equal(t->c[0].starts, 4);
    /* Two within 100 ms is one too many. */
    slt_crash(&t->e, child_id(t, 0), 1);
    slt_run(&t->e);
    slt_advance(&t->e, 50);
    slt_crash(&t->e, child_id(t, 0), 1);
    slt_run(&t->e);
    assert_false(sl_alive(t->e.core, t->sup));
    assert_int_equal(sl_core_alive(t->e.core), 0);
    tree_free(t);
}

static void test_intensity_defaults(void **state)
{
    /* "default 3, 5000 if both 0" */
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 0, 0, 1);
    tree_start(t);
    for (int i = 0; i < 3; i++) {
        slt_crash(&t->e, child_id(t, 0), 1);
        slt_run(&t->e);
        slt_advance(&t->e, 1000);
        assert_true(sl_alive(t->e.core, t->sup));
    }
    slt_crash(&t->e, child_id(t, 0), 1); /* 4th within 5 s */
    slt_run(&t->e);
    assert_false(sl_alive(t->e.core, t->sup));
    tree_free(t);
}

static void test_kill_child_is_restarted(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 2);
    tree_start(t);
    sl_id old = t->c[0].id;
    SLT_OK(sl_stop(t->e.core, old, SL_REASON_KILLED));
    slt_run(&t->e);
    assert_int_equal(t->c[0].starts, 2);
    assert_int_equal(t->log.n, 1);
    assert_int_equal(t->log.r[0].reason, SL_REASON_KILLED);
    SLT_ID_EQ(t->log.r[0].old_id, old);
    assert_true(sl_alive(t->e.core, t->sup)); /* a supervisor traps its children's exits */
    tree_free(t);
}

static void test_nested_tree_reports_up(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 5, 1000, 2);
    /* inner supervisor: one worker, gives up at the second restart */
    slt_probe *x = test_calloc(1, sizeof *x);
    slt_probe_init(x, &t->e, "leaf");
    sl_child_spec leaf = {NULL, slt_stateful_behavior(), x, SL_RESTART_PERMANENT, 0};
    restart_log inner_log;
    memset(&inner_log, 0, sizeof inner_log);
    sl_sup_spec inner = {SL_ONE_FOR_ONE, 1, 1000, &leaf, 1, on_restart, &inner_log};
    t->specs[0].behavior = sl_supervisor_behavior();
    t->specs[0].arg = &inner;
    tree_start(t);

    sl_id inner1 = child_id(t, 0);
    assert_true(sl_alive(t->e.core, inner1));
    sl_id leaf1;
    SLT_OK(sl_supervisor_child(t->e.core, inner1, 0, &leaf1));
    SLT_ID_EQ(leaf1, x->id);
    assert_int_equal(sl_core_alive(t->e.core), 4); /* top, inner, leaf, sibling */
    slt_probe *w = test_calloc(1, sizeof *w);
    uint64_t ref = watch(&t->e, w, inner1);

    slt_crash(&t->e, leaf1, 1); /* inner restarts it */
    slt_run(&t->e);
    assert_true(sl_alive(t->e.core, inner1));
    assert_int_equal(x->starts, 2);
    slt_crash(&t->e, x->id, 1); /* one too many: inner gives up */
    slt_run(&t->e);

    /* The inner supervisor stopped with SHUTDOWN; a monitor saw it ... */
    assert_false(sl_alive(t->e.core, inner1));
    assert_int_equal(w->n, 1);
    assert_int_equal(w->log[0].kind, SL_KIND_DOWN);
    assert_true(w->log[0].corr == ref);
    assert_int_equal(w->log[0].status, SL_REASON_SHUTDOWN);
    /* ... and so did its own supervisor, which restarted the subtree. */
    assert_true(sl_alive(t->e.core, t->sup));
    assert_int_equal(restarts(&t->e, t->sup), 1);
    assert_int_equal(t->log.n, 1);
    assert_int_equal(t->log.r[0].child, 0);
    assert_int_equal(t->log.r[0].reason, SL_REASON_SHUTDOWN);
    sl_id inner2 = child_id(t, 0);
    SLT_ID_NE(inner2, inner1);
    assert_true(sl_alive(t->e.core, inner2));
    assert_int_equal(restarts(&t->e, inner2), 0); /* a fresh supervisor */
    assert_int_equal(x->starts, 3);
    sl_id leaf3;
    SLT_OK(sl_supervisor_child(t->e.core, inner2, 0, &leaf3));
    SLT_ID_EQ(leaf3, x->id);
    /* The sibling was not touched. */
    assert_int_equal(t->c[1].starts, 1);
    assert_int_equal(t->c[1].stops, 0);
    assert_int_equal(sl_core_alive(t->e.core), 5); /* + watcher */
    tree_free(t);
    test_free(x);
    test_free(w);
}

static void test_nested_tree_top_gives_up(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 1, 1000, 1);
    slt_probe *x = test_calloc(1, sizeof *x);
    slt_probe_init(x, &t->e, "leaf");
    sl_child_spec leaf = {NULL, slt_probe_behavior(), x, SL_RESTART_PERMANENT, 0};
    sl_sup_spec inner = {SL_ONE_FOR_ONE, 1, 1000, &leaf, 1, NULL, NULL};
    t->specs[0].behavior = sl_supervisor_behavior();
    t->specs[0].arg = &inner;
    tree_start(t);
    slt_probe *w = test_calloc(1, sizeof *w);
    uint64_t ref = watch(&t->e, w, t->sup);
    /* Two inner give-ups: the top allows one restart, not two. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2; i++) {
            slt_crash(&t->e, x->id, 1);
            slt_run(&t->e);
        }
    }
    assert_false(sl_alive(t->e.core, t->sup));
    assert_int_equal(w->n, 1);
    assert_int_equal(w->log[0].kind, SL_KIND_DOWN);
    assert_true(w->log[0].corr == ref);
    assert_int_equal(w->log[0].status, SL_REASON_SHUTDOWN);
    assert_int_equal(sl_core_alive(t->e.core), 1); /* only the watcher */
    assert_int_equal(x->starts, x->stops);
    tree_free(t);
    test_free(x);
    test_free(w);
}

static void test_stop_supervisor_stops_children_in_reverse(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 3);
    tree_start(t);
    SLT_OK(sl_stop(t->e.core, t->sup, SL_REASON_SHUTDOWN));
    slt_run_idle(&t->e);
    assert_int_equal(sl_core_alive(t->e.core), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t->c[i].stops, 1);
        assert_int_equal(t->c[i].starts, 1); /* not restarted */
        assert_int_equal(t->c[i].stop_reason, SL_REASON_SHUTDOWN);
    }
    assert_true(t->c[2].stop_seq < t->c[1].stop_seq);
    assert_true(t->c[1].stop_seq < t->c[0].stop_seq);
    assert_int_equal(t->log.n, 0);
    tree_free(t);
}

static void test_core_shutdown_with_tree(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ALL, 3, 1000, 3);
    tree_start(t);
    sl_core_shutdown(t->e.core);
    slt_run_idle(&t->e);
    assert_int_equal(sl_core_alive(t->e.core), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t->c[i].stops, 1);
        assert_int_equal(t->c[i].starts, 1); /* nothing restarted during shutdown */
        assert_int_equal(t->c[i].stop_reason, SL_REASON_SHUTDOWN);
    }
    tree_free(t);
}

static void test_del_with_live_tree(void **state)
{
    (void)state;
    tree *t = tree_new(SL_REST_FOR_ONE, 3, 1000, 3);
    tree_start(t);
    tree_free(t); /* leak check inside */
}

static int start_fail_33(sl_actor *self, slt_probe *p)
{
    (void)self;
    (void)p;
    return 33;
}

static void test_supervisor_spawn_child_start_fails(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 3);
    t->c[1].start_hook = start_fail_33;
    sl_id sup = SL_ID_NONE;
    assert_int_equal(sl_supervisor_spawn(t->e.core, &t->spec, NULL, &sup), 33);
    slt_run_idle(&t->e);
    assert_int_equal(sl_core_alive(t->e.core), 0); /* "nothing is left running" */
    assert_int_equal(t->c[0].starts, 1);
    assert_int_equal(t->c[0].stops, 1);
    assert_int_equal(t->c[1].starts, 1);
    assert_int_equal(t->c[2].starts, 0);
    tree_free(t);
}

static void test_child_names_and_capacity(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 2);
    t->specs[0].name = "worker";
    t->specs[1].mailbox_capacity = 2;
    tree_start(t);
    sl_id id;
    SLT_OK(sl_whereis(t->e.core, "worker", &id));
    SLT_ID_EQ(id, t->c[0].id);
    slt_crash(&t->e, id, 1);
    slt_run(&t->e);
    sl_id id2;
    SLT_OK(sl_whereis(t->e.core, "worker", &id2));
    SLT_ID_NE(id2, id);
    SLT_ID_EQ(id2, child_id(t, 0));

    sl_id c1 = child_id(t, 1);
    SLT_OK(slt_send_u32(&t->e, c1, T_PING, SL_PRIO_NORMAL, 0));
    SLT_OK(slt_send_u32(&t->e, c1, T_PING, SL_PRIO_NORMAL, 1));
    SLT_ERR(slt_send_u32(&t->e, c1, T_PING, SL_PRIO_NORMAL, 2), SL_ERR_MAILBOX_FULL);
    slt_run(&t->e);
    SLT_OK(sl_stop(t->e.core, t->sup, SL_REASON_SHUTDOWN));
    slt_run(&t->e);
    SLT_ERR(sl_whereis(t->e.core, "worker", &id), SL_ERR_NOTFOUND);
    tree_free(t);
}

static void run_named_group_restart(int strategy)
{
    /* Children with registered names: a group restart must not start the
     * new incarnation while the old one still holds the name. */
    tree *t = tree_new(strategy, 3, 1000, 3);
    static const char *const names[3] = {"first", "second", "third"};
    for (size_t i = 0; i < 3; i++)
        t->specs[i].name = names[i];
    tree_start(t);
    slt_crash(&t->e, t->c[1].id, 1);
    slt_run(&t->e);
    assert_true(sl_alive(t->e.core, t->sup));
    for (size_t i = 0; i < 3; i++) {
        sl_id id = SL_ID_NONE, cid = child_id(t, i);
        SLT_OK(sl_whereis(t->e.core, names[i], &id));
        SLT_ID_EQ(id, cid);
        assert_true(sl_alive(t->e.core, cid));
        assert_int_equal(t->c[i].starts, 2);
    }
    assert_int_equal(sl_core_alive(t->e.core), 4);
    tree_free(t);
}

static void test_one_for_all_named_children(void **state)
{
    (void)state;
    run_named_group_restart(SL_ONE_FOR_ALL);
}

static void test_rest_for_one_named_children(void **state)
{
    (void)state;
    tree *t = tree_new(SL_REST_FOR_ONE, 3, 1000, 3);
    static const char *const names[3] = {"first", "second", "third"};
    for (size_t i = 0; i < 3; i++)
        t->specs[i].name = names[i];
    tree_start(t);
    slt_crash(&t->e, t->c[0].id, 1);
    slt_run(&t->e);
    assert_true(sl_alive(t->e.core, t->sup));
    for (size_t i = 0; i < 3; i++) {
        sl_id id = SL_ID_NONE;
        SLT_OK(sl_whereis(t->e.core, names[i], &id));
        SLT_ID_EQ(id, child_id(t, i));
        assert_int_equal(t->c[i].starts, 2);
    }
    tree_free(t);
}

static void test_supervisor_behavior_with_sl_spawn(void **state)
{
    (void)state;
    tree *t = tree_new(SL_ONE_FOR_ONE, 3, 1000, 2);
    SLT_OK(sl_spawn(t->e.core, sl_supervisor_behavior(), &t->spec, NULL, &t->sup));
    slt_run(&t->e);
    assert_int_equal(sl_core_alive(t->e.core), 3);
    SLT_ID_EQ(child_id(t, 1), t->c[1].id);
    slt_crash(&t->e, t->c[1].id, 1);
    slt_run(&t->e);
    assert_int_equal(t->c[1].starts, 2);
    assert_int_equal(restarts(&t->e, t->sup), 1);
    tree_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sup_starts_children_in_order),
        cmocka_unit_test(test_one_for_one),
        cmocka_unit_test(test_one_for_all),
        cmocka_unit_test(test_rest_for_one),
        cmocka_unit_test(test_restart_types),
        cmocka_unit_test(test_intensity_exceeded_stops_supervisor),
        cmocka_unit_test(test_intensity_window_slides),
        cmocka_unit_test(test_intensity_defaults),
        cmocka_unit_test(test_kill_child_is_restarted),
        cmocka_unit_test(test_nested_tree_reports_up),
        cmocka_unit_test(test_nested_tree_top_gives_up),
        cmocka_unit_test(test_stop_supervisor_stops_children_in_reverse),
        cmocka_unit_test(test_core_shutdown_with_tree),
        cmocka_unit_test(test_del_with_live_tree),
        cmocka_unit_test(test_supervisor_spawn_child_start_fails),
        cmocka_unit_test(test_child_names_and_capacity),
        cmocka_unit_test(test_one_for_all_named_children),
        cmocka_unit_test(test_rest_for_one_named_children),
        cmocka_unit_test(test_supervisor_behavior_with_sl_spawn),
    };
    return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
