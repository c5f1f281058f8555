/*
 * wt_echo_server.c: a Starling QUIC endpoint serving WebTransport, for the
 * tests that use clients we did not write (tests/wt_gtlsclient_test.sh:
 * ngtcp2's gtlsclient over HTTP/3; tests/browser_wt_test.sh: Chromium).
 *
 * It only uses the public transport API: a WebTransport session arrives
 * as an sl_conn through on_conn_ready like any connection, and is served
 * with the ordinary stream and datagram functions:
 *  - a bidirectional stream is echoed (bytes and FIN); one whose first
 *    bytes are "CLOSE" makes the server close the session with code 4242
 *    and reason "bye from starling";
 *  - a unidirectional stream is collected and, at its FIN, sent back on a
 *    new server-opened unidirectional stream; one whose first bytes are
 *    "LANE\n" is echoed as it arrives (without those bytes) on a new
 *    server-opened unidirectional stream, as Starling's lanes carry
 *    messages (bench/browser_bench.sh --diag compares the two);
 *  - a datagram is echoed.
 * A bidirectional stream whose first bytes are one of these commands (a
 * line sent in one write, so that it arrives in the first chunk) is not
 * echoed but does what it says, for the browser transport's tests
 * (tests/browser_webtransport_test.sh):
 *  - "SEND <n>\n": send n bytes of a pattern (byte i = (i * 7 + (i >> 12)) & 255)
 *    on this stream as fast as flow control lets, then FIN (one at a time);
 *  - "STATS\n": answer "written=W acked=A buffered=B total=N done=D\n" for
 *    the last SEND stream (its sl_stream_stats), then FIN;
 *  - "RESET <code>\n": reset our sending side with that code;
 *  - "STOP <code>\n": ask the peer to stop sending with that code;
 *  - "EVENTS\n": answer the log of stream resets and stop-sendings received
 *    ("reset code=C\n", "stop code=C\n"), then FIN.
 * GET /health answers "ok" (the transport does that).
 *
 * Prints "READY port=<p> sha256=<hex of the certificate's DER>" when
 * listening, and one line per session event (SESSION, CLOSED, REFUSED).
 * Exits 0 on SIGTERM/SIGINT or after --timeout seconds, having closed the
 * transport and freed everything.
 *
 *   wt_echo_server [--host 127.0.0.1] [--port 0] [--cert F --key F]
 *                  [--token T] [--origin O]... [--path /starling]
 *                  [--health /health] [--timeout 60]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "starling/transport.h"

#define MAX_ORIGINS 8
#define UNI_MAX (1u << 20)

typedef struct uni_buf {
    uint8_t *p;
    size_t len, cap;
    bool lane;      /* "LANE\n": echoed as it arrives on `out` */
    sl_stream *out; /* the lane's answer stream */
} uni_buf;

static uv_loop_t loop;
static sl_transport *T;
static uv_signal_t sigterm, sigint;
static uv_timer_t deadline;
static const char *token = "starling-test-token";

static void stop(void);

/* The SEND command's stream (one at a time) and its last stats. */
static struct {
    sl_stream *s;
    uint64_t total, written;
    sl_stream_stats last;
    bool done;
} sender;
static char events[4096]; /* EVENTS answer */
static size_t events_len;

static void log_event(const char *what, uint64_t code)
{
    int n = snprintf(events + events_len, sizeof events - events_len, "%s code=%llu\n", what,
                     (unsigned long long)code);
    if (n > 0 && (size_t)n < sizeof events - events_len)
        events_len += (size_t)n;
    printf("STREAM_%s code=%llu\n", what, (unsigned long long)code);
    fflush(stdout);
}

static uint8_t pattern_at(uint64_t i)
{
    return (uint8_t)((i * 7 + (i >> 12)) & 255);
}

/* Write the SEND stream's next bytes until done or the buffer is full. */
static void pump_sender(void)
{
    static uint8_t chunk[65536];
    while (sender.s && sender.written < sender.total) {
        size_t n = sender.total - sender.written < sizeof chunk
                       ? (size_t)(sender.total - sender.written)
                       : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern_at(sender.written + i);
        int rc = sl_stream_write(sender.s, chunk, n, NULL);
        if (rc == SL_ERR_AGAIN)
            return; /* on_stream_writable comes back */
        if (rc != SL_OK) {
            sender.s = NULL;
            return;
        }
        sender.written += n;
    }
    if (sender.s && sender.written == sender.total) {
        sl_stream_finish(sender.s);
        sender.done = true;
    }
}

static void answer(sl_stream *s, const char *text, size_t len)
{
    sl_stream_write(s, text, len, NULL);
    sl_stream_finish(s);
}

