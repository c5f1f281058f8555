/*
 * sched.h: the per-connection stream scheduler of the QUIC transport.
 *
 * Decides which stream of a connection sends its next bytes. Policy, from
 * ARCHITECTURE.md: strict priority between the five classes (a lower
 * sl_prio number is always served first whenever it has a ready stream) and
 * fair round-robin with a byte quantum inside a class (deficit round robin),
 * so a stream with a 64 MiB backlog never starves the small messages queued
 * beside it. The connection's control stream is simply a stream at
 * SL_PRIO_CRITICAL.
 *
 * Pure policy: no I/O, no clock, no allocation, no ngtcp2. The caller embeds
 * an sl__sched_node in its stream struct (intrusive, container_of style: see
 * sl__sched_entry), tells the scheduler when a stream has data, is blocked
 * by flow control or changes class, asks it which stream goes next
 * (sl__sched_peek) and reports what that stream sent (sl__sched_sent).
 * Every operation is O(1) except sl__sched_verify, a test helper.
 *
 * Internal to Starling (sl__ prefix); one thread, like the connection that
 * owns it. Ownership: the scheduler never owns nodes; it links them. A node
 * must be removed (sl__sched_remove) before its memory is freed.
 */
#ifndef SL_TRANSPORT_SCHED_H
#define SL_TRANSPORT_SCHED_H

#include <stddef.h>

#include "starling/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The quantum used when sl__sched_init is given 0 (the settings' default). */
#define SL__SCHED_QUANTUM_DEFAULT 16384u

/*
 * One stream's scheduling state, embedded in the caller's stream struct.
 * Initialise with sl__sched_node_init; the fields are the scheduler's, read
 * them through the accessors below.
 */
typedef struct sl__sched_node {
    struct sl__sched_node *prev; /* neighbours in the class ring; NULL when not queued */
    struct sl__sched_node *next;
    uint32_t deficit; /* bytes left in the current turn; non-zero only for a class's
                         head whose turn has started (a peek granted it a quantum) */
    uint8_t prio;     /* sl_prio class; kept while not queued */
    uint8_t blocked;  /* flow-control blocked: sl__sched_push is ignored until
                         sl__sched_unblock */
} sl__sched_node;

/*
 * A connection's scheduler. Each class is a circular doubly linked ring of
 * the streams that have data to send; head[p] is the stream whose turn is
 * current or next in class p, head[p]->prev is the tail. Bit p of `nonempty`
 * is set exactly when head[p] != NULL, so the most urgent ready class is one
 * count-trailing-zeros.
 */
typedef struct sl__sched {
    sl__sched_node *head[SL_PRIO_COUNT];
    uint32_t count[SL_PRIO_COUNT]; /* queued streams per class */
    uint32_t quantum;              /* bytes a stream may send per turn (> 0) */
    uint8_t nonempty;              /* bit p: class p has a queued stream */
} sl__sched;

/* The struct of type `type` whose member `member` is the node `ptr`. */
#define sl__sched_entry(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * Initialise a scheduler with no queued stream. `quantum` is the number of
 * bytes a stream may send per round-robin turn inside its class; 0 selects
 * SL__SCHED_QUANTUM_DEFAULT. Needs no fini: it owns nothing.
 */
void sl__sched_init(sl__sched *s, uint32_t quantum);

/*
 * Initialise a node: not queued, not blocked, in class `prio` (an sl_prio;
 * out-of-range values are a contract violation, asserted; with assertions
 * off they are clamped to the nearest class).
 */
void sl__sched_node_init(sl__sched_node *n, int prio);

/* True when the node is queued (has data to send and is not blocked). */
static inline bool sl__sched_queued(const sl__sched_node *n)
{
    return n->next != NULL;
}
/* True when the node is marked flow-control blocked. */
static inline bool sl__sched_is_blocked(const sl__sched_node *n)
{
    return n->blocked != 0;
}
/* The node's class. */
static inline int sl__sched_prio(const sl__sched_node *n)
{
    return n->prio;
}
/* True when no stream is queued (sl__sched_peek would return NULL). */
static inline bool sl__sched_empty(const sl__sched *s)
{
    return s->nonempty == 0;
}

