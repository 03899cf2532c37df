/*
 * br_mlog: the managed log of one topic queue (see br_mlog.h for the model):
 * its write path. The broker's queue code opens one per owned queue,
 * appends from its send path and reads from its receive path
 * (br_mlog_read.c); br_mlog_list.c holds what changes the list of ledgers
 * (takeover, rollover, close, retention) and the life cycle.
 *
 * Write path. br_mlog_append (any thread) copies the message into the last
 * batch of the intake under lock; a batch is one ledger entry in the making
 * (br_mlog_entry.c's layout, header left blank). A batch is sealed when the
 * next message would not fit max_entry_bytes. The executor's pump cuts
 * batches: a sealed one at once, the open one when linger_us passed since
 * its first message (a timer on conf.executor/conf.key, to the
 * microsecond), or at once when that message came after a quiet spell
 * (longer than the linger since the one before: nothing to pack, so
 * lingering would only add latency). Cutting assigns the offsets (base =
 * next offset), stamps the header and hands the entry to
 * lc_ledger_add_async; at most
 * BR_MLOG_MAX_INFLIGHT entries are in flight, and while they are, messages
 * pile up in the intake and make bigger entries: low latency at low rates,
 * big entries at high rates.
 *
 * The ledger client completes adds in entry order on its loop thread; each
 * completion is posted to the executor, which completes the head of the
 * in-flight list while it is answered: the acknowledged end moves, the entry
 * goes into the hot-tail cache and the index of the current ledger, and
 * every message's callback runs, in offset order, on the executor thread.
 * When the current ledger is full the pump stops sending (ROLL_WAIT) and the
 * last completion starts the rollover (br_mlog_list.c).
 *
 * Stopping. MQ_EFENCED from the ledger, or MQ_EBADVERSION on the list,
 * means another broker took the queue: the log is fenced. Any other add
 * error (MQ_ENOTENOUGHBOOKIES, ...) breaks it the same way but callbacks
 * get the real error. Either way the log stops for good: entries in flight
 * fail with the ledger's error, queued messages and later appends with the
 * stop error, br_mlog_fenced() turns true and conf.on_fenced runs once, on
 * the executor thread (a broken log wants a new open just as a fenced one
 * does, and only a new open recovers it). on_fenced must not block (it may
 * post the queue's release elsewhere; br_mlog_free from it would deadlock).
 *
 * Blocking work (ZooKeeper, ledger create/open/close) never runs on the
 * executor: open, close, trim and free block their caller; rollovers and
 * opening read handles run on short-lived helper threads ("jobs", started
 * here) that post their result back.
 */
#include "br_mlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_mlog_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* A message may take max_entry_bytes minus this (room for the headers). */
#define BR_MLOG_SLACK 64
/* First capacity of a batch buffer (it doubles up to max_entry_bytes). */
#define BR_MLOG_FIRST_BUF 4096

/* --- small helpers ------------------------------------------------------------- */

typedef struct br_mlog_sync {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    void (*fn)(br_mlog_t *);
    br_mlog_t *ml;
} br_mlog_sync_t;

static void br_mlog_sync_task(void *arg)
{
    br_mlog_sync_t *s = arg;
    if (s->fn) {
        s->fn(s->ml);
    }
    pthread_mutex_lock(&s->lock);
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Runs fn(ml) on the executor (NULL: a barrier behind every task queued
 * before) and waits for it. Never from the executor's thread. */
void br_mlog_exec_sync(br_mlog_t *ml, void (*fn)(br_mlog_t *))
{
    br_mlog_sync_t s;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    s.done = false;
    s.fn = fn;
    s.ml = ml;
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_sync_task, &s);
    pthread_mutex_lock(&s.lock);
    while (!s.done) {
        pthread_cond_wait(&s.cond, &s.lock);
    }
    pthread_mutex_unlock(&s.lock);
    pthread_mutex_destroy(&s.lock);
    pthread_cond_destroy(&s.cond);
}

typedef struct br_mlog_job {
    br_mlog_t *ml;
    void (*fn)(void *);
    void *arg;
} br_mlog_job_t;

