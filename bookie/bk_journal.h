/*
 * bk_journal: the bookie's write-ahead log, with group commit.
 *
 * Every add (and every ledger-state change: master key, fence) is appended
 * here and acknowledged only once its record is durable (fdatasync'ed when
 * sync_data is on). Records are opaque to the journal: a type and a payload.
 *
 * Files: <dir>/current/<016 hex file id>.txn, fixed size (max_file_size),
 * preallocated by writing zeros before use (overwriting written blocks makes
 * fdatasync cheap: no extent or size change to commit), and recycled after a
 * checkpoint instead of being deleted. The file header is one alignment
 * block: magic "LMQJ", u32 version, u64 file id, u32 CRC32C of the first 16
 * bytes, zeros.
 *
 * Record (little-endian):
 *   u32 len      payload length
 *   u32 type     bk_jrec_type_t
 *   u32 crc      CRC32C over (u64 file id, u32 type, u32 len, payload)
 *   payload
 * Seeding the CRC with the file id means stale records of a recycled file
 * never validate. Before every write() the writer appends a BK_JREC_PAD
 * record so the file position stays a multiple of the alignment: a block
 * holding acknowledged records is never rewritten.
 *
 * Threads: a writer thread (drains the queue, issues write(); with
 * sync_data on it then calls fdatasync and the callbacks itself) and a
 * force thread (fdatasync and callbacks with sync_data off, where syncs are
 * rare). The writer flushes when no sync is under way, or when
 * max_group_wait passed for the oldest queued record, or when
 * buffered_writes_threshold bytes are waiting; so one add in flight is
 * written and synced at once, and under load each fsync covers a growing
 * group. A background allocator prepares the next file.
 *
 * Failure: if write or fdatasync fails, every pending and later append
 * completes with MQ_EIO (fsync is never retried) and bk_journal_failed()
 * turns true; the bookie must stop.
 */
#ifndef BK_JOURNAL_H
#define BK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"

typedef enum bk_jrec_type {
    BK_JREC_ENTRY = 1,      /* payload: an entry, as added (lc_entry format) */
    BK_JREC_MASTER_KEY = 2, /* payload: u64 ledger id, key bytes */
    BK_JREC_FENCE = 3,      /* payload: u64 ledger id */
    BK_JREC_PAD = 15,       /* internal: alignment padding, skipped on replay */
} bk_jrec_type_t;

#define BK_JREC_HDR_SIZE 12

/* A position in the journal: a file and a byte offset in it. Positions
 * compare by (file_id, offset). */
typedef struct bk_journal_pos {
    uint64_t file_id;
    uint64_t offset;
} bk_journal_pos_t;

static inline int bk_journal_pos_cmp(bk_journal_pos_t a, bk_journal_pos_t b)
{
    if (a.file_id != b.file_id) {
        return a.file_id < b.file_id ? -1 : 1;
    }
    return a.offset < b.offset ? -1 : (a.offset > b.offset ? 1 : 0);
}

typedef struct bk_journal_opts {
    const char *dir;                  /* journalDirectories (one dir) */
    bool sync_data;                   /* journalSyncData */
    uint32_t max_group_wait_ms;       /* journalMaxGroupWaitMSec */
    size_t buffered_writes_threshold; /* journalBufferedWritesThreshold (bytes) */
    uint64_t max_file_size;           /* journalMaxSizeMB in bytes */
    uint64_t prealloc_size;           /* journalPreAllocSizeMB: zero-fill chunk */
    uint32_t alignment;               /* journalAlignmentSize, power of two >= 512 */
    uint32_t max_backups;             /* journalMaxBackups: old files kept for reuse */
    /* New files are zero-filled at the writer's pace (8/7 of its position
     * in the current file) instead of flat out; see bk_journal.c. */
    bool paced_prealloc;
    /* With sync_data: appends do not wake the writer thread; the appending
     * thread writes and syncs them itself with bk_journal_write_queued
     * (the bookie does, once per event-loop iteration), and the callbacks
     * run there. The writer thread only writes what is left at close. */
    bool inline_writes;
    /* Called after the callbacks of one fsync group ran, on their thread
     * (lets the owner wake its event loop once per group). May be NULL. */
    void (*on_group_done)(void *arg);
    void *group_arg;
} bk_journal_opts_t;

