/*
 * mq_net server side, driven through raw sockets so that the bytes on the
 * wire are ours: the frame format, frames split into single bytes and
 * thousands of frames of random sizes in one stream, oversize frames
 * (discarded, reported, connection kept), protocol garbage (connection
 * closed, server unharmed, other clients served), output back-pressure
 * against a client that does not read, application pause/resume nesting,
 * graceful close, connection references after close, stop_accepting and
 * free with open connections.
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

#include "mq_net.h"
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

/* --- a configurable server ------------------------------------------------ */

typedef struct t_srv {
    mq_net_loop_t *loop;
    mq_net_server_t *srv;
    int port;
    mq_net_opts_t opts;
    atomic_int frames;
    atomic_int opens;
    atomic_int closes;
    atomic_int oversize;
    atomic_uint_fast64_t oversize_rid;
    atomic_size_t oversize_len;
    atomic_size_t max_out;
    mq_buf_t *big;       /* response data for meta "big" */
    int pause_on_open;   /* pauses applied in on_open */
    mq_net_conn_t *conn; /* last opened, referenced; loop thread writes */
    mq_slice_t kept[64]; /* data of frames with meta "keep"; loop thread */
    atomic_int nkept;
} t_srv_t;

static bool t_meta_is(const mq_net_frame_t *f, const char *s)
{
    size_t n = strlen(s);
    return f->meta.len == n && memcmp(f->meta.ptr, s, n) == 0;
}

static void t_srv_on_open(mq_net_conn_t *conn, void *arg)
{
    t_srv_t *ts = arg;
    atomic_fetch_add(&ts->opens, 1);
    mq_net_conn_unref(ts->conn);
    ts->conn = mq_net_conn_ref(conn);
    for (int i = 0; i < ts->pause_on_open; i++) {
        mq_net_conn_pause(conn);
    }
}

static void t_srv_on_frame(mq_net_conn_t *conn, const mq_net_frame_t *f, void *arg)
{
    t_srv_t *ts = arg;
    atomic_fetch_add(&ts->frames, 1);
    if (t_meta_is(f, "big")) {
        mq_slice_t d = {ts->big, ts->big->data, ts->big->len};
        T_CHECK(mq_net_conn_send(conn, f->request_id, "big", 3, &d) == MQ_OK);
        size_t out = mq_net_conn_out_bytes(conn);
        if (out > atomic_load(&ts->max_out)) {
            atomic_store(&ts->max_out, out);
        }
        return;
    }
    if (t_meta_is(f, "keep")) {
        /* Held like a bookie holds an added entry until its checkpoint. */
        int i = atomic_load(&ts->nkept);
        T_CHECK(i < (int)MQ_ARRAY_LEN(ts->kept));
        if (i < (int)MQ_ARRAY_LEN(ts->kept)) {
            ts->kept[i] = mq_slice_dup(&f->data);
            atomic_store(&ts->nkept, i + 1);
        }
    }
    T_CHECK(mq_net_conn_send(conn, f->request_id, f->meta.ptr, f->meta.len, &f->data) == MQ_OK);
    if (t_meta_is(f, "bye")) {
        /* Graceful: the answer still goes out, then the connection closes. */
        mq_net_conn_close(conn);
        T_CHECK(mq_net_conn_closed(conn));
        T_CHECK(mq_net_conn_send(conn, f->request_id, "x", 1, NULL) == MQ_ECLOSED);
    }
}

static void t_srv_on_oversize(mq_net_conn_t *conn, uint64_t request_id, size_t frame_len, void *arg)
{
    t_srv_t *ts = arg;
    atomic_store(&ts->oversize_rid, request_id);
    atomic_store(&ts->oversize_len, frame_len);
    atomic_fetch_add(&ts->oversize, 1);
    T_CHECK(mq_net_conn_send(conn, request_id, "oversize", 8, NULL) == MQ_OK);
}

