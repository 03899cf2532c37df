/*
 * bk_entrylog: interleaved entry log files (see bk_entrylog.h for the
 * format). The checkpoint thread is the only writer: it appends into a 1 MiB
 * aligned buffer that is written out when full and on bk_entrylog_sync, and
 * rotates to a new log (created in the ledger dir with the most free space,
 * its header synced before use) when the next record would pass
 * log_size_limit. Logs rotated since the last sync keep their write fd until
 * that sync has fdatasync'ed them.
 *
 * Writes use O_DIRECT where the file system allows it (else plain writes):
 * entries go from the buffer to the device without a second copy in the page
 * cache, which otherwise costs as much CPU as everything else a bookie does
 * (the journal already holds every entry once; readers of checkpointed
 * entries are served from the index and a pread). Direct writes are whole
 * aligned blocks, so bk_entrylog_sync writes the last partial block padded
 * with zeros, and the next record starts on the following block: a block
 * holding synced, indexed records is never written again. A zero record
 * header (length 0, CRC 0) therefore means "padding up to the next block".
 *
 * Readers (any thread) use their own O_RDONLY fds, opened on first use, with
 * the log's header checked once, kept in a small table and shared through a
 * reference count so that no fd is closed under a pread. Every read checks
 * the record header against the location and the caller's ids, and the
 * CRC: bytes from disk never crash us, they give MQ_ECORRUPT.
 *
 * Locking: lock guards the read-fd table and the published (cur_id,
 * flushed) pair that tells readers which part of the active log is on disk
 * yet. Everything else belongs to the writer thread.
 */
#include "bk_entrylog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mq_crc32c.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_ELOG_MAGIC "LMQE"
#define BK_ELOG_VERSION 1u
#define BK_ELOG_HDR 4096u
#define BK_ELOG_WBUF (1u << 20)
#define BK_ELOG_ALIGN 4096u
#define BK_ELOG_MAX_RFDS 256
#define BK_ELOG_MAX_ID 0xffffffffull

/* A read fd on one log, shared by concurrent readers. */
typedef struct bk_elog_rfd {
    uint64_t id;
    int fd;
    unsigned refs; /* @locks lock */
} bk_elog_rfd_t;

/* A rotated log whose last bytes still need an fdatasync. */
typedef struct bk_elog_rotated {
    uint64_t id;
    int fd;
} bk_elog_rotated_t;

struct bk_entrylog {
    char **dirs; /* <ledgerDir>/current */
    size_t ndirs;
    uint64_t limit;

    /* @locality writer */
    int wfd;
    bool direct; /* wfd was opened with O_DIRECT */
    uint64_t wid;
    uint64_t pos;  /* end of the active log, buffered bytes included */
    uint8_t *wbuf; /* BK_ELOG_ALIGN-aligned, BK_ELOG_WBUF bytes */
    size_t wlen;
    uint64_t wbuf_off; /* file offset of wbuf[0], a multiple of BK_ELOG_ALIGN */
    bk_elog_rotated_t *rotated;
    size_t nrotated;
    size_t cap_rotated;
    bool failed;

    pthread_mutex_t lock;
    /* @locks lock */
    uint64_t cur_id;
    uint64_t flushed; /* bytes of the active log written to its fd */
    bk_elog_rfd_t **rfds;
    size_t nrfds;
    size_t cap_rfds;
};

/* Directory names were checked to leave room for a file name at open. */
static void bk_entrylog_path(char *buf, size_t cap, const char *dir, uint64_t id)
{
    int n = snprintf(buf, cap, "%s/%016" PRIx64 ".log", dir, id);
    MQ_ASSERT(n > 0 && (size_t)n < cap);
}

static void bk_entrylog_file_hdr(uint8_t *blk, uint64_t id)
{
    memcpy(blk, BK_ELOG_MAGIC, 4);
    mq_put_le32(blk + 4, BK_ELOG_VERSION);
    mq_put_le64(blk + 8, id);
    mq_put_le32(blk + 16, mq_crc32c(0, blk, 16));
}

