/*
 * sched_test.c: tests of the QUIC transport's per-connection stream
 * scheduler (transport/sched.h), without sockets.
 *
 * A simulated sender drives the scheduler the way the QUIC write loop will:
 * peek, "send" min(budget, backlog, flow-control credit, room left in the
 * current packet) bytes of a fake stream, report them with sl__sched_sent,
 * and call sl__sched_blocked when the stream's credit is exhausted. Every
 * write is logged, so the tests can check the order in which bytes went out:
 * strict priority between classes (also when a more urgent stream arrives in
 * the middle of another's turn), quantum fairness inside a class, blocked
 * streams, class changes, removal, a thousand streams in rotation,
 * idempotent pushes, and a randomized run against a simple model of the
 * API's semantics. The scheduler's invariants are checked
 * (sl__sched_verify) after every step.
 *
 * Standalone build:
 *   gcc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter
 *       -Wmissing-prototypes -I. -Iinclude -g -fsanitize=address,undefined
 *       transport/sched.c tests/sched_test.c -lcmocka -o /tmp/sched_test
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "transport/sched.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define UNLIMITED UINT64_MAX

/* ------------------------------------------------------------ fakes */

/* A fake stream: the scheduler node plus what a real stream would know. */
typedef struct fstream {
    int id;
    sl__sched_node node;
    uint64_t backlog; /* bytes still to send */
    uint64_t sent;    /* bytes sent so far */
    uint64_t credit;  /* peer's flow-control window left, or UNLIMITED */
} fstream;

/* One logged write (or block) of the simulated sender. */
typedef struct wr {
    int id;          /* fstream id */
    uint8_t prio;    /* its class at the time */
    uint8_t blocked; /* 1: this entry is a block, not a write */
    uint32_t bytes;  /* bytes written */
    uint32_t budget; /* budget the peek gave */
} wr;

#define LOG_CAP (1u << 18)
static wr g_log[LOG_CAP];
static size_t g_nlog;

/* The simulated sender of one connection. */
typedef struct sim {
    sl__sched s;
    size_t pkt;     /* packet payload size */
    size_t room;    /* bytes left in the current packet */
    uint64_t total; /* bytes sent by all streams */
} sim;

static void sim_init(sim *m, uint32_t quantum, size_t pkt)
{
    sl__sched_init(&m->s, quantum);
    m->pkt = m->room = pkt;
    m->total = 0;
    g_nlog = 0;
}

static void fs_init(fstream *f, int id, int prio, uint64_t backlog)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    f->backlog = backlog;
    f->credit = UNLIMITED;
    sl__sched_node_init(&f->node, prio);
}

static fstream *fs_of(sl__sched_node *n)
{
    return n ? sl__sched_entry(n, fstream, node) : NULL;
}

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a < b ? a : b;
    return m < c ? m : c;
}

/*
 * One step of the write loop. Returns the stream that was served (wrote or
 * got blocked), or NULL when the scheduler had nothing to offer.
 */
static fstream *sim_step(sim *m)
{
    size_t budget = 12345;
    sl__sched_node *n = sl__sched_peek(&m->s, &budget);
    if (n == NULL) {
        assert_int_equal(budget, 0);
        assert_true(sl__sched_empty(&m->s));
        return NULL;
    }
    assert_true(budget >= 1 && budget <= m->s.quantum);
    fstream *f = fs_of(n);
    assert_true(sl__sched_queued(n));
    /* The scheduler only offers streams the caller said have data. */
    assert_true(f->backlog > 0);
    assert_true(g_nlog < LOG_CAP);
    wr *w = &g_log[g_nlog++];
    w->id = f->id;
    w->prio = (uint8_t)sl__sched_prio(n);
    w->budget = (uint32_t)budget;
    if (f->credit == 0) {
        /* What NGTCP2_ERR_STREAM_DATA_BLOCKED would tell the write loop. */
        w->blocked = 1;
        w->bytes = 0;
        sl__sched_blocked(&m->s, n);
    } else {
        uint64_t want = min3(budget, f->backlog, m->room);
        if (want > f->credit)
            want = f->credit;
        assert_true(want > 0);
        f->backlog -= want;
        f->sent += want;
        if (f->credit != UNLIMITED)
            f->credit -= want;
        m->total += want;
        m->room -= want;
        if (m->room == 0)
            m->room = m->pkt; /* packet full: the next write starts a new one */
        w->blocked = 0;
        w->bytes = (uint32_t)want;
        sl__sched_sent(&m->s, n, want, f->backlog > 0);
    }
    assert_true(sl__sched_verify(&m->s));
    return f;
}

