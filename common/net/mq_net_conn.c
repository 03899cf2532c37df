/*
 * mq_net_conn: one framed TCP connection, accepted by a server or opened by a
 * client. It turns bytes into frames on the way in and frames into one
 * writev per loop iteration on the way out. Everything runs on the loop
 * thread except ref/unref/closed/out_bytes, which any thread may call.
 *
 * Read path. Bytes are read into rbuf, a refcounted mq_buf_t of
 * read_buf_size. Every complete frame in it is handed to on_frame as slices
 * into rbuf (no copy, no allocation per frame; a callback that keeps bytes
 * takes its own reference). Each header is checked before it is trusted:
 * frame_len below 12, frame_len + 4 above max_frame_hard, or meta_len above
 * frame_len - 12 or MQ_NET_MAX_META close the connection (WARN with the
 * peer). A frame above max_frame is skipped in "discard mode": its bytes are
 * counted off as they arrive, never buffered, on_oversize reports it, and
 * the next frame is parsed normally. After a parse pass, what is left is at
 * most one partial frame:
 *  - nothing left: rbuf is reused from the start when nobody else holds a
 *    reference (the refcount is 1: no slice of it escaped); otherwise the
 *    next read appends behind the bytes the slices hold, as long as a
 *    quarter of the buffer is free, and only then is it dropped and a fresh
 *    one allocated. A bookie keeps every added entry in its read buffer
 *    until a checkpoint, and one add arrives per read at moderate rates: a
 *    fresh buffer per read cost an mmap, page faults and later an munmap
 *    (with its TLB shootdown) per entry, and left most of each buffer
 *    unused;
 *  - a partial frame that fits in the rest of the buffer: read on;
 *  - otherwise the partial bytes move to the front of rbuf (when it is
 *    exclusive and of the right size) or to a fresh buffer of
 *    max(read_buf_size, frame size); only those bytes are copied.
 * Sizes that come from the network are allocated with mq_buf_try_new; a
 * failure closes the connection with a WARN.
 *
 * Write path. mq_net_conn_send (and the client, through mq_net_conn_queue)
 * append to the current batch: the 16-byte header and the meta are copied
 * into the batch's arena, data slices are referenced. The connection arms its
 * loop hook, which runs once after the iteration's I/O callbacks (or before
 * the loop blocks), so every frame queued during one iteration leaves in one
 * writev: arena runs and data slices alternate in a uv_buf_t array. The
 * flush first tries uv_try_write (the common case: the socket has room, the
 * references are released at once, and no write request or callback is
 * involved); what does not fit goes to uv_write, and that batch stays in
 * flight until its callback releases it. At most one batch is in flight;
 * frames queued meanwhile wait in the next batch, which therefore grows with
 * the backlog and keeps the syscall count low exactly when the peer is slow.
 * Two batches are kept per connection and reused, so steady state allocates
 * nothing.
 *
 * Back-pressure. out_bytes counts queued and in-flight bytes. On a server
 * connection, passing out_high_water stops reading (and the delivery of
 * frames already buffered) until out_bytes falls to out_low_water. The
 * application's pause/resume nest on top. A client connection never stops
 * reading for its own output: both sides doing so would deadlock.
 *
 * Life cycle. The open handle holds one reference; mq_net_conn_ref adds
 * more. mq_net_conn_close waits for the queued output, then closes;
 * mq_net_conn_close_now closes at once. Either marks the connection closed
 * (sends return MQ_ECLOSED), stops delivery, and ends with ops->on_close from
 * the handle's close callback, after libuv cancelled any write in flight. The
 * memory goes when the last reference does, possibly on another thread.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_net.h"
#include "mq_net_int.h"
#include "mq_util.h"

/* Arenas and reference arrays above these sizes are trimmed after use, so a
 * burst of large metas or thousands of frames does not pin memory. */
#define MQ_NET_ARENA_KEEP (256u * 1024)
#define MQ_NET_REFS_KEEP 4096u

typedef struct mq_net_wref {
    size_t arena_off; /* arena bytes written before this data part */
    mq_slice_t data;
} mq_net_wref_t;

