/*
 * br_mlog_read: reading a managed log back, as its owner (br_mlog_read,
 * asynchronous) or from outside (br_mlog_read_detached, blocking).
 *
 * Owner reads start on the log's executor. An offset is looked up, in
 * order: in the hot-tail cache (recent acknowledged entries, contiguous in
 * offsets, bounded by cache_bytes; no bookie read at all); in the current
 * ledger through its index (entry -> base offset of every acknowledged
 * entry, kept even when payloads are evicted: one bookie read); in a closed
 * ledger (found by binary search on first_offset in the list) by searching
 * its entries, reading entry headers from bookies. That search
 * interpolates (offsets per entry are roughly even) while each probe at
 * least halves the range and bisects otherwise (so it stays O(log n) when
 * they are not) and starts from what earlier reads of
 * the same ledger learned, so a reader walking forward costs one read per
 * entry. Closed ledgers are read through a few handles kept open (LRU),
 * opened lazily by a helper thread since opening reads ZooKeeper.
 *
 * A read asking for more messages than the entry holding its offset has
 * gathers the entries after it too (up to BR_MLOG_READ_SPAN: in the current
 * ledger the index names them; in a closed one they follow the entry the
 * search found), from the caches or read from the bookies in parallel, so a
 * consumer's batch costs one round trip, not one per entry. Entries read
 * from bookies are kept a while (a few per log, within a budget shared by
 * the broker's logs, conf.read_budget): consumers take an entry a few
 * messages at a time, and the next pop then finds it in memory.
 *
 * Callbacks run on the executor (cache hits, closed-ledger searches) or on
 * the ledger client's loop thread (current-ledger reads); the messages they
 * get are borrowed for the call. Every read holds one op of the log until
 * its callback returned (br_mlog_free waits for them).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "br_mlog_int.h"
#include "mq_log.h"
#include "mq_util.h"

/* --- the hot-tail cache (@locality executor) ------------------------------------ */

static br_mlog_centry_t *br_mlog_cache_at(br_mlog_cache_t *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

static void br_mlog_cache_pop(br_mlog_cache_t *c)
{
    br_mlog_centry_t *e = br_mlog_cache_at(c, 0);
    c->bytes -= e->buf->cap;
    if (c->budget) {
        atomic_fetch_sub(&c->budget->used, e->buf->cap);
    }
    mq_buf_unref(e->buf);
    c->head = (c->head + 1) % c->cap;
    c->len--;
}

void br_mlog_cache_put(br_mlog_t *ml, const br_mlog_batch_t *b)
{
    br_mlog_cache_t *c = &ml->cache;
    br_mlog_budget_t *bg = c->budget;
    size_t limit = ml->conf.cache_bytes;
    if (bg) {
        size_t logs = atomic_load(&bg->logs);
        limit = MQ_MAX(bg->limit / (logs ? logs : 1), bg->floor);
    }
    if (b->buf->len > limit) {
        /* Bigger than the whole cache: it only keeps contiguous entries. */
        while (c->len > 0) {
            br_mlog_cache_pop(c);
        }
        return;
    }
    /* A batch buffer grows by doubling; at low rates it is mostly empty.
     * Keep a tight copy then, so the cache holds entries, not slack. */
    mq_buf_t *buf = b->buf->cap - b->buf->len > b->buf->len / 4 + 256
                        ? mq_buf_copy(b->buf->data, b->buf->len)
                        : mq_buf_ref(b->buf);
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        br_mlog_centry_t *ring = mq_malloc(cap * sizeof(*ring));
        for (size_t i = 0; i < c->len; i++) {
            ring[i] = *br_mlog_cache_at(c, i);
        }
        free(c->ring);
        c->ring = ring;
        c->cap = cap;
        c->head = 0;
    }
    br_mlog_centry_t *e = br_mlog_cache_at(c, c->len);
    e->ledger = b->ledger;
    e->entry_id = b->entry_id;
    e->base = b->base;
    e->count = b->count;
    e->buf = buf;
    c->len++;
    c->bytes += buf->cap;
    if (bg) {
        atomic_fetch_add(&bg->used, buf->cap);
    }
    while (c->len > 0 &&
           (c->bytes > limit || (bg && c->len > 1 && atomic_load(&bg->used) > bg->limit))) {
        br_mlog_cache_pop(c);
    }
}

void br_mlog_cache_trim(br_mlog_t *ml, int64_t below)
{
    br_mlog_cache_t *c = &ml->cache;
    while (c->len > 0) {
        br_mlog_centry_t *e = br_mlog_cache_at(c, 0);
        if (e->base + (int64_t)e->count > below) {
            break;
        }
        br_mlog_cache_pop(c);
    }
}

void br_mlog_cache_fini(br_mlog_cache_t *c)
{
    while (c->len > 0) {
        br_mlog_cache_pop(c);
    }
    if (c->budget) {
        atomic_fetch_sub(&c->budget->logs, 1);
    }
    free(c->ring);
    memset(c, 0, sizeof(*c));
}

/* The cached entry holding offset (at its ring position *at, if at is not
 * NULL), or NULL. */
