/*
 * mq_config: defaults, file values, --set overrides, and the errors: unknown
 * key, bad value, out of range, syntax error, each naming the file and line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_config.h"
#include "mq_test.h"

#define T_CONF_KEYS(X)                                                                             \
    X(bookiePort, INT, "3181", 1, 65535, "port")                                                   \
    X(diskUsageThreshold, DOUBLE, "0.95", 0, 1, "threshold")                                       \
    X(journalSyncData, BOOL, "true", 0, 0, "sync")                                                 \
    X(ledgerDirectories, STR, "/tmp/a", 0, 0, "dirs")

typedef struct t_conf {
    T_CONF_KEYS(MQ_CONF_FIELD)
} t_conf_t;
#define MQ_CONF_KEY_OF_t_conf_t(...) MQ_CONF_KEY_ENTRY(t_conf_t, __VA_ARGS__)
static const mq_conf_key_t t_keys[] = {T_CONF_KEYS(MQ_CONF_KEY_OF(t_conf_t))};
#define T_NKEYS (sizeof(t_keys) / sizeof(t_keys[0]))

static char t_path[4096];

static void t_write(const char *text)
{
    snprintf(t_path, sizeof(t_path), "%s/t.conf", mq_test_tmpdir("conf"));
    FILE *f = fopen(t_path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_defaults_file_and_overrides(void)
{
    t_write("# a comment\n! another\n\nbookiePort = 4000\njournalSyncData=false\n"
            "ledgerDirectories=/x/y, /z ;kept\n");
    t_conf_t c;
    char err[512];
    const char *sets[] = {"diskUsageThreshold=0.5"};
    CU_ASSERT_EQUAL_FATAL(mq_conf_load(t_keys, T_NKEYS, &c, t_path, sets, 1, err, sizeof(err)),
                          MQ_OK);
    CU_ASSERT_EQUAL(c.bookiePort, 4000);
    CU_ASSERT_FALSE(c.journalSyncData);
    CU_ASSERT_DOUBLE_EQUAL(c.diskUsageThreshold, 0.5, 1e-9);
    CU_ASSERT_STRING_EQUAL(c.ledgerDirectories, "/x/y, /z ;kept");
    size_t n;
    char **items = mq_conf_split(c.ledgerDirectories, &n);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_STRING_EQUAL(items[0], "/x/y");
    CU_ASSERT_STRING_EQUAL(items[1], "/z ;kept");
    mq_conf_split_free(items);
    mq_conf_fini(t_keys, T_NKEYS, &c);

    CU_ASSERT_EQUAL_FATAL(mq_conf_load(t_keys, T_NKEYS, &c, NULL, NULL, 0, err, sizeof(err)),
                          MQ_OK);
    CU_ASSERT_EQUAL(c.bookiePort, 3181);
    CU_ASSERT_TRUE(c.journalSyncData);
    CU_ASSERT_STRING_EQUAL(c.ledgerDirectories, "/tmp/a");
    mq_conf_fini(t_keys, T_NKEYS, &c);
}

static void t_expect_error(const char *text, const char *want)
{
    t_write(text);
    t_conf_t c;
    char err[512] = "";
    CU_ASSERT_EQUAL(mq_conf_load(t_keys, T_NKEYS, &c, t_path, NULL, 0, err, sizeof(err)),
                    MQ_ECONFIG);
    char expect[8192];
    snprintf(expect, sizeof(expect), "%s:%s", t_path, want);
    if (strncmp(err, expect, strlen(expect)) != 0) {
        fprintf(stderr, "\n  got:  %s\n  want: %s...\n", err, expect);
    }
    CU_ASSERT_EQUAL(strncmp(err, expect, strlen(expect)), 0);
}

static void test_errors_name_file_and_line(void)
{
    t_expect_error("bookiePort=1\nnoSuchKey=3\n", "2: unknown key 'noSuchKey'");
    t_expect_error("\n\nbookiePort=abc\n", "3: bad value 'abc' for key 'bookiePort'");
    t_expect_error("bookiePort=70000\n", "1: value 70000 for key 'bookiePort' is out of range");
    t_expect_error("diskUsageThreshold=1.5\n", "1: value 1.5 for key 'diskUsageThreshold'");
    t_expect_error("journalSyncData=maybe\n", "1: bad value 'maybe' for key 'journalSyncData'");
    t_expect_error("#\nthis line has no separator\n", "2: syntax error");
    t_expect_error("[section]\nbookiePort=1\n", "2: sections are not supported");
}

static void test_override_errors(void)
{
    t_conf_t c;
    char err[512];
    const char *bad1[] = {"nope=1"};
    CU_ASSERT_EQUAL(mq_conf_load(t_keys, T_NKEYS, &c, NULL, bad1, 1, err, sizeof(err)), MQ_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown key 'nope'"));
    const char *bad2[] = {"bookiePort"};
    CU_ASSERT_EQUAL(mq_conf_load(t_keys, T_NKEYS, &c, NULL, bad2, 1, err, sizeof(err)), MQ_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expected key=value"));
    const char *bad3[] = {"bookiePort=0"};
    CU_ASSERT_EQUAL(mq_conf_load(t_keys, T_NKEYS, &c, NULL, bad3, 1, err, sizeof(err)), MQ_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
}

static void test_missing_file(void)
{
    t_conf_t c;
    char err[512];
    CU_ASSERT_EQUAL(
        mq_conf_load(t_keys, T_NKEYS, &c, "/nonexistent/x.conf", NULL, 0, err, sizeof(err)),
        MQ_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/x.conf: cannot read config file"));
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"defaults, file and overrides", test_defaults_file_and_overrides},
        {"errors name file and line", test_errors_name_file_and_line},
        {"override errors", test_override_errors},
        {"missing file", test_missing_file},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("config", tests, NULL, NULL);
}