typedef struct mq_net_wbatch {
    uv_write_t req;
    uint8_t *arena;
    size_t arena_len;
    size_t arena_cap;
    mq_net_wref_t *refs;
    size_t nrefs;
    size_t refs_cap;
    size_t bytes; /* everything the batch will write */
} mq_net_wbatch_t;

struct mq_net_conn {
    uv_tcp_t tcp; /* tcp.data == this */
    uv_connect_t connect_req;
    atomic_uint refcnt;
    atomic_bool closed;      /* no sends accepted any more */
    atomic_size_t out_bytes; /* written by the loop thread only */
    mq_net_loop_t *loop;
    mq_net_opts_t opts;
    const mq_net_conn_ops_t *ops;
    void *cb_arg;
    void *owner;
    void *user;
    size_t slot; /* the owner's index of this connection */

    /* @locality loop thread, from here on */
    bool is_server;
    bool connected;      /* the socket is usable (client: connect done) */
    bool reading;        /* uv_read_start is in effect */
    bool handle_closing; /* uv_close was called */
    bool graceful;       /* close once the output is written */
    bool out_paused;     /* stopped reading above out_high_water */
    bool need_parse;     /* buffered frames wait for the hook */
    unsigned pauses;     /* mq_net_conn_pause nesting */

    mq_buf_t *rbuf;
    size_t rpos;           /* parse position in rbuf */
    uint64_t discard_left; /* bytes of an oversize frame still to skip */

    mq_net_wbatch_t *cur;      /* accumulating */
    mq_net_wbatch_t *inflight; /* handed to uv_write */
    mq_net_wbatch_t *spare;
    uv_buf_t *iov;
    size_t iov_cap;
    mq_net_hook_t hook;

    char peer[64];
};

static const mq_net_conn_ops_t mq_net_conn_noops = {NULL, NULL, NULL, NULL};

static void mq_net_conn_update_reading(mq_net_conn_t *conn);

/* --- life cycle ----------------------------------------------------------- */

static void mq_net_conn_hook_cb(mq_net_hook_t *hook);

static mq_net_conn_t *mq_net_conn_new(mq_net_loop_t *loop, const mq_net_opts_t *opts,
                                      const mq_net_conn_ops_t *ops, void *cb_arg, void *owner,
                                      bool is_server)
{
    mq_net_conn_t *conn = mq_calloc(1, sizeof(*conn));
    atomic_init(&conn->refcnt, 1);
    atomic_init(&conn->closed, false);
    atomic_init(&conn->out_bytes, 0);
    conn->loop = loop;
    mq_net_opts_fix(opts, &conn->opts);
    conn->ops = ops;
    conn->cb_arg = cb_arg;
    conn->owner = owner;
    conn->is_server = is_server;
    mq_net_hook_init(&conn->hook, mq_net_conn_hook_cb);
    snprintf(conn->peer, sizeof(conn->peer), "?");
    return conn;
}

static void mq_net_wbatch_free(mq_net_wbatch_t *b)
{
    if (!b) {
        return;
    }
    MQ_ASSERT(b->nrefs == 0);
    free(b->arena);
    free(b->refs);
    free(b);
}

mq_net_conn_t *mq_net_conn_ref(mq_net_conn_t *conn)
{
    atomic_fetch_add_explicit(&conn->refcnt, 1, memory_order_relaxed);
    return conn;
}

void mq_net_conn_unref(mq_net_conn_t *conn)
{
    if (!conn) {
        return;
    }
    unsigned prev = atomic_fetch_sub_explicit(&conn->refcnt, 1, memory_order_acq_rel);
    MQ_ASSERT(prev > 0);
    if (prev == 1) {
        /* The handle is closed (the open handle held a reference) and its
         * buffers were released in the close callback: only memory is left. */
        free(conn);
    }
}

