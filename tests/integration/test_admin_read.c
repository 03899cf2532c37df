/*
 * mqadmin readMessages (the admin ReadMessages stream): real ZooKeeper, 5
 * bookies, 2 brokers, a one-queue topic with 100 messages sent one per
 * request (one ledger entry each, as the sticky queue choice packs nothing
 * at 100 msgs/s).
 *
 *  - The queue's owner reads every message back, the newest one included:
 *    it reads through its log. (Read from outside, the open ledger's newest
 *    entry is not confirmed on the bookies until the next add: before the
 *    fix the owner read that way too and offset 99 was "no message".)
 *  - The other broker reads from the ledgers: a prefix of what the owner
 *    has, short of the newest entries.
 *  - Past the end: "no message", exit 0. Bad input (max over 1000 or a
 *    negative offset: usage, exit 2; an unknown topic: exit 1) fails and
 *    the broker keeps serving.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"

#define TOPIC "adminread_t"
#define N 100

static char out[1 << 20];

static int t_read(it_cluster_t *c, int broker, const char *args)
{
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof(cmd), "%s -n %s readMessages -t " TOPIC " %s 2>&1", it_bin("mqadmin"),
             it_broker_endpoint(c, broker), args);
    return it_run(cmd, out, sizeof(out), 30000);
}

/* How many messages mqadmin said it printed, or -1. */
static long t_count(void)
{
    const char *p = strstr(out, "mqadmin readMessages: ");
    long n = -1;
    if (p && sscanf(p, "mqadmin readMessages: %ld message(s)", &n) == 1) {
        return n;
    }
    return -1;
}

static void test_read(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "admin_read"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    const char *sets[] = {"overloadFactor=100", NULL};
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, sets));
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " TOPIC " -w 1"), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, 1, NULL, 30000));

    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof(cmd),
             "%s produce --endpoints '%s;%s' --topic " TOPIC
             " --producers 1 --rate 100 --batch 1 --duration 1s --size 64 --quiet",
             it_bin("mqbench"), it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1));
    int st = it_run(cmd, out, sizeof(out), 60000);
    CU_ASSERT_EQUAL_FATAL(st, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(strstr(out, "acked: 100 messages"));

    char owner_id[64];
    it_broker_owner(&c, TOPIC, 0, owner_id, sizeof(owner_id));
    int owner = strcmp(owner_id, it_broker_id(&c, 1)) == 0 ? 1 : 0;
    int other = 1 - owner;

    /* The owner: all of them, the newest included. */
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 0 -m 1000"), 0);
    CU_ASSERT_EQUAL(t_count(), N);
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 99 -m 5"), 0);
    CU_ASSERT_EQUAL(t_count(), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n99 "));
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 40 -m 10"), 0);
    CU_ASSERT_EQUAL(t_count(), 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n40 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n49 "));

    /* The other broker: from the ledgers, a prefix. The last-add-confirmed
     * the bookies know came with the last add, and was what had been
     * confirmed when it was sent: it trails by at least the newest entry,
     * and by those still in flight then (at most sendWindowEntries, 16). */
    CU_ASSERT_EQUAL(t_read(&c, other, "-q 0 -o 0 -m 1000"), 0);
    long n = t_count();
    CU_ASSERT(n >= N - 16 && n <= N);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n0 "));
    if (n < N - 16 || n > N) {
        fprintf(stderr, "\n  read at the other broker (%ld messages):\n%.2000s\n", n, out);
    }

    /* Past the end, and bad input. */
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 100"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no message"));
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 0 -m 1001"), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "1..1000"));
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o -1"), 2);
    snprintf(cmd, sizeof(cmd), "%s -n %s readMessages -t no_such_topic -q 0 -o 0 2>&1",
             it_bin("mqadmin"), it_broker_endpoint(&c, owner));
    CU_ASSERT_NOT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    /* Still serving. */
    CU_ASSERT_EQUAL(t_read(&c, owner, "-q 0 -o 98 -m 2"), 0);
    CU_ASSERT_EQUAL(t_count(), 2);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"owner reads the newest message; others from the ledgers; bad input", test_read},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("admin read", tests, NULL, NULL);
}
