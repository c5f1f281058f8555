/*
 * starling/actor.h: the actor core.
 *
 * An agent is a behaviour (three callbacks) plus private state, addressed by an
 * sl_id. The core (sl_core) owns the actors of one node: their mailboxes with
 * five priority classes, the scheduler, timers, ask/reply, monitors, links and
 * the local name registry. The core does no I/O and reads no clock: the
 * platform (runtime/ natively, wasm/ in a browser) passes the time into
 * sl_core_run() and asks sl_core_next_deadline() when to come back.
 *
 * One thread owns a core; no function here is thread-safe.
 *
 * Ownership rule for payloads: every send/ask/reply function copies the
 * payload bytes it is given; the caller keeps its buffer. A message handed to
 * on_message is valid only for the duration of that call.
 */
#ifndef STARLING_ACTOR_H
#define STARLING_ACTOR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- ids */

/*
 * An actor id: the node it lives on and a local id that is never reused on
 * that node (a 64-bit counter), so the id of a dead actor never aliases a new
 * one. Local id 0 is "no actor".
 */
typedef struct sl_id {
    uint64_t node;  /* node id (derived from the node's TLS key later) */
    uint64_t local; /* per-node counter, never reused; 0 = none */
} sl_id;

#define SL_ID_NONE ((sl_id){0, 0})
/* Length of the longest printable id plus the terminating NUL. */
#define SL_ID_STRLEN 40

/* True if the two ids name the same actor. */
static inline bool sl_id_eq(sl_id a, sl_id b) { return a.node == b.node && a.local == b.local; }
/* True if the id is SL_ID_NONE. */
static inline bool sl_id_is_none(sl_id a) { return a.local == 0; }

/*
 * Printable form: "<node as 16 hex digits>.<local in decimal>", e.g.
 * "00000000000000a1.42". Writes at most `size` bytes including the NUL.
 * Returns the length written (excluding NUL), or SL_ERR_INVAL if `size` is
 * too small.
 */
SL_EXTERN int sl_id_format(sl_id id, char *buf, size_t size);
/*
 * Parse the printable form: exactly 16 hex digits (either case), a dot, and
 * 1 to 20 decimal digits (leading zeros allowed) that fit in 64 bits; nothing
 * else. Returns SL_OK or SL_ERR_BAD_ID.
 */
SL_EXTERN int sl_id_parse(const char *text, sl_id *out);

/* ---------------------------------------------------------- messages */

/* What a message is, in sl_msg.kind. */
typedef enum sl_kind {
    SL_KIND_SEND = 0,   /* a plain message (sl_send, timers) */
    SL_KIND_ASK = 1,    /* a request: answer with sl_reply*(); corr = ask id */
    SL_KIND_REPLY = 2,  /* the single final reply to one of my asks */
    SL_KIND_CHUNK = 3,  /* one chunk of a streamed reply; more follow */
    SL_KIND_END = 4,    /* last chunk of a streamed reply (may carry data) */
    SL_KIND_FAIL = 5,   /* my ask failed: status = sl_err (TIMEOUT, NOACTOR, ACTOR_DOWN, ...) */
    SL_KIND_CANCEL = 6, /* the asker cancelled (or gave up on) ask `corr`; stop replying */
    SL_KIND_DOWN = 7,   /* a monitored actor stopped: status = sl_reason, corr = monitor ref */
    SL_KIND_EXIT = 8    /* a linked actor stopped (only when trapping exits): status = sl_reason */
} sl_kind;
#define SL_KIND_COUNT 9

/*
 * Kinds that travel only between nodes: the core hands them to the
 * platform's `remote` hook (sl_core_settings) and takes them back through
 * the platform's inject path. An actor never receives them.
 *   MONITOR   from = watcher, to = target, corr = the watcher's monitor ref
 *   DEMONITOR same fields: the watcher dropped that monitor
 *   LINK      from = one end, to = the other end
 *   UNLINK    same fields: the link is gone
 *   STOP      from = the requester (or none), to = the actor to stop
 * DOWN and EXIT also travel (from = the actor that stopped).
 */
