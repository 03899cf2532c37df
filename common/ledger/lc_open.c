/*
 * lc_open: creating, opening and deleting ledgers. Blocking, on the
 * caller's thread (metadata lives in ZooKeeper; nothing here is per entry).
 *
 * Create: choose E writable bookies first, then draw an id and create the
 * record, so too few bookies leaves nothing behind. Bookies learn about the
 * ledger from its first add.
 */
#include <stdlib.h>
#include <string.h>

#include "lc_int.h"
#include "mq_log.h"
#include "mq_util.h"

mq_err_t lc_ledger_create(lc_client_t *cl, const lc_ledger_opts_t *opts, lc_ledger_t **out)
{
    int e = opts && opts->ensemble_size ? opts->ensemble_size : cl->conf.ensemble_size;
    int qw = opts && opts->write_quorum ? opts->write_quorum : cl->conf.write_quorum;
    int qa = opts && opts->ack_quorum ? opts->ack_quorum : cl->conf.ack_quorum;
    if (e < 1 || e > META_MAX_ENSEMBLE || qw < 1 || qw > e || qa < 1 || qa > qw) {
        return MQ_EINVAL;
    }
    char picked[META_MAX_ENSEMBLE][META_BOOKIE_ID_MAX];
    mq_err_t err = meta_bookies_choose(cl->bookies, e, NULL, 0, picked);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot create a ledger: fewer than %d writable bookies", e);
        return err;
    }
    const char *ensemble[META_MAX_ENSEMBLE];
    for (int i = 0; i < e; i++) {
        ensemble[i] = picked[i];
    }
    meta_ledger_t md;
    for (int attempt = 0;; attempt++) {
        uint64_t id;
        err = meta_alloc_ledger_id(cl->zk, cl->root, &id);
        if (err != MQ_OK) {
            return err;
        }
        meta_ledger_init(&md, id, e, qw, qa, ensemble, cl->key_digest);
        md.ctime_ms = mq_wall_ms();
        for (size_t i = 0; opts && i < opts->ncustom; i++) {
            meta_ledger_set_custom(&md, opts->custom[i].key, opts->custom[i].value);
        }
        err = meta_ledger_create(cl->zk, cl->root, &md);
        if (err == MQ_OK) {
            break;
        }
        meta_ledger_fini(&md);
        /* An id is never handed out twice, but a record can exist without
         * having been allocated (written by hand): draw another. */
        if (err != MQ_EEXIST || attempt >= 3) {
            return err;
        }
    }
    *out = lc_ledger_new(cl, &md, true);
    MQ_LOG_DEBUG("ledger created ledger=%llu ensemble=%d/%d/%d", (unsigned long long)md.id, e, qw,
                 qa);
    meta_ledger_fini(&md);
    return MQ_OK;
}

mq_err_t lc_ledger_open(lc_client_t *cl, uint64_t id, lc_ledger_t **out)
{
    meta_ledger_t md;
    mq_err_t err = meta_ledger_read(cl->zk, cl->root, id, &md);
    if (err != MQ_OK) {
        return err;
    }
    lc_ledger_t *lh = lc_ledger_new(cl, &md, false);
    meta_ledger_fini(&md);
    if (!lc_ledger_closed(lh)) {
        /* Learn how far it can be read; a reader polls for more later. */
        int64_t lac;
        lc_ledger_read_lac(lh, &lac);
    }
    *out = lh;
    return MQ_OK;
}

mq_err_t lc_ledger_delete(lc_client_t *cl, uint64_t id)
{
    return meta_ledger_delete(cl->zk, cl->root, id);
}
