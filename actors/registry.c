/*
 * registry.c: the local name registry ("planner" -> actor).
 *
 * A chained hash table of names (FNV-1a) to actors. Each actor holds at most
 * one name; the actor's `name` field points at the entry's copy so that the
 * core can release the name in O(1) when the actor stops.
 */
#include <string.h>

#include "actors/core_int.h"

typedef struct reg_entry {
    struct reg_entry *next;
    uint64_t hash;
    sl_actor *actor;
    char name[]; /* NUL-terminated copy */
} reg_entry;

struct sl__reg {
    reg_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int sl__reg_new(sl_core *c)
{
    c->reg = sl__calloc(c, 1, sizeof *c->reg);
    return c->reg ? SL_OK : SL_ERR_NOMEM;
}

void sl__reg_del(sl_core *c)
{
    sl__reg *r = c->reg;
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        reg_entry *e = r->buckets[i];
        while (e) {
            reg_entry *n = e->next;
            sl__free(c, e);
            e = n;
        }
    }
    sl__free(c, r->buckets);
    sl__free(c, r);
    c->reg = NULL;
}

static reg_entry **find_slot(const sl__reg *r, const char *name, size_t n, uint64_t h)
{
    if (!r->nbuckets)
        return NULL;
    reg_entry **pp = &r->buckets[h & (r->nbuckets - 1)];
    while (*pp) {
        if ((*pp)->hash == h && strncmp((*pp)->name, name, n) == 0 && (*pp)->name[n] == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return pp;
}

static int check_name(const char *name, size_t *len)
{
    if (!name)
        return SL_ERR_BAD_NAME;
    size_t n = strnlen(name, SL_NAME_MAX + 1);
    if (n == 0 || n > SL_NAME_MAX)
        return SL_ERR_BAD_NAME;
    *len = n;
    return SL_OK;
}

static int grow(sl_core *c, sl__reg *r)
{
    size_t nb = r->nbuckets ? r->nbuckets * 2 : 16;
    reg_entry **b = sl__calloc(c, nb, sizeof *b);
    if (!b)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < r->nbuckets; i++) {
        reg_entry *e = r->buckets[i];
        while (e) {
            reg_entry *n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    sl__free(c, r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
    return SL_OK;
}

int sl_register(sl_core *c, const char *name, sl_id id)
{
    size_t n;
    int rc = check_name(name, &n);
    if (rc)
        return rc;
    sl_actor *a = sl__actor_get(c, id);
    if (!a)
        return SL_ERR_NOACTOR;
    if (a->name)
        return SL_ERR_EXISTS;
    sl__reg *r = c->reg;
    if (r->count + 1 > r->nbuckets && grow(c, r))
        return SL_ERR_NOMEM;
    uint64_t h = fnv1a(name, n);
    reg_entry **pp = find_slot(r, name, n, h);
    if (*pp)
        return SL_ERR_EXISTS;
    reg_entry *e = sl__alloc(c, sizeof *e + n + 1);
    if (!e)
        return SL_ERR_NOMEM;
    e->next = NULL;
    e->hash = h;
    e->actor = a;
    memcpy(e->name, name, n);
    e->name[n] = 0;
    *pp = e;
    r->count++;
    a->name = e->name;
    return SL_OK;
}

/* Unlink and free the entry at *pp. */
static void remove_at(sl_core *c, reg_entry **pp)
{
    reg_entry *e = *pp;
    *pp = e->next;
    e->actor->name = NULL;
    c->reg->count--;
    sl__free(c, e);
}

int sl_unregister(sl_core *c, const char *name)
{
    size_t n;
    if (check_name(name, &n))
        return SL_ERR_NOTFOUND;
    reg_entry **pp = find_slot(c->reg, name, n, fnv1a(name, n));
    if (!pp || !*pp)
        return SL_ERR_NOTFOUND;
    remove_at(c, pp);
    return SL_OK;
}

int sl_whereis(const sl_core *c, const char *name, sl_id *out)
{
    size_t n;
    if (check_name(name, &n))
        return SL_ERR_NOTFOUND;
    reg_entry **pp = find_slot(c->reg, name, n, fnv1a(name, n));
    if (!pp || !*pp)
        return SL_ERR_NOTFOUND;
    if (out)
        *out = (sl_id){c->set.node_id, (*pp)->actor->local};
    return SL_OK;
}

void sl__reg_release(sl_core *c, sl_actor *a)
{
    if (!a->name)
        return;
    size_t n = strlen(a->name);
    reg_entry **pp = find_slot(c->reg, a->name, n, fnv1a(a->name, n));
    if (pp && *pp)
        remove_at(c, pp);
}
