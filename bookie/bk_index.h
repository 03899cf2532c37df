/*
 * bk_index: the bookie's index in RocksDB (the DbLedgerStorage model, through
 * RocksDB's C API): where each entry lives, and each ledger's durable state.
 *
 * Keys (big-endian so they sort by ledger, then entry):
 *   'E' u64 ledger u64 entry  ->  u64 location, u32 length   (bk_entry_loc_t)
 *   'L' u64 ledger            ->  ledger record (bk_ledger_rec_t, versioned)
 * Entry ids are non-negative, so unsigned order is entry order.
 *
 * Writes go in batches (one per checkpoint), synced when asked. Reads may come
 * from any thread; batches from one writer thread.
 */
#ifndef BK_INDEX_H
#define BK_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_entrylog.h"
#include "mq_err.h"

#define BK_MASTER_KEY_MAX 64

/* A ledger's state as the bookie keeps it durably. */
typedef struct bk_ledger_rec {
    bool fenced;
    uint8_t master_key_len;
    uint8_t master_key[BK_MASTER_KEY_MAX];
    int64_t lac; /* highest LAC seen in the ledger's entries; -1 if none */
} bk_ledger_rec_t;

typedef struct bk_index bk_index_t;
typedef struct bk_index_batch bk_index_batch_t;

/* Opens (creating) the database at path; cache_bytes sizes its block cache. */
mq_err_t bk_index_open(const char *path, size_t cache_bytes, bk_index_t **out);
void bk_index_close(bk_index_t *idx);

bk_index_batch_t *bk_index_batch_new(void);
void bk_index_batch_put_entry(bk_index_batch_t *b, uint64_t ledger_id, int64_t entry_id,
                              const bk_entry_loc_t *loc);
void bk_index_batch_put_ledger(bk_index_batch_t *b, uint64_t ledger_id, const bk_ledger_rec_t *rec);
/* Removes the ledger's record and all its entries' locations. */
void bk_index_batch_delete_ledger(bk_index_batch_t *b, uint64_t ledger_id);
size_t bk_index_batch_count(const bk_index_batch_t *b);
/* Applies the batch atomically; with sync, durable on return. */
mq_err_t bk_index_write(bk_index_t *idx, bk_index_batch_t *b, bool sync);
void bk_index_batch_free(bk_index_batch_t *b);

/* MQ_ENOENTRY when the entry is not indexed. A value that does not decode is
 * MQ_ECORRUPT (logged). */
mq_err_t bk_index_get_entry(bk_index_t *idx, uint64_t ledger_id, int64_t entry_id,
                            bk_entry_loc_t *out);
/* The highest indexed entry of the ledger; MQ_ENOENTRY when none. */
mq_err_t bk_index_last_entry(bk_index_t *idx, uint64_t ledger_id, int64_t *entry_id,
                             bk_entry_loc_t *loc);
/* Calls cb for every indexed entry id of the ledger, ascending. */
mq_err_t bk_index_foreach_entry(bk_index_t *idx, uint64_t ledger_id,
                                void (*cb)(int64_t entry_id, void *arg), void *arg);
/* MQ_ENOLEDGER when there is no record. */
mq_err_t bk_index_get_ledger(bk_index_t *idx, uint64_t ledger_id, bk_ledger_rec_t *out);
/* Calls cb for every ledger record, ascending by id. */
mq_err_t bk_index_foreach_ledger(bk_index_t *idx,
                                 void (*cb)(uint64_t ledger_id, const bk_ledger_rec_t *rec,
                                            void *arg),
                                 void *arg);

#endif
