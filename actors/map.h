/*
 * map.h: an open-addressing hash map from non-zero uint64 keys to pointers.
 *
 * Used for the actor table (local id -> actor) and the reference table (ask
 * ids, monitor refs, timer ids -> record). Linear probing with a
 * multiplicative hash, load factor at most 1/2, and backward-shift deletion
 * (no tombstones), so lookups stay short under heavy spawn/stop churn.
 */
#ifndef SL_ACTORS_MAP_H
#define SL_ACTORS_MAP_H

#include "starling/common.h"

typedef struct sl__map_slot {
    uint64_t key; /* 0 = empty */
    void *val;
} sl__map_slot;

typedef struct sl__map {
    sl__map_slot *slots;
    size_t cap;   /* power of two, or 0 before the first insert */
    size_t count; /* occupied slots */
    const sl_mem *mem;
} sl__map;

void sl__map_init(sl__map *m, const sl_mem *mem);
void sl__map_fini(sl__map *m);
/* Insert or replace. Returns SL_OK or SL_ERR_NOMEM (map unchanged). */
int sl__map_put(sl__map *m, uint64_t key, void *val);
/* Remove; returns the value or NULL. */
void *sl__map_del(sl__map *m, uint64_t key);

static inline void *sl__map_get(const sl__map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    for (;;) {
        const sl__map_slot *s = &m->slots[i];
        if (s->key == key)
            return s->val;
        if (s->key == 0)
            return NULL;
        i = (i + 1) & mask;
    }
}

#endif

/*
 * An id table: local actor ids (a counter, so new ids are dense and
 * increasing) to actors. Ids are grouped in pages of SL__PAGE slots found
 * through a small sl__map, so spawning walks memory sequentially instead of
 * scattering inserts over a large hash table, and a lookup is one probe in a
 * small, cache-resident directory plus one index. A page is freed when its
 * last actor is removed and no future id can fall into it.
 */
#define SL__PAGE_BITS 10
#define SL__PAGE (1u << SL__PAGE_BITS)

typedef struct sl__page {
    uint32_t live;
    void *slot[SL__PAGE];
} sl__page;

typedef struct sl__idtab {
    sl__map dir;        /* page number + 1 -> sl__page */
    size_t count;       /* live entries */
    uint64_t next_page; /* page numbers below this one never get new ids */
} sl__idtab;

void sl__idtab_init(sl__idtab *t, const sl_mem *mem);
void sl__idtab_fini(sl__idtab *t);
/* Insert id -> val (val non-NULL). Returns SL_OK or SL_ERR_NOMEM. */
int sl__idtab_put(sl__idtab *t, uint64_t id, void *val);
/* Remove an id; returns its value or NULL. `max_id` is the highest id handed
 * out so far (pages that may still receive ids are kept). */
void *sl__idtab_del(sl__idtab *t, uint64_t id, uint64_t max_id);
/* Call fn for every entry (fn must not modify the table). */
void sl__idtab_each(const sl__idtab *t, void (*fn)(void *val, void *ud), void *ud);
/* Any one live entry, or NULL. */
void *sl__idtab_any(const sl__idtab *t);

static inline void *sl__idtab_get(const sl__idtab *t, uint64_t id)
{
    const sl__page *p = sl__map_get(&t->dir, (id >> SL__PAGE_BITS) + 1);
    return p ? p->slot[id & (SL__PAGE - 1)] : NULL;
}