static void mq_net_wbatch_release(mq_net_conn_t *conn, mq_net_wbatch_t *b)
{
    for (size_t i = 0; i < b->nrefs; i++) {
        mq_slice_release(&b->refs[i].data);
    }
    b->nrefs = 0;
    size_t out = atomic_load_explicit(&conn->out_bytes, memory_order_relaxed);
    MQ_ASSERT(out >= b->bytes);
    atomic_store_explicit(&conn->out_bytes, out - b->bytes, memory_order_relaxed);
    b->bytes = 0;
    b->arena_len = 0;
    if (b->arena_cap > MQ_NET_ARENA_KEEP) {
        free(b->arena);
        b->arena = NULL;
        b->arena_cap = 0;
    }
    if (b->refs_cap > MQ_NET_REFS_KEEP) {
        free(b->refs);
        b->refs = NULL;
        b->refs_cap = 0;
    }
}

static void mq_net_conn_close_cb(uv_handle_t *handle)
{
    mq_net_conn_t *conn = handle->data;
    /* libuv completed (cancelled) any write in flight before this. */
    MQ_ASSERT(conn->inflight == NULL);
    if (conn->cur) {
        mq_net_wbatch_release(conn, conn->cur);
    }
    mq_net_wbatch_free(conn->cur);
    mq_net_wbatch_free(conn->spare);
    conn->cur = NULL;
    conn->spare = NULL;
    free(conn->iov);
    conn->iov = NULL;
    mq_buf_unref(conn->rbuf);
    conn->rbuf = NULL;
    if (conn->ops->on_close) {
        conn->ops->on_close(conn, conn->owner);
    }
    mq_net_conn_unref(conn);
}

void mq_net_conn_close_now(mq_net_conn_t *conn)
{
    if (conn->handle_closing) {
        return;
    }
    conn->handle_closing = true;
    conn->reading = false;
    atomic_store_explicit(&conn->closed, true, memory_order_release);
    mq_net_loop_disarm(conn->loop, &conn->hook);
    uv_close((uv_handle_t *)&conn->tcp, mq_net_conn_close_cb);
}

void mq_net_conn_close(mq_net_conn_t *conn)
{
    MQ_ASSERT(mq_net_loop_on_thread(conn->loop));
    if (conn->graceful || conn->handle_closing) {
        return;
    }
    conn->graceful = true;
    atomic_store_explicit(&conn->closed, true, memory_order_release);
    mq_net_conn_update_reading(conn);
    /* The hook writes what is queued and closes when nothing is left. */
    mq_net_loop_arm(conn->loop, &conn->hook);
}

/* --- read path ------------------------------------------------------------ */

static bool mq_net_conn_may_deliver(const mq_net_conn_t *conn)
{
    return conn->connected && !conn->handle_closing && !conn->graceful && conn->pauses == 0 &&
           !conn->out_paused;
}

static bool mq_net_buf_exclusive(mq_buf_t *buf)
{
    /* Acquire pairs with the release in mq_buf_unref of other threads: once
     * we see 1, their reads of the buffer happened before our next write. */
    return atomic_load_explicit(&buf->refcnt, memory_order_acquire) == 1;
}

/* A standard read buffer, from the loop's pool: released buffers are reused
 * rather than returned to the heap, where long-lived ones (an application
 * keeping frames) and short-lived ones would fragment it. */
static mq_err_t mq_net_conn_rbuf_new(mq_net_conn_t *conn, mq_buf_t **out)
{
    mq_buf_pool_t *pool =
        mq_net_loop_pool(conn->loop, conn->opts.read_buf_size, conn->opts.read_pool_bytes);
    return mq_buf_pool_get(pool, out);
}

/* True for a buffer of the standard read size (pool buffers round the size
 * up to whole pages). */
static bool mq_net_conn_rbuf_standard(const mq_net_conn_t *conn, const mq_buf_t *rb)
{
    return rb->pool != NULL && rb->cap >= conn->opts.read_buf_size;
}

static void mq_net_conn_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    mq_net_conn_t *conn = handle->data;
    MQ_UNUSED(suggested);
    if (!conn->rbuf) {
        if (mq_net_conn_rbuf_new(conn, &conn->rbuf) != MQ_OK) {
            conn->rbuf = NULL;
            buf->base = NULL;
            buf->len = 0;
            return;
        }
        conn->rpos = 0;
    }
    mq_buf_t *rb = conn->rbuf;
    /* The compaction after each parse leaves room (see the file comment). */
    MQ_ASSERT(rb->len < rb->cap);
    buf->base = (char *)rb->data + rb->len;
    buf->len = rb->cap - rb->len;
}

