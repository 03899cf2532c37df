/*
 * rpc: the only code that talks to gRPC core's C API (libgrpc 1.51 on
 * Debian 12). Brokers serve the RocketMQ 5 messaging service and our admin
 * service through rpc_server_t; brokers (forwarding), mqadmin and mqbench
 * call them through rpc_client_t / rpc_channel_t. Messages cross this layer
 * as encoded protobuf bytes; callers encode and decode with nanopb.
 *
 * Server threads: one completion-queue thread (rpc_server_conf.threads more
 * if asked) runs every callback below. Callbacks must not block: decode,
 * then post the work to an executor. Every reply/write/finish function is
 * thread-safe and may be called from any thread, at any later time, as long
 * as the caller holds a reference on the call (rpc_call_ref).
 *
 * Call lifetime: the server holds one reference on a call until gRPC reports
 * it over (both the status sent and the peer gone). A callback borrows the
 * call for its duration; to answer later, take a reference and drop it after
 * the last reply/write/finish. After a call is over (peer cancelled,
 * deadline, shutdown) writes fail with MQ_ECLOSED and nothing is sent.
 *
 * Kinds: UNARY (one request in on_call, one rpc_call_reply or
 * rpc_call_finish), SERVER_STREAM (one request in on_call, any number of
 * rpc_call_write, then rpc_call_finish), BIDI (on_call with no request, then
 * every client message in on_message; a NULL message means the client
 * half-closed; rpc_call_write any time; rpc_call_finish ends it).
 * Writes are queued (copied) and sent in order, one in flight at a time;
 * rpc_call_finish sends the status after the queued writes.
 *
 * Unknown methods are answered UNIMPLEMENTED by the server itself.
 */
#ifndef RPC_H
#define RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

/* gRPC status codes (the numbers are gRPC's). */
typedef enum rpc_status {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16,
} rpc_status_t;

const char *rpc_status_name(rpc_status_t st);

/* A metadata (header) pair. Keys are lower-case ASCII. */
typedef struct rpc_md {
    const char *key;
    const char *value;
} rpc_md_t;

/* ------------------------------------------------------------------ server */

typedef struct rpc_server rpc_server_t;
typedef struct rpc_call rpc_call_t;

typedef enum rpc_kind { RPC_KIND_UNARY, RPC_KIND_SERVER_STREAM, RPC_KIND_BIDI } rpc_kind_t;

/* A new call. req/len: the request message for UNARY and SERVER_STREAM
 * (borrowed for the callback; flattened into one buffer), NULL/0 for BIDI. */
