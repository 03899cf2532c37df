/*
 * Consumption by the official Apache RocketMQ 5 Go client (rocketmq-clients
 * golang/v5, pinned in tests/compat/go.mod): real ZooKeeper, 5 bookies, 2
 * brokers (minimum invisible time 1 s and long polling at most 5 s, so
 * redeliveries and the push consumer's shutdown are quick).
 *
 * tests/compat/producer sends 10k normal messages (tag, keys, a user
 * property) and 1k FIFO messages over 10 message groups, and 5 normal
 * messages to a third topic. Then, concurrently:
 *  - tests/compat/simpleconsumer receives and acknowledges the 10k: body,
 *    tag, keys and property as sent, each exactly once, except 5 left
 *    unacknowledged once, which come back with delivery attempt 2 no
 *    earlier than their invisible time (5 s);
 *  - the same program in a FIFO group (mqadmin updateSubGroup -o true)
 *    receives the 1k FIFO messages, each group's in the order sent;
 *  - in a group with retryMaxTimes 1 (-r 1) it never acknowledges the 5
 *    messages of the third topic: each is delivered twice, never a third
 *    time (the broker moves it to %DLQ%<group>);
 *  - tests/compat/pushconsumer consumes the 10k normal messages in another
 *    group to the end, failing the first delivery of 3 (nack through
 *    ChangeInvisibleDuration), which come back with attempt 2.
 * Then the simple consumer reads the 5 dead letters from %DLQ%<group>
 * (bodies as sent), and our C client checks their dead_letter_queue
 * property (original topic and message id).
 *
 * Passes with a SKIP line when no Go toolchain is found; the first run
 * downloads the module's dependencies through the Go module proxy.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"
#include "mq_util.h"

#define NORMAL_TOPIC "gocons_normal"
#define FIFO_TOPIC "gocons_fifo"
#define DLQ_SRC_TOPIC "gocons_dlq_src"
#define DLQ_GROUP "gocons_dlq"
#define DLQ_TOPIC "%DLQ%" DLQ_GROUP
#define NNORMAL 10000
#define NFIFO 1000
#define NGROUPS 10
#define NDLQ 5
#define RUN_MS 150000

typedef struct go_run {
    const char *name;
    char cmd[2048];
    char log[PATH_MAX];
    pid_t pid;
    int status;
    char *out;
} go_run_t;

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return mq_strdup("");
    }
    size_t cap = 1 << 16;
    size_t len = 0;
    char *buf = mq_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 1024) {
            cap *= 2;
            buf = mq_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void go_start(go_run_t *r, it_cluster_t *c)
{
    snprintf(r->log, sizeof(r->log), "%s/%s.out", c->dir, r->name);
    r->pid = it_spawn(r->cmd, r->log);
    CU_ASSERT(r->pid > 0);
}

static void go_wait(go_run_t *r)
{
    r->status = it_wait_pid(r->pid, RUN_MS);
    if (r->status == -1) {
        kill(r->pid, SIGKILL);
        it_wait_pid(r->pid, 5000);
    }
    r->out = read_all(r->log);
    fprintf(stderr, "\n  %s (exit %d):\n%s", r->name, r->status, r->out);
}

/* True when out has the key=value pair (as a whole word). */
static bool has_kv(const char *out, const char *kv)
{
    size_t n = strlen(kv);
    for (const char *p = strstr(out, kv); p; p = strstr(p + 1, kv)) {
        if ((p == out || p[-1] == ' ' || p[-1] == '\n') && (p[n] == ' ' || p[n] == '\n' || !p[n])) {
            return true;
        }
    }
    return false;
}

/* Our client reads the dead letters: each carries dead_letter_queue with
 * the original topic and its own message id. */
