/*
 * starling/transport.h: moving bytes between nodes.
 *
 * A transport is an endpoint that listens and connects; a connection carries
 * streams (bidirectional or unidirectional, each with a priority class) and
 * unreliable datagrams. The interface is an ops table (sl_transport_ops) so
 * that the native QUIC implementation (transport/quic/, ngtcp2 + GnuTLS on a
 * libuv UDP socket) and the browser's WebTransport implementation (wasm/)
 * are interchangeable under the runtime.
 *
 * Flow control is the consumer's: received bytes are handed to on_stream_data
 * and QUIC credit is returned to the peer only when the consumer calls
 * sl_stream_consume(). A consumer that stops consuming stops the peer.
 *
 * Writes are buffered by the transport (the data is copied); sl_stream_write
 * reports how many bytes are buffered so the caller can apply backpressure,
 * and on_stream_writable fires when the buffer drains below the low-water
 * mark. Ownership: every write/datagram call copies its input.
 *
 * Handles: sl_conn and sl_stream pointers stay valid until their
 * on_conn_closed / on_stream_closed callback has returned.
 *
 * Browsers: a QUIC endpoint given sl_webtransport_settings also accepts
 * HTTP/3 ("h3") and serves WebTransport sessions on the same UDP port. Each
 * accepted session is an sl_conn like any other (see "WebTransport" below):
 * the same callbacks, the same stream and datagram functions, so the user of
 * this interface need not care whether a peer is a node or a browser.
 *
 * One thread: all calls on the loop's thread.
 *
 * In the browser build (Emscripten) this header is used without libuv:
 * uv_loop_t is only declared, `loop` is ignored, and the transport is
 * sl_web_transport_new() from starling/web.h (WebTransport over the
 * browser's `WebTransport` object; the page's event loop is its loop).
 */
#ifndef STARLING_TRANSPORT_H
#define STARLING_TRANSPORT_H

#ifdef __EMSCRIPTEN__
typedef struct uv_loop_s uv_loop_t;
#else
#include <uv.h>
#endif

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_transport sl_transport;
typedef struct sl_conn sl_conn;
typedef struct sl_stream sl_stream;

/* Our own ALPN for node-to-node connections. */
#define SL_ALPN "starling/1"

/* ----------------------------------------------------------------- TLS */

/* How a client checks the server's certificate (and a server a client's). */
typedef enum sl_verify {
    SL_VERIFY_CA = 0,       /* chain to ca_file (default; the cluster CA) */
    SL_VERIFY_PIN_CERT = 1, /* SHA-256 of the leaf certificate's DER equals pin */
    SL_VERIFY_PIN_SPKI = 2, /* SHA-256 of the leaf's SubjectPublicKeyInfo equals pin */
    /* No verification at all. Development only: a man in the middle can
     * read and change everything. The name is meant to be noticed. */
    SL_VERIFY_NONE_INSECURE_DEV_ONLY = 3
} sl_verify;

typedef struct sl_tls_settings {
    /* This endpoint's certificate chain and key (PEM). If both are NULL a
     * development certificate is generated: ECDSA P-256, X.509 v3, valid 14
     * days, its SHA-256 available from sl_transport_cert_sha256(). */
    const char *cert_file;
    const char *key_file;
    const char *ca_file;   /* trust anchor for SL_VERIFY_CA */
    uint8_t verify;        /* sl_verify, for the peer's certificate */
    uint8_t pin[32];       /* SHA-256 for the PIN modes */
    bool require_client_cert; /* server: mutual TLS (client must present a verified cert) */
    const char *server_name;  /* client: SNI and name check; NULL = none (node ids are keys) */
} sl_tls_settings;

/* ----------------------------------------------------------- callbacks */

/* Why a connection closed, in on_conn_closed. */
typedef struct sl_close_info {
    int err;            /* SL_OK for an application close, else an sl_err (SL_ERR_TLS, ...) */
    bool by_peer;       /* the peer closed (or we timed out: false) */
    bool app;           /* app_code is an application code */
    uint64_t code;      /* QUIC transport or application error code */
    const char *reason; /* NUL-terminated, possibly empty; valid during the callback */
} sl_close_info;

/*
 * Transport events. Any field may be NULL. Every callback receives the
 * transport's user pointer `ud` (settings.ud).
 */
