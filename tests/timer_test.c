/*
 * timer_test.c: black-box tests of actor timers (sl_send_after,
 * sl_send_every, sl_timer_cancel) against a fake clock: exact firing times,
 * nothing early, periodic repetition, cancellation, cleanup when the owner
 * stops or the receiver disappears, argument checks.
 */
#include "sl_test.h"

enum { T_TICK = 7, T_PING = 1 };

typedef struct tmr {
    sl_id to;
    uint64_t ms;
    int every;
    uint32_t type;
    int prio;
    const void *data;
    size_t len;
    int rc;
    uint64_t id;
} tmr;

static int fn_timer(sl_actor *self, slt_probe *p, void *ud)
{
    tmr *t = ud;
    (void)p;
    t->id = 0;
    if (t->every)
        t->rc = sl_send_every(self, t->to, t->ms, t->type, t->prio, t->data, t->len, &t->id);
    else
        t->rc = sl_send_after(self, t->to, t->ms, t->type, t->prio, t->data, t->len, &t->id);
    return 0;
}

static int fn_cancel(sl_actor *self, slt_probe *p, void *ud)
{
    tmr *t = ud;
    (void)p;
    t->rc = sl_timer_cancel(self, t->id);
    return 0;
}

/* Start a timer from inside actor `owner`; asserts SL_OK. */
static uint64_t start_timer(slt_env *e, sl_id owner, sl_id to, uint64_t ms, int every,
                            uint32_t type)
{
    tmr t = {to, ms, every, type, SL_PRIO_NORMAL, NULL, 0, 1, 0};
    slt_exec(e, owner, fn_timer, &t);
    SLT_OK(t.rc);
    assert_true(t.id != 0);
    return t.id;
}

static int cancel_timer(slt_env *e, sl_id owner, uint64_t id)
{
    tmr t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.rc = 1;
    slt_exec(e, owner, fn_cancel, &t);
    return t.rc;
}

static void test_send_after_fires_at_exact_time(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "owner");
    slt_probe_init(&b, &e, "target");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);

    uint8_t buf[2] = {'h', 'i'};
    tmr t = {bid, 100, 0, T_TICK, SL_PRIO_HIGH, buf, 2, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    buf[0] = 'X'; /* the payload was copied */
    SLT_OK(t.rc);
    assert_true(t.id != 0);
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 100 * SLT_MS);
    assert_int_equal(slt_stats(&e).timers, 1);

    slt_advance(&e, 99);
    assert_int_equal(b.n, 0); /* not before */
    slt_advance(&e, 1);
    assert_int_equal(b.n, 1);
    const slt_rec *r = &b.log[0];
    assert_true(r->at == SLT_T0 + 100 * SLT_MS);
    assert_int_equal(r->kind, SL_KIND_SEND);
    assert_true(r->corr == t.id);
    assert_int_equal(r->type, T_TICK);
    assert_int_equal(r->prio, SL_PRIO_HIGH);
    assert_int_equal(r->len, 2);
    assert_memory_equal(r->data, "hi", 2);
    SLT_ID_EQ(r->to, bid);

    slt_advance(&e, 1000);
    assert_int_equal(b.n, 1); /* once only */
    assert_int_equal(slt_stats(&e).timers, 0);
    assert_true(sl_core_next_deadline(e.core) == UINT64_MAX);
    assert_int_equal(a.n, 0);
    /* A fired one-shot timer is gone. */
    SLT_ERR(cancel_timer(&e, aid, t.id), SL_ERR_NOTFOUND);
    slt_env_close(&e);
}

static void test_send_after_counts_from_now(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "self");
    sl_id aid = slt_spawn(&e, &a, NULL);
    slt_advance(&e, 50);
    start_timer(&e, aid, aid, 30, 0, T_TICK);
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 80 * SLT_MS);
    slt_advance(&e, 29);
    assert_int_equal(a.n, 0);
    slt_run_idle(&e);
    assert_int_equal(a.n, 1);
    assert_true(a.log[0].at == SLT_T0 + 80 * SLT_MS);
    slt_env_close(&e);
}