/* A command in the first chunk of a bidi stream? Returns true if handled. */
static bool command(sl_stream *s, const uint8_t *data, size_t len)
{
    char line[64];
    size_t n = 0;
    while (n < len && n < sizeof line - 1 && data[n] != '\n')
        n++;
    if (n == len || data[n] != '\n')
        return false;
    memcpy(line, data, n);
    line[n] = 0;
    unsigned long long v = 0;
    if (sscanf(line, "SEND %llu", &v) == 1) {
        if (sender.s)
            sl_stream_reset(sender.s, 0);
        memset(&sender, 0, sizeof sender);
        sender.s = s;
        sender.total = v;
        pump_sender();
        return true;
    }
    if (strcmp(line, "STATS") == 0) {
        if (sender.s)
            sl_stream_stats_get(sender.s, &sender.last);
        char out[160];
        int k =
            snprintf(out, sizeof out, "written=%llu acked=%llu buffered=%zu total=%llu done=%d\n",
                     (unsigned long long)sender.last.bytes_written,
                     (unsigned long long)sender.last.bytes_acked, sender.last.buffered,
                     (unsigned long long)sender.total, sender.done);
        answer(s, out, (size_t)k);
        return true;
    }
    if (sscanf(line, "RESET %llu", &v) == 1) {
        sl_stream_reset(s, v);
        return true;
    }
    if (sscanf(line, "STOP %llu", &v) == 1) {
        sl_stream_stop_sending(s, v);
        return true;
    }
    if (strcmp(line, "EVENTS") == 0) {
        answer(s, events, events_len);
        return true;
    }
    return false;
}

static void on_stream_writable(sl_stream *s, void *ud)
{
    if (s == sender.s)
        pump_sender();
}

static void on_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    log_event("reset", code);
}

static void on_stream_stop_sending(sl_stream *s, uint64_t code, void *ud)
{
    log_event("stop", code);
    if (s == sender.s) {
        sl_stream_stats_get(s, &sender.last);
        sender.s = NULL;
    }
}

static bool check_token(const char *tok, const char *origin, void *ud)
{
    (void)origin;
    (void)ud;
    return strcmp(tok, token) == 0;
}

static void on_refused(const char *path, const char *origin, int status, const char *reason,
                       void *ud)
{
    (void)ud;
    printf("REFUSED status=%d reason=\"%s\" origin=%s path=%s\n", status, reason,
           origin[0] ? origin : "-", path);
    fflush(stdout);
}

static void on_ready(sl_conn *c, void *ud)
{
    sl_wt_info info;
    if (sl_conn_wt_info(c, &info) == SL_OK)
        printf("SESSION ready path=%s origin=%s id=%llu\n", info.path,
               info.origin[0] ? info.origin : "-", (unsigned long long)info.session_id);
    else
        printf("CONN ready alpn=%s\n", sl_conn_alpn(c) ? sl_conn_alpn(c) : "-");
    fflush(stdout);
}

static void on_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    printf("CLOSED err=%s by_peer=%d app=%d code=%llu reason=\"%s\"\n",
           why->err ? sl_err_name(why->err) : "SL_OK", why->by_peer, why->app,
           (unsigned long long)why->code, why->reason ? why->reason : "");
    fflush(stdout);
}

static void on_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    sl_conn *c = sl_stream_conn(s);
    bool uni = (sl_stream_id(s) & 2) != 0;
    sl_stream_consume(s, len);
    if (!uni) {
        sl_stream_stats st;
        sl_stream_stats_get(s, &st);
        if (len >= 5 && memcmp(data, "CLOSE", 5) == 0 && st.bytes_recv == len) {
            printf("CLOSING session on request\n");
            fflush(stdout);
            sl_conn_close(c, 4242, "bye from starling");
            return;
        }
        if (st.bytes_recv == len && command(s, data, len))
            return;
        if (s == sender.s)
            return; /* what the peer sends on a SEND stream is dropped */
        if (len)
            sl_stream_write(s, data, len, NULL);
        if (fin)
            sl_stream_finish(s);
        return;
    }
    uni_buf *b = sl_stream_data(s);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return;
        sl_stream_set_data(s, b);
        if (len >= 5 && memcmp(data, "LANE\n", 5) == 0) {
            b->lane = true;
            data += 5;
            len -= 5;
            if (sl_stream_open(c, false, SL_PRIO_NORMAL, NULL, &b->out) != SL_OK)
                b->out = NULL;
        }
    }
    if (b->lane) {
        if (b->out && len)
            sl_stream_write(b->out, data, len, NULL);
        if (b->out && fin)
            sl_stream_finish(b->out);
        return;
    }
    if (len && b->len + len <= UNI_MAX) {
        if (b->len + len > b->cap) {
            size_t cap = (b->len + len) * 2;
            uint8_t *p = realloc(b->p, cap);
            if (!p)
                return;
            b->p = p;
            b->cap = cap;
        }
        memcpy(b->p + b->len, data, len);
        b->len += len;
    }
    if (fin) {
        sl_stream *out;
        if (sl_stream_open(c, false, SL_PRIO_NORMAL, NULL, &out) == SL_OK) {
            if (b->len)
                sl_stream_write(out, b->p, b->len, NULL);
            sl_stream_finish(out);
        }
    }
}

