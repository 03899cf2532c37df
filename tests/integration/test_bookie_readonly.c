/*
 * Read-only mode: with diskUsageThreshold below the disk's real usage the
 * bookie registers under readonly/, refuses plain adds with READ_ONLY, still
 * takes recovery adds and still serves reads; back under a normal threshold
 * it is writable again.
 */
#include <signal.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "mq_test.h"

static void test_read_only(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "readonly"));
    it_bookie_prepare(&c, 0, NULL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    it_client_t cl;
    it_client_open(&cl, it_bookie_addr(&c, 0));
    for (int64_t e = 0; e < 50; e++) {
        IT_EXPECT(it_add(&cl, 5, e, "key", 0, 256), MQ_OK);
    }
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGTERM), 0);

    /* Any real disk is fuller than 0.01 %. */
    const char *sets[] = {"diskUsageThreshold=0.0001", "diskUsageLwmThreshold=0.00005", NULL};
    it_bookie_prepare(&c, 0, sets);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    char ro[256];
    char av[256];
    it_bookie_reg_path(&c, 0, "readonly", ro, sizeof(ro));
    it_bookie_reg_path(&c, 0, "available", av, sizeof(av));
    CU_ASSERT_TRUE(it_zk_wait_exists(&c, ro, true, 10000));
    CU_ASSERT_EQUAL(zk_exists(c.zk, av, NULL), MQ_ENOTFOUND);

    IT_EXPECT(it_add(&cl, 5, 50, "key", 0, 256), MQ_EREADONLY);
    IT_EXPECT(it_add(&cl, 6, 0, "key", 0, 256), MQ_EREADONLY);
    for (int64_t e = 0; e < 50; e++) {
        IT_EXPECT(it_read(&cl, 5, e, 0, NULL), MQ_OK);
    }
    lc_bk_sync_result_t r;
    CU_ASSERT_EQUAL(lc_bookie_info_sync(cl.bk, 5000, &r), MQ_OK);
    CU_ASSERT_TRUE(r.res.read_only);
    lc_bk_sync_result_fini(&r);
    /* Recovery adds still land, so a ledger recovery can finish. */
    IT_EXPECT(it_add(&cl, 5, 50, "key", LC_BK_ADD_RECOVERY, 256), MQ_OK);
    IT_EXPECT(it_read(&cl, 5, 50, 0, NULL), MQ_OK);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGTERM), 0);

    /* Normal thresholds: writable again. */
    it_bookie_prepare(&c, 0, NULL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    CU_ASSERT_TRUE(it_zk_wait_exists(&c, av, true, 10000));
    CU_ASSERT_EQUAL(zk_exists(c.zk, ro, NULL), MQ_ENOTFOUND);
    IT_EXPECT(it_add(&cl, 5, 51, "key", 0, 256), MQ_OK);
    it_client_close(&cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"read-only above the disk threshold", test_read_only},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie read-only", tests, NULL, NULL);
}