static void *br_mlog_job_main(void *p)
{
    br_mlog_job_t *j = p;
    br_mlog_t *ml = j->ml;
    mq_log_thread_name("mlog-job");
    j->fn(j->arg);
    free(j);
    /* The last touch of ml: br_mlog_free may go on once jobs is 0. */
    pthread_mutex_lock(&ml->lock);
    ml->jobs--;
    pthread_cond_broadcast(&ml->cond);
    pthread_mutex_unlock(&ml->lock);
    return NULL;
}

void br_mlog_job_start(br_mlog_t *ml, void (*fn)(void *), void *arg)
{
    br_mlog_job_t *j = mq_malloc(sizeof(*j));
    j->ml = ml;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&ml->lock);
    ml->jobs++;
    pthread_mutex_unlock(&ml->lock);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    if (pthread_create(&tid, &attr, br_mlog_job_main, j) != 0) {
        MQ_LOG_ERROR("cannot start a managed log helper thread topic=%s queue=%d", ml->topic,
                     ml->conf.queue);
        abort();
    }
    pthread_attr_destroy(&attr);
}

void br_mlog_op_add(br_mlog_t *ml)
{
    pthread_mutex_lock(&ml->lock);
    ml->ops++;
    pthread_mutex_unlock(&ml->lock);
}

void br_mlog_op_done(br_mlog_t *ml)
{
    pthread_mutex_lock(&ml->lock);
    ml->ops--;
    if (ml->freeing) {
        pthread_cond_broadcast(&ml->cond);
    }
    pthread_mutex_unlock(&ml->lock);
}

/* --- batches ------------------------------------------------------------------- */

static br_mlog_batch_t *br_mlog_batch_new(br_mlog_t *ml, size_t need)
{
    br_mlog_batch_t *b = mq_calloc(1, sizeof(*b));
    b->ml = ml;
    size_t cap = MQ_MAX((size_t)BR_MLOG_FIRST_BUF, BR_MLOG_ENTRY_HDR + need);
    b->buf = mq_buf_new(MQ_MIN(cap, ml->conf.max_entry_bytes));
    b->buf->len = BR_MLOG_ENTRY_HDR;
    b->seq = ++ml->batch_seq;
    b->entry_id = -1;
    return b;
}

static void br_mlog_batch_add(br_mlog_t *ml, br_mlog_batch_t *b, const void *data, size_t len,
                              br_mlog_append_cb cb, void *arg)
{
    size_t need = BR_MLOG_MSG_HDR + len;
    if (b->buf->len + need > b->buf->cap) {
        size_t cap = MQ_MAX(b->buf->cap * 2, b->buf->len + need);
        mq_buf_t *nb = mq_buf_new(MQ_MIN(cap, ml->conf.max_entry_bytes));
        memcpy(nb->data, b->buf->data, b->buf->len);
        nb->len = b->buf->len;
        mq_buf_unref(b->buf);
        b->buf = nb;
    }
    mq_put_le32(b->buf->data + b->buf->len, (uint32_t)len);
    if (len > 0) {
        memcpy(b->buf->data + b->buf->len + BR_MLOG_MSG_HDR, data, len);
    }
    b->buf->len += need;
    if (b->count == b->cbs_cap) {
        b->cbs_cap = b->cbs_cap ? b->cbs_cap * 2 : 8;
        b->cbs = mq_realloc(b->cbs, b->cbs_cap * sizeof(*b->cbs));
    }
    b->cbs[b->count].cb = cb;
    b->cbs[b->count].arg = arg;
    b->count++;
}

static void br_mlog_batch_free(br_mlog_batch_t *b)
{
    if (b->buf) {
        mq_buf_unref(b->buf);
    }
    free(b->cbs);
    free(b);
}

/* Fails every message of a list of batches with err and frees them. */
static void br_mlog_batches_fail(br_mlog_batch_t *b, mq_err_t err)
{
    while (b) {
        br_mlog_batch_t *next = b->next;
        for (uint32_t i = 0; i < b->count; i++) {
            b->cbs[i].cb(err, -1, b->cbs[i].arg);
        }
        br_mlog_batch_free(b);
        b = next;
    }
}

