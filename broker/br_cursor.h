/*
 * br_cursor: the consumption state of one consumer group on one queue, in
 * memory (Pulsar's managed cursor, with RocketMQ's POP semantics). No I/O:
 * the queue owner drives it on the queue's executor key, persists the
 * records it produces through br_cstore, and reads messages from the
 * managed log. Not thread-safe (one caller at a time).
 *
 * Offsets are the queue's dense offsets. State:
 *   watermark   every offset below it is done (acknowledged, dead-lettered
 *               or skipped by a filter)
 *   next        the lowest offset never handed out; [watermark, next) is
 *               the window, each offset in one of:
 *     READING   picked, its message being read (br_cursor_pick)
 *     INFLIGHT  delivered: invisible until deadline; attempt = deliveries
 *     WAITING   to be delivered again at visible_at (expired in-flight
 *               after its back-off, or deferred behind its FIFO group)
 *     DONE      acknowledged above the watermark (the watermark moves over
 *               a prefix of DONE offsets at once)
 * The window holds at most conf.window offsets: pick hands out no new
 * offset while next - watermark >= window (a message stuck in flight
 * holds the queue back, as RocketMQ's POP does with its checkpoints).
 *
 * Redelivery. An INFLIGHT offset whose deadline passed becomes due again
 * at max(deadline, delivered_at + backoff(attempt)); conf.backoff_ms gives
 * the back-off. When attempt already reached conf.max_attempts, pick
 * returns it with dlq = true instead: the owner moves it to the group's
 * dead-letter queue and then calls br_cursor_ack.
 *
 * FIFO (conf.fifo). Each delivered offset records its message group's hash
 * (br_cursor_deliver). While an offset of group g is INFLIGHT or WAITING,
 * later offsets of g must not be delivered: the owner checks
 * br_cursor_group_blocked(g, offset) after reading a message and calls
 * br_cursor_defer for it. A group's earliest offset goes first because
 * pick returns candidates in offset order.
 *
 * Persistence. Only what must survive a takeover is recorded:
 *   ACK      offsets acknowledged (ack, dead-letter)
 *   ATTEMPT  (offset, attempt) of redeliveries, so attempts keep counting
 *            across a takeover (first deliveries are not recorded)
 *   SNAPSHOT watermark, DONE offsets above it, recorded attempts: the whole
 *            state; a cursor ledger starts with one and compaction writes a
 *            new one
 *   HANDOVER a snapshot that also holds every delivery in flight (attempt,
 *            FIFO group, deadline as a wall-clock time): the last record a
 *            planned handover writes
 * Replaying a snapshot and the records after it gives a cursor whose
 * watermark and DONE set are as persisted, with next = watermark: every
 * other offset in the old window is handed out again (what was in flight
 * at a crash is redelivered; what was acknowledged is not). After a
 * handover snapshot the window is rebuilt up to the last delivery in
 * flight: those stay invisible until their deadlines and their receipt
 * handles ack and change here as they did at the old owner, so a planned
 * move delivers nothing twice.
 * Filter skips (br_cursor_skip) are not recorded on their own: they reach
 * the store inside the next snapshot, and until then a new owner simply
 * filters them again.
 */
#ifndef BR_CURSOR_H
#define BR_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_buf.h"
#include "mq_err.h"

typedef uint64_t (*br_cursor_backoff_cb)(int attempt, void *arg);

/* The largest window a record may rebuild (consumeWindowMessages' bound). */
#define BR_CURSOR_WINDOW_MAX (1u << 20)

typedef struct br_cursor_conf {
    uint32_t window;                 /* offsets tracked above the watermark; default 16384 */
    int max_attempts;                /* deliveries before the DLQ (>= 1); default 17 */
    bool fifo;                       /* per-message-group ordering */
    br_cursor_backoff_cb backoff_ms; /* NULL: no back-off */
    void *backoff_arg;
} br_cursor_conf_t;

typedef struct br_cursor br_cursor_t;

void br_cursor_conf_default(br_cursor_conf_t *conf);
/* A cursor starting at offset start (watermark = next = start). */
br_cursor_t *br_cursor_new(const br_cursor_conf_t *conf, int64_t start);
void br_cursor_free(br_cursor_t *c);
/* Changes max_attempts / backoff / fifo (the group record changed). */
void br_cursor_reconf(br_cursor_t *c, const br_cursor_conf_t *conf);

/* --- delivery ------------------------------------------------------------------ */

typedef struct br_cursor_pick {
    int64_t offset;
    int attempt; /* deliveries so far (0 for a new offset) */
    bool dlq;    /* attempts exhausted: dead-letter it, then ack */
} br_cursor_pick_t;

/* Up to max candidates, in offset order: WAITING/expired offsets that are
 * due at now_ms, then new offsets from next up to end (exclusive; the
 * log's max offset), within the window. Each becomes READING until
 * deliver/defer/skip/unpick. Returns how many. With fifo, an offset waiting
 * behind an earlier offset of its group is not due until that one is done. */
