/*
 * lc_bookie: one bookie's client. Each request carries a small context (the
 * user's callback and what the answer must match) through mq_net; the
 * response is decoded and checked on the loop thread, then handed to the
 * user's callback. The blocking helpers wait on a condition variable.
 */
#include "lc_bookie.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_bkproto.h"
#include "lc_entry.h"
#include "mq_log.h"
#include "mq_util.h"

struct lc_bookie {
    mq_net_client_t *client;
    char addr[128];
};

typedef struct lc_bk_req {
    lc_bookie_cb cb;
    void *arg;
    ledgermq_bookie_v1_Op op;
    uint64_t ledger_id;
    int64_t entry_id;
} lc_bk_req_t;

mq_err_t lc_bookie_new(mq_net_loop_t *loop, const char *addr, lc_bookie_t **out)
{
    char host[96];
    int port;
    mq_err_t err = mq_net_parse_hostport(addr, host, sizeof(host), &port);
    if (err != MQ_OK) {
        return err;
    }
    mq_net_client_opts_t opts;
    mq_net_client_opts_default(&opts);
    lc_bookie_t *bk = mq_calloc(1, sizeof(*bk));
    snprintf(bk->addr, sizeof(bk->addr), "%s", addr);
    err = mq_net_client_new(loop, host, port, &opts, &bk->client);
    if (err != MQ_OK) {
        free(bk);
        return err;
    }
    *out = bk;
    return MQ_OK;
}

void lc_bookie_free(lc_bookie_t *bk)
{
    if (!bk) {
        return;
    }
    mq_net_client_free(bk->client);
    free(bk);
}

const char *lc_bookie_addr(const lc_bookie_t *bk)
{
    return bk->addr;
}

size_t lc_bookie_inflight(const lc_bookie_t *bk)
{
    return mq_net_client_inflight(bk->client);
}

static void lc_bk_on_response(mq_err_t err, const mq_net_frame_t *frame, void *arg)
{
    lc_bk_req_t *req = arg;
    lc_bk_result_t res;
    memset(&res, 0, sizeof(res));
    res.ledger_id = req->ledger_id;
    res.entry_id = req->entry_id;
    res.lac = -1;
    res.last_entry_id = -1;
    res.message = "";
    lc_bk_response_t resp;
    if (err == MQ_OK) {
        err = lc_bkproto_decode_response(frame->meta.ptr, frame->meta.len, &resp);
        /* A frame the bookie could not read at all (too large, undecodable)
         * is answered with OP_UNSPECIFIED and a failure status. */
        bool generic_failure = resp.op == ledgermq_bookie_v1_Op_OP_UNSPECIFIED &&
                               resp.status != ledgermq_bookie_v1_Status_STATUS_OK;
        if (err == MQ_OK && !generic_failure &&
            (resp.op != req->op || resp.ledger_id != req->ledger_id)) {
            err = MQ_EPROTO;
        }
        if (err == MQ_OK && generic_failure) {
            resp.entry_id = req->entry_id;
        }
    }
    if (err == MQ_OK) {
        err = lc_bkproto_status_err(resp.status);
        res.message = resp.message;
        res.lac = resp.lac;
        res.last_entry_id = resp.last_entry_id;
        res.total_disk_bytes = resp.total_disk_bytes;
        res.free_disk_bytes = resp.free_disk_bytes;
        res.read_only = resp.read_only;
        res.fenced = resp.fenced;
        res.entry_id = resp.entry_id;
        if (req->op == ledgermq_bookie_v1_Op_OP_ADD_ENTRY && resp.entry_id != req->entry_id) {
            err = MQ_EPROTO;
        }
    }
    if (err == MQ_OK) {
        res.data = frame->data;
        if (req->op == ledgermq_bookie_v1_Op_OP_READ_ENTRY) {
            /* Never trust what came back: the entry must be the one asked for
             * and intact. A bad copy is reported as corrupt, so the caller can
             * try another replica. */
            lc_entry_hdr_t hdr;
            if (lc_entry_verify(frame->data.ptr, frame->data.len, &hdr) != MQ_OK ||
                hdr.ledger_id != req->ledger_id ||
                (req->entry_id >= 0 && hdr.entry_id != req->entry_id) ||
                hdr.entry_id != resp.entry_id) {
                err = MQ_ECORRUPT;
                res.data.buf = NULL;
                res.data.ptr = NULL;
                res.data.len = 0;
            }
        }
    }
    res.err = err;
    req->cb(&res, req->arg);
    free(req);
}

