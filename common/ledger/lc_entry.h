/*
 * lc_entry: the entry format shared by writers, bookies and readers.
 *
 *   off  0  u64 ledger id          (little-endian, as every field here)
 *   off  8  i64 entry id
 *   off 16  i64 LAC                (last add confirmed when the writer sent it)
 *   off 24  u64 length             (ledger length in bytes through this entry)
 *   off 32  u32 CRC32C             over bytes [0, 32) then the payload
 *   off 36  payload
 *
 * The writer builds it; the bookie checks the CRC on add (a mismatch is
 * refused and nothing is stored) and on every read; readers check it again.
 * Pure functions, any thread.
 */
#ifndef LC_ENTRY_H
#define LC_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"

#define LC_ENTRY_HDR_SIZE 36

typedef struct lc_entry_hdr {
    uint64_t ledger_id;
    int64_t entry_id;
    int64_t lac;
    uint64_t length;
    uint32_t crc;
} lc_entry_hdr_t;

/* Writes the header for payload into hdr[LC_ENTRY_HDR_SIZE], computing the CRC. */
void lc_entry_write_hdr(uint8_t *hdr, uint64_t ledger_id, int64_t entry_id, int64_t lac,
                        uint64_t length, const void *payload, size_t payload_len);
/* A new buffer holding header + a copy of payload. */
mq_buf_t *lc_entry_build(uint64_t ledger_id, int64_t entry_id, int64_t lac, uint64_t length,
                         const void *payload, size_t payload_len);
/*
 * Parses and checks an entry: MQ_ECORRUPT when shorter than a header or when
 * the CRC does not match. hdr may be NULL.
 */
mq_err_t lc_entry_verify(const uint8_t *entry, size_t len, lc_entry_hdr_t *hdr);
/* Parses the header without checking the CRC (len must be >= header). */
void lc_entry_parse_hdr(const uint8_t *entry, lc_entry_hdr_t *hdr);

#endif
