/*
 * core_int.h: internal structures of the actor core, shared by core.c,
 * registry.c and supervisor.c. Nothing here is public API.
 */
#ifndef SL_ACTORS_CORE_INT_H
#define SL_ACTORS_CORE_INT_H

#include "starling/actor.h"
#include "starling/supervisor.h"
#include "actors/map.h"

/* Payloads up to this many bytes live in pooled, fixed-size message blocks. */
#define SL__SMALL_CAP 168
/* At most this many free message blocks are kept for reuse. */
#define SL__POOL_MAX 8192
/*
 * Payloads above SL__SMALL_CAP and up to SL__MID_MAX bytes live in blocks
 * whose payload room is a power of two from SL__MID_MIN (one free list per
 * size), kept for reuse while the free ones hold at most SL__MID_POOL_BYTES
 * of payload room. Without them a mailbox's worth of 1 KiB messages (remote
 * sends, 4096 by default) was malloc()ed and freed in bursts, and glibc
 * grew and trimmed its heap (brk, page faults) on every burst.
 */
#define SL__MID_MIN 512
#define SL__MID_MAX 4096
#define SL__MID_CLASSES 4 /* 512, 1024, 2048, 4096 */
#define SL__MID_POOL_BYTES ((size_t)8 << 20)
/* Blocks with at least this much room may be kept as the core's spare. */
#define SL__SPARE_MIN ((size_t)1 << 20)
/* sl__core_trim() frees the spare once it is unused this long (ns). */
#define SL__SPARE_NS ((uint64_t)1000 * 1000 * 1000)

/* A queued message: the public view plus the queue link and inline payload. */
typedef struct sl__msg {
    struct sl__msg *next;
    sl_msg m;
    uint32_t cap; /* bytes available in data[] */
    uint8_t data[];
} sl__msg;

/* Kinds of reference records. */
enum {
    SL__REF_MONITOR = 1,
    SL__REF_LINK,
    SL__REF_ASK,
    SL__REF_TIMER,
    SL__REF_RASK, /* an ask from an actor on another node, accepted by a local actor */
    SL__REF_RMON  /* a monitor held by an actor on another node on a local actor:
                     target = the remote watcher, corr = its monitor ref; no owner */
};

/*
 * A reference record: a monitor, one direction of a link, a pending ask, or a
 * timer. It belongs to its owner (the watcher, asker or timer owner) through
 * the owner's `owned` list, and, while the target is a live local actor, sits
 * in the target's `watchers` list so the target's death reaches it in O(1).
 * Asks and timers also sit in the deadline heap.
 */
typedef struct sl__ref {
    uint64_t id;          /* key in core->refs or core->rasks (0 for local links) */
    uint8_t kind;         /* SL__REF_* */
    uint8_t prio;         /* ask: reply priority; timer: message priority */
    uint32_t heap_idx;    /* index in the deadline heap, or UINT32_MAX */
    struct sl_actor *owner;
    sl_id target;
    struct sl_actor *t_actor; /* target while linked into its watchers list */
    struct sl__ref *t_prev, *t_next;
    struct sl__ref *o_prev, *o_next;
    uint64_t deadline; /* ns; heap key */
    uint64_t period;   /* timer: ns between firings, 0 = one-shot */
    uint64_t corr;     /* remote ask: the asker's ask id */
    uint32_t type;     /* timer: message type */
    size_t len;        /* timer: payload length */
    uint8_t *data;     /* timer: payload copy (owned) */
} sl__ref;

/* Actor flags. */
enum {
    SL__A_QUEUED = 1,   /* in the run queue */
    SL__A_RUNNING = 2,  /* inside one of its callbacks */
    SL__A_STOPPING = 4, /* stop requested; accepts no messages */
    SL__A_TRAP = 8,     /* traps exits */
    SL__A_INSTOPQ = 16, /* in the core's stop queue */
    SL__A_STARTED = 32, /* on_start was called (so on_stop will be) */
    SL__A_WANTROOM = 64 /* refused a remote delivery: tell the platform when it has room */
};