static mq_err_t lc_bk_send(lc_bookie_t *bk, const lc_bk_request_t *r, const mq_slice_t *data,
                           uint32_t timeout_ms, lc_bookie_cb cb, void *arg)
{
    uint8_t meta[LC_BK_REQUEST_MAX];
    size_t meta_len;
    mq_err_t err = lc_bkproto_encode_request(r, meta, sizeof(meta), &meta_len);
    if (err != MQ_OK) {
        return err;
    }
    lc_bk_req_t *req = mq_malloc(sizeof(*req));
    req->cb = cb;
    req->arg = arg;
    req->op = r->op;
    req->ledger_id = r->ledger_id;
    req->entry_id = r->entry_id;
    err =
        mq_net_client_request(bk->client, meta, meta_len, data, timeout_ms, lc_bk_on_response, req);
    if (err != MQ_OK) {
        free(req);
    }
    return err;
}

static mq_err_t lc_bk_set_key(lc_bk_request_t *r, const uint8_t *key, size_t key_len)
{
    if (key_len > sizeof(r->master_key.bytes)) {
        return MQ_EINVAL;
    }
    if (key_len) {
        memcpy(r->master_key.bytes, key, key_len);
    }
    r->master_key.size = (pb_size_t)key_len;
    return MQ_OK;
}

mq_err_t lc_bookie_add(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id,
                       const uint8_t *master_key, size_t key_len, uint32_t flags,
                       const mq_slice_t *entry, uint32_t timeout_ms, lc_bookie_cb cb, void *arg)
{
    lc_bk_request_t r = ledgermq_bookie_v1_Request_init_zero;
    r.op = ledgermq_bookie_v1_Op_OP_ADD_ENTRY;
    r.ledger_id = ledger_id;
    r.entry_id = entry_id;
    r.flags = flags;
    if (lc_bk_set_key(&r, master_key, key_len) != MQ_OK) {
        return MQ_EINVAL;
    }
    return lc_bk_send(bk, &r, entry, timeout_ms, cb, arg);
}

mq_err_t lc_bookie_read(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id, uint32_t flags,
                        const uint8_t *master_key, size_t key_len, uint32_t timeout_ms,
                        lc_bookie_cb cb, void *arg)
{
    lc_bk_request_t r = ledgermq_bookie_v1_Request_init_zero;
    r.op = ledgermq_bookie_v1_Op_OP_READ_ENTRY;
    r.ledger_id = ledger_id;
    r.entry_id = entry_id;
    r.flags = flags;
    if (lc_bk_set_key(&r, master_key, key_len) != MQ_OK) {
        return MQ_EINVAL;
    }
    return lc_bk_send(bk, &r, NULL, timeout_ms, cb, arg);
}

mq_err_t lc_bookie_read_lac(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                            lc_bookie_cb cb, void *arg)
{
    lc_bk_request_t r = ledgermq_bookie_v1_Request_init_zero;
    r.op = ledgermq_bookie_v1_Op_OP_READ_LAC;
    r.ledger_id = ledger_id;
    r.entry_id = -1;
    return lc_bk_send(bk, &r, NULL, timeout_ms, cb, arg);
}

mq_err_t lc_bookie_info(lc_bookie_t *bk, uint32_t timeout_ms, lc_bookie_cb cb, void *arg)
{
    lc_bk_request_t r = ledgermq_bookie_v1_Request_init_zero;
    r.op = ledgermq_bookie_v1_Op_OP_GET_BOOKIE_INFO;
    r.entry_id = -1;
    return lc_bk_send(bk, &r, NULL, timeout_ms, cb, arg);
}

