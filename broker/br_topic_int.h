/*
 * br_topic_int: the topic record codec, for br_topic.c and its tests.
 *
 *   # LedgerMQ topic
 *   version=1
 *   name=<topic>
 *   queues=<1..1024>
 *   perm=<0..6, bits 4 and 2 only>
 *   type=<NORMAL|FIFO|DELAY|TRANSACTION|MIXED>
 *   ctime=<ms since the epoch>
 *   checksum=<crc32c>
 *
 * Pure functions, any thread.
 */
#ifndef BR_TOPIC_INT_H
#define BR_TOPIC_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "br_topic.h"
#include "mq_err.h"

/* Whether a record is well formed (name, queue count, perm bits, type). */
bool br_topic_valid(const br_topic_t *t);
/* MQ_EINVAL when !br_topic_valid(t); *out is malloc'ed. */
mq_err_t br_topic_encode(const br_topic_t *t, char **out, size_t *len);
/* MQ_ECORRUPT with a reason for anything the encoder would not write. */
mq_err_t br_topic_decode(const char *data, size_t len, br_topic_t *out, char *why, size_t why_len);

#endif
