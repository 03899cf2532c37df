/*
 * The managed log against a real ZooKeeper and five real bookies:
 *  - 100k messages appended from 8 threads at once: every callback MQ_OK,
 *    in offset order, offsets exactly 0..99999 once each, far fewer entries
 *    than messages (batching), every message reads back with identical
 *    bytes through br_mlog_read and through br_mlog_read_detached;
 *  - rollover by entries: several ledgers of exactly rollover_entries
 *    entries, reads across ledger boundaries, and a new owner with a cold
 *    cache finds any old offset in O(log entries) bookie reads;
 *  - takeover: B opens the queue while A appends; A is fenced (on_fenced
 *    runs, appends fail MQ_EFENCED), everything A acknowledged reads back
 *    through B at the same offsets, B continues right after A's acked end;
 *  - clean close by A, then B: nothing to recover, offsets continue;
 *  - retention 0: closed ledgers deleted (metadata gone), min offset
 *    advanced, reads below it MQ_ENOTFOUND, above it fine;
 *  - the list changed under an owner: its next rollover fences it;
 *  - a garbage or inconsistent queue record: MQ_ECORRUPT, no crash;
 *  - the message size limit; free without close;
 *  - a write error (two bookies of five gone, no spare) breaks the log:
 *    callbacks get MQ_ENOTENOUGHBOOKIES, appends are refused, on_fenced
 *    runs; with the bookies back a new open recovers everything acked.
 * The 100k case also crosses rollovers while appends keep coming.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_mlog.h"
#include "br_mlog_int.h"
#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "meta_store.h"
#include "mq_crc32c.h"
#include "mq_executor.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_ROOT "/ledgermq"

static it_cluster_t c;
static mq_executor_t *ex;
static lc_client_t *lca;
static lc_client_t *lcb;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "mlog") || !it_cluster_start_bookies(&c, 5, NULL)) {
        return 1;
    }
    ex = mq_executor_new("mlog", 2);
    lca = it_lc_client(&c, 5, 3, 2);
    lcb = it_lc_client(&c, 5, 3, 2);
    return lca && lcb ? 0 : 1;
}

/* The payload of message id: 1..300 bytes derived from id. */
static size_t t_payload(int64_t id, uint8_t *buf)
{
    uint64_t s = mq_mix64((uint64_t)id * 7919u + 13u);
    size_t len = 1 + (size_t)(s % 300);
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            s = mq_mix64(s);
        }
        buf[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
    return len;
}

static bool t_payload_is(int64_t id, const uint8_t *data, size_t len)
{
    uint8_t want[512];
    size_t n = t_payload(id, want);
    return n == len && memcmp(want, data, len) == 0;
}

/* --- appends and their callbacks ------------------------------------------------ */

typedef struct t_tracker t_tracker_t;

typedef struct t_msg {
    t_tracker_t *t;
    int64_t id;
} t_msg_t;

struct t_tracker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t cap;
    t_msg_t *msgs;
    int64_t *offset_of; /* by message id; -1 until acknowledged */
    int64_t *id_at;     /* by offset - base; -1 when none */
    int64_t base;       /* offsets tracked from here */
    uint8_t *seen;      /* by offset - base: acknowledgements */
    int64_t issued;
    int64_t done;
    int64_t ok;
    int64_t failed;
    mq_err_t first_err;
    int64_t last_offset;
    int64_t order_bad;
    int64_t range_bad;
};

static void t_tracker_init(t_tracker_t *t, int64_t cap, int64_t base)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    t->cap = cap;
    t->base = base;
    t->msgs = calloc((size_t)cap, sizeof(*t->msgs));
    t->offset_of = malloc((size_t)cap * sizeof(int64_t));
    t->id_at = malloc((size_t)cap * 2 * sizeof(int64_t));
    t->seen = calloc((size_t)cap * 2, 1);
    for (int64_t i = 0; i < cap; i++) {
        t->msgs[i].t = t;
        t->msgs[i].id = i;
        t->offset_of[i] = -1;
    }
    for (int64_t i = 0; i < cap * 2; i++) {
        t->id_at[i] = -1;
    }
    t->last_offset = -1;
}

static void t_tracker_fini(t_tracker_t *t)
{
    free(t->msgs);
    free(t->offset_of);
    free(t->id_at);
    free(t->seen);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
}

