/*
 * quic_peer.c: a standalone QUIC peer over Starling's transport, for tests
 * that need two real processes (network namespaces, a peer killed with
 * SIGKILL) and for the transport benchmarks.
 *
 * One program, three roles (server, client, and a UDP relay that impairs a
 * path), one libuv loop each; the peers use only the public API of
 * include/starling/transport.h.
 *
 *   quic_peer server --port P [--host H] [--cert C --key K] [--print-pin]
 *                    [--max-per-addr N] [--max-conns N] [--idle-ms MS]
 *                    [--keepalive-ms MS] [--timeout S] [--retry auto|always|never]
 *   quic_peer client --host H --port P --pin HEX
 *                    [--bytes N] [--streams K] [--uni] [--datagrams M]
 *                    [--json NAME] [--timeout S] [--idle-ms MS] [--keepalive-ms MS]
 *                    [--hold-sec S] [--low-water N] [--no-verify] [--repump-all]
 *                    | --open-latency R | --handshakes R [--resume]
 *                    | --first-byte R [--early] | --conns R --idle-sec S
 *   quic_peer relay  [--host H] [--port P] --to-host H --to-port P
 *                    [--delay-ms D] [--loss PCT] [--reorder PCT] [--reorder-corr PCT]
 *
 * The wire protocol is ours and tiny. Every stream the client opens starts
 * with one mode byte:
 *   'E'  echo: the server writes back every byte as it arrives and ends its
 *        side when the client ends its own (used to time stream opening);
 *   'S'  sink (client --no-verify): the server only counts, and its answer
 *        is the byte count (8 bytes, big endian) instead of a hash; this
 *        measures the transport without SHA-256 on both ends;
 *   else hash: the server hashes the whole stream (mode byte included) and,
 *        at FIN, answers with the 32-byte SHA-256.
 * The answer goes on the same stream, then FIN, for a bidirectional
 * stream; for a unidirectional one on a new unidirectional stream of the
 * server's carrying the client's stream id (8 bytes, big endian) and then
 * the answer.
 * Datagrams are echoed as they are. The client's data is deterministic:
 * stream k is 'D' followed by bytes of a fixed pseudo-random table read from
 * offset k * 7919, so writing costs a memcpy and no generator; the client
 * hashes what it writes and compares with the answer.
 *
 * The server prints `READY port=<p> pin=<hex>` on stdout once it listens,
 * and on SIGUSR1 one line `STATS conns=<n> rss_bytes=<n> cpu_s=<f>
 * streams=<n> bytes_in=<n> accepted=<n> refused=<n> retries=<n>` (the
 * benchmarks read memory per connection and the server's CPU time from
 * it). SIGTERM or SIGINT close it gracefully. With --print-pin it prints
 * the certificate's SHA-256 (hex) and exits. --retry sets its address
 * validation (default auto: Retry above 200 new handshakes per second).
 *
 * The client prints one JSON line and exits 0 only if everything it checked
 * held (every hash matched; in --conns mode every connection came up).
 * Modes:
 *   transfer (default)  K streams of N bytes, all opened at once (more
 *                       than the peer's stream limit wait for closes):
 *                       bytes, seconds, mb_per_s (10^6 bytes/s), cpu_s.
 *   --open-latency R    R sequential echo probes on one connection: time
 *                       from sl_stream_open to the server's first byte.
 *   --handshakes R      R sequential handshakes, each closed once ready:
 *                       handshakes_per_s. Full handshakes (the client's
 *                       session cache is off) unless --resume, which
 *                       primes the cache with one connection first.
 *   --first-byte R      R sequential connections, each opening one echo
 *                       probe: time from sl_transport_connect to the
 *                       server's first byte. With --early the cache is
 *                       primed first and the probe is written before the
 *                       handshake as replay-safe 0-RTT data.
 *   --conns R           R connections held idle for --idle-sec S; prints
 *                       `HELD n=<ready> failed=<n>` on stdout once all
 *                       settled, so a script can ask the server's RSS.
 *   --hold-sec S        after a transfer, keep the connection until it
 *                       closes (or S pass); prints `HOLDING` when it starts
 *                       and reports close_err/hold_ms: how a killed peer is
 *                       detected by the idle timeout.
 * Exit codes: 0 ok, 1 check failed or connection lost, 2 timeout, 64 usage,
 * 130 interrupted. cpu_s is getrusage(RUSAGE_SELF) user + system of the
 * whole process. --repump-all retries every refused stream whenever any
 * stream drains (a workaround kept for a transport bug that is fixed).
 *
 * The relay forwards UDP between one client and --to-host:--to-port with
 * netem's delay/loss/reorder in both directions (see its section below);
 * it stands in for `tc ... netem` on kernels built without it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "starling/transport.h"

#define TABLE (1u << 20)  /* pattern table size; doubled in memory so slices never wrap */
#define SLICE (64u << 10) /* bytes per sl_stream_write */
#define STRIDE 7919u      /* pattern offset between streams */

/* ------------------------------------------------------------- options */

typedef struct opts {
    bool server;
    bool relay;
    const char *host;
    uint16_t port;
    const char *cert, *key;
    bool print_pin;
    const char *pin_hex;
    uint64_t bytes; /* per stream, mode byte included */
    uint32_t streams;
    bool uni;
    uint32_t datagrams;
    const char *json; /* "bench" name in the JSON line */
    double timeout_s; /* whole run; server: 0 = none */
    uint64_t idle_ms, keepalive_ms;
    bool idle_set, keepalive_set;
    uint32_t max_per_addr, max_conns;
    uint32_t open_latency, handshakes, conns, first_byte;
    bool resume, early; /* session cache on; 0-RTT first-byte probes */
    int retry;          /* server: SL_RETRY_*, -1 = transport default */
    double idle_sec, hold_sec;
    bool repump_all; /* work around a refused write never being woken */
    bool no_verify;  /* sink mode: the server counts instead of hashing */
    /* relay: where to forward, and the impairments (netem's meaning) */
    const char *to_host;
    uint16_t to_port;
    double delay_ms, loss_pct, reorder_pct, reorder_corr;
    uint64_t seed;
    uint32_t parallel; /* --conns: handshakes in flight at once */
    size_t low_water;  /* 0 = transport default */
} opts;

static opts O;

static void usage(void)
{
    fprintf(stderr,
            "usage: quic_peer server --port P [--host H] [--cert C --key K] [--print-pin]\n"
            "                        [--max-per-addr N] [--max-conns N] [--idle-ms MS]\n"
            "                        [--keepalive-ms MS] [--timeout S]\n"
            "                        [--retry auto|always|never]\n"
            "       quic_peer client --host H --port P --pin HEX [--bytes N] [--streams K]\n"
            "                        [--uni] [--datagrams M] [--json NAME] [--timeout S]\n"
            "                        [--idle-ms MS] [--keepalive-ms MS] [--hold-sec S]\n"
            "                        [--low-water N] [--repump-all] [--no-verify]\n"
            "                        [--open-latency R | --handshakes R [--resume] |\n"
            "                         --first-byte R [--early] |\n"
            "                         --conns R --idle-sec S [--parallel P]]\n"
            "       quic_peer relay [--host H] [--port P] --to-host H --to-port P\n"
            "                       [--delay-ms D] [--loss PCT] [--reorder PCT]\n"
            "                       [--reorder-corr PCT] [--seed N] [--timeout S]\n"
            "sizes take K, M, G suffixes (powers of 1024)\n");
    exit(64);
}