static void t_srv_on_close(mq_net_conn_t *conn, void *arg)
{
    t_srv_t *ts = arg;
    T_CHECK(mq_net_conn_closed(conn));
    atomic_fetch_add(&ts->closes, 1);
}

static const mq_net_server_cbs_t t_srv_cbs = {t_srv_on_open, t_srv_on_frame, t_srv_on_oversize,
                                              t_srv_on_close};

static void t_srv_start(t_srv_t *ts, const mq_net_opts_t *opts)
{
    if (opts) {
        ts->opts = *opts;
    } else {
        mq_net_opts_default(&ts->opts);
    }
    ts->loop = mq_net_loop_new("tsrv");
    mq_err_t err = mq_net_server_new(ts->loop, "127.0.0.1", 0, &ts->opts, &t_srv_cbs, ts, &ts->srv);
    CU_ASSERT_EQUAL_FATAL(err, MQ_OK);
    ts->port = mq_net_server_port(ts->srv);
    CU_ASSERT_TRUE(ts->port > 0);
}

static void t_srv_stop(t_srv_t *ts)
{
    mq_net_server_free(ts->srv);
    /* Every connection closed, and told so. */
    CU_ASSERT_EQUAL(atomic_load(&ts->opens), atomic_load(&ts->closes));
    mq_net_conn_unref(ts->conn);
    mq_net_loop_free(ts->loop);
    mq_buf_unref(ts->big);
    for (int i = 0; i < atomic_load(&ts->nkept); i++) {
        mq_slice_release(&ts->kept[i]);
    }
    CU_ASSERT_EQUAL(atomic_load(&t_cb_failures), 0);
}

/* --- raw sockets ---------------------------------------------------------- */

static int t_raw_connect(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    if (rcvbuf) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
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

/* Appends one frame to out (which must have room); returns its size. */
static size_t t_frame(uint8_t *out, uint64_t rid, const void *meta, uint32_t mlen, const void *data,
                      uint32_t dlen)
{
    mq_put_be32(out, 12 + mlen + dlen);
    mq_put_be32(out + 4, mlen);
    mq_put_be64(out + 8, rid);
    if (mlen) {
        memcpy(out + 16, meta, mlen);
    }
    if (dlen) {
        memcpy(out + 16 + mlen, data, dlen);
    }
    return 16 + (size_t)mlen + dlen;
}

/* Reads exactly n bytes within timeout_ms: 1, or 0 on EOF, -1 on error or
 * timeout. */
static int t_recv_full(int fd, void *p, size_t n, int timeout_ms)
{
    uint8_t *b = p;
    uint64_t deadline = mq_now_ms() + (uint64_t)timeout_ms;
    while (n) {
        uint64_t now = mq_now_ms();
        if (now >= deadline) {
            return -1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, (int)(deadline - now));
        if (rc <= 0) {
            continue;
        }
        ssize_t r = recv(fd, b, n, 0);
        if (r == 0) {
            return 0;
        }
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 1;
}

typedef struct t_rframe {
    uint64_t rid;
    uint32_t meta_len;
    uint32_t data_len;
    uint8_t *body; /* meta then data, malloc'd */
} t_rframe_t;

static bool t_read_frame(int fd, t_rframe_t *f, int timeout_ms)
{
    uint8_t h[16];
    if (t_recv_full(fd, h, 16, timeout_ms) != 1) {
        return false;
    }
    uint32_t flen = mq_get_be32(h);
    f->meta_len = mq_get_be32(h + 4);
    f->rid = mq_get_be64(h + 8);
    if (flen < 12 || f->meta_len > flen - 12) {
        return false;
    }
    f->data_len = flen - 12 - f->meta_len;
    f->body = malloc(flen - 12 + 1);
    if (flen > 12 && t_recv_full(fd, f->body, flen - 12, timeout_ms) != 1) {
        free(f->body);
        return false;
    }
    return true;
}

/* True when the peer closed the connection (EOF or reset) within the time. */
static bool t_wait_closed(int fd, int timeout_ms)
{
    uint8_t buf[4096];
    uint64_t deadline = mq_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = mq_now_ms();
        if (now >= deadline) {
            return false;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            continue;
        }
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
            return true;
        }
    }
}

