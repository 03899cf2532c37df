/*
 * rpc_call: one server call, from its arrival to the moment gRPC reports it
 * over. rpc_server.c creates it when a posted request matches; the
 * application answers it with reply/write/finish from any thread.
 *
 * Batches: RECV_CLOSE_ON_SERVER is started alone at arrival; it completes
 * only when the whole call is over and says whether it was cancelled. Sends
 * go through one queue with at most one send batch in flight: the first
 * batch carries the initial metadata, a message goes out when the previous
 * send completed, and the status goes with the last queued message (a unary
 * reply is one {SEND_INITIAL_METADATA, SEND_MESSAGE, SEND_STATUS_FROM_SERVER}
 * batch) or alone once the queue drained. Bidi calls keep one RECV_MESSAGE
 * posted, re-posted after each on_message returns, so messages reach the
 * application one at a time and in order.
 *
 * Invariants (call->mu): every grpc_call_start_batch happens under mu;
 * pending counts the started batches that have not completed plus one
 * "hold" while a callback (on_call) runs, so on_done can only follow the
 * last callback even with several cq threads. The call is over when
 * RECV_CLOSE completed and pending is 0: then on_done runs once, the grpc
 * call is released and the server drops its reference. A batch that gRPC
 * refuses poisons the call (rpc_int.h), so any refusal cancels it. After the
 * close (or a refusal) the call is "dead": queued sends are dropped and
 * every reply/write/finish returns MQ_ECLOSED.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

struct rpc_call {
    atomic_uint refs;
    rpc_server_t *srv;
    const rpc_srv_method_t *method; /* NULL: answered by the server itself */
    const char *path;
    rpc_kind_t kind;
    grpc_call *gcall;
    char *peer;          /* from grpc_call_get_peer (gpr_free) */
    int64_t deadline_ms; /* on mq_now_ms()'s clock; INT64_MAX: none */
    rpc_md_t *hdrs;      /* request metadata, one allocation with the strings */
    size_t nhdrs;
    void *user;
    atomic_bool dead_flag; /* mirrors dead for rpc_call_over() */
    rpc_tag_t close_tag;
    rpc_tag_t send_tag;
    rpc_tag_t recv_tag;
    int close_cancelled;       /* RECV_CLOSE_ON_SERVER's result */
    grpc_byte_buffer *recv_bb; /* RECV_MESSAGE's result */

    pthread_mutex_t mu;
    /* @locks mu */
    unsigned pending;
    bool app;         /* on_call ran: on_done is due */
    bool close_done;  /* RECV_CLOSE completed (or could not start) */
    bool failed;      /* a batch was refused and the call cancelled */
    bool dead;        /* nothing more is sent */
    bool over;        /* on_done is running or ran */
    bool md_sent;     /* initial metadata is in a started batch */
    bool send_busy;   /* a send batch is in flight */
    bool finished;    /* reply/finish was called */
    bool status_sent; /* the status is in a started batch */
    grpc_byte_buffer *send_bb;
    rpc_sendq_t sendq;
    rpc_status_t status;
    bool has_details;
    grpc_slice details;
};

static void rpc_call_destroy(rpc_call_t *call)
{
    MQ_ASSERT(call->gcall == NULL);
    rpc_sendq_clear(&call->sendq);
    if (call->has_details) {
        grpc_slice_unref(call->details);
    }
    gpr_free(call->peer);
    free(call->hdrs);
    pthread_mutex_destroy(&call->mu);
    free(call);
}

void rpc_call_ref(rpc_call_t *call)
{
    atomic_fetch_add_explicit(&call->refs, 1, memory_order_relaxed);
}

void rpc_call_unref(rpc_call_t *call)
{
    if (atomic_fetch_sub_explicit(&call->refs, 1, memory_order_acq_rel) == 1) {
        rpc_call_destroy(call);
    }
}

static void rpc_call_copy_headers(rpc_call_t *call, const grpc_metadata_array *md)
{
    size_t bytes = 0;
    for (size_t i = 0; i < md->count; i++) {
        bytes +=
            GRPC_SLICE_LENGTH(md->metadata[i].key) + GRPC_SLICE_LENGTH(md->metadata[i].value) + 2;
    }
    call->nhdrs = md->count;
    call->hdrs = mq_malloc(md->count * sizeof(rpc_md_t) + bytes + 1);
    char *p = (char *)(call->hdrs + md->count);
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key;
        const grpc_slice *v = &md->metadata[i].value;
        size_t klen = GRPC_SLICE_LENGTH(*k);
        size_t vlen = GRPC_SLICE_LENGTH(*v);
        const uint8_t *kp = GRPC_SLICE_START_PTR(*k);
        call->hdrs[i].key = p;
        for (size_t j = 0; j < klen; j++) {
            char c = (char)kp[j];
            *p++ = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        *p++ = '\0';
        call->hdrs[i].value = p;
        if (vlen) {
            memcpy(p, GRPC_SLICE_START_PTR(*v), vlen);
        }
        p += vlen;
        *p++ = '\0';
    }
}

