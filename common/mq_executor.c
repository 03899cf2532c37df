/*
 * mq_executor: per-thread FIFO queues and a per-thread timer heap.
 *
 * Each worker owns a mutex protecting its queue and its heap; the worker takes
 * the whole queue in one swap and runs it without the lock, then runs the
 * timers that are due. A hosted executor has one worker and no thread: its
 * host (an event loop) calls mq_executor_host_run, which does one such pass,
 * whenever the wake callback asked for it. Timers are kept in a binary
 * min-heap ordered by deadline, each timer remembering its heap index so
 * that cancel is O(log n).
 */
#include "mq_executor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "mq_log.h"
#include "mq_util.h"

typedef struct mq_task {
    struct mq_task *next;
    mq_task_cb cb;
    void *arg;
} mq_task_t;

struct mq_timer {
    struct mq_exec_worker *worker;
    uint64_t deadline_ns;
    size_t heap_idx;
    mq_task_cb cb;
    void *arg;
};

typedef struct mq_exec_worker {
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    mq_task_t *head;
    mq_task_t *tail;
    mq_timer_t **heap;
    size_t heap_len;
    size_t heap_cap;
    bool stopping;
    unsigned index;
    mq_executor_t *ex;
} mq_exec_worker_t;

struct mq_executor {
    char name[32];
    unsigned nthreads;
    mq_exec_worker_t *workers;
    bool hosted; /* one worker, run by host (no thread) */
    mq_executor_host_t host;
};

static _Thread_local const mq_exec_worker_t *mq_exec_current;

static void mq_exec_heap_swap(mq_exec_worker_t *w, size_t a, size_t b)
{
    mq_timer_t *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_idx = a;
    w->heap[b]->heap_idx = b;
}

static void mq_exec_heap_up(mq_exec_worker_t *w, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent]->deadline_ns <= w->heap[i]->deadline_ns) {
            break;
        }
        mq_exec_heap_swap(w, parent, i);
        i = parent;
    }
}

static void mq_exec_heap_down(mq_exec_worker_t *w, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < w->heap_len && w->heap[l]->deadline_ns < w->heap[m]->deadline_ns) {
            m = l;
        }
        if (r < w->heap_len && w->heap[r]->deadline_ns < w->heap[m]->deadline_ns) {
            m = r;
        }
        if (m == i) {
            return;
        }
        mq_exec_heap_swap(w, i, m);
        i = m;
    }
}

static void mq_exec_heap_remove(mq_exec_worker_t *w, size_t i)
{
    size_t last = w->heap_len - 1;
    if (i != last) {
        mq_exec_heap_swap(w, i, last);
    }
    w->heap_len--;
    if (i < w->heap_len) {
        mq_exec_heap_down(w, i);
        mq_exec_heap_up(w, i);
    }
}

/* @locks w->lock, held on return too. Fires the earliest timer without the
 * lock, so that its callback may schedule or cancel other timers. */
static void mq_exec_fire_first(mq_exec_worker_t *w)
{
    mq_timer_t *t = w->heap[0];
    mq_exec_heap_remove(w, 0);
    pthread_mutex_unlock(&w->lock);
    mq_task_cb cb = t->cb;
    void *targ = t->arg;
    free(t);
    cb(targ);
    pthread_mutex_lock(&w->lock);
}

/* @locks w->lock, held on return too. Takes the whole queue in one swap
 * and runs it without the lock; returns whether there was anything. */
static bool mq_exec_run_queued(mq_exec_worker_t *w)
{
    mq_task_t *list = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->lock);
    bool ran = list != NULL;
    while (list) {
        mq_task_t *next = list->next;
        list->cb(list->arg);
        free(list);
        list = next;
    }
    pthread_mutex_lock(&w->lock);
    return ran;
}

