/*
 * The broker's admin HTTP server (httpServerPort): real ZooKeeper, 5
 * bookies and one broker. /heartbeat, /metrics (Prometheus text) and
 * /api/v1/broker/state answer; the broker, alone, is the leader and owns
 * every queue of a topic created through mqadmin; an unknown path is 404
 * and a POST is refused; the port is in the "broker started" line; SIGTERM
 * stops the broker cleanly with the server up, and the port closes.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it_broker.h"
#include "mq_http.h"
#include "mq_test.h"
#include "mq_util.h"

#define NQ 4

/* Sends req as is on a new connection and reads the answer until the server
 * closes; returns its length, or -1 when the connection failed. */
static int http_raw(int port, const char *req, char *out, size_t cap)
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
    size_t n = strlen(req);
    if (write(fd, req, n) != (ssize_t)n) {
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

static int http_get(int port, const char *path, char *out, size_t cap)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    return http_raw(port, req, out, cap);
}

typedef struct http_wait {
    int port;
    const char *path;
    const char *want;
    char body[16384];
} http_wait_t;

static bool http_has(void *arg)
{
    http_wait_t *w = arg;
    return http_get(w->port, w->path, w->body, sizeof(w->body)) > 0 && strstr(w->body, w->want);
}

/* Waits until GET path answers a body containing want (leadership and
 * ownership settle after the broker is registered). */
static bool http_wait_for(int port, const char *path, const char *want)
{
    static http_wait_t w;
    w.port = port;
    w.path = path;
    w.want = want;
    return mq_test_wait(http_has, &w, 20000);
}

/* True when the file at path contains s. */
static bool file_has(const char *path, const char *s)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, s) != NULL;
}

static void test_endpoints(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_http"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    int port = mq_test_port();
    char set[64];
    snprintf(set, sizeof(set), "httpServerPort=%d", port);
    const char *sets[] = {set, NULL};
    it_broker_prepare(&c, 0, sets);
    CU_ASSERT_FATAL(it_broker_start(&c, 0));
    char want[64];
    snprintf(want, sizeof(want), "http_port=%d", port);
    CU_ASSERT(file_has(c.brokers[0].log, want));

    static char body[16384];
    CU_ASSERT_TRUE(http_get(port, "/heartbeat", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "HTTP/1.1 200 OK\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "Connection: close\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\r\n\r\nOK\n"));

    /* Alone, the broker is the leader and gets every queue of a topic. */
    CU_ASSERT(http_wait_for(port, "/api/v1/broker/state", "\"leader\":true"));
    char cmd[512], out[2048];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t http_topic -w %d", it_bin("mqadmin"),
             it_broker_endpoint(&c, 0), NQ);
    CU_ASSERT_EQUAL_FATAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT(it_broker_wait_owned(&c, "http_topic", NQ, NULL, 20000));
    char queues[32];
    snprintf(queues, sizeof(queues), "\"queues\":%d}", NQ);
    CU_ASSERT(http_wait_for(port, "/api/v1/broker/state", queues));
    CU_ASSERT_TRUE(http_get(port, "/api/v1/broker/state", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "Content-Type: application/json\r\n"));
    char state[256];
    snprintf(state, sizeof(state),
             "{\"id\":\"broker-0\",\"cluster\":\"TestCluster\",\"endpoint\":\"%s\","
             "\"leader\":true,\"queues\":%d}\n",
             it_broker_endpoint(&c, 0), NQ);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, state));

    CU_ASSERT_TRUE(http_get(port, "/metrics", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "Content-Type: text/plain; version=0.0.4\r\n"));
    const char *lines[] = {"# TYPE ledgermq_broker_messages_in_total counter\n",
                           "\nledgermq_broker_messages_in_total 0\n",
                           "\nledgermq_broker_bytes_in_total 0\n",
                           "\nledgermq_broker_messages_out_total 0\n",
                           "\nledgermq_broker_bytes_out_total 0\n",
                           "# TYPE ledgermq_broker_queues_owned gauge\n",
                           "\nledgermq_broker_queues_owned 4\n",
                           "\nledgermq_broker_leader 1\n"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(lines); i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(body, lines[i]));
    }

    /* Refusals: an unknown path, another method, a request of 8 KiB without
     * its blank line. */
    CU_ASSERT_TRUE(http_get(port, "/nope", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "HTTP/1.1 404 Not Found\r\n"));
    CU_ASSERT_TRUE(http_raw(port, "POST /heartbeat HTTP/1.1\r\nContent-Length: 0\r\n\r\n", body,
                            sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "HTTP/1.1 400 Bad Request\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "only GET is supported"));
    /* Exactly what fills the server's buffer, so that it read everything
     * before it closes (unread bytes would turn its close into a reset). */
    static char big[MQ_HTTP_MAX_REQ];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "GET /", 5);
    CU_ASSERT_TRUE(http_raw(port, big, body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "request too large"));
    /* Still serving. */
    CU_ASSERT_TRUE(http_get(port, "/heartbeat", body, sizeof(body)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "200 OK"));

    /* A clean stop with the server up (and an idle connection open); the
     * port closes with the broker. */
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL(connect(idle, (struct sockaddr *)&a, sizeof(a)), 0);
    CU_ASSERT_EQUAL(it_broker_kill(&c, 0, SIGTERM), 0);
    close(idle);
    CU_ASSERT_EQUAL(http_get(port, "/heartbeat", body, sizeof(body)), -1);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"heartbeat, metrics, state, refusals, clean stop", test_endpoints},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker http", tests, NULL, NULL);
}
