/*
 * br_group: consumer group records in ZooKeeper (<root>/groups/<name>) and a
 * watched cache of them (br_groups_t), the consume side's twin of br_topic.
 *
 * Records use br_cluster_rec's framing:
 *
 *   # LedgerMQ group
 *   version=1
 *   name=<group>
 *   retryMaxTimes=<0..1000>
 *   consumeMessageOrderly=<0|1>
 *   retryPolicy=EXPONENTIAL
 *   retryInitialMs=<1..retryMaxMs>
 *   retryMaxMs=<..604800000>
 *   retryMultiplier=<1..100, as "%.17g" writes it>
 *   ctime=<ms since the epoch>
 *   checksum=<crc32c>
 *
 * Create is one zk_create (making <root>/groups when missing); update is a
 * compare-and-set loop on the version read, and overwrites a record it
 * cannot read (that is how an operator repairs one).
 *
 * The cache (br_groups_t) is a br_reccache of the children of
 * <root>/groups, as br_topics is (see br_reccache.c for how it stays
 * correct): this file gives it the record's size, its decoder and
 * br_group_create.
 *
 * Threads. br_group_create/read/update/list and br_groups_get/ensure: any
 * thread but the zk client's event thread (they block on ZooKeeper).
 */
#include "br_group.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_cluster_rec.h"
#include "br_reccache.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_GROUP_REC "group"
#define BR_GROUP_POLICY "EXPONENTIAL"
#define BR_GROUP_DEF_INITIAL_MS 1000
#define BR_GROUP_DEF_MAX_MS 7200000
#define BR_GROUP_DEF_MULTIPLIER 2.0
/* Bounds of the back-off: a week (maxInvisibleTimeMills' upper bound), and
 * a growth that reaches it within a few attempts at most. */
#define BR_GROUP_MAX_BACKOFF_MS 604800000u
#define BR_GROUP_MAX_MULTIPLIER 100.0
/* Compare-and-set rounds of br_group_update (each lost round means another
 * writer succeeded). */
#define BR_GROUP_ROUNDS 16

/* --- names, defaults, back-off ---------------------------------------------- */

