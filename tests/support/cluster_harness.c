/* cluster_harness.c: see cluster_harness.h. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
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
    uint16_t via = 0;
    if (w->loss_pct || w->delay_ms) {
        w->relay = slc_relay_start(w, w->port, w->loss_pct, &via);
        slc_relay_set_delay(w->relay, w->delay_ms);
    }
    for (int i = 1; i < nodes; i++)
        assert_int_equal(
            sl_node_connect(w->n[i], "127.0.0.1", i == 1 && via ? via : w->port), SL_OK);
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
    if (w->relay)
        slc_relay_stop(w->relay);
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

/* ------------------------------------------------------------- relay */

/* A datagram held by a relay with a delay. */
typedef struct held_dgram {
    struct held_dgram *next;
    uint64_t due;   /* uv_now() at which it goes */
    bool to_server; /* direction */
    size_t len;
    char data[];
} held_dgram;

struct slc_relay {
    uv_udp_t front, back; /* front: the client side; back: towards the server */
    uv_timer_t timer;     /* releases held datagrams */
    unsigned delay_ms;
    held_dgram *head, *tail; /* FIFO: one delay for all, so in order of due */
    struct sockaddr_storage client;
    bool have_client;
    struct sockaddr_in server;
    unsigned loss_pct;
    uint64_t rng, dropped;
    int closing;
    char buf[65536];
};

static bool relay_drop(struct slc_relay *r)
{
    r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
    if ((unsigned)((r->rng >> 33) % 100) < r->loss_pct) {
        r->dropped++;
        return true;
    }
    return false;
}

static void relay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    slc_relay *r = h->data;
    (void)hint;
    *b = uv_buf_init(r->buf, sizeof r->buf);
}

static void relay_send(uv_udp_t *via, const void *data, size_t len, const struct sockaddr *to)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    (void)uv_udp_try_send(via, &b, 1, to); /* a full socket buffer is one more loss */
}

static void relay_release(uv_timer_t *t)
{
    slc_relay *r = t->data;
    uint64_t now = uv_now(t->loop);
    while (r->head && r->head->due <= now) {
        held_dgram *d = r->head;
        r->head = d->next;
        if (!r->head)
            r->tail = NULL;
        if (d->to_server)
            relay_send(&r->back, d->data, d->len, (const struct sockaddr *)&r->server);
        else
            relay_send(&r->front, d->data, d->len, (const struct sockaddr *)&r->client);
        free(d);
    }
    if (r->head)
        uv_timer_start(&r->timer, relay_release, r->head->due - now, 0);
}

/* Send now, or hold for delay_ms. */
static void relay_pass(slc_relay *r, bool to_server, const void *data, size_t len)
{
    if (!r->delay_ms) {
        if (to_server)
            relay_send(&r->back, data, len, (const struct sockaddr *)&r->server);
        else
            relay_send(&r->front, data, len, (const struct sockaddr *)&r->client);
        return;
    }
    held_dgram *d = malloc(sizeof *d + len);
    assert_non_null(d);
    d->next = NULL;
    d->due = uv_now(r->timer.loop) + r->delay_ms;
    d->to_server = to_server;
    d->len = len;
    memcpy(d->data, data, len);
    if (r->tail)
        r->tail->next = d;
    else
        r->head = d;
    r->tail = d;
    if (!uv_is_active((uv_handle_t *)&r->timer))
        uv_timer_start(&r->timer, relay_release, r->delay_ms, 0);
}

static void front_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                       unsigned flags)
{
    slc_relay *r = u->data;
    (void)flags;
    if (n <= 0 || !from)
        return;
    if (!r->have_client) {
        memcpy(&r->client, from, sizeof(struct sockaddr_in));
        r->have_client = true;
    }
    if (!relay_drop(r))
        relay_pass(r, true, b->base, (size_t)n);
}

static void back_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    slc_relay *r = u->data;
    (void)flags;
    if (n <= 0 || !from || !r->have_client)
        return;
    if (!relay_drop(r))
        relay_pass(r, false, b->base, (size_t)n);
}

slc_relay *slc_relay_start(slc_world *w, uint16_t to_port, unsigned loss_pct, uint16_t *port)
{
    slc_relay *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->loss_pct = loss_pct;
    r->rng = 0x5eed;
    uv_ip4_addr("127.0.0.1", to_port, &r->server);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_udp_init(&w->loop, &r->front);
    uv_udp_init(&w->loop, &r->back);
    uv_timer_init(&w->loop, &r->timer);
    r->front.data = r->back.data = r->timer.data = r;
    assert_int_equal(uv_udp_bind(&r->front, (const struct sockaddr *)&any, 0), 0);
    assert_int_equal(uv_udp_bind(&r->back, (const struct sockaddr *)&any, 0), 0);
    uv_udp_recv_start(&r->front, relay_alloc, front_recv);
    uv_udp_recv_start(&r->back, relay_alloc, back_recv);
    struct sockaddr_in me;
    int len = sizeof me;
    uv_udp_getsockname(&r->front, (struct sockaddr *)&me, &len);
    *port = ntohs(me.sin_port);
    return r;
}

uint64_t slc_relay_dropped(const slc_relay *r) { return r->dropped; }

void slc_relay_set_delay(slc_relay *r, unsigned ms)
{
    r->delay_ms = ms;
}

static void relay_closed(uv_handle_t *h)
{
    slc_relay *r = h->data;
    if (++r->closing < 3)
        return;
    while (r->head) {
        held_dgram *d = r->head;
        r->head = d->next;
        free(d);
    }
    free(r);
}

void slc_relay_stop(slc_relay *r)
{
    uv_close((uv_handle_t *)&r->front, relay_closed);
    uv_close((uv_handle_t *)&r->back, relay_closed);
    uv_close((uv_handle_t *)&r->timer, relay_closed);
}