static const br_mlog_centry_t *br_mlog_cache_find(br_mlog_cache_t *c, int64_t offset, size_t *at)
{
    if (c->len == 0 || offset < br_mlog_cache_at(c, 0)->base) {
        return NULL;
    }
    /* The last entry whose base is <= offset. */
    size_t lo = 0;
    size_t hi = c->len;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (br_mlog_cache_at(c, mid)->base <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const br_mlog_centry_t *e = br_mlog_cache_at(c, lo);
    if (at) {
        *at = lo;
    }
    return offset < e->base + (int64_t)e->count ? e : NULL;
}

/* --- entries read back from bookies (@locks rlock; any thread) ------------------------ */

/* @locks rlock */
static void br_mlog_rcache_drop(br_mlog_t *ml, br_mlog_rentry_t *e)
{
    br_mlog_budget_t *bg = ml->conf.read_budget;
    if (bg) {
        atomic_fetch_sub(&bg->used, e->buf->cap);
    }
    mq_buf_unref(e->buf);
    e->buf = NULL;
}

void br_mlog_rcache_trim(br_mlog_t *ml, int64_t below)
{
    pthread_mutex_lock(&ml->rlock);
    for (size_t i = 0; i < BR_MLOG_RCACHE_SLOTS; i++) {
        br_mlog_rentry_t *e = &ml->rcache[i];
        if (e->buf && (below == INT64_MAX || e->base + (int64_t)e->count <= below)) {
            br_mlog_rcache_drop(ml, e);
        }
    }
    pthread_mutex_unlock(&ml->rlock);
}

/* @locks rlock */
static br_mlog_rentry_t *br_mlog_rcache_find(br_mlog_t *ml, int64_t offset)
{
    for (size_t i = 0; i < BR_MLOG_RCACHE_SLOTS; i++) {
        br_mlog_rentry_t *e = &ml->rcache[i];
        if (e->buf && offset >= e->base && offset - e->base < (int64_t)e->count) {
            e->used = ++ml->rcache_tick;
            return e;
        }
    }
    return NULL;
}

/* The kept entry holding offset (with exact: starting there) as a new
 * slice; an empty one when none is kept. */
static mq_slice_t br_mlog_rcache_get(br_mlog_t *ml, int64_t offset, bool exact)
{
    mq_slice_t s = {NULL, NULL, 0};
    pthread_mutex_lock(&ml->rlock);
    br_mlog_rentry_t *e = br_mlog_rcache_find(ml, offset);
    if (e && (!exact || e->base == offset)) {
        s = mq_slice_of(e->buf, 0, e->buf->len);
    }
    pthread_mutex_unlock(&ml->rlock);
    return s;
}

/* Keeps a copy of entry p (already decoded: h) if the log's share of the
 * budget has room, evicting its own least recently used entries for it.
 * The budget is a hard bound: an entry that does not fit is not kept. */
static void br_mlog_rcache_put(br_mlog_t *ml, const br_mlog_entry_hdr_t *h, const uint8_t *p,
                               size_t len)
{
    br_mlog_budget_t *bg = ml->conf.read_budget;
    if (!bg) {
        return;
    }
    pthread_mutex_lock(&ml->rlock);
    if (br_mlog_rcache_find(ml, h->base)) {
        pthread_mutex_unlock(&ml->rlock);
        return;
    }
    if (!ml->rcache_counted) {
        /* The budget is shared by the logs that read back, not by every
         * log the broker owns (most are only written). */
        ml->rcache_counted = true;
        atomic_fetch_add(&bg->logs, 1);
    }
    size_t logs = atomic_load(&bg->logs);
    size_t share = bg->limit / (logs ? logs : 1);
    size_t own = 0;
    for (size_t i = 0; i < BR_MLOG_RCACHE_SLOTS; i++) {
        own += ml->rcache[i].buf ? ml->rcache[i].buf->cap : 0;
    }
    br_mlog_rentry_t *slot = NULL;
    for (;;) {
        br_mlog_rentry_t *victim = NULL;
        slot = NULL;
        for (size_t i = 0; i < BR_MLOG_RCACHE_SLOTS; i++) {
            br_mlog_rentry_t *e = &ml->rcache[i];
            if (!e->buf) {
                slot = e;
            } else if (!victim || e->used < victim->used) {
                victim = e;
            }
        }
        bool room = own + len <= share && atomic_load(&bg->used) + len <= bg->limit;
        if (room && slot) {
            break;
        }
        if (!victim) {
            slot = NULL; /* even an empty share is too small */
            break;
        }
        own -= victim->buf->cap;
        br_mlog_rcache_drop(ml, victim);
    }
    if (slot) {
        slot->buf = mq_buf_copy(p, len);
        slot->base = h->base;
        slot->count = h->count;
        slot->used = ++ml->rcache_tick;
        atomic_fetch_add(&bg->used, slot->buf->cap);
    }
    pthread_mutex_unlock(&ml->rlock);
}

/* Keeps a bookie's answer (any thread). */
static void br_mlog_rcache_keep(br_mlog_t *ml, const mq_slice_t *payload)
{
    br_mlog_entry_hdr_t h;
    if (ml->conf.read_budget &&
        br_mlog_entry_decode(payload->ptr, payload->len, &h, 0, NULL, 0, NULL) == MQ_OK) {
        br_mlog_rcache_put(ml, &h, payload->ptr, payload->len);
    }
}

/* --- searching a ledger's entries --------------------------------------------------- */

void br_mlog_search_init(br_mlog_search_t *s, int64_t entries, int64_t first, int64_t end)
{
    s->lo = 0;
    s->hi = entries - 1;
    s->olo = first;
    s->ohi = end;
    s->step = 0;
    s->last_span = 0;
}

int br_mlog_search_apply(br_mlog_search_t *s, int64_t offset, int64_t entry, int64_t base,
                         uint32_t count)
{
    /* Entry ids and offsets grow together, each entry holding at least one
     * message: what an entry in [lo, hi] says must fit [olo, ohi). */
    if (entry < s->lo || entry > s->hi || count == 0 || base < s->olo || base >= s->ohi ||
        (int64_t)count > s->ohi - base) {
        return -1;
    }
    if (offset < base) {
        s->hi = entry - 1;
        s->ohi = base;
        return 0;
    }
    if (offset >= base + (int64_t)count) {
        s->lo = entry + 1;
        s->olo = base + (int64_t)count;
        return 0;
    }
    s->lo = s->hi = entry;
    s->olo = base;
    s->ohi = base + (int64_t)count;
    return 1;
}

int64_t br_mlog_search_probe(br_mlog_search_t *s, int64_t offset)
{
    if (s->lo > s->hi || offset < s->olo || offset >= s->ohi) {
        return -1;
    }
    /* Interpolation (offsets per entry are roughly even) while each probe
     * at least halves the range, else bisection: at most two probes per
     * halving, so O(log n) whatever the entry sizes, and two or three
     * probes when they are even. */
    int64_t span = s->hi - s->lo + 1;
    bool interpolate = s->ohi != INT64_MAX && (s->step == 0 || span * 2 <= s->last_span);
    s->step++;
    s->last_span = span;
    int64_t mid;
    if (interpolate) {
        double frac = (double)(offset - s->olo) / (double)(s->ohi - s->olo);
        mid = s->lo + (int64_t)(frac * (double)(s->hi - s->lo + 1));
    } else {
        mid = s->lo + (s->hi - s->lo) / 2;
    }
    return MQ_MAX(s->lo, MQ_MIN(s->hi, mid));
}

/* --- read handles on closed ledgers (@locality executor) ---------------------------- */

static void br_mlog_rh_drop(br_mlog_t *ml, size_t i)
{
    br_mlog_rh_t *rh = ml->rhs[i];
    MQ_ASSERT(rh->users == 0 && !rh->opening);
    if (rh->lh) {
        lc_ledger_free(rh->lh);
    }
    free(rh);
    ml->rhs[i] = ml->rhs[--ml->nrhs];
}

/* Keeps at most BR_MLOG_READ_HANDLES, closing the least recently used idle
 * ones (busy ones stay: the limit is soft). */
static void br_mlog_rh_evict(br_mlog_t *ml)
{
    while (ml->nrhs > BR_MLOG_READ_HANDLES) {
        size_t victim = ml->nrhs;
        for (size_t i = 0; i < ml->nrhs; i++) {
            br_mlog_rh_t *rh = ml->rhs[i];
            if (rh->users == 0 && !rh->opening &&
                (victim == ml->nrhs || rh->used < ml->rhs[victim]->used)) {
                victim = i;
            }
        }
        if (victim == ml->nrhs) {
            return;
        }
        br_mlog_rh_drop(ml, victim);
    }
}

static br_mlog_rh_t *br_mlog_rh_add(br_mlog_t *ml, uint64_t id)
{
    br_mlog_rh_t *rh = mq_calloc(1, sizeof(*rh));
    rh->ledger = id;
    rh->used = ++ml->tick;
    if (ml->nrhs == ml->rhs_cap) {
        ml->rhs_cap = ml->rhs_cap ? ml->rhs_cap * 2 : 8;
        ml->rhs = mq_realloc(ml->rhs, ml->rhs_cap * sizeof(*ml->rhs));
    }
    ml->rhs[ml->nrhs++] = rh;
    return rh;
}

static br_mlog_rh_t *br_mlog_rh_find(br_mlog_t *ml, uint64_t id)
{
    for (size_t i = 0; i < ml->nrhs; i++) {
        if (ml->rhs[i]->ledger == id) {
            return ml->rhs[i];
        }
    }
    return NULL;
}

void br_mlog_rh_adopt(br_mlog_t *ml, uint64_t id, lc_ledger_t *lh)
{
    br_mlog_rh_t *rh = br_mlog_rh_find(ml, id);
    if (rh) {
        /* Already open (or opening) for reading: one handle is enough. */
        lc_ledger_free(lh);
        return;
    }
    rh = br_mlog_rh_add(ml, id);
    rh->lh = lh;
    br_mlog_rh_evict(ml);
}

void br_mlog_rh_prune(br_mlog_t *ml)
{
    for (size_t i = 0; i < ml->nrhs;) {
        br_mlog_rh_t *rh = ml->rhs[i];
        bool listed = false;
        for (size_t k = 0; k < ml->view.nledgers && !listed; k++) {
            listed = ml->view.ledgers[k].ledger == rh->ledger;
        }
        if (!listed && rh->users == 0 && !rh->opening) {
            br_mlog_rh_drop(ml, i);
        } else {
            i++;
        }
    }
}

void br_mlog_rh_release_all(br_mlog_t *ml)
{
    for (size_t i = 0; i < ml->nrhs; i++) {
        if (ml->rhs[i]->lh) {
            lc_ledger_free(ml->rhs[i]->lh);
            ml->rhs[i]->lh = NULL;
        }
    }
}

void br_mlog_rh_free_all(br_mlog_t *ml)
{
    br_mlog_rh_release_all(ml);
    for (size_t i = 0; i < ml->nrhs; i++) {
        free(ml->rhs[i]);
    }
    free(ml->rhs);
    ml->rhs = NULL;
    ml->nrhs = ml->rhs_cap = 0;
}

/* Remembers what a read learned about one entry (points stay sorted; when
 * full, every other one goes, which keeps them spread over the ledger). */
static void br_mlog_rh_note(br_mlog_rh_t *rh, int64_t entry, int64_t base, uint32_t count)
{
    size_t at = 0;
    while (at < rh->npts && rh->pts[at].entry < entry) {
        at++;
    }
    if (at < rh->npts && rh->pts[at].entry == entry) {
        return;
    }
    if (rh->npts == BR_MLOG_POINTS) {
        size_t k = 0;
        for (size_t i = 0; i < rh->npts; i += 2) {
            rh->pts[k++] = rh->pts[i];
        }
        rh->npts = k;
        at = 0;
        while (at < rh->npts && rh->pts[at].entry < entry) {
            at++;
        }
    }
    memmove(&rh->pts[at + 1], &rh->pts[at], (rh->npts - at) * sizeof(rh->pts[0]));
    rh->pts[at].entry = entry;
    rh->pts[at].base = base;
    rh->pts[at].count = count;
    rh->npts++;
}

/* --- owner reads ---------------------------------------------------------------------- */

/* Runs the callback, frees the read, drops its op (its last touch of the
 * log). Any thread. */
static void br_mlog_rop_finish(br_mlog_rop_t *rop, mq_err_t err, const br_mlog_msg_t *msgs,
                               size_t n)
{
    br_mlog_t *ml = rop->ml;
    rop->cb(err, msgs, n, rop->arg);
    mq_slice_release(&rop->payload);
    for (int i = 0; i < rop->nparts; i++) {
        mq_slice_release(&rop->parts[i]);
    }
    free(rop);
    br_mlog_op_done(ml);
}

/* Answers the read from the gathered parts: the messages from offset on,
 * entry after entry while each part is there and follows the one before
 * (a missing one makes a short answer; the reader asks again). Any
 * thread. */
static void br_mlog_rop_deliver_parts(br_mlog_rop_t *rop)
{
    br_mlog_t *ml = rop->ml;
    if (!rop->parts[0].ptr) {
        br_mlog_rop_finish(rop, rop->err != MQ_OK ? rop->err : MQ_EIO, NULL, 0);
        return;
    }
    br_mlog_msg_t *msgs = mq_malloc(rop->max * sizeof(*msgs));
    size_t n = 0;
    int64_t next = rop->offset;
    mq_err_t err = MQ_OK;
    for (int i = 0; i < rop->nparts && n < rop->max && rop->parts[i].ptr; i++) {
        const mq_slice_t *part = &rop->parts[i];
        br_mlog_entry_hdr_t h;
        mq_err_t e = br_mlog_entry_decode(part->ptr, part->len, &h, 0, NULL, 0, NULL);
        if (e == MQ_OK &&
            (i == 0 ? next < h.base || next - h.base >= (int64_t)h.count : h.base != next)) {
            e = MQ_ECORRUPT;
        }
        if (e != MQ_OK) {
            MQ_LOG_WARN("managed log entry does not decode topic=%s queue=%d offset=%lld err=%s",
                        ml->topic, ml->conf.queue, (long long)next, mq_err_name(e));
            err = i == 0 ? e : MQ_OK;
            break;
        }
        size_t got = 0;
        br_mlog_entry_decode(part->ptr, part->len, NULL, next, msgs + n, rop->max - n, &got);
        n += got;
        next = h.base + (int64_t)h.count;
    }
    br_mlog_rop_finish(rop, err, err == MQ_OK ? msgs : NULL, err == MQ_OK ? n : 0);
    free(msgs);
}

/* Answers the read from one entry (which must hold rop->offset). */
static void br_mlog_rop_deliver(br_mlog_rop_t *rop, const mq_slice_t *entry)
{
    rop->parts[0] = mq_slice_dup(entry);
    rop->nparts = 1;
    br_mlog_rop_deliver_parts(rop);
}

static void br_mlog_gather_task(void *arg);

/* One part is in (or will never be): the last one answers. Any thread. */
static void br_mlog_part_done(br_mlog_rop_t *rop)
{
    if (atomic_fetch_sub(&rop->pending, 1) != 1) {
        return;
    }
    if (rop->rh) {
        /* A closed ledger's read handle is the executor's to let go. */
        mq_executor_submit(rop->ml->conf.executor, rop->ml->conf.key, br_mlog_gather_task, rop);
        return;
    }
    br_mlog_rop_deliver_parts(rop);
}

/* Loop thread: one part's entry arrived. */
static void br_mlog_part_answer(mq_err_t err, int64_t entry_id, const mq_slice_t *payload,
                                void *arg)
{
    MQ_UNUSED(entry_id);
    br_mlog_rpart_t *pa = arg;
    br_mlog_rop_t *rop = pa->rop;
    br_mlog_t *ml = rop->ml;
    if (err == MQ_OK) {
        rop->parts[pa->i] = mq_slice_dup(payload);
        /* Kept before the reader can ask again: it asks once answered. */
        br_mlog_rcache_keep(ml, payload);
    } else if (pa->i == 0) {
        rop->err = err;
    }
    br_mlog_part_done(rop);
}

/* The entry holding offset (by base), from the hot-tail cache or the kept
 * reads, as a new slice; an empty one when neither has it. */
static mq_slice_t br_mlog_cached_entry(br_mlog_t *ml, int64_t base)
{
    const br_mlog_centry_t *ce = br_mlog_cache_find(&ml->cache, base, NULL);
    if (ce && ce->base == base) {
        return mq_slice_of(ce->buf, 0, ce->buf->len);
    }
    return br_mlog_rcache_get(ml, base, true);
}

/* Gathers entries first .. first + n - 1 of lh into parts (those already
 * there stay; with bases, the entries' base offsets, the caches are asked
 * first), then answers. @locality executor */
static void br_mlog_gather(br_mlog_rop_t *rop, lc_ledger_t *lh, int64_t first, int n,
                           const int64_t *bases)
{
    br_mlog_t *ml = rop->ml;
    rop->nparts = n;
    atomic_init(&rop->pending, 1);
    for (int i = 0; i < n; i++) {
        if (rop->parts[i].ptr) {
            continue;
        }
        if (bases) {
            rop->parts[i] = br_mlog_cached_entry(ml, bases[i]);
            if (rop->parts[i].ptr) {
                continue;
            }
        }
        rop->pargs[i].rop = rop;
        rop->pargs[i].i = i;
        atomic_fetch_add(&rop->pending, 1);
        atomic_fetch_add(&ml->reads, 1);
        mq_err_t err = lc_ledger_read_async(lh, first + i, br_mlog_part_answer, &rop->pargs[i]);
        if (err != MQ_OK) {
            atomic_fetch_sub(&rop->pending, 1);
            if (i == 0) {
                rop->err = err;
            }
            break; /* what follows a missing part is not used */
        }
    }
    br_mlog_part_done(rop);
}

/* A closed-ledger read ends (it no longer uses its handle). */
static void br_mlog_rop_end(br_mlog_rop_t *rop, mq_err_t err)
{
    rop->rh->users--;
    br_mlog_rop_finish(rop, err, NULL, 0);
}

static void br_mlog_probe_task(void *arg);

/* Loop thread: a probe answered; the search goes on on the executor. */
static void br_mlog_probe_answer(mq_err_t err, int64_t entry_id, const mq_slice_t *payload,
                                 void *arg)
{
    MQ_UNUSED(entry_id);
    br_mlog_rop_t *rop = arg;
    br_mlog_t *ml = rop->ml;
    rop->err = err;
    if (err == MQ_OK) {
        rop->payload = mq_slice_dup(payload);
    }
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_probe_task, rop);
}

