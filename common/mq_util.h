/*
 * mq_util: small helpers used everywhere: allocation that aborts on OOM (for
 * small, internal sizes only; sizes from the network or the disk use
 * mq_try_malloc and turn failure into back-pressure), byte order, clocks.
 * Header-only apart from the allocators. Any thread.
 */
#ifndef MQ_UTIL_H
#define MQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MQ_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MQ_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define MQ_UNUSED(x) ((void)(x))
#define MQ_LIKELY(x) __builtin_expect(!!(x), 1)
#define MQ_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Abort on OOM: for small allocations whose size we control. */
void *mq_malloc(size_t n);
void *mq_calloc(size_t count, size_t n);
void *mq_realloc(void *p, size_t n);
char *mq_strdup(const char *s);
/* NULL on failure: for sizes that come from the network or the disk. */
void *mq_try_malloc(size_t n);

static inline void mq_put_be32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
static inline uint32_t mq_get_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
static inline void mq_put_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}
static inline uint64_t mq_get_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
/* Little-endian helpers: the host order on every platform we build for. */
static inline void mq_put_le32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static inline uint32_t mq_get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void mq_put_le64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static inline uint64_t mq_get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Monotonic clock in nanoseconds / milliseconds. */
static inline uint64_t mq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static inline uint64_t mq_now_ms(void)
{
    return mq_now_ns() / 1000000ull;
}
/* Wall clock in milliseconds since the epoch. */
static inline uint64_t mq_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* SplitMix64: a fast, well-mixed 64-bit hash / PRNG step. */
static inline uint64_t mq_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* base +- pct percent, drawn uniformly; *state is the generator's state
 * (seed it once, e.g. with mq_mix64 of a clock and a pid). Periodic work of
 * processes started together uses it so that it does not stay in step. */
static inline uint64_t mq_jitter(uint64_t base, unsigned pct, uint64_t *state)
{
    *state = mq_mix64(*state);
    uint64_t span = base / 100 * pct * 2 + base % 100 * pct * 2 / 100;
    return base - span / 2 + (span ? *state % span : 0);
}

#endif
