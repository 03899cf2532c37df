/*
 * it_client: see it_client.h. Test thread only.
 */
#include "it_client.h"

#include <stdlib.h>
#include <string.h>

#include "lc_entry.h"
#include "mq_test.h"
#include "mq_log.h"
#include "mq_util.h"

void it_client_open(it_client_t *cl, const char *addr)
{
    cl->loop = mq_net_loop_new("it-client");
    MQ_ASSERT(lc_bookie_new(cl->loop, addr, &cl->bk) == MQ_OK);
}

void it_client_close(it_client_t *cl)
{
    lc_bookie_free(cl->bk);
    mq_net_loop_free(cl->loop);
    cl->bk = NULL;
    cl->loop = NULL;
}

void it_payload(uint64_t ledger, int64_t entry, uint8_t *buf, size_t len)
{
    uint64_t s = mq_mix64(ledger * 31 + (uint64_t)entry);
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            s = mq_mix64(s);
        }
        buf[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
}

mq_err_t it_add(it_client_t *cl, uint64_t ledger, int64_t entry, const char *key, uint32_t flags,
                size_t size)
{
    uint8_t *p = mq_malloc(size ? size : 1);
    it_payload(ledger, entry, p, size);
    mq_buf_t *buf = lc_entry_build(ledger, entry, entry - 1, (uint64_t)(entry + 1) * size, p, size);
    free(p);
    mq_slice_t s = {buf, buf->data, buf->len};
    lc_bk_sync_result_t r;
    mq_err_t err = lc_bookie_add_sync(cl->bk, ledger, entry, (const uint8_t *)key, strlen(key),
                                      flags, &s, 10000, &r);
    lc_bk_sync_result_fini(&r);
    mq_buf_unref(buf);
    return err;
}

mq_err_t it_read(it_client_t *cl, uint64_t ledger, int64_t entry, uint32_t flags, const char *key)
{
    lc_bk_sync_result_t r;
    mq_err_t err = lc_bookie_read_sync(cl->bk, ledger, entry, flags, (const uint8_t *)key,
                                       key ? strlen(key) : 0, 10000, &r);
    if (err == MQ_OK) {
        size_t plen = r.res.data.len - LC_ENTRY_HDR_SIZE;
        uint8_t *want = mq_malloc(plen ? plen : 1);
        it_payload(ledger, r.res.entry_id, want, plen);
        if (memcmp(want, r.res.data.ptr + LC_ENTRY_HDR_SIZE, plen) != 0) {
            err = MQ_ECORRUPT;
        }
        free(want);
    }
    lc_bk_sync_result_fini(&r);
    return err;
}

static bool it_client_answers(void *arg)
{
    it_client_t *cl = arg;
    lc_bk_sync_result_t r;
    mq_err_t err = lc_bookie_info_sync(cl->bk, 2000, &r);
    lc_bk_sync_result_fini(&r);
    return err == MQ_OK;
}

bool it_client_wait_ready(it_client_t *cl)
{
    return mq_test_wait(it_client_answers, cl, 15000);
}