typedef struct sl_transport_callbacks {
    /* A connection finished its handshake (inbound or outbound). */
    void (*on_conn_ready)(sl_conn *c, void *ud);
    /* A connection closed, or failed to establish. The handle dies after. */
    void (*on_conn_closed)(sl_conn *c, const sl_close_info *why, void *ud);
    /* The peer opened a stream (first data or a reset may follow). */
    void (*on_stream_open)(sl_stream *s, void *ud);
    /*
     * Bytes arrived on a stream, in order. Call sl_stream_consume() for
     * the bytes taken (now or later) to return credit to the peer.
     * `fin` is true when this is the end of the stream.
     */
    void (*on_stream_data)(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud);
    /* The write buffer of a stream drained below its low-water mark. */
    void (*on_stream_writable)(sl_stream *s, void *ud);
    /* The peer reset its sending side (RESET_STREAM) with `code`. */
    void (*on_stream_reset)(sl_stream *s, uint64_t code, void *ud);
    /*
     * The peer asked us to stop sending (STOP_SENDING). The queued bytes are
     * released. With ngtcp2 1.11 the request is noticed when this side next
     * sends on the stream (the library has no callback for it before 1.24),
     * and `code` is then 0 (unknown).
     */
    void (*on_stream_stop_sending)(sl_stream *s, uint64_t code, void *ud);
    /* A stream is fully closed; its handle dies after this returns. */
    void (*on_stream_closed)(sl_stream *s, void *ud);
    /* A datagram arrived. */
    void (*on_datagram)(sl_conn *c, const uint8_t *data, size_t len, void *ud);
} sl_transport_callbacks;

/* ------------------------------------------------------- WebTransport */

/*
 * A WebTransport server on a QUIC endpoint (WebTransport over HTTP/3,
 * draft-02: what Chromium speaks). With these settings the endpoint also
 * accepts the ALPN "h3", after its own; an "h3" connection is handled
 * inside the transport (control and QPACK streams, SETTINGS, requests) and
 * never reaches the callbacks itself. What does:
 *  - each WebTransport session, as an sl_conn: on_conn_ready when it is
 *    accepted, on_conn_closed when it ends (why->app with the session's
 *    close code and reason when it was closed with a
 *    CLOSE_WEBTRANSPORT_SESSION capsule; why->by_peer tells who closed);
 *  - its streams, as sl_streams (on_stream_open, _data, _writable, _reset,
 *    _stop_sending, _closed), and its datagrams (on_datagram).
 * sl_stream_open, sl_stream_write/finish/reset/stop_sending/consume,
 * sl_datagram_send/max, sl_conn_close and the stats work on them as on a
 * native connection. Differences: stream and reset codes are WebTransport
 * application codes (32 bits; larger ones give SL_ERR_INVAL; a peer's reset
 * whose HTTP/3 code is not a WebTransport code is reported as 0);
 * sl_conn_close's code is the session close code (32 bits) and its reason
 * is cut to 1024 bytes; sl_conn_peer_node_id gives SL_ERR_NOTFOUND (a
 * browser presents no certificate; a gateway assigns ids);
 * sl_conn_alpn is "h3"; sl_conn_wt_info tells the path, token and origin.
 *
 * A session is accepted only for an extended CONNECT (:protocol
 * "webtransport") to `path`, whose Origin is allowed and whose token (the
 * `token` parameter of the query, e.g. /starling?token=abc) passes the
 * check. Otherwise the request is answered, not accepted: 404 (another
 * path), 403 (origin or token), 429 (too many sessions on the connection),
 * 425 (sent as 0-RTT), with the reason as a text body. A plain GET (or
 * HEAD) of `health_path` is answered 200 "ok\n"; other GETs 404.
 * Under mutual TLS (tls.require_client_cert) "h3" connections are not asked
 * for a client certificate; the token is their authentication.
 */
typedef struct sl_webtransport_settings {
    const char *path;        /* the CONNECT path, without query (required), e.g. "/starling" */
    const char *health_path; /* answered 200 to GET/HEAD; NULL = none */
    /* Allowed Origin header values, compared exactly (e.g.
     * "https://app.example.org"; "null" for file:// pages; "*" = any).
     * With a list, a request without Origin is refused. n_origins 0 = no
     * check: any origin, and requests without one (not browsers), pass. */
    const char *const *origins;
    size_t n_origins;
    /* The token check: called with the token ("" if none) and the origin
     * ("" if none) before a session is accepted; true accepts. NULL: the
     * token must equal `token` (compared in constant time). One of the two
     * is required: a server that accepts anyone has to say so with a
     * check_token that returns true. */
    bool (*check_token)(const char *token, const char *origin, void *ud);
    const char *token;
    /* Told about every refused CONNECT (may be NULL): the :path, the
     * origin, the status sent and why. For logs. */
    void (*on_refused)(const char *path, const char *origin, int status, const char *reason,
                       void *ud);
    void *ud;                /* for check_token and on_refused */
    uint32_t max_sessions;   /* per QUIC connection (0 = 4) */
} sl_webtransport_settings;

