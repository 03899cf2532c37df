/*
 * bk_storage: ledger storage (see bk_storage.h): two write caches in front
 * of the entry log and the index, and the checkpoint.
 *
 * Adds (the bookie's network thread) and reads (any thread) take lock only
 * to touch the caches: a put is a hash insert and a refcount increment. The
 * checkpoint (one thread) swaps the active cache out under the lock, then
 * works without it: it writes the swapped cache sorted to the entry log,
 * syncs it, writes every location and the given ledger records in one
 * synced index batch, and only then drops the swapped cache (under the lock)
 * and persists the journal mark in every ledger dir. A reader that misses
 * both caches under the lock therefore finds the entry in the index: the
 * flushed cache disappears only after the index points at the entry log.
 * If the checkpoint fails, the swapped cache's entries go back into the
 * active one (newer copies win), so nothing readable is lost and the next
 * checkpoint retries; the mark stays where it was.
 *
 * Locking: lock guards active, flushing, mark and the checkpoint stats. The
 * flushing cache is never modified while it is published, so readers and
 * the checkpoint thread read it concurrently.
 */
#include "bk_storage.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_entrylog.h"
#include "bk_writecache.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_STORAGE_MARK_LEN 16

struct bk_storage {
    char **mark_paths; /* <ledgerDir>/current/lastMark */
    size_t ndirs;
    bk_entrylog_t *el;
    bk_index_t *idx;

    pthread_mutex_t lock;
    /* @locks lock */
    bk_writecache_t *active;
    bk_writecache_t *flushing;
    bk_journal_pos_t mark;
    bk_storage_stats_t stats; /* checkpoint fields */

    atomic_uint_fast64_t entrylog_reads;
    atomic_uint_fast64_t cache_hits;
    atomic_uint_fast64_t pace_bps; /* bk_storage_pace_next */
};

/* Reads one lastMark file; false when absent or garbled (logged). */
static bool bk_storage_read_mark(const char *path, bk_journal_pos_t *out)
{
    char *buf = NULL;
    size_t len = 0;
    mq_err_t err = mq_fs_read_file(path, 64, &buf, &len);
    if (err == MQ_ENOTFOUND) {
        return false;
    }
    if (err != MQ_OK || len != BK_STORAGE_MARK_LEN) {
        MQ_LOG_WARN("lastMark is unreadable or garbled, ignored path=%s err=%s len=%zu", path,
                    mq_err_name(err), len);
        free(buf);
        return false;
    }
    out->file_id = mq_get_le64((const uint8_t *)buf);
    out->offset = mq_get_le64((const uint8_t *)buf + 8);
    free(buf);
    return true;
}

static void bk_storage_free_paths(bk_storage_t *st)
{
    for (size_t i = 0; i < st->ndirs; i++) {
        free(st->mark_paths[i]);
    }
    free(st->mark_paths);
}

