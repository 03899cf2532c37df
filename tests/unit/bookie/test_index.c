/*
 * bk_index: entry locations and ledger records round-trip, keys sort by
 * (ledger, entry) numerically (big-endian), last entry stays inside its
 * ledger, delete removes a ledger whole, data survives a reopen, and garbled
 * values written behind our back give MQ_ECORRUPT, never a crash.
 */
#include <inttypes.h>
#include <limits.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_index.h"
#include "mq_fs.h"
#include "mq_test.h"
#include "mq_util.h"

static bk_entry_loc_t t_loc(uint64_t ledger, int64_t entry)
{
    bk_entry_loc_t loc = {((ledger + 1) << 32) | (4096 + (uint64_t)entry * 64),
                          (uint32_t)(100 + entry)};
    return loc;
}

static bk_ledger_rec_t t_rec(uint64_t ledger)
{
    bk_ledger_rec_t r;
    memset(&r, 0, sizeof(r));
    r.fenced = ledger % 2 == 0;
    r.master_key_len = 20;
    for (int i = 0; i < 20; i++) {
        r.master_key[i] = (uint8_t)(ledger + (uint64_t)i);
    }
    r.lac = (int64_t)(ledger % 1000) * 10 - 1;
    return r;
}

typedef struct t_ids {
    int64_t v[64];
    int n;
} t_ids_t;

static void t_collect(int64_t id, void *arg)
{
    t_ids_t *ids = arg;
    if (ids->n < 64) {
        ids->v[ids->n] = id;
    }
    ids->n++;
}

typedef struct t_ledgers {
    uint64_t ids[16];
    int n;
    int mismatch;
} t_ledgers_t;

static void t_collect_ledger(uint64_t ledger_id, const bk_ledger_rec_t *rec, void *arg)
{
    t_ledgers_t *l = arg;
    bk_ledger_rec_t want = t_rec(ledger_id);
    if (rec->fenced != want.fenced || rec->lac != want.lac ||
        rec->master_key_len != want.master_key_len ||
        memcmp(rec->master_key, want.master_key, want.master_key_len) != 0) {
        l->mismatch++;
    }
    if (l->n < 16) {
        l->ids[l->n] = ledger_id;
    }
    l->n++;
}

static const int64_t t_entries[] = {0, 1, 255, 256, 1000, 65536};

static void t_fill(bk_index_t *idx)
{
    bk_index_batch_t *b = bk_index_batch_new();
    /* Ledgers 5, 256 and 257 have entries; 3, 256 and UINT64_MAX-1 records. */
    uint64_t ledgers[] = {5, 256, 257};
    for (size_t l = 0; l < MQ_ARRAY_LEN(ledgers); l++) {
        for (size_t e = 0; e < MQ_ARRAY_LEN(t_entries); e++) {
            bk_entry_loc_t loc = t_loc(ledgers[l], t_entries[e]);
            bk_index_batch_put_entry(b, ledgers[l], t_entries[e], &loc);
        }
    }
    uint64_t recs[] = {3, 256, UINT64_MAX - 1};
    for (size_t i = 0; i < MQ_ARRAY_LEN(recs); i++) {
        bk_ledger_rec_t r = t_rec(recs[i]);
        bk_index_batch_put_ledger(b, recs[i], &r);
    }
    CU_ASSERT_EQUAL(bk_index_batch_count(b), 3 * MQ_ARRAY_LEN(t_entries) + 3);
    CU_ASSERT_EQUAL(bk_index_write(idx, b, true), MQ_OK);
    bk_index_batch_free(b);
}

static void t_check(bk_index_t *idx)
{
    for (uint64_t l = 4; l <= 258; l++) {
        int64_t last = -7;
        bk_entry_loc_t loc;
        mq_err_t err = bk_index_last_entry(idx, l, &last, &loc);
        if (l == 5 || l == 256 || l == 257) {
            CU_ASSERT_EQUAL(err, MQ_OK);
            CU_ASSERT_EQUAL(last, 65536);
            CU_ASSERT_EQUAL(loc.location, t_loc(l, 65536).location);
            for (size_t e = 0; e < MQ_ARRAY_LEN(t_entries); e++) {
                bk_entry_loc_t got;
                CU_ASSERT_EQUAL(bk_index_get_entry(idx, l, t_entries[e], &got), MQ_OK);
                bk_entry_loc_t want = t_loc(l, t_entries[e]);
                CU_ASSERT_TRUE(got.location == want.location && got.length == want.length);
            }
            CU_ASSERT_EQUAL(bk_index_get_entry(idx, l, 2, &loc), MQ_ENOENTRY);
            t_ids_t ids = {{0}, 0};
            CU_ASSERT_EQUAL(bk_index_foreach_entry(idx, l, t_collect, &ids), MQ_OK);
            CU_ASSERT_EQUAL(ids.n, (int)MQ_ARRAY_LEN(t_entries));
            for (int i = 0; i < ids.n && i < (int)MQ_ARRAY_LEN(t_entries); i++) {
                CU_ASSERT_EQUAL(ids.v[i], t_entries[i]);
            }
        } else {
            CU_ASSERT_EQUAL(err, MQ_ENOENTRY);
        }
    }
    bk_ledger_rec_t r;
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, 5, &r), MQ_ENOLEDGER);
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, 256, &r), MQ_OK);
    bk_ledger_rec_t want = t_rec(256);
    CU_ASSERT_TRUE(r.fenced == want.fenced && r.lac == want.lac &&
                   memcmp(r.master_key, want.master_key, 20) == 0);
    t_ledgers_t ls = {{0}, 0, 0};
    CU_ASSERT_EQUAL(bk_index_foreach_ledger(idx, t_collect_ledger, &ls), MQ_OK);
    CU_ASSERT_EQUAL(ls.n, 3);
    CU_ASSERT_EQUAL(ls.mismatch, 0);
    CU_ASSERT_TRUE(ls.ids[0] == 3 && ls.ids[1] == 256 && ls.ids[2] == UINT64_MAX - 1);
}

