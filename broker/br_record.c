/*
 * br_record: see br_record.h.
 */
#include "br_record.h"

#include <string.h>

#include "mq_util.h"

uint8_t *br_record_make(const uint8_t *msg, size_t msg_len, uint64_t store_ms, size_t *len)
{
    uint8_t *rec = mq_malloc(BR_RECORD_HEADER + msg_len);
    rec[0] = BR_RECORD_MAGIC;
    rec[1] = BR_RECORD_VERSION;
    rec[2] = 0;
    rec[3] = 0;
    mq_put_le64(rec + 4, store_ms);
    if (msg_len) {
        memcpy(rec + BR_RECORD_HEADER, msg, msg_len);
    }
    *len = BR_RECORD_HEADER + msg_len;
    return rec;
}

mq_err_t br_record_parse(const uint8_t *rec, size_t len, uint64_t *store_ms, const uint8_t **msg,
                         size_t *msg_len)
{
    if (len < BR_RECORD_HEADER || rec[0] != BR_RECORD_MAGIC || rec[1] != BR_RECORD_VERSION) {
        return MQ_ECORRUPT;
    }
    *store_ms = mq_get_le64(rec + 4);
    *msg = rec + BR_RECORD_HEADER;
    *msg_len = len - BR_RECORD_HEADER;
    return MQ_OK;
}
