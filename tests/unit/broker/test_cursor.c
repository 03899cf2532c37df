/*
 * br_cursor without I/O: every state transition (pick, deliver, defer,
 * skip, unpick, ack, change), the errors acks answer (stale attempt, double
 * ack, never delivered), the window limit, redelivery after the invisible
 * time and the back-off with attempt + 1, dead letters after max_attempts,
 * FIFO blocking (the scenario of the header and a random run checked
 * against a brute-force model), filter skips, clamp, replay of snapshots
 * and records (a random run whose records rebuild the same state;
 * truncated and bit-flipped records are MQ_ECORRUPT or harmless, never a
 * crash), receipt handles (round trip, every garbling refused), and one
 * million offsets acknowledged in random order, with picks that find
 * nothing due staying O(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_cursor.h"
#include "mq_crc32c.h"
#include "mq_test.h"
#include "mq_util.h"

static uint64_t t_rng = 0x2545f4914f6cdd1dull;

static uint64_t t_rand(void)
{
    t_rng = mq_mix64(t_rng);
    return t_rng;
}

static uint64_t t_below(uint64_t n)
{
    return n ? t_rand() % n : 0;
}

/* Back-off of attempt a: a x *arg ms. */
static uint64_t t_backoff(int attempt, void *arg)
{
    return (uint64_t)attempt * *(const uint64_t *)arg;
}

static br_cursor_t *t_new(uint32_t window, int max_attempts, bool fifo, uint64_t *backoff_unit,
                          int64_t start)
{
    br_cursor_conf_t conf;
    br_cursor_conf_default(&conf);
    conf.window = window;
    conf.max_attempts = max_attempts;
    conf.fifo = fifo;
    if (backoff_unit != NULL) {
        conf.backoff_ms = t_backoff;
        conf.backoff_arg = backoff_unit;
    }
    return br_cursor_new(&conf, start);
}

static br_cursor_stats_t t_stats(const br_cursor_t *c)
{
    br_cursor_stats_t st;
    br_cursor_stats(c, &st);
    return st;
}

/* Picks at most one candidate; returns its offset or -1. */
static int64_t t_pick1(br_cursor_t *c, uint64_t now, int64_t end, int *attempt, bool *dlq)
{
    br_cursor_pick_t p;
    if (br_cursor_pick(c, now, end, &p, 1) == 0) {
        return -1;
    }
    if (attempt != NULL) {
        *attempt = p.attempt;
    }
    if (dlq != NULL) {
        *dlq = p.dlq;
    }
    return p.offset;
}

/* --- state machine ------------------------------------------------------------- */

static void test_defaults(void)
{
    br_cursor_conf_t conf;
    br_cursor_conf_default(&conf);
    CU_ASSERT_EQUAL(conf.window, 16384);
    CU_ASSERT_EQUAL(conf.max_attempts, 17);
    CU_ASSERT_FALSE(conf.fifo);
    CU_ASSERT_PTR_NULL(conf.backoff_ms);
}

static void test_transitions(void)
{
    br_cursor_t *c = t_new(16, 5, false, NULL, 100);
    br_cursor_pick_t out[8];
    br_cursor_stats_t st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 100);
    CU_ASSERT_EQUAL(st.next, 100);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 0, 100, out, 8), 0);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), UINT64_MAX);

    /* New offsets: READING, attempt 0. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 103, out, 8), 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(out[i].offset, 100 + i);
        CU_ASSERT_EQUAL(out[i].attempt, 0);
        CU_ASSERT_FALSE(out[i].dlq);
    }
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.next, 103);
    CU_ASSERT_EQUAL(st.inflight, 3);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 0, 103, out, 8), 0);

    /* READING -> INFLIGHT, -> WAITING (unpick of a new offset, defer). */
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 100, 0, 1000, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 1000);
    br_cursor_unpick(c, 101);
    br_cursor_defer(c, 102, 5, 0);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.inflight, 1);
    CU_ASSERT_EQUAL(st.waiting, 2);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 0);

    /* Both come back, in offset order, with attempt 0. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 10, 103, out, 8), 2);
    CU_ASSERT_EQUAL(out[0].offset, 101);
    CU_ASSERT_EQUAL(out[1].offset, 102);
    CU_ASSERT_EQUAL(out[0].attempt, 0);
    CU_ASSERT_EQUAL(out[1].attempt, 0);

    /* READING -> DONE by a filter: above the watermark until 100 is done. */
    br_cursor_skip(c, 101);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 100);
    CU_ASSERT_EQUAL(st.done_above, 1);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 102, 10, 1000, 0), 1);

    /* INFLIGHT -> DONE: the watermark moves over 100 and 101. */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 100, 1), MQ_OK);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 102);
    CU_ASSERT_EQUAL(st.done_above, 0);
    CU_ASSERT_EQUAL(st.inflight, 1);

    /* change moves the deadline; a READING slot that was in flight goes
     * back to WAITING on unpick. */
    CU_ASSERT_EQUAL(br_cursor_change(c, 102, 1, 20, 0), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 20);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 19, 103, out, 8), 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 20, 103, out, 8), 1);
    CU_ASSERT_EQUAL(out[0].offset, 102);
    CU_ASSERT_EQUAL(out[0].attempt, 1);
    br_cursor_unpick(c, 102);
    CU_ASSERT_EQUAL(t_stats(c).waiting, 1);
    CU_ASSERT_EQUAL(t_pick1(c, 21, 103, NULL, NULL), 102);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 102, 21, 100, 0), 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 102, 2), MQ_OK);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 103);
    CU_ASSERT_EQUAL(st.next, 103);
    CU_ASSERT_EQUAL(st.inflight, 0);
    CU_ASSERT_EQUAL(st.waiting, 0);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), UINT64_MAX);
    br_cursor_free(c);
}

static void test_ack_errors(void)
{
    uint64_t unit = 100;
    br_cursor_t *c = t_new(16, 5, false, &unit, 0);
    br_cursor_pick_t out[4];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 3, out, 4), 3);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 0, 10, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 1, 0, 10, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 2), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 0), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 2, 1), MQ_EINVAL); /* being read, never delivered */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 3, 1), MQ_EINVAL); /* never handed out */
    CU_ASSERT_EQUAL(br_cursor_ack(c, -1, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_change(c, 0, 2, 0, 10), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_change(c, 2, 1, 0, 10), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 1), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 1), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_change(c, 0, 1, 0, 10), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 1, 1), MQ_OK);
    CU_ASSERT_EQUAL(t_stats(c).watermark, 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 1, 1), MQ_EEXIST); /* below the watermark */

    /* Past its deadline, an unacknowledged delivery still takes its ack
     * until the offset is picked again... */
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 2, 0, 10, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 50, 3, out, 4), 0); /* expired, in back-off */
    CU_ASSERT_EQUAL(t_stats(c).waiting, 1);
    CU_ASSERT_EQUAL(br_cursor_change(c, 2, 1, 50, 0), MQ_OK); /* nack: back in flight */
    CU_ASSERT_EQUAL(t_stats(c).waiting, 0);
    /* ...then the old handle is stale, while reading and after. */
    CU_ASSERT_EQUAL(t_pick1(c, 100, 3, NULL, NULL), 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 2, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_change(c, 2, 1, 100, 10), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 2, 100, 10, 0), 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 2, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 2, 2), MQ_OK);

    /* An expired delivery waiting for its back-off takes its ack. */
    CU_ASSERT_EQUAL(t_pick1(c, 200, 4, NULL, NULL), 3);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 3, 200, 10, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 250, 4, out, 4), 0);
    CU_ASSERT_EQUAL(t_stats(c).waiting, 1);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 3, 1), MQ_OK);
    CU_ASSERT_EQUAL(t_stats(c).watermark, 4);
    br_cursor_free(c);
}

