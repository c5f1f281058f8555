/*
 * starling/starling.h: the whole public API of Starling.
 *
 *   common.h      errors, priorities, allocator hook
 *   actor.h       actors, messages, asks, timers, monitors, links, registry
 *   supervisor.h  supervision trees
 *   schema.h      the wire envelope and hostile-input-safe msgpack checks
 *   pack.h        msgpack payload helpers
 *   node.h        a node: the actor core on a libuv loop, offloaded work
 */
#ifndef STARLING_H
#define STARLING_H

#include "common.h"
#include "actor.h"
#include "supervisor.h"
#include "schema.h"
#include "pack.h"
#include "node.h"

#endif
