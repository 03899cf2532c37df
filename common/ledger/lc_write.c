/*
 * lc_write: a ledger writer (BookKeeper's PendingAddOp and ensemble change).
 *
 * Everything here runs on the client's loop thread (@locality loop) except
 * the public entry points, which post to it. An add takes the next entry id,
 * is stamped with the current LAC and the ledger length, and goes to its
 * write set; the pending queue (lc_quorum.h) tracks acks per replica and
 * hands adds back strictly in entry order, each moving the LAC.
 *
 * A replica that fails (connection, timeout, I/O, read-only, ...) marks its
 * ensemble index failed and starts an ensemble change: completions stop (so
 * the LAC cannot move while the boundary is decided), a replacement outside
 * the ensemble is chosen, the metadata gets a segment starting at LAC + 1
 * (compare-and-set on its znode version), the index's epoch moves on (late
 * answers from the replaced bookie are ignored), and every pending add that
 * went to that index loses that ack and is re-sent to the new bookie. Then
 * completions resume. Without a replacement the writer continues while every
 * add can still reach Qa (and retries the replacement every second).
 *
 * FENCED or UNAUTHORIZED from any bookie, or metadata found IN_RECOVERY /
 * CLOSED, are fatal: the handle fails everything pending and every later add
 * with that error. Adds that reached Qa before are still acknowledged (they
 * are durable), in order, before the first failure.
 */
#include <stdlib.h>
#include <string.h>

#include "lc_entry.h"
#include "lc_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define LC_RETRY_MS 500

typedef struct lc_send_ctx {
    lc_add_op_t *op;
    int idx;
    uint32_t epoch;
} lc_send_ctx_t;

static void lc_write_drain(lc_ledger_t *lh);
static void lc_write_change(lc_ledger_t *lh);

static lc_add_op_t *lc_op_of(lc_pend_t *p)
{
    return MQ_CONTAINER_OF(p, lc_add_op_t, pend);
}

size_t lc_write_pending(lc_ledger_t *lh)
{
    return lh->pending.count;
}

/* Signals threads waiting in close for the handle to become idle. */
static void lc_write_signal_idle(lc_ledger_t *lh)
{
    if (lh->pending.count == 0 && !lh->changing) {
        pthread_mutex_lock(&lh->wlock);
        lh->idle_gen++;
        pthread_cond_broadcast(&lh->wcond);
        pthread_mutex_unlock(&lh->wlock);
    }
}

static void lc_op_maybe_free(lc_add_op_t *op)
{
    if (op->finished && op->outstanding == 0) {
        mq_buf_unref(op->entry);
        free(op);
    }
}

static void lc_op_deliver(lc_add_op_t *op, mq_err_t err)
{
    op->finished = true;
    op->cb(err, op->pend.entry_id, op->arg);
    lc_op_maybe_free(op);
}

/* Completes what can be completed, in entry order. */
static void lc_write_drain(lc_ledger_t *lh)
{
    for (;;) {
        lc_pend_t *p = lh->pending.head;
        if (!p) {
            break;
        }
        if (lh->fatal == MQ_OK) {
            if (lh->changing || !p->done) {
                break;
            }
            lc_pending_pop(&lh->pending);
            lc_add_op_t *op = lc_op_of(p);
            lh->lac = p->entry_id;
            lh->lac_length = op->length;
            lc_op_deliver(op, MQ_OK);
            continue;
        }
        /* Fatal: what reached Qa before the first failure is durable and
         * acknowledged; from the first add that did not, everything fails. */
        lc_pending_pop(&lh->pending);
        lc_add_op_t *op = lc_op_of(p);
        if (p->done && p->entry_id == lh->lac + 1) {
            lh->lac = p->entry_id;
            lh->lac_length = op->length;
            lc_op_deliver(op, MQ_OK);
        } else {
            lc_op_deliver(op, lh->fatal);
        }
    }
    lc_ledger_publish(lh);
    lc_write_signal_idle(lh);
}