/* One echo round trip on an open raw connection. */
static bool t_echo_ok(int fd, uint64_t rid, const char *meta, const void *data, uint32_t dlen)
{
    uint8_t *buf = malloc(16 + strlen(meta) + dlen);
    size_t n = t_frame(buf, rid, meta, (uint32_t)strlen(meta), data, dlen);
    bool ok = t_send_all(fd, buf, n);
    free(buf);
    t_rframe_t f;
    if (!ok || !t_read_frame(fd, &f, 5000)) {
        return false;
    }
    ok = f.rid == rid && f.meta_len == strlen(meta) && f.data_len == dlen &&
         memcmp(f.body, meta, f.meta_len) == 0 &&
         (dlen == 0 || memcmp(f.body + f.meta_len, data, dlen) == 0);
    free(f.body);
    return ok;
}

typedef struct t_count_arg {
    atomic_int *v;
    int want;
} t_count_arg_t;

static bool t_count_reached(void *arg)
{
    t_count_arg_t *c = arg;
    return atomic_load(c->v) >= c->want;
}

static bool t_wait_count(atomic_int *v, int want, uint32_t timeout_ms)
{
    t_count_arg_t c = {v, want};
    return mq_test_wait(t_count_reached, &c, timeout_ms);
}

/* --- tests ---------------------------------------------------------------- */

static void test_wire_format(void)
{
    t_srv_t ts = {0};
    t_srv_start(&ts, NULL);
    int fd = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(fd >= 0);

    /* Exact bytes back: big-endian header, meta, data. */
    CU_ASSERT_TRUE(t_echo_ok(fd, 0x0102030405060708ull, "meta", "payload", 7));
    CU_ASSERT_TRUE(t_echo_ok(fd, 1, "", NULL, 0));
    CU_ASSERT_TRUE(t_echo_ok(fd, 2, "only-meta", NULL, 0));

    /* One frame sent a byte at a time. */
    uint8_t one[64];
    size_t n = t_frame(one, 77, "split", 5, "bytes", 5);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_TRUE(t_send_all(fd, one + i, 1));
    }
    t_rframe_t f;
    CU_ASSERT_TRUE_FATAL(t_read_frame(fd, &f, 5000));
    CU_ASSERT_EQUAL(f.rid, 77);
    CU_ASSERT_EQUAL(f.data_len, 5);
    CU_ASSERT_EQUAL(memcmp(f.body, "splitbytes", 10), 0);
    free(f.body);
    close(fd);
    t_srv_stop(&ts);
}

/* Frames whose bytes the application keeps, one per read: the next reads
 * go behind them in the same buffer (not a fresh buffer per frame), and
 * never over them. */
static void test_kept_frames_share_a_buffer(void)
{
    t_srv_t ts = {0};
    t_srv_start(&ts, NULL); /* 64 KiB read buffers */
    int fd = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(fd >= 0);
    enum { N = 40, LEN = 1000 };
    uint8_t data[LEN];
    for (int i = 0; i < N; i++) {
        memset(data, 'a' + i % 26, sizeof(data));
        data[0] = (uint8_t)i;
        /* The echo comes back before the next frame goes: one frame per read. */
        CU_ASSERT_TRUE_FATAL(t_echo_ok(fd, (uint64_t)i, "keep", data, LEN));
    }
    CU_ASSERT_EQUAL_FATAL(atomic_load(&ts.nkept), N);
    int buffers = 1;
    for (int i = 0; i < N; i++) {
        const mq_slice_t *k = &ts.kept[i];
        CU_ASSERT_EQUAL(k->len, LEN);
        CU_ASSERT_EQUAL(k->ptr[0], (uint8_t)i);
        CU_ASSERT_EQUAL(k->ptr[LEN - 1], 'a' + i % 26);
        if (i > 0 && k->buf != ts.kept[i - 1].buf) {
            buffers++;
        }
    }
    /* 40 KB of frames fit in one 64 KiB buffer; a fresh one per read made 40. */
    CU_ASSERT_EQUAL(buffers, 1);
    /* A frame that no longer fits behind them goes to a fresh buffer, whole. */
    uint8_t big[40000];
    memset(big, 'z', sizeof(big));
    CU_ASSERT_TRUE(t_echo_ok(fd, 99, "keep", big, sizeof(big)));
    CU_ASSERT_EQUAL_FATAL(atomic_load(&ts.nkept), N + 1);
    CU_ASSERT_PTR_NOT_EQUAL(ts.kept[N].buf, ts.kept[0].buf);
    CU_ASSERT_EQUAL(ts.kept[N].len, sizeof(big));
    CU_ASSERT_EQUAL(memcmp(ts.kept[N].ptr, big, sizeof(big)), 0);
    CU_ASSERT_EQUAL(ts.kept[0].ptr[0], 0);
    close(fd);
    t_srv_stop(&ts);
}

