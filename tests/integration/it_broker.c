/*
 * it_broker: mqbroker processes for integration tests (see it_broker.h).
 *
 * Broker i keeps its files next to the bookies' in the cluster's temp dir:
 * broker<i>.conf, broker<i>.log, and broker<i>/ as its working directory
 * (where a core or anything else it writes lands). Its slot in
 * c->brokers[] reuses the bookie fields: id is "broker-<i>", port its
 * grpcServerPort. A broker counts as started when its registration znode
 * was created by this process (not left over by a killed predecessor whose
 * session has not expired yet) and its gRPC port accepts connections.
 *
 * Ownership and leader znodes are read as text: the broker id is the value
 * of an "id=" (or brokerId/brokerName/owner) field when there is one, else
 * the first token of the first line, so the harness does not depend on the
 * exact record format.
 *
 * Main (test) thread only; one cluster at a time (the endpoint strings live
 * in static storage per broker index).
 */
#include "it_broker.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mq_fs.h"
#include "mq_log.h"
#include "mq_test.h"
#include "mq_util.h"

#define IT_BROKER_ROOT "/ledgermq"
#define IT_BROKER_CLUSTER "TestCluster"
/* A restart after kill -9 waits for the old session to expire (zkTimeout). */
#define IT_BROKER_START_MS 60000
#define IT_BROKER_STOP_MS 60000

static char it_broker_eps[IT_MAX_BROKERS][64];

/* True when something accepts TCP connections on 127.0.0.1:port. */
static bool it_broker_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void it_broker_sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

void it_broker_prepare(it_cluster_t *c, int i, const char *const *sets)
{
    MQ_ASSERT(i >= 0 && i < IT_MAX_BROKERS);
    it_bookie_t *b = &c->brokers[i];
    if (i >= c->nbrokers) {
        c->nbrokers = i + 1;
    }
    char base[PATH_MAX];
    memcpy(base, c->dir, sizeof(base));
    snprintf(b->dir, sizeof(b->dir), "%s/broker%d", base, i);
    snprintf(b->conf, sizeof(b->conf), "%s/broker%d.conf", base, i);
    snprintf(b->log, sizeof(b->log), "%s/broker%d.log", base, i);
    if (b->port == 0) {
        b->port = mq_test_port();
    }
    snprintf(b->id, sizeof(b->id), "broker-%d", i);
    snprintf(it_broker_eps[i], sizeof(it_broker_eps[i]), "127.0.0.1:%d", b->port);
    mq_fs_mkdirs(b->dir);
    FILE *f = fopen(b->conf, "w");
    MQ_ASSERT(f != NULL);
    fprintf(f,
            "# written by it_broker\n"
            "brokerName=%s\nbrokerClusterName=" IT_BROKER_CLUSTER "\n"
            "grpcServerPort=%d\nbrokerIP1=127.0.0.1\nlistenAddress=127.0.0.1\n"
            "zkServers=%s\nzkTimeout=4000\n",
            b->id, b->port, c->zk_addr);
    for (size_t k = 0; sets && sets[k]; k++) {
        fprintf(f, "%s\n", sets[k]);
    }
    fclose(f);
}

const char *it_broker_endpoint(it_cluster_t *c, int i)
{
    MQ_ASSERT(i >= 0 && i < IT_MAX_BROKERS);
    snprintf(it_broker_eps[i], sizeof(it_broker_eps[i]), "127.0.0.1:%d", c->brokers[i].port);
    return it_broker_eps[i];
}

const char *it_broker_id(it_cluster_t *c, int i)
{
    MQ_ASSERT(i >= 0 && i < IT_MAX_BROKERS);
    return c->brokers[i].id;
}

bool it_broker_alive(it_cluster_t *c, int i)
{
    it_bookie_t *b = &c->brokers[i];
    if (b->pid <= 0) {
        return false;
    }
    int st;
    if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
        b->pid = 0;
        return false;
    }
    return true;
}

/* czxid of the node, or 0 when it does not exist. */
static int64_t it_broker_czxid(it_cluster_t *c, const char *path)
{
    zk_stat_t st;
    return zk_exists(c->zk, path, &st) == MQ_OK ? st.czxid : 0;
}

