/*
 * bk_storage: ledger storage (BookKeeper's DbLedgerStorage model): a write
 * cache in front of interleaved entry logs (bk_entrylog) and a RocksDB index
 * (bk_index), plus the checkpoint that makes the journal's older files
 * unnecessary.
 *
 * Adds go into the active write cache and are readable at once (the journal
 * makes them durable; see bk_journal.h). A checkpoint swaps the active cache
 * out, writes its entries sorted by (ledger, entry) to the entry log, syncs
 * it, writes their locations and the given ledger records to the index in one
 * synced batch, and only then persists the journal mark in every ledger dir
 * ("lastMark", 16 bytes: u64 file id, u64 offset, little-endian, replaced
 * atomically). Invariant: a persisted mark never passes data that is not
 * durable in the entry log and the index.
 *
 * Reads look in the active cache, then the cache being flushed, then the
 * index and the entry log, and never see a gap: the flushed cache is dropped
 * only after the index points at the entry log.
 *
 * Layout: entry logs in <ledgerDir>/current/ of every ledger dir; the index
 * (RocksDB) in <ledgerDirs[0]>/current/index; lastMark in every
 * <ledgerDir>/current/lastMark (the highest wins on read).
 *
 * Threads: add/get/last/ranges from any thread (a lock guards the caches);
 * bk_storage_checkpoint from one thread at a time (the bookie's sync thread).
 */
#ifndef BK_STORAGE_H
#define BK_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "bk_index.h"
#include "bk_journal.h"
#include "mq_buf.h"
#include "mq_err.h"

typedef struct bk_storage bk_storage_t;

typedef struct bk_storage_opts {
    const char *const *ledger_dirs; /* ledgerDirectories */
    size_t nledger_dirs;
    uint64_t entry_log_size_limit; /* logSizeLimit */
    size_t index_cache_bytes;      /* RocksDB block cache */
} bk_storage_opts_t;

/* A ledger record to persist with a checkpoint. */
typedef struct bk_ledger_update {
    uint64_t ledger_id;
    bk_ledger_rec_t rec;
} bk_ledger_update_t;

typedef struct bk_storage_stats {
    uint64_t checkpoints;
    uint64_t entries_flushed;
    uint64_t bytes_flushed;
    uint64_t last_checkpoint_ns; /* duration of the last checkpoint */
    uint64_t entrylog_reads;
    uint64_t cache_hits;
} bk_storage_stats_t;

mq_err_t bk_storage_open(const bk_storage_opts_t *opts, bk_storage_t **out);
/* Closes without a checkpoint (call one first for a clean stop). */
void bk_storage_close(bk_storage_t *st);

/* The persisted journal mark ({0, 0} when none was ever written). */
bk_journal_pos_t bk_storage_mark(bk_storage_t *st);

/* Puts an entry into the active write cache, replacing an earlier copy of
 * the same (ledger, entry). A new reference is taken on bytes. */
void bk_storage_add(bk_storage_t *st, uint64_t ledger_id, int64_t entry_id,
                    const mq_slice_t *bytes);
/*
 * Reads an entry: *out gets a referenced slice of its bytes (release it).
 * entry_id -1 reads the highest entry held. MQ_ENOENTRY when absent;
 * MQ_ECORRUPT / MQ_EIO from the entry log.
 */
mq_err_t bk_storage_get(bk_storage_t *st, uint64_t ledger_id, int64_t entry_id, mq_slice_t *out);
/* Highest entry id held for the ledger (caches and index), or -1. */
int64_t bk_storage_last_entry(bk_storage_t *st, uint64_t ledger_id);
/*
 * The entries held for the ledger as ascending disjoint ranges: *pairs gets
 * 2 * *count ids (first, last, first, last, ...), malloc'ed (free it).
 */
mq_err_t bk_storage_entry_ranges(bk_storage_t *st, uint64_t ledger_id, int64_t **pairs,
                                 size_t *count);
/* Bytes in the write caches (active + being flushed). */
size_t bk_storage_cache_bytes(bk_storage_t *st);

/*
 * Checkpoint: mark must have been read from bk_journal_synced() BEFORE this
 * call (every record up to it was added to the cache before the swap).
 * ledgers are persisted in the same index batch. On success the mark is
 * persisted and the caller may trim the journal up to it. One thread.
 */
mq_err_t bk_storage_checkpoint(bk_storage_t *st, bk_journal_pos_t mark,
                               const bk_ledger_update_t *ledgers, size_t nledgers);
/*
 * Paces the next checkpoint's entry-log writes to about bytes_per_sec (0:
 * flat out, the default; each checkpoint resets it when done). A paced
 * checkpoint goes flat out once the active cache holds more than half the
 * bytes of the one being flushed (pacing never lets the cache fill up), or
 * once this is called with 0 from any thread (a stop).
 */
void bk_storage_pace_next(bk_storage_t *st, uint64_t bytes_per_sec);

/* Durable ledger records, for loading at startup (see bk_index). */
mq_err_t bk_storage_foreach_ledger(bk_storage_t *st,
                                   void (*cb)(uint64_t ledger_id, const bk_ledger_rec_t *rec,
                                              void *arg),
                                   void *arg);
void bk_storage_get_stats(bk_storage_t *st, bk_storage_stats_t *out);

#endif
