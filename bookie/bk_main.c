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
    static const char *const flags[] = {"--format", NULL};
    bool flag_on[1] = {false};
    bk_conf_t conf;
    int code = mq_conf_cli("mqbookie", bk_conf_keys, bk_conf_nkeys, &conf, argc, argv,
                           bk_main_usage, flags, flag_on);
    if (code >= 0) {
        return code;
    }
    bool format = flag_on[0];
    mq_signal_block();
    char err[1024];
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