typedef struct it_broker_wait {
    it_cluster_t *c;
    int i;
    char reg[256];
    int64_t old_czxid; /* a registration left by a previous process */
} it_broker_wait_t;

static bool it_broker_registered(it_broker_wait_t *w)
{
    int64_t z = it_broker_czxid(w->c, w->reg);
    return z != 0 && z != w->old_czxid;
}

static bool it_broker_ready_or_dead(void *arg)
{
    it_broker_wait_t *w = arg;
    if (!it_broker_alive(w->c, w->i)) {
        return true;
    }
    return it_broker_registered(w) && it_broker_port_open(w->c->brokers[w->i].port);
}

/* The end of a log, to stderr: why a broker did not come up. */
static void it_broker_print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char buf[4096];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > (long)sizeof(buf) - 1) {
            fseek(f, size - (long)sizeof(buf) + 1, SEEK_SET);
        } else {
            fseek(f, 0, SEEK_SET);
        }
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "  --- end of %s ---\n%s\n  ---\n", path, buf);
}

bool it_broker_start(it_cluster_t *c, int i)
{
    MQ_ASSERT(i >= 0 && i < c->nbrokers);
    it_bookie_t *b = &c->brokers[i];
    char cmd[PATH_MAX * 3];
    /* exec: the pid we hold is mqbroker's own, so signals reach it. */
    snprintf(cmd, sizeof(cmd), "cd '%s' && exec '%s' -c '%s'", b->dir, it_bin("mqbroker"), b->conf);
    it_broker_wait_t w = {c, i, "", 0};
    snprintf(w.reg, sizeof(w.reg), IT_BROKER_ROOT "/brokers/available/%s", b->id);
    w.old_czxid = it_broker_czxid(c, w.reg);
    b->pid = it_spawn(cmd, b->log);
    b->starts++;
    mq_test_wait(it_broker_ready_or_dead, &w, IT_BROKER_START_MS);
    if (!it_broker_alive(c, i)) {
        fprintf(stderr, "\n  broker %d exited during start, see %s\n", i, b->log);
        it_broker_print_tail(b->log);
        return false;
    }
    if (!it_broker_registered(&w) || !it_broker_port_open(b->port)) {
        fprintf(stderr, "\n  broker %d not up after %d ms (registered=%d port=%d), see %s\n", i,
                IT_BROKER_START_MS, it_broker_registered(&w), it_broker_port_open(b->port), b->log);
        it_broker_print_tail(b->log);
        return false;
    }
    return true;
}

bool it_cluster_start_brokers(it_cluster_t *c, int n, const char *const *sets)
{
    MQ_ASSERT(n <= IT_MAX_BROKERS);
    /* Ports first, so no broker's free port is taken by the next one's. */
    for (int i = 0; i < n; i++) {
        it_broker_prepare(c, i, sets);
    }
    for (int i = 0; i < n; i++) {
        if (!it_broker_start(c, i)) {
            return false;
        }
    }
    return true;
}

int it_broker_kill(it_cluster_t *c, int i, int sig)
{
    it_bookie_t *b = &c->brokers[i];
    if (b->pid <= 0) {
        return -1;
    }
    kill(b->pid, sig);
    if (sig == SIGSTOP || sig == SIGCONT) {
        return 0;
    }
    int st = it_wait_pid(b->pid, IT_BROKER_STOP_MS);
    if (st == -1) {
        fprintf(stderr, "\n  broker %d still running %d ms after signal %d: SIGKILL\n", i,
                IT_BROKER_STOP_MS, sig);
        kill(b->pid, SIGKILL);
        it_wait_pid(b->pid, 10000);
    }
    b->pid = 0;
    return st;
}

/* True for the characters a broker id can hold. */
static bool it_broker_id_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '-' || ch == '_' || ch == '.' || ch == ':' ||
           ch == '@' || ch == '%' || ch == '|';
}

/* The value of field key in text ("key=value", or JSON "key": "value"),
 * when key starts a word. */
