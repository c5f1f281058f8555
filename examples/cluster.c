/*
 * cluster.c: three Starling nodes in three processes on 127.0.0.1, narrated
 * for a person. One program, two roles:
 *
 *   cluster coordinator --certs DIR [--quiet] [--tasks N] [--kill-after N]
 *   cluster worker --name NAME --certs DIR --connect 127.0.0.1:PORT [--parent PID]
 *
 * examples/demo.sh makes DIR: a throwaway cluster CA and one node
 * certificate per node, with the `starling cert` tool. Every node verifies
 * its peers against that CA (SL_VERIFY_CA; the node endpoint forces mutual
 * TLS), and every node's id is derived from its own key.
 *
 * The story. The coordinator node listens, then starts the two worker nodes
 * as child processes of itself (uv_spawn of this same program), so it can
 * kill one and knows exactly when it did. Each worker node runs one agent
 * registered under the name "worker" and connects to the coordinator. When
 * a worker node comes up (on_peer), the coordinator agent asks that node's
 * registry where "worker" is (sl_ask_whereis), monitors the agent it gets
 * (sl_monitor across nodes) and greets it (an ask) to learn its name.
 *
 * Then 30 tasks with priorities (CRITICAL, HIGH, NORMAL, BACKGROUND) go out
 * as asks with a deadline, most urgent first, at most WINDOW per worker at a
 * time. A worker "computes" with a timer (sl_send_after), two tasks at a
 * time, the most urgent of its backlog first; it never blocks its loop.
 * Every 100 ms each worker sends its load to the coordinator's "telemetry"
 * agent as an unreliable message (sl_send_unreliable: one QUIC DATAGRAM,
 * never retransmitted), sized within sl_unreliable_max().
 *
 * After KILL_AFTER tasks the coordinator kills worker-b's process with
 * SIGKILL: no goodbye, no CONNECTION_CLOSE. The telemetry agent notices the
 * silence first (a hint, not a verdict); the QUIC idle timeout (1.5 s, with
 * a 300 ms keep-alive) then ends the connection, and the runtime tells
 * everyone at once: the coordinator gets DOWN(noconnection) for the worker
 * agent it monitors, and every ask still pending on that node fails with
 * SL_ERR_NOCONN. The coordinator puts those tasks back in its queue and the
 * surviving worker does them. At the end it asks each surviving worker for
 * its own count of datagrams sent (BYE), stops its node (the workers see the
 * connection close and exit by themselves), waits for its children, and
 * prints a summary.
 *
 * The coordinator is also the referee: it checks that every task was done,
 * that at least one was reassigned after DOWN, that DOWN and the NOCONN
 * failures came within twice the idle timeout of the kill, that telemetry
 * arrived, and that the surviving worker exited cleanly; the exit status is
 * 0 only if all of that happened. A global deadline (30 s) bounds the run.
 * `--quiet` prints only the summary, which makes the program a real-process
 * integration test (ctest: example_cluster).
 *
 * No orphans: the coordinator reaps its children on every path (SIGKILL
 * after a grace period), handles SIGINT/SIGTERM, and on Linux each worker
 * asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG); a
 * worker also stops when its connection to the coordinator ends, and after
 * WORKER_LIFETIME_MS whatever happens.
 *
 * Only the public headers (<starling/...>) and msgpack-c through
 * <starling/pack.h>; libuv for the processes, timers and signals.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <starling/node.h>
#include <starling/pack.h>

/* ------------------------------------------------------------ the script */

#define N_WORKERS 2
#define VICTIM 1 /* worker-b is the one killed */
#define MAX_TASKS 200
#define N_TASKS_DEFAULT 30
#define KILL_AFTER_DEFAULT 10   /* tasks done before the victim is killed */
#define WINDOW 4                /* asks in flight per worker */
#define SLOTS 2                 /* tasks a worker computes at once */
#define BACKLOG 64              /* tasks a worker accepts beyond its slots */
#define TASK_DEADLINE_MS 4000   /* deadline of every task ask (> 2 x idle timeout) */
#define LOOKUP_DEADLINE_MS 2000 /* whereis, hello, bye */
#define IDLE_TIMEOUT_MS 1500    /* QUIC idle timeout: how fast a dead node is noticed */
#define KEEPALIVE_MS 300        /* PING when idle this long, so live nodes never idle out */
#define TELEMETRY_EVERY_MS 100
#define SILENCE_MS 350 /* telemetry gap the coordinator calls "silent" */
#define GLOBAL_DEADLINE_MS 30000
#define STARTUP_DEADLINE_MS 10000    /* both workers must be ready by then */
#define REAP_MS 3000                 /* after stopping, children get this long to exit */
#define WORKER_LIFETIME_MS 45000     /* a worker exits after this whatever happens */
#define FAIL_AT_ONCE_MS 100          /* NOCONN failures must come this close to DOWN */
#define PROGRESS_EVERY_MS 100        /* redraw of the live line (TTY) */
#define PLAIN_PROGRESS_EVERY_MS 1000 /* periodic line when stdout is not a TTY */

static const char *const worker_names[N_WORKERS] = {"worker-a", "worker-b"};

/* Message types (sl_msg.type); their meaning is ours. */
enum {
    MSG_PEER = 1,  /* on_peer -> local agent: [node, up] */
    MSG_HELLO,     /* coordinator -> worker, ask; reply [name, pid, slots] */
    MSG_TASK,      /* coordinator -> worker, ask [task, work_ms]; reply [task, name, result] */
    MSG_DONE,      /* worker -> itself (timer, corr = timer id): a slot finished */
    MSG_TELEMETRY, /* worker -> telemetry, unreliable: [name, seq, busy, queued, done] */
    MSG_BYE,       /* coordinator -> worker, ask at the end; reply [sent, too_big, refused] */
    MSG_TICK,      /* periodic self-timer */
    MSG_DISPATCH   /* coordinator -> itself: try dispatching again */
};

/* The priority of task i: per 10 tasks 1 CRITICAL, 2 HIGH, 5 NORMAL, 2 BACKGROUND. */
static int task_prio(int i)
{
    static const int pattern[10] = {
        SL_PRIO_NORMAL, SL_PRIO_HIGH, SL_PRIO_NORMAL, SL_PRIO_CRITICAL,   SL_PRIO_BACKGROUND,
        SL_PRIO_NORMAL, SL_PRIO_HIGH, SL_PRIO_NORMAL, SL_PRIO_BACKGROUND, SL_PRIO_NORMAL};
    return pattern[i % 10];
}

/* How long task i "computes": 200..600 ms, deterministic. */
static uint32_t task_work_ms(int i)
{
    return 200 + (uint32_t)((i * 37) % 9) * 50;
}

/* The "result": Collatz steps of a number derived from the task. */
static uint64_t compute(int task)
{
    uint64_t x = (uint64_t)task * 7919 + 27, steps = 0;
    while (x != 1 && steps < 100000) {
        x = x & 1 ? 3 * x + 1 : x / 2;
        steps++;
    }
    return steps;
}

/* ------------------------------------------------------- shared helpers */

static bool quiet;      /* --quiet: summary only */
static bool tty;        /* stdout is a terminal: live line with \r */
static uint64_t t0;     /* uv_hrtime() at start */
static bool line_shown; /* the live progress line is on screen (TTY) */
static void draw_progress(bool force);

static double ms_since(uint64_t from)
{
    return (double)(uv_hrtime() - from) / 1e6;
}

/* One line of narration, timestamped; the live line is redrawn below it. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (line_shown)
        fputs("\r\033[K", stdout);
    printf("[%7.0f ms] ", ms_since(t0));
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    line_shown = false;
    if (tty)
        draw_progress(false); /* back below the new line */
    fflush(stdout);
}

static const char *idstr(sl_id id, char buf[SL_ID_STRLEN])
{
    if (sl_id_format(id, buf, SL_ID_STRLEN) < 0)
        snprintf(buf, SL_ID_STRLEN, "?");
    return buf;
}

/* Start a payload: an sl_pack holding a msgpack array of n elements. The
 * caller checks sl_pack_error() once and calls sl_pack_fini(). */
static void out_array(sl_pack *p, uint32_t n)
{
    sl_pack_init(p, NULL);
    msgpack_pack_array(&p->pk, n);
}

