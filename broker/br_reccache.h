/*
 * br_reccache: a watched cache of the records kept as children of one znode
 * (<dir>/<name>), keyed by name; what br_topics and br_groups are built on.
 *
 * The cache answers from memory; a miss reads ZooKeeper once (and remembers
 * "absent" until dir's children change); a data watch invalidates an entry
 * when its record changes. The caller says how big a record is and how to
 * parse one; the cache copies records in and out by that size.
 *
 * Thread-safe; get and ensure block on a miss (not from a ZooKeeper
 * callback).
 */
#ifndef BR_RECCACHE_H
#define BR_RECCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "mq_err.h"
#include "zk_client.h"

/* Parses the record read for name into rec (rec_size bytes): MQ_OK, or
 * MQ_ECORRUPT when it is not a record of name (the callback logs why).
 * @thread the caller of get/ensure, under the cache's load lock */
typedef mq_err_t (*br_reccache_parse_cb)(const char *name, const char *data, size_t len, void *rec);
/* Creates the record want in ZooKeeper: MQ_OK, MQ_EEXIST when it exists,
 * or another error. @thread the caller of ensure, no lock held */
typedef mq_err_t (*br_reccache_create_cb)(void *arg, const void *want);

typedef struct br_reccache_conf {
    const char *kind; /* "topic": for the log ("topic cache: ...") */
    size_t rec_size;  /* bytes of one record */
    br_reccache_parse_cb parse;
    br_reccache_create_cb create; /* for ensure (NULL: no ensure) */
    void *arg;                    /* for create */
} br_reccache_conf_t;

typedef struct br_reccache br_reccache_t;

/* A cache of the children of dir (created when missing, as the children
 * watch needs it). conf is copied; kind must outlive the cache. */
mq_err_t br_reccache_new(zk_client_t *zk, const char *dir, const br_reccache_conf_t *conf,
                         br_reccache_t **out);
/* No call on rc may be running. @thread any but the zk event thread */
void br_reccache_free(br_reccache_t *rc);
/* MQ_OK and the record in *rec (rec_size bytes), MQ_ENOTFOUND, or a
 * ZooKeeper error. name must be valid for the caller's kind. */
mq_err_t br_reccache_get(br_reccache_t *rc, const char *name, void *rec);
/* From memory only: MQ_OK and the record, MQ_ENOTFOUND (known absent), or
 * MQ_EAGAIN when only ZooKeeper can tell. Never blocks on ZooKeeper. */
mq_err_t br_reccache_peek(br_reccache_t *rc, const char *name, void *rec);
/* Returns the record of name, creating want (a record named name) through
 * conf->create when there is none; MQ_OK also when another writer created
 * it first (then *rec is theirs). */
mq_err_t br_reccache_ensure(br_reccache_t *rc, const char *name, const void *want, void *rec);

/* --- the records without the cache ---------------------------------------
 * Blocking ZooKeeper calls for the records' own read/update/list
 * (br_topic_*, br_group_*). @thread any but the zk event thread */

/* Reads the record at path and parses it (as the record of name) into rec. */
mq_err_t br_reccache_read(zk_client_t *zk, const char *path, const char *name,
                          br_reccache_parse_cb parse, void *rec);

/* Looks at the record about to be replaced: MQ_OK to replace it, another
 * error to give up with it. */
typedef mq_err_t (*br_reccache_check_cb)(const char *old, size_t olen, const void *arg);

/* Replaces the record at path with data by compare-and-set on the version
 * read, for at most rounds rounds (each lost round means another writer
 * succeeded). check NULL: any record is replaced and only its version is
 * read. MQ_EBADVERSION when every round lost. */
mq_err_t br_reccache_rewrite(zk_client_t *zk, const char *path, const char *data, size_t len,
                             int rounds, br_reccache_check_cb check, const void *arg);

/* The children of dir for which valid() holds, sorted bytewise: *names is
 * malloc'ed, as each name is (free them); none (MQ_OK) when dir is
 * missing. */
mq_err_t br_reccache_list(zk_client_t *zk, const char *dir, bool (*valid)(const char *name),
                          char ***names, size_t *count);

#endif
