/*
 * br_topic: topic records in ZooKeeper (<root>/topics/<name>, with the child
 * queues/ that br_mlog fills) and a watched cache of them (br_topics_t).
 *
 * Records use br_cluster_rec's framing; br_topic_int.h documents the
 * fields. Create writes the record and queues/ in one zk_multi, so a topic
 * never exists without its queues/ parent; update is a compare-and-set
 * loop on the version read, refusing to shrink the queue count (queues hold
 * data and offsets that clients know).
 *
 * The cache (br_topics_t) is a br_reccache of the children of
 * <root>/topics (see br_reccache.c for how it stays correct): this file
 * gives it the record's size, its decoder and br_topic_create.
 *
 * Threads. br_topic_create/read/update/list and br_topics_get/ensure: any
 * thread but the zk client's event thread (they block on ZooKeeper).
 */
#include "br_topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "br_cluster_rec.h"
#include "br_reccache.h"
#include "br_topic_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_TOPIC_REC "topic"
/* Compare-and-set rounds of br_topic_update before giving up (each lost
 * round means another writer succeeded). */
#define BR_TOPIC_ROUNDS 16

/* --- names and types ------------------------------------------------------ */

/* @thread any (pure) */
bool br_topic_name_valid(const char *name)
{
    if (!name) {
        return false;
    }
    size_t n = strnlen(name, BR_TOPIC_NAME_MAX + 1);
    if (n == 0 || n > BR_TOPIC_NAME_MAX) {
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

static const br_msg_type_t br_msg_types[] = {BR_MSG_TYPE_NORMAL, BR_MSG_TYPE_FIFO,
                                             BR_MSG_TYPE_DELAY, BR_MSG_TYPE_TRANSACTION,
                                             BR_MSG_TYPE_MIXED};

const char *br_msg_type_name(br_msg_type_t type)
{
    switch (type) {
    case BR_MSG_TYPE_UNSPECIFIED:
        return "UNSPECIFIED";
    case BR_MSG_TYPE_NORMAL:
        return "NORMAL";
    case BR_MSG_TYPE_FIFO:
        return "FIFO";
    case BR_MSG_TYPE_DELAY:
        return "DELAY";
    case BR_MSG_TYPE_TRANSACTION:
        return "TRANSACTION";
    case BR_MSG_TYPE_MIXED:
        return "MIXED";
    }
    return "UNKNOWN";
}

/* Case-insensitive, as RocketMQ's admin tools are; UNSPECIFIED is not a type
 * a topic can have, so it does not parse. */
bool br_msg_type_parse(const char *s, br_msg_type_t *out)
{
    if (!s) {
        return false;
    }
    for (size_t i = 0; i < MQ_ARRAY_LEN(br_msg_types); i++) {
        if (strcasecmp(s, br_msg_type_name(br_msg_types[i])) == 0) {
            if (out) {
                *out = br_msg_types[i];
            }
            return true;
        }
    }
    return false;
}

static bool br_msg_type_concrete(br_msg_type_t t)
{
    return t == BR_MSG_TYPE_NORMAL || t == BR_MSG_TYPE_FIFO || t == BR_MSG_TYPE_DELAY ||
           t == BR_MSG_TYPE_TRANSACTION;
}

bool br_msg_type_accepts(br_msg_type_t topic_type, br_msg_type_t msg_type)
{
    if (!br_msg_type_concrete(msg_type)) {
        return false;
    }
    return topic_type == BR_MSG_TYPE_MIXED || topic_type == msg_type;
}

/* --- the record ------------------------------------------------------------ */

bool br_topic_valid(const br_topic_t *t)
{
    return t && br_topic_name_valid(t->name) && t->queues >= 1 &&
           t->queues <= BR_TOPIC_MAX_QUEUES && (t->perm & ~(BR_PERM_READ | BR_PERM_WRITE)) == 0 &&
           (br_msg_type_concrete(t->type) || t->type == BR_MSG_TYPE_MIXED) &&
           t->ctime_ms <= (uint64_t)INT64_MAX;
}

mq_err_t br_topic_encode(const br_topic_t *t, char **out, size_t *len)
{
    if (!br_topic_valid(t) || !out) {
        return MQ_EINVAL;
    }
    br_rec_buf_t b;
    br_rec_begin(&b, BR_TOPIC_REC);
    br_rec_printf(&b, "name=%s\nqueues=%d\nperm=%d\ntype=%s\nctime=%llu\n", t->name, t->queues,
                  t->perm, br_msg_type_name(t->type), (unsigned long long)t->ctime_ms);
    *out = br_rec_finish(&b, len);
    return MQ_OK;
}

enum { BR_TOPIC_K_NAME, BR_TOPIC_K_QUEUES, BR_TOPIC_K_PERM, BR_TOPIC_K_TYPE, BR_TOPIC_K_CTIME };
static const char *const br_topic_keys[] = {"name", "queues", "perm", "type", "ctime"};

mq_err_t br_topic_decode(const char *data, size_t len, br_topic_t *out, char *why, size_t why_len)
{
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_TOPIC_REC, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    br_topic_t t;
    memset(&t, 0, sizeof(t));
    size_t k;
    const char *v;
    size_t vn;
    while (br_rec_next_key(&r, br_topic_keys, MQ_ARRAY_LEN(br_topic_keys), &k, &v, &vn)) {
        uint64_t u = 0;
        bool ok;
        char type[16];
        switch (k) {
        case BR_TOPIC_K_NAME:
            ok = br_rec_str(v, vn, t.name, sizeof(t.name), false) && br_topic_name_valid(t.name);
            break;
        case BR_TOPIC_K_QUEUES:
            ok = br_rec_u64(v, vn, &u) && u >= 1 && u <= BR_TOPIC_MAX_QUEUES;
            t.queues = (int)u;
            break;
        case BR_TOPIC_K_PERM:
            ok = br_rec_u64(v, vn, &u) && (u & ~(uint64_t)(BR_PERM_READ | BR_PERM_WRITE)) == 0;
            t.perm = (int)u;
            break;
        case BR_TOPIC_K_TYPE:
            /* Exactly as the encoder writes it (upper case). */
            ok = br_rec_str(v, vn, type, sizeof(type), false) && br_msg_type_parse(type, &t.type) &&
                 strcmp(type, br_msg_type_name(t.type)) == 0;
            break;
        default:
            ok = br_rec_u64(v, vn, &u) && u <= (uint64_t)INT64_MAX;
            t.ctime_ms = u;
            break;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: bad value for %s", r.line, br_topic_keys[k]);
            return MQ_ECORRUPT;
        }
    }
    err = br_rec_keys_done(&r, br_topic_keys, MQ_ARRAY_LEN(br_topic_keys));
    if (err != MQ_OK) {
        return err;
    }
    *out = t;
    return MQ_OK;
}

/* Decodes a record read for name into rec (a br_topic_t); MQ_ECORRUPT
 * (logged) when it is not one. A br_reccache_parse_cb: @thread the caller
 * of br_topic_read or br_topics_get/ensure. */
static mq_err_t br_topic_decode_for(const char *name, const char *data, size_t len, void *rec)
{
    br_topic_t *out = rec;
    char why[160] = "";
    mq_err_t err = br_topic_decode(data, len, out, why, sizeof(why));
    if (err == MQ_OK && strcmp(out->name, name) != 0) {
        snprintf(why, sizeof(why), "record names topic '%s'", out->name);
        err = MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("topic record unreadable topic=%s err=%s why=%s", name, mq_err_name(err), why);
    }
    return err;
}

/* --- ZooKeeper --------------------------------------------------------------- */

static bool br_topic_path(char *out, size_t cap, const char *root, const char *name,
                          const char *child)
{
    return br_rec_path(out, cap, root, "/topics/%s%s", name, child);
}

/* @thread any but the zk event thread (blocking ZooKeeper calls), as are
 * read, update and list. */
mq_err_t br_topic_create(zk_client_t *zk, const char *root, const br_topic_t *topic)
{
    if (!zk || !br_topic_valid(topic)) {
        return MQ_EINVAL;
    }
    char dir[BR_PATH_MAX];
    char path[BR_PATH_MAX];
    char queues[BR_PATH_MAX];
    if (!br_rec_path(dir, sizeof(dir), root, "/topics") ||
        !br_topic_path(path, sizeof(path), root, topic->name, "") ||
        !br_topic_path(queues, sizeof(queues), root, topic->name, "/queues")) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = br_topic_encode(topic, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    zk_op_t ops[2] = {
        {ZK_OP_CREATE, path, data, len, ZK_PERSISTENT, -1},
        {ZK_OP_CREATE, queues, NULL, 0, ZK_PERSISTENT, -1},
    };
    for (int round = 0; round < 2; round++) {
        size_t failed = 0;
        err = zk_multi(zk, ops, MQ_ARRAY_LEN(ops), &failed);
        if (err != MQ_ENOTFOUND || round > 0) {
            break;
        }
        /* No <root>/topics yet: make it and try once more. */
        err = zk_create_parents(zk, dir, NULL, 0, ZK_PERSISTENT, NULL, 0);
        if (err != MQ_OK && err != MQ_EEXIST) {
            break;
        }
    }
    free(data);
    return err;
}

mq_err_t br_topic_read(zk_client_t *zk, const char *root, const char *name, br_topic_t *out)
{
    if (!zk || !br_topic_name_valid(name) || !out) {
        return MQ_EINVAL;
    }
    char path[BR_PATH_MAX];
    if (!br_topic_path(path, sizeof(path), root, name, "")) {
        return MQ_EINVAL;
    }
    return br_reccache_read(zk, path, name, br_topic_decode_for, out);
}

/* Whether the record old may be replaced by topic (arg): not when that
 * would shrink the queue count. A br_reccache_check_cb. */
static mq_err_t br_topic_update_check(const char *old, size_t olen, const void *arg)
{
    const br_topic_t *topic = arg;
    br_topic_t cur;
    char why[160] = "";
    if (br_topic_decode(old, olen, &cur, why, sizeof(why)) != MQ_OK) {
        /* A broken record is replaced by a good one: that is how an
         * operator repairs it. */
        MQ_LOG_WARN("topic record unreadable, overwriting topic=%s why=%s", topic->name, why);
        return MQ_OK;
    }
    return topic->queues < cur.queues ? MQ_EINVAL : MQ_OK;
}

mq_err_t br_topic_update(zk_client_t *zk, const char *root, const br_topic_t *topic)
{
    if (!zk || !br_topic_valid(topic)) {
        return MQ_EINVAL;
    }
    char path[BR_PATH_MAX];
    if (!br_topic_path(path, sizeof(path), root, topic->name, "")) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = br_topic_encode(topic, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    err = br_reccache_rewrite(zk, path, data, len, BR_TOPIC_ROUNDS, br_topic_update_check, topic);
    free(data);
    return err;
}

mq_err_t br_topic_list(zk_client_t *zk, const char *root, char ***names, size_t *count)
{
    if (!zk || !names || !count) {
        return MQ_EINVAL;
    }
    *names = NULL;
    *count = 0;
    char dir[BR_PATH_MAX];
    if (!br_rec_path(dir, sizeof(dir), root, "/topics")) {
        return MQ_EINVAL;
    }
    return br_reccache_list(zk, dir, br_topic_name_valid, names, count);
}

/* --- the cache ------------------------------------------------------------- */

struct br_topics {
    zk_client_t *zk;
    char *root;
    br_reccache_t *rc;
};

/* @thread the caller of br_topics_ensure (br_reccache_create_cb) */
static mq_err_t br_topics_create(void *arg, const void *want)
{
    br_topics_t *tc = arg;
    return br_topic_create(tc->zk, tc->root, want);
}

/* @thread any but the zk event thread */
mq_err_t br_topics_new(zk_client_t *zk, const char *root, br_topics_t **out)
{
    if (!zk || !out) {
        return MQ_EINVAL;
    }
    char dir[BR_PATH_MAX];
    if (!br_rec_path(dir, sizeof(dir), root, "/topics")) {
        return MQ_EINVAL;
    }
    br_topics_t *tc = mq_calloc(1, sizeof(*tc));
    br_reccache_conf_t conf = {
        .kind = "topic",
        .rec_size = sizeof(br_topic_t),
        .parse = br_topic_decode_for,
        .create = br_topics_create,
        .arg = tc,
    };
    mq_err_t err = br_reccache_new(zk, dir, &conf, &tc->rc);
    if (err != MQ_OK) {
        free(tc);
        return err;
    }
    tc->zk = zk;
    tc->root = mq_strdup(root ? root : "");
    *out = tc;
    return MQ_OK;
}

/* @thread any but the zk event thread; no call on tc may be running */
void br_topics_free(br_topics_t *tc)
{
    if (!tc) {
        return;
    }
    br_reccache_free(tc->rc);
    free(tc->root);
    free(tc);
}

/* @thread any but the zk event thread (blocks on a miss) */
mq_err_t br_topics_get(br_topics_t *tc, const char *name, br_topic_t *out)
{
    if (!tc || !out || !br_topic_name_valid(name)) {
        return MQ_EINVAL;
    }
    return br_reccache_get(tc->rc, name, out);
}

mq_err_t br_topics_peek(br_topics_t *tc, const char *name, br_topic_t *out)
{
    if (!tc || !out || !br_topic_name_valid(name)) {
        return MQ_EINVAL;
    }
    return br_reccache_peek(tc->rc, name, out);
}

/* @thread any but the zk event thread */
mq_err_t br_topics_ensure(br_topics_t *tc, const br_topic_t *want, br_topic_t *out)
{
    if (!tc || !want || !out || !br_topic_valid(want)) {
        return MQ_EINVAL;
    }
    return br_reccache_ensure(tc->rc, want->name, want, out);
}
