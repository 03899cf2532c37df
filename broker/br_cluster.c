/*
 * br_cluster: the life cycle of a broker's membership, its registration and
 * load report, the watched views every broker keeps, and the queries on
 * them. The leader lives in br_leader.c, ownership in br_owner.c.
 *
 * Start: the registration <root>/brokers/available/<id> (an ephemeral the
 * zk client re-creates after a session expiry, with the latest report),
 * then the election (br_leader.c), then the first read of our assignment
 * (br_owner.c). Every report_interval_ms the ctl thread asks on_load for a
 * report and rewrites the registration when it changed.
 *
 * Views: br_dir caches of brokers/available (registry), brokers/assignments
 * (everybody's assignment), topics (the leader's) and ownership/<topic>
 * (one per topic asked about). Their watches all come back through
 * br_cluster_on_dir_children / _data, which mark the cache stale and then
 * react: our own assignment changing makes br_owner read it again, and any
 * change asks the leader (if we are it) for a debounced rebalance.
 *
 * Threads: see br_cluster_int.h. Every ZooKeeper callback carries cl->hook
 * (br_cluster_hook.h), never cl: br_cluster_stop detaches it before freeing.
 * The query functions are thread-safe and may block on a cache miss (not
 * from the zk event thread).
 *
 * Stop (planned shutdown): mark stopping (every task and callback returns
 * early from then on), leave the election, detach the hook (no ZooKeeper
 * callback runs into cl afterwards), free the ctl executor (its queued
 * tasks see stopping; its timers are dropped), queue a release behind each
 * queue's pending work, free the queue executor (which runs those releases:
 * on_release, then the znode deleted), deregister, free. Nothing is held
 * while waiting, so callbacks that are running when stop is called finish
 * first; stop must not be called from on_acquire / on_release / on_load.
 */
#include "br_cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_CLUSTER_DEFAULT_ROOT "/ledgermq"
#define BR_CLUSTER_DEFAULT_CLUSTER "DefaultCluster"
#define BR_CLUSTER_DEFAULT_REPORT_MS 1000
#define BR_CLUSTER_DEFAULT_SHED_GRACE_MS 60000
#define BR_CLUSTER_DEFAULT_REBALANCE_MS 5000
#define BR_CLUSTER_DEFAULT_OVERLOAD 1.5
#define BR_CLUSTER_DEFAULT_WORKERS 4

/* @thread any */
void br_cluster_conf_default(br_cluster_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->root = BR_CLUSTER_DEFAULT_ROOT;
    conf->cluster = BR_CLUSTER_DEFAULT_CLUSTER;
    conf->report_interval_ms = BR_CLUSTER_DEFAULT_REPORT_MS;
    conf->rebalance_interval_ms = BR_CLUSTER_DEFAULT_REBALANCE_MS;
    conf->overload_factor = BR_CLUSTER_DEFAULT_OVERLOAD;
    conf->shed_grace_ms = BR_CLUSTER_DEFAULT_SHED_GRACE_MS;
    conf->workers = BR_CLUSTER_DEFAULT_WORKERS;
}

/* --- views and their watches (zk event thread) ------------------------------ */

/* The cache whose directory is dir (n bytes), NULL when none.
 * @thread zk event thread (any: takes odir_mu briefly) */
static br_dir_t *br_cluster_dir_of(br_cluster_t *cl, const char *dir, size_t n)
{
    br_dir_t *known[] = {cl->brokers, cl->assigns, cl->topics};
    for (size_t i = 0; i < MQ_ARRAY_LEN(known); i++) {
        const char *p = br_dir_path(known[i]);
        if (strlen(p) == n && memcmp(p, dir, n) == 0) {
            return known[i];
        }
    }
    size_t rn = strlen(cl->owner_root);
    if (n <= rn + 1 || memcmp(dir, cl->owner_root, rn) != 0 || dir[rn] != '/' ||
        n - rn - 1 > BR_TOPIC_NAME_MAX) {
        return NULL;
    }
    char topic[BR_TOPIC_NAME_MAX + 1];
    memcpy(topic, dir + rn + 1, n - rn - 1);
    topic[n - rn - 1] = '\0';
    br_dir_t *found = NULL;
    pthread_mutex_lock(&cl->odir_mu);
    for (size_t i = 0; i < cl->nodirs && !found; i++) {
        if (strcmp(cl->odirs[i].topic, topic) == 0) {
            found = cl->odirs[i].dir;
        }
    }
    pthread_mutex_unlock(&cl->odir_mu);
    return found;
}

