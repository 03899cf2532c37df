/*
 * rpc_client_stream: streaming calls on a channel: server-streaming
 * (rpc_channel_server_stream) and bidirectional (rpc_channel_bidi, the
 * handle being rpc_bidi_t). A server-streaming call is a bidi stream that
 * sends its one request and half-closes at open, without a handle.
 *
 * Batches: RECV_STATUS_ON_CLIENT alone, started first (it completes last);
 * {RECV_INITIAL_METADATA, RECV_MESSAGE}, then RECV_MESSAGE re-posted after
 * each message until it yields none; and at most one send batch in flight:
 * the first carries the initial metadata, each next one the next queued
 * message, and SEND_CLOSE_FROM_CLIENT rides with the last queued message
 * once a half-close was asked for.
 *
 * Threads: completions run on the client thread, which alone touches the
 * receive side. Writers on any thread share the send side with it under
 * bidi->mu, which also covers every grpc_call_start_batch. The stream has
 * two references: the handle's (dropped by rpc_bidi_free) and the live
 * call's (dropped after on_end). It ends when the status arrived and no
 * batch is pending; on_end then runs once, last, and the grpc call is
 * released, after which writes return MQ_ECLOSED.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

struct rpc_bidi {
    rpc_ccall_link_t link;
    rpc_channel_t *ch;
    atomic_uint refs;
    rpc_tag_t send_tag;
    rpc_tag_t recv_tag;
    rpc_tag_t status_tag;
    grpc_metadata *md;
    size_t nmd;
    rpc_stream_msg_cb on_message;
    rpc_stream_end_cb on_end;
    void *arg;

    /* @locality client thread (after open) */
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array init_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;

    pthread_mutex_t mu;
    /* @locks mu */
    unsigned pending;  /* started batches not completed */
    bool md_sent;      /* initial metadata is in a started batch */
    bool send_busy;    /* a send batch is in flight */
    bool close_wanted; /* half-close asked for */
    bool close_sent;   /* SEND_CLOSE_FROM_CLIENT is in a started batch */
    bool status_done;  /* RECV_STATUS_ON_CLIENT completed */
    bool dead;         /* status arrived, a send failed or a batch was refused */
    bool failed;       /* a batch was refused and the call cancelled */
    bool ended;        /* on_end is running or ran; the grpc call is going */
    grpc_byte_buffer *send_bb;
    rpc_sendq_t sendq;
};

static void rpc_bidi_destroy(rpc_bidi_t *bidi)
{
    MQ_ASSERT(bidi->send_bb == NULL && bidi->recv_bb == NULL);
    rpc_sendq_clear(&bidi->sendq);
    grpc_metadata_array_destroy(&bidi->init_md);
    grpc_metadata_array_destroy(&bidi->trailing_md);
    grpc_slice_unref(bidi->details);
    rpc_md_free(bidi->md, bidi->nmd);
    pthread_mutex_destroy(&bidi->mu);
    free(bidi);
}

static void rpc_bidi_unref(rpc_bidi_t *bidi)
{
    if (atomic_fetch_sub_explicit(&bidi->refs, 1, memory_order_acq_rel) == 1) {
        rpc_bidi_destroy(bidi);
    }
}

/* @locks mu. gRPC refused a batch: the call is unusable, cancel it; the
 * status then arrives (CANCELLED) and ends the stream. */
static void rpc_bidi_fail_locked(rpc_bidi_t *bidi, const char *what, grpc_call_error err)
{
    MQ_LOG_WARN("rpc stream batch refused target=%s batch=%s err=%s", rpc_channel_target(bidi->ch),
                what, grpc_call_error_to_string(err));
    bidi->failed = true;
    bidi->dead = true;
    rpc_sendq_clear(&bidi->sendq);
    grpc_call_cancel(bidi->link.gcall, NULL);
}

/* @locks mu. Starts the next send batch if none is in flight. */
static void rpc_bidi_pump_locked(rpc_bidi_t *bidi)
{
    if (bidi->send_busy || bidi->dead || bidi->close_sent) {
        return;
    }
    grpc_byte_buffer *bb = rpc_sendq_pop(&bidi->sendq);
    bool close = bidi->close_wanted && bidi->sendq.n == 0;
    if (!bb && !close && bidi->md_sent) {
        return;
    }
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!bidi->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = bidi->nmd;
        ops[n].data.send_initial_metadata.metadata = bidi->md;
        n++;
    }
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        if (bidi->sendq.n > 0) {
            /* More follows at once: coalesce; the last one flushes. */
            ops[n].flags = GRPC_WRITE_BUFFER_HINT;
        }
        n++;
    }
    if (close) {
        ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    RPC_TAG_ARM(&bidi->send_tag);
    grpc_call_error err = grpc_call_start_batch(bidi->link.gcall, ops, n, &bidi->send_tag, NULL);
    if (err != GRPC_CALL_OK) {
        if (bb) {
            grpc_byte_buffer_destroy(bb);
        }
        rpc_bidi_fail_locked(bidi, "send", err);
        return;
    }
    bidi->md_sent = true;
    bidi->send_busy = true;
    bidi->send_bb = bb;
    bidi->close_sent = close;
    bidi->pending++;
}

