/*
 * alloc_test.c: fault injection. For N = 1, 2, ... the Nth allocation made
 * by one API call fails (only that one, or that one and every later one),
 * until N exceeds the allocations the call needs. Each call must return
 * SL_OK or SL_ERR_NOMEM, never crash, leave the core consistent (a failed
 * call has no effect; a later run shows it), and after sl_core_del nothing
 * may be left allocated. Covers sl_core_new, sl_spawn (plain and with
 * state/name/link), sends from outside and inside, ask and reply, monitor,
 * link, timers, register, supervisor spawn, and a shutdown/delete during
 * which every allocation fails.
 */
#include "sl_test.h"

enum { T_PING = 1, T_Q = 2 };
#define MAX_N 400

typedef struct fx {
    slt_env e;
    slt_probe p[3];
    sl_id id[3];
    uint64_t n;             /* which allocation fails */
    int sticky;             /* and all after it */
    int rc;                 /* value of the call under test */
    uint64_t x;             /* ask id, monitor ref, timer id ... */
    uint64_t failed_during; /* allocations failed during the call */
} fx;

typedef struct op {
    const char *name;
    void (*setup)(fx *f);
    void (*call)(fx *f);  /* sets f->rc; arms the failure around the API call only */
    void (*check)(fx *f); /* after the failure is off and the core ran */
    int must_fail_first;  /* N = 1 must give SL_ERR_NOMEM */
} op;

static void arm(fx *f)
{
    slt_mem_fail_after(&f->e.mem, f->n, f->sticky);
}

static void disarm(fx *f)
{
    f->failed_during = f->e.mem.failed;
    slt_mem_fail_off(&f->e.mem);
}

static void run_op(const op *o, int sticky)
{
    int saw_nomem = 0, done = 0;
    for (uint64_t n = 1; n <= MAX_N && !done; n++) {
        fx *f = test_calloc(1, sizeof *f);
        slt_env_open(&f->e);
        f->n = n;
        f->sticky = sticky;
        f->rc = 12345;
        if (o->setup)
            o->setup(f);
        uint64_t failed0 = f->e.mem.failed;
        o->call(f);
        int hit = f->failed_during > failed0;
        if (f->rc != SL_OK && f->rc != SL_ERR_NOMEM) {
            print_error("%s: allocation #%llu failing (%s) gave %s\n", o->name,
                        (unsigned long long)n, sticky ? "and after" : "only", sl_err_name(f->rc));
            SLT_ERR(f->rc, SL_ERR_NOMEM);
        }
        if (f->rc == SL_ERR_NOMEM) {
            saw_nomem = 1;
            if (!hit) { /* NOMEM without an allocation failing? */
                print_error("%s: SL_ERR_NOMEM but no allocation failed\n", o->name);
                fail();
            }
        }
        if (n == 1 && o->must_fail_first)
            SLT_ERR(f->rc, SL_ERR_NOMEM);
        if (!hit) {
            SLT_OK(f->rc); /* enough allocations: the call succeeds */
            done = 1;
        }
        slt_run_idle(&f->e);
        o->check(f);
        if (slt_orphan_stops || f->e.mem.live)
            print_error("%s: with allocation #%llu failing (%s), rc %s\n", o->name,
                        (unsigned long long)n, sticky ? "and after" : "only", sl_err_name(f->rc));
        slt_env_close(&f->e); /* zero live allocations */
        test_free(f);
    }
    if (!done) {
        print_error("%s: still failing after %d allocations\n", o->name, MAX_N);
        fail();
    }
    if (!saw_nomem)
        print_message("note: %s never reported SL_ERR_NOMEM (allocates nothing?)\n", o->name);
}

/* ---------------------------------------------------------------- spawn */

static void call_spawn(fx *f)
{
    slt_probe_init(&f->p[0], &f->e, "spawned");
    arm(f);
    f->rc = slt_try_spawn(&f->e, &f->p[0], NULL, &f->id[0]);
    disarm(f);
}

static void check_spawn(fx *f)
{
    if (f->rc == SL_OK) {
        assert_true(sl_alive(f->e.core, f->id[0]));
        assert_int_equal(sl_core_alive(f->e.core), 1);
        SLT_OK(slt_send_u32(&f->e, f->id[0], T_PING, SL_PRIO_NORMAL, 1));
        slt_run(&f->e);
        assert_int_equal(f->p[0].n, 1);
    } else {
        assert_int_equal(sl_core_alive(f->e.core), 0);
        assert_int_equal(slt_stats(&f->e).alive, 0);
        assert_int_equal(f->p[0].n, 0);
        /* A started actor is also stopped; an unstarted one is not. */
        assert_int_equal(f->p[0].starts, f->p[0].stops);
    }
}

