/*
 * mq_net: framed, pipelined TCP on libuv, for the bookie protocol.
 *
 * Frame format (all integers big-endian):
 *   u32 frame_len    bytes after this field: 12 + meta_len + data_len
 *   u32 meta_len     length of the meta part (a small protobuf message)
 *   u64 request_id   chosen by the client, echoed by the server
 *   meta_len bytes   meta
 *   the rest         data (raw payload: an entry, a list, ...)
 * MQ_NET_HDR_SIZE = 16 bytes precede meta.
 *
 * A loop (mq_net_loop_t) is one libuv event loop on its own thread. Servers,
 * connections and clients live on a loop; their callbacks run on the loop
 * thread and must not block. Other threads hand work to a loop with
 * mq_net_loop_post().
 *
 * Zero copy: received frames reference the socket read buffer (refcounted
 * mq_buf_t); a callback that keeps bytes takes its own reference
 * (mq_slice_dup). Data given to send functions is referenced, not copied, and
 * released once written; meta is copied (it is small).
 *
 * Coalescing: everything queued for one connection during one loop iteration
 * is written with a single uv_write (writev), so many responses or requests
 * share a syscall.
 *
 * Back-pressure: when a connection's queued-but-unwritten bytes pass
 * out_high_water, the server stops reading from it until they fall below
 * out_low_water (a slow reader cannot make the server buffer without bound).
 * An application can also pause reading (mq_net_conn_pause), e.g. while its
 * journal queue is full.
 *
 * Bad input: a frame whose meta_len does not fit, a frame_len below 12 or
 * above max_frame_hard, closes the connection (logged at WARN with the peer).
 * A frame above max_frame but below max_frame_hard is read and discarded,
 * and the server's on_oversize callback may answer it by request id.
 */
#ifndef MQ_NET_H
#define MQ_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mq_buf.h"
#include "mq_err.h"
#include "mq_executor.h"

#define MQ_NET_HDR_SIZE 16
/* Largest meta part accepted: meta is a small header, never payload. */
#define MQ_NET_MAX_META 65536

/* --- loops ---------------------------------------------------------------- */

typedef struct mq_net_loop mq_net_loop_t;

/* Starts a loop thread named name. Aborts if it cannot (startup only). */
mq_net_loop_t *mq_net_loop_new(const char *name);
/* Runs every posted task, stops the loop, joins its thread and frees it.
 * Servers and clients on it must have been freed first. Not from the loop. */
void mq_net_loop_free(mq_net_loop_t *loop);
/* Runs cb(arg) on the loop thread, in posting order. Any thread. */
void mq_net_loop_post(mq_net_loop_t *loop, mq_task_cb cb, void *arg);
/* Runs cb(arg) on the loop thread and waits for it to return. Not from the
 * loop thread. */
void mq_net_loop_run_sync(mq_net_loop_t *loop, mq_task_cb cb, void *arg);
bool mq_net_loop_on_thread(const mq_net_loop_t *loop);
/* The libuv loop, for timers and signals of the owner (loop thread only). */
uv_loop_t *mq_net_loop_uv(mq_net_loop_t *loop);
/* An executor whose tasks and timers run on the loop thread (see
 * mq_executor_new_hosted): state owned by its keys and the loop's own
 * callbacks meet on one thread with no hand-off between them. Its tasks
 * must never block, and never wait for the loop. Free it with
 * mq_executor_free (not from the loop), before the loop. */
mq_executor_t *mq_net_loop_executor_new(mq_net_loop_t *loop, const char *name);

/* A hook runs once on the loop thread at the end of the iteration in which
 * it was armed (after that iteration's I/O callbacks), or before the loop
 * next blocks, whichever comes first: work produced by several callbacks of
 * one iteration is done once. Hooks armed while hooks run run in a further
 * round of the same pass. */
typedef struct mq_net_hook mq_net_hook_t;
typedef void (*mq_net_hook_cb)(mq_net_hook_t *hook);

