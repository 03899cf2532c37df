/*
 * bk_server: one bookie: storage, journal, protocol server, registration.
 * bk_main.c only parses arguments and calls these; tests may run a server in
 * process (no global state).
 */
#ifndef BK_SERVER_H
#define BK_SERVER_H

#include "bk_conf.h"
#include "mq_err.h"

typedef struct bk_server bk_server_t;

/*
 * Starts a bookie: connects to ZooKeeper, validates cookies, opens storage,
 * replays the journal, checkpoints, listens, and registers. On failure
 * returns the error with an operator-facing message in errbuf.
 * conf is borrowed for the server's lifetime.
 */
mq_err_t bk_server_start(const bk_conf_t *conf, bk_server_t **out, char *errbuf, size_t errlen);
/* Blocks until SIGTERM/SIGINT or bk_server_stop, then shuts down cleanly
 * (stop accepting, deregister, flush the journal, checkpoint) and frees the
 * server. Returns the process exit code: 0 after a clean stop. Call with
 * SIGTERM and SIGINT blocked in every thread (mq_signal_block before any
 * thread starts). */
int bk_server_run(bk_server_t *srv);
/* Asks a running server to stop. Any thread. */
void bk_server_stop(bk_server_t *srv, int exit_code);
/* The bound protocol port. */
int bk_server_port(const bk_server_t *srv);
/* `mqbookie --format`: clears the directories and the ZooKeeper cookie. */
mq_err_t bk_server_format(const bk_conf_t *conf, char *errbuf, size_t errlen);

#endif
