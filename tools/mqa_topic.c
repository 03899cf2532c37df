/*
 * mqa_topic: mqadmin's topic commands: updateTopic (CreateTopic with
 * update), topicList (ListTopics), topicStatus and topicRoute
 * (DescribeTopic), and readMessages (the ReadMessages stream, each stored
 * apache.rocketmq.v2.Message decoded for its id, tag, keys and body size).
 *
 * topicRoute is built from DescribeTopic (each queue's owner and its
 * endpoint) plus ClusterStatus (the cluster's name), not from
 * MessagingService.QueryRoute: it needs no client id, never auto-creates
 * the topic, and shows queues that no broker owns at the moment.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pb_decode.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.pb.h"
#include "mq_util.h"
#include "mqa_common.h"

static const char *const mqa_types[] = {"NORMAL", "FIFO", "DELAY", "TRANSACTION", "MIXED"};

/* RocketMQ's PermName.perm2String: "RW-" for 6. */
static void mqa_perm_str(int perm, char out[4])
{
    out[0] = (perm & 4) ? 'R' : '-';
    out[1] = (perm & 2) ? 'W' : '-';
    out[2] = (perm & 1) ? 'X' : '-';
    out[3] = '\0';
}

/* Parses -a: "+message.type=FIFO[,+k=v...]"; only message.type is known.
 * The type (upper case) goes to type (cap bytes). */
static bool mqa_parse_attrs(const mqa_t *a, const char *attrs, char *type, size_t cap)
{
    char *copy = mq_strdup(attrs);
    bool ok = true;
    char *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it && ok; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (it[0] == '-') {
            mqa_usage_error(a, "removing attributes ('%s') is not supported", it);
            ok = false;
        } else if (it[0] != '+' || !eq) {
            mqa_usage_error(a, "bad attribute '%s' (expected +message.type=TYPE)", it);
            ok = false;
        } else if ((size_t)(eq - it - 1) != strlen("message.type") ||
                   strncmp(it + 1, "message.type", (size_t)(eq - it - 1)) != 0) {
            mqa_usage_error(a, "unknown attribute '%.*s' (LedgerMQ knows +message.type)",
                            (int)(eq - it), it);
            ok = false;
        } else {
            char v[32];
            size_t n = 0;
            for (const char *p = eq + 1; *p && n + 1 < sizeof(v); p++) {
                v[n++] = (char)toupper((unsigned char)*p);
            }
            v[n] = '\0';
            bool known = false;
            for (size_t i = 0; i < MQ_ARRAY_LEN(mqa_types); i++) {
                known |= strcmp(v, mqa_types[i]) == 0;
            }
            if (!known) {
                mqa_usage_error(a,
                                "unknown message.type '%s' (NORMAL, FIFO, DELAY, TRANSACTION "
                                "or MIXED)",
                                eq + 1);
                ok = false;
            } else {
                snprintf(type, cap, "%s", v);
            }
        }
    }
    free(copy);
    return ok;
}

