/*
 * lc_quorum: the striping formula (each entry on exactly Qw consecutive
 * ensemble indexes mod E, each index on Qw/E of the entries), recovery
 * coverage, and the pending queue: adds complete strictly in entry order
 * whatever order acks arrive in, duplicate and foreign acks are ignored,
 * replacing an index takes its acks back, reachability with failed indexes.
 */
#include <stdlib.h>
#include <string.h>

#include "lc_quorum.h"
#include "meta_ledger.h"
#include "mq_test.h"
#include "mq_util.h"

static void test_striping(void)
{
    /* (5,3,2): the table of bookkeeper-pulsar.md 3.4. */
    static const uint32_t want[5] = {0x07, 0x0e, 0x1c, 0x19, 0x13};
    for (int64_t e = 0; e < 50; e++) {
        CU_ASSERT_EQUAL(lc_quorum_write_set(e, 5, 3), want[e % 5]);
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_TRUE(lc_quorum_write_set(e, 5, 3) & (1u << meta_stripe(e, i, 5)));
        }
    }
    int count[16] = {0};
    for (int64_t e = 0; e < 7000; e++) {
        uint32_t s = lc_quorum_write_set(e, 7, 4);
        CU_ASSERT_EQUAL(__builtin_popcount(s), 4);
        for (int i = 0; i < 7; i++) {
            count[i] += (s >> i) & 1;
        }
    }
    for (int i = 0; i < 7; i++) {
        CU_ASSERT_EQUAL(count[i], 4000);
    }
    CU_ASSERT_EQUAL(lc_quorum_write_set(3, 1, 1), 1u);
    CU_ASSERT_EQUAL(lc_quorum_write_set(9, 3, 3), 7u);
}

static void test_coverage(void)
{
    /* (5,3,2): needs 2 answers in every window of 3: any one bookie may be
     * missing, no two may. */
    CU_ASSERT_TRUE(lc_quorum_covered(5, 3, 2, 0));
    for (int a = 0; a < 5; a++) {
        CU_ASSERT_TRUE(lc_quorum_covered(5, 3, 2, 1u << a));
        for (int b = a + 1; b < 5; b++) {
            CU_ASSERT_FALSE(lc_quorum_covered(5, 3, 2, (1u << a) | (1u << b)));
        }
    }
    /* (3,3,3): every bookie must answer... no: fewer than 3 unknown per set. */
    CU_ASSERT_TRUE(lc_quorum_covered(3, 3, 3, 0x3));
    CU_ASSERT_FALSE(lc_quorum_covered(3, 3, 3, 0x7));
    /* (1,1,1): the only bookie must answer. */
    CU_ASSERT_FALSE(lc_quorum_covered(1, 1, 1, 0x1));
    CU_ASSERT_TRUE(lc_quorum_covered(1, 1, 1, 0));
}

static void test_in_order_completion(void)
{
    enum { N = 200 };
    static lc_pend_t pends[N];
    lc_pending_t q;
    lc_pending_init(&q, 2);
    for (int e = 0; e < N; e++) {
        lc_pending_push(&q, &pends[e], e, lc_quorum_write_set(e, 5, 3));
    }
    /* Acks in a scrambled order: every add gets 2 acks from its write set. */
    int order[2 * N];
    for (int i = 0; i < 2 * N; i++) {
        order[i] = i;
    }
    uint64_t r = 42;
    for (int i = 2 * N - 1; i > 0; i--) {
        r = mq_mix64(r);
        int j = (int)(r % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int64_t next = 0;
    int reached = 0;
    for (int k = 0; k < 2 * N; k++) {
        int e = order[k] / 2;
        int which = order[k] % 2;
        int idx = meta_stripe(e, which, 5);
        reached += lc_pending_ack(&q, &pends[e], idx);
        /* Repeated and foreign acks change nothing. */
        CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[e], idx));
        CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[e], meta_stripe(e, 3, 5)));
        lc_pend_t *p;
        while ((p = lc_pending_pop_done(&q)) != NULL) {
            CU_ASSERT_EQUAL(p->entry_id, next);
            next++;
        }
        /* Nothing completes while an earlier add is short of Qa. */
        if (q.head) {
            CU_ASSERT_FALSE(q.head->done);
        }
    }
    CU_ASSERT_EQUAL(reached, N);
    CU_ASSERT_EQUAL(next, N);
    CU_ASSERT_PTR_NULL(q.head);
    CU_ASSERT_EQUAL(q.count, 0);
}

static void t_count_visit(lc_pend_t *p, void *arg)
{
    MQ_UNUSED(p);
    (*(int *)arg)++;
}

static void test_replace_and_reachability(void)
{
    static lc_pend_t pends[10];
    lc_pending_t q;
    lc_pending_init(&q, 2);
    for (int e = 0; e < 10; e++) {
        lc_pending_push(&q, &pends[e], e, lc_quorum_write_set(e, 5, 3));
    }
    /* Entry 0 goes to 0,1,2: acked by 0 and 1 -> done. */
    CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[0], 0));
    CU_ASSERT_TRUE(lc_pending_ack(&q, &pends[0], 1));
    CU_ASSERT_TRUE(pends[0].done);
    /* Index 1 is replaced: entry 0 loses that ack and is no longer done;
     * every add whose write set holds 1 is visited (entries 0,1,4,5,6,9). */
    int visited = 0;
    lc_pending_replaced(&q, 1, t_count_visit, &visited);
    CU_ASSERT_EQUAL(visited, 6);
    CU_ASSERT_FALSE(pends[0].done);
    CU_ASSERT_PTR_NULL(lc_pending_pop_done(&q));
    /* Entry 2 goes to 2,3,4: with 3 and 4 failed only one ack is left. */
    CU_ASSERT_FALSE(lc_pending_reachable(&q, &pends[2], 0x18));
    CU_ASSERT_TRUE(lc_pending_reachable(&q, &pends[2], 0x10));
    /* An ack already in counts even if its bookie fails afterwards: entry 3
     * (3,4,0) acked by 3 can still make it with 4 failed, not with 4 and 0. */
    CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[3], 3));
    CU_ASSERT_TRUE(lc_pending_reachable(&q, &pends[3], 0x10 | 0x08));
    CU_ASSERT_FALSE(lc_pending_reachable(&q, &pends[3], 0x10 | 0x01));
    /* Entry 0 kept the ack of index 0: one more (from 2) makes it done. */
    CU_ASSERT_TRUE(lc_pending_reachable(&q, &pends[0], 0x3));
    CU_ASSERT_TRUE(lc_pending_ack(&q, &pends[0], 2));
    CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[0], 0));
    CU_ASSERT_FALSE(lc_pending_ack(&q, &pends[0], 1));
    lc_pend_t *p = lc_pending_pop_done(&q);
    CU_ASSERT_PTR_EQUAL(p, &pends[0]);
    /* Failing everything left: pop hands them back in order. */
    for (int e = 1; e < 10; e++) {
        p = lc_pending_pop(&q);
        CU_ASSERT_EQUAL(p->entry_id, e);
    }
    CU_ASSERT_PTR_NULL(lc_pending_pop(&q));
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"striping formula", test_striping},
        {"recovery coverage", test_coverage},
        {"in-order completion under scrambled acks", test_in_order_completion},
        {"replacement and reachability", test_replace_and_reachability},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("quorum", tests, NULL, NULL);
}