rpc_call_t *rpc_call_new(rpc_server_t *srv, const rpc_srv_method_t *method, grpc_call *gcall,
                         gpr_timespec deadline, const grpc_metadata_array *md)
{
    rpc_call_t *call = mq_calloc(1, sizeof(*call));
    atomic_init(&call->refs, 1);
    atomic_init(&call->dead_flag, false);
    call->srv = srv;
    call->method = method;
    /* What the public functions need is copied: the application may hold
     * the call after the server (and its method table) is gone. */
    call->path = method ? method->m.path : NULL;
    call->kind = method ? method->m.kind : RPC_KIND_UNARY;
    call->gcall = gcall;
    call->peer = grpc_call_get_peer(gcall);
    if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) >= 0) {
        call->deadline_ms = INT64_MAX;
    } else {
        /* gRPC's clocks are not ours: keep the time left, on our clock. */
        gpr_timespec left = gpr_time_sub(deadline, gpr_now(deadline.clock_type));
        call->deadline_ms = (int64_t)mq_now_ms() + gpr_time_to_millis(left);
    }
    rpc_call_copy_headers(call, md);
    call->close_tag.ctx = call;
    call->close_tag.kind = RPC_TAG_CALL_CLOSE;
    call->send_tag.ctx = call;
    call->send_tag.kind = RPC_TAG_CALL_SEND;
    call->recv_tag.ctx = call;
    call->recv_tag.kind = RPC_TAG_CALL_RECV;
    pthread_mutex_init(&call->mu, NULL);
    return call;
}

/* @locks mu. Marks the call dead: nothing queued will be sent. */
static void rpc_call_kill_locked(rpc_call_t *call)
{
    call->dead = true;
    atomic_store(&call->dead_flag, true);
    rpc_sendq_clear(&call->sendq);
    if (call->has_details) {
        grpc_slice_unref(call->details);
        call->has_details = false;
    }
}

/* @locks mu. gRPC refused a batch: the call is unusable (the refused batch
 * poisoned its slot), so cancel it; RECV_CLOSE then reports it over. */
static void rpc_call_fail_locked(rpc_call_t *call, const char *what, grpc_call_error err)
{
    MQ_LOG_WARN("rpc call batch refused method=%s batch=%s err=%s", call->path ? call->path : "-",
                what, grpc_call_error_to_string(err));
    call->failed = true;
    rpc_call_kill_locked(call);
    grpc_call_cancel(call->gcall, NULL);
}

/* @locks mu. Starts the next send batch if none is in flight: the initial
 * metadata if not sent yet, the next queued message, and the status when
 * finishing and nothing else is queued. */
static void rpc_call_pump_locked(rpc_call_t *call)
{
    if (call->send_busy || call->dead || call->status_sent) {
        return;
    }
    grpc_byte_buffer *bb = rpc_sendq_pop(&call->sendq);
    bool status = call->finished && call->sendq.n == 0;
    if (!bb && !status) {
        return;
    }
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!call->md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        if (call->sendq.n > 0) {
            /* More follows at once: let gRPC coalesce the writes. The last
             * queued message goes without the hint and flushes them. */
            ops[n].flags = GRPC_WRITE_BUFFER_HINT;
        }
        n++;
    }
    if (status) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)call->status;
        ops[n].data.send_status_from_server.status_details =
            call->has_details ? &call->details : NULL;
        n++;
    }
    RPC_TAG_ARM(&call->send_tag);
    grpc_call_error err = grpc_call_start_batch(call->gcall, ops, n, &call->send_tag, NULL);
    if (status && call->has_details) {
        /* gRPC copies the details during start_batch. */
        grpc_slice_unref(call->details);
        call->has_details = false;
    }
    if (err != GRPC_CALL_OK) {
        if (bb) {
            grpc_byte_buffer_destroy(bb);
        }
        rpc_call_fail_locked(call, status ? "status" : "send", err);
        return;
    }
    call->md_sent = true;
    call->send_busy = true;
    call->send_bb = bb;
    call->status_sent = status;
    call->pending++;
}

