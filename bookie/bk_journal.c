/*
 * bk_journal: the bookie's write-ahead log with group commit (see
 * bk_journal.h for the file and record formats).
 *
 * Three threads, all started by bk_journal_open and joined by close:
 *  - the writer ("bk-jwriter") drains the append queue. It writes when the
 *    force thread is idle (so a lone add is written and synced at once), or
 *    when the oldest queued record has waited max_group_wait_ms, or when
 *    buffered_writes_threshold bytes are queued. Each write is one pwritev
 *    straight from the callers' slices (headers live in the record nodes,
 *    padding points at a shared zero block), ends with a PAD record so the
 *    file position stays aligned, and becomes one force request.
 *  - a force pass takes every pending force request, calls fdatasync once
 *    per file they touch, advances the synced position, then runs the
 *    callbacks in append order and on_group_done once. With sync_data on the
 *    writer runs it itself after each write (records that arrive meanwhile
 *    make the next group): waking another thread for it was a third of a
 *    bookie's context switches at a few thousand adds a second. With
 *    sync_data off the force thread ("bk-jforce") runs it, and only syncs at
 *    rollover and once a second.
 *    With inline_writes (sync_data on) appends do not wake the writer:
 *    the appending thread calls bk_journal_write_queued, which writes every
 *    queued record and runs the force pass there and then. The `writing`
 *    flag hands the writer's state to one thread at a time; the writer
 *    thread only takes it at close, for what is still queued.
 *  - the allocator ("bk-jalloc") keeps the next file ready: a file freed by
 *    bk_journal_trim is renamed to the new id and gets a new header;
 *    otherwise a new file is written full of zeros (prealloc_size at a time)
 *    and fdatasync'ed, so that the writer only ever overwrites allocated
 *    blocks and its fdatasyncs never have to commit metadata. The zeros go
 *    at the writer's pace, an eighth of a file ahead of it (flat out while
 *    the writer waits), so they never pile up in front of its fdatasyncs.
 *
 * Invariants: records are written, synced and called back in append order; a
 * block that holds an acknowledged record is never written again (every write
 * starts on an alignment boundary); when a file is finished (rollover or
 * close) a zero block follows its last record, so that replay can tell a
 * clean end from a torn one even in a recycled file; after the first failed
 * write or fdatasync nothing is written or synced again and every pending
 * and later record completes with MQ_EIO (fsyncgate).
 *
 * Locking: one mutex (lock) guards the queue, the force requests, the
 * prepared file, the file lists, the synced position and the stats. The
 * writer's current file and position belong to the thread that set
 * `writing` (the writer thread, or an inline writer).
 * Callbacks run on the thread of the force pass without the lock held.
 *
 * bk_journal_file.c holds the format helpers and reads files back (replay,
 * and the check that lets open reuse a file prepared but never written).
 */
#include "bk_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bk_journal_int.h"
#include "mq_crc32c.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_JOURNAL_MIN_BATCH (1u << 20)    /* bytes taken per write at least */
#define BK_JOURNAL_ZERO_CHUNK (1u << 20)   /* zero buffer for preallocation */
#define BK_JOURNAL_NOSYNC_NS 1000000000ull /* background sync with sync_data off */
#define BK_JOURNAL_FREE_NODES 4096         /* record nodes kept for reuse */
#define BK_JOURNAL_PACE_NS 20000000ull     /* allocator's re-check while ahead */

/* One journal file, shared by the writer, force requests and the allocator. */
typedef struct bk_jfile {
    uint64_t id;
    int fd;
    atomic_uint refs;
} bk_jfile_t;

/* One queued record. Its header is built in place by the writer, so a write
 * needs no allocation besides the iovec array. */
typedef struct bk_jrec {
    struct bk_jrec *next;
    mq_slice_t payload;
    bk_journal_cb cb;
    void *arg;
    uint64_t enq_ns;
    size_t bytes; /* header + payload, kept after the payload is released */
    uint32_t type;
    uint8_t hdr[BK_JREC_HDR_SIZE];
} bk_jrec_t;

/* One write handed to the force thread. */
typedef struct bk_jforce {
    struct bk_jforce *next;
    bk_jfile_t *file; /* reference held by the request */
    uint64_t end;     /* file offset after this write (aligned) */
    bk_jrec_t *recs;  /* records covered, in append order */
    bool file_done;   /* last write into file */
    bool failed;      /* not written (or the write failed) */
} bk_jforce_t;

/* Records the writer is collecting for one write. @locality writer */
typedef struct bk_jgroup {
    bk_jrec_t *head;
    bk_jrec_t *tail;
    size_t nrec;
    uint64_t bytes; /* headers + payloads */
} bk_jgroup_t;

typedef enum bk_jwriter_state {
    BK_JW_RUNNING = 0,
    BK_JW_WAIT_DATA,  /* queue empty, waiting for an append */
    BK_JW_WAIT_GROUP, /* holding records back while the force thread works */
} bk_jwriter_state_t;

struct bk_journal {
    /* Immutable after open. */
    char *dir; /* <opts.dir>/current */
    bool sync_data;
    bool inline_writes; /* sync_data on and opts.inline_writes */
    uint64_t group_wait_ns;
    size_t threshold;
    uint64_t file_size;
    uint64_t prealloc;
    bool paced;
    uint32_t align;
    uint32_t max_backups;
    uint64_t max_payload;
    void (*on_group_done)(void *arg);
    void *group_arg;
    uint8_t *zeros; /* 2 * align zero bytes, only ever read */

    pthread_t writer_tid;
    pthread_t force_tid;
    pthread_t alloc_tid;

    pthread_mutex_t lock;
    pthread_cond_t writer_cond; /* monotonic clock */
    pthread_cond_t force_cond;  /* monotonic clock */
    pthread_cond_t alloc_cond;  /* monotonic clock */
    pthread_cond_t ready_cond;  /* next file ready, or failure */

    /* @locks lock */
    bk_jrec_t *q_head;
    bk_jrec_t *q_tail;
    size_t q_bytes;
    bk_jwriter_state_t writer_state;
    bool closing;
    bool writing; /* a thread holds the writer's part (the @locality writer state) */
    bool writer_done;
    bk_jforce_t *f_head;
    bk_jforce_t *f_tail;
    bool force_busy;
    bk_journal_pos_t synced;
    bk_jfile_t *next_file;
    uint64_t next_id;
    bool alloc_stop;
    bool switch_waiting; /* the writer waits for the next file */
    uint64_t *old_ids;   /* finished files, ascending, not in free_ids */
    size_t n_old;
    size_t cap_old;
    uint64_t *free_ids; /* trimmed files kept for recycling */
    size_t n_free;
    bk_jrec_t *free_nodes;
    size_t n_free_nodes;
    uint64_t cur_id; /* mirror of cur->id for readers */
    bk_journal_stats_t stats;

