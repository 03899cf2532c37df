/*
 * br_record: a message as the broker stores it in a queue's managed log.
 *
 *   u8  magic 0xB7, u8 version 1, u16 flags (0)
 *   u64 store time, ms since the epoch (little-endian)
 *   the apache.rocketmq.v2.Message exactly as the producer encoded it
 *
 * Keeping the producer's bytes means nothing is re-encoded on the send
 * path, bodies and properties come back byte for byte, and fields this
 * broker does not know survive. Delivery decodes the message, adds what the
 * server sets (queue offset, receipt handle, store time) and re-encodes.
 */
#ifndef BR_RECORD_H
#define BR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

#define BR_RECORD_MAGIC 0xB7
#define BR_RECORD_VERSION 1
#define BR_RECORD_HEADER 12

/* Writes the header and copies msg after it into a new buffer (free()). */
uint8_t *br_record_make(const uint8_t *msg, size_t msg_len, uint64_t store_ms, size_t *len);
/* Splits a stored record; MQ_ECORRUPT on a bad header. */
mq_err_t br_record_parse(const uint8_t *rec, size_t len, uint64_t *store_ms, const uint8_t **msg,
                         size_t *msg_len);

#endif
