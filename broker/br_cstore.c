/*
 * br_cstore: a cursor's durable record store (see br_cstore.h for the
 * model): one cursor ledger at a time, named by a znode. The queue owner
 * opens one per consumer group and queue, appends from its executor (any
 * thread works), rolls it when br_cstore_entries() grows, and closes or
 * frees it when it lets the queue go.
 *
 * Write path. br_cstore_append copies the record, framed (u32 LE length +
 * bytes), into the last entry of the intake under lock; an entry takes
 * records until BR_CSTORE_PACK_BYTES. The intake is cut (an entry handed to
 * lc_ledger_add_async, in order, under lock) while fewer than
 * BR_CSTORE_MAX_INFLIGHT entries are in flight, so records that arrive
 * while the bookies work share the next entry. Cut entries stay in the
 * in-flight list in entry order; the ledger client answers them in entry
 * order on its loop thread, and the answered prefix of the list moves to
 * the done list. Whoever moved entries to the done list runs their
 * callbacks outside the lock, but only one thread at a time does (the
 * `settling` flag: a thread that finds it set leaves its entries to the one
 * already at it), so callbacks run in append order. That is the ledger
 * client's thread except on paths that fail without the ledger (a failed
 * roll, free), which settle on their own thread.
 *
 * Breaking. The first add error is kept in `err`: that entry and every
 * later one fail with it (even one a bookie still acknowledged), records
 * still in the intake fail with it once nothing is in flight, and appends
 * are refused with it. Nothing but a new open repairs the store.
 *
 * Roll (caller's thread, under op_lock): cutting pauses, so what is
 * appended from now on waits in the intake; a new ledger gets the snapshot
 * as entry 0; the znode is compare-and-set to it; then, under lock, the new
 * ledger replaces the old one and the intake goes to it, after the
 * snapshot. Entries still in flight on the old ledger complete first (the
 * in-flight list keeps the order across both ledgers); closing the old
 * ledger waits for them, then it is deleted.
 *
 * Locks: op_lock (roll, close: the blocking steps and the znode version)
 * before lock (everything the write path touches). Loop-thread callbacks
 * take lock only, and no lock is held while a user callback runs.
 */
#include "br_cstore.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "br_cluster_rec.h"
#include "mq_log.h"
#include "mq_util.h"

/* Entries in flight at once; more records wait and pack into the next. */
#define BR_CSTORE_MAX_INFLIGHT 2
/* An intake entry takes no more records once it holds this much. */
#define BR_CSTORE_PACK_BYTES ((size_t)1 << 20)
/* The largest entry (a bookie frame is 5 MB): bounds records and snapshots. */
#define BR_CSTORE_MAX_ENTRY ((size_t)4 << 20)
/* Each record: u32 little-endian length, then its bytes. */
#define BR_CSTORE_REC_HDR 4
#define BR_CSTORE_MAX_REC (BR_CSTORE_MAX_ENTRY - BR_CSTORE_REC_HDR)
/* First capacity of an intake entry's buffer. */
#define BR_CSTORE_FIRST_BUF 256
/* Entry reads in flight while an open replays the cursor ledger. */
#define BR_CSTORE_READ_WINDOW 16
/* The znode record's kind (br_cluster_rec.h framing). */
#define BR_CSTORE_KIND "cursor"
/* How long a znode write keeps retrying a lost connection. */
#define BR_CSTORE_ZK_DEADLINE_MS 30000
#define BR_CSTORE_ZK_RETRY_MS 100
/* Group and topic are path components of the znode. */
#define BR_CSTORE_NAME_MAX 255

typedef struct br_cstore_cbslot {
    br_cstore_done_cb cb;
    void *arg;
} br_cstore_cbslot_t;

/* Records that become one entry: built in the intake under lock, then in
 * flight, then done. */
typedef struct br_cstore_entry {
    struct br_cstore_entry *next;
    br_cstore_t *cs;
    uint8_t *buf; /* framed records; freed once handed to the ledger */
    size_t len;
    size_t cap;
    br_cstore_cbslot_t *cbs;
    size_t n;
    size_t cbs_cap;
    mq_err_t err;
    bool answered;
} br_cstore_entry_t;

typedef struct br_cstore_list {
    br_cstore_entry_t *head;
    br_cstore_entry_t *tail;
} br_cstore_list_t;

struct br_cstore {
    /* Immutable after open. */
    lc_client_t *lc;
    zk_client_t *zk;
    char *group;
    char *topic;
    int queue;
    char path[BR_PATH_MAX];

    /* @locks op_lock: roll and close hold it across their blocking steps. */
    pthread_mutex_t op_lock;
    int32_t zversion; /* the znode's version as we last wrote it */

    /* @locks lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    lc_ledger_t *lh; /* the current cursor ledger (writer) */
    uint64_t ledger;
    uint64_t entries; /* cut to lh, the snapshot included */
    br_cstore_list_t intake;
    br_cstore_list_t inflight;
    int ninflight;
    br_cstore_list_t done; /* answered, callbacks not run yet */
    bool settling;         /* a thread runs callbacks of done entries */
    bool paused;           /* a roll switches ledgers: cut nothing */
    bool closing;          /* close or free called: appends refused */
    bool freeing;          /* free called: fail what is not in flight */
    mq_err_t err;          /* broken: the first add error */
};

/* --- small helpers ------------------------------------------------------------- */

