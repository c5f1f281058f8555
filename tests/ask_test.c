/*
 * ask_test.c: black-box tests of ask/reply (sl_ask, sl_reply*, sl_ask_cancel):
 * replies and their correlation, deadlines on a fake clock, a timeout racing a
 * late reply, streamed replies, cancellation mid-stream, asks to unknown
 * actors, repliers that stop with asks pending (in the mailbox or accepted),
 * error replies, full mailboxes.
 *
 * The contract under test: exactly one outcome (REPLY, CHUNK...END, or FAIL)
 * reaches the asker for each ask that sl_ask() accepted, unless the asker
 * cancels it, and nothing reaches it afterwards.
 */
#include "sl_test.h"

enum { T_Q = 10 };

enum { R_ECHO, R_SAVE, R_STREAM, R_ERROR };

typedef struct replier {
    int mode;
    int err;          /* R_ERROR: status to fail with */
    sl_req saved[16]; /* R_SAVE: requests kept to answer later */
    size_t nsaved;
    int rc[16]; /* return values of reply calls made by the hook */
    size_t nrc;
} replier;

static void note_rc(replier *r, int rc)
{
    if (r->nrc < 16)
        r->rc[r->nrc] = rc;
    r->nrc++;
}

static int replier_hook(sl_actor *self, const sl_msg *m, slt_probe *p)
{
    replier *r = p->ud;
    if (m->kind != SL_KIND_ASK)
        return 0;
    sl_req q = sl_req_of(m);
    switch (r->mode) {
    case R_ECHO:
        note_rc(r, sl_reply(self, q, m->type + 1, m->data, m->len));
        break;
    case R_SAVE:
        if (r->nsaved < 16)
            r->saved[r->nsaved++] = q;
        break;
    case R_STREAM:
        note_rc(r, sl_reply_chunk(self, q, 1, "a", 1));
        note_rc(r, sl_reply_chunk(self, q, 2, "b", 1));
        note_rc(r, sl_reply_chunk(self, q, 3, "c", 1));
        note_rc(r, sl_reply_end(self, q, 4, "d", 1));
        break;
    case R_ERROR:
        note_rc(r, sl_reply_error(self, q, r->err));
        break;
    }
    return 0;
}

/* ---- running code inside the asker / replier */

typedef struct ask_args {
    sl_id to;
    uint64_t timeout;
    int prio;
    int n; /* number of asks to make (default 1) */
    int rc[8];
    uint64_t id[8];
} ask_args;

static int fn_ask(sl_actor *self, slt_probe *p, void *ud)
{
    ask_args *a = ud;
    (void)p;
    int n = a->n ? a->n : 1;
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)i;
        a->rc[i] = sl_ask(self, a->to, T_Q, a->prio, &v, sizeof v, a->timeout, &a->id[i]);
    }
    return 0;
}

/* One ask from `asker` to `to`; asserts it was sent and returns its id. */
static uint64_t ask1(slt_env *e, sl_id asker, sl_id to, uint64_t timeout_ms)
{
    ask_args a = {to, timeout_ms, SL_PRIO_NORMAL, 1, {1}, {0}};
    slt_exec(e, asker, fn_ask, &a);
    SLT_OK(a.rc[0]);
    assert_true(a.id[0] != 0);
    return a.id[0];
}

enum { DO_REPLY, DO_CHUNK, DO_END, DO_ERROR };

typedef struct reply_args {
    sl_req req;
    int how;
    const char *data; /* NULL: empty payload */
    int err;
    int rc;
} reply_args;

static int fn_reply(sl_actor *self, slt_probe *p, void *ud)
{
    reply_args *r = ud;
    (void)p;
    size_t len = r->data ? strlen(r->data) : 0;
    switch (r->how) {
    case DO_REPLY:
        r->rc = sl_reply(self, r->req, 20, r->data, len);
        break;
    case DO_CHUNK:
        r->rc = sl_reply_chunk(self, r->req, 21, r->data, len);
        break;
    case DO_END:
        r->rc = sl_reply_end(self, r->req, 22, r->data, len);
        break;
    case DO_ERROR:
        r->rc = sl_reply_error(self, r->req, r->err);
        break;
    }
    return 0;
}

/* Make replier `rid` answer `req`; returns the reply call's value. */
static int reply_from(slt_env *e, sl_id rid, sl_req req, int how, const char *data)
{
    reply_args r = {req, how, data, 0, 1};
    slt_exec(e, rid, fn_reply, &r);
    return r.rc;
}

