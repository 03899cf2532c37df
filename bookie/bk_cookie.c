/*
 * bk_cookie: cookie text, comparison and the startup decision table
 * (BookKeeper's LegacyCookieValidation):
 *
 *   dirs with a cookie | ZooKeeper cookie | decision
 *   none               | none             | new bookie: dirs must be empty; write all cookies
 *   none               | present          | refuse: the directories were wiped
 *   all                | none             | refuse: metadata lost, or another cluster's disk
 *   all                | present          | every cookie must match the expected one
 *   some               | any              | refuse: a directory was wiped or added
 *
 * Cookies are "key=value" lines; directories are stored as absolute paths.
 */
#include "bk_cookie.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mq_fs.h"
#include "mq_log.h"
#include "mq_util.h"

#define BK_COOKIE_MAX 8192

typedef struct bk_cookie_text {
    char text[BK_COOKIE_MAX];
} bk_cookie_text_t;

static void bk_cookie_join_abs(const char *const *dirs, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char abs[PATH_MAX];
        const char *p = realpath(dirs[i], abs) ? abs : dirs[i];
        int w = snprintf(out + used, cap - used, "%s%s", i ? "," : "", p);
        if (w < 0 || (size_t)w >= cap - used) {
            break;
        }
        used += (size_t)w;
    }
}

static void bk_cookie_build(const bk_cookie_ctx_t *ctx, const char *instance_id,
                            bk_cookie_text_t *c)
{
    char jd[BK_COOKIE_MAX / 2];
    char ld[BK_COOKIE_MAX / 2];
    bk_cookie_join_abs(ctx->journal_dirs, ctx->njournal_dirs, jd, sizeof(jd));
    bk_cookie_join_abs(ctx->ledger_dirs, ctx->nledger_dirs, ld, sizeof(ld));
    snprintf(c->text, sizeof(c->text),
             "# LedgerMQ bookie cookie: do not edit, do not copy to another bookie\n"
             "layoutVersion=1\ninstanceId=%s\nbookieId=%s\njournalDirectories=%.2000s\n"
             "ledgerDirectories=%.2000s\n",
             instance_id, ctx->bookie_id, jd, ld);
}

/* The value of key in cookie text, copied to out ("" when absent). */
static void bk_cookie_value(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            const char *v = line + klen + 1;
            size_t n = strcspn(v, "\n");
            if (n >= cap) {
                n = cap - 1;
            }
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

/* Compares the fields that matter; writes the first difference to why. */
static bool bk_cookie_matches(const char *want, const char *have, char *why, size_t cap)
{
    static const char *const keys[] = {"instanceId", "bookieId", "journalDirectories",
                                       "ledgerDirectories"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(keys); i++) {
        char a[BK_COOKIE_MAX / 2];
        char b[BK_COOKIE_MAX / 2];
        bk_cookie_value(want, keys[i], a, sizeof(a));
        bk_cookie_value(have, keys[i], b, sizeof(b));
        if (strcmp(a, b) != 0) {
            snprintf(why, cap, "%s is '%.200s', expected '%.200s'", keys[i], b, a);
            return false;
        }
    }
    return true;
}

static void bk_cookie_path(const char *root, const char *bookie_id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/bookies/cookies/%s", root, bookie_id);
}

mq_err_t bk_cluster_instance_id(zk_client_t *zk, const char *root, char *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cluster", root);
    for (int attempt = 0; attempt < 3; attempt++) {
        char *data = NULL;
        mq_err_t err = zk_get(zk, path, &data, NULL, NULL);
        if (err == MQ_OK) {
            bk_cookie_value(data, "instanceId", out, cap);
            free(data);
            if (!out[0]) {
                MQ_LOG_ERROR("cluster znode has no instanceId path=%s", path);
                return MQ_ECORRUPT;
            }
            return MQ_OK;
        }
        if (err != MQ_ENOTFOUND) {
            MQ_LOG_ERROR("cannot read cluster znode path=%s err=%s", path, mq_err_str(err));
            return err;
        }
        uint8_t r[16];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            return MQ_EIO;
        }
        r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
        r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
        char text[256];
        snprintf(text, sizeof(text),
                 "instanceId=%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n"
                 "layoutVersion=1\n",
                 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                 r[13], r[14], r[15]);
        err = zk_create_parents(zk, path, text, strlen(text), ZK_PERSISTENT, NULL, 0);
        if (err == MQ_OK) {
            MQ_LOG_INFO("created cluster metadata path=%s", path);
        } else if (err != MQ_EEXIST) {
            MQ_LOG_ERROR("cannot create cluster znode path=%s err=%s", path, mq_err_str(err));
            return err;
        }
        /* Created by us or by a peer at the same time: read it back. */
    }
    return MQ_EZK;
}

