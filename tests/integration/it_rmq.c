/*
 * it_rmq: see it_rmq.h.
 */
#include "it_rmq.h"

#include "it_broker.h"

#include <CUnit/CUnit.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_mlog.h"
#include "br_pb.h"
#include "br_record.h"
#include "lc_ledger.h"
#include "mq_crc32c.h"
#include "mq_util.h"
#include "rmq_service.pb.h"
#include "rpc.h"

#define IT_RMQ_SVC "/apache.rocketmq.v2.MessagingService/"

struct it_rmq {
    rpc_client_t *cl;
    rpc_channel_t *ch;
};

it_rmq_t *it_rmq_new(const char *endpoint)
{
    it_rmq_t *c = mq_calloc(1, sizeof(*c));
    if (rpc_client_new(&c->cl) != MQ_OK || rpc_channel_new(c->cl, endpoint, &c->ch) != MQ_OK) {
        if (c->cl) {
            rpc_client_free(c->cl);
        }
        free(c);
        return NULL;
    }
    return c;
}

void it_rmq_free(it_rmq_t *c)
{
    if (c) {
        rpc_channel_free(c->ch);
        rpc_client_free(c->cl);
        free(c);
    }
}

int it_rmq_group_queue(const char *group, int nqueues)
{
    uint32_t h = 2166136261u;
    for (const char *p = group; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    return (int)(h % (uint32_t)nqueues);
}

static atomic_uint_fast64_t it_rmq_idseq;

typedef struct it_rmq_enc {
    const it_rmq_msg_t *msgs;
    size_t n;
} it_rmq_enc_t;

static bool it_rmq_encode_msgs(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const it_rmq_enc_t *e = *arg;
    for (size_t i = 0; i < e->n; i++) {
        const it_rmq_msg_t *m = &e->msgs[i];
        apache_rocketmq_v2_Message pm = apache_rocketmq_v2_Message_init_zero;
        char id[48];
        if (!m->message_id) {
            snprintf(id, sizeof(id), "01000000000000%04X%08llX", (unsigned)(getpid() & 0xffff),
                     (unsigned long long)atomic_fetch_add(&it_rmq_idseq, 1));
        } else {
            snprintf(id, sizeof(id), "%s", m->message_id);
        }
        pm.has_topic = true;
        pm.topic.name = (char *)m->topic;
        pm.has_system_properties = true;
        apache_rocketmq_v2_SystemProperties *sp = &pm.system_properties;
        sp->message_id = id[0] ? id : NULL;
        sp->tag = (char *)m->tag;
        char *keys[1] = {(char *)m->key};
        if (m->key) {
            sp->keys_count = 1;
            sp->keys = keys;
        }
        sp->message_group = (char *)m->group;
        sp->message_type = m->type ? (apache_rocketmq_v2_MessageType)m->type
                                   : (m->group ? apache_rocketmq_v2_MessageType_FIFO
                                               : apache_rocketmq_v2_MessageType_NORMAL);
        sp->body_encoding = apache_rocketmq_v2_Encoding_IDENTITY;
        sp->has_born_timestamp = true;
        sp->born_timestamp.seconds = (int64_t)(mq_wall_ms() / 1000);
        sp->born_host = "it-host";
        apache_rocketmq_v2_Message_UserPropertiesEntry prop = {(char *)m->prop_key,
                                                               (char *)m->prop_val};
        if (m->prop_key) {
            pm.user_properties_count = 1;
            pm.user_properties = &prop;
        }
        br_pb_bytes_t body = {m->body, m->len, true};
        if (m->len) {
            pm.body.funcs.encode = br_pb_encode_bytes;
            pm.body.arg = &body;
        }
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, apache_rocketmq_v2_Message_fields, &pm)) {
            return false;
        }
    }
    return true;
}

