/*
 * rpc: the gRPC wrapper end to end over loopback, with real gRPC on both
 * sides (no mocks): unary calls answered at once and later from another
 * thread, 5 MiB messages, server streams written from another thread,
 * bidi echo with half-close, unknown methods, error statuses, deadlines,
 * many concurrent calls, and freeing a server or a channel under open calls.
 * Each test starts its own server on a port chosen by the kernel.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_test.h"
#include "mq_util.h"
#include "rpc.h"

#define T_BIG (5u * 1024 * 1024)
#define T_STREAM_N 1000
#define T_BIDI_N 200
#define T_CONC_THREADS 8
#define T_CONC_PER_THREAD 2000
#define T_WAIT_MS 30000

/* ------------------------------------------------------------ server side */

/* Checks inside callbacks (cq threads, handler threads) only count
 * failures: CUnit's assertions are for the test's own thread. */
static atomic_int t_cb_errors;
#define T_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            atomic_fetch_add(&t_cb_errors, 1);                                                     \
        }                                                                                          \
    } while (0)

typedef struct t_srv {
    rpc_server_t *srv;
    int port;
    pthread_mutex_t mu;
    pthread_t threads[16];
    int nthreads;
    atomic_int done;           /* on_done calls */
    atomic_int done_cancelled; /* ... with cancelled */
    atomic_int later_err;      /* rpc_call_reply's result on the other thread */
    atomic_int later_replied;
    atomic_int stream_err; /* first failing write/finish of the stream writer */
    atomic_int bidi_msgs;
    atomic_int bidi_half_closed;
    atomic_int open_calls;
    rpc_call_t *held;
    atomic_int held_set;
    atomic_int held_done;
    atomic_int held_cancelled;
    /* recorded by Echo (only the last call's) */
    char hdr[64];
    char peer[64];
    char method[64];
    atomic_llong remaining;
} t_srv_t;

static void t_srv_spawn(t_srv_t *ts, void *(*fn)(void *), void *arg)
{
    pthread_mutex_lock(&ts->mu);
    MQ_ASSERT(ts->nthreads < (int)MQ_ARRAY_LEN(ts->threads));
    int rc = pthread_create(&ts->threads[ts->nthreads++], NULL, fn, arg);
    MQ_ASSERT(rc == 0);
    pthread_mutex_unlock(&ts->mu);
}

static void t_on_done(rpc_call_t *call, bool cancelled, void *arg)
{
    t_srv_t *ts = arg;
    if (call == ts->held) {
        atomic_store(&ts->held_cancelled, cancelled);
        atomic_store(&ts->held_done, 1);
    }
    if (cancelled) {
        atomic_fetch_add(&ts->done_cancelled, 1);
    }
    atomic_fetch_add(&ts->done, 1);
}

static void t_echo_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    t_srv_t *ts = arg;
    uint8_t *rev = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        rev[i] = req[len - 1 - i];
    }
    const char *h = rpc_call_header(call, "x-test");
    if (h) {
        pthread_mutex_lock(&ts->mu);
        snprintf(ts->hdr, sizeof(ts->hdr), "%s", h);
        snprintf(ts->peer, sizeof(ts->peer), "%s", rpc_call_peer(call));
        snprintf(ts->method, sizeof(ts->method), "%s", rpc_call_method(call));
        pthread_mutex_unlock(&ts->mu);
        atomic_store(&ts->remaining, rpc_call_remaining_ms(call));
    }
    mq_err_t err = rpc_call_reply(call, rev, len);
    T_CHECK(err == MQ_OK);
    free(rev);
}

typedef struct t_later {
    t_srv_t *ts;
    rpc_call_t *call;
    uint8_t req[16];
    size_t len;
} t_later_t;

static void *t_later_thread(void *arg)
{
    t_later_t *lt = arg;
    mq_err_t err = rpc_call_reply(lt->call, lt->req, lt->len);
    atomic_store(&lt->ts->later_err, err);
    atomic_store(&lt->ts->later_replied, 1);
    rpc_call_unref(lt->call);
    free(lt);
    return NULL;
}

