/*
 * bk_journal: group commit from several threads (callbacks once each, in
 * append order, alignment of every write), replay of exactly what was
 * written, torn tails and corrupt records, rotation, recycling after trim
 * (stale records never replay), replay from a mark in the middle of a file,
 * the failure contract (EIO everywhere, no retry, no crash), sync off, and
 * close draining the queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bk_journal.h"
#include "bk_journal_int.h"
#include "mq_fs.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_THREADS 4
#define T_PER_THREAD 1000

/* --- records whose content follows from their global sequence number -------- */

static size_t t_len_mixed(uint64_t g)
{
    uint64_t h = mq_mix64(g);
    switch (h % 32) {
    case 0:
        return 16 + (size_t)(h >> 8) % (64u << 10);
    case 1:
    case 2:
    case 3:
    case 4:
        return 4096 + (size_t)(h >> 8) % 8192;
    default:
        return 16 + (size_t)(h >> 8) % 2000;
    }
}

static size_t t_len_small(uint64_t g)
{
    return 200 + (size_t)(g * 37 % 600);
}

static bk_jrec_type_t t_type(uint64_t g)
{
    if (g % 7 == 3) {
        return BK_JREC_MASTER_KEY;
    }
    return g % 11 == 5 ? BK_JREC_FENCE : BK_JREC_ENTRY;
}

static mq_buf_t *t_payload(uint64_t g, size_t len)
{
    mq_buf_t *b = mq_buf_new(len);
    b->len = len;
    for (size_t i = 0; i < len; i++) {
        b->data[i] = (uint8_t)(g * 131 + i * 7);
    }
    if (len >= 8) {
        mq_put_le64(b->data, g);
    }
    return b;
}

static bool t_payload_ok(const uint8_t *p, size_t len, uint64_t *g)
{
    if (len < 8) {
        return false;
    }
    *g = mq_get_le64(p);
    for (size_t i = 8; i < len; i++) {
        if (p[i] != (uint8_t)(*g * 131 + i * 7)) {
            return false;
        }
    }
    return true;
}

/* --- callbacks ----------------------------------------------------------------- */

typedef struct t_ctx {
    bk_journal_t *j;
    uint32_t align;
    pthread_mutex_t lock; /* serialises sequence numbers with appends */
    uint64_t next_g;
    atomic_uint_fast64_t acked;
    atomic_int errors;   /* callbacks with an error */
    atomic_int eio;      /* callbacks with MQ_EIO */
    atomic_int disorder; /* callbacks out of append order */
    atomic_int unaligned;
    atomic_int groups;
    bool check_thread; /* callbacks must run on cb_thread */
    pthread_t cb_thread;
    atomic_int wrong_thread;
    int64_t last_g;              /* force thread only */
    int64_t last_seq[T_THREADS]; /* force thread only */
} t_ctx_t;

typedef struct t_rec {
    t_ctx_t *ctx;
    int thread;
    int64_t seq;
    uint64_t g;
} t_rec_t;

static void t_ctx_init(t_ctx_t *ctx, uint32_t align)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->align = align;
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->last_g = -1;
    for (int i = 0; i < T_THREADS; i++) {
        ctx->last_seq[i] = -1;
    }
}

static void t_cb(mq_err_t err, void *arg)
{
    t_rec_t *r = arg;
    t_ctx_t *ctx = r->ctx;
    if (err != MQ_OK) {
        atomic_fetch_add(&ctx->errors, 1);
    }
    if (err == MQ_EIO) {
        atomic_fetch_add(&ctx->eio, 1);
    }
    if ((int64_t)r->g != ctx->last_g + 1 || r->seq != ctx->last_seq[r->thread] + 1) {
        atomic_fetch_add(&ctx->disorder, 1);
    }
    ctx->last_g = (int64_t)r->g;
    ctx->last_seq[r->thread] = r->seq;
    if (ctx->check_thread && !pthread_equal(pthread_self(), ctx->cb_thread)) {
        atomic_fetch_add(&ctx->wrong_thread, 1);
    }
    if (err == MQ_OK && bk_journal_synced(ctx->j).offset % ctx->align != 0) {
        atomic_fetch_add(&ctx->unaligned, 1);
    }
    atomic_fetch_add(&ctx->acked, 1);
    free(r);
}

