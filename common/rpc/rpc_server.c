/*
 * rpc_server: a gRPC core server with its completion queue and the threads
 * that poll it. The broker creates one at startup, adds its methods, starts
 * it and frees it at shutdown; the calls themselves live in rpc_call.c.
 *
 * Every method is registered with gRPC before start (unary and
 * server-streaming ones read the request with the call, bidi ones read
 * nothing). The server keeps RPC_SRV_REQS_PER_METHOD requests posted per
 * method, each a slot re-posted as soon as its call arrived, plus a few
 * unregistered requests that catch unknown methods, which the server answers
 * UNIMPLEMENTED itself.
 *
 * Threads: conf.threads threads loop on grpc_completion_queue_next over one
 * shared queue, from rpc_server_new until the queue is shut down in
 * rpc_server_free. They dispatch on the event's tag; each call serialises
 * its own state with its mutex. Server state that the threads share with
 * rpc_server_free (how many requests are posted, how many calls are live,
 * whether shutdown completed) is under srv->mu.
 *
 * Shutdown: shutdown_and_notify, cancel every call, then wait until the
 * shutdown tag arrived, every posted request came back and every call is
 * over (its on_done has run and the grpc call is released). Only then is
 * the server destroyed, the queue shut down and drained and the threads
 * joined. Calls the application still references outlive the server as
 * closed shells.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

#define RPC_SRV_REQS_PER_METHOD 32
#define RPC_SRV_REQS_UNKNOWN 8
#define RPC_SRV_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)
#define RPC_SRV_DEFAULT_MAX_STREAMS 1000
/* Lets clients ping every 5 s even without calls (the Go client's
 * keepalive) without being sent GOAWAY "too_many_pings". */
#define RPC_SRV_MIN_PING_INTERVAL_MS 5000

/* One pre-posted request: what gRPC fills in when a call arrives. */
typedef struct rpc_srv_req {
    rpc_tag_t tag;
    rpc_server_t *srv;
    const rpc_srv_method_t *method; /* NULL: an unregistered request */
    grpc_call *gcall;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* unregistered requests only */
} rpc_srv_req_t;

struct rpc_server {
    rpc_server_conf_t conf;
    char addr[256];
    grpc_server *gsrv;
    grpc_completion_queue *cq;
    pthread_t *threads;
    unsigned nthreads;
    rpc_srv_method_t *methods;
    size_t nmethods;
    size_t methods_cap;
    rpc_srv_req_t *reqs; /* fixed once started */
    size_t nreqs;
    bool started;
    rpc_tag_t shutdown_tag;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* @locks mu */
    bool shutting;
    bool shutdown_done;
    size_t nposted; /* request slots gRPC holds */
    size_t ncalls;  /* calls not over yet */
};

void rpc_server_conf_default(rpc_server_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->addr = "0.0.0.0:8081";
    conf->max_message_bytes = RPC_SRV_DEFAULT_MAX_MESSAGE;
    conf->threads = 1;
    conf->max_streams = RPC_SRV_DEFAULT_MAX_STREAMS;
}

static void rpc_server_on_request(rpc_srv_req_t *req, bool ok);

static void *rpc_server_thread(void *arg)
{
    rpc_server_t *srv = arg;
    rpc_cq_thread_enter("rpc-server");
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        rpc_tag_t *tag = ev.tag;
        RPC_TAG_FIRED(tag);
        switch (tag->kind) {
        case RPC_TAG_SRV_REQUEST:
            rpc_server_on_request(tag->ctx, ev.success != 0);
            break;
        case RPC_TAG_SRV_SHUTDOWN:
            pthread_mutex_lock(&srv->mu);
            srv->shutdown_done = true;
            pthread_cond_broadcast(&srv->cond);
            pthread_mutex_unlock(&srv->mu);
            break;
        case RPC_TAG_CALL_CLOSE:
        case RPC_TAG_CALL_SEND:
        case RPC_TAG_CALL_RECV:
            rpc_call_on_event(tag->ctx, tag->kind, ev.success != 0);
            break;
        default:
            MQ_ASSERT(!"unexpected tag on the server queue");
        }
    }
    return NULL;
}