/* --- appending ------------------------------------------------------------------- */

static void br_mlog_pump_task(void *arg)
{
    br_mlog_t *ml = arg;
    pthread_mutex_lock(&ml->lock);
    ml->pump_posted = false;
    pthread_mutex_unlock(&ml->lock);
    br_mlog_pump(ml);
}

mq_err_t br_mlog_append(br_mlog_t *ml, const void *data, size_t len, br_mlog_append_cb cb,
                        void *arg)
{
    if (!ml || !cb || (!data && len > 0)) {
        return MQ_EINVAL;
    }
    if (len > ml->conf.max_entry_bytes - BR_MLOG_SLACK) {
        return MQ_ETOOLARGE;
    }
    size_t need = BR_MLOG_MSG_HDR + len;
    pthread_mutex_lock(&ml->lock);
    if (ml->refuse != MQ_OK) {
        mq_err_t err = ml->refuse;
        pthread_mutex_unlock(&ml->lock);
        return err;
    }
    /* The pump needs to hear of a batch that became ready (sealed) and of
     * a new open batch (its linger starts); other appends need no wake-up. */
    bool kick = false;
    br_mlog_batch_t *b = ml->intake_tail;
    if (b && !b->sealed && b->buf->len + need > ml->conf.max_entry_bytes) {
        b->sealed = true;
        kick = true;
    }
    if (!b || b->sealed) {
        b = br_mlog_batch_new(ml, need);
        if (ml->intake_tail) {
            ml->intake_tail->next = b;
        } else {
            ml->intake_head = b;
        }
        ml->intake_tail = b;
    }
    br_mlog_batch_add(ml, b, data, len, cb, arg);
    uint64_t now = mq_now_ns();
    atomic_uint_least64_t *recent = ml->conf.recent ? ml->conf.recent : &ml->own_recent;
    uint64_t prev = atomic_exchange_explicit(recent, now, memory_order_relaxed);
    if (b->count == 1) {
        /* Lingering pays only when messages come closer together than
         * the linger: a message after a quiet spell goes at once. */
        b->first_ns = now;
        b->lingers = prev != 0 && now - prev < ml->linger_ns;
        kick = true;
    }
    if (kick && !ml->pump_posted) {
        ml->pump_posted = true;
        mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_pump_task, ml);
    }
    pthread_mutex_unlock(&ml->lock);
    return MQ_OK;
}

static void br_mlog_linger_fire(void *arg)
{
    br_mlog_t *ml = arg;
    ml->linger_timer = NULL;
    ml->linger_due = ml->linger_seq;
    br_mlog_pump(ml);
}

/* Arms the linger timer for batch seq (first message at first_ns). */
static void br_mlog_linger_arm(br_mlog_t *ml, uint64_t seq, uint64_t first_ns)
{
    if (ml->linger_timer) {
        if (ml->linger_seq == seq) {
            return;
        }
        mq_timer_cancel(ml->linger_timer);
        ml->linger_timer = NULL;
    }
    uint64_t waited = mq_now_ns() - first_ns;
    uint64_t left = ml->linger_ns > waited ? ml->linger_ns - waited : 0;
    ml->linger_seq = seq;
    ml->linger_timer =
        mq_executor_schedule_ns(ml->conf.executor, ml->conf.key, left, br_mlog_linger_fire, ml);
}

void br_mlog_timers_cancel(br_mlog_t *ml)
{
    if (ml->linger_timer) {
        mq_timer_cancel(ml->linger_timer);
        ml->linger_timer = NULL;
    }
    if (ml->roll_timer) {
        mq_timer_cancel(ml->roll_timer);
        ml->roll_timer = NULL;
    }
}

/* Loop thread: an add answered. Only posts; b belongs to the executor
 * again once answered is set (it may be freed right after). */
static void br_mlog_add_done(mq_err_t err, int64_t entry_id, void *arg);

static void br_mlog_drain_task(void *arg);

