/*
 * Fencing recovery with real bookies:
 *  - two writers: A adds continuously; B opens the ledger with recovery. B's
 *    last entry >= every entry A saw acknowledged, A's next add fails as
 *    fenced, and every entry A saw acknowledged reads back through B;
 *  - recovery with one bookie of the last ensemble down succeeds; with two
 *    down it reports NOT_ENOUGH_BOOKIES and leaves the ledger IN_RECOVERY
 *    (not closed at a wrong point); with one back it succeeds;
 *  - a writer whose ZooKeeper session expires while a bookie dies stops
 *    acknowledging until its metadata can be written again, and the record
 *    stays valid; a writer whose session expires while another client
 *    recovers its ledger is fenced and acknowledges nothing more.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "meta_store.h"
#include "mq_test.h"

static it_cluster_t c;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "lrecover") || !it_cluster_start_bookies(&c, 6, NULL)) {
        return 1;
    }
    return 0;
}

static void check_acked_in(it_writer_t *w, lc_ledger_t *rd)
{
    int64_t last = lc_ledger_lac(rd);
    CU_ASSERT_TRUE(last >= it_writer_stats(w).max_acked);
    CU_ASSERT_EQUAL(it_lc_check(rd, last, w->size), 0);
}

static void test_two_writers(void)
{
    lc_client_t *a = it_lc_client(&c, 5, 3, 2);
    lc_client_t *b = it_lc_client(&c, 5, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(a, NULL, &lh), MQ_OK);
    it_writer_t w;
    it_writer_start(&w, lh, -1, 300, 64);
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, 3000, 60000));
    lc_ledger_t *rd = NULL;
    IT_EXPECT(lc_ledger_recover(b, lc_ledger_id(lh), &rd), MQ_OK);
    /* A is fenced: its adds fail from now on... */
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 60000));
    IT_EXPECT(it_writer_stats(&w).first_err, MQ_EFENCED);
    IT_EXPECT(lc_ledger_add(lh, "x", 1, NULL), MQ_EFENCED);
    IT_EXPECT(lc_ledger_close(lh), MQ_EFENCED);
    /* ...and nothing A saw acknowledged is lost. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
    CU_ASSERT_TRUE(lc_ledger_closed(rd));
    check_acked_in(&w, rd);
    /* Recovering again is a no-op on the closed ledger. */
    lc_ledger_t *rd2 = NULL;
    IT_EXPECT(lc_ledger_recover(b, lc_ledger_id(lh), &rd2), MQ_OK);
    CU_ASSERT_EQUAL(lc_ledger_lac(rd2), lc_ledger_lac(rd));
    lc_ledger_free(rd2);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    it_writer_fini(&w);
    lc_client_free(a);
    lc_client_free(b);
}

static void test_recovery_with_bookies_down(void)
{
    lc_client_t *a = it_lc_client(&c, 5, 3, 2);
    lc_ledger_opts_t only5 = {0};
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(a, &only5, &lh), MQ_OK);
    for (int64_t e = 0; e < 500; e++) {
        uint8_t p[200];
        it_lc_payload(lc_ledger_id(lh), e, p, sizeof(p));
        IT_EXPECT(lc_ledger_add(lh, p, sizeof(p), NULL), MQ_OK);
    }
    uint64_t id = lc_ledger_id(lh);
    meta_ledger_t md;
    lc_ledger_metadata(lh, &md);
    int b0 = it_bookie_index(&c, md.segments[0].bookies[0]);
    int b1 = it_bookie_index(&c, md.segments[0].bookies[1]);
    meta_ledger_fini(&md);
    /* The writer vanishes without closing. */
    lc_ledger_free(lh);
    lc_client_free(a);

    lc_client_t *b = it_lc_client(&c, 5, 3, 2);
    /* Two of the last ensemble down: recovery cannot prove the end. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, b0, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, b1, SIGKILL), 128 + SIGKILL);
    lc_ledger_t *rd = NULL;
    IT_EXPECT(lc_ledger_recover(b, id, &rd), MQ_ENOTENOUGHBOOKIES);
    meta_ledger_t now;
    IT_EXPECT(meta_ledger_read(c.zk, "/ledgermq", id, &now), MQ_OK);
    CU_ASSERT_EQUAL(now.state, META_LEDGER_IN_RECOVERY);
    meta_ledger_fini(&now);
    /* One back (one still down): recovery succeeds, nothing is lost. */
    CU_ASSERT_FATAL(it_bookie_start(&c, b0));
    IT_EXPECT(lc_ledger_recover(b, id, &rd), MQ_OK);
    if (rd) {
        CU_ASSERT_EQUAL(lc_ledger_lac(rd), 499);
        CU_ASSERT_EQUAL(it_lc_check(rd, 499, 200), 0);
        lc_ledger_free(rd);
    }
    CU_ASSERT_FATAL(it_bookie_start(&c, b1));
    lc_client_free(b);
}

