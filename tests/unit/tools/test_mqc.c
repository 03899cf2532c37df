/*
 * mqc (tools/mqc_rmq, tools/mqc_vlog): message ids (format, fields,
 * uniqueness across threads), request headers, endpoint lists, SendMessage
 * encode/decode through nanopb (16 messages with every field, a 4 MiB body,
 * the request size limit, the body callback called once per message), the
 * route and send-result decoders on responses built like the broker's,
 * Telemetry settings both ways, the RocketMQ code table, the verify log's
 * line format, writer and reader, and the consume side: consumer settings,
 * ReceiveMessage requests, response frames (a delivered message built as
 * the broker builds it) and streams, AckMessage and ChangeInvisibleDuration.
 */
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <unistd.h>

#include "mq_crc32c.h"
#include "mq_test.h"
#include "mq_util.h"
#include "mqc_recv.h"
#include "mqc_rmq.h"
#include "mqc_vlog.h"
#include "rmq_service.pb.h"

/* ----------------------------------------------------------- message ids */

static void test_msgid_format(void)
{
    /* The shape the protocol notes give: 01 56F7E71C361B 21BC 024CCDBE 00000000. */
    const uint8_t mac[6] = {0x56, 0xF7, 0xE7, 0x1C, 0x36, 0x1B};
    char id[MQC_MSGID_LEN + 1];
    mqc_msgid_format(id, mac, 0x21BC, 0x024CCDBE, 0);
    CU_ASSERT_STRING_EQUAL(id, "0156F7E71C361B21BC024CCDBE00000000");
    mqc_msgid_format(id, mac, 0xFFFF, 0xFFFFFFFF, 0xDEADBEEF);
    CU_ASSERT_STRING_EQUAL(id, "0156F7E71C361BFFFFFFFFFFFFDEADBEEF");

    uint8_t m2[6];
    uint16_t pid;
    uint32_t secs, seq;
    CU_ASSERT(mqc_msgid_parse(id, m2, &pid, &secs, &seq));
    CU_ASSERT(memcmp(m2, mac, 6) == 0);
    CU_ASSERT_EQUAL(pid, 0xFFFF);
    CU_ASSERT_EQUAL(secs, 0xFFFFFFFFu);
    CU_ASSERT_EQUAL(seq, 0xDEADBEEFu);

    CU_ASSERT_FALSE(mqc_msgid_parse("0156f7e71c361b21bc024ccdbe00000000", NULL, NULL, NULL, NULL));
    CU_ASSERT_FALSE(mqc_msgid_parse("0256F7E71C361B21BC024CCDBE00000000", NULL, NULL, NULL, NULL));
    CU_ASSERT_FALSE(mqc_msgid_parse("0156F7E71C361B21BC024CCDBE0000000", NULL, NULL, NULL, NULL));
    CU_ASSERT_FALSE(mqc_msgid_parse("0156F7E71C361B21BC024CCDBE000000000", NULL, NULL, NULL, NULL));
    CU_ASSERT_FALSE(mqc_msgid_parse("0156F7E71C361B21BC024CCDBE0000000G", NULL, NULL, NULL, NULL));
    CU_ASSERT_FALSE(mqc_msgid_parse(NULL, NULL, NULL, NULL, NULL));
}

static void test_msgid_generator(void)
{
    mqc_msgid_gen_t g;
    mqc_msgid_gen_init(&g);
    char a[MQC_MSGID_LEN + 1], b[MQC_MSGID_LEN + 1];
    mqc_msgid_next(&g, a);
    mqc_msgid_next(&g, b);
    CU_ASSERT_EQUAL(strlen(a), MQC_MSGID_LEN);
    for (size_t i = 0; i < MQC_MSGID_LEN; i++) {
        CU_ASSERT((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'A' && a[i] <= 'F'));
    }
    CU_ASSERT(strncmp(a, "01", 2) == 0);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    /* Same process prefix; consecutive sequences; the time is now. */
    CU_ASSERT(strncmp(a, b, 18) == 0);
    uint16_t pid;
    uint32_t secs, s1, s2;
    CU_ASSERT(mqc_msgid_parse(a, NULL, &pid, &secs, &s1));
    CU_ASSERT(mqc_msgid_parse(b, NULL, NULL, NULL, &s2));
    CU_ASSERT_EQUAL(s2, s1 + 1);
    CU_ASSERT_EQUAL(pid, (uint16_t)getpid());
    uint64_t now = mq_wall_ms() / 1000 - MQC_MSGID_EPOCH;
    CU_ASSERT(secs <= now && secs + 5 >= now);

    /* The fixed-field generator starts where it is told. */
    const uint8_t mac[6] = {1, 2, 3, 4, 5, 6};
    mqc_msgid_gen_init_with(&g, mac, 0x0A0B, 0xFFFFFFFE);
    mqc_msgid_next(&g, a);
    CU_ASSERT(strncmp(a, "010102030405060A0B", 18) == 0);
    CU_ASSERT(strcmp(a + 26, "FFFFFFFE") == 0);
}

#define MQC_T_THREADS 4
#define MQC_T_PER_THREAD 25000

typedef struct mqc_t_ids {
    mqc_msgid_gen_t *g;
    char (*out)[MQC_MSGID_LEN + 1];
} mqc_t_ids_t;

static void *mqc_t_make_ids(void *arg)
{
    mqc_t_ids_t *t = arg;
    for (size_t i = 0; i < MQC_T_PER_THREAD; i++) {
        mqc_msgid_next(t->g, t->out[i]);
    }
    return NULL;
}

static int mqc_t_cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, MQC_MSGID_LEN + 1);
}

static void test_msgid_unique(void)
{
    mqc_msgid_gen_t g;
    mqc_msgid_gen_init(&g);
    size_t n = MQC_T_THREADS * MQC_T_PER_THREAD;
    char(*ids)[MQC_MSGID_LEN + 1] = calloc(n, sizeof(*ids));
    pthread_t th[MQC_T_THREADS];
    mqc_t_ids_t args[MQC_T_THREADS];
    for (int i = 0; i < MQC_T_THREADS; i++) {
        args[i].g = &g;
        args[i].out = ids + (size_t)i * MQC_T_PER_THREAD;
        pthread_create(&th[i], NULL, mqc_t_make_ids, &args[i]);
    }
    for (int i = 0; i < MQC_T_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    qsort(ids, n, sizeof(*ids), mqc_t_cmp_id);
    size_t dups = 0;
    for (size_t i = 1; i < n; i++) {
        dups += memcmp(ids[i - 1], ids[i], sizeof(ids[i])) == 0;
    }
    CU_ASSERT_EQUAL(dups, 0);
    CU_ASSERT_EQUAL(atomic_load(&g.seq), n);
    free(ids);
}

/* -------------------------------------------------- headers and endpoints */

static const char *mqc_t_md(const mqc_md_t *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->md[i].key, key) == 0) {
            return h->md[i].value;
        }
    }
    return NULL;
}

