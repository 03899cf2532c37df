/*
 * mqb_common: helpers shared by mqbench subcommands; the RocketMQ benches
 * (produce, consume) also share their signal handling, rpc start-up and
 * waiting helpers here.
 */
#include "mqb_common.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

bool mqb_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) {
        return false;
    }
    uint64_t mul = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024ull * 1024 * 1024;
        end++;
        break;
    default:
        return false;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') {
        end++;
    }
    if (*end != '\0') {
        return false;
    }
    *out = (uint64_t)v * mul;
    return true;
}

uint64_t mqb_opt_num(const char *cmd, const char *name, const char *arg, uint64_t min, uint64_t max)
{
    uint64_t v;
    if (!mqb_parse_size(arg, &v) || v < min || v > max) {
        mqb_usage_error(cmd, "bad %s '%s' (expected %llu..%llu)", name, arg,
                        (unsigned long long)min, (unsigned long long)max);
    }
    return v;
}

uint64_t mqb_opt_duration_ms(const char *cmd, const char *name, const char *arg, uint64_t min_ms,
                             uint64_t max_ms)
{
    char *end;
    double v = strtod(arg, &end);
    double mul = 1000;
    if (end == arg || v < 0) {
        mqb_usage_error(cmd, "bad %s '%s' (expected e.g. 500ms, 30s, 5m, 1h)", name, arg);
    }
    if (strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "") == 0 || strcmp(end, "s") == 0) {
        mul = 1000;
    } else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) {
        mul = 60000;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600000;
    } else {
        mqb_usage_error(cmd, "bad %s '%s' (expected e.g. 500ms, 30s, 5m, 1h)", name, arg);
    }
    double ms = v * mul;
    if (ms < (double)min_ms || ms > (double)max_ms) {
        mqb_usage_error(cmd, "bad %s '%s' (expected %llu ms..%llu ms)", name, arg,
                        (unsigned long long)min_ms, (unsigned long long)max_ms);
    }
    return (uint64_t)ms;
}

void mqb_payload(uint64_t ledger_id, int64_t entry_id, uint8_t *buf, size_t len)
{
    uint64_t state = mq_mix64(ledger_id * 0x9E3779B97F4A7C15ull ^ (uint64_t)entry_id);
    size_t i = 0;
    while (i + 8 <= len) {
        state = mq_mix64(state);
        memcpy(buf + i, &state, 8);
        i += 8;
    }
    if (i < len) {
        state = mq_mix64(state);
        memcpy(buf + i, &state, len - i);
    }
}

void mqb_print_latency(const char *label, const mq_hist_t *h)
{
    printf("%s latency (us): p50 %.0f  p99 %.0f  p999 %.0f  max %.0f  mean %.0f  (n=%llu)\n", label,
           (double)mq_hist_quantile(h, 0.50) / 1e3, (double)mq_hist_quantile(h, 0.99) / 1e3,
           (double)mq_hist_quantile(h, 0.999) / 1e3, (double)(h->count ? h->max : 0) / 1e3,
           h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0, (unsigned long long)h->count);
}

void mqb_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mqbench %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see mqbench %s --help)\n", cmd);
    exit(2);
}

void mqb_done_init(mqb_done_t *d, bool show_progress)
{
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->done = false;
    d->show_progress = show_progress;
    d->progress = 0;
    d->printer = NULL;
    d->printer_arg = NULL;
}

void mqb_done_set_printer(mqb_done_t *d, mqb_progress_cb printer, void *arg)
{
    d->printer = printer;
    d->printer_arg = arg;
}

void mqb_done_fini(mqb_done_t *d)
{
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
}

void mqb_done_progress(mqb_done_t *d, uint64_t n)
{
    pthread_mutex_lock(&d->lock);
    d->progress = n;
    pthread_mutex_unlock(&d->lock);
}

