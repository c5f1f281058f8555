/*
 * quic.c: the native QUIC transport: ngtcp2 + GnuTLS on one UDP socket
 * driven by libuv.
 *
 * One endpoint (sl_transport) owns one non-blocking UDP socket, watched with
 * a uv_poll_t so that we own the I/O path (batched recvmmsg/sendmmsg; libuv's
 * uv_udp_t hides both). It serves as client and server at once: every
 * connection, whichever side opened it, is found by the Destination
 * Connection ID of incoming packets in a hash map keyed by the first 8 bytes
 * of the id (we choose 16 random bytes for ours; an Initial's client-chosen
 * id is at least 8).
 *
 * Each connection has an ngtcp2_conn, a GnuTLS session configured by
 * transport/tls.c, a uv_timer_t driven by ngtcp2_conn_get_expiry(), and a
 * stream scheduler (transport/sched.c): strict priority between classes,
 * deficit round robin inside one. Writes are buffered per stream (copied)
 * until acknowledged, because ngtcp2 may need to retransmit them; a
 * connection with something to send is put on the "dirty" list and flushed
 * once per loop iteration from a uv_prepare_t, so many small writes become
 * few packets.
 *
 * Flow control is the consumer's: credit (MAX_STREAM_DATA, MAX_DATA) is
 * extended only from sl_stream_consume(); MAX_STREAMS is extended as peer
 * streams close. ngtcp2 does neither by itself.
 *
 * Credit by class (priorities on the wire): a CRITICAL message is sent
 * first but arrives behind whatever bulk bytes are already in flight, so
 * the bulk classes (LOW, BACKGROUND) may not have much in flight. As a
 * sender, a connection's bulk streams together stop at bulk_inflight bytes
 * sent and not yet acknowledged (they leave the scheduler and wait in a
 * FIFO until acks arrive: wake_capped()). As a receiver, a bulk stream's
 * credit runs bulk_window ahead of what was consumed, other classes'
 * stream_window ahead (grant()). A peer's stream is NORMAL until the
 * consumer names its class (sl_stream_set_prio).
 *
 * Lifetimes: nothing is freed inside an ngtcp2 callback. A connection that
 * ends is marked, and torn down by the top-level handler that noticed
 * (after read_pkt, handle_expiry or a flush); its timer is closed
 * asynchronously and the memory goes in the close callback.
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "actors/map.h"
#include "actors/mem.h"
#include "transport/sched.h"
#include "transport/tls.h"
#include "transport/transport_int.h"
#include "transport/webtransport/wt.h"

#define CID_LEN 16
#define MAX_PKT 1452        /* bytes of one outgoing UDP payload we build */
#define GONE_TOKENS 64      /* reset tokens of released connections remembered */
#define GONE_TOKEN_NS (10 * NGTCP2_SECONDS) /* for this long */
#define RX_BATCH 16         /* datagrams per recvmmsg */
#define RX_BUF 65536        /* bytes per receive buffer: a GRO batch of packets */
#define TX_BATCH 32         /* packets per sendmmsg */
#define WRITE_BUDGET 64     /* packets one connection may build per flush turn */
#define CHUNK_MIN 16384     /* minimum size of a send-buffer chunk */
#define CHUNK_CACHE 256     /* free CHUNK_MIN chunks kept per endpoint (4 MiB) */
#define MAX_DGRAM_QUEUE 1024
#define APP_ABUSE 0x5354    /* application close code for an abusive peer */

typedef struct q_transport q_transport;
typedef struct q_conn q_conn;
typedef struct q_stream q_stream;

/* Bytes of a stream kept until acknowledged. */
typedef struct chunk {
    struct chunk *next;
    uint64_t off; /* stream offset of data[0] */
    size_t len;   /* bytes used */
    size_t cap;
    uint8_t data[];
} chunk;

/* A datagram waiting to be sent. */
typedef struct dgram {
    struct dgram *next;
    size_t len;
    uint8_t data[];
} dgram;

struct q_stream {
    sl_stream base;
    q_conn *c;
    sl__sched_node sn;
    q_stream *prev, *next; /* in the connection's stream list */
    chunk *head, *tail;    /* unacknowledged + unsent bytes */
    chunk *send;           /* chunk containing send_off */
    uint64_t acked_off;    /* bytes acknowledged */
    uint64_t send_off;     /* bytes handed to ngtcp2 */
    uint64_t write_off;    /* bytes written by the user */
    bool fin_queued, fin_sent, wr_shut, rd_shut, opened_by_peer;
    bool want_own;         /* refused for its own buffer: woken by its own acks */
    bool want_conn;        /* refused for the connection's buffer: in c->want_* */
    q_stream *want_prev, *want_next;
    bool replay_safe;      /* may go as 0-RTT */
    bool stop_sent;        /* we sent STOP_SENDING (a RESET_STREAM back is expected) */
    bool early;            /* opened before the handshake completed */
    bool capped;           /* a bulk stream held back by bulk_inflight: in c->capped_* */
    q_stream *cap_next;
    uint64_t bulk_sent;    /* of c->bulk_flight, the bytes this stream sent as bulk */
    uint64_t rx_limit;     /* credit given: the offset the peer may send up to */
    sl_stream_stats st;
};

struct q_conn {
    sl_conn base;
    q_transport *t;
    /* Where this connection's events go (and the pointer they carry): the
     * application's callbacks, or a layer's that sits on this connection
     * and raises the application's callbacks for its own objects. */
    const sl_transport_callbacks *cb;
    void *cb_ud;
    bool routed;             /* cb is final: the ALPN was looked at (route()) */
    ngtcp2_conn *q;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    uv_timer_t timer;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    q_conn *prev, *next;     /* all connections */
    q_conn *dirty_next;      /* flush list */
    bool dirty, ready, dead;
    bool close_req;          /* sl_conn_close() asked for a close */
    bool early_attempted;    /* client: 0-RTT parameters were set from the cache */
    bool got_reset;          /* the peer answered with a Stateless Reset */
    bool silent;             /* never reported to the application (a dropped first Initial) */
    bool hs_progress;        /* server: a packet of the peer was accepted */
    uint64_t reset_keys[8];  /* keys in t->reset_tokens of the peer's tokens we hold */
    uint64_t close_code;
    char close_reason[200]; /* fits one packet's CONNECTION_CLOSE with room to spare */
    ngtcp2_ccerr ccerr;      /* what we will send / sent */
    int fail;                /* sl_err when closing on error */
    sl__sched sched;
    q_stream *streams;
    uint32_t nstreams;
    size_t buffered;         /* bytes buffered on all streams */
    q_stream *want_head, *want_tail; /* refused for the connection's limit, FIFO */
    uint64_t bulk_flight;            /* bytes of LOW/BACKGROUND streams sent, not acknowledged */
    q_stream *capped_head, *capped_tail; /* bulk streams waiting for bulk_flight, FIFO */
    uint64_t lost_closed;    /* stream packet losses of streams already closed */
    dgram *dq_head, *dq_tail;
    uint32_t dq_len;
    uint64_t dgram_id;
    uint64_t ocid_key;       /* server: key of the client's original DCID */
    uint32_t addr_key;       /* per-address accounting key (IPv4 or hash) */
    sl_conn_stats st;
};

struct q_transport {
    sl_transport base;
    uv_loop_t *loop;
    int fd;
    uv_poll_t poll;
    uv_prepare_t prepare;
    bool bound, polling, closing;
    int poll_events;
    int open_handles;
    struct sockaddr_storage local;
    socklen_t locallen;
    sl__tls_creds *creds;
    sl__map cids;            /* cid key -> q_conn */
    sl__map reset_tokens;    /* first 8 bytes of a peer's stateless reset token -> q_conn */
    sl__map per_addr;        /* addr key -> count (stored in the pointer) */
    q_conn *conns;
    uint32_t nconns, nhandshakes;
    q_conn *dirty_head;
    uint8_t secret[32];      /* stateless reset tokens, Retry and NEW_TOKEN tokens */
    gnutls_datum_t ticket_key; /* server: session ticket encryption key */
    gnutls_anti_replay_t anti_replay;
    sl__map replay;          /* ClientHello digests seen -> expiry (0-RTT replay guard) */
    sl__map cache;           /* client: peer address key -> session_entry */
    uint64_t rate_start;     /* start of the current one-second handshake window */
    uint32_t rate_count;     /* Initials accepted in it */
    uint64_t reset_window;   /* start of the current one-second stateless-reset window */
    uint32_t resets_sent_window;
    /* Reset tokens of connections released lately (a ring): a further
     * Stateless Reset for one of them is dropped, not answered. */
    uint64_t gone_tokens[GONE_TOKENS];
    uint64_t gone_at[GONE_TOKENS];
    unsigned gone_next;
    sl_transport_stats st;
    ngtcp2_mem nmem;
    void (*on_closed)(sl_transport *, void *);
    void *closed_ud;
    /* Pending outgoing packets (kept across EAGAIN). */
    struct {
        uint8_t buf[TX_BATCH * MAX_PKT]; /* packets back to back (GSO runs) */
        size_t used;
        size_t off[TX_BATCH], len[TX_BATCH];
        struct sockaddr_storage to[TX_BATCH];
        socklen_t tolen[TX_BATCH];
        int n, sent;
    } tx;
    bool tx_blocked;
    bool gso;                /* UDP_SEGMENT works (until the kernel says no) */
    /* Acknowledged CHUNK_MIN chunks kept for the next writes: a sender
     * streaming small messages otherwise malloc()s and frees 16 KiB per
     * 16 KiB sent, and glibc grows and trims its heap (page faults). */
    struct chunk *free_chunks;
    uint32_t nfree_chunks;
    uint8_t (*rx)[RX_BUF];   /* RX_BATCH receive buffers (1 MiB, allocated once) */
    sl__wt_server *wt;       /* WebTransport server for "h3" connections, or NULL */
};

/* What a client remembers about a server for the next connection. */
typedef struct session_entry {
    uint8_t *ticket;        /* gnutls_session_get_data2() bytes */
    size_t ticket_len;
    uint8_t tp[256];        /* 0-RTT transport parameters */
    size_t tp_len;
    uint8_t token[128];     /* NEW_TOKEN for address validation */
    size_t token_len;
} session_entry;

#define CACHE_MAX 1024
#define REPLAY_MAX 65536

static const sl_transport_ops quic_ops;
static void client_after_handshake(q_conn *c);
static void wake_capped(q_conn *c);
static void want_del(q_conn *c, q_stream *s);
static int recv_new_token_cb(ngtcp2_conn *q, const uint8_t *token, size_t len, void *ud);

static uint64_t now_ns(void) { return uv_hrtime(); }

/* -------------------------------------------------------------- helpers */

static uint64_t cid_key(const uint8_t *cid, size_t len)
{
    uint64_t k = 0;
    memcpy(&k, cid, len < 8 ? len : 8);
    return k ? k : 1;
}

static uint32_t addr_key_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr | 1u;
    const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ b[i]) * 16777619u;
    return h | 1u;
}

/* Key of a peer address with its port (session cache). */
static uint64_t peer_key_of(const struct sockaddr *sa)
{
    const uint8_t *b;
    size_t n;
    uint16_t port;
    if (sa->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        n = 4;
        port = ((const struct sockaddr_in *)sa)->sin_port;
    } else {
        b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        n = 16;
        port = ((const struct sockaddr_in6 *)sa)->sin6_port;
    }
    uint64_t h = 0xcbf29ce484222325ull ^ port;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h | 1;
}

static void *q_alloc(q_transport *t, size_t n) { return t->base.mem.malloc(n, t->base.mem.ud); }
static void *q_calloc(q_transport *t, size_t n, size_t s)
{
    return t->base.mem.calloc(n, s, t->base.mem.ud);
}
static void q_free(q_transport *t, void *p)
{
    if (p)
        t->base.mem.free(p, t->base.mem.ud);
}

/* ngtcp2's allocator hooks call ours. */
/* A send-buffer chunk with room for `cap` bytes (from the cache if CHUNK_MIN). */
static chunk *chunk_get(q_transport *t, size_t cap)
{
    if (cap == CHUNK_MIN && t->free_chunks) {
        chunk *k = t->free_chunks;
        t->free_chunks = k->next;
        t->nfree_chunks--;
        return k;
    }
    chunk *k = q_alloc(t, sizeof *k + cap);
    if (k)
        k->cap = cap;
    return k;
}

/* Release a chunk: CHUNK_MIN ones to the cache while it has room. */
static void chunk_put(q_transport *t, chunk *k)
{
    if (k->cap == CHUNK_MIN && t->nfree_chunks < CHUNK_CACHE) {
        k->next = t->free_chunks;
        t->free_chunks = k;
        t->nfree_chunks++;
        return;
    }
    q_free(t, k);
}