/* @locks mu. first: with RECV_INITIAL_METADATA. */
static void rpc_bidi_post_recv_locked(rpc_bidi_t *bidi, bool first)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (first) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &bidi->init_md;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &bidi->recv_bb;
    n++;
    RPC_TAG_ARM(&bidi->recv_tag);
    grpc_call_error err = grpc_call_start_batch(bidi->link.gcall, ops, n, &bidi->recv_tag, NULL);
    if (err != GRPC_CALL_OK) {
        rpc_bidi_fail_locked(bidi, "recv", err);
        return;
    }
    bidi->pending++;
}

/* Opens a stream. msg (may be NULL): a first message to queue; half_close:
 * half-close after it. out NULL: no handle (server-streaming). */
static mq_err_t rpc_bidi_open(rpc_channel_t *ch, const char *method, const rpc_md_t *md, size_t nmd,
                              uint32_t timeout_ms, const void *msg, size_t len, bool half_close,
                              rpc_stream_msg_cb on_message, rpc_stream_end_cb on_end, void *arg,
                              rpc_bidi_t **out)
{
    MQ_ASSERT(on_message != NULL && on_end != NULL);
    grpc_metadata *gmd;
    mq_err_t err = rpc_md_copy(md, nmd, &gmd);
    if (err != MQ_OK) {
        return err;
    }
    rpc_bidi_t *bidi = mq_calloc(1, sizeof(*bidi));
    bidi->ch = ch;
    atomic_init(&bidi->refs, out ? 2 : 1);
    bidi->send_tag.ctx = bidi->recv_tag.ctx = bidi->status_tag.ctx = bidi;
    bidi->send_tag.kind = RPC_TAG_CL_SEND;
    bidi->recv_tag.kind = RPC_TAG_CL_RECV;
    bidi->status_tag.kind = RPC_TAG_CL_STATUS;
    bidi->md = gmd;
    bidi->nmd = nmd;
    bidi->on_message = on_message;
    bidi->on_end = on_end;
    bidi->arg = arg;
    grpc_metadata_array_init(&bidi->init_md);
    grpc_metadata_array_init(&bidi->trailing_md);
    bidi->details = grpc_empty_slice();
    pthread_mutex_init(&bidi->mu, NULL);
    err = rpc_channel_call_open(ch, &bidi->link, method, rpc_deadline(timeout_ms));
    if (err != MQ_OK) {
        rpc_bidi_destroy(bidi);
        return err;
    }

    /* Completions may run on the client thread as soon as a batch starts:
     * hold the lock until the stream is fully set up. */
    pthread_mutex_lock(&bidi->mu);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &bidi->trailing_md;
    op.data.recv_status_on_client.status = &bidi->status;
    op.data.recv_status_on_client.status_details = &bidi->details;
    RPC_TAG_ARM(&bidi->status_tag);
    grpc_call_error gerr = grpc_call_start_batch(bidi->link.gcall, &op, 1, &bidi->status_tag, NULL);
    if (gerr != GRPC_CALL_OK) {
        /* Nothing started: undo everything, no callback will run. */
        pthread_mutex_unlock(&bidi->mu);
        MQ_LOG_WARN("rpc stream status batch refused target=%s method=%s err=%s",
                    rpc_channel_target(ch), method, grpc_call_error_to_string(gerr));
        rpc_channel_call_close(ch, &bidi->link);
        rpc_bidi_destroy(bidi);
        return MQ_EIO;
    }
    bidi->pending++;
    /* From here on, a refused batch cancels the call and on_end reports
     * it: the stream has started. */
    rpc_bidi_post_recv_locked(bidi, true);
    if (msg) {
        rpc_sendq_push(&bidi->sendq, rpc_bb_copy(msg, len));
    }
    bidi->close_wanted = half_close;
    rpc_bidi_pump_locked(bidi);
    pthread_mutex_unlock(&bidi->mu);
    if (out) {
        *out = bidi;
    }
    return MQ_OK;
}

mq_err_t rpc_channel_server_stream(rpc_channel_t *ch, const char *method, const rpc_md_t *md,
                                   size_t nmd, const void *req, size_t len, uint32_t timeout_ms,
                                   rpc_stream_msg_cb on_message, rpc_stream_end_cb on_end,
                                   void *arg)
{
    return rpc_bidi_open(ch, method, md, nmd, timeout_ms, req ? req : "", len, true, on_message,
                         on_end, arg, NULL);
}

mq_err_t rpc_channel_bidi(rpc_channel_t *ch, const char *method, const rpc_md_t *md, size_t nmd,
                          uint32_t timeout_ms, rpc_stream_msg_cb on_message,
                          rpc_stream_end_cb on_end, void *arg, rpc_bidi_t **out)
{
    MQ_ASSERT(out != NULL);
    return rpc_bidi_open(ch, method, md, nmd, timeout_ms, NULL, 0, false, on_message, on_end, arg,
                         out);
}

