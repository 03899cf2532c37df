/*
 * zk_ops: the public operations (get, exists, create, set, delete, children,
 * multi, and their async forms), each one asynchronous ZooKeeper call.
 *
 * A zk_call_t carries the request, the copied result and who waits for it.
 * It is linked in its session's outstanding calls from just before the
 * zoo_a* call until its completion. The completion runs on ZooKeeper's
 * completion thread (or on the thread that closes the handle, when the
 * client aborts it, see zk_client.c); it copies the result, settles the
 * watch the call set, and then either wakes the blocked caller (blocking
 * forms: the caller's stack holds the call) or posts the call to the event
 * thread, where the user's callback runs and the call is freed (async forms).
 * So a blocking call never needs the event thread and may be made from it.
 *
 * Every path is given to ZooKeeper with the client's chroot prepended, and
 * the names ZooKeeper returns are stripped of it.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

#include "mq_log.h"
#include "mq_util.h"
#include "zk_client.h"
#include "zk_int.h"

/* ZooKeeper's default jute.maxbuffer is 1 MiB for a whole packet; a larger
 * request makes the server drop the connection, so refuse it here. */
#define ZK_OPS_DATA_MAX (1024 * 1024 - 4096)
/* The longest sequence suffix ZooKeeper appends ("%010d", sign included). */
#define ZK_OPS_SEQ_LEN 11

typedef enum zk_call_kind {
    ZK_CALL_GET = 1,
    ZK_CALL_EXISTS,
    ZK_CALL_CREATE,
    ZK_CALL_SET,
    ZK_CALL_DELETE,
    ZK_CALL_CHILDREN,
    ZK_CALL_MULTI,
} zk_call_kind_t;

static const char *const zk_ops_names[] = {"?",   "get",    "exists",   "create",
                                           "set", "delete", "children", "multi"};

typedef struct zk_call {
    zk_link_t link; /* in sess->calls, @locks mu */
    zk_client_t *zk;
    zk_sess_t *sess;
    zk_call_kind_t kind;

    /* Request, borrowed until the zoo_a* call returned. */
    const char *fpath; /* chrooted */
    const char *wdata;
    int wlen;
    int32_t version;
    int mode;
    bool want_watch;
    zk_watch_cb wcb;
    void *warg;
    zk_waiter_t *waiter;
    const char *upath; /* the caller's path (for the watch and the log) */
    char *upath_owned; /* async calls keep their own copy */
    int nops;
    zoo_op_t *zops;
    zoo_op_result_t *results;

    /* Result. @locks mu until done, then the waiter's. */
    zk_watch_t *watch;
    bool blocking;
    pthread_cond_t cond;
    bool done;
    int zrc;
    mq_err_t err;
    char *rdata;
    size_t rlen;
    bool has_stat;
    zk_stat_t stat;
    char *created; /* without chroot */
    char **names;
    size_t count;

    /* Async completion (event thread). */
    zk_data_cb data_cb;
    zk_stat_cb stat_cb;
    zk_string_cb string_cb;
    void *arg;
} zk_call_t;

static void zk_ops_stat_copy(zk_stat_t *out, const struct Stat *s)
{
    out->czxid = s->czxid;
    out->mzxid = s->mzxid;
    out->ctime_ms = s->ctime;
    out->mtime_ms = s->mtime;
    out->version = s->version;
    out->cversion = s->cversion;
    out->ephemeral_owner = s->ephemeralOwner;
    out->data_length = s->dataLength;
    out->num_children = s->numChildren;
}

static void zk_ops_call_free(zk_call_t *call)
{
    free(call->rdata);
    free(call->created);
    free(call->upath_owned);
    zk_strings_free(call->names, call->count);
    free(call);
}

/* --- completion --------------------------------------------------------- */

