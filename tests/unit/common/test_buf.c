/*
 * mq_buf: reference counting, slices, and buffer pools: a released buffer is
 * reused, the pool keeps at most its cap, a pool released by its owner lives
 * until its last buffer comes back, and buffers move between threads.
 */
#include <pthread.h>
#include <string.h>

#include "mq_buf.h"
#include "mq_test.h"

static void test_refcount_and_slices(void)
{
    mq_buf_t *b = mq_buf_copy("hello world", 11);
    mq_slice_t s = mq_slice_of(b, 6, 5);
    mq_buf_unref(b); /* the slice keeps it alive */
    CU_ASSERT_EQUAL(memcmp(s.ptr, "world", 5), 0);
    mq_slice_t d = mq_slice_dup(&s);
    mq_slice_release(&s);
    CU_ASSERT_PTR_NULL(s.buf);
    CU_ASSERT_EQUAL(memcmp(d.ptr, "world", 5), 0);
    mq_slice_release(&d);
}

static void test_pool_reuse_and_cap(void)
{
    mq_buf_pool_t *p = mq_buf_pool_new(10000, 2 * 12288);
    CU_ASSERT_TRUE(mq_buf_pool_buf_cap(p) >= 10000);
    mq_buf_t *a;
    mq_buf_t *b;
    mq_buf_t *c;
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &a), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &b), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &c), MQ_OK);
    CU_ASSERT_TRUE(a != b && b != c && a != c);
    memset(a->data, 1, a->cap);
    a->len = 5;
    mq_buf_t *keep_a = a;
    mq_buf_unref(a);
    /* The released buffer comes back, reset. */
    mq_buf_t *again;
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &again), MQ_OK);
    CU_ASSERT_PTR_EQUAL(again, keep_a);
    CU_ASSERT_EQUAL(again->len, 0);
    CU_ASSERT_EQUAL(atomic_load(&again->refcnt), 1);
    /* A slice keeps a pool buffer out of the pool. */
    mq_slice_t s = mq_slice_of(again, 0, 10);
    mq_buf_unref(again);
    mq_buf_t *other;
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &other), MQ_OK);
    CU_ASSERT_PTR_NOT_EQUAL(other, keep_a);
    mq_slice_release(&s);
    mq_buf_unref(other);
    mq_buf_unref(b);
    mq_buf_unref(c);
    /* The owner goes first; buffers still out return safely afterwards. */
    mq_buf_t *late;
    CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &late), MQ_OK);
    mq_buf_pool_release(p);
    memset(late->data, 2, late->cap);
    mq_buf_unref(late);
}

typedef struct t_ring {
    mq_buf_t *slots[64];
    int n;
    pthread_mutex_t lock;
} t_ring_t;

static void *t_releaser(void *arg)
{
    t_ring_t *r = arg;
    int released = 0;
    while (released < 20000) {
        pthread_mutex_lock(&r->lock);
        if (r->n > 0) {
            mq_buf_unref(r->slots[--r->n]);
            released++;
        }
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

static void test_pool_across_threads(void)
{
    mq_buf_pool_t *p = mq_buf_pool_new(4096, 1 << 20);
    t_ring_t r = {.n = 0};
    pthread_mutex_init(&r.lock, NULL);
    pthread_t t;
    pthread_create(&t, NULL, t_releaser, &r);
    int made = 0;
    while (made < 20000) {
        pthread_mutex_lock(&r.lock);
        if (r.n < 64) {
            mq_buf_t *b;
            CU_ASSERT_EQUAL_FATAL(mq_buf_pool_get(p, &b), MQ_OK);
            b->data[0] = (uint8_t)made;
            r.slots[r.n++] = b;
            made++;
        }
        pthread_mutex_unlock(&r.lock);
    }
    pthread_join(t, NULL);
    mq_buf_pool_release(p);
    pthread_mutex_destroy(&r.lock);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"refcount and slices", test_refcount_and_slices},
        {"pool reuse, cap and late release", test_pool_reuse_and_cap},
        {"pool buffers released on another thread", test_pool_across_threads},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("buf", tests, NULL, NULL);
}
