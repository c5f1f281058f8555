/*
 * core.c: the actor core: actors, mailboxes, the scheduler, timers, asks,
 * monitors and links.
 *
 * Design. A core owns every actor of one node and is driven by one thread.
 * Actors live in a hash table keyed by their local id (a 64-bit counter that
 * is never reused, so a dead id never aliases a new actor). A mailbox is five
 * intrusive FIFO lists, one per priority class, plus a bitmask of the
 * non-empty ones, so "pop the most urgent message" is a count-trailing-zeros
 * and two pointer moves. Messages are single allocations (header + inline
 * payload); small ones come from a free list so the steady state of a busy
 * node allocates nothing.
 *
 * The scheduler is a FIFO run queue of actors with messages. An actor runs
 * for at most `batch` messages per turn and then goes to the back of the
 * queue, so a self-flooding actor cannot starve the others.
 *
 * Stops are never performed inside the stopping actor's own callbacks: a stop
 * request marks the actor (from then on it accepts no message) and queues it;
 * the run loop terminates queued actors between turns. Termination runs
 * on_stop, releases what the actor owns (timers, its monitors, its asks,
 * which tells their repliers) and then notifies the records that watch it:
 * monitors get DOWN, links propagate the exit or deliver EXIT to trapping
 * actors, pending asks to it fail at once with SL_ERR_ACTOR_DOWN.
 *
 * Monitors, links, asks and timers are all "reference records" (sl__ref)
 * kept in two intrusive lists (owner's and target's) so that every cleanup is
 * O(1) per record. Asks and timers also sit in a binary min-heap of deadlines.
 * The core never reads a clock: time comes in through sl_core_run().
 */
#include <assert.h>
#include <string.h>

#include "actors/core_int.h"
#include "actors/inject.h"
#include "actors/mem.h"

#define NS_PER_MS 1000000ull

/* ------------------------------------------------------------ settings */

void sl_core_settings_default(sl_core_settings *s)
{
    memset(s, 0, sizeof *s);
    s->mailbox_capacity = 4096;
    s->batch = 64;
    s->max_message_size = 64u << 20;
}

void sl_spawn_opts_default(sl_spawn_opts *o)
{
    memset(o, 0, sizeof *o);
    o->overflow = SL_OVERFLOW_REJECT;
}

/* Tell the platform there is work, once per idle period. */
static void wake(sl_core *c)
{
    if (c->in_run || c->wake_pending)
        return;
    c->wake_pending = true;
    if (c->set.wake)
        c->set.wake(c, c->set.ud);
}

/* ------------------------------------------------------------ messages */

static sl__msg *msg_new(sl_core *c, size_t len)
{
    sl__msg *m;
    if (len <= SL__SMALL_CAP) {
        if (c->pool) {
            m = c->pool;
            c->pool = m->next;
            c->pool_len--;
        } else {
            m = sl__alloc(c, sizeof(sl__msg) + SL__SMALL_CAP);
            if (!m)
                return NULL;
            m->cap = SL__SMALL_CAP;
        }
    } else if (len <= SL__MID_MAX) {
        unsigned k = 0;
        while ((size_t)SL__MID_MIN << k < len)
            k++;
        uint32_t cap = (uint32_t)SL__MID_MIN << k;
        if (c->mid_pool[k]) {
            m = c->mid_pool[k];
            c->mid_pool[k] = m->next;
            c->mid_bytes -= cap;
        } else {
            m = sl__alloc(c, sizeof(sl__msg) + cap);
            if (!m)
                return NULL;
            m->cap = cap;
        }
    } else if (c->spare && c->spare->cap >= len && c->spare->cap / 2 <= len) {
        m = c->spare; /* its pages are already there */
        c->spare = NULL;
    } else {
        m = sl__alloc(c, sizeof(sl__msg) + len);
        if (!m)
            return NULL;
        m->cap = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
    }
    m->next = NULL;
    return m;
}

/* The mid pool a block of `cap` bytes belongs to, or -1. Blocks for larger
 * payloads have cap == len > SL__MID_MAX, so the sizes cannot be confused. */
static int mid_class_of(uint32_t cap)
{
    if (cap < SL__MID_MIN || cap > SL__MID_MAX || (cap & (cap - 1)))
        return -1;
    int k = 0;
    while ((uint32_t)SL__MID_MIN << k != cap)
        k++;
    return k;
}

static void msg_free(sl_core *c, sl__msg *m)
{
    if (m->cap == SL__SMALL_CAP && c->pool_len < SL__POOL_MAX) {
        m->next = c->pool;
        c->pool = m;
        c->pool_len++;
        return;
    }
    int k = m->cap == SL__SMALL_CAP ? -1 : mid_class_of(m->cap);
    if (k >= 0 && c->mid_bytes + m->cap <= SL__MID_POOL_BYTES) {
        m->next = c->mid_pool[k];
        c->mid_pool[k] = m;
        c->mid_bytes += m->cap;
    } else if (c->trims && m->cap >= SL__SPARE_MIN && !c->shutting_down &&
               (!c->spare || c->spare->cap <= m->cap)) {
        sl__free(c, c->spare); /* keep the larger one */
        c->spare = m;
        c->spare_at = c->now;
    } else {
        sl__free(c, m);
    }
}

/* Fill a fresh message. `data` may be NULL only when len is 0. */
static sl__msg *msg_make(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint8_t prio,
                         uint32_t type, uint64_t corr, const void *data, size_t len)
{
    sl__msg *m = msg_new(c, len);
    if (!m)
        return NULL;
    m->m.from = from;
    m->m.to = to;
    m->m.corr = corr;
    m->m.type = type;
    m->m.kind = kind;
    m->m.prio = prio;
    m->m.flags = 0;
    m->m.status = 0;
    m->m.code = 0;
    m->m.len = len;
    if (len) {
        memcpy(m->data, data, len);
        m->m.data = m->data;
    } else {
        m->m.data = NULL;
    }
    return m;
}

/* ---------------------------------------------------------- run queue */

static void rq_push(sl_core *c, sl_actor *a)
{
    a->flags |= SL__A_QUEUED;
    a->rq_next = NULL;
    a->rq_prev = c->rq_tail;
    if (c->rq_tail)
        c->rq_tail->rq_next = a;
    else
        c->rq_head = a;
    c->rq_tail = a;
    wake(c);
}

static void rq_remove(sl_core *c, sl_actor *a)
{
    if (!(a->flags & SL__A_QUEUED))
        return;
    if (a->rq_prev)
        a->rq_prev->rq_next = a->rq_next;
    else
        c->rq_head = a->rq_next;
    if (a->rq_next)
        a->rq_next->rq_prev = a->rq_prev;
    else
        c->rq_tail = a->rq_prev;
    a->rq_prev = a->rq_next = NULL;
    a->flags &= (uint8_t)~SL__A_QUEUED;
}

static sl_actor *rq_pop(sl_core *c)
{
    sl_actor *a = c->rq_head;
    if (a)
        rq_remove(c, a);
    return a;
}

/* ------------------------------------------------------------ mailbox */

static inline bool is_user_kind(uint8_t kind)
{
    return kind == SL_KIND_SEND || kind == SL_KIND_ASK || kind == SL_KIND_CHUNK;
}

static inline void mq_push(sl_actor *a, sl__msg *m)
{
    sl__msg **tail = &a->qt[m->m.prio];
    if (*tail) {
        m->next = (*tail)->next;
        (*tail)->next = m;
    } else {
        m->next = m;
    }
    *tail = m;
    a->nonempty |= (uint8_t)(1u << m->m.prio);
    a->queued++;
}

static inline sl__msg *mq_pop(sl_actor *a)
{
    int p = __builtin_ctz(a->nonempty);
    sl__msg *tail = a->qt[p];
    sl__msg *m = tail->next;
    if (m == tail) {
        a->qt[p] = NULL;
        a->nonempty &= (uint8_t) ~(1u << p);
    } else {
        tail->next = m->next;
    }
    a->queued--;
    return m;
}

/* Drop the oldest user message of the lowest non-empty class. */
static bool mq_drop_oldest(sl_core *c, sl_actor *a)
{
    for (int p = SL_PRIO_COUNT - 1; p >= 0; p--) {
        sl__msg *tail = a->qt[p];
        if (!tail)
            continue;
        sl__msg *prev = tail, *m = tail->next;
        for (;;) {
            if (is_user_kind(m->m.kind)) {
                if (m == prev) { /* the only message */
                    a->qt[p] = NULL;
                    a->nonempty &= (uint8_t) ~(1u << p);
                } else {
                    prev->next = m->next;
                    if (m == tail)
                        a->qt[p] = prev;
                }
                a->queued--;
                msg_free(c, m);
                return true;
            }
            if (m == tail)
                break;
            prev = m;
            m = m->next;
        }
    }
    return false;
}

