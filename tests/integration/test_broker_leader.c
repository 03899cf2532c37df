/*
 * The leader: real ZooKeeper, 5 bookies, 2 then 3 brokers. Killing the
 * leader (SIGKILL) makes the other broker leader, and every queue is owned
 * again, by live brokers only. A third broker that joins gets its share of
 * the queues from the leader while a producer runs, and nothing acknowledged
 * is lost or duplicated.
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

#define NQ 4

static int owned_by(it_cluster_t *c, const char *topic, const char *id)
{
    int n = 0;
    for (int q = 0; q < NQ; q++) {
        char owner[64];
        it_broker_owner(c, topic, q, owner, sizeof(owner));
        n += strcmp(owner, id) == 0;
    }
    return n;
}

static void test_leader_death_and_join(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_leader"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    const char *topics[] = {"lead_a", "lead_b"};
    char cmd[512], out[2048];
    for (int t = 0; t < 2; t++) {
        snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w %d -a +message.type=FIFO",
                 it_bin("mqadmin"), it_broker_endpoint(&c, 0), topics[t], NQ);
        CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
        CU_ASSERT_FATAL(it_broker_wait_owned(&c, topics[t], NQ, NULL, 20000));
    }
    char leader[64];
    CU_ASSERT_FATAL(it_broker_wait_leader(&c, leader, sizeof(leader), 10000));
    int li = strcmp(leader, it_broker_id(&c, 0)) == 0 ? 0 : 1;
    int other = 1 - li;
    /* Balanced: 4 + 4 of the 8 queues. */
    CU_ASSERT_EQUAL(owned_by(&c, "lead_a", it_broker_id(&c, 0)) +
                        owned_by(&c, "lead_b", it_broker_id(&c, 0)),
                    NQ);

    it_broker_kill(&c, li, SIGKILL);
    uint64_t end = mq_now_ms() + 15000;
    char now_leader[64] = "";
    while (mq_now_ms() < end) {
        if (it_broker_wait_leader(&c, now_leader, sizeof(now_leader), 1000) &&
            strcmp(now_leader, it_broker_id(&c, other)) == 0) {
            break;
        }
    }
    CU_ASSERT_STRING_EQUAL(now_leader, it_broker_id(&c, other));
    for (int t = 0; t < 2; t++) {
        CU_ASSERT(it_broker_wait_owned(&c, topics[t], NQ, it_broker_id(&c, li), 15000));
        CU_ASSERT_EQUAL(owned_by(&c, topics[t], it_broker_id(&c, other)), NQ);
    }

    /* A third broker joins while a producer runs on lead_a. */
    const char *eps[] = {it_broker_endpoint(&c, other)};
    it_rmq_load_t l = {.endpoints = eps,
                       .nendpoints = 1,
                       .topic = "lead_a",
                       .rate = 2000,
                       .batch = 10,
                       .size = 128,
                       .groups = 32};
    it_rmq_load_start(&l);
    it_broker_prepare(&c, 2, NULL);
    CU_ASSERT_FATAL(it_broker_start(&c, 2));
    end = mq_now_ms() + 20000;
    int third = 0;
    while (mq_now_ms() < end) {
        third = owned_by(&c, "lead_a", it_broker_id(&c, 2)) +
                owned_by(&c, "lead_b", it_broker_id(&c, 2));
        if (third >= NQ) {
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(third, NQ); /* 8 queues over 2 live brokers: 4 each */
    for (int t = 0; t < 2; t++) {
        CU_ASSERT(it_broker_wait_owned(&c, topics[t], NQ, it_broker_id(&c, li), 15000));
    }
    size_t before = it_rmq_load_acked(&l);
    end = mq_now_ms() + 20000;
    while (it_rmq_load_acked(&l) < before + 4000 && mq_now_ms() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    it_rmq_load_stop(&l);
    fprintf(stderr, "join: acked=%zu retries=%llu lost=%llu\n", l.nacks,
            (unsigned long long)l.retries, (unsigned long long)l.lost);
    CU_ASSERT_EQUAL(l.lost, 0);
    CU_ASSERT(it_rmq_verify(&c, "lead_a", NQ, l.acks, l.nacks));
    it_rmq_load_fini(&l);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"leader killed, third broker joins", test_leader_death_and_join},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker leader", tests, NULL, NULL);
}