static void zk_ops_deliver(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(zk);
    zk_call_t *call = arg;
    bool ok = call->err == MQ_OK;
    switch (call->kind) {
    case ZK_CALL_GET:
        if (call->data_cb) {
            call->data_cb(call->err, ok ? call->rdata : NULL, ok ? call->rlen : 0,
                          ok ? &call->stat : NULL, call->arg);
        }
        break;
    case ZK_CALL_SET:
        if (call->stat_cb) {
            call->stat_cb(call->err, ok ? &call->stat : NULL, call->arg);
        }
        break;
    case ZK_CALL_DELETE:
        if (call->stat_cb) {
            call->stat_cb(call->err, NULL, call->arg);
        }
        break;
    case ZK_CALL_CREATE:
        if (call->string_cb) {
            call->string_cb(call->err, ok ? call->created : NULL, call->arg);
        }
        break;
    default:
        MQ_ASSERT(!"async call of a kind with no async form");
    }
    zk_ops_call_free(call);
}

/* The call is complete (err_override: a failure of ours, e.g. no memory for
 * the copy). @locks mu */
static void zk_ops_finish_locked(zk_client_t *zk, zk_call_t *call, int rc, mq_err_t err_override)
{
    zk_client_call_done_locked(zk, call->sess, &call->link);
    if (call->watch) {
        /* ZooKeeper activates a watch exactly on these results. */
        bool activated = rc == ZOK || (call->kind == ZK_CALL_EXISTS && rc == ZNONODE);
        zk_client_watch_settle_locked(zk, call->watch, activated);
        call->watch = NULL;
    }
    call->zrc = rc;
    if (err_override != MQ_OK) {
        call->err = err_override;
    } else if (rc == ZCLOSING && call->sess->expired) {
        /* Aborted because we closed the expired handle. */
        call->err = MQ_ESESSION;
    } else {
        call->err = zk_err_from_zoo(rc);
    }
    if (call->err == MQ_EZK) {
        MQ_LOG_WARN("zk call failed op=%s path=%s rc=%d (%s)", zk_ops_names[call->kind],
                    call->upath ? call->upath : "-", rc, zerror(rc));
    }
    call->done = true;
    if (call->blocking) {
        pthread_cond_signal(&call->cond);
    } else {
        zk_client_post_task_locked(zk, zk_ops_deliver, call, 0, false, true);
    }
}

void zk_ops_abort_locked(zk_client_t *zk, zk_link_t *link)
{
    zk_call_t *call = MQ_CONTAINER_OF(link, zk_call_t, link);
    zk_ops_finish_locked(zk, call, ZCLOSING, MQ_OK);
}

static void zk_ops_on_data(int rc, const char *value, int value_len, const struct Stat *stat,
                           const void *data)
{
    zk_call_t *call = (zk_call_t *)data;
    zk_client_t *zk = call->zk;
    mq_err_t over = MQ_OK;
    char *copy = NULL;
    size_t n = 0;
    if (rc == ZOK) {
        n = value && value_len > 0 ? (size_t)value_len : 0;
        copy = mq_try_malloc(n + 1);
        if (copy) {
            if (n > 0) {
                memcpy(copy, value, n);
            }
            copy[n] = '\0';
        } else {
            over = MQ_ENOMEM;
        }
    }
    pthread_mutex_lock(&zk->mu);
    call->rdata = copy;
    call->rlen = n;
    if (rc == ZOK && stat) {
        zk_ops_stat_copy(&call->stat, stat);
        call->has_stat = true;
    }
    zk_ops_finish_locked(zk, call, rc, over);
    pthread_mutex_unlock(&zk->mu);
}

static void zk_ops_on_stat(int rc, const struct Stat *stat, const void *data)
{
    zk_call_t *call = (zk_call_t *)data;
    zk_client_t *zk = call->zk;
    pthread_mutex_lock(&zk->mu);
    if (rc == ZOK && stat) {
        zk_ops_stat_copy(&call->stat, stat);
        call->has_stat = true;
    }
    zk_ops_finish_locked(zk, call, rc, MQ_OK);
    pthread_mutex_unlock(&zk->mu);
}

static void zk_ops_on_string(int rc, const char *value, const void *data)
{
    zk_call_t *call = (zk_call_t *)data;
    zk_client_t *zk = call->zk;
    char *name = NULL;
    if (rc == ZOK && value) {
        name = mq_strdup(zk_client_unroot(zk, value));
    }
    pthread_mutex_lock(&zk->mu);
    call->created = name;
    zk_ops_finish_locked(zk, call, rc, MQ_OK);
    pthread_mutex_unlock(&zk->mu);
}

