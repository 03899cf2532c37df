/*
 * it_cluster: the harness behind the integration tests (see it_cluster.h).
 * Main (test) thread only.
 */
#include "it_cluster.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_broker.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_test.h"
#include "mq_util.h"

const char *it_bin(const char *name)
{
    static char paths[4][PATH_MAX];
    static int next;
    char *p = paths[next++ % 4];
    if (strcmp(name, "mqbookie") == 0) {
        snprintf(p, PATH_MAX, "%s/bookie/mqbookie", mq_test_binary_dir());
    } else if (strcmp(name, "mqbroker") == 0) {
        snprintf(p, PATH_MAX, "%s/broker/mqbroker", mq_test_binary_dir());
    } else {
        snprintf(p, PATH_MAX, "%s/tools/%s", mq_test_binary_dir(), name);
    }
    return p;
}

/* The cluster of the running test, killed at exit if a fatal assertion
 * skipped it_cluster_fini. */
static it_cluster_t *it_current;

static void it_cluster_atexit(void)
{
    if (!it_current) {
        return;
    }
    for (int i = 0; i < it_current->nbrokers; i++) {
        if (it_current->brokers[i].pid > 0) {
            kill(it_current->brokers[i].pid, SIGKILL);
            it_wait_pid(it_current->brokers[i].pid, 10000);
        }
    }
    for (int i = 0; i < it_current->nbookies; i++) {
        if (it_current->bookies[i].pid > 0) {
            kill(it_current->bookies[i].pid, SIGKILL);
            it_wait_pid(it_current->bookies[i].pid, 10000);
        }
    }
    fprintf(stderr, "\n  test stopped early; logs kept in %s\n", it_current->dir);
}

bool it_cluster_init(it_cluster_t *c, const char *name)
{
    static bool registered;
    if (!registered) {
        atexit(it_cluster_atexit);
        registered = true;
    }
    memset(c, 0, sizeof(*c));
    it_current = c;
    snprintf(c->dir, sizeof(c->dir), "%s", mq_test_tmpdir(name));
    if (!mq_test_zk_start(c->zk_addr, sizeof(c->zk_addr), 500)) {
        return false;
    }
    zk_client_opts_t zo = {4000, 15000, NULL};
    if (zk_client_new(c->zk_addr, &zo, &c->zk) != MQ_OK) {
        fprintf(stderr, "cannot connect to ZooKeeper at %s\n", c->zk_addr);
        return false;
    }
    return true;
}

void it_cluster_allow_error(it_cluster_t *c, const char *text)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(c->allowed_errors) - 1; i++) {
        if (!c->allowed_errors[i]) {
            c->allowed_errors[i] = text;
            return;
        }
    }
}

/* Lines that fail a test: sanitizer reports anywhere, ERROR lines unless a
 * test said it expects them. */
