/*
 * br_assign, the leader's assignment as a pure function: every queue gets a
 * live broker, counts differ by at most one, queues stay where they are
 * unless their broker is dead or over its share (so a joining broker costs
 * exactly the moves it needs, taken from the brokers with the most), a dead
 * broker's queues spread over the others, an overloaded broker sheds queues
 * to the least loaded, and the result does not depend on input order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_assign.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_MAX_Q 512
#define T_MAX_B 16

static char t_topics[8][16];
static char t_ids[T_MAX_B][16];

static void t_names(void)
{
    for (int i = 0; i < 8; i++) {
        snprintf(t_topics[i], sizeof(t_topics[i]), "topic%d", i);
    }
    for (int i = 0; i < T_MAX_B; i++) {
        snprintf(t_ids[i], sizeof(t_ids[i]), "b%02d", i);
    }
}

/* ntopics x nq queues, none placed. */
static size_t t_queues(br_assign_queue_t *qs, int ntopics, int nq)
{
    size_t n = 0;
    for (int t = 0; t < ntopics; t++) {
        for (int q = 0; q < nq; q++) {
            qs[n].topic = t_topics[t];
            qs[n].queue = q;
            qs[n].current = -1;
            qs[n].assignee = -2;
            n++;
        }
    }
    return n;
}

static void t_brokers(br_assign_broker_t *bs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bs[i].id = t_ids[i];
        bs[i].load = 0;
        bs[i].hold = 0;
    }
}

static void t_counts(const br_assign_queue_t *qs, size_t n, size_t nb, size_t *count)
{
    memset(count, 0, nb * sizeof(*count));
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE_FATAL(qs[i].assignee >= 0 && (size_t)qs[i].assignee < nb);
        count[qs[i].assignee]++;
    }
}

static size_t t_spread(const size_t *count, size_t nb)
{
    size_t lo = count[0];
    size_t hi = count[0];
    for (size_t b = 1; b < nb; b++) {
        lo = MQ_MIN(lo, count[b]);
        hi = MQ_MAX(hi, count[b]);
    }
    return hi - lo;
}

/* The result becomes the next round's current placement. */
static void t_settle(br_assign_queue_t *qs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        qs[i].current = qs[i].assignee;
    }
}

static void test_empty(void)
{
    br_assign_queue_t qs[4];
    size_t n = t_queues(qs, 1, 4);
    CU_ASSERT_EQUAL(br_assign_compute(NULL, 0, qs, n, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(qs[i].assignee, -1);
    }
    br_assign_broker_t bs[2];
    t_brokers(bs, 2);
    CU_ASSERT_EQUAL(br_assign_compute(bs, 2, NULL, 0, NULL), 0);
}

static void test_complete_balanced(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    /* 3 topics x 4 queues over 2, 3, 5 and 7 brokers. */
    static const size_t sizes[] = {1, 2, 3, 5, 7};
    for (size_t s = 0; s < MQ_ARRAY_LEN(sizes); s++) {
        size_t nb = sizes[s];
        size_t n = t_queues(qs, 3, 4);
        t_brokers(bs, nb);
        CU_ASSERT_EQUAL(br_assign_compute(bs, nb, qs, n, NULL), 0);
        t_counts(qs, n, nb, count);
        CU_ASSERT_TRUE(t_spread(count, nb) <= 1);
    }
    /* Fewer queues than brokers: each queue somewhere, nobody has two. */
    size_t n = t_queues(qs, 1, 3);
    t_brokers(bs, 5);
    br_assign_compute(bs, 5, qs, n, NULL);
    t_counts(qs, n, 5, count);
    for (size_t b = 0; b < 5; b++) {
        CU_ASSERT_TRUE(count[b] <= 1);
    }
}

static void test_join_minimal_moves(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    size_t n = t_queues(qs, 3, 4);
    t_brokers(bs, 2);
    br_assign_compute(bs, 2, qs, n, NULL);
    t_counts(qs, n, 2, count);
    CU_ASSERT_EQUAL(count[0], 6);
    CU_ASSERT_EQUAL(count[1], 6);
    t_settle(qs, n);
    int before[T_MAX_Q];
    for (size_t i = 0; i < n; i++) {
        before[i] = qs[i].current;
    }

    /* A third broker joins: it gets 4, two from each, nothing else moves. */
    t_brokers(bs, 3);
    size_t moves = br_assign_compute(bs, 3, qs, n, NULL);
    CU_ASSERT_EQUAL(moves, 4);
    t_counts(qs, n, 3, count);
    CU_ASSERT_EQUAL(count[0], 4);
    CU_ASSERT_EQUAL(count[1], 4);
    CU_ASSERT_EQUAL(count[2], 4);
    for (size_t i = 0; i < n; i++) {
        if (qs[i].assignee != before[i]) {
            CU_ASSERT_EQUAL(qs[i].assignee, 2);
        }
    }
    /* Stable: the same input again moves nothing. */
    t_settle(qs, n);
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, NULL), 0);

    /* Uneven: the brokers with the most give up queues first. 13 queues
     * placed 7/6 over two brokers, a third joins: 5/4/4 or 4/5/4 — the one
     * with 7 gives 3 or 2, never the one with 6 giving more. */
    n = t_queues(qs, 1, 13);
    for (size_t i = 0; i < n; i++) {
        qs[i].current = i < 7 ? 0 : 1;
    }
    moves = br_assign_compute(bs, 3, qs, n, NULL);
    t_counts(qs, n, 3, count);
    CU_ASSERT_EQUAL(moves, 4);
    CU_ASSERT_EQUAL(count[0], 5);
    CU_ASSERT_EQUAL(count[1], 4);
    CU_ASSERT_EQUAL(count[2], 4);
}

