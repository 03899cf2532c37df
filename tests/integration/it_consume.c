/*
 * it_consume: see it_consume.h.
 */
#include "it_consume.h"

#include <CUnit/CUnit.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"
#include "mq_test.h"
#include "mq_util.h"

#define IT_CONS_TIMEOUT_MS 5000

bool it_cons_open(it_cons_t *k, const char *endpoint)
{
    memset(k, 0, sizeof(*k));
    mqc_client_id_make(k->client_id, sizeof(k->client_id), 0);
    if (rpc_client_new(&k->cl) != MQ_OK) {
        k->cl = NULL;
        return false;
    }
    if (rpc_channel_new(k->cl, endpoint, &k->ch) != MQ_OK) {
        k->ch = NULL;
        it_cons_close(k);
        return false;
    }
    return true;
}

void it_cons_close(it_cons_t *k)
{
    if (k->ch) {
        rpc_channel_free(k->ch);
        k->ch = NULL;
    }
    if (k->cl) {
        rpc_client_free(k->cl);
        k->cl = NULL;
    }
}

int it_cons_send(it_cons_t *k, const char *topic, const char *body, const char *tag,
                 const char *group, char *id)
{
    static mqc_msgid_gen_t gen;
    static bool gen_ready;
    if (!gen_ready) {
        mqc_msgid_gen_init(&gen);
        gen_ready = true;
    }
    char mid[MQC_MSGID_LEN + 1];
    mqc_msgid_next(&gen, mid);
    if (id) {
        memcpy(id, mid, sizeof(mid));
    }
    mqc_msg_t m = {
        .topic = topic,
        .message_id = mid,
        .tag = tag,
        .key = "it-key",
        .group = group,
        .born_host = mqc_hostname(),
        .born_ms = mq_wall_ms(),
        .body = (const uint8_t *)body,
        .len = strlen(body),
    };
    uint8_t *req;
    size_t len;
    if (mqc_send_encode(&m, 1, NULL, NULL, &req, &len) != MQ_OK) {
        return INT32_MIN;
    }
    mqc_md_t md;
    mqc_md_init(&md, k->client_id);
    rpc_status_t st;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    mq_err_t err = rpc_channel_unary_sync(k->ch, MQC_SEND_MESSAGE, md.md, md.n, req, len,
                                          IT_CONS_TIMEOUT_MS, &st, &resp, &rlen, NULL, 0);
    free(req);
    if (err != MQ_OK) {
        return INT32_MIN;
    }
    if (st != RPC_OK) {
        return -(int)st;
    }
    mqc_send_resp_t r;
    int code = INT32_MIN;
    if (mqc_send_response_decode(resp, rlen, &r) == MQ_OK) {
        code = r.n == 1 ? r.entries[0].code : r.code;
    }
    mqc_send_resp_fini(&r);
    free(resp);
    return code;
}

int it_cons_receive(it_cons_t *k, const char *group, const char *topic, int batch,
                    int64_t invisible_ms, int64_t poll_ms, uint32_t deadline_ms,
                    mqc_recv_result_t *res)
{
    mqc_recv_req_t q = {
        .group = group,
        .topic = topic,
        .queue_id = 0,
        .filter = "*",
        .batch = batch,
        .invisible_ms = invisible_ms,
        .poll_ms = poll_ms,
    };
    if (mqc_receive_sync(k->ch, k->client_id, &q, deadline_ms, res) != MQ_OK) {
        return INT32_MIN;
    }
    return mqc_recv_result_code(res);
}

int it_cons_ack(it_cons_t *k, const char *group, const char *topic, const char *message_id,
                const char *handle)
{
    mqc_ack_entry_t e = {message_id, handle};
    int code = 0;
    int top = mqc_ack_sync(k->ch, k->client_id, group, topic, &e, 1, IT_CONS_TIMEOUT_MS, &code);
    return top < 0 || code == 0 ? top : code;
}

typedef struct it_cons_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    rpc_status_t st;
    int code;
    bool has_code;
} it_cons_wait_t;

static void it_cons_raw_msg(const uint8_t *msg, size_t len, void *arg)
{
    it_cons_wait_t *w = arg;
    mqc_recv_frame_t f;
    memset(&f, 0, sizeof(f));
    if (!w->has_code && mqc_recv_frame_decode(msg, len, &f) == MQ_OK &&
        f.kind == MQC_FRAME_STATUS) {
        w->code = f.code;
        w->has_code = true;
    }
    mqc_recv_frame_fini(&f);
}