#define T_STREAM_FRAMES 3000

typedef struct t_stream {
    int fd;
    uint8_t *buf;
    size_t len;
    bool ok;
} t_stream_t;

static void *t_stream_writer(void *arg)
{
    t_stream_t *s = arg;
    /* Uneven chunks, so frames straddle reads in every possible way. */
    size_t off = 0;
    uint64_t r = 12345;
    s->ok = true;
    while (off < s->len) {
        r = mq_mix64(r);
        size_t chunk = MQ_MIN(s->len - off, 1 + (size_t)(r % 150000));
        if (!t_send_all(s->fd, s->buf + off, chunk)) {
            s->ok = false;
            break;
        }
        off += chunk;
    }
    return NULL;
}

static void test_stream_of_random_frames(void)
{
    /* A small read buffer makes frames larger than the buffer common. */
    mq_net_opts_t o;
    mq_net_opts_default(&o);
    o.read_buf_size = 16 * 1024;
    t_srv_t ts = {0};
    t_srv_start(&ts, &o);
    int fd = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(fd >= 0);

    uint32_t *dlen = malloc(T_STREAM_FRAMES * sizeof(*dlen));
    size_t total = 0;
    uint64_t r = 99;
    for (int i = 0; i < T_STREAM_FRAMES; i++) {
        r = mq_mix64(r);
        /* Mostly small, sometimes larger than the read buffer. */
        dlen[i] = (r % 10 == 0) ? (uint32_t)(r % 100000) : (uint32_t)(r % 3000);
        total += 16 + 8 + dlen[i];
    }
    t_stream_t s = {fd, malloc(total), 0, false};
    uint8_t *tmp = malloc(100000);
    for (int i = 0; i < T_STREAM_FRAMES; i++) {
        for (uint32_t k = 0; k < dlen[i]; k++) {
            tmp[k] = (uint8_t)(i * 31 + k);
        }
        char meta[8];
        mq_put_be64((uint8_t *)meta, (uint64_t)i);
        s.len += t_frame(s.buf + s.len, (uint64_t)i + 1000, meta, 8, tmp, dlen[i]);
    }
    pthread_t th;
    pthread_create(&th, NULL, t_stream_writer, &s);
    int bad = 0;
    for (int i = 0; i < T_STREAM_FRAMES; i++) {
        t_rframe_t f;
        if (!t_read_frame(fd, &f, 10000)) {
            bad++;
            break;
        }
        bool ok = f.rid == (uint64_t)i + 1000 && f.meta_len == 8 && f.data_len == dlen[i] &&
                  mq_get_be64(f.body) == (uint64_t)i;
        for (uint32_t k = 0; ok && k < dlen[i]; k++) {
            ok = f.body[8 + k] == (uint8_t)(i * 31 + k);
        }
        bad += !ok;
        free(f.body);
    }
    pthread_join(th, NULL);
    CU_ASSERT_TRUE(s.ok);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(atomic_load(&ts.frames), T_STREAM_FRAMES);
    close(fd);
    free(tmp);
    free(s.buf);
    free(dlen);
    t_srv_stop(&ts);
}

