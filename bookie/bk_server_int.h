/*
 * bk_server_int: the bookie server's state, shared by its files:
 * bk_server.c (life cycle, checkpoint thread, disk monitor, registration),
 * bk_request.c (the protocol on the loop thread and read workers) and
 * bk_http.c (admin HTTP).
 */
#ifndef BK_SERVER_INT_H
#define BK_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_conf.h"
#include "bk_journal.h"
#include "bk_ledger.h"
#include "bk_server.h"
#include "bk_storage.h"
#include "mq_executor.h"
#include "mq_http.h"
#include "mq_net.h"
#include "zk_client.h"

/* Kinds of work that wait for the journal. */
typedef enum bk_op_kind {
    BK_OP_ADD = 1,
    BK_OP_FENCE = 2,
    BK_OP_READ = 3,
} bk_op_kind_t;

/* One request in flight inside the bookie. */
typedef struct bk_op {
    struct bk_op *next;
    bk_op_kind_t kind;
    struct bk_server *srv;
    mq_net_conn_t *conn; /* referenced */
    uint64_t request_id;
    uint64_t ledger_id;
    int64_t entry_id;
    uint32_t flags;
    size_t bytes;
    mq_err_t err;
} bk_op_t;

typedef struct bk_counters {
    atomic_uint_fast64_t adds;
    atomic_uint_fast64_t add_bytes;
    atomic_uint_fast64_t add_errors;
    atomic_uint_fast64_t reads;
    atomic_uint_fast64_t read_bytes;
    atomic_uint_fast64_t read_errors;
    atomic_uint_fast64_t fences;
    atomic_uint_fast64_t bad_requests;
    atomic_uint_fast64_t checkpoints;
} bk_counters_t;

typedef struct bk_server {
    const bk_conf_t *conf;
    char bookie_id[256];
    char **journal_dirs;
    size_t njournal_dirs;
    char **ledger_dirs;
    size_t nledger_dirs;

    zk_client_t *zk;
    bk_storage_t *storage;
    bk_journal_t *journal;
    bk_ledgers_t *ledgers;

    mq_net_loop_t *loop;
    mq_net_server_t *net;
    mq_executor_t *readers; /* read workers, keyed by ledger */
    mq_executor_t *admin;   /* disk checks and ZooKeeper updates */
    mq_http_t *http;        /* admin HTTP (bk_http.c), or NULL */

    /* Journal completions, pushed by the journal's force pass, drained on
     * the loop. */
    pthread_mutex_t done_lock;
    bk_op_t *done_head;
    bk_op_t *done_tail;
    atomic_bool drain_posted;
    /* Inline journal writes (bk_request.c): jhook is armed by an append
     * and writes the journal at the end of the loop iteration; jhook_live
     * says whether appends arm it (cleared before the journal closes).
     * Loop thread only. */
    mq_net_hook_t jhook;
    bool jhook_live;

    /* Loop thread only. */
    size_t pending_ops;
    bool paused;
    mq_net_conn_t **conns;
    size_t nconns;
    size_t conns_cap;

    /* Checkpoint thread. */
    pthread_t sync_tid;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    bool sync_requested;
    bool sync_stop;
    atomic_bool sync_wanted; /* cheap flag for the add path */
    /* Write-cache bytes past which an add asks for a checkpoint: half the
     * cache +-25%, drawn afresh by the checkpoint thread after each one. */
    atomic_size_t sync_at;

    /* Disk state (admin thread writes, others read). */
    atomic_bool read_only;
    atomic_uint_fast64_t total_disk;
    atomic_uint_fast64_t free_disk;
    double disk_usage;
    bool registered_read_only;
    char registered_path[512];

    /* Stop request. */
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stop_requested;
    bool drained; /* stopping, and every accepted add was answered */
    int exit_code;
    atomic_bool stopping;

    bk_counters_t counters;
} bk_server_t;

/* bk_request.c */
extern const mq_net_server_cbs_t bk_request_cbs;
/* The journal's group hook: schedules a drain of completions on the loop. */
void bk_request_on_group_done(void *arg);
/* Loop thread: sends responses for every completed journal operation. */
void bk_request_drain(void *arg);
/* Sets up the inline journal hook (before the loop serves). */
void bk_request_inline_start(bk_server_t *srv);
/* Loop thread (run_sync): no more inline writes; appends from now on are
 * left to the journal's writer thread. */
void bk_request_inline_stop(void *arg);
/* Loop thread: once stopping, tells bk_server_run when nothing is pending. */
void bk_request_check_drained(void *arg);
/* Loop thread: resumes reading from clients when pressure is gone. */
void bk_request_maybe_resume(void *arg);

/* bk_server.c */
/* Wakes the checkpoint thread now (any thread). */
void bk_server_request_checkpoint(bk_server_t *srv);

/* bk_http.c */
/* Serves the admin endpoints on httpServerPort (srv->http); MQ_ECONN when it
 * cannot listen. stop frees it (no-op when not started). */
mq_err_t bk_http_start(bk_server_t *srv);
void bk_http_stop(bk_server_t *srv);

#endif
