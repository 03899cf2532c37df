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
 * The cache. br_topics_get answers from memory when it can. A miss takes
 * load_mu (misses are serialised: a miss costs one or two round trips and
 * they are rare once warm), reads the record with a data watch and
 * remembers it; the watch firing (changed, deleted, or lost with the
 * session) makes the entry stale, and the next get reads again. An absent
 * topic is remembered as a negative entry tagged with the generation of the
 * children watch on <root>/topics that was armed before the read: when that
 * watch fires (a topic was created or deleted) the generation moves on and
 * every negative entry is stale at once.
 *
 * Watches count as armed from the moment the call that set them returned
 * until they fire. The counters may go below zero for an instant (a watch
 * fires before its setter counted it), which is why they are counters and
 * not flags; the generation and per-entry version checks make a load that
 * raced with a firing watch leave its result uncached.
 *
 * Threads. br_topics_get/ensure: any thread but the zk client's event thread
 * (they block on a miss). Watch callbacks run on the event thread and only
 * flip counters under mu; they never block and never free an entry (entries
 * are freed under load_mu and mu by a loader, or by br_topics_free).
 */
#include "br_topic.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "br_cluster_hook.h"
#include "br_cluster_rec.h"
#include "br_topic_int.h"
#include "mq_log.h"
#include "mq_util.h"

#define BR_TOPIC_REC "topic"
/* Compare-and-set rounds of br_topic_update, and create/read rounds of
 * br_topics_ensure, before giving up (each lost round means another writer
 * succeeded). */
#define BR_TOPIC_ROUNDS 16
/* Negative entries kept at most (names clients asked for that do not
 * exist); past it they are all dropped. */
#define BR_TOPICS_MAX_NEGATIVE 4096

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
    unsigned seen = 0;
    const char *s;
    size_t n;
    while (br_rec_next(&r, &s, &n)) {
        size_t kn;
        const char *v;
        size_t vn;
        size_t k = MQ_ARRAY_LEN(br_topic_keys);
        if (br_rec_kv(s, n, &kn, &v, &vn)) {
            for (k = 0; k < MQ_ARRAY_LEN(br_topic_keys); k++) {
                if (br_rec_key_is(s, kn, br_topic_keys[k])) {
                    break;
                }
            }
        }
        if (k == MQ_ARRAY_LEN(br_topic_keys) || (seen & (1u << k))) {
            br_rec_why(why, why_len, "line %d: unknown or repeated key", r.line);
            return MQ_ECORRUPT;
        }
        seen |= 1u << k;
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
    for (size_t k = 0; k < MQ_ARRAY_LEN(br_topic_keys); k++) {
        if (!(seen & (1u << k))) {
            br_rec_why(why, why_len, "missing key %s", br_topic_keys[k]);
            return MQ_ECORRUPT;
        }
    }
    *out = t;
    return MQ_OK;
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
    char *data = NULL;
    size_t len = 0;
    mq_err_t err = zk_get(zk, path, &data, &len, NULL);
    if (err != MQ_OK) {
        return err;
    }
    char why[160] = "";
    err = br_topic_decode(data, len, out, why, sizeof(why));
    if (err == MQ_OK && strcmp(out->name, name) != 0) {
        snprintf(why, sizeof(why), "record names topic '%s'", out->name);
        err = MQ_ECORRUPT;
    }
    if (err != MQ_OK) {
        MQ_LOG_WARN("topic record unreadable topic=%s err=%s why=%s", name, mq_err_name(err), why);
    }
    free(data);
    return err;
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
    for (int round = 0; round < BR_TOPIC_ROUNDS; round++) {
        char *old = NULL;
        size_t olen = 0;
        zk_stat_t st;
        err = zk_get(zk, path, &old, &olen, &st);
        if (err != MQ_OK) {
            break;
        }
        br_topic_t cur;
        char why[160] = "";
        err = br_topic_decode(old, olen, &cur, why, sizeof(why));
        free(old);
        if (err != MQ_OK) {
            /* A broken record is replaced by a good one: that is how an
             * operator repairs it. */
            MQ_LOG_WARN("topic record unreadable, overwriting topic=%s why=%s", topic->name, why);
        } else if (topic->queues < cur.queues) {
            err = MQ_EINVAL;
            break;
        }
        err = zk_set(zk, path, data, len, st.version, NULL);
        if (err != MQ_EBADVERSION) {
            break;
        }
    }
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
    char **all = NULL;
    size_t n = 0;
    mq_err_t err = zk_children(zk, dir, &all, &n);
    if (err == MQ_ENOTFOUND) {
        return MQ_OK;
    }
    if (err != MQ_OK) {
        return err;
    }
    /* zk_children sorts bytewise already; only drop what is no topic. */
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (br_topic_name_valid(all[i])) {
            all[out++] = all[i];
        } else {
            free(all[i]);
        }
    }
    *names = all;
    *count = out;
    return MQ_OK;
}