static void bk_cookie_dir_file(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/current/VERSION", dir);
}

mq_err_t bk_cookie_check(const bk_cookie_ctx_t *ctx, char *errbuf, size_t errlen)
{
    char instance[128];
    mq_err_t err = bk_cluster_instance_id(ctx->zk, ctx->root, instance, sizeof(instance));
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot read the cluster instance id: %s", mq_err_str(err));
        return err;
    }
    bk_cookie_text_t want;
    bk_cookie_build(ctx, instance, &want);

    char zpath[512];
    bk_cookie_path(ctx->root, ctx->bookie_id, zpath, sizeof(zpath));
    char *zcookie = NULL;
    err = zk_get(ctx->zk, zpath, &zcookie, NULL, NULL);
    if (err != MQ_OK && err != MQ_ENOTFOUND) {
        snprintf(errbuf, errlen, "cannot read cookie %s: %s", zpath, mq_err_str(err));
        return err;
    }

    size_t ndirs = ctx->njournal_dirs + ctx->nledger_dirs;
    const char **dirs = mq_calloc(ndirs, sizeof(*dirs));
    for (size_t i = 0; i < ctx->njournal_dirs; i++) {
        dirs[i] = ctx->journal_dirs[i];
    }
    for (size_t i = 0; i < ctx->nledger_dirs; i++) {
        dirs[ctx->njournal_dirs + i] = ctx->ledger_dirs[i];
    }
    size_t with_cookie = 0;
    const char *first_without = NULL;
    const char *first_with = NULL;
    err = MQ_OK;
    for (size_t i = 0; i < ndirs && err == MQ_OK; i++) {
        char path[PATH_MAX];
        bk_cookie_dir_file(dirs[i], path, sizeof(path));
        char *dcookie = NULL;
        mq_err_t rerr = mq_fs_read_file(path, BK_COOKIE_MAX, &dcookie, NULL);
        if (rerr == MQ_ENOTFOUND) {
            if (!first_without) {
                first_without = dirs[i];
            }
            continue;
        }
        if (rerr != MQ_OK) {
            snprintf(errbuf, errlen, "cannot read cookie %s: %s", path, mq_err_str(rerr));
            err = MQ_ECOOKIE;
            break;
        }
        with_cookie++;
        if (!first_with) {
            first_with = dirs[i];
        }
        char why[512];
        if (!bk_cookie_matches(want.text, dcookie, why, sizeof(why))) {
            snprintf(errbuf, errlen,
                     "cookie %s does not belong to this bookie (%s); refusing to start. Check "
                     "bookieId, journalDirectories and ledgerDirectories, or run `mqbookie "
                     "--format` to start this bookie empty",
                     path, why);
            err = MQ_ECOOKIE;
        }
        free(dcookie);
    }

    if (err == MQ_OK && with_cookie == 0 && zcookie) {
        snprintf(errbuf, errlen,
                 "bookie %s is known to the cluster (cookie %s) but its directories hold no "
                 "cookie: its data was wiped or the directories changed. Refusing to start, "
                 "because an empty bookie would deny entries it acknowledged. Once its data is "
                 "re-replicated, run `mqbookie --format -c <conf>` to start it as a new, empty "
                 "bookie",
                 ctx->bookie_id, zpath);
        err = MQ_ECOOKIE;
    } else if (err == MQ_OK && with_cookie > 0 && with_cookie < ndirs) {
        snprintf(errbuf, errlen,
                 "directory %s has no cookie while %s has one: a directory was wiped or added. "
                 "Refusing to start; run `mqbookie --format` to start this bookie empty",
                 first_without, first_with);
        err = MQ_ECOOKIE;
    } else if (err == MQ_OK && with_cookie == ndirs && !zcookie) {
        snprintf(errbuf, errlen,
                 "the directories hold cookies but ZooKeeper has none at %s: they belong to a "
                 "cluster whose metadata is gone, or to another cluster. Refusing to start; run "
                 "`mqbookie --format` to start this bookie empty",
                 zpath);
        err = MQ_ECOOKIE;
    } else if (err == MQ_OK && with_cookie == ndirs) {
        char why[512];
        if (!bk_cookie_matches(want.text, zcookie, why, sizeof(why))) {
            snprintf(errbuf, errlen,
                     "ZooKeeper cookie %s does not match this bookie (%s); refusing to start",
                     zpath, why);
            err = MQ_ECOOKIE;
        }
    } else if (err == MQ_OK && with_cookie == 0) {
        /* A new bookie: its directories must hold nothing we would serve. */
        for (size_t i = 0; i < ndirs && err == MQ_OK; i++) {
            char cur[PATH_MAX];
            snprintf(cur, sizeof(cur), "%s/current", dirs[i]);
            if (!mq_fs_dir_is_empty(cur)) {
                snprintf(errbuf, errlen,
                         "directory %s holds data but no cookie; refusing to start. Run "
                         "`mqbookie --format` to start this bookie empty",
                         cur);
                err = MQ_ECOOKIE;
            }
        }
        for (size_t i = 0; i < ndirs && err == MQ_OK; i++) {
            char cur[PATH_MAX];
            char path[PATH_MAX];
            snprintf(cur, sizeof(cur), "%s/current", dirs[i]);
            bk_cookie_dir_file(dirs[i], path, sizeof(path));
            err = mq_fs_mkdirs(cur);
            if (err == MQ_OK) {
                err = mq_fs_write_atomic(path, want.text, strlen(want.text));
            }
            if (err != MQ_OK) {
                snprintf(errbuf, errlen, "cannot write cookie %s: %s", path, mq_err_str(err));
            }
        }
        if (err == MQ_OK) {
            err = zk_create_parents(ctx->zk, zpath, want.text, strlen(want.text), ZK_PERSISTENT,
                                    NULL, 0);
            if (err != MQ_OK) {
                snprintf(errbuf, errlen, "cannot create cookie %s: %s", zpath, mq_err_str(err));
            } else {
                MQ_LOG_INFO("new bookie: cookies written bookie=%s instance=%s", ctx->bookie_id,
                            instance);
            }
        }
    }
    free(dirs);
    free(zcookie);
    return err;
}

