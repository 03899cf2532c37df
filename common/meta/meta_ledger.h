/*
 * meta_ledger: a ledger's metadata record and its codec.
 *
 * The record lives in ZooKeeper (see meta_store.h) and is only ever changed
 * by compare-and-set on the znode version. It is stored as text that a person
 * can read (`mqbench ledger --show ID` prints it as is):
 *
 *   # LedgerMQ ledger metadata
 *   version=1
 *   id=17
 *   ensembleSize=5
 *   writeQuorumSize=3
 *   ackQuorumSize=2
 *   state=OPEN                       OPEN | IN_RECOVERY | CLOSED
 *   lastEntryId=-1                   meaningful when CLOSED (-1: empty)
 *   length=0                         bytes, meaningful when CLOSED
 *   ctime=1763735000123              creation, ms since the epoch
 *   masterKeyDigest=<64 hex>         SHA-256 of the ledger's master key
 *   ensemble.0=host:port,host:port,...    one line per segment, keyed by
 *   ensemble.1500=...                     its first entry id, ascending
 *   custom.<key>=<value>             free-form (e.g. the owning topic/queue)
 *   checksum=<8 hex>                 CRC32C of every byte above this line
 *
 * Decoding validates everything (known keys, ranges 1 <= Qa <= Qw <= E <=
 * META_MAX_ENSEMBLE, segments starting at 0 and strictly increasing, E
 * distinct bookie ids per segment, the checksum) and gives MQ_ECORRUPT with
 * a reason for anything else. Pure functions, any thread.
 *
 * Details of the text: the header line comes first and "version=1" second;
 * the other keys may come in any order, each once (ensemble lines in
 * ascending order), and checksum= is the last line (lowercase hex). Numbers
 * are canonical decimal. id is 1 .. 10^19-1 (the path layout's 19 digits);
 * lastEntryId >= -1; length and ctime fit an int64. Bookie ids are 1..127
 * bytes without ',' or '\n'; custom values may hold anything but '\n'.
 * At most 100000 segments and 100000 custom keys. The encoder refuses
 * (MQ_EINVAL, logged with the reason) any record the decoder would reject.
 */
#ifndef META_LEDGER_H
#define META_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

#define META_MAX_ENSEMBLE 16
#define META_BOOKIE_ID_MAX 128
#define META_DIGEST_HEX 64

typedef enum meta_ledger_state {
    META_LEDGER_OPEN = 1,
    META_LEDGER_IN_RECOVERY = 2,
    META_LEDGER_CLOSED = 3,
} meta_ledger_state_t;

/* One ensemble: the bookies of entries first_entry .. (next segment - 1). */
typedef struct meta_segment {
    int64_t first_entry;
    char bookies[META_MAX_ENSEMBLE][META_BOOKIE_ID_MAX];
} meta_segment_t;

typedef struct meta_kv {
    char *key;   /* [A-Za-z0-9._-]+ */
    char *value; /* no newline */
} meta_kv_t;

typedef struct meta_ledger {
    uint64_t id;
    int ensemble_size;
    int write_quorum;
    int ack_quorum;
    meta_ledger_state_t state;
    int64_t last_entry_id;
    uint64_t length;
    uint64_t ctime_ms;
    char master_key_digest[META_DIGEST_HEX + 1];
    meta_segment_t *segments; /* ascending by first_entry; segments[0].first_entry == 0 */
    size_t nsegments;
    meta_kv_t *custom;
    size_t ncustom;
    /* Not encoded: the znode version this copy was read at (-1: none). */
    int32_t version;
} meta_ledger_t;

/* A fresh OPEN record with one segment starting at entry 0, ctime now.
 * Asserts 1 <= e <= META_MAX_ENSEMBLE and ids shorter than
 * META_BOOKIE_ID_MAX; a NULL digest gives 64 zeros. */
void meta_ledger_init(meta_ledger_t *md, uint64_t id, int e, int qw, int qa,
                      const char *const *ensemble, const char *master_key_digest);
void meta_ledger_fini(meta_ledger_t *md);
/* Deep copy (dst must not hold anything). */
void meta_ledger_copy(meta_ledger_t *dst, const meta_ledger_t *src);

/* Text form (malloc'ed, NUL-terminated). */
mq_err_t meta_ledger_encode(const meta_ledger_t *md, char **out, size_t *len);
/* Parses and validates; on MQ_ECORRUPT a reason goes to why (may be NULL).
 * out->version is -1. On failure out holds nothing (fini is harmless). */
mq_err_t meta_ledger_decode(const char *data, size_t len, meta_ledger_t *out, char *why,
                            size_t why_len);

/* The segment holding entry (the last whose first_entry <= entry), by
 * binary search; NULL for entry < 0. */
const meta_segment_t *meta_ledger_segment(const meta_ledger_t *md, int64_t entry);
const meta_segment_t *meta_ledger_last_segment(const meta_ledger_t *md);
/*
 * Appends a segment starting at first_entry with bookie index idx of the last
 * ensemble replaced by new_bookie. If the last segment already starts at
 * first_entry it is changed in place (no zero-length segments). Asserts
 * first_entry >= the last segment's first entry and 0 <= idx < E.
 */
void meta_ledger_replace_bookie(meta_ledger_t *md, int64_t first_entry, int idx,
                                const char *new_bookie);
/* Sets (or adds) a custom key. */
void meta_ledger_set_custom(meta_ledger_t *md, const char *key, const char *value);
const char *meta_ledger_get_custom(const meta_ledger_t *md, const char *key);
const char *meta_ledger_state_name(meta_ledger_state_t state);

/* Striping: index into the segment's ensemble of the i-th replica (i < Qw)
 * of entry e: (e + i) mod E. */
static inline int meta_stripe(int64_t e, int i, int ensemble_size)
{
    return (int)((e + i) % ensemble_size);
}

#endif
