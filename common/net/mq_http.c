/*
 * mq_http: the admin HTTP server (see mq_http.h), for the bookie's and the
 * broker's admin endpoints. The daemons own the loop and the handler; this
 * file owns the sockets and the bits of HTTP.
 *
 * A connection reads into a fixed buffer of MQ_HTTP_MAX_REQ bytes until the
 * head is complete (a blank line, CRLF or bare LF), stops reading, answers
 * with one write (status line, Content-Type, Content-Length, Connection:
 * close, body) and closes once it is written. A request that fills the
 * buffer without a blank line is answered 400 at that point.
 *
 * The server keeps its open connections in a list and counts its open
 * handles: the listener plus every connection whose close callback has not
 * run. mq_http_free posts a task that closes them all and waits for the
 * count to reach zero (as mq_net_server_free does), so when it returns no
 * callback on the loop refers to the server or to the handler's argument.
 *
 * Threads: start and free from any thread but the loop's; everything else
 * runs on the loop thread.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_http.h"
#include "mq_log.h"
#include "mq_net_int.h"
#include "mq_util.h"

/* Pending connections the kernel queues for the listener. */
#define MQ_HTTP_BACKLOG 64

typedef struct mq_http_conn {
    uv_tcp_t tcp;
    mq_http_t *http;
    struct mq_http_conn *prev;
    struct mq_http_conn *next;
    uv_write_t wreq;
    char *out; /* the answer, until the connection is closed */
    size_t len;
    char buf[MQ_HTTP_MAX_REQ]; /* the head, NUL-terminated */
} mq_http_conn_t;

struct mq_http {
    mq_net_loop_t *loop;
    mq_http_handler_cb cb;
    void *arg;
    struct sockaddr_storage addr;
    char where[80]; /* "host:port" (the bound port once listening), for logs */
    int port;

    /* @locality loop thread */
    uv_tcp_t listener;
    bool listening;
    mq_http_conn_t *conns;
    unsigned nhandles;
    bool freeing;
    mq_net_sync_t *free_sync;
};

/* Reason phrases, and the bodies used when a handler gives none. */
static const struct {
    int status;
    const char *reason;
    const char *text;
} mq_http_statuses[] = {
    {200, "OK", "OK\n"},
    {400, "Bad Request", "bad request\n"},
    {404, "Not Found", "not found\n"},
    {500, "Internal Server Error", "internal server error\n"},
    {503, "Service Unavailable", "service unavailable\n"},
};

static void mq_http_status_text(int status, const char **reason, const char **text)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(mq_http_statuses); i++) {
        if (mq_http_statuses[i].status == status) {
            *reason = mq_http_statuses[i].reason;
            *text = mq_http_statuses[i].text;
            return;
        }
    }
    /* Clients go by the code; the phrase is informative only. */
    *reason = "Unknown";
    *text = "\n";
}

/* --- connections ---------------------------------------------------------- */

static void mq_http_check_done(mq_http_t *http)
{
    if (http->freeing && http->nhandles == 0) {
        /* The waiter frees http as soon as it wakes: nothing after this. */
        mq_net_sync_signal(http->free_sync);
    }
}

static void mq_http_conn_closed(uv_handle_t *h)
{
    mq_http_conn_t *c = h->data;
    mq_http_t *http = c->http;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        http->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    free(c->out);
    free(c);
    http->nhandles--;
    mq_http_check_done(http);
}

/* Idempotent: a write cancelled by a close reports after the close began. */
static void mq_http_conn_close(mq_http_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, mq_http_conn_closed);
    }
}

static void mq_http_written(uv_write_t *req, int status)
{
    MQ_UNUSED(status);
    mq_http_conn_close(req->data);
}

/* Writes the answer (body is copied) and closes once it is written. */
static void mq_http_respond(mq_http_conn_t *c, int status, const char *ctype, const char *body)
{
    MQ_ASSERT(status >= 100 && status <= 599);
    const char *reason;
    const char *text;
    mq_http_status_text(status, &reason, &text);
    if (!body) {
        body = text;
    }
    size_t blen = strlen(body);
    /* The fixed part of the head is under 100 bytes. */
    size_t cap = 128 + strlen(reason) + strlen(ctype) + blen;
    c->out = mq_malloc(cap);
    int n = snprintf(c->out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, ctype, blen, body);
    MQ_ASSERT(n > 0 && (size_t)n < cap);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, mq_http_written) != 0) {
        mq_http_conn_close(c);
    }
}

/* The head is complete: parses the request line and answers. */
static void mq_http_handle(mq_http_conn_t *c)
{
    /* Only the request line matters: "METHOD target [version]". It is cut
     * out in place, so the target is not truncated, whatever its length. */
    char *line = c->buf + strspn(c->buf, " \t");
    line[strcspn(line, "\r\n")] = '\0';
    char *save = NULL;
    char *method = strtok_r(line, " \t", &save);
    char *path = method ? strtok_r(NULL, " \t", &save) : NULL;
    if (!path || strcmp(method, "GET") != 0) {
        mq_http_respond(c, 400, "text/plain", "only GET is supported\n");
        return;
    }
    char *body = NULL;
    const char *ctype = NULL;
    int status = c->http->cb(path, &body, &ctype, c->http->arg);
    mq_http_respond(c, status, ctype ? ctype : "text/plain", body);
    free(body);
}

