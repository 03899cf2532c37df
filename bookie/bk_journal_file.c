/*
 * bk_journal_file: the journal's on-disk format (see bk_journal.h): file
 * names and headers, record checksums, listing a journal directory, and
 * reading files back: replay, and the check that lets open reuse a file an
 * earlier run prepared but never wrote to. bk_journal.c writes what this
 * file reads.
 *
 * Nothing read from disk is trusted: every length is checked against the
 * file size before it is used, a record counts only when its type is known
 * and its CRC (seeded with the file id) matches, and a file stops at its
 * first record that does not validate. Replay runs on the caller's thread
 * before the journal is opened; no state is shared.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_journal.h"
#include "bk_journal_int.h"
#include "mq_crc32c.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_JOURNAL_REPLAY_BUF (2u << 20) /* initial replay read buffer */

/* --- format ------------------------------------------------------------------------ */

/* Directory names were checked to leave room for a file name at open. */
void bk_journal_path(char *buf, size_t cap, const char *dir, uint64_t id, const char *sfx)
{
    int n = snprintf(buf, cap, "%s/%016" PRIx64 ".txn%s", dir, id, sfx);
    MQ_ASSERT(n > 0 && (size_t)n < cap);
}

uint32_t bk_journal_rec_crc(uint64_t file_id, uint32_t type, uint32_t len, const void *payload)
{
    uint8_t seed[16];
    mq_put_le64(seed, file_id);
    mq_put_le32(seed + 8, type);
    mq_put_le32(seed + 12, len);
    uint32_t crc = mq_crc32c(0, seed, sizeof(seed));
    return len ? mq_crc32c(crc, payload, len) : crc;
}

void bk_journal_file_hdr(uint8_t *blk, uint64_t file_id)
{
    memcpy(blk, BK_JOURNAL_MAGIC, 4);
    mq_put_le32(blk + 4, BK_JOURNAL_VERSION);
    mq_put_le64(blk + 8, file_id);
    mq_put_le32(blk + 16, mq_crc32c(0, blk, 16));
    mq_put_le32(blk + 20, 0);
}

static bool bk_journal_file_hdr_ok(const uint8_t *blk, uint64_t file_id)
{
    return memcmp(blk, BK_JOURNAL_MAGIC, 4) == 0 && mq_get_le32(blk + 4) == BK_JOURNAL_VERSION &&
           mq_get_le64(blk + 8) == file_id && mq_get_le32(blk + 16) == mq_crc32c(0, blk, 16);
}

static bool bk_journal_type_ok(uint32_t type)
{
    return type == BK_JREC_ENTRY || type == BK_JREC_MASTER_KEY || type == BK_JREC_FENCE ||
           type == BK_JREC_PAD;
}

static bool bk_journal_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static int bk_journal_id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Parses "<16 hex>.txn"; false for anything else. */

/* Lists the journal files of dir, ascending. With clean_tmp, removes the
 * leftovers of a file preparation that a crash interrupted. A missing dir
 * is an empty list. */
mq_err_t bk_journal_list(const char *dir, bool clean_tmp, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        if (e == ENOENT) {
            return MQ_OK;
        }
        MQ_LOG_ERROR("journal opendir failed dir=%s err=%s", dir, strerror(e));
        return mq_err_from_errno(e);
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (mq_fs_parse_hex_name(de->d_name, ".txn", &id)) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                *ids = mq_realloc(*ids, cap * sizeof(**ids));
            }
            (*ids)[(*n)++] = id;
        } else if (clean_tmp) {
            size_t len = strlen(de->d_name);
            if (len > 8 && strcmp(de->d_name + len - 8, ".txn.tmp") == 0) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (unlink(path) != 0) {
                    MQ_LOG_WARN("journal unlink failed path=%s err=%s", path, strerror(errno));
                }
            }
        }
    }
    closedir(d);
    if (*n > 1) {
        qsort(*ids, *n, sizeof(**ids), bk_journal_id_cmp);
    }
    return MQ_OK;
}

