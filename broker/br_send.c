/*
 * br_send: SendMessage. Validates every message with RocketMQ's codes,
 * picks its queue (a FIFO message by its message group, so a group always
 * lands on the same queue; a normal one on a queue this broker owns, round
 * robin), appends it to the queue's managed log, and answers once every
 * message is durable or failed, with one SendResultEntry per message.
 *
 * A message whose queue is owned by another broker is forwarded to it: one
 * SendMessage per target queue, carrying the producer's message bytes
 * unchanged and the header x-lmq-forward-queue naming the queue (the owner
 * then neither chooses nor forwards again). While a queue has no owner
 * (handover) or its owner refuses (it is just giving it up), the message is
 * retried every BR_SEND_RETRY_MS until forwardTimeoutMs, so the client sees
 * no error across a handover that completes in time.
 *
 * The stored record is the producer's encoded Message behind a small header
 * (br_record.h): one copy from the request into the log, no re-encoding.
 *
 * Threads: decoding and validation on the gRPC thread; dispatch on the queue
 * executor; completions on the ledger client's loop or the rpc client's
 * thread; the last one answers (rpc calls are thread-safe).
 */
#include <ctype.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_pb.h"
#include "br_record.h"
#include "br_server_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

#define BR_SEND_RETRY_MS 50
#define BR_SEND_MAX_MSGS 1024
#define BR_SEND_MAX_PROPS 128
#define BR_SEND_MAX_PROPS_BYTES (16 * 1024)
#define BR_SEND_FWD_HEADER "x-lmq-forward-queue"
#define BR_SEND_METHOD "/apache.rocketmq.v2.MessagingService/SendMessage"

typedef struct br_send_msg {
    apache_rocketmq_v2_Code code;
    const char *why; /* static text */
    char *message_id;
    char *group;
    br_msg_type_t type;
    char topic[BR_TOPIC_NAME_MAX + 1];
    uint8_t *record; /* what the log stores */
    size_t record_len;
    size_t body_len;
    int queue;
    int64_t offset;
    bool done;
} br_send_msg_t;

typedef struct br_send_ctx {
    br_server_t *srv;
    rpc_call_t *call;
    char client_id[128];
    int forced_queue; /* -1, or the queue a forwarding broker named */
    /* A message of this request went to an executor from the gRPC thread:
     * the ones after it follow it there, so a message group's order within
     * one request holds. Touched on the gRPC thread only. */
    bool deferred;
    uint64_t deadline_ms;
    size_t n;
    br_send_msg_t *msgs;
    atomic_int pending; /* dispatch + one per message in flight */
    uint64_t key;
} br_send_ctx_t;

/* --- decoding and validation -------------------------------------------------------- */

typedef struct br_send_decode {
    br_server_t *srv;
    br_send_msg_t *msgs;
    size_t n, cap;
    bool too_many;
} br_send_decode_t;

static bool br_send_has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool br_send_blank(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (!isspace(*p)) {
            return false;
        }
    }
    return true;
}

/* Property names the broker itself uses (RocketMQ's MessageConst): a
 * producer may not set them as user properties. */
static const char *const br_send_reserved[] = {"KEYS",
                                               "TAGS",
                                               "WAIT",
                                               "DELAY",
                                               "RETRY_TOPIC",
                                               "REAL_TOPIC",
                                               "REAL_QID",
                                               "TRAN_MSG",
                                               "PGROUP",
                                               "MIN_OFFSET",
                                               "MAX_OFFSET",
                                               "BUYER_ID",
                                               "ORIGIN_MESSAGE_ID",
                                               "TRANSFER_FLAG",
                                               "CORRECTION_FLAG",
                                               "MQ2_FLAG",
                                               "RECONSUME_TIME",
                                               "MSG_REGION",
                                               "TRACE_ON",
                                               "UNIQ_KEY",
                                               "MAX_RECONSUME_TIMES",
                                               "CONSUME_START_TIME",
                                               "POP_CK",
                                               "POP_CK_OFFSET",
                                               "1ST_POP_TIME",
                                               "TIMER_DELIVER_MS",
                                               "TIMER_DELAY_SEC",
                                               "TIMER_DELAY_MS",
                                               "__STARTDELIVERTIME",
                                               "__SHARDINGKEY",
                                               "CHECK_IMMUNITY_TIME_IN_SECONDS",
                                               "SHARDING_KEY",
                                               "__TRANSACTIONID__",
                                               "INNER_NUM",
                                               "INNER_MULTI_DISPATCH",
                                               "INNER_MULTI_QUEUE_OFFSET",
                                               NULL};

