/*
 * br_leader: the leader lock and the queue assignment it writes.
 *
 * Every broker contends for a zk_lock on <root>/brokers/leader whose node
 * holds the broker id (so br_cluster_leader can name the holder). The
 * holder rebalances on the ctl thread:
 *
 *   1. reads the watched views (br_cluster.c): the registry (live brokers
 *      and their load), the topics (each record's queue count), every
 *      assignment record and each topic's ownership directory;
 *   2. builds the queue list with each queue's current broker: its
 *      assignee if that broker lives, else its owner if that one lives;
 *   3. runs br_assign_compute (br_assign.h: sticky, balanced, overload
 *      shedding);
 *   4. writes brokers/assignments/<id> for every live broker whose record
 *      differs from what it holds, and deletes the records of brokers that
 *      are gone.
 *
 * A rebalance runs BR_LEADER_DEBOUNCE_MS after any watch of those views
 * fires (a burst makes one run; BR_LEADER_LOAD_DEBOUNCE_MS for a load
 * report), at once on br_cluster_kick, on taking the lock, and every
 * rebalance_interval_ms. Reading the views costs nothing
 * while their watches are quiet and writing only happens on a change, so a
 * run that changes nothing is cheap (the load reports make the registry
 * fire every report_interval_ms).
 *
 * Safety does not rest on the leader: two brokers may believe they lead for
 * a moment (the lock tells the old holder at once when its connection
 * drops, but writes in flight still land). The last writer wins and the next
 * rebalance of the real leader rewrites every record; ownership znodes, not
 * assignments, decide who serves a queue, and ledger fencing keeps a stale
 * owner from writing.
 *
 * Threads: the lock callback runs on the zk event thread (through the
 * hook) and only posts; the rebalance runs on ctl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_assign.h"
#include "br_cluster_int.h"
#include "br_topic_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* The floor under which no broker counts as overloaded (msgs/s). */
#define BR_LEADER_OVERLOAD_FLOOR 1000.0

/* What one rebalance works on. */
typedef struct br_leader_view {
    br_dir_item_t *brokers;
    size_t nbrokers;
    br_assign_broker_t *ab; /* the live brokers, as br_assign sees them */
    size_t nab;
    br_dir_item_t *assigns;
    size_t nassigns;
    br_aidx_t *prev; /* every assigned queue, sorted */
    size_t nprev;
    br_topic_t *topics;
    size_t ntopics;
    br_assign_queue_t *qs;
    br_qid_t *qids; /* the same queues, by index */
    size_t nqs;
} br_leader_view_t;

static void br_leader_view_fini(br_leader_view_t *v)
{
    br_dir_items_free(v->brokers, v->nbrokers);
    br_dir_items_free(v->assigns, v->nassigns);
    free(v->ab);
    free(v->prev);
    free(v->topics);
    free(v->qs);
    free(v->qids);
    memset(v, 0, sizeof(*v));
}

