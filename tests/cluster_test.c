/*
 * cluster_test.c: actors on two networked nodes (QUIC on 127.0.0.1, one
 * libuv loop) talk exactly as neighbours do: send, ask/reply, asks to
 * unknown or dying actors, deadlines, cancellation, and what happens to
 * pending asks and monitors when the other node goes away.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "starling/node.h"

#include "cluster_harness.h"

typedef slc_probe probe;
typedef slc_world world;

static bool run_until(world *w, bool (*done)(world *), uint64_t ms)
{
    return slc_run_until(w, done, ms);
}

static void world_up(world *w)
{
    memset(w, 0, sizeof *w);
    slc_up(w, 2);
}

static void world_down(world *w) { slc_down(w); }

/* An actor on B that runs a function once it starts (to ask/send from it). */
typedef struct client {
    probe p; /* first: sl_state is also a probe */
    sl_id target;
    int mode;
    uint64_t ask_id, mon_ref;
} client;

enum { M_SEND100 = 1, M_ASK, M_ASK_TIMEOUT, M_ASK_MONITOR };

static int client_start(sl_actor *self, void *arg)
{
    client *c = sl_state(self);
    char buf[16];
    switch (c->mode) {
    case M_SEND100:
        for (int i = 0; i < 100; i++) {
            int n = snprintf(buf, sizeof buf, "m%d", i);
            int rc = sl_send(self, c->target, 7, SL_PRIO_NORMAL, buf, (size_t)n);
            if (rc)
                return rc;
        }
        return 0;
    case M_ASK:
        return sl_ask(self, c->target, 9, SL_PRIO_HIGH, "ping", 4, 5000, &c->ask_id);
    case M_ASK_TIMEOUT:
        return sl_ask(self, c->target, 9, SL_PRIO_HIGH, "ping", 4, 200, &c->ask_id);
    case M_ASK_MONITOR: {
        int rc = sl_monitor(self, c->target, &c->mon_ref);
        return rc ? rc : sl_ask(self, c->target, 9, SL_PRIO_HIGH, "ping", 4, 60000, &c->ask_id);
    }
    }
    return 0;
}

static sl_behavior client_b; /* on_start above, on_message from the harness's probe */

static probe *g_srv;
static client *g_cli;

static bool srv_got_100(world *w) { return g_srv->n >= 100; }
static bool cli_got_1(world *w) { return g_cli->p.n >= 1; }
static bool cli_got_2(world *w) { return g_cli->p.n >= 2; }
static bool srv_got_2(world *w) { return g_srv->n >= 2; }

static sl_id spawn_server(world *w, probe *p)
{
    return slc_spawn(w, 0, p, NULL);
}

static sl_id spawn_client(world *w, client *c)
{
    sl_id id;
    assert_int_equal(sl_spawn(sl_node_core(w->n[1]), &client_b, c, NULL, &id), SL_OK);
    return id;
}

/* ------------------------------------------------------------- tests */

static void test_send_across_nodes_in_order(void **st)
{
    world w;
    world_up(&w);
    probe *srv = calloc(1, sizeof *srv);
    client *cli = calloc(1, sizeof *cli);
    g_srv = srv;
    g_cli = cli;
    cli->target = spawn_server(&w, srv);
    cli->mode = M_SEND100;
    sl_id cid = spawn_client(&w, cli);
    assert_true(run_until(&w, srv_got_100, 5000));
    for (int i = 0; i < 100; i++) {
        char want[16];
        snprintf(want, sizeof want, "m%d", i);
        assert_string_equal(srv->log[i].data, want);
        assert_int_equal(srv->log[i].kind, SL_KIND_SEND);
        assert_int_equal(srv->log[i].type, 7);
        /* The sender's id names its own node. */
        assert_true(sl_id_eq(srv->log[i].from, cid));
    }
    world_down(&w);
    free(srv);
    free(cli);
}

