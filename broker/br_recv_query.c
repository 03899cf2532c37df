/*
 * br_recv_query: the consume side's queries.
 *
 * QueryAssignment (push consumers, every few seconds): which queues to
 * receive from. A normal group gets one assignment per broker owning
 * queues of the topic, with queue id -1 (that broker pops from all its
 * queues: POP shares the work, no rebalancing); a FIFO group gets one per
 * owned queue, so one receive stream serves each queue in order. Nothing
 * owned: FORBIDDEN "no readable queue" (RocketMQ's answer).
 *
 * ConsumerProgress (admin, ledgermq.admin.v1.Admin): per queue of a topic
 * (or of every topic the group has a cursor znode for, under
 * <root>/cursors/<group>): owner, the log's end, the group's watermark,
 * lag, in flight, waiting, acknowledged above the watermark. This broker
 * answers for the queues it owns, from the cursor (loaded when a cursor
 * znode exists; a queue the group never read reports the queue's min
 * offset, where it would start); other owners are asked with the header
 * x-lmq-local, as DescribeTopic does.
 *
 * Threads: decoding on the gRPC thread; lookups and the blocking calls to
 * other owners on srv->slow; cursor reads on the queues' keys (the slow
 * thread never waits for them: the last one posts the next phase).
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.pb.h"
#include "br_pb.h"
#include "br_recv_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

#define BR_PROG_METHOD "/ledgermq.admin.v1.Admin/ConsumerProgress"
#define BR_PROG_LOCAL_HEADER "x-lmq-local"

/* --- QueryAssignment --------------------------------------------------------------------- */

typedef struct br_assign_req {
    br_server_t *srv;
    rpc_call_t *call;
    char topic[BR_TOPIC_NAME_MAX + 1];
    char group[BR_GROUP_NAME_MAX + 1];
} br_assign_req_t;

static void br_assign_task(void *arg)
{
    br_assign_req_t *rq = arg;
    br_server_t *srv = rq->srv;
    br_topic_t t;
    br_group_t g;
    const char *why = NULL;
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_OK;
    mq_err_t err = br_server_topic(srv, rq->topic, srv->conf->autoCreateTopicEnable, &t);
    if (err == MQ_ENOTFOUND) {
        code = apache_rocketmq_v2_Code_TOPIC_NOT_FOUND;
        why = "topic does not exist";
    } else if (err != MQ_OK) {
        code = br_status_code(err);
        why = mq_err_str(err);
    } else if (!(t.perm & BR_PERM_READ)) {
        code = apache_rocketmq_v2_Code_FORBIDDEN;
        why = "no readable queue";
    } else {
        code = br_recv_group(srv, rq->group, &g, &why);
    }
    if (code != apache_rocketmq_v2_Code_OK) {
        br_recv_reply_status(rq->call, code, why);
        goto out;
    }
    int n = t.queues;
    apache_rocketmq_v2_Assignment *as = mq_calloc((size_t)n, sizeof(*as));
    apache_rocketmq_v2_Address *addrs = mq_calloc((size_t)n, sizeof(*addrs));
    br_broker_info_t *owners = mq_calloc((size_t)n, sizeof(*owners));
    char(*hosts)[BR_ENDPOINT_MAX] = mq_calloc((size_t)n, sizeof(*hosts));
    apache_rocketmq_v2_MessageType types[4];
    pb_size_t ntypes = 1;
    types[0] = (apache_rocketmq_v2_MessageType)t.type;
    if (t.type == BR_MSG_TYPE_MIXED) {
        types[0] = apache_rocketmq_v2_MessageType_NORMAL;
        types[1] = apache_rocketmq_v2_MessageType_FIFO;
        types[2] = apache_rocketmq_v2_MessageType_DELAY;
        types[3] = apache_rocketmq_v2_MessageType_TRANSACTION;
        ntypes = 4;
    }
    apache_rocketmq_v2_Permission perm = (t.perm & BR_PERM_WRITE)
                                             ? apache_rocketmq_v2_Permission_READ_WRITE
                                             : apache_rocketmq_v2_Permission_READ;
    pb_size_t na = 0;
    for (int i = 0; i < n; i++) {
        bool self;
        br_broker_info_t *o = &owners[na];
        if (br_cluster_owner(srv->cluster, t.name, i, o, &self) != MQ_OK) {
            continue;
        }
        bool dup = false;
        for (pb_size_t k = 0; k < na && !g.fifo && !dup; k++) {
            dup = strcmp(owners[k].id, o->id) == 0;
        }
        if (dup) {
            continue;
        }
        apache_rocketmq_v2_MessageQueue *m = &as[na].message_queue;
        as[na].has_message_queue = true;
        m->has_topic = true;
        m->topic.name = t.name;
        m->id = g.fifo ? i : -1;
        m->permission = perm;
        m->has_broker = true;
        m->broker.name = o->id;
        m->broker.id = 0;
        m->broker.has_endpoints = true;
        br_pb_endpoints(o->endpoint, hosts[na], sizeof(hosts[na]), &addrs[na],
                        &m->broker.endpoints);
        m->accept_message_types_count = ntypes;
        m->accept_message_types = types;
        na++;
    }
    if (na == 0) {
        br_recv_reply_status(rq->call, apache_rocketmq_v2_Code_FORBIDDEN, "no readable queue");
    } else {
        apache_rocketmq_v2_QueryAssignmentResponse resp =
            apache_rocketmq_v2_QueryAssignmentResponse_init_zero;
        resp.has_status = true;
        resp.status.code = apache_rocketmq_v2_Code_OK;
        resp.status.message = "OK";
        resp.assignments_count = na;
        resp.assignments = as;
        uint8_t *buf;
        size_t len;
        if (br_pb_encode(apache_rocketmq_v2_QueryAssignmentResponse_fields, &resp, &buf, &len) ==
            MQ_OK) {
            rpc_call_reply(rq->call, buf, len);
            free(buf);
        } else {
            rpc_call_finish(rq->call, RPC_INTERNAL, "cannot encode the assignments");
        }
    }
    free(as);
    free(addrs);
    free(owners);
    free(hosts);
out:
    rpc_call_unref(rq->call);
    free(rq);
    br_recv_op_end(srv);
}

