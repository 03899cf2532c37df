/*
 * mq_net_loop: one libuv event loop on its own thread, the task queue other
 * threads use to reach it, and the hooks that coalesce output.
 *
 * Posting: mq_net_loop_post appends (cb, arg) to a mutex-protected array and
 * wakes the loop with uv_async_send only when the array was empty (a wake-up
 * is already pending otherwise; uv_async_send coalesces anyway). The async
 * callback swaps the array with a second one under the lock and runs the
 * whole batch without it, so a post costs no allocation once the arrays have
 * grown, and the loop takes the lock once per batch.
 *
 * Hooks: a circular list of armed mq_net_hook_t, run from a uv_check handle
 * (right after the I/O callbacks of an iteration) and from a uv_prepare
 * handle (before the loop blocks, catching work produced by timers and
 * deferred callbacks). Hooks armed while hooks run are run in further rounds
 * of the same pass, up to a bound; what is left then starts a uv_idle handle
 * so that the loop polls without blocking and runs them next iteration
 * (a callback that re-arms forever cannot starve I/O).
 *
 * Shutdown: mq_net_loop_free posts a stop task; the loop thread leaves
 * uv_run after that iteration, runs what was posted meanwhile, closes every
 * handle still open (ours and the owner's), runs the loop until the closes
 * and outstanding requests (getaddrinfo) finish, and closes it.
 *
 * Threads: post, run_sync, on_thread any thread; the rest on the loop thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "mq_log.h"
#include "mq_net.h"
#include "mq_net_int.h"
#include "mq_util.h"

/* Bound on hook rounds per pass; see the file comment. */
#define MQ_NET_LOOP_HOOK_ROUNDS 8

typedef struct mq_net_task {
    mq_task_cb cb;
    void *arg;
} mq_net_task_t;

struct mq_net_loop {
    uv_loop_t uv;
    uv_async_t async;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    pthread_t tid;
    char name[32];

    /* Posted tasks. @locks mu */
    pthread_mutex_t mu;
    mq_net_task_t *tasks;
    size_t ntasks;
    size_t tasks_cap;

    /* The batch being run, and hook lists. @locality loop thread */
    mq_net_task_t *run;
    size_t run_cap;
    mq_net_hook_t hooks;
    mq_net_hook_t running;
    bool idle_active;
    mq_net_hook_t drain_hook; /* runs tasks posted from the loop thread */

    /* Read-buffer pools by size. @locality loop thread */
    struct {
        size_t size;
        mq_buf_pool_t *pool;
    } pools[4];
    size_t npools;
};

static _Thread_local mq_net_loop_t *mq_net_loop_current;

/* --- sync ----------------------------------------------------------------- */

void mq_net_sync_init(mq_net_sync_t *sync)
{
    pthread_mutex_init(&sync->mu, NULL);
    pthread_cond_init(&sync->cv, NULL);
    sync->done = false;
}

void mq_net_sync_fini(mq_net_sync_t *sync)
{
    pthread_cond_destroy(&sync->cv);
    pthread_mutex_destroy(&sync->mu);
}

void mq_net_sync_signal(mq_net_sync_t *sync)
{
    pthread_mutex_lock(&sync->mu);
    sync->done = true;
    pthread_cond_signal(&sync->cv);
    pthread_mutex_unlock(&sync->mu);
}

void mq_net_sync_wait(mq_net_sync_t *sync)
{
    pthread_mutex_lock(&sync->mu);
    while (!sync->done) {
        pthread_cond_wait(&sync->cv, &sync->mu);
    }
    pthread_mutex_unlock(&sync->mu);
}

/* --- hooks ---------------------------------------------------------------- */

static void mq_net_hook_list_init(mq_net_hook_t *head)
{
    head->prev = head;
    head->next = head;
}

static bool mq_net_hook_list_empty(const mq_net_hook_t *head)
{
    return head->next == head;
}

static void mq_net_hook_unlink(mq_net_hook_t *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = NULL;
    h->next = NULL;
}