mq_err_t bk_storage_open(const bk_storage_opts_t *opts, bk_storage_t **out)
{
    if (!opts->ledger_dirs || opts->nledger_dirs == 0) {
        MQ_LOG_ERROR("storage: no ledger directory given");
        return MQ_EINVAL;
    }
    bk_storage_t *st = mq_calloc(1, sizeof(*st));
    st->ndirs = opts->nledger_dirs;
    st->mark_paths = mq_calloc(st->ndirs, sizeof(*st->mark_paths));
    mq_err_t err = MQ_OK;
    for (size_t i = 0; i < st->ndirs && err == MQ_OK; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/current", opts->ledger_dirs[i]) >=
            (int)sizeof(path) - 32) {
            MQ_LOG_ERROR("storage: directory name too long dir=%s", opts->ledger_dirs[i]);
            err = MQ_EINVAL;
            break;
        }
        err = mq_fs_mkdirs(path);
        st->mark_paths[i] = mq_malloc(strlen(path) + sizeof("/lastMark"));
        sprintf(st->mark_paths[i], "%s/lastMark", path);
        bk_journal_pos_t m;
        if (err == MQ_OK && bk_storage_read_mark(st->mark_paths[i], &m) &&
            bk_journal_pos_cmp(m, st->mark) > 0) {
            st->mark = m;
        }
    }
    if (err == MQ_OK) {
        err = bk_entrylog_open(opts->ledger_dirs, opts->nledger_dirs, opts->entry_log_size_limit,
                               &st->el);
    }
    if (err == MQ_OK) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/current/index", opts->ledger_dirs[0]);
        err = bk_index_open(path, opts->index_cache_bytes, &st->idx);
        if (err != MQ_OK) {
            bk_entrylog_close(st->el);
        }
    }
    if (err != MQ_OK) {
        bk_storage_free_paths(st);
        free(st);
        return err;
    }
    pthread_mutex_init(&st->lock, NULL);
    st->active = bk_writecache_new(0);
    atomic_init(&st->entrylog_reads, 0);
    atomic_init(&st->cache_hits, 0);
    MQ_LOG_INFO("storage opened dirs=%zu mark=%016" PRIx64 ":%" PRIu64, st->ndirs, st->mark.file_id,
                st->mark.offset);
    *out = st;
    return MQ_OK;
}

void bk_storage_close(bk_storage_t *st)
{
    if (!st) {
        return;
    }
    MQ_ASSERT(!st->flushing);
    bk_writecache_free(st->active);
    bk_entrylog_close(st->el);
    bk_index_close(st->idx);
    bk_storage_free_paths(st);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

bk_journal_pos_t bk_storage_mark(bk_storage_t *st)
{
    pthread_mutex_lock(&st->lock);
    bk_journal_pos_t m = st->mark;
    pthread_mutex_unlock(&st->lock);
    return m;
}

void bk_storage_add(bk_storage_t *st, uint64_t ledger_id, int64_t entry_id, const mq_slice_t *bytes)
{
    if (entry_id < 0) {
        /* The server checks entry ids before it gets here. */
        MQ_LOG_ERROR("storage add with a negative entry id ignored ledger=%" PRIu64
                     " entry=%" PRId64,
                     ledger_id, entry_id);
        return;
    }
    pthread_mutex_lock(&st->lock);
    bk_writecache_put(st->active, ledger_id, entry_id, bytes);
    pthread_mutex_unlock(&st->lock);
}

/* Highest entry id in the caches, or -1. */
static int64_t bk_storage_cache_last(bk_storage_t *st, uint64_t ledger_id)
{
    pthread_mutex_lock(&st->lock);
    int64_t last = bk_writecache_last_entry(st->active, ledger_id);
    if (st->flushing) {
        last = MQ_MAX(last, bk_writecache_last_entry(st->flushing, ledger_id));
    }
    pthread_mutex_unlock(&st->lock);
    return last;
}

int64_t bk_storage_last_entry(bk_storage_t *st, uint64_t ledger_id)
{
    /* Caches first, then the index: an entry leaves the caches only after
     * the index has it. */
    int64_t last = bk_storage_cache_last(st, ledger_id);
    int64_t e;
    bk_entry_loc_t loc;
    if (bk_index_last_entry(st->idx, ledger_id, &e, &loc) == MQ_OK) {
        last = MQ_MAX(last, e);
    }
    return last;
}

mq_err_t bk_storage_get(bk_storage_t *st, uint64_t ledger_id, int64_t entry_id, mq_slice_t *out)
{
    /* An empty slice on failure: releasing it is always safe. */
    *out = (mq_slice_t){NULL, NULL, 0};
    if (entry_id == -1) {
        entry_id = bk_storage_last_entry(st, ledger_id);
    }
    if (entry_id < 0) {
        return MQ_ENOENTRY;
    }
    pthread_mutex_lock(&st->lock);
    bool hit = bk_writecache_get(st->active, ledger_id, entry_id, out) ||
               (st->flushing && bk_writecache_get(st->flushing, ledger_id, entry_id, out));
    pthread_mutex_unlock(&st->lock);
    if (hit) {
        atomic_fetch_add_explicit(&st->cache_hits, 1, memory_order_relaxed);
        return MQ_OK;
    }
    bk_entry_loc_t loc;
    mq_err_t err = bk_index_get_entry(st->idx, ledger_id, entry_id, &loc);
    if (err != MQ_OK) {
        return err;
    }
    mq_buf_t *buf;
    err = bk_entrylog_read(st->el, &loc, ledger_id, entry_id, &buf);
    if (err != MQ_OK) {
        return err;
    }
    atomic_fetch_add_explicit(&st->entrylog_reads, 1, memory_order_relaxed);
    out->buf = buf;
    out->ptr = buf->data;
    out->len = buf->len;
    return MQ_OK;
}

static int bk_storage_id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Builds ranges from ascending ids (duplicates allowed). */
typedef struct bk_storage_ranges {
    int64_t *pairs;
    size_t count;
    size_t cap;
    const int64_t *cached; /* sorted ids from the caches, merged in */
    size_t ncached;
    size_t next;
} bk_storage_ranges_t;

static void bk_storage_ranges_push(bk_storage_ranges_t *r, int64_t id)
{
    if (r->count > 0) {
        int64_t *last = &r->pairs[2 * r->count - 1];
        if (id <= *last) {
            return;
        }
        if (id == *last + 1) {
            *last = id;
            return;
        }
    }
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->pairs = mq_realloc(r->pairs, 2 * r->cap * sizeof(*r->pairs));
    }
    r->pairs[2 * r->count] = id;
    r->pairs[2 * r->count + 1] = id;
    r->count++;
}

