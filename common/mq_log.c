/*
 * mq_log: formatting and writing of log lines. A whole line is built in a
 * stack buffer and written with one write(2), so lines from different threads
 * never interleave. Any thread.
 */
#include "mq_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int mq_log_level = MQ_LOG_LVL_INFO;

static _Thread_local char mq_log_tname[16] = "main";

static const char *const mq_log_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void mq_log_thread_name(const char *name)
{
    snprintf(mq_log_tname, sizeof(mq_log_tname), "%s", name);
    pthread_setname_np(pthread_self(), mq_log_tname);
}

int mq_log_level_parse(const char *name)
{
    static const char *const lower[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, lower[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static void mq_log_vwrite(mq_log_level_t lvl, const char *file, int line, const char *fmt,
                          va_list ap)
{
    char buf[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s [%s] %s:%d ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), mq_log_names[lvl], mq_log_tname, base, line);
    if (n < 0) {
        return;
    }
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(buf) - 2) {
        len = sizeof(buf) - 2;
    }
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

void mq_log_write(mq_log_level_t lvl, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mq_log_vwrite(lvl, file, line, fmt, ap);
    va_end(ap);
}

void mq_log_abort(const char *file, int line, const char *what)
{
    mq_log_write(MQ_LOG_LVL_ERROR, file, line, "assertion failed: %s", what);
    abort();
}
