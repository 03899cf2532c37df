/*
 * br_recv_dlq: storing a message into its group's dead-letter queue,
 * %DLQ%<group> (RocketMQ's name), a MIXED topic with one queue created on
 * first use. Called when a message used up its delivery attempts (a pop
 * found it; br_recv.c) and for ForwardMessageToDeadLetterQueue
 * (br_recv_ack.c).
 *
 * The stored bytes are the original Message followed by an encoded
 * override (br_deliver_encode_overrides): topic = the DLQ topic and
 * system_properties.dead_letter_queue = {original topic, message id}, so a
 * consumer of the DLQ sees where each message came from. They go through
 * the same path as SendMessage: appended here when this broker owns the
 * DLQ's queue, else sent to its owner as a SendMessage with the header
 * x-lmq-forward-queue (the owner stores it as is), retried every
 * BR_RECV_RETRY_MS across a handover until forwardTimeoutMs.
 *
 * Threads: the topic lookup (blocking on a miss) on srv->slow; appends and
 * forwards from any thread; completions on the ledger client's or the rpc
 * client's thread; retries on srv->ex under the job's key.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_deliver.h"
#include "br_pb.h"
#include "br_record.h"
#include "br_recv_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

#define BR_DLQ_FWD_QUEUE_HEADER "x-lmq-forward-queue"

typedef struct br_dlq_job {
    br_server_t *srv;
    char dlq[BR_TOPIC_NAME_MAX + 1];
    uint8_t *msg; /* original Message + override */
    size_t msg_len;
    uint8_t *record; /* what the log stores */
    size_t record_len;
    bool have_topic;
    uint64_t deadline_ms;
    uint64_t key;
    br_dlq_done_cb cb;
    void *arg;
} br_dlq_job_t;

static void br_dlq_dispatch(br_dlq_job_t *job);
static void br_dlq_topic_task(void *arg);

/* "%DLQ%<group>" into out; false when the name would be too long for a
 * topic. */
static bool br_dlq_topic(const char *group, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%%DLQ%%%s", group);
    return n > 0 && (size_t)n < cap && (size_t)n <= BR_TOPIC_NAME_MAX && br_topic_name_valid(out);
}

static void br_dlq_finish(br_dlq_job_t *job, mq_err_t err)
{
    br_server_t *srv = job->srv;
    job->cb(err, job->arg);
    free(job->msg);
    free(job->record);
    free(job);
    br_recv_op_end(srv);
}

static void br_dlq_retry_task(void *arg)
{
    br_dlq_job_t *job = arg;
    if (job->have_topic) {
        br_dlq_dispatch(job);
    } else {
        mq_executor_submit(job->srv->slow, job->key, br_dlq_topic_task, job);
    }
}

static void br_dlq_retry(br_dlq_job_t *job, mq_err_t err)
{
    if (mq_now_ms() + BR_RECV_RETRY_MS >= job->deadline_ms ||
        atomic_load(&job->srv->recv->stopping)) {
        br_dlq_finish(job, err);
        return;
    }
    mq_executor_schedule(job->srv->ex, job->key, BR_RECV_RETRY_MS, br_dlq_retry_task, job);
}

static void br_dlq_appended(mq_err_t err, int64_t offset, void *arg)
{
    br_dlq_job_t *job = arg;
    if (err == MQ_OK) {
        MQ_LOG_DEBUG("stored in the dead-letter queue topic=%s offset=%lld", job->dlq,
                     (long long)offset);
        br_recv_notify(job->srv, job->dlq, -1);
        br_dlq_finish(job, MQ_OK);
    } else if (err == MQ_EFENCED || err == MQ_ECLOSED || err == MQ_ENOTOWNER) {
        br_dlq_retry(job, err);
    } else {
        br_dlq_finish(job, err);
    }
}

static void br_dlq_forwarded(rpc_status_t status, const char *details, const uint8_t *resp,
                             size_t len, void *arg)
{
    br_dlq_job_t *job = arg;
    if (status != RPC_OK) {
        MQ_LOG_DEBUG("dead-letter forward failed topic=%s status=%s details=%s", job->dlq,
                     rpc_status_name(status), details ? details : "");
        br_dlq_retry(job, MQ_ECONN);
        return;
    }
    apache_rocketmq_v2_SendMessageResponse r = apache_rocketmq_v2_SendMessageResponse_init_zero;
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR;
    if (br_pb_decode(apache_rocketmq_v2_SendMessageResponse_fields, resp, len, &r, NULL, 0) ==
        MQ_OK) {
        if (r.entries_count == 1 && r.entries[0].has_status) {
            code = r.entries[0].status.code;
        } else if (r.has_status) {
            code = r.status.code;
        }
        pb_release(apache_rocketmq_v2_SendMessageResponse_fields, &r);
    }
    if (code == apache_rocketmq_v2_Code_OK) {
        br_dlq_finish(job, MQ_OK);
    } else if (br_status_retriable(code)) {
        br_dlq_retry(job, MQ_EAGAIN);
    } else {
        MQ_LOG_WARN("the dead-letter queue's owner refused a message topic=%s code=%d", job->dlq,
                    (int)code);
        br_dlq_finish(job, MQ_EBADREQ);
    }
}

