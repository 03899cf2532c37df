/*
 * br_mlog_list: everything that changes a managed log's list of ledgers in
 * ZooKeeper, and the log's life cycle: open (takeover with recovery),
 * rollover, close (planned handover), free, and retention (trim).
 *
 * Every writer of the list holds meta_lock across read-modify-compare-and-
 * set of ml->rec, so the log's own updates never race each other; a
 * BADVERSION therefore means another broker wrote the list, and the log is
 * fenced (Pulsar's rule). Each successful write posts a copy of the list to
 * the executor (its `view`, which reads use) while still holding meta_lock,
 * so views arrive in the order the list was written.
 *
 * Open (caller's thread, blocking): read the list (create it empty if the
 * queue never had one); if its last ledger is open, recover it (fencing the
 * previous writer), read its last entry to learn the next offset and record
 * its counts, or drop it when empty; create a new ledger, append it, CAS.
 *
 * Rollover (Pulsar's order; a helper thread): once the full ledger's adds
 * are in, close it, create the next one, CAS the list (old ledger closed
 * with its entries, messages and mtime, new one appended); the executor
 * then switches over and sends what queued up meanwhile, in order. The old
 * writer handle stays open for reading. Only the last ledger is ever open.
 *
 * Close (caller's thread): refuse appends, let the executor flush the
 * intake and drain the adds, close the ledger, record its end (an empty one
 * is dropped). Free waits for every job, task and callback of the log.
 *
 * Trim (caller's thread): from the oldest, closed ledgers last written
 * retention_hours ago or more, never the last one; CAS the list (min offset
 * = the first remaining ledger's first offset), then delete the ledgers.
 */
#include "br_mlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_mlog_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_MLOG_DEF_LINGER_US 500
#define BR_MLOG_DEF_MAX_ENTRY ((size_t)256 << 10)
#define BR_MLOG_DEF_ROLL_BYTES (1ull << 30)
#define BR_MLOG_DEF_ROLL_ENTRIES 50000
#define BR_MLOG_DEF_ROLL_SECS (4u * 3600u)
#define BR_MLOG_DEF_RETENTION_H 72
#define BR_MLOG_DEF_CACHE ((size_t)4 << 20)
/* Entries must hold a header and a message, and fit a bookie frame. */
#define BR_MLOG_MIN_ENTRY 128
#define BR_MLOG_MAX_ENTRY ((size_t)5 << 20)

void br_mlog_conf_default(br_mlog_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->root = "/ledgermq";
    conf->linger_us = BR_MLOG_DEF_LINGER_US;
    conf->max_entry_bytes = BR_MLOG_DEF_MAX_ENTRY;
    conf->max_inflight = BR_MLOG_MAX_INFLIGHT;
    conf->rollover_bytes = BR_MLOG_DEF_ROLL_BYTES;
    conf->rollover_entries = BR_MLOG_DEF_ROLL_ENTRIES;
    conf->rollover_secs = BR_MLOG_DEF_ROLL_SECS;
    conf->retention_hours = BR_MLOG_DEF_RETENTION_H;
    conf->cache_bytes = BR_MLOG_DEF_CACHE;
}

/* A new ledger for this queue, with custom metadata naming it. Blocking. */
static mq_err_t br_mlog_create_ledger(br_mlog_t *ml, lc_ledger_t **out)
{
    char queue[16];
    snprintf(queue, sizeof(queue), "%d", ml->conf.queue);
    meta_kv_t custom[3] = {
        {"component", "ledgermq-mlog"},
        {"topic", ml->topic},
        {"queue", queue},
    };
    lc_ledger_opts_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.custom = custom;
    opts.ncustom = MQ_ARRAY_LEN(custom);
    return lc_ledger_create(ml->conf.lc, &opts, out);
}