static void zk_ops_on_void(int rc, const void *data)
{
    zk_call_t *call = (zk_call_t *)data;
    zk_client_t *zk = call->zk;
    pthread_mutex_lock(&zk->mu);
    zk_ops_finish_locked(zk, call, rc, MQ_OK);
    pthread_mutex_unlock(&zk->mu);
}

static void zk_ops_on_strings(int rc, const struct String_vector *sv, const void *data)
{
    zk_call_t *call = (zk_call_t *)data;
    zk_client_t *zk = call->zk;
    mq_err_t over = MQ_OK;
    char **names = NULL;
    size_t count = 0;
    if (rc == ZOK && sv && sv->count > 0) {
        names = mq_try_malloc((size_t)sv->count * sizeof(*names));
        if (!names) {
            over = MQ_ENOMEM;
        }
        for (int32_t i = 0; names && i < sv->count; i++) {
            const char *s = sv->data[i] ? sv->data[i] : "";
            size_t n = strlen(s) + 1;
            names[count] = mq_try_malloc(n);
            if (!names[count]) {
                over = MQ_ENOMEM;
                zk_strings_free(names, count);
                names = NULL;
                count = 0;
                break;
            }
            memcpy(names[count++], s, n);
        }
    }
    pthread_mutex_lock(&zk->mu);
    call->names = names;
    call->count = count;
    zk_ops_finish_locked(zk, call, rc, over);
    pthread_mutex_unlock(&zk->mu);
}

/* --- submission --------------------------------------------------------- */

/* Sends the call. On failure no completion will come and nothing is left
 * registered. */
static mq_err_t zk_ops_submit(zk_client_t *zk, zk_call_t *call)
{
    zk_sess_t *sess;
    zhandle_t *zh;
    call->zk = zk;
    mq_err_t err = zk_client_sess_acquire(zk, &call->link, &sess, &zh);
    if (err != MQ_OK) {
        return err;
    }
    call->sess = sess;
    if (call->want_watch) {
        call->watch =
            zk_client_watch_add(zk, sess, call->upath, call->wcb, call->warg, call->waiter);
    }
    zk_watch_t *w = call->watch;
    int rc;
    switch (call->kind) {
    case ZK_CALL_GET:
        rc = w ? zoo_awget(zh, call->fpath, zk_client_zoo_watch, w, zk_ops_on_data, call)
               : zoo_aget(zh, call->fpath, 0, zk_ops_on_data, call);
        break;
    case ZK_CALL_EXISTS:
        rc = w ? zoo_awexists(zh, call->fpath, zk_client_zoo_watch, w, zk_ops_on_stat, call)
               : zoo_aexists(zh, call->fpath, 0, zk_ops_on_stat, call);
        break;
    case ZK_CALL_CREATE:
        rc = zoo_acreate(zh, call->fpath, call->wdata, call->wlen, &ZOO_OPEN_ACL_UNSAFE, call->mode,
                         zk_ops_on_string, call);
        break;
    case ZK_CALL_SET:
        rc =
            zoo_aset(zh, call->fpath, call->wdata, call->wlen, call->version, zk_ops_on_stat, call);
        break;
    case ZK_CALL_DELETE:
        rc = zoo_adelete(zh, call->fpath, call->version, zk_ops_on_void, call);
        break;
    case ZK_CALL_CHILDREN:
        rc =
            w ? zoo_awget_children(zh, call->fpath, zk_client_zoo_watch, w, zk_ops_on_strings, call)
              : zoo_aget_children(zh, call->fpath, 0, zk_ops_on_strings, call);
        break;
    case ZK_CALL_MULTI:
        rc = zoo_amulti(zh, call->nops, call->zops, call->results, zk_ops_on_void, call);
        break;
    default:
        rc = ZBADARGUMENTS;
        break;
    }
    if (rc != ZOK) {
        if (w) {
            pthread_mutex_lock(&zk->mu);
            zk_client_watch_settle_locked(zk, w, false);
            call->watch = NULL;
            pthread_mutex_unlock(&zk->mu);
        }
        zk_client_sess_release(zk, sess, &call->link);
        return zk_err_from_zoo(rc);
    }
    /* From here the completion owns the call (it may have run already). */
    zk_client_sess_release(zk, sess, NULL);
    return MQ_OK;
}

