/*
 * br_admin: our admin service, ledgermq.admin.v1.Admin (proto/admin.proto),
 * on the broker's gRPC port: topics (create/update, list, describe with
 * each queue's owner, offsets and ledgers), the cluster's status (brokers,
 * leader, bookies) and reading stored messages. Any broker answers; all of
 * it comes from ZooKeeper and the ledgers (a queue's owner reads it through
 * its log, which also has the newest entries, not yet confirmed to readers
 * from outside). Errors are gRPC statuses.
 *
 * Threads: every call is decoded on the gRPC thread and handled on the slow
 * executor (it blocks on ZooKeeper and bookies).
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.pb.h"
#include "br_group.h"
#include "br_pb.h"
#include "br_record.h"
#include "br_server_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_ADMIN_SVC "/ledgermq.admin.v1.Admin/"
#define BR_ADMIN_LOCAL_HEADER "x-lmq-local"

typedef void (*br_admin_fn)(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len);

typedef struct br_admin_job {
    br_server_t *srv;
    rpc_call_t *call;
    br_admin_fn fn;
    uint8_t *req;
    size_t len;
} br_admin_job_t;

static void br_admin_reply(rpc_call_t *call, const pb_msgdesc_t *fields, const void *msg)
{
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(fields, msg, &buf, &len) != MQ_OK) {
        rpc_call_finish(call, RPC_INTERNAL, "cannot encode the response");
        return;
    }
    rpc_call_reply(call, buf, len);
    free(buf);
}

static rpc_status_t br_admin_status(mq_err_t err)
{
    switch (err) {
    case MQ_EINVAL:
        return RPC_INVALID_ARGUMENT;
    case MQ_ENOTFOUND:
        return RPC_NOT_FOUND;
    case MQ_EEXIST:
        return RPC_ALREADY_EXISTS;
    case MQ_EZK:
    case MQ_ESESSION:
    case MQ_ECONN:
    case MQ_ETIMEDOUT:
    case MQ_ENOTENOUGHBOOKIES:
        return RPC_UNAVAILABLE;
    default:
        return RPC_INTERNAL;
    }
}

static void br_admin_fill_topic(ledgermq_admin_v1_TopicConfig *tc, br_topic_t *t)
{
    tc->name = t->name;
    tc->queue_nums = t->queues;
    tc->perm = t->perm;
    tc->message_type = (char *)br_msg_type_name(t->type);
}

static void br_admin_create(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    ledgermq_admin_v1_CreateTopicRequest r = ledgermq_admin_v1_CreateTopicRequest_init_zero;
    char why[200];
    if (br_pb_decode(ledgermq_admin_v1_CreateTopicRequest_fields, req, len, &r, why, sizeof(why)) !=
        MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    br_topic_t t;
    memset(&t, 0, sizeof(t));
    const char *name = br_pb_str(r.topic.name);
    rpc_status_t st = RPC_OK;
    bool created = false;
    if (!br_topic_name_valid(name)) {
        st = RPC_INVALID_ARGUMENT;
        snprintf(why, sizeof(why), "illegal topic name '%.130s' (^[%%|a-zA-Z0-9_-]+$, 1..127)",
                 name);
        goto out;
    }
    snprintf(t.name, sizeof(t.name), "%s", name);
    t.queues = r.topic.queue_nums > 0 ? r.topic.queue_nums : (int)srv->conf->defaultTopicQueueNums;
    t.perm = r.topic.perm > 0 ? r.topic.perm : (BR_PERM_READ | BR_PERM_WRITE);
    t.type = BR_MSG_TYPE_NORMAL;
    t.ctime_ms = mq_wall_ms();
    if (r.topic.message_type && *r.topic.message_type &&
        !br_msg_type_parse(r.topic.message_type, &t.type)) {
        st = RPC_INVALID_ARGUMENT;
        snprintf(why, sizeof(why), "unknown message type '%.60s'", r.topic.message_type);
        goto out;
    }
    if (t.queues < 1 || t.queues > BR_TOPIC_MAX_QUEUES || (t.perm & ~6) != 0) {
        st = RPC_INVALID_ARGUMENT;
        snprintf(why, sizeof(why), "queue count must be 1..%d and perm a mix of 2 and 4",
                 BR_TOPIC_MAX_QUEUES);
        goto out;
    }
    mq_err_t err = br_topic_create(srv->zk, srv->root, &t);
    if (err == MQ_OK) {
        created = true;
    } else if (err == MQ_EEXIST && r.update) {
        br_topic_t old;
        err = br_topic_read(srv->zk, srv->root, t.name, &old);
        if (err == MQ_OK) {
            if (r.topic.queue_nums <= 0) {
                t.queues = old.queues;
            }
            if (r.topic.perm <= 0) {
                t.perm = old.perm;
            }
            if (!r.topic.message_type || !*r.topic.message_type) {
                t.type = old.type;
            }
            t.ctime_ms = old.ctime_ms;
            err = br_topic_update(srv->zk, srv->root, &t);
        }
    }
    if (err != MQ_OK) {
        st = br_admin_status(err);
        snprintf(why, sizeof(why), "%s",
                 err == MQ_EINVAL ? "the queue count may only grow" : mq_err_str(err));
        goto out;
    }
    MQ_LOG_INFO("topic %s topic=%s queues=%d type=%s", created ? "created" : "updated", t.name,
                t.queues, br_msg_type_name(t.type));
    br_cluster_kick(srv->cluster);
out:
    pb_release(ledgermq_admin_v1_CreateTopicRequest_fields, &r);
    if (st != RPC_OK) {
        rpc_call_finish(call, st, why);
        return;
    }
    ledgermq_admin_v1_CreateTopicResponse resp = ledgermq_admin_v1_CreateTopicResponse_init_zero;
    resp.has_topic = true;
    br_admin_fill_topic(&resp.topic, &t);
    resp.created = created;
    br_admin_reply(call, ledgermq_admin_v1_CreateTopicResponse_fields, &resp);
}

static void br_admin_list(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)req;
    (void)len;
    char **names = NULL;
    size_t n = 0;
    mq_err_t err = br_topic_list(srv->zk, srv->root, &names, &n);
    if (err != MQ_OK) {
        rpc_call_finish(call, br_admin_status(err), mq_err_str(err));
        return;
    }
    br_topic_t *ts = mq_calloc(n ? n : 1, sizeof(*ts));
    ledgermq_admin_v1_TopicConfig *tcs = mq_calloc(n ? n : 1, sizeof(*tcs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (br_topic_read(srv->zk, srv->root, names[i], &ts[k]) == MQ_OK) {
            br_admin_fill_topic(&tcs[k], &ts[k]);
            k++;
        }
    }
    ledgermq_admin_v1_ListTopicsResponse resp = ledgermq_admin_v1_ListTopicsResponse_init_zero;
    resp.topics_count = (pb_size_t)k;
    resp.topics = tcs;
    br_admin_reply(call, ledgermq_admin_v1_ListTopicsResponse_fields, &resp);
    free(tcs);
    free(ts);
    zk_strings_free(names, n);
}

/* Asks each other owner of the topic's queues for its own view (one call
 * per broker, marked local so it does not ask further). */