static int rpc_server_clamp_int(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

mq_err_t rpc_server_new(const rpc_server_conf_t *conf, rpc_server_t **out)
{
    rpc_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->conf = *conf;
    if (!conf->addr || strlen(conf->addr) >= sizeof(srv->addr)) {
        free(srv);
        return MQ_EINVAL;
    }
    snprintf(srv->addr, sizeof(srv->addr), "%s", conf->addr);
    srv->conf.addr = srv->addr;
    if (srv->conf.max_message_bytes == 0) {
        srv->conf.max_message_bytes = RPC_SRV_DEFAULT_MAX_MESSAGE;
    }
    if (srv->conf.threads == 0) {
        srv->conf.threads = 1;
    }
    if (srv->conf.max_streams == 0) {
        srv->conf.max_streams = RPC_SRV_DEFAULT_MAX_STREAMS;
    }
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cond, NULL);
    srv->shutdown_tag.ctx = srv;
    srv->shutdown_tag.kind = RPC_TAG_SRV_SHUTDOWN;

    grpc_init();
    grpc_arg args[6];
    memset(args, 0, sizeof(args));
    int msg = rpc_server_clamp_int(srv->conf.max_message_bytes);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = msg;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = msg;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[2].value.integer = rpc_server_clamp_int(srv->conf.max_streams);
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS;
    args[3].value.integer = RPC_SRV_MIN_PING_INTERVAL_MS;
    args[4].type = GRPC_ARG_INTEGER;
    args[4].key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS;
    args[4].value.integer = 1;
    /* gRPC sets SO_REUSEPORT by default: a second broker on the same port
     * would bind "successfully" and steal half the connections. */
    args[5].type = GRPC_ARG_INTEGER;
    args[5].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[5].value.integer = 0;
    grpc_channel_args cargs = {.num_args = MQ_ARRAY_LEN(args), .args = args};
    srv->gsrv = grpc_server_create(&cargs, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->gsrv, srv->cq, NULL);

    /* The threads poll from the start, so that free can treat a server that
     * never started (or failed to bind) like any other. */
    srv->threads = mq_calloc(srv->conf.threads, sizeof(*srv->threads));
    for (unsigned i = 0; i < srv->conf.threads; i++) {
        int rc = pthread_create(&srv->threads[i], NULL, rpc_server_thread, srv);
        MQ_ASSERT(rc == 0);
        srv->nthreads++;
    }
    *out = srv;
    return MQ_OK;
}

mq_err_t rpc_server_add_method(rpc_server_t *srv, const rpc_method_t *method)
{
    MQ_ASSERT(!srv->started);
    if (!method->path || method->path[0] != '/' || !method->on_call ||
        (method->kind == RPC_KIND_BIDI && !method->on_message) ||
        (method->kind != RPC_KIND_UNARY && method->kind != RPC_KIND_SERVER_STREAM &&
         method->kind != RPC_KIND_BIDI)) {
        return MQ_EINVAL;
    }
    grpc_server_register_method_payload_handling payload =
        method->kind == RPC_KIND_BIDI ? GRPC_SRM_PAYLOAD_NONE
                                      : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER;
    void *handle = grpc_server_register_method(srv->gsrv, method->path, NULL, payload, 0);
    if (!handle) {
        /* gRPC refuses only a (path, host) pair it already has. */
        MQ_LOG_DEBUG("rpc method registered twice method=%s", method->path);
        return MQ_EEXIST;
    }
    if (srv->nmethods == srv->methods_cap) {
        srv->methods_cap = srv->methods_cap ? srv->methods_cap * 2 : 16;
        srv->methods = mq_realloc(srv->methods, srv->methods_cap * sizeof(*srv->methods));
    }
    rpc_srv_method_t *m = &srv->methods[srv->nmethods++];
    m->m = *method;
    m->handle = handle;
    return MQ_OK;
}

/* Posts (or re-posts) a request slot. The slot counts in nposted from its
 * first post until gRPC hands it back with success=0 (shutdown) or a post
 * fails. */
static void rpc_server_post(rpc_srv_req_t *req)
{
    rpc_server_t *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    bool shutting = srv->shutting;
    pthread_mutex_unlock(&srv->mu);
    grpc_call_error err = GRPC_CALL_ERROR;
    if (!shutting) {
        grpc_metadata_array_init(&req->md);
        req->gcall = NULL;
        req->payload = NULL;
        RPC_TAG_ARM(&req->tag);
        if (req->method) {
            err = grpc_server_request_registered_call(
                srv->gsrv, req->method->handle, &req->gcall, &req->deadline, &req->md,
                req->method->m.kind == RPC_KIND_BIDI ? NULL : &req->payload, srv->cq, srv->cq,
                &req->tag);
        } else {
            grpc_call_details_init(&req->details);
            err = grpc_server_request_call(srv->gsrv, &req->gcall, &req->details, &req->md, srv->cq,
                                           srv->cq, &req->tag);
        }
        if (err != GRPC_CALL_OK) {
            MQ_LOG_ERROR("rpc request_call failed err=%s", grpc_call_error_to_string(err));
            grpc_metadata_array_destroy(&req->md);
            if (!req->method) {
                grpc_call_details_destroy(&req->details);
            }
        }
    }
    if (err != GRPC_CALL_OK) {
        pthread_mutex_lock(&srv->mu);
        srv->nposted--;
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->mu);
    }
}

