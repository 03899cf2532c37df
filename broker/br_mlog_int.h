/*
 * br_mlog_int: what the files of the managed log share, and what its tests
 * look at. Not for use outside broker/br_mlog*.c and tests.
 *
 *   br_mlog.c        appends: batching, pipelining, completions, stopping
 *   br_mlog_list.c   the list of ledgers and the life cycle: open (takeover),
 *                    rollover, close, free, trim
 *   br_mlog_read.c   owner reads (hot-tail cache, index of the current
 *                    ledger, searches over closed ledgers), detached reads
 *   br_mlog_meta.c   the queue record (text codec with a CRC32C) and its
 *                    znode (read, create, compare-and-set)
 *   br_mlog_entry.c  the binary format of one ledger entry (a batch)
 *
 * Threads. The log's state is split three ways:
 *   - @locks lock: the intake (messages not yet in an entry), whether
 *     appends are accepted, and the counters blocking callers wait on;
 *   - @locks meta_lock: the record as last written to ZooKeeper (rec, with
 *     its znode version); every writer of the znode (open, rollover job,
 *     close, trim) holds it across read-modify-compare-and-set, so two
 *     updates of one log never race each other into a BADVERSION;
 *   - @locks rlock: the entries kept from bookie reads (filled on the ledger
 *     client's loop thread, looked up on the executor; a leaf lock);
 *   - @locality executor (conf.executor, conf.key): everything else, i.e.
 *     the current ledger, entries in flight, offsets, the cache, the index,
 *     the read handles and `view`, the executor's copy of the record.
 * Lock order: meta_lock before lock; lock before the executor's own queue
 * lock (tasks are submitted with lock held so their order matches).
 */
#ifndef BR_MLOG_INT_H
#define BR_MLOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "br_mlog.h"
#include "mq_buf.h"

/* --- entry codec (br_mlog_entry.c) ----------------------------------------- */

#define BR_MLOG_ENTRY_MAGIC 0xB1
#define BR_MLOG_ENTRY_VERSION 1
/* magic u8, version u8, count u32, base offset i64, store time u64 */
#define BR_MLOG_ENTRY_HDR 22
/* Each message: u32 length, then its bytes. */
#define BR_MLOG_MSG_HDR 4

typedef struct br_mlog_entry_hdr {
    uint32_t count;   /* >= 1 */
    int64_t base;     /* offset of the first message, >= 0 */
    uint64_t time_ms; /* when the entry was cut (wall clock) */
} br_mlog_entry_hdr_t;

/* Writes the header at p (BR_MLOG_ENTRY_HDR bytes). Pure. */
void br_mlog_entry_put_hdr(uint8_t *p, uint32_t count, int64_t base, uint64_t time_ms);
/* Bytes an entry of n messages of these lengths takes. Pure. */
size_t br_mlog_entry_size(const size_t *lens, size_t n);
/* Encodes a whole entry into out (br_mlog_entry_size bytes). Pure. */
void br_mlog_entry_encode(uint8_t *out, int64_t base, uint64_t time_ms, const void *const *datas,
                          const size_t *lens, size_t n);
/* Validates a whole entry (header, every length, no trailing byte):
 * MQ_ECORRUPT for anything else. *hdr (may be NULL) gets its header. With
 * msgs, the messages at offsets >= from are copied out (pointers into p),
 * at most max of them; *n (may be NULL) gets how many. Pure. */
mq_err_t br_mlog_entry_decode(const uint8_t *p, size_t len, br_mlog_entry_hdr_t *hdr, int64_t from,
                              br_mlog_msg_t *msgs, size_t max, size_t *n);

/* --- queue record codec and znode (br_mlog_meta.c) ------------------------- */

/* Bounds a record may hold (a znode holds at most 1 MB anyway). */
#define BR_MLOG_MAX_LEDGERS 100000
#define BR_MLOG_MAX_LEDGER_ID 9999999999999999999ull
#define BR_MLOG_PATH_MAX 1024
#define BR_MLOG_TOPIC_MAX 255

/* The record's rules, shared by encoder (MQ_EINVAL) and decoder
 * (MQ_ECORRUPT), with a reason in why. Pure. */
mq_err_t br_mlog_record_check(const br_mlog_info_t *rec, char *why, size_t why_len);
/* Encodes rec (*out malloc'ed, NUL-terminated; *len excludes the NUL).
 * MQ_EINVAL when the record breaks a rule. Pure. */