    atomic_bool failed;
    atomic_uint_least64_t pos_pub; /* the writer's position, for the allocator's pace */
    atomic_size_t pending_bytes;
    atomic_int fault;

    /* @locality writer: the thread that set writing (the writer thread, or
     * an inline caller of bk_journal_write_queued) */
    bk_jfile_t *cur;
    uint64_t pos;
    struct iovec *iov;
    size_t iov_cap;
    uint8_t pad_hdr[BK_JREC_HDR_SIZE];
};

/* --- small helpers ---------------------------------------------------------- */

static bk_jfile_t *bk_jfile_new(uint64_t id, int fd)
{
    bk_jfile_t *f = mq_malloc(sizeof(*f));
    f->id = id;
    f->fd = fd;
    atomic_init(&f->refs, 1);
    return f;
}

static bk_jfile_t *bk_jfile_ref(bk_jfile_t *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

static void bk_jfile_unref(bk_jfile_t *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        close(f->fd);
        free(f);
    }
}

static void bk_journal_rec_hdr(uint8_t *hdr, uint64_t file_id, uint32_t type, uint32_t len,
                               const void *payload)
{
    mq_put_le32(hdr, len);
    mq_put_le32(hdr + 4, type);
    mq_put_le32(hdr + 8, bk_journal_rec_crc(file_id, type, len, payload));
}

/* Deadline on the monotonic clock, for the conds created with it. */
static void bk_journal_timedwait(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ns)
{
    struct timespec ts = {(time_t)(deadline_ns / 1000000000ull),
                          (long)(deadline_ns % 1000000000ull)};
    pthread_cond_timedwait(cond, lock, &ts);
}

static bool bk_journal_take_fault(bk_journal_t *j, bk_journal_fault_t f)
{
    int expect = (int)f;
    return atomic_load_explicit(&j->fault, memory_order_relaxed) == (int)f &&
           atomic_compare_exchange_strong(&j->fault, &expect, BK_JOURNAL_FAULT_NONE);
}

static int bk_journal_sys_fdatasync(bk_journal_t *j, int fd)
{
    if (j && bk_journal_take_fault(j, BK_JOURNAL_FAULT_SYNC)) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

/* Writes every byte of iov at off, IOV_MAX iovecs per call, resuming after
 * short writes (iov is consumed). */
static mq_err_t bk_journal_pwritev_all(bk_journal_t *j, bk_jfile_t *f, struct iovec *iov,
                                       size_t niov, uint64_t off)
{
    size_t i = 0;
    while (i < niov) {
        int n = (int)MQ_MIN(niov - i, (size_t)IOV_MAX);
        ssize_t w;
        if (bk_journal_take_fault(j, BK_JOURNAL_FAULT_WRITE)) {
            errno = EIO;
            w = -1;
        } else {
            w = pwritev(f->fd, iov + i, n, (off_t)off);
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            MQ_LOG_ERROR("journal write failed file=%016" PRIx64 " offset=%" PRIu64 " err=%s",
                         f->id, off, strerror(e));
            return mq_err_from_errno(e);
        }
        off += (uint64_t)w;
        size_t done = (size_t)w;
        while (i < niov && done >= iov[i].iov_len) {
            done -= iov[i].iov_len;
            i++;
        }
        if (i < niov && done > 0) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + done;
            iov[i].iov_len -= done;
        }
    }
    return MQ_OK;
}

static mq_err_t bk_journal_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                                      const char *path)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            MQ_LOG_ERROR("journal write failed path=%s offset=%" PRIu64 " err=%s", path, off,
                         strerror(e));
            return mq_err_from_errno(e);
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return MQ_OK;
}

/* --- file preparation ------------------------------------------------------- */

/* Renames the trimmed file old_id to id and gives it a new header. Its old
 * records stay but never validate: their CRCs are seeded with old_id.
 * MQ_ENOTFOUND when the file cannot be reused (the caller creates one). */