static void bk_storage_ranges_index_cb(int64_t id, void *arg)
{
    bk_storage_ranges_t *r = arg;
    while (r->next < r->ncached && r->cached[r->next] < id) {
        bk_storage_ranges_push(r, r->cached[r->next++]);
    }
    bk_storage_ranges_push(r, id);
}

mq_err_t bk_storage_entry_ranges(bk_storage_t *st, uint64_t ledger_id, int64_t **pairs,
                                 size_t *count)
{
    int64_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    pthread_mutex_lock(&st->lock);
    bk_writecache_ledger_entries(st->active, ledger_id, &ids, &n, &cap);
    if (st->flushing) {
        bk_writecache_ledger_entries(st->flushing, ledger_id, &ids, &n, &cap);
    }
    pthread_mutex_unlock(&st->lock);
    if (n > 1) {
        qsort(ids, n, sizeof(*ids), bk_storage_id_cmp);
    }
    /* The index after the caches, as for reads: nothing can slip between. */
    bk_storage_ranges_t r = {NULL, 0, 0, ids, n, 0};
    mq_err_t err = bk_index_foreach_entry(st->idx, ledger_id, bk_storage_ranges_index_cb, &r);
    while (r.next < n) {
        bk_storage_ranges_push(&r, ids[r.next++]);
    }
    free(ids);
    if (err != MQ_OK) {
        free(r.pairs);
        return err;
    }
    *pairs = r.pairs;
    *count = r.count;
    return MQ_OK;
}

size_t bk_storage_cache_bytes(bk_storage_t *st)
{
    pthread_mutex_lock(&st->lock);
    size_t n = bk_writecache_bytes(st->active);
    if (st->flushing) {
        n += bk_writecache_bytes(st->flushing);
    }
    pthread_mutex_unlock(&st->lock);
    return n;
}

typedef struct bk_storage_flush {
    bk_storage_t *st;
    bk_index_batch_t *batch;
    uint64_t bytes;
    /* Pacing (st->pace_bps, 0: none): bytes may reach pace * elapsed. */
    bool paced;
    uint64_t t0;
    uint64_t total;      /* bytes in the cache being flushed */
    uint64_t next_check; /* f->bytes at which to look again */
} bk_storage_flush_t;

