/*
 * remote_bench.c: benchmarks of actors on two nodes, in two processes, over
 * QUIC on 127.0.0.1.
 *
 *   remote_throughput    one sender actor -> one receiver actor on the other
 *                        node: 1,000,000 x 64 B, then 200,000 x 1 KiB
 *   remote_rtt           50,000 sequential 64-byte asks to an echo actor
 *   priority_under_load  latency of CRITICAL 64-byte messages while
 *                        BACKGROUND 64 KiB messages keep the connection full
 *   hol_isolation        latency of 100-byte messages to actor Y while actor
 *                        X on the same node receives 64 MiB messages
 *
 * Each prints one JSON object per line on stdout.
 *
 * How. The program is node B (the measuring side). For every measurement it
 * starts node A as a second process: itself, fork+exec'd with `--peer`.
 * Node A listens on 127.0.0.1 with a development certificate (no
 * verification either way), spawns two actors, a sink (counts messages,
 * answers END with DONE carrying the counts) and an echo (answers asks,
 * records the one-way latency of PING messages and reports percentiles on
 * REPORT), and writes "READY <port> <sink local id> <echo local id>" on
 * its stdout, a pipe to node B. Node B connects, learns A's node id from
 * on_peer, and runs the measurement with its own actors. Both processes
 * run on one machine, so uv_hrtime() (CLOCK_MONOTONIC) is one clock: a
 * PING carries its send time and A computes the one-way latency.
 *
 * Senders respect backpressure: a send that returns SL_ERR_AGAIN is not
 * retried until the SL_TYPE_RESUME message from that destination arrives.
 * Latency probes are open loop (one PING per 1 ms timer tick whatever the
 * answers), so a stall on the receiving side shows up in every probe that
 * queues behind it instead of in one sample.
 *
 * Every phase is bounded by a watchdog (node B prints an error, kills A
 * and exits 1); node A kills itself if B dies (PR_SET_PDEATHSIG) and has
 * its own watchdog. Node A exits when the connection goes down.
 *
 * Usage: remote_bench [name] [--quick] [--verbose] [--list]
 *                    [--payload 64|1024] [--msgs N]   (remote_throughput, for profiling)
 *        remote_bench --peer          (node A; started by remote_bench itself)
 * Environment: REMOTE_BENCH_PEER_WRAP, a command prefix for node A (e.g.
 * "perf record -g -o a.data"), to profile it on its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "starling/node.h"

/* Message types between the two nodes. */
enum {
    T_GO = 1,     /* local kick: start or continue sending */
    T_DATA,       /* bulk payload to the sink */
    T_END,        /* last message of a bulk run (same lane: after all data) */
    T_DONE,       /* sink -> sender: {msgs, bytes} received */
    T_ECHO,       /* ask: the echo replies with the same payload */
    T_PING,       /* probe -> echo: payload starts with the send time (ns) */
    T_REPORT,     /* probe -> echo (same lane as the pings): send your stats */
    T_REPORT_R,   /* echo -> probe: {n, p50, p99, max} in ns */
    T_TICK        /* probe's own periodic timer */
};

static int verbose;

static void die(const char *what, int rc)
{
    fprintf(stderr, "remote_bench[%d]: %s: %s\n", (int)getpid(), what,
            rc ? sl_strerror(rc) : "failed");
    exit(1);
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *s, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return s[i < n ? i : n - 1];
}

static sl_node *make_node(uv_loop_t *loop, void (*on_peer)(sl_node *, uint64_t, bool, void *),
                          void *ud)
{
    sl_transport_settings ts;
    sl_transport_settings_default(&ts);
    ts.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY; /* dev certificates on both sides */
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.loop = loop;
    ns.quic = &ts;
    ns.on_peer = on_peer;
    ns.ud = ud;
    sl_node *n = NULL;
    int rc = sl_node_new(&ns, &n);
    if (rc)
        die("sl_node_new", rc);
    return n;
}

/* ================================================================ node A */

/* The sink: counts; END is answered with DONE {msgs, bytes}. */
typedef struct sink {
    uint64_t msgs, bytes;
} sink;