static void test_oversize_frame(void)
{
    mq_net_opts_t o;
    mq_net_opts_default(&o);
    o.max_frame = 64 * 1024;
    o.max_frame_hard = 1024 * 1024;
    t_srv_t ts = {0};
    t_srv_start(&ts, &o);
    int fd = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(fd >= 0);

    /* 300 KiB of data: several read buffers' worth to skip. Sent in pieces
     * with a normal frame right behind it in the same stream. */
    uint32_t big = 300 * 1024;
    uint8_t *buf = calloc(1, 16 + 4 + big + 64);
    size_t n = t_frame(buf, 4242, "meta", 4, NULL, 0);
    mq_put_be32(buf, 12 + 4 + big);
    memset(buf + n, 0xAB, big);
    n += big;
    n += t_frame(buf + n, 4243, "next", 4, "ok", 2);
    for (size_t off = 0; off < n; off += 7000) {
        CU_ASSERT_TRUE(t_send_all(fd, buf + off, MQ_MIN(7000, n - off)));
    }
    t_rframe_t f;
    CU_ASSERT_TRUE_FATAL(t_read_frame(fd, &f, 5000));
    CU_ASSERT_EQUAL(f.rid, 4242);
    CU_ASSERT_EQUAL(f.meta_len, 8);
    CU_ASSERT_EQUAL(memcmp(f.body, "oversize", 8), 0);
    free(f.body);
    CU_ASSERT_TRUE_FATAL(t_read_frame(fd, &f, 5000));
    CU_ASSERT_EQUAL(f.rid, 4243);
    CU_ASSERT_EQUAL(f.data_len, 2);
    free(f.body);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize), 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize_rid), 4242);
    CU_ASSERT_EQUAL(atomic_load(&ts.oversize_len), 12 + 4 + big);
    /* Still the same connection, still usable. */
    CU_ASSERT_TRUE(t_echo_ok(fd, 5, "again", "x", 1));
    CU_ASSERT_EQUAL(atomic_load(&ts.opens), 1);
    CU_ASSERT_EQUAL(atomic_load(&ts.closes), 0);
    close(fd);
    free(buf);
    t_srv_stop(&ts);
}

