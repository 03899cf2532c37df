/*
 * mq_test: the small layer our CUnit suites share: running one suite from
 * main(), temporary directories, and waiting for a condition with a deadline
 * (tests wait on conditions, never on fixed sleeps).
 */
#ifndef MQ_TEST_H
#define MQ_TEST_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Runs the tests of one suite (verbose), returns the process exit code:
 * 0 when every test passed. init/cleanup may be NULL. */
int mq_test_run(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                CU_CleanupFunc cleanup);

/* Creates a fresh directory under $TMPDIR (or /tmp) named after prefix and
 * returns its path (static storage per call: copy it if kept). */
const char *mq_test_tmpdir(const char *prefix);

/* Calls cond(arg) until it returns true or timeout_ms passed, backing off
 * from 1 ms to 50 ms between calls. Returns the last result. */
bool mq_test_wait(bool (*cond)(void *arg), void *arg, uint32_t timeout_ms);

/* The source and build directories (from MQ_SOURCE_DIR / MQ_BINARY_DIR set by
 * CTest, or the compile-time defaults). */
const char *mq_test_source_dir(void);
const char *mq_test_binary_dir(void);

/*
 * Starts a real ZooKeeper (scripts/zookeeper.sh) in a new temp dir and writes
 * "127.0.0.1:port" to hostport. Returns false (with a message on stderr) when
 * it did not come up. tick_ms sets ZooKeeper's tickTime (the minimum session
 * timeout is 2 ticks); 0 means 500 ms, which keeps session-expiry tests fast.
 */
bool mq_test_zk_start(char *hostport, size_t cap, uint32_t tick_ms);
/* A loopback TCP port nobody listens on right now (bound, read, released),
 * never one this process was handed lately. -1 on failure. */
int mq_test_port(void);
/* Stops the ZooKeeper started by mq_test_zk_start (if any). */
void mq_test_zk_stop(void);

#endif