/* Remove every queued message of `kind` with this correlation id. */
static void mq_purge_corr(sl_core *c, sl_actor *a, uint64_t corr, uint8_t kind)
{
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        sl__msg *tail = a->qt[p];
        if (!tail)
            continue;
        /* Walk the circle once, rebuilding it without the matches. */
        sl__msg *m = tail->next, *new_tail = NULL, *head = NULL;
        tail->next = NULL;
        while (m) {
            sl__msg *n = m->next;
            if (m->m.corr == corr && m->m.kind == kind) {
                a->queued--;
                msg_free(c, m);
            } else {
                if (new_tail)
                    new_tail->next = m;
                else
                    head = m;
                new_tail = m;
            }
            m = n;
        }
        if (new_tail) {
            new_tail->next = head;
            a->qt[p] = new_tail;
        } else {
            a->qt[p] = NULL;
            a->nonempty &= (uint8_t) ~(1u << p);
        }
    }
}

static inline void schedule(sl_core *c, sl_actor *a)
{
    if (!(a->flags & (SL__A_QUEUED | SL__A_RUNNING | SL__A_STOPPING)))
        rq_push(c, a);
}

/*
 * Enqueue `m` for `a`, applying the mailbox bound to user kinds. Takes the
 * message on success; on SL_ERR_MAILBOX_FULL the caller still owns it.
 * Returns SL_OK, SL_ERR_MAILBOX_FULL, or 1 when the message was dropped by
 * the DROP_NEW policy (then it has been freed).
 */
static int deliver(sl_core *c, sl_actor *a, sl__msg *m)
{
    if (a->queued >= a->capacity && is_user_kind(m->m.kind)) {
        switch (a->overflow) {
        case SL_OVERFLOW_DROP_NEW:
            a->dropped++;
            c->st.dropped++;
            msg_free(c, m);
            return 1;
        case SL_OVERFLOW_DROP_OLDEST:
            if (mq_drop_oldest(c, a)) {
                a->dropped++;
                c->st.dropped++;
                break;
            }
            a->rejected++; /* nothing droppable */
            return SL_ERR_MAILBOX_FULL;
        default:
            a->rejected++;
            return SL_ERR_MAILBOX_FULL;
        }
    }
    mq_push(a, m);
    c->st.sent++;
    schedule(c, a);
    return SL_OK;
}

/* Build and deliver a system message that bypasses the bound. Best effort:
 * under memory exhaustion the message is lost and counted as dropped. */
static void deliver_sys(sl_core *c, sl_actor *to, sl_id from, uint8_t kind, uint8_t prio,
                        uint64_t corr, int32_t status, int32_t code)
{
    sl__msg *m =
        msg_make(c, from, (sl_id){c->set.node_id, to->local}, kind, prio, 0, corr, NULL, 0);
    if (!m) {
        c->st.dropped++;
        return;
    }
    m->m.status = status;
    m->m.code = code;
    (void)deliver(c, to, m);
}

static int send_remote(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint8_t prio, uint32_t type,
                       uint64_t corr, int32_t status, const void *data, size_t len);
static int send_signal(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint64_t corr,
                       int32_t status, int32_t code);
static inline bool is_remote(const sl_core *c, sl_id id)
{
    return id.node != c->set.node_id;
}

/* ------------------------------------------------------------- lookup */

/* Look an actor up. A one-entry cache serves the common case of many sends
 * to the same receiver; terminate() clears it. */
static inline sl_actor *lookup_any(const sl_core *c, sl_id id)
{
    if (id.node != c->set.node_id || id.local == 0)
        return NULL;
    if (id.local == c->last_local)
        return c->last_actor;
    sl_actor *a = sl__idtab_get(&c->actors, id.local);
    if (a) {
        ((sl_core *)c)->last_local = id.local;
        ((sl_core *)c)->last_actor = a;
    }
    return a;
}

static inline sl_actor *lookup(const sl_core *c, sl_id id)
{
    sl_actor *a = lookup_any(c, id);
    return (a && !(a->flags & SL__A_STOPPING)) ? a : NULL;
}

/* Remove an actor from the table (and the lookup cache). */
static void table_remove(sl_core *c, sl_actor *a)
{
    sl__idtab_del(&c->actors, a->local, c->next_local);
    if (c->last_local == a->local) {
        c->last_local = 0;
        c->last_actor = NULL;
    }
}

sl_actor *sl__actor_get_any(const sl_core *c, sl_id id)
{
    return lookup_any(c, id);
}
sl_actor *sl__actor_get(const sl_core *c, sl_id id)
{
    return lookup(c, id);
}

static inline sl_id id_of(const sl_core *c, const sl_actor *a)
{
    return (sl_id){c->set.node_id, a->local};
}

sl_id sl_self(const sl_actor *self)
{
    return id_of(self->core, self);
}
sl_core *sl_actor_core(const sl_actor *self)
{
    return self->core;
}
void *sl_state(const sl_actor *self)
{
    return self->state;
}
bool sl_alive(const sl_core *c, sl_id id)
{
    return sl__actor_get(c, id) != NULL;
}

/* ------------------------------------------------------ deadline heap */

static inline bool heap_less(const sl__ref *a, const sl__ref *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_set(sl_core *c, uint32_t i, sl__ref *r)
{
    c->heap[i] = r;
    r->heap_idx = i;
}

static void heap_up(sl_core *c, uint32_t i)
{
    sl__ref *r = c->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(r, c->heap[p]))
            break;
        heap_set(c, i, c->heap[p]);
        i = p;
    }
    heap_set(c, i, r);
}

static void heap_down(sl_core *c, uint32_t i)
{
    sl__ref *r = c->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, s = i;
        sl__ref *best = r;
        if (l < c->heap_len && heap_less(c->heap[l], best)) {
            s = l;
            best = c->heap[l];
        }
        if (l + 1 < c->heap_len && heap_less(c->heap[l + 1], best)) {
            s = l + 1;
            best = c->heap[l + 1];
        }
        if (s == i)
            break;
        heap_set(c, i, best);
        i = s;
    }
    heap_set(c, i, r);
}

/* Reserve room for one more heap entry so that a later push cannot fail. */
static int heap_reserve(sl_core *c)
{
    if (c->heap_len < c->heap_cap)
        return SL_OK;
    uint32_t ncap = c->heap_cap ? c->heap_cap * 2 : 16;
    sl__ref **nh = c->mem.realloc(c->heap, ncap * sizeof *nh, c->mem.ud);
    if (!nh)
        return SL_ERR_NOMEM;
    c->heap = nh;
    c->heap_cap = ncap;
    return SL_OK;
}

static void heap_push(sl_core *c, sl__ref *r)
{
    assert(c->heap_len < c->heap_cap);
    uint64_t old_top = c->heap_len ? c->heap[0]->deadline : UINT64_MAX;
    heap_set(c, c->heap_len++, r);
    heap_up(c, r->heap_idx);
    if (r->deadline < old_top) {
        if (c->set.deadline && !c->in_run && !c->wake_pending)
            c->set.deadline(c, c->set.ud); /* only the timer moves: no run needed */
        else
            wake(c); /* a run is coming anyway (or the platform wants one) */
    }
}

static void heap_remove(sl_core *c, sl__ref *r)
{
    uint32_t i = r->heap_idx;
    if (i == UINT32_MAX)
        return;
    r->heap_idx = UINT32_MAX;
    c->heap_len--;
    if (i == c->heap_len)
        return;
    heap_set(c, i, c->heap[c->heap_len]);
    heap_up(c, i);
    heap_down(c, c->heap[i]->heap_idx);
}

/* ------------------------------------------------------ reference records */

