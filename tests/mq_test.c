/*
 * mq_test: implementation of the shared test helpers. Main thread.
 */
#include "mq_test.h"

#include <CUnit/Basic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mq_fs.h"
#include "mq_util.h"

int mq_test_run(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                CU_CleanupFunc cleanup)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {suite, init, cleanup, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned suite_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (failed || suite_failed) ? 1 : 0;
}

const char *mq_test_tmpdir(const char *prefix)
{
    static char path[PATH_MAX];
    const char *base = getenv("TMPDIR");
    if (!base || !*base) {
        base = "/tmp";
    }
    snprintf(path, sizeof(path), "%s/lmq-%s-XXXXXX", base, prefix);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

bool mq_test_wait(bool (*cond)(void *arg), void *arg, uint32_t timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    uint32_t pause_us = 1000;
    for (;;) {
        if (cond(arg)) {
            return true;
        }
        if (mq_now_ms() >= deadline) {
            return cond(arg);
        }
        usleep(pause_us);
        if (pause_us < 50000) {
            pause_us *= 2;
        }
    }
}

const char *mq_test_source_dir(void)
{
    const char *s = getenv("MQ_SOURCE_DIR");
    return s && *s ? s : MQ_TEST_DEFAULT_SOURCE_DIR;
}

const char *mq_test_binary_dir(void)
{
    const char *s = getenv("MQ_BINARY_DIR");
    return s && *s ? s : MQ_TEST_DEFAULT_BINARY_DIR;
}

static char mq_test_zk_dir[PATH_MAX];

/* A test that stops on a fatal assertion skips its own cleanup: the
 * ZooKeeper it started must not outlive the process. */
static void mq_test_zk_atexit(void)
{
    mq_test_zk_stop();
}

bool mq_test_zk_start(char *hostport, size_t cap, uint32_t tick_ms)
{
    static bool registered;
    if (!registered) {
        atexit(mq_test_zk_atexit);
        registered = true;
    }
    snprintf(mq_test_zk_dir, sizeof(mq_test_zk_dir), "%s", mq_test_tmpdir("zk"));
    char cmd[PATH_MAX * 2 + 64];
    snprintf(cmd, sizeof(cmd), "%s/scripts/zookeeper.sh start --dir %s --tick-ms %u",
             mq_test_source_dir(), mq_test_zk_dir, tick_ms ? tick_ms : 500);
    FILE *p = popen(cmd, "r");
    if (!p) {
        perror("popen");
        return false;
    }
    char line[256] = "";
    char *got = fgets(line, sizeof(line), p);
    int rc = pclose(p);
    if (!got || rc != 0) {
        fprintf(stderr, "ZooKeeper did not start (%s), see %s/zk.log\n", cmd, mq_test_zk_dir);
        return false;
    }
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(hostport, cap, "%s", line);
    return true;
}

void mq_test_zk_stop(void)
{
    if (!mq_test_zk_dir[0]) {
        return;
    }
    char cmd[PATH_MAX * 2 + 64];
    snprintf(cmd, sizeof(cmd), "%s/scripts/zookeeper.sh stop --dir %s", mq_test_source_dir(),
             mq_test_zk_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not stop ZooKeeper in %s\n", mq_test_zk_dir);
    }
    mq_fs_remove_tree(mq_test_zk_dir);
    mq_test_zk_dir[0] = '\0';
}
