/*
 * lc_quorum: the arithmetic of striped, quorum-acknowledged ledgers, kept
 * free of I/O so it can be tested on its own:
 *  - the write set of entry e: ensemble indexes (e + i) mod E, i < Qw;
 *  - recovery coverage: every write set has fewer than Qa bookies whose
 *    answer is unknown;
 *  - the pending queue of a writer: adds in entry order, each with the set
 *    of replicas that acknowledged it; an add is "done" at Qa acks and is
 *    handed back only when every earlier add was (strict entry order).
 * Not thread-safe: the owner (a ledger handle, on its loop) serializes.
 */
#ifndef LC_QUORUM_H
#define LC_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"

/* Bit i set: ensemble index i is in the write set of entry e. */
uint32_t lc_quorum_write_set(int64_t e, int ensemble_size, int write_quorum);
/* True when every one of the E write sets has fewer than ack_quorum indexes
 * in unknown (bookies that did not answer, or answered with an error). */
bool lc_quorum_covered(int ensemble_size, int write_quorum, int ack_quorum, uint32_t unknown);

/* One add in flight. Embedded in the owner's op (container_of). */
typedef struct lc_pend {
    struct lc_pend *next;
    int64_t entry_id;
    uint32_t write_set; /* ensemble indexes the entry goes to */
    uint32_t acked;     /* indexes that acknowledged it */
    bool done;          /* at least Qa acks */
} lc_pend_t;

typedef struct lc_pending {
    lc_pend_t *head;
    lc_pend_t *tail;
    size_t count;
    int ack_quorum;
} lc_pending_t;

void lc_pending_init(lc_pending_t *q, int ack_quorum);
/* Appends an add; entry ids must increase by one. */
void lc_pending_push(lc_pending_t *q, lc_pend_t *p, int64_t entry_id, uint32_t write_set);
/* Records an ack from ensemble index idx. Returns true when this ack made the
 * add reach Qa. Acks from outside the write set or repeated are ignored. */
bool lc_pending_ack(lc_pending_t *q, lc_pend_t *p, int idx);
/* Removes and returns the first add if it is done (completions go strictly
 * in entry order), else NULL. */
lc_pend_t *lc_pending_pop_done(lc_pending_t *q);
/* Removes and returns the first add, done or not (to fail it). */
lc_pend_t *lc_pending_pop(lc_pending_t *q);
/* Index idx was replaced: every pending add whose write set holds it loses
 * that ack (and may fall below Qa); visit(p) is called for each such add so
 * the owner re-sends it to the new bookie. */
void lc_pending_replaced(lc_pending_t *q, int idx, void (*visit)(lc_pend_t *p, void *arg),
                         void *arg);
/* Acks that add p can still get when the indexes in failed never answer:
 * true when it can reach Qa. */
bool lc_pending_reachable(const lc_pending_t *q, const lc_pend_t *p, uint32_t failed);

#endif
