/*
 * mqbroker: parses arguments, loads the configuration and runs a broker
 * (br_server.h). Everything else lives in the brserver library.
 *
 *   mqbroker -c broker.conf [--set key=value]...   run
 *   mqbroker --help-config                         every key, default, meaning
 */
#include <malloc.h>
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
    /* glibc gives each busy thread its own arena (up to 8 per core) and
     * keeps their free memory: after a burst the broker's RSS stays tens of
     * MB higher. With two, throughput stayed within run-to-run noise
     * (docs/BENCHMARKS.md); MALLOC_ARENA_MAX still overrides. */
    if (!getenv("MALLOC_ARENA_MAX")) {
        mallopt(M_ARENA_MAX, 2);
    }
    br_conf_t conf;
    int code = mq_conf_cli("mqbroker", br_conf_keys, br_conf_nkeys, &conf, argc, argv,
                           br_main_usage, NULL, NULL);
    if (code >= 0) {
        return code;
    }
    mq_signal_block();
    char err[1024];
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
