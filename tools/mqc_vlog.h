/*
 * mqc_vlog: the verify log of a producer: one text line per acknowledged
 * message, so that a later reader (a test, mqbench consume) can find each
 * message in its queue and check its bytes:
 *
 *   <queue> <offset> <producer> <sequence> <crc32c> <message_id> [<group>]
 *
 * queue, offset, producer and sequence in decimal; crc32c (of the body,
 * mq_crc32c) as 8 lower-case hex digits; the group only for FIFO messages.
 *
 * The writer buffers 1 MiB and writes with write(2); it belongs to one
 * thread at a time (mqbench produce: the rpc client thread). Formatting and
 * parsing are pure; the reader (mqbench consume) reads a whole log on the
 * calling thread.
 */
#ifndef MQC_VLOG_H
#define MQC_VLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

#define MQC_VLOG_FIELD_MAX 64
/* The longest line mqc_vrec_format writes, newline included. */
#define MQC_VLOG_LINE_MAX (4 * 21 + 9 + 2 * MQC_VLOG_FIELD_MAX + 8)

typedef struct mqc_vrec {
    int queue;
    int64_t offset;
    uint64_t producer;
    uint64_t seq;
    uint32_t crc;
    char message_id[MQC_VLOG_FIELD_MAX];
    char group[MQC_VLOG_FIELD_MAX]; /* "" for normal messages */
} mqc_vrec_t;

/* Writes rec's line (with its newline and a NUL) into buf; returns the
 * line's length, or 0 if cap is too small. Ids and groups with spaces or
 * control characters are not representable: they are cut at the first. */
size_t mqc_vrec_format(const mqc_vrec_t *rec, char *buf, size_t cap);
/* Parses one line (with or without its newline). False when malformed. */
bool mqc_vrec_parse(const char *line, mqc_vrec_t *rec);

typedef struct mqc_vlog mqc_vlog_t;

/* Creates (truncates) path. The errno of open(2) as an mq_err_t when it
 * cannot (nothing logged: the caller reports it). */
mq_err_t mqc_vlog_open(const char *path, mqc_vlog_t **out);
/* Appends rec's line. A write error is kept and reported by close; later
 * adds are dropped. */
void mqc_vlog_add(mqc_vlog_t *vl, const mqc_vrec_t *rec);
/* Lines added so far. */
uint64_t mqc_vlog_lines(const mqc_vlog_t *vl);
/* Writes what is buffered, closes and frees; the first error of the log's
 * life, or MQ_OK. NULL is a no-op. */
mq_err_t mqc_vlog_close(mqc_vlog_t *vl);

/* Called for each record of a log being read; return false to stop. */
typedef bool (*mqc_vlog_read_cb)(const mqc_vrec_t *rec, void *arg);
/* Reads the log at path, calling cb for each line in order (empty lines
 * are skipped). MQ_OK (also when cb stopped), MQ_ECORRUPT on a malformed
 * line (its number, from 1, into *bad_line, which may be NULL), or the
 * errno of open/read as an mq_err_t. */
mq_err_t mqc_vlog_read(const char *path, mqc_vlog_read_cb cb, void *arg, uint64_t *bad_line);

#endif