static void *nm_malloc(size_t n, void *ud) { return ((sl_mem *)ud)->malloc(n, ((sl_mem *)ud)->ud); }
static void nm_free(void *p, void *ud)
{
    if (p)
        ((sl_mem *)ud)->free(p, ((sl_mem *)ud)->ud);
}
static void *nm_calloc(size_t n, size_t s, void *ud)
{
    return ((sl_mem *)ud)->calloc(n, s, ((sl_mem *)ud)->ud);
}
static void *nm_realloc(void *p, size_t n, void *ud)
{
    return ((sl_mem *)ud)->realloc(p, n, ((sl_mem *)ud)->ud);
}

static void mark_dirty(q_conn *c)
{
    if (c->dirty || c->dead)
        return;
    c->dirty = true;
    c->dirty_next = c->t->dirty_head;
    c->t->dirty_head = c;
}

/* True for the bulk classes, whose credit is bounded (see the top). */
static bool is_bulk(int prio)
{
    return prio >= SL_PRIO_LOW;
}

/* The receive window every stream starts with (the transport parameters):
 * small enough that credit can be given in bulk_window steps, for ngtcp2
 * sends MAX_STREAM_DATA only for increments above a quarter of it. */
static uint64_t initial_window(const sl_transport_settings *set)
{
    uint64_t w = set->stream_window;
    if (set->bulk_window && (uint64_t)2 * set->bulk_window < w)
        w = (uint64_t)2 * set->bulk_window;
    return w;
}

/* The credit a stream of class `prio` gets beyond what was consumed. */
static uint64_t class_window(const sl_transport_settings *set, int prio)
{
    if (is_bulk(prio) && set->bulk_window && set->bulk_window < set->stream_window)
        return set->bulk_window;
    return set->stream_window;
}

/* Bytes a connection's streams of class `prio` may have sent and not yet
 * acknowledged, all together (0 = no bound). */
static uint64_t inflight_cap(const sl_transport_settings *set, int prio)
{
    return is_bulk(prio) ? set->bulk_inflight : 0;
}

/* Hold a bulk stream back until bulk_flight falls (FIFO; see wake_capped). */
static void cap_add(q_conn *c, q_stream *s)
{
    if (s->capped)
        return;
    s->capped = true;
    s->cap_next = NULL;
    if (c->capped_tail)
        c->capped_tail->cap_next = s;
    else
        c->capped_head = s;
    c->capped_tail = s;
}

/* Take `s` out of the FIFO (it closes, or left the bulk classes). */
static void cap_del(q_conn *c, q_stream *s)
{
    if (!s->capped)
        return;
    q_stream *prev = NULL;
    for (q_stream *p = c->capped_head; p; prev = p, p = p->cap_next) {
        if (p != s)
            continue;
        if (prev)
            prev->cap_next = s->cap_next;
        else
            c->capped_head = s->cap_next;
        if (c->capped_tail == s)
            c->capped_tail = prev;
        break;
    }
    s->cap_next = NULL;
    s->capped = false;
}

static int map_err(int nerr)
{
    switch (nerr) {
    case NGTCP2_ERR_NOMEM:
        return SL_ERR_NOMEM;
    case NGTCP2_ERR_CRYPTO:
        return SL_ERR_TLS;
    case NGTCP2_ERR_IDLE_CLOSE:
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        return SL_ERR_TIMEOUT;
    case NGTCP2_ERR_DRAINING:
    case NGTCP2_ERR_CLOSING:
        return SL_ERR_CLOSED;
    default:
        return SL_ERR_QUIC;
    }
}

/* ---------------------------------------------------------- packet I/O */

/*
 * Send what is pending in the tx batch. Runs of packets to the same address
 * with the same size (the last may be shorter) leave as one sendmmsg entry
 * with UDP_SEGMENT (GSO): the kernel cuts them, so a run of 32 full packets
 * costs one trip through the stack. Without GSO support (EIO/EINVAL on the
 * first try) it falls back to one entry per packet for good.
 * Returns false if the socket is full (the rest stays queued).
 */
static bool tx_flush(q_transport *t)
{
    while (t->tx.sent < t->tx.n) {
        struct mmsghdr mh[TX_BATCH];
        struct iovec iov[TX_BATCH];
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl[TX_BATCH];
        int npk[TX_BATCH]; /* packets in each entry */
        int k = 0;
        for (int i = t->tx.sent; i < t->tx.n; k++) {
            int j = i + 1;
            size_t seg = t->tx.len[i], total = seg;
            if (t->gso) {
                while (j < t->tx.n && j - i < 64 && total + t->tx.len[j] <= 65000 &&
                       t->tx.len[j] <= seg && t->tx.tolen[j] == t->tx.tolen[i] &&
                       memcmp(&t->tx.to[j], &t->tx.to[i], t->tx.tolen[i]) == 0) {
                    total += t->tx.len[j];
                    if (t->tx.len[j++] < seg)
                        break; /* a shorter packet ends the run */
                }
            }
            iov[k].iov_base = t->tx.buf + t->tx.off[i];
            iov[k].iov_len = total;
            memset(&mh[k], 0, sizeof mh[k]);
            mh[k].msg_hdr.msg_iov = &iov[k];
            mh[k].msg_hdr.msg_iovlen = 1;
            mh[k].msg_hdr.msg_name = &t->tx.to[i];
            mh[k].msg_hdr.msg_namelen = t->tx.tolen[i];
            if (j - i > 1) {
                memset(&ctl[k], 0, sizeof ctl[k]);
                mh[k].msg_hdr.msg_control = ctl[k].buf;
                mh[k].msg_hdr.msg_controllen = sizeof ctl[k].buf;
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh[k].msg_hdr);
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t segsize = (uint16_t)seg;
                memcpy(CMSG_DATA(cm), &segsize, sizeof segsize);
            }
            npk[k] = j - i;
            i = j;
        }
        int r = sendmmsg(t->fd, mh, (unsigned)k, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->tx_blocked = true;
                return false;
            }
            if (t->gso && (errno == EIO || errno == EINVAL) && npk[0] > 1) {
                t->gso = false; /* the kernel or device refuses GSO */
                continue;
            }
            /* Other errors (e.g. ECONNREFUSED from ICMP): drop this entry;
             * QUIC recovers or the peer times out. */
            t->tx.sent += npk[0];
            continue;
        }
        for (int m = 0; m < r; m++)
            t->tx.sent += npk[m];
    }
    t->tx.n = t->tx.sent = 0;
    t->tx.used = 0;
    t->tx_blocked = false;
    return true;
}

/* Room for one more packet (MAX_PKT bytes)? Flushes a full batch. */
static uint8_t *tx_slot(q_transport *t)
{
    if ((t->tx.n == TX_BATCH || t->tx.used + MAX_PKT > sizeof t->tx.buf) && !tx_flush(t))
        return NULL;
    return t->tx.buf + t->tx.used;
}

/* Commit the packet just written at tx_slot(). */
static void tx_commit(q_transport *t, size_t len, const struct sockaddr *to, socklen_t tolen)
{
    int i = t->tx.n++;
    t->tx.off[i] = t->tx.used;
    t->tx.len[i] = len;
    t->tx.used += len;
    memcpy(&t->tx.to[i], to, tolen);
    t->tx.tolen[i] = tolen;
}

static void update_poll(q_transport *t);

/* ---------------------------------------------------------- connections */

static void conn_timer_closed(uv_handle_t *h)
{
    q_conn *c = h->data;
    q_transport *t = c->t;
    q_free(t, c);
    if (t->closing && --t->open_handles == 0 && t->on_closed)
        t->on_closed(&t->base, t->closed_ud);
}

static void stream_free(q_conn *c, q_stream *s)
{
    q_transport *t = c->t;
    sl__sched_remove(&c->sched, &s->sn);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nstreams--;
    want_del(c, s);
    cap_del(c, s);
    c->bulk_flight -= s->bulk_sent; /* never to be acknowledged now */
    s->bulk_sent = 0;
    if (c->capped_head)
        wake_capped(c);
    if (c->q)
        c->lost_closed += ngtcp2_conn_get_stream_loss_count(c->q, s->base.id);
    c->buffered -= (size_t)(s->write_off - s->acked_off);
    for (chunk *k = s->head; k;) {
        chunk *n = k->next;
        chunk_put(t, k);
        k = n;
    }
    q_free(t, s);
}

static void unregister_cids(q_conn *c)
{
    q_transport *t = c->t;
    ngtcp2_cid cids[16];
    size_t n = ngtcp2_conn_get_scid(c->q, NULL);
    if (n > 16)
        n = 16;
    ngtcp2_conn_get_scid(c->q, cids);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = cid_key(cids[i].data, cids[i].datalen);
        if (sl__map_get(&t->cids, k) == c)
            sl__map_del(&t->cids, k);
    }
    if (c->ocid_key && sl__map_get(&t->cids, c->ocid_key) == c)
        sl__map_del(&t->cids, c->ocid_key);
    uint64_t now = now_ns();
    for (int i = 0; i < 8; i++) {
        if (c->reset_keys[i] && sl__map_get(&t->reset_tokens, c->reset_keys[i]) == c) {
            sl__map_del(&t->reset_tokens, c->reset_keys[i]);
            t->gone_tokens[t->gone_next] = c->reset_keys[i];
            t->gone_at[t->gone_next] = now;
            t->gone_next = (t->gone_next + 1) % GONE_TOKENS;
        }
        c->reset_keys[i] = 0;
    }
}

/* Whether a packet ending in this token key is a Stateless Reset for a
 * connection released in the last GONE_TOKEN_NS: the peer may send one for
 * every packet of ours it got, and a reset answered with a reset is what
 * made two endpoints ping-pong once. */
static bool reset_for_gone(const q_transport *t, uint64_t key)
{
    uint64_t now = now_ns();
    for (unsigned i = 0; i < GONE_TOKENS; i++)
        if (t->gone_tokens[i] == key && now - t->gone_at[i] < GONE_TOKEN_NS)
            return true;
    return false;
}

/*
 * Tear a connection down: report every stream closed, then the connection,
 * release its ids and accounting, and free it once its timer has closed.
 * Must not be called from inside an ngtcp2 callback.
 */
