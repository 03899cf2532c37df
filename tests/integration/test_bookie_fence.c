/*
 * Fencing and master keys: after a FENCE read a plain add gets FENCED and a
 * recovery add is accepted; fencing an unknown ledger creates it fenced; a
 * wrong master key gets UNAUTHORIZED; the fence survives kill -9 right after
 * its answer (it was durable before the answer) and a clean restart.
 */
#include <signal.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "lc_entry.h"
#include "mq_test.h"

static void test_fence(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "fence"));
    it_bookie_prepare(&c, 0, NULL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    it_client_t cl;
    it_client_open(&cl, it_bookie_addr(&c, 0));

    for (int64_t e = 0; e < 10; e++) {
        IT_EXPECT(it_add(&cl, 7, e, "k1", 0, 32), MQ_OK);
    }
    /* Wrong keys never pass, for adds and for fences. */
    IT_EXPECT(it_add(&cl, 7, 10, "k2", 0, 32), MQ_EUNAUTHORIZED);
    IT_EXPECT(it_read(&cl, 7, 9, LC_BK_READ_FENCE, "k2"), MQ_EUNAUTHORIZED);
    IT_EXPECT(it_add(&cl, 7, 10, "k1", 0, 32), MQ_OK);

    /* Fence: the read answers (with the entry) once the fence is durable. */
    lc_bk_sync_result_t r;
    CU_ASSERT_EQUAL(
        lc_bookie_read_sync(cl.bk, 7, 10, LC_BK_READ_FENCE, (const uint8_t *)"k1", 2, 5000, &r),
        MQ_OK);
    CU_ASSERT_TRUE(r.res.fenced);
    lc_bk_sync_result_fini(&r);
    IT_EXPECT(it_add(&cl, 7, 11, "k1", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 7, 11, "k1", LC_BK_ADD_RECOVERY, 32), MQ_OK);
    IT_EXPECT(it_read(&cl, 7, 11, 0, NULL), MQ_OK);
    /* A second fence answers at once; an entry not there is NO_ENTRY. */
    IT_EXPECT(it_read(&cl, 7, 12, LC_BK_READ_FENCE, "k1"), MQ_ENOENTRY);

    /* Fencing a ledger this bookie never saw creates it, fenced, so a
     * lagging writer cannot create it later. */
    IT_EXPECT(it_read(&cl, 8, 0, LC_BK_READ_FENCE, "k8"), MQ_ENOENTRY);
    IT_EXPECT(it_add(&cl, 8, 0, "k8", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 8, 0, "zz", 0, 32), MQ_EUNAUTHORIZED);

    /* Fence ledger 9 and kill -9 the moment the answer arrives. */
    IT_EXPECT(it_add(&cl, 9, 0, "k9", 0, 32), MQ_OK);
    IT_EXPECT(it_read(&cl, 9, 0, LC_BK_READ_FENCE, "k9"), MQ_OK);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    IT_EXPECT(it_add(&cl, 9, 1, "k9", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 7, 12, "k1", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 8, 0, "k8", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 7, 12, "k2", LC_BK_ADD_RECOVERY, 32), MQ_EUNAUTHORIZED);
    IT_EXPECT(it_add(&cl, 9, 1, "k9", LC_BK_ADD_RECOVERY, 32), MQ_OK);
    for (int64_t e = 0; e < 12; e++) {
        IT_EXPECT(it_read(&cl, 7, e, 0, NULL), MQ_OK);
    }

    /* And after a clean restart (fence state from the index, not the journal). */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGTERM), 0);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    IT_EXPECT(it_add(&cl, 9, 2, "k9", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_add(&cl, 7, 12, "k1", 0, 32), MQ_EFENCED);
    IT_EXPECT(it_read(&cl, 9, 1, 0, NULL), MQ_OK);
    it_client_close(&cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"fence, recovery add, master key, durability", test_fence},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie fence", tests, NULL, NULL);
}