/* --- reading files back ----------------------------------------------------------- */

/* A window of one file read for replay. @locality caller of replay */
typedef struct bk_jreader {
    int fd;
    const char *path;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf */
} bk_jreader_t;

/* Makes [off, off + n) available in rd->buf; n never exceeds what the file
 * holds (the caller checks lengths against rd->size first). */
static mq_err_t bk_jreader_fill(bk_jreader_t *rd, uint64_t off, size_t n)
{
    if (off > rd->size || n > rd->size - off) {
        return MQ_ECORRUPT;
    }
    if (off >= rd->off && off + n <= rd->off + rd->len) {
        return MQ_OK;
    }
    if (n > rd->cap) {
        uint8_t *nb = mq_try_malloc(n);
        if (!nb) {
            MQ_LOG_ERROR("journal replay cannot allocate bytes=%zu path=%s", n, rd->path);
            return MQ_ENOMEM;
        }
        free(rd->buf);
        rd->buf = nb;
        rd->cap = n;
    }
    size_t want = (size_t)MQ_MIN((uint64_t)rd->cap, rd->size - off);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(rd->fd, rd->buf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            MQ_LOG_ERROR("journal replay read failed path=%s offset=%" PRIu64 " err=%s", rd->path,
                         off + got, strerror(e));
            return mq_err_from_errno(e);
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    rd->off = off;
    rd->len = got;
    if (got < n) {
        MQ_LOG_ERROR("journal file shrank while read path=%s offset=%" PRIu64, rd->path, off);
        return MQ_ECORRUPT;
    }
    return MQ_OK;
}

/*
 * Finds the first record of a file replayed from its start: the header block
 * is one alignment block of zeros after the 24 header bytes, and the
 * alignment is a power of two, so records start at the first power of two
 * (>= 512) whose bytes before it are zero and whose first bytes are not.
 * *start is 0 when the file holds no record.
 */
static mq_err_t bk_jreader_first(bk_jreader_t *rd, uint64_t *start)
{
    *start = 0;
    uint64_t checked = BK_JOURNAL_HDR_FIELDS;
    for (uint64_t p = BK_JOURNAL_MIN_ALIGN;
         p <= BK_JOURNAL_MAX_ALIGN && p + BK_JREC_HDR_SIZE <= rd->size; p <<= 1) {
        mq_err_t err = bk_jreader_fill(rd, 0, (size_t)(p + BK_JREC_HDR_SIZE));
        if (err != MQ_OK) {
            return err;
        }
        if (!bk_journal_all_zero(rd->buf + checked, (size_t)(p - checked))) {
            return MQ_OK;
        }
        checked = p;
        if (!bk_journal_all_zero(rd->buf + p, BK_JREC_HDR_SIZE)) {
            *start = p;
            return MQ_OK;
        }
    }
    return MQ_OK;
}

/* Opens journal file id for reading and checks its header; *hdr_ok false
 * (with MQ_OK) when the header is bad. Release with bk_jreader_fini. */
static mq_err_t bk_jreader_open(bk_jreader_t *rd, const char *path, uint64_t id, bool *hdr_ok)
{
    memset(rd, 0, sizeof(*rd));
    rd->fd = -1;
    rd->path = path;
    *hdr_ok = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        MQ_LOG_ERROR("journal cannot open path=%s err=%s", path, strerror(e));
        return e == ENOENT ? MQ_ECORRUPT : mq_err_from_errno(e);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        MQ_LOG_ERROR("journal fstat failed path=%s err=%s", path, strerror(e));
        close(fd);
        return mq_err_from_errno(e);
    }
    rd->fd = fd;
    rd->size = (uint64_t)st.st_size;
    rd->cap = (size_t)MQ_MIN((uint64_t)BK_JOURNAL_REPLAY_BUF, MQ_MAX(rd->size, (uint64_t)64));
    rd->buf = mq_malloc(rd->cap);
    if (rd->size < BK_JOURNAL_HDR_FIELDS) {
        return MQ_OK;
    }
    mq_err_t err = bk_jreader_fill(rd, 0, BK_JOURNAL_HDR_FIELDS);
    if (err == MQ_OK) {
        *hdr_ok = bk_journal_file_hdr_ok(rd->buf, id);
    }
    return err;
}