static void test_window(void)
{
    br_cursor_t *c = t_new(4, 5, false, NULL, 0);
    br_cursor_pick_t out[10];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 100, out, 10), 4);
    CU_ASSERT_EQUAL(out[3].offset, 3);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 0, 100, out, 10), 0);
    for (int64_t off = 0; off < 4; off++) {
        CU_ASSERT_EQUAL(br_cursor_deliver(c, off, 0, 1000, 0), 1);
    }
    CU_ASSERT_EQUAL(br_cursor_pick(c, 0, 100, out, 10), 0);
    /* Done above the watermark does not make room... */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 1, 1), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 0, 100, out, 10), 0);
    /* ...the watermark moving does. */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 1), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 100, out, 10), 2);
    CU_ASSERT_EQUAL(out[0].offset, 4);
    CU_ASSERT_EQUAL(out[1].offset, 5);
    CU_ASSERT_EQUAL(t_stats(c).next, 6);
    br_cursor_free(c);
}

static void test_expiry_backoff(void)
{
    uint64_t unit = 1000;
    br_cursor_t *c = t_new(16, 5, false, &unit, 0);
    int attempt;
    bool dlq;
    CU_ASSERT_EQUAL(t_pick1(c, 0, 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 0, 100, 0), 1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 100);
    CU_ASSERT_EQUAL(t_pick1(c, 99, 1, NULL, NULL), -1);
    /* Expired at 100, but its back-off (1 x 1000 since delivery) holds it. */
    CU_ASSERT_EQUAL(t_pick1(c, 100, 1, NULL, NULL), -1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 1000);
    CU_ASSERT_EQUAL(t_pick1(c, 999, 1, NULL, NULL), -1);
    CU_ASSERT_EQUAL(t_pick1(c, 1000, 1, &attempt, &dlq), 0);
    CU_ASSERT_EQUAL(attempt, 1);
    CU_ASSERT_FALSE(dlq);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 1000, 100, 0), 2);
    CU_ASSERT_EQUAL(t_pick1(c, 1100, 1, NULL, NULL), -1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 3000);
    CU_ASSERT_EQUAL(t_pick1(c, 3000, 1, &attempt, NULL), 0);
    CU_ASSERT_EQUAL(attempt, 2);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 3000, 100, 0), 3);

    /* Due offsets come before new ones, all in offset order. */
    br_cursor_pick_t out[16];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 3000, 5, out, 16), 4);
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(br_cursor_deliver(c, out[i].offset, 3000, 100, 0), 1);
    }
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 100000, 8, out, 16), 8);
    for (int64_t i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(out[i].offset, i);
        CU_ASSERT_EQUAL(out[i].attempt, i == 0 ? 3 : i < 5 ? 1 : 0);
        CU_ASSERT_FALSE(out[i].dlq);
    }
    /* max cuts the due ones too, lowest offsets first. */
    for (int64_t i = 0; i < 8; i++) {
        br_cursor_unpick(c, i);
    }
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 100001, 20, out, 3), 3);
    CU_ASSERT_EQUAL(out[0].offset, 0);
    CU_ASSERT_EQUAL(out[2].offset, 2);
    /* The window (16) holds the rest: 3..7 due, 8..15 new. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 100001, 20, out, 16), 13);
    CU_ASSERT_EQUAL(out[0].offset, 3);
    CU_ASSERT_EQUAL(out[4].offset, 7);
    CU_ASSERT_EQUAL(out[5].offset, 8);
    CU_ASSERT_EQUAL(out[5].attempt, 0);
    br_cursor_free(c);
}

static void test_dlq(void)
{
    uint64_t unit = 1000;
    br_cursor_t *c = t_new(16, 2, false, &unit, 0);
    int attempt;
    bool dlq;
    CU_ASSERT_EQUAL(t_pick1(c, 0, 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 0, 10, 0), 1);
    CU_ASSERT_EQUAL(t_pick1(c, 1000, 1, &attempt, &dlq), 0);
    CU_ASSERT_EQUAL(attempt, 1);
    CU_ASSERT_FALSE(dlq);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 0, 1000, 10, 0), 2);
    /* Exhausted: due at its deadline (no back-off), as a dead letter. */
    CU_ASSERT_EQUAL(t_pick1(c, 1009, 1, NULL, NULL), -1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 1010);
    CU_ASSERT_EQUAL(t_pick1(c, 1010, 1, &attempt, &dlq), 0);
    CU_ASSERT_EQUAL(attempt, 2);
    CU_ASSERT_TRUE(dlq);
    CU_ASSERT_EQUAL(br_cursor_change(c, 0, 2, 1010, 10), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 0, 2), MQ_OK);
    CU_ASSERT_EQUAL(t_stats(c).watermark, 1);

    /* Raising max_attempts gives it more deliveries. */
    br_cursor_conf_t conf;
    br_cursor_conf_default(&conf);
    conf.max_attempts = 3;
    br_cursor_reconf(c, &conf);
    CU_ASSERT_EQUAL(t_pick1(c, 2000, 2, NULL, NULL), 1);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 1, 2000, 10, 0), 1);
    CU_ASSERT_EQUAL(t_pick1(c, 2010, 2, NULL, &dlq), 1);
    CU_ASSERT_FALSE(dlq);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 1, 2010, 10, 0), 2);
    CU_ASSERT_EQUAL(t_pick1(c, 2020, 2, NULL, &dlq), 1);
    CU_ASSERT_FALSE(dlq);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 1, 2020, 10, 0), 3);
    CU_ASSERT_EQUAL(t_pick1(c, 2030, 2, NULL, &dlq), 1);
    CU_ASSERT_TRUE(dlq);
    br_cursor_free(c);
}

/* --- FIFO ---------------------------------------------------------------------- */