size_t br_cursor_pick(br_cursor_t *c, uint64_t now_ms, int64_t end, br_cursor_pick_t *out,
                      size_t max);
/* READING -> INFLIGHT until now_ms + invisible_ms; returns the attempt
 * number this delivery carries (previous attempt + 1). group_hash is the
 * message group's hash (0: no group). Returns 0 when the offset was dropped
 * meanwhile (br_cursor_clamp): do not hand it out. Defer, skip and unpick
 * ignore such an offset too. */
int br_cursor_deliver(br_cursor_t *c, int64_t offset, uint64_t now_ms, uint64_t invisible_ms,
                      uint32_t group_hash);
/* READING -> WAITING, visible again at now_ms (no attempt counted): a FIFO
 * message behind its group (group_hash, as for deliver). */
void br_cursor_defer(br_cursor_t *c, int64_t offset, uint64_t now_ms, uint32_t group_hash);
/* READING -> DONE (filtered out; not recorded). */
void br_cursor_skip(br_cursor_t *c, int64_t offset);
/* READING -> back to what it was (the read failed). */
void br_cursor_unpick(br_cursor_t *c, int64_t offset);
/* Whether the FIFO group has an offset EARLIER than offset that is INFLIGHT
 * or WAITING (or being read again): the group's earliest undone offset is
 * never blocked. */
bool br_cursor_group_blocked(const br_cursor_t *c, uint32_t group_hash, int64_t offset);

/* --- acknowledgement ------------------------------------------------------------ */

/* Acknowledges delivery `attempt` of offset. MQ_OK: newly done (persist an
 * ACK record before answering); MQ_EEXIST: already done (answer OK, nothing
 * to persist); MQ_EINVAL: not in flight with that attempt (a stale or
 * forged handle: INVALID_RECEIPT_HANDLE). */
mq_err_t br_cursor_ack(br_cursor_t *c, int64_t offset, int attempt);
/* Moves the deadline of delivery `attempt` of offset to now_ms +
 * invisible_ms (0 allowed). MQ_OK, or MQ_EINVAL as for ack (MQ_EEXIST when
 * already done). */
mq_err_t br_cursor_change(br_cursor_t *c, int64_t offset, int attempt, uint64_t now_ms,
                          uint64_t invisible_ms);
/* Earliest time something becomes due (a deadline or visible_at), or
 * UINT64_MAX: when a waiting receiver should look again. */
uint64_t br_cursor_next_due(const br_cursor_t *c);

/* --- records ---------------------------------------------------------------------- */

/* Encodes records (appended to *buf, created when NULL). */
void br_cursor_rec_ack(mq_buf_t **buf, const int64_t *offsets, size_t n);
void br_cursor_rec_attempt(mq_buf_t **buf, int64_t offset, int attempt);
void br_cursor_rec_snapshot(const br_cursor_t *c, mq_buf_t **buf);
/* The handover snapshot: deliveries in flight at now_ms (this process's
 * clock) with their deadlines in wall-clock time (wall_ms = the wall clock
 * at now_ms). */
void br_cursor_rec_handover(const br_cursor_t *c, uint64_t now_ms, uint64_t wall_ms,
                            mq_buf_t **buf);
/* Applies one record (as encoded above) to a cursor being rebuilt.
 * MQ_ECORRUPT on a bad record. A snapshot resets the state first. now_ms
 * and wall_ms (the clocks, as for handover) turn a handover's deadlines
 * into this process's time. */
mq_err_t br_cursor_replay(br_cursor_t *c, const uint8_t *rec, size_t len, uint64_t now_ms,
                          uint64_t wall_ms);
/* Offsets below min no longer exist (retention): watermark moves up to it. */
void br_cursor_clamp(br_cursor_t *c, int64_t min);

/* --- stats ------------------------------------------------------------------------ */

typedef struct br_cursor_stats {
    int64_t watermark;
    int64_t next;
    uint32_t inflight; /* INFLIGHT + READING */
    uint32_t waiting;
    uint32_t done_above; /* DONE above the watermark */
} br_cursor_stats_t;

void br_cursor_stats(const br_cursor_t *c, br_cursor_stats_t *out);

/* --- receipt handles ------------------------------------------------------------ */

/* A receipt handle names one delivery: (topic, group, queue, offset,
 * attempt) plus when it was handed out and its invisible time, with a
 * CRC32C over all of it (topic and group included, so a handle presented
 * with another topic or group does not decode). Printable ASCII, at most
 * BR_HANDLE_MAX - 1 characters. */
#define BR_HANDLE_MAX 96

typedef struct br_handle {
    int32_t queue;
    int64_t offset;
    int32_t attempt;
    uint64_t deadline_ms; /* when this handle's invisibility ends */
} br_handle_t;

/* Writes the handle (NUL-terminated) into out. */
void br_handle_encode(const br_handle_t *h, const char *topic, const char *group,
                      char out[BR_HANDLE_MAX]);
/* MQ_EINVAL when s is not a handle of ours for this topic and group. */
mq_err_t br_handle_decode(const char *s, const char *topic, const char *group, br_handle_t *out);

#endif
