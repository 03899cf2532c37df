/*
 * Bad input on the wire never crashes the bookie, never stores anything, and
 * gets a precise status or a closed connection, while other clients keep
 * being served: bad CRC (CORRUPT), negative entry id, header/request
 * mismatch, missing master key, unknown op, undecodable meta (BAD_REQUEST),
 * an oversize frame (TOO_LARGE, same connection still usable), a truncated
 * frame, garbage bytes and an impossible meta length (connection closed).
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it_client.h"
#include "it_cluster.h"
#include "lc_bkproto.h"
#include "lc_entry.h"
#include "mq_test.h"
#include "mq_util.h"

static it_cluster_t c;
static it_client_t good;

/* The good client: still served after every kind of abuse. */
static void assert_still_serving(int64_t entry)
{
    IT_EXPECT(it_add(&good, 1000, entry, "good", 0, 512), MQ_OK);
    IT_EXPECT(it_read(&good, 1000, entry, 0, NULL), MQ_OK);
    CU_ASSERT_TRUE(it_bookie_alive(&c, 0));
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)c.bookies[0].port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        b += w;
        n -= (size_t)w;
    }
}

/* Sends one frame: header, meta, data. */
static void raw_frame(int fd, uint64_t rid, const uint8_t *meta, size_t mlen, const uint8_t *data,
                      size_t dlen)
{
    uint8_t hdr[16];
    mq_put_be32(hdr, (uint32_t)(12 + mlen + dlen));
    mq_put_be32(hdr + 4, (uint32_t)mlen);
    mq_put_be64(hdr + 8, rid);
    raw_send(fd, hdr, 16);
    raw_send(fd, meta, mlen);
    raw_send(fd, data, dlen);
}

/* Reads one response frame; false when the connection closed. */
static bool raw_response(int fd, uint64_t *rid, lc_bk_response_t *resp)
{
    uint8_t hdr[16];
    size_t got = 0;
    while (got < 16) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) {
            return false;
        }
        ssize_t r = recv(fd, hdr + got, 16 - got, 0);
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    uint32_t flen = mq_get_be32(hdr);
    uint32_t mlen = mq_get_be32(hdr + 4);
    *rid = mq_get_be64(hdr + 8);
    size_t rest = flen - 12;
    uint8_t *buf = malloc(rest ? rest : 1);
    got = 0;
    while (got < rest) {
        ssize_t r = recv(fd, buf + got, rest - got, 0);
        if (r <= 0) {
            free(buf);
            return false;
        }
        got += (size_t)r;
    }
    mq_err_t err = lc_bkproto_decode_response(buf, mlen, resp);
    free(buf);
    return err == MQ_OK;
}

/* True when the server closed the connection (EOF or reset). */
static bool raw_closed(int fd)
{
    uint8_t b[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) {
            return false;
        }
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r <= 0) {
            return true;
        }
    }
}

static size_t encode_req(ledgermq_bookie_v1_Op op, uint64_t ledger, int64_t entry, const char *key,
                         uint8_t *out)
{
    lc_bk_request_t req = ledgermq_bookie_v1_Request_init_zero;
    req.op = op;
    req.ledger_id = ledger;
    req.entry_id = entry;
    if (key) {
        req.master_key.size = (pb_size_t)strlen(key);
        memcpy(req.master_key.bytes, key, strlen(key));
    }
    size_t len;
    CU_ASSERT_EQUAL(lc_bkproto_encode_request(&req, out, LC_BK_REQUEST_MAX, &len), MQ_OK);
    return len;
}

static void expect_status(int fd, uint64_t rid, ledgermq_bookie_v1_Status want)
{
    uint64_t got_rid = 0;
    lc_bk_response_t resp;
    CU_ASSERT_TRUE_FATAL(raw_response(fd, &got_rid, &resp));
    CU_ASSERT_EQUAL(got_rid, rid);
    if (resp.status != want) {
        fprintf(stderr, "\n  rid %llu: got %s (%s), want %s\n", (unsigned long long)rid,
                lc_bkproto_status_name(resp.status), resp.message, lc_bkproto_status_name(want));
    }
    CU_ASSERT_EQUAL(resp.status, want);
}

static int suite_init(void)
{
    if (!it_cluster_init(&c, "badinput")) {
        return 1;
    }
    it_bookie_prepare(&c, 0, NULL);
    if (!it_bookie_start(&c, 0)) {
        return 1;
    }
    it_client_open(&good, it_bookie_addr(&c, 0));
    return 0;
}

/* Last test: the bookie stops cleanly (exit 0) and its log holds no ERROR
 * and no sanitizer report: bad input is the client's problem, not ours. */
static void test_clean_shutdown(void)
{
    it_client_close(&good);
    it_cluster_fini(&c);
}

