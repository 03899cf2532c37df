/*
 * rpc_client: the client side's completion queue and its one thread, and
 * the channels made from it. Brokers (forwarding), mqadmin and mqbench
 * create one client, a channel per target, and call through
 * rpc_client_unary.c and rpc_client_stream.c.
 *
 * Threads: the client thread loops on grpc_completion_queue_next and runs
 * every client callback. Channels are used from any thread: each tracks its
 * live calls in a list under ch->mu, so that rpc_channel_free can cancel
 * them and wait until the last one has run its callback and released its
 * grpc call. Only then is the grpc channel destroyed. rpc_client_free shuts
 * the queue down once every channel is gone and joins the thread.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "rpc_int.h"

#define RPC_CLIENT_MAX_MESSAGE (16 * 1024 * 1024)

struct rpc_client {
    grpc_completion_queue *cq;
    pthread_t thread;
    atomic_uint nchannels;
};

struct rpc_channel {
    rpc_client_t *cl;
    grpc_channel *gch;
    char *target;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* @locks mu */
    rpc_ccall_link_t calls; /* sentinel of a circular list */
    size_t ncalls;
    bool freeing;
};

static void *rpc_client_thread(void *arg)
{
    rpc_client_t *cl = arg;
    rpc_cq_thread_enter("rpc-client");
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(cl->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        rpc_tag_t *tag = ev.tag;
        RPC_TAG_FIRED(tag);
        switch (tag->kind) {
        case RPC_TAG_CL_UNARY:
            rpc_client_unary_on_event(tag->ctx, ev.success != 0);
            break;
        case RPC_TAG_CL_SEND:
        case RPC_TAG_CL_RECV:
        case RPC_TAG_CL_STATUS:
            rpc_client_stream_on_event(tag->ctx, tag->kind, ev.success != 0);
            break;
        default:
            MQ_ASSERT(!"unexpected tag on the client queue");
        }
    }
    return NULL;
}

mq_err_t rpc_client_new(rpc_client_t **out)
{
    rpc_client_t *cl = mq_calloc(1, sizeof(*cl));
    atomic_init(&cl->nchannels, 0);
    grpc_init();
    cl->cq = grpc_completion_queue_create_for_next(NULL);
    if (pthread_create(&cl->thread, NULL, rpc_client_thread, cl) != 0) {
        MQ_LOG_ERROR("rpc client thread not created");
        grpc_completion_queue_shutdown(cl->cq);
        while (grpc_completion_queue_next(cl->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(cl->cq);
        free(cl);
        grpc_shutdown();
        return MQ_ENOMEM;
    }
    *out = cl;
    return MQ_OK;
}

void rpc_client_free(rpc_client_t *cl)
{
    if (!cl) {
        return;
    }
    MQ_ASSERT(!rpc_cq_thread_is_self());
    MQ_ASSERT(atomic_load(&cl->nchannels) == 0);
    grpc_completion_queue_shutdown(cl->cq);
    pthread_join(cl->thread, NULL);
    grpc_completion_queue_destroy(cl->cq);
    free(cl);
    grpc_shutdown();
}

mq_err_t rpc_channel_new(rpc_client_t *cl, const char *target, rpc_channel_t **out)
{
    if (!target || !target[0]) {
        return MQ_EINVAL;
    }
    grpc_arg args[2];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = RPC_CLIENT_MAX_MESSAGE;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = RPC_CLIENT_MAX_MESSAGE;
    grpc_channel_args cargs = {.num_args = MQ_ARRAY_LEN(args), .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *gch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!gch) {
        MQ_LOG_ERROR("rpc channel not created target=%s", target);
        return MQ_EIO;
    }
    rpc_channel_t *ch = mq_calloc(1, sizeof(*ch));
    ch->cl = cl;
    ch->gch = gch;
    ch->target = mq_strdup(target);
    pthread_mutex_init(&ch->mu, NULL);
    pthread_cond_init(&ch->cond, NULL);
    ch->calls.prev = ch->calls.next = &ch->calls;
    atomic_fetch_add(&cl->nchannels, 1);
    *out = ch;
    return MQ_OK;
}

void rpc_channel_free(rpc_channel_t *ch)
{
    if (!ch) {
        return;
    }
    MQ_ASSERT(!rpc_cq_thread_is_self());
    pthread_mutex_lock(&ch->mu);
    ch->freeing = true;
    for (rpc_ccall_link_t *l = ch->calls.next; l != &ch->calls; l = l->next) {
        grpc_call_cancel(l->gcall, NULL);
    }
    while (ch->ncalls > 0) {
        pthread_cond_wait(&ch->cond, &ch->mu);
    }
    pthread_mutex_unlock(&ch->mu);
    grpc_channel_destroy(ch->gch);
    atomic_fetch_sub(&ch->cl->nchannels, 1);
    pthread_cond_destroy(&ch->cond);
    pthread_mutex_destroy(&ch->mu);
    free(ch->target);
    free(ch);
}

const char *rpc_channel_target(const rpc_channel_t *ch)
{
    return ch->target;
}

grpc_completion_queue *rpc_channel_cq(const rpc_channel_t *ch)
{
    return ch->cl->cq;
}

mq_err_t rpc_channel_call_open(rpc_channel_t *ch, rpc_ccall_link_t *link, const char *method,
                               gpr_timespec deadline)
{
    if (!method || method[0] != '/') {
        return MQ_EINVAL;
    }
    /* The call keeps its own reference on the method slice. */
    grpc_slice ms = grpc_slice_from_copied_string(method);
    grpc_call *gcall = grpc_channel_create_call(ch->gch, NULL, GRPC_PROPAGATE_DEFAULTS, ch->cl->cq,
                                                ms, NULL, deadline, NULL);
    grpc_slice_unref(ms);
    if (!gcall) {
        MQ_LOG_WARN("rpc call not created target=%s method=%s", ch->target, method);
        return MQ_EIO;
    }
    pthread_mutex_lock(&ch->mu);
    if (ch->freeing) {
        pthread_mutex_unlock(&ch->mu);
        grpc_call_unref(gcall);
        return MQ_ECLOSED;
    }
    link->gcall = gcall;
    link->next = &ch->calls;
    link->prev = ch->calls.prev;
    ch->calls.prev->next = link;
    ch->calls.prev = link;
    ch->ncalls++;
    pthread_mutex_unlock(&ch->mu);
    return MQ_OK;
}

void rpc_channel_call_close(rpc_channel_t *ch, rpc_ccall_link_t *link)
{
    /* Under the lock: rpc_channel_free may be cancelling this very call. */
    pthread_mutex_lock(&ch->mu);
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
    grpc_call_unref(link->gcall);
    link->gcall = NULL;
    MQ_ASSERT(ch->ncalls > 0);
    if (--ch->ncalls == 0 && ch->freeing) {
        pthread_cond_broadcast(&ch->cond);
    }
    pthread_mutex_unlock(&ch->mu);
}
