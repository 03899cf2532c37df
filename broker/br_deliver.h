/*
 * br_deliver: what the consume side needs from a stored message (a
 * br_record's apache.rocketmq.v2.Message bytes, exactly as the producer
 * encoded them), without decoding it into structs.
 *
 *  - br_deliver_scan finds the fields the broker looks at: topic name,
 *    message id, tag, message group, body (pointers into the bytes).
 *  - br_deliver_build makes the Message a consumer receives: the stored
 *    bytes followed by a second, small encoded Message holding only what
 *    the server sets. Protobuf merges repeated occurrences of a message
 *    (scalars and strings: last one wins; sub-messages: merged field by
 *    field), so the result decodes as the original with those fields set
 *    or replaced — nothing is re-encoded and unknown fields survive.
 *  - TAG filter expressions as RocketMQ parses them: "*" (or empty) matches
 *    everything, otherwise tags separated by "||" (spaces around a tag are
 *    trimmed). SQL92 is not supported.
 *
 * Pure functions; thread-safe.
 */
#ifndef BR_DELIVER_H
#define BR_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

/* A borrowed (not NUL-terminated) string; len 0 and p NULL when absent. */
typedef struct br_str {
    const char *p;
    size_t len;
} br_str_t;

typedef struct br_msg_view {
    br_str_t topic;      /* Message.topic.name */
    br_str_t message_id; /* system_properties.message_id */
    br_str_t tag;        /* system_properties.tag */
    br_str_t group;      /* system_properties.message_group */
    const uint8_t *body; /* Message.body */
    size_t body_len;
    bool has_body;
} br_msg_view_t;

/* Scans one encoded Message. MQ_ECORRUPT when the bytes are not a valid
 * protobuf encoding (truncated, bad wire type, lengths past the end). */
mq_err_t br_deliver_scan(const uint8_t *msg, size_t len, br_msg_view_t *out);

/* Upper-case hex MD5 of data (what clients check body_digest against);
 * out gets 32 characters and a NUL. */
void br_deliver_md5_hex(const uint8_t *data, size_t len, char out[33]);

/* What the server sets on a delivered message. Strings NULL = not set. */
typedef struct br_deliver_fields {
    const char *topic;          /* Message.topic.name override (NULL: keep) */
    const char *receipt_handle; /* system_properties.receipt_handle */
    int32_t queue_id;           /* system_properties.queue_id */
    int64_t queue_offset;       /* system_properties.queue_offset */
    int32_t delivery_attempt;   /* system_properties.delivery_attempt, >= 1 */
    uint64_t store_ms;          /* system_properties.store_timestamp */
    const char *store_host;     /* system_properties.store_host */
    const char *body_md5_hex;   /* body_digest {type MD5, checksum} */
    uint64_t invisible_ms;      /* system_properties.invisible_duration (0: not set) */
    /* system_properties.dead_letter_queue {topic, message_id}: set when
     * dlq_topic is not NULL (messages stored in a %DLQ% topic). */
    const char *dlq_topic;
    const char *dlq_message_id;
} br_deliver_fields_t;

/* The delivered Message: msg followed by the encoded overrides. Returns a
 * malloc'd buffer (*out_len bytes), or NULL if it cannot be built. */
uint8_t *br_deliver_build(const uint8_t *msg, size_t len, const br_deliver_fields_t *f,
                          size_t *out_len);

/* The overrides alone (what br_deliver_build appends): to store a message
 * in a dead-letter queue, append one with only dlq_topic/dlq_message_id
 * (and topic = the DLQ topic) to the original bytes. Same ownership. */
uint8_t *br_deliver_encode_overrides(const br_deliver_fields_t *f, size_t *out_len);

#define BR_FILTER_MAX_TAGS 64

typedef struct br_filter {
    bool all; /* "*" or empty */
    size_t ntags;
    char *tags[BR_FILTER_MAX_TAGS]; /* owned */
} br_filter_t;

/* type: apache.rocketmq.v2.FilterType (1 TAG, 2 SQL; 0 is taken as TAG).
 * MQ_EINVAL for SQL, an unknown type, an empty tag between "||", a tag
 * with a control character or more than BR_FILTER_MAX_TAGS tags or longer
 * than 1024 bytes in all. */
mq_err_t br_filter_parse(int type, const char *expr, br_filter_t *out);
bool br_filter_match(const br_filter_t *f, br_str_t tag);
void br_filter_fini(br_filter_t *f);

#endif