static void test_headers(void)
{
    char cid[MQC_CLIENT_ID_MAX];
    mqc_client_id_make(cid, sizeof(cid), 7);
    char want[300];
    snprintf(want, sizeof(want), "%s@%d@7@", mqc_hostname(), (int)getpid());
    CU_ASSERT(strncmp(cid, want, strlen(want)) == 0);
    CU_ASSERT(strlen(cid) > strlen(want));

    mqc_md_t h1, h2;
    mqc_md_init(&h1, cid);
    mqc_md_init(&h2, cid);
    CU_ASSERT_STRING_EQUAL(mqc_t_md(&h1, "x-mq-client-id"), cid);
    CU_ASSERT_STRING_EQUAL(mqc_t_md(&h1, "x-mq-protocol"), "v2");
    CU_ASSERT_STRING_EQUAL(mqc_t_md(&h1, "x-mq-language"), MQC_LANGUAGE);
    CU_ASSERT_PTR_NOT_NULL(mqc_t_md(&h1, "x-mq-client-version"));
    const char *rid = mqc_t_md(&h1, "x-mq-request-id");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rid);
    CU_ASSERT_EQUAL(strlen(rid), 36);
    CU_ASSERT_EQUAL(rid[14], '4');
    CU_ASSERT_STRING_NOT_EQUAL(rid, mqc_t_md(&h2, "x-mq-request-id"));
    const char *dt = mqc_t_md(&h1, "x-mq-date-time");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dt);
    CU_ASSERT_EQUAL(strlen(dt), 16);
    CU_ASSERT_EQUAL(dt[8], 'T');
    CU_ASSERT_EQUAL(dt[15], 'Z');
    for (size_t i = 0; i < h1.n; i++) {
        for (const char *k = h1.md[i].key; *k; k++) {
            CU_ASSERT(!(*k >= 'A' && *k <= 'Z'));
        }
    }
}

static void test_endpoints(void)
{
    mqc_eps_t eps;
    char why[200];
    CU_ASSERT_EQUAL(mqc_eps_parse("127.0.0.1:8081", &eps, why, sizeof(why)), MQ_OK);
    CU_ASSERT_EQUAL(eps.n, 1);
    CU_ASSERT_STRING_EQUAL(eps.ep[0], "127.0.0.1:8081");
    CU_ASSERT_EQUAL(mqc_eps_parse(" a:1 ; b.example:2,[::1]:3;", &eps, why, sizeof(why)), MQ_OK);
    CU_ASSERT_EQUAL(eps.n, 3);
    CU_ASSERT_STRING_EQUAL(eps.ep[0], "a:1");
    CU_ASSERT_STRING_EQUAL(eps.ep[1], "b.example:2");
    CU_ASSERT_STRING_EQUAL(eps.ep[2], "[::1]:3");
    const char *bad[] = {"",    ";",       "host", "host:",  ":80",
                         "h:0", "h:65536", "h:8x", "::1:80", "[::1]80"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_EQUAL(mqc_eps_parse(bad[i], &eps, why, sizeof(why)), MQ_EINVAL);
    }
    char host[64];
    int port;
    CU_ASSERT(mqc_ep_split("[fe80::1]:9", host, sizeof(host), &port));
    CU_ASSERT_STRING_EQUAL(host, "fe80::1");
    CU_ASSERT_EQUAL(port, 9);
    char ep[MQC_EP_MAX];
    mqc_ep_join(ep, sizeof(ep), "fe80::1", 9);
    CU_ASSERT_STRING_EQUAL(ep, "[fe80::1]:9");
    mqc_ep_join(ep, sizeof(ep), "10.0.0.1", 8081);
    CU_ASSERT_STRING_EQUAL(ep, "10.0.0.1:8081");
}

/* ------------------------------------------------------------------ send */

#define MQC_T_BATCH 16

typedef struct mqc_t_bodies {
    uint8_t *buf;
    size_t calls[MQC_T_BATCH];
    uint32_t crc[MQC_T_BATCH];
} mqc_t_bodies_t;

static void mqc_t_fill(uint8_t *p, size_t len, size_t i)
{
    uint64_t x = mq_mix64(i + 1);
    for (size_t k = 0; k < len; k++) {
        if ((k & 7) == 0) {
            x = mq_mix64(x);
        }
        p[k] = (uint8_t)(x >> ((k & 7) * 8));
    }
}

static const uint8_t *mqc_t_body(size_t i, const mqc_msg_t *m, void *arg)
{
    mqc_t_bodies_t *b = arg;
    b->calls[i]++;
    mqc_t_fill(b->buf, m->len, i);
    b->crc[i] = mq_crc32c(0, b->buf, m->len);
    return b->buf;
}

typedef struct mqc_t_seen {
    size_t n;
    const mqc_msg_t *want;
    const uint32_t *crc;
    size_t bad;
} mqc_t_seen_t;

static bool mqc_t_streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool mqc_t_visit(size_t i, const apache_rocketmq_v2_Message *m, const uint8_t *body,
                        size_t len, void *arg)
{
    mqc_t_seen_t *s = arg;
    const mqc_msg_t *w = &s->want[i];
    const apache_rocketmq_v2_SystemProperties *sp = &m->system_properties;
    bool ok = i == s->n && m->has_topic && mqc_t_streq(m->topic.name, w->topic) &&
              m->has_system_properties && mqc_t_streq(sp->message_id, w->message_id) &&
              mqc_t_streq(sp->tag, w->tag) && mqc_t_streq(sp->message_group, w->group) &&
              mqc_t_streq(sp->born_host, w->born_host) &&
              sp->body_encoding == apache_rocketmq_v2_Encoding_IDENTITY && sp->has_born_timestamp &&
              (uint64_t)sp->born_timestamp.seconds * 1000 +
                      (uint64_t)sp->born_timestamp.nanos / 1000000 ==
                  w->born_ms &&
              sp->message_type == (w->group ? apache_rocketmq_v2_MessageType_FIFO
                                            : apache_rocketmq_v2_MessageType_NORMAL) &&
              len == w->len && m->user_properties_count == w->nprops;
    if (w->key) {
        ok = ok && sp->keys_count == 1 && mqc_t_streq(sp->keys[0], w->key);
    } else {
        ok = ok && sp->keys_count == 0;
    }
    for (size_t k = 0; ok && k < w->nprops; k++) {
        ok = mqc_t_streq(m->user_properties[k].key, w->props[k].key) &&
             mqc_t_streq(m->user_properties[k].value, w->props[k].value);
    }
    if (ok && w->body) {
        ok = memcmp(body, w->body, len) == 0;
    }
    if (ok && s->crc) {
        ok = mq_crc32c(0, body, len) == s->crc[i];
    }
    s->bad += !ok;
    s->n++;
    return true;
}

static void test_send_roundtrip_batch(void)
{
    mqc_msg_t msgs[MQC_T_BATCH];
    char ids[MQC_T_BATCH][MQC_MSGID_LEN + 1];
    char groups[MQC_T_BATCH][16];
    char seqs[MQC_T_BATCH][16];
    mqc_prop_t props[MQC_T_BATCH][2];
    mqc_msgid_gen_t g;
    mqc_msgid_gen_init(&g);
    uint8_t raw[100];
    mqc_t_fill(raw, sizeof(raw), 99);
    mqc_t_bodies_t bodies;
    memset(&bodies, 0, sizeof(bodies));
    bodies.buf = malloc(70000);
    for (size_t i = 0; i < MQC_T_BATCH; i++) {
        mqc_msg_t *m = &msgs[i];
        memset(m, 0, sizeof(*m));
        mqc_msgid_next(&g, ids[i]);
        snprintf(groups[i], sizeof(groups[i]), "g%zu", i % 3);
        snprintf(seqs[i], sizeof(seqs[i]), "%zu", i);
        props[i][0] = (mqc_prop_t){"mqbench.seq", seqs[i]};
        props[i][1] = (mqc_prop_t){"k2", ""};
        m->topic = "orders";
        m->message_id = ids[i];
        m->tag = (i % 2) ? "tagA" : NULL;
        m->key = (i % 4) ? "key-1" : NULL;
        m->group = (i % 5) ? groups[i] : NULL;
        m->born_host = "host-1";
        m->born_ms = 1700000000123ull + i;
        m->props = props[i];
        m->nprops = i % 3;
        /* Sizes around the varint boundaries, and a few raw bodies. */
        m->len = (i * 4099 + 1) % 70000;
        if (m->len == 0) {
            m->len = 1;
        }
        if (i % 7 == 3) {
            m->body = raw;
            m->len = sizeof(raw);
        }
    }
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mqc_send_encode(msgs, MQC_T_BATCH, mqc_t_body, &bodies, &buf, &len),
                          MQ_OK);
    for (size_t i = 0; i < MQC_T_BATCH; i++) {
        /* Generated once per message, raw bodies never. */
        CU_ASSERT_EQUAL(bodies.calls[i], msgs[i].body ? 0u : 1u);
    }
    mqc_t_seen_t seen = {0, msgs, NULL, 0};
    /* Raw bodies are compared by bytes, generated ones by checksum. */
    uint32_t crc[MQC_T_BATCH];
    for (size_t i = 0; i < MQC_T_BATCH; i++) {
        crc[i] = msgs[i].body ? mq_crc32c(0, raw, sizeof(raw)) : bodies.crc[i];
    }
    seen.crc = crc;
    CU_ASSERT_EQUAL(mqc_send_request_decode(buf, len, mqc_t_visit, &seen), MQ_OK);
    CU_ASSERT_EQUAL(seen.n, MQC_T_BATCH);
    CU_ASSERT_EQUAL(seen.bad, 0);

    /* The same bytes through the generated nanopb decoder, as the broker
     * reads them: one Message per element, in order. */
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    size_t count = 0;
    while (is.bytes_left) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        CU_ASSERT_FATAL(pb_decode_tag(&is, &wt, &tag, &eof));
        CU_ASSERT_EQUAL(tag, apache_rocketmq_v2_SendMessageRequest_messages_tag);
        CU_ASSERT_FATAL(pb_skip_field(&is, wt));
        count++;
    }
    CU_ASSERT_EQUAL(count, MQC_T_BATCH);
    free(buf);
    free(bodies.buf);
}

