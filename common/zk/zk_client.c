/*
 * zk_client: the session life cycle, the event thread, the watch registry and
 * the bridge from ZooKeeper's log to ours.
 *
 * Threads. zookeeper_mt runs an IO thread and a completion thread per
 * handle; our watcher and completion functions run on the completion thread
 * (and, for calls that ZooKeeper aborts, on whichever thread closes the
 * handle). They only copy, update the state below under zk->mu and post to
 * the client's event thread (an mq_executor with one thread), where every
 * callback of the public API runs, in the order it was posted. Blocking calls
 * (zk_ops.c) are asynchronous ZooKeeper calls whose completion wakes the
 * caller directly, so they work on any thread, the event thread included.
 *
 * Sessions. zk->sess is the current session. ZooKeeper's own reconnects
 * within a session give ZK_SESSION_DISCONNECTED / ZK_SESSION_CONNECTED. When
 * the server expires the session, the watcher moves it to zk->dead, posts
 * ZK_SESSION_EXPIRED to the listeners and a recovery task. Recovery runs on
 * the event thread without blocking it for long: it closes the dead handle
 * (never from ZooKeeper's threads), opens a new one (zk->pending) and
 * returns; the new handle's first CONNECTED event posts the second step,
 * which makes it current, re-creates the registered ephemerals
 * (zk_ephemeral.c), posts ZK_SESSION_NEW and then ZK_WATCH_LOST for every
 * watch the dead session held, so that their owners can re-read and re-watch
 * at once. Between the expiry and the new session calls fail fast with
 * MQ_ESESSION (they do not wait), so a callback on the event thread can never
 * wait for the recovery queued behind it.
 *
 * Handles and calls. Threads enter zoo_a* functions only while counted in
 * sess->users; a handle is closed only once its users left, so no zoo_a*
 * call ever sees a freed handle. In the multi-threaded client
 * zookeeper_close() may drop completions that were queued but not yet run,
 * so every submitted call is linked in sess->calls until its completion
 * arrived; the closer waits (bounded) for them and completes the rest itself
 * (as ZCLOSING) once ZooKeeper can no longer touch them.
 *
 * Watches. Each watch we set is a zk_watch_t (ZooKeeper's watcher context)
 * in zk->watches. It is freed when it fires (ZooKeeper removed it before
 * calling us), when the call that would have set it failed (ZooKeeper only
 * activates a watch on success, or ZNONODE for exists), or after its handle
 * was closed. Per-path watchers also receive every session event; they are
 * ignored (the handle's own watcher handles them).
 *
 * Closing. zk_client_free marks the client closing (calls then fail with
 * MQ_ECLOSED), waits for the event thread to finish what it runs, closes
 * every handle, then drains the executor: async completions are still
 * delivered (MQ_ECLOSED when ZooKeeper aborted them), watch and session
 * events are dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zookeeper/zookeeper.h>

#include "mq_log.h"
#include "mq_util.h"
#include "zk_client.h"
#include "zk_int.h"

#define ZK_CLIENT_DEFAULT_SESSION_MS 10000
#define ZK_CLIENT_DEFAULT_CONNECT_MS 15000
/* Delay before trying again when a new handle could not even be created. */
#define ZK_CLIENT_REOPEN_MS 1000
/* How long closing an expired handle waits for its calls to complete (they
 * have all been failed by ZooKeeper already; this only covers the hand-off). */
#define ZK_CLIENT_DEAD_CALLS_MS 2000
/* ZooKeeper's IO and completion threads inherit the OS name of the thread
 * that creates them; that thread carries this name during zookeeper_init2,
 * and ZooKeeper's threads adopt it for our log lines when they first call us. */
#define ZK_CLIENT_THREAD_NAME "zk-client"
/* zk_client_test_expire: attempts (the old connection may win the session
 * back before the second handle closes it). */
#define ZK_CLIENT_EXPIRE_TRIES 5
/* ZooKeeper retries a refused connection every few tens of ms and logs each
 * attempt: at most this many of its lines per second are WARN, the rest
 * DEBUG (with a count). */
#define ZK_CLIENT_LOG_WARN_PER_SEC 5

/* --- error table -------------------------------------------------------- */

#define ZK_ERR(code, err)                                                                          \
    {                                                                                              \
        code, #code, err                                                                           \
    }

static const zk_err_entry_t zk_client_errs[] = {
    ZK_ERR(ZOK, MQ_OK),
    ZK_ERR(ZSYSTEMERROR, MQ_EZK),
    ZK_ERR(ZRUNTIMEINCONSISTENCY, MQ_EZK),
    ZK_ERR(ZDATAINCONSISTENCY, MQ_EZK),
    ZK_ERR(ZCONNECTIONLOSS, MQ_ECONN),
    ZK_ERR(ZMARSHALLINGERROR, MQ_EZK),
    ZK_ERR(ZUNIMPLEMENTED, MQ_EZK),
    ZK_ERR(ZOPERATIONTIMEOUT, MQ_ECONN),
    ZK_ERR(ZBADARGUMENTS, MQ_EINVAL),
    ZK_ERR(ZINVALIDSTATE, MQ_ESESSION),
    ZK_ERR(ZNEWCONFIGNOQUORUM, MQ_EZK),
    ZK_ERR(ZRECONFIGINPROGRESS, MQ_EZK),
    ZK_ERR(ZSSLCONNECTIONERROR, MQ_EZK),
    ZK_ERR(ZAPIERROR, MQ_EZK),
    ZK_ERR(ZNONODE, MQ_ENOTFOUND),
    ZK_ERR(ZNOAUTH, MQ_EZK),
    ZK_ERR(ZBADVERSION, MQ_EBADVERSION),
    ZK_ERR(ZNOCHILDRENFOREPHEMERALS, MQ_EZK),
    ZK_ERR(ZNODEEXISTS, MQ_EEXIST),
    ZK_ERR(ZNOTEMPTY, MQ_ENOTEMPTY),
    ZK_ERR(ZSESSIONEXPIRED, MQ_ESESSION),
    ZK_ERR(ZINVALIDCALLBACK, MQ_EZK),
    ZK_ERR(ZINVALIDACL, MQ_EZK),
    ZK_ERR(ZAUTHFAILED, MQ_EZK),
    /* Only seen when we close a handle ourselves: zk_client_free. Calls of
     * an expired session aborted by the close are reported MQ_ESESSION by
     * zk_ops.c instead. */
    ZK_ERR(ZCLOSING, MQ_ECLOSED),
    ZK_ERR(ZNOTHING, MQ_EZK),
    ZK_ERR(ZSESSIONMOVED, MQ_EZK),
    ZK_ERR(ZNOTREADONLY, MQ_EZK),
    ZK_ERR(ZEPHEMERALONLOCALSESSION, MQ_EZK),
    ZK_ERR(ZNOWATCHER, MQ_EZK),
    ZK_ERR(ZRECONFIGDISABLED, MQ_EZK),
    ZK_ERR(ZSESSIONCLOSEDREQUIRESASLAUTH, MQ_EZK),
    ZK_ERR(ZTHROTTLEDOP, MQ_EZK),
};

