/*
 * planner.c: a team of agents on one Starling node, narrated for a person.
 *
 * The story. A "planner" agent gets the job "summarize 12 documents". It
 * fans the job out as 12 asks, each with a deadline, to four worker agents
 * that a supervisor ("team", one_for_one) keeps alive. Documents have
 * priorities, and each worker's mailbox serves HIGH before NORMAL before LOW
 * whatever the arrival order. Workers do real, cheap work (word counts, the
 * most frequent term, an FNV-1a hash); task 10 is a long document that needs
 * "the large model", so its worker offloads that slow call to the threadpool
 * with sl_offload() and keeps serving its mailbox meanwhile.
 *
 * Task 7 is sent once with a corrupted payload (deliberate fault injection).
 * Its worker does not defend against that: on_message returns an error, which
 * crashes the worker. Then four things happen, all through the runtime: the
 * supervisor restarts the worker under the same name; the planner, which
 * monitors every worker, gets DOWN with the reason; every ask that worker
 * still held (the corrupted task and any task queued behind it) fails with
 * SL_ERR_ACTOR_DOWN; and the planner re-dispatches those tasks, intact and at
 * HIGH priority, to other workers. Nothing is lost silently.
 *
 * With all 12 results in, the planner asks the "writer" agent for a report.
 * The writer streams it one token per turn (sl_reply_chunk() driven by
 * sl_send_after() timers). The planner only needs the headline: once the
 * first sentence is complete it cancels the rest with sl_ask_cancel(); the
 * writer receives SL_KIND_CANCEL and stops. The planner waits a few more
 * token periods to show that nothing else arrives, then stops the node.
 *
 * The agents share nothing and talk only through messages. Payloads are
 * msgpack, packed with sl_pack and read with sl_unpack() and its typed
 * getters (<starling/pack.h>), which validate the untrusted bytes before
 * msgpack-c parses them. The corrupted task 7 is well-formed msgpack (its
 * text is nil), so it is the worker's type check that fails. The `story`
 * scoreboard below is the demo's referee: the agents record what they saw in
 * it, and main() checks at the end that the story happened as told, so the
 * program doubles as an integration test (exit status 0 or 1). `--quiet`
 * prints only the summary. A watchdog on the node's own libuv loop stops
 * everything after a few seconds if the story gets stuck.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <starling/node.h>
#include <starling/pack.h>
#include <starling/supervisor.h>

/* ------------------------------------------------------------ the script */

#define N_WORKERS 4
#define N_TASKS 12
#define POISONED_TASK 7       /* sent once with a corrupted payload */
#define SLOW_TASK 10          /* a long document: "the large model", offloaded */
#define MODEL_CALL_MS 40      /* how long the simulated slow model call blocks */
#define TASK_DEADLINE_MS 1000 /* deadline of every task ask */
#define STREAM_DEADLINE_MS 3000
#define TOKEN_EVERY_MS 15             /* the writer's pace */
#define GRACE_MS (4 * TOKEN_EVERY_MS) /* after cancelling, wait this long before stopping */
#define SUP_INTENSITY 5               /* at most 5 restarts ... */
#define SUP_PERIOD_MS 10000           /* ... in 10 s */
#define WATCHDOG_MS 5000              /* give up if the story has not ended by then */
#define NODE_ID 0xa1                  /* a fixed node id keeps the printed actor ids short */

/* Message types (sl_msg.type); their meaning is ours, not the runtime's. */
enum {
    MSG_START = 1, /* main -> planner: begin the job */
    MSG_TASK,      /* planner -> worker, ask: {task, text}; reply MSG_RESULT */
    MSG_RESULT,    /* worker -> planner: {task, worker, words, distinct, top, top_n, hash} */
    MSG_MODEL,     /* threadpool -> worker: the slow model call finished */
    MSG_WRITE,     /* planner -> writer, ask: {docs, words, top, retried, slow}; chunks MSG_TOKEN */
    MSG_TOKEN,     /* writer -> planner: one token of the streamed report */
    MSG_TICK,      /* writer -> itself: time to send the next token */
    MSG_WRAP_UP    /* planner -> itself: grace period after the cancel is over */
};

/* The priority of each document: newest first, so the planner's dispatch
 * order (1..12) is the reverse of the order the workers should serve. */
static int task_prio(int task)
{
    return task <= 4 ? SL_PRIO_LOW : task <= 8 ? SL_PRIO_NORMAL : SL_PRIO_HIGH;
}

/* ---------------------------------------------------- the referee's notes */

static struct story {
    bool quiet;            /* --quiet: summary only */
    uint64_t t0;           /* uv_hrtime() at start, for timestamps */
    int done[N_TASKS + 1]; /* results the planner accepted, per task */
    bool retried_task[N_TASKS + 1];
    int retried;        /* asks re-dispatched after SL_ERR_ACTOR_DOWN */
    int other_failures; /* asks that failed any other way (should be 0) */
    int restarts;       /* seen by sl_sup_spec.on_restart */
    char restarted[16]; /* name of the child restarted */
    int downs;          /* DOWN messages the planner received */
    int down_reason, down_code;
    int model_calls;   /* slow calls that came back from the threadpool */
    double model_ms;   /* how long the slow call took, end to end */
    int chunks;        /* stream chunks the planner received before cancelling */
    int stray_chunks;  /* chunks that arrived for the stream after the cancel */
    bool stream_ended; /* the planner got END (it should have cancelled first) */
    int tokens_sent;   /* chunks the writer sent */
    int tokens_total;  /* tokens in the writer's full report */
    bool writer_saw_cancel;
    uint64_t sup_restarts; /* sl_supervisor_restarts() at wrap-up */
    bool finished;         /* the planner reached its wrap-up */
    bool watchdog_fired;
} story;