static mq_err_t bk_journal_recycle(bk_journal_t *j, uint64_t old_id, uint64_t id, bk_jfile_t **out)
{
    char from[PATH_MAX];
    char to[PATH_MAX];
    bk_journal_path(from, sizeof(from), j->dir, old_id, "");
    bk_journal_path(to, sizeof(to), j->dir, id, "");
    int fd = open(from, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        MQ_LOG_WARN("journal recycle open failed path=%s err=%s", from, strerror(errno));
        return MQ_ENOTFOUND;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != j->file_size) {
        /* Written with another journalMaxSizeMB: not worth reusing. */
        close(fd);
        if (unlink(from) != 0) {
            MQ_LOG_WARN("journal unlink failed path=%s err=%s", from, strerror(errno));
        }
        return MQ_ENOTFOUND;
    }
    if (rename(from, to) != 0) {
        int e = errno;
        MQ_LOG_ERROR("journal recycle rename failed from=%s to=%s err=%s", from, to, strerror(e));
        close(fd);
        return mq_err_from_errno(e);
    }
    uint8_t *blk = mq_calloc(1, j->align);
    bk_journal_file_hdr(blk, id);
    mq_err_t err = bk_journal_pwrite_all(fd, blk, j->align, 0, to);
    free(blk);
    if (err == MQ_OK && fdatasync(fd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("journal fdatasync failed path=%s err=%s", to, strerror(e));
        err = mq_err_from_errno(e);
    }
    if (err == MQ_OK) {
        err = mq_fs_fsync_dir(j->dir);
    }
    if (err != MQ_OK) {
        close(fd);
        return err;
    }
    *out = bk_jfile_new(id, fd);
    return MQ_OK;
}

/*
 * Paced zero-fill: the next file is filled in step with the writer's
 * position in the current one, 8/7 as fast, so that it is ready when the
 * writer is seven eighths through; the allocator waits between chunks while
 * it is ahead of that. Without pacing every bookie on a disk wrote a whole
 * file of zeros at once right after a rollover (and bookies sharing a disk
 * roll over together), and the live journals' fdatasyncs queued behind that
 * writeback: adds stalled for 100-300 ms. A fixed lead (an eighth of a file
 * ahead of the writer) still wrote that eighth at once after each rollover:
 * 8 MB per bookie, and adds stalled 10-50 ms. Returns true when close began.
 */
static uint64_t bk_journal_alloc_target(bk_journal_t *j)
{
    uint64_t pos = atomic_load_explicit(&j->pos_pub, memory_order_relaxed);
    return pos + pos / 7;
}

static bool bk_journal_alloc_pace(bk_journal_t *j, uint64_t filled)
{
    pthread_mutex_lock(&j->lock);
    while (!j->alloc_stop && !j->switch_waiting && filled >= bk_journal_alloc_target(j)) {
        j->stats.prealloc_waits++;
        bk_journal_timedwait(&j->alloc_cond, &j->lock, mq_now_ns() + BK_JOURNAL_PACE_NS);
    }
    bool stop = j->alloc_stop;
    pthread_mutex_unlock(&j->lock);
    return stop;
}

/* Creates file id full of zeros under a temporary name, syncs it and renames
 * it into place; with paced, at the writer's pace (bk_journal_alloc_pace).
 * Stops early (MQ_ESHUTDOWN) when close begins. */
static mq_err_t bk_journal_create(bk_journal_t *j, uint64_t id, bool paced, bk_jfile_t **out)
{
    char tmp[PATH_MAX];
    char path[PATH_MAX];
    bk_journal_path(tmp, sizeof(tmp), j->dir, id, ".tmp");
    bk_journal_path(path, sizeof(path), j->dir, id, "");
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        MQ_LOG_ERROR("journal create failed path=%s err=%s", tmp, strerror(e));
        return mq_err_from_errno(e);
    }
    /* Reserve the extents in one go (contiguous when possible); the zeros
     * written next turn them into written extents, so later overwrites change
     * no metadata. */
    int rc = posix_fallocate(fd, 0, (off_t)j->file_size);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        MQ_LOG_ERROR("journal fallocate failed path=%s err=%s", tmp, strerror(rc));
        close(fd);
        unlink(tmp);
        return mq_err_from_errno(rc);
    }
    size_t zlen = (size_t)MQ_MIN(j->prealloc, (uint64_t)BK_JOURNAL_ZERO_CHUNK);
    uint8_t *zero = mq_calloc(1, MQ_MAX(zlen, (size_t)j->align));
    bk_journal_file_hdr(zero, id);
    mq_err_t err = bk_journal_pwrite_all(fd, zero, j->align, 0, tmp);
    memset(zero, 0, j->align);
    uint64_t off = j->align;
    uint64_t since_sync = 0;
    while (err == MQ_OK && off < j->file_size) {
        size_t n = (size_t)MQ_MIN((uint64_t)zlen, j->file_size - off);
        err = bk_journal_pwrite_all(fd, zero, n, off, tmp);
        off += n;
        since_sync += n;
        if (err == MQ_OK && since_sync >= j->prealloc) {
            /* One chunk at a time: the zeros never pile up as dirty pages
             * that a journal fdatasync would have to wait behind. */
            uint64_t chunk = since_sync;
            since_sync = 0;
            if (fdatasync(fd) != 0) {
                int e = errno;
                MQ_LOG_ERROR("journal fdatasync failed path=%s err=%s", tmp, strerror(e));
                err = mq_err_from_errno(e);
            }
            pthread_mutex_lock(&j->lock);
            j->stats.prealloc_bytes += chunk;
            bool stop = j->alloc_stop;
            pthread_mutex_unlock(&j->lock);
            if (!stop && paced && off < j->file_size) {
                stop = bk_journal_alloc_pace(j, off);
            }
            if (stop && err == MQ_OK) {
                err = MQ_ESHUTDOWN;
            }
        }
    }
    free(zero);
    pthread_mutex_lock(&j->lock);
    j->stats.prealloc_bytes += since_sync;
    pthread_mutex_unlock(&j->lock);
    if (err == MQ_OK && fdatasync(fd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("journal fdatasync failed path=%s err=%s", tmp, strerror(e));
        err = mq_err_from_errno(e);
    }
    if (err == MQ_OK && rename(tmp, path) != 0) {
        int e = errno;
        MQ_LOG_ERROR("journal rename failed from=%s to=%s err=%s", tmp, path, strerror(e));
        err = mq_err_from_errno(e);
    }
    if (err == MQ_OK) {
        err = mq_fs_fsync_dir(j->dir);
    }
    if (err != MQ_OK) {
        close(fd);
        unlink(tmp);
        return err;
    }
    *out = bk_jfile_new(id, fd);
    return MQ_OK;
}

/* Makes file id ready, recycling old_id when has_old. *recycled tells which
 * way it went. */
static mq_err_t bk_journal_prepare(bk_journal_t *j, uint64_t id, bool has_old, uint64_t old_id,
                                   bool paced, bk_jfile_t **out, bool *recycled)
{
    *recycled = false;
    if (has_old) {
        mq_err_t err = bk_journal_recycle(j, old_id, id, out);
        if (err == MQ_OK) {
            *recycled = true;
            return MQ_OK;
        }
        if (err != MQ_ENOTFOUND) {
            return err;
        }
    }
    return bk_journal_create(j, id, paced, out);
}

/* --- writer thread ---------------------------------------------------------- */

static void bk_journal_set_failed(bk_journal_t *j) /* @locks lock */
{
    if (!atomic_load(&j->failed)) {
        atomic_store(&j->failed, true);
        MQ_LOG_ERROR("journal failed: every pending and later record completes with %s",
                     mq_err_name(MQ_EIO));
    }
    pthread_cond_broadcast(&j->ready_cond);
    pthread_cond_broadcast(&j->writer_cond);
}

static void bk_journal_push_force(bk_journal_t *j, bk_jforce_t *req) /* @locks lock */
{
    if (j->f_tail) {
        j->f_tail->next = req;
    } else {
        j->f_head = req;
    }
    j->f_tail = req;
    j->force_busy = true;
    if (!j->sync_data) {
        pthread_cond_signal(&j->force_cond);
    }
}

static void bk_journal_group_add(bk_journal_t *j, bk_jgroup_t *g, bk_jrec_t *rec)
{
    bk_journal_rec_hdr(rec->hdr, j->cur->id, rec->type, (uint32_t)rec->payload.len,
                       rec->payload.ptr);
    rec->next = NULL;
    if (g->tail) {
        g->tail->next = rec;
    } else {
        g->head = rec;
    }
    g->tail = rec;
    g->nrec++;
    g->bytes += BK_JREC_HDR_SIZE + rec->payload.len;
}

