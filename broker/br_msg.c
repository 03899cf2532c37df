/*
 * br_msg: apache.rocketmq.v2.MessagingService, the parts that are not
 * sending: QueryRoute, Heartbeat, Telemetry and NotifyClientTermination.
 * SendMessage lives in br_send.c; the consume methods (ReceiveMessage,
 * AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue,
 * QueryAssignment) in br_recv*.c, registered from here. Every other method
 * of the service is not registered, so the rpc layer answers it
 * UNIMPLEMENTED.
 *
 * Business errors are answered as gRPC OK with a RocketMQ code in the
 * response's status (what the official clients expect); an undecodable
 * request is gRPC INVALID_ARGUMENT. A request without x-mq-client-id gets
 * CLIENT_ID_REQUIRED.
 *
 * Threads: handlers run on the gRPC thread and answer at once, except
 * QueryRoute, which may create a topic and wait for its queues to be owned,
 * and a consumer's Telemetry settings, which need its group's record: both
 * run on the slow executor.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_pb.h"
#include "br_server_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

#define BR_MSG_SVC "/apache.rocketmq.v2.MessagingService/"

/* Every *Response of the service starts with `Status status = 1`, so a
 * response that carries only a status is encoded the same for all of them. */
static void br_msg_reply_status(rpc_call_t *call, apache_rocketmq_v2_Code code, const char *text)
{
    apache_rocketmq_v2_HeartbeatResponse resp = apache_rocketmq_v2_HeartbeatResponse_init_zero;
    resp.has_status = true;
    resp.status.code = code;
    resp.status.message = (char *)text;
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_HeartbeatResponse_fields, &resp, &buf, &len) != MQ_OK) {
        rpc_call_finish(call, RPC_INTERNAL, "cannot encode the response");
        return;
    }
    rpc_call_reply(call, buf, len);
    free(buf);
}

/* False (and answered) when the request has no client id. */
static bool br_msg_check_client(rpc_call_t *call)
{
    const char *id = rpc_call_header(call, "x-mq-client-id");
    if (id && *id) {
        return true;
    }
    br_msg_reply_status(call, apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED,
                        "x-mq-client-id header is required");
    return false;
}

/* --- QueryRoute -------------------------------------------------------------------- */

typedef struct br_route_req {
    br_server_t *srv;
    rpc_call_t *call;
    char topic[BR_TOPIC_NAME_MAX + 2];
} br_route_req_t;

static void br_msg_route_task(void *arg)
{
    br_route_req_t *rq = arg;
    br_server_t *srv = rq->srv;
    br_topic_t t;
    mq_err_t err = br_server_topic(srv, rq->topic, srv->conf->autoCreateTopicEnable, &t);
    if (err == MQ_ENOTFOUND) {
        br_msg_reply_status(rq->call, apache_rocketmq_v2_Code_TOPIC_NOT_FOUND,
                            "topic does not exist");
        goto out;
    }
    if (err != MQ_OK) {
        br_msg_reply_status(rq->call, br_status_code(err), mq_err_str(err));
        goto out;
    }
    /* A client needs a broker per queue; give a handover in progress a
     * moment so the route names the new owners. */
    br_server_wait_owned(srv, &t, 3000);

    int n = t.queues;
    apache_rocketmq_v2_MessageQueue *mqs = mq_calloc((size_t)n, sizeof(*mqs));
    apache_rocketmq_v2_Address *addrs = mq_calloc((size_t)n, sizeof(*addrs));
    char(*hosts)[BR_ENDPOINT_MAX] = mq_calloc((size_t)n, sizeof(*hosts));
    char(*names)[BR_ID_MAX] = mq_calloc((size_t)n, sizeof(*names));
    apache_rocketmq_v2_MessageType types[4];
    pb_size_t ntypes = 0;
    if (t.type == BR_MSG_TYPE_MIXED) {
        types[0] = apache_rocketmq_v2_MessageType_NORMAL;
        types[1] = apache_rocketmq_v2_MessageType_FIFO;
        types[2] = apache_rocketmq_v2_MessageType_DELAY;
        types[3] = apache_rocketmq_v2_MessageType_TRANSACTION;
        ntypes = 4;
    } else {
        types[0] = (apache_rocketmq_v2_MessageType)t.type;
        ntypes = 1;
    }
    apache_rocketmq_v2_Permission perm = apache_rocketmq_v2_Permission_NONE;
    if ((t.perm & BR_PERM_READ) && (t.perm & BR_PERM_WRITE)) {
        perm = apache_rocketmq_v2_Permission_READ_WRITE;
    } else if (t.perm & BR_PERM_READ) {
        perm = apache_rocketmq_v2_Permission_READ;
    } else if (t.perm & BR_PERM_WRITE) {
        perm = apache_rocketmq_v2_Permission_WRITE;
    }
    for (int i = 0; i < n; i++) {
        br_broker_info_t bi;
        bool self = false;
        const char *ep = srv->endpoint;
        const char *name = srv->id;
        if (br_cluster_owner(srv->cluster, t.name, i, &bi, &self) == MQ_OK ||
            br_cluster_assignee(srv->cluster, t.name, i, &bi) == MQ_OK) {
            snprintf(names[i], sizeof(names[i]), "%s", bi.id);
            ep = bi.endpoint;
            name = names[i];
        } else {
            snprintf(names[i], sizeof(names[i]), "%s", srv->id);
            name = names[i];
        }
        apache_rocketmq_v2_MessageQueue *m = &mqs[i];
        m->has_topic = true;
        m->topic.name = t.name;
        m->id = i;
        m->permission = perm;
        m->has_broker = true;
        m->broker.name = (char *)name;
        m->broker.id = 0;
        m->broker.has_endpoints = true;
        br_pb_endpoints(ep, hosts[i], sizeof(hosts[i]), &addrs[i], &m->broker.endpoints);
        m->accept_message_types_count = ntypes;
        m->accept_message_types = types;
    }
    apache_rocketmq_v2_QueryRouteResponse resp = apache_rocketmq_v2_QueryRouteResponse_init_zero;
    resp.has_status = true;
    resp.status.code = apache_rocketmq_v2_Code_OK;
    resp.status.message = "OK";
    resp.message_queues_count = (pb_size_t)n;
    resp.message_queues = mqs;
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_QueryRouteResponse_fields, &resp, &buf, &len) == MQ_OK) {
        rpc_call_reply(rq->call, buf, len);
        free(buf);
    } else {
        rpc_call_finish(rq->call, RPC_INTERNAL, "cannot encode the route");
    }
    free(mqs);
    free(addrs);
    free(hosts);
    free(names);
