/*
 * mqb_common: what mqbench's subcommands share: option parsing helpers,
 * deterministic payloads derived from (ledger, entry) so that any later
 * process can check an entry's bytes, and result printing.
 */
#ifndef MQB_COMMON_H
#define MQB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq_hist.h"

/* Parses "123", "64k", "1m", "2g" (powers of 1024). */
bool mqb_parse_size(const char *s, uint64_t *out);
/* The value of option name (a size as above) within [min, max], or a usage
 * error naming the subcommand and the option. */
uint64_t mqb_opt_num(const char *cmd, const char *name, const char *arg, uint64_t min,
                     uint64_t max);
/* Fills buf with the payload of (ledger, entry): a SplitMix64 stream. */
void mqb_payload(uint64_t ledger_id, int64_t entry_id, uint8_t *buf, size_t len);
/* Prints "label p50 .. p99 .. p999 .. max .. mean .." in microseconds. */
void mqb_print_latency(const char *label, const mq_hist_t *h);
/* Fails with a message and exit code 2. */
void mqb_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

int mqb_bookie_main(int argc, char **argv);
int mqb_disk_main(int argc, char **argv);
int mqb_ledger_main(int argc, char **argv);

#endif