static void t_later_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    t_later_t *lt = calloc(1, sizeof(*lt));
    lt->ts = arg;
    lt->call = call;
    lt->len = MQ_MIN(len, sizeof(lt->req));
    memcpy(lt->req, req, lt->len);
    rpc_call_ref(call);
    t_srv_spawn(lt->ts, t_later_thread, lt);
}

static void t_fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(mq_mix64(seed + i / 64) >> (8 * (i % 8)));
    }
}

static void t_big_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(arg);
    uint8_t *want = malloc(T_BIG);
    t_fill(want, T_BIG, 1);
    if (len != T_BIG || memcmp(req, want, T_BIG) != 0) {
        rpc_call_finish(call, RPC_DATA_LOSS, "request mismatch");
    } else {
        t_fill(want, T_BIG, 2);
        T_CHECK(rpc_call_reply(call, want, T_BIG) == MQ_OK);
    }
    free(want);
}

typedef struct t_writer {
    t_srv_t *ts;
    rpc_call_t *call;
} t_writer_t;

static void *t_stream_thread(void *arg)
{
    t_writer_t *w = arg;
    uint8_t msg[104];
    memset(msg, 'x', sizeof(msg));
    for (uint32_t i = 0; i < T_STREAM_N; i++) {
        mq_put_le32(msg, i);
        mq_err_t err = rpc_call_write(w->call, msg, sizeof(msg));
        if (err != MQ_OK) {
            atomic_store(&w->ts->stream_err, err);
            break;
        }
    }
    mq_err_t err = rpc_call_finish(w->call, RPC_OK, NULL);
    if (err != MQ_OK) {
        atomic_store(&w->ts->stream_err, err);
    }
    rpc_call_unref(w->call);
    free(w);
    return NULL;
}

static void t_stream_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(req);
    MQ_UNUSED(len);
    t_writer_t *w = calloc(1, sizeof(*w));
    w->ts = arg;
    w->call = call;
    rpc_call_ref(call);
    t_srv_spawn(w->ts, t_stream_thread, w);
}

static void t_bidi_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(arg);
    T_CHECK(req == NULL && len == 0);
    rpc_call_set_user(call, call);
}

static void t_bidi_on_message(rpc_call_t *call, const uint8_t *msg, size_t len, void *arg)
{
    t_srv_t *ts = arg;
    T_CHECK(rpc_call_user(call) == call);
    T_CHECK(strcmp(rpc_call_header(call, "x-test"), "bidi") == 0);
    if (!msg) {
        atomic_store(&ts->bidi_half_closed, 1);
        T_CHECK(rpc_call_finish(call, RPC_OK, NULL) == MQ_OK);
        return;
    }
    atomic_fetch_add(&ts->bidi_msgs, 1);
    T_CHECK(rpc_call_write(call, msg, len) == MQ_OK);
}

static void t_fail_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(req);
    MQ_UNUSED(len);
    MQ_UNUSED(arg);
    T_CHECK(rpc_call_finish(call, RPC_INVALID_ARGUMENT, "bad") == MQ_OK);
    T_CHECK(rpc_call_finish(call, RPC_OK, NULL) == MQ_ECLOSED);
    T_CHECK(rpc_call_reply(call, "x", 1) == MQ_ECLOSED);
    T_CHECK(rpc_call_write(call, "x", 1) == MQ_EINVAL);
}

static void t_hold_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(req);
    MQ_UNUSED(len);
    t_srv_t *ts = arg;
    rpc_call_ref(call);
    ts->held = call;
    atomic_store(&ts->held_set, 1);
}

/* Server-stream and bidi calls that stay open: one message, no finish. */
static void t_open_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    MQ_UNUSED(req);
    MQ_UNUSED(len);
    t_srv_t *ts = arg;
    T_CHECK(rpc_call_write(call, "hi", 2) == MQ_OK);
    atomic_fetch_add(&ts->open_calls, 1);
}

