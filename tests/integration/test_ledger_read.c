/*
 * Ledger reads with real bookies:
 *  - a tailing reader follows an open ledger by polling ReadLac and reads
 *    every entry up to it while the writer goes on;
 *  - a replica whose stored copy was corrupted on disk is skipped (the
 *    bookie answers CORRUPT, the client reads another replica);
 *  - with one replica hung (SIGSTOP), reads still answer through the
 *    speculative read of the next replica, long before the read timeout;
 *  - delete removes the metadata, and ids are never reused;
 *  - mqbench ledger writes, verifies, recovers and shows.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_client.h"
#include "it_cluster.h"
#include "it_ledger.h"
#include "meta_store.h"
#include "mq_test.h"
#include "mq_util.h"

static it_cluster_t c;

static int suite_init(void)
{
    if (!it_cluster_init(&c, "lread") || !it_cluster_start_bookies(&c, 5, NULL)) {
        return 1;
    }
    return 0;
}

static void test_tailing_reader(void)
{
    lc_client_t *cl = it_lc_client(&c, 5, 3, 2);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    it_writer_t w;
    it_writer_start(&w, lh, 20000, 64, 16);
    lc_ledger_t *rd;
    IT_EXPECT(lc_ledger_open(cl, lc_ledger_id(lh), &rd), MQ_OK);
    CU_ASSERT_FALSE(lc_ledger_closed(rd));
    /* Poll the LAC and read up to it, until the reader has seen 19 000
     * entries of the open ledger (the last one's LAC lags by design). */
    int64_t seen = -1;
    int64_t bad = 0;
    uint8_t want[64];
    uint64_t deadline = mq_now_ms() + 120000;
    while (seen < 19000 && mq_now_ms() < deadline) {
        int64_t lac = -1;
        IT_EXPECT(lc_ledger_read_lac(rd, &lac), MQ_OK);
        CU_ASSERT_TRUE(lac >= seen);
        for (int64_t e = seen + 1; e <= lac; e++) {
            mq_slice_t p;
            mq_err_t err = lc_ledger_read(rd, e, &p);
            if (err != MQ_OK) {
                bad++;
                continue;
            }
            it_lc_payload(lc_ledger_id(lh), e, want, sizeof(want));
            bad += p.len != sizeof(want) || memcmp(p.ptr, want, sizeof(want)) != 0;
            mq_slice_release(&p);
        }
        seen = lac;
    }
    CU_ASSERT_TRUE(seen >= 19000);
    CU_ASSERT_EQUAL(bad, 0);
    /* Above the LAC nothing is handed out. */
    mq_slice_t p;
    IT_EXPECT(lc_ledger_read(rd, lc_ledger_lac(rd) + 1, &p), MQ_ENOENTRY);
    CU_ASSERT_TRUE(it_writer_wait_done(&w, 60000));
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    it_writer_fini(&w);
    lc_client_free(cl);
}

/* Flips a byte inside every entry-log record of the bookie's ledger dir. */
static int corrupt_entry_logs(const char *bookie_dir)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/ledgers/current", bookie_dir);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".log") != 0) {
            continue;
        }
        char path[8400];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        int fd = open(path, O_RDWR);
        off_t size = lseek(fd, 0, SEEK_END);
        /* Records start after the 4 KiB header; flip one byte every 97. */
        for (off_t off = 4096 + 60; off < size; off += 97) {
            uint8_t b;
            if (pread(fd, &b, 1, off) == 1) {
                b ^= 0x5a;
                n += pwrite(fd, &b, 1, off) == 1;
            }
        }
        close(fd);
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_corrupt_replica_skipped(void)
{
    lc_client_t *cl = it_lc_client(&c, 5, 3, 2);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    for (int64_t e = 0; e < 300; e++) {
        uint8_t p[500];
        it_lc_payload(lc_ledger_id(lh), e, p, sizeof(p));
        IT_EXPECT(lc_ledger_add(lh, p, sizeof(p), NULL), MQ_OK);
    }
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    meta_ledger_t md;
    lc_ledger_metadata(lh, &md);
    int b = it_bookie_index(&c, md.segments[0].bookies[0]);
    meta_ledger_fini(&md);
    /* A clean stop checkpoints everything to the entry logs; then the disk
     * goes bad under the bookie. */
    CU_ASSERT_EQUAL(it_bookie_kill(&c, b, SIGTERM), 0);
    CU_ASSERT_TRUE(corrupt_entry_logs(c.bookies[b].dir) > 0);
    CU_ASSERT_FATAL(it_bookie_start(&c, b));
    it_cluster_allow_error(&c, "entry log record is corrupt");
    it_cluster_allow_error(&c, "stored entry is corrupt");
    /* The bookie itself refuses to serve its bad copies... */
    it_client_t bc;
    it_client_open(&bc, it_bookie_addr(&c, b));
    CU_ASSERT_TRUE(it_client_wait_ready(&bc));
    lc_bk_sync_result_t r;
    IT_EXPECT(lc_bookie_read_sync(bc.bk, lc_ledger_id(lh), 0, 0, NULL, 0, 5000, &r), MQ_ECORRUPT);
    lc_bk_sync_result_fini(&r);
    it_client_close(&bc);
    /* ...and every entry still reads back through the other replicas. */
    lc_ledger_t *rd;
    IT_EXPECT(lc_ledger_open(cl, lc_ledger_id(lh), &rd), MQ_OK);
    CU_ASSERT_EQUAL(it_lc_check(rd, 299, 500), 0);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    lc_client_free(cl);
}

