/*
 * mq_util: mq_jitter stays within base +- pct and does spread its draws.
 */
#include "mq_test.h"
#include "mq_util.h"

static void test_jitter(void)
{
    uint64_t state = 42;
    const uint64_t base = 10000000000ull; /* 10 s in ns */
    uint64_t lo = UINT64_MAX;
    uint64_t hi = 0;
    uint64_t sum = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = mq_jitter(base, 25, &state);
        CU_ASSERT_TRUE(v >= base - base / 4 && v < base + base / 4);
        lo = MQ_MIN(lo, v);
        hi = MQ_MAX(hi, v);
        sum += v / 1000;
    }
    /* Spread over the whole range, centred on base. */
    CU_ASSERT_TRUE(lo < base - base / 5);
    CU_ASSERT_TRUE(hi > base + base / 5);
    uint64_t mean = sum / 10000 * 1000;
    CU_ASSERT_TRUE(mean > base - base / 50 && mean < base + base / 50);
    /* Two generators seeded differently do not draw in step. */
    uint64_t a = 1;
    uint64_t b = 2;
    int same = 0;
    for (int i = 0; i < 100; i++) {
        same += mq_jitter(base, 25, &a) == mq_jitter(base, 25, &b);
    }
    CU_ASSERT_TRUE(same < 5);
    /* Degenerate inputs. */
    CU_ASSERT_EQUAL(mq_jitter(base, 0, &state), base);
    CU_ASSERT_EQUAL(mq_jitter(0, 25, &state), 0);
    uint64_t small = mq_jitter(7, 25, &state);
    CU_ASSERT_TRUE(small >= 6 && small <= 8);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"jitter", test_jitter},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("util", tests, NULL, NULL);
}