typedef void (*rpc_call_cb)(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
/* BIDI: a client message (borrowed); msg NULL: the client half-closed. */
typedef void (*rpc_message_cb)(rpc_call_t *call, const uint8_t *msg, size_t len, void *arg);
/* The call is over (cancelled: it did not end with our status). Runs once
 * per call, last of its callbacks. Optional. */
typedef void (*rpc_done_cb)(rpc_call_t *call, bool cancelled, void *arg);

typedef struct rpc_method {
    const char *path; /* "/apache.rocketmq.v2.MessagingService/SendMessage" */
    rpc_kind_t kind;
    rpc_call_cb on_call;
    rpc_message_cb on_message; /* BIDI only */
    rpc_done_cb on_done;       /* may be NULL */
    void *arg;
} rpc_method_t;

typedef struct rpc_server_conf {
    const char *addr;         /* "0.0.0.0:8081", "127.0.0.1:0" (port 0: any free one) */
    size_t max_message_bytes; /* largest request accepted; default 16 MiB */
    unsigned threads;         /* completion-queue threads; default 1 */
    unsigned max_streams;     /* HTTP/2 concurrent streams per connection; default 1000 */
} rpc_server_conf_t;

void rpc_server_conf_default(rpc_server_conf_t *conf);
mq_err_t rpc_server_new(const rpc_server_conf_t *conf, rpc_server_t **out);
/* Before rpc_server_start only. The method struct is copied; path must live
 * as long as the server (a string literal). */
mq_err_t rpc_server_add_method(rpc_server_t *srv, const rpc_method_t *method);
/* Binds and starts serving; *port (may be NULL) gets the bound port.
 * MQ_EIO when the address cannot be bound. */
mq_err_t rpc_server_start(rpc_server_t *srv, int *port);
/* Cancels every call, waits until each is over (its on_done has run), stops
 * the threads and frees the server. Not from a server callback. */
void rpc_server_free(rpc_server_t *srv);

void rpc_call_ref(rpc_call_t *call);
void rpc_call_unref(rpc_call_t *call);
/* The method's path (borrowed, lives as long as the server). */
const char *rpc_call_method(const rpc_call_t *call);
/* The first value of request header key, or NULL. Borrowed: lives as long
 * as the call. */
const char *rpc_call_header(const rpc_call_t *call, const char *key);
/* The peer's address as gRPC names it ("ipv4:127.0.0.1:5123"). Borrowed. */
const char *rpc_call_peer(const rpc_call_t *call);
/* Milliseconds left before the call's deadline; INT64_MAX without one. */
int64_t rpc_call_remaining_ms(const rpc_call_t *call);
/* True once the call is over (a write would fail). */
bool rpc_call_over(const rpc_call_t *call);
/* A pointer the application keeps with the call (e.g. a Telemetry
 * session). Not synchronised: set it in on_call. */
void rpc_call_set_user(rpc_call_t *call, void *user);
void *rpc_call_user(const rpc_call_t *call);

/* UNARY: sends msg (copied) and status OK. MQ_ECLOSED if the call is over. */
mq_err_t rpc_call_reply(rpc_call_t *call, const void *msg, size_t len);
/* STREAM/BIDI: queues msg (copied) for sending. MQ_ECLOSED if over or
 * finished. */
mq_err_t rpc_call_write(rpc_call_t *call, const void *msg, size_t len);
/* Ends the call with status (details may be NULL) after the queued writes.
 * For UNARY this answers without a message (an error). Once per call. */
mq_err_t rpc_call_finish(rpc_call_t *call, rpc_status_t status, const char *details);

/* ------------------------------------------------------------------ client */

typedef struct rpc_client rpc_client_t;
typedef struct rpc_channel rpc_channel_t;

/* One completion-queue thread serving every channel made from it; all
 * client callbacks run on it and must not block. */
mq_err_t rpc_client_new(rpc_client_t **out);
/* Every channel must have been freed. Not from a client callback. */
void rpc_client_free(rpc_client_t *cl);

/* target: "host:port". Connection happens lazily, reconnects by itself. */
mq_err_t rpc_channel_new(rpc_client_t *cl, const char *target, rpc_channel_t **out);
/* Cancels this channel's calls (their callbacks run with RPC_CANCELLED),
 * waits for them, frees it. Not from a client callback. */
void rpc_channel_free(rpc_channel_t *ch);
const char *rpc_channel_target(const rpc_channel_t *ch);

/* Result of a unary call: status RPC_OK and resp/len the response
 * (borrowed for the callback), or another status with details (may be
 * NULL) and no response. */
typedef void (*rpc_unary_cb)(rpc_status_t status, const char *details, const uint8_t *resp,
                             size_t len, void *arg);
/* Starts a unary call (req copied; md copied; timeout_ms 0: none). cb runs
 * exactly once, on the client thread, if this returns MQ_OK. */
mq_err_t rpc_channel_unary(rpc_channel_t *ch, const char *method, const rpc_md_t *md, size_t nmd,
                           const void *req, size_t len, uint32_t timeout_ms, rpc_unary_cb cb,
                           void *arg);
/* Blocking unary call; *resp (free()) and *len get the response when
 * *status is RPC_OK. Returns MQ_OK when a status was received (check
 * *status), an error when the call could not be started. details (may be
 * NULL) gets the status text. Not from a client callback. */
mq_err_t rpc_channel_unary_sync(rpc_channel_t *ch, const char *method, const rpc_md_t *md,
                                size_t nmd, const void *req, size_t len, uint32_t timeout_ms,
                                rpc_status_t *status, uint8_t **resp, size_t *resp_len,
                                char *details, size_t details_cap);

/* Server-streaming call: on_message for each response message (borrowed),
 * then on_end exactly once with the final status. */
typedef void (*rpc_stream_msg_cb)(const uint8_t *msg, size_t len, void *arg);
typedef void (*rpc_stream_end_cb)(rpc_status_t status, const char *details, void *arg);
mq_err_t rpc_channel_server_stream(rpc_channel_t *ch, const char *method, const rpc_md_t *md,
                                   size_t nmd, const void *req, size_t len, uint32_t timeout_ms,
                                   rpc_stream_msg_cb on_message, rpc_stream_end_cb on_end,
                                   void *arg);

/* Bidirectional-streaming call (RocketMQ's Telemetry). The stream opens at
 * once (the server sees the call before any message); on_message runs for
 * each server message (borrowed), then on_end exactly once with the final
 * status, on the client thread, if this returns MQ_OK. *out is the caller's
 * handle: write and half-close it from any thread, and rpc_bidi_free it
 * exactly once, before or after on_end. arg must live until on_end ran. */
typedef struct rpc_bidi rpc_bidi_t;
mq_err_t rpc_channel_bidi(rpc_channel_t *ch, const char *method, const rpc_md_t *md, size_t nmd,
                          uint32_t timeout_ms, rpc_stream_msg_cb on_message,
                          rpc_stream_end_cb on_end, void *arg, rpc_bidi_t **out);
/* Queues msg (copied) for sending, in order, one in flight at a time.
 * MQ_ECLOSED after rpc_bidi_half_close or once the stream has ended. */
mq_err_t rpc_bidi_write(rpc_bidi_t *bidi, const void *msg, size_t len);
/* Half-closes after the queued writes: the server's on_message gets NULL.
 * Responses keep arriving until the server finishes. Once. */
mq_err_t rpc_bidi_half_close(rpc_bidi_t *bidi);
/* Drops the handle. A stream that has not ended is cancelled: on_end still
 * runs (RPC_CANCELLED), possibly after this returns. Any thread, also from
 * this stream's own callbacks. */
void rpc_bidi_free(rpc_bidi_t *bidi);

#endif