const zk_err_entry_t *zk_err_table(size_t *count)
{
    *count = MQ_ARRAY_LEN(zk_client_errs);
    return zk_client_errs;
}

mq_err_t zk_err_from_zoo(int zrc)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(zk_client_errs); i++) {
        if (zk_client_errs[i].zrc == zrc) {
            return zk_client_errs[i].err;
        }
    }
    return MQ_EZK;
}

/* --- ZooKeeper's threads and log ----------------------------------------- */

static _Thread_local bool zk_client_thread_seen;

/* Names a ZooKeeper thread in our log lines, the first time it calls us. */
static void zk_client_thread_adopt(void)
{
    if (zk_client_thread_seen) {
        return;
    }
    zk_client_thread_seen = true;
    char name[16] = "";
    if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
        strcmp(name, ZK_CLIENT_THREAD_NAME) == 0) {
        mq_log_thread_name(ZK_CLIENT_THREAD_NAME);
    }
}

static pthread_mutex_t zk_client_log_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t zk_client_log_window; /* second of the current window */
static int zk_client_log_warned;      /* WARN lines in it */
static int zk_client_log_muted;       /* lines turned into DEBUG in it */

/* Whether one more WARN line fits in this second; reports the lines muted
 * in the previous one. Process-wide, as ZooKeeper's own logging is. */
static bool zk_client_log_admit(void)
{
    uint64_t sec = mq_now_ms() / 1000;
    int muted = 0;
    pthread_mutex_lock(&zk_client_log_mu);
    if (sec != zk_client_log_window) {
        muted = zk_client_log_muted;
        zk_client_log_window = sec;
        zk_client_log_warned = 0;
        zk_client_log_muted = 0;
    }
    bool ok = zk_client_log_warned < ZK_CLIENT_LOG_WARN_PER_SEC;
    if (ok) {
        zk_client_log_warned++;
    } else {
        zk_client_log_muted++;
    }
    pthread_mutex_unlock(&zk_client_log_mu);
    if (muted > 0) {
        MQ_LOG_WARN("zookeeper: %d more lines like these were logged at DEBUG", muted);
    }
    return ok;
}

/*
 * ZooKeeper formats "<time>:<pid>(<tid>):ZOO_<LEVEL>@<func>@<line>: <text>".
 * Its ERROR lines are connection trouble that the code deciding what happens
 * next handles (and logs if it is an error), so they become WARN; its INFO
 * chatter becomes DEBUG. Any thread.
 */
static void zk_client_zoo_log(const char *message)
{
    static const struct {
        const char *tag;
        mq_log_level_t lvl;
    } levels[] = {
        {"ZOO_ERROR@", MQ_LOG_LVL_WARN},
        {"ZOO_WARN@", MQ_LOG_LVL_WARN},
        {"ZOO_INFO@", MQ_LOG_LVL_DEBUG},
        {"ZOO_DEBUG@", MQ_LOG_LVL_DEBUG},
    };
    zk_client_thread_adopt();
    mq_log_level_t lvl = MQ_LOG_LVL_WARN;
    const char *text = message;
    const char *p = strstr(message, "ZOO_");
    if (p) {
        for (size_t i = 0; i < MQ_ARRAY_LEN(levels); i++) {
            size_t n = strlen(levels[i].tag);
            if (strncmp(p, levels[i].tag, n) == 0) {
                lvl = levels[i].lvl;
                text = p + n;
                break;
            }
        }
    }
    if (lvl == MQ_LOG_LVL_WARN && mq_log_level >= MQ_LOG_LVL_WARN && !zk_client_log_admit()) {
        lvl = MQ_LOG_LVL_DEBUG;
    }
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    MQ_LOG(lvl, "zookeeper %.*s", (int)len, text);
}

/* The few lines ZooKeeper logs without a handle go to its log stream: make
 * that stream feed the same function. */
static ssize_t zk_client_log_stream_write(void *cookie, const char *buf, size_t size)
{
    MQ_UNUSED(cookie);
    char *line = mq_try_malloc(size + 1);
    if (line) {
        memcpy(line, buf, size);
        line[size] = '\0';
        zk_client_zoo_log(line);
        free(line);
    }
    return (ssize_t)size;
}

static pthread_once_t zk_client_log_once = PTHREAD_ONCE_INIT;

static void zk_client_log_setup(void)
{
    /* ZooKeeper's level is process-wide and read by its threads without a
     * lock, so it is set once, before the first handle exists. */
    zoo_set_debug_level(mq_log_level >= MQ_LOG_LVL_DEBUG ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_WARN);
    cookie_io_functions_t io = {.read = NULL, .write = zk_client_log_stream_write};
    FILE *f = fopencookie(NULL, "w", io);
    if (f) {
        setvbuf(f, NULL, _IOFBF, 4096);
        zoo_set_log_stream(f);
    }
}

