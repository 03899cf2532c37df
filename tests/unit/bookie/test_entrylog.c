/*
 * bk_entrylog (with bk_index): entries of several ledgers written, synced,
 * indexed and read back byte for byte; rotation across logs; a new log above
 * the highest id of every dir; reads of unsynced data; and corrupt or
 * truncated logs giving MQ_ECORRUPT instead of a crash.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bk_entrylog.h"
#include "bk_index.h"
#include "mq_fs.h"
#include "mq_test.h"
#include "mq_util.h"

#define T_LEDGERS 3
#define T_ENTRIES 150

static size_t t_len(uint64_t ledger, int64_t entry)
{
    if (ledger == 2 && entry == 77) {
        return (3u << 20) / 2; /* larger than the write buffer */
    }
    return 1 + (size_t)(mq_mix64(ledger * 1000 + (uint64_t)entry) % 3000);
}

static void t_fill(uint8_t *p, size_t len, uint64_t ledger, int64_t entry)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(ledger * 17 + (uint64_t)entry * 3 + i);
    }
}

static bool t_check(const uint8_t *p, size_t len, uint64_t ledger, int64_t entry)
{
    if (len != t_len(ledger, entry)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != (uint8_t)(ledger * 17 + (uint64_t)entry * 3 + i)) {
            return false;
        }
    }
    return true;
}

typedef struct t_env {
    char *root;
    char dir0[PATH_MAX];
    char dir1[PATH_MAX];
    const char *dirs[2];
    bk_entrylog_t *el;
    bk_index_t *idx;
    bk_entry_loc_t locs[T_LEDGERS + 1][T_ENTRIES];
} t_env_t;

static void t_env_init(t_env_t *env)
{
    memset(env, 0, sizeof(*env));
    env->root = mq_strdup(mq_test_tmpdir("entrylog"));
    snprintf(env->dir0, sizeof(env->dir0), "%s/l0", env->root);
    snprintf(env->dir1, sizeof(env->dir1), "%s/l1", env->root);
    env->dirs[0] = env->dir0;
    env->dirs[1] = env->dir1;
}

static void t_env_fini(t_env_t *env)
{
    mq_fs_remove_tree(env->root);
    free(env->root);
}

/* Writes every entry (ledgers interleaved, as a checkpoint would not, to
 * stress the locations), syncs and indexes them. */
static void t_write_all(t_env_t *env)
{
    bk_index_batch_t *b = bk_index_batch_new();
    uint8_t *buf = mq_malloc(2u << 20);
    for (int64_t e = 0; e < T_ENTRIES; e++) {
        for (uint64_t l = 1; l <= T_LEDGERS; l++) {
            size_t len = t_len(l, e);
            t_fill(buf, len, l, e);
            CU_ASSERT_EQUAL_FATAL(
                bk_entrylog_append(env->el, l, e, buf, (uint32_t)len, &env->locs[l][e]), MQ_OK);
            CU_ASSERT_EQUAL(env->locs[l][e].length, len);
            bk_index_batch_put_entry(b, l, e, &env->locs[l][e]);
        }
    }
    free(buf);
    CU_ASSERT_EQUAL(bk_index_batch_count(b), T_LEDGERS * T_ENTRIES);
    CU_ASSERT_EQUAL(bk_entrylog_sync(env->el), MQ_OK);
    CU_ASSERT_EQUAL(bk_index_write(env->idx, b, true), MQ_OK);
    bk_index_batch_free(b);
}

static int t_read_all(t_env_t *env)
{
    int bad = 0;
    for (uint64_t l = 1; l <= T_LEDGERS; l++) {
        for (int64_t e = 0; e < T_ENTRIES; e++) {
            bk_entry_loc_t loc;
            mq_buf_t *out = NULL;
            if (bk_index_get_entry(env->idx, l, e, &loc) != MQ_OK ||
                loc.location != env->locs[l][e].location ||
                bk_entrylog_read(env->el, &loc, l, e, &out) != MQ_OK ||
                !t_check(out->data, out->len, l, e)) {
                bad++;
            }
            mq_buf_unref(out);
        }
    }
    return bad;
}