void br_recv_assign_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    apache_rocketmq_v2_QueryAssignmentRequest r =
        apache_rocketmq_v2_QueryAssignmentRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_QueryAssignmentRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    const char *topic = r.has_topic ? br_pb_str(r.topic.name) : "";
    const char *group = r.has_group ? br_pb_str(r.group.name) : "";
    const char *client = rpc_call_header(call, "x-mq-client-id");
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping ||
        atomic_load(&srv->recv->stopping)) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
    } else if (!client || !*client) {
        br_recv_reply_status(call, apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED,
                             "x-mq-client-id header is required");
    } else if (!br_topic_name_valid(topic)) {
        br_recv_reply_status(call, apache_rocketmq_v2_Code_ILLEGAL_TOPIC,
                             "topic name must match ^[%|a-zA-Z0-9_-]+$ and be 1..127 chars");
    } else if (!br_group_name_valid(group)) {
        br_recv_reply_status(call, apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP,
                             "consumer group must match ^[%|a-zA-Z0-9_-]+$ and be 1..255 chars");
    } else {
        br_assign_req_t *rq = mq_calloc(1, sizeof(*rq));
        rq->srv = srv;
        rq->call = call;
        snprintf(rq->topic, sizeof(rq->topic), "%s", topic);
        snprintf(rq->group, sizeof(rq->group), "%s", group);
        rpc_call_ref(call);
        br_recv_op_begin(srv);
        mq_executor_submit(srv->slow, mq_mix64((uintptr_t)rq), br_assign_task, rq);
    }
    pb_release(apache_rocketmq_v2_QueryAssignmentRequest_fields, &r);
}

/* --- ConsumerProgress -------------------------------------------------------------------- */

typedef struct br_prog_job {
    br_server_t *srv;
    rpc_call_t *call;
    uint8_t *req;
    size_t len;
    bool local; /* asked by another broker: only what is owned here */
    char group[BR_GROUP_NAME_MAX + 1];
    br_group_t grp;
    ledgermq_admin_v1_QueueProgress *qp;
    br_broker_info_t *owners;
    uint8_t *how; /* BR_PROG_* */
    size_t n, cap;
    atomic_int pending;
} br_prog_job_t;

typedef struct br_prog_op {
    br_prog_job_t *job;
    size_t idx;
} br_prog_op_t;

static void br_prog_answer_task(void *arg);

