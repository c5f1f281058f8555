/*
 * inject.h: the core's entry point for messages that arrive from outside the
 * core with a full description (the runtime's offload results today, remote
 * envelopes later). Internal to Starling: runtime/ may use it, users not.
 */
#ifndef SL_ACTORS_INJECT_H
#define SL_ACTORS_INJECT_H

#include "starling/actor.h"

/* sl__core_inject() modes for a full mailbox (user kinds SEND/ASK/CHUNK). */
enum {
    SL__INJECT_FLOW = 1, /* refuse with SL_ERR_AGAIN and call settings.room later */
    SL__INJECT_LOSSY = 2 /* drop it (counted) and return SL_OK */
};

/*
 * Deliver `m` (every field of it: from, to, kind, prio, type, corr, status,
 * code, flags, payload, which is copied) to the local actor m->to, with the
 * same mailbox rules as a local send of that kind, changed by `how`
 * (SL__INJECT_*; 0 = the actor's overflow policy). Messages from another
 * node's actors may also be the wire-only kinds (MONITOR..STOP) and DOWN or
 * EXIT signals, which update monitors and links instead of the mailbox.
 * Returns SL_OK, SL_ERR_NOACTOR (a dead letter), SL_ERR_MAILBOX_FULL,
 * SL_ERR_AGAIN (FLOW and full), SL_ERR_CANCELLED (an answer to an ask that
 * is no longer pending), SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM, SL_ERR_INVAL.
 */
int sl__core_inject(sl_core *c, const sl_msg *m, unsigned how);

/*
 * Message blocks filled in place, so a big payload arriving from the
 * network is copied once, piece by piece as it arrives, into the block the
 * actor will receive, instead of being reassembled and then copied whole.
 *
 * sl__core_block_new() allocates a block with `room` bytes the caller may
 * write (*data points at them); NULL when out of memory. The caller owns it
 * until sl__core_inject_block() returns SL_OK, and frees it otherwise with
 * sl__core_block_free() (NULL is ignored).
 *
 * sl__core_inject_block() is sl__core_inject() with the payload m->data ..
 * m->data + m->len lying inside the room of block `b` (else SL_ERR_INVAL):
 * nothing is copied, the block itself is queued. SL_OK: the core owns `b`
 * (queued, or freed if the message was consumed without queueing). Any
 * other code: the caller still owns it and may retry (SL_ERR_AGAIN).
 */
struct sl__msg;
/* The core keeps one freed big block (>= 1 MiB of room) for the next big
 * message, from the first call of sl__core_trim() on; the platform calls
 * it periodically with the time sl_core_run() gets, and it frees that
 * block once unused for a second. */
void sl__core_trim(sl_core *c, uint64_t now_ns);
struct sl__msg *sl__core_block_new(sl_core *c, size_t room, uint8_t **data);
void sl__core_block_free(sl_core *c, struct sl__msg *b);
int sl__core_inject_block(sl_core *c, const sl_msg *m, unsigned how, struct sl__msg *b);

/*
 * A remote node is gone (connection lost): every pending ask of a local
 * actor to an actor on `node` fails at once with FAIL(status = err), and
 * monitors of actors there fire DOWN(reason). Returns how many were ended.
 * SL__NODE_ALL: every node but this one (a browser node lost its gateway,
 * through which it reached all of them).
 */
#define SL__NODE_ALL UINT64_MAX
size_t sl__core_node_down(sl_core *c, uint64_t node, int err, int reason);
/* A browser node learns its id from its gateway before any actor exists:
 * SL_OK, or SL_ERR_INVAL once actors were spawned (their ids carry the old one). */
int sl__core_set_node_id(sl_core *c, uint64_t node);
/* A platform that joins a cluster after the core was made (the browser's)
 * installs its remote, room and remote_unreliable_max hooks then. */
void sl__core_set_remote(sl_core *c, const sl_core_settings *hooks);

#endif
