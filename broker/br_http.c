/*
 * br_http: the broker's admin endpoints (httpServerPort; 0, the default,
 * leaves them off), served by mq_http on a loop of their own ("br-http"), so
 * a slow scraper never shares a thread with the messaging path:
 *   GET /heartbeat             "OK"
 *   GET /metrics               counters and gauges, Prometheus text format
 *   GET /api/v1/broker/state   {"id":..., "cluster":..., "endpoint":...,
 *                               "leader":true|false, "queues":N}
 * mq_http refuses what is not a GET or larger than 8 KiB, one request per
 * connection.
 *
 * Threads: the handler runs on the br-http loop and reads what is fixed once
 * the server started (ids, config), atomics and the queue count (qlock,
 * briefly). br_server_start starts it once the cluster runs; the shutdown
 * path stops it before the cluster stops, so the handler never sees a
 * cluster going away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_server_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* s as a JSON string literal, quoted and escaped (malloc'd). */
static char *br_http_json_str(const char *s)
{
    size_t n = strlen(s);
    /* "\u00XX" is the longest escape: 6 bytes for one. */
    char *out = mq_malloc(n * 6 + 3);
    char *p = out;
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) {
            p += sprintf(p, "\\u%04x", *c);
        } else {
            *p++ = (char)*c;
        }
    }
    *p++ = '"';
    *p = '\0';
    return out;
}

static char *br_http_metrics(br_server_t *srv)
{
    return mq_http_printf("# TYPE ledgermq_broker_messages_in_total counter\n"
                          "ledgermq_broker_messages_in_total %llu\n"
                          "# TYPE ledgermq_broker_bytes_in_total counter\n"
                          "ledgermq_broker_bytes_in_total %llu\n"
                          "# TYPE ledgermq_broker_messages_out_total counter\n"
                          "ledgermq_broker_messages_out_total %llu\n"
                          "# TYPE ledgermq_broker_bytes_out_total counter\n"
                          "ledgermq_broker_bytes_out_total %llu\n"
                          "# TYPE ledgermq_broker_queues_owned gauge\n"
                          "ledgermq_broker_queues_owned %d\n"
                          "# TYPE ledgermq_broker_leader gauge\n"
                          "ledgermq_broker_leader %d\n",
                          (unsigned long long)atomic_load(&srv->msgs_in),
                          (unsigned long long)atomic_load(&srv->bytes_in),
                          (unsigned long long)atomic_load(&srv->msgs_out),
                          (unsigned long long)atomic_load(&srv->bytes_out), br_queue_count(srv),
                          br_cluster_is_leader(srv->cluster) ? 1 : 0);
}

static char *br_http_state(br_server_t *srv)
{
    char *id = br_http_json_str(srv->id);
    char *cluster = br_http_json_str(srv->conf->brokerClusterName);
    char *endpoint = br_http_json_str(srv->endpoint);
    char *body = mq_http_printf(
        "{\"id\":%s,\"cluster\":%s,\"endpoint\":%s,\"leader\":%s,\"queues\":%d}\n", id, cluster,
        endpoint, br_cluster_is_leader(srv->cluster) ? "true" : "false", br_queue_count(srv));
    free(id);
    free(cluster);
    free(endpoint);
    return body;
}

static int br_http_handle(const char *path, char **body, const char **ctype, void *arg)
{
    br_server_t *srv = arg;
    if (strcmp(path, "/heartbeat") == 0) {
        *body = mq_strdup("OK\n");
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        *body = br_http_metrics(srv);
        *ctype = "text/plain; version=0.0.4";
        return 200;
    }
    if (strcmp(path, "/api/v1/broker/state") == 0) {
        *body = br_http_state(srv);
        *ctype = "application/json";
        return 200;
    }
    return 404;
}

mq_err_t br_http_start(br_server_t *srv)
{
    srv->http_loop = mq_net_loop_new("br-http");
    mq_err_t err = mq_http_start(srv->http_loop, srv->conf->listenAddress,
                                 (int)srv->conf->httpServerPort, br_http_handle, srv, &srv->http);
    if (err != MQ_OK) {
        br_http_stop(srv);
    }
    return err;
}

void br_http_stop(br_server_t *srv)
{
    mq_http_free(srv->http);
    srv->http = NULL;
    if (srv->http_loop) {
        mq_net_loop_free(srv->http_loop);
        srv->http_loop = NULL;
    }
}
