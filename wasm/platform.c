/*
 * platform.c: the actor core on the page's event loop (the browser platform).
 *
 * This mirrors runtime/node.c with the browser's primitives in place of
 * libuv's. The core calls our wake() when it gets work while idle; we then
 * queue one microtask, so the core runs as soon as the JavaScript that gave
 * it work returns (a message read from the network, a send from page code)
 * and not a macrotask later (a network answer waited ~10 us more for its
 * turn, on the critical path of every browser round trip). A turn runs the
 * core in chunks of 64 messages until nothing is runnable, `slice` messages
 * were processed or `budget_ms` elapsed; if work remains it posts a
 * macrotask (MessageChannel in a page, setImmediate under Node.js: see
 * library_starling.js) for the rest, so the page keeps rendering and
 * handling input. Never more than one turn is queued per node.
 * When no actor is runnable, one setTimeout is armed for the core's next
 * deadline (asks, timers) and re-armed only when that deadline changes. Time
 * is performance.now() in nanoseconds. There is never a busy loop: with
 * nothing runnable and no deadline the node costs nothing.
 *
 * The JavaScript side of these primitives is library_starling.js (an
 * Emscripten JS library); its functions are the sl__web_* imports below.
 * Stop is graceful and asynchronous as in node.c: the core is shut down, the
 * node keeps running until every actor has stopped, then cancels its timer
 * and reports on_stopped.
 *
 * A node that joins a cluster (sl_web_node_connect) gets runtime/cluster.c,
 * the same cluster layer as native nodes, in browser mode over the
 * WebTransport transport (transport_web.c): the core's remote, room and
 * remote_unreliable_max hooks go to it, and its housekeeping (reconnects,
 * idle lanes) runs every TICK_MS on the node's timer while it is connected.
 */
#include <stdlib.h>
#include <string.h>

#include "starling/web.h"
#include "actors/inject.h"
#include "actors/mem.h"
#include "runtime/cluster.h"
#include "wasm/web_int.h"

/* Period of the cluster's housekeeping, as runtime/node.c's. */
#define TICK_MS 100

struct sl_web_node {
    sl_mem mem; /* the allocator of the settings (or the C library's) */
    sl_core *core;
    uint32_t slice;     /* max messages per macrotask */
    uint64_t budget_ns; /* max time per macrotask, 0 = none */
    bool posted;        /* a run macrotask is scheduled */
    uint64_t timer_at;  /* deadline the JS timer is armed for; UINT64_MAX = none */
    bool stopping;
    bool stopped;
    void (*on_stopped)(sl_web_node *, void *);
    void *stop_ud;
    /* a cluster member (sl_web_node_connect) */
    sl__cluster *cluster;
    bool cluster_closed;
    uint64_t tick_at;
    size_t max_message;
    sl_webtransport_settings wt;
    char *path, *token;
    void (*on_peer)(sl_web_node *, uint64_t, bool, void *);
    void *peer_ud;
};

/* Messages per sl_core_run() call between two looks at the clock. */
#define CHUNK 64

static uint64_t now_ns(void)
{
    double ms = sl__web_now_ms();
    return ms > 0 ? (uint64_t)(ms * 1e6) : 0;
}

static uint64_t web_clock(void *ud)
{
    (void)ud;
    return now_ns();
}

void sl_web_settings_default(sl_web_settings *s)
{
    memset(s, 0, sizeof *s);
    sl_core_settings_default(&s->core);
    s->slice = 8192;
    s->budget_ms = 8;
}

/* Queue the node's next turn: soon (a microtask) when it was idle and got
 * work, else a macrotask (it yields to the page). */
static void post_turn(sl_web_node *n, int soon)
{
    if (!n->posted) {
        n->posted = true;
        sl__web_post(n, soon);
    }
}

static void post(sl_web_node *n)
{
    post_turn(n, 0);
}

static void on_wake(sl_core *core, void *ud)
{
    (void)core;
    post_turn(ud, 1);
}

static void timer_update(sl_web_node *n);

/* A timer or ask started outside a run moved the next deadline earlier:
 * re-arm the page's timer (it is most often armed already, earlier, for the
 * cluster's tick), rather than post a macrotask to run an idle core. */
static void on_deadline(sl_core *core, void *ud)
{
    (void)core;
    timer_update(ud);
}

static int web_remote(sl_core *core, const sl_msg *m, void *ud)
{
    sl_web_node *n = ud;
    (void)core;
    return n->cluster ? sl__cluster_send(n->cluster, m) : SL_ERR_NOCONN;
}

static void web_room(sl_core *core, sl_id actor, void *ud)
{
    sl_web_node *n = ud;
    (void)core;
    if (n->cluster)
        sl__cluster_room(n->cluster, actor);
}

static size_t web_unreliable_max(sl_core *core, uint64_t node, void *ud)
{
    sl_web_node *n = ud;
    (void)core;
    return n->cluster ? sl__cluster_unreliable_max(n->cluster, node) : 0;
}

