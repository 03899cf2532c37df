/*
 * br_server: the broker's lifecycle (see br_server.h). Start order: config
 * checks, ZooKeeper session, ledger client, executors, topic cache, gRPC
 * server with the messaging and admin services (and the consume side's
 * state, br_recv*.c), cluster membership (which
 * starts handing us queues), then the admin HTTP endpoints (br_http.c,
 * when httpServerPort is set). Stop order is the reverse, so a planned stop
 * closes every owned queue's ledger before the ownership znodes go and the
 * next owner finds the logs cleanly closed.
 *
 * Threads: start and run on the caller's thread; a signal thread turns
 * SIGTERM/SIGINT into a stop; the retention timer runs on the slow executor.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "br_server_int.h"
#include "mq_log.h"
#include "mq_signal.h"
#include "mq_util.h"

void br_server_stop(br_server_t *srv, int exit_code)
{
    pthread_mutex_lock(&srv->stop_lock);
    if (!srv->stopping) {
        srv->stopping = true;
        srv->exit_code = exit_code;
    }
    pthread_cond_broadcast(&srv->stop_cond);
    pthread_mutex_unlock(&srv->stop_lock);
}

static void br_srv_on_signal(void *arg)
{
    br_server_stop(arg, 0);
}

int br_server_port(const br_server_t *srv)
{
    return srv->port;
}

/* --- shared helpers ------------------------------------------------------------------ */

rpc_channel_t *br_server_peer(br_server_t *srv, const char *endpoint)
{
    pthread_mutex_lock(&srv->plock);
    br_peer_t *p = srv->peers;
    while (p && strcmp(p->endpoint, endpoint) != 0) {
        p = p->next;
    }
    if (!p && !srv->rpc_client && rpc_client_new(&srv->rpc_client) != MQ_OK) {
        srv->rpc_client = NULL;
    }
    if (!p && srv->rpc_client) {
        rpc_channel_t *ch;
        if (rpc_channel_new(srv->rpc_client, endpoint, &ch) == MQ_OK) {
            p = mq_calloc(1, sizeof(*p));
            snprintf(p->endpoint, sizeof(p->endpoint), "%s", endpoint);
            p->ch = ch;
            p->next = srv->peers;
            srv->peers = p;
        }
    }
    pthread_mutex_unlock(&srv->plock);
    return p ? p->ch : NULL;
}

mq_err_t br_server_topic(br_server_t *srv, const char *name, bool create, br_topic_t *out)
{
    mq_err_t err = br_topics_get(srv->topics, name, out);
    if (err != MQ_ENOTFOUND || !create) {
        return err;
    }
    br_topic_t want;
    memset(&want, 0, sizeof(want));
    snprintf(want.name, sizeof(want.name), "%s", name);
    want.queues = (int)srv->conf->defaultTopicQueueNums;
    want.perm = BR_PERM_READ | BR_PERM_WRITE;
    want.type = BR_MSG_TYPE_NORMAL;
    want.ctime_ms = mq_wall_ms();
    err = br_topics_ensure(srv->topics, &want, out);
    if (err == MQ_OK) {
        MQ_LOG_INFO("topic auto-created topic=%s queues=%d", name, out->queues);
        br_cluster_kick(srv->cluster);
    }
    return err;
}