static uint32_t bk_entrylog_rec_crc(uint64_t log_id, const uint8_t *hdr, const uint8_t *entry,
                                    uint32_t len)
{
    uint8_t id8[8];
    mq_put_le64(id8, log_id);
    uint32_t crc = mq_crc32c(0, id8, 8);
    crc = mq_crc32c(crc, hdr + 8, 16);
    return len ? mq_crc32c(crc, entry, len) : crc;
}

static mq_err_t bk_entrylog_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                                       uint64_t id)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            MQ_LOG_ERROR("entry log write failed log=%016" PRIx64 " offset=%" PRIu64 " err=%s", id,
                         off, strerror(e));
            return mq_err_from_errno(e);
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return MQ_OK;
}

/* The highest log id found in dir (0 when none). */
static mq_err_t bk_entrylog_scan(const char *dir, uint64_t *max_id)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        MQ_LOG_ERROR("entry log opendir failed dir=%s err=%s", dir, strerror(e));
        return mq_err_from_errno(e);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (mq_fs_parse_hex_name(de->d_name, ".log", &id) && id > *max_id) {
            *max_id = id;
        }
    }
    closedir(d);
    return MQ_OK;
}

/* The ledger dir with the most free space (the first one when statvfs fails
 * everywhere). */
static size_t bk_entrylog_pick_dir(bk_entrylog_t *el)
{
    size_t best = 0;
    uint64_t best_free = 0;
    for (size_t i = 0; i < el->ndirs; i++) {
        mq_fs_usage_t u;
        if (mq_fs_usage(el->dirs[i], &u) == MQ_OK && u.free_bytes > best_free) {
            best_free = u.free_bytes;
            best = i;
        }
    }
    return best;
}

/* Creates log id with a synced header and makes it the active log. */
static mq_err_t bk_entrylog_create(bk_entrylog_t *el, uint64_t id)
{
    if (id > BK_ELOG_MAX_ID) {
        MQ_LOG_ERROR("entry log ids exhausted id=%" PRIu64, id);
        return MQ_ENOSPC;
    }
    size_t di = bk_entrylog_pick_dir(el);
    char path[PATH_MAX];
    bk_entrylog_path(path, sizeof(path), el->dirs[di], id);
    bool direct = true;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644);
    if (fd < 0 && errno == EINVAL) {
        /* The file system does not do direct I/O (tmpfs): buffered writes. */
        direct = false;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        int e = errno;
        MQ_LOG_ERROR("entry log create failed path=%s err=%s", path, strerror(e));
        return mq_err_from_errno(e);
    }
    /* The header goes through the aligned write buffer (empty at this
     * point: the previous log was flushed before rotating). */
    memset(el->wbuf, 0, BK_ELOG_HDR);
    bk_entrylog_file_hdr(el->wbuf, id);
    mq_err_t err = bk_entrylog_pwrite_all(fd, el->wbuf, BK_ELOG_HDR, 0, id);
    if (err == MQ_OK && fdatasync(fd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("entry log fdatasync failed path=%s err=%s", path, strerror(e));
        err = mq_err_from_errno(e);
    }
    if (err == MQ_OK) {
        err = mq_fs_fsync_dir(el->dirs[di]);
    }
    if (err != MQ_OK) {
        close(fd);
        unlink(path);
        return err;
    }
    el->wfd = fd;
    el->direct = direct;
    el->wid = id;
    el->pos = BK_ELOG_HDR;
    el->wbuf_off = BK_ELOG_HDR;
    el->wlen = 0;
    pthread_mutex_lock(&el->lock);
    el->cur_id = id;
    el->flushed = BK_ELOG_HDR;
    pthread_mutex_unlock(&el->lock);
    MQ_LOG_DEBUG("entry log created path=%s", path);
    return MQ_OK;
}

/* Writes out a full buffer. @locality writer */
static mq_err_t bk_entrylog_write_full(bk_entrylog_t *el)
{
    mq_err_t err = bk_entrylog_pwrite_all(el->wfd, el->wbuf, BK_ELOG_WBUF, el->wbuf_off, el->wid);
    if (err != MQ_OK) {
        el->failed = true;
        return err;
    }
    el->wbuf_off += BK_ELOG_WBUF;
    el->wlen = 0;
    pthread_mutex_lock(&el->lock);
    el->flushed = el->wbuf_off;
    pthread_mutex_unlock(&el->lock);
    return MQ_OK;
}

