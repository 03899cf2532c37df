/*
 * mq_net client against an mq_net server (each on its own loop): round trips
 * with meta and data (empty, 4 MiB, borrowed bytes, a host name), 10 000
 * pipelined requests answered out of order, requests from 4 threads at once,
 * oversize frames both ways, unknown response ids, request timeouts of mixed
 * values, no listener (fast failure, faster during backoff), a server
 * restarted on the same port, a connection lost with requests in flight,
 * free with requests pending, and a throughput run that prints its rate.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mq_net.h"
#include "mq_test.h"
#include "mq_util.h"

/* CUnit is not thread-safe: loop-thread callbacks count failures here and
 * the test thread asserts on the count. */
static atomic_int t_cb_failures;
#define T_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            atomic_fetch_add(&t_cb_failures, 1);                                                   \
            fprintf(stderr, "callback check failed %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                          \
    } while (0)

/* --- the server ----------------------------------------------------------- */

#define T_REV_BATCH 100

typedef struct t_held {
    uint64_t rid;
    mq_slice_t data;
} t_held_t;

typedef struct t_srv {
    mq_net_loop_t *loop;
    mq_net_server_t *srv;
    int port;
    atomic_int frames;
    atomic_int opens;
    atomic_int closes;
    atomic_int held;
    atomic_int oversize;
    atomic_uint_fast64_t oversize_rid;
    atomic_size_t oversize_len;
    /* @locality server loop */
    t_held_t rev[T_REV_BATCH];
    int nrev;
    mq_net_conn_t *hold_conn;
} t_srv_t;

static bool t_meta_is(const mq_net_frame_t *f, const char *s)
{
    size_t n = strlen(s);
    return f->meta.len == n && memcmp(f->meta.ptr, s, n) == 0;
}

static void t_srv_on_open(mq_net_conn_t *conn, void *arg)
{
    t_srv_t *ts = arg;
    MQ_UNUSED(conn);
    atomic_fetch_add(&ts->opens, 1);
}

static void t_srv_on_frame(mq_net_conn_t *conn, const mq_net_frame_t *f, void *arg)
{
    t_srv_t *ts = arg;
    atomic_fetch_add(&ts->frames, 1);
    if (t_meta_is(f, "rev")) {
        /* Keep a batch, then answer it last to first. */
        ts->rev[ts->nrev].rid = f->request_id;
        ts->rev[ts->nrev].data = mq_slice_dup(&f->data);
        if (++ts->nrev == T_REV_BATCH) {
            for (int i = T_REV_BATCH - 1; i >= 0; i--) {
                T_CHECK(mq_net_conn_send(conn, ts->rev[i].rid, "rev", 3, &ts->rev[i].data) ==
                        MQ_OK);
                mq_slice_release(&ts->rev[i].data);
            }
            ts->nrev = 0;
        }
        return;
    }
    if (t_meta_is(f, "hold")) {
        if (ts->hold_conn != conn) {
            mq_net_conn_unref(ts->hold_conn);
            ts->hold_conn = mq_net_conn_ref(conn);
        }
        atomic_fetch_add(&ts->held, 1);
        return;
    }
    if (t_meta_is(f, "bogus")) {
        /* An id nobody asked for, then the real answer. */
        T_CHECK(mq_net_conn_send(conn, f->request_id + 1000000, "bogus", 5, NULL) == MQ_OK);
    }
    T_CHECK(mq_net_conn_send(conn, f->request_id, f->meta.ptr, f->meta.len, &f->data) == MQ_OK);
}

static void t_srv_on_oversize(mq_net_conn_t *conn, uint64_t request_id, size_t frame_len, void *arg)
{
    t_srv_t *ts = arg;
    atomic_store(&ts->oversize_rid, request_id);
    atomic_store(&ts->oversize_len, frame_len);
    atomic_fetch_add(&ts->oversize, 1);
    T_CHECK(mq_net_conn_send(conn, request_id, "oversize", 8, NULL) == MQ_OK);
}

static void t_srv_on_close(mq_net_conn_t *conn, void *arg)
{
    t_srv_t *ts = arg;
    MQ_UNUSED(conn);
    atomic_fetch_add(&ts->closes, 1);
}

static const mq_net_server_cbs_t t_srv_cbs = {t_srv_on_open, t_srv_on_frame, t_srv_on_oversize,
                                              t_srv_on_close};

static void t_srv_start(t_srv_t *ts, int port, const mq_net_opts_t *opts)
{
    memset(ts, 0, sizeof(*ts));
    ts->loop = mq_net_loop_new("tsrv");
    mq_err_t err = mq_net_server_new(ts->loop, "127.0.0.1", port, opts, &t_srv_cbs, ts, &ts->srv);
    CU_ASSERT_EQUAL_FATAL(err, MQ_OK);
    ts->port = mq_net_server_port(ts->srv);
}

static void t_srv_release_task(void *arg)
{
    t_srv_t *ts = arg;
    for (int i = 0; i < ts->nrev; i++) {
        mq_slice_release(&ts->rev[i].data);
    }
    ts->nrev = 0;
    mq_net_conn_unref(ts->hold_conn);
    ts->hold_conn = NULL;
}

static void t_srv_stop(t_srv_t *ts)
{
    mq_net_server_free(ts->srv);
    mq_net_loop_run_sync(ts->loop, t_srv_release_task, ts);
    mq_net_loop_free(ts->loop);
    CU_ASSERT_EQUAL(atomic_load(&ts->opens), atomic_load(&ts->closes));
}

/* --- calls ---------------------------------------------------------------- */

typedef struct t_call {
    atomic_int calls;
    mq_err_t err;
    uint64_t rid;
    uint64_t at_ms;
    int order;
    /* What the response must carry, when emeta is set. */
    const void *emeta;
    size_t emeta_len;
    const void *edata;
    size_t edata_len;
    bool match;
} t_call_t;

static atomic_int t_order;

static void t_call_cb(mq_err_t err, const mq_net_frame_t *resp, void *arg)
{
    t_call_t *c = arg;
    c->err = err;
    c->at_ms = mq_now_ms();
    c->order = atomic_fetch_add(&t_order, 1);
    T_CHECK((err == MQ_OK) == (resp != NULL));
    if (resp) {
        c->rid = resp->request_id;
        c->match = resp->meta.len == c->emeta_len && resp->data.len == c->edata_len &&
                   (c->emeta_len == 0 || memcmp(resp->meta.ptr, c->emeta, c->emeta_len) == 0) &&
                   (c->edata_len == 0 || memcmp(resp->data.ptr, c->edata, c->edata_len) == 0);
    }
    atomic_fetch_add(&c->calls, 1);
}

static bool t_called(void *arg)
{
    t_call_t *c = arg;
    return atomic_load(&c->calls) > 0;
}

/* Sends one request and waits for its callback; returns the error. */
static mq_err_t t_call(mq_net_client_t *cl, t_call_t *c, const char *meta, const mq_slice_t *data,
                       uint32_t timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->emeta = meta;
    c->emeta_len = strlen(meta);
    c->edata = data ? data->ptr : NULL;
    c->edata_len = data ? data->len : 0;
    mq_err_t err = mq_net_client_request(cl, meta, strlen(meta), data, timeout_ms, t_call_cb, c);
    if (err != MQ_OK) {
        return err;
    }
    CU_ASSERT_TRUE(mq_test_wait(t_called, c, 15000));
    CU_ASSERT_EQUAL(atomic_load(&c->calls), 1);
    return c->err;
}

typedef struct t_count_arg {
    atomic_int *v;
    int want;
} t_count_arg_t;

static bool t_count_reached(void *arg)
{
    t_count_arg_t *c = arg;
    return atomic_load(c->v) >= c->want;
}

static bool t_wait_count(atomic_int *v, int want, uint32_t timeout_ms)
{
    t_count_arg_t c = {v, want};
    return mq_test_wait(t_count_reached, &c, timeout_ms);
}

static mq_buf_t *t_pattern(size_t n, uint32_t seed)
{
    mq_buf_t *b = mq_buf_new(n);
    uint64_t r = seed;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            r = mq_mix64(r);
        }
        b->data[i] = (uint8_t)(r >> (8 * (i % 8)));
    }
    b->len = n;
    return b;
}