static void on_stream_closed(sl_stream *s, void *ud)
{
    if (s == sender.s) {
        sl_stream_stats_get(s, &sender.last);
        sender.s = NULL;
    }
    uni_buf *b = sl_stream_data(s);
    if (b && (sl_stream_id(s) & 2) && !(sl_stream_id(s) & 1)) {
        free(b->p);
        free(b);
    }
}

static void on_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    sl_datagram_send(c, data, len);
}

static void closed(sl_transport *t, void *ud)
{
    (void)t;
    (void)ud;
}

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void stop(void)
{
    static bool stopping;
    if (stopping)
        return;
    stopping = true;
    sl_transport_close(T, closed, NULL);
    uv_close((uv_handle_t *)&sigterm, handle_closed);
    uv_close((uv_handle_t *)&sigint, handle_closed);
    uv_close((uv_handle_t *)&deadline, handle_closed);
}

static void on_signal(uv_signal_t *h, int sig)
{
    stop();
}
static void on_deadline(uv_timer_t *h)
{
    stop();
}

static int usage(void)
{
    fprintf(stderr,
            "usage: wt_echo_server [--host H] [--port P] [--cert F --key F] [--token T]\n"
            "                      [--origin O]... [--path P] [--health P] [--timeout S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    const char *path = "/starling", *health = "/health";
    const char *origins[MAX_ORIGINS];
    size_t norigins = 0;
    unsigned port = 0, timeout = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = (unsigned)atoi(v);
        else if (!strcmp(a, "--cert"))
            cert = v;
        else if (!strcmp(a, "--key"))
            key = v;
        else if (!strcmp(a, "--token"))
            token = v;
        else if (!strcmp(a, "--origin") && norigins < MAX_ORIGINS)
            origins[norigins++] = v;
        else if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--health"))
            health = v;
        else if (!strcmp(a, "--timeout"))
            timeout = (unsigned)atoi(v);
        else
            return usage();
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    sl_webtransport_settings ws = {.path = path,
                                   .health_path = health,
                                   .origins = norigins ? origins : NULL,
                                   .n_origins = norigins,
                                   .check_token = check_token,
                                   .on_refused = on_refused};
    sl_transport_settings s;
    sl_transport_settings_default(&s);
    s.loop = &loop;
    s.tls.cert_file = cert;
    s.tls.key_file = key;
    s.webtransport = &ws;
    s.cb.on_conn_ready = on_ready;
    s.cb.on_conn_closed = on_closed;
    s.cb.on_stream_data = on_stream_data;
    s.cb.on_stream_closed = on_stream_closed;
    s.cb.on_stream_writable = on_stream_writable;
    s.cb.on_stream_reset = on_stream_reset;
    s.cb.on_stream_stop_sending = on_stream_stop_sending;
    s.cb.on_datagram = on_datagram;
    int rc = sl_quic_new(&s, &T);
    if (rc) {
        fprintf(stderr, "wt_echo_server: sl_quic_new: %s\n", sl_strerror(rc));
        return 1;
    }
    if ((rc = sl_transport_listen(T, host, (uint16_t)port)) != SL_OK) {
        fprintf(stderr, "wt_echo_server: listen: %s\n", sl_strerror(rc));
        sl_transport_close(T, closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        sl_transport_del(T);
        return 1;
    }
    uint16_t bound = 0;
    uint8_t sha[32];
    sl_transport_local_port(T, &bound);
    sl_transport_cert_sha256(T, sha);
    printf("READY port=%u sha256=", bound);
    for (int i = 0; i < 32; i++)
        printf("%02x", sha[i]);
    printf("\n");
    fflush(stdout);
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(&loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, (uint64_t)timeout * 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    sl_transport_del(T);
    rc = uv_loop_close(&loop);
    printf("EXIT loop_close=%d\n", rc);
    return rc == 0 ? 0 : 1;
}