static bool br_send_reserved_key(const char *k)
{
    for (int i = 0; br_send_reserved[i]; i++) {
        if (strcmp(br_send_reserved[i], k) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks one decoded message; returns OK or the code (and *why). */
static apache_rocketmq_v2_Code br_send_validate(br_server_t *srv, apache_rocketmq_v2_Message *m,
                                                const br_pb_bytes_t *body, br_msg_type_t *type,
                                                const char **why)
{
    const char *topic = m->has_topic ? br_pb_str(m->topic.name) : "";
    if (!br_topic_name_valid(topic)) {
        *why = "topic name must match ^[%|a-zA-Z0-9_-]+$ and be 1..127 chars";
        return apache_rocketmq_v2_Code_ILLEGAL_TOPIC;
    }
    if (!body->seen || body->len == 0) {
        *why = "message body is empty";
        return apache_rocketmq_v2_Code_MESSAGE_BODY_EMPTY;
    }
    if (body->len > (size_t)srv->conf->maxMessageSize) {
        *why = "message body is larger than maxMessageSize";
        return apache_rocketmq_v2_Code_MESSAGE_BODY_TOO_LARGE;
    }
    apache_rocketmq_v2_SystemProperties *sp = &m->system_properties;
    if (!m->has_system_properties || !sp->message_id || !*sp->message_id ||
        strlen(sp->message_id) > 128 || br_send_has_ctl(sp->message_id)) {
        *why = "message id is missing or malformed";
        return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_ID;
    }
    if (sp->tag && (br_send_blank(sp->tag) || strchr(sp->tag, '|') || br_send_has_ctl(sp->tag) ||
                    strlen(sp->tag) > 255)) {
        *why = "tag must not be blank or contain '|' or control characters";
        return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_TAG;
    }
    for (pb_size_t i = 0; i < sp->keys_count; i++) {
        const char *k = br_pb_str(sp->keys[i]);
        if (br_send_blank(k) || br_send_has_ctl(k)) {
            *why = "keys must not be blank or contain control characters";
            return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_KEY;
        }
    }
    size_t pbytes = 0;
    if (m->user_properties_count > BR_SEND_MAX_PROPS) {
        *why = "more than 128 user properties";
        return apache_rocketmq_v2_Code_MESSAGE_PROPERTIES_TOO_LARGE;
    }
    for (pb_size_t i = 0; i < m->user_properties_count; i++) {
        const char *k = br_pb_str(m->user_properties[i].key);
        const char *v = br_pb_str(m->user_properties[i].value);
        if (!*k || br_send_blank(k) || br_send_has_ctl(k) || br_send_reserved_key(k)) {
            *why = "property key is blank, has control characters or is reserved";
            return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_PROPERTY_KEY;
        }
        pbytes += strlen(k) + strlen(v);
    }
    if (pbytes > BR_SEND_MAX_PROPS_BYTES) {
        *why = "user properties exceed 16 KiB";
        return apache_rocketmq_v2_Code_MESSAGE_PROPERTIES_TOO_LARGE;
    }
    const char *group = sp->message_group;
    br_msg_type_t t = (br_msg_type_t)sp->message_type;
    if (t == BR_MSG_TYPE_UNSPECIFIED) {
        t = group ? BR_MSG_TYPE_FIFO
                  : (sp->has_delivery_timestamp ? BR_MSG_TYPE_DELAY : BR_MSG_TYPE_NORMAL);
    }
    if (group && (strlen(group) == 0 || strlen(group) >= 64 || br_send_has_ctl(group))) {
        *why = "message group must be 1..63 chars without control characters";
        return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_GROUP;
    }
    if (t == BR_MSG_TYPE_FIFO && !group) {
        *why = "a FIFO message needs a message group";
        return apache_rocketmq_v2_Code_ILLEGAL_MESSAGE_GROUP;
    }
    if (t == BR_MSG_TYPE_NORMAL && group) {
        *why = "a NORMAL message cannot have a message group";
        return apache_rocketmq_v2_Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE;
    }
    if (t == BR_MSG_TYPE_DELAY || t == BR_MSG_TYPE_TRANSACTION) {
        *why = "delay and transaction messages are not supported yet";
        return apache_rocketmq_v2_Code_UNSUPPORTED;
    }
    if (t != BR_MSG_TYPE_NORMAL && t != BR_MSG_TYPE_FIFO) {
        *why = "unknown message type";
        return apache_rocketmq_v2_Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE;
    }
    *type = t;
    return apache_rocketmq_v2_Code_OK;
}

/* nanopb callback for each SendMessageRequest.messages element. */
static bool br_send_decode_msg(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    br_send_decode_t *d = *arg;
    const uint8_t *raw = stream->state;
    size_t raw_len = stream->bytes_left;
    if (d->n == BR_SEND_MAX_MSGS) {
        d->too_many = true;
        return pb_read(stream, NULL, raw_len);
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 4;
        d->msgs = mq_realloc(d->msgs, d->cap * sizeof(*d->msgs));
    }
    br_send_msg_t *sm = &d->msgs[d->n++];
    memset(sm, 0, sizeof(*sm));
    sm->queue = -1;
    sm->offset = -1;

    br_pb_bytes_t body = {0};
    apache_rocketmq_v2_Message m = apache_rocketmq_v2_Message_init_zero;
    m.body.funcs.decode = br_pb_decode_bytes_ref;
    m.body.arg = &body;
    pb_istream_t sub = pb_istream_from_buffer(raw, raw_len);
    if (!pb_decode(&sub, apache_rocketmq_v2_Message_fields, &m)) {
        pb_release(apache_rocketmq_v2_Message_fields, &m);
        return false;
    }
    const char *why = NULL;
    sm->code = br_send_validate(d->srv, &m, &body, &sm->type, &why);
    sm->why = why;
    if (m.has_system_properties && m.system_properties.message_id) {
        sm->message_id = mq_strdup(m.system_properties.message_id);
    }
    if (sm->code == apache_rocketmq_v2_Code_OK) {
        snprintf(sm->topic, sizeof(sm->topic), "%s", m.topic.name);
        if (m.system_properties.message_group) {
            sm->group = mq_strdup(m.system_properties.message_group);
        }
        sm->body_len = body.len;
        sm->record = br_record_make(raw, raw_len, mq_wall_ms(), &sm->record_len);
    }
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    return pb_read(stream, NULL, raw_len);
}

/* --- answering ------------------------------------------------------------------------ */

static void br_send_ctx_free(br_send_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n; i++) {
        free(ctx->msgs[i].message_id);
        free(ctx->msgs[i].group);
        free(ctx->msgs[i].record);
    }
    free(ctx->msgs);
    rpc_call_unref(ctx->call);
    atomic_fetch_sub(&ctx->srv->sends, 1);
    free(ctx);
}

static void br_send_answer(br_send_ctx_t *ctx)
{
    apache_rocketmq_v2_SendMessageResponse resp = apache_rocketmq_v2_SendMessageResponse_init_zero;
    apache_rocketmq_v2_SendResultEntry *entries = mq_calloc(ctx->n ? ctx->n : 1, sizeof(*entries));
    resp.has_status = true;
    resp.status.code = apache_rocketmq_v2_Code_OK;
    resp.status.message = "OK";
    if (ctx->n == 0) {
        resp.status.code = apache_rocketmq_v2_Code_BAD_REQUEST;
        resp.status.message = "no message to send";
    }
    for (size_t i = 0; i < ctx->n; i++) {
        br_send_msg_t *sm = &ctx->msgs[i];
        apache_rocketmq_v2_SendResultEntry *e = &entries[i];
        e->has_status = true;
        e->status.code = sm->code;
        e->status.message = (char *)(sm->code == apache_rocketmq_v2_Code_OK ? "OK" : sm->why);
        e->message_id = sm->message_id;
        e->offset = sm->offset;
        e->queue_id = sm->queue;
        if (sm->code != apache_rocketmq_v2_Code_OK &&
            resp.status.code == apache_rocketmq_v2_Code_OK) {
            resp.status.code = sm->code;
            resp.status.message = e->status.message;
        }
    }
    resp.entries_count = (pb_size_t)ctx->n;
    resp.entries = entries;
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_SendMessageResponse_fields, &resp, &buf, &len) == MQ_OK) {
        rpc_call_reply(ctx->call, buf, len);
        free(buf);
    } else {
        rpc_call_finish(ctx->call, RPC_INTERNAL, "cannot encode the response");
    }
    free(entries);
}

