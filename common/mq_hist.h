/*
 * mq_hist: a log-linear latency histogram (HdrHistogram's idea, in 32 KiB):
 * values below 128 are exact; above, each power of two is split into 64
 * buckets, so any percentile is reported within 1.6 %. Not thread-safe: keep
 * one per thread and merge.
 */
#ifndef MQ_HIST_H
#define MQ_HIST_H

#include <stdint.h>

#define MQ_HIST_SUB 64
#define MQ_HIST_BUCKETS (64 * MQ_HIST_SUB)

typedef struct mq_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[MQ_HIST_BUCKETS];
} mq_hist_t;

void mq_hist_init(mq_hist_t *h);
void mq_hist_add(mq_hist_t *h, uint64_t value);
void mq_hist_merge(mq_hist_t *into, const mq_hist_t *from);
/* The value at quantile q in [0, 1] (upper edge of its bucket); 0 if empty. */
uint64_t mq_hist_quantile(const mq_hist_t *h, double q);

#endif