struct sl_actor {
    sl_core *core;
    const sl_behavior *beh;
    void *state;
    uint64_t local;
    /* Run queue links; the stop queue reuses rq_next (a stopping actor is
     * never in the run queue). */
    struct sl_actor *rq_prev, *rq_next;
    /* The mailbox: one FIFO per class, each a circular list kept by its
     * tail (tail->next is the head), which halves the pointers per class. */
    sl__msg *qt[SL_PRIO_COUNT];
    uint32_t queued;                    /* messages in the mailbox */
    uint32_t capacity;                  /* bound for user messages */
    uint8_t nonempty;                   /* bit p set = q[p] non-empty */
    uint8_t flags;                      /* SL__A_* */
    uint8_t overflow;                   /* sl_overflow */
    uint8_t exit_reason;
    int32_t exit_code;
    sl__ref *watchers; /* records whose target is this actor */
    sl__ref *owned;    /* records this actor owns */
    char *name;        /* registered name (owned by the registry entry) */
    uint64_t processed;
    uint32_t dropped, rejected;
};

typedef struct sl__reg sl__reg; /* registry, registry.c */

struct sl_core {
    sl_core_settings set;
    sl_mem mem;
    uint64_t now;
    uint64_t next_local;
    uint64_t next_ref;
    sl__idtab actors; /* local id -> actor */
    uint64_t last_local;  /* one-entry lookup cache (0 = empty) */
    sl_actor *last_actor;
    sl__map refs;
    sl__map rasks;     /* (remote actor, its ref) key -> SL__REF_RASK / SL__REF_RMON record */
    sl_actor *rq_head, *rq_tail;
    sl_actor *stop_head, *stop_tail;
    sl__ref **heap;
    uint32_t heap_len, heap_cap;
    sl__msg *pool;
    uint32_t pool_len;
    sl__msg *mid_pool[SL__MID_CLASSES]; /* free blocks of SL__MID_MIN << i bytes of room */
    size_t mid_bytes;                   /* payload room held by the mid pools */
    /* One freed big block (payload room >= SL__SPARE_MIN) kept for the next
     * big message, whose pages would otherwise all be faulted in afresh (on
     * a VM that costs ~40x the copy into them); only while the platform
     * calls sl__core_trim(), which frees it once unused for a while. */
    sl__msg *spare;
    uint64_t spare_at; /* c->now when it was kept */
    bool trims;        /* sl__core_trim() was called: keep a spare */
    bool in_run;
    bool shutting_down;
    bool wake_pending;
    sl__reg *reg;
    sl_core_stats st;
};

static inline void *sl__alloc(sl_core *c, size_t n) { return c->mem.malloc(n, c->mem.ud); }
static inline void *sl__calloc(sl_core *c, size_t n, size_t s) { return c->mem.calloc(n, s, c->mem.ud); }
static inline void sl__free(sl_core *c, void *p)
{
    if (p)
        c->mem.free(p, c->mem.ud);
}

/* The live (not stopping) local actor with this id, or NULL. */
sl_actor *sl__actor_get(const sl_core *c, sl_id id);
/* Same, but also returns actors that are stopping. */
sl_actor *sl__actor_get_any(const sl_core *c, sl_id id);
/* Request a stop; processed at the next safe point. */
void sl__stop_request(sl_core *c, sl_actor *a, int reason, int code);
/* Stop an actor now (on_stop runs inside this call), unless it is inside
 * one of its own callbacks, in which case the stop is deferred. Supervisors
 * use it so that old children are gone before new ones start. */
void sl__stop_now(sl_core *c, sl_actor *a, int reason);

/* registry.c */
int sl__reg_new(sl_core *c);
void sl__reg_del(sl_core *c);
void sl__reg_release(sl_core *c, sl_actor *a);

#endif