static void setup_link_target(fx *f)
{
    slt_probe_init(&f->p[1], &f->e, "link target");
    f->id[1] = slt_spawn(&f->e, &f->p[1], NULL);
}

static void call_spawn_full(fx *f)
{
    slt_probe_init(&f->p[0], &f->e, "spawned");
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.register_as = "named";
    o.link_to = f->id[1];
    o.mailbox_capacity = 16;
    arm(f);
    f->rc = sl_spawn(f->e.core, slt_stateful_behavior(), &f->p[0], &o, &f->id[0]);
    disarm(f);
}

static void check_spawn_full(fx *f)
{
    sl_id out;
    if (f->rc == SL_OK) {
        assert_int_equal(sl_core_alive(f->e.core), 2);
        SLT_OK(sl_whereis(f->e.core, "named", &out));
        SLT_ID_EQ(out, f->id[0]);
        assert_int_equal(f->p[0].bad_state, 0);
        /* The link is in place. */
        slt_crash(&f->e, f->id[1], 1);
        slt_run(&f->e);
        assert_int_equal(f->p[0].stops, 1);
        assert_int_equal(f->p[0].stop_reason, SL_REASON_CRASH);
    } else {
        assert_int_equal(sl_core_alive(f->e.core), 1);
        SLT_ERR(sl_whereis(f->e.core, "named", &out), SL_ERR_NOTFOUND);
        assert_int_equal(f->p[0].starts, f->p[0].stops);
        /* No half link left on the target: its crash kills nobody else. */
        assert_int_equal(f->p[1].n, 0);
    }
}

/* ---------------------------------------------------------------- sends */

static void setup_one(fx *f)
{
    slt_probe_init(&f->p[0], &f->e, "receiver");
    f->id[0] = slt_spawn(&f->e, &f->p[0], NULL);
    slt_probe_init(&f->p[1], &f->e, "sender");
    f->id[1] = slt_spawn(&f->e, &f->p[1], NULL);
}

static uint8_t payload[200];

static void call_core_send(fx *f)
{
    arm(f);
    f->rc = sl_core_send(f->e.core, f->id[0], T_PING, SL_PRIO_NORMAL, payload, sizeof payload);
    disarm(f);
}

static void check_delivered(fx *f)
{
    assert_int_equal(f->p[0].n, f->rc == SL_OK ? 1 : 0);
    if (f->rc == SL_OK)
        assert_int_equal(f->p[0].log[0].len, sizeof payload);
    /* The mailbox still works. */
    SLT_OK(slt_send_u32(&f->e, f->id[0], T_PING, SL_PRIO_NORMAL, 7));
    slt_run(&f->e);
    assert_int_equal(f->p[0].n, f->rc == SL_OK ? 2 : 1);
}

static int fn_send(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_send(self, f->id[0], T_PING, SL_PRIO_HIGH, payload, sizeof payload);
    disarm(f);
    return 0;
}

static void call_actor_send(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_send, f);
}

/* ------------------------------------------------------------ ask/reply */

static int echo_hook(sl_actor *self, const sl_msg *m, slt_probe *p)
{
    (void)p;
    if (m->kind == SL_KIND_ASK)
        sl_reply(self, sl_req_of(m), m->type, m->data, m->len);
    return 0;
}

static void setup_echo(fx *f)
{
    slt_probe_init(&f->p[0], &f->e, "replier");
    f->p[0].msg_hook = echo_hook;
    f->id[0] = slt_spawn(&f->e, &f->p[0], NULL);
    slt_probe_init(&f->p[1], &f->e, "asker");
    f->id[1] = slt_spawn(&f->e, &f->p[1], NULL);
}

static int fn_ask(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_ask(self, f->id[0], T_Q, SL_PRIO_NORMAL, payload, 50, 100, &f->x);
    disarm(f);
    return 0;
}

static void call_ask(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_ask, f);
}

static void check_ask(fx *f)
{
    slt_probe *a = &f->p[1];
    if (f->rc == SL_OK) {
        assert_int_equal(a->n, 1);
        assert_int_equal(a->log[0].kind, SL_KIND_REPLY);
        assert_true(a->log[0].corr == f->x);
    } else {
        assert_int_equal(a->n, 0); /* no outcome for an ask that was not sent */
        assert_int_equal(f->p[0].n, 0);
    }
    assert_int_equal(slt_stats(&f->e).timers, 0);
}

