/*
 * Broker consume path, end to end through the RocketMQ v5 protocol: real
 * ZooKeeper, 5 bookies and a broker (a second one, refusing unknown
 * groups, for the bad-input case). Messages sent are all received with
 * valid handles and intact bodies, acknowledged, and not received again (a
 * receive then long-polls and answers MESSAGE_NOT_FOUND at its poll
 * time); a waiting receive answers soon after a matching send; a message
 * not acknowledged comes back with attempt 2 after its invisible time,
 * ChangeInvisibleDuration(0) brings one back early; consumer progress and
 * assignments are reported; every bad input gets its code and the broker
 * keeps serving.
 */
#include <CUnit/CUnit.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.pb.h"
#include "br_deliver.h"
#include "br_pb.h"
#include "it_broker.h"
#include "it_rmq.h"
#include "mq_test.h"
#include "mq_util.h"
#include "rmq_service.pb.h"
#include "rpc.h"

#define SVC "/apache.rocketmq.v2.MessagingService/"
#define TOPIC "cb_topic"
#define NQ 4
/* Messages of the first test (cb_g1 acknowledges them all). */
#define NFIRST 80

static it_cluster_t c;
static it_rmq_t *cl;
static rpc_client_t *rcl;
static rpc_channel_t *rch;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "broker_consume_basic") || !it_cluster_start_bookies(&c, 5, NULL)) {
        return 1;
    }
    const char *sets[] = {"minInvisibleTimeMillsForRecv=1000",
                          "grpcClientConsumerMaxLongPollingTimeoutMillis=10000",
                          "cursorCompactEntries=10", "tailCacheSizeMB=0", NULL};
    if (!it_cluster_start_brokers(&c, 1, sets)) {
        return 1;
    }
    cl = it_rmq_new(it_broker_endpoint(&c, 0));
    if (!cl || rpc_client_new(&rcl) != MQ_OK ||
        rpc_channel_new(rcl, it_broker_endpoint(&c, 0), &rch) != MQ_OK) {
        return 1;
    }
    int nq = 0;
    return it_rmq_route(cl, TOPIC, &nq, NULL, 0) == 20000 && nq == NQ &&
                   it_broker_wait_owned(&c, TOPIC, NQ, NULL, 20000)
               ? 0
               : 1;
}

/* A unary call with the response bytes (free()); returns the gRPC status. */
static int call(const char *method, const pb_msgdesc_t *fields, const void *req, uint8_t **resp,
                size_t *rlen)
{
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(fields, req, &buf, &len) != MQ_OK) {
        return -1;
    }
    rpc_md_t md[1] = {{"x-mq-client-id", "it-consumer"}};
    rpc_status_t st = RPC_UNKNOWN;
    *resp = NULL;
    *rlen = 0;
    mq_err_t err =
        rpc_channel_unary_sync(rch, method, md, 1, buf, len, 20000, &st, resp, rlen, NULL, 0);
    free(buf);
    return err == MQ_OK ? (int)st : -1;
}

static it_rmq_recv_req_t recv_req(const char *group, int64_t invisible_ms, int64_t poll_ms)
{
    it_rmq_recv_req_t r = {.group = group,
                           .topic = TOPIC,
                           .queue = 0,
                           .batch = 32,
                           .invisible_ms = invisible_ms,
                           .poll_ms = poll_ms,
                           .timeout_ms = (uint32_t)(poll_ms > 0 ? poll_ms : 0) + 5000};
    return r;
}

/* Acks with handles of group; returns the top code, entry codes in codes. */
static int ack(const char *group, const char *topic, const char *const *handles, size_t n,
               int *codes)
{
    apache_rocketmq_v2_AckMessageRequest req = apache_rocketmq_v2_AckMessageRequest_init_zero;
    apache_rocketmq_v2_AckMessageEntry *es = mq_calloc(n ? n : 1, sizeof(*es));
    for (size_t i = 0; i < n; i++) {
        es[i].message_id = "id";
        es[i].receipt_handle = (char *)handles[i];
    }
    req.has_group = true;
    req.group.name = (char *)group;
    req.has_topic = true;
    req.topic.name = (char *)topic;
    req.entries_count = (pb_size_t)n;
    req.entries = es;
    uint8_t *resp;
    size_t rlen;
    int st =
        call(SVC "AckMessage", apache_rocketmq_v2_AckMessageRequest_fields, &req, &resp, &rlen);
    free(es);
    int top = -1;
    apache_rocketmq_v2_AckMessageResponse r = apache_rocketmq_v2_AckMessageResponse_init_zero;
    if (st == 0 && br_pb_decode(apache_rocketmq_v2_AckMessageResponse_fields, resp, rlen, &r, NULL,
                                0) == MQ_OK) {
        top = r.has_status ? (int)r.status.code : 0;
        for (size_t i = 0; codes && i < n; i++) {
            codes[i] =
                i < r.entries_count && r.entries[i].has_status ? (int)r.entries[i].status.code : 0;
        }
        pb_release(apache_rocketmq_v2_AckMessageResponse_fields, &r);
    }
    free(resp);
    return top;
}

