/*
 * mq_hist: exact below 128, within 1.6 % above, quantiles of a known
 * distribution, merge.
 */
#include "mq_hist.h"
#include "mq_test.h"

static void test_quantiles(void)
{
    static mq_hist_t h;
    mq_hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++) {
        mq_hist_add(&h, v);
    }
    CU_ASSERT_EQUAL(h.count, 100000);
    CU_ASSERT_EQUAL(h.min, 1);
    CU_ASSERT_EQUAL(h.max, 100000);
    uint64_t p50 = mq_hist_quantile(&h, 0.5);
    uint64_t p99 = mq_hist_quantile(&h, 0.99);
    CU_ASSERT_TRUE(p50 >= 50000 && p50 <= 50000 * 1.016);
    CU_ASSERT_TRUE(p99 >= 99000 && p99 <= 99000 * 1.016);
    CU_ASSERT_EQUAL(mq_hist_quantile(&h, 1.0), 100000);

    static mq_hist_t small;
    mq_hist_init(&small);
    for (uint64_t v = 0; v < 128; v++) {
        mq_hist_add(&small, v);
    }
    CU_ASSERT_EQUAL(mq_hist_quantile(&small, 0.5), 63);
    mq_hist_merge(&h, &small);
    CU_ASSERT_EQUAL(h.count, 100128);
    CU_ASSERT_EQUAL(h.min, 0);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"quantiles and merge", test_quantiles},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("hist", tests, NULL, NULL);
}
