/*
 * cluster_harness.h: networked nodes on one libuv loop over 127.0.0.1, for
 * the cluster test suites. A `world` holds up to SLC_MAX nodes; node 0
 * listens and the others connect to it (sl_node_connect), so all tests
 * start from "connected". run_until() runs the loop until a predicate holds
 * or a watchdog fires (every wait is bounded).
 */
#ifndef SL_TEST_CLUSTER_HARNESS_H
#define SL_TEST_CLUSTER_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "starling/node.h"

#define SLC_MAX 3
#define SLC_LOG 256

/* One message an actor received. */
typedef struct slc_rec {
    uint8_t kind;
    uint32_t type;
    uint64_t corr;
    int32_t status;
    uint16_t flags;
    uint8_t prio;
    sl_id from;
    size_t len;
    char data[64];
} slc_rec;

/* A recording actor (its state): logs every message; answers asks. */
typedef struct slc_probe {
    slc_rec log[SLC_LOG];
    int n;             /* messages logged (up to SLC_LOG) */
    uint64_t total;    /* messages received */
    bool crash_on_ask; /* return an error from on_message on ASK */
    bool silent;       /* never answer asks */
    bool trap;         /* trap exits (set before spawn) */
    /* Called for each message after logging, if set; its return is the
     * actor's (non-zero crashes it). */
    int (*hook)(sl_actor *self, const sl_msg *m, struct slc_probe *p);
    void *ud;
} slc_probe;

extern const sl_behavior slc_probe_behavior;

typedef struct slc_world {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_idle_t check;
    sl_node *n[SLC_MAX];
    int nodes;
    int up[SLC_MAX], down[SLC_MAX];
    uint16_t port; /* node 0's */
    bool (*done)(struct slc_world *);
    bool timed_out;
    /* Applied to every node's transport/node settings before creation. */
    void (*tune)(int i, sl_transport_settings *ts, sl_node_settings *ns);
    const sl_mem *mem[SLC_MAX]; /* per-node allocator, or NULL */
    unsigned loss_pct;          /* > 0: node 1 reaches node 0 through a lossy relay */
    struct slc_relay *relay;
    unsigned delay_ms; /* > 0: through a relay that delays each way this long */
} slc_world;

/* Create `nodes` nodes (2..SLC_MAX) and connect them all to node 0. Set
 * w->tune / w->mem first (the struct is zeroed by the caller). */
void slc_up(slc_world *w, int nodes);
/* Stop every node, free them, close the loop (asserts it closes clean). */
void slc_down(slc_world *w);
/* Create node i (used by slc_up; also to restart a node). */
sl_node *slc_node(slc_world *w, int i);
/* Run until done(w) or ms passed; true if done(w) holds. */
bool slc_run_until(slc_world *w, bool (*done)(slc_world *), uint64_t ms);
/* Run the loop for `ms` milliseconds. */
void slc_run_for(slc_world *w, uint64_t ms);
/* Spawn a probe on node i. */
sl_id slc_spawn(slc_world *w, int i, slc_probe *p, const sl_spawn_opts *opts);
/* The last record of `kind` in p's log, or NULL. */
const slc_rec *slc_find(const slc_probe *p, uint8_t kind);

#endif

/*
 * A lossy UDP relay on the world's loop, for loss tests without netem: the
 * first peer that sends to the relay's port is "the client"; its datagrams
 * go to 127.0.0.1:to_port and the answers come back, each direction
 * dropping loss_pct percent of datagrams (a fixed pseudo-random sequence).
 */
typedef struct slc_relay slc_relay;
slc_relay *slc_relay_start(slc_world *w, uint16_t to_port, unsigned loss_pct, uint16_t *port);
/* Datagrams dropped so far. */
uint64_t slc_relay_dropped(const slc_relay *r);
/* Hold every datagram `ms` milliseconds, each way (order kept). */
void slc_relay_set_delay(slc_relay *r, unsigned ms);
void slc_relay_stop(slc_relay *r); /* closes the sockets; frees after the loop runs */