static void conn_destroy(q_conn *c, const sl_close_info *why)
{
    q_transport *t = c->t;
    if (c->dead)
        return;
    c->dead = true;
    const sl_transport_callbacks *cb = c->cb;
    while (c->streams) {
        q_stream *s = c->streams;
        if (cb->on_stream_closed)
            cb->on_stream_closed(&s->base, c->cb_ud);
        stream_free(c, s);
    }
    if (cb->on_conn_closed && !c->silent)
        cb->on_conn_closed(&c->base, why, c->cb_ud);
    while (c->dq_head) {
        dgram *d = c->dq_head;
        c->dq_head = d->next;
        q_free(t, d);
    }
    if (c->q) {
        unregister_cids(c);
        ngtcp2_conn_del(c->q);
        c->q = NULL;
    }
    if (c->tls)
        gnutls_deinit(c->tls);
    c->tls = NULL;
    if (!c->ready && !c->base.client && t->nhandshakes)
        t->nhandshakes--;
    if (!c->base.client) {
        uintptr_t n = (uintptr_t)sl__map_get(&t->per_addr, c->addr_key);
        if (n > 1)
            sl__map_put(&t->per_addr, c->addr_key, (void *)(n - 1));
        else
            sl__map_del(&t->per_addr, c->addr_key);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->nconns--;
    /* Remove from the dirty list if present. */
    if (c->dirty) {
        q_conn **pp = &t->dirty_head;
        while (*pp && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp)
            *pp = c->dirty_next;
        c->dirty = false;
    }
    uv_timer_stop(&c->timer);
    if (t->closing)
        t->open_handles++;
    uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

/* Write a CONNECTION_CLOSE carrying c->ccerr, then destroy. */
static void conn_close_now(q_conn *c, int err, bool by_peer)
{
    q_transport *t = c->t;
    if (c->dead)
        return;
    if (c->q && !ngtcp2_conn_in_closing_period(c->q) && !ngtcp2_conn_in_draining_period(c->q) &&
        c->ccerr.type != NGTCP2_CCERR_TYPE_IDLE_CLOSE &&
        c->ccerr.type != NGTCP2_CCERR_TYPE_DROP_CONN) {
        uint8_t *buf = tx_slot(t);
        if (buf) {
            ngtcp2_path_storage ps;
            ngtcp2_path_storage_zero(&ps);
            ngtcp2_pkt_info pi;
            ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->q, &ps.path, &pi, buf, MAX_PKT,
                                                                &c->ccerr, now_ns());
            if (n > 0) {
                tx_commit(t, (size_t)n, (struct sockaddr *)&c->peer, c->peerlen);
                tx_flush(t);
            }
        }
    }
    sl_close_info why;
    memset(&why, 0, sizeof why);
    why.err = err;
    why.by_peer = by_peer;
    const ngtcp2_ccerr *e = by_peer && c->q ? ngtcp2_conn_get_ccerr(c->q) : &c->ccerr;
    char reason[128] = "";
    if (e) {
        why.app = e->type == NGTCP2_CCERR_TYPE_APPLICATION;
        why.code = e->error_code;
        if (e->reason && e->reasonlen)
            snprintf(reason, sizeof reason, "%.*s", (int)e->reasonlen, (const char *)e->reason);
        if (by_peer && !why.app && why.err == SL_ERR_CLOSED) {
            /* A transport-level close from the peer: name the cause. */
            if (e->error_code >= 0x100 && e->error_code < 0x200)
                why.err = SL_ERR_TLS;
            else if (e->error_code == NGTCP2_CONNECTION_REFUSED)
                why.err = SL_ERR_LIMIT;
            else if (e->error_code != 0)
                why.err = SL_ERR_QUIC;
            else
                why.err = SL_OK;
        } else if (by_peer && why.app) {
            why.err = SL_OK;
        }
    }
    if (c->got_reset) {
        why.err = SL_ERR_CLOSED;
        why.app = false;
        why.code = 0;
        snprintf(reason, sizeof reason, "stateless reset: the peer no longer knows this connection");
    }
    why.reason = reason;
    conn_destroy(c, &why);
}

/* After an ngtcp2 error code from read/expiry/write: close appropriately. */
static void conn_fail(q_conn *c, int nerr)
{
    switch (nerr) {
    case NGTCP2_ERR_DRAINING:
        conn_close_now(c, SL_ERR_CLOSED, true);
        return;
    case NGTCP2_ERR_DROP_CONN:
        c->ccerr.type = NGTCP2_CCERR_TYPE_DROP_CONN;
        /* A server connection that never got past its first packet (e.g.
         * an Initial full of noise) was never anyone's business. */
        if (!c->base.client && !c->hs_progress)
            c->silent = true;
        conn_close_now(c, SL_ERR_CLOSED, false);
        return;
    case NGTCP2_ERR_IDLE_CLOSE:
        /* Said to the application only: an idle close sends nothing. */
        snprintf(c->close_reason, sizeof c->close_reason,
                 "idle timeout: nothing heard from the peer within idle_timeout_ms");
        c->ccerr.type = NGTCP2_CCERR_TYPE_IDLE_CLOSE;
        c->ccerr.reason = (const uint8_t *)c->close_reason;
        c->ccerr.reasonlen = strlen(c->close_reason);
        conn_close_now(c, SL_ERR_TIMEOUT, false);
        return;
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        snprintf(c->close_reason, sizeof c->close_reason,
                 "handshake timed out: not complete within handshake_timeout_ms");
        ngtcp2_ccerr_set_liberr(&c->ccerr, nerr, (const uint8_t *)c->close_reason,
                                strlen(c->close_reason));
        conn_close_now(c, SL_ERR_TIMEOUT, false);
        return;
    case NGTCP2_ERR_CRYPTO: {
        /* Our TLS refused (e.g. the peer's certificate): keep the reason
         * for the application and send it to the peer too. */
        const char *why = sl__tls_last_error(c->t->creds);
        snprintf(c->close_reason, sizeof c->close_reason, "%s", why ? why : "");
        ngtcp2_ccerr_set_tls_alert(&c->ccerr, ngtcp2_conn_get_tls_alert(c->q),
                                   (const uint8_t *)c->close_reason, strlen(c->close_reason));
        conn_close_now(c, SL_ERR_TLS, false);
        return;
    }
    default:
        if (c->fail == SL_OK)
            ngtcp2_ccerr_set_liberr(&c->ccerr, nerr, NULL, 0);
        conn_close_now(c, c->fail ? c->fail : map_err(nerr), false);
        return;
    }
}

static void arm_timer(q_conn *c);
static size_t q_datagram_max(const sl_conn *bc);
static void peer_stopped(q_conn *c, q_stream *s);

/* Build and send this connection's packets (bounded per call). */
static void conn_write(q_conn *c)
{
    q_transport *t = c->t;
    if (c->dead || !c->q)
        return;
    if (c->close_req) {
        ngtcp2_ccerr_set_application_error(&c->ccerr, c->close_code,
                                           (const uint8_t *)c->close_reason,
                                           strlen(c->close_reason));
        conn_close_now(c, c->fail, false); /* SL_OK for sl_conn_close(), a limit otherwise */
        return;
    }
    ngtcp2_tstamp ts = now_ns();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    /* A packet is "open" after NGTCP2_ERR_WRITE_MORE: ngtcp2 must then be
     * called again with the same buffer until it completes the packet, so
     * the budget is only checked between packets. */
    int pkts = 0;
    for (;;) {
        if (pkts >= WRITE_BUDGET) {
            mark_dirty(c); /* more may be waiting: another turn later */
            break;
        }
        uint8_t *buf = tx_slot(t);
        if (!buf) {
            mark_dirty(c); /* socket full: come back when writable */
            update_poll(t);
            break;
        }
        ngtcp2_pkt_info pi;
        ngtcp2_ssize n;
        /* Datagrams first: they are small, unreliable and time-sensitive. */
        if (c->dq_head && c->ready) {
            dgram *d = c->dq_head;
            ngtcp2_vec v = {d->data, d->len};
            int accepted = 0;
            n = ngtcp2_conn_writev_datagram(c->q, &ps.path, &pi, buf, MAX_PKT, &accepted,
                                            NGTCP2_WRITE_DATAGRAM_FLAG_MORE, ++c->dgram_id, &v, 1,
                                            ts);
            if (accepted) {
                c->dq_head = d->next;
                if (!c->dq_head)
                    c->dq_tail = NULL;
                c->dq_len--;
                c->st.datagrams_sent++;
                q_free(t, d);
            }
            if (n == NGTCP2_ERR_WRITE_MORE)
                continue;
            if (n < 0) {
                conn_fail(c, (int)n);
                return;
            }
            if (n == 0) {
                if (!accepted && c->dq_head && c->dq_head->len > q_datagram_max(&c->base)) {
                    /* Can never fit (the path shrank): drop it, counted.
                     * Otherwise it waits: 0 also means congestion. */
                    d = c->dq_head;
                    c->dq_head = d->next;
                    if (!c->dq_head)
                        c->dq_tail = NULL;
                    c->dq_len--;
                    c->st.datagrams_lost++;
                    q_free(t, d);
                    continue;
                }
                break;
            }
            tx_commit(t, (size_t)n, ps.path.remote.addr, (socklen_t)ps.path.remote.addrlen);
            c->st.pkts_sent++;
            c->st.bytes_sent += (uint64_t)n;
            pkts++;
            continue;
        }
        /* Then stream data, as the scheduler says. */
        size_t budget = 0;
        sl__sched_node *sn = sl__sched_peek(&c->sched, &budget);
        q_stream *s = sn ? (q_stream *)((char *)sn - offsetof(q_stream, sn)) : NULL;
        int64_t sid = -1;
        ngtcp2_vec vec[16];
        size_t nvec = 0;
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (s) {
            sid = s->base.id;
            size_t want = (size_t)(s->write_off - s->send_off);
            if (want > budget)
                want = budget;
            uint64_t cap = inflight_cap(&t->base.set, s->base.prio);
            if (cap && want) {
                if (c->bulk_flight >= cap) {
                    /* Full: out of the queue until acks (wake_capped). */
                    cap_add(c, s);
                    sl__sched_blocked(&c->sched, &s->sn);
                    continue;
                }
                if (want > cap - c->bulk_flight)
                    want = (size_t)(cap - c->bulk_flight);
            }
            chunk *k = s->send;
            uint64_t off = s->send_off;
            while (k && want && nvec < 16) {
                size_t in = (size_t)(off - k->off);
                size_t take = k->len - in;
                if (take > want)
                    take = want;
                if (take) {
                    vec[nvec].base = k->data + in;
                    vec[nvec].len = take;
                    nvec++;
                    want -= take;
                    off += take;
                }
                k = k->next;
            }
            if (s->fin_queued && !s->fin_sent && off == s->write_off)
                flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize wlen = -1;
        n = ngtcp2_conn_writev_stream(c->q, &ps.path, &pi, buf, MAX_PKT, &wlen, flags, sid,
                                      nvec ? vec : NULL, nvec, ts);
        if (s && wlen >= 0) {
            size_t acc = (size_t)wlen;
            if (is_bulk(s->base.prio)) {
                s->bulk_sent += acc;
                c->bulk_flight += acc;
            }
            s->send_off += acc;
            s->st.bytes_sent += acc;
            while (s->send && s->send_off >= s->send->off + s->send->len && s->send->next)
                s->send = s->send->next;
            if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && s->send_off == s->write_off)
                s->fin_sent = true;
            bool more = s->send_off < s->write_off || (s->fin_queued && !s->fin_sent);
            sl__sched_sent(&c->sched, &s->sn, acc, more);
        }
        if (n == NGTCP2_ERR_WRITE_MORE)
            continue;
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
            n == NGTCP2_ERR_STREAM_NOT_FOUND) {
            if (s) {
                if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED)
                    sl__sched_blocked(&c->sched, &s->sn);
                else if (n == NGTCP2_ERR_STREAM_SHUT_WR && !s->wr_shut)
                    peer_stopped(c, s); /* the peer's STOP_SENDING */
                else
                    sl__sched_remove(&c->sched, &s->sn);
            }
            continue;
        }
        if (n < 0) {
            conn_fail(c, (int)n);
            return;
        }
        if (n == 0)
            break; /* congestion, pacing or connection flow control: later */
        /* Send where ngtcp2 says: during path validation (NAT rebinding,
         * migration) that is not always the current peer address. */
        tx_commit(t, (size_t)n, ps.path.remote.addr, (socklen_t)ps.path.remote.addrlen);
        c->st.pkts_sent++;
        c->st.bytes_sent += (uint64_t)n;
        pkts++;
    }
    arm_timer(c);
}

static void on_conn_timer(uv_timer_t *h)
{
    q_conn *c = h->data;
    if (c->dead)
        return;
    int rv = ngtcp2_conn_handle_expiry(c->q, now_ns());
    if (rv) {
        conn_fail(c, rv);
        tx_flush(c->t);
        return;
    }
    /* Written from the prepare handle of this loop iteration, which runs
     * after the idle handles: an ACK that fell due goes out with the answer
     * the node's actors are about to write, not alone just before it. */
    mark_dirty(c);
}

