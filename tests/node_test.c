/*
 * node_test.c: the actor core on a real libuv loop (runtime/node.c).
 *
 * Proves that timers and ask deadlines fire on real time, that offloaded
 * work runs on a pool thread and comes back as a message, that a result for
 * an actor that stopped meanwhile is a dead letter (and nothing leaks), and
 * that sl_node_stop() stops every actor with SHUTDOWN and lets the loop end.
 * Every loop run is bounded by a watchdog timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "starling/node.h"
#include "sl_test.h"

/* A node whose core and node allocations go through a counting allocator. */
static sl_node *counted_node(slt_mem *mem)
{
    slt_mem_init(mem);
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.core.mem = &mem->hooks;
    sl_node *n = NULL;
    assert_int_equal(sl_node_new(&ns, &n), SL_OK);
    return n;
}

enum { T_TICK = 1, T_WORK_DONE = 2, T_GO = 3, T_ASK = 4 };

typedef struct probe {
    sl_node *node;
    uint64_t t_start, t_fired;
    int fired;
    int stops;
    int stop_reason;
    int got_result;
    int result_status;
    uint64_t job_id, result_corr;
    char result[32];
    pthread_t loop_thread, work_thread;
    int fail_status;
    uint64_t ask_id;
} probe;

static void watchdog_cb(uv_timer_t *t)
{
    fail_msg("watchdog: loop did not finish in time");
}

/* Run the node's loop with a watchdog; stop the node when `done` says so. */
static void run_bounded(sl_node *n, uint64_t ms)
{
    uv_timer_t wd;
    uv_timer_init(sl_node_loop(n), &wd);
    uv_timer_start(&wd, watchdog_cb, ms, 0);
    uv_unref((uv_handle_t *)&wd);
    sl_node_run(n);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(sl_node_loop(n), UV_RUN_NOWAIT);
}

static void stop_node_cb(uv_timer_t *t)
{
    sl_node_stop(t->data, NULL, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

/* ------------------------------------------------------------- timers */

static int timer_start(sl_actor *self, void *arg)
{
    probe *p = arg;
    p->t_start = uv_hrtime();
    return sl_send_after(self, sl_self(self), 30, T_TICK, SL_PRIO_NORMAL, NULL, 0, NULL);
}

static int timer_msg(sl_actor *self, const sl_msg *m)
{
    probe *p = sl_state(self);
    if (m->type == T_TICK) {
        p->fired++;
        p->t_fired = uv_hrtime();
        sl_node_stop(p->node, NULL, NULL);
    }
    return 0;
}

static void timer_stop(sl_actor *self, int reason)
{
    probe *p = sl_state(self);
    p->stops++;
    p->stop_reason = reason;
}

static void test_timer_real_time(void **st)
{
    sl_node *n;
    assert_int_equal(sl_node_new(NULL, &n), SL_OK);
    probe p = {.node = n};
    sl_behavior b = {.on_start = timer_start, .on_message = timer_msg, .on_stop = timer_stop};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, &p, NULL, NULL), SL_OK);
    run_bounded(n, 5000);
    assert_int_equal(p.fired, 1);
    assert_true(p.t_fired - p.t_start >= 30 * 1000000ull);
    assert_true(p.t_fired - p.t_start < 2000 * 1000000ull);
    assert_int_equal(p.stops, 1);
    assert_int_equal(p.stop_reason, SL_REASON_SHUTDOWN);
    assert_true(sl_node_stopped(n));
    assert_int_equal(sl_core_alive(sl_node_core(n)), 0);
    sl_node_del(n);
}

/* ------------------------------------------------------------ offload */

static probe *g_probe;

static int work_fn(void *arg, uint8_t **out, size_t *len)
{
    probe *p = arg;
    p->work_thread = pthread_self();
    *out = malloc(5);
    memcpy(*out, "done", 5);
    *len = 5;
    return 7;
}

static int off_start(sl_actor *self, void *arg)
{
    probe *p = arg;
    p->loop_thread = pthread_self();
    return sl_offload(self, work_fn, p, NULL, T_WORK_DONE, &p->job_id);
}

