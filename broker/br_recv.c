/*
 * br_recv: ReceiveMessage (RocketMQ 5's POP over gRPC), with long polling,
 * and what the consume side's files share (br_recv_int.h): its state,
 * registration, the group lookup and shutdown.
 *
 * A receive pops from the queues of its topic that THIS broker owns (the
 * request's queue id does not bind it: Node always names queue 0 and push
 * assignments name -1), up to batch_size (at most 32) messages, in rounds:
 * a round asks up to batch_size - got queues at once (from a rotating
 * start), sharing what is left evenly; a queue that filled its share may
 * have more and is asked again after the others. Per queue, on the
 * queue's executor key: the
 * group's cursor picks candidates (due redeliveries first, then new
 * offsets up to the log's end), the managed log reads them, and each is
 * then skipped (tag filter), deferred (its FIFO message group is still in
 * flight), moved to %DLQ%<group> (attempts exhausted) or delivered with a
 * receipt handle. Redeliveries persist an ATTEMPT record so attempts keep
 * counting across a takeover.
 *
 * Stream: {status OK}, one {message} per message (the stored Message bytes
 * plus the delivery overrides, br_deliver_build), {delivery_timestamp},
 * then gRPC OK. With nothing to deliver once the poll time is over:
 * {status MESSAGE_NOT_FOUND}, {delivery_timestamp}, gRPC OK.
 *
 * Long polling holds no thread: a receive in progress is registered as a
 * waiter on its topic. br_recv_notify (an append to a local queue of the
 * topic was acknowledged, a queue was acquired or released, an ack freed a
 * FIFO group) posts one wake-up per waiter; a timer on the waiter's key
 * fires at the poll's end or when a redelivery of its cursors becomes due.
 * Each wake-up makes one more pass over the queues. A notification during
 * a pass makes the pass run again, so none is lost.
 *
 * Threads: decoding and validation on the gRPC thread; topic and group
 * lookups there too when both records are in memory, else (blocking on a
 * miss) on srv->slow; the receive's own state on
 * its executor key (srv->ex, a key of its own); cursors on the queues'
 * keys.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_deliver.h"
#include "br_pb.h"
#include "br_record.h"
#include "br_recv_int.h"
#include "br_status.h"
#include "mq_log.h"
#include "mq_util.h"
#include "rmq_service.pb.h"

/* A pass finding something due that it could not deliver (a FIFO group in
 * flight, a full window) looks again after this, unless woken first. */
#define BR_RECV_RECHECK_MS 200
/* A receive at a broker that owns no queue of the topic ends after this,
 * so the client asks the owners (woken first when a queue is acquired). */
#define BR_RECV_NOQUEUE_MS 1000
/* A round asks one queue per this many messages still wanted (at least
 * one queue): a pop costs hops and its ack a cursor record on that queue,
 * so a few big pops beat many small ones; several in parallel keep one
 * busy queue from holding up the whole receive. */
#define BR_RECV_POP_SHARE 16
/* Extra rounds of a pass for queues that may have more. */
#define BR_RECV_REVISITS 8
/* Time left for writing the answer before the client's deadline. */
#define BR_RECV_ANSWER_MARGIN_MS 200

typedef struct br_recv_out {
    uint8_t *buf;
    size_t len;
    size_t body_len;
} br_recv_out_t;

typedef struct br_recv_ctx {
    br_server_t *srv;
    rpc_call_t *call;
    uint64_t key;
    char topic[BR_TOPIC_NAME_MAX + 1];
    uint32_t topic_hash;
    char group[BR_GROUP_NAME_MAX + 1];
    br_group_t grp;
    br_filter_t filter;
    size_t batch;
    uint64_t invisible_ms;
    uint64_t start_ms;
    uint64_t poll_end_ms;
    br_recv_out_t outs[BR_RECV_MAX_BATCH];
    size_t nout;
    /* the pass in progress: qids[0, nq) are the queues still to ask, those
     * not asked yet first */
    int qids[BR_TOPIC_MAX_QUEUES];
    int nlocal, nq, unasked, revisits;
    int pending;                  /* pops of the round still out */
    int nasked;                   /* queues the round asks: qids[0, nasked) */
    bool keep[BR_RECV_MAX_BATCH]; /* per asked queue: ask it again */
    uint64_t next_due;
    bool in_pass;
    /* waiting */
    bool registered;
    bool finished;
    unsigned pass_seq;
    /* Set from other threads; kept off the word of the flags above, which
     * the compiler may load as one (TSan then reports a race). */
    atomic_uint wake_seq;
    atomic_bool wake_posted;
    atomic_uint_fast64_t hint; /* queues (id % 64) notified since the last pass */
    mq_timer_t *timer;
    struct br_recv_ctx *wnext;
} br_recv_ctx_t;

/* One pop from one queue, on the queue's key. */
typedef struct br_recv_pop {
    br_recv_ctx_t *rctx;
    int queue;
    int slot; /* its index among the round's queues */
    size_t want;
    br_queue_t *q; /* referenced while reading */
    br_rcur_t *rc;
    br_cursor_pick_t picks[BR_RECV_MAX_BATCH];
    size_t npicks;
    uint8_t *data[BR_RECV_MAX_BATCH]; /* records read (copies) */
    size_t dlen[BR_RECV_MAX_BATCH];
    atomic_int reads;
    atomic_bool trimmed;
    atomic_bool short_read;
    /* result */
    br_recv_out_t outs[BR_RECV_MAX_BATCH];
    size_t nout;
    bool more;
    uint64_t next_due;
} br_recv_pop_t;

