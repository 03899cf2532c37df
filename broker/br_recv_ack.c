/*
 * br_recv_ack: AckMessage, ChangeInvisibleDuration and
 * ForwardMessageToDeadLetterQueue: everything a consumer does with a
 * receipt handle.
 *
 * A handle names (queue, offset, delivery attempt) of one topic and group
 * (br_handle_decode; anything else is INVALID_RECEIPT_HANDLE). The op runs
 * at the queue's owner, on the queue's executor key, against the group's
 * cursor:
 *  - ack: br_cursor_ack; a new ack is persisted as an ACK record and
 *    answered only once durable (an acknowledged ack survives kill -9);
 *    acking twice is OK.
 *  - change: br_cursor_change moves the deadline (0 allowed: visible again
 *    now) and a new handle is returned (same attempt, new deadline); on
 *    failure the original handle comes back, because the Go client
 *    replaces its handle with whatever it gets.
 *  - forward to DLQ (FIFO push consumers, after their local retries): the
 *    delivery is held invisible, the message is read and stored in
 *    %DLQ%<group> (br_recv_dlq.c), then acknowledged as above.
 * When another broker owns the queue, the op is forwarded to it with the
 * header x-lmq-forward-recv (the owner never forwards again); while the
 * queue has no owner (handover) or its owner answers a retriable code, it
 * is retried every BR_RECV_RETRY_MS until forwardTimeoutMs.
 *
 * AckMessage answers one status per entry, and at the top the common code
 * or MULTIPLE_RESULTS.
 *
 * Threads: decoding on the gRPC thread; topic and group lookups on
 * srv->slow, except for acks whose topic and group are in memory and whose
 * queues are all served here (then on the gRPC thread); cursor work on the
 * queue's key; completions on the ledger client's or the rpc client's
 * thread; the last one answers.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_pb.h"
#include "br_record.h"
#include "br_recv_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

typedef enum br_hop_kind { BR_HOP_ACK, BR_HOP_CHANGE, BR_HOP_DLQ } br_hop_kind_t;

typedef struct br_hop_entry {
    char *message_id;
    char *handle; /* as the client sent it */
    br_handle_t h;
    apache_rocketmq_v2_Code code;
    const char *why; /* static text */
    char new_handle[BR_HANDLE_MAX];
    uint8_t *msg; /* DLQ: the stored message, while it is being moved */
    size_t msg_len;
} br_hop_entry_t;

typedef struct br_hop_ctx {
    br_server_t *srv;
    rpc_call_t *call;
    br_hop_kind_t kind;
    char client_id[128];
    bool forwarded; /* came from another broker: handle locally only */
    char topic[BR_TOPIC_NAME_MAX + 1];
    char group[BR_GROUP_NAME_MAX + 1];
    br_group_t grp;
    uint64_t key;
    uint64_t deadline_ms;
    uint64_t invisible_ms; /* change */
    uint8_t *req;          /* the request (change, DLQ: forwarded as is) */
    size_t req_len;
    size_t n;
    br_hop_entry_t *e;
    atomic_int pending;          /* dispatch + one per entry in flight */
    apache_rocketmq_v2_Code top; /* the request's own error (an ack without entries) */
    const char *top_why;
} br_hop_ctx_t;

typedef struct br_hop_op {
    br_hop_ctx_t *ctx;
    size_t idx;
} br_hop_op_t;

static const char *const br_hop_methods[] = {
    BR_RECV_SVC "AckMessage",
    BR_RECV_SVC "ChangeInvisibleDuration",
    BR_RECV_SVC "ForwardMessageToDeadLetterQueue",
};

static void br_hop_dispatch(br_hop_ctx_t *ctx, size_t i);

/* --- answering --------------------------------------------------------------------------- */

static void br_hop_ctx_free(br_hop_ctx_t *ctx)
{
    br_server_t *srv = ctx->srv;
    for (size_t i = 0; i < ctx->n; i++) {
        free(ctx->e[i].message_id);
        free(ctx->e[i].handle);
        free(ctx->e[i].msg);
    }
    free(ctx->e);
    free(ctx->req);
    rpc_call_unref(ctx->call);
    free(ctx);
    br_recv_op_end(srv);
}