/* Sends a call on the caller's stack and waits for its completion. */
static mq_err_t zk_ops_run(zk_client_t *zk, zk_call_t *call)
{
    call->blocking = true;
    pthread_cond_init(&call->cond, NULL);
    mq_err_t err = zk_ops_submit(zk, call);
    if (err == MQ_OK) {
        pthread_mutex_lock(&zk->mu);
        while (!call->done) {
            pthread_cond_wait(&call->cond, &zk->mu);
        }
        pthread_mutex_unlock(&zk->mu);
        err = call->err;
    }
    pthread_cond_destroy(&call->cond);
    return err;
}

static mq_err_t zk_ops_check_data(const void *data, size_t len)
{
    if ((!data && len > 0) || len > ZK_OPS_DATA_MAX) {
        return MQ_EINVAL;
    }
    return MQ_OK;
}

static bool zk_ops_mode(int flags, int *mode)
{
    if (flags & ~(ZK_EPHEMERAL | ZK_SEQUENTIAL)) {
        return false;
    }
    if (flags == (ZK_EPHEMERAL | ZK_SEQUENTIAL)) {
        *mode = ZOO_EPHEMERAL_SEQUENTIAL;
    } else if (flags == ZK_EPHEMERAL) {
        *mode = ZOO_EPHEMERAL;
    } else if (flags == ZK_SEQUENTIAL) {
        *mode = ZOO_PERSISTENT_SEQUENTIAL;
    } else {
        *mode = ZOO_PERSISTENT;
    }
    return true;
}

/* --- blocking operations ------------------------------------------------ */

/* Runs a read of path (get, exists, children) with the kind and watch the
 * caller put in call: resolves the chrooted path, arms the watch when a
 * callback or waiter is given, waits for the answer. Results stay in call. */
static mq_err_t zk_ops_read(zk_client_t *zk, const char *path, zk_call_t *call)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    char *full;
    mq_err_t err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        return err;
    }
    call->fpath = full;
    call->upath = path;
    call->want_watch = call->wcb != NULL || call->waiter != NULL;
    err = zk_ops_run(zk, call);
    call->fpath = NULL;
    free(full);
    return err;
}

static mq_err_t zk_ops_get(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg,
                           char **data, size_t *len, zk_stat_t *stat)
{
    zk_call_t call = {.kind = ZK_CALL_GET, .wcb = cb, .warg = arg};
    mq_err_t err = zk_ops_read(zk, path, &call);
    if (err == MQ_OK) {
        if (data) {
            *data = call.rdata;
            call.rdata = NULL;
        }
        if (len) {
            *len = call.rlen;
        }
        if (stat) {
            *stat = call.stat;
        }
    }
    free(call.rdata);
    return err;
}

mq_err_t zk_get(zk_client_t *zk, const char *path, char **data, size_t *len, zk_stat_t *stat)
{
    return zk_ops_get(zk, path, NULL, NULL, data, len, stat);
}

mq_err_t zk_get_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, char **data,
                  size_t *len, zk_stat_t *stat)
{
    if (!cb) {
        return MQ_EINVAL;
    }
    return zk_ops_get(zk, path, cb, arg, data, len, stat);
}

static mq_err_t zk_ops_exists(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg,
                              zk_waiter_t *waiter, zk_stat_t *stat)
{
    zk_call_t call = {.kind = ZK_CALL_EXISTS, .wcb = cb, .warg = arg, .waiter = waiter};
    mq_err_t err = zk_ops_read(zk, path, &call);
    if (err == MQ_OK && stat) {
        *stat = call.stat;
    }
    return err;
}

mq_err_t zk_exists(zk_client_t *zk, const char *path, zk_stat_t *stat)
{
    return zk_ops_exists(zk, path, NULL, NULL, NULL, stat);
}

