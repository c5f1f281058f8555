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