static void test_dead_broker_spreads(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    size_t n = t_queues(qs, 3, 4);
    t_brokers(bs, 3);
    br_assign_compute(bs, 3, qs, n, NULL);
    t_settle(qs, n);
    /* Broker b01 dies: the list shrinks to b00, b02 (indexes 0, 1). */
    br_assign_broker_t live[2] = {{.id = t_ids[0]}, {.id = t_ids[2]}};
    int before[T_MAX_Q];
    for (size_t i = 0; i < n; i++) {
        before[i] = qs[i].current;
        qs[i].current = before[i] == 0 ? 0 : (before[i] == 2 ? 1 : -1);
    }
    CU_ASSERT_EQUAL(br_assign_compute(live, 2, qs, n, NULL), 0);
    t_counts(qs, n, 2, count);
    CU_ASSERT_EQUAL(count[0], 6);
    CU_ASSERT_EQUAL(count[1], 6);
    for (size_t i = 0; i < n; i++) {
        if (before[i] == 0) {
            CU_ASSERT_EQUAL(qs[i].assignee, 0);
        } else if (before[i] == 2) {
            CU_ASSERT_EQUAL(qs[i].assignee, 1);
        }
    }
    /* An out-of-range current counts as none. */
    qs[0].current = 9;
    br_assign_compute(live, 2, qs, n, NULL);
    CU_ASSERT_EQUAL(qs[0].current, -1);
    CU_ASSERT_TRUE(qs[0].assignee == 0 || qs[0].assignee == 1);
}

