/*
 * mq_crc32c: hardware and table implementations of CRC-32C.
 *
 * The hardware path feeds 8 bytes per crc32q instruction. For long buffers it
 * runs three independent streams over three consecutive blocks and merges
 * them with precomputed "shift by block length" tables, because crc32q has a
 * latency of 3 cycles but a throughput of 1 per cycle. Tables are built once
 * (pthread_once); after that everything is read-only.
 */
#include "mq_crc32c.h"

#include <pthread.h>
#include <string.h>

#define MQ_CRC32C_POLY 0x82F63B78u
/* Block length of each of the three streams in the hardware path. */
#define MQ_CRC32C_BLOCK 1024

static uint32_t mq_crc32c_table[8][256];
/* mq_crc32c_shift[k][b]: CRC contribution of byte b at position k of a u32
 * after being shifted over MQ_CRC32C_BLOCK zero bytes. */
static uint32_t mq_crc32c_shift[4][256];
static bool mq_crc32c_have_hw;
static pthread_once_t mq_crc32c_once = PTHREAD_ONCE_INIT;

/* Multiplies crc by x^(8*len) modulo the polynomial: crc of len zero bytes
 * appended, done bit by bit (only used to build tables). */
static uint32_t mq_crc32c_zeros_slow(uint32_t crc, size_t len)
{
    for (size_t i = 0; i < len * 8; i++) {
        crc = (crc >> 1) ^ (MQ_CRC32C_POLY & (0u - (crc & 1u)));
    }
    return crc;
}

static void mq_crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (MQ_CRC32C_POLY & (0u - (c & 1u)));
        }
        mq_crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = mq_crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = mq_crc32c_table[0][c & 0xff] ^ (c >> 8);
            mq_crc32c_table[k][n] = c;
        }
    }
    for (int k = 0; k < 4; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            mq_crc32c_shift[k][b] = mq_crc32c_zeros_slow(b << (8 * k), MQ_CRC32C_BLOCK);
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    mq_crc32c_have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t mq_crc32c_shift_block(uint32_t crc)
{
    return mq_crc32c_shift[0][crc & 0xff] ^ mq_crc32c_shift[1][(crc >> 8) & 0xff] ^
           mq_crc32c_shift[2][(crc >> 16) & 0xff] ^ mq_crc32c_shift[3][crc >> 24];
}

static uint32_t mq_crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = mq_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = mq_crc32c_table[7][w & 0xff] ^ mq_crc32c_table[6][(w >> 8) & 0xff] ^
              mq_crc32c_table[5][(w >> 16) & 0xff] ^ mq_crc32c_table[4][(w >> 24) & 0xff] ^
              mq_crc32c_table[3][(w >> 32) & 0xff] ^ mq_crc32c_table[2][(w >> 40) & 0xff] ^
              mq_crc32c_table[1][(w >> 48) & 0xff] ^ mq_crc32c_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = mq_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t mq_crc32c_hw_run(uint32_t crc, const uint8_t *p,
                                                                   size_t len)
{
    uint64_t c0 = crc;
    while (len && ((uintptr_t)p & 7)) {
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
        len--;
    }
    while (len >= 3 * MQ_CRC32C_BLOCK) {
        uint64_t c1 = 0;
        uint64_t c2 = 0;
        const uint8_t *p1 = p + MQ_CRC32C_BLOCK;
        const uint8_t *p2 = p + 2 * MQ_CRC32C_BLOCK;
        for (size_t i = 0; i < MQ_CRC32C_BLOCK; i += 8) {
            uint64_t w0;
            uint64_t w1;
            uint64_t w2;
            memcpy(&w0, p + i, 8);
            memcpy(&w1, p1 + i, 8);
            memcpy(&w2, p2 + i, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        /* CRC is linear: crc(A|B) = shift(crc(A), |B|) ^ crc0(B), where crc0
         * starts from zero. */
        c0 = mq_crc32c_shift_block((uint32_t)c0) ^ (uint32_t)c1;
        c0 = mq_crc32c_shift_block((uint32_t)c0) ^ (uint32_t)c2;
        p += 3 * MQ_CRC32C_BLOCK;
        len -= 3 * MQ_CRC32C_BLOCK;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8;
        len -= 8;
    }
    while (len--) {
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    }
    return (uint32_t)c0;
}
#endif

uint32_t mq_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&mq_crc32c_once, mq_crc32c_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (mq_crc32c_have_hw) {
        return ~mq_crc32c_hw_run(crc, buf, len);
    }
#endif
    return ~mq_crc32c_sw(crc, buf, len);
}

uint32_t mq_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&mq_crc32c_once, mq_crc32c_init);
    return ~mq_crc32c_sw(~crc, buf, len);
}

bool mq_crc32c_hw(void)
{
    pthread_once(&mq_crc32c_once, mq_crc32c_init);
    return mq_crc32c_have_hw;
}
