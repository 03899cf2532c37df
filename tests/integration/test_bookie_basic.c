/*
 * A bookie end to end: adds, reads (by id and "last"), LAC, entry listing,
 * bookie info, the admin HTTP server, a clean stop on SIGTERM (exit 0,
 * deregistered) and a restart that serves everything again; --help-config
 * and config errors.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it_client.h"
#include "it_cluster.h"
#include "lc_entry.h"
#include "mq_test.h"
#include "mq_util.h"

static const char *KEY = "basic-key";

static void test_help_config_and_errors(void)
{
    static char out[65536];
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --help-config", it_bin("mqbookie"));
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 10000), 0);
    const char *keys[] = {"bookiePort=3181",
                          "zkServers=",
                          "journalDirectories=",
                          "ledgerDirectories=",
                          "httpServerPort=",
                          "journalSyncData=true",
                          "diskUsageThreshold=0.95",
                          "journalMaxGroupWaitMSec=",
                          "journalBufferedWritesThreshold="};
    for (size_t i = 0; i < MQ_ARRAY_LEN(keys); i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(out, keys[i]));
    }
    const char *dir = mq_test_tmpdir("badconf");
    char path[512];
    snprintf(path, sizeof(path), "%s/b.conf", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "bookiePort=3181\n\njournalSyncData=perhaps\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s -c %s", it_bin("mqbookie"), path);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 10000), 2);
    char want[600];
    snprintf(want, sizeof(want), "%s:3: bad value 'perhaps' for key 'journalSyncData'", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    f = fopen(path, "w");
    fprintf(f, "bookiePortt=3181\n");
    fclose(f);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 10000), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ":1: unknown key 'bookiePortt'"));
}

static int http_get(int port, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(fd, out + got, cap - 1 - got)) > 0) {
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fd);
    return (int)got;
}

static void test_serve_stop_restart(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "basic"));
    int http_port = mq_test_port();
    char http_set[64];
    snprintf(http_set, sizeof(http_set), "httpServerPort=%d", http_port);
    const char *sets[] = {"httpServerEnabled=true", http_set, NULL};
    it_bookie_prepare(&c, 0, sets);
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));

    it_client_t cl;
    it_client_open(&cl, it_bookie_addr(&c, 0));
    for (int64_t e = 0; e < 100; e++) {
        IT_EXPECT(it_add(&cl, 1, e, KEY, 0, 100 + (size_t)e), MQ_OK);
    }
    /* Adding the same entry again is an idempotent overwrite. */
    IT_EXPECT(it_add(&cl, 1, 5, KEY, 0, 105), MQ_OK);
    for (int64_t e = 200; e < 210; e++) {
        IT_EXPECT(it_add(&cl, 1, e, KEY, 0, 64), MQ_OK);
    }
    for (int64_t e = 0; e < 100; e++) {
        IT_EXPECT(it_read(&cl, 1, e, 0, NULL), MQ_OK);
    }
    lc_bk_sync_result_t r;
    CU_ASSERT_EQUAL(lc_bookie_read_sync(cl.bk, 1, -1, 0, NULL, 0, 5000, &r), MQ_OK);
    CU_ASSERT_EQUAL(r.res.entry_id, 209);
    lc_bk_sync_result_fini(&r);
    IT_EXPECT(it_read(&cl, 1, 150, 0, NULL), MQ_ENOENTRY);
    IT_EXPECT(it_read(&cl, 99, 0, 0, NULL), MQ_ENOLEDGER);

    CU_ASSERT_EQUAL(lc_bookie_read_lac_sync(cl.bk, 1, 5000, &r), MQ_OK);
    CU_ASSERT_EQUAL(r.res.lac, 208); /* each entry carries LAC = its id - 1 */
    CU_ASSERT_EQUAL(r.res.last_entry_id, 209);
    lc_bk_sync_result_fini(&r);
    CU_ASSERT_EQUAL(lc_bookie_read_lac_sync(cl.bk, 99, 5000, &r), MQ_ENOLEDGER);
    lc_bk_sync_result_fini(&r);

    CU_ASSERT_EQUAL(lc_bookie_list_entries_sync(cl.bk, 1, 5000, &r), MQ_OK);
    CU_ASSERT_EQUAL_FATAL(r.res.data.len, 32);
    CU_ASSERT_EQUAL(mq_get_le64(r.res.data.ptr), 0);
    CU_ASSERT_EQUAL(mq_get_le64(r.res.data.ptr + 8), 99);
    CU_ASSERT_EQUAL(mq_get_le64(r.res.data.ptr + 16), 200);
    CU_ASSERT_EQUAL(mq_get_le64(r.res.data.ptr + 24), 209);
    lc_bk_sync_result_fini(&r);

    CU_ASSERT_EQUAL(lc_bookie_info_sync(cl.bk, 5000, &r), MQ_OK);
    CU_ASSERT_TRUE(r.res.total_disk_bytes > 0);
    CU_ASSERT_TRUE(r.res.free_disk_bytes > 0 && r.res.free_disk_bytes <= r.res.total_disk_bytes);
    CU_ASSERT_FALSE(r.res.read_only);
    lc_bk_sync_result_fini(&r);

    static char body[16384];
    CU_ASSERT_TRUE(http_get(http_port, "/heartbeat", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "200 OK"));
    CU_ASSERT_TRUE(http_get(http_port, "/metrics", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "bookie_add_entries_total 111"));
    CU_ASSERT_TRUE(http_get(http_port, "/api/v1/bookie/state", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"state\":\"writable\""));
    CU_ASSERT_TRUE(http_get(http_port, "/nope", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "404"));

    /* SIGTERM: clean exit and deregistration. */
    char path[256];
    it_bookie_reg_path(&c, 0, "available", path, sizeof(path));
    CU_ASSERT_EQUAL(zk_exists(c.zk, path, NULL), MQ_OK);
    CU_ASSERT_EQUAL(it_bookie_kill(&c, 0, SIGTERM), 0);
    CU_ASSERT_EQUAL(zk_exists(c.zk, path, NULL), MQ_ENOTFOUND);
    IT_EXPECT(it_add(&cl, 1, 300, KEY, 0, 10), MQ_ECONN);

    /* Restart on the same dirs: everything is back. */
    CU_ASSERT_FATAL(it_bookie_start(&c, 0));
    CU_ASSERT_TRUE(it_client_wait_ready(&cl));
    for (int64_t e = 0; e < 100; e++) {
        IT_EXPECT(it_read(&cl, 1, e, 0, NULL), MQ_OK);
    }
    for (int64_t e = 200; e < 210; e++) {
        IT_EXPECT(it_read(&cl, 1, e, 0, NULL), MQ_OK);
    }
    CU_ASSERT_EQUAL(lc_bookie_read_lac_sync(cl.bk, 1, 5000, &r), MQ_OK);
    CU_ASSERT_EQUAL(r.res.lac, 208);
    CU_ASSERT_EQUAL(r.res.last_entry_id, 209);
    lc_bk_sync_result_fini(&r);
    /* The master key survived too. */
    IT_EXPECT(it_add(&cl, 1, 210, "other-key", 0, 10), MQ_EUNAUTHORIZED);
    IT_EXPECT(it_add(&cl, 1, 210, KEY, 0, 10), MQ_OK);
    it_client_close(&cl);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"--help-config and config errors", test_help_config_and_errors},
        {"serve, stop on SIGTERM, restart", test_serve_stop_restart},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie basic", tests, NULL, NULL);
}
