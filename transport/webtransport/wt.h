/*
 * wt.h: the WebTransport server as the QUIC transport sees it. Internal to
 * transport/; the design is in wt.c and transport/webtransport/README.md.
 *
 * The QUIC transport creates one server per endpoint that has
 * sl_webtransport_settings, offers "h3" as a server ALPN, and points the
 * events of every server connection that chose "h3" at
 * sl__wt_conn_callbacks with the server as their user pointer. The server
 * speaks HTTP/3 on that connection through the public connection and
 * stream functions, and raises the application's callbacks for the
 * WebTransport sessions it accepts.
 */
#ifndef SL_WT_WT_H
#define SL_WT_WT_H

#include <uv.h>

#include "starling/transport.h"

#define SL__WT_ALPN "h3"

typedef struct sl__wt_server sl__wt_server;

/* The callbacks of an "h3" connection; their `ud` is the sl__wt_server. */
extern const sl_transport_callbacks sl__wt_conn_callbacks;

/* Check settings before anything is created: SL_OK or SL_ERR_INVAL. */
int sl__wt_settings_check(const sl_webtransport_settings *s);

/*
 * Create the server of transport `t` (whose mem, callbacks and ud it uses)
 * from `s` (copied: nothing in it is referenced afterwards). Its timer is
 * made on first use. Returns SL_OK, SL_ERR_INVAL, SL_ERR_NOMEM.
 */
int sl__wt_server_new(sl_transport *t, uv_loop_t *loop, const sl_webtransport_settings *s,
                      sl__wt_server **out);

/*
 * The transport is closing and every connection is gone: close the
 * server's timer. Returns true if done(arg) will be called once it has
 * closed, false if there was nothing to close (done is not called).
 */
bool sl__wt_server_close(sl__wt_server *w, void (*done)(void *arg), void *arg);

/* Free the server (after its close completed, or if it never had a timer). */
void sl__wt_server_del(sl__wt_server *w);

/* Add the server's counters to *out. */
void sl__wt_server_stats(const sl__wt_server *w, sl_transport_stats *out);

#endif