static void test_fifo(void)
{
    const uint32_t g = 0x1234;
    const uint32_t h = 0x777;
    br_cursor_t *c = t_new(16, 5, true, NULL, 5);
    br_cursor_pick_t out[8];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 7, out, 8), 2);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 5, 0, 100, g), 1);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 5));
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, g, 6));
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, h, 6));
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, 0, 6));
    br_cursor_defer(c, 6, 0, g);
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, g, 6));
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 5));

    /* 6 waits behind 5: not handed out again; another group goes ahead. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 1, 8, out, 8), 1);
    CU_ASSERT_EQUAL(out[0].offset, 7);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, h, 7));
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 7, 1, 100, h), 1);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 100);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 50, 8, out, 8), 0);

    /* Ack 5: 6 is its group's earliest undone offset, due and not blocked. */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 5, 1), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 0);
    CU_ASSERT_EQUAL(t_pick1(c, 51, 8, NULL, NULL), 6);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 6));
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 6, 52, 50, g), 1);
    CU_ASSERT_EQUAL(t_pick1(c, 53, 9, NULL, NULL), 8);
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, g, 8));
    br_cursor_defer(c, 8, 53, g);

    /* 6 expires and comes back; 8 still waits behind it. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 102, 9, out, 8), 2);
    CU_ASSERT_EQUAL(out[0].offset, 6);
    CU_ASSERT_EQUAL(out[1].offset, 7);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 6));
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, h, 7));
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, g, 8));
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 6, 102, 100, g), 2);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 7, 102, 100, h), 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 6, 2), MQ_OK);
    CU_ASSERT_EQUAL(t_pick1(c, 103, 9, NULL, NULL), 8);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 8));
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 8, 103, 100, g), 1);
    /* The group blocks nothing once all its offsets are done. */
    CU_ASSERT_EQUAL(br_cursor_ack(c, 8, 1), MQ_OK);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, g, 1000));
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, h, 1000));
    CU_ASSERT_EQUAL(br_cursor_ack(c, 7, 2), MQ_OK);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, h, 1000));

    /* FIFO turned off: what waited behind its group is due at once. */
    CU_ASSERT_EQUAL(t_pick1(c, 200, 11, NULL, NULL), 9);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 9, 200, 100, g), 1);
    CU_ASSERT_EQUAL(t_pick1(c, 200, 11, NULL, NULL), 10);
    br_cursor_defer(c, 10, 200, g);
    CU_ASSERT_EQUAL(br_cursor_pick(c, 201, 11, out, 8), 0);
    br_cursor_conf_t conf;
    br_cursor_conf_default(&conf);
    br_cursor_reconf(c, &conf);
    CU_ASSERT_EQUAL(t_pick1(c, 201, 11, NULL, NULL), 10);
    br_cursor_free(c);
}

#define T_FIFO_N 20000

/* Blocked as the model sees it: an undone offset of g below x. */
static bool t_model_blocked(const uint32_t *grp, const bool *done, int64_t wm, uint32_t g,
                            int64_t x)
{
    for (int64_t o = wm; o < x; o++) {
        if (!done[o] && grp[o] == g && g != 0) {
            return true;
        }
    }
    return false;
}

static uint32_t t_group_of(int64_t off)
{
    /* 0 (no group) now and then; hashes that collide in the map often. */
    uint64_t x = mq_mix64((uint64_t)off) % 41;
    return x == 40 ? 0 : (uint32_t)(x * 64 + 1);
}

static void test_fifo_random(void)
{
    br_cursor_t *c = t_new(64, 1000, true, NULL, 0);
    uint32_t *grp = calloc(T_FIFO_N, sizeof(*grp));
    bool *done = calloc(T_FIFO_N, sizeof(*done));
    int *att = calloc(T_FIFO_N, sizeof(*att));
    uint64_t now = 0;
    int mismatches = 0;
    for (int step = 0; step < 6000; step++) {
        br_cursor_stats_t st = t_stats(c);
        uint64_t r = t_below(10);
        if (r < 5) {
            br_cursor_pick_t out[8];
            int64_t end = MQ_MIN(st.next + 4, (int64_t)T_FIFO_N);
            size_t n = br_cursor_pick(c, now, end, out, 8);
            for (size_t i = 0; i < n; i++) {
                int64_t off = out[i].offset;
                uint32_t g = t_group_of(off);
                bool blocked = br_cursor_group_blocked(c, g, off);
                if (blocked != t_model_blocked(grp, done, st.watermark, g, off)) {
                    mismatches++;
                }
                grp[off] = g;
                if (blocked) {
                    br_cursor_defer(c, off, now, g);
                } else {
                    att[off] = br_cursor_deliver(c, off, now, 1 + t_below(50), g);
                }
            }
        } else if (st.next > st.watermark) {
            for (int k = 0; k < 4; k++) {
                int64_t off = st.watermark + (int64_t)t_below((uint64_t)(st.next - st.watermark));
                if (!done[off]) {
                    mq_err_t err = br_cursor_ack(c, off, att[off] ? att[off] : 1);
                    CU_ASSERT_EQUAL(err, att[off] ? MQ_OK : MQ_EINVAL);
                    done[off] = err == MQ_OK;
                }
            }
        }
        now += t_below(10);
        st = t_stats(c);
        for (int k = 0; k < 4; k++) {
            uint32_t g = t_group_of((int64_t)t_below(T_FIFO_N));
            int64_t x = st.watermark + (int64_t)t_below((uint64_t)(st.next - st.watermark) + 2);
            if (x < T_FIFO_N && br_cursor_group_blocked(c, g, x) !=
                                    t_model_blocked(grp, done, st.watermark, g, x)) {
                mismatches++;
            }
        }
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT_TRUE(t_stats(c).watermark > 1000);
    free(grp);
    free(done);
    free(att);
    br_cursor_free(c);
}

/* --- skip and clamp ------------------------------------------------------------ */

static void test_skip(void)
{
    br_cursor_t *c = t_new(16, 5, false, NULL, 0);
    br_cursor_pick_t out[8];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 5, out, 8), 5);
    br_cursor_skip(c, 0);
    br_cursor_skip(c, 1);
    CU_ASSERT_EQUAL(t_stats(c).watermark, 2);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 2, 0, 100, 0), 1);
    br_cursor_skip(c, 3);
    br_cursor_skip(c, 4);
    br_cursor_stats_t st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 2);
    CU_ASSERT_EQUAL(st.done_above, 2);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 3, 1), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 2, 1), MQ_OK);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 5);
    CU_ASSERT_EQUAL(st.done_above, 0);
    CU_ASSERT_EQUAL(st.next, 5);
    br_cursor_free(c);
}

static void test_clamp(void)
{
    br_cursor_t *c = t_new(16, 5, true, NULL, 0);
    br_cursor_pick_t out[16];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, 10, out, 16), 10);
    for (int64_t off = 0; off < 8; off++) {
        CU_ASSERT_EQUAL(br_cursor_deliver(c, off, 0, 100, 7), 1);
    }
    CU_ASSERT_EQUAL(br_cursor_ack(c, 6, 1), MQ_OK);
    br_cursor_clamp(c, 3);
    br_cursor_clamp(c, 2); /* below the watermark: nothing */
    br_cursor_stats_t st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 3);
    CU_ASSERT_EQUAL(st.next, 10);
    CU_ASSERT_EQUAL(br_cursor_ack(c, 1, 1), MQ_EEXIST);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, 7, 3));
    CU_ASSERT_TRUE(br_cursor_group_blocked(c, 7, 4));
    /* Offsets being read when clamped away are not delivered. */
    br_cursor_clamp(c, 9);
    CU_ASSERT_EQUAL(t_stats(c).watermark, 9);
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 8, 0, 100, 7), 0);
    br_cursor_unpick(c, 8);
    CU_ASSERT_FALSE(br_cursor_group_blocked(c, 7, 100));
    CU_ASSERT_EQUAL(br_cursor_deliver(c, 9, 0, 100, 7), 1);
    /* Past next: the cursor restarts at min. */
    br_cursor_clamp(c, 100);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 100);
    CU_ASSERT_EQUAL(st.next, 100);
    CU_ASSERT_EQUAL(st.inflight, 0);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), UINT64_MAX);
    CU_ASSERT_EQUAL(t_pick1(c, 0, 200, NULL, NULL), 100);
    br_cursor_free(c);

    /* Clamp inside replayed DONE ranges. */
    c = t_new(16, 5, false, NULL, 0);
    mq_buf_t *rec = NULL;
    int64_t offs[] = {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40};
    br_cursor_rec_ack(&rec, offs, MQ_ARRAY_LEN(offs));
    CU_ASSERT_EQUAL(br_cursor_replay(c, rec->data, rec->len, 0, 0), MQ_OK);
    CU_ASSERT_EQUAL(t_stats(c).done_above, 11);
    br_cursor_clamp(c, 25);
    st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 30);
    CU_ASSERT_EQUAL(st.next, 30);
    CU_ASSERT_EQUAL(st.done_above, 1);
    mq_buf_unref(rec);
    br_cursor_free(c);
}

