/*
 * starling/node.h: a node, the actor core bound to a libuv loop.
 *
 * The node owns one sl_core and drives it from the loop: it runs the core
 * while actors are runnable (in slices, so I/O on the same loop is served)
 * and arms one timer for the core's next deadline. Time comes from
 * uv_hrtime(). Blocking work is offloaded to libuv's threadpool with
 * sl_offload(); its result comes back to the actor as a message.
 *
 * One thread: every function here must be called on the loop's thread.
 */
#ifndef STARLING_NODE_H
#define STARLING_NODE_H

#include <uv.h>

#include "actor.h"
#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_node sl_node;

/* Settings of a node; fill with sl_node_settings_default(). New fields are appended. */
typedef struct sl_node_settings {
    sl_core_settings core; /* the core's settings (wake/deadline/ud are taken by the node) */
    uv_loop_t *loop;       /* loop to run on; NULL = the node creates and owns one */
    uint32_t slice;        /* max messages per loop iteration before yielding to I/O (default 8192) */
    /*
     * Networking. NULL (default): a local node. Otherwise the node owns a
     * QUIC endpoint with these settings (loop and callbacks are the node's;
     * mutual TLS is forced on) and its node id is the one derived from its
     * TLS key, so actor ids name the node that holds the key.
     */
    const sl_transport_settings *quic;
    /* Called when a peer node connects (up) or its connection ends (down). */
    void (*on_peer)(sl_node *node, uint64_t peer, bool up, void *ud);
    void *ud;
    /* Reconnection to addresses given to sl_node_connect(): the first retry
     * after this delay (default 100 ms), doubling up to reconnect_max_ms
     * (default 5000), plus up to 25% jitter. */
    uint32_t reconnect_min_ms, reconnect_max_ms;
    /* An outbound lane idle this long (and fully acknowledged) is finished;
     * the next message opens a new one (default 5000). */
    uint32_t lane_idle_ms;
    /* No log lines on stderr for refused peer input (counted all the same). */
    bool quiet;
    /* A gateway closes a browser session that has not said hello this long
     * after it opened (default 5000 ms; checked every 50 ms). */
    uint32_t hello_timeout_ms;
} sl_node_settings;

SL_EXTERN void sl_node_settings_default(sl_node_settings *s);

/*
 * Create a node. `settings` may be NULL. If core.node_id is 0 a random
 * non-zero id is chosen. Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL, SL_ERR_IO.
 */
SL_EXTERN int sl_node_new(const sl_node_settings *settings, sl_node **out);

/* The node's actor core (spawn, send, ... take it). */
SL_EXTERN sl_core *sl_node_core(const sl_node *node);
/* The node's loop. */
SL_EXTERN uv_loop_t *sl_node_loop(const sl_node *node);
/* The node of the core an actor runs on (from inside callbacks). */
SL_EXTERN sl_node *sl_node_of(const sl_actor *self);

/*
 * Run the loop until the node has stopped (see sl_node_stop) and nothing
 * else keeps the loop alive. A node that has not stopped keeps the loop
 * alive even when all its actors are idle (they may be woken from outside). Only for a node that owns its loop, or when the
 * caller wants uv_run(loop, UV_RUN_DEFAULT). Returns SL_OK or SL_ERR_INVAL.
 */
SL_EXTERN int sl_node_run(sl_node *node);

/*
 * Graceful stop: every actor is asked to stop (on_stop with SHUTDOWN),
 * offloaded jobs are waited for (queued ones cancelled), then the node's
 * handles are closed so the loop can end. `on_stopped` (may be NULL) is
 * called once everything has stopped. Idempotent.
 */
SL_EXTERN void sl_node_stop(sl_node *node, void (*on_stopped)(sl_node *node, void *ud), void *ud);

/* The node id (random for a local node, key-derived for a networked one). */
SL_EXTERN uint64_t sl_node_id(const sl_node *node);