static void check_dlq_property(it_cluster_t *c)
{
    int found = 0;
    uint64_t deadline = mq_now_ms() + 30000;
    for (int b = 0; found < NDLQ && mq_now_ms() < deadline; b = 1 - b) {
        it_cons_t k;
        CU_ASSERT_FATAL(it_cons_open(&k, it_broker_endpoint(c, b)));
        mqc_recv_result_t res;
        it_cons_receive(&k, "gocons_dlq_c", DLQ_TOPIC, 16, 30000, 1000, 5000, &res);
        for (size_t i = 0; i < res.n; i++) {
            const mqc_delivery_t *d = &res.msgs[i]->d;
            fprintf(stderr, "  dead letter %s: topic %s, dead_letter_queue {%s, %s}, attempt %d\n",
                    d->message_id, d->topic, d->dlq_topic, d->dlq_message_id, d->attempt);
            CU_ASSERT_STRING_EQUAL(d->dlq_topic, DLQ_SRC_TOPIC);
            CU_ASSERT_STRING_EQUAL(d->dlq_message_id, d->message_id);
            CU_ASSERT_STRING_EQUAL(d->topic, DLQ_TOPIC);
            CU_ASSERT(mqc_delivery_digest_ok(d));
            CU_ASSERT_EQUAL(
                it_cons_ack(&k, "gocons_dlq_c", DLQ_TOPIC, d->message_id, d->receipt_handle),
                apache_rocketmq_v2_Code_OK);
            found++;
        }
        mqc_recv_result_fini(&res);
        it_cons_close(&k);
    }
    CU_ASSERT_EQUAL(found, NDLQ);
}