/* --- records --------------------------------------------------------------------- */

static void test_replay_basic(void)
{
    /* A snapshot: watermark 10, DONE 12, 13 and 20, attempts 11:3, 13:4
     * (DONE, left out), 15:2. */
    br_cursor_t *a = t_new(16, 4, false, NULL, 10);
    br_cursor_pick_t out[16];
    int att[21] = {0};
    const int want_att[21] = {[11] = 3, [13] = 4, [15] = 2};
    for (uint64_t now = 0; now < 40; now += 10) {
        size_t n = br_cursor_pick(a, now, 21, out, 16);
        CU_ASSERT_EQUAL(n, 11);
        for (size_t i = 0; i < n; i++) {
            int64_t off = out[i].offset;
            if (now == 0 || att[off] < want_att[off]) {
                att[off] = br_cursor_deliver(a, off, now, 1, 0);
            } else {
                br_cursor_unpick(a, off);
            }
        }
    }
    CU_ASSERT_EQUAL(att[13], 4);
    CU_ASSERT_EQUAL(br_cursor_ack(a, 12, 1), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_ack(a, 20, 1), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(a, 100, 21, out, 16), 9);
    CU_ASSERT_TRUE(out[2].offset == 13 && out[2].dlq && out[2].attempt == 4);
    CU_ASSERT_EQUAL(br_cursor_ack(a, 13, 4), MQ_OK);
    for (size_t i = 0; i < 9; i++) {
        br_cursor_unpick(a, out[i].offset);
    }
    mq_buf_t *snap = NULL;
    br_cursor_rec_snapshot(a, &snap);
    /* type, version, watermark, 2 ranges, 2 attempts */
    CU_ASSERT_EQUAL_FATAL(snap->len, 18 + 4 * 12);
    CU_ASSERT_EQUAL(snap->data[0], 3);
    CU_ASSERT_EQUAL(snap->data[1], 1);
    CU_ASSERT_EQUAL(mq_get_le64(snap->data + 2), 10);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 10), 2);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 14), 2);
    CU_ASSERT_EQUAL(mq_get_le64(snap->data + 18), 12);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 26), 2);
    CU_ASSERT_EQUAL(mq_get_le64(snap->data + 30), 20);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 38), 1);
    CU_ASSERT_EQUAL(mq_get_le64(snap->data + 42), 11);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 50), 3);
    CU_ASSERT_EQUAL(mq_get_le64(snap->data + 54), 15);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 62), 2);

    /* Rebuilt: next = watermark; DONE offsets are not handed out again;
     * recorded attempts go on counting. */
    br_cursor_t *b = t_new(16, 4, false, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_replay(b, snap->data, snap->len, 0, 0), MQ_OK);
    br_cursor_stats_t st = t_stats(b);
    CU_ASSERT_EQUAL(st.watermark, 10);
    CU_ASSERT_EQUAL(st.next, 10);
    CU_ASSERT_EQUAL(st.done_above, 3);
    mq_buf_t *snap2 = NULL;
    br_cursor_rec_snapshot(b, &snap2);
    CU_ASSERT_TRUE(snap2->len == snap->len && memcmp(snap2->data, snap->data, snap->len) == 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(b, 0, 23, out, 16), 10);
    int64_t want[] = {10, 11, 14, 15, 16, 17, 18, 19, 21, 22};
    for (size_t i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(out[i].offset, want[i]);
        CU_ASSERT_EQUAL(out[i].attempt, want[i] == 11 ? 3 : want[i] == 15 ? 2 : 0);
    }
    CU_ASSERT_EQUAL(br_cursor_deliver(b, 11, 0, 10, 0), 4);
    /* An old owner's handle: done there is done here; otherwise stale. */
    CU_ASSERT_EQUAL(br_cursor_ack(b, 20, 1), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_ack(b, 23, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(b, 11, 3), MQ_EINVAL);

    /* ACK and ATTEMPT records after a snapshot; acks at the watermark move
     * it over the DONE offsets above. */
    br_cursor_t *d = t_new(16, 4, false, NULL, 0);
    CU_ASSERT_EQUAL(br_cursor_replay(d, snap->data, snap->len, 0, 0), MQ_OK);
    mq_buf_t *recs = NULL;
    int64_t acks[] = {10, 30, 5};
    br_cursor_rec_ack(&recs, acks, 3);
    size_t ack_len = recs->len;
    CU_ASSERT_EQUAL(ack_len, 2 + 4 + 3 * 8);
    br_cursor_rec_attempt(&recs, 16, 7);
    CU_ASSERT_EQUAL(recs->len, ack_len + 14);
    CU_ASSERT_EQUAL(br_cursor_replay(d, recs->data, ack_len, 0, 0), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_replay(d, recs->data + ack_len, recs->len - ack_len, 0, 0), MQ_OK);
    st = t_stats(d);
    CU_ASSERT_EQUAL(st.watermark, 11);
    CU_ASSERT_EQUAL(st.done_above, 4);
    int64_t acks2[] = {11};
    mq_buf_t *r2 = NULL;
    br_cursor_rec_ack(&r2, acks2, 1);
    CU_ASSERT_EQUAL(br_cursor_replay(d, r2->data, r2->len, 0, 0), MQ_OK);
    CU_ASSERT_EQUAL(t_stats(d).watermark, 14);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(d, 0, 18, out, 16), 4);
    CU_ASSERT_EQUAL(out[1].offset, 15);
    CU_ASSERT_EQUAL(out[1].attempt, 2);
    CU_ASSERT_EQUAL(out[2].offset, 16);
    CU_ASSERT_EQUAL(out[2].attempt, 7);
    CU_ASSERT_TRUE(out[2].dlq);
    /* A snapshot replaces everything before it. */
    CU_ASSERT_EQUAL(br_cursor_replay(d, snap->data, snap->len, 0, 0), MQ_OK);
    st = t_stats(d);
    CU_ASSERT_EQUAL(st.watermark, 10);
    CU_ASSERT_EQUAL(st.next, 10);
    CU_ASSERT_EQUAL(st.inflight, 0);
    CU_ASSERT_EQUAL(st.done_above, 3);
    CU_ASSERT_EQUAL(br_cursor_ack(d, 20, 1), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_change(d, 13, 4, 0, 10), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_ack(d, 19, 1), MQ_EINVAL);

    mq_buf_unref(snap);
    mq_buf_unref(snap2);
    mq_buf_unref(recs);
    mq_buf_unref(r2);
    br_cursor_free(a);
    br_cursor_free(b);
    br_cursor_free(d);
}

