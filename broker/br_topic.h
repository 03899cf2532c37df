/*
 * br_topic: topic records in ZooKeeper and a watched cache of them.
 *
 * A topic is the znode <root>/topics/<name> holding a small text record
 * (queue count, permission, message type, creation time, with a CRC like
 * every record of ours); its child queues/<n> holds queue n's managed-log
 * list (br_mlog). Names follow RocketMQ's rule: ^[%|a-zA-Z0-9_-]+$, at most
 * 127 characters.
 *
 * The cache answers from memory; a miss reads ZooKeeper once (and remembers
 * "absent" until the topics' children change); a watch invalidates an entry
 * when its record changes. Thread-safe; blocking on a miss (not from a
 * ZooKeeper callback).
 */
#ifndef BR_TOPIC_H
#define BR_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "zk_client.h"

#define BR_TOPIC_NAME_MAX 127
#define BR_TOPIC_MAX_QUEUES 1024

/* RocketMQ v2 MessageType values, plus MIXED (accepts all four). */
typedef enum br_msg_type {
    BR_MSG_TYPE_UNSPECIFIED = 0,
    BR_MSG_TYPE_NORMAL = 1,
    BR_MSG_TYPE_FIFO = 2,
    BR_MSG_TYPE_DELAY = 3,
    BR_MSG_TYPE_TRANSACTION = 4,
    BR_MSG_TYPE_MIXED = 100,
} br_msg_type_t;

/* RocketMQ's permission bits (PermName): 4 read, 2 write (6 = both). */
#define BR_PERM_READ 4
#define BR_PERM_WRITE 2

typedef struct br_topic {
    char name[BR_TOPIC_NAME_MAX + 1];
    int queues; /* 1 .. BR_TOPIC_MAX_QUEUES */
    int perm;   /* BR_PERM_* bits */
    br_msg_type_t type;
    uint64_t ctime_ms;
} br_topic_t;

bool br_topic_name_valid(const char *name);
const char *br_msg_type_name(br_msg_type_t type); /* "NORMAL", ... "MIXED" */
bool br_msg_type_parse(const char *s, br_msg_type_t *out);
/* Whether a topic of type topic_type accepts a message of type msg_type. */
bool br_msg_type_accepts(br_msg_type_t topic_type, br_msg_type_t msg_type);

/* Creates the topic (and its queues/ parent). MQ_EEXIST if it exists,
 * MQ_EINVAL on a bad name or count. */
mq_err_t br_topic_create(zk_client_t *zk, const char *root, const br_topic_t *topic);
/* Rewrites an existing topic's record (queue count may only grow).
 * MQ_ENOTFOUND, MQ_EINVAL. */
mq_err_t br_topic_update(zk_client_t *zk, const char *root, const br_topic_t *topic);
mq_err_t br_topic_read(zk_client_t *zk, const char *root, const char *name, br_topic_t *out);
/* Names of every topic, sorted (free with zk_strings_free). */
mq_err_t br_topic_list(zk_client_t *zk, const char *root, char ***names, size_t *count);

typedef struct br_topics br_topics_t;

mq_err_t br_topics_new(zk_client_t *zk, const char *root, br_topics_t **out);
void br_topics_free(br_topics_t *tc);
/* MQ_OK and *out, or MQ_ENOTFOUND. */
mq_err_t br_topics_get(br_topics_t *tc, const char *name, br_topic_t *out);
/* br_topics_get from memory only: MQ_EAGAIN when ZooKeeper must be asked. */
mq_err_t br_topics_peek(br_topics_t *tc, const char *name, br_topic_t *out);
/* Creates (if absent) and returns the record; MQ_OK also when another broker
 * created it first. */
mq_err_t br_topics_ensure(br_topics_t *tc, const br_topic_t *want, br_topic_t *out);

#endif
