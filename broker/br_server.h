/*
 * br_server: one broker. It owns the ZooKeeper session, the ledger client,
 * the executors, the cluster membership (br_cluster), the owned queues'
 * managed logs (br_queue) and the gRPC server that serves RocketMQ 5's
 * MessagingService (br_msg, br_send) and our admin service (br_admin) on one
 * port. Nothing it holds survives it: everything is in ZooKeeper or ledgers.
 *
 * Threads: the caller's thread runs start and, in br_server_run, waits for a
 * stop and shuts down; a signal thread turns SIGTERM/SIGINT into a stop.
 */
#ifndef BR_SERVER_H
#define BR_SERVER_H

#include <stddef.h>

#include "br_conf.h"
#include "mq_err.h"

typedef struct br_server br_server_t;

/* Connects, registers, starts serving. conf is borrowed for the server's
 * life. On failure errbuf says why. */
mq_err_t br_server_start(const br_conf_t *conf, br_server_t **out, char *errbuf, size_t errlen);
/* Serves until SIGTERM/SIGINT or br_server_stop, then shuts down cleanly
 * (queues released, ledgers closed, deregistered) and frees the server.
 * Returns the process exit code. */
int br_server_run(br_server_t *srv);
void br_server_stop(br_server_t *srv, int exit_code);
int br_server_port(const br_server_t *srv);

#endif