static void test_send_4mib(void)
{
    size_t big = 4u << 20;
    mqc_t_bodies_t bodies;
    memset(&bodies, 0, sizeof(bodies));
    bodies.buf = malloc(big);
    mqc_msg_t m;
    memset(&m, 0, sizeof(m));
    m.topic = "big";
    m.message_id = "0100000000000000000000000000000001";
    m.born_host = "h";
    m.born_ms = 1;
    m.len = big;
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mqc_send_encode(&m, 1, mqc_t_body, &bodies, &buf, &len), MQ_OK);
    CU_ASSERT(len > big && len < big + 256);
    mqc_t_seen_t seen = {0, &m, bodies.crc, 0};
    CU_ASSERT_EQUAL(mqc_send_request_decode(buf, len, mqc_t_visit, &seen), MQ_OK);
    CU_ASSERT_EQUAL(seen.n, 1);
    CU_ASSERT_EQUAL(seen.bad, 0);
    free(buf);

    /* Three of them fit in a request; five do not (16 MiB). */
    mqc_msg_t five[5];
    for (size_t i = 0; i < 5; i++) {
        five[i] = m;
    }
    CU_ASSERT_EQUAL(mqc_send_encode(five, 3, mqc_t_body, &bodies, &buf, &len), MQ_OK);
    seen = (mqc_t_seen_t){0, five, NULL, 0};
    CU_ASSERT_EQUAL(mqc_send_request_decode(buf, len, mqc_t_visit, &seen), MQ_OK);
    CU_ASSERT_EQUAL(seen.n, 3);
    CU_ASSERT_EQUAL(seen.bad, 0);
    free(buf);
    buf = NULL;
    CU_ASSERT_EQUAL(mqc_send_encode(five, 5, mqc_t_body, &bodies, &buf, &len), MQ_ETOOLARGE);
    CU_ASSERT_PTR_NULL(buf);
    /* No message, or a NULL body without a callback. */
    CU_ASSERT_EQUAL(mqc_send_encode(five, 0, mqc_t_body, &bodies, &buf, &len), MQ_EINVAL);
    CU_ASSERT_EQUAL(mqc_send_encode(five, 1, NULL, NULL, &buf, &len), MQ_EINVAL);
    free(bodies.buf);

    /* Garbage does not decode. */
    const uint8_t junk[] = {0x0A, 0x7F, 0x01};
    seen = (mqc_t_seen_t){0, five, NULL, 0};
    CU_ASSERT_EQUAL(mqc_send_request_decode(junk, sizeof(junk), mqc_t_visit, &seen), MQ_EPROTO);
}

static void test_send_response(void)
{
    apache_rocketmq_v2_SendResultEntry e[3];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 3; i++) {
        e[i].has_status = true;
        e[i].status.code =
            i == 1 ? apache_rocketmq_v2_Code_TOO_MANY_REQUESTS : apache_rocketmq_v2_Code_OK;
        e[i].message_id = "01ABC";
        e[i].offset = 40 + i;
        e[i].queue_id = 3 - i;
    }
    apache_rocketmq_v2_SendMessageResponse r = apache_rocketmq_v2_SendMessageResponse_init_zero;
    r.has_status = true;
    r.status.code = apache_rocketmq_v2_Code_TOO_MANY_REQUESTS;
    r.status.message = "slow down";
    r.entries_count = 3;
    r.entries = e;
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_SendMessageResponse_fields, &r, &buf, &len), MQ_OK);
    mqc_send_resp_t d;
    CU_ASSERT_EQUAL_FATAL(mqc_send_response_decode(buf, len, &d), MQ_OK);
    CU_ASSERT_EQUAL(d.code, 42900);
    CU_ASSERT_STRING_EQUAL(d.message, "slow down");
    CU_ASSERT_EQUAL_FATAL(d.n, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(d.entries[i].code, i == 1 ? 42900 : 20000);
        CU_ASSERT_EQUAL(d.entries[i].offset, 40 + i);
        CU_ASSERT_EQUAL(d.entries[i].queue_id, 3 - i);
        CU_ASSERT_STRING_EQUAL(d.entries[i].message_id, "01ABC");
    }
    mqc_send_resp_fini(&d);
    int code;
    char msg[64];
    CU_ASSERT_EQUAL(mqc_status_decode(buf, len, &code, msg, sizeof(msg)), MQ_OK);
    CU_ASSERT_EQUAL(code, 42900);
    CU_ASSERT_STRING_EQUAL(msg, "slow down");
    free(buf);
    /* A truncated response is refused. */
    const uint8_t junk[] = {0x12, 0x40};
    CU_ASSERT_EQUAL(mqc_send_response_decode(junk, sizeof(junk), &d), MQ_EPROTO);
    mqc_send_resp_fini(&d);
}

/* ----------------------------------------------------------------- route */

