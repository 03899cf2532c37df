/*
 * mqbench produce: sends messages to LedgerMQ brokers (or any RocketMQ 5
 * proxy) over the gRPC protocol, as N logical producers, and reports
 * messages/s, MB/s and send latency percentiles; --verify-log records every
 * acknowledged message's (queue, offset, producer, sequence, crc32c, id).
 *
 * Start-up is what the official producers do: QueryRoute to the access
 * point (retried for up to 10 s), a channel per distinct broker endpoint of
 * the route, and per producer a Telemetry stream to each of them carrying
 * its settings, answered by the server's (max body size). Producers send a
 * Heartbeat every 10 s and NotifyClientTermination at the end.
 *
 * Open loop (--rate R): request k (of B messages) is due at t0 + k*B/R and
 * belongs to producer k mod N; a producer whose window (--inflight) is full
 * queues it, and its latency still counts from the due time, so a slow
 * broker shows up as latency instead of hiding as a lower rate (coordinated
 * omission). Closed loop (--max): each producer keeps its window full.
 *
 * Threads (no thread per producer):
 *  - the pacer thread owns the producers (sequences, windows, backlogs),
 *    the retry timers and the round-robin; it encodes requests and starts
 *    the calls;
 *  - the rpc client thread runs the completions: it decodes the response,
 *    counts, records latency and writes the verify log (it owns both), then
 *    posts the request back to the pacer (done, or retry at a time);
 *  - the main thread sets up, prints progress every second and reports.
 * Counters read across threads are atomics; the last second's histogram is
 * under stats_mu.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq_crc32c.h"
#include "mq_hist.h"
#include "mq_log.h"
#include "mq_util.h"
#include "mqb_common.h"
#include "mqc_rmq.h"
#include "mqc_vlog.h"
#include "rpc.h"

#define MQB_PCMD "produce"
#define MQB_P_ROUTE_WAIT_MS 10000
#define MQB_P_TELEMETRY_WAIT_MS 10000
#define MQB_P_HEARTBEAT_NS (10ull * 1000000000ull)
/* After --duration, requests still owed (backlog, retries) get this long. */
#define MQB_P_DRAIN_NS (30ull * 1000000000ull)
/* Room per message for everything but the body in a request. */
#define MQB_P_MSG_OVERHEAD 512
#define MQB_P_PROPS 3

typedef struct mqb_pconf {
    mqc_eps_t access;
    const char *topic;
    uint32_t producers;
    uint64_t size;
    uint64_t rate; /* messages/s; 0 with --max */
    bool max;
    uint32_t batch;
    uint64_t duration_ms;
    uint32_t groups;
    const char *verify_log;
    uint32_t inflight; /* per producer */
    uint32_t retries;
    uint32_t timeout_ms;
    const char *tag;
    bool telemetry;
    bool quiet;
} mqb_pconf_t;

typedef struct mqb_prun mqb_prun_t;

/* One request and its messages still pending. Owned by the pacer, lent to
 * the client thread while its call is in flight. */
typedef struct mqb_preq {
    mqb_prun_t *run;
    struct mqb_preq *next; /* event list, retry list */
    uint32_t producer;
    uint32_t n;
    uint32_t attempt; /* retries done */
    bool retry;       /* event: retry at due_ns (else: done) */
    size_t ep;        /* channel of the last attempt */
    uint64_t sched_ns;
    uint64_t due_ns;
    uint64_t *seq;
    uint32_t *crc;
    char (*ids)[MQC_MSGID_LEN + 1];
} mqb_preq_t;

typedef struct mqb_pprod {
    char client_id[MQC_CLIENT_ID_MAX];
    uint64_t next_seq;
    uint32_t inflight;
    /* Open loop: due times of requests waiting for the window (a ring). */
    uint64_t *backlog;
    size_t bl_head;
    size_t bl_len;
    size_t bl_cap;
} mqb_pprod_t;

/* A producer's Telemetry stream to one endpoint. */
typedef struct mqb_ptele {
    mqb_prun_t *run;
    rpc_bidi_t *bidi;
    bool settings; /* @locks run->mu */
    bool ended;    /* @locks run->mu */
    int code;
    int32_t max_body;
    rpc_status_t end_status;
} mqb_ptele_t;

struct mqb_prun {
    mqb_pconf_t conf;
    rpc_client_t *cl;
    rpc_channel_t **chans; /* route endpoints, route.eps order */
    size_t nchans;
    rpc_channel_t **access; /* access points (may alias chans) */
    mqc_route_t route;
    size_t *qep; /* endpoint of each usable queue */
    size_t nqep;
    mqc_msgid_gen_t idgen;
    char groups_fmt[16];

    /* pacer thread */
    mqb_pprod_t *prods;
    size_t rr;
    uint32_t total_inflight;
    size_t total_backlog;
    mqb_preq_t *retries; /* sorted by due_ns */
    uint8_t *scratch;    /* one body */
    mqc_msg_t *msgs;
    mqc_prop_t *props;
    char (*propbuf)[MQB_P_PROPS][24];
    char (*groupbuf)[16];
    mqb_preq_t *cur; /* request being encoded */
    uint64_t t0;

    /* events from the client thread to the pacer */
    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cond;
    mqb_preq_t *events;

    /* client thread */
    mq_hist_t hist;
    mqc_vlog_t *vlog;

    /* shared */
    pthread_mutex_t stats_mu;
    mq_hist_t hist_sec;    /* @locks stats_mu */
    char first_error[256]; /* @locks stats_mu */
    atomic_uint_fast64_t sent_msgs, sent_reqs, acked_msgs, acked_reqs, failed_msgs, retried,
        unsent_msgs, last_ack_ns;

    /* telemetry and termination */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    mqb_ptele_t *tele;     /* producers x nchans */
    size_t notify_pending; /* @locks mu */

    /* progress */
    uint64_t prev_acked;
    uint64_t prev_retried;
    uint64_t prev_failed;

    mqb_done_t sync;
};

