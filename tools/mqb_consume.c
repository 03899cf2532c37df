/*
 * mqbench consume: receives messages from LedgerMQ brokers (or any RocketMQ
 * 5 proxy) as N simple consumers of one group, acknowledges them, and
 * reports messages/s and end-to-end latency (delivery time minus the
 * store timestamp, and minus the born timestamp). With --verify-log (what
 * mqbench produce --verify-log wrote) it checks the consumption against
 * the producer's acknowledgements: every message received (none missing),
 * with its body (CRC32C), duplicates counted and explained, and, in a FIFO
 * group, each message group's messages first delivered in their stored
 * order.
 *
 * Start-up is what the official simple consumers do: QueryRoute to the
 * access point, per consumer a Telemetry stream to each broker of the route
 * with SIMPLE_CONSUMER settings (the answer says whether the group is FIFO),
 * Heartbeat{group} every 10 s, NotifyClientTermination{group} at the end.
 * A broker's ReceiveMessage pops from every queue of the topic it owns, so
 * each consumer keeps one long-polling receive loop per broker endpoint;
 * the route is asked again every 5 s and new endpoints get their loops (a
 * failover moves queues to another broker).
 *
 * One receive loop ("poller"): ReceiveMessage{batch, invisible, long
 * polling}; on its end every message is recorded and acknowledged in one
 * AckMessage per topic, except the --ack-fail-rate fraction left
 * unacknowledged on purpose (they come back after their invisible time);
 * the loop receives again at once, with the acknowledgements still on
 * their way, as the official consumers do (after errors, with a
 * back-off).
 *
 * Duplicates. A message delivered again is explained when its previous
 * delivery was left unacknowledged on purpose, or its acknowledgement
 * failed or was never answered (e.g. in flight when a broker died); a
 * delivery after an acknowledgement the broker confirmed is a violation.
 * A message stored twice by producer retries (same id, another offset) is
 * counted apart.
 *
 * Threads:
 *  - the driver thread owns the pollers' scheduling (busy, due time), the
 *    rate budget, the route refresh, heartbeats and the stop decision;
 *  - the rpc client thread runs every completion: it decodes, records
 *    (statistics, verification state: it alone writes them, under
 *    stats_mu for what the progress line reads), sends the acks, and posts
 *    the poller back to the driver;
 *  - the main thread sets up, prints progress every second and reports
 *    after every call has ended.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mq_hist.h"
#include "mq_log.h"
#include "mq_util.h"
#include "mqb_common.h"
#include "mqb_cverify.h"
#include "mqc_recv.h"
#include "mqc_rmq.h"
#include "mqc_vlog.h"
#include "rpc.h"

#define MQB_CCMD "consume"
#define MQB_C_ROUTE_WAIT_MS 10000
#define MQB_C_TELEMETRY_WAIT_MS 10000
#define MQB_C_HEARTBEAT_NS (10ull * 1000000000ull)
#define MQB_C_ROUTE_NS (5ull * 1000000000ull)
/* At the end, acknowledgements in flight get this long to be answered. */
#define MQB_C_ACK_DRAIN_NS (5ull * 1000000000ull)
/* Back-off after a failed receive: 100 ms doubling up to 2 s. */
#define MQB_C_BACKOFF_MIN_NS (100ull * 1000000ull)
#define MQB_C_BACKOFF_MAX_NS (2000ull * 1000000ull)

typedef struct mqb_cconf {
    mqc_eps_t access;
    const char *topic;
    const char *group;
    const char *filter;
    uint32_t consumers;
    uint32_t batch;
    uint64_t invisible_ms;
    uint64_t poll_ms;
    uint32_t timeout_ms;
    double ack_fail;
    uint64_t duration_ms; /* 0: no limit */
    uint64_t count;       /* 0: no limit */
    uint64_t idle_ms;
    uint64_t rate; /* messages/s; 0: no limit */
    const char *verify_log;
    bool fifo; /* --fifo: check the order even if the server does not say FIFO */
    bool telemetry;
    bool quiet;
} mqb_cconf_t;

typedef struct mqb_crun mqb_crun_t;

/* A consumer's receive loop on one endpoint. */
typedef struct mqb_cpoll {
    mqb_crun_t *run;
    struct mqb_cpoll *next; /* event list */
    uint32_t consumer;
    uint32_t ep;
    /* driver thread */
    bool busy;
    uint64_t due_ns;
    /* client thread, handed to the driver by the post */
    uint32_t fails;
    uint64_t next_ns;
    uint32_t got;
    mqc_recv_result_t res;
} mqb_cpoll_t;

/* A consumer's Telemetry stream to one endpoint. */
typedef struct mqb_ctele {
    mqb_crun_t *run;
    rpc_bidi_t *bidi;
    bool settings; /* @locks run->mu */
    bool ended;    /* @locks run->mu */
    int code;
    rpc_status_t end_status;
} mqb_ctele_t;

typedef struct mqb_cep {
    char ep[MQC_EP_MAX];
    rpc_channel_t *ch;
    bool own_ch;
    char broker[128];   /* the route's broker name ("" when not in the route) */
    int32_t queue_id;   /* one of its queues in the route */
    mqb_cpoll_t *polls; /* one per consumer */
    mqb_ctele_t *tele;  /* one per consumer (NULL without telemetry) */
} mqb_cep_t;

/* One AckMessage in flight: which messages it carries. */
typedef struct mqb_cack {
    mqb_cpoll_t *p;
    size_t n;
    int64_t rec[]; /* verify-log record, or -1 */
} mqb_cack_t;

struct mqb_crun {
    mqb_cconf_t conf;
    rpc_client_t *cl;
    rpc_channel_t **access;
    char (*client_ids)[MQC_CLIENT_ID_MAX];
    mqb_cep_t eps[MQC_EPS_MAX];
    atomic_size_t neps; /* written by the driver, read by the main thread */
    mqc_route_t route;
    bool verify;
    mqb_cverify_t *v; /* with --verify-log; @locks stats_mu */
    uint64_t t0;

    /* events from the client thread to the driver */
    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cond;
    mqb_cpoll_t *events;

    /* client thread */
    uint64_t rng;
    mq_hist_t hist_store;
    mq_hist_t hist_born;

    /* shared */
    atomic_bool stopping;
    atomic_bool server_fifo;
    atomic_int fatal;
    atomic_uint_fast64_t received, acked, noack, ack_failed, redelivered, recv_calls, recv_errors,
        empty_polls, malformed, bytes, acks_inflight, last_msg_ns, last_ack_ns, first_msg_ns;
    pthread_mutex_t stats_mu;
    mq_hist_t hist_sec;        /* @locks stats_mu */
    char first_error[256];     /* @locks stats_mu */
    char first_malformed[256]; /* @locks stats_mu */
    uint64_t prev_received;    /* main thread */
    const char *stop_reason;   /* driver, read after the join */

    /* telemetry and termination */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t notify_pending; /* @locks mu */