/* A ledger no list names any more (or never will): its data can go. */
static void br_mlog_delete_ledger(br_mlog_t *ml, uint64_t id)
{
    mq_err_t err = lc_ledger_delete(ml->conf.lc, id);
    if (err != MQ_OK && err != MQ_ENOLEDGER) {
        MQ_LOG_WARN("cannot delete ledger, it stays orphaned topic=%s queue=%d ledger=%llu err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)id, mq_err_name(err));
    }
}

typedef struct br_mlog_view_arg {
    br_mlog_t *ml;
    br_mlog_info_t view;
} br_mlog_view_arg_t;

/* Executor: installs a newer copy of the list. */
static void br_mlog_view_task(void *arg)
{
    br_mlog_view_arg_t *a = arg;
    br_mlog_t *ml = a->ml;
    br_mlog_info_fini(&ml->view);
    ml->view = a->view;
    free(a);
    if (!ml->shutting) {
        br_mlog_cache_trim(ml, ml->view.min_offset);
        br_mlog_rcache_trim(ml, ml->view.min_offset);
        br_mlog_rh_prune(ml);
    }
    br_mlog_op_done(ml);
}

/* Posts a copy of rec to the executor. @locks meta_lock held, so views
 * arrive in the order the list was written. */
static void br_mlog_post_view(br_mlog_t *ml, const br_mlog_info_t *rec)
{
    br_mlog_view_arg_t *a = mq_calloc(1, sizeof(*a));
    a->ml = ml;
    br_mlog_info_copy(&a->view, rec);
    br_mlog_op_add(ml);
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_view_task, a);
}

typedef struct br_mlog_stop_arg {
    br_mlog_t *ml;
    mq_err_t err;
} br_mlog_stop_arg_t;

static void br_mlog_stop_task(void *arg)
{
    br_mlog_stop_arg_t *a = arg;
    br_mlog_t *ml = a->ml;
    br_mlog_stop(ml, a->err);
    free(a);
    br_mlog_op_done(ml);
}

/* A blocking path found the log fenced (or broken): appends are refused
 * from now on and the executor stops the rest. Any thread. */
static void br_mlog_post_stop(br_mlog_t *ml, mq_err_t err)
{
    br_mlog_stop_arg_t *a = mq_malloc(sizeof(*a));
    a->ml = ml;
    a->err = err;
    pthread_mutex_lock(&ml->lock);
    if (!ml->freeing) {
        ml->refuse = err;
    }
    ml->ops++;
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_stop_task, a);
    pthread_mutex_unlock(&ml->lock);
    atomic_store(&ml->stopped_pub, true);
}

/* --- rollover -------------------------------------------------------------------- */

static void br_mlog_roll_fire(void *arg)
{
    br_mlog_t *ml = arg;
    ml->roll_timer = NULL;
    ml->age_due = true;
    if (ml->state == BR_MLOG_S_OPEN && ml->cur_entries_sent > 0 && !ml->closing) {
        ml->state = BR_MLOG_S_ROLL_WAIT;
        if (ml->ninflight == 0) {
            br_mlog_roll_start(ml);
        }
    }
}

static void br_mlog_roll_arm(br_mlog_t *ml)
{
    if (ml->roll_timer) {
        mq_timer_cancel(ml->roll_timer);
    }
    ml->roll_timer =
        mq_executor_schedule(ml->conf.executor, ml->conf.key,
                             (uint64_t)ml->conf.rollover_secs * 1000u, br_mlog_roll_fire, ml);
}

typedef struct br_mlog_roll {
    br_mlog_t *ml;
    lc_ledger_t *old;
    uint64_t old_id;
    int64_t entries;
    int64_t messages;
    int64_t next; /* first offset of the new ledger */
    mq_err_t err;
    lc_ledger_t *lh; /* the new ledger */
    br_mlog_info_t view;
} br_mlog_roll_t;

static void br_mlog_roll_done(void *arg);

