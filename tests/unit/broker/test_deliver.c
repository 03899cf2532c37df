/*
 * br_deliver: the scan of stored Message bytes (every field it reports,
 * repeated occurrences merged as protobuf does, every truncation and every
 * flipped bit answered without reading past the end), the delivered message
 * decoded by nanopb (every override set, every original field unchanged,
 * zeros and negatives really overriding, building twice), the overrides
 * alone for a dead-letter queue, MD5 against known vectors, and TAG filter
 * expressions.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_deliver.h"
#include "mq_test.h"
#include "mq_util.h"
#include "rmq_definition.pb.h"

/* --- building and decoding with nanopb -------------------------------------- */

typedef struct t_bytes {
    const uint8_t *p;
    size_t len;
} t_bytes_t;

static bool t_enc_body(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    const t_bytes_t *b = *arg;
    return pb_encode_tag_for_field(s, f) && pb_encode_string(s, b->p, b->len);
}

typedef struct t_body_out {
    uint8_t *p;
    size_t len;
    int calls;
} t_body_out_t;

static bool t_dec_body(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    (void)f;
    t_body_out_t *b = *arg;
    free(b->p);
    b->len = s->bytes_left;
    b->p = mq_malloc(b->len ? b->len : 1);
    b->calls++;
    return pb_read(s, b->p, b->len);
}

static const uint8_t t_body[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 'h', 'e', 'l', 'l', 'o', 0x0a, 0x08};

/* An original message the way a producer sends it (and then some: a
 * namespace, a queue id as Node sets it, two keys, two user properties). */
static uint8_t *t_original(size_t *len)
{
    apache_rocketmq_v2_Message m = apache_rocketmq_v2_Message_init_zero;
    m.has_topic = true;
    m.topic.resource_namespace = "ns1";
    m.topic.name = "orders";
    apache_rocketmq_v2_Message_UserPropertiesEntry props[2] = {{"k1", "v1"}, {"k2", ""}};
    m.user_properties_count = 2;
    m.user_properties = props;
    m.has_system_properties = true;
    apache_rocketmq_v2_SystemProperties *sp = &m.system_properties;
    sp->tag = "TagA";
    char *keys[2] = {"key-1", "key-2"};
    sp->keys_count = 2;
    sp->keys = keys;
    sp->message_id = "0156F7E71C361B21BC024CCDBE00000000";
    sp->body_encoding = apache_rocketmq_v2_Encoding_IDENTITY;
    sp->message_type = apache_rocketmq_v2_MessageType_FIFO;
    sp->has_born_timestamp = true;
    sp->born_timestamp.seconds = 1700000000;
    sp->born_timestamp.nanos = 123000000;
    sp->born_host = "client-host";
    sp->queue_id = 7;
    sp->message_group = "g-42";
    t_bytes_t body = {t_body, sizeof(t_body)};
    m.body.funcs.encode = t_enc_body;
    m.body.arg = &body;
    size_t cap;
    CU_ASSERT_FATAL(pb_get_encoded_size(&cap, apache_rocketmq_v2_Message_fields, &m));
    uint8_t *buf = mq_malloc(cap);
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    CU_ASSERT_FATAL(pb_encode(&os, apache_rocketmq_v2_Message_fields, &m));
    *len = os.bytes_written;
    return buf;
}

/* Decodes with nanopb (release m with pb_release, free body->p). */
static bool t_decode(const uint8_t *buf, size_t len, apache_rocketmq_v2_Message *m,
                     t_body_out_t *body)
{
    memset(m, 0, sizeof(*m));
    memset(body, 0, sizeof(*body));
    m->body.funcs.decode = t_dec_body;
    m->body.arg = body;
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    return pb_decode(&is, apache_rocketmq_v2_Message_fields, m);
}

