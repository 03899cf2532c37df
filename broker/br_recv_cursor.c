/*
 * br_recv_cursor: the consumer groups' cursors on the queues this broker
 * owns (see br_recv_int.h). A cursor is created the first time a request
 * of its group needs it on a queue: br_rcur_with puts a loading entry in
 * the queue's consume state and posts the load to srv->recv->io, where
 * br_cstore_open takes the cursor ledger over (fencing a previous owner)
 * and replays it into a br_cursor that starts at the queue's min offset (a
 * group new to the queue reads from the earliest retained message). The
 * requests arriving meanwhile wait in the entry and run, in order, once it
 * is loaded. A cursor without a znode (new to the queue) does not wait for
 * its store: it serves at once, br_cstore_create makes the store on
 * srv->recv->io (a ledger, its first entry and the znode: three synced
 * ZooKeeper writes), and records appended meanwhile wait in rc->pend. When
 * the store broke (an add failed: fenced or bookies gone) or could not be
 * created, the cursor is dropped and loaded again on next use.
 *
 * Compaction: once the current cursor ledger holds more than
 * cursorCompactEntries entries, a snapshot is taken on the queue's key and
 * br_cstore_roll writes it into a new ledger on srv->recv->io.
 *
 * Why an executor of their own rather than srv->slow: a load or a roll
 * holds its queue (and so do the requests waiting for a load), and a
 * queue's release waits until nobody holds it; a release can run on
 * srv->slow (a fenced log), which would then wait for a load queued behind
 * it on the same thread.
 *
 * Handover: br_recv_queue_release runs once nobody holds the queue (loads,
 * rolls and pops hold a reference, so none is in flight); a planned
 * release closes each store with a last snapshot, a lost queue just frees.
 *
 * Threads: cursor state only on the queue's executor key; loads, rolls and
 * closes block on srv->recv->io or the releasing thread, never on srv->ex.
 */
#include <stdlib.h>
#include <string.h>

#include "br_recv_int.h"
#include "mq_log.h"
#include "mq_util.h"

struct br_rcur_wait {
    br_rcur_fn fn;
    void *arg;
    br_queue_t *q; /* referenced */
    struct br_rcur_wait *next;
};

typedef struct br_rcur_req {
    br_server_t *srv;
    char topic[BR_TOPIC_NAME_MAX + 1];
    int queue;
    br_group_t grp;
    br_rcur_fn fn;
    void *arg;
} br_rcur_req_t;

typedef struct br_rcur_load {
    br_server_t *srv;
    br_queue_t *q; /* referenced for the load */
    br_rcur_t *rc;
    br_cursor_t *cur;
    br_cstore_t *cs;
    mq_buf_t *snap;
    mq_err_t err;
    bool fresh; /* no store yet: serve now, create it afterwards */
    uint64_t t0;
} br_rcur_load_t;

/* A record appended while a new cursor's store is being created. */
struct br_rcur_prec {
    br_rcur_prec_t *next;
    mq_buf_t *rec;
    br_cstore_done_cb cb;
    void *arg;
};

/* Creating a new cursor's store (srv->recv->io). */
typedef struct br_rcur_create {
    br_server_t *srv;
    br_queue_t *q; /* referenced until the store is in place */
    br_rcur_t *rc;
    mq_buf_t *snap;
    br_cstore_t *cs;
    mq_err_t err;
    uint64_t t0;
} br_rcur_create_t;

typedef struct br_rcur_roll {
    br_server_t *srv;
    br_queue_t *q; /* referenced for the roll */
    br_rcur_t *rc;
    mq_buf_t *snap;
} br_rcur_roll_t;

static uint64_t br_rcur_backoff(int attempt, void *arg)
{
    return br_group_backoff_ms(arg, attempt);
}

static void br_rcur_conf(br_server_t *srv, br_rcur_t *rc, br_cursor_conf_t *conf)
{
    br_cursor_conf_default(conf);
    conf->window = (uint32_t)srv->conf->consumeWindowMessages;
    conf->max_attempts = br_group_max_attempts(&rc->grp);
    conf->fifo = rc->grp.fifo;
    conf->backoff_ms = br_rcur_backoff;
    conf->backoff_arg = &rc->grp;
}

