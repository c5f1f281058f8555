/*
 * mem.h: resolve a user-supplied sl_mem (any field may be NULL) into a
 * complete one. Internal; used by the core and the node so that both fall
 * back to the C library the same way.
 */
#ifndef SL_ACTORS_MEM_H
#define SL_ACTORS_MEM_H

#include "starling/common.h"

/* Fill *out with `in`'s hooks, each NULL one replaced by the C library's. */
void sl__mem_resolve(const sl_mem *in, sl_mem *out);

#endif
