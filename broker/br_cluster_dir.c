/*
 * br_cluster_dir: a watched directory cache (see the header).
 *
 * State. The listing is "listed" while a children watch is outstanding
 * and has not fired since the listing was read; each child is "valid" under
 * the same rule for its data watch. Firing clears the flag and bumps a
 * version, and a load installs what it read only if the version it started
 * from is still current: a watch that fires during a load (the change
 * happened after or during the read) leaves the result uncached, and the
 * next read goes to ZooKeeper again. Watches are counted from the moment
 * the call that set them returned until they fire (the counter may dip
 * below zero when a watch fires before its setter counted it); a load sets
 * a watch only when none is outstanding, so watches never pile up.
 *
 * Locks. load_mu serialises loads (taken first, held across ZooKeeper
 * calls); mu guards the state and is held only for copies. The *_fired
 * functions take mu only. Entries are freed only with both held, so a
 * loader's pointer to an entry stays valid while it holds load_mu.
 */
#include "br_cluster_dir.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_rec.h"
#include "mq_log.h"
#include "mq_util.h"

/* Listing attempts when the directory vanishes while being listed. */
#define BR_DIR_LIST_TRIES 3

typedef struct br_dir_ent {
    char *name;
    /* @locks mu */
    char *data;
    size_t len;
    bool valid;   /* data is current */
    bool present; /* in the last listing */
    uint64_t ver; /* bumped when its data watch fires */
    int armed;    /* data watches outstanding */
} br_dir_ent_t;

struct br_dir {
    zk_client_t *zk;
    char *path;
    zk_watch_cb on_children;
    zk_watch_cb on_data;
    void *warg;

    pthread_mutex_t load_mu;
    pthread_mutex_t mu;
    /* @locks mu */
    bool listed;
    uint64_t list_ver;
    int list_armed;
    br_dir_ent_t **ents; /* sorted by name; replaced only under load_mu too */
    size_t n;
    uint64_t gen;
};

br_dir_t *br_dir_new(zk_client_t *zk, const char *path, zk_watch_cb on_children,
                     zk_watch_cb on_data, void *watch_arg)
{
    br_dir_t *d = mq_calloc(1, sizeof(*d));
    d->zk = zk;
    d->path = mq_strdup(path);
    d->on_children = on_children;
    d->on_data = on_data;
    d->warg = watch_arg;
    d->gen = 1;
    pthread_mutex_init(&d->load_mu, NULL);
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

static void br_dir_ent_free(br_dir_ent_t *e)
{
    free(e->name);
    free(e->data);
    free(e);
}

void br_dir_free(br_dir_t *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        br_dir_ent_free(d->ents[i]);
    }
    free(d->ents);
    pthread_mutex_destroy(&d->load_mu);
    pthread_mutex_destroy(&d->mu);
    free(d->path);
    free(d);
}

const char *br_dir_path(const br_dir_t *d)
{
    return d->path;
}

void br_dir_items_free(br_dir_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].name);
        free(items[i].data);
    }
    free(items);
}

uint64_t br_dir_gen(br_dir_t *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t gen = d->gen;
    pthread_mutex_unlock(&d->mu);
    return gen;
}