static void test_speculative_read(void)
{
    lc_client_conf_t conf;
    lc_client_conf_default(&conf);
    conf.zk_servers = c.zk_addr;
    conf.read_timeout_ms = 120000; /* a hung replica is only escaped by speculation */
    conf.speculative_read_timeout_ms = 200;
    lc_client_t *cl;
    IT_EXPECT(lc_client_new(&conf, &cl), MQ_OK);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    for (int64_t e = 0; e < 50; e++) {
        uint8_t p[100];
        it_lc_payload(lc_ledger_id(lh), e, p, sizeof(p));
        IT_EXPECT(lc_ledger_add(lh, p, sizeof(p), NULL), MQ_OK);
    }
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    meta_ledger_t md;
    lc_ledger_metadata(lh, &md);
    int b = it_bookie_index(&c, md.segments[0].bookies[1]);
    meta_ledger_fini(&md);
    lc_ledger_t *rd;
    IT_EXPECT(lc_ledger_open(cl, lc_ledger_id(lh), &rd), MQ_OK);
    kill(c.bookies[b].pid, SIGSTOP);
    /* Entries 1, 6, 11, ... have the hung bookie as first replica; without
     * a speculative read each would wait the 120 s read timeout. */
    uint64_t t0 = mq_now_ms();
    CU_ASSERT_EQUAL(it_lc_check(rd, 49, 100), 0);
    CU_ASSERT_TRUE(mq_now_ms() - t0 < 60000);
    kill(c.bookies[b].pid, SIGCONT);
    lc_ledger_free(rd);
    lc_ledger_free(lh);
    lc_client_free(cl);
}

static void test_delete_and_ids(void)
{
    lc_client_t *cl = it_lc_client(&c, 3, 2, 2);
    lc_ledger_t *lh;
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    uint64_t id = lc_ledger_id(lh);
    IT_EXPECT(lc_ledger_close(lh), MQ_OK);
    lc_ledger_free(lh);
    IT_EXPECT(lc_ledger_delete(cl, id), MQ_OK);
    lc_ledger_t *rd;
    IT_EXPECT(lc_ledger_open(cl, id, &rd), MQ_ENOLEDGER);
    IT_EXPECT(lc_ledger_delete(cl, id), MQ_ENOLEDGER);
    IT_EXPECT(lc_ledger_create(cl, NULL, &lh), MQ_OK);
    CU_ASSERT_TRUE(lc_ledger_id(lh) > id);
    lc_ledger_free(lh);
    lc_client_free(cl);
}

static uint64_t parse_ledger_id(const char *out)
{
    const char *p = strstr(out, "ledgers: ");
    return p ? strtoull(p + 9, NULL, 10) : 0;
}

static void test_mqbench_ledger(void)
{
    static char out[65536];
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s ledger --zk %s --ensemble 5 --write-quorum 3 --ack-quorum 2 --ledgers 2 "
             "--entries 2000 --size 512 --inflight 32 --verify",
             it_bin("mqbench"), c.zk_addr);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 120000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "4000 entries of 512 B acknowledged (0 failed)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "verify: 4000 entries read back, 0 bad: OK"));
    /* An open ledger (--keep-open) recovered by another process. */
    snprintf(cmd, sizeof(cmd),
             "%s ledger --zk %s --entries 1000 --size 256 --inflight 8 --keep-open",
             it_bin("mqbench"), c.zk_addr);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 120000), 0);
    uint64_t id = parse_ledger_id(out);
    CU_ASSERT_FATAL(id > 0);
    snprintf(cmd, sizeof(cmd), "%s ledger --zk %s --recover %llu --size 256 --verify",
             it_bin("mqbench"), c.zk_addr, (unsigned long long)id);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 120000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "closed at last entry 999"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "verify: 1000 entries, 0 bad: OK"));
    snprintf(cmd, sizeof(cmd), "%s ledger --zk %s --show %llu", it_bin("mqbench"), c.zk_addr,
             (unsigned long long)id);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "state=CLOSED"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "lastEntryId=999"));

    /* Quorums come from the config keys when no option overrides them. */
    char conf[4200];
    snprintf(conf, sizeof(conf), "%s/client.conf", c.dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "zkServers=%s\nensembleSize=4\nwriteQuorumSize=2\nackQuorumSize=1\n", c.zk_addr);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s ledger -c %s --entries 100 --size 64", it_bin("mqbench"), conf);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 120000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "at (4,2,1)"));
    id = parse_ledger_id(out);
    snprintf(cmd, sizeof(cmd), "%s ledger -c %s --show %llu", it_bin("mqbench"), conf,
             (unsigned long long)id);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ensembleSize=4\nwriteQuorumSize=2\nackQuorumSize=1\n"));
    /* Inconsistent quorums are refused with the file named. */
    f = fopen(conf, "w");
    fprintf(f, "zkServers=%s\nensembleSize=2\nwriteQuorumSize=3\n", c.zk_addr);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s ledger -c %s --entries 1", it_bin("mqbench"), conf);
    CU_ASSERT_EQUAL(it_run(cmd, out, sizeof(out), 30000), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "need ackQuorumSize <= writeQuorumSize <= ensembleSize"));
}

static void test_fini(void)
{
    it_cluster_fini(&c);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"tailing reader follows an open ledger", test_tailing_reader},
        {"a corrupt replica is skipped", test_corrupt_replica_skipped},
        {"speculative read past a hung replica", test_speculative_read},
        {"delete; ids never reused", test_delete_and_ids},
        {"mqbench ledger write, verify, recover, show", test_mqbench_ledger},
        {"clean shutdown, clean logs", test_fini},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("ledger reads", tests, suite_init, NULL);
}