/* ChangeInvisibleDuration; returns the code, the handle answered in out. */
static int change(const char *group, const char *topic, const char *handle, int64_t ms, char *out,
                  size_t cap)
{
    apache_rocketmq_v2_ChangeInvisibleDurationRequest req =
        apache_rocketmq_v2_ChangeInvisibleDurationRequest_init_zero;
    req.has_group = true;
    req.group.name = (char *)group;
    req.has_topic = true;
    req.topic.name = (char *)topic;
    req.receipt_handle = (char *)handle;
    req.has_invisible_duration = true;
    req.invisible_duration.seconds = ms / 1000;
    req.invisible_duration.nanos = (int32_t)((ms % 1000) * 1000000);
    req.message_id = "id";
    uint8_t *resp;
    size_t rlen;
    int st = call(SVC "ChangeInvisibleDuration",
                  apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, &req, &resp, &rlen);
    int code = -1;
    apache_rocketmq_v2_ChangeInvisibleDurationResponse r =
        apache_rocketmq_v2_ChangeInvisibleDurationResponse_init_zero;
    if (st == 0 && br_pb_decode(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, resp,
                                rlen, &r, NULL, 0) == MQ_OK) {
        code = r.has_status ? (int)r.status.code : 0;
        snprintf(out, cap, "%s", r.receipt_handle ? r.receipt_handle : "");
        pb_release(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, &r);
    }
    free(resp);
    return code;
}

static int send_n(const char *topic, int n, const char *tag, char ids[][48])
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char body[64];
        snprintf(body, sizeof(body), "consume body %d of %s", i, topic);
        snprintf(ids[i], 48, "CB%08X%08X", (unsigned)mq_now_ms(), (unsigned)i);
        it_rmq_msg_t m = {
            .topic = topic, .body = body, .len = strlen(body), .tag = tag, .message_id = ids[i]};
        it_rmq_result_t r;
        ok += it_rmq_send(cl, &m, 1, NULL, &r, 20000) == 20000 && r.code == 20000;
    }
    return ok;
}

/* Receives until n messages came or a receive came back empty. */
static size_t recv_all(const char *group, size_t n, int64_t invisible_ms, it_rmq_rmsg_t *out)
{
    size_t got = 0;
    while (got < n) {
        it_rmq_recv_req_t rq = recv_req(group, invisible_ms, 3000);
        it_rmq_recv_res_t res;
        int code = it_rmq_receive(cl, &rq, &res);
        CU_ASSERT_EQUAL(res.grpc, 0);
        CU_ASSERT_EQUAL(res.status_frames, 1);
        CU_ASSERT(res.timestamp);
        for (size_t i = 0; i < res.n && got < n; i++) {
            out[got] = res.msgs[i];
            res.msgs[i].body = NULL;
            got++;
        }
        size_t batch = res.n;
        it_rmq_recv_res_fini(&res);
        if (code != 20000 || batch == 0) {
            break;
        }
    }
    return got;
}

static void test_receive_ack(void)
{
    enum { N = NFIRST };
    char ids[N][48];
    CU_ASSERT_EQUAL_FATAL(send_n(TOPIC, N, "tagA", ids), N);
    it_rmq_rmsg_t msgs[N];
    size_t got = recv_all("cb_g1", N, 30000, msgs);
    CU_ASSERT_EQUAL_FATAL(got, N);
    const char *handles[N];
    int seen[N] = {0};
    for (size_t i = 0; i < got; i++) {
        it_rmq_rmsg_t *m = &msgs[i];
        CU_ASSERT_STRING_EQUAL(m->topic, TOPIC);
        CU_ASSERT(strlen(m->handle) > 8);
        CU_ASSERT_EQUAL(m->attempt, 1);
        CU_ASSERT_STRING_EQUAL(m->tag, "tagA");
        CU_ASSERT(m->queue >= 0 && m->queue < NQ);
        char md5[33];
        br_deliver_md5_hex(m->body, m->len, md5);
        CU_ASSERT_STRING_EQUAL(m->md5, md5);
        int k = -1;
        for (int j = 0; j < N; j++) {
            k = strcmp(ids[j], m->message_id) == 0 ? j : k;
        }
        CU_ASSERT(k >= 0);
        if (k >= 0) {
            char body[64];
            snprintf(body, sizeof(body), "consume body %d of %s", k, TOPIC);
            CU_ASSERT(m->len == strlen(body) && memcmp(m->body, body, m->len) == 0);
            seen[k]++;
        }
        handles[i] = m->handle;
    }
    for (int j = 0; j < N; j++) {
        CU_ASSERT_EQUAL(seen[j], 1);
    }
    /* Most one by one (an entry each: the cursor ledgers get compacted,
     * cursorCompactEntries=10), the rest in one request. */
    int codes[N];
    size_t single = got * 3 / 4;
    for (size_t i = 0; i < single; i++) {
        CU_ASSERT_EQUAL(ack("cb_g1", TOPIC, &handles[i], 1, codes), 20000);
    }
    CU_ASSERT_EQUAL(ack("cb_g1", TOPIC, handles + single, got - single, codes), 20000);
    for (size_t i = 0; i < got - single; i++) {
        CU_ASSERT_EQUAL(codes[i], 20000);
    }
    /* Acking again is fine. */
    CU_ASSERT_EQUAL(ack("cb_g1", TOPIC, handles, 1, codes), 20000);
    for (size_t i = 0; i < got; i++) {
        free(msgs[i].body);
    }

    /* Nothing left: the receive waits its poll time, then 40401. */
    it_rmq_recv_req_t rq = recv_req("cb_g1", 30000, 2000);
    it_rmq_recv_res_t res;
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &res), 40401);
    uint64_t took = mq_now_ms() - t0;
    CU_ASSERT(took >= 1900 && took < 4000);
    CU_ASSERT_EQUAL(res.n, 0);
    CU_ASSERT(res.timestamp);
    it_rmq_recv_res_fini(&res);

    /* Another group reads the same messages from the start. */
    it_rmq_rmsg_t other[N];
    got = recv_all("cb_g2", N, 30000, other);
    CU_ASSERT_EQUAL(got, N);
    for (size_t i = 0; i < got; i++) {
        free(other[i].body);
    }
}