mq_err_t bk_cookie_format(const bk_cookie_ctx_t *ctx)
{
    mq_err_t err = MQ_OK;
    for (size_t i = 0; i < ctx->njournal_dirs + ctx->nledger_dirs; i++) {
        const char *dir = i < ctx->njournal_dirs ? ctx->journal_dirs[i]
                                                 : ctx->ledger_dirs[i - ctx->njournal_dirs];
        char cur[PATH_MAX];
        snprintf(cur, sizeof(cur), "%s/current", dir);
        mq_err_t e = mq_fs_remove_tree(cur);
        if (e != MQ_OK) {
            MQ_LOG_ERROR("format: cannot clear dir=%s err=%s", cur, mq_err_str(e));
            err = e;
        }
        char ro[PATH_MAX];
        snprintf(ro, sizeof(ro), "%s/readonly", dir);
        mq_fs_remove_tree(ro);
    }
    char zpath[512];
    bk_cookie_path(ctx->root, ctx->bookie_id, zpath, sizeof(zpath));
    mq_err_t e = zk_delete(ctx->zk, zpath, -1);
    if (e != MQ_OK && e != MQ_ENOTFOUND) {
        MQ_LOG_ERROR("format: cannot delete cookie path=%s err=%s", zpath, mq_err_str(e));
        err = e;
    }
    return err;
}
