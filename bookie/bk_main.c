/*
 * mqbookie: parses arguments, loads the configuration and runs a bookie
 * (bk_server.h). Everything else lives in the bkserver library.
 *
 *   mqbookie -c bookie.conf [--set key=value]...   run
 *   mqbookie -c bookie.conf --format               clear dirs and cookie
 *   mqbookie --help-config                         every key, default, meaning
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_conf.h"
#include "bk_server.h"
#include "mq_log.h"
#include "mq_signal.h"

static void bk_main_usage(FILE *out)
{
    fprintf(out, "usage: mqbookie -c <bookie.conf> [--set key=value]... [--format]\n"
                 "       mqbookie --help-config\n"
                 "\n"
                 "  -c, --conf FILE     configuration file (key=value, BookKeeper key names)\n"
                 "  --set key=value     override one key (repeatable)\n"
                 "  --format            delete this bookie's data and its ZooKeeper cookie, so it\n"
                 "                      can start as a new, empty bookie; then exit\n"
                 "  --help-config       print every configuration key with its default\n"
                 "  --print-config      print the effective configuration and exit\n");
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof(*sets));
    size_t nsets = 0;
    bool format = false;
    bool print = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--conf") == 0) && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            sets[nsets++] = argv[++i];
        } else if (strcmp(argv[i], "--format") == 0) {
            format = true;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--help-config") == 0) {
            mq_conf_print_help(stdout, bk_conf_keys, bk_conf_nkeys);
            free(sets);
            return 0;
        } else if (strcmp(argv[i], "--help-config-markdown") == 0) {
            mq_conf_print_markdown(stdout, bk_conf_keys, bk_conf_nkeys);
            free(sets);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            bk_main_usage(stdout);
            free(sets);
            return 0;
        } else {
            fprintf(stderr, "mqbookie: unknown argument '%s'\n", argv[i]);
            bk_main_usage(stderr);
            free(sets);
            return 2;
        }
    }
    bk_conf_t conf;
    char err[1024];
    if (mq_conf_load(bk_conf_keys, bk_conf_nkeys, &conf, conf_path, sets, nsets, err,
                     sizeof(err)) != MQ_OK) {
        fprintf(stderr, "mqbookie: %s\n", err);
        free(sets);
        return 2;
    }
    free(sets);
    int lvl = mq_log_level_parse(conf.logLevel);
    if (lvl < 0) {
        fprintf(stderr, "mqbookie: logLevel: unknown level '%s' (error, warn, info, debug)\n",
                conf.logLevel);
        mq_conf_fini(bk_conf_keys, bk_conf_nkeys, &conf);
        return 2;
    }
    mq_log_level = lvl;
    if (print) {
        mq_conf_print_values(stdout, bk_conf_keys, bk_conf_nkeys, &conf);
        mq_conf_fini(bk_conf_keys, bk_conf_nkeys, &conf);
        return 0;
    }
    mq_signal_block();
    int code;
    if (format) {
        code = bk_server_format(&conf, err, sizeof(err)) == MQ_OK ? 0 : 1;
        if (code != 0) {
            fprintf(stderr, "mqbookie: %s\n", err);
        }
    } else {
        bk_server_t *srv;
        if (bk_server_start(&conf, &srv, err, sizeof(err)) != MQ_OK) {
            MQ_LOG_ERROR("bookie did not start: %s", err);
            fprintf(stderr, "mqbookie: %s\n", err);
            code = 1;
        } else {
            code = bk_server_run(srv);
        }
    }
    mq_conf_fini(bk_conf_keys, bk_conf_nkeys, &conf);
    return code;
}
