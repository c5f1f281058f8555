/*
 * web_int.h: what the browser platform (platform.c), the JS API bridge
 * (bridge.c) and their JavaScript side (library_starling.js) share.
 * Internal to wasm/.
 *
 * The sl__web_* functions declared "import" are implemented in JavaScript
 * (library_starling.js) and linked by Emscripten as wasm imports; those
 * declared "export" are C functions the JavaScript side calls (they are in
 * EXPORTED_FUNCTIONS, see wasm/CMakeLists.txt).
 */
#ifndef SL_WASM_WEB_INT_H
#define SL_WASM_WEB_INT_H

#include "starling/web.h"

/* ------------------------------------------- imports: the event loop */

/* performance.now(): monotonic milliseconds with a fraction. */
double sl__web_now_ms(void);
/* Call sl__web_on_post(n) from a new macrotask, or (soon != 0) from a
 * microtask: right after the JavaScript that is running now returns (while
 * the transport delivers data, right after that delivery returned). */
void sl__web_post(sl_web_node *n, int soon);
/* Arm the node's one-shot timer to call sl__web_on_timer(n) after `ms`
 * milliseconds, replacing the previous one; a negative `ms` only clears it. */
void sl__web_timer(sl_web_node *n, double ms);
/* The node is being freed: clear its timer, ignore its posted macrotask. */
void sl__web_forget(sl_web_node *n);
/* Fill buf[0..len) with crypto.getRandomValues(). */
void sl__web_random(void *buf, size_t len);

/* ------------------------------------------ exports: the event loop */

/* The posted macrotask, and the timer, run the node. */
SL_EXTERN void sl__web_on_post(sl_web_node *n);
SL_EXTERN void sl__web_on_timer(sl_web_node *n);

/* Name of the i-th registered C agent, or NULL past the last. */
const char *sl__web_agent_name(uint32_t i);

/* ------------------------------------------ imports: JavaScript actors */

/*
 * The three callbacks of an actor written in JavaScript, dispatched by the
 * JS handle it was spawned with (an index into the JS side's table). A
 * non-zero return from start/message crashes the actor with that code.
 */
int sl__web_js_start(int handle, sl_actor *self);
int sl__web_js_message(int handle, sl_actor *self, const sl_msg *m);
void sl__web_js_stop(int handle, int reason);
/* A node stopped by the JS API finished stopping. */
void sl__web_js_stopped(sl_web_node *n);
/* A cluster peer (the gateway, or a node behind it) came up or went down. */
void sl__web_js_peer(sl_web_node *n, uint32_t lo, uint32_t hi, bool up);

#endif