static void test_overload_sheds(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    size_t n = t_queues(qs, 3, 4);
    t_brokers(bs, 3);
    br_assign_compute(bs, 3, qs, n, NULL);
    t_settle(qs, n);

    /* b00 takes ten times the traffic of the others: average 8000, it is
     * at 2.5x; its target is floor(share 4 * 8000 / 20000) = 1. */
    bs[0].load = 20000;
    bs[1].load = 2000;
    bs[2].load = 2000;
    br_assign_params_t p;
    br_assign_params_default(&p);
    size_t moves = br_assign_compute(bs, 3, qs, n, &p);
    t_counts(qs, n, 3, count);
    CU_ASSERT_EQUAL(moves, 3);
    CU_ASSERT_EQUAL(count[0], 1);
    CU_ASSERT_EQUAL(count[1] + count[2], 11);
    CU_ASSERT_TRUE(count[1] >= 5 && count[2] >= 5);
    for (size_t i = 0; i < n; i++) {
        /* Only b00's queues moved. */
        if (qs[i].assignee != qs[i].current) {
            CU_ASSERT_EQUAL(qs[i].current, 0);
        }
    }
    /* It keeps one queue however hot it stays. */
    t_settle(qs, n);
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 0);
    CU_ASSERT_TRUE(bs[0].overloaded && !bs[1].overloaded && !bs[2].overloaded);
    CU_ASSERT_EQUAL(bs[0].target, 1);
    CU_ASSERT_EQUAL(bs[1].target + bs[2].target, 11);

    /* Its load falls once the queues are gone. Held (the grace period), it
     * keeps its target and nothing moves back; without the hold the counts
     * even out again. */
    bs[0].load = 2000;
    bs[0].hold = 1;
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 0);
    CU_ASSERT_FALSE(bs[0].overloaded);
    CU_ASSERT_EQUAL(bs[0].target, 1);
    /* A hold never raises a target: hot again, it stays at what the load
     * says (1), not at the hold (3). */
    bs[0].load = 20000;
    bs[0].hold = 3;
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 0);
    CU_ASSERT_EQUAL(bs[0].target, 1);
    /* Holds on every broker are dropped (somebody must take the rest):
     * even counts again. */
    bs[0].load = 2000;
    bs[0].hold = bs[1].hold = bs[2].hold = 1;
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 3);
    t_counts(qs, n, 3, count);
    CU_ASSERT_TRUE(count[0] == 4 && count[1] == 4 && count[2] == 4);

    /* Below the floor nobody sheds, however uneven. */
    n = t_queues(qs, 3, 4);
    t_brokers(bs, 3);
    br_assign_compute(bs, 3, qs, n, &p);
    t_settle(qs, n);
    bs[0].load = 900;
    bs[1].load = 1;
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 0);
    /* Within the factor nobody sheds either: 1400 < 1.5 x 1133. */
    bs[0].load = 1400;
    bs[1].load = 1000;
    bs[2].load = 1000;
    CU_ASSERT_EQUAL(br_assign_compute(bs, 3, qs, n, &p), 0);
    /* A lone broker is never overloaded. */
    n = t_queues(qs, 1, 4);
    bs[0].load = 1e9;
    br_assign_compute(bs, 1, qs, n, &p);
    t_counts(qs, n, 1, count);
    CU_ASSERT_EQUAL(count[0], 4);
    /* Nonsense figures count as no load. */
    n = t_queues(qs, 3, 4);
    bs[0].load = -5;
    bs[1].load = NAN;
    bs[2].load = 0;
    br_assign_compute(bs, 3, qs, n, &p);
    t_counts(qs, n, 3, count);
    CU_ASSERT_TRUE(t_spread(count, 3) <= 1);
}

/* Mapping (topic, queue) -> broker id, independent of input order. */
static void t_map(const br_assign_queue_t *qs, size_t n, const br_assign_broker_t *bs,
                  const char **out, size_t nt, size_t nq)
{
    for (size_t i = 0; i < n; i++) {
        size_t t = (size_t)(qs[i].topic[5] - '0');
        out[t * nq + (size_t)qs[i].queue] = bs[qs[i].assignee].id;
    }
    MQ_UNUSED(nt);
}

static void test_deterministic(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    const char *a[64];
    const char *b[64];
    size_t n = t_queues(qs, 4, 8);
    t_brokers(bs, 5);
    bs[3].load = 50;
    br_assign_compute(bs, 5, qs, n, NULL);
    t_map(qs, n, bs, a, 4, 8);

    /* Reverse both lists. */
    br_assign_queue_t rq[T_MAX_Q];
    br_assign_broker_t rb[T_MAX_B];
    for (size_t i = 0; i < n; i++) {
        rq[i] = qs[n - 1 - i];
        rq[i].current = -1;
    }
    for (size_t i = 0; i < 5; i++) {
        rb[i] = bs[4 - i];
    }
    br_assign_compute(rb, 5, rq, n, NULL);
    t_map(rq, n, rb, b, 4, 8);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL(a[i], b[i]);
    }
    /* And the same input twice gives the same result. */
    size_t n2 = t_queues(rq, 4, 8);
    br_assign_compute(bs, 5, rq, n2, NULL);
    t_map(rq, n2, bs, b, 4, 8);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL(a[i], b[i]);
    }
}