mq_err_t lc_bookie_list_entries(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                lc_bookie_cb cb, void *arg)
{
    lc_bk_request_t r = ledgermq_bookie_v1_Request_init_zero;
    r.op = ledgermq_bookie_v1_Op_OP_LIST_ENTRIES;
    r.ledger_id = ledger_id;
    r.entry_id = -1;
    return lc_bk_send(bk, &r, NULL, timeout_ms, cb, arg);
}

/* --- blocking helpers ------------------------------------------------------ */

typedef struct lc_bk_waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    lc_bk_sync_result_t *out;
} lc_bk_waiter_t;

static void lc_bk_sync_done(const lc_bk_result_t *res, void *arg)
{
    lc_bk_waiter_t *w = arg;
    lc_bk_sync_result_t *out = w->out;
    out->res = *res;
    out->res.data = mq_slice_dup(&res->data);
    snprintf(out->message, sizeof(out->message), "%s", res->message ? res->message : "");
    out->res.message = out->message;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void lc_bk_waiter_init(lc_bk_waiter_t *w, lc_bk_sync_result_t *out)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = false;
    w->out = out;
    memset(out, 0, sizeof(*out));
}

static mq_err_t lc_bk_waiter_wait(lc_bk_waiter_t *w, mq_err_t sent)
{
    if (sent == MQ_OK) {
        pthread_mutex_lock(&w->lock);
        while (!w->done) {
            pthread_cond_wait(&w->cond, &w->lock);
        }
        pthread_mutex_unlock(&w->lock);
    } else {
        w->out->res.err = sent;
        w->out->res.message = w->out->message;
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    return w->out->res.err;
}

void lc_bk_sync_result_fini(lc_bk_sync_result_t *r)
{
    mq_slice_release(&r->res.data);
}

mq_err_t lc_bookie_add_sync(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id,
                            const uint8_t *master_key, size_t key_len, uint32_t flags,
                            const mq_slice_t *entry, uint32_t timeout_ms, lc_bk_sync_result_t *out)
{
    lc_bk_waiter_t w;
    lc_bk_waiter_init(&w, out);
    return lc_bk_waiter_wait(&w, lc_bookie_add(bk, ledger_id, entry_id, master_key, key_len, flags,
                                               entry, timeout_ms, lc_bk_sync_done, &w));
}

mq_err_t lc_bookie_read_sync(lc_bookie_t *bk, uint64_t ledger_id, int64_t entry_id, uint32_t flags,
                             const uint8_t *master_key, size_t key_len, uint32_t timeout_ms,
                             lc_bk_sync_result_t *out)
{
    lc_bk_waiter_t w;
    lc_bk_waiter_init(&w, out);
    return lc_bk_waiter_wait(&w, lc_bookie_read(bk, ledger_id, entry_id, flags, master_key, key_len,
                                                timeout_ms, lc_bk_sync_done, &w));
}

mq_err_t lc_bookie_read_lac_sync(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                 lc_bk_sync_result_t *out)
{
    lc_bk_waiter_t w;
    lc_bk_waiter_init(&w, out);
    return lc_bk_waiter_wait(&w,
                             lc_bookie_read_lac(bk, ledger_id, timeout_ms, lc_bk_sync_done, &w));
}

mq_err_t lc_bookie_info_sync(lc_bookie_t *bk, uint32_t timeout_ms, lc_bk_sync_result_t *out)
{
    lc_bk_waiter_t w;
    lc_bk_waiter_init(&w, out);
    return lc_bk_waiter_wait(&w, lc_bookie_info(bk, timeout_ms, lc_bk_sync_done, &w));
}

mq_err_t lc_bookie_list_entries_sync(lc_bookie_t *bk, uint64_t ledger_id, uint32_t timeout_ms,
                                     lc_bk_sync_result_t *out)
{
    lc_bk_waiter_t w;
    lc_bk_waiter_init(&w, out);
    return lc_bk_waiter_wait(
        &w, lc_bookie_list_entries(bk, ledger_id, timeout_ms, lc_bk_sync_done, &w));
}
