/*
 * zk_ephemeral: ephemeral nodes that outlive session expiry.
 *
 * The registry (zk->ephs, under zk->mu) remembers each registered node's
 * path and latest data, and the session generation (zk->gen) in which it was
 * last made to exist. After an expiry the recovery step on the event thread
 * calls zk_eph_resync(), which installs every entry whose generation is not
 * the current one: created with its parents, or, when a node of our own
 * session is already there, given our data. An entry that cannot be
 * installed (connection trouble, or another session holds the path) is
 * retried every second from the event thread.
 *
 * zk_ephemeral_register runs on the caller's thread. Its entry is not
 * "registered" (resync, update and unregister ignore it) until the node
 * exists in the session that is current at that moment; if the session
 * changed under it, it installs again on the new one. When the path is held
 * by another session (a previous incarnation of this process, kill -9'ed
 * before its session timed out), it waits on an exists-watch, up to 1.5
 * times the negotiated session timeout: the server expires a session between
 * its timeout and one tick later, and a tick is at most half the minimum
 * timeout. The watch is an internal waiter, fired from ZooKeeper's thread,
 * so registering from the event thread works too.
 *
 * zk->eph_mu serialises update, unregister and resync (all of which write
 * the node); register never takes it (it may wait for seconds).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mq_log.h"
#include "mq_util.h"
#include "zk_client.h"
#include "zk_int.h"

/* Resync retry period while some entry cannot be installed. */
#define ZK_EPH_RETRY_MS 1000
/* Install attempts without waiting (resync, update): each round handles one
 * race with another writer of the path. */
#define ZK_EPH_ROUNDS 8

static zk_eph_t *zk_eph_find_locked(zk_client_t *zk, const char *path)
{
    for (zk_eph_t *e = zk->ephs; e; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }
    return NULL;
}

static void zk_eph_unlink_locked(zk_client_t *zk, zk_eph_t *e)
{
    for (zk_eph_t **ep = &zk->ephs; *ep; ep = &(*ep)->next) {
        if (*ep == e) {
            *ep = e->next;
            return;
        }
    }
}

static void zk_eph_free(zk_eph_t *e)
{
    free(e->path);
    free(e->data);
    free(e);
}

static char *zk_eph_copy(const void *data, size_t len)
{
    char *c = mq_malloc(len + 1);
    if (len > 0) {
        memcpy(c, data, len);
    }
    c[len] = '\0';
    return c;
}

/* The node now exists in session generation gen: record it unless the
 * session changed meanwhile (then the caller installs again). */
static bool zk_eph_installed(zk_client_t *zk, zk_eph_t *e, uint64_t gen, bool registering)
{
    pthread_mutex_lock(&zk->mu);
    bool same = zk->gen == gen && zk->sess != NULL;
    if (same) {
        e->gen = gen;
        if (registering) {
            e->registered = true;
        }
    }
    pthread_mutex_unlock(&zk->mu);
    return same;
}

/*
 * Makes e's node exist in the current session with e's data. With a waiter,
 * a node held by another session is waited for until deadline_ms
 * (mq_now_ms clock); without one that is MQ_EEXIST at once. e->data is
 * stable during the call (see the file comment).
 */