/* Step until the scheduler is empty; fails if that takes more than max steps. */
static void sim_drain(sim *m, size_t max)
{
    for (size_t i = 0; i < max; i++)
        if (sim_step(m) == NULL)
            return;
    fail_msg("scheduler still busy after %zu steps", max);
}

/* ------------------------------------------------------------ tests */

/* An empty scheduler offers nothing; quantum 0 means the default. */
static void test_empty(void **state)
{
    sl__sched s;
    sl__sched_init(&s, 0);
    assert_int_equal(s.quantum, SL__SCHED_QUANTUM_DEFAULT);
    assert_true(sl__sched_empty(&s));
    assert_true(sl__sched_verify(&s));
    size_t budget = 99;
    assert_null(sl__sched_peek(&s, &budget));
    assert_int_equal(budget, 0);
    assert_null(sl__sched_peek(&s, NULL));

    /* Operations on a node that is not queued leave everything empty. */
    sl__sched_node n;
    sl__sched_node_init(&n, SL_PRIO_HIGH);
    assert_false(sl__sched_queued(&n));
    assert_int_equal(sl__sched_prio(&n), SL_PRIO_HIGH);
    sl__sched_remove(&s, &n);
    sl__sched_sent(&s, &n, 10, true);
    sl__sched_set_prio(&s, &n, SL_PRIO_LOW);
    assert_false(sl__sched_queued(&n));
    assert_int_equal(sl__sched_prio(&n), SL_PRIO_LOW);
    assert_true(sl__sched_empty(&s));
    assert_true(sl__sched_verify(&s));

    sl__sched_push(&s, &n);
    assert_false(sl__sched_empty(&s));
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n);
    assert_int_equal(budget, SL__SCHED_QUANTUM_DEFAULT);
    sl__sched_remove(&s, &n);
    assert_true(sl__sched_empty(&s));
    assert_true(sl__sched_verify(&s));
}

/*
 * Two streams per class, pushed least urgent first: every byte of a class
 * goes out before any byte of a less urgent class.
 */
static void test_strict_priority(void **state)
{
    sim m;
    sim_init(&m, 16 * KiB, 1200);
    fstream f[2 * SL_PRIO_COUNT];
    uint64_t class_bytes[SL_PRIO_COUNT] = {0};
    for (int i = 0; i < 2 * SL_PRIO_COUNT; i++) {
        int prio = SL_PRIO_COUNT - 1 - i / 2; /* BACKGROUND first, CRITICAL last */
        uint64_t backlog = 100 * KiB + (uint64_t)i * 777;
        fs_init(&f[i], i, prio, backlog);
        class_bytes[prio] += backlog;
        sl__sched_push(&m.s, &f[i].node);
    }
    assert_true(sl__sched_verify(&m.s));
    sim_drain(&m, 100000);

    /* The log's classes never go back to a more urgent one, and a class is
     * only left once all of its bytes are out. */
    uint64_t done[SL_PRIO_COUNT] = {0};
    int cur = 0;
    for (size_t i = 0; i < g_nlog; i++) {
        int p = g_log[i].prio;
        assert_int_equal(g_log[i].blocked, 0);
        if (p != cur) {
            assert_true(p > cur);
            for (int q = 0; q < p; q++)
                assert_int_equal(done[q], class_bytes[q]);
            cur = p;
        }
        done[p] += g_log[i].bytes;
    }
    for (int p = 0; p < SL_PRIO_COUNT; p++)
        assert_int_equal(done[p], class_bytes[p]);
    for (int i = 0; i < 2 * SL_PRIO_COUNT; i++)
        assert_int_equal(f[i].backlog, 0);
}

