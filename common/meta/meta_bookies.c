/*
 * meta_bookies: the registry of bookies (who is registered under
 * <root>/bookies/available and <root>/bookies/readonly, and at which
 * address) and ensemble placement over it. The ledger client keeps one per
 * process; its threads read the snapshot and choose ensembles, while the
 * zk client's event thread keeps the snapshot current.
 *
 * Loading. A load lists both directories and reads each bookie's
 * registration data for its "address=" line (the id itself when there is
 * none). A bookie listed in readonly/ is not writable, also while it still
 * shows in available/ (a bookie moving to read-only registers there first).
 * Child names that cannot be bookie ids (too long, ',' or newline) are left
 * out with a WARN. The new snapshot replaces the old one at once, and cb runs
 * when it differs.
 *
 * Watches. Each directory carries one one-shot watch at a time: a children
 * watch while it exists, an exists watch while it does not (so its creation
 * is seen). b->armed counts the watches of each kind ZooKeeper holds for us;
 * a load sets a new one only when none is armed, so watches never pile up
 * however many loads run. A watch that fires (including ZK_WATCH_LOST after a
 * session expiry) is disarmed and triggers a load; so does ZK_SESSION_NEW,
 * and ZK_SESSION_CONNECTED when the previous load failed (b->dirty: it may
 * have failed before setting its watch). Events are ordered on the event
 * thread, so a watch that is armed always fires after any change that a load
 * did not see.
 *
 * Threads and locks. Loads run on the event thread (and once on the caller's
 * thread in meta_bookies_new), serialised by reload_mu, which guards armed,
 * dirty and started; the snapshot and the placement cursor are guarded by
 * mu, which is held only for copies, never across a ZooKeeper call. cb runs
 * on the event thread with no lock held.
 *
 * Lifetime. Watches and session listeners cannot be taken back from the zk
 * client, so they point at a small hook, not at the registry. The hook lives
 * for the rest of the process (kept in a global list, so it is no leak);
 * meta_bookies_free detaches the registry from it under meta_bookies_hooks_mu
 * and waits for a callback that is inside the registry to leave. Freed from
 * its own cb, the registry is freed by the callback on its way out instead
 * (nginx/Redis: never free what a running callback still uses).
 */
#include "meta_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_int.h"
#include "mq_log.h"
#include "mq_util.h"

enum { META_BOOKIES_AVAILABLE = 0, META_BOOKIES_READONLY = 1, META_BOOKIES_NDIRS = 2 };
enum { META_BOOKIES_W_CHILDREN = 0, META_BOOKIES_W_EXISTS = 1, META_BOOKIES_NKINDS = 2 };

static const char *const meta_bookies_dir_names[META_BOOKIES_NDIRS] = {"available", "readonly"};

/* A directory that keeps appearing and vanishing while it is listed: give up
 * after this many rounds (the armed exists watch brings the next load). */
#define META_BOOKIES_LIST_TRIES 3

typedef struct meta_bookies_hook meta_bookies_hook_t;

/* The context of one watch: which directory, which kind. */
typedef struct meta_bookies_wctx {
    meta_bookies_hook_t *hook;
    int dir;
    int kind;
} meta_bookies_wctx_t;

struct meta_bookies_hook {
    meta_bookies_hook_t *next; /* in meta_bookies_hooks, for the life of the process */
    meta_bookies_wctx_t w[META_BOOKIES_NDIRS][META_BOOKIES_NKINDS];
    /* @locks meta_bookies_hooks_mu */
    meta_bookies_t *b;          /* NULL once freed */
    bool running;               /* a callback is inside b */
    pthread_t runner;           /* its thread */
    meta_bookies_t *free_after; /* freed by that callback on its way out */
};

struct meta_bookies {
    zk_client_t *zk;
    meta_bookies_hook_t *hook;
    meta_bookies_cb cb;
    void *cb_arg;
    char dirs[META_BOOKIES_NDIRS][META_PATH_MAX];

    pthread_mutex_t reload_mu;
    /* @locks reload_mu */
    int armed[META_BOOKIES_NDIRS][META_BOOKIES_NKINDS];
    bool dirty;   /* the last load failed */
    bool started; /* meta_bookies_new returned: changes call cb */
    uint64_t loads;
    size_t skipped; /* unusable names in the last load */

    pthread_mutex_t mu;
    /* @locks mu */
    meta_bookie_info_t *bookies; /* sorted by id */
    size_t nbookies;
    char cursor[META_BOOKIE_ID_MAX]; /* the last bookie chosen */
    bool have_cursor;
    uint64_t seed; /* first offset */
};

