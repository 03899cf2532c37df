/*
 * Unit tests of the broker's pure pieces: the mq_err -> RocketMQ code table
 * (every error value), the stored-record format, and the configuration keys
 * (RocketMQ names, defaults, the ledger keys reaching the ledger client).
 */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "br_conf.h"
#include "br_record.h"
#include "br_status.h"
#include "mq_test.h"

static void test_status_table(void)
{
#define BR_T_CHECK(name, value, retriable, msg)                                                    \
    do {                                                                                           \
        apache_rocketmq_v2_Code code = br_status_code(name);                                       \
        CU_ASSERT(name == MQ_OK ? code == apache_rocketmq_v2_Code_OK                               \
                                : (code >= 40000 && code < 60000));                                \
        CU_ASSERT(code != apache_rocketmq_v2_Code_INTERNAL_ERROR);                                 \
    } while (0);
    MQ_ERR_LIST(BR_T_CHECK)
#undef BR_T_CHECK
    CU_ASSERT_EQUAL(br_status_code(MQ_ETOOLARGE), apache_rocketmq_v2_Code_MESSAGE_BODY_TOO_LARGE);
    CU_ASSERT_EQUAL(br_status_code(MQ_ENOTFOUND), apache_rocketmq_v2_Code_TOPIC_NOT_FOUND);
    CU_ASSERT(br_status_retriable(br_status_code(MQ_EFENCED)));
    CU_ASSERT(br_status_retriable(apache_rocketmq_v2_Code_TOO_MANY_REQUESTS));
    CU_ASSERT(!br_status_retriable(apache_rocketmq_v2_Code_ILLEGAL_TOPIC));
    CU_ASSERT(!br_status_retriable(apache_rocketmq_v2_Code_MESSAGE_BODY_EMPTY));
}

static void test_record(void)
{
    const uint8_t msg[] = {1, 2, 3, 4, 5};
    size_t len;
    uint8_t *rec = br_record_make(msg, sizeof(msg), 1234567890123ull, &len);
    CU_ASSERT_EQUAL(len, BR_RECORD_HEADER + sizeof(msg));
    uint64_t store;
    const uint8_t *m;
    size_t mlen;
    CU_ASSERT_EQUAL(br_record_parse(rec, len, &store, &m, &mlen), MQ_OK);
    CU_ASSERT_EQUAL(store, 1234567890123ull);
    CU_ASSERT_EQUAL(mlen, sizeof(msg));
    CU_ASSERT_EQUAL(memcmp(m, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(br_record_parse(rec, 5, &store, &m, &mlen), MQ_ECORRUPT);
    rec[0] ^= 0xff;
    CU_ASSERT_EQUAL(br_record_parse(rec, len, &store, &m, &mlen), MQ_ECORRUPT);
    rec[0] ^= 0xff;
    rec[1] = 9;
    CU_ASSERT_EQUAL(br_record_parse(rec, len, &store, &m, &mlen), MQ_ECORRUPT);
    free(rec);
}

static void test_conf(void)
{
    br_conf_t conf;
    char err[512];
    const char *sets[] = {"brokerName=b1", "ensembleSize=3", "writeQuorumSize=2", "ackQuorumSize=2",
                          "zkServers=127.0.0.1:1"};
    CU_ASSERT_EQUAL_FATAL(
        mq_conf_load(br_conf_keys, br_conf_nkeys, &conf, NULL, sets, 5, err, sizeof(err)), MQ_OK);
    CU_ASSERT_EQUAL(conf.grpcServerPort, 8081);
    CU_ASSERT_EQUAL(conf.defaultTopicQueueNums, 4);
    CU_ASSERT_EQUAL(conf.maxMessageSize, 4194304);
    CU_ASSERT_EQUAL(conf.zkTimeout, 4000);
    CU_ASSERT(conf.autoCreateTopicEnable);
    lc_client_conf_t lc;
    CU_ASSERT_EQUAL(br_conf_ledger(&conf, &lc, err, sizeof(err)), MQ_OK);
    CU_ASSERT_EQUAL(lc.ensemble_size, 3);
    CU_ASSERT_EQUAL(lc.write_quorum, 2);
    CU_ASSERT_EQUAL(lc.zk_session_timeout_ms, 4000);
    CU_ASSERT_STRING_EQUAL(lc.zk_servers, "127.0.0.1:1");
    mq_conf_fini(br_conf_keys, br_conf_nkeys, &conf);
    const char *bad[] = {"ackQuorumSize=3", "writeQuorumSize=2"};
    CU_ASSERT_EQUAL_FATAL(
        mq_conf_load(br_conf_keys, br_conf_nkeys, &conf, NULL, bad, 2, err, sizeof(err)), MQ_OK);
    CU_ASSERT_EQUAL(br_conf_ledger(&conf, &lc, err, sizeof(err)), MQ_ECONFIG);
    mq_conf_fini(br_conf_keys, br_conf_nkeys, &conf);
    const char *unknown[] = {"noSuchKey=1"};
    CU_ASSERT_EQUAL(
        mq_conf_load(br_conf_keys, br_conf_nkeys, &conf, NULL, unknown, 1, err, sizeof(err)),
        MQ_ECONFIG);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"every error maps to a RocketMQ code", test_status_table},
        {"stored record format", test_record},
        {"configuration keys", test_conf},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("broker server units", tests, NULL, NULL);
}