/* Writes out what is buffered, zero-padded to a whole block, and moves the
 * append position to the next block (no sync). @locality writer */
static mq_err_t bk_entrylog_flush(bk_entrylog_t *el)
{
    if (el->wlen == 0) {
        return MQ_OK;
    }
    size_t padded = (el->wlen + BK_ELOG_ALIGN - 1) & ~(size_t)(BK_ELOG_ALIGN - 1);
    memset(el->wbuf + el->wlen, 0, padded - el->wlen);
    mq_err_t err = bk_entrylog_pwrite_all(el->wfd, el->wbuf, padded, el->wbuf_off, el->wid);
    if (err != MQ_OK) {
        el->failed = true;
        return err;
    }
    el->wbuf_off += padded;
    el->wlen = 0;
    el->pos = el->wbuf_off;
    pthread_mutex_lock(&el->lock);
    el->flushed = el->wbuf_off;
    pthread_mutex_unlock(&el->lock);
    return MQ_OK;
}

/* Copies bytes into the buffer, writing out every buffer that fills.
 * @locality writer */
static mq_err_t bk_entrylog_put(bk_entrylog_t *el, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t c = MQ_MIN(n, BK_ELOG_WBUF - el->wlen);
        memcpy(el->wbuf + el->wlen, p, c);
        el->wlen += c;
        p += c;
        n -= c;
        if (el->wlen == BK_ELOG_WBUF) {
            mq_err_t err = bk_entrylog_write_full(el);
            if (err != MQ_OK) {
                return err;
            }
        }
    }
    return MQ_OK;
}

/* Moves on to a new log; the old one is synced by the next sync. */
static mq_err_t bk_entrylog_rotate(bk_entrylog_t *el)
{
    mq_err_t err = bk_entrylog_flush(el);
    if (err != MQ_OK) {
        return err;
    }
    if (el->nrotated == el->cap_rotated) {
        el->cap_rotated = el->cap_rotated ? el->cap_rotated * 2 : 4;
        el->rotated = mq_realloc(el->rotated, el->cap_rotated * sizeof(*el->rotated));
    }
    el->rotated[el->nrotated++] = (bk_elog_rotated_t){el->wid, el->wfd};
    el->wfd = -1;
    err = bk_entrylog_create(el, el->wid + 1);
    if (err != MQ_OK) {
        el->failed = true;
    }
    return err;
}

mq_err_t bk_entrylog_open(const char *const *dirs, size_t ndirs, uint64_t log_size_limit,
                          bk_entrylog_t **out)
{
    if (ndirs == 0 || log_size_limit < 2 * BK_ELOG_HDR || log_size_limit > (1ull << 32)) {
        MQ_LOG_ERROR("entry log: bad arguments dirs=%zu logSizeLimit=%" PRIu64
                     " (must be in [%u, 2^32])",
                     ndirs, log_size_limit, 2 * BK_ELOG_HDR);
        return MQ_EINVAL;
    }
    bk_entrylog_t *el = mq_calloc(1, sizeof(*el));
    el->dirs = mq_calloc(ndirs, sizeof(*el->dirs));
    el->ndirs = ndirs;
    el->limit = log_size_limit;
    el->wfd = -1;
    pthread_mutex_init(&el->lock, NULL);
    mq_err_t err = MQ_OK;
    uint64_t max_id = 0;
    for (size_t i = 0; i < ndirs && err == MQ_OK; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/current", dirs[i]) >= (int)sizeof(path) - 32) {
            MQ_LOG_ERROR("entry log: directory name too long dir=%s", dirs[i]);
            err = MQ_EINVAL;
            break;
        }
        el->dirs[i] = mq_strdup(path);
        /* The parent's fsync makes a newly created current/ itself durable. */
        err = mq_fs_mkdirs(path);
        if (err == MQ_OK) {
            err = mq_fs_fsync_dir(dirs[i]);
        }
        if (err == MQ_OK) {
            err = bk_entrylog_scan(path, &max_id);
        }
    }
    if (err == MQ_OK) {
        if (posix_memalign((void **)&el->wbuf, BK_ELOG_ALIGN, BK_ELOG_WBUF) != 0) {
            MQ_LOG_ERROR("entry log: cannot allocate the write buffer");
            abort();
        }
        /* Never append to a log that was active at a crash: its unindexed
         * tail is garbage that nobody points to. */
        err = bk_entrylog_create(el, max_id + 1);
    }
    if (err != MQ_OK) {
        for (size_t i = 0; i < ndirs; i++) {
            free(el->dirs[i]);
        }
        free(el->dirs);
        free(el->wbuf);
        pthread_mutex_destroy(&el->lock);
        free(el);
        return err;
    }
    *out = el;
    return MQ_OK;
}