void mq_net_hook_init(mq_net_hook_t *hook, mq_net_hook_cb cb)
{
    hook->prev = NULL;
    hook->next = NULL;
    hook->cb = cb;
    hook->armed = false;
}

void mq_net_loop_arm(mq_net_loop_t *loop, mq_net_hook_t *hook)
{
    if (hook->armed) {
        return;
    }
    hook->armed = true;
    hook->prev = loop->hooks.prev;
    hook->next = &loop->hooks;
    loop->hooks.prev->next = hook;
    loop->hooks.prev = hook;
}

void mq_net_loop_disarm(mq_net_loop_t *loop, mq_net_hook_t *hook)
{
    MQ_UNUSED(loop);
    if (!hook->armed) {
        return;
    }
    /* The node may sit in hooks or in running: unlinking works in both. */
    mq_net_hook_unlink(hook);
    hook->armed = false;
}

static void mq_net_loop_idle_cb(uv_idle_t *idle)
{
    /* Nothing to do: an active idle handle only keeps the poll from blocking
     * while hooks wait for their next round (run from prepare). */
    MQ_UNUSED(idle);
}

static void mq_net_loop_run_hooks(mq_net_loop_t *loop)
{
    for (int round = 0; round < MQ_NET_LOOP_HOOK_ROUNDS; round++) {
        if (mq_net_hook_list_empty(&loop->hooks)) {
            break;
        }
        /* Move the armed hooks to running; hooks armed by these callbacks
         * land in hooks again, for the next round. */
        mq_net_hook_t *run = &loop->running;
        run->next = loop->hooks.next;
        run->prev = loop->hooks.prev;
        run->next->prev = run;
        run->prev->next = run;
        mq_net_hook_list_init(&loop->hooks);
        while (!mq_net_hook_list_empty(run)) {
            mq_net_hook_t *h = run->next;
            mq_net_hook_unlink(h);
            h->armed = false;
            h->cb(h);
        }
    }
    bool left = !mq_net_hook_list_empty(&loop->hooks);
    if (left != loop->idle_active) {
        loop->idle_active = left;
        if (left) {
            uv_idle_start(&loop->idle, mq_net_loop_idle_cb);
        } else {
            uv_idle_stop(&loop->idle);
        }
    }
}

static void mq_net_loop_prepare_cb(uv_prepare_t *prepare)
{
    mq_net_loop_run_hooks(prepare->data);
}

static void mq_net_loop_check_cb(uv_check_t *check)
{
    mq_net_loop_run_hooks(check->data);
}

/* --- tasks ---------------------------------------------------------------- */

/* Runs everything posted so far; returns false when there was nothing. */
static bool mq_net_loop_drain(mq_net_loop_t *loop)
{
    pthread_mutex_lock(&loop->mu);
    mq_net_task_t *batch = loop->tasks;
    size_t n = loop->ntasks;
    size_t cap = loop->tasks_cap;
    loop->tasks = loop->run;
    loop->tasks_cap = loop->run_cap;
    loop->ntasks = 0;
    pthread_mutex_unlock(&loop->mu);
    loop->run = batch;
    loop->run_cap = cap;
    for (size_t i = 0; i < n; i++) {
        batch[i].cb(batch[i].arg);
    }
    return n > 0;
}

static void mq_net_loop_async_cb(uv_async_t *async)
{
    mq_net_loop_drain(async->data);
}

static void mq_net_loop_drain_hook(mq_net_hook_t *hook)
{
    mq_net_loop_drain(MQ_CONTAINER_OF(hook, mq_net_loop_t, drain_hook));
}