static void meta_bookies_on_watch(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                  void *arg);

static pthread_mutex_t meta_bookies_hooks_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t meta_bookies_hooks_cond = PTHREAD_COND_INITIALIZER;
static meta_bookies_hook_t *meta_bookies_hooks; /* @locks meta_bookies_hooks_mu */

/* --- snapshot -------------------------------------------------------------- */

static int meta_bookies_info_cmp(const void *a, const void *b)
{
    return strcmp(((const meta_bookie_info_t *)a)->id, ((const meta_bookie_info_t *)b)->id);
}

/* Whether a child name can be a bookie id (the ledger record's rules). */
static bool meta_bookies_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n < META_BOOKIE_ID_MAX && !strchr(id, ',') && !strchr(id, '\n');
}

/* The "address=" line of registration data (bytes from ZooKeeper: any
 * content, bounded by len); the id when there is no usable one. */
static void meta_bookies_parse_address(const char *data, size_t len, const char *id, char *out,
                                       size_t cap)
{
    static const char key[] = "address=";
    size_t kl = sizeof(key) - 1;
    size_t at = 0;
    while (data && at < len) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : len - at;
        const char *line = data + at;
        if (n >= kl && memcmp(line, key, kl) == 0) {
            const char *v = line + kl;
            size_t vn = n - kl;
            if (vn > 0 && v[vn - 1] == '\r') {
                vn--;
            }
            if (vn > 0 && vn < cap && !memchr(v, '\0', vn) && !memchr(v, ',', vn)) {
                memcpy(out, v, vn);
                out[vn] = '\0';
                return;
            }
            break;
        }
        at += n + 1;
    }
    snprintf(out, cap, "%s", id);
}

/* Lists one directory, keeping one watch armed on it (see the top). Missing
 * is empty. @locks reload_mu */
static mq_err_t meta_bookies_list_dir(meta_bookies_t *b, int dir, char ***names, size_t *count)
{
    const char *path = b->dirs[dir];
    int *armed = b->armed[dir];
    *names = NULL;
    *count = 0;
    for (int round = 0; round < META_BOOKIES_LIST_TRIES; round++) {
        mq_err_t err;
        if (armed[META_BOOKIES_W_CHILDREN] > 0) {
            /* If the directory went away, that watch reports it. */
            err = zk_children(b->zk, path, names, count);
            return err == MQ_ENOTFOUND ? MQ_OK : err;
        }
        err = zk_children_w(b->zk, path, meta_bookies_on_watch,
                            &b->hook->w[dir][META_BOOKIES_W_CHILDREN], names, count);
        if (err == MQ_OK) {
            armed[META_BOOKIES_W_CHILDREN]++;
            return MQ_OK;
        }
        if (err != MQ_ENOTFOUND) {
            return err;
        }
        if (armed[META_BOOKIES_W_EXISTS] > 0) {
            return MQ_OK;
        }
        err = zk_exists_w(b->zk, path, meta_bookies_on_watch,
                          &b->hook->w[dir][META_BOOKIES_W_EXISTS], NULL);
        if (err == MQ_ENOTFOUND) {
            armed[META_BOOKIES_W_EXISTS]++;
            return MQ_OK;
        }
        if (err != MQ_OK) {
            return err;
        }
        /* Created meanwhile: list it (this exists watch fires on its
         * deletion or a data change, and only causes a harmless load). */
        armed[META_BOOKIES_W_EXISTS]++;
    }
    return MQ_EAGAIN;
}