static void mq_http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    MQ_UNUSED(suggested);
    mq_http_conn_t *c = h->data;
    /* One byte stays free for the terminating NUL. */
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void mq_http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    MQ_UNUSED(buf);
    mq_http_conn_t *c = s->data;
    if (n < 0) {
        mq_http_conn_close(c);
        return;
    }
    /* The blank line may straddle two reads: look from a little before the
     * new bytes, not from the start again. */
    size_t from = c->len > 3 ? c->len - 3 : 0;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf + from, "\r\n\r\n") || strstr(c->buf + from, "\n\n")) {
        uv_read_stop(s);
        mq_http_handle(c);
    } else if (c->len >= sizeof(c->buf) - 1) {
        uv_read_stop(s);
        mq_http_respond(c, 400, "text/plain", "request too large\n");
    }
}

static void mq_http_on_connection(uv_stream_t *listener, int status)
{
    mq_http_t *http = listener->data;
    if (status < 0) {
        MQ_LOG_WARN("http accept failed server=%s err=%s", http->where, uv_err_name(status));
        return;
    }
    mq_http_conn_t *c = mq_calloc(1, sizeof(*c));
    int rc = uv_tcp_init(listener->loop, &c->tcp);
    if (rc != 0) {
        MQ_LOG_WARN("http accept failed server=%s err=%s", http->where, uv_err_name(rc));
        free(c);
        return;
    }
    c->http = http;
    c->tcp.data = c;
    c->next = http->conns;
    if (c->next) {
        c->next->prev = c;
    }
    http->conns = c;
    http->nhandles++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, mq_http_alloc, mq_http_read) != 0) {
        mq_http_conn_close(c);
    }
}

/* --- listener --------------------------------------------------------------- */

static void mq_http_listener_closed(uv_handle_t *h)
{
    mq_http_t *http = h->data;
    http->nhandles--;
    mq_http_check_done(http);
}

static void mq_http_failed_closed(uv_handle_t *h)
{
    /* A listener that never worked: the server was not handed out. */
    free(h->data);
}

typedef struct mq_http_start_arg {
    mq_http_t *http;
    mq_err_t err;
} mq_http_start_arg_t;

/* On failure the server is freed here or by the listener's close callback;
 * the caller must not touch it. */
static void mq_http_start_task(void *arg)
{
    mq_http_start_arg_t *st = arg;
    mq_http_t *http = st->http;
    int rc = uv_tcp_init(mq_net_loop_uv(http->loop), &http->listener);
    if (rc != 0) {
        MQ_LOG_WARN("http listen failed server=%s err=%s", http->where, uv_strerror(rc));
        st->err = MQ_ECONN;
        free(http);
        return;
    }
    http->listener.data = http;
    rc = uv_tcp_bind(&http->listener, (const struct sockaddr *)&http->addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&http->listener, MQ_HTTP_BACKLOG, mq_http_on_connection);
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (rc == 0) {
        rc = uv_tcp_getsockname(&http->listener, (struct sockaddr *)&ss, &len);
    }
    if (rc != 0) {
        MQ_LOG_WARN("http listen failed server=%s err=%s", http->where, uv_strerror(rc));
        st->err = MQ_ECONN;
        uv_close((uv_handle_t *)&http->listener, mq_http_failed_closed);
        return;
    }
    http->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    /* Port 0 asked for any port: log the one we got. */
    char *colon = strrchr(http->where, ':');
    snprintf(colon, sizeof(http->where) - (size_t)(colon - http->where), ":%d", http->port);
    http->listening = true;
    http->nhandles = 1;
    st->err = MQ_OK;
}

mq_err_t mq_http_start(mq_net_loop_t *loop, const char *bind_addr, int port, mq_http_handler_cb cb,
                       void *arg, mq_http_t **out)
{
    if (!loop || !cb || !out || port < 0 || port > 65535) {
        return MQ_EINVAL;
    }
    MQ_ASSERT(!mq_net_loop_on_thread(loop));
    if (!bind_addr || !*bind_addr) {
        bind_addr = "0.0.0.0";
    }
    struct sockaddr_storage addr;
    mq_err_t err = mq_net_addr_resolve(bind_addr, port, &addr);
    if (err != MQ_OK) {
        return err == MQ_EINVAL ? MQ_EINVAL : MQ_ECONN;
    }
    mq_http_t *http = mq_calloc(1, sizeof(*http));
    http->loop = loop;
    http->cb = cb;
    http->arg = arg;
    http->addr = addr;
    snprintf(http->where, sizeof(http->where), "%s:%d", bind_addr, port);

    mq_http_start_arg_t st = {http, MQ_ECONN};
    mq_net_loop_run_sync(loop, mq_http_start_task, &st);
    if (st.err != MQ_OK) {
        return st.err;
    }
    MQ_LOG_INFO("http admin server listening server=%s port=%d", http->where, http->port);
    *out = http;
    return MQ_OK;
}

int mq_http_port(const mq_http_t *http)
{
    return http->port;
}

static void mq_http_free_task(void *arg)
{
    mq_http_t *http = arg;
    http->freeing = true;
    if (http->listening) {
        http->listening = false;
        uv_close((uv_handle_t *)&http->listener, mq_http_listener_closed);
    }
    /* Close callbacks come later from the loop, so the list holds still. */
    for (mq_http_conn_t *c = http->conns; c; c = c->next) {
        mq_http_conn_close(c);
    }
    /* The listener's close is pending at least, so this only signals when
     * nothing was open at all. */
    mq_http_check_done(http);
}

void mq_http_free(mq_http_t *http)
{
    if (!http) {
        return;
    }
    MQ_ASSERT(!mq_net_loop_on_thread(http->loop));
    mq_net_sync_t sync;
    mq_net_sync_init(&sync);
    http->free_sync = &sync;
    mq_net_loop_post(http->loop, mq_http_free_task, http);
    mq_net_sync_wait(&sync);
    mq_net_sync_fini(&sync);
    MQ_LOG_INFO("http admin server closed server=%s", http->where);
    free(http);
}

char *mq_http_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    MQ_ASSERT(n >= 0);
    char *s = mq_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
