/*
 * it_ledger: see it_ledger.h. The writer's callbacks run on the ledger
 * client's loop; its counters are shared with the test thread under a mutex.
 */
#include "it_ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

lc_client_t *it_lc_client(it_cluster_t *c, int e, int qw, int qa)
{
    lc_client_conf_t conf;
    lc_client_conf_default(&conf);
    conf.zk_servers = c->zk_addr;
    conf.zk_session_timeout_ms = 4000;
    conf.ensemble_size = e;
    conf.write_quorum = qw;
    conf.ack_quorum = qa;
    conf.add_timeout_ms = 3000;
    conf.read_timeout_ms = 3000;
    lc_client_t *cl = NULL;
    if (lc_client_new(&conf, &cl) != MQ_OK) {
        return NULL;
    }
    return cl;
}

void it_lc_payload(uint64_t ledger, int64_t entry, uint8_t *buf, size_t size)
{
    uint64_t s = mq_mix64(ledger * 1000003u + (uint64_t)entry);
    for (size_t i = 0; i < size; i++) {
        if (i % 8 == 0) {
            s = mq_mix64(s);
        }
        buf[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
}

static void it_writer_issue(it_writer_t *w);

static void it_writer_added(mq_err_t err, int64_t entry_id, void *arg)
{
    it_writer_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->inflight--;
    if (err == MQ_OK) {
        w->acked++;
        if (entry_id > w->max_acked) {
            w->max_acked = entry_id;
        }
        if (entry_id >= w->map_cap) {
            int64_t cap = MQ_MAX(entry_id + 1, w->map_cap * 2);
            w->acked_map = mq_realloc(w->acked_map, (size_t)cap);
            memset(w->acked_map + w->map_cap, 0, (size_t)(cap - w->map_cap));
            w->map_cap = cap;
        }
        w->acked_map[entry_id] = 1;
    } else {
        w->failed++;
        if (w->first_err == MQ_OK) {
            w->first_err = err;
        }
        w->stop = true;
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    it_writer_issue(w);
}

/* Keeps inflight_max adds out. The ledger numbers entries in submission
 * order; the lock is held across each submission (it only posts to the
 * loop), so that order is the order of `issued` even when the test thread
 * and the loop's callbacks both issue. */
static void it_writer_issue(it_writer_t *w)
{
    uint8_t *buf = mq_malloc(w->size ? w->size : 1);
    pthread_mutex_lock(&w->lock);
    while (!w->stop && w->inflight < w->inflight_max && (w->total < 0 || w->issued < w->total)) {
        int64_t e = w->issued++;
        w->inflight++;
        it_lc_payload(lc_ledger_id(w->lh), e, buf, w->size);
        mq_err_t err = lc_ledger_add_async(w->lh, buf, w->size, it_writer_added, w);
        if (err != MQ_OK) {
            w->inflight--;
            w->failed++;
            w->first_err = w->first_err ? w->first_err : err;
            w->stop = true;
        }
    }
    if (w->inflight == 0 && (w->stop || (w->total >= 0 && w->issued >= w->total))) {
        w->done = true;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    free(buf);
}

void it_writer_start(it_writer_t *w, lc_ledger_t *lh, int64_t total, size_t size, int inflight)
{
    memset(w, 0, sizeof(*w));
    w->lh = lh;
    w->total = total;
    w->size = size;
    w->inflight_max = inflight;
    w->max_acked = -1;
    w->first_err = MQ_OK;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    it_writer_issue(w);
}

static bool it_writer_wait(it_writer_t *w, int64_t n, bool until_done, unsigned timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)timeout_ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (rc == 0 && !w->done && (until_done || w->acked < n)) {
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    bool ok = until_done ? w->done : w->acked >= n;
    pthread_mutex_unlock(&w->lock);
    return ok;
}

bool it_writer_wait_acked(it_writer_t *w, int64_t n, unsigned timeout_ms)
{
    return it_writer_wait(w, n, false, timeout_ms);
}

bool it_writer_wait_done(it_writer_t *w, unsigned timeout_ms)
{
    return it_writer_wait(w, 0, true, timeout_ms);
}

void it_writer_stop(it_writer_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    if (w->inflight == 0) {
        w->done = true;
    }
    pthread_mutex_unlock(&w->lock);
    it_writer_wait_done(w, 60000);
}

bool it_writer_was_acked(it_writer_t *w, int64_t e)
{
    pthread_mutex_lock(&w->lock);
    bool acked = e >= 0 && e < w->map_cap && w->acked_map[e];
    pthread_mutex_unlock(&w->lock);
    return acked;
}

it_writer_stats_t it_writer_stats(it_writer_t *w)
{
    pthread_mutex_lock(&w->lock);
    it_writer_stats_t st = {w->acked, w->max_acked, w->failed, w->first_err, w->done};
    pthread_mutex_unlock(&w->lock);
    return st;
}

void it_writer_fini(it_writer_t *w)
{
    free(w->acked_map);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

int64_t it_lc_check(lc_ledger_t *lh, int64_t last, size_t size)
{
    uint8_t *want = mq_malloc(size ? size : 1);
    int64_t bad = 0;
    for (int64_t e = 0; e <= last; e++) {
        mq_slice_t p;
        mq_err_t err = lc_ledger_read(lh, e, &p);
        if (err != MQ_OK) {
            if (bad++ < 5) {
                fprintf(stderr, "\n  entry %lld of ledger %llu: %s", (long long)e,
                        (unsigned long long)lc_ledger_id(lh), mq_err_name(err));
            }
            continue;
        }
        it_lc_payload(lc_ledger_id(lh), e, want, size);
        if (p.len != size || memcmp(p.ptr, want, size) != 0) {
            if (bad++ < 5) {
                fprintf(stderr, "\n  entry %lld of ledger %llu has the wrong bytes", (long long)e,
                        (unsigned long long)lc_ledger_id(lh));
            }
        }
        mq_slice_release(&p);
    }
    free(want);
    return bad;
}