static void t_group_done(void *arg)
{
    t_ctx_t *ctx = arg;
    atomic_fetch_add(&ctx->groups, 1);
}

/* Appends record g (its length from lenf) for thread/seq. */
static mq_err_t t_append(t_ctx_t *ctx, int thread, int64_t seq, size_t (*lenf)(uint64_t))
{
    pthread_mutex_lock(&ctx->lock);
    uint64_t g = ctx->next_g;
    mq_buf_t *b = t_payload(g, lenf(g));
    mq_slice_t s = mq_slice_of(b, 0, b->len);
    t_rec_t *r = mq_malloc(sizeof(*r));
    *r = (t_rec_t){ctx, thread, seq, g};
    mq_err_t err = bk_journal_append(ctx->j, t_type(g), &s, t_cb, r);
    if (err == MQ_OK) {
        ctx->next_g++;
    } else {
        free(r);
    }
    pthread_mutex_unlock(&ctx->lock);
    mq_slice_release(&s);
    mq_buf_unref(b);
    return err;
}

typedef struct t_wait {
    t_ctx_t *ctx;
    uint64_t n;
} t_wait_t;

static bool t_acked(void *arg)
{
    t_wait_t *w = arg;
    return atomic_load(&w->ctx->acked) >= w->n;
}

static bool t_wait_acked(t_ctx_t *ctx, uint64_t n)
{
    t_wait_t w = {ctx, n};
    return mq_test_wait(t_acked, &w, 60000);
}

static bk_journal_opts_t t_opts(const char *dir, uint64_t file_size, uint32_t align)
{
    bk_journal_opts_t o = {0};
    o.dir = dir;
    o.sync_data = true;
    o.max_group_wait_ms = 2;
    o.buffered_writes_threshold = 512 << 10;
    o.max_file_size = file_size;
    o.prealloc_size = 256 << 10;
    o.alignment = align;
    o.max_backups = 2;
    return o;
}

static char *t_dir(const char *prefix)
{
    return mq_strdup(mq_test_tmpdir(prefix));
}

static void t_rmdir(char *dir)
{
    mq_fs_remove_tree(dir);
    free(dir);
}

/* --- replay collection ------------------------------------------------------------ */

typedef struct t_got {
    uint64_t g;
    uint32_t type;
    size_t len;
    bk_journal_pos_t pos;
} t_got_t;

typedef struct t_replayed {
    t_got_t *v;
    size_t n;
    size_t cap;
    int bad_content;
    int pos_disorder;
} t_replayed_t;

static void t_replay_cb(bk_jrec_type_t type, const uint8_t *payload, size_t len,
                        bk_journal_pos_t pos, void *arg)
{
    t_replayed_t *r = arg;
    uint64_t g = UINT64_MAX;
    if (!t_payload_ok(payload, len, &g) || t_type(g) != type) {
        r->bad_content++;
    }
    if (r->n > 0 && bk_journal_pos_cmp(pos, r->v[r->n - 1].pos) <= 0) {
        r->pos_disorder++;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = mq_realloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] = (t_got_t){g, type, len, pos};
}

static mq_err_t t_replay(const char *dir, bk_journal_pos_t from, t_replayed_t *r,
                         bk_journal_replay_stats_t *st)
{
    memset(r, 0, sizeof(*r));
    return bk_journal_replay(dir, from, t_replay_cb, r, st);
}

/* True when the replay holds exactly records first..first+n-1 in order. */
static bool t_replay_is(const t_replayed_t *r, uint64_t first, size_t n)
{
    if (r->n != n || r->bad_content || r->pos_disorder) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (r->v[i].g != first + i) {
            return false;
        }
    }
    return true;
}

static void t_journal_file(char *buf, size_t cap, const char *dir, uint64_t id)
{
    snprintf(buf, cap, "%s/current/%016" PRIx64 ".txn", dir, id);
}

/* --- tests --------------------------------------------------------------------------- */

