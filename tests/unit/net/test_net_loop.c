/*
 * mq_net loop and helpers: tasks posted from several threads run on the loop
 * thread in each poster's order, run_sync waits, loop free runs what was
 * posted, and "host:port" parsing accepts what it should and nothing else.
 * An executor hosted by a loop runs its tasks and timers on the loop thread,
 * in order, re-arms for an earlier deadline, and runs what is queued when
 * freed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_net.h"
#include "mq_net_int.h"
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

/* A chain of tasks each posting the next from the loop thread: they run
 * (on the loop, in the iteration they were posted: no wake-up needed) and
 * keep their place behind tasks posted from other threads before them. */
typedef struct t_chain {
    mq_net_loop_t *loop;
    int left;
    int ran;
    int off_thread;
    mq_net_sync_t done;
} t_chain_t;

static void t_chain_task(void *arg)
{
    t_chain_t *c = arg;
    c->ran++;
    c->off_thread += !mq_net_loop_on_thread(c->loop);
    if (--c->left > 0) {
        mq_net_loop_post(c->loop, t_chain_task, c);
    } else {
        mq_net_sync_signal(&c->done);
    }
}

static void test_post_from_loop(void)
{
    t_chain_t c = {.left = 10000};
    c.loop = mq_net_loop_new("tchain");
    mq_net_sync_init(&c.done);
    mq_net_loop_post(c.loop, t_chain_task, &c);
    mq_net_sync_wait(&c.done);
    CU_ASSERT_EQUAL(c.ran, 10000);
    CU_ASSERT_EQUAL(c.off_thread, 0);
    mq_net_sync_fini(&c.done);
    mq_net_loop_free(c.loop);
}

/* --- the hosted executor ---------------------------------------------------- */

#define T_EX_SUBMITTERS 3
#define T_EX_PER 20000

typedef struct t_ex_ctx {
    mq_net_loop_t *loop;
    mq_executor_t *ex;
    int64_t last[T_EX_SUBMITTERS];
    int out_of_order;
    int off_thread;
    int ran;
} t_ex_ctx_t;

typedef struct t_ex_item {
    t_ex_ctx_t *ctx;
    int who;
    int64_t seq;
} t_ex_item_t;

static void t_ex_task(void *arg)
{
    t_ex_item_t *it = arg;
    t_ex_ctx_t *ctx = it->ctx;
    ctx->off_thread += !mq_net_loop_on_thread(ctx->loop) || !mq_executor_on_thread(ctx->ex, 7);
    ctx->out_of_order += it->seq != ctx->last[it->who] + 1;
    ctx->last[it->who] = it->seq;
    ctx->ran++;
    /* The last submitter is the loop itself: each task submits the next. */
    if (it->who == T_EX_SUBMITTERS - 1 && it->seq + 1 < T_EX_PER) {
        it->seq++;
        mq_executor_submit(ctx->ex, 7, t_ex_task, it);
        return;
    }
    free(it);
}

typedef struct t_ex_submitter {
    t_ex_ctx_t *ctx;
    int who;
} t_ex_submitter_t;

static void *t_ex_submit_thread(void *arg)
{
    t_ex_submitter_t *s = arg;
    for (int64_t i = 0; i < T_EX_PER; i++) {
        t_ex_item_t *it = malloc(sizeof(*it));
        *it = (t_ex_item_t){s->ctx, s->who, i};
        mq_executor_submit(s->ctx->ex, (uint64_t)i, t_ex_task, it);
    }
    return NULL;
}

static void t_ex_start_chain(void *arg)
{
    t_ex_ctx_t *ctx = arg;
    t_ex_item_t *it = malloc(sizeof(*it));
    *it = (t_ex_item_t){ctx, T_EX_SUBMITTERS - 1, 0};
    mq_executor_submit(ctx->ex, 0, t_ex_task, it);
}

static void t_ex_count(void *arg)
{
    int *n = arg;
    (*n)++;
}

static void test_hosted_tasks(void)
{
    t_ex_ctx_t ctx = {0};
    for (int i = 0; i < T_EX_SUBMITTERS; i++) {
        ctx.last[i] = -1;
    }
    ctx.loop = mq_net_loop_new("thost");
    ctx.ex = mq_net_loop_executor_new(ctx.loop, "hosted");
    CU_ASSERT_EQUAL(mq_executor_threads(ctx.ex), 1u);
    CU_ASSERT_FALSE(mq_executor_on_thread(ctx.ex, 0));
    pthread_t th[T_EX_SUBMITTERS - 1];
    t_ex_submitter_t ss[T_EX_SUBMITTERS - 1];
    mq_net_loop_post(ctx.loop, t_ex_start_chain, &ctx);
    for (int i = 0; i < T_EX_SUBMITTERS - 1; i++) {
        ss[i] = (t_ex_submitter_t){&ctx, i};
        pthread_create(&th[i], NULL, t_ex_submit_thread, &ss[i]);
    }
    for (int i = 0; i < T_EX_SUBMITTERS - 1; i++) {
        pthread_join(th[i], NULL);
    }
    /* Tasks queued when the executor is freed still run (the chain's
     * included), on the loop; so does one submitted last. */
    int last = 0;
    mq_executor_submit(ctx.ex, 0, t_ex_count, &last);
    mq_executor_free(ctx.ex);
    CU_ASSERT_EQUAL(ctx.ran, T_EX_SUBMITTERS * T_EX_PER);
    CU_ASSERT_EQUAL(ctx.out_of_order, 0);
    CU_ASSERT_EQUAL(ctx.off_thread, 0);
    CU_ASSERT_EQUAL(last, 1);
    mq_net_loop_free(ctx.loop);
}

