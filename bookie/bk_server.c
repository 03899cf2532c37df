/*
 * bk_server: a bookie's life cycle.
 *
 * Start: connect to ZooKeeper, check cookies, open storage and load ledger
 * records, replay the journal from the persisted mark into the write cache,
 * open a new journal file, checkpoint (so older journal files can go), listen,
 * register. Only then are clients served: nothing is acknowledged by a bookie
 * that has not recovered everything it acknowledged before.
 *
 * Threads: the caller's thread runs start and, in bk_server_run, waits for a
 * stop and shuts down; a signal thread turns SIGTERM/SIGINT into a stop; the
 * checkpoint thread ("checkpoint") runs bk_storage_checkpoint every
 * flushInterval or when the write cache passes half its size; the admin
 * executor checks disk usage and keeps the ZooKeeper registration current.
 * The protocol itself is in bk_request.c.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bk_cookie.h"
#include "bk_server_int.h"
#include "lc_entry.h"
#include "mq_fs.h"
#include "mq_log.h"
#include "mq_signal.h"
#include "mq_util.h"

#define BK_SRV_VERSION "0.1.0"
/* Socket read buffers: large enough for several 64 KiB entries each. */
#define BK_SRV_READ_BUF (256 * 1024)

/* --- stop ---------------------------------------------------------------------- */

void bk_server_stop(bk_server_t *srv, int exit_code)
{
    pthread_mutex_lock(&srv->stop_lock);
    if (!srv->stop_requested) {
        srv->stop_requested = true;
        srv->exit_code = exit_code;
    }
    pthread_cond_broadcast(&srv->stop_cond);
    pthread_mutex_unlock(&srv->stop_lock);
}

static void bk_srv_on_signal(void *arg)
{
    bk_server_stop(arg, 0);
}

/* --- registration and disk usage (admin thread, and startup) -------------- */

static void bk_srv_reg_path(bk_server_t *srv, bool read_only, char *out, size_t cap)
{
    snprintf(out, cap, "%s/bookies/%s/%s", srv->conf->zkLedgersRootPath,
             read_only ? "readonly" : "available", srv->bookie_id);
}

static size_t bk_srv_reg_data(bk_server_t *srv, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "address=%s:%lld\nstate=%s\ntotalDiskBytes=%llu\nfreeDiskBytes=%llu\n"
                     "diskUsage=%.4f\nhttpPort=%d\nversion=%s\n",
                     srv->conf->advertisedAddress, (long long)bk_server_port(srv),
                     atomic_load(&srv->read_only) ? "readonly" : "writable",
                     (unsigned long long)atomic_load(&srv->total_disk),
                     (unsigned long long)atomic_load(&srv->free_disk), srv->disk_usage,
                     srv->http ? mq_http_port(srv->http) : 0, BK_SRV_VERSION);
    return n < 0 ? 0 : MQ_MIN((size_t)n, cap - 1);
}

/* Measures disk usage: the fullest directory decides read-only mode, and
 * total/free are summed over the ledger directories' distinct file systems. */
static void bk_srv_measure_disks(bk_server_t *srv)
{
    double worst = 0;
    uint64_t total = 0;
    uint64_t free_bytes = 0;
    unsigned long seen[64];
    size_t nseen = 0;
    for (size_t i = 0; i < srv->njournal_dirs + srv->nledger_dirs; i++) {
        bool ledger = i >= srv->njournal_dirs;
        const char *dir = ledger ? srv->ledger_dirs[i - srv->njournal_dirs] : srv->journal_dirs[i];
        mq_fs_usage_t u;
        if (mq_fs_usage(dir, &u) != MQ_OK) {
            continue;
        }
        if (u.usage > worst) {
            worst = u.usage;
        }
        struct statvfs sv;
        if (!ledger || statvfs(dir, &sv) != 0) {
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < nseen; k++) {
            dup = dup || seen[k] == sv.f_fsid;
        }
        if (!dup && nseen < MQ_ARRAY_LEN(seen)) {
            seen[nseen++] = sv.f_fsid;
            total += u.total_bytes;
            free_bytes += u.free_bytes;
        }
    }
    srv->disk_usage = worst;
    atomic_store(&srv->total_disk, total);
    atomic_store(&srv->free_disk, free_bytes);
}

