/*
 * zk_int: what the files of common/zk/ share, and what its tests look at.
 * Not for use outside common/zk/ and tests/unit/zk/.
 *
 * The client (zk_client.c) owns the ZooKeeper handles, the session life
 * cycle, the event thread and the watch registry; zk_ops.c turns each public
 * operation into one asynchronous ZooKeeper call whose completion either
 * wakes a blocked caller or is posted to the event thread; zk_ephemeral.c
 * keeps the registered ephemerals; zk_lock.c is the lock recipe, written on
 * top of the public API plus the internal hooks below (cancellable tasks,
 * forget, claims).
 *
 * This header does not include <zookeeper/zookeeper.h> (so tests need not):
 * ZooKeeper's handle appears only as the incomplete struct _zhandle.
 *
 * Locking: one mutex per client, zk->mu, protects every field marked
 * "@locks mu"; zk->eph_mu serialises the ephemeral operations that write to
 * ZooKeeper (taken before mu, never while waiting on a call). No ZooKeeper
 * function is ever called with mu held: zookeeper_close() may run
 * completions on the calling thread, and they take mu.
 */
#ifndef ZK_INT_H
#define ZK_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_err.h"
#include "mq_executor.h"
#include "zk_client.h"

struct _zhandle; /* ZooKeeper's zhandle_t */

/* --- error table ------------------------------------------------------- */

typedef struct zk_err_entry {
    int zrc;          /* ZooKeeper's ZOO_ERRORS value */
    const char *name; /* its symbol, e.g. "ZNONODE" */
    mq_err_t err;
} zk_err_entry_t;

/* The one table mapping ZooKeeper return codes to mq_err_t (every code of
 * ZooKeeper 3.8's ZOO_ERRORS is listed). */
const zk_err_entry_t *zk_err_table(size_t *count);
/* Maps a ZooKeeper return code; codes not in the table give MQ_EZK. */
mq_err_t zk_err_from_zoo(int zrc);

/* --- sessions ---------------------------------------------------------- */

/* A link in an intrusive doubly linked list. */
typedef struct zk_link {
    struct zk_link *prev;
    struct zk_link *next;
} zk_link_t;

/* One ZooKeeper handle and what we know of its session. Fields @locks mu. */
typedef struct zk_sess {
    zk_client_t *zk;
    struct _zhandle *zh; /* NULL until zookeeper_init2 returned */
    int64_t id;
    char passwd[16];
    int timeout_ms; /* negotiated */
    bool connected;
    bool ever_connected;
    bool expired;    /* unrecoverable: expired or authentication failed */
    bool closing;    /* no new calls; the closer waits for users to leave */
    int users;       /* threads inside a zoo_a* call on zh */
    zk_link_t calls; /* submitted calls not completed yet (zk_call_t) */
    int ncalls;
    struct zk_sess *next; /* in zk->dead */
} zk_sess_t;

/* --- events (everything that runs on the event thread) ------------------ */

typedef void (*zk_task_fn)(zk_client_t *zk, void *arg);

typedef enum zk_ev_kind {
    ZK_EV_SESSION = 1,
    ZK_EV_WATCH = 2,
    ZK_EV_TASK = 3,
} zk_ev_kind_t;

typedef struct zk_event {
    struct zk_event *prev; /* in zk->events or zk->lost, @locks mu */
    struct zk_event *next;
    zk_client_t *zk;
    zk_ev_kind_t kind;
    bool cancelled;   /* zk_client_forget() hit it: drop when it runs */
    bool cancellable; /* zk_client_forget(arg) applies */
    bool always;      /* runs even while the client closes */
    void *arg;
    zk_session_cb session_cb;
    zk_session_event_t session_event;
    zk_watch_cb watch_cb;
    zk_watch_event_t watch_event;
    char *path; /* owned */
    zk_task_fn task;
} zk_event_t;

/* Posts fn(zk, arg) to the event thread after delay_ms (0: in order with
 * every other event). A cancellable task is dropped by
 * zk_client_forget(zk, arg); an "always" task also runs while the client
 * is being freed (e.g. async completions). @locality any thread; mu not held. */
void zk_client_post_task(zk_client_t *zk, zk_task_fn fn, void *arg, uint64_t delay_ms,
                         bool cancellable, bool always);
/* The same, called with mu held. @locks mu */
void zk_client_post_task_locked(zk_client_t *zk, zk_task_fn fn, void *arg, uint64_t delay_ms,
                                bool cancellable, bool always);
/* True on the client's event thread. */
bool zk_client_on_event_thread(zk_client_t *zk);
/* After this returns no callback with this arg starts: queued session,
 * watch and task events are dropped, session listeners with this arg are
 * removed, outstanding watches with this cb arg or this waiter are muted.
 * With barrier (and not on the event thread) it also waits for a callback
 * that is running right now to return. @locality any thread; mu not held. */
void zk_client_forget(zk_client_t *zk, const void *arg, bool barrier);

/* --- watches ----------------------------------------------------------- */

/* An internal one-shot flag a blocked caller waits on (instead of a
 * callback on the event thread); set under mu, with zk->cond broadcast. */
typedef struct zk_waiter {
    bool fired;
} zk_waiter_t;

/* One watch left with ZooKeeper; ZooKeeper's watcher context. Fields @locks
 * mu. Freed when it fires, when the call that would have set it failed, or
 * after its handle was closed (then reported ZK_WATCH_LOST). */