static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        usage();
    switch (*end) {
    case 'K':
    case 'k':
        v <<= 10;
        end++;
        break;
    case 'M':
    case 'm':
        v <<= 20;
        end++;
        break;
    case 'G':
    case 'g':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end)
        usage();
    return v;
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "server") == 0)
        O.server = true;
    else if (strcmp(argv[1], "relay") == 0)
        O.relay = true;
    else if (strcmp(argv[1], "client") != 0)
        usage();
    O.bytes = 1u << 20;
    O.streams = 1;
    O.timeout_s = O.server || O.relay ? 0 : 120;
    O.reorder_corr = 50;
    O.retry = -1;
    O.seed = 1;
    O.parallel = 64;
    O.json = "transfer";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && (v || (usage(), 0)) && ++i)
        if (strcmp(a, "--print-pin") == 0)
            O.print_pin = true;
        else if (strcmp(a, "--uni") == 0)
            O.uni = true;
        else if (strcmp(a, "--repump-all") == 0)
            O.repump_all = true;
        else if (strcmp(a, "--no-verify") == 0)
            O.no_verify = true;
        else if (strcmp(a, "--resume") == 0)
            O.resume = true;
        else if (strcmp(a, "--early") == 0)
            O.early = true;
        else if (ARG("--host"))
            O.host = v;
        else if (ARG("--port"))
            O.port = (uint16_t)atoi(v);
        else if (ARG("--cert"))
            O.cert = v;
        else if (ARG("--key"))
            O.key = v;
        else if (ARG("--pin"))
            O.pin_hex = v;
        else if (ARG("--bytes"))
            O.bytes = parse_size(v);
        else if (ARG("--streams"))
            O.streams = (uint32_t)parse_size(v);
        else if (ARG("--datagrams"))
            O.datagrams = (uint32_t)parse_size(v);
        else if (ARG("--json"))
            O.json = v;
        else if (ARG("--timeout"))
            O.timeout_s = atof(v);
        else if (ARG("--idle-ms"))
            O.idle_ms = parse_size(v), O.idle_set = true;
        else if (ARG("--keepalive-ms"))
            O.keepalive_ms = parse_size(v), O.keepalive_set = true;
        else if (ARG("--max-per-addr"))
            O.max_per_addr = (uint32_t)parse_size(v);
        else if (ARG("--max-conns"))
            O.max_conns = (uint32_t)parse_size(v);
        else if (ARG("--open-latency"))
            O.open_latency = (uint32_t)parse_size(v);
        else if (ARG("--first-byte"))
            O.first_byte = (uint32_t)parse_size(v);
        else if (ARG("--retry"))
            O.retry = strcmp(v, "auto") == 0     ? SL_RETRY_AUTO
                      : strcmp(v, "always") == 0 ? SL_RETRY_ALWAYS
                      : strcmp(v, "never") == 0  ? SL_RETRY_NEVER
                                                 : (usage(), 0);
        else if (ARG("--handshakes"))
            O.handshakes = (uint32_t)parse_size(v);
        else if (ARG("--conns"))
            O.conns = (uint32_t)parse_size(v);
        else if (ARG("--idle-sec"))
            O.idle_sec = atof(v);
        else if (ARG("--hold-sec"))
            O.hold_sec = atof(v);
        else if (ARG("--parallel"))
            O.parallel = (uint32_t)parse_size(v);
        else if (ARG("--low-water"))
            O.low_water = (size_t)parse_size(v);
        else if (ARG("--to-host"))
            O.to_host = v;
        else if (ARG("--to-port"))
            O.to_port = (uint16_t)atoi(v);
        else if (ARG("--delay-ms"))
            O.delay_ms = atof(v);
        else if (ARG("--loss"))
            O.loss_pct = atof(v);
        else if (ARG("--reorder"))
            O.reorder_pct = atof(v);
        else if (ARG("--reorder-corr"))
            O.reorder_corr = atof(v);
        else if (ARG("--seed"))
            O.seed = parse_size(v);
        else
            usage();
#undef ARG
    }
    if (O.relay && (!O.to_host || !O.to_port))
        usage();
    if (!O.server && !O.relay && (!O.host || !O.port || !O.pin_hex || strlen(O.pin_hex) != 64))
        usage();
    if (O.streams == 0 || O.parallel == 0)
        usage();
    if ((O.cert == NULL) != (O.key == NULL))
        usage();
}

/* ------------------------------------------------------------- helpers */

static uv_loop_t loop;
static sl_transport *T;
static int exit_code;
static uint8_t *table; /* 2 * TABLE bytes: table[TABLE + j] == table[j] */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void make_table(void)
{
    table = malloc(2 * (size_t)TABLE);
    if (!table) {
        fprintf(stderr, "quic_peer: out of memory\n");
        exit(1);
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < TABLE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(table + i, &x, 8);
    }
    memcpy(table + TABLE, table, TABLE);
}

/* Bytes [off, off+n) of stream k's content, as a pointer into the table
 * (n is clipped so the slice is contiguous). Offset 0 is the mode byte. */
static const uint8_t *content(uint32_t k, uint64_t off, size_t *n)
{
    static const uint8_t hash_mode = 'D', sink_mode = 'S';
    if (off == 0) {
        *n = 1;
        return O.no_verify ? &sink_mode : &hash_mode;
    }
    size_t i = (size_t)((off + (uint64_t)k * STRIDE) % TABLE);
    if (*n > TABLE)
        *n = TABLE;
    return table + i;
}

static void fill_common(sl_transport_settings *s, void *ud)
{
    sl_transport_settings_default(s);
    s->loop = &loop;
    s->ud = ud;
    if (O.idle_set)
        s->idle_timeout_ms = O.idle_ms;
    if (O.keepalive_set)
        s->keepalive_ms = O.keepalive_ms;
    if (O.low_water)
        s->low_water = O.low_water;
    if (O.max_conns)
        s->max_connections = O.max_conns;
}

static void transport_closed(sl_transport *t, void *ud)
{
    (void)t, (void)ud;
}

static uv_signal_t sig_term, sig_int, sig_usr1, sig_usr2;
static uv_timer_t deadline;
static bool shutting_down;

