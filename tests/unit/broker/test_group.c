/*
 * br_group: the name rule, defaults, max attempts and back-off values, and,
 * against a real ZooKeeper, create / read / update / list, values and names
 * refused, corrupt records (garbage, flipped bits, well sealed but wrong
 * inside, another group's record) read as MQ_ECORRUPT and repaired by an
 * update, the watched cache following changes made by another client, and
 * br_groups_ensure (defaults, an existing record kept, a race of threads on
 * two clients).
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_rec.h"
#include "br_group.h"
#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"

#define T_ROOT "/t_group"
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

static br_group_t t_group(const char *name, int retries, bool fifo)
{
    br_group_t g;
    br_group_default(name, &g);
    g.retry_max_times = retries;
    g.fifo = fifo;
    g.ctime_ms = 1700000000123ull;
    return g;
}

static bool t_same(const br_group_t *a, const br_group_t *b)
{
    return strcmp(a->name, b->name) == 0 && a->retry_max_times == b->retry_max_times &&
           a->fifo == b->fifo && a->retry_initial_ms == b->retry_initial_ms &&
           a->retry_max_ms == b->retry_max_ms && a->retry_multiplier == b->retry_multiplier &&
           a->ctime_ms == b->ctime_ms;
}

/* --- pure ---------------------------------------------------------------- */

static void test_name_rule(void)
{
    char name[300];
    memset(name, 'g', sizeof(name));
    name[BR_GROUP_NAME_MAX] = '\0';
    CU_ASSERT_TRUE(br_group_name_valid(name));
    name[BR_GROUP_NAME_MAX] = 'g';
    name[BR_GROUP_NAME_MAX + 1] = '\0';
    CU_ASSERT_FALSE(br_group_name_valid(name));
    CU_ASSERT_TRUE(br_group_name_valid("g"));
    CU_ASSERT_TRUE(br_group_name_valid("%SYS%g|1_-Z9"));
    CU_ASSERT_FALSE(br_group_name_valid(""));
    CU_ASSERT_FALSE(br_group_name_valid(NULL));
    static const char *const bad[] = {"a b", "a/b", "a.b", "a*", "a\nb", "\xc3\xa9", "a:b", "a=b"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_FALSE(br_group_name_valid(bad[i]));
    }
}

static void test_defaults_and_backoff(void)
{
    br_group_t g;
    br_group_default("cg", &g);
    CU_ASSERT_STRING_EQUAL(g.name, "cg");
    CU_ASSERT_EQUAL(g.retry_max_times, BR_GROUP_DEF_RETRY_MAX);
    CU_ASSERT_FALSE(g.fifo);
    CU_ASSERT_EQUAL(g.retry_initial_ms, 1000);
    CU_ASSERT_EQUAL(g.retry_max_ms, 7200000);
    CU_ASSERT_EQUAL(g.retry_multiplier, 2.0);
    CU_ASSERT_EQUAL(g.ctime_ms, 0);
    /* RocketMQ advertises retryMaxTimes + 1 = 17 attempts by default. */
    CU_ASSERT_EQUAL(br_group_max_attempts(&g), 17);
    g.retry_max_times = 0;
    CU_ASSERT_EQUAL(br_group_max_attempts(&g), 1);
    g.retry_max_times = BR_GROUP_MAX_RETRY;
    CU_ASSERT_EQUAL(br_group_max_attempts(&g), BR_GROUP_MAX_RETRY + 1);

    br_group_default("cg", &g);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 1), 1000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 2), 2000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 3), 4000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 13), 4096000);
    /* 8192000 would pass the cap. */
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 14), 7200000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 1000), 7200000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, INT_MAX), 7200000);
    /* Before the first delivery there is nothing to back off from. */
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 0), 1000);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, -5), 1000);
    g.retry_multiplier = 1.0;
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, INT_MAX), 1000);
    g.retry_multiplier = 1.5;
    g.retry_initial_ms = 100;
    g.retry_max_ms = 1000;
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 3), 225);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 6), 759);
    CU_ASSERT_EQUAL(br_group_backoff_ms(&g, 7), 1000);
}

/* --- ZooKeeper ------------------------------------------------------------- */

/* Sets <T_ROOT>/groups/<name> to a record sealed around body. */
static void t_put_sealed(zk_client_t *zk, const char *name, const char *body)
{
    br_rec_buf_t b;
    br_rec_begin(&b, "group");
    br_rec_add(&b, body, strlen(body));
    size_t len;
    char *rec = br_rec_finish(&b, &len);
    char path[256];
    snprintf(path, sizeof(path), T_ROOT "/groups/%s", name);
    CU_ASSERT_EQUAL(zk_set(zk, path, rec, len, -1, NULL), MQ_OK);
    free(rec);
}