/* --- small helpers ------------------------------------------------------ */

static void zk_client_deadline(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + (ms % 1000) * 1000000ull;
    ts->tv_sec += (time_t)(ms / 1000 + ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

static void zk_client_link_init(zk_link_t *head)
{
    head->prev = head;
    head->next = head;
}

static void zk_client_link_add(zk_link_t *head, zk_link_t *l)
{
    l->next = head;
    l->prev = head->prev;
    head->prev->next = l;
    head->prev = l;
}

static void zk_client_link_del(zk_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = NULL;
    l->next = NULL;
}

static void zk_client_ev_push(zk_event_t **head, zk_event_t *ev)
{
    ev->prev = NULL;
    ev->next = *head;
    if (*head) {
        (*head)->prev = ev;
    }
    *head = ev;
}

static void zk_client_ev_unlink(zk_event_t **head, zk_event_t *ev)
{
    if (ev->prev) {
        ev->prev->next = ev->next;
    } else {
        *head = ev->next;
    }
    if (ev->next) {
        ev->next->prev = ev->prev;
    }
    ev->prev = NULL;
    ev->next = NULL;
}

static void zk_client_ev_free(zk_event_t *ev)
{
    free(ev->path);
    free(ev);
}

/* --- the event thread --------------------------------------------------- */

static void zk_client_ev_run(void *p)
{
    zk_event_t *ev = p;
    zk_client_t *zk = ev->zk;
    pthread_mutex_lock(&zk->mu);
    zk_client_ev_unlink(&zk->events, ev);
    bool run = !ev->cancelled && (ev->always || !zk->closing);
    pthread_mutex_unlock(&zk->mu);
    if (run) {
        switch (ev->kind) {
        case ZK_EV_SESSION:
            ev->session_cb(zk, ev->session_event, ev->arg);
            break;
        case ZK_EV_WATCH:
            ev->watch_cb(zk, ev->watch_event, ev->path, ev->arg);
            break;
        case ZK_EV_TASK:
            ev->task(zk, ev->arg);
            break;
        }
    }
    zk_client_ev_free(ev);
}

/* Queues ev on the event thread. @locks mu */
static void zk_client_ev_submit_locked(zk_client_t *zk, zk_event_t *ev, uint64_t delay_ms)
{
    zk_client_ev_push(&zk->events, ev);
    if (delay_ms > 0) {
        mq_executor_schedule(zk->ex, 0, delay_ms, zk_client_ev_run, ev);
    } else {
        mq_executor_submit(zk->ex, 0, zk_client_ev_run, ev);
    }
}

static zk_event_t *zk_client_ev_new(zk_client_t *zk, zk_ev_kind_t kind, void *arg, bool cancellable,
                                    bool always)
{
    zk_event_t *ev = mq_calloc(1, sizeof(*ev));
    ev->zk = zk;
    ev->kind = kind;
    ev->arg = arg;
    ev->cancellable = cancellable;
    ev->always = always;
    return ev;
}

void zk_client_post_task_locked(zk_client_t *zk, zk_task_fn fn, void *arg, uint64_t delay_ms,
                                bool cancellable, bool always)
{
    zk_event_t *ev = zk_client_ev_new(zk, ZK_EV_TASK, arg, cancellable, always);
    ev->task = fn;
    zk_client_ev_submit_locked(zk, ev, delay_ms);
}

void zk_client_post_task(zk_client_t *zk, zk_task_fn fn, void *arg, uint64_t delay_ms,
                         bool cancellable, bool always)
{
    pthread_mutex_lock(&zk->mu);
    zk_client_post_task_locked(zk, fn, arg, delay_ms, cancellable, always);
    pthread_mutex_unlock(&zk->mu);
}

bool zk_client_on_event_thread(zk_client_t *zk)
{
    return mq_executor_on_thread(zk->ex, 0);
}

typedef struct zk_client_barrier {
    bool done;
} zk_client_barrier_t;

static void zk_client_barrier_run(zk_client_t *zk, void *arg)
{
    zk_client_barrier_t *b = arg;
    pthread_mutex_lock(&zk->mu);
    b->done = true;
    pthread_cond_broadcast(&zk->cond);
    pthread_mutex_unlock(&zk->mu);
}

/* Waits until everything posted so far has run. Not on the event thread. */
static void zk_client_barrier(zk_client_t *zk)
{
    zk_client_barrier_t b = {false};
    pthread_mutex_lock(&zk->mu);
    zk_client_post_task_locked(zk, zk_client_barrier_run, &b, 0, false, true);
    while (!b.done) {
        pthread_cond_wait(&zk->cond, &zk->mu);
    }
    pthread_mutex_unlock(&zk->mu);
}

void zk_client_forget(zk_client_t *zk, const void *arg, bool barrier)
{
    MQ_ASSERT(arg != NULL);
    pthread_mutex_lock(&zk->mu);
    for (zk_event_t *ev = zk->events; ev; ev = ev->next) {
        if (ev->cancellable && ev->arg == arg) {
            ev->cancelled = true;
        }
    }
    for (zk_event_t *ev = zk->lost; ev; ev = ev->next) {
        if (ev->arg == arg) {
            ev->cancelled = true;
        }
    }
    for (zk_watch_t *w = zk->watches; w; w = w->next) {
        if (w->arg == arg) {
            w->cb = NULL;
        }
        if (w->waiter == arg) {
            w->waiter = NULL;
        }
    }
    zk_listener_t **lp = &zk->listeners;
    while (*lp) {
        if ((*lp)->arg == arg) {
            zk_listener_t *l = *lp;
            *lp = l->next;
            free(l);
        } else {
            lp = &(*lp)->next;
        }
    }
    pthread_mutex_unlock(&zk->mu);
    if (barrier && !zk_client_on_event_thread(zk)) {
        zk_client_barrier(zk);
    }
}

/* --- session listeners -------------------------------------------------- */

void zk_client_on_session(zk_client_t *zk, zk_session_cb cb, void *arg)
{
    MQ_ASSERT(zk && cb);
    zk_listener_t *l = mq_calloc(1, sizeof(*l));
    l->cb = cb;
    l->arg = arg;
    pthread_mutex_lock(&zk->mu);
    zk_listener_t **lp = &zk->listeners;
    while (*lp) {
        lp = &(*lp)->next;
    }
    *lp = l;
    pthread_mutex_unlock(&zk->mu);
}

/* Posts event to every listener, in the order they were added. @locks mu */
static void zk_client_notify_locked(zk_client_t *zk, zk_session_event_t event)
{
    for (zk_listener_t *l = zk->listeners; l; l = l->next) {
        zk_event_t *ev = zk_client_ev_new(zk, ZK_EV_SESSION, l->arg, true, false);
        ev->session_cb = l->cb;
        ev->session_event = event;
        zk_client_ev_submit_locked(zk, ev, 0);
    }
}

/* Posts the ZK_WATCH_LOST events held back until the new session, oldest
 * first. @locks mu */
static void zk_client_flush_lost_locked(zk_client_t *zk)
{
    zk_event_t *rev = NULL;
    zk_event_t *ev = zk->lost;
    zk->lost = NULL;
    while (ev) {
        zk_event_t *next = ev->next;
        ev->next = rev;
        rev = ev;
        ev = next;
    }
    while (rev) {
        zk_event_t *next = rev->next;
        if (rev->cancelled) {
            zk_client_ev_free(rev);
        } else {
            zk_client_ev_submit_locked(zk, rev, 0);
        }
        rev = next;
    }
}

/* --- watches ------------------------------------------------------------ */

static void zk_client_watch_free_locked(zk_client_t *zk, zk_watch_t *w)
{
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        zk->watches = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    free(w->path);
    free(w);
}

zk_watch_t *zk_client_watch_add(zk_client_t *zk, zk_sess_t *sess, const char *path, zk_watch_cb cb,
                                void *arg, zk_waiter_t *waiter)
{
    zk_watch_t *w = mq_calloc(1, sizeof(*w));
    w->zk = zk;
    w->sess = sess;
    w->cb = cb;
    w->arg = arg;
    w->waiter = waiter;
    w->path = mq_strdup(path);
    pthread_mutex_lock(&zk->mu);
    w->next = zk->watches;
    if (zk->watches) {
        zk->watches->prev = w;
    }
    zk->watches = w;
    pthread_mutex_unlock(&zk->mu);
    return w;
}

void zk_client_watch_settle_locked(zk_client_t *zk, zk_watch_t *w, bool activated)
{
    if (activated) {
        w->active = true;
    } else {
        zk_client_watch_free_locked(zk, w);
    }
}

void zk_client_zoo_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    MQ_UNUSED(zh);
    MQ_UNUSED(state);
    MQ_UNUSED(path);
    if (type == ZOO_SESSION_EVENT) {
        return;
    }
    zk_client_thread_adopt();
    zk_watch_t *w = ctx;
    zk_client_t *zk = w->zk;
    zk_watch_event_t event;
    if (type == ZOO_CREATED_EVENT) {
        event = ZK_WATCH_CREATED;
    } else if (type == ZOO_DELETED_EVENT) {
        event = ZK_WATCH_DELETED;
    } else if (type == ZOO_CHANGED_EVENT) {
        event = ZK_WATCH_CHANGED;
    } else if (type == ZOO_CHILD_EVENT) {
        event = ZK_WATCH_CHILD;
    } else {
        /* ZOO_NOTWATCHING_EVENT (a removed watch) or anything newer: the
         * watch will not fire, which is what LOST tells its owner. */
        event = ZK_WATCH_LOST;
    }
    pthread_mutex_lock(&zk->mu);
    if (w->cb && !zk->closing) {
        zk_event_t *ev = zk_client_ev_new(zk, ZK_EV_WATCH, w->arg, true, false);
        ev->watch_cb = w->cb;
        ev->watch_event = event;
        ev->path = mq_strdup(w->path);
        zk_client_ev_submit_locked(zk, ev, 0);
    }
    if (w->waiter) {
        w->waiter->fired = true;
        pthread_cond_broadcast(&zk->cond);
    }
    /* ZooKeeper removed the watch before calling us: this was its only call. */
    zk_client_watch_free_locked(zk, w);
    pthread_mutex_unlock(&zk->mu);
}

/* --- sessions ----------------------------------------------------------- */

static void zk_client_recover(zk_client_t *zk, void *arg);
static void zk_client_recover_up(zk_client_t *zk, void *arg);

/* The watcher of every handle of ours (ctx is its zk_sess_t). Runs on the
 * handle's completion thread. */
static void zk_client_zoo_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    MQ_UNUSED(path);
    if (type != ZOO_SESSION_EVENT) {
        return;
    }
    zk_client_thread_adopt();
    zk_sess_t *s = ctx;
    zk_client_t *zk = s->zk;
    pthread_mutex_lock(&zk->mu);
    if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) {
        const clientid_t *cid = zoo_client_id(zh);
        bool again = s->ever_connected;
        s->id = cid->client_id;
        memcpy(s->passwd, cid->passwd, sizeof(s->passwd));
        s->timeout_ms = zoo_recv_timeout(zh);
        s->connected = true;
        s->ever_connected = true;
        if (s == zk->sess) {
            zk->timeout_ms = s->timeout_ms;
            if (again && !zk->closing) {
                MQ_LOG_INFO("zk reconnected session=0x%llx", (unsigned long long)s->id);
                zk_client_notify_locked(zk, ZK_SESSION_CONNECTED);
            }
        } else if (s == zk->pending) {
            /* Every time: a step posted earlier finds it disconnected again
             * and leaves it to the next CONNECTED. */
            zk_client_post_task_locked(zk, zk_client_recover_up, NULL, 0, false, false);
        }
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        if (!s->expired) {
            s->expired = true;
            s->connected = false;
            if (s == zk->sess) {
                MQ_LOG_INFO("zk session expired session=0x%llx%s", (unsigned long long)s->id,
                            state == ZOO_AUTH_FAILED_STATE ? " (authentication failed)" : "");
                zk->sess = NULL;
                s->next = zk->dead;
                zk->dead = s;
                if (!zk->closing) {
                    zk_client_notify_locked(zk, ZK_SESSION_EXPIRED);
                    zk_client_post_task_locked(zk, zk_client_recover, NULL, 0, false, false);
                }
            } else if (s == zk->pending) {
                /* A fresh session refused (authentication): not in a loop. */
                zk_client_post_task_locked(zk, zk_client_recover, NULL, ZK_CLIENT_REOPEN_MS, false,
                                           false);
            }
        }
    } else if (s->connected) {
        /* Connecting or associating again: ZooKeeper is reconnecting on its
         * own, within the same session if the server still has it. */
        s->connected = false;
        if (s == zk->sess && !zk->closing) {
            MQ_LOG_INFO("zk disconnected session=0x%llx", (unsigned long long)s->id);
            zk_client_notify_locked(zk, ZK_SESSION_DISCONNECTED);
        }
    }
    pthread_cond_broadcast(&zk->cond);
    pthread_mutex_unlock(&zk->mu);
}

