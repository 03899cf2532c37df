/*
 * test_zk_support: what the zk suites share; not a test by itself (compiled
 * into test_zk_client and test_zk_lock).
 *
 * A TCP proxy put between a client and ZooKeeper to fail the network on
 * demand: cut every connection, or also refuse new ones (accepted and closed
 * at once) until allowed again. One thread with poll(2); commands go through
 * a pipe and are acknowledged, so when t_proxy_cmd returns the connections
 * are gone.
 *
 * Sanitizer defaults. libzookeeper_mt 3.8 leaks an event its IO thread
 * queues (zookeeper_process) while the handle is being closed: the
 * completion thread has already stopped and zookeeper_close never frees
 * that queue. It happens when the server drops a connection at that moment,
 * typically the second handle of zk_client_test_expire. The suppression
 * names only that allocation site, which needs the slow unwinder to be seen
 * through the library; anything else allocated by ZooKeeper (a handle never
 * closed) or by us is still reported.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_PROXY_PAIRS 32

typedef struct t_proxy t_proxy_t;

/* Declared again in the suites that use them. */
t_proxy_t *t_proxy_start(const char *target);
const char *t_proxy_addr(t_proxy_t *p);
void t_proxy_cmd(t_proxy_t *p, char cmd);
void t_proxy_stop(t_proxy_t *p);

/* Read by the sanitizer runtimes when present. */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

const char *__asan_default_options(void)
{
    return "fast_unwind_on_malloc=0";
}

const char *__lsan_default_suppressions(void)
{
    return "leak:zookeeper_process\n";
}

struct t_proxy {
    int lfd;
    int ctl[2]; /* commands in */
    int ack[2]; /* acknowledgements out */
    pthread_t th;
    struct sockaddr_in target;
    char addr[32];
    int pairs[T_PROXY_PAIRS][2];
    int n;
    bool refuse;
};

static void t_proxy_close_all(t_proxy_t *p)
{
    for (int i = 0; i < p->n; i++) {
        close(p->pairs[i][0]);
        close(p->pairs[i][1]);
    }
    p->n = 0;
}

static void t_proxy_drop(t_proxy_t *p, int i)
{
    close(p->pairs[i][0]);
    close(p->pairs[i][1]);
    p->pairs[i][0] = p->pairs[p->n - 1][0];
    p->pairs[i][1] = p->pairs[p->n - 1][1];
    p->n--;
}

static bool t_proxy_relay(int from, int to)
{
    char buf[65536];
    ssize_t r = read(from, buf, sizeof(buf));
    if (r <= 0) {
        return false;
    }
    for (ssize_t off = 0; off < r;) {
        ssize_t w = write(to, buf + off, (size_t)(r - off));
        if (w <= 0) {
            return false;
        }
        off += w;
    }
    return true;
}

static void t_proxy_accept(t_proxy_t *p)
{
    int c = accept(p->lfd, NULL, NULL);
    if (c < 0) {
        return;
    }
    if (p->refuse || p->n == T_PROXY_PAIRS) {
        close(c);
        return;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&p->target, sizeof(p->target)) != 0) {
        if (s >= 0) {
            close(s);
        }
        close(c);
        return;
    }
    p->pairs[p->n][0] = c;
    p->pairs[p->n][1] = s;
    p->n++;
}

static void *t_proxy_run(void *arg)
{
    t_proxy_t *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * T_PROXY_PAIRS];
        fds[0] = (struct pollfd){.fd = p->ctl[0], .events = POLLIN};
        fds[1] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        int n = p->n;
        for (int i = 0; i < n; i++) {
            fds[2 + 2 * i] = (struct pollfd){.fd = p->pairs[i][0], .events = POLLIN};
            fds[3 + 2 * i] = (struct pollfd){.fd = p->pairs[i][1], .events = POLLIN};
        }
        if (poll(fds, (nfds_t)(2 + 2 * n), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[0].revents) {
            char cmd = 0;
            if (read(p->ctl[0], &cmd, 1) != 1 || cmd == 'q') {
                t_proxy_close_all(p);
                break;
            }
            if (cmd == 'r') {
                p->refuse = true;
            } else if (cmd == 'a') {
                p->refuse = false;
            }
            if (cmd == 'c' || cmd == 'r') {
                t_proxy_close_all(p);
            }
            if (write(p->ack[1], &cmd, 1) != 1) {
                break;
            }
            continue;
        }
        /* Back to front: dropping a pair moves the last one into its slot. */
        for (int i = n - 1; i >= 0; i--) {
            bool ok = true;
            if (fds[2 + 2 * i].revents) {
                ok = t_proxy_relay(p->pairs[i][0], p->pairs[i][1]);
            }
            if (ok && fds[3 + 2 * i].revents) {
                ok = t_proxy_relay(p->pairs[i][1], p->pairs[i][0]);
            }
            if (!ok) {
                t_proxy_drop(p, i);
            }
        }
        if (fds[1].revents) {
            t_proxy_accept(p);
        }
    }
    return NULL;
}

t_proxy_t *t_proxy_start(const char *target)
{
    t_proxy_t *p = calloc(1, sizeof(*p));
    char host[64];
    snprintf(host, sizeof(host), "%s", target);
    char *colon = strrchr(host, ':');
    if (!p || !colon) {
        free(p);
        return NULL;
    }
    *colon = '\0';
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &p->target.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(p->lfd, 16) != 0 || getsockname(p->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pipe(p->ctl) != 0 || pipe(p->ack) != 0) {
        perror("proxy");
        abort();
    }
    snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    pthread_create(&p->th, NULL, t_proxy_run, p);
    return p;
}

const char *t_proxy_addr(t_proxy_t *p)
{
    return p->addr;
}

/* 'c': cut every connection; 'r': cut and refuse new ones; 'a': accept
 * again. Returns once done. */
void t_proxy_cmd(t_proxy_t *p, char cmd)
{
    char ack;
    if (write(p->ctl[1], &cmd, 1) != 1 || read(p->ack[0], &ack, 1) != 1) {
        perror("proxy command");
        abort();
    }
}

void t_proxy_stop(t_proxy_t *p)
{
    char cmd = 'q';
    if (write(p->ctl[1], &cmd, 1) != 1) {
        perror("proxy stop");
    }
    pthread_join(p->th, NULL);
    close(p->lfd);
    close(p->ctl[0]);
    close(p->ctl[1]);
    close(p->ack[0]);
    close(p->ack[1]);
    free(p);
}
