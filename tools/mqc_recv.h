/*
 * mqc_recv: a consumer's calls on an rpc channel (rpc.h): ReceiveMessage as
 * a server stream whose frames are put together as the official clients do
 * (reference §4.7: the last status frame decides the outcome, messages are
 * kept in arrival order whatever the frame order, the delivery timestamp is
 * noted, and a stream without a status frame is an error), AckMessage and
 * ChangeInvisibleDuration. The codecs are mqc_rmq.h's.
 *
 * Users: mqbench consume (mqc_receive, asynchronous) and the integration
 * tests (the blocking calls).
 *
 * Threads: mqc_receive's callback runs on the rpc client thread; the
 * blocking calls must not be made from an rpc client callback. A result
 * belongs to one thread at a time: the client thread until the callback has
 * run, then the caller.
 */
#ifndef MQC_RECV_H
#define MQC_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "mqc_rmq.h"
#include "rpc.h"

/* One delivered message: its frame's bytes (owned), the decoded frame and
 * a flat view into it. */
typedef struct mqc_rmsg {
    uint8_t *raw;
    size_t raw_len;
    mqc_recv_frame_t frame;
    mqc_delivery_t d;
} mqc_rmsg_t;

/* The outcome of one ReceiveMessage stream. */
typedef struct mqc_recv_result {
    rpc_status_t grpc; /* the call's final gRPC status */
    char details[256]; /* its text */
    bool has_status;   /* a status frame arrived */
    int code;          /* the last status frame's code */
    char message[160]; /* and its text */
    bool has_delivery_ts;
    uint64_t delivery_ms; /* the delivery_timestamp frame's time */
    size_t nframes;       /* frames of any kind */
    size_t bad_frames;    /* undecodable or without content */
    mqc_rmsg_t **msgs;    /* message frames, in arrival order */
    size_t n;
    size_t cap;
    uint64_t start_ns; /* mq_now_ns() when the call started */
    uint64_t end_ns;   /* and when it ended */
} mqc_recv_result_t;

void mqc_recv_result_init(mqc_recv_result_t *r);
/* Adds one frame (its bytes are copied). */
void mqc_recv_result_add(mqc_recv_result_t *r, const uint8_t *frame, size_t len);
/* Frees the messages; r can be reused after mqc_recv_result_init. */
void mqc_recv_result_fini(mqc_recv_result_t *r);
/* What the call amounts to, as Go's SimpleConsumer decides: -status for a
 * gRPC failure, else the status frame's code (OK, MESSAGE_NOT_FOUND, ...),
 * or 0 when the stream carried no status frame. */
int mqc_recv_result_code(const mqc_recv_result_t *r);

/* Runs once per started receive, on the rpc client thread, when the stream
 * ended (res complete). */
typedef void (*mqc_recv_cb)(mqc_recv_result_t *res, void *arg);

/* Starts ReceiveMessage req on ch with client_id's headers; res (caller's
 * storage, initialised here) fills in as frames arrive. timeout_ms: the
 * call's deadline (0: none). On MQ_OK done runs exactly once; on failure
 * it never runs. */
mq_err_t mqc_receive(rpc_channel_t *ch, const char *client_id, const mqc_recv_req_t *req,
                     uint32_t timeout_ms, mqc_recv_result_t *res, mqc_recv_cb done, void *arg);
/* Blocking mqc_receive: res complete on MQ_OK (release with
 * mqc_recv_result_fini either way). */
mq_err_t mqc_receive_sync(rpc_channel_t *ch, const char *client_id, const mqc_recv_req_t *req,
                          uint32_t timeout_ms, mqc_recv_result_t *res);

/* Blocking AckMessage of n entries. Returns the response's top-level code
 * (0 when absent), or -status for a gRPC failure, or INT32_MIN when the
 * call could not be made or the response was undecodable. codes (may be
 * NULL; n of them) get each entry's code, in order (0 when absent). */
int mqc_ack_sync(rpc_channel_t *ch, const char *client_id, const char *group, const char *topic,
                 const mqc_ack_entry_t *e, size_t n, uint32_t timeout_ms, int *codes);
/* Blocking ChangeInvisibleDuration; returns the code as mqc_ack_sync, the
 * new receipt handle into handle (may be NULL). */
int mqc_change_sync(rpc_channel_t *ch, const char *client_id, const char *group, const char *topic,
                    const char *receipt_handle, const char *message_id, int64_t invisible_ms,
                    uint32_t timeout_ms, char *handle, size_t handle_cap);

#endif
