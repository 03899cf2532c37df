/*
 * mqc_recv: see mqc_recv.h.
 *
 * A receive is a server stream: each response message is one frame, copied
 * (the rpc layer lends it for the callback only) and decoded into the
 * result, so that a message's body and strings stay valid until the result
 * is released. The blocking calls wait on a condition variable that the
 * completion (on the client thread) signals.
 */
#include "mqc_recv.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_util.h"

void mqc_recv_result_init(mqc_recv_result_t *r)
{
    memset(r, 0, sizeof(*r));
    r->grpc = RPC_UNKNOWN;
}

void mqc_recv_result_add(mqc_recv_result_t *r, const uint8_t *frame, size_t len)
{
    r->nframes++;
    mqc_rmsg_t *m = mq_calloc(1, sizeof(*m));
    m->raw = mq_malloc(len ? len : 1);
    memcpy(m->raw, frame, len);
    m->raw_len = len;
    if (mqc_recv_frame_decode(m->raw, len, &m->frame) != MQ_OK || m->frame.kind == MQC_FRAME_NONE) {
        r->bad_frames++;
    } else if (m->frame.kind == MQC_FRAME_STATUS) {
        r->has_status = true;
        r->code = m->frame.code;
        snprintf(r->message, sizeof(r->message), "%s", m->frame.message);
    } else if (m->frame.kind == MQC_FRAME_DELIVERY_TS) {
        r->has_delivery_ts = true;
        r->delivery_ms = m->frame.delivery_ms;
    } else {
        mqc_delivery_view(&m->frame, &m->d);
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->msgs = mq_realloc(r->msgs, r->cap * sizeof(*r->msgs));
        }
        r->msgs[r->n++] = m;
        return;
    }
    mqc_recv_frame_fini(&m->frame);
    free(m->raw);
    free(m);
}

void mqc_recv_result_fini(mqc_recv_result_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        mqc_recv_frame_fini(&r->msgs[i]->frame);
        free(r->msgs[i]->raw);
        free(r->msgs[i]);
    }
    free(r->msgs);
    r->msgs = NULL;
    r->n = 0;
    r->cap = 0;
}

int mqc_recv_result_code(const mqc_recv_result_t *r)
{
    if (r->grpc != RPC_OK) {
        return -(int)r->grpc;
    }
    return r->has_status ? r->code : 0;
}

/* ------------------------------------------------------------------ receive */

typedef struct mqc_recv_call {
    mqc_recv_result_t *res;
    mqc_recv_cb done;
    void *arg;
} mqc_recv_call_t;

static void mqc_recv_on_message(const uint8_t *msg, size_t len, void *arg)
{
    mqc_recv_call_t *call = arg;
    mqc_recv_result_add(call->res, msg, len);
}

static void mqc_recv_on_end(rpc_status_t status, const char *details, void *arg)
{
    mqc_recv_call_t *call = arg;
    mqc_recv_result_t *res = call->res;
    res->grpc = status;
    snprintf(res->details, sizeof(res->details), "%s", details ? details : "");
    res->end_ns = mq_now_ns();
    mqc_recv_cb done = call->done;
    void *done_arg = call->arg;
    free(call);
    done(res, done_arg);
}

mq_err_t mqc_receive(rpc_channel_t *ch, const char *client_id, const mqc_recv_req_t *req,
                     uint32_t timeout_ms, mqc_recv_result_t *res, mqc_recv_cb done, void *arg)
{
    uint8_t *buf;
    size_t len;
    mq_err_t err = mqc_recv_request_encode(req, &buf, &len);
    if (err != MQ_OK) {
        return err;
    }
    mqc_recv_result_init(res);
    res->start_ns = mq_now_ns();
    mqc_recv_call_t *call = mq_malloc(sizeof(*call));
    call->res = res;
    call->done = done;
    call->arg = arg;
    mqc_md_t md;
    mqc_md_init(&md, client_id);
    err = rpc_channel_server_stream(ch, MQC_RECEIVE_MESSAGE, md.md, md.n, buf, len, timeout_ms,
                                    mqc_recv_on_message, mqc_recv_on_end, call);
    free(buf);
    if (err != MQ_OK) {
        free(call);
    }
    return err;
}