int it_rmq_raw(it_rmq_t *c, const char *method, const void *req, size_t len, const char *client_id,
               int *code)
{
    rpc_md_t md[1] = {{"x-mq-client-id", client_id ? client_id : "it-client"}};
    size_t nmd = client_id && !*client_id ? 0 : 1;
    rpc_status_t st;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    *code = 0;
    if (rpc_channel_unary_sync(c->ch, method, md, nmd, req, len, 10000, &st, &resp, &rlen, NULL,
                               0) != MQ_OK) {
        return RPC_UNAVAILABLE;
    }
    if (st == RPC_OK) {
        /* Every response starts with Status status = 1. */
        apache_rocketmq_v2_HeartbeatResponse r = apache_rocketmq_v2_HeartbeatResponse_init_zero;
        if (br_pb_decode(apache_rocketmq_v2_HeartbeatResponse_fields, resp, rlen, &r, NULL, 0) ==
            MQ_OK) {
            *code = r.has_status ? (int)r.status.code : 0;
            pb_release(apache_rocketmq_v2_HeartbeatResponse_fields, &r);
        }
    }
    free(resp);
    return (int)st;
}

int it_rmq_send(it_rmq_t *c, const it_rmq_msg_t *msgs, size_t n, const char *client_id,
                it_rmq_result_t *results, uint32_t timeout_ms)
{
    it_rmq_enc_t e = {msgs, n};
    apache_rocketmq_v2_SendMessageRequest req = apache_rocketmq_v2_SendMessageRequest_init_zero;
    req.messages.funcs.encode = it_rmq_encode_msgs;
    req.messages.arg = &e;
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_SendMessageRequest_fields, &req, &buf, &len) != MQ_OK) {
        return -RPC_INTERNAL;
    }
    rpc_md_t md[1] = {{"x-mq-client-id", client_id ? client_id : "it-client"}};
    size_t nmd = client_id && !*client_id ? 0 : 1;
    rpc_status_t st;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    mq_err_t err = rpc_channel_unary_sync(c->ch, IT_RMQ_SVC "SendMessage", md, nmd, buf, len,
                                          timeout_ms, &st, &resp, &rlen, NULL, 0);
    free(buf);
    if (err != MQ_OK) {
        return -RPC_UNAVAILABLE;
    }
    if (st != RPC_OK) {
        return -(int)st;
    }
    apache_rocketmq_v2_SendMessageResponse r = apache_rocketmq_v2_SendMessageResponse_init_zero;
    int top = -RPC_INTERNAL;
    if (br_pb_decode(apache_rocketmq_v2_SendMessageResponse_fields, resp, rlen, &r, NULL, 0) ==
        MQ_OK) {
        top = r.has_status ? (int)r.status.code : 0;
        for (size_t i = 0; results && i < n; i++) {
            if (i < r.entries_count) {
                results[i].code = r.entries[i].has_status ? (int)r.entries[i].status.code : 0;
                results[i].queue = r.entries[i].queue_id;
                results[i].offset = r.entries[i].offset;
            } else {
                results[i].code = top;
                results[i].queue = -1;
                results[i].offset = -1;
            }
        }
        pb_release(apache_rocketmq_v2_SendMessageResponse_fields, &r);
    }
    free(resp);
    return top;
}

int it_rmq_route(it_rmq_t *c, const char *topic, int *nqueues, char *ep0, size_t cap)
{
    apache_rocketmq_v2_QueryRouteRequest req = apache_rocketmq_v2_QueryRouteRequest_init_zero;
    req.has_topic = true;
    req.topic.name = (char *)topic;
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_QueryRouteRequest_fields, &req, &buf, &len) != MQ_OK) {
        return -RPC_INTERNAL;
    }
    rpc_md_t md[1] = {{"x-mq-client-id", "it-client"}};
    rpc_status_t st;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    mq_err_t err = rpc_channel_unary_sync(c->ch, IT_RMQ_SVC "QueryRoute", md, 1, buf, len, 15000,
                                          &st, &resp, &rlen, NULL, 0);
    free(buf);
    if (err != MQ_OK || st != RPC_OK) {
        free(resp);
        return -(int)(err != MQ_OK ? RPC_UNAVAILABLE : st);
    }
    apache_rocketmq_v2_QueryRouteResponse r = apache_rocketmq_v2_QueryRouteResponse_init_zero;
    int code = -RPC_INTERNAL;
    if (br_pb_decode(apache_rocketmq_v2_QueryRouteResponse_fields, resp, rlen, &r, NULL, 0) ==
        MQ_OK) {
        code = r.has_status ? (int)r.status.code : 0;
        if (nqueues) {
            *nqueues = (int)r.message_queues_count;
        }
        if (ep0 && r.message_queues_count > 0 &&
            r.message_queues[0].broker.endpoints.addresses_count > 0) {
            apache_rocketmq_v2_Address *a = &r.message_queues[0].broker.endpoints.addresses[0];
            snprintf(ep0, cap, "%s:%d", br_pb_str(a->host), a->port);
        }
        pb_release(apache_rocketmq_v2_QueryRouteResponse_fields, &r);
    }
    free(resp);
    return code;
}