static void br_hop_answer(br_hop_ctx_t *ctx)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    mq_err_t err = MQ_EPROTO;
    if (ctx->kind == BR_HOP_ACK) {
        apache_rocketmq_v2_AckMessageResponse resp =
            apache_rocketmq_v2_AckMessageResponse_init_zero;
        apache_rocketmq_v2_AckMessageResultEntry *es = mq_calloc(ctx->n ? ctx->n : 1, sizeof(*es));
        resp.has_status = true;
        resp.status.code = ctx->top;
        resp.status.message =
            (char *)(ctx->top == apache_rocketmq_v2_Code_OK ? "OK" : ctx->top_why);
        for (size_t i = 0; i < ctx->n; i++) {
            br_hop_entry_t *e = &ctx->e[i];
            es[i].message_id = e->message_id;
            es[i].receipt_handle = e->handle;
            es[i].has_status = true;
            es[i].status.code = e->code;
            es[i].status.message = (char *)(e->code == apache_rocketmq_v2_Code_OK ? "OK" : e->why);
            if (i == 0) {
                resp.status = es[i].status;
            } else if (e->code != resp.status.code) {
                resp.status.code = apache_rocketmq_v2_Code_MULTIPLE_RESULTS;
                resp.status.message = "entries have different results";
            }
        }
        resp.entries_count = (pb_size_t)ctx->n;
        resp.entries = es;
        err = br_pb_encode(apache_rocketmq_v2_AckMessageResponse_fields, &resp, &buf, &len);
        free(es);
    } else if (ctx->kind == BR_HOP_CHANGE) {
        br_hop_entry_t *e = &ctx->e[0];
        apache_rocketmq_v2_ChangeInvisibleDurationResponse resp =
            apache_rocketmq_v2_ChangeInvisibleDurationResponse_init_zero;
        resp.has_status = true;
        resp.status.code = e->code;
        resp.status.message = (char *)(e->code == apache_rocketmq_v2_Code_OK ? "OK" : e->why);
        /* Never an empty handle: the new one, or the one the client has. */
        resp.receipt_handle = e->new_handle[0] ? e->new_handle : e->handle;
        err = br_pb_encode(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, &resp, &buf,
                           &len);
    } else {
        br_recv_reply_status(ctx->call, ctx->e[0].code,
                             ctx->e[0].code == apache_rocketmq_v2_Code_OK ? "OK" : ctx->e[0].why);
        return;
    }
    if (err == MQ_OK) {
        rpc_call_reply(ctx->call, buf, len);
        free(buf);
    } else {
        rpc_call_finish(ctx->call, RPC_INTERNAL, "cannot encode the response");
    }
}

static void br_hop_unpend(br_hop_ctx_t *ctx)
{
    if (atomic_fetch_sub(&ctx->pending, 1) == 1) {
        br_hop_answer(ctx);
        br_hop_ctx_free(ctx);
    }
}

static void br_hop_set(br_hop_ctx_t *ctx, size_t i, apache_rocketmq_v2_Code code, const char *why)
{
    ctx->e[i].code = code;
    ctx->e[i].why = why;
}

static void br_hop_done(br_hop_op_t *op, apache_rocketmq_v2_Code code, const char *why)
{
    br_hop_ctx_t *ctx = op->ctx;
    br_hop_set(ctx, op->idx, code, why);
    free(op);
    br_hop_unpend(ctx);
}

/* --- retries ----------------------------------------------------------------------------- */

static void br_hop_retry_task(void *arg)
{
    br_hop_op_t *op = arg;
    br_hop_ctx_t *ctx = op->ctx;
    size_t i = op->idx;
    free(op);
    br_hop_dispatch(ctx, i);
}

/* Tries entry i again later, or fails it with code once the deadline
 * passed. The entry's pending count is kept across the retry. */
static void br_hop_retry(br_hop_op_t *op, apache_rocketmq_v2_Code code, const char *why)
{
    br_hop_ctx_t *ctx = op->ctx;
    br_server_t *srv = ctx->srv;
    if (ctx->forwarded || mq_now_ms() + BR_RECV_RETRY_MS >= ctx->deadline_ms ||
        atomic_load(&srv->recv->stopping)) {
        /* A forwarded op is retried by the broker that forwarded it. */
        br_hop_done(op, code, why);
        return;
    }
    mq_executor_schedule(srv->ex, ctx->key, BR_RECV_RETRY_MS, br_hop_retry_task, op);
}

/* --- local ops
 * ------------------------------------------------------------------------------------ */

static void br_hop_durable(mq_err_t err, void *arg)
{
    br_hop_op_t *op = arg;
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot persist an ack topic=%s group=%s err=%s", op->ctx->topic,
                    op->ctx->group, mq_err_str(err));
        br_hop_done(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                    "the ack could not be persisted; retry");
        return;
    }
    br_hop_done(op, apache_rocketmq_v2_Code_OK, NULL);
}

