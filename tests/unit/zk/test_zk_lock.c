/*
 * zk_lock against a real ZooKeeper: three contenders, exactly one holds and
 * the lock passes on in order when the holder frees it; zk_lock_holder
 * reports the holder's data; a holder whose session expires is told it lost
 * the lock, another takes over, and it contends again on its new session;
 * zk_lock_free ends all callbacks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"
#include "zk_lock.h"

#define T_SESSION_MS 2000
#define T_WAIT_MS 15000

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
    zk_client_opts_t o = {T_SESSION_MS, 10000, NULL};
    zk_client_t *zk = NULL;
    CU_ASSERT_EQUAL_FATAL(zk_client_new(t_hostport, &o, &zk), MQ_OK);
    return zk;
}

static bool t_on_event_thread(void)
{
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strncmp(name, "zk-ev", 5) == 0;
}

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct t_contender {
    zk_client_t *zk;
    zk_lock_t *lock;
    char name[16];
    int acquired; /* callbacks with held=true */
    int released; /* callbacks with held=false */
    bool held;
    bool freed;
    bool after_free;
    bool wrong_thread;
} t_contender_t;

static void t_lock_cb(zk_lock_t *lock, bool held, void *arg)
{
    t_contender_t *c = arg;
    pthread_mutex_lock(&t_mu);
    if (c->freed) {
        c->after_free = true;
    }
    if (held) {
        c->acquired++;
    } else {
        c->released++;
    }
    c->held = held;
    c->wrong_thread |= !t_on_event_thread();
    c->wrong_thread |= zk_lock_held(lock) != held;
    pthread_mutex_unlock(&t_mu);
}

static bool t_holds(void *arg)
{
    t_contender_t *c = arg;
    pthread_mutex_lock(&t_mu);
    bool h = c->held;
    pthread_mutex_unlock(&t_mu);
    return h;
}

static bool t_released(void *arg)
{
    t_contender_t *c = arg;
    pthread_mutex_lock(&t_mu);
    bool r = c->released > 0 && !c->held;
    pthread_mutex_unlock(&t_mu);
    return r;
}

static void t_start(t_contender_t *c, const char *dir)
{
    CU_ASSERT_EQUAL_FATAL(zk_lock_new(c->zk, dir, c->name, strlen(c->name), t_lock_cb, c, &c->lock),
                          MQ_OK);
}

static void t_stop(t_contender_t *c)
{
    zk_lock_free(c->lock);
    pthread_mutex_lock(&t_mu);
    c->freed = true;
    pthread_mutex_unlock(&t_mu);
    c->lock = NULL;
}

typedef struct t_count {
    zk_client_t *zk;
    const char *dir;
    size_t want;
} t_count_t;

static bool t_has_nodes(void *arg)
{
    t_count_t *tc = arg;
    char **names;
    size_t n;
    if (zk_children(tc->zk, tc->dir, &names, &n) != MQ_OK) {
        return false;
    }
    zk_strings_free(names, n);
    return n == tc->want;
}

static bool t_holder_is(zk_client_t *zk, const char *dir, const char *want)
{
    char *data = NULL;
    size_t len = 0;
    if (zk_lock_holder(zk, dir, &data, &len) != MQ_OK) {
        return false;
    }
    bool same = len == strlen(want) && strcmp(data, want) == 0;
    free(data);
    return same;
}

static int t_holding(t_contender_t *c, int n)
{
    int holders = 0;
    for (int i = 0; i < n; i++) {
        holders += zk_lock_held(c[i].lock) ? 1 : 0;
    }
    return holders;
}