/* --- receive ----------------------------------------------------------------------- */

typedef struct it_rmq_stream {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    it_rmq_recv_res_t *res;
} it_rmq_stream_t;

static void it_rmq_copy(char *out, size_t cap, const char *s)
{
    snprintf(out, cap, "%s", s ? s : "");
}

static void it_rmq_stream_msg(const uint8_t *msg, size_t len, void *arg)
{
    it_rmq_stream_t *st = arg;
    it_rmq_recv_res_t *res = st->res;
    /* A {message} frame is decoded by hand: nanopb clears the callbacks of
     * a oneof member, so the body would be lost. */
    pb_istream_t is = pb_istream_from_buffer(msg, len);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    if (pb_decode_tag(&is, &wt, &tag, &eof) &&
        tag == apache_rocketmq_v2_ReceiveMessageResponse_message_tag && wt == PB_WT_STRING) {
        uint32_t mlen;
        if (!pb_decode_varint32(&is, &mlen) || mlen != is.bytes_left) {
            return;
        }
        br_pb_bytes_t body = {0};
        apache_rocketmq_v2_Message m = apache_rocketmq_v2_Message_init_zero;
        m.body.funcs.decode = br_pb_decode_bytes_ref;
        m.body.arg = &body;
        if (br_pb_decode(apache_rocketmq_v2_Message_fields, is.state, mlen, &m, NULL, 0) != MQ_OK) {
            return;
        }
        apache_rocketmq_v2_SystemProperties *sp = &m.system_properties;
        res->msgs = mq_realloc(res->msgs, (res->n + 1) * sizeof(*res->msgs));
        it_rmq_rmsg_t *o = &res->msgs[res->n++];
        memset(o, 0, sizeof(*o));
        it_rmq_copy(o->topic, sizeof(o->topic), m.has_topic ? m.topic.name : NULL);
        it_rmq_copy(o->message_id, sizeof(o->message_id), sp->message_id);
        it_rmq_copy(o->handle, sizeof(o->handle), sp->receipt_handle);
        it_rmq_copy(o->tag, sizeof(o->tag), sp->tag);
        it_rmq_copy(o->md5, sizeof(o->md5), sp->has_body_digest ? sp->body_digest.checksum : NULL);
        it_rmq_copy(o->dlq_topic, sizeof(o->dlq_topic),
                    sp->has_dead_letter_queue ? sp->dead_letter_queue.topic : NULL);
        o->queue = sp->queue_id;
        o->offset = sp->queue_offset;
        o->attempt = sp->delivery_attempt;
        o->len = body.len;
        o->body = mq_malloc(body.len ? body.len : 1);
        if (body.len) {
            memcpy(o->body, body.data, body.len);
        }
        pb_release(apache_rocketmq_v2_Message_fields, &m);
        return;
    }
    apache_rocketmq_v2_ReceiveMessageResponse r =
        apache_rocketmq_v2_ReceiveMessageResponse_init_zero;
    if (br_pb_decode(apache_rocketmq_v2_ReceiveMessageResponse_fields, msg, len, &r, NULL, 0) !=
        MQ_OK) {
        return;
    }
    if (r.which_content == apache_rocketmq_v2_ReceiveMessageResponse_status_tag) {
        res->code = (int)r.content.status.code;
        res->status_frames++;
    } else if (r.which_content ==
               apache_rocketmq_v2_ReceiveMessageResponse_delivery_timestamp_tag) {
        res->timestamp = true;
    }
    pb_release(apache_rocketmq_v2_ReceiveMessageResponse_fields, &r);
}