typedef struct t_producer {
    t_ctx_t *ctx;
    int thread;
    int failures;
} t_producer_t;

static void *t_produce(void *arg)
{
    t_producer_t *p = arg;
    for (int64_t s = 0; s < T_PER_THREAD; s++) {
        if (t_append(p->ctx, p->thread, s, t_len_mixed) != MQ_OK) {
            p->failures++;
        }
    }
    return NULL;
}

static void test_write_replay(void)
{
    char *dir = t_dir("journal");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 4096);
    bk_journal_opts_t o = t_opts(dir, 2 << 20, 4096);
    o.on_group_done = t_group_done;
    o.group_arg = &ctx;
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    bk_journal_pos_t start = bk_journal_synced(ctx.j);
    CU_ASSERT_EQUAL(start.offset, 4096);

    pthread_t tids[T_THREADS];
    t_producer_t prod[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) {
        prod[i] = (t_producer_t){&ctx, i, 0};
        pthread_create(&tids[i], NULL, t_produce, &prod[i]);
    }
    for (int i = 0; i < T_THREADS; i++) {
        pthread_join(tids[i], NULL);
        CU_ASSERT_EQUAL(prod[i].failures, 0);
    }
    uint64_t total = T_THREADS * T_PER_THREAD;
    CU_ASSERT_TRUE(t_wait_acked(&ctx, total));
    bk_journal_stats_t st;
    bk_journal_get_stats(ctx.j, &st);
    CU_ASSERT_EQUAL(bk_journal_queued_bytes(ctx.j), 0);
    CU_ASSERT_FALSE(bk_journal_failed(ctx.j));
    bk_journal_close(ctx.j);

    CU_ASSERT_EQUAL(atomic_load(&ctx.acked), total);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.unaligned), 0);
    CU_ASSERT_TRUE(atomic_load(&ctx.groups) > 0);
    CU_ASSERT_EQUAL(st.records, total);
    /* Group commit: far fewer fsyncs than records. */
    CU_ASSERT_TRUE(st.syncs > 0 && st.syncs < total / 2);
    /* Every write starts and ends on the alignment. */
    CU_ASSERT_EQUAL(st.bytes % 4096, 0);
    CU_ASSERT_TRUE(st.files_created >= 3);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, total));
    for (size_t i = 0; i < r.n; i++) {
        if (r.v[i].len != t_len_mixed(r.v[i].g)) {
            CU_FAIL("replayed length differs");
            break;
        }
    }
    CU_ASSERT_EQUAL(rs.records, total);
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    CU_ASSERT_TRUE(rs.files >= 3);
    if (r.n > 0) {
        CU_ASSERT_TRUE(bk_journal_pos_cmp(rs.end, r.v[r.n - 1].pos) >= 0);
    }
    free(r.v);

    /* From the start mark, everything again. */
    CU_ASSERT_EQUAL(t_replay(dir, start, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, total));
    free(r.v);
    t_rmdir(dir);
}