static void br_prog_unpend(br_prog_job_t *job)
{
    if (atomic_fetch_sub(&job->pending, 1) == 1) {
        mq_executor_submit(job->srv->slow, mq_mix64((uintptr_t)job), br_prog_answer_task, job);
    }
}

static void br_prog_fill(ledgermq_admin_v1_QueueProgress *p, br_queue_t *q, const br_cursor_t *c)
{
    int64_t end = br_mlog_max_offset(q->ml);
    p->broker_offset = end;
    if (c) {
        br_cursor_stats_t st;
        br_cursor_stats(c, &st);
        p->consumer_offset = st.watermark;
        p->inflight = (int32_t)st.inflight;
        p->waiting = (int32_t)st.waiting;
        p->acked_above = (int32_t)st.done_above;
    } else {
        /* Never read by the group: a cursor would start here. */
        p->consumer_offset = br_mlog_min_offset(q->ml);
    }
    p->lag = end > p->consumer_offset ? end - p->consumer_offset : 0;
}

static bool br_prog_stat_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg)
{
    (void)srv;
    br_prog_op_t *op = arg;
    if (err == MQ_OK) {
        br_prog_fill(&op->job->qp[op->idx], q, rc->cur);
    }
    br_prog_unpend(op->job);
    free(op);
    return false;
}

/* A queue without a cursor znode: report it without creating one.
 * @locality queue key */
static void br_prog_peek_task(void *arg)
{
    br_prog_op_t *op = arg;
    br_prog_job_t *job = op->job;
    ledgermq_admin_v1_QueueProgress *p = &job->qp[op->idx];
    br_queue_t *q = br_queue_get(job->srv, p->topic, p->queue_id);
    if (q) {
        br_rcur_t *rc = br_rcur_find(q, job->group);
        br_prog_fill(p, q, rc ? rc->cur : NULL);
        br_queue_put(job->srv, q);
    }
    br_prog_unpend(job);
    free(op);
}

/* How an entry is filled. */
enum { BR_PROG_NONE, BR_PROG_REMOTE, BR_PROG_PEEK, BR_PROG_LOAD };

/* Adds the topic's queues (no op started yet: the array may still grow). */
static void br_prog_add(br_prog_job_t *job, const br_topic_t *t)
{
    br_server_t *srv = job->srv;
    for (int i = 0; i < t->queues; i++) {
        if (job->n == job->cap) {
            job->cap = job->cap ? job->cap * 2 : 16;
            job->qp = mq_realloc(job->qp, job->cap * sizeof(*job->qp));
            job->owners = mq_realloc(job->owners, job->cap * sizeof(*job->owners));
            job->how = mq_realloc(job->how, job->cap * sizeof(*job->how));
        }
        size_t k = job->n++;
        ledgermq_admin_v1_QueueProgress *p = &job->qp[k];
        memset(p, 0, sizeof(*p));
        memset(&job->owners[k], 0, sizeof(job->owners[k]));
        job->how[k] = BR_PROG_NONE;
        p->topic = mq_strdup(t->name);
        p->queue_id = i;
        p->consumer_offset = -1;
        bool self = false;
        bool owned = br_cluster_owner(srv->cluster, t->name, i, &job->owners[k], &self) == MQ_OK;
        br_queue_t *q = br_queue_get(srv, t->name, i);
        if (!q) {
            job->how[k] = owned && !self ? BR_PROG_REMOTE : BR_PROG_NONE;
            continue;
        }
        br_queue_put(srv, q);
        snprintf(job->owners[k].id, sizeof(job->owners[k].id), "%s", srv->id);
        char path[512];
        snprintf(path, sizeof(path), "%s/cursors/%s/%s/%d", srv->root, job->group, t->name, i);
        job->how[k] = zk_exists(srv->zk, path, NULL) == MQ_OK ? BR_PROG_LOAD : BR_PROG_PEEK;
    }
}

/* Starts the reads of the local cursors; the last one answers. */
static void br_prog_start(br_prog_job_t *job)
{
    br_server_t *srv = job->srv;
    for (size_t k = 0; k < job->n; k++) {
        ledgermq_admin_v1_QueueProgress *p = &job->qp[k];
        job->qp[k].owner = job->owners[k].id[0] ? job->owners[k].id : NULL;
        if (job->how[k] != BR_PROG_LOAD && job->how[k] != BR_PROG_PEEK) {
            continue;
        }
        br_prog_op_t *op = mq_malloc(sizeof(*op));
        op->job = job;
        op->idx = k;
        atomic_fetch_add(&job->pending, 1);
        if (job->how[k] == BR_PROG_LOAD) {
            br_rcur_with(srv, p->topic, p->queue_id, &job->grp, br_prog_stat_fn, op);
        } else {
            mq_executor_submit(srv->ex, br_queue_key(p->topic, p->queue_id), br_prog_peek_task, op);
        }
    }
    br_prog_unpend(job);
}