typedef struct cancel_args {
    uint64_t id;
    int rc;
} cancel_args;

static int fn_cancel(sl_actor *self, slt_probe *p, void *ud)
{
    cancel_args *c = ud;
    (void)p;
    c->rc = sl_ask_cancel(self, c->id);
    return 0;
}

static int cancel_from(slt_env *e, sl_id asker, uint64_t id)
{
    cancel_args c = {id, 1};
    slt_exec(e, asker, fn_cancel, &c);
    return c.rc;
}

/* Outcome messages (REPLY/CHUNK/END/FAIL) logged by the asker. */
static size_t outcomes(const slt_probe *p)
{
    return slt_count_kind(p, SL_KIND_REPLY) + slt_count_kind(p, SL_KIND_CHUNK) +
           slt_count_kind(p, SL_KIND_END) + slt_count_kind(p, SL_KIND_FAIL);
}

typedef struct pair {
    slt_env e;
    slt_probe a, r;
    replier rep;
    sl_id aid, rid;
} pair;

static void pair_open(pair *x, int mode)
{
    slt_env_open(&x->e);
    slt_probe_init(&x->a, &x->e, "asker");
    slt_probe_init(&x->r, &x->e, "replier");
    memset(&x->rep, 0, sizeof x->rep);
    x->rep.mode = mode;
    x->r.ud = &x->rep;
    x->r.msg_hook = replier_hook;
    x->aid = slt_spawn(&x->e, &x->a, NULL);
    x->rid = slt_spawn(&x->e, &x->r, NULL);
}

/* ------------------------------------------------------------------ tests */

static void test_ask_reply(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_ECHO);
    slt_env *e = &x->e;
    ask_args a = {x->rid, 1000, SL_PRIO_HIGH, 1, {1}, {0}};
    slt_exec(e, x->aid, fn_ask, &a);
    SLT_OK(a.rc[0]);
    uint64_t id = a.id[0];
    assert_true(id != 0);
    slt_run(e);

    /* The replier saw an ASK correlated with the ask id. */
    assert_int_equal(x->r.n, 1);
    assert_int_equal(x->r.log[0].kind, SL_KIND_ASK);
    assert_true(x->r.log[0].corr == id);
    SLT_ID_EQ(x->r.log[0].from, x->aid);
    assert_int_equal(x->r.log[0].type, T_Q);
    assert_int_equal(x->r.log[0].prio, SL_PRIO_HIGH);
    assert_int_equal(x->rep.nrc, 1);
    SLT_OK(x->rep.rc[0]);

    /* The asker got exactly the reply. */
    assert_int_equal(x->a.n, 1);
    const slt_rec *m = &x->a.log[0];
    assert_int_equal(m->kind, SL_KIND_REPLY);
    assert_true(m->corr == id);
    SLT_ID_EQ(m->from, x->rid);
    assert_int_equal(m->type, T_Q + 1);
    assert_int_equal(m->status, 0);
    assert_int_equal(slt_u32(m), 0);

    /* The deadline is gone with the ask. */
    assert_int_equal(slt_stats(e).timers, 0);
    assert_true(sl_core_next_deadline(e->core) == UINT64_MAX);
    slt_advance(e, 2000);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(slt_stats(e).timeouts, 0);
    SLT_ERR(cancel_from(e, x->aid, id), SL_ERR_NOTFOUND); /* already over */
    slt_env_close(e);
    test_free(x);
}

static void test_ask_many_correlated(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_ECHO);
    slt_env *e = &x->e;
    ask_args a = {x->rid, 1000, SL_PRIO_NORMAL, 6, {1}, {0}};
    slt_exec(e, x->aid, fn_ask, &a);
    for (int i = 0; i < 6; i++) {
        SLT_OK(a.rc[i]);
        for (int j = 0; j < i; j++)
            assert_true(a.id[i] != a.id[j]);
    }
    slt_run(e);
    assert_int_equal(x->a.n, 6);
    for (int i = 0; i < 6; i++) {
        int k = slt_find(&x->a, SL_KIND_REPLY, a.id[i], 0);
        assert_true(k >= 0);
        assert_int_equal(slt_u32(&x->a.log[k]), (uint32_t)i); /* the reply to that ask */
    }
    slt_env_close(e);
    test_free(x);
}

