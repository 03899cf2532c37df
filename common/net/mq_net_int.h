/*
 * mq_net_int: what the files of common/net/ share and nobody else sees.
 *
 * - Hooks: a loop keeps a list of armed hooks that it runs after I/O (uv_check)
 *   and before it blocks (uv_prepare). A connection arms its hook when it has
 *   output to write or buffered input to parse; a client arms its hook when
 *   requests wait to be encoded. So everything produced during one iteration
 *   goes out together, and nothing waits while the loop sleeps.
 * - Sync: a mutex, a condition and a flag, for "post to the loop and wait
 *   until it says done" (run_sync, server and client free).
 * - Connections: the framing and buffering engine used by both the server
 *   (accepted sockets) and the client (outgoing ones), with internal callbacks
 *   that tell the owner about frames, connect completion and close.
 *
 * Everything here runs on the loop thread unless a function says otherwise.
 */
#ifndef MQ_NET_INT_H
#define MQ_NET_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "mq_net.h"

/* Hooks (mq_net_hook_t, mq_net_loop_arm) are in mq_net.h. */

/* --- sync ----------------------------------------------------------------- */

typedef struct mq_net_sync {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} mq_net_sync_t;

void mq_net_sync_init(mq_net_sync_t *sync);
void mq_net_sync_fini(mq_net_sync_t *sync);
/* Marks done and wakes the waiter. The waiter may destroy sync as soon as
 * this returns, so the caller must not touch sync (or what holds it) after. */
void mq_net_sync_signal(mq_net_sync_t *sync);
void mq_net_sync_wait(mq_net_sync_t *sync);

/* --- addresses ------------------------------------------------------------ */

/* Resolves host:port to an address: numeric IPv4/IPv6 directly, otherwise
 * with a blocking getaddrinfo (startup paths only). Logs why on failure.
 * Any thread. */
mq_err_t mq_net_addr_resolve(const char *host, int port, struct sockaddr_storage *out);
/* Numeric only: MQ_EINVAL when host is not a literal address. Any thread. */
mq_err_t mq_net_addr_numeric(const char *host, int port, struct sockaddr_storage *out);
/* "ip:port" (or "[ip6]:port") of addr into buf. Any thread. */
void mq_net_addr_format(const struct sockaddr *addr, char *buf, size_t cap);
/* Copies opts (or the defaults when NULL), fixing values that cannot work
 * (zero sizes, low water above high water). Any thread. */
void mq_net_opts_fix(const mq_net_opts_t *in, mq_net_opts_t *out);
/* The loop's pool of read buffers of buf_size (created on first use, with
 * max_cached bytes of reuse; released with the loop). @locality loop thread */
mq_buf_pool_t *mq_net_loop_pool(mq_net_loop_t *loop, size_t buf_size, size_t max_cached);

/* --- connections ---------------------------------------------------------- */

/* What a connection tells its owner (server or client). frame and oversize
 * get cb_arg; connect and close get owner. */
typedef struct mq_net_conn_ops {
    void (*on_frame)(mq_net_conn_t *conn, const mq_net_frame_t *frame, void *cb_arg);
    void (*on_oversize)(mq_net_conn_t *conn, uint64_t request_id, size_t frame_len, void *cb_arg);
    /* Outgoing connections: the connect finished (status 0) or failed (a
     * libuv error; UV_ECANCELED when the connection was closed first). */
    void (*on_connect)(mq_net_conn_t *conn, int status, void *owner);
    /* The handle is closed: no more callbacks after this one. */
    void (*on_close)(mq_net_conn_t *conn, void *owner);
} mq_net_conn_ops_t;

/* Server side: a connection for an incoming socket on listener. On success
 * the connection holds one reference (the open handle's), released after
 * on_close; reading starts with mq_net_conn_start. */
mq_err_t mq_net_conn_accept(mq_net_loop_t *loop, uv_stream_t *listener, const mq_net_opts_t *opts,
                            const mq_net_conn_ops_t *ops, void *cb_arg, void *owner,
                            mq_net_conn_t **out);
/* Client side: starts connecting to addr; ops->on_connect reports the
 * outcome. Same reference rule. Reading starts by itself once connected
 * (before on_connect). On failure nothing was created. */
mq_err_t mq_net_conn_connect(mq_net_loop_t *loop, const struct sockaddr *addr,
                             const mq_net_opts_t *opts, const mq_net_conn_ops_t *ops, void *cb_arg,
                             void *owner, mq_net_conn_t **out);
/* Starts reading an accepted connection. */
void mq_net_conn_start(mq_net_conn_t *conn);
/* A slot number the owner keeps in the connection (its index in the
 * owner's array, for O(1) removal). */
void mq_net_conn_set_slot(mq_net_conn_t *conn, size_t slot);
size_t mq_net_conn_slot(const mq_net_conn_t *conn);
/* Closes now: queued output is dropped, in-flight writes are cancelled.
 * Idempotent; on_close follows from the loop. */
void mq_net_conn_close_now(mq_net_conn_t *conn);
/* Queues a frame and takes over the reference held by *data (which is
 * cleared); meta is copied. The caller checked sizes and that the connection
 * is open. */
void mq_net_conn_queue(mq_net_conn_t *conn, uint64_t request_id, const void *meta, size_t meta_len,
                       mq_slice_t *data);

#endif