/* @thread zk event thread: marks stale, posts; never blocks */
void br_cluster_on_dir_children(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_cluster_t *cl = br_hook_enter(hook);
    if (!cl) {
        return;
    }
    br_dir_t *d = br_cluster_dir_of(cl, path, strlen(path));
    if (d) {
        MQ_LOG_DEBUG("cluster view changed dir=%s event=%d", path, (int)event);
        br_dir_children_fired(d);
        if (d == cl->assigns) {
            br_owner_refresh_soon(cl);
        }
        br_leader_poke(cl, BR_LEADER_DEBOUNCE_MS);
    }
    br_hook_leave(hook);
}

/* @thread zk event thread: marks stale, posts; never blocks */
void br_cluster_on_dir_data(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_cluster_t *cl = br_hook_enter(hook);
    if (!cl) {
        return;
    }
    const char *slash = strrchr(path, '/');
    br_dir_t *d = slash ? br_cluster_dir_of(cl, path, (size_t)(slash - path)) : NULL;
    if (d) {
        MQ_LOG_DEBUG("cluster view changed node=%s event=%d", path, (int)event);
        br_dir_data_fired(d, slash + 1);
        if (d == cl->assigns && strcmp(slash + 1, cl->id) == 0) {
            br_owner_refresh_soon(cl);
        }
        /* A registration's data is its load report. */
        br_leader_poke(cl, d == cl->brokers ? BR_LEADER_LOAD_DEBOUNCE_MS : BR_LEADER_DEBOUNCE_MS);
    }
    br_hook_leave(hook);
}

/* @thread any; @locks odir_mu (inside) */
br_dir_t *br_cluster_odir(br_cluster_t *cl, const char *topic)
{
    pthread_mutex_lock(&cl->odir_mu);
    size_t lo = 0;
    size_t hi = cl->nodirs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(topic, cl->odirs[mid].topic);
        if (c == 0) {
            br_dir_t *d = cl->odirs[mid].dir;
            pthread_mutex_unlock(&cl->odir_mu);
            return d;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    char path[BR_PATH_MAX];
    if (!br_rec_path(path, sizeof(path), cl->root, "/ownership/%s", topic)) {
        pthread_mutex_unlock(&cl->odir_mu);
        return NULL;
    }
    if (cl->nodirs == cl->capodirs) {
        cl->capodirs = cl->capodirs ? cl->capodirs * 2 : 16;
        cl->odirs = mq_realloc(cl->odirs, cl->capodirs * sizeof(*cl->odirs));
    }
    memmove(&cl->odirs[lo + 1], &cl->odirs[lo], (cl->nodirs - lo) * sizeof(*cl->odirs));
    br_odir_t *od = &cl->odirs[lo];
    snprintf(od->topic, sizeof(od->topic), "%s", topic);
    od->dir =
        br_dir_new(cl->zk, path, br_cluster_on_dir_children, br_cluster_on_dir_data, cl->hook);
    cl->nodirs++;
    br_dir_t *d = od->dir;
    pthread_mutex_unlock(&cl->odir_mu);
    return d;
}

/* --- session events (zk event thread) --------------------------------------- */

/* @thread zk event thread */
static void br_cluster_on_session(zk_client_t *zk, zk_session_event_t event, void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_cluster_t *cl = br_hook_enter(hook);
    if (!cl) {
        return;
    }
    switch (event) {
    case ZK_SESSION_EXPIRED:
        MQ_LOG_WARN("broker session expired, every owned queue is lost id=%s", cl->id);
        br_owner_session_expired(cl);
        break;
    case ZK_SESSION_NEW:
        MQ_LOG_INFO("broker has a new session id=%s", cl->id);
        br_owner_session_new(cl);
        br_leader_poke(cl, BR_LEADER_DEBOUNCE_MS);
        break;
    case ZK_SESSION_CONNECTED:
    case ZK_SESSION_DISCONNECTED:
        break;
    }
    br_hook_leave(hook);
}

/* --- registration and load report -------------------------------------------- */

static double br_cluster_figure(double v)
{
    return isfinite(v) && v > 0 ? v : 0;
}

static mq_err_t br_cluster_reg_encode(br_cluster_t *cl, const br_load_t *load, char **data,
                                      size_t *len)
{
    br_broker_info_t bi;
    memset(&bi, 0, sizeof(bi));
    memcpy(bi.id, cl->id, sizeof(bi.id));
    memcpy(bi.cluster, cl->cluster, sizeof(bi.cluster));
    memcpy(bi.endpoint, cl->endpoint, sizeof(bi.endpoint));
    if (load) {
        bi.load.msgs_in = br_cluster_figure(load->msgs_in);
        bi.load.bytes_in = br_cluster_figure(load->bytes_in);
        bi.load.msgs_out = br_cluster_figure(load->msgs_out);
        bi.load.bytes_out = br_cluster_figure(load->bytes_out);
        bi.load.queues = load->queues > 0 ? load->queues : 0;
        bi.load.cpu = br_cluster_figure(load->cpu);
    }
    return br_rec_broker_encode(&bi, data, len);
}

/* @locality ctl */
static void br_cluster_report(void *arg)
{
    br_cluster_t *cl = arg;
    if (atomic_load(&cl->stopping)) {
        return;
    }
    br_load_t load;
    memset(&load, 0, sizeof(load));
    if (cl->conf.on_load) {
        cl->conf.on_load(&load, cl->conf.arg);
    }
    char *data = NULL;
    size_t len = 0;
    if (br_cluster_reg_encode(cl, &load, &data, &len) == MQ_OK &&
        (len != cl->reg_len || memcmp(data, cl->reg_data, len) != 0)) {
        mq_err_t err = zk_ephemeral_update(cl->zk, cl->reg_path, data, len);
        /* On a session or connection error the wrapper keeps the new data
         * for the node it re-creates: it is ours either way. */
        if (err == MQ_OK || err == MQ_ESESSION || err == MQ_ECONN) {
            free(cl->reg_data);
            cl->reg_data = data;
            cl->reg_len = len;
            data = NULL;
        } else {
            MQ_LOG_WARN("load report not written id=%s err=%s", cl->id, mq_err_name(err));
        }
    }
    free(data);
    mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, cl->conf.report_interval_ms,
                         br_cluster_report, cl);
}