static void test_ask_timeout(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 100);
    slt_run(e);
    uint64_t d = sl_core_next_deadline(e->core);
    if (d != SLT_T0 + 100 * SLT_MS)
        print_error("next deadline after a 100 ms ask at T0: T0%+lld ns\n",
                    (long long)(d - SLT_T0));
    assert_true(d == SLT_T0 + 100 * SLT_MS);
    assert_int_equal(slt_stats(e).timers, 1);
    slt_advance(e, 99);
    assert_int_equal(x->rep.nsaved, 1);
    assert_int_equal(x->a.n, 0);
    slt_advance(e, 1);
    assert_int_equal(x->a.n, 1);
    const slt_rec *m = &x->a.log[0];
    assert_int_equal(m->kind, SL_KIND_FAIL);
    assert_true(m->corr == id);
    SLT_ERR(m->status, SL_ERR_TIMEOUT);
    assert_true(m->at == SLT_T0 + 100 * SLT_MS);
    sl_core_stats s = slt_stats(e);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.timers, 0);

    /* The truly late reply is refused, counted, and never reaches the asker. */
    SLT_ERR(reply_from(e, x->rid, x->rep.saved[0], DO_REPLY, "late"), SL_ERR_CANCELLED);
    slt_run_idle(e);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(slt_stats(e).late_replies, s.late_replies + 1);
    SLT_ERR(cancel_from(e, x->aid, id), SL_ERR_NOTFOUND);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_timeout_notifies_replier(void **state)
{
    /* SL_KIND_CANCEL: "the asker cancelled (or gave up on) ask corr". */
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 100);
    slt_run_idle(e);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(x->r.n, 2);
    assert_int_equal(x->r.log[0].kind, SL_KIND_ASK);
    assert_int_equal(x->r.log[1].kind, SL_KIND_CANCEL);
    assert_true(x->r.log[1].corr == id);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_timeout_races_queued_reply(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 100);
    slt_advance(e, 99);
    assert_int_equal(x->rep.nsaved, 1);
    /* The reply is sent in time but is still in the asker's mailbox ... */
    SLT_OK(reply_from(e, x->rid, x->rep.saved[0], DO_REPLY, "just in time"));
    assert_int_equal(x->a.n, 0);
    /* ... when the deadline passes. */
    e->now += SLT_MS;
    slt_run(e);
    slt_advance(e, 1000);
    sl_core_stats s = slt_stats(e);
    if (outcomes(&x->a) != 1)
        slt_dump(&x->a);
    assert_int_equal(outcomes(&x->a), 1); /* exactly one outcome */
    const slt_rec *m = &x->a.log[0];
    assert_true(m->corr == id);
    if (m->kind == SL_KIND_FAIL) {
        SLT_ERR(m->status, SL_ERR_TIMEOUT);
        assert_int_equal(s.timeouts, 1);
        assert_int_equal(s.late_replies, 1); /* the losing reply is counted */
    } else {
        assert_int_equal(m->kind, SL_KIND_REPLY);
        assert_int_equal(s.timeouts, 0);
        assert_int_equal(s.late_replies, 0);
    }
    assert_int_equal(s.timers, 0);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_stream_in_order(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_STREAM);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    assert_int_equal(x->rep.nrc, 4);
    for (int i = 0; i < 4; i++)
        SLT_OK(x->rep.rc[i]);
    assert_int_equal(x->a.n, 4);
    static const int kinds[4] = {SL_KIND_CHUNK, SL_KIND_CHUNK, SL_KIND_CHUNK, SL_KIND_END};
    for (int i = 0; i < 4; i++) {
        const slt_rec *m = &x->a.log[i];
        assert_int_equal(m->kind, kinds[i]);
        assert_true(m->corr == id);
        SLT_ID_EQ(m->from, x->rid);
        assert_int_equal(m->type, (uint32_t)(i + 1));
        assert_int_equal(m->len, 1);
        assert_int_equal(m->data[0], "abcd"[i]);
    }
    assert_int_equal(slt_stats(e).timers, 0);
    slt_advance(e, 2000);
    assert_int_equal(x->a.n, 4);
    assert_int_equal(slt_stats(e).timeouts, 0);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_stream_across_turns_empty_end(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 0);
    slt_run(e);
    sl_req q = x->rep.saved[0];
    SLT_OK(reply_from(e, x->rid, q, DO_CHUNK, "one"));
    slt_run(e);
    slt_advance(e, 10);
    SLT_OK(reply_from(e, x->rid, q, DO_CHUNK, "two"));
    slt_run(e);
    SLT_OK(reply_from(e, x->rid, q, DO_END, NULL));
    slt_run(e);
    assert_int_equal(x->a.n, 3);
    assert_int_equal(x->a.log[0].kind, SL_KIND_CHUNK);
    assert_memory_equal(x->a.log[0].data, "one", 3);
    assert_int_equal(x->a.log[1].kind, SL_KIND_CHUNK);
    assert_memory_equal(x->a.log[1].data, "two", 3);
    assert_int_equal(x->a.log[2].kind, SL_KIND_END);
    assert_int_equal(x->a.log[2].len, 0);
    assert_true(x->a.log[2].data_null);
    for (int i = 0; i < 3; i++)
        assert_true(x->a.log[i].corr == id);
    /* The stream is over: nothing more gets through. */
    assert_true(reply_from(e, x->rid, q, DO_CHUNK, "x") != SL_OK);
    slt_run_idle(e);
    assert_int_equal(x->a.n, 3);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_deadline_covers_whole_stream(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 100);
    slt_advance(e, 50);
    SLT_OK(reply_from(e, x->rid, x->rep.saved[0], DO_CHUNK, "part"));
    slt_run_idle(e);
    assert_int_equal(x->a.n, 2);
    assert_int_equal(x->a.log[0].kind, SL_KIND_CHUNK);
    assert_int_equal(x->a.log[1].kind, SL_KIND_FAIL);
    assert_true(x->a.log[1].corr == id);
    SLT_ERR(x->a.log[1].status, SL_ERR_TIMEOUT);
    assert_true(x->a.log[1].at == SLT_T0 + 100 * SLT_MS);
    SLT_ERR(reply_from(e, x->rid, x->rep.saved[0], DO_END, "late"), SL_ERR_CANCELLED);
    slt_run_idle(e);
    assert_int_equal(x->a.n, 2);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_cancel_mid_stream(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    sl_req q = x->rep.saved[0];
    SLT_OK(reply_from(e, x->rid, q, DO_CHUNK, "1"));
    slt_run(e);
    assert_int_equal(x->a.n, 1);

    SLT_OK(cancel_from(e, x->aid, id));
    slt_run(e);
    /* The replier is told ... */
    int k = slt_find(&x->r, SL_KIND_CANCEL, id, 0);
    if (k < 0)
        slt_dump(&x->r);
    assert_true(k >= 0);
    /* ... and its further replies are refused. */
    SLT_ERR(reply_from(e, x->rid, q, DO_CHUNK, "2"), SL_ERR_CANCELLED);
    SLT_ERR(reply_from(e, x->rid, q, DO_END, "3"), SL_ERR_CANCELLED);
    SLT_ERR(reply_from(e, x->rid, q, DO_REPLY, "4"), SL_ERR_CANCELLED);
    slt_run(e);
    slt_advance(e, 2000); /* past the old deadline: no FAIL either */
    assert_int_equal(x->a.n, 1);
    assert_int_equal(slt_stats(e).timeouts, 0);
    assert_int_equal(slt_stats(e).timers, 0);
    SLT_ERR(cancel_from(e, x->aid, id), SL_ERR_NOTFOUND);
    slt_env_close(e);
    test_free(x);
}

