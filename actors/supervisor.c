/*
 * supervisor.c: supervisors as ordinary actors.
 *
 * A supervisor traps exits and links to every child it starts. An EXIT from
 * a current child triggers the restart decision (restart type, then the
 * intensity window, then the strategy). When the supervisor itself stops a
 * child (group restarts, shutdown) it unlinks first, so no stale EXIT can be
 * mistaken for anything else; ids are never reused, so an EXIT from an id
 * that is not a current child comes from whoever linked to the supervisor
 * (its parent), and an abnormal one stops the supervisor too.
 */
#include <string.h>

#include "actors/core_int.h"

typedef struct sup_state {
    const sl_sup_spec *spec;
    sl_id *kids;        /* current id per child, SL_ID_NONE when not running */
    uint64_t *times;    /* ring of the last restart times (ns) */
    uint32_t ntimes;    /* ring size = intensity + 1 */
    uint32_t thead;     /* next slot to write */
    uint32_t tcount;    /* valid entries in the ring */
    uint32_t intensity;
    uint64_t period_ns;
    uint64_t restarts;
} sup_state;

static int sup_start(sl_actor *self, void *arg);
static int sup_message(sl_actor *self, const sl_msg *m);
static void sup_stop(sl_actor *self, int reason);

static const sl_behavior sup_behavior = {
    .on_start = sup_start,
    .on_message = sup_message,
    .on_stop = sup_stop,
    .state_size = sizeof(sup_state),
    .name = "supervisor",
};

const sl_behavior *sl_supervisor_behavior(void) { return &sup_behavior; }

static int start_child(sl_actor *self, sup_state *s, size_t i)
{
    const sl_child_spec *cs = &s->spec->children[i];
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.link_to = sl_self(self);
    o.register_as = cs->name;
    o.mailbox_capacity = cs->mailbox_capacity;
    sl_id id;
    int rc = sl_spawn(sl_actor_core(self), cs->behavior, cs->arg, &o, &id);
    s->kids[i] = rc ? SL_ID_NONE : id;
    return rc;
}

/* Stop a running child without hearing about it, synchronously, so that it
 * has released its name and run on_stop before any replacement starts. */
static void stop_child(sl_actor *self, sup_state *s, size_t i)
{
    if (sl_id_is_none(s->kids[i]))
        return;
    sl_core *c = sl_actor_core(self);
    sl_unlink(self, s->kids[i]);
    sl_actor *a = sl__actor_get_any(c, s->kids[i]);
    s->kids[i] = SL_ID_NONE;
    if (a)
        sl__stop_now(c, a, SL_REASON_SHUTDOWN);
}

static void stop_children_from(sl_actor *self, sup_state *s, size_t first)
{
    for (size_t i = s->spec->n_children; i-- > first;)
        stop_child(self, s, i);
}

static int sup_start(sl_actor *self, void *arg)
{
    sup_state *s = sl_state(self);
    const sl_sup_spec *spec = arg;
    sl_core *c = sl_actor_core(self);
    if (!spec || (spec->n_children && !spec->children) || spec->strategy > SL_REST_FOR_ONE)
        return SL_ERR_INVAL;
    for (size_t i = 0; i < spec->n_children; i++)
        if (!spec->children[i].behavior || spec->children[i].restart > SL_RESTART_TEMPORARY)
            return SL_ERR_INVAL;
    s->spec = spec;
    s->intensity = spec->intensity;
    s->period_ns = spec->period_ms * 1000000ull;
    if (spec->intensity == 0 && spec->period_ms == 0) {
        s->intensity = 3;
        s->period_ns = 5000ull * 1000000ull;
    }
    s->ntimes = s->intensity + 1;
    s->kids = sl__calloc(c, spec->n_children ? spec->n_children : 1, sizeof *s->kids);
    s->times = sl__calloc(c, s->ntimes, sizeof *s->times);
    if (!s->kids || !s->times)
        return SL_ERR_NOMEM;
    sl_trap_exit(self, true);
    for (size_t i = 0; i < spec->n_children; i++) {
        int rc = start_child(self, s, i);
        if (rc) {
            stop_children_from(self, s, 0);
            return rc;
        }
    }
    return SL_OK;
}

static void sup_stop(sl_actor *self, int reason)
{
    sup_state *s = sl_state(self);
    sl_core *c = sl_actor_core(self);
    if (s->kids && s->spec)
        stop_children_from(self, s, 0);
    sl__free(c, s->kids);
    sl__free(c, s->times);
    s->kids = NULL;
    s->times = NULL;
}

