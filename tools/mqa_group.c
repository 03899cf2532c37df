/*
 * mqa_group: mqadmin's consumer group commands: updateSubGroup (UpdateGroup:
 * create, or update when the group exists, as RocketMQ's command does) and
 * consumerProgress (ConsumerProgress for one group; ListGroups without -g).
 *
 * updateSubGroup takes RocketMQ's option letters where LedgerMQ has the
 * setting: -g, -r retryMaxTimes, -o consumeMessageOrderly, -p
 * groupRetryPolicy (its JSON, EXPONENTIAL only) and -c cluster. Like
 * RocketMQ's it sends a whole config: what is not given takes the default,
 * also on update.
 */
#include <ctype.h>
#include <inttypes.h>
#include <pb_decode.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.pb.h"
#include "mq_util.h"
#include "mqa_common.h"

/* The broker's limits (br_group.h), checked here only for the message. */
#define MQA_GROUP_MAX_RETRY 1000

/* --- -p: RocketMQ's GroupRetryPolicy JSON -------------------------------------- */

typedef struct mqa_policy {
    int64_t initial_ms;
    int64_t max_ms;
    double multiplier;
} mqa_policy_t;

static void mqa_js_ws(const char **p)
{
    while (isspace((unsigned char)**p)) {
        (*p)++;
    }
}

static bool mqa_js_char(const char **p, char c)
{
    mqa_js_ws(p);
    if (**p != c) {
        return false;
    }
    (*p)++;
    return true;
}

/* A string without escapes (all the policy's strings are plain words). */
static bool mqa_js_str(const char **p, char *out, size_t cap)
{
    if (!mqa_js_char(p, '"')) {
        return false;
    }
    size_t n = 0;
    while (**p && **p != '"' && **p != '\\') {
        if (n + 1 >= cap) {
            return false;
        }
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return mqa_js_char(p, '"');
}

static bool mqa_js_num(const char **p, double *out)
{
    mqa_js_ws(p);
    char *end;
    *out = strtod(*p, &end);
    if (end == *p) {
        return false;
    }
    *p = end;
    return true;
}

static bool mqa_js_ms(const char **p, int64_t *out)
{
    double v;
    if (!mqa_js_num(p, &v) || v != (double)(int64_t)v || v < 1 || v > 604800000) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* {"initial": ms, "max": ms, "multiplier": x} */
static bool mqa_js_exponential(const char **p, mqa_policy_t *pol, const char **why)
{
    if (!mqa_js_char(p, '{')) {
        return false;
    }
    if (mqa_js_char(p, '}')) {
        return true;
    }
    do {
        char key[32];
        if (!mqa_js_str(p, key, sizeof(key)) || !mqa_js_char(p, ':')) {
            return false;
        }
        bool ok;
        if (strcmp(key, "initial") == 0) {
            ok = mqa_js_ms(p, &pol->initial_ms);
        } else if (strcmp(key, "max") == 0) {
            ok = mqa_js_ms(p, &pol->max_ms);
        } else if (strcmp(key, "multiplier") == 0) {
            ok = mqa_js_num(p, &pol->multiplier) && pol->multiplier >= 1 && pol->multiplier <= 100;
        } else {
            *why = "unknown key in exponentialRetryPolicy (initial, max, multiplier)";
            return false;
        }
        if (!ok) {
            *why = "initial and max are 1..604800000 ms, multiplier 1..100";
            return false;
        }
    } while (mqa_js_char(p, ','));
    return mqa_js_char(p, '}');
}

/* Parses -p; false with a message printed. */
static bool mqa_parse_policy(const mqa_t *a, const char *json, mqa_policy_t *pol)
{
    const char *p = json;
    const char *why = "expected {\"type\":\"EXPONENTIAL\",\"exponentialRetryPolicy\":"
                      "{\"initial\":5000,\"max\":7200000,\"multiplier\":2}}";
    char type[32] = "";
    bool ok = mqa_js_char(&p, '{');
    bool empty = ok && mqa_js_char(&p, '}');
    while (ok && !empty) {
        char key[64];
        ok = mqa_js_str(&p, key, sizeof(key)) && mqa_js_char(&p, ':');
        if (!ok) {
            break;
        }
        if (strcmp(key, "type") == 0) {
            ok = mqa_js_str(&p, type, sizeof(type));
        } else if (strcmp(key, "exponentialRetryPolicy") == 0) {
            ok = mqa_js_exponential(&p, pol, &why);
        } else if (strcmp(key, "customizedRetryPolicy") == 0) {
            why = "LedgerMQ supports the EXPONENTIAL retry policy only";
            ok = false;
        } else {
            ok = false;
        }
        if (!ok || !mqa_js_char(&p, ',')) {
            ok = ok && mqa_js_char(&p, '}');
            break;
        }
    }
    mqa_js_ws(&p);
    if (ok && *p != '\0') {
        ok = false;
    }
    if (ok && strcmp(type, "EXPONENTIAL") != 0) {
        why = type[0] ? "LedgerMQ supports the EXPONENTIAL retry policy only"
                      : "the policy needs \"type\":\"EXPONENTIAL\"";
        ok = false;
    }
    if (!ok) {
        mqa_usage_error(a, "bad -p '%s': %s", json, why);
    }
    return ok;
}

/* --- updateSubGroup ------------------------------------------------------------ */

static bool mqa_parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        *out = s[0] == 't';
        return true;
    }
    return false;
}

