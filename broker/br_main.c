/*
 * mqbroker: parses arguments, loads the configuration and runs a broker
 * (br_server.h). Everything else lives in the brserver library.
 *
 *   mqbroker -c broker.conf [--set key=value]...   run
 *   mqbroker --help-config                         every key, default, meaning
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_conf.h"
#include "br_server.h"
#include "mq_log.h"
#include "mq_signal.h"

static void br_main_usage(FILE *out)
{
    fprintf(out, "usage: mqbroker [-c <broker.conf>] [--set key=value]...\n"
                 "       mqbroker --help-config\n"
                 "\n"
                 "  -c, --conf FILE     configuration file (key=value, RocketMQ key names)\n"
                 "  --set key=value     override one key (repeatable)\n"
                 "  --help-config       print every configuration key with its default\n"
                 "  --print-config      print the effective configuration and exit\n");
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    const char **sets = calloc((size_t)argc, sizeof(*sets));
    size_t nsets = 0;
    bool print = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--conf") == 0) && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            sets[nsets++] = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--help-config") == 0) {
            mq_conf_print_help(stdout, br_conf_keys, br_conf_nkeys);
            free(sets);
            return 0;
        } else if (strcmp(argv[i], "--help-config-markdown") == 0) {
            mq_conf_print_markdown(stdout, br_conf_keys, br_conf_nkeys);
            free(sets);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            br_main_usage(stdout);
            free(sets);
            return 0;
        } else {
            fprintf(stderr, "mqbroker: unknown argument '%s'\n", argv[i]);
            br_main_usage(stderr);
            free(sets);
            return 2;
        }
    }
    br_conf_t conf;
    char err[1024];
    if (mq_conf_load(br_conf_keys, br_conf_nkeys, &conf, conf_path, sets, nsets, err,
                     sizeof(err)) != MQ_OK) {
        fprintf(stderr, "mqbroker: %s\n", err);
        free(sets);
        return 2;
    }
    free(sets);
    int lvl = mq_log_level_parse(conf.logLevel);
    if (lvl < 0) {
        fprintf(stderr, "mqbroker: logLevel: unknown level '%s' (error, warn, info, debug)\n",
                conf.logLevel);
        mq_conf_fini(br_conf_keys, br_conf_nkeys, &conf);
        return 2;
    }
    mq_log_level = lvl;
    if (print) {
        mq_conf_print_values(stdout, br_conf_keys, br_conf_nkeys, &conf);
        mq_conf_fini(br_conf_keys, br_conf_nkeys, &conf);
        return 0;
    }
    mq_signal_block();
    int code;
    br_server_t *srv;
    if (br_server_start(&conf, &srv, err, sizeof(err)) != MQ_OK) {
        MQ_LOG_ERROR("broker did not start: %s", err);
        fprintf(stderr, "mqbroker: %s\n", err);
        code = 1;
    } else {
        code = br_server_run(srv);
    }
    mq_conf_fini(br_conf_keys, br_conf_nkeys, &conf);
    return code;
}
