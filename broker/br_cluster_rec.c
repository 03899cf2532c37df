/*
 * br_cluster_rec: record framing and the cluster's records (see the header).
 *
 * The framing is meta_ledger.c's: a record is written in one go with every
 * line of ours, then sealed with a checksum line; reading checks the seal
 * before looking at a single field. Decoders take each known key exactly
 * once, in any order after "version=1", and reject unknown keys: a record
 * written by a newer format bumps the version instead.
 */
#include "br_cluster_rec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_crc32c.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_REC_HEADER "# LedgerMQ "
#define BR_REC_VERSION 1
#define BR_REC_CRC_KEY "checksum="
/* "checksum=" + 8 hex digits + "\n" */
#define BR_REC_CRC_LINE (sizeof(BR_REC_CRC_KEY) - 1 + 8 + 1)
/* The longest number a record holds ("%.17g" of a double: 24 bytes). */
#define BR_REC_NUM_MAX 32

/* --- framing ------------------------------------------------------------- */

void br_rec_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static void br_rec_reserve(br_rec_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    b->p = mq_realloc(b->p, cap);
    b->cap = cap;
}

void br_rec_add(br_rec_buf_t *b, const char *s, size_t n)
{
    br_rec_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void br_rec_printf(br_rec_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    MQ_ASSERT(n >= 0);
    br_rec_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void br_rec_begin(br_rec_buf_t *b, const char *kind)
{
    memset(b, 0, sizeof(*b));
    br_rec_printf(b, BR_REC_HEADER "%s\nversion=%d\n", kind, BR_REC_VERSION);
}

char *br_rec_finish(br_rec_buf_t *b, size_t *len)
{
    uint32_t crc = mq_crc32c(0, b->p, b->len);
    br_rec_printf(b, BR_REC_CRC_KEY "%08x\n", crc);
    char *p = b->p;
    if (len) {
        *len = b->len;
    }
    memset(b, 0, sizeof(*b));
    return p;
}

mq_err_t br_rec_open(br_rec_reader_t *r, const char *data, size_t len, const char *kind, char *why,
                     size_t why_len)
{
    memset(r, 0, sizeof(*r));
    r->why = why;
    r->why_len = why_len;
    if (!data || len == 0) {
        br_rec_why(why, why_len, "empty record");
        return MQ_ECORRUPT;
    }
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        br_rec_why(why, why_len, "NUL byte at offset %zu", (size_t)(nul - data));
        return MQ_ECORRUPT;
    }
    if (data[len - 1] != '\n') {
        br_rec_why(why, why_len, "record does not end with a newline (truncated?)");
        return MQ_ECORRUPT;
    }
    size_t ls = len - 1;
    while (ls > 0 && data[ls - 1] != '\n') {
        ls--;
    }
    const char *line = data + ls;
    size_t n = len - ls;
    size_t kl = sizeof(BR_REC_CRC_KEY) - 1;
    if (n != BR_REC_CRC_LINE || memcmp(line, BR_REC_CRC_KEY, kl) != 0) {
        br_rec_why(why, why_len, "missing or bad checksum line at the end (truncated?)");
        return MQ_ECORRUPT;
    }
    uint32_t want = 0;
    for (size_t i = kl; i < kl + 8; i++) {
        char c = line[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            br_rec_why(why, why_len, "bad checksum line (want 8 lowercase hex digits)");
            return MQ_ECORRUPT;
        }
        want = (want << 4) | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    uint32_t got = mq_crc32c(0, data, ls);
    if (got != want) {
        br_rec_why(why, why_len, "checksum mismatch: record says %08x, content gives %08x", want,
                   got);
        return MQ_ECORRUPT;
    }
    r->data = data;
    r->body = ls;
    const char *s;
    size_t sn;
    char header[64];
    int hn = snprintf(header, sizeof(header), BR_REC_HEADER "%s", kind);
    if (!br_rec_next(r, &s, &sn) || hn < 0 || sn != (size_t)hn || memcmp(s, header, sn) != 0) {
        br_rec_why(why, why_len, "not a %s record (bad first line)", kind);
        return MQ_ECORRUPT;
    }
    char version[32];
    int vn = snprintf(version, sizeof(version), "version=%d", BR_REC_VERSION);
    if (!br_rec_next(r, &s, &sn) || vn < 0 || sn != (size_t)vn || memcmp(s, version, sn) != 0) {
        br_rec_why(why, why_len, "line 2: unsupported or missing version (want version=%d)",
                   BR_REC_VERSION);
        return MQ_ECORRUPT;
    }
    return MQ_OK;
}

bool br_rec_next(br_rec_reader_t *r, const char **s, size_t *n)
{
    if (r->at >= r->body) {
        return false;
    }
    /* The body ends right after a newline (the checksum line starts there). */
    const char *nl = memchr(r->data + r->at, '\n', r->body - r->at);
    MQ_ASSERT(nl != NULL);
    *s = r->data + r->at;
    *n = (size_t)(nl - *s);
    r->at += *n + 1;
    r->line++;
    return true;
}

bool br_rec_next_key(br_rec_reader_t *r, const char *const *keys, size_t nkeys, size_t *k,
                     const char **v, size_t *vn)
{
    MQ_ASSERT(nkeys <= 32);
    const char *s;
    size_t n;
    if (r->err != MQ_OK || !br_rec_next(r, &s, &n)) {
        return false;
    }
    size_t kn;
    size_t i = nkeys;
    if (br_rec_kv(s, n, &kn, v, vn)) {
        for (i = 0; i < nkeys; i++) {
            if (br_rec_key_is(s, kn, keys[i])) {
                break;
            }
        }
    }
    if (i == nkeys || (r->seen & (1u << i))) {
        br_rec_why(r->why, r->why_len, "line %d: unknown or repeated key", r->line);
        r->err = MQ_ECORRUPT;
        return false;
    }
    r->seen |= 1u << i;
    *k = i;
    return true;
}

mq_err_t br_rec_keys_done(br_rec_reader_t *r, const char *const *keys, size_t nkeys)
{
    if (r->err != MQ_OK) {
        return r->err;
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (!(r->seen & (1u << i))) {
            br_rec_why(r->why, r->why_len, "missing key %s", keys[i]);
            return MQ_ECORRUPT;
        }
    }
    return MQ_OK;
}

bool br_rec_kv(const char *s, size_t n, size_t *kn, const char **v, size_t *vn)
{
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        return false;
    }
    *kn = (size_t)(eq - s);
    *v = eq + 1;
    *vn = n - *kn - 1;
    return true;
}

bool br_rec_key_is(const char *k, size_t kn, const char *key)
{
    return strlen(key) == kn && memcmp(k, key, kn) == 0;
}

bool br_rec_u64(const char *s, size_t n, uint64_t *out)
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

bool br_rec_double(const char *s, size_t n, double *out)
{
    if (n == 0 || n >= BR_REC_NUM_MAX) {
        return false;
    }
    char buf[BR_REC_NUM_MAX];
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == '+' || c == '-')) {
            return false;
        }
        buf[i] = c;
    }
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + n || !isfinite(v) || v < 0 || buf[0] == '-') {
        return false;
    }
    *out = v;
    return true;
}

