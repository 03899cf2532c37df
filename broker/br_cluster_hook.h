/*
 * br_cluster_hook: a stable target for ZooKeeper watches and session
 * listeners, which cannot be taken back from the zk client (zk_client.h).
 *
 * A watch or listener of br_cluster or br_topics carries a hook, never the
 * object itself. The hook lives for the rest of the process (kept in a
 * global list, so it is no leak); freeing the object detaches it from the
 * hook, which also waits for a callback that is inside the object to leave
 * (meta_bookies.c does the same). Callbacks enter with br_hook_enter and
 * get the object, or NULL once it is detached.
 *
 * Any thread. A callback must not detach its own hook.
 */
#ifndef BR_CLUSTER_HOOK_H
#define BR_CLUSTER_HOOK_H

typedef struct br_hook br_hook_t;

/* A new hook pointing at target (lives for the process). */
br_hook_t *br_hook_new(void *target);
/* The target, marked in use until br_hook_leave; NULL once detached (then
 * do not call br_hook_leave). */
void *br_hook_enter(br_hook_t *hook);
void br_hook_leave(br_hook_t *hook);
/* Points the hook at nothing and waits until no callback is inside the
 * target. Not from inside such a callback. */
void br_hook_detach(br_hook_t *hook);

#endif
