/*
 * browser_demo.c: the native half of act 3 of `make demo`: a live cluster
 * that browser tabs join. One program, two roles (two processes):
 *
 *   browser_demo gateway --certs DIR --origin ORIGIN --token TOKEN
 *                        [--config-out FILE] [--seconds N] [--port P]
 *   browser_demo hub --certs DIR --connect 127.0.0.1:PORT [--parent PID]
 *
 * examples/demo.sh makes DIR (a throwaway cluster CA, and a certificate per
 * node: gateway, hub) and starts a tiny static web server for the page
 * (examples/web/) on ORIGIN, then runs the gateway role, which starts the
 * hub as its child process (uv_spawn of this same program).
 *
 *   browser tab --WebTransport--> gateway node --QUIC, mutual TLS--> hub node
 *   (wasm agents)                 native-1, native-2                 dispatcher
 *
 * The gateway node listens on 127.0.0.1 for nodes (QUIC, mutual TLS against
 * the cluster CA) and for browsers (WebTransport on the same UDP port: path
 * /starling, a random token, Origin must be the page's). Its certificate is
 * an ECDSA P-256 node certificate valid for 1 day, so browsers can pin it by
 * its SHA-256 (serverCertificateHashes) and nodes verify it against the CA.
 * It runs two native worker agents and a "registrar" agent: when the hub
 * connects, the registrar finds the hub's "dispatcher" by name, exposes it
 * to browser nodes (sl_node_expose), tells the native workers where it is,
 * writes the page's configuration (port, token, certificate hash) to FILE
 * and prints the URL to open.
 *
 * The hub node runs the dispatcher. Workers join it (an ask, JOIN); it
 * monitors each and hands them tasks as asks with a deadline and a
 * priority, the most urgent first, at most WINDOW in flight per worker,
 * whether the worker is native or in a browser tab: a browser worker's
 * tasks are relayed by the gateway (hub -> gateway -> tab, and back). Every
 * answer is checked (the hub computes the same FNV-1a chain). Workers send
 * telemetry as unreliable messages (QUIC/WebTransport datagrams). Pages
 * subscribe a viewer agent, to which the dispatcher sends a log of what it
 * does (reliable, LOW) and the cluster's state twice a second (a datagram
 * when it fits). When a tab closes, its session ends, the gateway's route
 * to that browser node goes, and the hub gets DOWN(noconnection) for its
 * workers; their asks fail with SL_ERR_NOCONN and those tasks go to others.
 *
 * The end: after --seconds, or on SIGINT/SIGTERM (Ctrl-C), the gateway tells
 * the hub to stop (SIGTERM; the hub prints its summary), waits for it, stops
 * its own node (tabs see their session close) and exits 0. No orphans: the
 * hub dies with the gateway (PR_SET_PDEATHSIG), stops when it loses the
 * gateway, and after HUB_LIFETIME_S in any case; the gateway kills it after
 * REAP_MS if it does not exit.
 *
 * Only the public headers (<starling/...>) and msgpack-c through
 * <starling/pack.h>; libuv for the process, timers and signals.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <starling/node.h>
#include <starling/pack.h>

/* ------------------------------------------------------------ the script */

#define N_NATIVE 2             /* native workers on the gateway node */
#define WINDOW 2               /* task asks in flight per worker */
#define MAX_JOBS 8             /* tasks a native worker holds (> WINDOW) */
#define MAX_WORKERS 32         /* workers the dispatcher knows (down ones included) */
#define MAX_VIEWERS 16         /* pages watching */
#define MAX_LIVE 512           /* queued + in-flight tasks */
#define MAX_RATE 20            /* tasks per second, the page's slider */
#define DEFAULT_RATE 3         /* tasks per second at start */
#define MAX_BURST 50           /* tasks per burst */
#define TASK_DEADLINE_MS 5000  /* the deadline of every task ask */
#define JOIN_DEADLINE_MS 3000  /* whereis, join */
#define TICK_MS 100            /* the dispatcher's clock: generation, dispatch */
#define STATE_EVERY 5          /* ticks between state broadcasts (500 ms) */
#define STATUS_EVERY_MS 10000  /* a status line in the terminal */
#define TELEMETRY_EVERY_MS 250 /* native workers' telemetry */
#define IDLE_TIMEOUT_MS 3000   /* QUIC idle timeout: also how fast a closed tab is noticed */
#define KEEPALIVE_MS 1000      /* PING when idle this long */
#define STARTUP_MS 10000       /* the hub must be found by then */
#define REAP_MS 3000           /* the hub gets this long to exit */
#define DEFAULT_SECONDS 300    /* how long the live cluster runs */
#define MAX_SECONDS 86400      /* --seconds at most */
#define HUB_LIFETIME_S 90000   /* a hub exits after this whatever happens */
#define WORK_ROUNDS 100000     /* the FNV-1a chain a task computes */
#define NAME_MAX_LEN 32        /* a worker's name, bytes */

/* Message types (sl_msg.type). The page (examples/web/app.mjs) uses the
 * same numbers. */
enum {
    T_JOIN = 1,      /* worker -> dispatcher, ask [name]; reply [name, kind, window] */
    T_TASK = 2,      /* dispatcher -> worker, ask [task, work_ms]; reply [task, name, result] */
    T_TELEMETRY = 3, /* worker -> dispatcher, unreliable [name, seq, busy, done] */
    T_SUBSCRIBE = 4, /* viewer -> dispatcher, send: log and state follow */
    T_EVENT = 5,     /* dispatcher -> viewer: one log entry (a map) */
    T_STATE = 6,     /* dispatcher -> viewer: the cluster's state (a map) */
    T_RATE = 7,      /* page -> dispatcher: [tasks per second] */
    T_BURST = 8,     /* page -> dispatcher: [n]: n tasks at once */
    T_PEER = 100,    /* on_peer -> local agent: [node, up] */
    T_TICK,          /* periodic self-timer */
    T_DONE,          /* native worker -> itself: a task's time is up (corr = timer) */
    T_DISPATCHER     /* registrar -> native worker: [node, local] of the dispatcher */
};

/* The priority of task n: per 10 tasks 1 CRITICAL, 2 HIGH, 4 NORMAL, 2 LOW, 1 BACKGROUND. */
static int task_prio(uint64_t n)
{
    static const int pattern[10] = {
        SL_PRIO_NORMAL, SL_PRIO_HIGH, SL_PRIO_LOW,  SL_PRIO_NORMAL, SL_PRIO_CRITICAL,
        SL_PRIO_NORMAL, SL_PRIO_LOW,  SL_PRIO_HIGH, SL_PRIO_NORMAL, SL_PRIO_BACKGROUND};
    return pattern[n % 10];
}

/* How long task n "computes": 300..900 ms. */
static uint32_t task_work_ms(uint64_t n)
{
    return 300 + (uint32_t)((n * 37) % 13) * 50;
}

/* The result of task n: FNV-1a of "task-<n>", then WORK_ROUNDS rounds that
 * feed the hash its own 4 bytes. The page computes the same in JavaScript;
 * the dispatcher checks every answer. */