void lc_write_fail_all(lc_ledger_t *lh, mq_err_t err)
{
    if (lh->fatal == MQ_OK) {
        lh->fatal = err;
        if (err != MQ_ECLOSED) {
            MQ_LOG_WARN("ledger writer stopped ledger=%llu lac=%lld err=%s",
                        (unsigned long long)lh->id, (long long)lh->lac, mq_err_name(err));
        }
    }
    lc_write_drain(lh);
}

/* --- sending ------------------------------------------------------------------- */

static void lc_write_on_ack(const lc_bk_result_t *res, void *arg);

static void lc_write_send(lc_add_op_t *op, int idx)
{
    lc_ledger_t *lh = op->lh;
    lc_send_ctx_t *ctx = mq_malloc(sizeof(*ctx));
    ctx->op = op;
    ctx->idx = idx;
    ctx->epoch = lh->epoch[idx];
    op->outstanding++;
    lc_ledger_ref(lh);
    mq_slice_t s = {op->entry, op->entry->data, op->entry->len};
    mq_err_t err = lc_bookie_add(lh->ens[idx], lh->id, op->pend.entry_id, lh->cl->key, LC_KEY_LEN,
                                 0, &s, lh->cl->conf.add_timeout_ms, lc_write_on_ack, ctx);
    if (err != MQ_OK) {
        /* Not sent at all: answer it as a failure of that bookie. */
        lc_bk_result_t res;
        memset(&res, 0, sizeof(res));
        res.err = err;
        res.message = "";
        lc_write_on_ack(&res, ctx);
    }
}

static void lc_write_bookie_failed(lc_ledger_t *lh, int idx, mq_err_t err)
{
    uint32_t bit = 1u << idx;
    if (lh->failed & bit) {
        return;
    }
    const meta_segment_t *seg = meta_ledger_last_segment(&lh->md);
    MQ_LOG_WARN("ledger bookie failed ledger=%llu bookie=%s index=%d err=%s",
                (unsigned long long)lh->id, seg->bookies[idx], idx, mq_err_name(err));
    lh->failed |= bit;
    if (!lh->changing && lh->fatal == MQ_OK && !lh->freeing) {
        lc_write_change(lh);
    }
}

static void lc_write_on_ack(const lc_bk_result_t *res, void *arg)
{
    lc_send_ctx_t *ctx = arg;
    lc_add_op_t *op = ctx->op;
    lc_ledger_t *lh = op->lh;
    bool stale = ctx->epoch != lh->epoch[ctx->idx] || lh->freeing;
    if (!stale) {
        if (res->err == MQ_OK) {
            if (!op->finished && lc_pending_ack(&lh->pending, &op->pend, ctx->idx)) {
                lc_write_drain(lh);
            }
        } else if (res->err == MQ_EFENCED || res->err == MQ_EUNAUTHORIZED) {
            lc_write_fail_all(lh, res->err);
        } else {
            lc_write_bookie_failed(lh, ctx->idx, res->err);
        }
    }
    /* Only now does this answer stop counting: a completion above must not
     * free the op while its answer is still being handled. */
    op->outstanding--;
    free(ctx);
    lc_op_maybe_free(op);
    lc_ledger_unref(lh);
}