/* zookeeper_init2 with our log, under the thread name ZooKeeper's threads
 * inherit. errno is zookeeper_init2's. */
static zhandle_t *zk_client_zoo_init(zk_client_t *zk, watcher_fn fn, const clientid_t *cid,
                                     void *ctx)
{
    char saved[16] = "";
    bool named = pthread_getname_np(pthread_self(), saved, sizeof(saved)) == 0;
    if (named) {
        pthread_setname_np(pthread_self(), ZK_CLIENT_THREAD_NAME);
    }
    errno = 0;
    zhandle_t *zh = zookeeper_init2(zk->servers, fn, zk->session_timeout_ms, cid, ctx,
                                    ZOO_NO_LOG_CLIENTENV, zk_client_zoo_log);
    int e = errno;
    if (named) {
        pthread_setname_np(pthread_self(), saved);
    }
    errno = e;
    return zh;
}

/* Creates a handle (it connects in the background). NULL on failure. */
static zk_sess_t *zk_client_sess_open(zk_client_t *zk, mq_err_t *err)
{
    zk_sess_t *s = mq_calloc(1, sizeof(*s));
    s->zk = zk;
    zk_client_link_init(&s->calls);
    zhandle_t *zh = zk_client_zoo_init(zk, zk_client_zoo_session, NULL, s);
    if (!zh) {
        int e = errno;
        *err = e == EINVAL ? MQ_EINVAL : MQ_ECONN;
        MQ_LOG_WARN("zk cannot create a handle servers=%s errno=%d (%s)", zk->servers, e,
                    strerror(e));
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&zk->mu);
    s->zh = zh;
    pthread_mutex_unlock(&zk->mu);
    *err = MQ_OK;
    return s;
}