enum {
    SL_KIND_MONITOR = 9,
    SL_KIND_DEMONITOR = 10,
    SL_KIND_LINK = 11,
    SL_KIND_UNLINK = 12,
    SL_KIND_STOP = 13, /* sl_stop() of a remote actor: status = the reason */
    /* Between two nodes only, never given to the core: hello/welcome of a
     * browser node, routes through a gateway, the exposed list. type says
     * which (runtime/README.md); from/to are the nodes with local 0. */
    SL_KIND_NODE = 14
};
#define SL_KIND_WIRE_COUNT 15

/* sl_msg.flags */
enum {
    /* Sent with sl_send_unreliable(): may be dropped, never retransmitted. */
    SL_MSG_UNRELIABLE = 1
};

/*
 * Message type of the notice "you may send again": a send to an actor on
 * another node returned SL_ERR_AGAIN (its lane's outbound buffer was full);
 * once the lane has drained, the sender receives one SL_KIND_SEND message of
 * this type with from = that destination and no payload.
 */
#define SL_TYPE_RESUME 0xFFFFFF01u

/* Why an actor stopped. DOWN and EXIT messages carry it in `status`, with
 * `from` = the actor that stopped. */
typedef enum sl_reason {
    SL_REASON_NORMAL = 0,       /* stopped on purpose */
    SL_REASON_CRASH = 1,        /* a callback returned an error; code = that error */
    SL_REASON_KILLED = 2,       /* sl_kill(): cannot be trapped */
    SL_REASON_NOPROC = 3,       /* the actor did not exist (monitor/link of a dead id) */
    SL_REASON_NOCONNECTION = 4, /* its node became unreachable */
    SL_REASON_SHUTDOWN = 5      /* stopped by its supervisor or by node shutdown */
} sl_reason;

/* Name of a reason ("normal", "crash", ...). */
SL_EXTERN const char *sl_reason_name(int reason);

/*
 * A message as an actor sees it. Read-only; valid during on_message only.
 */
typedef struct sl_msg {
    sl_id from;          /* sender (SL_ID_NONE when sent from outside any actor) */
    sl_id to;            /* receiver */
    uint64_t corr;       /* correlation: ask id, monitor ref, timer id, or 0 */
    uint32_t type;       /* user message type (user-defined meaning) */
    uint8_t kind;        /* sl_kind */
    uint8_t prio;        /* sl_prio the message was sent with */
    uint16_t flags;      /* SL_MSG_* (SL_MSG_UNRELIABLE), else 0 */
    int32_t status;      /* FAIL: sl_err; DOWN/EXIT: sl_reason; else 0 */
    int32_t code;        /* DOWN/EXIT: the code the actor stopped with (the crash code
                            for CRASH, the sl_exit() code otherwise); else 0 */
    size_t len;          /* payload length in bytes */
    const uint8_t *data; /* payload (msgpack bytes by convention), NULL if len is 0 */
} sl_msg;

/*
 * A request handle: who asked, and which of their asks. Save it to reply later
 * (e.g. a streamed reply across several turns).
 */
typedef struct sl_req {
    sl_id asker;
    uint64_t corr;
    uint8_t prio;
} sl_req;

/* The request handle of an SL_KIND_ASK message. */
static inline sl_req sl_req_of(const sl_msg *m)
{
    sl_req r;
    r.asker = m->from;
    r.corr = m->corr;
    r.prio = m->prio;
    return r;
}

/* ------------------------------------------------------------ actors */

typedef struct sl_core sl_core;   /* the actor system of one node */
typedef struct sl_actor sl_actor; /* an actor, as seen from inside its callbacks */

