/*
 * meta_store against a real ZooKeeper: create / read / compare-and-set write /
 * stale write / delete / missing; records that do not decode (garbage, an
 * empty node, another ledger's record) give MQ_ECORRUPT; id allocation
 * starts at 1, never repeats (two clients x four threads, all distinct and
 * increasing per thread), survives deletes, refuses a corrupt idgen; async
 * read and write complete on the event thread with the right errors, and
 * refused calls never call back.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_store.h"
#include "mq_test.h"
#include "mq_util.h"
#include "zk_client.h"

#define T_WAIT_MS 15000

static char t_hostport[64];
static const char t_digest[] = "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

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

static void t_record(meta_ledger_t *md, uint64_t id)
{
    const char *ens[] = {"b1:3181", "b2:3181", "b3:3181"};
    meta_ledger_init(md, id, 3, 2, 2, ens, t_digest);
    meta_ledger_set_custom(md, "topic", "orders");
}

static bool t_same(const meta_ledger_t *a, const meta_ledger_t *b)
{
    char *x;
    char *y;
    size_t xn;
    size_t yn;
    if (meta_ledger_encode(a, &x, &xn) != MQ_OK) {
        return false;
    }
    if (meta_ledger_encode(b, &y, &yn) != MQ_OK) {
        free(x);
        return false;
    }
    bool same = xn == yn && memcmp(x, y, xn) == 0;
    free(x);
    free(y);
    return same;
}

static bool t_on_event_thread(void)
{
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strncmp(name, "zk-ev", 5) == 0;
}

/* --- records --------------------------------------------------------------- */

static void test_crud_and_cas(void)
{
    zk_client_t *zk = t_client();
    const char *root = "/t_crud";
    uint64_t id;
    CU_ASSERT_EQUAL_FATAL(meta_alloc_ledger_id(zk, root, &id), MQ_OK);
    CU_ASSERT_EQUAL(id, 1);

    meta_ledger_t md;
    t_record(&md, id);
    CU_ASSERT_EQUAL(md.version, -1);
    CU_ASSERT_EQUAL(meta_ledger_create(zk, root, &md), MQ_OK);
    CU_ASSERT_EQUAL(md.version, 0);
    char path[256];
    meta_ledger_path(root, id, path, sizeof(path));
    CU_ASSERT_STRING_EQUAL(path, "/t_crud/ledgers/000/0000/0000/0000/L0001");
    CU_ASSERT_EQUAL(zk_exists(zk, path, NULL), MQ_OK);
    /* Taken. */
    meta_ledger_t dup;
    t_record(&dup, id);
    CU_ASSERT_EQUAL(meta_ledger_create(zk, root, &dup), MQ_EEXIST);
    CU_ASSERT_EQUAL(dup.version, -1);
    meta_ledger_fini(&dup);

    meta_ledger_t got;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_read(zk, root, id, &got), MQ_OK);
    CU_ASSERT_EQUAL(got.version, 0);
    CU_ASSERT_TRUE(t_same(&md, &got));
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&got, "topic"), "orders");

    /* CAS write from the copy just read. */
    meta_ledger_t stale;
    meta_ledger_copy(&stale, &got);
    got.state = META_LEDGER_CLOSED;
    got.last_entry_id = 41;
    got.length = 4200;
    meta_ledger_replace_bookie(&got, 20, 1, "b4:3181");
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &got), MQ_OK);
    CU_ASSERT_EQUAL(got.version, 1);
    /* The other copy is stale: it loses and changes nothing. */
    stale.state = META_LEDGER_IN_RECOVERY;
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &stale), MQ_EBADVERSION);
    CU_ASSERT_EQUAL(stale.version, 0);
    meta_ledger_t now;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_read(zk, root, id, &now), MQ_OK);
    CU_ASSERT_EQUAL(now.version, 1);
    CU_ASSERT_EQUAL(now.state, META_LEDGER_CLOSED);
    CU_ASSERT_EQUAL(now.nsegments, 2);
    CU_ASSERT_TRUE(t_same(&got, &now));
    meta_ledger_fini(&now);
    /* Re-read, re-apply, and it goes through. */
    meta_ledger_fini(&stale);
    CU_ASSERT_EQUAL_FATAL(meta_ledger_read(zk, root, id, &stale), MQ_OK);
    stale.ctime_ms++;
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &stale), MQ_OK);
    CU_ASSERT_EQUAL(stale.version, 2);
    /* A record never read or created has no version to compare with. */
    md.version = -1;
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &md), MQ_EINVAL);
    /* One that cannot be encoded is not written. */
    stale.ack_quorum = 3;
    stale.write_quorum = 2;
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &stale), MQ_EINVAL);

    CU_ASSERT_EQUAL(meta_ledger_delete(zk, root, id), MQ_OK);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, id, &now), MQ_ENOLEDGER);
    CU_ASSERT_PTR_NULL(now.segments);
    meta_ledger_fini(&now);
    CU_ASSERT_EQUAL(meta_ledger_delete(zk, root, id), MQ_ENOLEDGER);
    CU_ASSERT_EQUAL(meta_ledger_write(zk, root, &got), MQ_ENOLEDGER);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, 999, &now), MQ_ENOLEDGER);
    meta_ledger_fini(&now);

    /* A 19-digit id lives where the layout says. */
    meta_ledger_t big;
    t_record(&big, 1234567890123456789ull);
    CU_ASSERT_EQUAL(meta_ledger_create(zk, root, &big), MQ_OK);
    CU_ASSERT_EQUAL(zk_exists(zk, "/t_crud/ledgers/123/4567/8901/2345/L6789", NULL), MQ_OK);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, big.id, &now), MQ_OK);
    CU_ASSERT_TRUE(t_same(&big, &now));
    meta_ledger_fini(&now);
    meta_ledger_fini(&big);

    /* Bad arguments. */
    CU_ASSERT_EQUAL(meta_ledger_create(NULL, root, &md), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, id, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, NULL), MQ_EINVAL);

    meta_ledger_fini(&stale);
    meta_ledger_fini(&got);
    meta_ledger_fini(&md);
    zk_client_free(zk);
}