/* A paced checkpoint looks at the clock once per this many bytes. */
#define BK_STORAGE_PACE_STEP (1u << 20)

/*
 * Checkpoint pacing. Under a steady load every bookie of a cluster takes
 * the same bytes and checkpoints about as often, and a checkpoint written
 * flat out is a burst of tens of MB that the disk (shared, in a small
 * cluster) takes at once: every journal's fdatasync queues behind it, and
 * the device slowed down for a second afterwards (measured: 100-230 MB
 * bursts, then adds stalled 20-70 ms). Spread over a longer time, the same
 * bytes go out beside the journals' syncs.
 */
static void bk_storage_pace(bk_storage_flush_t *f)
{
    f->next_check = f->bytes + BK_STORAGE_PACE_STEP;
    for (;;) {
        uint64_t pace = atomic_load(&f->st->pace_bps);
        pthread_mutex_lock(&f->st->lock);
        size_t active = bk_writecache_bytes(f->st->active);
        pthread_mutex_unlock(&f->st->lock);
        /* Half the flushed bytes back in the active cache already: adds
         * are faster than the pace assumed, and must not fill the cache
         * (they would be paused until this checkpoint ends). */
        if (pace == 0 || active > f->total / 2) {
            f->paced = false; /* stopping, or adds outran the pace */
            return;
        }
        uint64_t due = f->t0 + (uint64_t)((double)f->bytes * 1e9 / (double)pace);
        uint64_t now = mq_now_ns();
        if (due <= now) {
            return;
        }
        /* Short naps, so that a stop is heard soon. */
        uint64_t nap = MQ_MIN(due - now, 10000000ull);
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
    }
}

static mq_err_t bk_storage_flush_entry(uint64_t ledger_id, int64_t entry_id,
                                       const mq_slice_t *bytes, void *arg)
{
    bk_storage_flush_t *f = arg;
    if (bytes->len > UINT32_MAX) {
        MQ_LOG_ERROR("storage entry too large ledger=%" PRIu64 " entry=%" PRId64 " bytes=%zu",
                     ledger_id, entry_id, bytes->len);
        return MQ_ETOOLARGE;
    }
    bk_entry_loc_t loc;
    mq_err_t err =
        bk_entrylog_append(f->st->el, ledger_id, entry_id, bytes->ptr, (uint32_t)bytes->len, &loc);
    if (err != MQ_OK) {
        return err;
    }
    bk_index_batch_put_entry(f->batch, ledger_id, entry_id, &loc);
    f->bytes += bytes->len;
    if (f->paced && f->bytes >= f->next_check) {
        bk_storage_pace(f);
    }
    return MQ_OK;
}

/* Writes the mark into every ledger dir; MQ_OK only when all took it. */
static mq_err_t bk_storage_persist_mark(bk_storage_t *st, bk_journal_pos_t mark, bool *any)
{
    uint8_t buf[BK_STORAGE_MARK_LEN];
    mq_put_le64(buf, mark.file_id);
    mq_put_le64(buf + 8, mark.offset);
    mq_err_t first = MQ_OK;
    *any = false;
    for (size_t i = 0; i < st->ndirs; i++) {
        mq_err_t err = mq_fs_write_atomic(st->mark_paths[i], buf, sizeof(buf));
        if (err == MQ_OK) {
            *any = true;
        } else if (first == MQ_OK) {
            first = err;
        }
    }
    return first;
}

