/*
 * br_deliver: the consume side's view of stored apache.rocketmq.v2.Message
 * bytes (see br_deliver.h): a scan for the fields the broker looks at, the
 * delivered message built by appending a protobuf merge, the body's MD5 and
 * TAG filter expressions.
 *
 * The scan is a small protobuf wire-format walker. It looks at the top
 * level (topic 1, system_properties 3, body 4) and inside topic (Resource
 * name 2) and system_properties (tag 1, message_id 3, message_group 17);
 * every other field is skipped by its wire type. A field that occurs more
 * than once is taken as protobuf merges it: the last occurrence of a scalar
 * or string wins, and sub-messages merge field by field. Nothing is read
 * past len; any malformed byte (a varint over 10 bytes, a length past the
 * end, field number 0, a group or reserved wire type, a known field with
 * the wrong wire type) makes the scan MQ_ECORRUPT.
 *
 * The overrides are written with a tiny encoder (varints, tags, strings and
 * sub-messages), each sub-message sized by a counting pass of the same
 * writer first. Fields without presence (queue_id) and the optional scalars
 * the server always sets are always written, even when 0: a merge only
 * replaces what it carries. The sub-fields of Timestamp, Duration and
 * Digest are always written too, so that no sub-field of an earlier
 * occurrence survives. store_ms 0 and invisible_ms 0 mean "not set".
 *
 * Pure functions; any thread.
 */
#include "br_deliver.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

/* Field numbers (proto/rmq_definition.proto). */
#define BR_F_MESSAGE_TOPIC 1
#define BR_F_MESSAGE_SYSPROPS 3
#define BR_F_MESSAGE_BODY 4
#define BR_F_RESOURCE_NAME 2
#define BR_F_SP_TAG 1
#define BR_F_SP_MESSAGE_ID 3
#define BR_F_SP_BODY_DIGEST 4
#define BR_F_SP_STORE_TIMESTAMP 9
#define BR_F_SP_STORE_HOST 10
#define BR_F_SP_RECEIPT_HANDLE 12
#define BR_F_SP_QUEUE_ID 13
#define BR_F_SP_QUEUE_OFFSET 14
#define BR_F_SP_INVISIBLE_DURATION 15
#define BR_F_SP_DELIVERY_ATTEMPT 16
#define BR_F_SP_MESSAGE_GROUP 17
#define BR_F_SP_DEAD_LETTER_QUEUE 20
#define BR_F_DIGEST_TYPE 1
#define BR_F_DIGEST_CHECKSUM 2
#define BR_F_TIME_SECONDS 1 /* Timestamp and Duration alike */
#define BR_F_TIME_NANOS 2
#define BR_F_DLQ_TOPIC 1
#define BR_F_DLQ_MESSAGE_ID 2
/* apache.rocketmq.v2.DigestType.MD5 */
#define BR_DIGEST_MD5 2

/* Wire types. */
#define BR_WT_VARINT 0
#define BR_WT_I64 1
#define BR_WT_LEN 2
#define BR_WT_I32 5

/* Protobuf field numbers are at most 2^29 - 1. */
#define BR_FIELD_MAX 536870911u

/* --- the scan ----------------------------------------------------------------- */

typedef struct br_pbr {
    const uint8_t *p;
    size_t left;
} br_pbr_t;