/* Acknowledges the entry's delivery and answers once it is durable.
 * @locality queue key */
static void br_hop_ack_local(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, br_hop_op_t *op)
{
    br_hop_entry_t *e = &op->ctx->e[op->idx];
    mq_err_t err = br_cursor_ack(rc->cur, e->h.offset, e->h.attempt);
    if (err == MQ_EEXIST) {
        br_hop_done(op, apache_rocketmq_v2_Code_OK, NULL);
        return;
    }
    if (err != MQ_OK) {
        br_hop_done(op, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                    "the receipt handle is expired or unknown");
        return;
    }
    mq_buf_t *rec = NULL;
    br_cursor_rec_ack(&rec, &e->h.offset, 1);
    err = br_rcur_append(srv, q, rc, rec, br_hop_durable, op);
    /* A FIFO group or a full window may have been waiting on this one. */
    br_recv_notify(srv, q->topic, q->id);
    if (err != MQ_OK) {
        br_hop_done(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                    "the ack could not be persisted; retry");
    }
}

static bool br_hop_dlq_ack_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err,
                              void *arg)
{
    br_hop_op_t *op = arg;
    if (err != MQ_OK) {
        br_hop_done(op, br_status_code(err), "the queue changed owner while dead-lettering");
        return false;
    }
    br_hop_ack_local(srv, q, rc, op);
    return false;
}

static void br_hop_dlq_stored(mq_err_t err, void *arg)
{
    br_hop_op_t *op = arg;
    br_hop_ctx_t *ctx = op->ctx;
    br_hop_entry_t *e = &ctx->e[op->idx];
    free(e->msg);
    e->msg = NULL;
    if (err != MQ_OK) {
        br_hop_done(op, br_status_code(err), "cannot store into the dead-letter queue");
        return;
    }
    br_rcur_with(ctx->srv, ctx->topic, e->h.queue, &ctx->grp, br_hop_dlq_ack_fn, op);
}

typedef struct br_hop_read {
    br_hop_op_t *op;
    br_queue_t *q;
} br_hop_read_t;

static void br_hop_dlq_read(mq_err_t err, const br_mlog_msg_t *msgs, size_t count, void *arg)
{
    br_hop_read_t *rd = arg;
    br_hop_op_t *op = rd->op;
    br_hop_ctx_t *ctx = op->ctx;
    br_server_t *srv = ctx->srv;
    br_hop_entry_t *e = &ctx->e[op->idx];
    uint64_t store_ms;
    const uint8_t *msg = NULL;
    size_t msg_len = 0;
    if (err == MQ_OK && count > 0 && msgs[0].offset == e->h.offset &&
        br_record_parse(msgs[0].data, msgs[0].len, &store_ms, &msg, &msg_len) == MQ_OK) {
        e->msg = mq_malloc(msg_len ? msg_len : 1);
        memcpy(e->msg, msg, msg_len);
        e->msg_len = msg_len;
    }
    br_queue_put(srv, rd->q);
    free(rd);
    if (!e->msg) {
        br_hop_done(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                    "cannot read the message to dead-letter");
        return;
    }
    br_dlq_store(srv, ctx->group, ctx->topic, e->msg, e->msg_len, br_hop_dlq_stored, op);
}

static bool br_hop_local_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg)
{
    br_hop_op_t *op = arg;
    br_hop_ctx_t *ctx = op->ctx;
    br_hop_entry_t *e = &ctx->e[op->idx];
    if (err != MQ_OK) {
        /* Not served here any more, or the cursor cannot load: the owner
         * (maybe another broker by now) is tried again. */
        br_hop_retry(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                     err == MQ_ENOTOWNER ? "the queue is changing owner; retry"
                                         : "the consumer cursor is unavailable; retry");
        return false;
    }
    uint64_t now = mq_now_ms();
    switch (ctx->kind) {
    case BR_HOP_ACK:
        br_hop_ack_local(srv, q, rc, op);
        return false;
    case BR_HOP_CHANGE:
        err = br_cursor_change(rc->cur, e->h.offset, e->h.attempt, now, ctx->invisible_ms);
        if (err == MQ_OK) {
            br_handle_t nh = e->h;
            nh.deadline_ms = mq_wall_ms() + ctx->invisible_ms;
            br_handle_encode(&nh, ctx->topic, ctx->group, e->new_handle);
            if (ctx->invisible_ms == 0) {
                br_recv_notify(srv, q->topic, q->id);
            }
            br_hop_done(op, apache_rocketmq_v2_Code_OK, NULL);
        } else if (err == MQ_EEXIST) {
            br_hop_done(op, apache_rocketmq_v2_Code_OK, NULL);
        } else {
            br_hop_done(op, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                        "the receipt handle is expired or unknown");
        }
        return false;
    case BR_HOP_DLQ: {
        /* Held invisible while it is moved, so it is not redelivered. */
        uint64_t hold = (uint64_t)srv->conf->forwardTimeoutMs + 60000u;
        err = br_cursor_change(rc->cur, e->h.offset, e->h.attempt, now, hold);
        if (err == MQ_EEXIST) {
            br_hop_done(op, apache_rocketmq_v2_Code_OK, NULL);
            return false;
        }
        if (err != MQ_OK) {
            br_hop_done(op, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                        "the receipt handle is expired or unknown");
            return false;
        }
        br_hop_read_t *rd = mq_malloc(sizeof(*rd));
        rd->op = op;
        rd->q = q;
        if (br_mlog_read(q->ml, e->h.offset, 1, br_hop_dlq_read, rd) != MQ_OK) {
            free(rd);
            br_hop_done(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                        "cannot read the message to dead-letter");
            return false;
        }
        return true; /* the read holds q */
    }
    }
    return false;
}