void mq_net_loop_post(mq_net_loop_t *loop, mq_task_cb cb, void *arg)
{
    pthread_mutex_lock(&loop->mu);
    if (loop->ntasks == loop->tasks_cap) {
        loop->tasks_cap = loop->tasks_cap ? loop->tasks_cap * 2 : 64;
        loop->tasks = mq_realloc(loop->tasks, loop->tasks_cap * sizeof(*loop->tasks));
    }
    loop->tasks[loop->ntasks].cb = cb;
    loop->tasks[loop->ntasks].arg = arg;
    bool wake = loop->ntasks++ == 0;
    pthread_mutex_unlock(&loop->mu);
    /* When the array was not empty, a wake-up is pending already: the drain
     * empties the array under the same lock. On the loop thread a hook
     * drains at the end of this iteration: no system call. */
    if (wake) {
        if (mq_net_loop_current == loop) {
            mq_net_loop_arm(loop, &loop->drain_hook);
        } else {
            uv_async_send(&loop->async);
        }
    }
}

typedef struct mq_net_loop_sync_task {
    mq_task_cb cb;
    void *arg;
    mq_net_sync_t sync;
} mq_net_loop_sync_task_t;

static void mq_net_loop_sync_run(void *arg)
{
    mq_net_loop_sync_task_t *t = arg;
    t->cb(t->arg);
    mq_net_sync_signal(&t->sync);
}

void mq_net_loop_run_sync(mq_net_loop_t *loop, mq_task_cb cb, void *arg)
{
    MQ_ASSERT(!mq_net_loop_on_thread(loop));
    mq_net_loop_sync_task_t t = {.cb = cb, .arg = arg};
    mq_net_sync_init(&t.sync);
    mq_net_loop_post(loop, mq_net_loop_sync_run, &t);
    mq_net_sync_wait(&t.sync);
    mq_net_sync_fini(&t.sync);
}

bool mq_net_loop_on_thread(const mq_net_loop_t *loop)
{
    return mq_net_loop_current == loop;
}

uv_loop_t *mq_net_loop_uv(mq_net_loop_t *loop)
{
    return &loop->uv;
}

mq_buf_pool_t *mq_net_loop_pool(mq_net_loop_t *loop, size_t buf_size, size_t max_cached)
{
    for (size_t i = 0; i < loop->npools; i++) {
        if (loop->pools[i].size == buf_size) {
            return loop->pools[i].pool;
        }
    }
    /* Four distinct sizes per loop is plenty; beyond, the oldest size is
     * handed out (its buffers are merely larger or smaller than asked). */
    if (loop->npools == MQ_ARRAY_LEN(loop->pools)) {
        return loop->pools[0].pool;
    }
    loop->pools[loop->npools].size = buf_size;
    loop->pools[loop->npools].pool = mq_buf_pool_new(buf_size, max_cached);
    return loop->pools[loop->npools++].pool;
}

/* --- life cycle ----------------------------------------------------------- */

static void mq_net_loop_close_walk(uv_handle_t *handle, void *arg)
{
    MQ_UNUSED(arg);
    if (!uv_is_closing(handle)) {
        uv_close(handle, NULL);
    }
}

static void *mq_net_loop_main(void *arg)
{
    mq_net_loop_t *loop = arg;
    mq_net_loop_current = loop;
    mq_log_thread_name(loop->name);

    uv_run(&loop->uv, UV_RUN_DEFAULT);

    /* Stopped: run what was posted after the stop task (tasks may post
     * more), and the hooks that work armed, then close everything. */
    while (mq_net_loop_drain(loop)) {
        mq_net_loop_run_hooks(loop);
    }
    mq_net_loop_run_hooks(loop);
    uv_walk(&loop->uv, mq_net_loop_close_walk, NULL);
    for (;;) {
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        int rc = uv_loop_close(&loop->uv);
        if (rc == 0) {
            break;
        }
        /* Requests still outstanding (a getaddrinfo on the thread pool):
         * their completion wakes the loop, which runs until they are done. */
        MQ_LOG_DEBUG("net loop busy at close loop=%s err=%s", loop->name, uv_err_name(rc));
        uv_walk(&loop->uv, mq_net_loop_close_walk, NULL);
    }
    mq_net_loop_current = NULL;
    return NULL;
}