int mqa_update_topic(mqa_t *a, int argc, char **argv)
{
    const char *topic = NULL;
    const char *cluster = NULL;
    const char *attrs = NULL;
    const char *order = NULL;
    int64_t w = 0;
    int64_t r = 0;
    int64_t perm = 0;
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:t:w:r:p:a:o:c:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_TAKEN) {
            continue;
        }
        switch (c) {
        case 't':
            topic = optarg;
            break;
        case 'w':
        case 'r':
            if (!mqa_parse_int(optarg, 1, 65536, c == 'w' ? &w : &r)) {
                return mqa_usage_error(a, "bad -%c '%s' (a queue count, 1..65536)", c, optarg);
            }
            break;
        case 'p':
            if (!mqa_parse_int(optarg, 2, 6, &perm) || (perm != 2 && perm != 4 && perm != 6)) {
                return mqa_usage_error(a, "bad -p '%s' (2 write, 4 read, 6 read+write)", optarg);
            }
            break;
        case 'a':
            attrs = optarg;
            break;
        case 'o':
            order = optarg;
            if (strcmp(order, "true") != 0 && strcmp(order, "false") != 0) {
                return mqa_usage_error(a, "bad -o '%s' (true or false)", optarg);
            }
            break;
        case 'c':
            cluster = optarg;
            break;
        default:
            return mqa_usage_error(a, "unknown option");
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    if (!topic || !*topic) {
        return mqa_usage_error(a, "-t topic is required");
    }
    char type[32] = "";
    if (attrs && !mqa_parse_attrs(a, attrs, type, sizeof(type))) {
        return 2;
    }
    if (!type[0] && order && strcmp(order, "true") == 0) {
        snprintf(type, sizeof(type), "FIFO");
    }
    if (w && r && w != r) {
        fprintf(stderr,
                "mqadmin updateTopic: LedgerMQ topics have one queue count; using %" PRId64
                " (the larger of -w and -r)\n",
                MQ_MAX(w, r));
    }
    char name[256];
    if (cluster) {
        /* RocketMQ refuses a cluster it does not know; so do we. */
        if (!mqa_cluster_name(a, name, sizeof(name))) {
            return 1;
        }
        if (strcmp(name, cluster) != 0) {
            return mqa_fail(a, "cluster '%s' not found (%s belongs to cluster '%s')", cluster,
                            a->endpoint, name);
        }
    }
    ledgermq_admin_v1_CreateTopicRequest req = ledgermq_admin_v1_CreateTopicRequest_init_zero;
    req.has_topic = true;
    req.topic.name = (char *)topic;
    req.topic.queue_nums = (int32_t)MQ_MAX(w, r);
    req.topic.perm = (int32_t)perm;
    req.topic.message_type = type[0] ? type : NULL;
    req.update = true;
    ledgermq_admin_v1_CreateTopicResponse resp = ledgermq_admin_v1_CreateTopicResponse_init_zero;
    if (!mqa_call(a, "CreateTopic", ledgermq_admin_v1_CreateTopicRequest_fields, &req,
                  ledgermq_admin_v1_CreateTopicResponse_fields, &resp)) {
        return 1;
    }
    if (!cluster) {
        /* Only for the message: the topic exists whatever this answers. */
        if (!mqa_cluster_name(a, name, sizeof(name))) {
            snprintf(name, sizeof(name), "%s", a->endpoint);
        }
    }
    const ledgermq_admin_v1_TopicConfig *tc = &resp.topic;
    const char *t = tc->message_type && *tc->message_type ? tc->message_type : "NORMAL";
    char ps[4];
    mqa_perm_str(tc->perm, ps);
    printf("create topic to %s success.\n", name);
    printf("TopicConfig [topicName=%s, readQueueNums=%d, writeQueueNums=%d, perm=%s, "
           "topicFilterType=SINGLE_TAG, topicSysFlag=0, order=%s, attributes={+message.type=%s}]\n",
           tc->name ? tc->name : topic, (int)tc->queue_nums, (int)tc->queue_nums, ps,
           strcmp(t, "FIFO") == 0 ? "true" : "false", t);
    pb_release(ledgermq_admin_v1_CreateTopicResponse_fields, &resp);
    return 0;
}

static int mqa_cmp_topic(const void *x, const void *y)
{
    const ledgermq_admin_v1_TopicConfig *a = x;
    const ledgermq_admin_v1_TopicConfig *b = y;
    return strcmp(a->name ? a->name : "", b->name ? b->name : "");
}

int mqa_topic_list(mqa_t *a, int argc, char **argv)
{
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_OTHER) {
            return mqa_usage_error(a, "unknown option -%c", c);
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    ledgermq_admin_v1_ListTopicsRequest req = ledgermq_admin_v1_ListTopicsRequest_init_zero;
    ledgermq_admin_v1_ListTopicsResponse resp = ledgermq_admin_v1_ListTopicsResponse_init_zero;
    if (!mqa_call(a, "ListTopics", ledgermq_admin_v1_ListTopicsRequest_fields, &req,
                  ledgermq_admin_v1_ListTopicsResponse_fields, &resp)) {
        return 1;
    }
    if (resp.topics_count) {
        qsort(resp.topics, resp.topics_count, sizeof(*resp.topics), mqa_cmp_topic);
    }
    for (pb_size_t i = 0; i < resp.topics_count; i++) {
        printf("%s\n", resp.topics[i].name ? resp.topics[i].name : "");
    }
    pb_release(ledgermq_admin_v1_ListTopicsResponse_fields, &resp);
    return 0;
}

