/*
 * mqb_cverify: mqbench consume's check of what it receives against a
 * producer's verify log (mqc_vlog.h). Deliveries are matched to logged
 * messages by message id; the module keeps, per message, its deliveries
 * and the state its latest one left (acknowledged, left unacknowledged on
 * purpose, acknowledgement refused or unanswered), counts bodies whose
 * CRC32C differs, explains each duplicate by that state, and checks that
 * each FIFO message group's messages are first delivered in their stored
 * (queue offset) order.
 *
 * Not thread-safe: mqbench consume calls it under its statistics lock.
 */
#ifndef MQB_CVERIFY_H
#define MQB_CVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqc_rmq.h"

/* The state of a logged message after its latest delivery. */
enum {
    MQB_CV_NEW = 0, /* never delivered */
    MQB_CV_NOACK,   /* delivered, left unacknowledged on purpose */
    MQB_CV_PENDING, /* delivered, acknowledgement sent, not answered yet */
    MQB_CV_FAILED,  /* delivered, acknowledgement refused or never sent */
    MQB_CV_UNKNOWN, /* delivered, acknowledgement unanswered (transport failure):
                       the broker may or may not have recorded it */
    MQB_CV_ACKED,   /* delivered, acknowledgement confirmed */
};

typedef struct mqb_cverify mqb_cverify_t;

/* Loads the log at path; NULL (the reason printed on stderr) when it
 * cannot be read, has a malformed line or an id twice. */
mqb_cverify_t *mqb_cverify_load(const char *path);
void mqb_cverify_free(mqb_cverify_t *v);
/* Messages in the log. */
size_t mqb_cverify_size(const mqb_cverify_t *v);
/* Messages whose acknowledgement was confirmed, and those whose
 * acknowledgement went unanswered. */
uint64_t mqb_cverify_acked(const mqb_cverify_t *v);
uint64_t mqb_cverify_unanswered(const mqb_cverify_t *v);

/* Records delivery d, to be acknowledged (ack) or not. Returns its
 * message's record, or -1 when it is not in the log or was stored at
 * another place than the logged one. */
int64_t mqb_cverify_deliver(mqb_cverify_t *v, const mqc_delivery_t *d, bool ack);
/* The answer to the acknowledgement of record rec (-1: ignored):
 * MQB_CV_ACKED, MQB_CV_FAILED or MQB_CV_UNKNOWN. It applies only while
 * the record still waits for one (a later delivery owns it otherwise). */
void mqb_cverify_ack(mqb_cverify_t *v, int64_t rec, int outcome);

/* Prints the verification lines on stdout (the order line only when
 * order is checked); true when they show a failure: a message missing or
 * corrupt, delivered again after a confirmed acknowledgement, or (order)
 * first delivered before an earlier one of its group. */
bool mqb_cverify_report(const mqb_cverify_t *v, bool order);

#endif