static void mqb_p_usage(FILE *out)
{
    fprintf(out,
            "usage: mqbench produce (--rate R | --max) [options]\n\n"
            "  --endpoints H:P[;H:P]  access points (default 127.0.0.1:8081)\n"
            "  --topic T              topic (default BenchmarkTest; auto-created by the broker)\n"
            "  --producers N          logical producers, each with its own client id (default 4)\n"
            "  --size S               body bytes per message, 1..4m (default 1024)\n"
            "  --rate R               open loop: R messages/s in total, latency from the due time\n"
            "  --max                  closed loop: every producer keeps --inflight requests out\n"
            "  --batch B              messages per SendMessage request (default 1)\n"
            "  --duration D           how long to send: 30s, 5m, ... (default 10s)\n"
            "  --groups G             FIFO messages over message groups g0..g<G-1>\n"
            "  --inflight K           requests in flight per producer (default 32 with --max;\n"
            "                         with --rate: enough for the rate at the timeout)\n"
            "  --retries R            retries of a failed request (default 3; backoff 10ms..1s)\n"
            "  --timeout T            request timeout (default 3s)\n"
            "  --tag TAG              tag every message\n"
            "  --verify-log FILE      one line per acknowledged message:\n"
            "                         queue offset producer sequence crc32c message_id [group]\n"
            "  --no-telemetry         skip the Telemetry handshake, heartbeats and goodbye\n"
            "  --quiet                no progress line\n"
            "\nexit status: 0 every message acknowledged; 3 some failed; 1 could not start;"
            " 2 usage\n");
}

/* ------------------------------------------------------------ statistics */