static void test_send_after_zero_delay_fires_on_next_run(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "self");
    sl_id aid = slt_spawn(&e, &a, NULL);
    start_timer(&e, aid, aid, 0, 0, T_TICK);
    slt_run(&e);
    if (a.n == 0) /* a 0 ms deadline is due now; at worst at the next run at the same time */
        sl_core_run(e.core, e.now, 0);
    assert_int_equal(a.n, 1);
    assert_true(a.log[0].at == SLT_T0);
    slt_env_close(&e);
}

static void test_timers_fire_in_deadline_order(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "owner");
    slt_probe_init(&b, &e, "target");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    start_timer(&e, aid, bid, 30, 0, 30);
    start_timer(&e, aid, bid, 10, 0, 10);
    start_timer(&e, aid, bid, 20, 0, 20);
    assert_int_equal(slt_stats(&e).timers, 3);
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 10 * SLT_MS);
    slt_run_idle(&e);
    assert_int_equal(b.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b.log[i].type, (uint32_t)(10 * (i + 1)));
        assert_true(b.log[i].at == SLT_T0 + (uint64_t)(10 * (i + 1)) * SLT_MS);
    }
    slt_env_close(&e);
}

static void test_late_run_fires_due_timer_once(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "self");
    sl_id aid = slt_spawn(&e, &a, NULL);
    start_timer(&e, aid, aid, 100, 0, T_TICK);
    /* The platform comes back much later than the deadline. */
    e.now += 10000 * SLT_MS;
    slt_run(&e);
    assert_int_equal(a.n, 1);
    slt_advance(&e, 1000);
    assert_int_equal(a.n, 1);
    slt_env_close(&e);
}

static void test_send_every_repeats_and_cancel_stops_it(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "owner");
    slt_probe_init(&b, &e, "target");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    uint64_t id = start_timer(&e, aid, bid, 50, 1, T_TICK);
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 50 * SLT_MS);

    slt_advance(&e, 49);
    assert_int_equal(b.n, 0); /* first after one period */
    slt_advance(&e, 1);
    assert_int_equal(b.n, 1);
    slt_advance(&e, 50);
    assert_int_equal(b.n, 2);
    slt_advance(&e, 400);
    assert_int_equal(b.n, 10);
    for (size_t i = 0; i < b.n; i++) {
        assert_true(b.log[i].at == SLT_T0 + (uint64_t)(50 * (i + 1)) * SLT_MS);
        assert_true(b.log[i].corr == id);
        assert_int_equal(b.log[i].kind, SL_KIND_SEND);
        assert_int_equal(b.log[i].type, T_TICK);
    }
    assert_int_equal(slt_stats(&e).timers, 1);

    SLT_OK(cancel_timer(&e, aid, id));
    assert_int_equal(slt_stats(&e).timers, 0);
    assert_true(sl_core_next_deadline(e.core) == UINT64_MAX);
    slt_advance(&e, 500);
    assert_int_equal(b.n, 10);
    SLT_ERR(cancel_timer(&e, aid, id), SL_ERR_NOTFOUND);
    slt_env_close(&e);
}

static void test_cancel_send_after_before_it_fires(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "self");
    sl_id aid = slt_spawn(&e, &a, NULL);
    uint64_t keep = start_timer(&e, aid, aid, 80, 0, 2);
    uint64_t id = start_timer(&e, aid, aid, 40, 0, 1);
    assert_true(id != keep);
    slt_advance(&e, 39);
    SLT_OK(cancel_timer(&e, aid, id));
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 80 * SLT_MS);
    slt_run_idle(&e);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.log[0].type, 2);
    slt_env_close(&e);
}

typedef struct self_cancel {
    int ticks;
    int cancel_at;
    uint64_t id;
    int rc;
} self_cancel;

static int cancel_on_nth_tick(sl_actor *self, const sl_msg *m, slt_probe *p)
{
    self_cancel *c = p->ud;
    if (m->type == T_TICK && ++c->ticks == c->cancel_at)
        c->rc = sl_timer_cancel(self, m->corr);
    return 0;
}

