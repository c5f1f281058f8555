/*
 * bridge.c: the C side of the JavaScript API (starling.js).
 *
 * starling.js calls these sl__js_* exports; they are thin wrappers over the
 * public actor API that take their arguments in a form JavaScript passes
 * cheaply through a wasm call: 64-bit values (node ids, local ids, ask ids,
 * monitor refs) as two 32-bit halves (low, high), payloads as a pointer and
 * a length in the module's memory (msgpack bytes; every call copies them),
 * names as NUL-terminated strings written into a static exchange area
 * (sl__js_io), and results (a new id, an ask id) written back into it. No
 * call allocates on the JS side's behalf except what the core itself does.
 *
 * Actors written in JavaScript all share one behaviour (js_behavior) whose
 * callbacks call the JS side through three imports, passing the JS handle
 * the actor was spawned with (kept as the actor's state) and, for messages,
 * a pointer to the sl_msg; JavaScript reads its fields at the offsets that
 * sl__js_layout() reports, so it never hard-codes a struct layout.
 *
 * JavaScript keeps an actor's sl_actor pointer from on_start until on_stop
 * (when it forgets it), because an actor may send, ask or reply from an
 * async continuation that runs after its callback returned; the pointer
 * stays valid until on_stop has returned (the core frees the actor after).
 */
#include <stddef.h>
#include <string.h>

#include "starling/pack.h"
#include "starling/schema.h"
#include "starling/web.h"
#include "wasm/web_int.h"

/* The exchange area: JS writes names here and reads results from here. */
typedef struct sl__js_io {
    uint32_t id[4];              /* out: an actor id: node lo, node hi, local lo, local hi */
    uint32_t ref[2];             /* out: an ask id, monitor ref or timer id: lo, hi */
    sl_web_node *node;           /* out: sl__js_node_new's node */
    char name[SL_NAME_MAX + 1];  /* in: a registry name */
    char agent[SL_NAME_MAX + 1]; /* in: the name of a C agent to spawn */
} sl__js_io;

static sl__js_io io;

/* Field offsets JavaScript reads at; the order is fixed by starling.js. */
static const uint32_t layout[] = {
    sizeof(sl__js_io),
    offsetof(sl__js_io, id),
    offsetof(sl__js_io, ref),
    offsetof(sl__js_io, node),
    offsetof(sl__js_io, name),
    offsetof(sl__js_io, agent),
    offsetof(sl_msg, from.node),
    offsetof(sl_msg, from.local),
    offsetof(sl_msg, to.node),
    offsetof(sl_msg, to.local),
    offsetof(sl_msg, corr),
    offsetof(sl_msg, type),
    offsetof(sl_msg, kind),
    offsetof(sl_msg, prio),
    offsetof(sl_msg, status),
    offsetof(sl_msg, code),
    offsetof(sl_msg, len),
    offsetof(sl_msg, data),
    offsetof(sl_core_stats, spawned),
    offsetof(sl_core_stats, stopped),
    offsetof(sl_core_stats, crashed),
    offsetof(sl_core_stats, sent),
    offsetof(sl_core_stats, processed),
    offsetof(sl_core_stats, dead_letters),
    offsetof(sl_core_stats, dropped),
    offsetof(sl_core_stats, late_replies),
    offsetof(sl_core_stats, timeouts),
    offsetof(sl_core_stats, alive),
    offsetof(sl_core_stats, timers),
};

_Static_assert(sizeof(size_t) == 4 && sizeof(void *) == 4, "the JS side reads wasm32 sizes");

static inline uint64_t u64(uint32_t lo, uint32_t hi)
{
    return ((uint64_t)hi << 32) | lo;
}

static inline sl_id mkid(uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    sl_id id = {u64(nl, nh), u64(ll, lh)};
    return id;
}

static void put_id(sl_id id)
{
    io.id[0] = (uint32_t)id.node;
    io.id[1] = (uint32_t)(id.node >> 32);
    io.id[2] = (uint32_t)id.local;
    io.id[3] = (uint32_t)(id.local >> 32);
}

static void put_ref(uint64_t r)
{
    io.ref[0] = (uint32_t)r;
    io.ref[1] = (uint32_t)(r >> 32);
}

static uint64_t ms_arg(double ms)
{
    if (!(ms > 0))
        return 0;
    if (ms >= 18446744073709549568.0) /* the largest double below 2^64 */
        return UINT64_MAX;
    return (uint64_t)ms;
}

