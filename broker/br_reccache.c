/*
 * br_reccache: a watched cache of the records under one znode (see the
 * header); br_topics (br_topic.c) and br_groups (br_group.c) wrap it.
 *
 * br_reccache_get answers from memory when it can. A miss takes load_mu
 * (misses are serialised: a miss costs one or two round trips and they are
 * rare once warm), reads the record with a data watch and remembers it; the
 * watch firing (changed, deleted, or lost with the session) makes the entry
 * stale, and the next get reads again. An absent record is remembered as a
 * negative entry tagged with the generation of the children watch on dir
 * that was armed before the read: when that watch fires (a record was
 * created or deleted) the generation moves on and every negative entry is
 * stale at once.
 *
 * Watches count as armed from the moment the call that set them returned
 * until they fire. The counters may go below zero for an instant (a watch
 * fires before its setter counted it), which is why they are counters and
 * not flags; the generation and per-entry version checks make a load that
 * raced with a firing watch leave its result uncached. Watches carry a
 * br_hook, never the cache.
 *
 * Threads. br_reccache_get/ensure: any thread but the zk client's event
 * thread (they block on a miss). Watch callbacks run on the event thread and
 * only flip counters under mu; they never block and never free an entry
 * (entries are freed under load_mu and mu by a loader, or by
 * br_reccache_free).
 */
#include "br_reccache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_hook.h"
#include "br_cluster_rec.h"
#include "mq_log.h"
#include "mq_util.h"

/* Create/read rounds of br_reccache_ensure before giving up (each lost
 * round means another writer succeeded). */
#define BR_RECCACHE_ROUNDS 16
/* Negative entries kept at most (names clients asked for that do not
 * exist); past it they are all dropped. */
#define BR_RECCACHE_MAX_NEGATIVE 4096

typedef enum br_reccache_state {
    BR_RECCACHE_STALE = 0, /* read again */
    BR_RECCACHE_VALID = 1, /* rec holds the record */
    BR_RECCACHE_ABSENT = 2 /* no such record while gen == neg_gen */
} br_reccache_state_t;

typedef struct br_reccache_entry {
    /* @locks mu */
    br_reccache_state_t state;
    void *rec; /* rec_size bytes */
    uint64_t neg_gen;
    uint64_t ver; /* bumped when its data watch fires */
    int armed;    /* data watches outstanding */
    char name[];
} br_reccache_entry_t;

struct br_reccache {
    zk_client_t *zk;
    char dir[BR_PATH_MAX];
    br_reccache_conf_t conf;
    br_hook_t *hook;
    void *scratch; /* rec_size bytes; @locks load_mu */

    pthread_mutex_t load_mu; /* serialises misses; taken before mu */
    pthread_mutex_t mu;
    /* @locks mu */
    br_reccache_entry_t **entries; /* sorted by name */
    size_t n;
    size_t cap;
    size_t negatives;
    uint64_t gen;  /* bumped when the children watch fires */
    int dir_armed; /* children watches outstanding on dir */
};

static void br_reccache_entry_free(br_reccache_entry_t *e)
{
    free(e->rec);
    free(e);
}

/* The index of name, or where it goes (*found false). @locks mu */
static size_t br_reccache_find_locked(br_reccache_t *rc, const char *name, bool *found)
{
    size_t lo = 0;
    size_t hi = rc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, rc->entries[mid]->name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    *found = false;
    return lo;
}

/* @locks mu (and load_mu: it may grow the array) */
static br_reccache_entry_t *br_reccache_get_entry_locked(br_reccache_t *rc, const char *name)
{
    bool found;
    size_t at = br_reccache_find_locked(rc, name, &found);
    if (found) {
        return rc->entries[at];
    }
    if (rc->n == rc->cap) {
        rc->cap = rc->cap ? rc->cap * 2 : 64;
        rc->entries = mq_realloc(rc->entries, rc->cap * sizeof(*rc->entries));
    }
    size_t nl = strlen(name);
    br_reccache_entry_t *e = mq_calloc(1, sizeof(*e) + nl + 1);
    memcpy(e->name, name, nl);
    e->rec = mq_calloc(1, rc->conf.rec_size);
    memmove(&rc->entries[at + 1], &rc->entries[at], (rc->n - at) * sizeof(*rc->entries));
    rc->entries[at] = e;
    rc->n++;
    return e;
}