/* Applies the thresholds with hysteresis; returns true when the mode changed. */
static bool bk_srv_apply_thresholds(bk_server_t *srv)
{
    bool ro = atomic_load(&srv->read_only);
    if (!ro && srv->disk_usage > srv->conf->diskUsageThreshold) {
        MQ_LOG_WARN("disk usage above threshold, becoming read-only usage=%.4f threshold=%.4f",
                    srv->disk_usage, srv->conf->diskUsageThreshold);
        atomic_store(&srv->read_only, true);
        return true;
    }
    if (ro && srv->disk_usage < srv->conf->diskUsageLwmThreshold) {
        MQ_LOG_INFO("disk usage below low-water mark, writable again usage=%.4f lwm=%.4f",
                    srv->disk_usage, srv->conf->diskUsageLwmThreshold);
        atomic_store(&srv->read_only, false);
        return true;
    }
    return false;
}

/* (Re)registers under available/ or readonly/ as the mode says. */
static mq_err_t bk_srv_register(bk_server_t *srv)
{
    bool ro = atomic_load(&srv->read_only) && srv->conf->readOnlyModeEnabled;
    char path[512];
    char data[512];
    bk_srv_reg_path(srv, ro, path, sizeof(path));
    size_t len = bk_srv_reg_data(srv, data, sizeof(data));
    mq_err_t err;
    if (srv->registered_path[0] && strcmp(path, srv->registered_path) == 0) {
        return zk_ephemeral_update(srv->zk, path, data, len);
    }
    /* The new node first, then the old one goes (BookKeeper's order), so the
     * bookie never looks absent. */
    err = zk_ephemeral_register(srv->zk, path, data, len);
    if (err != MQ_OK) {
        MQ_LOG_ERROR("cannot register path=%s err=%s", path, mq_err_str(err));
        return err;
    }
    if (srv->registered_path[0]) {
        mq_err_t uerr = zk_ephemeral_unregister(srv->zk, srv->registered_path);
        if (uerr != MQ_OK && uerr != MQ_ENOTFOUND) {
            MQ_LOG_WARN("cannot remove old registration path=%s err=%s", srv->registered_path,
                        mq_err_str(uerr));
        }
    }
    snprintf(srv->registered_path, sizeof(srv->registered_path), "%s", path);
    MQ_LOG_INFO("registered path=%s state=%s", path, ro ? "readonly" : "writable");
    return MQ_OK;
}

static void bk_srv_disk_tick(void *arg)
{
    bk_server_t *srv = arg;
    if (atomic_load(&srv->stopping)) {
        return;
    }
    double before = srv->disk_usage;
    bk_srv_measure_disks(srv);
    bool changed = bk_srv_apply_thresholds(srv);
    double delta = srv->disk_usage - before;
    if (changed || delta > 0.005 || delta < -0.005) {
        bk_srv_register(srv);
    }
    mq_executor_schedule(srv->admin, 0, (uint64_t)srv->conf->diskCheckInterval, bk_srv_disk_tick,
                         srv);
}

/* --- checkpoint thread ----------------------------------------------------------- */

void bk_server_request_checkpoint(bk_server_t *srv)
{
    atomic_store(&srv->sync_wanted, true);
    pthread_mutex_lock(&srv->sync_lock);
    srv->sync_requested = true;
    pthread_cond_signal(&srv->sync_cond);
    pthread_mutex_unlock(&srv->sync_lock);
}

/* One checkpoint: the mark is read BEFORE the cache swap inside
 * bk_storage_checkpoint, so every record up to it is in the swapped cache;
 * ledger records are snapshotted after the mark, so they cover it too. */