static uint32_t task_result(uint64_t n)
{
    char s[32];
    int len = snprintf(s, sizeof s, "task-%" PRIu64, n);
    uint32_t h = 2166136261u;
    for (int i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    for (int r = 0; r < WORK_ROUNDS; r++) {
        uint32_t x = h;
        for (int j = 0; j < 4; j++) {
            h ^= (x >> (8 * j)) & 0xffu;
            h *= 16777619u;
        }
    }
    return h;
}

/* ------------------------------------------------------- shared helpers */

static const char *role = ""; /* "gateway" or "hub": the column after the time */

/* One line of narration: wall-clock time, the process's role, the text. One
 * write per line, so the two processes' lines never mix. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[1024];
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    time_t sec = (time_t)tv.tv_sec;
    struct tm tm;
    localtime_r(&sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03d %-8s", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), role);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stdout);
    fflush(stdout);
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

/* Payload builders: the caller checks sl_pack_error() once and calls sl_pack_fini(). */
static void out_array(sl_pack *p, uint32_t n)
{
    sl_pack_init(p, NULL);
    msgpack_pack_array(&p->pk, n);
}

static void kv_str(sl_pack *p, const char *key, const char *val)
{
    sl_pack_str(p, key);
    sl_pack_str(p, val);
}

static void kv_u64(sl_pack *p, const char *key, uint64_t val)
{
    sl_pack_str(p, key);
    msgpack_pack_uint64(&p->pk, val);
}

/* A name from a payload: 1..NAME_MAX_LEN printable ASCII characters. */
static bool copy_name(const msgpack_object *arr, uint32_t i, char out[NAME_MAX_LEN + 1])
{
    const char *s;
    size_t len;
    if (sl_msgpack_at_str(arr, i, &s, &len) != SL_OK || len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t k = 0; k < len; k++)
        if (s[k] < 0x20 || s[k] > 0x7e || s[k] == '"' || s[k] == '\\')
            return false;
    memcpy(out, s, len);
    out[len] = 0;
    return true;
}

/* Tell a local agent about a peer node (from on_peer, outside any actor). */
static void notify_peer(sl_node *node, sl_id agent, uint64_t peer, bool up)
{
    sl_pack p;
    out_array(&p, 2);
    msgpack_pack_uint64(&p.pk, peer);
    if (up)
        msgpack_pack_true(&p.pk);
    else
        msgpack_pack_false(&p.pk);
    if (sl_pack_error(&p) == SL_OK)
        (void)sl_core_send(sl_node_core(node), agent, T_PEER, SL_PRIO_CRITICAL, sl_pack_data(&p),
                           sl_pack_len(&p));
    sl_pack_fini(&p);
}

static bool read_peer(const sl_msg *m, uint64_t *node, bool *up)
{
    sl_unpacked u;
    bool ok = in_array(&u, m, 2) == SL_OK && sl_msgpack_at_uint64(&u.root, 0, node) == SL_OK &&
              sl_msgpack_at_bool(&u.root, 1, up) == SL_OK;
    sl_unpacked_fini(&u);
    return ok;
}

/* Once a process is stopping, a second SIGINT/SIGTERM (the gateway's, after
 * a Ctrl-C that reached both processes) must not kill it mid-summary: closing
 * our uv_signal handles restores the default action, so block them first. */
static void block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Node-to-node TLS: this node's certificate from DIR, peers verified
 * against the cluster CA (the node forces mutual TLS). */
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
    ts->tls.verify = SL_VERIFY_CA;
    ts->idle_timeout_ms = IDLE_TIMEOUT_MS;
    ts->keepalive_ms = KEEPALIVE_MS;
}

/* ===================================================================
 * Native workers (on the gateway node)
 * =================================================================== */

static sl_id registrar_id(void);

typedef struct job {
    sl_req req;     /* the ask to answer (req.corr 0 = free) */
    uint64_t task;  /* task number */
    uint64_t timer; /* the sl_send_after() timer that ends it */
} job;

typedef struct nworker {
    const char *name;
    sl_id dispatcher;  /* once the registrar told us */
    uint64_t join_ask; /* JOIN in flight */
    uint64_t mon;      /* monitor of the dispatcher */
    bool joined;
    int join_tries;
    job jobs[MAX_JOBS];
    uint64_t done, seq; /* tasks answered, telemetry sent */
} nworker;

static int nworker_busy(const nworker *w)
{
    int n = 0;
    for (int i = 0; i < MAX_JOBS; i++)
        n += w->jobs[i].req.corr != 0;
    return n;
}

static void nworker_join(sl_actor *self, nworker *w)
{
    sl_pack p;
    out_array(&p, 1);
    sl_pack_str(&p, w->name);
    w->join_tries++;
    if (sl_pack_error(&p) != SL_OK ||
        sl_ask(self, w->dispatcher, T_JOIN, SL_PRIO_HIGH, sl_pack_data(&p), sl_pack_len(&p),
               JOIN_DEADLINE_MS, &w->join_ask) != SL_OK)
        w->join_ask = 0; /* the tick retries */
    sl_pack_fini(&p);
}

static int nworker_task(sl_actor *self, nworker *w, const sl_msg *m)
{
    sl_unpacked u;
    uint64_t task = 0, work = 0;
    int rc = in_array(&u, m, 2);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 0, &task);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 1, &work);
    sl_unpacked_fini(&u);
    if (rc == SL_OK && work > 10000)
        rc = SL_ERR_INVAL;
    int slot = -1;
    for (int i = 0; i < MAX_JOBS && slot < 0; i++)
        if (!w->jobs[i].req.corr)
            slot = i;
    if (rc == SL_OK && slot < 0)
        rc = SL_ERR_LIMIT;
    job j = {.req = sl_req_of(m), .task = task};
    /* "Compute" on a timer: the loop stays free for other messages. */
    if (rc == SL_OK)
        rc = sl_send_after(self, sl_self(self), (uint32_t)work, T_DONE, SL_PRIO_NORMAL, NULL, 0,
                           &j.timer);
    if (rc != SL_OK) /* a bad or excess request fails that ask, not the worker */
        return sl_reply_error(self, sl_req_of(m), rc) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    w->jobs[slot] = j;
    return 0;
}

static void nworker_done(sl_actor *self, nworker *w, uint64_t timer)
{
    for (int i = 0; i < MAX_JOBS; i++) {
        job *j = &w->jobs[i];
        if (!j->req.corr || j->timer != timer)
            continue;
        sl_pack p;
        out_array(&p, 3);
        msgpack_pack_uint64(&p.pk, j->task);
        sl_pack_str(&p, w->name);
        msgpack_pack_uint64(&p.pk, task_result(j->task));
        if (sl_pack_error(&p) == SL_OK &&
            sl_reply(self, j->req, T_TASK, sl_pack_data(&p), sl_pack_len(&p)) == SL_OK)
            w->done++; /* else the asker gave up (SL_ERR_CANCELLED) or is gone */
        sl_pack_fini(&p);
        memset(j, 0, sizeof *j);
        return;
    }
}

static void nworker_telemetry(sl_actor *self, nworker *w)
{
    sl_pack p;
    out_array(&p, 4);
    sl_pack_str(&p, w->name);
    msgpack_pack_uint64(&p.pk, w->seq + 1);
    msgpack_pack_uint64(&p.pk, (uint64_t)nworker_busy(w));
    msgpack_pack_uint64(&p.pk, w->done);
    /* One datagram, never fragmented: it must fit the current maximum. */
    if (sl_pack_error(&p) == SL_OK &&
        sl_pack_len(&p) <= sl_unreliable_max(sl_actor_core(self), w->dispatcher) &&
        sl_send_unreliable(self, w->dispatcher, T_TELEMETRY, SL_PRIO_LOW, sl_pack_data(&p),
                           sl_pack_len(&p)) == SL_OK)
        w->seq++;
    sl_pack_fini(&p);
}