static sl__ref *ref_new(sl_core *c, uint8_t kind, sl_actor *owner, sl_id target)
{
    sl__ref *r = sl__calloc(c, 1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    r->owner = owner;
    r->target = target;
    r->heap_idx = UINT32_MAX;
    return r;
}

static void owned_add(sl_actor *a, sl__ref *r)
{
    r->o_prev = NULL;
    r->o_next = a->owned;
    if (a->owned)
        a->owned->o_prev = r;
    a->owned = r;
}

static void owned_remove(sl__ref *r)
{
    sl_actor *a = r->owner;
    if (!a)
        return; /* SL__REF_RMON: owned by a remote actor */
    if (r->o_prev)
        r->o_prev->o_next = r->o_next;
    else
        a->owned = r->o_next;
    if (r->o_next)
        r->o_next->o_prev = r->o_prev;
    r->o_prev = r->o_next = NULL;
}

static void watch_add(sl_actor *t, sl__ref *r)
{
    r->t_actor = t;
    r->t_prev = NULL;
    r->t_next = t->watchers;
    if (t->watchers)
        t->watchers->t_prev = r;
    t->watchers = r;
}

static void watch_remove(sl__ref *r)
{
    sl_actor *t = r->t_actor;
    if (!t)
        return;
    if (r->t_prev)
        r->t_prev->t_next = r->t_next;
    else
        t->watchers = r->t_next;
    if (r->t_next)
        r->t_next->t_prev = r->t_prev;
    r->t_prev = r->t_next = NULL;
    r->t_actor = NULL;
}

/* Unhook a record from everything and free it. */
static void ref_free(sl_core *c, sl__ref *r)
{
    watch_remove(r);
    owned_remove(r);
    heap_remove(c, r);
    if (r->id)
        sl__map_del(r->kind == SL__REF_RASK || r->kind == SL__REF_RMON ? &c->rasks : &c->refs,
                    r->id);
    sl__free(c, r->data);
    sl__free(c, r);
}

/* Register a record under a fresh id. Returns SL_OK or SL_ERR_NOMEM. */
static int ref_register(sl_core *c, sl__ref *r)
{
    r->id = ++c->next_ref;
    int rc = sl__map_put(&c->refs, r->id, r);
    if (rc)
        r->id = 0;
    return rc;
}

/* A monitor or link record owned by `owner` on an actor of another node:
 * registered so that sl__core_node_down() finds it. NULL if out of memory. */
static sl__ref *remote_ref(sl_core *c, uint8_t kind, sl_actor *owner, sl_id target)
{
    sl__ref *r = ref_new(c, kind, owner, target);
    if (!r)
        return NULL;
    if (ref_register(c, r)) {
        sl__free(c, r);
        return NULL;
    }
    owned_add(owner, r);
    return r;
}

/* --------------------------------------------------------------- core */

int sl_core_new(const sl_core_settings *settings, sl_core **out)
{
    sl_core_settings def;
    if (!out)
        return SL_ERR_INVAL;
    if (!settings) {
        sl_core_settings_default(&def);
        settings = &def;
    }
    if (settings->batch == 0 || settings->mailbox_capacity == 0)
        return SL_ERR_INVAL;
    sl_mem mem;
    sl__mem_resolve(settings->mem, &mem);
    sl_core *c = mem.calloc(1, sizeof *c, mem.ud);
    if (!c)
        return SL_ERR_NOMEM;
    c->set = *settings;
    c->mem = mem;
    c->set.mem = &c->mem;
    sl__idtab_init(&c->actors, &c->mem);
    sl__map_init(&c->refs, &c->mem);
    sl__map_init(&c->rasks, &c->mem);
    if (sl__reg_new(c) != SL_OK) {
        mem.free(c, mem.ud);
        return SL_ERR_NOMEM;
    }
    *out = c;
    return SL_OK;
}

uint64_t sl_core_now(const sl_core *c)
{
    return c->now;
}
void *sl_core_data(const sl_core *c)
{
    return c->set.ud;
}
uint64_t sl_core_node_id(const sl_core *c)
{
    return c->set.node_id;
}

void sl__core_set_remote(sl_core *c, const sl_core_settings *hooks)
{
    c->set.remote = hooks->remote;
    c->set.room = hooks->room;
    c->set.remote_unreliable_max = hooks->remote_unreliable_max;
}

int sl__core_set_node_id(sl_core *c, uint64_t node)
{
    if (c->set.node_id == node)
        return SL_OK;
    if (c->actors.count || c->st.spawned)
        return SL_ERR_INVAL;
    c->set.node_id = node;
    return SL_OK;
}
size_t sl_core_alive(const sl_core *c)
{
    return c->actors.count;
}
bool sl_core_has_work(const sl_core *c)
{
    return c->rq_head != NULL || c->stop_head != NULL;
}

uint64_t sl_core_next_deadline(const sl_core *c)
{
    return c->heap_len ? c->heap[0]->deadline : UINT64_MAX;
}

void sl_core_stats_get(const sl_core *c, sl_core_stats *out)
{
    *out = c->st;
    out->alive = c->actors.count;
    out->timers = c->heap_len;
}

int sl_actor_stats_get(const sl_core *c, sl_id id, sl_actor_stats *out)
{
    sl_actor *a = sl__actor_get_any(c, id);
    if (!a)
        return SL_ERR_NOACTOR;
    memset(out, 0, sizeof *out);
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        sl__msg *tail = a->qt[p];
        if (!tail)
            continue;
        sl__msg *m = tail;
        do {
            out->depth[p]++;
            m = m->next;
        } while (m != tail);
    }
    out->queued = a->queued;
    out->processed = a->processed;
    out->dropped = a->dropped;
    out->rejected = a->rejected;
    return SL_OK;
}

/* ------------------------------------------------------------- spawn */

static void terminate(sl_core *c, sl_actor *a);

int sl_spawn(sl_core *c, const sl_behavior *beh, void *arg, const sl_spawn_opts *opts, sl_id *out)
{
    sl_spawn_opts def;
    if (!c || !beh)
        return SL_ERR_INVAL;
    if (!opts) {
        sl_spawn_opts_default(&def);
        opts = &def;
    }
    if (opts->overflow > SL_OVERFLOW_DROP_OLDEST)
        return SL_ERR_INVAL;
    if (c->shutting_down)
        return SL_ERR_STOPPED;
    size_t hdr = (sizeof(sl_actor) + 15) & ~(size_t)15;
    sl_actor *a = sl__calloc(c, 1, hdr + beh->state_size);
    if (!a)
        return SL_ERR_NOMEM;
    a->core = c;
    a->beh = beh;
    a->state = beh->state_size ? (void *)((char *)a + hdr) : arg;
    a->local = ++c->next_local;
    a->capacity = opts->mailbox_capacity ? opts->mailbox_capacity : c->set.mailbox_capacity;
    a->overflow = opts->overflow;
    a->flags = opts->trap_exit ? SL__A_TRAP : 0;
    int rc = sl__idtab_put(&c->actors, a->local, a);
    if (rc) {
        sl__free(c, a);
        return rc;
    }
    sl_id self = id_of(c, a);
    if (opts->register_as) {
        rc = sl_register(c, opts->register_as, self);
        if (rc) {
            table_remove(c, a);
            sl__free(c, a);
            return rc;
        }
    }
    c->st.spawned++;
    if (!sl_id_is_none(opts->link_to)) {
        if (!sl__actor_get_any(c, opts->link_to) && !(a->flags & SL__A_TRAP)) {
            /* Linking to a dead actor without trapping would kill us at once. */
            sl__reg_release(c, a);
            table_remove(c, a);
            sl__free(c, a);
            c->st.spawned--;
            return SL_ERR_NOACTOR;
        }
        rc = sl_link(a, opts->link_to);
        if (rc) {
            a->exit_reason = SL_REASON_CRASH;
            a->exit_code = rc;
            a->flags |= SL__A_STOPPING;
            terminate(c, a);
            return rc;
        }
    }
    a->flags |= SL__A_STARTED;
    if (beh->on_start) {
        a->flags |= SL__A_RUNNING;
        rc = beh->on_start(a, arg);
        a->flags &= (uint8_t)~SL__A_RUNNING;
        if (rc) {
            if (a->flags & SL__A_INSTOPQ) {
                /* It asked to stop and then failed: the queued stop stands. */
                return rc;
            }
            a->flags |= SL__A_STOPPING;
            a->exit_reason = SL_REASON_CRASH;
            a->exit_code = rc;
            terminate(c, a);
            return rc;
        }
    }
    if (a->nonempty && !(a->flags & SL__A_STOPPING))
        schedule(c, a);
    if (out)
        *out = self;
    return SL_OK;
}

/* -------------------------------------------------------------- stops */

void sl__stop_request(sl_core *c, sl_actor *a, int reason, int code)
{
    if (a->flags & SL__A_STOPPING)
        return;
    a->flags |= SL__A_STOPPING | SL__A_INSTOPQ;
    a->exit_reason = (uint8_t)reason;
    a->exit_code = code;
    rq_remove(c, a);
    a->rq_next = NULL;
    if (c->stop_tail)
        c->stop_tail->rq_next = a;
    else
        c->stop_head = a;
    c->stop_tail = a;
    wake(c);
}

void sl__stop_now(sl_core *c, sl_actor *a, int reason)
{
    if (a->flags & SL__A_RUNNING) {
        sl__stop_request(c, a, reason, 0); /* cannot stop inside its own callback */
        return;
    }
    if (a->flags & SL__A_INSTOPQ) {
        /* Already queued to stop: take it out of the queue, keep its reason. */
        sl_actor *prev = NULL;
        for (sl_actor *x = c->stop_head; x; prev = x, x = x->rq_next) {
            if (x != a)
                continue;
            if (prev)
                prev->rq_next = a->rq_next;
            else
                c->stop_head = a->rq_next;
            if (c->stop_tail == a)
                c->stop_tail = prev;
            break;
        }
        a->rq_next = NULL;
        a->flags &= (uint8_t)~SL__A_INSTOPQ;
    } else if (!(a->flags & SL__A_STOPPING)) {
        a->flags |= SL__A_STOPPING;
        a->exit_reason = (uint8_t)reason;
        a->exit_code = 0;
        rq_remove(c, a);
    }
    terminate(c, a);
}

void sl_exit(sl_actor *self, int reason, int code)
{
    sl__stop_request(self->core, self, reason, code);
}

int sl_stop(sl_core *c, sl_id id, int reason)
{
    if (is_remote(c, id) && id.local && c->set.remote) {
        if (reason < SL_REASON_NORMAL || reason > SL_REASON_SHUTDOWN)
            return SL_ERR_INVAL;
        return send_signal(c, SL_ID_NONE, id, SL_KIND_STOP, 0, reason, 0);
    }
    sl_actor *a = sl__actor_get(c, id);
    if (!a)
        return SL_ERR_NOACTOR;
    sl__stop_request(c, a, reason, 0);
    return SL_OK;
}

