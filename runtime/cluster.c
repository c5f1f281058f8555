/*
 * cluster.c: a node's links to other nodes over a transport (QUIC natively).
 *
 * Every peer node is one connection, named by the node id its TLS key gives
 * it, so a peer cannot speak for another node's actors: the sender node of
 * every envelope it sends must be its own. On each connection (see
 * runtime/README.md for the whole design):
 *
 *   control  one unidirectional stream each way, CRITICAL, opened at once:
 *            monitor/link/exit/stop signals (never paused, never behind data)
 *   lanes    unidirectional streams, one per (receiver actor, priority
 *            class), opened lazily, finished when idle: SEND envelopes for
 *            that receiver only, so a full mailbox pauses exactly its lanes
 *   asks     one bidirectional stream per ask: the ASK one way, the answer
 *            (REPLY | CHUNK.. END | FAIL) the other; a cancel or timeout
 *            resets the stream and the replier gets CANCEL at once
 *   DATAGRAM one envelope each: sl_send_unreliable()
 *
 * A uni stream starts with one byte naming its role (control or lane);
 * every stream then carries length-prefixed envelopes (schemas/).
 *
 * Backpressure: an envelope for a full mailbox (or one whose lanes are
 * already paused) is held with the rest of its stream's bytes, unconsumed,
 * so QUIC stops extending that stream's credit; the core's room() hook
 * resumes the paused streams in the order they paused. Outbound, each
 * stream's buffer is bounded by the transport (max_stream_buffer); a full
 * one makes the send fail with SL_ERR_AGAIN and the sender later gets a
 * SL_TYPE_RESUME message. A message larger than a piece is queued whole and
 * fed to the transport a piece at a time, so other lanes interleave.
 *
 * Big messages are copied once per node: encoded straight into the buffer
 * the lane feeds from, and received straight into the message block the
 * actor gets (big_begin/big_feed), so no loop turn copies or faults in a
 * whole big message at once (runtime/README.md, "Head-of-line isolation").
 */
#include <stdio.h>
#include <string.h>

#include "actors/inject.h"
#include "actors/map.h"
#include "runtime/cluster.h"
#include "schemas/wire.h"
#include "starling/pack.h"
#include "starling/schema.h"

/* Bytes of the proof a gateway gives a browser node that an id is its own. */
#define ID_PROOF 16

/* First byte of a uni stream. */
enum { PRE_CONTROL = 0x00, PRE_LANE = 0x01 };

/* Application error codes on streams and connections. */
enum {
    E_PROTOCOL = 0x10,  /* malformed frame or envelope, wrong kind for the stream */
    E_TOO_BIG = 0x11,   /* frame over the message limit */
    E_CANCELLED = 0x12, /* the ask was cancelled or timed out */
    E_NOMEM = 0x13,
    E_DUPLICATE = 0x14, /* connection: another one to the same node is kept */
    E_NOCERT = 0x15,
    E_FORBIDDEN = 0x16, /* a browser node addressed what was not exposed to it */
    E_HELLO = 0x17      /* a browser session without a valid HELLO, or its id is taken */
};

/* What is at the other end of a connection (see "Browsers" in runtime/README.md). */
enum {
    LK_NODE = 0, /* a native node: mutual TLS, its node id from its key */
    LK_BROWSER,  /* we are its gateway: a WebTransport session, id assigned by us */
    LK_GATEWAY   /* we are a browser node: our one link, the route to every node */
};

/* sl_envelope.type of SL_KIND_NODE envelopes (control streams only). */
enum {
    NT_HELLO = 1,     /* browser -> gateway: [wanted id or 0, its proof (bin 16)?] */
    NT_WELCOME = 2,   /* gateway -> browser: [gateway id, your id, exposed, proof (bin 16)?] */
    NT_EXPOSE = 3,    /* gateway -> browser: [exposed] (the whole list again) */
    NT_ROUTE_UP = 4,  /* gateway -> node: [browser ids reached through me] */
    NT_ROUTE_DOWN = 5 /* gateway -> node: [browser ids gone] */
};

/* Roles of a stream. */
enum {
    R_CTL_OUT = 1, /* our control stream */
    R_CTL_IN,      /* the peer's control stream */
    R_LANE_OUT,    /* our lane to one receiver on the peer */
    R_LANE_IN,     /* the peer's lane to one of our actors */
    R_ASK_OUT,     /* our ask (bidi, we opened it); answers come back */
    R_ASK_IN,      /* the peer's ask to one of our actors; we answer on it */
    R_UNKNOWN      /* peer uni stream before its preamble byte */
};

#define PIECE ((size_t)256 * 1024) /* frames over this are queued whole, fed as it drains */
/* Frames longer than this are received straight into the message block they
 * are delivered in (one copy, as the pieces arrive), not reassembled first. */
#define BIG_FRAME ((size_t)64 * 1024)
/* A big frame is written in pieces of this size: the transport copies each
 * write into chunks, and a write of this size fits its pooled 16 KiB chunks
 * (a bigger one gets a chunk of its own size, fresh memory each time). */
#define WRITE ((size_t)16 * 1024)
/* The spare big frame buffer is freed after this long unused (ns). */
#define SPARE_NS (1000ull * 1000 * 1000)

typedef struct plink plink;

typedef struct sl__expose {
    char name[SL_NAME_MAX + 1];
    sl_id id;
} sl__expose;

typedef struct lane {
    plink *l;
    sl_stream *s;
    uint8_t role;
    uint8_t prio;
    bool bound;     /* LANE_IN: `to` is known; ASK_IN: the ask arrived */
    bool blocked;   /* receiving paused for the mailbox of `to` */
    bool dead;      /* protocol error: ignore further bytes */
    bool fin_after; /* finish the stream once `pend` is written */
    bool closed;    /* its stream closed while paused: freed once resumed */
    sl_id to;       /* lanes: the receiver; asks: the replier */
    sl_id asker;    /* asks */
    uint64_t corr;
    uint64_t key; /* key in its map (lanes_out, asks_out, asks_in) */
    uint64_t used_ns;
    /* sending */
    uint8_t *pend; /* a big frame being fed in pieces (a buffer of pend_cap bytes) */
    size_t pend_len, pend_off, pend_cap;
    sl_id *waiters; /* senders told SL_ERR_AGAIN */
    uint32_t nwait, wcap;
    /* forwarding (gateway) */
    struct lane *pipe;    /* an ask relayed between two links: the other half */
    struct plink *lpipe;  /* an ask relayed between this stream and lanes of that WT link */
    struct lane *fw_head; /* inbound lanes paused until this one drains */
    struct lane *fw_on;   /* the lane this one waits for ... */
    struct lane *fw_next; /* ... and the next waiting for it */
    /* receiving */
    sl_frame_reader fr;
    bool fr_on;
    uint8_t *held; /* unprocessed bytes while paused */
    size_t held_len, held_cap;
    uint64_t recv_total, consumed;
    /* receiving a big frame (big_len != 0) outside the frame reader */
    struct sl__msg *blk;                 /* its message block, once its head decoded */
    uint8_t *big;                        /* the block's bytes: the frame (envelope) */
    size_t big_len, big_have;            /* frame length; bytes of it received */
    int big_err;                         /* its head was refused: skip it, then fail */
    size_t big_counted;                  /* its bytes in the link's big_bytes */
    bool big_ok;                         /* its head was judged valid */
    uint8_t head[SL__ENVELOPE_HEAD_MAX]; /* its first bytes, before the block */
    struct lane *bnext;                  /* paused lanes of one receiver, oldest first */
    struct lane *prev, *next;            /* all lanes of the connection */
} lane;

struct plink {
    sl__cluster *k;
    sl_conn *c;
    uint64_t node;
    uint8_t kind;  /* LK_* */
    bool welcomed; /* browser links: HELLO/WELCOME done, `node` is valid */
    bool current;  /* the connection that carries traffic for `node` */
    bool ctl_in_seen;
    lane *ctl;
    sl__map lanes_out; /* (receiver local id << 3 | prio) -> lane */
    lane *lanes;
    struct dial *dial;
    uint64_t claim;   /* gateway: the browser id this session proved; its old session ends first */
    uint64_t born_ns; /* WebTransport sessions before HELLO/WELCOME: first seen by the tick */
    bool late;        /* browser: closed for want of a welcome (the dial's failure is said) */
    size_t big_bytes; /* message blocks of big frames being received on this link */
    lane budget;      /* head of the lanes waiting for big_bytes to go down */
};

/* A peer address we keep connected: sl_node_connect(). */
typedef struct dial {
    struct dial *next;
    char host[64];
    uint16_t port;
    uint64_t node;     /* learnt at the first handshake */
    sl_conn *pending;  /* handshake under way */
    plink *up;         /* connected */
    uint64_t retry_ns; /* next attempt when neither */
    uint32_t backoff_ms;
    uint32_t attempts;
    /* attempts that failed since the peer was last up, and the last one's
     * error and reason (sl__cluster_dial_failure) */
    uint32_t failures;
    int fail_err;
    char fail_reason[128];
} dial;

struct sl__cluster {
    sl_mem mem;
    sl_core *core;
    sl_transport *t;
    uint64_t node;      /* our node id */
    sl__map peers;      /* node id -> current plink */
    sl__map asks_out;   /* our ask id -> lane */
    sl__map asks_in;    /* (asker, ask id) key -> lane */
    sl__map paused;     /* receiver local id -> first paused lane */
    sl__map routes;     /* browser node id -> the link of its gateway (native nodes) */
    sl__map lasks;      /* ask_key -> WT link: asks that came on a lane, answered on lanes */
    sl__map relays;     /* ask_key -> the stream half of an ask relayed to or from lanes */
    plink *uplink;      /* a browser node: the link to its gateway, once welcomed */
    bool welcomed_once; /* a browser node: asks for the same id when it reconnects */
    bool has_proof;     /* a browser node: the gateway's proof that that id is ours */
    uint8_t proof[ID_PROOF];
    sl__map claims;     /* gateway: browser id -> the session that proved it (plink.claim) */
    sl__map greeting;   /* (uintptr_t)link -> link: WebTransport sessions until the tick sees
                           them greeted (welcomed, or a claim said HELLO); closed after
                           hello_timeout_ms without */
    bool gateway;       /* WebTransport sessions are browser nodes we route for */
    sl__expose *expo;   /* gateway: what browser nodes may address; browser: what it was told */
    size_t nexpo, expo_cap;
    uint64_t resuming; /* receiver whose paused lanes sl__cluster_room() is feeding */
    dial *dials;
    uint8_t *buf; /* encode buffer */
    size_t cap;
    uint8_t *out; /* a big frame just encoded, until a lane adopts it as `pend` */
    size_t out_cap;
    uint8_t *spare; /* the last big frame buffer, kept (pages faulted in) for the next */
    size_t spare_cap;
    uint64_t spare_ns; /* when it was last put back */
    size_t max_message;
    size_t big_budget; /* per link: big frames being received at once (2 messages) */
    size_t max_buffer; /* the transport's per-stream bound */
    sl_limits lim;
    uint64_t now_ns;
    sl__cluster_settings set;
    void (*on_peer)(uint64_t node, bool up, void *ud);
    void *ud;
    void (*on_closed)(void *ud);
    void *closed_ud;
    bool closing;
    sl__cluster_stats st;
};

static void *c_alloc(sl__cluster *k, size_t n)
{
    return k->mem.calloc(1, n, k->mem.ud);
}
static void c_free(sl__cluster *k, void *p)
{
    if (p)
        k->mem.free(p, k->mem.ud);
}

static void say(sl__cluster *k, const plink *l, const char *what, int err)
{
    k->st.rejected++;
    if (k->set.quiet)
        return;
    fprintf(stderr, "starling: node %016llx: %s: %s\n", (unsigned long long)(l ? l->node : 0), what,
            sl_strerror(err));
}

static uint64_t ask_key(sl_id asker, uint64_t corr)
{
    uint64_t h = (corr * 0x9E3779B97F4A7C15ull) ^ (asker.local * 0xC2B2AE3D27D4EB4Full) ^
                 (asker.node * 0x165667B19E3779F9ull);
    return h ? h : 1;
}

/* Outbound lanes of a link by (receiver, class). A gateway's link carries
 * lanes to several nodes' actors, so the key mixes the whole id; a lookup
 * probes a few keys and checks the lane's receiver (lane_find). */
static uint64_t lane_key(sl_id to, uint8_t prio)
{
    uint64_t h = ((to.local << 3) | prio) ^ (to.node * 0x9E3779B97F4A7C15ull);
    return h ? h : 1;
}

#define LANE_PROBES 8

/* The open lane to (to, prio) on `l`, or NULL and in *free_key a key to
 * file a new one under (0: none free, treated as out of memory). */
static struct lane *lane_find(const plink *l, sl_id to, uint8_t prio, uint64_t *free_key);

/* The link that reaches `node`: a peer node, a browser node we are the
 * gateway of, a browser node behind a gateway we are connected to, or, on
 * a browser node, its gateway for everything else. */
static plink *link_for(const sl__cluster *k, uint64_t node)
{
    plink *l = sl__map_get(&k->peers, node);
    if (!l)
        l = sl__map_get(&k->routes, node);
    if (!l && k->uplink && node != k->node)
        l = k->uplink;
    return l;
}

/* A WebTransport session (either end). Asks on it travel on lanes: in
 * Chromium a new stream costs ~1 ms, a lane message ~0.1 ms. */
static bool wt_link(const plink *l)
{
    return l->kind != LK_NODE;
}

static bool is_exposed(const sl__cluster *k, sl_id id)
{
    for (size_t i = 0; i < k->nexpo; i++)
        if (sl_id_eq(k->expo[i].id, id))
            return true;
    return false;
}