static void it_rmq_stream_end(rpc_status_t status, const char *details, void *arg)
{
    (void)details;
    it_rmq_stream_t *st = arg;
    pthread_mutex_lock(&st->mu);
    st->res->grpc = (int)status;
    st->done = true;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->mu);
}

static void it_rmq_duration(apache_rocketmq_v2_Duration *d, int64_t ms)
{
    d->seconds = ms / 1000;
    d->nanos = (int32_t)((ms % 1000) * 1000000);
}

int it_rmq_receive(it_rmq_t *c, const it_rmq_recv_req_t *rq, it_rmq_recv_res_t *res)
{
    memset(res, 0, sizeof(*res));
    apache_rocketmq_v2_ReceiveMessageRequest req =
        apache_rocketmq_v2_ReceiveMessageRequest_init_zero;
    req.has_group = true;
    req.group.name = (char *)rq->group;
    req.has_message_queue = true;
    req.message_queue.has_topic = true;
    req.message_queue.topic.name = (char *)rq->topic;
    req.message_queue.id = rq->queue;
    if (rq->filter_type) {
        req.has_filter_expression = true;
        req.filter_expression.type = (apache_rocketmq_v2_FilterType)rq->filter_type;
        req.filter_expression.expression = (char *)rq->filter;
    }
    req.batch_size = rq->batch;
    if (rq->invisible_ms >= 0) {
        req.has_invisible_duration = true;
        it_rmq_duration(&req.invisible_duration, rq->invisible_ms);
    }
    if (rq->poll_ms >= 0) {
        req.has_long_polling_timeout = true;
        it_rmq_duration(&req.long_polling_timeout, rq->poll_ms);
    }
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_ReceiveMessageRequest_fields, &req, &buf, &len) != MQ_OK) {
        return -RPC_INTERNAL;
    }
    it_rmq_stream_t st = {.res = res};
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cond, NULL);
    rpc_md_t md[1] = {{"x-mq-client-id", rq->client_id ? rq->client_id : "it-client"}};
    size_t nmd = rq->client_id && !*rq->client_id ? 0 : 1;
    mq_err_t err =
        rpc_channel_server_stream(c->ch, IT_RMQ_SVC "ReceiveMessage", md, nmd, buf, len,
                                  rq->timeout_ms, it_rmq_stream_msg, it_rmq_stream_end, &st);
    free(buf);
    if (err != MQ_OK) {
        res->grpc = RPC_UNAVAILABLE;
    } else {
        pthread_mutex_lock(&st.mu);
        while (!st.done) {
            pthread_cond_wait(&st.cond, &st.mu);
        }
        pthread_mutex_unlock(&st.mu);
    }
    pthread_mutex_destroy(&st.mu);
    pthread_cond_destroy(&st.cond);
    return res->grpc != RPC_OK ? -res->grpc : res->code;
}

void it_rmq_recv_res_fini(it_rmq_recv_res_t *res)
{
    for (size_t i = 0; i < res->n; i++) {
        free(res->msgs[i].body);
    }
    free(res->msgs);
    memset(res, 0, sizeof(*res));
}

/* --- load --------------------------------------------------------------------------- */

static void it_rmq_body(uint64_t seq, uint8_t *out, size_t size)
{
    uint64_t x = mq_mix64(seq + 1);
    for (size_t i = 0; i < size; i++) {
        if (i % 8 == 0) {
            x = mq_mix64(x + i);
        }
        out[i] = (uint8_t)(x >> ((i % 8) * 8));
    }
}

