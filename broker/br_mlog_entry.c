/*
 * br_mlog_entry: the bytes of one ledger entry of a managed log, i.e. a batch
 * of messages of one queue. The writer (br_mlog.c) builds entries in place
 * in the intake and stamps the header when it cuts them; readers (owner,
 * detached, open's recovery step) decode them here. Pure functions, any
 * thread.
 *
 * Layout, little-endian:
 *
 *   offset  size  field
 *   0       1     magic 0xB1
 *   1       1     format version (1)
 *   2       4     count: messages in the entry (u32, >= 1)
 *   6       8     base offset: the offset of the first message (i64, >= 0)
 *   14      8     store time: when the entry was cut (u64, ms since the epoch)
 *   22      ...   count x { u32 length, length bytes }
 *
 * Message i of the entry has offset base + i. The ledger already checks a
 * CRC32C over every entry, so there is none here. Decoding trusts nothing:
 * short input, a wrong magic or version, a zero count, a negative base, an
 * offset range past INT64_MAX, a length running past the end and bytes left
 * over after the last message are all MQ_ECORRUPT.
 */
#include <string.h>

#include "br_mlog_int.h"
#include "mq_util.h"

void br_mlog_entry_put_hdr(uint8_t *p, uint32_t count, int64_t base, uint64_t time_ms)
{
    p[0] = BR_MLOG_ENTRY_MAGIC;
    p[1] = BR_MLOG_ENTRY_VERSION;
    mq_put_le32(p + 2, count);
    mq_put_le64(p + 6, (uint64_t)base);
    mq_put_le64(p + 14, time_ms);
}

size_t br_mlog_entry_size(const size_t *lens, size_t n)
{
    size_t size = BR_MLOG_ENTRY_HDR;
    for (size_t i = 0; i < n; i++) {
        size += BR_MLOG_MSG_HDR + lens[i];
    }
    return size;
}

void br_mlog_entry_encode(uint8_t *out, int64_t base, uint64_t time_ms, const void *const *datas,
                          const size_t *lens, size_t n)
{
    br_mlog_entry_put_hdr(out, (uint32_t)n, base, time_ms);
    size_t at = BR_MLOG_ENTRY_HDR;
    for (size_t i = 0; i < n; i++) {
        mq_put_le32(out + at, (uint32_t)lens[i]);
        at += BR_MLOG_MSG_HDR;
        if (lens[i] > 0) {
            memcpy(out + at, datas[i], lens[i]);
        }
        at += lens[i];
    }
}

mq_err_t br_mlog_entry_decode(const uint8_t *p, size_t len, br_mlog_entry_hdr_t *hdr, int64_t from,
                              br_mlog_msg_t *msgs, size_t max, size_t *n)
{
    if (n) {
        *n = 0;
    }
    if (!p && len > 0) {
        return MQ_EINVAL;
    }
    if (len < BR_MLOG_ENTRY_HDR || p[0] != BR_MLOG_ENTRY_MAGIC || p[1] != BR_MLOG_ENTRY_VERSION) {
        return MQ_ECORRUPT;
    }
    uint32_t count = mq_get_le32(p + 2);
    uint64_t ubase = mq_get_le64(p + 6);
    if (count == 0 || ubase > (uint64_t)INT64_MAX || count > (uint64_t)INT64_MAX - ubase) {
        return MQ_ECORRUPT;
    }
    /* Every message takes at least its length word: a bound on count before
     * walking (a huge count in a short entry costs nothing). */
    if (count > (len - BR_MLOG_ENTRY_HDR) / BR_MLOG_MSG_HDR) {
        return MQ_ECORRUPT;
    }
    int64_t base = (int64_t)ubase;
    size_t at = BR_MLOG_ENTRY_HDR;
    size_t out = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (len - at < BR_MLOG_MSG_HDR) {
            return MQ_ECORRUPT;
        }
        uint32_t ml = mq_get_le32(p + at);
        at += BR_MLOG_MSG_HDR;
        if (ml > len - at) {
            return MQ_ECORRUPT;
        }
        if (msgs && out < max && base + (int64_t)i >= from) {
            msgs[out].offset = base + (int64_t)i;
            msgs[out].data = p + at;
            msgs[out].len = ml;
            out++;
        }
        at += ml;
    }
    if (at != len) {
        return MQ_ECORRUPT;
    }
    if (hdr) {
        hdr->count = count;
        hdr->base = base;
        hdr->time_ms = mq_get_le64(p + 14);
    }
    if (n) {
        *n = out;
    }
    return MQ_OK;
}