/* Asks the other owners for their queues (blocking). */
static void br_prog_ask_owners(br_prog_job_t *job)
{
    br_server_t *srv = job->srv;
    for (size_t i = 0; i < job->n; i++) {
        if (job->how[i] != BR_PROG_REMOTE) {
            continue;
        }
        bool asked = false;
        for (size_t k = 0; k < i && !asked; k++) {
            asked = job->how[k] == BR_PROG_REMOTE &&
                    strcmp(job->qp[k].topic, job->qp[i].topic) == 0 &&
                    strcmp(job->owners[k].id, job->owners[i].id) == 0;
        }
        if (asked) {
            continue;
        }
        rpc_channel_t *ch = br_server_peer(srv, job->owners[i].endpoint);
        ledgermq_admin_v1_ConsumerProgressRequest req =
            ledgermq_admin_v1_ConsumerProgressRequest_init_zero;
        req.group = job->group;
        req.topic = job->qp[i].topic;
        uint8_t *buf, *resp = NULL;
        size_t len, rlen = 0;
        rpc_status_t st = RPC_UNKNOWN;
        if (!ch || br_pb_encode(ledgermq_admin_v1_ConsumerProgressRequest_fields, &req, &buf,
                                &len) != MQ_OK) {
            continue;
        }
        rpc_md_t md[] = {{BR_PROG_LOCAL_HEADER, "1"}};
        mq_err_t err = rpc_channel_unary_sync(ch, BR_PROG_METHOD, md, 1, buf, len, 5000, &st, &resp,
                                              &rlen, NULL, 0);
        free(buf);
        if (err != MQ_OK || st != RPC_OK) {
            MQ_LOG_WARN("cannot ask the owner for its progress group=%s topic=%s owner=%s err=%s "
                        "status=%s",
                        job->group, job->qp[i].topic, job->owners[i].id, mq_err_str(err),
                        rpc_status_name(st));
            free(resp);
            continue;
        }
        ledgermq_admin_v1_ConsumerProgressResponse r =
            ledgermq_admin_v1_ConsumerProgressResponse_init_zero;
        if (br_pb_decode(ledgermq_admin_v1_ConsumerProgressResponse_fields, resp, rlen, &r, NULL,
                         0) == MQ_OK) {
            for (pb_size_t k = 0; k < r.queues_count; k++) {
                const ledgermq_admin_v1_QueueProgress *rp = &r.queues[k];
                if (!rp->owner || strcmp(rp->owner, job->owners[i].id) != 0 || !rp->topic) {
                    continue;
                }
                for (size_t j = i; j < job->n; j++) {
                    ledgermq_admin_v1_QueueProgress *p = &job->qp[j];
                    if (job->how[j] == BR_PROG_REMOTE && p->queue_id == rp->queue_id &&
                        strcmp(p->topic, rp->topic) == 0 &&
                        strcmp(job->owners[j].id, rp->owner) == 0) {
                        p->broker_offset = rp->broker_offset;
                        p->consumer_offset = rp->consumer_offset;
                        p->lag = rp->lag;
                        p->inflight = rp->inflight;
                        p->waiting = rp->waiting;
                        p->acked_above = rp->acked_above;
                    }
                }
            }
            pb_release(ledgermq_admin_v1_ConsumerProgressResponse_fields, &r);
        }
        free(resp);
    }
}

static void br_prog_job_free(br_prog_job_t *job)
{
    br_server_t *srv = job->srv;
    for (size_t i = 0; i < job->n; i++) {
        free(job->qp[i].topic);
    }
    free(job->qp);
    free(job->owners);
    free(job->how);
    free(job->req);
    rpc_call_unref(job->call);
    free(job);
    br_recv_op_end(srv);
}

/* Every local queue is in: the other owners, then the answer.
 * @locality srv->slow */