static bool br_rcur_same_conf(const br_group_t *a, const br_group_t *b)
{
    return a->retry_max_times == b->retry_max_times && a->fifo == b->fifo &&
           a->retry_initial_ms == b->retry_initial_ms && a->retry_max_ms == b->retry_max_ms &&
           a->retry_multiplier == b->retry_multiplier;
}

br_rcur_t *br_rcur_find(br_queue_t *q, const char *group)
{
    for (br_rcur_t *rc = q->cons ? q->cons->curs : NULL; rc; rc = rc->next) {
        if (!rc->loading && strcmp(rc->group, group) == 0) {
            return rc;
        }
    }
    return NULL;
}

void br_rcur_park(br_rcur_t *rc, br_queue_t *q, br_rcur_fn fn, void *arg)
{
    br_rcur_wait_t *w = mq_calloc(1, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    w->q = q;
    br_rcur_wait_t **pp = &rc->parked;
    while (*pp) {
        pp = &(*pp)->next;
    }
    *pp = w;
}

void br_rcur_unpark(br_server_t *srv, br_rcur_t *rc)
{
    while (rc->busy == 0 && rc->parked) {
        br_rcur_wait_t *w = rc->parked;
        rc->parked = w->next;
        if (!w->fn(srv, w->q, rc, MQ_OK, w->arg)) {
            br_queue_put(srv, w->q);
        }
        free(w);
    }
}

static void br_rcur_unlink(br_queue_t *q, br_rcur_t *rc)
{
    for (br_rcur_t **pp = &q->cons->curs; *pp; pp = &(*pp)->next) {
        if (*pp == rc) {
            *pp = rc->next;
            return;
        }
    }
}

/* --- loading ----------------------------------------------------------------------------- */

static mq_err_t br_rcur_replay(const uint8_t *rec, size_t len, void *arg)
{
    br_rcur_load_t *ld = arg;
    return br_cursor_replay(ld->cur, rec, len, mq_now_ms(), mq_wall_ms());
}

static mq_err_t br_rcur_snap(const uint8_t **snap, size_t *snap_len, void *arg)
{
    br_rcur_load_t *ld = arg;
    /* What retention removed while nobody owned the queue is gone. */
    br_cursor_clamp(ld->cur, br_mlog_min_offset(ld->q->ml));
    br_cursor_rec_snapshot(ld->cur, &ld->snap);
    *snap = ld->snap->data;
    *snap_len = ld->snap->len;
    return MQ_OK;
}

/* Answers records that waited for a store that will not come. */
static void br_rcur_pend_fail(br_rcur_t *rc, mq_err_t err)
{
    br_rcur_prec_t *p = rc->pend;
    rc->pend = NULL;
    rc->pend_tail = &rc->pend;
    while (p) {
        br_rcur_prec_t *next = p->next;
        if (p->cb) {
            p->cb(err, p->arg);
        }
        mq_buf_unref(p->rec);
        free(p);
        p = next;
    }
}

/* The store is in place (or failed): the records that waited go to it, in
 * order. @locality queue key */
static void br_rcur_created_task(void *arg)
{
    br_rcur_create_t *cj = arg;
    br_server_t *srv = cj->srv;
    br_rcur_t *rc = cj->rc;
    rc->creating = false;
    if (cj->err == MQ_OK) {
        rc->cs = cj->cs;
        br_rcur_prec_t *p = rc->pend;
        rc->pend = NULL;
        rc->pend_tail = &rc->pend;
        while (p) {
            br_rcur_prec_t *next = p->next;
            mq_err_t err = br_cstore_append(rc->cs, p->rec->data, p->rec->len, p->cb, p->arg);
            if (err != MQ_OK && p->cb) {
                p->cb(err, p->arg);
            }
            mq_buf_unref(p->rec);
            free(p);
            p = next;
        }
        MQ_LOG_DEBUG("cursor store created group=%s topic=%s queue=%d ms=%llu", rc->group,
                     cj->q->topic, cj->q->id, (unsigned long long)(mq_now_ms() - cj->t0));
    } else {
        rc->store_err = cj->err;
        MQ_LOG_WARN("cannot create cursor store group=%s topic=%s queue=%d err=%s", rc->group,
                    cj->q->topic, cj->q->id, mq_err_str(cj->err));
        br_rcur_pend_fail(rc, cj->err);
    }
    br_queue_put(srv, cj->q);
    free(cj);
}

/* @locality srv->recv->io (blocking) */
static void br_rcur_create_task(void *arg)
{
    br_rcur_create_t *cj = arg;
    br_server_t *srv = cj->srv;
    br_cstore_conf_t cc = {srv->lc, srv->zk, srv->root, cj->rc->group, cj->q->topic, cj->q->id};
    cj->err = br_cstore_create(&cc, cj->snap->data, cj->snap->len, &cj->cs);
    mq_buf_unref(cj->snap);
    cj->snap = NULL;
    mq_executor_submit(srv->ex, br_queue_key(cj->q->topic, cj->q->id), br_rcur_created_task, cj);
}

/* Starts creating the store of the new cursor rc, its first record the
 * cursor as it is now (before any request used it). @locality queue key */
static void br_rcur_create_start(br_server_t *srv, br_queue_t *q, br_rcur_t *rc)
{
    rc->pend = NULL;
    rc->pend_tail = &rc->pend;
    br_queue_t *lq = atomic_load(&srv->recv->stopping) ? NULL : br_queue_get(srv, q->topic, q->id);
    if (!lq) {
        /* The queue is going away: nothing to store for. */
        rc->store_err = MQ_ENOTOWNER;
        return;
    }
    br_rcur_create_t *cj = mq_calloc(1, sizeof(*cj));
    cj->srv = srv;
    cj->q = lq;
    cj->rc = rc;
    cj->t0 = mq_now_ms();
    br_cursor_clamp(rc->cur, br_mlog_min_offset(q->ml));
    br_cursor_rec_snapshot(rc->cur, &cj->snap);
    rc->creating = true;
    mq_executor_submit(srv->recv->io, br_queue_key(q->topic, q->id), br_rcur_create_task, cj);
}

/* Runs the requests that waited for the load. @locality queue key */
static void br_rcur_loaded_task(void *arg)
{
    br_rcur_load_t *ld = arg;
    br_server_t *srv = ld->srv;
    br_rcur_t *rc = ld->rc;
    br_rcur_wait_t *w = rc->waits;
    rc->waits = NULL;
    rc->loading = false;
    if (ld->err == MQ_OK && ld->fresh) {
        rc->cur = ld->cur;
        rc->gen = atomic_fetch_add(&srv->recv->gen, 1) + 1;
        br_rcur_create_start(srv, ld->q, rc);
        MQ_LOG_INFO("new cursor group=%s topic=%s queue=%d start=%lld load_ms=%llu", rc->group,
                    ld->q->topic, ld->q->id, (long long)br_mlog_min_offset(ld->q->ml),
                    (unsigned long long)(mq_now_ms() - ld->t0));
    } else if (ld->err == MQ_OK) {
        rc->cur = ld->cur;
        rc->cs = ld->cs;
        rc->gen = atomic_fetch_add(&srv->recv->gen, 1) + 1;
        br_cursor_stats_t st;
        br_cursor_stats(rc->cur, &st);
        MQ_LOG_INFO("cursor loaded group=%s topic=%s queue=%d watermark=%lld load_ms=%llu",
                    rc->group, ld->q->topic, ld->q->id, (long long)st.watermark,
                    (unsigned long long)(mq_now_ms() - ld->t0));
    } else {
        MQ_LOG_WARN("cannot load cursor group=%s topic=%s queue=%d err=%s", rc->group, ld->q->topic,
                    ld->q->id, mq_err_str(ld->err));
        br_rcur_unlink(ld->q, rc);
        if (ld->cur) {
            br_cursor_free(ld->cur);
        }
        free(rc);
        rc = NULL;
    }
    while (w) {
        br_rcur_wait_t *next = w->next;
        bool keep = false;
        if (rc) {
            keep = w->fn(srv, w->q, rc, MQ_OK, w->arg);
        } else {
            w->fn(srv, NULL, NULL, ld->err, w->arg);
        }
        if (!keep) {
            br_queue_put(srv, w->q);
        }
        free(w);
        w = next;
    }
    br_queue_put(srv, ld->q);
    free(ld);
}

/* @locality srv->recv->io (blocking) */
static void br_rcur_load_task(void *arg)
{
    br_rcur_load_t *ld = arg;
    br_server_t *srv = ld->srv;
    br_rcur_t *rc = ld->rc;
    br_cursor_conf_t conf;
    br_rcur_conf(srv, rc, &conf);
    ld->cur = br_cursor_new(&conf, br_mlog_min_offset(ld->q->ml));
    br_cstore_conf_t cc = {srv->lc, srv->zk, srv->root, rc->group, ld->q->topic, ld->q->id};
    /* A new cursor (no znode: the open's one read says so) serves at once;
     * its store, three synced ZooKeeper writes, is created after
     * (br_rcur_create_start). */
    ld->err = br_cstore_open_existing(&cc, br_rcur_replay, br_rcur_snap, ld, &ld->cs);
    if (ld->err == MQ_ENOTFOUND) {
        ld->err = MQ_OK;
        ld->fresh = true;
    }
    if (ld->snap) {
        mq_buf_unref(ld->snap);
        ld->snap = NULL;
    }
    mq_executor_submit(srv->ex, br_queue_key(ld->q->topic, ld->q->id), br_rcur_loaded_task, ld);
}

static void br_rcur_free_store_task(void *arg)
{
    br_cstore_free(arg);
}

/* Forgets a cursor whose store broke; the next request loads it again.
 * @locality queue key */
static void br_rcur_drop(br_server_t *srv, br_queue_t *q, br_rcur_t *rc)
{
    MQ_LOG_WARN("cursor store broken, reloading group=%s topic=%s queue=%d", rc->group, q->topic,
                q->id);
    br_rcur_unlink(q, rc);
    br_cursor_free(rc->cur);
    /* Freeing the store may wait for its appends: not on the executor. */
    if (rc->cs) {
        mq_executor_submit(srv->recv->io, mq_mix64((uintptr_t)rc->cs), br_rcur_free_store_task,
                           rc->cs);
    }
    free(rc);
}

static void br_rcur_with_task(void *arg)
{
    br_rcur_req_t *req = arg;
    br_server_t *srv = req->srv;
    br_queue_t *q = br_queue_get(srv, req->topic, req->queue);
    if (!q) {
        req->fn(srv, NULL, NULL, MQ_ENOTOWNER, req->arg);
        free(req);
        return;
    }
    br_rcur_t *rc = q->cons->curs;
    while (rc && strcmp(rc->group, req->grp.name) != 0) {
        rc = rc->next;
    }
    if (rc && !rc->loading && !rc->creating &&
        (rc->cs ? br_cstore_broken(rc->cs) : rc->store_err != MQ_OK) && rc->busy == 0 &&
        !rc->rolling && !atomic_load(&srv->recv->stopping)) {
        br_rcur_drop(srv, q, rc);
        rc = NULL;
    }
    if (!rc) {
        /* Shutting down: no load starts (srv->recv->io is going away). */
        br_queue_t *lq =
            atomic_load(&srv->recv->stopping) ? NULL : br_queue_get(srv, req->topic, req->queue);
        if (!lq) {
            br_queue_put(srv, q);
            req->fn(srv, NULL, NULL, MQ_ENOTOWNER, req->arg);
            free(req);
            return;
        }
        rc = mq_calloc(1, sizeof(*rc));
        snprintf(rc->group, sizeof(rc->group), "%s", req->grp.name);
        rc->grp = req->grp;
        rc->loading = true;
        rc->next = q->cons->curs;
        q->cons->curs = rc;
        br_rcur_load_t *ld = mq_calloc(1, sizeof(*ld));
        ld->srv = srv;
        ld->q = lq;
        ld->rc = rc;
        ld->t0 = mq_now_ms();
        mq_executor_submit(srv->recv->io, br_queue_key(q->topic, q->id), br_rcur_load_task, ld);
    }
    if (rc->loading) {
        br_rcur_wait_t *w = mq_calloc(1, sizeof(*w));
        w->fn = req->fn;
        w->arg = req->arg;
        w->q = q;
        br_rcur_wait_t **pp = &rc->waits;
        while (*pp) {
            pp = &(*pp)->next;
        }
        *pp = w;
        free(req);
        return;
    }
    if (!br_rcur_same_conf(&rc->grp, &req->grp)) {
        rc->grp = req->grp;
        br_cursor_conf_t conf;
        br_rcur_conf(srv, rc, &conf);
        br_cursor_reconf(rc->cur, &conf);
    }
    if (!req->fn(srv, q, rc, MQ_OK, req->arg)) {
        br_queue_put(srv, q);
    }
    free(req);
}

void br_rcur_with(br_server_t *srv, const char *topic, int queue, const br_group_t *grp,
                  br_rcur_fn fn, void *arg)
{
    br_rcur_req_t *req = mq_calloc(1, sizeof(*req));
    req->srv = srv;
    snprintf(req->topic, sizeof(req->topic), "%s", topic);
    req->queue = queue;
    req->grp = *grp;
    req->fn = fn;
    req->arg = arg;
    mq_executor_submit(srv->ex, br_queue_key(topic, queue), br_rcur_with_task, req);
}

/* --- records and compaction -------------------------------------------------------------- */

static void br_rcur_rolled_task(void *arg)
{
    br_rcur_roll_t *rr = arg;
    rr->rc->rolling = false;
    br_queue_put(rr->srv, rr->q);
    free(rr);
}

/* @locality srv->recv->io (blocking) */
static void br_rcur_roll_task(void *arg)
{
    br_rcur_roll_t *rr = arg;
    mq_err_t err = br_cstore_roll(rr->rc->cs, rr->snap->data, rr->snap->len);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cursor compaction failed group=%s topic=%s queue=%d err=%s", rr->rc->group,
                    rr->q->topic, rr->q->id, mq_err_str(err));
    } else {
        MQ_LOG_DEBUG("cursor compacted group=%s topic=%s queue=%d bytes=%zu", rr->rc->group,
                     rr->q->topic, rr->q->id, rr->snap->len);
    }
    mq_buf_unref(rr->snap);
    mq_executor_submit(rr->srv->ex, br_queue_key(rr->q->topic, rr->q->id), br_rcur_rolled_task, rr);
}

