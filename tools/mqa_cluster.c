/*
 * mqa_cluster: mqadmin's clusterList (ClusterStatus: every broker with its
 * endpoint, load, queue count and whether it leads the cluster, then the
 * bookies), and the cluster name the other commands print.
 */
#include <getopt.h>
#include <pb_decode.h>
#include <stdlib.h>
#include <string.h>

#include "admin.pb.h"
#include "mqa_common.h"

static bool mqa_cluster_status(mqa_t *a, ledgermq_admin_v1_ClusterStatusResponse *resp)
{
    ledgermq_admin_v1_ClusterStatusRequest req = ledgermq_admin_v1_ClusterStatusRequest_init_zero;
    memset(resp, 0, sizeof(*resp));
    return mqa_call(a, "ClusterStatus", ledgermq_admin_v1_ClusterStatusRequest_fields, &req,
                    ledgermq_admin_v1_ClusterStatusResponse_fields, resp);
}

bool mqa_cluster_name(mqa_t *a, char *buf, size_t cap)
{
    ledgermq_admin_v1_ClusterStatusResponse resp;
    if (!mqa_cluster_status(a, &resp)) {
        return false;
    }
    snprintf(buf, cap, "%s", resp.cluster ? resp.cluster : "");
    pb_release(ledgermq_admin_v1_ClusterStatusResponse_fields, &resp);
    return true;
}

static int mqa_cmp_broker(const void *x, const void *y)
{
    const ledgermq_admin_v1_BrokerInfo *a = x;
    const ledgermq_admin_v1_BrokerInfo *b = y;
    return strcmp(a->id ? a->id : "", b->id ? b->id : "");
}

static int mqa_cmp_bookie(const void *x, const void *y)
{
    const ledgermq_admin_v1_BookieInfo *a = x;
    const ledgermq_admin_v1_BookieInfo *b = y;
    return strcmp(a->id ? a->id : "", b->id ? b->id : "");
}

static const char *mqa_s(const char *s)
{
    return s && *s ? s : "-";
}

int mqa_cluster_list(mqa_t *a, int argc, char **argv)
{
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_OTHER) {
            return mqa_usage_error(a, "unknown option -%c", c);
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    ledgermq_admin_v1_ClusterStatusResponse resp;
    if (!mqa_cluster_status(a, &resp)) {
        return 1;
    }
    if (resp.brokers_count) {
        qsort(resp.brokers, resp.brokers_count, sizeof(*resp.brokers), mqa_cmp_broker);
    }
    if (resp.bookies_count) {
        qsort(resp.bookies, resp.bookies_count, sizeof(*resp.bookies), mqa_cmp_bookie);
    }
    printf("%-22s  %-22s  %-22s  %12s  %12s  %7s  %s\n", "#Cluster Name", "#Broker Name", "#Addr",
           "#InTPS", "#OutTPS", "#Queues", "#Leader");
    for (pb_size_t i = 0; i < resp.brokers_count; i++) {
        const ledgermq_admin_v1_BrokerInfo *b = &resp.brokers[i];
        printf("%-22s  %-22s  %-22s  %12.2f  %12.2f  %7d  %s\n",
               mqa_s(b->cluster && *b->cluster ? b->cluster : resp.cluster), mqa_s(b->id),
               mqa_s(b->endpoint), b->msgs_in, b->msgs_out, (int)b->queues,
               b->leader ? "true" : "false");
    }
    printf("\n%-22s  %-22s  %s\n", "#Bookie ID", "#Addr", "#Mode");
    for (pb_size_t i = 0; i < resp.bookies_count; i++) {
        const ledgermq_admin_v1_BookieInfo *k = &resp.bookies[i];
        printf("%-22s  %-22s  %s\n", mqa_s(k->id), mqa_s(k->address),
               k->read_only ? "read-only" : "read-write");
    }
    pb_release(ledgermq_admin_v1_ClusterStatusResponse_fields, &resp);
    return 0;
}