typedef struct br_recv_run {
    br_recv_pop_t *pop;
    size_t first; /* index into picks */
    size_t count;
} br_recv_run_t;

/* A message whose attempts ran out, on its way to the dead-letter queue. */
typedef struct br_recv_dead {
    br_server_t *srv;
    char topic[BR_TOPIC_NAME_MAX + 1];
    int queue;
    br_group_t grp;
    int64_t offset;
    int attempt;
    uint64_t gen;
    mq_err_t err;
} br_recv_dead_t;

static void br_recv_pass(br_recv_ctx_t *rctx);

/* --- shared helpers ---------------------------------------------------------------------- */

void br_recv_op_begin(br_server_t *srv)
{
    atomic_fetch_add(&srv->recv->ops, 1);
}

void br_recv_op_end(br_server_t *srv)
{
    atomic_fetch_sub(&srv->recv->ops, 1);
}

uint64_t br_recv_duration_ms(const apache_rocketmq_v2_Duration *d)
{
    if (d->seconds < 0 || d->nanos < 0) {
        return 0;
    }
    if (d->seconds > (int64_t)(UINT64_MAX / 2000)) {
        return UINT64_MAX / 2;
    }
    return (uint64_t)d->seconds * 1000u + (uint64_t)d->nanos / 1000000u;
}

void br_recv_reply_status(rpc_call_t *call, apache_rocketmq_v2_Code code, const char *text)
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

apache_rocketmq_v2_Code br_recv_group(br_server_t *srv, const char *name, br_group_t *out,
                                      const char **why)
{
    if (!br_group_name_valid(name)) {
        *why = "consumer group must match ^[%|a-zA-Z0-9_-]+$ and be 1..255 chars";
        return apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP;
    }
    mq_err_t err = srv->conf->autoCreateSubscriptionGroup ? br_groups_ensure(srv->groups, name, out)
                                                          : br_groups_get(srv->groups, name, out);
    if (err == MQ_ENOTFOUND) {
        *why = "consumer group does not exist";
        return apache_rocketmq_v2_Code_CONSUMER_GROUP_NOT_FOUND;
    }
    if (err != MQ_OK) {
        *why = mq_err_str(err);
        return err == MQ_EINVAL ? apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP
                                : br_status_code(err);
    }
    return apache_rocketmq_v2_Code_OK;
}

static uint32_t br_recv_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    }
    return h;
}

/* --- stream frames ----------------------------------------------------------------------- */

static void br_recv_write_frame(rpc_call_t *call,
                                const apache_rocketmq_v2_ReceiveMessageResponse *r)
{
    uint8_t *buf;
    size_t len;
    if (br_pb_encode(apache_rocketmq_v2_ReceiveMessageResponse_fields, r, &buf, &len) == MQ_OK) {
        rpc_call_write(call, buf, len);
        free(buf);
    }
}

static void br_recv_write_status(rpc_call_t *call, apache_rocketmq_v2_Code code, const char *text)
{
    apache_rocketmq_v2_ReceiveMessageResponse r =
        apache_rocketmq_v2_ReceiveMessageResponse_init_zero;
    r.which_content = apache_rocketmq_v2_ReceiveMessageResponse_status_tag;
    r.content.status.code = code;
    r.content.status.message = (char *)text;
    br_recv_write_frame(call, &r);
}

static void br_recv_write_timestamp(rpc_call_t *call)
{
    apache_rocketmq_v2_ReceiveMessageResponse r =
        apache_rocketmq_v2_ReceiveMessageResponse_init_zero;
    r.which_content = apache_rocketmq_v2_ReceiveMessageResponse_delivery_timestamp_tag;
    uint64_t now = mq_wall_ms();
    r.content.delivery_timestamp.seconds = (int64_t)(now / 1000);
    r.content.delivery_timestamp.nanos = (int32_t)((now % 1000) * 1000000);
    br_recv_write_frame(call, &r);
}

/* {message}: the delivered Message bytes as they are (field 2). */
static void br_recv_write_message(rpc_call_t *call, const uint8_t *msg, size_t len)
{
    size_t cap = len + 16;
    uint8_t *buf = mq_malloc(cap);
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    if (pb_encode_tag(&os, PB_WT_STRING, apache_rocketmq_v2_ReceiveMessageResponse_message_tag) &&
        pb_encode_string(&os, msg, len)) {
        rpc_call_write(call, buf, os.bytes_written);
    }
    free(buf);
}

/* --- waiters ----------------------------------------------------------------------------- */

static void br_recv_wake_task(void *arg)
{
    br_recv_ctx_t *rctx = arg;
    atomic_store(&rctx->wake_posted, false);
    if (rctx->finished || rctx->in_pass) {
        /* A pass in progress checks wake_seq when it ends. */
        return;
    }
    if (rctx->timer) {
        mq_timer_cancel(rctx->timer);
        rctx->timer = NULL;
    }
    br_recv_pass(rctx);
}