/*
 * A CRITICAL (and a HIGH) stream pushed in the middle of a BACKGROUND
 * stream's turn are served at the very next peek, CRITICAL first; the
 * BACKGROUND stream then resumes the rest of its turn.
 */
static void test_preempt_mid_turn(void **state)
{
    const uint32_t Q = 16 * KiB;
    sim m;
    sim_init(&m, Q, 1200);
    fstream bg, bg2, hi, cr;
    fs_init(&bg, 1, SL_PRIO_BACKGROUND, 1 * MiB);
    fs_init(&bg2, 2, SL_PRIO_BACKGROUND, 1 * MiB);
    fs_init(&hi, 3, SL_PRIO_HIGH, 3 * KiB);
    fs_init(&cr, 4, SL_PRIO_CRITICAL, 10 * KiB);
    sl__sched_push(&m.s, &bg.node);
    sl__sched_push(&m.s, &bg2.node);

    for (int i = 0; i < 5; i++)
        assert_ptr_equal(sim_step(&m), &bg);
    assert_int_equal(bg.sent, 6000);
    size_t budget;
    assert_ptr_equal(sl__sched_peek(&m.s, &budget), &bg.node);
    assert_int_equal(budget, Q - 6000); /* mid-turn */

    /* Less urgent of the two first, to show order is by class. */
    sl__sched_push(&m.s, &hi.node);
    sl__sched_push(&m.s, &cr.node);
    assert_ptr_equal(sl__sched_peek(&m.s, &budget), &cr.node);
    assert_int_equal(budget, Q);

    size_t mark = g_nlog;
    while (bg.sent == 6000)
        assert_non_null(sim_step(&m));
    /* Between the push and BACKGROUND's next byte: all of CRITICAL, then
     * all of HIGH, nothing else. */
    uint64_t crit = 0, high = 0;
    for (size_t i = mark; i + 1 < g_nlog; i++) {
        if (g_log[i].id == cr.id) {
            assert_int_equal(high, 0);
            crit += g_log[i].bytes;
        } else {
            assert_int_equal(g_log[i].id, hi.id);
            high += g_log[i].bytes;
        }
    }
    assert_int_equal(crit, 10 * KiB);
    assert_int_equal(high, 3 * KiB);
    assert_false(sl__sched_queued(&cr.node));
    assert_false(sl__sched_queued(&hi.node));
    /* BACKGROUND picked its turn up where it was interrupted, ahead of bg2. */
    assert_int_equal(g_log[g_nlog - 1].id, bg.id);
    assert_int_equal(g_log[g_nlog - 1].budget, Q - 6000);
    assert_int_equal(bg2.sent, 0);

    /* And it ends after exactly one quantum, then bg2's turn. */
    while (bg2.sent == 0)
        assert_non_null(sim_step(&m));
    assert_int_equal(bg.sent, Q);

    /* New CRITICAL data mid-turn of bg2 preempts again at once. */
    cr.backlog = 500;
    sl__sched_push(&m.s, &cr.node);
    assert_ptr_equal(sim_step(&m), &cr);
    assert_int_equal(cr.sent, 10 * KiB + 500);
    assert_ptr_equal(sim_step(&m), &bg2);
}

/*
 * Quantum fairness: a 64 MiB backlog and two 10 KiB messages in one class.
 * The small ones finish while the big one has sent at most a bounded number
 * of quanta, whether they arrive before it started or mid-turn.
 */
