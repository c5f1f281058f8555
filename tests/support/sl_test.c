/*
 * sl_test.c: the counting allocator, the fake-clock driver and the probe actor
 * shared by the actor-core test suites. See sl_test.h for the design.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_test.h"

/* ------------------------------------------------------------ assertions */

void slt_assert_err(int got, int want, const char *expr, const char *file, int line)
{
    if (got == want)
        return;
    print_error("%s:%d: %s returned %s (%d), expected %s (%d)\n", file, line, expr,
                sl_err_name(got), got, sl_err_name(want), want);
    _fail(file, line);
}

void slt_assert_id(sl_id a, sl_id b, int equal, const char *file, int line)
{
    if (sl_id_eq(a, b) == (equal != 0))
        return;
    print_error("%s:%d: ids %016" PRIx64 ".%" PRIu64 " and %016" PRIx64 ".%" PRIu64
                " should be %s\n",
                file, line, a.node, a.local, b.node, b.local, equal ? "equal" : "different");
    _fail(file, line);
}

const char *slt_kind_name(int kind)
{
    static const char *const names[] = {"SEND", "ASK",    "REPLY", "CHUNK", "END",
                                        "FAIL", "CANCEL", "DOWN",  "EXIT"};
    return (kind >= 0 && kind < (int)(sizeof names / sizeof names[0])) ? names[kind] : "?";
}

/* ------------------------------------------------------ counting allocator */

#define LIVE_MAGIC 0x5117a110c8ed0001ull
#define DEAD_MAGIC 0x5117a110deadbeefull
#define FRESH_BYTE 0xCD /* fresh malloc memory: a core relying on zeroes sees garbage */
#define FREED_BYTE 0xDD /* freed memory */

typedef union hdr {
    struct {
        size_t size;
        uint64_t magic;
    } h;
    max_align_t align;
} hdr;

static slt_mem *mem_of(void *ud)
{
    return (slt_mem *)ud;
}

/* Count an attempt; returns 1 if it must fail. */
static int attempt(slt_mem *m)
{
    m->calls++;
    if (m->fail_at && (m->calls == m->fail_at || (m->fail_sticky && m->calls > m->fail_at))) {
        m->failed++;
        return 1;
    }
    return 0;
}

static void *raw_alloc(slt_mem *m, size_t size, int zero)
{
    if (size > SIZE_MAX - sizeof(hdr))
        return NULL;
    hdr *h = malloc(sizeof(hdr) + size);
    if (!h)
        return NULL;
    h->h.size = size;
    h->h.magic = LIVE_MAGIC;
    memset(h + 1, zero ? 0 : FRESH_BYTE, size);
    m->live++;
    m->live_bytes += size;
    m->allocs++;
    if (m->live > m->peak)
        m->peak = m->live;
    if (m->live_bytes > m->peak_bytes)
        m->peak_bytes = m->live_bytes;
    return h + 1;
}

static void *cm_malloc(size_t size, void *ud)
{
    slt_mem *m = mem_of(ud);
    if (attempt(m))
        return NULL;
    return raw_alloc(m, size, 0);
}

static void *cm_calloc(size_t n, size_t size, void *ud)
{
    slt_mem *m = mem_of(ud);
    if (attempt(m))
        return NULL;
    if (size && n > SIZE_MAX / size)
        return NULL;
    return raw_alloc(m, n * size, 1);
}

static void cm_free(void *ptr, void *ud)
{
    slt_mem *m = mem_of(ud);
    if (!ptr)
        return;
    hdr *h = (hdr *)ptr - 1;
    if (h->h.magic != LIVE_MAGIC) {
        m->bad_frees++; /* double free or foreign pointer: leak it rather than crash */
        return;
    }
    m->live--;
    m->live_bytes -= h->h.size;
    m->frees++;
    h->h.magic = DEAD_MAGIC;
    memset(ptr, FREED_BYTE, h->h.size);
    free(h);
}