static mq_err_t bk_srv_checkpoint(bk_server_t *srv)
{
    atomic_store(&srv->sync_wanted, false);
    bk_journal_pos_t mark = bk_journal_synced(srv->journal);
    bk_ledger_update_t *ups = NULL;
    size_t n = 0;
    uint64_t token = 0;
    bk_ledgers_dirty(srv->ledgers, &ups, &n, &token);
    if (n == 0 && bk_storage_cache_bytes(srv->storage) == 0 &&
        bk_journal_pos_cmp(mark, bk_storage_mark(srv->storage)) == 0) {
        free(ups);
        return MQ_OK;
    }
    uint64_t t0 = mq_now_ns();
    mq_err_t err = bk_storage_checkpoint(srv->storage, mark, ups, n);
    free(ups);
    if (err != MQ_OK) {
        MQ_LOG_ERROR("checkpoint failed err=%s: stopping the bookie", mq_err_str(err));
        bk_server_stop(srv, 1);
        return err;
    }
    bk_ledgers_persisted(srv->ledgers, token);
    bk_journal_trim(srv->journal, mark);
    atomic_fetch_add(&srv->counters.checkpoints, 1);
    MQ_LOG_DEBUG("checkpoint done mark=%llx:%llu ledgers=%zu ms=%.1f",
                 (unsigned long long)mark.file_id, (unsigned long long)mark.offset, n,
                 (double)(mq_now_ns() - t0) / 1e6);
    return MQ_OK;
}

static void *bk_srv_sync_main(void *arg)
{
    bk_server_t *srv = arg;
    mq_log_thread_name("checkpoint");
    /* Each wait is flushInterval +-25%, and each write-cache threshold half
     * the cache +-25%, drawn afresh: bookies started together (on one disk,
     * or after a power cut) would otherwise checkpoint in step for ever, and
     * their journals' fdatasyncs would all queue behind the entry-log
     * writeback at once; an ack quorum rides out one slow bookie, not all of
     * them. Under a steady load the threshold decides (the bookies of a
     * (5,3,2) cluster all take the same bytes): with a fixed half, all five
     * checkpointed within the same second every ~10 s at 5k msg/s, and adds
     * stalled 20-70 ms each time. */
    uint64_t rnd = mq_mix64(mq_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)srv);
    uint64_t half = ((uint64_t)srv->conf->dbStorage_writeCacheMaxSizeMb << 20) / 2;
    atomic_store(&srv->sync_at, (size_t)mq_jitter(half, 25, &rnd));
    uint64_t last = mq_now_ns();
    pthread_mutex_lock(&srv->sync_lock);
    while (!srv->sync_stop) {
        if (!srv->sync_requested) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = mq_jitter((uint64_t)srv->conf->flushInterval * 1000000ull, 25, &rnd);
            uint64_t ns = (uint64_t)ts.tv_nsec + wait;
            ts.tv_sec += (time_t)(ns / 1000000000ull);
            ts.tv_nsec = (long)(ns % 1000000000ull);
            pthread_cond_timedwait(&srv->sync_cond, &srv->sync_lock, &ts);
        }
        if (srv->sync_stop) {
            break;
        }
        srv->sync_requested = false;
        pthread_mutex_unlock(&srv->sync_lock);
        /* The entry-log writes are spread over about a third of the time
         * the cache took to fill (bk_storage_pace_next). */
        uint64_t now = mq_now_ns();
        double secs = (double)(now - last) / 1e9;
        last = now;
        double bytes = (double)bk_storage_cache_bytes(srv->storage);
        if (secs > 0.01 && bytes > 0) {
            bk_storage_pace_next(srv->storage, (uint64_t)(3.0 * bytes / secs) + 1);
        }
        bk_srv_checkpoint(srv);
        atomic_store(&srv->sync_at, (size_t)mq_jitter(half, 25, &rnd));
        /* Cache space came back: the loop may read from clients again. */
        mq_net_loop_post(srv->loop, bk_request_maybe_resume, srv);
        pthread_mutex_lock(&srv->sync_lock);
    }
    pthread_mutex_unlock(&srv->sync_lock);
    return NULL;
}

/* --- journal replay ------------------------------------------------------------ */

typedef struct bk_srv_replay {
    bk_server_t *srv;
    uint64_t entries;
    uint64_t skipped;
} bk_srv_replay_t;

