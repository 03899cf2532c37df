/*
 * Failover of a queue's owner under load: real ZooKeeper, 5 bookies, 2
 * brokers. A producer sends FIFO messages over 64 groups (so every queue gets
 * traffic) through broker A at 5k msg/s; broker B owns half the queues and
 * is killed with SIGKILL. The producer carries on through retries; A serves
 * B's queues within 6 s of the kill (ZooKeeper session timeout 4 s + fence,
 * recovery and a new ledger); no acknowledged message is lost, offsets stay
 * dense and none is used twice.
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

#define TOPIC "failover_t"
#define NQ 4

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool wait_acked(it_rmq_load_t *l, size_t n, unsigned timeout_ms)
{
    uint64_t end = mq_now_ms() + timeout_ms;
    while (it_rmq_load_acked(l) < n) {
        if (mq_now_ms() > end) {
            return false;
        }
        sleep_ms(10);
    }
    return true;
}

static void test_kill_owner(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_failover"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    char cmd[512], out[2048];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w %d -a +message.type=FIFO",
             it_bin("mqadmin"), it_broker_endpoint(&c, 0), TOPIC, NQ);
    CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 20000));
    int victim_q = -1;
    for (int q = 0; q < NQ; q++) {
        char owner[64];
        it_broker_owner(&c, TOPIC, q, owner, sizeof(owner));
        if (strcmp(owner, it_broker_id(&c, 1)) == 0) {
            victim_q = q;
        }
    }
    CU_ASSERT_FATAL(victim_q >= 0);

    const char *eps[] = {it_broker_endpoint(&c, 0)};
    it_rmq_load_t l = {.endpoints = eps,
                       .nendpoints = 1,
                       .topic = TOPIC,
                       .rate = 5000,
                       .batch = 10,
                       .size = 256,
                       .groups = 64};
    it_rmq_load_start(&l);
    CU_ASSERT(wait_acked(&l, 10000, 30000));

    uint64_t t_kill = mq_now_ms();
    it_broker_kill(&c, 1, SIGKILL);
    CU_ASSERT(it_broker_wait_owned(&c, TOPIC, NQ, it_broker_id(&c, 1), 15000));
    /* Served again: a message for the victim's queue is acknowledged. */
    char group[16];
    for (int g = 0;; g++) {
        snprintf(group, sizeof(group), "probe%d", g);
        if (it_rmq_group_queue(group, NQ) == victim_q) {
            break;
        }
    }
    it_rmq_t *probe = it_rmq_new(it_broker_endpoint(&c, 0));
    uint64_t t_served = 0;
    while (mq_now_ms() - t_kill < 20000) {
        it_rmq_msg_t m = {.topic = TOPIC, .body = "probe", .len = 5, .group = group};
        it_rmq_result_t r;
        if (it_rmq_send(probe, &m, 1, NULL, &r, 2000) == 20000 && r.code == 20000) {
            t_served = mq_now_ms();
            break;
        }
        sleep_ms(20);
    }
    it_rmq_free(probe);
    CU_ASSERT(t_served != 0);
    fprintf(stderr, "failover: queue %d served again %llu ms after the kill\n", victim_q,
            (unsigned long long)(t_served - t_kill));
    CU_ASSERT(t_served - t_kill <= 6000);

    size_t before = it_rmq_load_acked(&l);
    CU_ASSERT(wait_acked(&l, before + 10000, 30000));
    it_rmq_load_stop(&l);
    fprintf(stderr, "failover: acked=%zu retries=%llu lost=%llu\n", l.nacks,
            (unsigned long long)l.retries, (unsigned long long)l.lost);
    CU_ASSERT_EQUAL(l.lost, 0);
    CU_ASSERT(it_rmq_verify(&c, TOPIC, NQ, l.acks, l.nacks));
    it_rmq_load_fini(&l);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"kill -9 the owner under 5k msg/s", test_kill_owner},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker failover", tests, NULL, NULL);
}