/* @thread the log's executor */
static void t_appended(mq_err_t err, int64_t offset, void *arg)
{
    t_msg_t *m = arg;
    t_tracker_t *t = m->t;
    pthread_mutex_lock(&t->lock);
    if (err == MQ_OK) {
        t->ok++;
        t->offset_of[m->id] = offset;
        if (offset <= t->last_offset) {
            t->order_bad++;
        }
        t->last_offset = offset;
        int64_t k = offset - t->base;
        if (k < 0 || k >= t->cap * 2) {
            t->range_bad++;
        } else {
            t->seen[k]++;
            t->id_at[k] = m->id;
        }
    } else {
        t->failed++;
        if (t->first_err == MQ_OK) {
            t->first_err = err;
        }
    }
    t->done++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

/* Appends message id (payload derived from it). */
static mq_err_t t_append(br_mlog_t *ml, t_tracker_t *t, int64_t id)
{
    uint8_t buf[512];
    size_t len = t_payload(id, buf);
    pthread_mutex_lock(&t->lock);
    t->issued++;
    pthread_mutex_unlock(&t->lock);
    mq_err_t err = br_mlog_append(ml, buf, len, t_appended, &t->msgs[id]);
    if (err != MQ_OK) {
        pthread_mutex_lock(&t->lock);
        t->issued--;
        pthread_mutex_unlock(&t->lock);
    }
    return err;
}

/* Waits until done >= n. */
static bool t_wait_done(t_tracker_t *t, int64_t n, unsigned timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    pthread_mutex_lock(&t->lock);
    while (t->done < n && mq_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }
    bool ok = t->done >= n;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

/* Appends ids [from, to) in bursts of 1..max_burst, waiting for each burst:
 * each burst tends to become one entry. */
static void t_append_bursts(br_mlog_t *ml, t_tracker_t *t, int64_t from, int64_t to, int max_burst)
{
    pthread_mutex_lock(&t->lock);
    int64_t done0 = t->done;
    pthread_mutex_unlock(&t->lock);
    int64_t id = from;
    while (id < to) {
        int64_t burst = MQ_MIN(to - id, 1 + (int64_t)(mq_mix64((uint64_t)id) % max_burst));
        for (int64_t k = 0; k < burst; k++) {
            CU_ASSERT_EQUAL_FATAL(t_append(ml, t, id + k), MQ_OK);
        }
        id += burst;
        CU_ASSERT_FATAL(t_wait_done(t, done0 + id - from, 30000));
    }
}

/* --- reads -------------------------------------------------------------------------- */

typedef struct t_read {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    mq_err_t err;
    size_t n;
    int64_t offsets[1024];
    uint8_t *datas[1024];
    size_t lens[1024];
} t_read_t;

/* @thread the executor or the ledger client's loop */
static void t_read_cb(mq_err_t err, const br_mlog_msg_t *msgs, size_t count, void *arg)
{
    t_read_t *r = arg;
    pthread_mutex_lock(&r->lock);
    r->err = err;
    r->n = MQ_MIN(count, MQ_ARRAY_LEN(r->offsets));
    for (size_t i = 0; i < r->n; i++) {
        r->offsets[i] = msgs[i].offset;
        r->lens[i] = msgs[i].len;
        r->datas[i] = malloc(msgs[i].len ? msgs[i].len : 1);
        memcpy(r->datas[i], msgs[i].data, msgs[i].len);
    }
    r->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void t_read_clear(t_read_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->datas[i]);
    }
    r->n = 0;
}

/* A blocking br_mlog_read; *r must be cleared with t_read_clear. */
static mq_err_t t_read(br_mlog_t *ml, int64_t offset, size_t max, t_read_t *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    mq_err_t err = br_mlog_read(ml, offset, MQ_MIN(max, MQ_ARRAY_LEN(r->offsets)), t_read_cb, r);
    if (err == MQ_OK) {
        pthread_mutex_lock(&r->lock);
        while (!r->done) {
            pthread_cond_wait(&r->cond, &r->lock);
        }
        err = r->err;
        pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    return err;
}

/* Reads [from, to) through ml and checks each message against the id the
 * tracker saw acknowledged there; returns the number of bad messages. */
static int64_t t_check_reads(br_mlog_t *ml, t_tracker_t *t, int64_t from, int64_t to)
{
    int64_t bad = 0;
    int64_t off = from;
    static t_read_t r;
    while (off < to) {
        mq_err_t err = t_read(ml, off, 1000, &r);
        if (err != MQ_OK || r.n == 0) {
            fprintf(stderr, "\n  read at %lld: err=%s n=%zu\n", (long long)off, mq_err_name(err),
                    r.n);
            t_read_clear(&r);
            return bad + (to - off);
        }
        for (size_t i = 0; i < r.n && off < to; i++, off++) {
            int64_t id = t->id_at[off - t->base];
            if (r.offsets[i] != off || id < 0 || !t_payload_is(id, r.datas[i], r.lens[i])) {
                bad++;
            }
        }
        t_read_clear(&r);
    }
    return bad;
}

/* Same through br_mlog_read_detached. */
static int64_t t_check_detached(const char *topic, int queue, t_tracker_t *t, int64_t from,
                                int64_t to)
{
    int64_t bad = 0;
    int64_t off = from;
    while (off < to) {
        br_mlog_msg_t *msgs = NULL;
        size_t n = 0;
        mq_err_t err = br_mlog_read_detached(lcb, T_ROOT, topic, queue, off, 20000, &msgs, &n);
        if (err != MQ_OK || n == 0) {
            fprintf(stderr, "\n  detached read at %lld: err=%s n=%zu\n", (long long)off,
                    mq_err_name(err), n);
            br_mlog_msgs_free(msgs, n);
            return bad + (to - off);
        }
        for (size_t i = 0; i < n && off < to; i++, off++) {
            int64_t id = t->id_at[off - t->base];
            if (msgs[i].offset != off || id < 0 || !t_payload_is(id, msgs[i].data, msgs[i].len)) {
                bad++;
            }
        }
        br_mlog_msgs_free(msgs, n);
    }
    return bad;
}

/* --- logs --------------------------------------------------------------------------- */

typedef struct t_fence {
    pthread_mutex_t lock;
    int calls;
    br_mlog_t *ml;
} t_fence_t;

/* @thread the log's executor */
static void t_on_fenced(br_mlog_t *ml, void *arg)
{
    t_fence_t *f = arg;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    f->ml = ml;
    pthread_mutex_unlock(&f->lock);
}

static bool t_fenced_cond(void *arg)
{
    t_fence_t *f = arg;
    pthread_mutex_lock(&f->lock);
    bool ok = f->calls > 0;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static void t_conf(br_mlog_conf_t *mc, lc_client_t *lc, const char *topic, int queue, uint64_t key)
{
    br_mlog_conf_default(mc);
    mc->lc = lc;
    mc->zk = lc_client_zk(lc);
    mc->root = T_ROOT;
    mc->topic = topic;
    mc->queue = queue;
    mc->executor = ex;
    mc->key = key;
}

static void t_info(const char *topic, int queue, br_mlog_info_t *info)
{
    CU_ASSERT_EQUAL_FATAL(br_mlog_info_read(c.zk, T_ROOT, topic, queue, info), MQ_OK);
}

/* Entries written to the list's ledgers (an open one through its LAC). */
static int64_t t_entries(const char *topic, int queue)
{
    br_mlog_info_t info;
    t_info(topic, queue, &info);
    int64_t entries = 0;
    for (size_t i = 0; i < info.nledgers; i++) {
        if (info.ledgers[i].entries >= 0) {
            entries += info.ledgers[i].entries;
            continue;
        }
        lc_ledger_t *rd = NULL;
        IT_EXPECT(lc_ledger_open(lcb, info.ledgers[i].ledger, &rd), MQ_OK);
        if (rd) {
            int64_t lac = -1;
            IT_EXPECT(lc_ledger_read_lac(rd, &lac), MQ_OK);
            entries += lac + 1;
            lc_ledger_free(rd);
        }
    }
    br_mlog_info_fini(&info);
    return entries;
}

/* --- 1. many appenders ---------------------------------------------------------------- */

#define T1_MSGS 100000
#define T1_THREADS 8

typedef struct t1_worker {
    pthread_t tid;
    br_mlog_t *ml;
    t_tracker_t *t;
    int64_t from;
    int64_t to;
    int64_t errors;
} t1_worker_t;

static void *t1_worker_main(void *arg)
{
    t1_worker_t *w = arg;
    for (int64_t id = w->from; id < w->to; id++) {
        if (t_append(w->ml, w->t, id) != MQ_OK) {
            w->errors++;
        }
    }
    return NULL;
}

static void test_many_appenders(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t1", 0, 1);
    /* Entries of ~100 messages: many of them, pipelined, and a few
     * rollovers while appends keep coming. */
    mc.max_entry_bytes = 16384;
    mc.rollover_entries = 300;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    CU_ASSERT_EQUAL(br_mlog_max_offset(ml), 0);
    CU_ASSERT_EQUAL(br_mlog_min_offset(ml), 0);
    t_tracker_t t;
    t_tracker_init(&t, T1_MSGS, 0);
    t1_worker_t w[T1_THREADS];
    uint64_t t0 = mq_now_ns();
    for (int i = 0; i < T1_THREADS; i++) {
        w[i].ml = ml;
        w[i].t = &t;
        w[i].from = (int64_t)i * T1_MSGS / T1_THREADS;
        w[i].to = (int64_t)(i + 1) * T1_MSGS / T1_THREADS;
        w[i].errors = 0;
        pthread_create(&w[i].tid, NULL, t1_worker_main, &w[i]);
    }
    int64_t errors = 0;
    for (int i = 0; i < T1_THREADS; i++) {
        pthread_join(w[i].tid, NULL);
        errors += w[i].errors;
    }
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_FATAL(t_wait_done(&t, T1_MSGS, 60000));
    double secs = (double)(mq_now_ns() - t0) / 1e9;
    CU_ASSERT_EQUAL(t.ok, T1_MSGS);
    CU_ASSERT_EQUAL(t.failed, 0);
    CU_ASSERT_EQUAL(t.order_bad, 0);
    CU_ASSERT_EQUAL(t.range_bad, 0);
    int64_t once = 0;
    for (int64_t o = 0; o < T1_MSGS; o++) {
        once += t.seen[o] == 1;
    }
    CU_ASSERT_EQUAL(once, T1_MSGS);
    CU_ASSERT_EQUAL(br_mlog_max_offset(ml), T1_MSGS);
    int64_t entries = t_entries("t1", 0);
    fprintf(stderr,
            "\n  %d messages from %d threads in %.2f s: %.0f appends/s, %lld entries "
            "(%.1f messages per entry)\n",
            T1_MSGS, T1_THREADS, secs, T1_MSGS / secs, (long long)entries,
            (double)T1_MSGS / (double)MQ_MAX(entries, 1));
    /* Batching: many fewer entries than messages. */
    CU_ASSERT_TRUE(entries > 0 && entries * 4 <= T1_MSGS);
    br_mlog_info_t info;
    t_info("t1", 0, &info);
    CU_ASSERT_TRUE(info.nledgers >= 3);
    br_mlog_info_fini(&info);
    uint64_t r0 = mq_now_ns();
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, 0, T1_MSGS), 0);
    double rsecs = (double)(mq_now_ns() - r0) / 1e9;
    /* At the end: nothing yet. */
    static t_read_t r;
    IT_EXPECT(t_read(ml, T1_MSGS, 10, &r), MQ_OK);
    CU_ASSERT_EQUAL(r.n, 0);
    t_read_clear(&r);
    /* A detached reader of the open ledger sees up to the LAC the bookies
     * know (one entry behind the writer): all of it once closed. */
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    r0 = mq_now_ns();
    CU_ASSERT_EQUAL(t_check_detached("t1", 0, &t, 0, T1_MSGS), 0);
    fprintf(stderr, "  read back: owner %.2f s, detached %.2f s\n", rsecs,
            (double)(mq_now_ns() - r0) / 1e9);
    br_mlog_free(ml);
    t_tracker_fini(&t);
}

/* --- 2. rollover, cold reads ------------------------------------------------------------- */

#define T2_MSGS 1500
#define T2_ROLL 100

static void test_rollover_and_cold_reads(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t2", 0, 2);
    mc.rollover_entries = T2_ROLL;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, T2_MSGS, 0);
    t_append_bursts(ml, &t, 0, T2_MSGS, 6);
    CU_ASSERT_EQUAL(t.ok, T2_MSGS);
    CU_ASSERT_EQUAL(t.order_bad, 0);
    CU_ASSERT_EQUAL(br_mlog_max_offset(ml), T2_MSGS);
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, 0, T2_MSGS), 0);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    br_mlog_free(ml);

    br_mlog_info_t info;
    t_info("t2", 0, &info);
    CU_ASSERT_TRUE(info.nledgers >= 4);
    CU_ASSERT_EQUAL(info.max_offset, T2_MSGS);
    for (size_t i = 0; i + 1 < info.nledgers; i++) {
        /* Full ledgers: exactly rollover_entries entries each. */
        CU_ASSERT_EQUAL(info.ledgers[i].entries, T2_ROLL);
    }

    /* A new owner with no cache finds old offsets in O(log n) reads, and
     * reads across ledger boundaries right. */
    t_conf(&mc, lcb, "t2", 0, 3);
    mc.cache_bytes = 0;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    CU_ASSERT_EQUAL(br_mlog_max_offset(ml), T2_MSGS);
    int bound = 2 * (int)ceil(log2((double)T2_ROLL)) + 3;
    int worst = 0;
    static t_read_t r;
    for (int k = 0; k < 24; k++) {
        /* Each time a different closed ledger first, then random offsets. */
        size_t li = (size_t)k % (info.nledgers - 1);
        const br_mlog_ledger_info_t *l = &info.ledgers[li];
        int64_t off =
            l->first_offset + (int64_t)(mq_mix64((uint64_t)k + 99) % (uint64_t)l->messages);
        uint64_t before = br_mlog_test_reads(ml);
        IT_EXPECT(t_read(ml, off, 3, &r), MQ_OK);
        int cost = (int)(br_mlog_test_reads(ml) - before);
        worst = MQ_MAX(worst, cost);
        CU_ASSERT_TRUE(cost >= 1 && cost <= bound);
        CU_ASSERT_TRUE(r.n >= 1 && r.offsets[0] == off);
        for (size_t i = 0; i < r.n; i++) {
            CU_ASSERT_TRUE(t_payload_is(t.id_at[r.offsets[i]], r.datas[i], r.lens[i]));
        }
        t_read_clear(&r);
    }
    fprintf(stderr,
            "\n  cold reads: at most %d bookie reads per lookup (bound %d, %d entries "
            "per ledger)\n",
            worst, bound, T2_ROLL);
    for (size_t i = 1; i < info.nledgers; i++) {
        int64_t b = info.ledgers[i].first_offset;
        /* The last message of a ledger ends its entry: one message. */
        IT_EXPECT(t_read(ml, b - 1, 100, &r), MQ_OK);
        CU_ASSERT_EQUAL(r.n, 1);
        CU_ASSERT_EQUAL(r.offsets[0], b - 1);
        CU_ASSERT_TRUE(r.n == 1 && t_payload_is(t.id_at[b - 1], r.datas[0], r.lens[0]));
        t_read_clear(&r);
        IT_EXPECT(t_read(ml, b, 100, &r), MQ_OK);
        CU_ASSERT_TRUE(r.n >= 1 && r.offsets[0] == b);
        CU_ASSERT_TRUE(r.n >= 1 && t_payload_is(t.id_at[b], r.datas[0], r.lens[0]));
        t_read_clear(&r);
    }
    /* A sequential walk over everything (closed ledgers via their points). */
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, 0, T2_MSGS), 0);
    br_mlog_info_fini(&info);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    br_mlog_free(ml);
    t_tracker_fini(&t);
}