/* @locks srv->recv->wlock */
static void br_recv_wake_locked(br_server_t *srv, br_recv_ctx_t *w, int queue)
{
    if (queue >= 0) {
        atomic_fetch_or(&w->hint, 1ull << (queue & 63));
    }
    atomic_fetch_add(&w->wake_seq, 1);
    if (!atomic_exchange(&w->wake_posted, true)) {
        mq_executor_submit(srv->ex, w->key, br_recv_wake_task, w);
    }
}

void br_recv_notify(br_server_t *srv, const char *topic, int queue)
{
    br_recv_t *r = srv->recv;
    if (!r || atomic_load(&r->nwaiters) == 0) {
        return;
    }
    uint32_t h = br_recv_hash(topic, strlen(topic));
    pthread_mutex_lock(&r->wlock);
    for (br_recv_ctx_t *w = r->waiters; w; w = w->wnext) {
        if (w->topic_hash == h && strcmp(w->topic, topic) == 0) {
            br_recv_wake_locked(srv, w, queue);
        }
    }
    pthread_mutex_unlock(&r->wlock);
}

static void br_recv_register_waiter(br_recv_ctx_t *rctx)
{
    br_recv_t *r = rctx->srv->recv;
    pthread_mutex_lock(&r->wlock);
    rctx->wnext = r->waiters;
    r->waiters = rctx;
    rctx->registered = true;
    atomic_fetch_add(&r->nwaiters, 1);
    pthread_mutex_unlock(&r->wlock);
}

static void br_recv_unregister_waiter(br_recv_ctx_t *rctx)
{
    br_recv_t *r = rctx->srv->recv;
    if (!rctx->registered) {
        return;
    }
    pthread_mutex_lock(&r->wlock);
    for (br_recv_ctx_t **pp = &r->waiters; *pp; pp = &(*pp)->wnext) {
        if (*pp == rctx) {
            *pp = rctx->wnext;
            break;
        }
    }
    atomic_fetch_sub(&r->nwaiters, 1);
    rctx->registered = false;
    pthread_mutex_unlock(&r->wlock);
}

/* --- finishing --------------------------------------------------------------------------- */

static void br_recv_ctx_free(br_recv_ctx_t *rctx)
{
    br_server_t *srv = rctx->srv;
    for (size_t i = 0; i < rctx->nout; i++) {
        free(rctx->outs[i].buf);
    }
    br_filter_fini(&rctx->filter);
    rpc_call_unref(rctx->call);
    free(rctx);
    br_recv_op_end(srv);
}

static void br_recv_free_task(void *arg)
{
    br_recv_ctx_free(arg);
}

/* Answers and ends the receive. @locality the receive's key */
static void br_recv_finish(br_recv_ctx_t *rctx)
{
    br_server_t *srv = rctx->srv;
    if (rctx->timer) {
        mq_timer_cancel(rctx->timer);
        rctx->timer = NULL;
    }
    rctx->finished = true;
    br_recv_unregister_waiter(rctx);
    if (rctx->nout > 0) {
        br_recv_write_status(rctx->call, apache_rocketmq_v2_Code_OK, "OK");
        uint64_t bytes = 0;
        for (size_t i = 0; i < rctx->nout; i++) {
            br_recv_write_message(rctx->call, rctx->outs[i].buf, rctx->outs[i].len);
            bytes += rctx->outs[i].body_len;
        }
        atomic_fetch_add(&srv->msgs_out, rctx->nout);
        atomic_fetch_add(&srv->bytes_out, bytes);
    } else {
        br_recv_write_status(rctx->call, apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND,
                             "no new message");
    }
    br_recv_write_timestamp(rctx->call);
    rpc_call_finish(rctx->call, RPC_OK, NULL);
    /* Wake-ups posted before the unregistration run first: the free
     * comes after them on the same key. */
    mq_executor_submit(srv->ex, rctx->key, br_recv_free_task, rctx);
}

/* --- dead-lettering from a pop ----------------------------------------------------------- */

static bool br_recv_dead_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg)
{
    br_recv_dead_t *dj = arg;
    if (err == MQ_OK && rc->gen == dj->gen) {
        if (dj->err != MQ_OK) {
            /* Picked again later, and dead-lettered then. */
            br_cursor_unpick(rc->cur, dj->offset);
        } else if (br_cursor_ack(rc->cur, dj->offset, dj->attempt) == MQ_OK) {
            mq_buf_t *rec = NULL;
            br_cursor_rec_ack(&rec, &dj->offset, 1);
            br_rcur_append(srv, q, rc, rec, NULL, NULL);
        }
    }
    if (dj->err == MQ_OK) {
        MQ_LOG_DEBUG("moved to the dead-letter queue group=%s topic=%s queue=%d offset=%lld",
                     dj->grp.name, dj->topic, dj->queue, (long long)dj->offset);
    }
    free(dj);
    br_recv_op_end(srv);
    return false;
}

static void br_recv_dead_done(mq_err_t err, void *arg)
{
    br_recv_dead_t *dj = arg;
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot move a message to the dead-letter queue group=%s topic=%s queue=%d "
                    "offset=%lld err=%s",
                    dj->grp.name, dj->topic, dj->queue, (long long)dj->offset, mq_err_str(err));
    }
    dj->err = err;
    br_rcur_with(dj->srv, dj->topic, dj->queue, &dj->grp, br_recv_dead_fn, dj);
}

/* --- pops -------------------------------------------------------------------------------- */