static void out_u64(sl_pack *p, uint64_t v)
{
    msgpack_pack_uint64(&p->pk, v);
}

/* Validate a payload (untrusted bytes) as a msgpack array of at least n
 * elements. *u is initialised whatever the result: always sl_unpacked_fini() it. */
static int in_array(sl_unpacked *u, const sl_msg *m, uint32_t n)
{
    uint32_t have = 0;
    int rc = sl_unpack(m->data, m->len, NULL, u);
    if (rc == SL_OK)
        rc = sl_msgpack_get_array(&u->root, &have);
    if (rc == SL_OK && have < n)
        rc = SL_ERR_DECODE_LENGTH;
    return rc;
}

/* Tell a local agent about a peer node (from on_peer, outside any actor). */
static void notify_peer(sl_node *node, sl_id agent, uint64_t peer, bool up)
{
    sl_pack p;
    out_array(&p, 2);
    out_u64(&p, peer);
    if (up)
        msgpack_pack_true(&p.pk);
    else
        msgpack_pack_false(&p.pk);
    if (sl_pack_error(&p) == SL_OK)
        (void)sl_core_send(sl_node_core(node), agent, MSG_PEER, SL_PRIO_CRITICAL, sl_pack_data(&p),
                           sl_pack_len(&p));
    sl_pack_fini(&p);
}

/* Read [node, up] from a MSG_PEER. */
static bool read_peer(const sl_msg *m, uint64_t *node, bool *up)
{
    sl_unpacked u;
    bool ok = in_array(&u, m, 2) == SL_OK && sl_msgpack_at_uint64(&u.root, 0, node) == SL_OK &&
              sl_msgpack_at_bool(&u.root, 1, up) == SL_OK;
    sl_unpacked_fini(&u);
    return ok;
}

/* Transport settings shared by all three nodes: mutual TLS against the
 * cluster CA, and a short idle timeout so a dead node is noticed quickly. */
static void tls_settings(sl_transport_settings *ts, const char *dir, const char *name, char cert[],
                         char key[], char ca[], size_t size)
{
    snprintf(cert, size, "%s/%s.pem", dir, name);
    snprintf(key, size, "%s/%s.key", dir, name);
    snprintf(ca, size, "%s/ca.pem", dir);
    sl_transport_settings_default(ts);
    ts->tls.cert_file = cert;
    ts->tls.key_file = key;
    ts->tls.ca_file = ca;
    ts->tls.verify = SL_VERIFY_CA; /* chain to the cluster CA; the node forces mutual TLS */
    ts->idle_timeout_ms = IDLE_TIMEOUT_MS;
    ts->keepalive_ms = KEEPALIVE_MS;
}

/* ===================================================================
 * The worker role
 * =================================================================== */

/* One accepted task, waiting or computing. */
typedef struct wtask {
    sl_req req;       /* the ask to answer */
    int task;         /* task number */
    uint32_t work_ms; /* how long it computes */
    uint64_t arrival; /* tie-break: FIFO inside a class */
    uint64_t timer;   /* while computing: the sl_send_after() timer */
} wtask;

typedef struct worker {
    const char *name;
    uint64_t coord_node; /* the coordinator's node, once connected */
    sl_id telemetry;     /* its telemetry agent, once found */
    uint64_t lookup_ask; /* whereis "telemetry" in flight */
    int lookups;         /* attempts so far */
    uint64_t tick_timer; /* the 100 ms telemetry timer */
    wtask slot[SLOTS];   /* computing (req.corr != 0) */
    wtask backlog[BACKLOG];
    int nbacklog;
    uint64_t arrivals;
    uint64_t done;
    uint64_t sent, too_big, refused; /* telemetry datagrams */
} worker;

static struct {
    sl_node *node;
    sl_id agent;
    bool deadline_fired;
} W;

static int busy_slots(const worker *w)
{
    int n = 0;
    for (int i = 0; i < SLOTS; i++)
        n += w->slot[i].req.corr != 0;
    return n;
}

/* Move the most urgent waiting tasks (class first, then arrival) into free slots. */
static void worker_start_next(sl_actor *self, worker *w)
{
    for (int s = 0; s < SLOTS && w->nbacklog > 0; s++) {
        if (w->slot[s].req.corr)
            continue;
        int best = 0;
        for (int i = 1; i < w->nbacklog; i++) {
            const wtask *a = &w->backlog[i], *b = &w->backlog[best];
            if (a->req.prio < b->req.prio ||
                (a->req.prio == b->req.prio && a->arrival < b->arrival))
                best = i;
        }
        wtask t = w->backlog[best];
        w->backlog[best] = w->backlog[--w->nbacklog];
        /* "Compute" on a timer: the loop stays free for other messages. */
        if (sl_send_after(self, sl_self(self), t.work_ms, MSG_DONE, SL_PRIO_NORMAL, NULL, 0,
                          &t.timer) != SL_OK) {
            sl_reply_error(self, t.req, SL_ERR_NOMEM);
            continue;
        }
        w->slot[s] = t;
    }
}

static int worker_task(sl_actor *self, worker *w, const sl_msg *m)
{
    sl_unpacked u;
    uint64_t task = 0, work = 0;
    int rc = in_array(&u, m, 2);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 0, &task);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 1, &work);
    sl_unpacked_fini(&u);
    if (rc == SL_OK && (task == 0 || task > MAX_TASKS || work > 10000))
        rc = SL_ERR_INVAL;
    if (rc == SL_OK && w->nbacklog == BACKLOG)
        rc = SL_ERR_LIMIT;
    if (rc != SL_OK) /* a bad or excess request fails that ask, not the worker */
        return sl_reply_error(self, sl_req_of(m), rc) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    w->backlog[w->nbacklog++] = (wtask){.req = sl_req_of(m),
                                        .task = (int)task,
                                        .work_ms = (uint32_t)work,
                                        .arrival = ++w->arrivals};
    worker_start_next(self, w);
    return 0;
}

/* A slot's timer fired: the task is computed; answer its ask. */
static int worker_done(sl_actor *self, worker *w, uint64_t timer)
{
    for (int s = 0; s < SLOTS; s++) {
        wtask *t = &w->slot[s];
        if (!t->req.corr || t->timer != timer)
            continue;
        sl_pack p;
        out_array(&p, 3);
        out_u64(&p, (uint64_t)t->task);
        sl_pack_str(&p, w->name);
        out_u64(&p, compute(t->task));
        int rc = sl_pack_error(&p);
        if (rc == SL_OK)
            rc = sl_reply(self, t->req, MSG_TASK, sl_pack_data(&p), sl_pack_len(&p));
        sl_pack_fini(&p);
        /* SL_ERR_CANCELLED / SL_ERR_NOACTOR: the asker gave up or is gone. */
        if (rc == SL_OK)
            w->done++;
        memset(t, 0, sizeof *t);
        break;
    }
    worker_start_next(self, w);
    return 0;
}

/* The asker cancelled an ask (or its deadline passed): drop that task. */
static void worker_cancel(sl_actor *self, worker *w, const sl_msg *m)
{
    for (int s = 0; s < SLOTS; s++)
        if (w->slot[s].req.corr == m->corr && sl_id_eq(w->slot[s].req.asker, m->from)) {
            sl_timer_cancel(self, w->slot[s].timer);
            memset(&w->slot[s], 0, sizeof w->slot[s]);
        }
    for (int i = 0; i < w->nbacklog; i++)
        if (w->backlog[i].req.corr == m->corr && sl_id_eq(w->backlog[i].req.asker, m->from)) {
            w->backlog[i--] = w->backlog[--w->nbacklog];
        }
    worker_start_next(self, w);
}

/* Every 100 ms: the load, as one unreliable datagram to the telemetry agent. */
static void worker_telemetry(sl_actor *self, worker *w)
{
    sl_pack p;
    out_array(&p, 5);
    sl_pack_str(&p, w->name);
    out_u64(&p, w->sent + 1); /* sequence number: how many were sent, this one included */
    out_u64(&p, (uint64_t)busy_slots(w));
    out_u64(&p, (uint64_t)w->nbacklog);
    out_u64(&p, w->done);
    if (sl_pack_error(&p) == SL_OK) {
        /* A datagram is never fragmented: respect the current maximum (0
         * while not connected). */
        size_t max = sl_unreliable_max(sl_actor_core(self), w->telemetry);
        if (sl_pack_len(&p) > max) {
            w->too_big++;
        } else {
            int rc = sl_send_unreliable(self, w->telemetry, MSG_TELEMETRY, SL_PRIO_LOW,
                                        sl_pack_data(&p), sl_pack_len(&p));
            if (rc == SL_OK)
                w->sent++;
            else
                w->refused++; /* SL_ERR_AGAIN (too many queued), SL_ERR_NOCONN */
        }
    }
    sl_pack_fini(&p);
}

