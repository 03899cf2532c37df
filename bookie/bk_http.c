/*
 * bk_http: the bookie's small admin HTTP server (httpServerEnabled /
 * httpServerPort), on the protocol loop:
 *   GET /heartbeat            "OK"
 *   GET /metrics              counters and gauges, Prometheus text format
 *   GET /api/v1/bookie/state  {"id":..., "state":"writable"|"readonly", ...}
 * One request per connection (Connection: close); requests larger than 8 KiB
 * or not GET are refused. Loop thread only, after setup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_server_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_HTTP_MAX_REQ 8192

struct bk_http {
    bk_server_t *srv;
    uv_tcp_t listener;
    int port;
    mq_err_t start_err;
};

typedef struct bk_http_conn {
    uv_tcp_t tcp;
    bk_http_t *http;
    char buf[BK_HTTP_MAX_REQ];
    size_t len;
    bool responded;
    uv_write_t wreq;
    char *out;
} bk_http_conn_t;

static void bk_http_conn_closed(uv_handle_t *h)
{
    bk_http_conn_t *c = h->data;
    free(c->out);
    free(c);
}

static void bk_http_written(uv_write_t *req, int status)
{
    MQ_UNUSED(status);
    bk_http_conn_t *c = req->data;
    uv_close((uv_handle_t *)&c->tcp, bk_http_conn_closed);
}

static void bk_http_respond(bk_http_conn_t *c, int code, const char *ctype, const char *body)
{
    const char *reason = code == 200 ? "OK" : (code == 404 ? "Not Found" : "Bad Request");
    size_t blen = strlen(body);
    size_t cap = blen + 256;
    c->out = mq_malloc(cap);
    int n = snprintf(c->out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     code, reason, ctype, blen, body);
    c->responded = true;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, bk_http_written) != 0) {
        uv_close((uv_handle_t *)&c->tcp, bk_http_conn_closed);
    }
}

static void bk_http_metrics(bk_server_t *srv, char *out, size_t cap)
{
    bk_journal_stats_t js;
    bk_storage_stats_t ss;
    bk_journal_get_stats(srv->journal, &js);
    bk_storage_get_stats(srv->storage, &ss);
    const bk_counters_t *c = &srv->counters;
    snprintf(
        out, cap,
        "# TYPE bookie_add_entries_total counter\nbookie_add_entries_total %llu\n"
        "# TYPE bookie_add_bytes_total counter\nbookie_add_bytes_total %llu\n"
        "# TYPE bookie_add_errors_total counter\nbookie_add_errors_total %llu\n"
        "# TYPE bookie_read_entries_total counter\nbookie_read_entries_total %llu\n"
        "# TYPE bookie_read_bytes_total counter\nbookie_read_bytes_total %llu\n"
        "# TYPE bookie_read_errors_total counter\nbookie_read_errors_total %llu\n"
        "# TYPE bookie_fences_total counter\nbookie_fences_total %llu\n"
        "# TYPE bookie_bad_requests_total counter\nbookie_bad_requests_total %llu\n"
        "# TYPE bookie_journal_syncs_total counter\nbookie_journal_syncs_total %llu\n"
        "# TYPE bookie_journal_bytes_total counter\nbookie_journal_bytes_total %llu\n"
        "# TYPE bookie_journal_sync_seconds_total counter\n"
        "bookie_journal_sync_seconds_total %.6f\n"
        "# TYPE bookie_checkpoints_total counter\nbookie_checkpoints_total %llu\n"
        "# TYPE bookie_write_cache_bytes gauge\nbookie_write_cache_bytes %zu\n"
        "# TYPE bookie_ledgers gauge\nbookie_ledgers %zu\n"
        "# TYPE bookie_read_only gauge\nbookie_read_only %d\n"
        "# TYPE bookie_disk_usage_ratio gauge\nbookie_disk_usage_ratio %.4f\n",
        (unsigned long long)atomic_load(&c->adds), (unsigned long long)atomic_load(&c->add_bytes),
        (unsigned long long)atomic_load(&c->add_errors), (unsigned long long)atomic_load(&c->reads),
        (unsigned long long)atomic_load(&c->read_bytes),
        (unsigned long long)atomic_load(&c->read_errors),
        (unsigned long long)atomic_load(&c->fences),
        (unsigned long long)atomic_load(&c->bad_requests), (unsigned long long)js.syncs,
        (unsigned long long)js.bytes, (double)js.sync_ns / 1e9,
        (unsigned long long)atomic_load(&c->checkpoints), bk_storage_cache_bytes(srv->storage),
        bk_ledgers_count(srv->ledgers), atomic_load(&srv->read_only) ? 1 : 0, srv->disk_usage);
}

static void bk_http_handle(bk_http_conn_t *c)
{
    bk_server_t *srv = c->http->srv;
    char method[8];
    char path[256];
    if (sscanf(c->buf, "%7s %255s", method, path) != 2 || strcmp(method, "GET") != 0) {
        bk_http_respond(c, 400, "text/plain", "only GET is supported\n");
        return;
    }
    if (strcmp(path, "/heartbeat") == 0) {
        bk_http_respond(c, 200, "text/plain", "OK\n");
    } else if (strcmp(path, "/metrics") == 0) {
        char body[4096];
        bk_http_metrics(srv, body, sizeof(body));
        bk_http_respond(c, 200, "text/plain; version=0.0.4", body);
    } else if (strcmp(path, "/api/v1/bookie/state") == 0) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"id\":\"%s\",\"state\":\"%s\",\"diskUsage\":%.4f,\"totalDiskBytes\":%llu,"
                 "\"freeDiskBytes\":%llu,\"ledgers\":%zu,\"writeCacheBytes\":%zu}\n",
                 srv->bookie_id, atomic_load(&srv->read_only) ? "readonly" : "writable",
                 srv->disk_usage, (unsigned long long)atomic_load(&srv->total_disk),
                 (unsigned long long)atomic_load(&srv->free_disk), bk_ledgers_count(srv->ledgers),
                 bk_storage_cache_bytes(srv->storage));
        bk_http_respond(c, 200, "application/json", body);
    } else {
        bk_http_respond(c, 404, "text/plain", "not found\n");
    }
}

static void bk_http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    MQ_UNUSED(suggested);
    bk_http_conn_t *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void bk_http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    MQ_UNUSED(buf);
    bk_http_conn_t *c = s->data;
    if (c->responded) {
        return;
    }
    if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, bk_http_conn_closed);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
        uv_read_stop(s);
        bk_http_handle(c);
    } else if (c->len >= sizeof(c->buf) - 1) {
        uv_read_stop(s);
        bk_http_respond(c, 400, "text/plain", "request too large\n");
    }
}

static void bk_http_on_connection(uv_stream_t *server, int status)
{
    bk_http_t *http = server->data;
    if (status < 0) {
        return;
    }
    bk_http_conn_t *c = mq_calloc(1, sizeof(*c));
    c->http = http;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, bk_http_conn_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, bk_http_alloc, bk_http_read);
}

static void bk_http_setup(void *arg)
{
    bk_http_t *http = arg;
    uv_loop_t *loop = mq_net_loop_uv(http->srv->loop);
    struct sockaddr_in addr;
    uv_tcp_init(loop, &http->listener);
    http->listener.data = http;
    uv_ip4_addr(http->srv->conf->bindAddress, http->port, &addr);
    int rc = uv_tcp_bind(&http->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&http->listener, 64, bk_http_on_connection);
    }
    if (rc != 0) {
        MQ_LOG_ERROR("http listen failed port=%d err=%s", http->port, uv_strerror(rc));
        http->start_err = MQ_ECONN;
        return;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&http->listener, (struct sockaddr *)&bound, &blen);
    http->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void bk_http_listener_closed(uv_handle_t *h)
{
    MQ_UNUSED(h);
}

static void bk_http_noop(void *arg)
{
    MQ_UNUSED(arg);
}

static void bk_http_teardown(void *arg)
{
    bk_http_t *http = arg;
    uv_close((uv_handle_t *)&http->listener, bk_http_listener_closed);
}

mq_err_t bk_http_start(bk_server_t *srv, int port, bk_http_t **out)
{
    bk_http_t *http = mq_calloc(1, sizeof(*http));
    http->srv = srv;
    http->port = port;
    mq_net_loop_run_sync(srv->loop, bk_http_setup, http);
    if (http->start_err != MQ_OK) {
        mq_net_loop_run_sync(srv->loop, bk_http_teardown, http);
        mq_err_t err = http->start_err;
        free(http);
        return err;
    }
    MQ_LOG_INFO("http admin server listening port=%d", http->port);
    *out = http;
    return MQ_OK;
}

int bk_http_port(const bk_http_t *http)
{
    return http->port;
}

void bk_http_free(bk_http_t *http)
{
    if (!http) {
        return;
    }
    mq_net_loop_run_sync(http->srv->loop, bk_http_teardown, http);
    /* The close callback runs on the next loop turn; a second synchronous
     * call guarantees it has run before the memory goes. */
    mq_net_loop_run_sync(http->srv->loop, bk_http_noop, NULL);
    free(http);
}
