/*
 * gateway_peer.c: native nodes for the browser tests and benchmarks: a
 * gateway node serving WebTransport (browser nodes join the cluster through
 * it) and, with --far, a second node in the same process behind it, so that
 * browser traffic to that node is relayed by the gateway.
 *
 *   gateway_peer --cert F --key F [--host 127.0.0.1] [--port 0] [--token T]
 *                [--origin O]... [--path /starling] [--far] [--timeout 120]
 *                [--hello-ms MS]  (a browser session's HELLO deadline)
 *
 * Only the public API. Exposed to browser nodes (sl_node_expose):
 *   echo      asks: replied with the same type and payload; messages: sent
 *             back to the sender with the same type, class and payload
 *             (unreliable ones as unreliable ones)
 *   silent    never answers (asks from the browser time out)
 *   prober    a message of type PROBE from a browser actor X starts the
 *             script below, which exercises every direction native -> browser
 *   blaster   a message of type BLAST with payload N (msgpack uint): N
 *             messages of 64 bytes to the sender as fast as backpressure
 *             allows (SL_ERR_AGAIN waits for SL_TYPE_RESUME), then BLAST_DONE
 *   far-echo  (with --far) an echo on the second node
 *   far-silent (with --far) never answers, on the second node
 * Not exposed: `secret` (an echo the browser must not reach).
 *
 * The prober's script, for X:
 *   1. monitor X (DOWN is printed when the browser goes: "PROBER-DOWN <reason>")
 *   2. BULK_N BACKGROUND messages of BULK_SIZE bytes (type BULK), then one
 *      CRITICAL (type URGENT): the browser reports where URGENT arrived
 *   3. ask X (type QUESTION, 3 s): its reply is sent back as type ANSWER
 *   4. ask X (type IGNORED, 300 ms): the failure's code is sent back as type
 *      IGNORED_RESULT (SL_ERR_TIMEOUT expected)
 *   5. DGRAM_N unreliable messages (type DGRAM)
 *   6. type SCRIPT_DONE
 * A message of type HANG from a browser actor Y: the prober asks Y (type
 * HANG, 30 s), which never answers; when the ask ends it prints
 * "PROBER-HANG <SL_ERR_... or REPLY>" (the page closing must fail it with
 * SL_ERR_NOCONN as soon as the gateway sees the session gone). With --far,
 * `far-prober` on the second node does the same ("FAR-PROBER-HANG ..."):
 * its ask is relayed by the gateway.
 *
 * Prints "READY port=<p> gateway=<node id> far=<node id or 0>", then one
 * "EXPOSED <name> <id>" per exposed actor and event lines. SIGUSR1 stops
 * the second node alone (its link to the gateway goes; "FAR-STOPPED" once
 * it has stopped). Exits 0 on SIGTERM/SIGINT or after --timeout seconds,
 * having stopped its nodes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <starling/starling.h>

enum {
    T_PROBE = 1,
    T_BULK = 10,
    T_URGENT = 11,
    T_QUESTION = 20,
    T_ANSWER = 21,
    T_IGNORED = 22,
    T_IGNORED_RESULT = 23,
    T_HANG = 24,
    T_DGRAM = 30,
    T_SCRIPT_DONE = 31,
    T_BLAST = 40,
    T_BLAST_MSG = 41,
    T_BLAST_DONE = 42
};

#define BULK_N 16
#define BULK_SIZE (128 * 1024)
#define DGRAM_N 20
#define MAX_ORIGINS 8

static uv_loop_t loop;
static sl_node *gw, *far_node;
static uv_signal_t sigs[3];
static uv_timer_t deadline;
static int stopping;
static bool far_stopping; /* SIGUSR1 stopped the far node */

/* --------------------------------------------------------------- payloads */

/* A msgpack integer into b (cap >= 9). */
static size_t mp_int(uint8_t *b, int64_t v)
{
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_pack_int64(&p.pk, v); /* msgpack-c writes non-negative values as uints */
    size_t n = sl_pack_len(&p);
    memcpy(b, sl_pack_data(&p), n);
    sl_pack_fini(&p);
    return n;
}