static void test_create_read_update_list(void)
{
    zk_client_t *zk = t_client();
    br_group_t g = t_group("crud", 3, true);
    g.retry_initial_ms = 250;
    g.retry_max_ms = 60000;
    g.retry_multiplier = 1.5;
    br_group_t got;
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "crud", &got), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &g), MQ_OK);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &g), MQ_EEXIST);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "crud", &got), MQ_OK);
    CU_ASSERT_TRUE(t_same(&g, &got));

    g.retry_max_times = 0;
    g.fifo = false;
    g.retry_multiplier = 3;
    CU_ASSERT_EQUAL(br_group_update(zk, T_ROOT, &g), MQ_OK);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "crud", &got), MQ_OK);
    CU_ASSERT_TRUE(t_same(&g, &got));
    br_group_t missing = t_group("nope", 1, false);
    CU_ASSERT_EQUAL(br_group_update(zk, T_ROOT, &missing), MQ_ENOTFOUND);

    /* Bad names and values. */
    br_group_t bad = t_group("a b", 1, false);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &bad), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_group_update(zk, T_ROOT, &bad), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "a b", &got), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "", &got), MQ_EINVAL);
    char longname[300];
    memset(longname, 'x', sizeof(longname));
    longname[BR_GROUP_NAME_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, longname, &got), MQ_EINVAL);
    br_group_t v[6];
    for (size_t i = 0; i < MQ_ARRAY_LEN(v); i++) {
        v[i] = t_group("vals", 1, false);
    }
    v[0].retry_max_times = BR_GROUP_MAX_RETRY + 1;
    v[1].retry_max_times = -1;
    v[2].retry_multiplier = 0.5;
    v[3].retry_initial_ms = 0;
    v[4].retry_initial_ms = v[4].retry_max_ms + 1;
    v[5].retry_max_ms = 604800001u;
    v[5].retry_initial_ms = 1;
    for (size_t i = 0; i < MQ_ARRAY_LEN(v); i++) {
        CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &v[i]), MQ_EINVAL);
    }
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "vals", &got), MQ_ENOTFOUND);

    /* Corrupt records read as MQ_ECORRUPT; an update repairs them. */
    br_group_t c = t_group("broken", 2, false);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &c), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, T_ROOT "/groups/broken", "retryMaxTimes=2\n", 16, -1, NULL), MQ_OK);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "broken", &got), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_group_update(zk, T_ROOT, &c), MQ_OK);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "broken", &got), MQ_OK);
    CU_ASSERT_TRUE(t_same(&c, &got));
    /* Flipped bits, one in every few bytes of a good record. */
    char *rec = NULL;
    size_t rlen = 0;
    CU_ASSERT_EQUAL_FATAL(zk_get(zk, T_ROOT "/groups/broken", &rec, &rlen, NULL), MQ_OK);
    for (size_t i = 0; i < rlen; i += 5) {
        rec[i] ^= (char)(1 << (i % 8));
        CU_ASSERT_EQUAL(zk_set(zk, T_ROOT "/groups/broken", rec, rlen, -1, NULL), MQ_OK);
        mq_err_t err = br_group_read(zk, T_ROOT, "broken", &got);
        if (err != MQ_ECORRUPT) {
            fprintf(stderr, "\n  bit flip at %zu: err=%d\n", i, (int)err);
        }
        CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
        rec[i] ^= (char)(1 << (i % 8));
    }
    /* Truncated. */
    CU_ASSERT_EQUAL(zk_set(zk, T_ROOT "/groups/broken", rec, rlen - 1, -1, NULL), MQ_OK);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "broken", &got), MQ_ECORRUPT);
    free(rec);
    /* Well sealed but wrong inside. */
    static const char *const S = "retryPolicy=EXPONENTIAL\nretryInitialMs=1000\n"
                                 "retryMaxMs=7200000\nretryMultiplier=2\nctime=1\n";
    static const struct {
        const char *what;
        const char *head;
        const char *tail;
    } cases[] = {
        {"good", "name=broken\nretryMaxTimes=2\nconsumeMessageOrderly=1\n", NULL},
        {"retries 1001", "name=broken\nretryMaxTimes=1001\nconsumeMessageOrderly=0\n", NULL},
        {"orderly 2", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=2\n", NULL},
        {"missing key", "name=broken\nretryMaxTimes=1\n", NULL},
        {"repeated key", "name=broken\nretryMaxTimes=1\nretryMaxTimes=1\nconsumeMessageOrderly=0\n",
         NULL},
        {"unknown key", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=0\nx=1\n", NULL},
        {"other group", "name=other\nretryMaxTimes=1\nconsumeMessageOrderly=0\n", NULL},
        {"bad name", "name=a.b\nretryMaxTimes=1\nconsumeMessageOrderly=0\n", NULL},
        {"policy", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=0\n",
         "retryPolicy=CUSTOMIZED\nretryInitialMs=1000\nretryMaxMs=7200000\nretryMultiplier=2\n"
         "ctime=1\n"},
        {"initial > max", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=0\n",
         "retryPolicy=EXPONENTIAL\nretryInitialMs=2000\nretryMaxMs=1000\nretryMultiplier=2\n"
         "ctime=1\n"},
        {"multiplier < 1", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=0\n",
         "retryPolicy=EXPONENTIAL\nretryInitialMs=1000\nretryMaxMs=7200000\n"
         "retryMultiplier=0.5\nctime=1\n"},
        {"multiplier nan", "name=broken\nretryMaxTimes=1\nconsumeMessageOrderly=0\n",
         "retryPolicy=EXPONENTIAL\nretryInitialMs=1000\nretryMaxMs=7200000\n"
         "retryMultiplier=nan\nctime=1\n"},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        char body[512];
        snprintf(body, sizeof(body), "%s%s", cases[i].head, cases[i].tail ? cases[i].tail : S);
        t_put_sealed(zk, "broken", body);
        mq_err_t want = i == 0 ? MQ_OK : MQ_ECORRUPT;
        mq_err_t err = br_group_read(zk, T_ROOT, "broken", &got);
        if (err != want) {
            fprintf(stderr, "\n  %s: err=%d\n", cases[i].what, (int)err);
        }
        CU_ASSERT_EQUAL(err, want);
    }
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "broken", &got), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_group_update(zk, T_ROOT, &c), MQ_OK);
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT, "broken", &got), MQ_OK);

    br_group_t z = t_group("%SYS%g", 1, false);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT, &z), MQ_OK);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(br_group_list(zk, T_ROOT, &names, &n), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(names[0], "%SYS%g");
    CU_ASSERT_STRING_EQUAL(names[1], "broken");
    CU_ASSERT_STRING_EQUAL(names[2], "crud");
    zk_strings_free(names, n);
    /* No groups directory at all: an empty list. */
    CU_ASSERT_EQUAL(br_group_list(zk, "/t_group_none", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    zk_strings_free(names, n);
    zk_client_free(zk);
}

typedef struct t_probe {
    br_groups_t *gc;
    const char *name;
    mq_err_t want;
    int retries; /* with MQ_OK: the value to see */
} t_probe_t;

static bool t_cache_says(void *arg)
{
    t_probe_t *p = arg;
    br_group_t g;
    mq_err_t err = br_groups_get(p->gc, p->name, &g);
    return err == p->want && (err != MQ_OK || g.retry_max_times == p->retries);
}

static void test_cache_follows(void)
{
    zk_client_t *zk = t_client();
    zk_client_t *other = t_client();
    br_groups_t *gc;
    CU_ASSERT_EQUAL_FATAL(br_groups_new(zk, T_ROOT "/cache", &gc), MQ_OK);
    br_group_t g;
    CU_ASSERT_EQUAL(br_groups_get(gc, "late", &g), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(br_groups_get(gc, "late", &g), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(br_groups_get(gc, "bad name", &g), MQ_EINVAL);

    /* Another broker creates it: the children watch ends the negative. */
    br_group_t late = t_group("late", 5, false);
    CU_ASSERT_EQUAL(br_group_create(other, T_ROOT "/cache", &late), MQ_OK);
    t_probe_t p = {gc, "late", MQ_OK, 5};
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    CU_ASSERT_EQUAL(br_groups_get(gc, "late", &g), MQ_OK);
    CU_ASSERT_TRUE(t_same(&g, &late));
    /* Changed: the data watch invalidates the entry. */
    late.retry_max_times = 9;
    late.fifo = true;
    CU_ASSERT_EQUAL(br_group_update(other, T_ROOT "/cache", &late), MQ_OK);
    p.retries = 9;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    CU_ASSERT_EQUAL(br_groups_get(gc, "late", &g), MQ_OK);
    CU_ASSERT_TRUE(g.fifo);
    /* Broken behind its back, then repaired. */
    CU_ASSERT_EQUAL(zk_set(other, T_ROOT "/cache/groups/late", "x", 1, -1, NULL), MQ_OK);
    p.want = MQ_ECORRUPT;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    late.retry_max_times = 11;
    CU_ASSERT_EQUAL(br_group_update(other, T_ROOT "/cache", &late), MQ_OK);
    p.want = MQ_OK;
    p.retries = 11;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));
    /* Deleted. */
    CU_ASSERT_EQUAL(zk_delete(other, T_ROOT "/cache/groups/late", -1), MQ_OK);
    p.want = MQ_ENOTFOUND;
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &p, T_WAIT_MS));

    /* Many misses stay bounded and correct. */
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ghost%d", i);
        CU_ASSERT_EQUAL(br_groups_get(gc, name, &g), MQ_ENOTFOUND);
    }
    /* A session expiry loses the watches; the cache still follows. */
    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    br_group_t after = t_group("after", 3, true);
    CU_ASSERT_EQUAL(br_group_create(other, T_ROOT "/cache", &after), MQ_OK);
    t_probe_t pa = {gc, "after", MQ_OK, 3};
    CU_ASSERT_TRUE(mq_test_wait(t_cache_says, &pa, T_WAIT_MS));
    br_groups_free(gc);
    zk_client_free(other);
    zk_client_free(zk);
}

