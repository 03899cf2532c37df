/*
 * Failover of a queue owner in the middle of consumption: real ZooKeeper,
 * 5 bookies, 2 brokers, a 4-queue FIFO topic and a FIFO consumer group.
 * mqbench produce sends 20k messages over 32 message groups (verify log);
 * mqbench consume (4 consumers, both brokers, paced at 2000 msg/s) starts
 * on them, and once 30% are received the broker owning the most queues is
 * killed with SIGKILL. The consumers carry on through the survivor, which
 * takes the queues over with their cursors. At the end every logged message
 * was received and acknowledged, each message group's in its stored order;
 * a message is delivered again only if its acknowledgement was never
 * confirmed (in flight at the kill: at most one receive batch per
 * consumer), never after a confirmed one.
 *
 * The second case makes a planned move instead: a third broker joins at
 * 30%, the leader hands it a queue, and the old owner closes the cursor
 * with its deliveries in flight (a handover snapshot). The consumers leave
 * 0.3% of the deliveries unacknowledged (5 s invisible time), so some are
 * in flight at the move. The new owner keeps them invisible and takes
 * the acks of the others (which the consumers still send to the old
 * owner, which forwards them): a message comes again only as a
 * redelivery (attempt 2 and up) of one left unacknowledged, and no ack
 * fails.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"
#include "mq_util.h"

#define TOPIC "failover_c"
#define GROUP "failover_g"
#define NQ 4
#define CONSUMERS 4
#define BATCH 16

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16;
    size_t len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

static void run_failover(bool join)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "consume_failover"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    /* The join case leaves a few messages unacknowledged on purpose, with a
     * short invisible time, so some are in flight whenever the queue
     * moves. */
    const char *sets[] = {"minInvisibleTimeMillsForRecv=1000", NULL};
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, join ? sets : NULL));
    CU_ASSERT_EQUAL_FATAL(
        it_cons_mqadmin(&c, "updateTopic -t " TOPIC " -w 4 -a +message.type=FIFO"), 0);
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateSubGroup -g " GROUP " -o true"), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 30000));

    static char out[65536];
    char cmd[4096];
    char vlog[PATH_MAX];
    char clog[PATH_MAX];
    snprintf(vlog, sizeof(vlog), "%s/failover.vlog", c.dir);
    snprintf(clog, sizeof(clog), "%s/consume.out", c.dir);
    snprintf(cmd, sizeof(cmd),
             "%s produce --endpoints '%s;%s' --topic " TOPIC
             " --producers 4 --rate 5000 --batch 8 --duration 4s --size 512 --groups 32 "
             "--timeout 30s " /* sanitizer builds fall behind; late is fine here */
             "--verify-log '%s' "
             "--quiet",
             it_bin("mqbench"), it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1), vlog);
    int st = it_run(cmd, out, sizeof(out), 60000);
    fprintf(stderr, "\n  produce (exit %d):\n%s", st, out);
    CU_ASSERT_EQUAL_FATAL(st, 0);
    long long total = -1;
    const char *v = strstr(out, "verify log: ");
    if (v) {
        total = strtoll(v + strlen("verify log: "), NULL, 10);
    }
    CU_ASSERT_FATAL(total > 10000);
    /* Without producer retries no message can be stored twice. */
    bool retried = strstr(out, "retries: 0 ") == NULL;

    /* The victim: the broker owning the most queues. */
    int owned[2] = {0, 0};
    for (int q = 0; q < NQ; q++) {
        char owner[64];
        it_broker_owner(&c, TOPIC, q, owner, sizeof(owner));
        owned[strcmp(owner, it_broker_id(&c, 1)) == 0]++;
    }
    int victim = owned[1] > owned[0] ? 1 : 0;
    fprintf(stderr, "  queues owned: broker-0 %d, broker-1 %d; victim broker-%d\n", owned[0],
            owned[1], victim);

    snprintf(cmd, sizeof(cmd),
             "exec %s consume --endpoints '%s;%s' --topic " TOPIC " --group " GROUP
             " --consumers %d --batch %d --rate 2000 %s --poll 2s "
             "--verify-log '%s' --fifo --idle 30s",
             it_bin("mqbench"), it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1), CONSUMERS,
             BATCH, join ? "--invisible 5000 --ack-fail-rate 0.003" : "--invisible 30000", vlog);
    pid_t pid = it_spawn(cmd, clog);
    CU_ASSERT_FATAL(pid > 0);
    uint64_t deadline = mq_now_ms() + 30000;
    long long seen = -1;
    while ((seen = it_cons_progress(clog)) < total * 3 / 10 && mq_now_ms() < deadline) {
        sleep_ms(50);
    }
    CU_ASSERT_FATAL(seen >= total * 3 / 10);
    CU_ASSERT(seen < total);
    if (join) {
        fprintf(stderr, "  %lld of %lld received: broker-2 joins\n", seen, total);
        it_broker_prepare(&c, 2, sets);
        CU_ASSERT_FATAL(it_broker_start(&c, 2));
        bool moved = false;
        deadline = mq_now_ms() + 30000;
        while (!moved && mq_now_ms() < deadline) {
            for (int q = 0; q < NQ && !moved; q++) {
                char owner[64];
                it_broker_owner(&c, TOPIC, q, owner, sizeof(owner));
                moved = strcmp(owner, it_broker_id(&c, 2)) == 0;
            }
            sleep_ms(20);
        }
        CU_ASSERT(moved);
        fprintf(stderr, "  %lld received when broker-2 took a queue\n", it_cons_progress(clog));
    } else {
        fprintf(stderr, "  %lld of %lld received: kill -9 broker-%d\n", seen, total, victim);
        it_broker_kill(&c, victim, SIGKILL);
        CU_ASSERT(it_broker_wait_owned(&c, TOPIC, NQ, it_broker_id(&c, victim), 30000));
    }

    st = it_wait_pid(pid, 120000);
    if (st == -1) {
        kill(pid, SIGKILL);
        it_wait_pid(pid, 5000);
    }
    char *report = read_all(clog);
    CU_ASSERT_PTR_NOT_NULL_FATAL(report);
    const char *tail = strstr(report, "mqbench consume:");
    fprintf(stderr, "  consume (exit %d):\n%s", st, tail ? tail : report);
    CU_ASSERT_EQUAL(st, 0);
    it_cons_report_t r;
    it_cons_report_parse(tail ? tail : report, &r);
    CU_ASSERT_EQUAL(r.log_total, total);
    /* An ack in flight at the kill may be recorded without an answer. */
    CU_ASSERT_EQUAL(r.log_acked + r.log_unanswered, total);
    CU_ASSERT(r.log_unanswered <= CONSUMERS * BATCH);
    CU_ASSERT_EQUAL(r.unacked, 0);
    CU_ASSERT_EQUAL(r.missing, 0);
    CU_ASSERT_EQUAL(r.corrupt, 0);
    CU_ASSERT_EQUAL(r.malformed, 0);
    CU_ASSERT_EQUAL(r.dups_after_ack, 0);
    CU_ASSERT_EQUAL(r.dups_noack, join ? r.dups : 0);
    CU_ASSERT_EQUAL(r.out_of_order, 0);
    CU_ASSERT_EQUAL(r.unexpected, 0);
    CU_ASSERT(retried || r.stored_twice == 0);
    CU_ASSERT(r.dups_unconfirmed >= 0 && r.dups_unconfirmed <= CONSUMERS * BATCH * 2);
    if (join) {
        /* Only what was left unacknowledged on purpose comes again, each
         * time as a redelivery (attempt 2 and up): a message in flight at
         * the move is not handed out anew by the next owner. */
        CU_ASSERT_EQUAL(r.log_unanswered, 0);
        CU_ASSERT(r.dups > 0);
        CU_ASSERT_EQUAL(r.dups_attempt1, 0);
        CU_ASSERT_EQUAL(r.dups_unconfirmed, 0);
        CU_ASSERT_EQUAL(r.ack_failures, 0);
    }
    free(report);
    it_cluster_fini(&c);
}

static void test_failover(void)
{
    run_failover(false);
}

static void test_join(void)
{
    run_failover(true);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"kill -9 the queues' owner mid-consumption", test_failover},
        {"a broker joins mid-consumption: a queue moves, nothing twice", test_join},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("consume failover", tests, NULL, NULL);
}
