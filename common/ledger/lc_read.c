/*
 * lc_read: reading entries and LACs (BookKeeper's sequential reads with a
 * speculative second request).
 *
 * A read asks the first replica of the entry's write set (in the segment
 * that holds the entry); on an error it asks the next at once, and if the
 * speculative timeout passes without an answer it asks the next as well,
 * keeping the first request. The first intact copy wins: lc_bookie checks
 * the entry's CRC and ids, so a corrupt replica is just one that failed.
 * When every replica said "no such entry", the result is MQ_ENOENTRY.
 *
 * Everything runs on the client's loop (@locality loop); a read holds a
 * reference on its handle until its last request answered.
 */
#include <stdlib.h>
#include <string.h>

#include "lc_entry.h"
#include "lc_int.h"
#include "mq_log.h"
#include "mq_util.h"

typedef struct lc_read_op {
    lc_ledger_t *lh;
    int64_t entry_id;
    bool raw;
    lc_read_cb cb;
    void *arg;
    lc_bookie_t *replicas[META_MAX_ENSEMBLE];
    int nreplicas;
    int next;
    int inflight; /* requests sent and not answered */
    int refs;     /* inflight + the timer + the start */
    bool done;
    int noentry;
    mq_err_t last_err;
    uv_timer_t timer;
    bool timer_init;
} lc_read_op_t;

static void lc_read_unref(lc_read_op_t *op);

static void lc_read_timer_closed(uv_handle_t *h)
{
    lc_read_unref(h->data);
}

static void lc_read_unref(lc_read_op_t *op)
{
    if (--op->refs > 0) {
        return;
    }
    lc_ledger_t *lh = op->lh;
    free(op);
    lc_ledger_unref(lh);
}

static void lc_read_finish(lc_read_op_t *op, mq_err_t err, const mq_slice_t *payload)
{
    op->done = true;
    if (op->timer_init) {
        uv_timer_stop(&op->timer);
        uv_close((uv_handle_t *)&op->timer, lc_read_timer_closed);
        op->timer_init = false;
    }
    op->cb(err, op->entry_id, payload, op->arg);
}

static void lc_read_send_next(lc_read_op_t *op);

static void lc_read_on_answer(const lc_bk_result_t *res, void *arg)
{
    lc_read_op_t *op = arg;
    op->inflight--;
    if (!op->done) {
        if (res->err == MQ_OK) {
            mq_slice_t payload = res->data;
            if (!op->raw) {
                payload.ptr += LC_ENTRY_HDR_SIZE;
                payload.len -= LC_ENTRY_HDR_SIZE;
            }
            lc_read_finish(op, MQ_OK, &payload);
        } else {
            if (res->err == MQ_ENOENTRY || res->err == MQ_ENOLEDGER) {
                op->noentry++;
            } else {
                op->last_err = res->err;
                if (res->err == MQ_ECORRUPT) {
                    MQ_LOG_WARN("ledger read got a corrupt copy, trying another replica "
                                "ledger=%llu entry=%lld",
                                (unsigned long long)op->lh->id, (long long)op->entry_id);
                }
            }
            if (op->next < op->nreplicas) {
                lc_read_send_next(op);
            } else if (op->inflight == 0) {
                /* Every replica answered and none has an intact copy. */
                lc_read_finish(op, op->noentry == op->nreplicas ? MQ_ENOENTRY : op->last_err, NULL);
            }
        }
    }
    lc_read_unref(op);
}

static void lc_read_spec_fire(uv_timer_t *t)
{
    lc_read_op_t *op = t->data;
    if (!op->done && op->next < op->nreplicas) {
        lc_read_send_next(op);
    }
}

static void lc_read_send_next(lc_read_op_t *op)
{
    lc_ledger_t *lh = op->lh;
    lc_bookie_t *bk = op->replicas[op->next++];
    op->refs++;
    op->inflight++;
    mq_err_t err = lc_bookie_read(bk, lh->id, op->entry_id, 0, NULL, 0,
                                  lh->cl->conf.read_timeout_ms, lc_read_on_answer, op);
    if (err != MQ_OK) {
        lc_bk_result_t res;
        memset(&res, 0, sizeof(res));
        res.err = err;
        res.message = "";
        lc_read_on_answer(&res, op);
        return;
    }
    uint32_t spec = lh->cl->conf.speculative_read_timeout_ms;
    if (spec > 0 && op->next < op->nreplicas && !op->done) {
        if (!op->timer_init) {
            uv_timer_init(mq_net_loop_uv(lh->cl->loop), &op->timer);
            op->timer.data = op;
            op->timer_init = true;
            op->refs++; /* dropped by the close callback */
        }
        uv_timer_start(&op->timer, lc_read_spec_fire, spec, 0);
    }
}