static void br_cstore_list_push(br_cstore_list_t *l, br_cstore_entry_t *e)
{
    e->next = NULL;
    if (l->tail) {
        l->tail->next = e;
    } else {
        l->head = e;
    }
    l->tail = e;
}

static br_cstore_entry_t *br_cstore_list_pop(br_cstore_list_t *l)
{
    br_cstore_entry_t *e = l->head;
    if (e) {
        l->head = e->next;
        if (!l->head) {
            l->tail = NULL;
        }
        e->next = NULL;
    }
    return e;
}

static void br_cstore_entry_free(br_cstore_entry_t *e)
{
    free(e->buf);
    free(e->cbs);
    free(e);
}

static void br_cstore_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A group or topic as a znode path component: 1..255 visible ASCII bytes,
 * no '/', not "." or "..". */
static bool br_cstore_name_ok(const char *s)
{
    if (!s) {
        return false;
    }
    size_t n = strnlen(s, BR_CSTORE_NAME_MAX + 1);
    if (n == 0 || n > BR_CSTORE_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '/') {
            return false;
        }
    }
    return true;
}

static mq_err_t br_cstore_conf_path(const br_cstore_conf_t *conf, char *path, size_t cap)
{
    if (!conf || !conf->lc || !conf->zk || !conf->root || conf->queue < 0 ||
        !br_cstore_name_ok(conf->group) || !br_cstore_name_ok(conf->topic)) {
        return MQ_EINVAL;
    }
    if (!br_rec_path(path, cap, conf->root, "/cursors/%s/%s/%d", conf->group, conf->topic,
                     conf->queue)) {
        return MQ_EINVAL;
    }
    return MQ_OK;
}

/* --- the znode ----------------------------------------------------------------- */

static char *br_cstore_rec_encode(uint64_t ledger, uint64_t ctime_ms, size_t *len)
{
    br_rec_buf_t b;
    br_rec_begin(&b, BR_CSTORE_KIND);
    br_rec_printf(&b, "ledger=%llu\nctime=%llu\n", (unsigned long long)ledger,
                  (unsigned long long)ctime_ms);
    return br_rec_finish(&b, len);
}

static mq_err_t br_cstore_rec_decode(const char *data, size_t len, uint64_t *ledger, char *why,
                                     size_t why_len)
{
    br_rec_reader_t r;
    mq_err_t err = br_rec_open(&r, data, len, BR_CSTORE_KIND, why, why_len);
    if (err != MQ_OK) {
        return err;
    }
    bool have_ledger = false;
    bool have_ctime = false;
    uint64_t id = 0;
    uint64_t ctime = 0;
    const char *s;
    size_t n;
    while (br_rec_next(&r, &s, &n)) {
        size_t kn;
        const char *v;
        size_t vn;
        bool ok = br_rec_kv(s, n, &kn, &v, &vn);
        if (ok && br_rec_key_is(s, kn, "ledger") && !have_ledger) {
            ok = br_rec_u64(v, vn, &id);
            have_ledger = true;
        } else if (ok && br_rec_key_is(s, kn, "ctime") && !have_ctime) {
            ok = br_rec_u64(v, vn, &ctime);
            have_ctime = true;
        } else {
            ok = false;
        }
        if (!ok) {
            br_rec_why(why, why_len, "line %d: unknown or repeated key, or bad value", r.line);
            return MQ_ECORRUPT;
        }
    }
    if (!have_ledger || !have_ctime) {
        br_rec_why(why, why_len, "missing ledger or ctime");
        return MQ_ECORRUPT;
    }
    *ledger = id;
    return MQ_OK;
}

/* Reads the znode: MQ_OK with *ledger and *version, MQ_ENOTFOUND, MQ_ECORRUPT
 * (logged) or ZooKeeper's error. */
static mq_err_t br_cstore_zk_read(zk_client_t *zk, const char *path, uint64_t *ledger,
                                  int32_t *version)
{
    char *data = NULL;
    size_t len = 0;
    zk_stat_t st;
    mq_err_t err = zk_get(zk, path, &data, &len, &st);
    if (err != MQ_OK) {
        return err;
    }
    char why[256] = "";
    err = br_cstore_rec_decode(data, len, ledger, why, sizeof(why));
    free(data);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cursor record does not decode path=%s version=%d len=%zu why=%s", path,
                    (int)st.version, len, why);
        return err;
    }
    *version = st.version;
    return MQ_OK;
}

/* Writes data at path: created (parents too) when *version is -1, else
 * compare-and-set at *version; *version gets the new version. A lost
 * connection is resolved by reading back (our bytes one version later mean
 * written). MQ_EBADVERSION when someone else created, wrote or deleted it. */
