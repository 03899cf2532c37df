/*
 * br_owner: ownership of the queues the leader assigns to this broker.
 *
 * Assignment (ctl thread). br_owner_refresh reads brokers/assignments/<id>
 * through the assignments view (whose watches bring it back on every
 * change), and marks each queue assigned or not in the queue table
 * (cl->oqs). A queue whose mark changes is kicked.
 *
 * One queue (its executor thread, key = hash(topic, queue)). A step looks
 * at the queue's marks and does what they ask:
 *   - owned under an older session (cl->gen moved, or another session id):
 *     on_release(lost = true), forget it: the ephemeral went with the
 *     session and another broker may already have it;
 *   - no longer assigned and owned: on_release(lost = false), then delete
 *     our ownership znode (planned handover: the next owner waits for it);
 *   - assigned and not owned: make sure ownership/<topic> exists; if
 *     ownership/<topic>/<queue> exists (the previous owner has not let go,
 *     or its session has not expired yet) wait on an exists watch; when it
 *     is absent create it (ephemeral, NOT re-created after an expiry: a new
 *     session must not own anything without going through this again),
 *     then on_acquire. MQ_EEXIST means someone was faster: wait again. An
 *     on_acquire error deletes the znode and backs off (1 s doubling to
 *     30 s) before the next attempt;
 *   - br_cluster_release asked: delete our znode (the caller stopped
 *     serving already), and try again after a second (the assignment still
 *     names us, unless the leader moves it meanwhile).
 * Kicks, watch firings and retry timers all end in a step on the queue's
 * thread, so one queue's steps, on_acquire and on_release never overlap
 * and happen in order, while different queues proceed in parallel.
 *
 * Session expiry (zk event thread): cl->gen moves on at once (steps see it),
 * and a ctl task forgets the whole assignment and kicks every queue. After
 * the new session is up, the assignment is read again and queues are
 * acquired from scratch.
 *
 * A node of ours that we could not delete (connection trouble) is marked
 * stale and deleted by the next step: left alone it would block the next
 * owner until our session ends.
 *
 * Locks: own_mu guards the table and the marks other threads set
 * (assigned, kick_pending, release_req, armed); the rest of a queue's state
 * belongs to its thread. Table entries live until br_owner_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* Back-off after on_acquire failed: doubles from the first to the last. */
#define BR_OWNER_BACKOFF_MS 1000
#define BR_OWNER_BACKOFF_MAX_MS 30000
/* How long br_cluster_release waits before acquiring again. */
#define BR_OWNER_RELEASE_MS 1000
/* Exists/create rounds of one step (each lost race is one). */
#define BR_OWNER_ROUNDS 4

static uint64_t br_owner_key(const char *topic, int queue)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = topic; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    return mq_mix64(h ^ (uint64_t)(uint32_t)queue);
}

/* --- the table --------------------------------------------------------------- */