static void worker_lookup(sl_actor *self, worker *w)
{
    w->lookups++;
    if (sl_ask_whereis(self, w->coord_node, "telemetry", LOOKUP_DEADLINE_MS, &w->lookup_ask) !=
        SL_OK)
        w->lookup_ask = 0;
}

static int worker_message(sl_actor *self, const sl_msg *m)
{
    worker *w = sl_state(self);
    uint64_t node;
    bool up;
    switch (m->kind) {
    case SL_KIND_SEND:
        if (m->type == MSG_PEER && read_peer(m, &node, &up)) {
            if (up && !w->coord_node) {
                w->coord_node = node; /* the only node we connect to */
                worker_lookup(self, w);
            } else if (!up && node == w->coord_node) {
                /* The coordinator is gone (finished, or died): so are we. */
                sl_node_stop(sl_node_of(self), NULL, NULL);
            }
        } else if (m->type == MSG_DONE) {
            return worker_done(self, w, m->corr);
        } else if (m->type == MSG_TICK && !sl_id_is_none(w->telemetry)) {
            worker_telemetry(self, w);
        } else if (m->type == MSG_TICK && !w->lookup_ask && w->lookups < 5) {
            worker_lookup(self, w); /* retry a failed lookup */
        }
        return 0;
    case SL_KIND_REPLY:
        if (m->corr == w->lookup_ask && w->lookup_ask) {
            w->lookup_ask = 0;
            if (sl_whereis_reply(m, &w->telemetry) != SL_OK)
                w->telemetry = SL_ID_NONE;
        }
        return 0;
    case SL_KIND_FAIL:
        if (m->corr == w->lookup_ask)
            w->lookup_ask = 0; /* the tick retries */
        return 0;
    case SL_KIND_ASK:
        if (m->type == MSG_TASK)
            return worker_task(self, w, m);
        if (m->type == MSG_HELLO || m->type == MSG_BYE) {
            sl_pack p;
            out_array(&p, 3);
            if (m->type == MSG_HELLO) {
                sl_pack_str(&p, w->name);
                out_u64(&p, (uint64_t)uv_os_getpid());
                out_u64(&p, SLOTS);
            } else {
                out_u64(&p, w->sent);
                out_u64(&p, w->too_big);
                out_u64(&p, w->refused);
            }
            int rc = sl_pack_error(&p);
            if (rc == SL_OK)
                rc = sl_reply(self, sl_req_of(m), m->type, sl_pack_data(&p), sl_pack_len(&p));
            sl_pack_fini(&p);
            return rc == SL_ERR_NOMEM ? rc : 0;
        }
        return sl_reply_error(self, sl_req_of(m), SL_ERR_INVAL) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    case SL_KIND_CANCEL:
        worker_cancel(self, w, m);
        return 0;
    default:
        return 0;
    }
}

static int worker_start(sl_actor *self, void *arg)
{
    worker *w = sl_state(self);
    w->name = arg;
    /* One timer drives telemetry (and lookup retries). */
    return sl_send_every(self, sl_self(self), TELEMETRY_EVERY_MS, MSG_TICK, SL_PRIO_LOW, NULL, 0,
                         &w->tick_timer);
}

static const sl_behavior worker_behavior = {
    .on_start = worker_start,
    .on_message = worker_message,
    .state_size = sizeof(worker),
    .name = "worker",
};

static void worker_on_peer(sl_node *node, uint64_t peer, bool up, void *ud)
{
    (void)ud;
    notify_peer(node, W.agent, peer, up);
}

static void worker_stop_cb(uv_handle_t *h)
{
    if (h->type == UV_TIMER)
        W.deadline_fired = true;
    sl_node_stop(W.node, NULL, NULL);
}
static void worker_deadline(uv_timer_t *t)
{
    worker_stop_cb((uv_handle_t *)t);
}
static void worker_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    worker_stop_cb((uv_handle_t *)s);
}

static int worker_main(const char *name, const char *certs, const char *host, uint16_t port,
                       long parent)
{
#ifdef __linux__
    /* If the coordinator dies, whatever the way, the kernel kills us. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && (long)getppid() != parent)
        return 1; /* it died before the line above took effect */
#else
    (void)parent;
#endif
    static char cert[4096], key[4096], ca[4096];
    sl_transport_settings ts;
    tls_settings(&ts, certs, name, cert, key, ca, sizeof cert);
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.quic = &ts;
    ns.on_peer = worker_on_peer;
    ns.reconnect_min_ms = 50;
    ns.reconnect_max_ms = 500;
    int rc = sl_node_new(&ns, &W.node);
    if (rc) {
        fprintf(stderr, "%s: cannot create the node: %s\n", name, sl_strerror(rc));
        return 1;
    }
    sl_spawn_opts opts;
    sl_spawn_opts_default(&opts);
    opts.register_as = "worker"; /* the role; every worker node has one */
    rc = sl_spawn(sl_node_core(W.node), &worker_behavior, (void *)name, &opts, &W.agent);
    if (rc == SL_OK)
        rc = sl_node_connect(W.node, host, port);
    if (rc) {
        fprintf(stderr, "%s: setup failed: %s\n", name, sl_strerror(rc));
        sl_node_stop(W.node, NULL, NULL);
    }
    uv_loop_t *loop = sl_node_loop(W.node);
    uv_timer_t deadline;
    uv_signal_t sigint, sigterm;
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, worker_deadline, WORKER_LIFETIME_MS, 0);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, worker_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, worker_signal, SIGTERM);
    /* Ours must not keep the loop alive once the node has stopped. */
    uv_unref((uv_handle_t *)&deadline);
    uv_unref((uv_handle_t *)&sigint);
    uv_unref((uv_handle_t *)&sigterm);
    sl_node_run(W.node);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    sl_node_del(W.node);
    if (W.deadline_fired)
        fprintf(stderr, "%s: stopped after %d s (lifetime limit)\n", name,
                WORKER_LIFETIME_MS / 1000);
    return rc || W.deadline_fired ? 1 : 0;
}

/* ===================================================================
 * The coordinator role
 * =================================================================== */

enum { T_QUEUED = 0, T_SENT, T_DONE };

typedef struct task {
    int prio;
    uint32_t work_ms;
    int state;        /* T_* */
    int on;           /* worker index while sent; the one that did it once done */
    uint64_t ask;     /* the ask in flight */
    uint64_t sent_ns; /* when that ask was sent */
    int failures;     /* asks of this task that failed */
    bool reassigned;  /* failed on a lost node and went back to the queue */
    int rank;         /* completion order, 1-based */
} task;

enum { W_NONE = 0, W_READY, W_UNREACHABLE, W_DOWN };

/* A worker as the coordinator knows it. Entries are made per peer node;
 * `idx` (which of worker_names) is learnt from the hello. */
typedef struct peer {
    uint64_t node;
    sl_id agent;
    int idx;   /* -1 until the hello reply */
    int state; /* W_* */
    uint64_t whereis_ask, hello_ask, bye_ask, mon_ref;
    int outstanding; /* task asks in flight */
} peer;

#define MAX_PEERS 4

typedef struct coordinator {
    task t[MAX_TASKS + 1];
    peer peers[MAX_PEERS];
    int npeers;
    int ready; /* workers that answered the hello */
    bool started;
    bool dispatch_pending; /* a MSG_DISPATCH retry is scheduled */
    int byes;              /* bye asks still out */
} coordinator;