static mq_err_t br_cstore_zk_write(zk_client_t *zk, const char *path, const char *data, size_t len,
                                   int32_t *version)
{
    uint64_t deadline = mq_now_ms() + BR_CSTORE_ZK_DEADLINE_MS;
    bool unsure = false; /* a write may have gone through without an answer */
    int32_t want = *version < 0 ? 0 : *version + 1;
    mq_err_t err;
    for (;;) {
        zk_stat_t st;
        if (!unsure && *version < 0) {
            /* Read absent just before: one write with its parents. */
            err = zk_create_chain(zk, path, data, len, ZK_PERSISTENT);
            if (err == MQ_OK) {
                *version = 0;
                return MQ_OK;
            }
            if (err == MQ_EEXIST) {
                return MQ_EBADVERSION;
            }
            /* MQ_ENOTFOUND: a parent went away between its creation and
             * ours (br_cstore_delete of a sibling): nothing was written. */
            if (err != MQ_ENOTFOUND) {
                if (!mq_err_retriable(err)) {
                    return err;
                }
                unsure = true;
            }
        } else if (!unsure) {
            err = zk_set(zk, path, data, len, *version, &st);
            if (err == MQ_OK) {
                *version = st.version;
                return MQ_OK;
            }
            if (err == MQ_ENOTFOUND) {
                return MQ_EBADVERSION;
            }
            if (err == MQ_EBADVERSION || !mq_err_retriable(err)) {
                return err;
            }
            unsure = true;
        } else {
            char *cur = NULL;
            size_t clen = 0;
            err = zk_get(zk, path, &cur, &clen, &st);
            if (err == MQ_OK) {
                bool ours = st.version == want && clen == len && memcmp(cur, data, len) == 0;
                bool untouched = *version >= 0 && st.version == *version;
                free(cur);
                if (ours) {
                    *version = st.version;
                    return MQ_OK;
                }
                if (!untouched) {
                    return MQ_EBADVERSION;
                }
                unsure = false;
                continue;
            }
            if (err == MQ_ENOTFOUND) {
                if (*version >= 0) {
                    return MQ_EBADVERSION;
                }
                unsure = false;
                continue;
            }
            if (!mq_err_retriable(err)) {
                return err;
            }
        }
        if (mq_now_ms() > deadline) {
            return err;
        }
        br_cstore_sleep_ms(BR_CSTORE_ZK_RETRY_MS);
    }
}

/* --- ledgers ------------------------------------------------------------------- */

static void br_cstore_ledger_delete(lc_client_t *lc, const char *path, uint64_t id)
{
    mq_err_t err = lc_ledger_delete(lc, id);
    if (err != MQ_OK && err != MQ_ENOLEDGER) {
        MQ_LOG_WARN("cannot delete cursor ledger, it stays orphaned path=%s ledger=%llu err=%s",
                    path, (unsigned long long)id, mq_err_name(err));
    }
}

/* A new cursor ledger whose entry 0 is the snapshot record. Blocking. On
 * failure nothing is left behind (unless its deletion failed: logged). */
static mq_err_t br_cstore_ledger_start(const br_cstore_conf_t *conf, const char *path,
                                       const uint8_t *snap, size_t snap_len, lc_ledger_t **out)
{
    if (snap_len > BR_CSTORE_MAX_REC) {
        return MQ_ETOOLARGE;
    }
    char queue[16];
    snprintf(queue, sizeof(queue), "%d", conf->queue);
    meta_kv_t custom[4] = {
        {"component", "ledgermq-cursor"},
        {"group", (char *)conf->group},
        {"topic", (char *)conf->topic},
        {"queue", queue},
    };
    lc_ledger_opts_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.custom = custom;
    opts.ncustom = MQ_ARRAY_LEN(custom);
    lc_ledger_t *lh = NULL;
    mq_err_t err = lc_ledger_create(conf->lc, &opts, &lh);
    if (err != MQ_OK) {
        return err;
    }
    uint8_t *buf = mq_malloc(BR_CSTORE_REC_HDR + snap_len);
    mq_put_le32(buf, (uint32_t)snap_len);
    if (snap_len > 0) {
        memcpy(buf + BR_CSTORE_REC_HDR, snap, snap_len);
    }
    err = lc_ledger_add(lh, buf, BR_CSTORE_REC_HDR + snap_len, NULL);
    free(buf);
    if (err != MQ_OK) {
        uint64_t id = lc_ledger_id(lh);
        lc_ledger_free(lh);
        br_cstore_ledger_delete(conf->lc, path, id);
        return err;
    }
    *out = lh;
    return MQ_OK;
}

/* --- replay -------------------------------------------------------------------- */

typedef struct br_cstore_rd br_cstore_rd_t;

typedef struct br_cstore_rslot {
    br_cstore_rd_t *rd;
    bool busy; /* a read in flight */
    bool ready;
    mq_err_t err;
    mq_slice_t payload;
} br_cstore_rslot_t;

struct br_cstore_rd {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    br_cstore_rslot_t slots[BR_CSTORE_READ_WINDOW];
};

/* Loop thread: keeps the entry for the replaying thread. */
static void br_cstore_read_done(mq_err_t err, int64_t entry_id, const mq_slice_t *payload,
                                void *arg)
{
    MQ_UNUSED(entry_id);
    br_cstore_rslot_t *sl = arg;
    br_cstore_rd_t *rd = sl->rd;
    pthread_mutex_lock(&rd->lock);
    sl->err = err;
    if (err == MQ_OK) {
        sl->payload = mq_slice_dup(payload);
    }
    sl->busy = false;
    sl->ready = true;
    pthread_cond_broadcast(&rd->cond);
    pthread_mutex_unlock(&rd->lock);
}

/* Splits one entry into records and hands them to replay. */
static mq_err_t br_cstore_replay_entry(const uint8_t *p, size_t len, br_cstore_replay_cb replay,
                                       void *arg)
{
    if (len == 0) {
        return MQ_ECORRUPT;
    }
    size_t at = 0;
    while (at < len) {
        if (len - at < BR_CSTORE_REC_HDR) {
            return MQ_ECORRUPT;
        }
        size_t n = mq_get_le32(p + at);
        at += BR_CSTORE_REC_HDR;
        if (n > len - at) {
            return MQ_ECORRUPT;
        }
        if (replay) {
            mq_err_t err = replay(p + at, n, arg);
            if (err != MQ_OK) {
                return err;
            }
        }
        at += n;
    }
    return MQ_OK;
}

