/*
 * mq_net_client: pipelined requests to one server over one connection, with
 * request ids, timeouts, lazy connect and reconnect with backoff. Brokers and
 * benchmark tools use one per bookie. State lives on the loop thread; only
 * mq_net_client_request (and the approximate getters) run anywhere.
 *
 * Submission. A request is one allocation (mq_net_req_t, meta inline when it
 * is small) holding a reference on the data. From the loop thread it goes
 * straight into the unsent list; from another thread it is appended to a
 * mutex-protected queue, and the first request of a batch wakes the loop
 * (uv_async_send, under the same mutex so that free cannot close the handle
 * under it). Either way the client arms its loop hook, which runs once after
 * the iteration's I/O: it takes every unsent request, gives it the next id
 * of the client's counter, puts it in the pending map and queues its frame
 * on the connection, whose own hook then writes the whole batch with one
 * writev. Requests freed on the loop are kept in a small cache for the
 * loop's own next requests.
 *
 * Matching. Pending requests sit in a hash map keyed by request id (chained,
 * power-of-two buckets; ids are sequential, so the low bits spread them
 * perfectly): O(1) insert and removal, whatever order the server answers in.
 * A response with an unknown id (late after a timeout, or bogus) is logged
 * at WARN and dropped.
 *
 * Timeouts. No timer per request: a uv_timer per request means a heap
 * operation per start and stop plus a uv_close per request. Requests with a
 * timeout are kept in deadline-ordered doubly-linked lists, one per distinct
 * timeout value (up to MQ_NET_CL_TCLASSES; more values share the last list).
 * A client uses one or two timeouts (add, read), so inserting at the tail of
 * its list is O(1) (the insert walks back from the tail only past requests
 * submitted concurrently with a later clock reading) and removal is O(1).
 * One uv_timer is armed for the earliest head; it is not re-armed when a
 * response removes the head: it fires at the old deadline, expires what is
 * due (MQ_ETIMEDOUT) and re-arms for the new earliest head. At 100k
 * requests/s this costs a few pointer updates per request and about one
 * timer callback per timeout period.
 *
 * mq_net_client_inflight counts requests accepted and not yet completed
 * (unsent ones included).
 *
 * Connection. The first request connects (uv_getaddrinfo for names, at
 * connect time, preferring an IPv4 address; numeric addresses directly),
 * with one timer of connect_timeout_ms over resolution and connect. A connect that fails or
 * times out fails every pending request with MQ_ECONN (not MQ_ETIMEDOUT:
 * the request's own timeout did not pass; the server could not be reached)
 * and starts a backoff of backoff_min_ms, doubling up to backoff_max_ms and
 * reset by a successful connect. A connection lost while up does the same:
 * every request in flight fails once with MQ_ECONN, then backoff. During the
 * backoff, new requests fail fast with MQ_ECONN through their callback; the
 * first request after it connects again. There is no background reconnect:
 * an idle client holds no connection attempt.
 *
 * Free. mq_net_client_free posts a task that marks the client closed (new
 * requests get MQ_ECLOSED), fails everything pending with MQ_ECLOSED, closes
 * the connection and the client's handles, and waits until their close
 * callbacks have run.
 *
 * Oversize responses (above opts.net.max_frame) are discarded by the
 * connection and fail their request with MQ_ETOOLARGE.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_net.h"
#include "mq_net_int.h"
#include "mq_util.h"

#define MQ_NET_CL_TCLASSES 4
#define MQ_NET_CL_NO_TCLASS 0xff
#define MQ_NET_REQ_META_INLINE 96
#define MQ_NET_CL_CACHE_MAX 1024
#define MQ_NET_CL_BUCKETS_MIN 256

typedef enum mq_net_cl_state {
    MQ_NET_CL_IDLE,       /* no connection, none needed yet */
    MQ_NET_CL_CONNECTING, /* resolving or connecting */
    MQ_NET_CL_CONNECTED,
    MQ_NET_CL_BACKOFF, /* after a failure, until backoff_until */
} mq_net_cl_state_t;