/* --- forwarding
 * ------------------------------------------------------------------------------------ */

static void br_hop_forwarded(rpc_status_t status, const char *details, const uint8_t *resp,
                             size_t len, void *arg)
{
    br_hop_op_t *op = arg;
    br_hop_ctx_t *ctx = op->ctx;
    br_hop_entry_t *e = &ctx->e[op->idx];
    if (status != RPC_OK) {
        MQ_LOG_DEBUG("consume forward failed topic=%s queue=%d status=%s details=%s", ctx->topic,
                     e->h.queue, rpc_status_name(status), details ? details : "");
        br_hop_retry(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                     "the queue's owner is unreachable");
        return;
    }
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR;
    bool ok = false;
    if (ctx->kind == BR_HOP_ACK) {
        apache_rocketmq_v2_AckMessageResponse r = apache_rocketmq_v2_AckMessageResponse_init_zero;
        if (br_pb_decode(apache_rocketmq_v2_AckMessageResponse_fields, resp, len, &r, NULL, 0) ==
            MQ_OK) {
            if (r.entries_count == 1 && r.entries[0].has_status) {
                code = r.entries[0].status.code;
                ok = true;
            } else if (r.has_status) {
                code = r.status.code;
                ok = true;
            }
            pb_release(apache_rocketmq_v2_AckMessageResponse_fields, &r);
        }
    } else if (ctx->kind == BR_HOP_CHANGE) {
        apache_rocketmq_v2_ChangeInvisibleDurationResponse r =
            apache_rocketmq_v2_ChangeInvisibleDurationResponse_init_zero;
        if (br_pb_decode(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, resp, len, &r,
                         NULL, 0) == MQ_OK) {
            if (r.has_status) {
                code = r.status.code;
                ok = true;
                if (code == apache_rocketmq_v2_Code_OK && r.receipt_handle &&
                    strlen(r.receipt_handle) < BR_HANDLE_MAX) {
                    snprintf(e->new_handle, sizeof(e->new_handle), "%s", r.receipt_handle);
                }
            }
            pb_release(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, &r);
        }
    } else {
        apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse r =
            apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_init_zero;
        if (br_pb_decode(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_fields, resp,
                         len, &r, NULL, 0) == MQ_OK) {
            if (r.has_status) {
                code = r.status.code;
                ok = true;
            }
            pb_release(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueResponse_fields, &r);
        }
    }
    if (!ok) {
        br_hop_done(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                    "the queue's owner gave a malformed answer");
    } else if (code == apache_rocketmq_v2_Code_OK) {
        br_hop_done(op, code, NULL);
    } else if (br_status_retriable(code)) {
        br_hop_retry(op, code, "the queue's owner could not do it; retry");
    } else {
        br_hop_done(op, code,
                    code == apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE
                        ? "the receipt handle is expired or unknown"
                        : "refused by the queue's owner");
    }
}