static void br_send_unpend(br_send_ctx_t *ctx)
{
    if (atomic_fetch_sub(&ctx->pending, 1) == 1) {
        br_send_answer(ctx);
        br_send_ctx_free(ctx);
    }
}

/* --- dispatch ------------------------------------------------------------------------- */

static void br_send_dispatch_one(br_send_ctx_t *ctx, size_t i, bool may_block);
static void br_send_route_one(br_send_ctx_t *ctx, size_t i, bool may_block);

typedef struct br_send_retry {
    br_send_ctx_t *ctx;
    size_t idx;
} br_send_retry_t;

static void br_send_retry_task(void *arg)
{
    br_send_retry_t *r = arg;
    br_send_dispatch_one(r->ctx, r->idx, true);
    free(r);
}

static void br_send_later_task(void *arg)
{
    br_send_retry_t *r = arg;
    br_send_route_one(r->ctx, r->idx, true);
    free(r);
}

/* Routes message i on an executor, where ZooKeeper may be asked: the gRPC
 * thread found its topic or its owner missing from memory (or an earlier
 * message of the request). @thread gRPC */
static void br_send_later(br_send_ctx_t *ctx, size_t i)
{
    ctx->deferred = true;
    br_send_retry_t *r = mq_malloc(sizeof(*r));
    r->ctx = ctx;
    r->idx = i;
    mq_executor_submit(ctx->srv->ex, ctx->key, br_send_later_task, r);
}