mq_err_t bk_entrylog_append(bk_entrylog_t *el, uint64_t ledger_id, int64_t entry_id,
                            const uint8_t *entry, uint32_t len, bk_entry_loc_t *loc)
{
    if (el->failed) {
        return MQ_EIO;
    }
    uint64_t rec = BK_ENTRYLOG_REC_HDR + (uint64_t)len;
    if (el->pos + rec > el->limit && el->pos > BK_ELOG_HDR) {
        mq_err_t err = bk_entrylog_rotate(el);
        if (err != MQ_OK) {
            return err;
        }
    }
    uint8_t hdr[BK_ENTRYLOG_REC_HDR];
    mq_put_le32(hdr, len);
    mq_put_le64(hdr + 8, ledger_id);
    mq_put_le64(hdr + 16, (uint64_t)entry_id);
    mq_put_le32(hdr + 4, bk_entrylog_rec_crc(el->wid, hdr, entry, len));

    /* Records are copied into the aligned buffer (direct writes need
     * aligned memory); one larger than the buffer crosses several. */
    mq_err_t err = bk_entrylog_put(el, hdr, sizeof(hdr));
    if (err == MQ_OK && len) {
        err = bk_entrylog_put(el, entry, len);
    }
    if (err != MQ_OK) {
        return err;
    }
    loc->location = (el->wid << 32) | el->pos;
    loc->length = len;
    el->pos += rec;
    return MQ_OK;
}

mq_err_t bk_entrylog_sync(bk_entrylog_t *el)
{
    if (el->failed) {
        return MQ_EIO;
    }
    mq_err_t err = bk_entrylog_flush(el);
    if (err != MQ_OK) {
        return err;
    }
    while (el->nrotated > 0) {
        bk_elog_rotated_t *r = &el->rotated[0];
        if (fdatasync(r->fd) != 0) {
            int e = errno;
            MQ_LOG_ERROR("entry log fdatasync failed log=%016" PRIx64 " err=%s", r->id,
                         strerror(e));
            el->failed = true;
            return mq_err_from_errno(e);
        }
        close(r->fd);
        memmove(el->rotated, el->rotated + 1, (el->nrotated - 1) * sizeof(*el->rotated));
        el->nrotated--;
    }
    if (fdatasync(el->wfd) != 0) {
        int e = errno;
        MQ_LOG_ERROR("entry log fdatasync failed log=%016" PRIx64 " err=%s", el->wid, strerror(e));
        el->failed = true;
        return mq_err_from_errno(e);
    }
    return MQ_OK;
}

uint64_t bk_entrylog_current_id(bk_entrylog_t *el)
{
    pthread_mutex_lock(&el->lock);
    uint64_t id = el->cur_id;
    pthread_mutex_unlock(&el->lock);
    return id;
}

/* Opens log id for reading (in whichever dir holds it) and checks its
 * header. */
