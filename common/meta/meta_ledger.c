/*
 * meta_ledger: the ledger metadata record (meta_ledger.h) and its text codec.
 *
 * The ledger client (common/ledger/) builds records with meta_ledger_init,
 * changes them with meta_ledger_replace_bookie / meta_ledger_set_custom and
 * its own field updates, and meta_store.c encodes them into ZooKeeper and
 * decodes what it reads back. Pure functions with no shared state: any
 * thread, as long as one record is not changed by two threads at once.
 *
 * One validator (meta_ledger_check) decides what a well-formed record is; the
 * encoder refuses anything it rejects (MQ_EINVAL: never write what cannot be
 * read back) and the decoder runs it on everything it parsed (MQ_ECORRUPT),
 * so encode -> decode is the identity on every record the encoder accepts.
 *
 * Decoding never trusts its input. It first checks the framing (no NUL byte,
 * a final "checksum=<8 hex>\n" line, the CRC32C of every byte above it), then
 * the header line and "version=1" as the first key, then every other line:
 * each known key exactly once, numbers in canonical decimal (no sign unless
 * negative, no leading zero, no overflow), "ensemble.<first entry>" lines in
 * strictly increasing order starting at 0, "custom.<key>" with keys in
 * [A-Za-z0-9._-]. Sizes read from the record are bounded (at most
 * META_LEDGER_MAX_SEGMENTS segments and META_LEDGER_MAX_CUSTOM custom keys)
 * and their memory comes from checked allocations (MQ_ENOMEM, never abort).
 * A failing decode leaves *out empty (fini-able, holding nothing).
 */
#include "meta_ledger.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "mq_crc32c.h"
#include "mq_log.h"
#include "mq_util.h"

#define META_LEDGER_FORMAT_VERSION 1
#define META_LEDGER_HEADER "# LedgerMQ ledger metadata"
/* Bounds on what a record may hold (a record in ZooKeeper is at most 1 MB
 * anyway; these keep a hostile record from costing much more). */
#define META_LEDGER_MAX_SEGMENTS 100000
#define META_LEDGER_MAX_CUSTOM 100000
/* "checksum=" + 8 hex digits + "\n" */
#define META_LEDGER_CRC_KEY "checksum="
#define META_LEDGER_CRC_LINE (sizeof(META_LEDGER_CRC_KEY) - 1 + 8 + 1)
/* How much of a bad value a reason quotes. */
#define META_LEDGER_EXCERPT 48

/* --- small helpers -------------------------------------------------------- */

static void meta_ledger_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void meta_ledger_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* A printable, bounded copy of n bytes of s for a reason (bytes from the
 * record may be anything but NUL and newline). */