static size_t mp_uint(uint8_t *b, uint64_t v)
{
    return mp_int(b, (int64_t)v); /* the values here are small */
}

/* A msgpack bin of n bytes (header + filler) into b (cap >= n + 5). */
static size_t mp_bin(uint8_t *b, size_t n, uint8_t fill)
{
    size_t h;
    if (n <= 0xff) {
        b[0] = 0xc4;
        b[1] = (uint8_t)n;
        h = 2;
    } else if (n <= 0xffff) {
        b[0] = 0xc5;
        b[1] = (uint8_t)(n >> 8);
        b[2] = (uint8_t)n;
        h = 3;
    } else {
        b[0] = 0xc6;
        b[1] = (uint8_t)(n >> 24);
        b[2] = (uint8_t)(n >> 16);
        b[3] = (uint8_t)(n >> 8);
        b[4] = (uint8_t)n;
        h = 5;
    }
    memset(b + h, fill, n);
    return h + n;
}

static void print_id(const char *what, const char *name, sl_id id)
{
    char buf[64];
    sl_id_format(id, buf, sizeof buf);
    printf("%s %s %s\n", what, name, buf);
    fflush(stdout);
}

/* ------------------------------------------------------------------ echo */

static int echo_msg(sl_actor *self, const sl_msg *m)
{
    if (m->kind == SL_KIND_ASK) {
        (void)sl_reply(self, sl_req_of(m), m->type, m->data, m->len);
        return 0;
    }
    if (m->kind != SL_KIND_SEND || sl_id_is_none(m->from) || m->type == SL_TYPE_RESUME)
        return 0;
    if (m->flags & SL_MSG_UNRELIABLE)
        (void)sl_send_unreliable(self, m->from, m->type, m->prio, m->data, m->len);
    else
        (void)sl_send(self, m->from, m->type, m->prio, m->data, m->len);
    return 0;
}
static const sl_behavior echo_b = {.on_message = echo_msg, .name = "echo"};

static int silent_msg(sl_actor *self, const sl_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}
static const sl_behavior silent_b = {.on_message = silent_msg, .name = "silent"};

/* ---------------------------------------------------------------- prober */

typedef struct prober {
    sl_id x;
    uint64_t q_ask, i_ask, h_ask;
} prober;

