/*
 * zk_client against a real ZooKeeper (tickTime 250 ms, sessions of 2 s):
 * CRUD and compare-and-set, parents, sequential names, sorted children,
 * atomic multi, one-shot watches, async completions on the event thread,
 * blocking calls from callbacks, session expiry (EXPIRED then NEW, ephemerals
 * back with their latest data, watches reported LOST), ephemerals of a
 * previous incarnation, chroot, closing with calls in flight, and connecting
 * to a port where nothing listens.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"

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

static zk_client_t *t_client_chroot(const char *chroot)
{
    zk_client_opts_t o = {T_SESSION_MS, 10000, chroot};
    zk_client_t *zk = NULL;
    mq_err_t err = zk_client_new(t_hostport, &o, &zk);
    CU_ASSERT_EQUAL_FATAL(err, MQ_OK);
    return zk;
}

static zk_client_t *t_client(void)
{
    return t_client_chroot(NULL);
}

static bool t_on_event_thread(void)
{
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strncmp(name, "zk-ev", 5) == 0;
}

/* Reads a node and compares its data with want. */
static bool t_data_is(zk_client_t *zk, const char *path, const char *want)
{
    char *data = NULL;
    size_t len = 0;
    if (zk_get(zk, path, &data, &len, NULL) != MQ_OK) {
        return false;
    }
    bool same = len == strlen(want) && strcmp(data, want) == 0;
    free(data);
    return same;
}

/* --- recorders shared by the callbacks ----------------------------------- */

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static int t_seq; /* global order of recorded events, under t_mu */

typedef struct t_watch {
    int count;
    zk_watch_event_t event;
    char path[128];
    bool wrong_thread;
    int seq; /* t_seq when it fired */
} t_watch_t;

static void t_watch_cb(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    t_watch_t *w = arg;
    pthread_mutex_lock(&t_mu);
    w->count++;
    w->event = event;
    snprintf(w->path, sizeof(w->path), "%s", path);
    w->wrong_thread |= !t_on_event_thread();
    w->seq = ++t_seq;
    pthread_mutex_unlock(&t_mu);
}

static int t_watch_count(t_watch_t *w)
{
    pthread_mutex_lock(&t_mu);
    int n = w->count;
    pthread_mutex_unlock(&t_mu);
    return n;
}

static bool t_watch_fired(void *arg)
{
    return t_watch_count(arg) > 0;
}

/* --- CRUD -------------------------------------------------------------- */

static void test_crud_and_cas(void)
{
    zk_client_t *zk = t_client();
    zk_stat_t st;
    CU_ASSERT_EQUAL(zk_create(zk, "/t_crud", "v1", 2, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_crud", "zz", 2, ZK_PERSISTENT, NULL, 0), MQ_EEXIST);

    char *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(zk_get(zk, "/t_crud", &data, &len, &st), MQ_OK);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_STRING_EQUAL(data, "v1");
    CU_ASSERT_EQUAL(st.version, 0);
    CU_ASSERT_EQUAL(st.data_length, 2);
    CU_ASSERT_EQUAL(st.ephemeral_owner, 0);
    free(data);

    CU_ASSERT_EQUAL(zk_set(zk, "/t_crud", "v2", 2, 0, &st), MQ_OK);
    CU_ASSERT_EQUAL(st.version, 1);
    /* A stale version loses and changes nothing. */
    CU_ASSERT_EQUAL(zk_set(zk, "/t_crud", "v3", 2, 0, &st), MQ_EBADVERSION);
    CU_ASSERT_EQUAL(zk_get(zk, "/t_crud", NULL, NULL, &st), MQ_OK);
    CU_ASSERT_EQUAL(st.version, 1);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_crud", "v2"));
    CU_ASSERT_EQUAL(zk_set(zk, "/t_crud", "v3", 2, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_crud", "v3"));

    CU_ASSERT_EQUAL(zk_create(zk, "/t_crud/c", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_crud", -1), MQ_ENOTEMPTY);
    CU_ASSERT_EQUAL(zk_get(zk, "/t_crud/c", &data, &len, NULL), MQ_OK);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_STRING_EQUAL(data, "");
    free(data);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_crud/c", -1), MQ_OK);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_crud", 1), MQ_EBADVERSION);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_crud", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.num_children, 0);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_crud", st.version), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_crud", NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_get(zk, "/t_crud", &data, &len, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_set(zk, "/t_crud", "x", 1, -1, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_crud", -1), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_nope/child", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_ENOTFOUND);

    /* Bad arguments never reach the server. */
    CU_ASSERT_EQUAL(zk_get(zk, "relative", NULL, NULL, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_get(zk, NULL, NULL, NULL, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_get(zk, "/a//b", NULL, NULL, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_get_w(zk, "/x", NULL, NULL, NULL, NULL, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_create(zk, "/x", NULL, 0, 8, NULL, 0), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_create(zk, "/x", NULL, 3, 0, NULL, 0), MQ_EINVAL);
    zk_client_free(zk);
}

static void test_create_parents(void)
{
    zk_client_t *zk = t_client();
    char created[64];
    CU_ASSERT_EQUAL(
        zk_create_parents(zk, "/t_par/a/b/c", "leaf", 4, ZK_PERSISTENT, created, sizeof(created)),
        MQ_OK);
    CU_ASSERT_STRING_EQUAL(created, "/t_par/a/b/c");
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/a/b/c", "leaf"));
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/a/b", ""));
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_par/a/b/c", "x", 1, ZK_PERSISTENT, NULL, 0),
                    MQ_EEXIST);
    /* Parents that exist already are fine; the leaf may be ephemeral. */
    zk_stat_t st;
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_par/a/e/f", "eph", 3, ZK_EPHEMERAL, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/a/e/f", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, zk_client_session_id(zk));
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/a/e", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, 0);
    /* The missing part of a chain is created in one transaction (one write
     * for ZooKeeper to log and sync, not one per component). */
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_par/g/h/i/j", "j", 1, ZK_PERSISTENT, NULL, 0), MQ_OK);
    zk_stat_t sa;
    zk_stat_t sg;
    zk_stat_t sj;
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/a", &sa), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/g", &sg), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/g/h/i/j", &sj), MQ_OK);
    CU_ASSERT_EQUAL(sg.czxid, sj.czxid);
    CU_ASSERT_NOT_EQUAL(sa.czxid, sj.czxid);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/g/h/i/j", "j"));
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/g/h", ""));
    /* Asked for its name: the parents go in one transaction, the node after. */
    char name[64];
    CU_ASSERT_EQUAL(
        zk_create_parents(zk, "/t_par/k/l/m", "m", 1, ZK_PERSISTENT, name, sizeof(name)), MQ_OK);
    CU_ASSERT_STRING_EQUAL(name, "/t_par/k/l/m");
    zk_stat_t sk;
    zk_stat_t sl;
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/k", &sk), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/k/l", &sl), MQ_OK);
    CU_ASSERT_EQUAL(sk.czxid, sl.czxid);
    /* zk_create_chain: the same in one transaction whether or not parents
     * are missing; an existing node is refused. */
    CU_ASSERT_EQUAL(zk_create_chain(zk, "/t_par/n/o/p", "p", 1, ZK_PERSISTENT), MQ_OK);
    zk_stat_t sn;
    zk_stat_t sp;
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/n", &sn), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/n/o/p", &sp), MQ_OK);
    CU_ASSERT_EQUAL(sn.czxid, sp.czxid);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/n/o/p", "p"));
    CU_ASSERT_EQUAL(zk_create_chain(zk, "/t_par/n/o/p2", "q", 1, ZK_EPHEMERAL), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_par/n/o/p2", &sp), MQ_OK);
    CU_ASSERT_EQUAL(sp.ephemeral_owner, zk_client_session_id(zk));
    CU_ASSERT_EQUAL(zk_create_chain(zk, "/t_par/n/o/p", "x", 1, ZK_PERSISTENT), MQ_EEXIST);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_par/n/o/p", "p"));
    CU_ASSERT_EQUAL(zk_create_chain(zk, "/t_par/s-", NULL, 0, ZK_SEQUENTIAL), MQ_EINVAL);
    zk_client_free(zk);
}