/* Reads entries 0..LAC of the recovered ledger (a window of reads in
 * flight) and replays their records in order. Blocking. */
static mq_err_t br_cstore_replay_ledger(const char *path, lc_ledger_t *rh,
                                        br_cstore_replay_cb replay, void *arg, uint64_t *records)
{
    int64_t last = lc_ledger_lac(rh);
    uint64_t id = lc_ledger_id(rh);
    if (last < 0) {
        /* Entry 0 (the snapshot) was acknowledged before the znode named
         * the ledger: an empty one is not ours. */
        MQ_LOG_WARN("cursor ledger is empty path=%s ledger=%llu", path, (unsigned long long)id);
        return MQ_ECORRUPT;
    }
    br_cstore_rd_t rd;
    memset(&rd, 0, sizeof(rd));
    pthread_mutex_init(&rd.lock, NULL);
    pthread_cond_init(&rd.cond, NULL);
    for (int i = 0; i < BR_CSTORE_READ_WINDOW; i++) {
        rd.slots[i].rd = &rd;
    }
    mq_err_t err = MQ_OK;
    int64_t issued = 0;
    int64_t used = 0;
    pthread_mutex_lock(&rd.lock);
    while (used <= last && err == MQ_OK) {
        while (issued <= last && issued - used < BR_CSTORE_READ_WINDOW) {
            br_cstore_rslot_t *sl = &rd.slots[issued % BR_CSTORE_READ_WINDOW];
            sl->busy = true;
            sl->ready = false;
            pthread_mutex_unlock(&rd.lock);
            mq_err_t rerr = lc_ledger_read_async(rh, issued, br_cstore_read_done, sl);
            pthread_mutex_lock(&rd.lock);
            if (rerr != MQ_OK) {
                sl->busy = false;
                sl->ready = true;
                sl->err = rerr;
            }
            issued++;
        }
        br_cstore_rslot_t *sl = &rd.slots[used % BR_CSTORE_READ_WINDOW];
        while (!sl->ready) {
            pthread_cond_wait(&rd.cond, &rd.lock);
        }
        sl->ready = false;
        err = sl->err;
        mq_slice_t s = sl->payload;
        memset(&sl->payload, 0, sizeof(sl->payload));
        if (err == MQ_OK) {
            /* The replay callback runs without the reader's lock. */
            pthread_mutex_unlock(&rd.lock);
            err = br_cstore_replay_entry(s.ptr, s.len, replay, arg);
            if (err == MQ_ECORRUPT) {
                MQ_LOG_WARN("cursor ledger entry does not split into records path=%s "
                            "ledger=%llu entry=%lld len=%zu",
                            path, (unsigned long long)id, (long long)used, s.len);
            }
            mq_slice_release(&s);
            pthread_mutex_lock(&rd.lock);
        } else {
            MQ_LOG_WARN("cursor ledger entry not read path=%s ledger=%llu entry=%lld err=%s", path,
                        (unsigned long long)id, (long long)used, mq_err_name(err));
        }
        used++;
    }
    /* Reads still in flight point into rd: wait for them. */
    for (int i = 0; i < BR_CSTORE_READ_WINDOW; i++) {
        br_cstore_rslot_t *sl = &rd.slots[i];
        while (sl->busy) {
            pthread_cond_wait(&rd.cond, &rd.lock);
        }
        mq_slice_release(&sl->payload);
    }
    pthread_mutex_unlock(&rd.lock);
    pthread_mutex_destroy(&rd.lock);
    pthread_cond_destroy(&rd.cond);
    if (err == MQ_OK && records) {
        *records = (uint64_t)last + 1;
    }
    return err;
}

/* --- write path ---------------------------------------------------------------- */

static void br_cstore_added(mq_err_t err, int64_t entry_id, void *arg);

/* Moves answered entries to the done list, fails what cannot be written
 * any more, and cuts the intake while the window allows. @locks lock */
static void br_cstore_kick(br_cstore_t *cs)
{
    for (;;) {
        while (cs->inflight.head && cs->inflight.head->answered) {
            br_cstore_entry_t *e = br_cstore_list_pop(&cs->inflight);
            cs->ninflight--;
            if (e->err != MQ_OK && cs->err == MQ_OK) {
                cs->err = e->err;
                if (!cs->freeing) {
                    MQ_LOG_WARN("cursor store broken group=%s topic=%s queue=%d ledger=%llu "
                                "err=%s",
                                cs->group, cs->topic, cs->queue, (unsigned long long)cs->ledger,
                                mq_err_name(e->err));
                }
            }
            if (cs->err != MQ_OK) {
                e->err = cs->err;
            }
            br_cstore_list_push(&cs->done, e);
        }
        /* Nothing in flight any more: records that can no longer be
         * written fail now, behind everything appended before them. */
        if (!cs->inflight.head && (cs->err != MQ_OK || cs->freeing)) {
            br_cstore_entry_t *e;
            while ((e = br_cstore_list_pop(&cs->intake))) {
                e->err = cs->err != MQ_OK ? cs->err : MQ_ECLOSED;
                br_cstore_list_push(&cs->done, e);
            }
        }
        if (cs->err != MQ_OK || cs->freeing || cs->paused || !cs->intake.head ||
            cs->ninflight >= BR_CSTORE_MAX_INFLIGHT) {
            return;
        }
        br_cstore_entry_t *e = br_cstore_list_pop(&cs->intake);
        br_cstore_list_push(&cs->inflight, e);
        cs->ninflight++;
        cs->entries++;
        /* Under lock, so entries reach the ledger in the order they were
         * cut; the call only posts to the client's loop. */
        mq_err_t err = lc_ledger_add_async(cs->lh, e->buf, e->len, br_cstore_added, e);
        free(e->buf);
        e->buf = NULL;
        if (err != MQ_OK) {
            e->answered = true;
            e->err = err;
        }
    }
}

