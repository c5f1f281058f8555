/*
 * map.c: see map.h. Growth doubles the table when it would pass half full;
 * deletion shifts later entries of the same probe run back into the hole so
 * that no tombstones accumulate.
 */
#include <string.h>

#include "actors/map.h"

static inline size_t home(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

void sl__map_init(sl__map *m, const sl_mem *mem)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
    m->mem = mem;
}

void sl__map_fini(sl__map *m)
{
    if (m->slots)
        m->mem->free(m->slots, m->mem->ud);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static void insert_slot(sl__map_slot *slots, size_t cap, uint64_t key, void *val)
{
    size_t mask = cap - 1, i = home(key, mask);
    while (slots[i].key != 0 && slots[i].key != key)
        i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].val = val;
}

static int grow(sl__map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    sl__map_slot *ns = m->mem->calloc(ncap, sizeof *ns, m->mem->ud);
    if (!ns)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            insert_slot(ns, ncap, m->slots[i].key, m->slots[i].val);
    if (m->slots)
        m->mem->free(m->slots, m->mem->ud);
    m->slots = ns;
    m->cap = ncap;
    return SL_OK;
}

int sl__map_put(sl__map *m, uint64_t key, void *val)
{
    if ((m->count + 1) * 2 > m->cap) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->slots[i].key != 0) {
        if (m->slots[i].key == key) {
            m->slots[i].val = val;
            return SL_OK;
        }
        i = (i + 1) & mask;
    }
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->count++;
    return SL_OK;
}

void *sl__map_del(sl__map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->slots[i].key != key) {
        if (m->slots[i].key == 0)
            return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->slots[i].val;
    /* Backward-shift: move later members of the run into the hole when their
     * home position is not between the hole and themselves (cyclically). */
    size_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].key == 0)
            break;
        size_t h = home(m->slots[j].key, mask);
        bool stays = (hole <= j) ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].val = NULL;
    m->count--;
    return val;
}

/* ------------------------------------------------------------ id table */

void sl__idtab_init(sl__idtab *t, const sl_mem *mem)
{
    sl__map_init(&t->dir, mem);
    t->count = 0;
    t->next_page = 0;
}

void sl__idtab_fini(sl__idtab *t)
{
    for (size_t i = 0; i < t->dir.cap; i++)
        if (t->dir.slots[i].key)
            t->dir.mem->free(t->dir.slots[i].val, t->dir.mem->ud);
    sl__map_fini(&t->dir);
    t->count = 0;
}

int sl__idtab_put(sl__idtab *t, uint64_t id, void *val)
{
    uint64_t pn = id >> SL__PAGE_BITS;
    sl__page *p = sl__map_get(&t->dir, pn + 1);
    if (!p) {
        p = t->dir.mem->calloc(1, sizeof *p, t->dir.mem->ud);
        if (!p)
            return SL_ERR_NOMEM;
        if (sl__map_put(&t->dir, pn + 1, p)) {
            t->dir.mem->free(p, t->dir.mem->ud);
            return SL_ERR_NOMEM;
        }
    }
    void **s = &p->slot[id & (SL__PAGE - 1)];
    if (!*s) {
        p->live++;
        t->count++;
    }
    *s = val;
    return SL_OK;
}

void *sl__idtab_del(sl__idtab *t, uint64_t id, uint64_t max_id)
{
    uint64_t pn = id >> SL__PAGE_BITS;
    sl__page *p = sl__map_get(&t->dir, pn + 1);
    if (!p)
        return NULL;
    void **s = &p->slot[id & (SL__PAGE - 1)];
    void *val = *s;
    if (!val)
        return NULL;
    *s = NULL;
    p->live--;
    t->count--;
    /* Free the page once empty, unless later ids will still land in it. */
    if (p->live == 0 && pn < (max_id >> SL__PAGE_BITS)) {
        sl__map_del(&t->dir, pn + 1);
        t->dir.mem->free(p, t->dir.mem->ud);
    }
    return val;
}

void sl__idtab_each(const sl__idtab *t, void (*fn)(void *val, void *ud), void *ud)
{
    for (size_t i = 0; i < t->dir.cap; i++) {
        if (!t->dir.slots[i].key)
            continue;
        sl__page *p = t->dir.slots[i].val;
        for (size_t j = 0; j < SL__PAGE; j++)
            if (p->slot[j])
                fn(p->slot[j], ud);
    }
}

void *sl__idtab_any(const sl__idtab *t)
{
    for (size_t i = 0; i < t->dir.cap; i++) {
        if (!t->dir.slots[i].key)
            continue;
        sl__page *p = t->dir.slots[i].val;
        if (!p->live)
            continue;
        for (size_t j = 0; j < SL__PAGE; j++)
            if (p->slot[j])
                return p->slot[j];
    }
    return NULL;
}