/* @locks mu. */
static void rpc_call_post_recv_locked(rpc_call_t *call)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &call->recv_bb;
    RPC_TAG_ARM(&call->recv_tag);
    grpc_call_error err = grpc_call_start_batch(call->gcall, &op, 1, &call->recv_tag, NULL);
    if (err != GRPC_CALL_OK) {
        rpc_call_fail_locked(call, "recv", err);
        return;
    }
    call->pending++;
}

/* @locks mu. True (once) when the call just became over. */
static bool rpc_call_check_over_locked(rpc_call_t *call)
{
    if (!call->over && call->close_done && call->pending == 0) {
        call->over = true;
        return true;
    }
    return false;
}

/* The call is over: tell the application, release the grpc call, let the
 * server forget it and drop the server's reference. No lock held. */
static void rpc_call_on_over(rpc_call_t *call)
{
    bool cancelled = call->close_cancelled != 0 || call->failed;
    if (call->app && call->method->m.on_done) {
        call->method->m.on_done(call, cancelled, call->method->m.arg);
    }
    pthread_mutex_lock(&call->mu);
    grpc_call *gcall = call->gcall;
    call->gcall = NULL;
    pthread_mutex_unlock(&call->mu);
    grpc_call_unref(gcall);
    /* After this the server may be freed: srv is not touched again. */
    rpc_server_call_over(call->srv);
    rpc_call_unref(call);
}

/* Starts RECV_CLOSE_ON_SERVER and takes the hold for the arrival callback. */
static void rpc_call_open(rpc_call_t *call)
{
    pthread_mutex_lock(&call->mu);
    call->pending = 1;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &call->close_cancelled;
    RPC_TAG_ARM(&call->close_tag);
    grpc_call_error err = grpc_call_start_batch(call->gcall, &op, 1, &call->close_tag, NULL);
    if (err != GRPC_CALL_OK) {
        /* Nothing will report the close: it is as good as done. */
        call->close_done = true;
        rpc_call_fail_locked(call, "close", err);
    } else {
        call->pending++;
    }
    pthread_mutex_unlock(&call->mu);
}

/* Drops the arrival hold. */
static void rpc_call_release_hold(rpc_call_t *call, bool post_recv)
{
    pthread_mutex_lock(&call->mu);
    if (post_recv && !call->dead) {
        rpc_call_post_recv_locked(call);
    }
    call->pending--;
    bool over = rpc_call_check_over_locked(call);
    pthread_mutex_unlock(&call->mu);
    if (over) {
        rpc_call_on_over(call);
    }
}

void rpc_call_start(rpc_call_t *call, grpc_byte_buffer *payload)
{
    const rpc_method_t *m = &call->method->m;
    rpc_call_open(call);
    if (m->kind == RPC_KIND_BIDI) {
        call->app = true;
        m->on_call(call, NULL, 0, m->arg);
        /* Receiving starts after on_call, so that on_message never runs
         * before it or beside it on another cq thread. */
        rpc_call_release_hold(call, true);
        return;
    }
    rpc_flat_t flat;
    if (!rpc_flat_init(&flat, payload)) {
        MQ_LOG_WARN("rpc unreadable request method=%s peer=%s", call->path, call->peer);
        grpc_byte_buffer_destroy(payload);
        rpc_call_finish(call, RPC_INTERNAL, "unreadable request message");
        rpc_call_release_hold(call, false);
        return;
    }
    call->app = true;
    m->on_call(call, flat.data, flat.len, m->arg);
    rpc_flat_fini(&flat);
    grpc_byte_buffer_destroy(payload);
    rpc_call_release_hold(call, false);
}

void rpc_call_reject(rpc_call_t *call, rpc_status_t status, const char *details)
{
    rpc_call_open(call);
    rpc_call_finish(call, status, details);
    rpc_call_release_hold(call, false);
}

static void rpc_call_on_recv(rpc_call_t *call, bool ok)
{
    grpc_byte_buffer *bb = call->recv_bb;
    call->recv_bb = NULL;
    bool more = false;
    if (ok && bb) {
        rpc_flat_t flat;
        if (rpc_flat_init(&flat, bb)) {
            call->method->m.on_message(call, flat.data, flat.len, call->method->m.arg);
            rpc_flat_fini(&flat);
            more = true;
        } else {
            MQ_LOG_WARN("rpc unreadable message method=%s peer=%s", call->path, call->peer);
            pthread_mutex_lock(&call->mu);
            if (!call->dead) {
                call->failed = true;
                rpc_call_kill_locked(call);
                grpc_call_cancel_with_status(call->gcall, GRPC_STATUS_INTERNAL,
                                             "unreadable request message", NULL);
            }
            pthread_mutex_unlock(&call->mu);
        }
        grpc_byte_buffer_destroy(bb);
    } else if (ok) {
        /* The client half-closed. */
        call->method->m.on_message(call, NULL, 0, call->method->m.arg);
    }
    pthread_mutex_lock(&call->mu);
    call->pending--;
    if (more && !call->dead) {
        rpc_call_post_recv_locked(call);
    }
    bool over = rpc_call_check_over_locked(call);
    pthread_mutex_unlock(&call->mu);
    if (over) {
        rpc_call_on_over(call);
    }
}

