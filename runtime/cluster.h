/*
 * cluster.h: the node's links to peer nodes (internal to runtime/).
 */
#ifndef SL_RUNTIME_CLUSTER_H
#define SL_RUNTIME_CLUSTER_H

#include "starling/actor.h"
#include "starling/transport.h"

typedef struct sl__cluster sl__cluster;

/* Create the QUIC endpoint (mutual TLS forced on) for `core`'s node.
 * Returns the sl_quic_new() codes or SL_ERR_NOMEM. */
int sl__cluster_new(const sl_transport_settings *ts, sl_core *core, const sl_mem *mem,
                    size_t max_message, sl__cluster **out);
/* Our node id (from the TLS key). */
uint64_t sl__cluster_node_id(const sl__cluster *k);
sl_transport *sl__cluster_transport(const sl__cluster *k);
/* The core is created after the endpoint (its node id comes from the key). */
void sl__cluster_set_core(sl__cluster *k, sl_core *core);
/* Peer up/down notifications. */
void sl__cluster_on_peer(sl__cluster *k, void (*fn)(uint64_t node, bool up, void *ud), void *ud);
/* Route one message to its node (the core's `remote` hook). Returns SL_OK,
 * SL_ERR_NOCONN (no connection to that node), SL_ERR_AGAIN (lane full),
 * SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM. */
int sl__cluster_send(sl__cluster *k, const sl_msg *m);
/* Close every connection and the socket; `cb` after. */
void sl__cluster_close(sl__cluster *k, void (*cb)(void *ud), void *ud);
void sl__cluster_del(sl__cluster *k);

#endif