/* Cuts batch b into an entry of the current ledger and sends it. */
static void br_mlog_send(br_mlog_t *ml, br_mlog_batch_t *b)
{
    b->base = ml->next_offset;
    ml->next_offset += b->count;
    b->ledger = ml->cur_id;
    br_mlog_entry_put_hdr(b->buf->data, b->count, b->base, mq_wall_ms());
    b->next = NULL;
    if (ml->fl_tail) {
        ml->fl_tail->next = b;
    } else {
        ml->fl_head = b;
    }
    ml->fl_tail = b;
    ml->ninflight++;
    ml->cur_entries_sent++;
    ml->cur_bytes_sent += b->buf->len;
    br_mlog_op_add(ml);
    mq_err_t err = lc_ledger_add_async(ml->cur, b->buf->data, b->buf->len, br_mlog_add_done, b);
    if (err != MQ_OK) {
        /* Not sent (the handle refuses): answer it as a failed add, through
         * the executor like any answer, so completions keep their order. */
        b->err = err;
        atomic_store(&b->answered, true);
        mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_drain_task, ml);
    }
}

static void br_mlog_check_drained(br_mlog_t *ml)
{
    if (!ml->closing || ml->state != BR_MLOG_S_OPEN || ml->ninflight > 0) {
        return;
    }
    pthread_mutex_lock(&ml->lock);
    bool empty = ml->intake_head == NULL;
    if (empty) {
        ml->drained = true;
        ml->drain_lh = ml->cur;
        ml->drain_entries = ml->cur_entries_acked;
        ml->drain_msgs = ml->cur_msgs_acked;
        pthread_cond_broadcast(&ml->cond);
    }
    pthread_mutex_unlock(&ml->lock);
    if (empty) {
        ml->state = BR_MLOG_S_DRAINED;
        br_mlog_timers_cancel(ml);
    }
}

/* Sends what is ready while the window allows. @locality executor */
void br_mlog_pump(br_mlog_t *ml)
{
    while (ml->state == BR_MLOG_S_OPEN && !ml->shutting &&
           ml->ninflight < (int)ml->conf.max_inflight) {
        pthread_mutex_lock(&ml->lock);
        br_mlog_batch_t *b = ml->intake_head;
        if (!b) {
            pthread_mutex_unlock(&ml->lock);
            break;
        }
        bool was_open = !b->sealed;
        if (was_open) {
            bool ready = ml->closing || !b->lingers || ml->linger_due == b->seq ||
                         mq_now_ns() - b->first_ns >= ml->linger_ns;
            if (!ready) {
                uint64_t seq = b->seq;
                uint64_t first_ns = b->first_ns;
                pthread_mutex_unlock(&ml->lock);
                br_mlog_linger_arm(ml, seq, first_ns);
                break;
            }
            b->sealed = true;
        }
        ml->intake_head = b->next;
        if (!ml->intake_head) {
            ml->intake_tail = NULL;
        }
        pthread_mutex_unlock(&ml->lock);
        if (was_open && ml->linger_timer && ml->linger_seq == b->seq) {
            mq_timer_cancel(ml->linger_timer);
            ml->linger_timer = NULL;
        }
        br_mlog_send(ml, b);
        if (ml->cur_entries_sent >= ml->conf.rollover_entries ||
            ml->cur_bytes_sent >= ml->conf.rollover_bytes || ml->age_due) {
            ml->state = BR_MLOG_S_ROLL_WAIT;
        }
    }
    br_mlog_check_drained(ml);
}

static void br_mlog_add_done(mq_err_t err, int64_t entry_id, void *arg)
{
    br_mlog_batch_t *b = arg;
    br_mlog_t *ml = b->ml;
    b->err = err;
    b->entry_id = entry_id;
    atomic_store(&b->answered, true);
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_drain_task, ml);
}

