/*
 * The bookie registry against a real ZooKeeper. Fake bookies are ephemeral
 * znodes with "address=..." data made by a second client: they show up with
 * their address (or their id without one), a move from available/ to
 * readonly/ makes one not writable, deletion and a closed session remove
 * them, directories that do not exist yet (or are deleted and re-created)
 * are followed, unusable names are skipped, cb runs on every change, a
 * session expiry does not stop the updates, watches do not pile up, and the
 * registry can be freed from its own callback or with watches outstanding.
 * Placement: distinct writable bookies, spread evenly (each of 7 bookies
 * within +-1 of the mean when choosing 5 at a time), exclusions, and
 * MQ_ENOTENOUGHBOOKIES with nothing written. Tests wait on the registry's
 * state, never on sleeps.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "meta_int.h"
#include "meta_store.h"
#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"

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
    zk_client_opts_t o = {2000, 10000, NULL};
    zk_client_t *zk = NULL;
    CU_ASSERT_EQUAL_FATAL(zk_client_new(t_hostport, &o, &zk), MQ_OK);
    return zk;
}

/* Registers a fake bookie as an ephemeral of zk (address NULL: no address
 * line in its data). */
static void t_register(zk_client_t *zk, const char *root, const char *dir, const char *id,
                       const char *address)
{
    char path[256];
    char data[256];
    snprintf(path, sizeof(path), "%s/bookies/%s/%s", root, dir, id);
    int n = address
                ? snprintf(data, sizeof(data), "state=writable\naddress=%s\nhttpPort=0\n", address)
                : snprintf(data, sizeof(data), "state=writable\n");
    CU_ASSERT_EQUAL(zk_create_parents(zk, path, data, (size_t)n, ZK_EPHEMERAL, NULL, 0), MQ_OK);
}

static void t_unregister(zk_client_t *zk, const char *root, const char *dir, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/bookies/%s/%s", root, dir, id);
    CU_ASSERT_EQUAL(zk_delete(zk, path, -1), MQ_OK);
}

/* --- recorders ----------------------------------------------------------- */

typedef struct t_cb {
    pthread_mutex_t mu;
    int calls;
    bool wrong_thread;
} t_cb_t;

static void t_cb_fn(void *arg)
{
    t_cb_t *c = arg;
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->wrong_thread |= strncmp(name, "zk-ev", 5) != 0;
    pthread_mutex_unlock(&c->mu);
}