static void br_dlq_forward(br_dlq_job_t *job, const char *endpoint)
{
    br_server_t *srv = job->srv;
    rpc_channel_t *ch = br_server_peer(srv, endpoint);
    if (!ch) {
        br_dlq_retry(job, MQ_ECONN);
        return;
    }
    /* SendMessageRequest { messages = 1: the Message bytes }. */
    size_t cap = job->msg_len + 16;
    uint8_t *buf = mq_malloc(cap);
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode_tag(&os, PB_WT_STRING, 1) || !pb_encode_string(&os, job->msg, job->msg_len)) {
        free(buf);
        br_dlq_finish(job, MQ_EPROTO);
        return;
    }
    char client[BR_ID_MAX + 16];
    snprintf(client, sizeof(client), "lmq-broker-%s", srv->id);
    rpc_md_t md[] = {{"x-mq-client-id", client}, {BR_DLQ_FWD_QUEUE_HEADER, "0"}};
    uint64_t now = mq_now_ms();
    uint32_t timeout = job->deadline_ms > now ? (uint32_t)(job->deadline_ms - now) : 1;
    mq_err_t err = rpc_channel_unary(ch, BR_RECV_SVC "SendMessage", md, 2, buf, os.bytes_written,
                                     timeout, br_dlq_forwarded, job);
    free(buf);
    if (err != MQ_OK) {
        br_dlq_retry(job, err);
    }
}

/* Appends here or forwards to the owner of the DLQ's queue 0. Any thread. */
static void br_dlq_dispatch(br_dlq_job_t *job)
{
    br_server_t *srv = job->srv;
    br_queue_t *q = br_queue_get(srv, job->dlq, 0);
    if (q) {
        mq_err_t err = br_mlog_append(q->ml, job->record, job->record_len, br_dlq_appended, job);
        if (err == MQ_OK) {
            __atomic_store_n(&q->last_store_ms, mq_wall_ms(), __ATOMIC_RELAXED);
        }
        br_queue_put(srv, q);
        if (err == MQ_EFENCED || err == MQ_ECLOSED) {
            br_dlq_retry(job, err);
        } else if (err != MQ_OK) {
            br_dlq_finish(job, err);
        }
        return;
    }
    br_broker_info_t owner;
    bool self = false;
    if (br_cluster_owner(srv->cluster, job->dlq, 0, &owner, &self) == MQ_OK && !self) {
        br_dlq_forward(job, owner.endpoint);
        return;
    }
    br_dlq_retry(job, MQ_ENOTOWNER);
}

/* The DLQ topic, created when missing. @locality srv->slow */
static void br_dlq_topic_task(void *arg)
{
    br_dlq_job_t *job = arg;
    br_server_t *srv = job->srv;
    br_topic_t t;
    mq_err_t err = br_topics_get(srv->topics, job->dlq, &t);
    if (err == MQ_ENOTFOUND) {
        br_topic_t want;
        memset(&want, 0, sizeof(want));
        snprintf(want.name, sizeof(want.name), "%s", job->dlq);
        want.queues = 1;
        want.perm = BR_PERM_READ | BR_PERM_WRITE;
        want.type = BR_MSG_TYPE_MIXED;
        want.ctime_ms = mq_wall_ms();
        err = br_topics_ensure(srv->topics, &want, &t);
        if (err == MQ_OK) {
            MQ_LOG_INFO("dead-letter topic created topic=%s", job->dlq);
            br_cluster_kick(srv->cluster);
        }
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot get the dead-letter topic topic=%s err=%s", job->dlq, mq_err_str(err));
        br_dlq_retry(job, err);
        return;
    }
    job->have_topic = true;
    br_dlq_dispatch(job);
}

void br_dlq_store(br_server_t *srv, const char *group, const char *topic, const uint8_t *msg,
                  size_t len, br_dlq_done_cb cb, void *arg)
{
    char dlq[BR_TOPIC_NAME_MAX + 2];
    br_msg_view_t v;
    if (!br_dlq_topic(group, dlq, sizeof(dlq))) {
        MQ_LOG_WARN("group name too long for a dead-letter topic group=%s", group);
        cb(MQ_EINVAL, arg);
        return;
    }
    if (br_deliver_scan(msg, len, &v) != MQ_OK) {
        cb(MQ_ECORRUPT, arg);
        return;
    }
    char id[129];
    size_t idl = v.message_id.len < sizeof(id) ? v.message_id.len : sizeof(id) - 1;
    if (idl > 0) {
        memcpy(id, v.message_id.p, idl);
    }
    id[idl] = '\0';
    br_deliver_fields_t f;
    memset(&f, 0, sizeof(f));
    f.topic = dlq;
    f.dlq_topic = topic;
    f.dlq_message_id = id;
    size_t olen;
    uint8_t *over = br_deliver_encode_overrides(&f, &olen);
    if (!over) {
        cb(MQ_EPROTO, arg);
        return;
    }
    br_dlq_job_t *job = mq_calloc(1, sizeof(*job));
    job->srv = srv;
    snprintf(job->dlq, sizeof(job->dlq), "%s", dlq);
    job->msg_len = len + olen;
    job->msg = mq_malloc(job->msg_len);
    memcpy(job->msg, msg, len);
    memcpy(job->msg + len, over, olen);
    free(over);
    job->record = br_record_make(job->msg, job->msg_len, mq_wall_ms(), &job->record_len);
    job->deadline_ms = mq_now_ms() + (uint64_t)srv->conf->forwardTimeoutMs;
    job->key = mq_mix64((uintptr_t)job);
    job->cb = cb;
    job->arg = arg;
    br_recv_op_begin(srv);
    mq_executor_submit(srv->slow, job->key, br_dlq_topic_task, job);
}