static void bk_jreader_fini(bk_jreader_t *rd)
{
    free(rd->buf);
    if (rd->fd >= 0) {
        close(rd->fd);
    }
}

/*
 * Validates the record at pos of file id: its length fits in the file, its
 * type is known and its CRC (seeded with the file id) matches. MQ_OK with
 * the record; MQ_ENOTFOUND when it does not validate (*nonzero then tells a
 * torn or stale record from zeros); other errors are I/O errors.
 */
static mq_err_t bk_jreader_record(bk_jreader_t *rd, uint64_t id, uint64_t pos, uint32_t *type,
                                  const uint8_t **payload, uint32_t *len, bool *nonzero)
{
    *nonzero = false;
    if (pos >= rd->size) {
        return MQ_ENOTFOUND;
    }
    if (rd->size - pos < BK_JREC_HDR_SIZE) {
        *nonzero = true;
        return MQ_ENOTFOUND;
    }
    mq_err_t err = bk_jreader_fill(rd, pos, BK_JREC_HDR_SIZE);
    if (err != MQ_OK) {
        return err;
    }
    const uint8_t *h = rd->buf + (pos - rd->off);
    *len = mq_get_le32(h);
    *type = mq_get_le32(h + 4);
    uint32_t crc = mq_get_le32(h + 8);
    *nonzero = !bk_journal_all_zero(h, BK_JREC_HDR_SIZE);
    if (!bk_journal_type_ok(*type) || *len > rd->size - pos - BK_JREC_HDR_SIZE) {
        return MQ_ENOTFOUND;
    }
    err = bk_jreader_fill(rd, pos, BK_JREC_HDR_SIZE + (size_t)*len);
    if (err != MQ_OK) {
        return err;
    }
    *payload = rd->buf + (pos - rd->off) + BK_JREC_HDR_SIZE;
    return bk_journal_rec_crc(id, *type, *len, *payload) == crc ? MQ_OK : MQ_ENOTFOUND;
}

/*
 * True when file id of dir is a complete journal file (valid header, size
 * file_size) without a single valid record: the file an earlier run
 * prepared ahead and never wrote to. Open reuses it as its first file.
 */
bool bk_journal_file_unused(const char *dir, uint64_t id, uint64_t file_size)
{
    char path[PATH_MAX];
    bk_journal_path(path, sizeof(path), dir, id, "");
    bk_jreader_t rd;
    bool hdr_ok;
    bool unused = false;
    if (bk_jreader_open(&rd, path, id, &hdr_ok) == MQ_OK && hdr_ok && rd.size == file_size) {
        uint64_t start;
        if (bk_jreader_first(&rd, &start) == MQ_OK) {
            uint32_t type;
            uint32_t len;
            const uint8_t *payload;
            bool nonzero;
            unused = start == 0 || bk_jreader_record(&rd, id, start, &type, &payload, &len,
                                                     &nonzero) == MQ_ENOTFOUND;
        }
    }
    bk_jreader_fini(&rd);
    return unused;
}

/* --- replay ---------------------------------------------------------------------- */

