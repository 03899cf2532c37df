/*
 * zk_err: the one table from ZooKeeper return codes to mq_err_t covers every
 * code of ZooKeeper 3.8 (by name and value), maps each as specified, and
 * unknown codes give MQ_EZK. Needs no server.
 */
#include <string.h>

#include "mq_test.h"
#include "mq_util.h"
#include "zk_int.h"

typedef struct t_code {
    const char *name;
    int value; /* ZooKeeper 3.8's ZOO_ERRORS */
    mq_err_t err;
} t_code_t;

static const t_code_t t_codes[] = {
    {"ZOK", 0, MQ_OK},
    {"ZSYSTEMERROR", -1, MQ_EZK},
    {"ZRUNTIMEINCONSISTENCY", -2, MQ_EZK},
    {"ZDATAINCONSISTENCY", -3, MQ_EZK},
    {"ZCONNECTIONLOSS", -4, MQ_ECONN},
    {"ZMARSHALLINGERROR", -5, MQ_EZK},
    {"ZUNIMPLEMENTED", -6, MQ_EZK},
    {"ZOPERATIONTIMEOUT", -7, MQ_ECONN},
    {"ZBADARGUMENTS", -8, MQ_EINVAL},
    {"ZINVALIDSTATE", -9, MQ_ESESSION},
    {"ZNEWCONFIGNOQUORUM", -13, MQ_EZK},
    {"ZRECONFIGINPROGRESS", -14, MQ_EZK},
    {"ZSSLCONNECTIONERROR", -15, MQ_EZK},
    {"ZAPIERROR", -100, MQ_EZK},
    {"ZNONODE", -101, MQ_ENOTFOUND},
    {"ZNOAUTH", -102, MQ_EZK},
    {"ZBADVERSION", -103, MQ_EBADVERSION},
    {"ZNOCHILDRENFOREPHEMERALS", -108, MQ_EZK},
    {"ZNODEEXISTS", -110, MQ_EEXIST},
    {"ZNOTEMPTY", -111, MQ_ENOTEMPTY},
    {"ZSESSIONEXPIRED", -112, MQ_ESESSION},
    {"ZINVALIDCALLBACK", -113, MQ_EZK},
    {"ZINVALIDACL", -114, MQ_EZK},
    {"ZAUTHFAILED", -115, MQ_EZK},
    {"ZCLOSING", -116, MQ_ECLOSED},
    {"ZNOTHING", -117, MQ_EZK},
    {"ZSESSIONMOVED", -118, MQ_EZK},
    {"ZNOTREADONLY", -119, MQ_EZK},
    {"ZEPHEMERALONLOCALSESSION", -120, MQ_EZK},
    {"ZNOWATCHER", -121, MQ_EZK},
    {"ZRECONFIGDISABLED", -123, MQ_EZK},
    {"ZSESSIONCLOSEDREQUIRESASLAUTH", -124, MQ_EZK},
    {"ZTHROTTLEDOP", -127, MQ_EZK},
};

static void test_every_code_maps(void)
{
    size_t n;
    const zk_err_entry_t *table = zk_err_table(&n);
    CU_ASSERT_EQUAL(n, MQ_ARRAY_LEN(t_codes));
    for (size_t i = 0; i < MQ_ARRAY_LEN(t_codes); i++) {
        const t_code_t *c = &t_codes[i];
        const zk_err_entry_t *e = NULL;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(table[k].name, c->name) == 0) {
                e = &table[k];
            }
        }
        CU_ASSERT_PTR_NOT_NULL(e);
        if (!e) {
            fprintf(stderr, "missing from the table: %s\n", c->name);
            continue;
        }
        CU_ASSERT_EQUAL(e->zrc, c->value);
        CU_ASSERT_EQUAL(e->err, c->err);
        CU_ASSERT_EQUAL(zk_err_from_zoo(c->value), c->err);
        if (zk_err_from_zoo(c->value) != c->err) {
            fprintf(stderr, "%s maps to %s\n", c->name, mq_err_name(zk_err_from_zoo(c->value)));
        }
    }
}

static void test_table_has_no_duplicates(void)
{
    size_t n;
    const zk_err_entry_t *table = zk_err_table(&n);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = i + 1; k < n; k++) {
            CU_ASSERT_NOT_EQUAL(table[i].zrc, table[k].zrc);
        }
    }
}

static void test_unknown_codes(void)
{
    CU_ASSERT_EQUAL(zk_err_from_zoo(-9999), MQ_EZK);
    CU_ASSERT_EQUAL(zk_err_from_zoo(-10), MQ_EZK);
    CU_ASSERT_EQUAL(zk_err_from_zoo(1), MQ_EZK);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"every ZooKeeper code maps as specified", test_every_code_maps},
        {"no code twice", test_table_has_no_duplicates},
        {"unknown codes give MQ_EZK", test_unknown_codes},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("zk_err", tests, NULL, NULL);
}