/* Helper thread: close the full ledger, create the next, CAS the list. */
static void br_mlog_roll_job(void *arg)
{
    br_mlog_roll_t *r = arg;
    br_mlog_t *ml = r->ml;
    r->err = lc_ledger_close(r->old);
    if (r->err == MQ_OK) {
        r->err = br_mlog_create_ledger(ml, &r->lh);
    }
    if (r->err != MQ_OK) {
        mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_roll_done, r);
        return;
    }
    pthread_mutex_lock(&ml->meta_lock);
    br_mlog_info_t next;
    br_mlog_info_copy(&next, &ml->rec);
    /* Only this log writes its list, and trims never touch the open last
     * ledger: it is still ours. */
    MQ_ASSERT(next.nledgers > 0 && next.ledgers[next.nledgers - 1].ledger == r->old_id &&
              next.ledgers[next.nledgers - 1].entries == -1);
    br_mlog_ledger_info_t *last = &next.ledgers[next.nledgers - 1];
    uint64_t now = mq_wall_ms();
    last->entries = r->entries;
    last->messages = r->messages;
    last->mtime_ms = now;
    next.ledgers = mq_realloc(next.ledgers, (next.nledgers + 1) * sizeof(*next.ledgers));
    br_mlog_ledger_info_t *nl = &next.ledgers[next.nledgers++];
    memset(nl, 0, sizeof(*nl));
    nl->ledger = lc_ledger_id(r->lh);
    nl->first_offset = r->next;
    nl->entries = -1;
    nl->messages = -1;
    nl->ctime_ms = now;
    mq_err_t err = br_mlog_meta_cas(ml->conf.zk, ml->path, &next);
    r->err = err;
    if (err == MQ_OK) {
        br_mlog_info_fini(&ml->rec);
        ml->rec = next;
        br_mlog_info_copy(&r->view, &ml->rec);
        /* Posted under meta_lock: the view it carries must not overtake
         * (or be overtaken by) one a concurrent trim posts. r belongs to
         * the executor from here on. */
        mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_roll_done, r);
        pthread_mutex_unlock(&ml->meta_lock);
        return;
    }
    br_mlog_info_fini(&next);
    pthread_mutex_unlock(&ml->meta_lock);
    uint64_t id = lc_ledger_id(r->lh);
    lc_ledger_free(r->lh);
    r->lh = NULL;
    if (err == MQ_EBADVERSION) {
        br_mlog_delete_ledger(ml, id);
    }
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_roll_done, r);
}

static void br_mlog_roll_done(void *arg)
{
    br_mlog_roll_t *r = arg;
    br_mlog_t *ml = r->ml;
    if (r->err != MQ_OK) {
        if (!ml->shutting) {
            MQ_LOG_WARN("managed log rollover failed topic=%s queue=%d ledger=%llu err=%s",
                        ml->topic, ml->conf.queue, (unsigned long long)r->old_id,
                        mq_err_name(r->err));
        }
        br_mlog_stop(ml, r->err);
        free(r);
        return;
    }
    lc_ledger_t *old = ml->cur;
    ml->cur = r->lh;
    ml->cur_id = lc_ledger_id(r->lh);
    ml->cur_first = r->next;
    ml->cur_entries_sent = 0;
    ml->cur_bytes_sent = 0;
    ml->cur_entries_acked = 0;
    ml->cur_msgs_acked = 0;
    ml->age_due = false;
    ml->nindex = 0;
    br_mlog_info_fini(&ml->view);
    ml->view = r->view;
    br_mlog_rh_adopt(ml, r->old_id, old);
    MQ_LOG_INFO("managed log rolled over topic=%s queue=%d ledger=%llu entries=%lld messages=%lld "
                "next_ledger=%llu first_offset=%lld",
                ml->topic, ml->conf.queue, (unsigned long long)r->old_id, (long long)r->entries,
                (long long)r->messages, (unsigned long long)ml->cur_id, (long long)r->next);
    free(r);
    if (ml->state == BR_MLOG_S_ROLLING) {
        ml->state = BR_MLOG_S_OPEN;
    }
    if (!ml->shutting && ml->state == BR_MLOG_S_OPEN) {
        br_mlog_roll_arm(ml);
        br_mlog_pump(ml);
    }
}