static void mqb_p_error(mqb_prun_t *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keeps the first failure's description. Any thread. */
static void mqb_p_error(mqb_prun_t *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mqb_error_keep(&run->stats_mu, run->first_error, sizeof(run->first_error), fmt, ap);
    va_end(ap);
}

static void mqb_p_progress(double elapsed_s, void *arg)
{
    mqb_prun_t *run = arg;
    uint64_t acked = atomic_load(&run->acked_msgs);
    uint64_t retried = atomic_load(&run->retried);
    uint64_t failed = atomic_load(&run->failed_msgs);
    double p50, p99;
    pthread_mutex_lock(&run->stats_mu);
    p50 = (double)mq_hist_quantile(&run->hist_sec, 0.50) / 1e6;
    p99 = (double)mq_hist_quantile(&run->hist_sec, 0.99) / 1e6;
    mq_hist_init(&run->hist_sec);
    pthread_mutex_unlock(&run->stats_mu);
    uint64_t d = acked - run->prev_acked;
    fprintf(stderr,
            "produce: %" PRIu64 " acked, %" PRIu64 " msgs/s, %.2f MB/s, p50 %.2f ms, p99 %.2f ms, "
            "retries %" PRIu64 " (+%" PRIu64 "), failures %" PRIu64 " (+%" PRIu64 "), %.1f s\n",
            acked, d, (double)d * (double)run->conf.size / 1e6, p50, p99, retried,
            retried - run->prev_retried, failed, failed - run->prev_failed, elapsed_s);
    run->prev_acked = acked;
    run->prev_retried = retried;
    run->prev_failed = failed;
}

/* ---------------------------------------------------------- client thread */

/* Hands req back to the pacer. Last use of req on this thread. */
static void mqb_p_post(mqb_prun_t *run, mqb_preq_t *req)
{
    pthread_mutex_lock(&run->ev_mu);
    req->next = run->events;
    run->events = req;
    pthread_cond_signal(&run->ev_cond);
    pthread_mutex_unlock(&run->ev_mu);
}

static uint64_t mqb_p_backoff_ns(uint32_t attempt)
{
    /* The official producers' policy: 10 ms, doubling, at most 1 s. */
    uint64_t ms = 10;
    for (uint32_t i = 1; i < attempt && ms < 1000; i++) {
        ms *= 2;
    }
    return MQ_MIN(ms, 1000) * 1000000ull;
}

/* The pending messages of req failed (retriable or not): retry them later
 * or count them as failures. Runs on the client thread, or on the pacer
 * when a call could not be started. */
static void mqb_p_failed(mqb_prun_t *run, mqb_preq_t *req, bool retriable, const char *what)
{
    if (retriable && req->attempt < run->conf.retries && !mqb_interrupted) {
        req->attempt++;
        atomic_fetch_add(&run->retried, 1);
        req->retry = true;
        req->due_ns = mq_now_ns() + mqb_p_backoff_ns(req->attempt);
        MQ_LOG_DEBUG("send retry producer=%u attempt=%u why=%s", req->producer, req->attempt, what);
    } else {
        atomic_fetch_add(&run->failed_msgs, req->n);
        mqb_p_error(run, "%s (producer %u, sequence %" PRIu64 ", %s)", what, req->producer,
                    req->seq[0],
                    run->chans[req->ep] ? rpc_channel_target(run->chans[req->ep]) : "?");
        req->n = 0;
        req->retry = false;
    }
    mqb_p_post(run, req);
}

static void mqb_p_sent(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                       void *arg)
{
    mqb_preq_t *req = arg;
    mqb_prun_t *run = req->run;
    uint64_t now = mq_now_ns();
    char what[256];
    if (st != RPC_OK) {
        snprintf(what, sizeof(what), "gRPC %s: %s", rpc_status_name(st),
                 details && *details ? details : "(no details)");
        mqb_p_failed(run, req, mqc_status_retriable(st), what);
        return;
    }
    mqc_send_resp_t r;
    if (mqc_send_response_decode(resp, len, &r) != MQ_OK) {
        mqc_send_resp_fini(&r);
        mqb_p_failed(run, req, false, "undecodable SendMessageResponse");
        return;
    }
    if (r.n != req->n) {
        if (r.n == 0 && r.code != apache_rocketmq_v2_Code_OK) {
            snprintf(what, sizeof(what), "%s (%d): %s", mqc_code_name(r.code), r.code, r.message);
            mqb_p_failed(run, req, mqc_code_retriable(r.code), what);
        } else {
            snprintf(what, sizeof(what), "%zu result entries for %u messages (status %s)", r.n,
                     req->n, mqc_code_name(r.code));
            mqb_p_failed(run, req, false, what);
        }
        mqc_send_resp_fini(&r);
        return;
    }
    uint32_t acked = 0;
    uint32_t keep = 0;
    uint32_t lost = 0;
    int bad_code = 0;
    for (uint32_t i = 0; i < req->n; i++) {
        const mqc_send_entry_t *e = &r.entries[i];
        if (e->code == apache_rocketmq_v2_Code_OK) {
            acked++;
            if (run->vlog) {
                mqc_vrec_t v;
                v.queue = e->queue_id;
                v.offset = e->offset;
                v.producer = req->producer;
                v.seq = req->seq[i];
                v.crc = req->crc[i];
                memcpy(v.message_id, req->ids[i], sizeof(req->ids[i]));
                v.group[0] = '\0';
                if (run->conf.groups) {
                    snprintf(v.group, sizeof(v.group), "g%" PRIu64, req->seq[i] % run->conf.groups);
                }
                mqc_vlog_add(run->vlog, &v);
            }
            continue;
        }
        bad_code = e->code;
        if (mqc_code_retriable(e->code)) {
            /* Keep the message for the retry, in order. */
            req->seq[keep] = req->seq[i];
            req->crc[keep] = req->crc[i];
            memmove(req->ids[keep], req->ids[i], sizeof(req->ids[i]));
            keep++;
        } else {
            lost++;
            mqb_p_error(run, "%s (%d) for producer %u sequence %" PRIu64 ": %s",
                        mqc_code_name(e->code), e->code, req->producer, req->seq[i],
                        r.message[0] ? r.message : "no message");
        }
    }
    mqc_send_resp_fini(&r);
    if (acked) {
        uint64_t lat = now - req->sched_ns;
        mq_hist_add(&run->hist, lat);
        pthread_mutex_lock(&run->stats_mu);
        mq_hist_add(&run->hist_sec, lat);
        pthread_mutex_unlock(&run->stats_mu);
        atomic_fetch_add(&run->acked_msgs, acked);
        atomic_fetch_add(&run->acked_reqs, 1);
        atomic_store(&run->last_ack_ns, now);
    }
    if (lost) {
        atomic_fetch_add(&run->failed_msgs, lost);
    }
    req->n = keep;
    if (keep) {
        snprintf(what, sizeof(what), "%s (%d) after %u attempt(s)", mqc_code_name(bad_code),
                 bad_code, req->attempt + 1);
        mqb_p_failed(run, req, true, what);
        return;
    }
    req->retry = false;
    mqb_p_post(run, req);
}

/* ---------------------------------------------------------- pacer thread */

static const uint8_t *mqb_p_body(size_t i, const mqc_msg_t *m, void *arg)
{
    mqb_prun_t *run = arg;
    mqb_preq_t *req = run->cur;
    mqb_payload(req->producer, (int64_t)req->seq[i], run->scratch, m->len);
    req->crc[i] = mq_crc32c(0, run->scratch, m->len);
    return run->scratch;
}

static void mqb_p_heartbeats(mqb_prun_t *run)
{
    uint8_t *buf;
    size_t len;
    if (mqc_heartbeat_encode(&buf, &len) != MQ_OK) {
        return;
    }
    for (uint32_t p = 0; p < run->conf.producers; p++) {
        for (size_t e = 0; e < run->nchans; e++) {
            mqc_md_t md;
            mqc_md_init(&md, run->prods[p].client_id);
            rpc_channel_unary(run->chans[e], MQC_HEARTBEAT, md.md, md.n, buf, len,
                              run->conf.timeout_ms, mqb_heartbeat_cb, NULL);
        }
    }
    free(buf);
}

/* Encodes req's pending messages and starts the call on the next
 * endpoint: round-robin over the route's queues for a first attempt (FIFO:
 * the producer's own), another endpoint than the last for a retry. */
static void mqb_p_start(mqb_prun_t *run, mqb_preq_t *req)
{
    const mqb_pconf_t *c = &run->conf;
    if (req->attempt == 0 && c->groups) {
        /* FIFO: a producer's requests all go one way, in order, as the
         * official clients send a group's messages to one broker; spread
         * round-robin, requests could overtake each other in flight. */
        req->ep = run->qep[req->producer % run->nqep];
    } else if (req->attempt == 0) {
        req->ep = run->qep[run->rr++ % run->nqep];
    } else if (run->nchans > 1) {
        req->ep = (req->ep + 1) % run->nchans;
    }
    uint64_t born = mq_wall_ms();
    for (uint32_t i = 0; i < req->n; i++) {
        mqc_msg_t *m = &run->msgs[i];
        mqc_prop_t *props = &run->props[(size_t)i * MQB_P_PROPS];
        memset(m, 0, sizeof(*m));
        m->topic = c->topic;
        m->message_id = req->ids[i];
        m->tag = c->tag;
        m->born_host = mqc_hostname();
        m->born_ms = born;
        m->len = c->size;
        snprintf(run->propbuf[i][0], sizeof(run->propbuf[i][0]), "%u", req->producer);
        snprintf(run->propbuf[i][1], sizeof(run->propbuf[i][1]), "%" PRIu64, req->seq[i]);
        props[0] = (mqc_prop_t){"mqbench.producer", run->propbuf[i][0]};
        props[1] = (mqc_prop_t){"mqbench.seq", run->propbuf[i][1]};
        m->props = props;
        m->nprops = 2;
        if (c->groups) {
            /* Group k = seq mod G, so the producer's messages of one group
             * are numbered seq / G: 0, 1, 2, ... */
            snprintf(run->groupbuf[i], sizeof(run->groupbuf[i]), "g%" PRIu64,
                     req->seq[i] % c->groups);
            snprintf(run->propbuf[i][2], sizeof(run->propbuf[i][2]), "%" PRIu64,
                     req->seq[i] / c->groups);
            props[2] = (mqc_prop_t){"mqbench.gseq", run->propbuf[i][2]};
            m->nprops = 3;
            m->group = run->groupbuf[i];
            m->type = apache_rocketmq_v2_MessageType_FIFO;
        } else {
            m->type = apache_rocketmq_v2_MessageType_NORMAL;
        }
    }
    uint8_t *buf;
    size_t len;
    run->cur = req;
    mq_err_t err = mqc_send_encode(run->msgs, req->n, mqb_p_body, run, &buf, &len);
    run->cur = NULL;
    if (err != MQ_OK) {
        mqb_p_failed(run, req, false, "cannot encode the request");
        return;
    }
    mqc_md_t md;
    mqc_md_init(&md, run->prods[req->producer].client_id);
    err = rpc_channel_unary(run->chans[req->ep], MQC_SEND_MESSAGE, md.md, md.n, buf, len,
                            c->timeout_ms, mqb_p_sent, req);
    free(buf);
    if (err != MQ_OK) {
        char what[128];
        snprintf(what, sizeof(what), "call not started: %s", mq_err_str(err));
        mqb_p_failed(run, req, mq_err_retriable(err), what);
    }
}

/* A new request of producer p, due at sched_ns. */
static void mqb_p_issue(mqb_prun_t *run, uint32_t p, uint64_t sched_ns)
{
    const mqb_pconf_t *c = &run->conf;
    mqb_pprod_t *pr = &run->prods[p];
    mqb_preq_t *req = mq_calloc(1, sizeof(*req));
    req->seq = mq_malloc(c->batch * sizeof(*req->seq));
    req->crc = mq_malloc(c->batch * sizeof(*req->crc));
    req->ids = mq_malloc(c->batch * sizeof(*req->ids));
    req->run = run;
    req->producer = p;
    req->n = c->batch;
    req->sched_ns = sched_ns;
    for (uint32_t i = 0; i < c->batch; i++) {
        req->seq[i] = pr->next_seq++;
        mqc_msgid_next(&run->idgen, req->ids[i]);
    }
    pr->inflight++;
    run->total_inflight++;
    atomic_fetch_add(&run->sent_msgs, c->batch);
    atomic_fetch_add(&run->sent_reqs, 1);
    mqb_p_start(run, req);
}

static void mqb_p_req_free(mqb_preq_t *req)
{
    free(req->seq);
    free(req->crc);
    free(req->ids);
    free(req);
}

static void mqb_p_backlog_push(mqb_prun_t *run, mqb_pprod_t *pr, uint64_t sched_ns)
{
    if (pr->bl_len == pr->bl_cap) {
        size_t cap = pr->bl_cap ? pr->bl_cap * 2 : 64;
        uint64_t *nb = mq_malloc(cap * sizeof(*nb));
        for (size_t i = 0; i < pr->bl_len; i++) {
            nb[i] = pr->backlog[(pr->bl_head + i) % pr->bl_cap];
        }
        free(pr->backlog);
        pr->backlog = nb;
        pr->bl_cap = cap;
        pr->bl_head = 0;
    }
    pr->backlog[(pr->bl_head + pr->bl_len) % pr->bl_cap] = sched_ns;
    pr->bl_len++;
    run->total_backlog++;
}

static uint64_t mqb_p_backlog_pop(mqb_prun_t *run, mqb_pprod_t *pr)
{
    uint64_t t = pr->backlog[pr->bl_head];
    pr->bl_head = (pr->bl_head + 1) % pr->bl_cap;
    pr->bl_len--;
    run->total_backlog--;
    return t;
}

/* Producer p may send: from its backlog first, or (closed loop, still
 * sending) new requests, while its window has room. */
static void mqb_p_fill(mqb_prun_t *run, uint32_t p, bool sending)
{
    mqb_pprod_t *pr = &run->prods[p];
    while (pr->inflight < run->conf.inflight) {
        if (pr->bl_len) {
            mqb_p_issue(run, p, mqb_p_backlog_pop(run, pr));
        } else if (sending && run->conf.max) {
            mqb_p_issue(run, p, mq_now_ns());
        } else {
            break;
        }
    }
}

/* Drops every backlog entry (never sent): counted as unsent, or as failed
 * when the drain time ran out. */
static void mqb_p_drop_backlogs(mqb_prun_t *run, bool as_failures)
{
    uint64_t msgs = (uint64_t)run->total_backlog * run->conf.batch;
    if (msgs == 0) {
        return;
    }
    for (uint32_t p = 0; p < run->conf.producers; p++) {
        run->prods[p].bl_len = 0;
    }
    run->total_backlog = 0;
    if (as_failures) {
        atomic_fetch_add(&run->failed_msgs, msgs);
        mqb_p_error(run, "%" PRIu64 " messages still waiting for a window %llu s after the end",
                    msgs, (unsigned long long)(MQB_P_DRAIN_NS / 1000000000ull));
    } else {
        atomic_fetch_add(&run->unsent_msgs, msgs);
    }
}

static void mqb_p_retry_insert(mqb_prun_t *run, mqb_preq_t *req)
{
    mqb_preq_t **pp = &run->retries;
    while (*pp && (*pp)->due_ns <= req->due_ns) {
        pp = &(*pp)->next;
    }
    req->next = *pp;
    *pp = req;
}

static void *mqb_p_pacer(void *arg)
{
    mqb_prun_t *run = arg;
    const mqb_pconf_t *c = &run->conf;
    mq_log_thread_name("mqb-pacer");
    uint64_t t0 = run->t0;
    uint64_t end = t0 + c->duration_ms * 1000000ull;
    uint64_t drain_end = end + MQB_P_DRAIN_NS;
    double interval = c->max ? 0 : (double)c->batch * 1e9 / (double)c->rate;
    uint64_t k = 0;
    uint64_t next_sched = t0;
    uint64_t next_hb = t0 + MQB_P_HEARTBEAT_NS;
    bool sending = true;
    if (c->max) {
        for (uint32_t p = 0; p < c->producers; p++) {
            mqb_p_fill(run, p, true);
        }
    }
    for (;;) {
        uint64_t now = mq_now_ns();
        /* Open loop: every request due before the end is owed, even when
         * the pacer wakes after the end. */
        if (sending && (mqb_interrupted || (c->max ? now >= end : next_sched >= end))) {
            sending = false;
        }
        if (mqb_interrupted) {
            mqb_p_drop_backlogs(run, false);
        } else if (now >= drain_end) {
            mqb_p_drop_backlogs(run, true);
        }
        /* Completions and retries posted by the client thread. */
        pthread_mutex_lock(&run->ev_mu);
        mqb_preq_t *ev = run->events;
        run->events = NULL;
        pthread_mutex_unlock(&run->ev_mu);
        while (ev) {
            mqb_preq_t *next = ev->next;
            if (ev->retry) {
                mqb_p_retry_insert(run, ev);
            } else {
                uint32_t p = ev->producer;
                run->prods[p].inflight--;
                run->total_inflight--;
                mqb_p_req_free(ev);
                mqb_p_fill(run, p, sending);
            }
            ev = next;
        }
        while (run->retries && run->retries->due_ns <= now) {
            mqb_preq_t *req = run->retries;
            run->retries = req->next;
            mqb_p_start(run, req);
        }
        if (sending && !c->max) {
            while (next_sched <= now && next_sched < end) {
                uint32_t p = (uint32_t)(k % c->producers);
                mqb_pprod_t *pr = &run->prods[p];
                if (pr->inflight < c->inflight && pr->bl_len == 0) {
                    mqb_p_issue(run, p, next_sched);
                } else {
                    mqb_p_backlog_push(run, pr, next_sched);
                }
                k++;
                next_sched = t0 + (uint64_t)((double)k * interval);
            }
        }
        if (c->telemetry && now >= next_hb) {
            mqb_p_heartbeats(run);
            next_hb = now + MQB_P_HEARTBEAT_NS;
        }
        if (!sending && run->total_inflight == 0 && run->total_backlog == 0 && !run->retries) {
            break;
        }
        /* Sleep until the next due request, retry, heartbeat or deadline,
         * an event, or 100 ms (to notice an interrupt). */
        uint64_t wake = now + 100000000ull;
        if (sending) {
            wake = MQ_MIN(wake, end);
            if (!c->max) {
                wake = MQ_MIN(wake, next_sched);
            }
        } else {
            wake = MQ_MIN(wake, drain_end);
        }
        if (run->retries) {
            wake = MQ_MIN(wake, run->retries->due_ns);
        }
        if (c->telemetry) {
            wake = MQ_MIN(wake, next_hb);
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

/* QueryRoute on the access points in turn until one answers OK with
 * queues, for up to MQB_P_ROUTE_WAIT_MS; a code that no retry can change
 * (ILLEGAL_TOPIC, ...) ends it at once. */
static bool mqb_p_route(mqb_prun_t *run)
{
    const mqb_pconf_t *c = &run->conf;
    uint8_t *req;
    size_t len;
    if (mqc_route_request_encode(c->topic, &c->access, &req, &len) != MQ_OK) {
        fprintf(stderr, "mqbench produce: cannot encode QueryRoute\n");
        return false;
    }
    char last[512] = "no answer";
    uint64_t deadline = mq_now_ms() + MQB_P_ROUTE_WAIT_MS;
    bool ok = false;
    bool fatal = false;
    for (size_t attempt = 0; !ok && !mqb_interrupted; attempt++) {
        size_t a = attempt % c->access.n;
        mqc_route_t rt;
        if (mqb_route_query(run->access[a], c->access.ep[a], run->prods[0].client_id, req, len,
                            c->timeout_ms, &rt, &fatal, last, sizeof(last))) {
            mqc_route_fini(&run->route);
            run->route = rt;
            ok = true;
        }
        if (!ok) {
            if (fatal || mq_now_ms() >= deadline) {
                break;
            }
            usleep(200 * 1000);
        }
    }
    free(req);
    if (!ok) {
        fprintf(stderr, "mqbench produce: no route for topic %s: %s\n", c->topic, last);
    }
    return ok;
}

/* Channels to the route's brokers, reusing an access point's channel for
 * the same endpoint. */
static bool mqb_p_channels(mqb_prun_t *run)
{
    const mqc_route_t *rt = &run->route;
    run->nchans = rt->eps.n;
    run->chans = mq_calloc(run->nchans, sizeof(*run->chans));
    for (size_t i = 0; i < rt->eps.n; i++) {
        for (size_t a = 0; a < run->conf.access.n; a++) {
            if (strcmp(run->conf.access.ep[a], rt->eps.ep[i]) == 0) {
                run->chans[i] = run->access[a];
            }
        }
        if (!run->chans[i] && rpc_channel_new(run->cl, rt->eps.ep[i], &run->chans[i]) != MQ_OK) {
            fprintf(stderr, "mqbench produce: cannot open a channel to %s\n", rt->eps.ep[i]);
            return false;
        }
    }
    run->qep = mq_calloc(rt->nqueues, sizeof(*run->qep));
    unsigned want = run->conf.groups ? apache_rocketmq_v2_MessageType_FIFO
                                     : apache_rocketmq_v2_MessageType_NORMAL;
    bool accepted = false;
    for (size_t q = 0; q < rt->nqueues; q++) {
        if (rt->queues[q].ep_index != SIZE_MAX) {
            run->qep[run->nqep++] = rt->queues[q].ep_index;
            accepted |= rt->queues[q].types == 0 || (rt->queues[q].types & (1u << want)) != 0;
        }
    }
    if (!accepted) {
        fprintf(stderr,
                "mqbench produce: warning: no queue of %s accepts %s messages (the route's "
                "accept_message_types); the broker may refuse them\n",
                run->conf.topic, run->conf.groups ? "FIFO" : "NORMAL");
    }
    return true;
}

static void mqb_p_tele_msg(const uint8_t *msg, size_t len, void *arg)
{
    mqb_ptele_t *t = arg;
    mqc_settings_reply_t r;
    if (mqc_telemetry_decode(msg, len, &r) != MQ_OK) {
        MQ_LOG_WARN("undecodable Telemetry command");
        return;
    }
    pthread_mutex_lock(&t->run->mu);
    if (r.code && !t->settings) {
        t->code = r.code;
    }
    if (r.has_settings && !t->settings) {
        t->settings = true;
        t->max_body = r.max_body_size;
    }
    pthread_cond_broadcast(&t->run->cond);
    pthread_mutex_unlock(&t->run->mu);
}

static void mqb_p_tele_end(rpc_status_t st, const char *details, void *arg)
{
    mqb_ptele_t *t = arg;
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

/* Opens every producer's Telemetry stream to every broker, sends its
 * settings and waits for the server's. Checks --size against the maximum
 * body size the brokers announce. */
static bool mqb_p_telemetry(mqb_prun_t *run)
{
    const mqb_pconf_t *c = &run->conf;
    size_t nt = (size_t)c->producers * run->nchans;
    run->tele = mq_calloc(nt, sizeof(*run->tele));
    uint8_t *settings;
    size_t slen;
    if (mqc_settings_encode(c->topic, &c->access, c->timeout_ms, &settings, &slen) != MQ_OK) {
        fprintf(stderr, "mqbench produce: cannot encode the Telemetry settings\n");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < nt && ok; i++) {
        mqb_ptele_t *t = &run->tele[i];
        t->run = run;
        uint32_t p = (uint32_t)(i / run->nchans);
        size_t e = i % run->nchans;
        mqc_md_t md;
        mqc_md_init(&md, run->prods[p].client_id);
        if (rpc_channel_bidi(run->chans[e], MQC_TELEMETRY, md.md, md.n, 0, mqb_p_tele_msg,
                             mqb_p_tele_end, t, &t->bidi) != MQ_OK) {
            t->bidi = NULL;
            fprintf(stderr, "mqbench produce: cannot open Telemetry to %s\n", run->route.eps.ep[e]);
            ok = false;
            break;
        }
        if (rpc_bidi_write(t->bidi, settings, slen) != MQ_OK) {
            fprintf(stderr, "mqbench produce: Telemetry to %s closed at once\n",
                    run->route.eps.ep[e]);
            ok = false;
        }
    }
    free(settings);
    uint64_t deadline = mq_now_ms() + MQB_P_TELEMETRY_WAIT_MS;
    pthread_mutex_lock(&run->mu);
    while (ok) {
        size_t waiting = 0;
        for (size_t i = 0; i < nt && ok; i++) {
            mqb_ptele_t *t = &run->tele[i];
            const char *ep = run->route.eps.ep[i % run->nchans];
            if (t->code && t->code != apache_rocketmq_v2_Code_OK) {
                fprintf(stderr, "mqbench produce: Telemetry to %s refused: %s (%d)\n", ep,
                        mqc_code_name(t->code), t->code);
                ok = false;
            } else if (!t->settings && t->ended) {
                fprintf(stderr, "mqbench produce: Telemetry to %s ended without settings: %s\n", ep,
                        rpc_status_name(t->end_status));
                ok = false;
            } else if (t->settings && t->max_body > 0 && c->size > (uint64_t)t->max_body) {
                fprintf(stderr,
                        "mqbench produce: --size %" PRIu64 " exceeds the maximum body size "
                        "%d of %s\n",
                        c->size, t->max_body, ep);
                ok = false;
            } else if (!t->settings) {
                waiting++;
            }
        }
        if (!ok || waiting == 0) {
            break;
        }
        if (mq_now_ms() >= deadline || mqb_interrupted) {
            fprintf(stderr,
                    "mqbench produce: %zu Telemetry stream(s) got no settings in %d s "
                    "(--no-telemetry skips the handshake)\n",
                    waiting, MQB_P_TELEMETRY_WAIT_MS / 1000);
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

static void mqb_p_notify_cb(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                            void *arg)
{
    MQ_UNUSED(st);
    MQ_UNUSED(details);
    MQ_UNUSED(resp);
    MQ_UNUSED(len);
    mqb_prun_t *run = arg;
    pthread_mutex_lock(&run->mu);
    run->notify_pending--;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->mu);
}

/* Says goodbye as the official clients do: half-closes the Telemetry
 * streams and sends NotifyClientTermination per producer and broker,
 * waiting up to a second for the answers. */
static void mqb_p_goodbye(mqb_prun_t *run)
{
    size_t nt = (size_t)run->conf.producers * run->nchans;
    for (size_t i = 0; i < nt; i++) {
        if (run->tele[i].bidi) {
            rpc_bidi_half_close(run->tele[i].bidi);
        }
    }
    uint8_t *buf;
    size_t len;
    if (mqc_notify_encode(&buf, &len) == MQ_OK) {
        for (uint32_t p = 0; p < run->conf.producers; p++) {
            for (size_t e = 0; e < run->nchans; e++) {
                mqc_md_t md;
                mqc_md_init(&md, run->prods[p].client_id);
                pthread_mutex_lock(&run->mu);
                run->notify_pending++;
                pthread_mutex_unlock(&run->mu);
                if (rpc_channel_unary(run->chans[e], MQC_NOTIFY_TERMINATION, md.md, md.n, buf, len,
                                      1000, mqb_p_notify_cb, run) != MQ_OK) {
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
    bool waiting = true;
    while (waiting) {
        waiting = run->notify_pending > 0;
        for (size_t i = 0; i < nt && !waiting; i++) {
            waiting = run->tele[i].bidi && !run->tele[i].ended;
        }
        if (waiting && pthread_cond_timedwait(&run->cond, &run->mu, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&run->mu);
}

/* Frees everything; rpc first, so that no callback runs afterwards. */
static void mqb_p_teardown(mqb_prun_t *run)
{
    size_t nt = run->tele ? (size_t)run->conf.producers * run->nchans : 0;
    for (size_t i = 0; i < nt; i++) {
        if (run->tele[i].bidi) {
            rpc_bidi_free(run->tele[i].bidi);
        }
    }
    for (size_t i = 0; i < run->nchans; i++) {
        bool is_access = false;
        for (size_t a = 0; a < run->conf.access.n; a++) {
            is_access |= run->chans[i] == run->access[a];
        }
        if (run->chans[i] && !is_access) {
            rpc_channel_free(run->chans[i]);
        }
    }
    for (size_t a = 0; a < run->conf.access.n; a++) {
        if (run->access[a]) {
            rpc_channel_free(run->access[a]);
        }
    }
    if (run->cl) {
        rpc_client_free(run->cl);
    }
    /* Every call is over: requests the pacer never saw again are none,
     * since it only stops once nothing is in flight. */
    free(run->tele);
    free(run->chans);
    free(run->access);
    free(run->qep);
    mqc_route_fini(&run->route);
    for (uint32_t p = 0; p < run->conf.producers; p++) {
        free(run->prods[p].backlog);
    }
    free(run->prods);
    free(run->scratch);
    free(run->msgs);
    free(run->props);
    free(run->propbuf);
    free(run->groupbuf);
    pthread_mutex_destroy(&run->ev_mu);
    pthread_cond_destroy(&run->ev_cond);
    pthread_mutex_destroy(&run->stats_mu);
    pthread_mutex_destroy(&run->mu);
    pthread_cond_destroy(&run->cond);
    mqb_done_fini(&run->sync);
}

/* ----------------------------------------------------------------- report */

static void mqb_p_report(mqb_prun_t *run, double secs)
{
    const mqb_pconf_t *c = &run->conf;
    uint64_t acked = atomic_load(&run->acked_msgs);
    uint64_t failed = atomic_load(&run->failed_msgs);
    uint64_t unsent = atomic_load(&run->unsent_msgs);
    char mode[64];
    if (c->max) {
        snprintf(mode, sizeof(mode), "closed loop (--max)");
    } else {
        snprintf(mode, sizeof(mode), "open loop at %" PRIu64 " msgs/s", c->rate);
    }
    printf("mqbench produce: topic %s, %u producer(s), %zu broker(s), %" PRIu64
           " B bodies, batch %u, %s, inflight %u per producer, %.3f s\n",
           c->topic, c->producers, run->nchans, c->size, c->batch, mode, c->inflight, secs);
    printf("sent: %" PRIu64 " messages in %" PRIu64 " requests; acked: %" PRIu64
           " messages (%" PRIu64 " responses)\n",
           atomic_load(&run->sent_msgs), atomic_load(&run->sent_reqs), acked,
           atomic_load(&run->acked_reqs));
    printf("throughput: %.0f msgs/s, %.2f MB/s\n", secs > 0 ? (double)acked / secs : 0.0,
           secs > 0 ? (double)acked * (double)c->size / secs / 1e6 : 0.0);
    const mq_hist_t *h = &run->hist;
    printf("send latency (ms): p50 %.3f  p99 %.3f  p999 %.3f  max %.3f  mean %.3f  (n=%" PRIu64
           ")\n",
           (double)mq_hist_quantile(h, 0.50) / 1e6, (double)mq_hist_quantile(h, 0.99) / 1e6,
           (double)mq_hist_quantile(h, 0.999) / 1e6, (double)(h->count ? h->max : 0) / 1e6,
           h->count ? (double)h->sum / (double)h->count / 1e6 : 0.0, h->count);
    printf("retries: %" PRIu64 "  failures: %" PRIu64, atomic_load(&run->retried), failed);
    if (unsent) {
        printf("  unsent (interrupted): %" PRIu64, unsent);
    }
    printf("\n");
    if (run->first_error[0]) {
        printf("first failure: %s\n", run->first_error);
    }
}

/* ------------------------------------------------------------------ main */

int mqb_produce_main(int argc, char **argv)
{
    static struct option longopts[] = {
        {"endpoints", required_argument, NULL, 'n'},
        {"topic", required_argument, NULL, 't'},
        {"producers", required_argument, NULL, 'P'},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"max", no_argument, NULL, 'M'},
        {"batch", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"groups", required_argument, NULL, 'g'},
        {"verify-log", required_argument, NULL, 'V'},
        {"inflight", required_argument, NULL, 'k'},
        {"retries", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 'T'},
        {"tag", required_argument, NULL, 'G'},
        {"no-telemetry", no_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Two histograms make the run large: on the heap. */
    mqb_prun_t *run = mq_calloc(1, sizeof(*run));
    mqb_pconf_t *c = &run->conf;
    const char *endpoints = "127.0.0.1:8081";
    c->topic = "BenchmarkTest";
    c->producers = 4;
    c->size = 1024;
    c->batch = 1;
    c->duration_ms = 10000;
    c->retries = 3;
    c->timeout_ms = 3000;
    c->telemetry = true;
    bool rate_set = false;
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
        case 'P':
            c->producers = (uint32_t)mqb_opt_num(MQB_PCMD, "--producers", optarg, 1, 10000);
            break;
        case 's':
            c->size = mqb_opt_num(MQB_PCMD, "--size", optarg, 1, 4ull << 20);
            break;
        case 'r':
            c->rate = mqb_opt_num(MQB_PCMD, "--rate", optarg, 1, 100000000);
            rate_set = true;
            break;
        case 'M':
            c->max = true;
            break;
        case 'b':
            c->batch = (uint32_t)mqb_opt_num(MQB_PCMD, "--batch", optarg, 1, 1024);
            break;
        case 'd':
            c->duration_ms =
                mqb_opt_duration_ms(MQB_PCMD, "--duration", optarg, 1, 30ull * 86400000);
            break;
        case 'g':
            c->groups = (uint32_t)mqb_opt_num(MQB_PCMD, "--groups", optarg, 1, 1000000);
            break;
        case 'V':
            c->verify_log = optarg;
            break;
        case 'k':
            c->inflight = (uint32_t)mqb_opt_num(MQB_PCMD, "--inflight", optarg, 1, 65536);
            break;
        case 'R':
            c->retries = (uint32_t)mqb_opt_num(MQB_PCMD, "--retries", optarg, 0, 100);
            break;
        case 'T':
            c->timeout_ms =
                (uint32_t)mqb_opt_duration_ms(MQB_PCMD, "--timeout", optarg, 1, 3600000);
            break;
        case 'G':
            c->tag = optarg;
            break;
        case 'N':
            c->telemetry = false;
            break;
        case 'q':
            c->quiet = true;
            break;
        case 'h':
            mqb_p_usage(stdout);
            free(run);
            return 0;
        default:
            mqb_p_usage(stderr);
            free(run);
            return 2;
        }
    }
    if (optind < argc) {
        mqb_usage_error(MQB_PCMD, "unexpected argument '%s'", argv[optind]);
    }
    if (rate_set == c->max) {
        mqb_usage_error(MQB_PCMD, "need exactly one of --rate R and --max");
    }
    char why[256];
    if (mqc_eps_parse(endpoints, &c->access, why, sizeof(why)) != MQ_OK) {
        mqb_usage_error(MQB_PCMD, "--endpoints: %s", why);
    }
    if (c->tag && (!*c->tag || strchr(c->tag, '|'))) {
        mqb_usage_error(MQB_PCMD, "--tag must be non-empty and without '|'");
    }
    if ((uint64_t)c->batch * (c->size + MQB_P_MSG_OVERHEAD) > MQC_MAX_REQUEST_BYTES) {
        mqb_usage_error(MQB_PCMD,
                        "a request of %u x %" PRIu64 " B exceeds the %u MiB gRPC message limit",
                        c->batch, c->size, MQC_MAX_REQUEST_BYTES >> 20);
    }
    if (c->inflight == 0) {
        if (c->max) {
            c->inflight = 32;
        } else {
            /* Enough for the producer's share of the rate even if every
             * request took the whole timeout. */
            double per = (double)c->rate / c->batch / c->producers * c->timeout_ms / 1000.0;
            c->inflight = (uint32_t)MQ_MIN(65536.0, MQ_MAX(32.0, ceil(per)));
        }
    }
    mq_log_level = MQ_LOG_LVL_WARN;

    pthread_mutex_init(&run->ev_mu, NULL);
    mqb_cond_init_mono(&run->ev_cond);
    pthread_mutex_init(&run->stats_mu, NULL);
    pthread_mutex_init(&run->mu, NULL);
    mqb_cond_init_mono(&run->cond);
    mqb_done_init(&run->sync, !c->quiet);
    mqb_done_set_printer(&run->sync, mqb_p_progress, run);
    mq_hist_init(&run->hist);
    mq_hist_init(&run->hist_sec);
    mqc_msgid_gen_init(&run->idgen);
    run->prods = mq_calloc(c->producers, sizeof(*run->prods));
    for (uint32_t p = 0; p < c->producers; p++) {
        mqc_client_id_make(run->prods[p].client_id, sizeof(run->prods[p].client_id), p);
    }
    run->scratch = mq_malloc(c->size);
    run->msgs = mq_calloc(c->batch, sizeof(*run->msgs));
    run->props = mq_calloc((size_t)c->batch * MQB_P_PROPS, sizeof(*run->props));
    run->propbuf = mq_calloc(c->batch, sizeof(*run->propbuf));
    run->groupbuf = mq_calloc(c->batch, sizeof(*run->groupbuf));
    run->access = mq_calloc(c->access.n, sizeof(*run->access));

    mqb_signals_catch();

    int code = 0;
    if (!mqb_rpc_open(MQB_PCMD, &c->access, &run->cl, run->access) || !mqb_p_route(run) ||
        !mqb_p_channels(run)) {
        code = 1;
        goto out;
    }
    if (c->telemetry && !mqb_p_telemetry(run)) {
        code = 1;
        goto out;
    }
    if (c->verify_log) {
        mq_err_t err = mqc_vlog_open(c->verify_log, &run->vlog);
        if (err != MQ_OK) {
            fprintf(stderr, "mqbench produce: cannot create %s: %s\n", c->verify_log,
                    mq_err_str(err));
            run->vlog = NULL;
            code = 1;
            goto out;
        }
    }
    if (!c->quiet) {
        fprintf(stderr, "produce: topic %s, %zu queue(s) on %zu broker(s), %u producer(s), %s\n",
                c->topic, run->route.nqueues, run->nchans, c->producers,
                c->max ? "closed loop (--max)" : "open loop (--rate)");
    }
    run->t0 = mq_now_ns();
    atomic_store(&run->last_ack_ns, run->t0);
    pthread_t pacer;
    if (pthread_create(&pacer, NULL, mqb_p_pacer, run) != 0) {
        fprintf(stderr, "mqbench produce: cannot start the pacer thread\n");
        code = 1;
        goto out;
    }
    mqb_done_wait(&run->sync, "produce");
    pthread_join(pacer, NULL);
    /* Throughput counts up to the last acknowledgement; without one, the
     * whole run. */
    uint64_t last = atomic_load(&run->acked_msgs) ? atomic_load(&run->last_ack_ns) : mq_now_ns();
    double secs = (double)(last - run->t0) / 1e9;
    if (c->telemetry) {
        mqb_p_goodbye(run);
    }
    mqb_p_report(run, secs);
    if (atomic_load(&run->failed_msgs) > 0) {
        code = 3;
    }
    if (run->vlog) {
        uint64_t lines = mqc_vlog_lines(run->vlog);
        mq_err_t err = mqc_vlog_close(run->vlog);
        run->vlog = NULL;
        if (err != MQ_OK) {
            fprintf(stderr, "mqbench produce: verify log %s: %s\n", c->verify_log, mq_err_str(err));
            code = code ? code : 1;
        } else {
            printf("verify log: %" PRIu64 " lines in %s\n", lines, c->verify_log);
        }
    }
out:
    mqc_vlog_close(run->vlog);
    mqb_p_teardown(run);
    mqb_signals_restore();
    free(run);
    return code;
}