static void br_mlog_rop_probe(br_mlog_rop_t *rop)
{
    br_mlog_t *ml = rop->ml;
    int64_t e = br_mlog_search_probe(&rop->search, rop->offset);
    if (e < 0) {
        MQ_LOG_WARN("managed log: no entry holds the offset topic=%s queue=%d ledger=%llu "
                    "offset=%lld",
                    ml->topic, ml->conf.queue, (unsigned long long)rop->rh->ledger,
                    (long long)rop->offset);
        br_mlog_rop_end(rop, MQ_ECORRUPT);
        return;
    }
    rop->probe = e;
    atomic_fetch_add(&ml->reads, 1);
    mq_err_t err = lc_ledger_read_async(rop->rh->lh, e, br_mlog_probe_answer, rop);
    if (err != MQ_OK) {
        br_mlog_rop_end(rop, err);
    }
}

/* Starts (or resumes after the handle opened) a closed-ledger search. */
static void br_mlog_rop_search(br_mlog_rop_t *rop)
{
    br_mlog_rh_t *rh = rop->rh;
    /* The known entries around the offset narrow the range first. */
    size_t at = 0;
    while (at < rh->npts && rh->pts[at].base <= rop->offset) {
        at++;
    }
    for (size_t k = at > 0 ? at - 1 : 0; k < at + 1 && k < rh->npts; k++) {
        const br_mlog_point_t *p = &rh->pts[k];
        if (p->entry >= rop->search.lo && p->entry <= rop->search.hi &&
            br_mlog_search_apply(&rop->search, rop->offset, p->entry, p->base, p->count) < 0) {
            br_mlog_rop_end(rop, MQ_ECORRUPT);
            return;
        }
    }
    br_mlog_rop_probe(rop);
}