/* The current ledger is full and idle: roll it on a helper thread.
 * @locality executor */
void br_mlog_roll_start(br_mlog_t *ml)
{
    if (ml->shutting) {
        return;
    }
    if (ml->closing) {
        /* The close is about to close this ledger anyway. */
        ml->state = BR_MLOG_S_OPEN;
        return;
    }
    br_mlog_roll_t *r = mq_calloc(1, sizeof(*r));
    r->ml = ml;
    r->old = ml->cur;
    r->old_id = ml->cur_id;
    r->entries = ml->cur_entries_acked;
    r->messages = ml->cur_msgs_acked;
    r->next = ml->next_offset;
    ml->state = BR_MLOG_S_ROLLING;
    if (ml->roll_timer) {
        mq_timer_cancel(ml->roll_timer);
        ml->roll_timer = NULL;
    }
    br_mlog_job_start(ml, br_mlog_roll_job, r);
}

/* --- open -------------------------------------------------------------------------- */

static mq_err_t br_mlog_conf_check(const br_mlog_conf_t *in, br_mlog_conf_t *c)
{
    *c = *in;
    if (!c->lc || !c->zk || !c->root || !c->topic || !c->executor || c->queue < 0) {
        return MQ_EINVAL;
    }
    if (c->max_inflight == 0 || c->max_inflight > 64) {
        c->max_inflight = BR_MLOG_MAX_INFLIGHT;
    }
    if (c->max_entry_bytes == 0) {
        c->max_entry_bytes = BR_MLOG_DEF_MAX_ENTRY;
    }
    if (c->rollover_bytes == 0) {
        c->rollover_bytes = BR_MLOG_DEF_ROLL_BYTES;
    }
    if (c->rollover_entries == 0) {
        c->rollover_entries = BR_MLOG_DEF_ROLL_ENTRIES;
    }
    if (c->rollover_secs == 0) {
        c->rollover_secs = BR_MLOG_DEF_ROLL_SECS;
    }
    if (c->max_entry_bytes < BR_MLOG_MIN_ENTRY || c->max_entry_bytes > BR_MLOG_MAX_ENTRY) {
        return MQ_EINVAL;
    }
    return MQ_OK;
}

/* Frees what br_mlog_open built before anything ran on the executor. */
static void br_mlog_destroy(br_mlog_t *ml)
{
    br_mlog_rh_free_all(ml);
    br_mlog_cache_fini(&ml->cache);
    br_mlog_rcache_trim(ml, INT64_MAX);
    if (ml->rcache_counted) {
        atomic_fetch_sub(&ml->conf.read_budget->logs, 1);
    }
    free(ml->index);
    br_mlog_info_fini(&ml->view);
    br_mlog_info_fini(&ml->rec);
    pthread_mutex_destroy(&ml->lock);
    pthread_cond_destroy(&ml->cond);
    pthread_mutex_destroy(&ml->meta_lock);
    pthread_mutex_destroy(&ml->rlock);
    free(ml->topic);
    free(ml->root);
    free(ml);
}

/* The list's last ledger is open: its writer is gone or is being replaced.
 * Recover it (fence, find the end, close), learn the next offset from its
 * last entry and record its counts in rec; an empty one is removed from
 * rec instead (*drop gets its id). *rh gets the recovered handle. */