mq_err_t zk_exists_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, zk_stat_t *stat)
{
    if (!cb) {
        return MQ_EINVAL;
    }
    return zk_ops_exists(zk, path, cb, arg, NULL, stat);
}

mq_err_t zk_ops_exists_waiter(zk_client_t *zk, const char *path, zk_waiter_t *waiter,
                              zk_stat_t *stat)
{
    return zk_ops_exists(zk, path, NULL, NULL, waiter, stat);
}

/* Creates the node at full (chrooted already). */
#define ZK_OPS_MAX_DEPTH 32 /* path components created in one multi */

static mq_err_t zk_ops_create_full(zk_client_t *zk, const char *full, const char *upath,
                                   const void *data, size_t len, int mode, char **created)
{
    zk_call_t call = {.kind = ZK_CALL_CREATE, .fpath = full, .upath = upath};
    call.wdata = len > 0 ? data : "";
    call.wlen = (int)len;
    call.mode = mode;
    mq_err_t err = zk_ops_run(zk, &call);
    if (err == MQ_OK && created) {
        *created = call.created;
        call.created = NULL;
    }
    free(call.created);
    return err;
}

static mq_err_t zk_ops_create_check(zk_client_t *zk, const char *path, const void *data, size_t len,
                                    int flags, char *created, size_t created_cap, int *mode)
{
    if (!zk || !path || path[0] != '/' || !zk_ops_mode(flags, mode)) {
        return MQ_EINVAL;
    }
    mq_err_t err = zk_ops_check_data(data, len);
    if (err != MQ_OK) {
        return err;
    }
    /* Refuse before creating rather than truncate the name afterwards. */
    size_t need = strlen(path) + 1 + ((flags & ZK_SEQUENTIAL) ? ZK_OPS_SEQ_LEN : 0);
    if (created && created_cap < need) {
        return MQ_EINVAL;
    }
    return MQ_OK;
}

static void zk_ops_copy_created(char *created, size_t created_cap, const char *name)
{
    if (created && created_cap > 0) {
        size_t n = strlen(name);
        if (n >= created_cap) {
            n = created_cap - 1;
        }
        memcpy(created, name, n);
        created[n] = '\0';
    }
}

mq_err_t zk_create(zk_client_t *zk, const char *path, const void *data, size_t len, int flags,
                   char *created, size_t created_cap)
{
    int mode;
    mq_err_t err = zk_ops_create_check(zk, path, data, len, flags, created, created_cap, &mode);
    if (err != MQ_OK) {
        return err;
    }
    char *full;
    err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        return err;
    }
    char *name = NULL;
    err = zk_ops_create_full(zk, full, path, data, len, mode, created ? &name : NULL);
    if (err == MQ_OK && name) {
        zk_ops_copy_created(created, created_cap, name);
    }
    free(name);
    free(full);
    return err;
}

/*
 * The missing ancestors of path (a user path), created in one multi, with the
 * node itself when with_node. ZooKeeper logs and syncs every write request,
 * failed ones included, so creating each component of the chain in turn cost
 * one fsync per component even where it existed; the exists() calls that
 * find the first present ancestor are reads. MQ_ENOTFOUND when no ancestor
 * exists (the chroot itself is missing): the caller goes the long way;
 * MQ_EAGAIN when a missing parent was created meanwhile: look again.
 */