int sl_web_node_new(const sl_web_settings *settings, sl_web_node **out)
{
    sl_web_settings def;
    if (!out)
        return SL_ERR_INVAL;
    if (!settings) {
        sl_web_settings_default(&def);
        settings = &def;
    }
    sl_mem mem;
    sl__mem_resolve(settings->core.mem, &mem);
    sl_web_node *n = mem.calloc(1, sizeof *n, mem.ud);
    if (!n)
        return SL_ERR_NOMEM;
    n->mem = mem;
    n->slice = settings->slice ? settings->slice : 8192;
    n->budget_ns = (uint64_t)settings->budget_ms * 1000000u;
    n->timer_at = UINT64_MAX;
    sl_core_settings cs = settings->core;
    cs.wake = on_wake;
    cs.deadline = on_deadline;
    cs.clock = web_clock;
    cs.ud = n;
    n->max_message = cs.max_message_size ? cs.max_message_size : (64u << 20);
    while (cs.node_id == 0) {
        uint64_t id = 0;
        sl__web_random(&id, sizeof id);
        cs.node_id = id;
    }
    int rc = sl_core_new(&cs, &n->core);
    if (rc) {
        mem.free(n, mem.ud);
        return rc;
    }
    *out = n;
    return SL_OK;
}

sl_core *sl_web_node_core(const sl_web_node *n)
{
    return n->core;
}
sl_web_node *sl_web_node_of(const sl_actor *self)
{
    return sl_core_data(sl_actor_core(self));
}
uint64_t sl_web_node_id(const sl_web_node *n)
{
    return sl_core_node_id(n->core);
}
bool sl_web_node_stopped(const sl_web_node *n)
{
    return n->stopped;
}

static void timer_cancel(sl_web_node *n)
{
    if (n->timer_at != UINT64_MAX) {
        n->timer_at = UINT64_MAX;
        sl__web_timer(n, -1);
    }
}

/* Arm the timer for the core's next deadline, unless it already is. */
static void timer_update(sl_web_node *n)
{
    uint64_t dl = sl_core_next_deadline(n->core);
    if (n->cluster && !n->cluster_closed && n->tick_at < dl)
        dl = n->tick_at;
    if (dl == UINT64_MAX) {
        timer_cancel(n);
        return;
    }
    if (dl == n->timer_at)
        return;
    uint64_t now = now_ns();
    /* Round up, as node.c does: a timer that fires before the deadline
     * would find nothing due and have to be armed again. */
    double ms = dl > now ? (double)((dl - now + 999999) / 1000000) : 0;
    n->timer_at = dl;
    sl__web_timer(n, ms);
}

static void maybe_finish_stop(sl_web_node *n)
{
    if (!n->stopping || n->stopped)
        return;
    if (sl_core_alive(n->core) != 0 || sl_core_has_work(n->core))
        return;
    if (n->cluster && !n->cluster_closed)
        return; /* its sessions are closing */
    timer_cancel(n);
    n->stopped = true;
    if (n->on_stopped)
        n->on_stopped(n, n->stop_ud); /* may not free n: see sl_web_node_del */
}

/* One macrotask's worth of work, then decide how the loop should come back. */
static void cluster_tick(sl_web_node *n, uint64_t now)
{
    if (n->cluster && !n->cluster_closed && now >= n->tick_at) {
        sl__cluster_tick(n->cluster, now);
        n->tick_at = now + TICK_MS * 1000000ull;
    }
}

static void run_slice(sl_web_node *n)
{
    uint64_t start = now_ns(), t = start;
    cluster_tick(n, start);
    size_t done = 0;
    for (;;) {
        size_t chunk = n->slice - done < CHUNK ? n->slice - done : CHUNK;
        done += sl_core_run(n->core, t, chunk);
        if (!sl_core_has_work(n->core) || done >= n->slice)
            break;
        t = now_ns();
        if (n->budget_ns && t - start >= n->budget_ns)
            break;
    }
    if (sl_core_has_work(n->core)) {
        post(n); /* yield to the page, come back in the next macrotask */
        return;
    }
    timer_update(n);
    maybe_finish_stop(n);
}

void sl__web_on_post(sl_web_node *n)
{
    n->posted = false;
    run_slice(n);
}

void sl__web_on_timer(sl_web_node *n)
{
    n->timer_at = UINT64_MAX; /* the one-shot timer is spent */
    run_slice(n);
}

static void cluster_closed(void *ud)
{
    sl_web_node *n = ud;
    n->cluster_closed = true;
    post(n); /* finish the stop from the loop */
}

void sl_web_node_stop(sl_web_node *n, void (*on_stopped)(sl_web_node *, void *), void *ud)
{
    if (n->stopping)
        return;
    n->stopping = true;
    n->on_stopped = on_stopped;
    n->stop_ud = ud;
    sl_core_shutdown(n->core);
    if (n->cluster)
        sl__cluster_close(n->cluster, cluster_closed, n);
    post(n);
}