/* Loop: an add posted by a user thread. */
static void lc_write_submit(void *arg)
{
    lc_add_op_t *op = arg;
    lc_ledger_t *lh = op->lh;
    if (lh->closing) {
        op->pend.entry_id = -1;
        lc_op_deliver(op, MQ_ECLOSED);
        return;
    }
    size_t len = op->entry->len - LC_ENTRY_HDR_SIZE;
    int64_t e = ++lh->last_pushed;
    lh->pushed_length += len;
    op->length = lh->pushed_length;
    lc_entry_write_hdr(op->entry->data, lh->id, e, lh->lac, op->length,
                       op->entry->data + LC_ENTRY_HDR_SIZE, len);
    lc_pending_push(&lh->pending, &op->pend, e, lc_quorum_write_set(e, lh->E, lh->Qw));
    if (lh->fatal == MQ_OK && !lc_pending_reachable(&lh->pending, &op->pend, lh->failed)) {
        MQ_LOG_WARN("ledger cannot reach its ack quorum ledger=%llu entry=%lld failed=0x%x",
                    (unsigned long long)lh->id, (long long)e, lh->failed);
        lh->fatal = MQ_ENOTENOUGHBOOKIES;
    }
    if (lh->fatal != MQ_OK) {
        lc_write_drain(lh);
        return;
    }
    for (int idx = 0; idx < lh->E; idx++) {
        /* A failed index gets the add once its replacement is in (the
         * change re-sends every pending add that goes there). */
        if ((op->pend.write_set & (1u << idx)) && !(lh->failed & (1u << idx))) {
            lc_write_send(op, idx);
        }
    }
}

mq_err_t lc_ledger_add_async(lc_ledger_t *lh, const void *data, size_t len, lc_add_cb cb, void *arg)
{
    if (!lh->writer || atomic_load(&lh->closed_pub) || !cb) {
        return lh->writer ? (cb ? MQ_ECLOSED : MQ_EINVAL) : MQ_ECLOSED;
    }
    lc_add_op_t *op = mq_calloc(1, sizeof(*op));
    op->lh = lh;
    op->cb = cb;
    op->arg = arg;
    op->entry = mq_buf_new(LC_ENTRY_HDR_SIZE + len);
    if (len) {
        memcpy(op->entry->data + LC_ENTRY_HDR_SIZE, data, len);
    }
    op->entry->len = LC_ENTRY_HDR_SIZE + len;
    /* Posted tasks run in order, so this one runs before an lc_ledger_free
     * that the same thread calls later. */
    mq_net_loop_post(lh->cl->loop, lc_write_submit, op);
    return MQ_OK;
}

typedef struct lc_sync_add {
    lc_wait_t wait;
    int64_t entry_id;
} lc_sync_add_t;

static void lc_write_sync_done(mq_err_t err, int64_t entry_id, void *arg)
{
    lc_sync_add_t *s = arg;
    s->entry_id = entry_id;
    lc_wait_done(&s->wait, err);
}

mq_err_t lc_ledger_add(lc_ledger_t *lh, const void *data, size_t len, int64_t *entry_id)
{
    lc_sync_add_t s;
    lc_wait_init(&s.wait);
    mq_err_t err = lc_ledger_add_async(lh, data, len, lc_write_sync_done, &s);
    if (err != MQ_OK) {
        lc_wait_done(&s.wait, err);
    }
    err = lc_wait_wait(&s.wait);
    if (err == MQ_OK && entry_id) {
        *entry_id = s.entry_id;
    }
    return err;
}

/* --- ensemble change ------------------------------------------------------------- */

typedef struct lc_change_done {
    lc_ledger_t *lh;
    mq_err_t err;
    int32_t version;
    meta_ledger_t fresh; /* for a re-read after MQ_EBADVERSION */
    bool have_fresh;
} lc_change_done_t;

static void lc_write_retry_later(lc_ledger_t *lh);

/* Loop: the metadata write of an ensemble change finished. */
static void lc_write_change_applied(lc_ledger_t *lh, int32_t version)
{
    meta_ledger_fini(&lh->md);
    lh->md = lh->next_md;
    lh->md.version = version;
    memset(&lh->next_md, 0, sizeof(lh->next_md));
    const meta_segment_t *seg = meta_ledger_last_segment(&lh->md);
    uint32_t replaced = lh->replacing;
    for (int idx = 0; idx < lh->E; idx++) {
        if (replaced & (1u << idx)) {
            lh->ens[idx] = lc_client_bookie(lh->cl, seg->bookies[idx]);
            lh->epoch[idx]++;
        }
    }
    lh->failed &= ~replaced;
    lh->replacing = 0;
    lh->changing = false;
    MQ_LOG_INFO("ledger ensemble changed ledger=%llu segment=%lld replaced=0x%x version=%d",
                (unsigned long long)lh->id, (long long)seg->first_entry, replaced, version);
}

