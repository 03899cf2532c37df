/*
 * mq_util: the allocators. Any thread.
 */
#include "mq_util.h"

#include <stdlib.h>

#include "mq_log.h"

static void mq_oom(size_t n) __attribute__((noreturn));
static void mq_oom(size_t n)
{
    MQ_LOG_ERROR("out of memory bytes=%zu", n);
    abort();
}

void *mq_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        mq_oom(n);
    }
    return p;
}

void *mq_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p) {
        mq_oom(count * n);
    }
    return p;
}

void *mq_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        mq_oom(n);
    }
    return q;
}

char *mq_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mq_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *mq_try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}