static int t_cb_calls(t_cb_t *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* What a test waits for: the registry listing exactly this, where each item
 * is "id" (writable) or "id!" (read-only), in id order. */
typedef struct t_want {
    meta_bookies_t *b;
    const char *items[16];
} t_want_t;

static bool t_listed(void *arg)
{
    t_want_t *w = arg;
    meta_bookie_info_t *list;
    size_t n;
    if (meta_bookies_list(w->b, &list, &n) != MQ_OK) {
        return false;
    }
    size_t want = 0;
    while (want < MQ_ARRAY_LEN(w->items) && w->items[want]) {
        want++;
    }
    bool ok = n == want;
    for (size_t i = 0; i < n && ok; i++) {
        char item[META_BOOKIE_ID_MAX + 2];
        snprintf(item, sizeof(item), "%s%s", list[i].id, list[i].writable ? "" : "!");
        ok = strcmp(item, w->items[i]) == 0;
    }
    free(list);
    return ok;
}

static void t_wait_listed(meta_bookies_t *b, const char *const *items)
{
    t_want_t w = {b, {NULL}};
    size_t k = 0;
    for (size_t i = 0; items[i]; i++) {
        if (items[i][0]) {
            w.items[k++] = items[i];
        }
    }
    bool ok = mq_test_wait(t_listed, &w, T_WAIT_MS);
    if (!ok) {
        meta_bookie_info_t *list;
        size_t n;
        meta_bookies_list(b, &list, &n);
        fprintf(stderr, "\n  registry holds %zu:", n);
        for (size_t i = 0; i < n; i++) {
            fprintf(stderr, " %s%s", list[i].id, list[i].writable ? "" : "!");
        }
        fprintf(stderr, "\n");
        free(list);
    }
    CU_ASSERT_TRUE(ok);
}

#define T_LISTED(b, ...)                                                                           \
    do {                                                                                           \
        const char *const t_items_[] = {__VA_ARGS__, NULL};                                        \
        t_wait_listed((b), t_items_);                                                              \
    } while (0)

static void t_address_is(meta_bookies_t *b, const char *id, const char *want)
{
    char addr[META_BOOKIE_ID_MAX];
    meta_bookies_address(b, id, addr, sizeof(addr));
    CU_ASSERT_STRING_EQUAL(addr, want);
}

/* --- registry ---------------------------------------------------------------- */

static void test_registry_follows_changes(void)
{
    const char *root = "/t_reg";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();
    t_cb_t cb;
    memset(&cb, 0, sizeof(cb));
    pthread_mutex_init(&cb.mu, NULL);

    /* Nothing exists yet: empty, and both directories' creation is seen. */
    meta_bookies_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, t_cb_fn, &cb, &b), MQ_OK);
    meta_bookie_info_t *list;
    size_t n = 99;
    CU_ASSERT_EQUAL(meta_bookies_list(b, &list, &n), MQ_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(list);
    free(list);
    CU_ASSERT_EQUAL(t_cb_calls(&cb), 0);

    t_register(bk, root, "available", "bk-2:3181", "10.0.0.2:3181");
    T_LISTED(b, "bk-2:3181");
    CU_ASSERT_TRUE(t_cb_calls(&cb) >= 1);
    t_register(bk, root, "available", "bk-1:3181", "10.0.0.1:3181");
    t_register(bk, root, "available", "bk-3", NULL);
    T_LISTED(b, "bk-1:3181", "bk-2:3181", "bk-3");
    t_address_is(b, "bk-1:3181", "10.0.0.1:3181");
    t_address_is(b, "bk-2:3181", "10.0.0.2:3181");
    t_address_is(b, "bk-3", "bk-3");
    t_address_is(b, "unknown:1", "unknown:1");
    CU_ASSERT_EQUAL(meta_bookies_list(b, &list, &n), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(list[0].address, "10.0.0.1:3181");
    CU_ASSERT_TRUE(list[0].writable);
    free(list);

    /* To read-only the way a bookie does it: readonly/ first (it is then
     * in both), then available/ goes. */
    int before = t_cb_calls(&cb);
    t_register(bk, root, "readonly", "bk-2:3181", "10.0.0.22:3181");
    T_LISTED(b, "bk-1:3181", "bk-2:3181!", "bk-3");
    t_address_is(b, "bk-2:3181", "10.0.0.22:3181");
    t_unregister(bk, root, "available", "bk-2:3181");
    T_LISTED(b, "bk-1:3181", "bk-2:3181!", "bk-3");
    CU_ASSERT_TRUE(t_cb_calls(&cb) > before);

    /* Gone. */
    before = t_cb_calls(&cb);
    t_unregister(bk, root, "available", "bk-3");
    T_LISTED(b, "bk-1:3181", "bk-2:3181!");
    CU_ASSERT_TRUE(t_cb_calls(&cb) > before);

    /* Names that cannot be bookie ids are left out. */
    t_register(bk, root, "available", "a,b", "x:1");
    t_register(bk, root, "available", "bk-4", "10.0.0.4:3181");
    T_LISTED(b, "bk-1:3181", "bk-2:3181!", "bk-4");

    /* The readonly directory deleted and made again. */
    t_unregister(bk, root, "readonly", "bk-2:3181");
    T_LISTED(b, "bk-1:3181", "bk-4");
    CU_ASSERT_EQUAL(zk_delete(bk, "/t_reg/bookies/readonly", -1), MQ_OK);
    t_register(bk, root, "readonly", "bk-5", "10.0.0.5:3181");
    T_LISTED(b, "bk-1:3181", "bk-4", "bk-5!");

    /* The registering session ends: every ephemeral goes. */
    zk_client_free(bk);
    T_LISTED(b, "");
    pthread_mutex_lock(&cb.mu);
    CU_ASSERT_FALSE(cb.wrong_thread);
    pthread_mutex_unlock(&cb.mu);

    meta_bookies_free(b);
    zk_client_free(zk);
    pthread_mutex_destroy(&cb.mu);
}

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

static void test_watches_do_not_pile_up(void)
{
    const char *root = "/t_pile";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();
    t_register(bk, root, "available", "seed", NULL);
    CU_ASSERT_EQUAL(zk_create(bk, "/t_pile/bookies/readonly", NULL, 0, ZK_PERSISTENT, NULL, 0),
                    MQ_OK);
    long base = t_server_watches();
    CU_ASSERT_TRUE_FATAL(base >= 0);
    meta_bookies_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, NULL, NULL, &b), MQ_OK);
    T_LISTED(b, "seed");
    /* One children watch per directory. */
    CU_ASSERT_EQUAL(t_server_watches(), base + 2);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%02d", i);
        t_register(bk, root, i % 2 ? "readonly" : "available", id, NULL);
        char want[16];
        snprintf(want, sizeof(want), "n%02d%s", i, i % 2 ? "!" : "");
        T_LISTED(b, want, "seed");
        t_unregister(bk, root, i % 2 ? "readonly" : "available", id);
        T_LISTED(b, "seed");
    }
    CU_ASSERT_EQUAL(t_server_watches(), base + 2);
    /* The server keeps one watch per path and connection whatever the
     * client asked, so the client's own count tells whether they piled up:
     * still one per directory, and about one load per change. */
    int armed;
    uint64_t loads;
    meta_bookies_test_counts(b, &armed, &loads);
    CU_ASSERT_EQUAL(armed, 2);
    CU_ASSERT_TRUE(loads <= 2 * 40 + 4);
    meta_bookies_free(b);
    zk_client_free(bk);
    zk_client_free(zk);
}

