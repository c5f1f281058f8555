/*
 * cluster.c: a node's links to other nodes over the QUIC transport.
 *
 * Every peer node is one QUIC connection, named by the node id its TLS key
 * gives it (so a peer cannot speak for another node's actors: the sender
 * node of every envelope it sends must be its own). Messages for actors on
 * a peer travel as length-prefixed envelopes (schemas/) on lane streams:
 * one unidirectional stream per priority class, opened lazily. One lane per
 * class keeps FIFO per (sender, receiver, class) and lets the transport's
 * scheduler put CRITICAL before BACKGROUND on the wire. Incoming lanes are
 * read with a frame reader; each envelope is decoded and handed to the core
 * (sl__core_inject), which completes asks, drops late replies and applies
 * mailbox bounds. An ask for an actor that does not exist is answered with
 * FAIL(NOACTOR) at once. When a peer's connection ends, every pending ask
 * to that node fails at once and monitors of its actors fire DOWN
 * (noconnection).
 *
 * This is the first slice of the distributed runtime: per-receiver lanes,
 * per-mailbox backpressure, remote monitors/links and reconnection come
 * next (see runtime/README.md).
 */
#include <stdio.h>
#include <string.h>

#include "actors/inject.h"
#include "actors/map.h"
#include "runtime/cluster.h"
#include "starling/schema.h"

typedef struct peer {
    uint64_t node;
    sl_conn *conn;
    sl_stream *lane[SL_PRIO_COUNT]; /* outbound, opened lazily */
} peer;

/* Per incoming stream: reassembles frames. */
typedef struct inlane {
    sl_frame_reader fr;
    peer *p;
} inlane;

/* Marks an outbound lane's stream (its data pointer). */
static int outbound_mark;

struct sl__cluster {
    sl_mem mem;
    sl_core *core;
    sl_transport *t;
    uint64_t node;      /* our node id */
    sl__map peers;      /* node id -> peer */
    uint8_t *buf;       /* encode buffer */
    size_t cap;
    size_t max_message; /* payload limit (the core's) */
    sl_limits lim;
    void (*on_peer)(uint64_t node, bool up, void *ud);
    void *ud;
    void (*on_closed)(void *ud);
    void *closed_ud;
    uint64_t rejected;  /* envelopes refused (bad frames, forged senders) */
};

static void *c_alloc(sl__cluster *k, size_t n) { return k->mem.malloc(n, k->mem.ud); }
static void c_free(sl__cluster *k, void *p)
{
    if (p)
        k->mem.free(p, k->mem.ud);
}

/* ---------------------------------------------------------- outbound */

static int send_envelope(sl__cluster *k, peer *p, const sl_msg *m)
{
    sl_envelope e;
    memset(&e, 0, sizeof e);
    e.from = m->from;
    e.to = m->to;
    e.corr = m->corr;
    e.type = m->type;
    e.kind = m->kind;
    e.prio = m->prio;
    e.status = m->status;
    e.code = m->code;
    e.len = m->len;
    e.data = m->data;
    size_t need = sl_envelope_max_size(m->len) + 8;
    if (need > k->cap) {
        uint8_t *nb = k->mem.realloc(k->buf, need, k->mem.ud);
        if (!nb)
            return SL_ERR_NOMEM;
        k->buf = nb;
        k->cap = need;
    }
    size_t elen = sl_envelope_encoded_size(&e, p->node, k->node);
    size_t hlen = 0;
    int rc = sl_frame_write_header(elen, k->buf, k->cap, &hlen);
    if (rc)
        return rc;
    size_t wrote = 0;
    rc = sl_envelope_encode(&e, p->node, k->node, k->buf + hlen, k->cap - hlen, &wrote);
    if (rc)
        return rc;
    sl_stream **lane = &p->lane[m->prio];
    if (!*lane) {
        rc = sl_stream_open(p->conn, false, m->prio, &outbound_mark, lane);
        if (rc == SL_ERR_LIMIT)
            return SL_ERR_AGAIN;
        if (rc)
            return rc;
    }
    rc = sl_stream_write(*lane, k->buf, hlen + wrote, NULL);
    return rc == SL_ERR_CLOSED ? SL_ERR_NOCONN : rc;
}

