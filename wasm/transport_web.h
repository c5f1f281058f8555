/*
 * transport_web.h: the contract between the browser's WebTransport
 * transport (transport_web.c) and its JavaScript half
 * (library_webtransport.js). Internal to wasm/.
 *
 * Handles. C objects are named to JavaScript by their pointers (`t`, `c`,
 * `s` below) and JavaScript objects to C by small integer handles (`js`),
 * which JavaScript allocates. C frees an object only after telling
 * JavaScript to forget it (sl__wt_*_forget); JavaScript never calls back
 * with a forgotten pointer, and every call from JavaScript to C happens
 * from a promise continuation or a macrotask, never from inside one of the
 * imports below. So C never sees a stale pointer and is never re-entered.
 *
 * Memory. Bytes going from JavaScript to C are copied into a buffer from
 * sl__wt_alloc() (the transport's allocator) whose ownership passes to C
 * with the call; bytes going from C to JavaScript are copied out of the
 * module's memory before the import returns.
 */
#ifndef SL_WASM_TRANSPORT_WEB_H
#define SL_WASM_TRANSPORT_WEB_H

#include "starling/web.h"

typedef struct w_transport w_transport;
typedef struct w_conn w_conn;
typedef struct w_stream w_stream;

/* ------------------------------------- imports (library_webtransport.js) */

/*
 * Open `new WebTransport(url, options)` for connection `c`; pin (32 bytes)
 * or NULL: serverCertificateHashes. Returns the session's handle (> 0), -1
 * when the constructor threw (bad URL), -2 without WebTransport.
 */
int sl__wt_connect(w_transport *t, w_conn *c, const char *url, const uint8_t *pin);
/* close({closeCode, reason}); the reason is `len` UTF-8 bytes. */
void sl__wt_session_close(int js, uint32_t code, const char *reason, size_t len);
/* Drop the session and its streams (closing it first if still open). */
void sl__wt_session_forget(int js);
/* datagrams.maxDatagramSize (0 when unknown). */
size_t sl__wt_datagram_max(int js);
/* Queue one datagram (copied). 0, or -1 (too many queued), -2 (closed). */
int sl__wt_datagram_send(int js, const void *data, size_t len);

/* createBidirectionalStream/createUnidirectionalStream({sendOrder}); the
 * stream is usable at once. Returns the stream's handle (> 0). */
int sl__wt_stream_open(int session, w_stream *s, int bidi, int send_order);
/* Queue bytes (copied) after the ones before; sl__wt_on_sent follows. Returns 0 or -1 (no memory).
 */
int sl__wt_stream_write(int js, const void *data, size_t len);
/* Close the writer after the queued bytes; sl__wt_on_write_end(s, 0) follows. */
void sl__wt_stream_finish(int js);
/* Abort the writer with a WebTransportError {streamErrorCode: code}; queued bytes dropped. */
void sl__wt_stream_reset(int js, uint32_t code);
/* Cancel the reader with a WebTransportError {streamErrorCode: code}. */
void sl__wt_stream_stop(int js, uint32_t code);
/* Read the next chunk (at most SL__WT_READ_CHUNK bytes): sl__wt_on_data or
 * sl__wt_on_read_end follows. Called only when all bytes delivered so far
 * have been consumed, and never twice without a delivery in between. */
void sl__wt_stream_read(int js);
/* Set the writable's sendOrder. */
void sl__wt_stream_order(int js, int send_order);
/* The largest stream error code the browser can send: 2^32-1 by the
 * current spec, 255 in Chromium 156 (its WebTransportError clamps to 8 bits). */
uint32_t sl__wt_max_code(void);
/* Drop the stream. */
void sl__wt_stream_forget(int js);

/* Post one macrotask that calls sl__wt_on_post(t). */
void sl__wt_post(w_transport *t);
/* The transport is freed: ignore its posted macrotask. */
void sl__wt_transport_forget(w_transport *t);

/* The largest chunk one read hands to C (BYOB reads into a buffer this big). */
#define SL__WT_READ_CHUNK 65536

/* ------------------------------------------- exports (called from JS) */

SL_EXTERN void *sl__wt_alloc(w_transport *t, size_t n);
SL_EXTERN void sl__wt_on_post(w_transport *t);
SL_EXTERN void sl__wt_on_ready(w_conn *c);
/* kind 0: `closed` resolved (code and reason from the server or our
 * close); 1: it rejected (reason = the error's message). `reason` is
 * sl__wt_alloc'ed (NUL-terminated) or NULL; C takes it. */
SL_EXTERN void sl__wt_on_closed(w_conn *c, int kind, uint32_t code, char *reason);
/* A server-opened stream arrived; returns its C handle (NULL: refused). */
SL_EXTERN w_stream *sl__wt_on_stream_open(w_conn *c, int js, int bidi);
/* The answer to sl__wt_stream_read: `len` bytes (sl__wt_alloc'ed, C takes
 * them; NULL when len is 0), and fin. */
SL_EXTERN void sl__wt_on_data(w_stream *s, uint8_t *data, size_t len, int fin);
/* The reading side ended without FIN: kind 1 the peer reset it (code),
 * 2 an error (session gone, stream refused, no memory). */
SL_EXTERN void sl__wt_on_read_end(w_stream *s, int kind, uint32_t code);
/* The browser took `n` more written bytes (the writer's write resolved). */
SL_EXTERN void sl__wt_on_sent(w_stream *s, size_t n);
/* The writing side ended: kind 0 finished (close resolved), 1 the peer
 * asked us to stop (STOP_SENDING, code), 2 an error. */
SL_EXTERN void sl__wt_on_write_end(w_stream *s, int kind, uint32_t code);
/* A datagram (sl__wt_alloc'ed, C takes it). */
SL_EXTERN void sl__wt_on_datagram(w_conn *c, uint8_t *data, size_t len);

#endif