void mqb_done_set(mqb_done_t *d)
{
    pthread_mutex_lock(&d->lock);
    d->done = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

void mqb_done_wait(mqb_done_t *d, const char *what)
{
    uint64_t t0 = mq_now_ns();
    uint64_t last = 0;
    pthread_mutex_lock(&d->lock);
    while (!d->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        if (d->show_progress && !d->done && d->printer) {
            d->printer((double)(mq_now_ns() - t0) / 1e9, d->printer_arg);
        } else if (d->show_progress && !d->done) {
            fprintf(stderr, "%s: %" PRIu64 " done, %" PRIu64 "/s, %.1f s\n", what, d->progress,
                    d->progress - last, (double)(mq_now_ns() - t0) / 1e9);
            last = d->progress;
        }
    }
    d->done = false;
    pthread_mutex_unlock(&d->lock);
}

/* --- the RocketMQ benches (produce, consume) ------------------------------ */

volatile sig_atomic_t mqb_interrupted;

static void mqb_on_signal(int sig)
{
    MQ_UNUSED(sig);
    mqb_interrupted = 1;
}

void mqb_signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = mqb_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    mqb_interrupted = 0;
}

void mqb_signals_restore(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

void mqb_cond_init_mono(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

void mqb_deadline(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void mqb_error_keep(pthread_mutex_t *mu, char *first, size_t cap, const char *fmt, va_list ap)
{
    pthread_mutex_lock(mu);
    if (first[0] == '\0') {
        vsnprintf(first, cap, fmt, ap);
    }
    pthread_mutex_unlock(mu);
}

bool mqb_rpc_open(const char *cmd, const mqc_eps_t *access, rpc_client_t **cl,
                  rpc_channel_t **chans)
{
    if (rpc_client_new(cl) != MQ_OK) {
        fprintf(stderr, "mqbench %s: cannot start the rpc client\n", cmd);
        *cl = NULL;
        return false;
    }
    for (size_t a = 0; a < access->n; a++) {
        if (rpc_channel_new(*cl, access->ep[a], &chans[a]) != MQ_OK) {
            fprintf(stderr, "mqbench %s: cannot open a channel to %s\n", cmd, access->ep[a]);
            chans[a] = NULL;
            return false;
        }
    }
    return true;
}

bool mqb_route_query(rpc_channel_t *ch, const char *ep, const char *client_id, const uint8_t *req,
                     size_t len, uint32_t timeout_ms, mqc_route_t *rt, bool *fatal, char *why,
                     size_t why_cap)
{
    *fatal = false;
    mqc_md_t md;
    mqc_md_init(&md, client_id);
    rpc_status_t st;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    char details[256] = "";
    mq_err_t err = rpc_channel_unary_sync(ch, MQC_QUERY_ROUTE, md.md, md.n, req, len, timeout_ms,
                                          &st, &resp, &rlen, details, sizeof(details));
    bool ok = false;
    if (err != MQ_OK) {
        snprintf(why, why_cap, "%s: call not started: %s", ep, mq_err_str(err));
    } else if (st != RPC_OK) {
        snprintf(why, why_cap, "%s: gRPC %s: %s", ep, rpc_status_name(st), details);
    } else {
        int code;
        char msg[160];
        mqc_route_t got;
        if (mqc_route_decode(resp, rlen, &code, msg, sizeof(msg), &got) != MQ_OK) {
            snprintf(why, why_cap, "%s: undecodable QueryRouteResponse", ep);
        } else if (code != apache_rocketmq_v2_Code_OK) {
            snprintf(why, why_cap, "%s: %s (%d): %s", ep, mqc_code_name(code), code, msg);
            /* A topic being created may appear; a bad request will not get
             * better. */
            *fatal = code != apache_rocketmq_v2_Code_TOPIC_NOT_FOUND && !mqc_code_retriable(code);
        } else if (got.eps.n == 0) {
            snprintf(why, why_cap, "%s: the route has no queue with a broker endpoint", ep);
        } else {
            *rt = got;
            memset(&got, 0, sizeof(got));
            ok = true;
        }
        mqc_route_fini(&got);
    }
    free(resp);
    return ok;
}

void mqb_heartbeat_cb(rpc_status_t st, const char *details, const uint8_t *resp, size_t len,
                      void *arg)
{
    MQ_UNUSED(resp);
    MQ_UNUSED(len);
    MQ_UNUSED(arg);
    if (st != RPC_OK) {
        MQ_LOG_DEBUG("heartbeat failed status=%s details=%s", rpc_status_name(st),
                     details ? details : "");
    }
}