static mq_err_t bk_journal_replay_file(const char *dir, uint64_t id, uint64_t from_off,
                                       bk_journal_replay_cb cb, void *arg,
                                       bk_journal_replay_stats_t *stats)
{
    char path[PATH_MAX];
    bk_journal_path(path, sizeof(path), dir, id, "");
    bk_jreader_t rd;
    bool hdr_ok;
    mq_err_t err = bk_jreader_open(&rd, path, id, &hdr_ok);
    if (err != MQ_OK || !hdr_ok) {
        if (err == MQ_OK) {
            MQ_LOG_WARN("journal file has a bad header, skipped path=%s", path);
        }
        goto out;
    }
    stats->files++;
    uint64_t pos = from_off;
    if (from_off == 0) {
        err = bk_jreader_first(&rd, &pos);
        if (err != MQ_OK || pos == 0) {
            goto out;
        }
    } else if (from_off > rd.size) {
        MQ_LOG_ERROR("journal mark is past the end of its file path=%s offset=%" PRIu64
                     " size=%" PRIu64,
                     path, from_off, rd.size);
        err = MQ_ECORRUPT;
        goto out;
    }

    uint64_t good = 0;
    bool nonzero = false;
    for (;;) {
        uint32_t type;
        uint32_t len;
        const uint8_t *payload;
        err = bk_jreader_record(&rd, id, pos, &type, &payload, &len, &nonzero);
        if (err != MQ_OK) {
            break;
        }
        pos += BK_JREC_HDR_SIZE + (uint64_t)len;
        good++;
        stats->end = (bk_journal_pos_t){id, pos};
        if (type != BK_JREC_PAD) {
            stats->records++;
            cb((bk_jrec_type_t)type, payload, len, (bk_journal_pos_t){id, pos}, arg);
        }
    }
    if (err != MQ_ENOTFOUND) {
        goto out;
    }
    err = MQ_OK;
    /* A clean end is zeros on an aligned boundary (or the end of the file);
     * anything else after good records is a torn or corrupt record. A file
     * without a single good record may hold stale bytes of its previous
     * life: that is not a tear. */
    if (good > 0 && pos < rd.size && (nonzero || pos % BK_JOURNAL_MIN_ALIGN != 0)) {
        stats->torn_files++;
        MQ_LOG_WARN("journal file ends with a torn or corrupt record path=%s offset=%" PRIu64, path,
                    pos);
    }
out:
    bk_jreader_fini(&rd);
    return err;
}

mq_err_t bk_journal_replay(const char *dir, bk_journal_pos_t from, bk_journal_replay_cb cb,
                           void *arg, bk_journal_replay_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->end = from;
    char cur[PATH_MAX];
    if (snprintf(cur, sizeof(cur), "%s/current", dir) >= (int)sizeof(cur) - 32) {
        return MQ_EINVAL;
    }
    uint64_t *ids;
    size_t n;
    mq_err_t err = bk_journal_list(cur, false, &ids, &n);
    if (err != MQ_OK) {
        return err;
    }
    size_t i = 0;
    while (i < n && ids[i] < from.file_id) {
        i++;
    }
    if (from.file_id != 0 && (i == n || ids[i] != from.file_id)) {
        MQ_LOG_ERROR("journal file of the mark is missing dir=%s file=%016" PRIx64, cur,
                     from.file_id);
        free(ids);
        return MQ_ECORRUPT;
    }
    for (size_t k = i; k < n && err == MQ_OK; k++) {
        if (k > i && ids[k] != ids[k - 1] + 1) {
            MQ_LOG_ERROR("journal file is missing dir=%s file=%016" PRIx64, cur, ids[k - 1] + 1);
            err = MQ_ECORRUPT;
            break;
        }
        uint64_t off = ids[k] == from.file_id ? from.offset : 0;
        err = bk_journal_replay_file(cur, ids[k], off, cb, arg, stats);
    }
    free(ids);
    if (err == MQ_OK) {
        MQ_LOG_INFO("journal replayed dir=%s files=%" PRIu64 " records=%" PRIu64 " torn=%" PRIu64,
                    cur, stats->files, stats->records, stats->torn_files);
    }
    return err;
}