typedef struct t_sess {
    pthread_mutex_t mu;
    int news;
} t_sess_t;

static void t_sess_cb(zk_client_t *zk, zk_session_event_t event, void *arg)
{
    MQ_UNUSED(zk);
    t_sess_t *s = arg;
    pthread_mutex_lock(&s->mu);
    s->news += event == ZK_SESSION_NEW;
    pthread_mutex_unlock(&s->mu);
}

static bool t_sess_new(void *arg)
{
    t_sess_t *s = arg;
    pthread_mutex_lock(&s->mu);
    bool n = s->news > 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void test_session_expiry(void)
{
    const char *root = "/t_expiry";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();
    t_sess_t s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    zk_client_on_session(zk, t_sess_cb, &s);
    t_register(bk, root, "available", "b1", "h1:1");
    meta_bookies_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, NULL, NULL, &b), MQ_OK);
    T_LISTED(b, "b1");

    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_sess_new, &s, T_WAIT_MS));
    /* Changes made around and after the expiry are all seen: the watches
     * were set again in the new session. */
    t_register(bk, root, "available", "b2", "h2:1");
    t_register(bk, root, "readonly", "b3", "h3:1");
    T_LISTED(b, "b1", "b2", "b3!");
    t_unregister(bk, root, "available", "b1");
    T_LISTED(b, "b2", "b3!");

    meta_bookies_free(b);
    zk_client_free(bk);
    zk_client_free(zk);
    pthread_mutex_destroy(&s.mu);
}

/* --- lifetime ------------------------------------------------------------------ */

typedef struct t_self_free {
    pthread_mutex_t mu;
    meta_bookies_t *b;
    int calls;
} t_self_free_t;

static void t_self_free_cb(void *arg)
{
    t_self_free_t *f = arg;
    pthread_mutex_lock(&f->mu);
    meta_bookies_t *b = f->b;
    f->b = NULL;
    f->calls++;
    pthread_mutex_unlock(&f->mu);
    if (b) {
        meta_bookies_free(b);
    }
}

static bool t_self_freed(void *arg)
{
    t_self_free_t *f = arg;
    pthread_mutex_lock(&f->mu);
    bool done = f->calls > 0;
    pthread_mutex_unlock(&f->mu);
    return done;
}