static void *cm_realloc(void *ptr, size_t size, void *ud)
{
    slt_mem *m = mem_of(ud);
    if (!ptr)
        return cm_malloc(size, ud);
    hdr *h = (hdr *)ptr - 1;
    if (h->h.magic != LIVE_MAGIC) {
        m->bad_frees++;
        return NULL;
    }
    if (size == 0) { /* glibc semantics: free and return NULL */
        cm_free(ptr, ud);
        return NULL;
    }
    if (attempt(m))
        return NULL; /* the old block stays valid, as with realloc */
    void *n = raw_alloc(m, size, 0);
    if (!n)
        return NULL;
    memcpy(n, ptr, h->h.size < size ? h->h.size : size);
    cm_free(ptr, ud);
    m->frees--; /* a move, not a user-visible free */
    return n;
}

void slt_mem_init(slt_mem *m)
{
    memset(m, 0, sizeof *m);
    m->hooks.malloc = cm_malloc;
    m->hooks.free = cm_free;
    m->hooks.calloc = cm_calloc;
    m->hooks.realloc = cm_realloc;
    m->hooks.ud = m;
}

void slt_mem_fail_after(slt_mem *m, uint64_t n, int sticky)
{
    m->fail_at = m->calls + n;
    m->fail_sticky = sticky;
}

void slt_mem_fail_off(slt_mem *m)
{
    m->fail_at = 0;
    m->fail_sticky = 0;
}

/* ----------------------------------------------------------- environment */

static void env_wake(sl_core *core, void *ud)
{
    (void)core;
    ((slt_env *)ud)->wakes++;
}

static void env_dead_letter(sl_core *core, sl_id to, uint32_t type, void *ud)
{
    slt_env *e = ud;
    (void)core;
    if (e->dead_n < SLT_DEAD_MAX) {
        e->dead_to[e->dead_n] = to;
        e->dead_type[e->dead_n] = type;
    }
    e->dead_n++;
}

void slt_env_init(slt_env *e)
{
    memset(e, 0, sizeof *e);
    slt_orphan_stops = 0;
    slt_mem_init(&e->mem);
    sl_core_settings_default(&e->settings);
    e->settings.node_id = SLT_NODE;
    e->settings.mem = &e->mem.hooks;
    e->settings.wake = env_wake;
    e->settings.dead_letter = env_dead_letter;
    e->settings.ud = e;
    e->now = SLT_T0;
}

/*
 * Cores that were started and not closed yet. When a test fails, cmocka
 * jumps out of it and its core is never deleted; keeping it reachable from
 * here stops LeakSanitizer from reporting that as a second, unrelated
 * failure. Passing tests close their cores and prove zero live allocations.
 */
#define OPEN_MAX 64
static sl_core *open_cores[OPEN_MAX];

static void remember_core(sl_core *c, int add)
{
    for (int i = 0; i < OPEN_MAX; i++) {
        if (add ? open_cores[i] == NULL : open_cores[i] == c) {
            open_cores[i] = add ? c : NULL;
            return;
        }
    }
}

void slt_env_start(slt_env *e)
{
    SLT_OK(sl_core_new(&e->settings, &e->core));
    remember_core(e->core, 1);
    assert_non_null(e->core);
    sl_core_run(e->core, e->now, 0);
}

void slt_env_open(slt_env *e)
{
    slt_env_init(e);
    slt_env_start(e);
}

void slt_env_close(slt_env *e)
{
    uint64_t allocs_before_del = e->mem.allocs;
    remember_core(e->core, 0);
    sl_core_del(e->core);
    e->core = NULL;
    if (e->mem.live != 0)
        print_error("leak: %zu blocks (%zu bytes) still allocated after sl_core_del\n", e->mem.live,
                    e->mem.live_bytes);
    assert_int_equal(e->mem.live, 0);
    assert_int_equal(e->mem.live_bytes, 0);
    if (e->mem.bad_frees)
        print_error("%" PRIu64 " frees of pointers not allocated by the sl_mem hook\n",
                    e->mem.bad_frees);
    assert_int_equal(e->mem.bad_frees, 0);
    if (slt_orphan_stops)
        print_error("%d on_stop calls for actors whose on_start never ran\n", slt_orphan_stops);
    assert_int_equal(slt_orphan_stops, 0);
    /* The core must really use the allocator it was given, or none of this proves anything. */
    (void)allocs_before_del;
    assert_true(e->mem.allocs > 0);
}