static void web_peer(uint64_t peer, bool up, void *ud)
{
    sl_web_node *n = ud;
    if (n->on_peer)
        n->on_peer(n, peer, up, n->peer_ud);
}

static char *dup_str(sl_web_node *n, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = n->mem.malloc(len, n->mem.ud);
    if (d)
        memcpy(d, s, len);
    return d;
}

int sl_web_node_connect(sl_web_node *n, const sl_web_connect *o)
{
    if (!n || !o || !o->host || !o->host[0] || !o->port || n->stopping)
        return SL_ERR_INVAL;
    if (n->cluster)
        return SL_ERR_EXISTS;
    const char *path = o->path && o->path[0] ? o->path : "/starling";
    if (path[0] != '/')
        return SL_ERR_INVAL;
    n->path = dup_str(n, path);
    n->token = o->token ? dup_str(n, o->token) : NULL;
    if (!n->path || (o->token && !n->token))
        return SL_ERR_NOMEM;
    memset(&n->wt, 0, sizeof n->wt);
    n->wt.path = n->path;
    n->wt.token = n->token;
    sl_transport_settings ts;
    sl_transport_settings_default(&ts);
    ts.mem = &n->mem;
    ts.webtransport = &n->wt;
    if (o->cert_sha256) {
        ts.tls.verify = SL_VERIFY_PIN_CERT;
        memcpy(ts.tls.pin, o->cert_sha256, sizeof ts.tls.pin);
    }
    sl__cluster_settings ks;
    sl__cluster_settings_default(&ks);
    ks.browser = true;
    ks.make_transport = sl_web_transport_new;
    if (o->reconnect_min_ms)
        ks.backoff_min_ms = o->reconnect_min_ms;
    if (o->reconnect_max_ms)
        ks.backoff_max_ms = o->reconnect_max_ms;
    if (o->welcome_timeout_ms)
        ks.hello_timeout_ms = o->welcome_timeout_ms;
    int rc = sl__cluster_new(&ts, &ks, n->core, &n->mem, n->max_message, &n->cluster);
    if (rc)
        return rc;
    n->on_peer = o->on_peer;
    n->peer_ud = o->ud;
    /* From now on other nodes are reached through the cluster. */
    sl_core_settings hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.remote = web_remote;
    hooks.room = web_room;
    hooks.remote_unreliable_max = web_unreliable_max;
    sl__core_set_remote(n->core, &hooks);
    sl__cluster_on_peer(n->cluster, web_peer, n);
    n->tick_at = now_ns();
    sl__cluster_tick(n->cluster, n->tick_at);
    rc = sl__cluster_dial(n->cluster, o->host, o->port);
    if (rc) {
        sl__cluster_del(n->cluster);
        n->cluster = NULL;
        return rc;
    }
    n->tick_at += TICK_MS * 1000000ull;
    timer_update(n);
    return SL_OK;
}

int sl_web_node_connect_failure(const sl_web_node *n, uint32_t *failures, int *err,
                                const char **reason)
{
    if (!n || !failures || !err || !reason)
        return SL_ERR_INVAL;
    if (!n->cluster)
        return SL_ERR_NOTFOUND;
    return sl__cluster_dial_failure(n->cluster, NULL, 0, failures, err, reason);
}

int sl_web_node_exposed(const sl_web_node *n, size_t i, const char **name, sl_id *id)
{
    if (!n || !name || !id)
        return SL_ERR_INVAL;
    if (!n->cluster)
        return SL_ERR_NOTFOUND;
    return sl__cluster_exposed(n->cluster, i, name, id);
}

void sl_web_node_del(sl_web_node *n)
{
    if (!n)
        return;
    if (n->cluster) {
        if (!n->cluster_closed)
            sl__cluster_close(n->cluster, NULL, NULL);
        sl__cluster_del(n->cluster);
    }
    sl_core_del(n->core);
    if (n->path)
        n->mem.free(n->path, n->mem.ud);
    if (n->token)
        n->mem.free(n->token, n->mem.ud);
    sl__web_forget(n); /* clears the timer and ignores a posted macrotask */
    sl_mem mem = n->mem;
    mem.free(n, mem.ud);
}

/* ------------------------------------------------------------ C agents */

static sl_web_agent *agents; /* registered agents, most recent first */

int sl_web_agent_register(sl_web_agent *a)
{
    if (!a || !a->behavior || !a->behavior->name || !a->behavior->name[0])
        return SL_ERR_INVAL;
    if (sl_web_agent_find(a->behavior->name))
        return SL_ERR_EXISTS;
    a->next = agents;
    agents = a;
    return SL_OK;
}

const sl_behavior *sl_web_agent_find(const char *name)
{
    if (!name)
        return NULL;
    for (sl_web_agent *a = agents; a; a = a->next)
        if (strcmp(a->behavior->name, name) == 0)
            return a->behavior;
    return NULL;
}

const char *sl__web_agent_name(uint32_t i)
{
    for (sl_web_agent *a = agents; a; a = a->next, i--)
        if (i == 0)
            return a->behavior->name;
    return NULL;
}