/* What a WebTransport session was opened with. Strings live as long as the session. */
typedef struct sl_wt_info {
    const char *path;      /* :path without the query */
    const char *token;     /* the query's token, percent-decoded ("" if none) */
    const char *origin;    /* the Origin header ("" if none) */
    const char *authority; /* :authority */
    uint64_t session_id;   /* the CONNECT stream's id */
} sl_wt_info;

/* ------------------------------------------------------------ settings */

typedef struct sl_transport_settings {
    uv_loop_t *loop;                /* required (ignored by the browser's web transport) */
    const sl_mem *mem;              /* NULL = C library */
    sl_transport_callbacks cb;
    void *ud;
    sl_tls_settings tls;
    const char *alpn;               /* NULL = SL_ALPN */
    uint64_t idle_timeout_ms;       /* default 30000 */
    uint64_t keepalive_ms;          /* PING when idle this long; default 10000; 0 = off */
    uint64_t handshake_timeout_ms;  /* default 10000 */
    uint32_t max_streams_bidi;      /* concurrent peer-opened bidi streams (default 1024) */
    uint32_t max_streams_uni;       /* concurrent peer-opened uni streams (default 1024) */
    uint32_t stream_window;         /* initial per-stream receive window (default 1 MiB) */
    uint32_t conn_window;           /* initial connection receive window (default 16 MiB) */
    size_t max_stream_buffer;       /* bytes buffered for sending per stream before
                                       sl_stream_write refuses with SL_ERR_AGAIN (default 8 MiB) */
    size_t max_conn_buffer;         /* same, per connection (default 64 MiB) */
    size_t low_water;               /* on_stream_writable below this (default 256 KiB) */
    uint32_t max_connections;       /* total (default 10000) */
    uint32_t max_connections_per_addr; /* per source IP (default 256) */
    uint32_t max_handshakes;        /* concurrent handshakes (default 1024) */
    uint16_t max_datagram;          /* max DATAGRAM frame payload we accept (default 1200) */
    uint32_t max_resets;            /* RESET_STREAM + STOP_SENDING from a peer before it is
                                       closed as abusive (default 10000) */
    uint32_t quantum;               /* scheduler byte quantum inside a class (default 16 KiB) */
    /* Address validation: SL_RETRY_AUTO (default) answers Initials without
     * a valid token with a Retry once more than retry_handshake_rate new
     * handshakes arrived in the last second; ALWAYS and NEVER force it. */
    uint8_t retry;
    uint32_t retry_handshake_rate;  /* default 200 per second */
    /* Client: remember session tickets, 0-RTT parameters and address
     * validation tokens per server address, so later connections resume
     * and may send replay-safe data as 0-RTT (default true). */
    bool session_cache;
    /* Server: accept 0-RTT data from resumed clients (default true). A
     * replay database rejects a ClientHello seen before. */
    bool accept_early_data;
    /* Server: the ALPNs accepted on this endpoint, most preferred first
     * (NULL = just `alpn`). The chosen one is sl_conn_alpn(): the place to
     * dispatch, e.g. "starling/1" to the node protocol and "h3" to
     * WebTransport. At most 8. */
    const char *const *accept_alpns;
    size_t n_accept_alpns;
    /* Server: also serve WebTransport (see above); NULL = no. Copied by
     * sl_quic_new. */
    const sl_webtransport_settings *webtransport;
    /* Priorities on the wire (transport/README.md, "Credit by class"): the
     * bulk classes, LOW and BACKGROUND, may not keep much in flight, so
     * that a CRITICAL message never queues behind megabytes of them. */
    /* Sender: bytes the LOW/BACKGROUND streams of a connection may have
     * sent and not yet acknowledged, together; more waits for acks
     * (default 64 KiB; 0 = no bound). */
    uint32_t bulk_inflight;
    /* Receiver: credit (bytes beyond those consumed) a LOW/BACKGROUND
     * stream gets, instead of stream_window (default 64 KiB; 0 = every
     * class gets stream_window). A peer's stream counts as NORMAL until its
     * consumer names its class with sl_stream_set_prio(). While on, every
     * stream starts with min(stream_window, 2 x bulk_window) and gets its
     * class's window at its first sl_stream_consume(). */
    uint32_t bulk_window;
} sl_transport_settings;