static void *it_rmq_load_main(void *arg)
{
    it_rmq_load_t *l = arg;
    it_rmq_t **cls = mq_calloc(l->nendpoints, sizeof(*cls));
    for (size_t i = 0; i < l->nendpoints; i++) {
        cls[i] = it_rmq_new(l->endpoints[i]);
    }
    size_t ep = 0;
    uint64_t seq = 0;
    uint64_t start = mq_now_ns();
    unsigned batch = l->batch ? l->batch : 1;
    it_rmq_msg_t *msgs = mq_calloc(batch, sizeof(*msgs));
    it_rmq_result_t *res = mq_calloc(batch, sizeof(*res));
    uint8_t *bodies = mq_malloc((size_t)batch * l->size);
    char(*groups)[32] = mq_calloc(batch, sizeof(*groups));
    while (!l->stop) {
        /* Open-loop pacing: batch k goes at start + k * batch / rate. */
        uint64_t due = start + seq * 1000000000ull / (l->rate ? l->rate : 1);
        uint64_t now = mq_now_ns();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                                  (long)((due - now) % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
        for (unsigned i = 0; i < batch; i++) {
            it_rmq_body(seq + i, bodies + (size_t)i * l->size, l->size);
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].topic = l->topic;
            msgs[i].body = bodies + (size_t)i * l->size;
            msgs[i].len = l->size;
            if (l->groups) {
                snprintf(groups[i], sizeof(groups[i]), "g%llu",
                         (unsigned long long)((seq + i) % l->groups));
                msgs[i].group = groups[i];
            }
        }
        uint64_t deadline = mq_now_ms() + 30000;
        for (;;) {
            int top = it_rmq_send(cls[ep], msgs, batch, NULL, res, 5000);
            if (top == 20000) {
                pthread_mutex_lock(&l->lock);
                for (unsigned i = 0; i < batch; i++) {
                    if (l->nacks == l->cap) {
                        l->cap = l->cap ? l->cap * 2 : 4096;
                        l->acks = mq_realloc(l->acks, l->cap * sizeof(*l->acks));
                    }
                    it_rmq_ack_t *a = &l->acks[l->nacks++];
                    a->queue = res[i].queue;
                    a->offset = res[i].offset;
                    a->seq = seq + i;
                    a->crc = mq_crc32c(0, bodies + (size_t)i * l->size, l->size);
                }
                l->sent += batch;
                pthread_mutex_unlock(&l->lock);
                break;
            }
            pthread_mutex_lock(&l->lock);
            l->retries++;
            pthread_mutex_unlock(&l->lock);
            ep = (ep + 1) % l->nendpoints;
            if (mq_now_ms() > deadline) {
                pthread_mutex_lock(&l->lock);
                l->failed_requests++;
                l->lost += batch;
                pthread_mutex_unlock(&l->lock);
                break;
            }
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        seq += batch;
    }
    free(groups);
    free(bodies);
    free(res);
    free(msgs);
    for (size_t i = 0; i < l->nendpoints; i++) {
        it_rmq_free(cls[i]);
    }
    free(cls);
    return NULL;
}

void it_rmq_load_start(it_rmq_load_t *l)
{
    pthread_mutex_init(&l->lock, NULL);
    l->stop = false;
    pthread_create(&l->tid, NULL, it_rmq_load_main, l);
}

void it_rmq_load_stop(it_rmq_load_t *l)
{
    l->stop = true;
    pthread_join(l->tid, NULL);
}

size_t it_rmq_load_acked(it_rmq_load_t *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = l->nacks;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void it_rmq_load_fini(it_rmq_load_t *l)
{
    free(l->acks);
    pthread_mutex_destroy(&l->lock);
}

/* --- verification ---------------------------------------------------------------------- */

static int it_rmq_ack_cmp(const void *a, const void *b)
{
    const it_rmq_ack_t *x = a, *y = b;
    if (x->queue != y->queue) {
        return x->queue < y->queue ? -1 : 1;
    }
    return x->offset < y->offset ? -1 : (x->offset > y->offset);
}

bool it_rmq_verify(it_cluster_t *c, const char *topic, int nqueues, const it_rmq_ack_t *acks,
                   size_t nacks)
{
    /* A reader that does not own a queue sees an open ledger only up to the
     * LAC the bookies know, one entry behind the writer; stopping the brokers
     * (a planned stop closes every ledger) makes the logs complete. */
    for (int i = 0; i < c->nbrokers; i++) {
        if (it_broker_alive(c, i)) {
            CU_ASSERT_EQUAL(it_broker_kill(c, i, SIGTERM), 0);
        }
    }
    lc_client_conf_t lcc;
    lc_client_conf_default(&lcc);
    lcc.zk = c->zk;
    lc_client_t *lc;
    CU_ASSERT_EQUAL_FATAL(lc_client_new(&lcc, &lc), MQ_OK);
    it_rmq_ack_t *sorted = mq_malloc((nacks ? nacks : 1) * sizeof(*sorted));
    memcpy(sorted, acks, nacks * sizeof(*sorted));
    qsort(sorted, nacks, sizeof(*sorted), it_rmq_ack_cmp);
    bool ok = true;
    size_t dups = 0, missing = 0, mismatched = 0, gaps = 0;
    for (size_t i = 1; i < nacks; i++) {
        if (sorted[i].queue == sorted[i - 1].queue && sorted[i].offset == sorted[i - 1].offset) {
            dups++;
        }
    }
    size_t k = 0;
    for (int q = 0; q < nqueues; q++) {
        /* The whole queue, in order: offsets must come back dense. */
        uint32_t *crcs = NULL;
        int64_t n = 0, cap = 0, next = 0;
        for (;;) {
            br_mlog_msg_t *msgs = NULL;
            size_t cnt = 0;
            mq_err_t err =
                br_mlog_read_detached(lc, "/ledgermq", topic, q, next, 1000, &msgs, &cnt);
            if (err == MQ_ENOTFOUND && next == 0) {
                break; /* a queue never written */
            }
            if (err != MQ_OK) {
                fprintf(stderr, "it_rmq_verify: read queue=%d offset=%lld: %s\n", q,
                        (long long)next, mq_err_str(err));
                ok = false;
                break;
            }
            if (cnt == 0) {
                br_mlog_msgs_free(msgs, cnt);
                break;
            }
            for (size_t i = 0; i < cnt; i++) {
                if (msgs[i].offset != next) {
                    gaps++;
                }
                next = msgs[i].offset + 1;
                if (n == cap) {
                    cap = cap ? cap * 2 : 4096;
                    crcs = mq_realloc(crcs, (size_t)cap * sizeof(*crcs));
                }
                uint64_t store;
                const uint8_t *m;
                size_t mlen;
                uint32_t crc = 0;
                if (br_record_parse(msgs[i].data, msgs[i].len, &store, &m, &mlen) == MQ_OK) {
                    br_pb_bytes_t body = {0};
                    apache_rocketmq_v2_Message pm = apache_rocketmq_v2_Message_init_zero;
                    pm.body.funcs.decode = br_pb_decode_bytes_ref;
                    pm.body.arg = &body;
                    if (br_pb_decode(apache_rocketmq_v2_Message_fields, m, mlen, &pm, NULL, 0) ==
                        MQ_OK) {
                        crc = mq_crc32c(0, body.data, body.len);
                        pb_release(apache_rocketmq_v2_Message_fields, &pm);
                    }
                }
                crcs[n++] = crc;
            }
            br_mlog_msgs_free(msgs, cnt);
        }
        for (; k < nacks && sorted[k].queue == q; k++) {
            if (sorted[k].offset < 0 || sorted[k].offset >= n) {
                missing++;
            } else if (crcs[sorted[k].offset] != sorted[k].crc) {
                mismatched++;
            }
        }
        free(crcs);
    }
    for (; k < nacks; k++) {
        missing++; /* acknowledged on a queue the topic does not have */
    }
    if (dups || missing || mismatched || gaps) {
        fprintf(stderr, "it_rmq_verify: acks=%zu dups=%zu missing=%zu mismatched=%zu gaps=%zu\n",
                nacks, dups, missing, mismatched, gaps);
        ok = false;
    }
    CU_ASSERT_EQUAL(dups, 0);
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(mismatched, 0);
    CU_ASSERT_EQUAL(gaps, 0);
    free(sorted);
    lc_client_free(lc);
    return ok;
}