static mq_err_t br_mlog_recover_last(br_mlog_t *ml, br_mlog_info_t *rec, lc_ledger_t **rh,
                                     uint64_t *drop)
{
    br_mlog_ledger_info_t *last = &rec->ledgers[rec->nledgers - 1];
    lc_ledger_t *lh = NULL;
    mq_err_t err = lc_ledger_recover(ml->conf.lc, last->ledger, &lh);
    if (err == MQ_ENOLEDGER) {
        MQ_LOG_WARN("queue record names a ledger that does not exist topic=%s queue=%d ledger=%llu",
                    ml->topic, ml->conf.queue, (unsigned long long)last->ledger);
        return MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        return err;
    }
    int64_t lac = lc_ledger_lac(lh);
    if (lac < 0) {
        *drop = last->ledger;
        rec->nledgers--;
        lc_ledger_free(lh);
        return MQ_OK;
    }
    mq_slice_t s;
    err = lc_ledger_read(lh, lac, &s);
    if (err != MQ_OK) {
        lc_ledger_free(lh);
        return err;
    }
    br_mlog_entry_hdr_t h;
    err = br_mlog_entry_decode(s.ptr, s.len, &h, 0, NULL, 0, NULL);
    mq_slice_release(&s);
    /* Entries hold at least one message each: the last one ends at least
     * lac + 1 messages after the ledger's first offset. */
    if (err == MQ_OK &&
        (h.base < last->first_offset || h.base + (int64_t)h.count - last->first_offset < lac + 1)) {
        err = MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("last entry of the recovered ledger does not decode topic=%s queue=%d "
                    "ledger=%llu entry=%lld err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)last->ledger, (long long)lac,
                    mq_err_name(err));
        lc_ledger_free(lh);
        return MQ_ECORRUPT;
    }
    last->entries = lac + 1;
    last->messages = h.base + (int64_t)h.count - last->first_offset;
    last->mtime_ms = mq_wall_ms();
    *rh = lh;
    return MQ_OK;
}

static void br_mlog_start_task(void *arg)
{
    br_mlog_t *ml = arg;
    if (!ml->shutting && ml->state == BR_MLOG_S_OPEN) {
        br_mlog_roll_arm(ml);
    }
    br_mlog_op_done(ml);
}