enum { SL_RETRY_AUTO = 0, SL_RETRY_ALWAYS = 1, SL_RETRY_NEVER = 2 };

SL_EXTERN void sl_transport_settings_default(sl_transport_settings *s);

/* ---------------------------------------------------------------- stats */

typedef struct sl_conn_stats {
    uint64_t rtt_us, smoothed_rtt_us, min_rtt_us, rttvar_us;
    uint64_t cwnd;               /* congestion window, bytes */
    uint64_t bytes_in_flight;
    uint64_t bytes_sent, bytes_recv;
    uint64_t pkts_sent, pkts_recv;
    uint64_t pkts_lost; /* packets carrying stream data declared lost (ngtcp2 1.11 counts
                           losses per stream), plus lost datagrams */
    uint64_t datagrams_sent, datagrams_recv, datagrams_lost;
    uint32_t streams_open;
    uint32_t resets_recv;        /* RESET_STREAM + STOP_SENDING received */
    bool resumed;                /* TLS session resumption was used */
    bool early_data_accepted;    /* 0-RTT data was accepted */
} sl_conn_stats;

typedef struct sl_stream_stats {
    uint64_t bytes_written;  /* accepted by sl_stream_write */
    uint64_t bytes_sent;     /* handed to QUIC (may be retransmitted) */
    uint64_t bytes_acked;
    uint64_t bytes_recv;
    uint64_t bytes_consumed;
    size_t buffered;         /* written but not acknowledged yet */
    uint64_t pkts_lost;      /* packets with this stream's data declared lost */
    uint64_t recv_limit;     /* receiving: the stream offset the peer may send up to
                                (credit granted so far, sent or about to be) */
} sl_stream_stats;

/* Counters of an endpoint since it was created. */
typedef struct sl_transport_stats {
    uint32_t conns;            /* connections now (both directions) */
    uint32_t handshakes;       /* inbound handshakes in progress */
    uint64_t accepted;         /* inbound connections created */
    uint64_t refused;          /* Initials refused by a limit (CONNECTION_REFUSED) */
    uint64_t retries_sent;     /* Retry packets sent (address validation) */
    uint64_t bad_tokens;       /* Initials with an invalid token */
    uint64_t dropped_pkts;     /* datagrams that matched no connection and were not Initials */
    uint64_t early_rejected;   /* 0-RTT attempts refused by the replay database */
    uint64_t resets_sent;      /* Stateless Resets sent for unknown connections */
    uint64_t wt_sessions;      /* WebTransport sessions accepted */
    uint64_t wt_refused;       /* WebTransport CONNECTs refused (path, origin, token, limit) */
    uint64_t h3_requests;      /* other HTTP/3 requests answered (health, 404, ...) */
    uint64_t h3_errors;        /* "h3" connections closed for an HTTP/3 protocol error */
} sl_transport_stats;

/* ------------------------------------------------------------ ops table */

/*
 * The interface every transport implements. Public functions below call
 * through it; a transport is a `const sl_transport_ops` plus its state.
 */
typedef struct sl_transport_ops {
    const char *name;
    int (*listen)(sl_transport *t, const char *host, uint16_t port);
    int (*connect)(sl_transport *t, const char *host, uint16_t port, void *conn_ud,
                   sl_conn **out);
    int (*local_port)(const sl_transport *t, uint16_t *port);
    void (*close)(sl_transport *t, void (*on_closed)(sl_transport *t, void *ud), void *ud);
    void (*del)(sl_transport *t);
    int (*conn_close)(sl_conn *c, uint64_t app_code, const char *reason);
    int (*conn_stats)(const sl_conn *c, sl_conn_stats *out);
    int (*stream_open)(sl_conn *c, bool bidi, int prio, void *stream_ud, sl_stream **out);
    int (*stream_write)(sl_stream *s, const void *data, size_t len, size_t *buffered);
    int (*stream_finish)(sl_stream *s);
    int (*stream_reset)(sl_stream *s, uint64_t code);
    int (*stream_stop_sending)(sl_stream *s, uint64_t code);
    int (*stream_consume)(sl_stream *s, size_t n);
    int (*stream_set_prio)(sl_stream *s, int prio);
    int (*stream_stats)(const sl_stream *s, sl_stream_stats *out);
    int (*stream_allow_early)(sl_stream *s);
    int (*stats)(const sl_transport *t, sl_transport_stats *out);
    int (*node_id)(const sl_transport *t, uint64_t *out);
    int (*datagram_send)(sl_conn *c, const void *data, size_t len);
    size_t (*datagram_max)(const sl_conn *c);
    /* NULL: the transport holds no key (sl_transport_key_secret fails). */
    int (*key_secret)(const sl_transport *t, const char *label, uint8_t out[32]);
} sl_transport_ops;