static void br_mlog_probe_task(void *arg)
{
    br_mlog_rop_t *rop = arg;
    br_mlog_t *ml = rop->ml;
    if (rop->err != MQ_OK) {
        br_mlog_rop_end(rop, rop->err);
        return;
    }
    if (ml->shutting) {
        br_mlog_rop_end(rop, MQ_ECLOSED);
        return;
    }
    br_mlog_entry_hdr_t h;
    mq_err_t err = br_mlog_entry_decode(rop->payload.ptr, rop->payload.len, &h, 0, NULL, 0, NULL);
    int found = err == MQ_OK
                    ? br_mlog_search_apply(&rop->search, rop->offset, rop->probe, h.base, h.count)
                    : -1;
    if (found < 0) {
        MQ_LOG_WARN("managed log entry does not fit its ledger topic=%s queue=%d ledger=%llu "
                    "entry=%lld err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)rop->rh->ledger,
                    (long long)rop->probe, mq_err_name(err == MQ_OK ? MQ_ECORRUPT : err));
        br_mlog_rop_end(rop, MQ_ECORRUPT);
        return;
    }
    br_mlog_rh_note(rop->rh, rop->probe, h.base, h.count);
    if (found == 1) {
        br_mlog_rcache_keep(ml, &rop->payload);
        /* The entries after it, when the reader wants more (estimated
         * from this entry's message count). */
        int64_t have = h.base + (int64_t)h.count - rop->offset;
        int64_t more = 0;
        if ((int64_t)rop->max > have && !ml->shutting) {
            more = ((int64_t)rop->max - have + h.count - 1) / h.count;
            more = MQ_MIN(more, MQ_MIN(BR_MLOG_READ_SPAN - 1, rop->lentries - 1 - rop->probe));
        }
        rop->parts[0] = rop->payload;
        rop->payload.buf = NULL;
        rop->payload.ptr = NULL;
        if (more > 0) {
            /* rh stays in use until the gathered answer (br_mlog_gather_task). */
            br_mlog_gather(rop, rop->rh->lh, rop->probe, (int)more + 1, NULL);
            return;
        }
        rop->rh->users--;
        rop->rh = NULL;
        rop->nparts = 1;
        br_mlog_rop_deliver_parts(rop);
        return;
    }
    mq_slice_release(&rop->payload);
    br_mlog_rop_probe(rop);
}

