/*
 * zk_lock: the ephemeral-sequential lock recipe (see zk_lock.h).
 *
 * A lock's state machine runs on the client's event thread only: the first
 * step is posted by zk_lock_new, the next ones come from its watch on the
 * predecessor, its session listener and its retry timer, all tasks and
 * callbacks carrying the lock as their argument. One step (zk_lock_run)
 * creates our node if we have none, lists the directory and either holds
 * (lowest "lock-" child) or watches the node just below ours; a predecessor
 * that vanished between the listing and the exists call, or our own node
 * gone, simply means another round. Errors (connection loss, no session)
 * schedule another step; so does a reconnect or a new session.
 *
 * Holding. The callback is told held=true when we are lowest and false as
 * soon as we cannot be sure any more: when the connection drops (another
 * contender may take over if the session then expires; Curator's default)
 * or the session expires. After a reconnect within the session or a new
 * session the lock contends again on its own and is told true again when it
 * is lowest.
 *
 * Orphans. A create that ends in connection loss may or may not have
 * created our node. Such an orphan would block every contender until our
 * session ends, so after it the next listing deletes every lock node that
 * belongs to our session and that no lock of this client claims
 * (zk_client_claim). Lock directories must therefore only hold nodes made by
 * zk_lock.
 *
 * Freeing. zk_lock_free marks the lock closed and calls zk_client_forget
 * with a barrier: queued tasks and events for it are dropped, its listener
 * and watches are muted, and a step running now on the event thread is
 * waited for. From then on the lock's fields are the freeing thread's: it
 * deletes our node and frees.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"
#include "zk_client.h"
#include "zk_int.h"
#include "zk_lock.h"

#define ZK_LOCK_PREFIX "lock-"
#define ZK_LOCK_PREFIX_LEN (sizeof(ZK_LOCK_PREFIX) - 1)
/* Delay before another step after an error. */
#define ZK_LOCK_RETRY_MS 500
/* Steps in a row within one run (each handles one race). */
#define ZK_LOCK_ROUNDS 8
/* zk_lock_holder: attempts when the lowest node goes while we read it. */
#define ZK_LOCK_HOLDER_ROUNDS 16

struct zk_lock {
    zk_client_t *zk;
    char *dir;
    char *data;
    size_t len;
    zk_lock_cb cb;
    void *arg;
    atomic_bool held; /* any thread */
    atomic_bool closed;

    /* @locality event thread (until zk_lock_free forgot the lock) */
    char *node; /* "<dir>/lock-<seq>", NULL when we have none */
    int64_t node_sid;
    bool told;   /* what the callback was last told */
    bool unsure; /* a create ended in connection loss: maybe an orphan */
    bool retry_pending;
};

static char *zk_lock_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    size_t nl = strlen(name);
    bool root = dl == 1;
    char *p = mq_malloc(dl + nl + 2);
    memcpy(p, dir, dl);
    size_t off = root ? dl : dl + 1;
    p[dl] = '/';
    memcpy(p + off, name, nl + 1);
    return p;
}

static bool zk_lock_is_ours(const char *name)
{
    return strncmp(name, ZK_LOCK_PREFIX, ZK_LOCK_PREFIX_LEN) == 0;
}

/*
 * Deletes lock nodes under dir (listed in names) that belong to our session
 * and that no lock of this client claims, except keep. Sets *ok to false
 * when some could not be checked. Returns true when it deleted one.
 */
static bool zk_lock_sweep(zk_client_t *zk, const char *dir, const char *keep, char **names,
                          size_t n, bool *ok)
{
    int64_t sid = zk_client_session_id(zk);
    bool deleted = false;
    *ok = true;
    for (size_t i = 0; i < n; i++) {
        if (!zk_lock_is_ours(names[i])) {
            continue;
        }
        char *path = zk_lock_join(dir, names[i]);
        if ((keep && strcmp(path, keep) == 0) || zk_client_claimed(zk, path)) {
            free(path);
            continue;
        }
        zk_stat_t st;
        mq_err_t err = zk_exists(zk, path, &st);
        if (err == MQ_OK && st.ephemeral_owner == sid) {
            err = zk_delete(zk, path, st.version);
            if (err == MQ_OK) {
                MQ_LOG_INFO("zk lock deleted orphan node=%s", path);
                deleted = true;
            }
        }
        if (err != MQ_OK && err != MQ_ENOTFOUND) {
            *ok = false;
        }
        free(path);
    }
    return deleted;
}

static void zk_lock_tell(zk_lock_t *lock, bool held)
{
    if (lock->told == held) {
        return;
    }
    lock->told = held;
    atomic_store(&lock->held, held);
    MQ_LOG_INFO("zk lock %s dir=%s node=%s", held ? "acquired" : "released", lock->dir,
                lock->node ? lock->node : "-");
    lock->cb(lock, held, lock->arg);
}