/* Runs the callbacks of done entries, in order, and releases the lock. At
 * most one thread runs them at a time. @locks lock (released) */
static void br_cstore_settle_unlock(br_cstore_t *cs)
{
    if (!cs->settling) {
        cs->settling = true;
        while (cs->done.head) {
            br_cstore_entry_t *e = cs->done.head;
            cs->done.head = cs->done.tail = NULL;
            pthread_mutex_unlock(&cs->lock);
            while (e) {
                br_cstore_entry_t *next = e->next;
                for (size_t i = 0; i < e->n; i++) {
                    if (e->cbs[i].cb) {
                        e->cbs[i].cb(e->err, e->cbs[i].arg);
                    }
                }
                br_cstore_entry_free(e);
                e = next;
            }
            pthread_mutex_lock(&cs->lock);
        }
        cs->settling = false;
    }
    /* close, roll and free wait for the lists to empty. */
    pthread_cond_broadcast(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
}

/* Loop thread: the ledger answered one entry. */
static void br_cstore_added(mq_err_t err, int64_t entry_id, void *arg)
{
    MQ_UNUSED(entry_id);
    br_cstore_entry_t *e = arg;
    br_cstore_t *cs = e->cs;
    pthread_mutex_lock(&cs->lock);
    e->answered = true;
    e->err = err;
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
}

/* Whether nothing is left to write or to call back. @locks lock */
static bool br_cstore_idle(const br_cstore_t *cs)
{
    return !cs->intake.head && !cs->inflight.head && !cs->done.head && !cs->settling;
}

/* Breaks the store from a blocking path (a roll that cannot tell whether
 * the znode still names the current ledger). */
static void br_cstore_break(br_cstore_t *cs, mq_err_t err)
{
    pthread_mutex_lock(&cs->lock);
    if (cs->err == MQ_OK) {
        cs->err = err;
        MQ_LOG_WARN("cursor store broken group=%s topic=%s queue=%d ledger=%llu err=%s", cs->group,
                    cs->topic, cs->queue, (unsigned long long)cs->ledger, mq_err_name(err));
    }
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
}

mq_err_t br_cstore_append(br_cstore_t *cs, const void *rec, size_t len, br_cstore_done_cb cb,
                          void *arg)
{
    if (!cs || (!rec && len > 0)) {
        return MQ_EINVAL;
    }
    if (len > BR_CSTORE_MAX_REC) {
        return MQ_ETOOLARGE;
    }
    pthread_mutex_lock(&cs->lock);
    if (cs->err != MQ_OK || cs->closing) {
        mq_err_t err = cs->err != MQ_OK ? cs->err : MQ_ECLOSED;
        pthread_mutex_unlock(&cs->lock);
        return err;
    }
    br_cstore_entry_t *e = cs->intake.tail;
    size_t need = BR_CSTORE_REC_HDR + len;
    if (!e || (e->n > 0 && e->len + need > BR_CSTORE_PACK_BYTES)) {
        e = mq_calloc(1, sizeof(*e));
        e->cs = cs;
        br_cstore_list_push(&cs->intake, e);
    }
    if (e->len + need > e->cap) {
        size_t cap = e->cap ? e->cap : BR_CSTORE_FIRST_BUF;
        while (cap < e->len + need) {
            cap *= 2;
        }
        e->buf = mq_realloc(e->buf, cap);
        e->cap = cap;
    }
    mq_put_le32(e->buf + e->len, (uint32_t)len);
    if (len > 0) {
        memcpy(e->buf + e->len + BR_CSTORE_REC_HDR, rec, len);
    }
    e->len += need;
    if (e->n == e->cbs_cap) {
        e->cbs_cap = e->cbs_cap ? e->cbs_cap * 2 : 8;
        e->cbs = mq_realloc(e->cbs, e->cbs_cap * sizeof(*e->cbs));
    }
    e->cbs[e->n].cb = cb;
    e->cbs[e->n].arg = arg;
    e->n++;
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
    return MQ_OK;
}

uint64_t br_cstore_entries(br_cstore_t *cs)
{
    pthread_mutex_lock(&cs->lock);
    uint64_t n = cs->entries;
    pthread_mutex_unlock(&cs->lock);
    return n;
}

bool br_cstore_broken(br_cstore_t *cs)
{
    pthread_mutex_lock(&cs->lock);
    bool broken = cs->err != MQ_OK;
    pthread_mutex_unlock(&cs->lock);
    return broken;
}

/* --- open ---------------------------------------------------------------------- */

mq_err_t br_cstore_exists(const br_cstore_conf_t *conf)
{
    char path[BR_PATH_MAX];
    mq_err_t err = br_cstore_conf_path(conf, path, sizeof(path));
    if (err != MQ_OK) {
        return err;
    }
    zk_stat_t st;
    return zk_exists(conf->zk, path, &st);
}

/* What an open expects of the znode. */
typedef enum br_cstore_mode {
    BR_CSTORE_ANY,      /* take it over, or create it when absent */
    BR_CSTORE_EXISTING, /* take it over; MQ_ENOTFOUND when absent */
    BR_CSTORE_NEW,      /* create it; MQ_EBADVERSION when present */
} br_cstore_mode_t;

static mq_err_t br_cstore_open_at(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                                  br_cstore_snap_cb snap_cb, void *arg, br_cstore_mode_t mode,
                                  br_cstore_t **out);

/* replay may be NULL (records are skipped), and so may snap_cb (the
 * snapshot record is then empty). */
mq_err_t br_cstore_open(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                        br_cstore_snap_cb snap_cb, void *arg, br_cstore_t **out)
{
    return br_cstore_open_at(conf, replay, snap_cb, arg, BR_CSTORE_ANY, out);
}

mq_err_t br_cstore_open_existing(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                                 br_cstore_snap_cb snap_cb, void *arg, br_cstore_t **out)
{
    return br_cstore_open_at(conf, replay, snap_cb, arg, BR_CSTORE_EXISTING, out);
}

typedef struct br_cstore_snap_arg {
    const void *snap;
    size_t len;
} br_cstore_snap_arg_t;

static mq_err_t br_cstore_given_snap(const uint8_t **snap, size_t *snap_len, void *arg)
{
    br_cstore_snap_arg_t *a = arg;
    *snap = a->snap;
    *snap_len = a->len;
    return MQ_OK;
}

mq_err_t br_cstore_create(const br_cstore_conf_t *conf, const void *snap, size_t snap_len,
                          br_cstore_t **out)
{
    if (!snap && snap_len > 0) {
        return MQ_EINVAL;
    }
    br_cstore_snap_arg_t a = {snap, snap_len};
    return br_cstore_open_at(conf, NULL, br_cstore_given_snap, &a, BR_CSTORE_NEW, out);
}

static mq_err_t br_cstore_open_at(const br_cstore_conf_t *conf, br_cstore_replay_cb replay,
                                  br_cstore_snap_cb snap_cb, void *arg, br_cstore_mode_t mode,
                                  br_cstore_t **out)
{
    char path[BR_PATH_MAX];
    if (!out) {
        return MQ_EINVAL;
    }
    mq_err_t err = br_cstore_conf_path(conf, path, sizeof(path));
    if (err != MQ_OK) {
        return err;
    }
    /* The znode names the ledger of the current (or last) owner. */
    uint64_t old = 0;
    int32_t version = -1;
    err = br_cstore_zk_read(conf->zk, path, &old, &version);
    bool have_old = err == MQ_OK;
    if (err != MQ_OK && err != MQ_ENOTFOUND) {
        return err;
    }
    if (mode == BR_CSTORE_EXISTING && !have_old) {
        return MQ_ENOTFOUND;
    }
    if (mode == BR_CSTORE_NEW && have_old) {
        MQ_LOG_WARN("cursor store created by another broker meanwhile path=%s", path);
        return MQ_EBADVERSION;
    }
    uint64_t records = 0;
    if (have_old) {
        /* Recovery fences that owner: whatever it still writes fails, so
         * what we replay is all it will ever have acknowledged. */
        lc_ledger_t *rh = NULL;
        err = lc_ledger_recover(conf->lc, old, &rh);
        if (err == MQ_ENOLEDGER) {
            MQ_LOG_WARN("cursor record names a ledger that does not exist path=%s ledger=%llu",
                        path, (unsigned long long)old);
            return MQ_ECORRUPT;
        }
        if (err != MQ_OK) {
            return err;
        }
        err = br_cstore_replay_ledger(path, rh, replay, arg, &records);
        lc_ledger_free(rh);
        if (err != MQ_OK) {
            return err;
        }
    }
    const uint8_t *snap = NULL;
    size_t snap_len = 0;
    if (snap_cb) {
        err = snap_cb(&snap, &snap_len, arg);
        if (err != MQ_OK) {
            return err;
        }
        if (!snap && snap_len > 0) {
            return MQ_EINVAL;
        }
    }
    lc_ledger_t *lh = NULL;
    err = br_cstore_ledger_start(conf, path, snap, snap_len, &lh);
    if (err != MQ_OK) {
        return err;
    }
    uint64_t id = lc_ledger_id(lh);
    size_t rlen;
    char *rec = br_cstore_rec_encode(id, mq_wall_ms(), &rlen);
    err = br_cstore_zk_write(conf->zk, path, rec, rlen, &version);
    free(rec);
    if (err != MQ_OK) {
        lc_ledger_free(lh);
        /* Unless the outcome is unknown (the znode may name it), the new
         * ledger is nobody's. */
        if (err == MQ_EBADVERSION || !mq_err_retriable(err)) {
            br_cstore_ledger_delete(conf->lc, path, id);
        }
        if (err == MQ_EBADVERSION) {
            MQ_LOG_WARN("cursor taken over by another broker during open path=%s", path);
        }
        return err;
    }
    if (have_old) {
        br_cstore_ledger_delete(conf->lc, path, old);
    }

    br_cstore_t *cs = mq_calloc(1, sizeof(*cs));
    cs->lc = conf->lc;
    cs->zk = conf->zk;
    cs->group = mq_strdup(conf->group);
    cs->topic = mq_strdup(conf->topic);
    cs->queue = conf->queue;
    memcpy(cs->path, path, sizeof(path));
    pthread_mutex_init(&cs->op_lock, NULL);
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->cond, NULL);
    cs->zversion = version;
    cs->lh = lh;
    cs->ledger = id;
    cs->entries = 1;
    MQ_LOG_INFO("cursor store opened group=%s topic=%s queue=%d ledger=%llu recovered=%llu "
                "entries_replayed=%llu snapshot_bytes=%zu",
                cs->group, cs->topic, cs->queue, (unsigned long long)id,
                (unsigned long long)(have_old ? old : 0), (unsigned long long)records, snap_len);
    *out = cs;
    return MQ_OK;
}