typedef struct br_mlog_open_job {
    br_mlog_t *ml;
    br_mlog_rh_t *rh;
    mq_err_t err;
    lc_ledger_t *lh;
} br_mlog_open_job_t;

static void br_mlog_open_done(void *arg)
{
    br_mlog_open_job_t *j = arg;
    br_mlog_t *ml = j->ml;
    br_mlog_rh_t *rh = j->rh;
    rh->opening = false;
    rh->lh = j->lh;
    br_mlog_rop_t *w = rh->waiters;
    rh->waiters = NULL;
    while (w) {
        br_mlog_rop_t *next = w->next;
        if (j->err != MQ_OK) {
            br_mlog_rop_end(w, j->err);
        } else if (ml->shutting) {
            br_mlog_rop_end(w, MQ_ECLOSED);
        } else {
            br_mlog_rop_search(w);
        }
        w = next;
    }
    if (j->err != MQ_OK) {
        MQ_LOG_WARN("managed log cannot open a ledger for reading topic=%s queue=%d ledger=%llu "
                    "err=%s",
                    ml->topic, ml->conf.queue, (unsigned long long)rh->ledger, mq_err_name(j->err));
        /* Forget it, so that a later read tries again. */
        for (size_t i = 0; i < ml->nrhs; i++) {
            if (ml->rhs[i] == rh && rh->users == 0) {
                br_mlog_rh_drop(ml, i);
                break;
            }
        }
    }
    free(j);
    if (!ml->shutting) {
        br_mlog_rh_evict(ml);
    }
}

