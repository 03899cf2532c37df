/*
 * A stalled owner: real ZooKeeper, 5 bookies, 2 brokers. Broker B owns half
 * the queues of a topic that a producer writes through broker A; B is
 * stopped (SIGSTOP) until its ZooKeeper session expires and A has taken its
 * queues over (fencing B's ledgers), then continued (SIGCONT). B's pending
 * writes fail as fenced, it gives the queues up (they may come back to it
 * later from the leader), and nothing acknowledged is lost or duplicated.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "it_broker.h"
#include "it_rmq.h"
#include "mq_test.h"
#include "mq_util.h"

#define TOPIC "stall_t"
#define NQ 4

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool log_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, text) != NULL;
    }
    fclose(f);
    return found;
}

static void test_stop_cont(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_stall"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    char cmd[512], out[2048];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w %d -a +message.type=FIFO",
             it_bin("mqadmin"), it_broker_endpoint(&c, 0), TOPIC, NQ);
    CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 20000));

    const char *eps[] = {it_broker_endpoint(&c, 0)};
    it_rmq_load_t l = {.endpoints = eps,
                       .nendpoints = 1,
                       .topic = TOPIC,
                       .rate = 3000,
                       .batch = 10,
                       .size = 200,
                       .groups = 64};
    it_rmq_load_start(&l);
    uint64_t end = mq_now_ms() + 30000;
    while (it_rmq_load_acked(&l) < 5000 && mq_now_ms() < end) {
        sleep_ms(10);
    }

    it_broker_kill(&c, 1, SIGSTOP);
    char reg[256];
    snprintf(reg, sizeof(reg), "/ledgermq/brokers/available/%s", it_broker_id(&c, 1));
    CU_ASSERT(it_zk_wait_exists(&c, reg, false, 20000)); /* session expired */
    CU_ASSERT(it_broker_wait_owned(&c, TOPIC, NQ, it_broker_id(&c, 1), 20000));
    size_t mid = it_rmq_load_acked(&l);
    end = mq_now_ms() + 20000;
    while (it_rmq_load_acked(&l) < mid + 3000 && mq_now_ms() < end) {
        sleep_ms(10);
    }
    it_broker_kill(&c, 1, SIGCONT);
    /* B notices: its queues are released as lost, then it re-registers. */
    end = mq_now_ms() + 20000;
    while (!log_has(c.brokers[1].log, "lost=1") && mq_now_ms() < end) {
        sleep_ms(50);
    }
    CU_ASSERT(log_has(c.brokers[1].log, "lost=1"));
    CU_ASSERT(it_zk_wait_exists(&c, reg, true, 20000));
    CU_ASSERT(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 20000));

    size_t after = it_rmq_load_acked(&l);
    end = mq_now_ms() + 20000;
    while (it_rmq_load_acked(&l) < after + 3000 && mq_now_ms() < end) {
        sleep_ms(10);
    }
    it_rmq_load_stop(&l);
    fprintf(stderr, "stall: acked=%zu retries=%llu lost=%llu\n", l.nacks,
            (unsigned long long)l.retries, (unsigned long long)l.lost);
    CU_ASSERT_EQUAL(l.lost, 0);
    CU_ASSERT(it_rmq_verify(&c, TOPIC, NQ, l.acks, l.nacks));
    it_rmq_load_fini(&l);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"SIGSTOP the owner past its session, then SIGCONT", test_stop_cont},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker stall", tests, NULL, NULL);
}