/* After a complete parse pass: keep at most one partial frame, at the front
 * of a buffer that can hold it. */
static void mq_net_conn_compact(mq_net_conn_t *conn)
{
    mq_buf_t *rb = conn->rbuf;
    size_t partial = rb->len - conn->rpos;
    size_t rsize = conn->opts.read_buf_size;
    if (partial == 0) {
        bool standard = mq_net_conn_rbuf_standard(conn, rb);
        if (standard && mq_net_buf_exclusive(rb)) {
            rb->len = 0;
        } else if (standard && rb->cap - rb->len >= rsize / 4) {
            return; /* append behind what the slices hold (rpos == len) */
        } else {
            mq_buf_unref(rb);
            conn->rbuf = NULL;
        }
        conn->rpos = 0;
        return;
    }
    /* A header in the partial bytes was validated by the parse pass. */
    size_t need = MQ_NET_HDR_SIZE;
    if (partial >= MQ_NET_HDR_SIZE) {
        need = (size_t)mq_get_be32(rb->data + conn->rpos) + 4;
    }
    if (need <= rb->cap - conn->rpos) {
        return;
    }
    size_t newcap = MQ_MAX(rsize, need);
    if (rb->cap >= newcap && mq_net_buf_exclusive(rb)) {
        memmove(rb->data, rb->data + conn->rpos, partial);
        rb->len = partial;
        conn->rpos = 0;
        return;
    }
    mq_buf_t *nb;
    mq_err_t err = need <= rsize ? mq_net_conn_rbuf_new(conn, &nb) : mq_buf_try_new(newcap, &nb);
    if (err != MQ_OK) {
        MQ_LOG_WARN("net no memory for read buffer peer=%s bytes=%zu, closing", conn->peer, newcap);
        mq_net_conn_close_now(conn);
        return;
    }
    memcpy(nb->data, rb->data + conn->rpos, partial);
    nb->len = partial;
    mq_buf_unref(rb);
    conn->rbuf = nb;
    conn->rpos = 0;
}

static void mq_net_conn_parse(mq_net_conn_t *conn)
{
    mq_buf_t *rb = conn->rbuf;
    if (!rb) {
        return;
    }
    const size_t max_frame = conn->opts.max_frame;
    const size_t max_hard = conn->opts.max_frame_hard;
    while (mq_net_conn_may_deliver(conn)) {
        size_t avail = rb->len - conn->rpos;
        if (conn->discard_left) {
            size_t skip = (size_t)MQ_MIN((uint64_t)avail, conn->discard_left);
            conn->rpos += skip;
            conn->discard_left -= skip;
            if (conn->discard_left) {
                break;
            }
            continue;
        }
        if (avail < MQ_NET_HDR_SIZE) {
            break;
        }
        const uint8_t *p = rb->data + conn->rpos;
        uint32_t frame_len = mq_get_be32(p);
        uint32_t meta_len = mq_get_be32(p + 4);
        uint64_t request_id = mq_get_be64(p + 8);
        if (frame_len < 12 || (uint64_t)frame_len + 4 > max_hard || meta_len > frame_len - 12 ||
            meta_len > MQ_NET_MAX_META) {
            MQ_LOG_WARN("net bad frame header peer=%s frame_len=%u meta_len=%u request=%llu, "
                        "closing",
                        conn->peer, frame_len, meta_len, (unsigned long long)request_id);
            mq_net_conn_close_now(conn);
            return;
        }
        size_t total = (size_t)frame_len + 4;
        if (total > max_frame) {
            /* Discard mode: drop the header now and the body as it comes. */
            conn->rpos += MQ_NET_HDR_SIZE;
            conn->discard_left = total - MQ_NET_HDR_SIZE;
            MQ_LOG_DEBUG("net oversize frame peer=%s frame_len=%u request=%llu", conn->peer,
                         frame_len, (unsigned long long)request_id);
            if (conn->ops->on_oversize) {
                conn->ops->on_oversize(conn, request_id, frame_len, conn->cb_arg);
            }
            continue;
        }
        if (avail < total) {
            break;
        }
        mq_net_frame_t frame;
        frame.request_id = request_id;
        frame.meta.buf = rb;
        frame.meta.ptr = p + MQ_NET_HDR_SIZE;
        frame.meta.len = meta_len;
        frame.data.buf = rb;
        frame.data.ptr = p + MQ_NET_HDR_SIZE + meta_len;
        frame.data.len = total - MQ_NET_HDR_SIZE - meta_len;
        conn->rpos += total;
        conn->ops->on_frame(conn, &frame, conn->cb_arg);
    }
    /* A pause or close leaves the rest where it is: resume parses it. */
    if (mq_net_conn_may_deliver(conn)) {
        mq_net_conn_compact(conn);
    }
}