static void br_hop_forward(br_hop_op_t *op, const char *endpoint)
{
    br_hop_ctx_t *ctx = op->ctx;
    br_server_t *srv = ctx->srv;
    br_hop_entry_t *e = &ctx->e[op->idx];
    rpc_channel_t *ch = br_server_peer(srv, endpoint);
    uint8_t *buf = NULL;
    size_t len = 0;
    mq_err_t err = MQ_OK;
    if (ctx->kind == BR_HOP_ACK) {
        /* The entry alone: the others may live on other brokers. */
        apache_rocketmq_v2_AckMessageRequest req = apache_rocketmq_v2_AckMessageRequest_init_zero;
        apache_rocketmq_v2_AckMessageEntry ent = {e->message_id, e->handle, NULL};
        req.has_group = true;
        req.group.name = ctx->group;
        req.has_topic = true;
        req.topic.name = ctx->topic;
        req.entries_count = 1;
        req.entries = &ent;
        err = br_pb_encode(apache_rocketmq_v2_AckMessageRequest_fields, &req, &buf, &len);
    } else {
        buf = mq_malloc(ctx->req_len ? ctx->req_len : 1);
        memcpy(buf, ctx->req, ctx->req_len);
        len = ctx->req_len;
    }
    if (!ch || err != MQ_OK) {
        free(buf);
        br_hop_retry(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                     "cannot reach the queue's owner");
        return;
    }
    rpc_md_t md[] = {{"x-mq-client-id", ctx->client_id}, {BR_RECV_FWD_HEADER, "1"}};
    uint64_t now = mq_now_ms();
    uint32_t timeout = ctx->deadline_ms > now ? (uint32_t)(ctx->deadline_ms - now) : 1;
    err = rpc_channel_unary(ch, br_hop_methods[ctx->kind], md, 2, buf, len, timeout,
                            br_hop_forwarded, op);
    free(buf);
    if (err != MQ_OK) {
        br_hop_retry(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                     "cannot reach the queue's owner");
    }
}

/* Runs entry i where its queue lives. Any thread. */
static void br_hop_dispatch(br_hop_ctx_t *ctx, size_t i)
{
    br_server_t *srv = ctx->srv;
    br_hop_entry_t *e = &ctx->e[i];
    br_hop_op_t *op = mq_malloc(sizeof(*op));
    op->ctx = ctx;
    op->idx = i;
    br_queue_t *q = br_queue_get(srv, ctx->topic, e->h.queue);
    if (q) {
        br_queue_put(srv, q);
        br_rcur_with(srv, ctx->topic, e->h.queue, &ctx->grp, br_hop_local_fn, op);
        return;
    }
    br_broker_info_t owner;
    bool self = false;
    if (!ctx->forwarded &&
        br_cluster_owner(srv->cluster, ctx->topic, e->h.queue, &owner, &self) == MQ_OK && !self) {
        br_hop_forward(op, owner.endpoint);
        return;
    }
    br_hop_retry(op, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                 "the queue has no owner yet; retry");
}

/* --- acks of one queue together ------------------------------------------------------ */

/* The entries of one ack request that name one queue served here: they
 * are acknowledged in one task on the queue's key and persisted as one
 * record (a receive's batch comes from a few queues, so its ack costs a
 * few cursor records, not one per message). */
typedef struct br_hop_qack {
    br_hop_ctx_t *ctx;
    size_t n;
    size_t *idx;      /* entries of ctx */
    int64_t *offsets; /* newly acknowledged ones (the record) */
    size_t *pend;     /* their entries, answered once it is durable */
    size_t npend;
} br_hop_qack_t;

static void br_hop_qack_free(br_hop_qack_t *qa)
{
    free(qa->idx);
    free(qa->offsets);
    free(qa->pend);
    free(qa);
}

/* Entries idx of qa.ctx are done with code (qa itself stays). */
static void br_hop_qack_done(br_hop_qack_t *qa, const size_t *idx, size_t n,
                             apache_rocketmq_v2_Code code, const char *why)
{
    br_hop_ctx_t *ctx = qa->ctx;
    for (size_t i = 0; i < n; i++) {
        br_hop_set(ctx, idx[i], code, why);
    }
    /* One pending count per entry: the last one may answer and free ctx. */
    for (size_t i = 0; i < n; i++) {
        br_hop_unpend(ctx);
    }
}

static void br_hop_qack_durable(mq_err_t err, void *arg)
{
    br_hop_qack_t *qa = arg;
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot persist acks topic=%s group=%s n=%zu err=%s", qa->ctx->topic,
                    qa->ctx->group, qa->npend, mq_err_str(err));
        br_hop_qack_done(qa, qa->pend, qa->npend, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                         "the ack could not be persisted; retry");
    } else {
        br_hop_qack_done(qa, qa->pend, qa->npend, apache_rocketmq_v2_Code_OK, NULL);
    }
    br_hop_qack_free(qa);
}

