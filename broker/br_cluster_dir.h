/*
 * br_cluster_dir: a watched cache of one ZooKeeper directory: its children
 * and each child's data. br_cluster keeps one for the broker registry, one
 * for the assignments, one for the topics (the leader's) and one per topic
 * under ownership/.
 *
 * Reads answer from memory while the watches say nothing changed; what is
 * stale is read again (blocking, with a new watch). The watches are set
 * with the callbacks and argument given at creation (the owner's hook: a
 * dir does not know who owns it); those callbacks report a firing back with
 * br_dir_children_fired / br_dir_data_fired. A missing directory is created
 * (empty, persistent) on the first read, so that its children can be
 * watched.
 *
 * Threads: the readers from any thread but the zk event thread (they may
 * block); the *_fired functions from the event thread (they never block).
 * Thread-safe.
 */
#ifndef BR_CLUSTER_DIR_H
#define BR_CLUSTER_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "zk_client.h"

typedef struct br_dir br_dir_t;

typedef struct br_dir_item {
    char *name;
    char *data; /* NUL-terminated */
    size_t len;
} br_dir_item_t;

br_dir_t *br_dir_new(zk_client_t *zk, const char *path, zk_watch_cb on_children,
                     zk_watch_cb on_data, void *watch_arg);
/* Watches already set keep firing into the callbacks (with watch_arg). */
void br_dir_free(br_dir_t *d);
const char *br_dir_path(const br_dir_t *d);

/* Every child with its data, sorted by name (free with br_dir_items_free).
 * *gen (may be NULL) gets br_dir_gen() as it was before the read: equal
 * later means nothing changed since. */
mq_err_t br_dir_snapshot(br_dir_t *d, br_dir_item_t **items, size_t *n, uint64_t *gen);
void br_dir_items_free(br_dir_item_t *items, size_t n);
/* One child's data (malloc'ed, NUL-terminated); MQ_ENOTFOUND when absent. */
mq_err_t br_dir_get(br_dir_t *d, const char *name, char **data, size_t *len);
/* Moves on whenever a watch of this directory fires. */
uint64_t br_dir_gen(br_dir_t *d);

/* A watch fired: the children watch (the directory's path), or the data
 * watch of child name. */
void br_dir_children_fired(br_dir_t *d);
void br_dir_data_fired(br_dir_t *d, const char *name);

#endif
