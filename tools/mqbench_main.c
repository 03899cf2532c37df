/*
 * mqbench: LedgerMQ's load generator. Subcommands measure throughput and
 * latency; the tests assert behaviour, this tool measures speed.
 *
 *   mqbench bookie ...   adds (and reads back) entries directly on bookies
 *   mqbench ledger ...   writes ledgers through the ledger client
 *   mqbench disk ...     raw group-commit fdatasync bandwidth of a directory
 *   mqbench produce ...  sends messages to brokers over RocketMQ 5's gRPC protocol
 *   mqbench consume ...  receives and acknowledges them as simple consumers
 */
#include <stdio.h>
#include <string.h>

#include "mqb_common.h"

static void mqb_main_usage(FILE *out)
{
    fprintf(out, "usage: mqbench <command> [options]\n\n"
                 "commands:\n"
                 "  bookie   write entries to bookies directly; --verify reads them back\n"
                 "  ledger   write (E,Qw,Qa) ledgers through the ledger client; recover; show\n"
                 "  disk     measure group-commit fdatasync bandwidth of a directory\n"
                 "  produce  send messages to brokers (RocketMQ 5 gRPC), open or closed loop\n"
                 "  consume  receive and acknowledge messages as simple consumers; verify\n\n"
                 "mqbench <command> --help for its options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        mqb_main_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "bookie") == 0) {
        return mqb_bookie_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "ledger") == 0) {
        return mqb_ledger_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "produce") == 0) {
        return mqb_produce_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "consume") == 0) {
        return mqb_consume_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "disk") == 0) {
        return mqb_disk_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "mqbench: unknown command '%s'\n", argv[1]);
    mqb_main_usage(stderr);
    return 2;
}
