/*
 * br_recv_int: what the consume side's files share (br_recv.c receives and
 * long polls, br_recv_cursor.c the cursors of owned queues, br_recv_ack.c
 * acks / invisible-time changes / forwards to the dead-letter queue,
 * br_recv_dlq.c storing into %DLQ%<group>, br_recv_query.c QueryAssignment
 * and ConsumerProgress).
 *
 * A cursor (br_rcur_t) is one group's consumption of one queue, at the
 * queue's owner only. It lives in the queue's consume state (q->cons) and
 * is touched only on the queue's executor key (srv->ex,
 * br_queue_key(topic, queue)), the same key as the managed log. It is
 * created on first use by br_rcur_with: loaded from its cursor ledger on
 * srv->recv->io, while the requests that need it wait in a list.
 */
#ifndef BR_RECV_INT_H
#define BR_RECV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "br_cstore.h"
#include "br_cursor.h"
#include "br_group.h"
#include "br_server_int.h"
#include "rmq_definition.pb.h"

/* Header of a consume request forwarded to the queue's owner: the owner
 * handles it locally and never forwards it again. */
#define BR_RECV_FWD_HEADER "x-lmq-forward-recv"
#define BR_RECV_SVC "/apache.rocketmq.v2.MessagingService/"
/* How often an op waiting for a queue's owner (handover) tries again. */
#define BR_RECV_RETRY_MS 50
/* Largest batch a receive returns (RocketMQ's limit). */
#define BR_RECV_MAX_BATCH 32

struct br_recv_ctx;

/* The consume side's shared state (srv->recv). */
typedef struct br_recv {
    pthread_mutex_t wlock;
    struct br_recv_ctx *waiters; /* receives in progress, under wlock */
    atomic_int nwaiters;         /* lets br_recv_notify return at once */
    atomic_int ops;              /* contexts in flight: shutdown waits for 0 */
    atomic_bool stopping;
    atomic_uint_fast64_t rr;  /* rotates the first queue a receive pops */
    atomic_uint_fast64_t gen; /* cursor generations */
    /* Cursor loads and compactions (blocking; see br_recv_cursor.c). */
    mq_executor_t *io;
} br_recv_t;

/* --- cursors (br_recv_cursor.c) ---------------------------------------------------------- */

typedef struct br_rcur_wait br_rcur_wait_t;
typedef struct br_rcur_prec br_rcur_prec_t;

typedef struct br_rcur {
    char group[BR_GROUP_NAME_MAX + 1];
    br_group_t grp;   /* the record the cursor is configured from */
    br_cursor_t *cur; /* NULL while loading */
    br_cstore_t *cs;  /* NULL while a new cursor's store is created */
    bool loading;
    /* A new cursor serves at once; its store is created meanwhile on
     * srv->recv->io, and records appended until then wait in pend (they
     * are answered once written). store_err: the creation failed (the
     * cursor is dropped and loaded again on next use). */
    bool creating;
    br_rcur_prec_t *pend;
    br_rcur_prec_t **pend_tail;
    mq_err_t store_err;
    bool rolling;           /* compaction in progress on srv->recv->io */
    int busy;               /* pops holding picked offsets */
    uint64_t gen;           /* changes when the cursor is reloaded */
    br_rcur_wait_t *waits;  /* requests waiting for the load */
    br_rcur_wait_t *parked; /* FIFO: pops waiting for the one in progress */
    struct br_rcur *next;
} br_rcur_t;

/* A queue's consume state (q->cons). */
typedef struct br_qcons {
    br_rcur_t *curs;
} br_qcons_t;

/* Called on the queue's executor key with the group's cursor (err MQ_OK,
 * q referenced) or an error (MQ_ENOTOWNER: the queue is not served here;
 * else the load failed; q and rc NULL). Return true to keep the reference
 * on q (then br_queue_put it later), false to let it go. */
typedef bool (*br_rcur_fn)(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_err_t err, void *arg);

/* Runs fn with the cursor of group grp on (topic, queue), loading it first
 * when needed. grp is copied. Any thread. */
void br_rcur_with(br_server_t *srv, const char *topic, int queue, const br_group_t *grp,
                  br_rcur_fn fn, void *arg);
/* Persists rec (a cursor record) and compacts the cursor ledger when due.
 * cb (may be NULL) runs once, on the ledger client's thread, unless this
 * returns an error. @locality queue executor key */
mq_err_t br_rcur_append(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_buf_t *rec,
                        br_cstore_done_cb cb, void *arg);
/* Finds the loaded cursor of group on q, or NULL. @locality queue key */
br_rcur_t *br_rcur_find(br_queue_t *q, const char *group);
/* Parks fn (a pop) until rc->busy drops to 0, keeping the reference on q;
 * br_rcur_unpark then runs the parked ones in order while nothing is
 * busy. A FIFO group needs this: a pop only learns the message groups of
 * the offsets it picked once they are read, so two pops in flight on one
 * queue could hand out a group's later message before its earlier one.
 * @locality queue key */
void br_rcur_park(br_rcur_t *rc, br_queue_t *q, br_rcur_fn fn, void *arg);
void br_rcur_unpark(br_server_t *srv, br_rcur_t *rc);

/* --- receives (br_recv.c) ---------------------------------------------------------------- */

void br_recv_receive_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);

/* --- acks, invisible time, dead-lettering (br_recv_ack.c) -------------------------------- */

void br_recv_ack_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
void br_recv_change_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
void br_recv_forward_dlq_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);

/* --- the dead-letter queue (br_recv_dlq.c) ----------------------------------------------- */

typedef void (*br_dlq_done_cb)(mq_err_t err, void *arg);

/* Stores msg (a stored apache.rocketmq.v2.Message, copied) into the
 * group's dead-letter topic (created with one queue when missing), marked
 * with its original topic and message id, through the queue's owner. cb
 * runs exactly once, on any thread, when it is durable or failed. */
void br_dlq_store(br_server_t *srv, const char *group, const char *topic, const uint8_t *msg,
                  size_t len, br_dlq_done_cb cb, void *arg);

/* --- QueryAssignment, ConsumerProgress (br_recv_query.c) --------------------------------- */

void br_recv_assign_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
void br_recv_progress_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);

/* --- shared helpers (br_recv.c) ---------------------------------------------------------- */

/* Every *Response of the messaging service starts with Status status = 1:
 * answers a unary call with only a status. */
void br_recv_reply_status(rpc_call_t *call, apache_rocketmq_v2_Code code, const char *text);
/* The group record for a request: looked up, or created with the defaults
 * when autoCreateSubscriptionGroup allows. Blocking on a cache miss. */
apache_rocketmq_v2_Code br_recv_group(br_server_t *srv, const char *name, br_group_t *out,
                                      const char **why);
/* Counts a context in flight (shutdown waits for them). */
void br_recv_op_begin(br_server_t *srv);
void br_recv_op_end(br_server_t *srv);
/* Milliseconds from Duration. */
uint64_t br_recv_duration_ms(const apache_rocketmq_v2_Duration *d);

#endif