static int sink_msg(sl_actor *self, const sl_msg *m)
{
    sink *s = sl_state(self);
    if (m->type == T_DATA) {
        s->msgs++;
        s->bytes += m->len;
    } else if (m->type == T_END) {
        uint8_t out[16];
        put64(out, s->msgs);
        put64(out + 8, s->bytes);
        int rc = sl_send(self, m->from, T_DONE, SL_PRIO_CRITICAL, out, sizeof out);
        if (rc)
            fprintf(stderr, "remote_bench peer: DONE not sent: %s\n", sl_strerror(rc));
        s->msgs = s->bytes = 0;
    }
    return 0;
}

/* The echo: answers asks; records PING one-way latencies; REPORT -> stats. */
#define ECHO_MAX 1000000
typedef struct echo {
    uint64_t *lat;
    size_t n;
} echo;

static int echo_msg(sl_actor *self, const sl_msg *m)
{
    echo *e = sl_state(self);
    if (m->kind == SL_KIND_ASK) {
        sl_reply(self, sl_req_of(m), T_ECHO, m->data, m->len);
    } else if (m->type == T_PING && m->len >= 8) {
        uint64_t now = uv_hrtime(), ts = get64(m->data);
        if (e->n < ECHO_MAX)
            e->lat[e->n++] = now > ts ? now - ts : 0;
    } else if (m->type == T_REPORT) {
        qsort(e->lat, e->n, sizeof *e->lat, cmp_u64);
        uint8_t out[32];
        put64(out, e->n);
        put64(out + 8, pct(e->lat, e->n, 50));
        put64(out + 16, pct(e->lat, e->n, 99));
        put64(out + 24, e->n ? e->lat[e->n - 1] : 0);
        int rc = sl_send(self, m->from, T_REPORT_R, SL_PRIO_CRITICAL, out, sizeof out);
        if (rc)
            fprintf(stderr, "remote_bench peer: REPORT_R not sent: %s\n", sl_strerror(rc));
        e->n = 0;
    }
    return 0;
}

static const sl_behavior sink_b = {.on_message = sink_msg, .name = "sink"};
static const sl_behavior echo_b = {.on_message = echo_msg, .name = "echo"};

typedef struct peer_world {
    uv_loop_t loop;
    sl_node *node;
    bool was_up;
} peer_world;

static void peer_on_peer(sl_node *n, uint64_t peer, bool up, void *ud)
{
    peer_world *w = ud;
    if (up) {
        w->was_up = true;
    } else if (w->was_up) {
        sl_node_stop(n, NULL, NULL); /* node B is done with us */
    }
}

static void peer_watchdog(uv_timer_t *t)
{
    fprintf(stderr, "remote_bench peer: watchdog expired\n");
    _exit(3);
}

static int peer_main(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(3); /* the parent is already gone */
    peer_world w;
    memset(&w, 0, sizeof w);
    uv_loop_init(&w.loop);
    w.node = make_node(&w.loop, peer_on_peer, &w);
    int rc = sl_node_listen(w.node, "127.0.0.1", 0);
    uint16_t port = 0;
    if (rc || (rc = sl_node_port(w.node, &port)))
        die("listen", rc);
    sink sk = {0};
    echo ec = {0};
    ec.lat = malloc(ECHO_MAX * sizeof *ec.lat);
    if (!ec.lat)
        die("malloc", SL_ERR_NOMEM);
    sl_id sid, eid;
    sl_core *core = sl_node_core(w.node);
    if ((rc = sl_spawn(core, &sink_b, &sk, NULL, &sid)) ||
        (rc = sl_spawn(core, &echo_b, &ec, NULL, &eid)))
        die("spawn", rc);
    uv_timer_t wd;
    uv_timer_init(&w.loop, &wd);
    uv_timer_start(&wd, peer_watchdog, 600 * 1000, 0);
    uv_unref((uv_handle_t *)&wd);
    printf("READY %u %" PRIu64 " %" PRIu64 "\n", (unsigned)port, sid.local, eid.local);
    fflush(stdout);
    sl_node_run(w.node);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    sl_node_del(w.node);
    uv_loop_close(&w.loop);
    free(ec.lat);
    return 0;
}

/* ================================================================ node B */

