/*
 * mq_hist: bucket arithmetic. Bucket of v: for v < 2*SUB the value itself;
 * otherwise with m = msb(v), shift = m - 6, the bucket is
 * (shift + 1) * SUB + ((v >> shift) - SUB): every power of two above 127 gets
 * SUB buckets of equal width.
 */
#include "mq_hist.h"

#include <string.h>

void mq_hist_init(mq_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned mq_hist_index(uint64_t v)
{
    if (v < 2 * MQ_HIST_SUB) {
        return (unsigned)v;
    }
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = m - 6;
    return (shift + 1) * MQ_HIST_SUB + (unsigned)((v >> shift) - MQ_HIST_SUB);
}

static uint64_t mq_hist_upper(unsigned idx)
{
    if (idx < 2 * MQ_HIST_SUB) {
        return idx;
    }
    unsigned shift = idx / MQ_HIST_SUB - 1;
    uint64_t base = (uint64_t)(idx % MQ_HIST_SUB + MQ_HIST_SUB) << shift;
    return base + ((1ull << shift) - 1);
}

void mq_hist_add(mq_hist_t *h, uint64_t value)
{
    h->count++;
    h->sum += value;
    if (value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
    h->buckets[mq_hist_index(value)]++;
}

void mq_hist_merge(mq_hist_t *into, const mq_hist_t *from)
{
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) {
        into->min = from->min;
    }
    if (from->max > into->max) {
        into->max = from->max;
    }
    for (unsigned i = 0; i < MQ_HIST_BUCKETS; i++) {
        into->buckets[i] += from->buckets[i];
    }
}

uint64_t mq_hist_quantile(const mq_hist_t *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (q <= 0) {
        return h->min;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < MQ_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = mq_hist_upper(i);
            return up > h->max ? h->max : up;
        }
    }
    return h->max;
}
