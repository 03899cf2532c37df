/*
 * br_topic: the name rule, message types, the record codec (round trip and
 * every kind of corruption), and, against a real ZooKeeper, create / read /
 * update / list, the watched cache following changes made by another
 * client, and br_topics_ensure racing from several threads and clients.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_rec.h"
#include "br_topic.h"
#include "br_topic_int.h"
#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"

#define T_ROOT "/t_topic"
#define T_WAIT_MS 10000

static char t_hostport[64];

static int t_init(void)
{
    return mq_test_zk_start(t_hostport, sizeof(t_hostport), 250) ? 0 : 1;
}

static int t_cleanup(void)
{
    mq_test_zk_stop();
    return 0;
}

static zk_client_t *t_client(void)
{
    zk_client_opts_t o = {4000, 10000, NULL};
    zk_client_t *zk = NULL;
    CU_ASSERT_EQUAL_FATAL(zk_client_new(t_hostport, &o, &zk), MQ_OK);
    return zk;
}

static br_topic_t t_topic(const char *name, int queues, br_msg_type_t type)
{
    br_topic_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    t.queues = queues;
    t.perm = BR_PERM_READ | BR_PERM_WRITE;
    t.type = type;
    t.ctime_ms = 1700000000123ull;
    return t;
}

/* --- pure ---------------------------------------------------------------- */

static void test_name_rule(void)
{
    char name[200];
    memset(name, 'a', sizeof(name));
    name[127] = '\0';
    CU_ASSERT_TRUE(br_topic_name_valid(name));
    name[127] = 'a';
    name[128] = '\0';
    CU_ASSERT_FALSE(br_topic_name_valid(name));
    CU_ASSERT_TRUE(br_topic_name_valid("a"));
    CU_ASSERT_TRUE(br_topic_name_valid("%DLQ%group"));
    CU_ASSERT_TRUE(br_topic_name_valid("%RETRY%g|x"));
    CU_ASSERT_TRUE(br_topic_name_valid("Az09_-"));
    CU_ASSERT_FALSE(br_topic_name_valid(""));
    CU_ASSERT_FALSE(br_topic_name_valid(NULL));
    static const char *const bad[] = {"a b", "a/b", "a.b", "a*",   "a\nb", "\xc3\xa9",
                                      "a:b", "a=b", "a,b", "a\\b", "a#"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_FALSE(br_topic_name_valid(bad[i]));
    }
}

static void test_msg_types(void)
{
    static const br_msg_type_t all[] = {BR_MSG_TYPE_NORMAL, BR_MSG_TYPE_FIFO, BR_MSG_TYPE_DELAY,
                                        BR_MSG_TYPE_TRANSACTION, BR_MSG_TYPE_MIXED};
    for (size_t i = 0; i < MQ_ARRAY_LEN(all); i++) {
        br_msg_type_t t = BR_MSG_TYPE_UNSPECIFIED;
        CU_ASSERT_TRUE(br_msg_type_parse(br_msg_type_name(all[i]), &t));
        CU_ASSERT_EQUAL(t, all[i]);
    }
    br_msg_type_t t;
    CU_ASSERT_TRUE(br_msg_type_parse("fifo", &t));
    CU_ASSERT_EQUAL(t, BR_MSG_TYPE_FIFO);
    CU_ASSERT_FALSE(br_msg_type_parse("UNSPECIFIED", &t));
    CU_ASSERT_FALSE(br_msg_type_parse("BATCH", &t));
    CU_ASSERT_FALSE(br_msg_type_parse(NULL, &t));
    CU_ASSERT_STRING_EQUAL(br_msg_type_name(BR_MSG_TYPE_MIXED), "MIXED");
    CU_ASSERT_STRING_EQUAL(br_msg_type_name((br_msg_type_t)77), "UNKNOWN");

    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_TRUE(br_msg_type_accepts(BR_MSG_TYPE_MIXED, all[i]));
        for (size_t k = 0; k < 4; k++) {
            CU_ASSERT_EQUAL(br_msg_type_accepts(all[i], all[k]), i == k);
        }
        CU_ASSERT_FALSE(br_msg_type_accepts(all[i], BR_MSG_TYPE_MIXED));
        CU_ASSERT_FALSE(br_msg_type_accepts(all[i], BR_MSG_TYPE_UNSPECIFIED));
    }
    CU_ASSERT_FALSE(br_msg_type_accepts(BR_MSG_TYPE_MIXED, BR_MSG_TYPE_UNSPECIFIED));
    CU_ASSERT_FALSE(br_msg_type_accepts(BR_MSG_TYPE_UNSPECIFIED, BR_MSG_TYPE_NORMAL));
}