typedef struct world {
    uv_loop_t loop;
    sl_node *node;
    uint64_t peer; /* node A's id */
    bool up;
    pid_t child;
    sl_id sink, echo;
    uv_timer_t wd;
    const char *phase;
    int pending; /* parts of the current phase not finished yet */
    double cpu0;  /* node B's CPU seconds at world_up */
} world;

static double cpu_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
           r->ru_stime.tv_usec / 1e6;
}

static double self_cpu(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return cpu_s(&r);
}

static world *W;

/* A part of the phase finished; the last one ends the loop run. */
static void part_done(void)
{
    if (--W->pending <= 0)
        uv_stop(&W->loop);
}

static void on_peer(sl_node *n, uint64_t peer, bool up, void *ud)
{
    world *w = ud;
    if (up) {
        w->peer = peer;
        w->up = true;
        uv_stop(&w->loop);
    } else if (w->up) {
        w->up = false;
        if (w->pending > 0) {
            fprintf(stderr, "remote_bench: connection to node A lost during %s\n", w->phase);
            kill(w->child, SIGKILL);
            exit(1);
        }
    }
}

static void wd_cb(uv_timer_t *t)
{
    fprintf(stderr, "remote_bench: watchdog: %s did not finish; killing node A\n", W->phase);
    if (W->child > 0)
        kill(W->child, SIGKILL);
    exit(1);
}

/* Run the loop until the phase's parts are done (or the watchdog fires). */
static void run_phase(world *w, const char *phase, int parts, double max_s)
{
    w->phase = phase;
    w->pending = parts;
    uv_timer_start(&w->wd, wd_cb, (uint64_t)(max_s * 1000), 0);
    while (w->pending > 0)
        uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->wd);
}

static void world_up(world *w)
{
    memset(w, 0, sizeof *w);
    W = w;
    uv_loop_init(&w->loop);
    uv_timer_init(&w->loop, &w->wd);
    int fds[2];
    if (pipe(fds))
        die("pipe", SL_ERR_IO);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", SL_ERR_IO);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        /* REMOTE_BENCH_PEER_WRAP="perf record -g -o a.data" profiles node A
         * alone (perf's view of a fork+exec'd child is muddled otherwise). */
        const char *wrap = getenv("REMOTE_BENCH_PEER_WRAP");
        if (wrap && *wrap) {
            char exe[4096];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n > 0) {
                exe[n] = 0;
                execl("/bin/sh", "sh", "-c", "exec $REMOTE_BENCH_PEER_WRAP \"$0\" --peer", exe,
                      (char *)NULL);
            }
            _exit(127);
        }
        execl("/proc/self/exe", "remote_bench", "--peer", (char *)NULL);
        _exit(127);
    }
    w->child = pid;
    close(fds[1]);
    /* READY <port> <sink> <echo>, within 10 s. */
    char line[128];
    size_t len = 0;
    while (len < sizeof line - 1 && (len == 0 || line[len - 1] != '\n')) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) {
            kill(pid, SIGKILL);
            die("node A did not start", SL_ERR_TIMEOUT);
        }
        ssize_t r = read(fds[0], line + len, sizeof line - 1 - len);
        if (r <= 0) {
            kill(pid, SIGKILL);
            die("node A exited before READY", SL_ERR_IO);
        }
        len += (size_t)r;
    }
    line[len] = 0;
    close(fds[0]);
    unsigned port;
    uint64_t sl, el;
    if (sscanf(line, "READY %u %" SCNu64 " %" SCNu64, &port, &sl, &el) != 3) {
        kill(pid, SIGKILL);
        die("bad READY line from node A", SL_ERR_PROTO);
    }
    w->node = make_node(&w->loop, on_peer, w);
    int rc = sl_node_connect(w->node, "127.0.0.1", (uint16_t)port);
    if (rc)
        die("connect", rc);
    w->phase = "connect";
    uv_timer_start(&w->wd, wd_cb, 10000, 0);
    while (!w->up)
        uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->wd);
    w->sink = (sl_id){w->peer, sl};
    w->echo = (sl_id){w->peer, el};
    w->cpu0 = self_cpu();
}