typedef struct waiter {
    it_rmq_recv_res_t res;
    int code;
    uint64_t done_ms;
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    it_rmq_t *own = it_rmq_new(it_broker_endpoint(&c, 0));
    it_rmq_recv_req_t rq = recv_req("cb_wake", 30000, 8000);
    w->code = it_rmq_receive(own, &rq, &w->res);
    w->done_ms = mq_now_ms();
    it_rmq_free(own);
    return NULL;
}

static void test_wakes_on_send(void)
{
    /* The group starts at the earliest message: consume what is there. */
    it_rmq_rmsg_t old[NFIRST + 8];
    size_t got = recv_all("cb_wake", NFIRST + 8, 30000, old);
    const char *handles[NFIRST + 8] = {0};
    for (size_t i = 0; i < got; i++) {
        handles[i] = old[i].handle;
    }
    CU_ASSERT_EQUAL(ack("cb_wake", TOPIC, handles, got, NULL), got ? 20000 : 0);
    for (size_t i = 0; i < got; i++) {
        free(old[i].body);
    }

    waiter_t w;
    memset(&w, 0, sizeof(w));
    pthread_t tid;
    pthread_create(&tid, NULL, waiter_main, &w);
    /* Let the receive reach its long poll (it cannot be observed). */
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    char ids[1][48];
    CU_ASSERT_EQUAL(send_n(TOPIC, 1, "tagW", ids), 1);
    uint64_t sent = mq_now_ms();
    pthread_join(tid, NULL);
    CU_ASSERT_EQUAL(w.code, 20000);
    CU_ASSERT_EQUAL_FATAL(w.res.n, 1);
    CU_ASSERT_STRING_EQUAL(w.res.msgs[0].message_id, ids[0]);
    fprintf(stderr, "receive answered %llu ms after the send\n",
            (unsigned long long)(w.done_ms - sent));
    CU_ASSERT(w.done_ms - sent < 1000);
    const char *h = w.res.msgs[0].handle;
    CU_ASSERT_EQUAL(ack("cb_wake", TOPIC, &h, 1, NULL), 20000);
    it_rmq_recv_res_fini(&w.res);
}

static void test_redelivery(void)
{
    /* A fresh group on a fresh topic. */
    const char *topic = "cb_redeliver";
    int nq = 0;
    CU_ASSERT_EQUAL_FATAL(it_rmq_route(cl, topic, &nq, NULL, 0), 20000);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, topic, nq, NULL, 20000));
    char ids[2][48];
    CU_ASSERT_EQUAL_FATAL(send_n(topic, 2, NULL, ids), 2);
    it_rmq_recv_req_t rq = recv_req("cb_r", 1000, 3000);
    rq.topic = topic;
    rq.batch = 1;
    it_rmq_recv_res_t a, b;
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &a), 20000);
    CU_ASSERT_EQUAL_FATAL(a.n, 1);
    CU_ASSERT_EQUAL(a.msgs[0].attempt, 1);
    /* Not acked: after its second of invisibility (and the group's first
     * back-off), it comes back with attempt 2 and a new handle. */
    rq.batch = 32;
    rq.poll_ms = 8000;
    rq.timeout_ms = 13000;
    uint64_t t0 = mq_now_ms();
    bool again = false;
    it_rmq_rmsg_t second;
    memset(&second, 0, sizeof(second));
    while (!again && mq_now_ms() - t0 < 10000) {
        CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &b), 20000);
        for (size_t i = 0; i < b.n; i++) {
            if (strcmp(b.msgs[i].message_id, a.msgs[0].message_id) == 0) {
                again = true;
                second = b.msgs[i];
                second.body = NULL;
            } else {
                const char *other = b.msgs[i].handle;
                CU_ASSERT_EQUAL(ack("cb_r", topic, &other, 1, NULL), 20000);
            }
        }
        it_rmq_recv_res_fini(&b);
    }
    CU_ASSERT_FATAL(again);
    CU_ASSERT_EQUAL(second.attempt, 2);
    CU_ASSERT(strcmp(second.handle, a.msgs[0].handle) != 0);
    /* The first delivery's handle is stale now; the second's acks. */
    const char *h1 = a.msgs[0].handle;
    const char *h2 = second.handle;
    CU_ASSERT_EQUAL(ack("cb_r", topic, &h1, 1, NULL), 40013);
    CU_ASSERT_EQUAL(ack("cb_r", topic, &h2, 1, NULL), 20000);
    it_rmq_recv_res_fini(&a);
}