/* Close everything gracefully; the loop ends when the last handle closes. */
static void shutdown_all(void)
{
    if (shutting_down)
        return;
    shutting_down = true;
    sl_transport_close(T, transport_closed, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_usr1, NULL);
    uv_close((uv_handle_t *)&sig_usr2, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
}

/* ============================================================== server */

typedef struct srv_stream {
    gnutls_hash_hd_t h;
    int mode; /* 0 = unknown yet, 'E' echo, 'S' sink, 'H' hash */
    bool uni;
    int64_t id;
    uint64_t count; /* bytes received */
} srv_stream;

/* A unidirectional answer waiting to be opened (outside transport callbacks). */
typedef struct uni_reply {
    struct uni_reply *next;
    sl_conn *c;
    uint8_t msg[40]; /* client stream id (BE) + SHA-256 or count (BE) */
    size_t len;
} uni_reply;

static struct {
    uint32_t conns;
    uint64_t streams, bytes_in;
    uni_reply *pending, **pending_tail;
    uv_check_t check;
} S;

static void srv_conn_ready(sl_conn *c, void *ud)
{
    sl_conn_set_data(c, (void *)1);
    S.conns++;
}

static void srv_conn_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    if (sl_conn_data(c))
        S.conns--;
    /* Drop unsent answers for this connection: its handle dies now. */
    uni_reply **pp = &S.pending;
    while (*pp) {
        uni_reply *r = *pp;
        if (r->c == c) {
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
    S.pending_tail = &S.pending;
    while (*S.pending_tail)
        S.pending_tail = &(*S.pending_tail)->next;
}

static void srv_stream_open(sl_stream *s, void *ud)
{
    srv_stream *x = calloc(1, sizeof *x);
    if (!x) {
        sl_stream_stop_sending(s, 1);
        return;
    }
    x->id = sl_stream_id(s);
    x->uni = (x->id & 2) != 0;
    sl_stream_set_data(s, x);
    S.streams++;
}

static void srv_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    srv_stream *x = sl_stream_data(s);
    if (!x)
        return; /* our own answer streams carry nothing inbound */
    S.bytes_in += len;
    sl_stream_consume(s, len);
    x->count += len;
    if (len && !x->mode) {
        x->mode = data[0] == 'E' && !x->uni ? 'E' : data[0] == 'S' ? 'S' : 'H';
        if (x->mode == 'H')
            gnutls_hash_init(&x->h, GNUTLS_DIG_SHA256);
    }
    if (x->mode == 'E') {
        if (len && sl_stream_write(s, data, len, NULL) != SL_OK)
            sl_stream_reset(s, 2); /* echo is for small probes; do not buffer more */
        if (fin)
            sl_stream_finish(s);
        return;
    }
    if (!x->mode) { /* empty stream */
        x->mode = 'H';
        gnutls_hash_init(&x->h, GNUTLS_DIG_SHA256);
    }
    if (x->mode == 'H')
        gnutls_hash(x->h, data, len);
    if (!fin)
        return;
    uint8_t d[32];
    size_t dlen = 32;
    if (x->mode == 'H') {
        gnutls_hash_output(x->h, d);
    } else {
        dlen = 8;
        for (int i = 0; i < 8; i++)
            d[i] = (uint8_t)(x->count >> (56 - 8 * i));
    }
    if (!x->uni) {
        if (sl_stream_write(s, d, dlen, NULL) == SL_OK)
            sl_stream_finish(s);
        else
            sl_stream_reset(s, 3);
        return;
    }
    uni_reply *r = malloc(sizeof *r);
    if (!r)
        return;
    r->next = NULL;
    r->c = sl_stream_conn(s);
    for (int i = 0; i < 8; i++)
        r->msg[i] = (uint8_t)((uint64_t)x->id >> (56 - 8 * i));
    memcpy(r->msg + 8, d, dlen);
    r->len = 8 + dlen;
    *S.pending_tail = r;
    S.pending_tail = &r->next;
}

static void srv_stream_closed(sl_stream *s, void *ud)
{
    srv_stream *x = sl_stream_data(s);
    if (!x)
        return;
    if (x->h)
        gnutls_hash_deinit(x->h, NULL);
    free(x);
}

static void srv_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    (void)sl_datagram_send(c, data, len); /* unreliable both ways: errors are losses */
}

/* After each poll: open the unidirectional answers queued by callbacks. A
 * connection at the client's stream limit keeps its answers for later. */
static void srv_check(uv_check_t *h)
{
    uni_reply **pp = &S.pending;
    while (*pp) {
        uni_reply *r = *pp;
        sl_stream *s;
        int rc = sl_stream_open(r->c, false, SL_PRIO_NORMAL, NULL, &s);
        if (rc == SL_ERR_LIMIT) {
            pp = &r->next;
            continue;
        }
        if (rc == SL_OK && sl_stream_write(s, r->msg, r->len, NULL) == SL_OK)
            sl_stream_finish(s);
        *pp = r->next;
        free(r);
    }
    S.pending_tail = pp;
}

static void print_stats(void)
{
    sl_transport_stats ts;
    memset(&ts, 0, sizeof ts);
    sl_transport_stats_get(T, &ts);
    printf("STATS conns=%" PRIu32 " rss_bytes=%ld cpu_s=%.3f streams=%" PRIu64 " bytes_in=%" PRIu64
           " accepted=%" PRIu64 " refused=%" PRIu64 " retries=%" PRIu64 "\n",
           S.conns, rss_bytes(), cpu_seconds(), S.streams, S.bytes_in, ts.accepted, ts.refused,
           ts.retries_sent);
    fflush(stdout);
}

static void client_interrupted(void);
static void relay_signal(int sig);

static void on_signal(uv_signal_t *h, int sig)
{
    if (O.relay) {
        relay_signal(sig);
        return;
    }
    if (sig == SIGUSR1) {
        print_stats();
        return;
    }
    if (!O.server) {
        client_interrupted();
        return;
    }
    if (!shutting_down)
        uv_close((uv_handle_t *)&S.check, NULL);
    shutdown_all();
}

static void on_deadline(uv_timer_t *h);

