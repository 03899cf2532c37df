/*
 * mq_executor: ordered executors (BookKeeper's OrderedExecutor model) and the
 * timers that run on them.
 *
 * An executor is N threads, each with its own FIFO queue. Work submitted with a
 * key always runs on thread (key mod N), in submission order, so state owned
 * by one key (a ledger, a queue) needs no lock as long as it is only touched
 * from tasks with that key. Timers run on the same thread as their key.
 *
 * mq_executor_submit/schedule may be called from any thread. Callbacks run on
 * the executor thread and must not block for long (no fsync, no blocking RPC).
 */
#ifndef MQ_EXECUTOR_H
#define MQ_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct mq_executor mq_executor_t;
typedef struct mq_timer mq_timer_t;
typedef void (*mq_task_cb)(void *arg);

/* Starts nthreads threads named "<name>-<i>". Aborts if threads can't start. */
mq_executor_t *mq_executor_new(const char *name, unsigned nthreads);
/* Runs every task already submitted, drops pending timers (their args are not
 * touched: cancel them first if they own memory), joins and frees. Must not be
 * called from one of the executor's own threads. */
void mq_executor_free(mq_executor_t *ex);

unsigned mq_executor_threads(const mq_executor_t *ex);
/* Queues cb(arg) on the thread of key. */
void mq_executor_submit(mq_executor_t *ex, uint64_t key, mq_task_cb cb, void *arg);
/* True when the caller runs on the thread that owns key. */
bool mq_executor_on_thread(const mq_executor_t *ex, uint64_t key);

/* Runs cb(arg) on the thread of key after delay_ms. The handle stays valid
 * until the callback has started or the timer was cancelled. */
mq_timer_t *mq_executor_schedule(mq_executor_t *ex, uint64_t key, uint64_t delay_ms, mq_task_cb cb,
                                 void *arg);
/* The same with a delay in nanoseconds (waits shorter than a millisecond). */
mq_timer_t *mq_executor_schedule_ns(mq_executor_t *ex, uint64_t key, uint64_t delay_ns,
                                    mq_task_cb cb, void *arg);
/* --- hosted executors ---------------------------------------------------
 * An executor of one worker with no thread of its own: a host (an event
 * loop) runs its tasks and timers on the host's thread. Work handed over on
 * that thread then costs no wake-up at all, and work from other threads one
 * wake-up of a thread that is often awake anyway. Submit, schedule, cancel
 * and on_thread keep their meaning. */
typedef struct mq_executor_host {
    /* Any thread, no executor lock held: tasks arrived, or the earliest
     * timer moved; the host calls mq_executor_host_run on its thread soon
     * (once for many wakes is enough). */
    void (*wake)(void *ctx);
    bool (*on_thread)(const void *ctx);
    /* From mq_executor_free (not on the host thread): run everything still
     * queued on the host thread (mq_executor_host_run until it answers
     * false), then let go of ctx. */
    void (*release)(void *ctx, mq_executor_t *ex);
    void *ctx;
} mq_executor_host_t;

mq_executor_t *mq_executor_new_hosted(const char *name, const mq_executor_host_t *host);
/* Host thread: runs the due timers and the tasks queued when it started
 * (tasks they submit wake the host again). *next_ns gets the earliest
 * pending deadline (mq_now_ns clock), 0 when no timer is pending. Returns
 * whether it ran anything. */
bool mq_executor_host_run(mq_executor_t *ex, uint64_t *next_ns);

/* Cancels a timer that has not fired. Call it from the key's thread (then the
 * callback is guaranteed not to run); the handle is freed. */
void mq_timer_cancel(mq_timer_t *timer);

#endif