static void mq_net_conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    mq_net_conn_t *conn = stream->data;
    if (nread > 0) {
        MQ_ASSERT(buf->base == (char *)conn->rbuf->data + conn->rbuf->len);
        conn->rbuf->len += (size_t)nread;
        mq_net_conn_parse(conn);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (nread == UV_EOF) {
        bool mid_frame = conn->discard_left || (conn->rbuf && conn->rpos < conn->rbuf->len);
        if (mid_frame) {
            MQ_LOG_WARN("net connection closed by peer mid-frame peer=%s", conn->peer);
        } else {
            MQ_LOG_DEBUG("net connection closed by peer peer=%s", conn->peer);
        }
    } else if (nread == UV_ENOBUFS) {
        MQ_LOG_WARN("net no memory for read buffer peer=%s, closing", conn->peer);
    } else {
        MQ_LOG_DEBUG("net read failed peer=%s err=%s", conn->peer, uv_err_name((int)nread));
    }
    mq_net_conn_close_now(conn);
}

static void mq_net_conn_start_read(mq_net_conn_t *conn)
{
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, mq_net_conn_alloc_cb, mq_net_conn_read_cb);
    if (rc != 0) {
        MQ_LOG_WARN("net read start failed peer=%s err=%s, closing", conn->peer, uv_err_name(rc));
        mq_net_conn_close_now(conn);
        return;
    }
    conn->reading = true;
}

/* Starts or stops reading to match the pause state. A restart goes through
 * the hook, which first delivers the frames already buffered (and compacts)
 * so that reads always find room. */
static void mq_net_conn_update_reading(mq_net_conn_t *conn)
{
    if (conn->handle_closing) {
        return;
    }
    bool want = mq_net_conn_may_deliver(conn);
    if (!want && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
    } else if (want && !conn->reading) {
        conn->need_parse = true;
        mq_net_loop_arm(conn->loop, &conn->hook);
    }
}

void mq_net_conn_pause(mq_net_conn_t *conn)
{
    MQ_ASSERT(mq_net_loop_on_thread(conn->loop));
    conn->pauses++;
    mq_net_conn_update_reading(conn);
}

void mq_net_conn_resume(mq_net_conn_t *conn)
{
    MQ_ASSERT(mq_net_loop_on_thread(conn->loop));
    MQ_ASSERT(conn->pauses > 0);
    conn->pauses--;
    mq_net_conn_update_reading(conn);
}

/* --- write path ----------------------------------------------------------- */

static mq_net_wbatch_t *mq_net_conn_batch(mq_net_conn_t *conn)
{
    if (!conn->cur) {
        conn->cur = conn->spare ? conn->spare : mq_calloc(1, sizeof(*conn->cur));
        conn->spare = NULL;
    }
    return conn->cur;
}

static uint8_t *mq_net_wbatch_reserve(mq_net_wbatch_t *b, size_t n)
{
    if (b->arena_len + n > b->arena_cap) {
        size_t cap = b->arena_cap ? b->arena_cap : 4096;
        while (cap < b->arena_len + n) {
            cap *= 2;
        }
        b->arena = mq_realloc(b->arena, cap);
        b->arena_cap = cap;
    }
    uint8_t *p = b->arena + b->arena_len;
    b->arena_len += n;
    return p;
}