/* Deliver the exit of `dead` (reason, code) along a link to `peer`. */
static void link_signal(sl_core *c, sl_actor *peer, sl_id dead, int reason, int code)
{
    if (peer->flags & SL__A_STOPPING)
        return;
    if (peer->flags & SL__A_TRAP) {
        deliver_sys(c, peer, dead, SL_KIND_EXIT, SL_PRIO_CRITICAL, 0, reason, code);
    } else if (reason != SL_REASON_NORMAL) {
        sl__stop_request(c, peer, reason, code);
    }
}

/*
 * Terminate a stopping actor: see the file comment for the order. Must not be
 * called while the actor is inside a callback.
 */
static void terminate(sl_core *c, sl_actor *a)
{
    sl_id self = id_of(c, a);
    int reason = a->exit_reason, code = a->exit_code;

    rq_remove(c, a);
    table_remove(c, a);
    sl__reg_release(c, a);
    if (a->beh->on_stop && (a->flags & SL__A_STARTED)) {
        a->flags |= SL__A_RUNNING;
        a->beh->on_stop(a, reason);
        a->flags &= (uint8_t)~SL__A_RUNNING;
    }
    /* What the actor owned. */
    while (a->owned) {
        sl__ref *r = a->owned;
        if (r->kind == SL__REF_ASK && r->t_actor && !(r->t_actor->flags & SL__A_STOPPING))
            deliver_sys(c, r->t_actor, self, SL_KIND_CANCEL, SL_PRIO_CRITICAL, r->id, 0, 0);
        else if (r->kind == SL__REF_ASK && is_remote(c, r->target))
            (void)send_remote(c, self, r->target, SL_KIND_CANCEL, SL_PRIO_CRITICAL, 0, r->id, 0,
                              NULL, 0);
        else if (r->kind == SL__REF_RASK) /* accepted, never answered: tell the asker */
            (void)send_remote(c, self, r->target, SL_KIND_FAIL, r->prio, 0, r->corr,
                              SL_ERR_ACTOR_DOWN, NULL, 0);
        else if (r->kind == SL__REF_MONITOR && is_remote(c, r->target))
            (void)send_signal(c, self, r->target, SL_KIND_DEMONITOR, r->id, 0, 0);
        else if (r->kind == SL__REF_LINK && is_remote(c, r->target))
            (void)send_signal(c, self, r->target, SL_KIND_EXIT, 0, reason, code);
        ref_free(c, r);
    }
    /* Its mailbox. Asks waiting in it are failed through the watchers below. */
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        sl__msg *tail = a->qt[p];
        if (!tail)
            continue;
        sl__msg *m = tail->next;
        tail->next = NULL; /* break the circle */
        while (m) {
            sl__msg *n = m->next;
            if (is_user_kind(m->m.kind))
                c->st.dropped++;
            msg_free(c, m);
            m = n;
        }
        a->qt[p] = NULL;
    }
    a->nonempty = 0;
    a->queued = 0;
    /* Whoever watched it. */
    while (a->watchers) {
        sl__ref *r = a->watchers;
        sl_actor *o = r->owner;
        watch_remove(r);
        switch (r->kind) {
        case SL__REF_MONITOR:
            if (!(o->flags & SL__A_STOPPING))
                deliver_sys(c, o, self, SL_KIND_DOWN, SL_PRIO_CRITICAL, r->id, reason, code);
            ref_free(c, r);
            break;
        case SL__REF_LINK:
            ref_free(c, r);
            link_signal(c, o, self, reason, code);
            break;
        case SL__REF_ASK:
            if (!(o->flags & SL__A_STOPPING))
                deliver_sys(c, o, self, SL_KIND_FAIL, r->prio, r->id, SL_ERR_ACTOR_DOWN, 0);
            ref_free(c, r);
            break;
        case SL__REF_RMON: /* a watcher on another node */
            (void)send_signal(c, self, r->target, SL_KIND_DOWN, r->corr, reason, code);
            ref_free(c, r);
            break;
        default:
            ref_free(c, r);
            break;
        }
    }
    c->st.stopped++;
    if (reason == SL_REASON_CRASH)
        c->st.crashed++;
    bool want_room = a->flags & SL__A_WANTROOM;
    sl__free(c, a);
    /* Lanes paused for it resume, to find it gone. */
    if (want_room && c->set.room)
        c->set.room(c, self, c->set.ud);
}

static void process_stops(sl_core *c)
{
    while (c->stop_head) {
        sl_actor *a = c->stop_head;
        c->stop_head = a->rq_next;
        a->rq_next = NULL;
        if (!c->stop_head)
            c->stop_tail = NULL;
        a->flags &= (uint8_t)~SL__A_INSTOPQ;
        terminate(c, a);
    }
}

static void shutdown_one(void *val, void *ud)
{
    sl__stop_request(ud, val, SL_REASON_SHUTDOWN, 0);
}

void sl_core_shutdown(sl_core *c)
{
    c->shutting_down = true;
    sl__idtab_each(&c->actors, shutdown_one, c);
}

void sl_core_del(sl_core *c)
{
    if (!c)
        return;
    c->in_run = true; /* no wake callbacks during teardown */
    c->set.room = NULL;
    sl_core_shutdown(c);
    process_stops(c);
    while (c->actors.count) {
        /* Stop whatever is left, e.g. spawned by an on_stop before the
         * shutdown flag was seen. Bounded: each pass removes an actor. */
        sl_actor *a = sl__idtab_any(&c->actors);
        if (a->flags & SL__A_STOPPING && !(a->flags & SL__A_INSTOPQ))
            terminate(c, a);
        else
            sl__stop_request(c, a, SL_REASON_SHUTDOWN, 0);
        process_stops(c);
    }
    /* Timers and asks are owned by actors, so the heap is empty now. */
    assert(c->heap_len == 0);
    while (c->pool) {
        sl__msg *m = c->pool;
        c->pool = m->next;
        sl__free(c, m);
    }
    for (int k = 0; k < SL__MID_CLASSES; k++) {
        while (c->mid_pool[k]) {
            sl__msg *m = c->mid_pool[k];
            c->mid_pool[k] = m->next;
            sl__free(c, m);
        }
    }
    sl__free(c, c->spare);
    sl__free(c, c->heap);
    sl__idtab_fini(&c->actors);
    sl__map_fini(&c->refs);
    sl__map_fini(&c->rasks);
    sl__reg_del(c);
    sl_mem mem = c->mem;
    mem.free(c, mem.ud);
}

/* --------------------------------------------------------------- send */

static int dead_letter(sl_core *c, sl_id to, uint32_t type)
{
    c->st.dead_letters++;
    if (c->set.dead_letter)
        c->set.dead_letter(c, to, type, c->set.ud);
    return SL_ERR_NOACTOR;
}

/* Key of an ask from another node: its asker and its ask id. */
static uint64_t rask_key(sl_id asker, uint64_t corr)
{
    uint64_t k =
        (corr * 0x9E3779B97F4A7C15ull) ^ (asker.local * 0xC2B2AE3D27D4EB4Full) ^ asker.node;
    return k ? k : 1;
}

static sl__ref *rask_find(const sl_core *c, sl_id asker, uint64_t corr)
{
    sl__ref *r = sl__map_get(&c->rasks, rask_key(asker, corr));
    return (r && r->corr == corr && sl_id_eq(r->target, asker)) ? r : NULL;
}

/* Hand a message for another node to the platform. */
static int send_remote_msg(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint8_t prio,
                           uint32_t type, uint64_t corr, int32_t status, int32_t code,
                           uint16_t flags, const void *data, size_t len)
{
    if (!c->set.remote)
        return dead_letter(c, to, type);
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.from = from;
    m.to = to;
    m.kind = kind;
    m.prio = prio;
    m.type = type;
    m.corr = corr;
    m.status = status;
    m.code = code;
    m.flags = flags;
    m.len = len;
    m.data = len ? data : NULL;
    return c->set.remote(c, &m, c->set.ud);
}

static int send_remote(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint8_t prio, uint32_t type,
                       uint64_t corr, int32_t status, const void *data, size_t len)
{
    return send_remote_msg(c, from, to, kind, prio, type, corr, status, 0, 0, data, len);
}

/* A monitor/link signal for another node (the control plane: CRITICAL). */
static int send_signal(sl_core *c, sl_id from, sl_id to, uint8_t kind, uint64_t corr,
                       int32_t status, int32_t code)
{
    return send_remote_msg(c, from, to, kind, SL_PRIO_CRITICAL, 0, corr, status, code, 0, NULL, 0);
}

/* The common send path; returns the sl_send() codes. Written as one
 * straight line for the common case (live receiver with room, small
 * payload from the pool): this is the hot path of every local message. */