static int save_hook(sl_actor *self, const sl_msg *m, slt_probe *p)
{
    (void)self;
    if (m->kind == SL_KIND_ASK)
        *(sl_req *)p->ud = sl_req_of(m);
    return 0;
}

/* ---- monitor / link / timer / register */

static void setup_pair(fx *f)
{
    slt_probe_init(&f->p[0], &f->e, "target");
    f->id[0] = slt_spawn(&f->e, &f->p[0], NULL);
    slt_probe_init(&f->p[1], &f->e, "caller");
    f->id[1] = slt_spawn(&f->e, &f->p[1], NULL);
}

static int fn_monitor(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_monitor(self, f->id[0], &f->x);
    disarm(f);
    return 0;
}

static void call_monitor(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_monitor, f);
}

static void check_monitor(fx *f)
{
    SLT_OK(sl_stop(f->e.core, f->id[0], SL_REASON_SHUTDOWN));
    slt_run(&f->e);
    if (f->rc == SL_OK) {
        assert_int_equal(f->p[1].n, 1);
        assert_int_equal(f->p[1].log[0].kind, SL_KIND_DOWN);
        assert_true(f->p[1].log[0].corr == f->x);
    } else {
        assert_int_equal(f->p[1].n, 0);
    }
}

static int fn_link(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_link(self, f->id[0]);
    disarm(f);
    return 0;
}

static void call_link(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_link, f);
}

static void check_link(fx *f)
{
    slt_crash(&f->e, f->id[0], 3);
    slt_run(&f->e);
    if (f->rc == SL_OK) {
        assert_int_equal(f->p[1].stops, 1);
        assert_int_equal(f->p[1].stop_reason, SL_REASON_CRASH);
    } else {
        assert_true(sl_alive(f->e.core, f->id[1])); /* no half link */
    }
}

static int fn_timer(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_send_after(self, f->id[0], 20, T_PING, SL_PRIO_NORMAL, payload, 100, &f->x);
    disarm(f);
    return 0;
}

static void call_timer(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_timer, f);
}

static void check_timer(fx *f)
{
    assert_int_equal(f->p[0].n, f->rc == SL_OK ? 1 : 0);
    assert_int_equal(slt_stats(&f->e).timers, 0);
}

static int fn_every(sl_actor *self, slt_probe *p, void *ud)
{
    fx *f = ud;
    (void)p;
    arm(f);
    f->rc = sl_send_every(self, f->id[0], 20, T_PING, SL_PRIO_NORMAL, payload, 10, &f->x);
    disarm(f);
    /* Cancel at once if it worked, so that the run ends. */
    if (f->rc == SL_OK)
        f->rc = sl_timer_cancel(self, f->x) == SL_OK ? SL_OK : 999;
    return 0;
}

static void call_every(fx *f)
{
    slt_exec(&f->e, f->id[1], fn_every, f);
}

static void check_every(fx *f)
{
    assert_int_equal(f->p[0].n, 0);
    assert_int_equal(slt_stats(&f->e).timers, 0);
}

static void call_register(fx *f)
{
    arm(f);
    f->rc = sl_register(f->e.core, "some-name", f->id[0]);
    disarm(f);
}

static void check_register(fx *f)
{
    sl_id out;
    if (f->rc == SL_OK) {
        SLT_OK(sl_whereis(f->e.core, "some-name", &out));
        SLT_ID_EQ(out, f->id[0]);
    } else {
        SLT_ERR(sl_whereis(f->e.core, "some-name", &out), SL_ERR_NOTFOUND);
        SLT_OK(sl_register(f->e.core, "some-name", f->id[0])); /* nothing half-registered */
    }
}

/* ---- supervisor */

static sl_child_spec sup_children[3];
static sl_sup_spec sup_spec;

static void call_sup(fx *f)
{
    for (int i = 0; i < 3; i++) {
        slt_probe_init(&f->p[i], &f->e, "child");
        sup_children[i] = (sl_child_spec){i == 1 ? "kid" : NULL, slt_stateful_behavior(), &f->p[i],
                                          SL_RESTART_PERMANENT, 0};
    }
    sup_spec = (sl_sup_spec){SL_ONE_FOR_ONE, 3, 1000, sup_children, 3, NULL, NULL};
    arm(f);
    f->rc = sl_supervisor_spawn(f->e.core, &sup_spec, NULL, &f->id[0]);
    disarm(f);
}