static void test_round_trip(void)
{
    t_env_t env;
    t_env_init(&env);
    char ipath[PATH_MAX];
    snprintf(ipath, sizeof(ipath), "%s/index", env.root);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 2, 1u << 30, &env.el), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_index_open(ipath, 1 << 20, &env.idx), MQ_OK);
    uint64_t first = bk_entrylog_current_id(env.el);
    CU_ASSERT_EQUAL(first, 1);
    t_write_all(&env);
    CU_ASSERT_EQUAL(t_read_all(&env), 0);
    for (uint64_t l = 1; l <= T_LEDGERS; l++) {
        int64_t last = -1;
        bk_entry_loc_t loc;
        CU_ASSERT_EQUAL(bk_index_last_entry(env.idx, l, &last, &loc), MQ_OK);
        CU_ASSERT_EQUAL(last, T_ENTRIES - 1);
        CU_ASSERT_EQUAL(loc.location, env.locs[l][T_ENTRIES - 1].location);
    }
    int64_t last;
    bk_entry_loc_t loc;
    CU_ASSERT_EQUAL(bk_index_last_entry(env.idx, T_LEDGERS + 1, &last, &loc), MQ_ENOENTRY);

    /* Data written but not synced is not readable yet (still buffered). */
    uint8_t small[100];
    t_fill(small, sizeof(small), 9, 0);
    bk_entry_loc_t pending;
    CU_ASSERT_EQUAL(bk_entrylog_append(env.el, 9, 0, small, sizeof(small), &pending), MQ_OK);
    mq_buf_t *out = NULL;
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &pending, 9, 0, &out), MQ_EAGAIN);
    CU_ASSERT_EQUAL(bk_entrylog_sync(env.el), MQ_OK);
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &pending, 9, 0, &out), MQ_OK);
    CU_ASSERT_TRUE(out && out->len == sizeof(small) &&
                   memcmp(out->data, small, sizeof(small)) == 0);
    mq_buf_unref(out);
    /* Asking for the wrong ids at a good location is corrupt, not a crash. */
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &pending, 9, 1, &out), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &pending, 8, 0, &out), MQ_ECORRUPT);
    bk_entry_loc_t wrong = env.locs[1][0];
    wrong.length += 1;
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &wrong, 1, 0, &out), MQ_ECORRUPT);
    wrong = pending;
    wrong.location = (77ull << 32) | 4096; /* a log that does not exist */
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &wrong, 9, 0, &out), MQ_ECORRUPT);
    wrong.location = (1ull << 32) | 10; /* inside the header */
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &wrong, 9, 0, &out), MQ_ECORRUPT);

    /* Reopen: everything still there, new appends go to a new log. */
    bk_entrylog_close(env.el);
    bk_index_close(env.idx);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 2, 1u << 30, &env.el), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_index_open(ipath, 1 << 20, &env.idx), MQ_OK);
    CU_ASSERT_TRUE(bk_entrylog_current_id(env.el) > first);
    CU_ASSERT_EQUAL(t_read_all(&env), 0);
    bk_entrylog_close(env.el);
    bk_index_close(env.idx);
    t_env_fini(&env);
}

static void test_rotation(void)
{
    t_env_t env;
    t_env_init(&env);
    char ipath[PATH_MAX];
    snprintf(ipath, sizeof(ipath), "%s/index", env.root);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 2, 64u << 10, &env.el), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_index_open(ipath, 1 << 20, &env.idx), MQ_OK);
    t_write_all(&env);
    uint64_t cur = bk_entrylog_current_id(env.el);
    CU_ASSERT_TRUE(cur > 5);
    for (uint64_t l = 1; l <= T_LEDGERS; l++) {
        for (int64_t e = 0; e < T_ENTRIES; e++) {
            uint64_t off = env.locs[l][e].location & 0xffffffffu;
            /* Only a single oversized entry may pass the limit. */
            if (off + 24 + env.locs[l][e].length > (64u << 10) && off != 4096) {
                CU_FAIL("entry placed beyond the log size limit");
            }
        }
    }
    CU_ASSERT_EQUAL(t_read_all(&env), 0);
    bk_entrylog_close(env.el);

    /* A log with a higher id in the second dir: the next log goes above it. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/current/%016" PRIx64 ".log", env.dir1, (uint64_t)0x1f0);
    CU_ASSERT_EQUAL(mq_fs_write_atomic(path, "x", 1), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 2, 64u << 10, &env.el), MQ_OK);
    CU_ASSERT_EQUAL(bk_entrylog_current_id(env.el), 0x1f1);
    CU_ASSERT_EQUAL(t_read_all(&env), 0);
    /* That stray file has no valid header: reading from it is corrupt. */
    bk_entry_loc_t loc = {(0x1f0ull << 32) | 4096, 10};
    mq_buf_t *out = NULL;
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &loc, 1, 0, &out), MQ_ECORRUPT);
    bk_entrylog_close(env.el);
    bk_index_close(env.idx);
    t_env_fini(&env);
}