typedef struct mq_net_req mq_net_req_t;
struct mq_net_req {
    mq_net_req_t *qprev; /* unsent list; qnext also chains submit queues */
    mq_net_req_t *qnext;
    mq_net_req_t *hnext; /* pending map chain */
    mq_net_req_t *dprev; /* deadline list */
    mq_net_req_t *dnext;
    uint64_t id;
    uint64_t deadline_ms; /* 0: no timeout */
    uint32_t timeout_ms;
    uint8_t tclass;
    bool sent;
    mq_net_response_cb cb;
    void *arg;
    mq_slice_t data; /* moves to the connection when sent */
    uint8_t *meta;
    size_t meta_len;
    uint8_t meta_inline[MQ_NET_REQ_META_INLINE];
};

typedef struct mq_net_tclass {
    uint32_t timeout_ms;
    mq_net_req_t *head;
    mq_net_req_t *tail;
} mq_net_tclass_t;

typedef struct mq_net_resolve {
    uv_getaddrinfo_t req;
    mq_net_client_t *cl; /* NULL once the client gave up on it */
} mq_net_resolve_t;

struct mq_net_client {
    mq_net_loop_t *loop;
    char host[256];
    int port;
    bool numeric;
    struct sockaddr_storage addr;
    mq_net_client_opts_t opts;
    mq_net_conn_ops_t ops;
    atomic_bool connected;
    atomic_size_t inflight;

    /* Requests from other threads. @locks mu (closed: written under mu on
     * the loop thread, so the loop thread may read it without) */
    pthread_mutex_t mu;
    mq_net_req_t *sub_head;
    mq_net_req_t *sub_tail;
    bool closed;

    /* @locality loop thread, from here on */
    uv_async_t async;
    uv_timer_t tmo_timer;
    uv_timer_t conn_timer;
    mq_net_hook_t hook;
    mq_net_cl_state_t state;
    mq_net_conn_t *conn;
    mq_net_resolve_t *resolving;
    uint64_t backoff_until;
    uint32_t backoff_ms;
    uint64_t next_id;
    mq_net_req_t *unsent_head;
    mq_net_req_t *unsent_tail;
    mq_net_req_t **buckets;
    size_t nbuckets;
    size_t npending;
    mq_net_tclass_t tclasses[MQ_NET_CL_TCLASSES];
    uint64_t tmo_armed_at; /* UINT64_MAX: not armed */
    mq_net_req_t *cache;
    unsigned ncache;
    unsigned nhandles;
    bool freeing;
    mq_net_sync_t *free_sync;
};

static void mq_net_client_start_connect(mq_net_client_t *cl);

/* --- requests ------------------------------------------------------------- */

static mq_net_req_t *mq_net_req_alloc(mq_net_client_t *cl, bool on_loop)
{
    if (on_loop && cl->cache) {
        mq_net_req_t *req = cl->cache;
        cl->cache = req->qnext;
        cl->ncache--;
        return req;
    }
    return mq_malloc(sizeof(mq_net_req_t));
}

static void mq_net_req_free(mq_net_client_t *cl, mq_net_req_t *req)
{
    mq_slice_release(&req->data);
    if (req->meta != req->meta_inline) {
        free(req->meta);
    }
    if (cl->ncache < MQ_NET_CL_CACHE_MAX) {
        req->qnext = cl->cache;
        cl->cache = req;
        cl->ncache++;
    } else {
        free(req);
    }
}

/* Completes req (already out of every list): callback, then release. */
static void mq_net_req_complete(mq_net_client_t *cl, mq_net_req_t *req, mq_err_t err,
                                const mq_net_frame_t *resp)
{
    atomic_fetch_sub_explicit(&cl->inflight, 1, memory_order_relaxed);
    req->cb(err, resp, req->arg);
    mq_net_req_free(cl, req);
}

/* --- pending map ---------------------------------------------------------- */

static void mq_net_map_insert(mq_net_client_t *cl, mq_net_req_t *req)
{
    if (cl->npending >= cl->nbuckets) {
        size_t n = cl->nbuckets * 2;
        mq_net_req_t **b = mq_calloc(n, sizeof(*b));
        for (size_t i = 0; i < cl->nbuckets; i++) {
            mq_net_req_t *r = cl->buckets[i];
            while (r) {
                mq_net_req_t *next = r->hnext;
                size_t k = (size_t)r->id & (n - 1);
                r->hnext = b[k];
                b[k] = r;
                r = next;
            }
        }
        free(cl->buckets);
        cl->buckets = b;
        cl->nbuckets = n;
    }
    size_t k = (size_t)req->id & (cl->nbuckets - 1);
    req->hnext = cl->buckets[k];
    cl->buckets[k] = req;
    cl->npending++;
}

