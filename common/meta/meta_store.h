/*
 * meta_store: ledger metadata and ids in ZooKeeper, and the registry of
 * bookies. The layout (DESIGN.md §6, root = zkLedgersRootPath, default
 * "/ledgermq"):
 *
 *   <root>/ledgers/idgen                  "next=<id>": the next id to hand out
 *   <root>/ledgers/<hierarchical id>      a ledger's record (meta_ledger.h)
 *   <root>/bookies/available/<bookieId>   writable bookies (ephemeral; "address=host:port", ...)
 *   <root>/bookies/readonly/<bookieId>    read-only bookies (ephemeral)
 *
 * Hierarchical id path: the id as 19 decimal digits, split 3-4-4-4-4 with an
 * "L" before the last group: ledger 1234 lives at
 * <root>/ledgers/000/0000/0000/0000/L1234, ledger 1 at .../0000/L0001,
 * ledger 12345 at .../0001/L2345 and ledger 1234567890123456789 at
 * <root>/ledgers/123/4567/8901/2345/L6789. Ids are handed out by
 * compare-and-set on idgen, so they are unique across every process and never
 * reused, even after deletion.
 *
 * Blocking calls may be made from any thread (zk_client.h); async calls
 * complete on the zk client's event thread.
 */
#ifndef META_STORE_H
#define META_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta_ledger.h"
#include "mq_err.h"
#include "zk_client.h"

/* Writes the znode path of ledger id into out. */
void meta_ledger_path(const char *root, uint64_t id, char *out, size_t cap);

/* Allocates a new ledger id (CAS loop on <root>/ledgers/idgen). */
mq_err_t meta_alloc_ledger_id(zk_client_t *zk, const char *root, uint64_t *id);

/* Creates the record of md->id (parents too); MQ_EEXIST if taken. On success
 * md->version is the new znode's version. */
mq_err_t meta_ledger_create(zk_client_t *zk, const char *root, meta_ledger_t *md);
/* Reads a record; MQ_ENOLEDGER when absent, MQ_ECORRUPT when it does not
 * decode or holds another id (logged with the reason). out->version is set.
 * On failure out holds nothing. */
mq_err_t meta_ledger_read(zk_client_t *zk, const char *root, uint64_t id, meta_ledger_t *out);
/* Writes md if the znode is still at md->version; on success md->version is
 * the new one. MQ_EBADVERSION when someone else wrote first, MQ_ENOLEDGER
 * when it was deleted, MQ_EINVAL when md->version < 0 (never read: no
 * unconditional writes) or md does not encode. */
mq_err_t meta_ledger_write(zk_client_t *zk, const char *root, meta_ledger_t *md);
/* Deletes a record (any version). MQ_ENOLEDGER when absent. */
mq_err_t meta_ledger_delete(zk_client_t *zk, const char *root, uint64_t id);

/* Async CAS write; cb(err, new_version, arg) on the zk event thread
 * (new_version -1 on failure; md->version is not updated). md is encoded
 * before the call returns (the caller keeps ownership). Errors as above. */
typedef void (*meta_write_cb)(mq_err_t err, int32_t new_version, void *arg);
mq_err_t meta_ledger_write_async(zk_client_t *zk, const char *root, const meta_ledger_t *md,
                                 meta_write_cb cb, void *arg);
/* Async read; cb gets the decoded record (borrowed for the call). */
typedef void (*meta_read_cb)(mq_err_t err, const meta_ledger_t *md, void *arg);
mq_err_t meta_ledger_read_async(zk_client_t *zk, const char *root, uint64_t id, meta_read_cb cb,
                                void *arg);

/* --- bookie registry --------------------------------------------------------- */

typedef struct meta_bookie_info {
    char id[META_BOOKIE_ID_MAX];
    char address[META_BOOKIE_ID_MAX]; /* host:port to connect to */
    bool writable;
} meta_bookie_info_t;

typedef struct meta_bookies meta_bookies_t;

/* Called (on the zk event thread) after the set of bookies changed. */
typedef void (*meta_bookies_cb)(void *arg);

/*
 * Watches <root>/bookies/available and <root>/bookies/readonly and keeps the
 * current set (with each bookie's address from its registration data),
 * re-reading after every change and after a session expiry. Returns once the
 * first listing is loaded; cb (may be NULL) is only called for changes after
 * that. A directory that does not exist yet is empty until it is created.
 */
mq_err_t meta_bookies_new(zk_client_t *zk, const char *root, meta_bookies_cb cb, void *arg,
                          meta_bookies_t **out);
/* Before zk_client_free of its client. Waits for a running callback to
 * return (so do not hold a lock that cb takes); from inside cb itself the
 * registry is freed once cb returns. */
void meta_bookies_free(meta_bookies_t *b);

/* A snapshot of the registered bookies (sorted by id). Free with free()
 * (never NULL, also when count is 0). Any thread. */
mq_err_t meta_bookies_list(meta_bookies_t *b, meta_bookie_info_t **out, size_t *count);
/* The address of a bookie id: from its registration, or the id itself when
 * it is not registered now (ids default to host:port). Any thread. */
void meta_bookies_address(meta_bookies_t *b, const char *id, char *out, size_t cap);

/*
 * Placement: n distinct writable bookies not in exclude, spread evenly over
 * what is registered (each call starts after where the previous one ended,
 * from a random first offset per process). MQ_ENOTENOUGHBOOKIES when fewer
 * than n qualify; nothing is written to out then. MQ_EINVAL unless
 * 1 <= n <= META_MAX_ENSEMBLE. Any thread.
 */
mq_err_t meta_bookies_choose(meta_bookies_t *b, int n, const char *const *exclude, size_t nexclude,
                             char (*out)[META_BOOKIE_ID_MAX]);

#endif