typedef struct t_sib {
    zk_client_t *zk;
    int idx;
    int errors;
} t_sib_t;

static void *t_sibling_main(void *arg)
{
    t_sib_t *s = arg;
    for (int round = 0; round < 20; round++) {
        char path[64];
        snprintf(path, sizeof(path), "/t_sib/%d/a/b/n%d", round, s->idx);
        if (zk_create_chain(s->zk, path, "x", 1, ZK_PERSISTENT) != MQ_OK) {
            s->errors++;
        }
    }
    return NULL;
}

/* Siblings whose chains share missing parents, created at once (a new
 * group's cursors, one per queue): every one succeeds, though the parents
 * appear under the others' feet. */
static void test_create_chain_siblings(void)
{
    zk_client_t *zk = t_client();
    enum { N = 8 };
    pthread_t th[N];
    t_sib_t sib[N];
    for (int i = 0; i < N; i++) {
        sib[i] = (t_sib_t){zk, i, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, t_sibling_main, &sib[i]), 0);
    }
    int errors = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        errors += sib[i].errors;
    }
    CU_ASSERT_EQUAL(errors, 0);
    for (int round = 0; round < 20; round++) {
        char path[64];
        snprintf(path, sizeof(path), "/t_sib/%d/a/b", round);
        zk_stat_t st;
        CU_ASSERT_EQUAL(zk_exists(zk, path, &st), MQ_OK);
        CU_ASSERT_EQUAL(st.num_children, N);
    }
    zk_client_free(zk);
}