/* Tries message i again later, or fails it once the deadline passed. The
 * message's pending count is kept across the retry. */
static void br_send_retry(br_send_ctx_t *ctx, size_t i, apache_rocketmq_v2_Code code,
                          const char *why)
{
    br_send_msg_t *sm = &ctx->msgs[i];
    if (mq_now_ms() + BR_SEND_RETRY_MS >= ctx->deadline_ms || ctx->srv->stopping) {
        sm->code = code;
        sm->why = why;
        br_send_unpend(ctx);
        return;
    }
    br_send_retry_t *r = mq_malloc(sizeof(*r));
    r->ctx = ctx;
    r->idx = i;
    mq_executor_schedule(ctx->srv->ex, ctx->key, BR_SEND_RETRY_MS, br_send_retry_task, r);
}

typedef struct br_send_op {
    br_send_ctx_t *ctx;
    size_t idx;
} br_send_op_t;

static void br_send_appended(mq_err_t err, int64_t offset, void *arg)
{
    br_send_op_t *op = arg;
    br_send_ctx_t *ctx = op->ctx;
    size_t i = op->idx;
    free(op);
    br_send_msg_t *sm = &ctx->msgs[i];
    if (err == MQ_OK) {
        sm->offset = offset;
        sm->code = apache_rocketmq_v2_Code_OK;
        atomic_fetch_add(&ctx->srv->msgs_in, 1);
        atomic_fetch_add(&ctx->srv->bytes_in, sm->body_len);
        /* Long-polling receives of the topic may now find it. */
        br_recv_notify(ctx->srv, sm->topic, sm->queue);
        br_send_unpend(ctx);
        return;
    }
    if (err == MQ_EFENCED || err == MQ_ECLOSED || err == MQ_ENOTOWNER) {
        /* The queue is moving: the next owner will take it. */
        br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                      "the queue is changing owner; retry");
        return;
    }
    MQ_LOG_WARN("append failed topic=%s queue=%d err=%s", sm->topic, sm->queue, mq_err_str(err));
    sm->code = br_status_code(err);
    sm->why = mq_err_str(err);
    br_send_unpend(ctx);
}