/* Drops negative entries that no longer hold (or all of them when there
 * are too many), and stale entries without a watch. @locks load_mu, mu */
static void br_reccache_prune_locked(br_reccache_t *rc, const char *keep)
{
    bool all = rc->negatives > BR_RECCACHE_MAX_NEGATIVE;
    size_t out = 0;
    size_t negatives = 0;
    for (size_t i = 0; i < rc->n; i++) {
        br_reccache_entry_t *e = rc->entries[i];
        bool drop = false;
        if (strcmp(e->name, keep) != 0 && e->armed <= 0) {
            drop = e->state == BR_RECCACHE_STALE ||
                   (e->state == BR_RECCACHE_ABSENT && (all || e->neg_gen != rc->gen));
        }
        if (drop) {
            br_reccache_entry_free(e);
            continue;
        }
        negatives += e->state == BR_RECCACHE_ABSENT;
        rc->entries[out++] = e;
    }
    rc->n = out;
    rc->negatives = negatives;
}

/* @thread zk event thread; never blocks */
static void br_reccache_on_dir(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_reccache_t *rc = br_hook_enter(hook);
    if (!rc) {
        return;
    }
    pthread_mutex_lock(&rc->mu);
    rc->dir_armed--;
    rc->gen++;
    pthread_mutex_unlock(&rc->mu);
    MQ_LOG_DEBUG("%s cache: %ss changed path=%s event=%d", rc->conf.kind, rc->conf.kind, path,
                 (int)event);
    br_hook_leave(hook);
}

/* @thread zk event thread; never blocks */
static void br_reccache_on_record(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                  void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_reccache_t *rc = br_hook_enter(hook);
    if (!rc) {
        return;
    }
    size_t dl = strlen(rc->dir);
    if (strncmp(path, rc->dir, dl) == 0 && path[dl] == '/') {
        const char *name = path + dl + 1;
        pthread_mutex_lock(&rc->mu);
        bool found;
        size_t at = br_reccache_find_locked(rc, name, &found);
        if (found) {
            br_reccache_entry_t *e = rc->entries[at];
            e->armed--;
            e->ver++;
            if (e->state == BR_RECCACHE_VALID) {
                e->state = BR_RECCACHE_STALE;
            }
        }
        pthread_mutex_unlock(&rc->mu);
        MQ_LOG_DEBUG("%s cache: record changed %s=%s event=%d", rc->conf.kind, rc->conf.kind, name,
                     (int)event);
    }
    br_hook_leave(hook);
}

/* @thread any but the zk event thread */
mq_err_t br_reccache_new(zk_client_t *zk, const char *dir, const br_reccache_conf_t *conf,
                         br_reccache_t **out)
{
    if (!zk || !dir || !conf || !conf->kind || conf->rec_size == 0 || !conf->parse || !out) {
        return MQ_EINVAL;
    }
    br_reccache_t *rc = mq_calloc(1, sizeof(*rc));
    int w = snprintf(rc->dir, sizeof(rc->dir), "%s", dir);
    if (w < 0 || (size_t)w >= sizeof(rc->dir)) {
        free(rc);
        return MQ_EINVAL;
    }
    /* The children watch that negative entries rely on needs the directory. */
    mq_err_t err = zk_create_parents(zk, rc->dir, NULL, 0, ZK_PERSISTENT, NULL, 0);
    if (err != MQ_OK && err != MQ_EEXIST) {
        free(rc);
        return err;
    }
    rc->zk = zk;
    rc->conf = *conf;
    rc->scratch = mq_calloc(1, conf->rec_size);
    rc->gen = 1;
    pthread_mutex_init(&rc->load_mu, NULL);
    pthread_mutex_init(&rc->mu, NULL);
    rc->hook = br_hook_new(rc);
    *out = rc;
    return MQ_OK;
}

/* @thread any but the zk event thread; no call on rc may be running */
void br_reccache_free(br_reccache_t *rc)
{
    if (!rc) {
        return;
    }
    br_hook_detach(rc->hook);
    for (size_t i = 0; i < rc->n; i++) {
        br_reccache_entry_free(rc->entries[i]);
    }
    free(rc->entries);
    pthread_mutex_destroy(&rc->load_mu);
    pthread_mutex_destroy(&rc->mu);
    free(rc->scratch);
    free(rc);
}

