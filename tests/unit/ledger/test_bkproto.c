/*
 * The bookie protocol codec: every wire status maps to a distinct error and
 * back; unknown statuses are protocol errors; requests and responses survive
 * an encode/decode round trip and garbage does not decode; entries built with
 * lc_entry verify, and any flipped bit or truncation is caught.
 */
#include <string.h>

#include "lc_bkproto.h"
#include "lc_entry.h"
#include "mq_test.h"

static void test_every_status_mapped(void)
{
    int n = 0;
    for (int s = _ledgermq_bookie_v1_Status_MIN; s <= _ledgermq_bookie_v1_Status_MAX; s++) {
        lc_bk_status_t st = (lc_bk_status_t)s;
        mq_err_t err = lc_bkproto_status_err(st);
        CU_ASSERT_NOT_EQUAL(err, MQ_EPROTO);
        CU_ASSERT_EQUAL(lc_bkproto_err_status(err), st);
        CU_ASSERT_NOT_EQUAL(strcmp(lc_bkproto_status_name(st), "STATUS_UNKNOWN"), 0);
        for (int t = _ledgermq_bookie_v1_Status_MIN; t < s; t++) {
            CU_ASSERT_NOT_EQUAL(lc_bkproto_status_err((lc_bk_status_t)t), err);
        }
        n++;
    }
    CU_ASSERT_TRUE(n >= 9);
    CU_ASSERT_EQUAL(lc_bkproto_status_err((lc_bk_status_t)999), MQ_EPROTO);
    /* Errors without a status of their own. */
    CU_ASSERT_EQUAL(lc_bkproto_err_status(MQ_EPROTO), ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST);
    CU_ASSERT_EQUAL(lc_bkproto_err_status(MQ_ENOSPC), ledgermq_bookie_v1_Status_STATUS_IO_ERROR);
    /* The statuses the issue names are all there. */
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_NO_LEDGER),
                    MQ_ENOLEDGER);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_NO_ENTRY), MQ_ENOENTRY);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_FENCED), MQ_EFENCED);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_UNAUTHORIZED),
                    MQ_EUNAUTHORIZED);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_READ_ONLY),
                    MQ_EREADONLY);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_CORRUPT), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST),
                    MQ_EBADREQ);
    CU_ASSERT_EQUAL(lc_bkproto_status_err(ledgermq_bookie_v1_Status_STATUS_TOO_LARGE),
                    MQ_ETOOLARGE);
}

static void test_round_trip(void)
{
    lc_bk_request_t req = ledgermq_bookie_v1_Request_init_zero;
    req.op = ledgermq_bookie_v1_Op_OP_ADD_ENTRY;
    req.ledger_id = 0xfedcba9876543210ull;
    req.entry_id = -1;
    req.flags = 1;
    req.master_key.size = 64;
    memset(req.master_key.bytes, 0xab, 64);
    uint8_t buf[LC_BK_REQUEST_MAX];
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lc_bkproto_encode_request(&req, buf, sizeof(buf), &len), MQ_OK);
    lc_bk_request_t back;
    CU_ASSERT_EQUAL_FATAL(lc_bkproto_decode_request(buf, len, &back), MQ_OK);
    CU_ASSERT_EQUAL(back.ledger_id, req.ledger_id);
    CU_ASSERT_EQUAL(back.entry_id, -1);
    CU_ASSERT_EQUAL(back.master_key.size, 64);
    CU_ASSERT_EQUAL(memcmp(back.master_key.bytes, req.master_key.bytes, 64), 0);
    /* Truncated or garbage bytes do not decode. */
    CU_ASSERT_EQUAL(lc_bkproto_decode_request(buf, len - 3, &back), MQ_EPROTO);
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CU_ASSERT_EQUAL(lc_bkproto_decode_request(junk, sizeof(junk), &back), MQ_EPROTO);
    /* A master key above 64 bytes does not fit the message. */
    uint8_t longkey[80] = {0x2a, 70};
    CU_ASSERT_EQUAL(lc_bkproto_decode_request(longkey, sizeof(longkey), &back), MQ_EPROTO);

    lc_bk_response_t resp = ledgermq_bookie_v1_Response_init_zero;
    resp.op = ledgermq_bookie_v1_Op_OP_READ_LAC;
    resp.status = ledgermq_bookie_v1_Status_STATUS_FENCED;
    resp.lac = 41;
    resp.last_entry_id = 42;
    strcpy(resp.message, "fenced");
    uint8_t rb[LC_BK_RESPONSE_MAX];
    CU_ASSERT_EQUAL_FATAL(lc_bkproto_encode_response(&resp, rb, sizeof(rb), &len), MQ_OK);
    lc_bk_response_t rback;
    CU_ASSERT_EQUAL_FATAL(lc_bkproto_decode_response(rb, len, &rback), MQ_OK);
    CU_ASSERT_EQUAL(rback.status, ledgermq_bookie_v1_Status_STATUS_FENCED);
    CU_ASSERT_EQUAL(rback.lac, 41);
    CU_ASSERT_EQUAL(rback.last_entry_id, 42);
    CU_ASSERT_STRING_EQUAL(rback.message, "fenced");
}

static void test_entry_checks(void)
{
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)i;
    }
    mq_buf_t *e = lc_entry_build(9, 17, 16, 5400, payload, sizeof(payload));
    lc_entry_hdr_t h;
    CU_ASSERT_EQUAL_FATAL(lc_entry_verify(e->data, e->len, &h), MQ_OK);
    CU_ASSERT_EQUAL(h.ledger_id, 9);
    CU_ASSERT_EQUAL(h.entry_id, 17);
    CU_ASSERT_EQUAL(h.lac, 16);
    CU_ASSERT_EQUAL(h.length, 5400);
    for (size_t i = 0; i < e->len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            e->data[i] ^= (uint8_t)(1u << bit);
            CU_ASSERT_EQUAL(lc_entry_verify(e->data, e->len, NULL), MQ_ECORRUPT);
            e->data[i] ^= (uint8_t)(1u << bit);
        }
    }
    CU_ASSERT_EQUAL(lc_entry_verify(e->data, e->len - 1, NULL), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(lc_entry_verify(e->data, 10, NULL), MQ_ECORRUPT);
    mq_buf_unref(e);
    /* An empty payload is a valid entry. */
    e = lc_entry_build(1, 0, -1, 0, NULL, 0);
    CU_ASSERT_EQUAL(lc_entry_verify(e->data, e->len, NULL), MQ_OK);
    mq_buf_unref(e);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"every status code mapped", test_every_status_mapped},
        {"request and response round trip", test_round_trip},
        {"entry checksum catches every flipped bit", test_entry_checks},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("bookie protocol", tests, NULL, NULL);
}