/*
 * Mark `n` as having data to send: it joins the tail of its class and gets
 * its quantum when its turn comes. Idempotent: a node already queued keeps
 * its place and its current turn. Ignored while the node is blocked (the
 * caller may push on every write without tracking flow control; the
 * stream rejoins through sl__sched_unblock). O(1).
 */
void sl__sched_push(sl__sched *s, sl__sched_node *n);

/*
 * Take `n` out of the queue: it has no more data, was reset or is closing.
 * Its turn, if any, ends (if it was its class's head, the next stream of
 * the class becomes the head, with a fresh turn).
 * A node that is not queued is left as it is (no-op). Does not change the
 * blocked mark. Must be called before the node's memory goes. O(1).
 */
void sl__sched_remove(sl__sched *s, sl__sched_node *n);

/*
 * The stream that should send next, or NULL when none is queued: the head
 * of the most urgent non-empty class. If its turn has not started yet, this
 * starts it (grants one quantum). *budget (if not NULL) receives the bytes
 * it may send in the rest of this turn: 1..quantum when a node is returned,
 * 0 otherwise. Peeking again without sl__sched_sent returns the same answer
 * unless the queue changed in between; a stream pushed into a more urgent
 * class in between is returned at once, and the interrupted stream keeps
 * its place and the rest of its turn for when its class is served again.
 * O(1).
 */
sl__sched_node *sl__sched_peek(sl__sched *s, size_t *budget);

/*
 * Report that `n`, the node a peek returned, sent `bytes` (at most the
 * budget that peek gave; sending 0 is allowed, e.g. the packet was full).
 * The turn's budget shrinks by `bytes`; when it reaches 0 the stream goes to
 * the tail of its class (a fresh quantum next turn). If `still_has_data` is
 * false the stream is removed instead, and its unused budget is forgotten
 * (DRR: an emptied flow keeps no credit). Reports that arrive after the
 * queue changed under the write are tolerated: if `n` is no longer queued
 * (removed or blocked during the write) nothing happens; if it moved to
 * another class since the peek (so its turn there has not started), the
 * bytes are not charged and only !still_has_data takes effect. Sending more
 * than the budget is a contract violation (asserted; with assertions off it
 * just ends the turn). O(1).
 */
void sl__sched_sent(sl__sched *s, sl__sched_node *n, size_t bytes, bool still_has_data);

/*
 * The stream cannot send now because of flow control (the peer's stream
 * window; e.g. NGTCP2_ERR_STREAM_DATA_BLOCKED): remove it, ending its turn,
 * and mark it blocked so that pushes are ignored until sl__sched_unblock.
 * Works whether or not the node is queued. O(1).
 */
void sl__sched_blocked(sl__sched *s, sl__sched_node *n);

/*
 * Credit arrived for a blocked stream (e.g. ngtcp2's extend_max_stream_data
 * callback): clear the blocked mark and, if `has_data`, push it (to the
 * tail of its class). A node that is not blocked is just pushed if
 * `has_data`. O(1).
 */
void sl__sched_unblock(sl__sched *s, sl__sched_node *n, bool has_data);

/*
 * Move `n` to class `prio`. If it is queued and the class changes, it leaves
 * its old class (ending its turn there) and joins the tail of the new one;
 * setting the class it already has changes nothing (it keeps its place and
 * its turn). A node that is not queued just records the class for its next
 * push. Out-of-range prio: as in sl__sched_node_init. O(1).
 */
void sl__sched_set_prio(sl__sched *s, sl__sched_node *n, int prio);

/*
 * Check every invariant of `s` (ring links, counts, the nonempty mask, that
 * only class heads hold a turn's budget, that no queued node is blocked).
 * O(number of queued nodes); for tests and debugging. Returns true when
 * consistent.
 */
bool sl__sched_verify(const sl__sched *s);

#ifdef __cplusplus
}
#endif
#endif /* SL_TRANSPORT_SCHED_H */