static mq_err_t bk_entrylog_open_read(bk_entrylog_t *el, uint64_t id, int *out)
{
    char path[PATH_MAX];
    int fd = -1;
    for (size_t i = 0; i < el->ndirs && fd < 0; i++) {
        bk_entrylog_path(path, sizeof(path), el->dirs[i], id);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT) {
            int e = errno;
            MQ_LOG_ERROR("entry log open failed path=%s err=%s", path, strerror(e));
            return mq_err_from_errno(e);
        }
    }
    if (fd < 0) {
        MQ_LOG_ERROR("entry log missing log=%016" PRIx64, id);
        return MQ_ECORRUPT;
    }
    uint8_t hdr[20];
    uint8_t want[20];
    ssize_t r;
    do {
        r = pread(fd, hdr, sizeof(hdr), 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        MQ_LOG_ERROR("entry log read failed path=%s err=%s", path, strerror(e));
        close(fd);
        return mq_err_from_errno(e);
    }
    bk_entrylog_file_hdr(want, id);
    if (r != (ssize_t)sizeof(hdr) || memcmp(hdr, want, sizeof(hdr)) != 0) {
        MQ_LOG_ERROR("entry log has a bad header path=%s", path);
        close(fd);
        return MQ_ECORRUPT;
    }
    *out = fd;
    return MQ_OK;
}

static bk_elog_rfd_t *bk_entrylog_rfd_find(bk_entrylog_t *el, uint64_t id) /* @locks lock */
{
    for (size_t i = 0; i < el->nrfds; i++) {
        if (el->rfds[i]->id == id) {
            return el->rfds[i];
        }
    }
    return NULL;
}

/* A referenced read fd for log id; release it with bk_entrylog_rfd_put. */
static mq_err_t bk_entrylog_rfd_get(bk_entrylog_t *el, uint64_t id, bk_elog_rfd_t **out)
{
    pthread_mutex_lock(&el->lock);
    bk_elog_rfd_t *h = bk_entrylog_rfd_find(el, id);
    if (h) {
        h->refs++;
        pthread_mutex_unlock(&el->lock);
        *out = h;
        return MQ_OK;
    }
    pthread_mutex_unlock(&el->lock);

    int fd;
    mq_err_t err = bk_entrylog_open_read(el, id, &fd);
    if (err != MQ_OK) {
        return err;
    }
    int spare = -1;
    pthread_mutex_lock(&el->lock);
    h = bk_entrylog_rfd_find(el, id);
    if (h) {
        /* Another reader opened it meanwhile. */
        spare = fd;
    } else {
        if (el->nrfds >= BK_ELOG_MAX_RFDS) {
            for (size_t i = 0; i < el->nrfds; i++) {
                if (el->rfds[i]->refs == 0) {
                    spare = el->rfds[i]->fd;
                    free(el->rfds[i]);
                    el->rfds[i] = el->rfds[--el->nrfds];
                    break;
                }
            }
        }
        if (el->nrfds == el->cap_rfds) {
            el->cap_rfds = el->cap_rfds ? el->cap_rfds * 2 : 16;
            el->rfds = mq_realloc(el->rfds, el->cap_rfds * sizeof(*el->rfds));
        }
        h = mq_malloc(sizeof(*h));
        h->id = id;
        h->fd = fd;
        h->refs = 0;
        el->rfds[el->nrfds++] = h;
    }
    h->refs++;
    pthread_mutex_unlock(&el->lock);
    if (spare >= 0) {
        close(spare);
    }
    *out = h;
    return MQ_OK;
}

static void bk_entrylog_rfd_put(bk_entrylog_t *el, bk_elog_rfd_t *h)
{
    pthread_mutex_lock(&el->lock);
    h->refs--;
    pthread_mutex_unlock(&el->lock);
}

/* Reads into iov until it is full or the file ends; *got says how much. */
static mq_err_t bk_entrylog_preadv_all(int fd, struct iovec *iov, int niov, uint64_t off,
                                       uint64_t id, size_t *got)
{
    int i = 0;
    *got = 0;
    while (i < niov) {
        ssize_t r = preadv(fd, iov + i, niov - i, (off_t)off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            MQ_LOG_ERROR("entry log read failed log=%016" PRIx64 " offset=%" PRIu64 " err=%s", id,
                         off, strerror(e));
            return mq_err_from_errno(e);
        }
        if (r == 0) {
            break;
        }
        off += (uint64_t)r;
        *got += (size_t)r;
        size_t done = (size_t)r;
        while (i < niov && done >= iov[i].iov_len) {
            done -= iov[i].iov_len;
            i++;
        }
        if (i < niov) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + done;
            iov[i].iov_len -= done;
        }
    }
    return MQ_OK;
}