typedef struct br_send_fwd {
    br_send_ctx_t *ctx;
    size_t idx;
} br_send_fwd_t;

static void br_send_forwarded(rpc_status_t status, const char *details, const uint8_t *resp,
                              size_t len, void *arg)
{
    br_send_fwd_t *f = arg;
    br_send_ctx_t *ctx = f->ctx;
    size_t i = f->idx;
    free(f);
    br_send_msg_t *sm = &ctx->msgs[i];
    if (status != RPC_OK) {
        MQ_LOG_DEBUG("forward failed topic=%s queue=%d status=%s details=%s", sm->topic, sm->queue,
                     rpc_status_name(status), details ? details : "");
        br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                      "the queue's owner is unreachable");
        return;
    }
    apache_rocketmq_v2_SendMessageResponse r = apache_rocketmq_v2_SendMessageResponse_init_zero;
    if (br_pb_decode(apache_rocketmq_v2_SendMessageResponse_fields, resp, len, &r, NULL, 0) !=
            MQ_OK ||
        r.entries_count != 1 || !r.entries[0].has_status) {
        if (r.entries_count) {
            pb_release(apache_rocketmq_v2_SendMessageResponse_fields, &r);
        }
        sm->code = apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR;
        sm->why = "the queue's owner gave a malformed answer";
        br_send_unpend(ctx);
        return;
    }
    apache_rocketmq_v2_Code code = r.entries[0].status.code;
    int64_t offset = r.entries[0].offset;
    pb_release(apache_rocketmq_v2_SendMessageResponse_fields, &r);
    if (code == apache_rocketmq_v2_Code_OK) {
        sm->code = code;
        sm->offset = offset;
        br_send_unpend(ctx);
    } else if (br_status_retriable(code)) {
        br_send_retry(ctx, i, code, "the queue's owner could not store the message");
    } else {
        sm->code = code;
        sm->why = "refused by the queue's owner";
        br_send_unpend(ctx);
    }
}

static bool br_send_encode_raw(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const br_send_msg_t *sm = *arg;
    if (!pb_encode_tag_for_field(stream, field)) {
        return false;
    }
    /* The producer's Message bytes, after our record header. */
    return pb_encode_string(stream, sm->record + BR_RECORD_HEADER,
                            sm->record_len - BR_RECORD_HEADER);
}

static void br_send_forward(br_send_ctx_t *ctx, size_t i, const char *endpoint)
{
    br_send_msg_t *sm = &ctx->msgs[i];
    rpc_channel_t *ch = br_server_peer(ctx->srv, endpoint);
    apache_rocketmq_v2_SendMessageRequest req = apache_rocketmq_v2_SendMessageRequest_init_zero;
    req.messages.funcs.encode = br_send_encode_raw;
    req.messages.arg = sm;
    uint8_t *buf;
    size_t len;
    if (!ch ||
        br_pb_encode(apache_rocketmq_v2_SendMessageRequest_fields, &req, &buf, &len) != MQ_OK) {
        br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                      "cannot reach the queue's owner");
        return;
    }
    char qbuf[16];
    snprintf(qbuf, sizeof(qbuf), "%d", sm->queue);
    rpc_md_t md[] = {{"x-mq-client-id", ctx->client_id}, {BR_SEND_FWD_HEADER, qbuf}};
    uint64_t now = mq_now_ms();
    uint32_t timeout = ctx->deadline_ms > now ? (uint32_t)(ctx->deadline_ms - now) : 1;
    br_send_fwd_t *f = mq_malloc(sizeof(*f));
    f->ctx = ctx;
    f->idx = i;
    mq_err_t err =
        rpc_channel_unary(ch, BR_SEND_METHOD, md, 2, buf, len, timeout, br_send_forwarded, f);
    free(buf);
    if (err != MQ_OK) {
        free(f);
        br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                      "cannot reach the queue's owner");
    }
}