SL_EXTERN sl__js_io *sl__js_io_get(void);
SL_EXTERN const uint32_t *sl__js_layout(uint32_t *count);
SL_EXTERN const char *sl__js_err_name(int err);
SL_EXTERN const char *sl__js_strerror(int err);
SL_EXTERN const char *sl__js_agent_name(uint32_t i);
SL_EXTERN int sl__js_node_new(uint32_t nl, uint32_t nh, uint32_t mailbox, uint32_t batch,
                              uint32_t slice, uint32_t budget_ms, uint32_t max_message);
SL_EXTERN void sl__js_node_shutdown(sl_web_node *n);
SL_EXTERN void sl__js_node_del(sl_web_node *n);
SL_EXTERN int sl__js_spawn(sl_web_node *n, int handle, const uint8_t *init, size_t init_len,
                           int has_init, uint32_t capacity, int overflow, int trap, int has_name,
                           uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh);
SL_EXTERN int sl__js_send(sl_web_node *n, sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll,
                          uint32_t lh, uint32_t type, int prio, const uint8_t *data, size_t len);
SL_EXTERN int sl__js_ask(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                         uint32_t type, int prio, const uint8_t *data, size_t len,
                         double timeout_ms);
SL_EXTERN int sl__js_ask_cancel(sl_actor *self, uint32_t lo, uint32_t hi);
SL_EXTERN int sl__js_reply(sl_actor *self, int kind, uint32_t nl, uint32_t nh, uint32_t ll,
                           uint32_t lh, uint32_t clo, uint32_t chi, int prio, uint32_t type,
                           const uint8_t *data, size_t len);
SL_EXTERN int sl__js_reply_error(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                                 uint32_t clo, uint32_t chi, int prio, int err);
SL_EXTERN int sl__js_timer(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                           double ms, int periodic, uint32_t type, int prio, const uint8_t *data,
                           size_t len);
SL_EXTERN int sl__js_timer_cancel(sl_actor *self, uint32_t lo, uint32_t hi);
SL_EXTERN int sl__js_monitor(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh);
SL_EXTERN int sl__js_demonitor(sl_actor *self, uint32_t lo, uint32_t hi);
SL_EXTERN int sl__js_link(sl_actor *self, int on, uint32_t nl, uint32_t nh, uint32_t ll,
                          uint32_t lh);
SL_EXTERN void sl__js_trap_exit(sl_actor *self, int on);
SL_EXTERN void sl__js_exit(sl_actor *self, int reason, int code);
SL_EXTERN int sl__js_stop(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                          int reason);
SL_EXTERN int sl__js_alive(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh);
SL_EXTERN int sl__js_register(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh);
SL_EXTERN int sl__js_unregister(sl_web_node *n);
SL_EXTERN int sl__js_whereis(sl_web_node *n);
SL_EXTERN const sl_core_stats *sl__js_stats(sl_web_node *n);
SL_EXTERN int sl__js_node_connect(sl_web_node *n, const uint8_t *cfg, size_t len);
SL_EXTERN const char *sl__js_exposed(sl_web_node *n, uint32_t i);
SL_EXTERN const char *sl__js_connect_failure(sl_web_node *n);
SL_EXTERN int sl__js_send_unreliable(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll,
                                     uint32_t lh, uint32_t type, int prio, const uint8_t *data,
                                     size_t len);
SL_EXTERN uint32_t sl__js_unreliable_max(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll,
                                         uint32_t lh);

/* ------------------------------------------------------------- tables */

sl__js_io *sl__js_io_get(void)
{
    return &io;
}

const uint32_t *sl__js_layout(uint32_t *count)
{
    *count = (uint32_t)(sizeof layout / sizeof layout[0]);
    return layout;
}

const char *sl__js_err_name(int err)
{
    return sl_err_name(err);
}
const char *sl__js_strerror(int err)
{
    return sl_strerror(err);
}
const char *sl__js_agent_name(uint32_t i)
{
    return sl__web_agent_name(i);
}

/* --------------------------------------------------------------- node */