static int nworker_message(sl_actor *self, const sl_msg *m)
{
    nworker *w = sl_state(self);
    switch (m->kind) {
    case SL_KIND_SEND:
        if (m->type == T_DISPATCHER && sl_id_eq(m->from, registrar_id())) {
            sl_unpacked u;
            sl_id d = SL_ID_NONE;
            if (in_array(&u, m, 2) == SL_OK && sl_msgpack_at_uint64(&u.root, 0, &d.node) == SL_OK &&
                sl_msgpack_at_uint64(&u.root, 1, &d.local) == SL_OK) {
                w->dispatcher = d;
                w->joined = false;
                w->join_tries = 0;
                if (w->mon)
                    (void)sl_demonitor(self, w->mon);
                if (sl_monitor(self, d, &w->mon) != SL_OK)
                    w->mon = 0;
                nworker_join(self, w);
            }
            sl_unpacked_fini(&u);
        } else if (m->type == T_DONE) {
            nworker_done(self, w, m->corr);
        } else if (m->type == T_TICK) {
            if (w->joined)
                nworker_telemetry(self, w);
            else if (!sl_id_is_none(w->dispatcher) && !w->join_ask && w->join_tries < 5)
                nworker_join(self, w);
        }
        return 0;
    case SL_KIND_REPLY:
        if (m->corr == w->join_ask && w->join_ask) {
            w->join_ask = 0;
            w->joined = true;
        }
        return 0;
    case SL_KIND_FAIL:
        if (m->corr == w->join_ask)
            w->join_ask = 0;
        return 0;
    case SL_KIND_ASK:
        if (m->type == T_TASK)
            return nworker_task(self, w, m);
        return sl_reply_error(self, sl_req_of(m), SL_ERR_INVAL) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    case SL_KIND_CANCEL: /* the ask's deadline passed, or it was cancelled */
        for (int i = 0; i < MAX_JOBS; i++)
            if (w->jobs[i].req.corr == m->corr && sl_id_eq(w->jobs[i].req.asker, m->from)) {
                sl_timer_cancel(self, w->jobs[i].timer);
                memset(&w->jobs[i], 0, sizeof w->jobs[i]);
            }
        return 0;
    case SL_KIND_DOWN:
        if (m->corr == w->mon) { /* the dispatcher is gone: wait for the next one */
            w->mon = 0;
            w->joined = false;
            w->dispatcher = SL_ID_NONE;
        }
        return 0;
    default:
        return 0;
    }
}

static int nworker_start(sl_actor *self, void *arg)
{
    nworker *w = sl_state(self);
    w->name = arg;
    return sl_send_every(self, sl_self(self), TELEMETRY_EVERY_MS, T_TICK, SL_PRIO_LOW, NULL, 0,
                         NULL);
}

static const sl_behavior nworker_behavior = {
    .on_start = nworker_start,
    .on_message = nworker_message,
    .state_size = sizeof(nworker),
    .name = "native-worker",
};

/* ===================================================================
 * The gateway role
 * =================================================================== */

static const char *const native_names[N_NATIVE] = {"native-1", "native-2"};

static struct gateway {
    uv_loop_t loop;
    sl_node *node;
    sl_id registrar;
    sl_id natives[N_NATIVE];
    uv_process_t hub;
    bool hub_running;
    int hub_pid;
    int64_t hub_status;
    int hub_signal;
    uv_timer_t deadline, startup, reap;
    uv_signal_t sigint, sigterm;
    bool finishing, handles_closed, ready, failed, interrupted, timed_out;
    uint16_t port;
    const char *origin, *token, *config_out, *certs;
    char hash[65];
    unsigned seconds;
    int browsers_now, browsers_seen;
} G;

static void gw_finish(const char *why);

/* Who may tell the native workers where the dispatcher is. */
static sl_id registrar_id(void)
{
    return G.registrar;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

/* The page's configuration, written atomically (a temporary file, then
 * rename) so the web server never serves half of it. */
static int write_config(uint64_t hub)
{
    if (!G.config_out)
        return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", G.config_out);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"url\": \"https://127.0.0.1:%u/starling\", \"port\": %u, \"token\": \"%s\",\n"
            " \"certificateHash\": \"%s\", \"gateway\": \"%016" PRIx64 "\", \"hub\": \"%016" PRIx64
            "\",\n \"seconds\": %u}\n",
            G.port, G.port, G.token, G.hash, sl_node_id(G.node), hub, G.seconds);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, G.config_out) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

typedef struct registrar {
    uint64_t hub;         /* the hub's node id, once connected */
    uint64_t whereis_ask; /* where is "dispatcher"? */
    sl_id dispatcher;
} registrar;

static void tell_natives(sl_actor *self, sl_id d)
{
    sl_pack p;
    out_array(&p, 2);
    msgpack_pack_uint64(&p.pk, d.node);
    msgpack_pack_uint64(&p.pk, d.local);
    if (sl_pack_error(&p) == SL_OK)
        for (int k = 0; k < N_NATIVE; k++)
            (void)sl_send(self, G.natives[k], T_DISPATCHER, SL_PRIO_HIGH, sl_pack_data(&p),
                          sl_pack_len(&p));
    sl_pack_fini(&p);
}

/* The dispatcher was found: expose it, point the native workers at it,
 * publish the page's configuration and tell the person where to look. */
static void gw_ready(sl_actor *self, registrar *r)
{
    char ids[SL_ID_STRLEN];
    sl_id_format(r->dispatcher, ids, sizeof ids);
    int rc = sl_node_expose(G.node, "dispatcher", r->dispatcher);
    if (rc != SL_OK) {
        say("cannot expose the dispatcher: %s", sl_strerror(rc));
        G.failed = true;
        gw_finish("setup failed");
        return;
    }
    say("found \"dispatcher\" on the hub (%s) and exposed it to browser nodes", ids);
    tell_natives(self, r->dispatcher);
    say("%s and %s (native worker agents on this node) join the dispatcher", native_names[0],
        native_names[1]);
    if (write_config(r->hub) != 0) {
        say("cannot write the page's configuration to %s", G.config_out);
        G.failed = true;
        gw_finish("setup failed");
        return;
    }
    G.ready = true;
    uv_timer_stop(&G.startup);
    char url[300];
    snprintf(url, sizeof url, "%s/", G.origin);
    printf("\n"
           "  ====================================================================\n"
           "    Open  %s\n"
           "    in Chromium or Chrome (WebTransport). Every tab joins the cluster:\n"
           "    its agents work for the dispatcher next to the native ones.\n"
           "    Running for %u s (DEMO_BROWSER_SECONDS), or until Ctrl-C.\n"
           "  ====================================================================\n\n",
           url, G.seconds);
    fflush(stdout);
    say("the page URL: %s", url);
}

static int registrar_message(sl_actor *self, const sl_msg *m)
{
    registrar *r = sl_state(self);
    uint64_t node;
    bool up;
    if (m->kind == SL_KIND_SEND && m->type == T_PEER && read_peer(m, &node, &up)) {
        if (!r->hub && up) {
            /* The first node up is the hub we started: nobody else has the
             * token yet (the page's configuration is not written). */
            r->hub = node;
            say("the hub node %016" PRIx64 " connected (QUIC, its certificate verified by the "
                "cluster CA)",
                node);
            if (sl_ask_whereis(self, node, "dispatcher", JOIN_DEADLINE_MS, &r->whereis_ask) !=
                SL_OK) {
                G.failed = true;
                gw_finish("setup failed");
            }
        } else if (node == r->hub && !up) {
            /* Its process's exit says whether that was a failure. */
            say("the hub node %016" PRIx64 " is gone", node);
        } else if (node != r->hub) {
            G.browsers_now += up ? 1 : -1;
            G.browsers_seen += up;
            say("browser node %016" PRIx64 " %s; %d browser node(s) now", node,
                up ? "joined through this gateway (a WebTransport session)"
                   : "left: its WebTransport session ended",
                G.browsers_now);
        }
        return 0;
    }
    if (m->kind == SL_KIND_REPLY && m->corr == r->whereis_ask && r->whereis_ask) {
        r->whereis_ask = 0;
        if (sl_whereis_reply(m, &r->dispatcher) == SL_OK)
            gw_ready(self, r);
        return 0;
    }
    if (m->kind == SL_KIND_FAIL && m->corr == r->whereis_ask && r->whereis_ask) {
        r->whereis_ask = 0;
        say("cannot find \"dispatcher\" on the hub: %s", sl_err_name(m->status));
        G.failed = true;
        gw_finish("setup failed");
    }
    return 0;
}

static const sl_behavior registrar_behavior = {
    .on_message = registrar_message,
    .state_size = sizeof(registrar),
    .name = "registrar",
};

static void gw_on_peer(sl_node *node, uint64_t peer, bool up, void *ud)
{
    (void)ud;
    notify_peer(node, G.registrar, peer, up);
}