/*
 * A behaviour. Any callback may be NULL ("not interested"). A non-zero return
 * from on_start or on_message crashes the actor (reason CRASH, code = the
 * value returned); use sl_exit() to stop normally. on_stop is called exactly
 * once for every actor whose on_start was called (also when on_start
 * failed, so it can free partial state), and never otherwise.
 */
typedef struct sl_behavior {
    /* Called once before any message. `arg` is the spawn argument. */
    int (*on_start)(sl_actor *self, void *arg);
    /* Called for each message. `m` is valid during this call only. */
    int (*on_message)(sl_actor *self, const sl_msg *m);
    /* Called once when the actor stops, for any reason. It may still send. */
    void (*on_stop)(sl_actor *self, int reason);
    /*
     * If non-zero, the core allocates this many zeroed bytes of state with
     * the actor (sl_state() returns them) and frees them after on_stop.
     * If zero, sl_state() returns the spawn argument.
     */
    size_t state_size;
    /* A name for logs and stats; may be NULL. */
    const char *name;
} sl_behavior;

/* What a full mailbox does with a new message. */
typedef enum sl_overflow {
    SL_OVERFLOW_REJECT = 0,  /* default: the sender gets SL_ERR_MAILBOX_FULL */
    SL_OVERFLOW_DROP_NEW = 1, /* the new message is dropped and counted; send returns SL_OK */
    SL_OVERFLOW_DROP_OLDEST = 2 /* the oldest user message of the least important non-empty
                                   class (BACKGROUND first) is dropped and counted */
} sl_overflow;

/* Options for sl_spawn; fill with sl_spawn_opts_default(). */
typedef struct sl_spawn_opts {
    uint32_t mailbox_capacity; /* max queued user messages; 0 = the core default */
    uint8_t overflow;          /* sl_overflow */
    bool trap_exit;            /* receive EXIT messages instead of dying with linked actors */
    sl_id link_to;             /* if not none: link to this actor atomically at spawn */
    const char *register_as;   /* if not NULL: register this name atomically at spawn */
} sl_spawn_opts;

SL_EXTERN void sl_spawn_opts_default(sl_spawn_opts *opts);

/* Settings of a core; fill with sl_core_settings_default(). New fields are appended. */
typedef struct sl_core_settings {
    uint64_t node_id;           /* node part of every local actor id */
    const sl_mem *mem;          /* allocator; NULL = C library */
    uint32_t mailbox_capacity;  /* default per-actor capacity (default 4096) */
    uint32_t batch;             /* max messages per actor per turn (default 64) */
    size_t max_message_size;    /* max payload bytes (default 64 MiB) */
    /*
     * Called (from inside a core function) when the core gets work while the
     * platform may be idle: an actor became runnable, or the earliest deadline
     * moved earlier (unless `deadline` below is set). The platform should then
     * call sl_core_run() soon.
     */
    void (*wake)(sl_core *core, void *ud);
    /* Called for each dead letter (send to an unknown/stopped actor); may be NULL. */
    void (*dead_letter)(sl_core *core, sl_id to, uint32_t type, void *ud);
    void *ud; /* passed to wake, dead_letter and clock; also sl_core_data() */
    /*
     * The platform's monotonic clock in ns, or NULL. The core never reads a
     * clock itself: inside sl_core_run() it uses the time passed in; outside
     * (a timer or ask started from an I/O callback, or before the first run)
     * it asks this callback so deadlines are not computed from a stale time.
     */
    uint64_t (*clock)(void *ud);
    /*
     * Messages for actors on other nodes (m->to.node != node_id): sends,
     * asks, replies, cancels. The platform (the node's cluster layer)
     * encodes and routes them; m and its payload are valid during the call
     * only. Return SL_OK once taken, or the error the sender should see
     * (SL_ERR_NOCONN, SL_ERR_AGAIN, SL_ERR_MSG_TOO_BIG, ...). NULL: such
     * sends are dead letters (SL_ERR_NOACTOR).
     */
    int (*remote)(sl_core *core, const sl_msg *m, void *ud);
    /*
     * A mailbox that refused a remote delivery (the platform's inject path
     * returned SL_ERR_AGAIN because it was full) has room again (it is at
     * most half full), or its actor stopped. The platform resumes reading
     * the lanes it paused for `actor`. May be NULL.
     */
    void (*room)(sl_core *core, sl_id actor, void *ud);
    /*
     * The largest payload sl_send_unreliable() can carry to `node` now
     * (0 = none: not connected, or the peer takes no datagrams). NULL: 0.
     */
    size_t (*remote_unreliable_max)(sl_core *core, uint64_t node, void *ud);
    /*
     * Called (from inside a core function, never during sl_core_run()) when
     * the earliest deadline moved earlier (a timer or an ask with a deadline
     * was started from outside the core's run) and no run is due for it: the
     * platform re-arms its timer for sl_core_next_deadline(); it may call
     * only that and sl_core_has_work(). This spares a run of the core that
     * would do nothing but be asked for its next deadline. NULL: wake is
     * called instead.
     */
    void (*deadline)(sl_core *core, void *ud);
} sl_core_settings;