/*
 * Writes the group (and its padding; with file_done, a zero block after it)
 * at the writer's position with one pwritev, releases the payloads and hands
 * the records to the force thread. A group that cannot be written (journal
 * failed) is handed over as failed. @locality writer
 */
static void bk_journal_flush_group(bk_journal_t *j, bk_jgroup_t *g, bool file_done)
{
    if (!g->head && !file_done) {
        return;
    }
    uint64_t start = j->pos;
    uint64_t end = start + g->bytes;
    uint64_t gap = (j->align - (end & (j->align - 1))) & (j->align - 1);
    if (gap > 0 && gap < BK_JREC_HDR_SIZE) {
        gap += j->align;
    }
    size_t need = 2 * g->nrec + 3;
    if (need > j->iov_cap) {
        j->iov_cap = MQ_MAX(need, 2 * j->iov_cap);
        j->iov = mq_realloc(j->iov, j->iov_cap * sizeof(*j->iov));
    }
    size_t niov = 0;
    for (bk_jrec_t *r = g->head; r; r = r->next) {
        j->iov[niov++] = (struct iovec){r->hdr, BK_JREC_HDR_SIZE};
        if (r->payload.len) {
            j->iov[niov++] = (struct iovec){(void *)r->payload.ptr, r->payload.len};
        }
    }
    if (gap > 0) {
        uint32_t plen = (uint32_t)(gap - BK_JREC_HDR_SIZE);
        bk_journal_rec_hdr(j->pad_hdr, j->cur->id, BK_JREC_PAD, plen, j->zeros);
        j->iov[niov++] = (struct iovec){j->pad_hdr, BK_JREC_HDR_SIZE};
        if (plen) {
            j->iov[niov++] = (struct iovec){j->zeros, plen};
        }
    }
    uint64_t wend = end + gap;
    if (file_done && wend + j->align <= j->file_size) {
        /* Marks the clean end of the file: replay stops at zeros instead of
         * whatever a recycled file held there before. */
        j->iov[niov++] = (struct iovec){j->zeros, j->align};
    }

    bool failed = atomic_load(&j->failed);
    mq_err_t err = MQ_OK;
    if (!failed && niov > 0) {
        err = bk_journal_pwritev_all(j, j->cur, j->iov, niov, start);
    }
    for (bk_jrec_t *r = g->head; r; r = r->next) {
        mq_slice_release(&r->payload);
    }
    j->pos = wend;
    atomic_store_explicit(&j->pos_pub, wend, memory_order_relaxed);

    bk_jforce_t *req = mq_malloc(sizeof(*req));
    req->next = NULL;
    req->file = bk_jfile_ref(j->cur);
    req->end = wend;
    req->recs = g->head;
    req->file_done = file_done;
    pthread_mutex_lock(&j->lock);
    if (err != MQ_OK) {
        bk_journal_set_failed(j);
    }
    req->failed = atomic_load(&j->failed);
    if (!failed && niov > 0) {
        j->stats.writes++;
        j->stats.bytes += wend - start;
        j->stats.records += g->nrec;
    }
    bk_journal_push_force(j, req);
    pthread_mutex_unlock(&j->lock);
    memset(g, 0, sizeof(*g));
}

/* Moves the writer to the prepared next file, waiting for the allocator if
 * it is not ready yet. @locality writer */
static mq_err_t bk_journal_switch_file(bk_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    if (!j->next_file) {
        /* The allocator goes flat out from now on. */
        j->switch_waiting = true;
        pthread_cond_signal(&j->alloc_cond);
    }
    while (!j->next_file && !atomic_load(&j->failed)) {
        pthread_cond_wait(&j->ready_cond, &j->lock);
    }
    j->switch_waiting = false;
    if (!j->next_file) {
        pthread_mutex_unlock(&j->lock);
        return MQ_EIO;
    }
    bk_jfile_t *f = j->next_file;
    j->next_file = NULL;
    if (j->n_old == j->cap_old) {
        j->cap_old = j->cap_old ? j->cap_old * 2 : 16;
        j->old_ids = mq_realloc(j->old_ids, j->cap_old * sizeof(*j->old_ids));
    }
    j->old_ids[j->n_old++] = j->cur->id;
    j->cur_id = f->id;
    pthread_cond_signal(&j->alloc_cond);
    pthread_mutex_unlock(&j->lock);
    MQ_LOG_DEBUG("journal rolled over from=%016" PRIx64 " to=%016" PRIx64, j->cur->id, f->id);
    bk_jfile_unref(j->cur);
    j->cur = f;
    j->pos = j->align;
    atomic_store_explicit(&j->pos_pub, j->pos, memory_order_relaxed);
    return MQ_OK;
}

static void bk_journal_force_reqs(bk_journal_t *j, bk_jforce_t *reqs, bool failed,
                                  bk_jfile_t **dirty, uint64_t *last_sync_ns);

/* Takes every pending force request, and whether the journal has failed.
 * @locks lock */
static bk_jforce_t *bk_journal_take_reqs(bk_journal_t *j, bool *failed)
{
    bk_jforce_t *reqs = j->f_head;
    j->f_head = j->f_tail = NULL;
    *failed = atomic_load(&j->failed);
    return reqs;
}

/* With sync_data on, the writer syncs what it wrote itself: one thread
 * hand-off less per group than waking the force thread, and what queues
 * meanwhile makes the next group. @locality writer */
static void bk_journal_writer_sync(bk_journal_t *j)
{
    if (!j->sync_data) {
        return;
    }
    bool failed;
    pthread_mutex_lock(&j->lock);
    bk_jforce_t *reqs = bk_journal_take_reqs(j, &failed);
    pthread_mutex_unlock(&j->lock);
    if (reqs) {
        uint64_t last_sync_ns = 0;
        bk_journal_force_reqs(j, reqs, failed, NULL, &last_sync_ns);
    }
}

/* Writes a batch taken from the queue, switching files when the next record
 * and its padding do not fit. With final, the last file is marked finished.
 * @locality writer */