    mqb_done_t sync;
};

static void mqb_c_usage(FILE *out)
{
    fprintf(
        out,
        "usage: mqbench consume --group G [options]\n\n"
        "  --endpoints H:P[;H:P]  access points (default 127.0.0.1:8081)\n"
        "  --topic T              topic (default BenchmarkTest)\n"
        "  --group G              consumer group (required)\n"
        "  --consumers N          simple consumers, each with its own client id (default 4)\n"
        "  --batch B              messages per ReceiveMessage, 1..1024 (default 32)\n"
        "  --invisible MS         invisible duration of a received message (default 30000;\n"
        "                         plain numbers are ms, or 10s, 1m, ...)\n"
        "  --poll D               long-polling time of a receive (default 5s)\n"
        "  --ack-fail-rate P      leave a fraction P in [0, 1) of the deliveries unacknowledged\n"
        "                         on purpose: they come back after their invisible time\n"
        "  --duration D           stop after D (30s, 5m, ...)\n"
        "  --count N              stop after N acknowledged messages\n"
        "  --verify-log FILE      the producer's log (mqbench produce --verify-log): stop when\n"
        "                         every message in it was acknowledged (or at --duration/\n"
        "                         --count), then report missing, duplicated, out-of-order\n"
        "  --fifo                 check the per-group order even if the server does not say\n"
        "                         the group is FIFO (it is checked when it does)\n"
        "  --idle D               with --count or --verify-log: give up after D without a\n"
        "                         message (default: the invisible time + 30s)\n"
        "  --rate R               receive at most about R messages/s in total\n"
        "  --tag EXPR             TAG filter expression (default *)\n"
        "  --timeout T            request timeout, added to --poll for receives (default 3s)\n"
        "  --no-telemetry         skip the Telemetry handshake, heartbeats and goodbye\n"
        "  --quiet                no progress line\n"
        "\nwithout --duration, --count and --verify-log the run lasts 10s.\n"
        "exit status: 0 all good; 3 missing, out-of-order, corrupt or malformed messages,\n"
        "or one delivered again after a confirmed ack; 1 could not start or a receive was\n"
        "refused for good; 2 usage\n");
}

/* ------------------------------------------------------------ statistics */

