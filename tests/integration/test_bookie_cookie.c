/*
 * Cookies: a bookie whose directories were wiped refuses to start with a
 * clear message (it would otherwise deny entries it acknowledged);
 * `mqbookie --format` clears it and it starts as a new, empty bookie. A
 * bookie pointed at another bookie's directories refuses too.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "it_client.h"
#include "it_cluster.h"
#include "mq_fs.h"
#include "mq_test.h"

static void test_wiped_dirs(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "cookie"));
    it_bookie_prepare(&c, 0, NULL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    it_client_t cl;
    it_client_open(&cl, it_bookie_addr(&c, 0));
    for (int64_t e = 0; e < 20; e++) {
        IT_EXPECT(it_add(&cl, 3, e, "key", 0, 128), MQ_OK);
    }
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGTERM), 0);

    char cookie_path[256];
    snprintf(cookie_path, sizeof(cookie_path), "/ledgermq/bookies/cookies/%s", c.bookies[0].id);
    CU_ASSERT_EQUAL(zk_exists(c.zk, cookie_path, NULL), MQ_OK);

    /* Wipe the disk. */
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/journal", c.bookies[0].dir);
    CU_ASSERT_EQUAL(mq_fs_remove_tree(dir), MQ_OK);
    snprintf(dir, sizeof(dir), "%s/ledgers", c.bookies[0].dir);
    CU_ASSERT_EQUAL(mq_fs_remove_tree(dir), MQ_OK);

    static char out[16384];
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "%s -c %s", it_bin("mqbookie"), c.bookies[0].conf);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "data was wiped"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "mqbookie --format"));
    it_cluster_allow_error(&c, "bookie did not start");

    snprintf(cmd, sizeof(cmd), "%s -c %s --format", it_bin("mqbookie"), c.bookies[0].conf);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_EQUAL(zk_exists(c.zk, cookie_path, NULL), MQ_ENOTFOUND);

    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    CU_ASSERT_EQUAL(zk_exists(c.zk, cookie_path, NULL), MQ_OK);
    /* A new, empty bookie: it knows nothing of ledger 3 and says so. */
    IT_EXPECT(it_read(&cl, 3, 0, 0, NULL), MQ_ENOLEDGER);
    IT_EXPECT(it_add(&cl, 3, 0, "key", 0, 128), MQ_OK);

    /* Bookie 1 configured on bookie 0's directories: refused. */
    char sets_buf[2][4200];
    snprintf(sets_buf[0], sizeof(sets_buf[0]), "journalDirectories=%s/journal", c.bookies[0].dir);
    snprintf(sets_buf[1], sizeof(sets_buf[1]), "ledgerDirectories=%s/ledgers", c.bookies[0].dir);
    const char *sets[] = {sets_buf[0], sets_buf[1], NULL};
    it_bookie_prepare(&c, 1, sets);
    snprintf(cmd, sizeof(cmd), "%s -c %s", it_bin("mqbookie"), c.bookies[1].conf);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "does not belong to this bookie"));

    it_client_close(&cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"wiped dirs refuse to start until --format", test_wiped_dirs},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie cookie", tests, NULL, NULL);
}