/* Helper thread: opening reads the ledger's metadata from ZooKeeper. */
static void br_mlog_open_job(void *arg)
{
    br_mlog_open_job_t *j = arg;
    br_mlog_t *ml = j->ml;
    j->err = lc_ledger_open(ml->conf.lc, j->rh->ledger, &j->lh);
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_open_done, j);
}

/* Reads a closed ledger of the list (entries > 0). */
static void br_mlog_read_closed(br_mlog_rop_t *rop, const br_mlog_ledger_info_t *l)
{
    br_mlog_t *ml = rop->ml;
    br_mlog_rh_t *rh = br_mlog_rh_find(ml, l->ledger);
    if (!rh) {
        rh = br_mlog_rh_add(ml, l->ledger);
        rh->opening = true;
        br_mlog_open_job_t *j = mq_calloc(1, sizeof(*j));
        j->ml = ml;
        j->rh = rh;
        br_mlog_job_start(ml, br_mlog_open_job, j);
    }
    rh->used = ++ml->tick;
    rh->users++;
    rop->rh = rh;
    rop->lentries = l->entries;
    br_mlog_search_init(&rop->search, l->entries, l->first_offset, l->first_offset + l->messages);
    if (rh->opening) {
        rop->next = rh->waiters;
        rh->waiters = rop;
        return;
    }
    br_mlog_rop_search(rop);
}

/* Executor: a closed ledger's gathered read is complete. */
static void br_mlog_gather_task(void *arg)
{
    br_mlog_rop_t *rop = arg;
    rop->rh->users--;
    rop->rh = NULL;
    br_mlog_rop_deliver_parts(rop);
}

/* Reads the current ledger through its index: the entry holding offset
 * and, when the reader wants more, the entries after it (all in parallel;
 * those in a cache are taken from there). */