static mq_err_t zk_ops_create_chain(zk_client_t *zk, const char *path, const void *data, size_t len,
                                    int flags, bool with_node)
{
    size_t plen = strlen(path);
    char *buf = mq_malloc(plen + 1);
    memcpy(buf, path, plen + 1);
    /* Cut at each '/' from the deepest; stop at the first ancestor present. */
    size_t nmissing = 0;
    size_t cut[ZK_OPS_MAX_DEPTH];
    bool found = false;
    for (size_t i = plen; i > 0 && nmissing < ZK_OPS_MAX_DEPTH;) {
        while (i > 0 && buf[i - 1] != '/') {
            i--;
        }
        if (i <= 1) {
            break; /* reached "/" */
        }
        i--; /* at the '/' */
        buf[i] = '\0';
        mq_err_t err = zk_exists(zk, buf, NULL);
        buf[i] = '/';
        if (err == MQ_OK) {
            found = true;
            break;
        }
        if (err != MQ_ENOTFOUND) {
            free(buf);
            return err;
        }
        cut[nmissing++] = i;
    }
    if (!found && nmissing < ZK_OPS_MAX_DEPTH && zk_exists(zk, "/", NULL) == MQ_OK) {
        found = true;
    }
    if (!found) {
        free(buf);
        return MQ_ENOTFOUND;
    }
    zk_op_t ops[ZK_OPS_MAX_DEPTH + 1];
    char *paths[ZK_OPS_MAX_DEPTH];
    size_t n = 0;
    for (size_t k = nmissing; k > 0; k--) {
        paths[n] = mq_malloc(cut[k - 1] + 1);
        memcpy(paths[n], path, cut[k - 1]);
        paths[n][cut[k - 1]] = '\0';
        ops[n] = (zk_op_t){.type = ZK_OP_CREATE, .path = paths[n], .flags = ZK_PERSISTENT};
        n++;
    }
    size_t nparents = n;
    if (with_node) {
        ops[n++] =
            (zk_op_t){.type = ZK_OP_CREATE, .path = path, .data = data, .len = len, .flags = flags};
    }
    size_t failed = n;
    mq_err_t err = zk_multi(zk, ops, n, &failed);
    if (err == MQ_EEXIST && failed < nparents) {
        /* A parent appeared since we looked (a sibling's chain): look again. */
        err = MQ_EAGAIN;
    }
    for (size_t k = 0; k < nparents; k++) {
        free(paths[k]);
    }
    free(buf);
    return err;
}

mq_err_t zk_create_parents(zk_client_t *zk, const char *path, const void *data, size_t len,
                           int flags, char *created, size_t created_cap)
{
    int mode;
    mq_err_t err = zk_ops_create_check(zk, path, data, len, flags, created, created_cap, &mode);
    if (err != MQ_OK) {
        return err;
    }
    char *full;
    err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        return err;
    }
    char *name = NULL;
    /* The node goes into the multi unless its created name is wanted (the
     * multi does not hand it back here). */
    bool with_node = !created && !(flags & ZK_SEQUENTIAL);
    /* Optimistic first: parents usually exist. A parent deleted again while
     * we create the chain costs another round, a few at most. */
    for (int round = 0; round < 4; round++) {
        err = zk_ops_create_full(zk, full, path, data, len, mode, created ? &name : NULL);
        if (err != MQ_ENOTFOUND) {
            break;
        }
        err = zk_ops_create_chain(zk, path, data, len, flags, with_node);
        if (err == MQ_OK && with_node) {
            break;
        }
        if (err == MQ_OK || err == MQ_EEXIST || err == MQ_EAGAIN) {
            /* Parents in place (or made by someone else meanwhile). */
            continue;
        }
        if (err != MQ_ENOTFOUND) {
            goto out;
        }
        /* No ancestor at all: the chain includes the chroot's own
         * components, created one by one. */
        for (char *slash = strchr(full + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            mq_err_t perr = zk_ops_create_full(zk, full, path, NULL, 0, ZOO_PERSISTENT, NULL);
            *slash = '/';
            if (perr != MQ_OK && perr != MQ_EEXIST && perr != MQ_ENOTFOUND) {
                err = perr;
                goto out;
            }
        }
    }
out:
    if (err == MQ_OK && name) {
        zk_ops_copy_created(created, created_cap, name);
    }
    free(name);
    free(full);
    return err;
}

mq_err_t zk_create_chain(zk_client_t *zk, const char *path, const void *data, size_t len, int flags)
{
    int mode;
    if (flags & ZK_SEQUENTIAL) {
        return MQ_EINVAL;
    }
    mq_err_t err = zk_ops_create_check(zk, path, data, len, flags, NULL, 0, &mode);
    if (err != MQ_OK) {
        return err;
    }
    for (int round = 0; round < 4; round++) {
        err = zk_ops_create_chain(zk, path, data, len, flags, true);
        if (err != MQ_EAGAIN) {
            break;
        }
    }
    if (err == MQ_ENOTFOUND || err == MQ_EAGAIN) {
        /* No ancestor at all (the chroot is missing), or one went away
         * meanwhile: the long way handles both. */
        err = zk_create_parents(zk, path, data, len, flags, NULL, 0);
    }
    return err;
}