static void test_change_invisible(void)
{
    char ids[1][48];
    CU_ASSERT_EQUAL_FATAL(send_n(TOPIC, 1, "tagC", ids), 1);
    it_rmq_recv_req_t rq = recv_req("cb_change", 60000, 3000);
    rq.filter_type = 1;
    rq.filter = "tagC";
    it_rmq_recv_res_t a;
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &a), 20000);
    CU_ASSERT_EQUAL_FATAL(a.n, 1);
    CU_ASSERT_STRING_EQUAL(a.msgs[0].message_id, ids[0]);
    /* Invisible for 60 s; made visible now, it is redelivered soon. */
    char nh[160] = "";
    CU_ASSERT_EQUAL(change("cb_change", TOPIC, a.msgs[0].handle, 0, nh, sizeof(nh)), 20000);
    CU_ASSERT(nh[0] && strcmp(nh, a.msgs[0].handle) != 0);
    rq.poll_ms = 8000;
    rq.timeout_ms = 12000;
    it_rmq_recv_res_t b;
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &b), 20000);
    CU_ASSERT(mq_now_ms() - t0 < 5000);
    CU_ASSERT_EQUAL_FATAL(b.n, 1);
    CU_ASSERT_STRING_EQUAL(b.msgs[0].message_id, ids[0]);
    CU_ASSERT_EQUAL(b.msgs[0].attempt, 2);
    /* A bad handle: 40013, and the client's handle comes back. */
    char back[160] = "";
    CU_ASSERT_EQUAL(change("cb_change", TOPIC, "not-a-handle", 1000, back, sizeof(back)), 40013);
    CU_ASSERT_STRING_EQUAL(back, "not-a-handle");
    const char *h = b.msgs[0].handle;
    CU_ASSERT_EQUAL(ack("cb_change", TOPIC, &h, 1, NULL), 20000);
    it_rmq_recv_res_fini(&a);
    it_rmq_recv_res_fini(&b);
}

static void test_progress_and_assignment(void)
{
    ledgermq_admin_v1_ConsumerProgressRequest req =
        ledgermq_admin_v1_ConsumerProgressRequest_init_zero;
    req.group = "cb_g1";
    req.topic = TOPIC;
    uint8_t *resp;
    size_t rlen;
    CU_ASSERT_EQUAL_FATAL(call("/ledgermq.admin.v1.Admin/ConsumerProgress",
                               ledgermq_admin_v1_ConsumerProgressRequest_fields, &req, &resp,
                               &rlen),
                          0);
    ledgermq_admin_v1_ConsumerProgressResponse r =
        ledgermq_admin_v1_ConsumerProgressResponse_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        br_pb_decode(ledgermq_admin_v1_ConsumerProgressResponse_fields, resp, rlen, &r, NULL, 0),
        MQ_OK);
    free(resp);
    CU_ASSERT_EQUAL(r.queues_count, NQ);
    int64_t total = 0;
    for (pb_size_t i = 0; i < r.queues_count; i++) {
        ledgermq_admin_v1_QueueProgress *p = &r.queues[i];
        CU_ASSERT_STRING_EQUAL(p->owner ? p->owner : "", it_broker_id(&c, 0));
        CU_ASSERT(p->broker_offset >= 0);
        CU_ASSERT_EQUAL(p->inflight, 0);
        total += p->broker_offset;
    }
    /* cb_g1 acked the first test's messages; later ones (wake-up, change
     * tests) are its lag now. */
    CU_ASSERT_EQUAL(r.total_lag, total - NFIRST);
    pb_release(ledgermq_admin_v1_ConsumerProgressResponse_fields, &r);

    apache_rocketmq_v2_QueryAssignmentRequest qa =
        apache_rocketmq_v2_QueryAssignmentRequest_init_zero;
    qa.has_topic = true;
    qa.topic.name = TOPIC;
    qa.has_group = true;
    qa.group.name = "cb_g1";
    CU_ASSERT_EQUAL_FATAL(call(SVC "QueryAssignment",
                               apache_rocketmq_v2_QueryAssignmentRequest_fields, &qa, &resp, &rlen),
                          0);
    apache_rocketmq_v2_QueryAssignmentResponse ar =
        apache_rocketmq_v2_QueryAssignmentResponse_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        br_pb_decode(apache_rocketmq_v2_QueryAssignmentResponse_fields, resp, rlen, &ar, NULL, 0),
        MQ_OK);
    free(resp);
    CU_ASSERT_EQUAL(ar.status.code, 20000);
    CU_ASSERT_EQUAL_FATAL(ar.assignments_count, 1);
    apache_rocketmq_v2_MessageQueue *mq = &ar.assignments[0].message_queue;
    CU_ASSERT_EQUAL(mq->id, -1);
    CU_ASSERT_STRING_EQUAL(mq->broker.name, it_broker_id(&c, 0));
    CU_ASSERT_EQUAL_FATAL(mq->broker.endpoints.addresses_count, 1);
    CU_ASSERT_EQUAL(mq->broker.endpoints.scheme, apache_rocketmq_v2_AddressScheme_IPv4);
    char ep[128];
    snprintf(ep, sizeof(ep), "%s:%d", mq->broker.endpoints.addresses[0].host,
             (int)mq->broker.endpoints.addresses[0].port);
    CU_ASSERT_STRING_EQUAL(ep, it_broker_endpoint(&c, 0));
    pb_release(apache_rocketmq_v2_QueryAssignmentResponse_fields, &ar);
}

static void make_group(const char *name, int retry_max, uint32_t initial_ms, bool fifo)
{
    ledgermq_admin_v1_UpdateGroupRequest req = ledgermq_admin_v1_UpdateGroupRequest_init_zero;
    req.has_group = true;
    req.group.name = (char *)name;
    req.group.retry_max_times = retry_max;
    req.group.retry_initial_ms = initial_ms;
    req.group.consume_orderly = fifo;
    uint8_t *resp;
    size_t rlen;
    CU_ASSERT_EQUAL(call("/ledgermq.admin.v1.Admin/UpdateGroup",
                         ledgermq_admin_v1_UpdateGroupRequest_fields, &req, &resp, &rlen),
                    0);
    free(resp);
}