/* --- tests ---------------------------------------------------------------- */

static void test_round_trip(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    CU_ASSERT_FALSE(mq_net_client_connected(cl));
    t_call_t c;

    mq_buf_t *small = t_pattern(100, 1);
    mq_slice_t s = mq_slice_of(small, 0, small->len);
    CU_ASSERT_EQUAL(t_call(cl, &c, "hello", &s, 5000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_TRUE(mq_net_client_connected(cl));
    mq_slice_release(&s);

    CU_ASSERT_EQUAL(t_call(cl, &c, "no-data", NULL, 5000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_EQUAL(t_call(cl, &c, "", NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(c.match);

    /* 4 MiB of data, well above the read buffer. */
    mq_buf_t *big = t_pattern(4u * 1024 * 1024, 2);
    s = mq_slice_of(big, 0, big->len);
    CU_ASSERT_EQUAL(t_call(cl, &c, "big-one", &s, 15000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    mq_slice_release(&s);

    /* Bytes without a buffer: copied by the request, ours again at once. */
    char stack[32];
    memcpy(stack, "borrowed bytes, not a buffer", 29);
    mq_slice_t raw = {NULL, (const uint8_t *)stack, 29};
    memset(&c, 0, sizeof(c));
    c.emeta = "raw";
    c.emeta_len = 3;
    c.edata = "borrowed bytes, not a buffer";
    c.edata_len = 29;
    CU_ASSERT_EQUAL(mq_net_client_request(cl, "raw", 3, &raw, 5000, t_call_cb, &c), MQ_OK);
    memset(stack, 0, sizeof(stack));
    CU_ASSERT_TRUE(mq_test_wait(t_called, &c, 5000));
    CU_ASSERT_EQUAL(c.err, MQ_OK);
    CU_ASSERT_TRUE(c.match);

    /* Refused up front: no callback. */
    CU_ASSERT_EQUAL(mq_net_client_request(cl, "x", 1, NULL, 0, NULL, NULL), MQ_EINVAL);
    static uint8_t huge_meta[MQ_NET_MAX_META + 1];
    CU_ASSERT_EQUAL(mq_net_client_request(cl, huge_meta, sizeof(huge_meta), NULL, 0, t_call_cb, &c),
                    MQ_EINVAL);
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 0);
    mq_net_client_free(cl);

    /* A host name, resolved at connect time. */
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "localhost", ts.port, NULL, &cl), MQ_OK);
    CU_ASSERT_EQUAL(t_call(cl, &c, "by-name", NULL, 5000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    mq_net_client_free(cl);
    CU_ASSERT_EQUAL(mq_net_client_new(cloop, "", ts.port, NULL, &cl), MQ_EINVAL);
    CU_ASSERT_EQUAL(mq_net_client_new(cloop, "127.0.0.1", 0, NULL, &cl), MQ_EINVAL);

    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    mq_buf_unref(small);
    mq_buf_unref(big);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

#define T_PIPELINE 10000

typedef struct t_item {
    t_call_t call;
    mq_buf_t *data;
} t_item_t;

static void test_pipelined_out_of_order(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    t_item_t *items = calloc(T_PIPELINE, sizeof(*items));
    atomic_store(&t_order, 0);
    for (int i = 0; i < T_PIPELINE; i++) {
        items[i].data = mq_buf_new(8 + (size_t)(i % 50));
        mq_put_be64(items[i].data->data, (uint64_t)i);
        memset(items[i].data->data + 8, i & 0xff, (size_t)(i % 50));
        items[i].data->len = 8 + (size_t)(i % 50);
        items[i].call.emeta = "rev";
        items[i].call.emeta_len = 3;
        items[i].call.edata = items[i].data->data;
        items[i].call.edata_len = items[i].data->len;
        mq_slice_t s = {items[i].data, items[i].data->data, items[i].data->len};
        CU_ASSERT_EQUAL(mq_net_client_request(cl, "rev", 3, &s, 30000, t_call_cb, &items[i].call),
                        MQ_OK);
    }
    for (int i = 0; i < T_PIPELINE; i++) {
        CU_ASSERT_TRUE(mq_test_wait(t_called, &items[i].call, 30000));
    }
    int wrong = 0;
    int reversed = 0;
    uint64_t *rids = malloc(T_PIPELINE * sizeof(*rids));
    for (int i = 0; i < T_PIPELINE; i++) {
        t_call_t *c = &items[i].call;
        wrong += atomic_load(&c->calls) != 1 || c->err != MQ_OK || !c->match;
        if (i > 0 && c->order < items[i - 1].call.order) {
            reversed++;
        }
        rids[i] = c->rid;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    /* Answered last to first within each batch of 100. */
    CU_ASSERT_TRUE(reversed >= T_PIPELINE / 2);
    /* Every request had its own id. */
    int dup = 0;
    for (int i = 1; i < T_PIPELINE; i++) {
        dup += rids[i] == rids[i - 1];
    }
    CU_ASSERT_EQUAL(dup, 0);
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 0);
    CU_ASSERT_EQUAL(atomic_load(&ts.opens), 1);
    mq_net_client_free(cl);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    for (int i = 0; i < T_PIPELINE; i++) {
        mq_buf_unref(items[i].data);
    }
    free(rids);
    free(items);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

#define T_THREADS 4
#define T_PER_THREAD 5000

typedef struct t_worker {
    mq_net_client_t *cl;
    int id;
    t_item_t *items;
    int refused;
} t_worker_t;

static void *t_worker_run(void *arg)
{
    t_worker_t *w = arg;
    for (int i = 0; i < T_PER_THREAD; i++) {
        t_item_t *it = &w->items[i];
        it->data = mq_buf_new(16);
        mq_put_be64(it->data->data, (uint64_t)w->id);
        mq_put_be64(it->data->data + 8, (uint64_t)i);
        it->data->len = 16;
        it->call.emeta = "mt";
        it->call.emeta_len = 2;
        it->call.edata = it->data->data;
        it->call.edata_len = 16;
        mq_slice_t s = mq_slice_of(it->data, 0, 16);
        if (mq_net_client_request(w->cl, "mt", 2, &s, 30000, t_call_cb, &it->call) != MQ_OK) {
            w->refused++;
        }
        mq_slice_release(&s);
    }
    return NULL;
}

static void test_concurrent_threads(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    pthread_t th[T_THREADS];
    t_worker_t w[T_THREADS];
    for (int t = 0; t < T_THREADS; t++) {
        w[t].cl = cl;
        w[t].id = t;
        w[t].items = calloc(T_PER_THREAD, sizeof(t_item_t));
        w[t].refused = 0;
        pthread_create(&th[t], NULL, t_worker_run, &w[t]);
    }
    for (int t = 0; t < T_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    int wrong = 0;
    for (int t = 0; t < T_THREADS; t++) {
        CU_ASSERT_EQUAL(w[t].refused, 0);
        for (int i = 0; i < T_PER_THREAD; i++) {
            t_call_t *c = &w[t].items[i].call;
            CU_ASSERT_TRUE(mq_test_wait(t_called, c, 30000));
            wrong += atomic_load(&c->calls) != 1 || c->err != MQ_OK || !c->match;
        }
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(atomic_load(&ts.frames), T_THREADS * T_PER_THREAD);
    mq_net_client_free(cl);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    for (int t = 0; t < T_THREADS; t++) {
        for (int i = 0; i < T_PER_THREAD; i++) {
            mq_buf_unref(w[t].items[i].data);
        }
        free(w[t].items);
    }
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

static void test_oversize(void)
{
    mq_net_opts_t so;
    mq_net_opts_default(&so);
    so.max_frame = 64 * 1024;
    so.max_frame_hard = 1024 * 1024;
    t_srv_t ts;
    t_srv_start(&ts, 0, &so);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    t_call_t c;

    /* Request above the server's max_frame: answered by id from on_oversize. */
    mq_buf_t *big = t_pattern(100 * 1024, 3);
    mq_slice_t s = mq_slice_of(big, 0, big->len);
    memset(&c, 0, sizeof(c));
    c.emeta = "oversize";
    c.emeta_len = 8;
    CU_ASSERT_EQUAL(mq_net_client_request(cl, "too-big", 7, &s, 5000, t_call_cb, &c), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_called, &c, 5000));
    CU_ASSERT_EQUAL(c.err, MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize), 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize_rid), c.rid);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize_len), 12 + 7 + 100 * 1024);
    mq_slice_release(&s);
    /* The same connection carries on. */
    CU_ASSERT_EQUAL(t_call(cl, &c, "after", NULL, 5000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_EQUAL(atomic_load(&ts.opens), 1);
    mq_net_client_free(cl);

    /* A response above the client's max_frame fails that request only. */
    mq_net_client_opts_t co;
    mq_net_client_opts_default(&co);
    co.net.max_frame = 1024;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, &co, &cl), MQ_OK);
    mq_buf_t *mid = t_pattern(4000, 4);
    s = mq_slice_of(mid, 0, mid->len);
    /* The request itself (below the client's hard limit) is fine to send. */
    CU_ASSERT_EQUAL(t_call(cl, &c, "echo-back", &s, 5000), MQ_ETOOLARGE);
    mq_slice_release(&s);
    CU_ASSERT_EQUAL(t_call(cl, &c, "small", NULL, 5000), MQ_OK);
    CU_ASSERT_EQUAL(atomic_load(&ts.opens), 2);
    mq_net_client_free(cl);

    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    mq_buf_unref(big);
    mq_buf_unref(mid);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

static void test_timeouts_and_unknown_ids(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    t_call_t c;

    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(t_call(cl, &c, "hold", NULL, 200), MQ_ETIMEDOUT);
    CU_ASSERT_TRUE(c.at_ms - t0 >= 200);
    CU_ASSERT_TRUE(c.at_ms - t0 < 3000);

    /* Mixed timeouts expire by deadline, not by submission order; a request
     * without a timeout stays. */
    t_call_t m[4];
    memset(m, 0, sizeof(m));
    uint32_t tmo[4] = {300, 100, 200, 0};
    atomic_store(&t_order, 0);
    t0 = mq_now_ms();
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(mq_net_client_request(cl, "hold", 4, NULL, tmo[i], t_call_cb, &m[i]),
                        MQ_OK);
    }
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_TRUE(mq_test_wait(t_called, &m[i], 5000));
        CU_ASSERT_EQUAL(m[i].err, MQ_ETIMEDOUT);
        CU_ASSERT_TRUE(m[i].at_ms - t0 >= tmo[i]);
    }
    CU_ASSERT_EQUAL(m[1].order, 0);
    CU_ASSERT_EQUAL(m[2].order, 1);
    CU_ASSERT_EQUAL(m[0].order, 2);
    CU_ASSERT_EQUAL(atomic_load(&m[3].calls), 0);
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 1);

    /* A response with an id nobody waits for is dropped; the real one is
     * matched. */
    CU_ASSERT_EQUAL(t_call(cl, &c, "bogus", NULL, 5000), MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_EQUAL(t_call(cl, &c, "fine", NULL, 5000), MQ_OK);

    mq_net_client_free(cl);
    CU_ASSERT_EQUAL(atomic_load(&m[3].calls), 1);
    CU_ASSERT_EQUAL(m[3].err, MQ_ECLOSED);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

static int t_unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_no_listener(void)
{
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_opts_t co;
    mq_net_client_opts_default(&co);
    co.backoff_min_ms = 3000;
    co.backoff_max_ms = 6000;
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", t_unused_port(), &co, &cl), MQ_OK);
    t_call_t c;
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(t_call(cl, &c, "anyone", NULL, 10000), MQ_ECONN);
    CU_ASSERT_TRUE(c.at_ms - t0 < 1000);
    /* In backoff: fails without trying. */
    t0 = mq_now_ms();
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(t_call(cl, &c, "again", NULL, 10000), MQ_ECONN);
    }
    CU_ASSERT_TRUE(c.at_ms - t0 < 500);
    CU_ASSERT_FALSE(mq_net_client_connected(cl));
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 0);
    mq_net_client_free(cl);
    mq_net_loop_free(cloop);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

/* A listener whose accept queue is full: Linux drops further SYNs, so a
 * connect hangs until our connect timeout gives up on it. */
static void test_connect_timeout(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(listen(lfd, 0) == 0);
    socklen_t len = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | (i ? SOCK_NONBLOCK : 0), 0);
        int rc = connect(fill[i], (struct sockaddr *)&a, sizeof(a));
        MQ_UNUSED(rc);
    }
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_opts_t co;
    mq_net_client_opts_default(&co);
    co.connect_timeout_ms = 300;
    co.backoff_min_ms = 50;
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ntohs(a.sin_port), &co, &cl),
                          MQ_OK);
    t_call_t c;
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(t_call(cl, &c, "stuck", NULL, 10000), MQ_ECONN);
    CU_ASSERT_TRUE(c.at_ms - t0 >= 300);
    CU_ASSERT_TRUE(c.at_ms - t0 < 5000);
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 0);
    mq_net_client_free(cl);
    mq_net_loop_free(cloop);
    for (int i = 0; i < 3; i++) {
        close(fill[i]);
    }
    close(lfd);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

static bool t_disconnected(void *arg)
{
    return !mq_net_client_connected(arg);
}

static void test_server_restart(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    int port = ts.port;
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_opts_t co;
    mq_net_client_opts_default(&co);
    co.backoff_min_ms = 50;
    co.backoff_max_ms = 200;
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", port, &co, &cl), MQ_OK);
    t_call_t c;
    CU_ASSERT_EQUAL(t_call(cl, &c, "one", NULL, 5000), MQ_OK);

    t_srv_stop(&ts);
    CU_ASSERT_TRUE(mq_test_wait(t_disconnected, cl, 5000));
    CU_ASSERT_EQUAL(t_call(cl, &c, "down", NULL, 5000), MQ_ECONN);

    t_srv_start(&ts, port, NULL);
    CU_ASSERT_EQUAL(ts.port, port);
    /* Fails fast while the backoff runs, then reconnects. */
    uint64_t t0 = mq_now_ms();
    mq_err_t err = MQ_ECONN;
    int tries = 0;
    while (err == MQ_ECONN && mq_now_ms() - t0 < 10000) {
        err = t_call(cl, &c, "two", NULL, 5000);
        tries++;
    }
    CU_ASSERT_EQUAL(err, MQ_OK);
    CU_ASSERT_TRUE(c.match);
    CU_ASSERT_TRUE(mq_net_client_connected(cl));
    CU_ASSERT_EQUAL(t_call(cl, &c, "three", NULL, 5000), MQ_OK);
    CU_ASSERT_EQUAL(atomic_load(&ts.opens), 1);
    mq_net_client_free(cl);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

#define T_HELD 100

static void t_close_held_task(void *arg)
{
    t_srv_t *ts = arg;
    mq_net_conn_close(ts->hold_conn);
}

static void test_lost_in_flight(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_opts_t co;
    mq_net_client_opts_default(&co);
    co.backoff_min_ms = 20;
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, &co, &cl), MQ_OK);
    t_call_t *calls = calloc(T_HELD, sizeof(*calls));
    for (int i = 0; i < T_HELD; i++) {
        CU_ASSERT_EQUAL(mq_net_client_request(cl, "hold", 4, NULL, 0, t_call_cb, &calls[i]), MQ_OK);
    }
    CU_ASSERT_TRUE_FATAL(t_wait_count(&ts.held, T_HELD, 10000));
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), T_HELD);
    mq_net_loop_run_sync(ts.loop, t_close_held_task, &ts);
    int wrong = 0;
    for (int i = 0; i < T_HELD; i++) {
        CU_ASSERT_TRUE(mq_test_wait(t_called, &calls[i], 5000));
        wrong += calls[i].err != MQ_ECONN;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(mq_net_client_inflight(cl), 0);
    /* The next requests, after the backoff, go through a new connection. */
    t_call_t c;
    mq_err_t err = MQ_ECONN;
    uint64_t t0 = mq_now_ms();
    while (err == MQ_ECONN && mq_now_ms() - t0 < 10000) {
        err = t_call(cl, &c, "later", NULL, 5000);
    }
    CU_ASSERT_EQUAL(err, MQ_OK);
    mq_net_client_free(cl);
    /* Exactly once, even through free. */
    for (int i = 0; i < T_HELD; i++) {
        wrong += atomic_load(&calls[i].calls) != 1;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    free(calls);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

static void test_free_with_pending(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    mq_net_client_t *cl;
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &cl), MQ_OK);
    t_call_t *calls = calloc(T_HELD, sizeof(*calls));
    mq_buf_t *d = t_pattern(512, 5);
    mq_slice_t s = mq_slice_of(d, 0, d->len);
    for (int i = 0; i < T_HELD / 2; i++) {
        CU_ASSERT_EQUAL(mq_net_client_request(cl, "hold", 4, &s, 60000, t_call_cb, &calls[i]),
                        MQ_OK);
    }
    CU_ASSERT_TRUE_FATAL(t_wait_count(&ts.held, T_HELD / 2, 10000));
    /* And some that may not even have reached the loop yet. */
    for (int i = T_HELD / 2; i < T_HELD; i++) {
        CU_ASSERT_EQUAL(mq_net_client_request(cl, "hold", 4, &s, 0, t_call_cb, &calls[i]), MQ_OK);
    }
    mq_net_client_free(cl);
    int wrong = 0;
    for (int i = 0; i < T_HELD; i++) {
        wrong += atomic_load(&calls[i].calls) != 1 || calls[i].err != MQ_ECLOSED;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    mq_slice_release(&s);
    /* Every reference the client took on the data is back. */
    CU_ASSERT_EQUAL(atomic_load(&d->refcnt), 1);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    mq_buf_unref(d);
    free(calls);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

/* --- throughput ----------------------------------------------------------- */

#define T_TP_TOTAL 200000
#define T_TP_WINDOW 256
#define T_TP_SIZE 1024

typedef struct t_tp {
    mq_net_client_t *cl;
    mq_buf_t *data;
    int submitted; /* @locality client loop */
    atomic_int done;
    atomic_int errors;
    uint64_t end_ns;
} t_tp_t;

static void t_tp_submit(t_tp_t *tp);

static void t_tp_cb(mq_err_t err, const mq_net_frame_t *resp, void *arg)
{
    t_tp_t *tp = arg;
    if (err != MQ_OK || resp->data.len != T_TP_SIZE) {
        atomic_fetch_add(&tp->errors, 1);
    }
    if (tp->submitted < T_TP_TOTAL) {
        t_tp_submit(tp);
    }
    if (atomic_fetch_add(&tp->done, 1) + 1 == T_TP_TOTAL) {
        tp->end_ns = mq_now_ns();
    }
}

static void t_tp_submit(t_tp_t *tp)
{
    mq_slice_t s = {tp->data, tp->data->data, T_TP_SIZE};
    if (mq_net_client_request(tp->cl, "add", 3, &s, 10000, t_tp_cb, tp) != MQ_OK) {
        atomic_fetch_add(&tp->errors, 1);
    }
    tp->submitted++;
}

static void t_tp_start(void *arg)
{
    t_tp_t *tp = arg;
    for (int i = 0; i < T_TP_WINDOW; i++) {
        t_tp_submit(tp);
    }
}

static void test_throughput(void)
{
    t_srv_t ts;
    t_srv_start(&ts, 0, NULL);
    mq_net_loop_t *cloop = mq_net_loop_new("tcli");
    t_tp_t tp;
    memset(&tp, 0, sizeof(tp));
    CU_ASSERT_EQUAL_FATAL(mq_net_client_new(cloop, "127.0.0.1", ts.port, NULL, &tp.cl), MQ_OK);
    tp.data = t_pattern(T_TP_SIZE, 6);
    t_call_t c;
    CU_ASSERT_EQUAL(t_call(tp.cl, &c, "warm-up", NULL, 5000), MQ_OK);
    uint64_t start = mq_now_ns();
    mq_net_loop_post(cloop, t_tp_start, &tp);
    CU_ASSERT_TRUE(t_wait_count(&tp.done, T_TP_TOTAL, 240000));
    CU_ASSERT_EQUAL(atomic_load(&tp.errors), 0);
    mq_net_client_free(tp.cl);
    double secs = (double)(tp.end_ns - start) / 1e9;
    fprintf(stderr, "\n  throughput: %d requests of %d bytes, %d in flight: %.2f s, %.0f req/s\n",
            T_TP_TOTAL, T_TP_SIZE, T_TP_WINDOW, secs, T_TP_TOTAL / secs);
    mq_net_loop_free(cloop);
    t_srv_stop(&ts);
    mq_buf_unref(tp.data);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"round trips: meta, data, empty, 4 MiB, by name", test_round_trip},
        {"10000 pipelined, answered out of order", test_pipelined_out_of_order},
        {"requests from 4 threads", test_concurrent_threads},
        {"oversize request and response", test_oversize},
        {"timeouts, unknown response ids", test_timeouts_and_unknown_ids},
        {"no listener: fast failure, backoff", test_no_listener},
        {"connect timeout", test_connect_timeout},
        {"server restarted on the same port", test_server_restart},
        {"connection lost with requests in flight", test_lost_in_flight},
        {"free with requests pending", test_free_with_pending},
        {"throughput", test_throughput},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("net_client", tests, NULL, NULL);
}