static void arm_timer(q_conn *c)
{
    if (c->dead || !c->q)
        return;
    ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->q);
    uint64_t now = now_ns();
    uint64_t ms = exp == UINT64_MAX ? 0 : (exp > now ? (exp - now + 999999) / 1000000 : 0);
    if (exp == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

/* --------------------------------------------------------- ngtcp2 callbacks */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((q_conn *)ref->user_data)->q;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

/*
 * Decide where a connection's events go, once its ALPN is known: a server
 * connection that chose "h3" on an endpoint serving WebTransport belongs
 * to the WebTransport layer, everything else to the application. Called
 * at the first event that needs it (a 0-RTT stream or datagram may come
 * before the handshake completes; the ALPN is chosen with the ClientHello).
 */
static void route(q_conn *c)
{
    q_transport *t = c->t;
    gnutls_datum_t alpn;
    if (c->base.client || !t->wt) {
        c->routed = true;
        return;
    }
    if (!c->tls || gnutls_alpn_get_selected_protocol(c->tls, &alpn) != 0)
        return; /* not chosen yet */
    c->routed = true;
    if (alpn.size == strlen(SL__WT_ALPN) && memcmp(alpn.data, SL__WT_ALPN, alpn.size) == 0) {
        c->cb = &sl__wt_conn_callbacks;
        c->cb_ud = t->wt;
    }
}

static int get_new_cid_cb(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                          void *ud)
{
    q_conn *c = ud;
    q_transport *t = c->t;
    for (int tries = 0; tries < 4; tries++) {
        if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        cid->datalen = cidlen;
        uint64_t k = cid_key(cid->data, cidlen);
        if (sl__map_get(&t->cids, k))
            continue; /* astronomically unlikely collision: draw again */
        if (ngtcp2_crypto_generate_stateless_reset_token(token, t->secret, sizeof t->secret,
                                                         cid) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        if (sl__map_put(&t->cids, k, c) != SL_OK)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        return 0;
    }
    return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int remove_cid_cb(ngtcp2_conn *q, const ngtcp2_cid *cid, void *ud)
{
    q_conn *c = ud;
    uint64_t k = cid_key(cid->data, cid->datalen);
    if (sl__map_get(&c->t->cids, k) == c)
        sl__map_del(&c->t->cids, k);
    return 0;
}

static int handshake_completed_cb(ngtcp2_conn *q, void *ud)
{
    q_conn *c = ud;
    q_transport *t = c->t;
    c->ready = true;
    if (!c->base.client && t->nhandshakes)
        t->nhandshakes--;
    gnutls_datum_t alpn;
    if (gnutls_alpn_get_selected_protocol(c->tls, &alpn) == 0 && alpn.size < sizeof c->base.alpn) {
        memcpy(c->base.alpn, alpn.data, alpn.size);
        c->base.alpn[alpn.size] = 0;
    }
    if (!c->routed)
        route(c);
    uint64_t nid;
    if (sl__tls_peer_node_id(c->tls, &nid) == SL_OK) {
        c->base.has_peer_node = true;
        c->base.peer_node = nid;
    }
    c->st.resumed = gnutls_session_is_resumed(c->tls) != 0;
    if (c->base.client) {
        client_after_handshake(c);
    } else {
        c->st.early_data_accepted =
            (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
        gnutls_session_ticket_send(c->tls, 1, 0);
        uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
        const ngtcp2_path *path = ngtcp2_conn_get_path(q);
        ngtcp2_ssize n = ngtcp2_crypto_generate_regular_token(
            token, t->secret, sizeof t->secret, path->remote.addr, path->remote.addrlen, now_ns());
        if (n > 0)
            ngtcp2_conn_submit_new_token(q, token, (size_t)n);
    }
    /* Streams held back until the handshake may send now. */
    for (q_stream *s = c->streams; s; s = s->next)
        if (!s->wr_shut && (s->send_off < s->write_off || (s->fin_queued && !s->fin_sent)))
            sl__sched_push(&c->sched, &s->sn);
    mark_dirty(c); /* queued datagrams may go now */
    if (!c->base.client) {
        t->st.accepted++;
        if (c->cb->on_conn_ready)
            c->cb->on_conn_ready(&c->base, c->cb_ud);
    }
    return 0;
}

/*
 * A client reports ready only when the server confirmed the handshake
 * (HANDSHAKE_DONE): in TLS 1.3 the client finishes first, and a server that
 * then rejects its certificate (mutual TLS) would otherwise turn a "ready"
 * connection into a failed one.
 */
static int handshake_confirmed_cb(ngtcp2_conn *q, void *ud)
{
    q_conn *c = ud;
    if (c->base.client && c->cb->on_conn_ready)
        c->cb->on_conn_ready(&c->base, c->cb_ud);
    return 0;
}

static q_stream *stream_new(q_conn *c, int64_t id, int prio, void *ud, bool by_peer)
{
    q_stream *s = q_calloc(c->t, 1, sizeof *s);
    if (!s)
        return NULL;
    s->base.c = &c->base;
    s->base.ud = ud;
    s->base.id = id;
    s->base.prio = (uint8_t)prio;
    s->c = c;
    s->opened_by_peer = by_peer;
    s->rx_limit = initial_window(&c->t->base.set);
    sl__sched_node_init(&s->sn, prio);
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    return s;
}

static int stream_open_cb(ngtcp2_conn *q, int64_t id, void *ud)
{
    q_conn *c = ud;
    if (!c->routed)
        route(c);
    q_stream *s = stream_new(c, id, SL_PRIO_NORMAL, NULL, true);
    if (!s)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    if (!ngtcp2_is_bidi_stream(id))
        s->wr_shut = true; /* a peer's uni stream: we cannot send on it */
    ngtcp2_conn_set_stream_user_data(q, id, s);
    if (c->cb->on_stream_open)
        c->cb->on_stream_open(&s->base, c->cb_ud);
    return 0;
}

static void grant(q_conn *c, q_stream *s);

static int recv_stream_data_cb(ngtcp2_conn *q, uint32_t flags, int64_t id, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud, void *sud)
{
    q_conn *c = ud;
    q_stream *s = sud;
    if (!s)
        return 0;
    s->st.bytes_recv += len;
    bool fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
    if (c->cb->on_stream_data) {
        c->cb->on_stream_data(&s->base, data, len, fin, c->cb_ud);
    } else {
        /* Nobody reads: consume at once so the peer is not stalled. */
        s->st.bytes_consumed += len;
        grant(c, s);
        ngtcp2_conn_extend_max_offset(q, len);
    }
    return 0;
}

/* The FIFO of streams refused because the connection's buffer was full. */
static void want_add(q_conn *c, q_stream *s)
{
    if (s->want_conn)
        return;
    s->want_conn = true;
    s->want_next = NULL;
    s->want_prev = c->want_tail;
    if (c->want_tail)
        c->want_tail->want_next = s;
    else
        c->want_head = s;
    c->want_tail = s;
}

static void want_del(q_conn *c, q_stream *s)
{
    if (!s->want_conn)
        return;
    if (s->want_prev)
        s->want_prev->want_next = s->want_next;
    else
        c->want_head = s->want_next;
    if (s->want_next)
        s->want_next->want_prev = s->want_prev;
    else
        c->want_tail = s->want_prev;
    s->want_prev = s->want_next = NULL;
    s->want_conn = false;
}

/*
 * on_stream_writable for refused streams. A stream refused for its own
 * buffer is woken by acks of its own bytes once below the low-water mark.
 * Streams refused for the connection's buffer (they may hold no bytes of
 * their own, so no ack of their own would come) wait in a FIFO and are woken
 * in order while the connection has room for another low-water's worth:
 * each callback may write and use that room, so the work per ack is what
 * is woken, not the number of waiting streams.
 */
static void notify_writable(q_conn *c, q_stream *acked)
{
    const sl_transport_settings *set = &c->t->base.set;
    if (acked && acked->want_own && (size_t)(acked->write_off - acked->acked_off) < set->low_water) {
        acked->want_own = false;
        if (c->cb->on_stream_writable)
            c->cb->on_stream_writable(&acked->base, c->cb_ud);
    }
    /* Bounded: every woken stream leaves the FIFO first; one refused again
     * rejoins at the tail, and at most the streams present at entry run. */
    for (q_stream *last = c->want_tail; c->want_head && c->buffered + set->low_water <=
                                                         set->max_conn_buffer;) {
        q_stream *s = c->want_head;
        bool was_last = s == last;
        want_del(c, s);
        if (c->cb->on_stream_writable)
            c->cb->on_stream_writable(&s->base, c->cb_ud);
        if (was_last)
            break;
    }
}

/* A stream held back by the bulk in-flight bound may send again. */
static void uncap(q_conn *c, q_stream *s)
{
    s->capped = false;
    bool has = !s->wr_shut && (s->send_off < s->write_off || (s->fin_queued && !s->fin_sent));
    sl__sched_unblock(&c->sched, &s->sn, has);
    if (has)
        mark_dirty(c);
}

/*
 * Wake the held-back bulk streams, in the order they were held, once a
 * quarter of the bound is free again (so that they send in runs, not one
 * packet per ack). Each rejoins the tail of its class; those that fill the
 * bound again come back to the FIFO.
 */
static void wake_capped(q_conn *c)
{
    uint64_t cap = c->t->base.set.bulk_inflight;
    if (c->dead || (cap && c->bulk_flight * 4 > cap * 3))
        return;
    q_stream *s = c->capped_head;
    c->capped_head = c->capped_tail = NULL;
    while (s) {
        q_stream *next = s->cap_next;
        s->cap_next = NULL;
        uncap(c, s);
        s = next;
    }
}

/* Bytes of `s` that were in flight as bulk are acknowledged (or will never
 * be: the stream was reset, stopped, or its 0-RTT data refused). */
static void bulk_release(q_conn *c, q_stream *s, uint64_t n)
{
    if (n > s->bulk_sent)
        n = s->bulk_sent;
    s->bulk_sent -= n;
    c->bulk_flight -= n;
    if (c->capped_head)
        wake_capped(c);
}

static int acked_cb(ngtcp2_conn *q, int64_t id, uint64_t offset, uint64_t len, void *ud,
                    void *sud)
{
    q_conn *c = ud;
    q_stream *s = sud;
    if (!s)
        return 0;
    uint64_t end = offset + len;
    if (end <= s->acked_off)
        return 0;
    size_t freed = (size_t)(end - s->acked_off);
    s->acked_off = end;
    s->st.bytes_acked = end;
    c->buffered -= freed;
    bulk_release(c, s, freed);
    while (s->head && s->head->off + s->head->len <= s->acked_off && s->head != s->send) {
        chunk *k = s->head;
        s->head = k->next;
        if (s->tail == k)
            s->tail = NULL;
        chunk_put(c->t, k);
    }
    notify_writable(c, s);
    return 0;
}

static int stream_close_cb(ngtcp2_conn *q, uint32_t flags, int64_t id, uint64_t app_error_code,
                           void *ud, void *sud)
{
    q_conn *c = ud;
    q_stream *s = sud;
    if (!ngtcp2_conn_is_local_stream(q, id)) {
        if (ngtcp2_is_bidi_stream(id))
            ngtcp2_conn_extend_max_streams_bidi(q, 1);
        else
            ngtcp2_conn_extend_max_streams_uni(q, 1);
    }
    if (!s)
        return 0;
    if (c->cb->on_stream_closed)
        c->cb->on_stream_closed(&s->base, c->cb_ud);
    stream_free(c, s);
    return 0;
}

static void count_reset(q_conn *c)
{
    if (++c->st.resets_recv > c->t->base.set.max_resets && !c->close_req) {
        c->close_req = true;
        c->close_code = APP_ABUSE;
        snprintf(c->close_reason, sizeof c->close_reason, "too many stream resets");
        c->fail = SL_ERR_LIMIT;
        mark_dirty(c);
    }
}

static int stream_reset_cb(ngtcp2_conn *q, int64_t id, uint64_t final_size, uint64_t code,
                           void *ud, void *sud)
{
    q_conn *c = ud;
    q_stream *s = sud;
    /* A RESET_STREAM answering our own STOP_SENDING is the peer obeying,
     * not abuse: count only the others. */
    if (!s || !s->stop_sent)
        count_reset(c);
    if (s && c->cb->on_stream_reset)
        c->cb->on_stream_reset(&s->base, code, c->cb_ud);
    return 0;
}

/*
 * ngtcp2 1.11 calls this when *we* stop reading a stream (our STOP_SENDING),
 * not when the peer asks us to stop: it has no callback for a received
 * STOP_SENDING (recv_stop_sending came in 1.24). ngtcp2 answers the peer's
 * STOP_SENDING with RESET_STREAM by itself; we learn of it when a write to
 * the stream fails with NGTCP2_ERR_STREAM_SHUT_WR (peer_stopped()).
 */
static int stream_stop_sending_cb(ngtcp2_conn *q, int64_t id, uint64_t code, void *ud, void *sud)
{
    q_stream *s = sud;
    if (s)
        s->rd_shut = true;
    return 0;
}

/* The peer stopped reading a stream we still had bytes for: release them,
 * count it against the reset budget, tell the application (code unknown). */
static void peer_stopped(q_conn *c, q_stream *s)
{
    if (s->wr_shut)
        return;
    s->wr_shut = true;
    sl__sched_remove(&c->sched, &s->sn);
    count_reset(c);
    size_t held = (size_t)(s->write_off - s->acked_off);
    c->buffered -= held;
    for (chunk *k = s->head; k;) {
        chunk *n = k->next;
        chunk_put(c->t, k);
        k = n;
    }
    s->head = s->tail = s->send = NULL;
    s->acked_off = s->send_off = s->write_off;
    cap_del(c, s);
    bulk_release(c, s, s->bulk_sent);
    if (c->cb->on_stream_stop_sending)
        c->cb->on_stream_stop_sending(&s->base, 0, c->cb_ud);
    notify_writable(c, NULL);
}

static int extend_max_stream_data_cb(ngtcp2_conn *q, int64_t id, uint64_t max_data, void *ud,
                                     void *sud)
{
    q_conn *c = ud;
    q_stream *s = sud;
    if (s && !s->wr_shut) {
        bool has = s->send_off < s->write_off || (s->fin_queued && !s->fin_sent);
        sl__sched_unblock(&c->sched, &s->sn, has);
        if (has)
            mark_dirty(c);
    }
    return 0;
}

static int recv_datagram_cb(ngtcp2_conn *q, uint32_t flags, const uint8_t *data, size_t len,
                            void *ud)
{
    q_conn *c = ud;
    if (!c->routed)
        route(c);
    c->st.datagrams_recv++;
    if (c->cb->on_datagram)
        c->cb->on_datagram(&c->base, data, len, c->cb_ud);
    return 0;
}

/* Track the peer's stateless reset tokens: a reset carries no connection id
 * we chose, so it can only be matched to its connection by its token. */
static int dcid_status_cb(ngtcp2_conn *q, ngtcp2_connection_id_status_type type, uint64_t seq,
                          const ngtcp2_cid *cid, const uint8_t *token, void *ud)
{
    q_conn *c = ud;
    if (!token)
        return 0;
    uint64_t k = cid_key(token, NGTCP2_STATELESS_RESET_TOKENLEN);
    if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE) {
        for (int i = 0; i < 8; i++) {
            if (c->reset_keys[i] == 0) {
                if (sl__map_put(&c->t->reset_tokens, k, c) == SL_OK)
                    c->reset_keys[i] = k;
                break;
            }
        }
    } else {
        for (int i = 0; i < 8; i++) {
            if (c->reset_keys[i] == k) {
                if (sl__map_get(&c->t->reset_tokens, k) == c)
                    sl__map_del(&c->t->reset_tokens, k);
                c->reset_keys[i] = 0;
            }
        }
    }
    return 0;
}

static int recv_stateless_reset_cb(ngtcp2_conn *q, const ngtcp2_pkt_stateless_reset *sr, void *ud)
{
    ((q_conn *)ud)->got_reset = true;
    return 0;
}

static int lost_datagram_cb(ngtcp2_conn *q, uint64_t id, void *ud)
{
    ((q_conn *)ud)->st.datagrams_lost++;
    return 0;
}

/* The callbacks both roles share; each table adds its role's own. */
#define SL__COMMON_CALLBACKS                                                                       \
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,                                         \
    .handshake_completed = handshake_completed_cb,                                                 \
    .encrypt = ngtcp2_crypto_encrypt_cb, .decrypt = ngtcp2_crypto_decrypt_cb,                      \
    .hp_mask = ngtcp2_crypto_hp_mask_cb, .recv_stream_data = recv_stream_data_cb,                  \
    .acked_stream_data_offset = acked_cb, .stream_open = stream_open_cb,                           \
    .stream_close = stream_close_cb, .rand = rand_cb, .get_new_connection_id = get_new_cid_cb,     \
    .remove_connection_id = remove_cid_cb, .update_key = ngtcp2_crypto_update_key_cb,              \
    .stream_reset = stream_reset_cb, .extend_max_stream_data = extend_max_stream_data_cb,          \
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,                             \
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,                         \
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,                           \
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,                                   \
    .recv_datagram = recv_datagram_cb, .lost_datagram = lost_datagram_cb,                          \
    .stream_stop_sending = stream_stop_sending_cb,                                                 \
    .recv_stateless_reset = recv_stateless_reset_cb, .dcid_status = dcid_status_cb,                \
    .handshake_confirmed = handshake_confirmed_cb

static const ngtcp2_callbacks client_callbacks = {
    SL__COMMON_CALLBACKS,
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .recv_new_token = recv_new_token_cb,
};

static const ngtcp2_callbacks server_callbacks = {
    SL__COMMON_CALLBACKS,
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
};

/* ------------------------------------------------ session cache, 0-RTT */

static session_entry *cache_get(q_transport *t, const struct sockaddr *peer, bool create)
{
    uint64_t k = peer_key_of(peer);
    session_entry *e = sl__map_get(&t->cache, k);
    if (e || !create || t->cache.count >= CACHE_MAX)
        return e;
    e = q_calloc(t, 1, sizeof *e);
    if (e && sl__map_put(&t->cache, k, e) != SL_OK) {
        q_free(t, e);
        e = NULL;
    }
    return e;
}

/* Client: GnuTLS received a NewSessionTicket; keep the session data. */
static int ticket_hook(gnutls_session_t session, unsigned htype, unsigned when,
                       unsigned incoming, const gnutls_datum_t *msg)
{
    (void)when;
    (void)incoming;
    (void)msg;
    if (htype != GNUTLS_HANDSHAKE_NEW_SESSION_TICKET)
        return 0;
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
    q_conn *c = ref->user_data;
    q_transport *t = c->t;
    gnutls_datum_t d;
    if (gnutls_session_get_data2(session, &d) != 0)
        return 0;
    session_entry *e = cache_get(t, (struct sockaddr *)&c->peer, true);
    if (e) {
        uint8_t *copy = q_alloc(t, d.size);
        if (copy) {
            memcpy(copy, d.data, d.size);
            q_free(t, e->ticket);
            e->ticket = copy;
            e->ticket_len = d.size;
        }
    }
    gnutls_free(d.data);
    return 0;
}

static int recv_new_token_cb(ngtcp2_conn *q, const uint8_t *token, size_t len, void *ud)
{
    q_conn *c = ud;
    session_entry *e = cache_get(c->t, (struct sockaddr *)&c->peer, true);
    if (e && len <= sizeof e->token) {
        memcpy(e->token, token, len);
        e->token_len = len;
    }
    return 0;
}

/* GnuTLS's anti-replay database: a bounded set of ClientHello digests. */
static int replay_add(void *dbf, time_t exp, const gnutls_datum_t *key,
                      const gnutls_datum_t *data)
{
    (void)data;
    q_transport *t = dbf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned i = 0; i < key->size; i++)
        h = (h ^ key->data[i]) * 0x100000001b3ull;
    h |= 1;
    time_t now = time(NULL);
    uintptr_t old = (uintptr_t)sl__map_get(&t->replay, h);
    if (old && (time_t)old > now) {
        t->st.early_rejected++;
        return GNUTLS_E_DB_ENTRY_EXISTS;
    }
    if (t->replay.count >= REPLAY_MAX) {
        /* Forget what expired; if still full, refuse 0-RTT (1-RTT goes on). */
        for (size_t i = 0; i < t->replay.cap; i++) {
            sl__map_slot *sl = &t->replay.slots[i];
            if (sl->key && (time_t)(uintptr_t)sl->val <= now) {
                sl__map_del(&t->replay, sl->key);
                i--; /* backward shift may have moved an entry here */
            }
        }
        if (t->replay.count >= REPLAY_MAX) {
            t->st.early_rejected++;
            return GNUTLS_E_DB_ERROR;
        }
    }
    sl__map_put(&t->replay, h, (void *)(uintptr_t)exp);
    return 0;
}

/* Client, handshake done: keep the 0-RTT parameters; if the server refused
 * our early data, open the early streams again and resend their bytes. */
static void client_after_handshake(q_conn *c)
{
    q_transport *t = c->t;
    if (t->base.set.session_cache) {
        session_entry *e = cache_get(t, (struct sockaddr *)&c->peer, true);
        if (e) {
            ngtcp2_ssize n = ngtcp2_conn_encode_0rtt_transport_params(c->q, e->tp, sizeof e->tp);
            e->tp_len = n > 0 ? (size_t)n : 0;
        }
    }
    c->st.early_data_accepted =
        c->early_attempted && (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA);
    if (!c->early_attempted || c->st.early_data_accepted)
        return;
    ngtcp2_conn_tls_early_data_rejected(c->q);
    for (q_stream *s = c->streams; s; s = s->next) {
        if (!s->early || s->opened_by_peer)
            continue;
        int64_t id;
        bool bidi = !s->rd_shut;
        int rv = bidi ? ngtcp2_conn_open_bidi_stream(c->q, &id, s)
                      : ngtcp2_conn_open_uni_stream(c->q, &id, s);
        if (rv)
            continue; /* the stream stays unsendable; the peer's limit was lowered */
        s->base.id = id;
        bulk_release(c, s, s->bulk_sent); /* refused: sent again from acked_off */
        s->send_off = s->acked_off;
        s->send = s->head;
        s->fin_sent = false;
        s->early = false;
    }
}

/* --------------------------------------------------------- conn creation */

static void fill_settings(q_transport *t, ngtcp2_settings *st, ngtcp2_transport_params *p)
{
    const sl_transport_settings *s = &t->base.set;
    ngtcp2_settings_default(st);
    st->initial_ts = now_ns();
    st->handshake_timeout = s->handshake_timeout_ms * NGTCP2_MILLISECONDS;
    st->max_tx_udp_payload_size = MAX_PKT;
    st->cc_algo = NGTCP2_CC_ALGO_CUBIC;
    ngtcp2_transport_params_default(p);
    p->initial_max_stream_data_bidi_local = initial_window(s);
    p->initial_max_stream_data_bidi_remote = initial_window(s);
    p->initial_max_stream_data_uni = initial_window(s);
    p->initial_max_data = s->conn_window;
    p->initial_max_streams_bidi = s->max_streams_bidi;
    p->initial_max_streams_uni = s->max_streams_uni;
    p->max_idle_timeout = s->idle_timeout_ms * NGTCP2_MILLISECONDS;
    /* The setting is the payload; the parameter counts the whole frame
     * (type byte + length varint + payload). */
    p->max_datagram_frame_size =
        s->max_datagram ? (uint64_t)s->max_datagram + 1 + (s->max_datagram <= 63 ? 1 : 2) : 0;
    p->active_connection_id_limit = 7;
}

static q_conn *conn_alloc(q_transport *t, bool client, const struct sockaddr *peer,
                          socklen_t peerlen)
{
    q_conn *c = q_calloc(t, 1, sizeof *c);
    if (!c)
        return NULL;
    c->base.ops = &quic_ops;
    c->base.t = &t->base;
    c->base.client = client;
    c->t = t;
    c->cb = &t->base.set.cb;
    c->cb_ud = t->base.set.ud;
    memcpy(&c->peer, peer, peerlen);
    c->peerlen = peerlen;
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    ngtcp2_ccerr_default(&c->ccerr);
    sl__sched_init(&c->sched, t->base.set.quantum);
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    return c;
}

/* Undo conn_alloc() (+ a half-made ngtcp2/GnuTLS state) for a connection
 * nobody has seen yet; the memory goes when the timer has closed. */
static void conn_abort(q_conn *c)
{
    if (c->q)
        ngtcp2_conn_del(c->q);
    if (c->tls)
        gnutls_deinit(c->tls);
    c->q = NULL;
    c->tls = NULL;
    c->dead = true;
    uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

static void conn_link(q_transport *t, q_conn *c)
{
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->nconns++;
}

/*
 * Under mutual TLS, a ClientHello that chose "h3" (a browser: it has no
 * certificate to show) is not asked for one; its WebTransport token
 * authenticates it instead. Runs after the ClientHello was processed (the
 * ALPN is chosen) and before the server's CertificateRequest is written.
 */
static int h3_no_client_cert(gnutls_session_t s, unsigned htype, unsigned when,
                             unsigned incoming, const gnutls_datum_t *msg)
{
    (void)when;
    (void)incoming;
    (void)msg;
    gnutls_datum_t alpn;
    if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && gnutls_alpn_get_selected_protocol(s, &alpn) == 0 &&
        alpn.size == 2 && memcmp(alpn.data, SL__WT_ALPN, 2) == 0)
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
    return 0;
}

static int tls_session(q_transport *t, q_conn *c, bool server)
{
    int rv = gnutls_init(&c->tls, (server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET
                                          : GNUTLS_CLIENT) |
                                      GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA);
    if (rv)
        return SL_ERR_TLS;
    if (server) {
        if (gnutls_session_ticket_enable_server(c->tls, &t->ticket_key) != 0)
            return SL_ERR_TLS;
        if (t->base.set.accept_early_data) {
            gnutls_anti_replay_enable(c->tls, t->anti_replay);
            gnutls_record_set_max_early_data_size(c->tls, 0xffffffffu);
        }
    } else if (t->base.set.session_cache) {
        gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                           GNUTLS_HOOK_POST, ticket_hook);
    }
    if ((server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                : ngtcp2_crypto_gnutls_configure_client_session(c->tls)) != 0)
        return SL_ERR_TLS;
    rv = sl__tls_session_setup(t->creds, c->tls, server);
    if (rv)
        return rv;
    gnutls_session_set_ptr(c->tls, &c->ref);
    const sl_transport_settings *set = &t->base.set;
    const char *alpn = set->alpn ? set->alpn : SL_ALPN;
    gnutls_datum_t protos[8];
    unsigned n = 0;
    if (server && set->accept_alpns && set->n_accept_alpns) {
        for (size_t i = 0; i < set->n_accept_alpns && n < 8; i++)
            if (set->accept_alpns[i] && *set->accept_alpns[i])
                protos[n++] = (gnutls_datum_t){(unsigned char *)set->accept_alpns[i],
                                               (unsigned)strlen(set->accept_alpns[i])};
    }
    if (n == 0)
        protos[n++] = (gnutls_datum_t){(unsigned char *)alpn, (unsigned)strlen(alpn)};
    if (server && t->wt) {
        /* WebTransport: "h3" too, after the endpoint's own ALPNs. */
        bool have = false;
        for (unsigned i = 0; i < n; i++)
            have |= protos[i].size == 2 && memcmp(protos[i].data, SL__WT_ALPN, 2) == 0;
        if (!have && n < 8)
            protos[n++] = (gnutls_datum_t){(unsigned char *)SL__WT_ALPN, 2};
        if (set->tls.require_client_cert)
            gnutls_handshake_set_hook_function(c->tls, GNUTLS_HANDSHAKE_CLIENT_HELLO,
                                               GNUTLS_HOOK_POST, h3_no_client_cert);
    }
    unsigned flags = GNUTLS_ALPN_MANDATORY | (server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0);
    if (gnutls_alpn_set_protocols(c->tls, protos, n, flags) != 0)
        return SL_ERR_TLS;
    ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
    return SL_OK;
}

/* Refuse an Initial with CONNECTION_CLOSE(CONNECTION_REFUSED) and a reason. */
static void refuse(q_transport *t, const ngtcp2_pkt_hd *hd, const struct sockaddr *from,
                   socklen_t fromlen, const char *reason)
{
    uint8_t *buf = tx_slot(t);
    if (!buf)
        return;
    ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
        buf, MAX_PKT, hd->version, &hd->scid, &hd->dcid, NGTCP2_CONNECTION_REFUSED,
        (const uint8_t *)reason, strlen(reason));
    if (n > 0)
        tx_commit(t, (size_t)n, from, fromlen);
}