mq_err_t br_mlog_record_encode(const br_mlog_info_t *rec, char **out, size_t *len);
/* Decodes and validates; MQ_ECORRUPT with a reason for anything else,
 * MQ_ENOMEM when the checked allocation fails. out->version is -1 and
 * out->max_offset computed. On failure out holds nothing. Pure. */
mq_err_t br_mlog_record_decode(const char *data, size_t len, br_mlog_info_t *out, char *why,
                               size_t why_len);
/* Deep copy (dst must hold nothing). */
void br_mlog_info_copy(br_mlog_info_t *dst, const br_mlog_info_t *src);
/* The next offset the record knows: min_offset for an empty list, -1 when
 * the last ledger is open. Pure. */
int64_t br_mlog_record_end(const br_mlog_info_t *rec);
/* <root>/topics/<topic>/queues/<queue>; MQ_EINVAL for a topic that is empty,
 * too long, "." or "..", or holds '/' or a control character. */
mq_err_t br_mlog_path(const char *root, const char *topic, int queue, char *out, size_t cap);
/* Reads and decodes the record at path (out->version set). With create, an
 * absent record is created empty (min offset 0), parents too. */
mq_err_t br_mlog_meta_load(zk_client_t *zk, const char *path, bool create, br_mlog_info_t *out);
/* Compare-and-sets rec at rec->version; on success rec->version is the new
 * one. A lost connection is resolved by reading back (our bytes at version
 * + 1 mean it was written). MQ_EBADVERSION when someone else wrote. */
mq_err_t br_mlog_meta_cas(zk_client_t *zk, const char *path, br_mlog_info_t *rec);

/* --- the log (br_mlog.c, br_mlog_read.c) ----------------------------------- */

/* At most this many entries in flight per log (pipelining); more messages
 * wait in the intake and make bigger entries. */
#define BR_MLOG_MAX_INFLIGHT 16
/* Read handles on closed ledgers kept open (LRU). */
#define BR_MLOG_READ_HANDLES 4
/* Known (entry, base) points kept per read handle. */
#define BR_MLOG_POINTS 64

typedef struct br_mlog_cbslot {
    br_mlog_append_cb cb;
    void *arg;
} br_mlog_cbslot_t;

/* A batch of messages that becomes one entry. Built under lock in the
 * intake; owned by the executor from the moment it is taken from there. */
typedef struct br_mlog_batch {
    struct br_mlog_batch *next;
    struct br_mlog *ml;
    mq_buf_t *buf; /* header + messages; buf->len in use */
    uint32_t count;
    br_mlog_cbslot_t *cbs;
    size_t cbs_cap;
    uint64_t seq;      /* intake order, for the linger timer */
    uint64_t first_ns; /* when its first message arrived */
    bool lingers;      /* wait linger_ns for more (else: go at once) */
    bool sealed;       /* full (or taken): no more messages go in */
    /* Set when sent (executor) and when answered (loop, then executor). */
    int64_t base;
    uint64_t ledger;
    int64_t entry_id;
    mq_err_t err;
    atomic_bool answered; /* set on the loop thread, read on the executor */
} br_mlog_batch_t;

/* A recent acknowledged entry in the hot-tail cache. */
typedef struct br_mlog_centry {
    uint64_t ledger;
    int64_t entry_id;
    int64_t base;
    uint32_t count;
    mq_buf_t *buf; /* the entry as written */
} br_mlog_centry_t;

/* A ring of entries in offset order (contiguous offsets: entries are
 * acknowledged in offset order and evicted from the oldest). */
typedef struct br_mlog_cache {
    br_mlog_centry_t *ring;
    size_t cap;
    size_t head;
    size_t len;
    size_t bytes;             /* charged: buffer capacities */
    br_mlog_budget_t *budget; /* shared, or NULL (conf.cache_bytes alone) */
} br_mlog_cache_t;

/* Entries read back from the bookies, kept per log (least recently used
 * goes first). Entries never change once acknowledged, so a kept one stays
 * right until the log trims its offsets. */
#define BR_MLOG_RCACHE_SLOTS 4
typedef struct br_mlog_rentry {
    int64_t base;
    uint32_t count;
    uint64_t used;
    mq_buf_t *buf; /* the entry's bytes; NULL: free slot */
} br_mlog_rentry_t;

/* What a read learned about one entry of a closed ledger. */
typedef struct br_mlog_point {
    int64_t entry;
    int64_t base;
    uint32_t count;
} br_mlog_point_t;

struct br_mlog_rop;

/* A read handle on a closed ledger (opened lazily by a job, or adopted: the
 * previous writer after a rollover, the recovered ledger after open). */