static void test_sequential_names_increase(void)
{
    zk_client_t *zk = t_client();
    char prev[64] = "";
    for (int i = 0; i < 5; i++) {
        char created[64];
        CU_ASSERT_EQUAL(
            zk_create_parents(zk, "/t_seq/n-", NULL, 0, ZK_SEQUENTIAL, created, sizeof(created)),
            MQ_OK);
        CU_ASSERT_EQUAL(strncmp(created, "/t_seq/n-", 9), 0);
        CU_ASSERT_EQUAL(strlen(created), 9 + 10);
        CU_ASSERT_TRUE(strcmp(created, prev) > 0);
        snprintf(prev, sizeof(prev), "%s", created);
    }
    /* Too small for the name: refused before anything is created. */
    char small[12];
    CU_ASSERT_EQUAL(zk_create(zk, "/t_seq/n-", NULL, 0, ZK_SEQUENTIAL, small, sizeof(small)),
                    MQ_EINVAL);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(zk_children(zk, "/t_seq", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 5);
    zk_strings_free(names, n);
    /* Ephemeral and sequential. */
    char created[64];
    zk_stat_t st;
    CU_ASSERT_EQUAL(
        zk_create(zk, "/t_seq/e-", "d", 1, ZK_EPHEMERAL | ZK_SEQUENTIAL, created, sizeof(created)),
        MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, created, &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, zk_client_session_id(zk));
    zk_client_free(zk);
}

static void test_children_sorted(void)
{
    zk_client_t *zk = t_client();
    static const char *const order[] = {"b", "a", "c", "B", "aa", "a-1", "0"};
    static const char *const sorted[] = {"0", "B", "a", "a-1", "aa", "b", "c"};
    CU_ASSERT_EQUAL(zk_create(zk, "/t_kids", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(zk_children(zk, "/t_kids", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    zk_strings_free(names, n);
    for (size_t i = 0; i < MQ_ARRAY_LEN(order); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/t_kids/%s", order[i]);
        CU_ASSERT_EQUAL(zk_create(zk, path, NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    }
    CU_ASSERT_EQUAL(zk_children(zk, "/t_kids", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(n, MQ_ARRAY_LEN(sorted));
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL(names[i], sorted[i]);
    }
    zk_strings_free(names, n);
    CU_ASSERT_EQUAL(zk_children(zk, "/t_kids_missing", &names, &n), MQ_ENOTFOUND);
    zk_client_free(zk);
}

static void test_multi_is_atomic(void)
{
    zk_client_t *zk = t_client();
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_multi/x", "x0", 2, ZK_PERSISTENT, NULL, 0), MQ_OK);
    zk_op_t bad[] = {
        {ZK_OP_CREATE, "/t_multi/a", "a", 1, ZK_PERSISTENT, 0},
        {ZK_OP_SET, "/t_multi/x", "x1", 2, 0, 0},
        {ZK_OP_CHECK, "/t_multi/x", NULL, 0, 0, 5},
    };
    size_t failed = 99;
    CU_ASSERT_EQUAL(zk_multi(zk, bad, 3, &failed), MQ_EBADVERSION);
    CU_ASSERT_EQUAL(failed, 2);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_multi/a", NULL), MQ_ENOTFOUND);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_multi/x", "x0"));

    zk_op_t good[] = {
        {ZK_OP_CREATE, "/t_multi/a", "a", 1, ZK_PERSISTENT, 0},
        {ZK_OP_SET, "/t_multi/x", "x1", 2, 0, 0},
        {ZK_OP_CHECK, "/t_multi/x", NULL, 0, 0, 1},
        {ZK_OP_CREATE, "/t_multi/b", NULL, 0, ZK_EPHEMERAL, 0},
    };
    CU_ASSERT_EQUAL(zk_multi(zk, good, 4, &failed), MQ_OK);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_multi/a", "a"));
    CU_ASSERT_TRUE(t_data_is(zk, "/t_multi/x", "x1"));
    zk_stat_t st;
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_multi/b", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, zk_client_session_id(zk));

    zk_op_t missing[] = {
        {ZK_OP_DELETE, "/t_multi/a", NULL, 0, 0, -1},
        {ZK_OP_DELETE, "/t_multi/none", NULL, 0, 0, -1},
    };
    CU_ASSERT_EQUAL(zk_multi(zk, missing, 2, &failed), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(failed, 1);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_multi/a", NULL), MQ_OK);

    zk_op_t exists[] = {
        {ZK_OP_CREATE, "/t_multi/a", NULL, 0, ZK_PERSISTENT, 0},
    };
    CU_ASSERT_EQUAL(zk_multi(zk, exists, 1, &failed), MQ_EEXIST);
    CU_ASSERT_EQUAL(failed, 0);

    zk_op_t invalid[] = {
        {ZK_OP_CHECK, "/t_multi/x", NULL, 0, 0, 1},
        {(zk_op_type_t)42, "/t_multi/x", NULL, 0, 0, 1},
    };
    CU_ASSERT_EQUAL(zk_multi(zk, invalid, 2, &failed), MQ_EINVAL);
    CU_ASSERT_EQUAL(failed, 1);
    CU_ASSERT_EQUAL(zk_multi(zk, NULL, 0, &failed), MQ_OK);
    zk_client_free(zk);
}

/* --- watches ------------------------------------------------------------ */

static void test_watches_fire_once(void)
{
    zk_client_t *zk = t_client();
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_w/d", "0", 1, ZK_PERSISTENT, NULL, 0), MQ_OK);

    /* Data change. */
    t_watch_t changed = {0};
    char *data = NULL;
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_w/d", t_watch_cb, &changed, &data, NULL, NULL), MQ_OK);
    CU_ASSERT_STRING_EQUAL(data, "0");
    free(data);
    CU_ASSERT_EQUAL(zk_set(zk, "/t_w/d", "1", 1, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &changed, T_WAIT_MS));
    CU_ASSERT_EQUAL(changed.event, ZK_WATCH_CHANGED);
    CU_ASSERT_STRING_EQUAL(changed.path, "/t_w/d");
    CU_ASSERT_FALSE(changed.wrong_thread);
    /* One-shot: another change does not fire it again. The fresh watch set
     * after that change fires on the next one; events are ordered, so a
     * second firing of the first watch would have come before. */
    CU_ASSERT_EQUAL(zk_set(zk, "/t_w/d", "2", 1, -1, NULL), MQ_OK);
    t_watch_t sync = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_w/d", t_watch_cb, &sync, NULL), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, "/t_w/d", "3", 1, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &sync, T_WAIT_MS));
    CU_ASSERT_EQUAL(sync.event, ZK_WATCH_CHANGED);
    CU_ASSERT_EQUAL(t_watch_count(&changed), 1);

    /* Child change, then delete (seen by a data watch and a child watch). */
    t_watch_t child = {0};
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(zk_children_w(zk, "/t_w", t_watch_cb, &child, &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 1);
    zk_strings_free(names, n);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_w/e", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &child, T_WAIT_MS));
    CU_ASSERT_EQUAL(child.event, ZK_WATCH_CHILD);
    CU_ASSERT_STRING_EQUAL(child.path, "/t_w");

    t_watch_t deleted = {0};
    t_watch_t deleted_kids = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_w/d", t_watch_cb, &deleted, NULL), MQ_OK);
    CU_ASSERT_EQUAL(zk_children_w(zk, "/t_w/d", t_watch_cb, &deleted_kids, &names, &n), MQ_OK);
    zk_strings_free(names, n);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_w/d", -1), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &deleted, T_WAIT_MS));
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &deleted_kids, T_WAIT_MS));
    CU_ASSERT_EQUAL(deleted.event, ZK_WATCH_DELETED);
    CU_ASSERT_EQUAL(deleted_kids.event, ZK_WATCH_DELETED);

    /* Exists on a missing node, then created. */
    t_watch_t created = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_w/new", t_watch_cb, &created, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_w/new", "n", 1, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &created, T_WAIT_MS));
    CU_ASSERT_EQUAL(created.event, ZK_WATCH_CREATED);
    CU_ASSERT_STRING_EQUAL(created.path, "/t_w/new");

    /* A watch on a missing node through get or children is never set. */
    t_watch_t never = {0};
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_w/none", t_watch_cb, &never, NULL, NULL, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_children_w(zk, "/t_w/none", t_watch_cb, &never, &names, &n), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_w/none", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    t_watch_t sync2 = {0};
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_w/none", t_watch_cb, &sync2, NULL, NULL, NULL), MQ_OK);
    CU_ASSERT_EQUAL(zk_delete(zk, "/t_w/none", -1), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &sync2, T_WAIT_MS));
    CU_ASSERT_EQUAL(t_watch_count(&never), 0);

    pthread_mutex_lock(&t_mu);
    CU_ASSERT_FALSE(child.wrong_thread || deleted.wrong_thread || created.wrong_thread);
    pthread_mutex_unlock(&t_mu);
    zk_client_free(zk);
}

/* --- async -------------------------------------------------------------- */

typedef struct t_async {
    int order[16];
    mq_err_t err[16];
    char value[16][64];
    int32_t version[16];
    bool stat[16];
    int n;
    bool wrong_thread;
} t_async_t;

static t_async_t t_as;

typedef struct t_async_arg {
    int id;
} t_async_arg_t;

static void t_async_record(int id, mq_err_t err, const char *value, const zk_stat_t *st)
{
    pthread_mutex_lock(&t_mu);
    int i = t_as.n++;
    if (i < 16) {
        t_as.order[i] = id;
        t_as.err[id] = err;
        snprintf(t_as.value[id], sizeof(t_as.value[id]), "%s", value ? value : "");
        t_as.stat[id] = st != NULL;
        t_as.version[id] = st ? st->version : -100;
    }
    t_as.wrong_thread |= !t_on_event_thread();
    pthread_mutex_unlock(&t_mu);
}

static void t_data_done(mq_err_t err, const char *data, size_t len, const zk_stat_t *stat,
                        void *arg)
{
    t_async_arg_t *a = arg;
    MQ_UNUSED(len);
    t_async_record(a->id, err, data, stat);
}

static void t_stat_done(mq_err_t err, const zk_stat_t *stat, void *arg)
{
    t_async_arg_t *a = arg;
    t_async_record(a->id, err, NULL, stat);
}

static void t_string_done(mq_err_t err, const char *value, void *arg)
{
    t_async_arg_t *a = arg;
    t_async_record(a->id, err, value, NULL);
}

static int t_async_n;

static bool t_async_all(void *arg)
{
    MQ_UNUSED(arg);
    pthread_mutex_lock(&t_mu);
    bool done = t_as.n >= t_async_n;
    pthread_mutex_unlock(&t_mu);
    return done;
}

static void test_async_ops(void)
{
    zk_client_t *zk = t_client();
    memset(&t_as, 0, sizeof(t_as));
    static t_async_arg_t a[10] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}};
    CU_ASSERT_EQUAL(zk_create(zk, "/t_async", "p", 1, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_acreate(zk, "/t_async/a", "A", 1, ZK_PERSISTENT, t_string_done, &a[0]),
                    MQ_OK);
    CU_ASSERT_EQUAL(zk_acreate(zk, "/t_async/a", "A", 1, ZK_PERSISTENT, t_string_done, &a[1]),
                    MQ_OK);
    CU_ASSERT_EQUAL(zk_aget(zk, "/t_async/a", t_data_done, &a[2]), MQ_OK);
    CU_ASSERT_EQUAL(zk_aget(zk, "/t_async/missing", t_data_done, &a[3]), MQ_OK);
    CU_ASSERT_EQUAL(zk_aset(zk, "/t_async/a", "B", 1, 7, t_stat_done, &a[4]), MQ_OK);
    CU_ASSERT_EQUAL(zk_aset(zk, "/t_async/a", "B", 1, 0, t_stat_done, &a[5]), MQ_OK);
    CU_ASSERT_EQUAL(zk_adelete(zk, "/t_async/missing", -1, t_stat_done, &a[6]), MQ_OK);
    CU_ASSERT_EQUAL(zk_acreate(zk, "/t_async/s-", NULL, 0, ZK_SEQUENTIAL, t_string_done, &a[7]),
                    MQ_OK);
    CU_ASSERT_EQUAL(zk_adelete(zk, "/t_async/a", 1, t_stat_done, &a[8]), MQ_OK);
    CU_ASSERT_EQUAL(zk_aget(zk, "/t_async/a", t_data_done, &a[9]), MQ_OK);
    /* Refused calls never call back. */
    CU_ASSERT_EQUAL(zk_aget(zk, "bad", t_data_done, &a[0]), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_acreate(zk, "/t_async/x", NULL, 0, 77, t_string_done, &a[0]), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_aset(zk, "/t_async/x", NULL, 5, -1, t_stat_done, &a[0]), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_adelete(zk, "", -1, t_stat_done, &a[0]), MQ_EINVAL);

    t_async_n = 10;
    CU_ASSERT_TRUE(mq_test_wait(t_async_all, NULL, T_WAIT_MS));
    pthread_mutex_lock(&t_mu);
    CU_ASSERT_EQUAL(t_as.n, 10);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(t_as.order[i], i); /* completions in submission order */
    }
    CU_ASSERT_EQUAL(t_as.err[0], MQ_OK);
    CU_ASSERT_STRING_EQUAL(t_as.value[0], "/t_async/a");
    CU_ASSERT_EQUAL(t_as.err[1], MQ_EEXIST);
    CU_ASSERT_EQUAL(t_as.err[2], MQ_OK);
    CU_ASSERT_STRING_EQUAL(t_as.value[2], "A");
    CU_ASSERT_TRUE(t_as.stat[2]);
    CU_ASSERT_EQUAL(t_as.version[2], 0);
    CU_ASSERT_EQUAL(t_as.err[3], MQ_ENOTFOUND);
    CU_ASSERT_FALSE(t_as.stat[3]);
    CU_ASSERT_EQUAL(t_as.err[4], MQ_EBADVERSION);
    CU_ASSERT_FALSE(t_as.stat[4]);
    CU_ASSERT_EQUAL(t_as.err[5], MQ_OK);
    CU_ASSERT_EQUAL(t_as.version[5], 1);
    CU_ASSERT_EQUAL(t_as.err[6], MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(t_as.err[7], MQ_OK);
    CU_ASSERT_EQUAL(strncmp(t_as.value[7], "/t_async/s-", 11), 0);
    CU_ASSERT_EQUAL(t_as.err[8], MQ_OK);
    CU_ASSERT_EQUAL(t_as.err[9], MQ_ENOTFOUND);
    CU_ASSERT_FALSE(t_as.wrong_thread);
    pthread_mutex_unlock(&t_mu);
    zk_client_free(zk);
}

/* --- blocking calls from callbacks -------------------------------------- */

typedef struct t_reent {
    zk_client_t *zk;
    mq_err_t get_err;
    mq_err_t set_err;
    mq_err_t create_err;
    mq_err_t watch_err;
    char data[16];
    bool done;
    bool async_done;
    mq_err_t async_get_err;
    t_watch_t rewatch;
} t_reent_t;

static void t_reent_watch(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(event);
    t_reent_t *r = arg;
    char *data = NULL;
    mq_err_t get_err = zk_get(zk, path, &data, NULL, NULL);
    mq_err_t set_err = zk_set(zk, "/t_reent/other", "o", 1, -1, NULL);
    mq_err_t create_err = zk_create(zk, "/t_reent/made", NULL, 0, ZK_PERSISTENT, NULL, 0);
    /* Re-watching from the callback, the usual pattern. */
    mq_err_t watch_err = zk_get_w(zk, path, t_watch_cb, &r->rewatch, NULL, NULL, NULL);
    pthread_mutex_lock(&t_mu);
    r->get_err = get_err;
    r->set_err = set_err;
    r->create_err = create_err;
    r->watch_err = watch_err;
    snprintf(r->data, sizeof(r->data), "%s", data ? data : "");
    r->done = true;
    pthread_mutex_unlock(&t_mu);
    free(data);
}

static void t_reent_async(mq_err_t err, const char *data, size_t len, const zk_stat_t *stat,
                          void *arg)
{
    MQ_UNUSED(err);
    MQ_UNUSED(data);
    MQ_UNUSED(len);
    MQ_UNUSED(stat);
    t_reent_t *r = arg;
    mq_err_t e = zk_get(r->zk, "/t_reent/w", NULL, NULL, NULL);
    pthread_mutex_lock(&t_mu);
    r->async_get_err = e;
    r->async_done = true;
    pthread_mutex_unlock(&t_mu);
}

static bool t_reent_done(void *arg)
{
    t_reent_t *r = arg;
    pthread_mutex_lock(&t_mu);
    bool d = r->done && r->async_done;
    pthread_mutex_unlock(&t_mu);
    return d;
}

static void test_blocking_calls_from_callbacks(void)
{
    zk_client_t *zk = t_client();
    t_reent_t r = {.zk = zk};
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/t_reent/w", "w0", 2, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_reent/other", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_reent/w", t_reent_watch, &r, NULL, NULL, NULL), MQ_OK);
    CU_ASSERT_EQUAL(zk_aget(zk, "/t_reent/w", t_reent_async, &r), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, "/t_reent/w", "w1", 2, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_reent_done, &r, T_WAIT_MS));
    pthread_mutex_lock(&t_mu);
    CU_ASSERT_EQUAL(r.get_err, MQ_OK);
    CU_ASSERT_STRING_EQUAL(r.data, "w1");
    CU_ASSERT_EQUAL(r.set_err, MQ_OK);
    CU_ASSERT_EQUAL(r.create_err, MQ_OK);
    CU_ASSERT_EQUAL(r.watch_err, MQ_OK);
    CU_ASSERT_EQUAL(r.async_get_err, MQ_OK);
    pthread_mutex_unlock(&t_mu);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_reent/other", "o"));
    CU_ASSERT_EQUAL(zk_set(zk, "/t_reent/w", "w2", 2, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &r.rewatch, T_WAIT_MS));
    zk_client_free(zk);
}

/* --- session expiry ----------------------------------------------------- */

typedef struct t_sess {
    zk_session_event_t events[32];
    int seq[32];
    int n;
    bool wrong_thread;
} t_sess_t;

static void t_sess_cb(zk_client_t *zk, zk_session_event_t event, void *arg)
{
    MQ_UNUSED(zk);
    t_sess_t *s = arg;
    pthread_mutex_lock(&t_mu);
    if (s->n < 32) {
        s->seq[s->n] = ++t_seq;
        s->events[s->n++] = event;
    }
    s->wrong_thread |= !t_on_event_thread();
    pthread_mutex_unlock(&t_mu);
}

static int t_sess_find(t_sess_t *s, zk_session_event_t event)
{
    pthread_mutex_lock(&t_mu);
    int at = -1;
    for (int i = 0; i < s->n && at < 0; i++) {
        if (s->events[i] == event) {
            at = i;
        }
    }
    pthread_mutex_unlock(&t_mu);
    return at;
}

static bool t_sess_new(void *arg)
{
    return t_sess_find(arg, ZK_SESSION_NEW) >= 0;
}

static void test_session_expiry(void)
{
    zk_client_t *zk = t_client();
    t_sess_t s = {0};
    zk_client_on_session(zk, t_sess_cb, &s);
    int64_t old = zk_client_session_id(zk);
    CU_ASSERT_NOT_EQUAL(old, 0);
    CU_ASSERT_TRUE(zk_client_connected(zk));
    CU_ASSERT_TRUE(zk_client_session_timeout(zk) >= 500 && zk_client_session_timeout(zk) <= 2000);

    CU_ASSERT_EQUAL(zk_ephemeral_register(zk, "/t_exp/svc/eph", "d1", 2), MQ_OK);
    CU_ASSERT_EQUAL(zk_ephemeral_update(zk, "/t_exp/svc/eph", "d2", 2), MQ_OK);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_exp/svc/eph", "d2"));
    t_watch_t lost_exists = {0};
    t_watch_t lost_data = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_exp/watched", t_watch_cb, &lost_exists, NULL),
                    MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_exp/svc/eph", t_watch_cb, &lost_data, NULL, NULL, NULL),
                    MQ_OK);

    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_sess_new, &s, T_WAIT_MS));
    int expired = t_sess_find(&s, ZK_SESSION_EXPIRED);
    int fresh = t_sess_find(&s, ZK_SESSION_NEW);
    CU_ASSERT_TRUE(expired >= 0 && expired < fresh);
    pthread_mutex_lock(&t_mu);
    for (int i = expired + 1; i < fresh; i++) {
        CU_ASSERT_NOT_EQUAL(s.events[i], ZK_SESSION_CONNECTED);
    }
    CU_ASSERT_FALSE(s.wrong_thread);
    int new_seq = s.seq[fresh];
    pthread_mutex_unlock(&t_mu);

    int64_t now = zk_client_session_id(zk);
    CU_ASSERT_NOT_EQUAL(now, old);
    CU_ASSERT_NOT_EQUAL(now, 0);
    CU_ASSERT_TRUE(zk_client_connected(zk));

    /* The ephemeral is back, with its latest data, in the new session. */
    zk_stat_t st;
    CU_ASSERT_TRUE(t_data_is(zk, "/t_exp/svc/eph", "d2"));
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_exp/svc/eph", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, now);

    /* Watches of the dead session are reported lost, after NEW. */
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &lost_exists, T_WAIT_MS));
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &lost_data, T_WAIT_MS));
    pthread_mutex_lock(&t_mu);
    CU_ASSERT_EQUAL(lost_exists.event, ZK_WATCH_LOST);
    CU_ASSERT_EQUAL(lost_exists.count, 1);
    CU_ASSERT_STRING_EQUAL(lost_exists.path, "/t_exp/watched");
    /* The watch on our own ephemeral may instead see its deletion, when the
     * server closes the session while our old connection is still open (it
     * can win the session back in zk_client_test_expire): a real event. */
    CU_ASSERT_TRUE(lost_data.event == ZK_WATCH_LOST || lost_data.event == ZK_WATCH_DELETED);
    CU_ASSERT_EQUAL(lost_data.count, 1);
    CU_ASSERT_TRUE(lost_exists.seq > new_seq);
    pthread_mutex_unlock(&t_mu);

    /* The registry keeps working on the new session. */
    CU_ASSERT_EQUAL(zk_ephemeral_update(zk, "/t_exp/svc/eph", "d3", 2), MQ_OK);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_exp/svc/eph", "d3"));
    t_watch_t again = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_exp/watched", t_watch_cb, &again, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_exp/watched", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &again, T_WAIT_MS));
    CU_ASSERT_EQUAL(again.event, ZK_WATCH_CREATED);

    /* A second expiry works the same way. */
    int before = t_sess_find(&s, ZK_SESSION_NEW);
    pthread_mutex_lock(&t_mu);
    s.n = 0;
    pthread_mutex_unlock(&t_mu);
    CU_ASSERT_TRUE(before >= 0);
    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_sess_new, &s, T_WAIT_MS));
    CU_ASSERT_TRUE(t_data_is(zk, "/t_exp/svc/eph", "d3"));
    CU_ASSERT_EQUAL(zk_ephemeral_unregister(zk, "/t_exp/svc/eph"), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_exp/svc/eph", NULL), MQ_ENOTFOUND);
    zk_client_free(zk);
}

