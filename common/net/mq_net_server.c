/*
 * mq_net_server: a listening socket on a loop and the connections it
 * accepted. The bookie creates one at startup and frees it at shutdown; its
 * callbacks (mq_net_server_cbs_t) run on the loop thread.
 *
 * The server keeps its open connections in an array (each connection knows
 * its slot, so removal is O(1)) and counts its open handles: the listener
 * plus every connection whose close callback has not run. mq_net_server_free
 * posts a task that closes them all and waits for the count to reach zero,
 * so every on_close has run when it returns and nothing on the loop refers
 * to the server any more. Connections referenced by the application outlive
 * the server as closed shells (sends return MQ_ECLOSED).
 *
 * Threads: new, stop_accepting and free from any thread (free and a
 * stop_accepting that must wait: not from the loop); the rest on the loop.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_net.h"
#include "mq_net_int.h"
#include "mq_util.h"

struct mq_net_server {
    mq_net_loop_t *loop;
    mq_net_opts_t opts;
    mq_net_server_cbs_t cbs;
    void *arg;
    mq_net_conn_ops_t ops;
    struct sockaddr_storage addr;
    char where[80]; /* "host:port" (the bound port once listening), for logs */
    int port;

    /* @locality loop thread */
    uv_tcp_t listener;
    bool listening;
    mq_net_conn_t **conns;
    size_t nconns;
    size_t conns_cap;
    unsigned nhandles;
    bool freeing;
    mq_net_sync_t *free_sync;
};

static void mq_net_server_check_done(mq_net_server_t *srv)
{
    if (srv->freeing && srv->nhandles == 0) {
        /* The waiter frees srv as soon as it wakes: nothing after this. */
        mq_net_sync_signal(srv->free_sync);
    }
}

static void mq_net_server_conn_closed(mq_net_conn_t *conn, void *owner)
{
    mq_net_server_t *srv = owner;
    size_t slot = mq_net_conn_slot(conn);
    MQ_ASSERT(slot < srv->nconns && srv->conns[slot] == conn);
    mq_net_conn_t *last = srv->conns[--srv->nconns];
    srv->conns[slot] = last;
    mq_net_conn_set_slot(last, slot);
    MQ_LOG_DEBUG("net connection closed server=%s peer=%s", srv->where, mq_net_conn_peer(conn));
    if (srv->cbs.on_close) {
        srv->cbs.on_close(conn, srv->arg);
    }
    srv->nhandles--;
    mq_net_server_check_done(srv);
}

static void mq_net_server_on_connection(uv_stream_t *listener, int status)
{
    mq_net_server_t *srv = listener->data;
    if (status < 0) {
        MQ_LOG_WARN("net accept failed server=%s err=%s", srv->where, uv_err_name(status));
        return;
    }
    mq_net_conn_t *conn;
    if (mq_net_conn_accept(srv->loop, listener, &srv->opts, &srv->ops, srv->arg, srv, &conn) !=
        MQ_OK) {
        return;
    }
    if (srv->nconns == srv->conns_cap) {
        srv->conns_cap = srv->conns_cap ? srv->conns_cap * 2 : 16;
        srv->conns = mq_realloc(srv->conns, srv->conns_cap * sizeof(*srv->conns));
    }
    mq_net_conn_set_slot(conn, srv->nconns);
    srv->conns[srv->nconns++] = conn;
    srv->nhandles++;
    MQ_LOG_DEBUG("net connection accepted server=%s peer=%s", srv->where, mq_net_conn_peer(conn));
    if (srv->cbs.on_open) {
        srv->cbs.on_open(conn, srv->arg);
    }
    mq_net_conn_start(conn);
}

static void mq_net_server_listener_closed(uv_handle_t *handle)
{
    mq_net_server_t *srv = handle->data;
    srv->nhandles--;
    mq_net_server_check_done(srv);
}

static void mq_net_server_failed_closed(uv_handle_t *handle)
{
    /* A listener that never worked: the server was not handed out. */
    mq_net_server_t *srv = handle->data;
    free(srv);
}

typedef struct mq_net_server_start {
    mq_net_server_t *srv;
    mq_err_t err;
} mq_net_server_start_t;

/* On failure the server is freed here or by the listener's close callback;
 * the caller must not touch it. */