/* The referee's notes, and what the live line shows. */
static struct story {
    int ntasks, kill_after;
    bool started; /* both workers ready, tasks going out */
    int done, in_flight;
    int per_prio[SL_PRIO_COUNT];
    int done_by[N_WORKERS];
    bool ready[N_WORKERS];
    bool down[N_WORKERS];
    int pid[N_WORKERS];
    /* telemetry */
    uint64_t dgrams[N_WORKERS];   /* received */
    uint64_t last_seq[N_WORKERS]; /* highest sequence number seen */
    uint64_t sent[N_WORKERS];     /* the worker's own count (BYE), if it answered */
    bool sent_known[N_WORKERS];
    uint64_t last_dgram_ns[N_WORKERS];
    bool silent[N_WORKERS];
    uint64_t dgram_rejected; /* payloads that did not parse */
    size_t dgram_max;
    /* the failure */
    bool killed;
    uint64_t kill_ns, silent_ns, down_ns, peer_down_ns;
    int down_reason, downs;
    int noconn_fails, timeouts, other_fails, reassigned, reassigned_done;
    uint64_t first_fail_ns, last_fail_ns;
    int in_flight_at_kill;
    /* latency of successful task asks */
    double lat_ms[MAX_TASKS * 4];
    int nlat;
    double rank_sum[SL_PRIO_COUNT];
    int rank_n[SL_PRIO_COUNT];
    /* the end */
    bool finished, deadline_fired, interrupted, setup_failed, startup_failed;
    int reaped;
    uint64_t end_ns;
} S;

/* The coordinator process: its node, its children, its own handles. */
typedef struct child {
    uv_process_t h;
    bool running;
    int64_t status;
    int signal;
} child;

static struct {
    uv_loop_t loop;
    sl_node *node;
    sl_id coord, telemetry;
    child kids[N_WORKERS];
    uv_timer_t progress, deadline, startup, reap;
    uv_signal_t sigint, sigterm;
    bool finishing, handles_closed;
    uint64_t last_plain_ns;
    char last_plain[256];
} C;

static void finish(void);

/* The live line: "[####......] 14/30 tasks  worker-a: 9  worker-b: 5 ..." */
static void progress_text(char *buf, size_t size)
{
    char bar[11];
    int fill = S.ntasks ? S.done * 10 / S.ntasks : 0;
    for (int i = 0; i < 10; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[10] = 0;
    uint64_t dg = 0;
    for (int k = 0; k < N_WORKERS; k++)
        dg += S.dgrams[k];
    int n = snprintf(buf, size, "[%s] %d/%d tasks", bar, S.done, S.ntasks);
    for (int k = 0; k < N_WORKERS && n > 0 && (size_t)n < size; k++)
        n += snprintf(buf + n, size - (size_t)n, "  %s: %d%s", worker_names[k], S.done_by[k],
                      S.down[k]                 ? " (down)"
                      : S.killed && k == VICTIM ? " (killed)"
                                                : "");
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "  telemetry: %" PRIu64 " dgrams  in flight: %d", dg,
                 S.in_flight);
}

/* Columns of the terminal (80 if unknown). */
static size_t term_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void draw_progress(bool force)
{
    if (quiet || !S.started)
        return;
    char line[256];
    progress_text(line, sizeof line);
    if (tty) {
        /* Never wider than the terminal, or \r would not return to its start. */
        size_t w = term_width() - 1;
        if (strlen(line) > w)
            line[w] = 0;
        printf("\r\033[K%s", line);
        line_shown = true;
        fflush(stdout);
        return;
    }
    /* Not a terminal: a plain line now and then, when something changed. */
    uint64_t now = uv_hrtime();
    if (force || (now - C.last_plain_ns >= PLAIN_PROGRESS_EVERY_MS * 1000000ull &&
                  strcmp(line, C.last_plain) != 0)) {
        printf("[%7.0f ms] progress %s\n", ms_since(t0), line);
        fflush(stdout);
        C.last_plain_ns = now;
        snprintf(C.last_plain, sizeof C.last_plain, "%s", line);
    }
}

static void on_progress(uv_timer_t *t)
{
    (void)t;
    if (S.done || S.in_flight)
        draw_progress(false);
}

static int worker_index(const char *name, size_t len)
{
    for (int k = 0; k < N_WORKERS; k++)
        if (strlen(worker_names[k]) == len && memcmp(worker_names[k], name, len) == 0)
            return k;
    return -1;
}

static const char *peer_name(const peer *p)
{
    return p->idx >= 0 ? worker_names[p->idx] : "?";
}

/* Kill the victim's process with SIGKILL: no goodbye at all. */
static void kill_victim(coordinator *c)
{
    child *k = &C.kids[VICTIM];
    if (S.killed || !k->running)
        return;
    char list[160] = "";
    size_t l = 0;
    int n = 0;
    for (int i = 1; i <= S.ntasks; i++)
        if (c->t[i].state == T_SENT && c->t[i].on == VICTIM && l < sizeof list) {
            l += (size_t)snprintf(list + l, sizeof list - l, " #%d", i);
            n++;
        }
    S.in_flight_at_kill = n;
    S.kill_ns = uv_hrtime();
    S.killed = true;
    int rc = uv_process_kill(&k->h, SIGKILL);
    say("*** kill -9 %s (pid %d) after %d tasks; in flight there:%s", worker_names[VICTIM],
        S.pid[VICTIM], S.done, list);
    if (rc)
        say("    uv_process_kill failed: %s", uv_strerror(rc));
    else
        say("    no goodbye: the connection to it will idle out after %d ms", IDLE_TIMEOUT_MS);
}

/* Pick the next task: most urgent class first; inside a class, tasks that
 * were reassigned (they are late) before the rest, then by number. */
static int next_task(const coordinator *c)
{
    int best = 0;
    for (int i = 1; i <= S.ntasks; i++) {
        const task *a = &c->t[i];
        if (a->state != T_QUEUED)
            continue;
        if (!best)
            best = i;
        const task *b = &c->t[best];
        if (a->prio < b->prio || (a->prio == b->prio && a->reassigned && !b->reassigned))
            best = i;
    }
    return best;
}

/* The ready worker with the most room in its window, or NULL. */
static peer *pick_worker(coordinator *c)
{
    peer *best = NULL;
    for (int i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (p->state != W_READY || p->outstanding >= WINDOW)
            continue;
        if (!best || p->outstanding < best->outstanding)
            best = p;
    }
    return best;
}

/* Hand queued tasks to workers with room in their window. */
static int dispatch(sl_actor *self, coordinator *c)
{
    if (!c->started)
        return 0;
    int i;
    peer *p;
    while ((i = next_task(c)) != 0 && (p = pick_worker(c)) != NULL) {
        task *t = &c->t[i];
        sl_pack o;
        out_array(&o, 2);
        out_u64(&o, (uint64_t)i);
        out_u64(&o, t->work_ms);
        int rc = sl_pack_error(&o);
        if (rc == SL_OK) /* the ask travels at the task's class, on the wire too */
            rc = sl_ask(self, p->agent, MSG_TASK, t->prio, sl_pack_data(&o), sl_pack_len(&o),
                        TASK_DEADLINE_MS, &t->ask);
        sl_pack_fini(&o);
        if (rc == SL_OK) {
            t->state = T_SENT;
            t->on = p->idx;
            t->sent_ns = uv_hrtime();
            p->outstanding++;
            S.in_flight++;
            if (t->reassigned)
                say("task #%d (%s) reassigned to %s", i, sl_prio_name(t->prio), peer_name(p));
            else if (p->idx == VICTIM && S.killed)
                say("task #%d (%s) sent to %s: nobody can tell yet that it is gone", i,
                    sl_prio_name(t->prio), peer_name(p));
        } else if (rc == SL_ERR_NOCONN) {
            /* The connection is already gone; DOWN is on its way. */
            p->state = W_UNREACHABLE;
        } else if (rc == SL_ERR_AGAIN) {
            /* The transport is full for now (stream limit): try again soon. */
            if (!c->dispatch_pending) {
                c->dispatch_pending = true;
                return sl_send_after(self, sl_self(self), 20, MSG_DISPATCH, SL_PRIO_HIGH, NULL, 0,
                                     NULL);
            }
            return 0;
        } else {
            return rc; /* a bug: crash loudly */
        }
    }
    return 0;
}

static peer *peer_by_ask(coordinator *c, uint64_t ask)
{
    for (int i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (ask && (p->whereis_ask == ask || p->hello_ask == ask || p->bye_ask == ask))
            return p;
    }
    return NULL;
}

static peer *peer_by_idx(coordinator *c, int idx)
{
    for (int i = 0; i < c->npeers; i++)
        if (c->peers[i].idx == idx && c->peers[i].state != W_NONE)
            return &c->peers[i];
    return NULL;
}

