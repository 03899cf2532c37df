/*
 * lc_quorum: see lc_quorum.h. Bit masks over ensemble indexes (E <= 32).
 */
#include "lc_quorum.h"

#include "mq_log.h"

uint32_t lc_quorum_write_set(int64_t e, int ensemble_size, int write_quorum)
{
    uint32_t set = 0;
    for (int i = 0; i < write_quorum; i++) {
        set |= 1u << (int)((e + i) % ensemble_size);
    }
    return set;
}

bool lc_quorum_covered(int ensemble_size, int write_quorum, int ack_quorum, uint32_t unknown)
{
    for (int j = 0; j < ensemble_size; j++) {
        uint32_t set = lc_quorum_write_set(j, ensemble_size, write_quorum);
        if (__builtin_popcount(set & unknown) >= ack_quorum) {
            return false;
        }
    }
    return true;
}

void lc_pending_init(lc_pending_t *q, int ack_quorum)
{
    q->head = q->tail = NULL;
    q->count = 0;
    q->ack_quorum = ack_quorum;
}

void lc_pending_push(lc_pending_t *q, lc_pend_t *p, int64_t entry_id, uint32_t write_set)
{
    MQ_ASSERT(!q->tail || q->tail->entry_id + 1 == entry_id);
    p->next = NULL;
    p->entry_id = entry_id;
    p->write_set = write_set;
    p->acked = 0;
    p->done = false;
    if (q->tail) {
        q->tail->next = p;
    } else {
        q->head = p;
    }
    q->tail = p;
    q->count++;
}

bool lc_pending_ack(lc_pending_t *q, lc_pend_t *p, int idx)
{
    uint32_t bit = 1u << idx;
    if (!(p->write_set & bit) || (p->acked & bit)) {
        return false;
    }
    p->acked |= bit;
    if (!p->done && __builtin_popcount(p->acked) >= q->ack_quorum) {
        p->done = true;
        return true;
    }
    return false;
}

lc_pend_t *lc_pending_pop(lc_pending_t *q)
{
    lc_pend_t *p = q->head;
    if (!p) {
        return NULL;
    }
    q->head = p->next;
    if (!q->head) {
        q->tail = NULL;
    }
    q->count--;
    p->next = NULL;
    return p;
}

lc_pend_t *lc_pending_pop_done(lc_pending_t *q)
{
    return q->head && q->head->done ? lc_pending_pop(q) : NULL;
}

void lc_pending_replaced(lc_pending_t *q, int idx, void (*visit)(lc_pend_t *p, void *arg),
                         void *arg)
{
    uint32_t bit = 1u << idx;
    for (lc_pend_t *p = q->head; p; p = p->next) {
        if (!(p->write_set & bit)) {
            continue;
        }
        p->acked &= ~bit;
        p->done = __builtin_popcount(p->acked) >= q->ack_quorum;
        visit(p, arg);
    }
}

bool lc_pending_reachable(const lc_pending_t *q, const lc_pend_t *p, uint32_t failed)
{
    uint32_t possible = p->acked | (p->write_set & ~failed);
    return __builtin_popcount(possible) >= q->ack_quorum;
}