static void test_ensure(void)
{
    zk_client_t *zk = t_client();
    br_groups_t *gc;
    CU_ASSERT_EQUAL_FATAL(br_groups_new(zk, T_ROOT "/ensure", &gc), MQ_OK);
    br_group_t g;
    CU_ASSERT_EQUAL(br_groups_get(gc, "fresh", &g), MQ_ENOTFOUND);
    uint64_t before = mq_wall_ms();
    CU_ASSERT_EQUAL_FATAL(br_groups_ensure(gc, "fresh", &g), MQ_OK);
    br_group_t def;
    br_group_default("fresh", &def);
    def.ctime_ms = g.ctime_ms;
    CU_ASSERT_TRUE(t_same(&g, &def));
    CU_ASSERT(g.ctime_ms >= before && g.ctime_ms <= mq_wall_ms());
    br_group_t stored;
    CU_ASSERT_EQUAL(br_group_read(zk, T_ROOT "/ensure", "fresh", &stored), MQ_OK);
    CU_ASSERT_TRUE(t_same(&g, &stored));
    CU_ASSERT_EQUAL(br_groups_get(gc, "fresh", &g), MQ_OK);

    /* An existing group keeps its settings. */
    br_group_t mine = t_group("mine", 2, true);
    CU_ASSERT_EQUAL(br_group_create(zk, T_ROOT "/ensure", &mine), MQ_OK);
    CU_ASSERT_EQUAL(br_groups_ensure(gc, "mine", &g), MQ_OK);
    CU_ASSERT_TRUE(t_same(&g, &mine));
    CU_ASSERT_EQUAL(br_groups_ensure(gc, "no good", &g), MQ_EINVAL);
    br_groups_free(gc);
    zk_client_free(zk);
}