static void test_corrupt_records(void)
{
    zk_client_t *zk = t_client();
    const char *root = "/t_garbled";
    meta_ledger_t md;
    t_record(&md, 7);
    CU_ASSERT_EQUAL_FATAL(meta_ledger_create(zk, root, &md), MQ_OK);
    char path[256];
    meta_ledger_path(root, 7, path, sizeof(path));

    meta_ledger_t out;
    static const char *const garbage[] = {
        "garbage",
        "",
        "# LedgerMQ ledger metadata\nversion=1\n",
        "\xff\xfe\x00\x01 binary",
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(garbage); i++) {
        size_t len = i == 3 ? 12 : strlen(garbage[i]);
        CU_ASSERT_EQUAL(zk_set(zk, path, garbage[i], len, -1, NULL), MQ_OK);
        CU_ASSERT_EQUAL(meta_ledger_read(zk, root, 7, &out), MQ_ECORRUPT);
        CU_ASSERT_PTR_NULL(out.segments);
        CU_ASSERT_PTR_NULL(out.custom);
        meta_ledger_fini(&out);
    }
    /* A valid record, of another ledger, at this ledger's path. */
    meta_ledger_t other;
    t_record(&other, 8);
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(&other, &text, &len), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, path, text, len, -1, NULL), MQ_OK);
    free(text);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, 7, &out), MQ_ECORRUPT);
    CU_ASSERT_PTR_NULL(out.segments);
    meta_ledger_fini(&out);
    /* Repaired, it reads again. */
    CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(&md, &text, &len), MQ_OK);
    CU_ASSERT_EQUAL(zk_set(zk, path, text, len, -1, NULL), MQ_OK);
    free(text);
    CU_ASSERT_EQUAL(meta_ledger_read(zk, root, 7, &out), MQ_OK);
    CU_ASSERT_EQUAL(out.version, 6);
    meta_ledger_fini(&out);
    meta_ledger_fini(&other);
    meta_ledger_fini(&md);
    zk_client_free(zk);
}

/* --- ids ------------------------------------------------------------------- */