mq_err_t bk_entrylog_read(bk_entrylog_t *el, const bk_entry_loc_t *loc, uint64_t ledger_id,
                          int64_t entry_id, mq_buf_t **out)
{
    uint64_t id = loc->location >> 32;
    uint64_t off = loc->location & 0xffffffffull;
    if (id == 0 || off < BK_ELOG_HDR) {
        MQ_LOG_ERROR("entry log location is invalid ledger=%" PRIu64 " entry=%" PRId64
                     " location=%" PRIx64,
                     ledger_id, entry_id, loc->location);
        return MQ_ECORRUPT;
    }
    pthread_mutex_lock(&el->lock);
    uint64_t cur_id = el->cur_id;
    bool pending = id == cur_id && off + BK_ENTRYLOG_REC_HDR + loc->length > el->flushed;
    pthread_mutex_unlock(&el->lock);
    if (id > cur_id) {
        MQ_LOG_ERROR("entry log location points past the active log ledger=%" PRIu64
                     " entry=%" PRId64 " location=%" PRIx64,
                     ledger_id, entry_id, loc->location);
        return MQ_ECORRUPT;
    }
    if (pending) {
        /* Still in the write buffer (or not written at all): readable after
         * the next bk_entrylog_sync. */
        return MQ_EAGAIN;
    }
    bk_elog_rfd_t *h;
    mq_err_t err = bk_entrylog_rfd_get(el, id, &h);
    if (err != MQ_OK) {
        return err;
    }
    mq_buf_t *buf;
    err = mq_buf_try_new(loc->length, &buf);
    if (err != MQ_OK) {
        MQ_LOG_WARN("entry log read cannot allocate bytes=%" PRIu32, loc->length);
        bk_entrylog_rfd_put(el, h);
        return err;
    }
    uint8_t hdr[BK_ENTRYLOG_REC_HDR];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {buf->data, loc->length}};
    size_t got = 0;
    err = bk_entrylog_preadv_all(h->fd, iov, loc->length ? 2 : 1, off, id, &got);
    bk_entrylog_rfd_put(el, h);
    if (err != MQ_OK) {
        mq_buf_unref(buf);
        return err;
    }
    /* A short read means the log ends before the record does. */
    if (got != sizeof(hdr) + loc->length || mq_get_le32(hdr) != loc->length ||
        mq_get_le64(hdr + 8) != ledger_id || mq_get_le64(hdr + 16) != (uint64_t)entry_id ||
        mq_get_le32(hdr + 4) != bk_entrylog_rec_crc(id, hdr, buf->data, loc->length)) {
        MQ_LOG_ERROR("entry log record is corrupt log=%016" PRIx64 " offset=%" PRIu64
                     " ledger=%" PRIu64 " entry=%" PRId64,
                     id, off, ledger_id, entry_id);
        mq_buf_unref(buf);
        return MQ_ECORRUPT;
    }
    buf->len = loc->length;
    *out = buf;
    return MQ_OK;
}

void bk_entrylog_close(bk_entrylog_t *el)
{
    if (!el) {
        return;
    }
    if (!el->failed) {
        bk_entrylog_sync(el);
    }
    for (size_t i = 0; i < el->nrotated; i++) {
        close(el->rotated[i].fd);
    }
    if (el->wfd >= 0) {
        close(el->wfd);
    }
    for (size_t i = 0; i < el->nrfds; i++) {
        MQ_ASSERT(el->rfds[i]->refs == 0);
        close(el->rfds[i]->fd);
        free(el->rfds[i]);
    }
    for (size_t i = 0; i < el->ndirs; i++) {
        free(el->dirs[i]);
    }
    free(el->rfds);
    free(el->rotated);
    free(el->dirs);
    free(el->wbuf);
    pthread_mutex_destroy(&el->lock);
    free(el);
}