static mq_net_req_t *mq_net_map_remove(mq_net_client_t *cl, uint64_t id)
{
    mq_net_req_t **pp = &cl->buckets[(size_t)id & (cl->nbuckets - 1)];
    while (*pp && (*pp)->id != id) {
        pp = &(*pp)->hnext;
    }
    mq_net_req_t *req = *pp;
    if (req) {
        *pp = req->hnext;
        req->hnext = NULL;
        cl->npending--;
    }
    return req;
}

/* --- unsent list ---------------------------------------------------------- */

static void mq_net_unsent_push(mq_net_client_t *cl, mq_net_req_t *req)
{
    req->qnext = NULL;
    req->qprev = cl->unsent_tail;
    if (cl->unsent_tail) {
        cl->unsent_tail->qnext = req;
    } else {
        cl->unsent_head = req;
    }
    cl->unsent_tail = req;
}

static void mq_net_unsent_remove(mq_net_client_t *cl, mq_net_req_t *req)
{
    if (req->qprev) {
        req->qprev->qnext = req->qnext;
    } else {
        cl->unsent_head = req->qnext;
    }
    if (req->qnext) {
        req->qnext->qprev = req->qprev;
    } else {
        cl->unsent_tail = req->qprev;
    }
    req->qprev = NULL;
    req->qnext = NULL;
}

/* --- deadlines ------------------------------------------------------------ */

static void mq_net_tmo_cb(uv_timer_t *timer);

static void mq_net_tmo_arm(mq_net_client_t *cl, uint64_t at)
{
    uint64_t now = mq_now_ms();
    /* One extra millisecond: the loop's cached clock may lag ours, and an
     * early wake-up only costs a re-arm. */
    uint64_t delay = at > now ? at - now + 1 : 0;
    uv_timer_start(&cl->tmo_timer, mq_net_tmo_cb, delay, 0);
    cl->tmo_armed_at = at;
}

static void mq_net_deadline_insert(mq_net_client_t *cl, mq_net_req_t *req)
{
    req->tclass = MQ_NET_CL_NO_TCLASS;
    req->dprev = NULL;
    req->dnext = NULL;
    if (!req->deadline_ms) {
        return;
    }
    /* The list of this timeout value, else an empty one, else the last. */
    unsigned c = MQ_NET_CL_TCLASSES;
    unsigned empty = MQ_NET_CL_TCLASSES;
    for (unsigned i = 0; i < MQ_NET_CL_TCLASSES && c == MQ_NET_CL_TCLASSES; i++) {
        if (!cl->tclasses[i].head) {
            empty = MQ_MIN(empty, i);
        } else if (cl->tclasses[i].timeout_ms == req->timeout_ms) {
            c = i;
        }
    }
    if (c == MQ_NET_CL_TCLASSES && empty < MQ_NET_CL_TCLASSES) {
        c = empty;
        cl->tclasses[c].timeout_ms = req->timeout_ms;
    } else if (c == MQ_NET_CL_TCLASSES) {
        c = MQ_NET_CL_TCLASSES - 1;
    }
    mq_net_tclass_t *tc = &cl->tclasses[c];
    mq_net_req_t *after = tc->tail;
    while (after && after->deadline_ms > req->deadline_ms) {
        after = after->dprev;
    }
    req->dprev = after;
    req->dnext = after ? after->dnext : tc->head;
    if (req->dnext) {
        req->dnext->dprev = req;
    } else {
        tc->tail = req;
    }
    if (after) {
        after->dnext = req;
    } else {
        tc->head = req;
    }
    req->tclass = (uint8_t)c;
    if (req->deadline_ms < cl->tmo_armed_at) {
        mq_net_tmo_arm(cl, req->deadline_ms);
    }
}

static void mq_net_deadline_remove(mq_net_client_t *cl, mq_net_req_t *req)
{
    if (req->tclass == MQ_NET_CL_NO_TCLASS) {
        return;
    }
    mq_net_tclass_t *tc = &cl->tclasses[req->tclass];
    if (req->dprev) {
        req->dprev->dnext = req->dnext;
    } else {
        tc->head = req->dnext;
    }
    if (req->dnext) {
        req->dnext->dprev = req->dprev;
    } else {
        tc->tail = req->dprev;
    }
    req->dprev = NULL;
    req->dnext = NULL;
    req->tclass = MQ_NET_CL_NO_TCLASS;
}