static int send_kind(sl_core *c, sl_id from, sl_id to, uint8_t kind, int prio, uint32_t type,
                     uint64_t corr, const void *data, size_t len, sl_actor **target)
{
    if ((unsigned)prio >= SL_PRIO_COUNT || (len && !data))
        return SL_ERR_INVAL;
    if (len > c->set.max_message_size)
        return SL_ERR_MSG_TOO_BIG;
    if (is_remote(c, to) && to.local != 0) {
        if (target)
            *target = NULL;
        return send_remote(c, from, to, kind, (uint8_t)prio, type, corr, 0, data, len);
    }
    sl_actor *a = lookup(c, to);
    if (!a)
        return dead_letter(c, to, type);
    bool full = a->queued >= a->capacity && is_user_kind(kind);
    if (full && a->overflow == SL_OVERFLOW_REJECT) {
        a->rejected++;
        return SL_ERR_MAILBOX_FULL;
    }
    sl__msg *m = msg_make(c, from, to, kind, (uint8_t)prio, type, corr, data, len);
    if (!m)
        return SL_ERR_NOMEM;
    if (full) {
        int rc = deliver(c, a, m);
        if (rc < 0) {
            msg_free(c, m);
            return rc;
        }
    } else {
        mq_push(a, m);
        c->st.sent++;
        schedule(c, a);
    }
    if (target)
        *target = a;
    return SL_OK;
}

int sl_send(sl_actor *self, sl_id to, uint32_t type, int prio, const void *data, size_t len)
{
    if (!self)
        return SL_ERR_NOT_ACTOR;
    sl_core *c = self->core;
    /* The fast path: a live local receiver with room, no policy to apply.
     * It handles the id as two scalars: copying sl_id structs through the
     * stack made GCC 12 reload them as one 16-byte vector right after two
     * 8-byte stores, a store-forwarding stall that halved throughput. */
    uint64_t tnode = to.node, tlocal = to.local;
    sl_actor *a = NULL;
    if (tnode == c->set.node_id && tlocal != 0 && (unsigned)prio < SL_PRIO_COUNT &&
        (data || !len) && len <= SL__SMALL_CAP) {
        if (tlocal == c->last_local)
            a = c->last_actor;
        else
            a = lookup_any(c, to);
    }
    if (!a || (a->flags & SL__A_STOPPING) || a->queued >= a->capacity)
        return send_kind(c, id_of(c, self), to, SL_KIND_SEND, prio, type, 0, data, len, NULL);
    sl__msg *m = msg_new(c, len);
    if (!m)
        return SL_ERR_NOMEM;
    m->m.from.node = c->set.node_id;
    m->m.from.local = self->local;
    m->m.to.node = tnode;
    m->m.to.local = tlocal;
    m->m.corr = 0;
    m->m.type = type;
    m->m.kind = SL_KIND_SEND;
    m->m.prio = (uint8_t)prio;
    m->m.flags = 0;
    m->m.status = 0;
    m->m.code = 0;
    m->m.len = len;
    m->m.data = len ? m->data : NULL;
    if (len)
        memcpy(m->data, data, len);
    mq_push(a, m);
    c->st.sent++;
    schedule(c, a);
    return SL_OK;
}

int sl_send_unreliable(sl_actor *self, sl_id to, uint32_t type, int prio, const void *data,
                       size_t len)
{
    if (!self)
        return SL_ERR_NOT_ACTOR;
    sl_core *c = self->core;
    if ((unsigned)prio >= SL_PRIO_COUNT || (len && !data))
        return SL_ERR_INVAL;
    if (len > c->set.max_message_size)
        return SL_ERR_MSG_TOO_BIG;
    if (is_remote(c, to) && to.local)
        return send_remote_msg(c, id_of(c, self), to, SL_KIND_SEND, (uint8_t)prio, type, 0, 0, 0,
                               SL_MSG_UNRELIABLE, data, len);
    sl_actor *a = lookup(c, to);
    if (!a)
        return dead_letter(c, to, type);
    if (a->queued >= a->capacity) {
        a->dropped++; /* unreliable: a full mailbox drops it */
        c->st.dropped++;
        return SL_OK;
    }
    return send_kind(c, id_of(c, self), to, SL_KIND_SEND, prio, type, 0, data, len, NULL);
}

size_t sl_unreliable_max(const sl_core *c, sl_id to)
{
    if (!c)
        return 0;
    if (!is_remote(c, to))
        return c->set.max_message_size;
    return c->set.remote_unreliable_max
               ? c->set.remote_unreliable_max((sl_core *)c, to.node, c->set.ud)
               : 0;
}

int sl_core_send(sl_core *c, sl_id to, uint32_t type, int prio, const void *data, size_t len)
{
    if (!c)
        return SL_ERR_INVAL;
    return send_kind(c, SL_ID_NONE, to, SL_KIND_SEND, prio, type, 0, data, len, NULL);
}

static sl__ref *find_link(sl_actor *a, sl_id other);

/* Queue an answer (REPLY, CHUNK, END, FAIL) to the pending ask `r` of the
 * local asker `a`; a final answer ends the ask. Bypasses the mailbox bound
 * (the caller applies it to CHUNKs). Returns SL_OK or SL_ERR_NOMEM. */
static int answer_local(sl_core *c, sl_id from, sl_actor *a, sl__ref *r, uint8_t kind, uint8_t prio,
                        uint32_t type, int32_t status, const void *data, size_t len)
{
    sl__msg *m = msg_make(c, from, id_of(c, a), kind, prio, type, r->id, data, len);
    if (!m)
        return SL_ERR_NOMEM;
    m->m.status = status;
    mq_push(a, m);
    c->st.sent++;
    schedule(c, a);
    if (kind != SL_KIND_CHUNK)
        ref_free(c, r);
    return SL_OK;
}

/* A name as a msgpack str (fixstr, str8, str16) into buf (NUL-terminated). */
static int read_name(const uint8_t *d, size_t len, char *buf, size_t cap)
{
    size_t n, h;
    if (len >= 1 && (d[0] & 0xe0) == 0xa0) {
        n = d[0] & 0x1f;
        h = 1;
    } else if (len >= 2 && d[0] == 0xd9) {
        n = d[1];
        h = 2;
    } else if (len >= 3 && d[0] == 0xda) {
        n = (size_t)d[1] << 8 | d[2];
        h = 3;
    } else {
        return SL_ERR_INVAL;
    }
    if (h + n != len || n == 0 || n >= cap || memchr(d + h, 0, n))
        return SL_ERR_INVAL;
    memcpy(buf, d + h, n);
    buf[n] = 0;
    return SL_OK;
}

static size_t put_u64(uint8_t *p, uint64_t v)
{
    p[0] = 0xcf;
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    return 9;
}

/* Answer an ask addressed to this node's registry (SL_LOCAL_REGISTRY). */
static int registry_answer(sl_core *c, sl_id asker, uint64_t corr, uint8_t prio, uint32_t type,
                           const uint8_t *data, size_t len)
{
    sl_id me = {c->set.node_id, SL_LOCAL_REGISTRY};
    char name[SL_NAME_MAX + 1];
    uint8_t out[19];
    size_t olen = 0;
    uint8_t kind = SL_KIND_REPLY;
    int32_t status = 0;
    sl_id found;
    if (type != SL_TYPE_WHEREIS || read_name(data, len, name, sizeof name)) {
        kind = SL_KIND_FAIL;
        status = SL_ERR_INVAL;
    } else if (sl_whereis(c, name, &found)) {
        kind = SL_KIND_FAIL;
        status = SL_ERR_NOTFOUND;
    } else {
        out[0] = 0x92;
        olen = 1 + put_u64(out + 1, found.node);
        olen += put_u64(out + olen, found.local);
    }
    if (is_remote(c, asker))
        return asker.local
                   ? send_remote_msg(c, me, asker, kind, prio, type, corr, status, 0, 0, out, olen)
                   : SL_OK;
    sl_actor *a = sl__actor_get(c, asker);
    sl__ref *r = sl__map_get(&c->refs, corr);
    if (!a || !r || r->kind != SL__REF_ASK || r->owner != a)
        return SL_OK;
    return answer_local(c, me, a, r, kind, prio, type, status, out, olen);
}

int sl_ask_whereis(sl_actor *self, uint64_t node, const char *name, uint64_t timeout_ms,
                   uint64_t *ask_id)
{
    if (!self)
        return SL_ERR_INVAL;
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SL_NAME_MAX)
        return SL_ERR_BAD_NAME;
    uint8_t buf[SL_NAME_MAX + 3];
    size_t h = 0;
    if (n < 32) {
        buf[h++] = (uint8_t)(0xa0 | n);
    } else {
        buf[h++] = 0xd9;
        buf[h++] = (uint8_t)n;
    }
    memcpy(buf + h, name, n);
    return sl_ask(self, (sl_id){node, SL_LOCAL_REGISTRY}, SL_TYPE_WHEREIS, SL_PRIO_CRITICAL, buf,
                  h + n, timeout_ms, ask_id);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[1 + i];
    return v;
}

int sl_whereis_reply(const sl_msg *m, sl_id *out)
{
    if (!m || m->kind != SL_KIND_REPLY || m->len != 19 || m->data[0] != 0x92 ||
        m->data[1] != 0xcf || m->data[10] != 0xcf)
        return SL_ERR_INVAL;
    if (out) {
        out->node = get_u64(m->data + 1);
        out->local = get_u64(m->data + 10);
    }
    return SL_OK;
}