/* What a browser node may send to `to` outside itself: asks, messages and
 * monitors to exposed actors; answers, DOWN and EXIT (to those who asked,
 * monitored or linked it); never LINK or STOP. Checked on both ends: the
 * browser's own node refuses at once, its gateway enforces it. */
static int browser_may(const sl__cluster *k, uint8_t kind, sl_id to)
{
    switch (kind) {
    case SL_KIND_SEND:
    case SL_KIND_ASK:
    case SL_KIND_MONITOR:
        return is_exposed(k, to) ? SL_OK : SL_ERR_FORBIDDEN;
    case SL_KIND_LINK:
    case SL_KIND_UNLINK:
    case SL_KIND_STOP:
    case SL_KIND_NODE:
        return SL_ERR_FORBIDDEN;
    default:
        return SL_OK;
    }
}

/* ----------------------------------------------------------- lanes */

static lane *lane_new(plink *l, sl_stream *s, uint8_t role, uint8_t prio)
{
    sl__cluster *k = l->k;
    lane *ln = c_alloc(k, sizeof *ln);
    if (!ln)
        return NULL;
    ln->l = l;
    ln->s = s;
    ln->role = role;
    ln->prio = prio;
    ln->used_ns = k->now_ns;
    if (role != R_CTL_OUT && role != R_LANE_OUT) {
        sl_frame_reader_init(&ln->fr, k->max_message + SL_ENVELOPE_MAX_OVERHEAD, &k->mem);
        ln->fr_on = true;
    }
    ln->next = l->lanes;
    if (l->lanes)
        l->lanes->prev = ln;
    l->lanes = ln;
    if (s)
        sl_stream_set_data(s, ln);
    return ln;
}

static void unpause(sl__cluster *k, lane *ln);
static void lpipe_cut(sl__cluster *k, lane *ln, int err);
static int send_on(sl__cluster *k, plink *l, const sl_msg *m);
static int fw_pause(sl__cluster *k, lane *in, lane *on);
static void budget_resume(sl__cluster *k, plink *l);
static void pipe_cut(sl__cluster *k, lane *ln, uint64_t code);
static void fw_resume(sl__cluster *k, lane *on);

/* Forget the big frame being received, freeing its block. */
static void big_drop(sl__cluster *k, lane *ln)
{
    if (ln->big_counted) {
        ln->l->big_bytes -= ln->big_counted;
        ln->big_counted = 0;
    }
    sl__core_block_free(k->core, ln->blk);
    ln->blk = NULL;
    ln->big = NULL;
    ln->big_len = ln->big_have = 0;
    ln->big_err = 0;
    ln->big_ok = false;
}

/* Forget a lane (its stream closed, or its connection went). */
static void lane_free(sl__cluster *k, lane *ln)
{
    plink *l = ln->l;
    if (ln->key) {
        sl__map *m = ln->role == R_LANE_OUT  ? &l->lanes_out
                     : ln->role == R_ASK_OUT ? &k->asks_out
                                             : &k->asks_in;
        if (sl__map_get(m, ln->key) == ln)
            sl__map_del(m, ln->key);
    }
    if (ln->blocked)
        unpause(k, ln);
    if (ln->pipe)
        pipe_cut(k, ln, E_CANCELLED);
    if (ln->lpipe)
        lpipe_cut(k, ln, SL_ERR_NOCONN);
    if (l->ctl == ln)
        l->ctl = NULL;
    /* Lanes waiting to relay through this one go on: it is out of every
     * map now, so their envelopes find another lane, or are dropped when
     * the node is gone. */
    fw_resume(k, ln);
    if (ln->prev)
        ln->prev->next = ln->next;
    else
        l->lanes = ln->next;
    if (ln->next)
        ln->next->prev = ln->prev;
    if (ln->fr_on)
        sl_frame_reader_fini(&ln->fr);
    big_drop(k, ln);
    if (ln->s)
        sl_stream_set_data(ln->s, NULL);
    c_free(k, ln->pend);
    c_free(k, ln->held);
    c_free(k, ln->waiters);
    c_free(k, ln);
}

/* A message the cluster makes itself (FAIL, CANCEL, DOWN, RESUME): no payload. */
static sl_msg sys_msg(sl_id from, sl_id to, uint8_t kind, uint8_t prio, uint64_t corr,
                      int32_t status)
{
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.from = from;
    m.to = to;
    m.kind = kind;
    m.prio = prio;
    m.corr = corr;
    m.status = status;
    return m;
}

/* FAIL(err) for the asker of the ask `e`. */
static sl_msg fail_of(const sl_envelope *e, int err)
{
    return sys_msg(e->to, e->from, SL_KIND_FAIL, e->prio, e->corr, err);
}

/* Our ask's stream ends without its answer: the asker hears FAIL(err) now,
 * not at its deadline (there may be none). */
static void ask_out_fail(sl__cluster *k, lane *ln, int err)
{
    if (ln->role != R_ASK_OUT || !ln->key)
        return; /* answered or cancelled already */
    sl__map_del(&k->asks_out, ln->key);
    ln->key = 0;
    sl_msg m = sys_msg(ln->to, ln->asker, SL_KIND_FAIL, SL_PRIO_CRITICAL, ln->corr, err);
    (void)sl__core_inject(k->core, &m, 0);
}

/* Close a stream for a protocol error on it; the connection goes on. */
static void lane_fail(sl__cluster *k, lane *ln, const char *what, int err)
{
    say(k, ln->l, what, err);
    ln->dead = true;
    big_drop(k, ln);
    ask_out_fail(k, ln, err == SL_ERR_NOMEM ? SL_ERR_NOMEM : SL_ERR_PROTO);
    pipe_cut(k, ln, E_PROTOCOL);
    lpipe_cut(k, ln, SL_ERR_PROTO);
    if (ln->role == R_ASK_IN || ln->role == R_ASK_OUT)
        sl_stream_reset(ln->s, err == SL_ERR_DECODE_TOO_BIG ? E_TOO_BIG : E_PROTOCOL);
    sl_stream_stop_sending(ln->s, err == SL_ERR_DECODE_TOO_BIG ? E_TOO_BIG : E_PROTOCOL);
}

/* Remember a sender to tell when the lane drains (once per sender). */
static void add_waiter(sl__cluster *k, lane *ln, sl_id who)
{
    if (sl_id_is_none(who) || who.node != k->node)
        return;
    for (uint32_t i = 0; i < ln->nwait; i++)
        if (sl_id_eq(ln->waiters[i], who))
            return;
    if (ln->nwait == ln->wcap) {
        uint32_t n = ln->wcap ? ln->wcap * 2 : 4;
        sl_id *w = k->mem.realloc(ln->waiters, n * sizeof *w, k->mem.ud);
        if (!w)
            return; /* it will not hear RESUME; retrying still works */
        ln->waiters = w;
        ln->wcap = n;
    }
    ln->waiters[ln->nwait++] = who;
}

static void notify_waiters(sl__cluster *k, lane *ln)
{
    uint32_t n = ln->nwait;
    ln->nwait = 0;
    for (uint32_t i = 0; i < n; i++) {
        sl_msg m = sys_msg(ln->to, ln->waiters[i], SL_KIND_SEND, SL_PRIO_CRITICAL, 0, 0);
        m.type = SL_TYPE_RESUME;
        (void)sl__core_inject(k->core, &m, 0);
    }
}

/* A buffer for a big frame of up to `need` bytes: the spare one if it fits
 * without wasting more than half, else a new one. Touching fresh pages costs
 * more than copying into them (a page fault each 4 KiB), so reusing one
 * buffer for back-to-back big messages is what keeps encoding one cheap. */
static uint8_t *big_buf(sl__cluster *k, size_t need, size_t *cap)
{
    if (k->spare && k->spare_cap >= need && k->spare_cap / 2 <= need) {
        uint8_t *b = k->spare;
        *cap = k->spare_cap;
        k->spare = NULL;
        k->spare_cap = 0;
        return b;
    }
    *cap = need;
    return k->mem.malloc(need, k->mem.ud);
}

/* Done with a big frame buffer: keep the largest one as the spare. */
static void big_put(sl__cluster *k, uint8_t *b, size_t cap)
{
    if (!b)
        return;
    if (k->spare_cap > cap) {
        c_free(k, b);
        return;
    }
    c_free(k, k->spare);
    k->spare = b;
    k->spare_cap = cap;
    k->spare_ns = k->now_ns;
}

/* Feed a queued big frame to the transport, a piece at a time. */
static int pump(sl__cluster *k, lane *ln)
{
    while (ln->pend && ln->pend_off < ln->pend_len) {
        size_t n = ln->pend_len - ln->pend_off;
        if (n > WRITE)
            n = WRITE;
        int rc = sl_stream_write(ln->s, ln->pend + ln->pend_off, n, NULL);
        if (rc == SL_ERR_AGAIN)
            return SL_OK;
        if (rc)
            return rc;
        ln->pend_off += n;
    }
    big_put(k, ln->pend, ln->pend_cap);
    ln->pend = NULL;
    ln->pend_len = ln->pend_off = ln->pend_cap = 0;
    return SL_OK;
}

/* Write one frame; SL_ERR_AGAIN when the lane is full (nothing written).
 * A frame over PIECE is the one encode() just wrote into k->out: the lane
 * takes that buffer and feeds it as the stream drains. */
static int lane_write(sl__cluster *k, lane *ln, const uint8_t *frame, size_t len, sl_id from)
{
    ln->used_ns = k->now_ns;
    if (ln->pend) {
        add_waiter(k, ln, from);
        return SL_ERR_AGAIN;
    }
    int rc;
    if (len <= PIECE) {
        rc = sl_stream_write(ln->s, frame, len, NULL);
    } else {
        /* Big: queue it whole, feed pieces as the stream drains. */
        if (!k->out || frame < k->out || frame + len > k->out + k->out_cap)
            return SL_ERR_INVAL; /* not from encode(): cannot happen */
        ln->pend = k->out;
        ln->pend_cap = k->out_cap;
        ln->pend_off = (size_t)(frame - k->out);
        ln->pend_len = ln->pend_off + len;
        k->out = NULL;
        rc = pump(k, ln);
    }
    if (rc == SL_ERR_AGAIN)
        add_waiter(k, ln, from);
    return rc == SL_ERR_CLOSED ? SL_ERR_NOCONN : rc;
}

/* --------------------------------------------------------- encoding */

/* After a write: a big frame encode() made that no lane took (refused, or
 * written whole) goes back to the spare. */
static void out_release(sl__cluster *k)
{
    if (k->out) {
        big_put(k, k->out, k->out_cap);
        k->out = NULL;
    }
}

/* Encode `m` into k->buf: one frame (varint length + envelope) or, for a
 * datagram, the bare envelope. *out and *len say where it is. One pass: the
 * envelope is written after room for the longest header, and the header,
 * whose width depends on the envelope's length, goes right before it.
 * A frame that may be over PIECE goes into its own buffer, k->out, which
 * lane_write() then adopts: the payload is copied once, here. */
#define HDR_MAX 8

static int encode(sl__cluster *k, const plink *l, const sl_msg *m, bool framed, const uint8_t **out,
                  size_t *len)
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
    size_t need = sl_envelope_max_size(m->len) + HDR_MAX;
    uint8_t *base = k->buf;
    size_t cap = k->cap;
    if (framed && need > PIECE) {
        big_put(k, k->out, k->out_cap); /* one left from a failed send */
        k->out = big_buf(k, need, &k->out_cap);
        if (!k->out)
            return SL_ERR_NOMEM;
        base = k->out;
        cap = k->out_cap;
    } else if (need > k->cap) {
        uint8_t *nb = k->mem.realloc(k->buf, need, k->mem.ud);
        if (!nb)
            return SL_ERR_NOMEM;
        base = k->buf = nb;
        cap = k->cap = need;
    }
    size_t wrote = 0;
    uint8_t *env = base + HDR_MAX;
    int rc = sl_envelope_encode(&e, l->node, k->node, env, cap - HDR_MAX, &wrote);
    if (rc)
        return rc;
    size_t hlen = 0;
    if (framed) {
        uint8_t hdr[HDR_MAX];
        rc = sl_frame_write_header(wrote, hdr, sizeof hdr, &hlen);
        if (rc)
            return rc;
        memcpy(env - hlen, hdr, hlen);
    }
    *out = env - hlen;
    *len = hlen + wrote;
    return SL_OK;
}

static void msg_of(sl_msg *m, const sl_envelope *e)
{
    memset(m, 0, sizeof *m);
    m->from = e->from;
    m->to = e->to;
    m->corr = e->corr;
    m->type = e->type;
    m->kind = e->kind;
    m->prio = e->prio;
    m->status = e->status;
    m->code = e->code;
    m->len = e->len;
    m->data = e->data;
}

/* ---------------------------------------------------------- outbound */

static int open_stream(plink *l, bool bidi, uint8_t prio, uint8_t role, lane **out)
{
    sl_stream *s = NULL;
    int rc = sl_stream_open(l->c, bidi, prio, NULL, &s);
    if (rc == SL_ERR_LIMIT)
        return SL_ERR_AGAIN; /* the peer's stream limit: try again later */
    if (rc)
        return rc == SL_ERR_CLOSED ? SL_ERR_NOCONN : rc;
    lane *ln = lane_new(l, s, role, prio);
    if (!ln) {
        sl_stream_reset(s, E_NOMEM);
        return SL_ERR_NOMEM;
    }
    if (!bidi) {
        uint8_t pre = role == R_CTL_OUT ? PRE_CONTROL : PRE_LANE;
        rc = sl_stream_write(s, &pre, 1, NULL);
        if (rc) {
            sl_stream_reset(s, E_NOMEM);
            lane_free(l->k, ln);
            return rc == SL_ERR_CLOSED ? SL_ERR_NOCONN : rc;
        }
    }
    *out = ln;
    return SL_OK;
}