static int run_server(void)
{
    sl_transport_settings s;
    fill_common(&s, NULL);
    s.cb.on_conn_ready = srv_conn_ready;
    s.cb.on_conn_closed = srv_conn_closed;
    s.cb.on_stream_open = srv_stream_open;
    s.cb.on_stream_data = srv_stream_data;
    s.cb.on_stream_closed = srv_stream_closed;
    s.cb.on_datagram = srv_datagram;
    s.tls.cert_file = O.cert;
    s.tls.key_file = O.key;
    /* Clients are anonymous load generators: no client certificate asked. */
    s.tls.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY;
    if (O.max_per_addr)
        s.max_connections_per_addr = O.max_per_addr;
    if (O.retry >= 0)
        s.retry = (uint8_t)O.retry;
    int rc = sl_quic_new(&s, &T);
    if (rc) {
        fprintf(stderr, "quic_peer: sl_quic_new: %s\n", sl_strerror(rc));
        return 1;
    }
    uint8_t pin[32];
    char pinhex[65];
    sl_transport_cert_sha256(T, pin);
    hex(pin, 32, pinhex);
    if (O.print_pin) {
        printf("%s\n", pinhex);
        sl_transport_del(T);
        return 0;
    }
    rc = sl_transport_listen(T, O.host ? O.host : "127.0.0.1", O.port);
    uint16_t port = 0;
    if (rc == SL_OK)
        rc = sl_transport_local_port(T, &port);
    if (rc) {
        fprintf(stderr, "quic_peer: listen: %s\n", sl_strerror(rc));
        sl_transport_close(T, transport_closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        sl_transport_del(T);
        return 1;
    }
    S.pending_tail = &S.pending;
    uv_check_init(&loop, &S.check);
    uv_check_start(&S.check, srv_check);
    uv_unref((uv_handle_t *)&S.check);
    if (O.timeout_s > 0)
        uv_timer_start(&deadline, on_deadline, (uint64_t)(O.timeout_s * 1000), 0);
    printf("READY port=%u pin=%s\n", port, pinhex);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    sl_transport_del(T);
    while (S.pending) {
        uni_reply *r = S.pending;
        S.pending = r->next;
        free(r);
    }
    return exit_code;
}

/* ============================================================== client */

typedef struct tx_stream {
    sl_stream *s; /* NULL before open and after close */
    uint32_t k;   /* index: selects the pattern */
    int64_t id;
    uint64_t off; /* bytes written */
    bool finished, answered, blocked;
    gnutls_hash_hd_t h; /* over what we wrote */
    uint8_t want[32];   /* the expected answer: SHA-256, or the count (BE) */
    uint8_t got[40];
    size_t gotlen;
} tx_stream;

/* A unidirectional answer stream the server opened. */
typedef struct rx_answer {
    uint8_t buf[40];
    size_t len;
} rx_answer;

static struct {
    sl_conn *conn;
    bool ready, lost;
    sl_close_info why;
    int close_err;
    char close_reason[96];
    tx_stream *tx;
    uint32_t opened, answered, good, bad, blocked;
    uint64_t t_start, t_end; /* ns: first open, last answer */
    uv_idle_t idle;
    uv_timer_t timer; /* hold / idle-sec / datagram grace */
    bool done;
    /* datagrams */
    uint32_t dg_sent, dg_echoed;
    uint64_t dg_last_send;
    /* open latency */
    uint32_t probes, probes_done;
    sl_stream *probe;
    bool probe_answered;
    uint64_t probe_t0;
    double *lat_us;
    /* handshakes / conns / first byte */
    uint32_t hs_started, hs_ready, hs_failed, hs_inflight, warm, n_resumed, n_early;
    uint64_t hs_t0;
    sl_conn *fb_conn; /* --first-byte: the connection being timed */
    sl_stream *fb_stream;
    uint32_t fb_done;
    uint64_t fb_t0;
    bool held;
    /* hold */
    bool holding;
    uint64_t hold_t0;
    sl_conn_stats cstats; /* the connection's stats when the transfer completed */
    bool have_cstats;
} C;

static uint64_t now(void)
{
    return uv_hrtime();
}

/* Bytes of the server's answer to one stream. */
#define ANSWER_LEN ((size_t)(O.no_verify ? 8 : 32))

static void finish_run(void);
static void client_turn(uv_idle_t *h);
static void repump_all(void);

/* Ask for a client turn (client_turn) on the next loop iteration. */
static void kick(void)
{
    if (!C.done)
        uv_idle_start(&C.idle, client_turn);
}

/* Push stream x until the transport refuses; end it after the last byte. */
static void pump(tx_stream *x)
{
    if (!x->s || x->finished)
        return;
    while (x->off < O.bytes) {
        size_t n = O.bytes - x->off < SLICE ? (size_t)(O.bytes - x->off) : SLICE;
        const uint8_t *p = content(x->k, x->off, &n);
        int rc = sl_stream_write(x->s, p, n, NULL);
        if (rc == SL_ERR_AGAIN) {
            if (!x->blocked)
                C.blocked++;
            x->blocked = true;
            return;
        }
        if (rc) {
            fprintf(stderr, "quic_peer: write on stream %" PRId64 ": %s\n", x->id, sl_strerror(rc));
            C.bad++;
            x->finished = true;
            return;
        }
        if (!O.no_verify)
            gnutls_hash(x->h, p, n);
        x->off += n;
    }
    if (sl_stream_finish(x->s) != SL_OK)
        C.bad++;
    x->finished = true;
    if (O.no_verify)
        for (int i = 0; i < 8; i++)
            x->want[i] = (uint8_t)(O.bytes >> (56 - 8 * i));
    else
        gnutls_hash_output(x->h, x->want);
}

static void check_answer(tx_stream *x, const uint8_t *hash)
{
    if (x->answered)
        return;
    x->answered = true;
    C.answered++;
    if (x->finished && memcmp(hash, x->want, ANSWER_LEN) == 0) {
        C.good++;
    } else {
        char a[65], b[65];
        hex(x->want, ANSWER_LEN, a);
        hex(hash, ANSWER_LEN, b);
        fprintf(stderr, "quic_peer: stream %" PRId64 ": answer mismatch: sent %s, peer got %s\n",
                x->id, a, b);
        C.bad++;
    }
    if (C.answered == O.streams) {
        C.t_end = now();
        if (C.conn && sl_conn_stats_get(C.conn, &C.cstats) == SL_OK)
            C.have_cstats = true;
    }
    kick();
}

static tx_stream *tx_by_id(int64_t id)
{
    uint64_t i = (uint64_t)id >> 2; /* our streams are opened in index order */
    if (i < C.opened && C.tx[i].id == id)
        return &C.tx[i];
    for (uint32_t k = 0; k < C.opened; k++)
        if (C.tx[k].id == id)
            return &C.tx[k];
    return NULL;
}

/* Open the transfer's streams that the peer's limit allows now. */
static void open_streams(void)
{
    while (C.conn && C.opened < O.streams) {
        tx_stream *x = &C.tx[C.opened];
        int rc = sl_stream_open(C.conn, !O.uni, SL_PRIO_NORMAL, x, &x->s);
        if (rc == SL_ERR_LIMIT)
            return; /* again when one of ours closes */
        if (rc) {
            fprintf(stderr, "quic_peer: open stream: %s\n", sl_strerror(rc));
            C.bad++;
            C.answered = O.streams;
            return;
        }
        if (C.opened == 0)
            C.t_start = now();
        x->k = C.opened++;
        x->id = sl_stream_id(x->s);
        gnutls_hash_init(&x->h, GNUTLS_DIG_SHA256);
        pump(x);
    }
}

static void send_datagrams(void)
{
    uint8_t buf[1200];
    size_t max = C.conn ? sl_datagram_max(C.conn) : 0;
    if (max > sizeof buf)
        max = sizeof buf;
    if (max < 8)
        return;
    while (C.dg_sent < O.datagrams) {
        memset(buf, 0, max);
        memcpy(buf, &C.dg_sent, sizeof C.dg_sent);
        int rc = sl_datagram_send(C.conn, buf, max);
        if (rc == SL_ERR_AGAIN)
            return; /* queue full: next turn */
        if (rc) {
            fprintf(stderr, "quic_peer: datagram: %s\n", sl_strerror(rc));
            C.dg_sent = O.datagrams;
            return;
        }
        C.dg_sent++;
        C.dg_last_send = now();
    }
}

static void start_probe(void)
{
    sl_stream *s;
    C.probe_answered = false;
    C.probe_t0 = now();
    int rc = sl_stream_open(C.conn, true, SL_PRIO_NORMAL, &C, &s);
    if (rc == SL_ERR_LIMIT) {
        C.probe = NULL;
        return; /* retried on the next turn */
    }
    if (rc == SL_OK)
        rc = sl_stream_write(s, "E", 1, NULL);
    if (rc) {
        fprintf(stderr, "quic_peer: probe: %s\n", sl_strerror(rc));
        C.bad++;
        C.probes_done = O.open_latency;
        return;
    }
    C.probe = s;
}

static void start_connect(void)
{
    sl_conn *c;
    int rc = sl_transport_connect(T, O.host, O.port, NULL, &c);
    if (rc) {
        fprintf(stderr, "quic_peer: connect: %s\n", sl_strerror(rc));
        C.hs_failed++;
        C.hs_started++;
        return;
    }
    C.hs_started++;
    C.hs_inflight++;
}

/* --first-byte: open the timed echo probe on c (before the handshake with
 * --early: replay-safe, sent as 0-RTT). False if the stream limit is not
 * known yet (no cached transport parameters) or on error. */
static bool fb_open(sl_conn *c)
{
    sl_stream *s;
    int rc = sl_stream_open(c, true, SL_PRIO_NORMAL, &C, &s);
    if (rc == SL_ERR_LIMIT)
        return false;
    if (rc == SL_OK && O.early)
        rc = sl_stream_allow_early_data(s);
    if (rc == SL_OK)
        rc = sl_stream_write(s, "E", 1, NULL);
    if (rc == SL_OK)
        rc = sl_stream_finish(s);
    if (rc) {
        fprintf(stderr, "quic_peer: first-byte probe: %s\n", sl_strerror(rc));
        C.bad++;
        kick();
        return false;
    }
    C.fb_stream = s;
    return true;
}

static void on_hold_timer(uv_timer_t *h)
{
    finish_run();
}
static void on_turn_timer(uv_timer_t *h)
{
    kick();
}

/* One turn of client work, outside transport callbacks. Stops itself when
 * there is nothing to do; callbacks restart it with kick(). */
static void client_turn(uv_idle_t *h)
{
    uv_idle_stop(&C.idle);
    if (C.done)
        return;
    if (O.handshakes) {
        if (C.hs_ready + C.hs_failed >= O.handshakes + C.warm) {
            finish_run();
            return;
        }
        if (C.hs_inflight == 0 && C.hs_started < O.handshakes + C.warm)
            start_connect();
        return;
    }
    if (O.first_byte) {
        if (C.bad || C.fb_done >= O.first_byte + C.warm) {
            finish_run();
            return;
        }
        if (!C.fb_conn) {
            C.fb_t0 = now();
            C.fb_stream = NULL;
            int rc = sl_transport_connect(T, O.host, O.port, NULL, &C.fb_conn);
            if (rc) {
                fprintf(stderr, "quic_peer: connect: %s\n", sl_strerror(rc));
                C.bad++;
                C.fb_conn = NULL;
                kick();
                return;
            }
            if (O.early)
                fb_open(C.fb_conn); /* 0-RTT if the cache allows, else at ready */
        }
        return;
    }
    if (O.conns) {
        while (C.hs_inflight < O.parallel && C.hs_started < O.conns)
            start_connect();
        if (!C.held && C.hs_ready + C.hs_failed >= O.conns) {
            C.held = true;
            C.t_end = now();
            printf("HELD n=%" PRIu32 " failed=%" PRIu32 "\n", C.hs_ready, C.hs_failed);
            fflush(stdout);
            uv_timer_start(&C.timer, on_hold_timer, (uint64_t)(O.idle_sec * 1000), 0);
        }
        return;
    }
    if (!C.ready)
        return;
    if (C.lost) {
        finish_run();
        return;
    }
    if (O.open_latency) {
        if (C.probe && C.probe_answered) {
            sl_stream_finish(C.probe);
            C.probe = NULL;
        }
        if (C.probes_done >= O.open_latency) {
            finish_run();
            return;
        }
        if (!C.probe)
            start_probe();
        if (!C.probe)
            kick(); /* at the stream limit: try again */
        return;
    }
    open_streams();
    repump_all();
    if (O.datagrams)
        send_datagrams();
    if (C.answered < O.streams)
        return;
    if (C.holding)
        return;
    /* Datagrams are unreliable: wait for echoes at most 1 s after the last send. */
    if (O.datagrams && C.dg_echoed < C.dg_sent && now() - C.dg_last_send < 1000000000ull) {
        uv_timer_start(&C.timer, on_turn_timer, 100, 0);
        return;
    }
    if (O.hold_sec > 0 && C.bad == 0) {
        C.holding = true;
        C.hold_t0 = now();
        printf("HOLDING\n");
        fflush(stdout);
        uv_timer_start(&C.timer, on_hold_timer, (uint64_t)(O.hold_sec * 1000), 0);
        return;
    }
    finish_run();
}

static void cli_conn_ready(sl_conn *c, void *ud)
{
    C.conn = c;
    C.ready = true;
    kick();
}

static void cli_conn_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    if (c != C.conn && C.conn)
        return;
    C.conn = NULL;
    C.lost = true;
    C.close_err = why->err;
    snprintf(C.close_reason, sizeof C.close_reason, "%s", why->reason ? why->reason : "");
    if (!C.ready) {
        C.ready = true; /* let the turn report the failure */
        fprintf(stderr, "quic_peer: connection failed: %s (%s)\n", sl_err_name(why->err),
                C.close_reason);
    }
    kick();
}