mq_err_t zk_set(zk_client_t *zk, const char *path, const void *data, size_t len, int32_t version,
                zk_stat_t *stat)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    mq_err_t err = zk_ops_check_data(data, len);
    if (err != MQ_OK) {
        return err;
    }
    char *full;
    err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        return err;
    }
    zk_call_t call = {.kind = ZK_CALL_SET, .fpath = full, .upath = path};
    call.wdata = len > 0 ? data : "";
    call.wlen = (int)len;
    call.version = version;
    err = zk_ops_run(zk, &call);
    if (err == MQ_OK && stat) {
        *stat = call.stat;
    }
    free(full);
    return err;
}

mq_err_t zk_delete(zk_client_t *zk, const char *path, int32_t version)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    char *full;
    mq_err_t err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        return err;
    }
    zk_call_t call = {.kind = ZK_CALL_DELETE, .fpath = full, .upath = path};
    call.version = version;
    err = zk_ops_run(zk, &call);
    free(full);
    return err;
}

static int zk_ops_name_cmp(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static mq_err_t zk_ops_children(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg,
                                char ***names, size_t *count)
{
    if (!names || !count) {
        return MQ_EINVAL;
    }
    zk_call_t call = {.kind = ZK_CALL_CHILDREN, .wcb = cb, .warg = arg};
    mq_err_t err = zk_ops_read(zk, path, &call);
    if (err == MQ_OK) {
        if (call.count > 1) {
            qsort(call.names, call.count, sizeof(*call.names), zk_ops_name_cmp);
        }
        *names = call.names;
        *count = call.count;
        call.names = NULL;
        call.count = 0;
    }
    zk_strings_free(call.names, call.count);
    return err;
}

mq_err_t zk_children(zk_client_t *zk, const char *path, char ***names, size_t *count)
{
    return zk_ops_children(zk, path, NULL, NULL, names, count);
}

mq_err_t zk_children_w(zk_client_t *zk, const char *path, zk_watch_cb cb, void *arg, char ***names,
                       size_t *count)
{
    if (!cb) {
        return MQ_EINVAL;
    }
    return zk_ops_children(zk, path, cb, arg, names, count);
}

void zk_strings_free(char **names, size_t count)
{
    if (!names) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
}

/* --- multi -------------------------------------------------------------- */

mq_err_t zk_multi(zk_client_t *zk, const zk_op_t *ops, size_t count, size_t *failed)
{
    if (failed) {
        *failed = count;
    }
    if (!zk || (!ops && count > 0) || count > INT_MAX / 2) {
        return MQ_EINVAL;
    }
    if (count == 0) {
        return MQ_OK;
    }
    char **paths = mq_calloc(count, sizeof(*paths));
    zoo_op_t *zops = mq_calloc(count, sizeof(*zops));
    zoo_op_result_t *results = mq_calloc(count, sizeof(*results));
    struct Stat *stats = mq_calloc(count, sizeof(*stats));
    mq_err_t err = MQ_OK;
    size_t i;
    for (i = 0; i < count; i++) {
        const zk_op_t *op = &ops[i];
        int mode = 0;
        err = zk_client_path(zk, op->path, &paths[i]);
        if (err != MQ_OK) {
            break;
        }
        const char *d = op->len > 0 ? op->data : "";
        switch (op->type) {
        case ZK_OP_CREATE:
            err = zk_ops_check_data(op->data, op->len);
            if (err == MQ_OK && !zk_ops_mode(op->flags, &mode)) {
                err = MQ_EINVAL;
            }
            if (err == MQ_OK) {
                zoo_create_op_init(&zops[i], paths[i], d, (int)op->len, &ZOO_OPEN_ACL_UNSAFE, mode,
                                   NULL, 0);
            }
            break;
        case ZK_OP_DELETE:
            zoo_delete_op_init(&zops[i], paths[i], op->version);
            break;
        case ZK_OP_SET:
            err = zk_ops_check_data(op->data, op->len);
            if (err == MQ_OK) {
                zoo_set_op_init(&zops[i], paths[i], d, (int)op->len, op->version, &stats[i]);
            }
            break;
        case ZK_OP_CHECK:
            zoo_check_op_init(&zops[i], paths[i], op->version);
            break;
        default:
            err = MQ_EINVAL;
            break;
        }
        if (err != MQ_OK) {
            break;
        }
    }
    if (err != MQ_OK) {
        if (failed) {
            *failed = i;
        }
    } else {
        zk_call_t call = {.kind = ZK_CALL_MULTI, .upath = ops[0].path};
        call.nops = (int)count;
        call.zops = zops;
        call.results = results;
        for (i = 0; i < count; i++) {
            results[i].err = ZOK;
        }
        err = zk_ops_run(zk, &call);
        if (err != MQ_OK && err != MQ_ECONN && err != MQ_ESESSION && err != MQ_ECLOSED && failed) {
            /* The failing op has its own error; those after it were not run
             * (ZRUNTIMEINCONSISTENCY), those before it were rolled back. */
            for (i = 0; i < count; i++) {
                if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY) {
                    *failed = i;
                    break;
                }
            }
        }
    }
    for (i = 0; i < count; i++) {
        free(paths[i]);
    }
    free(paths);
    free(zops);
    free(results);
    free(stats);
    return err;
}

