/*
 * bk_writecache: the entries added since the last checkpoint, internal to
 * bk_storage (DbLedgerStorage's WriteCache). An open-addressing hash table
 * keyed by (ledger, entry) holds each entry as a slice (a reference on the
 * caller's buffer, never a copy), with byte and count totals, each ledger's
 * last entry id and a chain of its entries, and a sorted (ledger, entry)
 * walk for the checkpoint.
 *
 * Not thread-safe: bk_storage guards the active cache with its lock. A cache
 * that no longer changes (the one being flushed) may be read by several
 * threads at once.
 */
#ifndef BK_WRITECACHE_H
#define BK_WRITECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"

typedef struct bk_writecache bk_writecache_t;

/* A new cache sized for about expected entries (0: small). */
bk_writecache_t *bk_writecache_new(size_t expected);
/* Frees the cache and releases every entry it holds. */
void bk_writecache_free(bk_writecache_t *wc);

/* Puts an entry (entry_id >= 0), taking a new reference on bytes and
 * dropping any earlier copy of the same (ledger, entry). */
void bk_writecache_put(bk_writecache_t *wc, uint64_t ledger_id, int64_t entry_id,
                       const mq_slice_t *bytes);
/* True when held; *out then gets a new reference (release it). */
bool bk_writecache_get(const bk_writecache_t *wc, uint64_t ledger_id, int64_t entry_id,
                       mq_slice_t *out);
/* The ledger's highest entry id held, or -1. */
int64_t bk_writecache_last_entry(const bk_writecache_t *wc, uint64_t ledger_id);
/* Appends the ledger's entry ids (in no particular order) to the growable
 * array *ids (*n used, *cap allocated). */
void bk_writecache_ledger_entries(const bk_writecache_t *wc, uint64_t ledger_id, int64_t **ids,
                                  size_t *n, size_t *cap);

size_t bk_writecache_count(const bk_writecache_t *wc);
size_t bk_writecache_bytes(const bk_writecache_t *wc);

typedef mq_err_t (*bk_writecache_cb)(uint64_t ledger_id, int64_t entry_id, const mq_slice_t *bytes,
                                     void *arg);
/* Calls cb for every entry in (ledger, entry) order; stops at (and returns)
 * the first error cb returns. */
mq_err_t bk_writecache_foreach_sorted(const bk_writecache_t *wc, bk_writecache_cb cb, void *arg);
/* Puts every entry of src that dst does not hold into dst. */
void bk_writecache_absorb(bk_writecache_t *dst, const bk_writecache_t *src);

#endif