/* --- start / stop -------------------------------------------------------------- */

static bool br_cluster_copy(char *dst, size_t cap, const char *src)
{
    if (!src || strlen(src) >= cap) {
        return false;
    }
    memcpy(dst, src, strlen(src) + 1);
    return true;
}

/* Frees what br_cluster_start made, in stop's order. */
static void br_cluster_destroy(br_cluster_t *cl)
{
    atomic_store(&cl->stopping, true);
    br_leader_stop(cl);
    br_hook_detach(cl->hook);
    if (cl->ctl) {
        mq_executor_free(cl->ctl);
    }
    if (cl->ex) {
        br_owner_stop(cl);
        mq_executor_free(cl->ex);
    }
    if (cl->registered) {
        mq_err_t err = zk_ephemeral_unregister(cl->zk, cl->reg_path);
        if (err != MQ_OK && err != MQ_ECLOSED) {
            MQ_LOG_WARN("broker registration not removed id=%s err=%s (it goes with the session)",
                        cl->id, mq_err_name(err));
        }
    }
    br_owner_free(cl);
    br_dir_free(cl->brokers);
    br_dir_free(cl->assigns);
    br_dir_free(cl->topics);
    for (size_t i = 0; i < cl->nodirs; i++) {
        br_dir_free(cl->odirs[i].dir);
    }
    free(cl->odirs);
    free(cl->idx);
    free(cl->holds);
    free(cl->reg_data);
    pthread_mutex_destroy(&cl->odir_mu);
    pthread_mutex_destroy(&cl->idx_mu);
    pthread_mutex_destroy(&cl->own_mu);
    free(cl);
}

/* @thread the caller's, not the zk event thread (blocks on ZooKeeper;
 * MQ_EEXIST may take 1.5 session timeouts to decide). */