static void test_garbage_closes_connection(void)
{
    mq_net_opts_t o;
    mq_net_opts_default(&o);
    o.max_frame = 64 * 1024;
    o.max_frame_hard = 1024 * 1024;
    t_srv_t ts = {0};
    t_srv_start(&ts, &o);

    /* A well-behaved client connected all along. */
    int good = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(good >= 0);
    CU_ASSERT_TRUE(t_echo_ok(good, 1, "hello", "w", 1));

    uint8_t hdr[16];
    int closes = 0;

    /* Random bytes. */
    int fd = t_raw_connect(ts.port, 0);
    uint8_t junk[4096];
    uint64_t r = 0xdeadbeef;
    for (size_t i = 0; i < sizeof(junk); i += 8) {
        r = mq_mix64(r);
        memcpy(junk + i, &r, 8);
    }
    CU_ASSERT_TRUE(t_send_all(fd, junk, sizeof(junk)));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* meta_len larger than the frame. */
    fd = t_raw_connect(ts.port, 0);
    mq_put_be32(hdr, 12 + 10);
    mq_put_be32(hdr + 4, 11);
    mq_put_be64(hdr + 8, 9);
    CU_ASSERT_TRUE(t_send_all(fd, hdr, sizeof(hdr)));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* meta_len above MQ_NET_MAX_META, inside a frame that could hold it. */
    fd = t_raw_connect(ts.port, 0);
    mq_put_be32(hdr, 12 + MQ_NET_MAX_META + 1);
    mq_put_be32(hdr + 4, MQ_NET_MAX_META + 1);
    CU_ASSERT_TRUE(t_send_all(fd, hdr, sizeof(hdr)));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* frame_len above max_frame_hard. */
    fd = t_raw_connect(ts.port, 0);
    mq_put_be32(hdr, 2 * 1024 * 1024);
    mq_put_be32(hdr + 4, 0);
    CU_ASSERT_TRUE(t_send_all(fd, hdr, sizeof(hdr)));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* frame_len below 12. */
    fd = t_raw_connect(ts.port, 0);
    mq_put_be32(hdr, 11);
    mq_put_be32(hdr + 4, 0);
    CU_ASSERT_TRUE(t_send_all(fd, hdr, sizeof(hdr)));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* A frame truncated by the client closing, and one in discard mode. */
    fd = t_raw_connect(ts.port, 0);
    uint8_t part[100];
    t_frame(part, 3, "m", 1, NULL, 0);
    mq_put_be32(part, 12 + 1 + 1000);
    CU_ASSERT_TRUE(t_send_all(fd, part, sizeof(part)));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));
    fd = t_raw_connect(ts.port, 0);
    mq_put_be32(part, 12 + 1 + 100000);
    CU_ASSERT_TRUE(t_send_all(fd, part, sizeof(part)));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, ++closes, 5000));

    /* The good client never noticed. */
    CU_ASSERT_TRUE(t_echo_ok(good, 2, "still", "here", 4));
    CU_ASSERT_EQUAL(atomic_load(&ts.closes), closes);
    close(good);
    t_srv_stop(&ts);
}

/* --- back-pressure -------------------------------------------------------- */

#define T_BP_REQS 2000
#define T_BP_RESP (16 * 1024)
#define T_BP_REQ_DATA 1024

typedef struct t_frames_arg {
    t_srv_t *ts;
    int seen;
} t_frames_arg_t;

static bool t_frames_changed(void *arg)
{
    t_frames_arg_t *a = arg;
    return atomic_load(&a->ts->frames) != a->seen;
}

static bool t_out_reached(void *arg)
{
    t_srv_t *ts = arg;
    return atomic_load(&ts->max_out) > ts->opts.out_high_water;
}

