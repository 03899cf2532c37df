/*
 * mq_config: loading and validating properties files with libinih.
 *
 * libinih calls our handler once per "key=value" (or "key: value") line. It
 * does not pass line numbers to the handler, so we stop on the first error
 * and take the line number that ini_parse returns; the handler leaves its own
 * message in the context when the error is a bad key or value rather than a
 * syntax error. Properties comments start with '#' or '!'; values are taken
 * verbatim (no inline comments). Main thread only.
 */
#include "mq_config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

typedef struct mq_conf_ctx {
    const mq_conf_key_t *keys;
    size_t nkeys;
    void *conf;
    char msg[256];
} mq_conf_ctx_t;

static const mq_conf_key_t *mq_conf_find(const mq_conf_key_t *keys, size_t nkeys, const char *name)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static bool mq_conf_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Sets one key from its text; on failure writes a message to msg. */
static bool mq_conf_set(const mq_conf_key_t *key, void *conf, const char *value, char *msg,
                        size_t msglen)
{
    char *field = (char *)conf + key->offset;
    switch (key->type) {
    case MQ_CONF_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            snprintf(msg, msglen, "bad value '%s' for key '%s': expected an integer", value,
                     key->name);
            return false;
        }
        if ((double)v < key->min || (double)v > key->max) {
            snprintf(msg, msglen, "value %lld for key '%s' is out of range [%.0f, %.0f]", v,
                     key->name, key->min, key->max);
            return false;
        }
        *(int64_t *)(void *)field = (int64_t)v;
        return true;
    }
    case MQ_CONF_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !isfinite(v)) {
            snprintf(msg, msglen, "bad value '%s' for key '%s': expected a number", value,
                     key->name);
            return false;
        }
        if (v < key->min || v > key->max) {
            snprintf(msg, msglen, "value %g for key '%s' is out of range [%g, %g]", v, key->name,
                     key->min, key->max);
            return false;
        }
        *(double *)(void *)field = v;
        return true;
    }
    case MQ_CONF_BOOL: {
        bool v;
        if (!mq_conf_parse_bool(value, &v)) {
            snprintf(msg, msglen, "bad value '%s' for key '%s': expected true or false", value,
                     key->name);
            return false;
        }
        *(bool *)(void *)field = v;
        return true;
    }
    case MQ_CONF_STR: {
        char **s = (char **)(void *)field;
        free(*s);
        *s = mq_strdup(value);
        return true;
    }
    }
    snprintf(msg, msglen, "key '%s' has an unknown type", key->name);
    return false;
}

static int mq_conf_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    mq_conf_ctx_t *ctx = user;
    if (section && section[0] != '\0') {
        snprintf(ctx->msg, sizeof(ctx->msg), "sections are not supported ([%s])", section);
        return 0;
    }
    const mq_conf_key_t *key = mq_conf_find(ctx->keys, ctx->nkeys, name);
    if (!key) {
        snprintf(ctx->msg, sizeof(ctx->msg), "unknown key '%s'", name);
        return 0;
    }
    return mq_conf_set(key, ctx->conf, value ? value : "", ctx->msg, sizeof(ctx->msg)) ? 1 : 0;
}

void mq_conf_fini(const mq_conf_key_t *keys, size_t nkeys, void *conf)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].type == MQ_CONF_STR) {
            char **s = (char **)(void *)((char *)conf + keys[i].offset);
            free(*s);
            *s = NULL;
        }
    }
}

