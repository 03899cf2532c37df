/*
 * br_mlog_meta: the queue record of a managed log, its text codec and its
 * znode. br_mlog.c calls it from blocking contexts (open, the rollover job,
 * close, trim) and admin code through br_mlog_info_read. No state between
 * calls; the codec is pure, the rest blocks on ZooKeeper (any thread but a
 * ZooKeeper or ledger-client callback).
 *
 * The record lives at <root>/topics/<topic>/queues/<queue> and reads as:
 *
 *   # LedgerMQ queue log
 *   version=1
 *   minOffset=0                     lowest offset still stored
 *   ledger=17,0,1200,50000,1763735000123,1763735999000
 *   ledger=23,50000,-1,-1,1763735999000,0
 *   checksum=<8 hex>                CRC32C of every byte above this line
 *
 * One "ledger=" line per ledger, oldest first: id, first offset, entries,
 * messages, ctime, mtime (ms since the epoch). Only the last ledger may be
 * open, and an open one has entries = messages = -1 and mtime 0. The
 * ledgers tile the offsets: the first starts at minOffset and each closed
 * ledger ends where the next starts (first + messages). With no ledger the
 * next offset is minOffset.
 *
 * As meta_ledger.c does, one validator (br_mlog_record_check) says what a
 * record is; the encoder refuses what it rejects (MQ_EINVAL) and the decoder
 * runs it on everything it parsed (MQ_ECORRUPT), so encode -> decode is the
 * identity. Decoding checks the framing first (no NUL, a final checksum line
 * that matches), then the header, "version=1" second, "minOffset=" exactly
 * once, numbers in canonical decimal, nothing unknown; the number of ledgers
 * is bounded and their memory comes from a checked allocation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_mlog_int.h"
#include "mq_crc32c.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_MLOG_REC_VERSION 1
#define BR_MLOG_REC_HEADER "# LedgerMQ queue log"
#define BR_MLOG_REC_CRC_KEY "checksum="
/* "checksum=" + 8 hex digits + "\n" */
#define BR_MLOG_REC_CRC_LINE (sizeof(BR_MLOG_REC_CRC_KEY) - 1 + 8 + 1)
#define BR_MLOG_REC_LEDGER_KEY "ledger="
/* How much of a bad line a reason quotes. */
#define BR_MLOG_REC_EXCERPT 48
/* How long a compare-and-set keeps trying through lost connections. */
#define BR_MLOG_CAS_DEADLINE_MS 30000

