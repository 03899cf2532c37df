/*
 * bk_writecache: implementation (see bk_writecache.h).
 *
 * Two open-addressing tables with linear probing, both kept at most 70 %
 * full and doubled when they pass it: entry slots keyed by (ledger, entry),
 * and ledger slots holding the ledger's last entry id and the head of a
 * chain through its entry slots (slot indexes, rebuilt on every rehash).
 * Nothing is ever removed from a cache (it is dropped whole after a
 * checkpoint), so there are no tombstones. Empty slots are zero (used 0),
 * so a table comes from calloc and costs nothing until it is touched. A put
 * is a hash, a probe or two and a refcount increment.
 */
#include "bk_writecache.h"

#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

#define BK_WC_NONE UINT32_MAX
#define BK_WC_MIN_CAP 1024u

typedef struct bk_wc_slot {
    uint64_t ledger;
    int64_t entry;
    mq_slice_t bytes;
    uint32_t next; /* next slot of the same ledger */
    uint32_t used;
} bk_wc_slot_t;

typedef struct bk_wc_ledger {
    uint64_t ledger;
    int64_t last;
    uint32_t head; /* first entry slot of the ledger */
    uint32_t used;
} bk_wc_ledger_t;

struct bk_writecache {
    bk_wc_slot_t *slots;
    uint32_t cap; /* power of two */
    uint32_t count;
    bk_wc_ledger_t *ledgers;
    uint32_t lcap; /* power of two */
    uint32_t lcount;
    size_t bytes;
};

static uint64_t bk_wc_hash(uint64_t ledger, int64_t entry)
{
    return mq_mix64(ledger * 0x9e3779b97f4a7c15ull ^ (uint64_t)entry);
}

static bk_wc_slot_t *bk_wc_slots_new(uint32_t cap)
{
    return mq_calloc(cap, sizeof(bk_wc_slot_t));
}

static bk_wc_ledger_t *bk_wc_ledgers_new(uint32_t cap)
{
    return mq_calloc(cap, sizeof(bk_wc_ledger_t));
}

static uint32_t bk_wc_pow2(size_t n)
{
    uint32_t cap = BK_WC_MIN_CAP;
    while (cap < n && cap < (1u << 31)) {
        cap <<= 1;
    }
    return cap;
}

bk_writecache_t *bk_writecache_new(size_t expected)
{
    bk_writecache_t *wc = mq_calloc(1, sizeof(*wc));
    wc->cap = bk_wc_pow2(expected + expected / 2);
    wc->slots = bk_wc_slots_new(wc->cap);
    wc->lcap = BK_WC_MIN_CAP;
    wc->ledgers = bk_wc_ledgers_new(wc->lcap);
    return wc;
}

void bk_writecache_free(bk_writecache_t *wc)
{
    if (!wc) {
        return;
    }
    for (uint32_t i = 0; i < wc->cap; i++) {
        if (wc->slots[i].used) {
            mq_slice_release(&wc->slots[i].bytes);
        }
    }
    free(wc->slots);
    free(wc->ledgers);
    free(wc);
}

static bk_wc_ledger_t *bk_wc_ledger_find(const bk_writecache_t *wc, uint64_t ledger)
{
    uint32_t mask = wc->lcap - 1;
    for (uint32_t i = (uint32_t)mq_mix64(ledger) & mask;; i = (i + 1) & mask) {
        bk_wc_ledger_t *l = &wc->ledgers[i];
        if (!l->used) {
            return NULL;
        }
        if (l->ledger == ledger) {
            return l;
        }
    }
}

static void bk_wc_ledger_grow(bk_writecache_t *wc);