mq_err_t br_mlog_open(const br_mlog_conf_t *conf, br_mlog_t **out)
{
    if (!conf || !out) {
        return MQ_EINVAL;
    }
    br_mlog_conf_t c;
    mq_err_t err = br_mlog_conf_check(conf, &c);
    if (err != MQ_OK) {
        return err;
    }
    br_mlog_t *ml = mq_calloc(1, sizeof(*ml));
    ml->topic = mq_strdup(c.topic);
    ml->root = mq_strdup(c.root);
    ml->conf = c;
    ml->conf.topic = ml->topic;
    ml->conf.root = ml->root;
    ml->linger_ns = (uint64_t)c.linger_us * 1000u;
    ml->retention_ms = (uint64_t)c.retention_hours * 3600000u;
    ml->cache.budget = c.budget;
    if (c.budget) {
        atomic_fetch_add(&c.budget->logs, 1);
    }
    pthread_mutex_init(&ml->lock, NULL);
    pthread_cond_init(&ml->cond, NULL);
    pthread_mutex_init(&ml->meta_lock, NULL);
    pthread_mutex_init(&ml->rlock, NULL);
    ml->rec.version = -1;
    ml->view.version = -1;
    err = br_mlog_path(ml->root, ml->topic, c.queue, ml->path, sizeof(ml->path));
    if (err == MQ_OK) {
        err = br_mlog_meta_load(c.zk, ml->path, true, &ml->rec);
    }
    if (err != MQ_OK) {
        br_mlog_destroy(ml);
        return err;
    }
    br_mlog_info_t *rec = &ml->rec;
    lc_ledger_t *rh = NULL;
    uint64_t recovered = 0;
    uint64_t drop = 0;
    if (rec->nledgers > 0 && rec->ledgers[rec->nledgers - 1].entries < 0) {
        recovered = rec->ledgers[rec->nledgers - 1].ledger;
        err = br_mlog_recover_last(ml, rec, &rh, &drop);
        if (err != MQ_OK) {
            br_mlog_destroy(ml);
            return err;
        }
    }
    int64_t next = br_mlog_record_end(rec);
    lc_ledger_t *lh = NULL;
    err = br_mlog_create_ledger(ml, &lh);
    if (err != MQ_OK) {
        lc_ledger_free(rh);
        br_mlog_destroy(ml);
        return err;
    }
    uint64_t now = mq_wall_ms();
    rec->ledgers = mq_realloc(rec->ledgers, (rec->nledgers + 1) * sizeof(*rec->ledgers));
    br_mlog_ledger_info_t *nl = &rec->ledgers[rec->nledgers++];
    memset(nl, 0, sizeof(*nl));
    nl->ledger = lc_ledger_id(lh);
    nl->first_offset = next;
    nl->entries = -1;
    nl->messages = -1;
    nl->ctime_ms = now;
    err = br_mlog_meta_cas(c.zk, ml->path, rec);
    if (err != MQ_OK) {
        uint64_t id = lc_ledger_id(lh);
        lc_ledger_free(lh);
        /* Unless the outcome is unknown (then the list may name it), the
         * new ledger is nobody's. */
        if (err == MQ_EBADVERSION || !mq_err_retriable(err)) {
            br_mlog_delete_ledger(ml, id);
        }
        lc_ledger_free(rh);
        br_mlog_destroy(ml);
        return err;
    }
    if (drop) {
        br_mlog_delete_ledger(ml, drop);
    }
    rec->max_offset = br_mlog_record_end(rec);
    br_mlog_info_copy(&ml->view, rec);
    ml->state = BR_MLOG_S_OPEN;
    ml->cur = lh;
    ml->cur_id = lc_ledger_id(lh);
    ml->cur_first = next;
    ml->next_offset = next;
    ml->acked_end = next;
    atomic_init(&ml->min_pub, rec->min_offset);
    atomic_init(&ml->end_pub, next);
    atomic_init(&ml->stopped_pub, false);
    atomic_init(&ml->fence_told, false);
    atomic_init(&ml->reads, 0);
    if (rh) {
        br_mlog_rh_adopt(ml, recovered, rh);
    }
    MQ_LOG_INFO("managed log opened topic=%s queue=%d ledger=%llu next_offset=%lld min_offset=%lld "
                "ledgers=%zu recovered=%llu dropped=%llu",
                ml->topic, c.queue, (unsigned long long)ml->cur_id, (long long)next,
                (long long)rec->min_offset, rec->nledgers, (unsigned long long)recovered,
                (unsigned long long)drop);
    /* From here on the executor owns its part (the submit publishes it). */
    br_mlog_op_add(ml);
    mq_executor_submit(c.executor, c.key, br_mlog_start_task, ml);
    *out = ml;
    return MQ_OK;
}

/* --- close, free -------------------------------------------------------------------- */

static void br_mlog_close_task(void *arg)
{
    br_mlog_t *ml = arg;
    ml->closing = true;
    if (ml->linger_timer) {
        mq_timer_cancel(ml->linger_timer);
        ml->linger_timer = NULL;
    }
    br_mlog_pump(ml);
    br_mlog_op_done(ml);
}