static void br_admin_ask_owners(br_server_t *srv, const br_topic_t *t, br_broker_info_t *owners,
                                ledgermq_admin_v1_QueueStatus *qs, int n)
{
    for (int i = 0; i < n; i++) {
        if (!qs[i].owner || strcmp(qs[i].owner, srv->id) == 0) {
            continue;
        }
        bool asked = false;
        for (int k = 0; k < i && !asked; k++) {
            asked = qs[k].owner && strcmp(qs[k].owner, qs[i].owner) == 0;
        }
        if (asked) {
            continue;
        }
        rpc_channel_t *ch = br_server_peer(srv, owners[i].endpoint);
        ledgermq_admin_v1_DescribeTopicRequest req =
            ledgermq_admin_v1_DescribeTopicRequest_init_zero;
        req.topic = (char *)t->name;
        uint8_t *buf, *resp = NULL;
        size_t len, rlen = 0;
        rpc_status_t st;
        if (!ch || br_pb_encode(ledgermq_admin_v1_DescribeTopicRequest_fields, &req, &buf, &len) !=
                       MQ_OK) {
            continue;
        }
        rpc_md_t md[] = {{BR_ADMIN_LOCAL_HEADER, "1"}};
        mq_err_t err = rpc_channel_unary_sync(ch, BR_ADMIN_SVC "DescribeTopic", md, 1, buf, len,
                                              3000, &st, &resp, &rlen, NULL, 0);
        free(buf);
        if (err != MQ_OK || st != RPC_OK) {
            MQ_LOG_WARN("cannot ask the owner for its queues topic=%s owner=%s err=%s status=%s",
                        t->name, qs[i].owner, mq_err_str(err), rpc_status_name(st));
            free(resp);
            continue;
        }
        ledgermq_admin_v1_DescribeTopicResponse r =
            ledgermq_admin_v1_DescribeTopicResponse_init_zero;
        if (br_pb_decode(ledgermq_admin_v1_DescribeTopicResponse_fields, resp, rlen, &r, NULL, 0) ==
            MQ_OK) {
            for (pb_size_t k = 0; k < r.queues_count; k++) {
                int q = r.queues[k].queue_id;
                /* Only the queues the asked broker owns itself. */
                if (q >= 0 && q < n && qs[q].owner && r.queues[k].owner &&
                    strcmp(qs[q].owner, qs[i].owner) == 0 &&
                    strcmp(r.queues[k].owner, qs[i].owner) == 0) {
                    qs[q].min_offset = r.queues[k].min_offset;
                    qs[q].max_offset = r.queues[k].max_offset;
                    qs[q].last_store_ms = r.queues[k].last_store_ms;
                }
            }
            pb_release(ledgermq_admin_v1_DescribeTopicResponse_fields, &r);
        }
        free(resp);
    }
}