/* Handshake failures in --handshakes/--conns mode: on_conn_closed without
 * on_conn_ready. We tell them apart with the connection's user pointer. */
static void cli_conn_closed_multi(sl_conn *c, const sl_close_info *why, void *ud)
{
    if (O.first_byte) {
        if (c == C.fb_conn) {
            fprintf(stderr, "quic_peer: connection closed before the first byte: %s (%s)\n",
                    sl_err_name(why->err), why->reason ? why->reason : "");
            C.hs_failed++;
            C.bad++;
            C.fb_conn = NULL;
            C.fb_stream = NULL;
        }
        kick();
        return;
    }
    if (!sl_conn_data(c)) {
        C.hs_inflight--;
        C.hs_failed++;
        if (C.hs_failed <= 5)
            fprintf(stderr, "quic_peer: handshake failed: %s (%s)\n", sl_err_name(why->err),
                    why->reason ? why->reason : "");
    } else if (O.conns && C.held && !shutting_down && !C.done) {
        C.hs_ready--;
        C.hs_failed++;
        fprintf(stderr, "quic_peer: a held connection closed: %s\n", sl_err_name(why->err));
    }
    kick();
}

static void cli_conn_ready_multi(sl_conn *c, void *ud)
{
    sl_conn_set_data(c, (void *)1);
    C.hs_ready++;
    if (O.first_byte) {
        if (c == C.fb_conn && !C.fb_stream)
            fb_open(c);
        return;
    }
    C.hs_inflight--;
    if (O.handshakes) {
        sl_conn_stats st;
        if (C.hs_ready > C.warm && sl_conn_stats_get(c, &st) == SL_OK && st.resumed)
            C.n_resumed++;
        if (C.hs_ready == C.warm)
            C.hs_t0 = now(); /* the cache is primed: time from here */
        sl_conn_close(c, 0, "done");
    }
    kick();
}

static void cli_stream_open(sl_stream *s, void *ud)
{
    /* Only the server's unidirectional answers arrive here. */
    rx_answer *a = calloc(1, sizeof *a);
    sl_stream_set_data(s, a);
}