mq_err_t bk_storage_checkpoint(bk_storage_t *st, bk_journal_pos_t mark,
                               const bk_ledger_update_t *ledgers, size_t nledgers)
{
    uint64_t t0 = mq_now_ns();
    /* The next cache is sized like the last one, and allocated without the
     * lock: adds never wait for it. */
    pthread_mutex_lock(&st->lock);
    size_t hint = bk_writecache_count(st->active);
    pthread_mutex_unlock(&st->lock);
    bk_writecache_t *fresh = bk_writecache_new(hint);
    pthread_mutex_lock(&st->lock);
    MQ_ASSERT(!st->flushing);
    bk_writecache_t *fl = st->active;
    st->flushing = fl;
    st->active = fresh;
    bool advance = bk_journal_pos_cmp(mark, st->mark) > 0;
    pthread_mutex_unlock(&st->lock);

    bk_storage_flush_t f = {.st = st,
                            .batch = bk_index_batch_new(),
                            .paced = atomic_load(&st->pace_bps) > 0,
                            .t0 = mq_now_ns(),
                            .total = bk_writecache_bytes(fl),
                            .next_check = BK_STORAGE_PACE_STEP};
    mq_err_t err = bk_writecache_foreach_sorted(fl, bk_storage_flush_entry, &f);
    if (err == MQ_OK) {
        err = bk_entrylog_sync(st->el);
    }
    if (err == MQ_OK) {
        for (size_t i = 0; i < nledgers; i++) {
            bk_index_batch_put_ledger(f.batch, ledgers[i].ledger_id, &ledgers[i].rec);
        }
        if (bk_index_batch_count(f.batch) > 0) {
            err = bk_index_write(st->idx, f.batch, true);
        }
    }
    bk_index_batch_free(f.batch);
    atomic_store(&st->pace_bps, 0);

    pthread_mutex_lock(&st->lock);
    if (err != MQ_OK) {
        /* Keep every entry readable: back into the active cache, where a
         * newer copy of the same entry wins. */
        bk_writecache_absorb(st->active, fl);
    }
    st->flushing = NULL;
    pthread_mutex_unlock(&st->lock);
    size_t count = bk_writecache_count(fl);
    bk_writecache_free(fl);
    if (err != MQ_OK) {
        MQ_LOG_ERROR("storage checkpoint failed entries=%zu err=%s", count, mq_err_name(err));
        return err;
    }

    bool any = false;
    if (advance) {
        err = bk_storage_persist_mark(st, mark, &any);
    }
    pthread_mutex_lock(&st->lock);
    if (any && bk_journal_pos_cmp(mark, st->mark) > 0) {
        /* The highest mark of all dirs wins at open, so one copy is enough
         * for the next start; an error still tells the caller not to trim. */
        st->mark = mark;
    }
    st->stats.checkpoints++;
    st->stats.entries_flushed += count;
    st->stats.bytes_flushed += f.bytes;
    st->stats.last_checkpoint_ns = mq_now_ns() - t0;
    pthread_mutex_unlock(&st->lock);
    MQ_LOG_DEBUG("storage checkpoint entries=%zu bytes=%" PRIu64 " mark=%016" PRIx64 ":%" PRIu64
                 " err=%s",
                 count, f.bytes, mark.file_id, mark.offset, mq_err_name(err));
    return err;
}

void bk_storage_pace_next(bk_storage_t *st, uint64_t bytes_per_sec)
{
    atomic_store(&st->pace_bps, bytes_per_sec);
}

mq_err_t bk_storage_foreach_ledger(bk_storage_t *st,
                                   void (*cb)(uint64_t ledger_id, const bk_ledger_rec_t *rec,
                                              void *arg),
                                   void *arg)
{
    return bk_index_foreach_ledger(st->idx, cb, arg);
}

void bk_storage_get_stats(bk_storage_t *st, bk_storage_stats_t *out)
{
    pthread_mutex_lock(&st->lock);
    *out = st->stats;
    pthread_mutex_unlock(&st->lock);
    out->entrylog_reads = atomic_load_explicit(&st->entrylog_reads, memory_order_relaxed);
    out->cache_hits = atomic_load_explicit(&st->cache_hits, memory_order_relaxed);
}