mq_err_t br_cluster_start(const br_cluster_conf_t *conf, br_cluster_t **out)
{
    if (!conf || !out || !conf->zk || !conf->on_acquire || !conf->on_release ||
        !br_rec_id_valid(conf->id) || !br_rec_endpoint_valid(conf->endpoint)) {
        return MQ_EINVAL;
    }
    br_cluster_t *cl = mq_calloc(1, sizeof(*cl));
    const char *root = conf->root ? conf->root : BR_CLUSTER_DEFAULT_ROOT;
    const char *cluster = conf->cluster ? conf->cluster : "";
    char probe[BR_ID_MAX];
    if (!br_cluster_copy(cl->root, sizeof(cl->root), root) ||
        !br_cluster_copy(cl->cluster, sizeof(cl->cluster), cluster) ||
        !br_rec_str(cluster, strlen(cluster), probe, sizeof(probe), true) ||
        !br_rec_path(cl->reg_path, sizeof(cl->reg_path), root, "/brokers/available/%s", conf->id) ||
        !br_rec_path(cl->leader_dir, sizeof(cl->leader_dir), root, "/brokers/leader") ||
        !br_rec_path(cl->assign_path, sizeof(cl->assign_path), root, "/brokers/assignments/%s",
                     conf->id) ||
        !br_rec_path(cl->owner_root, sizeof(cl->owner_root), root, "/ownership")) {
        free(cl);
        return MQ_EINVAL;
    }
    memcpy(cl->id, conf->id, strlen(conf->id) + 1);
    memcpy(cl->endpoint, conf->endpoint, strlen(conf->endpoint) + 1);
    cl->conf = *conf;
    cl->conf.root = cl->root;
    cl->conf.cluster = cl->cluster;
    cl->conf.id = cl->id;
    cl->conf.endpoint = cl->endpoint;
    if (cl->conf.report_interval_ms == 0) {
        cl->conf.report_interval_ms = BR_CLUSTER_DEFAULT_REPORT_MS;
    }
    if (cl->conf.rebalance_interval_ms == 0) {
        cl->conf.rebalance_interval_ms = BR_CLUSTER_DEFAULT_REBALANCE_MS;
    }
    if (!(cl->conf.overload_factor >= 1.0)) {
        cl->conf.overload_factor = BR_CLUSTER_DEFAULT_OVERLOAD;
    }
    if (cl->conf.workers == 0) {
        cl->conf.workers = BR_CLUSTER_DEFAULT_WORKERS;
    }
    cl->zk = conf->zk;
    atomic_init(&cl->stopping, false);
    atomic_init(&cl->gen, 1);
    atomic_init(&cl->rebalance_at, 0);
    atomic_init(&cl->leading, false);
    atomic_init(&cl->refresh_pending, false);
    pthread_mutex_init(&cl->odir_mu, NULL);
    pthread_mutex_init(&cl->idx_mu, NULL);
    pthread_mutex_init(&cl->own_mu, NULL);
    cl->hook = br_hook_new(cl);

    char dirs[4][BR_PATH_MAX];
    static const char *const suffixes[4] = {"/brokers/available", "/brokers/assignments", "/topics",
                                            "/ownership"};
    for (int i = 0; i < 4; i++) {
        /* Fits: longer paths above fit. */
        br_rec_path(dirs[i], sizeof(dirs[i]), root, "%s", suffixes[i]);
    }
    cl->brokers =
        br_dir_new(cl->zk, dirs[0], br_cluster_on_dir_children, br_cluster_on_dir_data, cl->hook);
    cl->assigns =
        br_dir_new(cl->zk, dirs[1], br_cluster_on_dir_children, br_cluster_on_dir_data, cl->hook);
    cl->topics =
        br_dir_new(cl->zk, dirs[2], br_cluster_on_dir_children, br_cluster_on_dir_data, cl->hook);
    cl->ctl = mq_executor_new("brctl", 1);
    cl->ex = mq_executor_new("brq", cl->conf.workers);
    /* Before anything that a session change could affect. */
    zk_client_on_session(cl->zk, br_cluster_on_session, cl->hook);

    mq_err_t err = MQ_OK;
    for (int i = 0; i < 4 && err == MQ_OK; i++) {
        err = zk_create_parents(cl->zk, dirs[i], NULL, 0, ZK_PERSISTENT, NULL, 0);
        if (err == MQ_EEXIST) {
            err = MQ_OK;
        }
    }
    if (err == MQ_OK) {
        err = br_cluster_reg_encode(cl, NULL, &cl->reg_data, &cl->reg_len);
    }
    if (err == MQ_OK) {
        err = zk_ephemeral_register(cl->zk, cl->reg_path, cl->reg_data, cl->reg_len);
        cl->registered = err == MQ_OK;
        if (err == MQ_EEXIST) {
            MQ_LOG_WARN("broker id is taken by a live broker id=%s", cl->id);
        }
    }
    if (err == MQ_OK) {
        err = br_leader_start(cl);
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("broker did not join the cluster id=%s err=%s", cl->id, mq_err_name(err));
        br_cluster_destroy(cl);
        return err;
    }
    br_owner_refresh_soon(cl);
    mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, cl->conf.report_interval_ms,
                         br_cluster_report, cl);
    mq_executor_schedule(cl->ctl, BR_CLUSTER_CTL_KEY, cl->conf.rebalance_interval_ms,
                         br_leader_tick, cl);
    MQ_LOG_INFO("broker joined the cluster id=%s cluster=%s endpoint=%s", cl->id, cl->cluster,
                cl->endpoint);
    *out = cl;
    return MQ_OK;
}