static const char *meta_ledger_excerpt(char *dst, size_t cap, const char *s, size_t n)
{
    size_t out = 0;
    size_t max = MQ_MIN(n, (size_t)META_LEDGER_EXCERPT);
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

static bool meta_ledger_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool meta_ledger_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* A bookie id as the record holds it: 1..META_BOOKIE_ID_MAX-1 bytes, NUL
 * terminated inside the array, without ',' or '\n'. */
static bool meta_ledger_bookie_ok(const char *id, const char **what)
{
    size_t n = strnlen(id, META_BOOKIE_ID_MAX);
    if (n == 0) {
        *what = "empty bookie id";
        return false;
    }
    if (n == META_BOOKIE_ID_MAX) {
        *what = "bookie id too long";
        return false;
    }
    if (memchr(id, ',', n) || memchr(id, '\n', n)) {
        *what = "bookie id contains ',' or a newline";
        return false;
    }
    return true;
}

bool meta_ledger_parse_u64(const char *s, size_t n, uint64_t *out)
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

/* Canonical signed decimal: an optional '-' (not "-0") and the above, within
 * int64_t. */
static bool meta_ledger_parse_i64(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v;
    if (!meta_ledger_parse_u64(s + neg, n - neg, &v)) {
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

static char *meta_ledger_try_strndup(const char *s, size_t n)
{
    char *p = mq_try_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* --- the record ------------------------------------------------------------ */

const char *meta_ledger_state_name(meta_ledger_state_t state)
{
    switch (state) {
    case META_LEDGER_OPEN:
        return "OPEN";
    case META_LEDGER_IN_RECOVERY:
        return "IN_RECOVERY";
    case META_LEDGER_CLOSED:
        return "CLOSED";
    }
    return "UNKNOWN";
}

static bool meta_ledger_state_parse(const char *s, size_t n, meta_ledger_state_t *out)
{
    static const meta_ledger_state_t states[] = {META_LEDGER_OPEN, META_LEDGER_IN_RECOVERY,
                                                 META_LEDGER_CLOSED};
    for (size_t i = 0; i < MQ_ARRAY_LEN(states); i++) {
        const char *name = meta_ledger_state_name(states[i]);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *out = states[i];
            return true;
        }
    }
    return false;
}

void meta_ledger_init(meta_ledger_t *md, uint64_t id, int e, int qw, int qa,
                      const char *const *ensemble, const char *master_key_digest)
{
    MQ_ASSERT(md != NULL);
    MQ_ASSERT(e >= 1 && e <= META_MAX_ENSEMBLE);
    MQ_ASSERT(ensemble != NULL);
    memset(md, 0, sizeof(*md));
    md->id = id;
    md->ensemble_size = e;
    md->write_quorum = qw;
    md->ack_quorum = qa;
    md->state = META_LEDGER_OPEN;
    md->last_entry_id = -1;
    md->length = 0;
    md->ctime_ms = mq_wall_ms();
    /* No digest given: all zeros (the encoder accepts it; it matches no
     * real key's SHA-256 in practice). */
    if (master_key_digest) {
        snprintf(md->master_key_digest, sizeof(md->master_key_digest), "%s", master_key_digest);
    } else {
        memset(md->master_key_digest, '0', META_DIGEST_HEX);
    }
    md->segments = mq_calloc(1, sizeof(*md->segments));
    md->nsegments = 1;
    md->segments[0].first_entry = 0;
    for (int i = 0; i < e; i++) {
        MQ_ASSERT(ensemble[i] != NULL && strlen(ensemble[i]) < META_BOOKIE_ID_MAX);
        memcpy(md->segments[0].bookies[i], ensemble[i], strlen(ensemble[i]) + 1);
    }
    md->version = -1;
}

void meta_ledger_fini(meta_ledger_t *md)
{
    if (!md) {
        return;
    }
    free(md->segments);
    for (size_t i = 0; i < md->ncustom; i++) {
        free(md->custom[i].key);
        free(md->custom[i].value);
    }
    free(md->custom);
    memset(md, 0, sizeof(*md));
    md->version = -1;
}

void meta_ledger_copy(meta_ledger_t *dst, const meta_ledger_t *src)
{
    MQ_ASSERT(dst != NULL && src != NULL && dst != src);
    *dst = *src;
    dst->segments = NULL;
    dst->custom = NULL;
    if (src->nsegments > 0) {
        dst->segments = mq_malloc(src->nsegments * sizeof(*dst->segments));
        memcpy(dst->segments, src->segments, src->nsegments * sizeof(*dst->segments));
    }
    if (src->ncustom > 0) {
        dst->custom = mq_malloc(src->ncustom * sizeof(*dst->custom));
        for (size_t i = 0; i < src->ncustom; i++) {
            dst->custom[i].key = mq_strdup(src->custom[i].key);
            dst->custom[i].value = mq_strdup(src->custom[i].value);
        }
    }
}

const meta_segment_t *meta_ledger_segment(const meta_ledger_t *md, int64_t entry)
{
    if (!md || md->nsegments == 0 || entry < 0 || md->segments[0].first_entry > entry) {
        return NULL;
    }
    /* The last segment whose first entry is <= entry: segments[lo] always
     * qualifies, segments[hi] (hi == n: none) never does. */
    size_t lo = 0;
    size_t hi = md->nsegments;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (md->segments[mid].first_entry <= entry) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return &md->segments[lo];
}

const meta_segment_t *meta_ledger_last_segment(const meta_ledger_t *md)
{
    if (!md || md->nsegments == 0) {
        return NULL;
    }
    return &md->segments[md->nsegments - 1];
}

void meta_ledger_replace_bookie(meta_ledger_t *md, int64_t first_entry, int idx,
                                const char *new_bookie)
{
    MQ_ASSERT(md != NULL && md->nsegments > 0 && new_bookie != NULL);
    MQ_ASSERT(idx >= 0 && idx < md->ensemble_size && idx < META_MAX_ENSEMBLE);
    MQ_ASSERT(strlen(new_bookie) < META_BOOKIE_ID_MAX);
    meta_segment_t *last = &md->segments[md->nsegments - 1];
    /* Segments never go back in time: the caller replaces from an entry
     * at or after the start of the current ensemble. */
    MQ_ASSERT(first_entry >= last->first_entry);
    if (first_entry != last->first_entry) {
        md->segments = mq_realloc(md->segments, (md->nsegments + 1) * sizeof(*md->segments));
        md->segments[md->nsegments] = md->segments[md->nsegments - 1];
        md->nsegments++;
        last = &md->segments[md->nsegments - 1];
        last->first_entry = first_entry;
    }
    memset(last->bookies[idx], 0, META_BOOKIE_ID_MAX);
    memcpy(last->bookies[idx], new_bookie, strlen(new_bookie));
}

void meta_ledger_set_custom(meta_ledger_t *md, const char *key, const char *value)
{
    MQ_ASSERT(md != NULL && key != NULL && value != NULL);
    for (size_t i = 0; i < md->ncustom; i++) {
        if (strcmp(md->custom[i].key, key) == 0) {
            char *v = mq_strdup(value);
            free(md->custom[i].value);
            md->custom[i].value = v;
            return;
        }
    }
    md->custom = mq_realloc(md->custom, (md->ncustom + 1) * sizeof(*md->custom));
    md->custom[md->ncustom].key = mq_strdup(key);
    md->custom[md->ncustom].value = mq_strdup(value);
    md->ncustom++;
}

const char *meta_ledger_get_custom(const meta_ledger_t *md, const char *key)
{
    if (!md || !key) {
        return NULL;
    }
    for (size_t i = 0; i < md->ncustom; i++) {
        if (strcmp(md->custom[i].key, key) == 0) {
            return md->custom[i].value;
        }
    }
    return NULL;
}

/* --- validation ------------------------------------------------------------ */

static int meta_ledger_kv_cmp(const void *a, const void *b)
{
    const meta_kv_t *x = *(const meta_kv_t *const *)a;
    const meta_kv_t *y = *(const meta_kv_t *const *)b;
    return strcmp(x->key, y->key);
}

/* Custom keys: well-formed and distinct (sorted copy of the pointers, so a
 * record with many keys costs n log n). */
static mq_err_t meta_ledger_check_custom(const meta_ledger_t *md, char *why, size_t why_len)
{
    char ex[META_LEDGER_EXCERPT + 8];
    if (md->ncustom > META_LEDGER_MAX_CUSTOM) {
        meta_ledger_why(why, why_len, "%zu custom keys (at most %d)", md->ncustom,
                        META_LEDGER_MAX_CUSTOM);
        return MQ_EINVAL;
    }
    if (md->ncustom > 0 && !md->custom) {
        meta_ledger_why(why, why_len, "custom keys missing");
        return MQ_EINVAL;
    }
    for (size_t i = 0; i < md->ncustom; i++) {
        const meta_kv_t *kv = &md->custom[i];
        if (!kv->key || !kv->value) {
            meta_ledger_why(why, why_len, "custom key %zu is NULL", i);
            return MQ_EINVAL;
        }
        size_t kn = strlen(kv->key);
        if (kn == 0) {
            meta_ledger_why(why, why_len, "empty custom key");
            return MQ_EINVAL;
        }
        for (size_t k = 0; k < kn; k++) {
            if (!meta_ledger_key_char(kv->key[k])) {
                meta_ledger_why(why, why_len,
                                "custom key '%s' has a character outside [A-Za-z0-9._-]",
                                meta_ledger_excerpt(ex, sizeof(ex), kv->key, kn));
                return MQ_EINVAL;
            }
        }
        if (strchr(kv->value, '\n')) {
            meta_ledger_why(why, why_len, "value of custom key '%s' contains a newline",
                            meta_ledger_excerpt(ex, sizeof(ex), kv->key, kn));
            return MQ_EINVAL;
        }
    }
    if (md->ncustom < 2) {
        return MQ_OK;
    }
    const meta_kv_t **sorted = mq_try_malloc(md->ncustom * sizeof(*sorted));
    if (!sorted) {
        return MQ_ENOMEM;
    }
    for (size_t i = 0; i < md->ncustom; i++) {
        sorted[i] = &md->custom[i];
    }
    qsort(sorted, md->ncustom, sizeof(*sorted), meta_ledger_kv_cmp);
    mq_err_t err = MQ_OK;
    for (size_t i = 1; i < md->ncustom && err == MQ_OK; i++) {
        if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
            meta_ledger_why(
                why, why_len, "duplicate custom key '%s'",
                meta_ledger_excerpt(ex, sizeof(ex), sorted[i]->key, strlen(sorted[i]->key)));
            err = MQ_EINVAL;
        }
    }
    free(sorted);
    return err;
}

static mq_err_t meta_ledger_check_segments(const meta_ledger_t *md, bool strict_tail, char *why,
                                           size_t why_len)
{
    if (md->nsegments == 0 || !md->segments) {
        meta_ledger_why(why, why_len, "no ensemble");
        return MQ_EINVAL;
    }
    if (md->nsegments > META_LEDGER_MAX_SEGMENTS) {
        meta_ledger_why(why, why_len, "%zu segments (at most %d)", md->nsegments,
                        META_LEDGER_MAX_SEGMENTS);
        return MQ_EINVAL;
    }
    if (md->segments[0].first_entry != 0) {
        meta_ledger_why(why, why_len, "first segment starts at entry %lld, not 0",
                        (long long)md->segments[0].first_entry);
        return MQ_EINVAL;
    }
    int e = md->ensemble_size;
    for (size_t s = 0; s < md->nsegments; s++) {
        const meta_segment_t *seg = &md->segments[s];
        if (s > 0 && seg->first_entry <= md->segments[s - 1].first_entry) {
            meta_ledger_why(why, why_len,
                            "segment %zu starts at entry %lld, not after %lld (segments must "
                            "strictly increase)",
                            s, (long long)seg->first_entry,
                            (long long)md->segments[s - 1].first_entry);
            return MQ_EINVAL;
        }
        for (int i = 0; i < e; i++) {
            const char *what;
            if (!meta_ledger_bookie_ok(seg->bookies[i], &what)) {
                meta_ledger_why(why, why_len, "ensemble.%lld: bookie %d: %s (ensembleSize=%d)",
                                (long long)seg->first_entry, i, what, e);
                return MQ_EINVAL;
            }
            for (int k = 0; k < i; k++) {
                if (strcmp(seg->bookies[k], seg->bookies[i]) == 0) {
                    char ex[META_LEDGER_EXCERPT + 8];
                    meta_ledger_why(
                        why, why_len, "ensemble.%lld: bookie '%s' appears twice",
                        (long long)seg->first_entry,
                        meta_ledger_excerpt(ex, sizeof(ex), seg->bookies[i],
                                            strnlen(seg->bookies[i], META_BOOKIE_ID_MAX)));
                    return MQ_EINVAL;
                }
            }
        }
        /* A decoded line with more ids than ensembleSize leaves them here. */
        for (int i = e; strict_tail && i < META_MAX_ENSEMBLE; i++) {
            if (seg->bookies[i][0] != '\0') {
                meta_ledger_why(why, why_len, "ensemble.%lld: more than ensembleSize=%d bookies",
                                (long long)seg->first_entry, e);
                return MQ_EINVAL;
            }
        }
    }
    return MQ_OK;
}

/* What every record must satisfy: MQ_EINVAL (or MQ_ENOMEM) with a reason.
 * strict_tail: bookie slots past ensembleSize must be empty (decoding). */
static mq_err_t meta_ledger_check(const meta_ledger_t *md, bool strict_tail, char *why,
                                  size_t why_len)
{
    if (md->id < 1 || md->id > META_LEDGER_MAX_ID) {
        meta_ledger_why(why, why_len, "id=%llu out of range 1..%llu", (unsigned long long)md->id,
                        (unsigned long long)META_LEDGER_MAX_ID);
        return MQ_EINVAL;
    }
    if (md->ensemble_size < 1 || md->ensemble_size > META_MAX_ENSEMBLE) {
        meta_ledger_why(why, why_len, "ensembleSize=%d out of range 1..%d", md->ensemble_size,
                        META_MAX_ENSEMBLE);
        return MQ_EINVAL;
    }
    if (md->write_quorum < 1 || md->write_quorum > md->ensemble_size) {
        meta_ledger_why(why, why_len, "writeQuorumSize=%d out of range 1..ensembleSize=%d",
                        md->write_quorum, md->ensemble_size);
        return MQ_EINVAL;
    }
    if (md->ack_quorum < 1 || md->ack_quorum > md->write_quorum) {
        meta_ledger_why(why, why_len, "ackQuorumSize=%d out of range 1..writeQuorumSize=%d",
                        md->ack_quorum, md->write_quorum);
        return MQ_EINVAL;
    }
    if (md->state != META_LEDGER_OPEN && md->state != META_LEDGER_IN_RECOVERY &&
        md->state != META_LEDGER_CLOSED) {
        meta_ledger_why(why, why_len, "bad state %d", (int)md->state);
        return MQ_EINVAL;
    }
    if (md->last_entry_id < -1) {
        meta_ledger_why(why, why_len, "lastEntryId=%lld below -1", (long long)md->last_entry_id);
        return MQ_EINVAL;
    }
    if (md->length > (uint64_t)INT64_MAX) {
        meta_ledger_why(why, why_len, "length=%llu out of range", (unsigned long long)md->length);
        return MQ_EINVAL;
    }
    if (md->ctime_ms > (uint64_t)INT64_MAX) {
        meta_ledger_why(why, why_len, "ctime=%llu out of range", (unsigned long long)md->ctime_ms);
        return MQ_EINVAL;
    }
    size_t dn = strnlen(md->master_key_digest, sizeof(md->master_key_digest));
    bool hex = dn == META_DIGEST_HEX;
    for (size_t i = 0; i < dn && hex; i++) {
        hex = meta_ledger_is_hex(md->master_key_digest[i]);
    }
    if (!hex) {
        meta_ledger_why(why, why_len, "masterKeyDigest is not %d hex digits", META_DIGEST_HEX);
        return MQ_EINVAL;
    }
    mq_err_t err = meta_ledger_check_segments(md, strict_tail, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    return meta_ledger_check_custom(md, why, why_len);
}

/* --- encoding ------------------------------------------------------------- */

typedef struct meta_ledger_sb {
    char *p;
    size_t len;
    size_t cap;
} meta_ledger_sb_t;

static void meta_ledger_sb_reserve(meta_ledger_sb_t *sb, size_t more)
{
    if (sb->len + more + 1 <= sb->cap) {
        return;
    }
    size_t cap = sb->cap ? sb->cap : 512;
    while (cap < sb->len + more + 1) {
        cap *= 2;
    }
    sb->p = mq_realloc(sb->p, cap);
    sb->cap = cap;
}

static void meta_ledger_sb_add(meta_ledger_sb_t *sb, const char *s, size_t n)
{
    meta_ledger_sb_reserve(sb, n);
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void meta_ledger_sb_str(meta_ledger_sb_t *sb, const char *s)
{
    meta_ledger_sb_add(sb, s, strlen(s));
}

static void meta_ledger_sb_printf(meta_ledger_sb_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void meta_ledger_sb_printf(meta_ledger_sb_t *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    MQ_ASSERT(n >= 0 && (size_t)n < sizeof(small));
    meta_ledger_sb_add(sb, small, (size_t)n);
}

mq_err_t meta_ledger_encode(const meta_ledger_t *md, char **out, size_t *len)
{
    if (!md || !out) {
        return MQ_EINVAL;
    }
    char why[256] = "";
    mq_err_t err = meta_ledger_check(md, false, why, sizeof(why));
    if (err != MQ_OK) {
        MQ_LOG_WARN("ledger metadata not encoded ledger=%llu err=%s why=%s",
                    (unsigned long long)md->id, mq_err_name(err), why);
        return err;
    }
    meta_ledger_sb_t sb = {NULL, 0, 0};
    meta_ledger_sb_str(&sb, META_LEDGER_HEADER "\n");
    meta_ledger_sb_printf(&sb, "version=%d\n", META_LEDGER_FORMAT_VERSION);
    meta_ledger_sb_printf(&sb, "id=%llu\n", (unsigned long long)md->id);
    meta_ledger_sb_printf(&sb, "ensembleSize=%d\n", md->ensemble_size);
    meta_ledger_sb_printf(&sb, "writeQuorumSize=%d\n", md->write_quorum);
    meta_ledger_sb_printf(&sb, "ackQuorumSize=%d\n", md->ack_quorum);
    meta_ledger_sb_printf(&sb, "state=%s\n", meta_ledger_state_name(md->state));
    meta_ledger_sb_printf(&sb, "lastEntryId=%lld\n", (long long)md->last_entry_id);
    meta_ledger_sb_printf(&sb, "length=%llu\n", (unsigned long long)md->length);
    meta_ledger_sb_printf(&sb, "ctime=%llu\n", (unsigned long long)md->ctime_ms);
    meta_ledger_sb_printf(&sb, "masterKeyDigest=%.*s\n", META_DIGEST_HEX, md->master_key_digest);
    for (size_t s = 0; s < md->nsegments; s++) {
        const meta_segment_t *seg = &md->segments[s];
        meta_ledger_sb_printf(&sb, "ensemble.%lld=", (long long)seg->first_entry);
        for (int i = 0; i < md->ensemble_size; i++) {
            if (i > 0) {
                meta_ledger_sb_add(&sb, ",", 1);
            }
            meta_ledger_sb_str(&sb, seg->bookies[i]);
        }
        meta_ledger_sb_add(&sb, "\n", 1);
    }
    for (size_t i = 0; i < md->ncustom; i++) {
        meta_ledger_sb_str(&sb, "custom.");
        meta_ledger_sb_str(&sb, md->custom[i].key);
        meta_ledger_sb_add(&sb, "=", 1);
        meta_ledger_sb_str(&sb, md->custom[i].value);
        meta_ledger_sb_add(&sb, "\n", 1);
    }
    uint32_t crc = mq_crc32c(0, sb.p, sb.len);
    meta_ledger_sb_printf(&sb, META_LEDGER_CRC_KEY "%08x\n", crc);
    *out = sb.p;
    if (len) {
        *len = sb.len;
    }
    return MQ_OK;
}

/* --- decoding ------------------------------------------------------------- */

/* The scalar keys; each must appear exactly once. */
enum {
    META_LEDGER_K_VERSION,
    META_LEDGER_K_ID,
    META_LEDGER_K_ENSEMBLE_SIZE,
    META_LEDGER_K_WRITE_QUORUM,
    META_LEDGER_K_ACK_QUORUM,
    META_LEDGER_K_STATE,
    META_LEDGER_K_LAST_ENTRY,
    META_LEDGER_K_LENGTH,
    META_LEDGER_K_CTIME,
    META_LEDGER_K_DIGEST,
    META_LEDGER_K_COUNT
};

static const char *const meta_ledger_keys[META_LEDGER_K_COUNT] = {
    "version", "id",          "ensembleSize", "writeQuorumSize", "ackQuorumSize",
    "state",   "lastEntryId", "length",       "ctime",           "masterKeyDigest",
};

/* Decoding state: the record being built and how far it got. */
typedef struct meta_ledger_dec {
    meta_ledger_t *md;
    size_t seg_cap;
    size_t custom_cap;
    unsigned seen; /* bit per scalar key */
    int line;      /* current line number, from 1 */
    char *why;
    size_t why_len;
} meta_ledger_dec_t;

static mq_err_t meta_ledger_dec_scalar(meta_ledger_dec_t *d, int k, const char *v, size_t vn)
{
    meta_ledger_t *md = d->md;
    char ex[META_LEDGER_EXCERPT + 8];
    uint64_t u = 0;
    int64_t i64 = 0;
    bool ok = true;
    switch (k) {
    case META_LEDGER_K_VERSION:
        /* Only as the first key (checked by the caller). */
        ok = false;
        break;
    case META_LEDGER_K_ID:
        ok = meta_ledger_parse_u64(v, vn, &u);
        md->id = u;
        break;
    case META_LEDGER_K_ENSEMBLE_SIZE:
    case META_LEDGER_K_WRITE_QUORUM:
    case META_LEDGER_K_ACK_QUORUM:
        /* The range check (against each other) comes with the whole record;
         * here only what fits an int. */
        ok = meta_ledger_parse_u64(v, vn, &u) && u <= 1000;
        if (k == META_LEDGER_K_ENSEMBLE_SIZE) {
            md->ensemble_size = (int)u;
        } else if (k == META_LEDGER_K_WRITE_QUORUM) {
            md->write_quorum = (int)u;
        } else {
            md->ack_quorum = (int)u;
        }
        break;
    case META_LEDGER_K_STATE:
        if (!meta_ledger_state_parse(v, vn, &md->state)) {
            meta_ledger_why(d->why, d->why_len, "line %d: bad state '%s'", d->line,
                            meta_ledger_excerpt(ex, sizeof(ex), v, vn));
            return MQ_ECORRUPT;
        }
        break;
    case META_LEDGER_K_LAST_ENTRY:
        ok = meta_ledger_parse_i64(v, vn, &i64);
        md->last_entry_id = i64;
        break;
    case META_LEDGER_K_LENGTH:
        ok = meta_ledger_parse_u64(v, vn, &u);
        md->length = u;
        break;
    case META_LEDGER_K_CTIME:
        ok = meta_ledger_parse_u64(v, vn, &u);
        md->ctime_ms = u;
        break;
    case META_LEDGER_K_DIGEST:
        ok = vn == META_DIGEST_HEX;
        for (size_t i = 0; i < vn && ok; i++) {
            ok = meta_ledger_is_hex(v[i]);
        }
        if (ok) {
            memcpy(md->master_key_digest, v, vn);
            md->master_key_digest[vn] = '\0';
        }
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        meta_ledger_why(d->why, d->why_len, "line %d: bad value for %s: '%s'", d->line,
                        meta_ledger_keys[k], meta_ledger_excerpt(ex, sizeof(ex), v, vn));
        return MQ_ECORRUPT;
    }
    return MQ_OK;
}

/* "ensemble.<first>=id,id,...": appended in the order read, which must be
 * strictly increasing from 0. */
static mq_err_t meta_ledger_dec_segment(meta_ledger_dec_t *d, const char *num, size_t nn,
                                        const char *v, size_t vn)
{
    meta_ledger_t *md = d->md;
    char ex[META_LEDGER_EXCERPT + 8];
    int64_t first;
    if (!meta_ledger_parse_i64(num, nn, &first) || first < 0) {
        meta_ledger_why(d->why, d->why_len, "line %d: bad first entry in 'ensemble.%s'", d->line,
                        meta_ledger_excerpt(ex, sizeof(ex), num, nn));
        return MQ_ECORRUPT;
    }
    if (md->nsegments == 0 && first != 0) {
        meta_ledger_why(d->why, d->why_len, "line %d: first segment starts at entry %lld, not 0",
                        d->line, (long long)first);
        return MQ_ECORRUPT;
    }
    if (md->nsegments > 0 && first <= md->segments[md->nsegments - 1].first_entry) {
        meta_ledger_why(d->why, d->why_len,
                        "line %d: segment at entry %lld does not come after %lld (segments must "
                        "strictly increase)",
                        d->line, (long long)first,
                        (long long)md->segments[md->nsegments - 1].first_entry);
        return MQ_ECORRUPT;
    }
    /* Presized: every "ensemble." line was counted. */
    MQ_ASSERT(md->nsegments < d->seg_cap);
    meta_segment_t *seg = &md->segments[md->nsegments];
    memset(seg, 0, sizeof(*seg));
    md->nsegments++;
    seg->first_entry = first;
    /* Split on ','; every id non-empty and fitting its slot. */
    size_t at = 0;
    int n = 0;
    for (;;) {
        const char *comma = memchr(v + at, ',', vn - at);
        size_t end = comma ? (size_t)(comma - v) : vn;
        size_t idn = end - at;
        if (idn == 0) {
            meta_ledger_why(d->why, d->why_len, "line %d: ensemble.%lld: empty bookie id", d->line,
                            (long long)first);
            return MQ_ECORRUPT;
        }
        if (idn >= META_BOOKIE_ID_MAX) {
            meta_ledger_why(d->why, d->why_len,
                            "line %d: ensemble.%lld: bookie id of %zu bytes (at most %d)", d->line,
                            (long long)first, idn, META_BOOKIE_ID_MAX - 1);
            return MQ_ECORRUPT;
        }
        if (n == META_MAX_ENSEMBLE) {
            meta_ledger_why(d->why, d->why_len, "line %d: ensemble.%lld: more than %d bookies",
                            d->line, (long long)first, META_MAX_ENSEMBLE);
            return MQ_ECORRUPT;
        }
        memcpy(seg->bookies[n], v + at, idn);
        n++;
        if (!comma) {
            break;
        }
        at = end + 1;
    }
    /* Fewer ids than ensembleSize leave an empty slot the check reports;
     * more leave a non-empty one past it. */
    return MQ_OK;
}

static mq_err_t meta_ledger_dec_custom(meta_ledger_dec_t *d, const char *k, size_t kn,
                                       const char *v, size_t vn)
{
    meta_ledger_t *md = d->md;
    char ex[META_LEDGER_EXCERPT + 8];
    if (kn == 0) {
        meta_ledger_why(d->why, d->why_len, "line %d: empty custom key", d->line);
        return MQ_ECORRUPT;
    }
    for (size_t i = 0; i < kn; i++) {
        if (!meta_ledger_key_char(k[i])) {
            meta_ledger_why(d->why, d->why_len,
                            "line %d: custom key '%s' has a character outside [A-Za-z0-9._-]",
                            d->line, meta_ledger_excerpt(ex, sizeof(ex), k, kn));
            return MQ_ECORRUPT;
        }
    }
    /* Presized: every "custom." line was counted. */
    MQ_ASSERT(md->ncustom < d->custom_cap);
    char *key = meta_ledger_try_strndup(k, kn);
    char *value = meta_ledger_try_strndup(v, vn);
    if (!key || !value) {
        free(key);
        free(value);
        return MQ_ENOMEM;
    }
    md->custom[md->ncustom].key = key;
    md->custom[md->ncustom].value = value;
    md->ncustom++;
    return MQ_OK;
}

/* One "key=value" line (not the header, not the checksum). */
static mq_err_t meta_ledger_dec_line(meta_ledger_dec_t *d, const char *s, size_t n)
{
    char ex[META_LEDGER_EXCERPT + 8];
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        meta_ledger_why(d->why, d->why_len, "line %d: no '=' in '%s'", d->line,
                        meta_ledger_excerpt(ex, sizeof(ex), s, n));
        return MQ_ECORRUPT;
    }
    size_t kn = (size_t)(eq - s);
    const char *v = eq + 1;
    size_t vn = n - kn - 1;
    if (d->line == 2) {
        if (kn != strlen("version") || memcmp(s, "version", kn) != 0) {
            meta_ledger_why(d->why, d->why_len, "line 2: expected version=, found '%s'",
                            meta_ledger_excerpt(ex, sizeof(ex), s, n));
            return MQ_ECORRUPT;
        }
        uint64_t ver;
        if (!meta_ledger_parse_u64(v, vn, &ver) || ver != META_LEDGER_FORMAT_VERSION) {
            meta_ledger_why(d->why, d->why_len, "unsupported format version '%s' (want %d)",
                            meta_ledger_excerpt(ex, sizeof(ex), v, vn), META_LEDGER_FORMAT_VERSION);
            return MQ_ECORRUPT;
        }
        d->seen |= 1u << META_LEDGER_K_VERSION;
        return MQ_OK;
    }
    static const char seg_prefix[] = "ensemble.";
    static const char custom_prefix[] = "custom.";
    if (kn >= sizeof(seg_prefix) - 1 && memcmp(s, seg_prefix, sizeof(seg_prefix) - 1) == 0) {
        return meta_ledger_dec_segment(d, s + sizeof(seg_prefix) - 1, kn - (sizeof(seg_prefix) - 1),
                                       v, vn);
    }
    if (kn >= sizeof(custom_prefix) - 1 &&
        memcmp(s, custom_prefix, sizeof(custom_prefix) - 1) == 0) {
        return meta_ledger_dec_custom(d, s + sizeof(custom_prefix) - 1,
                                      kn - (sizeof(custom_prefix) - 1), v, vn);
    }
    for (int k = 0; k < META_LEDGER_K_COUNT; k++) {
        if (strlen(meta_ledger_keys[k]) == kn && memcmp(meta_ledger_keys[k], s, kn) == 0) {
            if (d->seen & (1u << k)) {
                meta_ledger_why(d->why, d->why_len, "line %d: duplicate key %s", d->line,
                                meta_ledger_keys[k]);
                return MQ_ECORRUPT;
            }
            d->seen |= 1u << k;
            return meta_ledger_dec_scalar(d, k, v, vn);
        }
    }
    if (kn == strlen("checksum") && memcmp(s, "checksum", kn) == 0) {
        meta_ledger_why(d->why, d->why_len, "line %d: checksum is not the last line", d->line);
        return MQ_ECORRUPT;
    }
    meta_ledger_why(d->why, d->why_len, "line %d: unknown key '%s'", d->line,
                    meta_ledger_excerpt(ex, sizeof(ex), s, kn));
    return MQ_ECORRUPT;
}

/* The framing: a NUL-free record ending with a checksum line that matches.
 * *body_len gets the length of what the checksum covers. */
static mq_err_t meta_ledger_dec_frame(const char *data, size_t len, size_t *body_len, char *why,
                                      size_t why_len)
{
    if (len == 0) {
        meta_ledger_why(why, why_len, "empty record");
        return MQ_ECORRUPT;
    }
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        meta_ledger_why(why, why_len, "NUL byte at offset %zu", (size_t)(nul - data));
        return MQ_ECORRUPT;
    }
    if (data[len - 1] != '\n') {
        meta_ledger_why(why, why_len, "record does not end with a newline (truncated?)");
        return MQ_ECORRUPT;
    }
    size_t ls = len - 1;
    while (ls > 0 && data[ls - 1] != '\n') {
        ls--;
    }
    const char *line = data + ls;
    size_t n = len - ls;
    size_t kl = sizeof(META_LEDGER_CRC_KEY) - 1;
    if (n < kl || memcmp(line, META_LEDGER_CRC_KEY, kl) != 0) {
        meta_ledger_why(why, why_len, "missing checksum line at the end (truncated?)");
        return MQ_ECORRUPT;
    }
    bool ok = n == META_LEDGER_CRC_LINE;
    uint32_t want = 0;
    for (size_t i = kl; ok && i < kl + 8; i++) {
        char c = line[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        want = (want << 4) | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (!ok) {
        meta_ledger_why(why, why_len, "bad checksum line (want 8 lowercase hex digits)");
        return MQ_ECORRUPT;
    }
    uint32_t got = mq_crc32c(0, data, ls);
    if (got != want) {
        meta_ledger_why(why, why_len, "checksum mismatch: record says %08x, content gives %08x",
                        want, got);
        return MQ_ECORRUPT;
    }
    *body_len = ls;
    return MQ_OK;
}

/* Counts the segment and custom lines before anything is allocated, so that
 * a record over the bounds costs nothing, and sizes both arrays once. */
static mq_err_t meta_ledger_dec_presize(meta_ledger_dec_t *d, const char *data, size_t body)
{
    static const char seg_prefix[] = "ensemble.";
    static const char custom_prefix[] = "custom.";
    size_t nseg = 0;
    size_t ncustom = 0;
    size_t at = 0;
    while (at < body) {
        const char *nl = memchr(data + at, '\n', body - at);
        size_t n = (size_t)(nl - (data + at));
        if (n >= sizeof(seg_prefix) - 1 &&
            memcmp(data + at, seg_prefix, sizeof(seg_prefix) - 1) == 0) {
            nseg++;
        } else if (n >= sizeof(custom_prefix) - 1 &&
                   memcmp(data + at, custom_prefix, sizeof(custom_prefix) - 1) == 0) {
            ncustom++;
        }
        at += n + 1;
    }
    if (nseg > META_LEDGER_MAX_SEGMENTS) {
        meta_ledger_why(d->why, d->why_len, "%zu segments: more than %d segments", nseg,
                        META_LEDGER_MAX_SEGMENTS);
        return MQ_ECORRUPT;
    }
    if (ncustom > META_LEDGER_MAX_CUSTOM) {
        meta_ledger_why(d->why, d->why_len, "%zu custom keys: more than %d custom keys", ncustom,
                        META_LEDGER_MAX_CUSTOM);
        return MQ_ECORRUPT;
    }
    if (nseg > 0) {
        d->md->segments = mq_try_malloc(nseg * sizeof(*d->md->segments));
        if (!d->md->segments) {
            return MQ_ENOMEM;
        }
        d->seg_cap = nseg;
    }
    if (ncustom > 0) {
        d->md->custom = mq_try_malloc(ncustom * sizeof(*d->md->custom));
        if (!d->md->custom) {
            return MQ_ENOMEM;
        }
        d->custom_cap = ncustom;
    }
    return MQ_OK;
}

mq_err_t meta_ledger_decode(const char *data, size_t len, meta_ledger_t *out, char *why,
                            size_t why_len)
{
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->version = -1;
    meta_ledger_why(why, why_len, "%s", "");
    if (!data && len > 0) {
        return MQ_EINVAL;
    }
    size_t body = 0;
    mq_err_t err = meta_ledger_dec_frame(data, len, &body, why, why_len);
    if (err != MQ_OK) {
        return err;
    }

    meta_ledger_t md;
    memset(&md, 0, sizeof(md));
    meta_ledger_dec_t d = {&md, 0, 0, 0, 0, why, why_len};
    err = meta_ledger_dec_presize(&d, data, body);
    size_t at = 0;
    while (at < body && err == MQ_OK) {
        /* body ends right after a '\n' (the checksum line starts there). */
        const char *nl = memchr(data + at, '\n', body - at);
        size_t n = (size_t)(nl - (data + at));
        d.line++;
        if (d.line == 1) {
            if (n != strlen(META_LEDGER_HEADER) || memcmp(data, META_LEDGER_HEADER, n) != 0) {
                meta_ledger_why(why, why_len, "not a ledger metadata record (bad first line)");
                err = MQ_ECORRUPT;
            }
        } else {
            err = meta_ledger_dec_line(&d, data + at, n);
        }
        at += n + 1;
    }
    if (err == MQ_OK && d.line == 0) {
        meta_ledger_why(why, why_len, "not a ledger metadata record (no header line)");
        err = MQ_ECORRUPT;
    }
    for (int k = 0; k < META_LEDGER_K_COUNT && err == MQ_OK; k++) {
        if (!(d.seen & (1u << k))) {
            meta_ledger_why(why, why_len, "missing key %s", meta_ledger_keys[k]);
            err = MQ_ECORRUPT;
        }
    }
    if (err == MQ_OK && md.nsegments == 0) {
        meta_ledger_why(why, why_len, "no ensemble (ensemble.0 missing)");
        err = MQ_ECORRUPT;
    }
    if (err == MQ_OK) {
        err = meta_ledger_check(&md, true, why, why_len);
        if (err == MQ_EINVAL) {
            err = MQ_ECORRUPT;
        }
    }
    if (err != MQ_OK) {
        meta_ledger_fini(&md);
        return err;
    }
    md.version = -1;
    *out = md;
    return MQ_OK;
}