static void test_route(void)
{
    /* The request carries the topic and the access points. */
    mqc_eps_t access;
    char why[100];
    CU_ASSERT_EQUAL_FATAL(mqc_eps_parse("10.0.0.1:8081;10.0.0.2:8081", &access, why, sizeof(why)),
                          MQ_OK);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mqc_route_request_encode("orders", &access, &buf, &len), MQ_OK);
    apache_rocketmq_v2_QueryRouteRequest rq = apache_rocketmq_v2_QueryRouteRequest_init_zero;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_decode(apache_rocketmq_v2_QueryRouteRequest_fields, buf, len, &rq),
                          MQ_OK);
    CU_ASSERT(rq.has_topic && strcmp(rq.topic.name, "orders") == 0);
    CU_ASSERT(rq.has_endpoints);
    CU_ASSERT_EQUAL(rq.endpoints.scheme, apache_rocketmq_v2_AddressScheme_IPv4);
    CU_ASSERT_EQUAL_FATAL(rq.endpoints.addresses_count, 2);
    CU_ASSERT_STRING_EQUAL(rq.endpoints.addresses[1].host, "10.0.0.2");
    CU_ASSERT_EQUAL(rq.endpoints.addresses[1].port, 8081);
    pb_release(apache_rocketmq_v2_QueryRouteRequest_fields, &rq);
    free(buf);

    /* A response like the broker's: 5 queues over two brokers (one on
     * IPv6), one queue without a broker. */
    apache_rocketmq_v2_Address addrs[2] = {{"10.0.0.1", 8081}, {"fd00::2", 8082}};
    apache_rocketmq_v2_MessageType types[2] = {apache_rocketmq_v2_MessageType_NORMAL,
                                               apache_rocketmq_v2_MessageType_FIFO};
    apache_rocketmq_v2_MessageQueue mq[5];
    memset(mq, 0, sizeof(mq));
    for (int i = 0; i < 5; i++) {
        mq[i].has_topic = true;
        mq[i].topic.name = "orders";
        mq[i].id = i;
        mq[i].permission = apache_rocketmq_v2_Permission_READ_WRITE;
        mq[i].accept_message_types_count = i == 0 ? 2 : 1;
        mq[i].accept_message_types = types;
        if (i == 4) {
            continue;
        }
        mq[i].has_broker = true;
        mq[i].broker.name = i % 2 ? "b2" : "b1";
        mq[i].broker.has_endpoints = true;
        mq[i].broker.endpoints.addresses_count = 1;
        mq[i].broker.endpoints.addresses = &addrs[i % 2];
    }
    apache_rocketmq_v2_QueryRouteResponse r = apache_rocketmq_v2_QueryRouteResponse_init_zero;
    r.has_status = true;
    r.status.code = apache_rocketmq_v2_Code_OK;
    r.status.message = "OK";
    r.message_queues_count = 5;
    r.message_queues = mq;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_QueryRouteResponse_fields, &r, &buf, &len), MQ_OK);
    mqc_route_t rt;
    int code;
    char msg[32];
    CU_ASSERT_EQUAL_FATAL(mqc_route_decode(buf, len, &code, msg, sizeof(msg), &rt), MQ_OK);
    free(buf);
    CU_ASSERT_EQUAL(code, 20000);
    CU_ASSERT_STRING_EQUAL(msg, "OK");
    CU_ASSERT_EQUAL_FATAL(rt.nqueues, 5);
    CU_ASSERT_EQUAL_FATAL(rt.eps.n, 2);
    CU_ASSERT_STRING_EQUAL(rt.eps.ep[0], "10.0.0.1:8081");
    CU_ASSERT_STRING_EQUAL(rt.eps.ep[1], "[fd00::2]:8082");
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(rt.queues[i].id, i);
        CU_ASSERT_EQUAL(rt.queues[i].perm, apache_rocketmq_v2_Permission_READ_WRITE);
        CU_ASSERT_EQUAL(rt.queues[i].ep_index, (size_t)(i % 2));
        CU_ASSERT_STRING_EQUAL(rt.queues[i].broker, i % 2 ? "b2" : "b1");
        CU_ASSERT_STRING_EQUAL(rt.queues[i].endpoint, rt.eps.ep[i % 2]);
    }
    CU_ASSERT_EQUAL(rt.queues[0].types, (1u << 1) | (1u << 2));
    CU_ASSERT_EQUAL(rt.queues[1].types, 1u << 1);
    CU_ASSERT_EQUAL(rt.queues[4].ep_index, SIZE_MAX);
    CU_ASSERT_STRING_EQUAL(rt.queues[4].endpoint, "");
    mqc_route_fini(&rt);

    /* An error answer: its code, no queues. */
    apache_rocketmq_v2_QueryRouteResponse nf = apache_rocketmq_v2_QueryRouteResponse_init_zero;
    nf.has_status = true;
    nf.status.code = apache_rocketmq_v2_Code_TOPIC_NOT_FOUND;
    nf.status.message = "topic does not exist";
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_QueryRouteResponse_fields, &nf, &buf, &len), MQ_OK);
    CU_ASSERT_EQUAL(mqc_route_decode(buf, len, &code, msg, sizeof(msg), &rt), MQ_OK);
    CU_ASSERT_EQUAL(code, 40402);
    CU_ASSERT_EQUAL(rt.nqueues, 0);
    CU_ASSERT_EQUAL(rt.eps.n, 0);
    mqc_route_fini(&rt);
    free(buf);
    const uint8_t junk[] = {0x12, 0x05, 0x01};
    CU_ASSERT_EQUAL(mqc_route_decode(junk, sizeof(junk), &code, msg, sizeof(msg), &rt), MQ_EPROTO);
    mqc_route_fini(&rt);
}

/* -------------------------------------------------------------- telemetry */

static void test_telemetry(void)
{
    mqc_eps_t access;
    char why[100];
    CU_ASSERT_EQUAL_FATAL(mqc_eps_parse("broker.local:8081", &access, why, sizeof(why)), MQ_OK);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mqc_settings_encode("orders", &access, 3000, &buf, &len), MQ_OK);
    apache_rocketmq_v2_TelemetryCommand c = apache_rocketmq_v2_TelemetryCommand_init_zero;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_decode(apache_rocketmq_v2_TelemetryCommand_fields, buf, len, &c),
                          MQ_OK);
    free(buf);
    CU_ASSERT_EQUAL_FATAL(c.which_command, apache_rocketmq_v2_TelemetryCommand_settings_tag);
    apache_rocketmq_v2_Settings *s = &c.command.settings;
    CU_ASSERT(s->has_client_type && s->client_type == apache_rocketmq_v2_ClientType_PRODUCER);
    CU_ASSERT(s->has_access_point);
    CU_ASSERT_EQUAL(s->access_point.scheme, apache_rocketmq_v2_AddressScheme_DOMAIN_NAME);
    CU_ASSERT_EQUAL(s->request_timeout.seconds, 3);
    CU_ASSERT_EQUAL_FATAL(s->which_pub_sub, apache_rocketmq_v2_Settings_publishing_tag);
    CU_ASSERT_EQUAL_FATAL(s->pub_sub.publishing.topics_count, 1);
    CU_ASSERT_STRING_EQUAL(s->pub_sub.publishing.topics[0].name, "orders");
    CU_ASSERT(s->has_user_agent && s->user_agent.language == apache_rocketmq_v2_Language_CPP);

    /* The server's answer: status and merged settings. */
    c.has_status = true;
    c.status.code = apache_rocketmq_v2_Code_OK;
    s->pub_sub.publishing.max_body_size = 4194304;
    s->backoff_policy.max_attempts = 3;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, &c, &buf, &len),
                          MQ_OK);
    pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &c);
    mqc_settings_reply_t r;
    CU_ASSERT_EQUAL(mqc_telemetry_decode(buf, len, &r), MQ_OK);
    free(buf);
    CU_ASSERT_EQUAL(r.code, 20000);
    CU_ASSERT(r.has_settings);
    CU_ASSERT_EQUAL(r.max_body_size, 4194304);
    CU_ASSERT_EQUAL(r.max_attempts, 3);

    /* Heartbeat and goodbye requests decode as what they are. */
    CU_ASSERT_EQUAL_FATAL(mqc_heartbeat_encode(&buf, &len), MQ_OK);
    apache_rocketmq_v2_HeartbeatRequest hb = apache_rocketmq_v2_HeartbeatRequest_init_zero;
    CU_ASSERT_EQUAL(mqc_pb_decode(apache_rocketmq_v2_HeartbeatRequest_fields, buf, len, &hb),
                    MQ_OK);
    CU_ASSERT_EQUAL(hb.client_type, apache_rocketmq_v2_ClientType_PRODUCER);
    CU_ASSERT_FALSE(hb.has_group);
    free(buf);
    CU_ASSERT_EQUAL(mqc_notify_encode(&buf, &len), MQ_OK);
    CU_ASSERT_EQUAL(len, 0);
    free(buf);
}

/* ----------------------------------------------------------------- codes */