int sl__cluster_send(sl__cluster *k, const sl_msg *m)
{
    if (m->len > k->max_message)
        return SL_ERR_MSG_TOO_BIG;
    peer *p = sl__map_get(&k->peers, m->to.node);
    if (!p || !p->conn)
        return SL_ERR_NOCONN;
    return send_envelope(k, p, m);
}

/* ----------------------------------------------------------- inbound */

static void deliver_envelope(sl__cluster *k, peer *p, const uint8_t *frame, size_t len)
{
    sl_envelope e;
    size_t used = 0;
    int rc = sl_envelope_decode(frame, len, k->node, p->node, &k->lim, &e, &used);
    if (rc == SL_OK && used != len)
        rc = SL_ERR_DECODE_TRAILING;
    if (rc == SL_OK && e.from.local != 0 && e.from.node != p->node)
        rc = SL_ERR_FORBIDDEN; /* a peer speaks only for its own actors */
    if (rc == SL_OK && e.to.node != k->node)
        rc = SL_ERR_FORBIDDEN; /* no forwarding through us in this slice */
    if (rc) {
        k->rejected++;
        fprintf(stderr, "starling: envelope from node %016llx refused: %s\n",
                (unsigned long long)p->node, sl_strerror(rc));
        return;
    }
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.from = e.from;
    m.to = e.to;
    m.corr = e.corr;
    m.type = e.type;
    m.kind = e.kind;
    m.prio = e.prio;
    m.status = e.status;
    m.code = e.code;
    m.len = e.len;
    m.data = e.data;
    rc = sl__core_inject(k->core, &m);
    if (rc && e.kind == SL_KIND_ASK && e.from.local != 0) {
        /* The asker must not wait for its deadline: answer now. */
        sl_msg f;
        memset(&f, 0, sizeof f);
        f.from = e.to;
        f.to = e.from;
        f.kind = SL_KIND_FAIL;
        f.prio = e.prio;
        f.corr = e.corr;
        f.status = rc;
        (void)send_envelope(k, p, &f);
    }
}

/* ------------------------------------------------ transport callbacks */

static void on_ready(sl_conn *c, void *ud)
{
    sl__cluster *k = ud;
    uint64_t node;
    if (sl_conn_peer_node_id(c, &node) != SL_OK) {
        sl_conn_close(c, 1, "starling: peer presented no certificate");
        return;
    }
    peer *p = sl__map_get(&k->peers, node);
    if (!p) {
        p = k->mem.calloc(1, sizeof *p, k->mem.ud);
        if (!p || sl__map_put(&k->peers, node, p) != SL_OK) {
            c_free(k, p);
            sl_conn_close(c, 1, "starling: out of memory");
            return;
        }
        p->node = node;
    }
    /* The newest connection carries the traffic; lanes of an older one
     * stay with it until it closes. */
    p->conn = c;
    memset(p->lane, 0, sizeof p->lane);
    sl_conn_set_data(c, p);
    if (k->on_peer)
        k->on_peer(node, true, k->ud);
}

static void on_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    sl__cluster *k = ud;
    peer *p = sl_conn_data(c);
    if (!p || p->conn != c)
        return;
    uint64_t node = p->node;
    sl__map_del(&k->peers, node);
    c_free(k, p);
    /* Everything waiting on that node learns it now, not at a deadline. */
    sl__core_node_down(k->core, node, SL_ERR_NOCONN, SL_REASON_NOCONNECTION);
    if (k->on_peer)
        k->on_peer(node, false, k->ud);
}

static void on_stream_open(sl_stream *s, void *ud)
{
    sl__cluster *k = ud;
    inlane *in = c_alloc(k, sizeof *in);
    if (!in) {
        sl_stream_stop_sending(s, 1);
        return;
    }
    sl_frame_reader_init(&in->fr, k->max_message + SL_ENVELOPE_MAX_OVERHEAD, &k->mem);
    in->p = sl_conn_data(sl_stream_conn(s));
    sl_stream_set_data(s, in);
}

