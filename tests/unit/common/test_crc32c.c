/*
 * CRC32C: standard vectors (RFC 3720 appendix B.4, and "123456789"), the
 * hardware and table paths agreeing on every length and alignment, and
 * incremental checksums equal to one-shot ones.
 */
#include <stdlib.h>
#include <string.h>

#include "mq_crc32c.h"
#include "mq_test.h"

static void test_vectors(void)
{
    uint8_t buf[32];
    CU_ASSERT_EQUAL(mq_crc32c(0, "123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(mq_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    memset(buf, 0, sizeof(buf));
    CU_ASSERT_EQUAL(mq_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    CU_ASSERT_EQUAL(mq_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    CU_ASSERT_EQUAL(mq_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    CU_ASSERT_EQUAL(mq_crc32c(0, buf, 32), 0x113FDB5Cu);
    CU_ASSERT_EQUAL(mq_crc32c(0, "", 0), 0u);
}

static void test_paths_agree(void)
{
    /* Long enough to cover the three-stream block path more than once. */
    size_t n = 3 * 1024 * 4 + 777;
    uint8_t *buf = malloc(n + 8);
    for (size_t i = 0; i < n + 8; i++) {
        buf[i] = (uint8_t)(i * 131 + 7);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len < 64; len++) {
            CU_ASSERT_EQUAL(mq_crc32c(0, buf + off, len), mq_crc32c_portable(0, buf + off, len));
        }
        CU_ASSERT_EQUAL(mq_crc32c(0, buf + off, n), mq_crc32c_portable(0, buf + off, n));
        CU_ASSERT_EQUAL(mq_crc32c(0, buf + off, 3072), mq_crc32c_portable(0, buf + off, 3072));
    }
    free(buf);
}

static void test_incremental(void)
{
    uint8_t buf[10000];
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i ^ (i >> 7));
    }
    uint32_t whole = mq_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut < sizeof(buf); cut += 997) {
        uint32_t c = mq_crc32c(0, buf, cut);
        c = mq_crc32c(c, buf + cut, sizeof(buf) - cut);
        CU_ASSERT_EQUAL(c, whole);
    }
    /* A single flipped bit changes the checksum. */
    buf[5000] ^= 0x10;
    CU_ASSERT_NOT_EQUAL(mq_crc32c(0, buf, sizeof(buf)), whole);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"standard vectors", test_vectors},
        {"hardware and table paths agree", test_paths_agree},
        {"incremental equals one-shot", test_incremental},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("crc32c", tests, NULL, NULL);
}