/* Record a restart; true if the intensity limit is now exceeded, i.e. more
 * than `intensity` restarts happened within the last `period`. */
static bool intensity_exceeded(sl_actor *self, sup_state *s)
{
    uint64_t now = sl_core_now(sl_actor_core(self));
    s->times[s->thead] = now;
    s->thead = (s->thead + 1) % s->ntimes;
    if (s->tcount < s->ntimes)
        s->tcount++;
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->tcount; k++) {
        uint32_t i = (s->thead + s->ntimes - 1 - k) % s->ntimes;
        if (now - s->times[i] < s->period_ns)
            n++;
    }
    return n > s->intensity;
}

static bool should_restart(uint8_t restart, int reason)
{
    switch (restart) {
    case SL_RESTART_PERMANENT:
        return true;
    case SL_RESTART_TRANSIENT:
        return reason != SL_REASON_NORMAL && reason != SL_REASON_SHUTDOWN;
    default:
        return false;
    }
}

static void give_up(sl_actor *self, sup_state *s, int code)
{
    stop_children_from(self, s, 0);
    sl_exit(self, SL_REASON_SHUTDOWN, code);
}

static void restart_range(sl_actor *self, sup_state *s, size_t failed, sl_id old, size_t first,
                          int reason)
{
    size_t n = s->spec->n_children;
    /* Stop the others of the group in reverse start order. */
    for (size_t i = n; i-- > first;)
        if (i != failed)
            stop_child(self, s, i);
    for (size_t i = first; i < n; i++) {
        const sl_child_spec *cs = &s->spec->children[i];
        if (i != failed && cs->restart == SL_RESTART_TEMPORARY)
            continue; /* temporary children are not brought back */
        if (i == failed && !should_restart(cs->restart, reason))
            continue;
        int rc = start_child(self, s, i);
        if (rc) {
            give_up(self, s, rc);
            return;
        }
        if (s->spec->on_restart && i == failed)
            s->spec->on_restart(self, i, old, s->kids[i], reason, s->spec->ud);
    }
}

static int sup_message(sl_actor *self, const sl_msg *m)
{
    sup_state *s = sl_state(self);
    if (m->kind != SL_KIND_EXIT)
        return 0; /* supervisors take no user messages */
    size_t n = s->spec->n_children, i;
    for (i = 0; i < n; i++)
        if (sl_id_eq(s->kids[i], m->from))
            break;
    if (i == n) {
        /* Not a child: a linked parent or peer. Follow it if it failed. */
        if (m->status != SL_REASON_NORMAL)
            give_up(self, s, m->code);
        return 0;
    }
    sl_id old = s->kids[i];
    s->kids[i] = SL_ID_NONE;
    const sl_child_spec *cs = &s->spec->children[i];
    if (!should_restart(cs->restart, m->status))
        return 0;
    s->restarts++;
    if (intensity_exceeded(self, s)) {
        give_up(self, s, 0);
        return 0;
    }
    switch (s->spec->strategy) {
    case SL_ONE_FOR_ONE: {
        int rc = start_child(self, s, i);
        if (rc) {
            give_up(self, s, rc);
            return 0;
        }
        if (s->spec->on_restart)
            s->spec->on_restart(self, i, old, s->kids[i], m->status, s->spec->ud);
        break;
    }
    case SL_ONE_FOR_ALL:
        restart_range(self, s, i, old, 0, m->status);
        break;
    case SL_REST_FOR_ONE:
        restart_range(self, s, i, old, i, m->status);
        break;
    }
    return 0;
}

int sl_supervisor_spawn(sl_core *c, const sl_sup_spec *spec, const sl_spawn_opts *opts,
                        sl_id *out)
{
    return sl_spawn(c, &sup_behavior, (void *)spec, opts, out);
}

static sup_state *sup_of(const sl_core *c, sl_id sup)
{
    sl_actor *a = sl__actor_get(c, sup);
    if (!a || a->beh != &sup_behavior)
        return NULL;
    return a->state;
}

int sl_supervisor_child(const sl_core *c, sl_id sup, size_t index, sl_id *out)
{
    sup_state *s = sup_of(c, sup);
    if (!s || !s->spec)
        return SL_ERR_NOACTOR;
    if (index >= s->spec->n_children)
        return SL_ERR_INVAL;
    *out = s->kids[index];
    return SL_OK;
}

int sl_supervisor_restarts(const sl_core *c, sl_id sup, uint64_t *out)
{
    sup_state *s = sup_of(c, sup);
    if (!s)
        return SL_ERR_NOACTOR;
    *out = s->restarts;
    return SL_OK;
}