static int task_by_ask(const coordinator *c, uint64_t ask)
{
    for (int i = 1; i <= S.ntasks; i++)
        if (c->t[i].state == T_SENT && c->t[i].ask == ask)
            return i;
    return 0;
}

/* All tasks are done: collect each surviving worker's own datagram count. */
static void wrap_up(sl_actor *self, coordinator *c)
{
    say("all %d tasks done; asking the surviving worker(s) for their datagram counts", S.ntasks);
    for (int i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (p->state == W_READY && sl_ask(self, p->agent, MSG_BYE, SL_PRIO_HIGH, NULL, 0,
                                          LOOKUP_DEADLINE_MS, &p->bye_ask) == SL_OK)
            c->byes++;
    }
    if (c->byes == 0) {
        S.finished = true;
        finish();
    }
}

static void bye_answered(coordinator *c)
{
    if (--c->byes == 0) {
        S.finished = true;
        say("stopping the coordinator node; the workers see the connection close, and exit");
        finish();
    }
}

static void peer_up(sl_actor *self, coordinator *c, uint64_t node)
{
    if (c->npeers == MAX_PEERS)
        return;
    peer *p = &c->peers[c->npeers++];
    memset(p, 0, sizeof *p);
    p->node = node;
    p->idx = -1;
    int rc = sl_ask_whereis(self, node, "worker", LOOKUP_DEADLINE_MS, &p->whereis_ask);
    say("peer up: node %016" PRIx64 ", its certificate verified by the cluster CA", node);
    say("    asking that node's registry where \"worker\" is%s", rc ? ": failed" : "");
}

static void peer_gone(coordinator *c, uint64_t node)
{
    for (int i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (p->node != node)
            continue;
        if (p->idx == VICTIM && S.killed && !S.peer_down_ns)
            S.peer_down_ns = uv_hrtime();
        say("peer down: node %016" PRIx64 " (%s)", node, peer_name(p));
        if (p->state == W_READY)
            p->state = W_UNREACHABLE;
    }
}

/* A REPLY: where "worker" is, a hello, a task result, or a bye. */
static int coord_reply(sl_actor *self, coordinator *c, const sl_msg *m)
{
    char ids[SL_ID_STRLEN];
    int i = task_by_ask(c, m->corr);
    if (i) {
        task *t = &c->t[i];
        sl_unpacked u;
        uint64_t num = 0, result = 0;
        const char *name = NULL;
        size_t nlen = 0;
        int rc = in_array(&u, m, 3);
        if (rc == SL_OK)
            rc = sl_msgpack_at_uint64(&u.root, 0, &num);
        if (rc == SL_OK)
            rc = sl_msgpack_at_str(&u.root, 1, &name, &nlen);
        if (rc == SL_OK)
            rc = sl_msgpack_at_uint64(&u.root, 2, &result);
        int who = rc == SL_OK ? worker_index(name, nlen) : -1;
        sl_unpacked_fini(&u);
        if (rc != SL_OK || num != (uint64_t)i || who != t->on)
            return SL_ERR_DECODE_TYPE; /* a worker answered nonsense: a bug, crash loudly */
        peer *p = peer_by_idx(c, t->on);
        if (p)
            p->outstanding--;
        S.in_flight--;
        t->state = T_DONE;
        t->rank = ++S.done;
        S.done_by[who]++;
        S.rank_sum[t->prio] += t->rank;
        S.rank_n[t->prio]++;
        if (S.nlat < (int)(sizeof S.lat_ms / sizeof S.lat_ms[0]))
            S.lat_ms[S.nlat++] = ms_since(t->sent_ns);
        if (t->reassigned) {
            S.reassigned_done++;
            say("task #%d (%s, reassigned) done by %s: result %" PRIu64, i, sl_prio_name(t->prio),
                worker_names[who], result);
        }
        /* Midway, and while it holds work: the victim's process dies. */
        peer *victim = peer_by_idx(c, VICTIM);
        if (!S.killed && S.done >= S.kill_after && victim && victim->outstanding > 0)
            kill_victim(c);
        if (S.done == S.ntasks) {
            wrap_up(self, c);
            return 0;
        }
        return dispatch(self, c);
    }
    peer *p = peer_by_ask(c, m->corr);
    if (!p)
        return 0; /* an answer we no longer wait for */
    if (m->corr == p->whereis_ask) {
        p->whereis_ask = 0;
        if (sl_whereis_reply(m, &p->agent) != SL_OK)
            return SL_ERR_DECODE_TYPE;
        /* Watch it from here on: DOWN if it stops or its node is lost. */
        int rc = sl_monitor(self, p->agent, &p->mon_ref);
        if (rc == SL_OK)
            rc = sl_ask(self, p->agent, MSG_HELLO, SL_PRIO_CRITICAL, NULL, 0, LOOKUP_DEADLINE_MS,
                        &p->hello_ask);
        say("    \"worker\" on node %016" PRIx64 " is %s: monitoring it, saying hello", p->node,
            idstr(p->agent, ids));
        return rc;
    }
    if (m->corr == p->hello_ask) {
        p->hello_ask = 0;
        sl_unpacked u;
        const char *name = NULL;
        size_t nlen = 0;
        uint64_t pid = 0, slots = 0;
        int rc = in_array(&u, m, 3);
        if (rc == SL_OK)
            rc = sl_msgpack_at_str(&u.root, 0, &name, &nlen);
        if (rc == SL_OK)
            rc = sl_msgpack_at_uint64(&u.root, 1, &pid);
        if (rc == SL_OK)
            rc = sl_msgpack_at_uint64(&u.root, 2, &slots);
        p->idx = rc == SL_OK ? worker_index(name, nlen) : -1;
        sl_unpacked_fini(&u);
        if (p->idx < 0 || S.ready[p->idx])
            return SL_ERR_DECODE_TYPE;
        p->state = W_READY;
        S.ready[p->idx] = true;
        size_t max = sl_unreliable_max(sl_actor_core(self), p->agent);
        if (max > S.dgram_max)
            S.dgram_max = max;
        say("%s (pid %" PRIu64 ") ready: %" PRIu64 " tasks at a time; datagrams up to %zu bytes",
            worker_names[p->idx], pid, slots, max);
        if (++c->ready == N_WORKERS && !c->started) {
            c->started = S.started = true;
            say("both workers ready: %d tasks (%d CRITICAL, %d HIGH, %d NORMAL, %d BACKGROUND)",
                S.ntasks, S.per_prio[SL_PRIO_CRITICAL], S.per_prio[SL_PRIO_HIGH],
                S.per_prio[SL_PRIO_NORMAL], S.per_prio[SL_PRIO_BACKGROUND]);
            say("    go out as asks with a %d ms deadline, most urgent first, %d per worker at "
                "a time",
                TASK_DEADLINE_MS, WINDOW);
            draw_progress(true);
        }
        return dispatch(self, c);
    }
    if (m->corr == p->bye_ask) {
        p->bye_ask = 0;
        sl_unpacked u;
        uint64_t sent = 0;
        if (p->idx >= 0 && in_array(&u, m, 3) == SL_OK &&
            sl_msgpack_at_uint64(&u.root, 0, &sent) == SL_OK) {
            S.sent[p->idx] = sent;
            S.sent_known[p->idx] = true;
        }
        sl_unpacked_fini(&u);
        bye_answered(c);
    }
    return 0;
}

/* A FAIL: a task ask (put it back in the queue), or a lookup/hello/bye. */
static int coord_fail(sl_actor *self, coordinator *c, const sl_msg *m)
{
    int i = task_by_ask(c, m->corr);
    if (i) {
        task *t = &c->t[i];
        peer *p = peer_by_idx(c, t->on);
        if (p)
            p->outstanding--;
        S.in_flight--;
        t->state = T_QUEUED;
        t->failures++;
        uint64_t now = uv_hrtime();
        if (m->status == SL_ERR_NOCONN) {
            /* Its node is lost: the task goes back to the queue. */
            S.noconn_fails++;
            if (!S.first_fail_ns)
                S.first_fail_ns = now;
            S.last_fail_ns = now;
            if (!t->reassigned)
                S.reassigned++;
            t->reassigned = true;
            if (p && p->state == W_READY)
                p->state = W_UNREACHABLE;
        } else if (m->status == SL_ERR_TIMEOUT) {
            S.timeouts++;
        } else {
            S.other_fails++;
        }
        say("task #%d (%s) failed on %s after %.0f ms: %s, back to the queue", i,
            sl_prio_name(t->prio), t->on >= 0 ? worker_names[t->on] : "?", ms_since(t->sent_ns),
            sl_err_name(m->status));
        return dispatch(self, c);
    }
    peer *p = peer_by_ask(c, m->corr);
    if (!p)
        return 0;
    if (m->corr == p->bye_ask) {
        p->bye_ask = 0;
        bye_answered(c);
        return 0;
    }
    say("lookup/hello for node %016" PRIx64 " failed: %s", p->node, sl_err_name(m->status));
    p->whereis_ask = p->hello_ask = 0;
    return 0;
}

