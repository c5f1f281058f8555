/*
 * common.c: the error table, names of priorities and reasons, and the default
 * allocator. Everything is generated from the X-macro lists in the public
 * headers so that a code, its name and its message cannot drift apart.
 */
#include <stdlib.h>

#include "starling/common.h"
#include "starling/actor.h"
#include "actors/mem.h"

const char *sl_strerror(int err)
{
    switch (err) {
    case SL_OK:
        return "success";
#define SL__ERR_MSG(name, val, msg)                                                                \
    case (val):                                                                                    \
        return msg;
        SL_ERRNO_MAP(SL__ERR_MSG)
#undef SL__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *sl_err_name(int err)
{
    switch (err) {
    case SL_OK:
        return "SL_OK";
#define SL__ERR_NAME(name, val, msg)                                                               \
    case (val):                                                                                    \
        return "SL_ERR_" #name;
        SL_ERRNO_MAP(SL__ERR_NAME)
#undef SL__ERR_NAME
    default:
        return "SL_ERR_UNKNOWN";
    }
}

const char *sl_prio_name(int prio)
{
    static const char *const names[SL_PRIO_COUNT] = {"CRITICAL", "HIGH", "NORMAL", "LOW",
                                                     "BACKGROUND"};
    return (prio >= 0 && prio < SL_PRIO_COUNT) ? names[prio] : "?";
}

const char *sl_reason_name(int reason)
{
    static const char *const names[] = {"normal",   "crash",        "killed",
                                        "noproc",   "noconnection", "shutdown"};
    return (reason >= 0 && reason < (int)(sizeof names / sizeof names[0])) ? names[reason] : "?";
}

static void *def_malloc(size_t n, void *ud) { (void)ud; return malloc(n); }
static void def_free(void *p, void *ud) { (void)ud; free(p); }
static void *def_calloc(size_t n, size_t s, void *ud) { (void)ud; return calloc(n, s); }
static void *def_realloc(void *p, size_t n, void *ud) { (void)ud; return realloc(p, n); }

static const sl_mem default_mem = {def_malloc, def_free, def_calloc, def_realloc, NULL};

const sl_mem *sl_mem_default(void) { return &default_mem; }

void sl__mem_resolve(const sl_mem *in, sl_mem *out)
{
    *out = default_mem;
    if (!in)
        return;
    if (in->malloc)
        out->malloc = in->malloc;
    if (in->free)
        out->free = in->free;
    if (in->calloc)
        out->calloc = in->calloc;
    if (in->realloc)
        out->realloc = in->realloc;
    out->ud = in->ud;
}