/* --- roll ---------------------------------------------------------------------- */

void br_cstore_roll_begin(br_cstore_t *cs)
{
    pthread_mutex_lock(&cs->lock);
    if (cs->err == MQ_OK && !cs->closing) {
        cs->paused = true;
    }
    pthread_mutex_unlock(&cs->lock);
}

/* Lets cutting go on after a roll that did not switch ledgers. */
static void br_cstore_resume(br_cstore_t *cs)
{
    pthread_mutex_lock(&cs->lock);
    cs->paused = false;
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
}

mq_err_t br_cstore_roll(br_cstore_t *cs, const void *snap, size_t snap_len)
{
    if (!cs || (!snap && snap_len > 0)) {
        return MQ_EINVAL;
    }
    pthread_mutex_lock(&cs->op_lock);
    pthread_mutex_lock(&cs->lock);
    mq_err_t err = cs->err != MQ_OK ? cs->err : cs->closing ? MQ_ECLOSED : MQ_OK;
    if (err == MQ_OK) {
        /* From here on records wait in the intake: they go to the new
         * ledger, after the snapshot. */
        cs->paused = true;
    }
    pthread_mutex_unlock(&cs->lock);
    if (err != MQ_OK) {
        pthread_mutex_unlock(&cs->op_lock);
        return err;
    }
    br_cstore_conf_t conf = {
        .lc = cs->lc, .zk = cs->zk, .group = cs->group, .topic = cs->topic, .queue = cs->queue};
    lc_ledger_t *lh = NULL;
    err = br_cstore_ledger_start(&conf, cs->path, snap, snap_len, &lh);
    if (err != MQ_OK) {
        /* The current ledger still works: keep it. */
        MQ_LOG_WARN("cursor ledger not rolled group=%s topic=%s queue=%d ledger=%llu err=%s",
                    cs->group, cs->topic, cs->queue, (unsigned long long)cs->ledger,
                    mq_err_name(err));
        br_cstore_resume(cs);
        pthread_mutex_unlock(&cs->op_lock);
        return err;
    }
    uint64_t id = lc_ledger_id(lh);
    /* Whether the znode may name the new ledger (a write of unknown
     * outcome): then it must not be deleted. */
    bool unknown = false;
    pthread_mutex_lock(&cs->lock);
    err = cs->err;
    pthread_mutex_unlock(&cs->lock);
    if (err == MQ_OK) {
        size_t rlen;
        char *rec = br_cstore_rec_encode(id, mq_wall_ms(), &rlen);
        int32_t version = cs->zversion;
        err = br_cstore_zk_write(cs->zk, cs->path, rec, rlen, &version);
        free(rec);
        if (err == MQ_OK) {
            cs->zversion = version;
        } else {
            /* Whether the znode names the new ledger or another broker
             * owns the cursor, the current ledger is no longer the one a
             * takeover would read: writing on to it would lose records. */
            MQ_LOG_WARN("cursor record not switched group=%s topic=%s queue=%d ledger=%llu "
                        "next_ledger=%llu err=%s",
                        cs->group, cs->topic, cs->queue, (unsigned long long)cs->ledger,
                        (unsigned long long)id, mq_err_name(err));
            if (err == MQ_EBADVERSION) {
                err = MQ_EFENCED;
            } else {
                unknown = mq_err_retriable(err);
            }
            br_cstore_break(cs, err);
        }
    }
    if (err != MQ_OK) {
        lc_ledger_free(lh);
        if (!unknown) {
            br_cstore_ledger_delete(cs->lc, cs->path, id);
        }
        br_cstore_resume(cs);
        pthread_mutex_unlock(&cs->op_lock);
        return err;
    }
    pthread_mutex_lock(&cs->lock);
    lc_ledger_t *old = cs->lh;
    uint64_t old_id = cs->ledger;
    uint64_t old_entries = cs->entries;
    cs->lh = lh;
    cs->ledger = id;
    cs->entries = 1;
    cs->paused = false;
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
    /* Closing waits for the old ledger's entries still in flight. */
    err = lc_ledger_close(old);
    if (err != MQ_OK) {
        MQ_LOG_WARN("old cursor ledger not closed group=%s topic=%s queue=%d ledger=%llu err=%s",
                    cs->group, cs->topic, cs->queue, (unsigned long long)old_id, mq_err_name(err));
    }
    lc_ledger_free(old);
    br_cstore_ledger_delete(cs->lc, cs->path, old_id);
    MQ_LOG_INFO("cursor ledger rolled group=%s topic=%s queue=%d ledger=%llu entries=%llu "
                "next_ledger=%llu snapshot_bytes=%zu",
                cs->group, cs->topic, cs->queue, (unsigned long long)old_id,
                (unsigned long long)old_entries, (unsigned long long)id, snap_len);
    pthread_mutex_unlock(&cs->op_lock);
    return MQ_OK;
}