static void bk_journal_write_batch(bk_journal_t *j, bk_jrec_t *rec, bool final)
{
    bk_jgroup_t g = {0};
    while (rec) {
        bk_jrec_t *next = rec->next;
        uint64_t need = BK_JREC_HDR_SIZE + rec->payload.len;
        if (!atomic_load(&j->failed) &&
            j->pos + g.bytes + need + j->align + BK_JREC_HDR_SIZE > j->file_size) {
            bk_journal_flush_group(j, &g, true);
            /* Synced before the switch, which may wait for the allocator. */
            bk_journal_writer_sync(j);
            if (bk_journal_switch_file(j) != MQ_OK) {
                /* The journal failed: the records still go through the force
                 * pass, which completes them with MQ_EIO in order. */
                MQ_ASSERT(atomic_load(&j->failed));
            }
        }
        bk_journal_group_add(j, &g, rec);
        rec = next;
    }
    bk_journal_flush_group(j, &g, final);
}

static bool bk_journal_should_write(bk_journal_t *j, uint64_t now) /* @locks lock */
{
    return j->closing || atomic_load(&j->failed) || !j->force_busy || j->q_bytes >= j->threshold ||
           now >= j->q_head->enq_ns + j->group_wait_ns;
}

/* Takes up to MAX(threshold, 1 MiB) bytes of records (at least one) off the
 * queue. @locks lock */
static bk_jrec_t *bk_journal_take_batch(bk_journal_t *j)
{
    size_t cap = MQ_MAX(j->threshold, (size_t)BK_JOURNAL_MIN_BATCH);
    bk_jrec_t *head = j->q_head;
    bk_jrec_t *last = NULL;
    bk_jrec_t *r = head;
    size_t bytes = 0;
    do {
        bytes += BK_JREC_HDR_SIZE + r->payload.len;
        last = r;
        r = r->next;
    } while (r && bytes < cap);
    last->next = NULL;
    j->q_head = r;
    if (!r) {
        j->q_tail = NULL;
    }
    j->q_bytes -= bytes;
    return head;
}