mq_err_t rpc_bidi_write(rpc_bidi_t *bidi, const void *msg, size_t len)
{
    /* Copy before taking the lock: the message may be large. */
    grpc_byte_buffer *bb = rpc_bb_copy(msg, len);
    pthread_mutex_lock(&bidi->mu);
    if (bidi->dead || bidi->ended || bidi->close_wanted) {
        pthread_mutex_unlock(&bidi->mu);
        grpc_byte_buffer_destroy(bb);
        return MQ_ECLOSED;
    }
    rpc_sendq_push(&bidi->sendq, bb);
    rpc_bidi_pump_locked(bidi);
    mq_err_t err = bidi->failed ? MQ_ECLOSED : MQ_OK;
    pthread_mutex_unlock(&bidi->mu);
    return err;
}

mq_err_t rpc_bidi_half_close(rpc_bidi_t *bidi)
{
    pthread_mutex_lock(&bidi->mu);
    if (bidi->dead || bidi->ended || bidi->close_wanted) {
        pthread_mutex_unlock(&bidi->mu);
        return MQ_ECLOSED;
    }
    bidi->close_wanted = true;
    rpc_bidi_pump_locked(bidi);
    mq_err_t err = bidi->failed ? MQ_ECLOSED : MQ_OK;
    pthread_mutex_unlock(&bidi->mu);
    return err;
}

void rpc_bidi_free(rpc_bidi_t *bidi)
{
    if (!bidi) {
        return;
    }
    pthread_mutex_lock(&bidi->mu);
    if (!bidi->ended) {
        /* Until ended the grpc call is alive; cancelling after the status
         * arrived changes nothing. */
        grpc_call_cancel(bidi->link.gcall, NULL);
    }
    pthread_mutex_unlock(&bidi->mu);
    rpc_bidi_unref(bidi);
}

/* @locks mu. True (once) when the stream just ended. */
static bool rpc_bidi_check_end_locked(rpc_bidi_t *bidi)
{
    if (!bidi->ended && bidi->status_done && bidi->pending == 0) {
        bidi->ended = true;
        return true;
    }
    return false;
}

/* @locality client thread. */
static void rpc_bidi_end(rpc_bidi_t *bidi)
{
    rpc_status_t st = rpc_status_from_grpc(bidi->status);
    char *details = rpc_slice_strdup(bidi->details);
    bidi->on_end(st, details, bidi->arg);
    gpr_free(details);
    /* Last use of the channel: it may be freed right after. */
    rpc_channel_call_close(bidi->ch, &bidi->link);
    rpc_bidi_unref(bidi);
}

/* @locality client thread. */
static void rpc_bidi_on_recv(rpc_bidi_t *bidi, bool ok)
{
    grpc_byte_buffer *bb = bidi->recv_bb;
    bidi->recv_bb = NULL;
    bool more = false;
    if (ok && bb) {
        rpc_flat_t flat;
        if (rpc_flat_init(&flat, bb)) {
            bidi->on_message(flat.data, flat.len, bidi->arg);
            rpc_flat_fini(&flat);
            more = true;
        } else {
            MQ_LOG_WARN("rpc unreadable stream message target=%s", rpc_channel_target(bidi->ch));
            pthread_mutex_lock(&bidi->mu);
            grpc_call_cancel_with_status(bidi->link.gcall, GRPC_STATUS_INTERNAL,
                                         "unreadable response message", NULL);
            pthread_mutex_unlock(&bidi->mu);
        }
        grpc_byte_buffer_destroy(bb);
    }
    pthread_mutex_lock(&bidi->mu);
    bidi->pending--;
    if (more) {
        /* Keep reading even after the status arrived: messages the server
         * sent before it must all be delivered. */
        rpc_bidi_post_recv_locked(bidi, false);
    }
    bool end = rpc_bidi_check_end_locked(bidi);
    pthread_mutex_unlock(&bidi->mu);
    if (end) {
        rpc_bidi_end(bidi);
    }
}

void rpc_client_stream_on_event(void *ctx, rpc_tag_kind_t kind, bool ok)
{
    rpc_bidi_t *bidi = ctx;
    if (kind == RPC_TAG_CL_RECV) {
        rpc_bidi_on_recv(bidi, ok);
        return;
    }
    pthread_mutex_lock(&bidi->mu);
    bidi->pending--;
    if (kind == RPC_TAG_CL_STATUS) {
        bidi->status_done = true;
        bidi->dead = true;
        rpc_sendq_clear(&bidi->sendq);
    } else {
        bidi->send_busy = false;
        if (bidi->send_bb) {
            grpc_byte_buffer_destroy(bidi->send_bb);
            bidi->send_bb = NULL;
        }
        /* A failed send means the stream is ending; its status (not a
         * cancel of ours) tells the caller why. */
        if (ok) {
            rpc_bidi_pump_locked(bidi);
        } else {
            bidi->dead = true;
            rpc_sendq_clear(&bidi->sendq);
        }
    }
    bool end = rpc_bidi_check_end_locked(bidi);
    pthread_mutex_unlock(&bidi->mu);
    if (end) {
        rpc_bidi_end(bidi);
    }
}