typedef struct zk_watch {
    struct zk_watch *prev;
    struct zk_watch *next;
    zk_client_t *zk;
    zk_sess_t *sess;
    zk_watch_cb cb; /* NULL once forgotten */
    void *arg;
    zk_waiter_t *waiter; /* instead of cb; NULL once forgotten */
    char *path;          /* the caller's path (without chroot) */
    bool active;         /* ZooKeeper holds it */
} zk_watch_t;

/* Registers a watch before the call that sets it is sent. mu not held. */
zk_watch_t *zk_client_watch_add(zk_client_t *zk, zk_sess_t *sess, const char *path, zk_watch_cb cb,
                                void *arg, zk_waiter_t *waiter);
/* The call completed: the watch is set (activated) or it never will be (it
 * is freed). @locks mu */
void zk_client_watch_settle_locked(zk_client_t *zk, zk_watch_t *w, bool activated);
/* ZooKeeper's watcher for every watch we set (ctx is the zk_watch_t). */
void zk_client_zoo_watch(struct _zhandle *zh, int type, int state, const char *path, void *ctx);

/* --- calls (zk_ops.c) -------------------------------------------------- */

/* Takes the current session for one zoo_a* call (users++) and links call
 * into its outstanding calls. MQ_ECLOSED when the client closes,
 * MQ_ESESSION between an expiry and the new session. Release it right after
 * the zoo_a* call returned, passing the call again when the zoo_a* call
 * failed (it is unlinked: no completion will come). mu not held. */
mq_err_t zk_client_sess_acquire(zk_client_t *zk, zk_link_t *call, zk_sess_t **sess,
                                struct _zhandle **zh);
void zk_client_sess_release(zk_client_t *zk, zk_sess_t *sess, zk_link_t *failed_call);
/* A completion arrived: unlinks the call from its session. @locks mu */
void zk_client_call_done_locked(zk_client_t *zk, zk_sess_t *sess, zk_link_t *call);
/* zk_exists that leaves a watch setting waiter->fired (under mu, with
 * zk->cond broadcast) instead of calling back. Forget the waiter with
 * zk_client_forget(zk, waiter, false) before it goes out of scope. */
mq_err_t zk_ops_exists_waiter(zk_client_t *zk, const char *path, zk_waiter_t *waiter,
                              zk_stat_t *stat);
/* Completes a call ZooKeeper will never complete (its handle was closed
 * with the completion still queued) as if with ZCLOSING. @locks mu */
void zk_ops_abort_locked(zk_client_t *zk, zk_link_t *call);
/* The chrooted path for ZooKeeper (malloc'ed); MQ_EINVAL for a path that
 * does not start with '/' (ZooKeeper checks the rest). */
mq_err_t zk_client_path(zk_client_t *zk, const char *path, char **full);
/* Strips the chroot from a path ZooKeeper returned; borrowed from full. */
const char *zk_client_unroot(zk_client_t *zk, const char *full);

/* --- client fields the other files read --------------------------------- */

typedef struct zk_listener {
    struct zk_listener *next;
    zk_session_cb cb;
    void *arg;
} zk_listener_t;

/* A registered ephemeral. Fields @locks mu. */
typedef struct zk_eph {
    struct zk_eph *next;
    char *path;
    char *data;
    size_t len;
    bool registered; /* false while zk_ephemeral_register still works on it */
    uint64_t gen;    /* session generation it exists in; 0: not (yet) */
    uint64_t pass;   /* the last zk_eph_resync pass that tried it */
} zk_eph_t;

/* A node path a lock of this client owns (see zk_lock.c, orphans). */
typedef struct zk_claim {
    struct zk_claim *next;
    char *path;
} zk_claim_t;

struct zk_client {
    char *servers;
    char *chroot; /* NULL or "/a/b" */
    size_t chroot_len;
    int session_timeout_ms; /* asked */
    int connect_timeout_ms;
    mq_executor_t *ex; /* the event thread */

    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast on any state change */
    pthread_mutex_t eph_mu;

    /* @locks mu */
    bool closing;
    zk_sess_t *sess;    /* current session; NULL between expiry and new */
    zk_sess_t *pending; /* the new session being opened after an expiry */
    zk_sess_t *dead;    /* expired sessions waiting to be closed */
    uint64_t gen;       /* bumped each time a session becomes current */
    int64_t session_id; /* of the current (or last) session */
    int timeout_ms;     /* negotiated, of the current (or last) session */
    zk_listener_t *listeners;
    zk_watch_t *watches;
    zk_event_t *events; /* queued on the executor, not yet run */
    zk_event_t *lost;   /* ZK_WATCH_LOST events held until the new session */
    zk_eph_t *ephs;
    zk_claim_t *claims;
    bool eph_retry;    /* a resync retry is scheduled */
    uint64_t eph_pass; /* zk_eph_resync passes, @locks eph_mu */
};

/* --- ephemerals (zk_ephemeral.c) ---------------------------------------- */

/* Installs every registered ephemeral the current session lacks; schedules
 * itself again while some cannot be installed. @locality event thread */
void zk_eph_resync(zk_client_t *zk);
/* Frees the registry (client free). */
void zk_eph_free_all(zk_client_t *zk);

/* --- claims ------------------------------------------------------------ */

/* Records / drops that a lock of this client owns path. Any thread. */
void zk_client_claim(zk_client_t *zk, const char *path, bool claim);
bool zk_client_claimed(zk_client_t *zk, const char *path);

#endif
