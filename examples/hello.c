/*
 * hello.c: the one-minute tour of Starling.
 *
 * A node runs agents (actors) on a libuv loop. We spawn a "greeter" that
 * answers asks, then an "asker" that, as it starts, asks the greeter with a
 * 1 s deadline. Payloads are msgpack (one string each way). When the reply,
 * or a failure such as SL_ERR_TIMEOUT, arrives, the asker prints it and stops
 * the node; sl_node_run() then returns and we free the node.
 */
#include <stdio.h>
#include <msgpack.h>
#include <starling/node.h>

enum { GREET = 1 };
static int status = 1; /* exit code: 0 once the reply arrived */

/* Pack one string; the caller destroys the buffer. */
static msgpack_sbuffer pack_str(const char *s)
{
    msgpack_sbuffer b;
    msgpack_packer pk;
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, s, strlen(s));
    return b;
}

/* Unpack one string into buf; false if the payload is not a string. */
static bool unpack_str(const sl_msg *m, char *buf, size_t size)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    bool ok =
        msgpack_unpack_next(&u, (const char *)m->data, m->len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_STR;
    if (ok)
        snprintf(buf, size, "%.*s", (int)u.data.via.str.size, u.data.via.str.ptr);
    msgpack_unpacked_destroy(&u);
    return ok;
}

static int greeter_msg(sl_actor *self, const sl_msg *m)
{
    char name[64], text[80];
    if (m->kind == SL_KIND_ASK && unpack_str(m, name, sizeof name)) {
        snprintf(text, sizeof text, "hello, %s!", name);
        msgpack_sbuffer b = pack_str(text);
        sl_reply(self, sl_req_of(m), GREET, b.data, b.size); /* the payload is copied */
        msgpack_sbuffer_destroy(&b);
    }
    return 0;
}

static int asker_start(sl_actor *self, void *greeter)
{
    msgpack_sbuffer b = pack_str("world");
    int rc = sl_ask(self, *(sl_id *)greeter, GREET, SL_PRIO_NORMAL, b.data, b.size,
                    1000 /* ms deadline */, NULL);
    msgpack_sbuffer_destroy(&b);
    return rc; /* non-zero: the asker fails to start */
}

static int asker_msg(sl_actor *self, const sl_msg *m)
{
    char text[80];
    if (m->kind == SL_KIND_REPLY && unpack_str(m, text, sizeof text)) {
        printf("asker got: %s\n", text);
        status = 0;
    } else if (m->kind == SL_KIND_FAIL) {
        printf("ask failed: %s\n", sl_strerror(m->status));
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