/* Receives from topic until a message with id comes (or timeout). */
static bool recv_id(const char *group, const char *topic, const char *id, int64_t invisible_ms,
                    it_rmq_rmsg_t *out, uint32_t timeout_ms)
{
    uint64_t t0 = mq_now_ms();
    while (mq_now_ms() - t0 < timeout_ms) {
        it_rmq_recv_req_t rq = recv_req(group, invisible_ms, 2000);
        rq.topic = topic;
        it_rmq_recv_res_t res;
        it_rmq_receive(cl, &rq, &res);
        bool found = false;
        for (size_t i = 0; i < res.n; i++) {
            if (!found && strcmp(res.msgs[i].message_id, id) == 0) {
                *out = res.msgs[i];
                res.msgs[i].body = NULL;
                found = true;
            }
        }
        it_rmq_recv_res_fini(&res);
        if (found) {
            return true;
        }
    }
    return false;
}

static void test_dead_letter(void)
{
    const char *topic = "cb_dlq_src";
    int nq = 0;
    CU_ASSERT_EQUAL_FATAL(it_rmq_route(cl, topic, &nq, NULL, 0), 20000);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, topic, nq, NULL, 20000));
    /* Two deliveries allowed, then the dead-letter queue. */
    make_group("cb_dlq", 1, 100, false);
    char ids[1][48];
    CU_ASSERT_EQUAL_FATAL(send_n(topic, 1, "tagD", ids), 1);
    it_rmq_rmsg_t m;
    CU_ASSERT_FATAL(recv_id("cb_dlq", topic, ids[0], 1000, &m, 10000));
    CU_ASSERT_EQUAL(m.attempt, 1);
    free(m.body);
    CU_ASSERT_FATAL(recv_id("cb_dlq", topic, ids[0], 1000, &m, 10000));
    CU_ASSERT_EQUAL(m.attempt, 2);
    free(m.body);
    /* Not acked again: the third pick moves it to %DLQ%cb_dlq, where a
     * reader finds it marked with its origin. */
    it_rmq_recv_req_t rq = recv_req("cb_dlq", 1000, 3000);
    rq.topic = topic;
    it_rmq_recv_res_t res;
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &res), 40401);
    it_rmq_recv_res_fini(&res);
    CU_ASSERT_FATAL(recv_id("cb_dlq_reader", "%DLQ%cb_dlq", ids[0], 30000, &m, 15000));
    CU_ASSERT_STRING_EQUAL(m.topic, "%DLQ%cb_dlq");
    CU_ASSERT_STRING_EQUAL(m.dlq_topic, topic);
    CU_ASSERT_EQUAL(m.len, strlen("consume body 0 of cb_dlq_src"));
    free(m.body);

    /* ForwardMessageToDeadLetterQueue: stored now, acknowledged. */
    CU_ASSERT_EQUAL_FATAL(send_n(topic, 1, "tagF", ids), 1);
    CU_ASSERT_FATAL(recv_id("cb_fdlq", topic, ids[0], 30000, &m, 10000));
    apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest fr =
        apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest_init_zero;
    fr.has_group = true;
    fr.group.name = "cb_fdlq";
    fr.has_topic = true;
    fr.topic.name = (char *)topic;
    fr.receipt_handle = m.handle;
    fr.message_id = m.message_id;
    fr.delivery_attempt = 1;
    fr.max_delivery_attempts = 1;
    uint8_t *resp;
    size_t rlen;
    CU_ASSERT_EQUAL_FATAL(call(SVC "ForwardMessageToDeadLetterQueue",
                               apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest_fields,
                               &fr, &resp, &rlen),
                          0);
    apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse r =
        apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_init_zero;
    CU_ASSERT_EQUAL(br_pb_decode(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_fields,
                                 resp, rlen, &r, NULL, 0),
                    MQ_OK);
    CU_ASSERT_EQUAL(r.status.code, 20000);
    pb_release(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_fields, &r);
    free(resp);
    const char *h = m.handle;
    CU_ASSERT_EQUAL(ack("cb_fdlq", topic, &h, 1, NULL), 20000);
    free(m.body);
    CU_ASSERT_FATAL(recv_id("cb_dlq_reader", "%DLQ%cb_fdlq", ids[0], 30000, &m, 15000));
    CU_ASSERT_STRING_EQUAL(m.dlq_topic, topic);
    free(m.body);
}

#define FIFO_TOPIC "cb_fifo"
#define FIFO_GROUPS 3
#define FIFO_PER_GROUP 20

typedef struct fifo_state {
    pthread_mutex_t mu;
    int next[FIFO_GROUPS]; /* next sequence expected per message group */
    int got;
    int out_of_order;
    int bad;
    char endpoint[64]; /* it_broker_endpoint's buffer is not for threads */
} fifo_state_t;