/* A new connection for an Initial from an unknown peer, or NULL (dropped
 * or refused). The caller then feeds the packet to it. */
static q_conn *accept_initial(q_transport *t, const uint8_t *pkt, size_t len,
                              const struct sockaddr *from, socklen_t fromlen)
{
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, pkt, len) != 0)
        return NULL; /* not an acceptable Initial: drop silently */
    const sl_transport_settings *s = &t->base.set;
    uint32_t ak = addr_key_of(from);
    uintptr_t per = (uintptr_t)sl__map_get(&t->per_addr, ak);
    if (t->nconns >= s->max_connections) {
        t->st.refused++;
        refuse(t, &hd, from, fromlen, "starling: connection limit reached");
        return NULL;
    }
    if (per >= s->max_connections_per_addr) {
        t->st.refused++;
        refuse(t, &hd, from, fromlen, "starling: per-address connection limit reached");
        return NULL;
    }
    if (t->nhandshakes >= s->max_handshakes) {
        t->st.refused++;
        refuse(t, &hd, from, fromlen, "starling: too many concurrent handshakes");
        return NULL;
    }
    /* Address validation. A Retry token proves the address and carries the
     * original DCID; a NEW_TOKEN token proves it too; without either, a
     * Retry is sent when the mode (or the handshake rate) asks for it. */
    uint64_t now = now_ns();
    if (now - t->rate_start >= NGTCP2_SECONDS) {
        t->rate_start = now;
        t->rate_count = 0;
    }
    ngtcp2_cid odcid = hd.dcid, retry_scid;
    bool validated = false, retried = false;
    if (hd.tokenlen && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
        if (ngtcp2_crypto_verify_retry_token2(&odcid, hd.token, hd.tokenlen, t->secret,
                                              sizeof t->secret, hd.version, from, fromlen,
                                              &hd.dcid, 10 * NGTCP2_SECONDS, now) != 0) {
            t->st.bad_tokens++;
            uint8_t *buf = tx_slot(t);
            if (buf) {
                ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
                    buf, MAX_PKT, hd.version, &hd.scid, &hd.dcid, NGTCP2_INVALID_TOKEN, NULL, 0);
                if (n > 0)
                    tx_commit(t, (size_t)n, from, fromlen);
            }
            return NULL;
        }
        validated = retried = true;
        retry_scid = hd.dcid;
    } else if (hd.tokenlen && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR) {
        if (ngtcp2_crypto_verify_regular_token(hd.token, hd.tokenlen, t->secret, sizeof t->secret,
                                               from, fromlen, 24 * 3600 * NGTCP2_SECONDS,
                                               now) == 0)
            validated = true;
        else
            t->st.bad_tokens++;
    }
    bool want_retry = s->retry == SL_RETRY_ALWAYS ||
                      (s->retry == SL_RETRY_AUTO && t->rate_count >= s->retry_handshake_rate);
    if (!validated && want_retry) {
        uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
        ngtcp2_cid scid;
        scid.datalen = CID_LEN;
        (void)gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
        ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token2(
            token, t->secret, sizeof t->secret, hd.version, from, fromlen, &scid, &hd.dcid, now);
        uint8_t *buf = tl > 0 ? tx_slot(t) : NULL;
        if (buf) {
            ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, MAX_PKT, hd.version, &hd.scid, &scid,
                                                       &hd.dcid, token, (size_t)tl);
            if (n > 0) {
                tx_commit(t, (size_t)n, from, fromlen);
                t->st.retries_sent++;
            }
        }
        return NULL;
    }
    t->rate_count++;
    q_conn *c = conn_alloc(t, false, from, fromlen);
    if (!c)
        return NULL;
    ngtcp2_path path = {
        .local = {(struct sockaddr *)&t->local, t->locallen},
        .remote = {(struct sockaddr *)from, fromlen},
    };
    ngtcp2_settings st;
    ngtcp2_transport_params p;
    fill_settings(t, &st, &p);
    st.token = hd.token;
    st.tokenlen = hd.tokenlen;
    if (validated)
        st.token_type = retried ? NGTCP2_TOKEN_TYPE_RETRY : NGTCP2_TOKEN_TYPE_NEW_TOKEN;
    p.original_dcid = odcid;
    p.original_dcid_present = 1;
    if (retried) {
        p.retry_scid = retry_scid;
        p.retry_scid_present = 1;
    }
    ngtcp2_cid scid;
    scid.datalen = CID_LEN;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    p.stateless_reset_token_present = 1;
    ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, t->secret,
                                                 sizeof t->secret, &scid);
    int rv = ngtcp2_conn_server_new(&c->q, &hd.scid, &scid, &path, hd.version, &server_callbacks,
                                    &st, &p, &t->nmem, c);
    if (rv || tls_session(t, c, true) != SL_OK) {
        conn_abort(c);
        return NULL;
    }
    if (s->keepalive_ms)
        ngtcp2_conn_set_keep_alive_timeout(c->q, s->keepalive_ms * NGTCP2_MILLISECONDS);
    c->addr_key = ak;
    sl__map_put(&t->per_addr, ak, (void *)(per + 1));
    c->ocid_key = cid_key(hd.dcid.data, hd.dcid.datalen);
    sl__map_put(&t->cids, c->ocid_key, c);
    sl__map_put(&t->cids, cid_key(scid.data, scid.datalen), c);
    conn_link(t, c);
    t->nhandshakes++;
    return c;
}