static void *bk_journal_writer_main(void *arg)
{
    bk_journal_t *j = arg;
    mq_log_thread_name("bk-jwriter");
    bool finished = false;
    pthread_mutex_lock(&j->lock);
    for (;;) {
        /* With inline writes the appending thread writes; this thread only
         * takes over at close, once that thread let go. */
        bool mine = (!j->inline_writes || j->closing) && !j->writing;
        if (!j->q_head || !mine) {
            if (j->closing && !j->writing) {
                break;
            }
            j->writer_state = BK_JW_WAIT_DATA;
            pthread_cond_wait(&j->writer_cond, &j->lock);
            j->writer_state = BK_JW_RUNNING;
            continue;
        }
        uint64_t now = mq_now_ns();
        if (!bk_journal_should_write(j, now)) {
            j->writer_state = BK_JW_WAIT_GROUP;
            bk_journal_timedwait(&j->writer_cond, &j->lock, j->q_head->enq_ns + j->group_wait_ns);
            j->writer_state = BK_JW_RUNNING;
            continue;
        }
        bk_jrec_t *batch = bk_journal_take_batch(j);
        bool final = j->closing && !j->q_head;
        j->writing = true;
        pthread_mutex_unlock(&j->lock);
        bk_journal_write_batch(j, batch, final);
        bk_journal_writer_sync(j);
        finished = finished || final;
        pthread_mutex_lock(&j->lock);
        j->writing = false;
    }
    pthread_mutex_unlock(&j->lock);
    if (!finished) {
        bk_jgroup_t g = {0};
        bk_journal_flush_group(j, &g, true);
        bk_journal_writer_sync(j);
    }
    pthread_mutex_lock(&j->lock);
    j->writer_done = true;
    pthread_cond_signal(&j->force_cond);
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* --- force thread ------------------------------------------------------------- */

/* The force thread has nothing left: let a writer that holds a group back
 * write it now. @locks lock */
static void bk_journal_force_idle(bk_journal_t *j)
{
    j->force_busy = false;
    if (j->writer_state == BK_JW_WAIT_GROUP) {
        j->writer_state = BK_JW_RUNNING;
        pthread_cond_signal(&j->writer_cond);
    }
}

static bool bk_journal_sync_file(bk_journal_t *j, bk_jfile_t *f, uint64_t *ns)
{
    uint64_t t0 = mq_now_ns();
    int rc = bk_journal_sys_fdatasync(j, f->fd);
    *ns += mq_now_ns() - t0;
    if (rc != 0) {
        MQ_LOG_ERROR("journal fdatasync failed file=%016" PRIx64 " err=%s", f->id, strerror(errno));
        return false;
    }
    return true;
}

/*
 * Syncs the files a batch of force requests wrote to (once per file, in
 * order) and decides each request's outcome (req->failed). With sync_data
 * off, only finished files are synced; *dirty tracks the file written since
 * its last sync. @locality force
 */
static void bk_journal_force_sync(bk_journal_t *j, bk_jforce_t *reqs, bool failed,
                                  bk_jfile_t **dirty, uint64_t *syncs, uint64_t *sync_ns)
{
    bk_jforce_t *seg = reqs;
    while (seg) {
        bk_jforce_t *last = seg;
        while (last->next && last->next->file == seg->file) {
            last = last->next;
        }
        bool must_sync = j->sync_data || last->file_done;
        if (!failed && must_sync) {
            (*syncs)++;
            if (!bk_journal_sync_file(j, seg->file, sync_ns)) {
                failed = true;
            }
        }
        if (!failed && !j->sync_data) {
            bk_jfile_unref(*dirty);
            *dirty = last->file_done ? NULL : bk_jfile_ref(seg->file);
        }
        for (bk_jforce_t *r = seg;; r = r->next) {
            r->failed = r->failed || failed;
            if (r == last) {
                break;
            }
        }
        seg = last->next;
    }
}

/*
 * Syncs what a list of force requests wrote, advances the synced position,
 * runs the records' callbacks in order, then on_group_done. Called without
 * the lock, returns without it. @locality force, or the writer when
 * sync_data is on (bk_journal_writer_sync)
 */
static void bk_journal_force_reqs(bk_journal_t *j, bk_jforce_t *reqs, bool failed,
                                  bk_jfile_t **dirty, uint64_t *last_sync_ns)
{
    uint64_t syncs = 0;
    uint64_t sync_ns = 0;
    bk_journal_force_sync(j, reqs, failed, dirty, &syncs, &sync_ns);
    if (syncs) {
        *last_sync_ns = mq_now_ns();
    }

    pthread_mutex_lock(&j->lock);
    j->stats.syncs += syncs;
    j->stats.sync_ns += sync_ns;
    bk_jforce_t *ok_last = NULL;
    for (bk_jforce_t *r = reqs; r; r = r->next) {
        if (!r->failed) {
            ok_last = r;
        } else {
            bk_journal_set_failed(j);
        }
    }
    if (ok_last) {
        bk_journal_pos_t p = {ok_last->file->id, ok_last->end};
        if (bk_journal_pos_cmp(p, j->synced) > 0) {
            j->synced = p;
        }
    }
    if (!j->f_head) {
        /* Let the writer start the next group while the callbacks run. */
        bk_journal_force_idle(j);
    }
    pthread_mutex_unlock(&j->lock);

    bool any = false;
    bk_jrec_t *done_head = NULL;
    bk_jrec_t *done_tail = NULL;
    size_t ndone = 0;
    for (bk_jforce_t *r = reqs; r;) {
        mq_err_t err = r->failed ? MQ_EIO : MQ_OK;
        for (bk_jrec_t *rec = r->recs; rec;) {
            bk_jrec_t *next = rec->next;
            atomic_fetch_sub(&j->pending_bytes, rec->bytes);
            if (rec->cb) {
                rec->cb(err, rec->arg);
            }
            any = true;
            rec->next = NULL;
            if (done_tail) {
                done_tail->next = rec;
            } else {
                done_head = rec;
            }
            done_tail = rec;
            ndone++;
            rec = next;
        }
        bk_jforce_t *next = r->next;
        bk_jfile_unref(r->file);
        free(r);
        r = next;
    }
    if (any && j->on_group_done) {
        j->on_group_done(j->group_arg);
    }

    pthread_mutex_lock(&j->lock);
    if (done_head && j->n_free_nodes < BK_JOURNAL_FREE_NODES) {
        done_tail->next = j->free_nodes;
        j->free_nodes = done_head;
        j->n_free_nodes += ndone;
        done_head = NULL;
    }
    pthread_mutex_unlock(&j->lock);
    while (done_head) {
        bk_jrec_t *next = done_head->next;
        free(done_head);
        done_head = next;
    }
}

static void *bk_journal_force_main(void *arg)
{
    bk_journal_t *j = arg;
    mq_log_thread_name("bk-jforce");
    bk_jfile_t *dirty = NULL;
    uint64_t last_sync_ns = mq_now_ns();
    pthread_mutex_lock(&j->lock);
    for (;;) {
        if (!j->f_head) {
            bk_journal_force_idle(j);
            if (j->writer_done) {
                break;
            }
            if (!dirty) {
                pthread_cond_wait(&j->force_cond, &j->lock);
                continue;
            }
            uint64_t due = last_sync_ns + BK_JOURNAL_NOSYNC_NS;
            if (mq_now_ns() < due) {
                bk_journal_timedwait(&j->force_cond, &j->lock, due);
                continue;
            }
            /* sync_data off: the once-a-second background sync. */
            bool failed = atomic_load(&j->failed);
            pthread_mutex_unlock(&j->lock);
            uint64_t ns = 0;
            bool ok = failed || bk_journal_sync_file(j, dirty, &ns);
            bk_jfile_unref(dirty);
            dirty = NULL;
            last_sync_ns = mq_now_ns();
            pthread_mutex_lock(&j->lock);
            j->stats.syncs += failed ? 0 : 1;
            j->stats.sync_ns += ns;
            if (!ok) {
                bk_journal_set_failed(j);
            }
            continue;
        }
        bool failed;
        bk_jforce_t *reqs = bk_journal_take_reqs(j, &failed);
        pthread_mutex_unlock(&j->lock);
        bk_journal_force_reqs(j, reqs, failed, &dirty, &last_sync_ns);
        pthread_mutex_lock(&j->lock);
    }
    bool failed = atomic_load(&j->failed);
    pthread_mutex_unlock(&j->lock);
    if (dirty) {
        /* sync_data off: close still leaves everything on disk. */
        uint64_t ns = 0;
        if (!failed && !bk_journal_sync_file(j, dirty, &ns)) {
            pthread_mutex_lock(&j->lock);
            bk_journal_set_failed(j);
            pthread_mutex_unlock(&j->lock);
        }
        bk_jfile_unref(dirty);
    }
    return NULL;
}

/* --- allocator thread ---------------------------------------------------------- */

static void *bk_journal_alloc_main(void *arg)
{
    bk_journal_t *j = arg;
    mq_log_thread_name("bk-jalloc");
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!j->alloc_stop && (j->next_file || atomic_load(&j->failed))) {
            pthread_cond_wait(&j->alloc_cond, &j->lock);
        }
        if (j->alloc_stop) {
            break;
        }
        uint64_t id = j->next_id++;
        bool has_old = j->n_free > 0;
        uint64_t old_id = has_old ? j->free_ids[--j->n_free] : 0;
        pthread_mutex_unlock(&j->lock);

        bk_jfile_t *f = NULL;
        bool recycled = false;
        mq_err_t err = bk_journal_prepare(j, id, has_old, old_id, j->paced, &f, &recycled);

        pthread_mutex_lock(&j->lock);
        if (err == MQ_ESHUTDOWN) {
            break;
        }
        if (err != MQ_OK) {
            MQ_LOG_ERROR("journal could not prepare file=%016" PRIx64 " err=%s", id,
                         mq_err_name(err));
            bk_journal_set_failed(j);
            continue;
        }
        if (recycled) {
            j->stats.files_recycled++;
        } else {
            j->stats.files_created++;
        }
        j->next_file = f;
        pthread_cond_broadcast(&j->ready_cond);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* --- public API ------------------------------------------------------------------ */

static mq_err_t bk_journal_check_opts(const bk_journal_opts_t *o, uint64_t *file_size)
{
    if (!o->dir || !*o->dir) {
        MQ_LOG_ERROR("journal: no directory given");
        return MQ_EINVAL;
    }
    if (o->alignment < BK_JOURNAL_MIN_ALIGN || o->alignment > BK_JOURNAL_MAX_ALIGN ||
        (o->alignment & (o->alignment - 1)) != 0) {
        MQ_LOG_ERROR("journal: journalAlignmentSize=%u must be a power of two in [%u, %u]",
                     o->alignment, BK_JOURNAL_MIN_ALIGN, BK_JOURNAL_MAX_ALIGN);
        return MQ_EINVAL;
    }
    uint64_t a = o->alignment;
    uint64_t size = (o->max_file_size + a - 1) & ~(a - 1);
    if (size < 8 * a) {
        MQ_LOG_ERROR("journal: journalMaxSizeMB=%" PRIu64 " bytes is below %" PRIu64,
                     o->max_file_size, 8 * a);
        return MQ_EINVAL;
    }
    *file_size = size;
    return MQ_OK;
}

/* Takes file id as the first file when an earlier run prepared it and never
 * wrote to it (see bk_journal_file_unused): as good as a new file, and open
 * need not write a whole file of zeros. A file that may hold a record is
 * never appended to. */
static bool bk_journal_reuse(bk_journal_t *j, uint64_t id, bk_jfile_t **out)
{
    if (!bk_journal_file_unused(j->dir, id, j->file_size)) {
        return false;
    }
    char path[PATH_MAX];
    bk_journal_path(path, sizeof(path), j->dir, id, "");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        MQ_LOG_WARN("journal cannot reopen path=%s err=%s", path, strerror(errno));
        return false;
    }
    *out = bk_jfile_new(id, fd);
    return true;
}

