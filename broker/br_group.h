/*
 * br_group: consumer group records in ZooKeeper and a watched cache of
 * them (the consume side's twin of br_topic).
 *
 * A group is the znode <root>/groups/<name> holding a small text record
 * with a CRC, like a topic's (br_cluster_rec / meta framing):
 *
 *   retryMaxTimes=16          redeliveries before the dead-letter queue
 *   consumeMessageOrderly=0   1: FIFO group (per message group, in order)
 *   retryPolicy=EXPONENTIAL   only EXPONENTIAL for now
 *   retryInitialMs=1000       first back-off
 *   retryMaxMs=7200000        back-off cap
 *   retryMultiplier=2         growth per attempt
 *   ctime=<ms>
 *
 * Names follow RocketMQ's rule for groups: ^[%|a-zA-Z0-9_-]+$, at most 255
 * characters. Max delivery attempts (what Settings advertise to clients as
 * backoff_policy.max_attempts) is retryMaxTimes + 1.
 *
 * The cache answers from memory; a miss reads ZooKeeper once (and
 * remembers "absent" until the groups' children change); a watch
 * invalidates an entry when its record changes. Thread-safe; blocking on a
 * miss (not from a ZooKeeper callback).
 */
#ifndef BR_GROUP_H
#define BR_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "zk_client.h"

#define BR_GROUP_NAME_MAX 255
#define BR_GROUP_DEF_RETRY_MAX 16
#define BR_GROUP_MAX_RETRY 1000

typedef struct br_group {
    char name[BR_GROUP_NAME_MAX + 1];
    int retry_max_times; /* 0 .. BR_GROUP_MAX_RETRY */
    bool fifo;           /* consumeMessageOrderly */
    uint32_t retry_initial_ms;
    uint32_t retry_max_ms;
    double retry_multiplier; /* >= 1 */
    uint64_t ctime_ms;
} br_group_t;

bool br_group_name_valid(const char *name);
/* The defaults above for name (ctime 0). */
void br_group_default(const char *name, br_group_t *out);
/* Delivery attempts allowed before the dead-letter queue (retry_max_times + 1). */
int br_group_max_attempts(const br_group_t *g);
/* Back-off before delivery attempt (attempt + 1), given attempt >= 1
 * deliveries so far: min(initial * multiplier^(attempt-1), max), ms. */
uint64_t br_group_backoff_ms(const br_group_t *g, int attempt);

/* Creates the group. MQ_EEXIST if it exists, MQ_EINVAL on a bad name or value. */
mq_err_t br_group_create(zk_client_t *zk, const char *root, const br_group_t *group);
/* Rewrites an existing group's record. MQ_ENOTFOUND, MQ_EINVAL. */
mq_err_t br_group_update(zk_client_t *zk, const char *root, const br_group_t *group);
mq_err_t br_group_read(zk_client_t *zk, const char *root, const char *name, br_group_t *out);
/* Names of every group, sorted (free with zk_strings_free). */
mq_err_t br_group_list(zk_client_t *zk, const char *root, char ***names, size_t *count);

typedef struct br_groups br_groups_t;

mq_err_t br_groups_new(zk_client_t *zk, const char *root, br_groups_t **out);
void br_groups_free(br_groups_t *gc);
/* MQ_OK and *out, or MQ_ENOTFOUND. */
mq_err_t br_groups_get(br_groups_t *gc, const char *name, br_group_t *out);
/* br_groups_get from memory only: MQ_EAGAIN when ZooKeeper must be asked. */
mq_err_t br_groups_peek(br_groups_t *gc, const char *name, br_group_t *out);
/* Creates (if absent) with the defaults and returns the record; MQ_OK also
 * when another broker created it first. */
mq_err_t br_groups_ensure(br_groups_t *gc, const char *name, br_group_t *out);

#endif
