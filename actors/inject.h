/*
 * inject.h: the core's entry point for messages that arrive from outside the
 * core with a full description (the runtime's offload results today, remote
 * envelopes later). Internal to Starling: runtime/ may use it, users not.
 */
#ifndef SL_ACTORS_INJECT_H
#define SL_ACTORS_INJECT_H

#include "starling/actor.h"

/*
 * Deliver `m` (every field of it: from, to, kind, prio, type, corr, status,
 * code, payload, which is copied) to the local actor m->to, with the same
 * mailbox rules as a local send of that kind.
 * Returns SL_OK, SL_ERR_NOACTOR (a dead letter), SL_ERR_MAILBOX_FULL,
 * SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM, SL_ERR_INVAL.
 */
int sl__core_inject(sl_core *c, const sl_msg *m);

/*
 * A remote node is gone (connection lost): every pending ask of a local
 * actor to an actor on `node` fails at once with FAIL(status = err), and
 * monitors of actors there fire DOWN(reason). Returns how many were ended.
 */
size_t sl__core_node_down(sl_core *c, uint64_t node, int err, int reason);

#endif
