/*
 * mq_signal: how our daemons stop on SIGTERM/SIGINT. mq_signal_block runs
 * first in main, before any thread exists, so every thread inherits the
 * mask (and SIGPIPE is ignored: a peer closing a socket is an error return,
 * not a death). mq_signal_watch then starts one detached thread that waits
 * for the first SIGTERM or SIGINT, logs it and calls on_stop once.
 */
#ifndef MQ_SIGNAL_H
#define MQ_SIGNAL_H

/* Blocks SIGTERM and SIGINT in the calling thread and ignores SIGPIPE. */
void mq_signal_block(void);
/* Calls on_stop(arg) on a thread of its own at the first SIGTERM/SIGINT.
 * on_stop must be safe to call from any thread. */
void mq_signal_watch(void (*on_stop)(void *arg), void *arg);

#endif