static void br_mlog_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void br_mlog_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* A printable, bounded copy of n bytes of s for a reason. */
static const char *br_mlog_excerpt(char *dst, size_t cap, const char *s, size_t n)
{
    size_t out = 0;
    size_t max = MQ_MIN(n, (size_t)BR_MLOG_REC_EXCERPT);
    for (size_t i = 0; i < max && out + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[out++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n > max && out + 4 < cap) {
        memcpy(dst + out, "...", 3);
        out += 3;
    }
    dst[out] = '\0';
    return dst;
}

/* Canonical unsigned decimal: 1..20 digits, no sign, no leading zero. */
static bool br_mlog_parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Canonical signed decimal within int64_t ("-0" refused). */
static bool br_mlog_parse_i64(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v;
    if (!br_mlog_parse_u64(s + neg, n - neg, &v)) {
        return false;
    }
    if (neg) {
        if (v == 0 || v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    return true;
}

/* --- the record ------------------------------------------------------------ */

int64_t br_mlog_record_end(const br_mlog_info_t *rec)
{
    if (rec->nledgers == 0) {
        return rec->min_offset;
    }
    const br_mlog_ledger_info_t *last = &rec->ledgers[rec->nledgers - 1];
    if (last->entries < 0) {
        return -1;
    }
    return last->first_offset + last->messages;
}

void br_mlog_info_copy(br_mlog_info_t *dst, const br_mlog_info_t *src)
{
    *dst = *src;
    dst->ledgers = NULL;
    if (src->nledgers > 0) {
        dst->ledgers = mq_malloc(src->nledgers * sizeof(*dst->ledgers));
        memcpy(dst->ledgers, src->ledgers, src->nledgers * sizeof(*dst->ledgers));
    }
}

void br_mlog_info_fini(br_mlog_info_t *info)
{
    if (!info) {
        return;
    }
    free(info->ledgers);
    memset(info, 0, sizeof(*info));
    info->version = -1;
}

mq_err_t br_mlog_record_check(const br_mlog_info_t *rec, char *why, size_t why_len)
{
    if (rec->min_offset < 0) {
        br_mlog_why(why, why_len, "minOffset=%lld is negative", (long long)rec->min_offset);
        return MQ_EINVAL;
    }
    if (rec->nledgers > BR_MLOG_MAX_LEDGERS) {
        br_mlog_why(why, why_len, "%zu ledgers (at most %d)", rec->nledgers, BR_MLOG_MAX_LEDGERS);
        return MQ_EINVAL;
    }
    if (rec->nledgers > 0 && !rec->ledgers) {
        br_mlog_why(why, why_len, "ledgers missing");
        return MQ_EINVAL;
    }
    int64_t expect = rec->min_offset;
    for (size_t i = 0; i < rec->nledgers; i++) {
        const br_mlog_ledger_info_t *l = &rec->ledgers[i];
        unsigned long long id = (unsigned long long)l->ledger;
        if (l->ledger < 1 || l->ledger > BR_MLOG_MAX_LEDGER_ID) {
            br_mlog_why(why, why_len, "ledger %zu: id=%llu out of range", i, id);
            return MQ_EINVAL;
        }
        if (i > 0 && l->ledger <= rec->ledgers[i - 1].ledger) {
            br_mlog_why(why, why_len, "ledger %zu: id=%llu not above the previous one", i, id);
            return MQ_EINVAL;
        }
        if (l->first_offset != expect) {
            br_mlog_why(why, why_len,
                        "ledger %llu: first offset %lld, expected %lld (ledgers must tile the "
                        "offsets from minOffset)",
                        id, (long long)l->first_offset, (long long)expect);
            return MQ_EINVAL;
        }
        if (l->ctime_ms > (uint64_t)INT64_MAX || l->mtime_ms > (uint64_t)INT64_MAX) {
            br_mlog_why(why, why_len, "ledger %llu: time out of range", id);
            return MQ_EINVAL;
        }
        bool open = l->entries == -1;
        if (open) {
            if (l->messages != -1 || l->mtime_ms != 0) {
                br_mlog_why(why, why_len, "ledger %llu: open but messages=%lld mtime=%llu", id,
                            (long long)l->messages, (unsigned long long)l->mtime_ms);
                return MQ_EINVAL;
            }
            if (i + 1 != rec->nledgers) {
                br_mlog_why(why, why_len, "ledger %llu: open but not the last one", id);
                return MQ_EINVAL;
            }
            continue;
        }
        if (l->entries < 0 || l->messages < l->entries || (l->entries == 0) != (l->messages == 0)) {
            br_mlog_why(why, why_len, "ledger %llu: entries=%lld messages=%lld do not agree", id,
                        (long long)l->entries, (long long)l->messages);
            return MQ_EINVAL;
        }
        if (l->messages > INT64_MAX - l->first_offset) {
            br_mlog_why(why, why_len, "ledger %llu: offsets past the largest", id);
            return MQ_EINVAL;
        }
        expect = l->first_offset + l->messages;
    }
    return MQ_OK;
}

/* --- encoding ---------------------------------------------------------------- */

typedef struct br_mlog_sb {
    char *p;
    size_t len;
    size_t cap;
} br_mlog_sb_t;

static void br_mlog_sb_printf(br_mlog_sb_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void br_mlog_sb_printf(br_mlog_sb_t *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    MQ_ASSERT(n >= 0 && (size_t)n < sizeof(small));
    if (sb->len + (size_t)n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + (size_t)n + 1) {
            cap *= 2;
        }
        sb->p = mq_realloc(sb->p, cap);
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, small, (size_t)n + 1);
    sb->len += (size_t)n;
}

mq_err_t br_mlog_record_encode(const br_mlog_info_t *rec, char **out, size_t *len)
{
    if (!rec || !out) {
        return MQ_EINVAL;
    }
    char why[256] = "";
    mq_err_t err = br_mlog_record_check(rec, why, sizeof(why));
    if (err != MQ_OK) {
        MQ_LOG_WARN("queue record not encoded err=%s why=%s", mq_err_name(err), why);
        return err;
    }
    br_mlog_sb_t sb = {NULL, 0, 0};
    br_mlog_sb_printf(&sb, "%s\nversion=%d\nminOffset=%lld\n", BR_MLOG_REC_HEADER,
                      BR_MLOG_REC_VERSION, (long long)rec->min_offset);
    for (size_t i = 0; i < rec->nledgers; i++) {
        const br_mlog_ledger_info_t *l = &rec->ledgers[i];
        br_mlog_sb_printf(&sb, BR_MLOG_REC_LEDGER_KEY "%llu,%lld,%lld,%lld,%llu,%llu\n",
                          (unsigned long long)l->ledger, (long long)l->first_offset,
                          (long long)l->entries, (long long)l->messages,
                          (unsigned long long)l->ctime_ms, (unsigned long long)l->mtime_ms);
    }
    uint32_t crc = mq_crc32c(0, sb.p, sb.len);
    br_mlog_sb_printf(&sb, BR_MLOG_REC_CRC_KEY "%08x\n", crc);
    *out = sb.p;
    if (len) {
        *len = sb.len;
    }
    return MQ_OK;
}

/* --- decoding ---------------------------------------------------------------- */

/* The framing: a NUL-free record ending with a matching checksum line.
 * *body_len gets the length the checksum covers. */
static mq_err_t br_mlog_dec_frame(const char *data, size_t len, size_t *body_len, char *why,
                                  size_t why_len)
{
    if (len == 0) {
        br_mlog_why(why, why_len, "empty record");
        return MQ_ECORRUPT;
    }
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        br_mlog_why(why, why_len, "NUL byte at offset %zu", (size_t)(nul - data));
        return MQ_ECORRUPT;
    }
    if (data[len - 1] != '\n') {
        br_mlog_why(why, why_len, "record does not end with a newline (truncated?)");
        return MQ_ECORRUPT;
    }
    size_t ls = len - 1;
    while (ls > 0 && data[ls - 1] != '\n') {
        ls--;
    }
    const char *line = data + ls;
    size_t n = len - ls;
    size_t kl = sizeof(BR_MLOG_REC_CRC_KEY) - 1;
    if (n < kl || memcmp(line, BR_MLOG_REC_CRC_KEY, kl) != 0) {
        br_mlog_why(why, why_len, "missing checksum line at the end (truncated?)");
        return MQ_ECORRUPT;
    }
    bool ok = n == BR_MLOG_REC_CRC_LINE;
    uint32_t want = 0;
    for (size_t i = kl; ok && i < kl + 8; i++) {
        char c = line[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        want = (want << 4) | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (!ok) {
        br_mlog_why(why, why_len, "bad checksum line (want 8 lowercase hex digits)");
        return MQ_ECORRUPT;
    }
    uint32_t got = mq_crc32c(0, data, ls);
    if (got != want) {
        br_mlog_why(why, why_len, "checksum mismatch: record says %08x, content gives %08x", want,
                    got);
        return MQ_ECORRUPT;
    }
    *body_len = ls;
    return MQ_OK;
}

/* "id,first,entries,messages,ctime,mtime" */
static mq_err_t br_mlog_dec_ledger(const char *v, size_t vn, int line, br_mlog_ledger_info_t *l,
                                   char *why, size_t why_len)
{
    const char *f[6];
    size_t fn[6];
    size_t at = 0;
    int k = 0;
    for (;;) {
        const char *comma = memchr(v + at, ',', vn - at);
        size_t end = comma ? (size_t)(comma - v) : vn;
        if (k == 6) {
            k = 7;
            break;
        }
        f[k] = v + at;
        fn[k] = end - at;
        k++;
        if (!comma) {
            break;
        }
        at = end + 1;
    }
    char ex[BR_MLOG_REC_EXCERPT + 8];
    if (k != 6) {
        br_mlog_why(why, why_len, "line %d: ledger= wants 6 fields: '%s'", line,
                    br_mlog_excerpt(ex, sizeof(ex), v, vn));
        return MQ_ECORRUPT;
    }
    uint64_t id, ctime, mtime;
    int64_t first, entries, messages;
    if (!br_mlog_parse_u64(f[0], fn[0], &id) || !br_mlog_parse_i64(f[1], fn[1], &first) ||
        !br_mlog_parse_i64(f[2], fn[2], &entries) || !br_mlog_parse_i64(f[3], fn[3], &messages) ||
        !br_mlog_parse_u64(f[4], fn[4], &ctime) || !br_mlog_parse_u64(f[5], fn[5], &mtime)) {
        br_mlog_why(why, why_len, "line %d: bad number in ledger='%s'", line,
                    br_mlog_excerpt(ex, sizeof(ex), v, vn));
        return MQ_ECORRUPT;
    }
    l->ledger = id;
    l->first_offset = first;
    l->entries = entries;
    l->messages = messages;
    l->ctime_ms = ctime;
    l->mtime_ms = mtime;
    return MQ_OK;
}

mq_err_t br_mlog_record_decode(const char *data, size_t len, br_mlog_info_t *out, char *why,
                               size_t why_len)
{
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->version = -1;
    br_mlog_why(why, why_len, "%s", "");
    if (!data && len > 0) {
        return MQ_EINVAL;
    }
    size_t body = 0;
    mq_err_t err = br_mlog_dec_frame(data, len, &body, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    /* Count the ledger lines first, so a record over the bound costs
     * nothing and the array is sized once. */
    size_t kl = sizeof(BR_MLOG_REC_LEDGER_KEY) - 1;
    size_t nl = 0;
    for (size_t at = 0; at < body;) {
        const char *nlp = memchr(data + at, '\n', body - at);
        size_t n = (size_t)(nlp - (data + at));
        if (n >= kl && memcmp(data + at, BR_MLOG_REC_LEDGER_KEY, kl) == 0) {
            nl++;
        }
        at += n + 1;
    }
    if (nl > BR_MLOG_MAX_LEDGERS) {
        br_mlog_why(why, why_len, "%zu ledgers (at most %d)", nl, BR_MLOG_MAX_LEDGERS);
        return MQ_ECORRUPT;
    }
    br_mlog_info_t rec;
    memset(&rec, 0, sizeof(rec));
    if (nl > 0) {
        rec.ledgers = mq_try_malloc(nl * sizeof(*rec.ledgers));
        if (!rec.ledgers) {
            return MQ_ENOMEM;
        }
    }
    char ex[BR_MLOG_REC_EXCERPT + 8];
    bool have_min = false;
    int line = 0;
    for (size_t at = 0; at < body && err == MQ_OK;) {
        /* body ends right after a '\n' (the checksum line starts there). */
        const char *nlp = memchr(data + at, '\n', body - at);
        size_t n = (size_t)(nlp - (data + at));
        const char *s = data + at;
        at += n + 1;
        line++;
        if (line == 1) {
            if (n != strlen(BR_MLOG_REC_HEADER) || memcmp(s, BR_MLOG_REC_HEADER, n) != 0) {
                br_mlog_why(why, why_len, "not a queue record (bad first line)");
                err = MQ_ECORRUPT;
            }
            continue;
        }
        const char *eq = memchr(s, '=', n);
        if (!eq) {
            br_mlog_why(why, why_len, "line %d: no '=' in '%s'", line,
                        br_mlog_excerpt(ex, sizeof(ex), s, n));
            err = MQ_ECORRUPT;
            continue;
        }
        size_t kn = (size_t)(eq - s);
        const char *v = eq + 1;
        size_t vn = n - kn - 1;
        if (line == 2) {
            uint64_t ver;
            if (kn != 7 || memcmp(s, "version", 7) != 0 || !br_mlog_parse_u64(v, vn, &ver) ||
                ver != BR_MLOG_REC_VERSION) {
                br_mlog_why(why, why_len, "line 2: expected version=%d, found '%s'",
                            BR_MLOG_REC_VERSION, br_mlog_excerpt(ex, sizeof(ex), s, n));
                err = MQ_ECORRUPT;
            }
            continue;
        }
        if (kn == 9 && memcmp(s, "minOffset", 9) == 0) {
            if (have_min) {
                br_mlog_why(why, why_len, "line %d: duplicate minOffset", line);
                err = MQ_ECORRUPT;
            } else if (!br_mlog_parse_i64(v, vn, &rec.min_offset)) {
                br_mlog_why(why, why_len, "line %d: bad minOffset '%s'", line,
                            br_mlog_excerpt(ex, sizeof(ex), v, vn));
                err = MQ_ECORRUPT;
            }
            have_min = true;
            continue;
        }
        if (kn + 1 == kl && memcmp(s, BR_MLOG_REC_LEDGER_KEY, kl) == 0) {
            /* Presized: every "ledger=" line was counted. */
            MQ_ASSERT(rec.nledgers < nl);
            err = br_mlog_dec_ledger(v, vn, line, &rec.ledgers[rec.nledgers], why, why_len);
            rec.nledgers++;
            continue;
        }
        br_mlog_why(why, why_len, "line %d: unknown key '%s'", line,
                    br_mlog_excerpt(ex, sizeof(ex), s, kn));
        err = MQ_ECORRUPT;
    }
    if (err == MQ_OK && line < 2) {
        br_mlog_why(why, why_len, "not a queue record (no version line)");
        err = MQ_ECORRUPT;
    }
    if (err == MQ_OK && !have_min) {
        br_mlog_why(why, why_len, "missing minOffset");
        err = MQ_ECORRUPT;
    }
    if (err == MQ_OK && br_mlog_record_check(&rec, why, why_len) != MQ_OK) {
        err = MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        free(rec.ledgers);
        return err;
    }
    rec.version = -1;
    rec.max_offset = br_mlog_record_end(&rec);
    *out = rec;
    return MQ_OK;
}

/* --- ZooKeeper --------------------------------------------------------------- */

mq_err_t br_mlog_path(const char *root, const char *topic, int queue, char *out, size_t cap)
{
    if (!root || !topic || queue < 0 || !out || cap == 0) {
        return MQ_EINVAL;
    }
    size_t tn = strlen(topic);
    if (tn == 0 || tn > BR_MLOG_TOPIC_MAX || strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0) {
        return MQ_EINVAL;
    }
    for (size_t i = 0; i < tn; i++) {
        unsigned char c = (unsigned char)topic[i];
        if (c == '/' || c < 0x20 || c == 0x7f) {
            return MQ_EINVAL;
        }
    }
    size_t rn = strlen(root);
    while (rn > 0 && root[rn - 1] == '/') {
        rn--;
    }
    int n = snprintf(out, cap, "%.*s/topics/%s/queues/%d", (int)rn, root, topic, queue);
    if (n < 0 || (size_t)n >= cap) {
        return MQ_EINVAL;
    }
    return MQ_OK;
}

static mq_err_t br_mlog_meta_decode(const char *path, const char *data, size_t len, int32_t version,
                                    br_mlog_info_t *out)
{
    char why[256];
    mq_err_t err = br_mlog_record_decode(data, len, out, why, sizeof(why));
    if (err == MQ_ECORRUPT) {
        MQ_LOG_WARN("queue record does not decode path=%s version=%d len=%zu why=%s", path,
                    (int)version, len, why);
    }
    if (err == MQ_OK) {
        out->version = version;
    }
    return err;
}

mq_err_t br_mlog_meta_load(zk_client_t *zk, const char *path, bool create, br_mlog_info_t *out)
{
    memset(out, 0, sizeof(*out));
    out->version = -1;
    for (int attempt = 0; attempt < 10; attempt++) {
        char *data = NULL;
        size_t len = 0;
        zk_stat_t st;
        mq_err_t err = zk_get(zk, path, &data, &len, &st);
        if (err == MQ_OK) {
            err = br_mlog_meta_decode(path, data, len, st.version, out);
            free(data);
            return err;
        }
        if (err != MQ_ENOTFOUND || !create) {
            return err;
        }
        /* A queue that never had a log: an empty list at offset 0. Another
         * opener may create it first (MQ_EEXIST): read that one. */
        br_mlog_info_t empty;
        memset(&empty, 0, sizeof(empty));
        char *enc;
        size_t elen;
        err = br_mlog_record_encode(&empty, &enc, &elen);
        if (err != MQ_OK) {
            return err;
        }
        err = zk_create_parents(zk, path, enc, elen, ZK_PERSISTENT, NULL, 0);
        free(enc);
        if (err != MQ_OK && err != MQ_EEXIST && err != MQ_ECONN) {
            return err;
        }
    }
    return MQ_EAGAIN;
}

static void br_mlog_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

mq_err_t br_mlog_meta_cas(zk_client_t *zk, const char *path, br_mlog_info_t *rec)
{
    if (rec->version < 0) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = br_mlog_record_encode(rec, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    uint64_t deadline = mq_now_ms() + BR_MLOG_CAS_DEADLINE_MS;
    bool unsure = false; /* a write may have gone through without an answer */
    for (;;) {
        zk_stat_t st;
        if (!unsure) {
            err = zk_set(zk, path, data, len, rec->version, &st);
            if (err == MQ_OK) {
                rec->version = st.version;
                break;
            }
            if (err == MQ_ENOTFOUND) {
                /* The record is gone: someone else manages this queue now. */
                err = MQ_EBADVERSION;
                break;
            }
            if (err == MQ_EBADVERSION || !mq_err_retriable(err)) {
                break;
            }
            unsure = true;
        } else {
            /* Read back: still at our version means not written (write
             * again); our bytes one version later mean written. */
            char *cur = NULL;
            size_t clen = 0;
            err = zk_get(zk, path, &cur, &clen, &st);
            if (err == MQ_OK) {
                bool ours =
                    st.version == rec->version + 1 && clen == len && memcmp(cur, data, len) == 0;
                bool untouched = st.version == rec->version;
                free(cur);
                if (ours) {
                    rec->version = st.version;
                    break;
                }
                if (!untouched) {
                    err = MQ_EBADVERSION;
                    break;
                }
                unsure = false;
                continue;
            }
            if (err == MQ_ENOTFOUND) {
                err = MQ_EBADVERSION;
                break;
            }
            if (!mq_err_retriable(err)) {
                break;
            }
        }
        if (mq_now_ms() > deadline) {
            break;
        }
        br_mlog_sleep_ms(100);
    }
    free(data);
    return err;
}

mq_err_t br_mlog_info_read(zk_client_t *zk, const char *root, const char *topic, int queue,
                           br_mlog_info_t *out)
{
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->version = -1;
    char path[BR_MLOG_PATH_MAX];
    mq_err_t err = br_mlog_path(root, topic, queue, path, sizeof(path));
    if (err != MQ_OK || !zk) {
        return MQ_EINVAL;
    }
    return br_mlog_meta_load(zk, path, false, out);
}