int sl__js_node_new(uint32_t nl, uint32_t nh, uint32_t mailbox, uint32_t batch, uint32_t slice,
                    uint32_t budget_ms, uint32_t max_message)
{
    sl_web_settings s;
    sl_web_settings_default(&s);
    s.core.node_id = u64(nl, nh);
    if (mailbox)
        s.core.mailbox_capacity = mailbox;
    if (batch)
        s.core.batch = batch;
    if (max_message)
        s.core.max_message_size = max_message;
    if (slice)
        s.slice = slice;
    s.budget_ms = budget_ms;
    io.node = NULL;
    return sl_web_node_new(&s, &io.node);
}

static void js_stopped(sl_web_node *n, void *ud)
{
    (void)ud;
    sl__web_js_stopped(n);
}

void sl__js_node_shutdown(sl_web_node *n)
{
    sl_web_node_stop(n, js_stopped, NULL);
}
void sl__js_node_del(sl_web_node *n)
{
    sl_web_node_del(n);
}

/* -------------------------------------------------------------- actors */

static int js_start(sl_actor *self, void *arg)
{
    return sl__web_js_start((int)(intptr_t)arg, self);
}

static int js_message(sl_actor *self, const sl_msg *m)
{
    return sl__web_js_message((int)(intptr_t)sl_state(self), self, m);
}

static void js_stop(sl_actor *self, int reason)
{
    sl__web_js_stop((int)(intptr_t)sl_state(self), reason);
}

/* Every JS actor: the state is the JS handle (state_size 0 keeps the arg). */
static const sl_behavior js_behavior = {
    .on_start = js_start, .on_message = js_message, .on_stop = js_stop, .name = "js"};

/*
 * Spawn a JS actor (handle >= 0) or the C agent named in io.agent (handle
 * < 0) with the msgpack `init` bytes; register io.name if has_name; link to
 * the given id if it is not none. The new id goes to io.id.
 */
int sl__js_spawn(sl_web_node *n, int handle, const uint8_t *init, size_t init_len, int has_init,
                 uint32_t capacity, int overflow, int trap, int has_name, uint32_t nl, uint32_t nh,
                 uint32_t ll, uint32_t lh)
{
    const sl_behavior *beh = &js_behavior;
    void *arg = (void *)(intptr_t)handle;
    sl_web_init wi = {has_init ? init : NULL, has_init ? init_len : 0};
    if (handle < 0) {
        io.agent[SL_NAME_MAX] = '\0';
        beh = sl_web_agent_find(io.agent);
        if (!beh)
            return SL_ERR_NOTFOUND;
        arg = &wi;
    }
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.mailbox_capacity = capacity;
    o.overflow = (uint8_t)overflow;
    if (overflow < 0 || overflow > SL_OVERFLOW_DROP_OLDEST)
        return SL_ERR_INVAL;
    o.trap_exit = trap != 0;
    o.link_to = mkid(nl, nh, ll, lh);
    io.name[SL_NAME_MAX] = '\0';
    o.register_as = has_name ? io.name : NULL;
    sl_id id = SL_ID_NONE;
    int rc = sl_spawn(sl_web_node_core(n), beh, arg, &o, &id);
    put_id(id);
    return rc;
}

int sl__js_send(sl_web_node *n, sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                uint32_t type, int prio, const uint8_t *data, size_t len)
{
    sl_id to = mkid(nl, nh, ll, lh);
    if (self)
        return sl_send(self, to, type, prio, data, len);
    return sl_core_send(sl_web_node_core(n), to, type, prio, data, len);
}

int sl__js_send_unreliable(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                           uint32_t type, int prio, const uint8_t *data, size_t len)
{
    return sl_send_unreliable(self, mkid(nl, nh, ll, lh), type, prio, data, len);
}

uint32_t sl__js_unreliable_max(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    return (uint32_t)sl_unreliable_max(sl_web_node_core(n), mkid(nl, nh, ll, lh));
}

/* ------------------------------------------------------------ cluster */

static void js_peer(sl_web_node *n, uint64_t peer, bool up, void *ud)
{
    (void)ud;
    sl__web_js_peer(n, (uint32_t)peer, (uint32_t)(peer >> 32), up);
}

/* cfg: msgpack [host, port, path, token|nil, sha256 bin|nil, reconnect_min_ms,
 * reconnect_max_ms, welcome_timeout_ms], made by starling.js's connect(). */