static lane *lane_find(const plink *l, sl_id to, uint8_t prio, uint64_t *free_key)
{
    uint64_t key = lane_key(to, prio);
    *free_key = 0;
    for (int i = 0; i < LANE_PROBES; i++, key = key + 1 ? key + 1 : 1) {
        lane *ln = sl__map_get(&l->lanes_out, key);
        if (!ln) {
            *free_key = key;
            return NULL;
        }
        if (ln->prio == prio && sl_id_eq(ln->to, to))
            return ln;
    }
    return NULL;
}

/* The lane to (to, prio) on `l`, opened if need be. */
static int lane_out(sl__cluster *k, plink *l, sl_id to, uint8_t prio, lane **out)
{
    uint64_t key;
    lane *ln = lane_find(l, to, prio, &key);
    if (!ln) {
        if (!key)
            return SL_ERR_NOMEM;
        int rc = open_stream(l, false, prio, R_LANE_OUT, &ln);
        if (rc)
            return rc;
        ln->to = to;
        ln->key = key;
        if (sl__map_put(&l->lanes_out, key, ln) != SL_OK) {
            ln->key = 0;
            sl_stream_reset(ln->s, E_NOMEM);
            return SL_ERR_NOMEM;
        }
        k->st.lanes_opened++;
    }
    *out = ln;
    return SL_OK;
}

static int send_lane(sl__cluster *k, plink *l, const sl_msg *m, const uint8_t *f, size_t n)
{
    lane *ln;
    int rc = lane_out(k, l, m->to, m->prio, &ln);
    return rc ? rc : lane_write(k, ln, f, n, m->from);
}

static int send_ask(sl__cluster *k, plink *l, const sl_msg *m, const uint8_t *f, size_t n)
{
    lane *ln;
    int rc = open_stream(l, true, m->prio, R_ASK_OUT, &ln);
    if (rc)
        return rc;
    ln->to = m->to;
    ln->asker = m->from;
    ln->corr = m->corr;
    ln->key = m->corr ? m->corr : 1;
    if (sl__map_put(&k->asks_out, ln->key, ln) != SL_OK) {
        ln->key = 0;
        sl_stream_reset(ln->s, E_NOMEM);
        return SL_ERR_NOMEM;
    }
    rc = lane_write(k, ln, f, n, m->from);
    if (rc) {
        sl_stream_reset(ln->s, E_CANCELLED);
        sl__map_del(&k->asks_out, ln->key);
        ln->key = 0;
    }
    return rc;
}

/* An answer (REPLY, CHUNK, END, FAIL) to an ask from the peer. */
static int send_answer(sl__cluster *k, plink *l, const sl_msg *m, const uint8_t *f, size_t n)
{
    uint64_t key = ask_key(m->to, m->corr);
    lane *ln = sl__map_get(&k->asks_in, key);
    if (!ln && sl__map_get(&k->lasks, key) == l) {
        /* The ask came on a lane of this WebTransport link: so does the answer. */
        int rc = send_lane(k, l, m, f, n);
        if (rc == SL_OK && m->kind != SL_KIND_CHUNK)
            sl__map_del(&k->lasks, key);
        return rc == SL_ERR_NOCONN ? SL_ERR_CANCELLED : rc;
    }
    if (!ln || !sl_id_eq(ln->asker, m->to) || ln->corr != m->corr)
        return SL_ERR_CANCELLED; /* cancelled (stream reset) or already answered */
    int rc = lane_write(k, ln, f, n, m->from);
    if (rc == SL_OK && m->kind != SL_KIND_CHUNK) {
        sl__map_del(&k->asks_in, key);
        ln->key = 0;
        if (ln->pend)
            ln->fin_after = true; /* a big answer still being fed */
        else
            sl_stream_finish(ln->s);
    }
    return rc == SL_ERR_NOCONN ? SL_ERR_CANCELLED : rc;
}

/* The asker cancelled (or timed out): reset the ask's stream both ways. */
static int cancel_ask(sl__cluster *k, uint64_t corr)
{
    lane *ln = sl__map_get(&k->asks_out, corr ? corr : 1);
    if (!ln)
        return SL_OK;
    sl__map_del(&k->asks_out, ln->key);
    ln->key = 0;
    ln->dead = true;
    sl_stream_reset(ln->s, E_CANCELLED);
    sl_stream_stop_sending(ln->s, E_CANCELLED);
    k->st.asks_cancelled++;
    return SL_OK;
}

/* The lane `m` would go on is still feeding a big message: it would be
 * refused with SL_ERR_AGAIN after encoding, so say so before (a big
 * payload's copy is the costly part of a send). */
static bool lane_busy(sl__cluster *k, plink *l, const sl_msg *m)
{
    lane *ln = NULL;
    uint64_t free_key;
    if (m->kind == SL_KIND_SEND)
        ln = lane_find(l, m->to, m->prio, &free_key);
    else if (m->kind >= SL_KIND_REPLY && m->kind <= SL_KIND_FAIL)
        ln = sl__map_get(&k->asks_in, ask_key(m->to, m->corr));
    if (!ln || !ln->pend)
        return false;
    ln->used_ns = k->now_ns;
    add_waiter(k, ln, m->from);
    return true;
}

/* Encode `m` for `l` and put it where its kind goes. */
static int send_on(sl__cluster *k, plink *l, const sl_msg *m)
{
    size_t n;
    const uint8_t *f;
    bool dgram = m->flags & SL_MSG_UNRELIABLE;
    if (dgram && m->len > sl__cluster_unreliable_max(k, m->to.node))
        return SL_ERR_MSG_TOO_BIG; /* the documented bound, whatever the ids */
    if (!dgram && sl_envelope_max_size(m->len) + HDR_MAX > PIECE && lane_busy(k, l, m))
        return SL_ERR_AGAIN;
    int rc = encode(k, l, m, !dgram, &f, &n);
    if (rc)
        return rc;
    if (dgram) {
        rc = sl_datagram_send(l->c, f, n);
        if (rc == SL_OK)
            k->st.datagrams_sent++;
        return rc == SL_ERR_CLOSED        ? SL_ERR_NOCONN
               : rc == SL_ERR_UNSUPPORTED ? SL_ERR_MSG_TOO_BIG
                                          : rc;
    }
    switch (m->kind) {
    case SL_KIND_SEND:
        rc = send_lane(k, l, m, f, n);
        break;
    case SL_KIND_ASK:
        rc = wt_link(l) ? send_lane(k, l, m, f, n) : send_ask(k, l, m, f, n);
        break;
    case SL_KIND_REPLY:
    case SL_KIND_CHUNK:
    case SL_KIND_END:
    case SL_KIND_FAIL:
        rc = send_answer(k, l, m, f, n);
        break;
    default: /* signals: the control stream */
        rc = l->ctl ? lane_write(k, l->ctl, f, n, m->from) : SL_ERR_NOCONN;
        break;
    }
    out_release(k);
    return rc;
}

int sl__cluster_send(sl__cluster *k, const sl_msg *m)
{
    if (m->len > k->max_message)
        return SL_ERR_MSG_TOO_BIG;
    plink *l = link_for(k, m->to.node);
    if (!l)
        return SL_ERR_NOCONN;
    if (m->kind == SL_KIND_CANCEL)
        return wt_link(l) ? send_on(k, l, m) : cancel_ask(k, m->corr);
    if (l->kind == LK_GATEWAY) {
        int rc = browser_may(k, m->kind, m->to);
        if (rc)
            return rc;
    }
    return send_on(k, l, m);
}

size_t sl__cluster_unreliable_max(const sl__cluster *k, uint64_t node)
{
    plink *l = link_for(k, node);
    if (!l)
        return 0;
    size_t max = sl_datagram_max(l->c);
    /* Worst-case envelope around the payload (ids in full form). */
    return max > SL_ENVELOPE_MAX_OVERHEAD ? max - SL_ENVELOPE_MAX_OVERHEAD : 0;
}

/* ----------------------------------------------------------- inbound */

enum { FR_OK = 0, FR_PAUSE = 1, FR_DEAD = 2 };

/* Check an envelope's addressing. A node speaks for its own actors (and a
 * gateway also for the browser nodes behind it) and sends to ours (a
 * gateway also to the browser nodes it serves); a browser node speaks for
 * its own actors and addresses ours or any node's exposed actors; a
 * gateway speaks for anyone to us. Nothing else is forwarded. */
static int check_addr(const sl__cluster *k, const plink *l, const sl_envelope *e)
{
    if (e->to.local == 0)
        return SL_ERR_FORBIDDEN;
    if (l->kind == LK_GATEWAY)
        return e->to.node == k->node ? SL_OK : SL_ERR_FORBIDDEN;
    if (e->from.local != 0 && e->from.node != l->node &&
        (l->kind != LK_NODE || sl__map_get(&k->routes, e->from.node) != l))
        return SL_ERR_FORBIDDEN; /* a peer speaks only for its own actors */
    if (l->kind == LK_BROWSER) {
        if (!l->welcomed)
            return SL_ERR_FORBIDDEN;
        return browser_may(k, e->kind, e->to);
    }
    if (e->to.node == k->node)
        return SL_OK;
    const plink *o = sl__map_get(&k->peers, e->to.node);
    return o && o->kind == LK_BROWSER ? SL_OK : SL_ERR_FORBIDDEN; /* we are its gateway */
}

/* Decode exactly one envelope from the peer of `l`. */
static int decode_only(const sl__cluster *k, const plink *l, const uint8_t *data, size_t len,
                       sl_envelope *e)
{
    size_t used = 0;
    int rc = sl_envelope_decode(data, len, k->node, l->node, &k->lim, e, &used);
    if (rc == SL_OK && used != len)
        rc = SL_ERR_DECODE_TRAILING;
    return rc;
}

/* ... and check its addressing. */
static int decode(const sl__cluster *k, const plink *l, const uint8_t *data, size_t len,
                  sl_envelope *e)
{
    int rc = decode_only(k, l, data, len, e);
    return rc ? rc : check_addr(k, l, e);
}

/* End the ask stream `ln` with the FAIL `f` (or a reset if it cannot be written). */
static void stream_fail(sl__cluster *k, lane *ln, const sl_msg *f)
{
    size_t n;
    const uint8_t *fr;
    if (encode(k, ln->l, f, true, &fr, &n) == SL_OK && sl_stream_write(ln->s, fr, n, NULL) == SL_OK)
        sl_stream_finish(ln->s);
    else
        sl_stream_reset(ln->s, E_CANCELLED);
}

static void answer_fail(sl__cluster *k, lane *ln, const sl_envelope *e, int err)
{
    sl_msg f = fail_of(e, err);
    stream_fail(k, ln, &f);
}

static int pause_for(sl__cluster *k, lane *ln);
static int node_msg(sl__cluster *k, lane *ln, const sl_envelope *e);
static int forbidden(sl__cluster *k, lane *ln, const sl_envelope *e);
static int forward(sl__cluster *k, lane *in, const sl_envelope *e, const sl_msg *m);
static int lane_answer(sl__cluster *k, plink *l, const sl_msg *m);

/* One frame from a stream or datagram. Returns FR_OK, FR_PAUSE (mailbox
 * full: keep this frame), FR_DEAD (stream closed for an error). With `blk`
 * and *blk set, the frame lies in that message block, which is delivered
 * as it is (*blk cleared when the core took it). */