static bool t_view_is(br_str_t s, const char *want)
{
    if (!want) {
        return s.p == NULL && s.len == 0;
    }
    return s.p && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

/* --- scan -------------------------------------------------------------------------- */

static void test_scan(void)
{
    size_t len;
    uint8_t *msg = t_original(&len);
    br_msg_view_t v;
    CU_ASSERT_EQUAL_FATAL(br_deliver_scan(msg, len, &v), MQ_OK);
    CU_ASSERT(t_view_is(v.topic, "orders"));
    CU_ASSERT(t_view_is(v.message_id, "0156F7E71C361B21BC024CCDBE00000000"));
    CU_ASSERT(t_view_is(v.tag, "TagA"));
    CU_ASSERT(t_view_is(v.group, "g-42"));
    CU_ASSERT_TRUE(v.has_body);
    CU_ASSERT_EQUAL(v.body_len, sizeof(t_body));
    CU_ASSERT(v.body && memcmp(v.body, t_body, sizeof(t_body)) == 0);
    CU_ASSERT(v.body >= msg && v.body + v.body_len <= msg + len);

    /* Nothing at all is a valid (empty) message. */
    CU_ASSERT_EQUAL(br_deliver_scan(NULL, 0, &v), MQ_OK);
    CU_ASSERT_FALSE(v.has_body);
    CU_ASSERT(t_view_is(v.topic, NULL));
    CU_ASSERT(t_view_is(v.tag, NULL));

    /* Merged as protobuf merges: a later occurrence replaces what it
     * carries and keeps the rest. Topic "b", sysprops {tag "x"} then
     * {message_group "y"}, body "1" then "22". */
    static const uint8_t twice[] = {
        0x0a, 0x03, 0x12, 0x01, 'a',                 /* topic {name "a"} */
        0x1a, 0x03, 0x0a, 0x01, 'x',                 /* sysprops {tag "x"} */
        0x22, 0x01, '1',                             /* body "1" */
        0x0a, 0x03, 0x12, 0x01, 'b',                 /* topic {name "b"} */
        0x1a, 0x04, 0x8a, 0x01, 0x01, 'y',           /* sysprops {group "y"} */
        0x22, 0x02, '2',  '2',                       /* body "22" */
        0x2d, 1,    2,    3,    4,                   /* unknown fixed32 */
        0x31, 1,    2,    3,    4,    5,    6, 7, 8, /* unknown fixed64 */
        0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01,          /* unknown varint, field 2^29-1 */
    };
    CU_ASSERT_EQUAL_FATAL(br_deliver_scan(twice, sizeof(twice), &v), MQ_OK);
    CU_ASSERT(t_view_is(v.topic, "b"));
    CU_ASSERT(t_view_is(v.tag, "x"));
    CU_ASSERT(t_view_is(v.group, "y"));
    CU_ASSERT(t_view_is(v.message_id, NULL));
    CU_ASSERT_EQUAL(v.body_len, 2);
    CU_ASSERT(v.body == twice + 26);
    free(msg);
}

/* The top-level field boundaries of buf, found by nanopb. */
static size_t t_boundaries(const uint8_t *buf, size_t len, size_t *at, size_t cap)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    size_t n = 0;
    at[n++] = 0;
    while (is.bytes_left > 0) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        CU_ASSERT_FATAL(pb_decode_tag(&is, &wt, &tag, &eof));
        CU_ASSERT_FATAL(pb_skip_field(&is, wt));
        CU_ASSERT_FATAL(n < cap);
        at[n++] = len - is.bytes_left;
    }
    return n;
}

static void test_scan_truncated(void)
{
    size_t len;
    uint8_t *msg = t_original(&len);
    size_t at[16];
    size_t nat = t_boundaries(msg, len, at, MQ_ARRAY_LEN(at));
    CU_ASSERT(nat >= 5);
    for (size_t n = 0; n < len; n++) {
        /* An exact-sized copy, so that a sanitizer sees any read past it. */
        uint8_t *cut = mq_malloc(n ? n : 1);
        memcpy(cut, msg, n);
        bool boundary = false;
        for (size_t i = 0; i < nat; i++) {
            boundary |= at[i] == n;
        }
        br_msg_view_t v;
        mq_err_t err = br_deliver_scan(cut, n, &v);
        if (err != (boundary ? MQ_OK : MQ_ECORRUPT)) {
            fprintf(stderr, "\n  truncated to %zu of %zu: err=%d\n", n, len, (int)err);
        }
        CU_ASSERT_EQUAL(err, boundary ? MQ_OK : MQ_ECORRUPT);
        free(cut);
    }
    free(msg);
}

