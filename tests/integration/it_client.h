/*
 * it_client: a bookie-protocol client for integration tests (a net loop
 * plus lc_bookie clients), with small helpers to add and read entries whose
 * payload derives from (ledger, entry).
 */
#ifndef IT_CLIENT_H
#define IT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <CUnit/CUnit.h>
#include <stdio.h>

#include "lc_bookie.h"
#include "mq_net.h"

/* Asserts that an mq_err_t expression has the wanted value, printing both
 * names when it does not. */
#define IT_EXPECT(expr, want)                                                                      \
    do {                                                                                           \
        mq_err_t it_got_ = (expr);                                                                 \
        if (it_got_ != (want)) {                                                                   \
            fprintf(stderr, "\n  %s:%d: %s = %s, want %s\n", __FILE__, __LINE__, #expr,            \
                    mq_err_name(it_got_), mq_err_name(want));                                      \
        }                                                                                          \
        CU_ASSERT_EQUAL(it_got_, (want));                                                          \
    } while (0)

typedef struct it_client {
    mq_net_loop_t *loop;
    lc_bookie_t *bk;
} it_client_t;

void it_client_open(it_client_t *cl, const char *addr);
void it_client_close(it_client_t *cl);
/* Builds the entry (payload of size bytes derived from ids) and adds it. */
mq_err_t it_add(it_client_t *cl, uint64_t ledger, int64_t entry, const char *key, uint32_t flags,
                size_t size);
/* Reads an entry; on MQ_OK checks its payload against the derived bytes and
 * returns MQ_ECORRUPT when they differ. */
mq_err_t it_read(it_client_t *cl, uint64_t ledger, int64_t entry, uint32_t flags, const char *key);
/* Waits until the bookie answers this client again (after a restart the
 * client may be in its reconnect backoff for a moment). */
bool it_client_wait_ready(it_client_t *cl);
/* Fills buf with the payload derived from (ledger, entry). */
void it_payload(uint64_t ledger, int64_t entry, uint8_t *buf, size_t len);

#endif