static void br_recv_pop_result_task(void *arg);

static void br_recv_pop_answer(br_recv_pop_t *pop)
{
    mq_executor_submit(pop->rctx->srv->ex, pop->rctx->key, br_recv_pop_result_task, pop);
}

/* Turns what was read into deliveries. @locality queue key */
static void br_recv_pop_process_task(void *arg)
{
    br_recv_pop_t *pop = arg;
    br_recv_ctx_t *rctx = pop->rctx;
    br_server_t *srv = rctx->srv;
    br_queue_t *q = pop->q;
    br_rcur_t *rc = pop->rc;
    br_cursor_t *c = rc->cur;
    uint64_t now = mq_now_ms();
    /* FIFO: an offset whose message was not read (a read stops at an entry
     * boundary) has no known message group, so it cannot block the later
     * offsets of its group; hand none of the later offsets out either. Picks
     * have gaps (offsets acknowledged out of order, or before a takeover),
     * so later runs may well have been read. */
    bool hold = false;
    for (size_t i = 0; i < pop->npicks; i++) {
        const br_cursor_pick_t *p = &pop->picks[i];
        if (!pop->data[i] || hold) {
            hold = hold || rc->grp.fifo;
            br_cursor_unpick(c, p->offset);
            continue;
        }
        uint64_t store_ms;
        const uint8_t *msg;
        size_t msg_len;
        br_msg_view_t v;
        if (br_record_parse(pop->data[i], pop->dlen[i], &store_ms, &msg, &msg_len) != MQ_OK ||
            br_deliver_scan(msg, msg_len, &v) != MQ_OK) {
            /* Never deliverable: do not let it hold the queue back. */
            MQ_LOG_WARN("skipping a corrupt stored message topic=%s queue=%d offset=%lld", q->topic,
                        q->id, (long long)p->offset);
            br_cursor_skip(c, p->offset);
            continue;
        }
        if (p->dlq) {
            br_recv_dead_t *dj = mq_calloc(1, sizeof(*dj));
            dj->srv = srv;
            snprintf(dj->topic, sizeof(dj->topic), "%s", q->topic);
            dj->queue = q->id;
            dj->grp = rctx->grp;
            dj->offset = p->offset;
            dj->attempt = p->attempt;
            dj->gen = rc->gen;
            br_recv_op_begin(srv);
            br_dlq_store(srv, rctx->group, q->topic, msg, msg_len, br_recv_dead_done, dj);
            continue;
        }
        if (!br_filter_match(&rctx->filter, v.tag)) {
            br_cursor_skip(c, p->offset);
            continue;
        }
        uint32_t ghash = 0;
        if (v.group.len > 0) {
            ghash = br_recv_hash(v.group.p, v.group.len);
            ghash = ghash ? ghash : 1;
        }
        if (rc->grp.fifo && ghash && br_cursor_group_blocked(c, ghash, p->offset)) {
            br_cursor_defer(c, p->offset, now, ghash);
            continue;
        }
        int attempt = br_cursor_deliver(c, p->offset, now, rctx->invisible_ms, ghash);
        if (attempt == 0) {
            continue; /* dropped meanwhile (retention) */
        }
        br_handle_t h = {q->id, p->offset, attempt, mq_wall_ms() + rctx->invisible_ms};
        char handle[BR_HANDLE_MAX];
        br_handle_encode(&h, q->topic, rctx->group, handle);
        char md5[33];
        br_deliver_md5_hex(v.body, v.body_len, md5);
        br_deliver_fields_t f = {
            .topic = q->topic,
            .receipt_handle = handle,
            .queue_id = q->id,
            .queue_offset = p->offset,
            .delivery_attempt = h.attempt,
            .store_ms = store_ms,
            .store_host = srv->endpoint,
            .body_md5_hex = md5,
            .invisible_ms = rctx->invisible_ms,
        };
        size_t out_len;
        uint8_t *out = br_deliver_build(msg, msg_len, &f, &out_len);
        if (!out) {
            /* In flight but not handed out: it comes back after the
             * invisible time, and goes to the DLQ in the end. */
            MQ_LOG_WARN("cannot build a delivery topic=%s queue=%d offset=%lld", q->topic, q->id,
                        (long long)p->offset);
            continue;
        }
        pop->outs[pop->nout].buf = out;
        pop->outs[pop->nout].len = out_len;
        pop->outs[pop->nout].body_len = v.body_len;
        pop->nout++;
        if (attempt >= 2) {
            mq_buf_t *rec = NULL;
            br_cursor_rec_attempt(&rec, p->offset, attempt);
            br_rcur_append(srv, q, rc, rec, NULL, NULL);
        }
    }
    if (atomic_load(&pop->trimmed)) {
        br_cursor_clamp(c, br_mlog_min_offset(q->ml));
    }
    for (size_t i = 0; i < pop->npicks; i++) {
        free(pop->data[i]);
        pop->data[i] = NULL;
    }
    pop->more = atomic_load(&pop->short_read);
    pop->next_due = br_cursor_next_due(c);
    rc->busy--;
    pop->q = NULL;
    br_recv_pop_answer(pop);
    br_rcur_unpark(srv, rc);
    br_queue_put(srv, q);
}