static void check_sup(fx *f)
{
    if (f->rc == SL_OK) {
        assert_int_equal(sl_core_alive(f->e.core), 4);
        for (int i = 0; i < 3; i++)
            assert_int_equal(f->p[i].starts, 1);
    } else {
        assert_int_equal(sl_core_alive(f->e.core), 0); /* nothing left running */
        for (int i = 0; i < 3; i++)
            assert_int_equal(f->p[i].starts, f->p[i].stops);
        sl_id out;
        SLT_ERR(sl_whereis(f->e.core, "kid", &out), SL_ERR_NOTFOUND);
    }
}

static const op ops[] = {
    {"sl_spawn", NULL, call_spawn, check_spawn, 1},
    {"sl_spawn(state, register_as, link_to)", setup_link_target, call_spawn_full, check_spawn_full,
     1},
    {"sl_core_send", setup_one, call_core_send, check_delivered, 0},
    {"sl_send", setup_one, call_actor_send, check_delivered, 0},
    {"sl_ask", setup_echo, call_ask, check_ask, 0},
    {"sl_monitor", setup_pair, call_monitor, check_monitor, 0},
    {"sl_link", setup_pair, call_link, check_link, 0},
    {"sl_send_after", setup_pair, call_timer, check_timer, 0},
    {"sl_send_every", setup_pair, call_every, check_every, 0},
    {"sl_register", setup_pair, call_register, check_register, 0},
    {"sl_supervisor_spawn", NULL, call_sup, check_sup, 1},
};

#define OP_TEST(idx, fname)                                                                        \
    static void fname##_only(void **state)                                                         \
    {                                                                                              \
        (void)state;                                                                               \
        run_op(&ops[idx], 0);                                                                      \
    }                                                                                              \
    static void fname##_sticky(void **state)                                                       \
    {                                                                                              \
        (void)state;                                                                               \
        run_op(&ops[idx], 1);                                                                      \
    }

OP_TEST(0, test_fail_spawn)
OP_TEST(1, test_fail_spawn_full)
OP_TEST(2, test_fail_core_send)
OP_TEST(3, test_fail_actor_send)
OP_TEST(4, test_fail_ask)
OP_TEST(5, test_fail_monitor)
OP_TEST(6, test_fail_link)
OP_TEST(7, test_fail_send_after)
OP_TEST(8, test_fail_send_every)
OP_TEST(9, test_fail_register)
OP_TEST(10, test_fail_supervisor_spawn)

/* ---------------------------------------------------------- core_new */

static void test_fail_core_new(void **state)
{
    (void)state;
    for (int sticky = 0; sticky < 2; sticky++) {
        int done = 0;
        for (uint64_t n = 1; n <= MAX_N && !done; n++) {
            slt_env e;
            slt_env_init(&e);
            slt_mem_fail_after(&e.mem, n, sticky);
            sl_core *c = NULL;
            int rc = sl_core_new(&e.settings, &c);
            int hit = e.mem.failed > 0;
            slt_mem_fail_off(&e.mem);
            if (n == 1)
                SLT_ERR(rc, SL_ERR_NOMEM);
            if (rc == SL_ERR_NOMEM) {
                assert_int_equal(e.mem.live, 0);
                continue;
            }
            SLT_OK(rc);
            if (!hit)
                done = 1;
            e.core = c;
            slt_probe p;
            slt_probe_init(&p, &e, "p");
            sl_core_run(c, e.now, 0);
            sl_id id = slt_spawn(&e, &p, NULL);
            SLT_OK(slt_send_u32(&e, id, T_PING, SL_PRIO_NORMAL, 1));
            slt_run(&e);
            assert_int_equal(p.n, 1);
            slt_env_close(&e);
        }
        assert_true(done);
    }
}

/* ----------------------------------------------------- reply under failure */

typedef struct rf {
    slt_env e;
    slt_probe r, a;
    sl_req req;
    sl_id rid, aid;
    uint64_t n;
    int sticky;
    int rc, hit;
    int ask_rc;
    uint64_t ask_id;
} rf;

static int fn_ask_plain(sl_actor *self, slt_probe *p, void *ud)
{
    rf *x = ud;
    (void)p;
    x->ask_rc = sl_ask(self, x->rid, T_Q, SL_PRIO_NORMAL, "q", 1, 100, &x->ask_id);
    return 0;
}

