/*
 * br_queue: the queues this broker owns, each with its managed log.
 *
 * br_cluster calls br_queue_acquire when this broker holds a queue's
 * ownership znode: it opens the managed log (which fences and recovers the
 * previous owner's last ledger) and only then puts the queue in the table,
 * so a send never reaches a log that is not ready. br_queue_release takes it
 * out of the table, waits until no send holds a reference, then closes the
 * log (planned handover: the next owner finds the ledger closed) or just
 * frees it (lost: the next owner fences it anyway). The queue's consumer
 * cursors (br_recv_cursor.c) go first, the same way: closed with a last
 * snapshot, or just freed when the queue was lost.
 *
 * When a log reports it was fenced (another broker took the queue, e.g.
 * after our ZooKeeper session expired), the queue stops serving at once and
 * the ownership is given up through br_cluster_release.
 *
 * Threads: acquire/release run on br_cluster's workers and may block; the
 * lookups are called from any thread under srv->qlock.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "br_server_int.h"
#include "mq_log.h"
#include "mq_util.h"

uint64_t br_queue_key(const char *topic, int queue)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = topic; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    return mq_mix64(h ^ (uint64_t)(uint32_t)queue);
}

static br_queue_t **br_queue_find_locked(br_server_t *srv, const char *topic, int queue)
{
    for (br_queue_t **pp = &srv->queues; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == queue && strcmp((*pp)->topic, topic) == 0) {
            return pp;
        }
    }
    return NULL;
}

typedef struct br_queue_fence_arg {
    br_server_t *srv;
    char topic[BR_TOPIC_NAME_MAX + 1];
    int queue;
} br_queue_fence_arg_t;

static void br_queue_fenced_task(void *arg)
{
    br_queue_fence_arg_t *fa = arg;
    MQ_LOG_WARN("queue fenced by another owner, giving it up topic=%s queue=%d", fa->topic,
                fa->queue);
    /* Out of the table first (the log fails every append now anyway), then
     * the ownership znode, so a later acquire starts from a clean slate. */
    br_queue_release(fa->topic, fa->queue, true, fa->srv);
    br_cluster_release(fa->srv->cluster, fa->topic, fa->queue);
    free(fa);
}

/* @thread any (the log's): only posts. */
static void br_queue_on_fenced(br_mlog_t *ml, void *arg)
{
    (void)ml;
    br_queue_fence_arg_t *fa = arg;
    if (atomic_load(&fa->srv->stopping)) {
        return; /* the shutdown releases every queue anyway */
    }
    br_queue_fence_arg_t *copy = mq_malloc(sizeof(*copy));
    *copy = *fa;
    mq_executor_submit(copy->srv->slow, br_queue_key(copy->topic, copy->queue),
                       br_queue_fenced_task, copy);
}

mq_err_t br_queue_acquire(const char *topic, int queue, void *arg)
{
    br_server_t *srv = arg;
    const br_conf_t *c = srv->conf;
    br_queue_fence_arg_t *fa = mq_calloc(1, sizeof(*fa));
    fa->srv = srv;
    snprintf(fa->topic, sizeof(fa->topic), "%s", topic);
    fa->queue = queue;

    br_mlog_conf_t mc;
    br_mlog_conf_default(&mc);
    mc.lc = srv->lc;
    mc.zk = srv->zk;
    mc.root = srv->root;
    mc.topic = topic;
    mc.queue = queue;
    mc.executor = srv->ex;
    mc.key = br_queue_key(topic, queue);
    mc.linger_us = (uint32_t)c->sendLingerMicros;
    mc.recent = &srv->recent_append;
    mc.max_entry_bytes = (size_t)c->maxEntryBytes;
    mc.max_inflight = (uint32_t)c->sendWindowEntries;
    mc.rollover_bytes = (uint64_t)c->ledgerRolloverSizeMB << 20;
    mc.rollover_entries = (uint64_t)c->ledgerRolloverEntries;
    mc.rollover_secs = (uint32_t)c->ledgerRolloverMinutes * 60u;
    mc.retention_hours = (uint32_t)c->fileReservedTime;
    mc.cache_bytes = (size_t)c->tailCacheSizeMB << 20;
    mc.budget = &srv->tail_budget;
    mc.read_budget = c->readCacheSizeMB > 0 ? &srv->read_budget : NULL;
    mc.on_fenced = br_queue_on_fenced;
    mc.arg = fa;

    uint64_t t0 = mq_now_ms();
    br_mlog_t *ml;
    mq_err_t err = br_mlog_open(&mc, &ml);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot open queue topic=%s queue=%d err=%s", topic, queue, mq_err_str(err));
        free(fa);
        return err;
    }
    br_queue_t *q = mq_calloc(1, sizeof(*q));
    snprintf(q->topic, sizeof(q->topic), "%s", topic);
    q->id = queue;
    q->ml = ml;
    q->serving = true;
    /* The fence argument lives as long as the log: freed in release. */
    q->fence_arg = fa;
    br_recv_queue_open(srv, q);
    pthread_mutex_lock(&srv->qlock);
    q->next = srv->queues;
    srv->queues = q;
    pthread_mutex_unlock(&srv->qlock);
    /* Receives waiting on the topic may now pop from this queue too. */
    br_recv_notify(srv, topic, queue);
    MQ_LOG_INFO("serving queue topic=%s queue=%d next_offset=%lld open_ms=%llu", topic, queue,
                (long long)br_mlog_max_offset(ml), (unsigned long long)(mq_now_ms() - t0));
    return MQ_OK;
}