static void test_record_round_trip(void)
{
    static const br_msg_type_t types[] = {BR_MSG_TYPE_NORMAL, BR_MSG_TYPE_FIFO, BR_MSG_TYPE_DELAY,
                                          BR_MSG_TYPE_TRANSACTION, BR_MSG_TYPE_MIXED};
    for (size_t i = 0; i < MQ_ARRAY_LEN(types); i++) {
        br_topic_t t = t_topic("%DLQ%g|1", (int)(1 + i * 255), types[i]);
        t.perm = (int)(i % 2 ? BR_PERM_READ : 0);
        char *data;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(br_topic_encode(&t, &data, &len), MQ_OK);
        CU_ASSERT_EQUAL(strlen(data), len);
        br_topic_t back;
        CU_ASSERT_EQUAL(br_topic_decode(data, len, &back, NULL, 0), MQ_OK);
        CU_ASSERT_EQUAL(memcmp(&t, &back, sizeof(t)), 0);
        free(data);
    }
    /* The encoder refuses what the decoder would refuse. */
    char *data;
    size_t len;
    br_topic_t t = t_topic("x", 0, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_encode(&t, &data, &len), MQ_EINVAL);
    t = t_topic("x", BR_TOPIC_MAX_QUEUES + 1, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_encode(&t, &data, &len), MQ_EINVAL);
    t = t_topic("x y", 1, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_encode(&t, &data, &len), MQ_EINVAL);
    t = t_topic("x", 1, BR_MSG_TYPE_UNSPECIFIED);
    CU_ASSERT_EQUAL(br_topic_encode(&t, &data, &len), MQ_EINVAL);
    t = t_topic("x", 1, BR_MSG_TYPE_NORMAL);
    t.perm = 8;
    CU_ASSERT_EQUAL(br_topic_encode(&t, &data, &len), MQ_EINVAL);
}

/* A record with the given body lines and a valid checksum. */
static char *t_sealed(const char *header, const char *body, size_t *len)
{
    br_rec_buf_t b;
    memset(&b, 0, sizeof(b));
    br_rec_add(&b, header, strlen(header));
    br_rec_add(&b, body, strlen(body));
    return br_rec_finish(&b, len);
}

static void t_expect_corrupt(const char *data, size_t len, const char *what)
{
    br_topic_t t;
    char why[160] = "";
    mq_err_t err = br_topic_decode(data, len, &t, why, sizeof(why));
    if (err != MQ_ECORRUPT) {
        fprintf(stderr, "\n  %s: decoded (err=%d)\n", what, (int)err);
    }
    CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
    CU_ASSERT_TRUE(why[0] != '\0');
}