static void test_back_pressure(void)
{
    mq_net_opts_t o;
    mq_net_opts_default(&o);
    o.out_high_water = 256 * 1024;
    o.out_low_water = 64 * 1024;
    t_srv_t ts = {0};
    ts.big = mq_buf_new(T_BP_RESP);
    memset(ts.big->data, 'r', T_BP_RESP);
    ts.big->len = T_BP_RESP;
    t_srv_start(&ts, &o);
    int fd = t_raw_connect(ts.port, 64 * 1024);
    CU_ASSERT_FATAL(fd >= 0);

    size_t one = 16 + 3 + T_BP_REQ_DATA;
    uint8_t *reqs = malloc(one * T_BP_REQS);
    uint8_t pad[T_BP_REQ_DATA] = {0};
    for (int i = 0; i < T_BP_REQS; i++) {
        t_frame(reqs + one * (size_t)i, (uint64_t)i, "big", 3, pad, T_BP_REQ_DATA);
    }
    size_t total = one * T_BP_REQS;
    size_t sent = 0;

    /* Phase 1: send without ever reading, until the socket stops taking. */
    for (;;) {
        ssize_t w = send(fd, reqs + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            if (sent == total) {
                break;
            }
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        CU_ASSERT_TRUE_FATAL(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        /* Full: only a server that stopped reading leaves it full. */
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, 300) == 0) {
            break;
        }
    }
    CU_ASSERT_TRUE_FATAL(mq_test_wait(t_out_reached, &ts, 10000));
    /* Writes into the kernel's buffers may still complete and bring the
     * queue down to the low-water mark a few times; once those are full,
     * the server stops consuming for good: wait until the frame count holds
     * still. */
    t_frames_arg_t fa = {&ts, -1};
    uint64_t until = mq_now_ms() + 20000;
    do {
        fa.seen = atomic_load(&ts.frames);
    } while (mq_test_wait(t_frames_changed, &fa, 300) && mq_now_ms() < until);
    CU_ASSERT_FALSE(mq_test_wait(t_frames_changed, &fa, 300));
    int stalled_at = atomic_load(&ts.frames);
    CU_ASSERT_TRUE(mq_net_conn_out_bytes(ts.conn) > o.out_low_water);
    CU_ASSERT_TRUE(stalled_at < T_BP_REQS);
    /* Bounded: at most one response above the high-water mark. */
    size_t bound = o.out_high_water + 16 + 3 + T_BP_RESP;
    CU_ASSERT_TRUE(atomic_load(&ts.max_out) <= bound);
    fprintf(stderr,
            "\n  back-pressure: stalled after %d of %d requests, max queued %zu (high %zu)\n",
            stalled_at, T_BP_REQS, atomic_load(&ts.max_out), o.out_high_water);

    /* Phase 2: read everything (and send the rest): the server resumes. */
    size_t resp_one = 16 + 3 + T_BP_RESP;
    size_t want = resp_one * T_BP_REQS;
    size_t got = 0;
    uint8_t *rbuf = malloc(256 * 1024);
    uint64_t deadline = mq_now_ms() + 30000;
    while (got < want && mq_now_ms() < deadline) {
        struct pollfd pfd = {fd, (short)(POLLIN | (sent < total ? POLLOUT : 0)), 0};
        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        if (pfd.revents & POLLOUT) {
            ssize_t w = send(fd, reqs + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
            }
        }
        if (pfd.revents & POLLIN) {
            ssize_t r = recv(fd, rbuf, 256 * 1024, MSG_DONTWAIT);
            if (r > 0) {
                got += (size_t)r;
            } else if (r == 0) {
                break;
            }
        }
    }
    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT_EQUAL(atomic_load(&ts.frames), T_BP_REQS);
    CU_ASSERT_TRUE(atomic_load(&ts.max_out) <= bound);
    free(rbuf);
    free(reqs);
    close(fd);
    t_srv_stop(&ts);
}

/* --- pause / resume, references after close ------------------------------- */

static void t_resume_task(void *arg)
{
    t_srv_t *ts = arg;
    mq_net_conn_resume(ts->conn);
}

typedef struct t_send_closed {
    mq_net_conn_t *conn;
    mq_err_t err;
} t_send_closed_t;

static void t_send_closed_task(void *arg)
{
    t_send_closed_t *t = arg;
    t->err = mq_net_conn_send(t->conn, 1, "late", 4, NULL);
}

static bool t_conn_closed(void *arg)
{
    return mq_net_conn_closed(arg);
}

static void test_pause_resume(void)
{
    t_srv_t ts = {0};
    ts.pause_on_open = 2;
    t_srv_start(&ts, NULL);
    int fd = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[3 * 32];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        n += t_frame(buf + n, (uint64_t)i, "p", 1, "d", 1);
    }
    CU_ASSERT_TRUE(t_send_all(fd, buf, n));
    CU_ASSERT_TRUE_FATAL(t_wait_count(&ts.opens, 1, 5000));

    /* Paused twice: nothing is delivered, and one resume is not enough. */
    CU_ASSERT_FALSE(t_wait_count(&ts.frames, 1, 200));
    mq_net_loop_run_sync(ts.loop, t_resume_task, &ts);
    CU_ASSERT_FALSE(t_wait_count(&ts.frames, 1, 200));
    mq_net_loop_run_sync(ts.loop, t_resume_task, &ts);
    CU_ASSERT_TRUE(t_wait_count(&ts.frames, 3, 5000));
    for (int i = 0; i < 3; i++) {
        t_rframe_t f;
        CU_ASSERT_TRUE_FATAL(t_read_frame(fd, &f, 5000));
        CU_ASSERT_EQUAL(f.rid, (uint64_t)i);
        free(f.body);
    }

    /* Graceful close by the application: the answer arrives, then EOF. */
    CU_ASSERT_TRUE(t_echo_ok(fd, 9, "bye", "last", 4));
    CU_ASSERT_TRUE(t_wait_closed(fd, 5000));
    close(fd);
    CU_ASSERT_TRUE(t_wait_count(&ts.closes, 1, 5000));

    /* The reference taken in on_open is still good memory. */
    CU_ASSERT_TRUE(mq_test_wait(t_conn_closed, ts.conn, 5000));
    t_send_closed_t sc = {ts.conn, MQ_OK};
    mq_net_loop_run_sync(ts.loop, t_send_closed_task, &sc);
    CU_ASSERT_EQUAL(sc.err, MQ_ECLOSED);
    CU_ASSERT_EQUAL(mq_net_conn_out_bytes(ts.conn), 0);
    CU_ASSERT_TRUE(strchr(mq_net_conn_peer(ts.conn), ':') != NULL);
    CU_ASSERT_PTR_EQUAL(mq_net_conn_loop(ts.conn), ts.loop);
    t_srv_stop(&ts);
}