/* DOWN for a monitored worker agent. */
static int coord_down(sl_actor *self, coordinator *c, const sl_msg *m)
{
    char ids[SL_ID_STRLEN];
    for (int i = 0; i < c->npeers; i++) {
        peer *p = &c->peers[i];
        if (p->mon_ref != m->corr || !p->mon_ref)
            continue;
        p->state = W_DOWN;
        p->mon_ref = 0;
        if (p->idx >= 0)
            S.down[p->idx] = true;
        S.downs++;
        S.down_reason = m->status;
        if (p->idx == VICTIM && S.killed && !S.down_ns)
            S.down_ns = uv_hrtime();
        if (p->idx == VICTIM && S.killed) {
            say("DOWN %s (%s): reason %s, %.0f ms after the kill", peer_name(p),
                idstr(m->from, ids), sl_reason_name(m->status),
                (double)(S.down_ns - S.kill_ns) / 1e6);
            say("    the same instant: %d of its asks failed with SL_ERR_NOCONN, %d still pending",
                S.noconn_fails, p->outstanding);
        } else
            say("DOWN %s (%s): reason %s", peer_name(p), idstr(m->from, ids),
                sl_reason_name(m->status));
    }
    return dispatch(self, c);
}

static int coord_message(sl_actor *self, const sl_msg *m)
{
    coordinator *c = sl_state(self);
    uint64_t node;
    bool up;
    switch (m->kind) {
    case SL_KIND_SEND:
        if (m->type == MSG_PEER && read_peer(m, &node, &up)) {
            if (up)
                peer_up(self, c, node);
            else
                peer_gone(c, node);
        } else if (m->type == MSG_DISPATCH) {
            c->dispatch_pending = false;
            return dispatch(self, c);
        } else if (m->type == SL_TYPE_RESUME) {
            return dispatch(self, c);
        }
        return 0;
    case SL_KIND_REPLY:
        return coord_reply(self, c, m);
    case SL_KIND_FAIL:
        return coord_fail(self, c, m);
    case SL_KIND_DOWN:
        return coord_down(self, c, m);
    default:
        return 0;
    }
}

static int coord_start(sl_actor *self, void *arg)
{
    coordinator *c = sl_state(self);
    (void)arg;
    for (int i = 1; i <= S.ntasks; i++) {
        c->t[i] = (task){.prio = task_prio(i), .work_ms = task_work_ms(i), .on = -1};
        S.per_prio[c->t[i].prio]++;
    }
    return 0;
}

static const sl_behavior coord_behavior = {
    .on_start = coord_start,
    .on_message = coord_message,
    .state_size = sizeof(coordinator),
    .name = "coordinator",
};

/* ---------------------------------------------------- telemetry agent */

/* Counts the workers' datagrams and notices when one goes silent. */
static int telemetry_message(sl_actor *self, const sl_msg *m)
{
    (void)self;
    if (m->kind != SL_KIND_SEND)
        return 0;
    if (m->type == MSG_TELEMETRY && (m->flags & SL_MSG_UNRELIABLE)) {
        sl_unpacked u;
        const char *name;
        size_t nlen;
        uint64_t seq;
        int k = -1;
        if (in_array(&u, m, 5) == SL_OK && sl_msgpack_at_str(&u.root, 0, &name, &nlen) == SL_OK &&
            sl_msgpack_at_uint64(&u.root, 1, &seq) == SL_OK)
            k = worker_index(name, nlen);
        sl_unpacked_fini(&u);
        if (k < 0) {
            S.dgram_rejected++;
            return 0;
        }
        S.dgrams[k]++;
        if (seq > S.last_seq[k])
            S.last_seq[k] = seq;
        S.last_dgram_ns[k] = uv_hrtime();
        if (S.silent[k]) {
            S.silent[k] = false;
            say("telemetry: %s is sending again", worker_names[k]);
        }
    } else if (m->type == MSG_TICK) {
        uint64_t now = uv_hrtime();
        for (int k = 0; k < N_WORKERS; k++) {
            if (!S.last_dgram_ns[k] || S.silent[k] || S.down[k] || S.finished)
                continue;
            if (now - S.last_dgram_ns[k] > SILENCE_MS * 1000000ull) {
                S.silent[k] = true;
                if (k == VICTIM && S.killed && !S.silent_ns)
                    S.silent_ns = now;
                say("telemetry: nothing from %s for %.0f ms (it sends every %d ms): a hint only",
                    worker_names[k], (double)(now - S.last_dgram_ns[k]) / 1e6, TELEMETRY_EVERY_MS);
            }
        }
    }
    return 0;
}

static int telemetry_start(sl_actor *self, void *arg)
{
    (void)arg;
    return sl_send_every(self, sl_self(self), 50, MSG_TICK, SL_PRIO_LOW, NULL, 0, NULL);
}

static const sl_behavior telemetry_behavior = {
    .on_start = telemetry_start,
    .on_message = telemetry_message,
    .name = "telemetry",
};

/* ------------------------------------------------- processes, the end */

static void coord_on_peer(sl_node *node, uint64_t node_id, bool up, void *ud)
{
    (void)ud;
    notify_peer(node, C.coord, node_id, up);
}

static bool children_running(void)
{
    for (int k = 0; k < N_WORKERS; k++)
        if (C.kids[k].running)
            return true;
    return false;
}

/* Once the node has stopped and every child has exited, close our handles:
 * the loop then ends. */
static void maybe_close_all(void)
{
    if (C.handles_closed || !C.node || !sl_node_stopped(C.node) || children_running())
        return;
    C.handles_closed = true;
    uv_close((uv_handle_t *)&C.progress, NULL);
    uv_close((uv_handle_t *)&C.deadline, NULL);
    uv_close((uv_handle_t *)&C.startup, NULL);
    uv_close((uv_handle_t *)&C.reap, NULL);
    uv_close((uv_handle_t *)&C.sigint, NULL);
    uv_close((uv_handle_t *)&C.sigterm, NULL);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int signal)
{
    child *k = h->data;
    int idx = (int)(k - C.kids);
    k->running = false;
    k->status = status;
    k->signal = signal;
    uv_close((uv_handle_t *)h, NULL);
    if (signal)
        say("process %s (pid %d) ended by signal %d%s", worker_names[idx], S.pid[idx], signal,
            signal == SIGKILL && idx == VICTIM && S.killed ? " (our kill)" : "");
    else
        say("process %s (pid %d) exited with status %" PRId64, worker_names[idx], S.pid[idx],
            status);
    maybe_close_all();
}

static void on_reap(uv_timer_t *t)
{
    (void)t;
    for (int k = 0; k < N_WORKERS; k++)
        if (C.kids[k].running) {
            say("%s did not exit within %d ms: SIGKILL", worker_names[k], REAP_MS);
            uv_process_kill(&C.kids[k].h, SIGKILL);
            S.reaped++;
        }
}

static void on_node_stopped(sl_node *node, void *ud)
{
    (void)node;
    (void)ud;
    S.end_ns = uv_hrtime();
    /* A worker that never reached us cannot see our connection close. */
    for (int k = 0; k < N_WORKERS; k++)
        if (C.kids[k].running && !S.ready[k])
            uv_process_kill(&C.kids[k].h, SIGTERM);
    uv_timer_start(&C.reap, on_reap, REAP_MS, 0);
    maybe_close_all();
}