typedef struct br_mlog_rh {
    uint64_t ledger;
    lc_ledger_t *lh; /* NULL while opening, or once released at free */
    bool opening;
    int users; /* reads using it or waiting for it */
    uint64_t used;
    br_mlog_point_t pts[BR_MLOG_POINTS]; /* ascending by entry */
    size_t npts;
    struct br_mlog_rop *waiters;
} br_mlog_rh_t;

/* Binary (and interpolation) search for the entry that holds an offset,
 * over entries [lo, hi] known to hold offsets [olo, ohi). ohi is INT64_MAX
 * when the ledger's end is not known (open ledger): bisection only. */
typedef struct br_mlog_search {
    int64_t lo;
    int64_t hi;
    int64_t olo;
    int64_t ohi;
    int step;
    int64_t last_span; /* entries in [lo, hi] at the previous probe */
} br_mlog_search_t;

void br_mlog_search_init(br_mlog_search_t *s, int64_t entries, int64_t first, int64_t end);
/* Narrows with a known entry: 1 when it holds offset, 0 when it narrowed,
 * -1 when it contradicts what is known (corrupt ledger). */
int br_mlog_search_apply(br_mlog_search_t *s, int64_t offset, int64_t entry, int64_t base,
                         uint32_t count);
/* The next entry to read, or -1 when the range is empty. */
int64_t br_mlog_search_probe(br_mlog_search_t *s, int64_t offset);

/* Most entries one read gathers: a reader asking for more messages than the
 * entry holding its offset has gets the following entries too, taken from
 * the caches or read from the bookies in parallel. */
#define BR_MLOG_READ_SPAN 8

struct br_mlog_rop;
/* The callback argument of one part's bookie read. */
typedef struct br_mlog_rpart {
    struct br_mlog_rop *rop;
    int i;
} br_mlog_rpart_t;

/* One br_mlog_read in progress. */
typedef struct br_mlog_rop {
    struct br_mlog_rop *next; /* in rh->waiters */
    struct br_mlog *ml;
    int64_t offset;
    size_t max;
    br_mlog_read_cb cb;
    void *arg;
    br_mlog_rh_t *rh; /* closed-ledger search */
    br_mlog_search_t search;
    int64_t probe;
    /* Answer of the read in flight (loop thread, then executor). */
    mq_err_t err;
    mq_slice_t payload;
    int64_t lentries; /* entries of the closed ledger searched */
    /* The entries gathered for the answer: parts[0] holds offset, each next
     * one follows the one before (set by the loop thread's read answers,
     * read once pending drops to 0). */
    mq_slice_t parts[BR_MLOG_READ_SPAN];
    br_mlog_rpart_t pargs[BR_MLOG_READ_SPAN];
    int nparts;
    atomic_int pending;
} br_mlog_rop_t;

typedef enum br_mlog_state {
    BR_MLOG_S_OPEN,      /* entries go to cur */
    BR_MLOG_S_ROLL_WAIT, /* cur is full: waiting for its adds before rolling */
    BR_MLOG_S_ROLLING,   /* a job closes cur, creates the next, CASes the list */
    BR_MLOG_S_DRAINED,   /* close: all sent and acknowledged; the closer has cur */
    BR_MLOG_S_STOPPED,   /* fenced or broken: nothing more is written */
} br_mlog_state_t;

struct br_mlog {
    /* Immutable after open. */
    br_mlog_conf_t conf; /* topic and root point at the copies below */
    char *topic;
    char *root;
    char path[BR_MLOG_PATH_MAX];
    uint64_t linger_ns;
    uint64_t retention_ms;

    /* @locks lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    br_mlog_batch_t *intake_head;
    br_mlog_batch_t *intake_tail;
    uint64_t batch_seq;
    atomic_uint_least64_t own_recent; /* conf.recent when that is NULL */
    mq_err_t refuse;                  /* MQ_OK while appends are accepted */
    bool pump_posted;
    bool freeing;
    bool close_called;
    mq_err_t close_err;
    bool drained;          /* the executor reached BR_MLOG_S_DRAINED */
    bool stopped;          /* the executor reached BR_MLOG_S_STOPPED */
    mq_err_t stopped_err;  /* with stopped */
    lc_ledger_t *drain_lh; /* with drained: cur and its counts */
    int64_t drain_entries;
    int64_t drain_msgs;
    int ops;  /* lc adds and reads in flight, reads not yet answered */
    int jobs; /* helper threads running */