static int prober_msg(sl_actor *self, const sl_msg *m)
{
    prober *p = sl_state(self);
    uint8_t small[32];
    if (m->kind == SL_KIND_SEND && m->type == T_PROBE) {
        p->x = m->from;
        print_id("PROBE", "from", p->x);
        uint64_t ref;
        int rc = sl_monitor(self, p->x, &ref);
        if (rc)
            printf("PROBER monitor failed %s\n", sl_err_name(rc));
        static uint8_t bulk[BULK_SIZE + 8];
        size_t bn = mp_bin(bulk, BULK_SIZE - 8, 0x5a);
        for (int i = 0; i < BULK_N; i++) {
            rc = sl_send(self, p->x, T_BULK, SL_PRIO_BACKGROUND, bulk, bn);
            if (rc)
                printf("PROBER bulk %d: %s\n", i, sl_err_name(rc));
        }
        size_t n = mp_uint(small, BULK_N);
        sl_send(self, p->x, T_URGENT, SL_PRIO_CRITICAL, small, n);
        n = mp_uint(small, 42);
        rc = sl_ask(self, p->x, T_QUESTION, SL_PRIO_HIGH, small, n, 3000, &p->q_ask);
        if (rc)
            printf("PROBER question: %s\n", sl_err_name(rc));
        rc = sl_ask(self, p->x, T_IGNORED, SL_PRIO_NORMAL, small, n, 300, &p->i_ask);
        if (rc)
            printf("PROBER ignored: %s\n", sl_err_name(rc));
        fflush(stdout);
        return 0;
    }
    if (m->kind == SL_KIND_SEND && m->type == T_HANG) {
        int rc = sl_ask(self, m->from, T_HANG, SL_PRIO_NORMAL, NULL, 0, 30000, &p->h_ask);
        if (rc)
            printf("PROBER-HANG %s\n", sl_err_name(rc));
        fflush(stdout);
        return 0;
    }
    if ((m->kind == SL_KIND_REPLY || m->kind == SL_KIND_FAIL) && p->h_ask && m->corr == p->h_ask) {
        printf("%sPROBER-HANG %s\n", sl_actor_core(self) == sl_node_core(gw) ? "" : "FAR-",
               m->kind == SL_KIND_REPLY ? "REPLY" : sl_err_name(m->status));
        fflush(stdout);
        return 0;
    }
    if ((m->kind == SL_KIND_REPLY || m->kind == SL_KIND_FAIL) && m->corr == p->q_ask) {
        if (m->kind == SL_KIND_REPLY) {
            sl_send(self, p->x, T_ANSWER, SL_PRIO_NORMAL, m->data, m->len);
        } else {
            size_t n = mp_int(small, m->status);
            sl_send(self, p->x, T_ANSWER, SL_PRIO_NORMAL, small, n);
        }
        return 0;
    }
    if ((m->kind == SL_KIND_REPLY || m->kind == SL_KIND_FAIL) && m->corr == p->i_ask) {
        size_t n = mp_int(small, m->kind == SL_KIND_FAIL ? m->status : 0);
        sl_send(self, p->x, T_IGNORED_RESULT, SL_PRIO_NORMAL, small, n);
        size_t max = sl_unreliable_max(sl_actor_core(self), p->x);
        int sent = 0;
        for (int i = 0; i < DGRAM_N; i++) {
            n = mp_uint(small, (uint64_t)i);
            if (n <= max &&
                sl_send_unreliable(self, p->x, T_DGRAM, SL_PRIO_NORMAL, small, n) == SL_OK)
                sent++;
        }
        printf("PROBER datagrams sent %d (max %zu)\n", sent, max);
        n = mp_uint(small, (uint64_t)sent);
        sl_send(self, p->x, T_SCRIPT_DONE, SL_PRIO_NORMAL, small, n);
        fflush(stdout);
        return 0;
    }
    if (m->kind == SL_KIND_DOWN) {
        printf("PROBER-DOWN %s\n", sl_reason_name(m->status));
        fflush(stdout);
    }
    return 0;
}
static const sl_behavior prober_b = {
    .on_message = prober_msg, .state_size = sizeof(prober), .name = "prober"};

/* --------------------------------------------------------------- blaster */

typedef struct blaster {
    sl_id to;
    uint64_t left, sent, again;
    bool active;
} blaster;

static void blast(sl_actor *self, blaster *b)
{
    static uint8_t msg[72];
    static size_t mlen;
    if (!mlen)
        mlen = mp_bin(msg, 64 - 2, 0x42); /* 64 bytes of payload */
    while (b->left) {
        int rc = sl_send(self, b->to, T_BLAST_MSG, SL_PRIO_NORMAL, msg, mlen);
        if (rc == SL_ERR_AGAIN) {
            b->again++;
            return; /* SL_TYPE_RESUME follows */
        }
        if (rc) {
            printf("BLAST failed after %llu: %s\n", (unsigned long long)b->sent, sl_err_name(rc));
            b->left = 0;
            break;
        }
        b->left--;
        b->sent++;
    }
    uint8_t small[16];
    size_t n = mp_uint(small, b->sent);
    if (sl_send(self, b->to, T_BLAST_DONE, SL_PRIO_NORMAL, small, n) == SL_ERR_AGAIN) {
        b->again++;
        return; /* sent when resumed */
    }
    b->active = false;
    printf("BLAST done %llu (again %llu)\n", (unsigned long long)b->sent,
           (unsigned long long)b->again);
    fflush(stdout);
}