static void t_open_on_message(rpc_call_t *call, const uint8_t *msg, size_t len, void *arg)
{
    MQ_UNUSED(call);
    MQ_UNUSED(msg);
    MQ_UNUSED(len);
    MQ_UNUSED(arg);
}

static void t_srv_start(t_srv_t *ts, unsigned threads)
{
    memset(ts, 0, sizeof(*ts));
    pthread_mutex_init(&ts->mu, NULL);
    rpc_server_conf_t conf;
    rpc_server_conf_default(&conf);
    conf.addr = "127.0.0.1:0";
    conf.threads = threads;
    CU_ASSERT_FATAL(rpc_server_new(&conf, &ts->srv) == MQ_OK);
    const rpc_method_t methods[] = {
        {"/t.T/Echo", RPC_KIND_UNARY, t_echo_on_call, NULL, t_on_done, ts},
        {"/t.T/Later", RPC_KIND_UNARY, t_later_on_call, NULL, t_on_done, ts},
        {"/t.T/Big", RPC_KIND_UNARY, t_big_on_call, NULL, t_on_done, ts},
        {"/t.T/Stream", RPC_KIND_SERVER_STREAM, t_stream_on_call, NULL, t_on_done, ts},
        {"/t.T/Bidi", RPC_KIND_BIDI, t_bidi_on_call, t_bidi_on_message, t_on_done, ts},
        {"/t.T/Fail", RPC_KIND_UNARY, t_fail_on_call, NULL, t_on_done, ts},
        {"/t.T/Hold", RPC_KIND_UNARY, t_hold_on_call, NULL, t_on_done, ts},
        {"/t.T/OpenStream", RPC_KIND_SERVER_STREAM, t_open_on_call, NULL, t_on_done, ts},
        {"/t.T/OpenBidi", RPC_KIND_BIDI, t_open_on_call, t_open_on_message, t_on_done, ts},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(methods); i++) {
        CU_ASSERT_FATAL(rpc_server_add_method(ts->srv, &methods[i]) == MQ_OK);
    }
    CU_ASSERT_FATAL(rpc_server_start(ts->srv, &ts->port) == MQ_OK);
    CU_ASSERT_FATAL(ts->port > 0);
}

/* Joins the handler threads, then frees the server (if still there). */
static void t_srv_stop(t_srv_t *ts)
{
    /* Every call that spawns a thread has arrived by now. */
    pthread_mutex_lock(&ts->mu);
    int n = ts->nthreads;
    pthread_mutex_unlock(&ts->mu);
    for (int i = 0; i < n; i++) {
        pthread_join(ts->threads[i], NULL);
    }
    rpc_server_free(ts->srv);
    pthread_mutex_destroy(&ts->mu);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_errors), 0);
    atomic_store(&t_cb_errors, 0);
}

/* ------------------------------------------------------------ client side */

typedef struct t_cli {
    rpc_client_t *cl;
    rpc_channel_t *ch;
} t_cli_t;

static void t_cli_open(t_cli_t *tc, int port)
{
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    CU_ASSERT_FATAL(rpc_client_new(&tc->cl) == MQ_OK);
    CU_ASSERT_FATAL(rpc_channel_new(tc->cl, target, &tc->ch) == MQ_OK);
    CU_ASSERT_STRING_EQUAL(rpc_channel_target(tc->ch), target);
}

static void t_cli_close(t_cli_t *tc)
{
    rpc_channel_free(tc->ch);
    rpc_client_free(tc->cl);
}

static bool t_atomic_nonzero(void *arg)
{
    return atomic_load((atomic_int *)arg) != 0;
}

typedef struct t_int_at_least {
    atomic_int *v;
    int n;
} t_int_at_least_t;

static bool t_at_least(void *arg)
{
    t_int_at_least_t *c = arg;
    return atomic_load(c->v) >= c->n;
}

static void t_wait_at_least(atomic_int *v, int n)
{
    t_int_at_least_t c = {v, n};
    CU_ASSERT(mq_test_wait(t_at_least, &c, T_WAIT_MS));
}

