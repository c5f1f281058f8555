/*
 * hello.c: the one-minute tour of Starling.
 *
 * A node runs agents (actors) on a libuv loop. We spawn a "greeter" that
 * answers asks, then an "asker" that, as it starts, asks the greeter with a
 * 1 s deadline. Payloads are msgpack (one string each way), packed with
 * sl_pack and read with sl_unpack, which validates untrusted bytes first. When the reply,
 * or a failure such as SL_ERR_TIMEOUT, arrives, the asker prints it and stops
 * the node; sl_node_run() then returns and we free the node.
 */
#include <stdio.h>
#include <starling/starling.h>

enum { GREET = 1 };
static int status = 1; /* exit code: 0 once the reply arrived */

static int greeter_msg(sl_actor *self, const sl_msg *m)
{
    if (m->kind != SL_KIND_ASK)
        return 0;
    sl_unpacked u; /* checked against hostile input before msgpack-c sees it */
    char name[64], text[80];
    if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK &&
        sl_msgpack_copy_str(&u.root, name, sizeof name) == SL_OK) {
        snprintf(text, sizeof text, "hello, %s!", name);
        sl_pack p;
        sl_pack_init(&p, NULL);
        sl_pack_str(&p, text);
        sl_reply(self, sl_req_of(m), GREET, sl_pack_data(&p), sl_pack_len(&p)); /* copied */
        sl_pack_fini(&p);
    }
    sl_unpacked_fini(&u);
    return 0;
}

static int asker_start(sl_actor *self, void *greeter)
{
    sl_pack p;
    sl_pack_init(&p, NULL);
    sl_pack_str(&p, "world");
    int rc = sl_ask(self, *(sl_id *)greeter, GREET, SL_PRIO_NORMAL, sl_pack_data(&p),
                    sl_pack_len(&p), 1000 /* ms deadline */, NULL);
    sl_pack_fini(&p);
    return rc; /* non-zero: the asker fails to start */
}

static int asker_msg(sl_actor *self, const sl_msg *m)
{
    if (m->kind == SL_KIND_FAIL) {
        printf("ask failed: %s\n", sl_strerror(m->status));
    } else if (m->kind == SL_KIND_REPLY) {
        sl_unpacked u;
        char text[80];
        if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK &&
            sl_msgpack_copy_str(&u.root, text, sizeof text) == SL_OK) {
            printf("asker got: %s\n", text);
            status = 0;
        }
        sl_unpacked_fini(&u);
    }
    sl_node_stop(sl_node_of(self), NULL, NULL); /* stop every agent; sl_node_run returns */
    return 0;
}

int main(void)
{
    static const sl_behavior greeter = {.on_message = greeter_msg, .name = "greeter"};
    static const sl_behavior asker = {
        .on_start = asker_start, .on_message = asker_msg, .name = "asker"};
    sl_node *node;
    sl_id gid;
    if (sl_node_new(NULL, &node) != SL_OK)
        return 1;
    if (sl_spawn(sl_node_core(node), &greeter, NULL, NULL, &gid) != SL_OK ||
        sl_spawn(sl_node_core(node), &asker, &gid, NULL, NULL) != SL_OK)
        sl_node_stop(node, NULL, NULL);
    sl_node_run(node); /* until the node has stopped */
    sl_node_del(node);
    return status;
}