/* Writes n small records from one thread and closes; returns the replay. */
static void t_write_small(const char *dir, bk_journal_opts_t *o, t_ctx_t *ctx, uint64_t n)
{
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(o, &ctx->j), MQ_OK);
    for (uint64_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(t_append(ctx, 0, (int64_t)(ctx->next_g), t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(ctx, ctx->next_g));
    bk_journal_close(ctx->j);
    ctx->j = NULL;
    MQ_UNUSED(dir);
}

static void t_overwrite(const char *path, uint64_t off, size_t len, uint8_t byte)
{
    int fd = open(path, O_WRONLY);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    uint8_t *b = mq_malloc(len);
    memset(b, byte, len);
    CU_ASSERT_EQUAL(pwrite(fd, b, len, (off_t)off), (ssize_t)len);
    free(b);
    close(fd);
}

static void t_torn_tail(bool truncate_it)
{
    char *dir = t_dir("journal-torn");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 1 << 20, 512);
    t_write_small(dir, &o, &ctx, 50);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE_FATAL(t_replay_is(&r, 0, 50));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    t_got_t last = r.v[49];
    free(r.v);
    uint64_t start = last.pos.offset - last.len - 12;
    char path[PATH_MAX];
    t_journal_file(path, sizeof(path), dir, last.pos.file_id);
    if (truncate_it) {
        CU_ASSERT_EQUAL(truncate(path, (off_t)(start + 12 + last.len / 2)), 0);
    } else {
        t_overwrite(path, start, 12 + last.len, 0xa5);
    }
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, 49));
    CU_ASSERT_EQUAL(rs.torn_files, 1);
    free(r.v);

    /* A new journal opens fine on top of it; its records follow. */
    t_write_small(dir, &o, &ctx, 1);
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_EQUAL(r.n, 50);
    CU_ASSERT_EQUAL(r.bad_content, 0);
    if (r.n == 50) {
        CU_ASSERT_EQUAL(r.v[48].g, 48);
        CU_ASSERT_EQUAL(r.v[49].g, 50);
        CU_ASSERT_TRUE(r.v[49].pos.file_id > last.pos.file_id);
    }
    CU_ASSERT_EQUAL(rs.torn_files, 1);
    free(r.v);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    t_rmdir(dir);
}

static void test_torn_truncated(void)
{
    t_torn_tail(true);
}

static void test_torn_garbage(void)
{
    t_torn_tail(false);
}

static void test_corrupt_middle(void)
{
    char *dir = t_dir("journal-corrupt");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 64 << 10, 512);
    t_write_small(dir, &o, &ctx, 400);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE_FATAL(t_replay_is(&r, 0, 400));
    uint64_t first_file = r.v[0].pos.file_id;
    size_t in_first = 0;
    while (in_first < r.n && r.v[in_first].pos.file_id == first_file) {
        in_first++;
    }
    CU_ASSERT_TRUE_FATAL(in_first > 20 && in_first < r.n);
    size_t k = in_first / 2;
    t_got_t victim = r.v[k];
    free(r.v);
    char path[PATH_MAX];
    t_journal_file(path, sizeof(path), dir, victim.pos.file_id);
    /* Flip one byte in the middle of record k's payload. */
    uint64_t off = victim.pos.offset - victim.len / 2;
    int fd = open(path, O_RDWR);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    uint8_t b;
    CU_ASSERT_EQUAL(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x10;
    CU_ASSERT_EQUAL(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);

    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    /* Records before k, then every record of the later files. */
    CU_ASSERT_EQUAL(r.n, k + (400 - in_first));
    CU_ASSERT_EQUAL(r.bad_content, 0);
    bool ok = r.n == k + (400 - in_first);
    for (size_t i = 0; ok && i < r.n; i++) {
        ok = r.v[i].g == (i < k ? i : in_first + (i - k));
    }
    CU_ASSERT_TRUE(ok);
    CU_ASSERT_EQUAL(rs.torn_files, 1);
    free(r.v);
    t_rmdir(dir);
}

static void test_rotation_recycling(void)
{
    char *dir = t_dir("journal-recycle");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 64 << 10, 512);
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    for (int i = 0; i < 300; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, 300));
    bk_journal_pos_t mark1 = bk_journal_synced(ctx.j);
    bk_journal_trim(ctx.j, mark1);

    /* Phase 2 runs over recycled files; take a mark inside a file. */
    int64_t seq = 300;
    bk_journal_pos_t mark2;
    do {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, seq++, t_len_small), MQ_OK);
        CU_ASSERT_TRUE(t_wait_acked(&ctx, ctx.next_g));
        mark2 = bk_journal_synced(ctx.j);
    } while (seq < 350 || mark2.offset <= 512);
    uint64_t g2 = ctx.next_g;
    for (int i = 0; i < 300; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, seq++, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, ctx.next_g));
    bk_journal_stats_t st;
    bk_journal_get_stats(ctx.j, &st);
    bk_journal_close(ctx.j);
    CU_ASSERT_TRUE(st.files_recycled > 0);
    CU_ASSERT_TRUE(st.files_created >= 3);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);
    uint64_t total = ctx.next_g;

    /* Old files beyond max_backups are gone; recycled ones hold stale
     * records under new ids, which must never replay. */
    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, mark1, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 300, total - 300));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    free(r.v);
    CU_ASSERT_EQUAL(t_replay(dir, mark2, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, g2, total - g2));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    free(r.v);

    /* A mark whose file is gone is an error, not a silent empty replay. */
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){mark1.file_id - 5, 512}, &r, &rs),
                    MQ_ECORRUPT);
    free(r.v);
    t_rmdir(dir);
}