/* A timestamped line of narration (nothing in --quiet mode). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (story.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%7.1f ms] ", (double)(uv_hrtime() - story.t0) / 1e6);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

/* A heading between the acts of the story (nothing in --quiet mode). */
static void phase(const char *title)
{
    if (!story.quiet)
        printf("\n== %s\n", title);
}

/* The printable form of an actor id, in a caller's buffer. */
static const char *idstr(sl_id id, char buf[SL_ID_STRLEN])
{
    if (sl_id_format(id, buf, SL_ID_STRLEN) < 0)
        snprintf(buf, SL_ID_STRLEN, "?");
    return buf;
}

/* ------------------------------------------------------ msgpack helpers */

/*
 * Writing: an sl_pack (<starling/pack.h>) is a growable buffer with a
 * msgpack_packer, so msgpack_pack_*(&p->pk, ...) works on it too. Its errors
 * are sticky: pack the whole message, then check sl_pack_error() once.
 * `map_size` > 0 starts the payload with a map header of that many pairs.
 */
static void out_init(sl_pack *p, uint32_t map_size)
{
    sl_pack_init(p, NULL);
    if (map_size)
        msgpack_pack_map(&p->pk, map_size);
}

static void out_int(sl_pack *p, const char *k, int64_t v)
{
    sl_pack_str(p, k);
    msgpack_pack_int64(&p->pk, v);
}

static void out_str(sl_pack *p, const char *k, const char *v)
{
    sl_pack_str(p, k);
    sl_pack_str(p, v);
}

/*
 * Reading: payloads are untrusted bytes, so sl_unpack() validates them with
 * sl_msgpack_check() before msgpack-c parses them, and the typed getters check
 * each field. Returns SL_OK if the payload is one msgpack value of type
 * `want`, SL_ERR_NOTFOUND if there is no payload (length 0), the validator's
 * error if the bytes are not one well-formed value, or SL_ERR_DECODE_TYPE.
 * *u is initialised whatever the result: always sl_unpacked_fini() it.
 */
static int in_open(sl_unpacked *u, const sl_msg *m, msgpack_object_type want)
{
    int rc = sl_unpack(m->data, m->len, NULL, u);
    if (m->len == 0)
        return SL_ERR_NOTFOUND;
    if (rc == SL_OK && u->root.type != want)
        rc = SL_ERR_DECODE_TYPE;
    return rc;
}

/* The integer under `key` in the top-level map, or -1 if absent or not one. */
static int64_t in_int(const sl_unpacked *u, const char *key)
{
    const msgpack_object *v;
    int64_t n;
    if (sl_msgpack_map_get(&u->root, key, &v) != SL_OK || sl_msgpack_get_int64(v, &n) != SL_OK)
        return -1;
    return n;
}

/* Copy the string under `key` into buf (NUL-terminated); false, and buf
 * untouched, if it is absent, not a string, or does not fit. */
static bool in_str(const sl_unpacked *u, const char *key, char *buf, size_t size)
{
    const msgpack_object *v;
    return sl_msgpack_map_get(&u->root, key, &v) == SL_OK &&
           sl_msgpack_copy_str(v, buf, size) == SL_OK;
}

/* ---------------------------------------------- the documents and the work */

static const char *const vocab[] = {
    "agent",   "mailbox",  "priority", "deadline", "stream",   "token", "planner",    "worker",
    "restart", "monitor",  "node",     "message",  "cancel",   "reply", "supervisor", "latency",
    "quic",    "datagram", "browser",  "cluster",  "registry", "timer", "budget",     "model",
    "prompt",  "context",  "summary",  "retry",    "backoff",  "queue", "credit",     "link"};
#define VOCAB_N (sizeof vocab / sizeof vocab[0])

/* Generate document `i`: pseudo-random words, skewed so that some terms
 * dominate (the minimum of two draws favours the start of the vocabulary,
 * shifted per document so documents differ in theme). */
static char *make_doc(int i)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    size_t words = 120 + (size_t)(i * 53) % 180;
    if (i == SLOW_TASK)
        words *= 6;
    char *s = malloc(words * 12 + 1);
    if (!s)
        return NULL;
    size_t len = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t d[2];
        for (int k = 0; k < 2; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            d[k] = x % VOCAB_N;
        }
        const char *word = vocab[((d[0] < d[1] ? d[0] : d[1]) + (size_t)i * 3) % VOCAB_N];
        len += (size_t)sprintf(s + len, "%s%s", w ? " " : "", word);
    }
    return s;
}

/* What a worker learns from a document. Pure, so it can run on any thread. */
typedef struct analysis {
    uint32_t words, distinct, top_n;
    char top[24];
    uint64_t hash; /* FNV-1a 64 of the text */
} analysis;

