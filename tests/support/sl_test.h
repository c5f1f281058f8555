/*
 * sl_test.h: shared helpers for the black-box tests of the actor core.
 *
 * Three pieces, all built only on the public headers:
 *
 *  - slt_mem, a counting allocator plugged in through sl_mem. It counts live
 *    blocks and bytes, poisons fresh and freed memory (so "zeroed state" and
 *    use-after-free show up even without ASan), detects frees of pointers it
 *    did not hand out, and can fail the Nth allocation (just that one, or that
 *    one and every later one). Every test creates its core with it and ends
 *    with slt_env_close(), which deletes the core and asserts that nothing is
 *    left allocated: each test proves it freed what it allocated.
 *
 *  - slt_env, a core plus a fake clock and a driver. The core reads no clock;
 *    the driver passes fake nanoseconds into sl_core_run(). slt_run() runs at
 *    the current fake time until nothing is runnable; slt_advance() moves the
 *    fake time forward, stopping exactly at every deadline on the way so timers
 *    fire at their exact time; slt_run_idle() follows deadlines until there are
 *    none. Every loop is bounded, so a broken core fails a test instead of
 *    hanging it.
 *
 *  - slt_probe, a scriptable actor. It records every message it gets (copy of
 *    the header and up to SLT_DATA_MAX payload bytes, the fake time, a global
 *    sequence number), counts starts and stops, and runs optional hooks.
 *    Control messages let a test crash or stop a probe, or run a function
 *    inside it (slt_exec) to call the APIs that need an sl_actor (ask, monitor,
 *    link, timers...). Probes live in test memory (spawned with state_size 0
 *    and the probe as arg) so they survive their actor; the "stateful" probe
 *    behaviour additionally has core-allocated state to check that state is
 *    zeroed and fresh after a restart.
 *
 * Callbacks never call cmocka assertions (a longjmp out of the core would
 * leave it inconsistent); they record, and the test asserts afterwards.
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "starling/actor.h"
#include "starling/supervisor.h"

/* ------------------------------------------------------------ assertions */

/* Assert an sl_err value, printing symbolic names on mismatch. */
#define SLT_ERR(got, want) slt_assert_err((int)(got), (int)(want), #got, __FILE__, __LINE__)
/* Assert rc == SL_OK. */
#define SLT_OK(got) SLT_ERR((got), SL_OK)
/* Assert two sl_ids are equal / different. */
#define SLT_ID_EQ(a, b) slt_assert_id((a), (b), 1, __FILE__, __LINE__)
#define SLT_ID_NE(a, b) slt_assert_id((a), (b), 0, __FILE__, __LINE__)

void slt_assert_err(int got, int want, const char *expr, const char *file, int line);
void slt_assert_id(sl_id a, sl_id b, int equal, const char *file, int line);

/* Name of an sl_kind value for messages. */
const char *slt_kind_name(int kind);

/* ------------------------------------------------------ counting allocator */

typedef struct slt_mem {
    sl_mem hooks;       /* what the core gets; ud points back here */
    size_t live;        /* blocks currently allocated */
    size_t live_bytes;  /* bytes currently allocated */
    size_t peak;        /* highest `live` seen */
    size_t peak_bytes;  /* highest `live_bytes` seen */
    uint64_t calls;     /* allocation attempts: malloc, calloc, realloc */
    uint64_t allocs;    /* successful allocations (including reallocs) */
    uint64_t frees;     /* successful frees */
    uint64_t failed;    /* attempts failed on purpose */
    uint64_t fail_at;   /* 0 = never; else the attempt number (calls) to fail */
    int fail_sticky;    /* 1 = fail attempt fail_at and every later one */
    uint64_t bad_frees; /* frees of pointers this allocator did not hand out */
} slt_mem;

void slt_mem_init(slt_mem *m);
/* Fail the n-th allocation attempt counted from now (n >= 1); sticky = all after too. */
void slt_mem_fail_after(slt_mem *m, uint64_t n, int sticky);
/* Stop failing allocations. */
void slt_mem_fail_off(slt_mem *m);

/* ----------------------------------------------------------- environment */

#define SLT_MS 1000000ull              /* one millisecond in ns */
#define SLT_T0 (10ull * 1000000000ull) /* fake time at which each test starts */
#define SLT_NODE 0x00000000000000a1ull /* node id of test cores */
#define SLT_DEAD_MAX 64

typedef struct slt_env {
    slt_mem mem;
    sl_core_settings settings; /* filled by slt_env_init; tweak before slt_env_start */
    sl_core *core;
    uint64_t now;   /* fake time in ns */
    uint64_t seq;   /* global event sequence (probe receipts, starts, stops) */
    uint64_t wakes; /* wake callback calls */
    size_t dead_n;  /* dead_letter callback calls */
    sl_id dead_to[SLT_DEAD_MAX];
    uint32_t dead_type[SLT_DEAD_MAX];
    uint64_t exec_token; /* last slt_exec token issued */
    uint64_t exec_done;  /* last slt_exec token executed */
} slt_env;

/*
 * on_stop calls of the stateful probe that found no probe in their state,
 * i.e. on_stop without a successful on_start before it. Reset by
 * slt_env_init, asserted zero by slt_env_close.
 */
extern int slt_orphan_stops;

/* Fill settings with defaults plus the counting allocator and callbacks. */
void slt_env_init(slt_env *e);
/* Create the core from e->settings (asserts SL_OK) and run it once at SLT_T0. */
void slt_env_start(slt_env *e);
/* slt_env_init + slt_env_start. */
void slt_env_open(slt_env *e);
/* Delete the core; assert no live allocation, no bad free, and that the core used the allocator. */
void slt_env_close(slt_env *e);

