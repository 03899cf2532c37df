/*
 * zk_client: LedgerMQ's only door to ZooKeeper (the only code that includes
 * <zookeeper/zookeeper.h> is common/zk/).
 *
 * A client owns one ZooKeeper session of the multi-threaded C client
 * (zookeeper_mt). It hides the session life cycle: when the session expires
 * it closes the old handle, opens a new session and re-creates every
 * ephemeral node registered with zk_ephemeral_register(), then tells the
 * session listeners.
 *
 * Threads. Blocking calls (zk_get, zk_set, ...) may be called from any
 * thread. Callbacks delivered by this module (watches, session events, lock
 * events, async completions) all run on the client's single *event thread*,
 * never on ZooKeeper's own threads, so they MAY make blocking calls on the
 * same client (the event thread is not the thread that completes them). They
 * should not do long work: post it to an executor. Events are delivered in
 * the order they happened.
 *
 * Errors: MQ_OK; MQ_ENOTFOUND (no node); MQ_EEXIST (node exists);
 * MQ_EBADVERSION (compare-and-set lost); MQ_ENOTEMPTY (node has children);
 * MQ_ECONN (connection loss: the operation may or may not have happened);
 * MQ_ESESSION (session expired; a new one is being made); MQ_ETIMEDOUT;
 * MQ_EINVAL (bad path/arguments); MQ_EZK (anything else, logged).
 */
#ifndef ZK_CLIENT_H
#define ZK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

typedef struct zk_client zk_client_t;

typedef struct zk_stat {
    int64_t czxid;
    int64_t mzxid;
    int64_t ctime_ms;
    int64_t mtime_ms;
    int32_t version;         /* data version: the value compare-and-set uses */
    int32_t cversion;        /* children version */
    int64_t ephemeral_owner; /* session id of the owner, 0 if persistent */
    int32_t data_length;
    int32_t num_children;
} zk_stat_t;

/* zk_create flags */
#define ZK_PERSISTENT 0
#define ZK_EPHEMERAL 1
#define ZK_SEQUENTIAL 2

typedef enum zk_session_event {
    ZK_SESSION_CONNECTED = 1,    /* (re)connected, same session */
    ZK_SESSION_DISCONNECTED = 2, /* connection lost; the session may still live */
    ZK_SESSION_EXPIRED = 3,      /* the session is gone, with its ephemerals */
    ZK_SESSION_NEW = 4,          /* a new session is up; registered ephemerals re-created */
} zk_session_event_t;

typedef enum zk_watch_event {
    ZK_WATCH_CREATED = 1,
    ZK_WATCH_DELETED = 2,
    ZK_WATCH_CHANGED = 3,
    ZK_WATCH_CHILD = 4,
    /* The watch will never fire (its session expired); re-read and re-watch. */
    ZK_WATCH_LOST = 5,
} zk_watch_event_t;

typedef void (*zk_session_cb)(zk_client_t *zk, zk_session_event_t event, void *arg);
typedef void (*zk_watch_cb)(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg);

typedef struct zk_client_opts {
    int session_timeout_ms; /* asked of the server; default 10000 */
    int connect_timeout_ms; /* zk_client_new waits this long; default 15000 */
    /* Optional path prefix prepended to every path ("/ledgermq" is the
     * default layout root, but the wrapper does not assume it): NULL = none. */
    const char *chroot;
} zk_client_opts_t;

/* Connects to servers ("host:port,host:port") and waits until the session is
 * up. opts may be NULL for the defaults. */
mq_err_t zk_client_new(const char *servers, const zk_client_opts_t *opts, zk_client_t **out);
/* Closes the session (its ephemeral nodes go away at once) and frees. */
void zk_client_free(zk_client_t *zk);
/* Adds a listener for session events. Not removable; add before use. */
void zk_client_on_session(zk_client_t *zk, zk_session_cb cb, void *arg);
/* Current session id (changes after an expiry). */
int64_t zk_client_session_id(zk_client_t *zk);
/* True while connected. */
bool zk_client_connected(zk_client_t *zk);
/* Negotiated session timeout of the current session, in ms. */
int zk_client_session_timeout(zk_client_t *zk);

/* --- blocking operations ------------------------------------------------ */

/* Reads a node. *data is malloc'ed and NUL-terminated (free it); *len excludes
 * the NUL. data/len/stat may be NULL when not wanted. */
mq_err_t zk_get(zk_client_t *zk, const char *path, char **data, size_t *len, zk_stat_t *stat);
/* As zk_get, and leaves a one-shot watch (CHANGED or DELETED). */
mq_err_t zk_get_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, char **data,
                  size_t *len, zk_stat_t *stat);
/* MQ_OK when the node exists (stat filled, may be NULL), MQ_ENOTFOUND if not. */
mq_err_t zk_exists(zk_client_t *zk, const char *path, zk_stat_t *stat);
/* As zk_exists, and leaves a one-shot watch (CREATED, CHANGED or DELETED),
 * also when the node does not exist yet. */