/* ------------------------------------------------------------ receiving */

/*
 * RFC 9000 10.3: the reset must be shorter than the packet that triggered it
 * (so two endpoints cannot loop) and at least 21 bytes; at most 100 resets a
 * second leave this endpoint.
 */
static void send_stateless_reset(q_transport *t, const ngtcp2_version_cid *vc, size_t len,
                                 const struct sockaddr *from, socklen_t fromlen)
{
    if (vc->dcidlen != CID_LEN || len <= 41)
        return;
    uint64_t now = now_ns();
    if (now - t->reset_window >= NGTCP2_SECONDS) {
        t->reset_window = now;
        t->resets_sent_window = 0;
    }
    if (t->resets_sent_window >= 100)
        return;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    if (ngtcp2_crypto_generate_stateless_reset_token(token, t->secret, sizeof t->secret, &cid))
        return;
    uint8_t rnd[64];
    size_t rlen = len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1; /* shorter than the trigger */
    if (rlen > sizeof rnd)
        rlen = sizeof rnd;
    (void)gnutls_rnd(GNUTLS_RND_NONCE, rnd, rlen);
    uint8_t *buf = tx_slot(t);
    if (!buf)
        return;
    ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, MAX_PKT, token, rnd, rlen);
    if (n > 0) {
        tx_commit(t, (size_t)n, from, fromlen);
        t->resets_sent_window++;
        t->st.resets_sent++;
    }
}

static void handle_packet(q_transport *t, const uint8_t *pkt, size_t len,
                          const struct sockaddr *from, socklen_t fromlen)
{
    ngtcp2_version_cid vc;
    if (len == 0) {
        t->st.dropped_pkts++; /* an empty UDP datagram: nothing to decode */
        return;
    }
    int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, CID_LEN);
    if (rv != 0)
        return; /* garbage or version negotiation needed: drop */
    q_conn *c = vc.dcidlen >= 8 ? sl__map_get(&t->cids, cid_key(vc.dcid, vc.dcidlen)) : NULL;
    if (!c) {
        if (!(pkt[0] & 0x80)) {
            /* Maybe a Stateless Reset for one of our connections: it ends
             * with the peer's token, and only that identifies it. */
            uint64_t tk = len >= 22 ? cid_key(pkt + len - NGTCP2_STATELESS_RESET_TOKENLEN,
                                              NGTCP2_STATELESS_RESET_TOKENLEN)
                                    : 0;
            if (tk)
                c = sl__map_get(&t->reset_tokens, tk);
            if (!c && tk && reset_for_gone(t, tk)) {
                t->st.dropped_pkts++; /* a late reset of a connection that ended */
                return;
            }
            if (!c) {
                /* A packet for a connection we do not know (it ended, or
                 * we restarted): answer with a Stateless Reset so the peer
                 * stops at once instead of waiting for its idle timeout. */
                send_stateless_reset(t, &vc, len, from, fromlen);
                t->st.dropped_pkts++;
                return;
            }
        }
    }
    if (!c) {
        if (!t->bound || t->closing) {
            t->st.dropped_pkts++;
            return;
        }
        c = accept_initial(t, pkt, len, from, fromlen);
        if (!c)
            return;
    }
    if (c->dead)
        return;
    ngtcp2_path path = {
        .local = {(struct sockaddr *)&t->local, t->locallen},
        .remote = {(struct sockaddr *)from, fromlen},
    };
    ngtcp2_pkt_info pi = {0};
    c->st.pkts_recv++;
    c->st.bytes_recv += len;
    rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, pkt, len, now_ns());
    if (rv == 0)
        c->hs_progress = true;
    if (rv != 0) {
        conn_fail(c, rv);
        return;
    }
    /* Follow the peer's address (NAT rebinding); ngtcp2 validated the path. */
    const ngtcp2_path *cur = ngtcp2_conn_get_path(c->q);
    if (cur->remote.addrlen <= sizeof c->peer &&
        (cur->remote.addrlen != c->peerlen || memcmp(cur->remote.addr, &c->peer, c->peerlen))) {
        memcpy(&c->peer, cur->remote.addr, cur->remote.addrlen);
        c->peerlen = (socklen_t)cur->remote.addrlen;
    }
    mark_dirty(c);
}

static void flush_dirty(q_transport *t)
{
    /* Bounded: every connection is taken off the list before its write, and
     * a connection re-marks itself at most once per call. */
    q_conn *list = t->dirty_head;
    t->dirty_head = NULL;
    while (list) {
        q_conn *c = list;
        list = c->dirty_next;
        c->dirty = false;
        conn_write(c);
    }
    tx_flush(t);
    update_poll(t);
}