static void test_record_corrupt(void)
{
    br_topic_t t = t_topic("orders", 8, BR_MSG_TYPE_FIFO);
    char *data;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(br_topic_encode(&t, &data, &len), MQ_OK);
    /* Every single flipped bit is caught. */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            data[i] ^= (char)(1 << bit);
            br_topic_t back;
            CU_ASSERT_NOT_EQUAL(br_topic_decode(data, len, &back, NULL, 0), MQ_OK);
            data[i] ^= (char)(1 << bit);
        }
    }
    /* Every truncation too. */
    for (size_t n = 0; n < len; n++) {
        br_topic_t back;
        CU_ASSERT_EQUAL(br_topic_decode(data, n, &back, NULL, 0), MQ_ECORRUPT);
    }
    free(data);

    /* Well sealed but wrong inside. */
    static const char *const H = "# LedgerMQ topic\n";
    static const struct {
        const char *what;
        const char *header;
        const char *body;
    } cases[] = {
        {"version 2", NULL, "version=2\nname=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"no version", NULL, "name=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"other kind", "# LedgerMQ owner\n",
         "version=1\nname=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"missing key", NULL, "version=1\nname=a\nqueues=1\nperm=6\ntype=NORMAL\n"},
        {"repeated key", NULL,
         "version=1\nname=a\nqueues=1\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"unknown key", NULL, "version=1\nname=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\nx=1\n"},
        {"no '='", NULL, "version=1\nname=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\nx\n"},
        {"zero queues", NULL, "version=1\nname=a\nqueues=0\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"1025 queues", NULL, "version=1\nname=a\nqueues=1025\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"leading zero", NULL, "version=1\nname=a\nqueues=01\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"signed", NULL, "version=1\nname=a\nqueues=+1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"perm 8", NULL, "version=1\nname=a\nqueues=1\nperm=8\ntype=NORMAL\nctime=1\n"},
        {"lower-case type", NULL, "version=1\nname=a\nqueues=1\nperm=6\ntype=normal\nctime=1\n"},
        {"unknown type", NULL, "version=1\nname=a\nqueues=1\nperm=6\ntype=BATCH\nctime=1\n"},
        {"bad name", NULL, "version=1\nname=a.b\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"empty name", NULL, "version=1\nname=\nqueues=1\nperm=6\ntype=NORMAL\nctime=1\n"},
        {"huge ctime", NULL,
         "version=1\nname=a\nqueues=1\nperm=6\ntype=NORMAL\nctime=99999999999999999999\n"},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        char *rec = t_sealed(cases[i].header ? cases[i].header : H, cases[i].body, &len);
        t_expect_corrupt(rec, len, cases[i].what);
        free(rec);
    }
    /* And the good one of the same shape decodes. */
    char *rec = t_sealed(H, "version=1\nctime=1\ntype=DELAY\nperm=4\nqueues=1024\nname=a\n", &len);
    br_topic_t back;
    CU_ASSERT_EQUAL(br_topic_decode(rec, len, &back, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(back.queues, 1024);
    CU_ASSERT_EQUAL(back.type, BR_MSG_TYPE_DELAY);
    free(rec);
    /* A NUL inside, garbage, nothing. */
    CU_ASSERT_EQUAL(br_topic_decode("a\0b\n", 4, &back, NULL, 0), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_topic_decode("garbage", 7, &back, NULL, 0), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_topic_decode(NULL, 0, &back, NULL, 0), MQ_ECORRUPT);
}

/* The other records of the broker layout share the framing (br_cluster_rec):
 * round trips, and a few ways each can be wrong. */
static void test_cluster_records(void)
{
    br_broker_info_t bi;
    memset(&bi, 0, sizeof(bi));
    snprintf(bi.id, sizeof(bi.id), "broker-a");
    snprintf(bi.cluster, sizeof(bi.cluster), "DefaultCluster");
    snprintf(bi.endpoint, sizeof(bi.endpoint), "10.0.0.1:8081");
    bi.load.msgs_in = 1234.5;
    bi.load.bytes_in = 1e12 / 3;
    bi.load.msgs_out = 0;
    bi.load.bytes_out = 7;
    bi.load.queues = 12;
    bi.load.cpu = 0.25;
    char *data;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(br_rec_broker_encode(&bi, &data, &len), MQ_OK);
    br_broker_info_t back;
    CU_ASSERT_EQUAL(br_rec_broker_decode(data, len, &back, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(memcmp(&bi, &back, sizeof(bi)), 0);
    data[len - 3] ^= 1;
    CU_ASSERT_EQUAL(br_rec_broker_decode(data, len, &back, NULL, 0), MQ_ECORRUPT);
    free(data);
    bi.load.cpu = -1;
    CU_ASSERT_EQUAL(br_rec_broker_encode(&bi, &data, &len), MQ_EINVAL);
    bi.load.cpu = 0;
    snprintf(bi.id, sizeof(bi.id), "a/b");
    CU_ASSERT_EQUAL(br_rec_broker_encode(&bi, &data, &len), MQ_EINVAL);

    char id[BR_ID_MAX];
    char ep[BR_ENDPOINT_MAX];
    CU_ASSERT_EQUAL_FATAL(br_rec_owner_encode("b1", "h:1", &data, &len), MQ_OK);
    CU_ASSERT_EQUAL(br_rec_owner_decode(data, len, id, ep, NULL, 0), MQ_OK);
    CU_ASSERT_STRING_EQUAL(id, "b1");
    CU_ASSERT_STRING_EQUAL(ep, "h:1");
    /* A topic record is no owner record. */
    br_topic_t t = t_topic("x", 1, BR_MSG_TYPE_NORMAL);
    char *other;
    size_t olen;
    CU_ASSERT_EQUAL_FATAL(br_topic_encode(&t, &other, &olen), MQ_OK);
    CU_ASSERT_EQUAL(br_rec_owner_decode(other, olen, id, ep, NULL, 0), MQ_ECORRUPT);
    free(other);
    free(data);

    br_qid_t qs[3] = {{"%DLQ%g", 0}, {"a", 2}, {"a", 10}};
    CU_ASSERT_EQUAL_FATAL(br_rec_assign_encode("b1", qs, 3, &data, &len), MQ_OK);
    br_qid_t *got;
    size_t n;
    CU_ASSERT_EQUAL(br_rec_assign_decode(data, len, id, &got, &n, NULL, 0), MQ_OK);
    CU_ASSERT_STRING_EQUAL(id, "b1");
    CU_ASSERT_EQUAL_FATAL(n, 3);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_STRING_EQUAL(got[i].topic, qs[i].topic);
        CU_ASSERT_EQUAL(got[i].queue, qs[i].queue);
    }
    free(got);
    free(data);
    CU_ASSERT_EQUAL_FATAL(br_rec_assign_encode("b1", NULL, 0, &data, &len), MQ_OK);
    CU_ASSERT_EQUAL(br_rec_assign_decode(data, len, id, &got, &n, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    free(got);
    free(data);
    /* Unsorted, repeated, or out of range: refused both ways. */
    br_qid_t unsorted[2] = {{"b", 0}, {"a", 0}};
    CU_ASSERT_EQUAL(br_rec_assign_encode("b1", unsorted, 2, &data, &len), MQ_EINVAL);
    static const char *const bad[] = {
        "broker=b1\nb 0\na 0\n",
        "broker=b1\na 0\na 0\n",
        "broker=b1\na 1024\n",
        "broker=b1\na 01\n",
        "broker=b1\na\n",
        "broker=b1\na.b 1\n",
        "a 1\n",
        "broker=b/1\n",
        "broker=b1\na  1\n",
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        char body[128];
        snprintf(body, sizeof(body), "version=1\n%s", bad[i]);
        char *rec = t_sealed("# LedgerMQ assignment\n", body, &len);
        CU_ASSERT_EQUAL(br_rec_assign_decode(rec, len, id, &got, &n, NULL, 0), MQ_ECORRUPT);
        free(rec);
    }
}

/* --- ZooKeeper ------------------------------------------------------------- */

static void test_create_read_update_list(void)
{
    zk_client_t *zk = t_client();
    br_topic_t t = t_topic("crud", 4, BR_MSG_TYPE_NORMAL);
    br_topic_t got;
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "crud", &got), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(br_topic_create(zk, T_ROOT, &t), MQ_OK);
    CU_ASSERT_EQUAL(br_topic_create(zk, T_ROOT, &t), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "crud", &got), MQ_OK);
    CU_ASSERT_EQUAL(memcmp(&t, &got, sizeof(t)), 0);
    CU_ASSERT_EQUAL(zk_exists(zk, T_ROOT "/topics/crud/queues", NULL), MQ_OK);

    /* Grow, change the type; shrinking is refused. */
    t.queues = 8;
    t.type = BR_MSG_TYPE_MIXED;
    CU_ASSERT_EQUAL(br_topic_update(zk, T_ROOT, &t), MQ_OK);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "crud", &got), MQ_OK);
    CU_ASSERT_EQUAL(got.queues, 8);
    CU_ASSERT_EQUAL(got.type, BR_MSG_TYPE_MIXED);
    t.queues = 7;
    CU_ASSERT_EQUAL(br_topic_update(zk, T_ROOT, &t), MQ_EINVAL);
    br_topic_t missing = t_topic("nope", 1, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_update(zk, T_ROOT, &missing), MQ_ENOTFOUND);
    br_topic_t bad = t_topic("a b", 1, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_create(zk, T_ROOT, &bad), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "a b", &got), MQ_EINVAL);

    /* A corrupt record reads as MQ_ECORRUPT; an update repairs it. */
    br_topic_t c = t_topic("broken", 2, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_create(zk, T_ROOT, &c), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, T_ROOT "/topics/broken", "queues=2\n", 9, -1, NULL), MQ_OK);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "broken", &got), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_topic_update(zk, T_ROOT, &c), MQ_OK);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "broken", &got), MQ_OK);
    /* A record under another topic's name is corrupt too. */
    char *data;
    size_t len;
    br_topic_t other = t_topic("other", 2, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL_FATAL(br_topic_encode(&other, &data, &len), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, T_ROOT "/topics/broken", data, len, -1, NULL), MQ_OK);
    free(data);
    CU_ASSERT_EQUAL(br_topic_read(zk, T_ROOT, "broken", &got), MQ_ECORRUPT);

    br_topic_t z = t_topic("%DLQ%g", 1, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_create(zk, T_ROOT, &z), MQ_OK);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(br_topic_list(zk, T_ROOT, &names, &n), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(names[0], "%DLQ%g");
    CU_ASSERT_STRING_EQUAL(names[1], "broken");
    CU_ASSERT_STRING_EQUAL(names[2], "crud");
    zk_strings_free(names, n);
    /* No topics directory at all: an empty list. */
    CU_ASSERT_EQUAL(br_topic_list(zk, "/t_topic_none", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    zk_strings_free(names, n);
    zk_client_free(zk);
}

typedef struct t_probe {
    br_topics_t *tc;
    const char *name;
    mq_err_t want;
    int queues; /* with MQ_OK: the count to see */
} t_probe_t;

static bool t_cache_says(void *arg)
{
    t_probe_t *p = arg;
    br_topic_t t;
    mq_err_t err = br_topics_get(p->tc, p->name, &t);
    return err == p->want && (err != MQ_OK || t.queues == p->queues);
}

static void test_cache_follows(void)
{
    zk_client_t *zk = t_client();
    zk_client_t *other = t_client();
    br_topics_t *tc;
    CU_ASSERT_EQUAL_FATAL(br_topics_new(zk, T_ROOT "/cache", &tc), MQ_OK);
    br_topic_t t;
    CU_ASSERT_EQUAL(br_topics_get(tc, "late", &t), MQ_ENOTFOUND);
    /* Remembered as absent (answered twice the same). */
    CU_ASSERT_EQUAL(br_topics_get(tc, "late", &t), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(br_topics_get(tc, "bad name", &t), MQ_EINVAL);

    /* Another broker creates it: the children watch ends the negative. */
    br_topic_t late = t_topic("late", 2, BR_MSG_TYPE_NORMAL);
    CU_ASSERT_EQUAL(br_topic_create(other, T_ROOT "/cache", &late), MQ_OK);
    t_probe_t p = {tc, "late", MQ_OK, 2};
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    /* It grows: the data watch invalidates the entry. */
    late.queues = 6;
    CU_ASSERT_EQUAL(br_topic_update(other, T_ROOT "/cache", &late), MQ_OK);
    p.queues = 6;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    /* Deleted behind its back. */
    CU_ASSERT_EQUAL(zk_delete(other, T_ROOT "/cache/topics/late/queues", -1), MQ_OK);
    CU_ASSERT_EQUAL(zk_delete(other, T_ROOT "/cache/topics/late", -1), MQ_OK);
    p.want = MQ_ENOTFOUND;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));

    /* Many misses for names that do not exist stay bounded and correct. */
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ghost%d", i);
        CU_ASSERT_EQUAL(br_topics_get(tc, name, &t), MQ_ENOTFOUND);
    }
    /* A session expiry loses the watches; the cache still follows. */
    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    br_topic_t after = t_topic("after", 3, BR_MSG_TYPE_FIFO);
    CU_ASSERT_EQUAL(br_topic_create(other, T_ROOT "/cache", &after), MQ_OK);
    t_probe_t pa = {tc, "after", MQ_OK, 3};
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &pa, T_WAIT_MS));
    br_topics_free(tc);
    zk_client_free(other);
    zk_client_free(zk);
}