/* Takes req out of whichever list holds it (unsent or pending map) and out of
 * its deadline list. */
static void mq_net_req_detach(mq_net_client_t *cl, mq_net_req_t *req)
{
    mq_net_deadline_remove(cl, req);
    if (req->sent) {
        mq_net_req_t *r = mq_net_map_remove(cl, req->id);
        MQ_ASSERT(r == req);
    } else {
        mq_net_unsent_remove(cl, req);
    }
}

static void mq_net_tmo_rearm(mq_net_client_t *cl)
{
    uint64_t first = UINT64_MAX;
    for (unsigned i = 0; i < MQ_NET_CL_TCLASSES; i++) {
        if (cl->tclasses[i].head && cl->tclasses[i].head->deadline_ms < first) {
            first = cl->tclasses[i].head->deadline_ms;
        }
    }
    if (first == UINT64_MAX) {
        uv_timer_stop(&cl->tmo_timer);
        cl->tmo_armed_at = UINT64_MAX;
    } else {
        mq_net_tmo_arm(cl, first);
    }
}

static void mq_net_tmo_cb(uv_timer_t *timer)
{
    mq_net_client_t *cl = timer->data;
    cl->tmo_armed_at = UINT64_MAX;
    uint64_t now = mq_now_ms();
    /* Collect first, call back after: callbacks may submit and insert. */
    mq_net_req_t *expired = NULL;
    mq_net_req_t **tail = &expired;
    for (unsigned i = 0; i < MQ_NET_CL_TCLASSES; i++) {
        mq_net_tclass_t *tc = &cl->tclasses[i];
        while (tc->head && tc->head->deadline_ms <= now) {
            mq_net_req_t *req = tc->head;
            mq_net_req_detach(cl, req);
            req->qnext = NULL;
            *tail = req;
            tail = &req->qnext;
        }
    }
    while (expired) {
        mq_net_req_t *req = expired;
        expired = req->qnext;
        MQ_LOG_DEBUG("net request timed out peer=%s:%d request=%llu timeout_ms=%u", cl->host,
                     cl->port, (unsigned long long)req->id, req->timeout_ms);
        mq_net_req_complete(cl, req, MQ_ETIMEDOUT, NULL);
    }
    mq_net_tmo_rearm(cl);
}

/* --- failing in bulk ------------------------------------------------------ */

/* Fails every request the client holds (in flight, unsent, and, when
 * submitted is given, a taken submit queue) with err, each exactly once.
 * Everything is unlinked before the first callback, so callbacks that
 * submit again only see a clean client. */
static void mq_net_client_fail_all(mq_net_client_t *cl, mq_err_t err, mq_net_req_t *submitted)
{
    mq_net_req_t *list = NULL;
    mq_net_req_t **tail = &list;
    size_t n = 0;
    for (size_t i = 0; i < cl->nbuckets; i++) {
        mq_net_req_t *r = cl->buckets[i];
        cl->buckets[i] = NULL;
        while (r) {
            mq_net_req_t *next = r->hnext;
            r->hnext = NULL;
            mq_net_deadline_remove(cl, r);
            r->qnext = NULL;
            *tail = r;
            tail = &r->qnext;
            n++;
            r = next;
        }
    }
    cl->npending = 0;
    mq_net_req_t *r = cl->unsent_head;
    cl->unsent_head = NULL;
    cl->unsent_tail = NULL;
    *tail = r;
    while (r) {
        mq_net_deadline_remove(cl, r);
        r->qprev = NULL;
        tail = &r->qnext;
        n++;
        r = r->qnext;
    }
    *tail = submitted;
    while (list) {
        mq_net_req_t *req = list;
        list = req->qnext;
        mq_net_req_complete(cl, req, err, NULL);
    }
    MQ_LOG_DEBUG("net requests failed peer=%s:%d count=%zu err=%s", cl->host, cl->port, n,
                 mq_err_name(err));
}

static void mq_net_client_enter_backoff(mq_net_client_t *cl)
{
    cl->state = MQ_NET_CL_BACKOFF;
    atomic_store_explicit(&cl->connected, false, memory_order_relaxed);
    cl->backoff_until = mq_now_ms() + cl->backoff_ms;
    uint64_t next = (uint64_t)cl->backoff_ms * 2;
    cl->backoff_ms = (uint32_t)MQ_MIN(next, (uint64_t)cl->opts.backoff_max_ms);
}

