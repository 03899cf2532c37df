/*
 * lc_int: the ledger client's internal state, shared by its files:
 * lc_client.c (client life cycle, bookie connections, master key, waiting),
 * lc_write.c (adds, ensemble change, close), lc_read.c (reads, LAC),
 * lc_recover.c (open with recovery) and lc_open.c (create, open, delete).
 *
 * Threading: a handle's write and read state lives on the client's loop
 * thread (@locality loop); bookie answers arrive there, ZooKeeper completions
 * are posted there. User threads only post work and wait.
 */
#ifndef LC_INT_H
#define LC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lc_bookie.h"
#include "lc_ledger.h"
#include "lc_quorum.h"
#include "meta_store.h"
#include "mq_net.h"

#define LC_KEY_LEN 32

typedef struct lc_bookie_slot {
    char id[META_BOOKIE_ID_MAX];
    lc_bookie_t *bk;
} lc_bookie_slot_t;

struct lc_client {
    lc_client_conf_t conf; /* strings below are owned copies */
    char *root;
    zk_client_t *zk;
    bool own_zk;
    meta_bookies_t *bookies;
    mq_net_loop_t *loop;
    uint8_t key[LC_KEY_LEN];
    char key_digest[META_DIGEST_HEX + 1];

    pthread_mutex_t lock; /* @locks the bookie connections */
    lc_bookie_slot_t *slots;
    size_t nslots;
    size_t cap_slots;
    atomic_int handles;
};

/* One add in flight. */
typedef struct lc_add_op {
    lc_pend_t pend;
    struct lc_ledger *lh;
    mq_buf_t *entry; /* header + payload, as sent */
    uint64_t length; /* ledger length through this entry */
    lc_add_cb cb;
    void *arg;
    int outstanding; /* requests sent and not answered */
    bool finished;   /* its callback ran */
} lc_add_op_t;

typedef struct lc_ledger {
    lc_client_t *cl;
    int refs; /* @locality loop: the user's, one per request in flight, the timer's */
    uint64_t id;
    bool writer;
    atomic_int_fast64_t lac_pub; /* lac, readable from any thread */
    atomic_bool closed_pub;

    /* @locality loop */
    meta_ledger_t md;
    int E;
    int Qw;
    int Qa;
    lc_bookie_t *ens[META_MAX_ENSEMBLE]; /* the last segment's bookies */
    uint32_t epoch[META_MAX_ENSEMBLE];   /* bumped when an index is replaced */
    int64_t last_pushed;
    int64_t lac;
    uint64_t lac_length;
    uint64_t pushed_length;
    lc_pending_t pending;
    bool changing;         /* an ensemble change is being written */
    uint32_t failed;       /* indexes that failed and are not replaced yet */
    uint32_t replacing;    /* indexes the change in flight replaces */
    meta_ledger_t next_md; /* the metadata the change in flight writes */
    mq_err_t fatal;        /* once set, every add fails with it */
    bool closing;          /* no more adds accepted */
    uv_timer_t retry_timer;
    bool timer_init;
    bool freeing;

    /* Waiting threads (close, free): signalled when pending drains. */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    uint64_t idle_gen; /* @locks wlock: bumped each time the writer goes idle */
} lc_ledger_t;

/* --- lc_client.c ------------------------------------------------------------- */

/* The connection to bookie id (created on first use). Any thread. */
lc_bookie_t *lc_client_bookie(lc_client_t *cl, const char *id);
/* A new handle bound to cl with md copied in (loop state initialized). */
lc_ledger_t *lc_ledger_new(lc_client_t *cl, const meta_ledger_t *md, bool writer);
/* Loads the last segment's bookies into lh->ens. @locality loop or before
 * the handle is shared. */
void lc_ledger_load_ensemble(lc_ledger_t *lh);
/* Handle references (loop thread; the creating thread before sharing). */
void lc_ledger_ref(lc_ledger_t *lh);
void lc_ledger_unref(lc_ledger_t *lh);
/* Publishes lh->lac for other threads. */
void lc_ledger_publish(lc_ledger_t *lh);

/* A one-shot rendezvous between a user thread and the loop. */
typedef struct lc_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    mq_err_t err;
} lc_wait_t;

void lc_wait_init(lc_wait_t *w);
void lc_wait_done(lc_wait_t *w, mq_err_t err);
mq_err_t lc_wait_wait(lc_wait_t *w);

/* --- lc_write.c ------------------------------------------------------------- */

/* Fails everything pending with err and refuses later adds. @locality loop */
void lc_write_fail_all(lc_ledger_t *lh, mq_err_t err);
/* Number of adds in flight. @locality loop */
size_t lc_write_pending(lc_ledger_t *lh);

/* --- lc_read.c -------------------------------------------------------------- */

/* Reads an entry from its segment's replicas, in order, with speculative
 * retries, checking CRC and ids; any entry id (no LAC bound; recovery and
 * tools). flags: LC_BK_READ_FENCE to fence while reading. The payload handed
 * to cb is the whole entry (header included) when raw is set. */
mq_err_t lc_read_entry(lc_ledger_t *lh, int64_t entry_id, bool raw, lc_read_cb cb, void *arg);

#endif