static void br_admin_describe(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    ledgermq_admin_v1_DescribeTopicRequest r = ledgermq_admin_v1_DescribeTopicRequest_init_zero;
    char why[200];
    if (br_pb_decode(ledgermq_admin_v1_DescribeTopicRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    br_topic_t t;
    mq_err_t err = br_topic_name_valid(br_pb_str(r.topic))
                       ? br_topic_read(srv->zk, srv->root, r.topic, &t)
                       : MQ_EINVAL;
    pb_release(ledgermq_admin_v1_DescribeTopicRequest_fields, &r);
    if (err != MQ_OK) {
        rpc_call_finish(call, br_admin_status(err),
                        err == MQ_ENOTFOUND
                            ? "topic does not exist"
                            : (err == MQ_EINVAL ? "illegal topic name" : mq_err_str(err)));
        return;
    }
    int n = t.queues;
    ledgermq_admin_v1_QueueStatus *qs = mq_calloc((size_t)n, sizeof(*qs));
    br_broker_info_t *owners = mq_calloc((size_t)n, sizeof(*owners));
    br_broker_info_t *assignees = mq_calloc((size_t)n, sizeof(*assignees));
    br_mlog_info_t *infos = mq_calloc((size_t)n, sizeof(*infos));
    ledgermq_admin_v1_LedgerInfo **lis = mq_calloc((size_t)n, sizeof(*lis));
    for (int i = 0; i < n; i++) {
        ledgermq_admin_v1_QueueStatus *q = &qs[i];
        q->queue_id = i;
        bool self;
        if (br_cluster_owner(srv->cluster, t.name, i, &owners[i], &self) == MQ_OK) {
            q->owner = owners[i].id;
            q->owner_endpoint = owners[i].endpoint;
        }
        if (br_cluster_assignee(srv->cluster, t.name, i, &assignees[i]) == MQ_OK) {
            q->assignee = assignees[i].id;
        }
        q->min_offset = 0;
        q->max_offset = 0;
        if (br_mlog_info_read(srv->zk, srv->root, t.name, i, &infos[i]) == MQ_OK) {
            q->min_offset = infos[i].min_offset;
            q->max_offset = infos[i].max_offset;
            lis[i] = mq_calloc(infos[i].nledgers ? infos[i].nledgers : 1, sizeof(**lis));
            for (size_t k = 0; k < infos[i].nledgers; k++) {
                br_mlog_ledger_info_t *li = &infos[i].ledgers[k];
                lis[i][k].ledger_id = li->ledger;
                lis[i][k].first_offset = li->first_offset;
                lis[i][k].entries = li->entries;
                lis[i][k].messages = li->messages;
                lis[i][k].ctime_ms = li->ctime_ms;
            }
            q->ledgers_count = (pb_size_t)infos[i].nledgers;
            q->ledgers = lis[i];
        }
        /* The owner knows the acknowledged end exactly. */
        br_queue_t *lq = br_queue_get(srv, t.name, i);
        if (lq) {
            q->max_offset = br_mlog_max_offset(lq->ml);
            q->min_offset = br_mlog_min_offset(lq->ml);
            q->last_store_ms = __atomic_load_n(&lq->last_store_ms, __ATOMIC_RELAXED);
            br_queue_put(srv, lq);
        }
    }
    /* Queues owned by other brokers: their owners know the acknowledged
     * ends exactly (the list in ZooKeeper does not while a ledger is open). */
    if (!rpc_call_header(call, BR_ADMIN_LOCAL_HEADER)) {
        br_admin_ask_owners(srv, &t, owners, qs, n);
    }
    ledgermq_admin_v1_DescribeTopicResponse resp =
        ledgermq_admin_v1_DescribeTopicResponse_init_zero;
    resp.has_topic = true;
    br_admin_fill_topic(&resp.topic, &t);
    resp.queues_count = (pb_size_t)n;
    resp.queues = qs;
    br_admin_reply(call, ledgermq_admin_v1_DescribeTopicResponse_fields, &resp);
    for (int i = 0; i < n; i++) {
        free(lis[i]);
        if (infos[i].ledgers) {
            br_mlog_info_fini(&infos[i]);
        }
    }
    free(lis);
    free(infos);
    free(assignees);
    free(owners);
    free(qs);
}

static void br_admin_cluster(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)req;
    (void)len;
    br_broker_info_t *bs = NULL;
    size_t nb = 0;
    mq_err_t err = br_cluster_brokers(srv->cluster, &bs, &nb);
    if (err != MQ_OK) {
        rpc_call_finish(call, br_admin_status(err), mq_err_str(err));
        return;
    }
    char leader[BR_ID_MAX];
    br_cluster_leader(srv->cluster, leader, sizeof(leader));
    meta_bookie_info_t *bk = NULL;
    size_t nbk = 0;
    meta_bookies_list(srv->bookies, &bk, &nbk);
    ledgermq_admin_v1_BrokerInfo *bi = mq_calloc(nb ? nb : 1, sizeof(*bi));
    for (size_t i = 0; i < nb; i++) {
        bi[i].id = bs[i].id;
        bi[i].cluster = bs[i].cluster;
        bi[i].endpoint = bs[i].endpoint;
        bi[i].msgs_in = bs[i].load.msgs_in;
        bi[i].bytes_in = bs[i].load.bytes_in;
        bi[i].msgs_out = bs[i].load.msgs_out;
        bi[i].bytes_out = bs[i].load.bytes_out;
        bi[i].queues = bs[i].load.queues;
        bi[i].cpu = bs[i].load.cpu;
        bi[i].leader = strcmp(bs[i].id, leader) == 0;
    }
    ledgermq_admin_v1_BookieInfo *bki = mq_calloc(nbk ? nbk : 1, sizeof(*bki));
    for (size_t i = 0; i < nbk; i++) {
        bki[i].id = bk[i].id;
        bki[i].address = bk[i].address;
        bki[i].read_only = !bk[i].writable;
    }
    ledgermq_admin_v1_ClusterStatusResponse resp =
        ledgermq_admin_v1_ClusterStatusResponse_init_zero;
    resp.cluster = srv->conf->brokerClusterName;
    resp.leader = leader;
    resp.brokers_count = (pb_size_t)nb;
    resp.brokers = bi;
    resp.bookies_count = (pb_size_t)nbk;
    resp.bookies = bki;
    br_admin_reply(call, ledgermq_admin_v1_ClusterStatusResponse_fields, &resp);
    free(bki);
    free(bi);
    free(bk);
    free(bs);
}

/* One br_mlog_read of an owned queue, waited for. */
typedef struct br_admin_oread {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    mq_err_t err;
    br_mlog_msg_t *msgs; /* appended to, data copied */
    size_t n, max;
} br_admin_oread_t;

/* @thread the log's */
static void br_admin_oread_cb(mq_err_t err, const br_mlog_msg_t *msgs, size_t count, void *arg)
{
    br_admin_oread_t *o = arg;
    pthread_mutex_lock(&o->mu);
    o->err = err;
    for (size_t i = 0; err == MQ_OK && i < count && o->n < o->max; i++) {
        uint8_t *copy = mq_malloc(msgs[i].len ? msgs[i].len : 1);
        memcpy(copy, msgs[i].data, msgs[i].len);
        o->msgs[o->n++] = (br_mlog_msg_t){msgs[i].offset, copy, msgs[i].len};
    }
    o->done = true;
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->mu);
}