static void br_mlog_read_current(br_mlog_rop_t *rop)
{
    br_mlog_t *ml = rop->ml;
    if (ml->nindex == 0 || ml->index[0] > rop->offset) {
        br_mlog_rop_finish(rop, MQ_ENOTFOUND, NULL, 0);
        return;
    }
    /* The last entry whose base is <= offset. */
    size_t lo = 0;
    size_t hi = ml->nindex;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ml->index[mid] <= rop->offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    size_t last = lo;
    while (last + 1 < ml->nindex && last + 1 - lo < BR_MLOG_READ_SPAN &&
           ml->index[last + 1] < rop->offset + (int64_t)rop->max) {
        last++;
    }
    br_mlog_gather(rop, ml->cur, (int64_t)lo, (int)(last - lo + 1), &ml->index[lo]);
}

/* The ledger of the list holding offset (the last whose first offset is
 * <= offset), or -1. */
static ssize_t br_mlog_view_find(const br_mlog_info_t *v, int64_t offset)
{
    if (v->nledgers == 0 || v->ledgers[0].first_offset > offset) {
        return -1;
    }
    size_t lo = 0;
    size_t hi = v->nledgers;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->ledgers[mid].first_offset <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (ssize_t)lo;
}

static void br_mlog_read_start(void *arg)
{
    br_mlog_rop_t *rop = arg;
    br_mlog_t *ml = rop->ml;
    if (ml->shutting) {
        br_mlog_rop_finish(rop, MQ_ECLOSED, NULL, 0);
        return;
    }
    if (rop->offset < ml->view.min_offset) {
        br_mlog_rop_finish(rop, MQ_ENOTFOUND, NULL, 0);
        return;
    }
    if (rop->offset >= ml->acked_end) {
        br_mlog_rop_finish(rop, MQ_OK, NULL, 0);
        return;
    }
    size_t at;
    const br_mlog_centry_t *ce = br_mlog_cache_find(&ml->cache, rop->offset, &at);
    if (ce) {
        /* The hot tail is contiguous: take as many entries as wanted. */
        int64_t have = 0;
        int n = 0;
        while (n < BR_MLOG_READ_SPAN && at + (size_t)n < ml->cache.len &&
               have < (int64_t)rop->max) {
            const br_mlog_centry_t *e = br_mlog_cache_at(&ml->cache, at + (size_t)n);
            rop->parts[n++] = mq_slice_of(e->buf, 0, e->buf->len);
            have = e->base + (int64_t)e->count - rop->offset;
        }
        rop->nparts = n;
        br_mlog_rop_deliver_parts(rop);
        return;
    }
    ssize_t i = br_mlog_view_find(&ml->view, rop->offset);
    const br_mlog_ledger_info_t *l = i >= 0 ? &ml->view.ledgers[i] : NULL;
    if (!(l && l->ledger == ml->cur_id && ml->cur)) {
        mq_slice_t entry = br_mlog_rcache_get(ml, rop->offset, false);
        if (entry.ptr) {
            br_mlog_rop_deliver(rop, &entry);
            mq_slice_release(&entry);
            return;
        }
    }
    if (l && l->ledger == ml->cur_id && ml->cur) {
        br_mlog_read_current(rop);
    } else if (l && l->entries > 0 && rop->offset < l->first_offset + l->messages) {
        br_mlog_read_closed(rop, l);
    } else {
        /* Below the acknowledged end but in no ledger: the list and the
         * log disagree, which a correct log never lets happen. */
        MQ_LOG_WARN("managed log: offset in no ledger topic=%s queue=%d offset=%lld", ml->topic,
                    ml->conf.queue, (long long)rop->offset);
        br_mlog_rop_finish(rop, MQ_ENOTFOUND, NULL, 0);
    }
}

mq_err_t br_mlog_read(br_mlog_t *ml, int64_t offset, size_t max_msgs, br_mlog_read_cb cb, void *arg)
{
    if (!ml || !cb || max_msgs == 0 || offset < 0) {
        return MQ_EINVAL;
    }
    if (offset < atomic_load(&ml->min_pub)) {
        return MQ_ENOTFOUND;
    }
    br_mlog_rop_t *rop = mq_calloc(1, sizeof(*rop));
    rop->ml = ml;
    rop->offset = offset;
    rop->max = max_msgs;
    rop->cb = cb;
    rop->arg = arg;
    pthread_mutex_lock(&ml->lock);
    if (ml->freeing) {
        pthread_mutex_unlock(&ml->lock);
        free(rop);
        return MQ_ECLOSED;
    }
    ml->ops++;
    mq_executor_submit(ml->conf.executor, ml->conf.key, br_mlog_read_start, rop);
    pthread_mutex_unlock(&ml->lock);
    return MQ_OK;
}

/* --- detached reads --------------------------------------------------------------------- */

typedef struct br_mlog_collect {
    br_mlog_msg_t *msgs;
    size_t n;
    size_t max;
} br_mlog_collect_t;

