/*
 * mqadmin: LedgerMQ's admin command line, with RocketMQ mqadmin's command
 * names and output, over our admin API (ledgermq.admin.v1.Admin on a
 * broker's gRPC port; any broker answers for the whole cluster).
 *
 *   mqadmin [-n host:port] <command> [options]
 *
 * This file only parses the global options and dispatches; the commands
 * live in mqa_topic.c, mqa_cluster.c and mqa_group.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mqa_common.h"

const mqa_cmd_t mqa_cmds[] = {
    {"updateTopic", mqa_update_topic,
     "-t topic [-w writeQueueNums] [-r readQueueNums] [-p perm] [-a +message.type=TYPE] [-o order] "
     "[-c cluster]",
     "Create a topic, or update an existing one (its queue count may only grow).",
     "  -t topic       topic name ([%|a-zA-Z0-9_-], 1..127 chars)\n"
     "  -w n, -r n     queue count (LedgerMQ has one count: the larger of the two);\n"
     "                 default: the broker's defaultTopicQueueNums, or unchanged on update\n"
     "  -p perm        2 (write), 4 (read) or 6 (read and write, the default)\n"
     "  -a attrs       +message.type=NORMAL|FIFO|DELAY|TRANSACTION|MIXED (default NORMAL)\n"
     "  -o true|false  order: true means message.type FIFO (when -a does not say)\n"
     "  -c cluster     cluster name; checked against the broker's\n"},
    {"topicList", mqa_topic_list, "", "List the topics, one per line.", NULL},
    {"topicStatus", mqa_topic_status, "-t topic",
     "Queues of a topic: owning broker, min and max offsets, ledgers, last store time.",
     "  -t topic       topic name\n"},
    {"topicRoute", mqa_topic_route, "-t topic",
     "The topic's route as JSON, like RocketMQ's (brokerDatas, queueDatas), from DescribeTopic.",
     "  -t topic       topic name\n"},
    {"clusterList", mqa_cluster_list, "",
     "Brokers of the cluster (address, in/out TPS, queues, leader) and its bookies.", NULL},
    {"readMessages", mqa_read_messages, "-t topic -q queueId -o offset [-m max]",
     "Print a queue's stored messages from an offset (id, tag, keys, body size).",
     "  -t topic       topic name\n"
     "  -q queueId     queue id\n"
     "  -o offset      first offset to read\n"
     "  -m max         at most this many messages, 1..1000 (default 32)\n"},
    {"updateSubGroup", mqa_update_sub_group,
     "-g group [-r retryMaxTimes] [-o true|false] [-p policyJson] [-c cluster]",
     "Create a consumer group, or update an existing one (fields not given take the defaults).",
     "  -g group       group name ([%|a-zA-Z0-9_-], 1..255 chars)\n"
     "  -r n           retryMaxTimes, 1..1000 (default 16): redeliveries before %DLQ%<group>\n"
     "  -o true|false  consumeMessageOrderly: a FIFO group (default false)\n"
     "  -p json        groupRetryPolicy, EXPONENTIAL only, e.g.\n"
     "                 '{\"type\":\"EXPONENTIAL\",\"exponentialRetryPolicy\":"
     "{\"initial\":1000,\"max\":7200000,\"multiplier\":2}}'\n"
     "                 (default initial 1000 ms, max 7200000 ms, multiplier 2)\n"
     "  -c cluster     cluster name; checked against the broker's\n"},
    {"consumerProgress", mqa_consumer_progress, "[-g group [-t topic]]",
     "A group's progress per queue (offsets, in flight, diff); without -g, the groups.",
     "  -g group       consumer group (without it: every group and its settings)\n"
     "  -t topic       only this topic's queues\n"},
};
const size_t mqa_ncmds = sizeof(mqa_cmds) / sizeof(mqa_cmds[0]);

static void mqa_main_usage(FILE *out)
{
    fprintf(out, "usage: mqadmin [-n host:port] <command> [options]\n\n"
                 "  -n host:port   broker gRPC endpoint (default $LEDGERMQ_ENDPOINT, "
                 "or " MQA_DEFAULT_ENDPOINT ")\n\n"
                 "commands:\n");
    for (size_t i = 0; i < mqa_ncmds; i++) {
        const char *h = mqa_cmds[i].help;
        int len = (int)strcspn(h, "\n");
        fprintf(out, "  %-14s %.*s\n", mqa_cmds[i].name, len, h);
    }
    fprintf(out,
            "\nmqadmin <command> -h (or mqadmin help <command>) for its options.\n"
            "exit status: 0 done; 1 the request failed (the gRPC status is printed); 2 usage\n");
}

int main(int argc, char **argv)
{
    mqa_t a;
    memset(&a, 0, sizeof(a));
    const char *env = getenv("LEDGERMQ_ENDPOINT");
    a.endpoint = env && *env ? env : MQA_DEFAULT_ENDPOINT;
    mq_log_level = MQ_LOG_LVL_WARN;
    /* Global options come before the command. */
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            mqa_main_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            a.endpoint = argv[i + 1];
            i += 2;
            continue;
        }
        if (strncmp(argv[i], "-n", 2) == 0 && argv[i][2]) {
            a.endpoint = argv[i] + 2;
            i++;
            continue;
        }
        fprintf(stderr, "mqadmin: unknown option '%s'\n", argv[i]);
        mqa_main_usage(stderr);
        return 2;
    }
    if (i == argc) {
        mqa_main_usage(stderr);
        return 2;
    }
    if (strcmp(argv[i], "help") == 0) {
        const mqa_cmd_t *c = i + 1 < argc ? mqa_cmd_find(argv[i + 1]) : NULL;
        if (c) {
            mqa_cmd_usage(c, stdout);
        } else {
            mqa_main_usage(stdout);
        }
        return 0;
    }
    const mqa_cmd_t *c = mqa_cmd_find(argv[i]);
    if (!c) {
        fprintf(stderr, "mqadmin: unknown command '%s'\n", argv[i]);
        mqa_main_usage(stderr);
        return 2;
    }
    a.cmd = c->name;
    int code = c->fn(&a, argc - i, argv + i);
    mqa_close(&a);
    return code;
}