static void t_fault(bk_journal_fault_t fault)
{
    char *dir = t_dir("journal-fault");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 1 << 20, 512);
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, 10));
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    bk_journal_pos_t before = bk_journal_synced(ctx.j);

    bk_journal_test_inject(ctx.j, fault);
    int queued = 0;
    for (int i = 10; i < 30; i++) {
        if (t_append(&ctx, 0, i, t_len_small) == MQ_OK) {
            queued++;
        }
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, 10 + (uint64_t)queued));
    CU_ASSERT_TRUE(bk_journal_failed(ctx.j));
    CU_ASSERT_TRUE(queued >= 1);
    CU_ASSERT_EQUAL(atomic_load(&ctx.eio), queued);
    /* Later appends fail at once, without a callback. */
    CU_ASSERT_EQUAL(t_append(&ctx, 0, 30, t_len_small), MQ_EIO);
    CU_ASSERT_EQUAL(bk_journal_pos_cmp(bk_journal_synced(ctx.j), before), 0);
    bk_journal_stats_t st;
    bk_journal_get_stats(ctx.j, &st);
    bk_journal_close(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.acked), 10 + (uint64_t)queued);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);
    t_rmdir(dir);
}

static void test_fault_sync(void)
{
    t_fault(BK_JOURNAL_FAULT_SYNC);
}

static void test_fault_write(void)
{
    t_fault(BK_JOURNAL_FAULT_WRITE);
}

static void test_nosync_and_close_drains(void)
{
    char *dir = t_dir("journal-nosync");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 256 << 10, 512);
    o.sync_data = false;
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    for (int i = 0; i < 500; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    /* Close at once: it must write and call back everything queued. */
    bk_journal_close(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.acked), 500);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, 500));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    free(r.v);

    /* The same with sync on. */
    o.sync_data = true;
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    for (int i = 500; i < 1000; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    bk_journal_close(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.acked), 1000);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, 1000));
    free(r.v);
    t_rmdir(dir);
}

/* inline_writes: the appending thread writes, syncs and calls back in
 * bk_journal_write_queued; the writer thread only finishes at close. */
static void test_inline_writes(void)
{
    char *dir = t_dir("journal-inline");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 256 << 10, 512);
    o.inline_writes = true;
    o.on_group_done = t_group_done;
    o.group_arg = &ctx;
    ctx.check_thread = true;
    ctx.cb_thread = pthread_self();
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    uint64_t first_file = bk_journal_test_current_file(ctx.j);
    uint64_t n = 0;
    unsigned seed = 7;
    for (int round = 0; round < 300; round++) {
        int k = 1 + (int)(rand_r(&seed) % 20);
        for (int i = 0; i < k; i++) {
            CU_ASSERT_EQUAL(t_append(&ctx, 0, (int64_t)n, t_len_mixed), MQ_OK);
            n++;
        }
        /* Durable and called back when it returns, here, as one group (two
         * when it rolls over: the old file is synced before the switch). */
        int groups = atomic_load(&ctx.groups);
        bk_journal_write_queued(ctx.j);
        CU_ASSERT_EQUAL(atomic_load(&ctx.acked), n);
        int more = atomic_load(&ctx.groups) - groups;
        CU_ASSERT_TRUE(more == 1 || more == 2);
    }
    bk_journal_write_queued(ctx.j); /* nothing queued: nothing happens */
    /* Records of a few KiB in 256 KiB files: it rolled over on the way. */
    CU_ASSERT_NOT_EQUAL(bk_journal_test_current_file(ctx.j), first_file);
    bk_journal_stats_t st;
    bk_journal_get_stats(ctx.j, &st);
    CU_ASSERT_TRUE(st.syncs >= 300); /* one per round, and one per rollover */
    CU_ASSERT_EQUAL(st.records, n);
    /* Left queued: close writes them on the writer thread. */
    ctx.check_thread = false;
    for (int i = 0; i < 30; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, (int64_t)n, t_len_small), MQ_OK);
        n++;
    }
    bk_journal_close(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.acked), n);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.unaligned), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.wrong_thread), 0);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, n));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    free(r.v);

    /* A failed write: the records complete with MQ_EIO, here. */
    t_ctx_init(&ctx, 512);
    ctx.check_thread = true;
    ctx.cb_thread = pthread_self();
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    bk_journal_test_inject(ctx.j, BK_JOURNAL_FAULT_WRITE);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    bk_journal_write_queued(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.eio), 5);
    CU_ASSERT_TRUE(bk_journal_failed(ctx.j));
    CU_ASSERT_EQUAL(t_append(&ctx, 0, 5, t_len_small), MQ_EIO);
    bk_journal_close(ctx.j);
    CU_ASSERT_EQUAL(atomic_load(&ctx.wrong_thread), 0);
    CU_ASSERT_EQUAL(atomic_load(&ctx.disorder), 0);
    t_rmdir(dir);
}