static bool it_broker_field(const char *text, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strstr(p, key)) != NULL; p += kl) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) {
            continue;
        }
        const char *v = p + kl;
        if (*v == '"') {
            v++;
        }
        while (*v == ' ') {
            v++;
        }
        if (*v != '=' && *v != ':') {
            continue;
        }
        v++;
        while (*v == ' ' || *v == '"') {
            v++;
        }
        size_t n = 0;
        while (it_broker_id_char(v[n]) && n + 1 < cap) {
            n++;
        }
        if (n == 0) {
            continue;
        }
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* The broker id in a znode's data (see the file comment). */
static void it_broker_parse_id(const char *data, char *out, size_t cap)
{
    static const char *const keys[] = {"id", "brokerId", "brokerName", "owner"};
    out[0] = '\0';
    if (!data || cap == 0) {
        return;
    }
    for (size_t k = 0; k < MQ_ARRAY_LEN(keys); k++) {
        if (it_broker_field(data, keys[k], out, cap)) {
            return;
        }
    }
    const char *p = data;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n]) && p[n] != ',' && p[n] != ';' && n + 1 < cap) {
        n++;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

void it_broker_owner(it_cluster_t *c, const char *topic, int queue, char *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), IT_BROKER_ROOT "/ownership/%s/%d", topic, queue);
    char *data = NULL;
    if (cap > 0) {
        out[0] = '\0';
    }
    if (zk_get(c->zk, path, &data, NULL, NULL) != MQ_OK) {
        return;
    }
    it_broker_parse_id(data, out, cap);
    free(data);
}

bool it_broker_wait_owned(it_cluster_t *c, const char *topic, int nqueues, const char *owner_not,
                          unsigned timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    unsigned pause_ms = 5;
    for (;;) {
        int good = 0;
        for (int q = 0; q < nqueues; q++) {
            char owner[128];
            it_broker_owner(c, topic, q, owner, sizeof(owner));
            if (owner[0] && !(owner_not && strcmp(owner, owner_not) == 0)) {
                good++;
            }
        }
        if (good == nqueues) {
            return true;
        }
        if (mq_now_ms() > deadline) {
            fprintf(stderr, "\n  topic %s: %d of %d queues owned%s%s after %u ms\n", topic, good,
                    nqueues, owner_not ? " by others than " : "", owner_not ? owner_not : "",
                    timeout_ms);
            return false;
        }
        it_broker_sleep_ms(pause_ms);
        pause_ms = pause_ms < 50 ? pause_ms * 2 : pause_ms;
    }
}

/* The sequence number a sequential znode's name ends with (-1 if none). */
static long long it_broker_seq(const char *name)
{
    size_t n = strlen(name);
    size_t d = 0;
    while (d < n && isdigit((unsigned char)name[n - 1 - d])) {
        d++;
    }
    return d == 0 ? -1 : atoll(name + n - d);
}

/* The id in the lowest-sequence child of the leader lock dir into out;
 * false when there is none. */
static bool it_broker_leader(it_cluster_t *c, char *out, size_t cap)
{
    const char *dir = IT_BROKER_ROOT "/brokers/leader";
    char **names = NULL;
    size_t n = 0;
    if (zk_children(c->zk, dir, &names, &n) != MQ_OK) {
        return false;
    }
    long long best = -1;
    size_t first = n;
    for (size_t k = 0; k < n; k++) {
        long long s = it_broker_seq(names[k]);
        if (s >= 0 && (best < 0 || s < best)) {
            best = s;
            first = k;
        }
    }
    bool found = false;
    if (first < n) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[first]);
        char *data = NULL;
        /* The holder may go between the listing and the read: not found. */
        if (zk_get(c->zk, path, &data, NULL, NULL) == MQ_OK) {
            it_broker_parse_id(data, out, cap);
            found = out[0] != '\0';
            free(data);
        }
    }
    zk_strings_free(names, n);
    return found;
}

bool it_broker_wait_leader(it_cluster_t *c, char *out, size_t cap, unsigned timeout_ms)
{
    uint64_t deadline = mq_now_ms() + timeout_ms;
    unsigned pause_ms = 5;
    for (;;) {
        if (it_broker_leader(c, out, cap)) {
            return true;
        }
        if (mq_now_ms() > deadline) {
            if (cap > 0) {
                out[0] = '\0';
            }
            return false;
        }
        it_broker_sleep_ms(pause_ms);
        pause_ms = pause_ms < 50 ? pause_ms * 2 : pause_ms;
    }
}