static void zk_lock_drop(zk_lock_t *lock)
{
    if (lock->node) {
        zk_client_claim(lock->zk, lock->node, false);
        free(lock->node);
        lock->node = NULL;
    }
}

static void zk_lock_run(zk_lock_t *lock);

static void zk_lock_retry_task(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(zk);
    zk_lock_t *lock = arg;
    lock->retry_pending = false;
    zk_lock_run(lock);
}

static void zk_lock_schedule(zk_lock_t *lock)
{
    if (!lock->retry_pending) {
        lock->retry_pending = true;
        zk_client_post_task(lock->zk, zk_lock_retry_task, lock, ZK_LOCK_RETRY_MS, true, false);
    }
}

static void zk_lock_failed(zk_lock_t *lock, const char *what, mq_err_t err)
{
    if (err == MQ_ECLOSED) {
        return;
    }
    MQ_LOG_DEBUG("zk lock step failed dir=%s op=%s err=%s, retrying", lock->dir, what,
                 mq_err_name(err));
    zk_lock_schedule(lock);
}

static mq_err_t zk_lock_create(zk_lock_t *lock)
{
    char *prefix = zk_lock_join(lock->dir, ZK_LOCK_PREFIX);
    size_t cap = strlen(prefix) + 16;
    char *created = mq_malloc(cap);
    mq_err_t err = zk_create_parents(lock->zk, prefix, lock->data, lock->len,
                                     ZK_EPHEMERAL | ZK_SEQUENTIAL, created, cap);
    free(prefix);
    if (err == MQ_OK) {
        lock->node = created;
        lock->node_sid = zk_client_session_id(lock->zk);
        zk_client_claim(lock->zk, created, true);
        return MQ_OK;
    }
    free(created);
    if (err == MQ_ECONN) {
        lock->unsure = true;
    }
    return err;
}

static void zk_lock_on_watch(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    MQ_UNUSED(event);
    MQ_UNUSED(path);
    zk_lock_run(arg);
}

/* One step of the recipe (see the file comment). @locality event thread */
static void zk_lock_run(zk_lock_t *lock)
{
    zk_client_t *zk = lock->zk;
    for (int round = 0; round < ZK_LOCK_ROUNDS; round++) {
        if (atomic_load(&lock->closed)) {
            return;
        }
        mq_err_t err;
        if (!lock->node) {
            err = zk_lock_create(lock);
            if (err != MQ_OK) {
                zk_lock_failed(lock, "create", err);
                return;
            }
        }
        char **names = NULL;
        size_t n = 0;
        err = zk_children(zk, lock->dir, &names, &n);
        if (err == MQ_ENOTFOUND) {
            /* The directory was deleted, and our node with it. */
            zk_lock_tell(lock, false);
            zk_lock_drop(lock);
            continue;
        }
        if (err != MQ_OK) {
            zk_lock_failed(lock, "children", err);
            return;
        }
        if (lock->unsure) {
            bool ok;
            bool deleted = zk_lock_sweep(zk, lock->dir, lock->node, names, n, &ok);
            if (ok) {
                lock->unsure = false;
            }
            if (deleted) {
                zk_strings_free(names, n);
                continue;
            }
        }
        const char *ours = strrchr(lock->node, '/') + 1;
        size_t first = n;
        size_t pred = n;
        size_t me = n;
        for (size_t i = 0; i < n; i++) {
            if (!zk_lock_is_ours(names[i])) {
                continue;
            }
            if (first == n) {
                first = i;
            }
            if (strcmp(names[i], ours) == 0) {
                me = i;
                break;
            }
            pred = i;
        }
        if (me == n) {
            /* Our node is gone: deleted by someone, or with our session
             * (whose expiry we have not heard of yet). */
            zk_strings_free(names, n);
            zk_lock_tell(lock, false);
            zk_lock_drop(lock);
            continue;
        }
        if (me == first) {
            zk_strings_free(names, n);
            zk_lock_tell(lock, true);
            return;
        }
        zk_lock_tell(lock, false);
        char *pp = zk_lock_join(lock->dir, names[pred]);
        zk_strings_free(names, n);
        err = zk_exists_w(zk, pp, zk_lock_on_watch, lock, NULL);
        free(pp);
        if (err == MQ_ENOTFOUND) {
            continue; /* the predecessor went between the two calls */
        }
        if (err != MQ_OK) {
            zk_lock_failed(lock, "exists", err);
        }
        return;
    }
    zk_lock_schedule(lock);
}

static void zk_lock_start_task(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(zk);
    zk_lock_run(arg);
}

