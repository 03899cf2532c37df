/*
 * Long polling of ReceiveMessage: real ZooKeeper, 5 bookies, 2 brokers, a
 * one-queue topic (so one broker owns all of it; receives go there).
 *
 *  - A receive with nothing to read waits for its long-polling time and
 *    then answers {status MESSAGE_NOT_FOUND} and the delivery timestamp.
 *  - A receive without a long-polling time (as Go v5.1.4 sends it) ends
 *    with a status before its deadline, never with DEADLINE_EXCEEDED.
 *  - A waiting receive returns within 100 ms of a send to its topic, with
 *    that message (three rounds).
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"
#include "mq_util.h"

#define TOPIC "longpoll_t"
#define GROUP "longpoll_g"
#define ROUNDS 3
#define WAKE_MS 100

typedef struct lp_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
} lp_wait_t;

static void lp_done(mqc_recv_result_t *res, void *arg)
{
    MQ_UNUSED(res);
    lp_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Waits up to ms for the receive to end; true when it did. */
static bool lp_wait_done(lp_wait_t *w, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0) {
    }
    bool done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

static void test_longpoll(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "consume_longpoll"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " TOPIC " -w 1"), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, 1, NULL, 30000));
    char owner[64];
    it_broker_owner(&c, TOPIC, 0, owner, sizeof(owner));
    int b = strcmp(owner, it_broker_id(&c, 1)) == 0 ? 1 : 0;
    it_cons_t k;
    CU_ASSERT_FATAL(it_cons_open(&k, it_broker_endpoint(&c, b)));

    /* Nothing to read: the receive waits out its 2 s. */
    mqc_recv_result_t res;
    uint64_t t0 = mq_now_ms();
    int code = it_cons_receive(&k, GROUP, TOPIC, 4, 30000, 2000, 10000, &res);
    uint64_t took = mq_now_ms() - t0;
    fprintf(stderr, "\n  empty receive: code %d after %llu ms\n", code, (unsigned long long)took);
    CU_ASSERT_EQUAL(code, apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND);
    CU_ASSERT(took >= 1900 && took < 4000);
    CU_ASSERT(res.has_delivery_ts);
    CU_ASSERT_EQUAL(res.n, 0);
    CU_ASSERT_EQUAL(res.bad_frames, 0);
    mqc_recv_result_fini(&res);

    /* No long-polling time: the deadline (3 s) bounds the wait, and the
     * stream still ends with a status. */
    t0 = mq_now_ms();
    code = it_cons_receive(&k, GROUP, TOPIC, 4, 30000, -1, 3000, &res);
    took = mq_now_ms() - t0;
    fprintf(stderr, "  receive without polling time: code %d after %llu ms\n", code,
            (unsigned long long)took);
    CU_ASSERT_EQUAL(code, apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND);
    CU_ASSERT(took < 3000);
    mqc_recv_result_fini(&res);

    for (int round = 0; round < ROUNDS; round++) {
        lp_wait_t w = {.done = false};
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cond, NULL);
        mqc_recv_req_t q = {.group = GROUP,
                            .topic = TOPIC,
                            .filter = "*",
                            .batch = 4,
                            .invisible_ms = 30000,
                            .poll_ms = 15000};
        CU_ASSERT_FATAL(mqc_receive(k.ch, k.client_id, &q, 20000, &res, lp_done, &w) == MQ_OK);
        /* Still waiting half a second later: nothing was sent. */
        CU_ASSERT_FALSE(lp_wait_done(&w, 500));
        char body[64];
        char id[MQC_MSGID_LEN + 1];
        snprintf(body, sizeof(body), "long poll round %d", round);
        uint64_t send_start = mq_now_ns();
        CU_ASSERT_EQUAL(it_cons_send(&k, TOPIC, body, "lp", NULL, id), apache_rocketmq_v2_Code_OK);
        uint64_t sent = mq_now_ns();
        CU_ASSERT_FATAL(lp_wait_done(&w, 10000));
        double after_ack = (double)((int64_t)(res.end_ns - sent)) / 1e6;
        double after_start = (double)((int64_t)(res.end_ns - send_start)) / 1e6;
        fprintf(stderr,
                "  round %d: receive ended %.1f ms after the send was acknowledged (%.1f ms "
                "after it started)\n",
                round, after_ack, after_start);
        CU_ASSERT(after_ack <= WAKE_MS);
        CU_ASSERT_EQUAL(mqc_recv_result_code(&res), apache_rocketmq_v2_Code_OK);
        CU_ASSERT_EQUAL_FATAL(res.n, 1);
        const mqc_delivery_t *d = &res.msgs[0]->d;
        CU_ASSERT_STRING_EQUAL(d->message_id, id);
        CU_ASSERT(d->body_len == strlen(body) && memcmp(d->body, body, d->body_len) == 0);
        CU_ASSERT_EQUAL(d->attempt, 1);
        CU_ASSERT(mqc_delivery_digest_ok(d));
        CU_ASSERT_EQUAL(it_cons_ack(&k, GROUP, TOPIC, d->message_id, d->receipt_handle),
                        apache_rocketmq_v2_Code_OK);
        mqc_recv_result_fini(&res);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cond);
    }
    it_cons_close(&k);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"long polling waits, and wakes up on a send", test_longpoll},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("consume long polling", tests, NULL, NULL);
}
