/*
 * starling/supervisor.h: supervisors.
 *
 * A supervisor is an ordinary actor (trapping exits, linked to its children)
 * that starts children from specs and restarts them when they stop, following
 * a strategy and an intensity limit, exactly as in Erlang/OTP:
 *   one_for_one  - restart only the child that stopped;
 *   one_for_all  - stop all other children, restart all in order;
 *   rest_for_one - stop the children started after it, restart those and it.
 * If more than `intensity` restarts happen within `period_ms`, the supervisor
 * stops all children and itself with reason SHUTDOWN; whoever links or
 * monitors it (typically its own supervisor) sees that.
 * A group restart (one_for_all, rest_for_one) counts as one restart. Children
 * that the supervisor stops are stopped synchronously, in reverse start
 * order, before any replacement starts (so names are free again).
 * A supervisor is a child like any other: use sl_supervisor_behavior() with
 * the nested sl_sup_spec as the child's arg to build a tree.
 */
#ifndef STARLING_SUPERVISOR_H
#define STARLING_SUPERVISOR_H

#include "actor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_restart {
    SL_RESTART_PERMANENT = 0, /* always restarted */
    SL_RESTART_TRANSIENT = 1, /* restarted only after an abnormal stop (not NORMAL or SHUTDOWN) */
    SL_RESTART_TEMPORARY = 2  /* never restarted */
} sl_restart;

typedef enum sl_strategy {
    SL_ONE_FOR_ONE = 0,
    SL_ONE_FOR_ALL = 1,
    SL_REST_FOR_ONE = 2
} sl_strategy;

/* One child. The spec (and everything it points to) must outlive the supervisor. */
typedef struct sl_child_spec {
    const char *name;            /* registered for the child if not NULL */
    const sl_behavior *behavior; /* the child's behaviour */
    void *arg;                   /* spawn argument, given again on each restart */
    uint8_t restart;             /* sl_restart */
    uint32_t mailbox_capacity;   /* 0 = default */
} sl_child_spec;

typedef struct sl_sup_spec {
    uint8_t strategy;               /* sl_strategy */
    uint32_t intensity;             /* max restarts ... */
    uint64_t period_ms;             /* ... within this window (default 3, 5000 if both 0) */
    const sl_child_spec *children;  /* started in order, stopped in reverse */
    size_t n_children;
    /* Optional observer, called on each restart (for logs and demos). */
    void (*on_restart)(sl_actor *sup, size_t child, sl_id old_id, sl_id new_id, int reason,
                       void *ud);
    void *ud;
} sl_sup_spec;

/* The behaviour of a supervisor; its spawn argument is a const sl_sup_spec *. */
SL_EXTERN const sl_behavior *sl_supervisor_behavior(void);

/*
 * Spawn a supervisor and its children. Returns the sl_spawn() errors, or the
 * error of the first child that failed to start (then nothing is left running).
 */
SL_EXTERN int sl_supervisor_spawn(sl_core *core, const sl_sup_spec *spec,
                                  const sl_spawn_opts *opts, sl_id *out);

/*
 * The current id of child `index` of a live supervisor (SL_ID_NONE while it is
 * not running). Returns SL_OK, SL_ERR_NOACTOR (not a live supervisor), or
 * SL_ERR_INVAL (index out of range).
 */
SL_EXTERN int sl_supervisor_child(const sl_core *core, sl_id sup, size_t index, sl_id *out);

/* Total restarts a live supervisor has made. Returns SL_OK or SL_ERR_NOACTOR. */
SL_EXTERN int sl_supervisor_restarts(const sl_core *core, sl_id sup, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