typedef struct t_racer {
    br_topics_t *tc;
    int index;
    mq_err_t err;
    br_topic_t got;
} t_racer_t;

static pthread_barrier_t t_barrier;

static void *t_race_main(void *arg)
{
    t_racer_t *r = arg;
    br_topic_t want = t_topic("raced", 4 + r->index, BR_MSG_TYPE_NORMAL);
    want.ctime_ms = 1000 + (uint64_t)r->index;
    pthread_barrier_wait(&t_barrier);
    r->err = br_topics_ensure(r->tc, &want, &r->got);
    return NULL;
}

static void test_ensure_race(void)
{
    enum { CLIENTS = 2, THREADS = 6 };
    zk_client_t *zk[CLIENTS];
    br_topics_t *tc[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        zk[i] = t_client();
        CU_ASSERT_EQUAL_FATAL(br_topics_new(zk[i], T_ROOT "/race", &tc[i]), MQ_OK);
    }
    /* Remembered absent first, so that the race also crosses a negative. */
    br_topic_t t;
    CU_ASSERT_EQUAL(br_topics_get(tc[0], "raced", &t), MQ_ENOTFOUND);

    pthread_barrier_init(&t_barrier, NULL, THREADS);
    pthread_t th[THREADS];
    t_racer_t r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].tc = tc[i % CLIENTS];
        r[i].index = i;
        r[i].err = MQ_EINVAL;
        pthread_create(&th[i], NULL, t_race_main, &r[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&t_barrier);
    /* Everybody got the one record that won. */
    br_topic_t stored;
    CU_ASSERT_EQUAL_FATAL(br_topic_read(zk[0], T_ROOT "/race", "raced", &stored), MQ_OK);
    for (int i = 0; i < THREADS; i++) {
        CU_ASSERT_EQUAL(r[i].err, MQ_OK);
        CU_ASSERT_EQUAL(memcmp(&r[i].got, &stored, sizeof(stored)), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        CU_ASSERT_EQUAL(br_topics_get(tc[i], "raced", &t), MQ_OK);
        CU_ASSERT_EQUAL(memcmp(&t, &stored, sizeof(t)), 0);
        br_topics_free(tc[i]);
        zk_client_free(zk[i]);
    }
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"name_rule", test_name_rule},
        {"msg_types", test_msg_types},
        {"record_round_trip", test_record_round_trip},
        {"record_corrupt", test_record_corrupt},
        {"cluster_records", test_cluster_records},
        {"create_read_update_list", test_create_read_update_list},
        {"cache_follows", test_cache_follows},
        {"ensure_race", test_ensure_race},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("br_topic", tests, t_init, t_cleanup);
}