static void fairness_case(uint32_t Q, bool big_first_mid_turn, uint64_t bound)
{
    sim m;
    sim_init(&m, Q, 1200);
    fstream big, a, b;
    fs_init(&big, 0, SL_PRIO_NORMAL, 64ull * MiB);
    fs_init(&a, 1, SL_PRIO_NORMAL, 10 * KiB);
    fs_init(&b, 2, SL_PRIO_NORMAL, 10 * KiB);
    sl__sched_push(&m.s, &big.node);
    if (big_first_mid_turn) {
        /* The big one is well into its turn when the small ones arrive. */
        for (int i = 0; i < 2; i++)
            assert_ptr_equal(sim_step(&m), &big);
    }
    uint64_t big_before = big.sent;
    sl__sched_push(&m.s, &a.node);
    sl__sched_push(&m.s, &b.node);
    for (size_t i = 0; a.backlog || b.backlog; i++) {
        assert_true(i < 1000);
        assert_non_null(sim_step(&m));
    }
    uint64_t big_during = big.sent - big_before;
    if (big_during > bound)
        fail_msg("quantum %u: big stream sent %llu bytes before the small ones finished "
                 "(bound %llu)",
                 Q, (unsigned long long)big_during, (unsigned long long)bound);
    /* ... and the big one is not starved either: it finishes. */
    sim_drain(&m, 64 * MiB / 600); /* packets plus cuts at turn ends */
    assert_int_equal(big.sent, 64ull * MiB);
}

static void test_fairness_small_finish(void **state)
{
    /* Quantum 16 KiB > 10 KiB: one turn each; big sends at most one quantum. */
    fairness_case(16 * KiB, false, 16 * KiB);
    fairness_case(16 * KiB, true, 16 * KiB);
    /* Quantum 4 KiB: each small one needs three turns; the big one gets its
     * current (or first) turn plus two more, i.e. within 3 quanta. */
    fairness_case(4 * KiB, false, 3 * 4 * KiB);
    fairness_case(4 * KiB, true, 3 * 4 * KiB);
}

/* Tiny deterministic PRNG (xorshift64*). */
static uint64_t rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

/*
 * Long run with equal, never-ending backlogs and packets of random size:
 * at every moment the bytes sent by any two streams differ by at most one
 * quantum, and at the end each has a quarter of the total within a quantum.
 */
static void test_fairness_long_run(void **state)
{
    const uint32_t Q = 16 * KiB;
    sim m;
    sim_init(&m, Q, 1200);
    fstream f[4];
    for (int i = 0; i < 4; i++) {
        fs_init(&f[i], i, SL_PRIO_LOW, UINT64_MAX / 2);
        sl__sched_push(&m.s, &f[i].node);
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int step = 0; step < 40000; step++) {
        if (m.room == m.pkt)
            m.room = m.pkt = 1 + (size_t)(rnd(&x) % 1500); /* a new packet's size */
        assert_non_null(sim_step(&m));
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 4; i++) {
            lo = f[i].sent < lo ? f[i].sent : lo;
            hi = f[i].sent > hi ? f[i].sent : hi;
        }
        assert_true(hi - lo <= Q);
    }
    assert_true(m.total > 100 * Q); /* many rounds happened */
    for (int i = 0; i < 4; i++) {
        int64_t d = (int64_t)(f[i].sent * 4) - (int64_t)m.total;
        assert_true(d <= 4 * (int64_t)Q && d >= -4 * (int64_t)Q);
    }
}

/*
 * A stream out of flow-control credit is blocked: it is skipped, pushes are
 * ignored while it is blocked, and it resumes (at the tail of its class)
 * once credit arrives.
 */
