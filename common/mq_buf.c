/*
 * mq_buf: allocation and release of refcounted buffers. Any thread.
 */
#include "mq_buf.h"

#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

mq_buf_t *mq_buf_new(size_t cap)
{
    mq_buf_t *buf = mq_malloc(sizeof(*buf) + cap);
    atomic_init(&buf->refcnt, 1);
    buf->flags = 0;
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

void mq_buf_unref(mq_buf_t *buf)
{
    if (!buf) {
        return;
    }
    unsigned prev = atomic_fetch_sub_explicit(&buf->refcnt, 1, memory_order_acq_rel);
    MQ_ASSERT(prev > 0);
    if (prev == 1) {
        free(buf);
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