static void br_recv_pop_read_done(br_recv_pop_t *pop)
{
    if (atomic_fetch_sub(&pop->reads, 1) == 1) {
        mq_executor_submit(pop->rctx->srv->ex, br_queue_key(pop->q->topic, pop->q->id),
                           br_recv_pop_process_task, pop);
    }
}

/* @thread the log's (ledger client or queue key); copies what it needs. */
static void br_recv_pop_read_cb(mq_err_t err, const br_mlog_msg_t *msgs, size_t count, void *arg)
{
    br_recv_run_t *run = arg;
    br_recv_pop_t *pop = run->pop;
    if (err == MQ_ENOTFOUND) {
        atomic_store(&pop->trimmed, true);
    }
    int64_t base = pop->picks[run->first].offset;
    for (size_t k = 0; err == MQ_OK && k < count; k++) {
        int64_t d = msgs[k].offset - base;
        if (d < 0 || (size_t)d >= run->count) {
            continue;
        }
        size_t i = run->first + (size_t)d;
        pop->data[i] = mq_malloc(msgs[k].len ? msgs[k].len : 1);
        memcpy(pop->data[i], msgs[k].data, msgs[k].len);
        pop->dlen[i] = msgs[k].len;
    }
    if (err != MQ_OK || count < run->count) {
        atomic_store(&pop->short_read, true);
    }
    free(run);
    br_recv_pop_read_done(pop);
}

/* Picks and starts the reads. @locality queue key */
static bool br_recv_pop_fn(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg)
{
    br_recv_pop_t *pop = arg;
    (void)srv;
    if (err != MQ_OK) {
        pop->next_due = UINT64_MAX;
        br_recv_pop_answer(pop);
        return false;
    }
    if (rc->grp.fifo && rc->busy > 0) {
        br_rcur_park(rc, q, br_recv_pop_fn, pop);
        return true;
    }
    br_cursor_clamp(rc->cur, br_mlog_min_offset(q->ml));
    pop->npicks =
        br_cursor_pick(rc->cur, mq_now_ms(), br_mlog_max_offset(q->ml), pop->picks, pop->want);
    if (pop->npicks == 0) {
        pop->next_due = br_cursor_next_due(rc->cur);
        br_recv_pop_answer(pop);
        return false;
    }
    pop->q = q;
    pop->rc = rc;
    rc->busy++;
    /* One read per run of consecutive offsets; a guard count keeps the
     * last completion from firing before every read is started. */
    atomic_init(&pop->reads, 1);
    size_t i = 0;
    while (i < pop->npicks) {
        size_t j = i + 1;
        while (j < pop->npicks && pop->picks[j].offset == pop->picks[j - 1].offset + 1) {
            j++;
        }
        br_recv_run_t *run = mq_malloc(sizeof(*run));
        run->pop = pop;
        run->first = i;
        run->count = j - i;
        atomic_fetch_add(&pop->reads, 1);
        mq_err_t rerr =
            br_mlog_read(q->ml, pop->picks[i].offset, run->count, br_recv_pop_read_cb, run);
        if (rerr != MQ_OK) {
            if (rerr == MQ_ENOTFOUND) {
                atomic_store(&pop->trimmed, true);
            }
            atomic_store(&pop->short_read, true);
            free(run);
            atomic_fetch_sub(&pop->reads, 1);
        }
        i = j;
    }
    br_recv_pop_read_done(pop);
    return true;
}

static void br_recv_round(br_recv_ctx_t *rctx);

static void br_recv_pop_result_task(void *arg)
{
    br_recv_pop_t *pop = arg;
    br_recv_ctx_t *rctx = pop->rctx;
    for (size_t i = 0; i < pop->nout; i++) {
        MQ_ASSERT(rctx->nout < BR_RECV_MAX_BATCH);
        rctx->outs[rctx->nout++] = pop->outs[i];
    }
    if (pop->next_due < rctx->next_due) {
        rctx->next_due = pop->next_due;
    }
    /* Ask again a queue that filled its share, or whose read stopped at an
     * entry boundary: it may have more. */
    rctx->keep[pop->slot] = pop->more || (pop->want > 0 && pop->nout >= pop->want);
    free(pop);
    if (--rctx->pending > 0) {
        return;
    }
    /* The round is over: the queues not asked yet go first next time, then
     * those to ask again. */
    int kept[BR_RECV_MAX_BATCH];
    int nk = 0;
    for (int j = 0; j < rctx->nasked; j++) {
        if (rctx->keep[j]) {
            kept[nk++] = rctx->qids[j];
        }
    }
    int rest = rctx->nq - rctx->nasked;
    memmove(rctx->qids, rctx->qids + rctx->nasked, (size_t)rest * sizeof(rctx->qids[0]));
    memcpy(rctx->qids + rest, kept, (size_t)nk * sizeof(kept[0]));
    rctx->nq = rest + nk;
    br_recv_round(rctx);
}

/* --- passes ------------------------------------------------------------------------------ */

static void br_recv_timer_task(void *arg)
{
    br_recv_ctx_t *rctx = arg;
    rctx->timer = NULL;
    br_recv_pass(rctx);
}