/*
 * Closes s's handle and frees s. s is no longer reachable from zk (not
 * current, pending or dead). Waits for threads inside zoo_a* calls to leave,
 * and (bounded) for outstanding calls to complete, then completes the rest.
 * With lost, the watches s held are queued as ZK_WATCH_LOST for the next
 * session. @locality any thread but ZooKeeper's; mu not held.
 */
static void zk_client_sess_close(zk_client_t *zk, zk_sess_t *s, bool lost)
{
    struct timespec deadline;
    pthread_mutex_lock(&zk->mu);
    uint64_t wait_ms = s->expired ? ZK_CLIENT_DEAD_CALLS_MS
                                  : (uint64_t)MQ_MAX(s->timeout_ms, zk->session_timeout_ms);
    zk_client_deadline(&deadline, wait_ms);
    s->closing = true;
    bool timed_out = false;
    while (s->users > 0 || (s->ncalls > 0 && !timed_out)) {
        if (timed_out) {
            pthread_cond_wait(&zk->cond, &zk->mu);
        } else if (pthread_cond_timedwait(&zk->cond, &zk->mu, &deadline) == ETIMEDOUT) {
            timed_out = true;
        }
    }
    zhandle_t *zh = s->zh;
    pthread_mutex_unlock(&zk->mu);

    if (zh) {
        int rc = zookeeper_close(zh);
        if (rc != ZOK) {
            MQ_LOG_DEBUG("zk close session=0x%llx rc=%d (%s)", (unsigned long long)s->id, rc,
                         zerror(rc));
        }
    }

    pthread_mutex_lock(&zk->mu);
    if (s->ncalls > 0) {
        MQ_LOG_DEBUG("zk aborting calls=%d of closed session=0x%llx", s->ncalls,
                     (unsigned long long)s->id);
    }
    while (s->calls.next != &s->calls) {
        zk_ops_abort_locked(zk, s->calls.next);
    }
    zk_watch_t *w = zk->watches;
    while (w) {
        zk_watch_t *next = w->next;
        if (w->sess == s) {
            if (lost && w->active && w->cb) {
                zk_event_t *ev = zk_client_ev_new(zk, ZK_EV_WATCH, w->arg, true, false);
                ev->watch_cb = w->cb;
                ev->watch_event = ZK_WATCH_LOST;
                ev->path = mq_strdup(w->path);
                zk_client_ev_push(&zk->lost, ev);
            }
            if (w->waiter) {
                w->waiter->fired = true;
                pthread_cond_broadcast(&zk->cond);
            }
            zk_client_watch_free_locked(zk, w);
        }
        w = next;
    }
    pthread_mutex_unlock(&zk->mu);
    free(s);
}

