/*
 * mqa_common: what mqadmin's subcommands share: the connection to one
 * broker's admin service (ledgermq.admin.v1.Admin, proto/admin.proto),
 * unary calls that print a one-line error for any gRPC failure, option
 * helpers, and formatting (times, JSON strings).
 *
 * Threads: subcommands run on the main thread and call synchronously;
 * only readMessages' stream callbacks run on the rpc client thread.
 */
#ifndef MQA_COMMON_H
#define MQA_COMMON_H

#include <pb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mqc_rmq.h"
#include "rpc.h"

#define MQA_SVC "/ledgermq.admin.v1.Admin/"
#define MQA_DEFAULT_ENDPOINT "127.0.0.1:8081"
#define MQA_TIMEOUT_MS 30000

typedef struct mqa {
    const char *endpoint; /* -n, $LEDGERMQ_ENDPOINT or the default */
    const char *cmd;      /* the subcommand, for messages */
    rpc_client_t *cl;     /* NULL until mqa_connect */
    rpc_channel_t *ch;
    char client_id[MQC_CLIENT_ID_MAX];
} mqa_t;

/* A subcommand: argv[0] is its name; returns the exit code. */
typedef int (*mqa_cmd_fn)(mqa_t *a, int argc, char **argv);

typedef struct mqa_cmd {
    const char *name;
    mqa_cmd_fn fn;
    const char *args; /* option synopsis */
    const char *help; /* one line */
    const char *more; /* option details, may be NULL */
} mqa_cmd_t;

/* The subcommands (mqa_topic.c, mqa_cluster.c, mqa_group.c). */
int mqa_update_topic(mqa_t *a, int argc, char **argv);
int mqa_topic_list(mqa_t *a, int argc, char **argv);
int mqa_topic_status(mqa_t *a, int argc, char **argv);
int mqa_topic_route(mqa_t *a, int argc, char **argv);
int mqa_read_messages(mqa_t *a, int argc, char **argv);
int mqa_cluster_list(mqa_t *a, int argc, char **argv);
/* Consumer groups (mqa_group.c). */
int mqa_update_sub_group(mqa_t *a, int argc, char **argv);
int mqa_consumer_progress(mqa_t *a, int argc, char **argv);

/* The cluster's name from ClusterStatus into buf. False with an error
 * printed. */
bool mqa_cluster_name(mqa_t *a, char *buf, size_t cap);

/* The table of subcommands and its length (mqadmin_main.c). */
extern const mqa_cmd_t mqa_cmds[];
extern const size_t mqa_ncmds;

/* Prints the subcommand's usage to out. */
void mqa_cmd_usage(const mqa_cmd_t *c, FILE *out);
const mqa_cmd_t *mqa_cmd_find(const char *name);

/* Prints "mqadmin <cmd>: <message>" and the subcommand's usage hint on
 * stderr; returns 2 (the usage exit code). */
int mqa_usage_error(const mqa_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "mqadmin <cmd>: <message>" on stderr; returns 1. */
int mqa_fail(const mqa_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a decimal integer option in [min, max]; false when it is not. */
bool mqa_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* What mqa_common_opt did with an option. */
#define MQA_OPT_OTHER (-2) /* not a common option: the subcommand's own */
#define MQA_OPT_TAKEN (-1) /* handled: go on parsing */
/* Handles the options every subcommand takes (-n host:port, -h) and
 * getopt's errors inside its loop: MQA_OPT_OTHER, MQA_OPT_TAKEN, or an exit
 * code (>= 0) to return at once. */
int mqa_common_opt(mqa_t *a, int c, const char *arg);

/* Opens the channel to a->endpoint (once). False with a message printed. */
bool mqa_connect(mqa_t *a);
void mqa_close(mqa_t *a);
/* Calls Admin/<method> with req and decodes the answer into resp (the
 * caller releases it with pb_release). False with a one-line error
 * printed ("mqadmin <cmd>: <method>: <STATUS>: <details>") on any failure. */
bool mqa_call(mqa_t *a, const char *method, const pb_msgdesc_t *req_fields, const void *req,
              const pb_msgdesc_t *resp_fields, void *resp);
/* As mqa_call, and *status is the call's gRPC status (RPC_UNKNOWN when
 * none came back). A failure with status quiet prints nothing (RPC_OK: every
 * failure prints). */
bool mqa_call_st(mqa_t *a, const char *method, const pb_msgdesc_t *req_fields, const void *req,
                 const pb_msgdesc_t *resp_fields, void *resp, rpc_status_t quiet,
                 rpc_status_t *status);

/* "2024-05-01 13:45:12,345" (local time, RocketMQ's format); "" for 0. */
void mqa_time_str(uint64_t ms, char *buf, size_t cap);
/* Writes s as a JSON string literal (quoted, escaped). */
void mqa_json_str(FILE *out, const char *s);

#endif