/* Appends message i to its queue here, forwards it to the owner, or retries
 * while the queue has none. Without may_block (the gRPC thread), a queue not
 * served here goes to an executor first (the owner may have to be read). */
static void br_send_dispatch_one(br_send_ctx_t *ctx, size_t i, bool may_block)
{
    br_server_t *srv = ctx->srv;
    br_send_msg_t *sm = &ctx->msgs[i];
    br_queue_t *q = br_queue_get(srv, sm->topic, sm->queue);
    if (q) {
        br_send_op_t *op = mq_malloc(sizeof(*op));
        op->ctx = ctx;
        op->idx = i;
        mq_err_t err = br_mlog_append(q->ml, sm->record, sm->record_len, br_send_appended, op);
        if (err == MQ_OK) {
            __atomic_store_n(&q->last_store_ms, mq_wall_ms(), __ATOMIC_RELAXED);
        }
        br_queue_put(srv, q);
        if (err != MQ_OK) {
            free(op);
            if (err == MQ_EFENCED || err == MQ_ECLOSED) {
                br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                              "the queue is changing owner; retry");
            } else {
                sm->code = br_status_code(err);
                sm->why = mq_err_str(err);
                br_send_unpend(ctx);
            }
        }
        return;
    }
    if (!may_block) {
        br_send_later(ctx, i);
        return;
    }
    br_broker_info_t owner;
    bool self = false;
    if (ctx->forced_queue < 0 &&
        br_cluster_owner(srv->cluster, sm->topic, sm->queue, &owner, &self) == MQ_OK && !self) {
        br_send_forward(ctx, i, owner.endpoint);
        return;
    }
    /* Nobody serves it yet (handover), or we own it but are still opening. */
    br_send_retry(ctx, i, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                  "the queue has no owner yet; retry");
}

static uint32_t br_send_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (const char *p = s; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    return h;
}

/* Resolves message i's topic and queue, then dispatches it; the caller holds
 * a pending count for it. may_block as in br_send_dispatch_one; without it a
 * topic not in memory sends the message to an executor. */
static void br_send_route_one(br_send_ctx_t *ctx, size_t i, bool may_block)
{
    br_server_t *srv = ctx->srv;
    br_send_msg_t *sm = &ctx->msgs[i];
    br_topic_t t;
    mq_err_t err = may_block ? br_server_topic(srv, sm->topic, srv->conf->autoCreateTopicEnable, &t)
                             : br_topics_peek(srv->topics, sm->topic, &t);
    if (!may_block && err != MQ_OK) {
        br_send_later(ctx, i);
        return;
    }
    if (err != MQ_OK) {
        sm->code =
            err == MQ_ENOTFOUND ? apache_rocketmq_v2_Code_TOPIC_NOT_FOUND : br_status_code(err);
        sm->why = err == MQ_ENOTFOUND ? "topic does not exist" : mq_err_str(err);
        br_send_unpend(ctx);
        return;
    }
    if (!(t.perm & BR_PERM_WRITE)) {
        sm->code = apache_rocketmq_v2_Code_FORBIDDEN;
        sm->why = "topic is not writable";
        br_send_unpend(ctx);
        return;
    }
    if (!br_msg_type_accepts(t.type, sm->type)) {
        sm->code = apache_rocketmq_v2_Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE;
        sm->why = "the topic does not accept this message type";
        br_send_unpend(ctx);
        return;
    }
    if (ctx->forced_queue >= 0) {
        sm->queue = ctx->forced_queue < t.queues ? ctx->forced_queue : -1;
    } else if (sm->group) {
        sm->queue = (int)(br_send_hash(sm->group) % (uint32_t)t.queues);
    } else {
        int local[BR_TOPIC_MAX_QUEUES];
        int nl = br_queue_local(srv, t.name, local, BR_TOPIC_MAX_QUEUES);
        /* Sticky: every normal message of a time slice goes to the same
         * local queue, so they pack into few entries (fewer bookie adds
         * and fsyncs than spreading each message to its own entry). */
        uint64_t stick = (uint64_t)srv->conf->sendQueueStickyMicros * 1000u;
        uint64_t rr =
            stick ? mq_now_ns() / stick : __atomic_fetch_add(&srv->rr, 1, __ATOMIC_RELAXED);
        sm->queue = nl > 0 ? local[rr % (uint64_t)nl] : (int)(rr % (uint64_t)t.queues);
    }
    if (sm->queue < 0) {
        sm->code = apache_rocketmq_v2_Code_BAD_REQUEST;
        sm->why = "forwarded to a queue the topic does not have";
        br_send_unpend(ctx);
        return;
    }
    br_send_dispatch_one(ctx, i, may_block);
}