static void test_blocked_skip_resume(void **state)
{
    const uint32_t Q = 16 * KiB;
    sim m;
    sim_init(&m, Q, 1200);
    fstream a, b;
    fs_init(&a, 1, SL_PRIO_NORMAL, 40000);
    fs_init(&b, 2, SL_PRIO_NORMAL, 40000);
    a.credit = 3000;
    sl__sched_push(&m.s, &a.node);
    sl__sched_push(&m.s, &b.node);

    for (size_t i = 0; !sl__sched_is_blocked(&a.node); i++) {
        assert_true(i < 100);
        assert_non_null(sim_step(&m));
    }
    assert_int_equal(a.sent, 3000);
    assert_int_equal(b.sent, 0); /* it was in its first turn, with budget left */
    assert_false(sl__sched_queued(&a.node));
    assert_int_equal(m.s.count[SL_PRIO_NORMAL], 1);

    /* The application writes more: the write path pushes, and nothing changes. */
    sl__sched_push(&m.s, &a.node);
    assert_false(sl__sched_queued(&a.node));
    assert_true(sl__sched_verify(&m.s));

    /* B runs alone, mid-turn. */
    size_t mark = g_nlog;
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(sim_step(&m), &b);
    assert_int_equal(b.sent, 600 + 1200 + 1200); /* A left 600 in its last packet */

    /* Credit arrives (extend_max_stream_data): A rejoins at the tail, B keeps its turn. */
    a.credit = UNLIMITED;
    sl__sched_unblock(&m.s, &a.node, a.backlog > 0);
    assert_false(sl__sched_is_blocked(&a.node));
    assert_true(sl__sched_queued(&a.node));
    size_t budget;
    assert_ptr_equal(sl__sched_peek(&m.s, &budget), &b.node);
    assert_int_equal(budget, Q - 3000);
    while (a.sent == 3000)
        assert_non_null(sim_step(&m));
    assert_int_equal(b.sent, Q);                   /* B finished its whole turn first */
    assert_int_equal(g_log[g_nlog - 1].budget, Q); /* A starts a fresh turn */
    for (size_t i = mark; i + 1 < g_nlog; i++)
        assert_int_equal(g_log[i].id, b.id);
    sim_drain(&m, 1000);
    assert_int_equal(a.sent, 40000);
    assert_int_equal(b.sent, 40000);

    /* Blocking a node that is not queued just marks it; unblock without
     * data does not queue it; a later push does. */
    fstream c;
    fs_init(&c, 3, SL_PRIO_HIGH, 10);
    sl__sched_blocked(&m.s, &c.node);
    assert_true(sl__sched_is_blocked(&c.node));
    sl__sched_push(&m.s, &c.node);
    assert_true(sl__sched_empty(&m.s));
    sl__sched_unblock(&m.s, &c.node, false);
    assert_true(sl__sched_empty(&m.s));
    sl__sched_push(&m.s, &c.node);
    assert_ptr_equal(sl__sched_peek(&m.s, NULL), &c.node);
    sim_drain(&m, 10);
    assert_int_equal(c.sent, 10);
}

/* set_prio moves a stream between classes, with the documented turn rules. */
static void test_set_prio(void **state)
{
    const uint32_t Q = 1000;
    sl__sched s;
    sl__sched_init(&s, Q);
    fstream n1, n2, bg, x;
    fs_init(&n1, 1, SL_PRIO_NORMAL, 1);
    fs_init(&n2, 2, SL_PRIO_NORMAL, 1);
    fs_init(&bg, 3, SL_PRIO_BACKGROUND, 1);
    fs_init(&x, 4, SL_PRIO_NORMAL, 1);
    sl__sched_push(&s, &n1.node);
    sl__sched_push(&s, &n2.node);
    sl__sched_push(&s, &bg.node);
    size_t budget;
    assert_ptr_equal(sl__sched_peek(&s, NULL), &n1.node);

    /* A queued stream moves up: served at once. */
    sl__sched_set_prio(&s, &bg.node, SL_PRIO_CRITICAL);
    assert_true(sl__sched_verify(&s));
    assert_int_equal(sl__sched_prio(&bg.node), SL_PRIO_CRITICAL);
    assert_int_equal(s.count[SL_PRIO_CRITICAL], 1);
    assert_int_equal(s.count[SL_PRIO_BACKGROUND], 0);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &bg.node);
    assert_int_equal(budget, Q);

    /* A stream that is not queued only records its class... */
    sl__sched_set_prio(&s, &x.node, SL_PRIO_HIGH);
    assert_false(sl__sched_queued(&x.node));
    assert_int_equal(s.count[SL_PRIO_HIGH], 0);
    /* ...and joins that class when pushed: after CRITICAL, before NORMAL. */
    sl__sched_push(&s, &x.node);
    assert_int_equal(s.count[SL_PRIO_HIGH], 1);
    sl__sched_remove(&s, &bg.node);
    assert_ptr_equal(sl__sched_peek(&s, NULL), &x.node);
    sl__sched_remove(&s, &x.node);

    /* Same class: keeps its place and the rest of its turn. */
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n1.node);
    sl__sched_sent(&s, &n1.node, 100, true);
    sl__sched_set_prio(&s, &n1.node, SL_PRIO_NORMAL);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n1.node);
    assert_int_equal(budget, Q - 100);

    /* Moving the head mid-turn: its old class moves on to a fresh turn of
     * the next stream; in the new class it starts a fresh turn later. */
    sl__sched_set_prio(&s, &n1.node, SL_PRIO_LOW);
    assert_true(sl__sched_verify(&s));
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n2.node);
    assert_int_equal(budget, Q);

    /* A move reported during the write (stale sent): bytes not charged, and
     * the stream sits at the tail of its new class, behind n1. */
    sl__sched_set_prio(&s, &n2.node, SL_PRIO_LOW);
    sl__sched_sent(&s, &n2.node, 500, true);
    assert_true(sl__sched_verify(&s));
    assert_true(sl__sched_queued(&n2.node));
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n1.node);
    assert_int_equal(budget, Q);
    sl__sched_sent(&s, &n1.node, Q, true);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &n2.node);
    assert_int_equal(budget, Q);
    assert_int_equal(s.count[SL_PRIO_NORMAL], 0);
    assert_int_equal(s.count[SL_PRIO_LOW], 2);
    assert_true(sl__sched_verify(&s));
}