/* --- 2b. reads over several entries; entries kept once read --------------------------- */

#define T2B_MSGS 400
#define T2B_ROLL 60

/* Reads [off, off + max) and checks every message: consecutive offsets
 * from off, each the payload acknowledged there. Returns bookie reads. */
static int t2b_read(br_mlog_t *ml, t_tracker_t *t, int64_t off, size_t max, size_t *n)
{
    static t_read_t r;
    uint64_t before = br_mlog_test_reads(ml);
    IT_EXPECT(t_read(ml, off, max, &r), MQ_OK);
    int cost = (int)(br_mlog_test_reads(ml) - before);
    CU_ASSERT_TRUE(r.n >= 1 && r.n <= max);
    for (size_t i = 0; i < r.n; i++) {
        CU_ASSERT_EQUAL(r.offsets[i], off + (int64_t)i);
        CU_ASSERT_TRUE(t_payload_is(t->id_at[r.offsets[i]], r.datas[i], r.lens[i]));
    }
    *n = r.n;
    t_read_clear(&r);
    return cost;
}

static void test_read_gather(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t2b", 0, 21);
    mc.rollover_entries = T2B_ROLL;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, T2B_MSGS + 200, 0);
    /* Bursts of at most 6, each waited for: entries of 1..6 messages. */
    t_append_bursts(ml, &t, 0, T2B_MSGS, 6);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    br_mlog_free(ml);
    br_mlog_info_t info;
    t_info("t2b", 0, &info);
    CU_ASSERT_FATAL(info.nledgers >= 2 && info.ledgers[0].entries == T2B_ROLL);

    /* A new owner with no hot tail, but a cache of what it reads. */
    br_mlog_budget_t rb;
    memset(&rb, 0, sizeof(rb));
    rb.limit = 1u << 20;
    t_conf(&mc, lcb, "t2b", 0, 22);
    mc.cache_bytes = 0;
    mc.read_budget = &rb;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    /* Counted once it reads back, not before. */
    CU_ASSERT_EQUAL(atomic_load(&rb.logs), 0);
    size_t n;

    /* Closed ledger: an entry read once is kept (no bookie read again). */
    int64_t off = info.ledgers[0].first_offset + 7;
    CU_ASSERT_TRUE(t2b_read(ml, &t, off, 1, &n) >= 1);
    CU_ASSERT_EQUAL(atomic_load(&rb.logs), 1);
    CU_ASSERT_EQUAL(t2b_read(ml, &t, off, 1, &n), 0);
    /* Asking for more than an entry holds gathers the entries after it
     * (each holds at most 6 messages; up to BR_MLOG_READ_SPAN entries). */
    off = info.ledgers[0].first_offset + 20;
    t2b_read(ml, &t, off, 40, &n);
    CU_ASSERT_TRUE(n >= BR_MLOG_READ_SPAN);
    /* ... but never past the ledger's end. */
    off = info.ledgers[1].first_offset - 1;
    t2b_read(ml, &t, off, 40, &n);
    CU_ASSERT_EQUAL(n, 1);

    /* Current ledger (written by this owner, hot tail off). */
    t_append_bursts(ml, &t, T2B_MSGS, T2B_MSGS + 200, 6);
    int64_t base = info.max_offset;
    CU_ASSERT_EQUAL(base, T2B_MSGS);
    off = base + 9;
    CU_ASSERT_EQUAL(t2b_read(ml, &t, off, 1, &n), 1);
    CU_ASSERT_EQUAL(t2b_read(ml, &t, off, 1, &n), 0);
    off = base + 50;
    int cost = t2b_read(ml, &t, off, 40, &n);
    CU_ASSERT_TRUE(n >= BR_MLOG_READ_SPAN);
    /* One bookie read per entry, all in one go. */
    CU_ASSERT_TRUE(cost >= 2 && cost <= BR_MLOG_READ_SPAN);
    CU_ASSERT_TRUE(atomic_load(&rb.used) > 0 && atomic_load(&rb.used) <= rb.limit);

    br_mlog_info_fini(&info);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    br_mlog_free(ml);
    /* Freeing the log gives its share back. */
    CU_ASSERT_EQUAL(atomic_load(&rb.used), 0);
    CU_ASSERT_EQUAL(atomic_load(&rb.logs), 0);
    t_tracker_fini(&t);
}

