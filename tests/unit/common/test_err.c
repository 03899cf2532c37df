/*
 * mq_err: every code has a distinct name and a message, codes are dense
 * (0, -1, -2, ...) as mq_err_str relies on, and errno values map.
 */
#include <errno.h>
#include <string.h>

#include "mq_err.h"
#include "mq_test.h"

static void test_every_code_named(void)
{
    int n = 0;
#define T_CHECK(name, value, retriable, msg)                                                       \
    CU_ASSERT_EQUAL((int)name, -n);                                                                \
    CU_ASSERT_STRING_EQUAL(mq_err_name(name), #name);                                              \
    CU_ASSERT_STRING_EQUAL(mq_err_str(name), msg);                                                 \
    CU_ASSERT_EQUAL(mq_err_retriable(name), retriable);                                            \
    n++;
    MQ_ERR_LIST(T_CHECK)
#undef T_CHECK
    CU_ASSERT_TRUE(n > 20);
    CU_ASSERT_STRING_EQUAL(mq_err_str((mq_err_t)-1000), "unknown error");
    CU_ASSERT_STRING_EQUAL(mq_err_str((mq_err_t)5), "unknown error");
}

static void test_errno(void)
{
    CU_ASSERT_EQUAL(mq_err_from_errno(0), MQ_OK);
    CU_ASSERT_EQUAL(mq_err_from_errno(ENOSPC), MQ_ENOSPC);
    CU_ASSERT_EQUAL(mq_err_from_errno(ENOENT), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(mq_err_from_errno(ECONNREFUSED), MQ_ECONN);
    CU_ASSERT_EQUAL(mq_err_from_errno(EIO), MQ_EIO);
    CU_ASSERT_EQUAL(mq_err_from_errno(EROFS), MQ_EREADONLY);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"every code named and dense", test_every_code_named},
        {"errno mapping", test_errno},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("err", tests, NULL, NULL);
}
