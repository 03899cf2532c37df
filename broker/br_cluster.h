/*
 * br_cluster: brokers in ZooKeeper. Registration with a load report, the
 * leader lock and queue assignment, and queue ownership.
 *
 * ZooKeeper layout (root "/ledgermq"):
 *   brokers/available/<id>     ephemeral: endpoint, cluster, load report
 *   brokers/leader/            the leader lock (zk_lock, ephemeral-sequential)
 *   brokers/assignments/<id>   persistent, written by the leader only: the
 *                              queues ("<topic> <queue>" lines) broker <id>
 *                              should own
 *   ownership/<topic>/<queue>  ephemeral: the owner's id and endpoint
 *
 * Leader: the broker holding the lock reads every load report, every topic's
 * queue count and the current owners, and writes assignments: every queue of
 * every topic goes to a live broker; sticky (a queue stays where it is while
 * its broker lives and is not overloaded), balanced (queue counts differ by
 * at most one, weighted by load when reports differ: a broker whose msgs/s
 * exceeds overload_factor times the average sheds queues to the least
 * loaded). It reacts within a second to joins, deaths and new topics (watches)
 * and re-checks every rebalance_interval_ms.
 *
 * Ownership: a broker watches its assignment. For a queue newly assigned to
 * it, it waits until the ownership znode is absent (the old owner released,
 * or its session expired), creates it (ephemeral, not re-created after a
 * session expiry) and calls on_acquire. For a queue no longer assigned to
 * it, it calls on_release and then deletes the ownership znode (planned
 * handover). When its session expires it calls on_release(lost = true) for
 * every owned queue: the ephemerals are gone and another broker may already
 * be taking over.
 *
 * Threads: on_acquire / on_release run on an executor keyed by queue (so
 * different queues proceed in parallel, one queue's events in order) and may
 * block (open or close a managed log). The query functions are thread-safe.
 */
#ifndef BR_CLUSTER_H
#define BR_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "br_topic.h"
#include "mq_err.h"
#include "zk_client.h"

#define BR_ID_MAX 64
#define BR_ENDPOINT_MAX 128

typedef struct br_load {
    double msgs_in;  /* per second */
    double bytes_in; /* per second */
    double msgs_out;
    double bytes_out;
    int queues; /* owned */
    double cpu; /* process CPU, 1.0 = one core */
} br_load_t;

typedef struct br_broker_info {
    char id[BR_ID_MAX];
    char cluster[BR_ID_MAX];
    char endpoint[BR_ENDPOINT_MAX]; /* "host:port" of its gRPC server */
    br_load_t load;
} br_broker_info_t;

typedef struct br_cluster br_cluster_t;

/* Acquire: this broker now holds the ownership znode; return MQ_OK once
 * serving, or an error, after which the cluster deletes the znode again (the
 * leader will retry later). Release: stop serving the queue; lost tells
 * whether the znode is already gone (session expiry). */
typedef mq_err_t (*br_acquire_cb)(const char *topic, int queue, void *arg);
typedef void (*br_release_cb)(const char *topic, int queue, bool lost, void *arg);
/* Fills the load report (called every report_interval_ms). */
typedef void (*br_load_cb)(br_load_t *load, void *arg);

typedef struct br_cluster_conf {
    zk_client_t *zk;                /* borrowed */
    const char *root;               /* "/ledgermq" */
    const char *cluster;            /* brokerClusterName */
    const char *id;                 /* brokerName: unique per broker */
    const char *endpoint;           /* advertised "host:port" */
    uint32_t report_interval_ms;    /* default 1000 */
    uint32_t rebalance_interval_ms; /* default 5000 */
    double overload_factor;         /* default 1.5 */
    uint32_t shed_grace_ms;         /* a shed broker's target holds this long; 60000 */
    unsigned workers;               /* acquire/release threads; default 4 */
    br_acquire_cb on_acquire;
    br_release_cb on_release;
    br_load_cb on_load; /* may be NULL */
    void *arg;
} br_cluster_conf_t;

void br_cluster_conf_default(br_cluster_conf_t *conf);
/* Registers, joins the leader election, starts watching its assignment.
 * MQ_EEXIST when a live broker already registered the same id. */
mq_err_t br_cluster_start(const br_cluster_conf_t *conf, br_cluster_t **out);
/* Planned shutdown: releases every owned queue (on_release, lost = false,
 * then the znode deleted), leaves the election, deregisters. Blocking. */
void br_cluster_stop(br_cluster_t *cl);

bool br_cluster_is_leader(br_cluster_t *cl);
/* The leader's broker id ("" when none is known). */
void br_cluster_leader(br_cluster_t *cl, char *id, size_t cap);
/* Live brokers (free() the array). */
mq_err_t br_cluster_brokers(br_cluster_t *cl, br_broker_info_t **out, size_t *count);

/* The current owner of a queue, from a watched cache (MQ_ENOTFOUND while
 * nobody owns it: a handover is in progress). *self tells whether it is us. */
mq_err_t br_cluster_owner(br_cluster_t *cl, const char *topic, int queue, br_broker_info_t *out,
                          bool *self);
/* The broker the leader assigned the queue to (MQ_ENOTFOUND if none). */
mq_err_t br_cluster_assignee(br_cluster_t *cl, const char *topic, int queue, br_broker_info_t *out);
/* Gives a queue up at once (its log got fenced, or opening failed): deletes
 * the ownership znode if we still hold it. The leader may give it back later. */
void br_cluster_release(br_cluster_t *cl, const char *topic, int queue);
/* Asks the leader to rebalance now (admin). */
void br_cluster_kick(br_cluster_t *cl);

#endif