SL_EXTERN void sl_core_settings_default(sl_core_settings *s);

/*
 * Create a core. `settings` may be NULL for defaults. Returns SL_OK,
 * SL_ERR_NOMEM, or SL_ERR_INVAL.
 */
SL_EXTERN int sl_core_new(const sl_core_settings *settings, sl_core **out);

/*
 * Destroy a core. Any actor still alive is stopped first (on_stop with reason
 * SHUTDOWN, children before supervisors is not guaranteed: use
 * sl_core_shutdown() and run the core for an orderly stop). Frees everything.
 */
SL_EXTERN void sl_core_del(sl_core *core);

/*
 * Ask every actor to stop with reason SHUTDOWN. Actors stop during the next
 * sl_core_run() calls; sl_core_alive() reaches 0. New spawns fail with
 * SL_ERR_STOPPED afterwards.
 */
SL_EXTERN void sl_core_shutdown(sl_core *core);

/*
 * Run the core at time `now_ns` (monotonic nanoseconds; must not go
 * backwards): fire the timers that are due, then run actors until none is
 * runnable or `max_msgs` messages were processed (0 = no limit). Returns the
 * number of messages processed. Must not be called from inside a callback.
 */
SL_EXTERN size_t sl_core_run(sl_core *core, uint64_t now_ns, size_t max_msgs);

/* True if some actor is runnable now (sl_core_run() would do work). */
SL_EXTERN bool sl_core_has_work(const sl_core *core);

/* The earliest pending deadline in ns, or UINT64_MAX if there is none. */
SL_EXTERN uint64_t sl_core_next_deadline(const sl_core *core);

/* The time last passed in, in ns. */
SL_EXTERN uint64_t sl_core_now(const sl_core *core);

/* The node part of this core's actor ids. */
SL_EXTERN uint64_t sl_core_node_id(const sl_core *core);

/* The `ud` from the settings. */
SL_EXTERN void *sl_core_data(const sl_core *core);

/* Number of live actors. */
SL_EXTERN size_t sl_core_alive(const sl_core *core);

/* Counters of a core since it was created. */
typedef struct sl_core_stats {
    uint64_t spawned;      /* actors started */
    uint64_t stopped;      /* actors stopped */
    uint64_t crashed;      /* of which crashed */
    uint64_t sent;         /* messages enqueued to a local mailbox */
    uint64_t processed;    /* messages handed to on_message */
    uint64_t dead_letters; /* sends to unknown or stopped actors */
    uint64_t dropped;      /* messages dropped: mailbox overflow or drained at stop */
    uint64_t late_replies; /* replies that arrived after their ask ended */
    uint64_t timeouts;     /* asks that timed out */
    size_t alive;          /* live actors */
    size_t timers;         /* pending timers and ask deadlines */
} sl_core_stats;

