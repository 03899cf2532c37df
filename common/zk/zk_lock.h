/*
 * zk_lock: ZooKeeper's ephemeral-sequential lock recipe, used for leader
 * election (brokers) and auditor election (bookies).
 *
 * Each contender creates "<dir>/lock-<seq>" (EPHEMERAL|SEQUENTIAL) holding
 * its data; the lowest sequence holds the lock; every other contender watches
 * only the node just below its own (no herd effect). When the holder's node
 * vanishes the next in line takes over.
 *
 * On session expiry a holder loses the lock (cb with held=false); after the
 * new session is up the lock contends again on its own. Callbacks run on the
 * zk client's event thread.
 */
#ifndef ZK_LOCK_H
#define ZK_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "mq_err.h"
#include "zk_client.h"

typedef struct zk_lock zk_lock_t;

/* held=true: we now hold the lock; held=false: we lost it (or gave it up). */
typedef void (*zk_lock_cb)(zk_lock_t *lock, bool held, void *arg);

/* Starts contending for the lock under dir (created if missing). data (may
 * be NULL) is stored in our lock node so others can read who holds it. */
mq_err_t zk_lock_new(zk_client_t *zk, const char *dir, const void *data, size_t len, zk_lock_cb cb,
                     void *arg, zk_lock_t **out);
bool zk_lock_held(zk_lock_t *lock);
/* Releases (deletes our node) and frees. The callback is not called again
 * after this returns. Must not be called from within the lock's callback. */
void zk_lock_free(zk_lock_t *lock);

/* Reads the data of the current holder of the lock under dir (the lowest
 * node). MQ_ENOTFOUND when nobody holds it. Free *data. */
mq_err_t zk_lock_holder(zk_client_t *zk, const char *dir, char **data, size_t *len);

#endif