/* From memory: MQ_OK, MQ_ENOTFOUND, or MQ_EAGAIN (not known). @locks mu */
static mq_err_t br_reccache_lookup_locked(br_reccache_t *rc, const char *name, void *rec)
{
    bool found;
    size_t at = br_reccache_find_locked(rc, name, &found);
    if (!found) {
        return MQ_EAGAIN;
    }
    br_reccache_entry_t *e = rc->entries[at];
    if (e->state == BR_RECCACHE_VALID) {
        memcpy(rec, e->rec, rc->conf.rec_size);
        return MQ_OK;
    }
    if (e->state == BR_RECCACHE_ABSENT && e->neg_gen == rc->gen) {
        return MQ_ENOTFOUND;
    }
    return MQ_EAGAIN;
}

/* A miss: reads ZooKeeper and remembers what it found if nothing changed
 * meanwhile. @locks load_mu */
static mq_err_t br_reccache_load(br_reccache_t *rc, const char *name, void *rec)
{
    char path[BR_PATH_MAX];
    int w = snprintf(path, sizeof(path), "%s/%s", rc->dir, name);
    if (w < 0 || (size_t)w >= sizeof(path)) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&rc->mu);
    br_reccache_prune_locked(rc, name);
    br_reccache_entry_t *e = br_reccache_get_entry_locked(rc, name);
    bool arm_dir = rc->dir_armed <= 0;
    pthread_mutex_unlock(&rc->mu);

    /* The children watch first: a negative answer is only worth
     * remembering if a creation after the read is sure to be seen. */
    bool neg_ok = !arm_dir;
    if (arm_dir) {
        char **names = NULL;
        size_t count = 0;
        mq_err_t err = zk_children_w(rc->zk, rc->dir, br_reccache_on_dir, rc->hook, &names, &count);
        zk_strings_free(names, count);
        if (err == MQ_OK) {
            pthread_mutex_lock(&rc->mu);
            rc->dir_armed++;
            /* <= 0: it fired already, before we counted it. */
            neg_ok = rc->dir_armed > 0;
            pthread_mutex_unlock(&rc->mu);
        } else if (err != MQ_ENOTFOUND) {
            return err;
        }
    }
    pthread_mutex_lock(&rc->mu);
    uint64_t gen = rc->gen;
    uint64_t ver = e->ver;
    bool arm = e->armed <= 0;
    pthread_mutex_unlock(&rc->mu);

    char *data = NULL;
    size_t len = 0;
    mq_err_t err = arm ? zk_get_w(rc->zk, path, br_reccache_on_record, rc->hook, &data, &len, NULL)
                       : zk_get(rc->zk, path, &data, &len, NULL);
    /* Parsed into scratch (ours under load_mu), so that a record that does
     * not parse leaves the caller's untouched. */
    if (err == MQ_OK) {
        err = rc->conf.parse(name, data, len, rc->scratch);
    }
    free(data);
    pthread_mutex_lock(&rc->mu);
    if (arm && (err == MQ_OK || err == MQ_ECORRUPT)) {
        e->armed++;
    }
    if (e->ver == ver && e->armed > 0 && err == MQ_OK) {
        e->state = BR_RECCACHE_VALID;
        memcpy(e->rec, rc->scratch, rc->conf.rec_size);
    } else if (err == MQ_ENOTFOUND && neg_ok && rc->gen == gen) {
        if (e->state != BR_RECCACHE_ABSENT) {
            rc->negatives++;
        }
        e->state = BR_RECCACHE_ABSENT;
        e->neg_gen = gen;
    }
    pthread_mutex_unlock(&rc->mu);
    if (err == MQ_OK) {
        memcpy(rec, rc->scratch, rc->conf.rec_size);
    }
    return err;
}

/* @thread any but the zk event thread (blocks on a miss); @locks mu, then
 * load_mu on a miss (inside) */
mq_err_t br_reccache_peek(br_reccache_t *rc, const char *name, void *rec)
{
    if (!rc || !name || !rec) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&rc->mu);
    mq_err_t err = br_reccache_lookup_locked(rc, name, rec);
    pthread_mutex_unlock(&rc->mu);
    return err;
}