/* --- linger ---------------------------------------------------------------------- */

#define TL_ROUNDS 10

static void t_nap_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* A linger packs what arrives within it, and a message after a quiet
 * spell (no append for longer than the linger) does not wait: rounds of
 * three appends 5 ms apart, 45 ms of quiet between rounds, linger 20 ms,
 * make two entries each (the first message alone, at once; the other two
 * together). Without the quiet-spell rule the first would wait for the
 * others: one entry a round. */
static void test_linger(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "tl", 0, 30);
    mc.linger_us = 20000;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, 3 * TL_ROUNDS, 0);
    for (int64_t i = 0; i < TL_ROUNDS; i++) {
        t_nap_ms(45);
        for (int64_t k = 0; k < 3; k++) {
            if (k > 0) {
                t_nap_ms(5);
            }
            CU_ASSERT_EQUAL(t_append(ml, &t, 3 * i + k), MQ_OK);
        }
        CU_ASSERT_FATAL(t_wait_done(&t, 3 * i + 3, 10000));
    }
    CU_ASSERT_EQUAL(t.ok, 3 * TL_ROUNDS);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    int64_t entries = t_entries("tl", 0);
    fprintf(stderr, "\n  %d rounds of 3 appends 5 ms apart, linger 20 ms: %lld entries\n",
            TL_ROUNDS, (long long)entries);
    /* Two a round (a round's first two together if the pump ran more than
     * 5 ms late: two again), give or take two rounds that a very busy
     * machine joined (a pump 10 ms late) or split (this thread 15 ms
     * late); far from one a round (no quiet-spell rule) and three (no
     * linger). */
    CU_ASSERT_TRUE(entries >= 2 * TL_ROUNDS - 2 && entries <= 2 * TL_ROUNDS + 2);
    br_mlog_free(ml);
    t_tracker_fini(&t);
}

