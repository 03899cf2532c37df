/*
 * bk_cookie: proof that a bookie's directories are the ones it acknowledged
 * entries from (BookKeeper's cookies). A cookie names the cluster instance,
 * the bookie id and its directories; it is stored in ZooKeeper
 * (<root>/bookies/cookies/<bookieId>) and in <dir>/current/VERSION of every
 * journal and ledger directory.
 *
 * A bookie whose directories were wiped still has its ZooKeeper cookie and
 * refuses to start: otherwise it would rejoin empty and answer "no such
 * entry" for entries it had acknowledged, which can make ledger recovery
 * truncate acknowledged data. `mqbookie --format` clears the directories and
 * the ZooKeeper cookie so the bookie can start again as a new, empty one.
 *
 * Startup thread only (blocking ZooKeeper and file calls).
 */
#ifndef BK_COOKIE_H
#define BK_COOKIE_H

#include <stddef.h>

#include "mq_err.h"
#include "zk_client.h"

typedef struct bk_cookie_ctx {
    zk_client_t *zk;
    const char *root; /* zkLedgersRootPath */
    const char *bookie_id;
    const char *const *journal_dirs;
    size_t njournal_dirs;
    const char *const *ledger_dirs;
    size_t nledger_dirs;
} bk_cookie_ctx_t;

/* Reads (creating on first use) the cluster's instance id at <root>/cluster. */
mq_err_t bk_cluster_instance_id(zk_client_t *zk, const char *root, char *out, size_t cap);

/*
 * Validates the cookies, writing them for a brand-new bookie (no cookie
 * anywhere and empty directories). On refusal returns MQ_ECOOKIE with an
 * explanation for the operator in errbuf.
 */
mq_err_t bk_cookie_check(const bk_cookie_ctx_t *ctx, char *errbuf, size_t errlen);

/* Deletes the contents of every directory and the ZooKeeper cookie. */
mq_err_t bk_cookie_format(const bk_cookie_ctx_t *ctx);

#endif