static void cli_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    sl_stream_consume(s, len);
    void *sd = sl_stream_data(s);
    if (O.first_byte) {
        if (s == C.fb_stream && len && C.fb_conn) {
            uint32_t i = C.fb_done++;
            if (i >= C.warm) {
                C.lat_us[i - C.warm] = (double)(now() - C.fb_t0) / 1e3;
                sl_conn_stats st;
                if (sl_conn_stats_get(C.fb_conn, &st) == SL_OK) {
                    C.n_resumed += st.resumed;
                    C.n_early += st.early_data_accepted;
                }
            }
            sl_conn_close(C.fb_conn, 0, "done");
            C.fb_conn = NULL;
            C.fb_stream = NULL;
            kick();
        }
        return;
    }
    if (O.open_latency) {
        if (s == C.probe && len && !C.probe_answered) {
            C.lat_us[C.probes_done++] = (double)(now() - C.probe_t0) / 1e3;
            C.probe_answered = true;
            kick();
        }
        return;
    }
    if (sl_stream_id(s) & 2) { /* the server's unidirectional answer */
        rx_answer *a = sd;
        if (!a)
            return;
        size_t take = len < sizeof a->buf - a->len ? len : sizeof a->buf - a->len;
        memcpy(a->buf + a->len, data, take);
        a->len += take;
        if (!fin)
            return;
        int64_t id = 0;
        for (int i = 0; i < 8; i++)
            id = (int64_t)(((uint64_t)id << 8) | a->buf[i]);
        tx_stream *x = a->len == 8 + ANSWER_LEN ? tx_by_id(id) : NULL;
        if (!x) {
            fprintf(stderr, "quic_peer: bad answer stream (%zu bytes)\n", a->len);
            C.bad++;
            return;
        }
        check_answer(x, a->buf + 8);
        return;
    }
    tx_stream *x = sd;
    if (!x)
        return;
    size_t take = len < ANSWER_LEN - x->gotlen ? len : ANSWER_LEN - x->gotlen;
    if (x->gotlen + len > ANSWER_LEN)
        fprintf(stderr, "quic_peer: stream %" PRId64 ": answer too long\n", x->id);
    memcpy(x->got + x->gotlen, data, take);
    x->gotlen += take;
    if (!fin)
        return;
    if (x->gotlen != ANSWER_LEN) {
        memset(x->got, 0, sizeof x->got);
        fprintf(stderr, "quic_peer: stream %" PRId64 ": short answer\n", x->id);
    }
    check_answer(x, x->got);
}

/*
 * sl_stream_write's contract: after SL_ERR_AGAIN, wait for on_stream_writable
 * on that stream. With --repump-all we do not rely on it alone and retry
 * every refused stream whenever any stream drains or closes: a stream
 * refused because the connection-wide buffer was full, with nothing of its
 * own buffered, was never woken by the first transport (18dfc23; fixed by
 * notify_writable in 6e039b2). The many_streams bench falls back to this
 * only when the strict run stalls, and says so.
 */
static void repump_all(void)
{
    if (!O.repump_all || !C.blocked)
        return;
    for (uint32_t i = 0; i < C.opened && C.blocked; i++)
        if (C.tx[i].blocked && C.tx[i].s) {
            C.tx[i].blocked = false;
            C.blocked--;
            pump(&C.tx[i]);
        }
}

static void cli_stream_writable(sl_stream *s, void *ud)
{
    tx_stream *x = sl_stream_data(s);
    if (!x || O.open_latency || O.first_byte || (sl_stream_id(s) & 1))
        return;
    if (x->blocked) {
        x->blocked = false;
        C.blocked--;
    }
    pump(x);
    repump_all();
}

static void cli_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    fprintf(stderr, "quic_peer: stream %" PRId64 " reset by peer (%" PRIu64 ")\n", sl_stream_id(s),
            code);
    C.bad++;
    C.answered = O.streams;
    kick();
}

static void cli_stream_closed(sl_stream *s, void *ud)
{
    void *sd = sl_stream_data(s);
    if (O.open_latency || O.first_byte) {
        if (s == C.probe)
            C.probe = NULL;
        if (s == C.fb_stream)
            C.fb_stream = NULL;
        return;
    }
    if (sl_stream_id(s) & 1) { /* server-initiated: an answer stream */
        free(sd);
        return;
    }
    tx_stream *x = sd;
    if (x) {
        x->s = NULL;
        if (x->blocked) {
            x->blocked = false;
            C.blocked--;
        }
    }
    if (C.opened < O.streams || C.blocked)
        kick(); /* a stream slot or buffer space may have freed up */
}

static void cli_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    C.dg_echoed++;
    if (C.answered >= O.streams)
        kick();
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Print the JSON line, set the exit code, close everything. */
static void finish_run(void)
{
    if (C.done)
        return;
    C.done = true;
    double cpu = cpu_seconds();
    if (O.handshakes) {
        double sec = (double)(now() - C.hs_t0) / 1e9;
        uint32_t n = C.hs_ready > C.warm ? C.hs_ready - C.warm : 0;
        printf("{\"bench\":\"%s\",\"handshakes\":%" PRIu32 ",\"failed\":%" PRIu32
               ",\"resumed\":%" PRIu32 ",\"seconds\":%.3f,\"handshakes_per_s\":%.1f,"
               "\"mean_ms\":%.3f,\"cpu_s\":%.3f}\n",
               O.json, n, C.hs_failed, C.n_resumed, sec, n / sec, n ? sec * 1e3 / n : 0.0, cpu);
        exit_code = C.hs_failed || n != O.handshakes ? 1 : 0;
    } else if (O.first_byte) {
        uint32_t n = C.fb_done > C.warm ? C.fb_done - C.warm : 0;
        double sum = 0;
        for (uint32_t i = 0; i < n; i++)
            sum += C.lat_us[i];
        qsort(C.lat_us, n, sizeof *C.lat_us, cmp_double);
        printf("{\"bench\":\"%s\",\"connections\":%" PRIu32 ",\"early\":%s,\"resumed\":%" PRIu32
               ",\"early_accepted\":%" PRIu32 ",\"mean_us\":%.1f,\"median_us\":%.1f,"
               "\"p99_us\":%.1f,\"cpu_s\":%.3f}\n",
               O.json, n, O.early ? "true" : "false", C.n_resumed, C.n_early, n ? sum / n : 0.0,
               n ? C.lat_us[n / 2] : 0.0, n ? C.lat_us[(size_t)(n * 0.99)] : 0.0, cpu);
        exit_code = n == O.first_byte && !C.bad ? 0 : 1;
    } else if (O.conns) {
        double sec = (double)(C.t_end - C.hs_t0) / 1e9;
        printf("{\"bench\":\"%s\",\"conns\":%" PRIu32 ",\"failed\":%" PRIu32
               ",\"establish_s\":%.3f,\"idle_sec\":%.1f,\"client_rss_bytes\":%ld,"
               "\"cpu_s\":%.3f}\n",
               O.json, C.hs_ready, C.hs_failed, sec, O.idle_sec, rss_bytes(), cpu);
        exit_code = C.hs_failed ? 1 : 0;
    } else if (O.open_latency) {
        uint32_t n = C.probes_done;
        double sum = 0;
        for (uint32_t i = 0; i < n; i++)
            sum += C.lat_us[i];
        qsort(C.lat_us, n, sizeof *C.lat_us, cmp_double);
        printf("{\"bench\":\"%s\",\"probes\":%" PRIu32 ",\"mean_us\":%.1f,\"median_us\":%.1f,"
               "\"p99_us\":%.1f,\"cpu_s\":%.3f}\n",
               O.json, n, n ? sum / n : 0.0, n ? C.lat_us[n / 2] : 0.0,
               n ? C.lat_us[(size_t)(n * 0.99)] : 0.0, cpu);
        exit_code = n == O.open_latency && !C.bad ? 0 : 1;
    } else {
        uint64_t total = O.bytes * O.streams;
        uint64_t end = C.t_end ? C.t_end : now();
        double sec = C.t_start ? (double)(end - C.t_start) / 1e9 : 0;
        bool ok = C.good == O.streams && C.bad == 0;
        printf("{\"bench\":\"%s\",\"bytes\":%" PRIu64 ",\"streams\":%" PRIu32
               ",\"uni\":%s,\"sha256\":%s,\"seconds\":%.3f,\"mb_per_s\":%.1f,\"cpu_s\":%.3f,"
               "\"hashes_ok\":%" PRIu32 ",\"hashes_bad\":%" PRIu32,
               O.json, total, O.streams, O.uni ? "true" : "false", O.no_verify ? "false" : "true",
               sec, sec > 0 && ok ? total / 1e6 / sec : 0.0, cpu, C.good, O.streams - C.good);
        if (O.datagrams)
            printf(",\"datagrams_sent\":%" PRIu32 ",\"datagrams_echoed\":%" PRIu32, C.dg_sent,
                   C.dg_echoed);
        if (C.have_cstats)
            printf(",\"pkts_sent\":%" PRIu64 ",\"pkts_lost\":%" PRIu64 ",\"srtt_us\":%" PRIu64,
                   C.cstats.pkts_sent, C.cstats.pkts_lost, C.cstats.smoothed_rtt_us);
        if (O.hold_sec > 0) {
            if (C.holding && C.lost)
                printf(",\"close_err\":\"%s\",\"hold_ms\":%.0f", sl_err_name(C.close_err),
                       (double)(now() - C.hold_t0) / 1e6);
            else
                printf(",\"close_err\":null,\"hold_ms\":%.0f",
                       C.holding ? (double)(now() - C.hold_t0) / 1e6 : 0.0);
        }
        if (C.lost && !C.holding)
            printf(",\"error\":\"connection closed: %s\"", sl_err_name(C.close_err));
        printf(",\"ok\":%s}\n", ok ? "true" : "false");
        if (O.datagrams && C.dg_echoed == 0)
            ok = false; /* some may be lost, not all */
        exit_code = ok ? 0 : 1;
    }
    fflush(stdout);
    uv_close((uv_handle_t *)&C.idle, NULL);
    uv_close((uv_handle_t *)&C.timer, NULL);
    shutdown_all();
}