static void test_ids_sequence(void)
{
    zk_client_t *zk = t_client();
    const char *root = "/t_ids/";
    uint64_t id;
    for (uint64_t want = 1; want <= 5; want++) {
        CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, &id), MQ_OK);
        CU_ASSERT_EQUAL(id, want);
    }
    char *data = NULL;
    CU_ASSERT_EQUAL(zk_get(zk, "/t_ids/ledgers/idgen", &data, NULL, NULL), MQ_OK);
    CU_ASSERT_STRING_EQUAL(data, "next=6");
    free(data);
    /* Deleting ledgers never gives their ids back. */
    meta_ledger_t md;
    t_record(&md, 5);
    CU_ASSERT_EQUAL(meta_ledger_create(zk, root, &md), MQ_OK);
    CU_ASSERT_EQUAL(meta_ledger_delete(zk, root, 5), MQ_OK);
    CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, &id), MQ_OK);
    CU_ASSERT_EQUAL(id, 6);
    meta_ledger_fini(&md);
    /* A corrupt generator is refused, not guessed at. */
    static const char *const bad[] = {
        "next=", "next=0", "next=abc", "nxt=7", "", "next=-3", "next=99999999999999999999"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_EQUAL(zk_set(zk, "/t_ids/ledgers/idgen", bad[i], strlen(bad[i]), -1, NULL),
                        MQ_OK);
        id = 77;
        CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, &id), MQ_ECORRUPT);
        CU_ASSERT_EQUAL(id, 77);
    }
    /* Exhausted. */
    CU_ASSERT_EQUAL(zk_set(zk, "/t_ids/ledgers/idgen", "next=9999999999999999999", 24, -1, NULL),
                    MQ_OK);
    CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, &id), MQ_ENOSPC);
    /* A newline after the number is accepted (hand-made generators). */
    CU_ASSERT_EQUAL(zk_set(zk, "/t_ids/ledgers/idgen", "next=40\n", 8, -1, NULL), MQ_OK);
    CU_ASSERT_EQUAL(meta_alloc_ledger_id(zk, root, &id), MQ_OK);
    CU_ASSERT_EQUAL(id, 40);
    zk_client_free(zk);
}

#define T_ALLOC_THREADS 4
#define T_ALLOC_EACH 60

typedef struct t_alloc {
    zk_client_t *zk;
    uint64_t ids[T_ALLOC_EACH];
    mq_err_t err;
} t_alloc_t;

static void *t_alloc_main(void *arg)
{
    t_alloc_t *a = arg;
    a->err = MQ_OK;
    for (int i = 0; i < T_ALLOC_EACH && a->err == MQ_OK; i++) {
        a->err = meta_alloc_ledger_id(a->zk, "/t_race", &a->ids[i]);
    }
    return NULL;
}

static int t_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_ids_concurrent(void)
{
    /* Two processes' worth of clients, four threads each, all racing from
     * the very first allocation (idgen does not exist yet). */
    zk_client_t *zk[2] = {t_client(), t_client()};
    t_alloc_t a[2 * T_ALLOC_THREADS];
    pthread_t th[2 * T_ALLOC_THREADS];
    for (int i = 0; i < 2 * T_ALLOC_THREADS; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].zk = zk[i % 2];
        pthread_create(&th[i], NULL, t_alloc_main, &a[i]);
    }
    for (int i = 0; i < 2 * T_ALLOC_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    const size_t total = 2 * T_ALLOC_THREADS * T_ALLOC_EACH;
    uint64_t *all = mq_malloc(total * sizeof(*all));
    size_t n = 0;
    for (int i = 0; i < 2 * T_ALLOC_THREADS; i++) {
        CU_ASSERT_EQUAL(a[i].err, MQ_OK);
        for (int k = 0; k < T_ALLOC_EACH; k++) {
            if (k > 0) {
                CU_ASSERT_TRUE(a[i].ids[k] > a[i].ids[k - 1]);
            }
            all[n++] = a[i].ids[k];
        }
    }
    /* Distinct, and with no failure in between, exactly 1..total. */
    qsort(all, n, sizeof(*all), t_u64_cmp);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(all[i], i + 1);
    }
    free(all);
    zk_client_free(zk[0]);
    zk_client_free(zk[1]);
}

/* --- async ----------------------------------------------------------------- */

typedef struct t_done {
    pthread_mutex_t mu;
    int calls;
    mq_err_t err;
    int32_t version;
    bool have_md;
    bool same;
    bool wrong_thread;
    const meta_ledger_t *want;
} t_done_t;

static void t_done_reset(t_done_t *d, const meta_ledger_t *want)
{
    pthread_mutex_lock(&d->mu);
    d->calls = 0;
    d->err = MQ_EZK;
    d->version = -100;
    d->have_md = false;
    d->same = false;
    d->wrong_thread = false;
    d->want = want;
    pthread_mutex_unlock(&d->mu);
}

static void t_write_done(mq_err_t err, int32_t new_version, void *arg)
{
    t_done_t *d = arg;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->err = err;
    d->version = new_version;
    d->wrong_thread |= !t_on_event_thread();
    pthread_mutex_unlock(&d->mu);
}

static void t_read_done(mq_err_t err, const meta_ledger_t *md, void *arg)
{
    t_done_t *d = arg;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->err = err;
    d->have_md = md != NULL;
    d->version = md ? md->version : -100;
    d->same = md && d->want && t_same(md, d->want);
    d->wrong_thread |= !t_on_event_thread();
    pthread_mutex_unlock(&d->mu);
}

