/*
 * Every validation case of the produce side answers its RocketMQ code (or
 * gRPC INVALID_ARGUMENT for bytes that do not decode), and the broker keeps
 * serving: a good send succeeds after each bad one. Methods not implemented
 * yet answer UNIMPLEMENTED.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_broker.h"
#include "it_rmq.h"
#include "mq_test.h"

static it_cluster_t c;
static it_rmq_t *cl;
static it_rmq_t *cl_noauto;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "broker_badinput") || !it_cluster_start_bookies(&c, 5, NULL)) {
        return 1;
    }
    /* Broker 1 refuses to auto-create topics; both have a 64 KiB body limit. */
    const char *sets0[] = {"maxMessageSize=65536", NULL};
    const char *sets1[] = {"maxMessageSize=65536", "autoCreateTopicEnable=false", NULL};
    it_broker_prepare(&c, 0, sets0);
    it_broker_prepare(&c, 1, sets1);
    if (!it_broker_start(&c, 0) || !it_broker_start(&c, 1)) {
        return 1;
    }
    cl = it_rmq_new(it_broker_endpoint(&c, 0));
    cl_noauto = it_rmq_new(it_broker_endpoint(&c, 1));
    return cl && cl_noauto ? 0 : 1;
}

static int send_one(it_rmq_t *to, const it_rmq_msg_t *m, const char *client)
{
    it_rmq_result_t r;
    int top = it_rmq_send(to, m, 1, client, &r, 20000);
    return top == 20000 ? r.code : top;
}

static void still_serving(void)
{
    it_rmq_msg_t m = {.topic = "good_topic", .body = "ok", .len = 2};
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 20000);
}

static void test_topic_codes(void)
{
    it_rmq_msg_t m = {.topic = "bad topic!", .body = "x", .len = 1};
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40002); /* ILLEGAL_TOPIC */
    char longname[140];
    memset(longname, 'a', 128);
    longname[128] = '\0';
    m.topic = longname;
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40002);
    m.topic = "never_created";
    CU_ASSERT_EQUAL(send_one(cl_noauto, &m, NULL), 40402); /* TOPIC_NOT_FOUND */
    int nq = 0;
    CU_ASSERT_EQUAL(it_rmq_route(cl_noauto, "never_created", &nq, NULL, 0), 40402);
    CU_ASSERT_EQUAL(it_rmq_route(cl, "bad|topic#", &nq, NULL, 0), 40002);
    /* Auto-create on the route query: 4 queues by default. */
    CU_ASSERT_EQUAL(it_rmq_route(cl, "auto_topic", &nq, NULL, 0), 20000);
    CU_ASSERT_EQUAL(nq, 4);
    still_serving();
}

static void test_body_codes(void)
{
    it_rmq_msg_t m = {.topic = "good_topic", .body = "", .len = 0};
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 41302); /* MESSAGE_BODY_EMPTY */
    static char big[65537];
    memset(big, 'b', sizeof(big));
    m.body = big;
    m.len = sizeof(big);
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 41301); /* MESSAGE_BODY_TOO_LARGE */
    m.len = 65536;
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 20000);
    still_serving();
}

static void test_field_codes(void)
{
    it_rmq_msg_t m = {.topic = "good_topic", .body = "x", .len = 1};
    m.tag = "a|b";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40004); /* ILLEGAL_MESSAGE_TAG */
    m.tag = "  ";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40004);
    m.tag = NULL;
    m.key = "bad\001key";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40005); /* ILLEGAL_MESSAGE_KEY */
    m.key = NULL;
    m.prop_key = "UNIQ_KEY";
    m.prop_val = "v";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40007); /* ILLEGAL_MESSAGE_PROPERTY_KEY */
    m.prop_key = "";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40007);
    m.prop_key = NULL;
    m.message_id = "";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40009); /* ILLEGAL_MESSAGE_ID */
    m.message_id = NULL;
    m.type = 2;                                     /* FIFO without a group */
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40006); /* ILLEGAL_MESSAGE_GROUP */
    m.type = 0;
    char longgroup[80];
    memset(longgroup, 'g', 70);
    longgroup[70] = '\0';
    m.group = longgroup;
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40006);
    m.group = NULL;
    /* A FIFO message to a NORMAL topic. */
    m.group = "g1";
    CU_ASSERT_EQUAL(send_one(cl, &m, NULL), 40014); /* MESSAGE_PROPERTY_CONFLICT_WITH_TYPE */
    m.group = NULL;
    CU_ASSERT_EQUAL(send_one(cl, &m, ""), 40017); /* CLIENT_ID_REQUIRED */
    still_serving();
}

static void test_undecodable(void)
{
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    int code = 0;
    CU_ASSERT_EQUAL(it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/SendMessage", garbage,
                               sizeof(garbage), NULL, &code),
                    3); /* INVALID_ARGUMENT */
    CU_ASSERT_EQUAL(it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/QueryRoute", garbage,
                               sizeof(garbage), NULL, &code),
                    3);
    CU_ASSERT_EQUAL(it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/Heartbeat", garbage,
                               sizeof(garbage), NULL, &code),
                    3);
    /* Not implemented yet: UNIMPLEMENTED, not a crash. */
    CU_ASSERT_EQUAL(
        it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/EndTransaction", "", 0, NULL, &code),
        12);
    CU_ASSERT_EQUAL(it_rmq_raw(cl, "/no.such.Service/Method", "", 0, NULL, &code), 12);
    /* An empty SendMessage request: BAD_REQUEST. */
    CU_ASSERT_EQUAL(
        it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/SendMessage", "", 0, NULL, &code), 0);
    CU_ASSERT_EQUAL(code, 40000);
    /* Heartbeat without a client id. */
    CU_ASSERT_EQUAL(
        it_rmq_raw(cl, "/apache.rocketmq.v2.MessagingService/Heartbeat", "", 0, "", &code), 0);
    CU_ASSERT_EQUAL(code, 40017);
    still_serving();
    CU_ASSERT(it_broker_alive(&c, 0));
    CU_ASSERT(it_broker_alive(&c, 1));
}

static void test_fini(void)
{
    it_rmq_free(cl);
    it_rmq_free(cl_noauto);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"topic name and existence", test_topic_codes},
        {"body empty and too large", test_body_codes},
        {"tag, key, property, id, group, type, client id", test_field_codes},
        {"undecodable and unimplemented", test_undecodable},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker bad input", tests, suite_init, NULL);
}