static int fn_reply_failing(sl_actor *self, slt_probe *p, void *ud)
{
    rf *x = ud;
    (void)p;
    uint64_t f0 = x->e.mem.failed;
    slt_mem_fail_after(&x->e.mem, x->n, x->sticky);
    x->rc = sl_reply(self, x->req, 3, payload, 100);
    x->hit = x->e.mem.failed > f0;
    slt_mem_fail_off(&x->e.mem);
    return 0;
}

static void run_reply_failure(int sticky)
{
    /* Whatever a failing reply does, the asker gets exactly one outcome:
     * the reply, or FAIL (at the latest at the deadline). */
    int done = 0;
    for (uint64_t n = 1; n <= MAX_N && !done; n++) {
        rf *x = test_calloc(1, sizeof *x);
        slt_env_open(&x->e);
        x->n = n;
        x->sticky = sticky;
        slt_probe_init(&x->r, &x->e, "replier");
        x->r.msg_hook = save_hook;
        x->r.ud = &x->req;
        x->rid = slt_spawn(&x->e, &x->r, NULL);
        slt_probe_init(&x->a, &x->e, "asker");
        x->aid = slt_spawn(&x->e, &x->a, NULL);
        slt_exec(&x->e, x->aid, fn_ask_plain, x);
        SLT_OK(x->ask_rc);
        slt_run(&x->e);
        slt_exec(&x->e, x->rid, fn_reply_failing, x);
        if (x->rc != SL_OK)
            SLT_ERR(x->rc, SL_ERR_NOMEM);
        if (!x->hit) {
            SLT_OK(x->rc);
            done = 1;
        }
        slt_run_idle(&x->e);
        size_t outcomes =
            slt_count_kind(&x->a, SL_KIND_REPLY) + slt_count_kind(&x->a, SL_KIND_FAIL);
        assert_int_equal(outcomes, 1);
        assert_int_equal(x->a.n, 1);
        assert_true(x->a.log[0].corr == x->ask_id);
        if (x->rc == SL_OK)
            assert_int_equal(x->a.log[0].kind, SL_KIND_REPLY);
        assert_int_equal(slt_stats(&x->e).timers, 0);
        slt_env_close(&x->e);
        test_free(x);
    }
    assert_true(done);
}

static void test_fail_reply_only(void **state)
{
    (void)state;
    run_reply_failure(0);
}

static void test_fail_reply_sticky(void **state)
{
    (void)state;
    run_reply_failure(1);
}

/* ------------------------------------------- everything fails at the end */

typedef struct chaos {
    slt_env e;
    slt_probe p[6];
    sl_id id[6];
    slt_probe kids[2];
    sl_child_spec specs[2];
    sl_sup_spec spec;
    sl_id sup;
} chaos;

typedef struct chaos_args {
    sl_id a, b;
} chaos_args;

static int fn_entangle(sl_actor *self, slt_probe *p, void *ud)
{
    chaos_args *c = ud;
    uint64_t x;
    (void)p;
    sl_monitor(self, c->a, &x);
    sl_link(self, c->b);
    sl_send_after(self, c->a, 50, T_PING, SL_PRIO_LOW, payload, 30, &x);
    sl_send_every(self, sl_self(self), 7, T_PING, SL_PRIO_LOW, NULL, 0, &x);
    sl_ask(self, c->a, T_Q, SL_PRIO_HIGH, payload, 20, 200, &x);
    sl_ask(self, c->b, T_Q, SL_PRIO_HIGH, payload, 20, 0, &x);
    return 0;
}

static chaos *chaos_new(void)
{
    chaos *c = test_calloc(1, sizeof *c);
    slt_env_open(&c->e);
    sl_spawn_opts o;
    for (int i = 0; i < 6; i++) {
        slt_probe_init(&c->p[i], &c->e, "entangled");
        sl_spawn_opts_default(&o);
        o.trap_exit = (i % 3) == 0;
        c->id[i] =
            (i % 2) ? slt_spawn_stateful(&c->e, &c->p[i], &o) : slt_spawn(&c->e, &c->p[i], &o);
    }
    for (int i = 0; i < 6; i++) {
        chaos_args a = {c->id[(i + 1) % 6], c->id[(i + 2) % 6]};
        slt_exec(&c->e, c->id[i], fn_entangle, &a);
        SLT_OK(slt_send_u32(&c->e, c->id[i], T_PING, SL_PRIO_BACKGROUND, (uint32_t)i));
    }
    SLT_OK(sl_register(c->e.core, "entangled-0", c->id[0]));
    for (int i = 0; i < 2; i++) {
        slt_probe_init(&c->kids[i], &c->e, "kid");
        c->specs[i] = (sl_child_spec){i ? "kid-1" : NULL, slt_stateful_behavior(), &c->kids[i],
                                      SL_RESTART_PERMANENT, 0};
    }
    c->spec = (sl_sup_spec){SL_ONE_FOR_ALL, 100, 1000, c->specs, 2, NULL, NULL};
    SLT_OK(sl_supervisor_spawn(c->e.core, &c->spec, NULL, &c->sup));
    slt_advance(&c->e, 20);
    return c;
}