static void gw_refused(const char *path, const char *origin, int status, const char *reason,
                       void *ud)
{
    (void)ud;
    say("refused a WebTransport session (%d, %s): path %s, origin %s", status, reason, path,
        *origin ? origin : "(none)");
}

static void gw_maybe_close_all(void)
{
    if (G.handles_closed || !sl_node_stopped(G.node) || G.hub_running)
        return;
    G.handles_closed = true;
    block_stop_signals();
    uv_close((uv_handle_t *)&G.deadline, NULL);
    uv_close((uv_handle_t *)&G.startup, NULL);
    uv_close((uv_handle_t *)&G.reap, NULL);
    uv_close((uv_handle_t *)&G.sigint, NULL);
    uv_close((uv_handle_t *)&G.sigterm, NULL);
}

static void gw_node_stopped(sl_node *node, void *ud)
{
    (void)node;
    (void)ud;
    gw_maybe_close_all();
}

static void gw_on_hub_exit(uv_process_t *h, int64_t status, int signal)
{
    G.hub_running = false;
    G.hub_status = status;
    G.hub_signal = signal;
    uv_close((uv_handle_t *)h, NULL);
    uv_timer_stop(&G.reap);
    if (signal)
        say("the hub process (pid %d) ended by signal %d", G.hub_pid, signal);
    else
        say("the hub process (pid %d) exited with status %" PRId64, G.hub_pid, status);
    if (!G.finishing) {
        /* The hub exits 0 only when told to stop: Ctrl-C reached it before
         * us (the whole process group gets SIGINT). Anything else is a
         * failure. */
        if (signal || status != 0)
            G.failed = true;
        else
            G.interrupted = true;
        gw_finish(G.failed ? "the hub process ended" : "the hub was stopped");
        return;
    }
    /* The hub is done: now our node (browser sessions close, tabs see it). */
    sl_node_stop(G.node, gw_node_stopped, NULL);
}

static void gw_on_reap(uv_timer_t *t)
{
    (void)t;
    if (G.hub_running) {
        say("the hub did not exit within %d ms: SIGKILL", REAP_MS);
        uv_process_kill(&G.hub, SIGKILL);
        G.failed = true;
    }
}

/* The end, whatever the reason: the hub first (it prints its summary), then
 * this node. */
static void gw_finish(const char *why)
{
    if (G.finishing)
        return;
    G.finishing = true;
    uv_timer_stop(&G.deadline);
    uv_timer_stop(&G.startup);
    say("stopping (%s): the hub first, then this gateway", why);
    if (G.hub_running) {
        uv_process_kill(&G.hub, SIGTERM);
        uv_timer_start(&G.reap, gw_on_reap, REAP_MS, 0);
    } else {
        sl_node_stop(G.node, gw_node_stopped, NULL);
    }
}

static void gw_on_deadline(uv_timer_t *t)
{
    (void)t;
    G.timed_out = true;
    gw_finish("the time limit was reached");
}

static void gw_on_startup(uv_timer_t *t)
{
    (void)t;
    if (G.ready)
        return;
    say("gave up: the hub's dispatcher was not found within %d s (see the messages above)",
        STARTUP_MS / 1000);
    G.failed = true;
    gw_finish("setup failed");
}

static void gw_on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    G.interrupted = true;
    gw_finish(signum == SIGINT ? "Ctrl-C" : "SIGTERM");
}

static int gw_spawn_hub(const char *exe)
{
    char portarg[32], parent[32];
    snprintf(portarg, sizeof portarg, "127.0.0.1:%u", G.port);
    snprintf(parent, sizeof parent, "%d", (int)uv_os_getpid());
    char *args[] = {(char *)exe, "hub",  "--certs", (char *)G.certs, "--connect", portarg,
                    "--parent",  parent, NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                  {.flags = UV_INHERIT_FD, .data.fd = 1},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .file = exe, .args = args, .exit_cb = gw_on_hub_exit, .stdio_count = 3, .stdio = io};
    int rc = uv_spawn(&G.loop, &G.hub, &o);
    if (rc) {
        fprintf(stderr, "cannot start the hub (%s): %s\n", exe, uv_strerror(rc));
        return rc;
    }
    G.hub_running = true;
    G.hub_pid = G.hub.pid;
    return 0;
}

static void gw_summary(void)
{
    sl_transport_stats ts = {0};
    sl_transport *t = sl_node_transport(G.node);
    if (t)
        (void)sl_transport_stats_get(t, &ts);
    printf("\nGateway summary\n");
    printf("  browser nodes  %d joined through WebTransport (%" PRIu64
           " sessions accepted, %" PRIu64 " refused)\n",
           G.browsers_seen, ts.wt_sessions, ts.wt_refused);
    printf("  hub            %s\n", G.hub_signal   ? "ended by a signal"
                                    : G.hub_status ? "exited with an error"
                                                   : "exited cleanly");
    printf("  ended by       %s\n", G.failed        ? "a failure (see above)"
                                    : G.interrupted ? "a signal (Ctrl-C or SIGTERM)"
                                    : G.timed_out   ? "the time limit"
                                                    : "?");
    fflush(stdout);
}

static int gateway_main(void)
{
#ifdef __linux__
    /* If the demo's shell dies, whatever the way, stop cleanly (SIGTERM). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    static char cert[4096], key[4096], ca[4096];
    char exe[4096];
    size_t exe_len = sizeof exe;
    if (uv_exepath(exe, &exe_len) != 0) {
        fprintf(stderr, "cannot find this program's path\n");
        return 1;
    }
    uv_loop_init(&G.loop);
    const char *origins[1] = {G.origin};
    sl_webtransport_settings wt = {0};
    wt.path = "/starling";
    wt.health_path = "/health";
    wt.token = G.token;
    wt.origins = origins; /* only the demo's page may open sessions */
    wt.n_origins = 1;
    wt.on_refused = gw_refused;
    sl_transport_settings ts;
    tls_settings(&ts, G.certs, "gateway", cert, key, ca, sizeof cert);
    ts.webtransport = &wt;
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.loop = &G.loop;
    ns.quic = &ts;
    ns.on_peer = gw_on_peer;
    int rc = sl_node_new(&ns, &G.node);
    if (rc) {
        fprintf(stderr, "cannot create the gateway node: %s (certificates in %s?)\n",
                sl_strerror(rc), G.certs);
        uv_loop_close(&G.loop);
        return 1;
    }
    uv_timer_init(&G.loop, &G.deadline);
    uv_timer_init(&G.loop, &G.startup);
    uv_timer_init(&G.loop, &G.reap);
    uv_signal_init(&G.loop, &G.sigint);
    uv_signal_init(&G.loop, &G.sigterm);
    uv_signal_start(&G.sigint, gw_on_signal, SIGINT);
    uv_signal_start(&G.sigterm, gw_on_signal, SIGTERM);

    sl_core *core = sl_node_core(G.node);
    sl_spawn_opts opts;
    sl_spawn_opts_default(&opts);
    uint8_t h[32];
    rc = sl_node_listen(G.node, "127.0.0.1", G.port);
    if (rc == SL_OK)
        rc = sl_node_port(G.node, &G.port);
    if (rc == SL_OK)
        rc = sl_transport_cert_sha256(sl_node_transport(G.node), h);
    if (rc == SL_OK) {
        hex_of(h, sizeof h, G.hash);
        rc = sl_spawn(core, &registrar_behavior, NULL, &opts, &G.registrar);
    }
    for (int k = 0; k < N_NATIVE && rc == SL_OK; k++) {
        opts.register_as = native_names[k];
        rc = sl_spawn(core, &nworker_behavior, (void *)native_names[k], &opts, &G.natives[k]);
    }
    if (rc == SL_OK) {
        say("gateway node %016" PRIx64 " listening on 127.0.0.1:%u (UDP)", sl_node_id(G.node),
            G.port);
        say("    nodes: QUIC, TLS 1.3, mutual, verified by the cluster CA");
        say("    browsers: WebTransport at /starling on the same port; token required, origin %s",
            G.origin);
        say("    certificate: ECDSA P-256, valid 1 day; browsers pin its SHA-256 %.16s...", G.hash);
        say("    idle timeout %d ms: a closed tab is noticed when its connection idles out "
            "(Chromium sends no close)",
            IDLE_TIMEOUT_MS);
        rc = gw_spawn_hub(exe);
        if (rc == SL_OK)
            say("started the hub node process (pid %d); it connects here", G.hub_pid);
    } else {
        fprintf(stderr, "gateway setup failed: %s\n", sl_strerror(rc));
    }
    uv_timer_start(&G.startup, gw_on_startup, STARTUP_MS, 0);
    uv_timer_start(&G.deadline, gw_on_deadline, (uint64_t)G.seconds * 1000, 0);
    if (rc) {
        G.failed = true;
        gw_finish("setup failed");
    }
    sl_node_run(G.node); /* until the hub exited, the node stopped, our handles closed */
    gw_summary();
    sl_node_del(G.node);
    uv_run(&G.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&G.loop) != 0) {
        fprintf(stderr, "the gateway's loop did not close clean\n");
        return 1;
    }
    if (G.config_out)
        remove(G.config_out);
    return G.failed || G.hub_signal || G.hub_status ? 1 : 0;
}