static void test_codes(void)
{
    /* Every value of apache.rocketmq.v2.Code is in the table with its
     * proto name, and nothing else is. */
    size_t known = 0;
    for (int code = 0; code < 100000; code++) {
        if (mqc_code_known(code)) {
            known++;
            CU_ASSERT_STRING_NOT_EQUAL(mqc_code_name(code), "UNKNOWN_CODE");
        } else {
            CU_ASSERT_STRING_EQUAL(mqc_code_name(code), "UNKNOWN_CODE");
            CU_ASSERT_FALSE(mqc_code_retriable(code));
        }
    }
    CU_ASSERT_EQUAL(known, 54);
    CU_ASSERT_STRING_EQUAL(mqc_code_name(20000), "OK");
    CU_ASSERT_STRING_EQUAL(mqc_code_name(40402), "TOPIC_NOT_FOUND");
    CU_ASSERT_STRING_EQUAL(mqc_code_name(42900), "TOO_MANY_REQUESTS");
    CU_ASSERT_STRING_EQUAL(mqc_code_name(60000), "FAILED_TO_CONSUME_MESSAGE");
    const int retriable[] = {40800, 42900, 50000, 50001, 50002, 50400, 50401, 50402};
    size_t nretriable = 0;
    for (int code = 0; code < 100000; code++) {
        nretriable += mqc_code_retriable(code);
    }
    CU_ASSERT_EQUAL(nretriable, MQ_ARRAY_LEN(retriable));
    for (size_t i = 0; i < MQ_ARRAY_LEN(retriable); i++) {
        CU_ASSERT(mqc_code_retriable(retriable[i]));
    }
    CU_ASSERT_FALSE(mqc_code_retriable(40402));
    CU_ASSERT_FALSE(mqc_code_retriable(20000));
    for (int st = RPC_OK; st <= RPC_UNAUTHENTICATED; st++) {
        bool want =
            st == RPC_UNAVAILABLE || st == RPC_DEADLINE_EXCEEDED || st == RPC_RESOURCE_EXHAUSTED;
        CU_ASSERT_EQUAL(mqc_status_retriable((rpc_status_t)st), want);
    }
}

/* ------------------------------------------------------------ verify log */

static void test_vlog_format(void)
{
    mqc_vrec_t r;
    memset(&r, 0, sizeof(r));
    r.queue = 3;
    r.offset = 1234567890123;
    r.producer = 7;
    r.seq = 42;
    r.crc = 0x00ABCDEF;
    snprintf(r.message_id, sizeof(r.message_id), "0156F7E71C361B21BC024CCDBE00000000");
    char line[MQC_VLOG_LINE_MAX];
    size_t n = mqc_vrec_format(&r, line, sizeof(line));
    CU_ASSERT_STRING_EQUAL(line,
                           "3 1234567890123 7 42 00abcdef 0156F7E71C361B21BC024CCDBE00000000\n");
    CU_ASSERT_EQUAL(n, strlen(line));
    mqc_vrec_t p;
    CU_ASSERT_FATAL(mqc_vrec_parse(line, &p));
    CU_ASSERT(p.queue == 3 && p.offset == 1234567890123 && p.producer == 7 && p.seq == 42 &&
              p.crc == 0x00ABCDEF);
    CU_ASSERT_STRING_EQUAL(p.message_id, r.message_id);
    CU_ASSERT_STRING_EQUAL(p.group, "");

    snprintf(r.group, sizeof(r.group), "g17");
    r.crc = 0xFFFFFFFF;
    n = mqc_vrec_format(&r, line, sizeof(line));
    CU_ASSERT_STRING_EQUAL(
        line, "3 1234567890123 7 42 ffffffff 0156F7E71C361B21BC024CCDBE00000000 g17\n");
    CU_ASSERT_FATAL(mqc_vrec_parse(line, &p));
    CU_ASSERT_STRING_EQUAL(p.group, "g17");
    CU_ASSERT_EQUAL(p.crc, 0xFFFFFFFFu);
    /* Without the newline too. */
    line[n - 1] = '\0';
    CU_ASSERT(mqc_vrec_parse(line, &p));
    /* Too small a buffer writes nothing. */
    CU_ASSERT_EQUAL(mqc_vrec_format(&r, line, 10), 0);

    const char *bad[] = {"",
                         "3 1 7 42 00abcdef",
                         "x 1 7 42 00abcdef ID",
                         "3 1 -7 42 00abcdef ID",
                         "3 1 7 42 abcdef ID",
                         "3 1 7 42 0000zzzz ID",
                         "3 1 7 42 00abcdef ID g1 extra",
                         "-1 1 7 42 00abcdef ID"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_FALSE(mqc_vrec_parse(bad[i], &p));
    }
}

static void test_vlog_file(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/verify.log", mq_test_tmpdir("mqc-vlog"));
    mqc_vlog_t *vl;
    CU_ASSERT_EQUAL_FATAL(mqc_vlog_open(path, &vl), MQ_OK);
    /* Enough lines to fill the 1 MiB buffer several times. */
    size_t n = 40000;
    mqc_vrec_t r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < n; i++) {
        r.queue = (int)(i % 4);
        r.offset = (int64_t)(i / 4);
        r.producer = i % 3;
        r.seq = i;
        r.crc = (uint32_t)mq_mix64(i);
        snprintf(r.message_id, sizeof(r.message_id), "01%032zX", i);
        snprintf(r.group, sizeof(r.group), i % 2 ? "g%zu" : "", i % 5);
        mqc_vlog_add(vl, &r);
    }
    CU_ASSERT_EQUAL(mqc_vlog_lines(vl), n);
    CU_ASSERT_EQUAL(mqc_vlog_close(vl), MQ_OK);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[MQC_VLOG_LINE_MAX + 2];
    size_t i = 0;
    size_t bad = 0;
    while (fgets(line, sizeof(line), f)) {
        mqc_vrec_t p;
        char id[64];
        snprintf(id, sizeof(id), "01%032zX", i);
        if (!mqc_vrec_parse(line, &p) || p.seq != i || p.queue != (int)(i % 4) ||
            p.offset != (int64_t)(i / 4) || p.crc != (uint32_t)mq_mix64(i) ||
            strcmp(p.message_id, id) != 0 || (i % 2 ? p.group[0] != 'g' : p.group[0] != '\0')) {
            bad++;
        }
        i++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(i, n);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_NOT_EQUAL(mqc_vlog_open("/nonexistent-dir/x/verify.log", &vl), MQ_OK);
    CU_ASSERT_EQUAL(mqc_vlog_close(NULL), MQ_OK);
}

/* ------------------------------------------------------------- consume */