static void test_cancel_periodic_from_its_own_tick(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "self");
    self_cancel c = {0, 3, 0, 1};
    a.ud = &c;
    a.msg_hook = cancel_on_nth_tick;
    sl_id aid = slt_spawn(&e, &a, NULL);
    start_timer(&e, aid, aid, 10, 1, T_TICK);
    slt_advance(&e, 200);
    SLT_OK(c.rc);
    assert_int_equal(c.ticks, 3);
    assert_int_equal(slt_stats(&e).timers, 0);
    slt_env_close(&e);
}

static void test_cancel_is_per_owner(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "owner");
    slt_probe_init(&b, &e, "other");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    uint64_t id = start_timer(&e, aid, bid, 20, 0, T_TICK);
    SLT_ERR(cancel_timer(&e, bid, id), SL_ERR_NOTFOUND); /* not b's timer */
    SLT_ERR(cancel_timer(&e, aid, id + 1000), SL_ERR_NOTFOUND);
    SLT_ERR(cancel_timer(&e, aid, 0), SL_ERR_NOTFOUND);
    slt_run_idle(&e);
    assert_int_equal(b.n, 1);
    slt_env_close(&e);
}

static void test_timers_of_stopped_actor_are_cancelled(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, c, b;
    slt_probe_init(&a, &e, "stopped");
    slt_probe_init(&c, &e, "crashed");
    slt_probe_init(&b, &e, "target");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id cid = slt_spawn(&e, &c, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    start_timer(&e, aid, bid, 100, 0, 1);
    start_timer(&e, aid, bid, 10, 1, 2);
    start_timer(&e, cid, bid, 100, 0, 3);
    start_timer(&e, cid, bid, 10, 1, 4);
    assert_int_equal(slt_stats(&e).timers, 4);
    slt_advance(&e, 25);
    assert_int_equal(b.n, 4); /* two ticks from each periodic timer */
    SLT_OK(sl_stop(e.core, aid, SL_REASON_NORMAL));
    slt_crash(&e, cid, 5);
    slt_run(&e);
    assert_int_equal(a.stops, 1);
    assert_int_equal(c.stops, 1);
    assert_int_equal(slt_stats(&e).timers, 0);
    assert_true(sl_core_next_deadline(e.core) == UINT64_MAX);
    slt_advance(&e, 500);
    assert_int_equal(b.n, 4);
    slt_env_close(&e);
}

static void test_periodic_timer_to_dead_receiver_cancels_itself(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a, b;
    slt_probe_init(&a, &e, "owner");
    slt_probe_init(&b, &e, "target");
    sl_id aid = slt_spawn(&e, &a, NULL);
    sl_id bid = slt_spawn(&e, &b, NULL);
    uint64_t id = start_timer(&e, aid, bid, 10, 1, T_TICK);
    slt_advance(&e, 15);
    assert_int_equal(b.n, 1);
    SLT_OK(sl_stop(e.core, bid, SL_REASON_NORMAL));
    slt_run(&e);
    uint64_t dl0 = slt_stats(&e).dead_letters;
    slt_advance(&e, 100);
    sl_core_stats s = slt_stats(&e);
    assert_true(s.dead_letters >= dl0 + 1); /* the failed delivery is counted */
    assert_true(s.dead_letters <= dl0 + 1); /* once: then the timer is gone */
    assert_int_equal(s.timers, 0);
    assert_true(sl_core_next_deadline(e.core) == UINT64_MAX);
    SLT_ERR(cancel_timer(&e, aid, id), SL_ERR_NOTFOUND);
    assert_true(sl_alive(e.core, aid));
    slt_env_close(&e);
}

static void test_timer_invalid_args(void **state)
{
    (void)state;
    slt_env e;
    slt_env_init(&e);
    e.settings.max_message_size = 32; /* > the 24-byte exec control message */
    slt_env_start(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "owner");
    sl_id aid = slt_spawn(&e, &a, NULL);
    static const uint8_t big[33];

    tmr t = {aid, 10, 0, T_TICK, SL_PRIO_COUNT, NULL, 0, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    SLT_ERR(t.rc, SL_ERR_INVAL);
    t = (tmr){aid, 10, 1, T_TICK, -1, NULL, 0, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    SLT_ERR(t.rc, SL_ERR_INVAL);
    t = (tmr){aid, 0, 1, T_TICK, SL_PRIO_NORMAL, NULL, 0, 1, 0}; /* period 0 */
    slt_exec(&e, aid, fn_timer, &t);
    SLT_ERR(t.rc, SL_ERR_INVAL);
    t = (tmr){aid, 10, 0, T_TICK, SL_PRIO_NORMAL, big, sizeof big, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    SLT_ERR(t.rc, SL_ERR_MSG_TOO_BIG);
    t = (tmr){aid, 10, 1, T_TICK, SL_PRIO_NORMAL, big, sizeof big, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    SLT_ERR(t.rc, SL_ERR_MSG_TOO_BIG);
    t = (tmr){aid, 10, 0, T_TICK, SL_PRIO_NORMAL, big, 32, 1, 0};
    slt_exec(&e, aid, fn_timer, &t);
    SLT_OK(t.rc);
    assert_int_equal(slt_stats(&e).timers, 1);
    slt_run_idle(&e);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.log[0].len, 32);
    slt_env_close(&e);
}

static void test_shutdown_cancels_periodic_timers(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "owner");
    sl_id aid = slt_spawn(&e, &a, NULL);
    start_timer(&e, aid, aid, 10, 1, T_TICK);
    start_timer(&e, aid, aid, 1000, 0, T_PING);
    slt_advance(&e, 35);
    assert_int_equal(a.n, 3);
    sl_core_shutdown(e.core);
    slt_run_idle(&e); /* terminates only if the periodic timer is gone */
    assert_int_equal(a.stops, 1);
    assert_int_equal(slt_stats(&e).timers, 0);
    assert_int_equal(a.n, 3);
    slt_env_close(&e);
}

static void test_next_deadline_is_a_timer_not_runnable_work(void **state)
{
    /* "The earliest pending deadline in ns, or UINT64_MAX if there is none":
     * runnable work is reported by sl_core_has_work(), not as a deadline. */
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "a");
    sl_id aid = slt_spawn(&e, &a, NULL);
    SLT_OK(slt_send_u32(&e, aid, T_PING, SL_PRIO_NORMAL, 1));
    assert_true(sl_core_has_work(e.core));
    assert_true(sl_core_next_deadline(e.core) == UINT64_MAX);
    start_timer(&e, aid, aid, 40, 0, T_TICK);
    SLT_OK(slt_send_u32(&e, aid, T_PING, SL_PRIO_NORMAL, 2));
    assert_true(sl_core_next_deadline(e.core) == SLT_T0 + 40 * SLT_MS);
    slt_run_idle(&e);
    assert_int_equal(a.n, 3);
    slt_env_close(&e);
}

static void test_del_with_pending_timers(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe a;
    slt_probe_init(&a, &e, "owner");
    sl_id aid = slt_spawn(&e, &a, NULL);
    for (int i = 0; i < 20; i++)
        start_timer(&e, aid, aid, (uint64_t)(10 + i), i % 2, T_TICK);
    slt_advance(&e, 12);
    slt_env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_after_fires_at_exact_time),
        cmocka_unit_test(test_send_after_counts_from_now),
        cmocka_unit_test(test_send_after_zero_delay_fires_on_next_run),
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_late_run_fires_due_timer_once),
        cmocka_unit_test(test_send_every_repeats_and_cancel_stops_it),
        cmocka_unit_test(test_cancel_send_after_before_it_fires),
        cmocka_unit_test(test_cancel_periodic_from_its_own_tick),
        cmocka_unit_test(test_cancel_is_per_owner),
        cmocka_unit_test(test_timers_of_stopped_actor_are_cancelled),
        cmocka_unit_test(test_periodic_timer_to_dead_receiver_cancels_itself),
        cmocka_unit_test(test_timer_invalid_args),
        cmocka_unit_test(test_shutdown_cancels_periodic_timers),
        cmocka_unit_test(test_next_deadline_is_a_timer_not_runnable_work),
        cmocka_unit_test(test_del_with_pending_timers),
    };
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