/* Parses "-t topic" (and -n/-h) for the commands that take only that. */
static int mqa_topic_opt(mqa_t *a, int argc, char **argv, const char **topic)
{
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:t:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_TAKEN) {
            continue;
        }
        if (c == 't') {
            *topic = optarg;
        } else {
            return mqa_usage_error(a, "unknown option");
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    if (!*topic || !**topic) {
        return mqa_usage_error(a, "-t topic is required");
    }
    return -1;
}

static bool mqa_describe(mqa_t *a, const char *topic, ledgermq_admin_v1_DescribeTopicResponse *resp)
{
    ledgermq_admin_v1_DescribeTopicRequest req = ledgermq_admin_v1_DescribeTopicRequest_init_zero;
    req.topic = (char *)topic;
    memset(resp, 0, sizeof(*resp));
    return mqa_call(a, "DescribeTopic", ledgermq_admin_v1_DescribeTopicRequest_fields, &req,
                    ledgermq_admin_v1_DescribeTopicResponse_fields, resp);
}

int mqa_topic_status(mqa_t *a, int argc, char **argv)
{
    const char *topic = NULL;
    int code = mqa_topic_opt(a, argc, argv, &topic);
    if (code >= 0) {
        return code;
    }
    ledgermq_admin_v1_DescribeTopicResponse resp;
    if (!mqa_describe(a, topic, &resp)) {
        return 1;
    }
    printf("%-32s  %-4s  %-20s  %-20s  %-8s  %s\n", "#Broker Name", "#QID", "#Min Offset",
           "#Max Offset", "#Ledgers", "#Last Updated");
    for (pb_size_t i = 0; i < resp.queues_count; i++) {
        const ledgermq_admin_v1_QueueStatus *q = &resp.queues[i];
        char when[40];
        mqa_time_str(q->last_store_ms, when, sizeof(when));
        printf("%-32s  %-4d  %-20" PRId64 "  %-20" PRId64 "  %-8u  %s\n",
               q->owner && *q->owner ? q->owner : "(unowned)", (int)q->queue_id, q->min_offset,
               q->max_offset, (unsigned)q->ledgers_count, when);
    }
    pb_release(ledgermq_admin_v1_DescribeTopicResponse_fields, &resp);
    return 0;
}

int mqa_topic_route(mqa_t *a, int argc, char **argv)
{
    const char *topic = NULL;
    int code = mqa_topic_opt(a, argc, argv, &topic);
    if (code >= 0) {
        return code;
    }
    ledgermq_admin_v1_DescribeTopicResponse resp;
    if (!mqa_describe(a, topic, &resp)) {
        return 1;
    }
    char cluster[256];
    if (!mqa_cluster_name(a, cluster, sizeof(cluster))) {
        pb_release(ledgermq_admin_v1_DescribeTopicResponse_fields, &resp);
        return 1;
    }
    /* Brokers in order of their first queue; per broker its queue ids. */
    size_t nq = resp.queues_count;
    size_t *broker_of = mq_calloc(nq ? nq : 1, sizeof(*broker_of));
    size_t *first = mq_calloc(nq ? nq : 1, sizeof(*first));
    size_t nb = 0;
    bool unowned = false;
    for (size_t i = 0; i < nq; i++) {
        const char *o = resp.queues[i].owner;
        broker_of[i] = SIZE_MAX;
        if (!o || !*o) {
            unowned = true;
            continue;
        }
        size_t b = 0;
        while (b < nb && strcmp(resp.queues[first[b]].owner, o) != 0) {
            b++;
        }
        if (b == nb) {
            first[nb++] = i;
        }
        broker_of[i] = b;
    }
    int perm = resp.has_topic ? resp.topic.perm : 6;
    printf("{\n  \"brokerDatas\": [");
    for (size_t b = 0; b < nb; b++) {
        const ledgermq_admin_v1_QueueStatus *q = &resp.queues[first[b]];
        printf("%s\n    {\n      \"brokerAddrs\": {\"0\": ", b ? "," : "");
        mqa_json_str(stdout, q->owner_endpoint);
        printf("},\n      \"brokerName\": ");
        mqa_json_str(stdout, q->owner);
        printf(",\n      \"cluster\": ");
        mqa_json_str(stdout, cluster);
        printf("\n    }");
    }
    printf("%s],\n  \"filterServerTable\": {},\n  \"messageType\": ", nb ? "\n  " : "");
    mqa_json_str(stdout, resp.has_topic ? resp.topic.message_type : "");
    printf(",\n  \"queueDatas\": [");
    for (size_t b = 0; b < nb; b++) {
        size_t n = 0;
        printf("%s\n    {\n      \"brokerName\": ", b ? "," : "");
        mqa_json_str(stdout, resp.queues[first[b]].owner);
        printf(",\n      \"perm\": %d,\n      \"queueIds\": [", perm);
        for (size_t i = 0; i < nq; i++) {
            if (broker_of[i] == b) {
                printf("%s%d", n++ ? ", " : "", (int)resp.queues[i].queue_id);
            }
        }
        printf("],\n      \"readQueueNums\": %zu,\n      \"topicSysFlag\": 0,\n"
               "      \"writeQueueNums\": %zu\n    }",
               n, n);
    }
    printf("%s],\n  \"topic\": ", nb ? "\n  " : "");
    mqa_json_str(stdout, topic);
    printf(",\n  \"unownedQueueIds\": [");
    if (unowned) {
        size_t n = 0;
        for (size_t i = 0; i < nq; i++) {
            if (broker_of[i] == SIZE_MAX) {
                printf("%s%d", n++ ? ", " : "", (int)resp.queues[i].queue_id);
            }
        }
    }
    printf("]\n}\n");
    free(first);
    free(broker_of);
    pb_release(ledgermq_admin_v1_DescribeTopicResponse_fields, &resp);
    return 0;
}