/* Removing the current stream (mid-turn), others, and reports after removal. */
static void test_remove_current(void **state)
{
    const uint32_t Q = 1000;
    sl__sched s;
    sl__sched_init(&s, Q);
    fstream a, b, c, d;
    fs_init(&a, 1, SL_PRIO_NORMAL, 1);
    fs_init(&b, 2, SL_PRIO_NORMAL, 1);
    fs_init(&c, 3, SL_PRIO_NORMAL, 1);
    fs_init(&d, 4, SL_PRIO_NORMAL, 1);
    sl__sched_push(&s, &a.node);
    sl__sched_push(&s, &b.node);
    sl__sched_push(&s, &c.node);
    sl__sched_push(&s, &d.node);
    size_t budget;
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    sl__sched_sent(&s, &a.node, 300, true);

    /* The current stream goes mid-turn: the next one starts a fresh turn. */
    sl__sched_remove(&s, &a.node);
    assert_false(sl__sched_queued(&a.node));
    assert_true(sl__sched_verify(&s));
    assert_ptr_equal(sl__sched_peek(&s, &budget), &b.node);
    assert_int_equal(budget, Q);
    sl__sched_remove(&s, &a.node); /* again: no-op */
    assert_int_equal(s.count[SL_PRIO_NORMAL], 3);

    /* Remove from the middle (c) and the tail (d). */
    sl__sched_remove(&s, &c.node);
    sl__sched_remove(&s, &d.node);
    assert_true(sl__sched_verify(&s));
    assert_int_equal(s.count[SL_PRIO_NORMAL], 1);

    /* Pushed back, a goes behind b and gets a full quantum, not its leftover. */
    sl__sched_push(&s, &a.node);
    sl__sched_push(&s, &c.node);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &b.node);
    sl__sched_sent(&s, &b.node, budget, true);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, Q);

    /* Removed during the write: the report is ignored, nothing comes back. */
    sl__sched_remove(&s, &a.node);
    sl__sched_sent(&s, &a.node, 10, true);
    assert_false(sl__sched_queued(&a.node));
    assert_true(sl__sched_verify(&s));
    assert_ptr_equal(sl__sched_peek(&s, NULL), &c.node);

    /* still_has_data == false removes, even with budget left. */
    sl__sched_sent(&s, &c.node, 1, false);
    assert_false(sl__sched_queued(&c.node));
    assert_ptr_equal(sl__sched_peek(&s, &budget), &b.node);
    sl__sched_remove(&s, &b.node);
    assert_true(sl__sched_empty(&s));
    assert_null(sl__sched_peek(&s, NULL));
    assert_true(sl__sched_verify(&s));
}

