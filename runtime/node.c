/*
 * node.c: the actor core on a libuv loop.
 *
 * The core calls our wake() when it gets work while idle; we then start an
 * idle handle so the loop keeps calling run_slice() without blocking in
 * epoll. Each slice runs the core for at most `slice` messages with the time
 * from uv_hrtime(), so I/O handles on the same loop are never starved. When
 * no actor is runnable the idle handle stops and a timer is armed for the
 * core's next deadline (asks, timers); the loop then sleeps in epoll.
 *
 * Offloaded work goes to libuv's threadpool (uv_queue_work); the after-work
 * callback runs on the loop thread and sends the result to the actor.
 *
 * Stop is graceful and asynchronous: the core is shut down, the node keeps
 * running slices until every actor has stopped and every job returned, then
 * closes its two handles; on_stopped fires from the last close callback.
 */
#include <stdlib.h>
#include <string.h>

#include "starling/node.h"
#include "actors/inject.h"
#include "actors/mem.h"
#include "runtime/cluster.h"

struct sl_node {
    sl_mem mem; /* the allocator of the settings (or the C library's) */
    sl_core *core;
    sl__cluster *cluster; /* links to peer nodes, NULL for a local node */
    bool cluster_closing, cluster_closed;
    void (*on_peer)(sl_node *, uint64_t, bool, void *);
    void *peer_ud;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    bool owns_loop;
    uv_idle_t idle;
    uv_timer_t timer;
    uv_timer_t tick;  /* cluster housekeeping (reconnects, idle lanes); networked nodes */
    uv_async_t async; /* keeps the loop alive until stop; wakes it from other threads later */
    uint32_t slice;
    bool idle_active;
    bool stopping;
    bool stopped;
    int open_handles;
    uint64_t jobs;        /* offloaded jobs not yet returned */
    struct job *job_list; /* those jobs, so that stop can cancel queued ones */
    uint64_t next_job;
    void (*on_stopped)(sl_node *, void *);
    void *stop_ud;
};

typedef struct job {
    uv_work_t req;
    struct job *prev, *next;
    void (*release)(void *arg);
    sl_node *node;
    sl_id actor;
    sl_work_fn fn;
    void *arg;
    uint32_t type;
    uint64_t id;
    int status;
    uint8_t *out;
    size_t out_len;
} job;

void sl_node_settings_default(sl_node_settings *s)
{
    memset(s, 0, sizeof *s);
    sl_core_settings_default(&s->core);
    s->slice = 8192;
}

/* Period of the cluster's housekeeping. */
#define SL__TICK_MS 50

static void on_wake(sl_core *core, void *ud);
static void close_handles(sl_node *n);
static void on_async(uv_async_t *h);
static void on_idle(uv_idle_t *h);
static void on_deadline(sl_core *core, void *ud);
static void arm_timer(sl_node *n);
static void on_timer(uv_timer_t *h);

static int node_remote(sl_core *core, const sl_msg *m, void *ud)
{
    (void)core;
    sl_node *n = ud;
    return sl__cluster_send(n->cluster, m);
}

static void node_room(sl_core *core, sl_id actor, void *ud)
{
    (void)core;
    sl_node *n = ud;
    sl__cluster_room(n->cluster, actor);
}

static size_t node_unreliable_max(sl_core *core, uint64_t node, void *ud)
{
    (void)core;
    sl_node *n = ud;
    return sl__cluster_unreliable_max(n->cluster, node);
}

static void on_tick(uv_timer_t *h)
{
    sl_node *n = h->data;
    sl__cluster_tick(n->cluster, uv_hrtime());
}

static void node_peer(uint64_t peer, bool up, void *ud)
{
    sl_node *n = ud;
    if (n->on_peer)
        n->on_peer(n, peer, up, n->peer_ud);
}

static uint64_t node_clock(void *ud)
{
    (void)ud;
    return uv_hrtime();
}

static uint64_t random_node_id(void)
{
    uint64_t id = 0;
    if (uv_random(NULL, NULL, &id, sizeof id, 0, NULL) != 0 || id == 0)
        id = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^ 0x5157a7106ull;
    return id ? id : 1;
}