static void it_cons_raw_end(rpc_status_t st, const char *details, void *arg)
{
    MQ_UNUSED(details);
    it_cons_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

int it_cons_raw(it_cons_t *k, const char *method, const void *req, size_t len, bool stream)
{
    mqc_md_t md;
    mqc_md_init(&md, k->client_id);
    if (!stream) {
        rpc_status_t st;
        uint8_t *resp = NULL;
        size_t rlen = 0;
        if (rpc_channel_unary_sync(k->ch, method, md.md, md.n, req, len, IT_CONS_TIMEOUT_MS, &st,
                                   &resp, &rlen, NULL, 0) != MQ_OK) {
            return INT32_MIN;
        }
        int code = -(int)st;
        char msg[160];
        if (st == RPC_OK && mqc_status_decode(resp, rlen, &code, msg, sizeof(msg)) != MQ_OK) {
            code = INT32_MIN;
        }
        free(resp);
        return code;
    }
    it_cons_wait_t w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    int code = INT32_MIN;
    if (rpc_channel_server_stream(k->ch, method, md.md, md.n, req, len, IT_CONS_TIMEOUT_MS,
                                  it_cons_raw_msg, it_cons_raw_end, &w) == MQ_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cond, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        code = w.st != RPC_OK ? -(int)w.st : (w.has_code ? w.code : 0);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    return code;
}

const char *it_cons_find_go(void)
{
    static char path[PATH_MAX];
    char out[PATH_MAX];
    if (it_run("command -v go", out, sizeof(out), 10000) == 0) {
        out[strcspn(out, "\r\n")] = '\0';
        if (out[0] == '/' && access(out, X_OK) == 0) {
            snprintf(path, sizeof(path), "%s", out);
            return path;
        }
    }
    const char *goroot = getenv("GOROOT");
    if (goroot && *goroot) {
        snprintf(path, sizeof(path), "%s/bin/go", goroot);
        if (access(path, X_OK) == 0) {
            return path;
        }
    }
    snprintf(path, sizeof(path), "/usr/local/go/bin/go");
    return access(path, X_OK) == 0 ? path : NULL;
}

bool it_cons_go_build(const char *go, const char *pkgs, const char *dir)
{
    static char out[65536];
    char cmd[PATH_MAX * 4];
    /* Without HOME the go command has no default caches. */
    const char *caches = getenv("HOME") && *getenv("HOME")
                             ? ""
                             : "GOPATH=/tmp/ledgermq-gopath GOCACHE=/tmp/ledgermq-gocache ";
    snprintf(cmd, sizeof(cmd),
             "cd '%s/tests/compat' && %sGOFLAGS='-mod=readonly -buildvcs=false' '%s' build -o "
             "'%s/' %s",
             mq_test_source_dir(), caches, go, dir, pkgs);
    int st = it_run(cmd, out, sizeof(out), 900000);
    if (st != 0) {
        fprintf(stderr, "\n  go build failed (exit %d):\n%s\n", st, out);
        return false;
    }
    return true;
}

int it_cons_mqadmin(it_cluster_t *c, const char *args)
{
    static char out[16384];
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof(cmd), "%s -n %s %s", it_bin("mqadmin"), it_broker_endpoint(c, 0), args);
    int st = it_run(cmd, out, sizeof(out), 30000);
    if (st != 0) {
        fprintf(stderr, "\n  mqadmin %s: exit %d\n%s\n", args, st, out);
    }
    return st;
}

/* The line of out that starts with prefix, or "" (a pointer into out). */
static const char *it_cons_line(const char *out, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            return p;
        }
    }
    return "";
}

void it_cons_report_parse(const char *out, it_cons_report_t *r)
{
    memset(r, 0xff, sizeof(*r)); /* every field -1 */
    long long calls, empty;
    sscanf(it_cons_line(out, "received: "),
           "received: %lld messages in %lld receives (%lld empty); acked: %lld; not acked on "
           "purpose: %lld; ack failures: %lld; redelivered (attempt > 1): %lld",
           &r->received, &calls, &empty, &r->acked, &r->noack, &r->ack_failures, &r->redelivered);
    sscanf(it_cons_line(out, "malformed: "), "malformed: %lld", &r->malformed);
    sscanf(it_cons_line(out, "verify: "),
           "verify: %lld messages in the log, %lld acknowledged, %lld with an unanswered ack, "
           "%lld missing, %lld delivered",
           &r->log_total, &r->log_acked, &r->log_unanswered, &r->missing, &r->unacked);
    sscanf(it_cons_line(out, "duplicates: "),
           "duplicates: %lld (explained %lld: %lld not acked on purpose, %lld ack failed or "
           "unanswered; after a confirmed ack: %lld)",
           &r->dups, &r->dups_explained, &r->dups_noack, &r->dups_unconfirmed, &r->dups_after_ack);
    sscanf(it_cons_line(out, "repeats at delivery attempt 1: "),
           "repeats at delivery attempt 1: %lld", &r->dups_attempt1);
    sscanf(it_cons_line(out, "order: "), "order: %lld out of order", &r->out_of_order);
    sscanf(it_cons_line(out, "corrupt: "),
           "corrupt: %lld; stored twice (producer retries): %lld; not in the log: %lld",
           &r->corrupt, &r->stored_twice, &r->unexpected);
}

long long it_cons_progress(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    char line[512];
    long long last = -1;
    while (fgets(line, sizeof(line), f)) {
        long long n;
        if (sscanf(line, "consume: %lld received", &n) == 1) {
            last = n;
        }
    }
    fclose(f);
    return last;
}
