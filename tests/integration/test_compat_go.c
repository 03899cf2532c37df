/*
 * Compatibility with the official Apache RocketMQ 5 Go client
 * (rocketmq-clients golang/v5, pinned in tests/compat/go.mod): real
 * ZooKeeper, 5 bookies, 2 brokers. tests/compat/producer is built with the
 * Go toolchain and sends 1000 normal messages (tag, keys, a user property)
 * to an auto-created topic and 1000 FIFO messages over 16 message groups to
 * a FIFO topic made with mqadmin, through broker 0's endpoint; every send
 * must return a receipt with a message id, and the queues then hold exactly
 * that many messages (mqadmin topicStatus). The client follows the routes to
 * both brokers (Telemetry, Heartbeat and sends go to each queue's owner).
 *
 * Passes with a SKIP line when no Go toolchain is installed (PATH, then
 * /usr/local/go/bin/go). The module cache and build cache are the usual
 * ones (~/go, ~/.cache/go-build): the first run downloads the module's
 * dependencies through the Go module proxy.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"
#include "mq_test.h"

#define NORMAL_TOPIC "compat_go_normal"
#define FIFO_TOPIC "compat_go_fifo"
#define NQ 4
#define NMSG 1000
#define NGROUPS 16

/* The go command, or NULL when there is none. */
static const char *find_go(void)
{
    static char path[PATH_MAX];
    char out[PATH_MAX];
    if (it_run("command -v go", out, sizeof(out), 10000) == 0) {
        out[strcspn(out, "\r\n")] = '\0';
        if (out[0] == '/' && access(out, X_OK) == 0) {
            snprintf(path, sizeof(path), "%s", out);
            return path;
        }
    }
    const char *goroot = getenv("GOROOT");
    if (goroot && *goroot) {
        snprintf(path, sizeof(path), "%s/bin/go", goroot);
        if (access(path, X_OK) == 0) {
            return path;
        }
    }
    snprintf(path, sizeof(path), "/usr/local/go/bin/go");
    return access(path, X_OK) == 0 ? path : NULL;
}

/* The messages stored in topic: the sum over its queues of max - min
 * offset, from mqadmin topicStatus (-1 when that fails). */
static long long stored(it_cluster_t *c, const char *topic)
{
    static char out[16384];
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "%s -n %s topicStatus -t %s", it_bin("mqadmin"),
             it_broker_endpoint(c, 1), topic);
    int st = it_run(cmd, out, sizeof(out), 30000);
    fprintf(stderr, "\n  topicStatus %s (exit %d):\n%s", topic, st, out);
    if (st != 0) {
        return -1;
    }
    long long sum = 0;
    int queues = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char owner[128];
        int qid;
        long long min, max;
        if (line[0] != '#' && sscanf(line, "%127s %d %lld %lld", owner, &qid, &min, &max) == 4) {
            sum += max - min;
            queues++;
        }
    }
    return queues == NQ ? sum : -1;
}

/* Builds tests/compat/producer into bin. -mod=readonly: go.mod and go.sum
 * are taken as committed, never rewritten by a test run. */
static bool build_producer(const char *go, const char *bin)
{
    static char out[65536];
    char cmd[PATH_MAX * 4];
    /* Without HOME the go command has no default caches. */
    const char *caches = getenv("HOME") && *getenv("HOME")
                             ? ""
                             : "GOPATH=/tmp/ledgermq-gopath GOCACHE=/tmp/ledgermq-gocache ";
    snprintf(cmd, sizeof(cmd),
             "cd '%s/tests/compat' && %sGOFLAGS='-mod=readonly -buildvcs=false' '%s' build -o "
             "'%s' ./producer",
             mq_test_source_dir(), caches, go, bin);
    int st = it_run(cmd, out, sizeof(out), 900000);
    if (st != 0) {
        fprintf(stderr, "\n  go build failed (exit %d):\n%s\n", st, out);
        return false;
    }
    return true;
}

static void test_go_producer(void)
{
    const char *go = find_go();
    if (!go) {
        fprintf(stderr, "\n  SKIP: no Go toolchain (go in PATH or /usr/local/go/bin/go)\n");
        return;
    }
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "compat_go"));
    char bin[PATH_MAX], logdir[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/producer", c.dir);
    snprintf(logdir, sizeof(logdir), "%s/goclient", c.dir);
    CU_ASSERT_FATAL(build_producer(go, bin));

    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));

    /* Auto-created topics are NORMAL: the FIFO topic is made first. */
    static char out[65536];
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof(cmd), "%s -n %s updateTopic -t %s -w %d -a +message.type=FIFO",
             it_bin("mqadmin"), it_broker_endpoint(&c, 0), FIFO_TOPIC, NQ);
    int st = it_run(cmd, out, sizeof(out), 30000);
    if (st != 0) {
        fprintf(stderr, "\n  mqadmin updateTopic: exit %d\n%s\n", st, out);
    }
    CU_ASSERT_EQUAL_FATAL(st, 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, FIFO_TOPIC, NQ, NULL, 30000));

    snprintf(cmd, sizeof(cmd),
             "'%s' -endpoint %s -topic " NORMAL_TOPIC " -fifo-topic " FIFO_TOPIC
             " -normal %d -fifo %d -groups %d -timeout 270s -log-dir '%s'",
             bin, it_broker_endpoint(&c, 0), NMSG, NMSG, NGROUPS, logdir);
    st = it_run(cmd, out, sizeof(out), 300000);
    fprintf(stderr, "\n  producer exit %d:\n%s", st, out);
    CU_ASSERT_EQUAL(st, 0);
    char want[64];
    snprintf(want, sizeof(want), "normal_ok=%d fifo_ok=%d", NMSG, NMSG);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));

    /* The normal topic came from the client's first route query. */
    CU_ASSERT(it_zk_wait_exists(&c, "/ledgermq/topics/" NORMAL_TOPIC, true, 1000));
    /* What was acknowledged is in the queues, asked of the other broker. */
    CU_ASSERT_EQUAL(stored(&c, NORMAL_TOPIC), NMSG);
    CU_ASSERT_EQUAL(stored(&c, FIFO_TOPIC), NMSG);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"official Go client: normal and FIFO sends", test_go_producer},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("compat go", tests, NULL, NULL);
}