int sl_node_new(const sl_node_settings *settings, sl_node **out)
{
    sl_node_settings def;
    if (!out)
        return SL_ERR_INVAL;
    if (!settings) {
        sl_node_settings_default(&def);
        settings = &def;
    }
    sl_mem mem;
    sl__mem_resolve(settings->core.mem, &mem);
    sl_node *n = mem.calloc(1, sizeof *n, mem.ud);
    if (!n)
        return SL_ERR_NOMEM;
    n->mem = mem;
    n->slice = settings->slice ? settings->slice : 8192;
    if (settings->loop) {
        n->loop = settings->loop;
    } else {
        if (uv_loop_init(&n->own_loop) != 0) {
            mem.free(n, mem.ud);
            return SL_ERR_IO;
        }
        n->loop = &n->own_loop;
        n->owns_loop = true;
    }
    sl_core_settings cs = settings->core;
    cs.wake = on_wake;
    cs.deadline = on_deadline;
    cs.clock = node_clock;
    cs.ud = n;
    int rc = SL_OK;
    if (settings->quic) {
        sl_transport_settings ts = *settings->quic;
        ts.loop = n->loop;
        sl__cluster_settings ks;
        sl__cluster_settings_default(&ks);
        if (settings->lane_idle_ms)
            ks.lane_idle_ms = settings->lane_idle_ms;
        if (settings->reconnect_min_ms)
            ks.backoff_min_ms = settings->reconnect_min_ms;
        if (settings->reconnect_max_ms)
            ks.backoff_max_ms = settings->reconnect_max_ms;
        if (settings->hello_timeout_ms)
            ks.hello_timeout_ms = settings->hello_timeout_ms;
        ks.quiet = settings->quiet;
        ks.random64 = random_node_id;
        rc = sl__cluster_new(&ts, &ks, NULL, &n->mem,
                             cs.max_message_size ? cs.max_message_size : (64u << 20), &n->cluster);
        if (rc == SL_OK) {
            cs.node_id = sl__cluster_node_id(n->cluster);
            cs.remote = node_remote;
            cs.room = node_room;
            cs.remote_unreliable_max = node_unreliable_max;
            n->on_peer = settings->on_peer;
            n->peer_ud = settings->ud;
            sl__cluster_on_peer(n->cluster, node_peer, n);
        }
    }
    if (cs.node_id == 0)
        cs.node_id = random_node_id();
    if (rc == SL_OK)
        rc = sl_core_new(&cs, &n->core);
    if (rc == SL_OK && n->cluster)
        sl__cluster_set_core(n->cluster, n->core);
    if (rc) {
        sl__cluster_del(n->cluster);
        if (n->owns_loop)
            uv_loop_close(&n->own_loop);
        mem.free(n, mem.ud);
        return rc;
    }
    uv_idle_init(n->loop, &n->idle);
    uv_timer_init(n->loop, &n->timer);
    uv_async_init(n->loop, &n->async, on_async);
    n->idle.data = n;
    n->timer.data = n;
    n->async.data = n;
    n->open_handles = 3;
    if (n->cluster) {
        uv_timer_init(n->loop, &n->tick);
        n->tick.data = n;
        uv_timer_start(&n->tick, on_tick, SL__TICK_MS, SL__TICK_MS);
        sl__cluster_tick(n->cluster, uv_hrtime());
        n->open_handles++;
    }
    *out = n;
    return SL_OK;
}

sl_core *sl_node_core(const sl_node *n)
{
    return n->core;
}
uv_loop_t *sl_node_loop(const sl_node *n)
{
    return n->loop;
}
sl_node *sl_node_of(const sl_actor *self)
{
    return sl_core_data(sl_actor_core(self));
}
bool sl_node_stopped(const sl_node *n)
{
    return n->stopped;
}

static void start_idle(sl_node *n)
{
    if (!n->idle_active && !uv_is_closing((uv_handle_t *)&n->idle)) {
        uv_idle_start(&n->idle, on_idle);
        n->idle_active = true;
    }
}

static void on_wake(sl_core *core, void *ud)
{
    (void)core;
    start_idle(ud);
}

static void on_closed(uv_handle_t *h)
{
    sl_node *n = h->data;
    if (--n->open_handles == 0) {
        n->stopped = true;
        if (n->on_stopped)
            n->on_stopped(n, n->stop_ud);
    }
}

