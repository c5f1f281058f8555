/*
 * cluster.h: the node's links to peer nodes (internal to runtime/).
 * The design (control stream, lanes, asks, datagrams, backpressure) is in
 * cluster.c's header comment and runtime/README.md.
 */
#ifndef SL_RUNTIME_CLUSTER_H
#define SL_RUNTIME_CLUSTER_H

#include "starling/actor.h"
#include "starling/transport.h"

typedef struct sl__cluster sl__cluster;

typedef struct sl__cluster_settings {
    uint32_t lane_idle_ms;   /* finish an outbound lane idle this long (default 5000) */
    uint32_t backoff_min_ms; /* first reconnect delay (default 100), doubling ... */
    uint32_t backoff_max_ms; /* ... up to this (default 5000), plus up to 25% jitter */
    /* A WebTransport session without its HELLO (gateway) or WELCOME (browser)
     * this long after it opened is closed (default 5000; checked per tick) */
    uint32_t hello_timeout_ms;
    bool quiet;              /* no log lines for refused input */
    /* A browser node: its one connection is a WebTransport session to its
     * gateway, which assigns its node id (HELLO/WELCOME, runtime/README.md). */
    bool browser;
    /* The transport's constructor (NULL = sl_quic_new; the browser build
     * passes its WebTransport one). */
    int (*make_transport)(const sl_transport_settings *s, sl_transport **out);
    /* A gateway draws browser node ids from this (required to serve them). */
    uint64_t (*random64)(void);
} sl__cluster_settings;

typedef struct sl__cluster_stats {
    uint64_t rejected;  /* envelopes/frames/streams refused (bad input) */
    uint64_t delivered; /* envelopes handed to the core */
    uint64_t lanes_opened, lanes_accepted, lanes_closed, lanes_paused;
    uint64_t asks_cancelled; /* ask streams reset (either side) */
    uint64_t datagrams_sent, datagrams_recv;
    uint64_t dials, peers_up;
    uint64_t handshakes_failed; /* inbound connections that never became a link */
    uint64_t browsers_up;       /* browser nodes welcomed (gateway) */
    uint64_t forwarded;         /* envelopes relayed between a browser node and a node */
    uint64_t fwd_failed;        /* envelopes that could not be relayed (no route, no memory) */
    uint64_t forbidden;         /* envelopes from browser nodes to what was not exposed */
    uint64_t lanes_paused_budget; /* big frames that waited for their link's reassembly budget */
} sl__cluster_stats;

void sl__cluster_settings_default(sl__cluster_settings *s);

/* Create the QUIC endpoint (mutual TLS forced on) for `core`'s node.
 * `cs` may be NULL. Returns the sl_quic_new() codes or SL_ERR_NOMEM. */
int sl__cluster_new(const sl_transport_settings *ts, const sl__cluster_settings *cs, sl_core *core,
                    const sl_mem *mem, size_t max_message, sl__cluster **out);
/* Our node id (from the TLS key). */
uint64_t sl__cluster_node_id(const sl__cluster *k);
sl_transport *sl__cluster_transport(const sl__cluster *k);
/* The core is created after the endpoint (its node id comes from the key). */
void sl__cluster_set_core(sl__cluster *k, sl_core *core);
/* Peer up/down notifications. */
void sl__cluster_on_peer(sl__cluster *k, void (*fn)(uint64_t node, bool up, void *ud), void *ud);
/* Route one message to its node (the core's `remote` hook). Returns SL_OK,
 * SL_ERR_NOCONN (no connection to that node), SL_ERR_AGAIN (lane full),
 * SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM, SL_ERR_CANCELLED (an answer to an ask
 * that was cancelled). */
int sl__cluster_send(sl__cluster *k, const sl_msg *m);
/* The core's room() hook: resume the lanes paused for `actor`. */
void sl__cluster_room(sl__cluster *k, sl_id actor);
/* The core's remote_unreliable_max() hook. */
size_t sl__cluster_unreliable_max(const sl__cluster *k, uint64_t node);
/* Gateway: let browser nodes address `actor` (on any node) under `name`
 * (replaces the name's entry; SL_ID_NONE removes it). Every browser node is
 * told the new list. SL_OK, SL_ERR_INVAL, SL_ERR_NOTFOUND, SL_ERR_NOMEM,
 * SL_ERR_UNSUPPORTED (a browser node). */
int sl__cluster_expose(sl__cluster *k, const char *name, sl_id actor);
/* The i-th exposed entry (on a browser node: as its gateway said). */
int sl__cluster_exposed(const sl__cluster *k, size_t i, const char **name, sl_id *actor);
/* Keep a connection to host:port (an IP literal), reconnecting with
 * exponential backoff while the cluster lives. Idempotent per address.
 * Returns SL_OK, SL_ERR_INVAL, or the sl_transport_connect() errors. */
int sl__cluster_dial(sl__cluster *k, const char *host, uint16_t port);
/* Why the dial to host:port (NULL: the first dial) is not up: *failures
 * attempts failed since it was last up (0: none; one may be under way),
 * *err and *reason (valid until the next call into the cluster) say how the
 * last one did. SL_OK, or SL_ERR_NOTFOUND (no such dial). */
int sl__cluster_dial_failure(const sl__cluster *k, const char *host, uint16_t port,
                             uint32_t *failures, int *err, const char **reason);
/* Periodic work (reconnects, idle lanes); `now_ns` is the monotonic time. */
void sl__cluster_tick(sl__cluster *k, uint64_t now_ns);
bool sl__cluster_connected(const sl__cluster *k, uint64_t node);
void sl__cluster_stats_get(const sl__cluster *k, sl__cluster_stats *out);
/* Close every connection and the socket; `cb` after. */
void sl__cluster_close(sl__cluster *k, void (*cb)(void *ud), void *ud);
void sl__cluster_del(sl__cluster *k);

/* The cluster of a networked node (NULL for a local one): for tests and tools. */
struct sl_node;
sl__cluster *sl__node_cluster(const struct sl_node *n);

#endif