SL_EXTERN void sl_core_stats_get(const sl_core *core, sl_core_stats *out);

/* Counters of one actor. */
typedef struct sl_actor_stats {
    uint32_t depth[SL_PRIO_COUNT]; /* queued messages per class */
    uint32_t queued;               /* total queued */
    uint64_t processed;            /* messages handed to on_message */
    uint64_t dropped;              /* messages dropped by overflow policy */
    uint64_t rejected;             /* sends refused with SL_ERR_MAILBOX_FULL */
} sl_actor_stats;

/* Returns SL_OK or SL_ERR_NOACTOR. */
SL_EXTERN int sl_actor_stats_get(const sl_core *core, sl_id id, sl_actor_stats *out);

/*
 * Spawn an actor. `arg` is passed to on_start (and is the state when
 * behavior->state_size is 0). `opts` may be NULL. The behaviour must outlive
 * the actor. on_start runs at once, inside this call; if it fails the actor
 * is stopped with reason CRASH and the error is returned.
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL, SL_ERR_STOPPED, SL_ERR_EXISTS
 * (register_as taken), SL_ERR_BAD_NAME (register_as invalid), SL_ERR_NOACTOR
 * (link_to dead and not trapping), or the non-zero value on_start returned
 * (then on_stop(CRASH) has run and a trapping link_to actor gets EXIT).
 */
SL_EXTERN int sl_spawn(sl_core *core, const sl_behavior *behavior, void *arg,
                       const sl_spawn_opts *opts, sl_id *out);

/* From inside a callback: the actor's id, core, and state. */
SL_EXTERN sl_id sl_self(const sl_actor *self);
SL_EXTERN sl_core *sl_actor_core(const sl_actor *self);
SL_EXTERN void *sl_state(const sl_actor *self);

/*
 * Stop the calling actor after the current callback returns, with `reason`
 * and `code` (shown in DOWN/EXIT messages). Idempotent; the first call wins.
 */
SL_EXTERN void sl_exit(sl_actor *self, int reason, int code);

/*
 * Stop another actor (or any actor from outside). The actor stops at the next
 * safe point (never inside its own callback); from this call on it accepts no
 * message. This is a direct stop, not a link signal: trapping exits does not
 * prevent it, whatever the reason. Returns SL_OK or SL_ERR_NOACTOR. An actor
 * on another node is asked to stop through its node (SL_OK once sent, or the
 * sl_send() errors for remote receivers); monitor it to learn when it did.
 */
SL_EXTERN int sl_stop(sl_core *core, sl_id id, int reason);

/* True if `id` names a live, local actor. */
SL_EXTERN bool sl_alive(const sl_core *core, sl_id id);

/* -------------------------------------------------------------- send */

/*
 * Send a message from the calling actor `self` (from outside any actor use
 * sl_core_send()). The payload is copied.
 * Returns SL_OK, SL_ERR_NOACTOR (counted as a dead letter),
 * SL_ERR_MAILBOX_FULL, SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM, SL_ERR_INVAL (bad
 * priority, or data NULL with len > 0), SL_ERR_NOT_ACTOR (self NULL).
 * To an actor on another node also: SL_ERR_NOCONN (no connection to its
 * node), SL_ERR_AGAIN (the lane to it is full: nothing was sent; a
 * SL_TYPE_RESUME message follows when it has drained).
 */
SL_EXTERN int sl_send(sl_actor *self, sl_id to, uint32_t type, int prio,
                      const void *data, size_t len);

/*
 * Send a message that may be lost: to another node it travels as one QUIC
 * DATAGRAM (never fragmented, never retransmitted; losses are counted in
 * the connection's stats), so it must fit sl_unreliable_max(). Meant for
 * "latest value" traffic: telemetry, positions, heartbeats. To a local
 * actor it is a normal send, except that a full mailbox drops it (counted
 * in the actor's `dropped`) instead of refusing it.
 * Returns SL_OK, SL_ERR_MSG_TOO_BIG (larger than sl_unreliable_max() for a
 * remote receiver), SL_ERR_NOCONN, SL_ERR_NOACTOR (local and unknown),
 * SL_ERR_AGAIN (too many datagrams queued), SL_ERR_INVAL, SL_ERR_NOMEM.
 */