static void test_ask_reply_across_nodes(void **st)
{
    world w;
    world_up(&w);
    probe *srv = calloc(1, sizeof *srv);
    client *cli = calloc(1, sizeof *cli);
    g_srv = srv;
    g_cli = cli;
    cli->target = spawn_server(&w, srv);
    cli->mode = M_ASK;
    spawn_client(&w, cli);
    assert_true(run_until(&w, cli_got_1, 5000));
    assert_int_equal(cli->p.log[0].kind, SL_KIND_REPLY);
    assert_int_equal(cli->p.log[0].corr, cli->ask_id);
    assert_string_equal(cli->p.log[0].data, "pong");
    assert_true(sl_id_eq(cli->p.log[0].from, cli->target));
    world_down(&w);
    free(srv);
    free(cli);
}

static void test_ask_unknown_remote_actor_fails_fast(void **st)
{
    world w;
    world_up(&w);
    client *cli = calloc(1, sizeof *cli);
    g_cli = cli;
    cli->target = (sl_id){sl_node_id(w.n[0]), 424242};
    cli->mode = M_ASK; /* 5 s deadline: the answer must come well before */
    spawn_client(&w, cli);
    assert_true(run_until(&w, cli_got_1, 2000));
    assert_int_equal(cli->p.log[0].kind, SL_KIND_FAIL);
    assert_int_equal(cli->p.log[0].status, SL_ERR_NOACTOR);
    assert_int_equal(cli->p.log[0].corr, cli->ask_id);
    world_down(&w);
    free(cli);
}

static void test_remote_replier_crash_fails_ask(void **st)
{
    world w;
    world_up(&w);
    probe *srv = calloc(1, sizeof *srv);
    client *cli = calloc(1, sizeof *cli);
    g_cli = cli;
    srv->crash_on_ask = true;
    cli->target = spawn_server(&w, srv);
    cli->mode = M_ASK;
    spawn_client(&w, cli);
    assert_true(run_until(&w, cli_got_1, 2000));
    assert_int_equal(cli->p.log[0].kind, SL_KIND_FAIL);
    assert_int_equal(cli->p.log[0].status, SL_ERR_ACTOR_DOWN);
    world_down(&w);
    free(srv);
    free(cli);
}

static void test_remote_ask_timeout_cancels_replier(void **st)
{
    world w;
    world_up(&w);
    probe *srv = calloc(1, sizeof *srv);
    client *cli = calloc(1, sizeof *cli);
    g_srv = srv;
    g_cli = cli;
    srv->silent = true;
    cli->target = spawn_server(&w, srv);
    cli->mode = M_ASK_TIMEOUT;
    spawn_client(&w, cli);
    assert_true(run_until(&w, cli_got_1, 3000));
    assert_int_equal(cli->p.log[0].kind, SL_KIND_FAIL);
    assert_int_equal(cli->p.log[0].status, SL_ERR_TIMEOUT);
    /* The replier on the other node is told: ASK, then CANCEL. */
    assert_true(run_until(&w, srv_got_2, 3000));
    assert_int_equal(srv->log[0].kind, SL_KIND_ASK);
    assert_int_equal(srv->log[1].kind, SL_KIND_CANCEL);
    assert_int_equal(srv->log[1].corr, cli->ask_id);
    world_down(&w);
    free(srv);
    free(cli);
}

static void test_node_loss_fails_asks_and_fires_down(void **st)
{
    world w;
    world_up(&w);
    probe *srv = calloc(1, sizeof *srv);
    client *cli = calloc(1, sizeof *cli);
    g_srv = srv;
    g_cli = cli;
    srv->silent = true;
    cli->target = spawn_server(&w, srv);
    cli->mode = M_ASK_MONITOR; /* a 60 s deadline: only the node loss can end it */
    spawn_client(&w, cli);
    assert_true(run_until(&w, srv_got_2, 3000) || g_srv->n >= 1);
    /* Node A goes away (graceful stop closes its connections). */
    sl_node_stop(w.n[0], NULL, NULL);
    assert_true(run_until(&w, cli_got_2, 3000));
    bool fail = false, down = false;
    for (int i = 0; i < cli->p.n; i++) {
        slc_rec *r = &cli->p.log[i];
        if (r->kind == SL_KIND_FAIL && r->corr == cli->ask_id) {
            fail = true;
            assert_int_equal(r->status, SL_ERR_NOCONN);
        }
        if (r->kind == SL_KIND_DOWN && r->corr == cli->mon_ref) {
            down = true;
            assert_int_equal(r->status, SL_REASON_NOCONNECTION);
        }
    }
    assert_true(fail);
    assert_true(down);
    assert_true(w.down[1] >= 1);
    world_down(&w);
    free(srv);
    free(cli);
}