/* ===================================================================
 * The hub role: the dispatcher
 * =================================================================== */

enum { TK_FREE = 0, TK_QUEUED, TK_SENT };

typedef struct tk {
    uint64_t no; /* task number, from 1 */
    int prio;
    uint32_t work_ms;
    int state;    /* TK_* */
    int on;       /* worker index while sent */
    uint64_t ask; /* the ask in flight */
    uint64_t sent_ns;
    bool reassigned; /* failed once on a lost worker */
} tk;

typedef struct wk {
    sl_id id;
    char name[NAME_MAX_LEN + 1];
    bool browser; /* reached through the gateway's route, not on the gateway node */
    bool up;
    bool unreachable; /* a send said SL_ERR_NOCONN: skip until DOWN */
    uint64_t mon;
    int inflight;
    uint64_t done, telemetry, seq, busy, tdone;
    int lost; /* asks that failed because it or its node went away */
    uint64_t last_assign;
    uint64_t left_ns;
} wk;

typedef struct viewer {
    sl_id id;
    uint64_t mon;
} viewer;

typedef struct dispatcher {
    tk t[MAX_LIVE];
    wk w[MAX_WORKERS];
    int nw;
    viewer v[MAX_VIEWERS];
    int nv;
    uint64_t gateway; /* the gateway node: the only one we connect to */
    uint64_t next_no, assigns;
    double credit; /* tasks owed to the rate */
    unsigned rate;
    unsigned ticks;
    bool retry_dispatch;
    /* counters */
    uint64_t created, done, verified, wrong, reassigned, failed, telemetry, stray, events_dropped;
    uint64_t done_prio[SL_PRIO_COUNT];
    uint64_t last_status_ns, last_status_done;
} dispatcher;

static struct hub {
    sl_node *node;
    sl_id dispatcher;
    bool stopping, gateway_lost, deadline_fired;
    uint64_t t0;
} H;

static double hub_ms(void)
{
    return (double)(uv_hrtime() - H.t0) / 1e6;
}

static const char *prio_lower(int prio)
{
    static const char *const names[SL_PRIO_COUNT] = {"critical", "high", "normal", "low",
                                                     "background"};
    return prio >= 0 && prio < SL_PRIO_COUNT ? names[prio] : "?";
}

/* --- to the viewers */

/* One log entry for every viewer: {t, ev, text, [prio, worker, task]}. */
static void emit(sl_actor *self, dispatcher *d, const char *ev, int prio, const wk *w,
                 uint64_t task, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void emit(sl_actor *self, dispatcher *d, const char *ev, int prio, const wk *w,
                 uint64_t task, const char *fmt, ...)
{
    if (d->nv == 0)
        return;
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_pack_map(&p.pk, 3 + (prio >= 0) + (w != NULL) * 2 + (task != 0));
    kv_u64(&p, "t", (uint64_t)hub_ms());
    kv_str(&p, "ev", ev);
    kv_str(&p, "text", text);
    if (prio >= 0)
        kv_str(&p, "prio", prio_lower(prio));
    if (w) {
        kv_str(&p, "worker", w->name);
        kv_str(&p, "where", w->browser ? "browser" : "native");
    }
    if (task)
        kv_u64(&p, "task", task);
    if (sl_pack_error(&p) == SL_OK)
        for (int i = 0; i < d->nv; i++)
            /* LOW: the log never delays tasks. A full lane drops the entry. */
            if (sl_send(self, d->v[i].id, T_EVENT, SL_PRIO_LOW, sl_pack_data(&p),
                        sl_pack_len(&p)) != SL_OK)
                d->events_dropped++;
    sl_pack_fini(&p);
}

static int queued_count(const dispatcher *d)
{
    int n = 0;
    for (int i = 0; i < MAX_LIVE; i++)
        n += d->t[i].state == TK_QUEUED;
    return n;
}

static int inflight_count(const dispatcher *d)
{
    int n = 0;
    for (int i = 0; i < MAX_LIVE; i++)
        n += d->t[i].state == TK_SENT;
    return n;
}

/* The cluster's state for every viewer: a datagram when it fits ("latest
 * value": a lost one is replaced 500 ms later), a LOW message otherwise. */
static void broadcast_state(sl_actor *self, dispatcher *d)
{
    if (d->nv == 0)
        return;
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_pack_map(&p.pk, 16);
    kv_u64(&p, "t", (uint64_t)hub_ms());
    kv_u64(&p, "rate", d->rate);
    kv_u64(&p, "created", d->created);
    kv_u64(&p, "done", d->done);
    kv_u64(&p, "verified", d->verified);
    kv_u64(&p, "wrong", d->wrong);
    kv_u64(&p, "queued", (uint64_t)queued_count(d));
    kv_u64(&p, "inflight", (uint64_t)inflight_count(d));
    kv_u64(&p, "reassigned", d->reassigned);
    kv_u64(&p, "failed", d->failed);
    kv_u64(&p, "telemetry", d->telemetry);
    kv_u64(&p, "viewers", (uint64_t)d->nv);
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, sl_node_id(H.node));
    kv_str(&p, "hub", hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, d->gateway);
    kv_str(&p, "gateway", hex);
    sl_pack_str(&p, "byPrio");
    msgpack_pack_array(&p.pk, SL_PRIO_COUNT);
    for (int i = 0; i < SL_PRIO_COUNT; i++)
        msgpack_pack_uint64(&p.pk, d->done_prio[i]);
    /* [name, where, node, up, inflight, done, telemetry, busy] per worker */
    sl_pack_str(&p, "workers");
    msgpack_pack_array(&p.pk, (uint32_t)d->nw);
    for (int i = 0; i < d->nw; i++) {
        const wk *w = &d->w[i];
        msgpack_pack_array(&p.pk, 8);
        sl_pack_str(&p, w->name);
        sl_pack_str(&p, w->browser ? "browser" : "native");
        snprintf(hex, sizeof hex, "%016" PRIx64, w->id.node);
        sl_pack_str(&p, hex);
        if (w->up)
            msgpack_pack_true(&p.pk);
        else
            msgpack_pack_false(&p.pk);
        msgpack_pack_uint64(&p.pk, (uint64_t)w->inflight);
        msgpack_pack_uint64(&p.pk, w->done);
        msgpack_pack_uint64(&p.pk, w->telemetry);
        msgpack_pack_uint64(&p.pk, w->busy);
    }
    if (sl_pack_error(&p) == SL_OK) {
        for (int i = 0; i < d->nv; i++) {
            sl_id to = d->v[i].id;
            if (sl_pack_len(&p) <= sl_unreliable_max(sl_actor_core(self), to))
                (void)sl_send_unreliable(self, to, T_STATE, SL_PRIO_LOW, sl_pack_data(&p),
                                         sl_pack_len(&p));
            else
                (void)sl_send(self, to, T_STATE, SL_PRIO_LOW, sl_pack_data(&p), sl_pack_len(&p));
        }
    }
    sl_pack_fini(&p);
}