/* One receiver: small batches, acked at once, while others receive too. */
static void *fifo_main(void *arg)
{
    fifo_state_t *st = arg;
    it_rmq_t *own = it_rmq_new(st->endpoint);
    uint64_t t0 = mq_now_ms();
    for (;;) {
        pthread_mutex_lock(&st->mu);
        bool done = st->got >= FIFO_GROUPS * FIFO_PER_GROUP;
        pthread_mutex_unlock(&st->mu);
        if (done || mq_now_ms() - t0 > 60000) {
            break;
        }
        it_rmq_recv_req_t rq = recv_req("cb_fifo_g", 30000, 1000);
        rq.topic = FIFO_TOPIC;
        rq.batch = 3;
        it_rmq_recv_res_t res;
        it_rmq_receive(own, &rq, &res);
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < res.n; i++) {
            int g = -1, seq = -1;
            if (sscanf((const char *)res.msgs[i].body, "fifo g%d s%d", &g, &seq) != 2 || g < 0 ||
                g >= FIFO_GROUPS || res.msgs[i].attempt != 1) {
                st->bad++;
                continue;
            }
            st->out_of_order += seq != st->next[g];
            st->next[g] = seq + 1;
            st->got++;
        }
        pthread_mutex_unlock(&st->mu);
        const char *hs[3];
        for (size_t i = 0; i < res.n; i++) {
            hs[i] = res.msgs[i].handle;
        }
        if (res.n > 0) {
            CU_ASSERT_EQUAL(ack("cb_fifo_g", FIFO_TOPIC, hs, res.n, NULL), 20000);
        }
        it_rmq_recv_res_fini(&res);
    }
    it_rmq_free(own);
    return NULL;
}

static void test_fifo(void)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w 1 -a +message.type=FIFO",
             it_bin("mqadmin"), it_broker_endpoint(&c, 0), FIFO_TOPIC);
    CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, FIFO_TOPIC, 1, NULL, 20000));
    make_group("cb_fifo_g", 0, 0, true);
    /* Interleaved groups in one queue. */
    for (int s = 0; s < FIFO_PER_GROUP; s++) {
        for (int g = 0; g < FIFO_GROUPS; g++) {
            char body[32], group[8];
            snprintf(body, sizeof(body), "fifo g%d s%d", g, s);
            snprintf(group, sizeof(group), "g%d", g);
            it_rmq_msg_t m = {
                .topic = FIFO_TOPIC, .body = body, .len = strlen(body) + 1, .group = group};
            it_rmq_result_t r;
            CU_ASSERT_EQUAL(it_rmq_send(cl, &m, 1, NULL, &r, 20000), 20000);
        }
    }
    fifo_state_t st;
    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.mu, NULL);
    snprintf(st.endpoint, sizeof(st.endpoint), "%s", it_broker_endpoint(&c, 0));
    pthread_t tids[3];
    for (int i = 0; i < 3; i++) {
        pthread_create(&tids[i], NULL, fifo_main, &st);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(tids[i], NULL);
    }
    CU_ASSERT_EQUAL(st.got, FIFO_GROUPS * FIFO_PER_GROUP);
    CU_ASSERT_EQUAL(st.out_of_order, 0);
    CU_ASSERT_EQUAL(st.bad, 0);
    pthread_mutex_destroy(&st.mu);
}

static int recv_code(it_rmq_t *to, it_rmq_recv_req_t rq)
{
    it_rmq_recv_res_t res;
    int code = it_rmq_receive(to, &rq, &res);
    it_rmq_recv_res_fini(&res);
    return code;
}

static void test_bad_input(void)
{
    it_rmq_recv_req_t rq = recv_req("cb_bad", 30000, 0);
    rq.client_id = "";
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40017);
    rq = recv_req("bad group!", 30000, 0);
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40003);
    rq = recv_req("cb_bad", 30000, 0);
    rq.topic = "cb_never_created";
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40402);
    rq = recv_req("cb_bad", 30000, 0);
    rq.filter_type = 2;
    rq.filter = "a > 1";
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40010);
    rq = recv_req("cb_bad", 500, 0);
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40011);
    rq = recv_req("cb_bad", 43200001, 0);
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40011);
    rq = recv_req("cb_bad", 30000, 20000);
    CU_ASSERT_EQUAL(recv_code(cl, rq), 40018);

    /* Handles: garbage, another group's, another topic's. */
    int code;
    const char *bad = "garbage";
    CU_ASSERT_EQUAL(ack("cb_g1", TOPIC, &bad, 1, &code), 40013);
    CU_ASSERT_EQUAL(code, 40013);
    char ids[1][48];
    CU_ASSERT_EQUAL_FATAL(send_n(TOPIC, 1, "tagX", ids), 1);
    rq = recv_req("cb_bad", 30000, 3000);
    rq.filter_type = 1;
    rq.filter = "tagX";
    it_rmq_recv_res_t res;
    CU_ASSERT_EQUAL(it_rmq_receive(cl, &rq, &res), 20000);
    CU_ASSERT_EQUAL_FATAL(res.n, 1);
    const char *h = res.msgs[0].handle;
    CU_ASSERT_EQUAL(ack("cb_other", TOPIC, &h, 1, NULL), 40013);
    CU_ASSERT_EQUAL(ack("cb_bad", "cb_redeliver", &h, 1, NULL), 40013);
    /* Two entries with different results: MULTIPLE_RESULTS. */
    const char *two[2] = {h, "garbage"};
    int codes[2];
    CU_ASSERT_EQUAL(ack("cb_bad", TOPIC, two, 2, codes), 30000);
    CU_ASSERT_EQUAL(codes[0], 20000);
    CU_ASSERT_EQUAL(codes[1], 40013);
    it_rmq_recv_res_fini(&res);

    /* Undecodable requests: gRPC INVALID_ARGUMENT. */
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    CU_ASSERT_EQUAL(it_rmq_raw(cl, SVC "AckMessage", garbage, sizeof(garbage), NULL, &code), 3);
    CU_ASSERT_EQUAL(
        it_rmq_raw(cl, SVC "ChangeInvisibleDuration", garbage, sizeof(garbage), NULL, &code), 3);
    CU_ASSERT_EQUAL(it_rmq_raw(cl, SVC "QueryAssignment", garbage, sizeof(garbage), NULL, &code),
                    3);
    /* QueryAssignment without a client id. */
    CU_ASSERT_EQUAL(it_rmq_raw(cl, SVC "QueryAssignment", "", 0, "", &code), 0);
    CU_ASSERT_EQUAL(code, 40017);

    /* Unknown group on a broker that does not create groups. */
    const char *sets1[] = {"autoCreateSubscriptionGroup=false", "overloadFactor=100", NULL};
    it_broker_prepare(&c, 1, sets1);
    CU_ASSERT_FATAL(it_broker_start(&c, 1));
    it_rmq_t *strict = it_rmq_new(it_broker_endpoint(&c, 1));
    rq = recv_req("cb_unknown_group", 30000, 0);
    CU_ASSERT_EQUAL(recv_code(strict, rq), 40403);
    it_rmq_free(strict);

    /* Still serving. */
    rq = recv_req("cb_g1", 30000, 100);
    code = recv_code(cl, rq);
    CU_ASSERT(code == 20000 || code == 40401);
    CU_ASSERT(it_broker_alive(&c, 0));
}

