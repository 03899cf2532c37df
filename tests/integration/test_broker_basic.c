/*
 * mqbroker's life cycle, and the proof that the broker harness works: real
 * ZooKeeper, 5 bookies and 2 brokers. Both register and one holds the leader
 * lock; SIGTERM stops a broker with exit 0 and removes its registration at
 * once, and the other broker leads; a restart registers again, and so does a
 * restart after kill -9 (once the dead session is gone). `--help-config`
 * lists the keys, and a bad config file stops startup with "file:line".
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "it_broker.h"
#include "mq_fs.h"
#include "mq_test.h"

static void reg_path(it_cluster_t *c, int i, char *out, size_t cap)
{
    snprintf(out, cap, "/ledgermq/brokers/available/%s", it_broker_id(c, i));
}

static bool is_broker(it_cluster_t *c, const char *id)
{
    for (int i = 0; i < c->nbrokers; i++) {
        if (strcmp(id, it_broker_id(c, i)) == 0) {
            return true;
        }
    }
    return false;
}

/* Runs mqbroker on a config file holding text; returns the exit status and
 * the output in out. */
static int run_conf(const char *dir, const char *name, const char *text, char *out, size_t cap)
{
    char path[PATH_MAX], cmd[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s -c %s", it_bin("mqbroker"), path);
    return it_run(cmd, out, cap, 20000);
}

static void test_config(void)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", mq_test_tmpdir("broker_basic_conf"));
    static char out[65536];
    char cmd[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "%s --help-config", it_bin("mqbroker"));
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 10000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "grpcServerPort"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "brokerClusterName"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "zkServers"));

    /* An unknown key on line 3. */
    int st =
        run_conf(dir, "bad-key.conf", "# a broker config with a typo\nbrokerName=b\nbrokerNmae=x\n",
                 out, sizeof(out));
    CU_ASSERT(st > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad-key.conf:3"));
    if (st <= 0 || !strstr(out, "bad-key.conf:3")) {
        fprintf(stderr, "\n  unknown key: exit %d, output: %s\n", st, out);
    }
    /* A value out of range on line 2. */
    st = run_conf(dir, "bad-value.conf", "brokerName=b\ngrpcServerPort=70000\n", out, sizeof(out));
    CU_ASSERT(st > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad-value.conf:2"));
    if (st <= 0 || !strstr(out, "bad-value.conf:2")) {
        fprintf(stderr, "\n  out of range: exit %d, output: %s\n", st, out);
    }
    mq_fs_remove_tree(dir);
}

static void test_register_lead_stop_restart(void)
{
    it_cluster_t c;
    CU_ASSERT_FATAL(it_cluster_init(&c, "broker_basic"));
    CU_ASSERT_FATAL(it_cluster_start_bookies(&c, 5, NULL));
    CU_ASSERT_FATAL(it_cluster_start_brokers(&c, 2, NULL));
    char reg[2][256];
    for (int i = 0; i < 2; i++) {
        reg_path(&c, i, reg[i], sizeof(reg[i]));
        CU_ASSERT(it_zk_wait_exists(&c, reg[i], true, 1000));
        CU_ASSERT(it_broker_alive(&c, i));
    }
    CU_ASSERT_STRING_EQUAL(it_broker_id(&c, 1), "broker-1");
    CU_ASSERT_NOT_EQUAL(strcmp(it_broker_endpoint(&c, 0), it_broker_endpoint(&c, 1)), 0);

    char leader[64];
    CU_ASSERT_FATAL(it_broker_wait_leader(&c, leader, sizeof(leader), 15000));
    CU_ASSERT(is_broker(&c, leader));
    fprintf(stderr, "\n  leader: %s\n", leader);

    /* A clean stop of the leader: exit 0, deregistered at once (not after a
     * session timeout), and the other broker takes the lead. */
    int li = strcmp(leader, it_broker_id(&c, 0)) == 0 ? 0 : 1;
    int other = 1 - li;
    CU_ASSERT_EQUAL(it_broker_kill(&c, li, SIGTERM), 0);
    CU_ASSERT(!it_broker_alive(&c, li));
    CU_ASSERT(it_zk_wait_exists(&c, reg[li], false, 1500));
    char now[64] = "";
    for (int round = 0; round < 30 && strcmp(now, it_broker_id(&c, other)) != 0; round++) {
        it_broker_wait_leader(&c, now, sizeof(now), 500);
    }
    CU_ASSERT_STRING_EQUAL(now, it_broker_id(&c, other));

    /* It comes back on the same config and port. */
    CU_ASSERT_FATAL(it_broker_start(&c, li));
    CU_ASSERT(it_zk_wait_exists(&c, reg[li], true, 1000));

    /* kill -9: the registration stays until the session expires; a restart
     * registers anew once it has. */
    CU_ASSERT_EQUAL(it_broker_kill(&c, other, SIGKILL), 128 + SIGKILL);
    CU_ASSERT(!it_broker_alive(&c, other));
    CU_ASSERT_FATAL(it_broker_start(&c, other));
    CU_ASSERT(it_broker_alive(&c, other));
    CU_ASSERT(it_broker_wait_leader(&c, now, sizeof(now), 15000));
    CU_ASSERT(is_broker(&c, now));

    /* SIGSTOP / SIGCONT return at once and leave it running. */
    CU_ASSERT_EQUAL(it_broker_kill(&c, other, SIGSTOP), 0);
    CU_ASSERT(it_broker_alive(&c, other));
    CU_ASSERT_EQUAL(it_broker_kill(&c, other, SIGCONT), 0);
    CU_ASSERT(it_broker_alive(&c, other));

    CU_ASSERT_EQUAL(c.brokers[li].starts, 2);
    CU_ASSERT_EQUAL(c.brokers[other].starts, 2);
    it_cluster_fini(&c); /* SIGTERM both: exit 0, clean logs */
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"--help-config and config errors", test_config},
        {"register, lead, stop, restart", test_register_lead_stop_restart},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker basic", tests, NULL, NULL);
}