/* @locality queue key */
static bool br_hop_qack_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg)
{
    br_hop_qack_t *qa = arg;
    br_hop_ctx_t *ctx = qa->ctx;
    if (err != MQ_OK) {
        /* Not served here any more: each entry goes its own way (retried
         * at the new owner). */
        for (size_t i = 0; i < qa->n; i++) {
            br_hop_dispatch(ctx, qa->idx[i]);
        }
        br_hop_qack_free(qa);
        return false;
    }
    qa->offsets = mq_malloc(qa->n * sizeof(*qa->offsets));
    qa->pend = mq_malloc(qa->n * sizeof(*qa->pend));
    for (size_t i = 0; i < qa->n; i++) {
        size_t k = qa->idx[i];
        br_hop_entry_t *e = &ctx->e[k];
        mq_err_t aerr = br_cursor_ack(rc->cur, e->h.offset, e->h.attempt);
        if (aerr == MQ_OK) {
            qa->offsets[qa->npend] = e->h.offset;
            qa->pend[qa->npend++] = k;
        } else if (aerr == MQ_EEXIST) {
            br_hop_qack_done(qa, &k, 1, apache_rocketmq_v2_Code_OK, NULL);
        } else {
            br_hop_qack_done(qa, &k, 1, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                             "the receipt handle is expired or unknown");
        }
    }
    if (qa->npend == 0) {
        br_hop_qack_free(qa);
        return false;
    }
    mq_buf_t *rec = NULL;
    br_cursor_rec_ack(&rec, qa->offsets, qa->npend);
    err = br_rcur_append(srv, q, rc, rec, br_hop_qack_durable, qa);
    /* A FIFO group or a full window may have been waiting on these. */
    br_recv_notify(srv, q->topic, q->id);
    if (err != MQ_OK) {
        br_hop_qack_done(qa, qa->pend, qa->npend, apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR,
                         "the ack could not be persisted; retry");
        br_hop_qack_free(qa);
    }
    return false;
}

/* Dispatches the acks of ctx (entries marked in todo): those of a queue
 * served here together, the others one by one. Any thread. */
static void br_hop_dispatch_acks(br_hop_ctx_t *ctx, bool *todo)
{
    br_server_t *srv = ctx->srv;
    for (size_t i = 0; i < ctx->n; i++) {
        if (!todo[i]) {
            continue;
        }
        int queue = ctx->e[i].h.queue;
        br_queue_t *q = br_queue_get(srv, ctx->topic, queue);
        if (!q) {
            todo[i] = false;
            br_hop_dispatch(ctx, i);
            continue;
        }
        br_queue_put(srv, q);
        br_hop_qack_t *qa = mq_calloc(1, sizeof(*qa));
        qa->ctx = ctx;
        qa->idx = mq_malloc((ctx->n - i) * sizeof(*qa->idx));
        for (size_t j = i; j < ctx->n; j++) {
            if (todo[j] && ctx->e[j].h.queue == queue) {
                todo[j] = false;
                qa->idx[qa->n++] = j;
            }
        }
        br_rcur_with(srv, ctx->topic, queue, &ctx->grp, br_hop_qack_fn, qa);
    }
}

/* Every entry, once the topic (t) and group lookups gave code. Any thread
 * (srv->slow, or the gRPC thread when every queue is served here). */
static void br_hop_prepare(br_hop_ctx_t *ctx, const br_topic_t *t, apache_rocketmq_v2_Code code,
                           const char *why)
{
    bool *acks = ctx->kind == BR_HOP_ACK ? mq_calloc(ctx->n ? ctx->n : 1, sizeof(*acks)) : NULL;
    for (size_t i = 0; i < ctx->n; i++) {
        br_hop_entry_t *e = &ctx->e[i];
        if (e->code != apache_rocketmq_v2_Code_OK) {
            continue;
        }
        if (code != apache_rocketmq_v2_Code_OK) {
            br_hop_set(ctx, i, code, why);
        } else if (e->h.queue < 0 || e->h.queue >= t->queues) {
            br_hop_set(ctx, i, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                       "the receipt handle names no queue of the topic");
        } else {
            atomic_fetch_add(&ctx->pending, 1);
            if (acks) {
                acks[i] = true;
            } else {
                br_hop_dispatch(ctx, i);
            }
        }
    }
    if (acks) {
        br_hop_dispatch_acks(ctx, acks);
        free(acks);
    }
    br_hop_unpend(ctx);
}