static void rpc_server_on_request(rpc_srv_req_t *req, bool ok)
{
    rpc_server_t *srv = req->srv;
    if (!ok) {
        /* Shutdown killed the request: the slot comes back for good. */
        grpc_metadata_array_destroy(&req->md);
        if (!req->method) {
            grpc_call_details_destroy(&req->details);
        }
        if (req->payload) {
            grpc_byte_buffer_destroy(req->payload);
        }
        pthread_mutex_lock(&srv->mu);
        srv->nposted--;
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    /* Count the call before the slot can be given back, so that free never
     * sees both at zero while a call is being set up. */
    pthread_mutex_lock(&srv->mu);
    srv->ncalls++;
    pthread_mutex_unlock(&srv->mu);

    grpc_call *gcall = req->gcall;
    grpc_byte_buffer *payload = req->payload;
    grpc_metadata_array md = req->md;
    const rpc_srv_method_t *method = req->method;
    gpr_timespec deadline;
    char unknown[256];
    if (method) {
        deadline = req->deadline;
    } else {
        deadline = req->details.deadline;
        size_t n = MQ_MIN(GRPC_SLICE_LENGTH(req->details.method), sizeof(unknown) - 1);
        memcpy(unknown, GRPC_SLICE_START_PTR(req->details.method), n);
        unknown[n] = '\0';
        grpc_call_details_destroy(&req->details);
    }
    /* Re-post first: the next call on this method need not wait for us. */
    rpc_server_post(req);

    rpc_call_t *call = rpc_call_new(srv, method, gcall, deadline, &md);
    grpc_metadata_array_destroy(&md);
    if (!method) {
        MQ_LOG_DEBUG("rpc unknown method method=%s peer=%s", unknown, rpc_call_peer(call));
        char details[300];
        snprintf(details, sizeof(details), "unknown method %s", unknown);
        rpc_call_reject(call, RPC_UNIMPLEMENTED, details);
    } else if (method->m.kind != RPC_KIND_BIDI && !payload) {
        /* The client half-closed without sending the request. */
        rpc_call_reject(call, RPC_INTERNAL, "missing request message");
    } else {
        rpc_call_start(call, payload);
    }
}

void rpc_server_call_over(rpc_server_t *srv)
{
    pthread_mutex_lock(&srv->mu);
    MQ_ASSERT(srv->ncalls > 0);
    srv->ncalls--;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->mu);
}

mq_err_t rpc_server_start(rpc_server_t *srv, int *port)
{
    MQ_ASSERT(!srv->started);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int bound = grpc_server_add_http2_port(srv->gsrv, srv->addr, creds);
    grpc_server_credentials_release(creds);
    if (bound == 0) {
        MQ_LOG_ERROR("rpc server cannot bind addr=%s", srv->addr);
        return MQ_EIO;
    }
    grpc_server_start(srv->gsrv);
    srv->started = true;

    srv->nreqs = srv->nmethods * RPC_SRV_REQS_PER_METHOD + RPC_SRV_REQS_UNKNOWN;
    srv->reqs = mq_calloc(srv->nreqs, sizeof(*srv->reqs));
    size_t i = 0;
    for (size_t m = 0; m < srv->nmethods; m++) {
        for (int k = 0; k < RPC_SRV_REQS_PER_METHOD; k++, i++) {
            srv->reqs[i].method = &srv->methods[m];
        }
    }
    pthread_mutex_lock(&srv->mu);
    srv->nposted = srv->nreqs;
    pthread_mutex_unlock(&srv->mu);
    for (i = 0; i < srv->nreqs; i++) {
        rpc_srv_req_t *req = &srv->reqs[i];
        req->srv = srv;
        req->tag.ctx = req;
        req->tag.kind = RPC_TAG_SRV_REQUEST;
        rpc_server_post(req);
    }
    MQ_LOG_INFO("rpc server started addr=%s port=%d methods=%zu threads=%u", srv->addr, bound,
                srv->nmethods, srv->nthreads);
    if (port) {
        *port = bound;
    }
    return MQ_OK;
}

void rpc_server_free(rpc_server_t *srv)
{
    if (!srv) {
        return;
    }
    MQ_ASSERT(!rpc_cq_thread_is_self());
    pthread_mutex_lock(&srv->mu);
    srv->shutting = true;
    pthread_mutex_unlock(&srv->mu);
    RPC_TAG_ARM(&srv->shutdown_tag);
    grpc_server_shutdown_and_notify(srv->gsrv, srv->cq, &srv->shutdown_tag);
    grpc_server_cancel_all_calls(srv->gsrv);
    pthread_mutex_lock(&srv->mu);
    while (!srv->shutdown_done || srv->nposted > 0 || srv->ncalls > 0) {
        pthread_cond_wait(&srv->cond, &srv->mu);
    }
    pthread_mutex_unlock(&srv->mu);

    grpc_server_destroy(srv->gsrv);
    grpc_completion_queue_shutdown(srv->cq);
    for (unsigned i = 0; i < srv->nthreads; i++) {
        pthread_join(srv->threads[i], NULL);
    }
    grpc_completion_queue_destroy(srv->cq);
    if (srv->started) {
        MQ_LOG_INFO("rpc server stopped addr=%s", srv->addr);
    }
    free(srv->threads);
    free(srv->reqs);
    free(srv->methods);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    grpc_shutdown();
}