static int on_frame(sl__cluster *k, lane *ln, const uint8_t *frame, size_t len,
                    struct sl__msg **blk)
{
    plink *l = ln->l;
    sl_envelope e;
    int rc = decode_only(k, l, frame, len, &e);
    if (rc == SL_OK && e.kind == SL_KIND_NODE) {
        if (ln->role == R_CTL_IN)
            return node_msg(k, ln, &e);
        rc = SL_ERR_PROTO;
    } else if (rc == SL_OK) {
        rc = check_addr(k, l, &e);
        if (rc == SL_ERR_FORBIDDEN && l->kind == LK_BROWSER && l->welcomed)
            return forbidden(k, ln, &e);
    }
    if (rc) {
        lane_fail(k, ln, "envelope refused, stream closed", rc);
        return FR_DEAD;
    }
    bool fwd = e.to.node != k->node; /* we are a gateway and relay it */
    sl_msg m;
    msg_of(&m, &e);
    unsigned how = SL__INJECT_FLOW;
    switch (ln->role) {
    case R_CTL_IN:
        if (e.kind < SL_KIND_DOWN && e.kind != SL_KIND_CANCEL) {
            lane_fail(k, ln, "data on the control stream", SL_ERR_PROTO);
            return FR_DEAD;
        }
        if (e.kind == SL_KIND_CANCEL && !fwd &&
            sl__map_get(&k->lasks, ask_key(e.from, e.corr)) == l)
            sl__map_del(&k->lasks, ask_key(e.from, e.corr)); /* a lane ask, cancelled */
        how = 0;
        break;
    case R_LANE_IN:
        /* On a WebTransport link asks and their answers travel on lanes too. */
        if ((e.kind != SL_KIND_SEND &&
             !(wt_link(l) &&
               (e.kind == SL_KIND_ASK || (e.kind >= SL_KIND_REPLY && e.kind <= SL_KIND_FAIL)))) ||
            (ln->bound && !sl_id_eq(e.to, ln->to))) {
            lane_fail(k, ln, "lane carries one receiver's messages only", SL_ERR_PROTO);
            return FR_DEAD;
        }
        if (e.kind == SL_KIND_ASK && !fwd) {
            uint64_t key = ask_key(e.from, e.corr);
            plink *had = sl__map_get(&k->lasks, key);
            if ((had && had != l) || (!had && sl__map_put(&k->lasks, key, l) != SL_OK)) {
                lane_fail(k, ln, "duplicate ask", had ? SL_ERR_PROTO : SL_ERR_NOMEM);
                return FR_DEAD;
            }
        }
        if (!ln->bound) /* the class is not on the wire: its credit follows it */
            sl_stream_set_prio(ln->s, e.prio);
        ln->bound = true;
        ln->to = e.to;
        break;
    case R_ASK_IN:
        if (e.kind != SL_KIND_ASK || ln->bound || e.from.local == 0) {
            lane_fail(k, ln, "an ask stream carries one ask", SL_ERR_PROTO);
            return FR_DEAD;
        }
        ln->to = e.to;
        ln->asker = e.from;
        ln->corr = e.corr;
        sl_stream_set_prio(ln->s, e.prio); /* credit, and the answer's class on the wire */
        if (!ln->key && !fwd) {
            /* Known before the core sees it: an answer may come at once. */
            uint64_t key = ask_key(ln->asker, ln->corr);
            if (sl__map_get(&k->asks_in, key)) { /* the same ask twice */
                lane_fail(k, ln, "duplicate ask", SL_ERR_PROTO);
                return FR_DEAD;
            }
            if (sl__map_put(&k->asks_in, key, ln) != SL_OK) {
                answer_fail(k, ln, &e, SL_ERR_NOMEM);
                ln->dead = true;
                return FR_DEAD;
            }
            ln->key = key;
        }
        break;
    case R_ASK_OUT:
        if (e.kind < SL_KIND_REPLY || e.kind > SL_KIND_FAIL || e.corr != ln->corr ||
            !sl_id_eq(e.to, ln->asker)) {
            lane_fail(k, ln, "not an answer to this ask", SL_ERR_PROTO);
            return FR_DEAD;
        }
        break;
    default:
        return FR_DEAD;
    }
    if (fwd)
        return forward(k, ln, &e, &m);
    /* Paused lanes for this receiver go first: FIFO holds across them. */
    if (how == SL__INJECT_FLOW && k->resuming != m.to.local && sl__map_get(&k->paused, m.to.local))
        return pause_for(k, ln);
    if (blk && *blk) {
        rc = sl__core_inject_block(k->core, &m, how, *blk);
        if (rc == SL_OK)
            *blk = NULL;
    } else {
        rc = sl__core_inject(k->core, &m, how);
    }
    if (rc == SL_ERR_AGAIN)
        return pause_for(k, ln);
    k->st.delivered += rc == SL_OK;
    switch (ln->role) {
    case R_ASK_IN:
        ln->bound = true;
        if (rc && ln->key) { /* the asker must not wait for its deadline */
            sl__map_del(&k->asks_in, ln->key);
            ln->key = 0;
            answer_fail(k, ln, &e, rc);
        }
        break;
    case R_ASK_OUT:
        if (rc == SL_ERR_CANCELLED) { /* our ask ended meanwhile */
            sl_stream_stop_sending(ln->s, E_CANCELLED);
            return FR_DEAD;
        }
        if (e.kind != SL_KIND_CHUNK) { /* answered: close our side */
            if (ln->key)
                sl__map_del(&k->asks_out, ln->key);
            ln->key = 0;
            sl_stream_finish(ln->s);
        }
        break;
    default:
        if (rc && e.kind == SL_KIND_ASK && ln->role == R_LANE_IN) {
            /* A lane ask the core refused: the asker must not wait. */
            sl__map_del(&k->lasks, ask_key(e.from, e.corr));
            sl_msg fm = fail_of(&e, rc);
            (void)lane_answer(k, l, &fm);
        } else if (rc && rc != SL_ERR_NOACTOR && rc != SL_ERR_CANCELLED) {
            say(k, l, "message not delivered", rc);
        }
        break;
    }
    return FR_OK;
}

/* Keep the rest of a stream's bytes (from `data`) while it is paused. */
static int hold(sl__cluster *k, lane *ln, const uint8_t *data, size_t len)
{
    if (!len)
        return SL_OK;
    if (ln->held_len + len > ln->held_cap) {
        size_t n = ln->held_cap ? ln->held_cap : 4096;
        while (n < ln->held_len + len)
            n *= 2;
        uint8_t *h = k->mem.realloc(ln->held, n, k->mem.ud);
        if (!h)
            return SL_ERR_NOMEM;
        ln->held = h;
        ln->held_cap = n;
    }
    memcpy(ln->held + ln->held_len, data, len);
    ln->held_len += len;
    return SL_OK;
}

static int pause_for(sl__cluster *k, lane *ln)
{
    ln->blocked = true;
    ln->bnext = NULL;
    lane *head = sl__map_get(&k->paused, ln->to.local);
    if (!head) {
        if (sl__map_put(&k->paused, ln->to.local, ln) != SL_OK) {
            ln->blocked = false;
            lane_fail(k, ln, "no memory to pause a lane", SL_ERR_NOMEM);
            return FR_DEAD;
        }
    } else {
        while (head->bnext)
            head = head->bnext;
        head->bnext = ln;
    }
    k->st.lanes_paused++;
    return FR_PAUSE;
}

/* Take a lane off its receiver's paused list (or the list of the lane it
 * waits for, when it relays). */
static void unpause(sl__cluster *k, lane *ln)
{
    if (ln->fw_on) {
        lane **pp = &ln->fw_on->fw_head;
        while (*pp && *pp != ln)
            pp = &(*pp)->fw_next;
        if (*pp)
            *pp = ln->fw_next;
        ln->fw_on = ln->fw_next = NULL;
        ln->blocked = false;
        return;
    }
    lane *head = sl__map_get(&k->paused, ln->to.local);
    if (head == ln) {
        if (ln->bnext)
            sl__map_put(&k->paused, ln->to.local, ln->bnext); /* replaces: no allocation */
        else
            sl__map_del(&k->paused, ln->to.local);
    } else {
        for (lane *p = head; p; p = p->bnext)
            if (p->bnext == ln) {
                p->bnext = ln->bnext;
                break;
            }
    }
    ln->blocked = false;
    ln->bnext = NULL;
}

/* Return credit for everything received except what is held. */
static void settle(lane *ln)
{
    uint64_t target = ln->recv_total - ln->held_len;
    if (target > ln->consumed) {
        sl_stream_consume(ln->s, (size_t)(target - ln->consumed));
        ln->consumed = target;
    }
}

/* At a frame boundary of the lane's reader (or with only part of a header
 * in it), see whether the header, completed from `data`, announces a big
 * frame within the limit (over it, the reader reports the error). If so,
 * the frame is received by big_feed() from now on; returns the bytes of
 * `data` that completed the header, else 0. */
static size_t big_begin(lane *ln, const uint8_t *data, size_t len)
{
    sl_frame_reader *r = &ln->fr;
    if ((r->have_len && !r->ready) || r->err)
        return 0; /* inside a frame (ready: the last one was handed out) */
    if (len && (r->hdr_have ? r->hdr[0] : data[0]) < 0x80)
        return 0; /* a 1- or 2-byte length: under 16 KiB (the common case) */
    uint8_t h[SL_FRAME_MAX_HEADER];
    size_t have = r->hdr_have;
    size_t take = len < sizeof h - have ? len : sizeof h - have;
    memcpy(h, r->hdr, have);
    memcpy(h + have, data, take);
    uint64_t flen;
    size_t hlen;
    if (sl_frame_read_header(h, have + take, r->max_frame, &flen, &hlen) != SL_OK ||
        flen <= BIG_FRAME)
        return 0;
    r->hdr_have = 0; /* the header is consumed here, not by the reader */
    ln->big_len = (size_t)flen;
    ln->big_have = 0;
    return hlen - have;
}

/* Take bytes of the big frame: its head into ln->head until it can be
 * judged (sl__envelope_decode_head: the envelope's checks up to the
 * payload's length, so nothing is allocated for a frame that cannot be an
 * envelope), then the whole frame into a message block of its size, where
 * it is decoded again in full and delivered without another copy. A head
 * that is refused is remembered and the frame skipped: the error comes at
 * its end, as for a small frame. Returns SL_OK or SL_ERR_NOMEM. */
static int big_feed(sl__cluster *k, lane *ln, const uint8_t *data, size_t len, size_t *used)
{
    size_t n = ln->big_len - ln->big_have;
    if (n > len)
        n = len;
    *used = n;
    if (!ln->blk && !ln->big_err) {
        size_t h = sizeof ln->head - ln->big_have;
        if (h > n)
            h = n;
        memcpy(ln->head + ln->big_have, data, h);
        ln->big_have += h;
        data += h;
        n -= h;
        if (ln->big_have < sizeof ln->head)
            return SL_OK;
        sl_envelope e;
        size_t off;
        if (!ln->big_ok)
            ln->big_err = sl__envelope_decode_head(ln->head, ln->big_have, ln->big_len, k->node,
                                                   ln->l->node, &k->lim, &e, &off);
        ln->big_ok = !ln->big_err;
        if (!ln->big_err) {
            /* The link's frames in progress share a budget: over it, this
             * lane waits (unconsumed, so its peer stops) until one is done. */
            plink *l = ln->l;
            if (l->big_bytes && l->big_bytes + ln->big_len > k->big_budget) {
                *used = h;
                return SL_ERR_AGAIN;
            }
            ln->blk = sl__core_block_new(k->core, ln->big_len, &ln->big);
            if (!ln->blk)
                return SL_ERR_NOMEM;
            l->big_bytes += ln->big_len;
            ln->big_counted = ln->big_len;
            memcpy(ln->big, ln->head, ln->big_have);
        }
    }
    if (ln->blk)
        memcpy(ln->big + ln->big_have, data, n);
    ln->big_have += n;
    return SL_OK;
}

/* The big frame is complete: deliver its block. FR_PAUSE keeps it. */
static int big_done(sl__cluster *k, lane *ln)
{
    if (ln->big_err) {
        lane_fail(k, ln, "envelope refused, stream closed", ln->big_err);
        return FR_DEAD;
    }
    int r = on_frame(k, ln, ln->big, ln->big_len, &ln->blk);
    if (r != FR_PAUSE)
        big_drop(k, ln); /* frees the block unless the core took it */
    return r;
}

/* Run bytes through the frame reader. Returns FR_OK, FR_PAUSE (the frame
 * that paused and the bytes after it are now held), or FR_DEAD. */
static int feed(sl__cluster *k, lane *ln, const uint8_t *data, size_t len)
{
    size_t off = 0;
    if (ln->big_len && ln->big_have == ln->big_len) {
        /* A big frame that waited for room goes first. */
        int r = big_done(k, ln);
        if (r == FR_PAUSE && hold(k, ln, data, len)) {
            unpause(k, ln);
            lane_fail(k, ln, "no memory to hold a paused lane", SL_ERR_NOMEM);
            return FR_DEAD;
        }
        if (r != FR_OK)
            return r;
    }
    while (off < len && !ln->dead) {
        size_t used = 0;
        const uint8_t *frame;
        size_t flen;
        if (!ln->big_len)
            off += big_begin(ln, data + off, len - off);
        if (ln->big_len) {
            int rc = big_feed(k, ln, data + off, len - off, &used);
            off += used;
            if (rc == SL_ERR_AGAIN) {
                k->st.lanes_paused_budget++;
                if (hold(k, ln, data + off, len - off)) {
                    lane_fail(k, ln, "no memory to hold a paused lane", SL_ERR_NOMEM);
                    return FR_DEAD;
                }
                return fw_pause(k, ln, &ln->l->budget);
            }
            if (rc != SL_OK) {
                lane_fail(k, ln, "bad frame, stream closed", rc);
                return FR_DEAD;
            }
            if (ln->big_have < ln->big_len)
                break;
            int r = big_done(k, ln);
            if (r == FR_PAUSE && hold(k, ln, data + off, len - off)) {
                unpause(k, ln);
                lane_fail(k, ln, "no memory to hold a paused lane", SL_ERR_NOMEM);
                return FR_DEAD;
            }
            if (r != FR_OK)
                return r;
            continue;
        }
        int rc = sl_frame_reader_feed(&ln->fr, data + off, len - off, &used, &frame, &flen);
        off += used;
        if (rc == SL_ERR_AGAIN)
            break;
        if (rc != SL_OK) {
            lane_fail(k, ln, "bad frame, stream closed", rc);
            return FR_DEAD;
        }
        int r = on_frame(k, ln, frame, flen, NULL);
        if (r == FR_DEAD)
            return FR_DEAD;
        if (r == FR_PAUSE) {
            /* Keep the frame (header re-made) and what follows. */
            uint8_t hdr[8];
            size_t hlen = 0;
            sl_frame_write_header(flen, hdr, sizeof hdr, &hlen);
            if (hold(k, ln, hdr, hlen) || hold(k, ln, frame, flen) ||
                hold(k, ln, data + off, len - off)) {
                unpause(k, ln);
                lane_fail(k, ln, "no memory to hold a paused lane", SL_ERR_NOMEM);
                return FR_DEAD;
            }
            return FR_PAUSE;
        }
    }
    return FR_OK;
}

/* The receiver has room (or stopped): resume its paused lanes in order. */
void sl__cluster_room(sl__cluster *k, sl_id actor)
{
    lane *ln;
    uint64_t outer = k->resuming;
    k->resuming = actor.local; /* its paused lanes go now, oldest first */
    while ((ln = sl__map_get(&k->paused, actor.local)) != NULL) {
        unpause(k, ln);
        uint8_t *h = ln->held;
        size_t hl = ln->held_len;
        ln->held = NULL;
        ln->held_len = ln->held_cap = 0;
        int r = feed(k, ln, h, hl);
        c_free(k, h);
        if (!ln->dead)
            settle(ln);
        if (r == FR_PAUSE)
            break; /* full again: the rest wait behind it */
        if (ln->closed)
            lane_free(k, ln);
    }
    k->resuming = outer;
}

/* ------------------------------------------------------------ gateway */