static int it_check_log(it_cluster_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[4096];
    int bad = 0;
    while (fgets(line, sizeof(line), f)) {
        bool sanitizer = strstr(line, "AddressSanitizer") || strstr(line, "LeakSanitizer") ||
                         strstr(line, "ThreadSanitizer") || strstr(line, "runtime error:");
        bool error = strstr(line, " ERROR ") != NULL;
        if (error && !sanitizer) {
            for (size_t i = 0; c->allowed_errors[i]; i++) {
                if (strstr(line, c->allowed_errors[i])) {
                    error = false;
                    break;
                }
            }
        }
        if (sanitizer || error) {
            fprintf(stderr, "\n  %s: %s", path, line);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

void it_cluster_fini(it_cluster_t *c)
{
    /* Brokers first: a clean stop closes their ledgers on the bookies. A
     * broker a test left stopped (SIGSTOP) is continued so SIGTERM reaches
     * it. */
    for (int i = 0; i < c->nbrokers; i++) {
        if (c->brokers[i].pid > 0) {
            kill(c->brokers[i].pid, SIGCONT);
            int st = it_broker_kill(c, i, SIGTERM);
            if (st != 0) {
                fprintf(stderr, "\n  broker %d exited with %d on SIGTERM\n", i, st);
            }
            CU_ASSERT_EQUAL(st, 0);
        }
    }
    for (int i = 0; i < c->nbookies; i++) {
        if (c->bookies[i].pid > 0) {
            int st = it_bookie_kill(c, i, SIGTERM);
            if (st != 0) {
                fprintf(stderr, "\n  bookie %d exited with %d on SIGTERM\n", i, st);
            }
            CU_ASSERT_EQUAL(st, 0);
        }
    }
    int bad = 0;
    for (int i = 0; i < c->nbookies; i++) {
        bad += it_check_log(c, c->bookies[i].log);
    }
    for (int i = 0; i < c->nbrokers; i++) {
        bad += it_check_log(c, c->brokers[i].log);
    }
    CU_ASSERT_EQUAL(bad, 0);
    if (c->zk) {
        zk_client_free(c->zk);
        c->zk = NULL;
    }
    mq_test_zk_stop();
    it_current = NULL;
    if (bad == 0 && !getenv("MQ_TEST_KEEP")) {
        mq_fs_remove_tree(c->dir);
    } else {
        fprintf(stderr, "\n  logs kept in %s\n", c->dir);
    }
}

void it_bookie_prepare(it_cluster_t *c, int i, const char *const *sets)
{
    MQ_ASSERT(i < IT_MAX_BOOKIES);
    it_bookie_t *b = &c->bookies[i];
    if (i >= c->nbookies) {
        c->nbookies = i + 1;
    }
    char base[PATH_MAX];
    memcpy(base, c->dir, sizeof(base));
    snprintf(b->dir, sizeof(b->dir), "%s/bookie%d", base, i);
    snprintf(b->conf, sizeof(b->conf), "%s/bookie%d.conf", base, i);
    snprintf(b->log, sizeof(b->log), "%s/bookie%d.log", base, i);
    if (b->port == 0) {
        b->port = mq_test_port();
    }
    snprintf(b->id, sizeof(b->id), "127.0.0.1:%d", b->port);
    mq_fs_mkdirs(b->dir);
    FILE *f = fopen(b->conf, "w");
    fprintf(f,
            "# written by it_cluster\n"
            "bookiePort=%d\nbindAddress=127.0.0.1\nadvertisedAddress=127.0.0.1\n"
            "zkServers=%s\nzkTimeout=4000\n"
            "journalDirectories=%s/journal\nledgerDirectories=%s/ledgers\n"
            "journalMaxSizeMB=16\njournalPreAllocSizeMB=4\njournalMaxBackups=2\n"
            "dbStorage_writeCacheMaxSizeMb=32\nflushInterval=2000\ndiskCheckInterval=200\n",
            b->port, c->zk_addr, b->dir, b->dir);
    for (size_t k = 0; sets && sets[k]; k++) {
        fprintf(f, "%s\n", sets[k]);
    }
    fclose(f);
}

const char *it_bookie_addr(it_cluster_t *c, int i)
{
    return c->bookies[i].id;
}

void it_bookie_reg_path(it_cluster_t *c, int i, const char *kind, char *out, size_t cap)
{
    snprintf(out, cap, "/ledgermq/bookies/%s/%s", kind, c->bookies[i].id);
}

bool it_bookie_alive(it_cluster_t *c, int i)
{
    it_bookie_t *b = &c->bookies[i];
    if (b->pid <= 0) {
        return false;
    }
    int st;
    pid_t r = waitpid(b->pid, &st, WNOHANG);
    if (r == b->pid) {
        b->pid = 0;
        return false;
    }
    return true;
}

typedef struct it_wait_reg {
    it_cluster_t *c;
    int i;
    char avail[256];
    char ro[256];
    int64_t old_avail; /* czxid of a registration left by a previous process */
    int64_t old_ro;
} it_wait_reg_t;

/* czxid of the node, or 0 when it does not exist. */
static int64_t it_czxid(it_cluster_t *c, const char *path)
{
    zk_stat_t st;
    return zk_exists(c->zk, path, &st) == MQ_OK ? st.czxid : 0;
}

/* Registered by THIS process: a node a killed predecessor left behind (until
 * its session expires) does not count. */
static bool it_registered(it_wait_reg_t *w)
{
    int64_t a = it_czxid(w->c, w->avail);
    int64_t r = it_czxid(w->c, w->ro);
    return (a != 0 && a != w->old_avail) || (r != 0 && r != w->old_ro);
}

static bool it_registered_or_dead(void *arg)
{
    it_wait_reg_t *w = arg;
    if (!it_bookie_alive(w->c, w->i)) {
        return true;
    }
    return it_registered(w);
}

pid_t it_spawn(const char *cmd, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Dies with the test, even if the test crashes: no orphaned
         * bookies. (The setting survives the exec of the daemon.) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

bool it_bookie_start(it_cluster_t *c, int i)
{
    it_bookie_t *b = &c->bookies[i];
    char cmd[PATH_MAX * 3];
    /* exec: the pid we hold is mqbookie's own, so signals reach it. */
    snprintf(cmd, sizeof(cmd), "exec %s -c %s", it_bin("mqbookie"), b->conf);
    it_wait_reg_t w = {c, i, "", "", 0, 0};
    it_bookie_reg_path(c, i, "available", w.avail, sizeof(w.avail));
    it_bookie_reg_path(c, i, "readonly", w.ro, sizeof(w.ro));
    w.old_avail = it_czxid(c, w.avail);
    w.old_ro = it_czxid(c, w.ro);
    b->pid = it_spawn(cmd, b->log);
    b->starts++;
    /* A restart after kill -9 waits for the old session to expire. */
    mq_test_wait(it_registered_or_dead, &w, 60000);
    if (!it_bookie_alive(c, i)) {
        fprintf(stderr, "\n  bookie %d did not start, see %s\n", i, b->log);
        return false;
    }
    return it_registered(&w);
}

int it_wait_pid(pid_t pid, unsigned timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    unsigned pause_us = 1000;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st)) {
                return WEXITSTATUS(st);
            }
            return 128 + WTERMSIG(st);
        }
        if (r < 0) {
            return -1;
        }
        if (mq_now_ms() > deadline) {
            return -1;
        }
        usleep(pause_us);
        pause_us = pause_us < 50000 ? pause_us * 2 : pause_us;
    }
}