/* A planned handover keeps what is in flight: the next owner rebuilds the
 * window, keeps those deliveries invisible until their deadlines (moved
 * from one clock to the other), takes their acks and keeps FIFO groups
 * blocked; what was not in flight is handed out as before. */
static void test_replay_handover(void)
{
    br_cursor_t *a = t_new(16, 4, true, NULL, 0);
    br_cursor_pick_t out[16];
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(a, 100, 10, out, 16), 10);
    for (int64_t off = 0; off < 6; off++) {
        uint32_t group = off < 2 ? 7 : 0;
        CU_ASSERT_EQUAL(br_cursor_deliver(a, off, 100, off == 3 ? 0 : 1000, group), 1);
    }
    for (int64_t off = 6; off < 10; off++) {
        br_cursor_unpick(a, off);
    }
    CU_ASSERT_EQUAL(br_cursor_ack(a, 2, 1), MQ_OK);
    mq_buf_t *snap = NULL;
    br_cursor_rec_handover(a, 150, 10000, &snap);
    /* type, version 2, watermark, 1 range, 1 attempt (3 expired), 4 in flight */
    CU_ASSERT_EQUAL_FATAL(snap->len, 22 + 2 * 12 + 4 * 24);
    CU_ASSERT_EQUAL(snap->data[1], 2);
    CU_ASSERT_EQUAL(mq_get_le32(snap->data + 18), 4);

    /* 50 ms later in wall time, on a clock 4850 ms ahead. */
    br_cursor_t *b = t_new(16, 4, true, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_replay(b, snap->data, snap->len, 5000, 10050), MQ_OK);
    br_cursor_stats_t st = t_stats(b);
    CU_ASSERT_EQUAL(st.watermark, 0);
    CU_ASSERT_EQUAL(st.next, 6);
    CU_ASSERT_EQUAL(st.inflight, 4);
    CU_ASSERT_EQUAL(st.done_above, 1);
    /* Round trip: the same record again. */
    mq_buf_t *snap2 = NULL;
    br_cursor_rec_handover(b, 5000, 10050, &snap2);
    CU_ASSERT_TRUE(snap2->len == snap->len && memcmp(snap2->data, snap->data, snap->len) == 0);
    CU_ASSERT_TRUE(br_cursor_group_blocked(b, 7, 1));
    /* Not due: the expired 3 (attempt 1 counted), then the new offsets. */
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(b, 5000, 10, out, 16), 5);
    int64_t want[] = {3, 6, 7, 8, 9};
    for (size_t i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(out[i].offset, want[i]);
        CU_ASSERT_EQUAL(out[i].attempt, want[i] == 3 ? 1 : 0);
        CU_ASSERT_EQUAL(br_cursor_deliver(b, out[i].offset, 5000, 100000, 0), want[i] == 3 ? 2 : 1);
    }
    /* Old handles work here. */
    CU_ASSERT_EQUAL(br_cursor_ack(b, 0, 1), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_ack(b, 2, 1), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_cursor_ack(b, 4, 2), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_change(b, 4, 1, 5000, 10), MQ_OK);
    CU_ASSERT_FALSE(br_cursor_group_blocked(b, 7, 1));
    /* 1 and 5 come back at the deadline moved over: 5000 + 950 - 50. */
    CU_ASSERT_EQUAL(br_cursor_pick(b, 5899, 10, out, 16), 1); /* 4, after its change */
    CU_ASSERT_EQUAL(out[0].offset, 4);
    br_cursor_unpick(b, 4);
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(b, 5900, 10, out, 16), 3);
    CU_ASSERT_TRUE(out[0].offset == 1 && out[1].offset == 4 && out[2].offset == 5);
    CU_ASSERT_TRUE(out[0].attempt == 1 && out[2].attempt == 1);
    /* A later ATTEMPT record of a restored offset counts. */
    br_cursor_t *d = t_new(16, 4, true, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_replay(d, snap->data, snap->len, 0, 0), MQ_OK);
    mq_buf_t *rec = NULL;
    br_cursor_rec_attempt(&rec, 5, 2);
    CU_ASSERT_EQUAL(br_cursor_replay(d, rec->data, rec->len, 0, 0), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_ack(d, 5, 1), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_cursor_ack(d, 5, 2), MQ_OK);
    /* A deadline already past on the new clock: due at once. */
    br_cursor_t *e = t_new(16, 4, true, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(br_cursor_replay(e, snap->data, snap->len, 7, 20000), MQ_OK);
    CU_ASSERT_EQUAL(br_cursor_next_due(e), 0);

    /* Corrupt: an in-flight offset inside a DONE range, or beyond any
     * window. */
    mq_buf_t *bad = mq_buf_new(snap->len);
    memcpy(bad->data, snap->data, snap->len);
    bad->len = snap->len;
    size_t infl = 22 + 2 * 12;
    mq_put_le64(bad->data + infl + 24, 2); /* the second in flight (1) -> 2, done */
    CU_ASSERT_EQUAL(br_cursor_replay(e, bad->data, bad->len, 0, 0), MQ_ECORRUPT);
    memcpy(bad->data, snap->data, snap->len);
    mq_put_le64(bad->data + infl + 3 * 24, (uint64_t)BR_CURSOR_WINDOW_MAX);
    CU_ASSERT_EQUAL(br_cursor_replay(e, bad->data, bad->len, 0, 0), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_cursor_replay(e, bad->data, bad->len - 1, 0, 0), MQ_ECORRUPT);
    /* Only snapshots have a version 2. */
    memcpy(bad->data, rec->data, rec->len);
    bad->data[1] = 2;
    CU_ASSERT_EQUAL(br_cursor_replay(e, bad->data, rec->len, 0, 0), MQ_ECORRUPT);

    mq_buf_unref(bad);
    mq_buf_unref(rec);
    mq_buf_unref(snap);
    mq_buf_unref(snap2);
    br_cursor_free(a);
    br_cursor_free(b);
    br_cursor_free(d);
    br_cursor_free(e);
}

typedef struct t_recs {
    mq_buf_t **v;
    size_t n, cap;
} t_recs_t;

static void t_recs_add(t_recs_t *r, mq_buf_t *buf)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = buf;
}

static void t_recs_clear(t_recs_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        mq_buf_unref(r->v[i]);
    }
    r->n = 0;
}

static bool t_same_snapshot(const br_cursor_t *x, const br_cursor_t *y)
{
    mq_buf_t *a = NULL;
    mq_buf_t *b = NULL;
    br_cursor_rec_snapshot(x, &a);
    br_cursor_rec_snapshot(y, &b);
    bool same = a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
    mq_buf_unref(a);
    mq_buf_unref(b);
    return same;
}