/* `in` waits until `on` (where its next envelope goes) drains. */
static int fw_pause(sl__cluster *k, lane *in, lane *on)
{
    in->blocked = true;
    in->fw_on = on;
    in->fw_next = NULL;
    lane **pp = &on->fw_head;
    while (*pp)
        pp = &(*pp)->fw_next;
    *pp = in;
    k->st.lanes_paused++;
    return FR_PAUSE;
}

/* `on` drained (or is gone): the lanes waiting for it go on, in order. */
static void fw_resume(sl__cluster *k, lane *on)
{
    lane *in;
    while ((in = on->fw_head) != NULL) {
        unpause(k, in);
        uint8_t *h = in->held;
        size_t hl = in->held_len;
        in->held = NULL;
        in->held_len = in->held_cap = 0;
        int r = feed(k, in, h, hl);
        c_free(k, h);
        if (!in->dead)
            settle(in);
        if (r == FR_PAUSE && in->fw_on == on)
            break; /* full again: the rest wait behind it */
        if (in->closed && !in->blocked)
            lane_free(k, in);
    }
}

/* Lanes waiting for the link's big-frame budget try again once it went down. */
static void budget_resume(sl__cluster *k, plink *l)
{
    lane *w = l->budget.fw_head;
    if (w && (!l->big_bytes || l->big_bytes + w->big_len <= k->big_budget))
        fw_resume(k, &l->budget);
}

/* One half of a relayed ask ended without the answer: end the other half
 * (the asker's node turns a reset into FAIL, the replier's into CANCEL). */
static void pipe_cut(sl__cluster *k, lane *ln, uint64_t code)
{
    lane *p = ln->pipe;
    if (!p)
        return;
    ln->pipe = p->pipe = NULL;
    if (p->dead || !p->s)
        return;
    p->dead = true;
    uint64_t c = p->role == R_ASK_IN ? code : E_CANCELLED;
    sl_stream_reset(p->s, c);
    sl_stream_stop_sending(p->s, c);
    k->st.asks_cancelled++;
}

/* An envelope for the lanes of link `l` (an answer to an ask that came on
 * lanes), encoded for it. */
static int lane_answer(sl__cluster *k, plink *l, const sl_msg *m)
{
    const uint8_t *f;
    size_t n;
    int rc = encode(k, l, m, true, &f, &n);
    if (rc == SL_OK)
        rc = send_lane(k, l, m, f, n);
    out_release(k);
    return rc;
}

/* The stream half of an ask relayed to or from the lanes of a WebTransport
 * link ended without its answer: a browser asker hears FAIL(err) on its
 * lane, a browser replier CANCEL on its control stream. */
static void lpipe_cut(sl__cluster *k, lane *ln, int err)
{
    plink *w = ln->lpipe;
    if (!w)
        return;
    ln->lpipe = NULL;
    uint64_t key = ask_key(ln->asker, ln->corr);
    if (sl__map_get(&k->relays, key) == ln)
        sl__map_del(&k->relays, key);
    if (ln->role == R_ASK_OUT) {
        sl_msg m = sys_msg(ln->to, ln->asker, SL_KIND_FAIL, ln->prio, ln->corr, err);
        (void)lane_answer(k, w, &m);
    } else {
        sl_msg m = sys_msg(ln->asker, ln->to, SL_KIND_CANCEL, ln->prio, ln->corr, 0);
        (void)send_on(k, w, &m);
    }
    k->st.asks_cancelled++;
}

/* A WebTransport link goes: the relayed asks' stream halves end (a node's
 * replier is cancelled, a node's asker fails now), its lane asks are forgotten. */
static void wt_unlink(sl__cluster *k, const plink *l)
{
    for (size_t i = 0; i < k->relays.cap; i++) {
        lane *x = k->relays.slots[i].key ? k->relays.slots[i].val : NULL;
        if (!x || x->lpipe != l)
            continue;
        sl__map_del(&k->relays, k->relays.slots[i].key);
        i--; /* backward-shift deletion may have moved an entry into slot i */
        x->lpipe = NULL;
        if (!x->s || x->dead)
            continue;
        x->dead = true;
        if (x->role == R_ASK_OUT) {
            sl_stream_reset(x->s, E_CANCELLED);
            sl_stream_stop_sending(x->s, E_CANCELLED);
        } else {
            sl_msg f = sys_msg(x->to, x->asker, SL_KIND_FAIL, x->prio, x->corr, SL_ERR_NOCONN);
            stream_fail(k, x, &f);
        }
    }
    for (size_t i = 0; i < k->lasks.cap; i++) {
        if (!k->lasks.slots[i].key || k->lasks.slots[i].val != l)
            continue;
        sl__map_del(&k->lasks, k->lasks.slots[i].key);
        i--;
    }
}

/* A browser node addressed what it may not: an ask is answered
 * FAIL(SL_ERR_FORBIDDEN), a signal dropped, a lane closed. */
static int forbidden(sl__cluster *k, lane *ln, const sl_envelope *e)
{
    k->st.forbidden++;
    say(k, ln->l, "browser node addressed an actor not exposed to it", SL_ERR_FORBIDDEN);
    if (ln->role == R_ASK_IN && e->kind == SL_KIND_ASK && !ln->bound && !ln->pipe &&
        e->from.local) {
        ln->bound = true;
        answer_fail(k, ln, e, SL_ERR_FORBIDDEN);
        ln->dead = true;
        return FR_DEAD;
    }
    if (ln->role == R_CTL_IN)
        return FR_OK; /* that signal is dropped; the stream goes on */
    ln->dead = true;
    sl_stream_stop_sending(ln->s, E_FORBIDDEN);
    if (ln->role == R_ASK_IN)
        sl_stream_reset(ln->s, E_FORBIDDEN);
    return FR_DEAD;
}

/* Relay one envelope from `in` toward its receiver's node (we are the
 * gateway of one of the two ends). Returns FR_OK, FR_PAUSE (the stream it
 * goes on is full: `in` waits for it) or FR_DEAD. */
static int forward(sl__cluster *k, lane *in, const sl_envelope *e, const sl_msg *m)
{
    plink *out = in->role != R_ASK_OUT ? link_for(k, e->to.node)
                 : in->pipe            ? in->pipe->l
                                       : in->lpipe;
    if (out == in->l || (out && !out->current))
        out = NULL;
    bool answer = e->kind >= SL_KIND_REPLY && e->kind <= SL_KIND_FAIL;
    uint64_t rkey = 0; /* an ask relayed between a stream and lanes */
    lane *via = NULL;
    int rc = SL_OK;
    if (in->role == R_CTL_IN && e->kind == SL_KIND_CANCEL) {
        /* A WebTransport peer cancels an ask we relayed onto a stream: the
         * stream's reset is the cancel for the replier's node. */
        lane *o = sl__map_get(&k->relays, ask_key(e->from, e->corr));
        if (o && o->role == R_ASK_OUT && o->lpipe == in->l) {
            sl__map_del(&k->relays, ask_key(e->from, e->corr));
            o->lpipe = NULL;
            o->dead = true;
            sl_stream_reset(o->s, E_CANCELLED);
            sl_stream_stop_sending(o->s, E_CANCELLED);
            k->st.asks_cancelled++;
            return FR_OK;
        }
    }
    if (out) {
        switch (in->role) {
        case R_ASK_IN:
            if (wt_link(out)) { /* to a browser node: the ask goes on a lane */
                rkey = ask_key(e->from, e->corr);
                rc = sl__map_get(&k->relays, rkey) ? SL_ERR_PROTO
                                                   : lane_out(k, out, e->to, e->prio, &via);
                break;
            }
            if (!in->pipe) {
                rc = open_stream(out, true, e->prio, R_ASK_OUT, &in->pipe);
                if (rc)
                    break;
                in->pipe->to = e->to;
                in->pipe->asker = e->from;
                in->pipe->corr = e->corr;
                in->pipe->pipe = in;
            }
            via = in->pipe;
            break;
        case R_ASK_OUT:
            if (in->pipe)
                via = in->pipe;
            else /* a node answers a browser's ask: on the lane to the asker */
                rc = lane_out(k, out, e->to, e->prio, &via);
            break;
        case R_LANE_IN:
            if (wt_link(out)) { /* lane to lane, asks and answers alike */
                rc = lane_out(k, out, e->to, e->prio, &via);
            } else if (e->kind == SL_KIND_ASK) { /* onto a stream of its own */
                rkey = ask_key(e->from, e->corr);
                if (sl__map_get(&k->relays, rkey))
                    rc = SL_ERR_PROTO;
                else if ((rc = open_stream(out, true, e->prio, R_ASK_OUT, &via)) == SL_OK) {
                    via->to = e->to;
                    via->asker = e->from;
                    via->corr = e->corr;
                }
            } else if (answer) { /* back onto the asking node's stream */
                via = sl__map_get(&k->relays, ask_key(e->to, e->corr));
                if (!via || via->role != R_ASK_IN || via->lpipe != in->l)
                    return FR_OK; /* cancelled or answered: a late answer is dropped */
            } else {
                rc = lane_out(k, out, e->to, e->prio, &via);
            }
            break;
        default:
            via = out->ctl;
            break;
        }
    }
    if (via) {
        const uint8_t *f;
        size_t n;
        rc = encode(k, out, m, true, &f, &n);
        if (rc == SL_OK)
            rc = lane_write(k, via, f, n, SL_ID_NONE);
        out_release(k);
        if (rc == SL_ERR_AGAIN)
            return fw_pause(k, in, via);
    } else if (rc == SL_OK) {
        rc = SL_ERR_NOCONN;
    }
    if (rc && rkey && in->role == R_LANE_IN) { /* the browser's ask found no way */
        k->st.fwd_failed++;
        sl_msg fm = fail_of(e, rc == SL_ERR_NOMEM ? SL_ERR_NOMEM : SL_ERR_NOCONN);
        if (via && via->role == R_ASK_OUT) {
            via->dead = true;
            sl_stream_reset(via->s, E_CANCELLED);
        }
        (void)lane_answer(k, in->l, &fm);
        return FR_OK;
    }
    if (rc) {
        k->st.fwd_failed++;
        switch (in->role) {
        case R_ASK_IN: /* the asker hears it now */
            pipe_cut(k, in, E_CANCELLED);
            answer_fail(k, in, e, rc == SL_ERR_NOMEM ? SL_ERR_NOMEM : SL_ERR_NOCONN);
            in->dead = true;
            return FR_DEAD;
        case R_ASK_OUT:
            pipe_cut(k, in, E_CANCELLED);
            in->dead = true;
            sl_stream_stop_sending(in->s, E_CANCELLED);
            return FR_DEAD;
        default:
            if (e->kind == SL_KIND_MONITOR) { /* the watcher must not wait forever */
                sl_msg d = sys_msg(e->to, e->from, SL_KIND_DOWN, SL_PRIO_CRITICAL, e->corr,
                                   SL_REASON_NOCONNECTION);
                (void)send_on(k, in->l, &d);
            }
            return FR_OK; /* a dead letter, like an unknown actor's */
        }
    }
    k->st.forwarded++;
    if (rkey) { /* a relayed ask between a stream and lanes: remember its stream half */
        lane *half = in->role == R_ASK_IN ? in : via;
        if (sl__map_put(&k->relays, rkey, half) == SL_OK)
            half->lpipe = in->role == R_ASK_IN ? out : in->l;
    }
    if (answer && e->kind != SL_KIND_CHUNK && (in->lpipe || (via && via->lpipe))) {
        /* The answer went through: the stream half ends normally. */
        lane *half = in->lpipe ? in : via;
        uint64_t key = ask_key(half->asker, half->corr);
        if (sl__map_get(&k->relays, key) == half)
            sl__map_del(&k->relays, key);
        half->lpipe = NULL;
        if (half->pend)
            half->fin_after = true;
        else
            sl_stream_finish(half->s);
    }
    if (in->role == R_ASK_IN) {
        in->bound = true;
    } else if (in->role == R_ASK_OUT && in->pipe && e->kind != SL_KIND_CHUNK) {
        /* The answer went through: both halves end normally. */
        lane *p = in->pipe;
        in->pipe = p->pipe = NULL;
        if (p->pend)
            p->fin_after = true;
        else
            sl_stream_finish(p->s);
        sl_stream_finish(in->s);
    }
    return FR_OK;
}

/* A NODE control message on a control stream: pack [items...]. */
static int send_node(sl__cluster *k, plink *l, uint32_t type, const sl_pack *p)
{
    if (!l->ctl)
        return SL_ERR_NOCONN;
    if (sl_pack_error(p))
        return SL_ERR_NOMEM;
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SL_KIND_NODE;
    m.prio = SL_PRIO_CRITICAL;
    m.type = type;
    m.data = sl_pack_data(p);
    m.len = sl_pack_len(p);
    const uint8_t *f;
    size_t n;
    int rc = encode(k, l, &m, true, &f, &n);
    return rc ? rc : lane_write(k, l->ctl, f, n, SL_ID_NONE);
}

static void pack_exposed(const sl__cluster *k, sl_pack *p)
{
    msgpack_pack_array(&p->pk, (uint32_t)k->nexpo);
    for (size_t i = 0; i < k->nexpo; i++) {
        msgpack_pack_array(&p->pk, 3);
        sl_pack_str(p, k->expo[i].name);
        msgpack_pack_uint64(&p->pk, k->expo[i].id.node);
        msgpack_pack_uint64(&p->pk, k->expo[i].id.local);
    }
}

/* Tell every node we are connected to that browser nodes come and go. */
static void announce(sl__cluster *k, plink *only, const uint64_t *ids, size_t n, bool up)
{
    if (!n)
        return;
    sl_pack p;
    sl_pack_init(&p, &k->mem);
    msgpack_pack_array(&p.pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&p.pk, ids[i]);
    for (size_t i = 0; i < k->peers.cap; i++) {
        plink *l = k->peers.slots[i].key ? k->peers.slots[i].val : NULL;
        if (l && l->kind == LK_NODE && (!only || only == l))
            (void)send_node(k, l, up ? NT_ROUTE_UP : NT_ROUTE_DOWN, &p);
    }
    sl_pack_fini(&p);
}

