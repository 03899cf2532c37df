/*
 * br_cluster_hook: long-lived callback targets (see the header).
 *
 * One global mutex guards every hook's target and its count of callbacks
 * inside; detach waits on one global condition variable. Callbacks are
 * short (they copy, mark and post), so the contention is negligible.
 */
#include "br_cluster_hook.h"

#include <pthread.h>
#include <stdlib.h>

#include "mq_log.h"
#include "mq_util.h"

struct br_hook {
    br_hook_t *next; /* in br_hooks, for the life of the process */
    /* @locks br_hooks_mu */
    void *target;
    int running;
};

static pthread_mutex_t br_hooks_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t br_hooks_cond = PTHREAD_COND_INITIALIZER;
static br_hook_t *br_hooks; /* @locks br_hooks_mu */

br_hook_t *br_hook_new(void *target)
{
    br_hook_t *hook = mq_calloc(1, sizeof(*hook));
    pthread_mutex_lock(&br_hooks_mu);
    hook->target = target;
    hook->next = br_hooks;
    br_hooks = hook;
    pthread_mutex_unlock(&br_hooks_mu);
    return hook;
}

void *br_hook_enter(br_hook_t *hook)
{
    pthread_mutex_lock(&br_hooks_mu);
    void *target = hook->target;
    if (target) {
        hook->running++;
    }
    pthread_mutex_unlock(&br_hooks_mu);
    return target;
}

void br_hook_leave(br_hook_t *hook)
{
    pthread_mutex_lock(&br_hooks_mu);
    MQ_ASSERT(hook->running > 0);
    hook->running--;
    if (hook->running == 0) {
        pthread_cond_broadcast(&br_hooks_cond);
    }
    pthread_mutex_unlock(&br_hooks_mu);
}

void br_hook_detach(br_hook_t *hook)
{
    if (!hook) {
        return;
    }
    pthread_mutex_lock(&br_hooks_mu);
    hook->target = NULL;
    while (hook->running > 0) {
        pthread_cond_wait(&br_hooks_cond, &br_hooks_mu);
    }
    pthread_mutex_unlock(&br_hooks_mu);
}