#define RUN_MAX_CALLS 200
#define RUN_BATCH 10000
#define STEP_MAX 100000

size_t slt_run(slt_env *e)
{
    size_t total = 0;
    for (int i = 0;; i++) {
        if (i >= RUN_MAX_CALLS) {
            print_error("slt_run: the core still has work after %d sl_core_run calls (%zu "
                        "messages): something loops\n",
                        i, total);
            fail();
        }
        total += sl_core_run(e->core, e->now, RUN_BATCH);
        if (!sl_core_has_work(e->core))
            break;
    }
    return total;
}

/* Step to deadline `d` (never beyond `limit`) and run; fails if a deadline never fires. */
static size_t step_to(slt_env *e, uint64_t d, int *stuck)
{
    if (d <= e->now) {
        /* A deadline at or before now should have fired in the last run. */
        if (++*stuck > 3) {
            print_error("deadline %" PRIu64 " <= now %" PRIu64 " keeps being reported but "
                        "does not fire\n",
                        d, e->now);
            fail();
        }
    } else {
        *stuck = 0;
        e->now = d;
    }
    return slt_run(e);
}

size_t slt_advance_ns(slt_env *e, uint64_t ns)
{
    uint64_t target = e->now + ns;
    size_t total = slt_run(e);
    int stuck = 0;
    for (int steps = 0;; steps++) {
        if (steps >= STEP_MAX) {
            print_error("slt_advance: more than %d deadlines in the window\n", STEP_MAX);
            fail();
        }
        uint64_t d = sl_core_next_deadline(e->core);
        if (d == UINT64_MAX || d > target)
            break;
        total += step_to(e, d, &stuck);
    }
    e->now = target;
    total += slt_run(e);
    return total;
}

size_t slt_advance(slt_env *e, uint64_t ms)
{
    return slt_advance_ns(e, ms * SLT_MS);
}

size_t slt_run_idle(slt_env *e)
{
    size_t total = slt_run(e);
    int stuck = 0;
    for (int steps = 0;; steps++) {
        if (steps >= STEP_MAX) {
            print_error("slt_run_idle: still deadlines after %d steps (a periodic timer?)\n",
                        STEP_MAX);
            fail();
        }
        uint64_t d = sl_core_next_deadline(e->core);
        if (d == UINT64_MAX)
            break;
        total += step_to(e, d, &stuck);
    }
    return total;
}

sl_core_stats slt_stats(slt_env *e)
{
    sl_core_stats s;
    memset(&s, 0, sizeof s);
    sl_core_stats_get(e->core, &s);
    return s;
}

sl_actor_stats slt_astats(slt_env *e, sl_id id)
{
    sl_actor_stats s;
    memset(&s, 0, sizeof s);
    SLT_OK(sl_actor_stats_get(e->core, id, &s));
    return s;
}

/* ---------------------------------------------------------------- probes */

typedef struct slt_exec_msg {
    slt_fn fn;
    void *ud;
    uint64_t token;
} slt_exec_msg;

/* Core-owned state of the stateful probe. `zero` must be zero on start. */
typedef struct stateful_state {
    uint64_t zero[6];
    slt_probe *p;
    uint64_t count;
} stateful_state;

void slt_probe_init(slt_probe *p, slt_env *e, const char *label)
{
    memset(p, 0, sizeof *p);
    p->env = e;
    p->label = label;
    p->stop_reason = -1;
}

static int common_start(sl_actor *self, slt_probe *p)
{
    p->id = sl_self(self);
    if (p->starts == 0)
        p->first_id = p->id;
    p->starts++;
    p->start_seq = ++p->env->seq;
    if (sl_actor_core(self) != p->env->core && p->env->core != NULL)
        p->bad_core++;
    return p->start_hook ? p->start_hook(self, p) : 0;
}

