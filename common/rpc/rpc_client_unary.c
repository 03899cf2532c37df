/*
 * rpc_client_unary: unary calls on a channel, asynchronous and blocking.
 * Any thread starts one; the callback runs on the client thread.
 *
 * A unary call is one 6-op batch {SEND_INITIAL_METADATA, SEND_MESSAGE,
 * SEND_CLOSE_FROM_CLIENT, RECV_INITIAL_METADATA, RECV_MESSAGE,
 * RECV_STATUS_ON_CLIENT}, so it completes with one event, and the only state
 * is the batch's in- and outputs, touched by the starter before the batch
 * starts and by the client thread after it completed. The blocking variant
 * waits on a condition variable for its own callback, so it must never run
 * on the client thread (it would wait for itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

typedef struct rpc_unary {
    rpc_ccall_link_t link;
    rpc_channel_t *ch;
    rpc_tag_t tag;
    grpc_metadata *md;
    size_t nmd;
    grpc_byte_buffer *send_bb;
    grpc_byte_buffer *recv_bb;
    grpc_metadata_array init_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    rpc_unary_cb cb;
    void *arg;
} rpc_unary_t;

static void rpc_unary_free(rpc_unary_t *u)
{
    if (u->send_bb) {
        grpc_byte_buffer_destroy(u->send_bb);
    }
    if (u->recv_bb) {
        grpc_byte_buffer_destroy(u->recv_bb);
    }
    grpc_metadata_array_destroy(&u->init_md);
    grpc_metadata_array_destroy(&u->trailing_md);
    grpc_slice_unref(u->details);
    rpc_md_free(u->md, u->nmd);
    free(u);
}

mq_err_t rpc_channel_unary(rpc_channel_t *ch, const char *method, const rpc_md_t *md, size_t nmd,
                           const void *req, size_t len, uint32_t timeout_ms, rpc_unary_cb cb,
                           void *arg)
{
    MQ_ASSERT(cb != NULL);
    grpc_metadata *gmd;
    mq_err_t err = rpc_md_copy(md, nmd, &gmd);
    if (err != MQ_OK) {
        return err;
    }
    rpc_unary_t *u = mq_calloc(1, sizeof(*u));
    u->ch = ch;
    u->tag.ctx = u;
    u->tag.kind = RPC_TAG_CL_UNARY;
    u->md = gmd;
    u->nmd = nmd;
    u->cb = cb;
    u->arg = arg;
    grpc_metadata_array_init(&u->init_md);
    grpc_metadata_array_init(&u->trailing_md);
    u->details = grpc_empty_slice();
    err = rpc_channel_call_open(ch, &u->link, method, rpc_deadline(timeout_ms));
    if (err != MQ_OK) {
        rpc_unary_free(u);
        return err;
    }
    u->send_bb = rpc_bb_copy(req, len);

    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = gmd;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = u->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
    ops[5].data.recv_status_on_client.status = &u->status;
    ops[5].data.recv_status_on_client.status_details = &u->details;
    /* u belongs to the client thread from the moment the batch starts. */
    grpc_call *gcall = u->link.gcall;
    RPC_TAG_ARM(&u->tag);
    grpc_call_error gerr = grpc_call_start_batch(gcall, ops, 6, &u->tag, NULL);
    if (gerr != GRPC_CALL_OK) {
        MQ_LOG_WARN("rpc unary batch refused target=%s method=%s err=%s", rpc_channel_target(ch),
                    method, grpc_call_error_to_string(gerr));
        rpc_channel_call_close(ch, &u->link);
        rpc_unary_free(u);
        return MQ_EIO;
    }
    return MQ_OK;
}

void rpc_client_unary_on_event(void *ctx, bool ok)
{
    rpc_unary_t *u = ctx;
    rpc_status_t st = rpc_status_from_grpc(u->status);
    char *details = rpc_slice_strdup(u->details);
    if (!ok && st == RPC_OK) {
        /* A batch with RECV_STATUS_ON_CLIENT should always succeed. */
        st = RPC_INTERNAL;
    }
    if (st != RPC_OK) {
        u->cb(st, details, NULL, 0, u->arg);
    } else if (!u->recv_bb) {
        u->cb(RPC_INTERNAL, "no response message", NULL, 0, u->arg);
    } else {
        rpc_flat_t flat;
        if (rpc_flat_init(&flat, u->recv_bb)) {
            u->cb(RPC_OK, NULL, flat.data, flat.len, u->arg);
            rpc_flat_fini(&flat);
        } else {
            u->cb(RPC_INTERNAL, "unreadable response message", NULL, 0, u->arg);
        }
    }
    gpr_free(details);
    /* Last use of the channel: it may be freed right after. */
    rpc_channel_call_close(u->ch, &u->link);
    rpc_unary_free(u);
}

typedef struct rpc_unary_sync {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    rpc_status_t status;
    uint8_t *resp;
    size_t len;
    char *details;
    size_t details_cap;
} rpc_unary_sync_t;

static void rpc_unary_sync_cb(rpc_status_t status, const char *details, const uint8_t *resp,
                              size_t len, void *arg)
{
    rpc_unary_sync_t *sync = arg;
    uint8_t *copy = NULL;
    if (status == RPC_OK) {
        /* The size comes from the network: no aborting allocator. */
        copy = mq_try_malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, resp, len);
        } else {
            status = RPC_RESOURCE_EXHAUSTED;
            details = "out of memory for the response";
        }
    }
    pthread_mutex_lock(&sync->mu);
    sync->status = status;
    sync->resp = copy;
    sync->len = copy ? len : 0;
    if (sync->details && sync->details_cap) {
        snprintf(sync->details, sync->details_cap, "%s", details ? details : "");
    }
    sync->done = true;
    pthread_cond_signal(&sync->cond);
    /* The waiter owns sync and may free it as soon as the lock is gone. */
    pthread_mutex_unlock(&sync->mu);
}

mq_err_t rpc_channel_unary_sync(rpc_channel_t *ch, const char *method, const rpc_md_t *md,
                                size_t nmd, const void *req, size_t len, uint32_t timeout_ms,
                                rpc_status_t *status, uint8_t **resp, size_t *resp_len,
                                char *details, size_t details_cap)
{
    MQ_ASSERT(!rpc_cq_thread_is_self());
    rpc_unary_sync_t sync;
    memset(&sync, 0, sizeof(sync));
    pthread_mutex_init(&sync.mu, NULL);
    pthread_cond_init(&sync.cond, NULL);
    sync.details = details;
    sync.details_cap = details_cap;
    mq_err_t err =
        rpc_channel_unary(ch, method, md, nmd, req, len, timeout_ms, rpc_unary_sync_cb, &sync);
    if (err == MQ_OK) {
        pthread_mutex_lock(&sync.mu);
        while (!sync.done) {
            pthread_cond_wait(&sync.cond, &sync.mu);
        }
        pthread_mutex_unlock(&sync.mu);
        *status = sync.status;
        if (resp) {
            *resp = sync.resp;
        } else {
            free(sync.resp);
        }
        if (resp_len) {
            *resp_len = sync.len;
        }
    }
    pthread_cond_destroy(&sync.cond);
    pthread_mutex_destroy(&sync.mu);
    return err;
}