/* --- tasks */

static tk *new_task(dispatcher *d)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (d->t[i].state == TK_FREE) {
            uint64_t no = ++d->next_no;
            d->t[i] = (tk){.no = no,
                           .prio = task_prio(no),
                           .work_ms = task_work_ms(no),
                           .state = TK_QUEUED,
                           .on = -1};
            d->created++;
            return &d->t[i];
        }
    return NULL; /* the queue is full: the rate outruns the workers */
}

/* The next task: most urgent class first; inside a class, reassigned ones
 * (they are late) first, then by number. */
static tk *next_task(dispatcher *d)
{
    tk *best = NULL;
    for (int i = 0; i < MAX_LIVE; i++) {
        tk *a = &d->t[i];
        if (a->state != TK_QUEUED)
            continue;
        if (!best || a->prio < best->prio ||
            (a->prio == best->prio && a->reassigned != best->reassigned && a->reassigned) ||
            (a->prio == best->prio && a->reassigned == best->reassigned && a->no < best->no))
            best = a;
    }
    return best;
}

/* The up worker with the most room; ties go to the one that waited longest. */
static int pick_worker(const dispatcher *d)
{
    int best = -1;
    for (int i = 0; i < d->nw; i++) {
        const wk *w = &d->w[i];
        if (!w->up || w->unreachable || w->inflight >= WINDOW)
            continue;
        if (best < 0 || w->inflight < d->w[best].inflight ||
            (w->inflight == d->w[best].inflight && w->last_assign < d->w[best].last_assign))
            best = i;
    }
    return best;
}

static int dispatch(sl_actor *self, dispatcher *d)
{
    tk *t;
    int k;
    while ((t = next_task(d)) != NULL && (k = pick_worker(d)) >= 0) {
        wk *w = &d->w[k];
        sl_pack p;
        out_array(&p, 2);
        msgpack_pack_uint64(&p.pk, t->no);
        msgpack_pack_uint64(&p.pk, t->work_ms);
        int rc = sl_pack_error(&p);
        if (rc == SL_OK) /* at the task's class, on the wire too */
            rc = sl_ask(self, w->id, T_TASK, t->prio, sl_pack_data(&p), sl_pack_len(&p),
                        TASK_DEADLINE_MS, &t->ask);
        sl_pack_fini(&p);
        if (rc == SL_OK) {
            t->state = TK_SENT;
            t->on = k;
            t->sent_ns = uv_hrtime();
            w->inflight++;
            w->last_assign = ++d->assigns;
            if (t->reassigned)
                say("task #%" PRIu64 " (%s) reassigned to %s", t->no, sl_prio_name(t->prio),
                    w->name);
            emit(self, d, "ask", t->prio, w, t->no, "task #%" PRIu64 " -> %s%s (%u ms of work)",
                 t->no, w->name, t->reassigned ? " (reassigned)" : "", t->work_ms);
        } else if (rc == SL_ERR_NOCONN) {
            w->unreachable = true; /* its node is gone; DOWN is on its way */
        } else if (rc == SL_ERR_AGAIN) {
            d->retry_dispatch = true; /* the transport is full for now: next tick */
            return 0;
        } else {
            return rc; /* a bug: crash loudly */
        }
    }
    return 0;
}

static tk *task_by_ask(dispatcher *d, uint64_t ask)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (d->t[i].state == TK_SENT && d->t[i].ask == ask)
            return &d->t[i];
    return NULL;
}

static int on_task_reply(sl_actor *self, dispatcher *d, tk *t, const sl_msg *m)
{
    wk *w = &d->w[t->on];
    sl_unpacked u;
    uint64_t no = 0, result = 0;
    int rc = in_array(&u, m, 3);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 0, &no);
    if (rc == SL_OK)
        rc = sl_msgpack_at_uint64(&u.root, 2, &result);
    sl_unpacked_fini(&u);
    w->inflight--;
    w->done++;
    d->done++;
    d->done_prio[t->prio]++;
    bool ok = rc == SL_OK && no == t->no && result == task_result(t->no);
    if (ok) {
        d->verified++;
    } else {
        /* A browser is not trusted: a wrong answer is counted and shown. */
        d->wrong++;
        say("task #%" PRIu64 ": %s answered something wrong", t->no, w->name);
    }
    emit(self, d, ok ? "reply" : "wrong", t->prio, w, t->no,
         "task #%" PRIu64 " <- %s: %s in %.0f ms", t->no, w->name,
         ok ? "result verified" : "WRONG result", (double)(uv_hrtime() - t->sent_ns) / 1e6);
    memset(t, 0, sizeof *t);
    return dispatch(self, d);
}

static int on_task_fail(sl_actor *self, dispatcher *d, tk *t, const sl_msg *m)
{
    wk *w = &d->w[t->on];
    w->inflight--;
    d->failed++;
    if (!t->reassigned)
        d->reassigned++;
    t->reassigned = true;
    t->state = TK_QUEUED;
    if (m->status == SL_ERR_NOCONN)
        w->unreachable = true;
    if (m->status == SL_ERR_NOCONN || m->status == SL_ERR_ACTOR_DOWN)
        w->lost++;
    say("task #%" PRIu64 " (%s) failed on %s after %.0f ms: %s; back to the queue", t->no,
        sl_prio_name(t->prio), w->name, (double)(uv_hrtime() - t->sent_ns) / 1e6,
        sl_err_name(m->status));
    emit(self, d, "fail", t->prio, w, t->no,
         "task #%" PRIu64 " failed on %s: %s, back to the queue", t->no, w->name,
         sl_err_name(m->status));
    t->on = -1;
    return dispatch(self, d);
}

/* --- workers and viewers */

static int find_worker(const dispatcher *d, sl_id id)
{
    for (int i = 0; i < d->nw; i++)
        if (sl_id_eq(d->w[i].id, id))
            return i;
    return -1;
}

/* A slot for a new worker: a free one, else the one that left longest ago. */
static int worker_slot(dispatcher *d)
{
    if (d->nw < MAX_WORKERS)
        return d->nw++;
    int best = -1;
    for (int i = 0; i < d->nw; i++)
        if (!d->w[i].up && d->w[i].inflight == 0 &&
            (best < 0 || d->w[i].left_ns < d->w[best].left_ns))
            best = i;
    return best;
}

static int on_join(sl_actor *self, dispatcher *d, const sl_msg *m)
{
    char name[NAME_MAX_LEN + 1];
    sl_unpacked u;
    bool ok = in_array(&u, m, 1) == SL_OK && copy_name(&u.root, 0, name);
    sl_unpacked_fini(&u);
    int k = find_worker(d, m->from);
    int rc = SL_OK;
    if (!ok || sl_id_is_none(m->from))
        rc = SL_ERR_INVAL;
    else if (k < 0 && (k = worker_slot(d)) < 0)
        rc = SL_ERR_LIMIT;
    if (rc != SL_OK)
        return sl_reply_error(self, sl_req_of(m), rc) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    wk *w = &d->w[k];
    bool again = w->up && sl_id_eq(w->id, m->from);
    if (!again) {
        memset(w, 0, sizeof *w);
        w->id = m->from;
        snprintf(w->name, sizeof w->name, "%s", name);
        /* Native workers live on the gateway node; anything else reached us
         * through the gateway's route to a browser node. */
        w->browser = m->from.node != d->gateway;
        w->up = true;
        w->last_assign = 0;
        if (sl_monitor(self, w->id, &w->mon) != SL_OK)
            w->mon = 0;
        char ids[SL_ID_STRLEN];
        sl_id_format(w->id, ids, sizeof ids);
        if (w->browser)
            say("%s joined: a browser worker (%s), on browser node %016" PRIx64
                ", relayed by the gateway; monitoring it",
                w->name, ids, w->id.node);
        else
            say("%s joined: a native worker (%s) on the gateway node; monitoring it", w->name, ids);
        emit(self, d, "join", -1, w, 0, "%s joined (%s worker)", w->name,
             w->browser ? "browser" : "native");
    }
    sl_pack p;
    out_array(&p, 3);
    sl_pack_str(&p, w->name);
    sl_pack_str(&p, w->browser ? "browser" : "native");
    msgpack_pack_uint64(&p.pk, WINDOW);
    rc = sl_pack_error(&p);
    if (rc == SL_OK)
        rc = sl_reply(self, sl_req_of(m), T_JOIN, sl_pack_data(&p), sl_pack_len(&p));
    sl_pack_fini(&p);
    if (rc == SL_ERR_NOMEM)
        return rc;
    return dispatch(self, d);
}