static int off_msg(sl_actor *self, const sl_msg *m)
{
    probe *p = sl_state(self);
    if (m->type == T_WORK_DONE) {
        p->got_result++;
        p->result_status = m->status;
        p->result_corr = m->corr;
        assert_int_equal(m->len, 5);
        memcpy(p->result, m->data, m->len);
        sl_node_stop(p->node, NULL, NULL);
    }
    return 0;
}

static void test_offload_result_message(void **st)
{
    slt_mem mem;
    sl_node *n = counted_node(&mem);
    probe p = {.node = n};
    sl_behavior b = {.on_start = off_start, .on_message = off_msg};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, &p, NULL, NULL), SL_OK);
    run_bounded(n, 5000);
    assert_int_equal(p.got_result, 1);
    assert_int_equal(p.result_status, 7);
    assert_int_equal(p.result_corr, p.job_id);
    assert_string_equal(p.result, "done");
    assert_false(pthread_equal(p.loop_thread, p.work_thread));
    sl_node_del(n);
    assert_int_equal(mem.live, 0);
}

/* The actor stops before its job returns: the result is a dead letter. */
static int slow_work(void *arg, uint8_t **out, size_t *len)
{
    uv_sleep(50);
    *out = malloc(100);
    memset(*out, 1, 100);
    *len = 100;
    return 0;
}

static int quitter_start(sl_actor *self, void *arg)
{
    int rc = sl_offload(self, slow_work, NULL, NULL, T_WORK_DONE, NULL);
    sl_exit(self, SL_REASON_NORMAL, 0);
    return rc;
}

static void test_offload_to_stopped_actor(void **st)
{
    sl_node *n;
    assert_int_equal(sl_node_new(NULL, &n), SL_OK);
    sl_behavior b = {.on_start = quitter_start};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_OK);
    uv_timer_t t;
    uv_timer_init(sl_node_loop(n), &t);
    t.data = n;
    uv_timer_start(&t, stop_node_cb, 150, 0);
    run_bounded(n, 5000);
    sl_core_stats cs;
    sl_core_stats_get(sl_node_core(n), &cs);
    assert_int_equal(cs.dead_letters, 1);
    sl_node_del(n);
}

/* ------------------------------------------------- ask deadline, real time */

static int silent_msg(sl_actor *self, const sl_msg *m) { return 0; }

static int asker_start(sl_actor *self, void *arg)
{
    probe *p = arg;
    sl_id target;
    sl_behavior *sb = malloc(sizeof *sb); /* freed in asker_msg */
    memset(sb, 0, sizeof *sb);
    sb->on_message = silent_msg;
    int rc = sl_spawn(sl_actor_core(self), sb, NULL, NULL, &target);
    if (rc)
        return rc;
    p->t_start = uv_hrtime();
    g_probe = p;
    p->work_thread = (pthread_t)0;
    *(sl_behavior **)&p->result = sb;
    return sl_ask(self, target, T_ASK, SL_PRIO_HIGH, "q", 1, 40, &p->ask_id);
}

static int asker_msg(sl_actor *self, const sl_msg *m)
{
    probe *p = sl_state(self);
    if (m->kind == SL_KIND_FAIL && m->corr == p->ask_id) {
        p->fail_status = m->status;
        p->t_fired = uv_hrtime();
        sl_node_stop(p->node, NULL, NULL);
    }
    return 0;
}

static void test_ask_deadline_real_time(void **st)
{
    sl_node *n;
    assert_int_equal(sl_node_new(NULL, &n), SL_OK);
    probe p = {.node = n};
    sl_behavior b = {.on_start = asker_start, .on_message = asker_msg};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, &p, NULL, NULL), SL_OK);
    run_bounded(n, 5000);
    assert_int_equal(p.fail_status, SL_ERR_TIMEOUT);
    assert_true(p.t_fired - p.t_start >= 40 * 1000000ull);
    sl_node_del(n);
    free(*(sl_behavior **)&p.result);
}

/* ------------------------------------------------- stop with many actors */

static int count_stop_calls;
static void counting_stop(sl_actor *self, int reason)
{
    if (reason == SL_REASON_SHUTDOWN)
        count_stop_calls++;
}

