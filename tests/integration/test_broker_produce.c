/*
 * Broker produce path, end to end: real ZooKeeper, 5 bookies, 2 brokers.
 * 100k messages go to a 4-queue topic through broker A while broker B owns
 * half the queues (FIFO messages reach B's queues by forwarding): every one
 * is acknowledged, offsets are dense per queue, and each is found in its
 * queue's log with the same bytes. The admin API describes the topic.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_broker.h"
#include "it_rmq.h"
#include "mq_crc32c.h"
#include "mq_test.h"
#include "mq_util.h"

#define TOPIC "produce_t"
#define NQ 4

static void test_produce_through_one_broker(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_produce"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    /* All sends arrive at A, which keeps the normal ones on its own queues:
     * no load shedding here, so ownership stays put while we count. */
    const char *sets[] = {"overloadFactor=100", NULL};
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, sets));

    /* A MIXED topic takes normal and FIFO messages. */
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w %d -a +message.type=MIXED",
             it_bin("mqadmin"), it_broker_endpoint(&c, 0), TOPIC, NQ);
    CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 20000));
    /* Balanced: each broker owns two queues, so A forwards to B. */
    int on_a = 0;
    for (int q = 0; q < NQ; q++) {
        char owner[64];
        it_broker_owner(&c, TOPIC, q, owner, sizeof(owner));
        on_a += strcmp(owner, it_broker_id(&c, 0)) == 0;
    }
    CU_ASSERT_EQUAL(on_a, NQ / 2);

    it_rmq_t *cl = it_rmq_new(it_broker_endpoint(&c, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
    enum { BATCH = 100, TOTAL = 100000 };
    it_rmq_msg_t msgs[BATCH];
    it_rmq_result_t res[BATCH];
    static uint8_t bodies[BATCH][200];
    char groups[BATCH][16];
    it_rmq_ack_t *acks = mq_calloc(TOTAL, sizeof(*acks));
    size_t nacks = 0;
    int per_queue[NQ] = {0};
    for (int b = 0; b < TOTAL / BATCH; b++) {
        for (int i = 0; i < BATCH; i++) {
            uint64_t seq = (uint64_t)b * BATCH + (uint64_t)i;
            size_t len = 20 + seq % 180;
            for (size_t k = 0; k < len; k++) {
                bodies[i][k] = (uint8_t)mq_mix64(seq * 131 + k);
            }
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].topic = TOPIC;
            msgs[i].body = bodies[i];
            msgs[i].len = len;
            msgs[i].tag = "tagA";
            msgs[i].key = "k";
            if (seq % 2) {
                snprintf(groups[i], sizeof(groups[i]), "g%llu", (unsigned long long)(seq % 64));
                msgs[i].group = groups[i];
            }
        }
        int top = it_rmq_send(cl, msgs, BATCH, NULL, res, 20000);
        CU_ASSERT_EQUAL_FATAL(top, 20000);
        for (int i = 0; i < BATCH; i++) {
            CU_ASSERT_EQUAL_FATAL(res[i].code, 20000);
            CU_ASSERT_FATAL(res[i].queue >= 0 && res[i].queue < NQ);
            if (msgs[i].group) {
                CU_ASSERT_EQUAL(res[i].queue, it_rmq_group_queue(msgs[i].group, NQ));
            }
            per_queue[res[i].queue]++;
            acks[nacks].queue = res[i].queue;
            acks[nacks].offset = res[i].offset;
            acks[nacks].crc = mq_crc32c(0, bodies[i], msgs[i].len);
            nacks++;
        }
    }
    for (int q = 0; q < NQ; q++) {
        CU_ASSERT(per_queue[q] > 0); /* B's queues too: forwarding works */
    }

    /* The admin API sees the same offsets. */
    snprintf(cmd, sizeof(cmd), "%s -n %s topicStatus -t %s", it_bin("mqadmin"),
             it_broker_endpoint(&c, 1), TOPIC);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    for (int q = 0; q < NQ; q++) {
        char want[32];
        snprintf(want, sizeof(want), "%d", per_queue[q]);
        if (!strstr(out, want)) {
            fprintf(stderr, "queue %d: %s not in topicStatus:\n%s\n", q, want, out);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    }
    it_rmq_free(cl);
    CU_ASSERT(it_rmq_verify(&c, TOPIC, NQ, acks, nacks));
    free(acks);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"100k messages through one broker, half forwarded", test_produce_through_one_broker},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker produce", tests, NULL, NULL);
}