/* Stop the coordinator node (once); the children follow. */
static void finish(void)
{
    if (C.finishing)
        return;
    C.finishing = true;
    uv_timer_stop(&C.deadline);
    uv_timer_stop(&C.startup);
    sl_node_stop(C.node, on_node_stopped, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    S.deadline_fired = true;
    say("gave up: the story did not end within %d s (%d/%d tasks done)", GLOBAL_DEADLINE_MS / 1000,
        S.done, S.ntasks);
    finish();
}

static void on_startup_deadline(uv_timer_t *t)
{
    (void)t;
    if (S.started)
        return;
    for (int k = 0; k < N_WORKERS; k++)
        if (!S.ready[k])
            say("gave up: %s was not ready within %d s (did its connection or TLS handshake "
                "fail? see its messages above)",
                worker_names[k], STARTUP_DEADLINE_MS / 1000);
    S.startup_failed = true;
    finish();
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    S.interrupted = true;
    say("interrupted (signal %d): stopping the cluster", signum);
    for (int k = 0; k < N_WORKERS; k++)
        if (C.kids[k].running)
            uv_process_kill(&C.kids[k].h, SIGTERM);
    finish();
}

static int spawn_worker(int idx, const char *exe, const char *certs, uint16_t port)
{
    char portarg[32], parent[32];
    snprintf(portarg, sizeof portarg, "127.0.0.1:%u", port);
    snprintf(parent, sizeof parent, "%d", (int)uv_os_getpid());
    char *args[] = {(char *)exe, "worker",      "--name",    (char *)worker_names[idx],
                    "--certs",   (char *)certs, "--connect", portarg,
                    "--parent",  parent,        NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                  {.flags = UV_INHERIT_FD, .data.fd = 1},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .file = exe, .args = args, .exit_cb = on_exit_cb, .stdio_count = 3, .stdio = io};
    child *k = &C.kids[idx];
    k->h.data = k;
    int rc = uv_spawn(&C.loop, &k->h, &o);
    if (rc) {
        fprintf(stderr, "cannot start %s (%s): %s\n", worker_names[idx], exe, uv_strerror(rc));
        return rc;
    }
    k->running = true;
    S.pid[idx] = k->h.pid;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, int n, double p)
{
    if (n == 0)
        return 0;
    int r = (int)(p / 100.0 * n + 0.999999);
    return v[(r < 1 ? 1 : r > n ? n : r) - 1];
}

/* Check the story; print the summary. Returns the exit status. */
static int summarize(void)
{
    char why[2048] = "";
    size_t wl = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond) && wl < sizeof why)                                                            \
            wl += (size_t)snprintf(why + wl, sizeof why - wl, "\n    - " __VA_ARGS__);             \
    } while (0)
    double limit_ms = 2.0 * IDLE_TIMEOUT_MS;
    double down_ms = S.down_ns ? (double)(S.down_ns - S.kill_ns) / 1e6 : -1;
    double fail_first = S.first_fail_ns ? (double)(S.first_fail_ns - S.kill_ns) / 1e6 : -1;
    double fail_last = S.last_fail_ns ? (double)(S.last_fail_ns - S.kill_ns) / 1e6 : -1;
    double fail_spread =
        S.first_fail_ns && S.down_ns
            ? (double)((S.last_fail_ns > S.down_ns ? S.last_fail_ns : S.down_ns) -
                       (S.first_fail_ns < S.down_ns ? S.first_fail_ns : S.down_ns)) /
                  1e6
            : -1;
    uint64_t recv = 0, sent = 0;
    for (int k = 0; k < N_WORKERS; k++) {
        recv += S.dgrams[k];
        sent += S.sent_known[k] ? S.sent[k] : S.last_seq[k];
    }
    EXPECT(!S.setup_failed, "setup failed");
    EXPECT(!S.startup_failed, "the workers were not ready within %d s", STARTUP_DEADLINE_MS / 1000);
    EXPECT(S.done == S.ntasks, "%d of %d tasks done", S.done, S.ntasks);
    EXPECT(S.killed, "%s was never killed", worker_names[VICTIM]);
    EXPECT(S.down_ns, "no DOWN for %s after the kill", worker_names[VICTIM]);
    EXPECT(!S.down_ns || S.down_reason == SL_REASON_NOCONNECTION,
           "DOWN had reason %s, expected noconnection", sl_reason_name(S.down_reason));
    EXPECT(!S.down_ns || down_ms <= limit_ms,
           "DOWN came %.0f ms after the kill (limit: 2 x idle timeout = %.0f ms)", down_ms,
           limit_ms);
    EXPECT(S.in_flight_at_kill == 0 || S.noconn_fails >= 1,
           "%d asks were in flight on the killed node but none failed with SL_ERR_NOCONN",
           S.in_flight_at_kill);
    EXPECT(S.noconn_fails == 0 || fail_last <= limit_ms,
           "the last SL_ERR_NOCONN failure came %.0f ms after the kill (limit %.0f ms)", fail_last,
           limit_ms);
    EXPECT(fail_spread < 0 || fail_spread <= FAIL_AT_ONCE_MS,
           "DOWN and the SL_ERR_NOCONN failures were %.0f ms apart (expected at once, <= %d ms)",
           fail_spread, FAIL_AT_ONCE_MS);
    EXPECT(S.reassigned >= 1 && S.reassigned_done == S.reassigned,
           "%d task(s) reassigned after DOWN, %d of them done (expected at least one, all done)",
           S.reassigned, S.reassigned_done);
    EXPECT(S.timeouts == 0, "%d task ask(s) timed out", S.timeouts);
    EXPECT(S.other_fails == 0, "%d task ask(s) failed other than with SL_ERR_NOCONN",
           S.other_fails);
    EXPECT(recv > 0, "no telemetry datagram arrived");
    EXPECT(S.sent_known[1 - VICTIM], "the surviving worker did not report its datagram count");
    EXPECT(!C.kids[1 - VICTIM].signal && C.kids[1 - VICTIM].status == 0,
           "%s did not exit cleanly (status %" PRId64 ", signal %d)", worker_names[1 - VICTIM],
           C.kids[1 - VICTIM].status, C.kids[1 - VICTIM].signal);
    EXPECT(S.reaped == 0, "%d worker(s) had to be killed at the end", S.reaped);
    EXPECT(!S.deadline_fired, "the global deadline (%d s) fired", GLOBAL_DEADLINE_MS / 1000);
    EXPECT(S.finished, "the coordinator never reached its wrap-up");
#undef EXPECT

    qsort(S.lat_ms, (size_t)S.nlat, sizeof S.lat_ms[0], cmp_double);
    uint64_t end = S.end_ns ? S.end_ns : uv_hrtime();
    printf("%sCluster summary\n", quiet ? "" : "\n");
    printf("  nodes        3 processes on 127.0.0.1, QUIC, mutual TLS verified by a cluster CA\n");
    printf("  tasks        %d of %d done: %s %d, %s %d; %d reassigned after DOWN\n", S.done,
           S.ntasks, worker_names[0], S.done_by[0], worker_names[1], S.done_by[1], S.reassigned);
    if (S.done) {
        printf("  priorities   mean completion rank:");
        for (int pr = 0; pr < SL_PRIO_COUNT; pr++)
            if (S.rank_n[pr])
                printf(" %s %.1f", sl_prio_name(pr), S.rank_sum[pr] / S.rank_n[pr]);
        printf(" (1 = first)\n");
    }
    if (S.nlat)
        printf("  ask latency  p50 %.0f ms, p99 %.0f ms over %d answered task asks\n"
               "               (waiting in a worker's backlog + 200..600 ms of work)\n",
               pct(S.lat_ms, S.nlat, 50), pct(S.lat_ms, S.nlat, 99), S.nlat);
    if (S.killed) {
        char silent[32] = "not noticed", down[48] = "no DOWN", fails[64] = "no SL_ERR_NOCONN";
        if (S.silent_ns)
            snprintf(silent, sizeof silent, "+%.0f ms", (double)(S.silent_ns - S.kill_ns) / 1e6);
        if (S.down_ns)
            snprintf(down, sizeof down, "DOWN(%s) +%.0f ms", sl_reason_name(S.down_reason),
                     down_ms);
        if (S.noconn_fails)
            snprintf(fails, sizeof fails, "%d x SL_ERR_NOCONN +%.0f..%.0f ms", S.noconn_fails,
                     fail_first, fail_last);
        printf("  failure      kill -9 %s at %.2f s; then: silence noticed %s,\n",
               worker_names[VICTIM], (double)(S.kill_ns - t0) / 1e9, silent);
        printf("               %s, %s\n", down, fails);
        printf("               (idle timeout %d ms; the limit checked is 2 x that = %.0f ms)\n",
               IDLE_TIMEOUT_MS, limit_ms);
    }
    printf("  telemetry    %" PRIu64 " datagrams received of %" PRIu64
           " sent (max payload %zu B)\n",
           recv, sent, S.dgram_max);
    printf("              ");
    for (int k = 0; k < N_WORKERS; k++)
        printf(" %s %" PRIu64 "/%" PRIu64 "%s", worker_names[k], S.dgrams[k],
               S.sent_known[k] ? S.sent[k] : S.last_seq[k],
               S.sent_known[k] ? " (its own count)" : " (sent: highest sequence number seen)");
    printf("\n");
    printf("  elapsed      %.2f s\n", (double)(end - t0) / 1e9);
    if (S.interrupted) {
        printf("  verdict      INTERRUPTED: the story was cut short\n");
        return 1;
    }
    if (wl == 0) {
        printf("  verdict      OK: the story happened as told\n");
        return 0;
    }
    printf("  verdict      FAILED:%s\n", why);
    return 1;
}