/* --- asynchronous operations -------------------------------------------- */

/* Sends a heap call whose completion is delivered on the event thread. On
 * failure the call is freed and its callback never runs. */
static mq_err_t zk_ops_start(zk_client_t *zk, zk_call_t *call, const char *path)
{
    char *full;
    mq_err_t err = zk_client_path(zk, path, &full);
    if (err != MQ_OK) {
        zk_ops_call_free(call);
        return err;
    }
    call->fpath = full;
    call->upath_owned = mq_strdup(path);
    call->upath = call->upath_owned;
    err = zk_ops_submit(zk, call);
    /* ZooKeeper copied the request when it serialised it. */
    free(full);
    if (err != MQ_OK) {
        zk_ops_call_free(call);
    }
    return err;
}

mq_err_t zk_aget(zk_client_t *zk, const char *path, zk_data_cb cb, void *arg)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    zk_call_t *call = mq_calloc(1, sizeof(*call));
    call->kind = ZK_CALL_GET;
    call->data_cb = cb;
    call->arg = arg;
    return zk_ops_start(zk, call, path);
}

mq_err_t zk_aset(zk_client_t *zk, const char *path, const void *data, size_t len, int32_t version,
                 zk_stat_cb cb, void *arg)
{
    if (!zk || zk_ops_check_data(data, len) != MQ_OK) {
        return MQ_EINVAL;
    }
    zk_call_t *call = mq_calloc(1, sizeof(*call));
    call->kind = ZK_CALL_SET;
    call->wdata = len > 0 ? data : "";
    call->wlen = (int)len;
    call->version = version;
    call->stat_cb = cb;
    call->arg = arg;
    return zk_ops_start(zk, call, path);
}

mq_err_t zk_acreate(zk_client_t *zk, const char *path, const void *data, size_t len, int flags,
                    zk_string_cb cb, void *arg)
{
    int mode;
    mq_err_t err = zk_ops_create_check(zk, path, data, len, flags, NULL, 0, &mode);
    if (err != MQ_OK) {
        return err;
    }
    zk_call_t *call = mq_calloc(1, sizeof(*call));
    call->kind = ZK_CALL_CREATE;
    call->wdata = len > 0 ? data : "";
    call->wlen = (int)len;
    call->mode = mode;
    call->string_cb = cb;
    call->arg = arg;
    return zk_ops_start(zk, call, path);
}

mq_err_t zk_adelete(zk_client_t *zk, const char *path, int32_t version, zk_stat_cb cb, void *arg)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    zk_call_t *call = mq_calloc(1, sizeof(*call));
    call->kind = ZK_CALL_DELETE;
    call->version = version;
    call->stat_cb = cb;
    call->arg = arg;
    return zk_ops_start(zk, call, path);
}
