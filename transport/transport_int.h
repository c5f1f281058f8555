/*
 * transport_int.h: the base objects every transport implementation embeds as
 * its first member, so that the generic functions in transport.c can reach
 * the ops table and the common fields of any transport's connection or
 * stream. Internal to transport/.
 */
#ifndef SL_TRANSPORT_INT_H
#define SL_TRANSPORT_INT_H

#include "starling/transport.h"

struct sl_transport {
    const sl_transport_ops *ops;
    sl_transport_settings set;
    sl_mem mem;
};

struct sl_conn {
    /* Connection and stream operations (the conn/stream half of an ops
     * table). A transport's own connections point at its table; a
     * connection layered on top of another one (a WebTransport session
     * carried by an HTTP/3 QUIC connection) points at its layer's, so the
     * generic sl_conn_* / sl_stream_* functions reach the right code with
     * one load either way. */
    const sl_transport_ops *ops;
    sl_transport *t;
    void *ud;
    bool client;
    bool has_peer_node;
    uint64_t peer_node;
    char alpn[32];
};

struct sl_stream {
    sl_conn *c;
    void *ud;
    int64_t id;
    uint8_t prio;
};

#endif