/* Appends the bookies of one directory to *list. @locks reload_mu */
static mq_err_t meta_bookies_load_dir(meta_bookies_t *b, int dir, meta_bookie_info_t **list,
                                      size_t *n, size_t *cap, size_t *skipped)
{
    char **names;
    size_t count;
    mq_err_t err = meta_bookies_list_dir(b, dir, &names, &count);
    if (err != MQ_OK) {
        return err;
    }
    for (size_t i = 0; i < count && err == MQ_OK; i++) {
        if (!meta_bookies_id_ok(names[i])) {
            (*skipped)++;
            continue;
        }
        char path[META_PATH_MAX];
        int pn = snprintf(path, sizeof(path), "%s/%s", b->dirs[dir], names[i]);
        if (pn < 0 || (size_t)pn >= sizeof(path)) {
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        err = zk_get(b->zk, path, &data, &len, NULL);
        if (err == MQ_ENOTFOUND) {
            /* Gone since the listing: the children watch tells. */
            err = MQ_OK;
            continue;
        }
        if (err != MQ_OK) {
            break;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 8;
            *list = mq_realloc(*list, *cap * sizeof(**list));
        }
        meta_bookie_info_t *bi = &(*list)[(*n)++];
        memset(bi, 0, sizeof(*bi));
        memcpy(bi->id, names[i], strlen(names[i]) + 1);
        meta_bookies_parse_address(data, len, bi->id, bi->address, sizeof(bi->address));
        bi->writable = dir == META_BOOKIES_AVAILABLE;
        free(data);
    }
    zk_strings_free(names, count);
    return err;
}

/* Loads both directories and installs the result; *changed tells whether it
 * differs from the previous snapshot. @locks reload_mu */
static mq_err_t meta_bookies_load(meta_bookies_t *b, bool *changed)
{
    meta_bookie_info_t *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t skipped = 0;
    *changed = false;
    b->loads++;
    for (int dir = 0; dir < META_BOOKIES_NDIRS; dir++) {
        mq_err_t err = meta_bookies_load_dir(b, dir, &list, &n, &cap, &skipped);
        if (err != MQ_OK) {
            free(list);
            return err;
        }
    }
    /* Once per change, not on every load. */
    if (skipped != b->skipped) {
        MQ_LOG(skipped > 0 ? MQ_LOG_LVL_WARN : MQ_LOG_LVL_DEBUG,
               "bookie registrations with unusable ids (empty, over %d bytes, ',' or newline) "
               "skipped count=%zu dir=%s",
               META_BOOKIE_ID_MAX - 1, skipped, b->dirs[0]);
        b->skipped = skipped;
    }
    /* Sorted by id; a bookie in both directories is read-only, at the
     * address of its read-only registration. */
    if (n > 1) {
        qsort(list, n, sizeof(*list), meta_bookies_info_cmp);
    }
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && strcmp(list[out - 1].id, list[i].id) == 0) {
            if (!list[i].writable) {
                list[out - 1] = list[i];
            }
            continue;
        }
        list[out++] = list[i];
    }
    n = out;

    pthread_mutex_lock(&b->mu);
    bool same = n == b->nbookies;
    for (size_t i = 0; i < n && same; i++) {
        same = strcmp(list[i].id, b->bookies[i].id) == 0 &&
               strcmp(list[i].address, b->bookies[i].address) == 0 &&
               list[i].writable == b->bookies[i].writable;
    }
    meta_bookie_info_t *old = b->bookies;
    b->bookies = list;
    b->nbookies = n;
    pthread_mutex_unlock(&b->mu);
    free(old);
    *changed = !same;
    return MQ_OK;
}

/* --- callbacks (zk event thread) -------------------------------------------- */

/* The registry behind hook, marked as in use by this thread; NULL once freed. */
static meta_bookies_t *meta_bookies_enter(meta_bookies_hook_t *hook)
{
    pthread_mutex_lock(&meta_bookies_hooks_mu);
    meta_bookies_t *b = hook->b;
    if (b) {
        hook->running = true;
        hook->runner = pthread_self();
    }
    pthread_mutex_unlock(&meta_bookies_hooks_mu);
    return b;
}

static void meta_bookies_destroy(meta_bookies_t *b)
{
    pthread_mutex_destroy(&b->reload_mu);
    pthread_mutex_destroy(&b->mu);
    free(b->bookies);
    free(b);
}

static void meta_bookies_leave(meta_bookies_hook_t *hook)
{
    pthread_mutex_lock(&meta_bookies_hooks_mu);
    hook->running = false;
    meta_bookies_t *doomed = hook->free_after;
    hook->free_after = NULL;
    pthread_cond_broadcast(&meta_bookies_hooks_cond);
    pthread_mutex_unlock(&meta_bookies_hooks_mu);
    if (doomed) {
        meta_bookies_destroy(doomed);
    }
}

/* Loads (after disarming the watch that fired, if any) and tells cb about a
 * change. Touches nothing of b after cb: cb may free b. */
static void meta_bookies_refresh(meta_bookies_t *b, const meta_bookies_wctx_t *fired,
                                 bool only_if_dirty)
{
    pthread_mutex_lock(&b->reload_mu);
    if (fired && b->armed[fired->dir][fired->kind] > 0) {
        b->armed[fired->dir][fired->kind]--;
    }
    if (only_if_dirty && !b->dirty) {
        pthread_mutex_unlock(&b->reload_mu);
        return;
    }
    bool changed = false;
    mq_err_t err = meta_bookies_load(b, &changed);
    b->dirty = err != MQ_OK;
    bool tell = changed && b->started && b->cb;
    meta_bookies_cb cb = b->cb;
    void *arg = b->cb_arg;
    pthread_mutex_unlock(&b->reload_mu);
    if (err != MQ_OK) {
        /* Kept the previous snapshot; the reconnect (or new session) that
         * follows a connection or session error loads again. */
        MQ_LOG_WARN("bookie registry not refreshed, retrying on reconnect err=%s",
                    mq_err_name(err));
    }
    if (tell) {
        cb(arg);
    }
}

