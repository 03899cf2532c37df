/*
 * bk_index: the bookie's RocksDB index through RocksDB's C API (see
 * bk_index.h for the keys).
 *
 * Values:
 *   entry  : u64 location, u32 length (little-endian, 12 bytes)
 *   ledger : u8 version (1), u8 flags (bit 0 fenced), u8 key length,
 *            i64 lac, key bytes, u32 CRC32C of everything before it
 * Every value is checked when decoded (size, version, flags, ranges, CRC);
 * one that does not decode is MQ_ECORRUPT, logged, and never trusted.
 *
 * The database has a block cache of the configured size and a 10 bits/key
 * bloom filter (point lookups of entries dominate). rocksdb_t is
 * thread-safe, so reads need no lock of ours; batches come from the
 * checkpoint thread.
 */
#include "bk_index.h"

#include <inttypes.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "mq_crc32c.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_INDEX_ENTRY_KEY 17
#define BK_INDEX_LEDGER_KEY 9
#define BK_INDEX_ENTRY_VAL 12
#define BK_INDEX_LEDGER_VERSION 1
#define BK_INDEX_LEDGER_FIXED 11 /* version, flags, key length, lac */
#define BK_INDEX_FLAG_FENCED 0x1
#define BK_INDEX_LEDGER_MAX (BK_INDEX_LEDGER_FIXED + BK_MASTER_KEY_MAX + 4)

struct bk_index {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ro;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
};

struct bk_index_batch {
    rocksdb_writebatch_t *wb;
};

static mq_err_t bk_index_err_code(const char *msg)
{
    if (strncmp(msg, "Corruption", 10) == 0) {
        return MQ_ECORRUPT;
    }
    return strstr(msg, "No space left") ? MQ_ENOSPC : MQ_EIO;
}

/* Maps a RocksDB error string to our list, logs it once and frees it. */
static mq_err_t bk_index_err(char *msg, const char *what)
{
    mq_err_t err = bk_index_err_code(msg);
    MQ_LOG_ERROR("index %s failed err=%s", what, msg);
    rocksdb_free(msg);
    return err;
}

static void bk_index_entry_key(uint8_t *k, uint64_t ledger_id, uint64_t entry_id)
{
    k[0] = 'E';
    mq_put_be64(k + 1, ledger_id);
    mq_put_be64(k + 9, entry_id);
}

static void bk_index_ledger_key(uint8_t *k, uint64_t ledger_id)
{
    k[0] = 'L';
    mq_put_be64(k + 1, ledger_id);
}

static mq_err_t bk_index_decode_loc(const char *v, size_t vlen, bk_entry_loc_t *out)
{
    if (vlen != BK_INDEX_ENTRY_VAL) {
        return MQ_ECORRUPT;
    }
    const uint8_t *p = (const uint8_t *)v;
    out->location = mq_get_le64(p);
    out->length = mq_get_le32(p + 8);
    /* Log ids start at 1; the entry log checks the rest on read. */
    return (out->location >> 32) != 0 ? MQ_OK : MQ_ECORRUPT;
}

static size_t bk_index_encode_ledger(uint8_t *p, const bk_ledger_rec_t *rec)
{
    MQ_ASSERT(rec->master_key_len <= BK_MASTER_KEY_MAX);
    p[0] = BK_INDEX_LEDGER_VERSION;
    p[1] = rec->fenced ? BK_INDEX_FLAG_FENCED : 0;
    p[2] = rec->master_key_len;
    mq_put_le64(p + 3, (uint64_t)rec->lac);
    memcpy(p + BK_INDEX_LEDGER_FIXED, rec->master_key, rec->master_key_len);
    size_t n = BK_INDEX_LEDGER_FIXED + rec->master_key_len;
    mq_put_le32(p + n, mq_crc32c(0, p, n));
    return n + 4;
}