static void maybe_finish_stop(sl_node *n);

static void cluster_closed(void *ud)
{
    sl_node *n = ud;
    n->cluster_closed = true;
    maybe_finish_stop(n);
}

static void maybe_finish_stop(sl_node *n)
{
    if (!n->stopping || n->stopped || uv_is_closing((uv_handle_t *)&n->idle))
        return;
    if (sl_core_alive(n->core) != 0 || n->jobs != 0 || sl_core_has_work(n->core))
        return;
    if (n->cluster && !n->cluster_closed) {
        /* Actors are gone: close the links (CONNECTION_CLOSE to peers),
         * then come back here. */
        if (!n->cluster_closing) {
            n->cluster_closing = true;
            sl__cluster_close(n->cluster, cluster_closed, n);
        }
        return;
    }
    uv_idle_stop(&n->idle);
    n->idle_active = false;
    uv_timer_stop(&n->timer);
    close_handles(n);
}

static void close_handles(sl_node *n)
{
    uv_close((uv_handle_t *)&n->idle, on_closed);
    uv_close((uv_handle_t *)&n->timer, on_closed);
    uv_close((uv_handle_t *)&n->async, on_closed);
    if (n->cluster)
        uv_close((uv_handle_t *)&n->tick, on_closed);
}

/* Run one slice of the core, then decide how the loop should come back. */
static void run_slice(sl_node *n)
{
    sl_core_run(n->core, uv_hrtime(), n->slice);
    if (sl_core_has_work(n->core)) {
        start_idle(n);
        return;
    }
    if (n->idle_active) {
        uv_idle_stop(&n->idle);
        n->idle_active = false;
    }
    arm_timer(n);
    maybe_finish_stop(n);
}

/* Arm the timer for the core's next deadline (or stop it: none). */
static void arm_timer(sl_node *n)
{
    if (uv_is_closing((uv_handle_t *)&n->timer))
        return;
    uint64_t dl = sl_core_next_deadline(n->core);
    if (dl == UINT64_MAX) {
        uv_timer_stop(&n->timer);
    } else {
        uint64_t now = uv_hrtime();
        uint64_t ms = dl > now ? (dl - now + 999999) / 1000000 : 0;
        uv_timer_start(&n->timer, on_timer, ms, 0);
    }
}

/* A timer or ask started outside a run moved the next deadline earlier. */
static void on_deadline(sl_core *core, void *ud)
{
    (void)core;
    arm_timer(ud);
}

static void on_idle(uv_idle_t *h)
{
    run_slice(h->data);
}
static void on_async(uv_async_t *h)
{
    run_slice(h->data);
}
static void on_timer(uv_timer_t *h)
{
    run_slice(h->data);
}

int sl_node_run(sl_node *n)
{
    if (!n)
        return SL_ERR_INVAL;
    start_idle(n); /* pick up anything spawned before the loop started */
    uv_run(n->loop, UV_RUN_DEFAULT);
    return SL_OK;
}

void sl_node_stop(sl_node *n, void (*on_stopped)(sl_node *, void *), void *ud)
{
    if (n->stopping)
        return;
    n->stopping = true;
    n->on_stopped = on_stopped;
    n->stop_ud = ud;
    sl_core_shutdown(n->core);
    /* Jobs not yet started are cancelled; running ones are waited for. */
    for (struct job *j = n->job_list; j; j = j->next)
        uv_cancel((uv_req_t *)&j->req);
    start_idle(n);
}

void sl_node_del(sl_node *n)
{
    if (!n)
        return;
    if (!n->stopped && n->open_handles) {
        /* Never ran or not stopped: close the handles and let them finish. */
        if (!uv_is_closing((uv_handle_t *)&n->idle))
            close_handles(n);
        n->on_stopped = NULL;
        uv_run(n->loop, UV_RUN_NOWAIT);
    }
    sl_core_del(n->core);
    if (n->cluster) {
        if (!n->cluster_closing) {
            n->cluster_closing = true;
            sl__cluster_close(n->cluster, NULL, NULL);
            uv_run(n->loop, UV_RUN_NOWAIT);
        }
        sl__cluster_del(n->cluster);
    }
    if (n->owns_loop) {
        uv_run(n->loop, UV_RUN_NOWAIT);
        uv_loop_close(&n->own_loop);
    }
    sl_mem mem = n->mem;
    mem.free(n, mem.ud);
}