static void *mq_exec_run(void *arg)
{
    mq_exec_worker_t *w = arg;
    char tname[16];
    snprintf(tname, sizeof(tname), "%.10s-%u", w->ex->name, w->index);
    mq_log_thread_name(tname);
    mq_exec_current = w;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        uint64_t now = mq_now_ns();
        /* Fire due timers first, one at a time, releasing the lock so the
         * callback may schedule or cancel other timers. */
        if (w->heap_len > 0 && w->heap[0]->deadline_ns <= now) {
            mq_exec_fire_first(w);
            continue;
        }
        if (w->head) {
            mq_exec_run_queued(w);
            continue;
        }
        if (w->stopping) {
            /* Timers scheduled by the last tasks are dropped with the rest. */
            for (size_t k = 0; k < w->heap_len; k++) {
                free(w->heap[k]);
            }
            w->heap_len = 0;
            break;
        }
        if (w->heap_len > 0) {
            uint64_t deadline = w->heap[0]->deadline_ns;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = deadline > now ? deadline - now : 0;
            uint64_t abs_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + wait;
            ts.tv_sec = (time_t)(abs_ns / 1000000000ull);
            ts.tv_nsec = (long)(abs_ns % 1000000000ull);
            pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        } else {
            pthread_cond_wait(&w->cond, &w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

mq_executor_t *mq_executor_new(const char *name, unsigned nthreads)
{
    MQ_ASSERT(nthreads > 0);
    mq_executor_t *ex = mq_calloc(1, sizeof(*ex));
    snprintf(ex->name, sizeof(ex->name), "%s", name);
    ex->nthreads = nthreads;
    ex->workers = mq_calloc(nthreads, sizeof(*ex->workers));
    for (unsigned i = 0; i < nthreads; i++) {
        mq_exec_worker_t *w = &ex->workers[i];
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, &attr);
        pthread_condattr_destroy(&attr);
        w->index = i;
        w->ex = ex;
        if (pthread_create(&w->tid, NULL, mq_exec_run, w) != 0) {
            MQ_LOG_ERROR("cannot start executor thread name=%s", name);
            abort();
        }
    }
    return ex;
}

void mq_executor_free(mq_executor_t *ex)
{
    if (!ex) {
        return;
    }
    if (ex->hosted) {
        MQ_ASSERT(!ex->host.on_thread(ex->host.ctx));
        /* The host runs what is queued, then forgets the executor. */
        ex->host.release(ex->host.ctx, ex);
        mq_exec_worker_t *w = &ex->workers[0];
        for (size_t k = 0; k < w->heap_len; k++) {
            free(w->heap[k]);
        }
        MQ_ASSERT(w->head == NULL);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->heap);
        free(ex->workers);
        free(ex);
        return;
    }
    for (unsigned i = 0; i < ex->nthreads; i++) {
        mq_exec_worker_t *w = &ex->workers[i];
        MQ_ASSERT(mq_exec_current != w);
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        /* Pending timers are dropped: stopping means no more deadlines. */
        for (size_t k = 0; k < w->heap_len; k++) {
            free(w->heap[k]);
        }
        w->heap_len = 0;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    for (unsigned i = 0; i < ex->nthreads; i++) {
        mq_exec_worker_t *w = &ex->workers[i];
        pthread_join(w->tid, NULL);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->heap);
    }
    free(ex->workers);
    free(ex);
}

unsigned mq_executor_threads(const mq_executor_t *ex)
{
    return ex->nthreads;
}

static mq_exec_worker_t *mq_exec_worker_of(const mq_executor_t *ex, uint64_t key)
{
    return &ex->workers[key % ex->nthreads];
}

bool mq_executor_on_thread(const mq_executor_t *ex, uint64_t key)
{
    if (ex->hosted) {
        return ex->host.on_thread(ex->host.ctx);
    }
    return mq_exec_current == mq_exec_worker_of(ex, key);
}

void mq_executor_submit(mq_executor_t *ex, uint64_t key, mq_task_cb cb, void *arg)
{
    mq_exec_worker_t *w = mq_exec_worker_of(ex, key);
    mq_task_t *t = mq_malloc(sizeof(*t));
    t->next = NULL;
    t->cb = cb;
    t->arg = arg;
    pthread_mutex_lock(&w->lock);
    bool was_empty = w->head == NULL;
    if (w->tail) {
        w->tail->next = t;
    } else {
        w->head = t;
    }
    w->tail = t;
    /* The worker only sleeps when its queue is empty, so only that transition
     * needs a wake-up; this keeps the signal off the path of a busy queue. */
    if (was_empty && !ex->hosted) {
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    if (was_empty && ex->hosted) {
        ex->host.wake(ex->host.ctx);
    }
}

mq_timer_t *mq_executor_schedule(mq_executor_t *ex, uint64_t key, uint64_t delay_ms, mq_task_cb cb,
                                 void *arg)
{
    return mq_executor_schedule_ns(ex, key, delay_ms * 1000000ull, cb, arg);
}

mq_timer_t *mq_executor_schedule_ns(mq_executor_t *ex, uint64_t key, uint64_t delay_ns,
                                    mq_task_cb cb, void *arg)
{
    mq_exec_worker_t *w = mq_exec_worker_of(ex, key);
    mq_timer_t *t = mq_malloc(sizeof(*t));
    t->worker = w;
    t->deadline_ns = mq_now_ns() + delay_ns;
    t->cb = cb;
    t->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->heap_len == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 16;
        w->heap = mq_realloc(w->heap, w->heap_cap * sizeof(*w->heap));
    }
    t->heap_idx = w->heap_len;
    w->heap[w->heap_len++] = t;
    mq_exec_heap_up(w, t->heap_idx);
    bool first = w->heap[0] == t;
    if (first && !ex->hosted) {
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    if (first && ex->hosted) {
        ex->host.wake(ex->host.ctx);
    }
    return t;
}

void mq_timer_cancel(mq_timer_t *timer)
{
    if (!timer) {
        return;
    }
    mq_exec_worker_t *w = timer->worker;
    pthread_mutex_lock(&w->lock);
    /* A timer that already fired has been freed; callers only cancel live
     * timers from the key's thread, where that cannot race. */
    MQ_ASSERT(timer->heap_idx < w->heap_len && w->heap[timer->heap_idx] == timer);
    mq_exec_heap_remove(w, timer->heap_idx);
    pthread_mutex_unlock(&w->lock);
    free(timer);
}

mq_executor_t *mq_executor_new_hosted(const char *name, const mq_executor_host_t *host)
{
    MQ_ASSERT(host && host->wake && host->on_thread && host->release);
    mq_executor_t *ex = mq_calloc(1, sizeof(*ex));
    snprintf(ex->name, sizeof(ex->name), "%s", name);
    ex->nthreads = 1;
    ex->hosted = true;
    ex->host = *host;
    ex->workers = mq_calloc(1, sizeof(*ex->workers));
    mq_exec_worker_t *w = &ex->workers[0];
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->ex = ex;
    return ex;
}

bool mq_executor_host_run(mq_executor_t *ex, uint64_t *next_ns)
{
    MQ_ASSERT(ex->hosted);
    mq_exec_worker_t *w = &ex->workers[0];
    bool ran = false;
    uint64_t now = mq_now_ns();
    pthread_mutex_lock(&w->lock);
    /* Timers due now, one at a time (a callback may schedule or cancel),
     * then the tasks queued so far; a timer that falls due meanwhile waits
     * for the next pass, as tasks submitted meanwhile do (they wake the
     * host again), so one pass is bounded. */
    while (w->heap_len > 0 && w->heap[0]->deadline_ns <= now) {
        mq_exec_fire_first(w);
        ran = true;
    }
    if (mq_exec_run_queued(w)) {
        ran = true;
    }
    *next_ns = w->heap_len > 0 ? w->heap[0]->deadline_ns : 0;
    pthread_mutex_unlock(&w->lock);
    return ran;
}
