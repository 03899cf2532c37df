/*
 * Bad consume-side input: real ZooKeeper, 5 bookies, 2 brokers with
 * autoCreateSubscriptionGroup=false and minInvisibleTimeMillsForRecv=1000,
 * a one-queue topic (its owner answers). Each bad request gets its
 * RocketMQ code (or gRPC INVALID_ARGUMENT for bytes that are no protobuf),
 * and after each one the broker still serves a good receive: a message sent
 * then is received and acknowledged.
 *
 *   unknown group                        CONSUMER_GROUP_NOT_FOUND 40403
 *   group name with a space              ILLEGAL_CONSUMER_GROUP 40003
 *   unknown topic                        TOPIC_NOT_FOUND 40402
 *   SQL filter, empty tag in "a||"       ILLEGAL_FILTER_EXPRESSION 40010
 *   invisible time 500 ms, 13 h          ILLEGAL_INVISIBLE_TIME 40011
 *   long polling 60 s (max 20 s)         ILLEGAL_POLLING_TIME 40018
 *   batch size 0                         BAD_REQUEST 40000
 *   forged, garbled, stale, other-group  INVALID_RECEIPT_HANDLE 40013
 *   receipt handle (ack and change)
 *   garbage bytes to ReceiveMessage,     gRPC INVALID_ARGUMENT
 *   AckMessage, ChangeInvisibleDuration
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"
#include "mq_util.h"

#define TOPIC "badin_t"
#define GROUP "badin_g"
#define GROUP2 "badin_g2"

static it_cons_t k;
static int seq;

/* A message sent now is received (by GROUP) and acknowledged; anything
 * older met on the way is acknowledged too. */
static bool good_receive(const char *after)
{
    char body[64];
    char id[MQC_MSGID_LEN + 1];
    snprintf(body, sizeof(body), "good %d", seq++);
    if (it_cons_send(&k, TOPIC, body, "good", NULL, id) != apache_rocketmq_v2_Code_OK) {
        fprintf(stderr, "  after %s: the send failed\n", after);
        return false;
    }
    for (int i = 0; i < 10; i++) {
        mqc_recv_result_t res;
        int code = it_cons_receive(&k, GROUP, TOPIC, 32, 30000, 5000, 10000, &res);
        bool found = false;
        for (size_t m = 0; m < res.n; m++) {
            const mqc_delivery_t *d = &res.msgs[m]->d;
            found |= strcmp(d->message_id, id) == 0;
            if (it_cons_ack(&k, GROUP, TOPIC, d->message_id, d->receipt_handle) !=
                apache_rocketmq_v2_Code_OK) {
                fprintf(stderr, "  after %s: ack failed\n", after);
                found = false;
                break;
            }
        }
        mqc_recv_result_fini(&res);
        if (found) {
            return true;
        }
        if (code != apache_rocketmq_v2_Code_OK &&
            code != apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND) {
            fprintf(stderr, "  after %s: good receive answered %d\n", after, code);
            return false;
        }
    }
    fprintf(stderr, "  after %s: the message never came\n", after);
    return false;
}

/* One ReceiveMessage with the given fields; returns its code. */
static int receive(const char *group, const char *topic, int type, const char *filter, int batch,
                   int64_t invisible_ms, int64_t poll_ms)
{
    mqc_recv_req_t q = {.group = group,
                        .topic = topic,
                        .filter = filter,
                        .filter_type = type,
                        .batch = batch,
                        .invisible_ms = invisible_ms,
                        .poll_ms = poll_ms};
    mqc_recv_result_t res;
    int code = INT32_MIN;
    if (mqc_receive_sync(k.ch, k.client_id, &q, 10000, &res) == MQ_OK) {
        code = mqc_recv_result_code(&res);
        CU_ASSERT_EQUAL(res.n, 0);
    }
    mqc_recv_result_fini(&res);
    return code;
}

#define EXPECT_RECV(want, what, ...)                                                               \
    do {                                                                                           \
        int got_ = receive(__VA_ARGS__);                                                           \
        fprintf(stderr, "  %-40s -> %d\n", what, got_);                                            \
        CU_ASSERT_EQUAL(got_, want);                                                               \
        CU_ASSERT(good_receive(what));                                                             \
    } while (0)