static void mq_net_server_start_task(void *arg)
{
    mq_net_server_start_t *st = arg;
    mq_net_server_t *srv = st->srv;
    int rc = uv_tcp_init(mq_net_loop_uv(srv->loop), &srv->listener);
    if (rc != 0) {
        MQ_LOG_WARN("net listen failed server=%s err=%s", srv->where, uv_strerror(rc));
        st->err = MQ_ECONN;
        free(srv);
        return;
    }
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&srv->addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, mq_net_server_on_connection);
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (rc == 0) {
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    }
    if (rc != 0) {
        MQ_LOG_WARN("net listen failed server=%s err=%s", srv->where, uv_strerror(rc));
        st->err = MQ_ECONN;
        uv_close((uv_handle_t *)&srv->listener, mq_net_server_failed_closed);
        return;
    }
    srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    /* Port 0 asked for any port: log the one we got. */
    char *colon = strrchr(srv->where, ':');
    snprintf(colon, sizeof(srv->where) - (size_t)(colon - srv->where), ":%d", srv->port);
    srv->listening = true;
    srv->nhandles = 1;
    st->err = MQ_OK;
}

mq_err_t mq_net_server_new(mq_net_loop_t *loop, const char *host, int port,
                           const mq_net_opts_t *opts, const mq_net_server_cbs_t *cbs, void *arg,
                           mq_net_server_t **out)
{
    if (!loop || !cbs || !cbs->on_frame || !out || port < 0 || port > 65535) {
        return MQ_EINVAL;
    }
    if (!host || !*host) {
        host = "0.0.0.0";
    }
    struct sockaddr_storage addr;
    mq_err_t err = mq_net_addr_resolve(host, port, &addr);
    if (err != MQ_OK) {
        return err == MQ_EINVAL ? MQ_EINVAL : MQ_ECONN;
    }
    mq_net_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->loop = loop;
    mq_net_opts_fix(opts, &srv->opts);
    srv->cbs = *cbs;
    srv->arg = arg;
    srv->ops.on_frame = cbs->on_frame;
    srv->ops.on_oversize = cbs->on_oversize;
    srv->ops.on_close = mq_net_server_conn_closed;
    srv->addr = addr;
    snprintf(srv->where, sizeof(srv->where), "%s:%d", host, port);

    mq_net_server_start_t st = {srv, MQ_ECONN};
    if (mq_net_loop_on_thread(loop)) {
        mq_net_server_start_task(&st);
    } else {
        mq_net_loop_run_sync(loop, mq_net_server_start_task, &st);
    }
    if (st.err != MQ_OK) {
        return st.err;
    }
    MQ_LOG_INFO("net listening server=%s port=%d", srv->where, srv->port);
    *out = srv;
    return MQ_OK;
}

int mq_net_server_port(const mq_net_server_t *srv)
{
    return srv->port;
}

static void mq_net_server_stop_task(void *arg)
{
    mq_net_server_t *srv = arg;
    if (srv->listening) {
        srv->listening = false;
        /* uv_close stops accepting and closes the socket right away; the
         * callback only releases the handle. */
        uv_close((uv_handle_t *)&srv->listener, mq_net_server_listener_closed);
    }
}

void mq_net_server_stop_accepting(mq_net_server_t *srv)
{
    if (mq_net_loop_on_thread(srv->loop)) {
        mq_net_server_stop_task(srv);
    } else {
        mq_net_loop_run_sync(srv->loop, mq_net_server_stop_task, srv);
    }
}

static void mq_net_server_free_task(void *arg)
{
    mq_net_server_t *srv = arg;
    srv->freeing = true;
    mq_net_server_stop_task(srv);
    for (size_t i = 0; i < srv->nconns; i++) {
        mq_net_conn_close_now(srv->conns[i]);
    }
    /* The listener's close is pending at least, so this only signals when
     * the loop had nothing open at all. */
    mq_net_server_check_done(srv);
}

void mq_net_server_free(mq_net_server_t *srv)
{
    if (!srv) {
        return;
    }
    MQ_ASSERT(!mq_net_loop_on_thread(srv->loop));
    mq_net_sync_t sync;
    mq_net_sync_init(&sync);
    srv->free_sync = &sync;
    mq_net_loop_post(srv->loop, mq_net_server_free_task, srv);
    mq_net_sync_wait(&sync);
    mq_net_sync_fini(&sync);
    MQ_LOG_INFO("net server closed server=%s", srv->where);
    free(srv->conns);
    free(srv);
}
