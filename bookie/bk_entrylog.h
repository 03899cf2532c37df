/*
 * bk_entrylog: interleaved entry log files (BookKeeper's EntryLogger): the
 * long-term home of entries once a checkpoint moves them out of the write
 * cache. Entries of all ledgers share one active file; the index maps
 * (ledger, entry) to a location in it.
 *
 * Files: <ledgerDir>/current/<016 hex log id>.log. The header is 4096 bytes:
 * magic "LMQE", u32 version, u64 log id, u32 CRC32C of the first 16 bytes,
 * zeros. Record (little-endian):
 *   u32 len        entry length
 *   u32 crc        CRC32C over (u64 log id, u64 ledger, i64 entry, entry)
 *   u64 ledger id
 *   i64 entry id
 *   entry bytes    (the entry as added, with its own header and CRC)
 * A location is (log id << 32) | offset of the record; logs never pass 4 GiB.
 * With several ledger dirs, each new log goes to the dir with the most free
 * space. On open, existing logs are found (in every dir) and a new log is
 * started above the highest id: a log that was being written at a crash is
 * never appended to again (its unindexed tail is garbage nobody points to).
 *
 * Threads: one writer (the checkpoint thread) appends and syncs; reads may
 * come from any thread at any time (pread).
 */
#ifndef BK_ENTRYLOG_H
#define BK_ENTRYLOG_H

#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"

#define BK_ENTRYLOG_REC_HDR 24

typedef struct bk_entry_loc {
    uint64_t location; /* (log id << 32) | offset of the record header */
    uint32_t length;   /* entry length (without the record header) */
} bk_entry_loc_t;

typedef struct bk_entrylog bk_entrylog_t;

/* Opens (creating <dir>/current as needed) and starts a new active log. */
mq_err_t bk_entrylog_open(const char *const *dirs, size_t ndirs, uint64_t log_size_limit,
                          bk_entrylog_t **out);
/* Appends an entry (buffered). Writer thread. */
mq_err_t bk_entrylog_append(bk_entrylog_t *el, uint64_t ledger_id, int64_t entry_id,
                            const uint8_t *entry, uint32_t len, bk_entry_loc_t *loc);
/* Writes out and fdatasyncs everything appended (including logs rotated
 * since the last sync). Writer thread. */
mq_err_t bk_entrylog_sync(bk_entrylog_t *el);
/*
 * Reads the entry at loc into a new buffer (*out, len = loc->length). Checks
 * the record header against ledger_id / entry_id and its CRC: a mismatch is
 * MQ_ECORRUPT (logged). Any thread.
 */
mq_err_t bk_entrylog_read(bk_entrylog_t *el, const bk_entry_loc_t *loc, uint64_t ledger_id,
                          int64_t entry_id, mq_buf_t **out);
/* Id of the active log (the one appends go to). */
uint64_t bk_entrylog_current_id(bk_entrylog_t *el);
/* Syncs and closes. */
void bk_entrylog_close(bk_entrylog_t *el);

#endif