void br_server_wait_owned(br_server_t *srv, const br_topic_t *t, uint32_t timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    for (;;) {
        int owned = 0;
        for (int i = 0; i < t->queues; i++) {
            br_broker_info_t bi;
            bool self;
            if (br_cluster_owner(srv->cluster, t->name, i, &bi, &self) == MQ_OK) {
                owned++;
            }
        }
        if (owned == t->queues || mq_now_ms() >= deadline || srv->stopping) {
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* --- load report and retention ------------------------------------------------------------ */

static void br_srv_on_load(br_load_t *load, void *arg)
{
    br_server_t *srv = arg;
    uint64_t now = mq_now_ms();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    struct br_load_sample cur = {
        .ms = now,
        .msgs_in = atomic_load(&srv->msgs_in),
        .bytes_in = atomic_load(&srv->bytes_in),
        .msgs_out = atomic_load(&srv->msgs_out),
        .bytes_out = atomic_load(&srv->bytes_out),
        .cpu_s = cpu_s,
    };
    memset(load, 0, sizeof(*load));
    /* Rates over the span since the oldest sample kept (up to
     * BR_LOAD_SAMPLES - 1 report intervals). */
    if (srv->load_n > 0) {
        const struct br_load_sample *old =
            &srv->load_ring[(srv->load_head + BR_LOAD_SAMPLES - srv->load_n) % BR_LOAD_SAMPLES];
        double dt = (double)(now - old->ms) / 1000.0;
        if (dt > 0) {
            load->msgs_in = (double)(cur.msgs_in - old->msgs_in) / dt;
            load->bytes_in = (double)(cur.bytes_in - old->bytes_in) / dt;
            load->msgs_out = (double)(cur.msgs_out - old->msgs_out) / dt;
            load->bytes_out = (double)(cur.bytes_out - old->bytes_out) / dt;
            load->cpu = (cur.cpu_s - old->cpu_s) / dt;
        }
    }
    load->queues = br_queue_count(srv);
    srv->load_ring[srv->load_head] = cur;
    srv->load_head = (srv->load_head + 1) % BR_LOAD_SAMPLES;
    if (srv->load_n < BR_LOAD_SAMPLES - 1) {
        srv->load_n++;
    }
}

#define BR_SRV_TRIM_MS 5000

static void br_srv_retention(void *arg)
{
    br_server_t *srv = arg;
    if (srv->stopping) {
        return;
    }
    br_queue_trim_all(srv);
    srv->retention_timer = mq_executor_schedule(
        srv->slow, 0, (uint64_t)srv->conf->retentionCheckIntervalSec * 1000, br_srv_retention, srv);
}

/* glibc keeps what a burst freed (gRPC buffers, batches, the requests of a
 * few thousand calls in flight) in its arenas; this hands the free pages
 * back every BR_SRV_TRIM_MS, so RSS follows the working set instead of the
 * last burst's peak. It holds each arena's lock while it walks the free
 * lists: 0.1-2 ms at 5k msg/s here, ~10 ms right after a saturation burst. */
static void br_srv_trim(void *arg)
{
    br_server_t *srv = arg;
    if (srv->stopping) {
        return;
    }
    malloc_trim(0);
    mq_executor_schedule(srv->slow, 0, BR_SRV_TRIM_MS, br_srv_trim, srv);
}

/* --- start / run ------------------------------------------------------------------------ */

static void br_srv_free(br_server_t *srv)
{
    br_recv_stop(srv);
    br_http_stop(srv);
    if (srv->cluster) {
        br_cluster_stop(srv->cluster);
    }
    br_queue_release_all(srv);
    if (srv->rpc) {
        rpc_server_free(srv->rpc);
    }
    if (srv->slow) {
        mq_executor_free(srv->slow);
    }
    if (srv->ex) {
        mq_executor_free(srv->ex);
    }
    for (br_peer_t *p = srv->peers, *next; p; p = next) {
        next = p->next;
        rpc_channel_free(p->ch);
        free(p);
    }
    if (srv->rpc_client) {
        rpc_client_free(srv->rpc_client);
    }
    if (srv->bookies) {
        meta_bookies_free(srv->bookies);
    }
    br_recv_fini(srv);
    if (srv->groups) {
        br_groups_free(srv->groups);
    }
    if (srv->topics) {
        br_topics_free(srv->topics);
    }
    if (srv->lc) {
        lc_client_free(srv->lc);
    }
    if (srv->zk) {
        zk_client_free(srv->zk);
    }
    pthread_mutex_destroy(&srv->qlock);
    pthread_cond_destroy(&srv->qcond);
    pthread_mutex_destroy(&srv->plock);
    pthread_mutex_destroy(&srv->stop_lock);
    pthread_cond_destroy(&srv->stop_cond);
    free(srv);
}

mq_err_t br_server_start(const br_conf_t *conf, br_server_t **out, char *errbuf, size_t errlen)
{
    br_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->conf = conf;
    srv->tail_budget.limit = (size_t)conf->tailCacheSizeMB << 20;
    srv->tail_budget.floor = 256u << 10;
    srv->read_budget.limit = (size_t)conf->readCacheSizeMB << 20;
    srv->root = conf->zkLedgersRootPath;
    pthread_mutex_init(&srv->qlock, NULL);
    pthread_cond_init(&srv->qcond, NULL);
    pthread_mutex_init(&srv->plock, NULL);
    pthread_mutex_init(&srv->stop_lock, NULL);
    pthread_cond_init(&srv->stop_cond, NULL);

    lc_client_conf_t lcc;
    mq_err_t err = br_conf_ledger(conf, &lcc, errbuf, errlen);
    if (err != MQ_OK) {
        br_srv_free(srv);
        return err;
    }
    if (conf->brokerName[0] && (strchr(conf->brokerName, '/') || strlen(conf->brokerName) >= 60)) {
        snprintf(errbuf, errlen, "brokerName '%s' must be < 60 chars without '/'",
                 conf->brokerName);
        br_srv_free(srv);
        return MQ_ECONFIG;
    }

    zk_client_opts_t zo = {(int)conf->zkTimeout, (int)MQ_MAX(conf->zkTimeout, 15000), NULL};
    err = zk_client_new(conf->zkServers, &zo, &srv->zk);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot connect to ZooKeeper at %s: %s", conf->zkServers,
                 mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    lcc.zk = srv->zk;
    err = lc_client_new(&lcc, &srv->lc);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot start the ledger client: %s", mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    /* workerThreads=0: the queues' work runs on the ledger client's loop,
     * where their adds and reads complete. */
    srv->ex = conf->workerThreads == 0 ? lc_client_executor_new(srv->lc, "queues")
                                       : mq_executor_new("queues", (unsigned)conf->workerThreads);
    srv->slow = mq_executor_new("slow", 2);
    if ((err = br_topics_new(srv->zk, srv->root, &srv->topics)) != MQ_OK ||
        (err = br_groups_new(srv->zk, srv->root, &srv->groups)) != MQ_OK ||
        (err = br_recv_init(srv)) != MQ_OK ||
        (err = meta_bookies_new(srv->zk, srv->root, NULL, NULL, &srv->bookies)) != MQ_OK) {
        snprintf(errbuf, errlen, "cannot start: %s", mq_err_str(err));
        br_srv_free(srv);
        return err;
    }

    rpc_server_conf_t rc;
    rpc_server_conf_default(&rc);
    char addr[160];
    snprintf(addr, sizeof(addr), "%s:%lld", conf->listenAddress, (long long)conf->grpcServerPort);
    rc.addr = addr;
    rc.threads = (unsigned)conf->grpcThreads;
    rc.max_message_bytes = (size_t)MQ_MAX(conf->maxMessageSize * 2 + (1 << 20), 16 << 20);
    if ((err = rpc_server_new(&rc, &srv->rpc)) != MQ_OK || (err = br_msg_register(srv)) != MQ_OK ||
        (err = br_admin_register(srv)) != MQ_OK) {
        snprintf(errbuf, errlen, "cannot set up the gRPC server: %s", mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    if ((err = rpc_server_start(srv->rpc, &srv->port)) != MQ_OK) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", addr, mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    if (conf->brokerName[0]) {
        snprintf(srv->id, sizeof(srv->id), "%s", conf->brokerName);
    } else {
        snprintf(srv->id, sizeof(srv->id), "broker-%d", srv->port);
    }
    snprintf(srv->endpoint, sizeof(srv->endpoint), "%s:%d", conf->brokerIP1, srv->port);

    br_cluster_conf_t cc;
    br_cluster_conf_default(&cc);
    cc.zk = srv->zk;
    cc.root = srv->root;
    cc.cluster = conf->brokerClusterName;
    cc.id = srv->id;
    cc.endpoint = srv->endpoint;
    cc.report_interval_ms = (uint32_t)conf->loadReportIntervalMs;
    cc.rebalance_interval_ms = (uint32_t)conf->rebalanceIntervalSec * 1000u;
    cc.overload_factor = conf->overloadFactor;
    cc.shed_grace_ms = (uint32_t)(conf->loadBalancerSheddingGracePeriodMinutes * 60000.0);
    cc.on_acquire = br_queue_acquire;
    cc.on_release = br_queue_release;
    cc.on_load = br_srv_on_load;
    cc.arg = srv;
    err = br_cluster_start(&cc, &srv->cluster);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen,
                 err == MQ_EEXIST ? "another live broker is registered as '%s'"
                                  : "cannot join the cluster as '%s': %s",
                 srv->id, mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    if (conf->httpServerPort > 0 && (err = br_http_start(srv)) != MQ_OK) {
        snprintf(errbuf, errlen, "cannot start the HTTP server on %s:%lld: %s", conf->listenAddress,
                 (long long)conf->httpServerPort, mq_err_str(err));
        br_srv_free(srv);
        return err;
    }
    srv->retention_timer = mq_executor_schedule(
        srv->slow, 0, (uint64_t)conf->retentionCheckIntervalSec * 1000, br_srv_retention, srv);
    mq_executor_schedule(srv->slow, 0, BR_SRV_TRIM_MS, br_srv_trim, srv);
    atomic_store_explicit(&srv->ready, true, memory_order_release);
    MQ_LOG_INFO("broker started id=%s cluster=%s endpoint=%s grpc_port=%d http_port=%d", srv->id,
                conf->brokerClusterName, srv->endpoint, srv->port,
                srv->http ? mq_http_port(srv->http) : 0);
    *out = srv;
    return MQ_OK;
}

int br_server_run(br_server_t *srv)
{
    mq_signal_watch(br_srv_on_signal, srv);
    pthread_mutex_lock(&srv->stop_lock);
    while (!srv->stopping) {
        pthread_cond_wait(&srv->stop_cond, &srv->stop_lock);
    }
    int code = srv->exit_code;
    pthread_mutex_unlock(&srv->stop_lock);
    MQ_LOG_INFO("stopping broker id=%s", srv->id);
    /* The retention timer sees stopping and does not come back; the
     * executor drops it if it has not fired. */
    /* The admin endpoints read the cluster and the queues: they go first. */
    br_http_stop(srv);
    /* No new calls, and every call's work finished, before the cluster and
     * the queues go: sends still retrying see stopping and fail at once. */
    rpc_server_free(srv->rpc);
    srv->rpc = NULL;
    for (int i = 0; i < 1000 && atomic_load(&srv->sends) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&srv->sends) > 0) {
        MQ_LOG_WARN("sends still pending at shutdown count=%d", atomic_load(&srv->sends));
    }
    /* Long polls end now (answered empty), and acks, dead-lettering and
     * cursor loads in flight complete, while the queues still serve. */
    br_recv_stop(srv);
    mq_executor_free(srv->slow);
    srv->slow = NULL;
    br_cluster_stop(srv->cluster);
    srv->cluster = NULL;
    br_queue_release_all(srv);
    br_srv_free(srv);
    MQ_LOG_INFO("broker stopped exit=%d", code);
    return code;
}