/* ----------------------------------------------------------- offload */

static void work_cb(uv_work_t *req)
{
    job *j = req->data;
    j->status = j->fn(j->arg, &j->out, &j->out_len);
}

static void after_work_cb(uv_work_t *req, int status)
{
    job *j = req->data;
    sl_node *n = j->node;
    n->jobs--;
    if (j->prev)
        j->prev->next = j->next;
    else
        n->job_list = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (j->release)
        j->release(j->arg);
    int st = status == UV_ECANCELED ? SL_ERR_CANCELLED : j->status;
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.to = j->actor;
    m.kind = SL_KIND_SEND;
    m.prio = SL_PRIO_NORMAL;
    m.type = j->type;
    m.corr = j->id;
    m.status = st;
    m.data = j->out;
    m.len = j->out ? j->out_len : 0;
    /* A full mailbox or a stopped actor loses the result; both are counted
     * by the core (rejected / dead letter). */
    (void)sl__core_inject(n->core, &m, 0);
    free(j->out); /* allocated by the work function with malloc(), as documented */
    n->mem.free(j, n->mem.ud);
    start_idle(n);
}

int sl_offload(sl_actor *self, sl_work_fn fn, void *arg, void (*release)(void *arg), uint32_t type,
               uint64_t *job_id)
{
    if (!self)
        return SL_ERR_NOT_ACTOR;
    if (!fn)
        return SL_ERR_INVAL;
    sl_node *n = sl_node_of(self);
    if (!n)
        return SL_ERR_NOT_ACTOR;
    if (n->stopping)
        return SL_ERR_STOPPED;
    job *j = n->mem.calloc(1, sizeof *j, n->mem.ud);
    if (!j)
        return SL_ERR_NOMEM;
    j->req.data = j;
    j->node = n;
    j->actor = sl_self(self);
    j->fn = fn;
    j->arg = arg;
    j->release = release;
    j->type = type;
    j->id = ++n->next_job;
    if (uv_queue_work(n->loop, &j->req, work_cb, after_work_cb) != 0) {
        n->mem.free(j, n->mem.ud);
        return SL_ERR_NOMEM;
    }
    n->jobs++;
    j->next = n->job_list;
    if (n->job_list)
        n->job_list->prev = j;
    n->job_list = j;
    if (job_id)
        *job_id = j->id;
    return SL_OK;
}

/* ------------------------------------------------------------ network */

uint64_t sl_node_id(const sl_node *n)
{
    return sl_core_node_id(n->core);
}

int sl_node_listen(sl_node *n, const char *host, uint16_t port)
{
    if (!n->cluster)
        return SL_ERR_UNSUPPORTED;
    return sl_transport_listen(sl__cluster_transport(n->cluster), host, port);
}

int sl_node_port(const sl_node *n, uint16_t *port)
{
    if (!n->cluster)
        return SL_ERR_UNSUPPORTED;
    return sl_transport_local_port(sl__cluster_transport(n->cluster), port);
}

int sl_node_connect(sl_node *n, const char *host, uint16_t port)
{
    if (!n->cluster)
        return SL_ERR_UNSUPPORTED;
    return sl__cluster_dial(n->cluster, host, port);
}

int sl_node_connect_failure(const sl_node *n, const char *host, uint16_t port, uint32_t *failures,
                            int *err, const char **reason)
{
    if (!n || !host || !failures || !err || !reason)
        return SL_ERR_INVAL;
    if (!n->cluster)
        return SL_ERR_UNSUPPORTED;
    return sl__cluster_dial_failure(n->cluster, host, port, failures, err, reason);
}

sl__cluster *sl__node_cluster(const sl_node *n)
{
    return n->cluster;
}

int sl_node_expose(sl_node *n, const char *name, sl_id actor)
{
    if (!n || !name)
        return SL_ERR_INVAL;
    if (!n->cluster)
        return SL_ERR_UNSUPPORTED;
    return sl__cluster_expose(n->cluster, name, actor);
}

sl_transport *sl_node_transport(const sl_node *n)
{
    return n->cluster ? sl__cluster_transport(n->cluster) : NULL;
}