/* --- close, free, delete ------------------------------------------------------- */

mq_err_t br_cstore_close(br_cstore_t *cs, const void *snap, size_t snap_len)
{
    if (!cs || (!snap && snap_len > 0)) {
        return MQ_EINVAL;
    }
    if (snap && snap_len > BR_CSTORE_MAX_REC) {
        return MQ_ETOOLARGE;
    }
    pthread_mutex_lock(&cs->op_lock);
    pthread_mutex_lock(&cs->lock);
    if (cs->closing) {
        pthread_mutex_unlock(&cs->lock);
        pthread_mutex_unlock(&cs->op_lock);
        return MQ_ECLOSED;
    }
    cs->closing = true;
    /* A roll announced by br_cstore_roll_begin that has not run (it would
     * hold op_lock) never will: what waits in the intake goes to the
     * current ledger, before the closing snapshot. */
    cs->paused = false;
    br_cstore_kick(cs);
    while (!br_cstore_idle(cs)) {
        pthread_cond_wait(&cs->cond, &cs->lock);
    }
    mq_err_t err = cs->err;
    lc_ledger_t *lh = cs->lh;
    uint64_t entries = cs->entries;
    pthread_mutex_unlock(&cs->lock);
    /* Nothing is cut any more (appends are refused): lh is ours alone. */
    if (err == MQ_OK && snap) {
        uint8_t *buf = mq_malloc(BR_CSTORE_REC_HDR + snap_len);
        mq_put_le32(buf, (uint32_t)snap_len);
        if (snap_len > 0) {
            memcpy(buf + BR_CSTORE_REC_HDR, snap, snap_len);
        }
        err = lc_ledger_add(lh, buf, BR_CSTORE_REC_HDR + snap_len, NULL);
        free(buf);
        entries++;
    }
    if (err == MQ_OK) {
        err = lc_ledger_close(lh);
    }
    pthread_mutex_lock(&cs->lock);
    if (err == MQ_OK) {
        cs->entries = entries;
    } else if (cs->err == MQ_OK) {
        cs->err = err;
    }
    pthread_mutex_unlock(&cs->lock);
    if (err != MQ_OK) {
        MQ_LOG_WARN("cursor store not closed cleanly group=%s topic=%s queue=%d ledger=%llu "
                    "err=%s",
                    cs->group, cs->topic, cs->queue, (unsigned long long)cs->ledger,
                    mq_err_name(err));
    } else {
        MQ_LOG_INFO("cursor store closed group=%s topic=%s queue=%d ledger=%llu entries=%llu",
                    cs->group, cs->topic, cs->queue, (unsigned long long)cs->ledger,
                    (unsigned long long)entries);
    }
    pthread_mutex_unlock(&cs->op_lock);
    return err;
}

