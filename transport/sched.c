/*
 * sched.c: the per-connection stream scheduler (see sched.h for the API).
 *
 * Design. Strict priority between classes, deficit round robin (DRR, Shreedhar
 * and Varghese 1995) inside a class. Each class is a circular doubly linked
 * ring of the streams that have data; the ring's head is the stream whose
 * turn is current or next, so "end this turn" is one pointer move (head =
 * head->next) and "join the tail" is an insertion before the head. A bitmask
 * of non-empty classes turns "most urgent ready class" into one
 * count-trailing-zeros. No operation allocates or loops over streams.
 *
 * DRR on byte streams. A turn starts when peek first returns a class head
 * (the head is granted `quantum` bytes of deficit) and ends when the deficit
 * is spent, when the stream runs out of data, or when it is removed, blocked
 * or moved to another class. Classic DRR carries an unused deficit over to
 * the next round because a packet may not fit in it; a stream can always be
 * cut at any byte, so here a turn runs until the deficit is exactly spent
 * and nothing needs carrying over. A stream that leaves the queue forgets
 * its deficit (an idle flow earns no credit), and rejoins at the tail. Hence
 * among continuously backlogged streams of one class, the bytes sent by any
 * two differ by at most one quantum at every moment.
 *
 * Strict priority preempts mid-turn: a stream pushed into a more urgent class
 * is returned by the very next peek. The interrupted stream stays at the
 * head of its class with the rest of its deficit, and resumes its turn when
 * its class is served again, so preemption never costs it its place.
 *
 * Invariants (checked by assertions in each operation, all of them by
 * sl__sched_verify):
 *  I1  bit p of nonempty  <=>  head[p] != NULL  <=>  count[p] > 0.
 *  I2  every queued node n: n->next->prev == n, n->prev->next == n, and n
 *      sits in the ring of class n->prio.
 *  I3  a node is queued <=> n->next != NULL (<=> n->prev != NULL); nodes
 *      outside the queue have deficit 0.
 *  I4  only a class head may have a non-zero deficit, and deficit <= quantum.
 *  I5  no queued node is blocked.
 */
#include <assert.h>

#include "transport/sched.h"

/* Clamp a caller's class number (asserting it was valid). */
static uint8_t prio_ok(int prio)
{
    assert(prio >= 0 && prio < SL_PRIO_COUNT);
    if (prio < 0)
        return 0;
    if (prio >= SL_PRIO_COUNT)
        return SL_PRIO_COUNT - 1;
    return (uint8_t)prio;
}

/* Link a node that is not queued at the tail of its class (before the head). */
static void link_tail(sl__sched *s, sl__sched_node *n)
{
    uint8_t p = n->prio;
    assert(n->next == NULL && n->prev == NULL);
    assert(!n->blocked);
    n->deficit = 0;
    sl__sched_node *h = s->head[p];
    if (h == NULL) {
        assert(s->count[p] == 0 && !(s->nonempty & (1u << p)));
        n->next = n->prev = n;
        s->head[p] = n;
        s->nonempty |= (uint8_t)(1u << p);
    } else {
        n->next = h;
        n->prev = h->prev;
        h->prev->next = n;
        h->prev = n;
    }
    s->count[p]++;
}

/* Unlink a queued node from its class ring; it ends up not queued, deficit 0. */
static void unlink_node(sl__sched *s, sl__sched_node *n)
{
    uint8_t p = n->prio;
    assert(n->next != NULL && n->prev != NULL);
    assert(n->next->prev == n && n->prev->next == n);
    assert(s->count[p] > 0 && s->head[p] != NULL);
    if (n->next == n) {
        assert(s->head[p] == n && s->count[p] == 1);
        s->head[p] = NULL;
        s->nonempty &= (uint8_t) ~(1u << p);
    } else {
        if (s->head[p] == n)
            s->head[p] = n->next; /* its deficit is 0 (I4): a fresh turn */
        n->prev->next = n->next;
        n->next->prev = n->prev;
    }
    s->count[p]--;
    n->next = n->prev = NULL;
    n->deficit = 0;
}

