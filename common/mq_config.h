/*
 * mq_config: typed properties configuration ("key=value" files, parsed with
 * libinih), declared once per process as a table from which loading,
 * validation, `--help-config` and the docs all come.
 *
 * A process declares its keys with an X-macro:
 *
 *   #define BK_CONF_KEYS(X)                                                 \
 *       X(bookiePort, INT, "3181", 1, 65535, "TCP port of the protocol")     \
 *       X(journalSyncData, BOOL, "true", 0, 0, "fdatasync before acking")
 *
 *   typedef struct bk_conf { BK_CONF_KEYS(MQ_CONF_FIELD) } bk_conf_t;
 *   static const mq_conf_key_t bk_conf_keys[] = {
 *       BK_CONF_KEYS(MQ_CONF_KEY_OF(bk_conf_t)) };
 *
 * Types: INT (int64_t, checked against [min, max]), DOUBLE (double, checked
 * against [min, max]), BOOL (bool: true/false/yes/no/1/0), STR (char *, owned
 * by the struct; free with mq_conf_fini). Lists are STR values split with
 * mq_conf_split. Unknown keys and bad values stop loading with
 * "<file>:<line>: ..." (or "--set key=value: ..." for overrides).
 * Not thread-safe: load once at startup.
 */
#ifndef MQ_CONFIG_H
#define MQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mq_err.h"

typedef enum mq_conf_type {
    MQ_CONF_INT,
    MQ_CONF_DOUBLE,
    MQ_CONF_BOOL,
    MQ_CONF_STR,
} mq_conf_type_t;

typedef struct mq_conf_key {
    const char *name;
    mq_conf_type_t type;
    size_t offset;
    const char *defval;
    double min;
    double max;
    const char *doc;
} mq_conf_key_t;

#define MQ_CONF_CTYPE_INT int64_t
#define MQ_CONF_CTYPE_DOUBLE double
#define MQ_CONF_CTYPE_BOOL bool
#define MQ_CONF_CTYPE_STR char *

#define MQ_CONF_FIELD(name, type, def, min, max, doc) MQ_CONF_CTYPE_##type name;
#define MQ_CONF_KEY_OF(st) MQ_CONF_KEY_OF_##st
/* Each user defines MQ_CONF_KEY_OF_<struct> with MQ_CONF_KEY_ENTRY. */
#define MQ_CONF_KEY_ENTRY(st, name, type, def, min, max, doc)                                      \
    {#name, MQ_CONF_##type, offsetof(st, name), def, (double)(min), (double)(max), doc},

/*
 * Fills conf from the defaults, then the file at path (NULL: none), then the
 * overrides ("key=value" strings, in order). On failure returns MQ_ECONFIG
 * with a message in errbuf naming the file and line; conf is left finalized.
 */
mq_err_t mq_conf_load(const mq_conf_key_t *keys, size_t nkeys, void *conf, const char *path,
                      const char *const *overrides, size_t noverrides, char *errbuf, size_t errlen);
/* Frees the STR values of conf. */
void mq_conf_fini(const mq_conf_key_t *keys, size_t nkeys, void *conf);
/* Prints every key with its type, default, range and meaning. */
void mq_conf_print_help(FILE *out, const mq_conf_key_t *keys, size_t nkeys);
/* Prints the same as a Markdown table (docs are generated from this). */
void mq_conf_print_markdown(FILE *out, const mq_conf_key_t *keys, size_t nkeys);
/* Prints the effective values, one "key=value" per line. */
void mq_conf_print_values(FILE *out, const mq_conf_key_t *keys, size_t nkeys, const void *conf);

/*
 * A daemon's command line: -c/--conf FILE, --set key=value (repeatable),
 * --print-config, --help-config, --help-config-markdown, -h/--help, plus
 * the boolean flags named in flags (NULL-terminated; flag_on[i] is set when
 * flags[i] is given). Loads the configuration into conf and applies its
 * logLevel key to mq_log_level. Returns -1 when the daemon should go on
 * (conf loaded: mq_conf_fini it), otherwise the exit status, after printing
 * what was asked for or the error (prefixed with prog).
 */
int mq_conf_cli(const char *prog, const mq_conf_key_t *keys, size_t nkeys, void *conf, int argc,
                char **argv, void (*usage)(FILE *out), const char *const *flags, bool *flag_on);

/*
 * Splits a comma-separated list, trimming blanks and dropping empty items.
 * Returns a NULL-terminated array (free with mq_conf_split_free) and its
 * length in *count.
 */
char **mq_conf_split(const char *value, size_t *count);
void mq_conf_split_free(char **items);

#endif
