/*
 * local_bench.c: benchmarks of the actor core on one node (no I/O).
 *
 *   local_pair  one actor sends 10M messages (64-byte payload) to another
 *   local_ring  a token travels 10M hops around a ring of 1000 actors
 *   spawn       spawn 1M idle actors; rate and resident bytes per actor
 *
 * Each prints one JSON object per line. The core is driven directly with a
 * monotonic clock (the node adds only a loop around the same calls).
 * Usage: local_bench [name] [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "starling/actor.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "local_bench: %s: %s\n", what, sl_strerror(rc));
    exit(1);
}

/* ------------------------------------------------------------ local_pair */

enum { T_GO = 1, T_DATA = 2, T_TOKEN = 3 };

typedef struct pair_ctx {
    uint64_t total, sent, received;
    sl_id receiver;
    uint8_t payload[64];
} pair_ctx;

static int recv_msg(sl_actor *self, const sl_msg *m)
{
    pair_ctx *p = sl_state(self);
    p->received++;
    return 0;
}

static int send_msg(sl_actor *self, const sl_msg *m)
{
    pair_ctx *p = sl_state(self);
    /* One burst per turn, then yield to the receiver via a self-message. */
    for (int i = 0; i < 64 && p->sent < p->total; i++) {
        int rc = sl_send(self, p->receiver, T_DATA, SL_PRIO_NORMAL, p->payload, sizeof p->payload);
        if (rc == SL_ERR_MAILBOX_FULL)
            break;
        if (rc)
            return rc;
        p->sent++;
    }
    if (p->sent < p->total)
        return sl_send(self, sl_self(self), T_GO, SL_PRIO_NORMAL, NULL, 0);
    return 0;
}

static void bench_pair(uint64_t n)
{
    sl_core *c;
    int rc = sl_core_new(NULL, &c);
    if (rc)
        die("core", rc);
    pair_ctx p;
    memset(&p, 0, sizeof p);
    p.total = n;
    memset(p.payload, 0xab, sizeof p.payload);
    sl_behavior rb = {.on_message = recv_msg};
    sl_behavior sb = {.on_message = send_msg};
    sl_id s;
    if ((rc = sl_spawn(c, &rb, &p, NULL, &p.receiver)) || (rc = sl_spawn(c, &sb, &p, NULL, &s)))
        die("spawn", rc);
    uint64_t t0 = now_ns();
    sl_core_send(c, s, T_GO, SL_PRIO_NORMAL, NULL, 0);
    while (p.received < n)
        sl_core_run(c, now_ns(), 0);
    uint64_t dt = now_ns() - t0;
    printf("{\"bench\":\"local_pair\",\"msgs\":%llu,\"payload\":64,\"msgs_per_s\":%.0f}\n",
           (unsigned long long)n, (double)n * 1e9 / (double)dt);
    sl_core_del(c);
}

/* ------------------------------------------------------------ local_ring */

typedef struct ring_node {
    sl_id next;
    uint64_t *hops;
    uint64_t total;
} ring_node;

static int ring_msg(sl_actor *self, const sl_msg *m)
{
    ring_node *r = sl_state(self);
    if (++*r->hops >= r->total)
        return 0;
    return sl_send(self, r->next, T_TOKEN, SL_PRIO_NORMAL, m->data, m->len);
}

static void bench_ring(size_t actors, uint64_t hops)
{
    sl_core *c;
    int rc = sl_core_new(NULL, &c);
    if (rc)
        die("core", rc);
    ring_node *nodes = calloc(actors, sizeof *nodes);
    sl_id *ids = calloc(actors, sizeof *ids);
    uint64_t count = 0;
    sl_behavior b = {.on_message = ring_msg};
    for (size_t i = 0; i < actors; i++) {
        nodes[i].hops = &count;
        nodes[i].total = hops;
        if ((rc = sl_spawn(c, &b, &nodes[i], NULL, &ids[i])))
            die("spawn", rc);
    }
    for (size_t i = 0; i < actors; i++)
        nodes[i].next = ids[(i + 1) % actors];
    uint8_t token[8] = {0};
    uint64_t t0 = now_ns();
    sl_core_send(c, ids[0], T_TOKEN, SL_PRIO_NORMAL, token, sizeof token);
    while (count < hops)
        sl_core_run(c, now_ns(), 0);
    uint64_t dt = now_ns() - t0;
    printf("{\"bench\":\"local_ring\",\"actors\":%zu,\"hops\":%llu,\"msgs_per_s\":%.0f}\n", actors,
           (unsigned long long)hops, (double)hops * 1e9 / (double)dt);
    sl_core_del(c);
    free(nodes);
    free(ids);
}

/* ----------------------------------------------------------------- spawn */

static int idle_msg(sl_actor *self, const sl_msg *m) { return 0; }

static void bench_spawn(size_t n)
{
    sl_core *c;
    int rc = sl_core_new(NULL, &c);
    if (rc)
        die("core", rc);
    sl_behavior b = {.on_message = idle_msg};
    long rss0 = rss_bytes();
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        if ((rc = sl_spawn(c, &b, NULL, NULL, NULL)))
            die("spawn", rc);
    uint64_t dt = now_ns() - t0;
    long rss1 = rss_bytes();
    printf("{\"bench\":\"spawn\",\"actors\":%zu,\"spawns_per_s\":%.0f,\"bytes_per_actor\":%.0f}\n",
           n, (double)n * 1e9 / (double)dt, (double)(rss1 - rss0) / (double)n);
    sl_core_del(c);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--list") == 0) {
            puts("local_pair\nlocal_ring\nspawn");
            return 0;
        }
        else
            only = argv[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!only || strcmp(only, "local_pair") == 0)
        bench_pair(quick ? 100000 : 10000000);
    if (!only || strcmp(only, "local_ring") == 0)
        bench_ring(1000, quick ? 100000 : 10000000);
    if (!only || strcmp(only, "spawn") == 0)
        bench_spawn(quick ? 10000 : 1000000);
    return 0;
}