/* A monitor/link signal from another node (kinds MONITOR..STOP, DOWN, EXIT). */
static int inject_signal(sl_core *c, const sl_msg *m)
{
    sl_actor *a = sl__actor_get(c, m->to);
    switch (m->kind) {
    case SL_KIND_MONITOR: {
        if (!a) /* already gone: the watcher hears DOWN(noproc) */
            return send_signal(c, m->to, m->from, SL_KIND_DOWN, m->corr, SL_REASON_NOPROC, 0);
        uint64_t key = rask_key(m->from, m->corr);
        if (sl__map_get(&c->rasks, key))
            return SL_ERR_INVAL; /* a ref the watcher's node already used */
        sl__ref *r = ref_new(c, SL__REF_RMON, NULL, m->from);
        if (!r)
            return SL_ERR_NOMEM;
        r->corr = m->corr;
        r->id = key;
        if (sl__map_put(&c->rasks, key, r) != SL_OK) {
            sl__free(c, r);
            return SL_ERR_NOMEM;
        }
        watch_add(a, r);
        return SL_OK;
    }
    case SL_KIND_DEMONITOR: {
        sl__ref *r = rask_find(c, m->from, m->corr);
        if (r && r->kind == SL__REF_RMON)
            ref_free(c, r);
        return SL_OK;
    }
    case SL_KIND_LINK: {
        if (!a)
            return send_signal(c, m->to, m->from, SL_KIND_EXIT, 0, SL_REASON_NOPROC, 0);
        if (find_link(a, m->from))
            return SL_OK;
        /* Registered, like every record on a remote actor: a lost node ends it. */
        return remote_ref(c, SL__REF_LINK, a, m->from) ? SL_OK : SL_ERR_NOMEM;
    }
    case SL_KIND_UNLINK:
    case SL_KIND_EXIT: {
        sl__ref *r = a ? find_link(a, m->from) : NULL;
        if (!r)
            return SL_OK; /* unlinked meanwhile, or never linked: nothing to do */
        ref_free(c, r);
        if (m->kind == SL_KIND_EXIT)
            link_signal(c, a, m->from, m->status, m->code);
        return SL_OK;
    }
    case SL_KIND_DOWN: {
        sl__ref *r = sl__map_get(&c->refs, m->corr);
        if (!a || !r || r->kind != SL__REF_MONITOR || r->owner != a ||
            !sl_id_eq(r->target, m->from))
            return SL_OK; /* demonitored meanwhile */
        deliver_sys(c, a, m->from, SL_KIND_DOWN, SL_PRIO_CRITICAL, m->corr, m->status, m->code);
        ref_free(c, r);
        return SL_OK;
    }
    case SL_KIND_STOP:
        if (!a)
            return SL_ERR_NOACTOR;
        if (m->status < SL_REASON_NORMAL || m->status > SL_REASON_SHUTDOWN)
            return SL_ERR_INVAL;
        sl__stop_request(c, a, m->status, 0);
        return SL_OK;
    default:
        return SL_ERR_INVAL;
    }
}

/* sl__core_inject() and sl__core_inject_block(): with `*blk` set, the
 * payload already lies in that block, which is queued instead of a copy
 * (and *blk cleared when it was). */
static int inject(sl_core *c, const sl_msg *m, unsigned how, sl__msg **blk)
{
    if (!c || !m || m->kind >= SL_KIND_WIRE_COUNT)
        return SL_ERR_INVAL;
    if ((unsigned)m->prio >= SL_PRIO_COUNT || (m->len && !m->data))
        return SL_ERR_INVAL;
    if (m->len > c->set.max_message_size)
        return SL_ERR_MSG_TOO_BIG;
    bool remote_from = is_remote(c, m->from) && m->from.local;
    if (m->kind >= SL_KIND_COUNT ||
        (remote_from && (m->kind == SL_KIND_DOWN || m->kind == SL_KIND_EXIT)))
        return remote_from || m->kind == SL_KIND_STOP ? inject_signal(c, m) : SL_ERR_INVAL;
    if (m->kind == SL_KIND_ASK && m->to.local == SL_LOCAL_REGISTRY)
        return registry_answer(c, m->from, m->corr, m->prio, m->type, m->data, m->len);
    sl_actor *a = sl__actor_get(c, m->to);
    if (!a)
        return dead_letter(c, m->to, m->type);
    bool outcome = m->kind == SL_KIND_REPLY || m->kind == SL_KIND_CHUNK || m->kind == SL_KIND_END ||
                   m->kind == SL_KIND_FAIL;
    sl__ref *r = NULL;
    if (outcome) {
        /* An answer from another node to one of our asks: it must still be
         * pending, owned by the addressee; otherwise it is late. */
        r = sl__map_get(&c->refs, m->corr);
        if (!r || r->kind != SL__REF_ASK || r->owner != a) {
            c->st.late_replies++;
            return SL_ERR_CANCELLED;
        }
    }
    if (is_user_kind(m->kind) && a->queued >= a->capacity) {
        if (how & SL__INJECT_FLOW) {
            /* The platform pauses the lane and resumes it on room(). */
            a->flags |= SL__A_WANTROOM;
            return SL_ERR_AGAIN;
        }
        if ((how & SL__INJECT_LOSSY) || (m->flags & SL_MSG_UNRELIABLE)) {
            a->dropped++;
            c->st.dropped++;
            return SL_OK;
        }
        if (m->kind == SL_KIND_CHUNK) {
            a->rejected++;
            return SL_ERR_MAILBOX_FULL;
        }
    }
    if (m->kind == SL_KIND_CANCEL && remote_from) {
        sl__ref *ra = rask_find(c, m->from, m->corr);
        if (ra && ra->kind == SL__REF_RASK)
            ref_free(c, ra); /* further replies get SL_ERR_CANCELLED */
    }
    sl__msg *q;
    if (*blk) {
        q = *blk;
        q->next = NULL;
        q->m.from = m->from;
        q->m.to = m->to;
        q->m.corr = m->corr;
        q->m.type = m->type;
        q->m.kind = m->kind;
        q->m.prio = m->prio;
        q->m.len = m->len;
        q->m.data = m->len ? m->data : NULL;
    } else {
        q = msg_make(c, m->from, m->to, m->kind, m->prio, m->type, m->corr, m->data, m->len);
        if (!q)
            return SL_ERR_NOMEM;
    }
    q->m.status = m->status;
    q->m.code = m->code;
    q->m.flags = m->flags;
    int rc = deliver(c, a, q);
    if (rc < 0) {
        if (q != *blk)
            msg_free(c, q);
        return rc;
    }
    *blk = NULL; /* queued (or freed by the overflow policy): the core's now */
    if (r && m->kind != SL_KIND_CHUNK)
        ref_free(c, r); /* the ask is over */
    if (m->kind == SL_KIND_ASK && remote_from) {
        /* Remember it: if this actor stops before answering, the asker's
         * node must hear FAIL(ACTOR_DOWN) now rather than at its deadline. */
        uint64_t key = rask_key(m->from, m->corr);
        sl__ref *ra = sl__map_get(&c->rasks, key) ? NULL : ref_new(c, SL__REF_RASK, a, m->from);
        if (ra) {
            ra->corr = m->corr;
            ra->prio = m->prio;
            ra->id = key;
            if (sl__map_put(&c->rasks, ra->id, ra) == SL_OK) {
                owned_add(a, ra);
            } else {
                sl__free(c, ra); /* untracked: the asker's deadline still ends it */
            }
        }
    }
    return SL_OK;
}

int sl__core_inject(sl_core *c, const sl_msg *m, unsigned how)
{
    sl__msg *none = NULL;
    return inject(c, m, how, &none);
}

sl__msg *sl__core_block_new(sl_core *c, size_t room, uint8_t **data)
{
    if (!c || !data || room > UINT32_MAX)
        return NULL;
    sl__msg *b = msg_new(c, room);
    if (b)
        *data = b->data;
    return b;
}

void sl__core_block_free(sl_core *c, sl__msg *b)
{
    if (b)
        msg_free(c, b);
}

void sl__core_trim(sl_core *c, uint64_t now_ns)
{
    c->trims = true;
    if (c->spare && now_ns - c->spare_at > SL__SPARE_NS) {
        sl__free(c, c->spare);
        c->spare = NULL;
    }
}

int sl__core_inject_block(sl_core *c, const sl_msg *m, unsigned how, sl__msg *b)
{
    if (!b ||
        (m && m->len &&
         (m->data < b->data || m->len > b->cap || (size_t)(m->data - b->data) > b->cap - m->len)))
        return SL_ERR_INVAL;
    int rc = inject(c, m, how, &b);
    if (rc == SL_OK && b)
        msg_free(c, b); /* answered without queueing it (registry, signal, dropped) */
    return rc;
}

