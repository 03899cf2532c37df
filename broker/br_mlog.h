/*
 * br_mlog: the managed log of one topic queue (Pulsar's ManagedLedger on our
 * ledger client). A queue is a list of ledgers kept in ZooKeeper at
 * <root>/topics/<topic>/queues/<queue> and updated only by compare-and-set on
 * the znode version; only the last ledger of the list can be open.
 *
 * Offsets are logical, dense, start at 0 and are never reused. Messages that
 * arrive close together are packed into one ledger entry (a linger of
 * linger_us, or max_entry_bytes, whichever comes first); the entry records
 * its base offset and message count, so offset -> (ledger, entry, slot) is a
 * search over the list (in memory) and over the ledger's entries (at most
 * O(log n) bookie reads, none for the hot tail, which is cached).
 *
 * Ownership: br_mlog_open is what a new owner runs. It reads the list,
 * opens the last ledger with recovery (fencing any previous writer), learns
 * the next offset from its last entry, creates a new ledger and CASes the
 * list. From then on a BADVERSION on the list or EFENCED from a bookie means
 * another broker took the queue: the log becomes fenced, every pending and
 * later append fails with MQ_EFENCED, and on_fenced runs once.
 *
 * Rollover: a new ledger when the current one reaches rollover_bytes or
 * rollover_entries, or is older than rollover_secs (checked by a timer).
 * Retention: br_mlog_trim deletes whole closed ledgers last written more than
 * retention_hours ago and advances the queue's min offset.
 *
 * Threads: every function may be called from any thread unless noted.
 * Internally the log lives on its executor key (conf.executor, conf.key);
 * append and read callbacks run on the ledger client's loop thread or on the
 * executor and must not block.
 */
#ifndef BR_MLOG_H
#define BR_MLOG_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lc_ledger.h"
#include "mq_err.h"
#include "mq_executor.h"
#include "zk_client.h"

typedef struct br_mlog br_mlog_t;

typedef void (*br_mlog_fenced_cb)(br_mlog_t *ml, void *arg);

/* A hot-tail cache budget shared by many logs (one broker's queues): each
 * log may cache up to max(limit / logs, floor) bytes, and evicts its own
 * oldest entries while the sum over all logs is above limit. */
typedef struct br_mlog_budget {
    size_t limit;       /* bytes for all logs together */
    size_t floor;       /* a log may always keep this much */
    atomic_size_t used; /* charged by the logs */
    atomic_size_t logs; /* logs sharing the budget */
} br_mlog_budget_t;

typedef struct br_mlog_conf {
    lc_client_t *lc;   /* borrowed */
    zk_client_t *zk;   /* borrowed (the lc client's) */
    const char *root;  /* "/ledgermq" */
    const char *topic; /* copied */
    int queue;
    mq_executor_t *executor; /* borrowed; the log's work runs on key */
    uint64_t key;
    uint32_t linger_us;        /* batching window; default 500 */
    size_t max_entry_bytes;    /* largest packed entry; default 256 KiB */
    uint32_t max_inflight;     /* entries in flight at once (1..64); default 16 */
    uint64_t rollover_bytes;   /* default 1 GiB */
    uint64_t rollover_entries; /* default 50000 */
    uint32_t rollover_secs;    /* default 4 h */
    uint32_t retention_hours;  /* fileReservedTime; default 72 */
    size_t cache_bytes;        /* hot-tail cache of recent entries; default 4 MiB */
    br_mlog_budget_t *budget;  /* borrowed; when set, replaces cache_bytes */
    /* Entries read back from bookies are kept for the next reads (a
     * consumer takes an entry a few messages at a time): a few per log,
     * charged to read_budget (borrowed; NULL: no such cache), whose limit
     * is shared by the logs that read back (its `logs`). */
    br_mlog_budget_t *read_budget;
    /* When the latest append of any log sharing it arrived (borrowed; NULL:
     * this log's own appends): a new batch lingers only if some message
     * came less than linger_us before its first one. Shared by a broker's
     * logs, a queue that the send path's sticky choice just turned to
     * lingers from its first message on. */
    atomic_uint_least64_t *recent;
    br_mlog_fenced_cb on_fenced; /* may be NULL */
    void *arg;
} br_mlog_conf_t;

void br_mlog_conf_default(br_mlog_conf_t *conf);