/* A stream's client side: messages are "index (LE32) + payload". */
typedef struct t_stream {
    atomic_int nmsg;
    atomic_int bad;
    atomic_int ended;
    rpc_status_t status;
    char details[64];
    bool check_index;
    bool echo; /* bidi echo: message i is "m<i>" */
} t_stream_t;

static void t_stream_on_msg(const uint8_t *msg, size_t len, void *arg)
{
    t_stream_t *s = arg;
    int i = atomic_load(&s->nmsg);
    if (s->check_index && (len != 104 || mq_get_le32(msg) != (uint32_t)i)) {
        atomic_fetch_add(&s->bad, 1);
    }
    if (s->echo) {
        char want[32];
        int n = snprintf(want, sizeof(want), "m%d", i);
        if (len != (size_t)n || memcmp(msg, want, len) != 0) {
            atomic_fetch_add(&s->bad, 1);
        }
    }
    atomic_fetch_add(&s->nmsg, 1);
}

static void t_stream_on_end(rpc_status_t status, const char *details, void *arg)
{
    t_stream_t *s = arg;
    if (atomic_load(&s->ended)) {
        atomic_fetch_add(&s->bad, 1);
    }
    s->status = status;
    snprintf(s->details, sizeof(s->details), "%s", details ? details : "");
    atomic_store(&s->ended, 1);
}

/* ------------------------------------------------------------------ tests */

static void test_unary_echo_and_later(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);

    rpc_md_t md[] = {{"x-test", "v1"}};
    rpc_status_t st = RPC_UNKNOWN;
    uint8_t *resp = NULL;
    size_t len = 0;
    char details[64];
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Echo", md, 1, "abcdef", 6, 5000, &st, &resp,
                                           &len, details, sizeof(details)) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_OK);
    CU_ASSERT(len == 6 && memcmp(resp, "fedcba", 6) == 0);
    free(resp);
    CU_ASSERT_STRING_EQUAL(ts.hdr, "v1");
    CU_ASSERT_STRING_EQUAL(ts.method, "/t.T/Echo");
    CU_ASSERT(strncmp(ts.peer, "ipv4:127.0.0.1:", 15) == 0);
    long long rem = atomic_load(&ts.remaining);
    /* gRPC sends the timeout rounded up, and the server counts it from
     * arrival: a little over 5000 is right too. */
    CU_ASSERT(rem > 1000 && rem <= 5100);
    if (!(rem > 1000 && rem <= 5100)) {
        fprintf(stderr, "remaining_ms=%lld\n", rem);
    }

    /* Without a timeout the server sees no deadline; an empty message is
     * still a message. */
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Echo", md, 1, "", 0, 0, &st, &resp, &len,
                                           NULL, 0) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_OK);
    CU_ASSERT_EQUAL(len, 0);
    free(resp);
    CU_ASSERT_EQUAL(atomic_load(&ts.remaining), INT64_MAX);

    /* Answered later, from a thread that is not a cq thread. */
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Later", NULL, 0, "later", 5, 5000, &st,
                                           &resp, &len, NULL, 0) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_OK);
    CU_ASSERT(len == 5 && memcmp(resp, "later", 5) == 0);
    free(resp);

    /* Bad metadata is refused before anything starts. */
    rpc_md_t bad[] = {{"Bad Key", "v"}};
    CU_ASSERT_EQUAL(
        rpc_channel_unary_sync(tc.ch, "/t.T/Echo", bad, 1, "a", 1, 0, &st, &resp, &len, NULL, 0),
        MQ_EINVAL);

    t_cli_close(&tc);
    t_srv_stop(&ts);
    /* The replying thread is joined now. */
    CU_ASSERT(atomic_load(&ts.later_replied) == 1 && atomic_load(&ts.later_err) == MQ_OK);
    CU_ASSERT_EQUAL(atomic_load(&ts.done), 3);
    CU_ASSERT_EQUAL(atomic_load(&ts.done_cancelled), 0);
}