mq_net_loop_t *mq_net_loop_new(const char *name)
{
    mq_net_loop_t *loop = mq_calloc(1, sizeof(*loop));
    snprintf(loop->name, sizeof(loop->name), "%s", name ? name : "net");
    pthread_mutex_init(&loop->mu, NULL);
    mq_net_hook_list_init(&loop->hooks);
    mq_net_hook_list_init(&loop->running);
    mq_net_hook_init(&loop->drain_hook, mq_net_loop_drain_hook);

    int rc = uv_loop_init(&loop->uv);
    if (rc != 0) {
        MQ_LOG_ERROR("net loop init failed loop=%s err=%s", loop->name, uv_strerror(rc));
        MQ_ASSERT(rc == 0);
    }
    /* The handles are set up here, before the thread exists; pthread_create
     * orders these writes before anything the loop thread does. */
    MQ_ASSERT(uv_async_init(&loop->uv, &loop->async, mq_net_loop_async_cb) == 0);
    loop->async.data = loop;
    MQ_ASSERT(uv_prepare_init(&loop->uv, &loop->prepare) == 0);
    loop->prepare.data = loop;
    MQ_ASSERT(uv_prepare_start(&loop->prepare, mq_net_loop_prepare_cb) == 0);
    MQ_ASSERT(uv_check_init(&loop->uv, &loop->check) == 0);
    loop->check.data = loop;
    MQ_ASSERT(uv_check_start(&loop->check, mq_net_loop_check_cb) == 0);
    MQ_ASSERT(uv_idle_init(&loop->uv, &loop->idle) == 0);
    loop->idle.data = loop;
    /* The prepare and check handles must not keep uv_run alive on their own
     * (the async handle does that until the stop). */
    uv_unref((uv_handle_t *)&loop->prepare);
    uv_unref((uv_handle_t *)&loop->check);
    uv_unref((uv_handle_t *)&loop->idle);

    rc = pthread_create(&loop->tid, NULL, mq_net_loop_main, loop);
    if (rc != 0) {
        MQ_LOG_ERROR("net loop thread start failed loop=%s errno=%d", loop->name, rc);
        MQ_ASSERT(rc == 0);
    }
    return loop;
}

static void mq_net_loop_stop_task(void *arg)
{
    mq_net_loop_t *loop = arg;
    uv_stop(&loop->uv);
}

void mq_net_loop_free(mq_net_loop_t *loop)
{
    if (!loop) {
        return;
    }
    MQ_ASSERT(!mq_net_loop_on_thread(loop));
    mq_net_loop_post(loop, mq_net_loop_stop_task, loop);
    pthread_join(loop->tid, NULL);
    for (size_t i = 0; i < loop->npools; i++) {
        mq_buf_pool_release(loop->pools[i].pool);
    }
    pthread_mutex_destroy(&loop->mu);
    free(loop->tasks);
    free(loop->run);
    free(loop);
}

/* --- an executor hosted by the loop --------------------------------------- */

/* The executor's tasks run from a hook (work handed over on the loop
 * thread: no system call) or from a posted task (other threads: one
 * uv_async wake-up, shared with the loop's other posts); its timers from a
 * timerfd, which keeps the executor's microsecond deadlines where libuv's
 * own timers round to milliseconds. */
typedef struct mq_net_exec {
    mq_net_loop_t *loop;
    mq_executor_t *ex;
    mq_net_hook_t hook;
    atomic_bool posted;
    int tfd;
    uv_poll_t poll;
    uint64_t armed_ns; /* deadline the timerfd holds, 0: none */
} mq_net_exec_t;

