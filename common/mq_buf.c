/*
 * mq_buf: allocation and release of refcounted buffers, and buffer pools.
 * Any thread.
 *
 * A pool keeps released buffers on a free list (linked through their data
 * area, unused while free) under a mutex; it is taken once per buffer, not
 * per byte or per frame. The pool counts its owner and every buffer it has
 * handed out, and frees itself when that count drops to zero.
 */
#include "mq_buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mq_log.h"
#include "mq_util.h"

mq_buf_t *mq_buf_new(size_t cap)
{
    mq_buf_t *buf = mq_malloc(sizeof(*buf) + cap);
    atomic_init(&buf->refcnt, 1);
    buf->flags = 0;
    buf->pool = NULL;
    buf->cap = cap;
    buf->len = 0;
    return buf;
}

mq_err_t mq_buf_try_new(size_t cap, mq_buf_t **out)
{
    if (cap > SIZE_MAX - sizeof(mq_buf_t)) {
        return MQ_ENOMEM;
    }
    mq_buf_t *buf = mq_try_malloc(sizeof(*buf) + cap);
    if (!buf) {
        return MQ_ENOMEM;
    }
    atomic_init(&buf->refcnt, 1);
    buf->flags = 0;
    buf->pool = NULL;
    buf->cap = cap;
    buf->len = 0;
    *out = buf;
    return MQ_OK;
}

mq_buf_t *mq_buf_copy(const void *p, size_t len)
{
    mq_buf_t *buf = mq_buf_new(len);
    if (len) {
        memcpy(buf->data, p, len);
    }
    buf->len = len;
    return buf;
}

struct mq_buf_pool {
    pthread_mutex_t lock;
    size_t buf_cap;
    size_t map_bytes; /* header + buf_cap, rounded to pages */
    size_t max_free;  /* buffers kept on the free list at most */
    mq_buf_t *free_list;
    size_t nfree;
    size_t refs; /* the owner + buffers handed out */
    bool released;
};

mq_buf_pool_t *mq_buf_pool_new(size_t buf_cap, size_t max_cached)
{
    mq_buf_pool_t *pool = mq_calloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    size_t page = 4096;
    pool->map_bytes = (sizeof(mq_buf_t) + buf_cap + page - 1) & ~(page - 1);
    pool->buf_cap = pool->map_bytes - sizeof(mq_buf_t);
    pool->max_free = max_cached / pool->map_bytes;
    pool->refs = 1;
    return pool;
}

size_t mq_buf_pool_buf_cap(const mq_buf_pool_t *pool)
{
    return pool->buf_cap;
}

static void mq_buf_pool_unmap(mq_buf_pool_t *pool, mq_buf_t *buf)
{
    munmap(buf, pool->map_bytes);
}

/* Drops one count; the last one frees the pool. Lock held on entry,
 * released here. */
static void mq_buf_pool_unref_locked(mq_buf_pool_t *pool)
{
    bool last = --pool->refs == 0;
    pthread_mutex_unlock(&pool->lock);
    if (last) {
        MQ_ASSERT(pool->nfree == 0);
        pthread_mutex_destroy(&pool->lock);
        free(pool);
    }
}

mq_err_t mq_buf_pool_get(mq_buf_pool_t *pool, mq_buf_t **out)
{
    pthread_mutex_lock(&pool->lock);
    MQ_ASSERT(!pool->released);
    mq_buf_t *buf = pool->free_list;
    if (buf) {
        memcpy(&pool->free_list, buf->data, sizeof(mq_buf_t *));
        pool->nfree--;
    }
    pool->refs++;
    pthread_mutex_unlock(&pool->lock);
    if (!buf) {
        void *m =
            mmap(NULL, pool->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            pthread_mutex_lock(&pool->lock);
            mq_buf_pool_unref_locked(pool);
            return MQ_ENOMEM;
        }
        buf = m;
        buf->pool = pool;
        buf->cap = pool->buf_cap;
    }
    atomic_init(&buf->refcnt, 1);
    buf->flags = 0;
    buf->len = 0;
    *out = buf;
    return MQ_OK;
}

/* A pool buffer's last reference is gone. */
static void mq_buf_pool_put(mq_buf_t *buf)
{
    mq_buf_pool_t *pool = buf->pool;
    pthread_mutex_lock(&pool->lock);
    if (!pool->released && pool->nfree < pool->max_free) {
        memcpy(buf->data, &pool->free_list, sizeof(mq_buf_t *));
        pool->free_list = buf;
        pool->nfree++;
    } else {
        mq_buf_pool_unmap(pool, buf);
    }
    mq_buf_pool_unref_locked(pool);
}

void mq_buf_pool_release(mq_buf_pool_t *pool)
{
    if (!pool) {
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->released = true;
    while (pool->free_list) {
        mq_buf_t *buf = pool->free_list;
        memcpy(&pool->free_list, buf->data, sizeof(mq_buf_t *));
        mq_buf_pool_unmap(pool, buf);
    }
    pool->nfree = 0;
    mq_buf_pool_unref_locked(pool);
}

void mq_buf_unref(mq_buf_t *buf)
{
    if (!buf) {
        return;
    }
    unsigned prev = atomic_fetch_sub_explicit(&buf->refcnt, 1, memory_order_acq_rel);
    MQ_ASSERT(prev > 0);
    if (prev == 1) {
        if (buf->pool) {
            mq_buf_pool_put(buf);
        } else {
            free(buf);
        }
    }
}

mq_slice_t mq_slice_of(mq_buf_t *buf, size_t off, size_t len)
{
    MQ_ASSERT(off + len <= buf->cap);
    mq_slice_t s = {mq_buf_ref(buf), buf->data + off, len};
    return s;
}

mq_slice_t mq_slice_dup(const mq_slice_t *s)
{
    mq_slice_t d = *s;
    if (d.buf) {
        mq_buf_ref(d.buf);
    }
    return d;
}

void mq_slice_release(mq_slice_t *s)
{
    if (s->buf) {
        mq_buf_unref(s->buf);
    }
    s->buf = NULL;
    s->ptr = NULL;
    s->len = 0;
}