#define T_REPLAY_N 6000

/* An owner's life (picks, deliveries, acks, changes, dead letters) writing
 * the records it must; replaying them gives the same state. */
static void test_replay_random(void)
{
    uint64_t unit = 5;
    const int64_t base = 1000;
    const int max_attempts = 4;
    br_cursor_t *a = t_new(64, max_attempts, false, &unit, base);
    int *att = calloc(T_REPLAY_N, sizeof(*att));
    bool *done = calloc(T_REPLAY_N, sizeof(*done));
    t_recs_t recs = {0};
    mq_buf_t *snap = NULL;
    br_cursor_rec_snapshot(a, &snap);
    t_recs_add(&recs, snap);
    uint64_t now = 0;
    int64_t end = base;
    int snapshots = 0;
    for (int step = 0; step < 5000; step++) {
        br_cursor_stats_t st = t_stats(a);
        uint64_t r = t_below(100);
        if (r < 40) {
            br_cursor_pick_t out[6];
            end = MQ_MIN(end + (int64_t)t_below(4), base + T_REPLAY_N);
            size_t n = br_cursor_pick(a, now, end, out, 6);
            for (size_t i = 0; i < n; i++) {
                int64_t off = out[i].offset;
                CU_ASSERT_EQUAL(out[i].attempt, att[off - base]);
                if (out[i].dlq) {
                    CU_ASSERT_EQUAL(br_cursor_ack(a, off, out[i].attempt), MQ_OK);
                    mq_buf_t *rec = NULL;
                    br_cursor_rec_ack(&rec, &off, 1);
                    t_recs_add(&recs, rec);
                    done[off - base] = true;
                } else if (t_below(5) > 0) {
                    int got = br_cursor_deliver(a, off, now, 1 + t_below(30), 0);
                    CU_ASSERT_EQUAL(got, att[off - base] + 1);
                    att[off - base] = got;
                    if (got >= 2) {
                        mq_buf_t *rec = NULL;
                        br_cursor_rec_attempt(&rec, off, got);
                        t_recs_add(&recs, rec);
                    }
                } else {
                    br_cursor_unpick(a, off);
                }
            }
        } else if (r < 70 && st.next > st.watermark) {
            int64_t offs[3];
            size_t n = 0;
            for (int k = 0; k < 3; k++) {
                int64_t off = st.watermark + (int64_t)t_below((uint64_t)(st.next - st.watermark));
                if (!done[off - base] && att[off - base] > 0 &&
                    br_cursor_ack(a, off, att[off - base]) == MQ_OK) {
                    done[off - base] = true;
                    offs[n++] = off;
                }
            }
            if (n > 0) {
                mq_buf_t *rec = NULL;
                br_cursor_rec_ack(&rec, offs, n);
                t_recs_add(&recs, rec);
            }
        } else if (r < 80 && st.next > st.watermark) {
            int64_t off = st.watermark + (int64_t)t_below((uint64_t)(st.next - st.watermark));
            if (!done[off - base] && att[off - base] > 0) {
                br_cursor_change(a, off, att[off - base], now, t_below(20));
            }
        } else if (r < 82) {
            /* Compaction: a new ledger starting with a snapshot, which
             * itself replays to the same state. */
            t_recs_clear(&recs);
            snap = NULL;
            br_cursor_rec_snapshot(a, &snap);
            t_recs_add(&recs, snap);
            br_cursor_t *s = t_new(64, max_attempts, false, &unit, 0);
            CU_ASSERT_EQUAL(br_cursor_replay(s, snap->data, snap->len, 0, 0), MQ_OK);
            CU_ASSERT_TRUE(t_same_snapshot(a, s));
            br_cursor_free(s);
            snapshots++;
        }
        now += t_below(8);
    }
    CU_ASSERT_TRUE(snapshots > 10);

    br_cursor_t *b = t_new(64, max_attempts, false, &unit, 0);
    for (size_t i = 0; i < recs.n; i++) {
        CU_ASSERT_EQUAL_FATAL(br_cursor_replay(b, recs.v[i]->data, recs.v[i]->len, 0, 0), MQ_OK);
    }
    br_cursor_stats_t sa = t_stats(a);
    br_cursor_stats_t sb = t_stats(b);
    CU_ASSERT_TRUE(sa.watermark > base + 1000);
    CU_ASSERT_EQUAL(sb.watermark, sa.watermark);
    CU_ASSERT_EQUAL(sb.next, sa.watermark);
    CU_ASSERT_EQUAL(sb.done_above, sa.done_above);
    CU_ASSERT_TRUE(t_same_snapshot(a, b));
    /* Everything not done in the old window is handed out again, with the
     * recorded attempts. */
    br_cursor_pick_t out[64];
    size_t n = br_cursor_pick(b, now, sa.next, out, 64);
    size_t k = 0;
    for (int64_t off = sa.watermark; off < sa.next; off++) {
        if (done[off - base]) {
            continue;
        }
        int want = att[off - base] >= 2 ? att[off - base] : 0;
        CU_ASSERT_FATAL(k < n);
        CU_ASSERT_EQUAL(out[k].offset, off);
        CU_ASSERT_EQUAL(out[k].attempt, want);
        CU_ASSERT_EQUAL(out[k].dlq, want >= max_attempts);
        k++;
    }
    CU_ASSERT_EQUAL(k, n);
    t_recs_clear(&recs);
    free(recs.v);
    free(att);
    free(done);
    br_cursor_free(a);
    br_cursor_free(b);
}

static mq_err_t t_replay_fresh(const uint8_t *rec, size_t len)
{
    br_cursor_t *c = t_new(16, 5, false, NULL, 0);
    mq_err_t err = br_cursor_replay(c, rec, len, 0, 0);
    /* Whatever it accepted must be usable. */
    br_cursor_pick_t out[16];
    br_cursor_stats_t st = t_stats(c);
    size_t n = br_cursor_pick(c, 0, st.next + 20, out, 16);
    for (size_t i = 0; i < n; i++) {
        br_cursor_deliver(c, out[i].offset, 0, 1, 0);
    }
    mq_buf_t *snap = NULL;
    br_cursor_rec_snapshot(c, &snap);
    mq_buf_unref(snap);
    br_cursor_free(c);
    return err;
}

/* A record built by hand: type, version, then the given bytes. */
static size_t t_rec(uint8_t *p, uint8_t type, uint8_t version)
{
    p[0] = type;
    p[1] = version;
    return 2;
}

static size_t t_snap(uint8_t *p, int64_t wm, const int64_t *ranges, size_t nr, const int64_t *atts,
                     size_t na)
{
    size_t at = t_rec(p, 3, 1);
    mq_put_le64(p + at, (uint64_t)wm);
    mq_put_le32(p + at + 8, (uint32_t)nr);
    mq_put_le32(p + at + 12, (uint32_t)na);
    at += 16;
    for (size_t i = 0; i < nr; i++) {
        mq_put_le64(p + at, (uint64_t)ranges[2 * i]);
        mq_put_le32(p + at + 8, (uint32_t)ranges[2 * i + 1]);
        at += 12;
    }
    for (size_t i = 0; i < na; i++) {
        mq_put_le64(p + at, (uint64_t)atts[2 * i]);
        mq_put_le32(p + at + 8, (uint32_t)atts[2 * i + 1]);
        at += 12;
    }
    return at;
}