/* Broker 1 (started above) and broker 0 share a new topic: acks and
 * changes sent to the broker that does not own the queue are forwarded;
 * assignments and progress cover both. */
static void test_two_brokers(void)
{
    const char *topic = "cb_two";
    int nq = 0;
    CU_ASSERT_EQUAL_FATAL(it_rmq_route(cl, topic, &nq, NULL, 0), 20000);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, topic, nq, NULL, 20000));
    /* The broker owning queue 0 receives; the other one is asked to ack. */
    char owner0[64];
    it_broker_owner(&c, topic, 0, owner0, sizeof(owner0));
    int ob = strcmp(owner0, it_broker_id(&c, 1)) == 0 ? 1 : 0;
    int owners = 0;
    for (int i = 0; i < 2; i++) {
        for (int q = 0; q < nq; q++) {
            char owner[64];
            it_broker_owner(&c, topic, q, owner, sizeof(owner));
            if (strcmp(owner, it_broker_id(&c, i)) == 0) {
                owners++;
                break;
            }
        }
    }
    it_rmq_t *b = it_rmq_new(it_broker_endpoint(&c, ob));
    /* Normal sends stay on the receiving broker's own queues. */
    enum { N = 10 };
    for (int i = 0; i < N; i++) {
        it_rmq_msg_t m = {.topic = topic, .body = "two", .len = 3};
        it_rmq_result_t r;
        CU_ASSERT_EQUAL(it_rmq_send(b, &m, 1, NULL, &r, 20000), 20000);
    }
    size_t got = 0;
    const char *handles[N];
    it_rmq_recv_res_t res[N];
    size_t nres = 0;
    while (got < N && nres < N) {
        it_rmq_recv_req_t rq = recv_req("cb_g1", 30000, 3000);
        rq.topic = topic;
        it_rmq_recv_res_t *r = &res[nres++];
        CU_ASSERT_EQUAL(it_rmq_receive(b, &rq, r), 20000);
        for (size_t i = 0; i < r->n && got < N; i++) {
            handles[got++] = r->msgs[i].handle;
        }
        if (r->n == 0) {
            break;
        }
    }
    CU_ASSERT_EQUAL_FATAL(got, N);
    /* Change one through the other broker, then ack all there: both are
     * forwarded to the owner. */
    rpc_channel_t *saved = rch;
    CU_ASSERT_EQUAL_FATAL(rpc_channel_new(rcl, it_broker_endpoint(&c, 1 - ob), &rch), MQ_OK);
    char nh[160] = "";
    CU_ASSERT_EQUAL(change("cb_g1", topic, handles[0], 30000, nh, sizeof(nh)), 20000);
    CU_ASSERT(nh[0] && strcmp(nh, handles[0]) != 0);
    int codes[N];
    CU_ASSERT_EQUAL(ack("cb_g1", topic, handles, N, codes), 20000);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(codes[i], 20000);
    }
    rpc_channel_free(rch);
    rch = saved;
    for (size_t i = 0; i < nres; i++) {
        it_rmq_recv_res_fini(&res[i]);
    }
    it_rmq_free(b);

    apache_rocketmq_v2_QueryAssignmentRequest qa =
        apache_rocketmq_v2_QueryAssignmentRequest_init_zero;
    qa.has_topic = true;
    qa.topic.name = (char *)topic;
    qa.has_group = true;
    qa.group.name = "cb_g1";
    uint8_t *resp;
    size_t rlen;
    CU_ASSERT_EQUAL_FATAL(call(SVC "QueryAssignment",
                               apache_rocketmq_v2_QueryAssignmentRequest_fields, &qa, &resp, &rlen),
                          0);
    apache_rocketmq_v2_QueryAssignmentResponse ar =
        apache_rocketmq_v2_QueryAssignmentResponse_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        br_pb_decode(apache_rocketmq_v2_QueryAssignmentResponse_fields, resp, rlen, &ar, NULL, 0),
        MQ_OK);
    free(resp);
    CU_ASSERT_EQUAL(ar.assignments_count, (pb_size_t)owners);
    pb_release(apache_rocketmq_v2_QueryAssignmentResponse_fields, &ar);

    ledgermq_admin_v1_ConsumerProgressRequest req =
        ledgermq_admin_v1_ConsumerProgressRequest_init_zero;
    req.group = "cb_g1";
    req.topic = (char *)topic;
    CU_ASSERT_EQUAL_FATAL(call("/ledgermq.admin.v1.Admin/ConsumerProgress",
                               ledgermq_admin_v1_ConsumerProgressRequest_fields, &req, &resp,
                               &rlen),
                          0);
    ledgermq_admin_v1_ConsumerProgressResponse r =
        ledgermq_admin_v1_ConsumerProgressResponse_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        br_pb_decode(ledgermq_admin_v1_ConsumerProgressResponse_fields, resp, rlen, &r, NULL, 0),
        MQ_OK);
    free(resp);
    CU_ASSERT_EQUAL(r.queues_count, (pb_size_t)nq);
    int64_t written = 0;
    for (pb_size_t i = 0; i < r.queues_count; i++) {
        written += r.queues[i].broker_offset;
        CU_ASSERT(r.queues[i].consumer_offset >= 0);
    }
    CU_ASSERT_EQUAL(written, N);
    CU_ASSERT_EQUAL(r.total_lag, 0);
    pb_release(ledgermq_admin_v1_ConsumerProgressResponse_fields, &r);

    /* kill -9 of the owner: what was acknowledged stays acknowledged, what
     * was in flight is delivered again by the new owner. */
    b = it_rmq_new(it_broker_endpoint(&c, ob));
    char ids[3][48];
    for (int i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "CBK%08X%02d", (unsigned)mq_now_ms(), i);
        it_rmq_msg_t m = {.topic = topic, .body = "kill", .len = 4, .message_id = ids[i]};
        it_rmq_result_t sr;
        CU_ASSERT_EQUAL(it_rmq_send(b, &m, 1, NULL, &sr, 20000), 20000);
    }
    size_t n = 0;
    it_rmq_recv_res_t kr[3];
    size_t nkr = 0;
    const char *kh[3];
    const char *kid[3];
    while (n < 3 && nkr < 3) {
        it_rmq_recv_req_t rq = recv_req("cb_g1", 60000, 3000);
        rq.topic = topic;
        it_rmq_recv_res_t *x = &kr[nkr++];
        it_rmq_receive(b, &rq, x);
        for (size_t i = 0; i < x->n && n < 3; i++) {
            kh[n] = x->msgs[i].handle;
            kid[n++] = x->msgs[i].message_id;
        }
        if (x->n == 0) {
            break;
        }
    }
    CU_ASSERT_EQUAL_FATAL(n, 3);
    /* Two acknowledged (durable once answered), one left in flight. */
    CU_ASSERT_EQUAL(ack("cb_g1", topic, kh, 2, NULL), 20000);
    char acked[2][136], inflight[136];
    snprintf(acked[0], sizeof(acked[0]), "%s", kid[0]);
    snprintf(acked[1], sizeof(acked[1]), "%s", kid[1]);
    snprintf(inflight, sizeof(inflight), "%s", kid[2]);
    for (size_t i = 0; i < nkr; i++) {
        it_rmq_recv_res_fini(&kr[i]);
    }
    it_rmq_free(b);
    CU_ASSERT_EQUAL(it_broker_kill(&c, ob, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, topic, nq, it_broker_id(&c, ob), 60000));
    it_rmq_t *survivor = it_rmq_new(it_broker_endpoint(&c, 1 - ob));
    bool again = false;
    int stale = 0;
    uint64_t t0 = mq_now_ms();
    while (mq_now_ms() - t0 < 20000) {
        it_rmq_recv_req_t rq = recv_req("cb_g1", 60000, again ? 1000 : 3000);
        rq.topic = topic;
        it_rmq_recv_res_t x;
        int code = it_rmq_receive(survivor, &rq, &x);
        for (size_t i = 0; i < x.n; i++) {
            again |= strcmp(x.msgs[i].message_id, inflight) == 0;
            stale += strcmp(x.msgs[i].message_id, acked[0]) == 0 ||
                     strcmp(x.msgs[i].message_id, acked[1]) == 0;
        }
        it_rmq_recv_res_fini(&x);
        if (again && code == 40401) {
            break;
        }
    }
    CU_ASSERT(again);
    CU_ASSERT_EQUAL(stale, 0);
    it_rmq_free(survivor);
}

static void test_fini(void)
{
    rpc_channel_free(rch);
    rpc_client_free(rcl);
    it_rmq_free(cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"send, receive all, ack, long poll empty", test_receive_ack},
        {"a waiting receive wakes on a send", test_wakes_on_send},
        {"not acked: redelivered with attempt 2", test_redelivery},
        {"change invisible duration", test_change_invisible},
        {"consumer progress and assignment", test_progress_and_assignment},
        {"dead-letter queue", test_dead_letter},
        {"FIFO group: in order across concurrent receives", test_fifo},
        {"bad input codes", test_bad_input},
        {"two brokers: forwarded acks, assignments, progress", test_two_brokers},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker consume basic", tests, suite_init, NULL);
}
