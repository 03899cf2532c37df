/*
 * Ledger placement and striping with 5 real bookies: 50 000 entries at
 * (5,3,2), then every bookie is asked which entries it holds: each entry is
 * on exactly the 3 bookies (e + i) mod 5 of its ensemble and on no other.
 * Too few writable bookies (one stopped, then one read-only) gives
 * NOT_ENOUGH_BOOKIES and creates nothing; the metadata reads back as text.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "meta_store.h"
#include "mq_test.h"
#include "mq_util.h"

#define N_ENTRIES 50000

static it_cluster_t c;

static void test_striping(void)
{
    CU_ASSERT_FATAL(it_cluster_init(&c, "lstripe"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    lc_client_t *cl = it_lc_client(&c, 5, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lh);
    it_writer_t w;
    it_writer_start(&w, lh, N_ENTRIES, 100, 256);
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 120000));
    CU_ASSERT_EQUAL(it_writer_stats(&w).acked, N_ENTRIES);
    CU_ASSERT_EQUAL(it_writer_stats(&w).failed, 0);
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    CU_ASSERT_EQUAL(lc_ledger_lac(lh), N_ENTRIES - 1);

    meta_ledger_t md;
    CU_ASSERT_EQUAL_FATAL(lc_ledger_metadata(lh, &md), MQ_OK);
    CU_ASSERT_EQUAL(md.state, META_LEDGER_CLOSED);
    CU_ASSERT_EQUAL(md.last_entry_id, N_ENTRIES - 1);
    CU_ASSERT_EQUAL(md.length, (uint64_t)N_ENTRIES * 100);
    CU_ASSERT_EQUAL_FATAL(md.nsegments, 1);
    uint8_t *held = calloc(N_ENTRIES, 1); /* bit b: bookie at ensemble index b */
    for (int idx = 0; idx < 5; idx++) {
        int b = it_bookie_index(&c, md.segments[0].bookies[idx]);
        CU_ASSERT_FATAL(b >= 0);
        it_client_t bc;
        it_client_open(&bc, it_bookie_addr(&c, b));
        lc_bk_sync_result_t r;
        IT_EXPECT(lc_bookie_list_entries_sync(bc.bk, lc_ledger_id(lh), 10000, &r), MQ_OK);
        for (size_t k = 0; k + 16 <= r.res.data.len; k += 16) {
            uint64_t first = mq_get_le64(r.res.data.ptr + k);
            uint64_t last = mq_get_le64(r.res.data.ptr + k + 8);
            for (uint64_t e = first; e <= last && e < N_ENTRIES; e++) {
                held[e] |= (uint8_t)(1u << idx);
            }
            CU_ASSERT_TRUE(last < N_ENTRIES);
        }
        lc_bk_sync_result_fini(&r);
        it_client_close(&bc);
    }
    int64_t wrong = 0;
    for (int64_t e = 0; e < N_ENTRIES; e++) {
        uint8_t want = 0;
        for (int i = 0; i < 3; i++) {
            want |= (uint8_t)(1u << meta_stripe(e, i, 5));
        }
        wrong += held[e] != want;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    free(held);

    /* The record is readable by a person: mqbench ledger --show. */
    static char out[16384];
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s ledger --zk %s --show %llu", it_bin("mqbench"), c.zk_addr,
             (unsigned long long)lc_ledger_id(lh));
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "state=CLOSED"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ensembleSize=5"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ensemble.0="));
    meta_ledger_fini(&md);
    lc_ledger_free(lh);
    it_writer_fini(&w);

    /* Four writable bookies: nothing is created. */
    char idgen[64];
    snprintf(idgen, sizeof(idgen), "/ledgermq/ledgers/idgen");
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 4, SIGTERM), 0);
    char path[256];
    it_bookie_reg_path(&c, 4, "available", path, sizeof(path));
    CU_ASSERT_TRUE(it_zk_wait_exists(&c, path, false, 10000));
    /* The client's registry follows ZooKeeper's watch: retry until it has
     * seen the bookie go (what is created meanwhile is deleted again). */
    mq_err_t err = MQ_OK;
    for (int i = 0; i < 200; i++) {
        err = lc_ledger_create(cl, NULL, &lh);
        if (err != MQ_OK) {
            break;
        }
        lc_ledger_delete(cl, lc_ledger_id(lh));
        lc_ledger_free(lh);
        usleep(20000);
    }
    IT_EXPECT(err, MQ_ENOTENOUGHBOOKIES);
    char *after = NULL;
    zk_get(c.zk, idgen, &after, NULL, NULL);
    lc_ledger_t *lh3;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh3), MQ_ENOTENOUGHBOOKIES);
    char *after2 = NULL;
    zk_get(c.zk, idgen, &after2, NULL, NULL);
    /* No id was drawn, no record written. */
    CU_ASSERT_STRING_EQUAL(after, after2);
    free(after);
    free(after2);
    /* (3,3,2) still fits on four. */
    lc_ledger_opts_t small = {3, 3, 2, NULL, 0};
    IT_EXPECT(lc_ledger_create(cl, &small, &lh3), MQ_OK);
    lc_ledger_free(lh3);

    /* Five registered but one read-only: still not enough for E=5. */
    const char *ro[] = {"diskUsageThreshold=0.0001", "diskUsageLwmThreshold=0.00005", NULL};
    it_bookie_prepare(&c, 4, ro);
    CU_ASSERT_FATAL(it_bookie_start(&c, 4));
    it_bookie_reg_path(&c, 4, "readonly", path, sizeof(path));
    CU_ASSERT_TRUE(it_zk_wait_exists(&c, path, true, 10000));
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh3), MQ_ENOTENOUGHBOOKIES);
    lc_client_free(cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"(5,3,2) striping and NOT_ENOUGH_BOOKIES", test_striping},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("ledger striping", tests, NULL, NULL);
}