static void br_prog_answer_task(void *arg)
{
    br_prog_job_t *job = arg;
    if (!job->local) {
        br_prog_ask_owners(job);
    }
    ledgermq_admin_v1_ConsumerProgressResponse resp =
        ledgermq_admin_v1_ConsumerProgressResponse_init_zero;
    resp.group = job->group;
    resp.queues_count = (pb_size_t)job->n;
    resp.queues = job->qp;
    for (size_t i = 0; i < job->n; i++) {
        resp.total_lag += job->qp[i].lag;
    }
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(ledgermq_admin_v1_ConsumerProgressResponse_fields, &resp, &buf, &len) ==
        MQ_OK) {
        rpc_call_reply(job->call, buf, len);
        free(buf);
    } else {
        rpc_call_finish(job->call, RPC_INTERNAL, "cannot encode the response");
    }
    br_prog_job_free(job);
}

/* @locality srv->slow */
static void br_prog_task(void *arg)
{
    br_prog_job_t *job = arg;
    br_server_t *srv = job->srv;
    ledgermq_admin_v1_ConsumerProgressRequest r =
        ledgermq_admin_v1_ConsumerProgressRequest_init_zero;
    char why[200];
    if (br_pb_decode(ledgermq_admin_v1_ConsumerProgressRequest_fields, job->req, job->len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(job->call, RPC_INVALID_ARGUMENT, why);
        br_prog_job_free(job);
        return;
    }
    const char *group = br_pb_str(r.group);
    char topic[BR_TOPIC_NAME_MAX + 2];
    snprintf(topic, sizeof(topic), "%s", br_pb_str(r.topic));
    bool group_ok = br_group_name_valid(group);
    snprintf(job->group, sizeof(job->group), "%s", group_ok ? group : "");
    pb_release(ledgermq_admin_v1_ConsumerProgressRequest_fields, &r);
    if (!group_ok || (topic[0] && !br_topic_name_valid(topic))) {
        rpc_call_finish(job->call, RPC_INVALID_ARGUMENT,
                        group_ok ? "illegal topic name" : "illegal group name");
        br_prog_job_free(job);
        return;
    }
    mq_err_t err = br_groups_get(srv->groups, job->group, &job->grp);
    if (err != MQ_OK) {
        rpc_call_finish(job->call, err == MQ_ENOTFOUND ? RPC_NOT_FOUND : RPC_UNAVAILABLE,
                        err == MQ_ENOTFOUND ? "group does not exist" : mq_err_str(err));
        br_prog_job_free(job);
        return;
    }
    char **names = NULL;
    size_t nnames = 0;
    if (topic[0]) {
        br_topic_t t;
        err = br_topic_read(srv->zk, srv->root, topic, &t);
        if (err != MQ_OK) {
            rpc_call_finish(job->call, err == MQ_ENOTFOUND ? RPC_NOT_FOUND : RPC_UNAVAILABLE,
                            err == MQ_ENOTFOUND ? "topic does not exist" : mq_err_str(err));
            br_prog_job_free(job);
            return;
        }
        br_prog_add(job, &t);
    } else {
        char path[512];
        snprintf(path, sizeof(path), "%s/cursors/%s", srv->root, job->group);
        err = zk_children(srv->zk, path, &names, &nnames);
        if (err != MQ_OK && err != MQ_ENOTFOUND) {
            rpc_call_finish(job->call, RPC_UNAVAILABLE, mq_err_str(err));
            br_prog_job_free(job);
            return;
        }
        for (size_t i = 0; i < nnames; i++) {
            br_topic_t t;
            if (br_topic_read(srv->zk, srv->root, names[i], &t) == MQ_OK) {
                br_prog_add(job, &t);
            }
        }
        if (names) {
            zk_strings_free(names, nnames);
        }
    }
    br_prog_start(job);
}

void br_recv_progress_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping ||
        atomic_load(&srv->recv->stopping)) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        return;
    }
    br_prog_job_t *job = mq_calloc(1, sizeof(*job));
    job->srv = srv;
    job->call = call;
    job->req = mq_malloc(len ? len : 1);
    memcpy(job->req, req, len);
    job->len = len;
    job->local = rpc_call_header(call, BR_PROG_LOCAL_HEADER) != NULL;
    atomic_init(&job->pending, 1);
    rpc_call_ref(call);
    br_recv_op_begin(srv);
    mq_executor_submit(srv->slow, mq_mix64((uintptr_t)job), br_prog_task, job);
}