mq_err_t br_mlog_close(br_mlog_t *ml)
{
    if (!ml) {
        return MQ_EINVAL;
    }
    MQ_ASSERT(!mq_executor_on_thread(ml->conf.executor, ml->conf.key));
    pthread_mutex_lock(&ml->lock);
    if (ml->close_called || ml->freeing) {
        pthread_mutex_unlock(&ml->lock);
        return MQ_ECLOSED;
    }
    ml->close_called = true;
    if (ml->refuse == MQ_OK) {
        ml->refuse = MQ_ECLOSED;
    }
    ml->ops++;
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_close_task, ml);
    while (!ml->drained && !ml->stopped) {
        pthread_cond_wait(&ml->cond, &ml->lock);
    }
    if (ml->stopped) {
        mq_err_t err = ml->stopped_err;
        pthread_mutex_unlock(&ml->lock);
        return err;
    }
    /* Drained: the executor sends nothing more and hands the ledger over. */
    lc_ledger_t *lh = ml->drain_lh;
    int64_t entries = ml->drain_entries;
    int64_t msgs = ml->drain_msgs;
    pthread_mutex_unlock(&ml->lock);

    uint64_t id = lc_ledger_id(lh);
    mq_err_t err = lc_ledger_close(lh);
    if (err != MQ_OK) {
        MQ_LOG_WARN("managed log close: ledger not closed topic=%s queue=%d ledger=%llu err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)id, mq_err_name(err));
        if (err == MQ_EFENCED) {
            br_mlog_post_stop(ml, MQ_EFENCED);
        }
        return err;
    }
    /* An empty last ledger is dropped rather than recorded. */
    bool drop = entries == 0;
    pthread_mutex_lock(&ml->meta_lock);
    br_mlog_info_t next;
    br_mlog_info_copy(&next, &ml->rec);
    MQ_ASSERT(next.nledgers > 0 && next.ledgers[next.nledgers - 1].ledger == id);
    if (drop) {
        next.nledgers--;
    } else {
        br_mlog_ledger_info_t *last = &next.ledgers[next.nledgers - 1];
        last->entries = entries;
        last->messages = msgs;
        last->mtime_ms = mq_wall_ms();
    }
    err = br_mlog_meta_cas(ml->conf.zk, ml->path, &next);
    if (err == MQ_OK) {
        br_mlog_info_fini(&ml->rec);
        ml->rec = next;
        ml->rec.max_offset = br_mlog_record_end(&ml->rec);
        br_mlog_post_view(ml, &ml->rec);
    } else {
        br_mlog_info_fini(&next);
    }
    pthread_mutex_unlock(&ml->meta_lock);
    if (err != MQ_OK) {
        MQ_LOG_WARN("managed log close: list not updated topic=%s queue=%d ledger=%llu err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)id, mq_err_name(err));
        if (err == MQ_EBADVERSION) {
            br_mlog_post_stop(ml, MQ_EFENCED);
            err = MQ_EFENCED;
        }
        return err;
    }
    if (drop) {
        br_mlog_delete_ledger(ml, id);
    }
    MQ_LOG_INFO("managed log closed topic=%s queue=%d ledger=%llu entries=%lld messages=%lld "
                "next_offset=%lld",
                ml->topic, ml->conf.queue, (unsigned long long)id, (long long)entries,
                (long long)msgs, (long long)atomic_load(&ml->end_pub));
    return MQ_OK;
}

/* Executor, first step of free: start nothing new, fail what is queued. */
static void br_mlog_shutdown(br_mlog_t *ml)
{
    ml->shutting = true;
    br_mlog_timers_cancel(ml);
    br_mlog_stop(ml, MQ_ECLOSED);
}

/* Executor, once no job runs: let go of the ledger handles. Adds still in
 * flight fail with MQ_ECLOSED (their answers come as tasks); reads in flight
 * keep what they need inside the ledger client. */
static void br_mlog_release(br_mlog_t *ml)
{
    if (ml->cur) {
        lc_ledger_free(ml->cur);
        ml->cur = NULL;
    }
    br_mlog_rh_release_all(ml);
}

void br_mlog_free(br_mlog_t *ml)
{
    if (!ml) {
        return;
    }
    MQ_ASSERT(!mq_executor_on_thread(ml->conf.executor, ml->conf.key));
    pthread_mutex_lock(&ml->lock);
    ml->freeing = true;
    if (ml->refuse == MQ_OK) {
        ml->refuse = MQ_ECLOSED;
    }
    pthread_mutex_unlock(&ml->lock);
    br_mlog_exec_sync(ml, br_mlog_shutdown);
    pthread_mutex_lock(&ml->lock);
    while (ml->jobs > 0) {
        pthread_cond_wait(&ml->cond, &ml->lock);
    }
    pthread_mutex_unlock(&ml->lock);
    /* Behind the jobs' result tasks (they saw shutting and started
     * nothing). */
    br_mlog_exec_sync(ml, br_mlog_release);
    pthread_mutex_lock(&ml->lock);
    while (ml->ops > 0) {
        pthread_cond_wait(&ml->cond, &ml->lock);
    }
    pthread_mutex_unlock(&ml->lock);
    br_mlog_exec_sync(ml, NULL);
    MQ_ASSERT(ml->fl_head == NULL && ml->intake_head == NULL);
    br_mlog_destroy(ml);
}

/* --- retention ------------------------------------------------------------------------- */

mq_err_t br_mlog_trim(br_mlog_t *ml, uint64_t now_ms, int *deleted)
{
    if (deleted) {
        *deleted = 0;
    }
    if (!ml) {
        return MQ_EINVAL;
    }
    MQ_ASSERT(!mq_executor_on_thread(ml->conf.executor, ml->conf.key));
    pthread_mutex_lock(&ml->lock);
    mq_err_t refuse = ml->refuse;
    bool freeing = ml->freeing;
    pthread_mutex_unlock(&ml->lock);
    if (freeing) {
        return MQ_ECLOSED;
    }
    if (refuse != MQ_OK && refuse != MQ_ECLOSED) {
        return refuse;
    }
    pthread_mutex_lock(&ml->meta_lock);
    br_mlog_info_t *rec = &ml->rec;
    /* From the oldest: closed, last written more than the retention ago,
     * and never the last ledger of the list (the current one). */
    size_t n = 0;
    while (n + 1 < rec->nledgers && rec->ledgers[n].entries >= 0 &&
           rec->ledgers[n].mtime_ms <= now_ms &&
           now_ms - rec->ledgers[n].mtime_ms >= ml->retention_ms) {
        n++;
    }
    if (n == 0) {
        pthread_mutex_unlock(&ml->meta_lock);
        return MQ_OK;
    }
    br_mlog_info_t next = *rec;
    next.nledgers = rec->nledgers - n;
    next.ledgers = mq_malloc(next.nledgers * sizeof(*next.ledgers));
    memcpy(next.ledgers, rec->ledgers + n, next.nledgers * sizeof(*next.ledgers));
    next.min_offset = next.ledgers[0].first_offset;
    mq_err_t err = br_mlog_meta_cas(ml->conf.zk, ml->path, &next);
    if (err != MQ_OK) {
        br_mlog_info_fini(&next);
        pthread_mutex_unlock(&ml->meta_lock);
        MQ_LOG_WARN("managed log trim: list not updated topic=%s queue=%d err=%s", ml->topic,
                    ml->conf.queue, mq_err_name(err));
        if (err == MQ_EBADVERSION) {
            br_mlog_post_stop(ml, MQ_EFENCED);
            err = MQ_EFENCED;
        }
        return err;
    }
    uint64_t *ids = mq_malloc(n * sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        ids[i] = rec->ledgers[i].ledger;
    }
    br_mlog_info_fini(rec);
    *rec = next;
    rec->max_offset = br_mlog_record_end(rec);
    atomic_store(&ml->min_pub, rec->min_offset);
    int64_t min = rec->min_offset;
    br_mlog_post_view(ml, rec);
    pthread_mutex_unlock(&ml->meta_lock);
    /* The list no longer names them: the ledgers can go. */
    for (size_t i = 0; i < n; i++) {
        br_mlog_delete_ledger(ml, ids[i]);
    }
    MQ_LOG_INFO("managed log trimmed topic=%s queue=%d ledgers=%zu first=%llu last=%llu "
                "min_offset=%lld",
                ml->topic, ml->conf.queue, n, (unsigned long long)ids[0],
                (unsigned long long)ids[n - 1], (long long)min);
    free(ids);
    if (deleted) {
        *deleted = (int)n;
    }
    return MQ_OK;
}