static void lc_write_resend_visit(lc_pend_t *p, void *arg)
{
    int idx = *(int *)arg;
    lc_add_op_t *op = lc_op_of(p);
    if (!op->finished) {
        lc_write_send(op, idx);
    }
}

static void lc_write_change_finish(void *arg)
{
    lc_change_done_t *d = arg;
    lc_ledger_t *lh = d->lh;
    if (lh->freeing || lh->fatal != MQ_OK) {
        lh->changing = false;
        meta_ledger_fini(&lh->next_md);
        memset(&lh->next_md, 0, sizeof(lh->next_md));
    } else if (d->err == MQ_OK) {
        uint32_t replaced = lh->replacing;
        lc_write_change_applied(lh, d->version);
        for (int idx = 0; idx < lh->E; idx++) {
            if (replaced & (1u << idx)) {
                lc_pending_replaced(&lh->pending, idx, lc_write_resend_visit, &idx);
            }
        }
        if (lh->failed) {
            lc_write_change(lh);
        }
        lc_write_drain(lh);
    } else if (d->err == MQ_EBADVERSION && d->have_fresh) {
        const meta_segment_t *want = meta_ledger_last_segment(&lh->next_md);
        const meta_segment_t *got = meta_ledger_last_segment(&d->fresh);
        if (d->fresh.state != META_LEDGER_OPEN) {
            /* Someone is recovering (or closed) the ledger: we are fenced. */
            lh->changing = false;
            lc_write_fail_all(lh, MQ_EFENCED);
        } else if (d->fresh.nsegments == lh->next_md.nsegments &&
                   want->first_entry == got->first_entry &&
                   memcmp(want->bookies, got->bookies, sizeof(want->bookies)) == 0) {
            /* Our own write went through (its answer was lost). */
            uint32_t replaced = lh->replacing;
            lc_write_change_applied(lh, d->fresh.version);
            for (int idx = 0; idx < lh->E; idx++) {
                if (replaced & (1u << idx)) {
                    lc_pending_replaced(&lh->pending, idx, lc_write_resend_visit, &idx);
                }
            }
            lc_write_drain(lh);
        } else {
            /* The record moved on some other way while still OPEN: start
             * over from what is there now. */
            meta_ledger_fini(&lh->md);
            meta_ledger_copy(&lh->md, &d->fresh);
            meta_ledger_fini(&lh->next_md);
            memset(&lh->next_md, 0, sizeof(lh->next_md));
            lh->changing = false;
            lh->replacing = 0;
            lc_write_change(lh);
        }
    } else if (mq_err_retriable(d->err)) {
        /* ZooKeeper unreachable or its session expired: keep completions
         * stopped (nothing that needs the new segment is acknowledged) and
         * try again shortly; the record is unchanged. */
        MQ_LOG_WARN("ledger ensemble change not written, retrying ledger=%llu err=%s",
                    (unsigned long long)lh->id, mq_err_name(d->err));
        lc_write_retry_later(lh);
    } else {
        lh->changing = false;
        lc_write_fail_all(lh, d->err);
    }
    if (d->have_fresh) {
        meta_ledger_fini(&d->fresh);
    }
    free(d);
    lc_write_signal_idle(lh);
    lc_ledger_unref(lh);
}

static void lc_write_change_reread(mq_err_t err, const meta_ledger_t *md, void *arg)
{
    lc_change_done_t *d = arg;
    if (err == MQ_OK) {
        meta_ledger_copy(&d->fresh, md);
        d->have_fresh = true;
    } else {
        d->err = err == MQ_ENOLEDGER ? MQ_EFENCED : err;
    }
    mq_net_loop_post(d->lh->cl->loop, lc_write_change_finish, d);
}