typedef struct two_chunks {
    sl_req q;
    int rc[2];
} two_chunks;

static int fn_two_chunks(sl_actor *self, slt_probe *p, void *ud)
{
    two_chunks *t = ud;
    (void)p;
    t->rc[0] = sl_reply_chunk(self, t->q, 1, "x", 1);
    t->rc[1] = sl_reply_chunk(self, t->q, 2, "y", 1);
    return 0;
}

static void test_ask_cancel_discards_queued_chunks(void **state)
{
    /* "No outcome message follows": chunks already in the asker's mailbox
     * when it cancels must not be handed to it either. */
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    two_chunks t = {x->rep.saved[0], {1, 1}};
    slt_exec(e, x->rid, fn_two_chunks, &t);
    SLT_OK(t.rc[0]);
    SLT_OK(t.rc[1]);
    SLT_OK(cancel_from(e, x->aid, id)); /* CRITICAL: runs before the queued chunks */
    slt_run_idle(e);
    if (x->a.n != 0)
        slt_dump(&x->a);
    assert_int_equal(x->a.n, 0);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_unknown_actor(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_ECHO);
    slt_env *e = &x->e;
    SLT_OK(sl_stop(e->core, x->rid, SL_REASON_NORMAL));
    slt_run(e);
    uint64_t dl0 = slt_stats(e).dead_letters;
    ask_args a = {x->rid, 100, SL_PRIO_NORMAL, 1, {1}, {0}};
    slt_exec(e, x->aid, fn_ask, &a);
    SLT_ERR(a.rc[0], SL_ERR_NOACTOR);
    a.to = (sl_id){SLT_NODE, 999999};
    slt_exec(e, x->aid, fn_ask, &a);
    SLT_ERR(a.rc[0], SL_ERR_NOACTOR);
    sl_core_stats s = slt_stats(e);
    assert_int_equal(s.dead_letters, dl0 + 2);
    assert_int_equal(s.timers, 0); /* no deadline armed for an ask that was not sent */
    slt_advance(e, 500);
    assert_int_equal(x->a.n, 0); /* "then no outcome follows" */
    slt_env_close(e);
    test_free(x);
}