out:
    rpc_call_unref(rq->call);
    free(rq);
}

static void br_msg_route_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    apache_rocketmq_v2_QueryRouteRequest r = apache_rocketmq_v2_QueryRouteRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_QueryRouteRequest_fields, req, len, &r, why, sizeof(why)) !=
        MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    if (!br_msg_check_client(call)) {
        pb_release(apache_rocketmq_v2_QueryRouteRequest_fields, &r);
        return;
    }
    const char *name = r.has_topic ? br_pb_str(r.topic.name) : "";
    if (!br_topic_name_valid(name)) {
        br_msg_reply_status(call, apache_rocketmq_v2_Code_ILLEGAL_TOPIC,
                            "topic name must match ^[%|a-zA-Z0-9_-]+$ and be 1..127 chars");
        pb_release(apache_rocketmq_v2_QueryRouteRequest_fields, &r);
        return;
    }
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping) {
        pb_release(apache_rocketmq_v2_QueryRouteRequest_fields, &r);
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        return;
    }
    br_route_req_t *rq = mq_calloc(1, sizeof(*rq));
    rq->srv = srv;
    rq->call = call;
    snprintf(rq->topic, sizeof(rq->topic), "%s", name);
    pb_release(apache_rocketmq_v2_QueryRouteRequest_fields, &r);
    rpc_call_ref(call);
    mq_executor_submit(srv->slow, mq_mix64((uintptr_t)rq), br_msg_route_task, rq);
}

/* --- Heartbeat, NotifyClientTermination ------------------------------------------------ */

static void br_msg_heartbeat_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    apache_rocketmq_v2_HeartbeatRequest r = apache_rocketmq_v2_HeartbeatRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_HeartbeatRequest_fields, req, len, &r, why, sizeof(why)) !=
        MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    pb_release(apache_rocketmq_v2_HeartbeatRequest_fields, &r);
    if (br_msg_check_client(call)) {
        br_msg_reply_status(call, apache_rocketmq_v2_Code_OK, "OK");
    }
}

static void br_msg_notify_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)arg;
    apache_rocketmq_v2_NotifyClientTerminationRequest r =
        apache_rocketmq_v2_NotifyClientTerminationRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    pb_release(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, &r);
    if (br_msg_check_client(call)) {
        MQ_LOG_DEBUG("client terminated client=%s", rpc_call_header(call, "x-mq-client-id"));
        br_msg_reply_status(call, apache_rocketmq_v2_Code_OK, "OK");
    }
}

/* --- Telemetry ------------------------------------------------------------------------- */

static void br_msg_telemetry_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    (void)call;
    (void)req;
    (void)len;
    (void)arg;
}