/* zk event thread: the compare-and-set answered. */
static void lc_write_change_written(mq_err_t err, int32_t version, void *arg)
{
    lc_change_done_t *d = arg;
    d->err = err;
    d->version = version;
    if (err == MQ_EBADVERSION &&
        meta_ledger_read_async(lc_client_zk(d->lh->cl), d->lh->cl->root, d->lh->id,
                               lc_write_change_reread, d) == MQ_OK) {
        return;
    }
    mq_net_loop_post(d->lh->cl->loop, lc_write_change_finish, d);
}

static void lc_write_change_write(lc_ledger_t *lh)
{
    lc_change_done_t *d = mq_calloc(1, sizeof(*d));
    d->lh = lh;
    lc_ledger_ref(lh);
    mq_err_t err = meta_ledger_write_async(lc_client_zk(lh->cl), lh->cl->root, &lh->next_md,
                                           lc_write_change_written, d);
    if (err != MQ_OK) {
        d->err = err;
        lc_write_change_finish(d);
    }
}

/* Loop: replaces every failed index that can be replaced. */
static void lc_write_change(lc_ledger_t *lh)
{
    if (lh->changing || lh->fatal != MQ_OK || lh->freeing || !lh->failed) {
        return;
    }
    const meta_segment_t *seg = meta_ledger_last_segment(&lh->md);
    const char *exclude[META_MAX_ENSEMBLE];
    for (int i = 0; i < lh->E; i++) {
        exclude[i] = seg->bookies[i];
    }
    int n = __builtin_popcount(lh->failed);
    char picked[META_MAX_ENSEMBLE][META_BOOKIE_ID_MAX];
    mq_err_t err = meta_bookies_choose(lh->cl->bookies, n, exclude, (size_t)lh->E, picked);
    if (err != MQ_OK) {
        /* No replacement now: go on with the replicas left while every add
         * can still reach Qa, and look for a replacement again later. */
        for (lc_pend_t *p = lh->pending.head; p; p = p->next) {
            if (!p->done && !lc_pending_reachable(&lh->pending, p, lh->failed)) {
                MQ_LOG_WARN("ledger has no replacement bookie and cannot reach its ack "
                            "quorum ledger=%llu entry=%lld",
                            (unsigned long long)lh->id, (long long)p->entry_id);
                lc_write_fail_all(lh, MQ_ENOTENOUGHBOOKIES);
                return;
            }
        }
        MQ_LOG_WARN("ledger has no replacement bookie, writing on ledger=%llu failed=0x%x",
                    (unsigned long long)lh->id, lh->failed);
        lc_write_retry_later(lh);
        return;
    }
    meta_ledger_fini(&lh->next_md);
    meta_ledger_copy(&lh->next_md, &lh->md);
    int k = 0;
    for (int idx = 0; idx < lh->E; idx++) {
        if (lh->failed & (1u << idx)) {
            meta_ledger_replace_bookie(&lh->next_md, lh->lac + 1, idx, picked[k++]);
        }
    }
    lh->replacing = lh->failed;
    lh->changing = true;
    lc_write_change_write(lh);
}

static void lc_write_retry_fire(uv_timer_t *t)
{
    lc_ledger_t *lh = t->data;
    if (lh->freeing || lh->fatal != MQ_OK) {
        return;
    }
    if (lh->changing) {
        /* A metadata write that failed retriably: write it again. */
        lc_write_change_write(lh);
    } else {
        lc_write_change(lh);
    }
}

static void lc_write_retry_later(lc_ledger_t *lh)
{
    if (!lh->timer_init) {
        uv_timer_init(mq_net_loop_uv(lh->cl->loop), &lh->retry_timer);
        lh->retry_timer.data = lh;
        lh->timer_init = true;
        lc_ledger_ref(lh); /* released by the timer's close callback */
    }
    uv_timer_start(&lh->retry_timer, lc_write_retry_fire, lh->changing ? LC_RETRY_MS : 1000, 0);
}

/* --- close ---------------------------------------------------------------------- */