/* After a pass: answer, pass again, or wait. @locality the receive's key */
static void br_recv_pass_done(br_recv_ctx_t *rctx)
{
    br_server_t *srv = rctx->srv;
    rctx->in_pass = false;
    if (rctx->nout > 0 || atomic_load(&srv->recv->stopping) || rpc_call_over(rctx->call)) {
        br_recv_finish(rctx);
        return;
    }
    uint64_t now = mq_now_ms();
    uint64_t end = rctx->poll_end_ms;
    if (rctx->nlocal == 0 && rctx->start_ms + BR_RECV_NOQUEUE_MS < end) {
        end = rctx->start_ms + BR_RECV_NOQUEUE_MS;
    }
    if (now >= end) {
        br_recv_finish(rctx);
        return;
    }
    if (atomic_load(&rctx->wake_seq) != rctx->pass_seq) {
        br_recv_pass(rctx);
        return;
    }
    uint64_t at = end;
    if (rctx->next_due != UINT64_MAX) {
        uint64_t due = rctx->next_due > now ? rctx->next_due : now + BR_RECV_RECHECK_MS;
        at = due < at ? due : at;
    }
    rctx->timer =
        mq_executor_schedule(srv->ex, rctx->key, at > now ? at - now : 1, br_recv_timer_task, rctx);
}

/* One round of a pass: asks up to batch - got queues at once, sharing what
 * is left between them, each on its own key (so a busy queue holds back
 * only its own share). Every queue is asked once per pass; those that may
 * have more are asked again in at most BR_RECV_REVISITS further rounds.
 * @locality the receive's key */
static void br_recv_round(br_recv_ctx_t *rctx)
{
    br_server_t *srv = rctx->srv;
    size_t left = rctx->batch - rctx->nout;
    if (left == 0 || rctx->nq == 0 || (rctx->unasked == 0 && rctx->revisits >= BR_RECV_REVISITS) ||
        atomic_load(&srv->recv->stopping) || rpc_call_over(rctx->call)) {
        br_recv_pass_done(rctx);
        return;
    }
    if (rctx->unasked == 0) {
        rctx->revisits++;
    }
    int k = (int)MQ_MIN((size_t)rctx->nq, (left + BR_RECV_POP_SHARE - 1) / BR_RECV_POP_SHARE);
    rctx->unasked = MQ_MAX(rctx->unasked - k, 0);
    rctx->nasked = k;
    rctx->pending = k;
    for (int j = 0; j < k; j++) {
        br_recv_pop_t *pop = mq_calloc(1, sizeof(*pop));
        pop->rctx = rctx;
        pop->slot = j;
        pop->queue = rctx->qids[j];
        pop->want = left / (size_t)k + ((size_t)j < left % (size_t)k ? 1 : 0);
        rctx->keep[j] = false;
        /* Its answer comes back on this key, after this task. */
        br_rcur_with(srv, rctx->topic, pop->queue, &rctx->grp, br_recv_pop_fn, pop);
    }
}