static void meta_bookies_on_watch(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                  void *arg)
{
    MQ_UNUSED(zk);
    meta_bookies_wctx_t *w = arg;
    meta_bookies_t *b = meta_bookies_enter(w->hook);
    if (!b) {
        return;
    }
    MQ_LOG_DEBUG("bookie registry watch path=%s event=%d kind=%s", path, (int)event,
                 w->kind == META_BOOKIES_W_CHILDREN ? "children" : "exists");
    meta_bookies_refresh(b, w, false);
    meta_bookies_leave(w->hook);
}

static void meta_bookies_on_session(zk_client_t *zk, zk_session_event_t event, void *arg)
{
    MQ_UNUSED(zk);
    meta_bookies_hook_t *hook = arg;
    if (event != ZK_SESSION_NEW && event != ZK_SESSION_CONNECTED) {
        return;
    }
    meta_bookies_t *b = meta_bookies_enter(hook);
    if (!b) {
        return;
    }
    /* A new session: re-read at once (the old session's watches come back
     * as ZK_WATCH_LOST right after and re-arm). A reconnect within the
     * session: only if a load failed meanwhile. */
    meta_bookies_refresh(b, NULL, event == ZK_SESSION_CONNECTED);
    meta_bookies_leave(hook);
}

/* --- public ---------------------------------------------------------------- */

mq_err_t meta_bookies_new(zk_client_t *zk, const char *root, meta_bookies_cb cb, void *arg,
                          meta_bookies_t **out)
{
    if (!zk || !out) {
        return MQ_EINVAL;
    }
    meta_bookies_t *b = mq_calloc(1, sizeof(*b));
    for (int dir = 0; dir < META_BOOKIES_NDIRS; dir++) {
        char suffix[64];
        snprintf(suffix, sizeof(suffix), "/bookies/%s", meta_bookies_dir_names[dir]);
        if (!meta_path_join(root, suffix, b->dirs[dir], sizeof(b->dirs[dir]))) {
            free(b);
            return MQ_EINVAL;
        }
    }
    b->zk = zk;
    b->cb = cb;
    b->cb_arg = arg;
    pthread_mutex_init(&b->reload_mu, NULL);
    pthread_mutex_init(&b->mu, NULL);
    b->seed = mq_mix64(mq_now_ns() ^ (uint64_t)(uintptr_t)b ^ ((uint64_t)getpid() << 32));

    meta_bookies_hook_t *hook = mq_calloc(1, sizeof(*hook));
    for (int dir = 0; dir < META_BOOKIES_NDIRS; dir++) {
        for (int kind = 0; kind < META_BOOKIES_NKINDS; kind++) {
            hook->w[dir][kind] = (meta_bookies_wctx_t){hook, dir, kind};
        }
    }
    b->hook = hook;
    pthread_mutex_lock(&meta_bookies_hooks_mu);
    hook->b = b;
    hook->next = meta_bookies_hooks;
    meta_bookies_hooks = hook;
    pthread_mutex_unlock(&meta_bookies_hooks_mu);
    /* Before the first load, so that no new session goes unnoticed. */
    zk_client_on_session(zk, meta_bookies_on_session, hook);

    pthread_mutex_lock(&b->reload_mu);
    bool changed;
    mq_err_t err = meta_bookies_load(b, &changed);
    b->dirty = err != MQ_OK;
    b->started = err == MQ_OK;
    pthread_mutex_unlock(&b->reload_mu);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cannot load the bookie registry root=%s err=%s", root ? root : "",
                    mq_err_name(err));
        meta_bookies_free(b);
        return err;
    }
    pthread_mutex_lock(&b->mu);
    size_t n = b->nbookies;
    pthread_mutex_unlock(&b->mu);
    MQ_LOG_DEBUG("bookie registry loaded root=%s bookies=%zu", root ? root : "", n);
    *out = b;
    return MQ_OK;
}