static void on_subscribe(sl_actor *self, dispatcher *d, const sl_msg *m)
{
    if (sl_id_is_none(m->from))
        return;
    for (int i = 0; i < d->nv; i++)
        if (sl_id_eq(d->v[i].id, m->from))
            return;
    if (d->nv == MAX_VIEWERS) {
        say("a viewer on node %016" PRIx64 " was turned away: %d viewers already", m->from.node,
            MAX_VIEWERS);
        return;
    }
    viewer *v = &d->v[d->nv++];
    v->id = m->from;
    if (sl_monitor(self, v->id, &v->mon) != SL_OK)
        v->mon = 0;
    say("a page's viewer subscribed (node %016" PRIx64 "); %d viewer(s)", m->from.node, d->nv);
    emit(self, d, "viewer", -1, NULL, 0, "a viewer subscribed (%d now)", d->nv);
    broadcast_state(self, d);
}

static void on_telemetry(dispatcher *d, const sl_msg *m)
{
    int k = find_worker(d, m->from);
    sl_unpacked u;
    uint64_t seq = 0, busy = 0, done = 0;
    bool ok = in_array(&u, m, 4) == SL_OK && sl_msgpack_at_uint64(&u.root, 1, &seq) == SL_OK &&
              sl_msgpack_at_uint64(&u.root, 2, &busy) == SL_OK &&
              sl_msgpack_at_uint64(&u.root, 3, &done) == SL_OK;
    sl_unpacked_fini(&u);
    if (!ok || k < 0) {
        d->stray++;
        return;
    }
    wk *w = &d->w[k];
    w->telemetry++;
    w->seq = seq;
    w->busy = busy;
    w->tdone = done;
    d->telemetry++;
}

static int on_down(sl_actor *self, dispatcher *d, const sl_msg *m)
{
    for (int i = 0; i < d->nv; i++)
        if (d->v[i].mon && d->v[i].mon == m->corr) {
            d->v[i] = d->v[--d->nv];
            say("a page's viewer left (%s); %d viewer(s)", sl_reason_name(m->status), d->nv);
            return 0;
        }
    for (int i = 0; i < d->nw; i++) {
        wk *w = &d->w[i];
        if (!w->mon || w->mon != m->corr)
            continue;
        w->mon = 0;
        w->up = false;
        w->left_ns = uv_hrtime();
        /* Its asks fail at the same moment, before or after this DOWN. */
        int held = w->inflight + w->lost;
        if (held)
            say("DOWN %s (%s worker): reason %s; the %d task(s) it held fail and go back to the "
                "queue",
                w->name, w->browser ? "browser" : "native", sl_reason_name(m->status), held);
        else
            say("DOWN %s (%s worker): reason %s; it held no task", w->name,
                w->browser ? "browser" : "native", sl_reason_name(m->status));
        emit(self, d, "down", -1, w, 0, "DOWN %s: %s", w->name, sl_reason_name(m->status));
    }
    return dispatch(self, d);
}

static void set_rate(sl_actor *self, dispatcher *d, const sl_msg *m)
{
    sl_unpacked u;
    uint64_t r = 0;
    if (in_array(&u, m, 1) == SL_OK && sl_msgpack_at_uint64(&u.root, 0, &r) == SL_OK &&
        r <= MAX_RATE && r != d->rate) {
        d->rate = (unsigned)r;
        say("a page set the task rate to %u per second", d->rate);
        emit(self, d, "rate", -1, NULL, 0, "task rate set to %u/s", d->rate);
    }
    sl_unpacked_fini(&u);
}

static int burst(sl_actor *self, dispatcher *d, const sl_msg *m)
{
    sl_unpacked u;
    uint64_t n = 0;
    if (in_array(&u, m, 1) != SL_OK || sl_msgpack_at_uint64(&u.root, 0, &n) != SL_OK || n == 0)
        n = 0;
    sl_unpacked_fini(&u);
    if (n > MAX_BURST)
        n = MAX_BURST;
    uint64_t made = 0;
    while (made < n && new_task(d))
        made++;
    if (made) {
        say("a page sent a burst: %" PRIu64 " tasks at once", made);
        emit(self, d, "burst", -1, NULL, 0, "burst: %" PRIu64 " tasks queued at once", made);
    }
    return dispatch(self, d);
}

static void status_line(dispatcher *d)
{
    char workers[600] = "";
    size_t l = 0;
    int up = 0;
    for (int i = 0; i < d->nw && l < sizeof workers; i++) {
        if (!d->w[i].up)
            continue;
        up++;
        l += (size_t)snprintf(workers + l, sizeof workers - l, "%s%s %" PRIu64, l ? ", " : "",
                              d->w[i].name, d->w[i].done);
    }
    say("status: %" PRIu64 " tasks done, %" PRIu64 " verified; %d queued, %d in flight; %d "
        "worker(s) up (%s); %" PRIu64 " telemetry datagrams; %d viewer(s)",
        d->done, d->verified, queued_count(d), inflight_count(d), up, up ? workers : "none",
        d->telemetry, d->nv);
}

static int on_tick(sl_actor *self, dispatcher *d)
{
    d->ticks++;
    bool any_up = false;
    for (int i = 0; i < d->nw; i++)
        any_up |= d->w[i].up;
    /* New work arrives at the rate, but only while someone can do it. */
    if (any_up) {
        d->credit += d->rate * (TICK_MS / 1000.0);
        while (d->credit >= 1.0) {
            d->credit -= 1.0;
            if (!new_task(d))
                break;
        }
    }
    if (d->ticks % STATE_EVERY == 0)
        broadcast_state(self, d);
    uint64_t now = uv_hrtime();
    if (now - d->last_status_ns >= STATUS_EVERY_MS * 1000000ull && d->done != d->last_status_done) {
        d->last_status_ns = now;
        d->last_status_done = d->done;
        status_line(d);
    }
    d->retry_dispatch = false;
    return dispatch(self, d);
}

static int dispatcher_message(sl_actor *self, const sl_msg *m)
{
    dispatcher *d = sl_state(self);
    tk *t;
    uint64_t node;
    bool up;
    switch (m->kind) {
    case SL_KIND_SEND:
        if (m->type == T_TICK)
            return on_tick(self, d);
        if (m->type == T_TELEMETRY)
            on_telemetry(d, m);
        else if (m->type == T_SUBSCRIBE)
            on_subscribe(self, d, m);
        else if (m->type == T_RATE)
            set_rate(self, d, m);
        else if (m->type == T_BURST)
            return burst(self, d, m);
        else if (m->type == T_PEER && read_peer(m, &node, &up) && up && !d->gateway)
            d->gateway = node;
        else if (m->type == SL_TYPE_RESUME)
            return dispatch(self, d);
        return 0;
    case SL_KIND_ASK:
        if (m->type == T_JOIN)
            return on_join(self, d, m);
        return sl_reply_error(self, sl_req_of(m), SL_ERR_INVAL) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    case SL_KIND_REPLY:
        if ((t = task_by_ask(d, m->corr)) != NULL)
            return on_task_reply(self, d, t, m);
        return 0;
    case SL_KIND_FAIL:
        if ((t = task_by_ask(d, m->corr)) != NULL)
            return on_task_fail(self, d, t, m);
        return 0;
    case SL_KIND_DOWN:
        return on_down(self, d, m);
    default:
        return 0;
    }
}

