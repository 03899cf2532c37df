/*
 * mq_http: the small admin HTTP server of our daemons (the bookie's
 * bk_http.c, the broker's br_http.c): health checks, Prometheus metrics and
 * state as JSON, for operators and scrapers, never for data.
 *
 * Deliberately minimal, HTTP/1.0 style: one request per connection, answered
 * with "Connection: close" and the connection closed once the answer is
 * written. The server reads the request head only (up to MQ_HTTP_MAX_REQ
 * bytes, the blank line ends it) and refuses with 400, without asking the
 * handler, a request that is larger or whose method is not GET.
 *
 * Threads: the server lives on a mq_net loop; the handler runs on that loop
 * thread and must not block (a daemon whose loop carries its protocol should
 * answer from counters and atomics). start and free from any thread but the
 * loop's.
 */
#ifndef MQ_HTTP_H
#define MQ_HTTP_H

#include "mq_err.h"
#include "mq_net.h"

/* Largest request head accepted, request line and headers. */
#define MQ_HTTP_MAX_REQ 8192

typedef struct mq_http mq_http_t;

/*
 * Answers GET path (the request target as sent, query string included) and
 * returns the HTTP status (200, 404 for an unknown path, ...). It may set
 * *body to a malloc'd NUL-terminated string, which the server frees, and
 * *content_type to a string that outlives the call (default "text/plain");
 * left NULL, the body is a short text for the status ("not found\n").
 * Loop thread; must not block.
 */
typedef int (*mq_http_handler_cb)(const char *path, char **body, const char **content_type,
                                  void *arg);

/*
 * Listens on bind_addr:port (NULL or "": every address; port 0: any free
 * port) on loop and answers with cb(..., arg). Returns once listening, or
 * MQ_ECONN (the reason logged, e.g. address in use) / MQ_EINVAL, and then
 * nothing was created. Not from the loop thread.
 */
mq_err_t mq_http_start(mq_net_loop_t *loop, const char *bind_addr, int port, mq_http_handler_cb cb,
                       void *arg, mq_http_t **out);
/* The bound port. */
int mq_http_port(const mq_http_t *http);
/* Closes the listener and every open connection (answers not yet written
 * are dropped) and frees; the handler is not called after it returns, so
 * arg may go next. NULL is a no-op. Not from the loop thread. */
void mq_http_free(mq_http_t *http);

/* A malloc'd, formatted string for a handler's *body (aborts on OOM). Any
 * thread. */
char *mq_http_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