static void test_free_from_callback_and_outstanding(void)
{
    const char *root = "/t_life";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();

    /* Freed from its own callback. */
    t_self_free_t f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.mu, NULL);
    meta_bookies_t *b = NULL;
    pthread_mutex_lock(&f.mu);
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, t_self_free_cb, &f, &b), MQ_OK);
    f.b = b;
    pthread_mutex_unlock(&f.mu);
    t_register(bk, root, "available", "x1", NULL);
    CU_ASSERT_TRUE(mq_test_wait(t_self_freed, &f, T_WAIT_MS));

    /* Freed with its watches outstanding: they fire into nothing. */
    t_cb_t cb;
    memset(&cb, 0, sizeof(cb));
    pthread_mutex_init(&cb.mu, NULL);
    meta_bookies_t *gone = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, t_cb_fn, &cb, &gone), MQ_OK);
    T_LISTED(gone, "x1");
    meta_bookies_free(gone);

    /* A live registry on the same client sees the next changes; the freed
     * ones never call back. */
    meta_bookies_t *live = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, NULL, NULL, &live), MQ_OK);
    t_register(bk, root, "available", "x2", NULL);
    t_register(bk, root, "readonly", "x3", NULL);
    T_LISTED(live, "x1", "x2", "x3!");
    t_unregister(bk, root, "available", "x1");
    T_LISTED(live, "x2", "x3!");
    /* And a session event after the free reaches nothing either. */
    CU_ASSERT_EQUAL(zk_client_test_expire(zk), MQ_OK);
    t_register(bk, root, "available", "x4", NULL);
    T_LISTED(live, "x2", "x3!", "x4");
    CU_ASSERT_EQUAL(t_cb_calls(&cb), 0);
    pthread_mutex_lock(&f.mu);
    CU_ASSERT_EQUAL(f.calls, 1);
    pthread_mutex_unlock(&f.mu);

    meta_bookies_free(live);
    meta_bookies_free(NULL);
    zk_client_free(bk);
    zk_client_free(zk);
    pthread_mutex_destroy(&cb.mu);
    pthread_mutex_destroy(&f.mu);

    CU_ASSERT_EQUAL(meta_bookies_new(NULL, root, NULL, NULL, &b), MQ_EINVAL);
}

/* --- placement ---------------------------------------------------------------- */

static void test_choose_even_and_excluding(void)
{
    const char *root = "/t_choose";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();
    meta_bookies_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, NULL, NULL, &b), MQ_OK);
    static const char *const ids[] = {"b0:1", "b1:1", "b2:1", "b3:1", "b4:1", "b5:1", "b6:1"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(ids); i++) {
        t_register(bk, root, "available", ids[i], NULL);
    }
    t_register(bk, root, "readonly", "ro:1", NULL);
    T_LISTED(b, "b0:1", "b1:1", "b2:1", "b3:1", "b4:1", "b5:1", "b6:1", "ro:1!");

    /* 5 of 7, many times: each chosen within +-1 of the mean at every step. */
    int count[7] = {0};
    const int rounds = 700;
    for (int r = 0; r < rounds; r++) {
        char out[5][META_BOOKIE_ID_MAX];
        CU_ASSERT_EQUAL_FATAL(meta_bookies_choose(b, 5, NULL, 0, out), MQ_OK);
        for (int i = 0; i < 5; i++) {
            CU_ASSERT_TRUE(strcmp(out[i], "ro:1") != 0);
            for (int k = 0; k < i; k++) {
                CU_ASSERT_TRUE(strcmp(out[i], out[k]) != 0);
            }
            int which = out[i][1] - '0';
            CU_ASSERT_FATAL(which >= 0 && which < 7);
            count[which]++;
        }
        double mean = (double)(r + 1) * 5 / 7;
        for (int i = 0; i < 7; i++) {
            CU_ASSERT_TRUE(count[i] >= mean - 1 && count[i] <= mean + 1);
        }
    }
    CU_ASSERT_EQUAL(count[0] + count[1] + count[2] + count[3] + count[4] + count[5] + count[6],
                    rounds * 5);

    /* Exclusions. */
    const char *const excl[] = {"b2:1", "b5:1", "not-registered"};
    for (int r = 0; r < 50; r++) {
        char out[5][META_BOOKIE_ID_MAX];
        CU_ASSERT_EQUAL_FATAL(meta_bookies_choose(b, 5, excl, 3, out), MQ_OK);
        for (int i = 0; i < 5; i++) {
            CU_ASSERT_TRUE(strcmp(out[i], "b2:1") != 0 && strcmp(out[i], "b5:1") != 0);
            CU_ASSERT_TRUE(strcmp(out[i], "ro:1") != 0);
        }
    }
    /* Too few qualify: nothing written. */
    char out[8][META_BOOKIE_ID_MAX];
    memset(out, 'Q', sizeof(out));
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 6, excl, 3, out), MQ_ENOTENOUGHBOOKIES);
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 8, NULL, 0, out), MQ_ENOTENOUGHBOOKIES);
    for (size_t i = 0; i < sizeof(out); i++) {
        CU_ASSERT_EQUAL_FATAL(((char *)out)[i], 'Q');
    }
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 7, NULL, 0, out), MQ_OK);
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 0, NULL, 0, out), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_bookies_choose(b, META_MAX_ENSEMBLE + 1, NULL, 0, out), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 1, NULL, 2, out), MQ_EINVAL);

    /* A bookie that goes read-only is no longer chosen. */
    t_register(bk, root, "readonly", "b0:1", NULL);
    t_unregister(bk, root, "available", "b0:1");
    T_LISTED(b, "b0:1!", "b1:1", "b2:1", "b3:1", "b4:1", "b5:1", "b6:1", "ro:1!");
    for (int r = 0; r < 30; r++) {
        char six[6][META_BOOKIE_ID_MAX];
        CU_ASSERT_EQUAL_FATAL(meta_bookies_choose(b, 6, NULL, 0, six), MQ_OK);
        for (int i = 0; i < 6; i++) {
            CU_ASSERT_TRUE(strcmp(six[i], "b0:1") != 0);
        }
    }
    CU_ASSERT_EQUAL(meta_bookies_choose(b, 7, NULL, 0, out), MQ_ENOTENOUGHBOOKIES);

    meta_bookies_free(b);
    zk_client_free(bk);
    zk_client_free(zk);
}