bool br_rec_str(const char *s, size_t n, char *dst, size_t cap, bool empty_ok)
{
    if ((n == 0 && !empty_ok) || n >= cap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* --- names and paths ----------------------------------------------------- */

bool br_rec_path(char *out, size_t cap, const char *root, const char *fmt, ...)
{
    size_t rn = root ? strlen(root) : 0;
    while (rn > 0 && root[rn - 1] == '/') {
        rn--;
    }
    int n = snprintf(out, cap, "%.*s", (int)rn, rn ? root : "");
    if (n < 0 || (size_t)n >= cap) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return m >= 0 && (size_t)m < cap - (size_t)n;
}

static bool br_rec_visible(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == 0 || n == max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

bool br_rec_id_valid(const char *id)
{
    return id && br_rec_visible(id, BR_ID_MAX) && !strchr(id, '/');
}

bool br_rec_endpoint_valid(const char *ep)
{
    return ep && br_rec_visible(ep, BR_ENDPOINT_MAX);
}

int br_qid_cmp(const void *a, const void *b)
{
    const br_qid_t *x = a;
    const br_qid_t *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c != 0) {
        return c;
    }
    return (x->queue > y->queue) - (x->queue < y->queue);
}

/* --- broker -------------------------------------------------------------- */

#define BR_REC_BROKER "broker"

enum {
    BR_REC_B_ID,
    BR_REC_B_CLUSTER,
    BR_REC_B_ENDPOINT,
    BR_REC_B_MSGS_IN,
    BR_REC_B_BYTES_IN,
    BR_REC_B_MSGS_OUT,
    BR_REC_B_BYTES_OUT,
    BR_REC_B_QUEUES,
    BR_REC_B_CPU,
    BR_REC_B_COUNT
};

static const char *const br_rec_broker_keys[BR_REC_B_COUNT] = {
    "id", "cluster", "endpoint", "msgsIn", "bytesIn", "msgsOut", "bytesOut", "queues", "cpu",
};

static bool br_rec_load_ok(double v)
{
    return isfinite(v) && v >= 0;
}

mq_err_t br_rec_broker_encode(const br_broker_info_t *bi, char **out, size_t *len)
{
    const br_load_t *l = &bi->load;
    size_t cn = strnlen(bi->cluster, BR_ID_MAX);
    char tmp[BR_ID_MAX];
    if (!br_rec_id_valid(bi->id) || !br_rec_endpoint_valid(bi->endpoint) || cn == BR_ID_MAX ||
        !br_rec_str(bi->cluster, cn, tmp, sizeof(tmp), true) || !br_rec_load_ok(l->msgs_in) ||
        !br_rec_load_ok(l->bytes_in) || !br_rec_load_ok(l->msgs_out) ||
        !br_rec_load_ok(l->bytes_out) || !br_rec_load_ok(l->cpu) || l->queues < 0) {
        return MQ_EINVAL;
    }
    br_rec_buf_t b;
    br_rec_begin(&b, BR_REC_BROKER);
    br_rec_printf(&b, "id=%s\ncluster=%s\nendpoint=%s\n", bi->id, bi->cluster, bi->endpoint);
    br_rec_printf(&b, "msgsIn=%.17g\nbytesIn=%.17g\nmsgsOut=%.17g\nbytesOut=%.17g\n", l->msgs_in,
                  l->bytes_in, l->msgs_out, l->bytes_out);
    br_rec_printf(&b, "queues=%d\ncpu=%.17g\n", l->queues, l->cpu);
    *out = br_rec_finish(&b, len);
    return MQ_OK;
}

mq_err_t br_rec_broker_decode(const char *data, size_t len, br_broker_info_t *out, char *why,
                              size_t why_len)
{
    memset(out, 0, sizeof(*out));
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_REC_BROKER, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    br_broker_info_t bi;
    memset(&bi, 0, sizeof(bi));
    size_t k;
    const char *v;
    size_t vn;
    while (br_rec_next_key(&r, br_rec_broker_keys, BR_REC_B_COUNT, &k, &v, &vn)) {
        bool ok;
        uint64_t u = 0;
        switch (k) {
        case BR_REC_B_ID:
            ok = br_rec_str(v, vn, bi.id, sizeof(bi.id), false) && br_rec_id_valid(bi.id);
            break;
        case BR_REC_B_CLUSTER:
            ok = br_rec_str(v, vn, bi.cluster, sizeof(bi.cluster), true);
            break;
        case BR_REC_B_ENDPOINT:
            ok = br_rec_str(v, vn, bi.endpoint, sizeof(bi.endpoint), false);
            break;
        case BR_REC_B_MSGS_IN:
            ok = br_rec_double(v, vn, &bi.load.msgs_in);
            break;
        case BR_REC_B_BYTES_IN:
            ok = br_rec_double(v, vn, &bi.load.bytes_in);
            break;
        case BR_REC_B_MSGS_OUT:
            ok = br_rec_double(v, vn, &bi.load.msgs_out);
            break;
        case BR_REC_B_BYTES_OUT:
            ok = br_rec_double(v, vn, &bi.load.bytes_out);
            break;
        case BR_REC_B_QUEUES:
            ok = br_rec_u64(v, vn, &u) && u <= INT32_MAX;
            bi.load.queues = (int)u;
            break;
        default:
            ok = br_rec_double(v, vn, &bi.load.cpu);
            break;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: bad value for %s", r.line, br_rec_broker_keys[k]);
            return MQ_ECORRUPT;
        }
    }
    err = br_rec_keys_done(&r, br_rec_broker_keys, BR_REC_B_COUNT);
    if (err != MQ_OK) {
        return err;
    }
    *out = bi;
    return MQ_OK;
}

/* --- owner --------------------------------------------------------------- */

#define BR_REC_OWNER "owner"

mq_err_t br_rec_owner_encode(const char *id, const char *endpoint, char **out, size_t *len)
{
    if (!br_rec_id_valid(id) || !br_rec_endpoint_valid(endpoint)) {
        return MQ_EINVAL;
    }
    br_rec_buf_t b;
    br_rec_begin(&b, BR_REC_OWNER);
    br_rec_printf(&b, "id=%s\nendpoint=%s\n", id, endpoint);
    *out = br_rec_finish(&b, len);
    return MQ_OK;
}

mq_err_t br_rec_owner_decode(const char *data, size_t len, char id[BR_ID_MAX],
                             char endpoint[BR_ENDPOINT_MAX], char *why, size_t why_len)
{
    id[0] = '\0';
    endpoint[0] = '\0';
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_REC_OWNER, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    char i[BR_ID_MAX] = "";
    char e[BR_ENDPOINT_MAX] = "";
    const char *s;
    size_t n;
    while (br_rec_next(&r, &s, &n)) {
        size_t kn;
        const char *v;
        size_t vn;
        bool ok = br_rec_kv(s, n, &kn, &v, &vn);
        if (ok && br_rec_key_is(s, kn, "id") && !i[0]) {
            ok = br_rec_str(v, vn, i, sizeof(i), false) && br_rec_id_valid(i);
        } else if (ok && br_rec_key_is(s, kn, "endpoint") && !e[0]) {
            ok = br_rec_str(v, vn, e, sizeof(e), false);
        } else {
            ok = false;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: unknown or repeated key, or bad value", r.line);
            return MQ_ECORRUPT;
        }
    }
    if (!i[0] || !e[0]) {
        br_rec_why(why, why_len, "missing id or endpoint");
        return MQ_ECORRUPT;
    }
    memcpy(id, i, sizeof(i));
    memcpy(endpoint, e, sizeof(e));
    return MQ_OK;
}

/* --- assignment ---------------------------------------------------------- */

#define BR_REC_ASSIGN "assignment"

mq_err_t br_rec_assign_encode(const char *id, const br_qid_t *qs, size_t n, char **out, size_t *len)
{
    if (!br_rec_id_valid(id) || (n > 0 && !qs) || n > BR_REC_ASSIGN_MAX) {
        return MQ_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!br_topic_name_valid(qs[i].topic) || qs[i].queue < 0 ||
            qs[i].queue >= BR_TOPIC_MAX_QUEUES || (i > 0 && br_qid_cmp(&qs[i - 1], &qs[i]) >= 0)) {
            return MQ_EINVAL;
        }
    }
    br_rec_buf_t b;
    br_rec_begin(&b, BR_REC_ASSIGN);
    br_rec_printf(&b, "broker=%s\n", id);
    for (size_t i = 0; i < n; i++) {
        br_rec_printf(&b, "%s %d\n", qs[i].topic, qs[i].queue);
    }
    *out = br_rec_finish(&b, len);
    return MQ_OK;
}

mq_err_t br_rec_assign_decode(const char *data, size_t len, char id[BR_ID_MAX], br_qid_t **qs,
                              size_t *n, char *why, size_t why_len)
{
    id[0] = '\0';
    *qs = NULL;
    *n = 0;
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_REC_ASSIGN, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    const char *s;
    size_t sn;
    size_t kn;
    const char *v;
    size_t vn;
    char broker[BR_ID_MAX];
    if (!br_rec_next(&r, &s, &sn) || !br_rec_kv(s, sn, &kn, &v, &vn) ||
        !br_rec_key_is(s, kn, "broker") || !br_rec_str(v, vn, broker, sizeof(broker), false) ||
        !br_rec_id_valid(broker)) {
        br_rec_why(why, why_len, "line 3: expected broker=<id>");
        return MQ_ECORRUPT;
    }
    /* One queue per remaining line: count them to size the array once. */
    size_t lines = 0;
    for (size_t at = r.at; at < r.body; at++) {
        lines += r.data[at] == '\n';
    }
    if (lines > BR_REC_ASSIGN_MAX) {
        br_rec_why(why, why_len, "%zu queues (at most %d)", lines, BR_REC_ASSIGN_MAX);
        return MQ_ECORRUPT;
    }
    br_qid_t *list = NULL;
    if (lines > 0) {
        list = mq_try_malloc(lines * sizeof(*list));
        if (!list) {
            return MQ_ENOMEM;
        }
    }
    size_t count = 0;
    while (br_rec_next(&r, &s, &sn)) {
        const char *sp = memchr(s, ' ', sn);
        br_qid_t *q = &list[count];
        uint64_t u = 0;
        bool ok = sp && br_rec_str(s, (size_t)(sp - s), q->topic, sizeof(q->topic), false) &&
                  br_topic_name_valid(q->topic) &&
                  br_rec_u64(sp + 1, sn - (size_t)(sp - s) - 1, &u) && u < BR_TOPIC_MAX_QUEUES;
        q->queue = (int)u;
        if (ok && count > 0 && br_qid_cmp(&list[count - 1], q) >= 0) {
            br_rec_why(why, why_len, "line %d: queues not sorted or repeated", r.line);
            free(list);
            return MQ_ECORRUPT;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: expected '<topic> <queue>'", r.line);
            free(list);
            return MQ_ECORRUPT;
        }
        count++;
    }
    memcpy(id, broker, sizeof(broker));
    *qs = list;
    *n = count;
    return MQ_OK;
}
