/*
 * agents.c: two C agents compiled into the module, which JavaScript spawns
 * by name (`node.spawn("echo")`, `node.spawn("counter", {init: 10})`).
 *
 * They are examples of the pattern (SL_WEB_AGENT registers a named
 * behaviour when the module starts) and the C half of the wasm tests: C and
 * JS actors exchange msgpack payloads, packed with msgpack-c (sl_pack) and
 * read through the validating sl_unpack().
 *
 *  - echo: answers an ask with the asker's payload, byte for byte; sends a
 *    plain message back to its sender (if it has one) with the same type.
 *  - counter: an int64 count, starting at the spawn's `init` (an integer,
 *    default 0). A plain message carrying an integer adds it. Asks:
 *    "get" -> the count; "crash" -> the counter crashes with code 42 (for
 *    tests of DOWN); anything else -> FAIL with SL_ERR_INVAL.
 */
#include <string.h>

#include "starling/pack.h"
#include "starling/web.h"

/* ---------------------------------------------------------------- echo */

static int echo_message(sl_actor *self, const sl_msg *m)
{
    if (m->kind == SL_KIND_ASK) {
        int rc = sl_reply(self, sl_req_of(m), m->type, m->data, m->len);
        return rc == SL_ERR_NOMEM ? rc : 0; /* a cancelled or gone asker is not our failure */
    }
    if (m->kind == SL_KIND_SEND && !sl_id_is_none(m->from))
        (void)sl_send(self, m->from, m->type, m->prio, m->data, m->len); /* best effort */
    return 0;
}

static const sl_behavior echo_behavior = {.on_message = echo_message, .name = "echo"};
SL_WEB_AGENT(echo_behavior)

/* ------------------------------------------------------------- counter */

typedef struct counter {
    int64_t count;
} counter;

static int counter_start(sl_actor *self, void *arg)
{
    const sl_web_init *init = arg;
    counter *c = sl_state(self);
    if (!init || !init->data)
        return 0;
    sl_unpacked u;
    int rc = sl_unpack(init->data, init->len, NULL, &u);
    if (rc == SL_OK && u.root.type != MSGPACK_OBJECT_NIL)
        rc = sl_msgpack_get_int64(&u.root, &c->count);
    sl_unpacked_fini(&u);
    return rc; /* a bad init value fails the spawn */
}

/* The ask's payload as a short string, or "" if it is not one. */
static void ask_word(const sl_msg *m, char *buf, size_t size)
{
    sl_unpacked u;
    buf[0] = '\0';
    if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK &&
        sl_msgpack_copy_str(&u.root, buf, size) != SL_OK)
        buf[0] = '\0';
    sl_unpacked_fini(&u);
}

static int counter_message(sl_actor *self, const sl_msg *m)
{
    counter *c = sl_state(self);
    if (m->kind == SL_KIND_SEND) {
        sl_unpacked u;
        int64_t d;
        if (sl_unpack(m->data, m->len, NULL, &u) == SL_OK &&
            sl_msgpack_get_int64(&u.root, &d) == SL_OK)
            c->count += d; /* anything else is ignored */
        sl_unpacked_fini(&u);
        return 0;
    }
    if (m->kind != SL_KIND_ASK)
        return 0;
    char word[16];
    ask_word(m, word, sizeof word);
    if (strcmp(word, "crash") == 0)
        return 42;
    if (strcmp(word, "get") != 0)
        return sl_reply_error(self, sl_req_of(m), SL_ERR_INVAL) == SL_ERR_NOMEM ? SL_ERR_NOMEM : 0;
    sl_pack p;
    sl_pack_init(&p, NULL);
    msgpack_pack_int64(&p.pk, c->count);
    int rc = sl_pack_error(&p);
    if (rc == SL_OK)
        rc = sl_reply(self, sl_req_of(m), m->type, sl_pack_data(&p), sl_pack_len(&p));
    sl_pack_fini(&p);
    return rc == SL_ERR_NOMEM ? rc : 0; /* a cancelled or gone asker is not our failure */
}

static const sl_behavior counter_behavior = {.on_start = counter_start,
                                             .on_message = counter_message,
                                             .state_size = sizeof(counter),
                                             .name = "counter"};
SL_WEB_AGENT(counter_behavior)
