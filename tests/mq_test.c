/*
 * mq_test: implementation of the shared test helpers. Main thread.
 */
#include "mq_test.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mq_fs.h"
#include "mq_util.h"

int mq_test_run(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                CU_CleanupFunc cleanup)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 2;
    }
    CU_SuiteInfo suites[] = {
        {suite, init, cleanup, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned suite_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (failed || suite_failed) ? 1 : 0;
}

const char *mq_test_tmpdir(const char *prefix)
{
    static char path[PATH_MAX];
    const char *base = getenv("TMPDIR");
    if (!base || !*base) {
        base = "/tmp";
    }
    snprintf(path, sizeof(path), "%s/lmq-%s-XXXXXX", base, prefix);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

bool mq_test_wait(bool (*cond)(void *arg), void *arg, uint32_t timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    uint32_t pause_us = 1000;
    for (;;) {
        if (cond(arg)) {
            return true;
        }
        if (mq_now_ms() >= deadline) {
            return cond(arg);
        }
        usleep(pause_us);
        if (pause_us < 50000) {
            pause_us *= 2;
        }
    }
}

const char *mq_test_source_dir(void)
{
    const char *s = getenv("MQ_SOURCE_DIR");
    return s && *s ? s : MQ_TEST_DEFAULT_SOURCE_DIR;
}

const char *mq_test_binary_dir(void)
{
    const char *s = getenv("MQ_BINARY_DIR");
    return s && *s ? s : MQ_TEST_DEFAULT_BINARY_DIR;
}

static char mq_test_zk_dir[PATH_MAX];
static pid_t mq_test_zk_pid;

/* A test that stops on a fatal assertion skips its own cleanup: the
 * ZooKeeper it started must not outlive the process. (One that crashes is
 * covered too: ZooKeeper runs as a child that the kernel kills with us.) */
static void mq_test_zk_atexit(void)
{
    mq_test_zk_stop();
}

int mq_test_port(void)
{
    /* The kernel may hand the same ephemeral port out again as soon as it
     * is released: a test asking for two ports (a bookie's and its HTTP
     * server's) could get one twice. Ports handed out lately are skipped. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int recent[64];
    static size_t nrecent;
    pthread_mutex_lock(&mu);
    int port = -1;
    for (int attempt = 0; attempt < 32 && port < 0; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            break;
        }
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
            port = ntohs(a.sin_port);
        }
        close(fd);
        for (size_t i = 0; port > 0 && i < nrecent && i < 64; i++) {
            if (recent[i] == port) {
                port = -1;
            }
        }
    }
    if (port > 0) {
        recent[nrecent++ % 64] = port;
    }
    pthread_mutex_unlock(&mu);
    return port;
}

/* True when a server on 127.0.0.1:port answers "ruok" with "imok". */
static bool mq_test_zk_ruok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[8] = "";
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write(fd, "ruok", 4) == 4 &&
              read(fd, buf, 4) == 4 && memcmp(buf, "imok", 4) == 0;
    close(fd);
    return ok;
}

typedef struct mq_test_zk_probe {
    pid_t pid;
    int port;
    bool exited;
} mq_test_zk_probe_t;

static bool mq_test_zk_up_or_dead(void *arg)
{
    mq_test_zk_probe_t *p = arg;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->exited = true;
        return true;
    }
    return mq_test_zk_ruok(p->port);
}

bool mq_test_zk_start(char *hostport, size_t cap, uint32_t tick_ms)
{
    static bool registered;
    if (!registered) {
        atexit(mq_test_zk_atexit);
        registered = true;
    }
    snprintf(mq_test_zk_dir, sizeof(mq_test_zk_dir), "%s", mq_test_tmpdir("zk"));
    char script[PATH_MAX];
    char log[PATH_MAX + 16];
    char tick[16];
    snprintf(script, sizeof(script), "%s/scripts/zookeeper.sh", mq_test_source_dir());
    snprintf(log, sizeof(log), "%s/zk.log", mq_test_zk_dir);
    snprintf(tick, sizeof(tick), "%u", tick_ms ? tick_ms : 500);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = mq_test_port();
        char sport[16];
        snprintf(sport, sizeof(sport), "%d", port);
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) {
            /* Dies with the test, even if the test crashes. */
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
            execl(script, script, "run", "--dir", mq_test_zk_dir, "--port", sport, "--tick-ms",
                  tick, (char *)NULL);
            _exit(127);
        }
        mq_test_zk_probe_t probe = {pid, port, false};
        if (mq_test_wait(mq_test_zk_up_or_dead, &probe, 60000) && !probe.exited) {
            mq_test_zk_pid = pid;
            snprintf(hostport, cap, "127.0.0.1:%d", port);
            return true;
        }
        if (!probe.exited) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        /* The port was taken between our check and ZooKeeper's bind: try
         * another one. */
    }
    fprintf(stderr, "ZooKeeper did not start, see %s\n", log);
    return false;
}

void mq_test_zk_stop(void)
{
    if (mq_test_zk_pid > 0) {
        kill(mq_test_zk_pid, SIGTERM);
        uint64_t deadline = mq_now_ms() + 10000;
        while (waitpid(mq_test_zk_pid, NULL, WNOHANG) == 0) {
            if (mq_now_ms() > deadline) {
                kill(mq_test_zk_pid, SIGKILL);
                waitpid(mq_test_zk_pid, NULL, 0);
                break;
            }
            usleep(10000);
        }
        mq_test_zk_pid = 0;
    }
    if (mq_test_zk_dir[0]) {
        mq_fs_remove_tree(mq_test_zk_dir);
        mq_test_zk_dir[0] = '\0';
    }
}