static void mq_net_exec_run(mq_net_exec_t *ne)
{
    uint64_t next = 0;
    mq_executor_host_run(ne->ex, &next);
    if (next == ne->armed_ns) {
        return;
    }
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (next != 0) {
        its.it_value.tv_sec = (time_t)(next / 1000000000ull);
        its.it_value.tv_nsec = (long)(next % 1000000000ull);
    }
    if (timerfd_settime(ne->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        MQ_LOG_ERROR("timerfd_settime failed loop=%s errno=%d", ne->loop->name, errno);
        abort();
    }
    ne->armed_ns = next;
}

static void mq_net_exec_hook(mq_net_hook_t *hook)
{
    mq_net_exec_run(MQ_CONTAINER_OF(hook, mq_net_exec_t, hook));
}

static void mq_net_exec_posted(void *arg)
{
    mq_net_exec_t *ne = arg;
    atomic_store(&ne->posted, false);
    mq_net_exec_run(ne);
}

static void mq_net_exec_timer(uv_poll_t *poll, int status, int events)
{
    MQ_UNUSED(status);
    MQ_UNUSED(events);
    mq_net_exec_t *ne = poll->data;
    uint64_t expirations;
    /* EAGAIN after a re-arm that moved the deadline: nothing is due. */
    if (read(ne->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
        MQ_LOG_WARN("timerfd read failed loop=%s errno=%d", ne->loop->name, errno);
    }
    ne->armed_ns = 0;
    mq_net_exec_run(ne);
}

static void mq_net_exec_wake(void *ctx)
{
    mq_net_exec_t *ne = ctx;
    if (mq_net_loop_on_thread(ne->loop)) {
        mq_net_loop_arm(ne->loop, &ne->hook);
    } else if (!atomic_exchange(&ne->posted, true)) {
        mq_net_loop_post(ne->loop, mq_net_exec_posted, ne);
    }
}

static bool mq_net_exec_on_thread(const void *ctx)
{
    const mq_net_exec_t *ne = ctx;
    return mq_net_loop_on_thread(ne->loop);
}

static void mq_net_exec_closed(uv_handle_t *handle)
{
    mq_net_exec_t *ne = handle->data;
    close(ne->tfd);
    free(ne);
}

static void mq_net_exec_release_task(void *arg)
{
    mq_net_exec_t *ne = arg;
    uint64_t next;
    /* Everything queued, and what it queues in turn; pending timers are
     * dropped with the executor. */
    while (mq_executor_host_run(ne->ex, &next)) {
    }
    mq_net_loop_disarm(ne->loop, &ne->hook);
    uv_poll_stop(&ne->poll);
    uv_close((uv_handle_t *)&ne->poll, mq_net_exec_closed);
}

static void mq_net_exec_release(void *ctx, mq_executor_t *ex)
{
    mq_net_exec_t *ne = ctx;
    MQ_UNUSED(ex);
    mq_net_loop_run_sync(ne->loop, mq_net_exec_release_task, ne);
    /* A task posted by a wake before the release ran may still be queued
     * on the loop: it must not find ne freed. The close callback frees ne
     * on a later iteration, after that task (posted earlier) has run. */
}

static void mq_net_exec_start_task(void *arg)
{
    mq_net_exec_t *ne = arg;
    MQ_ASSERT(uv_poll_init(&ne->loop->uv, &ne->poll, ne->tfd) == 0);
    ne->poll.data = ne;
    MQ_ASSERT(uv_poll_start(&ne->poll, UV_READABLE, mq_net_exec_timer) == 0);
    /* Idle timers must not keep the loop from stopping. */
    uv_unref((uv_handle_t *)&ne->poll);
}

mq_executor_t *mq_net_loop_executor_new(mq_net_loop_t *loop, const char *name)
{
    MQ_ASSERT(!mq_net_loop_on_thread(loop));
    mq_net_exec_t *ne = mq_calloc(1, sizeof(*ne));
    ne->loop = loop;
    mq_net_hook_init(&ne->hook, mq_net_exec_hook);
    atomic_init(&ne->posted, false);
    ne->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ne->tfd < 0) {
        MQ_LOG_ERROR("timerfd_create failed loop=%s errno=%d", loop->name, errno);
        abort();
    }
    mq_net_loop_run_sync(loop, mq_net_exec_start_task, ne);
    mq_executor_host_t host = {
        .wake = mq_net_exec_wake,
        .on_thread = mq_net_exec_on_thread,
        .release = mq_net_exec_release,
        .ctx = ne,
    };
    ne->ex = mq_executor_new_hosted(name, &host);
    return ne->ex;
}