int sl__js_node_connect(sl_web_node *n, const uint8_t *cfg, size_t len)
{
    sl_unpacked u;
    int rc = sl_unpack(cfg, len, NULL, &u);
    char host[256], path[1024], token[1024];
    uint64_t port = 0, rmin = 0, rmax = 0, wms = 0;
    const uint8_t *hash = NULL;
    size_t hl = 0;
    const msgpack_object *o;
    if (rc == SL_OK &&
        (sl_msgpack_at(&u.root, 0, &o) || sl_msgpack_copy_str(o, host, sizeof host) ||
         sl_msgpack_at_uint64(&u.root, 1, &port) || port > 65535 || sl_msgpack_at(&u.root, 2, &o) ||
         sl_msgpack_copy_str(o, path, sizeof path) || sl_msgpack_at_uint64(&u.root, 5, &rmin) ||
         sl_msgpack_at_uint64(&u.root, 6, &rmax) || sl_msgpack_at_uint64(&u.root, 7, &wms) ||
         rmin > UINT32_MAX || rmax > UINT32_MAX || wms > UINT32_MAX))
        rc = SL_ERR_INVAL;
    bool has_token = false;
    if (rc == SL_OK && sl_msgpack_at(&u.root, 3, &o) == SL_OK && o->type != MSGPACK_OBJECT_NIL) {
        has_token = true;
        if (sl_msgpack_copy_str(o, token, sizeof token))
            rc = SL_ERR_INVAL;
    }
    if (rc == SL_OK && sl_msgpack_at(&u.root, 4, &o) == SL_OK && o->type != MSGPACK_OBJECT_NIL &&
        (sl_msgpack_get_bin(o, &hash, &hl) || hl != 32))
        rc = SL_ERR_INVAL;
    if (rc == SL_OK) {
        sl_web_connect c;
        memset(&c, 0, sizeof c);
        c.host = host;
        c.port = (uint16_t)port;
        c.path = path;
        c.token = has_token ? token : NULL;
        c.cert_sha256 = hash;
        c.reconnect_min_ms = (uint32_t)rmin;
        c.reconnect_max_ms = (uint32_t)rmax;
        c.welcome_timeout_ms = (uint32_t)wms;
        c.on_peer = js_peer;
        rc = sl_web_node_connect(n, &c);
    }
    sl_unpacked_fini(&u);
    return rc;
}

/* Why the node is not connected: the last failed attempt's reason (NULL
 * when none failed), the failures in io.ref[0] and the error in io.ref[1]. */
const char *sl__js_connect_failure(sl_web_node *n)
{
    uint32_t failures = 0;
    int err = SL_OK;
    const char *reason = NULL;
    if (sl_web_node_connect_failure(n, &failures, &err, &reason) != SL_OK || !failures)
        return NULL;
    io.ref[0] = failures;
    io.ref[1] = (uint32_t)err;
    return reason;
}

/* The i-th exposed actor: its name (NULL past the last), its id in io.id. */
const char *sl__js_exposed(sl_web_node *n, uint32_t i)
{
    const char *name;
    sl_id id;
    if (sl_web_node_exposed(n, i, &name, &id) != SL_OK)
        return NULL;
    put_id(id);
    return name;
}

int sl__js_ask(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh, uint32_t type,
               int prio, const uint8_t *data, size_t len, double timeout_ms)
{
    uint64_t id = 0;
    int rc = sl_ask(self, mkid(nl, nh, ll, lh), type, prio, data, len, ms_arg(timeout_ms), &id);
    put_ref(id);
    return rc;
}

int sl__js_ask_cancel(sl_actor *self, uint32_t lo, uint32_t hi)
{
    return sl_ask_cancel(self, u64(lo, hi));
}

static sl_req mkreq(uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh, uint32_t clo, uint32_t chi,
                    int prio)
{
    sl_req r;
    r.asker = mkid(nl, nh, ll, lh);
    r.corr = u64(clo, chi);
    r.prio = (uint8_t)prio;
    return r;
}

int sl__js_reply(sl_actor *self, int kind, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                 uint32_t clo, uint32_t chi, int prio, uint32_t type, const uint8_t *data,
                 size_t len)
{
    sl_req r = mkreq(nl, nh, ll, lh, clo, chi, prio);
    switch (kind) {
    case SL_KIND_REPLY:
        return sl_reply(self, r, type, data, len);
    case SL_KIND_CHUNK:
        return sl_reply_chunk(self, r, type, data, len);
    case SL_KIND_END:
        return sl_reply_end(self, r, type, data, len);
    default:
        return SL_ERR_INVAL;
    }
}