static void lc_read_start(void *arg)
{
    lc_read_op_t *op = arg;
    lc_ledger_t *lh = op->lh;
    lc_ledger_ref(lh); /* released with the op */
    const meta_segment_t *seg = meta_ledger_segment(&lh->md, op->entry_id);
    /* Replicas in write-set order, ones this writer knows failed last. */
    int late[META_MAX_ENSEMBLE];
    int nlate = 0;
    bool last_seg = seg == meta_ledger_last_segment(&lh->md);
    for (int i = 0; i < lh->Qw; i++) {
        int idx = meta_stripe(op->entry_id, i, lh->E);
        if (last_seg && (lh->failed & (1u << idx))) {
            late[nlate++] = idx;
            continue;
        }
        op->replicas[op->nreplicas++] = lc_client_bookie(lh->cl, seg->bookies[idx]);
    }
    for (int i = 0; i < nlate; i++) {
        op->replicas[op->nreplicas++] = lc_client_bookie(lh->cl, seg->bookies[late[i]]);
    }
    lc_read_send_next(op);
    lc_read_unref(op);
}

mq_err_t lc_read_entry(lc_ledger_t *lh, int64_t entry_id, bool raw, lc_read_cb cb, void *arg)
{
    if (entry_id < 0 || !cb) {
        return MQ_EINVAL;
    }
    lc_read_op_t *op = mq_calloc(1, sizeof(*op));
    op->lh = lh;
    op->entry_id = entry_id;
    op->raw = raw;
    op->cb = cb;
    op->arg = arg;
    op->refs = 1;
    op->last_err = MQ_ENOENTRY;
    mq_net_loop_post(lh->cl->loop, lc_read_start, op);
    return MQ_OK;
}

mq_err_t lc_ledger_read_async(lc_ledger_t *lh, int64_t entry_id, lc_read_cb cb, void *arg)
{
    /* Only entries known to be acknowledged: above the LAC an entry may
     * exist on some replicas and still be truncated by a recovery. */
    if (entry_id < 0 || entry_id > lc_ledger_lac(lh)) {
        return MQ_ENOENTRY;
    }
    return lc_read_entry(lh, entry_id, false, cb, arg);
}

typedef struct lc_sync_read {
    lc_wait_t wait;
    mq_slice_t payload;
} lc_sync_read_t;

static void lc_read_sync_done(mq_err_t err, int64_t entry_id, const mq_slice_t *payload, void *arg)
{
    MQ_UNUSED(entry_id);
    lc_sync_read_t *s = arg;
    if (err == MQ_OK) {
        s->payload = mq_slice_dup(payload);
    }
    lc_wait_done(&s->wait, err);
}

mq_err_t lc_ledger_read(lc_ledger_t *lh, int64_t entry_id, mq_slice_t *payload)
{
    lc_sync_read_t s;
    memset(&s, 0, sizeof(s));
    lc_wait_init(&s.wait);
    mq_err_t err = lc_ledger_read_async(lh, entry_id, lc_read_sync_done, &s);
    if (err != MQ_OK) {
        lc_wait_done(&s.wait, err);
    }
    err = lc_wait_wait(&s.wait);
    *payload = s.payload;
    return err;
}

/* --- LAC ------------------------------------------------------------------------ */

typedef struct lc_lac_op {
    lc_ledger_t *lh;
    lc_wait_t *wait;
    int64_t *out;
    int outstanding;
    int ok;
    int64_t best;
    mq_err_t last_err;
} lc_lac_op_t;

static void lc_read_lac_answer(const lc_bk_result_t *res, void *arg)
{
    lc_lac_op_t *op = arg;
    lc_ledger_t *lh = op->lh;
    if (res->err == MQ_OK) {
        op->ok++;
        op->best = MQ_MAX(op->best, res->lac);
    } else if (res->err == MQ_ENOLEDGER) {
        /* That bookie has nothing yet: a valid answer. */
        op->ok++;
    } else {
        op->last_err = res->err;
    }
    if (--op->outstanding > 0) {
        return;
    }
    mq_err_t err = op->ok > 0 ? MQ_OK : op->last_err;
    if (err == MQ_OK && !lh->writer && op->best > lh->lac && lh->md.state != META_LEDGER_CLOSED) {
        lh->lac = op->best;
        lc_ledger_publish(lh);
    }
    *op->out = lh->lac;
    lc_wait_done(op->wait, err);
    free(op);
    lc_ledger_unref(lh);
}

static void lc_read_lac_start(void *arg)
{
    lc_lac_op_t *op = arg;
    lc_ledger_t *lh = op->lh;
    lc_ledger_ref(lh);
    if (lh->md.state == META_LEDGER_CLOSED) {
        *op->out = lh->lac;
        lc_wait_done(op->wait, MQ_OK);
        free(op);
        lc_ledger_unref(lh);
        return;
    }
    op->outstanding = lh->E;
    for (int i = 0; i < lh->E; i++) {
        mq_err_t err = lc_bookie_read_lac(lh->ens[i], lh->id, lh->cl->conf.read_timeout_ms,
                                          lc_read_lac_answer, op);
        if (err != MQ_OK) {
            lc_bk_result_t res;
            memset(&res, 0, sizeof(res));
            res.err = err;
            lc_read_lac_answer(&res, op);
        }
    }
}

mq_err_t lc_ledger_read_lac(lc_ledger_t *lh, int64_t *lac)
{
    lc_wait_t w;
    lc_wait_init(&w);
    lc_lac_op_t *op = mq_calloc(1, sizeof(*op));
    op->lh = lh;
    op->wait = &w;
    op->out = lac;
    op->best = -1;
    op->last_err = MQ_ECONN;
    mq_net_loop_post(lh->cl->loop, lc_read_lac_start, op);
    return lc_wait_wait(&w);
}
