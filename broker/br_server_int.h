/*
 * br_server_int: the broker's shared state, for the files that make up the
 * server (br_server.c, br_queue.c, br_msg.c, br_send.c, br_admin.c,
 * br_http.c, and the consume side br_recv*.c).
 */
#ifndef BR_SERVER_INT_H
#define BR_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "br_cluster.h"
#include "br_conf.h"
#include "br_group.h"
#include "br_mlog.h"
#include "br_server.h"
#include "br_topic.h"
#include "lc_ledger.h"
#include "meta_store.h"
#include "mq_executor.h"
#include "mq_http.h"
#include "mq_net.h"
#include "rpc.h"
#include "zk_client.h"

/* Load reports kept for the rates (br_srv_on_load): 10 intervals. */
#define BR_LOAD_SAMPLES 11

/* An owned queue: its managed log while serving. Lookups take a reference;
 * release waits for them before freeing the log. */
typedef struct br_queue {
    char topic[BR_TOPIC_NAME_MAX + 1];
    int id;
    br_mlog_t *ml;
    int refs;               /* under srv->qlock */
    bool serving;           /* in the table and accepting */
    uint64_t last_store_ms; /* wall ms of the last append (atomic access) */
    void *fence_arg;        /* the log's on_fenced argument, freed with it */
    /* The consumer groups' cursors on this queue (br_recv_cursor.c). Only
     * touched on the queue's executor key. */
    struct br_qcons *cons;
    struct br_queue *next;
} br_queue_t;

/* A channel to another broker, for forwarding. */
typedef struct br_peer {
    char endpoint[BR_ENDPOINT_MAX];
    rpc_channel_t *ch;
    struct br_peer *next;
} br_peer_t;

struct br_server {
    const br_conf_t *conf;
    br_mlog_budget_t tail_budget; /* hot-tail cache of all owned queues */
    br_mlog_budget_t read_budget; /* entries read back, all owned queues */
    char id[BR_ID_MAX];
    char endpoint[BR_ENDPOINT_MAX];
    const char *root;

    zk_client_t *zk;
    lc_client_t *lc;
    mq_executor_t *ex;   /* queue work: managed logs, sends */
    mq_executor_t *slow; /* blocking work: topic creation, admin reads, retention */
    br_topics_t *topics;
    br_groups_t *groups;  /* consumer groups (the consume side) */
    struct br_recv *recv; /* the consume side's shared state (br_recv*.c) */
    br_cluster_t *cluster;
    meta_bookies_t *bookies;
    rpc_server_t *rpc;
    rpc_client_t *rpc_client;
    int port;
    mq_net_loop_t *http_loop; /* admin HTTP (br_http.c), both NULL when off */
    mq_http_t *http;

    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    br_queue_t *queues;
    uint64_t rr;                         /* round-robin cursor for normal sends */
    atomic_uint_least64_t recent_append; /* br_mlog_conf_t.recent */

    pthread_mutex_t plock;
    br_peer_t *peers;

    /* load report */
    atomic_uint_fast64_t msgs_in;
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t msgs_out;
    atomic_uint_fast64_t bytes_out;
    /* The counters at the last BR_LOAD_SAMPLES reports (a ring): rates
     * are over the whole span, so reports taken a moment apart on two
     * brokers compare (the leader sheds load on them). */
    struct br_load_sample {
        uint64_t ms;
        uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
        double cpu_s;
    } load_ring[BR_LOAD_SAMPLES];
    unsigned load_n, load_head;

    mq_timer_t *retention_timer;

    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    atomic_bool stopping;
    /* Set once the cluster membership exists (release): RPC handlers refuse
     * work before it, so they never see srv->cluster unset. */
    atomic_bool ready;
    /* SendMessage contexts alive (answered or not): shutdown waits for 0. */
    atomic_int sends;
    int exit_code;
};

/* --- br_queue.c ---------------------------------------------------------------- */

