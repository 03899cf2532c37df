/*
 * kill -9 loses nothing acknowledged: mqbench writes 4 ledgers x 25 000
 * entries of 1 KiB with 64 in flight, logging every acknowledgement; the
 * bookie is killed with SIGKILL halfway; after a restart on the same
 * directories `mqbench bookie --verify-only` reads every entry back: each
 * acknowledged one must be byte-identical, an unacknowledged one absent or
 * identical, nothing garbage. Then the restarted bookie is killed again
 * right away (before its next checkpoint) and checked once more.
 *
 * The same with SIGTERM halfway: the stop is clean (exit 0) while adds are
 * in flight (the loop hands the journal back to its writer thread, which
 * writes what is still queued), and again nothing acknowledged is lost.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_cluster.h"
#include "mq_test.h"

#define CRASH_LEDGERS 4
#define CRASH_ENTRIES 25000
#define CRASH_TOTAL (CRASH_LEDGERS * CRASH_ENTRIES)

typedef struct ack_probe {
    const char *path;
    long want;
    pid_t writer;
} ack_probe_t;

static long count_acks(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[128];
    long n = 0;
    while (fgets(line, sizeof(line), f)) {
        n += line[0] == 'A';
    }
    fclose(f);
    return n;
}

static bool half_acked(void *arg)
{
    ack_probe_t *p = arg;
    return count_acks(p->path) >= p->want;
}

static long parse_count(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    if (!p) {
        return -1;
    }
    while (p > out && p[-1] == ' ') {
        p--;
    }
    while (p > out && p[-1] >= '0' && p[-1] <= '9') {
        p--;
    }
    return strtol(p, NULL, 10);
}

static void verify(it_cluster_t *c, const char *ack_log, long min_acked)
{
    static char out[65536];
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s bookie --bookies %s --verify-only --ack-log %s --inflight 64",
             it_bin("mqbench"), it_bookie_addr(c, 0), ack_log);
    int st = it_run(cmd, out, sizeof(out), 300000);
    if (st != 0 || !strstr(out, "verify: OK")) {
        fprintf(stderr, "\n%s\n", out);
    }
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "verify: OK"));
    long intact = parse_count(out, "acknowledged and intact");
    CU_ASSERT_TRUE(intact >= min_acked);
    CU_ASSERT_EQUAL(parse_count(out, "acknowledged but MISSING"), 0);
    CU_ASSERT_EQUAL(parse_count(out, "GARBAGE"), 0);
    CU_ASSERT_EQUAL(parse_count(out, "read errors"), 0);
    long checked = parse_count(out, "entries checked");
    CU_ASSERT_EQUAL(checked, CRASH_TOTAL);
}

static void t_stop_halfway(int sig)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, sig == SIGKILL ? "crash" : "crash-term"));
    it_bookie_prepare(&c, 0, NULL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));

    char ack_log[4200];
    char bench_log[4200];
    snprintf(ack_log, sizeof(ack_log), "%s/acks.log", c.dir);
    snprintf(bench_log, sizeof(bench_log), "%s/mqbench.log", c.dir);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "exec %s bookie --bookies %s --ledgers %d --entries %d --size 1024 --inflight 64 "
             "--ack-log %s --ledger-base 4242",
             it_bin("mqbench"), it_bookie_addr(&c, 0), CRASH_LEDGERS, CRASH_ENTRIES, ack_log);
    pid_t writer = it_spawn(cmd, bench_log);

    ack_probe_t probe = {ack_log, CRASH_TOTAL / 2, writer};
    CU_ASSERT_TRUE(mq_test_wait(half_acked, &probe, 300000));
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, sig), sig == SIGKILL ? 128 + SIGKILL : 0);
    /* The writer sees its adds fail and stops (exit 3: some adds failed). */
    CU_ASSERT_EQUAL(it_wait_pid(writer, 120000), 3);
    long acked = count_acks(ack_log);
    CU_ASSERT_TRUE(acked >= CRASH_TOTAL / 2 && acked < CRASH_TOTAL);

    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    verify(&c, ack_log, acked);

    /* Once more, before the restarted bookie's next checkpoint. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    verify(&c, ack_log, acked);
    it_cluster_fini(&c);
}

static void test_kill9_halfway(void)
{
    t_stop_halfway(SIGKILL);
}

static void test_sigterm_halfway(void)
{
    t_stop_halfway(SIGTERM);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"kill -9 halfway loses nothing acknowledged", test_kill9_halfway},
        {"SIGTERM halfway stops cleanly, loses nothing acknowledged", test_sigterm_halfway},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie crash", tests, NULL, NULL);
}