static int common_msg(sl_actor *self, const sl_msg *m, slt_probe *p, uint64_t count)
{
    if (sl_actor_core(self) != p->env->core)
        p->bad_core++;
    if (m->kind == SL_KIND_SEND) {
        if (m->type == SLT_T_EXEC && m->len == sizeof(slt_exec_msg)) {
            slt_exec_msg x;
            memcpy(&x, m->data, sizeof x);
            p->ctl++;
            int rc = x.fn(self, p, x.ud);
            p->env->exec_done = x.token;
            return rc;
        }
        if (m->type == SLT_T_CRASH && m->len == 4) {
            int32_t code;
            memcpy(&code, m->data, 4);
            p->ctl++;
            return code;
        }
        if (m->type == SLT_T_EXIT && m->len == 8) {
            int32_t rc[2];
            memcpy(rc, m->data, 8);
            p->ctl++;
            sl_exit(self, rc[0], rc[1]);
            return 0;
        }
    }
    if (p->n < SLT_LOG_MAX) {
        slt_rec *r = &p->log[p->n];
        memset(r, 0, sizeof *r);
        r->from = m->from;
        r->to = m->to;
        r->corr = m->corr;
        r->type = m->type;
        r->kind = m->kind;
        r->prio = m->prio;
        r->flags = m->flags;
        r->status = m->status;
        r->code = m->code;
        r->len = m->len;
        r->data_null = m->data == NULL;
        if (m->data && m->len)
            memcpy(r->data, m->data, m->len < SLT_DATA_MAX ? m->len : SLT_DATA_MAX);
        r->at = sl_core_now(p->env->core);
        r->seq = ++p->env->seq;
        r->count = count;
        r->self = sl_self(self);
    }
    p->n++;
    return p->msg_hook ? p->msg_hook(self, m, p) : 0;
}

static void common_stop(sl_actor *self, int reason, slt_probe *p)
{
    if (p->stops < 8)
        p->stop_reasons[p->stops] = reason;
    p->stops++;
    p->stop_reason = reason;
    p->stop_seq = ++p->env->seq;
    if (p->env->core)
        p->stop_at = sl_core_now(p->env->core);
    if (p->stop_hook)
        p->stop_hook(self, reason, p);
}

static int probe_on_start(sl_actor *self, void *arg)
{
    slt_probe *p = arg;
    if (sl_state(self) != arg)
        p->bad_state++;
    return common_start(self, p);
}

static int probe_on_message(sl_actor *self, const sl_msg *m)
{
    return common_msg(self, m, sl_state(self), 0);
}

static void probe_on_stop(sl_actor *self, int reason)
{
    common_stop(self, reason, sl_state(self));
}

static int stateful_on_start(sl_actor *self, void *arg)
{
    slt_probe *p = arg;
    stateful_state *st = sl_state(self);
    static const stateful_state zero;
    if (st == NULL || (void *)st == arg) {
        p->bad_state++;
        return SL_ERR_INVAL; /* cannot go on without state */
    }
    if (memcmp(st, &zero, sizeof zero) != 0)
        p->bad_state++;
    st->p = p;
    return common_start(self, p);
}

static int stateful_on_message(sl_actor *self, const sl_msg *m)
{
    stateful_state *st = sl_state(self);
    st->count++;
    return common_msg(self, m, st->p, st->count);
}

int slt_orphan_stops;

static void stateful_on_stop(sl_actor *self, int reason)
{
    stateful_state *st = sl_state(self);
    if (st == NULL || st->p == NULL) {
        /* on_start never ran (or failed before storing the probe). */
        slt_orphan_stops++;
        return;
    }
    common_stop(self, reason, st->p);
}

static const sl_behavior probe_behavior = {
    .on_start = probe_on_start,
    .on_message = probe_on_message,
    .on_stop = probe_on_stop,
    .state_size = 0,
    .name = "probe",
};

static const sl_behavior stateful_behavior = {
    .on_start = stateful_on_start,
    .on_message = stateful_on_message,
    .on_stop = stateful_on_stop,
    .state_size = sizeof(stateful_state),
    .name = "stateful-probe",
};