static void bk_srv_replay_record(bk_jrec_type_t type, const uint8_t *payload, size_t len,
                                 bk_journal_pos_t pos, void *arg)
{
    bk_srv_replay_t *rp = arg;
    bk_server_t *srv = rp->srv;
    MQ_UNUSED(pos);
    switch (type) {
    case BK_JREC_MASTER_KEY:
        if (len > 8) {
            bk_ledgers_replay_key(srv->ledgers, mq_get_le64(payload), payload + 8, len - 8);
        }
        return;
    case BK_JREC_FENCE:
        if (len >= 8) {
            bk_ledgers_replay_fence(srv->ledgers, mq_get_le64(payload));
        }
        return;
    case BK_JREC_ENTRY: {
        lc_entry_hdr_t hdr;
        if (lc_entry_verify(payload, len, &hdr) != MQ_OK ||
            bk_ledgers_get(srv->ledgers, hdr.ledger_id, NULL) != MQ_OK) {
            rp->skipped++;
            return;
        }
        mq_buf_t *buf = mq_buf_copy(payload, len);
        mq_slice_t s = {buf, buf->data, len};
        bk_storage_add(srv->storage, hdr.ledger_id, hdr.entry_id, &s);
        mq_buf_unref(buf);
        bk_ledgers_replay_lac(srv->ledgers, hdr.ledger_id, hdr.lac);
        rp->entries++;
        return;
    }
    default:
        return;
    }
}

static void bk_srv_load_ledger(uint64_t ledger_id, const bk_ledger_rec_t *rec, void *arg)
{
    bk_ledgers_load(arg, ledger_id, rec);
}

/* --- start ------------------------------------------------------------------------ */

static void bk_srv_free(bk_server_t *srv);

static mq_err_t bk_srv_parse_dirs(bk_server_t *srv, char *errbuf, size_t errlen)
{
    srv->journal_dirs = mq_conf_split(srv->conf->journalDirectories, &srv->njournal_dirs);
    srv->ledger_dirs = mq_conf_split(srv->conf->ledgerDirectories, &srv->nledger_dirs);
    if (srv->njournal_dirs != 1) {
        snprintf(errbuf, errlen, "journalDirectories: exactly one directory is supported (got %zu)",
                 srv->njournal_dirs);
        return MQ_ECONFIG;
    }
    if (srv->nledger_dirs == 0) {
        snprintf(errbuf, errlen, "ledgerDirectories: at least one directory is required");
        return MQ_ECONFIG;
    }
    for (size_t i = 0; i < srv->njournal_dirs + srv->nledger_dirs; i++) {
        const char *dir = i < srv->njournal_dirs ? srv->journal_dirs[i]
                                                 : srv->ledger_dirs[i - srv->njournal_dirs];
        mq_err_t err = mq_fs_mkdirs(dir);
        if (err != MQ_OK) {
            snprintf(errbuf, errlen, "cannot create directory %s: %s", dir, mq_err_str(err));
            return err;
        }
    }
    return MQ_OK;
}

static mq_err_t bk_srv_common_init(const bk_conf_t *conf, bk_server_t **out, char *errbuf,
                                   size_t errlen)
{
    bk_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->conf = conf;
    pthread_mutex_init(&srv->done_lock, NULL);
    pthread_mutex_init(&srv->sync_lock, NULL);
    pthread_mutex_init(&srv->stop_lock, NULL);
    pthread_cond_init(&srv->stop_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->sync_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (conf->bookieId[0]) {
        snprintf(srv->bookie_id, sizeof(srv->bookie_id), "%s", conf->bookieId);
    } else {
        snprintf(srv->bookie_id, sizeof(srv->bookie_id), "%s:%lld", conf->advertisedAddress,
                 (long long)conf->bookiePort);
    }
    if (strchr(srv->bookie_id, '/')) {
        snprintf(errbuf, errlen, "bookieId '%s' must not contain '/'", srv->bookie_id);
        bk_srv_free(srv);
        return MQ_ECONFIG;
    }
    mq_err_t err = bk_srv_parse_dirs(srv, errbuf, errlen);
    if (err != MQ_OK) {
        bk_srv_free(srv);
        return err;
    }
    zk_client_opts_t zo = {(int)conf->zkTimeout, (int)MQ_MAX(conf->zkTimeout, 15000), NULL};
    err = zk_client_new(conf->zkServers, &zo, &srv->zk);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot connect to ZooKeeper at %s: %s", conf->zkServers,
                 mq_err_str(err));
        bk_srv_free(srv);
        return err;
    }
    *out = srv;
    return MQ_OK;
}

static bk_cookie_ctx_t bk_srv_cookie_ctx(bk_server_t *srv)
{
    bk_cookie_ctx_t c = {srv->zk,
                         srv->conf->zkLedgersRootPath,
                         srv->bookie_id,
                         (const char *const *)srv->journal_dirs,
                         srv->njournal_dirs,
                         (const char *const *)srv->ledger_dirs,
                         srv->nledger_dirs};
    return c;
}