static int blaster_msg(sl_actor *self, const sl_msg *m)
{
    blaster *b = sl_state(self);
    if (m->kind != SL_KIND_SEND)
        return 0;
    if (m->type == SL_TYPE_RESUME && b->active) {
        blast(self, b);
        return 0;
    }
    if (m->type != T_BLAST || b->active)
        return 0;
    sl_unpacked u;
    uint64_t n = 0;
    if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK)
        sl_msgpack_get_uint64(&u.root, &n);
    sl_unpacked_fini(&u);
    b->to = m->from;
    b->left = n;
    b->sent = b->again = 0;
    b->active = true;
    blast(self, b);
    return 0;
}
static const sl_behavior blaster_b = {
    .on_message = blaster_msg, .state_size = sizeof(blaster), .name = "blaster"};

/* ------------------------------------------------------------------ main */

static void stopped(sl_node *n, void *ud)
{
    (void)n;
    (void)ud;
    if (--stopping == 0) {
        for (int i = 0; i < 3; i++)
            uv_close((uv_handle_t *)&sigs[i], NULL);
        uv_close((uv_handle_t *)&deadline, NULL);
    }
}

static void stop_all(void)
{
    if (stopping)
        return;
    bool far = far_node && !far_stopping;
    stopping = far ? 2 : 1;
    sl_node_stop(gw, stopped, NULL);
    if (far)
        sl_node_stop(far_node, stopped, NULL);
}

static void far_stopped(sl_node *n, void *ud)
{
    (void)n;
    (void)ud;
    printf("FAR-STOPPED\n");
    fflush(stdout);
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    if (sig != SIGUSR1) {
        stop_all();
    } else if (far_node && !far_stopping && !stopping) {
        far_stopping = true;
        sl_node_stop(far_node, far_stopped, NULL);
    }
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "gateway_peer: --timeout reached\n");
    stop_all();
}

static void on_peer(sl_node *n, uint64_t peer, bool up, void *ud)
{
    (void)n;
    printf("%s %s %016llx\n", (const char *)ud, up ? "UP" : "DOWN", (unsigned long long)peer);
    fflush(stdout);
}