/* A connect attempt failed (or timed out): drop it, back off, fail what
 * waits. */
static void mq_net_client_connect_failed(mq_net_client_t *cl)
{
    uv_timer_stop(&cl->conn_timer);
    if (cl->resolving) {
        cl->resolving->cl = NULL;
        cl->resolving = NULL;
    }
    if (cl->conn) {
        mq_net_conn_t *conn = cl->conn;
        cl->conn = NULL;
        mq_net_conn_close_now(conn);
    }
    mq_net_client_enter_backoff(cl);
    mq_net_client_fail_all(cl, MQ_ECONN, NULL);
}

/* --- the hook: sending ---------------------------------------------------- */

static void mq_net_client_send_unsent(mq_net_client_t *cl)
{
    mq_net_conn_t *conn = cl->conn;
    if (mq_net_conn_closed(conn)) {
        /* Lost; the close callback fails everything, these included. */
        return;
    }
    while (cl->unsent_head) {
        mq_net_req_t *req = cl->unsent_head;
        cl->unsent_head = req->qnext;
        req->qprev = NULL;
        req->qnext = NULL;
        req->id = ++cl->next_id;
        req->sent = true;
        mq_net_map_insert(cl, req);
        mq_net_conn_queue(conn, req->id, req->meta, req->meta_len, &req->data);
    }
    cl->unsent_tail = NULL;
}

static void mq_net_client_hook_cb(mq_net_hook_t *hook)
{
    mq_net_client_t *cl = MQ_CONTAINER_OF(hook, mq_net_client_t, hook);
    if (cl->freeing || !cl->unsent_head) {
        return;
    }
    switch (cl->state) {
    case MQ_NET_CL_BACKOFF:
        if (mq_now_ms() < cl->backoff_until) {
            mq_net_client_fail_all(cl, MQ_ECONN, NULL);
            break;
        }
        cl->state = MQ_NET_CL_IDLE;
        mq_net_client_start_connect(cl);
        break;
    case MQ_NET_CL_IDLE:
        mq_net_client_start_connect(cl);
        break;
    case MQ_NET_CL_CONNECTING:
        break;
    case MQ_NET_CL_CONNECTED:
        mq_net_client_send_unsent(cl);
        break;
    }
}

static void mq_net_client_intake(mq_net_client_t *cl, mq_net_req_t *req)
{
    req->sent = false;
    req->hnext = NULL;
    mq_net_unsent_push(cl, req);
    mq_net_deadline_insert(cl, req);
    mq_net_loop_arm(cl->loop, &cl->hook);
}

static void mq_net_client_async_cb(uv_async_t *async)
{
    mq_net_client_t *cl = async->data;
    pthread_mutex_lock(&cl->mu);
    mq_net_req_t *list = cl->sub_head;
    cl->sub_head = NULL;
    cl->sub_tail = NULL;
    pthread_mutex_unlock(&cl->mu);
    while (list) {
        mq_net_req_t *req = list;
        list = req->qnext;
        mq_net_client_intake(cl, req);
    }
}

/* --- connecting ----------------------------------------------------------- */

static void mq_net_client_on_frame(mq_net_conn_t *conn, const mq_net_frame_t *frame, void *arg)
{
    mq_net_client_t *cl = arg;
    mq_net_req_t *req = mq_net_map_remove(cl, frame->request_id);
    if (!req) {
        MQ_LOG_WARN("net response for unknown request peer=%s request=%llu, dropped",
                    mq_net_conn_peer(conn), (unsigned long long)frame->request_id);
        return;
    }
    mq_net_deadline_remove(cl, req);
    mq_net_req_complete(cl, req, MQ_OK, frame);
}

static void mq_net_client_on_oversize(mq_net_conn_t *conn, uint64_t request_id, size_t frame_len,
                                      void *arg)
{
    mq_net_client_t *cl = arg;
    mq_net_req_t *req = mq_net_map_remove(cl, request_id);
    MQ_LOG_WARN("net response above max_frame peer=%s request=%llu frame_len=%zu%s",
                mq_net_conn_peer(conn), (unsigned long long)request_id, frame_len,
                req ? "" : ", unknown request");
    if (req) {
        mq_net_deadline_remove(cl, req);
        mq_net_req_complete(cl, req, MQ_ETOOLARGE, NULL);
    }
}