static void br_recv_reverse(int *v, int n)
{
    for (int i = 0, j = n - 1; i < j; i++, j--) {
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* One pass over the local queues of the topic, starting at a rotating
 * one. @locality the receive's key */
static void br_recv_pass(br_recv_ctx_t *rctx)
{
    br_server_t *srv = rctx->srv;
    rctx->in_pass = true;
    rctx->pass_seq = atomic_load(&rctx->wake_seq);
    int n = br_queue_local(srv, rctx->topic, rctx->qids, BR_TOPIC_MAX_QUEUES);
    if (n > 1) {
        int first = (int)(atomic_fetch_add(&srv->recv->rr, 1) % (uint64_t)n);
        br_recv_reverse(rctx->qids, first);
        br_recv_reverse(rctx->qids + first, n - first);
        br_recv_reverse(rctx->qids, n);
    }
    /* The queues a notification named go first (in the same rotation). */
    uint64_t hint = atomic_exchange(&rctx->hint, 0);
    if (hint && n > 1) {
        int first[BR_TOPIC_MAX_QUEUES];
        int nf = 0;
        int k = 0;
        for (int j = 0; j < n; j++) {
            if (hint & (1ull << (rctx->qids[j] & 63))) {
                first[nf++] = rctx->qids[j];
            } else {
                rctx->qids[k++] = rctx->qids[j];
            }
        }
        memmove(rctx->qids + nf, rctx->qids, (size_t)k * sizeof(rctx->qids[0]));
        memcpy(rctx->qids, first, (size_t)nf * sizeof(first[0]));
    }
    rctx->nlocal = n;
    rctx->nq = n;
    rctx->unasked = n;
    rctx->revisits = 0;
    rctx->next_due = UINT64_MAX;
    br_recv_round(rctx);
}

static void br_recv_first_pass_task(void *arg)
{
    br_recv_pass(arg);
}

/* Answers a refused receive, or registers it and starts its first pass.
 * Any thread. */
static void br_recv_begin(br_recv_ctx_t *rctx, apache_rocketmq_v2_Code code, const char *why)
{
    br_server_t *srv = rctx->srv;
    if (code != apache_rocketmq_v2_Code_OK) {
        br_recv_write_status(rctx->call, code, why);
        rpc_call_finish(rctx->call, RPC_OK, NULL);
        br_recv_ctx_free(rctx);
        return;
    }
    /* Registered before the first pass: an append acknowledged from now
     * on makes a pass run (again). */
    rctx->in_pass = true;
    br_recv_register_waiter(rctx);
    mq_executor_submit(srv->ex, rctx->key, br_recv_first_pass_task, rctx);
}

/* Topic and group lookups (blocking on a miss), then the first pass.
 * @locality srv->slow */
static void br_recv_prepare_task(void *arg)
{
    br_recv_ctx_t *rctx = arg;
    br_server_t *srv = rctx->srv;
    br_topic_t t;
    const char *why = NULL;
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_OK;
    mq_err_t err = br_topics_get(srv->topics, rctx->topic, &t);
    if (err == MQ_ENOTFOUND) {
        code = apache_rocketmq_v2_Code_TOPIC_NOT_FOUND;
        why = "topic does not exist";
    } else if (err != MQ_OK) {
        code = br_status_code(err);
        why = mq_err_str(err);
    } else if (!(t.perm & BR_PERM_READ)) {
        code = apache_rocketmq_v2_Code_FORBIDDEN;
        why = "topic is not readable";
    } else {
        code = br_recv_group(srv, rctx->group, &rctx->grp, &why);
    }
    br_recv_begin(rctx, code, why);
}

/* --- the call ---------------------------------------------------------------------------- */

static void br_recv_refuse(rpc_call_t *call, apache_rocketmq_v2_Code code, const char *why)
{
    br_recv_write_status(call, code, why);
    rpc_call_finish(call, RPC_OK, NULL);
}

void br_recv_receive_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg)
{
    br_server_t *srv = arg;
    const br_conf_t *conf = srv->conf;
    apache_rocketmq_v2_ReceiveMessageRequest r = apache_rocketmq_v2_ReceiveMessageRequest_init_zero;
    char why[160];
    if (br_pb_decode(apache_rocketmq_v2_ReceiveMessageRequest_fields, req, len, &r, why,
                     sizeof(why)) != MQ_OK) {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, why);
        return;
    }
    if (!atomic_load_explicit(&srv->ready, memory_order_acquire) || srv->stopping ||
        atomic_load(&srv->recv->stopping)) {
        pb_release(apache_rocketmq_v2_ReceiveMessageRequest_fields, &r);
        rpc_call_finish(call, RPC_UNAVAILABLE, "the broker is starting or stopping");
        return;
    }
    const char *client = rpc_call_header(call, "x-mq-client-id");
    const char *group = r.has_group ? br_pb_str(r.group.name) : "";
    const char *topic = r.has_message_queue && r.message_queue.has_topic
                            ? br_pb_str(r.message_queue.topic.name)
                            : "";
    apache_rocketmq_v2_Code code = apache_rocketmq_v2_Code_OK;
    const char *text = NULL;
    br_filter_t filter;
    memset(&filter, 0, sizeof(filter));
    bool have_filter = false;
    uint64_t invisible = (uint64_t)conf->defaultInvisibleTimeMills;
    uint64_t poll = (uint64_t)conf->grpcClientConsumerMaxLongPollingTimeoutMillis;
    int64_t left = rpc_call_remaining_ms(call);
    if (!client || !*client) {
        code = apache_rocketmq_v2_Code_CLIENT_ID_REQUIRED;
        text = "x-mq-client-id header is required";
    } else if (!br_group_name_valid(group)) {
        code = apache_rocketmq_v2_Code_ILLEGAL_CONSUMER_GROUP;
        text = "consumer group must match ^[%|a-zA-Z0-9_-]+$ and be 1..255 chars";
    } else if (!br_topic_name_valid(topic)) {
        code = apache_rocketmq_v2_Code_ILLEGAL_TOPIC;
        text = "topic name must match ^[%|a-zA-Z0-9_-]+$ and be 1..127 chars";
    } else if (br_filter_parse(r.has_filter_expression ? (int)r.filter_expression.type : 1,
                               r.has_filter_expression ? br_pb_str(r.filter_expression.expression)
                                                       : "*",
                               &filter) != MQ_OK) {
        code = apache_rocketmq_v2_Code_ILLEGAL_FILTER_EXPRESSION;
        text = "only TAG filters (\"*\" or \"a||b\") are supported";
    } else if (r.batch_size <= 0) {
        have_filter = true;
        code = apache_rocketmq_v2_Code_BAD_REQUEST;
        text = "batch_size must be positive";
    } else {
        have_filter = true;
        if (r.has_invisible_duration) {
            invisible = br_recv_duration_ms(&r.invisible_duration);
            if (invisible < (uint64_t)conf->minInvisibleTimeMillsForRecv ||
                invisible > (uint64_t)conf->maxInvisibleTimeMills) {
                code = apache_rocketmq_v2_Code_ILLEGAL_INVISIBLE_TIME;
                text = "invisible_duration is out of range";
            }
        }
        if (code == apache_rocketmq_v2_Code_OK && r.has_long_polling_timeout) {
            poll = br_recv_duration_ms(&r.long_polling_timeout);
            if (poll < (uint64_t)conf->grpcClientConsumerMinLongPollingTimeoutMillis ||
                poll > (uint64_t)conf->grpcClientConsumerMaxLongPollingTimeoutMillis) {
                code = apache_rocketmq_v2_Code_ILLEGAL_POLLING_TIME;
                text = "long_polling_timeout is out of range";
            }
        } else if (code == apache_rocketmq_v2_Code_OK && left != INT64_MAX) {
            /* No polling time (Go): what the deadline leaves, minus a
             * second for the answer to travel. */
            uint64_t l = left > 1000 ? (uint64_t)(left - 1000) : 0;
            poll = l < poll ? l : poll;
        }
    }
    if (code != apache_rocketmq_v2_Code_OK) {
        if (have_filter) {
            br_filter_fini(&filter);
        }
        pb_release(apache_rocketmq_v2_ReceiveMessageRequest_fields, &r);
        br_recv_refuse(call, code, text);
        return;
    }
    /* Never beyond the client's deadline. */
    if (left != INT64_MAX) {
        uint64_t cap =
            left > BR_RECV_ANSWER_MARGIN_MS ? (uint64_t)left - BR_RECV_ANSWER_MARGIN_MS : 0;
        poll = poll < cap ? poll : cap;
    }
    br_recv_ctx_t *rctx = mq_calloc(1, sizeof(*rctx));
    rctx->srv = srv;
    rctx->call = call;
    rctx->key = mq_mix64((uintptr_t)rctx);
    snprintf(rctx->topic, sizeof(rctx->topic), "%s", topic);
    rctx->topic_hash = br_recv_hash(rctx->topic, strlen(rctx->topic));
    snprintf(rctx->group, sizeof(rctx->group), "%s", group);
    rctx->filter = filter;
    rctx->batch = r.batch_size > BR_RECV_MAX_BATCH ? BR_RECV_MAX_BATCH : (size_t)r.batch_size;
    rctx->invisible_ms = invisible;
    rctx->start_ms = mq_now_ms();
    rctx->poll_end_ms = rctx->start_ms + poll;
    atomic_init(&rctx->wake_posted, false);
    atomic_init(&rctx->wake_seq, 0);
    atomic_init(&rctx->hint, 0);
    pb_release(apache_rocketmq_v2_ReceiveMessageRequest_fields, &r);
    rpc_call_ref(call);
    br_recv_op_begin(srv);
    /* Topic and group in memory (the usual case): no hop to srv->slow. */
    br_topic_t t;
    if (br_topics_peek(srv->topics, rctx->topic, &t) == MQ_OK &&
        br_groups_peek(srv->groups, rctx->group, &rctx->grp) == MQ_OK) {
        bool readable = (t.perm & BR_PERM_READ) != 0;
        br_recv_begin(rctx,
                      readable ? apache_rocketmq_v2_Code_OK : apache_rocketmq_v2_Code_FORBIDDEN,
                      readable ? NULL : "topic is not readable");
        return;
    }
    mq_executor_submit(srv->slow, rctx->key, br_recv_prepare_task, rctx);
}