static void test_big_messages(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    uint8_t *req = malloc(T_BIG);
    t_fill(req, T_BIG, 1);
    rpc_status_t st = RPC_UNKNOWN;
    uint8_t *resp = NULL;
    size_t len = 0;
    char details[64] = "";
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Big", NULL, 0, req, T_BIG, 20000, &st,
                                           &resp, &len, details, sizeof(details)) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_OK);
    if (st != RPC_OK) {
        fprintf(stderr, "big: %s %s\n", rpc_status_name(st), details);
    }
    t_fill(req, T_BIG, 2);
    CU_ASSERT(len == T_BIG && resp && memcmp(resp, req, T_BIG) == 0);
    free(resp);
    free(req);
    t_cli_close(&tc);
    t_srv_stop(&ts);
}

static void test_server_stream(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    t_stream_t s;
    memset(&s, 0, sizeof(s));
    s.check_index = true;
    CU_ASSERT_FATAL(rpc_channel_server_stream(tc.ch, "/t.T/Stream", NULL, 0, "go", 2, 20000,
                                              t_stream_on_msg, t_stream_on_end, &s) == MQ_OK);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &s.ended, T_WAIT_MS));
    CU_ASSERT_EQUAL(s.status, RPC_OK);
    CU_ASSERT_EQUAL(atomic_load(&s.nmsg), T_STREAM_N);
    CU_ASSERT_EQUAL(atomic_load(&s.bad), 0);
    t_cli_close(&tc);
    t_srv_stop(&ts);
    CU_ASSERT_EQUAL(atomic_load(&ts.stream_err), 0);
    CU_ASSERT_EQUAL(atomic_load(&ts.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.done_cancelled), 0);
}

static void test_bidi_echo(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 2);
    t_cli_open(&tc, ts.port);
    t_stream_t s;
    memset(&s, 0, sizeof(s));
    s.echo = true;
    rpc_bidi_t *bidi;
    rpc_md_t md[] = {{"x-test", "bidi"}};
    CU_ASSERT_FATAL(rpc_channel_bidi(tc.ch, "/t.T/Bidi", md, 1, 20000, t_stream_on_msg,
                                     t_stream_on_end, &s, &bidi) == MQ_OK);
    for (int i = 0; i < T_BIDI_N; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "m%d", i);
        CU_ASSERT(rpc_bidi_write(bidi, m, (size_t)n) == MQ_OK);
    }
    /* Everything echoed before the half-close, which ends the call. */
    t_wait_at_least(&s.nmsg, T_BIDI_N);
    CU_ASSERT_EQUAL(atomic_load(&ts.bidi_half_closed), 0);
    CU_ASSERT(rpc_bidi_half_close(bidi) == MQ_OK);
    CU_ASSERT(rpc_bidi_write(bidi, "late", 4) == MQ_ECLOSED);
    CU_ASSERT(rpc_bidi_half_close(bidi) == MQ_ECLOSED);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &s.ended, T_WAIT_MS));
    CU_ASSERT_EQUAL(s.status, RPC_OK);
    CU_ASSERT_EQUAL(atomic_load(&s.nmsg), T_BIDI_N);
    CU_ASSERT_EQUAL(atomic_load(&s.bad), 0);
    CU_ASSERT_EQUAL(atomic_load(&ts.bidi_msgs), T_BIDI_N);
    CU_ASSERT_EQUAL(atomic_load(&ts.bidi_half_closed), 1);
    rpc_bidi_free(bidi);
    t_wait_at_least(&ts.done, 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.done_cancelled), 0);
    t_cli_close(&tc);
    t_srv_stop(&ts);
}

