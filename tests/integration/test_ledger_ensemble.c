/*
 * Ensemble change with real bookies. kill -9 one bookie of the ensemble
 * while 100 000 entries are written with 256 in flight: the writer finishes
 * without an error, the metadata has a second segment without the dead
 * bookie, and every entry reads back. With no spare bookie the writer goes
 * on with 4 (every write set keeps 2 live replicas) and, after a second
 * bookie dies, fails with NOT_ENOUGH_BOOKIES instead of acknowledging what it
 * cannot make durable.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "mq_test.h"

static void test_replace_dead_bookie(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "lensemble"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 6, NULL));
    lc_client_t *cl = it_lc_client(&c, 5, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    meta_ledger_t md;
    lc_ledger_metadata(lh, &md);
    int victim = it_bookie_index(&c, md.segments[0].bookies[2]);
    char victim_id[META_BOOKIE_ID_MAX];
    snprintf(victim_id, sizeof(victim_id), "%s", md.segments[0].bookies[2]);
    meta_ledger_fini(&md);
    CU_ASSERT_FATAL(victim >= 0);

    it_writer_t w;
    it_writer_start(&w, lh, 100000, 256, 256);
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, 50000, 120000));
    CU_ASSERT_EQUAL(it_bookie_kill(&c, victim, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 120000));
    CU_ASSERT_EQUAL(it_writer_stats(&w).failed, 0);
    CU_ASSERT_EQUAL(it_writer_stats(&w).acked, 100000);
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);

    lc_ledger_metadata(lh, &md);
    CU_ASSERT_TRUE(md.nsegments >= 2);
    const meta_segment_t *lastseg = &md.segments[md.nsegments - 1];
    CU_ASSERT_TRUE(lastseg->first_entry > 0 && lastseg->first_entry < 100000);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_NOT_EQUAL(strcmp(lastseg->bookies[i], victim_id), 0);
    }
    meta_ledger_fini(&md);

    lc_ledger_t *rd;
    IT_EXPECT(lc_ledger_open(cl, lc_ledger_id(lh), &rd), MQ_OK);
    CU_ASSERT_EQUAL(lc_ledger_lac(rd), 99999);
    CU_ASSERT_EQUAL(it_lc_check(rd, 99999, 256), 0);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    it_writer_fini(&w);
    lc_client_free(cl);
    /* The killed bookie's log ends abruptly; the others must be clean. */
    c.bookies[victim].pid = 0;
    it_cluster_fini(&c);
}

static void test_no_replacement(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "lnorepl"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    lc_client_t *cl = it_lc_client(&c, 5, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);

    it_writer_t w;
    it_writer_start(&w, lh, -1, 128, 64);
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, 5000, 60000));
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGKILL), 128 + SIGKILL);
    /* Still writing on four: every write set has two live replicas. */
    int64_t at_kill = it_writer_stats(&w).acked;
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, at_kill + 20000, 60000));
    CU_ASSERT_EQUAL(it_writer_stats(&w).failed, 0);
    /* A second one dies: some write sets are left with one replica. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 1, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 60000));
    IT_EXPECT(it_writer_stats(&w).first_err, MQ_ENOTENOUGHBOOKIES);
    /* Everything acknowledged is durable: it reads back after recovery. */
    int64_t max_acked = it_writer_stats(&w).max_acked;
    uint64_t id = lc_ledger_id(lh);
    lc_ledger_free(lh);
    it_writer_fini(&w);
    c.bookies[0].pid = 0;
    c.bookies[1].pid = 0;
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    lc_ledger_t *rd = NULL;
    IT_EXPECT(lc_ledger_recover(cl, id, &rd), MQ_OK);
    if (rd) {
        CU_ASSERT_TRUE(lc_ledger_lac(rd) >= max_acked);
        CU_ASSERT_EQUAL(it_lc_check(rd, max_acked, 128), 0);
        lc_ledger_free(rd);
    }
    lc_client_free(cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"kill -9 a bookie mid-write: replaced, nothing lost", test_replace_dead_bookie},
        {"no replacement: go on while Qa holds, then fail", test_no_replacement},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("ledger ensemble change", tests, NULL, NULL);
}
