/*
 * bk_ledger: the bookie's table of ledgers it knows, with their state:
 * master key, fenced flag, highest LAC seen. The journal makes every change
 * durable before it is acknowledged (master-key and fence records); each
 * checkpoint persists the records changed since the previous one into the
 * index (bk_storage_checkpoint), from which the table is loaded at startup.
 *
 * Threads: any (one mutex; every operation is a few dozen nanoseconds).
 */
#ifndef BK_LEDGER_H
#define BK_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_index.h"
#include "bk_storage.h"
#include "mq_err.h"

typedef struct bk_ledgers bk_ledgers_t;

bk_ledgers_t *bk_ledgers_new(void);
void bk_ledgers_free(bk_ledgers_t *lt);

/* Loads a persisted record (startup). */
void bk_ledgers_load(bk_ledgers_t *lt, uint64_t ledger_id, const bk_ledger_rec_t *rec);

/* What an add or a fence must do, decided under the table's lock. */
typedef enum bk_ledger_verdict {
    BK_LEDGER_OK = 0,
    BK_LEDGER_CREATED = 1, /* new ledger: journal its master key first */
} bk_ledger_verdict_t;

/*
 * Admits an add: creates the ledger with key if unknown (verdict CREATED),
 * checks the key (MQ_EUNAUTHORIZED) and the fence (MQ_EFENCED unless
 * recovery), raises the ledger's LAC to lac. On error nothing changed.
 */
mq_err_t bk_ledgers_admit_add(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key,
                              size_t key_len, bool recovery, int64_t lac,
                              bk_ledger_verdict_t *verdict);
/*
 * Fences a ledger (creating it with key if unknown; CREATED then). The fence
 * takes effect at once: later plain adds get MQ_EFENCED. *was_durable tells
 * whether a fence record of an earlier fence is already durable (then there
 * is nothing to wait for). MQ_EUNAUTHORIZED on a key mismatch.
 */
mq_err_t bk_ledgers_fence(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key, size_t key_len,
                          bk_ledger_verdict_t *verdict, bool *was_durable);
/* The fence record of ledger_id is durable. */
void bk_ledgers_fence_durable(bk_ledgers_t *lt, uint64_t ledger_id);
/* Replay: apply a journaled master key / fence / entry LAC. */
void bk_ledgers_replay_key(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key,
                           size_t key_len);
void bk_ledgers_replay_fence(bk_ledgers_t *lt, uint64_t ledger_id);
void bk_ledgers_replay_lac(bk_ledgers_t *lt, uint64_t ledger_id, int64_t lac);

/* MQ_ENOLEDGER when unknown; else the state. */
mq_err_t bk_ledgers_get(bk_ledgers_t *lt, uint64_t ledger_id, bk_ledger_rec_t *out);
size_t bk_ledgers_count(bk_ledgers_t *lt);

/*
 * Records changed since the last successful persist: *out is malloc'ed
 * (free it), *token identifies the snapshot for bk_ledgers_persisted.
 */
void bk_ledgers_dirty(bk_ledgers_t *lt, bk_ledger_update_t **out, size_t *count, uint64_t *token);
/* The snapshot identified by token reached the index. */
void bk_ledgers_persisted(bk_ledgers_t *lt, uint64_t token);

#endif