/* ------------------------------------------------------------ endpoint */

/*
 * Create the native QUIC transport. Returns SL_OK, SL_ERR_NOMEM,
 * SL_ERR_INVAL (also: webtransport whose path or health_path does not start
 * with '/', or with neither check_token nor token), SL_ERR_TLS (certificate
 * or key unusable: see the log line printed to stderr with the file and
 * GnuTLS's message), SL_ERR_IO.
 */
SL_EXTERN int sl_quic_new(const sl_transport_settings *s, sl_transport **out);

/*
 * Bind a UDP socket on host:port (port 0 = any) and accept connections.
 * One endpoint both listens and connects. Returns SL_OK, SL_ERR_IO, SL_ERR_INVAL.
 */
SL_EXTERN int sl_transport_listen(sl_transport *t, const char *host, uint16_t port);
/* The bound UDP port. Returns SL_OK or SL_ERR_INVAL (not bound). */
SL_EXTERN int sl_transport_local_port(const sl_transport *t, uint16_t *port);

/*
 * Start a connection to host:port (an IP literal). on_conn_ready or
 * on_conn_closed follows. `conn_ud` is stored on the connection.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_NOMEM, SL_ERR_IO, SL_ERR_LIMIT.
 */
SL_EXTERN int sl_transport_connect(sl_transport *t, const char *host, uint16_t port, void *conn_ud,
                                   sl_conn **out);

/* Close every connection gracefully, then the socket; `on_closed` after. */
SL_EXTERN void sl_transport_close(sl_transport *t, void (*on_closed)(sl_transport *t, void *ud),
                                  void *ud);
/* Free a transport whose close completed (or that never listened/connected). */
SL_EXTERN void sl_transport_del(sl_transport *t);

/* SHA-256 of this endpoint's certificate (DER), e.g. for pinning. */
SL_EXTERN int sl_transport_cert_sha256(const sl_transport *t, uint8_t out[32]);
/* This endpoint's own node id (derived from its key like the peers'). */
SL_EXTERN int sl_transport_node_id(const sl_transport *t, uint64_t *out);
/*
 * A 32-byte secret bound to this endpoint's private key and `label`
 * (HMAC-SHA-256 keyed by the key): every process holding the key derives the
 * same one, so a restarted node recognises what it issued before; another
 * key or label gives an unrelated one, and nothing of the key can be learnt
 * from it. Labels starting with "starling " are Starling's own. Returns
 * SL_OK, SL_ERR_INVAL, SL_ERR_UNSUPPORTED (a transport without a key of its
 * own: the browser's), SL_ERR_TLS.
 */
SL_EXTERN int sl_transport_key_secret(const sl_transport *t, const char *label, uint8_t out[32]);

SL_EXTERN int sl_transport_stats_get(const sl_transport *t, sl_transport_stats *out);

/* ---------------------------------------------------------- connections */

SL_EXTERN void *sl_conn_data(const sl_conn *c);
SL_EXTERN void sl_conn_set_data(sl_conn *c, void *ud);
SL_EXTERN sl_transport *sl_conn_transport(const sl_conn *c);
/* True for connections we initiated. */
SL_EXTERN bool sl_conn_is_client(const sl_conn *c);
/*
 * The peer's node id: the first 8 bytes (big endian) of SHA-256 over its
 * certificate's SubjectPublicKeyInfo, so it is bound to the peer's key.
 * Returns SL_OK, or SL_ERR_NOTFOUND (the peer presented no certificate).
 */
