/*
 * lc_entry: building and checking entries (see lc_entry.h for the layout).
 */
#include "lc_entry.h"

#include <string.h>

#include "mq_crc32c.h"
#include "mq_util.h"

void lc_entry_write_hdr(uint8_t *hdr, uint64_t ledger_id, int64_t entry_id, int64_t lac,
                        uint64_t length, const void *payload, size_t payload_len)
{
    mq_put_le64(hdr, ledger_id);
    mq_put_le64(hdr + 8, (uint64_t)entry_id);
    mq_put_le64(hdr + 16, (uint64_t)lac);
    mq_put_le64(hdr + 24, length);
    uint32_t crc = mq_crc32c(0, hdr, 32);
    crc = mq_crc32c(crc, payload, payload_len);
    mq_put_le32(hdr + 32, crc);
}

mq_buf_t *lc_entry_build(uint64_t ledger_id, int64_t entry_id, int64_t lac, uint64_t length,
                         const void *payload, size_t payload_len)
{
    mq_buf_t *buf = mq_buf_new(LC_ENTRY_HDR_SIZE + payload_len);
    if (payload_len) {
        memcpy(buf->data + LC_ENTRY_HDR_SIZE, payload, payload_len);
    }
    lc_entry_write_hdr(buf->data, ledger_id, entry_id, lac, length, buf->data + LC_ENTRY_HDR_SIZE,
                       payload_len);
    buf->len = LC_ENTRY_HDR_SIZE + payload_len;
    return buf;
}

void lc_entry_parse_hdr(const uint8_t *entry, lc_entry_hdr_t *hdr)
{
    hdr->ledger_id = mq_get_le64(entry);
    hdr->entry_id = (int64_t)mq_get_le64(entry + 8);
    hdr->lac = (int64_t)mq_get_le64(entry + 16);
    hdr->length = mq_get_le64(entry + 24);
    hdr->crc = mq_get_le32(entry + 32);
}

mq_err_t lc_entry_verify(const uint8_t *entry, size_t len, lc_entry_hdr_t *hdr)
{
    if (len < LC_ENTRY_HDR_SIZE) {
        return MQ_ECORRUPT;
    }
    lc_entry_hdr_t h;
    lc_entry_parse_hdr(entry, &h);
    uint32_t crc = mq_crc32c(0, entry, 32);
    crc = mq_crc32c(crc, entry + LC_ENTRY_HDR_SIZE, len - LC_ENTRY_HDR_SIZE);
    if (crc != h.crc) {
        return MQ_ECORRUPT;
    }
    if (hdr) {
        *hdr = h;
    }
    return MQ_OK;
}