int mqa_update_sub_group(mqa_t *a, int argc, char **argv)
{
    const char *group = NULL;
    const char *cluster = NULL;
    int64_t retries = 0;
    bool orderly = false;
    mqa_policy_t pol = {0, 0, 0};
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:g:r:o:p:c:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_TAKEN) {
            continue;
        }
        switch (c) {
        case 'g':
            group = optarg;
            break;
        case 'r':
            if (!mqa_parse_int(optarg, 0, MQA_GROUP_MAX_RETRY, &retries)) {
                return mqa_usage_error(a, "bad -r '%s' (retryMaxTimes, 1..%d)", optarg,
                                       MQA_GROUP_MAX_RETRY);
            }
            /* The admin API reads 0 as "the default". */
            if (retries == 0) {
                return mqa_usage_error(a,
                                       "-r 0 is not supported (0 means the default, 16, in "
                                       "the admin API); use 1..%d",
                                       MQA_GROUP_MAX_RETRY);
            }
            break;
        case 'o':
            if (!mqa_parse_bool(optarg, &orderly)) {
                return mqa_usage_error(a, "bad -o '%s' (true or false)", optarg);
            }
            break;
        case 'p':
            if (!mqa_parse_policy(a, optarg, &pol)) {
                return 2;
            }
            break;
        case 'c':
            cluster = optarg;
            break;
        default:
            return mqa_usage_error(a, "unknown option");
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    if (!group || !*group) {
        return mqa_usage_error(a, "-g group is required");
    }
    char name[256];
    if (cluster) {
        if (!mqa_cluster_name(a, name, sizeof(name))) {
            return 1;
        }
        if (strcmp(name, cluster) != 0) {
            return mqa_fail(a, "cluster '%s' not found (%s belongs to cluster '%s')", cluster,
                            a->endpoint, name);
        }
    }
    ledgermq_admin_v1_UpdateGroupRequest req = ledgermq_admin_v1_UpdateGroupRequest_init_zero;
    req.has_group = true;
    req.group.name = (char *)group;
    req.group.retry_max_times = (int32_t)retries;
    req.group.consume_orderly = orderly;
    req.group.retry_initial_ms = (uint32_t)pol.initial_ms;
    req.group.retry_max_ms = (uint32_t)pol.max_ms;
    req.group.retry_multiplier = pol.multiplier;
    ledgermq_admin_v1_UpdateGroupResponse resp = ledgermq_admin_v1_UpdateGroupResponse_init_zero;
    rpc_status_t st;
    /* Create; if it exists, update (RocketMQ's command does either). */
    if (!mqa_call_st(a, "UpdateGroup", ledgermq_admin_v1_UpdateGroupRequest_fields, &req,
                     ledgermq_admin_v1_UpdateGroupResponse_fields, &resp, RPC_ALREADY_EXISTS,
                     &st)) {
        if (st != RPC_ALREADY_EXISTS) {
            return 1;
        }
        req.update = true;
        memset(&resp, 0, sizeof(resp));
        if (!mqa_call(a, "UpdateGroup", ledgermq_admin_v1_UpdateGroupRequest_fields, &req,
                      ledgermq_admin_v1_UpdateGroupResponse_fields, &resp)) {
            return 1;
        }
    }
    if (!cluster && !mqa_cluster_name(a, name, sizeof(name))) {
        /* Only for the message: the group exists whatever this answers. */
        snprintf(name, sizeof(name), "%s", a->endpoint);
    }
    const ledgermq_admin_v1_GroupConfig *g = &resp.group;
    printf("create subscription group to %s success.\n", name);
    printf("SubscriptionGroupConfig{groupName=%s, consumeEnable=true, consumeMessageOrderly=%s, "
           "retryMaxTimes=%d, groupRetryPolicy=GroupRetryPolicy{type=EXPONENTIAL, "
           "exponentialRetryPolicy=ExponentialRetryPolicy{initial=%u, max=%u, multiplier=%g}}}\n",
           g->name ? g->name : group, g->consume_orderly ? "true" : "false",
           (int)g->retry_max_times, (unsigned)g->retry_initial_ms, (unsigned)g->retry_max_ms,
           g->retry_multiplier);
    pb_release(ledgermq_admin_v1_UpdateGroupResponse_fields, &resp);
    return 0;
}

/* --- consumerProgress ---------------------------------------------------------- */

static int mqa_cmp_group(const void *x, const void *y)
{
    const ledgermq_admin_v1_GroupConfig *a = x;
    const ledgermq_admin_v1_GroupConfig *b = y;
    return strcmp(a->name ? a->name : "", b->name ? b->name : "");
}