static void zk_lock_on_session(zk_client_t *zk, zk_session_event_t event, void *arg)
{
    MQ_UNUSED(zk);
    zk_lock_t *lock = arg;
    if (atomic_load(&lock->closed)) {
        return;
    }
    switch (event) {
    case ZK_SESSION_DISCONNECTED:
        zk_lock_tell(lock, false);
        break;
    case ZK_SESSION_EXPIRED:
        zk_lock_tell(lock, false);
        zk_lock_drop(lock);
        lock->unsure = false;
        break;
    case ZK_SESSION_CONNECTED:
    case ZK_SESSION_NEW:
        zk_lock_run(lock);
        break;
    }
}

mq_err_t zk_lock_new(zk_client_t *zk, const char *dir, const void *data, size_t len, zk_lock_cb cb,
                     void *arg, zk_lock_t **out)
{
    if (!zk || !dir || dir[0] != '/' || !cb || !out || (!data && len > 0)) {
        return MQ_EINVAL;
    }
    size_t dl = strlen(dir);
    if (dl > 1) {
        if (dir[dl - 1] == '/') {
            return MQ_EINVAL;
        }
        mq_err_t err = zk_create_parents(zk, dir, NULL, 0, ZK_PERSISTENT, NULL, 0);
        if (err != MQ_OK && err != MQ_EEXIST) {
            return err;
        }
    }
    zk_lock_t *lock = mq_calloc(1, sizeof(*lock));
    lock->zk = zk;
    lock->dir = mq_strdup(dir);
    lock->data = mq_malloc(len + 1);
    if (len > 0) {
        memcpy(lock->data, data, len);
    }
    lock->data[len] = '\0';
    lock->len = len;
    lock->cb = cb;
    lock->arg = arg;
    atomic_init(&lock->held, false);
    atomic_init(&lock->closed, false);
    zk_client_on_session(zk, zk_lock_on_session, lock);
    zk_client_post_task(zk, zk_lock_start_task, lock, 0, true, false);
    *out = lock;
    return MQ_OK;
}

bool zk_lock_held(zk_lock_t *lock)
{
    return atomic_load(&lock->held);
}

typedef struct zk_lock_sweeper {
    char *dir;
} zk_lock_sweeper_t;

/* Sweeps orphans of a freed lock on the event thread, where no other lock
 * of this client is half-way through creating its node. Runs even while
 * the client closes, to free its argument (the calls fail then). */
static void zk_lock_sweep_task(zk_client_t *zk, void *arg)
{
    zk_lock_sweeper_t *sw = arg;
    char **names = NULL;
    size_t n = 0;
    if (zk_children(zk, sw->dir, &names, &n) == MQ_OK) {
        bool ok;
        zk_lock_sweep(zk, sw->dir, NULL, names, n, &ok);
        zk_strings_free(names, n);
    }
    free(sw->dir);
    free(sw);
}

void zk_lock_free(zk_lock_t *lock)
{
    if (!lock) {
        return;
    }
    zk_client_t *zk = lock->zk;
    atomic_store(&lock->closed, true);
    zk_client_forget(zk, lock, true);
    if (lock->node) {
        if (lock->node_sid == zk_client_session_id(zk)) {
            mq_err_t err = zk_delete(zk, lock->node, -1);
            /* Closing or expired: the node goes with the session. */
            if (err != MQ_OK && err != MQ_ENOTFOUND && err != MQ_ECLOSED && err != MQ_ESESSION) {
                MQ_LOG_WARN("zk lock node not deleted node=%s err=%s (it goes with the session)",
                            lock->node, mq_err_name(err));
            }
        }
        zk_lock_drop(lock);
    }
    if (lock->unsure) {
        zk_lock_sweeper_t *sw = mq_calloc(1, sizeof(*sw));
        sw->dir = lock->dir;
        lock->dir = NULL;
        zk_client_post_task(zk, zk_lock_sweep_task, sw, 0, false, true);
    }
    free(lock->dir);
    free(lock->data);
    free(lock);
}

mq_err_t zk_lock_holder(zk_client_t *zk, const char *dir, char **data, size_t *len)
{
    if (!zk || !dir || !data) {
        return MQ_EINVAL;
    }
    for (int round = 0; round < ZK_LOCK_HOLDER_ROUNDS; round++) {
        char **names = NULL;
        size_t n = 0;
        mq_err_t err = zk_children(zk, dir, &names, &n);
        if (err != MQ_OK) {
            return err;
        }
        size_t first = n;
        for (size_t i = 0; i < n && first == n; i++) {
            if (zk_lock_is_ours(names[i])) {
                first = i;
            }
        }
        if (first == n) {
            zk_strings_free(names, n);
            return MQ_ENOTFOUND;
        }
        char *path = zk_lock_join(dir, names[first]);
        zk_strings_free(names, n);
        err = zk_get(zk, path, data, len, NULL);
        free(path);
        /* The holder went between the two calls: look again. */
        if (err != MQ_ENOTFOUND) {
            return err;
        }
    }
    return MQ_ENOTFOUND;
}