/* --- the cache ------------------------------------------------------------- */

typedef enum br_topics_state {
    BR_TOPICS_STALE = 0, /* read again */
    BR_TOPICS_VALID = 1, /* topic holds the record */
    BR_TOPICS_ABSENT = 2 /* no such topic while gen == neg_gen */
} br_topics_state_t;

typedef struct br_topics_entry {
    char name[BR_TOPIC_NAME_MAX + 1];
    /* @locks mu */
    br_topics_state_t state;
    br_topic_t topic;
    uint64_t neg_gen;
    uint64_t ver; /* bumped when its data watch fires */
    int armed;    /* data watches outstanding */
} br_topics_entry_t;

struct br_topics {
    zk_client_t *zk;
    char *root;
    char dir[BR_PATH_MAX];
    br_hook_t *hook;

    pthread_mutex_t load_mu; /* serialises misses; taken before mu */
    pthread_mutex_t mu;
    /* @locks mu */
    br_topics_entry_t **entries; /* sorted by name */
    size_t n;
    size_t cap;
    size_t negatives;
    uint64_t gen;    /* bumped when the children watch fires */
    int dir_armed;   /* children watches outstanding on dir */
    uint64_t misses; /* for the log */
};

static int br_topics_cmp(const void *key, const void *elem)
{
    const br_topics_entry_t *e = *(br_topics_entry_t *const *)elem;
    return strcmp(key, e->name);
}