enum { STOP_OUTSIDE, STOP_CRASH, STOP_EXIT, STOP_KILL };

static void run_replier_stops_with_pending_asks(int how)
{
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    slt_probe *b = test_calloc(1, sizeof *b);
    slt_probe_init(b, e, "asker2");
    sl_id bid = slt_spawn(e, b, NULL);

    /* One ask the replier accepted but did not answer ... */
    uint64_t id1 = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    assert_int_equal(x->rep.nsaved, 1);
    /* ... and two still sitting in its mailbox. */
    ask_args a = {x->rid, 1000, SL_PRIO_NORMAL, 2, {1, 1}, {0}};
    slt_exec(e, bid, fn_ask, &a);
    SLT_OK(a.rc[0]);
    SLT_OK(a.rc[1]);
    assert_int_equal(slt_astats(e, x->rid).queued, 2);

    switch (how) {
    case STOP_OUTSIDE:
        SLT_OK(sl_stop(e->core, x->rid, SL_REASON_SHUTDOWN));
        break;
    case STOP_KILL:
        SLT_OK(sl_stop(e->core, x->rid, SL_REASON_KILLED));
        break;
    case STOP_CRASH:
        /* CRITICAL so that it is handled before the queued asks. */
        {
            int32_t code = 66;
            SLT_OK(sl_core_send(e->core, x->rid, SLT_T_CRASH, SL_PRIO_CRITICAL, &code, 4));
        }
        break;
    case STOP_EXIT: {
        int32_t rc[2] = {SL_REASON_NORMAL, 0};
        SLT_OK(sl_core_send(e->core, x->rid, SLT_T_EXIT, SL_PRIO_CRITICAL, rc, sizeof rc));
    } break;
    }
    slt_run(e); /* no time passes */
    assert_int_equal(x->r.stops, 1);
    assert_int_equal(x->r.n, 1); /* the queued asks were never handed to it */

    assert_int_equal(x->a.n, 1);
    assert_int_equal(x->a.log[0].kind, SL_KIND_FAIL);
    assert_true(x->a.log[0].corr == id1);
    SLT_ERR(x->a.log[0].status, SL_ERR_ACTOR_DOWN);
    assert_true(x->a.log[0].at == SLT_T0); /* at once, not at the deadline */

    assert_int_equal(b->n, 2);
    for (int i = 0; i < 2; i++) {
        int k = slt_find(b, SL_KIND_FAIL, a.id[i], 0);
        assert_true(k >= 0);
        SLT_ERR(b->log[k].status, SL_ERR_ACTOR_DOWN);
        assert_true(b->log[k].at == SLT_T0);
    }
    assert_int_equal(slt_stats(e).timers, 0);
    slt_advance(e, 2000);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(b->n, 2);
    assert_int_equal(slt_stats(e).timeouts, 0);
    slt_env_close(e);
    test_free(b);
    test_free(x);
}

static void test_replier_stopped_from_outside_fails_asks(void **state)
{
    (void)state;
    run_replier_stops_with_pending_asks(STOP_OUTSIDE);
}

static void test_replier_killed_fails_asks(void **state)
{
    (void)state;
    run_replier_stops_with_pending_asks(STOP_KILL);
}

static void test_replier_crash_fails_asks(void **state)
{
    (void)state;
    run_replier_stops_with_pending_asks(STOP_CRASH);
}