/* An entry is in (or failed): move the end, cache it, tell its messages. */
static void br_mlog_complete(br_mlog_t *ml, br_mlog_batch_t *b)
{
    if (b->err == MQ_OK) {
        ml->acked_end = b->base + b->count;
        atomic_store(&ml->end_pub, ml->acked_end);
        if (b->ledger == ml->cur_id) {
            /* Entry ids of a ledger are 0, 1, 2, ... in order. */
            MQ_ASSERT(b->entry_id == (int64_t)ml->nindex);
            if (ml->nindex == ml->index_cap) {
                ml->index_cap = ml->index_cap ? ml->index_cap * 2 : 256;
                ml->index = mq_realloc(ml->index, ml->index_cap * sizeof(*ml->index));
            }
            ml->index[ml->nindex++] = b->base;
            ml->cur_entries_acked++;
            ml->cur_msgs_acked += b->count;
        }
        br_mlog_cache_put(ml, b);
        for (uint32_t i = 0; i < b->count; i++) {
            b->cbs[i].cb(MQ_OK, b->base + (int64_t)i, b->cbs[i].arg);
        }
    } else {
        br_mlog_stop(ml, b->err);
        for (uint32_t i = 0; i < b->count; i++) {
            b->cbs[i].cb(b->err, -1, b->cbs[i].arg);
        }
    }
    br_mlog_batch_free(b);
}

/* Executor: one add answered (one task per add, so that ops counts the
 * tasks still to run); completes the answered head of the list. */
static void br_mlog_drain_task(void *arg)
{
    br_mlog_t *ml = arg;
    while (ml->fl_head && atomic_load(&ml->fl_head->answered)) {
        br_mlog_batch_t *b = ml->fl_head;
        ml->fl_head = b->next;
        if (!ml->fl_head) {
            ml->fl_tail = NULL;
        }
        ml->ninflight--;
        br_mlog_complete(ml, b);
    }
    if (!ml->shutting) {
        if (ml->state == BR_MLOG_S_ROLL_WAIT && ml->ninflight == 0) {
            br_mlog_roll_start(ml);
        }
        br_mlog_pump(ml);
    }
    br_mlog_op_done(ml);
}

/* Stops the log for good (fenced, broken, or freed: MQ_ECLOSED).
 * @locality executor */
void br_mlog_stop(br_mlog_t *ml, mq_err_t err)
{
    if (ml->state == BR_MLOG_S_STOPPED) {
        return;
    }
    if (err == MQ_EBADVERSION) {
        err = MQ_EFENCED;
    }
    ml->state = BR_MLOG_S_STOPPED;
    ml->stop_err = err;
    br_mlog_timers_cancel(ml);
    pthread_mutex_lock(&ml->lock);
    if (!ml->freeing) {
        ml->refuse = err;
    }
    br_mlog_batch_t *queued = ml->intake_head;
    ml->intake_head = ml->intake_tail = NULL;
    ml->stopped = true;
    ml->stopped_err = err;
    pthread_cond_broadcast(&ml->cond);
    pthread_mutex_unlock(&ml->lock);
    atomic_store(&ml->stopped_pub, true);
    br_mlog_batches_fail(queued, err);
    if (ml->shutting) {
        return;
    }
    MQ_LOG_INFO("managed log %s topic=%s queue=%d ledger=%llu acked_end=%lld err=%s",
                err == MQ_EFENCED ? "fenced" : "stopped", ml->topic, ml->conf.queue,
                (unsigned long long)ml->cur_id, (long long)ml->acked_end, mq_err_name(err));
    if (ml->conf.on_fenced && !atomic_exchange(&ml->fence_told, true)) {
        ml->conf.on_fenced(ml, ml->conf.arg);
    }
}

/* --- state ---------------------------------------------------------------------------- */

bool br_mlog_fenced(br_mlog_t *ml)
{
    return ml && atomic_load(&ml->stopped_pub);
}

int64_t br_mlog_min_offset(br_mlog_t *ml)
{
    return atomic_load(&ml->min_pub);
}

int64_t br_mlog_max_offset(br_mlog_t *ml)
{
    return atomic_load(&ml->end_pub);
}

uint64_t br_mlog_test_reads(br_mlog_t *ml)
{
    return atomic_load(&ml->reads);
}
