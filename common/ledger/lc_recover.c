/*
 * lc_recover: open with recovery (BookKeeper's LedgerRecoveryOp, with the two
 * fixes its TLA+ model found: recovery reads fence too, and entries of
 * earlier ensembles are never re-examined).
 *
 *  1. Mark the record IN_RECOVERY (compare-and-set): the writer can no longer
 *     change its ensemble.
 *  2. Fence every bookie of the last ensemble, learning the highest LAC each
 *     saw. Proceed only with quorum coverage: every write set has fewer than
 *     Qa bookies that did not answer. Then each write set holds at least
 *     Qw - Qa + 1 fenced bookies, so the old writer cannot reach Qa anywhere.
 *  3. Start at max(highest LAC, first entry of the last segment - 1): all
 *     below is acknowledged and immutable.
 *  4. Read forward with fencing reads: an entry any replica returns intact is
 *     re-written to its write set with the RECOVERY flag (needs Qa acks); an
 *     entry that Qw - Qa + 1 replicas say they lack cannot have been
 *     acknowledged, and ends the ledger; anything else is an error (the
 *     record stays IN_RECOVERY: nothing is closed at a wrong point).
 *  5. Close at the last entry found (compare-and-set IN_RECOVERY -> CLOSED).
 *
 * Blocking, on the caller's thread; requests go out in parallel and are
 * gathered.
 */
#include <stdlib.h>
#include <string.h>

#include "lc_entry.h"
#include "lc_int.h"
#include "mq_log.h"
#include "mq_util.h"

typedef struct lc_gather {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int outstanding;
    lc_bk_sync_result_t res[META_MAX_ENSEMBLE];
} lc_gather_t;

typedef struct lc_gather_slot {
    lc_gather_t *g;
    int i;
} lc_gather_slot_t;