/* Choosing from many threads while the set changes (for TSan). */
typedef struct t_chooser {
    meta_bookies_t *b;
    int ok;
    int short_of;
} t_chooser_t;

static void *t_chooser_main(void *arg)
{
    t_chooser_t *c = arg;
    for (int i = 0; i < 300; i++) {
        char out[3][META_BOOKIE_ID_MAX];
        mq_err_t err = meta_bookies_choose(c->b, 3, NULL, 0, out);
        c->ok += err == MQ_OK;
        c->short_of += err == MQ_ENOTENOUGHBOOKIES;
        meta_bookie_info_t *list;
        size_t n;
        if (meta_bookies_list(c->b, &list, &n) == MQ_OK) {
            free(list);
        }
        char addr[META_BOOKIE_ID_MAX];
        meta_bookies_address(c->b, "c1", addr, sizeof(addr));
    }
    return NULL;
}

static void test_choose_concurrent(void)
{
    const char *root = "/t_conc";
    zk_client_t *zk = t_client();
    zk_client_t *bk = t_client();
    meta_bookies_t *b = NULL;
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "c%d", i);
        t_register(bk, root, "available", id, "h:1");
    }
    CU_ASSERT_EQUAL_FATAL(meta_bookies_new(zk, root, NULL, NULL, &b), MQ_OK);
    T_LISTED(b, "c0", "c1", "c2", "c3");
    t_chooser_t c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (t_chooser_t){b, 0, 0};
        pthread_create(&th[i], NULL, t_chooser_main, &c[i]);
    }
    for (int i = 0; i < 6; i++) {
        t_unregister(bk, root, "available", "c1");
        t_register(bk, root, "available", "c1", "h:2");
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(c[i].ok + c[i].short_of, 300);
        CU_ASSERT_TRUE(c[i].ok > 0);
    }
    T_LISTED(b, "c0", "c1", "c2", "c3");
    meta_bookies_free(b);
    zk_client_free(bk);
    zk_client_free(zk);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"registry follows registrations", test_registry_follows_changes},
        {"watches do not pile up", test_watches_do_not_pile_up},
        {"session expiry: still follows", test_session_expiry},
        {"free from the callback, free with watches out", test_free_from_callback_and_outstanding},
        {"choose: even, excluding, not enough", test_choose_even_and_excluding},
        {"choose from threads while the set changes", test_choose_concurrent},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("meta_bookies", tests, t_init, t_cleanup);
}