int it_bookie_kill(it_cluster_t *c, int i, int sig)
{
    it_bookie_t *b = &c->bookies[i];
    if (b->pid <= 0) {
        return -1;
    }
    kill(b->pid, sig);
    int st = it_wait_pid(b->pid, 60000);
    if (st == -1) {
        kill(b->pid, SIGKILL);
        it_wait_pid(b->pid, 10000);
    }
    b->pid = 0;
    return st;
}

bool it_zk_wait_exists(it_cluster_t *c, const char *path, bool want, unsigned timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    unsigned pause_us = 1000;
    for (;;) {
        bool exists = zk_exists(c->zk, path, NULL) == MQ_OK;
        if (exists == want) {
            return true;
        }
        if (mq_now_ms() > deadline) {
            return false;
        }
        usleep(pause_us);
        pause_us = pause_us < 50000 ? pause_us * 2 : pause_us;
    }
}

int it_run(const char *cmd, char *out, size_t cap, unsigned timeout_ms)
{
    char log[PATH_MAX];
    snprintf(log, sizeof(log), "%s/it-run-%d.out", mq_test_tmpdir("run"), (int)getpid());
    pid_t pid = it_spawn(cmd, log);
    int st = it_wait_pid(pid, timeout_ms);
    if (st == -1) {
        kill(pid, SIGKILL);
        it_wait_pid(pid, 5000);
    }
    if (out && cap) {
        out[0] = '\0';
        FILE *f = fopen(log, "r");
        if (f) {
            size_t n = fread(out, 1, cap - 1, f);
            out[n] = '\0';
            fclose(f);
        }
    }
    unlink(log);
    char *slash = strrchr(log, '/');
    if (slash) {
        *slash = '\0';
        rmdir(log);
    }
    return st;
}

bool it_cluster_start_bookies(it_cluster_t *c, int n, const char *const *sets)
{
    for (int i = 0; i < n; i++) {
        it_bookie_prepare(c, i, sets);
        if (!it_bookie_start(c, i)) {
            return false;
        }
    }
    return true;
}

int it_bookie_index(it_cluster_t *c, const char *id)
{
    for (int i = 0; i < c->nbookies; i++) {
        if (strcmp(c->bookies[i].id, id) == 0) {
            return i;
        }
    }
    return -1;
}