/* @thread any (pure) */
bool br_group_name_valid(const char *name)
{
    if (!name) {
        return false;
    }
    size_t n = strnlen(name, BR_GROUP_NAME_MAX + 1);
    if (n == 0 || n > BR_GROUP_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '%' || c == '|' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void br_group_default(const char *name, br_group_t *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name ? name : "");
    out->retry_max_times = BR_GROUP_DEF_RETRY_MAX;
    out->fifo = false;
    out->retry_initial_ms = BR_GROUP_DEF_INITIAL_MS;
    out->retry_max_ms = BR_GROUP_DEF_MAX_MS;
    out->retry_multiplier = BR_GROUP_DEF_MULTIPLIER;
}

int br_group_max_attempts(const br_group_t *g)
{
    return g->retry_max_times + 1;
}

uint64_t br_group_backoff_ms(const br_group_t *g, int attempt)
{
    if (attempt < 1) {
        attempt = 1;
    }
    /* pow() saturates to infinity rather than overflowing, and the cap
     * below takes care of that. */
    double d = (double)g->retry_initial_ms * pow(g->retry_multiplier, (double)(attempt - 1));
    if (!(d < (double)g->retry_max_ms)) {
        return g->retry_max_ms;
    }
    return (uint64_t)d;
}

/* --- the record ------------------------------------------------------------ */

static bool br_group_valid(const br_group_t *g)
{
    return g && br_group_name_valid(g->name) && g->retry_max_times >= 0 &&
           g->retry_max_times <= BR_GROUP_MAX_RETRY && g->retry_initial_ms >= 1 &&
           g->retry_initial_ms <= g->retry_max_ms && g->retry_max_ms <= BR_GROUP_MAX_BACKOFF_MS &&
           isfinite(g->retry_multiplier) && g->retry_multiplier >= 1.0 &&
           g->retry_multiplier <= BR_GROUP_MAX_MULTIPLIER && g->ctime_ms <= (uint64_t)INT64_MAX;
}

static mq_err_t br_group_encode(const br_group_t *g, char **out, size_t *len)
{
    if (!br_group_valid(g)) {
        return MQ_EINVAL;
    }
    br_rec_buf_t b;
    br_rec_begin(&b, BR_GROUP_REC);
    br_rec_printf(&b,
                  "name=%s\nretryMaxTimes=%d\nconsumeMessageOrderly=%d\nretryPolicy=%s\n"
                  "retryInitialMs=%u\nretryMaxMs=%u\nretryMultiplier=%.17g\nctime=%llu\n",
                  g->name, g->retry_max_times, g->fifo ? 1 : 0, BR_GROUP_POLICY,
                  (unsigned)g->retry_initial_ms, (unsigned)g->retry_max_ms, g->retry_multiplier,
                  (unsigned long long)g->ctime_ms);
    *out = br_rec_finish(&b, len);
    return MQ_OK;
}

enum {
    BR_GROUP_K_NAME,
    BR_GROUP_K_RETRY_MAX,
    BR_GROUP_K_ORDERLY,
    BR_GROUP_K_POLICY,
    BR_GROUP_K_INITIAL,
    BR_GROUP_K_MAX,
    BR_GROUP_K_MULTIPLIER,
    BR_GROUP_K_CTIME
};
static const char *const br_group_keys[] = {
    "name",           "retryMaxTimes", "consumeMessageOrderly", "retryPolicy",
    "retryInitialMs", "retryMaxMs",    "retryMultiplier",       "ctime"};

static mq_err_t br_group_decode(const char *data, size_t len, br_group_t *out, char *why,
                                size_t why_len)
{
    memset(out, 0, sizeof(*out));
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_GROUP_REC, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    br_group_t g;
    memset(&g, 0, sizeof(g));
    size_t k;
    const char *v;
    size_t vn;
    while (br_rec_next_key(&r, br_group_keys, MQ_ARRAY_LEN(br_group_keys), &k, &v, &vn)) {
        uint64_t u = 0;
        bool ok;
        char policy[16];
        switch (k) {
        case BR_GROUP_K_NAME:
            ok = br_rec_str(v, vn, g.name, sizeof(g.name), false) && br_group_name_valid(g.name);
            break;
        case BR_GROUP_K_RETRY_MAX:
            ok = br_rec_u64(v, vn, &u) && u <= BR_GROUP_MAX_RETRY;
            g.retry_max_times = (int)u;
            break;
        case BR_GROUP_K_ORDERLY:
            ok = br_rec_u64(v, vn, &u) && u <= 1;
            g.fifo = u == 1;
            break;
        case BR_GROUP_K_POLICY:
            ok = br_rec_str(v, vn, policy, sizeof(policy), false) &&
                 strcmp(policy, BR_GROUP_POLICY) == 0;
            break;
        case BR_GROUP_K_INITIAL:
        case BR_GROUP_K_MAX:
            ok = br_rec_u64(v, vn, &u) && u <= BR_GROUP_MAX_BACKOFF_MS;
            if (k == BR_GROUP_K_INITIAL) {
                g.retry_initial_ms = (uint32_t)u;
            } else {
                g.retry_max_ms = (uint32_t)u;
            }
            break;
        case BR_GROUP_K_MULTIPLIER:
            ok = br_rec_double(v, vn, &g.retry_multiplier);
            break;
        default:
            ok = br_rec_u64(v, vn, &u) && u <= (uint64_t)INT64_MAX;
            g.ctime_ms = u;
            break;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: bad value for %s", r.line, br_group_keys[k]);
            return MQ_ECORRUPT;
        }
    }
    err = br_rec_keys_done(&r, br_group_keys, MQ_ARRAY_LEN(br_group_keys));
    if (err != MQ_OK) {
        return err;
    }
    /* The values that depend on each other (and the multiplier's range). */
    if (!br_group_valid(&g)) {
        br_rec_why(why, why_len, "back-off out of range");
        return MQ_ECORRUPT;
    }
    *out = g;
    return MQ_OK;
}

/* Decodes a record read for name into rec (a br_group_t); MQ_ECORRUPT
 * (logged) when it is not one. A br_reccache_parse_cb: @thread the caller
 * of br_group_read or br_groups_get/ensure. */
static mq_err_t br_group_decode_for(const char *name, const char *data, size_t len, void *rec)
{
    br_group_t *out = rec;
    char why[160] = "";
    mq_err_t err = br_group_decode(data, len, out, why, sizeof(why));
    if (err == MQ_OK && strcmp(out->name, name) != 0) {
        snprintf(why, sizeof(why), "record names group '%s'", out->name);
        err = MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("group record unreadable group=%s err=%s why=%s", name, mq_err_name(err), why);
    }
    return err;
}

/* --- ZooKeeper --------------------------------------------------------------- */

static bool br_group_path(char *out, size_t cap, const char *root, const char *name)
{
    return br_rec_path(out, cap, root, "/groups/%s", name);
}

mq_err_t br_group_create(zk_client_t *zk, const char *root, const br_group_t *group)
{
    if (!zk || !br_group_valid(group)) {
        return MQ_EINVAL;
    }
    char path[BR_PATH_MAX];
    if (!br_group_path(path, sizeof(path), root, group->name)) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = br_group_encode(group, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    err = zk_create_parents(zk, path, data, len, ZK_PERSISTENT, NULL, 0);
    free(data);
    return err;
}

mq_err_t br_group_read(zk_client_t *zk, const char *root, const char *name, br_group_t *out)
{
    if (!zk || !br_group_name_valid(name) || !out) {
        return MQ_EINVAL;
    }
    char path[BR_PATH_MAX];
    if (!br_group_path(path, sizeof(path), root, name)) {
        return MQ_EINVAL;
    }
    return br_reccache_read(zk, path, name, br_group_decode_for, out);
}

mq_err_t br_group_update(zk_client_t *zk, const char *root, const br_group_t *group)
{
    if (!zk || !br_group_valid(group)) {
        return MQ_EINVAL;
    }
    char path[BR_PATH_MAX];
    if (!br_group_path(path, sizeof(path), root, group->name)) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = br_group_encode(group, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    /* Any record (even a broken one) is replaced: check is NULL. */
    err = br_reccache_rewrite(zk, path, data, len, BR_GROUP_ROUNDS, NULL, NULL);
    free(data);
    return err;
}

mq_err_t br_group_list(zk_client_t *zk, const char *root, char ***names, size_t *count)
{
    if (!zk || !names || !count) {
        return MQ_EINVAL;
    }
    *names = NULL;
    *count = 0;
    char dir[BR_PATH_MAX];
    if (!br_rec_path(dir, sizeof(dir), root, "/groups")) {
        return MQ_EINVAL;
    }
    return br_reccache_list(zk, dir, br_group_name_valid, names, count);
}

/* --- the cache ------------------------------------------------------------- */

struct br_groups {
    zk_client_t *zk;
    char *root;
    br_reccache_t *rc;
};

/* @thread the caller of br_groups_ensure (br_reccache_create_cb) */
static mq_err_t br_groups_create(void *arg, const void *want)
{
    br_groups_t *gc = arg;
    const br_group_t *g = want;
    mq_err_t err = br_group_create(gc->zk, gc->root, g);
    if (err == MQ_OK) {
        MQ_LOG_INFO("group created with the defaults group=%s retryMaxTimes=%d", g->name,
                    g->retry_max_times);
    }
    return err;
}

/* @thread any but the zk event thread */
mq_err_t br_groups_new(zk_client_t *zk, const char *root, br_groups_t **out)
{
    if (!zk || !out) {
        return MQ_EINVAL;
    }
    char dir[BR_PATH_MAX];
    if (!br_rec_path(dir, sizeof(dir), root, "/groups")) {
        return MQ_EINVAL;
    }
    br_groups_t *gc = mq_calloc(1, sizeof(*gc));
    br_reccache_conf_t conf = {
        .kind = "group",
        .rec_size = sizeof(br_group_t),
        .parse = br_group_decode_for,
        .create = br_groups_create,
        .arg = gc,
    };
    mq_err_t err = br_reccache_new(zk, dir, &conf, &gc->rc);
    if (err != MQ_OK) {
        free(gc);
        return err;
    }
    gc->zk = zk;
    gc->root = mq_strdup(root ? root : "");
    *out = gc;
    return MQ_OK;
}

/* @thread any but the zk event thread; no call on gc may be running */
void br_groups_free(br_groups_t *gc)
{
    if (!gc) {
        return;
    }
    br_reccache_free(gc->rc);
    free(gc->root);
    free(gc);
}

/* @thread any but the zk event thread (blocks on a miss) */
mq_err_t br_groups_get(br_groups_t *gc, const char *name, br_group_t *out)
{
    if (!gc || !out || !br_group_name_valid(name)) {
        return MQ_EINVAL;
    }
    return br_reccache_get(gc->rc, name, out);
}

mq_err_t br_groups_peek(br_groups_t *gc, const char *name, br_group_t *out)
{
    if (!gc || !out || !br_group_name_valid(name)) {
        return MQ_EINVAL;
    }
    return br_reccache_peek(gc->rc, name, out);
}

/* @thread any but the zk event thread */
mq_err_t br_groups_ensure(br_groups_t *gc, const char *name, br_group_t *out)
{
    if (!gc || !out || !br_group_name_valid(name)) {
        return MQ_EINVAL;
    }
    br_group_t want;
    br_group_default(name, &want);
    want.ctime_ms = mq_wall_ms();
    return br_reccache_ensure(gc->rc, name, &want, out);
}