static void test_three_contenders(void)
{
    static const char *dir = "/t_lock/three";
    t_contender_t c[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        c[i].zk = t_client();
        snprintf(c[i].name, sizeof(c[i].name), "c%d", i);
    }
    char *data = NULL;
    CU_ASSERT_EQUAL(zk_lock_holder(c[0].zk, dir, &data, NULL), MQ_ENOTFOUND);

    /* Start them one after the other so that their order is known. */
    t_start(&c[0], dir);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &c[0], T_WAIT_MS));
    t_count_t two = {c[0].zk, dir, 2};
    t_start(&c[1], dir);
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));
    t_count_t three = {c[0].zk, dir, 3};
    t_start(&c[2], dir);
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &three, T_WAIT_MS));

    CU_ASSERT_EQUAL(t_holding(c, 3), 1);
    CU_ASSERT_TRUE(zk_lock_held(c[0].lock));
    CU_ASSERT_TRUE(t_holder_is(c[2].zk, dir, "c0"));

    /* Freeing the holder passes the lock to the next in line only. */
    t_stop(&c[0]);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &c[1], T_WAIT_MS));
    CU_ASSERT_FALSE(zk_lock_held(c[2].lock));
    CU_ASSERT_TRUE(t_holder_is(c[2].zk, dir, "c1"));
    t_stop(&c[1]);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &c[2], T_WAIT_MS));
    CU_ASSERT_TRUE(t_holder_is(c[2].zk, dir, "c2"));
    t_stop(&c[2]);
    CU_ASSERT_EQUAL(zk_lock_holder(c[0].zk, dir, &data, NULL), MQ_ENOTFOUND);

    pthread_mutex_lock(&t_mu);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(c[i].acquired, 1);
        CU_ASSERT_EQUAL(c[i].released, 0);
        CU_ASSERT_FALSE(c[i].wrong_thread);
        CU_ASSERT_FALSE(c[i].after_free);
    }
    pthread_mutex_unlock(&t_mu);
    for (int i = 0; i < 3; i++) {
        zk_client_free(c[i].zk);
    }
}

static void test_holder_expires(void)
{
    static const char *dir = "/t_lock/expiry";
    t_contender_t a = {.name = "a"};
    t_contender_t b = {.name = "b"};
    a.zk = t_client();
    b.zk = t_client();
    t_start(&a, dir);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &a, T_WAIT_MS));
    t_count_t two = {b.zk, dir, 2};
    t_start(&b, dir);
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));
    CU_ASSERT_FALSE(zk_lock_held(b.lock));

    /* The holder's session expires: it is told, the other takes over. */
    int64_t old = zk_client_session_id(a.zk);
    CU_ASSERT_EQUAL(zk_client_test_expire(a.zk), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_released, &a, T_WAIT_MS));
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &b, T_WAIT_MS));
    CU_ASSERT_TRUE(t_holder_is(b.zk, dir, "b"));

    /* The expired one contends again on its new session, behind b. */
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));
    CU_ASSERT_NOT_EQUAL(zk_client_session_id(a.zk), old);
    CU_ASSERT_FALSE(zk_lock_held(a.lock));
    t_stop(&b);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &a, T_WAIT_MS));
    CU_ASSERT_TRUE(t_holder_is(a.zk, dir, "a"));
    pthread_mutex_lock(&t_mu);
    /* >= : during test_expire the old connection may win the session back
     * for an instant, and a is then rightly lowest again. */
    CU_ASSERT_TRUE(a.acquired >= 2);
    CU_ASSERT_FALSE(a.wrong_thread || b.wrong_thread || b.after_free);
    pthread_mutex_unlock(&t_mu);
    t_stop(&a);
    zk_client_free(a.zk);
    zk_client_free(b.zk);
}

/* test_zk_support.c */
typedef struct t_proxy t_proxy_t;
t_proxy_t *t_proxy_start(const char *target);
const char *t_proxy_addr(t_proxy_t *p);
void t_proxy_cmd(t_proxy_t *p, char cmd);
void t_proxy_stop(t_proxy_t *p);

typedef struct t_times {
    t_contender_t *c;
    int acquired;
    int released;
} t_times_t;

static bool t_told(void *arg)
{
    t_times_t *t = arg;
    pthread_mutex_lock(&t_mu);
    bool ok = t->c->acquired >= t->acquired && t->c->released >= t->released;
    pthread_mutex_unlock(&t_mu);
    return ok;
}