static void world_down(world *w)
{
    double cpu_b = self_cpu() - w->cpu0;
    w->pending = 0;
    sl_node_stop(w->node, NULL, NULL);
    uv_timer_start(&w->wd, wd_cb, 10000, 0);
    w->phase = "shutdown";
    while (!sl_node_stopped(w->node))
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->wd);
    sl_node_del(w->node);
    uv_close((uv_handle_t *)&w->wd, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    /* Node A exits when the connection closes; give it 5 s. */
    for (int i = 0; i < 500; i++) {
        int st;
        struct rusage ru;
        pid_t r = wait4(w->child, &st, WNOHANG, &ru);
        if (r == w->child) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fprintf(stderr, "remote_bench: node A ended with status %d\n", st);
            if (verbose)
                fprintf(stderr,
                        "  CPU seconds: node B %.2f (measurement), node A %.2f (whole life, %ld "
                        "voluntary / %ld involuntary switches)\n",
                        cpu_b, cpu_s(&ru), ru.ru_nvcsw, ru.ru_nivcsw);
            return;
        }
        usleep(10000);
    }
    fprintf(stderr, "remote_bench: node A did not exit; killed\n");
    kill(w->child, SIGKILL);
    waitpid(w->child, NULL, 0);
}

/* ------------------------------------------------------------ bulk sender */

/*
 * Sends `len`-byte messages to `to` at `prio` until `limit` messages were
 * sent (or, with limit 0, until `stop` is set), then END on the same lane;
 * DONE from the sink ends its part. Backpressure: on SL_ERR_AGAIN it waits
 * for SL_TYPE_RESUME from `to`. At most `batch` sends per turn, then a GO
 * to itself, so the node can interleave I/O and other actors.
 */
typedef struct bulk {
    sl_id to;
    int prio;
    size_t len;
    uint8_t *buf;
    uint64_t limit;
    uint32_t batch;
    bool stop, blocked, go_pending, end_sent, finished;
    uint64_t sent, agains;
    uint64_t t0, t1;           /* first send, DONE received */
    uint64_t got_msgs, got_bytes;
} bulk;

static int bulk_pump(sl_actor *self, bulk *b)
{
    uint32_t i = 0;
    while (!b->blocked && !b->end_sent) {
        bool last = b->limit ? b->sent >= b->limit : b->stop;
        if (last) {
            int rc = sl_send(self, b->to, T_END, b->prio, NULL, 0);
            if (rc == SL_ERR_AGAIN) {
                b->blocked = true;
                b->agains++;
                return 0;
            }
            if (rc)
                die("bulk: END", rc);
            b->end_sent = true;
            return 0;
        }
        if (i++ >= b->batch) {
            if (!b->go_pending) {
                b->go_pending = true;
                int rc = sl_send(self, sl_self(self), T_GO, b->prio, NULL, 0);
                if (rc)
                    die("bulk: GO", rc);
            }
            return 0;
        }
        if (b->sent == 0)
            b->t0 = uv_hrtime();
        int rc = sl_send(self, b->to, T_DATA, b->prio, b->buf, b->len);
        if (rc == SL_ERR_AGAIN) {
            b->blocked = true;
            b->agains++;
            return 0;
        }
        if (rc)
            die("bulk: send", rc);
        b->sent++;
    }
    return 0;
}

static int bulk_msg(sl_actor *self, const sl_msg *m)
{
    bulk *b = sl_state(self);
    if (m->type == T_GO && sl_id_is_none(m->from)) {
        return bulk_pump(self, b); /* the kick from main */
    } else if (m->type == T_GO) {
        b->go_pending = false;
        return bulk_pump(self, b);
    } else if (m->type == SL_TYPE_RESUME && sl_id_eq(m->from, b->to)) {
        b->blocked = false;
        return bulk_pump(self, b);
    } else if (m->type == T_DONE && m->len == 16) {
        b->t1 = uv_hrtime();
        b->got_msgs = get64(m->data);
        b->got_bytes = get64(m->data + 8);
        b->finished = true;
        part_done();
    }
    return 0;
}

static const sl_behavior bulk_b = {.on_message = bulk_msg, .name = "bulk"};

/* -------------------------------------------------------------- probe */

/*
 * Open-loop latency probe: one PING (payload `len` bytes, starting with
 * uv_hrtime() at the send) to `to` at `prio` on every 1 ms tick from
 * `start` for `dur` ns, then REPORT on the same lane; REPORT_R from the
 * echo carries the one-way latencies' count, p50, p99 and max.
 */
