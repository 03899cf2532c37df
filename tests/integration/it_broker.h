/*
 * it_broker: integration-test harness for mqbroker processes, on top of
 * it_cluster (real ZooKeeper and bookies). Brokers run as children that die
 * with the test process, on gRPC ports chosen at run time, each with its own
 * config file and log under the cluster's temp dir; their logs are checked
 * by it_cluster_fini like the bookies'. Waits are on conditions (registration
 * in ZooKeeper, ownership znodes), never fixed sleeps.
 */
#ifndef IT_BROKER_H
#define IT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "it_cluster.h"

/* Prepares broker i (config "broker-<i>.conf" with a free grpcServerPort,
 * brokerName "broker-<i>", the cluster's zkServers). sets: extra
 * "key=value" lines (NULL-terminated, may be NULL). */
void it_broker_prepare(it_cluster_t *c, int i, const char *const *sets);
/* Starts broker i and waits until it is registered in
 * <root>/brokers/available/broker-<i>. */
bool it_broker_start(it_cluster_t *c, int i);
/* Prepares and starts brokers 0..n-1. */
bool it_cluster_start_brokers(it_cluster_t *c, int n, const char *const *sets);
/* Sends sig, waits for the exit; returns the exit status (128+signal when
 * killed). For SIGSTOP/SIGCONT it returns 0 at once. */
int it_broker_kill(it_cluster_t *c, int i, int sig);
bool it_broker_alive(it_cluster_t *c, int i);
/* "127.0.0.1:<port>" of broker i, and its id "broker-<i>". */
const char *it_broker_endpoint(it_cluster_t *c, int i);
const char *it_broker_id(it_cluster_t *c, int i);
/* Waits until every queue 0..nqueues-1 of topic has an ownership znode
 * (and, if owner_not is non-NULL, none is owned by that broker id). */
bool it_broker_wait_owned(it_cluster_t *c, const char *topic, int nqueues, const char *owner_not,
                          unsigned timeout_ms);
/* The broker id owning topic/queue into out ("" when none). */
void it_broker_owner(it_cluster_t *c, const char *topic, int queue, char *out, size_t cap);
/* Waits until some broker holds the leader lock; its id into out. */
bool it_broker_wait_leader(it_cluster_t *c, char *out, size_t cap, unsigned timeout_ms);

#endif