/* A new node link at a gateway: every browser node we serve, at once. */
static void announce_all(sl__cluster *k, plink *to)
{
    size_t n = 0, cap = 0;
    uint64_t *ids = NULL;
    for (size_t i = 0; i < k->peers.cap; i++) {
        plink *l = k->peers.slots[i].key ? k->peers.slots[i].val : NULL;
        if (!l || l->kind != LK_BROWSER)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *ni = k->mem.realloc(ids, nc * sizeof *ni, k->mem.ud);
            if (!ni)
                break;
            ids = ni;
            cap = nc;
        }
        ids[n++] = l->node;
    }
    announce(k, to, ids, n, true);
    c_free(k, ids);
}

static void tell_exposed(sl__cluster *k)
{
    sl_pack p;
    sl_pack_init(&p, &k->mem);
    pack_exposed(k, &p);
    for (size_t i = 0; i < k->peers.cap; i++) {
        plink *l = k->peers.slots[i].key ? k->peers.slots[i].val : NULL;
        if (l && l->kind == LK_BROWSER)
            (void)send_node(k, l, NT_EXPOSE, &p);
    }
    sl_pack_fini(&p);
}

static int set_exposed(sl__cluster *k, const char *name, size_t nlen, sl_id id)
{
    if (!name || nlen == 0 || nlen > SL_NAME_MAX)
        return SL_ERR_INVAL;
    size_t i = 0;
    while (i < k->nexpo && (strlen(k->expo[i].name) != nlen || memcmp(k->expo[i].name, name, nlen)))
        i++;
    if (sl_id_is_none(id)) {
        if (i == k->nexpo)
            return SL_ERR_NOTFOUND;
        k->expo[i] = k->expo[--k->nexpo];
        return SL_OK;
    }
    if (i == k->nexpo) {
        if (k->nexpo == k->expo_cap) {
            size_t nc = k->expo_cap ? k->expo_cap * 2 : 8;
            sl__expose *ne = k->mem.realloc(k->expo, nc * sizeof *ne, k->mem.ud);
            if (!ne)
                return SL_ERR_NOMEM;
            k->expo = ne;
            k->expo_cap = nc;
        }
        k->nexpo++;
    }
    memcpy(k->expo[i].name, name, nlen);
    k->expo[i].name[nlen] = 0;
    k->expo[i].id = id;
    return SL_OK;
}

/* The list a gateway sent: [[name, node, local], ...]. */
static int exposed_from(sl__cluster *k, const msgpack_object *list)
{
    uint32_t n;
    if (sl_msgpack_get_array(list, &n) != SL_OK)
        return SL_ERR_PROTO;
    k->nexpo = 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *it;
        const char *name;
        size_t nl;
        sl_id id;
        if (sl_msgpack_at(list, i, &it) || sl_msgpack_at_str(it, 0, &name, &nl) ||
            sl_msgpack_at_uint64(it, 1, &id.node) || sl_msgpack_at_uint64(it, 2, &id.local) ||
            sl_id_is_none(id))
            return SL_ERR_PROTO;
        int rc = set_exposed(k, name, nl, id);
        if (rc)
            return rc;
    }
    return SL_OK;
}

/* Gateway: the proof that browser id `id` is the holder's: bound to our
 * TLS key, so it holds across our restarts, and to nothing else. */
static int id_proof(sl__cluster *k, uint64_t id, uint8_t out[ID_PROOF])
{
    char label[48];
    uint8_t full[32];
    snprintf(label, sizeof label, "starling browser id %016llx", (unsigned long long)id);
    int rc = sl_transport_key_secret(k->t, label, full);
    if (rc == SL_OK)
        memcpy(out, full, ID_PROOF);
    return rc;
}

/* Gateway: welcome browser session `l` as node `id`, whose proof is
 * `known` (NULL: made here). */
static int welcome(sl__cluster *k, plink *l, uint64_t id, const uint8_t *known)
{
    uint8_t made[ID_PROOF];
    const uint8_t *proof = known ? known : id_proof(k, id, made) == SL_OK ? made : NULL;
    if (sl__map_put(&k->peers, id, l) != SL_OK)
        return SL_ERR_NOMEM;
    l->node = id;
    l->welcomed = l->current = true;
    sl_pack p;
    sl_pack_init(&p, &k->mem);
    msgpack_pack_array(&p.pk, proof ? 4 : 3);
    msgpack_pack_uint64(&p.pk, k->node);
    msgpack_pack_uint64(&p.pk, id);
    pack_exposed(k, &p);
    if (proof) {
        msgpack_pack_bin(&p.pk, ID_PROOF);
        msgpack_pack_bin_body(&p.pk, proof, ID_PROOF);
    }
    int rc = send_node(k, l, NT_WELCOME, &p);
    sl_pack_fini(&p);
    if (rc)
        return rc;
    k->st.peers_up++;
    k->st.browsers_up++;
    announce(k, NULL, &id, 1, true);
    if (k->on_peer)
        k->on_peer(id, true, k->ud);
    return SL_OK;
}

/* Gateway: whether a browser id cannot be handed out. */
static bool id_taken(const sl__cluster *k, uint64_t id)
{
    return !id || id == k->node || link_for(k, id) || sl__map_get(&k->claims, id);
}

/* Gateway: a browser node says hello. It gets the id it asks for if it
 * proves that id is its own (with the proof of an earlier welcome): a
 * browser keeps its id across reconnects and our restarts, and nobody else
 * can take it. If that id's old session is still here (the browser came
 * back before we saw it go), the old session is closed and this one is
 * welcomed once it has ended. Anything else: a fresh random id. */
static int on_hello(sl__cluster *k, plink *l, const msgpack_object *o)
{
    uint64_t id = 0;
    const uint8_t *got = NULL;
    size_t gotlen = 0;
    (void)sl_msgpack_at_uint64(o, 0, &id);
    const msgpack_object *po;
    if (sl_msgpack_at(o, 1, &po) == SL_OK && sl_msgpack_get_bin(po, &got, &gotlen) != SL_OK)
        return SL_ERR_PROTO;
    bool proved = false;
    uint8_t want[ID_PROOF];
    if (id && id != k->node && gotlen == ID_PROOF && id_proof(k, id, want) == SL_OK) {
        uint8_t diff = 0; /* compared in constant time */
        for (size_t i = 0; i < ID_PROOF; i++)
            diff |= (uint8_t)(got[i] ^ want[i]);
        proved = diff == 0;
    }
    if (proved && !sl__map_get(&k->claims, id)) {
        plink *old = link_for(k, id);
        if (!old)
            return welcome(k, l, id, want);
        if (old->kind == LK_BROWSER && old->current) {
            if (sl__map_put(&k->claims, id, l) != SL_OK)
                return SL_ERR_NOMEM;
            l->claim = id;
            if (!k->set.quiet)
                fprintf(stderr, "starling: browser node %016llx came back: its old session ends\n",
                        (unsigned long long)id);
            sl_conn_close(old->c, E_HELLO, "starling: replaced by a new session of this node");
            return SL_OK;
        }
    }
    id = 0;
    for (int i = 0; i < 8 && id_taken(k, id); i++)
        id = k->set.random64 ? k->set.random64() : 0;
    return id_taken(k, id) ? SL_ERR_NOMEM : welcome(k, l, id, NULL);
}

/* Browser: the gateway's welcome names both nodes. */
static int on_welcome(sl__cluster *k, plink *l, const msgpack_object *o)
{
    uint64_t gw, you;
    const msgpack_object *list;
    if (sl_msgpack_at_uint64(o, 0, &gw) || sl_msgpack_at_uint64(o, 1, &you) ||
        sl_msgpack_at(o, 2, &list) || !gw || !you || gw == you)
        return SL_ERR_PROTO;
    int rc = exposed_from(k, list);
    if (rc)
        return rc;
    const msgpack_object *po;
    const uint8_t *proof = NULL;
    size_t plen = 0;
    if (sl_msgpack_at(o, 3, &po) == SL_OK &&
        (sl_msgpack_get_bin(po, &proof, &plen) != SL_OK || plen != ID_PROOF))
        return SL_ERR_PROTO;
    /* Our actors' ids carry the node id: it cannot change once they exist. */
    if (k->core && sl__core_set_node_id(k->core, you) != SL_OK)
        return SL_ERR_EXISTS;
    if (sl__map_put(&k->peers, gw, l) != SL_OK)
        return SL_ERR_NOMEM;
    k->node = you;
    l->node = gw;
    l->welcomed = l->current = true;
    k->uplink = l;
    k->welcomed_once = true;
    k->has_proof = proof != NULL;
    if (proof)
        memcpy(k->proof, proof, ID_PROOF);
    if (l->dial)
        l->dial->failures = 0;
    k->st.peers_up++;
    if (k->on_peer)
        k->on_peer(gw, true, k->ud);
    return SL_OK;
}

/* A gateway we are connected to serves (or no longer serves) browser nodes. */
static int on_route(sl__cluster *k, plink *l, const msgpack_object *o, bool up)
{
    uint32_t n;
    sl_msgpack_get_array(o, &n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id;
        if (sl_msgpack_at_uint64(o, i, &id) != SL_OK || !id)
            return SL_ERR_PROTO;
        if (up) {
            if (id != k->node && !sl__map_get(&k->peers, id) &&
                sl__map_put(&k->routes, id, l) != SL_OK)
                return SL_ERR_NOMEM;
        } else if (sl__map_get(&k->routes, id) == l) {
            sl__map_del(&k->routes, id);
            sl__core_node_down(k->core, id, SL_ERR_NOCONN, SL_REASON_NOCONNECTION);
        }
    }
    return SL_OK;
}

static int node_msg(sl__cluster *k, lane *ln, const sl_envelope *e)
{
    plink *l = ln->l;
    sl_unpacked u;
    uint32_t n;
    int rc = sl_unpack(e->data, e->len, &k->lim, &u);
    if (rc == SL_OK && sl_msgpack_get_array(&u.root, &n) != SL_OK)
        rc = SL_ERR_PROTO;
    bool hello = e->type == NT_HELLO || e->type == NT_WELCOME;
    if (rc == SL_OK) {
        switch (e->type) {
        case NT_HELLO:
            /* once: a second HELLO (also while the first waits for the
             * old session of its id to end) is a protocol error */
            rc = l->kind == LK_BROWSER && !l->welcomed && !l->claim ? on_hello(k, l, &u.root)
                                                                    : SL_ERR_PROTO;
            break;
        case NT_WELCOME:
            rc = l->kind == LK_GATEWAY && !l->welcomed ? on_welcome(k, l, &u.root) : SL_ERR_PROTO;
            break;
        case NT_EXPOSE:
            rc = l->kind == LK_GATEWAY && l->welcomed ? exposed_from(k, &u.root) : SL_ERR_PROTO;
            break;
        case NT_ROUTE_UP:
        case NT_ROUTE_DOWN:
            rc =
                l->kind == LK_NODE ? on_route(k, l, &u.root, e->type == NT_ROUTE_UP) : SL_ERR_PROTO;
            break;
        default:
            rc = SL_ERR_PROTO;
        }
    }
    sl_unpacked_fini(&u);
    if (rc == SL_OK)
        return FR_OK;
    if (hello || l->kind != LK_NODE) {
        /* Without its hello a browser session is nothing: close it whole. */
        say(k, l, rc == SL_ERR_EXISTS ? "the gateway gave this node another id" : "bad hello", rc);
        sl_conn_close(l->c, E_HELLO,
                      rc == SL_ERR_EXISTS ? "starling: node id changed" : "starling: bad hello");
        ln->dead = true;
        return FR_DEAD;
    }
    lane_fail(k, ln, "bad node control message", rc);
    return FR_DEAD;
}

static int preamble(sl__cluster *k, lane *ln, const uint8_t **data, size_t *len)
{
    if (ln->role != R_UNKNOWN)
        return SL_OK;
    if (*len == 0)
        return SL_ERR_AGAIN;
    uint8_t b = **data;
    (*data)++;
    (*len)--;
    if (b == PRE_CONTROL && !ln->l->ctl_in_seen) {
        ln->role = R_CTL_IN;
        ln->l->ctl_in_seen = true;
    } else if (b == PRE_LANE) {
        ln->role = R_LANE_IN;
        k->st.lanes_accepted++;
    } else {
        lane_fail(k, ln, "unknown stream type", SL_ERR_PROTO);
        return SL_ERR_PROTO;
    }
    return SL_OK;
}

/* ------------------------------------------------ transport callbacks */

static void link_free(sl__cluster *k, plink *l)
{
    sl__map_del(&k->greeting, (uintptr_t)l);
    if (wt_link(l))
        wt_unlink(k, l);
    while (l->lanes)
        lane_free(k, l->lanes);
    sl__map_fini(&l->lanes_out);
    if (l->dial && l->dial->up == l)
        l->dial->up = NULL;
    c_free(k, l);
}

/* Of two connections between the same nodes, both ends keep the one
 * opened by the node with the smaller id. */
static bool preferred(const sl__cluster *k, sl_conn *a)
{
    uint64_t peer = 0;
    sl_conn_peer_node_id(a, &peer);
    uint64_t opener = sl_conn_is_client(a) ? k->node : peer;
    return opener == (k->node < peer ? k->node : peer);
}

static dial *dial_of_conn(sl__cluster *k, sl_conn *c)
{
    for (dial *d = k->dials; d; d = d->next)
        if (d->pending == c)
            return d;
    return NULL;
}