void br_send_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    br_send_decode_t d = {.srv = srv};
    apache_rocketmq_v2_SendMessageRequest r = apache_rocketmq_v2_SendMessageRequest_init_zero;
    r.messages.funcs.decode = br_send_decode_msg;
    r.messages.arg = &d;
    pb_istream_t is = pb_istream_from_buffer(req, len);
    bool ok = pb_decode(&is, apache_rocketmq_v2_SendMessageRequest_fields, &r);
    br_send_ctx_t *ctx = mq_calloc(1, sizeof(*ctx));
    atomic_fetch_add(&srv->sends, 1);
    ctx->srv = srv;
    ctx->call = call;
    ctx->msgs = d.msgs;
    ctx->n = d.n;
    rpc_call_ref(call);
    if (!ok) {
        char why[160];
        snprintf(why, sizeof(why), "undecodable SendMessageRequest: %s", PB_GET_ERROR(&is));
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        br_send_ctx_free(ctx);
        return;
    }
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        br_send_ctx_free(ctx);
        return;
    }
    const char *client = rpc_call_header(call, "x-mq-client-id");
    if (!client || !*client || d.too_many) {
        apache_rocketmq_v2_SendMessageResponse resp =
            apache_rocketmq_v2_SendMessageResponse_init_zero;
        resp.has_status = true;
        resp.status.code = d.too_many ? apache_rocketmq_v2_Code_BAD_REQUEST
                                      : apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED;
        resp.status.message = d.too_many ? "more than 1024 messages in one request"
                                         : "x-mq-client-id header is required";
        uint8_t *buf;
        size_t blen;
        if (br_pb_encode(apache_rocketmq_v2_SendMessageResponse_fields, &resp, &buf, &blen) ==
            MQ_OK) {
            rpc_call_reply(call, buf, blen);
            free(buf);
        }
        br_send_ctx_free(ctx);
        return;
    }
    snprintf(ctx->client_id, sizeof(ctx->client_id), "%s", client);
    const char *fwd = rpc_call_header(call, BR_SEND_FWD_HEADER);
    ctx->forced_queue = fwd ? atoi(fwd) : -1;
    uint64_t now = mq_now_ms();
    int64_t left = rpc_call_remaining_ms(call);
    uint64_t budget = (uint64_t)srv->conf->forwardTimeoutMs;
    if (left != INT64_MAX && left - 200 < (int64_t)budget) {
        budget = left > 400 ? (uint64_t)(left - 200) : 200;
    }
    ctx->deadline_ms = now + budget;
    ctx->key = mq_mix64((uintptr_t)ctx);
    /* Routed here on the gRPC thread: the common case (topic in memory, queue
     * served here) appends without a hop through an executor; the rest goes
     * to one (br_send_later). The extra count keeps ctx until the loop ends. */
    atomic_init(&ctx->pending, 1);
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->msgs[i].code == apache_rocketmq_v2_Code_OK) {
            atomic_fetch_add(&ctx->pending, 1);
            if (ctx->deferred) {
                br_send_later(ctx, i);
            } else {
                br_send_route_one(ctx, i, false);
            }
        }
    }
    br_send_unpend(ctx);
}