static void test_send_to_unconnected_node(void **st)
{
    world w;
    world_up(&w);
    /* A node id nobody connected to: a clear error, not a silent drop. */
    sl_id nowhere = {0x1234567890abcdefull, 5};
    assert_int_equal(sl_core_send(sl_node_core(w.n[1]), nowhere, 1, SL_PRIO_NORMAL, "x", 1),
                     SL_ERR_NOCONN);
    world_down(&w);
}

/* Dials that fail say why, and stop saying it once the peer is up. */
static uint16_t hole_port;
static void short_handshake(int i, sl_transport_settings *ts, sl_node_settings *ns)
{
    (void)ns;
    if (i == 1)
        ts->handshake_timeout_ms = 300;
}
static bool two_failures(world *w)
{
    uint32_t failures = 0;
    int err;
    const char *reason;
    return sl_node_connect_failure(w->n[1], "127.0.0.1", hole_port, &failures, &err, &reason) ==
               SL_OK &&
           failures >= 2;
}
static bool hole_peer_up(world *w)
{
    return w->up[2] >= 1;
}

static void test_connect_failure_reported_until_up(void **st)
{
    world w;
    memset(&w, 0, sizeof w);
    w.tune = short_handshake;
    slc_up(&w, 2);
    /* A port where a UDP socket takes every packet and answers none. */
    int hole_fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(hole_fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(hole_fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(hole_fd, (struct sockaddr *)&a, &al), 0);
    hole_port = ntohs(a.sin_port);

    uint32_t failures = 99;
    int err = 0;
    const char *reason = NULL;
    assert_int_equal(
        sl_node_connect_failure(w.n[1], "127.0.0.1", hole_port, &failures, &err, &reason),
        SL_ERR_NOTFOUND);
    assert_int_equal(sl_node_connect(w.n[1], "127.0.0.1", hole_port), SL_OK);
    assert_int_equal(
        sl_node_connect_failure(w.n[1], "127.0.0.1", hole_port, &failures, &err, &reason), SL_OK);
    assert_int_equal(failures, 0); /* the first attempt is under way */
    assert_int_equal(err, SL_OK);
    /* The connected address has nothing to report. */
    assert_int_equal(sl_node_connect_failure(w.n[1], "127.0.0.1", w.port, &failures, &err, &reason),
                     SL_OK);
    assert_int_equal(failures, 0);

    assert_true(run_until(&w, two_failures, 5000));
    assert_int_equal(
        sl_node_connect_failure(w.n[1], "127.0.0.1", hole_port, &failures, &err, &reason), SL_OK);
    assert_true(failures >= 2);
    assert_int_equal(err, SL_ERR_TIMEOUT);
    assert_non_null(strstr(reason, "handshake timed out"));

    /* A node starts on that port: the next attempt succeeds, and the failures are forgotten. */
    close(hole_fd);
    w.n[2] = slc_node(&w, 2);
    w.nodes = 3;
    assert_int_equal(sl_node_listen(w.n[2], "127.0.0.1", hole_port), SL_OK);
    assert_true(run_until(&w, hole_peer_up, 5000));
    assert_int_equal(
        sl_node_connect_failure(w.n[1], "127.0.0.1", hole_port, &failures, &err, &reason), SL_OK);
    assert_int_equal(failures, 0);
    assert_int_equal(err, SL_OK);
    world_down(&w);
}

int main(void)
{
    client_b.on_start = client_start;
    client_b.on_message = slc_probe_behavior.on_message;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_across_nodes_in_order),
        cmocka_unit_test(test_ask_reply_across_nodes),
        cmocka_unit_test(test_ask_unknown_remote_actor_fails_fast),
        cmocka_unit_test(test_remote_replier_crash_fails_ask),
        cmocka_unit_test(test_remote_ask_timeout_cancels_replier),
        cmocka_unit_test(test_node_loss_fails_asks_and_fires_down),
        cmocka_unit_test(test_send_to_unconnected_node),
        cmocka_unit_test(test_connect_failure_reported_until_up),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
