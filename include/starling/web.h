/*
 * starling/web.h: a node in a web page (the WebAssembly build).
 *
 * The browser counterpart of node.h: an sl_web_node owns one sl_core and
 * drives it from the page's event loop instead of libuv. While actors are
 * runnable it runs the core in slices, one slice per macrotask (so rendering,
 * input and network events are served between slices); when nothing is
 * runnable it arms one timer (setTimeout) for the core's next deadline. Time
 * comes from performance.now(). The same platform runs under Node.js, which
 * the tests use. wasm/README.md describes the JavaScript API built on it.
 *
 * This header is only for code compiled with Emscripten into the Starling
 * module (wasm/); it is not part of the native library and starling.h does
 * not include it.
 *
 * C agents that JavaScript can spawn by name are registered with
 * SL_WEB_AGENT() (or sl_web_agent_register()); see wasm/agents.c.
 *
 * One thread: every function here runs on the page's (or worker's) thread.
 */
#ifndef STARLING_WEB_H
#define STARLING_WEB_H

#include "actor.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_web_node sl_web_node;

/* Settings of a web node; fill with sl_web_settings_default(). New fields are appended. */
typedef struct sl_web_settings {
    sl_core_settings core; /* the core's settings (wake, deadline, clock and ud are taken by the node;
                              remote and dead_letter are kept until
                              sl_web_node_connect(), which takes remote) */
    uint32_t slice;     /* max messages per macrotask before yielding to the page (default 8192) */
    uint32_t budget_ms; /* max milliseconds per macrotask, checked every 64 messages
                           (default 8; 0 = only `slice` limits a macrotask) */
} sl_web_settings;

SL_EXTERN void sl_web_settings_default(sl_web_settings *s);

/*
 * Create a node. `settings` may be NULL. If core.node_id is 0 a random
 * non-zero id is chosen (crypto.getRandomValues). Nothing runs until the page's
 * event loop gets control back: spawn actors, then return to the loop.
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL.
 */
SL_EXTERN int sl_web_node_new(const sl_web_settings *settings, sl_web_node **out);

/* The node's actor core (spawn, send, ... take it). */
SL_EXTERN sl_core *sl_web_node_core(const sl_web_node *node);
/* The node of the core an actor runs on (from inside callbacks). */
SL_EXTERN sl_web_node *sl_web_node_of(const sl_actor *self);
/* The node id. */
SL_EXTERN uint64_t sl_web_node_id(const sl_web_node *node);

/*
 * Graceful stop: every actor is asked to stop (on_stop with SHUTDOWN); once
 * none is left the node's timer is cancelled and `on_stopped` (may be NULL)
 * is called from the event loop. Idempotent.
 */
SL_EXTERN void sl_web_node_stop(sl_web_node *node, void (*on_stopped)(sl_web_node *node, void *ud),
                                void *ud);

/* True once the stop completed. */
SL_EXTERN bool sl_web_node_stopped(const sl_web_node *node);

/*
 * Free the node: its core (actors still alive get on_stop with SHUTDOWN),
 * its pending macrotask and its timer. Must not be called from inside a
 * callback of this node (defer it, e.g. from on_stopped with a new macrotask).
 */
SL_EXTERN void sl_web_node_del(sl_web_node *node);

/* ------------------------------------------------- joining a cluster */

/*
 * A browser node joins a cluster through a gateway: a native node serving
 * WebTransport (sl_webtransport_settings; sl_node_expose() says what browser
 * nodes may address). The gateway assigns this node its id (the node's id
 * changes to it, so connect before spawning any actor), routes its actors'
 * messages to and from every node it is connected to, and lets it address
 * only the actors it exposes (sl_web_node_exposed); anything else fails with
 * SL_ERR_FORBIDDEN, as do links and stops of remote actors. After a lost
 * connection the node reconnects with backoff and asks for the same id.
 */
typedef struct sl_web_connect {
    const char *host;           /* the gateway's host name or IP literal */
    uint16_t port;              /* its UDP port */
    const char *path;           /* its WebTransport path (default "/starling") */
    const char *token;          /* sent as the query's `token` parameter (NULL: none) */
    const uint8_t *cert_sha256; /* 32 bytes: the certificate's SHA-256, passed as
                                   serverCertificateHashes (self-signed, valid <= 14 days);
                                   NULL: the browser's usual certificate checks */
    uint32_t reconnect_min_ms, reconnect_max_ms; /* default 100 .. 5000 */
    /* The gateway (node = its id) or a node behind it came up or went down.
     * The first `up` means the node has its id. May be NULL. */
    void (*on_peer)(sl_web_node *node, uint64_t peer, bool up, void *ud);
    void *ud;
    /* An attempt whose session opened but got no welcome this long after
     * (default 5000 ms; checked every 100 ms) is closed and fails with
     * SL_ERR_TIMEOUT: the server is not a Starling gateway, or it is stuck. */
    uint32_t welcome_timeout_ms;
} sl_web_connect;

/*
 * Connect (and keep connected) to a gateway. Returns SL_OK (on_peer says
 * when it is up), SL_ERR_INVAL, SL_ERR_EXISTS (already connected), SL_ERR_NOMEM.
 */
SL_EXTERN int sl_web_node_connect(sl_web_node *node, const sl_web_connect *opts);
/*
 * Why the node is not connected to its gateway (yet, or again): *failures
 * is how many attempts failed since it was last welcomed (0: none did; one
 * may be under way), *err and *reason what the last one ended with, e.g.
 * SL_ERR_NOCONN "Opening handshake failed." (a browser says no more about a
 * refused token or origin, a wrong path or certificate hash, or no gateway
 * at that address). *reason stays valid until the next call into the node.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_NOTFOUND (sl_web_node_connect() was
 * not called).
 */