static void test_bad_header_and_limits(void)
{
    char *dir = t_dir("journal-hdr");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 64 << 10, 512);
    t_write_small(dir, &o, &ctx, 200);
    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE_FATAL(t_replay_is(&r, 0, 200));
    uint64_t first_file = r.v[0].pos.file_id;
    size_t in_first = 0;
    while (in_first < r.n && r.v[in_first].pos.file_id == first_file) {
        in_first++;
    }
    free(r.v);
    /* A file with a bad header is skipped with a warning. */
    char path[PATH_MAX];
    t_journal_file(path, sizeof(path), dir, first_file);
    t_overwrite(path, 0, 4, 'X');
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, in_first, 200 - in_first));
    free(r.v);

    /* Out-of-range options and records are refused, without a callback. */
    bk_journal_opts_t bad = o;
    bad.alignment = 1000;
    bk_journal_t *j = NULL;
    CU_ASSERT_EQUAL(bk_journal_open(&bad, &j), MQ_EINVAL);
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    mq_buf_t *big = mq_buf_new(64 << 10);
    big->len = 64 << 10;
    memset(big->data, 0, big->len);
    mq_slice_t s = mq_slice_of(big, 0, big->len);
    CU_ASSERT_EQUAL(bk_journal_append(ctx.j, BK_JREC_ENTRY, &s, t_cb, NULL), MQ_ETOOLARGE);
    CU_ASSERT_EQUAL(bk_journal_append(ctx.j, BK_JREC_PAD, &s, t_cb, NULL), MQ_EINVAL);
    mq_slice_release(&s);
    mq_buf_unref(big);
    bk_journal_close(ctx.j);
    t_rmdir(dir);
}

static bool t_exists(void *arg)
{
    return access((const char *)arg, F_OK) == 0;
}

/* Opens, writes n records, waits for the allocator's next file, closes;
 * returns the id of the file written to. */
static uint64_t t_run_once(const char *dir, bk_journal_opts_t *o, t_ctx_t *ctx, int n)
{
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(o, &ctx->j), MQ_OK);
    uint64_t cur = bk_journal_test_current_file(ctx->j);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(t_append(ctx, 0, (int64_t)ctx->next_g, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(ctx, ctx->next_g));
    char next[PATH_MAX];
    t_journal_file(next, sizeof(next), dir, cur + 1);
    CU_ASSERT_TRUE(mq_test_wait(t_exists, next, 30000));
    bk_journal_close(ctx->j);
    ctx->j = NULL;
    return cur;
}