static void br_rcur_append_done(mq_err_t err, void *arg)
{
    (void)arg;
    if (err != MQ_OK) {
        MQ_LOG_DEBUG("cursor record not stored err=%s", mq_err_str(err));
    }
}

mq_err_t br_rcur_append(br_server_t *srv, br_queue_t *q, br_rcur_t *rc, mq_buf_t *rec,
                        br_cstore_done_cb cb, void *arg)
{
    if (!rc->cs) {
        if (!rc->creating) {
            mq_buf_unref(rec);
            return rc->store_err != MQ_OK ? rc->store_err : MQ_ECLOSED;
        }
        br_rcur_prec_t *p = mq_calloc(1, sizeof(*p));
        p->rec = rec;
        p->cb = cb ? cb : br_rcur_append_done;
        p->arg = arg;
        *rc->pend_tail = p;
        rc->pend_tail = &p->next;
        return MQ_OK;
    }
    mq_err_t err =
        br_cstore_append(rc->cs, rec->data, rec->len, cb ? cb : br_rcur_append_done, arg);
    mq_buf_unref(rec);
    if (err != MQ_OK || rc->rolling || atomic_load(&srv->recv->stopping) ||
        br_cstore_entries(rc->cs) <= (uint64_t)srv->conf->cursorCompactEntries) {
        return err;
    }
    /* The roll holds the queue, so the cursor and its store stay. */
    br_queue_t *lq = br_queue_get(srv, q->topic, q->id);
    if (!lq) {
        return err;
    }
    br_rcur_roll_t *rr = mq_calloc(1, sizeof(*rr));
    rr->srv = srv;
    rr->q = lq;
    rr->rc = rc;
    br_cursor_rec_snapshot(rc->cur, &rr->snap);
    br_cstore_roll_begin(rc->cs);
    rc->rolling = true;
    mq_executor_submit(srv->recv->io, br_queue_key(q->topic, q->id), br_rcur_roll_task, rr);
    return err;
}