void rpc_call_on_event(rpc_call_t *call, rpc_tag_kind_t kind, bool ok)
{
    if (kind == RPC_TAG_CALL_RECV) {
        rpc_call_on_recv(call, ok);
        return;
    }
    pthread_mutex_lock(&call->mu);
    call->pending--;
    if (kind == RPC_TAG_CALL_CLOSE) {
        call->close_done = true;
        rpc_call_kill_locked(call);
    } else {
        MQ_ASSERT(kind == RPC_TAG_CALL_SEND && call->send_busy);
        call->send_busy = false;
        if (call->send_bb) {
            grpc_byte_buffer_destroy(call->send_bb);
            call->send_bb = NULL;
        }
        if (!ok && !call->dead) {
            /* The stream broke under the send; the close will say how. */
            rpc_call_kill_locked(call);
            grpc_call_cancel(call->gcall, NULL);
        }
        rpc_call_pump_locked(call);
    }
    bool over = rpc_call_check_over_locked(call);
    pthread_mutex_unlock(&call->mu);
    if (over) {
        rpc_call_on_over(call);
    }
}

const char *rpc_call_method(const rpc_call_t *call)
{
    return call->path;
}

const char *rpc_call_header(const rpc_call_t *call, const char *key)
{
    for (size_t i = 0; i < call->nhdrs; i++) {
        if (strcasecmp(call->hdrs[i].key, key) == 0) {
            return call->hdrs[i].value;
        }
    }
    return NULL;
}

const char *rpc_call_peer(const rpc_call_t *call)
{
    return call->peer ? call->peer : "";
}

int64_t rpc_call_remaining_ms(const rpc_call_t *call)
{
    if (call->deadline_ms == INT64_MAX) {
        return INT64_MAX;
    }
    int64_t left = call->deadline_ms - (int64_t)mq_now_ms();
    return left > 0 ? left : 0;
}

bool rpc_call_over(const rpc_call_t *call)
{
    return atomic_load(&call->dead_flag);
}

void rpc_call_set_user(rpc_call_t *call, void *user)
{
    call->user = user;
}

void *rpc_call_user(const rpc_call_t *call)
{
    return call->user;
}

/* Queues bb (taken) and, when fin, the status; starts sending. */
static mq_err_t rpc_call_send(rpc_call_t *call, grpc_byte_buffer *bb, bool fin, rpc_status_t status,
                              const char *details)
{
    pthread_mutex_lock(&call->mu);
    if (call->dead || call->finished) {
        pthread_mutex_unlock(&call->mu);
        if (bb) {
            grpc_byte_buffer_destroy(bb);
        }
        return MQ_ECLOSED;
    }
    if (bb) {
        rpc_sendq_push(&call->sendq, bb);
    }
    if (fin) {
        call->finished = true;
        call->status = status;
        if (details && details[0]) {
            call->details = grpc_slice_from_copied_string(details);
            call->has_details = true;
        }
    }
    rpc_call_pump_locked(call);
    mq_err_t err = call->failed ? MQ_ECLOSED : MQ_OK;
    pthread_mutex_unlock(&call->mu);
    return err;
}

mq_err_t rpc_call_reply(rpc_call_t *call, const void *msg, size_t len)
{
    if (call->kind != RPC_KIND_UNARY) {
        return MQ_EINVAL;
    }
    /* Copy before taking the lock: the message may be large. */
    return rpc_call_send(call, rpc_bb_copy(msg, len), true, RPC_OK, NULL);
}

mq_err_t rpc_call_write(rpc_call_t *call, const void *msg, size_t len)
{
    if (call->kind == RPC_KIND_UNARY) {
        return MQ_EINVAL;
    }
    return rpc_call_send(call, rpc_bb_copy(msg, len), false, RPC_OK, NULL);
}

mq_err_t rpc_call_finish(rpc_call_t *call, rpc_status_t status, const char *details)
{
    if ((unsigned)status > RPC_UNAUTHENTICATED) {
        return MQ_EINVAL;
    }
    return rpc_call_send(call, NULL, true, status, details);
}
