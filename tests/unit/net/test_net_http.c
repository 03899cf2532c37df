/*
 * mq_http, driven through raw sockets: answers (status line, headers, body,
 * the handler's content type and the default one, the default body of a
 * status), the handler on the loop thread with the whole target, a head
 * split into single bytes and ended by bare LFs, refusals (another method,
 * no target, a head filling the buffer) without asking the handler, a client
 * that goes away, listen errors, and free with open connections (the
 * handler is not called afterwards).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mq_http.h"
#include "mq_test.h"
#include "mq_util.h"

/* CUnit is not thread-safe: loop-thread callbacks count failures here and
 * the test thread asserts on the count. */
static atomic_int t_cb_failures;
#define T_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            atomic_fetch_add(&t_cb_failures, 1);                                                   \
            fprintf(stderr, "callback check failed %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                          \
    } while (0)

typedef struct t_http {
    mq_net_loop_t *loop;
    mq_http_t *http;
    int port;
    atomic_int calls;
    pthread_mutex_t mu;
    char last_path[MQ_HTTP_MAX_REQ]; /* @locks mu */
} t_http_t;

static int t_handle(const char *path, char **body, const char **ctype, void *arg)
{
    t_http_t *th = arg;
    T_CHECK(mq_net_loop_on_thread(th->loop));
    T_CHECK(*body == NULL && *ctype == NULL);
    atomic_fetch_add(&th->calls, 1);
    pthread_mutex_lock(&th->mu);
    snprintf(th->last_path, sizeof(th->last_path), "%s", path);
    pthread_mutex_unlock(&th->mu);
    if (strcmp(path, "/json") == 0) {
        *body = mq_http_printf("{\"n\":%d}\n", 7);
        *ctype = "application/json";
        return 200;
    }
    if (strcmp(path, "/plain") == 0) {
        *body = mq_strdup("plain\n");
        return 200;
    }
    if (strcmp(path, "/down") == 0) {
        return 503;
    }
    return 404;
}

static void t_start(t_http_t *th)
{
    memset(th, 0, sizeof(*th));
    pthread_mutex_init(&th->mu, NULL);
    th->loop = mq_net_loop_new("t-http");
    CU_ASSERT_EQUAL_FATAL(mq_http_start(th->loop, "127.0.0.1", 0, t_handle, th, &th->http), MQ_OK);
    th->port = mq_http_port(th->http);
    CU_ASSERT_TRUE(th->port > 0);
}

static void t_stop(t_http_t *th)
{
    mq_http_free(th->http);
    mq_net_loop_free(th->loop);
    pthread_mutex_destroy(&th->mu);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

/* --- raw sockets ---------------------------------------------------------- */

static int t_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool t_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until the peer closes or resets the connection (true) or
 * timeout_ms pass (false). */
static bool t_read_to_eof(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t got = 0;
    uint64_t deadline = mq_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = mq_now_ms();
        if (now >= deadline) {
            out[got] = '\0';
            return false;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            continue;
        }
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (r <= 0) {
            out[got] = '\0';
            return r == 0 || errno == ECONNRESET;
        }
        got += (size_t)r;
    }
}

/* One request on a new connection; the whole answer (the server closes). */
static bool t_request(int port, const char *req, char *out, size_t cap)
{
    int fd = t_connect(port);
    if (fd < 0) {
        return false;
    }
    bool ok = t_send_all(fd, req, strlen(req)) && t_read_to_eof(fd, out, cap, 5000);
    close(fd);
    return ok;
}

/* --- tests ---------------------------------------------------------------- */

static void test_answers(void)
{
    t_http_t th;
    t_start(&th);
    static char out[65536];
    CU_ASSERT_TRUE(t_request(th.port, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_STRING_EQUAL(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 8\r\nConnection: close\r\n\r\n{\"n\":7}\n");
    CU_ASSERT_TRUE(t_request(th.port, "GET /plain HTTP/1.0\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_STRING_EQUAL(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 6\r\nConnection: close\r\n\r\nplain\n");
    /* No body from the handler: the status's own text. */
    CU_ASSERT_TRUE(t_request(th.port, "GET /nope HTTP/1.1\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_STRING_EQUAL(out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n");
    CU_ASSERT_TRUE(t_request(th.port, "GET /down HTTP/1.1\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
    /* The target as sent, query string and all, whatever its length. */
    static char req[MQ_HTTP_MAX_REQ];
    char path[4001];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(req, sizeof(req), "GET %s?x=1 HTTP/1.1\r\n\r\n", path);
    CU_ASSERT_TRUE(t_request(th.port, req, out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " 404 "));
    pthread_mutex_lock(&th.mu);
    CU_ASSERT_EQUAL(strlen(th.last_path), strlen(path) + 4);
    CU_ASSERT_EQUAL(strncmp(th.last_path, path, strlen(path)), 0);
    CU_ASSERT_STRING_EQUAL(th.last_path + strlen(path), "?x=1");
    pthread_mutex_unlock(&th.mu);
    CU_ASSERT_EQUAL(atomic_load(&th.calls), 5);
    t_stop(&th);
}

static void test_split_head_and_bare_lf(void)
{
    t_http_t th;
    t_start(&th);
    static char out[4096];
    const char *req = "GET /plain HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    int fd = t_connect(th.port);
    CU_ASSERT_FATAL(fd >= 0);
    /* One byte at a time: the blank line straddles reads. */
    for (const char *p = req; *p; p++) {
        CU_ASSERT_TRUE(t_send_all(fd, p, 1));
        if (p[1] == '\n' || p[1] == '\0') {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CU_ASSERT_TRUE(t_read_to_eof(fd, out, sizeof(out), 5000));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r\n\r\nplain\n"));
    close(fd);
    CU_ASSERT_TRUE(t_request(th.port, "GET /plain\n\n", out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 200 OK\r\n"));
    t_stop(&th);
}

static void test_refusals(void)
{
    t_http_t th;
    t_start(&th);
    static char out[4096];
    const char *bad[] = {"POST /plain HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                         "get /plain HTTP/1.1\r\n\r\n", "GETX /plain HTTP/1.1\r\n\r\n",
                         "GET\r\nHost: /plain\r\n\r\n", "\r\n\r\n"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(bad); i++) {
        CU_ASSERT_TRUE(t_request(th.port, bad[i], out, sizeof(out)));
        CU_ASSERT_STRING_EQUAL(out, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 22\r\nConnection: close\r\n\r\n"
                                    "only GET is supported\n");
    }
    /* A head that fills the buffer without its blank line. Exactly that
     * much, so that the server read everything before it closes (unread
     * bytes would turn the close into a reset). */
    static char big[MQ_HTTP_MAX_REQ];
    memset(big, 'h', sizeof(big) - 1);
    memcpy(big, "GET /plain HTTP/1.1\r\nX: ", 24);
    CU_ASSERT_TRUE(t_request(th.port, big, out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r\n\r\nrequest too large\n"));
    /* The handler was never asked. */
    CU_ASSERT_EQUAL(atomic_load(&th.calls), 0);
    /* A client that goes away before its head is complete. */
    int fd = t_connect(th.port);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_TRUE(t_send_all(fd, "GET /pl", 7));
    close(fd);
    CU_ASSERT_TRUE(t_request(th.port, "GET /plain HTTP/1.1\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "plain\n"));
    CU_ASSERT_EQUAL(atomic_load(&th.calls), 1);
    t_stop(&th);
}

static void test_listen_errors(void)
{
    t_http_t th;
    t_start(&th);
    mq_http_t *dup = NULL;
    /* Port in use. */
    CU_ASSERT_EQUAL(mq_http_start(th.loop, "127.0.0.1", th.port, t_handle, &th, &dup), MQ_ECONN);
    CU_ASSERT_PTR_NULL(dup);
    CU_ASSERT_EQUAL(mq_http_start(th.loop, "127.0.0.1", 70000, t_handle, &th, &dup), MQ_EINVAL);
    CU_ASSERT_EQUAL(mq_http_start(th.loop, "127.0.0.1", 0, NULL, &th, &dup), MQ_EINVAL);
    CU_ASSERT_PTR_NULL(dup);
    /* NULL bind address: every address. */
    CU_ASSERT_EQUAL(mq_http_start(th.loop, NULL, 0, t_handle, &th, &dup), MQ_OK);
    static char out[4096];
    CU_ASSERT_TRUE(t_request(mq_http_port(dup), "GET /plain\r\n\r\n", out, sizeof(out)));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "plain\n"));
    mq_http_free(dup);
    mq_http_free(NULL);
    t_stop(&th);
}

static void test_free_with_open_connections(void)
{
    t_http_t th;
    t_start(&th);
    /* One idle, one halfway through its head. */
    int idle = t_connect(th.port);
    int half = t_connect(th.port);
    CU_ASSERT_FATAL(idle >= 0 && half >= 0);
    CU_ASSERT_TRUE(t_send_all(half, "GET /plain HTTP/1.1\r\n", 21));
    static char out[4096];
    /* A full round trip: both connections were accepted before it. */
    CU_ASSERT_TRUE(t_request(th.port, "GET /plain\r\n\r\n", out, sizeof(out)));
    int port = th.port;
    mq_http_free(th.http);
    /* Closed, unanswered; and the rest of the head reaches nobody. */
    CU_ASSERT_TRUE(t_read_to_eof(idle, out, sizeof(out), 5000));
    CU_ASSERT_STRING_EQUAL(out, "");
    t_send_all(half, "\r\n", 2);
    CU_ASSERT_TRUE(t_read_to_eof(half, out, sizeof(out), 5000));
    CU_ASSERT_STRING_EQUAL(out, "");
    close(idle);
    close(half);
    CU_ASSERT_EQUAL(t_connect(port), -1);
    CU_ASSERT_EQUAL(atomic_load(&th.calls), 1);
    mq_net_loop_free(th.loop);
    pthread_mutex_destroy(&th.mu);
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"answers, content types, default bodies, long targets", test_answers},
        {"head split into bytes, bare LF", test_split_head_and_bare_lf},
        {"refusals, a client that goes away", test_refusals},
        {"listen errors", test_listen_errors},
        {"free with open connections", test_free_with_open_connections},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("net_http", tests, NULL, NULL);
}