static mq_err_t bk_index_decode_ledger(const char *v, size_t vlen, bk_ledger_rec_t *out)
{
    const uint8_t *p = (const uint8_t *)v;
    if (vlen < BK_INDEX_LEDGER_FIXED + 4 || p[0] != BK_INDEX_LEDGER_VERSION ||
        (p[1] & ~BK_INDEX_FLAG_FENCED) != 0 || p[2] > BK_MASTER_KEY_MAX ||
        vlen != (size_t)BK_INDEX_LEDGER_FIXED + p[2] + 4) {
        return MQ_ECORRUPT;
    }
    size_t n = vlen - 4;
    int64_t lac = (int64_t)mq_get_le64(p + 3);
    if (mq_get_le32(p + n) != mq_crc32c(0, p, n) || lac < -1) {
        return MQ_ECORRUPT;
    }
    memset(out, 0, sizeof(*out));
    out->fenced = (p[1] & BK_INDEX_FLAG_FENCED) != 0;
    out->master_key_len = p[2];
    memcpy(out->master_key, p + BK_INDEX_LEDGER_FIXED, p[2]);
    out->lac = lac;
    return MQ_OK;
}

mq_err_t bk_index_open(const char *path, size_t cache_bytes, bk_index_t **out)
{
    mq_err_t err = mq_fs_mkdirs(path);
    if (err != MQ_OK) {
        return err;
    }
    bk_index_t *idx = mq_calloc(1, sizeof(*idx));
    idx->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(idx->opts, 1);
    rocksdb_options_increase_parallelism(idx->opts, 2);
    rocksdb_options_set_info_log_level(idx->opts, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(idx->opts, 4);
    rocksdb_options_set_max_log_file_size(idx->opts, 4u << 20);
    /* Index writes arrive in one batch per checkpoint; small memtables keep
     * the bookie's memory bounded (RocksDB's default is 2 x 64 MiB). */
    rocksdb_options_set_write_buffer_size(idx->opts, 8u << 20);
    rocksdb_options_set_max_write_buffer_number(idx->opts, 2);
    idx->topts = rocksdb_block_based_options_create();
    idx->cache = rocksdb_cache_create_lru(MQ_MAX(cache_bytes, (size_t)1 << 20));
    rocksdb_block_based_options_set_block_cache(idx->topts, idx->cache);
    /* The table options own the filter policy from here on. */
    rocksdb_block_based_options_set_filter_policy(idx->topts,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(idx->opts, idx->topts);
    idx->ro = rocksdb_readoptions_create();
    idx->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(idx->wo_sync, 1);
    idx->wo_nosync = rocksdb_writeoptions_create();

    char *msg = NULL;
    idx->db = rocksdb_open(idx->opts, path, &msg);
    if (msg) {
        MQ_LOG_ERROR("index open failed path=%s err=%s", path, msg);
        err = bk_index_err_code(msg);
        rocksdb_free(msg);
        idx->db = NULL;
        bk_index_close(idx);
        return err;
    }
    *out = idx;
    return MQ_OK;
}

void bk_index_close(bk_index_t *idx)
{
    if (!idx) {
        return;
    }
    if (idx->db) {
        rocksdb_close(idx->db);
    }
    rocksdb_writeoptions_destroy(idx->wo_nosync);
    rocksdb_writeoptions_destroy(idx->wo_sync);
    rocksdb_readoptions_destroy(idx->ro);
    rocksdb_options_destroy(idx->opts);
    rocksdb_block_based_options_destroy(idx->topts);
    rocksdb_cache_destroy(idx->cache);
    free(idx);
}

bk_index_batch_t *bk_index_batch_new(void)
{
    bk_index_batch_t *b = mq_malloc(sizeof(*b));
    b->wb = rocksdb_writebatch_create();
    return b;
}

void bk_index_batch_put_entry(bk_index_batch_t *b, uint64_t ledger_id, int64_t entry_id,
                              const bk_entry_loc_t *loc)
{
    uint8_t k[BK_INDEX_ENTRY_KEY];
    uint8_t v[BK_INDEX_ENTRY_VAL];
    bk_index_entry_key(k, ledger_id, (uint64_t)entry_id);
    mq_put_le64(v, loc->location);
    mq_put_le32(v + 8, loc->length);
    rocksdb_writebatch_put(b->wb, (const char *)k, sizeof(k), (const char *)v, sizeof(v));
}

void bk_index_batch_put_ledger(bk_index_batch_t *b, uint64_t ledger_id, const bk_ledger_rec_t *rec)
{
    uint8_t k[BK_INDEX_LEDGER_KEY];
    uint8_t v[BK_INDEX_LEDGER_MAX];
    bk_index_ledger_key(k, ledger_id);
    size_t n = bk_index_encode_ledger(v, rec);
    rocksdb_writebatch_put(b->wb, (const char *)k, sizeof(k), (const char *)v, n);
}

void bk_index_batch_delete_ledger(bk_index_batch_t *b, uint64_t ledger_id)
{
    uint8_t k[BK_INDEX_LEDGER_KEY];
    uint8_t lo[BK_INDEX_ENTRY_KEY];
    uint8_t hi[BK_INDEX_ENTRY_KEY];
    bk_index_ledger_key(k, ledger_id);
    bk_index_entry_key(lo, ledger_id, 0);
    /* The end is exclusive; entry ids never reach UINT64_MAX. */
    bk_index_entry_key(hi, ledger_id, UINT64_MAX);
    rocksdb_writebatch_delete(b->wb, (const char *)k, sizeof(k));
    rocksdb_writebatch_delete_range(b->wb, (const char *)lo, sizeof(lo), (const char *)hi,
                                    sizeof(hi));
}

size_t bk_index_batch_count(const bk_index_batch_t *b)
{
    return (size_t)rocksdb_writebatch_count(b->wb);
}

mq_err_t bk_index_write(bk_index_t *idx, bk_index_batch_t *b, bool sync)
{
    char *msg = NULL;
    rocksdb_write(idx->db, sync ? idx->wo_sync : idx->wo_nosync, b->wb, &msg);
    return msg ? bk_index_err(msg, "write") : MQ_OK;
}

void bk_index_batch_free(bk_index_batch_t *b)
{
    if (!b) {
        return;
    }
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

/* Point lookup: *ps gets the pinned value (destroy it), or NULL when the
 * key is absent. */
static mq_err_t bk_index_lookup(bk_index_t *idx, const uint8_t *k, size_t klen,
                                rocksdb_pinnableslice_t **ps)
{
    char *msg = NULL;
    *ps = rocksdb_get_pinned(idx->db, idx->ro, (const char *)k, klen, &msg);
    return msg ? bk_index_err(msg, "get") : MQ_OK;
}

mq_err_t bk_index_get_entry(bk_index_t *idx, uint64_t ledger_id, int64_t entry_id,
                            bk_entry_loc_t *out)
{
    if (entry_id < 0) {
        return MQ_ENOENTRY;
    }
    uint8_t k[BK_INDEX_ENTRY_KEY];
    bk_index_entry_key(k, ledger_id, (uint64_t)entry_id);
    rocksdb_pinnableslice_t *ps;
    mq_err_t gerr = bk_index_lookup(idx, k, sizeof(k), &ps);
    if (gerr != MQ_OK || !ps) {
        return gerr != MQ_OK ? gerr : MQ_ENOENTRY;
    }
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    mq_err_t err = bk_index_decode_loc(v, vlen, out);
    rocksdb_pinnableslice_destroy(ps);
    if (err != MQ_OK) {
        MQ_LOG_ERROR("index entry value is corrupt ledger=%" PRIu64 " entry=%" PRId64, ledger_id,
                     entry_id);
    }
    return err;
}

/* Checks an iterator's status after a scan. */
static mq_err_t bk_index_iter_done(rocksdb_iterator_t *it)
{
    char *msg = NULL;
    rocksdb_iter_get_error(it, &msg);
    rocksdb_iter_destroy(it);
    return msg ? bk_index_err(msg, "scan") : MQ_OK;
}

mq_err_t bk_index_last_entry(bk_index_t *idx, uint64_t ledger_id, int64_t *entry_id,
                             bk_entry_loc_t *loc)
{
    uint8_t k[BK_INDEX_ENTRY_KEY];
    bk_index_entry_key(k, ledger_id, UINT64_MAX);
    rocksdb_iterator_t *it = rocksdb_create_iterator(idx->db, idx->ro);
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof(k));
    mq_err_t err = MQ_ENOENTRY;
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen >= BK_INDEX_LEDGER_KEY && memcmp(key, k, BK_INDEX_LEDGER_KEY) == 0) {
            /* A key of this ledger: anything but a well-formed entry is
             * corrupt. */
            size_t vlen;
            const char *v = rocksdb_iter_value(it, &vlen);
            err = MQ_ECORRUPT;
            if (klen == BK_INDEX_ENTRY_KEY && mq_get_be64((const uint8_t *)key + 9) <= INT64_MAX) {
                err = bk_index_decode_loc(v, vlen, loc);
            }
            if (err == MQ_OK) {
                *entry_id = (int64_t)mq_get_be64((const uint8_t *)key + 9);
            } else {
                MQ_LOG_ERROR("index entry is corrupt ledger=%" PRIu64, ledger_id);
            }
        }
    }
    mq_err_t ierr = bk_index_iter_done(it);
    return ierr != MQ_OK ? ierr : err;
}