static void test_consumer_settings(void)
{
    mqc_eps_t access;
    char why[100];
    CU_ASSERT_EQUAL_FATAL(mqc_eps_parse("127.0.0.1:8081", &access, why, sizeof(why)), MQ_OK);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(
        mqc_consumer_settings_encode(apache_rocketmq_v2_ClientType_SIMPLE_CONSUMER, "g1", "orders",
                                     "a||b", &access, 3000, 20000, &buf, &len),
        MQ_OK);
    apache_rocketmq_v2_TelemetryCommand c = apache_rocketmq_v2_TelemetryCommand_init_zero;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_decode(apache_rocketmq_v2_TelemetryCommand_fields, buf, len, &c),
                          MQ_OK);
    free(buf);
    apache_rocketmq_v2_Settings *s = &c.command.settings;
    CU_ASSERT_EQUAL(s->client_type, apache_rocketmq_v2_ClientType_SIMPLE_CONSUMER);
    CU_ASSERT_EQUAL(s->access_point.scheme, apache_rocketmq_v2_AddressScheme_IPv4);
    CU_ASSERT_EQUAL_FATAL(s->which_pub_sub, apache_rocketmq_v2_Settings_subscription_tag);
    apache_rocketmq_v2_Subscription *sub = &s->pub_sub.subscription;
    CU_ASSERT(sub->has_group);
    CU_ASSERT_STRING_EQUAL(sub->group.name, "g1");
    CU_ASSERT_EQUAL_FATAL(sub->subscriptions_count, 1);
    CU_ASSERT_STRING_EQUAL(sub->subscriptions[0].topic.name, "orders");
    CU_ASSERT_EQUAL(sub->subscriptions[0].expression.type, apache_rocketmq_v2_FilterType_TAG);
    CU_ASSERT_STRING_EQUAL(sub->subscriptions[0].expression.expression, "a||b");
    CU_ASSERT(sub->has_long_polling_timeout && sub->long_polling_timeout.seconds == 20);

    /* The server's answer for a FIFO group. */
    c.has_status = true;
    c.status.code = apache_rocketmq_v2_Code_OK;
    sub->has_fifo = true;
    sub->fifo = true;
    sub->has_receive_batch_size = true;
    sub->receive_batch_size = 32;
    sub->long_polling_timeout.seconds = 5;
    sub->long_polling_timeout.nanos = 500000000;
    s->has_backoff_policy = true;
    s->backoff_policy.max_attempts = 17;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_encode(apache_rocketmq_v2_TelemetryCommand_fields, &c, &buf, &len),
                          MQ_OK);
    pb_release(apache_rocketmq_v2_TelemetryCommand_fields, &c);
    mqc_settings_reply_t r;
    CU_ASSERT_EQUAL(mqc_telemetry_decode(buf, len, &r), MQ_OK);
    free(buf);
    CU_ASSERT(r.has_settings && r.has_subscription && r.fifo);
    CU_ASSERT_EQUAL(r.receive_batch_size, 32);
    CU_ASSERT_EQUAL(r.poll_ms, 5500);
    CU_ASSERT_EQUAL(r.max_attempts, 17);

    CU_ASSERT_EQUAL_FATAL(
        mqc_heartbeat_group_encode(apache_rocketmq_v2_ClientType_PUSH_CONSUMER, "g1", &buf, &len),
        MQ_OK);
    apache_rocketmq_v2_HeartbeatRequest hb = apache_rocketmq_v2_HeartbeatRequest_init_zero;
    CU_ASSERT_EQUAL(mqc_pb_decode(apache_rocketmq_v2_HeartbeatRequest_fields, buf, len, &hb),
                    MQ_OK);
    free(buf);
    CU_ASSERT(hb.has_group && strcmp(hb.group.name, "g1") == 0);
    CU_ASSERT_EQUAL(hb.client_type, apache_rocketmq_v2_ClientType_PUSH_CONSUMER);
    pb_release(apache_rocketmq_v2_HeartbeatRequest_fields, &hb);
    CU_ASSERT_EQUAL_FATAL(mqc_notify_group_encode("g1", &buf, &len), MQ_OK);
    apache_rocketmq_v2_NotifyClientTerminationRequest nt =
        apache_rocketmq_v2_NotifyClientTerminationRequest_init_zero;
    CU_ASSERT_EQUAL(
        mqc_pb_decode(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, buf, len, &nt),
        MQ_OK);
    free(buf);
    CU_ASSERT(nt.has_group && strcmp(nt.group.name, "g1") == 0);
    pb_release(apache_rocketmq_v2_NotifyClientTerminationRequest_fields, &nt);
}

static void test_recv_request(void)
{
    mqc_recv_req_t q = {.group = "g",
                        .topic = "t",
                        .queue_id = -1,
                        .broker = "broker-1",
                        .filter = "tagA",
                        .batch = 16,
                        .invisible_ms = 15500,
                        .poll_ms = 20000,
                        .auto_renew = true,
                        .attempt_id = "a-1"};
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mqc_recv_request_encode(&q, &buf, &len), MQ_OK);
    apache_rocketmq_v2_ReceiveMessageRequest r = apache_rocketmq_v2_ReceiveMessageRequest_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_decode(apache_rocketmq_v2_ReceiveMessageRequest_fields, buf, len, &r), MQ_OK);
    free(buf);
    CU_ASSERT(r.has_group && strcmp(r.group.name, "g") == 0);
    CU_ASSERT(r.has_message_queue && strcmp(r.message_queue.topic.name, "t") == 0);
    CU_ASSERT_EQUAL(r.message_queue.id, -1);
    CU_ASSERT(r.message_queue.has_broker && strcmp(r.message_queue.broker.name, "broker-1") == 0);
    CU_ASSERT(r.has_filter_expression && strcmp(r.filter_expression.expression, "tagA") == 0);
    CU_ASSERT_EQUAL(r.filter_expression.type, apache_rocketmq_v2_FilterType_TAG);
    CU_ASSERT_EQUAL(r.batch_size, 16);
    CU_ASSERT(r.has_invisible_duration && r.invisible_duration.seconds == 15 &&
              r.invisible_duration.nanos == 500000000);
    CU_ASSERT(r.has_long_polling_timeout && r.long_polling_timeout.seconds == 20);
    CU_ASSERT(r.auto_renew);
    CU_ASSERT_STRING_EQUAL(r.attempt_id, "a-1");
    pb_release(apache_rocketmq_v2_ReceiveMessageRequest_fields, &r);

    /* Optional fields left out, as Go's simple consumer leaves the polling time. */
    mqc_recv_req_t bare = {
        .group = "g", .topic = "t", .batch = 1, .invisible_ms = -1, .poll_ms = -1};
    CU_ASSERT_EQUAL_FATAL(mqc_recv_request_encode(&bare, &buf, &len), MQ_OK);
    apache_rocketmq_v2_ReceiveMessageRequest b = apache_rocketmq_v2_ReceiveMessageRequest_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_decode(apache_rocketmq_v2_ReceiveMessageRequest_fields, buf, len, &b), MQ_OK);
    free(buf);
    CU_ASSERT_FALSE(b.has_invisible_duration);
    CU_ASSERT_FALSE(b.has_long_polling_timeout);
    CU_ASSERT_FALSE(b.has_filter_expression);
    CU_ASSERT_FALSE(b.message_queue.has_broker);
    CU_ASSERT_PTR_NULL(b.attempt_id);
    pb_release(apache_rocketmq_v2_ReceiveMessageRequest_fields, &b);
}

/* Appends field `field` (length-delimited) holding data to out. */
static size_t put_field(uint8_t *out, uint32_t field, const uint8_t *data, size_t len)
{
    pb_ostream_t os = pb_ostream_from_buffer(out, len + 16);
    pb_encode_tag(&os, PB_WT_STRING, field);
    pb_encode_string(&os, data, len);
    return os.bytes_written;
}

/* A delivered message as the broker builds it: the stored Message bytes
 * (a producer's encoding) followed by a second Message with the server's
 * fields; returned as a ReceiveMessageResponse{message} frame. */
