/*
 * transport.c: the generic face of every transport. Settings defaults, the
 * accessors of the base objects, and the sl_conn_* / sl_stream_* functions,
 * each of which calls through its connection's ops table (sl_conn.ops: the
 * transport's own for its connections, the WebTransport layer's for a
 * WebTransport session); the endpoint functions call through the
 * transport's.
 */
#include <string.h>

#include "transport/transport_int.h"

void sl_transport_settings_default(sl_transport_settings *s)
{
    memset(s, 0, sizeof *s);
    s->tls.verify = SL_VERIFY_CA;
    s->idle_timeout_ms = 30000;
    s->keepalive_ms = 10000;
    s->handshake_timeout_ms = 10000;
    s->max_streams_bidi = 1024;
    s->max_streams_uni = 1024;
    s->stream_window = 1u << 20;
    s->conn_window = 16u << 20;
    s->max_stream_buffer = 8u << 20;
    s->max_conn_buffer = 64u << 20;
    s->low_water = 256u << 10;
    s->max_connections = 10000;
    s->max_connections_per_addr = 256;
    s->max_handshakes = 1024;
    s->max_datagram = 1200;
    s->max_resets = 10000;
    s->quantum = 16u << 10;
    s->retry = SL_RETRY_AUTO;
    s->retry_handshake_rate = 200;
    s->session_cache = true;
    s->accept_early_data = true;
    s->bulk_inflight = 64u << 10;
    s->bulk_window = 64u << 10;
}

int sl_transport_listen(sl_transport *t, const char *host, uint16_t port)
{
    return t ? t->ops->listen(t, host, port) : SL_ERR_INVAL;
}

int sl_transport_local_port(const sl_transport *t, uint16_t *port)
{
    return t ? t->ops->local_port(t, port) : SL_ERR_INVAL;
}

int sl_transport_connect(sl_transport *t, const char *host, uint16_t port, void *conn_ud,
                         sl_conn **out)
{
    return t ? t->ops->connect(t, host, port, conn_ud, out) : SL_ERR_INVAL;
}

void sl_transport_close(sl_transport *t, void (*on_closed)(sl_transport *, void *), void *ud)
{
    if (t)
        t->ops->close(t, on_closed, ud);
}

void sl_transport_del(sl_transport *t)
{
    if (t)
        t->ops->del(t);
}

void *sl_conn_data(const sl_conn *c) { return c->ud; }
void sl_conn_set_data(sl_conn *c, void *ud) { c->ud = ud; }
sl_transport *sl_conn_transport(const sl_conn *c) { return c->t; }
bool sl_conn_is_client(const sl_conn *c) { return c->client; }
const char *sl_conn_alpn(const sl_conn *c) { return c->alpn[0] ? c->alpn : NULL; }

int sl_conn_peer_node_id(const sl_conn *c, uint64_t *out)
{
    if (!c->has_peer_node)
        return SL_ERR_NOTFOUND;
    *out = c->peer_node;
    return SL_OK;
}

int sl_conn_close(sl_conn *c, uint64_t app_code, const char *reason)
{
    return c->ops->conn_close(c, app_code, reason);
}

int sl_conn_stats_get(const sl_conn *c, sl_conn_stats *out)
{
    return c->ops->conn_stats(c, out);
}

int sl_datagram_send(sl_conn *c, const void *data, size_t len)
{
    return c->ops->datagram_send(c, data, len);
}

size_t sl_datagram_max(const sl_conn *c) { return c->ops->datagram_max(c); }

int sl_stream_open(sl_conn *c, bool bidi, int prio, void *stream_ud, sl_stream **out)
{
    if ((unsigned)prio >= SL_PRIO_COUNT)
        return SL_ERR_INVAL;
    return c->ops->stream_open(c, bidi, prio, stream_ud, out);
}

void *sl_stream_data(const sl_stream *s) { return s->ud; }
void sl_stream_set_data(sl_stream *s, void *ud) { s->ud = ud; }
sl_conn *sl_stream_conn(const sl_stream *s) { return s->c; }
int64_t sl_stream_id(const sl_stream *s) { return s->id; }
int sl_stream_prio(const sl_stream *s) { return s->prio; }

int sl_stream_set_prio(sl_stream *s, int prio)
{
    if ((unsigned)prio >= SL_PRIO_COUNT)
        return SL_ERR_INVAL;
    return s->c->ops->stream_set_prio(s, prio);
}

int sl_stream_write(sl_stream *s, const void *data, size_t len, size_t *buffered)
{
    if (!s)
        return SL_ERR_CLOSED;
    if (len && !data)
        return SL_ERR_INVAL;
    return s->c->ops->stream_write(s, data, len, buffered);
}

/* A NULL stream (one that already closed) reports SL_ERR_CLOSED. */
int sl_stream_finish(sl_stream *s) { return s ? s->c->ops->stream_finish(s) : SL_ERR_CLOSED; }
int sl_stream_reset(sl_stream *s, uint64_t code)
{
    return s ? s->c->ops->stream_reset(s, code) : SL_ERR_CLOSED;
}

int sl_stream_stop_sending(sl_stream *s, uint64_t code)
{
    return s ? s->c->ops->stream_stop_sending(s, code) : SL_ERR_CLOSED;
}

int sl_stream_consume(sl_stream *s, size_t n)
{
    return s ? s->c->ops->stream_consume(s, n) : SL_ERR_CLOSED;
}

int sl_stream_stats_get(const sl_stream *s, sl_stream_stats *out)
{
    return s->c->ops->stream_stats(s, out);
}

int sl_stream_allow_early_data(sl_stream *s) { return s->c->ops->stream_allow_early(s); }

int sl_transport_stats_get(const sl_transport *t, sl_transport_stats *out)
{
    return t ? t->ops->stats(t, out) : SL_ERR_INVAL;
}

int sl_transport_node_id(const sl_transport *t, uint64_t *out)
{
    return t ? t->ops->node_id(t, out) : SL_ERR_INVAL;
}

int sl_transport_key_secret(const sl_transport *t, const char *label, uint8_t out[32])
{
    if (!t || !label || !out)
        return SL_ERR_INVAL;
    return t->ops->key_secret ? t->ops->key_secret(t, label, out) : SL_ERR_UNSUPPORTED;
}