static void t_flip(const char *dir, uint64_t location, uint64_t delta)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/current/%016" PRIx64 ".log", dir, location >> 32);
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        return;
    }
    off_t off = (off_t)((location & 0xffffffffu) + delta);
    uint8_t b = 0;
    CU_ASSERT_EQUAL(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    CU_ASSERT_EQUAL(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corruption(void)
{
    t_env_t env;
    t_env_init(&env);
    char ipath[PATH_MAX];
    snprintf(ipath, sizeof(ipath), "%s/index", env.root);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 2, 256u << 10, &env.el), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_index_open(ipath, 1 << 20, &env.idx), MQ_OK);
    t_write_all(&env);
    /* The log may be in either dir: flip in both (one is a no-op). */
    bk_entry_loc_t a = env.locs[1][10]; /* payload byte */
    bk_entry_loc_t b = env.locs[2][20]; /* ledger id in the record header */
    bk_entry_loc_t c = env.locs[3][30]; /* CRC field */
    for (int d = 0; d < 2; d++) {
        t_flip(env.dirs[d], a.location, 24 + a.length / 2);
        t_flip(env.dirs[d], b.location, 8);
        t_flip(env.dirs[d], c.location, 5);
    }
    mq_buf_t *out = NULL;
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &a, 1, 10, &out), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &b, 2, 20, &out), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &c, 3, 30, &out), MQ_ECORRUPT);
    CU_ASSERT_PTR_NULL(out);
    /* Their neighbours are intact. */
    CU_ASSERT_EQUAL(t_read_all(&env), 3);

    /* A truncated log: the records past the cut are corrupt, not a crash. */
    bk_entry_loc_t last = env.locs[3][T_ENTRIES - 1];
    for (int d = 0; d < 2; d++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/current/%016" PRIx64 ".log", env.dirs[d],
                 last.location >> 32);
        if (access(path, F_OK) == 0) {
            CU_ASSERT_EQUAL(truncate(path, (off_t)(last.location & 0xffffffffu) + 30), 0);
        }
    }
    CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &last, 3, T_ENTRIES - 1, &out), MQ_ECORRUPT);
    bk_entrylog_close(env.el);
    bk_index_close(env.idx);
    t_env_fini(&env);
}

/* After a sync, the next record starts on a new 4 KiB block and the synced
 * block is never written again (a torn rewrite could not hurt indexed
 * records); entries stay readable across the padding. */
static void test_sync_padding(void)
{
    t_env_t env;
    t_env_init(&env);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_open(env.dirs, 1, 1u << 30, &env.el), MQ_OK);
    uint8_t buf[300];
    t_fill(buf, sizeof(buf), 9, 0);
    bk_entry_loc_t a;
    bk_entry_loc_t b;
    bk_entry_loc_t c;
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_append(env.el, 9, 0, buf, 300, &a), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_sync(env.el), MQ_OK);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/current/%016" PRIx64 ".log", env.dir0, a.location >> 32);
    uint8_t before[4096];
    uint8_t after[4096];
    int fd = open(path, O_RDONLY);
    uint64_t aoff = a.location & 0xffffffffu;
    CU_ASSERT_EQUAL_FATAL(pread(fd, before, sizeof(before), (off_t)(aoff & ~4095ull)), 4096);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_append(env.el, 9, 1, buf, 300, &b), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_append(env.el, 9, 2, buf, 300, &c), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(bk_entrylog_sync(env.el), MQ_OK);
    uint64_t boff = b.location & 0xffffffffu;
    CU_ASSERT_EQUAL(boff % 4096, 0);
    CU_ASSERT_TRUE(boff > aoff);
    CU_ASSERT_EQUAL((c.location & 0xffffffffu), boff + BK_ENTRYLOG_REC_HDR + 300);
    CU_ASSERT_EQUAL(pread(fd, after, sizeof(after), (off_t)(aoff & ~4095ull)), 4096);
    CU_ASSERT_EQUAL(memcmp(before, after, sizeof(before)), 0);
    close(fd);
    bk_entry_loc_t locs[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        mq_buf_t *out = NULL;
        CU_ASSERT_EQUAL(bk_entrylog_read(env.el, &locs[i], 9, i, &out), MQ_OK);
        CU_ASSERT_TRUE(out && out->len == 300 && memcmp(out->data, buf, 300) == 0);
        mq_buf_unref(out);
    }
    bk_entrylog_close(env.el);
    t_env_fini(&env);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"sync pads to a block, synced blocks never rewritten", test_sync_padding},
        {"append, sync, index, read back", test_round_trip},
        {"rotation across logs, new log above every dir", test_rotation},
        {"corrupt or truncated records give MQ_ECORRUPT", test_corruption},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("entrylog", tests, NULL, NULL);
}