static int mqa_cmp_queue(const void *x, const void *y)
{
    const ledgermq_admin_v1_QueueProgress *a = x;
    const ledgermq_admin_v1_QueueProgress *b = y;
    int c = strcmp(a->topic ? a->topic : "", b->topic ? b->topic : "");
    if (c != 0) {
        return c;
    }
    return (a->queue_id > b->queue_id) - (a->queue_id < b->queue_id);
}

/* Every group and its settings (ListGroups). */
static int mqa_list_groups(mqa_t *a)
{
    ledgermq_admin_v1_ListGroupsRequest req = ledgermq_admin_v1_ListGroupsRequest_init_zero;
    ledgermq_admin_v1_ListGroupsResponse resp = ledgermq_admin_v1_ListGroupsResponse_init_zero;
    if (!mqa_call(a, "ListGroups", ledgermq_admin_v1_ListGroupsRequest_fields, &req,
                  ledgermq_admin_v1_ListGroupsResponse_fields, &resp)) {
        return 1;
    }
    if (resp.groups_count) {
        qsort(resp.groups, resp.groups_count, sizeof(*resp.groups), mqa_cmp_group);
    }
    printf("%-64s  %-8s  %-14s  %s\n", "#Group", "#Orderly", "#RetryMaxTimes", "#RetryPolicy");
    for (pb_size_t i = 0; i < resp.groups_count; i++) {
        const ledgermq_admin_v1_GroupConfig *g = &resp.groups[i];
        printf("%-64s  %-8s  %-14d  EXPONENTIAL initial=%ums max=%ums multiplier=%g\n",
               g->name ? g->name : "", g->consume_orderly ? "true" : "false",
               (int)g->retry_max_times, (unsigned)g->retry_initial_ms, (unsigned)g->retry_max_ms,
               g->retry_multiplier);
    }
    pb_release(ledgermq_admin_v1_ListGroupsResponse_fields, &resp);
    return 0;
}

int mqa_consumer_progress(mqa_t *a, int argc, char **argv)
{
    const char *group = NULL;
    const char *topic = NULL;
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "+n:g:t:h")) != -1) {
        int ec = mqa_common_opt(a, c, optarg);
        if (ec >= 0) {
            return ec;
        }
        if (ec == MQA_OPT_TAKEN) {
            continue;
        }
        if (c == 'g') {
            group = optarg;
        } else if (c == 't') {
            topic = optarg;
        } else {
            return mqa_usage_error(a, "unknown option");
        }
    }
    if (optind < argc) {
        return mqa_usage_error(a, "unexpected argument '%s'", argv[optind]);
    }
    if (!group || !*group) {
        if (topic) {
            return mqa_usage_error(a, "-t topic needs -g group");
        }
        return mqa_list_groups(a);
    }
    ledgermq_admin_v1_ConsumerProgressRequest req =
        ledgermq_admin_v1_ConsumerProgressRequest_init_zero;
    req.group = (char *)group;
    req.topic = (char *)(topic ? topic : "");
    ledgermq_admin_v1_ConsumerProgressResponse resp =
        ledgermq_admin_v1_ConsumerProgressResponse_init_zero;
    rpc_status_t st;
    if (!mqa_call_st(a, "ConsumerProgress", ledgermq_admin_v1_ConsumerProgressRequest_fields, &req,
                     ledgermq_admin_v1_ConsumerProgressResponse_fields, &resp, RPC_UNIMPLEMENTED,
                     &st)) {
        if (st == RPC_UNIMPLEMENTED) {
            mqa_fail(a,
                     "ConsumerProgress: UNIMPLEMENTED: the broker at %s does not serve consumer "
                     "progress (a broker without the consume side)",
                     a->endpoint);
        }
        return 1;
    }
    if (resp.queues_count) {
        qsort(resp.queues, resp.queues_count, sizeof(*resp.queues), mqa_cmp_queue);
    }
    printf("%-64s  %-32s  %-4s  %-20s  %-20s  %-20s  %s\n", "#Topic", "#Broker Name", "#QID",
           "#Broker Offset", "#Consumer Offset", "#Inflight", "#Diff");
    int64_t total = 0;
    for (pb_size_t i = 0; i < resp.queues_count; i++) {
        const ledgermq_admin_v1_QueueProgress *q = &resp.queues[i];
        const char *owner = q->owner && *q->owner ? q->owner : "(unowned)";
        printf("%-64s  %-32s  %-4d  %-20" PRId64 "  %-20" PRId64 "  %-20d  %" PRId64 "\n",
               q->topic ? q->topic : "", owner, (int)q->queue_id, q->broker_offset,
               q->consumer_offset, (int)q->inflight, q->lag);
        total += q->lag;
    }
    printf("\nDiff Total: %" PRId64 "\n", total);
    if (resp.queues_count == 0) {
        fprintf(stderr, "mqadmin consumerProgress: group %s has consumed from no queue%s%s yet\n",
                group, topic ? " of " : "", topic ? topic : "");
    }
    pb_release(ledgermq_admin_v1_ConsumerProgressResponse_fields, &resp);
    return 0;
}