static bool t_done_called(void *arg)
{
    t_done_t *d = arg;
    pthread_mutex_lock(&d->mu);
    bool c = d->calls > 0;
    pthread_mutex_unlock(&d->mu);
    return c;
}

static void test_async(void)
{
    zk_client_t *zk = t_client();
    const char *root = "/t_async";
    t_done_t d;
    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.mu, NULL);
    meta_ledger_t md;
    t_record(&md, 3);
    CU_ASSERT_EQUAL_FATAL(meta_ledger_create(zk, root, &md), MQ_OK);

    /* Write at the right version. */
    md.state = META_LEDGER_IN_RECOVERY;
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_write_async(zk, root, &md, t_write_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.calls, 1);
    CU_ASSERT_EQUAL(d.err, MQ_OK);
    CU_ASSERT_EQUAL(d.version, 1);
    CU_ASSERT_FALSE(d.wrong_thread);
    pthread_mutex_unlock(&d.mu);
    /* The caller's copy keeps its version: it is the caller's to update. */
    CU_ASSERT_EQUAL(md.version, 0);

    /* The same version again: stale. */
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_write_async(zk, root, &md, t_write_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.err, MQ_EBADVERSION);
    CU_ASSERT_EQUAL(d.version, -1);
    pthread_mutex_unlock(&d.mu);

    /* Read it back. */
    md.version = 1;
    t_done_reset(&d, &md);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 3, t_read_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.err, MQ_OK);
    CU_ASSERT_TRUE(d.have_md);
    CU_ASSERT_TRUE(d.same);
    CU_ASSERT_EQUAL(d.version, 1);
    CU_ASSERT_FALSE(d.wrong_thread);
    pthread_mutex_unlock(&d.mu);

    /* Missing. */
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 4, t_read_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.err, MQ_ENOLEDGER);
    CU_ASSERT_FALSE(d.have_md);
    pthread_mutex_unlock(&d.mu);
    meta_ledger_t four;
    t_record(&four, 4);
    four.version = 0;
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_write_async(zk, root, &four, t_write_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.err, MQ_ENOLEDGER);
    pthread_mutex_unlock(&d.mu);
    meta_ledger_fini(&four);

    /* Corrupt. */
    char path[256];
    meta_ledger_path(root, 3, path, sizeof(path));
    CU_ASSERT_EQUAL(zk_set(zk, path, "nonsense", 8, -1, NULL), MQ_OK);
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 3, t_read_done, &d), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &d, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.err, MQ_ECORRUPT);
    CU_ASSERT_FALSE(d.have_md);
    pthread_mutex_unlock(&d.mu);

    /* Refused calls never call back. */
    t_done_reset(&d, NULL);
    md.version = -1;
    CU_ASSERT_EQUAL(meta_ledger_write_async(zk, root, &md, t_write_done, &d), MQ_EINVAL);
    md.version = 2;
    md.ack_quorum = 3;
    CU_ASSERT_EQUAL(meta_ledger_write_async(zk, root, &md, t_write_done, &d), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 3, NULL, &d), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(NULL, root, 3, t_read_done, &d), MQ_EINVAL);
    /* A completion that is queued behind these would show up here: a
     * barrier through the event thread. */
    t_done_t barrier;
    memset(&barrier, 0, sizeof(barrier));
    pthread_mutex_init(&barrier.mu, NULL);
    t_done_reset(&barrier, NULL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 3, t_read_done, &barrier), MQ_OK);
    CU_ASSERT_TRUE(mq_test_wait(t_done_called, &barrier, T_WAIT_MS));
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.calls, 0);
    pthread_mutex_unlock(&d.mu);

    /* Completions still come when the client closes with them in flight. */
    t_done_reset(&d, NULL);
    CU_ASSERT_EQUAL(meta_ledger_read_async(zk, root, 3, t_read_done, &d), MQ_OK);
    zk_client_free(zk);
    pthread_mutex_lock(&d.mu);
    CU_ASSERT_EQUAL(d.calls, 1);
    pthread_mutex_unlock(&d.mu);
    pthread_mutex_destroy(&barrier.mu);
    pthread_mutex_destroy(&d.mu);
    meta_ledger_fini(&md);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"create, read, CAS write, stale write, delete", test_crud_and_cas},
        {"records that do not decode are MQ_ECORRUPT", test_corrupt_records},
        {"ids from 1, never reused, corrupt idgen refused", test_ids_sequence},
        {"ids from 2 clients x 4 threads are distinct", test_ids_concurrent},
        {"async read and write", test_async},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("meta_store", tests, t_init, t_cleanup);
}