/* Takes over the queue as its writer (see above); creates the list znode
 * if the queue never had one. Blocking: not from a ledger-client or
 * ZooKeeper callback. MQ_EBADVERSION when another broker changed the list
 * meanwhile; MQ_ENOTENOUGHBOOKIES when recovery or creation cannot proceed. */
mq_err_t br_mlog_open(const br_mlog_conf_t *conf, br_mlog_t **out);

/* err MQ_OK: the message is durable (Qa bookies) at offset. Completions run
 * in offset order. */
typedef void (*br_mlog_append_cb)(mq_err_t err, int64_t offset, void *arg);

/* Appends one message (copied). cb runs exactly once if this returns MQ_OK.
 * MQ_EFENCED / MQ_ECLOSED when the log no longer accepts; MQ_ETOOLARGE over
 * max_entry_bytes - 64. */
mq_err_t br_mlog_append(br_mlog_t *ml, const void *data, size_t len, br_mlog_append_cb cb,
                        void *arg);

/* Planned handover: stops accepting (appends fail MQ_ECLOSED), waits for
 * pending appends, closes the current ledger and records its end in the
 * list. Blocking. */
mq_err_t br_mlog_close(br_mlog_t *ml);
/* Frees the handle (close first for a clean handover; without it pending
 * appends fail with MQ_ECLOSED). Not from a callback. */
void br_mlog_free(br_mlog_t *ml);

bool br_mlog_fenced(br_mlog_t *ml);
/* The lowest offset still stored, and the next offset to be assigned (the
 * acknowledged end). */
int64_t br_mlog_min_offset(br_mlog_t *ml);
int64_t br_mlog_max_offset(br_mlog_t *ml);

/* One message read back. data is borrowed for the callback. */
typedef struct br_mlog_msg {
    int64_t offset;
    const uint8_t *data;
    size_t len;
} br_mlog_msg_t;

typedef void (*br_mlog_read_cb)(mq_err_t err, const br_mlog_msg_t *msgs, size_t count, void *arg);

/* Reads up to max_msgs acknowledged messages starting at offset (fewer at
 * an entry boundary is fine; count 0 at the end). MQ_ENOTFOUND when offset
 * is below the min offset (trimmed). cb runs exactly once if MQ_OK. */
mq_err_t br_mlog_read(br_mlog_t *ml, int64_t offset, size_t max_msgs, br_mlog_read_cb cb,
                      void *arg);

/* Retention: deletes closed ledgers older than retention_hours (never the
 * current one); *deleted (may be NULL) gets how many. Blocking. */
mq_err_t br_mlog_trim(br_mlog_t *ml, uint64_t now_ms, int *deleted);

/* ------------------------------------------------ without owning the queue */

typedef struct br_mlog_ledger_info {
    uint64_t ledger;
    int64_t first_offset; /* offset of its first message */
    int64_t entries;      /* -1 while open */
    int64_t messages;     /* -1 while open */
    uint64_t ctime_ms;    /* created */
    uint64_t mtime_ms;    /* closed (0 while open) */
} br_mlog_ledger_info_t;

typedef struct br_mlog_info {
    int64_t min_offset;
    int64_t max_offset; /* next offset as the list knows it (-1: open tail, unknown) */
    br_mlog_ledger_info_t *ledgers;
    size_t nledgers;
    int32_t version; /* znode version */
} br_mlog_info_t;

/* The list as stored in ZooKeeper (MQ_ENOTFOUND when the queue has none).
 * Free with br_mlog_info_fini. */
mq_err_t br_mlog_info_read(zk_client_t *zk, const char *root, const char *topic, int queue,
                           br_mlog_info_t *out);
void br_mlog_info_fini(br_mlog_info_t *info);

/* Reads messages [offset, offset + max_msgs) of a queue it does not own
 * (admin, tests): opens the ledgers read-only (no fencing), up to their LAC.
 * *msgs gets an array (free with br_mlog_msgs_free; data owned by it).
 * Blocking. */
mq_err_t br_mlog_read_detached(lc_client_t *lc, const char *root, const char *topic, int queue,
                               int64_t offset, size_t max_msgs, br_mlog_msg_t **msgs,
                               size_t *count);
void br_mlog_msgs_free(br_mlog_msg_t *msgs, size_t count);

#endif