/* --- ephemerals of a previous incarnation -------------------------------- */

/* The server's watch count, from the "mntr" four-letter command. */
static long t_server_watches(void)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", t_hostport);
    char *colon = strrchr(host, ':');
    if (!colon) {
        return -1;
    }
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (write(fd, "mntr", 4) != 4) {
        close(fd);
        return -1;
    }
    static char buf[16384];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t)r;
    }
    buf[got] = '\0';
    close(fd);
    const char *p = strstr(buf, "zk_watch_count");
    return p ? strtol(p + strlen("zk_watch_count"), NULL, 10) : -1;
}

typedef struct t_reg {
    zk_client_t *zk;
    const char *path;
    const char *data;
    mq_err_t err;
    uint64_t took_ms;
    long base_watches;
} t_reg_t;

static void *t_register_thread(void *arg)
{
    t_reg_t *r = arg;
    uint64_t t0 = mq_now_ms();
    r->err = zk_ephemeral_register(r->zk, r->path, r->data, strlen(r->data));
    r->took_ms = mq_now_ms() - t0;
    return NULL;
}

static bool t_waiting_on_watch(void *arg)
{
    t_reg_t *r = arg;
    return t_server_watches() > r->base_watches;
}

static void test_ephemeral_previous_incarnation(void)
{
    /* A previous incarnation (client a) still holds the node; the new one
     * (b) waits for it, and gets it once a's session is gone. */
    zk_client_t *a = t_client();
    zk_client_t *b = t_client();
    CU_ASSERT_EQUAL(zk_ephemeral_register(a, "/t_inc/x", "A", 1), MQ_OK);
    t_reg_t r = {b, "/t_inc/x", "B", MQ_EZK, 0, t_server_watches()};
    CU_ASSERT_TRUE(r.base_watches >= 0);
    pthread_t th;
    pthread_create(&th, NULL, t_register_thread, &r);
    CU_ASSERT_TRUE(mq_test_wait(t_waiting_on_watch, &r, T_WAIT_MS));
    zk_client_free(a);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(r.err, MQ_OK);
    CU_ASSERT_TRUE(r.took_ms < (uint64_t)T_SESSION_MS);
    zk_stat_t st;
    CU_ASSERT_TRUE(t_data_is(b, "/t_inc/x", "B"));
    CU_ASSERT_EQUAL(zk_exists(b, "/t_inc/x", &st), MQ_OK);
    CU_ASSERT_EQUAL(st.ephemeral_owner, zk_client_session_id(b));

    /* If the other session stays, registering fails after the timeout. */
    zk_client_t *c = t_client();
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(zk_ephemeral_register(c, "/t_inc/x", "C", 1), MQ_EEXIST);
    uint64_t took = mq_now_ms() - t0;
    CU_ASSERT_TRUE(took >= (uint64_t)zk_client_session_timeout(c));
    CU_ASSERT_TRUE(took < (uint64_t)T_SESSION_MS * 3);
    CU_ASSERT_TRUE(t_data_is(c, "/t_inc/x", "B"));
    CU_ASSERT_EQUAL(zk_ephemeral_update(c, "/t_inc/x", "C", 1), MQ_ENOTFOUND);

    /* Our own session's node: just take it over. */
    CU_ASSERT_EQUAL(zk_create(b, "/t_inc/own", "old", 3, ZK_EPHEMERAL, NULL, 0), MQ_OK);
    t0 = mq_now_ms();
    CU_ASSERT_EQUAL(zk_ephemeral_register(b, "/t_inc/own", "new", 3), MQ_OK);
    CU_ASSERT_TRUE(mq_now_ms() - t0 < 1000);
    CU_ASSERT_TRUE(t_data_is(b, "/t_inc/own", "new"));
    CU_ASSERT_EQUAL(zk_ephemeral_register(b, "/t_inc/own", "again", 5), MQ_EEXIST);

    /* A persistent node in the way is refused at once. */
    CU_ASSERT_EQUAL(zk_create(b, "/t_inc/persistent", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    t0 = mq_now_ms();
    CU_ASSERT_EQUAL(zk_ephemeral_register(c, "/t_inc/persistent", "p", 1), MQ_EEXIST);
    CU_ASSERT_TRUE(mq_now_ms() - t0 < 1000);

    CU_ASSERT_EQUAL(zk_ephemeral_unregister(b, "/t_inc/own"), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(b, "/t_inc/own", NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_ephemeral_unregister(b, "/t_inc/own"), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_ephemeral_register(b, "bad", "p", 1), MQ_EINVAL);
    zk_client_free(c);
    zk_client_free(b);
}

/* --- chroot ------------------------------------------------------------- */

static void test_chroot(void)
{
    zk_client_t *zk = t_client_chroot("/t_chroot/app");
    zk_client_t *plain = t_client();
    char created[64];
    CU_ASSERT_EQUAL(zk_create_parents(zk, "/a/b", "ab", 2, ZK_PERSISTENT, created, sizeof(created)),
                    MQ_OK);
    CU_ASSERT_STRING_EQUAL(created, "/a/b");
    CU_ASSERT_TRUE(t_data_is(plain, "/t_chroot/app/a/b", "ab"));
    CU_ASSERT_EQUAL(zk_create(zk, "/a/s-", NULL, 0, ZK_SEQUENTIAL, created, sizeof(created)),
                    MQ_OK);
    CU_ASSERT_EQUAL(strncmp(created, "/a/s-", 5), 0);
    char **names;
    size_t n;
    CU_ASSERT_EQUAL(zk_children(zk, "/", &names, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 1);
    if (n == 1) {
        CU_ASSERT_STRING_EQUAL(names[0], "a");
    }
    zk_strings_free(names, n);
    t_watch_t w = {0};
    CU_ASSERT_EQUAL(zk_exists_w(zk, "/x", t_watch_cb, &w, NULL), MQ_ENOTFOUND);
    CU_ASSERT_EQUAL(zk_create(plain, "/t_chroot/app/x", NULL, 0, ZK_PERSISTENT, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &w, T_WAIT_MS));
    CU_ASSERT_STRING_EQUAL(w.path, "/x");
    zk_op_t ops[] = {{ZK_OP_SET, "/a/b", "m", 1, 0, -1}, {ZK_OP_DELETE, "/x", NULL, 0, 0, -1}};
    CU_ASSERT_EQUAL(zk_multi(zk, ops, 2, NULL), MQ_OK);
    CU_ASSERT_TRUE(t_data_is(plain, "/t_chroot/app/a/b", "m"));
    CU_ASSERT_EQUAL(zk_exists(plain, "/t_chroot/app/x", NULL), MQ_ENOTFOUND);
    zk_client_free(plain);
    zk_client_free(zk);

    zk_client_opts_t bad = {T_SESSION_MS, 1000, "no-slash"};
    zk_client_t *none = NULL;
    CU_ASSERT_EQUAL(zk_client_new(t_hostport, &bad, &none), MQ_EINVAL);
    bad.chroot = "/trailing/";
    CU_ASSERT_EQUAL(zk_client_new(t_hostport, &bad, &none), MQ_EINVAL);
    CU_ASSERT_PTR_NULL(none);
}

/* --- closing with calls and watches outstanding -------------------------- */

static int t_close_calls;
static mq_err_t t_close_err;

static void t_close_done(mq_err_t err, const char *data, size_t len, const zk_stat_t *stat,
                         void *arg)
{
    MQ_UNUSED(data);
    MQ_UNUSED(len);
    MQ_UNUSED(stat);
    MQ_UNUSED(arg);
    pthread_mutex_lock(&t_mu);
    t_close_calls++;
    t_close_err = err;
    pthread_mutex_unlock(&t_mu);
}

static void test_free_with_calls_in_flight(void)
{
    for (int i = 0; i < 3; i++) {
        zk_client_t *zk = t_client();
        t_watch_t w = {0};
        CU_ASSERT_EQUAL(zk_exists_w(zk, "/t_close_watch", t_watch_cb, &w, NULL), MQ_ENOTFOUND);
        pthread_mutex_lock(&t_mu);
        t_close_calls = 0;
        pthread_mutex_unlock(&t_mu);
        for (int k = 0; k < 20; k++) {
            CU_ASSERT_EQUAL(zk_aget(zk, "/", t_close_done, NULL), MQ_OK);
        }
        zk_client_free(zk);
        /* Every accepted call was completed exactly once, before free
         * returned; the watch never fires. */
        pthread_mutex_lock(&t_mu);
        CU_ASSERT_EQUAL(t_close_calls, 20);
        CU_ASSERT_TRUE(t_close_err == MQ_OK || t_close_err == MQ_ECLOSED);
        pthread_mutex_unlock(&t_mu);
        CU_ASSERT_EQUAL(t_watch_count(&w), 0);
    }
}

/* --- connection loss within the session -------------------------------- */

/* test_zk_support.c */
typedef struct t_proxy t_proxy_t;
t_proxy_t *t_proxy_start(const char *target);
const char *t_proxy_addr(t_proxy_t *p);
void t_proxy_cmd(t_proxy_t *p, char cmd);
void t_proxy_stop(t_proxy_t *p);

typedef struct t_sess_want {
    t_sess_t *s;
    zk_session_event_t event;
    int n;
} t_sess_want_t;

static bool t_sess_has(void *arg)
{
    t_sess_want_t *w = arg;
    int n = 0;
    pthread_mutex_lock(&t_mu);
    for (int i = 0; i < w->s->n; i++) {
        n += w->s->events[i] == w->event;
    }
    pthread_mutex_unlock(&t_mu);
    return n >= w->n;
}

static void test_connection_loss(void)
{
    t_proxy_t *p = t_proxy_start(t_hostport);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    zk_client_opts_t o = {6000, 10000, NULL};
    zk_client_t *zk = NULL;
    CU_ASSERT_EQUAL_FATAL(zk_client_new(t_proxy_addr(p), &o, &zk), MQ_OK);
    t_sess_t s = {0};
    zk_client_on_session(zk, t_sess_cb, &s);
    int64_t sid = zk_client_session_id(zk);
    CU_ASSERT_EQUAL(zk_create(zk, "/t_loss", "l", 1, ZK_EPHEMERAL, NULL, 0), MQ_OK);
    t_watch_t w = {0};
    CU_ASSERT_EQUAL(zk_get_w(zk, "/t_loss", t_watch_cb, &w, NULL, NULL, NULL), MQ_OK);

    /* A cut: ZooKeeper reconnects within the session. */
    t_proxy_cmd(p, 'c');
    t_sess_want_t up1 = {&s, ZK_SESSION_CONNECTED, 1};
    CU_ASSERT_TRUE(mq_test_wait(t_sess_has, &up1, T_WAIT_MS));
    CU_ASSERT_EQUAL(t_sess_find(&s, ZK_SESSION_DISCONNECTED), 0);
    CU_ASSERT_EQUAL(zk_client_session_id(zk), sid);
    CU_ASSERT_TRUE(t_data_is(zk, "/t_loss", "l"));

    /* While the network refuses, calls fail with MQ_ECONN. */
    t_proxy_cmd(p, 'r');
    t_sess_want_t down2 = {&s, ZK_SESSION_DISCONNECTED, 2};
    CU_ASSERT_TRUE(mq_test_wait(t_sess_has, &down2, T_WAIT_MS));
    CU_ASSERT_FALSE(zk_client_connected(zk));
    CU_ASSERT_EQUAL(zk_get(zk, "/t_loss", NULL, NULL, NULL), MQ_ECONN);
    t_proxy_cmd(p, 'a');
    t_sess_want_t up2 = {&s, ZK_SESSION_CONNECTED, 2};
    CU_ASSERT_TRUE(mq_test_wait(t_sess_has, &up2, T_WAIT_MS));
    CU_ASSERT_TRUE(zk_client_connected(zk));
    CU_ASSERT_EQUAL(zk_client_session_id(zk), sid);
    CU_ASSERT_EQUAL(t_sess_find(&s, ZK_SESSION_EXPIRED), -1);

    /* The watch outlived both reconnects (ZooKeeper sets it again). */
    CU_ASSERT_EQUAL(t_watch_count(&w), 0);
    CU_ASSERT_EQUAL(zk_set(zk, "/t_loss", "m", 1, -1, NULL), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_watch_fired, &w, T_WAIT_MS));
    CU_ASSERT_EQUAL(w.event, ZK_WATCH_CHANGED);
    zk_client_free(zk);
    t_proxy_stop(p);
}

/* --- connecting to nothing ---------------------------------------------- */

static void test_connect_nowhere(void)
{
    /* A bound socket that does not listen: connections are refused, and no
     * one else can take the port meanwhile. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));

    zk_client_opts_t o = {T_SESSION_MS, 1500, NULL};
    zk_client_t *zk = NULL;
    uint64_t t0 = mq_now_ms();
    mq_err_t err = zk_client_new(servers, &o, &zk);
    uint64_t took = mq_now_ms() - t0;
    CU_ASSERT_TRUE(err == MQ_ETIMEDOUT || err == MQ_ECONN);
    CU_ASSERT_PTR_NULL(zk);
    CU_ASSERT_TRUE(took < 1500 + 1500);
    close(fd);

    CU_ASSERT_EQUAL(zk_client_new("", NULL, &zk), MQ_EINVAL);
    CU_ASSERT_EQUAL(zk_client_new(NULL, NULL, &zk), MQ_EINVAL);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"CRUD and compare-and-set", test_crud_and_cas},
        {"create with parents", test_create_parents},
        {"sibling chains created at once", test_create_chain_siblings},
        {"sequential names increase", test_sequential_names_increase},
        {"children sorted bytewise", test_children_sorted},
        {"multi is atomic, reports the failing op", test_multi_is_atomic},
        {"watches fire once", test_watches_fire_once},
        {"async completions on the event thread", test_async_ops},
        {"blocking calls from callbacks", test_blocking_calls_from_callbacks},
        {"session expiry: EXPIRED, NEW, ephemerals back, watches lost", test_session_expiry},
        {"ephemeral of a previous incarnation", test_ephemeral_previous_incarnation},
        {"chroot", test_chroot},
        {"free with calls in flight", test_free_with_calls_in_flight},
        {"connection loss within the session", test_connection_loss},
        {"connect to a port where nothing listens", test_connect_nowhere},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("zk_client", tests, t_init, t_cleanup);
}