static void bk_journal_stop_alloc(bk_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    j->alloc_stop = true;
    pthread_cond_signal(&j->alloc_cond);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->alloc_tid, NULL);
}

/* Starts the three threads; on failure, stops the ones already running. */
static mq_err_t bk_journal_start(bk_journal_t *j)
{
    int rc = pthread_create(&j->alloc_tid, NULL, bk_journal_alloc_main, j);
    if (rc != 0) {
        MQ_LOG_ERROR("journal pthread_create failed err=%s", strerror(rc));
        return mq_err_from_errno(rc);
    }
    rc = pthread_create(&j->force_tid, NULL, bk_journal_force_main, j);
    if (rc != 0) {
        MQ_LOG_ERROR("journal pthread_create failed err=%s", strerror(rc));
        bk_journal_stop_alloc(j);
        return mq_err_from_errno(rc);
    }
    rc = pthread_create(&j->writer_tid, NULL, bk_journal_writer_main, j);
    if (rc != 0) {
        MQ_LOG_ERROR("journal pthread_create failed err=%s", strerror(rc));
        pthread_mutex_lock(&j->lock);
        j->writer_done = true;
        pthread_cond_signal(&j->force_cond);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->force_tid, NULL);
        bk_journal_stop_alloc(j);
        return mq_err_from_errno(rc);
    }
    return MQ_OK;
}

mq_err_t bk_journal_open(const bk_journal_opts_t *opts, bk_journal_t **out)
{
    uint64_t file_size;
    mq_err_t err = bk_journal_check_opts(opts, &file_size);
    if (err != MQ_OK) {
        return err;
    }
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/current", opts->dir) >= (int)sizeof(dir) - 32) {
        MQ_LOG_ERROR("journal: directory name too long dir=%s", opts->dir);
        return MQ_EINVAL;
    }
    /* The parent's fsync makes a newly created current/ itself durable. */
    err = mq_fs_mkdirs(dir);
    if (err == MQ_OK) {
        err = mq_fs_fsync_dir(opts->dir);
    }
    if (err != MQ_OK) {
        return err;
    }
    uint64_t *ids;
    size_t n;
    err = bk_journal_list(dir, true, &ids, &n);
    if (err != MQ_OK) {
        return err;
    }

    bk_journal_t *j = mq_calloc(1, sizeof(*j));
    j->dir = mq_strdup(dir);
    j->sync_data = opts->sync_data;
    j->inline_writes = opts->sync_data && opts->inline_writes;
    j->group_wait_ns = (uint64_t)opts->max_group_wait_ms * 1000000ull;
    j->threshold = opts->buffered_writes_threshold;
    j->file_size = file_size;
    j->prealloc = opts->prealloc_size ? opts->prealloc_size : file_size;
    j->paced = opts->paced_prealloc;
    j->align = opts->alignment;
    j->max_backups = opts->max_backups;
    j->max_payload = MQ_MIN((uint64_t)UINT32_MAX, file_size - 3 * (uint64_t)j->align);
    j->on_group_done = opts->on_group_done;
    j->group_arg = opts->group_arg;
    j->zeros = mq_calloc(2, j->align);
    j->old_ids = ids;
    j->n_old = n;
    j->cap_old = n;
    atomic_init(&j->failed, false);
    atomic_init(&j->pending_bytes, 0);
    atomic_init(&j->pos_pub, 0);
    atomic_init(&j->fault, BK_JOURNAL_FAULT_NONE);
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->writer_cond, &ca);
    pthread_cond_init(&j->force_cond, &ca);
    pthread_cond_init(&j->alloc_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&j->ready_cond, NULL);

    /* Ids only grow. An empty directory starts from the wall clock (as
     * BookKeeper does), so that a wiped journal never reuses ids that an
     * older lastMark could point past. */
    uint64_t first;
    if (n > 0 && bk_journal_reuse(j, ids[n - 1], &j->cur)) {
        first = ids[--j->n_old];
    } else {
        first = n ? ids[n - 1] + 1 : mq_wall_ms();
        bool recycled;
        err = bk_journal_prepare(j, first, false, 0, false, &j->cur, &recycled);
        if (err != MQ_OK) {
            MQ_LOG_ERROR("journal could not create its first file dir=%s err=%s", dir,
                         mq_err_name(err));
            goto fail;
        }
        j->stats.files_created = 1;
    }
    j->pos = j->align;
    j->cur_id = first;
    j->synced = (bk_journal_pos_t){first, j->align};
    j->next_id = first + 1;

    err = bk_journal_start(j);
    if (err != MQ_OK) {
        bk_jfile_unref(j->cur);
        bk_jfile_unref(j->next_file);
        goto fail;
    }
    MQ_LOG_INFO("journal opened dir=%s file=%016" PRIx64 " size=%" PRIu64 " align=%u sync=%d", dir,
                first, file_size, j->align, (int)j->sync_data);
    *out = j;
    return MQ_OK;

fail:
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->writer_cond);
    pthread_cond_destroy(&j->force_cond);
    pthread_cond_destroy(&j->alloc_cond);
    pthread_cond_destroy(&j->ready_cond);
    free(j->zeros);
    free(j->old_ids);
    free(j->dir);
    free(j);
    return err;
}