static void test_requests_refused_precisely(void)
{
    int fd = raw_connect();
    uint8_t meta[LC_BK_REQUEST_MAX];
    uint8_t payload[100];
    memset(payload, 'x', sizeof(payload));

    /* Bad CRC: CORRUPT, and nothing stored. */
    mq_buf_t *e = lc_entry_build(50, 0, -1, 100, payload, sizeof(payload));
    e->data[LC_ENTRY_HDR_SIZE + 7] ^= 1;
    size_t ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 50, 0, "k", meta);
    raw_frame(fd, 1, meta, ml, e->data, e->len);
    expect_status(fd, 1, ledgermq_bookie_v1_Status_STATUS_CORRUPT);
    mq_buf_unref(e);
    IT_EXPECT(it_read(&good, 50, 0, 0, NULL), MQ_ENOLEDGER);

    /* Negative entry id. */
    e = lc_entry_build(50, -5, -1, 100, payload, sizeof(payload));
    ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 50, -5, "k", meta);
    raw_frame(fd, 2, meta, ml, e->data, e->len);
    expect_status(fd, 2, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);
    mq_buf_unref(e);

    /* The entry's header names another entry than the request. */
    e = lc_entry_build(50, 3, -1, 100, payload, sizeof(payload));
    ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 50, 4, "k", meta);
    raw_frame(fd, 3, meta, ml, e->data, e->len);
    expect_status(fd, 3, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);

    /* No master key. */
    ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 50, 3, NULL, meta);
    raw_frame(fd, 4, meta, ml, e->data, e->len);
    expect_status(fd, 4, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);

    /* An entry shorter than its header. */
    ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 50, 3, "k", meta);
    raw_frame(fd, 5, meta, ml, e->data, 20);
    expect_status(fd, 5, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);
    mq_buf_unref(e);

    /* Unknown operation. */
    ml = encode_req((ledgermq_bookie_v1_Op)77, 50, 3, "k", meta);
    raw_frame(fd, 6, meta, ml, NULL, 0);
    expect_status(fd, 6, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);

    /* Meta that is not a protobuf message. */
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    raw_frame(fd, 7, junk, sizeof(junk), NULL, 0);
    expect_status(fd, 7, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);

    /* Fence without a key; read of a negative entry id below -1. */
    ml = encode_req(ledgermq_bookie_v1_Op_OP_READ_ENTRY, 1000, 0, NULL, meta);
    lc_bk_request_t fr;
    lc_bkproto_decode_request(meta, ml, &fr);
    fr.flags = 1;
    lc_bkproto_encode_request(&fr, meta, sizeof(meta), &ml);
    raw_frame(fd, 8, meta, ml, NULL, 0);
    expect_status(fd, 8, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);
    ml = encode_req(ledgermq_bookie_v1_Op_OP_READ_ENTRY, 1000, -7, NULL, meta);
    raw_frame(fd, 9, meta, ml, NULL, 0);
    expect_status(fd, 9, ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);

    /* The same connection still works for a good request. */
    e = lc_entry_build(51, 0, -1, 100, payload, sizeof(payload));
    ml = encode_req(ledgermq_bookie_v1_Op_OP_ADD_ENTRY, 51, 0, "k", meta);
    raw_frame(fd, 10, meta, ml, e->data, e->len);
    expect_status(fd, 10, ledgermq_bookie_v1_Status_STATUS_OK);
    mq_buf_unref(e);
    close(fd);
    assert_still_serving(0);
}

static void test_oversize_frame(void)
{
    /* 6 MiB entry > nettyMaxFrameSizeBytes (5 MiB): TOO_LARGE, and the same
     * client's next request goes through. */
    size_t big = 6u << 20;
    uint8_t *p = calloc(1, big);
    mq_buf_t *e = lc_entry_build(60, 0, -1, big, p, big);
    free(p);
    mq_slice_t s = {e, e->data, e->len};
    lc_bk_sync_result_t r;
    CU_ASSERT_EQUAL(
        lc_bookie_add_sync(good.bk, 60, 0, (const uint8_t *)"good", 4, 0, &s, 20000, &r),
        MQ_ETOOLARGE);
    lc_bk_sync_result_fini(&r);
    mq_buf_unref(e);
    IT_EXPECT(it_read(&good, 60, 0, 0, NULL), MQ_ENOLEDGER);
    assert_still_serving(1);
}

static void test_connections_closed(void)
{
    /* Truncated frame: announces 1000 bytes, sends 20, hangs up. */
    int fd = raw_connect();
    uint8_t hdr[36] = {0};
    mq_put_be32(hdr, 1000);
    mq_put_be32(hdr + 4, 10);
    raw_send(fd, hdr, sizeof(hdr));
    close(fd);
    assert_still_serving(2);

    /* Garbage bytes. */
    fd = raw_connect();
    uint8_t junk[65536];
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof(junk); i++) {
        s = mq_mix64(s);
        junk[i] = (uint8_t)s;
    }
    raw_send(fd, junk, sizeof(junk));
    CU_ASSERT_TRUE(raw_closed(fd));
    close(fd);
    assert_still_serving(3);

    /* meta_len larger than the frame. */
    fd = raw_connect();
    uint8_t bad[32] = {0};
    mq_put_be32(bad, 28);
    mq_put_be32(bad + 4, 1000);
    raw_send(fd, bad, sizeof(bad));
    CU_ASSERT_TRUE(raw_closed(fd));
    close(fd);

    /* A frame length below the fixed header. */
    fd = raw_connect();
    uint8_t tiny[16] = {0};
    mq_put_be32(tiny, 3);
    raw_send(fd, tiny, sizeof(tiny));
    CU_ASSERT_TRUE(raw_closed(fd));
    close(fd);

    /* An absurd frame length (3 GiB). */
    fd = raw_connect();
    uint8_t huge[16] = {0};
    mq_put_be32(huge, 3u << 30);
    mq_put_be32(huge + 4, 4);
    raw_send(fd, huge, sizeof(huge));
    CU_ASSERT_TRUE(raw_closed(fd));
    close(fd);
    assert_still_serving(4);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"malformed requests get precise statuses", test_requests_refused_precisely},
        {"oversize frame gets TOO_LARGE", test_oversize_frame},
        {"garbage and truncated frames close the connection", test_connections_closed},
        {"clean shutdown, clean log", test_clean_shutdown},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie bad input", tests, suite_init, NULL);
}
