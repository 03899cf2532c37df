/*
 * mq_executor: per-key order across many submitting threads, keys spread over
 * threads, timers fire in deadline order on the key's thread, and cancelled
 * timers never fire.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "mq_executor.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_KEYS 8
#define T_PER_KEY 20000

typedef struct t_ctx {
    mq_executor_t *ex;
    int64_t last[T_KEYS];
    atomic_int out_of_order;
    atomic_int wrong_thread;
    atomic_int done;
} t_ctx_t;

typedef struct t_item {
    t_ctx_t *ctx;
    int key;
    int64_t seq;
} t_item_t;

static void t_task(void *arg)
{
    t_item_t *it = arg;
    t_ctx_t *ctx = it->ctx;
    if (!mq_executor_on_thread(ctx->ex, (uint64_t)it->key)) {
        atomic_fetch_add(&ctx->wrong_thread, 1);
    }
    if (it->seq != ctx->last[it->key] + 1) {
        atomic_fetch_add(&ctx->out_of_order, 1);
    }
    ctx->last[it->key] = it->seq;
    atomic_fetch_add(&ctx->done, 1);
    free(it);
}

typedef struct t_producer {
    t_ctx_t *ctx;
    int key_lo;
} t_producer_t;

static void *t_produce(void *arg)
{
    t_producer_t *p = arg;
    for (int64_t s = 0; s < T_PER_KEY; s++) {
        for (int k = p->key_lo; k < p->key_lo + T_KEYS / 2; k++) {
            t_item_t *it = malloc(sizeof(*it));
            it->ctx = p->ctx;
            it->key = k;
            it->seq = s;
            mq_executor_submit(p->ctx->ex, (uint64_t)k, t_task, it);
        }
    }
    return NULL;
}

static bool t_all_done(void *arg)
{
    t_ctx_t *ctx = arg;
    return atomic_load(&ctx->done) == T_KEYS * T_PER_KEY;
}

static void test_order_per_key(void)
{
    t_ctx_t ctx = {0};
    for (int k = 0; k < T_KEYS; k++) {
        ctx.last[k] = -1;
    }
    ctx.ex = mq_executor_new("t", 3);
    pthread_t a;
    pthread_t b;
    t_producer_t pa = {&ctx, 0};
    t_producer_t pb = {&ctx, T_KEYS / 2};
    pthread_create(&a, NULL, t_produce, &pa);
    pthread_create(&b, NULL, t_produce, &pb);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CU_ASSERT_TRUE(mq_test_wait(t_all_done, &ctx, 30000));
    mq_executor_free(ctx.ex);
    CU_ASSERT_EQUAL(atomic_load(&ctx.out_of_order), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.wrong_thread), 0);
}

typedef struct t_timer_ctx {
    mq_executor_t *ex;
    int order[4];
    atomic_int n;
} t_timer_ctx_t;

typedef struct t_targ {
    t_timer_ctx_t *ctx;
    int id;
} t_targ_t;

static void t_timer_fire(void *arg)
{
    t_targ_t *t = arg;
    int i = atomic_fetch_add(&t->ctx->n, 1);
    if (i < 4) {
        t->ctx->order[i] = t->id;
    }
}

typedef struct t_cancel {
    mq_timer_t *timer;
} t_cancel_t;

static void t_do_cancel(void *arg)
{
    t_cancel_t *c = arg;
    mq_timer_cancel(c->timer);
}

static bool t_three(void *arg)
{
    t_timer_ctx_t *ctx = arg;
    return atomic_load(&ctx->n) >= 3;
}

static void test_timers(void)
{
    t_timer_ctx_t ctx = {0};
    ctx.ex = mq_executor_new("tm", 2);
    t_targ_t args[4] = {{&ctx, 0}, {&ctx, 1}, {&ctx, 2}, {&ctx, 3}};
    uint64_t start = mq_now_ms();
    mq_executor_schedule(ctx.ex, 1, 60, t_timer_fire, &args[2]);
    mq_executor_schedule(ctx.ex, 1, 20, t_timer_fire, &args[0]);
    mq_executor_schedule(ctx.ex, 1, 40, t_timer_fire, &args[1]);
    t_cancel_t c = {mq_executor_schedule(ctx.ex, 1, 30, t_timer_fire, &args[3])};
    /* Cancel from the key's own thread, as the contract asks. */
    mq_executor_submit(ctx.ex, 1, t_do_cancel, &c);
    CU_ASSERT_TRUE(mq_test_wait(t_three, &ctx, 5000));
    uint64_t elapsed = mq_now_ms() - start;
    CU_ASSERT_TRUE(elapsed >= 60);
    mq_executor_free(ctx.ex);
    CU_ASSERT_EQUAL(atomic_load(&ctx.n), 3);
    CU_ASSERT_EQUAL(ctx.order[0], 0);
    CU_ASSERT_EQUAL(ctx.order[1], 1);
    CU_ASSERT_EQUAL(ctx.order[2], 2);
}

typedef struct t_when {
    atomic_uint_fast64_t at[2]; /* ns the timers fired (0: not yet) */
} t_when_t;

static void t_when_0(void *arg)
{
    atomic_store(&((t_when_t *)arg)->at[0], mq_now_ns());
}

static void t_when_1(void *arg)
{
    atomic_store(&((t_when_t *)arg)->at[1], mq_now_ns());
}

static bool t_both(void *arg)
{
    t_when_t *w = arg;
    return atomic_load(&w->at[0]) && atomic_load(&w->at[1]);
}

/* A delay under a millisecond is kept: not cut to 0 (due at once), not
 * rounded up to a millisecond; it fires before a 5 ms timer set at the
 * same time. */
static void test_timers_ns(void)
{
    mq_executor_t *ex = mq_executor_new("tn", 1);
    for (int round = 0; round < 5; round++) {
        t_when_t w = {0};
        uint64_t start = mq_now_ns();
        mq_executor_schedule(ex, 0, 5, t_when_1, &w);
        mq_executor_schedule_ns(ex, 0, 400000, t_when_0, &w);
        CU_ASSERT_TRUE_FATAL(mq_test_wait(t_both, &w, 5000));
        CU_ASSERT_TRUE(atomic_load(&w.at[0]) - start >= 400000);
        CU_ASSERT_TRUE(atomic_load(&w.at[0]) < atomic_load(&w.at[1]));
    }
    mq_executor_free(ex);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"order per key across producers", test_order_per_key},
        {"timers fire in order, cancel works", test_timers},
        {"a timer under a millisecond waits its time", test_timers_ns},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("executor", tests, NULL, NULL);
}
