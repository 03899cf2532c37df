/*
 * meta_store: ledger records and ledger ids in ZooKeeper (the bookie
 * registry is meta_bookies.c). The ledger client calls it from its own
 * threads (blocking calls) or gets async completions on the zk client's
 * event thread; nothing here keeps state between calls.
 *
 * Ids: <root>/ledgers/idgen holds "next=<id>". An allocation reads it and
 * compare-and-sets "next=<id+1>" at the version it read; whoever loses the
 * race reads again. So every id is handed out at most once, by whichever
 * process won the write, and ids only grow (deleting ledgers never lowers
 * idgen). A connection loss during the write may burn an id (the write may
 * have happened); that is harmless, ids need not be dense.
 *
 * Records: created with their parents, read and decoded (anything that does
 * not decode, or holds another ledger's id, is MQ_ECORRUPT and logged once
 * here at WARN with the reason), written only by compare-and-set on the
 * version they were read at (a record with version -1 was never read or
 * created: writing it is refused rather than done unconditionally).
 */
#include "meta_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* Compare-and-set rounds before meta_alloc_ledger_id gives up (MQ_EAGAIN);
 * each lost round means another allocation succeeded. */
#define META_STORE_ALLOC_TRIES 1000
#define META_STORE_IDGEN "/ledgers/idgen"

/* --- paths ----------------------------------------------------------------- */

bool meta_path_join(const char *root, const char *suffix, char *out, size_t cap)
{
    if (!out || cap == 0) {
        return false;
    }
    size_t rn = root ? strlen(root) : 0;
    while (rn > 0 && root[rn - 1] == '/') {
        rn--;
    }
    int n = snprintf(out, cap, "%.*s%s", (int)rn, rn ? root : "", suffix);
    return n >= 0 && (size_t)n < cap;
}

/* The 19 digits split 3-4-4-4-4; ids of 20 digits (not valid ledger ids)
 * get 4 in the first group, so every id still has a path of its own. */
static bool meta_store_path(const char *root, uint64_t id, char *out, size_t cap)
{
    char d[24];
    snprintf(d, sizeof(d), "%019llu", (unsigned long long)id);
    int head = (int)strlen(d) - 16;
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "/ledgers/%.*s/%.4s/%.4s/%.4s/L%.4s", head, d, d + head,
             d + head + 4, d + head + 8, d + head + 12);
    return meta_path_join(root, suffix, out, cap);
}

void meta_ledger_path(const char *root, uint64_t id, char *out, size_t cap)
{
    if (!meta_store_path(root, id, out, cap) && out && cap > 0) {
        /* Too small: an empty path is refused by ZooKeeper rather than
         * naming a different node. */
        out[0] = '\0';
    }
}

/* --- ids ------------------------------------------------------------------- */

/* "next=<id>", optionally followed by one newline. */
static bool meta_store_idgen_parse(const char *data, size_t len, uint64_t *next)
{
    static const char key[] = "next=";
    size_t kl = sizeof(key) - 1;
    if (len > 0 && data[len - 1] == '\n') {
        len--;
    }
    return len > kl && memcmp(data, key, kl) == 0 &&
           meta_ledger_parse_u64(data + kl, len - kl, next) && *next >= 1;
}