static uint8_t *message_frame(const char *body, size_t *frame_len)
{
    mqc_prop_t props[1] = {{"k", "v"}};
    mqc_msg_t m = {.topic = "t",
                   .message_id = "01ID",
                   .tag = "tagA",
                   .key = "key1",
                   .born_host = "h",
                   .born_ms = 1700000000123ull,
                   .props = props,
                   .nprops = 1,
                   .body = (const uint8_t *)body,
                   .len = strlen(body)};
    uint8_t *req;
    size_t rlen;
    CU_ASSERT_FATAL(mqc_send_encode(&m, 1, NULL, NULL, &req, &rlen) == MQ_OK);
    /* SendMessageRequest{messages = 1: Message}: skip the tag and length. */
    pb_istream_t is = pb_istream_from_buffer(req, rlen);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    uint32_t mlen;
    CU_ASSERT_FATAL(pb_decode_tag(&is, &wt, &tag, &eof) && pb_decode_varint32(&is, &mlen));
    const uint8_t *stored = is.state;

    apache_rocketmq_v2_Message o = apache_rocketmq_v2_Message_init_zero;
    o.has_system_properties = true;
    apache_rocketmq_v2_SystemProperties *sp = &o.system_properties;
    sp->receipt_handle = "L1.handle";
    sp->queue_id = 3;
    sp->has_queue_offset = true;
    sp->queue_offset = 42;
    sp->has_delivery_attempt = true;
    sp->delivery_attempt = 2;
    sp->has_store_timestamp = true;
    sp->store_timestamp.seconds = 1700000001;
    sp->store_timestamp.nanos = 5000000;
    sp->has_body_digest = true;
    sp->body_digest.type = apache_rocketmq_v2_DigestType_MD5;
    char md5[33];
    mqc_md5_hex((const uint8_t *)body, strlen(body), md5);
    sp->body_digest.checksum = md5;
    sp->has_dead_letter_queue = true;
    sp->dead_letter_queue.topic = "orig";
    sp->dead_letter_queue.message_id = "01ID";
    uint8_t *over;
    size_t olen;
    CU_ASSERT_FATAL(mqc_pb_encode(apache_rocketmq_v2_Message_fields, &o, &over, &olen) == MQ_OK);
    uint8_t *msg = mq_malloc(mlen + olen);
    memcpy(msg, stored, mlen);
    memcpy(msg + mlen, over, olen);
    uint8_t *frame = mq_malloc(mlen + olen + 16);
    *frame_len = put_field(frame, 2, msg, mlen + olen);
    free(msg);
    free(over);
    free(req);
    return frame;
}

static uint8_t *status_frame(int code, size_t *len)
{
    apache_rocketmq_v2_ReceiveMessageResponse r =
        apache_rocketmq_v2_ReceiveMessageResponse_init_zero;
    r.which_content = apache_rocketmq_v2_ReceiveMessageResponse_status_tag;
    r.content.status.code = (apache_rocketmq_v2_Code)code;
    r.content.status.message = "msg";
    uint8_t *buf;
    CU_ASSERT_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_ReceiveMessageResponse_fields, &r, &buf, len) == MQ_OK);
    return buf;
}

static uint8_t *ts_frame(size_t *len)
{
    apache_rocketmq_v2_ReceiveMessageResponse r =
        apache_rocketmq_v2_ReceiveMessageResponse_init_zero;
    r.which_content = apache_rocketmq_v2_ReceiveMessageResponse_delivery_timestamp_tag;
    r.content.delivery_timestamp.seconds = 1700000002;
    r.content.delivery_timestamp.nanos = 7000000;
    uint8_t *buf;
    CU_ASSERT_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_ReceiveMessageResponse_fields, &r, &buf, len) == MQ_OK);
    return buf;
}

static void test_recv_frames(void)
{
    char md5[33];
    mqc_md5_hex((const uint8_t *)"", 0, md5);
    CU_ASSERT_STRING_EQUAL(md5, "D41D8CD98F00B204E9800998ECF8427E");
    mqc_md5_hex((const uint8_t *)"abc", 3, md5);
    CU_ASSERT_STRING_EQUAL(md5, "900150983CD24FB0D6963F7D28E17F72");

    size_t len;
    uint8_t *buf = message_frame("hello body", &len);
    mqc_recv_frame_t f;
    CU_ASSERT_EQUAL_FATAL(mqc_recv_frame_decode(buf, len, &f), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(f.kind, MQC_FRAME_MESSAGE);
    mqc_delivery_t d;
    mqc_delivery_view(&f, &d);
    CU_ASSERT_STRING_EQUAL(d.topic, "t");
    CU_ASSERT_STRING_EQUAL(d.message_id, "01ID");
    CU_ASSERT_STRING_EQUAL(d.tag, "tagA");
    CU_ASSERT_STRING_EQUAL(d.group, "");
    CU_ASSERT_STRING_EQUAL(d.receipt_handle, "L1.handle");
    CU_ASSERT_EQUAL(d.queue_id, 3);
    CU_ASSERT_EQUAL(d.queue_offset, 42);
    CU_ASSERT_EQUAL(d.attempt, 2);
    CU_ASSERT_EQUAL(d.born_ms, 1700000000123ull);
    CU_ASSERT_EQUAL(d.store_ms, 1700000001005ull);
    CU_ASSERT_STRING_EQUAL(d.dlq_topic, "orig");
    CU_ASSERT_STRING_EQUAL(d.dlq_message_id, "01ID");
    CU_ASSERT(d.body_len == 10 && memcmp(d.body, "hello body", 10) == 0);
    CU_ASSERT_EQUAL_FATAL(d.m->system_properties.keys_count, 1);
    CU_ASSERT_STRING_EQUAL(d.m->system_properties.keys[0], "key1");
    CU_ASSERT_STRING_EQUAL(mqc_delivery_prop(&d, "k"), "v");
    CU_ASSERT_PTR_NULL(mqc_delivery_prop(&d, "nope"));
    CU_ASSERT(mqc_delivery_digest_ok(&d));
    /* A body that does not match its digest. */
    d.body_len--;
    CU_ASSERT_FALSE(mqc_delivery_digest_ok(&d));
    mqc_recv_frame_fini(&f);

    /* A stream as a client sees it: status, messages, timestamp. */
    mqc_recv_result_t r;
    mqc_recv_result_init(&r);
    size_t slen, tlen;
    uint8_t *st = status_frame(apache_rocketmq_v2_Code_OK, &slen);
    uint8_t *ts = ts_frame(&tlen);
    mqc_recv_result_add(&r, st, slen);
    mqc_recv_result_add(&r, buf, len);
    mqc_recv_result_add(&r, buf, len);
    mqc_recv_result_add(&r, ts, tlen);
    r.grpc = RPC_OK;
    CU_ASSERT_EQUAL(mqc_recv_result_code(&r), apache_rocketmq_v2_Code_OK);
    CU_ASSERT_EQUAL(r.n, 2);
    CU_ASSERT_EQUAL(r.nframes, 4);
    CU_ASSERT_EQUAL(r.bad_frames, 0);
    CU_ASSERT(r.has_delivery_ts && r.delivery_ms == 1700000002007ull);
    CU_ASSERT_STRING_EQUAL(r.msgs[1]->d.message_id, "01ID");
    CU_ASSERT_STRING_EQUAL(r.message, "msg");
    mqc_recv_result_fini(&r);
    free(st);

    /* Nothing found; a stream without a status; a failed call. */
    mqc_recv_result_init(&r);
    st = status_frame(apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND, &slen);
    mqc_recv_result_add(&r, ts, tlen);
    mqc_recv_result_add(&r, st, slen);
    r.grpc = RPC_OK;
    CU_ASSERT_EQUAL(mqc_recv_result_code(&r), apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND);
    mqc_recv_result_fini(&r);
    mqc_recv_result_init(&r);
    mqc_recv_result_add(&r, buf, len);
    r.grpc = RPC_OK;
    CU_ASSERT_EQUAL(mqc_recv_result_code(&r), 0);
    CU_ASSERT_EQUAL(r.n, 1);
    r.grpc = RPC_UNAVAILABLE;
    CU_ASSERT_EQUAL(mqc_recv_result_code(&r), -(int)RPC_UNAVAILABLE);
    /* Undecodable and empty frames are counted, not kept. */
    static const uint8_t junk[] = {0x12, 0x7f, 0x01};
    mqc_recv_result_add(&r, junk, sizeof(junk));
    mqc_recv_result_add(&r, junk, 0);
    CU_ASSERT_EQUAL(r.bad_frames, 2);
    CU_ASSERT_EQUAL(r.n, 1);
    mqc_recv_result_fini(&r);
    CU_ASSERT_EQUAL(mqc_recv_frame_decode(junk, sizeof(junk), &f), MQ_EPROTO);
    mqc_recv_frame_fini(&f);
    free(st);
    free(ts);
    free(buf);
}

static void test_ack_change(void)
{
    mqc_ack_entry_t e[2] = {{"id1", "h1"}, {"id2", "h2"}};
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL(mqc_ack_encode("g", "t", e, 0, &buf, &len), MQ_EINVAL);
    CU_ASSERT_EQUAL_FATAL(mqc_ack_encode("g", "t", e, 2, &buf, &len), MQ_OK);
    apache_rocketmq_v2_AckMessageRequest a = apache_rocketmq_v2_AckMessageRequest_init_zero;
    CU_ASSERT_EQUAL_FATAL(mqc_pb_decode(apache_rocketmq_v2_AckMessageRequest_fields, buf, len, &a),
                          MQ_OK);
    free(buf);
    CU_ASSERT(a.has_group && strcmp(a.group.name, "g") == 0);
    CU_ASSERT(a.has_topic && strcmp(a.topic.name, "t") == 0);
    CU_ASSERT_EQUAL_FATAL(a.entries_count, 2);
    CU_ASSERT_STRING_EQUAL(a.entries[1].message_id, "id2");
    CU_ASSERT_STRING_EQUAL(a.entries[1].receipt_handle, "h2");
    pb_release(apache_rocketmq_v2_AckMessageRequest_fields, &a);

    apache_rocketmq_v2_AckMessageResultEntry re[2] = {
        {"id1", "h1", true, {apache_rocketmq_v2_Code_OK, NULL}},
        {"id2", "h2", true, {apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE, "bad"}},
    };
    apache_rocketmq_v2_AckMessageResponse ar = apache_rocketmq_v2_AckMessageResponse_init_zero;
    ar.has_status = true;
    ar.status.code = apache_rocketmq_v2_Code_MULTIPLE_RESULTS;
    ar.entries_count = 2;
    ar.entries = re;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_AckMessageResponse_fields, &ar, &buf, &len), MQ_OK);
    mqc_ack_resp_t r;
    CU_ASSERT_EQUAL(mqc_ack_response_decode(buf, len, &r), MQ_OK);
    free(buf);
    CU_ASSERT_EQUAL(r.code, apache_rocketmq_v2_Code_MULTIPLE_RESULTS);
    CU_ASSERT_EQUAL_FATAL(r.n, 2);
    CU_ASSERT_EQUAL(r.entries[0].code, apache_rocketmq_v2_Code_OK);
    CU_ASSERT_EQUAL(r.entries[1].code, apache_rocketmq_v2_Code_INVALID_RECEIPT_HANDLE);
    CU_ASSERT_STRING_EQUAL(r.entries[1].message_id, "id2");
    mqc_ack_resp_fini(&r);
    static const uint8_t junk[] = {0x0a, 0x7f};
    CU_ASSERT_EQUAL(mqc_ack_response_decode(junk, sizeof(junk), &r), MQ_EPROTO);
    mqc_ack_resp_fini(&r);

    CU_ASSERT_EQUAL_FATAL(mqc_change_encode("g", "t", "h1", "id1", 0, &buf, &len), MQ_OK);
    apache_rocketmq_v2_ChangeInvisibleDurationRequest c =
        apache_rocketmq_v2_ChangeInvisibleDurationRequest_init_zero;
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_decode(apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, buf, len, &c),
        MQ_OK);
    free(buf);
    CU_ASSERT_STRING_EQUAL(c.receipt_handle, "h1");
    CU_ASSERT_STRING_EQUAL(c.message_id, "id1");
    /* A zero duration is sent (Node's nacks): the field is present. */
    CU_ASSERT(c.has_invisible_duration && c.invisible_duration.seconds == 0);
    pb_release(apache_rocketmq_v2_ChangeInvisibleDurationRequest_fields, &c);

    apache_rocketmq_v2_ChangeInvisibleDurationResponse cr =
        apache_rocketmq_v2_ChangeInvisibleDurationResponse_init_zero;
    cr.has_status = true;
    cr.status.code = apache_rocketmq_v2_Code_OK;
    cr.receipt_handle = "h1-new";
    CU_ASSERT_EQUAL_FATAL(
        mqc_pb_encode(apache_rocketmq_v2_ChangeInvisibleDurationResponse_fields, &cr, &buf, &len),
        MQ_OK);
    int code;
    char msg[32], handle[32];
    CU_ASSERT_EQUAL(
        mqc_change_response_decode(buf, len, &code, msg, sizeof(msg), handle, sizeof(handle)),
        MQ_OK);
    free(buf);
    CU_ASSERT_EQUAL(code, apache_rocketmq_v2_Code_OK);
    CU_ASSERT_STRING_EQUAL(handle, "h1-new");
}