/* Opens storage, loads ledger records, replays the journal, opens a new
 * journal file and checkpoints everything replayed. */
static mq_err_t bk_srv_recover(bk_server_t *srv, char *errbuf, size_t errlen)
{
    const bk_conf_t *conf = srv->conf;
    bk_storage_opts_t so = {(const char *const *)srv->ledger_dirs, srv->nledger_dirs,
                            (uint64_t)conf->logSizeLimit,
                            (size_t)conf->dbStorage_rocksDB_blockCacheSize};
    mq_err_t err = bk_storage_open(&so, &srv->storage);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot open ledger storage in %s: %s", conf->ledgerDirectories,
                 mq_err_str(err));
        return err;
    }
    srv->ledgers = bk_ledgers_new();
    err = bk_storage_foreach_ledger(srv->storage, bk_srv_load_ledger, srv->ledgers);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot load ledger records: %s", mq_err_str(err));
        return err;
    }
    bk_journal_pos_t mark = bk_storage_mark(srv->storage);
    bk_srv_replay_t rp = {srv, 0, 0};
    bk_journal_replay_stats_t rs;
    memset(&rs, 0, sizeof(rs));
    uint64_t t0 = mq_now_ns();
    err = bk_journal_replay(srv->journal_dirs[0], mark, bk_srv_replay_record, &rp, &rs);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "journal replay failed in %s: %s", srv->journal_dirs[0],
                 mq_err_str(err));
        return err;
    }
    MQ_LOG_INFO("journal replayed files=%llu records=%llu entries=%llu skipped=%llu torn=%llu "
                "ledgers=%zu ms=%.1f",
                (unsigned long long)rs.files, (unsigned long long)rs.records,
                (unsigned long long)rp.entries, (unsigned long long)rp.skipped,
                (unsigned long long)rs.torn_files, bk_ledgers_count(srv->ledgers),
                (double)(mq_now_ns() - t0) / 1e6);
    if (rp.skipped) {
        MQ_LOG_WARN("journal entries without a known ledger were skipped count=%llu",
                    (unsigned long long)rp.skipped);
    }
    bk_journal_opts_t jo = {
        .dir = srv->journal_dirs[0],
        .sync_data = conf->journalSyncData,
        .max_group_wait_ms = (uint32_t)conf->journalMaxGroupWaitMSec,
        .buffered_writes_threshold = (size_t)conf->journalBufferedWritesThreshold,
        .max_file_size = (uint64_t)conf->journalMaxSizeMB << 20,
        .prealloc_size = (uint64_t)conf->journalPreAllocSizeMB << 20,
        .paced_prealloc = true,
        .inline_writes = conf->journalInlineWrites,
        .alignment = (uint32_t)conf->journalAlignmentSize,
        .max_backups = (uint32_t)conf->journalMaxBackups,
        .on_group_done = bk_request_on_group_done,
        .group_arg = srv,
    };
    if (jo.alignment & (jo.alignment - 1)) {
        snprintf(errbuf, errlen, "journalAlignmentSize must be a power of two");
        return MQ_ECONFIG;
    }
    err = bk_journal_open(&jo, &srv->journal);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot open the journal in %s: %s", srv->journal_dirs[0],
                 mq_err_str(err));
        return err;
    }
    /* Everything replayed goes to the entry logs and index now, so that no
     * older journal file is needed again (BookKeeper does the same). */
    err = bk_srv_checkpoint(srv);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "checkpoint after replay failed: %s", mq_err_str(err));
        return err;
    }
    return MQ_OK;
}

