/*
 * br_assign: the assignment algorithm (see the header for the rules).
 *
 * Costs O(Q log Q + Q * B) for Q queues and B brokers: the fill step scans
 * the brokers for each queue it places, which is cheap next to the
 * ZooKeeper writes that follow for any realistic B.
 */
#include "br_assign.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mq_util.h"

#define BR_ASSIGN_DEFAULT_FACTOR 1.5
#define BR_ASSIGN_DEFAULT_FLOOR 1000.0

void br_assign_params_default(br_assign_params_t *p)
{
    p->overload_factor = BR_ASSIGN_DEFAULT_FACTOR;
    p->overload_floor = BR_ASSIGN_DEFAULT_FLOOR;
}

/* qsort has no context argument: the arrays being ordered. */
typedef struct br_assign_ctx {
    const br_assign_broker_t *brokers;
    const br_assign_queue_t *queues;
    const size_t *count; /* current queues per broker */
    const double *load;
} br_assign_ctx_t;

static _Thread_local const br_assign_ctx_t *br_assign_cur;

static int br_assign_queue_cmp(const void *a, const void *b)
{
    const br_assign_queue_t *x = &br_assign_cur->queues[*(const size_t *)a];
    const br_assign_queue_t *y = &br_assign_cur->queues[*(const size_t *)b];
    int c = strcmp(x->topic, y->topic);
    if (c != 0) {
        return c;
    }
    return (x->queue > y->queue) - (x->queue < y->queue);
}

/* Who gets an extra queue first: most current queues, least load, id. */
static int br_assign_extra_cmp(const void *a, const void *b)
{
    size_t i = *(const size_t *)a;
    size_t k = *(const size_t *)b;
    const br_assign_ctx_t *c = br_assign_cur;
    if (c->count[i] != c->count[k]) {
        return c->count[i] > c->count[k] ? -1 : 1;
    }
    if (c->load[i] != c->load[k]) {
        return c->load[i] < c->load[k] ? -1 : 1;
    }
    return strcmp(c->brokers[i].id, c->brokers[k].id);
}

/* A load figure we can compute with (reports are checked on decode, but
 * this is a pure function and takes anything). */
static double br_assign_load(double v)
{
    return isfinite(v) && v > 0 ? v : 0;
}

size_t br_assign_compute(br_assign_broker_t *brokers, size_t nbrokers, br_assign_queue_t *queues,
                         size_t nqueues, const br_assign_params_t *p)
{
    br_assign_params_t defaults;
    if (!p) {
        br_assign_params_default(&defaults);
        p = &defaults;
    }
    for (size_t q = 0; q < nqueues; q++) {
        if (queues[q].current < 0 || (size_t)queues[q].current >= nbrokers) {
            queues[q].current = -1;
        }
        queues[q].assignee = -1;
    }
    for (size_t b = 0; b < nbrokers; b++) {
        brokers[b].target = 0;
        brokers[b].overloaded = false;
    }
    if (nbrokers == 0 || nqueues == 0) {
        return 0;
    }
    size_t *count = mq_calloc(nbrokers, sizeof(*count));
    double *load = mq_calloc(nbrokers, sizeof(*load));
    size_t *target = mq_calloc(nbrokers, sizeof(*target));
    size_t *got = mq_calloc(nbrokers, sizeof(*got));
    bool *over = mq_calloc(nbrokers, sizeof(*over));
    size_t *order = mq_malloc(MQ_MAX(nbrokers, nqueues) * sizeof(*order));
    br_assign_ctx_t ctx = {brokers, queues, count, load};
    br_assign_cur = &ctx;

    double total = 0;
    for (size_t b = 0; b < nbrokers; b++) {
        load[b] = br_assign_load(brokers[b].load);
        total += load[b];
    }
    for (size_t q = 0; q < nqueues; q++) {
        if (queues[q].current >= 0) {
            count[queues[q].current]++;
        }
    }

    /* 1. Targets: the overloaded first, the rest shared evenly. */
    double avg = total / (double)nbrokers;
    double factor = MQ_MAX(p->overload_factor, 1.0);
    size_t share = nqueues / nbrokers;
    size_t left = nqueues;
    size_t nnormal = 0;
    size_t nheld = 0;
    for (size_t b = 0; b < nbrokers; b++) {
        over[b] = nbrokers > 1 && load[b] > factor * avg && load[b] > p->overload_floor;
        nnormal += !over[b];
        nheld += !over[b] && brokers[b].hold > 0;
    }
    /* Holds only while somebody is left to take the rest. */
    bool holds = nheld < nnormal;
    nnormal = 0;
    for (size_t b = 0; b < nbrokers; b++) {
        bool held = holds && nbrokers > 1 && brokers[b].hold > 0;
        brokers[b].overloaded = over[b];
        if (!over[b] && !held) {
            order[nnormal++] = b;
            continue;
        }
        size_t t = share;
        if (over[b]) {
            double scaled = floor((double)share * avg / load[b]);
            t = scaled < 1 ? 1 : (size_t)scaled;
        }
        if (held) {
            t = MQ_MIN(t, MQ_MAX(brokers[b].hold, (size_t)1));
        }
        target[b] = MQ_MIN(t, share);
        left -= target[b];
    }
    /* nbrokers > 1 and not everybody is above the average: nnormal > 0. */
    qsort(order, nnormal, sizeof(*order), br_assign_extra_cmp);
    for (size_t k = 0; k < nnormal; k++) {
        target[order[k]] = left / nnormal + (k < left % nnormal ? 1 : 0);
    }
    for (size_t b = 0; b < nbrokers; b++) {
        brokers[b].target = target[b];
    }

    /* 2. Keep, 3. fill, both in (topic, queue) order. */
    for (size_t q = 0; q < nqueues; q++) {
        order[q] = q;
    }
    qsort(order, nqueues, sizeof(*order), br_assign_queue_cmp);
    for (size_t k = 0; k < nqueues; k++) {
        br_assign_queue_t *qu = &queues[order[k]];
        if (qu->current >= 0 && got[qu->current] < target[qu->current]) {
            qu->assignee = qu->current;
            got[qu->current]++;
        }
    }
    size_t moves = 0;
    for (size_t k = 0; k < nqueues; k++) {
        br_assign_queue_t *qu = &queues[order[k]];
        if (qu->assignee >= 0) {
            continue;
        }
        size_t best = nbrokers;
        for (size_t b = 0; b < nbrokers; b++) {
            if (got[b] >= target[b]) {
                continue;
            }
            if (best == nbrokers) {
                best = b;
                continue;
            }
            size_t db = target[b] - got[b];
            size_t dbest = target[best] - got[best];
            if (db > dbest || (db == dbest && (load[b] < load[best] ||
                                               (load[b] == load[best] &&
                                                strcmp(brokers[b].id, brokers[best].id) < 0)))) {
                best = b;
            }
        }
        /* The targets add up to the number of queues. */
        if (best == nbrokers) {
            best = 0;
        }
        qu->assignee = (int)best;
        got[best]++;
        moves += qu->current >= 0;
    }
    br_assign_cur = NULL;
    free(count);
    free(load);
    free(target);
    free(got);
    free(over);
    free(order);
    return moves;
}