/* ------------------------------------------------------------ readMessages */

typedef struct mqa_read {
    mqa_t *a;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    rpc_status_t status;
    char details[512];
    uint64_t n;
    uint64_t bad;
    uint64_t t0_ns;    /* the call started */
    uint64_t first_ns; /* the first message arrived */
} mqa_read_t;

/* Prints one StoredMessage. On the rpc client thread; stdout is only
 * written from here until the stream ends. */
static void mqa_read_msg(const uint8_t *msg, size_t len, void *arg)
{
    mqa_read_t *rd = arg;
    if (rd->n == 0 && rd->bad == 0) {
        rd->first_ns = mq_now_ns();
        printf("%-10s  %-23s  %-34s  %-16s  %-24s  %s\n", "#Offset", "#Store Time", "#Message Id",
               "#Tag", "#Keys", "#Body Size");
    }
    mqc_bytes_t raw = {NULL, 0};
    ledgermq_admin_v1_StoredMessage sm = ledgermq_admin_v1_StoredMessage_init_zero;
    sm.message.funcs.decode = mqc_pb_bytes_ref;
    sm.message.arg = &raw;
    if (mqc_pb_decode(ledgermq_admin_v1_StoredMessage_fields, msg, len, &sm) != MQ_OK) {
        printf("(undecodable StoredMessage of %zu bytes)\n", len);
        rd->bad++;
        return;
    }
    char when[40];
    mqa_time_str(sm.store_ms, when, sizeof(when));
    apache_rocketmq_v2_Message m;
    const uint8_t *body;
    size_t blen;
    if (!raw.data || mqc_message_decode(raw.data, raw.len, &m, &body, &blen) != MQ_OK) {
        printf("%-10" PRId64 "  %-23s  (undecodable message of %zu bytes)\n", sm.offset, when,
               raw.len);
        rd->bad++;
        return;
    }
    const apache_rocketmq_v2_SystemProperties *sp = &m.system_properties;
    char keys[256] = "";
    size_t kl = 0;
    for (pb_size_t i = 0; i < sp->keys_count && kl + 1 < sizeof(keys); i++) {
        int w = snprintf(keys + kl, sizeof(keys) - kl, "%s%s", i ? "," : "",
                         sp->keys[i] ? sp->keys[i] : "");
        kl = w > 0 ? MQ_MIN(sizeof(keys) - 1, kl + (size_t)w) : kl;
    }
    printf("%-10" PRId64 "  %-23s  %-34s  %-16s  %-24s  %zu\n", sm.offset, when,
           sp->message_id && *sp->message_id ? sp->message_id : "-",
           sp->tag && *sp->tag ? sp->tag : "-", kl ? keys : "-", blen);
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    rd->n++;
}