typedef struct mqc_recv_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
} mqc_recv_wait_t;

static void mqc_recv_wait_done(mqc_recv_result_t *res, void *arg)
{
    MQ_UNUSED(res);
    mqc_recv_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

mq_err_t mqc_receive_sync(rpc_channel_t *ch, const char *client_id, const mqc_recv_req_t *req,
                          uint32_t timeout_ms, mqc_recv_result_t *res)
{
    mqc_recv_wait_t w;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    w.done = false;
    mq_err_t err = mqc_receive(ch, client_id, req, timeout_ms, res, mqc_recv_wait_done, &w);
    if (err == MQ_OK) {
        /* The call has a deadline (or the channel's end cancels it): done
         * always comes. */
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cond, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
    } else {
        mqc_recv_result_init(res);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    return err;
}

/* -------------------------------------------------------------- ack, change */

/* A blocking unary call; *resp (free()) on RPC_OK. INT32_MIN when it could
 * not be made, else 0 on RPC_OK or -status. */
static int mqc_unary(rpc_channel_t *ch, const char *client_id, const char *method,
                     const uint8_t *req, size_t len, uint32_t timeout_ms, uint8_t **resp,
                     size_t *resp_len)
{
    mqc_md_t md;
    mqc_md_init(&md, client_id);
    rpc_status_t st;
    *resp = NULL;
    if (rpc_channel_unary_sync(ch, method, md.md, md.n, req, len, timeout_ms, &st, resp, resp_len,
                               NULL, 0) != MQ_OK) {
        return INT32_MIN;
    }
    return st == RPC_OK ? 0 : -(int)st;
}

int mqc_ack_sync(rpc_channel_t *ch, const char *client_id, const char *group, const char *topic,
                 const mqc_ack_entry_t *e, size_t n, uint32_t timeout_ms, int *codes)
{
    uint8_t *req;
    size_t len;
    if (mqc_ack_encode(group, topic, e, n, &req, &len) != MQ_OK) {
        return INT32_MIN;
    }
    uint8_t *resp;
    size_t rlen = 0;
    int rc = mqc_unary(ch, client_id, MQC_ACK_MESSAGE, req, len, timeout_ms, &resp, &rlen);
    free(req);
    for (size_t i = 0; codes && i < n; i++) {
        codes[i] = rc;
    }
    if (rc != 0) {
        return rc;
    }
    mqc_ack_resp_t r;
    if (mqc_ack_response_decode(resp, rlen, &r) != MQ_OK) {
        rc = INT32_MIN;
    } else {
        rc = r.code;
        for (size_t i = 0; codes && i < n; i++) {
            codes[i] = i < r.n ? r.entries[i].code : 0;
        }
    }
    mqc_ack_resp_fini(&r);
    free(resp);
    return rc;
}

int mqc_change_sync(rpc_channel_t *ch, const char *client_id, const char *group, const char *topic,
                    const char *receipt_handle, const char *message_id, int64_t invisible_ms,
                    uint32_t timeout_ms, char *handle, size_t handle_cap)
{
    if (handle && handle_cap) {
        handle[0] = '\0';
    }
    uint8_t *req;
    size_t len;
    if (mqc_change_encode(group, topic, receipt_handle, message_id, invisible_ms, &req, &len) !=
        MQ_OK) {
        return INT32_MIN;
    }
    uint8_t *resp;
    size_t rlen = 0;
    int rc = mqc_unary(ch, client_id, MQC_CHANGE_INVISIBLE, req, len, timeout_ms, &resp, &rlen);
    free(req);
    if (rc != 0) {
        return rc;
    }
    char msg[160];
    char tmp[8];
    if (mqc_change_response_decode(resp, rlen, &rc, msg, sizeof(msg), handle ? handle : tmp,
                                   handle ? handle_cap : sizeof(tmp)) != MQ_OK) {
        rc = INT32_MIN;
    }
    free(resp);
    return rc;
}