#define T_TIMERS 8

typedef struct t_tm_ctx {
    mq_net_loop_t *loop;
    mq_executor_t *ex;
    uint64_t due[T_TIMERS + 1];
    uint64_t fired_at[T_TIMERS + 1];
    int order[T_TIMERS + 1];
    int nfired; /* @locks mu */
    int off_thread;
    mq_timer_t *far;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} t_tm_ctx_t;

typedef struct t_tm_arg {
    t_tm_ctx_t *ctx;
    int idx;
} t_tm_arg_t;

static void t_tm_fire(void *arg)
{
    t_tm_arg_t *a = arg;
    t_tm_ctx_t *ctx = a->ctx;
    ctx->fired_at[a->idx] = mq_now_ns();
    ctx->off_thread += !mq_net_loop_on_thread(ctx->loop);
    pthread_mutex_lock(&ctx->mu);
    ctx->order[ctx->nfired++] = a->idx;
    pthread_cond_signal(&ctx->cv);
    pthread_mutex_unlock(&ctx->mu);
}

static void t_tm_cancel_task(void *arg)
{
    t_tm_ctx_t *ctx = arg;
    mq_timer_cancel(ctx->far);
}

static void t_noop(void *arg)
{
    MQ_UNUSED(arg);
}

static void test_hosted_timers(void)
{
    static t_tm_ctx_t ctx;
    static t_tm_arg_t args[T_TIMERS + 1];
    memset(&ctx, 0, sizeof(ctx));
    pthread_mutex_init(&ctx.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx.cv, &ca);
    pthread_condattr_destroy(&ca);
    ctx.loop = mq_net_loop_new("ttimer");
    ctx.ex = mq_net_loop_executor_new(ctx.loop, "hosted");
    /* A far timer first, then nearer ones in decreasing order, each after
     * the loop has armed the one before (the run_sync barrier): every new
     * timer is the earliest, so the host must move its deadline forward
     * each time. Delays below a millisecond, like a linger's. */
    args[T_TIMERS] = (t_tm_arg_t){&ctx, T_TIMERS};
    ctx.far = mq_executor_schedule_ns(ctx.ex, 1, 60ull * 1000000000ull, t_tm_fire, &args[T_TIMERS]);
    mq_net_loop_run_sync(ctx.loop, t_noop, NULL);
    for (int i = T_TIMERS - 1; i >= 0; i--) {
        args[i] = (t_tm_arg_t){&ctx, i};
        uint64_t delay = 300000ull * (uint64_t)(i + 1); /* 0.3 .. 2.4 ms */
        ctx.due[i] = mq_now_ns() + delay;
        mq_executor_schedule_ns(ctx.ex, (uint64_t)i, delay, t_tm_fire, &args[i]);
        mq_net_loop_run_sync(ctx.loop, t_noop, NULL);
    }
    /* Bounded wait: a host stuck on the far deadline fails here. */
    uint64_t until = mq_now_ns() + 10ull * 1000000000ull;
    struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
    pthread_mutex_lock(&ctx.mu);
    while (ctx.nfired < T_TIMERS) {
        if (pthread_cond_timedwait(&ctx.cv, &ctx.mu, &ts) != 0) {
            break;
        }
    }
    int nfired = ctx.nfired;
    pthread_mutex_unlock(&ctx.mu);
    CU_ASSERT_EQUAL(nfired, T_TIMERS);
    for (int k = 0; k < nfired; k++) {
        int i = ctx.order[k];
        CU_ASSERT(i < T_TIMERS);
        CU_ASSERT(ctx.fired_at[i] >= ctx.due[i]);
        if (k > 0) {
            CU_ASSERT(ctx.due[ctx.order[k - 1]] <= ctx.due[i]);
        }
    }
    CU_ASSERT_EQUAL(ctx.off_thread, 0);
    /* The far one is cancelled from the loop thread and never fires. */
    mq_executor_submit(ctx.ex, 1, t_tm_cancel_task, &ctx);
    mq_executor_free(ctx.ex);
    CU_ASSERT_EQUAL(ctx.fired_at[T_TIMERS], 0u);
    mq_net_loop_free(ctx.loop);
    pthread_cond_destroy(&ctx.cv);
    pthread_mutex_destroy(&ctx.mu);
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
        {"tasks posted from the loop run, in order", test_post_from_loop},
        {"hosted executor: tasks on the loop, in order, run at free", test_hosted_tasks},
        {"hosted executor: timers in deadline order, re-armed earlier, cancelled",
         test_hosted_timers},
        {"parse host:port", test_parse_hostport},
        {"option defaults", test_opts_default},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("net_loop", tests, NULL, NULL);
}