void br_cstore_free(br_cstore_t *cs)
{
    if (!cs) {
        return;
    }
    pthread_mutex_lock(&cs->lock);
    cs->closing = true;
    cs->freeing = true;
    lc_ledger_t *lh = cs->lh;
    cs->lh = NULL;
    br_cstore_kick(cs);
    br_cstore_settle_unlock(cs);
    /* Adds still in flight fail with MQ_ECLOSED (answered on the loop
     * thread before this returns or soon after); the intake behind them
     * fails then. */
    lc_ledger_free(lh);
    pthread_mutex_lock(&cs->lock);
    while (!br_cstore_idle(cs)) {
        pthread_cond_wait(&cs->cond, &cs->lock);
    }
    pthread_mutex_unlock(&cs->lock);
    pthread_mutex_destroy(&cs->op_lock);
    pthread_mutex_destroy(&cs->lock);
    pthread_cond_destroy(&cs->cond);
    free(cs->group);
    free(cs->topic);
    free(cs);
}

mq_err_t br_cstore_delete(const br_cstore_conf_t *conf)
{
    char path[BR_PATH_MAX];
    mq_err_t err = br_cstore_conf_path(conf, path, sizeof(path));
    if (err != MQ_OK) {
        return err;
    }
    uint64_t id = 0;
    int32_t version = -1;
    err = br_cstore_zk_read(conf->zk, path, &id, &version);
    bool have_ledger = err == MQ_OK;
    if (err == MQ_ENOTFOUND) {
        return MQ_OK;
    }
    if (err != MQ_OK && err != MQ_ECORRUPT) {
        return err;
    }
    /* The znode first: a crash in between leaves an orphan ledger, never
     * a record naming a ledger that is gone. A corrupt record goes too (its
     * ledger, if any, stays orphaned). */
    err = zk_delete(conf->zk, path, have_ledger ? version : -1);
    if (err == MQ_ENOTFOUND) {
        return MQ_OK;
    }
    if (err != MQ_OK) {
        return err;
    }
    if (have_ledger) {
        br_cstore_ledger_delete(conf->lc, path, id);
    }
    /* Parents left empty go too (ignored when another queue's cursor still
     * lives there). */
    char dir[BR_PATH_MAX];
    if (br_rec_path(dir, sizeof(dir), conf->root, "/cursors/%s/%s", conf->group, conf->topic)) {
        (void)zk_delete(conf->zk, dir, -1);
    }
    if (br_rec_path(dir, sizeof(dir), conf->root, "/cursors/%s", conf->group)) {
        (void)zk_delete(conf->zk, dir, -1);
    }
    MQ_LOG_INFO("cursor deleted group=%s topic=%s queue=%d ledger=%llu", conf->group, conf->topic,
                conf->queue, (unsigned long long)(have_ledger ? id : 0));
    return MQ_OK;
}
