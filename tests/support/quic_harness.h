/*
 * quic_harness.h: a harness for tests of the native QUIC transport over real
 * UDP sockets on 127.0.0.1.
 *
 * One libuv loop in the test process carries every endpoint ("side"): a
 * server that listens on an ephemeral port and one or more clients, each an
 * sl_transport of its own (so each client has its own source port). The
 * transport callbacks only record: every connection and every stream a side
 * sees gets a record (qh_conn, qh_stream) reachable through the handle's
 * user pointer, holding what happened to it (ready, closed and why, bytes
 * and a SHA-256 of what arrived, fin, reset, stop, writable). Tests then run
 * the loop until a predicate over those records holds (qh_run, bounded by a
 * watchdog timer) and assert afterwards: callbacks never call cmocka
 * assertions, so a failure never longjmps out of the transport.
 *
 * Every transport gets the harness's counting allocator (slt_mem), and
 * qh_finish() closes every transport, runs the loop until they are closed,
 * deletes them and asserts that nothing is left allocated and that the loop
 * closes with no handle alive.
 *
 * Records live in the harness (heap), so they outlive the handles: after
 * on_conn_closed / on_stream_closed the record stays, with its handle
 * pointer cleared.
 */
#ifndef SL_QUIC_HARNESS_H
#define SL_QUIC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <uv.h>

#include "sl_test.h"
#include "starling/transport.h"

#define QH_MAX_SIDES 4
#define QH_MAX_CONNS 16
#define QH_MAX_STREAMS 1100

typedef struct qh_harness qh_harness;
typedef struct qh_side qh_side;
typedef struct qh_conn qh_conn;
typedef struct qh_stream qh_stream;

/* What one side saw of one connection. */
struct qh_conn {
    qh_side *side;
    sl_conn *c;        /* the live handle; NULL once on_conn_closed returned */
    int ready;         /* on_conn_ready calls */
    int closed;        /* on_conn_closed calls */
    sl_close_info why; /* of the last on_conn_closed; why.reason points to reason */
    char reason[256];
    bool has_peer_node; /* sl_conn_peer_node_id succeeded at on_conn_ready */
    uint64_t peer_node;
    char alpn[32]; /* sl_conn_alpn at on_conn_ready ("" if none) */
    int dgrams;    /* datagrams received */
    size_t dgram_bytes;
};

/* What one side saw of one stream (opened by it or by the peer). */
struct qh_stream {
    qh_side *side;
    qh_conn *conn;
    sl_stream *s; /* the live handle; NULL once on_stream_closed returned */
    int64_t id;
    bool local;          /* opened with qh_stream_open on this side */
    gnutls_hash_hd_t h;  /* SHA-256 of the bytes received */
    uint64_t bytes;      /* bytes received */
    uint64_t unconsumed; /* received but not yet given back (side->consume false) */
    bool fin, closed, reset, stopped;
    uint64_t reset_code, stop_code;
    int writable; /* on_stream_writable calls */
};

/* One endpoint and everything it saw. */
struct qh_side {
    qh_harness *h;
    const char *name;
    sl_transport *t; /* NULL until qh_side_start succeeded */
    uint16_t port;   /* bound port after qh_listen */
    bool consume;    /* return credit as data arrives (default true) */
    qh_conn conns[QH_MAX_CONNS];
    int nconns;
    qh_stream streams[QH_MAX_STREAMS];
    int nstreams;
    int ready, closed; /* totals over this side's connections */
    int streams_closed, writable;
    int overflow; /* records that did not fit (asserted zero by qh_finish) */
    /* Optional hooks, called after the event was recorded. */
    void (*on_data)(qh_stream *r, const uint8_t *data, size_t len, bool fin);
    void (*on_writable)(qh_stream *r);
    void (*on_ready)(qh_conn *r);
    void (*on_dgram)(qh_conn *r, const uint8_t *data, size_t len);
    void (*on_closed)(qh_conn *r); /* after the record took on_conn_closed */
    void *ud; /* for the test */
};

struct qh_harness {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_idle_t check;
    bool timed_out;
    bool (*done)(qh_harness *h, void *arg);
    void *done_arg;
    slt_mem mem; /* every transport allocates through it */
    qh_side sides[QH_MAX_SIDES];
    int nsides;
};

/* A harness with an initialised loop (heap; qh_finish frees it). */
qh_harness *qh_new(void);
/* Reserve the next side (asserts there is room). */
qh_side *qh_side_add(qh_harness *h, const char *name);
/*
 * Defaults for a side: sl_transport_settings_default, the harness loop and
 * allocator, every callback recording into `sd`. TLS is left at the default
 * (SL_VERIFY_CA without files): tests set what they need.
 */
void qh_settings(qh_side *sd, sl_transport_settings *s);
/* sl_quic_new for the side; returns its value (sd->t is set on SL_OK). */
int qh_side_start(qh_side *sd, const sl_transport_settings *s);
/* Listen on 127.0.0.1, ephemeral port, into sd->port (asserts). */
void qh_listen(qh_side *sd);
/* Connect to 127.0.0.1:port with a fresh record as conn_ud. Returns the
 * sl_transport_connect value; *out gets the record on SL_OK. */
int qh_connect_rc(qh_side *sd, uint16_t port, qh_conn **out);
/* Same, asserting SL_OK. */
qh_conn *qh_connect(qh_side *sd, uint16_t port);

/*
 * Run the loop until done(h, arg) holds (checked every loop iteration) or
 * `ms` milliseconds pass. done NULL: run for `ms`. Returns true if done
 * held (false on timeout); with done NULL, true.
 */
bool qh_run(qh_harness *h, bool (*done)(qh_harness *h, void *arg), void *arg, uint64_t ms);

/*
 * Close every started transport, run until all reported closed, delete
 * them, free stream hashes; assert nothing was left allocated, no record
 * overflowed and the loop closed; free the harness.
 */
void qh_finish(qh_harness *h);

/*
 * cmocka teardown for tests using the harness: if a failed assertion left a
 * harness behind (qh_finish not reached), close and free it best-effort so
 * one failure does not leak into the next test or the sanitizer report.
 */
int qh_teardown(void **state);

/* Open a stream on a live connection with a fresh record as its user
 * pointer. Returns the sl_stream_open value; *out gets the record on SL_OK. */
int qh_stream_open(qh_conn *c, bool bidi, int prio, qh_stream **out);
/* Give back credit for every byte received and not yet consumed on `sd`. */
void qh_consume_all(qh_side *sd);

/* Predicates for qh_run; arg is the record named. */
bool qh_until_ready(qh_harness *h, void *conn);   /* conn ready */
bool qh_until_closed(qh_harness *h, void *conn);  /* conn closed */
bool qh_until_settled(qh_harness *h, void *conn); /* conn ready or closed */
bool qh_until_fin(qh_harness *h, void *stream);   /* stream saw fin */
bool qh_until_stream_closed(qh_harness *h, void *stream);

/* Deterministic bytes (xorshift from `seed`). Caller frees. */
uint8_t *qh_pattern(size_t n, uint32_t seed);

/*
 * Send n pattern bytes on a new bidi stream of client connection `c`
 * (writes of up to 64 KiB, continuing from on_stream_writable is not
 * needed for n <= the stream buffer), finish, and run until `peer` has
 * received all of it with fin. Asserts that the bytes and their SHA-256
 * match. Returns the peer's stream record. Bounded by `ms`.
 */
qh_stream *qh_transfer(qh_conn *c, qh_side *peer, size_t n, uint64_t ms);

#endif