static void test_go_consume(void)
{
    const char *go = it_cons_find_go();
    if (!go) {
        fprintf(stderr, "\n  SKIP: no Go toolchain (go in PATH or /usr/local/go/bin/go)\n");
        return;
    }
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "compat_go_consume"));
    CU_ASSERT_FATAL(it_cons_go_build(go, "./producer ./simpleconsumer ./pushconsumer", c.dir));
    char logdir[PATH_MAX];
    snprintf(logdir, sizeof(logdir), "%s/goclient", c.dir);

    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    /* No load shedding (overloadFactor): the producer's burst could make
     * the leader move queues back and forth while the consumers run (a
     * broker over 1 000 msgs/s and 1.5 times the average sheds, and gets
     * them back when its minute of grace ends). The consumers then carry
     * on, but a simple consumer that asks a drained queue for its turn
     * waits out its whole long poll while the other broker holds the
     * rest: ~20 msgs/s, past the timeout. Rebalancing has its own tests. */
    const char *sets[] = {"minInvisibleTimeMillsForRecv=1000",
                          "grpcClientConsumerMaxLongPollingTimeoutMillis=5000",
                          "overloadFactor=100", NULL};
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, sets));
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " NORMAL_TOPIC " -w 4"), 0);
    CU_ASSERT_EQUAL_FATAL(
        it_cons_mqadmin(&c, "updateTopic -t " FIFO_TOPIC " -w 4 -a +message.type=FIFO"), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " DLQ_SRC_TOPIC " -w 2"), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateSubGroup -g gocons_fifo -o true"), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateSubGroup -g " DLQ_GROUP " -r 1"), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, NORMAL_TOPIC, 4, NULL, 30000));
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, FIFO_TOPIC, 4, NULL, 30000));
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, DLQ_SRC_TOPIC, 2, NULL, 30000));
    const char *ep = it_broker_endpoint(&c, 0);

    go_run_t prod = {.name = "producer"};
    snprintf(prod.cmd, sizeof(prod.cmd),
             "'%s/producer' -endpoint %s -topic " NORMAL_TOPIC " -fifo-topic " FIFO_TOPIC
             " -normal %d -fifo %d -groups %d -timeout 120s -log-dir '%s'",
             c.dir, ep, NNORMAL, NFIFO, NGROUPS, logdir);
    go_start(&prod, &c);
    go_wait(&prod);
    CU_ASSERT_EQUAL_FATAL(prod.status, 0);
    go_run_t prod2 = {.name = "producer-dlq"};
    snprintf(prod2.cmd, sizeof(prod2.cmd),
             "'%s/producer' -endpoint %s -topic " DLQ_SRC_TOPIC " -fifo-topic " DLQ_SRC_TOPIC
             " -normal %d -fifo 0 -timeout 60s -log-dir '%s'",
             c.dir, ep, NDLQ, logdir);
    go_start(&prod2, &c);
    go_wait(&prod2);
    CU_ASSERT_EQUAL_FATAL(prod2.status, 0);

    go_run_t simple = {.name = "simpleconsumer-normal"};
    snprintf(simple.cmd, sizeof(simple.cmd),
             "'%s/simpleconsumer' -endpoint %s -topic " NORMAL_TOPIC
             " -group gocons_simple -expect %d -noack 5 -invisible 5s -batch 8 -await 1s "
             "-timeout 140s "
             "-log-dir '%s'",
             c.dir, ep, NNORMAL, logdir);
    go_run_t fifo = {.name = "simpleconsumer-fifo"};
    snprintf(fifo.cmd, sizeof(fifo.cmd),
             "'%s/simpleconsumer' -endpoint %s -topic " FIFO_TOPIC
             " -group gocons_fifo -validate fifo -groups %d -expect %d -invisible 10s "
             "-timeout 140s -log-dir '%s'",
             c.dir, ep, NGROUPS, NFIFO, logdir);
    go_run_t dlq = {.name = "simpleconsumer-never-ack"};
    snprintf(dlq.cmd, sizeof(dlq.cmd),
             "'%s/simpleconsumer' -endpoint %s -topic " DLQ_SRC_TOPIC " -group " DLQ_GROUP
             " -never-ack -expect %d -attempts 2 -invisible 1s -linger 5s -timeout 140s "
             "-log-dir '%s'",
             c.dir, ep, NDLQ, logdir);
    go_run_t push = {.name = "pushconsumer"};
    snprintf(push.cmd, sizeof(push.cmd),
             "'%s/pushconsumer' -endpoint %s -topic " NORMAL_TOPIC
             " -group gocons_push -expect %d -fail 3 -timeout 140s -log-dir '%s'",
             c.dir, ep, NNORMAL, logdir);
    go_run_t *runs[] = {&simple, &fifo, &dlq, &push};
    for (size_t i = 0; i < MQ_ARRAY_LEN(runs); i++) {
        go_start(runs[i], &c);
    }
    for (size_t i = 0; i < MQ_ARRAY_LEN(runs); i++) {
        go_wait(runs[i]);
    }

    char kv[64];
    CU_ASSERT_EQUAL(simple.status, 0);
    snprintf(kv, sizeof(kv), "distinct=%d", NNORMAL);
    CU_ASSERT(has_kv(simple.out, kv));
    CU_ASSERT(has_kv(simple.out, "bad=0"));
    CU_ASSERT(has_kv(simple.out, "dups=0"));
    CU_ASSERT(has_kv(simple.out, "redelivered=5"));
    CU_ASSERT(has_kv(simple.out, "early=0"));
    CU_ASSERT(has_kv(simple.out, "max_attempt=2"));

    CU_ASSERT_EQUAL(fifo.status, 0);
    snprintf(kv, sizeof(kv), "distinct=%d", NFIFO);
    CU_ASSERT(has_kv(fifo.out, kv));
    CU_ASSERT(has_kv(fifo.out, "bad=0"));
    CU_ASSERT(has_kv(fifo.out, "out_of_order=0"));

    CU_ASSERT_EQUAL(dlq.status, 0);
    CU_ASSERT(has_kv(dlq.out, "max_attempt=2"));
    CU_ASSERT(has_kv(dlq.out, "max_deliveries=2"));

    CU_ASSERT_EQUAL(push.status, 0);
    snprintf(kv, sizeof(kv), "consumed=%d", NNORMAL);
    CU_ASSERT(has_kv(push.out, kv));
    CU_ASSERT(has_kv(push.out, "bad=0"));
    CU_ASSERT(has_kv(push.out, "failed_back=3"));

    /* The dead letters, through the Go client and ours. */
    CU_ASSERT(it_zk_wait_exists(&c, "/ledgermq/topics/" DLQ_TOPIC, true, 30000));
    go_run_t reader = {.name = "simpleconsumer-dlq"};
    snprintf(reader.cmd, sizeof(reader.cmd),
             "'%s/simpleconsumer' -endpoint %s -topic '%s' -group gocons_dlq_reader -expect %d "
             "-invisible 10s -timeout 60s -log-dir '%s'",
             c.dir, ep, DLQ_TOPIC, NDLQ, logdir);
    go_start(&reader, &c);
    go_wait(&reader);
    CU_ASSERT_EQUAL(reader.status, 0);
    snprintf(kv, sizeof(kv), "distinct=%d", NDLQ);
    CU_ASSERT(has_kv(reader.out, kv));
    CU_ASSERT(has_kv(reader.out, "bad=0"));
    check_dlq_property(&c);

    go_run_t *all[] = {&prod, &prod2, &simple, &fifo, &dlq, &push, &reader};
    for (size_t i = 0; i < MQ_ARRAY_LEN(all); i++) {
        free(all[i]->out);
    }
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"official Go client: simple and push consumers, FIFO, redelivery, DLQ", test_go_consume},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("compat go consume", tests, NULL, NULL);
}