static void test_reuse_at_open(void)
{
    char *dir = t_dir("journal-reuse");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    bk_journal_opts_t o = t_opts(dir, 1 << 20, 512);
    uint64_t f1 = t_run_once(dir, &o, &ctx, 10);
    /* The file prepared ahead and never written becomes the first file. */
    uint64_t f2 = t_run_once(dir, &o, &ctx, 10);
    CU_ASSERT_EQUAL(f2, f1 + 1);
    /* Without it, the newest file holds records: never appended to again. */
    char path[PATH_MAX];
    t_journal_file(path, sizeof(path), dir, f2 + 1);
    CU_ASSERT_EQUAL(unlink(path), 0);
    uint64_t f3 = t_run_once(dir, &o, &ctx, 10);
    CU_ASSERT_EQUAL(f3, f2 + 1);
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, 30));
    CU_ASSERT_EQUAL(rs.torn_files, 0);
    free(r.v);
    t_rmdir(dir);
}

/* --- paced preallocation ---------------------------------------------------------- */

static bool t_alloc_waits(void *arg)
{
    bk_journal_stats_t st;
    bk_journal_get_stats(arg, &st);
    return st.prealloc_waits > 0;
}

/* With paced_prealloc the next file's zeros follow the writer, 8/7 as fast
 * as its position in the current file grows (they used to go flat out at
 * once, then an eighth of a file ahead at once after each rollover; every
 * bookie on a disk rolls over together, and adds stalled behind the
 * writeback); a writer that catches up gets the rest at once and loses
 * nothing. */
static void test_paced_prealloc(void)
{
    char *dir = t_dir("journal-paced");
    t_ctx_t ctx;
    t_ctx_init(&ctx, 512);
    const uint64_t file = 1 << 20;
    const uint64_t chunk = 64 << 10;
    bk_journal_opts_t o = t_opts(dir, file, 512);
    o.prealloc_size = chunk;
    o.paced_prealloc = true;
    CU_ASSERT_EQUAL_FATAL(bk_journal_open(&o, &ctx.j), MQ_OK);
    uint64_t cur = bk_journal_test_current_file(ctx.j);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(t_append(&ctx, 0, i, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, 10));
    /* The writer is ~5 KiB in: the allocator stops after its first chunk. */
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t_alloc_waits, ctx.j, 10000));
    bk_journal_stats_t st;
    bk_journal_get_stats(ctx.j, &st);
    /* The first file was written whole by open (its header block aside);
     * of the second only one chunk, not an eighth of a file (two chunks). */
    CU_ASSERT_TRUE(st.prealloc_bytes >= file + chunk - 2 * o.alignment);
    CU_ASSERT_TRUE(st.prealloc_bytes <= file + chunk + o.alignment);
    char next[PATH_MAX];
    t_journal_file(next, sizeof(next), dir, cur + 1);
    CU_ASSERT_EQUAL(access(next, F_OK), -1);

    /* Write two and a half files' worth: the allocator keeps ahead, the
     * writer rolls over twice (waiting for the rest when it catches up),
     * nothing fails. */
    uint64_t n = 10;
    for (uint64_t bytes = 0; bytes < 5 * file / 2; n++) {
        bytes += t_len_small(ctx.next_g) + 64;
        CU_ASSERT_EQUAL(t_append(&ctx, 0, (int64_t)n, t_len_small), MQ_OK);
    }
    CU_ASSERT_TRUE(t_wait_acked(&ctx, n));
    CU_ASSERT_EQUAL(atomic_load(&ctx.errors), 0);
    CU_ASSERT_TRUE(bk_journal_test_current_file(ctx.j) >= cur + 2);
    bk_journal_get_stats(ctx.j, &st);
    CU_ASSERT_TRUE(st.files_created >= 2);
    bk_journal_close(ctx.j);
    ctx.j = NULL;

    t_replayed_t r;
    bk_journal_replay_stats_t rs;
    CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
    CU_ASSERT_TRUE(t_replay_is(&r, 0, n));
    free(r.v);
    t_rmdir(dir);
}

/* --- kill -9 ------------------------------------------------------------------------ */

static int t_kill_pipe = -1;       /* child: acknowledgements to the parent */
static atomic_int t_kill_inflight; /* child */