/* The ledger's slot, created when missing. */
static bk_wc_ledger_t *bk_wc_ledger_get(bk_writecache_t *wc, uint64_t ledger)
{
    if ((uint64_t)(wc->lcount + 1) * 10 > (uint64_t)wc->lcap * 7) {
        bk_wc_ledger_grow(wc);
    }
    uint32_t mask = wc->lcap - 1;
    for (uint32_t i = (uint32_t)mq_mix64(ledger) & mask;; i = (i + 1) & mask) {
        bk_wc_ledger_t *l = &wc->ledgers[i];
        if (!l->used) {
            l->ledger = ledger;
            l->last = -1;
            l->head = BK_WC_NONE;
            l->used = 1;
            wc->lcount++;
            return l;
        }
        if (l->ledger == ledger) {
            return l;
        }
    }
}

static void bk_wc_ledger_grow(bk_writecache_t *wc)
{
    bk_wc_ledger_t *old = wc->ledgers;
    uint32_t ocap = wc->lcap;
    wc->lcap = ocap * 2;
    wc->ledgers = bk_wc_ledgers_new(wc->lcap);
    uint32_t mask = wc->lcap - 1;
    for (uint32_t k = 0; k < ocap; k++) {
        if (!old[k].used) {
            continue;
        }
        uint32_t i = (uint32_t)mq_mix64(old[k].ledger) & mask;
        while (wc->ledgers[i].used) {
            i = (i + 1) & mask;
        }
        wc->ledgers[i] = old[k];
    }
    free(old);
}

/* Inserts into a free slot found for (ledger, entry) and links it into its
 * ledger's chain. */
static void bk_wc_link(bk_writecache_t *wc, uint32_t i)
{
    bk_wc_slot_t *s = &wc->slots[i];
    bk_wc_ledger_t *l = bk_wc_ledger_get(wc, s->ledger);
    if (l->head == BK_WC_NONE || s->entry > l->last) {
        /* A rehash relinks every slot: the first one relinked restarts the
         * maximum. */
        l->last = s->entry;
    }
    s->next = l->head;
    l->head = i;
}

static void bk_wc_grow(bk_writecache_t *wc)
{
    bk_wc_slot_t *old = wc->slots;
    uint32_t ocap = wc->cap;
    MQ_ASSERT(ocap < (1u << 31));
    wc->cap = ocap * 2;
    wc->slots = bk_wc_slots_new(wc->cap);
    /* The chains hold slot indexes: rebuild them along with the slots. */
    for (uint32_t k = 0; k < wc->lcap; k++) {
        if (wc->ledgers[k].used) {
            wc->ledgers[k].head = BK_WC_NONE;
        }
    }
    uint32_t mask = wc->cap - 1;
    for (uint32_t k = 0; k < ocap; k++) {
        if (!old[k].used) {
            continue;
        }
        uint32_t i = (uint32_t)bk_wc_hash(old[k].ledger, old[k].entry) & mask;
        while (wc->slots[i].used) {
            i = (i + 1) & mask;
        }
        wc->slots[i] = old[k];
        bk_wc_link(wc, i);
    }
    free(old);
}

void bk_writecache_put(bk_writecache_t *wc, uint64_t ledger_id, int64_t entry_id,
                       const mq_slice_t *bytes)
{
    MQ_ASSERT(entry_id >= 0);
    if ((uint64_t)(wc->count + 1) * 10 > (uint64_t)wc->cap * 7) {
        bk_wc_grow(wc);
    }
    uint32_t mask = wc->cap - 1;
    for (uint32_t i = (uint32_t)bk_wc_hash(ledger_id, entry_id) & mask;; i = (i + 1) & mask) {
        bk_wc_slot_t *s = &wc->slots[i];
        if (!s->used) {
            s->ledger = ledger_id;
            s->entry = entry_id;
            s->bytes = mq_slice_dup(bytes);
            s->used = 1;
            wc->count++;
            wc->bytes += bytes->len;
            bk_wc_link(wc, i);
            return;
        }
        if (s->ledger == ledger_id && s->entry == entry_id) {
            mq_slice_t prev = s->bytes;
            s->bytes = mq_slice_dup(bytes);
            wc->bytes = wc->bytes - prev.len + bytes->len;
            mq_slice_release(&prev);
            return;
        }
    }
}