static mq_err_t zk_eph_install(zk_client_t *zk, zk_eph_t *e, zk_waiter_t *w, uint64_t deadline_ms,
                               bool registering)
{
    /* fresh: the path was just seen free, so try even past the deadline. */
    bool fresh = true;
    for (int round = 0;; round++) {
        pthread_mutex_lock(&zk->mu);
        uint64_t gen = zk->gen;
        bool closing = zk->closing;
        pthread_mutex_unlock(&zk->mu);
        if (closing) {
            return MQ_ECLOSED;
        }
        if (w ? (round >= ZK_EPH_ROUNDS * 8 || (!fresh && mq_now_ms() >= deadline_ms))
              : round >= ZK_EPH_ROUNDS) {
            return MQ_EEXIST;
        }
        fresh = false;
        mq_err_t err = zk_create_parents(zk, e->path, e->data, e->len, ZK_EPHEMERAL, NULL, 0);
        if (err == MQ_OK) {
            if (zk_eph_installed(zk, e, gen, registering)) {
                return MQ_OK;
            }
            continue;
        }
        if (err != MQ_EEXIST) {
            return err;
        }

        zk_stat_t st;
        if (w) {
            pthread_mutex_lock(&zk->mu);
            w->fired = false;
            pthread_mutex_unlock(&zk->mu);
            err = zk_ops_exists_waiter(zk, e->path, w, &st);
        } else {
            err = zk_exists(zk, e->path, &st);
        }
        if (err == MQ_ENOTFOUND) {
            fresh = true; /* it just went: create again */
            continue;
        }
        if (err != MQ_OK) {
            return err;
        }
        int64_t sid = zk_client_session_id(zk);
        if (st.ephemeral_owner == sid) {
            err = zk_set(zk, e->path, e->data, e->len, -1, NULL);
            if (err == MQ_ENOTFOUND) {
                continue;
            }
            if (err != MQ_OK) {
                return err;
            }
            if (zk_eph_installed(zk, e, gen, registering)) {
                return MQ_OK;
            }
            continue;
        }
        if (st.ephemeral_owner == 0) {
            MQ_LOG_WARN("zk ephemeral path=%s is taken by a persistent node", e->path);
            return MQ_EEXIST;
        }
        if (!w) {
            return MQ_EEXIST;
        }
        MQ_LOG_INFO(
            "zk ephemeral path=%s held by session=0x%llx, waiting up to %llu ms", e->path,
            (unsigned long long)st.ephemeral_owner,
            (unsigned long long)(deadline_ms > mq_now_ms() ? deadline_ms - mq_now_ms() : 0));
        struct timespec ts;
        ts.tv_sec = (time_t)(deadline_ms / 1000);
        ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
        pthread_mutex_lock(&zk->mu);
        while (!w->fired && !zk->closing) {
            if (pthread_cond_timedwait(&zk->cond, &zk->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        fresh = w->fired;
        pthread_mutex_unlock(&zk->mu);
        if (!fresh && mq_now_ms() >= deadline_ms) {
            MQ_LOG_INFO("zk ephemeral path=%s still held by session=0x%llx", e->path,
                        (unsigned long long)st.ephemeral_owner);
            return MQ_EEXIST;
        }
    }
}

mq_err_t zk_ephemeral_register(zk_client_t *zk, const char *path, const void *data, size_t len)
{
    if (!zk || !path || path[0] != '/' || (!data && len > 0) || len > (size_t)INT_MAX) {
        return MQ_EINVAL;
    }
    zk_eph_t *e = mq_calloc(1, sizeof(*e));
    e->path = mq_strdup(path);
    e->data = zk_eph_copy(data, len);
    e->len = len;
    mq_err_t err = MQ_OK;
    pthread_mutex_lock(&zk->mu);
    if (zk->closing) {
        err = MQ_ECLOSED;
    } else if (zk_eph_find_locked(zk, path)) {
        err = MQ_EEXIST;
    } else {
        e->next = zk->ephs;
        zk->ephs = e;
    }
    uint64_t timeout = (uint64_t)zk->timeout_ms;
    pthread_mutex_unlock(&zk->mu);
    if (err != MQ_OK) {
        zk_eph_free(e);
        return err;
    }
    zk_waiter_t w = {false};
    err = zk_eph_install(zk, e, &w, mq_now_ms() + timeout * 3 / 2, true);
    /* Its exists-watch may still be set: it must not touch w any more. */
    zk_client_forget(zk, &w, false);
    if (err != MQ_OK) {
        pthread_mutex_lock(&zk->mu);
        zk_eph_unlink_locked(zk, e);
        pthread_mutex_unlock(&zk->mu);
        zk_eph_free(e);
    }
    return err;
}

/* On MQ_ESESSION or MQ_ECONN the new data is kept all the same: it is what a
 * new session re-creates. */
mq_err_t zk_ephemeral_update(zk_client_t *zk, const char *path, const void *data, size_t len)
{
    if (!zk || !path || (!data && len > 0) || len > (size_t)INT_MAX) {
        return MQ_EINVAL;
    }
    char *copy = zk_eph_copy(data, len);
    pthread_mutex_lock(&zk->eph_mu);
    pthread_mutex_lock(&zk->mu);
    zk_eph_t *e = zk_eph_find_locked(zk, path);
    if (!e || !e->registered) {
        mq_err_t err = zk->closing ? MQ_ECLOSED : MQ_ENOTFOUND;
        pthread_mutex_unlock(&zk->mu);
        pthread_mutex_unlock(&zk->eph_mu);
        free(copy);
        return err;
    }
    free(e->data);
    e->data = copy;
    e->len = len;
    bool alive = zk->sess != NULL;
    bool installed = alive && e->gen == zk->gen;
    pthread_mutex_unlock(&zk->mu);

    mq_err_t err;
    if (!alive) {
        err = zk->closing ? MQ_ECLOSED : MQ_ESESSION;
    } else if (installed) {
        err = zk_set(zk, path, data, len, -1, NULL);
        if (err == MQ_ENOTFOUND) {
            /* Deleted behind our back: put it back. */
            err = zk_eph_install(zk, e, NULL, 0, false);
        }
    } else {
        err = zk_eph_install(zk, e, NULL, 0, false);
    }
    pthread_mutex_unlock(&zk->eph_mu);
    return err;
}

mq_err_t zk_ephemeral_unregister(zk_client_t *zk, const char *path)
{
    if (!zk || !path) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&zk->eph_mu);
    pthread_mutex_lock(&zk->mu);
    zk_eph_t *e = zk_eph_find_locked(zk, path);
    if (!e || !e->registered) {
        pthread_mutex_unlock(&zk->mu);
        pthread_mutex_unlock(&zk->eph_mu);
        return MQ_ENOTFOUND;
    }
    zk_eph_unlink_locked(zk, e);
    bool installed = zk->sess != NULL && e->gen == zk->gen;
    int64_t sid = zk->session_id;
    pthread_mutex_unlock(&zk->mu);

    mq_err_t err = MQ_OK;
    if (installed) {
        /* Only our own node: the path may have changed hands meanwhile. */
        zk_stat_t st;
        err = zk_exists(zk, path, &st);
        if (err == MQ_OK && st.ephemeral_owner == sid) {
            err = zk_delete(zk, path, st.version);
        }
        /* Gone already, or going with the session: forgotten either way. */
        if (err == MQ_ENOTFOUND || err == MQ_ESESSION || err == MQ_EBADVERSION) {
            err = MQ_OK;
        }
    }
    pthread_mutex_unlock(&zk->eph_mu);
    zk_eph_free(e);
    return err;
}

static void zk_eph_retry(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(arg);
    pthread_mutex_lock(&zk->mu);
    zk->eph_retry = false;
    pthread_mutex_unlock(&zk->mu);
    zk_eph_resync(zk);
}

void zk_eph_resync(zk_client_t *zk)
{
    bool again = false;
    pthread_mutex_lock(&zk->eph_mu);
    uint64_t pass = ++zk->eph_pass;
    for (;;) {
        /* Start from the head every time: register may add and remove its
         * own (unregistered) entries while we are not holding mu. */
        pthread_mutex_lock(&zk->mu);
        zk_eph_t *e = zk->ephs;
        while (e && (!e->registered || e->gen == zk->gen || e->pass == pass)) {
            e = e->next;
        }
        bool stop = zk->closing || !zk->sess;
        if (e) {
            e->pass = pass;
        }
        pthread_mutex_unlock(&zk->mu);
        if (!e || stop) {
            break;
        }
        mq_err_t err = zk_eph_install(zk, e, NULL, 0, false);
        if (err == MQ_OK) {
            MQ_LOG_DEBUG("zk ephemeral re-created path=%s", e->path);
            continue;
        }
        if (err == MQ_ESESSION || err == MQ_ECLOSED) {
            break; /* the next session does it */
        }
        MQ_LOG_WARN("zk ephemeral not re-created yet path=%s err=%s", e->path, mq_err_name(err));
        again = true;
    }
    pthread_mutex_unlock(&zk->eph_mu);
    if (again) {
        pthread_mutex_lock(&zk->mu);
        if (!zk->eph_retry && !zk->closing) {
            zk->eph_retry = true;
            zk_client_post_task_locked(zk, zk_eph_retry, NULL, ZK_EPH_RETRY_MS, false, false);
        }
        pthread_mutex_unlock(&zk->mu);
    }
}

void zk_eph_free_all(zk_client_t *zk)
{
    while (zk->ephs) {
        zk_eph_t *e = zk->ephs;
        zk->ephs = e->next;
        zk_eph_free(e);
    }
}