void br_queue_release(const char *topic, int queue, bool lost, void *arg)
{
    br_server_t *srv = arg;
    pthread_mutex_lock(&srv->qlock);
    br_queue_t **pp = br_queue_find_locked(srv, topic, queue);
    if (!pp) {
        pthread_mutex_unlock(&srv->qlock);
        return;
    }
    br_queue_t *q = *pp;
    *pp = q->next;
    q->serving = false;
    while (q->refs > 0) {
        pthread_cond_wait(&srv->qcond, &srv->qlock);
    }
    pthread_mutex_unlock(&srv->qlock);
    /* The consumer cursors first: a planned handover leaves each with a
     * last snapshot, so the next owner redelivers nothing acknowledged. */
    br_recv_queue_release(srv, q, lost || br_mlog_fenced(q->ml));
    if (!lost && !br_mlog_fenced(q->ml)) {
        mq_err_t err = br_mlog_close(q->ml);
        if (err != MQ_OK && err != MQ_EFENCED) {
            MQ_LOG_WARN("closing queue failed topic=%s queue=%d err=%s", topic, queue,
                        mq_err_str(err));
        }
    }
    br_mlog_free(q->ml);
    free(q->fence_arg);
    MQ_LOG_INFO("released queue topic=%s queue=%d lost=%d", topic, queue, lost);
    free(q);
}

br_queue_t *br_queue_get(br_server_t *srv, const char *topic, int queue)
{
    pthread_mutex_lock(&srv->qlock);
    br_queue_t **pp = br_queue_find_locked(srv, topic, queue);
    br_queue_t *q = NULL;
    if (pp && (*pp)->serving && !br_mlog_fenced((*pp)->ml)) {
        q = *pp;
        q->refs++;
    }
    pthread_mutex_unlock(&srv->qlock);
    return q;
}

void br_queue_put(br_server_t *srv, br_queue_t *q)
{
    pthread_mutex_lock(&srv->qlock);
    if (--q->refs == 0) {
        pthread_cond_broadcast(&srv->qcond);
    }
    pthread_mutex_unlock(&srv->qlock);
}

int br_queue_local(br_server_t *srv, const char *topic, int *ids, int cap)
{
    int n = 0;
    pthread_mutex_lock(&srv->qlock);
    for (br_queue_t *q = srv->queues; q && n < cap; q = q->next) {
        if (q->serving && strcmp(q->topic, topic) == 0) {
            ids[n++] = q->id;
        }
    }
    pthread_mutex_unlock(&srv->qlock);
    return n;
}

int br_queue_count(br_server_t *srv)
{
    int n = 0;
    pthread_mutex_lock(&srv->qlock);
    for (br_queue_t *q = srv->queues; q; q = q->next) {
        n++;
    }
    pthread_mutex_unlock(&srv->qlock);
    return n;
}

void br_queue_release_all(br_server_t *srv)
{
    for (;;) {
        char topic[BR_TOPIC_NAME_MAX + 1];
        int id;
        pthread_mutex_lock(&srv->qlock);
        if (!srv->queues) {
            pthread_mutex_unlock(&srv->qlock);
            return;
        }
        snprintf(topic, sizeof(topic), "%s", srv->queues->topic);
        id = srv->queues->id;
        pthread_mutex_unlock(&srv->qlock);
        br_queue_release(topic, id, false, srv);
    }
}

void br_queue_trim_all(br_server_t *srv)
{
    /* Collect names first: trimming blocks and the table may change. */
    char(*names)[BR_TOPIC_NAME_MAX + 1] = NULL;
    int *ids = NULL;
    int n = 0, cap = 0;
    pthread_mutex_lock(&srv->qlock);
    for (br_queue_t *q = srv->queues; q; q = q->next) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = mq_realloc(names, (size_t)cap * sizeof(*names));
            ids = mq_realloc(ids, (size_t)cap * sizeof(*ids));
        }
        snprintf(names[n], sizeof(names[n]), "%s", q->topic);
        ids[n++] = q->id;
    }
    pthread_mutex_unlock(&srv->qlock);
    for (int i = 0; i < n; i++) {
        br_queue_t *q = br_queue_get(srv, names[i], ids[i]);
        if (!q) {
            continue;
        }
        int deleted = 0;
        mq_err_t err = br_mlog_trim(q->ml, mq_wall_ms(), &deleted);
        if (err != MQ_OK) {
            MQ_LOG_WARN("retention failed topic=%s queue=%d err=%s", names[i], ids[i],
                        mq_err_str(err));
        } else if (deleted > 0) {
            MQ_LOG_INFO("retention deleted ledgers topic=%s queue=%d count=%d", names[i], ids[i],
                        deleted);
        }
        br_queue_put(srv, q);
    }
    free(names);
    free(ids);
}