static void on_deadline(uv_timer_t *h)
{
    if (O.relay) {
        relay_signal(SIGTERM);
        return;
    }
    if (O.server) {
        fprintf(stderr, "quic_peer: server --timeout reached\n");
        if (!shutting_down)
            uv_close((uv_handle_t *)&S.check, NULL);
        shutdown_all();
        return;
    }
    fprintf(stderr,
            "quic_peer: timeout after %.0f s (answered %" PRIu32 "/%" PRIu32
            ", blocked streams %" PRIu32 ", probes %" PRIu32 ", ready conns %" PRIu32 ")\n",
            O.timeout_s, C.answered, O.streams, C.blocked, C.probes_done, C.hs_ready);
    printf("{\"bench\":\"%s\",\"error\":\"timeout\",\"ok\":false}\n", O.json);
    fflush(stdout);
    C.done = true;
    exit_code = 2;
    uv_close((uv_handle_t *)&C.idle, NULL);
    uv_close((uv_handle_t *)&C.timer, NULL);
    shutdown_all();
}

/* Client: SIGTERM/SIGINT end the run as a failure, reported. */
static void client_interrupted(void)
{
    if (C.done) {
        shutdown_all();
        return;
    }
    printf("{\"bench\":\"%s\",\"error\":\"interrupted\",\"ok\":false}\n", O.json);
    fflush(stdout);
    C.done = true;
    exit_code = 130;
    uv_close((uv_handle_t *)&C.idle, NULL);
    uv_close((uv_handle_t *)&C.timer, NULL);
    shutdown_all();
}

static int run_client(void)
{
    sl_transport_settings s;
    fill_common(&s, NULL);
    bool multi = O.handshakes || O.conns || O.first_byte;
    s.cb.on_conn_ready = multi ? cli_conn_ready_multi : cli_conn_ready;
    s.cb.on_conn_closed = multi ? cli_conn_closed_multi : cli_conn_closed;
    s.cb.on_stream_open = cli_stream_open;
    s.cb.on_stream_data = cli_stream_data;
    s.cb.on_stream_writable = cli_stream_writable;
    s.cb.on_stream_reset = cli_stream_reset;
    s.cb.on_stream_closed = cli_stream_closed;
    s.cb.on_datagram = cli_datagram;
    s.tls.verify = SL_VERIFY_PIN_CERT;
    if (unhex(O.pin_hex, s.tls.pin, 32))
        usage();
    if (O.conns && s.max_connections < O.conns)
        s.max_connections = O.conns;
    /* Handshakes are full unless asked otherwise: no tickets, no tokens. */
    s.session_cache = O.resume || O.early;
    C.warm = O.resume || O.early ? 1 : 0;
    int rc = sl_quic_new(&s, &T);
    if (rc) {
        fprintf(stderr, "quic_peer: sl_quic_new: %s\n", sl_strerror(rc));
        return 1;
    }
    C.tx = calloc(O.streams, sizeof *C.tx);
    C.lat_us = calloc(O.open_latency + O.first_byte + 1, sizeof *C.lat_us);
    if (!C.tx || !C.lat_us) {
        fprintf(stderr, "quic_peer: out of memory\n");
        return 1;
    }
    uv_idle_init(&loop, &C.idle);
    uv_timer_init(&loop, &C.timer);
    uv_timer_start(&deadline, on_deadline, (uint64_t)(O.timeout_s * 1000), 0);
    C.hs_t0 = now();
    if (multi) {
        kick();
    } else {
        rc = sl_transport_connect(T, O.host, O.port, NULL, &C.conn);
        if (rc) {
            fprintf(stderr, "quic_peer: connect %s:%u: %s\n", O.host, O.port, sl_strerror(rc));
            exit_code = 1;
            C.done = true;
            uv_close((uv_handle_t *)&C.idle, NULL);
            uv_close((uv_handle_t *)&C.timer, NULL);
            shutdown_all();
        }
        C.conn = NULL; /* set again when ready */
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    sl_transport_del(T);
    for (uint32_t i = 0; i < O.streams; i++)
        if (C.tx[i].h)
            gnutls_hash_deinit(C.tx[i].h, NULL);
    free(C.tx);
    free(C.lat_us);
    return exit_code;
}

/* =============================================================== relay */

/*
 * A UDP relay that impairs the path the way `tc qdisc ... netem delay D
 * loss L% reorder R% C%` would on both ends of a link, for kernels built
 * without sch_netem. Packets from the client (the first address that sends
 * to --host:--port) go to --to-host:--to-port, answers go back to the
 * client. In each direction: a packet is dropped with probability L; of the
 * others, R (correlated C, netem's formula) leave at once and the rest
 * after D milliseconds, so delayed packets are overtaken. SIGUSR2 toggles a
 * blackhole (everything dropped, both ways); SIGUSR1 prints `STATS fwd=<n>
 * dropped=<n> reordered=<n> blackhole=<0|1>`. Prints `READY port=<p>`.
 */
typedef struct rpkt {
    struct rpkt *next;
    uint64_t due; /* ns, uv_hrtime */
    size_t len;
    uint8_t data[];
} rpkt;

typedef struct lane {
    rpkt *head, *tail; /* delayed packets, in due order */
    uv_timer_t timer;
    uv_udp_t *out; /* the socket to send from */
    struct sockaddr_storage *to;
    double last_reorder; /* netem's correlated random state */
} lane;

static struct {
    uv_udp_t front, back; /* facing the client; facing the server */
    struct sockaddr_storage client, server;
    bool have_client, blackhole, stopping;
    lane up, down; /* client->server, server->client */
    uint64_t rng;
    uint64_t fwd, dropped, reordered;
    uint8_t buf[65536];
} R;

static double rnd01(void)
{
    R.rng ^= R.rng << 13;
    R.rng ^= R.rng >> 7;
    R.rng ^= R.rng << 17;
    return (double)(R.rng >> 11) / 9007199254740992.0;
}

static void lane_send(lane *l, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (uv_udp_try_send(l->out, &b, 1, (const struct sockaddr *)l->to) < 0)
        R.dropped++; /* socket full: a loss, as on a real link */
    else
        R.fwd++;
}

static void lane_arm(lane *l);

static void lane_timer(uv_timer_t *t)
{
    lane *l = t->data;
    uint64_t n = uv_hrtime();
    while (l->head && l->head->due <= n + 500000) { /* within 0.5 ms: due */
        rpkt *p = l->head;
        l->head = p->next;
        if (!l->head)
            l->tail = NULL;
        if (!R.blackhole)
            lane_send(l, p->data, p->len);
        else
            R.dropped++;
        free(p);
    }
    lane_arm(l);
}

static void lane_arm(lane *l)
{
    if (!l->head || R.stopping)
        return;
    uint64_t n = uv_hrtime();
    uint64_t ms = l->head->due > n ? (l->head->due - n + 999999) / 1000000 : 0;
    uv_timer_start(&l->timer, lane_timer, ms, 0);
}

/* One packet enters a lane: drop, send now (reordered), or delay. */
static void lane_push(lane *l, const uint8_t *data, size_t len)
{
    if (R.blackhole || rnd01() * 100 < O.loss_pct) {
        R.dropped++;
        return;
    }
    double c = O.reorder_corr / 100;
    double r = (1 - c) * rnd01() + c * l->last_reorder;
    l->last_reorder = r;
    if (O.delay_ms <= 0 || r * 100 < O.reorder_pct) {
        if (O.delay_ms > 0)
            R.reordered++;
        lane_send(l, data, len);
        return;
    }
    rpkt *p = malloc(sizeof *p + len);
    if (!p) {
        R.dropped++;
        return;
    }
    p->next = NULL;
    p->due = uv_hrtime() + (uint64_t)(O.delay_ms * 1e6);
    p->len = len;
    memcpy(p->data, data, len);
    bool was_empty = !l->head;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    if (was_empty)
        lane_arm(l);
}

static void relay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init((char *)R.buf, sizeof R.buf);
}