/* --- lifecycle --------------------------------------------------------------------------- */

mq_err_t br_recv_init(br_server_t *srv)
{
    br_recv_t *r = mq_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->wlock, NULL);
    atomic_init(&r->nwaiters, 0);
    atomic_init(&r->ops, 0);
    atomic_init(&r->stopping, false);
    atomic_init(&r->rr, 0);
    atomic_init(&r->gen, 0);
    r->io = mq_executor_new("cursors", 2);
    srv->recv = r;
    return MQ_OK;
}

mq_err_t br_recv_register(br_server_t *srv)
{
    const rpc_method_t methods[] = {
        {BR_RECV_SVC "ReceiveMessage", RPC_KIND_SERVER_STREAM, br_recv_receive_on_call, NULL, NULL,
         srv},
        {BR_RECV_SVC "AckMessage", RPC_KIND_UNARY, br_recv_ack_on_call, NULL, NULL, srv},
        {BR_RECV_SVC "ChangeInvisibleDuration", RPC_KIND_UNARY, br_recv_change_on_call, NULL, NULL,
         srv},
        {BR_RECV_SVC "ForwardMessageToDeadLetterQueue", RPC_KIND_UNARY, br_recv_forward_dlq_on_call,
         NULL, NULL, srv},
        {BR_RECV_SVC "QueryAssignment", RPC_KIND_UNARY, br_recv_assign_on_call, NULL, NULL, srv},
        {"/ledgermq.admin.v1.Admin/ConsumerProgress", RPC_KIND_UNARY, br_recv_progress_on_call,
         NULL, NULL, srv},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        mq_err_t err = rpc_server_add_method(srv->rpc, &methods[i]);
        if (err != MQ_OK) {
            return err;
        }
    }
    return MQ_OK;
}

void br_recv_stop(br_server_t *srv)
{
    br_recv_t *r = srv->recv;
    if (!r) {
        return;
    }
    atomic_store(&r->stopping, true);
    pthread_mutex_lock(&r->wlock);
    for (br_recv_ctx_t *w = r->waiters; w; w = w->wnext) {
        br_recv_wake_locked(srv, w, -1);
    }
    pthread_mutex_unlock(&r->wlock);
    for (int i = 0; i < 1000 && atomic_load(&r->ops) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&r->ops) > 0) {
        MQ_LOG_WARN("consume work still pending at shutdown count=%d", atomic_load(&r->ops));
    }
    /* Nothing starts a load any more; those under way finish (posting to
     * srv->ex, still running). */
    if (r->io) {
        mq_executor_free(r->io);
        r->io = NULL;
    }
}

void br_recv_fini(br_server_t *srv)
{
    if (!srv->recv) {
        return;
    }
    pthread_mutex_destroy(&srv->recv->wlock);
    free(srv->recv);
    srv->recv = NULL;
}
