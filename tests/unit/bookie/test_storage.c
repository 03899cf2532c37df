/*
 * bk_storage (and its write cache): adds readable at once and without a
 * copy; a checkpoint moves them to the entry log and the index and persists
 * the mark and the ledger records; a reopen finds exactly what was
 * checkpointed; ranges merge caches and index; garbled lastMark files are
 * ignored; and readers racing checkpoints never miss an entry added before
 * their read began.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bk_storage.h"
#include "bk_writecache.h"
#include "mq_fs.h"
#include "mq_test.h"
#include "mq_util.h"

static size_t t_len(uint64_t ledger, int64_t entry)
{
    return 40 + (size_t)(mq_mix64(ledger * 7919 + (uint64_t)entry) % 500);
}

static mq_slice_t t_entry(uint64_t ledger, int64_t entry)
{
    size_t len = t_len(ledger, entry);
    mq_buf_t *b = mq_buf_new(len);
    b->len = len;
    mq_put_be64(b->data, ledger);
    mq_put_be64(b->data + 8, (uint64_t)entry);
    for (size_t i = 16; i < len; i++) {
        b->data[i] = (uint8_t)(ledger + (uint64_t)entry * 13 + i);
    }
    mq_slice_t s = mq_slice_of(b, 0, len);
    mq_buf_unref(b);
    return s;
}

static bool t_entry_ok(const mq_slice_t *s, uint64_t ledger, int64_t entry)
{
    mq_slice_t want = t_entry(ledger, entry);
    bool ok = s->len == want.len && memcmp(s->ptr, want.ptr, want.len) == 0;
    mq_slice_release(&want);
    return ok;
}

static void t_add(bk_storage_t *st, uint64_t ledger, int64_t entry)
{
    mq_slice_t s = t_entry(ledger, entry);
    bk_storage_add(st, ledger, entry, &s);
    mq_slice_release(&s);
}

typedef struct t_env {
    char *root;
    char d0[PATH_MAX];
    char d1[PATH_MAX];
    const char *dirs[2];
    bk_storage_opts_t opts;
} t_env_t;

static void t_env_init(t_env_t *env, uint64_t log_limit)
{
    memset(env, 0, sizeof(*env));
    env->root = mq_strdup(mq_test_tmpdir("storage"));
    snprintf(env->d0, sizeof(env->d0), "%s/l0", env->root);
    snprintf(env->d1, sizeof(env->d1), "%s/l1", env->root);
    env->dirs[0] = env->d0;
    env->dirs[1] = env->d1;
    env->opts.ledger_dirs = env->dirs;
    env->opts.nledger_dirs = 2;
    env->opts.entry_log_size_limit = log_limit;
    env->opts.index_cache_bytes = 4 << 20;
}

static void t_env_fini(t_env_t *env)
{
    mq_fs_remove_tree(env->root);
    free(env->root);
}

/* --- write cache ---------------------------------------------------------------- */

typedef struct t_walk {
    uint64_t ledger;
    int64_t entry;
    size_t n;
    int disorder;
} t_walk_t;

static mq_err_t t_walk_cb(uint64_t ledger_id, int64_t entry_id, const mq_slice_t *bytes, void *arg)
{
    t_walk_t *w = arg;
    if (w->n > 0 && (ledger_id < w->ledger || (ledger_id == w->ledger && entry_id <= w->entry))) {
        w->disorder++;
    }
    if (!t_entry_ok(bytes, ledger_id, entry_id)) {
        w->disorder++;
    }
    w->ledger = ledger_id;
    w->entry = entry_id;
    w->n++;
    return MQ_OK;
}

