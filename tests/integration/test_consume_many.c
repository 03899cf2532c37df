/*
 * Many consumers in one group: real ZooKeeper, 5 bookies, 2 brokers, an
 * 8-queue topic. mqbench produce sends 15k messages (verify log), then
 * mqbench consume runs 50 simple consumers of one group (each polling both
 * brokers, 4 messages per receive, 60 s invisible time) until every logged
 * message is acknowledged: none is missing, none corrupt, and none is
 * delivered twice (a second delivery inside the run would be one inside
 * its invisible time: two consumers holding it at once).
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "it_broker.h"
#include "it_consume.h"
#include "mq_test.h"

#define TOPIC "many_t"
#define GROUP "many_g"
#define NQ 8

static void test_many(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "consume_many"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    CU_ASSERT_EQUAL_FATAL(it_cons_mqadmin(&c, "updateTopic -t " TOPIC " -w 8"), 0);
    CU_ASSERT_FATAL(it_broker_wait_owned(&c, TOPIC, NQ, NULL, 30000));

    static char out[65536];
    char cmd[4096];
    char vlog[PATH_MAX];
    snprintf(vlog, sizeof(vlog), "%s/many.vlog", c.dir);
    snprintf(cmd, sizeof(cmd),
             "%s produce --endpoints '%s;%s' --topic " TOPIC
             " --producers 4 --rate 5000 --batch 8 --duration 3s --size 256 --verify-log '%s' "
             "--quiet",
             it_bin("mqbench"), it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1), vlog);
    int st = it_run(cmd, out, sizeof(out), 60000);
    fprintf(stderr, "\n  produce (exit %d):\n%s", st, out);
    CU_ASSERT_EQUAL_FATAL(st, 0);

    snprintf(cmd, sizeof(cmd),
             "%s consume --endpoints '%s;%s' --topic " TOPIC " --group " GROUP
             " --consumers 50 --batch 4 --invisible 60000 --poll 2s --verify-log '%s' "
             "--idle 20s --quiet",
             it_bin("mqbench"), it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1), vlog);
    st = it_run(cmd, out, sizeof(out), 120000);
    fprintf(stderr, "  consume (exit %d):\n%s", st, out);
    CU_ASSERT_EQUAL(st, 0);
    it_cons_report_t r;
    it_cons_report_parse(out, &r);
    CU_ASSERT(r.log_total >= 15000 - 100);
    CU_ASSERT_EQUAL(r.log_acked, r.log_total);
    CU_ASSERT_EQUAL(r.log_unanswered, 0);
    CU_ASSERT_EQUAL(r.missing, 0);
    CU_ASSERT_EQUAL(r.dups, 0);
    CU_ASSERT_EQUAL(r.redelivered, 0);
    CU_ASSERT_EQUAL(r.corrupt, 0);
    CU_ASSERT_EQUAL(r.malformed, 0);
    CU_ASSERT_EQUAL(r.ack_failures, 0);
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"50 consumers, one group, 8 queues: each message once", test_many},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("consume many", tests, NULL, NULL);
}
