/*
 * mq_signal: see mq_signal.h.
 */
#include "mq_signal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "mq_log.h"
#include "mq_util.h"

typedef struct mq_signal_watcher {
    void (*on_stop)(void *arg);
    void *arg;
} mq_signal_watcher_t;

static void mq_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void mq_signal_block(void)
{
    sigset_t set;
    mq_signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void *mq_signal_main(void *arg)
{
    mq_signal_watcher_t w = *(mq_signal_watcher_t *)arg;
    free(arg);
    mq_log_thread_name("signals");
    sigset_t set;
    mq_signal_set(&set);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
        MQ_LOG_INFO("signal received sig=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        w.on_stop(w.arg);
    }
    return NULL;
}

void mq_signal_watch(void (*on_stop)(void *arg), void *arg)
{
    mq_signal_watcher_t *w = mq_malloc(sizeof(*w));
    w->on_stop = on_stop;
    w->arg = arg;
    pthread_t tid;
    if (pthread_create(&tid, NULL, mq_signal_main, w) == 0) {
        pthread_detach(tid);
    } else {
        MQ_LOG_WARN("cannot start the signal thread; SIGTERM will not stop this process cleanly");
        free(w);
    }
}