mq_err_t mq_conf_load(const mq_conf_key_t *keys, size_t nkeys, void *conf, const char *path,
                      const char *const *overrides, size_t noverrides, char *errbuf, size_t errlen)
{
    mq_conf_ctx_t ctx = {keys, nkeys, conf, ""};
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].type == MQ_CONF_STR) {
            *(char **)(void *)((char *)conf + keys[i].offset) = NULL;
        }
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (!mq_conf_set(&keys[i], conf, keys[i].defval, ctx.msg, sizeof(ctx.msg))) {
            snprintf(errbuf, errlen, "built-in default: %s", ctx.msg);
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
    }
    if (path) {
        /* Debian's libinih exposes its compile-time options as variables:
         * long lines, properties-style '!' comments, no inline comments. */
        ini_use_stack = false;
        ini_allow_realloc = true;
        ini_max_line = 1 << 20;
        ini_allow_inline_comments = false;
        ini_allow_multiline = false;
        ini_start_comment_prefixes = (char *)"#!";
        ini_stop_on_first_error = true;
        ctx.msg[0] = '\0';
        int rc = ini_parse(path, mq_conf_ini_handler, &ctx);
        if (rc < 0) {
            snprintf(errbuf, errlen, "%s: cannot read config file: %s", path,
                     rc == -1 ? strerror(errno) : "out of memory");
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
        if (rc > 0) {
            snprintf(errbuf, errlen, "%s:%d: %s", path, rc,
                     ctx.msg[0] ? ctx.msg : "syntax error (expected key=value)");
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
    }
    for (size_t i = 0; i < noverrides; i++) {
        const char *eq = strchr(overrides[i], '=');
        if (!eq || eq == overrides[i]) {
            snprintf(errbuf, errlen, "--set %s: expected key=value", overrides[i]);
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
        char name[128];
        size_t nlen = (size_t)(eq - overrides[i]);
        if (nlen >= sizeof(name)) {
            nlen = sizeof(name) - 1;
        }
        memcpy(name, overrides[i], nlen);
        name[nlen] = '\0';
        const mq_conf_key_t *key = mq_conf_find(keys, nkeys, name);
        if (!key) {
            snprintf(errbuf, errlen, "--set %s: unknown key '%s'", overrides[i], name);
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
        if (!mq_conf_set(key, conf, eq + 1, ctx.msg, sizeof(ctx.msg))) {
            snprintf(errbuf, errlen, "--set %s: %s", overrides[i], ctx.msg);
            mq_conf_fini(keys, nkeys, conf);
            return MQ_ECONFIG;
        }
    }
    return MQ_OK;
}

static const char *mq_conf_type_name(mq_conf_type_t t)
{
    switch (t) {
    case MQ_CONF_INT:
        return "integer";
    case MQ_CONF_DOUBLE:
        return "number";
    case MQ_CONF_BOOL:
        return "boolean";
    case MQ_CONF_STR:
        return "string";
    }
    return "?";
}

void mq_conf_print_help(FILE *out, const mq_conf_key_t *keys, size_t nkeys)
{
    for (size_t i = 0; i < nkeys; i++) {
        const mq_conf_key_t *k = &keys[i];
        fprintf(out, "%s=%s\n    %s (%s", k->name, k->defval, k->doc, mq_conf_type_name(k->type));
        if (k->type == MQ_CONF_INT) {
            fprintf(out, ", %.0f..%.0f", k->min, k->max);
        } else if (k->type == MQ_CONF_DOUBLE) {
            fprintf(out, ", %g..%g", k->min, k->max);
        }
        fprintf(out, "; default %s)\n", k->defval[0] ? k->defval : "empty");
    }
}

void mq_conf_print_markdown(FILE *out, const mq_conf_key_t *keys, size_t nkeys)
{
    fprintf(out, "| key | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < nkeys; i++) {
        const mq_conf_key_t *k = &keys[i];
        char range[64] = "";
        if (k->type == MQ_CONF_INT) {
            snprintf(range, sizeof(range), "%.0f..%.0f", k->min, k->max);
        } else if (k->type == MQ_CONF_DOUBLE) {
            snprintf(range, sizeof(range), "%g..%g", k->min, k->max);
        }
        char def[160];
        snprintf(def, sizeof(def), k->defval[0] ? "`%s`" : "(empty)%s", k->defval);
        fprintf(out, "| `%s` | %s | %s | %s | %s |\n", k->name, mq_conf_type_name(k->type), def,
                range, k->doc);
    }
}

void mq_conf_print_values(FILE *out, const mq_conf_key_t *keys, size_t nkeys, const void *conf)
{
    for (size_t i = 0; i < nkeys; i++) {
        const char *field = (const char *)conf + keys[i].offset;
        switch (keys[i].type) {
        case MQ_CONF_INT:
            fprintf(out, "%s=%lld\n", keys[i].name,
                    (long long)*(const int64_t *)(const void *)field);
            break;
        case MQ_CONF_DOUBLE:
            fprintf(out, "%s=%g\n", keys[i].name, *(const double *)(const void *)field);
            break;
        case MQ_CONF_BOOL:
            fprintf(out, "%s=%s\n", keys[i].name,
                    *(const bool *)(const void *)field ? "true" : "false");
            break;
        case MQ_CONF_STR: {
            const char *s = *(char *const *)(const void *)field;
            fprintf(out, "%s=%s\n", keys[i].name, s ? s : "");
            break;
        }
        }
    }
}

char **mq_conf_split(const char *value, size_t *count)
{
    size_t cap = 4;
    size_t n = 0;
    char **items = mq_malloc(cap * sizeof(*items));
    const char *p = value ? value : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;
        const char *e = end;
        while (b < e && isspace((unsigned char)*b)) {
            b++;
        }
        while (e > b && isspace((unsigned char)e[-1])) {
            e--;
        }
        if (e > b) {
            if (n + 2 > cap) {
                cap *= 2;
                items = mq_realloc(items, cap * sizeof(*items));
            }
            size_t len = (size_t)(e - b);
            items[n] = mq_malloc(len + 1);
            memcpy(items[n], b, len);
            items[n][len] = '\0';
            n++;
        }
        p = comma ? comma + 1 : end;
    }
    items[n] = NULL;
    if (count) {
        *count = n;
    }
    return items;
}

void mq_conf_split_free(char **items)
{
    if (!items) {
        return;
    }
    for (char **p = items; *p; p++) {
        free(*p);
    }
    free(items);
}

/* The logLevel key's value in conf, or NULL when keys have none. */
static const char *mq_conf_log_level(const mq_conf_key_t *keys, size_t nkeys, const void *conf)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].type == MQ_CONF_STR && strcmp(keys[i].name, "logLevel") == 0) {
            return *(char *const *)((const char *)conf + keys[i].offset);
        }
    }
    return NULL;
}