static void on_stopped(sl_node *n, void *ud) { *(int *)ud = 1; }

static void test_stop_many_actors(void **st)
{
    slt_mem mem;
    sl_node *n = counted_node(&mem);
    sl_behavior b = {.on_stop = counting_stop};
    count_stop_calls = 0;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_OK);
    int stopped = 0;
    sl_node_stop(n, on_stopped, &stopped);
    run_bounded(n, 5000);
    assert_int_equal(stopped, 1);
    assert_int_equal(count_stop_calls, 1000);
    assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_ERR_STOPPED);
    sl_node_del(n);
    assert_int_equal(mem.live, 0);
}

/* A node that never ran can be deleted; its actors get on_stop. */
static void test_del_without_run(void **st)
{
    sl_node *n;
    assert_int_equal(sl_node_new(NULL, &n), SL_OK);
    sl_behavior b = {.on_stop = counting_stop};
    count_stop_calls = 0;
    assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_OK);
    sl_node_del(n);
    assert_int_equal(count_stop_calls, 1);
}

/* ------------------------------------------- the loop lives until stop */

static int idle_fired;
static void idle_check_cb(uv_timer_t *t)
{
    idle_fired = 1;
    sl_node_stop(t->data, NULL, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_run_waits_for_stop_with_idle_actors(void **st)
{
    sl_node *n;
    assert_int_equal(sl_node_new(NULL, &n), SL_OK);
    sl_behavior b = {.on_message = silent_msg};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_OK);
    uv_timer_t t;
    uv_timer_init(sl_node_loop(n), &t);
    uv_unref((uv_handle_t *)&t); /* only the node may keep the loop alive */
    t.data = n;
    idle_fired = 0;
    uv_timer_start(&t, idle_check_cb, 50, 0);
    run_bounded(n, 5000);
    assert_int_equal(idle_fired, 1);
    assert_true(sl_node_stopped(n));
    sl_node_del(n);
}

/* ------------------------------------ stop cancels jobs not yet started */

static int jobs_ran, jobs_released, jobs_cancelled;

static int sleepy_work(void *arg, uint8_t **out, size_t *len)
{
    __atomic_add_fetch(&jobs_ran, 1, __ATOMIC_SEQ_CST);
    uv_sleep(200);
    return 0;
}

static void count_release(void *arg)
{
    jobs_released++;
    free(arg);
}

static int many_jobs_start(sl_actor *self, void *arg)
{
    for (int i = 0; i < 12; i++) {
        int rc = sl_offload(self, sleepy_work, malloc(16), count_release, T_WORK_DONE, NULL);
        if (rc)
            return rc;
    }
    sl_node_stop(sl_node_of(self), NULL, NULL);
    return 0;
}

static int many_jobs_msg(sl_actor *self, const sl_msg *m)
{
    if (m->type == T_WORK_DONE && m->status == SL_ERR_CANCELLED)
        jobs_cancelled++;
    return 0;
}

static void test_stop_cancels_queued_jobs(void **st)
{
    slt_mem mem;
    sl_node *n = counted_node(&mem);
    jobs_ran = jobs_released = jobs_cancelled = 0;
    sl_behavior b = {.on_start = many_jobs_start, .on_message = many_jobs_msg};
    assert_int_equal(sl_spawn(sl_node_core(n), &b, NULL, NULL, NULL), SL_OK);
    run_bounded(n, 10000);
    /* libuv's pool has 4 threads (UV_THREADPOOL_SIZE default): at most 4 of
     * the 12 jobs can have started; the rest were cancelled, and every
     * input was released exactly once. */
    assert_true(jobs_ran <= 4);
    assert_int_equal(jobs_released, 12);
    sl_node_del(n);
    assert_int_equal(mem.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_real_time),
        cmocka_unit_test(test_offload_result_message),
        cmocka_unit_test(test_offload_to_stopped_actor),
        cmocka_unit_test(test_ask_deadline_real_time),
        cmocka_unit_test(test_stop_many_actors),
        cmocka_unit_test(test_del_without_run),
        cmocka_unit_test(test_run_waits_for_stop_with_idle_actors),
        cmocka_unit_test(test_stop_cancels_queued_jobs),
    };
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