void mq_net_conn_queue(mq_net_conn_t *conn, uint64_t request_id, const void *meta, size_t meta_len,
                       mq_slice_t *data)
{
    mq_net_wbatch_t *b = mq_net_conn_batch(conn);
    size_t dlen = data ? data->len : 0;
    size_t frame = MQ_NET_HDR_SIZE + meta_len + dlen;
    uint8_t *h = mq_net_wbatch_reserve(b, MQ_NET_HDR_SIZE + meta_len);
    mq_put_be32(h, (uint32_t)(frame - 4));
    mq_put_be32(h + 4, (uint32_t)meta_len);
    mq_put_be64(h + 8, request_id);
    if (meta_len) {
        memcpy(h + MQ_NET_HDR_SIZE, meta, meta_len);
    }
    if (dlen && !data->buf) {
        /* Bytes without a buffer cannot be referenced: copy them. */
        memcpy(mq_net_wbatch_reserve(b, dlen), data->ptr, dlen);
        data->ptr = NULL;
        data->len = 0;
    } else if (dlen) {
        if (b->nrefs == b->refs_cap) {
            b->refs_cap = b->refs_cap ? b->refs_cap * 2 : 64;
            b->refs = mq_realloc(b->refs, b->refs_cap * sizeof(*b->refs));
        }
        b->refs[b->nrefs].arena_off = b->arena_len;
        b->refs[b->nrefs].data = *data;
        b->nrefs++;
        data->buf = NULL;
        data->ptr = NULL;
        data->len = 0;
    } else if (data) {
        mq_slice_release(data);
    }
    b->bytes += frame;
    size_t out = atomic_load_explicit(&conn->out_bytes, memory_order_relaxed) + frame;
    atomic_store_explicit(&conn->out_bytes, out, memory_order_relaxed);
    if (conn->is_server && !conn->out_paused && out > conn->opts.out_high_water) {
        conn->out_paused = true;
        mq_net_conn_update_reading(conn);
    }
    mq_net_loop_arm(conn->loop, &conn->hook);
}

mq_err_t mq_net_conn_send(mq_net_conn_t *conn, uint64_t request_id, const void *meta,
                          size_t meta_len, const mq_slice_t *data)
{
    MQ_ASSERT(mq_net_loop_on_thread(conn->loop));
    if (conn->graceful || conn->handle_closing) {
        return MQ_ECLOSED;
    }
    size_t dlen = data ? data->len : 0;
    if (meta_len > MQ_NET_MAX_META || (meta_len && !meta) || dlen > UINT32_MAX - 12 - meta_len) {
        return MQ_EINVAL;
    }
    mq_slice_t d = {NULL, NULL, 0};
    if (dlen) {
        d = mq_slice_dup(data);
    }
    mq_net_conn_queue(conn, request_id, meta, meta_len, &d);
    return MQ_OK;
}

/* The batch was written (or cancelled): release it and keep it for reuse. */
static void mq_net_conn_batch_done(mq_net_conn_t *conn, mq_net_wbatch_t *b)
{
    mq_net_wbatch_release(conn, b);
    if (b != conn->cur) {
        if (!conn->spare) {
            conn->spare = b;
        } else {
            mq_net_wbatch_free(b);
        }
    }
    if (conn->out_paused &&
        atomic_load_explicit(&conn->out_bytes, memory_order_relaxed) <= conn->opts.out_low_water) {
        conn->out_paused = false;
        mq_net_conn_update_reading(conn);
    }
}

static void mq_net_conn_write_cb(uv_write_t *req, int status)
{
    mq_net_wbatch_t *b = MQ_CONTAINER_OF(req, mq_net_wbatch_t, req);
    mq_net_conn_t *conn = req->data;
    MQ_ASSERT(conn->inflight == b);
    conn->inflight = NULL;
    mq_net_conn_batch_done(conn, b);
    if (conn->handle_closing) {
        return;
    }
    if (status < 0) {
        MQ_LOG_DEBUG("net write failed peer=%s err=%s", conn->peer, uv_err_name(status));
        mq_net_conn_close_now(conn);
        return;
    }
    /* More may have been queued meanwhile; a graceful close may be due. */
    mq_net_loop_arm(conn->loop, &conn->hook);
}