typedef struct probe {
    sl_id to;
    int prio;
    size_t len;
    uint64_t start, end; /* absolute ns, set at GO */
    uint64_t delay, dur; /* relative, given */
    uint64_t timer;
    uint64_t sent, agains, late_ticks, max_gap, last_tick;
    bool reported;
    uint64_t n, p50, p99, max;
} probe;

static int probe_msg(sl_actor *self, const sl_msg *m)
{
    probe *p = sl_state(self);
    uint64_t now = uv_hrtime();
    if (m->type == T_GO) {
        p->start = now + p->delay;
        p->end = p->start + p->dur;
        p->last_tick = 0;
        int rc = sl_send_every(self, sl_self(self), 1, T_TICK, SL_PRIO_CRITICAL, NULL, 0, &p->timer);
        if (rc)
            die("probe: timer", rc);
    } else if (m->type == T_TICK) {
        if (p->reported || now < p->start)
            return 0;
        if (p->last_tick && now - p->last_tick > p->max_gap)
            p->max_gap = now - p->last_tick;
        if (p->last_tick && now - p->last_tick > 5000000)
            p->late_ticks++; /* node B itself stalled more than 5 ms */
        p->last_tick = now;
        if (now >= p->end) {
            sl_timer_cancel(self, p->timer);
            p->reported = true;
            int rc = sl_send(self, p->to, T_REPORT, p->prio, NULL, 0);
            if (rc)
                die("probe: REPORT", rc);
            return 0;
        }
        uint8_t buf[1024];
        memset(buf, 0x5a, p->len);
        put64(buf, now);
        int rc = sl_send(self, p->to, T_PING, p->prio, buf, p->len);
        if (rc == SL_ERR_AGAIN)
            p->agains++; /* not expected for one small message per ms */
        else if (rc)
            die("probe: PING", rc);
        else
            p->sent++;
    } else if (m->type == T_REPORT_R && m->len == 32) {
        p->n = get64(m->data);
        p->p50 = get64(m->data + 8);
        p->p99 = get64(m->data + 16);
        p->max = get64(m->data + 24);
        part_done();
    }
    return 0;
}

static const sl_behavior probe_b = {.on_message = probe_msg, .name = "probe"};

/* ------------------------------------------------------------ asker (rtt) */

typedef struct asker {
    sl_id to;
    uint64_t warmup, total, done;
    uint64_t *lat;
    uint64_t t_ask, t0, t1;
    uint8_t payload[64];
} asker;

static int asker_next(sl_actor *self, asker *a)
{
    a->t_ask = uv_hrtime();
    if (a->done == a->warmup)
        a->t0 = a->t_ask;
    uint64_t id;
    return sl_ask(self, a->to, T_ECHO, SL_PRIO_NORMAL, a->payload, sizeof a->payload, 5000, &id);
}

static int asker_msg(sl_actor *self, const sl_msg *m)
{
    asker *a = sl_state(self);
    if (m->type == T_GO)
        return asker_next(self, a);
    if (m->kind == SL_KIND_FAIL)
        die("ask failed", m->status);
    if (m->kind != SL_KIND_REPLY)
        return 0;
    uint64_t now = uv_hrtime();
    if (m->len != sizeof a->payload)
        die("echo: wrong reply", SL_ERR_PROTO);
    if (a->done >= a->warmup)
        a->lat[a->done - a->warmup] = now - a->t_ask;
    if (++a->done == a->warmup + a->total) {
        a->t1 = now;
        part_done();
        return 0;
    }
    return asker_next(self, a);
}

static const sl_behavior asker_b = {.on_message = asker_msg, .name = "asker"};

/* ------------------------------------------------------------- benches */

static sl_id spawn(world *w, const sl_behavior *b, void *state)
{
    sl_id id;
    int rc = sl_spawn(sl_node_core(w->node), b, state, NULL, &id);
    if (rc)
        die("spawn", rc);
    return id;
}

static void kick(world *w, sl_id id)
{
    int rc = sl_core_send(sl_node_core(w->node), id, T_GO, SL_PRIO_NORMAL, NULL, 0);
    if (rc)
        die("kick", rc);
}