static void mqb_c_error(mqb_crun_t *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keeps the first failure's description. Any thread. */
static void mqb_c_error(mqb_crun_t *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mqb_error_keep(&run->stats_mu, run->first_error, sizeof(run->first_error), fmt, ap);
    va_end(ap);
}

/* A delivery that breaks the protocol's promises. Client thread. */
static void mqb_c_malformed(mqb_crun_t *run, const mqc_delivery_t *d, const char *what)
{
    atomic_fetch_add(&run->malformed, 1);
    pthread_mutex_lock(&run->stats_mu);
    if (run->first_malformed[0] == '\0') {
        snprintf(run->first_malformed, sizeof(run->first_malformed),
                 "%s (message %s, queue %d, offset %" PRId64 ")", what, d->message_id, d->queue_id,
                 d->queue_offset);
    }
    pthread_mutex_unlock(&run->stats_mu);
}

static void mqb_c_progress(double elapsed_s, void *arg)
{
    mqb_crun_t *run = arg;
    uint64_t received = atomic_load(&run->received);
    double p50, p99;
    pthread_mutex_lock(&run->stats_mu);
    p50 = (double)mq_hist_quantile(&run->hist_sec, 0.50) / 1e6;
    p99 = (double)mq_hist_quantile(&run->hist_sec, 0.99) / 1e6;
    mq_hist_init(&run->hist_sec);
    uint64_t done = run->verify ? mqb_cverify_acked(run->v) : 0;
    pthread_mutex_unlock(&run->stats_mu);
    char verify[64] = "";
    if (run->verify) {
        snprintf(verify, sizeof(verify), ", %" PRIu64 "/%zu of the log done", done,
                 mqb_cverify_size(run->v));
    }
    fprintf(stderr,
            "consume: %" PRIu64 " received, %" PRIu64 " msgs/s, %" PRIu64 " acked, %" PRIu64
            " redelivered, e2e p50 %.2f ms, p99 %.2f ms, receive errors %" PRIu64 "%s, %.1f s\n",
            received, received - run->prev_received, atomic_load(&run->acked),
            atomic_load(&run->redelivered), p50, p99, atomic_load(&run->recv_errors), verify,
            elapsed_s);
    run->prev_received = received;
}

/* ------------------------------------------------------- client thread */

/* The answer to the acknowledgement of verify-log record ri (-1: none). */
static void mqb_c_ack_outcome(mqb_crun_t *run, int64_t ri, int outcome)
{
    if (!run->verify || ri < 0) {
        return;
    }
    pthread_mutex_lock(&run->stats_mu);
    mqb_cverify_ack(run->v, ri, outcome);
    pthread_mutex_unlock(&run->stats_mu);
}

/* Hands p back to the driver. Last use of p on this thread. */
static void mqb_c_post(mqb_crun_t *run, mqb_cpoll_t *p)
{
    pthread_mutex_lock(&run->ev_mu);
    p->next = run->events;
    run->events = p;
    pthread_cond_signal(&run->ev_cond);
    pthread_mutex_unlock(&run->ev_mu);
}

static uint64_t mqb_c_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the --ack-fail-rate draws. Client thread. */
static double mqb_c_random(mqb_crun_t *run)
{
    run->rng ^= run->rng >> 12;
    run->rng ^= run->rng << 25;
    run->rng ^= run->rng >> 27;
    return (double)((run->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* Records one delivery: statistics, checks, the verify log. Returns
 * whether to acknowledge it; *rec gets its verify-log record (or -1). */
static bool mqb_c_deliver(mqb_crun_t *run, const mqc_delivery_t *d, uint64_t wall_ns, int64_t *rec)
{
    const mqb_cconf_t *c = &run->conf;
    *rec = -1;
    atomic_fetch_add(&run->received, 1);
    atomic_fetch_add(&run->bytes, d->body_len);
    uint64_t now_ns = mq_now_ns();
    atomic_store(&run->last_msg_ns, now_ns);
    /* Only the first delivery writes it: a plain load keeps the CAS off
     * every later message. */
    if (atomic_load_explicit(&run->first_msg_ns, memory_order_relaxed) == 0) {
        uint_fast64_t none = 0;
        atomic_compare_exchange_strong(&run->first_msg_ns, &none, now_ns);
    }
    if (d->attempt > 1) {
        atomic_fetch_add(&run->redelivered, 1);
    }
    if (!d->message_id[0]) {
        mqb_c_malformed(run, d, "no message_id");
    } else if (!d->receipt_handle[0]) {
        mqb_c_malformed(run, d, "no receipt_handle");
    } else if (d->attempt < 1) {
        mqb_c_malformed(run, d, "delivery_attempt below 1");
    } else if (strcmp(d->topic, c->topic) != 0) {
        mqb_c_malformed(run, d, "another topic than the one asked for");
    } else if (!mqc_delivery_digest_ok(d)) {
        mqb_c_malformed(run, d, "body_digest missing or wrong");
    } else if (d->store_ms == 0 || d->born_ms == 0) {
        mqb_c_malformed(run, d, "no store_timestamp or born_timestamp");
    } else if (d->queue_offset < 0) {
        mqb_c_malformed(run, d, "no queue_offset");
    }
    bool ack = !(c->ack_fail > 0 && mqb_c_random(run) < c->ack_fail);
    pthread_mutex_lock(&run->stats_mu);
    /* First deliveries only: a redelivery's latency is its invisible time. */
    if (d->attempt == 1) {
        uint64_t store_ns = d->store_ms * 1000000ull;
        uint64_t born_ns = d->born_ms * 1000000ull;
        if (d->store_ms && wall_ns > store_ns) {
            mq_hist_add(&run->hist_store, wall_ns - store_ns);
            mq_hist_add(&run->hist_sec, wall_ns - store_ns);
        } else if (d->store_ms) {
            mq_hist_add(&run->hist_store, 0);
            mq_hist_add(&run->hist_sec, 0);
        }
        if (d->born_ms) {
            mq_hist_add(&run->hist_born, wall_ns > born_ns ? wall_ns - born_ns : 0);
        }
    }
    if (run->verify) {
        *rec = mqb_cverify_deliver(run->v, d, ack);
    }
    pthread_mutex_unlock(&run->stats_mu);
    if (!ack) {
        atomic_fetch_add(&run->noack, 1);
    }
    return ack;
}

static void mqb_c_acked(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                        void *arg)
{
    mqb_cack_t *a = arg;
    mqb_cpoll_t *p = a->p;
    mqb_crun_t *run = p->run;
    mqc_ack_resp_t r;
    memset(&r, 0, sizeof(r));
    bool decoded = false;
    if (st != RPC_OK) {
        if (!atomic_load(&run->stopping) || st != RPC_CANCELLED) {
            mqb_c_error(run, "AckMessage to %s: gRPC %s: %s", run->eps[p->ep].ep,
                        rpc_status_name(st), details && *details ? details : "(no details)");
        }
    } else if (mqc_ack_response_decode(resp, len, &r) != MQ_OK) {
        mqb_c_error(run, "AckMessage to %s: undecodable response", run->eps[p->ep].ep);
    } else {
        decoded = true;
    }
    uint64_t ok = 0;
    for (size_t i = 0; i < a->n; i++) {
        /* Entries answer in request order; a response without entries
         * speaks for all of them through its status. */
        int code = !decoded ? -1 : (r.n == a->n ? r.entries[i].code : r.code);
        bool good = code == apache_rocketmq_v2_Code_OK;
        if (decoded && !good) {
            mqb_c_error(run, "AckMessage to %s: %s (%d) %s", run->eps[p->ep].ep,
                        mqc_code_name(code), code, r.message);
        }
        ok += good;
        /* Without an answer the broker may have recorded the ack. */
        mqb_c_ack_outcome(run, a->rec[i],
                          good ? MQB_CV_ACKED : (decoded ? MQB_CV_FAILED : MQB_CV_UNKNOWN));
    }
    mqc_ack_resp_fini(&r);
    atomic_fetch_add(&run->acked, ok);
    atomic_fetch_add(&run->ack_failed, a->n - ok);
    if (ok) {
        atomic_store(&run->last_ack_ns, mq_now_ns());
    }
    atomic_fetch_sub(&run->acks_inflight, 1);
    free(a);
}

/* Acknowledges the messages of p's result whose topic is topic and whose
 * ack flag is set, in one AckMessage to the endpoint they came from. */
static void mqb_c_ack_topic(mqb_crun_t *run, mqb_cpoll_t *p, const char *topic, const bool *ack,
                            const int64_t *recs, bool *sent)
{
    mqc_recv_result_t *res = &p->res;
    size_t n = 0;
    for (size_t i = 0; i < res->n; i++) {
        n += ack[i] && !sent[i] && strcmp(res->msgs[i]->d.topic, topic) == 0;
    }
    if (n == 0) {
        return;
    }
    mqc_ack_entry_t *e = mq_malloc(n * sizeof(*e));
    mqb_cack_t *a = mq_malloc(sizeof(*a) + n * sizeof(a->rec[0]));
    a->p = p;
    a->n = 0;
    for (size_t i = 0; i < res->n; i++) {
        const mqc_delivery_t *d = &res->msgs[i]->d;
        if (ack[i] && !sent[i] && strcmp(d->topic, topic) == 0) {
            sent[i] = true;
            e[a->n] = (mqc_ack_entry_t){d->message_id, d->receipt_handle};
            a->rec[a->n++] = recs[i];
        }
    }
    uint8_t *buf;
    size_t len;
    mq_err_t err = mqc_ack_encode(run->conf.group, topic, e, n, &buf, &len);
    free(e);
    if (err == MQ_OK) {
        mqc_md_t md;
        mqc_md_init(&md, run->client_ids[p->consumer]);
        atomic_fetch_add(&run->acks_inflight, 1);
        err = rpc_channel_unary(run->eps[p->ep].ch, MQC_ACK_MESSAGE, md.md, md.n, buf, len,
                                run->conf.timeout_ms, mqb_c_acked, a);
        free(buf);
        if (err == MQ_OK) {
            return;
        }
        atomic_fetch_sub(&run->acks_inflight, 1);
    }
    mqb_c_error(run, "AckMessage to %s not sent: %s", run->eps[p->ep].ep, mq_err_str(err));
    for (size_t i = 0; i < a->n; i++) {
        mqb_c_ack_outcome(run, a->rec[i], MQB_CV_FAILED);
    }
    atomic_fetch_add(&run->ack_failed, a->n);
    free(a);
}

static uint64_t mqb_c_backoff_ns(uint32_t fails)
{
    uint64_t ns = MQB_C_BACKOFF_MIN_NS;
    for (uint32_t i = 1; i < fails && ns < MQB_C_BACKOFF_MAX_NS; i++) {
        ns *= 2;
    }
    return MQ_MIN(ns, MQB_C_BACKOFF_MAX_NS);
}

/* Whether a receive's outcome is worth another try: throttling and server
 * trouble, any transport failure but an unimplemented method or a request
 * the server cannot parse, and a stream without a status. */
static bool mqb_c_recv_retriable(int code)
{
    if (code < 0) {
        return code != -(int)RPC_UNIMPLEMENTED && code != -(int)RPC_INVALID_ARGUMENT;
    }
    return code == 0 || mqc_code_retriable(code);
}

static void mqb_c_received(mqc_recv_result_t *res, void *arg)
{
    mqb_cpoll_t *p = arg;
    mqb_crun_t *run = p->run;
    int code = mqc_recv_result_code(res);
    uint64_t now = mq_now_ns();
    p->got = 0;
    if (res->grpc == RPC_CANCELLED && atomic_load(&run->stopping)) {
        /* Our own cancel at the end: what it carried is not counted. */
        mqc_recv_result_fini(res);
        mqb_c_post(run, p);
        return;
    }
    if (res->bad_frames) {
        atomic_fetch_add(&run->malformed, res->bad_frames);
        pthread_mutex_lock(&run->stats_mu);
        if (!run->first_malformed[0]) {
            snprintf(run->first_malformed, sizeof(run->first_malformed),
                     "%zu undecodable or empty ReceiveMessage frame(s) from %s", res->bad_frames,
                     run->eps[p->ep].ep);
        }
        pthread_mutex_unlock(&run->stats_mu);
    }
    /* Messages count whatever the stream's end: they were delivered (a
     * stream cut by a dying broker still handed them out). */
    uint64_t wall = mqb_c_wall_ns();
    bool *ack = mq_calloc(res->n ? res->n : 1, sizeof(*ack));
    bool *sent = mq_calloc(res->n ? res->n : 1, sizeof(*sent));
    int64_t *recs = mq_calloc(res->n ? res->n : 1, sizeof(*recs));
    for (size_t i = 0; i < res->n; i++) {
        ack[i] = mqb_c_deliver(run, &res->msgs[i]->d, wall, &recs[i]);
    }
    p->got = (uint32_t)res->n;
    for (size_t i = 0; i < res->n; i++) {
        if (ack[i] && !sent[i]) {
            mqb_c_ack_topic(run, p, res->msgs[i]->d.topic, ack, recs, sent);
        }
    }
    free(ack);
    free(sent);
    free(recs);
    if (code == apache_rocketmq_v2_Code_OK || code == apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND) {
        p->fails = 0;
        p->next_ns = now;
        if (code == apache_rocketmq_v2_Code_MESSAGE_NOT_FOUND || res->n == 0) {
            atomic_fetch_add(&run->empty_polls, 1);
        }
    } else {
        atomic_fetch_add(&run->recv_errors, 1);
        char what[320];
        if (code < 0) {
            snprintf(what, sizeof(what), "ReceiveMessage from %s: gRPC %s: %s", run->eps[p->ep].ep,
                     rpc_status_name(res->grpc), res->details[0] ? res->details : "(no details)");
        } else if (code == 0) {
            snprintf(what, sizeof(what), "ReceiveMessage from %s: no status frame",
                     run->eps[p->ep].ep);
        } else {
            snprintf(what, sizeof(what), "ReceiveMessage from %s: %s (%d): %s", run->eps[p->ep].ep,
                     mqc_code_name(code), code, res->message);
        }
        MQ_LOG_DEBUG("%s", what);
        mqb_c_error(run, "%s", what);
        if (!mqb_c_recv_retriable(code)) {
            int zero = 0;
            atomic_compare_exchange_strong(&run->fatal, &zero, code ? code : INT32_MIN);
        }
        p->fails++;
        p->next_ns = now + mqb_c_backoff_ns(p->fails);
    }
    mqc_recv_result_fini(res);
    /* The next receive goes out now, while the acks are on their way (as
     * the official clients do): waiting for them would add an ack's round
     * trip, a cursor-ledger add, to every message's latency. */
    mqb_c_post(run, p);
}

/* ---------------------------------------------------------- driver thread */

static void mqb_c_heartbeats(mqb_crun_t *run)
{
    uint8_t *buf;
    size_t len;
    if (mqc_heartbeat_group_encode(apache_rocketmq_v2_ClientType_SIMPLE_CONSUMER, run->conf.group,
                                   &buf, &len) != MQ_OK) {
        return;
    }
    size_t neps = atomic_load(&run->neps);
    for (uint32_t c = 0; c < run->conf.consumers; c++) {
        for (size_t e = 0; e < neps; e++) {
            mqc_md_t md;
            mqc_md_init(&md, run->client_ids[c]);
            rpc_channel_unary(run->eps[e].ch, MQC_HEARTBEAT, md.md, md.n, buf, len,
                              run->conf.timeout_ms, mqb_heartbeat_cb, NULL);
        }
    }
    free(buf);
}

static void mqb_c_issue(mqb_crun_t *run, mqb_cpoll_t *p)
{
    const mqb_cconf_t *c = &run->conf;
    const mqb_cep_t *e = &run->eps[p->ep];
    mqc_recv_req_t req = {
        .group = c->group,
        .topic = c->topic,
        .queue_id = e->queue_id,
        .broker = e->broker[0] ? e->broker : NULL,
        .filter = c->filter,
        .batch = (int32_t)c->batch,
        .invisible_ms = (int64_t)c->invisible_ms,
        .poll_ms = (int64_t)c->poll_ms,
    };
    p->busy = true;
    atomic_fetch_add(&run->recv_calls, 1);
    mq_err_t err = mqc_receive(e->ch, run->client_ids[p->consumer], &req,
                               (uint32_t)(c->poll_ms + c->timeout_ms), &p->res, mqb_c_received, p);
    if (err != MQ_OK) {
        atomic_fetch_add(&run->recv_errors, 1);
        mqb_c_error(run, "ReceiveMessage to %s not started: %s", e->ep, mq_err_str(err));
        p->busy = false;
        p->fails++;
        p->due_ns = mq_now_ns() + mqb_c_backoff_ns(p->fails);
    }
}

static void mqb_c_tele_msg(const uint8_t *msg, size_t len, void *arg)
{
    mqb_ctele_t *t = arg;
    mqc_settings_reply_t r;
    if (mqc_telemetry_decode(msg, len, &r) != MQ_OK) {
        MQ_LOG_WARN("undecodable Telemetry command");
        return;
    }
    if (r.has_subscription && r.fifo) {
        atomic_store(&t->run->server_fifo, true);
    }
    pthread_mutex_lock(&t->run->mu);
    if (r.code && !t->settings) {
        t->code = r.code;
    }
    if (r.has_settings) {
        t->settings = true;
    }
    pthread_cond_broadcast(&t->run->cond);
    pthread_mutex_unlock(&t->run->mu);
}

static void mqb_c_tele_end(rpc_status_t st, const char *details, void *arg)
{
    mqb_ctele_t *t = arg;
    if (st != RPC_OK && st != RPC_CANCELLED) {
        MQ_LOG_DEBUG("telemetry ended status=%s details=%s", rpc_status_name(st),
                     details ? details : "");
    }
    pthread_mutex_lock(&t->run->mu);
    t->ended = true;
    t->end_status = st;
    pthread_cond_broadcast(&t->run->cond);
    pthread_mutex_unlock(&t->run->mu);
}

/* Opens every consumer's Telemetry stream to endpoint e and sends its
 * settings (the answers are waited for by mqb_c_telemetry_wait). */
static bool mqb_c_telemetry_open(mqb_crun_t *run, size_t e)
{
    const mqb_cconf_t *c = &run->conf;
    mqb_cep_t *ep = &run->eps[e];
    ep->tele = mq_calloc(c->consumers, sizeof(*ep->tele));
    uint8_t *settings;
    size_t slen;
    if (mqc_consumer_settings_encode(apache_rocketmq_v2_ClientType_SIMPLE_CONSUMER, c->group,
                                     c->topic, c->filter, &c->access, c->timeout_ms,
                                     (uint32_t)c->poll_ms, &settings, &slen) != MQ_OK) {
        fprintf(stderr, "mqbench consume: cannot encode the Telemetry settings\n");
        return false;
    }
    bool ok = true;
    for (uint32_t i = 0; i < c->consumers && ok; i++) {
        mqb_ctele_t *t = &ep->tele[i];
        t->run = run;
        mqc_md_t md;
        mqc_md_init(&md, run->client_ids[i]);
        if (rpc_channel_bidi(ep->ch, MQC_TELEMETRY, md.md, md.n, 0, mqb_c_tele_msg, mqb_c_tele_end,
                             t, &t->bidi) != MQ_OK) {
            t->bidi = NULL;
            fprintf(stderr, "mqbench consume: cannot open Telemetry to %s\n", ep->ep);
            ok = false;
        } else if (rpc_bidi_write(t->bidi, settings, slen) != MQ_OK) {
            fprintf(stderr, "mqbench consume: Telemetry to %s closed at once\n", ep->ep);
            ok = false;
        }
    }
    free(settings);
    return ok;
}

/* Waits until every Telemetry stream opened so far got the server's
 * settings; false (with the reason printed) on a refusal, a stream ended
 * without settings, or after MQB_C_TELEMETRY_WAIT_MS. */
static bool mqb_c_telemetry_wait(mqb_crun_t *run)
{
    uint64_t deadline = mq_now_ms() + MQB_C_TELEMETRY_WAIT_MS;
    size_t neps = atomic_load(&run->neps);
    bool ok = true;
    pthread_mutex_lock(&run->mu);
    while (ok) {
        size_t waiting = 0;
        for (size_t e = 0; e < neps && ok; e++) {
            for (uint32_t i = 0; i < run->conf.consumers && ok; i++) {
                const mqb_ctele_t *t = &run->eps[e].tele[i];
                if (t->code && t->code != apache_rocketmq_v2_Code_OK) {
                    fprintf(stderr, "mqbench consume: Telemetry to %s refused: %s (%d)\n",
                            run->eps[e].ep, mqc_code_name(t->code), t->code);
                    ok = false;
                } else if (!t->settings && t->ended) {
                    fprintf(stderr, "mqbench consume: Telemetry to %s ended without settings: %s\n",
                            run->eps[e].ep, rpc_status_name(t->end_status));
                    ok = false;
                } else if (!t->settings) {
                    waiting++;
                }
            }
        }
        if (!ok || waiting == 0) {
            break;
        }
        if (mq_now_ms() >= deadline || mqb_interrupted) {
            fprintf(stderr,
                    "mqbench consume: %zu Telemetry stream(s) got no settings in %d s "
                    "(--no-telemetry skips the handshake)\n",
                    waiting, MQB_C_TELEMETRY_WAIT_MS / 1000);
            ok = false;
            break;
        }
        struct timespec ts;
        mqb_deadline(&ts, 100);
        pthread_cond_timedwait(&run->cond, &run->mu, &ts);
    }
    pthread_mutex_unlock(&run->mu);
    return ok;
}

/* The index of endpoint ep, adding it (channel, pollers, Telemetry) when
 * new; SIZE_MAX when it cannot. Driver thread (or main before it starts). */
static size_t mqb_c_endpoint(mqb_crun_t *run, const char *ep, bool *added)
{
    size_t neps = atomic_load(&run->neps);
    *added = false;
    for (size_t e = 0; e < neps; e++) {
        if (strcmp(run->eps[e].ep, ep) == 0) {
            return e;
        }
    }
    if (neps == MQC_EPS_MAX) {
        return SIZE_MAX;
    }
    mqb_cep_t *e = &run->eps[neps];
    memset(e, 0, sizeof(*e));
    snprintf(e->ep, sizeof(e->ep), "%s", ep);
    for (size_t a = 0; a < run->conf.access.n; a++) {
        if (strcmp(run->conf.access.ep[a], ep) == 0) {
            e->ch = run->access[a];
        }
    }
    if (!e->ch) {
        if (rpc_channel_new(run->cl, ep, &e->ch) != MQ_OK) {
            fprintf(stderr, "mqbench consume: cannot open a channel to %s\n", ep);
            return SIZE_MAX;
        }
        e->own_ch = true;
    }
    e->polls = mq_calloc(run->conf.consumers, sizeof(*e->polls));
    for (uint32_t c = 0; c < run->conf.consumers; c++) {
        e->polls[c].run = run;
        e->polls[c].consumer = c;
        e->polls[c].ep = (uint32_t)neps;
    }
    atomic_store(&run->neps, neps + 1);
    *added = true;
    return neps;
}

/* Notes the route's broker names and queues on the endpoints, adding new
 * endpoints (with Telemetry streams when telemetry is on). */
static bool mqb_c_route_apply(mqb_crun_t *run, bool start)
{
    const mqc_route_t *rt = &run->route;
    for (size_t q = 0; q < rt->nqueues; q++) {
        const mqc_queue_t *mq = &rt->queues[q];
        if (!mq->endpoint[0]) {
            continue;
        }
        bool added;
        size_t e = mqb_c_endpoint(run, mq->endpoint, &added);
        if (e == SIZE_MAX) {
            return false;
        }
        if (added || !run->eps[e].broker[0]) {
            snprintf(run->eps[e].broker, sizeof(run->eps[e].broker), "%s", mq->broker);
            run->eps[e].queue_id = mq->id;
        }
        if (added && run->conf.telemetry && !mqb_c_telemetry_open(run, e) && start) {
            return false;
        }
        if (added && !start && !run->conf.quiet) {
            fprintf(stderr, "consume: new broker endpoint %s (%s)\n", mq->endpoint, mq->broker);
        }
    }
    return true;
}

/* QueryRoute on the access points in turn until one answers OK with
 * queues; for up to MQB_C_ROUTE_WAIT_MS at start, one round later on. */
static bool mqb_c_route(mqb_crun_t *run, bool start)
{
    const mqb_cconf_t *c = &run->conf;
    uint8_t *req;
    size_t len;
    if (mqc_route_request_encode(c->topic, &c->access, &req, &len) != MQ_OK) {
        return false;
    }
    char last[512] = "no answer";
    uint64_t deadline = mq_now_ms() + (start ? MQB_C_ROUTE_WAIT_MS : 0);
    bool ok = false;
    bool fatal = false;
    for (size_t attempt = 0; !ok && !mqb_interrupted; attempt++) {
        size_t a = attempt % c->access.n;
        mqc_route_t rt;
        if (mqb_route_query(run->access[a], c->access.ep[a], run->client_ids[0], req, len,
                            c->timeout_ms, &rt, &fatal, last, sizeof(last))) {
            mqc_route_fini(&run->route);
            run->route = rt;
            ok = true;
        }
        if (!ok) {
            if (fatal || (mq_now_ms() >= deadline && attempt + 1 >= c->access.n)) {
                break;
            }
            if (mq_now_ms() < deadline) {
                usleep(200 * 1000);
            }
        }
    }
    free(req);
    if (!ok && start) {
        fprintf(stderr, "mqbench consume: no route for topic %s: %s\n", c->topic, last);
    } else if (!ok) {
        MQ_LOG_DEBUG("route refresh failed: %s", last);
    }
    return ok && mqb_c_route_apply(run, start);
}

/* Why the run should stop now, or NULL. */
static const char *mqb_c_should_stop(mqb_crun_t *run, uint64_t now, uint64_t end)
{
    const mqb_cconf_t *c = &run->conf;
    if (mqb_interrupted) {
        return "interrupted";
    }
    if (atomic_load(&run->fatal)) {
        return "a receive was refused";
    }
    if (c->duration_ms && now >= end) {
        return "duration reached";
    }
    if (c->count && atomic_load(&run->acked) >= c->count) {
        return "count reached";
    }
    if (run->verify) {
        pthread_mutex_lock(&run->stats_mu);
        bool all =
            mqb_cverify_acked(run->v) + mqb_cverify_unanswered(run->v) == mqb_cverify_size(run->v);
        pthread_mutex_unlock(&run->stats_mu);
        if (all) {
            return "every message of the verify log acknowledged (or its ack unanswered)";
        }
    }
    /* The client thread may have noted a message after `now` was taken. */
    uint64_t last = atomic_load(&run->last_msg_ns);
    if ((c->count || run->verify) && now > last && now - last >= c->idle_ms * 1000000ull) {
        return "idle";
    }
    return NULL;
}

static void *mqb_c_driver(void *arg)
{
    mqb_crun_t *run = arg;
    const mqb_cconf_t *c = &run->conf;
    mq_log_thread_name("mqb-cdriver");
    uint64_t end = run->t0 + c->duration_ms * 1000000ull;
    uint64_t next_hb = run->t0 + MQB_C_HEARTBEAT_NS;
    uint64_t next_route = run->t0 + MQB_C_ROUTE_NS;
    uint64_t stop_at = 0;
    double tokens = c->rate ? (double)c->batch : 0;
    uint64_t last_fill = run->t0;
    double burst = MQ_MAX((double)c->batch, (double)c->rate / 10.0);
    for (;;) {
        uint64_t now = mq_now_ns();
        pthread_mutex_lock(&run->ev_mu);
        mqb_cpoll_t *ev = run->events;
        run->events = NULL;
        pthread_mutex_unlock(&run->ev_mu);
        for (; ev; ev = ev->next) {
            ev->busy = false;
            ev->due_ns = ev->next_ns;
            if (c->rate) {
                tokens -= ev->got;
            }
        }
        if (!stop_at) {
            const char *why = mqb_c_should_stop(run, now, end);
            if (why) {
                run->stop_reason = why;
                atomic_store(&run->stopping, true);
                stop_at = now;
            }
        }
        if (stop_at) {
            /* Receives still out are cancelled at teardown; the
             * acknowledgements sent get their answers first. */
            if (atomic_load(&run->acks_inflight) == 0 || now - stop_at >= MQB_C_ACK_DRAIN_NS) {
                break;
            }
        } else {
            if (now >= next_route) {
                mqb_c_route(run, false);
                next_route = mq_now_ns() + MQB_C_ROUTE_NS;
                now = mq_now_ns();
            }
            if (c->telemetry && now >= next_hb) {
                mqb_c_heartbeats(run);
                next_hb = now + MQB_C_HEARTBEAT_NS;
            }
            if (c->rate) {
                tokens = MQ_MIN(burst, tokens + (double)(now - last_fill) * (double)c->rate / 1e9);
                last_fill = now;
            }
        }
        uint64_t wake = now + 100000000ull;
        size_t neps = atomic_load(&run->neps);
        for (size_t e = 0; e < neps && !stop_at; e++) {
            for (uint32_t i = 0; i < c->consumers; i++) {
                mqb_cpoll_t *p = &run->eps[e].polls[i];
                if (p->busy) {
                    continue;
                }
                if (p->due_ns > now) {
                    wake = MQ_MIN(wake, p->due_ns);
                } else if (c->rate && tokens <= 0) {
                    uint64_t wait = (uint64_t)((1.0 - tokens) * 1e9 / (double)c->rate);
                    wake = MQ_MIN(wake, now + MQ_MAX(wait, 1000000ull));
                } else {
                    mqb_c_issue(run, p);
                }
            }
        }
        if (!stop_at) {
            wake = MQ_MIN(wake, next_route);
            if (c->telemetry) {
                wake = MQ_MIN(wake, next_hb);
            }
            if (c->duration_ms) {
                wake = MQ_MIN(wake, end);
            }
        } else {
            wake = MQ_MIN(wake, now + 10000000ull);
        }
        pthread_mutex_lock(&run->ev_mu);
        if (!run->events && wake > mq_now_ns()) {
            struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
            pthread_cond_timedwait(&run->ev_cond, &run->ev_mu, &ts);
        }
        pthread_mutex_unlock(&run->ev_mu);
    }
    mqb_done_set(&run->sync);
    return NULL;
}

/* ------------------------------------------------------------------ setup */

static void mqb_c_notify_cb(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                            void *arg)
{
    MQ_UNUSED(st);
    MQ_UNUSED(details);
    MQ_UNUSED(resp);
    MQ_UNUSED(len);
    mqb_crun_t *run = arg;
    pthread_mutex_lock(&run->mu);
    run->notify_pending--;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->mu);
}

/* Says goodbye as the official clients do: half-closes the Telemetry
 * streams and sends NotifyClientTermination{group} per consumer and
 * broker, waiting up to 2 s for the answers. */
static void mqb_c_goodbye(mqb_crun_t *run)
{
    size_t neps = atomic_load(&run->neps);
    for (size_t e = 0; e < neps; e++) {
        for (uint32_t i = 0; run->eps[e].tele && i < run->conf.consumers; i++) {
            if (run->eps[e].tele[i].bidi) {
                rpc_bidi_half_close(run->eps[e].tele[i].bidi);
            }
        }
    }
    uint8_t *buf;
    size_t len;
    if (mqc_notify_group_encode(run->conf.group, &buf, &len) == MQ_OK) {
        for (uint32_t i = 0; i < run->conf.consumers; i++) {
            for (size_t e = 0; e < neps; e++) {
                mqc_md_t md;
                mqc_md_init(&md, run->client_ids[i]);
                pthread_mutex_lock(&run->mu);
                run->notify_pending++;
                pthread_mutex_unlock(&run->mu);
                if (rpc_channel_unary(run->eps[e].ch, MQC_NOTIFY_TERMINATION, md.md, md.n, buf, len,
                                      1000, mqb_c_notify_cb, run) != MQ_OK) {
                    pthread_mutex_lock(&run->mu);
                    run->notify_pending--;
                    pthread_mutex_unlock(&run->mu);
                }
            }
        }
        free(buf);
    }
    struct timespec ts;
    mqb_deadline(&ts, 2000);
    pthread_mutex_lock(&run->mu);
    for (;;) {
        bool waiting = run->notify_pending > 0;
        for (size_t e = 0; e < neps && !waiting; e++) {
            for (uint32_t i = 0; run->eps[e].tele && i < run->conf.consumers && !waiting; i++) {
                waiting = run->eps[e].tele[i].bidi && !run->eps[e].tele[i].ended;
            }
        }
        if (!waiting || pthread_cond_timedwait(&run->cond, &run->mu, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&run->mu);
}

/* Ends every call (receives still out are cancelled; their callbacks run
 * and post to a driver that is gone), frees the channels and the client.
 * After this no callback runs. */
static void mqb_c_close(mqb_crun_t *run)
{
    atomic_store(&run->stopping, true);
    size_t neps = atomic_load(&run->neps);
    for (size_t e = 0; e < neps; e++) {
        for (uint32_t i = 0; run->eps[e].tele && i < run->conf.consumers; i++) {
            if (run->eps[e].tele[i].bidi) {
                rpc_bidi_free(run->eps[e].tele[i].bidi);
                run->eps[e].tele[i].bidi = NULL;
            }
        }
    }
    for (size_t e = 0; e < neps; e++) {
        if (run->eps[e].ch && run->eps[e].own_ch) {
            rpc_channel_free(run->eps[e].ch);
        }
        run->eps[e].ch = NULL;
    }
    for (size_t a = 0; run->access && a < run->conf.access.n; a++) {
        if (run->access[a]) {
            rpc_channel_free(run->access[a]);
            run->access[a] = NULL;
        }
    }
    if (run->cl) {
        rpc_client_free(run->cl);
        run->cl = NULL;
    }
}

static void mqb_c_teardown(mqb_crun_t *run)
{
    mqb_c_close(run);
    size_t neps = atomic_load(&run->neps);
    for (size_t e = 0; e < neps; e++) {
        free(run->eps[e].polls);
        free(run->eps[e].tele);
    }
    free(run->access);
    free(run->client_ids);
    mqc_route_fini(&run->route);
    mqb_cverify_free(run->v);
    pthread_mutex_destroy(&run->ev_mu);
    pthread_cond_destroy(&run->ev_cond);
    pthread_mutex_destroy(&run->stats_mu);
    pthread_mutex_destroy(&run->mu);
    pthread_cond_destroy(&run->cond);
    mqb_done_fini(&run->sync);
}

/* ----------------------------------------------------------------- report */

static void mqb_c_latency(const char *label, const mq_hist_t *h)
{
    printf("%s (ms): p50 %.3f  p99 %.3f  p999 %.3f  max %.3f  mean %.3f  (n=%" PRIu64 ")\n", label,
           (double)mq_hist_quantile(h, 0.50) / 1e6, (double)mq_hist_quantile(h, 0.99) / 1e6,
           (double)mq_hist_quantile(h, 0.999) / 1e6, (double)(h->count ? h->max : 0) / 1e6,
           h->count ? (double)h->sum / (double)h->count / 1e6 : 0.0, h->count);
}

/* Prints the report; returns the exit status it calls for. Every call has
 * ended: the state is read without locks. */
static int mqb_c_report(mqb_crun_t *run, double secs)
{
    const mqb_cconf_t *c = &run->conf;
    uint64_t received = atomic_load(&run->received);
    uint64_t bytes = atomic_load(&run->bytes);
    int code = 0;
    printf("mqbench consume: topic %s, group %s, %u consumer(s), %zu broker endpoint(s), batch %u, "
           "invisible %" PRIu64 " ms, poll %" PRIu64 " ms, %.3f s (%s)\n",
           c->topic, c->group, c->consumers, atomic_load(&run->neps), c->batch, c->invisible_ms,
           c->poll_ms, secs, run->stop_reason ? run->stop_reason : "stopped");
    printf("received: %" PRIu64 " messages in %" PRIu64 " receives (%" PRIu64
           " empty); acked: %" PRIu64 "; not acked on purpose: %" PRIu64 "; ack failures: %" PRIu64
           "; redelivered (attempt > 1): %" PRIu64 "\n",
           received, atomic_load(&run->recv_calls), atomic_load(&run->empty_polls),
           atomic_load(&run->acked), atomic_load(&run->noack), atomic_load(&run->ack_failed),
           atomic_load(&run->redelivered));
    printf("throughput: %.0f msgs/s, %.2f MB/s\n", secs > 0 ? (double)received / secs : 0.0,
           secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
    uint64_t first = atomic_load(&run->first_msg_ns);
    if (first) {
        /* From the first ReceiveMessage sent (route, Telemetry and channels
         * are set up by then): a new group's cursor load and cold reads. */
        printf("first message: %.3f ms after the first receive\n", (double)(first - run->t0) / 1e6);
    }
    mqb_c_latency("end-to-end latency from store", &run->hist_store);
    mqb_c_latency("end-to-end latency from born", &run->hist_born);
    printf("receive errors: %" PRIu64 "\n", atomic_load(&run->recv_errors));
    if (run->first_error[0]) {
        printf("first error: %s\n", run->first_error);
    }
    uint64_t malformed = atomic_load(&run->malformed);
    printf("malformed: %" PRIu64 "%s%s\n", malformed, malformed ? " (first: " : "",
           malformed ? run->first_malformed : "");
    if (malformed) {
        printf(")\n");
        code = 3;
    }
    if (run->verify && mqb_cverify_report(run->v, c->fifo || atomic_load(&run->server_fifo))) {
        code = 3;
    }
    if (atomic_load(&run->fatal)) {
        code = 1;
    }
    return code;
}

/* ------------------------------------------------------------------ main */

/* A millisecond option: plain numbers are milliseconds, else a duration. */
static uint64_t mqb_c_opt_ms(const char *name, const char *arg, uint64_t min, uint64_t max)
{
    if (arg[0] && strspn(arg, "0123456789") == strlen(arg)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%sms", arg);
        return mqb_opt_duration_ms(MQB_CCMD, name, buf, min, max);
    }
    return mqb_opt_duration_ms(MQB_CCMD, name, arg, min, max);
}

int mqb_consume_main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"endpoints", required_argument, NULL, 'n'},
        {"topic", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},
        {"consumers", required_argument, NULL, 'C'},
        {"batch", required_argument, NULL, 'b'},
        {"invisible", required_argument, NULL, 'i'},
        {"poll", required_argument, NULL, 'p'},
        {"ack-fail-rate", required_argument, NULL, 'a'},
        {"duration", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'c'},
        {"verify-log", required_argument, NULL, 'V'},
        {"fifo", no_argument, NULL, 'F'},
        {"idle", required_argument, NULL, 'I'},
        {"rate", required_argument, NULL, 'r'},
        {"tag", required_argument, NULL, 'G'},
        {"timeout", required_argument, NULL, 'T'},
        {"no-telemetry", no_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Three histograms make the run large: on the heap. */
    mqb_crun_t *run = mq_calloc(1, sizeof(*run));
    mqb_cconf_t *c = &run->conf;
    const char *endpoints = "127.0.0.1:8081";
    c->topic = "BenchmarkTest";
    c->filter = "*";
    c->consumers = 4;
    c->batch = 32;
    c->invisible_ms = 30000;
    c->poll_ms = 5000;
    c->timeout_ms = 3000;
    c->telemetry = true;
    bool idle_set = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            endpoints = optarg;
            break;
        case 't':
            c->topic = optarg;
            break;
        case 'g':
            c->group = optarg;
            break;
        case 'C':
            c->consumers = (uint32_t)mqb_opt_num(MQB_CCMD, "--consumers", optarg, 1, 10000);
            break;
        case 'b':
            c->batch = (uint32_t)mqb_opt_num(MQB_CCMD, "--batch", optarg, 1, 1024);
            break;
        case 'i':
            c->invisible_ms = mqb_c_opt_ms("--invisible", optarg, 0, 7ull * 86400000);
            break;
        case 'p':
            c->poll_ms = mqb_opt_duration_ms(MQB_CCMD, "--poll", optarg, 0, 600000);
            break;
        case 'a': {
            char *end;
            errno = 0;
            c->ack_fail = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(c->ack_fail >= 0 && c->ack_fail < 1)) {
                mqb_usage_error(MQB_CCMD, "bad --ack-fail-rate '%s' (expected 0 <= P < 1)", optarg);
            }
            break;
        }
        case 'd':
            c->duration_ms =
                mqb_opt_duration_ms(MQB_CCMD, "--duration", optarg, 1, 30ull * 86400000);
            break;
        case 'c':
            c->count = mqb_opt_num(MQB_CCMD, "--count", optarg, 1, UINT64_MAX / 2);
            break;
        case 'V':
            c->verify_log = optarg;
            break;
        case 'F':
            c->fifo = true;
            break;
        case 'I':
            c->idle_ms = mqb_opt_duration_ms(MQB_CCMD, "--idle", optarg, 1, 30ull * 86400000);
            idle_set = true;
            break;
        case 'r':
            c->rate = mqb_opt_num(MQB_CCMD, "--rate", optarg, 1, 100000000);
            break;
        case 'G':
            c->filter = optarg;
            break;
        case 'T':
            c->timeout_ms =
                (uint32_t)mqb_opt_duration_ms(MQB_CCMD, "--timeout", optarg, 1, 3600000);
            break;
        case 'N':
            c->telemetry = false;
            break;
        case 'q':
            c->quiet = true;
            break;
        case 'h':
            mqb_c_usage(stdout);
            free(run);
            return 0;
        default:
            mqb_c_usage(stderr);
            free(run);
            return 2;
        }
    }
    if (optind < argc) {
        mqb_usage_error(MQB_CCMD, "unexpected argument '%s'", argv[optind]);
    }
    if (!c->group || !*c->group) {
        mqb_usage_error(MQB_CCMD, "--group is required");
    }
    char why[256];
    if (mqc_eps_parse(endpoints, &c->access, why, sizeof(why)) != MQ_OK) {
        mqb_usage_error(MQB_CCMD, "--endpoints: %s", why);
    }
    if (!c->duration_ms && !c->count && !c->verify_log) {
        c->duration_ms = 10000;
    }
    if (!idle_set) {
        c->idle_ms = c->invisible_ms + 30000;
    }
    mq_log_level = MQ_LOG_LVL_WARN;

    pthread_mutex_init(&run->ev_mu, NULL);
    mqb_cond_init_mono(&run->ev_cond);
    pthread_mutex_init(&run->stats_mu, NULL);
    pthread_mutex_init(&run->mu, NULL);
    mqb_cond_init_mono(&run->cond);
    mqb_done_init(&run->sync, !c->quiet);
    mqb_done_set_printer(&run->sync, mqb_c_progress, run);
    mq_hist_init(&run->hist_store);
    mq_hist_init(&run->hist_born);
    mq_hist_init(&run->hist_sec);
    run->rng = mq_mix64(mq_wall_ms() ^ ((uint64_t)getpid() << 20)) | 1;
    run->client_ids = mq_calloc(c->consumers, sizeof(*run->client_ids));
    for (uint32_t i = 0; i < c->consumers; i++) {
        mqc_client_id_make(run->client_ids[i], sizeof(run->client_ids[i]), i);
    }
    run->access = mq_calloc(c->access.n, sizeof(*run->access));

    mqb_signals_catch();

    int code = 0;
    if (c->verify_log) {
        run->verify = true;
        run->v = mqb_cverify_load(c->verify_log);
        if (!run->v) {
            code = 1;
            goto out;
        }
    }
    if (!mqb_rpc_open(MQB_CCMD, &c->access, &run->cl, run->access) || !mqb_c_route(run, true) ||
        (c->telemetry && !mqb_c_telemetry_wait(run))) {
        code = 1;
        goto out;
    }
    if (!c->quiet) {
        fprintf(stderr,
                "consume: topic %s, group %s%s, %zu queue(s) on %zu broker(s), %u consumer(s)%s\n",
                c->topic, c->group, atomic_load(&run->server_fifo) ? " (FIFO)" : "",
                run->route.nqueues, atomic_load(&run->neps), c->consumers,
                run->verify ? ", verifying" : "");
    }
    run->t0 = mq_now_ns();
    atomic_store(&run->last_msg_ns, run->t0);
    atomic_store(&run->last_ack_ns, run->t0);
    pthread_t driver;
    if (pthread_create(&driver, NULL, mqb_c_driver, run) != 0) {
        fprintf(stderr, "mqbench consume: cannot start the driver thread\n");
        code = 1;
        goto out;
    }
    mqb_done_wait(&run->sync, "consume");
    pthread_join(driver, NULL);
    /* Throughput counts up to the last acknowledgement; without one, the
     * whole run. */
    uint64_t last = atomic_load(&run->acked) ? atomic_load(&run->last_ack_ns) : mq_now_ns();
    double secs = (double)(last - run->t0) / 1e9;
    if (c->telemetry) {
        mqb_c_goodbye(run);
    }
    mqb_c_close(run);
    code = mqb_c_report(run, secs);
out:
    mqb_c_teardown(run);
    mqb_signals_restore();
    free(run);
    return code;
}
