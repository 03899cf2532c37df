/*
 * it_rmq: a small RocketMQ v5 client for broker integration tests, on our
 * rpc wrapper and the nanopb messages: route queries, sends with any field
 * set or left out (to provoke each validation code), raw requests,
 * receives (the ReceiveMessage stream, frame by frame), a paced
 * load generator that records every acknowledged message, and a checker
 * that finds each acknowledged message in its queue's log byte for byte.
 */
#ifndef IT_RMQ_H
#define IT_RMQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "it_cluster.h"

typedef struct it_rmq it_rmq_t;

it_rmq_t *it_rmq_new(const char *endpoint);
void it_rmq_free(it_rmq_t *c);

typedef struct it_rmq_msg {
    const char *topic;
    const void *body;
    size_t len;
    const char *tag;
    const char *key;
    const char *group;
    const char *prop_key;
    const char *prop_val;
    const char *message_id; /* NULL: generated; "": none */
    int type;               /* apache.rocketmq.v2.MessageType; 0: from group */
} it_rmq_msg_t;

/* Result of one message. code: RocketMQ code of its entry (or of the whole
 * response when it has no entries); -status for a gRPC error. */
typedef struct it_rmq_result {
    int code;
    int queue;
    int64_t offset;
} it_rmq_result_t;

/* Sends n messages in one request. client_id NULL: "it-client"; "": none.
 * Returns the top-level code (or -grpc status). */
int it_rmq_send(it_rmq_t *c, const it_rmq_msg_t *msgs, size_t n, const char *client_id,
                it_rmq_result_t *results, uint32_t timeout_ms);
/* QueryRoute: returns the code; *nqueues and the endpoint of queue 0. */
int it_rmq_route(it_rmq_t *c, const char *topic, int *nqueues, char *ep0, size_t cap);
/* Any unary method with raw request bytes; returns the gRPC status and the
 * response's top-level RocketMQ code in *code (0 when absent). */
int it_rmq_raw(it_rmq_t *c, const char *method, const void *req, size_t len, const char *client_id,
               int *code);

/* The queue a message group maps to (the broker's rule). */
int it_rmq_group_queue(const char *group, int nqueues);

/* --- receive ---------------------------------------------------------------------- */

/* A ReceiveMessage request; negative durations are left out. */
typedef struct it_rmq_recv_req {
    const char *group;
    const char *topic;
    int queue;
    int filter_type; /* 0: no filter expression */
    const char *filter;
    int batch;
    int64_t invisible_ms;
    int64_t poll_ms;
    uint32_t timeout_ms;   /* the call's deadline */
    const char *client_id; /* NULL: "it-client"; "": none */
} it_rmq_recv_req_t;

/* A received message. */
typedef struct it_rmq_rmsg {
    char topic[128];
    char message_id[136];
    char handle[136];
    char tag[64];
    char md5[40];
    char dlq_topic[136]; /* dead_letter_queue.topic, "" when absent */
    int queue;
    int64_t offset;
    int attempt;
    uint8_t *body; /* malloc'd */
    size_t len;
} it_rmq_rmsg_t;

/* The stream of one ReceiveMessage. */
typedef struct it_rmq_recv_res {
    int grpc;          /* gRPC status of the call */
    int code;          /* code of the status frame (0: none) */
    int status_frames; /* how many */
    bool timestamp;    /* a delivery_timestamp frame came */
    it_rmq_rmsg_t *msgs;
    size_t n;
} it_rmq_recv_res_t;

/* ReceiveMessage (a server stream), blocking until it ends. Returns the
 * status frame's code, or -grpc status when the call failed. */
int it_rmq_receive(it_rmq_t *c, const it_rmq_recv_req_t *r, it_rmq_recv_res_t *res);
void it_rmq_recv_res_fini(it_rmq_recv_res_t *res);

/* --- load ----------------------------------------------------------------------- */

typedef struct it_rmq_ack {
    int queue;
    int64_t offset;
    uint32_t crc;
    uint64_t seq;
} it_rmq_ack_t;

typedef struct it_rmq_load {
    const char *const *endpoints; /* tried in turn; a failed send moves on */
    size_t nendpoints;
    const char *topic;
    unsigned rate;   /* messages per second */
    unsigned batch;  /* messages per request */
    size_t size;     /* body bytes */
    unsigned groups; /* 0: normal messages; else FIFO over this many groups */
    /* results (read after it_rmq_load_stop) */
    pthread_t tid;
    atomic_bool stop;
    pthread_mutex_t lock;
    it_rmq_ack_t *acks;
    size_t nacks, cap;
    uint64_t sent, failed_requests, retries, lost; /* lost: never acknowledged */
} it_rmq_load_t;

void it_rmq_load_start(it_rmq_load_t *l);
void it_rmq_load_stop(it_rmq_load_t *l);
size_t it_rmq_load_acked(it_rmq_load_t *l);
void it_rmq_load_fini(it_rmq_load_t *l);

/* Stops every broker still running (SIGTERM: their ledgers get closed),
 * then reads every queue of topic from the logs and checks each acknowledged
 * message: present at its (queue, offset), same body (CRC), and no
 * (queue, offset) acknowledged twice. CU assertions; returns true if all
 * hold. */
bool it_rmq_verify(it_cluster_t *c, const char *topic, int nqueues, const it_rmq_ack_t *acks,
                   size_t nacks);

#endif
