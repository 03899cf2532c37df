/*
 * br_cluster_int: what br_cluster.c (life cycle, registration, watched
 * views, queries), br_leader.c (the leader) and br_owner.c (ownership of
 * this broker's queues) share. Not for use outside them and their tests.
 *
 * Threads (see br_cluster.c for the whole picture):
 *   - the zk event thread runs watch, lock and session callbacks: they go
 *     through cl->hook, mark caches stale and post; never block;
 *   - cl->ctl, one thread ("brctl"): reading our assignment, the leader's
 *     rebalance, the load report; may block on ZooKeeper;
 *   - cl->ex, conf.workers threads ("brq"): one queue's ownership steps and
 *     its on_acquire / on_release, keyed by the queue; may block.
 */
#ifndef BR_CLUSTER_INT_H
#define BR_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "br_cluster.h"
#include "br_cluster_dir.h"
#include "br_cluster_hook.h"
#include "br_cluster_rec.h"
#include "mq_executor.h"
#include "zk_lock.h"

/* Delay that gathers a burst of watch events into one rebalance. */
#define BR_LEADER_DEBOUNCE_MS 100
/* The same for load reports (every broker rewrites its registration every
 * report interval; only overload shedding looks at the figures). */
#define BR_LEADER_LOAD_DEBOUNCE_MS 1000
/* Retry delay after a ZooKeeper error on the ctl thread. */
#define BR_CLUSTER_RETRY_MS 1000
/* The ctl executor's only key. */
#define BR_CLUSTER_CTL_KEY 0

/* One queue this broker was assigned at some point (kept until stop). */
typedef struct br_oq {
    struct br_cluster *cl;
    br_qid_t id;
    uint64_t key; /* executor key */
    char path[BR_PATH_MAX];
    /* @locks cl->own_mu */
    bool assigned;     /* our assignment names it */
    bool kick_pending; /* a step is queued */
    bool release_req;  /* br_cluster_release asked */
    int armed;         /* exists watches outstanding on path */
    /* @locality cl->ex, thread of key */
    bool owned;         /* we hold path and on_acquire succeeded */
    uint64_t owned_gen; /* cl->gen when we created it */
    int64_t owned_sid;  /* the session that holds it */
    bool parent_ok;     /* ownership/<topic> exists */
    bool stale_node;    /* a node of ours is left to delete */
    uint64_t retry_at;  /* mq_now_ms: no attempt before */
    unsigned failures;  /* on_acquire failures in a row */
    bool timer_pending;
} br_oq_t;

/* A topic's ownership directory cache. */
typedef struct br_odir {
    char topic[BR_TOPIC_NAME_MAX + 1];
    br_dir_t *dir;
} br_odir_t;

/* The assignee index built from every assignment record. */
typedef struct br_aidx {
    br_qid_t q;
    char id[BR_ID_MAX];
} br_aidx_t;

struct br_cluster {
    br_cluster_conf_t conf; /* strings point at the copies below */
    char root[BR_PATH_MAX];
    char id[BR_ID_MAX];
    char cluster[BR_ID_MAX];
    char endpoint[BR_ENDPOINT_MAX];
    zk_client_t *zk;
    br_hook_t *hook;
    mq_executor_t *ctl;
    mq_executor_t *ex;
    atomic_bool stopping;
    /* Session generation: bumped when our session expires (event thread). */
    atomic_uint_fast64_t gen;

    /* Layout paths. */
    char reg_path[BR_PATH_MAX];    /* brokers/available/<id> */
    char leader_dir[BR_PATH_MAX];  /* brokers/leader */
    char assign_path[BR_PATH_MAX]; /* brokers/assignments/<id> */
    char owner_root[BR_PATH_MAX];  /* ownership */

    /* Watched views (thread-safe themselves). */
    br_dir_t *brokers; /* brokers/available */
    br_dir_t *assigns; /* brokers/assignments */
    br_dir_t *topics;  /* topics */
    pthread_mutex_t odir_mu;
    br_odir_t *odirs; /* @locks odir_mu, sorted by topic; dirs live until stop */
    size_t nodirs;
    size_t capodirs;

    pthread_mutex_t idx_mu;
    br_aidx_t *idx; /* @locks idx_mu, sorted by q */
    size_t nidx;
    uint64_t idx_gen; /* br_dir_gen(assigns) it was built at; 0: never */

    /* Registration. @locality ctl (after start) */
    char *reg_data;
    size_t reg_len;
    bool registered;

    /* Leader. */
    zk_lock_t *lock;     /* set before any query; the lock callback never reads it */
    atomic_bool leading; /* what the lock last told */
    /* mq_now_ms deadline of the rebalance queued soonest, 0: none. */
    atomic_uint_fast64_t rebalance_at;
    bool was_leader; /* @locality ctl */
    /* Brokers that shed load lately and their targets (br_assign's hold).
     * @locality ctl */
    struct br_shed_hold {
        char id[BR_ID_MAX];
        size_t target;
        uint64_t until; /* mq_now_ms */
    } * holds;
    size_t nholds;

    /* Ownership. */
    pthread_mutex_t own_mu;
    br_oq_t **oqs; /* @locks own_mu, sorted by id; kept until stop */
    size_t noqs;
    size_t capoqs;
    atomic_bool refresh_pending;
    bool refresh_retry; /* @locality ctl */
};

/* --- br_cluster.c ---------------------------------------------------------- */

/* The ownership directory cache of topic (created when missing). Any
 * thread. */
br_dir_t *br_cluster_odir(br_cluster_t *cl, const char *topic);
/* The watch callbacks of every br_dir of the cluster (arg: cl->hook). */
void br_cluster_on_dir_children(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                void *arg);
void br_cluster_on_dir_data(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg);

/* --- br_leader.c ----------------------------------------------------------- */

/* Joins the election. Caller's thread, at start. */
mq_err_t br_leader_start(br_cluster_t *cl);
/* Leaves the election (no lock callback after it returns). Not from the zk
 * event thread. */
void br_leader_stop(br_cluster_t *cl);
/* Asks for a rebalance within delay_ms when we lead: asks while one is
 * queued to run sooner cost nothing; a sooner ask queues another run (an
 * extra run is harmless). Any thread. */
void br_leader_poke(br_cluster_t *cl, uint64_t delay_ms);
/* The periodic rebalance timer. @locality ctl */
void br_leader_tick(void *arg);

/* --- br_owner.c ------------------------------------------------------------ */

/* Reads our assignment again soon (on ctl). Any thread. */
void br_owner_refresh_soon(br_cluster_t *cl);
/* Our session expired: every owned queue is lost, the assignment forgotten
 * until the new session reads it again. zk event thread. */
void br_owner_session_expired(br_cluster_t *cl);
/* A new session is up. zk event thread. */
void br_owner_session_new(br_cluster_t *cl);
/* Releases every owned queue on its thread (on_release lost = false, znode
 * deleted). Called by br_cluster_stop after the ctl executor is gone and
 * before the queue executor is freed (which runs these releases). */
void br_owner_stop(br_cluster_t *cl);
/* Frees the queue table (after the queue executor is gone). */
void br_owner_free(br_cluster_t *cl);

#endif