typedef struct lc_close_snap {
    lc_ledger_t *lh;
    bool idle;
    mq_err_t fatal;
    meta_ledger_t md;
    int64_t lac;
    uint64_t length;
} lc_close_snap_t;

static void lc_write_close_begin(void *arg)
{
    lc_close_snap_t *s = arg;
    s->lh->closing = true;
}

static void lc_write_close_snapshot(void *arg)
{
    lc_close_snap_t *s = arg;
    lc_ledger_t *lh = s->lh;
    s->idle = lh->pending.count == 0 && !lh->changing;
    s->fatal = lh->fatal;
    if (s->idle) {
        meta_ledger_copy(&s->md, &lh->md);
        s->lac = lh->lac;
        s->length = lh->lac_length;
    }
}

static void lc_write_close_commit(void *arg)
{
    lc_close_snap_t *s = arg;
    meta_ledger_fini(&s->lh->md);
    meta_ledger_copy(&s->lh->md, &s->md);
    lc_ledger_publish(s->lh);
}

mq_err_t lc_ledger_close(lc_ledger_t *lh)
{
    if (!lh->writer || atomic_load(&lh->closed_pub)) {
        return MQ_OK;
    }
    lc_close_snap_t s;
    memset(&s, 0, sizeof(s));
    s.lh = lh;
    mq_net_loop_run_sync(lh->cl->loop, lc_write_close_begin, &s);
    /* Wait for the adds in flight (and any ensemble change) to finish. The
     * generation is read before each look, so a drain that goes idle in
     * between is never missed; the lock is never held across run_sync (the
     * loop takes it to signal). */
    for (;;) {
        pthread_mutex_lock(&lh->wlock);
        uint64_t gen = lh->idle_gen;
        pthread_mutex_unlock(&lh->wlock);
        mq_net_loop_run_sync(lh->cl->loop, lc_write_close_snapshot, &s);
        if (s.idle) {
            break;
        }
        pthread_mutex_lock(&lh->wlock);
        while (lh->idle_gen == gen) {
            pthread_cond_wait(&lh->wcond, &lh->wlock);
        }
        pthread_mutex_unlock(&lh->wlock);
    }
    if (s.fatal == MQ_EFENCED) {
        meta_ledger_fini(&s.md);
        return MQ_EFENCED;
    }
    s.md.state = META_LEDGER_CLOSED;
    s.md.last_entry_id = s.lac;
    s.md.length = s.length;
    mq_err_t err;
    uint64_t deadline = mq_now_ms() + 30000;
    for (;;) {
        err = meta_ledger_write(lc_client_zk(lh->cl), lh->cl->root, &s.md);
        if (err == MQ_EBADVERSION) {
            /* Closed by us already (a lost answer), or recovered by someone
             * else: only the first is success. */
            meta_ledger_t cur;
            err = meta_ledger_read(lc_client_zk(lh->cl), lh->cl->root, lh->id, &cur);
            if (err == MQ_OK) {
                err = cur.state == META_LEDGER_CLOSED && cur.last_entry_id == s.lac ? MQ_OK
                                                                                    : MQ_EFENCED;
                if (err == MQ_OK) {
                    meta_ledger_fini(&s.md);
                    s.md = cur;
                } else {
                    meta_ledger_fini(&cur);
                }
            }
            break;
        }
        if (err == MQ_OK || !mq_err_retriable(err) || mq_now_ms() > deadline) {
            break;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (err == MQ_OK) {
        mq_net_loop_run_sync(lh->cl->loop, lc_write_close_commit, &s);
        MQ_LOG_DEBUG("ledger closed ledger=%llu last=%lld length=%llu", (unsigned long long)lh->id,
                     (long long)s.lac, (unsigned long long)s.length);
    } else {
        MQ_LOG_WARN("ledger close failed ledger=%llu err=%s", (unsigned long long)lh->id,
                    mq_err_name(err));
    }
    meta_ledger_fini(&s.md);
    return err;
}