static void on_readable(q_transport *t)
{
    for (int rounds = 0; rounds < 8; rounds++) {
        struct mmsghdr mh[RX_BATCH];
        struct iovec iov[RX_BATCH];
        struct sockaddr_storage from[RX_BATCH];
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl[RX_BATCH];
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = t->rx[i];
            iov[i].iov_len = RX_BUF;
            memset(&mh[i], 0, sizeof mh[i]);
            mh[i].msg_hdr.msg_iov = &iov[i];
            mh[i].msg_hdr.msg_iovlen = 1;
            mh[i].msg_hdr.msg_name = &from[i];
            mh[i].msg_hdr.msg_namelen = sizeof from[i];
            mh[i].msg_hdr.msg_control = ctl[i].buf;
            mh[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
        }
        int n = recvmmsg(t->fd, mh, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            /* With UDP_GRO the kernel may hand us several packets of one
             * sender glued together, all gso_size long but the last. */
            size_t seg = 0;
            for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh[i].msg_hdr); cm;
                 cm = CMSG_NXTHDR(&mh[i].msg_hdr, cm)) {
                if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
                    int v;
                    memcpy(&v, CMSG_DATA(cm), sizeof v);
                    seg = v > 0 ? (size_t)v : 0;
                }
            }
            size_t total = mh[i].msg_len;
            if (seg == 0 || seg >= total)
                seg = total;
            for (size_t off = 0; off < total || total == 0; off += seg) {
                size_t len = total - off < seg ? total - off : seg;
                handle_packet(t, t->rx[i] + off, len, (struct sockaddr *)&from[i],
                              mh[i].msg_hdr.msg_namelen);
                if (total == 0)
                    break;
            }
        }
        if (n < RX_BATCH)
            break;
    }
    /* No flush here: the connections just read are dirty and go out from
     * the prepare handle of the next loop iteration, which libuv runs after
     * its idle handles, i.e. after the node ran the actors these packets
     * woke. So an answer leaves in the same packet as the ACK of its
     * question, rather than a lone ACK now and the answer a moment later
     * (two packets for the peer to decrypt, one round trip slower in a
     * browser). Nothing waits: the loop does not block while an idle
     * handle is active, and without one the prepare phase runs before the
     * next poll. */
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    q_transport *t = h->data;
    if (status < 0)
        return;
    if (events & UV_WRITABLE) {
        if (tx_flush(t))
            flush_dirty(t);
    }
    if (events & UV_READABLE)
        on_readable(t);
}

static void update_poll(q_transport *t)
{
    if (t->fd < 0 || t->closing)
        return;
    int ev = UV_READABLE | (t->tx_blocked ? UV_WRITABLE : 0);
    if (t->polling && ev == t->poll_events)
        return; /* unchanged: spare the epoll_ctl */
    uv_poll_start(&t->poll, ev, on_poll);
    t->polling = true;
    t->poll_events = ev;
}

static void on_prepare(uv_prepare_t *h)
{
    q_transport *t = h->data;
    /* Dirty connections, and packets the endpoint made itself while
     * reading (Retry, Version Negotiation, stateless reset, close). */
    if (t->dirty_head || t->tx.sent < t->tx.n)
        flush_dirty(t);
}

/* --------------------------------------------------------- the endpoint */

static int open_socket(q_transport *t, int family)
{
    if (!t->rx) {
        t->rx = q_alloc(t, (size_t)RX_BATCH * RX_BUF);
        if (!t->rx)
            return SL_ERR_NOMEM;
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SL_ERR_IO;
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (family == AF_INET6) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    /* Receive GSO batches whole (loopback hands them over unsegmented). */
    int one = 1;
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    t->fd = fd;
    uv_poll_init(t->loop, &t->poll, fd);
    t->poll.data = t;
    t->open_handles++;
    /* Flush dirty connections once per loop iteration, before it blocks.
     * Unreferenced: only sockets and timers keep the loop alive. */
    uv_prepare_init(t->loop, &t->prepare);
    t->prepare.data = t;
    uv_prepare_start(&t->prepare, on_prepare);
    uv_unref((uv_handle_t *)&t->prepare);
    t->open_handles++;
    return SL_OK;
}

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (!host || !*host)
        host = "0.0.0.0";
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return SL_OK;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return SL_OK;
    }
    return SL_ERR_INVAL;
}

static int q_listen(sl_transport *bt, const char *host, uint16_t port)
{
    q_transport *t = (q_transport *)bt;
    if (t->bound || t->fd >= 0)
        return SL_ERR_INVAL;
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_addr(host, port, &ss, &len))
        return SL_ERR_INVAL;
    int rc = open_socket(t, ss.ss_family);
    if (rc)
        return rc;
    if (bind(t->fd, (struct sockaddr *)&ss, len) != 0) {
        fprintf(stderr, "starling: bind %s:%u: %s\n", host ? host : "*", port, strerror(errno));
        return SL_ERR_IO;
    }
    t->locallen = sizeof t->local;
    getsockname(t->fd, (struct sockaddr *)&t->local, &t->locallen);
    t->bound = true;
    update_poll(t);
    return SL_OK;
}

static int q_local_port(const sl_transport *bt, uint16_t *port)
{
    const q_transport *t = (const q_transport *)bt;
    if (t->fd < 0)
        return SL_ERR_INVAL;
    if (t->local.ss_family == AF_INET)
        *port = ntohs(((const struct sockaddr_in *)&t->local)->sin_port);
    else
        *port = ntohs(((const struct sockaddr_in6 *)&t->local)->sin6_port);
    return SL_OK;
}

static int q_connect(sl_transport *bt, const char *host, uint16_t port, void *conn_ud,
                     sl_conn **out)
{
    q_transport *t = (q_transport *)bt;
    if (t->closing)
        return SL_ERR_CLOSED;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    if (!host || parse_addr(host, port, &peer, &peerlen) || port == 0)
        return SL_ERR_INVAL;
    if (t->nconns >= t->base.set.max_connections)
        return SL_ERR_LIMIT;
    if (t->fd < 0) {
        /* Not listening: an ephemeral socket of the peer's family. */
        struct sockaddr_storage any;
        socklen_t anylen;
        parse_addr(peer.ss_family == AF_INET ? "0.0.0.0" : "::", 0, &any, &anylen);
        int rc = open_socket(t, peer.ss_family);
        if (rc)
            return rc;
        if (bind(t->fd, (struct sockaddr *)&any, anylen) != 0)
            return SL_ERR_IO;
        t->locallen = sizeof t->local;
        getsockname(t->fd, (struct sockaddr *)&t->local, &t->locallen);
        update_poll(t);
    }
    q_conn *c = conn_alloc(t, true, (struct sockaddr *)&peer, peerlen);
    if (!c)
        return SL_ERR_NOMEM;
    c->base.ud = conn_ud;
    ngtcp2_cid dcid, scid;
    dcid.datalen = CID_LEN;
    scid.datalen = CID_LEN;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    ngtcp2_path path = {
        .local = {(struct sockaddr *)&t->local, t->locallen},
        .remote = {(struct sockaddr *)&c->peer, c->peerlen},
    };
    ngtcp2_settings st;
    ngtcp2_transport_params p;
    fill_settings(t, &st, &p);
    session_entry *e =
        t->base.set.session_cache ? cache_get(t, (struct sockaddr *)&c->peer, false) : NULL;
    if (e && e->token_len) {
        st.token = e->token;
        st.tokenlen = e->token_len;
    }
    int rv = ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                                    &client_callbacks, &st, &p, &t->nmem, c);
    int rc = rv ? SL_ERR_NOMEM : tls_session(t, c, false);
    if (!rc && e && e->ticket_len &&
        gnutls_session_set_data(c->tls, e->ticket, e->ticket_len) == 0 && e->tp_len &&
        ngtcp2_conn_decode_and_set_0rtt_transport_params(c->q, e->tp, e->tp_len) == 0)
        c->early_attempted = true;
    if (rc) {
        conn_abort(c);
        return rc;
    }
    if (t->base.set.keepalive_ms)
        ngtcp2_conn_set_keep_alive_timeout(c->q, t->base.set.keepalive_ms * NGTCP2_MILLISECONDS);
    sl__map_put(&t->cids, cid_key(scid.data, scid.datalen), c);
    conn_link(t, c);
    mark_dirty(c);
    if (out)
        *out = &c->base;
    return SL_OK;
}

static void handle_closed(uv_handle_t *h)
{
    q_transport *t = h->data;
    if (--t->open_handles == 0 && t->on_closed)
        t->on_closed(&t->base, t->closed_ud);
}

static void wt_closed(void *arg)
{
    q_transport *t = arg;
    if (--t->open_handles == 0 && t->on_closed)
        t->on_closed(&t->base, t->closed_ud);
}

static void q_close(sl_transport *bt, void (*on_closed)(sl_transport *, void *), void *ud)
{
    q_transport *t = (q_transport *)bt;
    if (t->closing)
        return;
    t->closing = true;
    t->on_closed = on_closed;
    t->closed_ud = ud;
    /* open_handles counts the poll handle (if any); the prepare handle and
     * each connection timer are added as they are closed. */
    while (t->conns) {
        q_conn *c = t->conns;
        ngtcp2_ccerr_set_application_error(&c->ccerr, 0, (const uint8_t *)"shutdown", 8);
        conn_close_now(c, SL_OK, false);
    }
    tx_flush(t);
    if (t->wt && sl__wt_server_close(t->wt, wt_closed, t))
        t->open_handles++;
    if (t->fd < 0) {
        /* Never had a socket: nothing to wait for. */
        if (t->open_handles == 0 && on_closed)
            on_closed(&t->base, ud);
        return;
    }
    uv_close((uv_handle_t *)&t->prepare, handle_closed);
    uv_close((uv_handle_t *)&t->poll, handle_closed);
}

static void q_del(sl_transport *bt)
{
    q_transport *t = (q_transport *)bt;
    if (t->fd >= 0)
        close(t->fd);
    q_free(t, t->rx);
    while (t->free_chunks) {
        chunk *k = t->free_chunks;
        t->free_chunks = k->next;
        q_free(t, k);
    }
    sl__map_fini(&t->cids);
    sl__map_fini(&t->per_addr);
    sl__map_fini(&t->replay);
    sl__map_fini(&t->reset_tokens);
    for (size_t i = 0; i < t->cache.cap; i++) {
        session_entry *e = t->cache.slots[i].key ? t->cache.slots[i].val : NULL;
        if (e) {
            q_free(t, e->ticket);
            q_free(t, e);
        }
    }
    sl__map_fini(&t->cache);
    gnutls_anti_replay_deinit(t->anti_replay);
    gnutls_free(t->ticket_key.data);
    if (t->creds)
        sl__tls_creds_del(t->creds);
    sl__wt_server_del(t->wt);
    sl_mem mem = t->base.mem;
    mem.free(t, mem.ud);
}

int sl_quic_new(const sl_transport_settings *s, sl_transport **out)
{
    if (!s || !s->loop || !out)
        return SL_ERR_INVAL;
    if (s->webtransport && sl__wt_settings_check(s->webtransport) != SL_OK)
        return SL_ERR_INVAL;
    sl_mem mem;
    sl__mem_resolve(s->mem, &mem);
    q_transport *t = mem.calloc(1, sizeof *t, mem.ud);
    if (!t)
        return SL_ERR_NOMEM;
    t->base.ops = &quic_ops;
    t->base.set = *s;
    t->base.mem = mem;
    t->base.set.mem = &t->base.mem;
    t->loop = s->loop;
    t->fd = -1;
    t->gso = true;
    t->nmem = (ngtcp2_mem){&t->base.mem, nm_malloc, nm_free, nm_calloc, nm_realloc};
    sl__map_init(&t->cids, &t->base.mem);
    sl__map_init(&t->per_addr, &t->base.mem);
    sl__map_init(&t->replay, &t->base.mem);
    sl__map_init(&t->reset_tokens, &t->base.mem);
    sl__map_init(&t->cache, &t->base.mem);
    (void)gnutls_rnd(GNUTLS_RND_KEY, t->secret, sizeof t->secret);
    int rc = sl__tls_creds_new(&s->tls, &t->base.mem, &t->creds);
    if (rc) {
        mem.free(t, mem.ud);
        return rc;
    }
    /* Stateless reset tokens from a key-bound secret, so that a node
     * restarted with the same key can still reset its old connections. */
    uint8_t ksecret[32];
    if (sl__tls_key_secret(t->creds, "starling stateless reset", ksecret) == SL_OK)
        memcpy(t->secret, ksecret, sizeof t->secret);
    if (gnutls_session_ticket_key_generate(&t->ticket_key) != 0 ||
        gnutls_anti_replay_init(&t->anti_replay) != 0) {
        if (t->ticket_key.data)
            gnutls_free(t->ticket_key.data);
        sl__tls_creds_del(t->creds);
        mem.free(t, mem.ud);
        return SL_ERR_TLS;
    }
    gnutls_anti_replay_set_add_function(t->anti_replay, replay_add);
    gnutls_anti_replay_set_ptr(t->anti_replay, t);
    if (s->webtransport) {
        rc = sl__wt_server_new(&t->base, t->loop, s->webtransport, &t->wt);
        if (rc) {
            q_del(&t->base);
            return rc;
        }
    }
    t->base.set.webtransport = NULL; /* copied into t->wt; the caller's may go */
    *out = &t->base;
    return SL_OK;
}