SL_EXTERN int sl_send_unreliable(sl_actor *self, sl_id to, uint32_t type, int prio,
                                 const void *data, size_t len);
/* The largest payload sl_send_unreliable() takes for `to` now. */
SL_EXTERN size_t sl_unreliable_max(const sl_core *core, sl_id to);

/* Send from outside any actor (from = SL_ID_NONE). Same returns as sl_send(). */
SL_EXTERN int sl_core_send(sl_core *core, sl_id to, uint32_t type, int prio,
                           const void *data, size_t len);

/* ------------------------------------------------------------ timers */

/*
 * Deliver a SL_KIND_SEND message (corr = timer id) to `to` after `delay_ms`
 * (send_after) or every `period_ms` (send_every; first after one period).
 * The timer belongs to the calling actor and is cancelled when it stops.
 * A delivery that fails is counted (receiver gone: a dead letter; mailbox
 * full: the receiver's `rejected`), and a periodic timer whose receiver is
 * gone cancels itself.
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL, SL_ERR_MSG_TOO_BIG.
 */
SL_EXTERN int sl_send_after(sl_actor *self, sl_id to, uint64_t delay_ms, uint32_t type,
                            int prio, const void *data, size_t len, uint64_t *timer_id);
SL_EXTERN int sl_send_every(sl_actor *self, sl_id to, uint64_t period_ms, uint32_t type,
                            int prio, const void *data, size_t len, uint64_t *timer_id);
/* Cancel a timer of the calling actor. Returns SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_timer_cancel(sl_actor *self, uint64_t timer_id);

/* ------------------------------------------------------------- asks */

/*
 * Ask `to` and expect a reply within `timeout_ms` (0 = no deadline).
 * Exactly one outcome reaches the asker as a message with corr = *ask_id:
 * REPLY, or CHUNK... then END, or FAIL with status TIMEOUT, NOACTOR (no such
 * actor), ACTOR_DOWN (it stopped before finishing), or an error the replier
 * sent with sl_reply_error(). The deadline covers the whole ask, streamed
 * replies included; when it expires the replier also receives CANCEL. Late
 * replies are dropped and counted (late_replies).
 * Returns SL_OK (ask sent), or the sl_send() errors (then no outcome follows).
 */
SL_EXTERN int sl_ask(sl_actor *self, sl_id to, uint32_t type, int prio, const void *data,
                     size_t len, uint64_t timeout_ms, uint64_t *ask_id);

/*
 * Cancel an ask in progress. No message for it follows (chunks already queued
 * are discarded). The replier receives an SL_KIND_CANCEL message (corr = ask
 * id) and its further sl_reply*() calls for it return SL_ERR_CANCELLED.
 * Returns SL_OK, or SL_ERR_NOTFOUND (unknown id, or the ask already ended).
 */
SL_EXTERN int sl_ask_cancel(sl_actor *self, uint64_t ask_id);

/*
 * Answer a request. sl_reply() sends the single final reply; sl_reply_chunk()
 * sends one chunk of a streamed reply and sl_reply_end() the last one (its
 * payload may be empty); sl_reply_error() ends the ask with FAIL(status=err).
 * Final replies are never refused for a full mailbox (they were asked for);
 * chunks are subject to the asker's mailbox capacity.
 * Returns SL_OK, SL_ERR_CANCELLED (the asker cancelled, timed out, or the ask
 * already ended, e.g. a second final reply),
 * SL_ERR_NOACTOR (the asker is gone), SL_ERR_MAILBOX_FULL (chunk only),
 * SL_ERR_MSG_TOO_BIG, SL_ERR_NOMEM.
 */