static void mqa_read_end(rpc_status_t st, const char *details, void *arg)
{
    mqa_read_t *rd = arg;
    pthread_mutex_lock(&rd->mu);
    rd->status = st;
    snprintf(rd->details, sizeof(rd->details), "%s", details ? details : "");
    rd->done = true;
    pthread_cond_signal(&rd->cond);
    pthread_mutex_unlock(&rd->mu);
}

int mqa_read_messages(mqa_t *a, int argc, char **argv)
{
    const char *topic = NULL;
    int64_t queue = -1;
    int64_t offset = -1;
    int64_t max = 32;
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:t:q:o:m:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_TAKEN) {
            continue;
        }
        switch (c) {
        case 't':
            topic = optarg;
            break;
        case 'q':
            if (!mqa_parse_int(optarg, 0, INT32_MAX, &queue)) {
                return mqa_usage_error(a, "bad -q '%s' (a queue id >= 0)", optarg);
            }
            break;
        case 'o':
            if (!mqa_parse_int(optarg, 0, INT64_MAX, &offset)) {
                return mqa_usage_error(a, "bad -o '%s' (an offset >= 0)", optarg);
            }
            break;
        case 'm':
            if (!mqa_parse_int(optarg, 1, 1000, &max)) {
                return mqa_usage_error(a, "bad -m '%s' (1..1000)", optarg);
            }
            break;
        default:
            return mqa_usage_error(a, "unknown option");
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    if (!topic || !*topic || queue < 0 || offset < 0) {
        return mqa_usage_error(a, "-t topic, -q queueId and -o offset are required");
    }
    if (!mqa_connect(a)) {
        return 1;
    }
    ledgermq_admin_v1_ReadMessagesRequest req = ledgermq_admin_v1_ReadMessagesRequest_init_zero;
    req.topic = (char *)topic;
    req.queue_id = (int32_t)queue;
    req.offset = offset;
    req.max_messages = (int32_t)max;
    uint8_t *buf;
    size_t len;
    if (mqc_pb_encode(ledgermq_admin_v1_ReadMessagesRequest_fields, &req, &buf, &len) != MQ_OK) {
        return mqa_fail(a, "ReadMessages: cannot encode the request");
    }
    mqa_read_t rd;
    memset(&rd, 0, sizeof(rd));
    rd.a = a;
    pthread_mutex_init(&rd.mu, NULL);
    pthread_cond_init(&rd.cond, NULL);
    mqc_md_t md;
    mqc_md_init(&md, a->client_id);
    rd.t0_ns = mq_now_ns();
    mq_err_t err = rpc_channel_server_stream(a->ch, MQA_SVC "ReadMessages", md.md, md.n, buf, len,
                                             MQA_TIMEOUT_MS, mqa_read_msg, mqa_read_end, &rd);
    free(buf);
    int code = 0;
    if (err != MQ_OK) {
        code =
            mqa_fail(a, "ReadMessages: call to %s not started: %s", a->endpoint, mq_err_str(err));
    } else {
        pthread_mutex_lock(&rd.mu);
        while (!rd.done) {
            pthread_cond_wait(&rd.cond, &rd.mu);
        }
        pthread_mutex_unlock(&rd.mu);
        fflush(stdout);
        if (rd.status != RPC_OK) {
            code = mqa_fail(a, "ReadMessages: %s: %s (%s)", rpc_status_name(rd.status),
                            rd.details[0] ? rd.details : "no details", a->endpoint);
        } else if (rd.n == 0 && rd.bad == 0) {
            fprintf(stderr,
                    "mqadmin readMessages: no message in %s queue %" PRId64 " at offset %" PRId64
                    "\n",
                    topic, queue, offset);
        } else if (rd.bad) {
            code = mqa_fail(a, "%" PRIu64 " undecodable message(s)", rd.bad);
        } else {
            /* The call's own time (the channel's connect included),
             * without the process start-up. */
            fprintf(stderr,
                    "mqadmin readMessages: %" PRIu64 " message(s); first after %.3f ms, all in "
                    "%.3f ms\n",
                    rd.n, (double)(rd.first_ns - rd.t0_ns) / 1e6,
                    (double)(mq_now_ns() - rd.t0_ns) / 1e6);
        }
    }
    pthread_mutex_destroy(&rd.mu);
    pthread_cond_destroy(&rd.cond);
    return code;
}