static void br_msg_duration(apache_rocketmq_v2_Duration *d, uint64_t ms)
{
    d->seconds = (int64_t)(ms / 1000);
    d->nanos = (int32_t)((ms % 1000) * 1000000);
}

/* Fills in what the server decides in a client's settings (see the
 * protocol notes: a producer needs max_body_size and an exponential backoff,
 * a consumer a batch size, a long-polling timeout and a backoff). g: the
 * consumer's group (its retry policy and ordering), NULL for others. */
static void br_msg_merge_settings(br_server_t *srv, apache_rocketmq_v2_Settings *s,
                                  const br_group_t *g)
{
    bool producer = s->has_client_type && s->client_type == apache_rocketmq_v2_ClientType_PRODUCER;
    pb_release(apache_rocketmq_v2_RetryPolicy_fields, &s->backoff_policy);
    memset(&s->backoff_policy, 0, sizeof(s->backoff_policy));
    s->has_backoff_policy = true;
    s->backoff_policy.which_strategy = apache_rocketmq_v2_RetryPolicy_exponential_backoff_tag;
    apache_rocketmq_v2_ExponentialBackoff *eb = &s->backoff_policy.strategy.exponential_backoff;
    eb->has_initial = true;
    eb->has_max = true;
    eb->multiplier = 2.0f;
    if (producer) {
        s->backoff_policy.max_attempts = 3;
        br_msg_duration(&eb->initial, 10);
        br_msg_duration(&eb->max, 1000);
        if (s->which_pub_sub != apache_rocketmq_v2_Settings_publishing_tag) {
            s->which_pub_sub = apache_rocketmq_v2_Settings_publishing_tag;
            memset(&s->pub_sub.publishing, 0, sizeof(s->pub_sub.publishing));
        }
        s->pub_sub.publishing.max_body_size = (int32_t)srv->conf->maxMessageSize;
        s->pub_sub.publishing.validate_message_type = true;
    } else {
        br_group_t def;
        if (!g) {
            br_group_default("", &def);
            g = &def;
        }
        /* Deliveries, not retries: the first one counts. */
        s->backoff_policy.max_attempts = br_group_max_attempts(g);
        br_msg_duration(&eb->initial, g->retry_initial_ms);
        br_msg_duration(&eb->max, g->retry_max_ms);
        eb->multiplier = (float)g->retry_multiplier;
        if (s->which_pub_sub == apache_rocketmq_v2_Settings_subscription_tag) {
            apache_rocketmq_v2_Subscription *sub = &s->pub_sub.subscription;
            uint64_t maxpoll = (uint64_t)srv->conf->grpcClientConsumerMaxLongPollingTimeoutMillis;
            uint64_t poll = maxpoll;
            if (sub->has_long_polling_timeout && sub->long_polling_timeout.seconds >= 0 &&
                sub->long_polling_timeout.nanos >= 0) {
                uint64_t want = (uint64_t)sub->long_polling_timeout.seconds * 1000u +
                                (uint64_t)sub->long_polling_timeout.nanos / 1000000u;
                poll = want < maxpoll ? want : maxpoll;
            }
            sub->has_fifo = true;
            sub->fifo = g->fifo;
            sub->has_receive_batch_size = true;
            sub->receive_batch_size = 32;
            sub->has_long_polling_timeout = true;
            br_msg_duration(&sub->long_polling_timeout, poll);
        }
    }
    s->has_metric = true;
    pb_release(apache_rocketmq_v2_Metric_fields, &s->metric);
    memset(&s->metric, 0, sizeof(s->metric));
}

/* Answers a Settings command: s merged with the server's values. */
static void br_msg_settings_reply(br_server_t *srv, rpc_call_t *call,
                                  apache_rocketmq_v2_TelemetryCommand *cmd, const br_group_t *g)
{
    br_msg_merge_settings(srv, &cmd->command.settings, g);
    /* The reply reuses the decoded command: its status is ours and
     * carries no heap string, so the caller's pb_release stays correct. */
    pb_release(apache_rocketmq_v2_Status_fields, &cmd->status);
    cmd->has_status = true;
    cmd->status.code = apache_rocketmq_v2_Code_OK;
    cmd->status.message = NULL;
    uint8_t *buf;
    size_t blen;
    if (br_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, cmd, &buf, &blen) == MQ_OK) {
        rpc_call_write(call, buf, blen);
        free(buf);
    }
}

typedef struct br_msg_settings_job {
    br_server_t *srv;
    rpc_call_t *call;
    uint8_t *msg;
    size_t len;
} br_msg_settings_job_t;

/* A consumer's settings: its group's record (blocking on a cache miss)
 * decides the retry policy and ordering. @locality srv->slow */