mq_err_t bk_server_start(const bk_conf_t *conf, bk_server_t **out, char *errbuf, size_t errlen)
{
    /* Frames above the pooled read-buffer size (entries over 256 KiB) get
     * their own allocation and live until a checkpoint: always from mmap, so
     * each goes back to the kernel when freed, instead of glibc's threshold
     * drifting up and such buffers fragmenting its heap. */
    mallopt(M_MMAP_THRESHOLD, BK_SRV_READ_BUF);
    bk_server_t *srv;
    mq_err_t err = bk_srv_common_init(conf, &srv, errbuf, errlen);
    if (err != MQ_OK) {
        return err;
    }
    bk_cookie_ctx_t cc = bk_srv_cookie_ctx(srv);
    err = bk_cookie_check(&cc, errbuf, errlen);
    if (err == MQ_OK) {
        err = bk_srv_recover(srv, errbuf, errlen);
    }
    if (err != MQ_OK) {
        bk_srv_free(srv);
        return err;
    }
    bk_srv_measure_disks(srv);
    bk_srv_apply_thresholds(srv);

    srv->loop = mq_net_loop_new("bk-net");
    bk_request_inline_start(srv);
    srv->readers = mq_executor_new("bk-read", (unsigned)conf->numReadWorkerThreads);
    srv->admin = mq_executor_new("bk-admin", 1);
    mq_net_opts_t no;
    mq_net_opts_default(&no);
    no.max_frame = (size_t)conf->nettyMaxFrameSizeBytes;
    /* Added entries stay in their socket buffers (zero copy) until a
     * checkpoint frees them, so buffers come from a pool that can keep a
     * write cache's worth for reuse: the pool only holds buffers the cache is
     * not using, so peak memory stays one write cache, and refilling after a
     * checkpoint costs no page faults. Measured with scripts/bench-bookie.sh:
     * malloc'ed buffers peaked at 258 MiB RSS; a pool of a quarter of the
     * cache at 108 MiB but 25% slower at 64 KiB entries; this at 117 MiB. */
    no.read_buf_size = BK_SRV_READ_BUF;
    no.read_pool_bytes = (size_t)conf->dbStorage_writeCacheMaxSizeMb << 20;
    if (no.max_frame_hard < no.max_frame * 2) {
        no.max_frame_hard = no.max_frame * 2;
    }
    err = mq_net_server_new(srv->loop, conf->bindAddress, (int)conf->bookiePort, &no,
                            &bk_request_cbs, srv, &srv->net);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "cannot listen on %s:%lld: %s", conf->bindAddress,
                 (long long)conf->bookiePort, mq_err_str(err));
        bk_srv_free(srv);
        return err;
    }
    atomic_store(&srv->sync_at, ((size_t)conf->dbStorage_writeCacheMaxSizeMb << 20) / 2);
    if (pthread_create(&srv->sync_tid, NULL, bk_srv_sync_main, srv) != 0) {
        snprintf(errbuf, errlen, "cannot start the checkpoint thread");
        bk_srv_free(srv);
        return MQ_ENOMEM;
    }
    if (conf->httpServerEnabled) {
        err = bk_http_start(srv);
        if (err != MQ_OK) {
            snprintf(errbuf, errlen, "cannot start the HTTP server on port %lld: %s",
                     (long long)conf->httpServerPort, mq_err_str(err));
            bk_srv_free(srv);
            return err;
        }
    }
    err = bk_srv_register(srv);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen,
                 "cannot register bookie %s in ZooKeeper: %s (another process with the same "
                 "bookieId running?)",
                 srv->bookie_id, mq_err_str(err));
        bk_srv_free(srv);
        return err;
    }
    mq_executor_schedule(srv->admin, 0, (uint64_t)conf->diskCheckInterval, bk_srv_disk_tick, srv);
    MQ_LOG_INFO("bookie started id=%s port=%d journal=%s ledgers=%s sync=%s", srv->bookie_id,
                bk_server_port(srv), srv->journal_dirs[0], conf->ledgerDirectories,
                conf->journalSyncData ? "on" : "off");
    *out = srv;
    return MQ_OK;
}

int bk_server_port(const bk_server_t *srv)
{
    return srv->net ? mq_net_server_port(srv->net) : (int)srv->conf->bookiePort;
}

/* --- shutdown -------------------------------------------------------------------- */