/*
 * 1000 streams in one class, each 2.5 quanta: the turns go 0..999 three
 * times, each a contiguous run of exactly one quantum (half in the last).
 */
static void test_many_streams(void **state)
{
    enum { N = 1000 };
    const uint32_t Q = 4 * KiB;
    static fstream f[N];
    sim m;
    sim_init(&m, Q, 1200);
    for (int i = 0; i < N; i++) {
        fs_init(&f[i], i, SL_PRIO_LOW, 2 * Q + Q / 2);
        sl__sched_push(&m.s, &f[i].node);
    }
    assert_int_equal(m.s.count[SL_PRIO_LOW], N);
    sim_drain(&m, 20000);

    /* Collapse the log into turns: consecutive writes of the same stream. */
    size_t turns = 0;
    for (size_t i = 0; i < g_nlog;) {
        int id = g_log[i].id;
        uint64_t bytes = 0;
        assert_int_equal(g_log[i].budget, Q); /* a turn starts with a full quantum */
        while (i < g_nlog && g_log[i].id == id)
            bytes += g_log[i++].bytes;
        assert_int_equal(id, (int)(turns % N));
        assert_int_equal(bytes, turns < 2 * N ? Q : Q / 2);
        turns++;
    }
    assert_int_equal(turns, 3 * N);
    for (int i = 0; i < N; i++)
        assert_int_equal(f[i].sent, 2 * Q + Q / 2);
}

/* Pushing a queued stream neither moves it nor restarts its turn. */
static void test_idempotent_push(void **state)
{
    const uint32_t Q = 1000;
    sl__sched s;
    sl__sched_init(&s, Q);
    fstream a, b, c;
    fs_init(&a, 1, SL_PRIO_HIGH, 1);
    fs_init(&b, 2, SL_PRIO_HIGH, 1);
    fs_init(&c, 3, SL_PRIO_HIGH, 1);
    sl__sched_push(&s, &a.node);
    sl__sched_push(&s, &b.node);
    sl__sched_push(&s, &a.node);
    sl__sched_push(&s, &c.node);
    sl__sched_push(&s, &b.node);
    assert_int_equal(s.count[SL_PRIO_HIGH], 3);
    assert_true(sl__sched_verify(&s));

    size_t budget;
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    sl__sched_sent(&s, &a.node, 100, true);
    sl__sched_push(&s, &a.node); /* mid-turn: keeps the turn */
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, Q - 100);
    sl__sched_sent(&s, &a.node, Q - 100, true);
    /* Order a, b, c is kept: b next, then c, then a. */
    int want[] = {2, 3, 1, 2, 3, 1};
    for (int i = 0; i < 6; i++) {
        sl__sched_push(&s, &b.node);
        sl__sched_push(&s, &a.node);
        sl__sched_node *n = sl__sched_peek(&s, &budget);
        assert_non_null(n);
        assert_int_equal(fs_of(n)->id, want[i]);
        assert_int_equal(budget, Q);
        sl__sched_sent(&s, n, budget, true);
    }
    assert_int_equal(s.count[SL_PRIO_HIGH], 3);
    assert_true(sl__sched_verify(&s));
}

/* A turn's budget shrinks by what was sent; 0-byte reports change nothing. */
static void test_turn_budget(void **state)
{
    const uint32_t Q = 1000;
    sl__sched s;
    sl__sched_init(&s, Q);
    fstream a;
    fs_init(&a, 1, SL_PRIO_CRITICAL, 1);
    sl__sched_push(&s, &a.node);
    size_t budget;
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, Q);
    sl__sched_sent(&s, &a.node, 300, true);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, 700);
    sl__sched_sent(&s, &a.node, 0, true); /* e.g. the packet was full */
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, 700);
    sl__sched_sent(&s, &a.node, 699, true);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, 1);
    sl__sched_sent(&s, &a.node, 1, true);
    /* Alone in its class: a new turn, full quantum. */
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, Q);
    /* Emptied with budget left, then pushed again: no carried credit. */
    sl__sched_sent(&s, &a.node, 10, false);
    assert_true(sl__sched_empty(&s));
    sl__sched_push(&s, &a.node);
    assert_ptr_equal(sl__sched_peek(&s, &budget), &a.node);
    assert_int_equal(budget, Q);
    assert_true(sl__sched_verify(&s));
}