/*
 * Networked nodes: accept peers on host:port (port 0 = any), report the
 * bound port, and connect to a peer node at host:port (an IP literal).
 * Connecting is asynchronous: on_peer(up) says when actors there can be
 * reached; until then sends to them fail with SL_ERR_NOCONN. The node keeps
 * that address connected: when the connection fails or is lost it retries
 * with exponential backoff (settings.reconnect_*) until the node stops.
 * Connecting twice to one address is one connection; two nodes that connect
 * to each other keep one connection (the one opened by the smaller id).
 * Return SL_OK, SL_ERR_UNSUPPORTED (a local node), or the transport's codes.
 */
SL_EXTERN int sl_node_listen(sl_node *node, const char *host, uint16_t port);
SL_EXTERN int sl_node_port(const sl_node *node, uint16_t *port);
SL_EXTERN int sl_node_connect(sl_node *node, const char *host, uint16_t port);
/*
 * Why the connection to host:port (an address given to sl_node_connect) is
 * not up: *failures attempts failed since it was last up (0: none did; one
 * may be under way), *err and *reason say how the last one ended (e.g.
 * SL_ERR_TIMEOUT, a handshake without answer; SL_ERR_TLS, a refused
 * certificate). *reason stays valid until the next call into the node.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_NOTFOUND (not an address given to
 * sl_node_connect), SL_ERR_UNSUPPORTED (a local node).
 */
SL_EXTERN int sl_node_connect_failure(const sl_node *node, const char *host, uint16_t port,
                                      uint32_t *failures, int *err, const char **reason);
/*
 * Browser nodes (WebTransport sessions: settings.quic->webtransport) join the
 * cluster through this node, their gateway: it gives each its node id, makes
 * its actors reachable from every node connected to it, and lets it address
 * only what is exposed here. Expose `actor` (on this node or any other) to
 * browser nodes under `name` (1..SL_NAME_MAX bytes; a name's entry is
 * replaced; SL_ID_NONE removes it). Browser nodes then may send, ask and
 * monitor it (anything else: SL_ERR_FORBIDDEN); they never link to or stop
 * actors. Every connected browser node is told the new list at once.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_NOTFOUND (removing an unknown name),
 * SL_ERR_NOMEM, SL_ERR_UNSUPPORTED (a local node).
 */
SL_EXTERN int sl_node_expose(sl_node *node, const char *name, sl_id actor);
/* The node's QUIC endpoint (NULL for a local node), e.g. for its stats. */
SL_EXTERN sl_transport *sl_node_transport(const sl_node *node);

/* True once sl_node_stop() completed. */
SL_EXTERN bool sl_node_stopped(const sl_node *node);

/*
 * Free the node. It must have stopped (sl_node_stop and the loop has run
 * until the close callbacks fired), or never have run. Closes an owned loop.
 */
SL_EXTERN void sl_node_del(sl_node *node);

/*
 * Work for the threadpool. Runs on a pool thread: it must not touch any
 * Starling object. It may set *out to a malloc()ed buffer of *out_len bytes
 * (the result payload, msgpack by convention), which the node frees after
 * delivery. Its return value is the result's status.
 */
typedef int (*sl_work_fn)(void *arg, uint8_t **out, size_t *out_len);

/*
 * Run `fn(arg)` on libuv's threadpool. When it finishes, the calling actor
 * receives a SL_KIND_SEND message with from = SL_ID_NONE, type = `type`,
 * corr = *job_id, status = fn's return value, payload = its output. If the
 * node stops before the job started, the job is cancelled: fn never runs and
 * the result (if the actor still lives) has status SL_ERR_CANCELLED. If the
 * actor has stopped by then the result is dropped (a dead letter).
 * `release` (may be NULL) is called with `arg` on the loop thread exactly
 * once, after fn returned or the job was cancelled: free the input there.
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_STOPPED, SL_ERR_INVAL (fn NULL),
 * SL_ERR_NOT_ACTOR (self NULL or not on a node). On error `release` is not
 * called: `arg` stays with the caller.
 */
SL_EXTERN int sl_offload(sl_actor *self, sl_work_fn fn, void *arg, void (*release)(void *arg),
                         uint32_t type, uint64_t *job_id);

#ifdef __cplusplus
}
#endif
#endif