static void test_unknown_method(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    rpc_status_t st = RPC_OK;
    uint8_t *resp = (uint8_t *)"junk";
    size_t len = 7;
    char details[128] = "";
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Nope", NULL, 0, "x", 1, 5000, &st, &resp,
                                           &len, details, sizeof(details)) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_UNIMPLEMENTED);
    CU_ASSERT(resp == NULL && len == 0);
    CU_ASSERT(strstr(details, "/t.T/Nope") != NULL);
    /* A server stream to an unknown method too. */
    t_stream_t s;
    memset(&s, 0, sizeof(s));
    CU_ASSERT_FATAL(rpc_channel_server_stream(tc.ch, "/other.Svc/X", NULL, 0, "x", 1, 5000,
                                              t_stream_on_msg, t_stream_on_end, &s) == MQ_OK);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &s.ended, T_WAIT_MS));
    CU_ASSERT_EQUAL(s.status, RPC_UNIMPLEMENTED);
    CU_ASSERT_EQUAL(atomic_load(&s.nmsg), 0);
    t_cli_close(&tc);
    t_srv_stop(&ts);
    /* The server answered them itself: no on_done. */
    CU_ASSERT_EQUAL(atomic_load(&ts.done), 0);
}

static void test_error_status(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    rpc_status_t st = RPC_OK;
    uint8_t *resp = NULL;
    size_t len = 0;
    char details[64] = "";
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Fail", NULL, 0, "x", 1, 5000, &st, &resp,
                                           &len, details, sizeof(details)) == MQ_OK);
    CU_ASSERT_EQUAL(st, RPC_INVALID_ARGUMENT);
    CU_ASSERT_STRING_EQUAL(details, "bad");
    CU_ASSERT(resp == NULL);
    t_cli_close(&tc);
    t_srv_stop(&ts);
    CU_ASSERT_EQUAL(atomic_load(&ts.done), 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.done_cancelled), 0);
}

static void test_deadline(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    rpc_status_t st = RPC_OK;
    uint8_t *resp = NULL;
    size_t len = 0;
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_FATAL(rpc_channel_unary_sync(tc.ch, "/t.T/Hold", NULL, 0, "x", 1, 200, &st, &resp,
                                           &len, NULL, 0) == MQ_OK);
    uint64_t took = mq_now_ms() - t0;
    CU_ASSERT_EQUAL(st, RPC_DEADLINE_EXCEEDED);
    CU_ASSERT(took >= 150 && took < 5000);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ts.held_set, T_WAIT_MS));
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ts.held_done, T_WAIT_MS));
    CU_ASSERT_EQUAL(atomic_load(&ts.held_cancelled), 1);
    CU_ASSERT(rpc_call_over(ts.held));
    CU_ASSERT_EQUAL(rpc_call_reply(ts.held, "late", 4), MQ_ECLOSED);
    CU_ASSERT_EQUAL(rpc_call_finish(ts.held, RPC_OK, NULL), MQ_ECLOSED);
    CU_ASSERT(rpc_call_remaining_ms(ts.held) <= 200);
    CU_ASSERT_STRING_EQUAL(rpc_call_method(ts.held), "/t.T/Hold");
    t_cli_close(&tc);
    t_srv_stop(&ts);
    /* A reference kept past the server: still a valid, closed call. */
    CU_ASSERT_EQUAL(rpc_call_reply(ts.held, "later", 5), MQ_ECLOSED);
    rpc_call_unref(ts.held);
}

typedef struct t_conc {
    rpc_channel_t *ch;
    int id;
    atomic_int *ok;
    atomic_int *bad;
    atomic_int *done;
    atomic_int *start_err;
} t_conc_t;

static void t_conc_cb(rpc_status_t status, const char *details, const uint8_t *resp, size_t len,
                      void *arg)
{
    MQ_UNUSED(details);
    t_conc_t *c = arg;
    /* The request was "id (BE32) seq"; the echo is reversed. */
    if (status == RPC_OK && len == 8 && mq_get_le32(resp + 4) == (uint32_t)c->id) {
        atomic_fetch_add(c->ok, 1);
    } else {
        atomic_fetch_add(c->bad, 1);
    }
    atomic_fetch_add(c->done, 1);
}