static bool br_pbr_varint(br_pbr_t *r, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (r->left == 0) {
            return false;
        }
        uint8_t b = *r->p++;
        r->left--;
        /* The tenth byte holds bit 63 only. */
        if (i == 9 && b > 1) {
            return false;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* One field: its number, wire type, and for BR_WT_LEN its bytes; other
 * wire types are skipped. False when malformed. */
static bool br_pbr_field(br_pbr_t *r, uint32_t *num, unsigned *wt, const uint8_t **data,
                         size_t *len)
{
    uint64_t key;
    if (!br_pbr_varint(r, &key)) {
        return false;
    }
    uint64_t n = key >> 3;
    if (n == 0 || n > BR_FIELD_MAX) {
        return false;
    }
    *num = (uint32_t)n;
    *wt = (unsigned)(key & 7);
    *data = NULL;
    *len = 0;
    uint64_t v;
    switch (*wt) {
    case BR_WT_VARINT:
        return br_pbr_varint(r, &v);
    case BR_WT_I64:
    case BR_WT_I32: {
        size_t w = *wt == BR_WT_I64 ? 8 : 4;
        if (r->left < w) {
            return false;
        }
        r->p += w;
        r->left -= w;
        return true;
    }
    case BR_WT_LEN:
        if (!br_pbr_varint(r, &v) || v > r->left) {
            return false;
        }
        *data = r->p;
        *len = (size_t)v;
        r->p += v;
        r->left -= (size_t)v;
        return true;
    default:
        /* Groups (3, 4) never occur in what clients send; 6 and 7 do not
         * exist. */
        return false;
    }
}

/* Sets a string view if the field is length-delimited. */
static bool br_scan_str(unsigned wt, const uint8_t *d, size_t n, br_str_t *out)
{
    if (wt != BR_WT_LEN) {
        return false;
    }
    out->p = (const char *)d;
    out->len = n;
    return true;
}

static bool br_scan_resource(const uint8_t *p, size_t len, br_msg_view_t *v)
{
    br_pbr_t r = {p, len};
    while (r.left > 0) {
        uint32_t num;
        unsigned wt;
        const uint8_t *d;
        size_t n;
        if (!br_pbr_field(&r, &num, &wt, &d, &n)) {
            return false;
        }
        if (num == BR_F_RESOURCE_NAME && !br_scan_str(wt, d, n, &v->topic)) {
            return false;
        }
    }
    return true;
}

static bool br_scan_sysprops(const uint8_t *p, size_t len, br_msg_view_t *v)
{
    br_pbr_t r = {p, len};
    while (r.left > 0) {
        uint32_t num;
        unsigned wt;
        const uint8_t *d;
        size_t n;
        if (!br_pbr_field(&r, &num, &wt, &d, &n)) {
            return false;
        }
        bool ok = true;
        switch (num) {
        case BR_F_SP_TAG:
            ok = br_scan_str(wt, d, n, &v->tag);
            break;
        case BR_F_SP_MESSAGE_ID:
            ok = br_scan_str(wt, d, n, &v->message_id);
            break;
        case BR_F_SP_MESSAGE_GROUP:
            ok = br_scan_str(wt, d, n, &v->group);
            break;
        default:
            break;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

mq_err_t br_deliver_scan(const uint8_t *msg, size_t len, br_msg_view_t *out)
{
    if (!out || (!msg && len)) {
        return MQ_EINVAL;
    }
    br_msg_view_t v;
    memset(&v, 0, sizeof(v));
    br_pbr_t r = {msg, len};
    while (r.left > 0) {
        uint32_t num;
        unsigned wt;
        const uint8_t *d;
        size_t n;
        if (!br_pbr_field(&r, &num, &wt, &d, &n)) {
            return MQ_ECORRUPT;
        }
        bool ok = true;
        switch (num) {
        case BR_F_MESSAGE_TOPIC:
            ok = wt == BR_WT_LEN && br_scan_resource(d, n, &v);
            break;
        case BR_F_MESSAGE_SYSPROPS:
            ok = wt == BR_WT_LEN && br_scan_sysprops(d, n, &v);
            break;
        case BR_F_MESSAGE_BODY:
            ok = wt == BR_WT_LEN;
            v.body = d;
            v.body_len = n;
            v.has_body = true;
            break;
        default:
            break;
        }
        if (!ok) {
            return MQ_ECORRUPT;
        }
    }
    *out = v;
    return MQ_OK;
}

/* --- MD5 ------------------------------------------------------------------------ */

void br_deliver_md5_hex(const uint8_t *data, size_t len, char out[33])
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* EVP_Digest only fails when out of memory or with a broken OpenSSL
     * installation: neither is an input the caller could fix. */
    int ok = EVP_Digest(len ? data : (const uint8_t *)"", len, md, &mdlen, EVP_md5(), NULL);
    MQ_ASSERT(ok == 1 && mdlen == 16);
    for (unsigned i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

/* --- the overrides --------------------------------------------------------------- */

/* A writer; with p NULL it only counts (the sizing pass). */
typedef struct br_pbw {
    uint8_t *p;
    size_t len;
} br_pbw_t;

typedef void (*br_pbw_sub_fn)(br_pbw_t *w, const void *arg);

static void br_pbw_raw(br_pbw_t *w, const void *d, size_t n)
{
    if (w->p && n) {
        memcpy(w->p + w->len, d, n);
    }
    w->len += n;
}

static void br_pbw_varint(br_pbw_t *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) {
            b[n] |= 0x80;
        }
        n++;
    } while (v);
    br_pbw_raw(w, b, n);
}

static void br_pbw_tag(br_pbw_t *w, uint32_t num, unsigned wt)
{
    br_pbw_varint(w, ((uint64_t)num << 3) | wt);
}

/* An int32 or int64 field: negative values are sign-extended to 10 bytes,
 * as protobuf encodes them. */
static void br_pbw_int(br_pbw_t *w, uint32_t num, int64_t v)
{
    br_pbw_tag(w, num, BR_WT_VARINT);
    br_pbw_varint(w, (uint64_t)v);
}

static void br_pbw_str(br_pbw_t *w, uint32_t num, const char *s)
{
    size_t n = strlen(s);
    br_pbw_tag(w, num, BR_WT_LEN);
    br_pbw_varint(w, n);
    br_pbw_raw(w, s, n);
}

static void br_pbw_sub(br_pbw_t *w, uint32_t num, br_pbw_sub_fn fn, const void *arg)
{
    br_pbw_t count = {NULL, 0};
    fn(&count, arg);
    br_pbw_tag(w, num, BR_WT_LEN);
    br_pbw_varint(w, count.len);
    fn(w, arg);
}

/* Timestamp and Duration from milliseconds. */
static void br_pbw_time(br_pbw_t *w, const void *arg)
{
    uint64_t ms = *(const uint64_t *)arg;
    br_pbw_int(w, BR_F_TIME_SECONDS, (int64_t)(ms / 1000));
    br_pbw_int(w, BR_F_TIME_NANOS, (int64_t)(ms % 1000 * 1000000));
}

static void br_pbw_digest(br_pbw_t *w, const void *arg)
{
    br_pbw_int(w, BR_F_DIGEST_TYPE, BR_DIGEST_MD5);
    br_pbw_str(w, BR_F_DIGEST_CHECKSUM, arg);
}

static void br_pbw_dlq(br_pbw_t *w, const void *arg)
{
    const br_deliver_fields_t *f = arg;
    br_pbw_str(w, BR_F_DLQ_TOPIC, f->dlq_topic);
    if (f->dlq_message_id) {
        br_pbw_str(w, BR_F_DLQ_MESSAGE_ID, f->dlq_message_id);
    }
}

static void br_pbw_resource(br_pbw_t *w, const void *arg)
{
    br_pbw_str(w, BR_F_RESOURCE_NAME, arg);
}

/* SystemProperties, in field order. */
static void br_pbw_sysprops(br_pbw_t *w, const void *arg)
{
    const br_deliver_fields_t *f = arg;
    if (f->body_md5_hex) {
        br_pbw_sub(w, BR_F_SP_BODY_DIGEST, br_pbw_digest, f->body_md5_hex);
    }
    if (f->store_ms) {
        br_pbw_sub(w, BR_F_SP_STORE_TIMESTAMP, br_pbw_time, &f->store_ms);
    }
    if (f->store_host) {
        br_pbw_str(w, BR_F_SP_STORE_HOST, f->store_host);
    }
    if (f->receipt_handle) {
        br_pbw_str(w, BR_F_SP_RECEIPT_HANDLE, f->receipt_handle);
    }
    br_pbw_int(w, BR_F_SP_QUEUE_ID, f->queue_id);
    br_pbw_int(w, BR_F_SP_QUEUE_OFFSET, f->queue_offset);
    if (f->invisible_ms) {
        br_pbw_sub(w, BR_F_SP_INVISIBLE_DURATION, br_pbw_time, &f->invisible_ms);
    }
    br_pbw_int(w, BR_F_SP_DELIVERY_ATTEMPT, f->delivery_attempt);
    if (f->dlq_topic) {
        br_pbw_sub(w, BR_F_SP_DEAD_LETTER_QUEUE, br_pbw_dlq, f);
    }
}

/* A Message holding only the overrides. */
static void br_pbw_overrides(br_pbw_t *w, const br_deliver_fields_t *f)
{
    if (f->topic) {
        br_pbw_sub(w, BR_F_MESSAGE_TOPIC, br_pbw_resource, f->topic);
    }
    br_pbw_sub(w, BR_F_MESSAGE_SYSPROPS, br_pbw_sysprops, f);
}

/* msg (len bytes, may be none) followed by the overrides, malloc'ed. The
 * size comes from stored data, hence the checked allocation. */
static uint8_t *br_deliver_concat(const uint8_t *msg, size_t len, const br_deliver_fields_t *f,
                                  size_t *out_len)
{
    if (!f || !out_len || (!msg && len)) {
        return NULL;
    }
    br_pbw_t w = {NULL, 0};
    br_pbw_overrides(&w, f);
    size_t extra = w.len;
    if (extra > SIZE_MAX - len) {
        return NULL;
    }
    uint8_t *buf = mq_try_malloc(len + extra ? len + extra : 1);
    if (!buf) {
        return NULL;
    }
    if (len) {
        memcpy(buf, msg, len);
    }
    w.p = buf + len;
    w.len = 0;
    br_pbw_overrides(&w, f);
    MQ_ASSERT(w.len == extra);
    *out_len = len + extra;
    return buf;
}

uint8_t *br_deliver_build(const uint8_t *msg, size_t len, const br_deliver_fields_t *f,
                          size_t *out_len)
{
    return br_deliver_concat(msg, len, f, out_len);
}

uint8_t *br_deliver_encode_overrides(const br_deliver_fields_t *f, size_t *out_len)
{
    return br_deliver_concat(NULL, 0, f, out_len);
}

/* --- TAG filters ------------------------------------------------------------------ */

#define BR_FILTER_MAX_LEN 1024
/* apache.rocketmq.v2.FilterType */
#define BR_FILTER_TYPE_UNSPECIFIED 0
#define BR_FILTER_TYPE_TAG 1

static bool br_filter_space(char c)
{
    return c == ' ';
}

mq_err_t br_filter_parse(int type, const char *expr, br_filter_t *out)
{
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (type != BR_FILTER_TYPE_UNSPECIFIED && type != BR_FILTER_TYPE_TAG) {
        return MQ_EINVAL;
    }
    if (!expr) {
        expr = "";
    }
    size_t n = strnlen(expr, BR_FILTER_MAX_LEN + 1);
    if (n > BR_FILTER_MAX_LEN) {
        return MQ_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)expr[i];
        if (c < 0x20 || c == 0x7f) {
            return MQ_EINVAL;
        }
    }
    /* The whole expression trimmed: empty or "*" subscribes to all. */
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi && br_filter_space(expr[lo])) {
        lo++;
    }
    while (hi > lo && br_filter_space(expr[hi - 1])) {
        hi--;
    }
    if (hi == lo || (hi - lo == 1 && expr[lo] == '*')) {
        out->all = true;
        return MQ_OK;
    }
    br_filter_t f;
    memset(&f, 0, sizeof(f));
    size_t at = lo;
    for (;;) {
        const char *sep = NULL;
        for (size_t i = at; i + 1 < hi; i++) {
            if (expr[i] == '|' && expr[i + 1] == '|') {
                sep = expr + i;
                break;
            }
        }
        size_t end = sep ? (size_t)(sep - expr) : hi;
        size_t s = at;
        size_t e = end;
        while (s < e && br_filter_space(expr[s])) {
            s++;
        }
        while (e > s && br_filter_space(expr[e - 1])) {
            e--;
        }
        if (s == e || f.ntags == BR_FILTER_MAX_TAGS) {
            br_filter_fini(&f);
            return MQ_EINVAL;
        }
        char *tag = mq_malloc(e - s + 1);
        memcpy(tag, expr + s, e - s);
        tag[e - s] = '\0';
        f.tags[f.ntags++] = tag;
        if (!sep) {
            break;
        }
        at = end + 2;
    }
    *out = f;
    return MQ_OK;
}

bool br_filter_match(const br_filter_t *f, br_str_t tag)
{
    if (f->all) {
        return true;
    }
    /* A message without a tag matches only "*" (as in RocketMQ, where its
     * tag code matches no subscribed tag). */
    if (!tag.p || tag.len == 0) {
        return false;
    }
    for (size_t i = 0; i < f->ntags; i++) {
        if (strlen(f->tags[i]) == tag.len && memcmp(f->tags[i], tag.p, tag.len) == 0) {
            return true;
        }
    }
    return false;
}

void br_filter_fini(br_filter_t *f)
{
    if (!f) {
        return;
    }
    for (size_t i = 0; i < f->ntags; i++) {
        free(f->tags[i]);
    }
    memset(f, 0, sizeof(*f));
}