int sl__js_reply_error(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh,
                       uint32_t clo, uint32_t chi, int prio, int err)
{
    return sl_reply_error(self, mkreq(nl, nh, ll, lh, clo, chi, prio), err);
}

int sl__js_timer(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh, double ms,
                 int periodic, uint32_t type, int prio, const uint8_t *data, size_t len)
{
    uint64_t id = 0;
    sl_id to = mkid(nl, nh, ll, lh);
    int rc = periodic ? sl_send_every(self, to, ms_arg(ms), type, prio, data, len, &id)
                      : sl_send_after(self, to, ms_arg(ms), type, prio, data, len, &id);
    put_ref(id);
    return rc;
}

int sl__js_timer_cancel(sl_actor *self, uint32_t lo, uint32_t hi)
{
    return sl_timer_cancel(self, u64(lo, hi));
}

int sl__js_monitor(sl_actor *self, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    uint64_t ref = 0;
    int rc = sl_monitor(self, mkid(nl, nh, ll, lh), &ref);
    put_ref(ref);
    return rc;
}

int sl__js_demonitor(sl_actor *self, uint32_t lo, uint32_t hi)
{
    return sl_demonitor(self, u64(lo, hi));
}

int sl__js_link(sl_actor *self, int on, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    sl_id other = mkid(nl, nh, ll, lh);
    return on ? sl_link(self, other) : sl_unlink(self, other);
}

void sl__js_trap_exit(sl_actor *self, int on)
{
    sl_trap_exit(self, on != 0);
}
void sl__js_exit(sl_actor *self, int reason, int code)
{
    sl_exit(self, reason, code);
}

int sl__js_stop(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh, int reason)
{
    return sl_stop(sl_web_node_core(n), mkid(nl, nh, ll, lh), reason);
}

int sl__js_alive(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    return sl_alive(sl_web_node_core(n), mkid(nl, nh, ll, lh));
}

/* ------------------------------------------------------------ registry */

int sl__js_register(sl_web_node *n, uint32_t nl, uint32_t nh, uint32_t ll, uint32_t lh)
{
    io.name[SL_NAME_MAX] = '\0';
    return sl_register(sl_web_node_core(n), io.name, mkid(nl, nh, ll, lh));
}

int sl__js_unregister(sl_web_node *n)
{
    io.name[SL_NAME_MAX] = '\0';
    return sl_unregister(sl_web_node_core(n), io.name);
}

int sl__js_whereis(sl_web_node *n)
{
    sl_id id = SL_ID_NONE;
    io.name[SL_NAME_MAX] = '\0';
    int rc = sl_whereis(sl_web_node_core(n), io.name, &id);
    put_id(id);
    return rc;
}

const sl_core_stats *sl__js_stats(sl_web_node *n)
{
    static sl_core_stats st;
    sl_core_stats_get(sl_web_node_core(n), &st);
    return &st;
}

SL_EXTERN void sl__js_self(sl_actor *self);

/* The calling actor's id, into io.id (a JS actor learns its id in on_start). */
void sl__js_self(sl_actor *self)
{
    put_id(sl_self(self));
}

SL_EXTERN const uint64_t *sl__js_node_id(sl_web_node *n);
SL_EXTERN int sl__js_msgpack_check(const uint8_t *data, size_t len, uint32_t max_depth,
                                   uint32_t max_elements, uint32_t max_size);

/* The node id, for JS to read as two halves. */
const uint64_t *sl__js_node_id(sl_web_node *n)
{
    static uint64_t id;
    id = sl_web_node_id(n);
    return &id;
}

/*
 * sl_msgpack_check() with the default limits except the three given (0 =
 * default), so the tests can hold the JS decoder against the C validator
 * on the same bytes.
 */
int sl__js_msgpack_check(const uint8_t *data, size_t len, uint32_t max_depth, uint32_t max_elements,
                         uint32_t max_size)
{
    sl_limits lim;
    sl_limits_default(&lim);
    if (max_depth)
        lim.max_depth = max_depth;
    if (max_elements)
        lim.max_elements = max_elements;
    if (max_size)
        lim.max_size = max_size;
    return sl_msgpack_check(data, len, &lim, NULL);
}