/* Intrusive node; embed it and recover the owner with MQ_CONTAINER_OF. */
struct mq_net_hook {
    mq_net_hook_t *prev;
    mq_net_hook_t *next;
    mq_net_hook_cb cb;
    bool armed;
};

void mq_net_hook_init(mq_net_hook_t *hook, mq_net_hook_cb cb);
/* Arms hook; arming an armed hook does nothing. Loop thread. */
void mq_net_loop_arm(mq_net_loop_t *loop, mq_net_hook_t *hook);
/* Removes an armed hook (the owner is going away). Loop thread. */
void mq_net_loop_disarm(mq_net_loop_t *loop, mq_net_hook_t *hook);

/* --- frames --------------------------------------------------------------- */

typedef struct mq_net_frame {
    uint64_t request_id;
    mq_slice_t meta; /* borrowed for the callback */
    mq_slice_t data; /* borrowed for the callback; len may be 0 */
} mq_net_frame_t;

typedef struct mq_net_opts {
    /* Frames above this (frame_len + 4) are discarded and reported. Default
     * 5 MiB + 64 KiB. */
    size_t max_frame;
    /* Frames above this close the connection (clearly not our protocol).
     * Default 64 MiB. */
    size_t max_frame_hard;
    /* Output back-pressure thresholds. Defaults 4 MiB / 1 MiB. */
    size_t out_high_water;
    size_t out_low_water;
    /* Size of socket read buffers. Default 64 KiB. */
    size_t read_buf_size;
    /* Read buffers come from a pool per loop and size (mq_buf_pool_t): at
     * most this many bytes of released buffers are kept for reuse. Default
     * 8 MiB. A server whose application keeps received bytes for a while
     * (a bookie's write cache) sets it to what it keeps. */
    size_t read_pool_bytes;
} mq_net_opts_t;

/* Fills opts with the defaults. */
void mq_net_opts_default(mq_net_opts_t *opts);

/* --- server ----------------------------------------------------------------- */

typedef struct mq_net_server mq_net_server_t;
typedef struct mq_net_conn mq_net_conn_t;

typedef struct mq_net_server_cbs {
    /* A new connection was accepted (may be NULL). */
    void (*on_open)(mq_net_conn_t *conn, void *arg);
    /* A complete frame arrived. */
    void (*on_frame)(mq_net_conn_t *conn, const mq_net_frame_t *frame, void *arg);
    /* A frame above max_frame is being discarded; frame_len as announced. The
     * connection stays usable. May be NULL. */
    void (*on_oversize)(mq_net_conn_t *conn, uint64_t request_id, size_t frame_len, void *arg);
    /* The connection closed (peer, error, or server free). No sends after
     * this; references taken with mq_net_conn_ref stay valid. May be NULL. */
    void (*on_close)(mq_net_conn_t *conn, void *arg);
} mq_net_server_cbs_t;

/*
 * Listens on host:port (port 0: any free port) on loop. opts may be NULL.
 * May be called from any thread; returns once listening (or failed:
 * MQ_ECONN with the reason logged, e.g. address in use).
 */
mq_err_t mq_net_server_new(mq_net_loop_t *loop, const char *host, int port,
                           const mq_net_opts_t *opts, const mq_net_server_cbs_t *cbs, void *arg,
                           mq_net_server_t **out);
/* The bound port. */
int mq_net_server_port(const mq_net_server_t *srv);
/* Stops accepting new connections; existing ones continue. Any thread;
 * returns once done. */
void mq_net_server_stop_accepting(mq_net_server_t *srv);
/* Closes the listener and every connection (on_close runs for each), then
 * frees. Any thread except the loop; returns once done. */
void mq_net_server_free(mq_net_server_t *srv);

/* Queues a frame (the request id is the one being answered). meta is copied,
 * data (may be NULL) is referenced until written. Loop thread only.
 * MQ_ECLOSED when the connection is closed (nothing taken). */