mq_err_t br_reccache_get(br_reccache_t *rc, const char *name, void *rec)
{
    mq_err_t err = br_reccache_peek(rc, name, rec);
    if (err != MQ_EAGAIN) {
        return err;
    }
    pthread_mutex_lock(&rc->load_mu);
    /* Another miss may have loaded it while we waited. */
    pthread_mutex_lock(&rc->mu);
    err = br_reccache_lookup_locked(rc, name, rec);
    pthread_mutex_unlock(&rc->mu);
    if (err == MQ_EAGAIN) {
        err = br_reccache_load(rc, name, rec);
    }
    pthread_mutex_unlock(&rc->load_mu);
    return err;
}

/* Forgets a negative answer for name (we just saw the record exist, before
 * the children watch could tell). */
static void br_reccache_forget_negative(br_reccache_t *rc, const char *name)
{
    pthread_mutex_lock(&rc->mu);
    bool found;
    size_t at = br_reccache_find_locked(rc, name, &found);
    if (found && rc->entries[at]->state == BR_RECCACHE_ABSENT) {
        rc->entries[at]->state = BR_RECCACHE_STALE;
        rc->negatives--;
    }
    pthread_mutex_unlock(&rc->mu);
}

/* @thread any but the zk event thread */
mq_err_t br_reccache_ensure(br_reccache_t *rc, const char *name, const void *want, void *rec)
{
    if (!rc || !rc->conf.create || !want) {
        return MQ_EINVAL;
    }
    mq_err_t err = MQ_EAGAIN;
    for (int round = 0; round < BR_RECCACHE_ROUNDS; round++) {
        err = br_reccache_get(rc, name, rec);
        if (err != MQ_ENOTFOUND) {
            return err;
        }
        err = rc->conf.create(rc->conf.arg, want);
        if (err == MQ_OK) {
            br_reccache_forget_negative(rc, name);
            memcpy(rec, want, rc->conf.rec_size);
            return MQ_OK;
        }
        if (err != MQ_EEXIST) {
            return err;
        }
        /* Another writer created it first: read theirs. */
        br_reccache_forget_negative(rc, name);
    }
    return err;
}

/* --- the records without the cache ----------------------------------------- */

/* @thread any but the zk event thread */
mq_err_t br_reccache_read(zk_client_t *zk, const char *path, const char *name,
                          br_reccache_parse_cb parse, void *rec)
{
    char *data = NULL;
    size_t len = 0;
    mq_err_t err = zk_get(zk, path, &data, &len, NULL);
    if (err == MQ_OK) {
        err = parse(name, data, len, rec);
    }
    free(data);
    return err;
}

/* @thread any but the zk event thread */
mq_err_t br_reccache_rewrite(zk_client_t *zk, const char *path, const char *data, size_t len,
                             int rounds, br_reccache_check_cb check, const void *arg)
{
    mq_err_t err = MQ_EBADVERSION;
    for (int round = 0; round < rounds; round++) {
        zk_stat_t st;
        if (check) {
            char *old = NULL;
            size_t olen = 0;
            err = zk_get(zk, path, &old, &olen, &st);
            if (err == MQ_OK) {
                err = check(old, olen, arg);
            }
            free(old);
        } else {
            /* Read for the version only: any record (even a broken one) is
             * replaced, but only if nobody wrote in between. */
            err = zk_exists(zk, path, &st);
        }
        if (err != MQ_OK) {
            break;
        }
        err = zk_set(zk, path, data, len, st.version, NULL);
        if (err != MQ_EBADVERSION) {
            break;
        }
    }
    return err;
}

/* @thread any but the zk event thread */
mq_err_t br_reccache_list(zk_client_t *zk, const char *dir, bool (*valid)(const char *name),
                          char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    char **all = NULL;
    size_t n = 0;
    mq_err_t err = zk_children(zk, dir, &all, &n);
    if (err == MQ_ENOTFOUND) {
        return MQ_OK;
    }
    if (err != MQ_OK) {
        return err;
    }
    /* zk_children sorts bytewise already; only drop what valid() refuses. */
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (valid(all[i])) {
            all[out++] = all[i];
        } else {
            free(all[i]);
        }
    }
    *names = all;
    *count = out;
    return MQ_OK;
}