/* The executor key of a queue: its managed log, sends and cursors. */
uint64_t br_queue_key(const char *topic, int queue);
/* br_cluster callbacks: open / close a queue's managed log. */
mq_err_t br_queue_acquire(const char *topic, int queue, void *arg);
void br_queue_release(const char *topic, int queue, bool lost, void *arg);
/* A serving queue with a reference (br_queue_put it), or NULL. */
br_queue_t *br_queue_get(br_server_t *srv, const char *topic, int queue);
void br_queue_put(br_server_t *srv, br_queue_t *q);
/* Queue ids of topic served here (up to cap); returns how many. */
int br_queue_local(br_server_t *srv, const char *topic, int *ids, int cap);
int br_queue_count(br_server_t *srv);
/* Releases every queue (shutdown). */
void br_queue_release_all(br_server_t *srv);
/* Retention pass over every owned queue (slow executor). */
void br_queue_trim_all(br_server_t *srv);

/* --- br_msg.c / br_send.c / br_admin.c ------------------------------------------ */

/* Registers the MessagingService methods (before the server starts). */
mq_err_t br_msg_register(br_server_t *srv);
/* SendMessage (br_send.c). */
void br_send_on_call(rpc_call_t *call, const uint8_t *req, size_t len, void *arg);
/* Registers the admin service. */
mq_err_t br_admin_register(br_server_t *srv);

/* The channel to a peer broker (created on first use). */
rpc_channel_t *br_server_peer(br_server_t *srv, const char *endpoint);
/* The topic, created with the defaults when autoCreateTopicEnable allows
 * (blocking; not on a gRPC thread). MQ_ENOTFOUND otherwise. */
mq_err_t br_server_topic(br_server_t *srv, const char *name, bool create, br_topic_t *out);
/* Waits (up to timeout_ms) until every queue of the topic has an owner. */
void br_server_wait_owned(br_server_t *srv, const br_topic_t *t, uint32_t timeout_ms);

/* --- br_recv*.c: the consume side ----------------------------------------------- */

/* Creates srv->groups and the consume side's state (after srv->zk). */
mq_err_t br_recv_init(br_server_t *srv);
/* Registers ReceiveMessage, AckMessage, ChangeInvisibleDuration,
 * ForwardMessageToDeadLetterQueue, QueryAssignment and the admin method
 * ConsumerProgress (before the server starts). */
mq_err_t br_recv_register(br_server_t *srv);
/* An append to queue (-1: some queue) of topic owned here was
 * acknowledged: wakes the receives waiting on the topic, which ask that
 * queue first. Any thread; cheap when nobody waits. */
void br_recv_notify(br_server_t *srv, const char *topic, int queue);
/* A queue starts serving here (before it enters the table). */
void br_recv_queue_open(br_server_t *srv, br_queue_t *q);
/* A queue left the table and nobody holds it: closes its cursors
 * (planned: a last snapshot, then the cursor ledger closed) or frees them
 * (lost), and wakes the topic's waiting receives. Blocking; not on srv->ex. */
void br_recv_queue_release(br_server_t *srv, br_queue_t *q, bool lost);
/* Shutdown, once the gRPC server is gone: finishes every long poll and
 * waits for the consume side's work in flight (before the queues go, while
 * srv->ex runs). Idempotent. */
void br_recv_stop(br_server_t *srv);
/* Frees what br_recv_init made (after the executors are gone). */
void br_recv_fini(br_server_t *srv);

/* --- br_http.c ------------------------------------------------------------------ */

/* Serves the admin endpoints on httpServerPort from a loop of their own
 * (srv->http_loop, srv->http); on failure (MQ_ECONN: cannot listen) nothing
 * is left running. Once the cluster runs. */
mq_err_t br_http_start(br_server_t *srv);
/* Stops and frees them (no-op when not started); before the cluster stops. */
void br_http_stop(br_server_t *srv);

#endif