mq_err_t zk_client_sess_acquire(zk_client_t *zk, zk_link_t *call, zk_sess_t **sess,
                                struct _zhandle **zh)
{
    mq_err_t err = MQ_OK;
    pthread_mutex_lock(&zk->mu);
    zk_sess_t *s = zk->sess;
    if (zk->closing) {
        err = MQ_ECLOSED;
    } else if (!s || s->closing || s->expired) {
        err = MQ_ESESSION;
    } else {
        s->users++;
        zk_client_link_add(&s->calls, call);
        s->ncalls++;
        *sess = s;
        *zh = s->zh;
    }
    pthread_mutex_unlock(&zk->mu);
    return err;
}

void zk_client_sess_release(zk_client_t *zk, zk_sess_t *sess, zk_link_t *failed_call)
{
    pthread_mutex_lock(&zk->mu);
    if (failed_call) {
        zk_client_link_del(failed_call);
        sess->ncalls--;
    }
    sess->users--;
    if (sess->closing) {
        pthread_cond_broadcast(&zk->cond);
    }
    pthread_mutex_unlock(&zk->mu);
}

void zk_client_call_done_locked(zk_client_t *zk, zk_sess_t *sess, zk_link_t *call)
{
    zk_client_link_del(call);
    sess->ncalls--;
    if (sess->closing) {
        pthread_cond_broadcast(&zk->cond);
    }
}

/* --- recovery after an expiry (event thread) ----------------------------- */

/* Closes dead sessions (their watches become LOST) and a failed pending
 * one, then opens a new handle unless one is on its way. */
static void zk_client_recover(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(arg);
    for (;;) {
        pthread_mutex_lock(&zk->mu);
        zk_sess_t *d = zk->dead;
        if (d) {
            zk->dead = d->next;
        }
        pthread_mutex_unlock(&zk->mu);
        if (!d) {
            break;
        }
        zk_client_sess_close(zk, d, true);
    }

    pthread_mutex_lock(&zk->mu);
    zk_sess_t *p = zk->pending;
    if (p && p->expired) {
        zk->pending = NULL;
    } else {
        p = NULL;
    }
    bool need = !zk->closing && !zk->sess && !zk->pending;
    pthread_mutex_unlock(&zk->mu);
    if (p) {
        zk_client_sess_close(zk, p, false);
    }
    if (!need) {
        return;
    }

    mq_err_t err;
    zk_sess_t *s = zk_client_sess_open(zk, &err);
    if (!s) {
        zk_client_post_task(zk, zk_client_recover, NULL, ZK_CLIENT_REOPEN_MS, false, false);
        return;
    }
    pthread_mutex_lock(&zk->mu);
    if (zk->closing) {
        pthread_mutex_unlock(&zk->mu);
        zk_client_sess_close(zk, s, false);
        return;
    }
    zk->pending = s;
    /* Its watcher may have run before it became pending. */
    if (s->expired) {
        zk_client_post_task_locked(zk, zk_client_recover, NULL, 0, false, false);
    } else if (s->connected) {
        zk_client_post_task_locked(zk, zk_client_recover_up, NULL, 0, false, false);
    }
    pthread_mutex_unlock(&zk->mu);
}

/* The pending handle connected: make it current, re-create the ephemerals,
 * then tell the listeners and the owners of lost watches. */
static void zk_client_recover_up(zk_client_t *zk, void *arg)
{
    MQ_UNUSED(arg);
    pthread_mutex_lock(&zk->mu);
    zk_sess_t *s = zk->pending;
    if (zk->closing || zk->sess || !s || !s->connected || s->expired) {
        pthread_mutex_unlock(&zk->mu);
        return;
    }
    zk->pending = NULL;
    zk->sess = s;
    zk->gen++;
    int64_t old = zk->session_id;
    zk->session_id = s->id;
    zk->timeout_ms = s->timeout_ms;
    pthread_mutex_unlock(&zk->mu);
    MQ_LOG_INFO("zk new session session=0x%llx old=0x%llx timeout_ms=%d", (unsigned long long)s->id,
                (unsigned long long)old, s->timeout_ms);

    zk_eph_resync(zk);

    pthread_mutex_lock(&zk->mu);
    /* If s expired meanwhile its EXPIRED is already queued; NEW comes with
     * the session after it (and the lost watches with that one). */
    if (zk->sess == s && !zk->closing) {
        zk_client_notify_locked(zk, ZK_SESSION_NEW);
        zk_client_flush_lost_locked(zk);
    }
    pthread_mutex_unlock(&zk->mu);
}

/* --- life cycle --------------------------------------------------------- */

static bool zk_client_chroot_valid(const char *c)
{
    size_t n = strlen(c);
    if (n < 2 || c[0] != '/' || c[n - 1] == '/') {
        return false;
    }
    return strstr(c, "//") == NULL;
}

/* Frees what zk_client_new allocated; no handle, no event left. */
static void zk_client_destroy(zk_client_t *zk)
{
    while (zk->events) {
        zk_event_t *ev = zk->events;
        zk_client_ev_unlink(&zk->events, ev);
        zk_client_ev_free(ev);
    }
    while (zk->lost) {
        zk_event_t *ev = zk->lost;
        zk_client_ev_unlink(&zk->lost, ev);
        zk_client_ev_free(ev);
    }
    while (zk->watches) {
        zk_client_watch_free_locked(zk, zk->watches);
    }
    while (zk->listeners) {
        zk_listener_t *l = zk->listeners;
        zk->listeners = l->next;
        free(l);
    }
    while (zk->claims) {
        zk_claim_t *c = zk->claims;
        zk->claims = c->next;
        free(c->path);
        free(c);
    }
    zk_eph_free_all(zk);
    pthread_mutex_destroy(&zk->eph_mu);
    pthread_cond_destroy(&zk->cond);
    pthread_mutex_destroy(&zk->mu);
    free(zk->servers);
    free(zk->chroot);
    free(zk);
}