SL_EXTERN int sl_web_node_connect_failure(const sl_web_node *node, uint32_t *failures, int *err,
                                          const char **reason);
/* The i-th actor the gateway exposed to this node: SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_web_node_exposed(const sl_web_node *node, size_t i, const char **name,
                                  sl_id *id);

/* ------------------------------------------------------- transport */

/*
 * The browser's transport: WebTransport sessions to a node's WebTransport
 * server (transport.h, "WebTransport"), through the browser's
 * `WebTransport` object. It implements the transport interface of
 * transport.h for the client side, so the sl_transport_* / sl_conn_* /
 * sl_stream_* / sl_datagram_* functions work on it as on sl_quic_new's.
 *
 * Settings used: cb and ud; mem; webtransport->path (required, starts with
 * '/', may carry a query) and webtransport->token (sent as the query
 * parameter `token`, percent-encoded; NULL or "" = none); tls.verify:
 * SL_VERIFY_PIN_CERT pins tls.pin with serverCertificateHashes (the server
 * certificate must then be ECDSA and valid at most 14 days), SL_VERIFY_CA
 * (without ca_file) uses the browser's Web PKI; max_stream_buffer,
 * max_conn_buffer, low_water. Ignored: loop, the browser's own QUIC
 * settings (windows, timeouts, stream limits), cert_file/key_file (a page
 * presents no client certificate) and every server-side field.
 *
 * Contract differences from the native transport, all forced by the
 * browser: sl_transport_connect takes a host name or IP literal (IPv6
 * without brackets is bracketed); sl_transport_listen gives
 * SL_ERR_UNSUPPORTED; sl_transport_node_id and sl_conn_peer_node_id give
 * SL_ERR_NOTFOUND (a page has no key, and cannot see the server's
 * certificate; its gateway assigns its id); sl_conn_alpn is "h3"; stream
 * ids are synthetic but keep QUIC's low bits (bit 0: server-opened, bit 1:
 * unidirectional); sl_conn_close's code is a 32-bit WebTransport code and
 * its reason is cut to 1024 bytes; the codes of sl_stream_reset and
 * sl_stream_stop_sending are what the browser can send: 32 bits by the
 * current spec, only 0-255 in Chromium 156 (larger ones: SL_ERR_INVAL).
 * on_conn_closed: why->app with the session's code and reason when
 * `closed` resolved (the server's CLOSE_WEBTRANSPORT_SESSION capsule,
 * by_peer true) or after our sl_conn_close (by_peer false); err
 * SL_ERR_NOCONN with the browser's message as reason when the session
 * failed, including a refusal (403, 404, ...: the browser does not say
 * which) before on_conn_ready. Stream stats: bytes_sent counts bytes the
 * browser took, buffered those it has not; bytes_acked stays 0 (not
 * visible). Connection stats: bytes and datagrams counted here, streams
 * open, resets received; no RTT or congestion figures.
 *
 * Flow control: a stream is read only while everything delivered to
 * on_stream_data has been consumed, at most 64 KiB per read, so at most
 * 64 KiB per stream are delivered and not consumed; the rest waits in the
 * browser, which stops granting credit to the server when its buffers are
 * full.
 *
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL (no webtransport path),
 * SL_ERR_UNSUPPORTED (tls.verify SL_VERIFY_PIN_SPKI or
 * SL_VERIFY_NONE_INSECURE_DEV_ONLY, or a ca_file: a page can do none of
 * these). sl_transport_connect also returns SL_ERR_UNSUPPORTED when the
 * browser has no WebTransport, SL_ERR_CLOSED once the transport is closing.
 */
SL_EXTERN int sl_web_transport_new(const sl_transport_settings *settings, sl_transport **out);

/* ---------------------------------------------------------- C agents */

/*
 * A C behaviour that JavaScript can spawn by name (`node.spawn("counter")`).
 * The name is behavior->name. When spawned from JavaScript, on_start's `arg`
 * is a `const sl_web_init *` valid during on_start only, so such behaviours
 * keep their state in state_size bytes (or allocate it in on_start).
 */
typedef struct sl_web_agent {
    const sl_behavior *behavior; /* must outlive the module; name must be set */
    struct sl_web_agent *next;   /* registry link (set by sl_web_agent_register) */
} sl_web_agent;

/* What on_start receives as `arg` for an agent spawned from JavaScript. */
typedef struct sl_web_init {
    const uint8_t *data; /* the spawn's `init` value as msgpack, NULL if none was given */
    size_t len;          /* its length in bytes */
} sl_web_init;

/*
 * Register an agent (caller-provided storage, never freed). Returns SL_OK,
 * SL_ERR_INVAL (no behaviour or no name), SL_ERR_EXISTS (name taken).
 */
SL_EXTERN int sl_web_agent_register(sl_web_agent *agent);

/* The registered agent called `name`, or NULL. */
SL_EXTERN const sl_behavior *sl_web_agent_find(const char *name);

/*
 * Register `behavior` (a static sl_behavior with a name) when the module
 * starts, e.g. `SL_WEB_AGENT(counter_behavior);` at file scope.
 */
#define SL_WEB_AGENT(behavior)                                                                     \
    static sl_web_agent sl__web_agent_##behavior = {&(behavior), NULL};                            \
    __attribute__((constructor)) static void sl__web_agent_init_##behavior(void)                   \
    {                                                                                              \
        (void)sl_web_agent_register(&sl__web_agent_##behavior);                                    \
    }

#ifdef __cplusplus
}
#endif
#endif /* STARLING_WEB_H */