static void br_msg_settings_task(void *arg)
{
    br_msg_settings_job_t *job = arg;
    apache_rocketmq_v2_TelemetryCommand cmd = apache_rocketmq_v2_TelemetryCommand_init_zero;
    if (br_pb_decode(apache_rocketmq_v2_TelemetryCommand_fields, job->msg, job->len, &cmd, NULL,
                     0) == MQ_OK) {
        apache_rocketmq_v2_Settings *s = &cmd.command.settings;
        const char *name = "";
        if (s->which_pub_sub == apache_rocketmq_v2_Settings_subscription_tag &&
            s->pub_sub.subscription.has_group) {
            name = br_pb_str(s->pub_sub.subscription.group.name);
        }
        br_group_t g;
        if (br_group_name_valid(name)) {
            mq_err_t err = job->srv->conf->autoCreateSubscriptionGroup
                               ? br_groups_ensure(job->srv->groups, name, &g)
                               : br_groups_get(job->srv->groups, name, &g);
            if (err != MQ_OK) {
                /* Receives will refuse the group; the client still needs
                 * complete settings to start. */
                br_group_default(name, &g);
            }
        } else {
            br_group_default("", &g);
        }
        br_msg_settings_reply(job->srv, job->call, &cmd, &g);
        pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &cmd);
    }
    rpc_call_unref(job->call);
    free(job->msg);
    free(job);
}

static void br_msg_telemetry_on_message(rpc_call_t *call, const uint8_t *msg, size_t len, void *arg)
{
    br_server_t *srv = arg;
    if (!msg) {
        /* The client half-closed: end our side too. */
        rpc_call_finish(call, RPC_OK, NULL);
        return;
    }
    apache_rocketmq_v2_TelemetryCommand cmd = apache_rocketmq_v2_TelemetryCommand_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_TelemetryCommand_fields, msg, len, &cmd, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    const char *client = rpc_call_header(call, "x-mq-client-id");
    if (!client || !*client) {
        pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &cmd);
        apache_rocketmq_v2_TelemetryCommand out = apache_rocketmq_v2_TelemetryCommand_init_zero;
        out.has_status = true;
        out.status.code = apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED;
        out.status.message = "x-mq-client-id header is required";
        uint8_t *buf;
        size_t blen;
        if (br_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, &out, &buf, &blen) == MQ_OK) {
            rpc_call_write(call, buf, blen);
            free(buf);
        }
        rpc_call_finish(call, RPC_OK, NULL);
        return;
    }
    if (cmd.which_command == apache_rocketmq_v2_TelemetryCommand_settings_tag) {
        apache_rocketmq_v2_Settings *s = &cmd.command.settings;
        MQ_LOG_DEBUG("client settings client=%s type=%d", client,
                     s->has_client_type ? (int)s->client_type : 0);
        bool consumer =
            s->has_client_type && (s->client_type == apache_rocketmq_v2_ClientType_PUSH_CONSUMER ||
                                   s->client_type == apache_rocketmq_v2_ClientType_SIMPLE_CONSUMER);
        if (consumer) {
            br_msg_settings_job_t *job = mq_calloc(1, sizeof(*job));
            job->srv = srv;
            job->call = call;
            job->msg = mq_malloc(len ? len : 1);
            memcpy(job->msg, msg, len);
            job->len = len;
            rpc_call_ref(call);
            mq_executor_submit(srv->slow, mq_mix64((uintptr_t)job), br_msg_settings_task, job);
        } else {
            br_msg_settings_reply(srv, call, &cmd, NULL);
        }
    }
    /* Thread stack traces and verify results need no answer. */
    pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &cmd);
}

mq_err_t br_msg_register(br_server_t *srv)
{
    const rpc_method_t methods[] = {
        {BR_MSG_SVC "QueryRoute", RPC_KIND_UNARY, br_msg_route_on_call, NULL, NULL, srv},
        {BR_MSG_SVC "Heartbeat", RPC_KIND_UNARY, br_msg_heartbeat_on_call, NULL, NULL, srv},
        {BR_MSG_SVC "SendMessage", RPC_KIND_UNARY, br_send_on_call, NULL, NULL, srv},
        {BR_MSG_SVC "NotifyClientTermination", RPC_KIND_UNARY, br_msg_notify_on_call, NULL, NULL,
         srv},
        {BR_MSG_SVC "Telemetry", RPC_KIND_BIDI, br_msg_telemetry_on_call,
         br_msg_telemetry_on_message, NULL, srv},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        mq_err_t err = rpc_server_add_method(srv->rpc, &methods[i]);
        if (err != MQ_OK) {
            return err;
        }
    }
    return br_recv_register(srv);
}