/* Copies the messages of entry p from *offset on, advancing *offset. */
static mq_err_t br_mlog_collect(br_mlog_collect_t *c, const uint8_t *p, size_t len, int64_t *offset)
{
    br_mlog_entry_hdr_t h;
    mq_err_t err = br_mlog_entry_decode(p, len, &h, 0, NULL, 0, NULL);
    if (err != MQ_OK) {
        return err;
    }
    if (*offset < h.base || *offset - h.base >= (int64_t)h.count) {
        return MQ_ECORRUPT;
    }
    size_t want = MQ_MIN(c->max - c->n, (size_t)(h.base + (int64_t)h.count - *offset));
    br_mlog_msg_t *view = mq_malloc(want * sizeof(*view));
    size_t got = 0;
    br_mlog_entry_decode(p, len, NULL, *offset, view, want, &got);
    for (size_t i = 0; i < got && err == MQ_OK; i++) {
        uint8_t *copy = mq_try_malloc(view[i].len ? view[i].len : 1);
        if (!copy) {
            err = MQ_ENOMEM;
            break;
        }
        memcpy(copy, view[i].data, view[i].len);
        c->msgs[c->n].offset = view[i].offset;
        c->msgs[c->n].data = copy;
        c->msgs[c->n].len = view[i].len;
        c->n++;
        *offset = view[i].offset + 1;
    }
    free(view);
    return err;
}

/* Reads ledger l of a list from *offset until c is full or the ledger's
 * readable end. *more: the ledger was read to its end (go on with the
 * next one). */
static mq_err_t br_mlog_detached_ledger(lc_client_t *lc, const br_mlog_ledger_info_t *l,
                                        br_mlog_collect_t *c, int64_t *offset, bool *more)
{
    *more = false;
    bool open = l->entries < 0;
    lc_ledger_t *lh;
    mq_err_t err = lc_ledger_open(lc, l->ledger, &lh);
    if (err != MQ_OK) {
        return err;
    }
    int64_t last = lc_ledger_lac(lh);
    if (open && !lc_ledger_closed(lh)) {
        /* An open tail: as far as the bookies say it is confirmed. */
        int64_t lac = -1;
        if (lc_ledger_read_lac(lh, &lac) == MQ_OK) {
            last = MQ_MAX(last, lac);
        }
    }
    br_mlog_search_t s;
    int64_t end = open ? INT64_MAX : l->first_offset + l->messages;
    br_mlog_search_init(&s, last + 1, l->first_offset, end);
    int64_t e = -1;
    mq_slice_t pl = {NULL, NULL, 0};
    while (err == MQ_OK) {
        int64_t probe = br_mlog_search_probe(&s, *offset);
        if (probe < 0) {
            /* Past what is readable (an open ledger's LAC). */
            break;
        }
        err = lc_ledger_read(lh, probe, &pl);
        if (err != MQ_OK) {
            break;
        }
        br_mlog_entry_hdr_t h;
        err = br_mlog_entry_decode(pl.ptr, pl.len, &h, 0, NULL, 0, NULL);
        int found = err == MQ_OK ? br_mlog_search_apply(&s, *offset, probe, h.base, h.count) : -1;
        if (found < 0) {
            err = MQ_ECORRUPT;
        } else if (found == 1) {
            e = probe;
            break;
        }
        mq_slice_release(&pl);
    }
    /* Found: that entry, then the following ones. */
    while (err == MQ_OK && e >= 0) {
        err = br_mlog_collect(c, pl.ptr, pl.len, offset);
        mq_slice_release(&pl);
        if (err != MQ_OK || c->n == c->max) {
            break;
        }
        if (++e > last) {
            *more = !open;
            break;
        }
        err = lc_ledger_read(lh, e, &pl);
    }
    mq_slice_release(&pl);
    lc_ledger_free(lh);
    return err;
}

mq_err_t br_mlog_read_detached(lc_client_t *lc, const char *root, const char *topic, int queue,
                               int64_t offset, size_t max_msgs, br_mlog_msg_t **msgs, size_t *count)
{
    if (!lc || !msgs || !count || offset < 0) {
        return MQ_EINVAL;
    }
    *msgs = NULL;
    *count = 0;
    br_mlog_info_t info;
    mq_err_t err = br_mlog_info_read(lc_client_zk(lc), root, topic, queue, &info);
    if (err != MQ_OK) {
        return err;
    }
    if (offset < info.min_offset) {
        br_mlog_info_fini(&info);
        return MQ_ENOTFOUND;
    }
    br_mlog_collect_t c = {NULL, 0, max_msgs};
    ssize_t i = br_mlog_view_find(&info, offset);
    if (max_msgs > 0 && i >= 0) {
        /* Bounded by what the ledgers hold, not only by the caller's max. */
        c.msgs = mq_try_malloc(MQ_MIN(max_msgs, (size_t)65536) * sizeof(*c.msgs));
        c.max = MQ_MIN(max_msgs, (size_t)65536);
        if (!c.msgs) {
            err = MQ_ENOMEM;
        }
    }
    for (; err == MQ_OK && i >= 0 && (size_t)i < info.nledgers && c.n < c.max; i++) {
        const br_mlog_ledger_info_t *l = &info.ledgers[i];
        if (l->entries == 0 || (l->entries > 0 && offset >= l->first_offset + l->messages)) {
            continue;
        }
        bool more = false;
        err = br_mlog_detached_ledger(lc, l, &c, &offset, &more);
        if (!more) {
            break;
        }
    }
    br_mlog_info_fini(&info);
    if (err != MQ_OK) {
        br_mlog_msgs_free(c.msgs, c.n);
        return err;
    }
    *msgs = c.msgs;
    *count = c.n;
    return MQ_OK;
}

void br_mlog_msgs_free(br_mlog_msg_t *msgs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free((void *)msgs[i].data);
    }
    free(msgs);
}
