/*
 * bk_http: the bookie's admin endpoints (httpServerEnabled /
 * httpServerPort), served by mq_http on the protocol loop:
 *   GET /heartbeat            "OK"
 *   GET /metrics              counters and gauges, Prometheus text format
 *   GET /api/v1/bookie/state  {"id":..., "state":"writable"|"readonly", ...}
 * mq_http refuses what is not a GET or larger than 8 KiB, one request per
 * connection. The handler runs on the loop thread and reads counters and
 * atomics only. start and stop from the thread that starts or stops the
 * server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_server_int.h"
#include "mq_log.h"
#include "mq_util.h"

static char *bk_http_metrics(bk_server_t *srv)
{
    bk_journal_stats_t js;
    bk_journal_get_stats(srv->journal, &js);
    const bk_counters_t *c = &srv->counters;
    return mq_http_printf(
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

static char *bk_http_state(bk_server_t *srv)
{
    return mq_http_printf(
        "{\"id\":\"%s\",\"state\":\"%s\",\"diskUsage\":%.4f,\"totalDiskBytes\":%llu,"
        "\"freeDiskBytes\":%llu,\"ledgers\":%zu,\"writeCacheBytes\":%zu}\n",
        srv->bookie_id, atomic_load(&srv->read_only) ? "readonly" : "writable", srv->disk_usage,
        (unsigned long long)atomic_load(&srv->total_disk),
        (unsigned long long)atomic_load(&srv->free_disk), bk_ledgers_count(srv->ledgers),
        bk_storage_cache_bytes(srv->storage));
}

static int bk_http_handle(const char *path, char **body, const char **ctype, void *arg)
{
    bk_server_t *srv = arg;
    if (strcmp(path, "/heartbeat") == 0) {
        *body = mq_strdup("OK\n");
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        *body = bk_http_metrics(srv);
        *ctype = "text/plain; version=0.0.4";
        return 200;
    }
    if (strcmp(path, "/api/v1/bookie/state") == 0) {
        *body = bk_http_state(srv);
        *ctype = "application/json";
        return 200;
    }
    return 404;
}

mq_err_t bk_http_start(bk_server_t *srv)
{
    return mq_http_start(srv->loop, srv->conf->bindAddress, (int)srv->conf->httpServerPort,
                         bk_http_handle, srv, &srv->http);
}

void bk_http_stop(bk_server_t *srv)
{
    mq_http_free(srv->http);
    srv->http = NULL;
}