/* An attempt of `d` failed with `err` (0: SL_ERR_NOCONN) and `reason`. */
static void dial_failed(dial *d, int err, const char *reason)
{
    d->failures++;
    d->fail_err = err ? err : SL_ERR_NOCONN;
    snprintf(d->fail_reason, sizeof d->fail_reason, "%s", reason ? reason : "");
}

static void dial_retry_later(sl__cluster *k, dial *d)
{
    d->pending = NULL;
    uint32_t b = d->backoff_ms ? d->backoff_ms : k->set.backoff_min_ms;
    /* Up to a quarter of jitter, so restarted clusters do not stampede. */
    uint64_t jitter = (k->now_ns ^ (uint64_t)(uintptr_t)d) % (b / 4 + 1);
    d->retry_ns = k->now_ns + ((uint64_t)b + jitter) * 1000000ull;
    uint64_t nb = (uint64_t)b * 2;
    d->backoff_ms = (uint32_t)(nb > k->set.backoff_max_ms ? k->set.backoff_max_ms : nb);
}

/* A link for connection `c`, with our control stream open. */
static plink *link_new(sl__cluster *k, sl_conn *c, uint8_t kind, uint64_t node)
{
    plink *l = c_alloc(k, sizeof *l);
    if (!l) {
        sl_conn_close(c, E_NOMEM, "starling: out of memory");
        return NULL;
    }
    l->k = k;
    l->c = c;
    l->node = node;
    l->kind = kind;
    sl__map_init(&l->lanes_out, &k->mem);
    sl_conn_set_data(c, l);
    if (open_stream(l, false, SL_PRIO_CRITICAL, R_CTL_OUT, &l->ctl) != SL_OK) {
        sl_conn_close(c, E_NOMEM, "starling: cannot open the control stream");
        return NULL; /* freed by on_closed */
    }
    if ((kind == LK_BROWSER || kind == LK_GATEWAY) &&
        sl__map_put(&k->greeting, (uintptr_t)l, l) != SL_OK) {
        sl_conn_close(c, E_NOMEM, "starling: out of memory");
        return NULL;
    }
    return l;
}

static bool is_wt_session(const sl_conn *c)
{
#ifdef __EMSCRIPTEN__
    (void)c;
    return false;
#else
    sl_wt_info wi;
    return sl_conn_wt_info(c, &wi) == SL_OK;
#endif
}

/* Browser side: the session to our gateway is up; say hello (asking for
 * the id we had, if we had one). The link counts once welcomed. */
static void gateway_ready(sl__cluster *k, sl_conn *c, dial *d)
{
    plink *l = link_new(k, c, LK_GATEWAY, 0);
    if (!l)
        return;
    if (d) {
        d->pending = NULL;
        d->up = l;
        d->backoff_ms = 0;
        d->attempts = 0;
        l->dial = d;
    }
    sl_pack p;
    sl_pack_init(&p, &k->mem);
    bool again = k->welcomed_once && k->has_proof;
    msgpack_pack_array(&p.pk, again ? 2 : 1);
    msgpack_pack_uint64(&p.pk, again ? k->node : 0);
    if (again) {
        msgpack_pack_bin(&p.pk, ID_PROOF);
        msgpack_pack_bin_body(&p.pk, k->proof, ID_PROOF);
    }
    if (send_node(k, l, NT_HELLO, &p) != SL_OK)
        sl_conn_close(c, E_NOMEM, "starling: cannot say hello");
    sl_pack_fini(&p);
}

static void on_ready(sl_conn *c, void *ud)
{
    sl__cluster *k = ud;
    dial *d = sl_conn_is_client(c) ? dial_of_conn(k, c) : NULL;
    if (k->set.browser) {
        gateway_ready(k, c, d);
        return;
    }
    if (!sl_conn_is_client(c) && is_wt_session(c)) {
        /* A browser node: it gets its id when it says hello. */
        if (!k->gateway)
            sl_conn_close(c, E_FORBIDDEN, "starling: this node is not a gateway");
        else
            (void)link_new(k, c, LK_BROWSER, 0);
        return;
    }
    uint64_t node;
    if (sl_conn_peer_node_id(c, &node) != SL_OK) {
        sl_conn_close(c, E_NOCERT, "starling: peer presented no certificate");
        return;
    }
    if (node == k->node) {
        sl_conn_close(c, E_DUPLICATE, "starling: connected to itself");
        return;
    }
    plink *old = sl__map_get(&k->peers, node);
    if (old && old->c != c) {
        if (!preferred(k, c)) {
            sl_conn_close(c, E_DUPLICATE, "starling: duplicate connection");
            if (d) { /* the other connection serves this dial */
                d->pending = NULL;
                d->node = node;
                d->up = old;
                old->dial = d;
                d->backoff_ms = 0;
            }
            return;
        }
        old->current = false;
        sl__map_del(&k->peers, node);
        sl_conn_close(old->c, E_DUPLICATE, "starling: duplicate connection");
    }
    plink *l = link_new(k, c, LK_NODE, node);
    if (!l)
        return;
    if (sl__map_put(&k->peers, node, l) != SL_OK) {
        sl_conn_close(c, E_NOMEM, "starling: out of memory");
        return;
    }
    l->current = true;
    /* A node this gateway already routed browser traffic to? Now direct. */
    if (sl__map_get(&k->routes, node))
        sl__map_del(&k->routes, node);
    if (d) {
        d->pending = NULL;
        d->node = node;
        d->up = l;
        d->backoff_ms = 0;
        d->attempts = 0;
        d->failures = 0;
        l->dial = d;
    }
    if (k->gateway)
        announce_all(k, l);
    k->st.peers_up++;
    if (!old && k->on_peer)
        k->on_peer(node, true, k->ud);
}

/* The browser nodes we reached through gateway link `l` (freed) are gone. */
static void routes_down(sl__cluster *k, const plink *l)
{
    for (size_t i = 0; i < k->routes.cap; i++) {
        if (!k->routes.slots[i].key || k->routes.slots[i].val != l)
            continue;
        uint64_t id = k->routes.slots[i].key;
        sl__map_del(&k->routes, id);
        sl__core_node_down(k->core, id, SL_ERR_NOCONN, SL_REASON_NOCONNECTION);
        i--; /* backward-shift deletion may have moved an entry into slot i */
    }
}

static void on_closed(sl_conn *c, const sl_close_info *why, void *ud)
{
    sl__cluster *k = ud;
    plink *l = sl_conn_data(c);
    dial *d = NULL;
    if (!l || (void *)l == (void *)k) {
        /* A connection that never became a link: a failed dial? */
        d = dial_of_conn(k, c);
        if (d && !k->closing) {
            if (!k->set.quiet && d->attempts == 1)
                fprintf(stderr, "starling: connect to %s:%u failed: %s%s%s; retrying\n", d->host,
                        d->port, sl_strerror(why->err ? why->err : SL_ERR_NOCONN),
                        why->reason && *why->reason ? ": " : "", why->reason ? why->reason : "");
            dial_failed(d, why->err, why->reason);
            dial_retry_later(k, d);
        } else if (!d && !k->closing) {
            /* An inbound peer that never became a link (e.g. its
             * certificate was refused): say so, or nobody will know. */
            k->st.handshakes_failed++;
            if (!k->set.quiet && why->err)
                fprintf(stderr, "starling: inbound connection refused: %s%s%s\n",
                        sl_strerror(why->err), why->reason && *why->reason ? ": " : "",
                        why->reason ? why->reason : "");
        }
        return;
    }
    uint64_t node = l->node;
    uint8_t kind = l->kind;
    bool was_current = l->current;
    d = l->dial;
    if (l->claim && sl__map_get(&k->claims, l->claim) == l) /* gone before its old session */
        sl__map_del(&k->claims, l->claim);
    if (d && kind == LK_GATEWAY && !l->welcomed && !l->late) /* up, but no welcome came */
        dial_failed(d, why->err,
                    why->reason && *why->reason ? why->reason : "closed before the welcome");
    if (was_current)
        sl__map_del(&k->peers, node);
    if (k->uplink == l)
        k->uplink = NULL;
    link_free(k, l);
    if (d && !k->closing) {
        d->up = NULL;
        dial_retry_later(k, d);
    }
    if (!was_current)
        return;
    /* Everything waiting on that node learns it now, not at a deadline:
     * for a gateway's link, on every node behind it too. */
    if (kind == LK_GATEWAY) {
        sl__core_node_down(k->core, SL__NODE_ALL, SL_ERR_NOCONN, SL_REASON_NOCONNECTION);
    } else {
        sl__core_node_down(k->core, node, SL_ERR_NOCONN, SL_REASON_NOCONNECTION);
        if (kind == LK_BROWSER && !k->closing)
            announce(k, NULL, &node, 1, false);
        routes_down(k, l);
    }
    if (k->on_peer)
        k->on_peer(node, false, k->ud);
    /* A new session of that browser node proved its id: its turn now. */
    plink *next = kind == LK_BROWSER ? sl__map_del(&k->claims, node) : NULL;
    if (next && !k->closing) {
        next->claim = 0;
        int rc = welcome(k, next, node, NULL);
        if (rc) {
            say(k, next, "cannot welcome the new session", rc);
            sl_conn_close(next->c, E_HELLO, "starling: bad hello");
        }
    }
}

static void on_stream_open(sl_stream *s, void *ud)
{
    plink *l = sl_conn_data(sl_stream_conn(s));
    if (!l) {
        sl_stream_stop_sending(s, E_PROTOCOL);
        return;
    }
    bool bidi = (sl_stream_id(s) & 2) == 0;
    lane *ln = lane_new(l, s, bidi ? R_ASK_IN : R_UNKNOWN, (uint8_t)sl_stream_prio(s));
    if (!ln) {
        sl_stream_stop_sending(s, E_NOMEM);
        if (bidi)
            sl_stream_reset(s, E_NOMEM);
    }
    (void)ud;
}

static void on_stream_data(sl_stream *s, const uint8_t *data, size_t len, bool fin, void *ud)
{
    sl__cluster *k = ud;
    lane *ln = sl_stream_data(s);
    if (!ln || ln->dead || ln->role == R_CTL_OUT || ln->role == R_LANE_OUT) {
        sl_stream_consume(s, len);
        return;
    }
    ln->recv_total += len;
    if (ln->blocked) {
        if (hold(k, ln, data, len)) {
            unpause(k, ln);
            lane_fail(k, ln, "no memory to hold a paused lane", SL_ERR_NOMEM);
            sl_stream_consume(s, len);
        }
        return;
    }
    const uint8_t *p = data;
    size_t n = len;
    plink *l = ln->l;
    if (preamble(k, ln, &p, &n) == SL_OK)
        (void)feed(k, ln, p, n);
    if (ln->dead) {
        ln->consumed = ln->recv_total;
        sl_stream_consume(s, len);
    } else {
        settle(ln);
    }
    budget_resume(k, l); /* a big frame done here may make room for others */
    (void)fin;
}

static void on_stream_writable(sl_stream *s, void *ud)
{
    sl__cluster *k = ud;
    lane *ln = sl_stream_data(s);
    if (!ln)
        return;
    if (ln->pend && pump(k, ln) != SL_OK) {
        big_put(k, ln->pend, ln->pend_cap);
        ln->pend = NULL;
    }
    if (ln->pend)
        return;
    if (ln->fin_after) {
        ln->fin_after = false;
        sl_stream_finish(s);
    }
    if (ln->nwait)
        notify_waiters(k, ln);
    if (ln->fw_head)
        fw_resume(k, ln);
}

/* The peer reset its side: for an ask we answer, that is the cancel. */
static void on_stream_reset(sl_stream *s, uint64_t code, void *ud)
{
    sl__cluster *k = ud;
    lane *ln = sl_stream_data(s);
    if (!ln)
        return;
    if (ln->pipe) /* a relayed ask: the other half ends the same way */
        pipe_cut(k, ln, code);
    if (ln->lpipe)
        lpipe_cut(k, ln, code == E_NOMEM ? SL_ERR_NOMEM : SL_ERR_NOCONN);
    if (ln->role == R_ASK_IN && ln->key && ln->blocked) {
        /* Never reached the replier: just forget it. */
        sl__map_del(&k->asks_in, ln->key);
        ln->key = 0;
        sl_stream_reset(s, E_CANCELLED);
    } else if (ln->role == R_ASK_IN && ln->key) {
        sl__map_del(&k->asks_in, ln->key);
        ln->key = 0;
        sl_msg m = sys_msg(ln->asker, ln->to, SL_KIND_CANCEL, SL_PRIO_CRITICAL, ln->corr, 0);
        (void)sl__core_inject(k->core, &m, 0);
        sl_stream_reset(s, E_CANCELLED); /* half-sent answer bytes stop too */
        k->st.asks_cancelled++;
    }
    /* Our ask, and the replier's node gave up on it (0x13: no memory). */
    int err = code == E_NOMEM      ? SL_ERR_NOMEM
              : code == E_TOO_BIG  ? SL_ERR_MSG_TOO_BIG
              : code == E_PROTOCOL ? SL_ERR_PROTO
                                   : SL_ERR_NOCONN;
    ask_out_fail(k, ln, err);
    if (ln->blocked)
        unpause(k, ln);
    ln->dead = true;
    big_drop(k, ln); /* a big frame cut off, or never to be delivered */
}

static void on_stream_stop_sending(sl_stream *s, uint64_t code, void *ud)
{
    on_stream_reset(s, code, ud);
}