static void header(const char *certs)
{
    if (quiet)
        return;
    printf("What you will see:\n"
           "  - a coordinator node starts two worker nodes (worker-a, worker-b), each its own\n"
           "    process; they talk QUIC with mutual TLS, verified against a cluster CA\n"
           "  - the coordinator finds each node's \"worker\" agent by name (sl_ask_whereis)\n"
           "    and monitors it (sl_monitor across nodes)\n"
           "  - %d tasks with priorities go out as asks with a %d s deadline, most urgent\n"
           "    first; workers compute on timers, %d at a time, never blocking their loop\n"
           "  - every %d ms each worker sends its load as an unreliable QUIC datagram\n"
           "  - after %d tasks, worker-b's process is killed with SIGKILL. No goodbye: the\n"
           "    QUIC idle timeout (%d ms) ends the connection, the coordinator gets\n"
           "    DOWN(noconnection), worker-b's pending asks fail with SL_ERR_NOCONN, and\n"
           "    those tasks go to worker-a\n"
           "  - a summary, checked: the exit status is 0 only if all of that happened\n"
           "Certificate directory: %s\n\n",
           S.ntasks, TASK_DEADLINE_MS / 1000, SLOTS, TELEMETRY_EVERY_MS, S.kill_after,
           IDLE_TIMEOUT_MS, certs);
    fflush(stdout);
}

static int coordinator_main(const char *certs)
{
    static char cert[4096], key[4096], ca[4096];
    char exe[4096];
    size_t exe_len = sizeof exe;
    if (uv_exepath(exe, &exe_len) != 0) {
        fprintf(stderr, "cannot find this program's path\n");
        return 1;
    }
    header(certs);
    uv_loop_init(&C.loop);
    sl_transport_settings ts;
    tls_settings(&ts, certs, "coordinator", cert, key, ca, sizeof cert);
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.loop = &C.loop;
    ns.quic = &ts;
    ns.on_peer = coord_on_peer;
    int rc = sl_node_new(&ns, &C.node);
    if (rc) {
        fprintf(stderr,
                "cannot create the coordinator node: %s (certificates in %s? "
                "examples/demo.sh makes them)\n",
                sl_strerror(rc), certs);
        uv_loop_close(&C.loop);
        return 1;
    }
    uint16_t port = 0;
    sl_core *core = sl_node_core(C.node);
    sl_spawn_opts opts;
    sl_spawn_opts_default(&opts);
    rc = sl_node_listen(C.node, "127.0.0.1", 0);
    if (rc == SL_OK)
        rc = sl_node_port(C.node, &port);
    if (rc == SL_OK) {
        opts.register_as = "telemetry";
        rc = sl_spawn(core, &telemetry_behavior, NULL, &opts, &C.telemetry);
    }
    if (rc == SL_OK) {
        opts.register_as = "coordinator";
        rc = sl_spawn(core, &coord_behavior, NULL, &opts, &C.coord);
    }
    uv_timer_init(&C.loop, &C.progress);
    uv_timer_init(&C.loop, &C.deadline);
    uv_timer_init(&C.loop, &C.startup);
    uv_timer_init(&C.loop, &C.reap);
    uv_signal_init(&C.loop, &C.sigint);
    uv_signal_init(&C.loop, &C.sigterm);
    if (rc == SL_OK) {
        say("coordinator node %016" PRIx64 " listening on 127.0.0.1:%u", sl_node_id(C.node), port);
        say("    QUIC, TLS 1.3, mutual, verify=SL_VERIFY_CA; idle timeout %d ms, keep-alive %d ms",
            IDLE_TIMEOUT_MS, KEEPALIVE_MS);
        for (int k = 0; k < N_WORKERS && rc == SL_OK; k++)
            rc = spawn_worker(k, exe, certs, port);
        if (rc == SL_OK)
            say("started %s (pid %d) and %s (pid %d); they connect to us", worker_names[0],
                S.pid[0], worker_names[1], S.pid[1]);
    } else {
        fprintf(stderr, "coordinator setup failed: %s\n", sl_strerror(rc));
    }
    uv_signal_start(&C.sigint, on_signal, SIGINT);
    uv_signal_start(&C.sigterm, on_signal, SIGTERM);
    uv_timer_start(&C.deadline, on_deadline, GLOBAL_DEADLINE_MS, 0);
    uv_timer_start(&C.startup, on_startup_deadline, STARTUP_DEADLINE_MS, 0);
    uv_timer_start(&C.progress, on_progress, PROGRESS_EVERY_MS, PROGRESS_EVERY_MS);
    if (rc) {
        S.setup_failed = true;
        finish();
    }
    sl_node_run(C.node); /* until the node stopped, the children exited, our handles closed */
    if (line_shown) {
        draw_progress(true);
        putchar('\n');
        line_shown = false;
    } else if (!tty && S.ntasks) {
        draw_progress(true);
    }
    int status = summarize();
    sl_node_del(C.node);
    uv_run(&C.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&C.loop) != 0) {
        fprintf(stderr, "the loop did not close clean\n");
        status = 1;
    }
    return S.interrupted ? 130 : status;
}

/* ---------------------------------------------------------------- main */

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s coordinator --certs DIR [--quiet] [--tasks N] [--kill-after N]\n"
            "       %s worker --name NAME --certs DIR --connect 127.0.0.1:PORT [--parent PID]\n"
            "DIR holds ca.pem and <node>.pem/.key for coordinator, worker-a and worker-b\n"
            "(examples/demo.sh makes them with `starling cert`).\n",
            argv0, argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *certs = NULL, *name = NULL, *connect = NULL;
    long parent = 0;
    t0 = uv_hrtime();
    S.ntasks = N_TASKS_DEFAULT;
    S.kill_after = KILL_AFTER_DEFAULT;
    if (argc < 2)
        return usage(argv[0]);
    bool coord = strcmp(argv[1], "coordinator") == 0;
    if (!coord && strcmp(argv[1], "worker") != 0)
        return usage(argv[0]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
            continue;
        }
        if (!v)
            return usage(argv[0]);
        i++;
        if (strcmp(a, "--certs") == 0)
            certs = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--connect") == 0)
            connect = v;
        else if (strcmp(a, "--parent") == 0)
            parent = strtol(v, NULL, 10);
        else if (strcmp(a, "--tasks") == 0)
            S.ntasks = atoi(v);
        else if (strcmp(a, "--kill-after") == 0)
            S.kill_after = atoi(v);
        else
            return usage(argv[0]);
    }
    if (!certs || S.ntasks < 1 || S.ntasks > MAX_TASKS || S.kill_after < 0 ||
        S.kill_after >= S.ntasks)
        return usage(argv[0]);
    if (coord) {
        tty = !quiet && isatty(STDOUT_FILENO);
        return coordinator_main(certs);
    }
    const char *colon = connect ? strrchr(connect, ':') : NULL;
    if (!name || worker_index(name, strlen(name)) < 0 || !colon)
        return usage(argv[0]);
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - connect), connect);
    quiet = true;
    return worker_main(name, certs, host, (uint16_t)atoi(colon + 1), parent);
}