static int dispatcher_start(sl_actor *self, void *arg)
{
    dispatcher *d = sl_state(self);
    (void)arg;
    d->rate = DEFAULT_RATE;
    d->last_status_ns = uv_hrtime();
    return sl_send_every(self, sl_self(self), TICK_MS, T_TICK, SL_PRIO_HIGH, NULL, 0, NULL);
}

static void dispatcher_stop(sl_actor *self, int reason)
{
    dispatcher *d = sl_state(self);
    (void)reason;
    printf("\nHub summary (the dispatcher's view)\n");
    printf("  tasks      %" PRIu64 " created, %" PRIu64 " done (%" PRIu64 " verified, %" PRIu64
           " wrong), %" PRIu64 " failed and reassigned\n",
           d->created, d->done, d->verified, d->wrong, d->failed);
    printf("  by class  ");
    for (int i = 0; i < SL_PRIO_COUNT; i++)
        printf(" %s %" PRIu64, sl_prio_name(i), d->done_prio[i]);
    printf("\n  workers   ");
    for (int i = 0; i < d->nw; i++)
        printf("%s %s: %" PRIu64 " done%s", i ? "," : "", d->w[i].name, d->w[i].done,
               d->w[i].browser ? " (browser)" : "");
    if (d->nw == 0)
        printf(" none joined");
    printf("\n  telemetry  %" PRIu64 " datagrams from workers (%" PRIu64 " not understood)\n",
           d->telemetry, d->stray);
    printf("  viewers    %d subscribed at the end; %" PRIu64 " log entries not delivered "
           "(viewer gone, or its lane full)\n",
           d->nv, d->events_dropped);
    fflush(stdout);
}

static const sl_behavior dispatcher_behavior = {
    .on_start = dispatcher_start,
    .on_message = dispatcher_message,
    .on_stop = dispatcher_stop,
    .state_size = sizeof(dispatcher),
    .name = "dispatcher",
};

static void hub_on_peer(sl_node *node, uint64_t peer, bool up, void *ud)
{
    (void)ud;
    notify_peer(node, H.dispatcher, peer, up);
    if (!up && !H.stopping) {
        /* The gateway is the hub's only link: without it, nothing to do. */
        H.gateway_lost = true;
        H.stopping = true;
        say("lost the gateway node %016" PRIx64 ": stopping", peer);
        sl_node_stop(node, NULL, NULL);
    }
}

static void hub_stop_cb(uv_handle_t *h)
{
    if (H.stopping)
        return;
    H.stopping = true;
    if (h->type == UV_TIMER) {
        H.deadline_fired = true;
        say("lifetime limit reached: stopping");
    } else {
        say("asked to stop: the dispatcher hands in its summary");
    }
    sl_node_stop(H.node, NULL, NULL);
}
static void hub_deadline(uv_timer_t *t)
{
    hub_stop_cb((uv_handle_t *)t);
}
static void hub_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    hub_stop_cb((uv_handle_t *)s);
}

static int hub_main(const char *certs, const char *host, uint16_t port, long parent)
{
#ifdef __linux__
    /* If the gateway dies, whatever the way, the kernel kills us. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && (long)getppid() != parent)
        return 1; /* it died before the line above took effect */
#else
    (void)parent;
#endif
    H.t0 = uv_hrtime();
    static char cert[4096], key[4096], ca[4096];
    sl_transport_settings ts;
    tls_settings(&ts, certs, "hub", cert, key, ca, sizeof cert);
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.quic = &ts;
    ns.on_peer = hub_on_peer;
    ns.reconnect_min_ms = 50;
    ns.reconnect_max_ms = 500;
    int rc = sl_node_new(&ns, &H.node);
    if (rc) {
        fprintf(stderr, "hub: cannot create the node: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_spawn_opts opts;
    sl_spawn_opts_default(&opts);
    opts.register_as = "dispatcher";
    rc = sl_spawn(sl_node_core(H.node), &dispatcher_behavior, NULL, &opts, &H.dispatcher);
    if (rc == SL_OK)
        rc = sl_node_connect(H.node, host, port);
    if (rc == SL_OK) {
        say("hub node %016" PRIx64 " connecting to the gateway at %s:%u", sl_node_id(H.node), host,
            port);
        say("    runs the \"dispatcher\": %d tasks/s to start, asks with a %d s deadline, %d in "
            "flight per worker",
            DEFAULT_RATE, TASK_DEADLINE_MS / 1000, WINDOW);
    } else {
        fprintf(stderr, "hub: setup failed: %s\n", sl_strerror(rc));
        sl_node_stop(H.node, NULL, NULL);
    }
    uv_loop_t *loop = sl_node_loop(H.node);
    uv_timer_t deadline;
    uv_signal_t sigint, sigterm;
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, hub_deadline, (uint64_t)HUB_LIFETIME_S * 1000, 0);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, hub_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, hub_signal, SIGTERM);
    /* Ours must not keep the loop alive once the node has stopped. */
    uv_unref((uv_handle_t *)&deadline);
    uv_unref((uv_handle_t *)&sigint);
    uv_unref((uv_handle_t *)&sigterm);
    sl_node_run(H.node);
    block_stop_signals();
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    sl_node_del(H.node);
    return rc || H.gateway_lost || H.deadline_fired ? 1 : 0;
}

/* ---------------------------------------------------------------- main */

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s gateway --certs DIR --origin ORIGIN --token TOKEN [--config-out FILE]\n"
            "                  [--seconds N] [--port P]\n"
            "       %s hub --certs DIR --connect 127.0.0.1:PORT [--parent PID]\n"
            "DIR holds ca.pem and gateway.pem/.key, hub.pem/.key (examples/demo.sh makes\n"
            "them with `starling cert`); ORIGIN is the page's, e.g. http://127.0.0.1:8080;\n"
            "TOKEN is 8..64 letters, digits, '-' or '_'.\n",
            argv0, argv0);
    return 2;
}

static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n < 8 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == '_'))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    const char *certs = NULL, *connect = NULL;
    long parent = 0, seconds = DEFAULT_SECONDS, port = 0;
    if (argc < 2)
        return usage(argv[0]);
    bool gw = strcmp(argv[1], "gateway") == 0;
    if (!gw && strcmp(argv[1], "hub") != 0)
        return usage(argv[0]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(argv[0]);
        i++;
        if (strcmp(a, "--certs") == 0)
            certs = v;
        else if (strcmp(a, "--connect") == 0)
            connect = v;
        else if (strcmp(a, "--parent") == 0)
            parent = strtol(v, NULL, 10);
        else if (strcmp(a, "--origin") == 0)
            G.origin = v;
        else if (strcmp(a, "--token") == 0)
            G.token = v;
        else if (strcmp(a, "--config-out") == 0)
            G.config_out = v;
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtol(v, NULL, 10);
        else if (strcmp(a, "--port") == 0)
            port = strtol(v, NULL, 10);
        else
            return usage(argv[0]);
    }
    if (!certs)
        return usage(argv[0]);
    if (gw) {
        if (!G.origin || !G.token || !token_ok(G.token) || seconds < 1 || seconds > MAX_SECONDS ||
            port < 0 || port > 65535 || strlen(G.origin) > 200 || strchr(G.origin, '"'))
            return usage(argv[0]);
        role = "gateway";
        G.certs = certs;
        G.seconds = (unsigned)seconds;
        G.port = (uint16_t)port;
        return gateway_main();
    }
    const char *colon = connect ? strrchr(connect, ':') : NULL;
    if (!colon || colon - connect >= 64)
        return usage(argv[0]);
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - connect), connect);
    role = "hub";
    return hub_main(certs, host, (uint16_t)atoi(colon + 1), parent);
}