static void *t_conc_thread(void *arg)
{
    t_conc_t *c = arg;
    for (uint32_t i = 0; i < T_CONC_PER_THREAD; i++) {
        uint8_t req[8];
        mq_put_be32(req, (uint32_t)c->id);
        mq_put_le32(req + 4, i);
        if (rpc_channel_unary(c->ch, "/t.T/Echo", NULL, 0, req, sizeof(req), 30000, t_conc_cb, c) !=
            MQ_OK) {
            atomic_fetch_add(c->start_err, 1);
        }
    }
    return NULL;
}

static void test_concurrent_unary(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 2);
    t_cli_open(&tc, ts.port);
    atomic_int ok = 0, bad = 0, done = 0, start_err = 0;
    t_conc_t c[T_CONC_THREADS];
    pthread_t th[T_CONC_THREADS];
    for (int i = 0; i < T_CONC_THREADS; i++) {
        c[i] = (t_conc_t){tc.ch, i, &ok, &bad, &done, &start_err};
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, t_conc_thread, &c[i]) == 0);
    }
    for (int i = 0; i < T_CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    t_wait_at_least(&done, T_CONC_THREADS * T_CONC_PER_THREAD - atomic_load(&start_err));
    CU_ASSERT_EQUAL(atomic_load(&start_err), 0);
    CU_ASSERT_EQUAL(atomic_load(&bad), 0);
    CU_ASSERT_EQUAL(atomic_load(&ok), T_CONC_THREADS * T_CONC_PER_THREAD);
    t_cli_close(&tc);
    t_srv_stop(&ts);
    CU_ASSERT_EQUAL(atomic_load(&ts.done), T_CONC_THREADS * T_CONC_PER_THREAD);
}

static void test_server_free_with_open_streams(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 2);
    t_cli_open(&tc, ts.port);
    t_stream_t ss, bs;
    memset(&ss, 0, sizeof(ss));
    memset(&bs, 0, sizeof(bs));
    rpc_bidi_t *bidi;
    CU_ASSERT_FATAL(rpc_channel_server_stream(tc.ch, "/t.T/OpenStream", NULL, 0, "x", 1, 0,
                                              t_stream_on_msg, t_stream_on_end, &ss) == MQ_OK);
    CU_ASSERT_FATAL(rpc_channel_bidi(tc.ch, "/t.T/OpenBidi", NULL, 0, 0, t_stream_on_msg,
                                     t_stream_on_end, &bs, &bidi) == MQ_OK);
    CU_ASSERT(rpc_bidi_write(bidi, "x", 1) == MQ_OK);
    /* Both calls are established: each client got the server's first
     * message. */
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ss.nmsg, T_WAIT_MS));
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &bs.nmsg, T_WAIT_MS));
    CU_ASSERT_EQUAL(atomic_load(&ts.open_calls), 2);

    t_srv_stop(&ts);
    /* free returned only after every on_done ran. */
    CU_ASSERT_EQUAL(atomic_load(&ts.done), 2);
    CU_ASSERT_EQUAL(atomic_load(&ts.done_cancelled), 2);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ss.ended, T_WAIT_MS));
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &bs.ended, T_WAIT_MS));
    CU_ASSERT_NOT_EQUAL(ss.status, RPC_OK);
    CU_ASSERT_NOT_EQUAL(bs.status, RPC_OK);
    CU_ASSERT(rpc_bidi_write(bidi, "y", 1) == MQ_ECLOSED);
    rpc_bidi_free(bidi);
    t_cli_close(&tc);
}

typedef struct t_cancelled {
    atomic_int called;
    rpc_status_t status;
} t_cancelled_t;

static void t_cancelled_cb(rpc_status_t status, const char *details, const uint8_t *resp,
                           size_t len, void *arg)
{
    MQ_UNUSED(details);
    MQ_UNUSED(resp);
    MQ_UNUSED(len);
    t_cancelled_t *c = arg;
    c->status = status;
    atomic_fetch_add(&c->called, 1);
}