mq_err_t meta_alloc_ledger_id(zk_client_t *zk, const char *root, uint64_t *id)
{
    char path[META_PATH_MAX];
    if (!zk || !id || !meta_path_join(root, META_STORE_IDGEN, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    for (int attempt = 0; attempt < META_STORE_ALLOC_TRIES; attempt++) {
        char *data = NULL;
        size_t len = 0;
        zk_stat_t st;
        mq_err_t err = zk_get(zk, path, &data, &len, &st);
        if (err == MQ_ENOTFOUND) {
            /* First allocation of the cluster; a concurrent creator may win. */
            err = zk_create_parents(zk, path, "next=1", 6, ZK_PERSISTENT, NULL, 0);
            if (err == MQ_OK || err == MQ_EEXIST) {
                continue;
            }
            return err;
        }
        if (err != MQ_OK) {
            return err;
        }
        uint64_t next = 0;
        bool ok = meta_store_idgen_parse(data, len, &next);
        free(data);
        if (!ok) {
            MQ_LOG_WARN("ledger id generator holds no valid next=<id> path=%s len=%zu", path, len);
            return MQ_ECORRUPT;
        }
        if (next >= META_LEDGER_MAX_ID) {
            MQ_LOG_ERROR("ledger ids exhausted path=%s next=%llu", path, (unsigned long long)next);
            return MQ_ENOSPC;
        }
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "next=%llu", (unsigned long long)(next + 1));
        err = zk_set(zk, path, buf, (size_t)n, st.version, NULL);
        if (err == MQ_OK) {
            *id = next;
            return MQ_OK;
        }
        if (err != MQ_EBADVERSION && err != MQ_ENOTFOUND) {
            return err;
        }
    }
    MQ_LOG_WARN("ledger id allocation kept losing the race path=%s tries=%d", path,
                META_STORE_ALLOC_TRIES);
    return MQ_EAGAIN;
}

/* --- records --------------------------------------------------------------- */

/* Decodes a record read from the znode of ledger id; logs why it is not one. */
static mq_err_t meta_store_decode(uint64_t id, const char *data, size_t len, int32_t version,
                                  meta_ledger_t *out)
{
    char why[256];
    mq_err_t err = meta_ledger_decode(data, len, out, why, sizeof(why));
    if (err == MQ_ECORRUPT) {
        MQ_LOG_WARN("ledger metadata does not decode ledger=%llu version=%d len=%zu why=%s",
                    (unsigned long long)id, (int)version, len, why);
        return err;
    }
    if (err != MQ_OK) {
        return err;
    }
    if (out->id != id) {
        MQ_LOG_WARN("ledger metadata holds another ledger's id ledger=%llu record_id=%llu",
                    (unsigned long long)id, (unsigned long long)out->id);
        meta_ledger_fini(out);
        return MQ_ECORRUPT;
    }
    out->version = version;
    return MQ_OK;
}

mq_err_t meta_ledger_create(zk_client_t *zk, const char *root, meta_ledger_t *md)
{
    char path[META_PATH_MAX];
    if (!zk || !md || !meta_store_path(root, md->id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = meta_ledger_encode(md, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    err = zk_create_parents(zk, path, data, len, ZK_PERSISTENT, NULL, 0);
    free(data);
    if (err == MQ_OK) {
        /* A new znode is at data version 0. */
        md->version = 0;
    }
    return err;
}

mq_err_t meta_ledger_read(zk_client_t *zk, const char *root, uint64_t id, meta_ledger_t *out)
{
    char path[META_PATH_MAX];
    if (!out) {
        return MQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->version = -1;
    if (!zk || !meta_store_path(root, id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    char *data = NULL;
    size_t len = 0;
    zk_stat_t st;
    mq_err_t err = zk_get(zk, path, &data, &len, &st);
    if (err == MQ_ENOTFOUND) {
        return MQ_ENOLEDGER;
    }
    if (err != MQ_OK) {
        return err;
    }
    err = meta_store_decode(id, data, len, st.version, out);
    free(data);
    return err;
}

mq_err_t meta_ledger_write(zk_client_t *zk, const char *root, meta_ledger_t *md)
{
    char path[META_PATH_MAX];
    if (!zk || !md || md->version < 0 || !meta_store_path(root, md->id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = meta_ledger_encode(md, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    zk_stat_t st;
    err = zk_set(zk, path, data, len, md->version, &st);
    free(data);
    if (err == MQ_OK) {
        md->version = st.version;
    } else if (err == MQ_ENOTFOUND) {
        err = MQ_ENOLEDGER;
    }
    return err;
}

mq_err_t meta_ledger_delete(zk_client_t *zk, const char *root, uint64_t id)
{
    char path[META_PATH_MAX];
    if (!zk || !meta_store_path(root, id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    mq_err_t err = zk_delete(zk, path, -1);
    return err == MQ_ENOTFOUND ? MQ_ENOLEDGER : err;
}

/* --- async ----------------------------------------------------------------- */

typedef struct meta_store_call {
    uint64_t id;
    meta_write_cb write_cb;
    meta_read_cb read_cb;
    void *arg;
} meta_store_call_t;

/* zk event thread. */
static void meta_store_write_done(mq_err_t err, const zk_stat_t *stat, void *arg)
{
    meta_store_call_t *c = arg;
    int32_t version = -1;
    if (err == MQ_OK && stat) {
        version = stat->version;
    } else if (err == MQ_ENOTFOUND) {
        err = MQ_ENOLEDGER;
    }
    if (c->write_cb) {
        c->write_cb(err, version, c->arg);
    }
    free(c);
}

mq_err_t meta_ledger_write_async(zk_client_t *zk, const char *root, const meta_ledger_t *md,
                                 meta_write_cb cb, void *arg)
{
    char path[META_PATH_MAX];
    if (!zk || !md || md->version < 0 || !meta_store_path(root, md->id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    char *data;
    size_t len;
    mq_err_t err = meta_ledger_encode(md, &data, &len);
    if (err != MQ_OK) {
        return err;
    }
    meta_store_call_t *c = mq_calloc(1, sizeof(*c));
    c->id = md->id;
    c->write_cb = cb;
    c->arg = arg;
    /* ZooKeeper copies the data when it sends the request. */
    err = zk_aset(zk, path, data, len, md->version, meta_store_write_done, c);
    free(data);
    if (err != MQ_OK) {
        free(c);
    }
    return err;
}

/* zk event thread. */
static void meta_store_read_done(mq_err_t err, const char *data, size_t len, const zk_stat_t *stat,
                                 void *arg)
{
    meta_store_call_t *c = arg;
    meta_ledger_t md;
    bool have = false;
    if (err == MQ_ENOTFOUND) {
        err = MQ_ENOLEDGER;
    } else if (err == MQ_OK) {
        err = meta_store_decode(c->id, data, len, stat ? stat->version : -1, &md);
        have = err == MQ_OK;
    }
    c->read_cb(err, have ? &md : NULL, c->arg);
    if (have) {
        meta_ledger_fini(&md);
    }
    free(c);
}

mq_err_t meta_ledger_read_async(zk_client_t *zk, const char *root, uint64_t id, meta_read_cb cb,
                                void *arg)
{
    char path[META_PATH_MAX];
    if (!zk || !cb || !meta_store_path(root, id, path, sizeof(path))) {
        return MQ_EINVAL;
    }
    meta_store_call_t *c = mq_calloc(1, sizeof(*c));
    c->id = id;
    c->read_cb = cb;
    c->arg = arg;
    mq_err_t err = zk_aget(zk, path, meta_store_read_done, c);
    if (err != MQ_OK) {
        free(c);
    }
    return err;
}