/* Runs on the writer thread (sync_data on), the caller of
 * bk_journal_write_queued (inline_writes) or the force thread (sync_data
 * off); must be quick and must not block. */
typedef void (*bk_journal_cb)(mq_err_t err, void *arg);

typedef struct bk_journal bk_journal_t;

typedef struct bk_journal_stats {
    uint64_t records;
    uint64_t bytes;   /* record bytes written, padding included */
    uint64_t writes;  /* write() calls */
    uint64_t syncs;   /* fdatasync calls */
    uint64_t sync_ns; /* total time in fdatasync */
    uint64_t files_created;
    uint64_t files_recycled;
    uint64_t prealloc_bytes; /* zeros written into new files */
    uint64_t prealloc_waits; /* times the allocator waited for the writer */
} bk_journal_stats_t;

/* --- replay (before open) ---------------------------------------------------- */

/* One replayed record; payload is valid for the call only. pos is the
 * position just after the record. */
typedef void (*bk_journal_replay_cb)(bk_jrec_type_t type, const uint8_t *payload, size_t len,
                                     bk_journal_pos_t pos, void *arg);

typedef struct bk_journal_replay_stats {
    uint64_t files;
    uint64_t records;
    uint64_t torn_files;  /* files whose scan stopped at a bad record */
    bk_journal_pos_t end; /* position after the last good record */
} bk_journal_replay_stats_t;

/*
 * Replays every record at or after from, in order: the rest of from's file
 * (from its offset; from the header if offset is 0), then every later file.
 * In each file the scan stops at the first record that does not validate
 * (zeros, torn tail, bad CRC, impossible length) and goes on with the next
 * file; a file that is missing or unreadable in the middle is an error
 * (MQ_ECORRUPT, logged). Returns MQ_OK with stats on success.
 */
mq_err_t bk_journal_replay(const char *dir, bk_journal_pos_t from, bk_journal_replay_cb cb,
                           void *arg, bk_journal_replay_stats_t *stats);

/* --- writing ------------------------------------------------------------------- */

/* Opens the journal in opts->dir (creating it), starts a new file whose id is
 * above every existing one, and starts the threads. */
mq_err_t bk_journal_open(const bk_journal_opts_t *opts, bk_journal_t **out);
/*
 * Queues a record. payload's buffer gets a new reference (released once
 * written). cb(err, arg) runs once the record is durable (or failed). Records
 * are written, and callbacks run, in append order. Any thread. Returns
 * MQ_ESHUTDOWN after close began, MQ_EIO after a disk failure; then cb is
 * never called.
 */
mq_err_t bk_journal_append(bk_journal_t *j, bk_jrec_type_t type, const mq_slice_t *payload,
                           bk_journal_cb cb, void *arg);
/* inline_writes: writes every queued record, syncs once, and runs the
 * callbacks and on_group_done, all on the calling thread (which blocks for
 * the fdatasync). Records queued after close began are left to the writer
 * thread, as are records queued while another thread is in here. A no-op
 * without inline_writes. */
void bk_journal_write_queued(bk_journal_t *j);
/* Whether appends wait for bk_journal_write_queued (inline_writes with
 * sync_data). */
bool bk_journal_inline_writes(const bk_journal_t *j);
/* Position up to which everything appended is durable (the checkpoint mark). */
bk_journal_pos_t bk_journal_synced(bk_journal_t *j);
/* Bytes queued and not yet durable (for the owner's back-pressure). */
size_t bk_journal_queued_bytes(bk_journal_t *j);
/* Everything before mark is in ledger storage: files wholly before mark's
 * file are recycled (up to max_backups) or deleted. Any thread. */
void bk_journal_trim(bk_journal_t *j, bk_journal_pos_t mark);
bool bk_journal_failed(bk_journal_t *j);
void bk_journal_get_stats(bk_journal_t *j, bk_journal_stats_t *out);
/* Writes and syncs everything queued (running its callbacks), stops the
 * threads, closes and frees. */
void bk_journal_close(bk_journal_t *j);

#endif
