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
/* Cancels a timer that has not fired. Call it from the key's thread (then the
 * callback is guaranteed not to run); the handle is freed. */
void mq_timer_cancel(mq_timer_t *timer);

#endif