static void analyze(const char *text, size_t len, analysis *a)
{
    struct seen_word {
        const char *w;
        size_t n;
        uint32_t count;
    } seen[64];
    size_t nseen = 0;
    memset(a, 0, sizeof *a);
    a->hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        a->hash = (a->hash ^ (uint8_t)text[i]) * 0x100000001b3ull;
    for (size_t i = 0; i < len;) {
        while (i < len && text[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && text[i] != ' ')
            i++;
        if (i == start)
            break;
        a->words++;
        size_t k;
        for (k = 0; k < nseen; k++)
            if (seen[k].n == i - start && memcmp(seen[k].w, text + start, i - start) == 0)
                break;
        if (k == nseen && nseen < 64)
            seen[nseen++] = (struct seen_word){text + start, i - start, 0};
        if (k < nseen && ++seen[k].count > a->top_n) {
            a->top_n = seen[k].count;
            snprintf(a->top, sizeof a->top, "%.*s", (int)seen[k].n, seen[k].w);
        }
    }
    a->distinct = (uint32_t)nseen;
}

/* Pack a result; `model_ms` >= 0 adds how long the large model took. The
 * caller checks sl_pack_error() and calls sl_pack_fini(). */
static void pack_result(sl_pack *p, int task, const char *worker, const analysis *a,
                        double model_ms)
{
    out_init(p, model_ms >= 0 ? 8 : 7);
    out_int(p, "task", task);
    out_str(p, "worker", worker);
    out_int(p, "words", a->words);
    out_int(p, "distinct", a->distinct);
    out_str(p, "top", a->top);
    out_int(p, "top_n", a->top_n);
    sl_pack_str(p, "hash");
    msgpack_pack_uint64(&p->pk, a->hash);
    if (model_ms >= 0) {
        sl_pack_str(p, "model_ms");
        msgpack_pack_double(&p->pk, model_ms);
    }
}

/* ------------------------------------------------------------- workers */

/* What each worker is told at (re)start: its name. */
typedef struct worker_cfg {
    const char *name;
} worker_cfg;

/* Input of the slow model call. The job owns it (the node frees it with the
 * `release` given to sl_offload() once the call is over), never the worker:
 * the worker may be gone by the time the call returns. */
typedef struct model_job {
    int task;
    char worker[16];
    uint64_t started; /* uv_hrtime() */
    size_t len;
    char text[];
} model_job;

#define PENDING_MAX 4 /* slow calls one worker may have in flight */

/* A worker's private state; zeroed on every (re)start. */
typedef struct worker {
    const worker_cfg *cfg;
    struct {
        uint64_t job; /* sl_offload job id, 0 = free slot */
        sl_req req;   /* the ask to answer when the job returns */
        int task;
    } pending[PENDING_MAX];
} worker;

/* Runs on a threadpool thread: touches no Starling object. */
static int model_call(void *arg, uint8_t **out, size_t *out_len)
{
    model_job *j = arg;
    analysis a;
    uv_sleep(MODEL_CALL_MS); /* the network round trip to a big model */
    analyze(j->text, j->len, &a);
    sl_pack p;
    pack_result(&p, j->task, j->worker, &a, (double)(uv_hrtime() - j->started) / 1e6);
    /* The node frees *out with free(), so it gets a malloc()ed copy of the
     * bytes; the sl_pack keeps (and frees) its own buffer. */
    int rc = sl_pack_error(&p);
    *out = NULL;
    *out_len = 0;
    if (rc == SL_OK && !(*out = malloc(sl_pack_len(&p))))
        rc = SL_ERR_NOMEM;
    if (rc == SL_OK) {
        memcpy(*out, sl_pack_data(&p), sl_pack_len(&p));
        *out_len = sl_pack_len(&p);
    }
    sl_pack_fini(&p);
    return rc; /* the status of the result message */
}

static int worker_start(sl_actor *self, void *arg)
{
    worker *w = sl_state(self);
    w->cfg = arg;
    return 0;
}

/* A task: analyze now, or offload the long document to the "large model". */
static int worker_task(sl_actor *self, worker *w, const sl_msg *m)
{
    sl_unpacked u; /* the text points into m->data, valid for this turn */
    const msgpack_object *v;
    const char *text = NULL;
    size_t text_len = 0;
    char cause[64] = "";
    int task = -1;
    int rc = in_open(&u, m, MSGPACK_OBJECT_MAP);
    if (rc == SL_ERR_NOTFOUND || rc == SL_ERR_DECODE_TYPE) {
        rc = SL_ERR_DECODE_TYPE;
        snprintf(cause, sizeof cause, "%s", m->len ? "payload is not a map" : "no payload");
    } else if (rc) {
        snprintf(cause, sizeof cause, "payload fails validation"); /* rc says how */
    } else {
        task = (int)in_int(&u, "task");
        if (sl_msgpack_map_get(&u.root, "text", &v) != SL_OK ||
            sl_msgpack_get_str(v, &text, &text_len) != SL_OK) {
            /* Let it crash: the supervisor gives us a clean slate. */
            rc = SL_ERR_DECODE_TYPE;
            snprintf(cause, sizeof cause, "\"text\" is not a string");
        }
    }
    if (rc) {
        say("%s: task %d is corrupt (%s): on_message returns %s -> the worker crashes",
            w->cfg->name, task, cause, sl_err_name(rc));
        sl_unpacked_fini(&u);
        return rc;
    }
    if (task == SLOW_TASK) {
        size_t slot;
        for (slot = 0; slot < PENDING_MAX && w->pending[slot].job; slot++)
            ;
        model_job *j = slot < PENDING_MAX ? malloc(sizeof *j + text_len) : NULL;
        if (!j) {
            sl_unpacked_fini(&u);
            (void)sl_reply_error(self, sl_req_of(m), SL_ERR_AGAIN); /* busy: the planner retries */
            return 0;
        }
        j->task = task;
        snprintf(j->worker, sizeof j->worker, "%s", w->cfg->name);
        j->started = uv_hrtime();
        j->len = text_len;
        memcpy(j->text, text, text_len);
        sl_unpacked_fini(&u);
        uint64_t job;
        /* From here on the node owns j and frees it (release = free). */
        rc = sl_offload(self, model_call, j, free, MSG_MODEL, &job);
        if (rc) {
            free(j);
            sl_reply_error(self, sl_req_of(m), rc);
        } else {
            w->pending[slot].job = job;
            w->pending[slot].req = sl_req_of(m);
            w->pending[slot].task = task;
            say("%s: task %d is long (%zu bytes) and needs the large model: offloaded to the "
                "threadpool (job %" PRIu64 "); the worker keeps serving its mailbox",
                w->cfg->name, task, text_len, job);
        }
        return 0;
    }
    analysis a;
    analyze(text, text_len, &a);
    sl_unpacked_fini(&u);
    sl_pack p;
    pack_result(&p, task, w->cfg->name, &a, -1);
    /* A reply can only fail here if the planner cancelled or is gone; the
     * planner then no longer wants it, so there is nothing to do. */
    if (sl_pack_error(&p) != SL_OK)
        (void)sl_reply_error(self, sl_req_of(m), SL_ERR_NOMEM);
    else
        (void)sl_reply(self, sl_req_of(m), MSG_RESULT, sl_pack_data(&p), sl_pack_len(&p));
    sl_pack_fini(&p);
    return 0;
}

static int worker_message(sl_actor *self, const sl_msg *m)
{
    worker *w = sl_state(self);
    if (m->kind == SL_KIND_ASK && m->type == MSG_TASK)
        return worker_task(self, w, m);
    if (m->kind == SL_KIND_SEND && m->type == MSG_MODEL) {
        /* The slow call is back: answer the ask we kept. */
        for (size_t i = 0; i < PENDING_MAX; i++) {
            if (w->pending[i].job != m->corr)
                continue;
            sl_unpacked u;
            const msgpack_object *ms;
            w->pending[i].job = 0;
            story.model_calls++;
            /* No payload if the call failed (m->status says why). */
            if (in_open(&u, m, MSGPACK_OBJECT_MAP) == SL_OK &&
                sl_msgpack_map_get(&u.root, "model_ms", &ms) == SL_OK)
                (void)sl_msgpack_get_double(ms, &story.model_ms);
            sl_unpacked_fini(&u);
            say("%s: the large model answered task %d after %.1f ms (threadpool job %" PRIu64
                "); replying to the ask it kept",
                w->cfg->name, w->pending[i].task, story.model_ms, m->corr);
            if (m->status != SL_OK || !m->len)
                (void)sl_reply_error(self, w->pending[i].req,
                                     m->status < 0 ? m->status : SL_ERR_IO);
            else
                (void)sl_reply(self, w->pending[i].req, MSG_RESULT, m->data, m->len);
        }
        return 0;
    }
    if (m->kind == SL_KIND_CANCEL) {
        /* The planner gave up on an ask: forget it if it is a pending job. */
        for (size_t i = 0; i < PENDING_MAX; i++)
            if (w->pending[i].job && w->pending[i].req.corr == m->corr)
                w->pending[i].job = 0;
    }
    return 0;
}

static const sl_behavior worker_behavior = {
    .on_start = worker_start,
    .on_message = worker_message,
    .state_size = sizeof(worker),
    .name = "worker",
};

/* ------------------------------------------------------------- the writer */

#define REPORT_MAX 512
#define TOKENS_MAX 96

/* The writer's state: at most one streamed report at a time. */
typedef struct writer {
    bool streaming;
    sl_req req;     /* the ask being answered */
    uint64_t timer; /* the pending MSG_TICK */
    char text[REPORT_MAX];
    uint16_t tok[TOKENS_MAX]; /* token start offsets in text; tokens are NUL-separated */
    int ntok, next;
} writer;

static int writer_start_stream(sl_actor *self, writer *wr, const sl_msg *m)
{
    sl_unpacked u;
    char top[24] = "?";
    if (wr->streaming) { /* one report at a time */
        (void)sl_reply_error(self, sl_req_of(m), SL_ERR_AGAIN);
        return 0;
    }
    int rc = in_open(&u, m, MSGPACK_OBJECT_MAP);
    if (rc) {
        sl_unpacked_fini(&u);
        (void)sl_reply_error(self, sl_req_of(m), rc == SL_ERR_NOTFOUND ? SL_ERR_DECODE_TYPE : rc);
        return 0;
    }
    in_str(&u, "top", top, sizeof top);
    snprintf(wr->text, sizeof wr->text,
             "Headline: %" PRId64 " documents, %" PRId64 " words, one theme: \"%s\". "
             "%" PRId64 " tasks were re-dispatched after a worker crashed and none was lost. "
             "Task %" PRId64 " went to the large model on the threadpool while its worker kept "
             "serving. Every other task finished on a small model well within its deadline.",
             in_int(&u, "docs"), in_int(&u, "words"), top, in_int(&u, "retried"),
             in_int(&u, "slow"));
    sl_unpacked_fini(&u);
    wr->ntok = 0;
    wr->next = 0;
    for (char *p = wr->text; *p && wr->ntok < TOKENS_MAX;) {
        wr->tok[wr->ntok++] = (uint16_t)(p - wr->text);
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    wr->req = sl_req_of(m);
    wr->streaming = true;
    story.tokens_total = wr->ntok;
    say("writer: streaming a %d-token report to the planner, one token every %d ms", wr->ntok,
        TOKEN_EVERY_MS);
    return sl_send_after(self, sl_self(self), TOKEN_EVERY_MS, MSG_TICK, SL_PRIO_NORMAL, NULL, 0,
                         &wr->timer);
}

/* One turn of the stream: send the next token (the last one as END). */
static int writer_tick(sl_actor *self, writer *wr)
{
    if (!wr->streaming)
        return 0;
    sl_pack p;
    out_init(&p, 0);
    sl_pack_str(&p, wr->text + wr->tok[wr->next]); /* the token, a msgpack str */
    if (sl_pack_error(&p) != SL_OK) {
        /* Out of memory: end the ask with FAIL rather than leave the planner waiting. */
        sl_pack_fini(&p);
        say("writer: could not pack token %d; ending the stream with SL_ERR_NOMEM", wr->next + 1);
        (void)sl_reply_error(self, wr->req, SL_ERR_NOMEM);
        wr->streaming = false;
        return 0;
    }
    bool last = wr->next + 1 == wr->ntok;
    int rc = last ? sl_reply_end(self, wr->req, MSG_TOKEN, sl_pack_data(&p), sl_pack_len(&p))
                  : sl_reply_chunk(self, wr->req, MSG_TOKEN, sl_pack_data(&p), sl_pack_len(&p));
    sl_pack_fini(&p);
    if (rc == SL_ERR_MAILBOX_FULL) /* the planner is slow: try again next turn */
        return sl_send_after(self, sl_self(self), TOKEN_EVERY_MS, MSG_TICK, SL_PRIO_NORMAL, NULL, 0,
                             &wr->timer);
    if (rc != SL_OK) {
        /* SL_ERR_CANCELLED or SL_ERR_NOACTOR: nobody wants the rest. */
        say("writer: the runtime refused token %d (%s); stopping the stream", wr->next + 1,
            sl_err_name(rc));
        wr->streaming = false;
        return 0;
    }
    story.tokens_sent++;
    wr->next++;
    if (last) {
        wr->streaming = false;
        return 0;
    }
    return sl_send_after(self, sl_self(self), TOKEN_EVERY_MS, MSG_TICK, SL_PRIO_NORMAL, NULL, 0,
                         &wr->timer);
}

static int writer_message(sl_actor *self, const sl_msg *m)
{
    writer *wr = sl_state(self);
    if (m->kind == SL_KIND_ASK && m->type == MSG_WRITE)
        return writer_start_stream(self, wr, m);
    if (m->kind == SL_KIND_SEND && m->type == MSG_TICK)
        return writer_tick(self, wr);
    if (m->kind == SL_KIND_CANCEL && wr->streaming && m->corr == wr->req.corr) {
        /* CANCEL travels as CRITICAL, so it overtakes a pending tick. */
        sl_timer_cancel(self, wr->timer);
        wr->streaming = false;
        story.writer_saw_cancel = true;
        say("writer: CANCEL for ask %" PRIu64 " after %d of %d tokens: stops streaming", m->corr,
            wr->next, wr->ntok);
    }
    return 0;
}

static const sl_behavior writer_behavior = {
    .on_message = writer_message,
    .state_size = sizeof(writer),
    .name = "writer",
};

/* ------------------------------------------------------------ the planner */

typedef struct task {
    uint64_t ask;    /* the ask in flight, 0 = none */
    char worker[16]; /* who has it */
    int prio;
    int tries;
    bool done;
    uint32_t words;
    char top[24];
} task;

typedef struct planner {
    char *const *docs; /* the corpus, docs[1..N_TASKS] */
    task t[N_TASKS + 1];
    int ndone;
    int cursor; /* round-robin position for re-dispatching */
    sl_id workers[N_WORKERS];
    /* The report stream. */
    uint64_t stream; /* the ask, 0 = none */
    char headline[256];
    bool cancelled;
} planner;

static int planner_start(sl_actor *self, void *arg)
{
    planner *p = sl_state(self);
    p->docs = arg;
    return 0;
}

/* Send task `i` to `wname` (an ask with a deadline). */
static int dispatch(sl_actor *self, planner *p, int i, const char *wname, int prio)
{
    sl_id to;
    int rc = sl_whereis(sl_actor_core(self), wname, &to);
    if (rc)
        return rc;
    bool poison = i == POISONED_TASK && p->t[i].tries == 0;
    sl_pack o;
    out_init(&o, 2);
    out_int(&o, "task", i);
    sl_pack_str(&o, "text");
    if (poison)
        msgpack_pack_nil(&o.pk); /* the fault injection: the text got lost */
    else
        sl_pack_str(&o, p->docs[i]);
    rc = sl_pack_error(&o);
    if (rc == SL_OK)
        rc = sl_ask(self, to, MSG_TASK, prio, sl_pack_data(&o), sl_pack_len(&o), TASK_DEADLINE_MS,
                    &p->t[i].ask);
    sl_pack_fini(&o);
    if (rc)
        return rc;
    snprintf(p->t[i].worker, sizeof p->t[i].worker, "%s", wname);
    p->t[i].prio = prio;
    p->t[i].tries++;
    say("planner -> %s: task %d (%s, deadline %d ms)%s", wname, i, sl_prio_name(prio),
        TASK_DEADLINE_MS, poison ? "  [fault injected: corrupted payload]" : "");
    return SL_OK;
}

static int planner_begin(sl_actor *self, planner *p)
{
    sl_core *core = sl_actor_core(self);
    char name[16], ids[SL_ID_STRLEN];
    phase("1. Fan-out: one ask with a deadline per document; priority LOW (1-4), NORMAL (5-8), "
          "HIGH (9-12)");
    say("planner: job \"summarize %d documents\": %d tasks for %d workers", N_TASKS, N_TASKS,
        N_WORKERS);
    for (int k = 0; k < N_WORKERS; k++) {
        uint64_t ref;
        snprintf(name, sizeof name, "worker-%d", k + 1);
        int rc = sl_whereis(core, name, &p->workers[k]);
        if (rc == SL_OK)
            rc = sl_monitor(self, p->workers[k], &ref);
        if (rc)
            return rc;
        say("planner: monitors %s (%s)", name, idstr(p->workers[k], ids));
    }
    for (int i = 1; i <= N_TASKS; i++) {
        snprintf(name, sizeof name, "worker-%d", (i - 1) % N_WORKERS + 1);
        int rc = dispatch(self, p, i, name, task_prio(i));
        if (rc)
            return rc; /* a planner that cannot dispatch crashes; main reports it */
    }
    return 0;
}

/* The ask of task i, or 0 if `corr` is none of ours. */
static int task_of(const planner *p, uint64_t corr)
{
    for (int i = 1; i <= N_TASKS; i++)
        if (p->t[i].ask == corr)
            return i;
    return 0;
}

/* Every result is in: ask the writer for the report, as a stream. */
static int planner_report(sl_actor *self, planner *p)
{
    /* The theme: the term that tops the most documents. */
    const char *theme = p->t[1].top;
    int best = 0, retried = 0;
    int64_t words = 0;
    for (int i = 1; i <= N_TASKS; i++) {
        int n = 0;
        for (int k = 1; k <= N_TASKS; k++)
            n += strcmp(p->t[i].top, p->t[k].top) == 0;
        if (n > best)
            best = n, theme = p->t[i].top;
        words += p->t[i].words;
        retried += p->t[i].tries > 1;
    }
    sl_id writer_id;
    int rc = sl_whereis(sl_actor_core(self), "writer", &writer_id);
    if (rc)
        return rc;
    sl_pack o;
    out_init(&o, 5);
    out_int(&o, "docs", N_TASKS);
    out_int(&o, "words", words);
    out_str(&o, "top", theme);
    out_int(&o, "retried", retried);
    out_int(&o, "slow", SLOW_TASK);
    rc = sl_pack_error(&o);
    if (rc == SL_OK)
        rc = sl_ask(self, writer_id, MSG_WRITE, SL_PRIO_NORMAL, sl_pack_data(&o), sl_pack_len(&o),
                    STREAM_DEADLINE_MS, &p->stream);
    sl_pack_fini(&o);
    if (rc == SL_OK)
        say("planner -> writer: write the report (%" PRId64 " words, theme \"%s\"), streamed, "
            "deadline %d ms",
            words, theme, STREAM_DEADLINE_MS);
    return rc;
}

static int planner_result(sl_actor *self, planner *p, const sl_msg *m)
{
    int i = task_of(p, m->corr);
    sl_unpacked u;
    if (!i)
        return 0;
    p->t[i].ask = 0;
    if (in_open(&u, m, MSGPACK_OBJECT_MAP) != SL_OK || in_int(&u, "task") != i) {
        sl_unpacked_fini(&u);
        return SL_ERR_DECODE_TYPE; /* a worker answered nonsense: a bug, crash loudly */
    }
    p->t[i].done = true;
    p->t[i].words = (uint32_t)in_int(&u, "words");
    in_str(&u, "top", p->t[i].top, sizeof p->t[i].top);
    const msgpack_object *h;
    uint64_t hash = 0;
    if (sl_msgpack_map_get(&u.root, "hash", &h) == SL_OK)
        (void)sl_msgpack_get_uint64(h, &hash);
    say("planner <- %s: task %d (%s): %u words, top \"%s\" x%" PRId64 ", fnv-1a %016" PRIx64,
        p->t[i].worker, i, sl_prio_name(m->prio), p->t[i].words, p->t[i].top, in_int(&u, "top_n"),
        hash);
    sl_unpacked_fini(&u);
    story.done[i]++;
    if (++p->ndone == N_TASKS) {
        say("planner: all %d results are in", N_TASKS);
        phase("2. Report: the writer streams it token by token; the planner cancels midway");
        return planner_report(self, p);
    }
    return 0;
}

static int planner_failed(sl_actor *self, planner *p, const sl_msg *m)
{
    if (m->corr == p->stream && p->stream) {
        say("planner: the report stream failed: %s", sl_err_name(m->status));
        story.other_failures++;
        p->stream = 0;
        return sl_send_after(self, sl_self(self), 0, MSG_WRAP_UP, SL_PRIO_NORMAL, NULL, 0, NULL);
    }
    int i = task_of(p, m->corr);
    if (!i)
        return 0;
    p->t[i].ask = 0;
    char failed_on[16];
    snprintf(failed_on, sizeof failed_on, "%s", p->t[i].worker);
    if (m->status == SL_ERR_ACTOR_DOWN) {
        story.retried++;
        story.retried_task[i] = true;
    } else {
        story.other_failures++;
    }
    say("planner: task %d failed on %s: %s (%s); re-dispatching it", i, failed_on,
        sl_err_name(m->status), sl_strerror(m->status));
    /* To another worker (round robin), at HIGH priority: it is late already. */
    for (int attempt = 0; attempt < 2 * N_WORKERS; attempt++) {
        char name[16];
        snprintf(name, sizeof name, "worker-%d", p->cursor++ % N_WORKERS + 1);
        if (strcmp(name, failed_on) != 0 && dispatch(self, p, i, name, SL_PRIO_HIGH) == SL_OK)
            return 0;
    }
    return SL_ERR_NOTFOUND; /* no worker at all: give up by crashing */
}

static int planner_chunk(sl_actor *self, planner *p, const sl_msg *m)
{
    sl_unpacked u;
    char tok[64] = "";
    if (!p->stream || m->corr != p->stream) {
        story.stray_chunks++; /* already in flight when we cancelled */
        return 0;
    }
    /* A token is one msgpack str; anything else (no payload, bytes that fail
     * validation, a str that does not fit in tok) counts as "". */
    if (in_open(&u, m, MSGPACK_OBJECT_STR) == SL_OK)
        (void)sl_msgpack_copy_str(&u.root, tok, sizeof tok);
    sl_unpacked_fini(&u);
    size_t hl = strlen(p->headline);
    snprintf(p->headline + hl, sizeof p->headline - hl, "%s%s", hl ? " " : "", tok);
    if (m->kind == SL_KIND_END) {
        story.stream_ended = true;
        p->stream = 0;
        say("planner <- writer: END \"%s\" (the whole report arrived)", tok);
        return sl_send_after(self, sl_self(self), 0, MSG_WRAP_UP, SL_PRIO_NORMAL, NULL, 0, NULL);
    }
    story.chunks++;
    say("planner <- writer: chunk %d \"%s\"", story.chunks, tok);
    size_t n = strlen(tok);
    if (n && tok[n - 1] == '.') {
        /* The headline is complete: the rest is not worth waiting for. */
        say("planner: has its headline: \"%s\"", p->headline);
        say("planner: cancels the rest of the stream (sl_ask_cancel, ask %" PRIu64 ")", p->stream);
        int rc = sl_ask_cancel(self, p->stream);
        p->stream = 0;
        p->cancelled = true;
        if (rc)
            return rc;
        return sl_send_after(self, sl_self(self), GRACE_MS, MSG_WRAP_UP, SL_PRIO_NORMAL, NULL, 0,
                             NULL);
    }
    return 0;
}

static int planner_message(sl_actor *self, const sl_msg *m)
{
    planner *p = sl_state(self);
    char ids[SL_ID_STRLEN];
    switch (m->kind) {
    case SL_KIND_SEND:
        if (m->type == MSG_START)
            return planner_begin(self, p);
        if (m->type == MSG_WRAP_UP) {
            sl_id team;
            if (sl_whereis(sl_actor_core(self), "team", &team) == SL_OK)
                sl_supervisor_restarts(sl_actor_core(self), team, &story.sup_restarts);
            story.finished = true;
            if (p->cancelled)
                say("planner: nothing more arrived in the %d ms after the cancel", GRACE_MS);
            phase("3. Shutdown");
            say("planner: job done; stopping the node (sl_node_stop)");
            sl_node_stop(sl_node_of(self), NULL, NULL);
        }
        return 0;
    case SL_KIND_REPLY:
        return planner_result(self, p, m);
    case SL_KIND_FAIL:
        return planner_failed(self, p, m);
    case SL_KIND_CHUNK:
    case SL_KIND_END:
        return planner_chunk(self, p, m);
    case SL_KIND_DOWN:
        story.downs++;
        story.down_reason = m->status;
        story.down_code = m->code;
        for (int k = 0; k < N_WORKERS; k++)
            if (sl_id_eq(p->workers[k], m->from))
                say("planner: DOWN worker-%d (%s): reason %s, code %s; its pending asks will fail",
                    k + 1, idstr(m->from, ids), sl_reason_name(m->status), sl_err_name(m->code));
        return 0;
    default:
        return 0;
    }
}

static const sl_behavior planner_behavior = {
    .on_start = planner_start,
    .on_message = planner_message,
    .state_size = sizeof(planner),
    .name = "planner",
};

/* ---------------------------------------------------------------- main */

static worker_cfg worker_cfgs[N_WORKERS] = {{"worker-1"}, {"worker-2"}, {"worker-3"}, {"worker-4"}};

/* sl_sup_spec.on_restart: narrate each restart. */
static void on_restart(sl_actor *sup, size_t child, sl_id old_id, sl_id new_id, int reason,
                       void *ud)
{
    const sl_sup_spec *spec = ud;
    char a[SL_ID_STRLEN], b[SL_ID_STRLEN];
    (void)sup;
    story.restarts++;
    snprintf(story.restarted, sizeof story.restarted, "%s", spec->children[child].name);
    say("team: %s stopped (%s) -> restarted: %s -> %s, same name, fresh state "
        "(restart %d; limit %d in %d s)",
        spec->children[child].name, sl_reason_name(reason), idstr(old_id, a), idstr(new_id, b),
        story.restarts, SUP_INTENSITY, SUP_PERIOD_MS / 1000);
}

static void on_watchdog(uv_timer_t *t)
{
    story.watchdog_fired = true;
    say("watchdog: the story did not end within %d ms; stopping the node", WATCHDOG_MS);
    sl_node_stop(t->data, NULL, NULL);
}

/* Check the story; print the summary. Returns the exit status. */
static int summarize(const sl_core_stats *st)
{
    char why[1024] = "";
    size_t wl = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond) && wl < sizeof why)                                                            \
            wl += (size_t)snprintf(why + wl, sizeof why - wl, "\n    - " __VA_ARGS__);             \
    } while (0)
    int done = 0, lost = 0, dup = 0;
    for (int i = 1; i <= N_TASKS; i++) {
        done += story.done[i] >= 1;
        lost += story.done[i] == 0;
        dup += story.done[i] > 1;
    }
    EXPECT(lost == 0, "%d task(s) lost", lost);
    EXPECT(dup == 0, "%d task(s) answered twice", dup);
    EXPECT(story.retried_task[POISONED_TASK], "task %d was not re-dispatched", POISONED_TASK);
    EXPECT(story.other_failures == 0, "%d ask(s) failed other than by ACTOR_DOWN",
           story.other_failures);
    EXPECT(story.restarts == 1, "%d restarts seen by on_restart (expected 1)", story.restarts);
    EXPECT(story.sup_restarts == 1, "sl_supervisor_restarts() = %" PRIu64 " (expected 1)",
           story.sup_restarts);
    EXPECT(story.downs == 1 && story.down_reason == SL_REASON_CRASH &&
               story.down_code == SL_ERR_DECODE_TYPE,
           "expected one DOWN(crash, SL_ERR_DECODE_TYPE), saw %d (last: %s, %s)", story.downs,
           sl_reason_name(story.down_reason), sl_err_name(story.down_code));
    EXPECT(story.model_calls == 1, "%d slow model calls came back (expected 1)", story.model_calls);
    EXPECT(story.chunks > 0 && story.chunks < story.tokens_total,
           "the planner got %d of %d chunks (expected some, not all)", story.chunks,
           story.tokens_total);
    EXPECT(!story.stream_ended, "the stream ended before the planner cancelled it");
    EXPECT(story.writer_saw_cancel, "the writer never saw SL_KIND_CANCEL");
    EXPECT(story.tokens_sent == story.chunks,
           "the writer sent %d tokens but the planner took %d before cancelling", story.tokens_sent,
           story.chunks);
    EXPECT(st->crashed == 1, "%" PRIu64 " actors crashed (expected 1)", st->crashed);
    EXPECT(st->timeouts == 0, "%" PRIu64 " asks timed out (expected 0)", st->timeouts);
    EXPECT(st->late_replies == 0, "%" PRIu64 " late replies (expected 0)", st->late_replies);
    EXPECT(story.finished, "the planner never reached its wrap-up");
    EXPECT(!story.watchdog_fired, "the watchdog had to stop the node");