/* Reads an owned queue through its log, which knows every acknowledged
 * message: a reader from outside sees an open ledger only up to what the
 * bookies know is confirmed, at least one entry behind the writer.
 * Blocking. */
static mq_err_t br_admin_read_owned(br_queue_t *q, int64_t offset, size_t max, br_mlog_msg_t **msgs,
                                    size_t *count)
{
    br_admin_oread_t o = {.msgs = mq_malloc(MQ_MAX(max, (size_t)1) * sizeof(*o.msgs)), .max = max};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cond, NULL);
    mq_err_t err = MQ_OK;
    while (err == MQ_OK && o.n < max) {
        size_t before = o.n;
        int64_t at = before ? o.msgs[before - 1].offset + 1 : offset;
        o.done = false;
        err = br_mlog_read(q->ml, at, max - before, br_admin_oread_cb, &o);
        if (err != MQ_OK) {
            break;
        }
        pthread_mutex_lock(&o.mu);
        while (!o.done) {
            pthread_cond_wait(&o.cond, &o.mu);
        }
        err = o.err;
        pthread_mutex_unlock(&o.mu);
        if (o.n == before) {
            break; /* the end */
        }
    }
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cond);
    if (err != MQ_OK) {
        br_mlog_msgs_free(o.msgs, o.n);
        return err;
    }
    *msgs = o.msgs;
    *count = o.n;
    return MQ_OK;
}