static void mq_net_client_check_done(mq_net_client_t *cl)
{
    if (cl->freeing && cl->nhandles == 0) {
        /* The waiter frees cl as soon as it wakes: nothing after this. */
        mq_net_sync_signal(cl->free_sync);
    }
}

static void mq_net_client_on_close(mq_net_conn_t *conn, void *owner)
{
    mq_net_client_t *cl = owner;
    cl->nhandles--;
    if (conn == cl->conn) {
        cl->conn = NULL;
        MQ_ASSERT(!cl->freeing);
        MQ_LOG_WARN("net connection lost peer=%s pending=%zu", mq_net_conn_peer(conn),
                    cl->npending);
        if (cl->state == MQ_NET_CL_CONNECTING) {
            uv_timer_stop(&cl->conn_timer);
        }
        mq_net_client_enter_backoff(cl);
        mq_net_client_fail_all(cl, MQ_ECONN, NULL);
    }
    mq_net_client_check_done(cl);
}

static void mq_net_client_on_connect(mq_net_conn_t *conn, int status, void *owner)
{
    mq_net_client_t *cl = owner;
    if (conn != cl->conn || cl->state != MQ_NET_CL_CONNECTING) {
        return; /* abandoned (timed out, or the client is closing) */
    }
    if (status < 0) {
        MQ_LOG_WARN("net connect failed peer=%s err=%s", mq_net_conn_peer(conn),
                    uv_strerror(status));
        mq_net_client_connect_failed(cl);
        return;
    }
    uv_timer_stop(&cl->conn_timer);
    cl->state = MQ_NET_CL_CONNECTED;
    cl->backoff_ms = cl->opts.backoff_min_ms;
    atomic_store_explicit(&cl->connected, true, memory_order_relaxed);
    MQ_LOG_DEBUG("net connected peer=%s", mq_net_conn_peer(conn));
    mq_net_loop_arm(cl->loop, &cl->hook);
}

static void mq_net_client_do_connect(mq_net_client_t *cl, const struct sockaddr *addr)
{
    mq_net_conn_t *conn;
    if (mq_net_conn_connect(cl->loop, addr, &cl->opts.net, &cl->ops, cl, cl, &conn) != MQ_OK) {
        mq_net_client_connect_failed(cl);
        return;
    }
    cl->conn = conn;
    cl->nhandles++;
}