/* Topic and group lookups, then every entry. @locality srv->slow */
static void br_hop_prepare_task(void *arg)
{
    br_hop_ctx_t *ctx = arg;
    br_server_t *srv = ctx->srv;
    br_topic_t t;
    const char *why = NULL;
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_OK;
    mq_err_t err = br_topics_get(srv->topics, ctx->topic, &t);
    if (err == MQ_ENOTFOUND) {
        code = apache_rocketmq_v2_Code_TOPIC_NOT_FOUND;
        why = "topic does not exist";
    } else if (err != MQ_OK) {
        code = br_status_code(err);
        why = mq_err_str(err);
    } else {
        code = br_recv_group(srv, ctx->group, &ctx->grp, &why);
    }
    br_hop_prepare(ctx, &t, code, why);
}

/* The usual ack: topic and group in memory and every queue served here.
 * Then nothing can block and the acks go to their queues' keys from the
 * gRPC thread, without a hop to srv->slow. */
static bool br_hop_prepare_now(br_hop_ctx_t *ctx)
{
    br_server_t *srv = ctx->srv;
    br_topic_t t;
    if (ctx->kind != BR_HOP_ACK || br_topics_peek(srv->topics, ctx->topic, &t) != MQ_OK ||
        br_groups_peek(srv->groups, ctx->group, &ctx->grp) != MQ_OK) {
        return false;
    }
    int checked = -1; /* a receive's entries come grouped by queue */
    for (size_t i = 0; i < ctx->n; i++) {
        const br_hop_entry_t *e = &ctx->e[i];
        if (e->code != apache_rocketmq_v2_Code_OK || e->h.queue < 0 || e->h.queue >= t.queues ||
            e->h.queue == checked) {
            continue;
        }
        checked = e->h.queue;
        br_queue_t *q = br_queue_get(srv, ctx->topic, e->h.queue);
        if (!q) {
            return false;
        }
        br_queue_put(srv, q);
    }
    br_hop_prepare(ctx, &t, apache_rocketmq_v2_Code_OK, NULL);
    return true;
}

/* --- the calls
 * -------------------------------------------------------------------------------------- */

/* Common start of the three methods: checks, then srv->slow. Takes
 * ownership of ctx. */
static void br_hop_start(br_hop_ctx_t *ctx)
{
    br_server_t *srv = ctx->srv;
    rpc_call_t *call = ctx->call;
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_OK;
    const char *why = NULL;
    const char *client = rpc_call_header(call, "x-mq-client-id");
    if (!client || !*client) {
        code = apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED;
        why = "x-mq-client-id header is required";
    } else if (!br_group_name_valid(ctx->group)) {
        code = apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP;
        why = "consumer group must match ^[%|a-zA-Z0-9_-]+$ and be 1..255 chars";
    } else if (!br_topic_name_valid(ctx->topic)) {
        code = apache_rocketmq_v2_Code_ILLEGAL_TOPIC;
        why = "topic name must match ^[%|a-zA-Z0-9_-]+$ and be 1..127 chars";
    } else if (ctx->kind == BR_HOP_CHANGE &&
               ctx->invisible_ms > (uint64_t)srv->conf->maxInvisibleTimeMills) {
        code = apache_rocketmq_v2_Code_ILLEGAL_INVISIBLE_TIME;
        why = "invisible_duration is out of range";
    } else if (ctx->kind != BR_HOP_ACK && ctx->n != 1) {
        code = apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE;
        why = "the receipt handle is missing";
    }
    snprintf(ctx->client_id, sizeof(ctx->client_id), "%s", client ? client : "");
    ctx->forwarded = rpc_call_header(call, BR_RECV_FWD_HEADER) != NULL;
    for (size_t i = 0; i < ctx->n; i++) {
        br_hop_entry_t *e = &ctx->e[i];
        if (code != apache_rocketmq_v2_Code_OK) {
            br_hop_set(ctx, i, code, why);
        } else if (br_handle_decode(e->handle, ctx->topic, ctx->group, &e->h) != MQ_OK) {
            br_hop_set(ctx, i, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE,
                       "the receipt handle is not valid for this topic and group");
        } else {
            br_hop_set(ctx, i, apache_rocketmq_v2_Code_OK, NULL);
        }
    }
    uint64_t now = mq_now_ms();
    int64_t left = rpc_call_remaining_ms(call);
    uint64_t budget = (uint64_t)srv->conf->forwardTimeoutMs;
    if (left != INT64_MAX && left - 200 < (int64_t)budget) {
        budget = left > 400 ? (uint64_t)(left - 200) : 200;
    }
    ctx->deadline_ms = now + budget;
    ctx->key = mq_mix64((uintptr_t)ctx);
    atomic_init(&ctx->pending, 1);
    rpc_call_ref(call);
    br_recv_op_begin(srv);
    ctx->top = code;
    ctx->top_why = why;
    if (code != apache_rocketmq_v2_Code_OK || ctx->n == 0) {
        br_hop_unpend(ctx);
        return;
    }
    if (br_hop_prepare_now(ctx)) {
        return;
    }
    mq_executor_submit(srv->slow, ctx->key, br_hop_prepare_task, ctx);
}