/* --- 3. takeover ------------------------------------------------------------------------ */

#define T3_CAP 400000

typedef struct t3_writer {
    pthread_t tid;
    br_mlog_t *ml;
    t_tracker_t *t;
    mq_err_t stop_err;
    int64_t next_id;
} t3_writer_t;

/* Appends with at most 300 unanswered until an append is refused. */
static void *t3_writer_main(void *arg)
{
    t3_writer_t *w = arg;
    t_tracker_t *t = w->t;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        while (t->issued - t->done >= 300) {
            pthread_cond_wait(&t->cond, &t->lock);
        }
        pthread_mutex_unlock(&t->lock);
        if (w->next_id >= t->cap) {
            w->stop_err = MQ_ENOSPC;
            break;
        }
        mq_err_t err = t_append(w->ml, t, w->next_id);
        if (err != MQ_OK) {
            w->stop_err = err;
            break;
        }
        w->next_id++;
    }
    return NULL;
}

static bool t3_acked_3000(void *arg)
{
    t_tracker_t *t = arg;
    pthread_mutex_lock(&t->lock);
    bool ok = t->ok >= 3000;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

static void test_takeover(void)
{
    t_fence_t fa;
    memset(&fa, 0, sizeof(fa));
    pthread_mutex_init(&fa.lock, NULL);
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t3", 0, 4);
    mc.on_fenced = t_on_fenced;
    mc.arg = &fa;
    br_mlog_t *a = NULL;
    IT_EXPECT(br_mlog_open(&mc, &a), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    t_tracker_t t;
    t_tracker_init(&t, T3_CAP, 0);
    t3_writer_t w = {0};
    w.ml = a;
    w.t = &t;
    pthread_create(&w.tid, NULL, t3_writer_main, &w);
    CU_ASSERT_FATAL(mq_test_wait(t3_acked_3000, &t, 60000));

    /* B takes over, as another broker would. */
    t_conf(&mc, lcb, "t3", 0, 5);
    mc.on_fenced = NULL;
    br_mlog_t *b = NULL;
    IT_EXPECT(br_mlog_open(&mc, &b), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int64_t b_first = br_mlog_max_offset(b);

    CU_ASSERT_TRUE(mq_test_wait(t_fenced_cond, &fa, 30000));
    pthread_join(w.tid, NULL);
    IT_EXPECT(w.stop_err, MQ_EFENCED);
    CU_ASSERT_TRUE(br_mlog_fenced(a));
    CU_ASSERT_FALSE(br_mlog_fenced(b));
    IT_EXPECT(br_mlog_append(a, "x", 1, t_appended, &t.msgs[0]), MQ_EFENCED);
    pthread_mutex_lock(&t.lock);
    int64_t issued = t.issued;
    pthread_mutex_unlock(&t.lock);
    CU_ASSERT_FATAL(t_wait_done(&t, issued, 30000));
    CU_ASSERT_EQUAL(fa.calls, 1);
    CU_ASSERT_PTR_EQUAL(fa.ml, a);
    IT_EXPECT(t.first_err, MQ_EFENCED);
    CU_ASSERT_EQUAL(t.order_bad, 0);
    /* A acknowledged exactly [0, a_end), each once. */
    int64_t a_end = t.ok;
    int64_t dense = 0;
    for (int64_t o = 0; o < a_end; o++) {
        dense += t.seen[o] == 1;
    }
    CU_ASSERT_EQUAL(dense, a_end);
    CU_ASSERT_EQUAL(br_mlog_max_offset(a), a_end);
    fprintf(stderr, "\n  takeover: A acknowledged %lld, failed %lld; B starts at %lld\n",
            (long long)a_end, (long long)t.failed, (long long)b_first);
    /* B starts right after what A acknowledged: at most what A had sent
     * unacknowledged (and recovery found) lies between. */
    CU_ASSERT_TRUE(b_first >= a_end);
    CU_ASSERT_TRUE(b_first <= a_end + t.failed);
    /* Everything A acknowledged reads back through B, same offsets, same
     * bytes; what recovery found beyond reads too. */
    CU_ASSERT_EQUAL(t_check_reads(b, &t, 0, a_end), 0);
    static t_read_t r;
    for (int64_t o = a_end; o < b_first; o++) {
        IT_EXPECT(t_read(b, o, 1, &r), MQ_OK);
        CU_ASSERT_TRUE(r.n == 1 && r.offsets[0] == o);
        t_read_clear(&r);
    }
    /* B goes on densely. */
    t_tracker_t tb;
    t_tracker_init(&tb, 1000, b_first);
    for (int64_t id = 0; id < 1000; id++) {
        IT_EXPECT(t_append(b, &tb, id), MQ_OK);
    }
    CU_ASSERT_FATAL(t_wait_done(&tb, 1000, 30000));
    CU_ASSERT_EQUAL(tb.ok, 1000);
    CU_ASSERT_EQUAL(tb.range_bad, 0);
    for (int64_t k = 0; k < 1000; k++) {
        CU_ASSERT_EQUAL(tb.seen[k], 1);
    }
    CU_ASSERT_EQUAL(t_check_reads(b, &tb, b_first, b_first + 1000), 0);
    CU_ASSERT_EQUAL(t_check_detached("t3", 0, &t, 0, a_end), 0);
    IT_EXPECT(br_mlog_close(a), MQ_EFENCED);
    br_mlog_free(a);
    IT_EXPECT(br_mlog_close(b), MQ_OK);
    br_mlog_free(b);
    t_tracker_fini(&t);
    t_tracker_fini(&tb);
    pthread_mutex_destroy(&fa.lock);
}

/* --- 4. clean handover ------------------------------------------------------------------- */

static void test_clean_handover(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t4", 2, 6);
    br_mlog_t *a = NULL;
    IT_EXPECT(br_mlog_open(&mc, &a), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    t_tracker_t t;
    t_tracker_init(&t, 1000, 0);
    t_append_bursts(a, &t, 0, 500, 20);
    IT_EXPECT(br_mlog_close(a), MQ_OK);
    IT_EXPECT(br_mlog_close(a), MQ_ECLOSED);
    IT_EXPECT(br_mlog_append(a, "x", 1, t_appended, &t.msgs[999]), MQ_ECLOSED);
    CU_ASSERT_FALSE(br_mlog_fenced(a));
    /* Closed: still readable by its owner until freed. */
    CU_ASSERT_EQUAL(t_check_reads(a, &t, 0, 500), 0);
    br_mlog_free(a);

    br_mlog_info_t before;
    t_info("t4", 2, &before);
    CU_ASSERT_EQUAL(before.max_offset, 500);
    CU_ASSERT_TRUE_FATAL(before.nledgers >= 1);
    const br_mlog_ledger_info_t *last = &before.ledgers[before.nledgers - 1];
    CU_ASSERT_EQUAL(last->messages, 500);
    CU_ASSERT_TRUE(last->entries > 0 && last->entries < 500);
    CU_ASSERT_TRUE(last->mtime_ms > 0);
    meta_ledger_t md;
    IT_EXPECT(meta_ledger_read(c.zk, T_ROOT, last->ledger, &md), MQ_OK);
    CU_ASSERT_EQUAL(md.state, META_LEDGER_CLOSED);
    CU_ASSERT_EQUAL(md.last_entry_id, last->entries - 1);
    meta_ledger_fini(&md);

    t_conf(&mc, lcb, "t4", 2, 7);
    br_mlog_t *b = NULL;
    IT_EXPECT(br_mlog_open(&mc, &b), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(br_mlog_max_offset(b), 500);
    br_mlog_info_t after;
    t_info("t4", 2, &after);
    /* Nothing recovered or dropped: the old ledgers as they were, one more. */
    CU_ASSERT_EQUAL(after.nledgers, before.nledgers + 1);
    for (size_t i = 0; i < before.nledgers && i < after.nledgers; i++) {
        CU_ASSERT_EQUAL(after.ledgers[i].ledger, before.ledgers[i].ledger);
        CU_ASSERT_EQUAL(after.ledgers[i].entries, before.ledgers[i].entries);
        CU_ASSERT_EQUAL(after.ledgers[i].mtime_ms, before.ledgers[i].mtime_ms);
    }
    CU_ASSERT_EQUAL(after.ledgers[after.nledgers - 1].first_offset, 500);
    CU_ASSERT_EQUAL(after.ledgers[after.nledgers - 1].entries, -1);
    t_append_bursts(b, &t, 500, 600, 20);
    CU_ASSERT_EQUAL(t.offset_of[500], 500);
    CU_ASSERT_EQUAL(t.order_bad, 0);
    CU_ASSERT_EQUAL(t_check_reads(b, &t, 0, 600), 0);
    IT_EXPECT(br_mlog_close(b), MQ_OK);
    br_mlog_free(b);
    br_mlog_info_fini(&before);
    br_mlog_info_fini(&after);

    /* An owner that closes without writing leaves no empty ledger behind. */
    IT_EXPECT(br_mlog_open(&mc, &b), MQ_OK);
    IT_EXPECT(br_mlog_close(b), MQ_OK);
    br_mlog_free(b);
    t_info("t4", 2, &after);
    CU_ASSERT_EQUAL(after.max_offset, 600);
    CU_ASSERT_TRUE(after.nledgers > 0 && after.ledgers[after.nledgers - 1].messages == 100);
    br_mlog_info_fini(&after);
    t_tracker_fini(&t);
}

/* --- 5. retention -------------------------------------------------------------------------- */

static void test_trim(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t5", 0, 8);
    mc.rollover_entries = 5;
    mc.retention_hours = 0;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, 200, 0);
    t_append_bursts(ml, &t, 0, 120, 4);
    br_mlog_info_t before;
    t_info("t5", 0, &before);
    CU_ASSERT_TRUE_FATAL(before.nledgers >= 4);
    /* A retention of 72 h keeps everything. */
    br_mlog_conf_t mc2;
    t_conf(&mc2, lca, "t5", 1, 9);
    br_mlog_t *other = NULL;
    IT_EXPECT(br_mlog_open(&mc2, &other), MQ_OK);
    int deleted = -1;
    IT_EXPECT(br_mlog_trim(other, mq_wall_ms(), &deleted), MQ_OK);
    CU_ASSERT_EQUAL(deleted, 0);
    br_mlog_free(other);

    /* Retention 0: every closed ledger but the current one goes. (A
     * rollover may still be finishing: compare with the list after.) */
    IT_EXPECT(br_mlog_trim(ml, mq_wall_ms(), &deleted), MQ_OK);
    br_mlog_info_t after;
    t_info("t5", 0, &after);
    CU_ASSERT_TRUE_FATAL(after.nledgers >= 1);
    CU_ASSERT_TRUE(deleted >= 3);
    /* At most one ledger closed by a rollover since, plus the current. */
    CU_ASSERT_TRUE(after.nledgers <= 2);
    int gone = 0;
    for (size_t i = 0; i < before.nledgers; i++) {
        if (before.ledgers[i].ledger < after.ledgers[0].ledger) {
            meta_ledger_t md;
            IT_EXPECT(meta_ledger_read(c.zk, T_ROOT, before.ledgers[i].ledger, &md), MQ_ENOLEDGER);
            gone++;
        }
    }
    CU_ASSERT_TRUE(gone >= 3 && gone <= deleted);
    int64_t min = after.ledgers[0].first_offset;
    CU_ASSERT_TRUE(min > 0);
    CU_ASSERT_EQUAL(after.min_offset, min);
    CU_ASSERT_EQUAL(br_mlog_min_offset(ml), min);
    static t_read_t r;
    IT_EXPECT(t_read(ml, min - 1, 10, &r), MQ_ENOTFOUND);
    IT_EXPECT(t_read(ml, 0, 10, &r), MQ_ENOTFOUND);
    br_mlog_msg_t *msgs = NULL;
    size_t n = 0;
    IT_EXPECT(br_mlog_read_detached(lcb, T_ROOT, "t5", 0, min - 1, 10, &msgs, &n), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, min, 120), 0);
    /* Writing goes on. */
    t_append_bursts(ml, &t, 120, 140, 4);
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, min, 140), 0);
    IT_EXPECT(br_mlog_close(ml), MQ_OK);
    CU_ASSERT_EQUAL(t_check_detached("t5", 0, &t, min, 140), 0);
    br_mlog_free(ml);
    br_mlog_info_fini(&before);
    br_mlog_info_fini(&after);
    t_tracker_fini(&t);
}

/* --- 6. the list changed under its owner --------------------------------------------------- */

static void test_list_changed(void)
{
    t_fence_t f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.lock, NULL);
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t6", 0, 10);
    mc.rollover_entries = 3;
    mc.on_fenced = t_on_fenced;
    mc.arg = &f;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    /* Someone else writes the list (same bytes, new version). */
    char path[BR_MLOG_PATH_MAX];
    IT_EXPECT(br_mlog_path(T_ROOT, "t6", 0, path, sizeof(path)), MQ_OK);
    char *data = NULL;
    size_t len = 0;
    IT_EXPECT(zk_get(c.zk, path, &data, &len, NULL), MQ_OK);
    IT_EXPECT(zk_set(c.zk, path, data, len, -1, NULL), MQ_OK);
    free(data);
    t_tracker_t t;
    t_tracker_init(&t, 100, 0);
    /* The first rollover's compare-and-set fails: fenced. */
    for (int64_t id = 0; id < 3; id++) {
        IT_EXPECT(t_append(ml, &t, id), MQ_OK);
        CU_ASSERT_FATAL(t_wait_done(&t, id + 1, 30000));
    }
    CU_ASSERT_TRUE(mq_test_wait(t_fenced_cond, &f, 30000));
    CU_ASSERT_TRUE(br_mlog_fenced(ml));
    IT_EXPECT(br_mlog_append(ml, "x", 1, t_appended, &t.msgs[99]), MQ_EFENCED);
    IT_EXPECT(br_mlog_trim(ml, mq_wall_ms(), NULL), MQ_EFENCED);
    IT_EXPECT(br_mlog_close(ml), MQ_EFENCED);
    /* What it acknowledged is still there for a new owner. */
    br_mlog_free(ml);
    t_conf(&mc, lcb, "t6", 0, 11);
    mc.on_fenced = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_EQUAL(br_mlog_max_offset(ml), 3);
    CU_ASSERT_EQUAL(t_check_reads(ml, &t, 0, 3), 0);
    br_mlog_free(ml);
    CU_ASSERT_EQUAL(f.calls, 1);
    t_tracker_fini(&t);
    pthread_mutex_destroy(&f.lock);
}