    /* Any thread. */
    atomic_int_fast64_t min_pub;
    atomic_int_fast64_t end_pub;
    atomic_bool stopped_pub;
    atomic_bool fence_told;
    atomic_uint_fast64_t reads; /* entry reads sent to bookies */

    /* @locks rlock (the loop thread keeps what it read; readers look) */
    pthread_mutex_t rlock;
    br_mlog_rentry_t rcache[BR_MLOG_RCACHE_SLOTS];
    uint64_t rcache_tick;
    bool rcache_counted; /* counted in read_budget->logs */

    /* @locks meta_lock */
    pthread_mutex_t meta_lock;
    br_mlog_info_t rec;

    /* @locality executor */
    br_mlog_state_t state;
    mq_err_t stop_err;
    bool shutting; /* br_mlog_free started: start nothing new */
    bool closing;  /* br_mlog_close asked: flush without lingering */
    lc_ledger_t *cur;
    uint64_t cur_id;
    int64_t cur_first;
    uint64_t cur_entries_sent;
    uint64_t cur_bytes_sent;
    int64_t cur_entries_acked;
    int64_t cur_msgs_acked;
    bool age_due; /* rollover_secs passed since cur was created */
    int64_t next_offset;
    int64_t acked_end;
    br_mlog_batch_t *fl_head; /* in flight, in entry order */
    br_mlog_batch_t *fl_tail;
    int ninflight;
    int64_t *index; /* base offset of each acknowledged entry of cur */
    size_t nindex;
    size_t index_cap;
    br_mlog_cache_t cache;
    br_mlog_info_t view;
    br_mlog_rh_t **rhs;
    size_t nrhs;
    size_t rhs_cap;
    uint64_t tick;
    mq_timer_t *linger_timer;
    uint64_t linger_seq; /* the batch linger_timer is for */
    uint64_t linger_due; /* seq of a batch whose linger ended (0: none) */
    mq_timer_t *roll_timer;
};

/* br_mlog.c */
/* Runs fn(arg) on a new detached helper thread (blocking work: ZooKeeper,
 * ledger create/open/close); counted in ml->jobs. Any thread. */
void br_mlog_job_start(br_mlog_t *ml, void (*fn)(void *), void *arg);
/* Runs fn(ml) on the executor (NULL: a barrier behind every task queued
 * before) and waits for it. Never from the executor's thread. */
void br_mlog_exec_sync(br_mlog_t *ml, void (*fn)(br_mlog_t *));
/* One more task or callback that will touch ml (lock); br_mlog_op_done
 * drops it and wakes br_mlog_free, and must be its last touch of ml. Any
 * thread. */
void br_mlog_op_add(br_mlog_t *ml);
void br_mlog_op_done(br_mlog_t *ml);
/* Sends what is ready while the window allows. @locality executor */
void br_mlog_pump(br_mlog_t *ml);
/* Stops the log for good (fenced, broken, or freed: MQ_ECLOSED); tells
 * on_fenced unless freeing. @locality executor */
void br_mlog_stop(br_mlog_t *ml, mq_err_t err);
void br_mlog_timers_cancel(br_mlog_t *ml);

/* br_mlog_list.c */
/* The current ledger is full and idle: roll it on a helper thread.
 * @locality executor */
void br_mlog_roll_start(br_mlog_t *ml);

/* br_mlog_read.c, @locality executor */
void br_mlog_cache_put(br_mlog_t *ml, const br_mlog_batch_t *b);
void br_mlog_cache_trim(br_mlog_t *ml, int64_t below);
void br_mlog_cache_fini(br_mlog_cache_t *cache);
/* Drops the kept read entries wholly below offset (all: INT64_MAX). */
void br_mlog_rcache_trim(br_mlog_t *ml, int64_t below);
/* Adopts an open handle on the closed ledger id as a read handle. */
void br_mlog_rh_adopt(br_mlog_t *ml, uint64_t id, lc_ledger_t *lh);
/* Drops read handles on ledgers the view no longer lists (trimmed). */
void br_mlog_rh_prune(br_mlog_t *ml);
/* br_mlog_free: lc_ledger_free every read handle (structs stay), then free
 * the structs once nothing uses them. */
void br_mlog_rh_release_all(br_mlog_t *ml);
void br_mlog_rh_free_all(br_mlog_t *ml);

/* --- test support ----------------------------------------------------------- */

/* Entry reads this log sent to bookies so far (owner reads). Any thread. */
uint64_t br_mlog_test_reads(br_mlog_t *ml);

#endif