SL_EXTERN int sl_conn_peer_node_id(const sl_conn *c, uint64_t *out);
/* The negotiated ALPN (valid while the connection lives), or NULL. */
SL_EXTERN const char *sl_conn_alpn(const sl_conn *c);
/*
 * For a WebTransport session: what it was opened with. Returns SL_OK, or
 * SL_ERR_INVAL (`c` is not a WebTransport session).
 */
SL_EXTERN int sl_conn_wt_info(const sl_conn *c, sl_wt_info *out);

/*
 * Graceful close with an application code and reason; on_conn_closed
 * follows (never from inside this call). Returns SL_OK, SL_ERR_CLOSED, or
 * for a WebTransport session SL_ERR_INVAL (code over 32 bits).
 */
SL_EXTERN int sl_conn_close(sl_conn *c, uint64_t app_code, const char *reason);
SL_EXTERN int sl_conn_stats_get(const sl_conn *c, sl_conn_stats *out);

/*
 * Send one unreliable datagram (copied). Never fragmented, never
 * retransmitted. Returns SL_OK, SL_ERR_MSG_TOO_BIG (larger than
 * sl_datagram_max()), SL_ERR_UNSUPPORTED (peer does not accept datagrams),
 * SL_ERR_AGAIN (too many queued), SL_ERR_CLOSED, SL_ERR_NOMEM.
 */
SL_EXTERN int sl_datagram_send(sl_conn *c, const void *data, size_t len);
/* The largest datagram payload that can be sent now (0 = none). */
SL_EXTERN size_t sl_datagram_max(const sl_conn *c);

/* -------------------------------------------------------------- streams */

/*
 * Open a stream with a priority class (sl_prio). Returns SL_OK,
 * SL_ERR_LIMIT (the peer's stream limit; retry after streams close),
 * SL_ERR_CLOSED, SL_ERR_NOMEM, SL_ERR_INVAL.
 */
SL_EXTERN int sl_stream_open(sl_conn *c, bool bidi, int prio, void *stream_ud, sl_stream **out);
SL_EXTERN void *sl_stream_data(const sl_stream *s);
SL_EXTERN void sl_stream_set_data(sl_stream *s, void *ud);
SL_EXTERN sl_conn *sl_stream_conn(const sl_stream *s);
SL_EXTERN int64_t sl_stream_id(const sl_stream *s);
SL_EXTERN int sl_stream_prio(const sl_stream *s);
/*
 * Set a stream's class: the scheduler sends its bytes in that class, and
 * its credit follows the class (bulk_inflight, bulk_window). A peer's
 * stream is NORMAL until this is called: the class is not on the wire, so
 * the consumer names it once it knows (the node does at a lane's or ask's
 * first envelope). Returns SL_OK or SL_ERR_INVAL (not a class).
 */
SL_EXTERN int sl_stream_set_prio(sl_stream *s, int prio);

/*
 * Queue bytes (copied). *buffered (may be NULL) receives the bytes now
 * buffered on this stream. Returns SL_OK, SL_ERR_AGAIN (the stream's or the
 * connection's buffer limit would be exceeded: nothing was queued; wait for
 * on_stream_writable), SL_ERR_CLOSED (finished, reset or stopped),
 * SL_ERR_NOMEM.
 */
SL_EXTERN int sl_stream_write(sl_stream *s, const void *data, size_t len, size_t *buffered);
/* End the sending side after the queued bytes. Returns SL_OK or SL_ERR_CLOSED. */
SL_EXTERN int sl_stream_finish(sl_stream *s);
/* Abort sending (RESET_STREAM); queued bytes are dropped. */
SL_EXTERN int sl_stream_reset(sl_stream *s, uint64_t code);
/*
 * Mark the data written on this stream as safe to replay. On a resumed
 * connection, before the handshake completes, only such streams send (as
 * 0-RTT); others wait for the handshake. If the server rejects the early
 * data, the stream's bytes are sent again after the handshake, transparently.
 */
SL_EXTERN int sl_stream_allow_early_data(sl_stream *s);
/* Ask the peer to stop sending (STOP_SENDING). */
SL_EXTERN int sl_stream_stop_sending(sl_stream *s, uint64_t code);
/* Return credit for `n` received bytes the consumer has taken. */
SL_EXTERN int sl_stream_consume(sl_stream *s, size_t n);
SL_EXTERN int sl_stream_stats_get(const sl_stream *s, sl_stream_stats *out);

#ifdef __cplusplus
}
#endif
#endif