static void test_writecache(void)
{
    bk_writecache_t *wc = bk_writecache_new(0);
    size_t bytes = 0;
    /* 20000 entries over 300 ledgers, added out of order: several rehashes. */
    for (int64_t e = 199; e >= 0; e -= 2) {
        for (uint64_t l = 0; l < 300; l += 3) {
            mq_slice_t s = t_entry(l, e);
            bk_writecache_put(wc, l, e, &s);
            bytes += s.len;
            mq_slice_release(&s);
        }
    }
    for (int64_t e = 0; e < 200; e += 2) {
        for (uint64_t l = 0; l < 300; l += 3) {
            mq_slice_t s = t_entry(l, e);
            bk_writecache_put(wc, l, e, &s);
            bytes += s.len;
            mq_slice_release(&s);
        }
    }
    CU_ASSERT_EQUAL(bk_writecache_count(wc), 20000);
    CU_ASSERT_EQUAL(bk_writecache_bytes(wc), bytes);
    CU_ASSERT_EQUAL(bk_writecache_last_entry(wc, 3), 199);
    CU_ASSERT_EQUAL(bk_writecache_last_entry(wc, 4), -1);
    mq_slice_t got = {0};
    CU_ASSERT_TRUE(bk_writecache_get(wc, 297, 150, &got));
    CU_ASSERT_TRUE(t_entry_ok(&got, 297, 150));
    mq_slice_release(&got);
    CU_ASSERT_FALSE(bk_writecache_get(wc, 297, 200, &got));
    CU_ASSERT_FALSE(bk_writecache_get(wc, 298, 1, &got));

    /* Replacing keeps the count and takes the new bytes. */
    mq_slice_t repl = t_entry(900, 1);
    bk_writecache_put(wc, 3, 7, &repl);
    CU_ASSERT_EQUAL(bk_writecache_count(wc), 20000);
    CU_ASSERT_EQUAL(bk_writecache_bytes(wc), bytes - t_len(3, 7) + repl.len);
    CU_ASSERT_TRUE(bk_writecache_get(wc, 3, 7, &got));
    CU_ASSERT_PTR_EQUAL(got.ptr, repl.ptr); /* no copy */
    mq_slice_release(&got);
    mq_slice_t back = t_entry(3, 7);
    bk_writecache_put(wc, 3, 7, &back);
    mq_slice_release(&back);
    mq_slice_release(&repl);

    int64_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    bk_writecache_ledger_entries(wc, 42, &ids, &n, &cap);
    CU_ASSERT_EQUAL(n, 200);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += ids[i];
    }
    CU_ASSERT_EQUAL(sum, 199 * 200 / 2);
    free(ids);

    t_walk_t w = {0, 0, 0, 0};
    CU_ASSERT_EQUAL(bk_writecache_foreach_sorted(wc, t_walk_cb, &w), MQ_OK);
    CU_ASSERT_EQUAL(w.n, 20000);
    CU_ASSERT_EQUAL(w.disorder, 0);

    /* Absorb: only what the destination lacks. */
    bk_writecache_t *dst = bk_writecache_new(10);
    mq_slice_t mine = t_entry(900, 2);
    bk_writecache_put(dst, 0, 0, &mine);
    bk_writecache_absorb(dst, wc);
    CU_ASSERT_EQUAL(bk_writecache_count(dst), 20000);
    CU_ASSERT_TRUE(bk_writecache_get(dst, 0, 0, &got));
    CU_ASSERT_PTR_EQUAL(got.ptr, mine.ptr);
    mq_slice_release(&got);
    mq_slice_release(&mine);
    bk_writecache_free(dst);
    bk_writecache_free(wc);
}

/* --- storage ------------------------------------------------------------------------ */

static void t_ledger_cb(uint64_t ledger_id, const bk_ledger_rec_t *rec, void *arg)
{
    int *n = arg;
    if (ledger_id == 11 && rec->fenced && rec->lac == 41 && rec->master_key_len == 3 &&
        memcmp(rec->master_key, "key", 3) == 0) {
        (*n)++;
    } else {
        *n += 100;
    }
}