static void test_holder_disconnected(void)
{
    static const char *dir = "/t_lock/partition";
    t_proxy_t *p = t_proxy_start(t_hostport);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    zk_client_opts_t o = {T_SESSION_MS, 10000, NULL};
    t_contender_t a = {.name = "a"};
    t_contender_t b = {.name = "b"};
    CU_ASSERT_EQUAL_FATAL(zk_client_new(t_proxy_addr(p), &o, &a.zk), MQ_OK);
    b.zk = t_client();
    t_start(&a, dir);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &a, T_WAIT_MS));
    t_count_t two = {b.zk, dir, 2};
    t_start(&b, dir);
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));

    /* A short cut: a cannot be sure while disconnected, and is told so;
     * after the reconnect it holds again. b never does. */
    t_proxy_cmd(p, 'c');
    t_times_t again = {&a, 2, 1};
    CU_ASSERT_TRUE(mq_test_wait(t_told, &again, T_WAIT_MS));
    CU_ASSERT_TRUE(zk_lock_held(a.lock));
    CU_ASSERT_FALSE(zk_lock_held(b.lock));

    /* A partition longer than the session: the server expires a's session
     * and b takes over; a contends again once it is back. */
    t_proxy_cmd(p, 'r');
    t_times_t lost = {&a, 2, 2};
    CU_ASSERT_TRUE(mq_test_wait(t_told, &lost, T_WAIT_MS));
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &b, T_WAIT_MS));
    t_proxy_cmd(p, 'a');
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));
    CU_ASSERT_FALSE(zk_lock_held(a.lock));
    t_stop(&b);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &a, T_WAIT_MS));
    pthread_mutex_lock(&t_mu);
    CU_ASSERT_EQUAL(b.acquired, 1);
    CU_ASSERT_FALSE(a.wrong_thread || b.wrong_thread);
    pthread_mutex_unlock(&t_mu);
    t_stop(&a);
    zk_client_free(a.zk);
    zk_client_free(b.zk);
    t_proxy_stop(p);
}

static void test_free_ends_callbacks(void)
{
    static const char *dir = "/t_lock/churn";
    zk_client_t *zk = t_client();
    zk_client_t *other = t_client();
    t_contender_t c[20] = {{0}};
    /* Locks freed right after they start, some before their first step,
     * some after holding: no callback may come after zk_lock_free. */
    for (int i = 0; i < 20; i++) {
        c[i].zk = (i % 2) ? zk : other;
        snprintf(c[i].name, sizeof(c[i].name), "x%d", i);
        t_start(&c[i], dir);
        if (i % 3 == 0) {
            CU_ASSERT_TRUE(mq_test_wait(t_holds, &c[i], T_WAIT_MS));
        }
        t_stop(&c[i]);
    }
    /* Events are delivered in order: once this one holds, anything queued
     * for the freed ones has been dropped already. */
    t_contender_t last = {.zk = zk, .name = "last"};
    t_start(&last, dir);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &last, T_WAIT_MS));
    t_contender_t last2 = {.zk = other, .name = "last2"};
    t_start(&last2, dir);
    t_count_t two = {zk, dir, 2};
    CU_ASSERT_TRUE(mq_test_wait(t_has_nodes, &two, T_WAIT_MS));
    pthread_mutex_lock(&t_mu);
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_FALSE(c[i].after_free);
    }
    pthread_mutex_unlock(&t_mu);
    /* Freeing the client with a lock still contending is fine as well. */
    t_stop(&last);
    zk_client_free(zk);
    CU_ASSERT_TRUE(mq_test_wait(t_holds, &last2, T_WAIT_MS));
    t_stop(&last2);
    zk_client_free(other);
}

static void test_bad_arguments(void)
{
    zk_client_t *zk = t_client();
    zk_lock_t *lock = NULL;
    CU_ASSERT_EQUAL(zk_lock_new(zk, "relative", NULL, 0, t_lock_cb, NULL, &lock), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_lock_new(zk, "/t_lock/x/", NULL, 0, t_lock_cb, NULL, &lock), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_lock_new(zk, "/t_lock/x", NULL, 0, NULL, NULL, &lock), MQ_EINVAL);
    CU_ASSERT_PTR_NULL(lock);
    char *data;
    CU_ASSERT_EQUAL(zk_lock_holder(zk, "/t_lock/none", &data, NULL), MQ_ENOTFOUND);
    zk_client_free(zk);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"three contenders, in order", test_three_contenders},
        {"holder's session expires", test_holder_expires},
        {"holder disconnected, then partitioned", test_holder_disconnected},
        {"no callback after zk_lock_free", test_free_ends_callbacks},
        {"bad arguments", test_bad_arguments},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("zk_lock", tests, t_init, t_cleanup);
}