typedef struct vread {
    size_t n;
    size_t bad;
} vread_t;

static bool vread_cb(const mqc_vrec_t *rec, void *arg)
{
    vread_t *v = arg;
    char id[64];
    snprintf(id, sizeof(id), "01%032zX", v->n);
    if (rec->seq != v->n || rec->offset != (int64_t)v->n * 2 || strcmp(rec->message_id, id) != 0 ||
        (v->n % 2 ? strcmp(rec->group, "g1") != 0 : rec->group[0] != '\0')) {
        v->bad++;
    }
    v->n++;
    return true;
}

static void test_vlog_read(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/read.log", mq_test_tmpdir("mqc-vread"));
    mqc_vlog_t *vl;
    CU_ASSERT_EQUAL_FATAL(mqc_vlog_open(path, &vl), MQ_OK);
    mqc_vrec_t r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < 1000; i++) {
        r.seq = i;
        r.offset = (int64_t)i * 2;
        snprintf(r.message_id, sizeof(r.message_id), "01%032zX", i);
        snprintf(r.group, sizeof(r.group), "%s", i % 2 ? "g1" : "");
        mqc_vlog_add(vl, &r);
    }
    CU_ASSERT_EQUAL_FATAL(mqc_vlog_close(vl), MQ_OK);
    vread_t v = {0, 0};
    uint64_t bad_line = 0;
    CU_ASSERT_EQUAL(mqc_vlog_read(path, vread_cb, &v, &bad_line), MQ_OK);
    CU_ASSERT_EQUAL(v.n, 1000);
    CU_ASSERT_EQUAL(v.bad, 0);

    FILE *f = fopen(path, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("\nnot a record\n", f);
    fclose(f);
    v = (vread_t){0, 0};
    CU_ASSERT_EQUAL(mqc_vlog_read(path, vread_cb, &v, &bad_line), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(bad_line, 1002);
    CU_ASSERT_EQUAL(v.n, 1000);
    CU_ASSERT_NOT_EQUAL(mqc_vlog_read("/nonexistent-dir/x.log", vread_cb, &v, NULL), MQ_OK);
    unlink(path);
    rmdir(dirname(path));
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"message id format and parse", test_msgid_format},
        {"message id generator", test_msgid_generator},
        {"message ids unique across threads", test_msgid_unique},
        {"request headers", test_headers},
        {"endpoint lists", test_endpoints},
        {"SendMessage round trip, 16 messages", test_send_roundtrip_batch},
        {"SendMessage 4 MiB bodies and size limit", test_send_4mib},
        {"SendMessageResponse decode", test_send_response},
        {"QueryRoute request and response", test_route},
        {"Telemetry settings, heartbeat, goodbye", test_telemetry},
        {"RocketMQ code table", test_codes},
        {"verify log line format", test_vlog_format},
        {"verify log writer", test_vlog_file},
        {"consumer Settings, heartbeat, goodbye", test_consumer_settings},
        {"ReceiveMessageRequest encode", test_recv_request},
        {"ReceiveMessage frames and streams", test_recv_frames},
        {"AckMessage and ChangeInvisibleDuration", test_ack_change},
        {"verify log reader", test_vlog_read},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("mqc", tests, NULL, NULL);
}