typedef struct t_racer {
    br_groups_t *gc;
    mq_err_t err;
    br_group_t got;
} t_racer_t;

static pthread_barrier_t t_barrier;

static void *t_race_main(void *arg)
{
    t_racer_t *r = arg;
    pthread_barrier_wait(&t_barrier);
    r->err = br_groups_ensure(r->gc, "raced", &r->got);
    return NULL;
}

static void test_ensure_race(void)
{
    enum { CLIENTS = 2, THREADS = 6 };
    zk_client_t *zk[CLIENTS];
    br_groups_t *gc[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        zk[i] = t_client();
        CU_ASSERT_EQUAL_FATAL(br_groups_new(zk[i], T_ROOT "/race", &gc[i]), MQ_OK);
    }
    br_group_t g;
    CU_ASSERT_EQUAL(br_groups_get(gc[0], "raced", &g), MQ_ENOTFOUND);
    pthread_barrier_init(&t_barrier, NULL, THREADS);
    pthread_t th[THREADS];
    t_racer_t r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].gc = gc[i % CLIENTS];
        r[i].err = MQ_EINVAL;
        pthread_create(&th[i], NULL, t_race_main, &r[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&t_barrier);
    /* Everybody got the one record that won (its ctime tells which). */
    br_group_t stored;
    CU_ASSERT_EQUAL_FATAL(br_group_read(zk[0], T_ROOT "/race", "raced", &stored), MQ_OK);
    for (int i = 0; i < THREADS; i++) {
        CU_ASSERT_EQUAL(r[i].err, MQ_OK);
        CU_ASSERT_TRUE(t_same(&r[i].got, &stored));
    }
    for (int i = 0; i < CLIENTS; i++) {
        CU_ASSERT_EQUAL(br_groups_get(gc[i], "raced", &g), MQ_OK);
        CU_ASSERT_TRUE(t_same(&g, &stored));
        br_groups_free(gc[i]);
        zk_client_free(zk[i]);
    }
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"name_rule", test_name_rule},
        {"defaults_and_backoff", test_defaults_and_backoff},
        {"create_read_update_list", test_create_read_update_list},
        {"cache_follows", test_cache_follows},
        {"ensure", test_ensure},
        {"ensure_race", test_ensure_race},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("br_group", tests, t_init, t_cleanup);
}