static void mq_net_client_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    mq_net_resolve_t *r = MQ_CONTAINER_OF(req, mq_net_resolve_t, req);
    mq_net_client_t *cl = r->cl;
    free(r);
    if (!cl) {
        uv_freeaddrinfo(res);
        return;
    }
    cl->resolving = NULL;
    if (status < 0 || !res) {
        MQ_LOG_WARN("net resolve failed host=%s err=%s", cl->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        mq_net_client_connect_failed(cl);
        return;
    }
    /* Prefer IPv4 (bookies listen on IPv4; "localhost" often lists ::1
     * first), else the first address. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    struct sockaddr_storage ss;
    MQ_ASSERT(pick->ai_addrlen <= sizeof(ss));
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(res);
    mq_net_client_do_connect(cl, (struct sockaddr *)&ss);
}

static void mq_net_client_conn_timeout(uv_timer_t *timer)
{
    mq_net_client_t *cl = timer->data;
    if (cl->state != MQ_NET_CL_CONNECTING) {
        return;
    }
    MQ_LOG_WARN("net connect timed out peer=%s:%d timeout_ms=%u", cl->host, cl->port,
                cl->opts.connect_timeout_ms);
    mq_net_client_connect_failed(cl);
}

static void mq_net_client_start_connect(mq_net_client_t *cl)
{
    cl->state = MQ_NET_CL_CONNECTING;
    uv_timer_start(&cl->conn_timer, mq_net_client_conn_timeout, cl->opts.connect_timeout_ms, 0);
    if (cl->numeric) {
        mq_net_client_do_connect(cl, (struct sockaddr *)&cl->addr);
        return;
    }
    mq_net_resolve_t *r = mq_calloc(1, sizeof(*r));
    r->cl = cl;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof(port), "%d", cl->port);
    int rc = uv_getaddrinfo(mq_net_loop_uv(cl->loop), &r->req, mq_net_client_resolved, cl->host,
                            port, &hints);
    if (rc != 0) {
        free(r);
        MQ_LOG_WARN("net resolve failed host=%s err=%s", cl->host, uv_strerror(rc));
        mq_net_client_connect_failed(cl);
        return;
    }
    cl->resolving = r;
}

/* --- public --------------------------------------------------------------- */

static void mq_net_client_init_task(void *arg)
{
    mq_net_client_t *cl = arg;
    uv_loop_t *uv = mq_net_loop_uv(cl->loop);
    MQ_ASSERT(uv_async_init(uv, &cl->async, mq_net_client_async_cb) == 0);
    cl->async.data = cl;
    MQ_ASSERT(uv_timer_init(uv, &cl->tmo_timer) == 0);
    cl->tmo_timer.data = cl;
    MQ_ASSERT(uv_timer_init(uv, &cl->conn_timer) == 0);
    cl->conn_timer.data = cl;
    cl->nhandles = 3;
}

mq_err_t mq_net_client_new(mq_net_loop_t *loop, const char *host, int port,
                           const mq_net_client_opts_t *opts, mq_net_client_t **out)
{
    if (!loop || !host || !*host || !out || port <= 0 || port > 65535) {
        return MQ_EINVAL;
    }
    mq_net_client_t *cl = mq_calloc(1, sizeof(*cl));
    if (strlen(host) >= sizeof(cl->host)) {
        free(cl);
        return MQ_EINVAL;
    }
    snprintf(cl->host, sizeof(cl->host), "%s", host);
    cl->port = port;
    cl->loop = loop;
    cl->numeric = mq_net_addr_numeric(host, port, &cl->addr) == MQ_OK;
    if (opts) {
        cl->opts = *opts;
    } else {
        mq_net_client_opts_default(&cl->opts);
    }
    mq_net_opts_fix(opts ? &opts->net : NULL, &cl->opts.net);
    if (!cl->opts.connect_timeout_ms) {
        cl->opts.connect_timeout_ms = 5000;
    }
    cl->opts.backoff_max_ms = MQ_MAX(cl->opts.backoff_max_ms, cl->opts.backoff_min_ms);
    cl->ops.on_frame = mq_net_client_on_frame;
    cl->ops.on_oversize = mq_net_client_on_oversize;
    cl->ops.on_connect = mq_net_client_on_connect;
    cl->ops.on_close = mq_net_client_on_close;
    atomic_init(&cl->connected, false);
    atomic_init(&cl->inflight, 0);
    pthread_mutex_init(&cl->mu, NULL);
    mq_net_hook_init(&cl->hook, mq_net_client_hook_cb);
    cl->state = MQ_NET_CL_IDLE;
    cl->backoff_ms = cl->opts.backoff_min_ms;
    cl->nbuckets = MQ_NET_CL_BUCKETS_MIN;
    cl->buckets = mq_calloc(cl->nbuckets, sizeof(*cl->buckets));
    cl->tmo_armed_at = UINT64_MAX;
    if (mq_net_loop_on_thread(loop)) {
        mq_net_client_init_task(cl);
    } else {
        mq_net_loop_run_sync(loop, mq_net_client_init_task, cl);
    }
    *out = cl;
    return MQ_OK;
}

mq_err_t mq_net_client_request(mq_net_client_t *cl, const void *meta, size_t meta_len,
                               const mq_slice_t *data, uint32_t timeout_ms, mq_net_response_cb cb,
                               void *arg)
{
    if (!cl || !cb || (meta_len && !meta) || meta_len > MQ_NET_MAX_META) {
        return MQ_EINVAL;
    }
    /* A frame the peer would close the connection for (same limits). */
    size_t dlen = data ? data->len : 0;
    size_t hard = cl->opts.net.max_frame_hard;
    if (dlen > hard || MQ_NET_HDR_SIZE + meta_len > hard - dlen) {
        return MQ_EINVAL;
    }
    bool on_loop = mq_net_loop_on_thread(cl->loop);
    if (on_loop && cl->closed) {
        return MQ_ECLOSED;
    }
    mq_net_req_t *req = mq_net_req_alloc(cl, on_loop);
    req->cb = cb;
    req->arg = arg;
    req->timeout_ms = timeout_ms;
    req->deadline_ms = timeout_ms ? mq_now_ms() + timeout_ms : 0;
    req->tclass = MQ_NET_CL_NO_TCLASS;
    req->id = 0;
    req->meta_len = meta_len;
    req->meta = meta_len <= MQ_NET_REQ_META_INLINE ? req->meta_inline : mq_malloc(meta_len);
    if (meta_len) {
        memcpy(req->meta, meta, meta_len);
    }
    if (!dlen) {
        req->data = (mq_slice_t){NULL, NULL, 0};
    } else if (data->buf) {
        req->data = mq_slice_dup(data);
    } else {
        /* Bytes without a buffer are the caller's until this returns. */
        mq_buf_t *copy = mq_buf_copy(data->ptr, dlen);
        req->data = (mq_slice_t){copy, copy->data, dlen};
    }
    if (on_loop) {
        atomic_fetch_add_explicit(&cl->inflight, 1, memory_order_relaxed);
        mq_net_client_intake(cl, req);
        return MQ_OK;
    }
    req->qnext = NULL;
    pthread_mutex_lock(&cl->mu);
    if (cl->closed) {
        pthread_mutex_unlock(&cl->mu);
        mq_slice_release(&req->data);
        if (req->meta != req->meta_inline) {
            free(req->meta);
        }
        free(req);
        return MQ_ECLOSED;
    }
    atomic_fetch_add_explicit(&cl->inflight, 1, memory_order_relaxed);
    bool wake = cl->sub_head == NULL;
    if (cl->sub_tail) {
        cl->sub_tail->qnext = req;
    } else {
        cl->sub_head = req;
    }
    cl->sub_tail = req;
    /* The first request of a batch wakes the loop; under the lock, so that
     * free (which sets closed under it first) never sees a send in flight
     * on a closed handle. */
    if (wake) {
        uv_async_send(&cl->async);
    }
    pthread_mutex_unlock(&cl->mu);
    return MQ_OK;
}

size_t mq_net_client_inflight(const mq_net_client_t *cl)
{
    return atomic_load_explicit(&cl->inflight, memory_order_relaxed);
}

bool mq_net_client_connected(const mq_net_client_t *cl)
{
    return atomic_load_explicit(&cl->connected, memory_order_relaxed);
}

static void mq_net_client_handle_closed(uv_handle_t *handle)
{
    mq_net_client_t *cl = handle->data;
    cl->nhandles--;
    mq_net_client_check_done(cl);
}

static void mq_net_client_free_task(void *arg)
{
    mq_net_client_t *cl = arg;
    pthread_mutex_lock(&cl->mu);
    cl->closed = true;
    mq_net_req_t *submitted = cl->sub_head;
    cl->sub_head = NULL;
    cl->sub_tail = NULL;
    pthread_mutex_unlock(&cl->mu);

    cl->freeing = true;
    mq_net_loop_disarm(cl->loop, &cl->hook);
    uv_timer_stop(&cl->conn_timer);
    if (cl->resolving) {
        cl->resolving->cl = NULL;
        cl->resolving = NULL;
    }
    if (cl->conn) {
        mq_net_conn_t *conn = cl->conn;
        cl->conn = NULL;
        mq_net_conn_close_now(conn);
    }
    atomic_store_explicit(&cl->connected, false, memory_order_relaxed);
    mq_net_client_fail_all(cl, MQ_ECLOSED, submitted);
    uv_close((uv_handle_t *)&cl->async, mq_net_client_handle_closed);
    uv_close((uv_handle_t *)&cl->tmo_timer, mq_net_client_handle_closed);
    uv_close((uv_handle_t *)&cl->conn_timer, mq_net_client_handle_closed);
}

void mq_net_client_free(mq_net_client_t *cl)
{
    if (!cl) {
        return;
    }
    MQ_ASSERT(!mq_net_loop_on_thread(cl->loop));
    mq_net_sync_t sync;
    mq_net_sync_init(&sync);
    cl->free_sync = &sync;
    mq_net_loop_post(cl->loop, mq_net_client_free_task, cl);
    mq_net_sync_wait(&sync);
    mq_net_sync_fini(&sync);
    pthread_mutex_destroy(&cl->mu);
    while (cl->cache) {
        mq_net_req_t *req = cl->cache;
        cl->cache = req->qnext;
        free(req);
    }
    free(cl->buckets);
    free(cl);
}
