/*
 * The cursor store (broker/br_cstore.h) against a real ZooKeeper and five
 * real bookies:
 *  - a new cursor (no znode) opens with nothing to replay; 1000 appends
 *    from 2 threads all succeed, callbacks run in append order, records
 *    pack into fewer entries; after a close, a new open replays the
 *    snapshot and exactly those records in order, switches the znode and
 *    deletes the old ledger; a close snapshot replays last;
 *  - roll while another thread appends: nothing appended during the roll
 *    is lost or reordered, the old ledger is deleted, a reopen replays the
 *    roll's snapshot and what followed it;
 *  - takeover: B opens while A appends; A's appends fail MQ_EFENCED, A is
 *    broken, B replayed every record A had acknowledged, in order;
 *  - a corrupt znode, a corrupt entry, a missing ledger: MQ_ECORRUPT; a
 *    replay error stops the open; the znode changed between read and CAS:
 *    MQ_EBADVERSION; delete removes znode and ledger;
 *  - ledger errors (two bookies of five gone) break the store without a
 *    crash; with the bookies back a new open replays what was acked.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_rec.h"
#include "br_cstore.h"
#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "mq_log.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_ROOT "/ledgermq"
#define T_GROUP "g1"

static it_cluster_t c;
static lc_client_t *lca;
static lc_client_t *lcb;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "cstore") || !it_cluster_start_bookies(&c, 5, NULL)) {
        return 1;
    }
    lca = it_lc_client(&c, 5, 3, 2);
    lcb = it_lc_client(&c, 5, 3, 2);
    return lca && lcb ? 0 : 1;
}

static void t_conf(br_cstore_conf_t *conf, lc_client_t *lc, const char *topic, int queue)
{
    memset(conf, 0, sizeof(*conf));
    conf->lc = lc;
    conf->zk = c.zk;
    conf->root = T_ROOT;
    conf->group = T_GROUP;
    conf->topic = topic;
    conf->queue = queue;
}

static void t_path(const char *topic, int queue, char *out, size_t cap)
{
    snprintf(out, cap, T_ROOT "/cursors/" T_GROUP "/%s/%d", topic, queue);
}

/* The ledger the cursor's znode names (0 when none or undecodable). */
static uint64_t t_znode_ledger(const char *topic, int queue)
{
    char path[256];
    t_path(topic, queue, path, sizeof(path));
    char *data = NULL;
    size_t len = 0;
    if (zk_get(c.zk, path, &data, &len, NULL) != MQ_OK) {
        return 0;
    }
    br_rec_reader_t r;
    uint64_t id = 0;
    if (br_rec_open(&r, data, len, "cursor", NULL, 0) == MQ_OK) {
        const char *s;
        size_t n;
        while (br_rec_next(&r, &s, &n)) {
            size_t kn;
            const char *v;
            size_t vn;
            if (br_rec_kv(s, n, &kn, &v, &vn) && br_rec_key_is(s, kn, "ledger")) {
                br_rec_u64(v, vn, &id);
            }
        }
    }
    free(data);
    return id;
}

static bool t_ledger_exists(uint64_t id)
{
    lc_ledger_t *lh = NULL;
    mq_err_t err = lc_ledger_open(lca, id, &lh);
    lc_ledger_free(lh);
    return err != MQ_ENOLEDGER;
}

/* Record seq: "r<seq>:" then 0..90 bytes derived from seq. */
static size_t t_rec(int64_t seq, uint8_t *buf)
{
    int n = snprintf((char *)buf, 32, "r%lld:", (long long)seq);
    uint64_t s = mq_mix64((uint64_t)seq);
    size_t extra = (size_t)(s % 91);
    for (size_t i = 0; i < extra; i++) {
        buf[(size_t)n + i] = (uint8_t)('a' + (mq_mix64(s + i) % 26));
    }
    return (size_t)n + extra;
}

static bool t_rec_is(int64_t seq, const uint8_t *p, size_t len)
{
    uint8_t want[128];
    size_t n = t_rec(seq, want);
    return n == len && memcmp(want, p, n) == 0;
}

/* --- replay ---------------------------------------------------------------------- */

typedef struct t_replay {
    size_t n;
    size_t cap;
    uint8_t **recs;
    size_t *lens;
    const char *snap; /* what snap_cb hands out */
    mq_err_t fail;    /* replay returns this at record fail_at */
    size_t fail_at;
    /* snap_cb runs between the znode read and its CAS: a hook to change
     * the znode there. */
    void (*on_snap)(void *arg);
    void *on_snap_arg;
} t_replay_t;