static size_t mq_net_wbatch_iov(mq_net_conn_t *conn, mq_net_wbatch_t *b)
{
    size_t need = 2 * b->nrefs + 1;
    if (need > conn->iov_cap) {
        conn->iov_cap = MQ_MAX(need, 2 * conn->iov_cap);
        conn->iov = mq_realloc(conn->iov, conn->iov_cap * sizeof(*conn->iov));
    }
    size_t n = 0;
    size_t off = 0;
    for (size_t i = 0; i < b->nrefs; i++) {
        const mq_net_wref_t *r = &b->refs[i];
        if (r->arena_off > off) {
            conn->iov[n++] = uv_buf_init((char *)b->arena + off, (unsigned)(r->arena_off - off));
            off = r->arena_off;
        }
        conn->iov[n++] = uv_buf_init((char *)r->data.ptr, (unsigned)r->data.len);
    }
    if (b->arena_len > off) {
        conn->iov[n++] = uv_buf_init((char *)b->arena + off, (unsigned)(b->arena_len - off));
    }
    return n;
}

static void mq_net_conn_flush(mq_net_conn_t *conn)
{
    if (conn->handle_closing || !conn->connected || conn->inflight) {
        return;
    }
    mq_net_wbatch_t *b = conn->cur;
    if (!b || b->bytes == 0) {
        if (conn->graceful) {
            mq_net_conn_close_now(conn);
        }
        return;
    }
    size_t n = mq_net_wbatch_iov(conn, b);
    uv_stream_t *stream = (uv_stream_t *)&conn->tcp;
    int rc = uv_try_write(stream, conn->iov, (unsigned)n);
    if (rc >= 0 && (size_t)rc == b->bytes) {
        mq_net_conn_batch_done(conn, b);
        if (conn->graceful) {
            mq_net_conn_close_now(conn);
        }
        return;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        MQ_LOG_DEBUG("net write failed peer=%s err=%s", conn->peer, uv_err_name(rc));
        mq_net_conn_close_now(conn);
        return;
    }
    /* The socket is full: skip what went out and let libuv write the rest
     * when it can. */
    size_t skip = rc > 0 ? (size_t)rc : 0;
    size_t first = 0;
    while (skip >= conn->iov[first].len) {
        skip -= conn->iov[first].len;
        first++;
    }
    conn->iov[first].base += skip;
    conn->iov[first].len -= skip;
    conn->cur = NULL;
    conn->inflight = b;
    b->req.data = conn;
    rc = uv_write(&b->req, stream, conn->iov + first, (unsigned)(n - first), mq_net_conn_write_cb);
    if (rc != 0) {
        MQ_LOG_DEBUG("net write failed peer=%s err=%s", conn->peer, uv_err_name(rc));
        conn->inflight = NULL;
        conn->cur = b;
        mq_net_conn_close_now(conn);
    }
}

static void mq_net_conn_hook_cb(mq_net_hook_t *hook)
{
    mq_net_conn_t *conn = MQ_CONTAINER_OF(hook, mq_net_conn_t, hook);
    if (conn->handle_closing) {
        return;
    }
    if (conn->need_parse) {
        conn->need_parse = false;
        mq_net_conn_parse(conn);
        if (conn->handle_closing) {
            return;
        }
        if (mq_net_conn_may_deliver(conn) && !conn->reading) {
            mq_net_conn_start_read(conn);
        }
    }
    mq_net_conn_flush(conn);
}

/* --- accept / connect ----------------------------------------------------- */

static void mq_net_conn_discard(mq_net_conn_t *conn)
{
    /* Set up but never handed out: close without telling anyone. */
    conn->ops = &mq_net_conn_noops;
    mq_net_conn_close_now(conn);
}

static void mq_net_conn_setup_socket(mq_net_conn_t *conn)
{
    /* Frames are coalesced by us; Nagle would only add latency. */
    int rc = uv_tcp_nodelay(&conn->tcp, 1);
    if (rc != 0) {
        MQ_LOG_DEBUG("net TCP_NODELAY failed peer=%s err=%s", conn->peer, uv_err_name(rc));
    }
}