static void chaos_check_consistent(chaos *c)
{
    assert_int_equal(sl_core_alive(c->e.core), slt_stats(&c->e).alive);
    for (int i = 0; i < 6; i++) {
        assert_true(c->p[i].stops <= c->p[i].starts);
        assert_int_equal(sl_alive(c->e.core, c->id[i]), c->p[i].stops == 0);
    }
}

static void test_all_allocations_fail_during_crashes(void **state)
{
    (void)state;
    chaos *c = chaos_new();
    slt_mem_fail_after(&c->e.mem, 1, 1);
    slt_crash(&c->e, c->id[1], 1); /* the send itself may fail: then use sl_stop */
    sl_stop(c->e.core, c->id[1], SL_REASON_KILLED);
    sl_stop(c->e.core, c->id[4], SL_REASON_NORMAL);
    sl_stop(c->e.core, c->kids[0].id, SL_REASON_KILLED);
    slt_advance(&c->e, 30);
    chaos_check_consistent(c);
    slt_mem_fail_off(&c->e.mem);
    sl_core_shutdown(c->e.core);
    slt_run_idle(&c->e);
    assert_int_equal(sl_core_alive(c->e.core), 0);
    slt_env_close(&c->e);
    test_free(c);
}

static void test_all_allocations_fail_during_shutdown(void **state)
{
    (void)state;
    chaos *c = chaos_new();
    slt_mem_fail_after(&c->e.mem, 1, 1);
    sl_core_shutdown(c->e.core);
    slt_run_idle(&c->e);
    assert_int_equal(sl_core_alive(c->e.core), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(c->p[i].stops, 1);
    slt_env_close(&c->e); /* still failing: freeing must not need memory */
    test_free(c);
}

static void test_all_allocations_fail_during_del(void **state)
{
    (void)state;
    chaos *c = chaos_new();
    slt_mem_fail_after(&c->e.mem, 1, 1);
    slt_env_close(&c->e);
    for (int i = 0; i < 6; i++)
        assert_int_equal(c->p[i].stops, 1);
    test_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_core_new),
        cmocka_unit_test(test_fail_spawn_only),
        cmocka_unit_test(test_fail_spawn_sticky),
        cmocka_unit_test(test_fail_spawn_full_only),
        cmocka_unit_test(test_fail_spawn_full_sticky),
        cmocka_unit_test(test_fail_core_send_only),
        cmocka_unit_test(test_fail_core_send_sticky),
        cmocka_unit_test(test_fail_actor_send_only),
        cmocka_unit_test(test_fail_actor_send_sticky),
        cmocka_unit_test(test_fail_ask_only),
        cmocka_unit_test(test_fail_ask_sticky),
        cmocka_unit_test(test_fail_reply_only),
        cmocka_unit_test(test_fail_reply_sticky),
        cmocka_unit_test(test_fail_monitor_only),
        cmocka_unit_test(test_fail_monitor_sticky),
        cmocka_unit_test(test_fail_link_only),
        cmocka_unit_test(test_fail_link_sticky),
        cmocka_unit_test(test_fail_send_after_only),
        cmocka_unit_test(test_fail_send_after_sticky),
        cmocka_unit_test(test_fail_send_every_only),
        cmocka_unit_test(test_fail_send_every_sticky),
        cmocka_unit_test(test_fail_register_only),
        cmocka_unit_test(test_fail_register_sticky),
        cmocka_unit_test(test_fail_supervisor_spawn_only),
        cmocka_unit_test(test_fail_supervisor_spawn_sticky),
        cmocka_unit_test(test_all_allocations_fail_during_crashes),
        cmocka_unit_test(test_all_allocations_fail_during_shutdown),
        cmocka_unit_test(test_all_allocations_fail_during_del),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