/* @locks own_mu */
static br_oq_t *br_owner_find_locked(br_cluster_t *cl, const br_qid_t *id, size_t *pos)
{
    size_t lo = 0;
    size_t hi = cl->noqs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = br_qid_cmp(id, &cl->oqs[mid]->id);
        if (c == 0) {
            if (pos) {
                *pos = mid;
            }
            return cl->oqs[mid];
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

/* @locks own_mu */
static br_oq_t *br_owner_add_locked(br_cluster_t *cl, const br_qid_t *id)
{
    size_t at;
    br_oq_t *oq = br_owner_find_locked(cl, id, &at);
    if (oq) {
        return oq;
    }
    oq = mq_calloc(1, sizeof(*oq));
    oq->cl = cl;
    oq->id = *id;
    oq->key = br_owner_key(id->topic, id->queue);
    /* Fits: a valid topic name and a queue number under the path bound. */
    br_rec_path(oq->path, sizeof(oq->path), cl->root, "/ownership/%s/%d", id->topic, id->queue);
    if (cl->noqs == cl->capoqs) {
        cl->capoqs = cl->capoqs ? cl->capoqs * 2 : 64;
        cl->oqs = mq_realloc(cl->oqs, cl->capoqs * sizeof(*cl->oqs));
    }
    memmove(&cl->oqs[at + 1], &cl->oqs[at], (cl->noqs - at) * sizeof(*cl->oqs));
    cl->oqs[at] = oq;
    cl->noqs++;
    return oq;
}

static void br_owner_step(br_oq_t *oq);

static void br_owner_kick_task(void *arg)
{
    br_oq_t *oq = arg;
    pthread_mutex_lock(&oq->cl->own_mu);
    oq->kick_pending = false;
    pthread_mutex_unlock(&oq->cl->own_mu);
    br_owner_step(oq);
}

/* Queues a step (one at a time). @locks own_mu */
static void br_owner_kick_locked(br_cluster_t *cl, br_oq_t *oq)
{
    if (!oq->kick_pending && !atomic_load(&cl->stopping)) {
        oq->kick_pending = true;
        mq_executor_submit(cl->ex, oq->key, br_owner_kick_task, oq);
    }
}

/* --- one queue (its executor thread) ------------------------------------------ */

static void br_owner_timer_task(void *arg)
{
    br_oq_t *oq = arg;
    oq->timer_pending = false;
    br_owner_step(oq);
}

static void br_owner_retry_in(br_oq_t *oq, uint64_t delay_ms)
{
    uint64_t at = mq_now_ms() + delay_ms;
    if (at > oq->retry_at) {
        oq->retry_at = at;
    }
    if (!oq->timer_pending) {
        oq->timer_pending = true;
        mq_executor_schedule(oq->cl->ex, oq->key, delay_ms, br_owner_timer_task, oq);
    }
}

static void br_owner_watch(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg);

/* Deletes the ownership znode if our current session holds it. Returns
 * false when that could not be checked or done (retry later). */
static bool br_owner_delete(br_cluster_t *cl, br_oq_t *oq)
{
    zk_stat_t st;
    mq_err_t err = zk_exists(cl->zk, oq->path, &st);
    if (err == MQ_OK && st.ephemeral_owner == zk_client_session_id(cl->zk)) {
        err = zk_delete(cl->zk, oq->path, st.version);
    } else if (err == MQ_OK) {
        /* Another session's node (ours expired, or it already moved on). */
        return true;
    }
    if (err == MQ_OK || err == MQ_ENOTFOUND || err == MQ_EBADVERSION) {
        /* BADVERSION: it changed hands in between; not ours any more. */
        return true;
    }
    MQ_LOG_DEBUG("ownership znode not deleted yet topic=%s queue=%d err=%s", oq->id.topic,
                 oq->id.queue, mq_err_name(err));
    return false;
}

static void br_owner_release(br_cluster_t *cl, br_oq_t *oq, bool lost)
{
    MQ_LOG_INFO("queue released topic=%s queue=%d id=%s lost=%s", oq->id.topic, oq->id.queue,
                cl->id, lost ? "true" : "false");
    cl->conf.on_release(oq->id.topic, oq->id.queue, lost, cl->conf.arg);
    oq->owned = false;
    if (!lost && !br_owner_delete(cl, oq)) {
        oq->stale_node = true;
    }
}

/* We hold the znode (created in session sid at generation gen): serve. */
static void br_owner_acquired(br_cluster_t *cl, br_oq_t *oq, uint64_t gen, int64_t sid)
{
    oq->owned = true;
    oq->owned_gen = gen;
    oq->owned_sid = sid;
    mq_err_t err = cl->conf.on_acquire(oq->id.topic, oq->id.queue, cl->conf.arg);
    if (err == MQ_OK) {
        oq->failures = 0;
        MQ_LOG_INFO("queue acquired topic=%s queue=%d id=%s", oq->id.topic, oq->id.queue, cl->id);
        return;
    }
    oq->owned = false;
    oq->failures++;
    uint64_t backoff = BR_OWNER_BACKOFF_MS;
    for (unsigned i = 1; i < oq->failures && backoff < BR_OWNER_BACKOFF_MAX_MS; i++) {
        backoff *= 2;
    }
    backoff = MQ_MIN(backoff, (uint64_t)BR_OWNER_BACKOFF_MAX_MS);
    MQ_LOG_WARN("queue not acquired, giving the znode back topic=%s queue=%d err=%s "
                "retry_ms=%llu",
                oq->id.topic, oq->id.queue, mq_err_name(err), (unsigned long long)backoff);
    if (!br_owner_delete(cl, oq)) {
        oq->stale_node = true;
    }
    br_owner_retry_in(oq, backoff);
}

/* Makes ownership/<topic> exist (once per queue entry). */
static mq_err_t br_owner_parent(br_cluster_t *cl, br_oq_t *oq)
{
    if (oq->parent_ok) {
        return MQ_OK;
    }
    char parent[BR_PATH_MAX];
    br_rec_path(parent, sizeof(parent), cl->root, "/ownership/%s", oq->id.topic);
    mq_err_t err = zk_create_parents(cl->zk, parent, NULL, 0, ZK_PERSISTENT, NULL, 0);
    if (err == MQ_OK || err == MQ_EEXIST) {
        oq->parent_ok = true;
        return MQ_OK;
    }
    return err;
}

/* Tries to take the queue (see the file comment). */
static void br_owner_try(br_cluster_t *cl, br_oq_t *oq)
{
    mq_err_t err = br_owner_parent(cl, oq);
    char *data = NULL;
    size_t len = 0;
    if (err == MQ_OK) {
        err = br_rec_owner_encode(cl->id, cl->endpoint, &data, &len);
    }
    for (int round = 0; round < BR_OWNER_ROUNDS && err == MQ_OK; round++) {
        pthread_mutex_lock(&cl->own_mu);
        bool arm = oq->armed <= 0;
        pthread_mutex_unlock(&cl->own_mu);
        zk_stat_t st;
        err = arm ? zk_exists_w(cl->zk, oq->path, br_owner_watch, cl->hook, &st)
                  : zk_exists(cl->zk, oq->path, &st);
        if (arm && (err == MQ_OK || err == MQ_ENOTFOUND)) {
            pthread_mutex_lock(&cl->own_mu);
            oq->armed++;
            pthread_mutex_unlock(&cl->own_mu);
        }
        uint64_t gen = atomic_load(&cl->gen);
        int64_t sid = zk_client_session_id(cl->zk);
        if (err == MQ_OK) {
            if (st.ephemeral_owner == sid) {
                /* Ours already: a create whose reply was lost. */
                free(data);
                br_owner_acquired(cl, oq, gen, sid);
                return;
            }
            MQ_LOG_DEBUG("queue still owned elsewhere, waiting topic=%s queue=%d session=0x%llx",
                         oq->id.topic, oq->id.queue, (unsigned long long)st.ephemeral_owner);
            free(data);
            return; /* the exists watch brings us back */
        }
        if (err != MQ_ENOTFOUND) {
            break;
        }
        err = zk_create(cl->zk, oq->path, data, len, ZK_EPHEMERAL, NULL, 0);
        if (err == MQ_OK) {
            if (atomic_load(&cl->gen) == gen && zk_client_session_id(cl->zk) == sid) {
                free(data);
                br_owner_acquired(cl, oq, gen, sid);
                return;
            }
            /* The session changed under the create: whichever session made
             * the node, we are not sure to hold it. Start over. */
            oq->stale_node = true;
            err = MQ_ESESSION;
            break;
        }
        if (err == MQ_EEXIST || err == MQ_ECONN) {
            /* Someone was faster, or the create may have happened: look. */
            err = MQ_OK;
            continue;
        }
        if (err == MQ_ENOTFOUND) {
            oq->parent_ok = false;
            err = br_owner_parent(cl, oq);
        }
    }
    free(data);
    if (err != MQ_OK) {
        MQ_LOG_DEBUG("queue acquisition retrying topic=%s queue=%d err=%s", oq->id.topic,
                     oq->id.queue, mq_err_name(err));
    }
    /* Errors, or too many lost races in a row: try again shortly. */
    br_owner_retry_in(oq, BR_CLUSTER_RETRY_MS);
}

/* One step of a queue (file comment). @thread cl->ex, thread of oq->key */
static void br_owner_step(br_oq_t *oq)
{
    br_cluster_t *cl = oq->cl;
    if (atomic_load(&cl->stopping)) {
        return;
    }
    if (oq->owned &&
        (oq->owned_gen != atomic_load(&cl->gen) || oq->owned_sid != zk_client_session_id(cl->zk))) {
        br_owner_release(cl, oq, true);
    }
    pthread_mutex_lock(&cl->own_mu);
    bool assigned = oq->assigned;
    bool release = oq->release_req;
    oq->release_req = false;
    pthread_mutex_unlock(&cl->own_mu);

    if (release && oq->owned) {
        MQ_LOG_INFO("queue given up topic=%s queue=%d id=%s", oq->id.topic, oq->id.queue, cl->id);
        oq->owned = false;
        if (!br_owner_delete(cl, oq)) {
            oq->stale_node = true;
        }
        br_owner_retry_in(oq, BR_OWNER_RELEASE_MS);
    }
    if (oq->owned && !assigned) {
        br_owner_release(cl, oq, false);
    }
    if (oq->stale_node && !oq->owned) {
        oq->stale_node = !br_owner_delete(cl, oq);
        if (oq->stale_node) {
            br_owner_retry_in(oq, BR_CLUSTER_RETRY_MS);
            return;
        }
    }
    if (!assigned || oq->owned) {
        return;
    }
    uint64_t now = mq_now_ms();
    if (now < oq->retry_at) {
        if (!oq->timer_pending) {
            br_owner_retry_in(oq, oq->retry_at - now);
        }
        return;
    }
    br_owner_try(cl, oq);
}

/* The exists watch on an ownership znode we wait for. zk event thread. */
static void br_owner_watch(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_cluster_t *cl = br_hook_enter(hook);
    if (!cl) {
        return;
    }
    size_t rn = strlen(cl->owner_root);
    const char *slash = strrchr(path, '/');
    br_qid_t id;
    uint64_t q;
    if (slash && strncmp(path, cl->owner_root, rn) == 0 && path[rn] == '/' &&
        slash > path + rn + 1 && (size_t)(slash - (path + rn + 1)) < sizeof(id.topic) &&
        br_rec_u64(slash + 1, strlen(slash + 1), &q) && q < BR_TOPIC_MAX_QUEUES) {
        size_t tn = (size_t)(slash - (path + rn + 1));
        memcpy(id.topic, path + rn + 1, tn);
        id.topic[tn] = '\0';
        id.queue = (int)q;
        pthread_mutex_lock(&cl->own_mu);
        br_oq_t *oq = br_owner_find_locked(cl, &id, NULL);
        if (oq) {
            oq->armed--;
            br_owner_kick_locked(cl, oq);
        }
        pthread_mutex_unlock(&cl->own_mu);
        MQ_LOG_DEBUG("ownership znode changed path=%s event=%d", path, (int)event);
    }
    br_hook_leave(hook);
}

/* --- our assignment (ctl) -------------------------------------------------------- */

static void br_owner_refresh_task(void *arg);

static void br_owner_retry_task(void *arg)
{
    br_cluster_t *cl = arg;
    cl->refresh_retry = false;
    br_owner_refresh_soon(cl);
}

/* Marks each queue assigned or not as qs (sorted) says, and kicks those
 * that changed. @locality ctl */
static void br_owner_apply(br_cluster_t *cl, const br_qid_t *qs, size_t n)
{
    size_t added = 0;
    size_t removed = 0;
    pthread_mutex_lock(&cl->own_mu);
    for (size_t i = 0; i < n; i++) {
        br_owner_add_locked(cl, &qs[i]);
    }
    for (size_t i = 0; i < cl->noqs; i++) {
        br_oq_t *oq = cl->oqs[i];
        bool want = n > 0 && bsearch(&oq->id, qs, n, sizeof(*qs), br_qid_cmp) != NULL;
        if (want != oq->assigned) {
            oq->assigned = want;
            added += want;
            removed += !want;
            br_owner_kick_locked(cl, oq);
        }
    }
    pthread_mutex_unlock(&cl->own_mu);
    if (added > 0 || removed > 0) {
        MQ_LOG_INFO("assignment changed id=%s queues=%zu added=%zu removed=%zu", cl->id, n, added,
                    removed);
    }
}

/* @locality ctl */
static void br_owner_refresh(br_cluster_t *cl)
{
    char *data = NULL;
    size_t len = 0;
    mq_err_t err = br_dir_get(cl->assigns, cl->id, &data, &len);
    br_qid_t *qs = NULL;
    size_t n = 0;
    if (err == MQ_OK) {
        char id[BR_ID_MAX];
        char why[128] = "";
        err = br_rec_assign_decode(data, len, id, &qs, &n, why, sizeof(why));
        if (err == MQ_OK && strcmp(id, cl->id) != 0) {
            snprintf(why, sizeof(why), "record names broker '%s'", id);
            err = MQ_ECORRUPT;
        }
        if (err != MQ_OK) {
            /* Keep what we have: the leader rewrites it. */
            MQ_LOG_WARN("our assignment is unreadable, keeping the current one id=%s why=%s",
                        cl->id, why);
            free(data);
            free(qs);
            return;
        }
    } else if (err == MQ_ENOTFOUND) {
        err = MQ_OK; /* nothing assigned (yet) */
    }
    free(data);
    if (err != MQ_OK) {
        MQ_LOG_DEBUG("assignment not read, retrying id=%s err=%s", cl->id, mq_err_name(err));
        if (!cl->refresh_retry) {
            cl->refresh_retry = true;
            mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, BR_CLUSTER_RETRY_MS,
                                 br_owner_retry_task, cl);
        }
        return;
    }
    br_owner_apply(cl, qs, n);
    free(qs);
}

static void br_owner_refresh_task(void *arg)
{
    br_cluster_t *cl = arg;
    atomic_store(&cl->refresh_pending, false);
    if (atomic_load(&cl->stopping)) {
        return;
    }
    br_owner_refresh(cl);
}

/* @thread any */
void br_owner_refresh_soon(br_cluster_t *cl)
{
    if (atomic_load(&cl->stopping)) {
        return;
    }
    if (!atomic_exchange(&cl->refresh_pending, true)) {
        mq_executor_submit(cl->ctl, BR_CLUSTER_CTL_KEY, br_owner_refresh_task, cl);
    }
}

/* @locality ctl */
static void br_owner_expired_task(void *arg)
{
    br_cluster_t *cl = arg;
    if (atomic_load(&cl->stopping)) {
        return;
    }
    /* Forget the assignment: the new session reads it again. */
    br_owner_apply(cl, NULL, 0);
    /* Owned queues that are still assigned get their lost release too. */
    pthread_mutex_lock(&cl->own_mu);
    for (size_t i = 0; i < cl->noqs; i++) {
        br_owner_kick_locked(cl, cl->oqs[i]);
    }
    pthread_mutex_unlock(&cl->own_mu);
}

/* @thread zk event thread */
void br_owner_session_expired(br_cluster_t *cl)
{
    atomic_fetch_add(&cl->gen, 1);
    if (!atomic_load(&cl->stopping)) {
        mq_executor_submit(cl->ctl, BR_CLUSTER_CTL_KEY, br_owner_expired_task, cl);
    }
}

/* @thread zk event thread */
void br_owner_session_new(br_cluster_t *cl)
{
    br_owner_refresh_soon(cl);
}

/* --- stop ---------------------------------------------------------------------------- */

/* @thread cl->ex, thread of the queue's key (during stop) */
static void br_owner_final_task(void *arg)
{
    br_oq_t *oq = arg;
    br_cluster_t *cl = oq->cl;
    if (oq->owned) {
        bool lost =
            oq->owned_gen != atomic_load(&cl->gen) || oq->owned_sid != zk_client_session_id(cl->zk);
        br_owner_release(cl, oq, lost);
    }
    if (oq->stale_node) {
        br_owner_delete(cl, oq);
    }
}

/* @thread br_cluster_stop's */
void br_owner_stop(br_cluster_t *cl)
{
    pthread_mutex_lock(&cl->own_mu);
    for (size_t i = 0; i < cl->noqs; i++) {
        mq_executor_submit(cl->ex, cl->oqs[i]->key, br_owner_final_task, cl->oqs[i]);
    }
    pthread_mutex_unlock(&cl->own_mu);
}

/* @thread br_cluster_stop's, after the queue executor is gone */
void br_owner_free(br_cluster_t *cl)
{
    for (size_t i = 0; i < cl->noqs; i++) {
        free(cl->oqs[i]);
    }
    free(cl->oqs);
    cl->oqs = NULL;
    cl->noqs = 0;
}

/* @thread any (also on_acquire / on_release); never blocks: the work runs
 * on the queue's thread. A no-op while stopping. */
void br_cluster_release(br_cluster_t *cl, const char *topic, int queue)
{
    if (!cl || !br_topic_name_valid(topic) || queue < 0 || queue >= BR_TOPIC_MAX_QUEUES ||
        atomic_load(&cl->stopping)) {
        return;
    }
    br_qid_t id;
    memset(&id, 0, sizeof(id));
    snprintf(id.topic, sizeof(id.topic), "%s", topic);
    id.queue = queue;
    pthread_mutex_lock(&cl->own_mu);
    br_oq_t *oq = br_owner_find_locked(cl, &id, NULL);
    if (oq) {
        oq->release_req = true;
        br_owner_kick_locked(cl, oq);
    }
    pthread_mutex_unlock(&cl->own_mu);
}
