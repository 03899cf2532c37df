/*
 * lc_bkproto: the bookie protocol's codec (proto/bookie.proto): encoding and
 * decoding of the Request / Response meta with nanopb, and the one table that
 * maps wire Status codes to and from mq_err_t. Pure functions, any thread.
 */
#ifndef LC_BKPROTO_H
#define LC_BKPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "bookie.pb.h"
#include "mq_err.h"

typedef ledgermq_bookie_v1_Request lc_bk_request_t;
typedef ledgermq_bookie_v1_Response lc_bk_response_t;
typedef ledgermq_bookie_v1_Status lc_bk_status_t;

/* Upper bounds of encoded sizes (from the generated descriptors). */
#define LC_BK_REQUEST_MAX ledgermq_bookie_v1_Request_size
#define LC_BK_RESPONSE_MAX ledgermq_bookie_v1_Response_size

/* Wire status → error. An unknown value gives MQ_EPROTO. */
mq_err_t lc_bkproto_status_err(lc_bk_status_t status);
/* Error → wire status (errors with no status of their own map to IO_ERROR,
 * protocol and argument errors to BAD_REQUEST). */
lc_bk_status_t lc_bkproto_err_status(mq_err_t err);
/* The status's name as in the .proto, e.g. "STATUS_FENCED". */
const char *lc_bkproto_status_name(lc_bk_status_t status);

/* Encodes into buf (cap >= LC_BK_*_MAX suffices); *len gets the size. */
mq_err_t lc_bkproto_encode_request(const lc_bk_request_t *req, uint8_t *buf, size_t cap,
                                   size_t *len);
mq_err_t lc_bkproto_encode_response(const lc_bk_response_t *resp, uint8_t *buf, size_t cap,
                                    size_t *len);
/* Decodes; MQ_EPROTO when the bytes are not a valid message. */
mq_err_t lc_bkproto_decode_request(const uint8_t *buf, size_t len, lc_bk_request_t *req);
mq_err_t lc_bkproto_decode_response(const uint8_t *buf, size_t len, lc_bk_response_t *resp);

#endif