static const bk_wc_slot_t *bk_wc_find(const bk_writecache_t *wc, uint64_t ledger_id,
                                      int64_t entry_id)
{
    if (entry_id < 0) {
        return NULL;
    }
    uint32_t mask = wc->cap - 1;
    for (uint32_t i = (uint32_t)bk_wc_hash(ledger_id, entry_id) & mask;; i = (i + 1) & mask) {
        const bk_wc_slot_t *s = &wc->slots[i];
        if (!s->used) {
            return NULL;
        }
        if (s->ledger == ledger_id && s->entry == entry_id) {
            return s;
        }
    }
}

bool bk_writecache_get(const bk_writecache_t *wc, uint64_t ledger_id, int64_t entry_id,
                       mq_slice_t *out)
{
    const bk_wc_slot_t *s = bk_wc_find(wc, ledger_id, entry_id);
    if (!s) {
        return false;
    }
    *out = mq_slice_dup(&s->bytes);
    return true;
}

int64_t bk_writecache_last_entry(const bk_writecache_t *wc, uint64_t ledger_id)
{
    const bk_wc_ledger_t *l = bk_wc_ledger_find(wc, ledger_id);
    return l && l->head != BK_WC_NONE ? l->last : -1;
}

void bk_writecache_ledger_entries(const bk_writecache_t *wc, uint64_t ledger_id, int64_t **ids,
                                  size_t *n, size_t *cap)
{
    const bk_wc_ledger_t *l = bk_wc_ledger_find(wc, ledger_id);
    for (uint32_t i = l ? l->head : BK_WC_NONE; i != BK_WC_NONE; i = wc->slots[i].next) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *ids = mq_realloc(*ids, *cap * sizeof(**ids));
        }
        (*ids)[(*n)++] = wc->slots[i].entry;
    }
}

size_t bk_writecache_count(const bk_writecache_t *wc)
{
    return wc->count;
}

size_t bk_writecache_bytes(const bk_writecache_t *wc)
{
    return wc->bytes;
}

typedef struct bk_wc_key {
    uint64_t ledger;
    int64_t entry;
    uint32_t slot;
} bk_wc_key_t;

static int bk_wc_key_cmp(const void *a, const void *b)
{
    const bk_wc_key_t *x = a;
    const bk_wc_key_t *y = b;
    if (x->ledger != y->ledger) {
        return x->ledger < y->ledger ? -1 : 1;
    }
    return x->entry < y->entry ? -1 : (x->entry > y->entry ? 1 : 0);
}

mq_err_t bk_writecache_foreach_sorted(const bk_writecache_t *wc, bk_writecache_cb cb, void *arg)
{
    if (wc->count == 0) {
        return MQ_OK;
    }
    bk_wc_key_t *keys = mq_malloc((size_t)wc->count * sizeof(*keys));
    size_t n = 0;
    for (uint32_t i = 0; i < wc->cap; i++) {
        if (wc->slots[i].used) {
            keys[n++] = (bk_wc_key_t){wc->slots[i].ledger, wc->slots[i].entry, i};
        }
    }
    qsort(keys, n, sizeof(*keys), bk_wc_key_cmp);
    mq_err_t err = MQ_OK;
    for (size_t k = 0; k < n && err == MQ_OK; k++) {
        err = cb(keys[k].ledger, keys[k].entry, &wc->slots[keys[k].slot].bytes, arg);
    }
    free(keys);
    return err;
}

void bk_writecache_absorb(bk_writecache_t *dst, const bk_writecache_t *src)
{
    for (uint32_t i = 0; i < src->cap; i++) {
        const bk_wc_slot_t *s = &src->slots[i];
        if (s->used && !bk_wc_find(dst, s->ledger, s->entry)) {
            bk_writecache_put(dst, s->ledger, s->entry, &s->bytes);
        }
    }
}
