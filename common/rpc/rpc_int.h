/*
 * rpc_int: what the files of common/rpc share and nobody else sees: the
 * completion-queue tags, flattening received byte buffers, building ones to
 * send, the per-call send queue, outgoing metadata, deadlines, and the
 * internal entry points between the server (rpc_server.c) and its calls
 * (rpc_call.c), and between the client (rpc_client.c) and its call kinds
 * (rpc_client_unary.c, rpc_client_stream.c). Only this directory includes
 * <grpc/...>.
 */
#ifndef RPC_INT_H
#define RPC_INT_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>

#include "mq_err.h"
#include "rpc.h"

/* ------------------------------------------------------------------- tags */

/* What a completion-queue event is about. Each outstanding operation owns
 * one tag, embedded in its context, so an event names its context and kind
 * without allocating. */
typedef enum rpc_tag_kind {
    RPC_TAG_SRV_REQUEST,  /* a pre-posted request slot matched (or was killed) */
    RPC_TAG_SRV_SHUTDOWN, /* grpc_server_shutdown_and_notify completed */
    RPC_TAG_CALL_CLOSE,   /* server call: RECV_CLOSE_ON_SERVER */
    RPC_TAG_CALL_SEND,    /* server call: a send batch (message and/or status) */
    RPC_TAG_CALL_RECV,    /* server call (bidi): RECV_MESSAGE */
    RPC_TAG_CL_UNARY,     /* client unary: the one 6-op batch */
    RPC_TAG_CL_SEND,      /* client stream: a send batch */
    RPC_TAG_CL_RECV,      /* client stream: RECV_MESSAGE (first with initial md) */
    RPC_TAG_CL_STATUS,    /* client stream: RECV_STATUS_ON_CLIENT */
} rpc_tag_kind_t;

typedef struct rpc_tag {
    void *ctx;
    rpc_tag_kind_t kind;
} rpc_tag_t;

/*
 * gRPC hands every tag from the thread that started its operation to the
 * thread that gets its event, and with it whatever that thread wrote before.
 * It does so through atomics and abseil mutexes inside libgrpc, which is not
 * built with ThreadSanitizer, so TSan cannot see that edge and reports our
 * own fields as races. RPC_TAG_ARM (before handing a tag to gRPC) and
 * RPC_TAG_FIRED (when its event arrives) state the edge; outside TSan builds
 * they are nothing.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RPC_TAG_ARM(tag) __tsan_release(tag)
#define RPC_TAG_FIRED(tag) __tsan_acquire(tag)
#else
#define RPC_TAG_ARM(tag) ((void)(tag))
#define RPC_TAG_FIRED(tag) ((void)(tag))
#endif

/* Marks the calling thread as a completion-queue thread (names it too);
 * rpc_cq_thread_is_self() lets blocking functions assert they are not
 * called from a callback. */
void rpc_cq_thread_enter(const char *name);
bool rpc_cq_thread_is_self(void);

/* ---------------------------------------------------------------- buffers */

/* A received message as one contiguous range. A single-slice buffer is
 * read in place; anything else is copied into one slice. The range lives
 * until rpc_flat_fini and as long as the byte buffer; the struct must not
 * be copied (small slices are stored inline in it). */
typedef struct rpc_flat {
    const uint8_t *data;
    size_t len;
    grpc_slice slice;
    bool owned;
} rpc_flat_t;

/* False when the buffer cannot be read (e.g. it fails to decompress). */
bool rpc_flat_init(rpc_flat_t *flat, grpc_byte_buffer *bb);
void rpc_flat_fini(rpc_flat_t *flat);

/* A byte buffer holding a copy of msg/len, for SEND_MESSAGE. */
grpc_byte_buffer *rpc_bb_copy(const void *msg, size_t len);

/* FIFO of byte buffers waiting for their SEND_MESSAGE. The owner locks. */
typedef struct rpc_sendq_item rpc_sendq_item_t;
typedef struct rpc_sendq {
    rpc_sendq_item_t *head;
    rpc_sendq_item_t *tail;
    size_t n;
} rpc_sendq_t;

void rpc_sendq_push(rpc_sendq_t *q, grpc_byte_buffer *bb);
/* NULL when empty. */
grpc_byte_buffer *rpc_sendq_pop(rpc_sendq_t *q);
/* Destroys whatever is still queued. */
void rpc_sendq_clear(rpc_sendq_t *q);

/* --------------------------------------------------- metadata, deadlines */

/* Copies md into a new grpc_metadata array (*out NULL when nmd is 0).
 * MQ_EINVAL (nothing allocated) when a key or value is not legal in HTTP/2:
 * checking here keeps start_batch from failing on them (a failed batch
 * poisons the call). */
mq_err_t rpc_md_copy(const rpc_md_t *md, size_t nmd, grpc_metadata **out);
void rpc_md_free(grpc_metadata *gmd, size_t nmd);

/* The absolute deadline for a client call; 0: none. */
gpr_timespec rpc_deadline(uint32_t timeout_ms);

/* A status code from the wire; codes we do not know become RPC_UNKNOWN. */
rpc_status_t rpc_status_from_grpc(grpc_status_code code);

/* Copies a status-details slice into a C string (NULL when empty);
 * gpr_free(). */
char *rpc_slice_strdup(grpc_slice slice);

/* ----------------------------------------------------- server <-> call */

typedef struct rpc_srv_method {
    rpc_method_t m;
    void *handle; /* from grpc_server_register_method */
} rpc_srv_method_t;

/*
 * A call matched by the server. method NULL: a call the server answers
 * itself (unknown method). Takes the server's reference on gcall; md is
 * copied (the array stays the caller's). The call starts with one reference,
 * the server's, dropped when it is over.
 */
rpc_call_t *rpc_call_new(rpc_server_t *srv, const rpc_srv_method_t *method, grpc_call *gcall,
                         gpr_timespec deadline, const grpc_metadata_array *md);
/* Starts the call: RECV_CLOSE_ON_SERVER, then on_call with the request
 * (payload: the initial message, taken; NULL for BIDI). On a cq thread. */
void rpc_call_start(rpc_call_t *call, grpc_byte_buffer *payload);
/* Starts a call the server answers itself with status and details. */
void rpc_call_reject(rpc_call_t *call, rpc_status_t status, const char *details);
/* A completion for one of the call's tags. On a cq thread. */
void rpc_call_on_event(rpc_call_t *call, rpc_tag_kind_t kind, bool ok);
/* The call is over and the server's part of it released. */
void rpc_server_call_over(rpc_server_t *srv);

/* ---------------------------------------------------- client internals */

/* A client call as its channel tracks it (to cancel it on channel free). */
typedef struct rpc_ccall_link {
    struct rpc_ccall_link *prev;
    struct rpc_ccall_link *next;
    grpc_call *gcall;
} rpc_ccall_link_t;

grpc_completion_queue *rpc_channel_cq(const rpc_channel_t *ch);
/* Creates the grpc call on the channel and tracks it in link. MQ_ECLOSED if
 * the channel is being freed, MQ_EIO if gRPC refuses. */
mq_err_t rpc_channel_call_open(rpc_channel_t *ch, rpc_ccall_link_t *link, const char *method,
                               gpr_timespec deadline);
/* Stops tracking the call and releases the grpc call. After this the
 * channel may be freed at any moment. */
void rpc_channel_call_close(rpc_channel_t *ch, rpc_ccall_link_t *link);

void rpc_client_unary_on_event(void *ctx, bool ok);
void rpc_client_stream_on_event(void *ctx, rpc_tag_kind_t kind, bool ok);

#endif