static void test_replay_corrupt(void)
{
    uint8_t p[256];
    size_t n;
    CU_ASSERT_EQUAL(t_replay_fresh(NULL, 0), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(t_replay_fresh(p, 0), MQ_ECORRUPT);
    n = t_rec(p, 9, 1);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n), MQ_ECORRUPT); /* unknown type */
    n = t_rec(p, 2, 2);
    mq_put_le64(p + n, 5);
    mq_put_le32(p + n + 8, 2);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_ECORRUPT); /* unknown version */
    p[1] = 1;
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_OK);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 13), MQ_ECORRUPT); /* trailing byte */
    mq_put_le32(p + n + 8, 0);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_ECORRUPT); /* attempt 0 */
    mq_put_le32(p + n + 8, 0x80000000u);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_ECORRUPT); /* attempt > INT32_MAX */
    mq_put_le32(p + n + 8, 2);
    mq_put_le64(p + n, (uint64_t)-1);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_ECORRUPT); /* negative offset */

    n = t_rec(p, 1, 1);
    mq_put_le32(p + n, 2);
    mq_put_le64(p + n + 4, 3);
    mq_put_le64(p + n + 12, 4);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 20), MQ_OK);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 12), MQ_ECORRUPT); /* count says 2, holds 1 */
    mq_put_le32(p + n, 0xffffffffu);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 20), MQ_ECORRUPT);
    mq_put_le32(p + n, 2);
    mq_put_le64(p + n + 12, (uint64_t)INT64_MAX);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n + 20), MQ_ECORRUPT);

    int64_t ok_r[] = {12, 2, 20, 1};
    int64_t ok_a[] = {10, 2, 11, 3};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, ok_r, 2, ok_a, 2)), MQ_OK);
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, -1, ok_r, 2, ok_a, 2)), MQ_ECORRUPT);
    int64_t r_before[] = {9, 2};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, r_before, 1, NULL, 0)), MQ_ECORRUPT);
    int64_t r_empty[] = {12, 0};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, r_empty, 1, NULL, 0)), MQ_ECORRUPT);
    int64_t r_overlap[] = {12, 5, 15, 1};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, r_overlap, 2, NULL, 0)), MQ_ECORRUPT);
    int64_t r_order[] = {20, 1, 12, 1};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, r_order, 2, NULL, 0)), MQ_ECORRUPT);
    int64_t r_wrap[] = {INT64_MAX - 2, 0xffffffff};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, r_wrap, 1, NULL, 0)), MQ_ECORRUPT);
    int64_t a_order[] = {11, 2, 11, 3};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, NULL, 0, a_order, 2)), MQ_ECORRUPT);
    int64_t a_below[] = {9, 2};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, NULL, 0, a_below, 1)), MQ_ECORRUPT);
    int64_t a_zero[] = {11, 0};
    CU_ASSERT_EQUAL(t_replay_fresh(p, t_snap(p, 10, NULL, 0, a_zero, 1)), MQ_ECORRUPT);
    n = t_snap(p, 10, ok_r, 2, ok_a, 2);
    mq_put_le32(p + 10, 3);
    CU_ASSERT_EQUAL(t_replay_fresh(p, n), MQ_ECORRUPT); /* counts past the end */

    /* Every truncation of every record kind is corrupt and changes
     * nothing; every bit flip is corrupt or harmless. */
    mq_buf_t *recs[3] = {NULL, NULL, NULL};
    int64_t offs[] = {3, 17, 1 << 20};
    br_cursor_rec_ack(&recs[0], offs, 3);
    br_cursor_rec_attempt(&recs[1], 12345, 6);
    n = t_snap(p, 10, ok_r, 2, ok_a, 2);
    recs[2] = mq_buf_copy(p, n);
    br_cursor_t *c = t_new(16, 5, false, NULL, 7);
    CU_ASSERT_EQUAL(t_pick1(c, 0, 100, NULL, NULL), 7);
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        const mq_buf_t *rec = recs[k];
        for (size_t len = 0; len < rec->len; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            memcpy(copy, rec->data, len);
            if (br_cursor_replay(c, copy, len, 0, 0) != MQ_ECORRUPT) {
                bad++;
            }
            free(copy);
        }
        for (size_t bit = 0; bit < rec->len * 8; bit++) {
            uint8_t *copy = malloc(rec->len);
            memcpy(copy, rec->data, rec->len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            mq_err_t err = t_replay_fresh(copy, rec->len);
            if (err != MQ_OK && err != MQ_ECORRUPT) {
                bad++;
            }
            free(copy);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    br_cursor_stats_t st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, 7);
    CU_ASSERT_EQUAL(st.next, 8);
    CU_ASSERT_EQUAL(st.inflight, 1);
    br_cursor_free(c);
    for (int k = 0; k < 3; k++) {
        mq_buf_unref(recs[k]);
    }
}

/* --- receipt handles ------------------------------------------------------------ */

/* text + "." + its CRC for topic/group, as the encoder signs. */
static void t_sign(char *out, size_t cap, const char *text, const char *topic, const char *group)
{
    uint32_t crc = mq_crc32c(0, text, strlen(text));
    crc = mq_crc32c(crc, topic, strlen(topic) + 1);
    crc = mq_crc32c(crc, group, strlen(group));
    snprintf(out, cap, "%s.%08x", text, crc);
}