size_t sl__core_node_down(sl_core *c, uint64_t node, int err, int reason)
{
    size_t n = 0;
    /* Collect first: ending a record changes the map. Bounded by the map. */
    for (size_t i = 0; i < c->refs.cap; i++) {
        sl__ref *r = c->refs.slots[i].key ? c->refs.slots[i].val : NULL;
        if (!r || r->target.node == c->set.node_id ||
            (node != SL__NODE_ALL && r->target.node != node))
            continue;
        if (r->kind == SL__REF_ASK) {
            deliver_sys(c, r->owner, r->target, SL_KIND_FAIL, r->prio, r->id, err, 0);
        } else if (r->kind == SL__REF_MONITOR) {
            deliver_sys(c, r->owner, r->target, SL_KIND_DOWN, SL_PRIO_CRITICAL, r->id, reason, 0);
        } else if (r->kind == SL__REF_LINK) {
            sl_actor *o = r->owner;
            sl_id t = r->target;
            ref_free(c, r);
            link_signal(c, o, t, reason, 0);
            n++;
            i--;
            continue;
        } else {
            continue;
        }
        ref_free(c, r);
        n++;
        i--; /* backward-shift deletion may have moved an entry into slot i */
    }
    for (size_t i = 0; i < c->rasks.cap; i++) {
        sl__ref *r = c->rasks.slots[i].key ? c->rasks.slots[i].val : NULL;
        if (!r || (node != SL__NODE_ALL && r->target.node != node))
            continue;
        ref_free(c, r); /* nobody to answer or to tell any more */
        i--;
    }
    return n;
}

/* ------------------------------------------------------------- timers */

/* The current time: the run's time inside sl_core_run(), else the
 * platform's clock when it gave one (time never goes backwards). */
static uint64_t current_time(sl_core *c)
{
    if (!c->in_run && c->set.clock) {
        uint64_t t = c->set.clock(c->set.ud);
        if (t > c->now)
            c->now = t;
    }
    return c->now;
}

static uint64_t deadline_after(sl_core *c, uint64_t ms)
{
    current_time(c);
    if (ms > (UINT64_MAX - c->now) / NS_PER_MS)
        return UINT64_MAX - 1;
    return c->now + ms * NS_PER_MS;
}

static int timer_start(sl_actor *self, sl_id to, uint64_t ms, bool periodic, uint32_t type,
                       int prio, const void *data, size_t len, uint64_t *timer_id)
{
    sl_core *c = self->core;
    if ((unsigned)prio >= SL_PRIO_COUNT || (len && !data) || (periodic && ms == 0))
        return SL_ERR_INVAL;
    if (len > c->set.max_message_size)
        return SL_ERR_MSG_TOO_BIG;
    sl__ref *r = ref_new(c, SL__REF_TIMER, self, to);
    if (!r)
        return SL_ERR_NOMEM;
    if (len) {
        r->data = sl__alloc(c, len);
        if (!r->data) {
            sl__free(c, r);
            return SL_ERR_NOMEM;
        }
        memcpy(r->data, data, len);
    }
    r->len = len;
    r->type = type;
    r->prio = (uint8_t)prio;
    r->period = periodic ? ms * NS_PER_MS : 0;
    r->deadline = deadline_after(c, ms);
    if (heap_reserve(c) || ref_register(c, r)) {
        sl__free(c, r->data);
        sl__free(c, r);
        return SL_ERR_NOMEM;
    }
    owned_add(self, r);
    heap_push(c, r);
    if (timer_id)
        *timer_id = r->id;
    return SL_OK;
}

int sl_send_after(sl_actor *self, sl_id to, uint64_t delay_ms, uint32_t type, int prio,
                  const void *data, size_t len, uint64_t *timer_id)
{
    if (!self)
        return SL_ERR_INVAL;
    return timer_start(self, to, delay_ms, false, type, prio, data, len, timer_id);
}

int sl_send_every(sl_actor *self, sl_id to, uint64_t period_ms, uint32_t type, int prio,
                  const void *data, size_t len, uint64_t *timer_id)
{
    if (!self)
        return SL_ERR_INVAL;
    return timer_start(self, to, period_ms, true, type, prio, data, len, timer_id);
}

int sl_timer_cancel(sl_actor *self, uint64_t timer_id)
{
    if (!self)
        return SL_ERR_INVAL;
    sl__ref *r = sl__map_get(&self->core->refs, timer_id);
    if (!r || r->kind != SL__REF_TIMER || r->owner != self)
        return SL_ERR_NOTFOUND;
    ref_free(self->core, r);
    return SL_OK;
}

/* --------------------------------------------------------------- asks */

int sl_ask(sl_actor *self, sl_id to, uint32_t type, int prio, const void *data, size_t len,
           uint64_t timeout_ms, uint64_t *ask_id)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    if ((unsigned)prio >= SL_PRIO_COUNT)
        return SL_ERR_INVAL;
    sl__ref *r = ref_new(c, SL__REF_ASK, self, to);
    if (!r)
        return SL_ERR_NOMEM;
    r->prio = (uint8_t)prio;
    if ((timeout_ms && heap_reserve(c)) || ref_register(c, r)) {
        sl__free(c, r);
        return SL_ERR_NOMEM;
    }
    sl_actor *t = NULL;
    bool reg = to.local == SL_LOCAL_REGISTRY && !is_remote(c, to);
    int rc = reg ? SL_OK
                 : send_kind(c, id_of(c, self), to, SL_KIND_ASK, prio, type, r->id, data, len, &t);
    if (rc) {
        sl__map_del(&c->refs, r->id);
        sl__free(c, r);
        return rc;
    }
    owned_add(self, r);
    if (t)
        watch_add(t, r); /* a remote target's death comes as FAIL from its node */
    if (timeout_ms) {
        r->deadline = deadline_after(c, timeout_ms);
        heap_push(c, r);
    }
    if (ask_id)
        *ask_id = r->id;
    if (reg)
        registry_answer(c, id_of(c, self), r->id, (uint8_t)prio, type, data, len);
    return SL_OK;
}

int sl_ask_cancel(sl_actor *self, uint64_t ask_id)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    sl__ref *r = sl__map_get(&c->refs, ask_id);
    if (!r || r->kind != SL__REF_ASK || r->owner != self)
        return SL_ERR_NOTFOUND;
    if (r->t_actor && !(r->t_actor->flags & SL__A_STOPPING))
        deliver_sys(c, r->t_actor, id_of(c, self), SL_KIND_CANCEL, SL_PRIO_CRITICAL, r->id, 0, 0);
    else if (is_remote(c, r->target))
        (void)send_remote(c, id_of(c, self), r->target, SL_KIND_CANCEL, SL_PRIO_CRITICAL, 0, r->id,
                          0, NULL, 0);
    /* Chunks already queued for it must not surface after the cancel. */
    mq_purge_corr(c, self, ask_id, SL_KIND_CHUNK);
    ref_free(c, r);
    return SL_OK;
}

/* Fire a due ask deadline: FAIL(TIMEOUT) to the asker, CANCEL to the replier. */
static void ask_timeout(sl_core *c, sl__ref *r)
{
    sl_actor *o = r->owner;
    c->st.timeouts++;
    if (r->t_actor && !(r->t_actor->flags & SL__A_STOPPING))
        deliver_sys(c, r->t_actor, id_of(c, o), SL_KIND_CANCEL, SL_PRIO_CRITICAL, r->id, 0, 0);
    else if (is_remote(c, r->target))
        (void)send_remote(c, id_of(c, o), r->target, SL_KIND_CANCEL, SL_PRIO_CRITICAL, 0, r->id, 0,
                          NULL, 0);
    deliver_sys(c, o, r->target, SL_KIND_FAIL, r->prio, r->id, SL_ERR_TIMEOUT, 0);
    ref_free(c, r);
}

static int reply_kind(sl_actor *self, sl_req req, uint8_t kind, uint32_t type, const void *data,
                      size_t len, int32_t status)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    if (len && !data)
        return SL_ERR_INVAL;
    if (len > c->set.max_message_size)
        return SL_ERR_MSG_TOO_BIG;
    if (is_remote(c, req.asker) && req.asker.local) {
        /* Only an ask we accepted and that was neither answered nor
         * cancelled may be answered; the asker's node also drops what
         * comes late. */
        sl__ref *ra = rask_find(c, req.asker, req.corr);
        if (!ra || ra->kind != SL__REF_RASK) {
            c->st.late_replies++;
            return SL_ERR_CANCELLED;
        }
        uint8_t p = req.prio < SL_PRIO_COUNT ? req.prio : ra->prio;
        int rc =
            send_remote(c, id_of(c, self), req.asker, kind, p, type, req.corr, status, data, len);
        if (rc == SL_OK && kind != SL_KIND_CHUNK)
            ref_free(c, ra);
        return rc;
    }
    sl_actor *asker = sl__actor_get(c, req.asker);
    sl__ref *r = sl__map_get(&c->refs, req.corr);
    if (!asker) {
        c->st.late_replies++;
        return SL_ERR_NOACTOR;
    }
    if (!r || r->kind != SL__REF_ASK || r->owner != asker) {
        c->st.late_replies++;
        return SL_ERR_CANCELLED;
    }
    uint8_t prio = req.prio < SL_PRIO_COUNT ? req.prio : r->prio;
    if (kind == SL_KIND_CHUNK && asker->queued >= asker->capacity) {
        asker->rejected++;
        return SL_ERR_MAILBOX_FULL;
    }
    return answer_local(c, id_of(c, self), asker, r, kind, prio, type, status, data, len);
}