static void on_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    sl__cluster *k = ud;
    inlane *in = sl_stream_data(s);
    if (!in || (void *)in == (void *)&outbound_mark || !in->p) {
        sl_stream_consume(s, len);
        return;
    }
    size_t off = 0;
    while (off < len) {
        size_t used = 0;
        const uint8_t *frame;
        size_t flen;
        int rc = sl_frame_reader_feed(&in->fr, data + off, len - off, &used, &frame, &flen);
        off += used;
        if (rc == SL_ERR_AGAIN)
            break;
        if (rc != SL_OK) {
            /* Out of sync (oversize frame, no memory): this lane is lost,
             * the connection and its other lanes go on. */
            k->rejected++;
            fprintf(stderr, "starling: lane from node %016llx closed: %s\n",
                    (unsigned long long)in->p->node, sl_strerror(rc));
            sl_stream_stop_sending(s, 2);
            break;
        }
        deliver_envelope(k, in->p, frame, flen);
    }
    sl_stream_consume(s, len);
}

static void on_stream_closed(sl_stream *s, void *ud)
{
    sl__cluster *k = ud;
    void *d = sl_stream_data(s);
    if (d == (void *)&outbound_mark) {
        peer *p = sl_conn_data(sl_stream_conn(s));
        if (p)
            for (int i = 0; i < SL_PRIO_COUNT; i++)
                if (p->lane[i] == s)
                    p->lane[i] = NULL;
        return;
    }
    inlane *in = d;
    if (in) {
        sl_frame_reader_fini(&in->fr);
        c_free(k, in);
    }
}

/* ------------------------------------------------------------ lifecycle */

int sl__cluster_new(const sl_transport_settings *ts, sl_core *core, const sl_mem *mem,
                    size_t max_message, sl__cluster **out)
{
    sl__cluster *k = mem->calloc(1, sizeof *k, mem->ud);
    if (!k)
        return SL_ERR_NOMEM;
    k->mem = *mem;
    k->core = core;
    k->max_message = max_message;
    sl_limits_default(&k->lim);
    sl__map_init(&k->peers, &k->mem);
    sl_transport_settings s = *ts;
    s.ud = k;
    s.cb.on_conn_ready = on_ready;
    s.cb.on_conn_closed = on_closed;
    s.cb.on_stream_open = on_stream_open;
    s.cb.on_stream_data = on_stream_data;
    s.cb.on_stream_closed = on_stream_closed;
    /* Node to node is mutual: the server side asks every client for its
     * certificate (verified per s.tls.verify), so every peer has a node id. */
    s.tls.require_client_cert = true;
    int rc = sl_quic_new(&s, &k->t);
    if (rc) {
        mem->free(k, mem->ud);
        return rc;
    }
    sl_transport_node_id(k->t, &k->node);
    *out = k;
    return SL_OK;
}

uint64_t sl__cluster_node_id(const sl__cluster *k) { return k->node; }
sl_transport *sl__cluster_transport(const sl__cluster *k) { return k->t; }
void sl__cluster_set_core(sl__cluster *k, sl_core *core) { k->core = core; }

void sl__cluster_on_peer(sl__cluster *k, void (*fn)(uint64_t, bool, void *), void *ud)
{
    k->on_peer = fn;
    k->ud = ud;
}

static void transport_closed(sl_transport *t, void *ud)
{
    sl__cluster *k = ud;
    if (k->on_closed)
        k->on_closed(k->closed_ud);
}

void sl__cluster_close(sl__cluster *k, void (*on_closed_cb)(void *), void *ud)
{
    k->on_closed = on_closed_cb;
    k->closed_ud = ud;
    sl_transport_close(k->t, transport_closed, k);
}

void sl__cluster_del(sl__cluster *k)
{
    if (!k)
        return;
    sl_transport_del(k->t);
    for (size_t i = 0; i < k->peers.cap; i++)
        if (k->peers.slots[i].key)
            c_free(k, k->peers.slots[i].val);
    sl__map_fini(&k->peers);
    c_free(k, k->buf);
    sl_mem mem = k->mem;
    mem.free(k, mem.ud);
}