/* --- 7. bad records ------------------------------------------------------------------------- */

static void test_corrupt_record(void)
{
    br_mlog_conf_t mc;
    br_mlog_t *ml = NULL;
    char path[BR_MLOG_PATH_MAX];
    /* Garbage. */
    IT_EXPECT(br_mlog_path(T_ROOT, "t7", 0, path, sizeof(path)), MQ_OK);
    IT_EXPECT(zk_create_parents(c.zk, path, "garbage\n", 8, ZK_PERSISTENT, NULL, 0), MQ_OK);
    t_conf(&mc, lca, "t7", 0, 12);
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_ECORRUPT);
    CU_ASSERT_PTR_NULL(ml);
    br_mlog_info_t info;
    IT_EXPECT(br_mlog_info_read(c.zk, T_ROOT, "t7", 0, &info), MQ_ECORRUPT);
    IT_EXPECT(
        br_mlog_read_detached(lca, T_ROOT, "t7", 0, 0, 10, &(br_mlog_msg_t *){NULL}, &(size_t){0}),
        MQ_ECORRUPT);
    /* Well-formed but naming a ledger that does not exist. */
    const char *body = "# LedgerMQ queue log\nversion=1\nminOffset=0\n"
                       "ledger=999999999,0,-1,-1,1,0\n";
    char rec[256];
    int n = snprintf(rec, sizeof(rec), "%schecksum=%08x\n", body, mq_crc32c(0, body, strlen(body)));
    IT_EXPECT(br_mlog_path(T_ROOT, "t7", 1, path, sizeof(path)), MQ_OK);
    IT_EXPECT(zk_create_parents(c.zk, path, rec, (size_t)n, ZK_PERSISTENT, NULL, 0), MQ_OK);
    t_conf(&mc, lca, "t7", 1, 13);
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_ECORRUPT);
    /* A flipped byte: the checksum catches it. */
    rec[40] ^= 1;
    IT_EXPECT(br_mlog_path(T_ROOT, "t7", 2, path, sizeof(path)), MQ_OK);
    IT_EXPECT(zk_create_parents(c.zk, path, rec, (size_t)n, ZK_PERSISTENT, NULL, 0), MQ_OK);
    t_conf(&mc, lca, "t7", 2, 14);
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_ECORRUPT);
    /* Bad arguments. */
    t_conf(&mc, lca, "a/b", 0, 15);
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_EINVAL);
    t_conf(&mc, lca, "t7", 3, 15);
    mc.max_entry_bytes = 16;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_EINVAL);
    /* A record that never existed: MQ_ENOTFOUND for the reader. */
    IT_EXPECT(br_mlog_info_read(c.zk, T_ROOT, "t7", 9, &info), MQ_ENOTFOUND);
}

