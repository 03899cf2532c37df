/*
 * lc_ledger: the ledger client (BookKeeper's LedgerHandle model). Brokers
 * write every message through it; bookies' replication workers reuse it.
 *
 * A ledger is an append-only sequence of entries 0, 1, 2, ... with one
 * writer, striped over an ensemble of E bookies: entry e goes to the Qw
 * bookies (e + i) mod E, i < Qw, and is acknowledged once Qa of them have it
 * in their fsynced journal, and only after every lower entry was
 * acknowledged (completions arrive strictly in entry order). Each entry
 * carries the writer's LAC (last add confirmed) at the time it was sent.
 *
 * A bookie that fails or times out is replaced by one outside the ensemble:
 * a new segment starting at LAC + 1 is compare-and-set into the metadata and
 * the pending entries are re-sent; the caller sees nothing of it. With no
 * replacement, the writer goes on while every entry can still reach Qa, and
 * fails with MQ_ENOTENOUGHBOOKIES when one cannot.
 *
 * Opening with recovery fences the last ensemble, finds the end of the
 * ledger (reading forward from the highest LAC with fencing reads), re-writes
 * what it finds with the RECOVERY flag and closes the ledger there. The old
 * writer's next add then fails with MQ_EFENCED, and so do all later ones.
 *
 * Threads: calls may come from any thread. Each client runs one event loop
 * thread; async callbacks run on it and must not block. Blocking calls must
 * not be made from a callback.
 */
#ifndef LC_LEDGER_H
#define LC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta_ledger.h"
#include "mq_buf.h"
#include "mq_err.h"
#include "zk_client.h"

typedef struct lc_client lc_client_t;
typedef struct lc_ledger lc_ledger_t;

typedef struct lc_client_conf {
    /* ZooKeeper: a shared client (borrowed), or servers to connect to. */
    zk_client_t *zk;
    const char *zk_servers;
    int zk_session_timeout_ms;            /* default 10000 */
    const char *root;                     /* zkLedgersRootPath, default "/ledgermq" */
    int ensemble_size;                    /* ensembleSize, default 5 */
    int write_quorum;                     /* writeQuorumSize, default 3 */
    int ack_quorum;                       /* ackQuorumSize, default 2 */
    uint32_t add_timeout_ms;              /* addEntryTimeoutSec * 1000, default 5000 */
    uint32_t read_timeout_ms;             /* readEntryTimeoutSec * 1000, default 5000 */
    uint32_t speculative_read_timeout_ms; /* speculativeReadTimeout, default 500; 0: off */
    const char *password;                 /* the master key derives from it; default "" */
} lc_client_conf_t;

void lc_client_conf_default(lc_client_conf_t *conf);
/* Connects (or borrows conf->zk), starts watching bookies, starts the loop. */
mq_err_t lc_client_new(const lc_client_conf_t *conf, lc_client_t **out);
/* Every ledger handle must have been freed first. Not from a callback. */
void lc_client_free(lc_client_t *cl);
/* An executor whose tasks run on the client's loop thread, where
 * completions arrive: a caller that keeps its state there answers them
 * with no thread hand-off. Its tasks must not block nor call the blocking
 * functions below (they wait for that thread). Free it with
 * mq_executor_free before lc_client_free. */
struct mq_executor *lc_client_executor_new(lc_client_t *cl, const char *name);
zk_client_t *lc_client_zk(lc_client_t *cl);

typedef struct lc_ledger_opts {
    int ensemble_size; /* 0: the client's default */
    int write_quorum;
    int ack_quorum;
    const meta_kv_t *custom; /* custom metadata, copied */
    size_t ncustom;
} lc_ledger_opts_t;

/* Creates a ledger (new id, E writable bookies, OPEN) and a writer handle.
 * MQ_ENOTENOUGHBOOKIES when fewer than E writable bookies are registered:
 * nothing is created then. opts may be NULL. */
mq_err_t lc_ledger_create(lc_client_t *cl, const lc_ledger_opts_t *opts, lc_ledger_t **out);
/* Opens for reading without recovery (entries up to the LAC, or up to the
 * last entry when closed). MQ_ENOLEDGER when it does not exist. */
mq_err_t lc_ledger_open(lc_client_t *cl, uint64_t id, lc_ledger_t **out);
/* Opens with recovery: fences, recovers and closes the ledger (a no-op on a
 * closed one) and returns a read handle on the closed ledger.
 * MQ_ENOTENOUGHBOOKIES when too few bookies of the last ensemble answer to
 * prove where the ledger ends (it stays IN_RECOVERY, not closed);
 * MQ_EUNAUTHORIZED when the password does not match. */
mq_err_t lc_ledger_recover(lc_client_t *cl, uint64_t id, lc_ledger_t **out);
/* Deletes the metadata (bookies reclaim the space later). */
mq_err_t lc_ledger_delete(lc_client_t *cl, uint64_t id);
/* Frees a handle (a writer should close first; pending adds fail with
 * MQ_ECLOSED, their callbacks run before this returns when called on the
 * loop thread). Not from a callback; a task of the client's executor may
 * (it runs on the loop, outside any callback). */
void lc_ledger_free(lc_ledger_t *lh);

uint64_t lc_ledger_id(const lc_ledger_t *lh);
/* Writer: last add confirmed. Reader: highest entry known readable (the last
 * entry when closed). -1 when none. */
int64_t lc_ledger_lac(lc_ledger_t *lh);
bool lc_ledger_closed(lc_ledger_t *lh);
/* A copy of the metadata as this handle knows it (fini it). Any thread,
 * the client's executor included. */
mq_err_t lc_ledger_metadata(lc_ledger_t *lh, meta_ledger_t *out);

/* --- writing -------------------------------------------------------------------- */

/* err MQ_OK: entry_id is durable on Qa bookies. Loop thread, entry order. */
typedef void (*lc_add_cb)(mq_err_t err, int64_t entry_id, void *arg);

/* Appends data (copied). cb runs exactly once if this returns MQ_OK;
 * MQ_ECLOSED on a closed or read-only handle (cb never called then). */
mq_err_t lc_ledger_add_async(lc_ledger_t *lh, const void *data, size_t len, lc_add_cb cb,
                             void *arg);
/* Blocking add; *entry_id (may be NULL) gets the entry's id. */
mq_err_t lc_ledger_add(lc_ledger_t *lh, const void *data, size_t len, int64_t *entry_id);
/* Writer: waits for pending adds, then records the last entry and length and
 * marks the ledger CLOSED. MQ_EFENCED if it was recovered meanwhile. */
mq_err_t lc_ledger_close(lc_ledger_t *lh);

/* --- reading -------------------------------------------------------------------- */

/* payload: the entry's bytes (borrowed for the call). Loop thread. */
typedef void (*lc_read_cb)(mq_err_t err, int64_t entry_id, const mq_slice_t *payload, void *arg);

/* Reads one entry (<= the LAC / last entry, else MQ_ENOENTRY) from one of
 * its replicas, trying the next one after an error or after the speculative
 * timeout. The entry's CRC is checked; a corrupt replica is skipped. */
mq_err_t lc_ledger_read_async(lc_ledger_t *lh, int64_t entry_id, lc_read_cb cb, void *arg);
/* Blocking read; *payload gets a slice to release. */
mq_err_t lc_ledger_read(lc_ledger_t *lh, int64_t entry_id, mq_slice_t *payload);
/* Asks the last ensemble for the highest LAC they saw (a tailing reader
 * polls this) and raises the handle's LAC; *lac gets the result. */
mq_err_t lc_ledger_read_lac(lc_ledger_t *lh, int64_t *lac);

#endif