void sl__sched_init(sl__sched *s, uint32_t quantum)
{
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        s->head[p] = NULL;
        s->count[p] = 0;
    }
    s->quantum = quantum ? quantum : SL__SCHED_QUANTUM_DEFAULT;
    s->nonempty = 0;
}

void sl__sched_node_init(sl__sched_node *n, int prio)
{
    n->prev = n->next = NULL;
    n->deficit = 0;
    n->prio = prio_ok(prio);
    n->blocked = 0;
}

void sl__sched_push(sl__sched *s, sl__sched_node *n)
{
    if (n->blocked || n->next != NULL)
        return; /* blocked: wait for unblock; queued: idempotent */
    link_tail(s, n);
}

void sl__sched_remove(sl__sched *s, sl__sched_node *n)
{
    if (n->next == NULL) {
        assert(n->prev == NULL && n->deficit == 0);
        return;
    }
    unlink_node(s, n);
}

sl__sched_node *sl__sched_peek(sl__sched *s, size_t *budget)
{
    if (s->nonempty == 0) {
        if (budget)
            *budget = 0;
        return NULL;
    }
    int p = __builtin_ctz(s->nonempty);
    sl__sched_node *n = s->head[p];
    assert(n != NULL && n->prio == p && s->count[p] > 0);
    assert(!n->blocked);
    assert(n->deficit <= s->quantum);
    if (n->deficit == 0)
        n->deficit = s->quantum; /* its turn starts */
    if (budget)
        *budget = n->deficit;
    return n;
}

void sl__sched_sent(sl__sched *s, sl__sched_node *n, size_t bytes, bool still_has_data)
{
    if (n->next == NULL)
        return; /* removed or blocked during the write */
    if (!still_has_data) {
        unlink_node(s, n);
        return;
    }
    uint8_t p = n->prio;
    /* Moved to another class since the peek: its turn ended there, and no
     * turn has started in the new class, so there is nothing to charge. */
    if (s->head[p] != n || n->deficit == 0)
        return;
    assert(bytes <= n->deficit); /* never more than the peek's budget */
    if (bytes >= n->deficit) {
        /* Turn over: to the tail (the ring's head moves on), and a fresh
         * quantum when its turn comes again. */
        n->deficit = 0;
        s->head[p] = n->next;
        return;
    }
    n->deficit -= (uint32_t)bytes;
}

void sl__sched_blocked(sl__sched *s, sl__sched_node *n)
{
    if (n->next != NULL)
        unlink_node(s, n);
    n->blocked = 1;
}

void sl__sched_unblock(sl__sched *s, sl__sched_node *n, bool has_data)
{
    n->blocked = 0;
    if (has_data)
        sl__sched_push(s, n);
}

void sl__sched_set_prio(sl__sched *s, sl__sched_node *n, int prio)
{
    uint8_t p = prio_ok(prio);
    if (p == n->prio)
        return;
    if (n->next == NULL) {
        n->prio = p;
        return;
    }
    unlink_node(s, n);
    n->prio = p;
    link_tail(s, n);
}

bool sl__sched_verify(const sl__sched *s)
{
    if (s->quantum == 0)
        return false;
    for (int p = 0; p < SL_PRIO_COUNT; p++) {
        const sl__sched_node *h = s->head[p];
        bool bit = (s->nonempty >> p) & 1u;
        if ((h != NULL) != bit || (s->count[p] > 0) != bit) /* I1 */
            return false;
        if (h == NULL)
            continue;
        uint32_t seen = 0;
        const sl__sched_node *n = h;
        do {
            if (n->next == NULL || n->prev == NULL) /* I3 */
                return false;
            if (n->next->prev != n || n->prev->next != n || n->prio != p) /* I2 */
                return false;
            if (n->blocked) /* I5 */
                return false;
            if (n->deficit > s->quantum || (n != h && n->deficit != 0)) /* I4 */
                return false;
            if (++seen > s->count[p]) /* ring longer than counted (or not a ring) */
                return false;
            n = n->next;
        } while (n != h);
        if (seen != s->count[p])
            return false;
    }
    if (s->nonempty >> SL_PRIO_COUNT) /* I1: no bits beyond the classes */
        return false;
    return true;
}
