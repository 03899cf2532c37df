/*
 * it_consume: what the consume-side integration tests share, on top of
 * it_cluster/it_broker: a small RocketMQ v5 client on our own tools' mqc
 * (sends, receives, acks, changes: mqc_rmq.h, mqc_recv.h), mqadmin and
 * mqbench runs, and the parsing of mqbench consume's report.
 *
 * Main (test) thread only.
 */
#ifndef IT_CONSUME_H
#define IT_CONSUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "it_cluster.h"
#include "mqc_recv.h"
#include "mqc_rmq.h"
#include "rpc.h"

/* A client of one broker endpoint. */
typedef struct it_cons {
    rpc_client_t *cl;
    rpc_channel_t *ch;
    char client_id[64];
} it_cons_t;

bool it_cons_open(it_cons_t *k, const char *endpoint);
void it_cons_close(it_cons_t *k);

/* Sends one message (tag, key and message group may be NULL); returns the
 * entry's RocketMQ code (or -gRPC status, INT32_MIN when not sent); its
 * message id into id (may be NULL; MQC_MSGID_LEN + 1 bytes). */
int it_cons_send(it_cons_t *k, const char *topic, const char *body, const char *tag,
                 const char *group, char *id);

/* A receive of group on topic: batch, invisible time and long polling
 * (< 0: field left out), with the call's deadline; res to be released with
 * mqc_recv_result_fini. Returns mqc_recv_result_code. */
int it_cons_receive(it_cons_t *k, const char *group, const char *topic, int batch,
                    int64_t invisible_ms, int64_t poll_ms, uint32_t deadline_ms,
                    mqc_recv_result_t *res);
/* Acknowledges one delivery; returns the entry's code (or the top-level
 * one when there is no entry, or -gRPC status). */
int it_cons_ack(it_cons_t *k, const char *group, const char *topic, const char *message_id,
                const char *handle);

/* Any method of the messaging service with raw request bytes (stream:
 * a server-streaming method such as ReceiveMessage). Returns -gRPC status
 * when the call failed, else the response's (first) status code (0 when
 * absent); INT32_MIN when it could not be made. */
int it_cons_raw(it_cons_t *k, const char *method, const void *req, size_t len, bool stream);

/* Runs "mqadmin -n <broker 0> <args>"; returns its exit status and prints
 * the output when it fails. */
int it_cons_mqadmin(it_cluster_t *c, const char *args);

/* The go command (PATH, $GOROOT/bin, /usr/local/go/bin), or NULL. */
const char *it_cons_find_go(void);
/* Builds the packages of tests/compat (e.g. "./producer ./simpleconsumer")
 * into the directory dir with -mod=readonly (go.mod and go.sum are taken
 * as committed). Prints the output when it fails. */
bool it_cons_go_build(const char *go, const char *pkgs, const char *dir);

/* The numbers of a mqbench consume report (-1 when a line is absent). */
typedef struct it_cons_report {
    long long received, acked, noack, ack_failures, redelivered, malformed;
    long long log_total, log_acked, log_unanswered, missing, unacked;
    long long dups, dups_explained, dups_noack, dups_unconfirmed, dups_after_ack;
    long long dups_attempt1; /* repeats handed out anew, at attempt 1 */
    long long out_of_order;  /* -1 when the order was not checked */
    long long corrupt, stored_twice, unexpected;
} it_cons_report_t;

/* Parses mqbench consume's report out of its output. */
void it_cons_report_parse(const char *out, it_cons_report_t *r);
/* The received count of the last progress line ("consume: N received")
 * in the file at path; -1 when there is none yet. */
long long it_cons_progress(const char *path);

#endif