int sl_reply(sl_actor *self, sl_req req, uint32_t type, const void *data, size_t len)
{
    return reply_kind(self, req, SL_KIND_REPLY, type, data, len, 0);
}

int sl_reply_chunk(sl_actor *self, sl_req req, uint32_t type, const void *data, size_t len)
{
    return reply_kind(self, req, SL_KIND_CHUNK, type, data, len, 0);
}

int sl_reply_end(sl_actor *self, sl_req req, uint32_t type, const void *data, size_t len)
{
    return reply_kind(self, req, SL_KIND_END, type, data, len, 0);
}

int sl_reply_error(sl_actor *self, sl_req req, int err)
{
    if (err >= 0)
        return SL_ERR_INVAL;
    return reply_kind(self, req, SL_KIND_FAIL, 0, NULL, 0, err);
}

/* ---------------------------------------------------- monitors, links */

int sl_monitor(sl_actor *self, sl_id target, uint64_t *ref)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    sl_actor *t = sl__actor_get_any(c, target);
    if (!t && is_remote(c, target) && target.local && c->set.remote) {
        /* An actor on another node: DOWN(noconnection) when the node is
         * lost (sl__core_node_down). */
        sl__ref *r = remote_ref(c, SL__REF_MONITOR, self, target);
        if (!r)
            return SL_ERR_NOMEM;
        if (ref)
            *ref = r->id;
        /* Its node keeps the watch and sends DOWN when it stops. */
        int rc = send_signal(c, id_of(c, self), target, SL_KIND_MONITOR, r->id, 0, 0);
        if (rc == SL_ERR_NOCONN || rc == SL_ERR_NOACTOR) {
            /* Unreachable now: the watcher hears it at once. */
            deliver_sys(c, self, target, SL_KIND_DOWN, SL_PRIO_CRITICAL, r->id,
                        rc == SL_ERR_NOCONN ? SL_REASON_NOCONNECTION : SL_REASON_NOPROC, 0);
            ref_free(c, r);
        } else if (rc) {
            ref_free(c, r);
            return rc;
        }
        return SL_OK;
    }
    if (!t) {
        /* Already dead: DOWN(NOPROC) at once, nothing to keep. */
        uint64_t id = ++c->next_ref;
        sl__msg *m =
            msg_make(c, target, id_of(c, self), SL_KIND_DOWN, SL_PRIO_CRITICAL, 0, id, NULL, 0);
        if (!m)
            return SL_ERR_NOMEM;
        m->m.status = SL_REASON_NOPROC;
        (void)deliver(c, self, m);
        if (ref)
            *ref = id;
        return SL_OK;
    }
    sl__ref *r = ref_new(c, SL__REF_MONITOR, self, target);
    if (!r)
        return SL_ERR_NOMEM;
    if (ref_register(c, r)) {
        sl__free(c, r);
        return SL_ERR_NOMEM;
    }
    owned_add(self, r);
    watch_add(t, r);
    if (ref)
        *ref = r->id;
    return SL_OK;
}

int sl_demonitor(sl_actor *self, uint64_t ref)
{
    if (!self)
        return SL_ERR_INVAL;
    sl__ref *r = sl__map_get(&self->core->refs, ref);
    if (!r || r->kind != SL__REF_MONITOR || r->owner != self)
        return SL_ERR_NOTFOUND;
    if (is_remote(self->core, r->target))
        (void)send_signal(self->core, sl_self(self), r->target, SL_KIND_DEMONITOR, ref, 0, 0);
    ref_free(self->core, r);
    return SL_OK;
}

static sl__ref *find_link(sl_actor *a, sl_id other)
{
    for (sl__ref *r = a->owned; r; r = r->o_next)
        if (r->kind == SL__REF_LINK && sl_id_eq(r->target, other))
            return r;
    return NULL;
}

int sl_link(sl_actor *self, sl_id other)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    sl_id me = id_of(c, self);
    if (sl_id_eq(me, other))
        return SL_ERR_INVAL;
    if (find_link(self, other))
        return SL_OK;
    if (is_remote(c, other) && other.local && c->set.remote) {
        /* Both ends keep a record; each node sends EXIT when its end
         * stops, and a lost node breaks the link (registered for that). */
        sl__ref *r = remote_ref(c, SL__REF_LINK, self, other);
        if (!r)
            return SL_ERR_NOMEM;
        int rc = send_signal(c, me, other, SL_KIND_LINK, 0, 0, 0);
        if (rc == SL_ERR_NOCONN || rc == SL_ERR_NOACTOR) {
            ref_free(c, r);
            link_signal(c, self, other,
                        rc == SL_ERR_NOCONN ? SL_REASON_NOCONNECTION : SL_REASON_NOPROC, 0);
        } else if (rc) {
            ref_free(c, r);
            return rc;
        }
        return SL_OK;
    }
    sl_actor *t = sl__actor_get_any(c, other);
    if (!t) {
        link_signal(c, self, other, SL_REASON_NOPROC, 0);
        return SL_OK;
    }
    sl__ref *r1 = ref_new(c, SL__REF_LINK, self, other);
    sl__ref *r2 = ref_new(c, SL__REF_LINK, t, me);
    if (!r1 || !r2) {
        sl__free(c, r1);
        sl__free(c, r2);
        return SL_ERR_NOMEM;
    }
    owned_add(self, r1);
    watch_add(t, r1);
    owned_add(t, r2);
    watch_add(self, r2);
    return SL_OK;
}

int sl_unlink(sl_actor *self, sl_id other)
{
    if (!self)
        return SL_ERR_INVAL;
    sl_core *c = self->core;
    sl__ref *r1 = find_link(self, other);
    if (!r1)
        return SL_ERR_NOTFOUND;
    sl_actor *t = r1->t_actor;
    ref_free(c, r1);
    if (is_remote(c, other))
        (void)send_signal(c, id_of(c, self), other, SL_KIND_UNLINK, 0, 0, 0);
    if (t) {
        sl__ref *r2 = find_link(t, id_of(c, self));
        if (r2)
            ref_free(c, r2);
    }
    return SL_OK;
}

void sl_trap_exit(sl_actor *self, bool on)
{
    if (on)
        self->flags |= SL__A_TRAP;
    else
        self->flags &= (uint8_t)~SL__A_TRAP;
}

/* ---------------------------------------------------------------- run */

static void fire_timers(sl_core *c)
{
    while (c->heap_len && c->heap[0]->deadline <= c->now) {
        sl__ref *r = c->heap[0];
        if (r->kind == SL__REF_ASK) {
            ask_timeout(c, r);
            continue;
        }
        /* A timer: deliver its message. */
        sl_actor *t = sl__actor_get(c, r->target);
        int rc = SL_ERR_NOACTOR;
        if (t) {
            sl__msg *m = msg_make(c, id_of(c, r->owner), r->target, SL_KIND_SEND, r->prio, r->type,
                                  r->id, r->data, r->len);
            rc = m ? deliver(c, t, m) : SL_ERR_NOMEM;
            if (rc < 0 && m)
                msg_free(c, m);
        } else {
            dead_letter(c, r->target, r->type);
        }
        if (r->period && rc != SL_ERR_NOACTOR) {
            heap_remove(c, r);
            r->deadline += r->period;
            if (r->deadline <= c->now) /* fell behind: do not burst */
                r->deadline = c->now + r->period;
            heap_push(c, r); /* cannot fail: the slot was just freed */
        } else {
            ref_free(c, r);
        }
    }
}

size_t sl_core_run(sl_core *c, uint64_t now_ns, size_t max_msgs)
{
    if (now_ns > c->now)
        c->now = now_ns;
    c->in_run = true;
    c->wake_pending = false;
    fire_timers(c);
    process_stops(c);
    size_t n = 0;
    const uint32_t batch = c->set.batch;
    sl_actor *a;
    while ((a = rq_pop(c)) != NULL) {
        const sl_behavior *beh = a->beh;
        uint32_t k = 0, limit = batch;
        if (max_msgs && max_msgs - n < limit)
            limit = (uint32_t)(max_msgs - n);
        a->flags |= SL__A_RUNNING;
        while (k < limit && a->nonempty) {
            sl__msg *m = mq_pop(a);
            int rc = beh->on_message ? beh->on_message(a, &m->m) : 0;
            msg_free(c, m);
            k++;
            if (rc)
                sl__stop_request(c, a, SL_REASON_CRASH, rc);
            if (a->flags & SL__A_STOPPING)
                break;
        }
        a->flags &= (uint8_t)~SL__A_RUNNING;
        a->processed += k;
        n += k;
        if (!(a->flags & SL__A_STOPPING) && a->nonempty)
            rq_push(c, a);
        if ((a->flags & SL__A_WANTROOM) && a->queued <= a->capacity / 2) {
            /* After the re-queue: what room() delivers schedules `a` itself. */
            a->flags &= (uint8_t)~SL__A_WANTROOM;
            if (c->set.room)
                c->set.room(c, id_of(c, a), c->set.ud);
        }
        if (c->stop_head)
            process_stops(c);
        if (max_msgs && n >= max_msgs)
            break;
    }
    c->st.processed += n;
    c->in_run = false;
    return n;
}