mq_err_t bk_journal_append(bk_journal_t *j, bk_jrec_type_t type, const mq_slice_t *payload,
                           bk_journal_cb cb, void *arg)
{
    if (type != BK_JREC_ENTRY && type != BK_JREC_MASTER_KEY && type != BK_JREC_FENCE) {
        return MQ_EINVAL;
    }
    if (payload->len > j->max_payload) {
        return MQ_ETOOLARGE;
    }
    size_t bytes = BK_JREC_HDR_SIZE + payload->len;
    uint64_t now = mq_now_ns();
    pthread_mutex_lock(&j->lock);
    if (j->closing) {
        pthread_mutex_unlock(&j->lock);
        return MQ_ESHUTDOWN;
    }
    if (atomic_load(&j->failed)) {
        pthread_mutex_unlock(&j->lock);
        return MQ_EIO;
    }
    bk_jrec_t *rec = j->free_nodes;
    if (rec) {
        j->free_nodes = rec->next;
        j->n_free_nodes--;
    } else {
        rec = mq_malloc(sizeof(*rec));
    }
    rec->next = NULL;
    rec->payload = mq_slice_dup(payload);
    rec->cb = cb;
    rec->arg = arg;
    rec->enq_ns = now;
    rec->bytes = bytes;
    rec->type = (uint32_t)type;
    if (j->q_tail) {
        j->q_tail->next = rec;
    } else {
        j->q_head = rec;
    }
    j->q_tail = rec;
    size_t before = j->q_bytes;
    j->q_bytes += bytes;
    atomic_fetch_add(&j->pending_bytes, bytes);
    /* Wake the writer only when it waits for exactly this: any record, or
     * the group reaching the size threshold. */
    if (!j->inline_writes && (j->writer_state == BK_JW_WAIT_DATA ||
                              (j->writer_state == BK_JW_WAIT_GROUP && before < j->threshold &&
                               j->q_bytes >= j->threshold))) {
        j->writer_state = BK_JW_RUNNING;
        pthread_cond_signal(&j->writer_cond);
    }
    pthread_mutex_unlock(&j->lock);
    return MQ_OK;
}

void bk_journal_write_queued(bk_journal_t *j)
{
    if (!j->inline_writes) {
        return;
    }
    pthread_mutex_lock(&j->lock);
    if (!j->q_head || j->writing || j->closing) {
        /* Nothing to do, or close is (or will be) the writer thread's. */
        pthread_mutex_unlock(&j->lock);
        return;
    }
    j->writing = true;
    while (j->q_head) {
        bk_jrec_t *batch = bk_journal_take_batch(j);
        pthread_mutex_unlock(&j->lock);
        bk_journal_write_batch(j, batch, false);
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    bk_journal_writer_sync(j);
    pthread_mutex_lock(&j->lock);
    j->writing = false;
    if (j->closing) {
        pthread_cond_signal(&j->writer_cond);
    }
    pthread_mutex_unlock(&j->lock);
}

bool bk_journal_inline_writes(const bk_journal_t *j)
{
    return j->inline_writes;
}

bk_journal_pos_t bk_journal_synced(bk_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    bk_journal_pos_t p = j->synced;
    pthread_mutex_unlock(&j->lock);
    return p;
}

size_t bk_journal_queued_bytes(bk_journal_t *j)
{
    return atomic_load(&j->pending_bytes);
}

void bk_journal_trim(bk_journal_t *j, bk_journal_pos_t mark)
{
    pthread_mutex_lock(&j->lock);
    /* Never beyond what is synced: a file still being synced is not free. */
    uint64_t limit = MQ_MIN(mark.file_id, j->synced.file_id);
    size_t k = 0;
    while (k < j->n_old && j->old_ids[k] < limit) {
        k++;
    }
    uint64_t *del = NULL;
    size_t ndel = 0;
    if (k > 0) {
        if (!j->free_ids) {
            j->free_ids = mq_calloc(MQ_MAX(j->max_backups, 1u), sizeof(*j->free_ids));
        }
        del = mq_malloc(k * sizeof(*del));
        for (size_t i = 0; i < k; i++) {
            if (j->n_free < j->max_backups) {
                j->free_ids[j->n_free++] = j->old_ids[i];
            } else {
                del[ndel++] = j->old_ids[i];
            }
        }
        memmove(j->old_ids, j->old_ids + k, (j->n_old - k) * sizeof(*j->old_ids));
        j->n_old -= k;
    }
    pthread_mutex_unlock(&j->lock);
    for (size_t i = 0; i < ndel; i++) {
        char path[PATH_MAX];
        bk_journal_path(path, sizeof(path), j->dir, del[i], "");
        if (unlink(path) != 0 && errno != ENOENT) {
            MQ_LOG_WARN("journal unlink failed path=%s err=%s", path, strerror(errno));
        }
    }
    if (ndel > 0) {
        mq_fs_fsync_dir(j->dir);
        MQ_LOG_DEBUG("journal trimmed deleted=%zu kept=%zu mark=%016" PRIx64, ndel, k - ndel,
                     mark.file_id);
    }
    free(del);
}

bool bk_journal_failed(bk_journal_t *j)
{
    return atomic_load(&j->failed);
}

void bk_journal_get_stats(bk_journal_t *j, bk_journal_stats_t *out)
{
    pthread_mutex_lock(&j->lock);
    *out = j->stats;
    pthread_mutex_unlock(&j->lock);
}

void bk_journal_close(bk_journal_t *j)
{
    if (!j) {
        return;
    }
    pthread_mutex_lock(&j->lock);
    j->closing = true;
    j->writer_state = BK_JW_RUNNING;
    pthread_cond_signal(&j->writer_cond);
    pthread_mutex_unlock(&j->lock);
    pthread_join(j->writer_tid, NULL);
    pthread_join(j->force_tid, NULL);
    bk_journal_stop_alloc(j);

    MQ_ASSERT(!j->q_head && !j->f_head);
    bk_jfile_unref(j->cur);
    bk_jfile_unref(j->next_file);
    while (j->free_nodes) {
        bk_jrec_t *next = j->free_nodes->next;
        free(j->free_nodes);
        j->free_nodes = next;
    }
    MQ_LOG_INFO("journal closed dir=%s records=%" PRIu64 " syncs=%" PRIu64, j->dir,
                j->stats.records, j->stats.syncs);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->writer_cond);
    pthread_cond_destroy(&j->force_cond);
    pthread_cond_destroy(&j->alloc_cond);
    pthread_cond_destroy(&j->ready_cond);
    free(j->iov);
    free(j->zeros);
    free(j->old_ids);
    free(j->free_ids);
    free(j->dir);
    free(j);
}

void bk_journal_test_inject(bk_journal_t *j, bk_journal_fault_t fault)
{
    atomic_store(&j->fault, (int)fault);
}

uint64_t bk_journal_test_current_file(bk_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t id = j->cur_id;
    pthread_mutex_unlock(&j->lock);
    return id;
}