mq_err_t zk_client_new(const char *servers, const zk_client_opts_t *opts, zk_client_t **out)
{
    if (!servers || !*servers || !out) {
        return MQ_EINVAL;
    }
    zk_client_opts_t o = {ZK_CLIENT_DEFAULT_SESSION_MS, ZK_CLIENT_DEFAULT_CONNECT_MS, NULL};
    if (opts) {
        if (opts->session_timeout_ms < 0 || opts->connect_timeout_ms < 0) {
            return MQ_EINVAL;
        }
        if (opts->session_timeout_ms > 0) {
            o.session_timeout_ms = opts->session_timeout_ms;
        }
        if (opts->connect_timeout_ms > 0) {
            o.connect_timeout_ms = opts->connect_timeout_ms;
        }
        o.chroot = opts->chroot;
    }
    if (o.chroot && (!*o.chroot || strcmp(o.chroot, "/") == 0)) {
        o.chroot = NULL;
    }
    if (o.chroot && !zk_client_chroot_valid(o.chroot)) {
        return MQ_EINVAL;
    }
    /* We apply the chroot ourselves; ZooKeeper's own ("host:port/path")
     * would be applied on top of it. */
    if (strchr(servers, '/')) {
        return MQ_EINVAL;
    }
    pthread_once(&zk_client_log_once, zk_client_log_setup);

    zk_client_t *zk = mq_calloc(1, sizeof(*zk));
    zk->servers = mq_strdup(servers);
    if (o.chroot) {
        zk->chroot = mq_strdup(o.chroot);
        zk->chroot_len = strlen(o.chroot);
    }
    zk->session_timeout_ms = o.session_timeout_ms;
    zk->connect_timeout_ms = o.connect_timeout_ms;
    zk->timeout_ms = o.session_timeout_ms;
    pthread_mutex_init(&zk->mu, NULL);
    pthread_mutex_init(&zk->eph_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&zk->cond, &attr);
    pthread_condattr_destroy(&attr);
    zk->ex = mq_executor_new("zk-ev", 1);

    mq_err_t err;
    zk_sess_t *s = zk_client_sess_open(zk, &err);
    if (!s) {
        mq_executor_free(zk->ex);
        zk_client_destroy(zk);
        return err;
    }
    struct timespec deadline;
    zk_client_deadline(&deadline, (uint64_t)o.connect_timeout_ms);
    pthread_mutex_lock(&zk->mu);
    while (!s->connected && !s->expired) {
        if (pthread_cond_timedwait(&zk->cond, &zk->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    bool connected = s->connected;
    bool expired = s->expired;
    if (connected) {
        zk->sess = s;
        zk->gen = 1;
        zk->session_id = s->id;
        zk->timeout_ms = s->timeout_ms;
    }
    pthread_mutex_unlock(&zk->mu);
    if (!connected) {
        MQ_LOG_INFO("zk connect failed servers=%s timeout_ms=%d%s", servers, o.connect_timeout_ms,
                    expired ? " (session refused)" : "");
        zk_client_sess_close(zk, s, false);
        mq_executor_free(zk->ex);
        zk_client_destroy(zk);
        return expired ? MQ_ESESSION : MQ_ETIMEDOUT;
    }
    MQ_LOG_INFO("zk connected servers=%s session=0x%llx timeout_ms=%d", servers,
                (unsigned long long)zk->session_id, zk->timeout_ms);
    *out = zk;
    return MQ_OK;
}

void zk_client_free(zk_client_t *zk)
{
    if (!zk) {
        return;
    }
    MQ_ASSERT(!zk_client_on_event_thread(zk));
    pthread_mutex_lock(&zk->mu);
    zk->closing = true;
    pthread_cond_broadcast(&zk->cond);
    pthread_mutex_unlock(&zk->mu);
    /* Let whatever runs on the event thread now (a recovery step, a user
     * callback) finish; what runs later sees closing. */
    zk_client_barrier(zk);
    for (;;) {
        pthread_mutex_lock(&zk->mu);
        zk_sess_t *s = NULL;
        if (zk->sess) {
            s = zk->sess;
            zk->sess = NULL;
        } else if (zk->pending) {
            s = zk->pending;
            zk->pending = NULL;
        } else if (zk->dead) {
            s = zk->dead;
            zk->dead = s->next;
        }
        pthread_mutex_unlock(&zk->mu);
        if (!s) {
            break;
        }
        zk_client_sess_close(zk, s, false);
    }
    /* Runs what was posted (async completions are delivered), drops timers. */
    mq_executor_free(zk->ex);
    MQ_LOG_INFO("zk closed servers=%s session=0x%llx", zk->servers,
                (unsigned long long)zk->session_id);
    zk_client_destroy(zk);
}

int64_t zk_client_session_id(zk_client_t *zk)
{
    pthread_mutex_lock(&zk->mu);
    int64_t id = zk->session_id;
    pthread_mutex_unlock(&zk->mu);
    return id;
}

bool zk_client_connected(zk_client_t *zk)
{
    pthread_mutex_lock(&zk->mu);
    bool c = zk->sess && zk->sess->connected;
    pthread_mutex_unlock(&zk->mu);
    return c;
}

int zk_client_session_timeout(zk_client_t *zk)
{
    pthread_mutex_lock(&zk->mu);
    int t = zk->timeout_ms;
    pthread_mutex_unlock(&zk->mu);
    return t;
}

/* --- paths and claims --------------------------------------------------- */

mq_err_t zk_client_path(zk_client_t *zk, const char *path, char **full)
{
    if (!path || path[0] != '/') {
        return MQ_EINVAL;
    }
    if (!zk->chroot) {
        *full = mq_strdup(path);
    } else if (path[1] == '\0') {
        *full = mq_strdup(zk->chroot);
    } else {
        size_t n = strlen(path);
        char *f = mq_malloc(zk->chroot_len + n + 1);
        memcpy(f, zk->chroot, zk->chroot_len);
        memcpy(f + zk->chroot_len, path, n + 1);
        *full = f;
    }
    return MQ_OK;
}

const char *zk_client_unroot(zk_client_t *zk, const char *full)
{
    if (zk->chroot && strncmp(full, zk->chroot, zk->chroot_len) == 0) {
        if (full[zk->chroot_len] == '\0') {
            return "/";
        }
        if (full[zk->chroot_len] == '/') {
            return full + zk->chroot_len;
        }
    }
    return full;
}

void zk_client_claim(zk_client_t *zk, const char *path, bool claim)
{
    pthread_mutex_lock(&zk->mu);
    if (claim) {
        zk_claim_t *c = mq_calloc(1, sizeof(*c));
        c->path = mq_strdup(path);
        c->next = zk->claims;
        zk->claims = c;
    } else {
        for (zk_claim_t **cp = &zk->claims; *cp; cp = &(*cp)->next) {
            if (strcmp((*cp)->path, path) == 0) {
                zk_claim_t *c = *cp;
                *cp = c->next;
                free(c->path);
                free(c);
                break;
            }
        }
    }
    pthread_mutex_unlock(&zk->mu);
}

bool zk_client_claimed(zk_client_t *zk, const char *path)
{
    bool found = false;
    pthread_mutex_lock(&zk->mu);
    for (zk_claim_t *c = zk->claims; c && !found; c = c->next) {
        found = strcmp(c->path, path) == 0;
    }
    pthread_mutex_unlock(&zk->mu);
    return found;
}

/* --- test support ------------------------------------------------------- */

typedef struct zk_client_expire {
    zk_client_t *zk;
    bool connected;
    bool expired;
} zk_client_expire_t;

static void zk_client_expire_watcher(zhandle_t *zh, int type, int state, const char *path,
                                     void *ctx)
{
    MQ_UNUSED(zh);
    MQ_UNUSED(path);
    zk_client_expire_t *x = ctx;
    if (type != ZOO_SESSION_EVENT) {
        return;
    }
    pthread_mutex_lock(&x->zk->mu);
    if (state == ZOO_CONNECTED_STATE) {
        x->connected = true;
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
        x->expired = true;
    }
    pthread_cond_broadcast(&x->zk->cond);
    pthread_mutex_unlock(&x->zk->mu);
}

/* Opens a second handle on our session and closes it, which closes the
 * session on the server. MQ_OK once the second handle was connected. */
static mq_err_t zk_client_expire_once(zk_client_t *zk, const clientid_t *cid)
{
    zk_client_expire_t x = {zk, false, false};
    zhandle_t *zh = zk_client_zoo_init(zk, zk_client_expire_watcher, cid, &x);
    if (!zh) {
        return MQ_ECONN;
    }
    struct timespec deadline;
    zk_client_deadline(&deadline, (uint64_t)zk->connect_timeout_ms);
    pthread_mutex_lock(&zk->mu);
    while (!x.connected && !x.expired) {
        if (pthread_cond_timedwait(&zk->cond, &zk->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    bool connected = x.connected;
    bool expired = x.expired;
    pthread_mutex_unlock(&zk->mu);
    zookeeper_close(zh);
    return connected ? MQ_OK : expired ? MQ_ESESSION : MQ_ETIMEDOUT;
}

mq_err_t zk_client_test_expire(zk_client_t *zk)
{
    if (!zk) {
        return MQ_EINVAL;
    }
    mq_err_t err = MQ_ESESSION;
    for (int attempt = 0; attempt < ZK_CLIENT_EXPIRE_TRIES; attempt++) {
        pthread_mutex_lock(&zk->mu);
        if (zk->closing) {
            pthread_mutex_unlock(&zk->mu);
            return MQ_ECLOSED;
        }
        zk_sess_t *s = zk->sess;
        if (!s || !s->connected) {
            pthread_mutex_unlock(&zk->mu);
            return err == MQ_OK ? MQ_OK : MQ_ESESSION;
        }
        clientid_t cid;
        cid.client_id = s->id;
        memcpy(cid.passwd, s->passwd, sizeof(cid.passwd));
        uint64_t gen = zk->gen;
        int timeout = s->timeout_ms;
        pthread_mutex_unlock(&zk->mu);

        err = zk_client_expire_once(zk, &cid);
        if (err == MQ_ESESSION) {
            /* The server no longer has it: it is expiring already. */
            return MQ_OK;
        }
        if (err != MQ_OK) {
            return err;
        }
        /* If our handle won the session back before the second one closed
         * it (the server hands a session to its newest connection), the
         * session lives on: a round trip on it tells, then we try again.
         * Otherwise our handle learns of the expiry when it reconnects. */
        mq_err_t probe = zk_exists(zk, "/", NULL);
        pthread_mutex_lock(&zk->mu);
        bool alive = (probe == MQ_OK || probe == MQ_ENOTFOUND) && zk->sess == s && zk->gen == gen;
        pthread_mutex_unlock(&zk->mu);
        if (alive) {
            MQ_LOG_DEBUG("zk test expiry: session=0x%llx survived, again",
                         (unsigned long long)cid.client_id);
            continue;
        }
        struct timespec deadline;
        zk_client_deadline(&deadline, (uint64_t)timeout * 2);
        pthread_mutex_lock(&zk->mu);
        while (zk->sess == s && zk->gen == gen && !zk->closing) {
            if (pthread_cond_timedwait(&zk->cond, &zk->mu, &deadline) == ETIMEDOUT) {
                break;
            }
        }
        bool done = zk->sess != s || zk->gen != gen;
        pthread_mutex_unlock(&zk->mu);
        if (done) {
            return MQ_OK;
        }
    }
    return MQ_ETIMEDOUT;
}