mq_err_t bk_index_foreach_entry(bk_index_t *idx, uint64_t ledger_id,
                                void (*cb)(int64_t entry_id, void *arg), void *arg)
{
    uint8_t lo[BK_INDEX_ENTRY_KEY];
    uint8_t hi[BK_INDEX_ENTRY_KEY];
    bk_index_entry_key(lo, ledger_id, 0);
    bk_index_entry_key(hi, ledger_id, UINT64_MAX);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
    rocksdb_iterator_t *it = rocksdb_create_iterator(idx->db, ro);
    mq_err_t err = MQ_OK;
    for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen != BK_INDEX_ENTRY_KEY || memcmp(key, lo, BK_INDEX_LEDGER_KEY) != 0 ||
            mq_get_be64(key + 9) > INT64_MAX) {
            MQ_LOG_ERROR("index key is corrupt ledger=%" PRIu64, ledger_id);
            err = MQ_ECORRUPT;
            break;
        }
        cb((int64_t)mq_get_be64(key + 9), arg);
    }
    mq_err_t ierr = bk_index_iter_done(it);
    rocksdb_readoptions_destroy(ro);
    return ierr != MQ_OK ? ierr : err;
}

mq_err_t bk_index_get_ledger(bk_index_t *idx, uint64_t ledger_id, bk_ledger_rec_t *out)
{
    uint8_t k[BK_INDEX_LEDGER_KEY];
    bk_index_ledger_key(k, ledger_id);
    rocksdb_pinnableslice_t *ps;
    mq_err_t gerr = bk_index_lookup(idx, k, sizeof(k), &ps);
    if (gerr != MQ_OK || !ps) {
        return gerr != MQ_OK ? gerr : MQ_ENOLEDGER;
    }
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    mq_err_t err = bk_index_decode_ledger(v, vlen, out);
    rocksdb_pinnableslice_destroy(ps);
    if (err != MQ_OK) {
        MQ_LOG_ERROR("index ledger record is corrupt ledger=%" PRIu64, ledger_id);
    }
    return err;
}

mq_err_t bk_index_foreach_ledger(bk_index_t *idx,
                                 void (*cb)(uint64_t ledger_id, const bk_ledger_rec_t *rec,
                                            void *arg),
                                 void *arg)
{
    static const char lo[1] = {'L'};
    static const char hi[1] = {'M'};
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, sizeof(hi));
    rocksdb_iterator_t *it = rocksdb_create_iterator(idx->db, ro);
    mq_err_t err = MQ_OK;
    for (rocksdb_iter_seek(it, lo, sizeof(lo)); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        size_t vlen;
        const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        bk_ledger_rec_t rec;
        if (klen != BK_INDEX_LEDGER_KEY || key[0] != 'L' ||
            bk_index_decode_ledger(v, vlen, &rec) != MQ_OK) {
            MQ_LOG_ERROR("index ledger record is corrupt ledger=%" PRIu64,
                         klen == BK_INDEX_LEDGER_KEY ? mq_get_be64(key + 1) : 0);
            err = MQ_ECORRUPT;
            break;
        }
        cb(mq_get_be64(key + 1), &rec, arg);
    }
    mq_err_t ierr = bk_index_iter_done(it);
    rocksdb_readoptions_destroy(ro);
    return ierr != MQ_OK ? ierr : err;
}