/* A delivery of a fresh message to GROUP, its handle kept. */
static bool fresh_delivery(int64_t invisible_ms, char *id, char *handle, size_t cap)
{
    char body[32];
    snprintf(body, sizeof(body), "handle %d", seq++);
    if (it_cons_send(&k, TOPIC, body, "h", NULL, id) != apache_rocketmq_v2_Code_OK) {
        return false;
    }
    mqc_recv_result_t res;
    int code = it_cons_receive(&k, GROUP, TOPIC, 1, invisible_ms, 5000, 10000, &res);
    bool ok = code == apache_rocketmq_v2_Code_OK && res.n == 1 &&
              strcmp(res.msgs[0]->d.message_id, id) == 0;
    if (ok) {
        snprintf(handle, cap, "%s", res.msgs[0]->d.receipt_handle);
    }
    mqc_recv_result_fini(&res);
    return ok;
}

static void handle_checks(void)
{
    const int bad = apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE;
    char id[MQC_MSGID_LEN + 1];
    char h[256];
    char h2[256];

    /* Forged: the shape of a handle, a made-up checksum. */
    const char *forged = "L1.0.0.1.ffffffffff.12345678";
    int code = it_cons_ack(&k, GROUP, TOPIC, "01000000000000000000000000000000AA", forged);
    fprintf(stderr, "  %-40s -> %d\n", "ack, forged handle", code);
    CU_ASSERT_EQUAL(code, bad);
    code = mqc_change_sync(k.ch, k.client_id, GROUP, TOPIC, forged,
                           "01000000000000000000000000000000AA", 5000, 5000, h2, sizeof(h2));
    fprintf(stderr, "  %-40s -> %d\n", "change, forged handle", code);
    CU_ASSERT_EQUAL(code, bad);
    code = it_cons_ack(&k, GROUP, TOPIC, "x", "not a handle at all");
    fprintf(stderr, "  %-40s -> %d\n", "ack, garbage handle", code);
    CU_ASSERT_EQUAL(code, bad);
    CU_ASSERT(good_receive("forged handles"));

    /* Garbled: a real handle with one character changed. */
    CU_ASSERT_FATAL(fresh_delivery(30000, id, h, sizeof(h)));
    snprintf(h2, sizeof(h2), "%s", h);
    size_t n = strlen(h2);
    CU_ASSERT_FATAL(n > 4);
    h2[n / 2] = h2[n / 2] == '1' ? '2' : '1';
    code = it_cons_ack(&k, GROUP, TOPIC, id, h2);
    fprintf(stderr, "  %-40s -> %d\n", "ack, garbled handle", code);
    CU_ASSERT_EQUAL(code, bad);
    /* The same handle under another group. */
    code = it_cons_ack(&k, GROUP2, TOPIC, id, h);
    fprintf(stderr, "  %-40s -> %d\n", "ack, handle of another group", code);
    CU_ASSERT_EQUAL(code, bad);
    CU_ASSERT_EQUAL(it_cons_ack(&k, GROUP, TOPIC, id, h), apache_rocketmq_v2_Code_OK);
    CU_ASSERT(good_receive("garbled handles"));

    /* Stale: the handle of delivery 1 once delivery 2 is out. */
    CU_ASSERT_FATAL(fresh_delivery(1000, id, h, sizeof(h)));
    bool again = false;
    h2[0] = '\0';
    for (int i = 0; i < 10 && !again; i++) {
        mqc_recv_result_t res;
        it_cons_receive(&k, GROUP, TOPIC, 1, 30000, 5000, 10000, &res);
        for (size_t m = 0; m < res.n; m++) {
            const mqc_delivery_t *d = &res.msgs[m]->d;
            if (strcmp(d->message_id, id) == 0) {
                CU_ASSERT_EQUAL(d->attempt, 2);
                snprintf(h2, sizeof(h2), "%s", d->receipt_handle);
                again = true;
            } else {
                it_cons_ack(&k, GROUP, TOPIC, d->message_id, d->receipt_handle);
            }
        }
        mqc_recv_result_fini(&res);
    }
    CU_ASSERT_FATAL(again);
    code = it_cons_ack(&k, GROUP, TOPIC, id, h);
    fprintf(stderr, "  %-40s -> %d\n", "ack, stale handle", code);
    CU_ASSERT_EQUAL(code, bad);
    code = mqc_change_sync(k.ch, k.client_id, GROUP, TOPIC, h, id, 5000, 5000, NULL, 0);
    fprintf(stderr, "  %-40s -> %d\n", "change, stale handle", code);
    CU_ASSERT_EQUAL(code, bad);
    CU_ASSERT_EQUAL(it_cons_ack(&k, GROUP, TOPIC, id, h2), apache_rocketmq_v2_Code_OK);
    CU_ASSERT(good_receive("stale handles"));
}