/* Parses argv into its parts; -1 to go on, else the exit status. */
static int mq_conf_cli_args(const char *prog, const mq_conf_key_t *keys, size_t nkeys, int argc,
                            char **argv, void (*usage)(FILE *out), const char *const *flags,
                            bool *flag_on, const char **path, const char **sets, size_t *nsets,
                            bool *print)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool known = false;
        for (size_t f = 0; flags && flags[f]; f++) {
            if (strcmp(a, flags[f]) == 0) {
                flag_on[f] = true;
                known = true;
            }
        }
        if (known) {
            continue;
        }
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--conf") == 0) && i + 1 < argc) {
            *path = argv[++i];
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            sets[(*nsets)++] = argv[++i];
        } else if (strcmp(a, "--print-config") == 0) {
            *print = true;
        } else if (strcmp(a, "--help-config") == 0) {
            mq_conf_print_help(stdout, keys, nkeys);
            return 0;
        } else if (strcmp(a, "--help-config-markdown") == 0) {
            mq_conf_print_markdown(stdout, keys, nkeys);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

int mq_conf_cli(const char *prog, const mq_conf_key_t *keys, size_t nkeys, void *conf, int argc,
                char **argv, void (*usage)(FILE *out), const char *const *flags, bool *flag_on)
{
    const char *path = NULL;
    const char **sets = mq_calloc((size_t)argc, sizeof(*sets));
    size_t nsets = 0;
    bool print = false;
    int code = mq_conf_cli_args(prog, keys, nkeys, argc, argv, usage, flags, flag_on, &path, sets,
                                &nsets, &print);
    if (code >= 0) {
        free(sets);
        return code;
    }
    char err[1024];
    mq_err_t rc = mq_conf_load(keys, nkeys, conf, path, sets, nsets, err, sizeof(err));
    free(sets);
    if (rc != MQ_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    const char *level = mq_conf_log_level(keys, nkeys, conf);
    if (level) {
        int lvl = mq_log_level_parse(level);
        if (lvl < 0) {
            fprintf(stderr, "%s: logLevel: unknown level '%s' (error, warn, info, debug)\n", prog,
                    level);
            mq_conf_fini(keys, nkeys, conf);
            return 2;
        }
        mq_log_level = lvl;
    }
    if (print) {
        mq_conf_print_values(stdout, keys, nkeys, conf);
        mq_conf_fini(keys, nkeys, conf);
        return 0;
    }
    return -1;
}