mq_err_t mq_net_conn_send(mq_net_conn_t *conn, uint64_t request_id, const void *meta,
                          size_t meta_len, const mq_slice_t *data);
/* Connection references, for work that completes on other threads. Any
 * thread. */
mq_net_conn_t *mq_net_conn_ref(mq_net_conn_t *conn);
void mq_net_conn_unref(mq_net_conn_t *conn);
bool mq_net_conn_closed(const mq_net_conn_t *conn);
/* Stops / restarts reading from the socket (application back-pressure); the
 * two nest (reading resumes when every pause was resumed). Loop thread. */
void mq_net_conn_pause(mq_net_conn_t *conn);
void mq_net_conn_resume(mq_net_conn_t *conn);
/* Closes after writing what is queued. Loop thread. */
void mq_net_conn_close(mq_net_conn_t *conn);
/* "ip:port" of the peer. */
const char *mq_net_conn_peer(const mq_net_conn_t *conn);
/* The loop a connection lives on. */
mq_net_loop_t *mq_net_conn_loop(const mq_net_conn_t *conn);
/* One pointer of application state per connection. */
void mq_net_conn_set_user(mq_net_conn_t *conn, void *user);
void *mq_net_conn_get_user(const mq_net_conn_t *conn);
/* Bytes queued and not yet written. */
size_t mq_net_conn_out_bytes(const mq_net_conn_t *conn);

/* --- client ------------------------------------------------------------------ */

typedef struct mq_net_client mq_net_client_t;

typedef struct mq_net_client_opts {
    mq_net_opts_t net;
    /* Connection attempt timeout. Default 5000 ms. */
    uint32_t connect_timeout_ms;
    /* After a failed connect or a lost connection, requests fail fast with
     * MQ_ECONN until the backoff has passed; it doubles from backoff_min_ms
     * to backoff_max_ms and resets once connected. Defaults 100 / 5000 ms. */
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
} mq_net_client_opts_t;

void mq_net_client_opts_default(mq_net_client_opts_t *opts);

/*
 * Called exactly once per accepted request, on the loop thread: with MQ_OK
 * and the response frame (borrowed for the call), or with an error and NULL:
 * MQ_ETIMEDOUT (no answer within the request's timeout), MQ_ECONN (could not
 * connect, or the connection was lost before the answer), MQ_ECLOSED (the
 * client was freed).
 */
typedef void (*mq_net_response_cb)(mq_err_t err, const mq_net_frame_t *resp, void *arg);

/* Creates a client for host:port on loop; connects lazily on first request
 * and reconnects by itself. opts may be NULL. Any thread. */
mq_err_t mq_net_client_new(mq_net_loop_t *loop, const char *host, int port,
                           const mq_net_client_opts_t *opts, mq_net_client_t **out);
/*
 * Sends a request; the client assigns its request id. meta is copied; data
 * (may be NULL) is referenced until written. timeout_ms 0 means no timeout.
 * Any thread. Returns MQ_OK when cb will be called, or an error (MQ_ECLOSED,
 * MQ_EINVAL) and then cb is never called.
 */
mq_err_t mq_net_client_request(mq_net_client_t *cl, const void *meta, size_t meta_len,
                               const mq_slice_t *data, uint32_t timeout_ms, mq_net_response_cb cb,
                               void *arg);
/* Requests sent and not yet answered. Any thread (approximate). */
size_t mq_net_client_inflight(const mq_net_client_t *cl);
/* True while a connection is established. Any thread (approximate). */
bool mq_net_client_connected(const mq_net_client_t *cl);
/* Fails every pending request with MQ_ECLOSED (callbacks run), closes and
 * frees. Any thread except the loop thread; returns once done. */
void mq_net_client_free(mq_net_client_t *cl);

/* Parses "host:port" into host (cap bytes) and *port. */
mq_err_t mq_net_parse_hostport(const char *s, char *host, size_t cap, int *port);

#endif