static void br_admin_read(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    ledgermq_admin_v1_ReadMessagesRequest r = ledgermq_admin_v1_ReadMessagesRequest_init_zero;
    char why[200];
    if (br_pb_decode(ledgermq_admin_v1_ReadMessagesRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    char topic[BR_TOPIC_NAME_MAX + 1];
    snprintf(topic, sizeof(topic), "%s", br_pb_str(r.topic));
    int queue = r.queue_id;
    int64_t offset = r.offset;
    int max = r.max_messages > 0 ? r.max_messages : 32;
    pb_release(ledgermq_admin_v1_ReadMessagesRequest_fields, &r);
    if (!br_topic_name_valid(topic) || queue < 0 || queue >= BR_TOPIC_MAX_QUEUES || offset < 0 ||
        max > 1000) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT,
                        "need a legal topic, 0 <= queue, 0 <= offset and max_messages <= 1000");
        return;
    }
    br_mlog_msg_t *msgs = NULL;
    size_t n = 0;
    mq_err_t err;
    br_queue_t *q = br_queue_get(srv, topic, queue);
    if (q) {
        err = br_admin_read_owned(q, offset, (size_t)max, &msgs, &n);
        br_queue_put(srv, q);
    } else {
        err =
            br_mlog_read_detached(srv->lc, srv->root, topic, queue, offset, (size_t)max, &msgs, &n);
    }
    if (err != MQ_OK) {
        rpc_call_finish(call, br_admin_status(err), mq_err_str(err));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ledgermq_admin_v1_StoredMessage sm = ledgermq_admin_v1_StoredMessage_init_zero;
        br_pb_bytes_t b = {0};
        sm.offset = msgs[i].offset;
        if (br_record_parse(msgs[i].data, msgs[i].len, &sm.store_ms, &b.data, &b.len) != MQ_OK) {
            continue;
        }
        sm.message.funcs.encode = br_pb_encode_bytes;
        sm.message.arg = &b;
        uint8_t *buf;
        size_t blen;
        if (br_pb_encode(ledgermq_admin_v1_StoredMessage_fields, &sm, &buf, &blen) == MQ_OK) {
            rpc_call_write(call, buf, blen);
            free(buf);
        }
    }
    br_mlog_msgs_free(msgs, n);
    rpc_call_finish(call, RPC_OK, NULL);
}

static void br_admin_fill_group(ledgermq_admin_v1_GroupConfig *gc, br_group_t *g)
{
    gc->name = g->name;
    gc->retry_max_times = g->retry_max_times;
    gc->consume_orderly = g->fifo;
    gc->retry_initial_ms = g->retry_initial_ms;
    gc->retry_max_ms = g->retry_max_ms;
    gc->retry_multiplier = g->retry_multiplier;
}