static void t_kill_cb(mq_err_t err, void *arg)
{
    uint64_t g = (uint64_t)(uintptr_t)arg;
    if (err != MQ_OK || write(t_kill_pipe, &g, sizeof(g)) != (ssize_t)sizeof(g)) {
        _exit(4);
    }
    atomic_fetch_sub(&t_kill_inflight, 1);
}

/* Child (a fresh process: see main): appends records 0, 1, 2, ... with up
 * to 64 in flight, reporting each acknowledgement, until it is killed. */
static void t_kill_child(const char *dir, int fd)
{
    t_kill_pipe = fd;
    bk_journal_opts_t o = t_opts(dir, 256 << 10, 512);
    bk_journal_t *j;
    if (bk_journal_open(&o, &j) != MQ_OK) {
        _exit(2);
    }
    for (uint64_t g = 0;; g++) {
        while (atomic_load(&t_kill_inflight) >= 64) {
            usleep(20);
        }
        mq_buf_t *b = t_payload(g, t_len_small(g));
        mq_slice_t sl = mq_slice_of(b, 0, b->len);
        atomic_fetch_add(&t_kill_inflight, 1);
        if (bk_journal_append(j, t_type(g), &sl, t_kill_cb, (void *)(uintptr_t)g) != MQ_OK) {
            _exit(3);
        }
        mq_slice_release(&sl);
        mq_buf_unref(b);
    }
}

/* Starts this test binary again as a kill child (exec right after fork, so
 * the child never inherits a threaded process). */
static pid_t t_spawn(const char *dir, int fd)
{
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fd);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_journal", "--kill-child", dir, fdarg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void test_kill9(void)
{
    static const uint64_t kill_after[] = {1, 700, 2500};
    for (size_t round = 0; round < MQ_ARRAY_LEN(kill_after); round++) {
        char *dir = t_dir("journal-kill");
        int fds[2];
        CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
        pid_t pid = t_spawn(dir, fds[1]);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        close(fds[1]);
        uint64_t acked = 0;
        int64_t last = -1;
        uint64_t g;
        while (acked < kill_after[round] && read(fds[0], &g, sizeof(g)) == (ssize_t)sizeof(g)) {
            acked++;
            last = (int64_t)g;
        }
        kill(pid, SIGKILL);
        int status = 0;
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Acknowledgements already in the pipe were given before the kill. */
        while (read(fds[0], &g, sizeof(g)) == (ssize_t)sizeof(g)) {
            CU_ASSERT_EQUAL(g, (uint64_t)(last + 1));
            last = (int64_t)g;
        }
        close(fds[0]);
        CU_ASSERT_TRUE(last >= 0);

        /* Everything acknowledged is there: a gapless prefix of the appends. */
        t_replayed_t r;
        bk_journal_replay_stats_t rs;
        CU_ASSERT_EQUAL(t_replay(dir, (bk_journal_pos_t){0, 0}, &r, &rs), MQ_OK);
        CU_ASSERT_TRUE(t_replay_is(&r, 0, r.n));
        CU_ASSERT_TRUE((int64_t)r.n > last);
        free(r.v);
        t_rmdir(dir);
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--kill-child") == 0) {
        t_kill_child(argv[2], atoi(argv[3]));
    }
    static CU_TestInfo tests[] = {
        {"group commit from threads, replay in order", test_write_replay},
        {"torn tail (truncated) is cut, journal reopens", test_torn_truncated},
        {"torn tail (garbage) is cut, journal reopens", test_torn_garbage},
        {"corrupt record in the middle stops its file only", test_corrupt_middle},
        {"rotation, recycling, stale records, mid-file mark", test_rotation_recycling},
        {"fdatasync failure fails everything pending", test_fault_sync},
        {"write failure fails everything pending", test_fault_write},
        {"sync off, and close drains the queue", test_nosync_and_close_drains},
        {"inline writes: the appending thread writes, syncs, calls back", test_inline_writes},
        {"bad header skipped, bad arguments refused", test_bad_header_and_limits},
        {"an empty newest file is reused at open", test_reuse_at_open},
        {"new files are zero-filled at the writer's pace", test_paced_prealloc},
        {"kill -9 loses nothing acknowledged", test_kill9},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("journal", tests, NULL, NULL);
}