int sl_transport_cert_sha256(const sl_transport *bt, uint8_t out[32])
{
    const q_transport *t = (const q_transport *)bt;
    if (!t || t->base.ops != &quic_ops)
        return SL_ERR_INVAL;
    return sl__tls_cert_sha256(t->creds, out);
}

/* ------------------------------------------------------- conn operations */

static int q_conn_close(sl_conn *bc, uint64_t code, const char *reason)
{
    q_conn *c = (q_conn *)bc;
    if (c->dead || c->close_req)
        return SL_ERR_CLOSED;
    c->close_req = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
    mark_dirty(c);
    return SL_OK;
}

static int q_conn_stats(const sl_conn *bc, sl_conn_stats *out)
{
    const q_conn *c = (const q_conn *)bc;
    *out = c->st;
    out->streams_open = c->nstreams;
    if (c->q) {
        ngtcp2_conn_info ci;
        ngtcp2_conn_get_conn_info(c->q, &ci);
        out->rtt_us = ci.latest_rtt / 1000;
        out->min_rtt_us = ci.min_rtt / 1000;
        out->smoothed_rtt_us = ci.smoothed_rtt / 1000;
        out->rttvar_us = ci.rttvar / 1000;
        out->cwnd = ci.cwnd;
        out->bytes_in_flight = ci.bytes_in_flight;
        uint64_t lost = c->lost_closed;
        for (const q_stream *s = c->streams; s; s = s->next)
            lost += ngtcp2_conn_get_stream_loss_count(c->q, s->base.id);
        out->pkts_lost = lost + c->st.datagrams_lost;
    }
    return SL_OK;
}

static size_t q_datagram_max(const sl_conn *bc)
{
    const q_conn *c = (const q_conn *)bc;
    if (c->dead || !c->q || !c->ready)
        return 0;
    const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->q);
    if (!rp || rp->max_datagram_frame_size == 0)
        return 0;
    /* One DATAGRAM frame (type + length varint) in one short-header packet:
     * 1 flags + DCID + 4 packet number + 16 AEAD tag + 3 frame header. */
    size_t pkt = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->q);
    size_t overhead = 1 + CID_LEN + 4 + 16 + 3;
    size_t max = pkt > overhead ? pkt - overhead : 0;
    /* Largest payload whose frame (type + length varint + payload) fits. */
    uint64_t F = rp->max_datagram_frame_size;
    uint64_t fmax = F > 3 ? F - 3 : 0;
    if (fmax < 63 && F >= 2)
        fmax = F - 2 > 63 ? 63 : F - 2;
    return max < fmax ? max : (size_t)fmax;
}

static int q_datagram_send(sl_conn *bc, const void *data, size_t len)
{
    q_conn *c = (q_conn *)bc;
    if (c->dead || c->close_req)
        return SL_ERR_CLOSED;
    if (c->ready) {
        size_t max = q_datagram_max(bc);
        if (max == 0)
            return SL_ERR_UNSUPPORTED;
        if (len > max)
            return SL_ERR_MSG_TOO_BIG;
    }
    if (c->dq_len >= MAX_DGRAM_QUEUE)
        return SL_ERR_AGAIN;
    dgram *d = q_alloc(c->t, sizeof *d + len);
    if (!d)
        return SL_ERR_NOMEM;
    d->next = NULL;
    d->len = len;
    memcpy(d->data, data, len);
    if (c->dq_tail)
        c->dq_tail->next = d;
    else
        c->dq_head = d;
    c->dq_tail = d;
    c->dq_len++;
    mark_dirty(c);
    return SL_OK;
}

/* ----------------------------------------------------- stream operations */

static int q_stream_open(sl_conn *bc, bool bidi, int prio, void *ud, sl_stream **out)
{
    q_conn *c = (q_conn *)bc;
    if (c->dead || c->close_req || !c->q)
        return SL_ERR_CLOSED;
    int64_t id;
    int rv = bidi ? ngtcp2_conn_open_bidi_stream(c->q, &id, NULL)
                  : ngtcp2_conn_open_uni_stream(c->q, &id, NULL);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
        return SL_ERR_LIMIT;
    if (rv)
        return map_err(rv);
    q_stream *s = stream_new(c, id, prio, ud, false);
    if (!s) {
        ngtcp2_conn_shutdown_stream(c->q, 0, id, 0);
        return SL_ERR_NOMEM;
    }
    if (!bidi) {
        s->rd_shut = true;
        s->rx_limit = 0; /* receives nothing */
    }
    s->early = !c->ready;
    ngtcp2_conn_set_stream_user_data(c->q, id, s);
    *out = &s->base;
    return SL_OK;
}

static int q_stream_write(sl_stream *bs, const void *data, size_t len, size_t *buffered)
{
    q_stream *s = (q_stream *)bs;
    q_conn *c = s->c;
    const sl_transport_settings *set = &c->t->base.set;
    if (c->dead || s->wr_shut || s->fin_queued)
        return SL_ERR_CLOSED;
    size_t have = (size_t)(s->write_off - s->acked_off);
    if (len && (have + len > set->max_stream_buffer || c->buffered + len > set->max_conn_buffer)) {
        if (have + len > set->max_stream_buffer)
            s->want_own = true;
        else
            want_add(c, s);
        if (buffered)
            *buffered = have;
        return SL_ERR_AGAIN;
    }
    const uint8_t *p = data;
    size_t left = len;
    /* Fill the tail chunk, then add one chunk for the rest. */
    if (s->tail && left) {
        size_t room = s->tail->cap - s->tail->len;
        size_t take = room < left ? room : left;
        memcpy(s->tail->data + s->tail->len, p, take);
        s->tail->len += take;
        p += take;
        left -= take;
    }
    if (left) {
        size_t cap = left < CHUNK_MIN ? CHUNK_MIN : left;
        chunk *k = chunk_get(c->t, cap);
        if (!k) {
            /* Undo the part copied into the tail chunk (if there was one:
             * a stream's first write has none). */
            if (s->tail)
                s->tail->len -= len - left;
            return SL_ERR_NOMEM;
        }
        k->next = NULL;
        k->off = s->write_off + (len - left);
        k->len = left;
        memcpy(k->data, p, left);
        if (s->tail)
            s->tail->next = k;
        else
            s->head = k;
        s->tail = k;
        if (!s->send)
            s->send = k;
    }
    s->write_off += len;
    s->st.bytes_written += len;
    c->buffered += len;
    if (s->send == NULL)
        s->send = s->head;
    /* The send pointer may sit at the end of a fully sent chunk. */
    while (s->send && s->send_off >= s->send->off + s->send->len && s->send->next)
        s->send = s->send->next;
    /* Before the handshake only replay-safe streams may send (0-RTT). */
    if (len && (c->ready || s->replay_safe)) {
        sl__sched_push(&c->sched, &s->sn);
        mark_dirty(c);
    }
    if (buffered)
        *buffered = (size_t)(s->write_off - s->acked_off);
    return SL_OK;
}

static int q_stream_finish(sl_stream *bs)
{
    q_stream *s = (q_stream *)bs;
    if (s->c->dead || s->wr_shut || s->fin_queued)
        return SL_ERR_CLOSED;
    s->fin_queued = true;
    if (s->c->ready || s->replay_safe) {
        sl__sched_push(&s->c->sched, &s->sn);
        mark_dirty(s->c);
    }
    return SL_OK;
}

static int q_stream_allow_early(sl_stream *bs)
{
    q_stream *s = (q_stream *)bs;
    s->replay_safe = true;
    if (s->send_off < s->write_off || (s->fin_queued && !s->fin_sent)) {
        sl__sched_push(&s->c->sched, &s->sn);
        mark_dirty(s->c);
    }
    return SL_OK;
}

static int q_stats(const sl_transport *bt, sl_transport_stats *out)
{
    const q_transport *t = (const q_transport *)bt;
    *out = t->st;
    out->conns = t->nconns;
    out->handshakes = t->nhandshakes;
    sl__wt_server_stats(t->wt, out);
    return SL_OK;
}

static int q_node_id(const sl_transport *bt, uint64_t *out)
{
    return sl__tls_own_node_id(((const q_transport *)bt)->creds, out);
}

static int q_key_secret(const sl_transport *bt, const char *label, uint8_t out[32])
{
    return sl__tls_key_secret(((const q_transport *)bt)->creds, label, out);
}

static int q_stream_reset(sl_stream *bs, uint64_t code)
{
    q_stream *s = (q_stream *)bs;
    q_conn *c = s->c;
    if (c->dead || s->wr_shut)
        return SL_ERR_CLOSED;
    s->wr_shut = true;
    sl__sched_remove(&c->sched, &s->sn);
    cap_del(c, s);
    bulk_release(c, s, s->bulk_sent); /* ngtcp2 stops retransmitting them */
    int rv = ngtcp2_conn_shutdown_stream_write(c->q, 0, s->base.id, code);
    mark_dirty(c);
    return rv ? map_err(rv) : SL_OK;
}

static int q_stream_stop_sending(sl_stream *bs, uint64_t code)
{
    q_stream *s = (q_stream *)bs;
    q_conn *c = s->c;
    if (c->dead || s->rd_shut)
        return SL_ERR_CLOSED;
    s->rd_shut = true;
    s->stop_sent = true;
    int rv = ngtcp2_conn_shutdown_stream_read(c->q, 0, s->base.id, code);
    mark_dirty(c);
    return rv ? map_err(rv) : SL_OK;
}

/*
 * Give the peer credit up to the stream's class window beyond what was
 * consumed. In steps of more than a quarter window (ngtcp2 sends
 * MAX_STREAM_DATA for increments above a quarter of the initial window,
 * which is at most twice the smallest class window: a peer that waits for
 * credit always gets it). A stream that already has more (it was NORMAL,
 * or got the first window before its class was known) gets nothing until
 * its consumption catches up.
 */
static void grant(q_conn *c, q_stream *s)
{
    if (s->rd_shut && !s->opened_by_peer && !ngtcp2_is_bidi_stream(s->base.id))
        return; /* our own uni stream: nothing to receive */
    uint64_t w = class_window(&c->t->base.set, s->base.prio);
    uint64_t target = s->st.bytes_consumed + w;
    if (target > s->rx_limit && (target - s->rx_limit) * 4 > w) {
        ngtcp2_conn_extend_max_stream_offset(c->q, s->base.id, target - s->rx_limit);
        s->rx_limit = target;
    }
}

static int q_stream_consume(sl_stream *bs, size_t n)
{
    q_stream *s = (q_stream *)bs;
    q_conn *c = s->c;
    if (c->dead || !c->q)
        return SL_ERR_CLOSED;
    s->st.bytes_consumed += n;
    grant(c, s);
    ngtcp2_conn_extend_max_offset(c->q, n);
    mark_dirty(c);
    return SL_OK;
}

static int q_stream_set_prio(sl_stream *bs, int prio)
{
    q_stream *s = (q_stream *)bs;
    q_conn *c = s->c;
    s->base.prio = (uint8_t)prio;
    sl__sched_set_prio(&c->sched, &s->sn, prio);
    if (s->capped && !inflight_cap(&c->t->base.set, prio)) {
        cap_del(c, s);
        uncap(c, s);
    }
    /* A class with a larger window gets it now; a smaller one applies as
     * the consumer goes on (credit given is never taken back). */
    if (!c->dead && c->q) {
        uint64_t before = s->rx_limit;
        grant(c, s);
        if (s->rx_limit != before)
            mark_dirty(c);
    }
    return SL_OK;
}

static int q_stream_stats(const sl_stream *bs, sl_stream_stats *out)
{
    const q_stream *s = (const q_stream *)bs;
    *out = s->st;
    out->buffered = (size_t)(s->write_off - s->acked_off);
    out->recv_limit = s->rx_limit;
    if (s->c->q)
        out->pkts_lost = ngtcp2_conn_get_stream_loss_count(s->c->q, s->base.id);
    return SL_OK;
}

static const sl_transport_ops quic_ops = {
    .name = "quic",
    .listen = q_listen,
    .connect = q_connect,
    .local_port = q_local_port,
    .close = q_close,
    .del = q_del,
    .conn_close = q_conn_close,
    .conn_stats = q_conn_stats,
    .stream_open = q_stream_open,
    .stream_write = q_stream_write,
    .stream_finish = q_stream_finish,
    .stream_reset = q_stream_reset,
    .stream_stop_sending = q_stream_stop_sending,
    .stream_consume = q_stream_consume,
    .stream_set_prio = q_stream_set_prio,
    .stream_stats = q_stream_stats,
    .datagram_send = q_datagram_send,
    .datagram_max = q_datagram_max,
    .stream_allow_early = q_stream_allow_early,
    .stats = q_stats,
    .node_id = q_node_id,
    .key_secret = q_key_secret,
};