static void test_too_large(void)
{
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t8", 0, 16);
    mc.max_entry_bytes = 1024;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, 10, 0);
    static uint8_t big[2048];
    IT_EXPECT(br_mlog_append(ml, big, 1024 - 63, t_appended, &t.msgs[0]), MQ_ETOOLARGE);
    IT_EXPECT(br_mlog_append(ml, big, 1024 - 64, t_appended, &t.msgs[0]), MQ_OK);
    CU_ASSERT_FATAL(t_wait_done(&t, 1, 30000));
    CU_ASSERT_EQUAL(t.ok, 1);
    static t_read_t r;
    IT_EXPECT(t_read(ml, 0, 5, &r), MQ_OK);
    CU_ASSERT_TRUE(r.n == 1 && r.lens[0] == 1024 - 64);
    t_read_clear(&r);
    /* Freed without a close: fine, and nothing left behind to wait for. */
    br_mlog_free(ml);
    t_tracker_fini(&t);
}

/* --- 8. a write error breaks the log --------------------------------------------------------- */

static bool t9_broken(void *arg)
{
    t_tracker_t *t = arg;
    pthread_mutex_lock(&t->lock);
    bool broken = t->failed > 0;
    pthread_mutex_unlock(&t->lock);
    return broken;
}

typedef struct t9_open {
    br_mlog_conf_t *mc;
    br_mlog_t *ml;
    mq_err_t err;
} t9_open_t;

