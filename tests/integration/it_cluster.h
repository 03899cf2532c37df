/*
 * it_cluster: integration-test harness. Starts a real ZooKeeper
 * (scripts/zookeeper.sh) and real mqbookie processes on loopback ports chosen
 * at run time, in a temp dir; waits on conditions (registration in
 * ZooKeeper, process exit), never on fixed sleeps; and checks every process
 * log for sanitizer reports and unexpected ERROR lines at the end, as
 * nginx-tests does.
 */
#ifndef IT_CLUSTER_H
#define IT_CLUSTER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "zk_client.h"

#define IT_MAX_BOOKIES 8
#define IT_MAX_SETS 16
#define IT_MAX_BROKERS 4

typedef struct it_bookie {
    char dir[PATH_MAX];
    char conf[PATH_MAX];
    char log[PATH_MAX];
    char id[64];
    int port;
    pid_t pid;
    int starts;
} it_bookie_t;

typedef struct it_cluster {
    char dir[PATH_MAX];
    char zk_addr[64];
    zk_client_t *zk;
    int nbookies;
    it_bookie_t bookies[IT_MAX_BOOKIES];
    int nbrokers;
    it_bookie_t brokers[IT_MAX_BROKERS]; /* same fields; see it_broker.h */
    /* Substrings of ERROR lines a test expects (NULL-terminated). */
    const char *allowed_errors[16];
} it_cluster_t;

/* Starts ZooKeeper and connects a client to it. */
bool it_cluster_init(it_cluster_t *c, const char *name);
/* Stops every process, checks logs (CU assertions), removes the temp dir. */
void it_cluster_fini(it_cluster_t *c);
/* Lets an ERROR line containing text pass the log check. */
void it_cluster_allow_error(it_cluster_t *c, const char *text);

/* Prepares bookie i (config with a free port and its own dirs). sets are
 * extra "key=value" lines for the config file (NULL-terminated, may be NULL). */
void it_bookie_prepare(it_cluster_t *c, int i, const char *const *sets);
/* Starts bookie i and waits until it is registered (available or readonly).
 * extra: more command-line arguments (may be NULL). */
bool it_bookie_start(it_cluster_t *c, int i);
/* Prepares and starts bookies 0..n-1 (sets as in it_bookie_prepare). */
bool it_cluster_start_bookies(it_cluster_t *c, int n, const char *const *sets);
/* The index of the bookie whose id is id, or -1. */
int it_bookie_index(it_cluster_t *c, const char *id);
/* Sends sig; waits for the exit and returns the exit status (as waitpid's
 * WEXITSTATUS, or 128+signal). */
int it_bookie_kill(it_cluster_t *c, int i, int sig);
/* True while bookie i's process runs. */
bool it_bookie_alive(it_cluster_t *c, int i);
/* "127.0.0.1:port" of bookie i. */
const char *it_bookie_addr(it_cluster_t *c, int i);
/* ZooKeeper registration path of bookie i ("available" or "readonly"). */
void it_bookie_reg_path(it_cluster_t *c, int i, const char *kind, char *out, size_t cap);
/* Waits until the znode path exists (want=true) or not. */
bool it_zk_wait_exists(it_cluster_t *c, const char *path, bool want, unsigned timeout_ms);

/* Runs a command with sh -c, capturing stdout+stderr into out (may be NULL),
 * with a timeout; returns the exit status (or -1 on timeout). */
int it_run(const char *cmd, char *out, size_t cap, unsigned timeout_ms);
/* Starts a command in the background (stdout+stderr to log); returns pid. */
pid_t it_spawn(const char *cmd, const char *log);
/* Waits for a spawned command; returns its exit status (-1 on timeout). */
int it_wait_pid(pid_t pid, unsigned timeout_ms);

/* Paths of our binaries in the build tree. */
const char *it_bin(const char *name);

#endif
