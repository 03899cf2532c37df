/*
 * it_ledger: helpers for ledger-client integration tests: a ledger client on
 * the test cluster, payloads derived from (ledger, entry), an async writer
 * that keeps K adds in flight and records which entries were acknowledged,
 * and a checker that reads entries back through a handle.
 */
#ifndef IT_LEDGER_H
#define IT_LEDGER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "it_cluster.h"
#include "lc_ledger.h"

/* A client on c's ZooKeeper with (e, qw, qa) defaults and short timeouts. */
lc_client_t *it_lc_client(it_cluster_t *c, int e, int qw, int qa);

/* The payload of (ledger, entry): size bytes derived from both. */
void it_lc_payload(uint64_t ledger, int64_t entry, uint8_t *buf, size_t size);

typedef struct it_writer {
    lc_ledger_t *lh;
    int64_t total; /* entries to write; -1: until stopped */
    size_t size;
    int inflight_max;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t issued;
    int inflight;
    int64_t acked;     /* count of acknowledged adds */
    int64_t max_acked; /* highest acknowledged entry id */
    int64_t failed;
    mq_err_t first_err;
    bool stop;
    bool done;
    uint8_t *acked_map; /* one byte per entry id (grown as needed) */
    int64_t map_cap;
} it_writer_t;

/* Starts writing (callbacks issue the next adds). */
void it_writer_start(it_writer_t *w, lc_ledger_t *lh, int64_t total, size_t size, int inflight);
/* Waits until at least n adds were acknowledged (or the writer failed or
 * finished); true when n were. */
bool it_writer_wait_acked(it_writer_t *w, int64_t n, unsigned timeout_ms);
/* Asks the writer to stop issuing and waits for what is in flight. */
void it_writer_stop(it_writer_t *w);
/* Waits for the writer to finish (total reached or a failure). */
bool it_writer_wait_done(it_writer_t *w, unsigned timeout_ms);
bool it_writer_was_acked(it_writer_t *w, int64_t e);

/* A consistent copy of the writer's counters (taken under its lock: the
 * ledger client's loop updates them). */
typedef struct it_writer_stats {
    int64_t acked;
    int64_t max_acked;
    int64_t failed;
    mq_err_t first_err;
    bool done;
} it_writer_stats_t;

it_writer_stats_t it_writer_stats(it_writer_t *w);
void it_writer_fini(it_writer_t *w);

/* Reads entries 0..last through lh and checks each payload; returns how many
 * are missing or wrong. */
int64_t it_lc_check(lc_ledger_t *lh, int64_t last, size_t size);

#endif
