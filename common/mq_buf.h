/*
 * mq_buf: refcounted byte buffers, and slices that borrow part of one.
 *
 * Payload bytes travel from the socket to the journal and the write cache in
 * these, without copies: a reader gets a slice (pointer, length, and a
 * reference on the buffer that holds the bytes) and keeps the buffer alive as
 * long as it holds the reference. Reference counting is atomic, so buffers may
 * cross threads; the bytes themselves are immutable once shared.
 */
#ifndef MQ_BUF_H
#define MQ_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

struct mq_buf_pool;

typedef struct mq_buf {
    atomic_uint refcnt;
    uint32_t flags;
    struct mq_buf_pool *pool; /* NULL: malloc'ed */
    size_t cap;               /* bytes available in data[] */
    size_t len;               /* bytes in use, maintained by the writer */
    uint8_t data[];
} mq_buf_t;

/* A new buffer with one reference; aborts on OOM (internal sizes only). */
mq_buf_t *mq_buf_new(size_t cap);
/* Same, for sizes from the network or the disk: MQ_ENOMEM instead of abort. */
mq_err_t mq_buf_try_new(size_t cap, mq_buf_t **out);
/* A new buffer holding a copy of len bytes at p. */
mq_buf_t *mq_buf_copy(const void *p, size_t len);

static inline mq_buf_t *mq_buf_ref(mq_buf_t *buf)
{
    atomic_fetch_add_explicit(&buf->refcnt, 1, memory_order_relaxed);
    return buf;
}

void mq_buf_unref(mq_buf_t *buf);

/*
 * A pool of equal-size buffers, for memory that turns over fast and in bulk
 * (socket read buffers): a released buffer goes back to the pool instead of
 * the heap, up to max_cached bytes, and the rest is unmapped. Pool buffers
 * are mapped directly (mmap), so they never fragment malloc's heap. The pool
 * lives until its owner released it and every buffer came back. Any thread.
 */
typedef struct mq_buf_pool mq_buf_pool_t;

mq_buf_pool_t *mq_buf_pool_new(size_t buf_cap, size_t max_cached);
/* A buffer of the pool's size with one reference; MQ_ENOMEM when the
 * kernel refuses memory. */
mq_err_t mq_buf_pool_get(mq_buf_pool_t *pool, mq_buf_t **out);
size_t mq_buf_pool_buf_cap(const mq_buf_pool_t *pool);
/* The owner is done: cached buffers are unmapped now, the pool itself once
 * its last buffer is released. */
void mq_buf_pool_release(mq_buf_pool_t *pool);

/* A borrowed view of bytes inside buf; the slice owns one reference on buf
 * (or none when buf is NULL and the bytes are static / owned elsewhere). */
typedef struct mq_slice {
    mq_buf_t *buf;
    const uint8_t *ptr;
    size_t len;
} mq_slice_t;

/* A slice of buf[off, off+len), taking a new reference on buf. */
mq_slice_t mq_slice_of(mq_buf_t *buf, size_t off, size_t len);
/* Copies the slice's reference (the result must be released too). */
mq_slice_t mq_slice_dup(const mq_slice_t *s);
/* Drops the slice's reference and clears it. */
void mq_slice_release(mq_slice_t *s);

#endif