SL_EXTERN int sl_reply(sl_actor *self, sl_req req, uint32_t type, const void *data, size_t len);
SL_EXTERN int sl_reply_chunk(sl_actor *self, sl_req req, uint32_t type, const void *data,
                             size_t len);
SL_EXTERN int sl_reply_end(sl_actor *self, sl_req req, uint32_t type, const void *data,
                           size_t len);
SL_EXTERN int sl_reply_error(sl_actor *self, sl_req req, int err);

/* --------------------------------------------------- monitors, links */

/*
 * Watch `target`: when it stops, the caller receives DOWN (corr = *ref,
 * status = reason). If it is already dead, DOWN(NOPROC) is delivered at once.
 * Returns SL_OK or SL_ERR_NOMEM.
 */
SL_EXTERN int sl_monitor(sl_actor *self, sl_id target, uint64_t *ref);
/* Remove a monitor; no DOWN follows. Returns SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_demonitor(sl_actor *self, uint64_t ref);

/*
 * Link the caller and `other` both ways. When one stops with a reason other
 * than NORMAL, the other stops with the same reason, unless it traps exits,
 * in which case it receives EXIT (from = the dead actor, status = reason).
 * NORMAL exits are delivered only to actors that trap exits. Linking to a dead
 * actor behaves as if it had just died with NOPROC.
 * Returns SL_OK, SL_ERR_NOMEM, SL_ERR_INVAL (self).
 */
SL_EXTERN int sl_link(sl_actor *self, sl_id other);
/* Remove a link both ways. Returns SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_unlink(sl_actor *self, sl_id other);
/* Turn exit trapping on or off for the calling actor. */
SL_EXTERN void sl_trap_exit(sl_actor *self, bool on);

/* ---------------------------------------------------------- registry */

#define SL_NAME_MAX 128

/*
 * Register `name` (1..SL_NAME_MAX bytes, copied) for a live local actor. The
 * name is released when the actor stops. One name per actor.
 * Returns SL_OK, SL_ERR_EXISTS (name taken, or the actor has a name),
 * SL_ERR_NOACTOR, SL_ERR_BAD_NAME, SL_ERR_NOMEM.
 */
SL_EXTERN int sl_register(sl_core *core, const char *name, sl_id id);
/* Release a name. Returns SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_unregister(sl_core *core, const char *name);
/* Look a name up. Returns SL_OK or SL_ERR_NOTFOUND. */
SL_EXTERN int sl_whereis(const sl_core *core, const char *name, sl_id *out);

/*
 * Every node answers name lookups from any node: an ask of type
 * SL_TYPE_WHEREIS to (node, SL_LOCAL_REGISTRY) whose payload is the name
 * as a msgpack str is answered with REPLY carrying the id as a msgpack
 * array [node, local] (read it with sl_whereis_reply()), or FAIL with
 * SL_ERR_NOTFOUND (no such name) or SL_ERR_INVAL (not a name).
 */
#define SL_LOCAL_REGISTRY UINT64_C(0xFFFFFFFFFFFFFFF0)
#define SL_TYPE_WHEREIS 0xFFFFFF02u

/*
 * Ask `node` (this node or another) where `name` is. The outcome arrives
 * like any ask's (REPLY, FAIL, or FAIL(TIMEOUT) after timeout_ms; 0 = none).
 * Returns the sl_ask() codes, or SL_ERR_BAD_NAME.
 */
SL_EXTERN int sl_ask_whereis(sl_actor *self, uint64_t node, const char *name,
                             uint64_t timeout_ms, uint64_t *ask_id);
/* Read the id from a REPLY to sl_ask_whereis(). Returns SL_OK or SL_ERR_INVAL. */
SL_EXTERN int sl_whereis_reply(const sl_msg *m, sl_id *out);

#ifdef __cplusplus
}
#endif
#endif /* STARLING_ACTOR_H */