static void test_channel_free_cancels(void)
{
    t_srv_t ts;
    t_cli_t tc;
    t_srv_start(&ts, 1);
    t_cli_open(&tc, ts.port);
    t_cancelled_t c;
    memset(&c, 0, sizeof(c));
    t_stream_t bs;
    memset(&bs, 0, sizeof(bs));
    rpc_bidi_t *bidi;
    CU_ASSERT_FATAL(rpc_channel_unary(tc.ch, "/t.T/Hold", NULL, 0, "x", 1, 0, t_cancelled_cb, &c) ==
                    MQ_OK);
    CU_ASSERT_FATAL(rpc_channel_bidi(tc.ch, "/t.T/OpenBidi", NULL, 0, 0, t_stream_on_msg,
                                     t_stream_on_end, &bs, &bidi) == MQ_OK);
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ts.held_set, T_WAIT_MS));
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &bs.nmsg, T_WAIT_MS));
    rpc_channel_free(tc.ch);
    /* Every callback ran before free returned. */
    CU_ASSERT_EQUAL(atomic_load(&c.called), 1);
    CU_ASSERT_EQUAL(c.status, RPC_CANCELLED);
    CU_ASSERT_EQUAL(atomic_load(&bs.ended), 1);
    CU_ASSERT_EQUAL(bs.status, RPC_CANCELLED);
    rpc_bidi_free(bidi);
    rpc_client_free(tc.cl);
    /* The server sees the cancel too. */
    CU_ASSERT_FATAL(mq_test_wait(t_atomic_nonzero, &ts.held_done, T_WAIT_MS));
    CU_ASSERT_EQUAL(atomic_load(&ts.held_cancelled), 1);
    rpc_call_unref(ts.held);
    t_srv_stop(&ts);
}

static void test_bind_failure_and_unstarted(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 1);
    rpc_server_conf_t conf;
    rpc_server_conf_default(&conf);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ts.port);
    conf.addr = addr;
    rpc_server_t *srv2;
    CU_ASSERT_FATAL(rpc_server_new(&conf, &srv2) == MQ_OK);
    CU_ASSERT_EQUAL(rpc_server_start(srv2, NULL), MQ_EIO);
    rpc_server_free(srv2);
    /* Never started at all. */
    CU_ASSERT_FATAL(rpc_server_new(&conf, &srv2) == MQ_OK);
    rpc_method_t m = {"/t.T/Echo", RPC_KIND_UNARY, t_echo_on_call, NULL, NULL, NULL};
    CU_ASSERT(rpc_server_add_method(srv2, &m) == MQ_OK);
    CU_ASSERT(rpc_server_add_method(srv2, &m) == MQ_EEXIST);
    rpc_method_t bad = {"/t.T/B", RPC_KIND_BIDI, t_echo_on_call, NULL, NULL, NULL};
    CU_ASSERT(rpc_server_add_method(srv2, &bad) == MQ_EINVAL);
    rpc_server_free(srv2);
    t_srv_stop(&ts);
}

static void test_status_names(void)
{
    static const char *const want[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    for (int i = RPC_OK; i <= RPC_UNAUTHENTICATED; i++) {
        CU_ASSERT_STRING_EQUAL(rpc_status_name((rpc_status_t)i), want[i]);
    }
    CU_ASSERT_STRING_EQUAL(rpc_status_name((rpc_status_t)17), "INVALID_STATUS");
    CU_ASSERT_STRING_EQUAL(rpc_status_name((rpc_status_t)-1), "INVALID_STATUS");
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"unary echo, and a reply from another thread", test_unary_echo_and_later},
        {"5 MiB request and response", test_big_messages},
        {"server stream of 1000 written from another thread", test_server_stream},
        {"bidi echo with client half-close", test_bidi_echo},
        {"unknown method is UNIMPLEMENTED", test_unknown_method},
        {"error status with details", test_error_status},
        {"client deadline cancels the server call", test_deadline},
        {"8 threads x 2000 concurrent unary calls", test_concurrent_unary},
        {"server freed under open streams", test_server_free_with_open_streams},
        {"channel free cancels its calls", test_channel_free_cancels},
        {"bind failure, unstarted server", test_bind_failure_and_unstarted},
        {"status names", test_status_names},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("rpc", tests, NULL, NULL);
}