static void garbage_checks(void)
{
    /* Field 1, length-delimited, with a length varint that never ends. */
    static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0x01, 0x12, 0x03, 0x41};
    struct {
        const char *method;
        bool stream;
    } calls[] = {
        {MQC_RECEIVE_MESSAGE, true},
        {MQC_ACK_MESSAGE, false},
        {MQC_CHANGE_INVISIBLE, false},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(calls); i++) {
        int code = it_cons_raw(&k, calls[i].method, garbage, sizeof(garbage), calls[i].stream);
        fprintf(stderr, "  garbage to %-29s -> %d\n", calls[i].method + strlen(MQC_SVC), code);
        CU_ASSERT_EQUAL(code, -(int)RPC_INVALID_ARGUMENT);
        CU_ASSERT(good_receive(calls[i].method));
    }
}

static void test_badinput(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "consume_badinput"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    const char *sets[] = {"autoCreateSubscriptionGroup=false", "minInvisibleTimeMillsForRecv=1000",
                          NULL};
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, sets));
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " TOPIC " -w 1"), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateSubGroup -g " GROUP), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateSubGroup -g " GROUP2), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, 1, NULL, 30000));
    char owner[64];
    it_broker_owner(&c, TOPIC, 0, owner, sizeof(owner));
    int b = strcmp(owner, it_broker_id(&c, 1)) == 0 ? 1 : 0;
    CU_ASSERT_FATAL(it_cons_open(&k, it_broker_endpoint(&c, b)));
    fprintf(stderr, "\n");
    CU_ASSERT_FATAL(good_receive("start"));

    const int tag = apache_rocketmq_v2_FilterType_TAG;
    const int sql = apache_rocketmq_v2_FilterType_SQL;
    EXPECT_RECV(apache_rocketmq_v2_Code_CONSUMER_GROUP_NOT_FOUND, "unknown group", "nosuch_g",
                TOPIC, tag, "*", 4, 30000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP, "group name with a space",
                "bad group", TOPIC, tag, "*", 4, 30000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_TOPIC_NOT_FOUND, "unknown topic", GROUP, "nosuch_t", tag,
                "*", 4, 30000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_FILTER_EXPRESSION, "SQL filter", GROUP, TOPIC, sql,
                "a > 1", 4, 30000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_FILTER_EXPRESSION, "tag filter \"a||\"", GROUP,
                TOPIC, tag, "a||", 4, 30000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_INVISIBLE_TIME, "invisible time 500 ms", GROUP,
                TOPIC, tag, "*", 4, 500, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_INVISIBLE_TIME, "invisible time 13 h", GROUP, TOPIC,
                tag, "*", 4, 13ll * 3600 * 1000, 1000);
    EXPECT_RECV(apache_rocketmq_v2_Code_ILLEGAL_POLLING_TIME, "long polling 60 s", GROUP, TOPIC,
                tag, "*", 4, 30000, 60000);
    EXPECT_RECV(apache_rocketmq_v2_Code_BAD_REQUEST, "batch size 0", GROUP, TOPIC, tag, "*", 0,
                30000, 1000);
    handle_checks();
    garbage_checks();

    it_cons_close(&k);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"bad receives, handles and bytes; the broker keeps serving", test_badinput},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("consume bad input", tests, NULL, NULL);
}