/* Creates a group, or (update) rewrites an existing one; as RocketMQ's
 * updateSubGroup sends a whole config, fields left 0 take the defaults
 * rather than the old values. The creation time survives an update. */
static void br_admin_update_group(br_server_t *srv, rpc_call_t *call, const uint8_t *req,
                                  size_t len)
{
    ledgermq_admin_v1_UpdateGroupRequest r = ledgermq_admin_v1_UpdateGroupRequest_init_zero;
    char why[200];
    if (br_pb_decode(ledgermq_admin_v1_UpdateGroupRequest_fields, req, len, &r, why, sizeof(why)) !=
        MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    const ledgermq_admin_v1_GroupConfig *rg = &r.group;
    const char *name = br_pb_str(rg->name);
    rpc_status_t st = RPC_OK;
    br_group_t g;
    br_group_default(name, &g);
    if (!br_group_name_valid(name)) {
        st = RPC_INVALID_ARGUMENT;
        snprintf(why, sizeof(why), "illegal group name '%.130s' (^[%%|a-zA-Z0-9_-]+$, 1..255)",
                 name);
        goto out;
    }
    if (rg->retry_max_times < 0 || rg->retry_max_times > BR_GROUP_MAX_RETRY ||
        rg->retry_multiplier < 0) {
        st = RPC_INVALID_ARGUMENT;
        snprintf(why, sizeof(why), "retry_max_times must be 0..%d and retry_multiplier >= 1",
                 BR_GROUP_MAX_RETRY);
        goto out;
    }
    if (rg->retry_max_times > 0) {
        g.retry_max_times = rg->retry_max_times;
    }
    g.fifo = rg->consume_orderly;
    if (rg->retry_initial_ms > 0) {
        g.retry_initial_ms = rg->retry_initial_ms;
    }
    if (rg->retry_max_ms > 0) {
        g.retry_max_ms = rg->retry_max_ms;
    }
    if (rg->retry_multiplier > 0) {
        g.retry_multiplier = rg->retry_multiplier;
    }
    g.ctime_ms = mq_wall_ms();
    mq_err_t err;
    if (r.update) {
        br_group_t old;
        err = br_group_read(srv->zk, srv->root, g.name, &old);
        if (err == MQ_OK) {
            g.ctime_ms = old.ctime_ms;
        }
        /* A record that does not read is rewritten: that repairs it. */
        err = err == MQ_ECORRUPT || err == MQ_OK ? br_group_update(srv->zk, srv->root, &g) : err;
    } else {
        err = br_group_create(srv->zk, srv->root, &g);
    }
    if (err != MQ_OK) {
        st = br_admin_status(err);
        if (err == MQ_EINVAL) {
            snprintf(why, sizeof(why),
                     "bad retry policy: need 1 <= retry_initial_ms <= retry_max_ms <= 604800000 "
                     "and 1 <= retry_multiplier <= 100");
        } else if (err == MQ_EEXIST) {
            snprintf(why, sizeof(why), "group '%s' exists (set update to change it)", g.name);
        } else if (err == MQ_ENOTFOUND) {
            snprintf(why, sizeof(why), "group '%s' does not exist", g.name);
        } else {
            snprintf(why, sizeof(why), "%s", mq_err_str(err));
        }
        goto out;
    }
    MQ_LOG_INFO("group %s group=%s retryMaxTimes=%d consumeMessageOrderly=%d retryInitialMs=%u "
                "retryMaxMs=%u retryMultiplier=%g",
                r.update ? "updated" : "created", g.name, g.retry_max_times, (int)g.fifo,
                (unsigned)g.retry_initial_ms, (unsigned)g.retry_max_ms, g.retry_multiplier);
out:;
    bool created = !r.update;
    pb_release(ledgermq_admin_v1_UpdateGroupRequest_fields, &r);
    if (st != RPC_OK) {
        rpc_call_finish(call, st, why);
        return;
    }
    ledgermq_admin_v1_UpdateGroupResponse resp = ledgermq_admin_v1_UpdateGroupResponse_init_zero;
    resp.has_group = true;
    br_admin_fill_group(&resp.group, &g);
    resp.created = created;
    br_admin_reply(call, ledgermq_admin_v1_UpdateGroupResponse_fields, &resp);
}

static void br_admin_list_groups(br_server_t *srv, rpc_call_t *call, const uint8_t *req, size_t len)
{
    (void)req;
    (void)len;
    char **names = NULL;
    size_t n = 0;
    mq_err_t err = br_group_list(srv->zk, srv->root, &names, &n);
    if (err != MQ_OK) {
        rpc_call_finish(call, br_admin_status(err), mq_err_str(err));
        return;
    }
    br_group_t *gs = mq_calloc(n ? n : 1, sizeof(*gs));
    ledgermq_admin_v1_GroupConfig *gcs = mq_calloc(n ? n : 1, sizeof(*gcs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (br_group_read(srv->zk, srv->root, names[i], &gs[k]) == MQ_OK) {
            br_admin_fill_group(&gcs[k], &gs[k]);
            k++;
        }
    }
    ledgermq_admin_v1_ListGroupsResponse resp = ledgermq_admin_v1_ListGroupsResponse_init_zero;
    resp.groups_count = (pb_size_t)k;
    resp.groups = gcs;
    br_admin_reply(call, ledgermq_admin_v1_ListGroupsResponse_fields, &resp);
    free(gcs);
    free(gs);
    zk_strings_free(names, n);
}

static void br_admin_task(void *arg)
{
    br_admin_job_t *job = arg;
    job->fn(job->srv, job->call, job->req, job->len);
    rpc_call_unref(job->call);
    free(job->req);
    free(job);
}

static void br_admin_on_call(rpc_call_t *call, const uint8_t *req, size_t len, br_admin_fn fn,
                             br_server_t *srv)
{
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping) {
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        return;
    }
    br_admin_job_t *job = mq_calloc(1, sizeof(*job));
    job->srv = srv;
    job->call = call;
    job->fn = fn;
    job->req = mq_malloc(len ? len : 1);
    memcpy(job->req, req, len);
    job->len = len;
    rpc_call_ref(call);
    mq_executor_submit(srv->slow, mq_mix64((uintptr_t)job), br_admin_task, job);
}

#define BR_ADMIN_HANDLER(name, fn)                                                                 \
    static void name(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)                  \
    {                                                                                              \
        br_admin_on_call(call, req, len, fn, arg);                                                 \
    }
BR_ADMIN_HANDLER(br_admin_create_on_call, br_admin_create)
BR_ADMIN_HANDLER(br_admin_list_on_call, br_admin_list)
BR_ADMIN_HANDLER(br_admin_describe_on_call, br_admin_describe)
BR_ADMIN_HANDLER(br_admin_cluster_on_call, br_admin_cluster)
BR_ADMIN_HANDLER(br_admin_read_on_call, br_admin_read)
BR_ADMIN_HANDLER(br_admin_update_group_on_call, br_admin_update_group)
BR_ADMIN_HANDLER(br_admin_list_groups_on_call, br_admin_list_groups)

mq_err_t br_admin_register(br_server_t *srv)
{
    const rpc_method_t methods[] = {
        {BR_ADMIN_SVC "CreateTopic", RPC_KIND_UNARY, br_admin_create_on_call, NULL, NULL, srv},
        {BR_ADMIN_SVC "ListTopics", RPC_KIND_UNARY, br_admin_list_on_call, NULL, NULL, srv},
        {BR_ADMIN_SVC "DescribeTopic", RPC_KIND_UNARY, br_admin_describe_on_call, NULL, NULL, srv},
        {BR_ADMIN_SVC "ClusterStatus", RPC_KIND_UNARY, br_admin_cluster_on_call, NULL, NULL, srv},
        {BR_ADMIN_SVC "ReadMessages", RPC_KIND_SERVER_STREAM, br_admin_read_on_call, NULL, NULL,
         srv},
        {BR_ADMIN_SVC "UpdateGroup", RPC_KIND_UNARY, br_admin_update_group_on_call, NULL, NULL,
         srv},
        {BR_ADMIN_SVC "ListGroups", RPC_KIND_UNARY, br_admin_list_groups_on_call, NULL, NULL, srv},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        mq_err_t err = rpc_server_add_method(srv->rpc, &methods[i]);
        if (err != MQ_OK) {
            return err;
        }
    }
    return MQ_OK;
}