/* The index of name, or where it goes (*found false). @locks mu */
static size_t br_topics_find_locked(br_topics_t *tc, const char *name, bool *found)
{
    size_t lo = 0;
    size_t hi = tc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = br_topics_cmp(name, &tc->entries[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    *found = false;
    return lo;
}

/* @locks mu (and load_mu: it may free entries) */
static br_topics_entry_t *br_topics_get_entry_locked(br_topics_t *tc, const char *name)
{
    bool found;
    size_t at = br_topics_find_locked(tc, name, &found);
    if (found) {
        return tc->entries[at];
    }
    if (tc->n == tc->cap) {
        tc->cap = tc->cap ? tc->cap * 2 : 64;
        tc->entries = mq_realloc(tc->entries, tc->cap * sizeof(*tc->entries));
    }
    br_topics_entry_t *e = mq_calloc(1, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    memmove(&tc->entries[at + 1], &tc->entries[at], (tc->n - at) * sizeof(*tc->entries));
    tc->entries[at] = e;
    tc->n++;
    return e;
}

/* Drops negative entries that no longer hold (or all of them when there
 * are too many), and stale entries without a watch. @locks load_mu, mu */
static void br_topics_prune_locked(br_topics_t *tc, const char *keep)
{
    bool all = tc->negatives > BR_TOPICS_MAX_NEGATIVE;
    size_t out = 0;
    size_t negatives = 0;
    for (size_t i = 0; i < tc->n; i++) {
        br_topics_entry_t *e = tc->entries[i];
        bool drop = false;
        if (strcmp(e->name, keep) != 0 && e->armed <= 0) {
            drop = e->state == BR_TOPICS_STALE ||
                   (e->state == BR_TOPICS_ABSENT && (all || e->neg_gen != tc->gen));
        }
        if (drop) {
            free(e);
            continue;
        }
        negatives += e->state == BR_TOPICS_ABSENT;
        tc->entries[out++] = e;
    }
    tc->n = out;
    tc->negatives = negatives;
}

/* @thread zk event thread; never blocks */
static void br_topics_on_dir(zk_client_t *zk, zk_watch_event_t event, const char *path, void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_topics_t *tc = br_hook_enter(hook);
    if (!tc) {
        return;
    }
    pthread_mutex_lock(&tc->mu);
    tc->dir_armed--;
    tc->gen++;
    pthread_mutex_unlock(&tc->mu);
    MQ_LOG_DEBUG("topic cache: topics changed path=%s event=%d", path, (int)event);
    br_hook_leave(hook);
}

/* @thread zk event thread; never blocks */
static void br_topics_on_record(zk_client_t *zk, zk_watch_event_t event, const char *path,
                                void *arg)
{
    MQ_UNUSED(zk);
    br_hook_t *hook = arg;
    br_topics_t *tc = br_hook_enter(hook);
    if (!tc) {
        return;
    }
    size_t dl = strlen(tc->dir);
    if (strncmp(path, tc->dir, dl) == 0 && path[dl] == '/') {
        const char *name = path + dl + 1;
        pthread_mutex_lock(&tc->mu);
        bool found;
        size_t at = br_topics_find_locked(tc, name, &found);
        if (found) {
            br_topics_entry_t *e = tc->entries[at];
            e->armed--;
            e->ver++;
            if (e->state == BR_TOPICS_VALID) {
                e->state = BR_TOPICS_STALE;
            }
        }
        pthread_mutex_unlock(&tc->mu);
        MQ_LOG_DEBUG("topic cache: record changed topic=%s event=%d", name, (int)event);
    }
    br_hook_leave(hook);
}

/* @thread any but the zk event thread */
mq_err_t br_topics_new(zk_client_t *zk, const char *root, br_topics_t **out)
{
    if (!zk || !out) {
        return MQ_EINVAL;
    }
    br_topics_t *tc = mq_calloc(1, sizeof(*tc));
    if (!br_rec_path(tc->dir, sizeof(tc->dir), root, "/topics")) {
        free(tc);
        return MQ_EINVAL;
    }
    /* The children watch that negative entries rely on needs the directory. */
    mq_err_t err = zk_create_parents(zk, tc->dir, NULL, 0, ZK_PERSISTENT, NULL, 0);
    if (err != MQ_OK && err != MQ_EEXIST) {
        free(tc);
        return err;
    }
    tc->zk = zk;
    tc->root = mq_strdup(root ? root : "");
    tc->gen = 1;
    pthread_mutex_init(&tc->load_mu, NULL);
    pthread_mutex_init(&tc->mu, NULL);
    tc->hook = br_hook_new(tc);
    *out = tc;
    return MQ_OK;
}

/* @thread any but the zk event thread; no call on tc may be running */
void br_topics_free(br_topics_t *tc)
{
    if (!tc) {
        return;
    }
    br_hook_detach(tc->hook);
    for (size_t i = 0; i < tc->n; i++) {
        free(tc->entries[i]);
    }
    free(tc->entries);
    pthread_mutex_destroy(&tc->load_mu);
    pthread_mutex_destroy(&tc->mu);
    free(tc->root);
    free(tc);
}

/* From memory: MQ_OK, MQ_ENOTFOUND, or MQ_EAGAIN (not known). @locks mu */
static mq_err_t br_topics_lookup_locked(br_topics_t *tc, const char *name, br_topic_t *out)
{
    bool found;
    size_t at = br_topics_find_locked(tc, name, &found);
    if (!found) {
        return MQ_EAGAIN;
    }
    br_topics_entry_t *e = tc->entries[at];
    if (e->state == BR_TOPICS_VALID) {
        *out = e->topic;
        return MQ_OK;
    }
    if (e->state == BR_TOPICS_ABSENT && e->neg_gen == tc->gen) {
        return MQ_ENOTFOUND;
    }
    return MQ_EAGAIN;
}

/* A miss: reads ZooKeeper and remembers what it found if nothing changed
 * meanwhile. @locks load_mu */
static mq_err_t br_topics_load(br_topics_t *tc, const char *name, br_topic_t *out)
{
    char path[BR_PATH_MAX];
    if (!br_topic_path(path, sizeof(path), tc->root, name, "")) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&tc->mu);
    tc->misses++;
    br_topics_prune_locked(tc, name);
    br_topics_entry_t *e = br_topics_get_entry_locked(tc, name);
    bool arm_dir = tc->dir_armed <= 0;
    pthread_mutex_unlock(&tc->mu);

    /* The children watch first: a negative answer is only worth
     * remembering if a creation after the read is sure to be seen. */
    bool neg_ok = !arm_dir;
    if (arm_dir) {
        char **names = NULL;
        size_t count = 0;
        mq_err_t err = zk_children_w(tc->zk, tc->dir, br_topics_on_dir, tc->hook, &names, &count);
        zk_strings_free(names, count);
        if (err == MQ_OK) {
            pthread_mutex_lock(&tc->mu);
            tc->dir_armed++;
            /* <= 0: it fired already, before we counted it. */
            neg_ok = tc->dir_armed > 0;
            pthread_mutex_unlock(&tc->mu);
        } else if (err != MQ_ENOTFOUND) {
            return err;
        }
    }
    pthread_mutex_lock(&tc->mu);
    uint64_t gen = tc->gen;
    uint64_t ver = e->ver;
    bool arm = e->armed <= 0;
    pthread_mutex_unlock(&tc->mu);

    char *data = NULL;
    size_t len = 0;
    mq_err_t err = arm ? zk_get_w(tc->zk, path, br_topics_on_record, tc->hook, &data, &len, NULL)
                       : zk_get(tc->zk, path, &data, &len, NULL);
    br_topic_t t;
    char why[160] = "";
    if (err == MQ_OK) {
        err = br_topic_decode(data, len, &t, why, sizeof(why));
        if (err == MQ_OK && strcmp(t.name, name) != 0) {
            snprintf(why, sizeof(why), "record names topic '%s'", t.name);
            err = MQ_ECORRUPT;
        }
        if (err != MQ_OK) {
            MQ_LOG_WARN("topic record unreadable topic=%s err=%s why=%s", name, mq_err_name(err),
                        why);
        }
    }
    free(data);
    pthread_mutex_lock(&tc->mu);
    if (arm && (err == MQ_OK || err == MQ_ECORRUPT)) {
        e->armed++;
    }
    if (e->ver == ver && e->armed > 0 && err == MQ_OK) {
        e->state = BR_TOPICS_VALID;
        e->topic = t;
    } else if (err == MQ_ENOTFOUND && neg_ok && tc->gen == gen) {
        if (e->state != BR_TOPICS_ABSENT) {
            tc->negatives++;
        }
        e->state = BR_TOPICS_ABSENT;
        e->neg_gen = gen;
    }
    pthread_mutex_unlock(&tc->mu);
    if (err == MQ_OK) {
        *out = t;
    }
    return err;
}

/* @thread any but the zk event thread (blocks on a miss); @locks mu, then
 * load_mu on a miss (inside) */
mq_err_t br_topics_get(br_topics_t *tc, const char *name, br_topic_t *out)
{
    if (!tc || !out) {
        return MQ_EINVAL;
    }
    if (!br_topic_name_valid(name)) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&tc->mu);
    mq_err_t err = br_topics_lookup_locked(tc, name, out);
    pthread_mutex_unlock(&tc->mu);
    if (err != MQ_EAGAIN) {
        return err;
    }
    pthread_mutex_lock(&tc->load_mu);
    /* Another miss may have loaded it while we waited. */
    pthread_mutex_lock(&tc->mu);
    err = br_topics_lookup_locked(tc, name, out);
    pthread_mutex_unlock(&tc->mu);
    if (err == MQ_EAGAIN) {
        err = br_topics_load(tc, name, out);
    }
    pthread_mutex_unlock(&tc->load_mu);
    return err;
}

/* Forgets a negative answer for name (we just saw the topic exist, before
 * the children watch could tell). */
static void br_topics_forget_negative(br_topics_t *tc, const char *name)
{
    pthread_mutex_lock(&tc->mu);
    bool found;
    size_t at = br_topics_find_locked(tc, name, &found);
    if (found && tc->entries[at]->state == BR_TOPICS_ABSENT) {
        tc->entries[at]->state = BR_TOPICS_STALE;
        tc->negatives--;
    }
    pthread_mutex_unlock(&tc->mu);
}

/* @thread any but the zk event thread */
mq_err_t br_topics_ensure(br_topics_t *tc, const br_topic_t *want, br_topic_t *out)
{
    if (!tc || !want || !out) {
        return MQ_EINVAL;
    }
    if (!br_topic_valid(want)) {
        return MQ_EINVAL;
    }
    mq_err_t err = MQ_EAGAIN;
    for (int round = 0; round < BR_TOPIC_ROUNDS; round++) {
        err = br_topics_get(tc, want->name, out);
        if (err != MQ_ENOTFOUND) {
            return err;
        }
        err = br_topic_create(tc->zk, tc->root, want);
        if (err == MQ_OK) {
            br_topics_forget_negative(tc, want->name);
            *out = *want;
            return MQ_OK;
        }
        if (err != MQ_EEXIST) {
            return err;
        }
        /* Another broker created it first: read theirs. */
        br_topics_forget_negative(tc, want->name);
    }
    return err;
}
