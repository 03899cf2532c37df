/*
 * mq_crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used
 * by iSCSI, ext4 and BookKeeper's CRC32C digest. Uses the SSE4.2 crc32
 * instruction when the CPU has it (checked once, at first use) and a
 * slicing-by-8 table otherwise. Pure functions, any thread.
 *
 * mq_crc32c(0, buf, len) gives the standard CRC of buf ("123456789" gives
 * 0xE3069283). To checksum pieces, pass the previous result as crc.
 */
#ifndef MQ_CRC32C_H
#define MQ_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t mq_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table implementation, exposed so tests can compare both paths. */
uint32_t mq_crc32c_portable(uint32_t crc, const void *buf, size_t len);
/* True when mq_crc32c uses the SSE4.2 instruction. */
bool mq_crc32c_hw(void);

#endif
