/*
 * mq_net loop and helpers: tasks posted from several threads run on the loop
 * thread in each poster's order, run_sync waits, loop free runs what was
 * posted, and "host:port" parsing accepts what it should and nothing else.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_net.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_POSTERS 4
#define T_PER_POSTER 20000

typedef struct t_loop_ctx {
    mq_net_loop_t *loop;
    int64_t last[T_POSTERS];
    atomic_int out_of_order;
    atomic_int off_thread;
    atomic_int done;
} t_loop_ctx_t;

typedef struct t_loop_item {
    t_loop_ctx_t *ctx;
    int poster;
    int64_t seq;
} t_loop_item_t;

static void t_loop_task(void *arg)
{
    t_loop_item_t *it = arg;
    t_loop_ctx_t *ctx = it->ctx;
    if (!mq_net_loop_on_thread(ctx->loop)) {
        atomic_fetch_add(&ctx->off_thread, 1);
    }
    if (it->seq != ctx->last[it->poster] + 1) {
        atomic_fetch_add(&ctx->out_of_order, 1);
    }
    ctx->last[it->poster] = it->seq;
    atomic_fetch_add(&ctx->done, 1);
    free(it);
}

typedef struct t_poster {
    t_loop_ctx_t *ctx;
    int id;
} t_poster_t;

static void *t_loop_post_thread(void *arg)
{
    t_poster_t *p = arg;
    for (int64_t s = 0; s < T_PER_POSTER; s++) {
        t_loop_item_t *it = malloc(sizeof(*it));
        it->ctx = p->ctx;
        it->poster = p->id;
        it->seq = s;
        mq_net_loop_post(p->ctx->loop, t_loop_task, it);
    }
    return NULL;
}

static void t_loop_sync_task(void *arg)
{
    t_loop_ctx_t *ctx = arg;
    /* Everything posted before run_sync by this thread already ran. */
    atomic_store(&ctx->done, -atomic_load(&ctx->done));
}

static void test_post_order(void)
{
    t_loop_ctx_t ctx = {0};
    for (int i = 0; i < T_POSTERS; i++) {
        ctx.last[i] = -1;
    }
    ctx.loop = mq_net_loop_new("tloop");
    CU_ASSERT_FALSE(mq_net_loop_on_thread(ctx.loop));
    pthread_t th[T_POSTERS];
    t_poster_t ps[T_POSTERS];
    for (int i = 0; i < T_POSTERS; i++) {
        ps[i].ctx = &ctx;
        ps[i].id = i;
        pthread_create(&th[i], NULL, t_loop_post_thread, &ps[i]);
    }
    for (int i = 0; i < T_POSTERS; i++) {
        pthread_join(th[i], NULL);
    }
    mq_net_loop_run_sync(ctx.loop, t_loop_sync_task, &ctx);
    CU_ASSERT_EQUAL(atomic_load(&ctx.done), -(T_POSTERS * T_PER_POSTER));
    CU_ASSERT_EQUAL(atomic_load(&ctx.out_of_order), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.off_thread), 0);
    mq_net_loop_free(ctx.loop);
}

typedef struct t_free_ctx {
    mq_net_loop_t *loop;
    atomic_int ran;
    bool timer_init;
    uv_timer_t timer;
} t_free_ctx_t;

static void t_free_inner(void *arg)
{
    t_free_ctx_t *ctx = arg;
    atomic_fetch_add(&ctx->ran, 1);
}

static void t_free_outer(void *arg)
{
    t_free_ctx_t *ctx = arg;
    atomic_fetch_add(&ctx->ran, 1);
    /* Posted from a task: still runs before the loop goes away. */
    mq_net_loop_post(ctx->loop, t_free_inner, ctx);
    /* A handle of the owner, left open: the loop closes it. */
    if (!ctx->timer_init) {
        ctx->timer_init = true;
        uv_timer_init(mq_net_loop_uv(ctx->loop), &ctx->timer);
    }
}

static void test_free_runs_posted(void)
{
    t_free_ctx_t ctx = {0};
    ctx.loop = mq_net_loop_new("tfree");
    for (int i = 0; i < 100; i++) {
        mq_net_loop_post(ctx.loop, t_free_outer, &ctx);
    }
    mq_net_loop_free(ctx.loop);
    CU_ASSERT_EQUAL(atomic_load(&ctx.ran), 200);
}

static void test_parse_hostport(void)
{
    char host[64];
    int port = -1;
    CU_ASSERT_EQUAL(mq_net_parse_hostport("127.0.0.1:3181", host, sizeof(host), &port), MQ_OK);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 3181);
    CU_ASSERT_EQUAL(mq_net_parse_hostport("bookie-1.example_x:65535", host, sizeof(host), &port),
                    MQ_OK);
    CU_ASSERT_STRING_EQUAL(host, "bookie-1.example_x");
    CU_ASSERT_EQUAL(port, 65535);
    CU_ASSERT_EQUAL(mq_net_parse_hostport("[::1]:80", host, sizeof(host), &port), MQ_OK);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 80);
    CU_ASSERT_EQUAL(mq_net_parse_hostport("localhost:0", host, sizeof(host), &port), MQ_OK);
    CU_ASSERT_EQUAL(port, 0);

    static const char *const bad[] = {
        "",        "localhost",   ":80",     "host:",    "host:65536", "host:-1",
        "host:8o", "host:123456", "::1:80",  "[::1]80",  "[::1]:",     "[zz]:80",
        "h st:80", "host:80:1",   "[::1:80", "host:+80", "host: 80",
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_EQUAL(mq_net_parse_hostport(bad[i], host, sizeof(host), &port), MQ_EINVAL);
    }
    /* The host must fit the caller's buffer. */
    char small[4];
    CU_ASSERT_EQUAL(mq_net_parse_hostport("abcd:1", small, sizeof(small), &port), MQ_EINVAL);
    CU_ASSERT_EQUAL(mq_net_parse_hostport("abc:1", small, sizeof(small), &port), MQ_OK);
    CU_ASSERT_EQUAL(mq_net_parse_hostport(NULL, host, sizeof(host), &port), MQ_EINVAL);
}

static void test_opts_default(void)
{
    mq_net_opts_t o;
    mq_net_opts_default(&o);
    CU_ASSERT_EQUAL(o.max_frame, 5u * 1024 * 1024 + 64 * 1024);
    CU_ASSERT_EQUAL(o.max_frame_hard, 64u * 1024 * 1024);
    CU_ASSERT_EQUAL(o.out_high_water, 4u * 1024 * 1024);
    CU_ASSERT_EQUAL(o.out_low_water, 1u * 1024 * 1024);
    CU_ASSERT_EQUAL(o.read_buf_size, 64u * 1024);
    mq_net_client_opts_t c;
    mq_net_client_opts_default(&c);
    CU_ASSERT_EQUAL(c.connect_timeout_ms, 5000);
    CU_ASSERT_EQUAL(c.backoff_min_ms, 100);
    CU_ASSERT_EQUAL(c.backoff_max_ms, 5000);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"posts keep each poster's order, on the loop", test_post_order},
        {"free runs what was posted and closes handles", test_free_runs_posted},
        {"parse host:port", test_parse_hostport},
        {"option defaults", test_opts_default},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("net_loop", tests, NULL, NULL);
}