static void test_add_checkpoint_reopen(void)
{
    t_env_t env;
    t_env_init(&env, 1u << 20);
    bk_storage_t *st;
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
    bk_journal_pos_t m0 = bk_storage_mark(st);
    CU_ASSERT_TRUE(m0.file_id == 0 && m0.offset == 0);

    for (uint64_t l = 10; l < 13; l++) {
        for (int64_t e = 0; e < 50; e++) {
            t_add(st, l, e);
        }
    }
    mq_slice_t s = {0};
    mq_slice_t orig = t_entry(11, 7);
    bk_storage_add(st, 11, 7, &orig);
    CU_ASSERT_EQUAL(bk_storage_get(st, 11, 7, &s), MQ_OK);
    CU_ASSERT_PTR_EQUAL(s.ptr, orig.ptr); /* straight from the cache */
    mq_slice_release(&s);
    mq_slice_release(&orig);
    CU_ASSERT_TRUE(bk_storage_cache_bytes(st) > 0);
    CU_ASSERT_EQUAL(bk_storage_last_entry(st, 12), 49);
    CU_ASSERT_EQUAL(bk_storage_get(st, 12, -1, &s), MQ_OK);
    CU_ASSERT_TRUE(t_entry_ok(&s, 12, 49));
    mq_slice_release(&s);
    CU_ASSERT_EQUAL(bk_storage_get(st, 12, 50, &s), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(bk_storage_get(st, 99, -1, &s), MQ_ENOENTRY);

    bk_ledger_update_t up = {11, {true, 3, "key", 41}};
    bk_journal_pos_t m1 = {0x100, 8192};
    CU_ASSERT_EQUAL(bk_storage_checkpoint(st, m1, &up, 1), MQ_OK);
    CU_ASSERT_EQUAL(bk_storage_cache_bytes(st), 0);
    CU_ASSERT_EQUAL(bk_journal_pos_cmp(bk_storage_mark(st), m1), 0);
    bk_storage_stats_t stats;
    bk_storage_get_stats(st, &stats);
    CU_ASSERT_EQUAL(stats.checkpoints, 1);
    CU_ASSERT_EQUAL(stats.entries_flushed, 150);
    uint64_t reads0 = stats.entrylog_reads;
    int bad = 0;
    for (uint64_t l = 10; l < 13; l++) {
        for (int64_t e = 0; e < 50; e++) {
            if (bk_storage_get(st, l, e, &s) != MQ_OK || !t_entry_ok(&s, l, e)) {
                bad++;
            }
            mq_slice_release(&s);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    bk_storage_get_stats(st, &stats);
    CU_ASSERT_EQUAL(stats.entrylog_reads, reads0 + 150);

    /* Added after the last checkpoint: the journal's job after a restart. */
    t_add(st, 10, 50);
    t_add(st, 20, 0);
    CU_ASSERT_EQUAL(bk_storage_last_entry(st, 10), 50);
    /* An older mark never moves the persisted one back. */
    CU_ASSERT_EQUAL(bk_storage_checkpoint(st, (bk_journal_pos_t){0x0ff, 0}, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(bk_journal_pos_cmp(bk_storage_mark(st), m1), 0);
    t_add(st, 10, 51);
    t_add(st, 21, 0);
    bk_storage_close(st);

    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
    CU_ASSERT_EQUAL(bk_journal_pos_cmp(bk_storage_mark(st), m1), 0);
    bad = 0;
    for (uint64_t l = 10; l < 13; l++) {
        for (int64_t e = 0; e < 50; e++) {
            if (bk_storage_get(st, l, e, &s) != MQ_OK || !t_entry_ok(&s, l, e)) {
                bad++;
            }
            mq_slice_release(&s);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bk_storage_get(st, 10, 50, &s), MQ_OK);
    mq_slice_release(&s);
    CU_ASSERT_EQUAL(bk_storage_get(st, 20, 0, &s), MQ_OK);
    mq_slice_release(&s);
    CU_ASSERT_EQUAL(bk_storage_get(st, 10, 51, &s), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(bk_storage_get(st, 21, 0, &s), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(bk_storage_last_entry(st, 10), 50);
    CU_ASSERT_EQUAL(bk_storage_last_entry(st, 21), -1);
    int n = 0;
    CU_ASSERT_EQUAL(bk_storage_foreach_ledger(st, t_ledger_cb, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 1);
    bk_storage_close(st);

    /* lastMark: the highest of all dirs wins; a garbled one is ignored. */
    char p0[PATH_MAX + 32];
    char p1[PATH_MAX + 32];
    snprintf(p0, sizeof(p0), "%s/current/lastMark", env.d0);
    snprintf(p1, sizeof(p1), "%s/current/lastMark", env.d1);
    uint8_t mark[16];
    mq_put_le64(mark, 0x200);
    mq_put_le64(mark + 8, 512);
    CU_ASSERT_EQUAL(mq_fs_write_atomic(p1, mark, sizeof(mark)), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
    bk_journal_pos_t m2 = bk_storage_mark(st);
    CU_ASSERT_TRUE(m2.file_id == 0x200 && m2.offset == 512);
    bk_storage_close(st);
    CU_ASSERT_EQUAL(mq_fs_write_atomic(p1, "garbled", 7), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
    CU_ASSERT_EQUAL(bk_journal_pos_cmp(bk_storage_mark(st), m1), 0);
    bk_storage_close(st);
    t_env_fini(&env);
}

static void test_ranges(void)
{
    t_env_t env;
    t_env_init(&env, 64u << 10);
    bk_storage_t *st;
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
    int64_t *pairs = NULL;
    size_t count = 9;
    CU_ASSERT_EQUAL(bk_storage_entry_ranges(st, 5, &pairs, &count), MQ_OK);
    CU_ASSERT_EQUAL(count, 0);
    free(pairs);

    /* In the index: 0, 1, 2, 7, 12; in the cache: 3, 4, 9, 10, 2 again. */
    int64_t indexed[] = {0, 1, 2, 7, 12};
    int64_t cached[] = {3, 4, 9, 10, 2};
    for (size_t i = 0; i < MQ_ARRAY_LEN(indexed); i++) {
        t_add(st, 5, indexed[i]);
        t_add(st, 6, indexed[i]);
    }
    CU_ASSERT_EQUAL(bk_storage_checkpoint(st, (bk_journal_pos_t){1, 512}, NULL, 0), MQ_OK);
    for (size_t i = 0; i < MQ_ARRAY_LEN(cached); i++) {
        t_add(st, 5, cached[i]);
    }
    int64_t want[] = {0, 4, 7, 7, 9, 10, 12, 12};
    for (int round = 0; round < 2; round++) {
        pairs = NULL;
        CU_ASSERT_EQUAL(bk_storage_entry_ranges(st, 5, &pairs, &count), MQ_OK);
        CU_ASSERT_EQUAL(count, 4);
        if (count == 4) {
            CU_ASSERT_EQUAL(memcmp(pairs, want, sizeof(want)), 0);
        }
        free(pairs);
        CU_ASSERT_EQUAL(bk_storage_last_entry(st, 5), 12);
        mq_slice_t s = {0};
        CU_ASSERT_EQUAL(bk_storage_get(st, 5, -1, &s), MQ_OK);
        CU_ASSERT_TRUE(t_entry_ok(&s, 5, 12));
        mq_slice_release(&s);
        /* The second round reads everything from the index. */
        CU_ASSERT_EQUAL(bk_storage_checkpoint(st, (bk_journal_pos_t){1, 1024}, NULL, 0), MQ_OK);
    }
    CU_ASSERT_EQUAL(bk_storage_entry_ranges(st, 6, &pairs, &count), MQ_OK);
    CU_ASSERT_EQUAL(count, 3);
    free(pairs);
    bk_storage_close(st);
    t_env_fini(&env);
}

/* --- paced checkpoints ---------------------------------------------------------------- */

/* Adds entries to ledger until about bytes more are cached; next entry id. */
static int64_t t_fill(bk_storage_t *st, uint64_t ledger, int64_t from, size_t bytes)
{
    size_t added = 0;
    int64_t e = from;
    for (; added < bytes; e++) {
        t_add(st, ledger, e);
        added += t_len(ledger, e);
    }
    return e;
}

typedef struct t_pace {
    bk_storage_t *st;
    atomic_bool started;
    atomic_bool done;
    mq_err_t err;
} t_pace_t;

static void *t_pace_main(void *arg)
{
    t_pace_t *p = arg;
    atomic_store(&p->started, true);
    p->err = bk_storage_checkpoint(p->st, (bk_journal_pos_t){2, 512}, NULL, 0);
    atomic_store(&p->done, true);
    return NULL;
}

static bool t_pace_done(void *arg)
{
    return atomic_load(&((t_pace_t *)arg)->done);
}

static bool t_pace_started(void *arg)
{
    return atomic_load(&((t_pace_t *)arg)->started);
}

/* A paced checkpoint spreads its entry-log writes over bytes / pace; it
 * goes flat out once adds outrun it (the cache never fills up behind it)
 * and once told to (a stop); every entry stays readable throughout. */
static void test_paced_checkpoint(void)
{
    t_env_t env;
    t_env_init(&env, 64u << 20);
    bk_storage_t *st;
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);

    /* 4 MiB at 4 MiB/s: three quarters of a second at least (a pause after
     * each MiB written, the last one after the third). */
    int64_t n1 = t_fill(st, 9, 0, 4u << 20);
    bk_storage_pace_next(st, 4u << 20);
    uint64_t t0 = mq_now_ns();
    CU_ASSERT_EQUAL(bk_storage_checkpoint(st, (bk_journal_pos_t){1, 512}, NULL, 0), MQ_OK);
    double secs = (double)(mq_now_ns() - t0) / 1e9;
    CU_ASSERT_TRUE(secs >= 0.7);
    CU_ASSERT_EQUAL(bk_storage_cache_bytes(st), 0);

    /* 4 MiB at 64 KiB/s would take a minute; adds that outrun it (more in
     * the active cache than half the one being flushed) end the pacing. */
    int64_t n2 = t_fill(st, 9, n1, 4u << 20);
    size_t total = bk_storage_cache_bytes(st);
    bk_storage_pace_next(st, 64u << 10);
    t_pace_t p = {.st = st};
    pthread_t tid;
    pthread_create(&tid, NULL, t_pace_main, &p);
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t_pace_started, &p, 10000));
    /* The flush's bytes again (the first few adds may still join the
     * flush): done well before the minute. */
    int64_t e = n2;
    while (!atomic_load(&p.done) && bk_storage_cache_bytes(st) < 2 * total) {
        e = t_fill(st, 9, e, 64u << 10);
    }
    CU_ASSERT_TRUE(mq_test_wait(t_pace_done, &p, 30000));
    pthread_join(tid, NULL);
    CU_ASSERT_EQUAL(p.err, MQ_OK);

    /* A stop (pace 0 from another thread) ends the pacing too. */
    bk_storage_pace_next(st, 64u << 10);
    t_pace_t q = {.st = st};
    pthread_create(&tid, NULL, t_pace_main, &q);
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t_pace_started, &q, 10000));
    bk_storage_pace_next(st, 0);
    CU_ASSERT_TRUE(mq_test_wait(t_pace_done, &q, 30000));
    pthread_join(tid, NULL);
    CU_ASSERT_EQUAL(q.err, MQ_OK);

    /* Everything reads back. */
    int64_t bad = 0;
    for (int64_t i = 0; i < e; i++) {
        mq_slice_t s = {0};
        bad += bk_storage_get(st, 9, i, &s) != MQ_OK || !t_entry_ok(&s, 9, i);
        mq_slice_release(&s);
    }
    CU_ASSERT_EQUAL(bad, 0);
    bk_storage_close(st);
    t_env_fini(&env);
}

/* --- readers racing checkpoints ------------------------------------------------------- */

#define T_RACE_LEDGERS 4
#define T_RACE_ENTRIES 6000
#define T_READERS 3

typedef struct t_race {
    bk_storage_t *st;
    atomic_int_fast64_t added; /* entries 0..added-1 of every ledger are in */
    atomic_bool done;
    atomic_int misses;
    atomic_int wrong;
    atomic_int low_last;
    atomic_int reads;
    atomic_int checkpoints;
} t_race_t;

static void *t_race_adder(void *arg)
{
    t_race_t *r = arg;
    int seen = 0;
    for (int64_t e = 0; e < T_RACE_ENTRIES; e++) {
        for (uint64_t l = 1; l <= T_RACE_LEDGERS; l++) {
            t_add(r->st, l, e);
        }
        atomic_store(&r->added, e + 1);
        if (e % 200 == 199) {
            /* Let a checkpoint finish every 200 entries, so that adds,
             * reads and checkpoints interleave throughout. */
            while (atomic_load(&r->checkpoints) == seen) {
                sched_yield();
            }
            seen = atomic_load(&r->checkpoints);
        }
    }
    atomic_store(&r->done, true);
    return NULL;
}

static void *t_race_reader(void *arg)
{
    t_race_t *r = arg;
    uint64_t seed = (uint64_t)(uintptr_t)&seed;
    while (!atomic_load(&r->done)) {
        int64_t n = atomic_load(&r->added);
        if (n == 0) {
            continue;
        }
        seed = mq_mix64(seed);
        uint64_t l = 1 + seed % T_RACE_LEDGERS;
        /* Half the reads go to the newest entries, where the caches turn
         * over; the rest anywhere. */
        int64_t e = (seed >> 8) % 2 ? n - 1 - (int64_t)((seed >> 16) % 8)
                                    : (int64_t)((seed >> 16) % (uint64_t)n);
        e = MQ_MAX(e, 0);
        mq_slice_t s = {0};
        mq_err_t err = bk_storage_get(r->st, l, e, &s);
        if (err != MQ_OK) {
            atomic_fetch_add(&r->misses, 1);
        } else {
            if (!t_entry_ok(&s, l, e)) {
                atomic_fetch_add(&r->wrong, 1);
            }
            mq_slice_release(&s);
        }
        if (bk_storage_last_entry(r->st, l) < n - 1) {
            atomic_fetch_add(&r->low_last, 1);
        }
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_readers_during_checkpoints(void)
{
    t_env_t env;
    t_env_init(&env, 256u << 10);
    t_race_t r;
    memset(&r, 0, sizeof(r));
    atomic_init(&r.added, 0);
    atomic_init(&r.done, false);
    CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &r.st), MQ_OK);
    pthread_t adder;
    pthread_t readers[T_READERS];
    pthread_create(&adder, NULL, t_race_adder, &r);
    for (int i = 0; i < T_READERS; i++) {
        pthread_create(&readers[i], NULL, t_race_reader, &r);
    }
    int checkpoints = 0;
    uint64_t off = 512;
    while (!atomic_load(&r.done)) {
        CU_ASSERT_EQUAL(bk_storage_checkpoint(r.st, (bk_journal_pos_t){7, off}, NULL, 0), MQ_OK);
        off += 512;
        checkpoints++;
        atomic_fetch_add(&r.checkpoints, 1);
    }
    pthread_join(adder, NULL);
    for (int i = 0; i < T_READERS; i++) {
        pthread_join(readers[i], NULL);
    }
    CU_ASSERT_EQUAL(bk_storage_checkpoint(r.st, (bk_journal_pos_t){7, off}, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(checkpoints >= T_RACE_ENTRIES / 200);
    CU_ASSERT_TRUE(atomic_load(&r.reads) > 0);
    CU_ASSERT_EQUAL(atomic_load(&r.misses), 0);
    CU_ASSERT_EQUAL(atomic_load(&r.wrong), 0);
    CU_ASSERT_EQUAL(atomic_load(&r.low_last), 0);
    bk_storage_stats_t stats;
    bk_storage_get_stats(r.st, &stats);
    CU_ASSERT_EQUAL(stats.entries_flushed, T_RACE_LEDGERS * T_RACE_ENTRIES);
    int64_t *pairs = NULL;
    size_t count = 0;
    CU_ASSERT_EQUAL(bk_storage_entry_ranges(r.st, 2, &pairs, &count), MQ_OK);
    CU_ASSERT_TRUE(count == 1 && pairs[0] == 0 && pairs[1] == T_RACE_ENTRIES - 1);
    free(pairs);
    bk_storage_close(r.st);
    t_env_fini(&env);
}

/* --- kill -9 during checkpoints ---------------------------------------------------- */

/* Child (a fresh process: see main): adds entries 0, 1, 2, ... of ledger 1
 * and checkpoints every 300, with the number of entries added as the
 * (fake) journal mark and the ledger's lac, reporting each mark once the
 * checkpoint returned, until it is killed. */
static void t_kill_child(const char *root, int fd)
{
    t_env_t env;
    memset(&env, 0, sizeof(env));
    snprintf(env.d0, sizeof(env.d0), "%s/l0", root);
    snprintf(env.d1, sizeof(env.d1), "%s/l1", root);
    env.dirs[0] = env.d0;
    env.dirs[1] = env.d1;
    env.opts.ledger_dirs = env.dirs;
    env.opts.nledger_dirs = 2;
    env.opts.entry_log_size_limit = 128u << 10;
    env.opts.index_cache_bytes = 4 << 20;
    bk_storage_t *st;
    if (bk_storage_open(&env.opts, &st) != MQ_OK) {
        _exit(2);
    }
    for (int64_t e = 0;; e++) {
        t_add(st, 1, e);
        if (e % 300 == 299) {
            bk_ledger_update_t up = {1, {false, 0, {0}, e}};
            bk_journal_pos_t mark = {1, (uint64_t)e + 1};
            if (bk_storage_checkpoint(st, mark, &up, 1) != MQ_OK ||
                write(fd, &mark.offset, sizeof(mark.offset)) != (ssize_t)sizeof(mark.offset)) {
                _exit(3);
            }
        }
    }
}

/* Starts this test binary again as a kill child. exec right after fork:
 * RocksDB's thread pool outlives its databases, and a forked copy of a
 * threaded process must not start threads of its own. */
static pid_t t_spawn(const char *root, int fd)
{
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fd);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_storage", "--kill-child", root, fdarg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void t_kill_ledger_cb(uint64_t ledger_id, const bk_ledger_rec_t *rec, void *arg)
{
    if (ledger_id == 1) {
        *(int64_t *)arg = rec->lac;
    }
}

static void test_kill9_checkpoints(void)
{
    static const int kill_after[] = {1, 4, 9};
    for (size_t round = 0; round < MQ_ARRAY_LEN(kill_after); round++) {
        t_env_t env;
        t_env_init(&env, 128u << 10);
        int fds[2];
        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        pid_t pid = t_spawn(env.root, fds[1]);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        close(fds[1]);
        uint64_t reported = 0;
        uint64_t m;
        for (int k = 0; k < kill_after[round] && read(fds[0], &m, sizeof(m)) == sizeof(m); k++) {
            reported = m;
        }
        /* Somewhere inside the next adds or the next checkpoint. */
        usleep((useconds_t)(round * 3000));
        kill(pid, SIGKILL);
        int status = 0;
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(fds[0], &m, sizeof(m)) == sizeof(m)) {
            reported = m;
        }
        close(fds[0]);
        CU_ASSERT_TRUE(reported > 0);

        /* The persisted mark covers at least what was reported, and every
         * entry below it is readable: a mark never passes unflushed data. */
        bk_storage_t *st;
        CU_ASSERT_EQUAL_FATAL(bk_storage_open(&env.opts, &st), MQ_OK);
        bk_journal_pos_t mark = bk_storage_mark(st);
        CU_ASSERT_EQUAL(mark.file_id, 1);
        CU_ASSERT_TRUE(mark.offset >= reported);
        int bad = 0;
        for (int64_t e = 0; e < (int64_t)mark.offset; e++) {
            mq_slice_t sl = {0};
            if (bk_storage_get(st, 1, e, &sl) != MQ_OK || !t_entry_ok(&sl, 1, e)) {
                bad++;
            }
            mq_slice_release(&sl);
        }
        CU_ASSERT_EQUAL(bad, 0);
        int64_t lac = -2;
        CU_ASSERT_EQUAL(bk_storage_foreach_ledger(st, t_kill_ledger_cb, &lac), MQ_OK);
        CU_ASSERT_TRUE(lac >= (int64_t)mark.offset - 1);
        bk_storage_close(st);
        t_env_fini(&env);
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--kill-child") == 0) {
        t_kill_child(argv[2], atoi(argv[3]));
    }
    static CU_TestInfo tests[] = {
        {"write cache: put, replace, sorted walk, absorb", test_writecache},
        {"add, checkpoint, reopen, mark and ledger records", test_add_checkpoint_reopen},
        {"entry ranges merge caches and index", test_ranges},
        {"a paced checkpoint spreads its writes, and hurries when it must", test_paced_checkpoint},
        {"readers never miss an entry during checkpoints", test_readers_during_checkpoints},
        {"kill -9 during checkpoints: the mark never passes data", test_kill9_checkpoints},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("storage", tests, NULL, NULL);
}