/* @thread any but the zk event thread and the cluster's own executors (not
 * from on_acquire / on_release / on_load). Blocks until every release ran. */
void br_cluster_stop(br_cluster_t *cl)
{
    if (!cl) {
        return;
    }
    /* Stop waits for these threads: it cannot run on one of them. */
    MQ_ASSERT(!mq_executor_on_thread(cl->ctl, BR_CLUSTER_CTL_KEY));
    for (unsigned i = 0; i < mq_executor_threads(cl->ex); i++) {
        MQ_ASSERT(!mq_executor_on_thread(cl->ex, i));
    }
    char id[BR_ID_MAX];
    memcpy(id, cl->id, sizeof(id));
    MQ_LOG_INFO("broker leaving the cluster id=%s", id);
    br_cluster_destroy(cl);
    MQ_LOG_INFO("broker left the cluster id=%s", id);
}

/* --- queries ------------------------------------------------------------------ */

/* @thread any; never blocks */
bool br_cluster_is_leader(br_cluster_t *cl)
{
    return cl && atomic_load(&cl->leading);
}

/* @thread any but the zk event thread (two ZooKeeper reads) */
void br_cluster_leader(br_cluster_t *cl, char *id, size_t cap)
{
    if (!id || cap == 0) {
        return;
    }
    id[0] = '\0';
    if (!cl) {
        return;
    }
    char *data = NULL;
    size_t len = 0;
    if (zk_lock_holder(cl->zk, cl->leader_dir, &data, &len) == MQ_OK) {
        size_t n = MQ_MIN(len, cap - 1);
        memcpy(id, data, n);
        id[n] = '\0';
    }
    free(data);
}

/* A registered broker's record: the registration when it decodes,
 * otherwise just the id. */
static void br_cluster_info_from(const char *name, const char *data, size_t len,
                                 br_broker_info_t *out)
{
    if (br_rec_broker_decode(data, len, out, NULL, 0) != MQ_OK || strcmp(out->id, name) != 0) {
        memset(out, 0, sizeof(*out));
        snprintf(out->id, sizeof(out->id), "%s", name);
    }
}

/* @thread any but the zk event thread (blocks on a cache miss) */
mq_err_t br_cluster_brokers(br_cluster_t *cl, br_broker_info_t **out, size_t *count)
{
    if (!cl || !out || !count) {
        return MQ_EINVAL;
    }
    br_dir_item_t *items;
    size_t n;
    mq_err_t err = br_dir_snapshot(cl->brokers, &items, &n, NULL);
    if (err != MQ_OK) {
        return err;
    }
    br_broker_info_t *bs = mq_calloc(MQ_MAX(n, (size_t)1), sizeof(*bs));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (br_rec_id_valid(items[i].name)) {
            br_cluster_info_from(items[i].name, items[i].data, items[i].len, &bs[k++]);
        }
    }
    br_dir_items_free(items, n);
    *out = bs;
    *count = k;
    return MQ_OK;
}

/* What the registry says about id (only the id when it is not registered). */
static void br_cluster_info(br_cluster_t *cl, const char *id, br_broker_info_t *out)
{
    char *data = NULL;
    size_t len = 0;
    if (br_dir_get(cl->brokers, id, &data, &len) == MQ_OK) {
        br_cluster_info_from(id, data, len, out);
    } else {
        memset(out, 0, sizeof(*out));
        snprintf(out->id, sizeof(out->id), "%s", id);
    }
    free(data);
}