static void test_scan_garbled(void)
{
    size_t len;
    uint8_t *msg = t_original(&len);
    uint8_t *bad = mq_malloc(len);
    size_t ok = 0;
    size_t corrupt = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, msg, len);
            bad[i] ^= (uint8_t)(1u << bit);
            br_msg_view_t v;
            mq_err_t err = br_deliver_scan(bad, len, &v);
            CU_ASSERT(err == MQ_OK || err == MQ_ECORRUPT);
            if (err != MQ_OK) {
                corrupt++;
                continue;
            }
            ok++;
            /* Whatever it found lies inside the bytes. */
            const br_str_t *ss[] = {&v.topic, &v.message_id, &v.tag, &v.group};
            for (size_t k = 0; k < MQ_ARRAY_LEN(ss); k++) {
                CU_ASSERT(!ss[k]->p || ((const uint8_t *)ss[k]->p >= bad &&
                                        (const uint8_t *)ss[k]->p + ss[k]->len <= bad + len));
            }
            CU_ASSERT(!v.has_body || (v.body >= bad && v.body + v.body_len <= bad + len));
        }
    }
    /* Both outcomes occur (a flip inside a string is still protobuf). */
    CU_ASSERT(ok > 0);
    CU_ASSERT(corrupt > 0);
    free(bad);

    static const struct {
        const char *what;
        uint8_t b[12];
        size_t n;
    } cases[] = {
        {"field number 0", {0x02, 0x00}, 2},
        {"start group", {0x0b, 0x0c}, 2},
        {"end group", {0x0c}, 1},
        {"wire type 6", {0x0e, 0x00}, 2},
        {"wire type 7", {0x0f, 0x00}, 2},
        {"11-byte varint",
         {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         12},
        {"10th varint byte > 1",
         {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11},
        {"length past the end", {0x22, 0x05, 'a', 'b'}, 4},
        {"huge length", {0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 10},
        {"topic as varint", {0x08, 0x01}, 2},
        {"body as fixed32", {0x25, 1, 2, 3, 4}, 5},
        {"sysprops as fixed64", {0x19, 1, 2, 3, 4, 5, 6, 7, 8}, 9},
        {"tag as varint", {0x1a, 0x02, 0x08, 0x01}, 4},
        {"group as varint", {0x1a, 0x03, 0x88, 0x01, 0x01}, 5},
        {"topic name as varint", {0x0a, 0x02, 0x10, 0x01}, 4},
        {"bad field inside topic", {0x0a, 0x02, 0x02, 0x00}, 4},
        {"sub-length past sysprops", {0x1a, 0x02, 0x0a, 0x05, 'a'}, 5},
        {"fixed64 cut", {0x31, 1, 2, 3}, 4},
        {"key cut", {0x80}, 1},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        uint8_t *b = mq_malloc(cases[i].n);
        memcpy(b, cases[i].b, cases[i].n);
        br_msg_view_t v;
        mq_err_t err = br_deliver_scan(b, cases[i].n, &v);
        if (err != MQ_ECORRUPT) {
            fprintf(stderr, "\n  %s: err=%d\n", cases[i].what, (int)err);
        }
        CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
        free(b);
    }
    free(msg);
}

/* --- build ------------------------------------------------------------------------- */

/* The original's fields, unchanged after the merge. */
static void t_check_original(const apache_rocketmq_v2_Message *m, const t_body_out_t *body,
                             const char *topic)
{
    CU_ASSERT_TRUE(m->has_topic);
    CU_ASSERT_STRING_EQUAL(m->topic.name, topic);
    CU_ASSERT_STRING_EQUAL(m->topic.resource_namespace, "ns1");
    CU_ASSERT_EQUAL_FATAL(m->user_properties_count, 2);
    CU_ASSERT_STRING_EQUAL(m->user_properties[0].key, "k1");
    CU_ASSERT_STRING_EQUAL(m->user_properties[0].value, "v1");
    CU_ASSERT_STRING_EQUAL(m->user_properties[1].key, "k2");
    CU_ASSERT(!m->user_properties[1].value || !*m->user_properties[1].value);
    CU_ASSERT_TRUE(m->has_system_properties);
    const apache_rocketmq_v2_SystemProperties *sp = &m->system_properties;
    CU_ASSERT_STRING_EQUAL(sp->tag, "TagA");
    CU_ASSERT_EQUAL_FATAL(sp->keys_count, 2);
    CU_ASSERT_STRING_EQUAL(sp->keys[0], "key-1");
    CU_ASSERT_STRING_EQUAL(sp->keys[1], "key-2");
    CU_ASSERT_STRING_EQUAL(sp->message_id, "0156F7E71C361B21BC024CCDBE00000000");
    CU_ASSERT_EQUAL(sp->body_encoding, apache_rocketmq_v2_Encoding_IDENTITY);
    CU_ASSERT_EQUAL(sp->message_type, apache_rocketmq_v2_MessageType_FIFO);
    CU_ASSERT_TRUE(sp->has_born_timestamp);
    CU_ASSERT_EQUAL(sp->born_timestamp.seconds, 1700000000);
    CU_ASSERT_EQUAL(sp->born_timestamp.nanos, 123000000);
    CU_ASSERT_STRING_EQUAL(sp->born_host, "client-host");
    CU_ASSERT_STRING_EQUAL(sp->message_group, "g-42");
    CU_ASSERT_EQUAL(body->calls, 1);
    CU_ASSERT_EQUAL_FATAL(body->len, sizeof(t_body));
    CU_ASSERT_EQUAL(memcmp(body->p, t_body, sizeof(t_body)), 0);
}

static void test_build(void)
{
    size_t len;
    uint8_t *msg = t_original(&len);
    char md5[33];
    br_deliver_md5_hex(t_body, sizeof(t_body), md5);
    br_deliver_fields_t f = {
        .receipt_handle = "rh-1 2 3",
        .queue_id = 3,
        .queue_offset = 1234567890123ll,
        .delivery_attempt = 2,
        .store_ms = 1700000001234ull,
        .store_host = "10.0.0.1:8081",
        .body_md5_hex = md5,
        .invisible_ms = 30500,
    };
    size_t out_len = 0;
    uint8_t *out = br_deliver_build(msg, len, &f, &out_len);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT(out_len > len);
    /* The stored bytes come first, untouched. */
    CU_ASSERT_EQUAL(memcmp(out, msg, len), 0);

    apache_rocketmq_v2_Message m;
    t_body_out_t body;
    CU_ASSERT_FATAL(t_decode(out, out_len, &m, &body));
    t_check_original(&m, &body, "orders");
    const apache_rocketmq_v2_SystemProperties *sp = &m.system_properties;
    CU_ASSERT_STRING_EQUAL(sp->receipt_handle, "rh-1 2 3");
    CU_ASSERT_EQUAL(sp->queue_id, 3);
    CU_ASSERT_TRUE(sp->has_queue_offset);
    CU_ASSERT_EQUAL(sp->queue_offset, 1234567890123ll);
    CU_ASSERT_TRUE(sp->has_delivery_attempt);
    CU_ASSERT_EQUAL(sp->delivery_attempt, 2);
    CU_ASSERT_TRUE(sp->has_store_timestamp);
    CU_ASSERT_EQUAL(sp->store_timestamp.seconds, 1700000001);
    CU_ASSERT_EQUAL(sp->store_timestamp.nanos, 234000000);
    CU_ASSERT_STRING_EQUAL(sp->store_host, "10.0.0.1:8081");
    CU_ASSERT_TRUE(sp->has_body_digest);
    CU_ASSERT_EQUAL(sp->body_digest.type, apache_rocketmq_v2_DigestType_MD5);
    CU_ASSERT_STRING_EQUAL(sp->body_digest.checksum, md5);
    CU_ASSERT_TRUE(sp->has_invisible_duration);
    CU_ASSERT_EQUAL(sp->invisible_duration.seconds, 30);
    CU_ASSERT_EQUAL(sp->invisible_duration.nanos, 500000000);
    CU_ASSERT_FALSE(sp->has_dead_letter_queue);
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    free(body.p);

    /* The scan of the delivered bytes still finds the original. */
    br_msg_view_t v;
    CU_ASSERT_EQUAL(br_deliver_scan(out, out_len, &v), MQ_OK);
    CU_ASSERT(t_view_is(v.topic, "orders"));
    CU_ASSERT(t_view_is(v.tag, "TagA"));

    /* Built again on top (a redelivery of a delivered copy): zeros and a
     * negative replace what the first build set, the topic is replaced but
     * its namespace kept, a DLQ appears. */
    br_deliver_fields_t g = {
        .topic = "orders-renamed",
        .receipt_handle = "rh-2",
        .queue_id = -1,
        .queue_offset = 0,
        .delivery_attempt = 0,
        .store_ms = 1700000002000ull,
        .dlq_topic = "orders",
        .dlq_message_id = "ID-1",
    };
    size_t out2_len = 0;
    uint8_t *out2 = br_deliver_build(out, out_len, &g, &out2_len);
    CU_ASSERT_FATAL(out2 != NULL);
    CU_ASSERT_FATAL(t_decode(out2, out2_len, &m, &body));
    t_check_original(&m, &body, "orders-renamed");
    CU_ASSERT_STRING_EQUAL(sp->receipt_handle, "rh-2");
    CU_ASSERT_EQUAL(sp->queue_id, -1);
    CU_ASSERT_EQUAL(sp->queue_offset, 0);
    CU_ASSERT_EQUAL(sp->delivery_attempt, 0);
    CU_ASSERT_EQUAL(sp->store_timestamp.seconds, 1700000002);
    CU_ASSERT_EQUAL(sp->store_timestamp.nanos, 0);
    /* Not given this time: the earlier values stay. */
    CU_ASSERT_STRING_EQUAL(sp->store_host, "10.0.0.1:8081");
    CU_ASSERT_STRING_EQUAL(sp->body_digest.checksum, md5);
    CU_ASSERT_EQUAL(sp->invisible_duration.seconds, 30);
    CU_ASSERT_TRUE(sp->has_dead_letter_queue);
    CU_ASSERT_STRING_EQUAL(sp->dead_letter_queue.topic, "orders");
    CU_ASSERT_STRING_EQUAL(sp->dead_letter_queue.message_id, "ID-1");
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    free(body.p);
    CU_ASSERT_EQUAL(br_deliver_scan(out2, out2_len, &v), MQ_OK);
    CU_ASSERT(t_view_is(v.topic, "orders-renamed"));
    free(out2);
    free(out);

    /* Fields a merge cannot see unless encoded: queue_id 0 over Node's 7. */
    br_deliver_fields_t z = {.delivery_attempt = 1};
    out = br_deliver_build(msg, len, &z, &out_len);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_FATAL(t_decode(out, out_len, &m, &body));
    t_check_original(&m, &body, "orders");
    CU_ASSERT_EQUAL(sp->queue_id, 0);
    CU_ASSERT_TRUE(sp->has_queue_offset);
    CU_ASSERT_EQUAL(sp->delivery_attempt, 1);
    CU_ASSERT_FALSE(sp->has_store_timestamp);
    CU_ASSERT_FALSE(sp->has_invisible_duration);
    CU_ASSERT_FALSE(sp->has_body_digest);
    CU_ASSERT(!sp->receipt_handle);
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    free(body.p);
    free(out);

    CU_ASSERT(br_deliver_build(msg, len, NULL, &out_len) == NULL);
    CU_ASSERT(br_deliver_build(NULL, 3, &z, &out_len) == NULL);
    free(msg);
}

static void test_overrides_alone(void)
{
    br_deliver_fields_t f = {
        .topic = "%DLQ%group1",
        .dlq_topic = "orders",
        .dlq_message_id = "0156F7E71C361B21BC024CCDBE00000000",
    };
    size_t olen = 0;
    uint8_t *o = br_deliver_encode_overrides(&f, &olen);
    CU_ASSERT_FATAL(o != NULL);
    /* On its own it is a Message too. */
    apache_rocketmq_v2_Message m;
    t_body_out_t body;
    CU_ASSERT_FATAL(t_decode(o, olen, &m, &body));
    CU_ASSERT_STRING_EQUAL(m.topic.name, "%DLQ%group1");
    CU_ASSERT_STRING_EQUAL(m.system_properties.dead_letter_queue.topic, "orders");
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    free(body.p);

    /* Appended to a stored message, as the DLQ stores it. */
    size_t len;
    uint8_t *msg = t_original(&len);
    uint8_t *dlq = mq_malloc(len + olen);
    memcpy(dlq, msg, len);
    memcpy(dlq + len, o, olen);
    CU_ASSERT_FATAL(t_decode(dlq, len + olen, &m, &body));
    t_check_original(&m, &body, "%DLQ%group1");
    CU_ASSERT_TRUE(m.system_properties.has_dead_letter_queue);
    CU_ASSERT_STRING_EQUAL(m.system_properties.dead_letter_queue.topic, "orders");
    CU_ASSERT_STRING_EQUAL(m.system_properties.dead_letter_queue.message_id,
                           "0156F7E71C361B21BC024CCDBE00000000");
    pb_release(apache_rocketmq_v2_Message_fields, &m);
    free(body.p);
    br_msg_view_t v;
    CU_ASSERT_EQUAL(br_deliver_scan(dlq, len + olen, &v), MQ_OK);
    CU_ASSERT(t_view_is(v.topic, "%DLQ%group1"));
    CU_ASSERT(t_view_is(v.message_id, "0156F7E71C361B21BC024CCDBE00000000"));
    free(dlq);
    free(msg);
    free(o);
}

static void test_md5(void)
{
    char hex[33];
    br_deliver_md5_hex(NULL, 0, hex);
    CU_ASSERT_STRING_EQUAL(hex, "D41D8CD98F00B204E9800998ECF8427E");
    br_deliver_md5_hex((const uint8_t *)"abc", 3, hex);
    CU_ASSERT_STRING_EQUAL(hex, "900150983CD24FB0D6963F7D28E17F72");
    const char *fox = "The quick brown fox jumps over the lazy dog";
    br_deliver_md5_hex((const uint8_t *)fox, strlen(fox), hex);
    CU_ASSERT_STRING_EQUAL(hex, "9E107D9D372BB6826BD81D3542A419D6");
}

/* --- filters -------------------------------------------------------------------- */

static br_str_t t_str(const char *s)
{
    br_str_t r = {s, s ? strlen(s) : 0};
    return r;
}

static void test_filter(void)
{
    br_filter_t f;
    static const char *const all[] = {"*", "", " * ", "   ", NULL};
    for (size_t i = 0; i < MQ_ARRAY_LEN(all); i++) {
        CU_ASSERT_EQUAL_FATAL(br_filter_parse(1, all[i], &f), MQ_OK);
        CU_ASSERT_TRUE(f.all);
        CU_ASSERT_TRUE(br_filter_match(&f, t_str("x")));
        CU_ASSERT_TRUE(br_filter_match(&f, t_str(NULL)));
        br_filter_fini(&f);
    }
    /* Type 0 is taken as TAG. */
    CU_ASSERT_EQUAL_FATAL(br_filter_parse(0, "a", &f), MQ_OK);
    CU_ASSERT_FALSE(f.all);
    CU_ASSERT_EQUAL(f.ntags, 1);
    CU_ASSERT_TRUE(br_filter_match(&f, t_str("a")));
    CU_ASSERT_FALSE(br_filter_match(&f, t_str("b")));
    CU_ASSERT_FALSE(br_filter_match(&f, t_str("A")));
    CU_ASSERT_FALSE(br_filter_match(&f, t_str("aa")));
    CU_ASSERT_FALSE(br_filter_match(&f, t_str("")));
    CU_ASSERT_FALSE(br_filter_match(&f, t_str(NULL)));
    br_str_t prefix = {"ab", 1};
    CU_ASSERT_TRUE(br_filter_match(&f, prefix));
    br_filter_fini(&f);

    static const char *const ab[] = {"a||b", " a || b ", "a||b||a"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(ab); i++) {
        CU_ASSERT_EQUAL_FATAL(br_filter_parse(1, ab[i], &f), MQ_OK);
        CU_ASSERT_FALSE(f.all);
        CU_ASSERT_STRING_EQUAL(f.tags[0], "a");
        CU_ASSERT_STRING_EQUAL(f.tags[1], "b");
        CU_ASSERT_TRUE(br_filter_match(&f, t_str("a")));
        CU_ASSERT_TRUE(br_filter_match(&f, t_str("b")));
        CU_ASSERT_FALSE(br_filter_match(&f, t_str("c")));
        CU_ASSERT_FALSE(br_filter_match(&f, t_str("a||b")));
        br_filter_fini(&f);
        CU_ASSERT_EQUAL(f.ntags, 0);
    }
    /* A single '|' belongs to the tag; spaces inside it too. */
    CU_ASSERT_EQUAL_FATAL(br_filter_parse(1, "a|b || c d", &f), MQ_OK);
    CU_ASSERT_EQUAL(f.ntags, 2);
    CU_ASSERT_TRUE(br_filter_match(&f, t_str("a|b")));
    CU_ASSERT_TRUE(br_filter_match(&f, t_str("c d")));
    br_filter_fini(&f);

    static const char *const bad[] = {"a||",  "||",   "||a",  "a|| ||b", "a||||b",
                                      "a\tb", "a\nb", "\x01", "a||\x7f", "a\r"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        memset(&f, 0x5a, sizeof(f));
        CU_ASSERT_EQUAL(br_filter_parse(1, bad[i], &f), MQ_EINVAL);
        /* A failed parse leaves nothing to free. */
        CU_ASSERT_EQUAL(f.ntags, 0);
        br_filter_fini(&f);
    }
    CU_ASSERT_EQUAL(br_filter_parse(2, "a > 1", &f), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_filter_parse(2, "*", &f), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_filter_parse(3, "a", &f), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_filter_parse(-1, "a", &f), MQ_EINVAL);

    /* 64 tags fit, 65 do not; 1024 bytes fit, 1025 do not. */
    char expr[2048] = "";
    for (int i = 0; i < BR_FILTER_MAX_TAGS; i++) {
        char t[16];
        snprintf(t, sizeof(t), "%st%d", i ? "||" : "", i);
        strcat(expr, t);
    }
    CU_ASSERT_EQUAL_FATAL(br_filter_parse(1, expr, &f), MQ_OK);
    CU_ASSERT_EQUAL(f.ntags, BR_FILTER_MAX_TAGS);
    CU_ASSERT_TRUE(br_filter_match(&f, t_str("t63")));
    br_filter_fini(&f);
    strcat(expr, "||t64");
    CU_ASSERT_EQUAL(br_filter_parse(1, expr, &f), MQ_EINVAL);
    memset(expr, 'x', 1024);
    expr[1024] = '\0';
    CU_ASSERT_EQUAL(br_filter_parse(1, expr, &f), MQ_OK);
    br_filter_fini(&f);
    expr[1024] = 'x';
    expr[1025] = '\0';
    CU_ASSERT_EQUAL(br_filter_parse(1, expr, &f), MQ_EINVAL);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"scan", test_scan},
        {"scan_truncated", test_scan_truncated},
        {"scan_garbled", test_scan_garbled},
        {"build", test_build},
        {"overrides_alone", test_overrides_alone},
        {"md5", test_md5},
        {"filter", test_filter},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("br_deliver", tests, NULL, NULL);
}
