/*
 * lc_bkproto: nanopb encode/decode and the status table.
 */
#include "lc_bkproto.h"

#include <pb_decode.h>
#include <pb_encode.h>

#include "mq_util.h"

typedef struct lc_bk_status_map {
    lc_bk_status_t status;
    mq_err_t err;
    const char *name;
} lc_bk_status_map_t;

/* The one table mapping wire status codes and errors, both directions. */
static const lc_bk_status_map_t lc_bk_status_table[] = {
    {ledgermq_bookie_v1_Status_STATUS_OK, MQ_OK, "STATUS_OK"},
    {ledgermq_bookie_v1_Status_STATUS_NO_LEDGER, MQ_ENOLEDGER, "STATUS_NO_LEDGER"},
    {ledgermq_bookie_v1_Status_STATUS_NO_ENTRY, MQ_ENOENTRY, "STATUS_NO_ENTRY"},
    {ledgermq_bookie_v1_Status_STATUS_FENCED, MQ_EFENCED, "STATUS_FENCED"},
    {ledgermq_bookie_v1_Status_STATUS_UNAUTHORIZED, MQ_EUNAUTHORIZED, "STATUS_UNAUTHORIZED"},
    {ledgermq_bookie_v1_Status_STATUS_READ_ONLY, MQ_EREADONLY, "STATUS_READ_ONLY"},
    {ledgermq_bookie_v1_Status_STATUS_CORRUPT, MQ_ECORRUPT, "STATUS_CORRUPT"},
    {ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST, MQ_EBADREQ, "STATUS_BAD_REQUEST"},
    {ledgermq_bookie_v1_Status_STATUS_TOO_LARGE, MQ_ETOOLARGE, "STATUS_TOO_LARGE"},
    {ledgermq_bookie_v1_Status_STATUS_IO_ERROR, MQ_EIO, "STATUS_IO_ERROR"},
    {ledgermq_bookie_v1_Status_STATUS_TOO_MANY_REQUESTS, MQ_ETOOMANY, "STATUS_TOO_MANY_REQUESTS"},
    {ledgermq_bookie_v1_Status_STATUS_SHUTTING_DOWN, MQ_ESHUTDOWN, "STATUS_SHUTTING_DOWN"},
};

mq_err_t lc_bkproto_status_err(lc_bk_status_t status)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(lc_bk_status_table); i++) {
        if (lc_bk_status_table[i].status == status) {
            return lc_bk_status_table[i].err;
        }
    }
    return MQ_EPROTO;
}

lc_bk_status_t lc_bkproto_err_status(mq_err_t err)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(lc_bk_status_table); i++) {
        if (lc_bk_status_table[i].err == err) {
            return lc_bk_status_table[i].status;
        }
    }
    if (err == MQ_EPROTO || err == MQ_EINVAL) {
        return ledgermq_bookie_v1_Status_STATUS_BAD_REQUEST;
    }
    if (err == MQ_EAGAIN || err == MQ_ENOMEM) {
        return ledgermq_bookie_v1_Status_STATUS_TOO_MANY_REQUESTS;
    }
    return ledgermq_bookie_v1_Status_STATUS_IO_ERROR;
}

const char *lc_bkproto_status_name(lc_bk_status_t status)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(lc_bk_status_table); i++) {
        if (lc_bk_status_table[i].status == status) {
            return lc_bk_status_table[i].name;
        }
    }
    return "STATUS_UNKNOWN";
}

mq_err_t lc_bkproto_encode_request(const lc_bk_request_t *req, uint8_t *buf, size_t cap,
                                   size_t *len)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode(&os, ledgermq_bookie_v1_Request_fields, req)) {
        return MQ_EINVAL;
    }
    *len = os.bytes_written;
    return MQ_OK;
}

mq_err_t lc_bkproto_encode_response(const lc_bk_response_t *resp, uint8_t *buf, size_t cap,
                                    size_t *len)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    if (!pb_encode(&os, ledgermq_bookie_v1_Response_fields, resp)) {
        return MQ_EINVAL;
    }
    *len = os.bytes_written;
    return MQ_OK;
}

mq_err_t lc_bkproto_decode_request(const uint8_t *buf, size_t len, lc_bk_request_t *req)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    *req = (lc_bk_request_t)ledgermq_bookie_v1_Request_init_zero;
    return pb_decode(&is, ledgermq_bookie_v1_Request_fields, req) ? MQ_OK : MQ_EPROTO;
}

mq_err_t lc_bkproto_decode_response(const uint8_t *buf, size_t len, lc_bk_response_t *resp)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    *resp = (lc_bk_response_t)ledgermq_bookie_v1_Response_init_zero;
    return pb_decode(&is, ledgermq_bookie_v1_Response_fields, resp) ? MQ_OK : MQ_EPROTO;
}