static void test_handle(void)
{
    const char *topic = "orders";
    const char *group = "billing";
    char s[BR_HANDLE_MAX];
    br_handle_t h, back;
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        h.queue = (int32_t)(i % 3 == 0 ? t_below((uint64_t)INT32_MAX + 1) : t_below(16));
        h.offset = (int64_t)(i % 2 ? t_rand() >> 1 : t_below(1000));
        h.attempt = (int32_t)(i % 5 == 0 ? 1 + t_below(INT32_MAX) : 1 + t_below(20));
        h.deadline_ms = i % 7 == 0 ? UINT64_MAX : t_rand() >> (i % 64);
        memset(s, 'x', sizeof(s));
        br_handle_encode(&h, topic, group, s);
        size_t len = strlen(s);
        if (len >= BR_HANDLE_MAX || strncmp(s, "L1.", 3) != 0) {
            bad++;
            continue;
        }
        for (size_t k = 0; k < len; k++) {
            if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f') || s[k] == '.' ||
                  (k == 0 && s[k] == 'L'))) {
                bad++;
            }
        }
        memset(&back, 0, sizeof(back));
        if (br_handle_decode(s, topic, group, &back) != MQ_OK || back.queue != h.queue ||
            back.offset != h.offset || back.attempt != h.attempt ||
            back.deadline_ms != h.deadline_ms) {
            bad++;
        }
        if (br_handle_decode(s, "orders2", group, &back) != MQ_EINVAL ||
            br_handle_decode(s, topic, "billin", &back) != MQ_EINVAL ||
            br_handle_decode(s, group, topic, &back) != MQ_EINVAL) {
            bad++;
        }
        if (i % 50 != 0) {
            continue;
        }
        /* Every truncation and every single-character change is refused. */
        char t[BR_HANDLE_MAX];
        for (size_t cut = 0; cut < len; cut++) {
            memcpy(t, s, cut);
            t[cut] = '\0';
            if (br_handle_decode(t, topic, group, &back) != MQ_EINVAL) {
                bad++;
            }
        }
        for (size_t k = 0; k < len; k++) {
            for (int ch = 1; ch < 256; ch++) {
                if (ch == (unsigned char)s[k]) {
                    continue;
                }
                memcpy(t, s, len + 1);
                t[k] = (char)ch;
                if (br_handle_decode(t, topic, group, &back) != MQ_EINVAL) {
                    bad++;
                }
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);

    /* The NUL between topic and group: ("ab", "c") is not ("a", "bc"). */
    h = (br_handle_t){.queue = 1, .offset = 2, .attempt = 3, .deadline_ms = 4};
    br_handle_encode(&h, "ab", "c", s);
    CU_ASSERT_EQUAL(br_handle_decode(s, "ab", "c", &back), MQ_OK);
    CU_ASSERT_EQUAL(br_handle_decode(s, "a", "bc", &back), MQ_EINVAL);

    /* Well signed but not canonical or out of range. */
    const char *texts[] = {
        "L1.1.2.3.4",                 /* the good one */
        "L1.01.2.3.4",                /* leading zero */
        "L1.1.2.0.4",                 /* attempt 0 */
        "L1.80000000.2.3.4",          /* queue > INT32_MAX */
        "L1.1.8000000000000000.3.4",  /* offset > INT64_MAX */
        "L1.1.2.80000000.4",          /* attempt > INT32_MAX */
        "L1.1.10000000000000000.3.4", /* 17 digits */
        "L1.1.2.3",                   /* a field missing */
        "L1.1.2.3.4.5",               /* a field too many */
        "L1.1.2.3.A",                 /* uppercase */
        "L1.1..3.4",                  /* empty field */
        "L2.1.2.3.4",                 /* another version */
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(texts); i++) {
        t_sign(s, sizeof(s), texts[i], topic, group);
        CU_ASSERT_EQUAL(br_handle_decode(s, topic, group, &back), i == 0 ? MQ_OK : MQ_EINVAL);
    }
    CU_ASSERT_EQUAL(back.queue, 1);
    CU_ASSERT_EQUAL(back.deadline_ms, 4);
    /* Uppercase CRC digits, a short CRC, garbage, too long, NULL. */
    t_sign(s, sizeof(s), "L1.1.2.3.4", topic, group);
    char t[2 * BR_HANDLE_MAX];
    snprintf(t, sizeof(t), "%s", s);
    for (char *q = strrchr(t, '.'); *q; q++) {
        *q = (char)(*q >= 'a' && *q <= 'f' ? *q - 'a' + 'A' : *q);
    }
    CU_ASSERT_EQUAL(br_handle_decode(t, topic, group, &back),
                    strcmp(t, s) == 0 ? MQ_OK : MQ_EINVAL);
    CU_ASSERT_EQUAL(br_handle_decode("L1.1.2.3.4.1234567", topic, group, &back), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_handle_decode("", topic, group, &back), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_handle_decode("hello world", topic, group, &back), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_handle_decode(NULL, topic, group, &back), MQ_EINVAL);
    memset(t, '1', sizeof(t) - 1);
    t[sizeof(t) - 1] = '\0';
    memcpy(t, "L1.", 3);
    CU_ASSERT_EQUAL(br_handle_decode(t, topic, group, &back), MQ_EINVAL);
    /* The longest handle fits. */
    h = (br_handle_t){INT32_MAX, INT64_MAX, INT32_MAX, UINT64_MAX};
    br_handle_encode(&h, topic, group, s);
    CU_ASSERT_TRUE(strlen(s) < BR_HANDLE_MAX);
    CU_ASSERT_EQUAL(br_handle_decode(s, topic, group, &back), MQ_OK);
    CU_ASSERT_EQUAL(back.offset, INT64_MAX);
}

/* --- scale --------------------------------------------------------------------- */

#define T_MILLION (1 << 20)

static double t_secs(void)
{
    return (double)mq_now_ns() / 1e9;
}

static void test_million(void)
{
    br_cursor_t *c = t_new(T_MILLION, 5, false, NULL, 0);
    br_cursor_pick_t *out = malloc(T_MILLION * sizeof(*out));
    CU_ASSERT_EQUAL_FATAL(br_cursor_pick(c, 0, T_MILLION, out, T_MILLION), T_MILLION);
    int bad = 0;
    for (int64_t i = 0; i < T_MILLION; i++) {
        if (out[i].offset != i || br_cursor_deliver(c, i, 0, 1000, 0) != 1) {
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), 1000);
    /* Nothing due and no new offset: a pick does not look at the million
     * offsets in flight (100000 full scans would take minutes). */
    double t0 = t_secs();
    size_t got = 0;
    for (int i = 0; i < 100000; i++) {
        got += br_cursor_pick(c, 999, T_MILLION + 10, out, 16);
    }
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_TRUE(t_secs() - t0 < 2.0);

    int64_t *order = malloc(T_MILLION * sizeof(*order));
    for (int64_t i = 0; i < T_MILLION; i++) {
        order[i] = i;
    }
    for (int64_t i = T_MILLION - 1; i > 0; i--) {
        int64_t j = (int64_t)t_below((uint64_t)i + 1);
        int64_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int64_t i = 0; i < T_MILLION; i++) {
        if (br_cursor_ack(c, order[i], 1) != MQ_OK) {
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    br_cursor_stats_t st = t_stats(c);
    CU_ASSERT_EQUAL(st.watermark, T_MILLION);
    CU_ASSERT_EQUAL(st.next, T_MILLION);
    CU_ASSERT_EQUAL(st.inflight, 0);
    CU_ASSERT_EQUAL(st.done_above, 0);
    CU_ASSERT_EQUAL(br_cursor_next_due(c), UINT64_MAX);
    free(order);
    free(out);
    br_cursor_free(c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"conf defaults", test_defaults},
        {"transitions: pick, deliver, unpick, defer, skip, ack, change", test_transitions},
        {"ack: stale attempt, double ack, never delivered", test_ack_errors},
        {"window limit stops new offsets", test_window},
        {"expiry: attempt + 1 after the back-off; due before new", test_expiry_backoff},
        {"dead letter after max_attempts", test_dlq},
        {"fifo: blocking and release", test_fifo},
        {"fifo: random run against a model", test_fifo_random},
        {"skip moves the watermark", test_skip},
        {"clamp", test_clamp},
        {"replay: snapshot layout, records, rebuilt state", test_replay_basic},
        {"replay: a random owner's records rebuild its state", test_replay_random},
        {"replay: a handover keeps deliveries in flight", test_replay_handover},
        {"replay: corrupt, truncated and flipped records", test_replay_corrupt},
        {"receipt handles", test_handle},
        {"one million offsets acked in random order", test_million},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("cursor", tests, NULL, NULL);
}