/* Stops the threads and frees everything that was started. */
static void bk_srv_free(bk_server_t *srv)
{
    /* The admin endpoints read the journal and the storage: they go first,
     * before either closes. */
    bk_http_stop(srv);
    if (srv->sync_tid) {
        pthread_mutex_lock(&srv->sync_lock);
        srv->sync_stop = true;
        pthread_cond_signal(&srv->sync_cond);
        pthread_mutex_unlock(&srv->sync_lock);
        pthread_join(srv->sync_tid, NULL);
    }
    if (srv->admin) {
        mq_executor_free(srv->admin);
    }
    if (srv->journal && srv->loop) {
        /* The loop stops writing the journal before it closes. */
        mq_net_loop_run_sync(srv->loop, bk_request_inline_stop, srv);
    }
    if (srv->journal) {
        /* Writes and syncs what is queued; its completions wait in the done
         * list and are answered just below, before the sockets close. */
        bk_journal_close(srv->journal);
        srv->journal = NULL;
    }
    if (srv->loop) {
        mq_net_loop_run_sync(srv->loop, bk_request_drain, srv);
    }
    if (srv->readers) {
        mq_executor_free(srv->readers);
    }
    if (srv->net) {
        mq_net_server_free(srv->net);
    }
    if (srv->loop) {
        mq_net_loop_free(srv->loop);
    }
    if (srv->storage) {
        bk_storage_close(srv->storage);
    }
    bk_ledgers_free(srv->ledgers);
    if (srv->zk) {
        zk_client_free(srv->zk);
    }
    free(srv->conns);
    mq_conf_split_free(srv->journal_dirs);
    mq_conf_split_free(srv->ledger_dirs);
    pthread_mutex_destroy(&srv->done_lock);
    pthread_mutex_destroy(&srv->sync_lock);
    pthread_cond_destroy(&srv->sync_cond);
    pthread_mutex_destroy(&srv->stop_lock);
    pthread_cond_destroy(&srv->stop_cond);
    free(srv);
}

int bk_server_run(bk_server_t *srv)
{
    mq_signal_watch(bk_srv_on_signal, srv);
    pthread_mutex_lock(&srv->stop_lock);
    while (!srv->stop_requested) {
        pthread_cond_wait(&srv->stop_cond, &srv->stop_lock);
    }
    int code = srv->exit_code;
    pthread_mutex_unlock(&srv->stop_lock);

    MQ_LOG_INFO("stopping bookie id=%s", srv->bookie_id);
    atomic_store(&srv->stopping, true);
    mq_net_server_stop_accepting(srv->net);
    if (srv->registered_path[0]) {
        zk_ephemeral_unregister(srv->zk, srv->registered_path);
        srv->registered_path[0] = '\0';
    }
    /* Let what was accepted finish: every add already in the journal gets
     * its answer before the sockets close (the drain on the loop signals
     * stop_cond once nothing is pending; the first check is posted here in
     * case nothing was). */
    mq_net_loop_run_sync(srv->loop, bk_request_check_drained, srv);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&srv->stop_lock);
    while (code == 0 && !srv->drained &&
           pthread_cond_timedwait(&srv->stop_cond, &srv->stop_lock, &deadline) == 0) {
    }
    if (code == 0 && !srv->drained) {
        MQ_LOG_WARN("adds still pending after 30 s, stopping anyway");
    }
    pthread_mutex_unlock(&srv->stop_lock);
    pthread_mutex_lock(&srv->sync_lock);
    srv->sync_stop = true;
    pthread_cond_signal(&srv->sync_cond);
    pthread_mutex_unlock(&srv->sync_lock);
    bk_storage_pace_next(srv->storage, 0); /* a paced checkpoint hurries */
    pthread_join(srv->sync_tid, NULL);
    srv->sync_tid = 0;
    if (code == 0 && bk_srv_checkpoint(srv) != MQ_OK) {
        code = 1;
    }
    bk_srv_free(srv);
    MQ_LOG_INFO("bookie stopped exit=%d", code);
    return code;
}

mq_err_t bk_server_format(const bk_conf_t *conf, char *errbuf, size_t errlen)
{
    bk_server_t *srv;
    mq_err_t err = bk_srv_common_init(conf, &srv, errbuf, errlen);
    if (err != MQ_OK) {
        return err;
    }
    bk_cookie_ctx_t cc = bk_srv_cookie_ctx(srv);
    err = bk_cookie_format(&cc);
    if (err != MQ_OK) {
        snprintf(errbuf, errlen, "format failed: %s", mq_err_str(err));
    } else {
        MQ_LOG_INFO("formatted bookie id=%s: directories cleared, cookie removed", srv->bookie_id);
    }
    bk_srv_free(srv);
    return err;
}
