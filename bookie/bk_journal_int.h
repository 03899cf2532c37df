/*
 * bk_journal_int: internals of the journal, shared by its two halves
 * (bk_journal.c writes, bk_journal_file.c holds the format and reads files
 * back) and with its unit tests. The bookie never includes this header.
 *
 * Fault injection makes the next write(2) or fdatasync(2) of the journal fail
 * as if the disk returned EIO, so the tests can check the failure contract
 * (every pending and later append completes with MQ_EIO, no retry, no crash).
 */
#ifndef BK_JOURNAL_INT_H
#define BK_JOURNAL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_journal.h"
#include "mq_err.h"

#define BK_JOURNAL_MAGIC "LMQJ"
#define BK_JOURNAL_VERSION 1u
#define BK_JOURNAL_HDR_FIELDS 24        /* magic, version, id, crc */
#define BK_JOURNAL_MIN_ALIGN 512u       /* smallest alignment ever written */
#define BK_JOURNAL_MAX_ALIGN (1u << 20) /* largest alignment accepted */

/* --- format (bk_journal_file.c), any thread ---------------------------------------- */

/* "<dir>/<016 hex id>.txn<sfx>"; dir was checked to leave room at open. */
void bk_journal_path(char *buf, size_t cap, const char *dir, uint64_t id, const char *sfx);
/* CRC32C over (u64 file id, u32 type, u32 len, payload), little-endian. */
uint32_t bk_journal_rec_crc(uint64_t file_id, uint32_t type, uint32_t len, const void *payload);
/* The 24 header bytes of file id at blk (the rest of the block stays zero). */
void bk_journal_file_hdr(uint8_t *blk, uint64_t file_id);
/* The journal files of dir, ascending (*ids malloc'ed); with clean_tmp,
 * removes leftovers of an interrupted file preparation. A missing dir is an
 * empty list. */
mq_err_t bk_journal_list(const char *dir, bool clean_tmp, uint64_t **ids, size_t *n);
/* True when file id is complete (valid header, file_size bytes) and holds
 * no valid record. */
bool bk_journal_file_unused(const char *dir, uint64_t id, uint64_t file_size);

/* --- test hooks (bk_journal.c) -------------------------------------------------------- */

typedef enum bk_journal_fault {
    BK_JOURNAL_FAULT_NONE = 0,
    BK_JOURNAL_FAULT_WRITE = 1, /* the next pwritev fails with EIO */
    BK_JOURNAL_FAULT_SYNC = 2,  /* the next fdatasync fails with EIO */
} bk_journal_fault_t;

/* Arms a one-shot fault. Any thread. */
void bk_journal_test_inject(bk_journal_t *j, bk_journal_fault_t fault);

/* The id of the file the writer is appending to. Any thread. */
uint64_t bk_journal_test_current_file(bk_journal_t *j);

#endif