void meta_bookies_free(meta_bookies_t *b)
{
    if (!b) {
        return;
    }
    meta_bookies_hook_t *hook = b->hook;
    pthread_mutex_lock(&meta_bookies_hooks_mu);
    hook->b = NULL;
    if (hook->running && pthread_equal(hook->runner, pthread_self())) {
        /* From inside our own callback (cb): it frees b once it returns. */
        hook->free_after = b;
        pthread_mutex_unlock(&meta_bookies_hooks_mu);
        return;
    }
    while (hook->running) {
        pthread_cond_wait(&meta_bookies_hooks_cond, &meta_bookies_hooks_mu);
    }
    pthread_mutex_unlock(&meta_bookies_hooks_mu);
    meta_bookies_destroy(b);
}

mq_err_t meta_bookies_list(meta_bookies_t *b, meta_bookie_info_t **out, size_t *count)
{
    if (!b || !out || !count) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    size_t n = b->nbookies;
    /* Never NULL, also when empty. */
    meta_bookie_info_t *copy = mq_malloc(MQ_MAX(n, (size_t)1) * sizeof(*copy));
    if (n > 0) {
        memcpy(copy, b->bookies, n * sizeof(*copy));
    }
    pthread_mutex_unlock(&b->mu);
    *out = copy;
    *count = n;
    return MQ_OK;
}

void meta_bookies_address(meta_bookies_t *b, const char *id, char *out, size_t cap)
{
    if (!out || cap == 0) {
        return;
    }
    if (!id) {
        out[0] = '\0';
        return;
    }
    if (b) {
        meta_bookie_info_t key;
        memset(&key, 0, sizeof(key));
        snprintf(key.id, sizeof(key.id), "%s", id);
        pthread_mutex_lock(&b->mu);
        const meta_bookie_info_t *found =
            b->nbookies > 0 && strlen(id) < sizeof(key.id)
                ? bsearch(&key, b->bookies, b->nbookies, sizeof(key), meta_bookies_info_cmp)
                : NULL;
        if (found) {
            snprintf(out, cap, "%s", found->address);
        }
        pthread_mutex_unlock(&b->mu);
        if (found) {
            return;
        }
    }
    snprintf(out, cap, "%s", id);
}

static bool meta_bookies_excluded(const char *id, const char *const *exclude, size_t nexclude)
{
    for (size_t i = 0; i < nexclude; i++) {
        if (exclude[i] && strcmp(exclude[i], id) == 0) {
            return true;
        }
    }
    return false;
}

mq_err_t meta_bookies_choose(meta_bookies_t *b, int n, const char *const *exclude, size_t nexclude,
                             char (*out)[META_BOOKIE_ID_MAX])
{
    if (!b || n < 1 || n > META_MAX_ENSEMBLE || !out || (nexclude > 0 && !exclude)) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    size_t *cand = mq_malloc(MQ_MAX(b->nbookies, (size_t)1) * sizeof(*cand));
    size_t m = 0;
    for (size_t i = 0; i < b->nbookies; i++) {
        if (b->bookies[i].writable && !meta_bookies_excluded(b->bookies[i].id, exclude, nexclude)) {
            cand[m++] = i;
        }
    }
    if (m < (size_t)n) {
        pthread_mutex_unlock(&b->mu);
        free(cand);
        return MQ_ENOTENOUGHBOOKIES;
    }
    /* Walk the sorted candidates round-robin, from just after the bookie
     * the previous choice ended with (which may have gone since), or from a
     * random one the first time: every bookie is chosen equally often. */
    size_t start = 0;
    if (!b->have_cursor) {
        start = (size_t)(b->seed % m);
    } else {
        while (start < m && strcmp(b->bookies[cand[start]].id, b->cursor) <= 0) {
            start++;
        }
        if (start == m) {
            start = 0;
        }
    }
    for (int k = 0; k < n; k++) {
        const meta_bookie_info_t *bi = &b->bookies[cand[(start + (size_t)k) % m]];
        memset(out[k], 0, META_BOOKIE_ID_MAX);
        memcpy(out[k], bi->id, strlen(bi->id));
        if (k == n - 1) {
            memcpy(b->cursor, bi->id, sizeof(b->cursor));
            b->have_cursor = true;
        }
    }
    pthread_mutex_unlock(&b->mu);
    free(cand);
    return MQ_OK;
}

void meta_bookies_test_counts(meta_bookies_t *b, int *armed, uint64_t *loads)
{
    pthread_mutex_lock(&b->reload_mu);
    int total = 0;
    for (int dir = 0; dir < META_BOOKIES_NDIRS; dir++) {
        for (int kind = 0; kind < META_BOOKIES_NKINDS; kind++) {
            total += b->armed[dir][kind];
        }
    }
    *armed = total;
    *loads = b->loads;
    pthread_mutex_unlock(&b->reload_mu);
}