static void test_round_trip(void)
{
    char *root = mq_strdup(mq_test_tmpdir("index"));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/db", root);
    bk_index_t *idx;
    CU_ASSERT_EQUAL_FATAL(bk_index_open(path, 1 << 20, &idx), MQ_OK);
    t_fill(idx);
    t_check(idx);
    bk_index_close(idx);
    CU_ASSERT_EQUAL_FATAL(bk_index_open(path, 1 << 20, &idx), MQ_OK);
    t_check(idx);

    /* Deleting ledger 256 takes its record and all its entries. */
    bk_index_batch_t *b = bk_index_batch_new();
    bk_index_batch_delete_ledger(b, 256);
    CU_ASSERT_EQUAL(bk_index_write(idx, b, false), MQ_OK);
    bk_index_batch_free(b);
    int64_t last;
    bk_entry_loc_t loc;
    bk_ledger_rec_t r;
    CU_ASSERT_EQUAL(bk_index_last_entry(idx, 256, &last, &loc), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(bk_index_get_entry(idx, 256, 0, &loc), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, 256, &r), MQ_ENOLEDGER);
    CU_ASSERT_EQUAL(bk_index_last_entry(idx, 257, &last, &loc), MQ_OK);
    CU_ASSERT_EQUAL(bk_index_last_entry(idx, 5, &last, &loc), MQ_OK);
    bk_index_close(idx);
    mq_fs_remove_tree(root);
    free(root);
}

/* Writes raw key/value pairs with RocksDB directly (the index is closed). */
static void t_raw_put(const char *path, const uint8_t *k, size_t klen, const void *v, size_t vlen)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, path, &err);
    CU_ASSERT_PTR_NULL_FATAL(err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, (const char *)k, klen, v, vlen, &err);
    CU_ASSERT_PTR_NULL(err);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

/* Reads a raw value (the index is closed); returns its length. */
static size_t t_raw_get(const char *path, const uint8_t *k, size_t klen, uint8_t *v, size_t cap)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, path, &err);
    CU_ASSERT_PTR_NULL_FATAL(err);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    size_t vlen = 0;
    char *val = rocksdb_get(db, ro, (const char *)k, klen, &vlen, &err);
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT_TRUE(val && vlen <= cap);
    if (val && vlen <= cap) {
        memcpy(v, val, vlen);
    }
    rocksdb_free(val);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return vlen;
}

static void test_garbled(void)
{
    char *root = mq_strdup(mq_test_tmpdir("index-garbled"));
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/db", root);
    bk_index_t *idx;
    CU_ASSERT_EQUAL_FATAL(bk_index_open(path, 1 << 20, &idx), MQ_OK);
    t_fill(idx);
    bk_index_close(idx);

    /* An entry value of the wrong size, in ledger 257 (the last entry). */
    uint8_t k[17];
    k[0] = 'E';
    mq_put_be64(k + 1, 257);
    mq_put_be64(k + 9, 65536);
    t_raw_put(path, k, sizeof(k), "garbage", 7);
    /* A ledger record with its fenced bit flipped (CRC no longer matches). */
    uint8_t lk[9];
    lk[0] = 'L';
    mq_put_be64(lk + 1, 256);
    uint8_t v[128];
    size_t vlen = t_raw_get(path, lk, sizeof(lk), v, sizeof(v));
    CU_ASSERT_TRUE_FATAL(vlen > 2);
    v[1] ^= 1;
    t_raw_put(path, lk, sizeof(lk), v, vlen);
    /* A ledger record of an unknown version. */
    mq_put_be64(lk + 1, 3);
    vlen = t_raw_get(path, lk, sizeof(lk), v, sizeof(v));
    v[0] = 9;
    t_raw_put(path, lk, sizeof(lk), v, vlen);

    CU_ASSERT_EQUAL_FATAL(bk_index_open(path, 1 << 20, &idx), MQ_OK);
    bk_entry_loc_t loc;
    int64_t last;
    bk_ledger_rec_t r;
    CU_ASSERT_EQUAL(bk_index_get_entry(idx, 257, 65536, &loc), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_index_last_entry(idx, 257, &last, &loc), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_index_get_entry(idx, 257, 1000, &loc), MQ_OK);
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, 256, &r), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, 3, &r), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_index_get_ledger(idx, UINT64_MAX - 1, &r), MQ_OK);
    t_ledgers_t ls = {{0}, 0, 0};
    CU_ASSERT_EQUAL(bk_index_foreach_ledger(idx, t_collect_ledger, &ls), MQ_ECORRUPT);
    bk_index_close(idx);
    mq_fs_remove_tree(root);
    free(root);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"entries and ledgers round-trip, sorted, reopen", test_round_trip},
        {"garbled values give MQ_ECORRUPT", test_garbled},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("index", tests, NULL, NULL);
}