/* Run at the current fake time until no actor is runnable. Returns messages processed. */
size_t slt_run(slt_env *e);
/* Advance fake time by `ms`, stopping at every deadline on the way. Returns messages processed. */
size_t slt_advance(slt_env *e, uint64_t ms);
/* Same, in nanoseconds. */
size_t slt_advance_ns(slt_env *e, uint64_t ns);
/* Run and follow deadlines until none is left; fails the test after too many steps. */
size_t slt_run_idle(slt_env *e);

/* Core stats snapshot. */
sl_core_stats slt_stats(slt_env *e);
/* Actor stats snapshot (asserts SL_OK). */
sl_actor_stats slt_astats(slt_env *e, sl_id id);

/* ---------------------------------------------------------------- probes */

#define SLT_LOG_MAX 256
#define SLT_DATA_MAX 64

/* Reserved message types used by the probe's control messages (not logged). */
#define SLT_T_EXEC 0xFFFFFF01u  /* payload slt_exec_msg: run a function inside the probe */
#define SLT_T_CRASH 0xFFFFFF02u /* payload int32: on_message returns it */
#define SLT_T_EXIT 0xFFFFFF03u  /* payload int32[2] {reason, code}: sl_exit() */

typedef struct slt_rec {
    sl_id from, to;
    uint64_t corr;
    uint32_t type;
    uint8_t kind, prio;
    uint16_t flags;
    int32_t status, code;
    size_t len;
    int data_null;              /* m->data was NULL */
    uint8_t data[SLT_DATA_MAX]; /* first bytes of the payload */
    uint64_t at;                /* sl_core_now() when received */
    uint64_t seq;               /* env-global sequence number */
    uint64_t count;             /* stateful probe: messages seen by this incarnation */
    sl_id self;                 /* the receiving actor */
} slt_rec;

typedef struct slt_probe slt_probe;
typedef int (*slt_start_fn)(sl_actor *self, slt_probe *p);
typedef int (*slt_msg_fn)(sl_actor *self, const sl_msg *m, slt_probe *p);
typedef void (*slt_stop_fn)(sl_actor *self, int reason, slt_probe *p);
typedef int (*slt_fn)(sl_actor *self, slt_probe *p, void *ud);

struct slt_probe {
    slt_env *env;
    const char *label;
    sl_id id;                /* id of the current (last started) incarnation */
    sl_id first_id;          /* id of the first incarnation */
    int starts, stops;       /* on_start / on_stop calls */
    int stop_reason;         /* reason of the last on_stop */
    int stop_reasons[8];     /* reasons of the first on_stop calls */
    uint64_t start_seq;      /* env seq of the last on_start */
    uint64_t stop_seq;       /* env seq of the last on_stop */
    uint64_t stop_at;        /* fake time of the last on_stop */
    int bad_state;           /* stateful: state was not zeroed; stateless: state != arg */
    int bad_core;            /* sl_actor_core(self) was not the env's core */
    int ctl;                 /* control messages handled */
    slt_start_fn start_hook; /* run at the end of on_start; its value is returned */
    slt_msg_fn msg_hook;     /* run after logging a non-control message; its value is returned */
    slt_stop_fn stop_hook;   /* run at the end of on_stop */
    void *ud;                /* for hooks */
    size_t n;                /* non-control messages received (logged up to SLT_LOG_MAX) */
    slt_rec log[SLT_LOG_MAX];
};

void slt_probe_init(slt_probe *p, slt_env *e, const char *label);
/* state_size 0: sl_state() is the probe. */
const sl_behavior *slt_probe_behavior(void);
/* state_size > 0: core-owned state holding a per-incarnation message counter. */
const sl_behavior *slt_stateful_behavior(void);

/* Spawn a probe (asserts SL_OK); returns its id. opts may be NULL. */
sl_id slt_spawn(slt_env *e, slt_probe *p, const sl_spawn_opts *opts);
sl_id slt_spawn_stateful(slt_env *e, slt_probe *p, const sl_spawn_opts *opts);
/* Spawn without asserting; returns sl_spawn's value. */
int slt_try_spawn(slt_env *e, slt_probe *p, const sl_spawn_opts *opts, sl_id *out);

/* Send a message with a 4-byte payload from outside; returns sl_core_send's value. */
int slt_send_u32(slt_env *e, sl_id to, uint32_t type, int prio, uint32_t v);
/* The 4-byte payload of a record (fails the test if the length is not 4). */
uint32_t slt_u32(const slt_rec *r);
/* Ask a probe to crash (on_message returns code) or to sl_exit(reason, code) when it
 * processes this message. Asserts the send succeeded; does not run the core. */
void slt_crash(slt_env *e, sl_id id, int32_t code);
void slt_exit(slt_env *e, sl_id id, int32_t reason, int32_t code);

/*
 * Run fn(self, probe, ud) inside probe actor `id`: sends a CRITICAL control
 * message and calls sl_core_run() one message at a time until it ran (so if
 * the probe is the only runnable actor, nothing else is processed). The
 * function's return value is on_message's return value (non-zero crashes).
 */
void slt_exec(slt_env *e, sl_id id, slt_fn fn, void *ud);

/* Count / find logged messages. */
size_t slt_count_kind(const slt_probe *p, int kind);
/* Index of the first logged message of `kind` with `corr` at or after `from`, or -1. */
int slt_find(const slt_probe *p, int kind, uint64_t corr, size_t from);
/* Print the log (for debugging a failure). */
void slt_dump(const slt_probe *p);

#endif