static void on_stream_closed(sl_stream *s, void *ud)
{
    sl__cluster *k = ud;
    lane *ln = sl_stream_data(s);
    if (!ln)
        return;
    ln->s = NULL;
    if (ln->blocked) {
        /* Its bytes all arrived but some wait for room: the lane lives on,
         * detached, until they are delivered (sl__cluster_room). */
        ln->closed = true;
        return;
    }
    if (ln->pipe) /* a relayed ask closed before its answer went through */
        pipe_cut(k, ln, E_CANCELLED);
    if (ln->lpipe)
        lpipe_cut(k, ln, SL_ERR_NOCONN);
    /* (at the ask's class, as sl__core_node_down() uses) */
    if (ln->role == R_ASK_OUT && ln->key && !ln->dead) {
        /* Closed without an answer: the asker hears it now. */
        sl_msg m = sys_msg(ln->to, ln->asker, SL_KIND_FAIL, ln->prio, ln->corr, SL_ERR_NOCONN);
        (void)sl__core_inject(k->core, &m, 0);
    } else if (ln->role == R_ASK_IN && ln->key) {
        /* Gone before we answered: the replier stops working on it. */
        sl_msg m = sys_msg(ln->asker, ln->to, SL_KIND_CANCEL, ln->prio, ln->corr, 0);
        (void)sl__core_inject(k->core, &m, 0);
    }
    lane_free(k, ln);
}

static void on_datagram(sl_conn *c, const uint8_t *data, size_t len, void *ud)
{
    sl__cluster *k = ud;
    plink *l = sl_conn_data(c);
    if (!l || (void *)l == (void *)k)
        return;
    sl_envelope e;
    int rc = decode(k, l, data, len, &e);
    if (rc == SL_OK && e.kind != SL_KIND_SEND)
        rc = SL_ERR_PROTO;
    if (rc) {
        say(k, l, "datagram refused", rc);
        return;
    }
    sl_msg m;
    msg_of(&m, &e);
    m.flags = SL_MSG_UNRELIABLE;
    k->st.datagrams_recv++;
    if (e.to.node != k->node) { /* a gateway relays it, or drops it like the network may */
        plink *out = link_for(k, e.to.node);
        const uint8_t *f;
        size_t n;
        if (out && out != l && out->current && encode(k, out, &m, false, &f, &n) == SL_OK &&
            sl_datagram_send(out->c, f, n) == SL_OK)
            k->st.forwarded++;
        else
            k->st.fwd_failed++;
        return;
    }
    (void)sl__core_inject(k->core, &m, SL__INJECT_LOSSY);
}

/* ------------------------------------------------------ time, dials */

/* WebTransport sessions that did not say HELLO (gateway) or were not
 * welcomed (browser) within hello_timeout_ms of the tick that first saw
 * them are closed: a page that never says hello holds nothing for long, and
 * a browser node that reached a WebTransport server which is no Starling
 * gateway (or one that never answers) says so and tries again. */
static void greeting_expire(sl__cluster *k, uint64_t now_ns)
{
    uint64_t limit = (uint64_t)k->set.hello_timeout_ms * 1000000ull;
    for (size_t i = 0; i < k->greeting.cap; i++) {
        plink *l = k->greeting.slots[i].key ? k->greeting.slots[i].val : NULL;
        if (!l)
            continue;
        if (l->welcomed || l->claim) { /* greeted (a claim's welcome waits for its old session) */
            sl__map_del(&k->greeting, (uintptr_t)l);
            i--; /* backward-shift deletion may have moved an entry into slot i */
            continue;
        }
        if (!l->born_ns) {
            l->born_ns = now_ns;
            continue;
        }
        if (now_ns - l->born_ns < limit)
            continue;
        sl__map_del(&k->greeting, (uintptr_t)l);
        i--; /* backward-shift deletion may have moved an entry into slot i */
        char why[112];
        if (l->kind == LK_BROWSER) {
            snprintf(why, sizeof why, "starling: no hello within %u ms", k->set.hello_timeout_ms);
            say(k, l, "a browser session said no hello", SL_ERR_TIMEOUT);
        } else {
            snprintf(why, sizeof why,
                     "starling: no welcome within %u ms: not a Starling gateway, or it is stuck",
                     k->set.hello_timeout_ms);
            l->late = true;
            if (l->dial)
                dial_failed(l->dial, SL_ERR_TIMEOUT, why + strlen("starling: "));
        }
        sl_conn_close(l->c, E_HELLO, why);
    }
}

void sl__cluster_tick(sl__cluster *k, uint64_t now_ns)
{
    k->now_ns = now_ns;
    if (k->core)
        sl__core_trim(k->core, now_ns);
    if (k->spare && now_ns - k->spare_ns > SPARE_NS) { /* no big message for a while */
        c_free(k, k->spare);
        k->spare = NULL;
        k->spare_cap = 0;
    }
    if (k->closing)
        return;
    greeting_expire(k, now_ns);
    for (dial *d = k->dials; d; d = d->next) {
        if (d->up || d->pending || now_ns < d->retry_ns)
            continue;
        d->attempts++;
        k->st.dials++;
        int rc = sl_transport_connect(k->t, d->host, d->port, k, &d->pending);
        if (rc) {
            dial_failed(d, rc, sl_strerror(rc));
            dial_retry_later(k, d);
        }
    }
    /* Finish lanes idle for a while whose bytes were all acknowledged. */
    uint64_t idle = (uint64_t)k->set.lane_idle_ms * 1000000ull;
    for (size_t i = 0; i < k->peers.cap; i++) {
        plink *l = k->peers.slots[i].key ? k->peers.slots[i].val : NULL;
        if (!l)
            continue;
        budget_resume(k, l);
        for (lane *ln = l->lanes; ln; ln = ln->next) {
            if (ln->role != R_LANE_OUT || !ln->key || ln->pend || now_ns - ln->used_ns < idle)
                continue;
            sl_stream_stats ss;
            if (sl_stream_stats_get(ln->s, &ss) != SL_OK || ss.buffered)
                continue;
            sl__map_del(&l->lanes_out, ln->key);
            ln->key = 0;
            sl_stream_finish(ln->s);
            k->st.lanes_closed++;
        }
    }
}

int sl__cluster_dial(sl__cluster *k, const char *host, uint16_t port)
{
    if (!host || strlen(host) >= sizeof(((dial *)0)->host) || !port)
        return SL_ERR_INVAL;
    for (dial *d = k->dials; d; d = d->next)
        if (d->port == port && strcmp(d->host, host) == 0)
            return SL_OK; /* already kept connected */
    dial *d = c_alloc(k, sizeof *d);
    if (!d)
        return SL_ERR_NOMEM;
    strcpy(d->host, host);
    d->port = port;
    d->attempts = 1;
    k->st.dials++;
    int rc = sl_transport_connect(k->t, host, port, k, &d->pending);
    if (rc) {
        c_free(k, d);
        return rc;
    }
    d->next = k->dials;
    k->dials = d;
    return SL_OK;
}

int sl__cluster_dial_failure(const sl__cluster *k, const char *host, uint16_t port,
                             uint32_t *failures, int *err, const char **reason)
{
    for (const dial *d = k->dials; d; d = d->next) {
        if (host && (d->port != port || strcmp(d->host, host) != 0))
            continue;
        *failures = d->failures;
        *err = d->failures ? d->fail_err : SL_OK;
        *reason = d->failures ? d->fail_reason : "";
        return SL_OK;
    }
    return SL_ERR_NOTFOUND;
}

bool sl__cluster_connected(const sl__cluster *k, uint64_t node)
{
    return sl__map_get(&k->peers, node) != NULL;
}

void sl__cluster_stats_get(const sl__cluster *k, sl__cluster_stats *out)
{
    *out = k->st;
}

/* ------------------------------------------------------------ lifecycle */

void sl__cluster_settings_default(sl__cluster_settings *s)
{
    memset(s, 0, sizeof *s);
    s->lane_idle_ms = 5000;
    s->backoff_min_ms = 100;
    s->backoff_max_ms = 5000;
    s->hello_timeout_ms = 5000;
}

int sl__cluster_new(const sl_transport_settings *ts, const sl__cluster_settings *cs, sl_core *core,
                    const sl_mem *mem, size_t max_message, sl__cluster **out)
{
    sl__cluster *k = mem->calloc(1, sizeof *k, mem->ud);
    if (!k)
        return SL_ERR_NOMEM;
    k->mem = *mem;
    k->core = core;
    k->max_message = max_message;
    k->big_budget = 2 * (max_message + SL_ENVELOPE_MAX_OVERHEAD);
    if (cs)
        k->set = *cs;
    else
        sl__cluster_settings_default(&k->set);
    if (!k->set.backoff_min_ms)
        k->set.backoff_min_ms = 100;
    if (k->set.backoff_max_ms < k->set.backoff_min_ms)
        k->set.backoff_max_ms = k->set.backoff_min_ms;
    if (!k->set.lane_idle_ms)
        k->set.lane_idle_ms = 5000;
    if (!k->set.hello_timeout_ms)
        k->set.hello_timeout_ms = 5000;
    sl_limits_default(&k->lim);
    if (max_message > k->lim.max_bin_len) {
        /* The node allows more than the schema's default: its decoder must too. */
        k->lim.max_bin_len = max_message;
        if (sl_envelope_max_size(max_message) > k->lim.max_size)
            k->lim.max_size = sl_envelope_max_size(max_message);
    }
    sl__map_init(&k->peers, &k->mem);
    sl__map_init(&k->asks_out, &k->mem);
    sl__map_init(&k->asks_in, &k->mem);
    sl__map_init(&k->paused, &k->mem);
    sl__map_init(&k->routes, &k->mem);
    sl__map_init(&k->lasks, &k->mem);
    sl__map_init(&k->relays, &k->mem);
    sl__map_init(&k->claims, &k->mem);
    sl__map_init(&k->greeting, &k->mem);
    k->gateway = ts->webtransport != NULL && !k->set.browser;
    sl_transport_settings s = *ts;
    s.ud = k;
    s.cb.on_conn_ready = on_ready;
    s.cb.on_conn_closed = on_closed;
    s.cb.on_stream_open = on_stream_open;
    s.cb.on_stream_data = on_stream_data;
    s.cb.on_stream_writable = on_stream_writable;
    s.cb.on_stream_reset = on_stream_reset;
    s.cb.on_stream_stop_sending = on_stream_stop_sending;
    s.cb.on_stream_closed = on_stream_closed;
    s.cb.on_datagram = on_datagram;
    /* Node to node is mutual: the server side asks every client for its
     * certificate (verified per s.tls.verify), so every peer has a node id.
     * (Browsers are not asked: their node id comes from their gateway.) */
    s.tls.require_client_cert = !k->set.browser;
    int rc = k->set.make_transport ? k->set.make_transport(&s, &k->t) : SL_ERR_UNSUPPORTED;
#ifndef __EMSCRIPTEN__
    if (!k->set.make_transport)
        rc = sl_quic_new(&s, &k->t);
#endif
    if (rc) {
        sl__map_fini(&k->peers);
        sl__map_fini(&k->asks_out);
        sl__map_fini(&k->asks_in);
        sl__map_fini(&k->paused);
        sl__map_fini(&k->routes);
        sl__map_fini(&k->lasks);
        sl__map_fini(&k->relays);
        sl__map_fini(&k->claims);
        sl__map_fini(&k->greeting);
        mem->free(k, mem->ud);
        return rc;
    }
    if (!k->set.browser)
        sl_transport_node_id(k->t, &k->node);
    *out = k;
    return SL_OK;
}

uint64_t sl__cluster_node_id(const sl__cluster *k)
{
    return k->node;
}

int sl__cluster_expose(sl__cluster *k, const char *name, sl_id actor)
{
    if (k->set.browser)
        return SL_ERR_UNSUPPORTED;
    int rc = set_exposed(k, name, name ? strlen(name) : 0, actor);
    if (rc == SL_OK && k->gateway)
        tell_exposed(k);
    return rc;
}

int sl__cluster_exposed(const sl__cluster *k, size_t i, const char **name, sl_id *actor)
{
    if (i >= k->nexpo)
        return SL_ERR_NOTFOUND;
    *name = k->expo[i].name;
    *actor = k->expo[i].id;
    return SL_OK;
}
sl_transport *sl__cluster_transport(const sl__cluster *k)
{
    return k->t;
}
void sl__cluster_set_core(sl__cluster *k, sl_core *core)
{
    k->core = core;
}

void sl__cluster_on_peer(sl__cluster *k, void (*fn)(uint64_t, bool, void *), void *ud)
{
    k->on_peer = fn;
    k->ud = ud;
}

static void transport_closed(sl_transport *t, void *ud)
{
    sl__cluster *k = ud;
    (void)t;
    if (k->on_closed)
        k->on_closed(k->closed_ud);
}

void sl__cluster_close(sl__cluster *k, void (*on_closed_cb)(void *), void *ud)
{
    k->closing = true;
    k->on_closed = on_closed_cb;
    k->closed_ud = ud;
    sl_transport_close(k->t, transport_closed, k);
}

void sl__cluster_del(sl__cluster *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->peers.cap; i++) {
        plink *l = k->peers.slots[i].key ? k->peers.slots[i].val : NULL;
        if (!l)
            continue;
        for (lane *ln = l->lanes; ln; ln = ln->next)
            if (ln->s)
                sl_stream_set_data(ln->s, NULL);
        for (lane *ln = l->lanes; ln; ln = ln->next)
            ln->s = NULL; /* the transport frees them */
        link_free(k, l);
    }
    sl_transport_del(k->t);
    while (k->dials) {
        dial *d = k->dials;
        k->dials = d->next;
        c_free(k, d);
    }
    sl__map_fini(&k->peers);
    sl__map_fini(&k->asks_out);
    sl__map_fini(&k->asks_in);
    sl__map_fini(&k->paused);
    sl__map_fini(&k->routes);
    sl__map_fini(&k->lasks);
    sl__map_fini(&k->relays);
    sl__map_fini(&k->claims);
    sl__map_fini(&k->greeting);
    c_free(k, k->expo);
    c_free(k, k->buf);
    c_free(k, k->out);
    c_free(k, k->spare);
    sl_mem mem = k->mem;
    mem.free(k, mem.ud);
}
