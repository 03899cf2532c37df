/*
 * mqa_common: see mqa_common.h.
 */
#include "mqa_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mq_util.h"

const mqa_cmd_t *mqa_cmd_find(const char *name)
{
    for (size_t i = 0; i < mqa_ncmds; i++) {
        if (strcmp(mqa_cmds[i].name, name) == 0) {
            return &mqa_cmds[i];
        }
    }
    return NULL;
}

void mqa_cmd_usage(const mqa_cmd_t *c, FILE *out)
{
    fprintf(out, "usage: mqadmin [-n host:port] %s %s\n\n%s\n", c->name, c->args, c->help);
    if (c->more) {
        fprintf(out, "\n%s", c->more);
    }
    fprintf(
        out,
        "  -n host:port   broker gRPC endpoint (default $LEDGERMQ_ENDPOINT or " MQA_DEFAULT_ENDPOINT
        ")\n");
}

int mqa_usage_error(const mqa_t *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mqadmin %s: ", a->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see mqadmin %s -h)\n", a->cmd);
    return 2;
}

int mqa_fail(const mqa_t *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mqadmin %s: ", a->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return 1;
}

bool mqa_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int mqa_common_opt(mqa_t *a, int c, const char *arg)
{
    if (c == 'n') {
        a->endpoint = arg;
        return MQA_OPT_TAKEN;
    }
    if (c == 'h') {
        mqa_cmd_usage(mqa_cmd_find(a->cmd), stdout);
        return 0;
    }
    if (c == '?' || c == ':') {
        /* getopt printed what was wrong. */
        fprintf(stderr, "(see mqadmin %s -h)\n", a->cmd);
        return 2;
    }
    return MQA_OPT_OTHER;
}

bool mqa_connect(mqa_t *a)
{
    if (a->ch) {
        return true;
    }
    char host[MQC_EP_MAX];
    int port;
    if (!mqc_ep_split(a->endpoint, host, sizeof(host), &port)) {
        mqa_fail(a, "bad endpoint '%s' (expected host:port)", a->endpoint);
        return false;
    }
    if (rpc_client_new(&a->cl) != MQ_OK) {
        a->cl = NULL;
        mqa_fail(a, "cannot start the rpc client");
        return false;
    }
    if (rpc_channel_new(a->cl, a->endpoint, &a->ch) != MQ_OK) {
        a->ch = NULL;
        mqa_fail(a, "cannot open a channel to %s", a->endpoint);
        return false;
    }
    mqc_client_id_make(a->client_id, sizeof(a->client_id), 0);
    return true;
}

void mqa_close(mqa_t *a)
{
    if (a->ch) {
        rpc_channel_free(a->ch);
        a->ch = NULL;
    }
    if (a->cl) {
        rpc_client_free(a->cl);
        a->cl = NULL;
    }
}

bool mqa_call(mqa_t *a, const char *method, const pb_msgdesc_t *req_fields, const void *req,
              const pb_msgdesc_t *resp_fields, void *resp)
{
    rpc_status_t st;
    return mqa_call_st(a, method, req_fields, req, resp_fields, resp, RPC_OK, &st);
}

bool mqa_call_st(mqa_t *a, const char *method, const pb_msgdesc_t *req_fields, const void *req,
                 const pb_msgdesc_t *resp_fields, void *resp, rpc_status_t quiet,
                 rpc_status_t *status)
{
    *status = RPC_UNKNOWN;
    if (!mqa_connect(a)) {
        return false;
    }
    uint8_t *buf;
    size_t len;
    if (mqc_pb_encode(req_fields, req, &buf, &len) != MQ_OK) {
        mqa_fail(a, "%s: cannot encode the request", method);
        return false;
    }
    char path[128];
    snprintf(path, sizeof(path), MQA_SVC "%s", method);
    mqc_md_t md;
    mqc_md_init(&md, a->client_id);
    rpc_status_t st;
    uint8_t *rbuf = NULL;
    size_t rlen = 0;
    char details[512] = "";
    mq_err_t err = rpc_channel_unary_sync(a->ch, path, md.md, md.n, buf, len, MQA_TIMEOUT_MS, &st,
                                          &rbuf, &rlen, details, sizeof(details));
    free(buf);
    if (err != MQ_OK) {
        mqa_fail(a, "%s: call to %s not started: %s", method, a->endpoint, mq_err_str(err));
        return false;
    }
    *status = st;
    if (st != RPC_OK && st == quiet) {
        free(rbuf);
        return false;
    }
    if (st != RPC_OK) {
        mqa_fail(a, "%s: %s: %s (%s)", method, rpc_status_name(st),
                 details[0] ? details : "no details", a->endpoint);
        return false;
    }
    err = mqc_pb_decode(resp_fields, rbuf, rlen, resp);
    free(rbuf);
    if (err != MQ_OK) {
        mqa_fail(a, "%s: undecodable response from %s", method, a->endpoint);
        return false;
    }
    return true;
}

void mqa_time_str(uint64_t ms, char *buf, size_t cap)
{
    if (ms == 0) {
        snprintf(buf, cap, "%s", "");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    char t[32];
    strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, cap, "%s,%03u", t, (unsigned)(ms % 1000));
}

void mqa_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (*p < 0x20) {
                fprintf(out, "\\u%04x", *p);
            } else {
                fputc(*p, out);
            }
        }
    }
    fputc('"', out);
}