/* Opening needs the restarted bookies back in the client's view. */
static bool t9_try_open(void *arg)
{
    t9_open_t *o = arg;
    o->err = br_mlog_open(o->mc, &o->ml);
    return o->err != MQ_ENOTENOUGHBOOKIES;
}

static void test_broken(void)
{
    t_fence_t f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.lock, NULL);
    br_mlog_conf_t mc;
    t_conf(&mc, lca, "t9", 0, 17);
    mc.on_fenced = t_on_fenced;
    mc.arg = &f;
    br_mlog_t *ml = NULL;
    IT_EXPECT(br_mlog_open(&mc, &ml), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
    t_tracker_t t;
    t_tracker_init(&t, 1000, 0);
    t_append_bursts(ml, &t, 0, 50, 5);
    /* Two bookies of the ensemble of five die: some write set (three in a
     * row) keeps one copy only, below the ack quorum, with no spare. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGKILL), 128 + SIGKILL);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 1, SIGKILL), 128 + SIGKILL);
    int64_t id = 50;
    while (!t9_broken(&t) && id < 1000) {
        mq_err_t err = t_append(ml, &t, id);
        if (err != MQ_OK) {
            break;
        }
        id++;
        CU_ASSERT_FATAL(t_wait_done(&t, id, 30000));
    }
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t9_broken, &t, 30000));
    /* Callbacks got the real error; the log refuses further appends and
     * told its owner. */
    IT_EXPECT(t.first_err, MQ_ENOTENOUGHBOOKIES);
    CU_ASSERT_TRUE(mq_test_wait(t_fenced_cond, &f, 30000));
    CU_ASSERT_TRUE(br_mlog_fenced(ml));
    IT_EXPECT(br_mlog_append(ml, "x", 1, t_appended, &t.msgs[999]), MQ_ENOTENOUGHBOOKIES);
    int64_t acked = t.ok;
    CU_ASSERT_TRUE(acked >= 50);
    br_mlog_free(ml);
    CU_ASSERT_EQUAL(f.calls, 1);

    /* The bookies come back: a new open recovers and continues. */
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_FATAL(it_bookie_start(&c, 1));
    t_conf(&mc, lcb, "t9", 0, 18);
    t9_open_t o = {&mc, NULL, MQ_OK};
    CU_ASSERT_TRUE(mq_test_wait(t9_try_open, &o, 30000));
    IT_EXPECT(o.err, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o.ml);
    CU_ASSERT_TRUE(br_mlog_max_offset(o.ml) >= acked);
    CU_ASSERT_EQUAL(t_check_reads(o.ml, &t, 0, acked), 0);
    IT_EXPECT(br_mlog_close(o.ml), MQ_OK);
    br_mlog_free(o.ml);
    t_tracker_fini(&t);
    pthread_mutex_destroy(&f.lock);
}

static void test_fini(void)
{
    lc_client_free(lca);
    lc_client_free(lcb);
    mq_executor_free(ex);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"100k appends from 8 threads, batched, read back", test_many_appenders},
        {"rollover by entries; cold reads in O(log n)", test_rollover_and_cold_reads},
        {"reads gather several entries; entries read are kept", test_read_gather},
        {"a linger packs what arrives within it, not after a quiet spell", test_linger},
        {"takeover fences the old owner, nothing acked is lost", test_takeover},
        {"clean close, then a new owner continues", test_clean_handover},
        {"retention 0 deletes closed ledgers", test_trim},
        {"a list changed under its owner fences it", test_list_changed},
        {"a corrupt queue record is refused", test_corrupt_record},
        {"message size limit; free without close", test_too_large},
        {"a write error breaks the log; a new open recovers", test_broken},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("managed log", tests, suite_init, NULL);
}