static void bench_throughput(size_t payload, uint64_t n)
{
    world w;
    world_up(&w);
    bulk b;
    memset(&b, 0, sizeof b);
    b.to = w.sink;
    b.prio = SL_PRIO_NORMAL;
    b.len = payload;
    b.buf = malloc(payload);
    memset(b.buf, 0xab, payload);
    b.limit = n;
    b.batch = 4096;
    sl_id id = spawn(&w, &bulk_b, &b);
    kick(&w, id);
    run_phase(&w, "remote_throughput", 1, 120);
    if (b.got_msgs != n)
        fprintf(stderr, "remote_bench: sink counted %" PRIu64 " of %" PRIu64 " messages\n",
                b.got_msgs, n);
    double s = (double)(b.t1 - b.t0) / 1e9;
    printf("{\"bench\":\"remote_throughput\",\"payload\":%zu,\"msgs\":%" PRIu64
           ",\"msgs_per_s\":%.0f}\n",
           payload, n, (double)n / s);
    if (verbose)
        fprintf(stderr, "  remote_throughput/%zu: %.3f s, %" PRIu64 " x SL_ERR_AGAIN, %.1f MB/s\n",
                payload, s, b.agains, (double)b.got_bytes / s / 1e6);
    world_down(&w);
    free(b.buf);
}

static void bench_rtt(uint64_t n)
{
    world w;
    world_up(&w);
    asker a;
    memset(&a, 0, sizeof a);
    a.to = w.echo;
    a.warmup = n / 50 > 1000 ? 1000 : n / 50;
    a.total = n;
    a.lat = malloc(n * sizeof *a.lat);
    memset(a.payload, 0xcd, sizeof a.payload);
    sl_id id = spawn(&w, &asker_b, &a);
    kick(&w, id);
    run_phase(&w, "remote_rtt", 1, 120);
    qsort(a.lat, n, sizeof *a.lat, cmp_u64);
    double s = (double)(a.t1 - a.t0) / 1e9;
    printf("{\"bench\":\"remote_rtt\",\"asks\":%" PRIu64
           ",\"p50_us\":%.1f,\"p99_us\":%.1f,\"asks_per_s\":%.0f}\n",
           n, pct(a.lat, n, 50) / 1e3, pct(a.lat, n, 99) / 1e3, (double)n / s);
    if (verbose)
        fprintf(stderr, "  remote_rtt: min %.1f us, max %.1f us\n", a.lat[0] / 1e3,
                a.lat[n - 1] / 1e3);
    world_down(&w);
    free(a.lat);
}

static void probe_init(probe *p, sl_id to, int prio, size_t len, double delay_s, double dur_s)
{
    memset(p, 0, sizeof *p);
    p->to = to;
    p->prio = prio;
    p->len = len;
    p->delay = (uint64_t)(delay_s * 1e9);
    p->dur = (uint64_t)(dur_s * 1e9);
}

static void probe_note(const char *what, const probe *p)
{
    if (verbose)
        fprintf(stderr,
                "  %s: %" PRIu64 " pings, %" PRIu64 " received, p50 %.1f us, p99 %.1f us, max "
                "%.1f us; node B: longest gap between ticks %.1f ms, %" PRIu64 " gaps > 5 ms\n",
                what, p->sent, p->n, p->p50 / 1e3, p->p99 / 1e3, p->max / 1e3, p->max_gap / 1e6,
                p->late_ticks);
}