const sl_behavior *slt_probe_behavior(void)
{
    return &probe_behavior;
}
const sl_behavior *slt_stateful_behavior(void)
{
    return &stateful_behavior;
}

int slt_try_spawn(slt_env *e, slt_probe *p, const sl_spawn_opts *opts, sl_id *out)
{
    return sl_spawn(e->core, &probe_behavior, p, opts, out);
}

sl_id slt_spawn(slt_env *e, slt_probe *p, const sl_spawn_opts *opts)
{
    sl_id id = SL_ID_NONE;
    SLT_OK(sl_spawn(e->core, &probe_behavior, p, opts, &id));
    assert_false(sl_id_is_none(id));
    SLT_ID_EQ(id, p->id);
    return id;
}

sl_id slt_spawn_stateful(slt_env *e, slt_probe *p, const sl_spawn_opts *opts)
{
    sl_id id = SL_ID_NONE;
    SLT_OK(sl_spawn(e->core, &stateful_behavior, p, opts, &id));
    assert_false(sl_id_is_none(id));
    SLT_ID_EQ(id, p->id);
    return id;
}

int slt_send_u32(slt_env *e, sl_id to, uint32_t type, int prio, uint32_t v)
{
    return sl_core_send(e->core, to, type, prio, &v, sizeof v);
}

uint32_t slt_u32(const slt_rec *r)
{
    assert_int_equal(r->len, 4);
    uint32_t v;
    memcpy(&v, r->data, 4);
    return v;
}

void slt_crash(slt_env *e, sl_id id, int32_t code)
{
    SLT_OK(sl_core_send(e->core, id, SLT_T_CRASH, SL_PRIO_NORMAL, &code, sizeof code));
}

void slt_exit(slt_env *e, sl_id id, int32_t reason, int32_t code)
{
    int32_t rc[2] = {reason, code};
    SLT_OK(sl_core_send(e->core, id, SLT_T_EXIT, SL_PRIO_NORMAL, rc, sizeof rc));
}

void slt_exec(slt_env *e, sl_id id, slt_fn fn, void *ud)
{
    slt_exec_msg x = {fn, ud, ++e->exec_token};
    SLT_OK(sl_core_send(e->core, id, SLT_T_EXEC, SL_PRIO_CRITICAL, &x, sizeof x));
    for (int i = 0; e->exec_done != x.token; i++) {
        if (i >= STEP_MAX) {
            print_error("slt_exec: the exec message was not processed\n");
            fail();
        }
        sl_core_run(e->core, e->now, 1);
        if (e->exec_done != x.token && !sl_core_has_work(e->core)) {
            print_error("slt_exec: the core is idle but the exec message was not processed\n");
            fail();
        }
    }
}

size_t slt_count_kind(const slt_probe *p, int kind)
{
    size_t c = 0;
    size_t n = p->n < SLT_LOG_MAX ? p->n : SLT_LOG_MAX;
    for (size_t i = 0; i < n; i++)
        c += p->log[i].kind == kind;
    return c;
}

int slt_find(const slt_probe *p, int kind, uint64_t corr, size_t from)
{
    size_t n = p->n < SLT_LOG_MAX ? p->n : SLT_LOG_MAX;
    for (size_t i = from; i < n; i++)
        if (p->log[i].kind == kind && p->log[i].corr == corr)
            return (int)i;
    return -1;
}

void slt_dump(const slt_probe *p)
{
    size_t n = p->n < SLT_LOG_MAX ? p->n : SLT_LOG_MAX;
    print_message("probe %s: starts %d stops %d (last reason %d), %zu messages\n",
                  p->label ? p->label : "?", p->starts, p->stops, p->stop_reason, p->n);
    for (size_t i = 0; i < n; i++) {
        const slt_rec *r = &p->log[i];
        print_message("  [%zu] %s type %u corr %" PRIu64 " prio %u status %d code %d len %zu "
                      "at +%" PRIu64 "ms from %" PRIu64 "\n",
                      i, slt_kind_name(r->kind), r->type, r->corr, r->prio, r->status, r->code,
                      r->len, (uint64_t)((r->at - SLT_T0) / SLT_MS), r->from.local);
    }
}