static void test_replier_exit_fails_asks(void **state)
{
    (void)state;
    run_replier_stops_with_pending_asks(STOP_EXIT);
}

static void test_replier_dies_mid_stream(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    SLT_OK(reply_from(e, x->rid, x->rep.saved[0], DO_CHUNK, "1"));
    slt_crash(e, x->rid, 3);
    slt_run(e);
    assert_int_equal(x->a.n, 2);
    assert_int_equal(x->a.log[0].kind, SL_KIND_CHUNK);
    assert_int_equal(x->a.log[1].kind, SL_KIND_FAIL);
    assert_true(x->a.log[1].corr == id);
    SLT_ERR(x->a.log[1].status, SL_ERR_ACTOR_DOWN);
    slt_advance(e, 2000);
    assert_int_equal(x->a.n, 2);
    slt_env_close(e);
    test_free(x);
}

static void test_reply_error(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_ERROR);
    x->rep.err = SL_ERR_FORBIDDEN;
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 1000);
    slt_run(e);
    SLT_OK(x->rep.rc[0]);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(x->a.log[0].kind, SL_KIND_FAIL);
    assert_true(x->a.log[0].corr == id);
    SLT_ERR(x->a.log[0].status, SL_ERR_FORBIDDEN);
    SLT_ID_EQ(x->a.log[0].from, x->rid);
    assert_int_equal(slt_stats(e).timers, 0);
    slt_advance(e, 2000);
    assert_int_equal(x->a.n, 1);
    slt_env_close(e);
    test_free(x);
}

static void test_ask_without_deadline(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    uint64_t id = ask1(e, x->aid, x->rid, 0);
    slt_run(e);
    assert_true(sl_core_next_deadline(e->core) == UINT64_MAX);
    assert_int_equal(slt_stats(e).timers, 0);
    slt_advance(e, 3600 * 1000);
    assert_int_equal(x->a.n, 0);
    SLT_OK(reply_from(e, x->rid, x->rep.saved[0], DO_REPLY, "eventually"));
    slt_run(e);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(x->a.log[0].kind, SL_KIND_REPLY);
    assert_true(x->a.log[0].corr == id);
    assert_memory_equal(x->a.log[0].data, "eventually", 10);
    slt_env_close(e);
    test_free(x);
}

static void test_reply_to_dead_asker(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    pair_open(x, R_SAVE);
    slt_env *e = &x->e;
    ask1(e, x->aid, x->rid, 0);
    slt_run(e);
    SLT_OK(sl_stop(e->core, x->aid, SL_REASON_NORMAL));
    slt_run(e);
    /* "SL_ERR_NOACTOR (the asker is gone)" */
    SLT_ERR(reply_from(e, x->rid, x->rep.saved[0], DO_REPLY, "anyone?"), SL_ERR_NOACTOR);
    slt_run_idle(e);
    slt_env_close(e);
    test_free(x);
}

typedef struct full_args {
    sl_id asker;
    sl_req q_reply, q_chunk;
    int rc_send[3];
    int rc_chunk, rc_reply, rc_end;
} full_args;

static int fn_reply_into_full_mailbox(sl_actor *self, slt_probe *p, void *ud)
{
    full_args *f = ud;
    (void)p;
    for (int i = 0; i < 3; i++)
        f->rc_send[i] = sl_send(self, f->asker, 5, SL_PRIO_NORMAL, "f", 1);
    f->rc_chunk = sl_reply_chunk(self, f->q_chunk, 1, "c", 1);
    f->rc_reply = sl_reply(self, f->q_reply, 2, "r", 1);
    f->rc_end = sl_reply_end(self, f->q_chunk, 3, "e", 1);
    return 0;
}