static void bench_priority(double dur)
{
    world w;
    world_up(&w);
    /* Idle: CRITICAL pings alone. */
    probe idle;
    probe_init(&idle, w.echo, SL_PRIO_CRITICAL, 64, 0.2, dur);
    kick(&w, spawn(&w, &probe_b, &idle));
    run_phase(&w, "priority_under_load (idle)", 1, dur + 30);
    probe_note("priority_under_load idle", &idle);
    /* Loaded: BACKGROUND 64 KiB bulk keeps its lane full; pings start once
     * it has run for 0.5 s, and it stops when they are done. */
    bulk b;
    memset(&b, 0, sizeof b);
    b.to = w.sink;
    b.prio = SL_PRIO_BACKGROUND;
    b.len = 64 * 1024;
    b.buf = malloc(b.len);
    memset(b.buf, 0xab, b.len);
    b.batch = 64;
    probe crit;
    probe_init(&crit, w.echo, SL_PRIO_CRITICAL, 64, 0.5, dur);
    sl_id bid = spawn(&w, &bulk_b, &b);
    sl_id pid = spawn(&w, &probe_b, &crit);
    kick(&w, bid);
    kick(&w, pid);
    run_phase(&w, "priority_under_load (probe)", 1, dur + 30);
    b.stop = true;
    sl_core_send(sl_node_core(w.node), bid, T_GO, SL_PRIO_NORMAL, NULL, 0);
    run_phase(&w, "priority_under_load (bulk end)", 1, 60);
    probe_note("priority_under_load critical", &crit);
    double s = (double)(b.t1 - b.t0) / 1e9;
    printf("{\"bench\":\"priority_under_load\",\"idle_p99_us\":%.1f,\"critical_p50_us\":%.1f,"
           "\"critical_p99_us\":%.1f,\"bulk_mb_per_s\":%.1f}\n",
           idle.p99 / 1e3, crit.p50 / 1e3, crit.p99 / 1e3, (double)b.got_bytes / s / 1e6);
    world_down(&w);
    free(b.buf);
}

static void bench_hol(double dur)
{
    world w;
    world_up(&w);
    /* X (the sink) receives 64 MiB messages back to back; Y (the echo)
     * gets 100-byte pings in the same class, NORMAL, from another actor. */
    bulk b;
    memset(&b, 0, sizeof b);
    b.to = w.sink;
    b.prio = SL_PRIO_NORMAL;
    b.len = 64u << 20;
    b.buf = malloc(b.len);
    memset(b.buf, 0xab, b.len);
    b.batch = 1;
    probe y;
    probe_init(&y, w.echo, SL_PRIO_NORMAL, 100, 0.0, dur);
    sl_id bid = spawn(&w, &bulk_b, &b);
    sl_id pid = spawn(&w, &probe_b, &y);
    kick(&w, bid);
    kick(&w, pid);
    run_phase(&w, "hol_isolation (probe)", 1, dur + 60);
    b.stop = true;
    sl_core_send(sl_node_core(w.node), bid, T_GO, SL_PRIO_NORMAL, NULL, 0);
    run_phase(&w, "hol_isolation (bulk end)", 1, 120);
    probe_note("hol_isolation Y", &y);
    double s = (double)(b.t1 - b.t0) / 1e9;
    if (verbose)
        fprintf(stderr, "  hol_isolation X: %" PRIu64 " messages of 64 MiB in %.2f s\n",
                b.got_msgs, s);
    printf("{\"bench\":\"hol_isolation\",\"p50_us\":%.1f,\"p99_us\":%.1f,\"x_mb_per_s\":%.1f}\n",
           y.p50 / 1e3, y.p99 / 1e3, (double)b.got_bytes / s / 1e6);
    world_down(&w);
    free(b.buf);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int quick = 0;
    size_t payload = 0; /* --payload N: remote_throughput with this size only */
    uint64_t msgs = 0;  /* --msgs N: remote_throughput count (profiling) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--peer") == 0)
            return peer_main();
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--payload") == 0 && i + 1 < argc)
            payload = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--msgs") == 0 && i + 1 < argc)
            msgs = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--list") == 0) {
            puts("remote_throughput\nremote_rtt\npriority_under_load\nhol_isolation");
            return 0;
        } else
            only = argv[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (!only || strcmp(only, "remote_throughput") == 0) {
        if (!payload || payload == 64)
            bench_throughput(64, msgs ? msgs : quick ? 100000 : 1000000);
        if (!payload || payload == 1024)
            bench_throughput(1024, msgs ? msgs : quick ? 20000 : 200000);
    }
    if (!only || strcmp(only, "remote_rtt") == 0)
        bench_rtt(quick ? 2000 : 50000);
    if (!only || strcmp(only, "priority_under_load") == 0)
        bench_priority(quick ? 0.5 : 3.0);
    if (!only || strcmp(only, "hol_isolation") == 0)
        bench_hol(quick ? 1.0 : 4.0);
    return 0;
}