/*
 * Random operations on 64 streams checked against a model of the API's
 * semantics: which nodes are queued or blocked, each class's count, and that
 * peek always returns a node of the most urgent class with a queued node.
 */
static void test_random_ops(void **state)
{
    enum { N = 64 };
    const uint32_t Q = 3000;
    sl__sched s;
    sl__sched_init(&s, Q);
    fstream f[N];
    bool queued[N], blocked[N];
    int prio[N];
    for (int i = 0; i < N; i++) {
        prio[i] = i % SL_PRIO_COUNT;
        fs_init(&f[i], i, prio[i], 0);
        queued[i] = blocked[i] = false;
    }
    uint64_t x = 12345;
    for (int step = 0; step < 50000; step++) {
        int i = (int)(rnd(&x) % N);
        sl__sched_node *n = &f[i].node;
        switch (rnd(&x) % 8) {
        case 0:
        case 1:
            sl__sched_push(&s, n);
            queued[i] = queued[i] || !blocked[i];
            break;
        case 2:
            sl__sched_remove(&s, n);
            queued[i] = false;
            break;
        case 3:
            sl__sched_blocked(&s, n);
            queued[i] = false;
            blocked[i] = true;
            break;
        case 4: {
            bool has = rnd(&x) & 1;
            sl__sched_unblock(&s, n, has);
            blocked[i] = false;
            queued[i] = queued[i] || has;
            break;
        }
        case 5:
            prio[i] = (int)(rnd(&x) % SL_PRIO_COUNT);
            sl__sched_set_prio(&s, n, prio[i]);
            break;
        default: {
            size_t budget;
            sl__sched_node *p = sl__sched_peek(&s, &budget);
            int best = SL_PRIO_COUNT;
            for (int k = 0; k < N; k++)
                if (queued[k] && prio[k] < best)
                    best = prio[k];
            if (best == SL_PRIO_COUNT) {
                assert_null(p);
                break;
            }
            assert_non_null(p);
            assert_int_equal(sl__sched_prio(p), best);
            assert_true(budget >= 1 && budget <= Q);
            int k = fs_of(p)->id;
            assert_true(queued[k]);
            size_t bytes = (size_t)(rnd(&x) % (budget + 1));
            bool more = (rnd(&x) % 4) != 0;
            sl__sched_sent(&s, p, bytes, more);
            queued[k] = more;
            break;
        }
        }
        assert_true(sl__sched_verify(&s));
        uint32_t count[SL_PRIO_COUNT] = {0};
        for (int k = 0; k < N; k++) {
            assert_int_equal(sl__sched_queued(&f[k].node), queued[k]);
            assert_int_equal(sl__sched_is_blocked(&f[k].node), blocked[k]);
            assert_int_equal(sl__sched_prio(&f[k].node), prio[k]);
            count[prio[k]] += queued[k];
        }
        for (int p = 0; p < SL_PRIO_COUNT; p++)
            assert_int_equal(s.count[p], count[p]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_strict_priority),
        cmocka_unit_test(test_preempt_mid_turn),
        cmocka_unit_test(test_fairness_small_finish),
        cmocka_unit_test(test_fairness_long_run),
        cmocka_unit_test(test_blocked_skip_resume),
        cmocka_unit_test(test_set_prio),
        cmocka_unit_test(test_remove_current),
        cmocka_unit_test(test_many_streams),
        cmocka_unit_test(test_idempotent_push),
        cmocka_unit_test(test_turn_budget),
        cmocka_unit_test(test_random_ops),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