static void lc_gather_init(lc_gather_t *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void lc_gather_done(const lc_bk_result_t *res, void *arg)
{
    lc_gather_slot_t *s = arg;
    lc_gather_t *g = s->g;
    lc_bk_sync_result_t *r = &g->res[s->i];
    r->res = *res;
    r->res.data = mq_slice_dup(&res->data);
    snprintf(r->message, sizeof(r->message), "%s", res->message ? res->message : "");
    r->res.message = r->message;
    free(s);
    pthread_mutex_lock(&g->lock);
    g->outstanding--;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static lc_gather_slot_t *lc_gather_slot(lc_gather_t *g, int i)
{
    lc_gather_slot_t *s = mq_malloc(sizeof(*s));
    s->g = g;
    s->i = i;
    pthread_mutex_lock(&g->lock);
    g->outstanding++;
    pthread_mutex_unlock(&g->lock);
    return s;
}

/* A request that could not be sent counts as an answer with that error. */
static void lc_gather_sent(lc_gather_t *g, lc_gather_slot_t *s, mq_err_t err)
{
    if (err != MQ_OK) {
        lc_bk_result_t res;
        memset(&res, 0, sizeof(res));
        res.err = err;
        res.message = "not sent";
        lc_gather_done(&res, s);
    }
    MQ_UNUSED(g);
}

static void lc_gather_wait(lc_gather_t *g, int n)
{
    pthread_mutex_lock(&g->lock);
    while (g->outstanding > 0) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    MQ_UNUSED(n);
}

static void lc_gather_fini(lc_gather_t *g, int n)
{
    for (int i = 0; i < n; i++) {
        lc_bk_sync_result_fini(&g->res[i]);
    }
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

/* Steps 2-3: fences the last ensemble; *start gets where to read from. */
static mq_err_t lc_recover_fence(lc_client_t *cl, const meta_ledger_t *md, int64_t *start)
{
    const meta_segment_t *seg = meta_ledger_last_segment(md);
    int e = md->ensemble_size;
    lc_gather_t g;
    lc_gather_init(&g);
    for (int i = 0; i < e; i++) {
        lc_gather_slot_t *s = lc_gather_slot(&g, i);
        lc_gather_sent(&g, s,
                       lc_bookie_read(lc_client_bookie(cl, seg->bookies[i]), md->id, -1,
                                      LC_BK_READ_FENCE, cl->key, LC_KEY_LEN,
                                      cl->conf.read_timeout_ms, lc_gather_done, s));
    }
    lc_gather_wait(&g, e);
    uint32_t unknown = 0;
    int64_t max_lac = -1;
    mq_err_t err = MQ_OK;
    for (int i = 0; i < e; i++) {
        const lc_bk_result_t *r = &g.res[i].res;
        if (r->err == MQ_OK) {
            lc_entry_hdr_t hdr;
            lc_entry_parse_hdr(r->data.ptr, &hdr);
            max_lac = MQ_MAX(max_lac, MQ_MAX(r->lac, hdr.lac));
        } else if (r->err == MQ_ENOENTRY || r->err == MQ_ENOLEDGER) {
            max_lac = MQ_MAX(max_lac, r->lac);
        } else if (r->err == MQ_EUNAUTHORIZED) {
            err = MQ_EUNAUTHORIZED;
        } else {
            unknown |= 1u << i;
            MQ_LOG_WARN("recovery: bookie did not fence ledger=%llu bookie=%s err=%s",
                        (unsigned long long)md->id, seg->bookies[i], mq_err_name(r->err));
        }
    }
    lc_gather_fini(&g, e);
    if (err != MQ_OK) {
        return err;
    }
    if (!lc_quorum_covered(e, md->write_quorum, md->ack_quorum, unknown)) {
        MQ_LOG_WARN("recovery: too few bookies of the last ensemble answered to prove where "
                    "ledger %llu ends (unreachable mask 0x%x, E=%d Qw=%d Qa=%d); it stays "
                    "IN_RECOVERY",
                    (unsigned long long)md->id, unknown, e, md->write_quorum, md->ack_quorum);
        return MQ_ENOTENOUGHBOOKIES;
    }
    *start = MQ_MAX(max_lac, seg->first_entry - 1);
    return MQ_OK;
}

typedef struct lc_read_wait {
    lc_wait_t w;
    uint64_t length;
} lc_read_wait_t;

static void lc_recover_len_done(mq_err_t err, int64_t entry_id, const mq_slice_t *payload,
                                void *arg)
{
    MQ_UNUSED(entry_id);
    lc_read_wait_t *rw = arg;
    if (err == MQ_OK) {
        lc_entry_hdr_t hdr;
        lc_entry_parse_hdr(payload->ptr, &hdr);
        rw->length = hdr.length;
    }
    lc_wait_done(&rw->w, err);
}

/* The ledger length through entry e (read from its header). */
static mq_err_t lc_recover_length_at(lc_client_t *cl, const meta_ledger_t *md, int64_t e,
                                     uint64_t *length)
{
    lc_ledger_t *lh = lc_ledger_new(cl, md, false);
    lc_read_wait_t rw;
    lc_wait_init(&rw.w);
    rw.length = 0;
    mq_err_t err = lc_read_entry(lh, e, true, lc_recover_len_done, &rw);
    if (err != MQ_OK) {
        lc_wait_done(&rw.w, err);
    }
    err = lc_wait_wait(&rw.w);
    lc_ledger_free(lh);
    *length = rw.length;
    return err;
}

/*
 * Step 4 for one entry: *found is set when some replica has it (then it was
 * re-written to Qa replicas of its write set); when not found and enough
 * replicas deny it, returns MQ_OK with *found false (the ledger ends).
 */
static mq_err_t lc_recover_entry(lc_client_t *cl, const meta_ledger_t *md, int64_t e, bool *found,
                                 uint64_t *length)
{
    const meta_segment_t *seg = meta_ledger_last_segment(md);
    int qw = md->write_quorum;
    lc_bookie_t *bks[META_MAX_ENSEMBLE];
    lc_gather_t g;
    lc_gather_init(&g);
    for (int i = 0; i < qw; i++) {
        bks[i] = lc_client_bookie(cl, seg->bookies[meta_stripe(e, i, md->ensemble_size)]);
        lc_gather_slot_t *s = lc_gather_slot(&g, i);
        lc_gather_sent(&g, s,
                       lc_bookie_read(bks[i], md->id, e, LC_BK_READ_FENCE, cl->key, LC_KEY_LEN,
                                      cl->conf.read_timeout_ms, lc_gather_done, s));
    }
    lc_gather_wait(&g, qw);
    int have = -1;
    int denied = 0;
    for (int i = 0; i < qw; i++) {
        mq_err_t r = g.res[i].res.err;
        if (r == MQ_OK && have < 0) {
            have = i;
        } else if (r == MQ_ENOENTRY || r == MQ_ENOLEDGER) {
            denied++;
        }
    }
    mq_err_t err = MQ_OK;
    *found = have >= 0;
    if (have < 0) {
        if (denied < qw - md->ack_quorum + 1) {
            MQ_LOG_WARN("recovery: cannot tell whether entry exists ledger=%llu entry=%lld "
                        "denied=%d of %d",
                        (unsigned long long)md->id, (long long)e, denied, qw);
            err = MQ_ENOTENOUGHBOOKIES;
        }
        lc_gather_fini(&g, qw);
        return err;
    }
    mq_slice_t entry = mq_slice_dup(&g.res[have].res.data);
    lc_gather_fini(&g, qw);
    lc_entry_hdr_t hdr;
    lc_entry_parse_hdr(entry.ptr, &hdr);
    *length = hdr.length;

    lc_gather_init(&g);
    for (int i = 0; i < qw; i++) {
        lc_gather_slot_t *s = lc_gather_slot(&g, i);
        lc_gather_sent(&g, s,
                       lc_bookie_add(bks[i], md->id, e, cl->key, LC_KEY_LEN, LC_BK_ADD_RECOVERY,
                                     &entry, cl->conf.add_timeout_ms, lc_gather_done, s));
    }
    lc_gather_wait(&g, qw);
    int acks = 0;
    for (int i = 0; i < qw; i++) {
        acks += g.res[i].res.err == MQ_OK;
    }
    lc_gather_fini(&g, qw);
    mq_slice_release(&entry);
    if (acks < md->ack_quorum) {
        MQ_LOG_WARN("recovery: re-written entry did not reach its ack quorum ledger=%llu "
                    "entry=%lld acks=%d",
                    (unsigned long long)md->id, (long long)e, acks);
        return MQ_ENOTENOUGHBOOKIES;
    }
    return MQ_OK;
}

/* Step 1: OPEN -> IN_RECOVERY. On return md is the current record. */
static mq_err_t lc_recover_mark(lc_client_t *cl, meta_ledger_t *md)
{
    for (;;) {
        if (md->state != META_LEDGER_OPEN) {
            return MQ_OK;
        }
        md->state = META_LEDGER_IN_RECOVERY;
        mq_err_t err = meta_ledger_write(cl->zk, cl->root, md);
        if (err != MQ_EBADVERSION) {
            return err;
        }
        meta_ledger_fini(md);
        err = meta_ledger_read(cl->zk, cl->root, md->id, md);
        if (err != MQ_OK) {
            return err;
        }
    }
}

mq_err_t lc_ledger_recover(lc_client_t *cl, uint64_t id, lc_ledger_t **out)
{
    meta_ledger_t md;
    mq_err_t err = meta_ledger_read(cl->zk, cl->root, id, &md);
    if (err != MQ_OK) {
        return err;
    }
    if (strcmp(md.master_key_digest, cl->key_digest) != 0) {
        MQ_LOG_WARN("recovery refused: password does not match ledger=%llu",
                    (unsigned long long)id);
        meta_ledger_fini(&md);
        return MQ_EUNAUTHORIZED;
    }
    uint64_t t0 = mq_now_ms();
    err = lc_recover_mark(cl, &md);
    int64_t start = -1;
    if (err == MQ_OK && md.state == META_LEDGER_IN_RECOVERY) {
        err = lc_recover_fence(cl, &md, &start);
    }
    int64_t last = start;
    uint64_t length = 0;
    int rewritten = 0;
    if (err == MQ_OK && md.state == META_LEDGER_IN_RECOVERY) {
        if (start >= 0) {
            err = lc_recover_length_at(cl, &md, start, &length);
        }
        for (int64_t e = start + 1; err == MQ_OK; e++) {
            bool found;
            uint64_t len = 0;
            err = lc_recover_entry(cl, &md, e, &found, &len);
            if (err != MQ_OK || !found) {
                break;
            }
            last = e;
            length = len;
            rewritten++;
        }
    }
    /* Step 5: close where the ledger ends, unless someone else did. */
    while (err == MQ_OK && md.state == META_LEDGER_IN_RECOVERY) {
        md.state = META_LEDGER_CLOSED;
        md.last_entry_id = last;
        md.length = length;
        err = meta_ledger_write(cl->zk, cl->root, &md);
        if (err == MQ_EBADVERSION) {
            meta_ledger_fini(&md);
            err = meta_ledger_read(cl->zk, cl->root, id, &md);
        }
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("recovery failed ledger=%llu err=%s", (unsigned long long)id, mq_err_name(err));
        meta_ledger_fini(&md);
        return err;
    }
    MQ_LOG_INFO("ledger recovered ledger=%llu last=%lld length=%llu rewritten=%d ms=%llu",
                (unsigned long long)id, (long long)md.last_entry_id, (unsigned long long)md.length,
                rewritten, (unsigned long long)(mq_now_ms() - t0));
    *out = lc_ledger_new(cl, &md, false);
    meta_ledger_fini(&md);
    return MQ_OK;
}
