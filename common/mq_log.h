/*
 * mq_log: one line per event, "key=value" ids, to stderr (or a file).
 *
 * MQ_LOG_INFO/WARN/... test the level before evaluating their arguments.
 * Lines look like:
 *   2026-11-21T14:02:03.123Z INFO  [journal] bk_journal.c:210 rotated file=0x1a
 * Thread names come from mq_log_thread_name(), per thread. Any thread.
 * INFO is for lifecycle events only, never per message or per entry.
 */
#ifndef MQ_LOG_H
#define MQ_LOG_H

#include <stdarg.h>

typedef enum mq_log_level {
    MQ_LOG_LVL_ERROR = 0,
    MQ_LOG_LVL_WARN = 1,
    MQ_LOG_LVL_INFO = 2,
    MQ_LOG_LVL_DEBUG = 3,
} mq_log_level_t;

extern int mq_log_level;

#define MQ_LOG(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((int)(lvl) <= mq_log_level) {                                                          \
            mq_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                  \
        }                                                                                          \
    } while (0)

#define MQ_LOG_ERROR(...) MQ_LOG(MQ_LOG_LVL_ERROR, __VA_ARGS__)
#define MQ_LOG_WARN(...) MQ_LOG(MQ_LOG_LVL_WARN, __VA_ARGS__)
#define MQ_LOG_INFO(...) MQ_LOG(MQ_LOG_LVL_INFO, __VA_ARGS__)
#define MQ_LOG_DEBUG(...) MQ_LOG(MQ_LOG_LVL_DEBUG, __VA_ARGS__)

void mq_log_write(mq_log_level_t lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses "error", "warn", "info" or "debug"; returns -1 when unknown. */
int mq_log_level_parse(const char *name);
/* Names the calling thread in log lines (and for the OS, truncated to 15). */
void mq_log_thread_name(const char *name);

/*
 * Always-on invariant check. Never use it on bytes from the network or the
 * disk: those get MQ_ECORRUPT / MQ_EPROTO.
 */
#define MQ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            mq_log_abort(__FILE__, __LINE__, #cond);                                               \
        }                                                                                          \
    } while (0)

void mq_log_abort(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