/* @thread any but the zk event thread (blocks on a cache miss) */
mq_err_t br_cluster_owner(br_cluster_t *cl, const char *topic, int queue, br_broker_info_t *out,
                          bool *self)
{
    if (!cl || !br_topic_name_valid(topic) || queue < 0 || queue >= BR_TOPIC_MAX_QUEUES || !out) {
        return MQ_EINVAL;
    }
    br_dir_t *d = br_cluster_odir(cl, topic);
    if (!d) {
        return MQ_EINVAL;
    }
    char name[16];
    snprintf(name, sizeof(name), "%d", queue);
    char *data = NULL;
    size_t len = 0;
    mq_err_t err = br_dir_get(d, name, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    char id[BR_ID_MAX];
    char endpoint[BR_ENDPOINT_MAX];
    char why[128] = "";
    err = br_rec_owner_decode(data, len, id, endpoint, why, sizeof(why));
    free(data);
    if (err != MQ_OK) {
        MQ_LOG_WARN("ownership record unreadable topic=%s queue=%d why=%s", topic, queue, why);
        return err;
    }
    br_cluster_info(cl, id, out);
    snprintf(out->endpoint, sizeof(out->endpoint), "%s", endpoint);
    if (self) {
        *self = strcmp(id, cl->id) == 0;
    }
    return MQ_OK;
}

static int br_cluster_aidx_cmp(const void *a, const void *b)
{
    return br_qid_cmp(&((const br_aidx_t *)a)->q, &((const br_aidx_t *)b)->q);
}

/* Rebuilds the assignee index from every assignment record. @locks idx_mu */
static mq_err_t br_cluster_index_locked(br_cluster_t *cl)
{
    br_dir_item_t *items;
    size_t n;
    uint64_t gen;
    mq_err_t err = br_dir_snapshot(cl->assigns, &items, &n, &gen);
    if (err != MQ_OK) {
        return err;
    }
    br_aidx_t *idx = NULL;
    size_t nidx = 0;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        char id[BR_ID_MAX];
        br_qid_t *qs;
        size_t nq;
        if (br_rec_assign_decode(items[i].data, items[i].len, id, &qs, &nq, NULL, 0) != MQ_OK ||
            strcmp(id, items[i].name) != 0) {
            continue;
        }
        if (nidx + nq > cap) {
            cap = MQ_MAX(cap * 2, nidx + nq);
            idx = mq_realloc(idx, cap * sizeof(*idx));
        }
        for (size_t k = 0; k < nq; k++) {
            idx[nidx].q = qs[k];
            memcpy(idx[nidx].id, id, sizeof(id));
            nidx++;
        }
        free(qs);
    }
    br_dir_items_free(items, n);
    if (nidx > 1) {
        qsort(idx, nidx, sizeof(*idx), br_cluster_aidx_cmp);
    }
    free(cl->idx);
    cl->idx = idx;
    cl->nidx = nidx;
    cl->idx_gen = gen;
    return MQ_OK;
}

/* @thread any but the zk event thread (blocks on a cache miss); @locks
 * idx_mu (inside) */
mq_err_t br_cluster_assignee(br_cluster_t *cl, const char *topic, int queue, br_broker_info_t *out)
{
    if (!cl || !br_topic_name_valid(topic) || queue < 0 || !out) {
        return MQ_EINVAL;
    }
    br_aidx_t key;
    memset(&key, 0, sizeof(key));
    snprintf(key.q.topic, sizeof(key.q.topic), "%s", topic);
    key.q.queue = queue;
    char id[BR_ID_MAX] = "";
    pthread_mutex_lock(&cl->idx_mu);
    mq_err_t err = MQ_OK;
    if (cl->idx_gen != br_dir_gen(cl->assigns)) {
        err = br_cluster_index_locked(cl);
    }
    if (err == MQ_OK) {
        const br_aidx_t *hit =
            cl->nidx ? bsearch(&key, cl->idx, cl->nidx, sizeof(key), br_cluster_aidx_cmp) : NULL;
        if (hit) {
            memcpy(id, hit->id, sizeof(id));
        } else {
            err = MQ_ENOTFOUND;
        }
    }
    pthread_mutex_unlock(&cl->idx_mu);
    if (err == MQ_OK) {
        br_cluster_info(cl, id, out);
    }
    return err;
}

/* @thread any; never blocks */
void br_cluster_kick(br_cluster_t *cl)
{
    /* Only the leader rebalances; elsewhere the leader's watches on the
     * topics and the registry see what changed on their own. */
    if (cl) {
        br_leader_poke(cl, 0);
    }
}