static void test_final_reply_not_refused_by_full_mailbox(void **state)
{
    (void)state;
    pair *x = test_calloc(1, sizeof *x);
    slt_env *e = &x->e;
    slt_env_open(e);
    slt_probe_init(&x->a, e, "asker");
    slt_probe_init(&x->r, e, "replier");
    x->rep.mode = R_SAVE;
    x->r.ud = &x->rep;
    x->r.msg_hook = replier_hook;
    sl_spawn_opts o;
    sl_spawn_opts_default(&o);
    o.mailbox_capacity = 2;
    x->aid = slt_spawn(e, &x->a, &o);
    x->rid = slt_spawn(e, &x->r, NULL);
    ask_args a = {x->rid, 1000, SL_PRIO_NORMAL, 2, {1, 1}, {0}};
    slt_exec(e, x->aid, fn_ask, &a);
    SLT_OK(a.rc[0]);
    SLT_OK(a.rc[1]);
    slt_run(e);
    assert_int_equal(x->rep.nsaved, 2);

    full_args f = {x->aid, x->rep.saved[0], x->rep.saved[1], {1, 1, 1}, 1, 1, 1};
    slt_exec(e, x->rid, fn_reply_into_full_mailbox, &f);
    SLT_OK(f.rc_send[0]);
    SLT_OK(f.rc_send[1]);
    SLT_ERR(f.rc_send[2], SL_ERR_MAILBOX_FULL);
    SLT_ERR(f.rc_chunk, SL_ERR_MAILBOX_FULL); /* chunks obey the capacity */
    SLT_OK(f.rc_reply);                       /* final replies do not */
    SLT_OK(f.rc_end);
    slt_run(e);
    assert_int_equal(x->a.n, 4);
    int k = slt_find(&x->a, SL_KIND_REPLY, a.id[0], 0);
    assert_true(k >= 0);
    k = slt_find(&x->a, SL_KIND_END, a.id[1], 0);
    assert_true(k >= 0);
    assert_int_equal(slt_count_kind(&x->a, SL_KIND_CHUNK), 0);
    slt_env_close(e);
    test_free(x);
}

typedef struct twice {
    int rc[2];
} twice;

static int reply_twice_hook(sl_actor *self, const sl_msg *m, slt_probe *p)
{
    twice *t = p->ud;
    if (m->kind == SL_KIND_ASK) {
        t->rc[0] = sl_reply(self, sl_req_of(m), 1, "one", 3);
        t->rc[1] = sl_reply(self, sl_req_of(m), 2, "two", 3);
    }
    return 0;
}

static void test_reply_twice_one_outcome(void **state)
{
    (void)state;
    slt_env e;
    slt_env_open(&e);
    slt_probe *a = test_calloc(1, sizeof *a), *r = test_calloc(1, sizeof *r);
    slt_probe_init(a, &e, "asker");
    slt_probe_init(r, &e, "replier");
    twice t = {{1, 1}};
    r->ud = &t;
    r->msg_hook = reply_twice_hook;
    sl_id aid = slt_spawn(&e, a, NULL);
    sl_id rid = slt_spawn(&e, r, NULL);
    uint64_t id = ask1(&e, aid, rid, 1000);
    slt_run_idle(&e);
    SLT_OK(t.rc[0]);
    assert_int_equal(outcomes(a), 1);
    assert_int_equal(a->log[0].kind, SL_KIND_REPLY);
    assert_true(a->log[0].corr == id);
    assert_memory_equal(a->log[0].data, "one", 3);
    /* The second final reply is refused (the ask ended) and counted late. */
    SLT_ERR(t.rc[1], SL_ERR_CANCELLED);
    assert_int_equal(slt_stats(&e).late_replies, 1);
    slt_env_close(&e);
    test_free(a);
    test_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ask_reply),
        cmocka_unit_test(test_ask_many_correlated),
        cmocka_unit_test(test_ask_timeout),
        cmocka_unit_test(test_ask_timeout_notifies_replier),
        cmocka_unit_test(test_ask_timeout_races_queued_reply),
        cmocka_unit_test(test_ask_stream_in_order),
        cmocka_unit_test(test_ask_stream_across_turns_empty_end),
        cmocka_unit_test(test_ask_deadline_covers_whole_stream),
        cmocka_unit_test(test_ask_cancel_mid_stream),
        cmocka_unit_test(test_ask_cancel_discards_queued_chunks),
        cmocka_unit_test(test_ask_unknown_actor),
        cmocka_unit_test(test_replier_stopped_from_outside_fails_asks),
        cmocka_unit_test(test_replier_killed_fails_asks),
        cmocka_unit_test(test_replier_crash_fails_asks),
        cmocka_unit_test(test_replier_exit_fails_asks),
        cmocka_unit_test(test_replier_dies_mid_stream),
        cmocka_unit_test(test_reply_error),
        cmocka_unit_test(test_ask_without_deadline),
        cmocka_unit_test(test_reply_to_dead_asker),
        cmocka_unit_test(test_final_reply_not_refused_by_full_mailbox),
        cmocka_unit_test(test_reply_twice_one_outcome),
    };
    return cmocka_run_group_tests_name("ask", tests, NULL, NULL);
}
