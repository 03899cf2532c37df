/*
 * lc_bookie: an asynchronous client of one bookie, speaking the bookie
 * protocol (proto/bookie.proto) over mq_net. Used by the ledger client, by
 * mqbench and by tests.
 *
 * Requests are pipelined on one connection. Every call that returns MQ_OK
 * calls its callback exactly once, on the net loop's thread, with the
 * transport error (MQ_ECONN, MQ_ETIMEDOUT, MQ_ECLOSED), a protocol error
 * (MQ_EPROTO: the answer did not decode or did not match the request) or the
 * bookie's status mapped to mq_err_t (lc_bkproto.h). Read answers are checked
 * here too: an entry whose CRC, ledger id or entry id is wrong gives
 * MQ_ECORRUPT. Calls may come from any thread.
 */
#ifndef LC_BOOKIE_H
#define LC_BOOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"
#include "mq_net.h"

/* Flags (the .proto's AddFlag / ReadFlag bits). */
#define LC_BK_ADD_RECOVERY 1u
#define LC_BK_READ_FENCE 1u

typedef struct lc_bookie lc_bookie_t;

typedef struct lc_bk_result {
    mq_err_t err;
    uint64_t ledger_id;
    int64_t entry_id;
    int64_t lac;           /* READ_LAC, READ_ENTRY */
    int64_t last_entry_id; /* READ_LAC */
    uint64_t total_disk_bytes;
    uint64_t free_disk_bytes;
    bool read_only;
    bool fenced;
    /* READ_ENTRY: the entry (header + payload); LIST_ENTRIES: range pairs
     * (u64 LE first, last, ...). Borrowed for the callback: mq_slice_dup it
     * to keep it. */
    mq_slice_t data;
    const char *message; /* the bookie's detail for a failure, or "" */
} lc_bk_result_t;

typedef void (*lc_bookie_cb)(const lc_bk_result_t *res, void *arg);

/* A client for the bookie at addr ("host:port") on loop. Connects lazily. */
mq_err_t lc_bookie_new(mq_net_loop_t *loop, const char *addr, lc_bookie_t **out);
/* Fails pending requests with MQ_ECLOSED and frees. Not from the loop. */
void lc_bookie_free(lc_bookie_t *bk);
const char *lc_bookie_addr(const lc_bookie_t *bk);
size_t lc_bookie_inflight(const lc_bookie_t *bk);

/* Adds entry (header + payload, see lc_entry.h; referenced, not copied). */
mq_err_t lc_bookie_add(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id,
                       const uint8_t *master_key, size_t key_len, uint32_t flags,
                       const mq_slice_t *entry, uint32_t timeout_ms, lc_bookie_cb cb, void *arg);
/* Reads an entry (-1: the last one held). LC_BK_READ_FENCE needs the key. */
mq_err_t lc_bookie_read(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id, uint32_t flags,
                        const uint8_t *master_key, size_t key_len, uint32_t timeout_ms,
                        lc_bookie_cb cb, void *arg);
mq_err_t lc_bookie_read_lac(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                            lc_bookie_cb cb, void *arg);
mq_err_t lc_bookie_info(lc_bookie_t *bk, uint32_t timeout_ms, lc_bookie_cb cb, void *arg);
mq_err_t lc_bookie_list_entries(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                lc_bookie_cb cb, void *arg);

/* --- blocking helpers (tools and tests; not from the loop thread) ---------- */

/* A finished request: the result with its data kept (release with
 * lc_bk_sync_result_fini). */
typedef struct lc_bk_sync_result {
    lc_bk_result_t res;
    char message[160];
} lc_bk_sync_result_t;

void lc_bk_sync_result_fini(lc_bk_sync_result_t *r);
mq_err_t lc_bookie_add_sync(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id,
                            const uint8_t *master_key, size_t key_len, uint32_t flags,
                            const mq_slice_t *entry, uint32_t timeout_ms, lc_bk_sync_result_t *out);
mq_err_t lc_bookie_read_sync(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id, uint32_t flags,
                             const uint8_t *master_key, size_t key_len, uint32_t timeout_ms,
                             lc_bk_sync_result_t *out);
mq_err_t lc_bookie_read_lac_sync(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                 lc_bk_sync_result_t *out);
mq_err_t lc_bookie_info_sync(lc_bookie_t *bk, uint32_t timeout_ms, lc_bk_sync_result_t *out);
mq_err_t lc_bookie_list_entries_sync(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                     lc_bk_sync_result_t *out);

#endif