static mq_err_t t_replay_cb(const uint8_t *rec, size_t len, void *arg)
{
    t_replay_t *r = arg;
    if (r->fail != MQ_OK && r->n == r->fail_at) {
        return r->fail;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->recs = realloc(r->recs, r->cap * sizeof(*r->recs));
        r->lens = realloc(r->lens, r->cap * sizeof(*r->lens));
    }
    r->recs[r->n] = malloc(len ? len : 1);
    memcpy(r->recs[r->n], rec, len);
    r->lens[r->n] = len;
    r->n++;
    return MQ_OK;
}

static mq_err_t t_snap_cb(const uint8_t **snap, size_t *len, void *arg)
{
    t_replay_t *r = arg;
    if (r->on_snap) {
        r->on_snap(r->on_snap_arg);
    }
    *snap = (const uint8_t *)r->snap;
    *len = strlen(r->snap);
    return MQ_OK;
}

static void t_replay_init(t_replay_t *r, const char *snap)
{
    memset(r, 0, sizeof(*r));
    r->snap = snap;
}

static void t_replay_fini(t_replay_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->recs[i]);
    }
    free(r->recs);
    free(r->lens);
    memset(r, 0, sizeof(*r));
}

static bool t_replay_is(const t_replay_t *r, size_t i, const char *s)
{
    return i < r->n && r->lens[i] == strlen(s) && memcmp(r->recs[i], s, r->lens[i]) == 0;
}

/* The seq of replayed record i ("r<seq>:..."), -1 when it is not one. */
static int64_t t_replay_seq(const t_replay_t *r, size_t i)
{
    if (i >= r->n || r->lens[i] < 3 || r->recs[i][0] != 'r') {
        return -1;
    }
    int64_t seq = 0;
    size_t k = 1;
    while (k < r->lens[i] && r->recs[i][k] >= '0' && r->recs[i][k] <= '9') {
        seq = seq * 10 + (r->recs[i][k] - '0');
        k++;
    }
    if (k == 1 || k == r->lens[i] || r->recs[i][k] != ':') {
        return -1;
    }
    return t_rec_is(seq, r->recs[i], r->lens[i]) ? seq : -1;
}

static br_cstore_t *t_open(lc_client_t *lc, const char *topic, t_replay_t *r, mq_err_t want)
{
    br_cstore_conf_t conf;
    t_conf(&conf, lc, topic, 0);
    br_cstore_t *cs = NULL;
    IT_EXPECT(br_cstore_open(&conf, t_replay_cb, t_snap_cb, r, &cs), want);
    return cs;
}

/* Opens topic's store again and checks that it replays exactly one record,
 * the snapshot want; closes it. */
static void t_reopen_holds(lc_client_t *lc, const char *topic, const char *want)
{
    t_replay_t r;
    t_replay_init(&r, "snap-reopen");
    br_cstore_t *cs = t_open(lc, topic, &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL(r.n, 1);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, want));
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    br_cstore_free(cs);
    t_replay_fini(&r);
}

/* --- appends ----------------------------------------------------------------------- */

#define T_MAX 4096

typedef struct t_app t_app_t;

typedef struct t_slot {
    t_app_t *a;
    int64_t seq;
} t_slot_t;

/* Appends get consecutive seqs under order_lock (the seq order is the
 * append order); callbacks check that they come back in that order. */
struct t_app {
    br_cstore_t *cs;
    pthread_mutex_t order_lock;
    int64_t next_seq;
    pthread_mutex_t lock;
    int64_t done;
    int64_t ok;
    int64_t failed;
    int64_t last_seq;
    int64_t order_bad;
    int64_t ok_after_fail;
    mq_err_t first_err;
    mq_err_t last_err;
    t_slot_t slots[T_MAX];
};

static void t_app_init(t_app_t *a, br_cstore_t *cs)
{
    memset(a, 0, sizeof(*a));
    a->cs = cs;
    pthread_mutex_init(&a->order_lock, NULL);
    pthread_mutex_init(&a->lock, NULL);
    a->last_seq = -1;
    for (int i = 0; i < T_MAX; i++) {
        a->slots[i].a = a;
        a->slots[i].seq = i;
    }
}

static void t_app_fini(t_app_t *a)
{
    pthread_mutex_destroy(&a->order_lock);
    pthread_mutex_destroy(&a->lock);
}

static void t_app_done(mq_err_t err, void *arg)
{
    t_slot_t *sl = arg;
    t_app_t *a = sl->a;
    pthread_mutex_lock(&a->lock);
    if (sl->seq != a->last_seq + 1) {
        a->order_bad++;
    }
    a->last_seq = sl->seq;
    if (err == MQ_OK) {
        a->ok++;
        if (a->failed > 0) {
            a->ok_after_fail++;
        }
    } else {
        if (a->first_err == MQ_OK) {
            a->first_err = err;
        }
        a->last_err = err;
        a->failed++;
    }
    a->done++;
    pthread_mutex_unlock(&a->lock);
}