/* A context for call, or NULL (answered) when the broker cannot take it. */
static br_hop_ctx_t *br_hop_ctx_new(br_server_t *srv, rpc_call_t *call, br_hop_kind_t kind,
                                    const char *topic, const char *group, size_t n)
{
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping ||
        atomic_load(&srv->recv->stopping)) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        return NULL;
    }
    br_hop_ctx_t *ctx = mq_calloc(1, sizeof(*ctx));
    ctx->srv = srv;
    ctx->call = call;
    ctx->kind = kind;
    snprintf(ctx->topic, sizeof(ctx->topic), "%s", topic);
    snprintf(ctx->group, sizeof(ctx->group), "%s", group);
    if (strlen(topic) >= sizeof(ctx->topic)) {
        ctx->topic[0] = '\0'; /* too long: ILLEGAL_TOPIC */
    }
    if (strlen(group) >= sizeof(ctx->group)) {
        ctx->group[0] = '\0';
    }
    ctx->n = n;
    ctx->e = mq_calloc(n ? n : 1, sizeof(*ctx->e));
    return ctx;
}

void br_recv_ack_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    apache_rocketmq_v2_AckMessageRequest r = apache_rocketmq_v2_AckMessageRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_AckMessageRequest_fields, req, len, &r, why, sizeof(why)) !=
        MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    br_hop_ctx_t *ctx =
        br_hop_ctx_new(srv, call, BR_HOP_ACK, r.has_topic ? br_pb_str(r.topic.name) : "",
                       r.has_group ? br_pb_str(r.group.name) : "", r.entries_count);
    if (ctx) {
        for (pb_size_t i = 0; i < r.entries_count; i++) {
            ctx->e[i].message_id = mq_strdup(br_pb_str(r.entries[i].message_id));
            ctx->e[i].handle = mq_strdup(br_pb_str(r.entries[i].receipt_handle));
        }
    }
    pb_release(apache_rocketmq_v2_AckMessageRequest_fields, &r);
    if (ctx) {
        br_hop_start(ctx);
    }
}

void br_recv_change_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    apache_rocketmq_v2_ChangeInvisibleDurationRequest r =
        apache_rocketmq_v2_ChangeInvisibleDurationRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    br_hop_ctx_t *ctx =
        br_hop_ctx_new(srv, call, BR_HOP_CHANGE, r.has_topic ? br_pb_str(r.topic.name) : "",
                       r.has_group ? br_pb_str(r.group.name) : "", 1);
    if (ctx) {
        ctx->e[0].message_id = mq_strdup(br_pb_str(r.message_id));
        ctx->e[0].handle = mq_strdup(br_pb_str(r.receipt_handle));
        ctx->invisible_ms =
            r.has_invisible_duration ? br_recv_duration_ms(&r.invisible_duration) : 0;
        if (r.has_invisible_duration &&
            (r.invisible_duration.seconds < 0 || r.invisible_duration.nanos < 0)) {
            ctx->invisible_ms = UINT64_MAX; /* ILLEGAL_INVISIBLE_TIME */
        }
        ctx->req = mq_malloc(len ? len : 1);
        memcpy(ctx->req, req, len);
        ctx->req_len = len;
    }
    pb_release(apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, &r);
    if (ctx) {
        br_hop_start(ctx);
    }
}

void br_recv_forward_dlq_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest r =
        apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest_fields, req, len, &r,
                     why, sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    br_hop_ctx_t *ctx =
        br_hop_ctx_new(srv, call, BR_HOP_DLQ, r.has_topic ? br_pb_str(r.topic.name) : "",
                       r.has_group ? br_pb_str(r.group.name) : "", 1);
    if (ctx) {
        ctx->e[0].message_id = mq_strdup(br_pb_str(r.message_id));
        ctx->e[0].handle = mq_strdup(br_pb_str(r.receipt_handle));
        ctx->req = mq_malloc(len ? len : 1);
        memcpy(ctx->req, req, len);
        ctx->req_len = len;
    }
    pb_release(apache_rocketmq_v2_ForwardMessageToDeadLetterQueueRequest_fields, &r);
    if (ctx) {
        br_hop_start(ctx);
    }
}