/* The index of broker id among the live ones, -1 if it is not one. */
static int br_leader_broker(const br_leader_view_t *v, const char *id)
{
    size_t lo = 0;
    size_t hi = v->nab;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(id, v->ab[mid].id);
        if (c == 0) {
            return (int)mid;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

static int br_leader_aidx_cmp(const void *a, const void *b)
{
    return br_qid_cmp(&((const br_aidx_t *)a)->q, &((const br_aidx_t *)b)->q);
}

/* Live brokers from the registry (names sorted: so is v->ab). */
static mq_err_t br_leader_read_brokers(br_cluster_t *cl, br_leader_view_t *v)
{
    mq_err_t err = br_dir_snapshot(cl->brokers, &v->brokers, &v->nbrokers, NULL);
    if (err != MQ_OK) {
        return err;
    }
    v->ab = mq_calloc(MQ_MAX(v->nbrokers, (size_t)1), sizeof(*v->ab));
    for (size_t i = 0; i < v->nbrokers; i++) {
        const br_dir_item_t *it = &v->brokers[i];
        if (!br_rec_id_valid(it->name)) {
            continue;
        }
        br_broker_info_t bi;
        double load = 0;
        if (br_rec_broker_decode(it->data, it->len, &bi, NULL, 0) == MQ_OK) {
            load = bi.load.msgs_in;
        }
        v->ab[v->nab].id = it->name;
        v->ab[v->nab].load = load;
        v->nab++;
    }
    return MQ_OK;
}

/* Every assignment record, and the queues they give to live brokers. */
static mq_err_t br_leader_read_assigns(br_cluster_t *cl, br_leader_view_t *v)
{
    mq_err_t err = br_dir_snapshot(cl->assigns, &v->assigns, &v->nassigns, NULL);
    if (err != MQ_OK) {
        return err;
    }
    size_t cap = 0;
    for (size_t i = 0; i < v->nassigns; i++) {
        const br_dir_item_t *it = &v->assigns[i];
        if (br_leader_broker(v, it->name) < 0) {
            continue;
        }
        char id[BR_ID_MAX];
        br_qid_t *qs;
        size_t n;
        char why[128] = "";
        if (br_rec_assign_decode(it->data, it->len, id, &qs, &n, why, sizeof(why)) != MQ_OK ||
            strcmp(id, it->name) != 0) {
            MQ_LOG_WARN("assignment record unreadable, rewriting it broker=%s why=%s", it->name,
                        why);
            continue;
        }
        if (v->nprev + n > cap) {
            cap = MQ_MAX(cap * 2, v->nprev + n);
            v->prev = mq_realloc(v->prev, cap * sizeof(*v->prev));
        }
        for (size_t k = 0; k < n; k++) {
            v->prev[v->nprev].q = qs[k];
            memcpy(v->prev[v->nprev].id, id, sizeof(id));
            v->nprev++;
        }
        free(qs);
    }
    if (v->nprev > 1) {
        qsort(v->prev, v->nprev, sizeof(*v->prev), br_leader_aidx_cmp);
    }
    return MQ_OK;
}

/* Every readable topic record (others are left out with a WARN). */
static mq_err_t br_leader_read_topics(br_cluster_t *cl, br_leader_view_t *v)
{
    br_dir_item_t *items;
    size_t n;
    mq_err_t err = br_dir_snapshot(cl->topics, &items, &n, NULL);
    if (err != MQ_OK) {
        return err;
    }
    v->topics = mq_calloc(MQ_MAX(n, (size_t)1), sizeof(*v->topics));
    for (size_t i = 0; i < n; i++) {
        if (!br_topic_name_valid(items[i].name)) {
            continue;
        }
        br_topic_t *t = &v->topics[v->ntopics];
        char why[128] = "";
        if (br_topic_decode(items[i].data, items[i].len, t, why, sizeof(why)) != MQ_OK ||
            strcmp(t->name, items[i].name) != 0) {
            MQ_LOG_WARN("topic record unreadable, its queues are not assigned topic=%s why=%s",
                        items[i].name, why);
            continue;
        }
        v->ntopics++;
        v->nqs += (size_t)t->queues;
    }
    br_dir_items_free(items, n);
    return MQ_OK;
}

/* The queue list with each queue's current broker. */
static mq_err_t br_leader_read_queues(br_cluster_t *cl, br_leader_view_t *v)
{
    v->qs = mq_calloc(MQ_MAX(v->nqs, (size_t)1), sizeof(*v->qs));
    v->qids = mq_calloc(MQ_MAX(v->nqs, (size_t)1), sizeof(*v->qids));
    size_t k = 0;
    for (size_t t = 0; t < v->ntopics; t++) {
        const br_topic_t *tp = &v->topics[t];
        /* Owners, by queue. */
        int *owner = mq_malloc((size_t)tp->queues * sizeof(*owner));
        for (int q = 0; q < tp->queues; q++) {
            owner[q] = -1;
        }
        br_dir_t *od = br_cluster_odir(cl, tp->name);
        br_dir_item_t *items = NULL;
        size_t n = 0;
        mq_err_t err = od ? br_dir_snapshot(od, &items, &n, NULL) : MQ_EINVAL;
        if (err != MQ_OK) {
            free(owner);
            return err;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t q;
            char id[BR_ID_MAX];
            char ep[BR_ENDPOINT_MAX];
            if (br_rec_u64(items[i].name, strlen(items[i].name), &q) && q < (uint64_t)tp->queues &&
                br_rec_owner_decode(items[i].data, items[i].len, id, ep, NULL, 0) == MQ_OK) {
                owner[q] = br_leader_broker(v, id);
            }
        }
        br_dir_items_free(items, n);
        for (int q = 0; q < tp->queues; q++) {
            br_qid_t *qid = &v->qids[k];
            memcpy(qid->topic, tp->name, sizeof(qid->topic));
            qid->queue = q;
            br_aidx_t key;
            key.q = *qid;
            const br_aidx_t *hit =
                v->nprev ? bsearch(&key, v->prev, v->nprev, sizeof(key), br_leader_aidx_cmp) : NULL;
            int cur = hit ? br_leader_broker(v, hit->id) : -1;
            v->qs[k].topic = qid->topic;
            v->qs[k].queue = q;
            v->qs[k].current = cur >= 0 ? cur : owner[q];
            k++;
        }
        free(owner);
    }
    return MQ_OK;
}

/* Writes broker b's new record when it differs from what it holds; returns
 * whether it wrote. */
static mq_err_t br_leader_write(br_cluster_t *cl, const br_leader_view_t *v, size_t b,
                                const br_qid_t *qs, size_t n, bool *wrote)
{
    *wrote = false;
    char *data;
    size_t len;
    mq_err_t err = br_rec_assign_encode(v->ab[b].id, qs, n, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    const br_dir_item_t *old = NULL;
    for (size_t i = 0; i < v->nassigns && !old; i++) {
        if (strcmp(v->assigns[i].name, v->ab[b].id) == 0) {
            old = &v->assigns[i];
        }
    }
    if (old && old->len == len && memcmp(old->data, data, len) == 0) {
        free(data);
        return MQ_OK;
    }
    char path[BR_PATH_MAX];
    if (!br_rec_path(path, sizeof(path), cl->root, "/brokers/assignments/%s", v->ab[b].id)) {
        free(data);
        return MQ_EINVAL;
    }
    err = zk_set(cl->zk, path, data, len, -1, NULL);
    if (err == MQ_ENOTFOUND) {
        err = zk_create_parents(cl->zk, path, data, len, ZK_PERSISTENT, NULL, 0);
        if (err == MQ_EEXIST) {
            err = zk_set(cl->zk, path, data, len, -1, NULL);
        }
    }
    free(data);
    *wrote = err == MQ_OK;
    return err;
}

/* One rebalance (see the file comment). @locality ctl */
/* --- shedding grace ---------------------------------------------------------------------- */

/* Drops expired holds and hands the live ones to br_assign. @thread ctl */
static void br_leader_holds_apply(br_cluster_t *cl, br_leader_view_t *v, uint64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < cl->nholds; i++) {
        if (cl->holds[i].until > now) {
            cl->holds[k++] = cl->holds[i];
        }
    }
    cl->nholds = k;
    for (size_t b = 0; b < v->nab; b++) {
        v->ab[b].hold = 0;
        for (size_t i = 0; i < cl->nholds; i++) {
            if (strcmp(cl->holds[i].id, v->ab[b].id) == 0) {
                v->ab[b].hold = cl->holds[i].target;
            }
        }
    }
}

/* Remembers the brokers whose target was cut by load now: their targets
 * hold for the grace period (from the last time they were overloaded).
 * @thread ctl */
static void br_leader_holds_note(br_cluster_t *cl, br_leader_view_t *v, uint64_t now)
{
    if (cl->conf.shed_grace_ms == 0) {
        return;
    }
    for (size_t b = 0; b < v->nab; b++) {
        const br_assign_broker_t *ab = &v->ab[b];
        if (!ab->overloaded) {
            continue;
        }
        struct br_shed_hold *h = NULL;
        for (size_t i = 0; i < cl->nholds && !h; i++) {
            if (strcmp(cl->holds[i].id, ab->id) == 0) {
                h = &cl->holds[i];
            }
        }
        if (!h) {
            cl->holds = mq_realloc(cl->holds, (cl->nholds + 1) * sizeof(*cl->holds));
            h = &cl->holds[cl->nholds++];
            snprintf(h->id, sizeof(h->id), "%s", ab->id);
            h->target = 0;
        }
        if (h->target != ab->target) {
            MQ_LOG_INFO("broker overloaded, its queues held down id=%s target=%zu msgs_in=%.0f "
                        "grace_ms=%u",
                        ab->id, ab->target, ab->load, cl->conf.shed_grace_ms);
        }
        h->target = ab->target;
        h->until = now + cl->conf.shed_grace_ms;
    }
}

static mq_err_t br_leader_rebalance(br_cluster_t *cl)
{
    br_leader_view_t v;
    memset(&v, 0, sizeof(v));
    mq_err_t err = br_leader_read_brokers(cl, &v);
    if (err == MQ_OK && br_leader_broker(&v, cl->id) < 0) {
        /* Our own registration is missing (a new session re-creating it):
         * the registry is not to be trusted yet. */
        MQ_LOG_DEBUG("leader not in the registry yet, rebalance later id=%s", cl->id);
        err = MQ_EAGAIN;
    }
    if (err == MQ_OK) {
        err = br_leader_read_assigns(cl, &v);
    }
    if (err == MQ_OK) {
        err = br_leader_read_topics(cl, &v);
    }
    if (err == MQ_OK) {
        err = br_leader_read_queues(cl, &v);
    }
    if (err != MQ_OK) {
        br_leader_view_fini(&v);
        return err;
    }

    br_assign_params_t params;
    br_assign_params_default(&params);
    params.overload_factor = cl->conf.overload_factor;
    params.overload_floor = BR_LEADER_OVERLOAD_FLOOR;
    uint64_t now = mq_now_ms();
    br_leader_holds_apply(cl, &v, now);
    size_t moves = br_assign_compute(v.ab, v.nab, v.qs, v.nqs, &params);
    br_leader_holds_note(cl, &v, now);

    /* Per broker, its queues in record order: v.qids is sorted by topic
     * (the topics directory lists sorted) and queue already. */
    br_qid_t *mine = mq_malloc(MQ_MAX(v.nqs, (size_t)1) * sizeof(*mine));
    size_t written = 0;
    for (size_t b = 0; b < v.nab && err == MQ_OK; b++) {
        size_t n = 0;
        for (size_t k = 0; k < v.nqs; k++) {
            if (v.qs[k].assignee == (int)b) {
                mine[n++] = v.qids[k];
            }
        }
        bool wrote;
        err = br_leader_write(cl, &v, b, mine, n, &wrote);
        if (wrote) {
            written++;
            MQ_LOG_DEBUG("assignment written broker=%s queues=%zu", v.ab[b].id, n);
        }
    }
    free(mine);
    /* Records of brokers that are gone. */
    size_t deleted = 0;
    for (size_t i = 0; i < v.nassigns && err == MQ_OK; i++) {
        if (br_leader_broker(&v, v.assigns[i].name) >= 0) {
            continue;
        }
        char path[BR_PATH_MAX];
        if (!br_rec_path(path, sizeof(path), cl->root, "/brokers/assignments/%s",
                         v.assigns[i].name)) {
            continue;
        }
        mq_err_t derr = zk_delete(cl->zk, path, -1);
        if (derr == MQ_OK) {
            deleted++;
        } else if (derr != MQ_ENOTFOUND) {
            err = derr;
        }
    }
    if (written > 0 || deleted > 0) {
        MQ_LOG_INFO("rebalanced brokers=%zu topics=%zu queues=%zu moves=%zu written=%zu "
                    "deleted=%zu",
                    v.nab, v.ntopics, v.nqs, moves, written, deleted);
    }
    br_leader_view_fini(&v);
    return err;
}

/* @thread ctl */
static void br_leader_rebalance_task(void *arg)
{
    br_cluster_t *cl = arg;
    atomic_store(&cl->rebalance_at, 0);
    if (atomic_load(&cl->stopping)) {
        return;
    }
    bool leading = atomic_load(&cl->leading);
    if (leading != cl->was_leader) {
        cl->was_leader = leading;
        MQ_LOG_INFO("broker %s the leader id=%s", leading ? "is now" : "is no longer", cl->id);
    }
    if (!leading) {
        return;
    }
    mq_err_t err = br_leader_rebalance(cl);
    if (err != MQ_OK) {
        bool quiet = err == MQ_EAGAIN || err == MQ_ESESSION || err == MQ_ECONN;
        MQ_LOG(quiet ? MQ_LOG_LVL_DEBUG : MQ_LOG_LVL_WARN,
               "rebalance failed, retrying id=%s err=%s", cl->id, mq_err_name(err));
        br_leader_poke(cl, BR_CLUSTER_RETRY_MS);
    }
}

/* @thread any; never blocks */
void br_leader_poke(br_cluster_t *cl, uint64_t delay_ms)
{
    if (atomic_load(&cl->stopping) || !atomic_load(&cl->leading)) {
        return;
    }
    uint64_t want = mq_now_ms() + delay_ms;
    uint_fast64_t cur = atomic_load(&cl->rebalance_at);
    do {
        if (cur != 0 && cur <= want) {
            return; /* a run that reads the views after this ask is queued */
        }
    } while (!atomic_compare_exchange_weak(&cl->rebalance_at, &cur, want));
    mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, delay_ms, br_leader_rebalance_task, cl);
}

/* @thread ctl */
void br_leader_tick(void *arg)
{
    br_cluster_t *cl = arg;
    if (atomic_load(&cl->stopping)) {
        return;
    }
    br_leader_poke(cl, 0);
    mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, cl->conf.rebalance_interval_ms,
                         br_leader_tick, cl);
}

/* @locality zk event thread */
static void br_leader_on_lock(zk_lock_t *lock, bool held, void *arg)
{
    MQ_UNUSED(lock);
    br_hook_t *hook = arg;
    br_cluster_t *cl = br_hook_enter(hook);
    if (!cl) {
        return;
    }
    atomic_store(&cl->leading, held);
    if (held) {
        br_leader_poke(cl, 0);
    } else {
        /* Only to log the change on ctl (it does not rebalance). */
        mq_executor_submit(cl->ctl, BR_CLUSTER_CTL_KEY, br_leader_rebalance_task, cl);
    }
    br_hook_leave(hook);
}

/* @thread br_cluster_start's */
mq_err_t br_leader_start(br_cluster_t *cl)
{
    return zk_lock_new(cl->zk, cl->leader_dir, cl->id, strlen(cl->id), br_leader_on_lock, cl->hook,
                       &cl->lock);
}

/* @thread br_cluster_stop's (never the zk event thread) */
void br_leader_stop(br_cluster_t *cl)
{
    if (cl->lock) {
        zk_lock_free(cl->lock);
        cl->lock = NULL;
    }
    atomic_store(&cl->leading, false);
}