/* Appends the next record; *seq (may be NULL) gets its seq. */
static mq_err_t t_app_one(t_app_t *a, int64_t *seq)
{
    uint8_t buf[128];
    pthread_mutex_lock(&a->order_lock);
    int64_t s = a->next_seq;
    MQ_ASSERT(s < T_MAX);
    size_t len = t_rec(s, buf);
    mq_err_t err = br_cstore_append(a->cs, buf, len, t_app_done, &a->slots[s]);
    if (err == MQ_OK) {
        a->next_seq++;
    }
    pthread_mutex_unlock(&a->order_lock);
    if (seq) {
        *seq = s;
    }
    return err;
}

static int64_t t_app_issued(t_app_t *a)
{
    pthread_mutex_lock(&a->order_lock);
    int64_t n = a->next_seq;
    pthread_mutex_unlock(&a->order_lock);
    return n;
}

typedef struct t_want {
    t_app_t *a;
    int64_t n;
} t_want_t;

static bool t_done_cond(void *arg)
{
    t_want_t *w = arg;
    pthread_mutex_lock(&w->a->lock);
    bool ok = w->a->done >= w->n;
    pthread_mutex_unlock(&w->a->lock);
    return ok;
}

static bool t_app_wait(t_app_t *a, int64_t n)
{
    t_want_t w = {a, n};
    return mq_test_wait(t_done_cond, &w, 60000);
}

typedef struct t_thread_arg {
    t_app_t *a;
    int count;  /* appends to make; 0: until stop or an append fails */
    int pace;   /* wait for all but this many to be acknowledged (0: no) */
    int errors; /* appends that returned an error */
    volatile int stop;
} t_thread_arg_t;