static void test_session_expiry(void)
{
    lc_client_t *a = it_lc_client(&c, 5, 3, 2);
    lc_client_t *b = it_lc_client(&c, 5, 3, 2);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(a, NULL, &lh), MQ_OK);
    uint64_t id = lc_ledger_id(lh);
    it_writer_t w;
    it_writer_start(&w, lh, -1, 100, 32);
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, 2000, 60000));

    /* A's session expires and, at the same moment, a bookie of its ensemble
     * dies: the ensemble change waits for a new session; meanwhile nothing
     * that needs it is acknowledged. Then writing goes on. */
    meta_ledger_t md;
    lc_ledger_metadata(lh, &md);
    int victim = it_bookie_index(&c, md.segments[0].bookies[3]);
    meta_ledger_fini(&md);
    IT_EXPECT(zk_client_test_expire(lc_client_zk(a)), MQ_OK);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, victim, SIGKILL), 128 + SIGKILL);
    int64_t acked = it_writer_stats(&w).acked;
    CU_ASSERT_TRUE(it_writer_wait_acked(&w, acked + 2000, 60000));
    CU_ASSERT_EQUAL(it_writer_stats(&w).failed, 0);
    meta_ledger_t now;
    IT_EXPECT(meta_ledger_read(c.zk, "/ledgermq", id, &now), MQ_OK);
    CU_ASSERT_EQUAL(now.state, META_LEDGER_OPEN);
    CU_ASSERT_TRUE(now.nsegments >= 2);
    meta_ledger_fini(&now);

    /* A's session expires again while B recovers the ledger: A is fenced,
     * acknowledges nothing more, and B has everything A acknowledged. */
    IT_EXPECT(zk_client_test_expire(lc_client_zk(a)), MQ_OK);
    lc_ledger_t *rd = NULL;
    IT_EXPECT(lc_ledger_recover(b, id, &rd), MQ_OK);
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 60000));
    IT_EXPECT(it_writer_stats(&w).first_err, MQ_EFENCED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
    check_acked_in(&w, rd);
    IT_EXPECT(meta_ledger_read(c.zk, "/ledgermq", id, &now), MQ_OK);
    CU_ASSERT_EQUAL(now.state, META_LEDGER_CLOSED);
    CU_ASSERT_EQUAL(now.last_entry_id, lc_ledger_lac(rd));
    meta_ledger_fini(&now);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    it_writer_fini(&w);
    lc_client_free(a);
    lc_client_free(b);
    CU_ASSERT_FATAL(it_bookie_start(&c, victim));
}

static void test_fini(void)
{
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"two writers: recovery fences A, keeps all A acknowledged", test_two_writers},
        {"recovery with one / two bookies down", test_recovery_with_bookies_down},
        {"writer whose ZooKeeper session expires", test_session_expiry},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("ledger recovery", tests, suite_init, NULL);
}