/* @locks mu */
static br_dir_ent_t *br_dir_find_locked(br_dir_t *d, const char *name, size_t *pos)
{
    size_t lo = 0;
    size_t hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, d->ents[mid]->name);
        if (c == 0) {
            if (pos) {
                *pos = mid;
            }
            return d->ents[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if (pos) {
        *pos = lo;
    }
    return NULL;
}

void br_dir_children_fired(br_dir_t *d)
{
    pthread_mutex_lock(&d->mu);
    d->list_armed--;
    d->list_ver++;
    d->listed = false;
    d->gen++;
    pthread_mutex_unlock(&d->mu);
}

void br_dir_data_fired(br_dir_t *d, const char *name)
{
    pthread_mutex_lock(&d->mu);
    br_dir_ent_t *e = br_dir_find_locked(d, name, NULL);
    if (e) {
        e->armed--;
        e->ver++;
        e->valid = false;
    }
    d->gen++;
    pthread_mutex_unlock(&d->mu);
}

/* Installs a listing (names sorted, as zk_children returns them): keeps the
 * entries still listed, adds new ones, drops the rest unless a data watch
 * of theirs is outstanding (it fires soon: the node is gone). @locks
 * load_mu, mu */
static void br_dir_merge_locked(br_dir_t *d, char **names, size_t count)
{
    br_dir_ent_t **ents = mq_malloc(MQ_MAX(count + d->n, (size_t)1) * sizeof(*ents));
    size_t out = 0;
    size_t i = 0;
    size_t k = 0;
    while (i < d->n || k < count) {
        int c = i == d->n ? 1 : (k == count ? -1 : strcmp(d->ents[i]->name, names[k]));
        if (c == 0) {
            d->ents[i]->present = true;
            ents[out++] = d->ents[i];
            i++;
            k++;
        } else if (c < 0) {
            br_dir_ent_t *e = d->ents[i++];
            if (e->armed > 0) {
                e->present = false;
                e->valid = false;
                ents[out++] = e;
            } else {
                br_dir_ent_free(e);
            }
        } else {
            br_dir_ent_t *e = mq_calloc(1, sizeof(*e));
            e->name = mq_strdup(names[k++]);
            e->present = true;
            ents[out++] = e;
        }
    }
    free(d->ents);
    d->ents = ents;
    d->n = out;
}

/* Makes the listing current (or as current as one read gets). @locks
 * load_mu */
static mq_err_t br_dir_list(br_dir_t *d)
{
    pthread_mutex_lock(&d->mu);
    bool listed = d->listed;
    uint64_t ver = d->list_ver;
    bool arm = d->list_armed <= 0;
    pthread_mutex_unlock(&d->mu);
    if (listed) {
        return MQ_OK;
    }
    char **names = NULL;
    size_t count = 0;
    mq_err_t err = MQ_ENOTFOUND;
    for (int round = 0; round < BR_DIR_LIST_TRIES && err == MQ_ENOTFOUND; round++) {
        err = arm ? zk_children_w(d->zk, d->path, d->on_children, d->warg, &names, &count)
                  : zk_children(d->zk, d->path, &names, &count);
        if (err == MQ_ENOTFOUND) {
            mq_err_t cerr = zk_create_parents(d->zk, d->path, NULL, 0, ZK_PERSISTENT, NULL, 0);
            if (cerr != MQ_OK && cerr != MQ_EEXIST) {
                return cerr;
            }
        }
    }
    if (err != MQ_OK) {
        return err;
    }
    pthread_mutex_lock(&d->mu);
    if (arm) {
        d->list_armed++;
    }
    br_dir_merge_locked(d, names, count);
    if (d->list_ver == ver && d->list_armed > 0) {
        d->listed = true;
    }
    pthread_mutex_unlock(&d->mu);
    zk_strings_free(names, count);
    return MQ_OK;
}

/* Makes e's data current; on MQ_OK *data (may be NULL: not wanted) is a
 * copy of what was read. MQ_ENOTFOUND: gone since the listing. @locks
 * load_mu */
static mq_err_t br_dir_load_ent(br_dir_t *d, br_dir_ent_t *e, char **data, size_t *len)
{
    pthread_mutex_lock(&d->mu);
    if (e->valid) {
        if (data) {
            *data = mq_malloc(e->len + 1);
            memcpy(*data, e->data, e->len + 1);
            *len = e->len;
        }
        pthread_mutex_unlock(&d->mu);
        return MQ_OK;
    }
    uint64_t ver = e->ver;
    bool arm = e->armed <= 0;
    pthread_mutex_unlock(&d->mu);

    char path[BR_PATH_MAX];
    int pn = snprintf(path, sizeof(path), "%s/%s", d->path, e->name);
    if (pn < 0 || (size_t)pn >= sizeof(path)) {
        return MQ_EINVAL;
    }
    char *got = NULL;
    size_t glen = 0;
    mq_err_t err = arm ? zk_get_w(d->zk, path, d->on_data, d->warg, &got, &glen, NULL)
                       : zk_get(d->zk, path, &got, &glen, NULL);
    if (err != MQ_OK) {
        return err;
    }
    pthread_mutex_lock(&d->mu);
    if (arm) {
        e->armed++;
    }
    if (e->ver == ver && e->armed > 0) {
        free(e->data);
        e->data = mq_malloc(glen + 1);
        memcpy(e->data, got, glen + 1);
        e->len = glen;
        e->valid = true;
    }
    pthread_mutex_unlock(&d->mu);
    if (data) {
        *data = got;
        *len = glen;
    } else {
        free(got);
    }
    return MQ_OK;
}

mq_err_t br_dir_snapshot(br_dir_t *d, br_dir_item_t **items, size_t *n, uint64_t *gen)
{
    *items = NULL;
    *n = 0;
    pthread_mutex_lock(&d->load_mu);
    pthread_mutex_lock(&d->mu);
    uint64_t g = d->gen;
    pthread_mutex_unlock(&d->mu);
    mq_err_t err = br_dir_list(d);
    br_dir_item_t *out = NULL;
    size_t count = 0;
    if (err == MQ_OK) {
        pthread_mutex_lock(&d->mu);
        size_t total = d->n;
        pthread_mutex_unlock(&d->mu);
        out = mq_calloc(MQ_MAX(total, (size_t)1), sizeof(*out));
        /* d->ents only changes under load_mu, which we hold. */
        for (size_t i = 0; i < total && err == MQ_OK; i++) {
            br_dir_ent_t *e = d->ents[i];
            pthread_mutex_lock(&d->mu);
            bool present = e->present;
            pthread_mutex_unlock(&d->mu);
            if (!present) {
                continue;
            }
            char *data = NULL;
            size_t len = 0;
            err = br_dir_load_ent(d, e, &data, &len);
            if (err == MQ_ENOTFOUND) {
                err = MQ_OK; /* gone since the listing: the children watch tells */
                continue;
            }
            if (err == MQ_OK) {
                out[count].name = mq_strdup(e->name);
                out[count].data = data;
                out[count].len = len;
                count++;
            }
        }
    }
    pthread_mutex_unlock(&d->load_mu);
    if (err != MQ_OK) {
        br_dir_items_free(out, count);
        return err;
    }
    *items = out;
    *n = count;
    if (gen) {
        *gen = g;
    }
    return MQ_OK;
}

mq_err_t br_dir_get(br_dir_t *d, const char *name, char **data, size_t *len)
{
    /* From memory when the listing and the entry are current. */
    pthread_mutex_lock(&d->mu);
    if (d->listed) {
        br_dir_ent_t *e = br_dir_find_locked(d, name, NULL);
        if (!e || !e->present) {
            pthread_mutex_unlock(&d->mu);
            return MQ_ENOTFOUND;
        }
        if (e->valid) {
            *data = mq_malloc(e->len + 1);
            memcpy(*data, e->data, e->len + 1);
            *len = e->len;
            pthread_mutex_unlock(&d->mu);
            return MQ_OK;
        }
    }
    pthread_mutex_unlock(&d->mu);

    pthread_mutex_lock(&d->load_mu);
    mq_err_t err = br_dir_list(d);
    if (err == MQ_OK) {
        pthread_mutex_lock(&d->mu);
        br_dir_ent_t *e = br_dir_find_locked(d, name, NULL);
        bool present = e && e->present;
        pthread_mutex_unlock(&d->mu);
        err = present ? br_dir_load_ent(d, e, data, len) : MQ_ENOTFOUND;
    }
    pthread_mutex_unlock(&d->load_mu);
    return err;
}