static void *t_appender(void *arg)
{
    t_thread_arg_t *t = arg;
    for (int i = 0; t->count == 0 || i < t->count; i++) {
        if (t->count == 0 && __atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        int64_t seq;
        if (t_app_one(t->a, &seq) != MQ_OK) {
            t->errors++;
            if (t->count == 0) {
                break;
            }
            continue;
        }
        if (t->pace > 0 && seq >= t->pace) {
            t_want_t w = {t->a, seq + 1 - t->pace};
            if (!mq_test_wait(t_done_cond, &w, 30000)) {
                break;
            }
        }
    }
    return NULL;
}

/* --- tests ------------------------------------------------------------------------- */

static void test_new_and_reopen(void)
{
    char path[256];
    t_path("t1", 0, path, sizeof(path));
    IT_EXPECT(zk_exists(c.zk, path, NULL), MQ_ENOTFOUND);
    t_replay_t r;
    t_replay_init(&r, "snap-1");
    br_cstore_t *cs = t_open(lca, "t1", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL(r.n, 0);
    IT_EXPECT(zk_exists(c.zk, path, NULL), MQ_OK);
    uint64_t l1 = t_znode_ledger("t1", 0);
    CU_ASSERT_TRUE(l1 > 0);
    CU_ASSERT_EQUAL(br_cstore_entries(cs), 1);
    CU_ASSERT_FALSE(br_cstore_broken(cs));

    static t_app_t a;
    t_app_init(&a, cs);
    t_thread_arg_t ta[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&ta[i], 0, sizeof(ta[i]));
        ta[i].a = &a;
        ta[i].count = 500;
        pthread_create(&th[i], NULL, t_appender, &ta[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(ta[i].errors, 0);
    }
    CU_ASSERT_FATAL(t_app_wait(&a, 1000));
    CU_ASSERT_EQUAL(a.ok, 1000);
    CU_ASSERT_EQUAL(a.failed, 0);
    CU_ASSERT_EQUAL(a.order_bad, 0);
    uint64_t entries = br_cstore_entries(cs);
    fprintf(stderr, "\n  1000 records in %llu entries\n", (unsigned long long)entries);
    /* At most two entries in flight: the records pack. */
    CU_ASSERT_TRUE(entries >= 2 && entries < 1001);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    IT_EXPECT(br_cstore_append(cs, "x", 1, t_app_done, &a.slots[T_MAX - 1]), MQ_ECLOSED);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_ECLOSED);
    CU_ASSERT_FALSE(br_cstore_broken(cs));
    br_cstore_free(cs);
    t_app_fini(&a);

    /* Another client reopens: the snapshot, then exactly the records. */
    t_replay_t r2;
    t_replay_init(&r2, "snap-2");
    cs = t_open(lcb, "t1", &r2, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL(r2.n, 1001);
    CU_ASSERT_TRUE(t_replay_is(&r2, 0, "snap-1"));
    int bad = 0;
    for (size_t i = 1; i < r2.n; i++) {
        bad += t_replay_seq(&r2, i) != (int64_t)i - 1;
    }
    CU_ASSERT_EQUAL(bad, 0);
    uint64_t l2 = t_znode_ledger("t1", 0);
    CU_ASSERT_TRUE(l2 > 0 && l2 != l1);
    CU_ASSERT_FALSE(t_ledger_exists(l1));
    CU_ASSERT_TRUE(t_ledger_exists(l2));
    /* A close snapshot is the last thing replayed. */
    IT_EXPECT(br_cstore_close(cs, "final", 5), MQ_OK);
    br_cstore_free(cs);
    t_replay_t r3;
    t_replay_init(&r3, "snap-3");
    cs = t_open(lca, "t1", &r3, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL(r3.n, 2);
    CU_ASSERT_TRUE(t_replay_is(&r3, 0, "snap-2"));
    CU_ASSERT_TRUE(t_replay_is(&r3, 1, "final"));
    CU_ASSERT_FALSE(t_ledger_exists(l2));
    /* Free without close: a new open still finds everything. */
    br_cstore_free(cs);
    t_reopen_holds(lcb, "t1", "snap-3");
    t_replay_fini(&r);
    t_replay_fini(&r2);
    t_replay_fini(&r3);
}

/* A new cursor's store made apart from its first use: exists says there
 * is none, create makes it with the given snapshot, and a second create
 * (another broker) is refused, leaving the first store alone. */
static void test_create(void)
{
    br_cstore_conf_t conf;
    t_conf(&conf, lca, "t1c", 0);
    IT_EXPECT(br_cstore_exists(&conf), MQ_ENOTFOUND);
    br_cstore_t *cs = NULL;
    IT_EXPECT(br_cstore_create(&conf, "snap-c", 6, &cs), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    IT_EXPECT(br_cstore_exists(&conf), MQ_OK);
    uint64_t l1 = t_znode_ledger("t1c", 0);
    br_cstore_conf_t other;
    t_conf(&other, lcb, "t1c", 0);
    br_cstore_t *cs2 = NULL;
    IT_EXPECT(br_cstore_create(&other, "snap-x", 6, &cs2), MQ_EBADVERSION);
    CU_ASSERT_PTR_NULL(cs2);
    CU_ASSERT_EQUAL(t_znode_ledger("t1c", 0), l1);
    CU_ASSERT_FALSE(br_cstore_broken(cs));
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    br_cstore_free(cs);
    /* What a reopen replays: the snapshot create wrote. */
    t_reopen_holds(lcb, "t1c", "snap-c");
}

static void test_roll(void)
{
    t_replay_t r;
    t_replay_init(&r, "snap-0");
    br_cstore_t *cs = t_open(lca, "t2", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    static t_app_t a;
    t_app_init(&a, cs);
    for (int i = 0; i < 100; i++) {
        CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
        CU_ASSERT_FATAL(t_app_wait(&a, i + 1));
    }
    CU_ASSERT_EQUAL(br_cstore_entries(cs), 101);
    uint64_t l1 = t_znode_ledger("t2", 0);
    CU_ASSERT_TRUE(l1 > 0);

    /* Rolls while another thread appends (each waits for all but 4). */
    t_thread_arg_t ta;
    memset(&ta, 0, sizeof(ta));
    ta.a = &a;
    ta.count = 400;
    ta.pace = 4;
    pthread_t th;
    pthread_create(&th, NULL, t_appender, &ta);
    t_want_t w = {&a, 150};
    CU_ASSERT_TRUE(mq_test_wait(t_done_cond, &w, 30000));
    int64_t roll_at = t_app_issued(&a);
    IT_EXPECT(br_cstore_roll(cs, "snap-R", 6), MQ_OK);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(ta.errors, 0);
    CU_ASSERT_FATAL(t_app_wait(&a, 500));
    CU_ASSERT_EQUAL(a.ok, 500);
    CU_ASSERT_EQUAL(a.order_bad, 0);
    uint64_t l2 = t_znode_ledger("t2", 0);
    CU_ASSERT_TRUE(l2 > 0 && l2 != l1);
    CU_ASSERT_FALSE(t_ledger_exists(l1));
    CU_ASSERT_TRUE(br_cstore_entries(cs) >= 2 && br_cstore_entries(cs) < 500);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    br_cstore_free(cs);

    /* The roll's snapshot, then a contiguous run of records that starts no
     * later than the roll did and ends with the last one. */
    t_replay_t r2;
    t_replay_init(&r2, "snap-1");
    cs = t_open(lcb, "t2", &r2, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_TRUE_FATAL(r2.n >= 2);
    CU_ASSERT_TRUE(t_replay_is(&r2, 0, "snap-R"));
    int64_t first = t_replay_seq(&r2, 1);
    fprintf(stderr, "\n  roll at seq %lld, new ledger from seq %lld\n", (long long)roll_at,
            (long long)first);
    CU_ASSERT_TRUE(first >= 150 && first <= roll_at);
    int bad = 0;
    for (size_t i = 1; i < r2.n; i++) {
        bad += t_replay_seq(&r2, i) != first + (int64_t)i - 1;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(t_replay_seq(&r2, r2.n - 1), 499);
    /* A roll of a store with nothing in flight, then appends go on. */
    IT_EXPECT(br_cstore_roll(cs, "snap-S", 6), MQ_OK);
    CU_ASSERT_EQUAL(br_cstore_entries(cs), 1);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    IT_EXPECT(br_cstore_roll(cs, "x", 1), MQ_ECLOSED);
    br_cstore_free(cs);
    t_app_fini(&a);
    t_replay_fini(&r);
    t_replay_fini(&r2);
}

/* The cursor announces a roll when it takes its snapshot: records appended
 * after that and before the roll runs must reach the new ledger, after the
 * snapshot (written to the old ledger, they would be dropped with it). */
static void test_roll_begin(void)
{
    t_replay_t r;
    t_replay_init(&r, "snap-0");
    br_cstore_t *cs = t_open(lca, "t9", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    static t_app_t a;
    t_app_init(&a, cs);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
    }
    CU_ASSERT_FATAL(t_app_wait(&a, 10));
    br_cstore_roll_begin(cs); /* the snapshot "snap-B" covers seqs 0..9 */
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
    }
    IT_EXPECT(br_cstore_roll(cs, "snap-B", 6), MQ_OK);
    CU_ASSERT_FATAL(t_app_wait(&a, 20));
    CU_ASSERT_EQUAL(a.ok, 20);
    /* A roll announced and then overtaken by close: nothing hangs or is
     * lost. */
    br_cstore_roll_begin(cs);
    CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    CU_ASSERT_FATAL(t_app_wait(&a, 21));
    CU_ASSERT_EQUAL(a.ok, 21);
    br_cstore_free(cs);

    t_replay_t r2;
    t_replay_init(&r2, "snap-1");
    cs = t_open(lcb, "t9", &r2, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL_FATAL(r2.n, 12);
    CU_ASSERT_TRUE(t_replay_is(&r2, 0, "snap-B"));
    for (size_t i = 1; i < r2.n; i++) {
        CU_ASSERT_EQUAL(t_replay_seq(&r2, i), 10 + (int64_t)i - 1);
    }
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    br_cstore_free(cs);
    t_app_fini(&a);
    t_replay_fini(&r);
    t_replay_fini(&r2);
}

static bool t_broken_cond(void *arg)
{
    return br_cstore_broken(arg);
}

static void test_takeover(void)
{
    t_replay_t r;
    t_replay_init(&r, "snap-A");
    br_cstore_t *ca = t_open(lca, "t3", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    static t_app_t a;
    t_app_init(&a, ca);
    t_thread_arg_t ta;
    memset(&ta, 0, sizeof(ta));
    ta.a = &a;
    ta.count = 0;
    ta.pace = 8;
    pthread_t th;
    pthread_create(&th, NULL, t_appender, &ta);
    t_want_t w = {&a, 300};
    CU_ASSERT_TRUE(mq_test_wait(t_done_cond, &w, 30000));

    /* B takes over while A appends. */
    t_replay_t rb;
    t_replay_init(&rb, "snap-B");
    br_cstore_t *cb = t_open(lcb, "t3", &rb, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    /* A finds out at its next add. */
    CU_ASSERT_TRUE(mq_test_wait(t_broken_cond, ca, 30000));
    __atomic_store_n(&ta.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    int64_t issued = t_app_issued(&a);
    CU_ASSERT_FATAL(t_app_wait(&a, issued));
    CU_ASSERT_TRUE(br_cstore_broken(ca));
    IT_EXPECT(a.first_err, MQ_EFENCED);
    IT_EXPECT(a.last_err, MQ_EFENCED);
    CU_ASSERT_EQUAL(a.order_bad, 0);
    CU_ASSERT_EQUAL(a.ok_after_fail, 0);
    IT_EXPECT(br_cstore_append(ca, "x", 1, t_app_done, &a.slots[T_MAX - 1]), MQ_EFENCED);
    IT_EXPECT(br_cstore_roll(ca, "x", 1), MQ_EFENCED);

    /* B has every record A acknowledged, in order (maybe more: written
     * but not yet acknowledged when fenced). */
    CU_ASSERT_TRUE_FATAL(rb.n >= 1);
    CU_ASSERT_TRUE(t_replay_is(&rb, 0, "snap-A"));
    int bad = 0;
    for (size_t i = 1; i < rb.n; i++) {
        bad += t_replay_seq(&rb, i) != (int64_t)i - 1;
    }
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr, "\n  A acked %lld of %lld, B replayed %zu\n", (long long)a.ok,
            (long long)issued, rb.n - 1);
    CU_ASSERT_TRUE(a.ok >= 300);
    CU_ASSERT_TRUE((int64_t)rb.n - 1 >= a.ok && (int64_t)rb.n - 1 <= issued);
    CU_ASSERT_FALSE(br_cstore_broken(cb));

    /* A close of the fenced store reports it; B goes on. */
    IT_EXPECT(br_cstore_close(ca, NULL, 0), MQ_EFENCED);
    br_cstore_free(ca);
    t_app_fini(&a);
    static t_app_t b;
    t_app_init(&b, cb);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(t_app_one(&b, NULL), MQ_OK);
    }
    CU_ASSERT_FATAL(t_app_wait(&b, 10));
    CU_ASSERT_EQUAL(b.ok, 10);
    IT_EXPECT(br_cstore_close(cb, NULL, 0), MQ_OK);
    br_cstore_free(cb);
    t_app_fini(&b);
    t_replay_fini(&r);
    t_replay_fini(&rb);
}

static void t_set_znode(const char *topic, const void *data, size_t len)
{
    char path[256];
    t_path(topic, 0, path, sizeof(path));
    mq_err_t err = zk_set(c.zk, path, data, len, -1, NULL);
    if (err == MQ_ENOTFOUND) {
        err = zk_create_parents(c.zk, path, data, len, ZK_PERSISTENT, NULL, 0);
    }
    IT_EXPECT(err, MQ_OK);
}

static void t_set_record(const char *topic, uint64_t ledger)
{
    br_rec_buf_t b;
    br_rec_begin(&b, "cursor");
    br_rec_printf(&b, "ledger=%llu\nctime=1\n", (unsigned long long)ledger);
    size_t len;
    char *rec = br_rec_finish(&b, &len);
    t_set_znode(topic, rec, len);
    free(rec);
}

static void t_touch_znode(void *arg)
{
    const char *topic = arg;
    char path[256];
    t_path(topic, 0, path, sizeof(path));
    char *data = NULL;
    size_t len = 0;
    if (zk_get(c.zk, path, &data, &len, NULL) == MQ_OK) {
        IT_EXPECT(zk_set(c.zk, path, data, len, -1, NULL), MQ_OK);
        free(data);
    } else {
        t_set_record(topic, 1);
    }
}

static void test_corrupt(void)
{
    t_replay_t r;
    t_replay_init(&r, "snap");
    /* Garbage, a flipped byte, an unknown key. */
    t_set_znode("c1", "garbage\n", 8);
    CU_ASSERT_PTR_NULL(t_open(lca, "c1", &r, MQ_ECORRUPT));
    br_rec_buf_t b;
    br_rec_begin(&b, "cursor");
    br_rec_printf(&b, "ledger=5\nctime=1\n");
    size_t len;
    char *rec = br_rec_finish(&b, &len);
    strstr(rec, "ledger=5")[7] = '6';
    t_set_znode("c1", rec, len);
    free(rec);
    CU_ASSERT_PTR_NULL(t_open(lca, "c1", &r, MQ_ECORRUPT));
    br_rec_begin(&b, "cursor");
    br_rec_printf(&b, "ledger=5\nctime=1\nmore=1\n");
    rec = br_rec_finish(&b, &len);
    t_set_znode("c1", rec, len);
    free(rec);
    CU_ASSERT_PTR_NULL(t_open(lca, "c1", &r, MQ_ECORRUPT));

    /* A ledger that does not exist. */
    t_set_record("c2", 999999999);
    CU_ASSERT_PTR_NULL(t_open(lca, "c2", &r, MQ_ECORRUPT));

    /* Entry framing: a record longer than its entry; an empty ledger. */
    lc_ledger_t *lh = NULL;
    IT_EXPECT(lc_ledger_create(lca, NULL, &lh), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lh);
    uint8_t ok[6] = {2, 0, 0, 0, 'o', 'k'};
    uint8_t bad[5] = {0xff, 0xff, 0xff, 0x7f, 'x'};
    IT_EXPECT(lc_ledger_add(lh, ok, sizeof(ok), NULL), MQ_OK);
    IT_EXPECT(lc_ledger_add(lh, bad, sizeof(bad), NULL), MQ_OK);
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    t_set_record("c3", lc_ledger_id(lh));
    lc_ledger_free(lh);
    CU_ASSERT_PTR_NULL(t_open(lca, "c3", &r, MQ_ECORRUPT));
    CU_ASSERT_EQUAL(r.n, 1);
    t_replay_fini(&r);
    t_replay_init(&r, "snap");
    IT_EXPECT(lc_ledger_create(lca, NULL, &lh), MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lh);
    t_set_record("c4", lc_ledger_id(lh));
    lc_ledger_free(lh);
    CU_ASSERT_PTR_NULL(t_open(lca, "c4", &r, MQ_ECORRUPT));

    /* A replay error stops the open with it; the cursor is unchanged. */
    br_cstore_t *cs = t_open(lca, "c5", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    IT_EXPECT(br_cstore_close(cs, "last", 4), MQ_OK);
    br_cstore_free(cs);
    uint64_t l5 = t_znode_ledger("c5", 0);
    t_replay_t rf;
    t_replay_init(&rf, "snap");
    rf.fail = MQ_EINVAL;
    rf.fail_at = 1;
    CU_ASSERT_PTR_NULL(t_open(lca, "c5", &rf, MQ_EINVAL));
    CU_ASSERT_EQUAL(t_znode_ledger("c5", 0), l5);
    t_replay_fini(&rf);

    /* The znode changes between the read and the CAS: the open lost. */
    t_replay_init(&rf, "snap");
    rf.on_snap = t_touch_znode;
    rf.on_snap_arg = "c5";
    CU_ASSERT_PTR_NULL(t_open(lcb, "c5", &rf, MQ_EBADVERSION));
    t_replay_fini(&rf);
    /* A new cursor whose znode someone else creates meanwhile. */
    t_replay_init(&rf, "snap");
    rf.on_snap = t_touch_znode;
    rf.on_snap_arg = "c6";
    CU_ASSERT_PTR_NULL(t_open(lcb, "c6", &rf, MQ_EBADVERSION));
    t_replay_fini(&rf);

    /* The record is still good after all that: open it, then delete. */
    t_replay_init(&rf, "snap");
    cs = t_open(lcb, "c5", &rf, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    CU_ASSERT_EQUAL(rf.n, 2);
    CU_ASSERT_TRUE(t_replay_is(&rf, 1, "last"));
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_OK);
    br_cstore_free(cs);
    t_replay_fini(&rf);
    uint64_t cur = t_znode_ledger("c5", 0);
    CU_ASSERT_TRUE(cur > 0 && t_ledger_exists(cur));
    br_cstore_conf_t conf;
    t_conf(&conf, lca, "c5", 0);
    IT_EXPECT(br_cstore_delete(&conf), MQ_OK);
    char path[256];
    t_path("c5", 0, path, sizeof(path));
    IT_EXPECT(zk_exists(c.zk, path, NULL), MQ_ENOTFOUND);
    CU_ASSERT_FALSE(t_ledger_exists(cur));
    IT_EXPECT(br_cstore_delete(&conf), MQ_OK);
    /* Bad names. */
    conf.topic = "a/b";
    IT_EXPECT(br_cstore_delete(&conf), MQ_EINVAL);
    t_replay_fini(&r);
}

typedef struct t_try_open {
    t_replay_t *r;
    br_cstore_t *cs;
    mq_err_t err;
} t_try_open_t;

static bool t_try_open(void *arg)
{
    t_try_open_t *o = arg;
    br_cstore_conf_t conf;
    t_conf(&conf, lcb, "t6", 0);
    t_replay_fini(o->r);
    t_replay_init(o->r, "snap-2");
    o->err = br_cstore_open(&conf, t_replay_cb, t_snap_cb, o->r, &o->cs);
    return o->err == MQ_OK;
}

static bool t_failed_cond(void *arg)
{
    t_app_t *a = arg;
    pthread_mutex_lock(&a->lock);
    bool f = a->failed > 0;
    pthread_mutex_unlock(&a->lock);
    return f;
}

/* Whether lca's view of the bookies has dropped the killed one: a ledger
 * of five cannot be created any more (one that can is deleted again). */
static bool t_no_ensemble_cond(void *arg)
{
    (void)arg;
    lc_ledger_t *lh = NULL;
    mq_err_t err = lc_ledger_create(lca, NULL, &lh);
    if (err == MQ_OK) {
        uint64_t id = lc_ledger_id(lh);
        lc_ledger_free(lh);
        lc_ledger_delete(lca, id);
    }
    return err == MQ_ENOTENOUGHBOOKIES;
}

static void test_ledger_errors(void)
{
    t_replay_t r;
    t_replay_init(&r, "snap-1");
    br_cstore_t *cs = t_open(lca, "t6", &r, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
    static t_app_t a;
    t_app_init(&a, cs);
    for (int i = 0; i < 50; i++) {
        CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
    }
    CU_ASSERT_FATAL(t_app_wait(&a, 50));
    CU_ASSERT_EQUAL(a.ok, 50);
    /* One bookie of five gone (and unregistered): writes go on (every
     * write set keeps two copies), but no new ledger of five can be made,
     * so a roll fails and the store keeps its ledger. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGKILL), 128 + SIGKILL);
    char reg[256];
    it_bookie_reg_path(&c, 0, "available", reg, sizeof(reg));
    CU_ASSERT_FATAL(it_zk_wait_exists(&c, reg, false, 30000));
    /* The client learns it through a watch, a little later. */
    CU_ASSERT_FATAL(mq_test_wait(t_no_ensemble_cond, NULL, 30000));
    uint64_t entries = br_cstore_entries(cs);
    IT_EXPECT(br_cstore_roll(cs, "snap-X", 6), MQ_ENOTENOUGHBOOKIES);
    CU_ASSERT_FALSE(br_cstore_broken(cs));
    CU_ASSERT_EQUAL(br_cstore_entries(cs), entries);
    for (int i = 50; i < 60; i++) {
        CU_ASSERT_EQUAL_FATAL(t_app_one(&a, NULL), MQ_OK);
    }
    CU_ASSERT_FATAL(t_app_wait(&a, 60));
    CU_ASSERT_EQUAL(a.ok, 60);
    CU_ASSERT_EQUAL(a.order_bad, 0);
    /* A second one gone: some write set keeps one copy, below the ack
     * quorum, and there is no spare. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 1, SIGKILL), 128 + SIGKILL);
    int64_t n = 60;
    while (!t_failed_cond(&a) && n < 1000) {
        if (t_app_one(&a, NULL) != MQ_OK) {
            break;
        }
        n++;
        CU_ASSERT_FATAL(t_app_wait(&a, n));
    }
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t_failed_cond, &a, 30000));
    int64_t issued = t_app_issued(&a);
    CU_ASSERT_FATAL(t_app_wait(&a, issued));
    IT_EXPECT(a.first_err, MQ_ENOTENOUGHBOOKIES);
    CU_ASSERT_EQUAL(a.ok_after_fail, 0);
    CU_ASSERT_TRUE(br_cstore_broken(cs));
    IT_EXPECT(br_cstore_append(cs, "x", 1, t_app_done, &a.slots[T_MAX - 1]), MQ_ENOTENOUGHBOOKIES);
    IT_EXPECT(br_cstore_roll(cs, "x", 1), MQ_ENOTENOUGHBOOKIES);
    IT_EXPECT(br_cstore_close(cs, NULL, 0), MQ_ENOTENOUGHBOOKIES);
    br_cstore_free(cs);
    int64_t acked = a.ok;
    CU_ASSERT_TRUE(acked >= 60);

    /* Three bookies cannot hold a new ledger of five: the open fails
     * cleanly (at the recovery or at the create). */
    t_replay_t r2;
    t_replay_init(&r2, "snap-2");
    br_cstore_conf_t conf;
    t_conf(&conf, lcb, "t6", 0);
    br_cstore_t *cs2 = NULL;
    mq_err_t err = br_cstore_open(&conf, t_replay_cb, t_snap_cb, &r2, &cs2);
    CU_ASSERT_NOT_EQUAL(err, MQ_OK);
    CU_ASSERT_PTR_NULL(cs2);
    if (cs2) {
        br_cstore_free(cs2);
    }

    /* The bookies come back: a new open replays everything acked. */
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_FATAL(it_bookie_start(&c, 1));
    t_try_open_t o = {&r2, NULL, MQ_OK};
    CU_ASSERT_TRUE(mq_test_wait(t_try_open, &o, 30000));
    IT_EXPECT(o.err, MQ_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o.cs);
    CU_ASSERT_TRUE(t_replay_is(&r2, 0, "snap-1"));
    CU_ASSERT_TRUE((int64_t)r2.n - 1 >= acked);
    int bad = 0;
    for (size_t i = 1; i < r2.n; i++) {
        bad += t_replay_seq(&r2, i) != (int64_t)i - 1;
    }
    CU_ASSERT_EQUAL(bad, 0);
    IT_EXPECT(br_cstore_close(o.cs, NULL, 0), MQ_OK);
    br_cstore_free(o.cs);
    t_app_fini(&a);
    t_replay_fini(&r);
    t_replay_fini(&r2);
}

static void test_fini(void)
{
    lc_client_free(lca);
    lc_client_free(lcb);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"new cursor, 1000 appends from 2 threads, reopen replays", test_new_and_reopen},
        {"a new cursor's store is created apart; a second create is refused", test_create},
        {"roll while appending keeps every later record", test_roll},
        {"records after the snapshot of an announced roll are kept", test_roll_begin},
        {"takeover fences the old owner, nothing acked is lost", test_takeover},
        {"corrupt records and entries, lost CAS, delete", test_corrupt},
        {"ledger errors break the store; a new open recovers", test_ledger_errors},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("cursor store", tests, suite_init, NULL);
}