mq_err_t mq_net_conn_accept(mq_net_loop_t *loop, uv_stream_t *listener, const mq_net_opts_t *opts,
                            const mq_net_conn_ops_t *ops, void *cb_arg, void *owner,
                            mq_net_conn_t **out)
{
    mq_net_conn_t *conn = mq_net_conn_new(loop, opts, ops, cb_arg, owner, true);
    int rc = uv_tcp_init(mq_net_loop_uv(loop), &conn->tcp);
    if (rc != 0) {
        MQ_LOG_WARN("net accept failed err=%s", uv_err_name(rc));
        free(conn);
        return MQ_ECONN;
    }
    conn->tcp.data = conn;
    rc = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rc != 0) {
        MQ_LOG_WARN("net accept failed err=%s", uv_err_name(rc));
        mq_net_conn_discard(conn);
        return MQ_ECONN;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
        mq_net_addr_format((struct sockaddr *)&ss, conn->peer, sizeof(conn->peer));
    }
    mq_net_conn_setup_socket(conn);
    *out = conn;
    return MQ_OK;
}

void mq_net_conn_start(mq_net_conn_t *conn)
{
    conn->connected = true;
    if (mq_net_conn_may_deliver(conn) && !conn->reading) {
        mq_net_conn_start_read(conn);
    }
    /* Frames queued before the socket was usable (say, from on_open) wait
     * for a flush. */
    if (!conn->handle_closing) {
        mq_net_loop_arm(conn->loop, &conn->hook);
    }
}

void mq_net_conn_set_slot(mq_net_conn_t *conn, size_t slot)
{
    conn->slot = slot;
}

size_t mq_net_conn_slot(const mq_net_conn_t *conn)
{
    return conn->slot;
}

static void mq_net_conn_connect_cb(uv_connect_t *req, int status)
{
    mq_net_conn_t *conn = req->data;
    if (status == 0 && !conn->handle_closing) {
        mq_net_conn_setup_socket(conn);
        mq_net_conn_start(conn);
        if (conn->handle_closing) {
            status = UV_ECANCELED;
        }
    } else if (status == 0) {
        status = UV_ECANCELED;
    }
    if (conn->ops->on_connect) {
        conn->ops->on_connect(conn, status, conn->owner);
    }
}

mq_err_t mq_net_conn_connect(mq_net_loop_t *loop, const struct sockaddr *addr,
                             const mq_net_opts_t *opts, const mq_net_conn_ops_t *ops, void *cb_arg,
                             void *owner, mq_net_conn_t **out)
{
    mq_net_conn_t *conn = mq_net_conn_new(loop, opts, ops, cb_arg, owner, false);
    mq_net_addr_format(addr, conn->peer, sizeof(conn->peer));
    int rc = uv_tcp_init(mq_net_loop_uv(loop), &conn->tcp);
    if (rc != 0) {
        MQ_LOG_WARN("net connect failed peer=%s err=%s", conn->peer, uv_err_name(rc));
        free(conn);
        return MQ_ECONN;
    }
    conn->tcp.data = conn;
    /* The callback runs from the loop, never from inside uv_tcp_connect. */
    conn->connect_req.data = conn;
    rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, addr, mq_net_conn_connect_cb);
    if (rc != 0) {
        MQ_LOG_WARN("net connect failed peer=%s err=%s", conn->peer, uv_err_name(rc));
        mq_net_conn_discard(conn);
        return MQ_ECONN;
    }
    *out = conn;
    return MQ_OK;
}

/* --- accessors ------------------------------------------------------------ */

bool mq_net_conn_closed(const mq_net_conn_t *conn)
{
    return atomic_load_explicit(&conn->closed, memory_order_acquire);
}

const char *mq_net_conn_peer(const mq_net_conn_t *conn)
{
    return conn->peer;
}

mq_net_loop_t *mq_net_conn_loop(const mq_net_conn_t *conn)
{
    return conn->loop;
}

void mq_net_conn_set_user(mq_net_conn_t *conn, void *user)
{
    conn->user = user;
}

void *mq_net_conn_get_user(const mq_net_conn_t *conn)
{
    return conn->user;
}

size_t mq_net_conn_out_bytes(const mq_net_conn_t *conn)
{
    return atomic_load_explicit(&conn->out_bytes, memory_order_relaxed);
}