mq_err_t zk_exists_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, zk_stat_t *stat);
/* Creates a node. flags: ZK_EPHEMERAL | ZK_SEQUENTIAL. The created name (with
 * the sequence suffix) is copied to created (may be NULL). */
mq_err_t zk_create(zk_client_t *zk, const char *path, const void *data, size_t len, int flags,
                   char *created, size_t created_cap);
/* As zk_create, creating missing parents as empty persistent nodes first. */
mq_err_t zk_create_parents(zk_client_t *zk, const char *path, const void *data, size_t len,
                           int flags, char *created, size_t created_cap);
/* As zk_create_parents for a node the caller believes absent (flags without
 * ZK_SEQUENTIAL): the missing ancestors are found with exists() reads and
 * created with the node in one transaction, so ZooKeeper logs and syncs one
 * write (zk_create_parents first tries the node alone, a failed write when a
 * parent is missing). MQ_EEXIST when the node exists after all. */
mq_err_t zk_create_chain(zk_client_t *zk, const char *path, const void *data, size_t len,
                         int flags);
/* Sets data if the node's version equals version (-1: any). The new stat is
 * returned in stat (may be NULL). */
mq_err_t zk_set(zk_client_t *zk, const char *path, const void *data, size_t len, int32_t version,
                zk_stat_t *stat);
/* Deletes a node if its version matches (-1: any). */
mq_err_t zk_delete(zk_client_t *zk, const char *path, int32_t version);
/* Lists the children's names (not full paths), sorted bytewise. Free the
 * result with zk_strings_free. */
mq_err_t zk_children(zk_client_t *zk, const char *path, char ***names, size_t *count);
/* As zk_children, and leaves a one-shot CHILD (or DELETED) watch. */
mq_err_t zk_children_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, char ***names,
                       size_t *count);
void zk_strings_free(char **names, size_t count);

/* --- multi (atomic transaction) ----------------------------------------- */

typedef enum zk_op_type {
    ZK_OP_CREATE = 1,
    ZK_OP_DELETE = 2,
    ZK_OP_SET = 3,
    ZK_OP_CHECK = 4, /* version check only */
} zk_op_type_t;

typedef struct zk_op {
    zk_op_type_t type;
    const char *path;
    const void *data; /* CREATE, SET */
    size_t len;
    int flags;       /* CREATE */
    int32_t version; /* DELETE, SET, CHECK (-1: any) */
} zk_op_t;

/* Runs all ops atomically. On failure returns the error of the first failing
 * op and its index in *failed (may be NULL). */
mq_err_t zk_multi(zk_client_t *zk, const zk_op_t *ops, size_t count, size_t *failed);

/* --- asynchronous operations (for paths where blocking would cost) ------ */

/* Completions run on the event thread. A call that returns an error never
 * calls its callback. data is borrowed for the call. */
typedef void (*zk_data_cb)(mq_err_t err, const char *data, size_t len, const zk_stat_t *stat,
                           void *arg);
typedef void (*zk_stat_cb)(mq_err_t err, const zk_stat_t *stat, void *arg);
typedef void (*zk_string_cb)(mq_err_t err, const char *value, void *arg);

mq_err_t zk_aget(zk_client_t *zk, const char *path, zk_data_cb cb, void *arg);
mq_err_t zk_aset(zk_client_t *zk, const char *path, const void *data, size_t len, int32_t version,
                 zk_stat_cb cb, void *arg);
mq_err_t zk_acreate(zk_client_t *zk, const char *path, const void *data, size_t len, int flags,
                    zk_string_cb cb, void *arg);
mq_err_t zk_adelete(zk_client_t *zk, const char *path, int32_t version, zk_stat_cb cb, void *arg);

/* --- ephemerals that survive session expiry ----------------------------- */

/* Creates an ephemeral node (and missing parents) and remembers it: after a
 * session expiry the new session re-creates it with the latest data. If the
 * node already exists and belongs to another session (a previous incarnation
 * of this process), waits up to the session timeout for it to vanish, then
 * fails with MQ_EEXIST. */
mq_err_t zk_ephemeral_register(zk_client_t *zk, const char *path, const void *data, size_t len);
/* Replaces a registered ephemeral's data (and what a new session re-creates). */
mq_err_t zk_ephemeral_update(zk_client_t *zk, const char *path, const void *data, size_t len);
/* Deletes a registered ephemeral and forgets it. */
mq_err_t zk_ephemeral_unregister(zk_client_t *zk, const char *path);

/* --- test support -------------------------------------------------------- */

/* Makes the server expire this client's session (by opening a second handle
 * on the same session and closing it). The client then goes through
 * EXPIRED and NEW. For tests. */
mq_err_t zk_client_test_expire(zk_client_t *zk);

#endif