static void test_stop_accepting_and_free(void)
{
    t_srv_t ts = {0};
    t_srv_start(&ts, NULL);
    int a = t_raw_connect(ts.port, 0);
    int b = t_raw_connect(ts.port, 0);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    CU_ASSERT_TRUE(t_echo_ok(a, 1, "a", NULL, 0));
    CU_ASSERT_TRUE(t_echo_ok(b, 1, "b", NULL, 0));
    mq_net_server_stop_accepting(ts.srv);
    int c = t_raw_connect(ts.port, 0);
    CU_ASSERT_EQUAL(c, -1);
    if (c >= 0) {
        close(c);
    }
    /* Existing connections continue. */
    CU_ASSERT_TRUE(t_echo_ok(a, 2, "a2", "x", 1));
    /* Free closes them (t_srv_stop checks on_close ran for both). */
    mq_net_server_free(ts.srv);
    CU_ASSERT_EQUAL(atomic_load(&ts.closes), 2);
    CU_ASSERT_TRUE(t_wait_closed(a, 5000));
    CU_ASSERT_TRUE(t_wait_closed(b, 5000));
    close(a);
    close(b);
    mq_net_conn_unref(ts.conn);
    mq_net_loop_free(ts.loop);
}

static void test_listen_errors(void)
{
    t_srv_t ts = {0};
    t_srv_start(&ts, NULL);
    mq_net_server_t *dup = NULL;
    /* Port in use. */
    CU_ASSERT_EQUAL(mq_net_server_new(ts.loop, "127.0.0.1", ts.port, NULL, &t_srv_cbs, &ts, &dup),
                    MQ_ECONN);
    CU_ASSERT_PTR_NULL(dup);
    mq_net_server_cbs_t no_frame = {NULL, NULL, NULL, NULL};
    CU_ASSERT_EQUAL(mq_net_server_new(ts.loop, "127.0.0.1", 0, NULL, &no_frame, &ts, &dup),
                    MQ_EINVAL);
    CU_ASSERT_EQUAL(mq_net_server_new(ts.loop, "127.0.0.1", 70000, NULL, &t_srv_cbs, &ts, &dup),
                    MQ_EINVAL);
    t_srv_stop(&ts);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"wire format, split frames", test_wire_format},
        {"stream of random-size frames", test_stream_of_random_frames},
        {"kept frames share a read buffer, untouched", test_kept_frames_share_a_buffer},
        {"oversize frame is discarded and reported", test_oversize_frame},
        {"garbage closes only that connection", test_garbage_closes_connection},
        {"back-pressure against a client that does not read", test_back_pressure},
        {"pause/resume nest, graceful close, refs", test_pause_resume},
        {"stop accepting, free with open connections", test_stop_accepting_and_free},
        {"listen errors", test_listen_errors},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("net_server", tests, NULL, NULL);
}