#undef EXPECT

    printf("%sSummary\n", story.quiet ? "" : "\n");
    printf("  tasks        %d of %d done%s; %d re-dispatched after a crash\n", done, N_TASKS,
           lost || dup ? "" : ", each exactly once", story.retried);
    printf("  supervisor   %d restart%s (%s); one_for_one, at most %d in %d s\n", story.restarts,
           story.restarts == 1 ? "" : "s", story.restarts ? story.restarted : "none", SUP_INTENSITY,
           SUP_PERIOD_MS / 1000);
    printf("  monitor      %d DOWN (%s, %s)\n", story.downs, sl_reason_name(story.down_reason),
           sl_err_name(story.down_code));
    printf("  offload      %d slow model call on the threadpool (%.1f ms)\n", story.model_calls,
           story.model_ms);
    printf("  stream       %d of %d chunks received, then cancelled; writer saw CANCEL: %s\n",
           story.chunks, story.tokens_total, story.writer_saw_cancel ? "yes" : "no");
    printf("  core         %" PRIu64 " messages processed, %" PRIu64 " sent, %" PRIu64
           " actors spawned, %" PRIu64 " crashed, %" PRIu64 " dropped, %" PRIu64
           " timeouts, %" PRIu64 " late replies\n",
           st->processed, st->sent, st->spawned, st->crashed, st->dropped, st->timeouts,
           st->late_replies);
    if (wl == 0) {
        printf("  verdict      OK: the story happened as told\n");
        return 0;
    }
    printf("  verdict      FAILED:%s\n", why);
    return 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            story.quiet = true;
        } else {
            fprintf(stderr, "usage: %s [--quiet]\n", argv[0]);
            return 2;
        }
    }
    story.t0 = uv_hrtime();

    char *docs[N_TASKS + 1] = {NULL};
    for (int i = 1; i <= N_TASKS; i++)
        if (!(docs[i] = make_doc(i)))
            return 1;

    /* The team: four workers and the writer under one supervisor. */
    sl_child_spec children[N_WORKERS + 1];
    for (int k = 0; k < N_WORKERS; k++)
        children[k] = (sl_child_spec){.name = worker_cfgs[k].name,
                                      .behavior = &worker_behavior,
                                      .arg = &worker_cfgs[k],
                                      .restart = SL_RESTART_PERMANENT};
    children[N_WORKERS] = (sl_child_spec){
        .name = "writer", .behavior = &writer_behavior, .restart = SL_RESTART_PERMANENT};
    sl_sup_spec team = {.strategy = SL_ONE_FOR_ONE,
                        .intensity = SUP_INTENSITY,
                        .period_ms = SUP_PERIOD_MS,
                        .children = children,
                        .n_children = N_WORKERS + 1,
                        .on_restart = on_restart};
    team.ud = &team;

    sl_node_settings set;
    sl_node_settings_default(&set);
    set.core.node_id = NODE_ID;
    sl_node *node;
    int rc = sl_node_new(&set, &node);
    if (rc) {
        fprintf(stderr, "sl_node_new: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_core *core = sl_node_core(node);
    sl_spawn_opts opts;
    sl_id team_id, planner_id;
    sl_spawn_opts_default(&opts);
    opts.register_as = "team";
    rc = sl_supervisor_spawn(core, &team, &opts, &team_id);
    if (rc == SL_OK) {
        opts.register_as = "planner";
        rc = sl_spawn(core, &planner_behavior, docs, &opts, &planner_id);
    }
    /* The job begins with a message, so everything is in place first. */
    if (rc == SL_OK)
        rc = sl_core_send(core, planner_id, MSG_START, SL_PRIO_NORMAL, NULL, 0);
    if (rc) {
        fprintf(stderr, "setup failed: %s\n", sl_strerror(rc));
        sl_node_stop(node, NULL, NULL);
    } else {
        char a[SL_ID_STRLEN], b[SL_ID_STRLEN];
        phase("Setup");
        say("node %016x up; supervisor \"team\" (%s, one_for_one, at most %d restarts in %d s)",
            NODE_ID, idstr(team_id, a), SUP_INTENSITY, SUP_PERIOD_MS / 1000);
        say("team runs worker-1..worker-%d and the writer; the planner is %s", N_WORKERS,
            idstr(planner_id, b));
    }

    /* The watchdog is our own handle on the node's loop. Unreferenced: it
     * must not keep the loop alive once the node has stopped. */
    uv_timer_t watchdog;
    uv_timer_init(sl_node_loop(node), &watchdog);
    watchdog.data = node;
    uv_timer_start(&watchdog, on_watchdog, WATCHDOG_MS, 0);
    uv_unref((uv_handle_t *)&watchdog);

    sl_node_run(node);
    if (!sl_node_stopped(node)) {
        /* The loop ran dry with the node still up: nothing was pending at all. */
        say("main: the loop went idle before the node stopped; stopping it");
        story.finished = false;
        sl_node_stop(node, NULL, NULL);
        sl_node_run(node);
    }
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(sl_node_loop(node), UV_RUN_NOWAIT);

    sl_core_stats st;
    sl_core_stats_get(core, &st);
    int status = rc ? 1 : summarize(&st);
    sl_node_del(node);
    for (int i = 1; i <= N_TASKS; i++)
        free(docs[i]);
    return status;
}
