/* cluster_harness.c: see cluster_harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "cluster_harness.h"

static slc_world *W;

static int probe_msg(sl_actor *self, const sl_msg *m)
{
    slc_probe *p = sl_state(self);
    p->total++;
    if (p->n < SLC_LOG) {
        slc_rec *r = &p->log[p->n++];
        r->kind = m->kind;
        r->type = m->type;
        r->corr = m->corr;
        r->status = m->status;
        r->flags = m->flags;
        r->prio = m->prio;
        r->from = m->from;
        r->len = m->len;
        size_t l = m->len < sizeof r->data - 1 ? m->len : sizeof r->data - 1;
        memcpy(r->data, m->data ? (const char *)m->data : "", l);
        r->data[l] = 0;
    }
    if (p->hook) {
        int rc = p->hook(self, m, p);
        if (rc)
            return rc;
    }
    if (m->kind == SL_KIND_ASK) {
        if (p->crash_on_ask)
            return -99;
        if (!p->silent)
            sl_reply(self, sl_req_of(m), m->type, "pong", 4);
    }
    return 0;
}

static int probe_start(sl_actor *self, void *arg)
{
    slc_probe *p = sl_state(self);
    (void)arg;
    if (p->trap)
        sl_trap_exit(self, true);
    return 0;
}

const sl_behavior slc_probe_behavior = {.on_start = probe_start, .on_message = probe_msg};

static void on_peer(sl_node *n, uint64_t peer, bool up, void *ud)
{
    slc_world *w = ud;
    (void)peer;
    for (int i = 0; i < w->nodes; i++)
        if (w->n[i] == n)
            up ? w->up[i]++ : w->down[i]++;
}

static void wd_cb(uv_timer_t *t)
{
    (void)t;
    W->timed_out = true;
    uv_stop(&W->loop);
}

static void check_cb(uv_idle_t *i)
{
    (void)i;
    if (W->done && W->done(W))
        uv_stop(&W->loop);
}

bool slc_run_until(slc_world *w, bool (*done)(slc_world *), uint64_t ms)
{
    W = w;
    w->done = done;
    w->timed_out = false;
    uv_timer_start(&w->watchdog, wd_cb, ms, 0);
    if (done)
        uv_idle_start(&w->check, check_cb);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_idle_stop(&w->check);
    uv_timer_stop(&w->watchdog);
    return done ? done(w) : true;
}

void slc_run_for(slc_world *w, uint64_t ms) { (void)slc_run_until(w, NULL, ms); }

sl_node *slc_node(slc_world *w, int i)
{
    sl_transport_settings ts;
    sl_transport_settings_default(&ts);
    ts.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY; /* dev certs on all sides */
    ts.keepalive_ms = 200;
    ts.idle_timeout_ms = 1500;
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.loop = &w->loop;
    ns.quic = &ts;
    ns.on_peer = on_peer;
    ns.ud = w;
    ns.reconnect_min_ms = 50;
    ns.reconnect_max_ms = 400;
    ns.core.mem = w->mem[i];
    if (w->tune)
        w->tune(i, &ts, &ns);
    sl_node *n = NULL;
    assert_int_equal(sl_node_new(&ns, &n), SL_OK);
    return n;
}

static bool all_up(slc_world *w)
{
    if (w->up[0] < w->nodes - 1)
        return false;
    for (int i = 1; i < w->nodes; i++)
        if (w->up[i] < 1)
            return false;
    return true;
}

void slc_up(slc_world *w, int nodes)
{
    W = w;
    w->nodes = nodes;
    uv_loop_init(&w->loop);
    uv_timer_init(&w->loop, &w->watchdog);
    uv_idle_init(&w->loop, &w->check);
    for (int i = 0; i < nodes; i++)
        w->n[i] = slc_node(w, i);
    assert_int_equal(sl_node_listen(w->n[0], "127.0.0.1", w->port), SL_OK);
    assert_int_equal(sl_node_port(w->n[0], &w->port), SL_OK);
    for (int i = 1; i < nodes; i++)
        assert_int_equal(sl_node_connect(w->n[i], "127.0.0.1", w->port), SL_OK);
    assert_true(slc_run_until(w, all_up, 5000));
}

static bool all_stopped(slc_world *w)
{
    for (int i = 0; i < w->nodes; i++)
        if (w->n[i] && !sl_node_stopped(w->n[i]))
            return false;
    return true;
}

void slc_down(slc_world *w)
{
    for (int i = 0; i < w->nodes; i++)
        if (w->n[i] && !sl_node_stopped(w->n[i]))
            sl_node_stop(w->n[i], NULL, NULL);
    assert_true(slc_run_until(w, all_stopped, 5000));
    for (int i = 0; i < w->nodes; i++)
        sl_node_del(w->n[i]);
    uv_close((uv_handle_t *)&w->watchdog, NULL);
    uv_close((uv_handle_t *)&w->check, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

sl_id slc_spawn(slc_world *w, int i, slc_probe *p, const sl_spawn_opts *opts)
{
    sl_id id;
    assert_int_equal(sl_spawn(sl_node_core(w->n[i]), &slc_probe_behavior, p, opts, &id), SL_OK);
    assert_int_equal(id.node, sl_node_id(w->n[i]));
    return id;
}

const slc_rec *slc_find(const slc_probe *p, uint8_t kind)
{
    for (int i = p->n - 1; i >= 0; i--)
        if (p->log[i].kind == kind)
            return &p->log[i];
    return NULL;
}