static sl_id spawn_named(sl_node *n, const sl_behavior *b, const char *name, bool expose)
{
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.register_as = name;
    sl_id id = SL_ID_NONE;
    if (sl_spawn(sl_node_core(n), b, NULL, &o, &id) != SL_OK) {
        fprintf(stderr, "gateway_peer: spawn %s failed\n", name);
        exit(1);
    }
    if (expose) {
        int rc = sl_node_expose(gw, name, id);
        if (rc) {
            fprintf(stderr, "gateway_peer: expose %s: %s\n", name, sl_strerror(rc));
            exit(1);
        }
        print_id("EXPOSED", name, id);
    }
    return id;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL, *token = "starling-test";
    const char *path = "/starling";
    const char *origins[MAX_ORIGINS];
    size_t n_origins = 0;
    int port = 0;
    bool with_far = false;
    double timeout_s = 120;
    unsigned hello_ms = 0; /* 0: the node's default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--far")) {
            with_far = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "gateway_peer: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--cert"))
            cert = v;
        else if (!strcmp(a, "--key"))
            key = v;
        else if (!strcmp(a, "--token"))
            token = v;
        else if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--origin") && n_origins < MAX_ORIGINS)
            origins[n_origins++] = v;
        else if (!strcmp(a, "--timeout"))
            timeout_s = atof(v);
        else if (!strcmp(a, "--hello-ms"))
            hello_ms = (unsigned)atoi(v);
        else {
            fprintf(stderr, "gateway_peer: unknown option %s\n", a);
            return 2;
        }
    }
    if (!cert || !key) {
        fprintf(stderr, "gateway_peer: --cert and --key are required (browsers pin them)\n");
        return 2;
    }
    uv_loop_init(&loop);

    sl_webtransport_settings wt = {0};
    wt.path = path;
    wt.health_path = "/health";
    wt.token = token;
    wt.origins = n_origins ? origins : NULL;
    wt.n_origins = n_origins;
    sl_transport_settings ts;
    sl_transport_settings_default(&ts);
    ts.tls.cert_file = cert;
    ts.tls.key_file = key;
    ts.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY; /* node to node: test certificates */
    ts.webtransport = &wt;
    ts.idle_timeout_ms = 5000;
    ts.keepalive_ms = 1000;
    sl_node_settings ns;
    sl_node_settings_default(&ns);
    ns.loop = &loop;
    ns.quic = &ts;
    ns.on_peer = on_peer;
    ns.ud = "GATEWAY-PEER";
    ns.reconnect_max_ms = 500;
    ns.hello_timeout_ms = hello_ms;
    int rc = sl_node_new(&ns, &gw);
    if (rc == SL_OK)
        rc = sl_node_listen(gw, host, (uint16_t)port);
    if (rc) {
        fprintf(stderr, "gateway_peer: gateway node: %s\n", sl_strerror(rc));
        return 1;
    }
    uint16_t bound = 0;
    sl_node_port(gw, &bound);

    uint64_t far_id = 0;
    uint16_t far_port = 0;
    if (with_far) {
        sl_transport_settings fs;
        sl_transport_settings_default(&fs);
        fs.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY; /* a generated dev certificate */
        fs.idle_timeout_ms = 5000;
        fs.keepalive_ms = 1000;
        sl_node_settings fns = ns;
        fns.quic = &fs;
        fns.ud = "FAR-PEER";
        rc = sl_node_new(&fns, &far_node);
        if (rc == SL_OK)
            rc = sl_node_listen(far_node, "127.0.0.1", 0);
        if (rc == SL_OK)
            rc = sl_node_port(far_node, &far_port);
        if (rc == SL_OK)
            rc = sl_node_connect(gw, "127.0.0.1", far_port);
        if (rc) {
            fprintf(stderr, "gateway_peer: far node: %s\n", sl_strerror(rc));
            return 1;
        }
        far_id = sl_node_id(far_node);
    }

    spawn_named(gw, &echo_b, "echo", true);
    spawn_named(gw, &silent_b, "silent", true);
    spawn_named(gw, &prober_b, "prober", true);
    spawn_named(gw, &blaster_b, "blaster", true);
    print_id("SECRET", "secret", spawn_named(gw, &echo_b, "secret", false));
    if (far_node) {
        sl_spawn_opts o;
        sl_spawn_opts_default(&o);
        sl_id id;
        if (sl_spawn(sl_node_core(far_node), &echo_b, NULL, &o, &id) != SL_OK ||
            sl_node_expose(gw, "far-echo", id) != SL_OK)
            return 1;
        print_id("EXPOSED", "far-echo", id);
        if (sl_spawn(sl_node_core(far_node), &silent_b, NULL, &o, &id) != SL_OK ||
            sl_node_expose(gw, "far-silent", id) != SL_OK)
            return 1;
        print_id("EXPOSED", "far-silent", id);
        if (sl_spawn(sl_node_core(far_node), &prober_b, NULL, &o, &id) != SL_OK ||
            sl_node_expose(gw, "far-prober", id) != SL_OK)
            return 1;
        print_id("EXPOSED", "far-prober", id);
    }
    printf("READY port=%u gateway=%016llx far=%016llx\n", bound, (unsigned long long)sl_node_id(gw),
           (unsigned long long)far_id);
    fflush(stdout);

    uv_signal_init(&loop, &sigs[0]);
    uv_signal_start(&sigs[0], on_signal, SIGTERM);
    uv_signal_init(&loop, &sigs[1]);
    uv_signal_start(&sigs[1], on_signal, SIGINT);
    uv_signal_init(&loop, &sigs[2]);
    uv_signal_start(&sigs[2], on_signal, SIGUSR1);
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, (uint64_t)(timeout_s * 1000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    sl_node_del(gw);
    if (far_node)
        sl_node_del(far_node);
    uv_loop_close(&loop);
    return 0;
}