static void front_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                       unsigned flags)
{
    if (n <= 0 || !from)
        return;
    /* The client is whoever spoke last (a rebinding client is followed). */
    memcpy(&R.client, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    R.have_client = true;
    lane_push(&R.up, (const uint8_t *)b->base, (size_t)n);
}

static void back_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    if (n <= 0 || !R.have_client)
        return;
    lane_push(&R.down, (const uint8_t *)b->base, (size_t)n);
}

static void lane_free(lane *l)
{
    while (l->head) {
        rpkt *p = l->head;
        l->head = p->next;
        free(p);
    }
    l->tail = NULL;
}

static void relay_signal(int sig)
{
    if (sig == SIGUSR1) {
        printf("STATS fwd=%" PRIu64 " dropped=%" PRIu64 " reordered=%" PRIu64 " blackhole=%d\n",
               R.fwd, R.dropped, R.reordered, R.blackhole);
        fflush(stdout);
        return;
    }
    if (sig == SIGUSR2) {
        R.blackhole = !R.blackhole;
        printf("BLACKHOLE %s\n", R.blackhole ? "on" : "off");
        fflush(stdout);
        return;
    }
    if (R.stopping)
        return;
    R.stopping = true;
    uv_close((uv_handle_t *)&R.front, NULL);
    uv_close((uv_handle_t *)&R.back, NULL);
    uv_close((uv_handle_t *)&R.up.timer, NULL);
    uv_close((uv_handle_t *)&R.down.timer, NULL);
    shutdown_all(); /* the signal and deadline handles; there is no transport */
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
}

static int run_relay(void)
{
    struct sockaddr_storage listen_addr, any;
    if (resolve(O.host ? O.host : "127.0.0.1", O.port, &listen_addr) ||
        resolve(O.to_host, O.to_port, &R.server)) {
        fprintf(stderr, "quic_peer: relay: bad address\n");
        return 64;
    }
    resolve(listen_addr.ss_family == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    if (R.server.ss_family != listen_addr.ss_family)
        resolve(R.server.ss_family == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    R.rng = O.seed * 0x9e3779b97f4a7c15ull + 1;
    uv_udp_init(&loop, &R.front);
    uv_udp_init(&loop, &R.back);
    int rc = uv_udp_bind(&R.front, (const struct sockaddr *)&listen_addr, 0);
    if (rc == 0)
        rc = uv_udp_bind(&R.back, (const struct sockaddr *)&any, 0);
    if (rc) {
        fprintf(stderr, "quic_peer: relay: bind: %s\n", uv_strerror(rc));
        relay_signal(SIGTERM);
        uv_run(&loop, UV_RUN_DEFAULT);
        return 1;
    }
    int big = 4 << 20;
    uv_recv_buffer_size((uv_handle_t *)&R.front, &big);
    uv_send_buffer_size((uv_handle_t *)&R.front, &big);
    uv_recv_buffer_size((uv_handle_t *)&R.back, &big);
    uv_send_buffer_size((uv_handle_t *)&R.back, &big);
    R.up = (lane){.out = &R.back, .to = &R.server};
    R.down = (lane){.out = &R.front, .to = &R.client};
    uv_timer_init(&loop, &R.up.timer);
    uv_timer_init(&loop, &R.down.timer);
    R.up.timer.data = &R.up;
    R.down.timer.data = &R.down;
    uv_udp_recv_start(&R.front, relay_alloc, front_recv);
    uv_udp_recv_start(&R.back, relay_alloc, back_recv);
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_udp_getsockname(&R.front, (struct sockaddr *)&bound, &blen);
    unsigned port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    if (O.timeout_s > 0)
        uv_timer_start(&deadline, on_deadline, (uint64_t)(O.timeout_s * 1000), 0);
    printf("READY port=%u\n", port);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    lane_free(&R.up);
    lane_free(&R.down);
    return 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!O.server && !O.relay)
        make_table();
    uv_loop_init(&loop);
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_usr1);
    uv_signal_init(&loop, &sig_usr2);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
    uv_signal_start(&sig_usr2, on_signal, SIGUSR2);
    uv_unref((uv_handle_t *)&sig_term);
    uv_unref((uv_handle_t *)&sig_int);
    uv_unref((uv_handle_t *)&sig_usr1);
    uv_unref((uv_handle_t *)&sig_usr2);
    uv_timer_init(&loop, &deadline);
    uv_unref((uv_handle_t *)&deadline);
    int rc = O.server ? run_server() : O.relay ? run_relay() : run_client();
    if (!shutting_down) { /* --print-pin, or a failure before the loop ran */
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        uv_close((uv_handle_t *)&sig_usr1, NULL);
        uv_close((uv_handle_t *)&sig_usr2, NULL);
        uv_close((uv_handle_t *)&deadline, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    free(table);
    return rc;
}