/* --- queue lifecycle --------------------------------------------------------------------- */

void br_recv_queue_open(br_server_t *srv, br_queue_t *q)
{
    (void)srv;
    q->cons = mq_calloc(1, sizeof(*q->cons));
}

typedef struct br_rcur_detach {
    br_queue_t *q;
    bool lost;
    br_rcur_t *curs;
    mq_buf_t **snaps;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
} br_rcur_detach_t;

/* Takes the cursors out of the queue, with a snapshot of each for a
 * planned handover. @locality queue key */
static void br_rcur_detach_task(void *arg)
{
    br_rcur_detach_t *d = arg;
    d->curs = d->q->cons->curs;
    d->q->cons->curs = NULL;
    for (br_rcur_t *rc = d->curs; rc; rc = rc->next) {
        d->n++;
    }
    d->snaps = mq_calloc(d->n ? d->n : 1, sizeof(*d->snaps));
    size_t i = 0;
    for (br_rcur_t *rc = d->curs; rc; rc = rc->next, i++) {
        /* Nobody holds the queue, so no load or pop is in flight. */
        MQ_ASSERT(!rc->loading && rc->cur && !rc->parked);
        if (!d->lost && rc->cs && !br_cstore_broken(rc->cs)) {
            br_cursor_rec_handover(rc->cur, mq_now_ms(), mq_wall_ms(), &d->snaps[i]);
        }
    }
    pthread_mutex_lock(&d->mu);
    d->done = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

void br_recv_queue_release(br_server_t *srv, br_queue_t *q, bool lost)
{
    if (!q->cons) {
        return;
    }
    br_rcur_detach_t d = {.q = q, .lost = lost};
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cond, NULL);
    mq_executor_submit(srv->ex, br_queue_key(q->topic, q->id), br_rcur_detach_task, &d);
    pthread_mutex_lock(&d.mu);
    while (!d.done) {
        pthread_cond_wait(&d.cond, &d.mu);
    }
    pthread_mutex_unlock(&d.mu);
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cond);
    size_t i = 0;
    for (br_rcur_t *rc = d.curs, *next; rc; rc = next, i++) {
        next = rc->next;
        if (d.snaps[i]) {
            mq_err_t err = br_cstore_close(rc->cs, d.snaps[i]->data, d.snaps[i]->len);
            if (err != MQ_OK) {
                MQ_LOG_WARN("closing cursor failed group=%s topic=%s queue=%d err=%s", rc->group,
                            q->topic, q->id, mq_err_str(err));
            }
            mq_buf_unref(d.snaps[i]);
        }
        if (rc->cs) {
            br_cstore_free(rc->cs);
        }
        br_cursor_free(rc->cur);
        MQ_LOG_DEBUG("cursor released group=%s topic=%s queue=%d lost=%d", rc->group, q->topic,
                     q->id, lost);
        free(rc);
    }
    free(d.snaps);
    free(q->cons);
    q->cons = NULL;
    /* Receives waiting on the topic look again (and end if nothing of
     * the topic is left here, so their clients find the new owner). */
    br_recv_notify(srv, q->topic, q->id);
}