/* Random placements: complete, balanced and exactly the necessary moves. */
static void test_random_properties(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    size_t had[T_MAX_B];
    uint64_t seed = 42;
    for (int round = 0; round < 500; round++) {
        seed = mq_mix64(seed);
        size_t nb = 1 + seed % 9;
        int ntopics = 1 + (int)((seed >> 8) % 8);
        int nq = (int)((seed >> 16) % 17);
        size_t n = t_queues(qs, ntopics, nq);
        t_brokers(bs, nb);
        memset(had, 0, sizeof(had));
        for (size_t i = 0; i < n; i++) {
            uint64_t r = mq_mix64(seed + i);
            qs[i].current = r % 4 == 0 ? -1 : (int)(r % (nb + 2)) - 1;
            if (qs[i].current >= (int)nb) {
                qs[i].current = -1;
            }
            if (qs[i].current >= 0) {
                had[qs[i].current]++;
            }
        }
        size_t moves = br_assign_compute(bs, nb, qs, n, NULL);
        if (n == 0) {
            continue;
        }
        t_counts(qs, n, nb, count);
        CU_ASSERT_TRUE(t_spread(count, nb) <= 1);
        /* Each broker keeps min(had, final) of its queues: the rest move. */
        size_t need = 0;
        for (size_t b = 0; b < nb; b++) {
            need += had[b] - MQ_MIN(had[b], count[b]);
        }
        CU_ASSERT_EQUAL(moves, need);
        size_t moved = 0;
        for (size_t i = 0; i < n; i++) {
            moved += qs[i].current >= 0 && qs[i].assignee != qs[i].current;
        }
        CU_ASSERT_EQUAL(moved, moves);
    }
}

/* Random loads: every queue placed, overloaded brokers never above the
 * even share, the others balanced among themselves, and a second round
 * on the result (same loads) moves nothing. */
static void test_random_loads(void)
{
    br_assign_queue_t qs[T_MAX_Q];
    br_assign_broker_t bs[T_MAX_B];
    size_t count[T_MAX_B];
    br_assign_params_t p;
    br_assign_params_default(&p);
    uint64_t seed = 7;
    for (int round = 0; round < 500; round++) {
        seed = mq_mix64(seed);
        size_t nb = 1 + seed % 8;
        size_t n = t_queues(qs, 1 + (int)((seed >> 8) % 6), 1 + (int)((seed >> 16) % 16));
        t_brokers(bs, nb);
        double total = 0;
        for (size_t b = 0; b < nb; b++) {
            uint64_t r = mq_mix64(seed ^ (b + 1));
            bs[b].load = r % 3 == 0 ? (double)(r % 50000) : (double)(r % 3000);
            total += bs[b].load;
        }
        for (size_t i = 0; i < n; i++) {
            qs[i].current = (int)(mq_mix64(seed + i) % (nb + 1)) - 1;
        }
        br_assign_compute(bs, nb, qs, n, &p);
        t_counts(qs, n, nb, count);
        double avg = total / (double)nb;
        size_t lo = n;
        size_t hi = 0;
        for (size_t b = 0; b < nb; b++) {
            bool over =
                nb > 1 && bs[b].load > p.overload_factor * avg && bs[b].load > p.overload_floor;
            if (over) {
                CU_ASSERT_TRUE(count[b] <= n / nb);
            } else {
                lo = MQ_MIN(lo, count[b]);
                hi = MQ_MAX(hi, count[b]);
            }
        }
        CU_ASSERT_TRUE(hi - lo <= 1);
        t_settle(qs, n);
        CU_ASSERT_EQUAL(br_assign_compute(bs, nb, qs, n, &p), 0);
    }
}

int main(void)
{
    t_names();
    static CU_TestInfo tests[] = {
        {"empty", test_empty},
        {"complete_balanced", test_complete_balanced},
        {"join_minimal_moves", test_join_minimal_moves},
        {"dead_broker_spreads", test_dead_broker_spreads},
        {"overload_sheds", test_overload_sheds},
        {"deterministic", test_deterministic},
        {"random_properties", test_random_properties},
        {"random_loads", test_random_loads},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("br_assign", tests, NULL, NULL);
}
