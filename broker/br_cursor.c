/*
 * br_cursor: the consumption state of one consumer group on one queue (see
 * br_cursor.h for the model), its persistence records and receipt handles.
 * The queue owner calls it on the queue's executor key; nothing here locks,
 * blocks or does I/O. @locality the queue's executor key (every function
 * but the pure handle codec, which runs on any thread).
 *
 * The window [watermark, next) is a ring of slots indexed by offset (a
 * power of two, grown on demand up to the window); slots outside the window
 * are all zero. The watermark moves over a prefix of DONE slots and clears
 * them.
 *
 * What replay knows about offsets at or above next (DONE offsets and
 * recorded attempts of a previous owner) lives in two sorted arrays beside
 * the ring, consumed from the front as next moves: "pending" DONE ranges
 * (merged, disjoint) and pending attempts. They may reach far above the
 * window (a previous owner's filter skips are not recorded, so its acks can
 * lie far above the watermark we rebuild), hence sparse. While the window
 * is empty (watermark == next) the first pending range never starts at
 * next: the watermark jumps over it at once.
 *
 * due_min is a lower bound of every INFLIGHT deadline and WAITING
 * visible_at, exact after each scan: a pick before it only looks at new
 * offsets (O(1) when there are none). A scan converts an INFLIGHT offset
 * whose deadline passed into WAITING, visible at max(deadline, delivered_at
 * + backoff(attempt)), or at its deadline when its attempts are exhausted
 * (a dead letter gets no back-off).
 *
 * FIFO: a slot carries the group hash given to deliver/defer until it is
 * DONE; a small open-addressing map keeps, per group, how many slots carry
 * it and the lowest such offset, so br_cursor_group_blocked is O(1). A
 * WAITING slot behind an earlier offset of its group is not due (pick skips
 * it and due_min ignores it) until it becomes its group's first.
 *
 * A delivery's handle stays good for ack and change until the offset is
 * picked again: INFLIGHT, and WAITING after it expired, take it; READING
 * does not (the next delivery is being read), except a dead letter, which
 * the owner acks with the picked attempt.
 *
 * Records, little-endian, each [u8 type][u8 version = 1] then:
 *   ACK      1: u32 n, n x i64 offset
 *   ATTEMPT  2: i64 offset, u32 attempt
 *   SNAPSHOT 3: i64 watermark, u32 nranges, u32 nattempts,
 *               nranges x (i64 first, u32 length)   DONE, ascending
 *               nattempts x (i64 offset, u32 attempt) strictly ascending
 * Replay checks every length, count, order and range before it changes
 * anything: MQ_ECORRUPT otherwise.
 *
 * Receipt handle: "L1.<queue>.<offset>.<attempt>.<deadline>.<crc>", fields
 * in lowercase hex without leading zeros, crc (8 digits) = CRC32C over the
 * text before its dot, the topic, a NUL and the group.
 */
#include "br_cursor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_crc32c.h"
#include "mq_log.h"
#include "mq_util.h"

enum {
    BR_CURSOR_UNSEEN = 0, /* not in the window */
    BR_CURSOR_READING,
    BR_CURSOR_INFLIGHT,
    BR_CURSOR_WAITING,
    BR_CURSOR_DONE,
    BR_CURSOR_NSTATES
};

/* READING slot picked with dlq = true: br_cursor_ack takes it. */
#define BR_CURSOR_F_DLQ 0x01

#define BR_CURSOR_REC_ACK 1
#define BR_CURSOR_REC_ATTEMPT 2
#define BR_CURSOR_REC_SNAPSHOT 3
#define BR_CURSOR_REC_VERSION 1
/* A snapshot with the deliveries in flight (br_cursor_rec_handover). */
#define BR_CURSOR_SNAP_V2 2
#define BR_CURSOR_REC_HDR 2
#define BR_CURSOR_SNAP_HDR (BR_CURSOR_REC_HDR + 16)
#define BR_CURSOR_SNAP2_HDR (BR_CURSOR_SNAP_HDR + 4)
#define BR_CURSOR_SNAP_ITEM 12
#define BR_CURSOR_SNAP_INFL 24

#define BR_HANDLE_PREFIX "L1."

typedef struct br_cursor_slot {
    uint8_t state;
    uint8_t prev;  /* READING: the state unpick restores (UNSEEN: a new offset) */
    uint8_t flags; /* BR_CURSOR_F_* */
    int32_t attempt;
    uint32_t group;        /* message group's hash, 0: none */
    uint64_t due;          /* INFLIGHT: deadline; WAITING: visible_at */
    uint64_t delivered_at; /* INFLIGHT / WAITING: when last delivered */
} br_cursor_slot_t;

typedef struct br_cursor_range {
    int64_t first;
    int64_t end;
} br_cursor_range_t;

typedef struct br_cursor_att {
    int64_t offset;
    int32_t attempt;
} br_cursor_att_t;

typedef struct br_cursor_gent {
    uint32_t hash; /* 0: free */
    uint32_t count;
    int64_t first;
} br_cursor_gent_t;

struct br_cursor {
    br_cursor_conf_t conf;
    int64_t watermark;
    int64_t next;
    br_cursor_slot_t *slots;
    size_t cap; /* power of two, >= next - watermark */
    uint32_t nstate[BR_CURSOR_NSTATES];
    uint64_t due_min;

    br_cursor_range_t *pd; /* pending DONE ranges: pd[pd_head, pd_n) */
    size_t pd_head, pd_n, pd_cap;
    br_cursor_att_t *pa; /* pending attempts: pa[pa_head, pa_n) */
    size_t pa_head, pa_n, pa_cap;

    br_cursor_gent_t *groups;
    size_t gcap, gn;
};

static uint64_t br_cursor_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static br_cursor_slot_t *br_cursor_slot(const br_cursor_t *c, int64_t offset)
{
    return &c->slots[(uint64_t)offset & (c->cap - 1)];
}

static void br_cursor_set_state(br_cursor_t *c, br_cursor_slot_t *s, uint8_t state)
{
    if (s->state != BR_CURSOR_UNSEEN) {
        c->nstate[s->state]--;
    }
    s->state = state;
    if (state != BR_CURSOR_UNSEEN) {
        c->nstate[state]++;
    }
}

/* Makes room for offset next in the ring. */
static void br_cursor_ring_reserve(br_cursor_t *c)
{
    size_t need = (size_t)(c->next - c->watermark) + 1;
    if (need <= c->cap) {
        return;
    }
    size_t ncap = c->cap ? c->cap : 16;
    while (ncap < need) {
        ncap *= 2;
    }
    br_cursor_slot_t *slots = mq_calloc(ncap, sizeof(*slots));
    for (int64_t off = c->watermark; off < c->next; off++) {
        slots[(uint64_t)off & (ncap - 1)] = *br_cursor_slot(c, off);
    }
    free(c->slots);
    c->slots = slots;
    c->cap = ncap;
}

/* --- FIFO groups --------------------------------------------------------------- */

static size_t br_cursor_gpos(uint32_t hash, size_t cap)
{
    return (size_t)mq_mix64(hash) & (cap - 1);
}

static br_cursor_gent_t *br_cursor_gfind(const br_cursor_t *c, uint32_t hash)
{
    if (c->gcap == 0) {
        return NULL;
    }
    for (size_t i = br_cursor_gpos(hash, c->gcap);; i = (i + 1) & (c->gcap - 1)) {
        if (c->groups[i].hash == hash) {
            return &c->groups[i];
        }
        if (c->groups[i].hash == 0) {
            return NULL;
        }
    }
}

static void br_cursor_gput(br_cursor_gent_t *groups, size_t cap, const br_cursor_gent_t *e)
{
    size_t i = br_cursor_gpos(e->hash, cap);
    while (groups[i].hash != 0) {
        i = (i + 1) & (cap - 1);
    }
    groups[i] = *e;
}

static void br_cursor_gadd(br_cursor_t *c, uint32_t hash, int64_t offset)
{
    br_cursor_gent_t *e = br_cursor_gfind(c, hash);
    if (e == NULL) {
        /* Keep the load at or below one half so probes stay short. */
        if ((c->gn + 1) * 2 > c->gcap) {
            size_t ncap = c->gcap ? c->gcap * 2 : 16;
            br_cursor_gent_t *groups = mq_calloc(ncap, sizeof(*groups));
            for (size_t i = 0; i < c->gcap; i++) {
                if (c->groups[i].hash != 0) {
                    br_cursor_gput(groups, ncap, &c->groups[i]);
                }
            }
            free(c->groups);
            c->groups = groups;
            c->gcap = ncap;
        }
        br_cursor_gent_t ne = {.hash = hash, .count = 0, .first = offset};
        br_cursor_gput(c->groups, c->gcap, &ne);
        c->gn++;
        e = br_cursor_gfind(c, hash);
    }
    e->count++;
    e->first = MQ_MIN(e->first, offset);
}

/* Removes the entry at i, shifting back the entries of its probe run
 * (linear probing needs no tombstones that way). */
static void br_cursor_gremove(br_cursor_t *c, size_t i)
{
    size_t mask = c->gcap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (c->groups[j].hash == 0) {
            break;
        }
        size_t k = br_cursor_gpos(c->groups[j].hash, c->gcap);
        /* The entry at j may move to i unless its home k lies cyclically
         * in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            c->groups[i] = c->groups[j];
            i = j;
        }
    }
    c->groups[i].hash = 0;
    c->gn--;
}

/* The slot at offset no longer carries hash (its group field is already
 * cleared or changed). */
static void br_cursor_gdel(br_cursor_t *c, uint32_t hash, int64_t offset)
{
    br_cursor_gent_t *e = br_cursor_gfind(c, hash);
    MQ_ASSERT(e != NULL && e->count > 0);
    if (--e->count == 0) {
        br_cursor_gremove(c, (size_t)(e - c->groups));
        return;
    }
    if (e->first != offset) {
        return;
    }
    /* The group's first offset left: its next one is further up the window
     * (count > 0 says there is one). If it waits, pick skipped it while it
     * was behind: it may be due now. */
    for (int64_t off = offset + 1; off < c->next; off++) {
        const br_cursor_slot_t *s = br_cursor_slot(c, off);
        if (s->group == hash) {
            e->first = off;
            if (s->state == BR_CURSOR_WAITING) {
                c->due_min = MQ_MIN(c->due_min, s->due);
            }
            return;
        }
    }
    MQ_ASSERT(!"group member missing from the window");
}

/* Whether a FIFO slot waits behind an earlier offset of its group. */
static bool br_cursor_behind(const br_cursor_t *c, const br_cursor_slot_t *s, int64_t offset)
{
    if (!c->conf.fifo || s->group == 0) {
        return false;
    }
    const br_cursor_gent_t *e = br_cursor_gfind(c, s->group);
    return e != NULL && e->first < offset;
}

static void br_cursor_group_set(br_cursor_t *c, br_cursor_slot_t *s, int64_t offset, uint32_t hash)
{
    if (!c->conf.fifo || s->group == hash) {
        return;
    }
    uint32_t old = s->group;
    s->group = hash;
    if (old != 0) {
        br_cursor_gdel(c, old, offset);
    }
    if (hash != 0) {
        br_cursor_gadd(c, hash, offset);
    }
}

/* --- pending state above next ------------------------------------------------- */

/* Adds [first, end) (first >= next) to the pending DONE ranges, merging. */
static void br_cursor_pd_add(br_cursor_t *c, int64_t first, int64_t end)
{
    /* i = the first range whose end reaches first (ends ascend). */
    size_t lo = c->pd_head;
    size_t hi = c->pd_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pd[mid].end < first) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t i = lo;
    if (i < c->pd_n && c->pd[i].first <= end) {
        br_cursor_range_t *r = &c->pd[i];
        r->first = MQ_MIN(r->first, first);
        r->end = MQ_MAX(r->end, end);
        size_t j = i + 1;
        while (j < c->pd_n && c->pd[j].first <= r->end) {
            r->end = MQ_MAX(r->end, c->pd[j].end);
            j++;
        }
        memmove(&c->pd[i + 1], &c->pd[j], (c->pd_n - j) * sizeof(*c->pd));
        c->pd_n -= j - i - 1;
        return;
    }
    if (c->pd_n == c->pd_cap) {
        if (c->pd_head > 0) {
            memmove(c->pd, &c->pd[c->pd_head], (c->pd_n - c->pd_head) * sizeof(*c->pd));
            c->pd_n -= c->pd_head;
            i -= c->pd_head;
            c->pd_head = 0;
        } else {
            c->pd_cap = c->pd_cap ? c->pd_cap * 2 : 16;
            c->pd = mq_realloc(c->pd, c->pd_cap * sizeof(*c->pd));
        }
    }
    memmove(&c->pd[i + 1], &c->pd[i], (c->pd_n - i) * sizeof(*c->pd));
    c->pd[i] = (br_cursor_range_t){.first = first, .end = end};
    c->pd_n++;
}

/* Whether offset (>= next) is in a pending DONE range. */
static bool br_cursor_pd_has(const br_cursor_t *c, int64_t offset)
{
    size_t lo = c->pd_head;
    size_t hi = c->pd_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pd[mid].end <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < c->pd_n && c->pd[lo].first <= offset;
}

static void br_cursor_pd_pop(br_cursor_t *c)
{
    if (++c->pd_head == c->pd_n) {
        c->pd_head = c->pd_n = 0;
    }
}

/* Records attempt for offset (>= next), keeping the highest seen. */
static void br_cursor_pa_set(br_cursor_t *c, int64_t offset, int32_t attempt)
{
    size_t lo = c->pa_head;
    size_t hi = c->pa_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pa[mid].offset < offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t i = lo;
    if (i < c->pa_n && c->pa[i].offset == offset) {
        c->pa[i].attempt = MQ_MAX(c->pa[i].attempt, attempt);
        return;
    }
    if (c->pa_n == c->pa_cap) {
        if (c->pa_head > 0) {
            memmove(c->pa, &c->pa[c->pa_head], (c->pa_n - c->pa_head) * sizeof(*c->pa));
            c->pa_n -= c->pa_head;
            i -= c->pa_head;
            c->pa_head = 0;
        } else {
            c->pa_cap = c->pa_cap ? c->pa_cap * 2 : 16;
            c->pa = mq_realloc(c->pa, c->pa_cap * sizeof(*c->pa));
        }
    }
    memmove(&c->pa[i + 1], &c->pa[i], (c->pa_n - i) * sizeof(*c->pa));
    c->pa[i] = (br_cursor_att_t){.offset = offset, .attempt = attempt};
    c->pa_n++;
}

/* Drops pending attempts below next. */
static void br_cursor_pa_trim(br_cursor_t *c)
{
    while (c->pa_head < c->pa_n && c->pa[c->pa_head].offset < c->next) {
        c->pa_head++;
    }
    if (c->pa_head == c->pa_n) {
        c->pa_head = c->pa_n = 0;
    }
}

/* --- state changes ------------------------------------------------------------- */

/* Moves the watermark over the DONE prefix of the window and, once the
 * window is empty, over pending DONE ranges starting at next. */
static void br_cursor_advance(br_cursor_t *c)
{
    while (c->watermark < c->next) {
        br_cursor_slot_t *s = br_cursor_slot(c, c->watermark);
        if (s->state != BR_CURSOR_DONE) {
            return;
        }
        br_cursor_set_state(c, s, BR_CURSOR_UNSEEN);
        memset(s, 0, sizeof(*s));
        c->watermark++;
    }
    while (c->pd_head < c->pd_n && c->pd[c->pd_head].first <= c->next) {
        c->next = MQ_MAX(c->next, c->pd[c->pd_head].end);
        br_cursor_pd_pop(c);
    }
    c->watermark = c->next;
    br_cursor_pa_trim(c);
}

/* Marks a window slot DONE (the caller then advances the watermark). */
static void br_cursor_done(br_cursor_t *c, br_cursor_slot_t *s, int64_t offset)
{
    uint32_t group = s->group;
    s->group = 0;
    s->flags = 0;
    br_cursor_set_state(c, s, BR_CURSOR_DONE);
    if (group != 0) {
        br_cursor_gdel(c, group, offset);
    }
}

static void br_cursor_due_at(br_cursor_t *c, uint64_t due)
{
    c->due_min = MQ_MIN(c->due_min, due);
}

/* INFLIGHT whose deadline passed -> WAITING, visible after its back-off. */
static void br_cursor_expire(br_cursor_t *c, br_cursor_slot_t *s)
{
    uint64_t due = s->due;
    if (s->attempt < c->conf.max_attempts && c->conf.backoff_ms != NULL) {
        uint64_t backoff = c->conf.backoff_ms(s->attempt, c->conf.backoff_arg);
        due = MQ_MAX(due, br_cursor_sat_add(s->delivered_at, backoff));
    }
    s->due = due;
    br_cursor_set_state(c, s, BR_CURSOR_WAITING);
}

/* --- lifecycle ----------------------------------------------------------------- */

void br_cursor_conf_default(br_cursor_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->window = 16384;
    conf->max_attempts = 17;
}

br_cursor_t *br_cursor_new(const br_cursor_conf_t *conf, int64_t start)
{
    MQ_ASSERT(conf->window >= 1 && conf->max_attempts >= 1 && start >= 0);
    br_cursor_t *c = mq_calloc(1, sizeof(*c));
    c->conf = *conf;
    c->watermark = start;
    c->next = start;
    c->due_min = UINT64_MAX;
    return c;
}

void br_cursor_free(br_cursor_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->slots);
    free(c->pd);
    free(c->pa);
    free(c->groups);
    free(c);
}

void br_cursor_reconf(br_cursor_t *c, const br_cursor_conf_t *conf)
{
    MQ_ASSERT(conf->max_attempts >= 1);
    if (conf->fifo != c->conf.fifo) {
        /* Offsets that waited behind their group may be due now: look at
         * the whole window on the next pick. */
        c->due_min = 0;
    }
    c->conf.max_attempts = conf->max_attempts;
    c->conf.fifo = conf->fifo;
    c->conf.backoff_ms = conf->backoff_ms;
    c->conf.backoff_arg = conf->backoff_arg;
}

/* --- delivery ------------------------------------------------------------------ */

static void br_cursor_take(br_cursor_t *c, br_cursor_slot_t *s, int64_t offset,
                           br_cursor_pick_t *out)
{
    out->offset = offset;
    out->attempt = s->attempt;
    out->dlq = s->attempt >= c->conf.max_attempts;
    s->prev = s->state;
    s->flags = out->dlq ? BR_CURSOR_F_DLQ : 0;
    br_cursor_set_state(c, s, BR_CURSOR_READING);
}

/* The due part of pick: one pass over the window in offset order, which
 * also recomputes due_min for what stays. */
static size_t br_cursor_pick_due(br_cursor_t *c, uint64_t now_ms, br_cursor_pick_t *out, size_t max)
{
    size_t n = 0;
    uint64_t min = UINT64_MAX;
    for (int64_t off = c->watermark; off < c->next; off++) {
        br_cursor_slot_t *s = br_cursor_slot(c, off);
        if (s->state == BR_CURSOR_INFLIGHT && s->due <= now_ms) {
            br_cursor_expire(c, s);
        }
        if (s->state == BR_CURSOR_INFLIGHT) {
            min = MQ_MIN(min, s->due);
            continue;
        }
        /* A FIFO offset behind its group is not due: handing it out would
         * only have it read and deferred again. It counts again once it is
         * its group's first (br_cursor_gdel). */
        if (s->state != BR_CURSOR_WAITING || br_cursor_behind(c, s, off)) {
            continue;
        }
        if (s->due > now_ms) {
            min = MQ_MIN(min, s->due);
            continue;
        }
        if (n == max) {
            /* More is due than fits: the old bound (<= now) still holds for
             * what this pass did not see. */
            c->due_min = MQ_MIN(c->due_min, min);
            return n;
        }
        br_cursor_take(c, s, off, &out[n++]);
    }
    c->due_min = min;
    return n;
}

/* Takes offset next into the window (*offset). A pending DONE offset
 * becomes DONE there (NULL is returned): the window is not empty when pick
 * calls this (advance jumps over a pending range at an empty window's
 * next), so it takes a slot until the watermark reaches it. Otherwise the
 * slot, UNSEEN, with its pending attempts. */
static br_cursor_slot_t *br_cursor_grow(br_cursor_t *c, int64_t *offset)
{
    br_cursor_ring_reserve(c);
    br_cursor_slot_t *s = br_cursor_slot(c, c->next);
    int64_t off = c->next++;
    *offset = off;
    if (c->pd_head < c->pd_n && c->pd[c->pd_head].first == off) {
        br_cursor_set_state(c, s, BR_CURSOR_DONE);
        if (++c->pd[c->pd_head].first == c->pd[c->pd_head].end) {
            br_cursor_pd_pop(c);
        }
        br_cursor_pa_trim(c);
        return NULL;
    }
    if (c->pa_head < c->pa_n && c->pa[c->pa_head].offset == off) {
        s->attempt = c->pa[c->pa_head].attempt;
        br_cursor_pa_trim(c);
    }
    return s;
}

size_t br_cursor_pick(br_cursor_t *c, uint64_t now_ms, int64_t end, br_cursor_pick_t *out,
                      size_t max)
{
    size_t n = 0;
    if (max == 0) {
        return 0;
    }
    if (c->due_min <= now_ms) {
        n = br_cursor_pick_due(c, now_ms, out, max);
    }
    while (n < max && c->next < end && (uint64_t)(c->next - c->watermark) < c->conf.window) {
        int64_t off;
        br_cursor_slot_t *s = br_cursor_grow(c, &off);
        if (s) {
            br_cursor_take(c, s, off, &out[n++]);
        }
    }
    return n;
}

/* The READING slot of offset, or NULL when the offset was dropped
 * meanwhile (clamp, or a dead letter acknowledged). */
static br_cursor_slot_t *br_cursor_reading(br_cursor_t *c, int64_t offset)
{
    MQ_ASSERT(offset < c->next);
    if (offset < c->watermark) {
        return NULL;
    }
    br_cursor_slot_t *s = br_cursor_slot(c, offset);
    if (s->state == BR_CURSOR_DONE) {
        return NULL;
    }
    MQ_ASSERT(s->state == BR_CURSOR_READING);
    return s;
}

int br_cursor_deliver(br_cursor_t *c, int64_t offset, uint64_t now_ms, uint64_t invisible_ms,
                      uint32_t group_hash)
{
    br_cursor_slot_t *s = br_cursor_reading(c, offset);
    if (s == NULL) {
        return 0;
    }
    MQ_ASSERT(s->attempt < INT32_MAX);
    br_cursor_group_set(c, s, offset, group_hash);
    s->attempt++;
    s->flags = 0;
    s->due = br_cursor_sat_add(now_ms, invisible_ms);
    s->delivered_at = now_ms;
    br_cursor_set_state(c, s, BR_CURSOR_INFLIGHT);
    br_cursor_due_at(c, s->due);
    return s->attempt;
}

void br_cursor_defer(br_cursor_t *c, int64_t offset, uint64_t now_ms, uint32_t group_hash)
{
    br_cursor_slot_t *s = br_cursor_reading(c, offset);
    if (s == NULL) {
        return;
    }
    br_cursor_group_set(c, s, offset, group_hash);
    s->flags = 0;
    s->due = now_ms;
    br_cursor_set_state(c, s, BR_CURSOR_WAITING);
    br_cursor_due_at(c, now_ms);
}

void br_cursor_skip(br_cursor_t *c, int64_t offset)
{
    br_cursor_slot_t *s = br_cursor_reading(c, offset);
    if (s == NULL) {
        return;
    }
    br_cursor_done(c, s, offset);
    br_cursor_advance(c);
}

void br_cursor_unpick(br_cursor_t *c, int64_t offset)
{
    br_cursor_slot_t *s = br_cursor_reading(c, offset);
    if (s == NULL) {
        return;
    }
    /* A new offset cannot become unseen again (next moved past it): it
     * waits, visible at once, which is the same to the next pick. */
    if (s->prev == BR_CURSOR_UNSEEN) {
        s->due = 0;
    }
    s->flags = 0;
    br_cursor_set_state(c, s, BR_CURSOR_WAITING);
    br_cursor_due_at(c, s->due);
}

bool br_cursor_group_blocked(const br_cursor_t *c, uint32_t group_hash, int64_t offset)
{
    if (group_hash == 0) {
        return false;
    }
    const br_cursor_gent_t *e = br_cursor_gfind(c, group_hash);
    return e != NULL && e->first < offset;
}

/* --- acknowledgement ------------------------------------------------------------ */

/* The slot of delivery `attempt` of offset, as ack and change accept it
 * (INFLIGHT, or WAITING once expired until it is picked again), or the
 * error to answer. */
static mq_err_t br_cursor_delivery(br_cursor_t *c, int64_t offset, int attempt,
                                   br_cursor_slot_t **out)
{
    if (attempt < 1 || offset < 0) {
        return MQ_EINVAL;
    }
    if (offset >= c->next) {
        /* Not handed out since the takeover; maybe done before it. */
        return br_cursor_pd_has(c, offset) ? MQ_EEXIST : MQ_EINVAL;
    }
    if (offset < c->watermark) {
        return MQ_EEXIST;
    }
    br_cursor_slot_t *s = br_cursor_slot(c, offset);
    if (s->state == BR_CURSOR_DONE) {
        return MQ_EEXIST;
    }
    if (s->attempt != attempt) {
        return MQ_EINVAL;
    }
    *out = s;
    return MQ_OK;
}

mq_err_t br_cursor_ack(br_cursor_t *c, int64_t offset, int attempt)
{
    br_cursor_slot_t *s;
    mq_err_t err = br_cursor_delivery(c, offset, attempt, &s);
    if (err != MQ_OK) {
        return err;
    }
    /* A READING slot is being read for its next delivery: the old handle is
     * stale, unless the slot was picked as a dead letter (the owner acks it
     * with the picked attempt once it is in the DLQ). */
    if (s->state == BR_CURSOR_READING && !(s->flags & BR_CURSOR_F_DLQ)) {
        return MQ_EINVAL;
    }
    br_cursor_done(c, s, offset);
    br_cursor_advance(c);
    return MQ_OK;
}

mq_err_t br_cursor_change(br_cursor_t *c, int64_t offset, int attempt, uint64_t now_ms,
                          uint64_t invisible_ms)
{
    br_cursor_slot_t *s;
    mq_err_t err = br_cursor_delivery(c, offset, attempt, &s);
    if (err != MQ_OK) {
        return err;
    }
    if (s->state == BR_CURSOR_READING) {
        return MQ_EINVAL;
    }
    s->due = br_cursor_sat_add(now_ms, invisible_ms);
    br_cursor_set_state(c, s, BR_CURSOR_INFLIGHT);
    br_cursor_due_at(c, s->due);
    return MQ_OK;
}

uint64_t br_cursor_next_due(const br_cursor_t *c)
{
    if (c->nstate[BR_CURSOR_INFLIGHT] + c->nstate[BR_CURSOR_WAITING] == 0) {
        return UINT64_MAX;
    }
    return c->due_min;
}

/* --- records ---------------------------------------------------------------------- */

/* Room for len more bytes at the end of *buf; returns where they go. */
static uint8_t *br_cursor_rec_room(mq_buf_t **buf, size_t len)
{
    mq_buf_t *b = *buf;
    if (b == NULL) {
        b = mq_buf_new(MQ_MAX(len, 64));
    } else if (b->cap - b->len < len) {
        mq_buf_t *nb = mq_buf_new(MQ_MAX(b->cap * 2, b->len + len));
        memcpy(nb->data, b->data, b->len);
        nb->len = b->len;
        mq_buf_unref(b);
        b = nb;
    }
    *buf = b;
    uint8_t *p = b->data + b->len;
    b->len += len;
    return p;
}

void br_cursor_rec_ack(mq_buf_t **buf, const int64_t *offsets, size_t n)
{
    MQ_ASSERT(n <= UINT32_MAX);
    uint8_t *p = br_cursor_rec_room(buf, BR_CURSOR_REC_HDR + 4 + 8 * n);
    p[0] = BR_CURSOR_REC_ACK;
    p[1] = BR_CURSOR_REC_VERSION;
    mq_put_le32(p + 2, (uint32_t)n);
    p += BR_CURSOR_REC_HDR + 4;
    for (size_t i = 0; i < n; i++) {
        MQ_ASSERT(offsets[i] >= 0 && offsets[i] < INT64_MAX);
        mq_put_le64(p + 8 * i, (uint64_t)offsets[i]);
    }
}

void br_cursor_rec_attempt(mq_buf_t **buf, int64_t offset, int attempt)
{
    MQ_ASSERT(offset >= 0 && offset < INT64_MAX && attempt >= 1);
    uint8_t *p = br_cursor_rec_room(buf, BR_CURSOR_REC_HDR + BR_CURSOR_SNAP_ITEM);
    p[0] = BR_CURSOR_REC_ATTEMPT;
    p[1] = BR_CURSOR_REC_VERSION;
    mq_put_le64(p + 2, (uint64_t)offset);
    mq_put_le32(p + 10, (uint32_t)attempt);
}

/* Snapshot writer: ranges are merged as they come, in offset order. */
typedef struct br_cursor_snapw {
    uint8_t *p;
    uint32_t n;
    int64_t first, end; /* the range not written yet; first == end: none */
} br_cursor_snapw_t;

static void br_cursor_snapw_flush(br_cursor_snapw_t *w)
{
    /* A range longer than a u32 goes out as adjacent pieces. */
    while (w->first < w->end) {
        uint64_t len = MQ_MIN((uint64_t)(w->end - w->first), (uint64_t)UINT32_MAX);
        mq_put_le64(w->p, (uint64_t)w->first);
        mq_put_le32(w->p + 8, (uint32_t)len);
        w->p += BR_CURSOR_SNAP_ITEM;
        w->n++;
        w->first += (int64_t)len;
    }
}

static void br_cursor_snapw_range(br_cursor_snapw_t *w, int64_t first, int64_t end)
{
    if (w->first < w->end && w->end == first) {
        w->end = end;
        return;
    }
    br_cursor_snapw_flush(w);
    w->first = first;
    w->end = end;
}

static void br_cursor_snapw_att(br_cursor_snapw_t *w, int64_t offset, int32_t attempt)
{
    mq_put_le64(w->p, (uint64_t)offset);
    mq_put_le32(w->p + 8, (uint32_t)attempt);
    w->p += BR_CURSOR_SNAP_ITEM;
    w->n++;
}

/* Whether a slot goes into a handover snapshot as a delivery in flight. */
static bool br_cursor_snap_inflight(const br_cursor_slot_t *s, uint64_t now_ms)
{
    return s->state == BR_CURSOR_INFLIGHT && s->due > now_ms;
}

/* A snapshot record; with handover, version 2 with the deliveries in flight
 * (deadlines turned into wall-clock times). */
static void br_cursor_snap_write(const br_cursor_t *c, bool handover, uint64_t now_ms,
                                 uint64_t wall_ms, mq_buf_t **buf)
{
    size_t window = (size_t)(c->next - c->watermark);
    size_t npd = c->pd_n - c->pd_head;
    size_t npa = c->pa_n - c->pa_head;
    /* Upper bound: every second window slot starts a range; each long
     * pending range may split into u32 pieces (counted below). */
    size_t nranges = window / 2 + 1 + npd;
    for (size_t i = c->pd_head; i < c->pd_n; i++) {
        nranges += (size_t)((uint64_t)(c->pd[i].end - c->pd[i].first) / UINT32_MAX);
    }
    size_t hdr = handover ? BR_CURSOR_SNAP2_HDR : BR_CURSOR_SNAP_HDR;
    size_t max = hdr + BR_CURSOR_SNAP_ITEM * (nranges + window + npa) +
                 (handover ? BR_CURSOR_SNAP_INFL * window : 0);
    uint8_t *p = br_cursor_rec_room(buf, max);
    p[0] = BR_CURSOR_REC_SNAPSHOT;
    p[1] = handover ? BR_CURSOR_SNAP_V2 : BR_CURSOR_REC_VERSION;
    mq_put_le64(p + 2, (uint64_t)c->watermark);

    br_cursor_snapw_t w = {.p = p + hdr};
    for (int64_t off = c->watermark; off < c->next; off++) {
        if (br_cursor_slot(c, off)->state == BR_CURSOR_DONE) {
            br_cursor_snapw_range(&w, off, off + 1);
        }
    }
    for (size_t i = c->pd_head; i < c->pd_n; i++) {
        br_cursor_snapw_range(&w, c->pd[i].first, c->pd[i].end);
    }
    br_cursor_snapw_flush(&w);
    mq_put_le32(p + 10, w.n);

    /* A plain snapshot leaves first deliveries out (they are not recorded
     * either, so a takeover hands them out again); a handover knows every
     * attempt. Pending attempts were all recorded. */
    int min_attempt = handover ? 1 : 2;
    w.n = 0;
    for (int64_t off = c->watermark; off < c->next; off++) {
        const br_cursor_slot_t *s = br_cursor_slot(c, off);
        if (s->state != BR_CURSOR_DONE && s->attempt >= min_attempt &&
            !(handover && br_cursor_snap_inflight(s, now_ms))) {
            br_cursor_snapw_att(&w, off, s->attempt);
        }
    }
    size_t r = c->pd_head;
    for (size_t i = c->pa_head; i < c->pa_n; i++) {
        int64_t off = c->pa[i].offset;
        while (r < c->pd_n && c->pd[r].end <= off) {
            r++;
        }
        if (r < c->pd_n && c->pd[r].first <= off) {
            continue; /* done: its attempts no longer matter */
        }
        br_cursor_snapw_att(&w, off, c->pa[i].attempt);
    }
    mq_put_le32(p + 14, w.n);

    if (handover) {
        uint32_t n = 0;
        for (int64_t off = c->watermark; off < c->next; off++) {
            const br_cursor_slot_t *s = br_cursor_slot(c, off);
            if (!br_cursor_snap_inflight(s, now_ms)) {
                continue;
            }
            mq_put_le64(w.p, (uint64_t)off);
            mq_put_le32(w.p + 8, (uint32_t)s->attempt);
            mq_put_le32(w.p + 12, s->group);
            mq_put_le64(w.p + 16, br_cursor_sat_add(wall_ms, s->due - now_ms));
            w.p += BR_CURSOR_SNAP_INFL;
            n++;
        }
        mq_put_le32(p + 18, n);
    }
    (*buf)->len -= max - (size_t)(w.p - p);
}

void br_cursor_rec_snapshot(const br_cursor_t *c, mq_buf_t **buf)
{
    br_cursor_snap_write(c, false, 0, 0, buf);
}

void br_cursor_rec_handover(const br_cursor_t *c, uint64_t now_ms, uint64_t wall_ms, mq_buf_t **buf)
{
    br_cursor_snap_write(c, true, now_ms, wall_ms, buf);
}

/* Forgets everything: the cursor starts over at watermark. */
static void br_cursor_reset(br_cursor_t *c, int64_t watermark)
{
    if (c->slots != NULL) {
        memset(c->slots, 0, c->cap * sizeof(*c->slots));
    }
    memset(c->nstate, 0, sizeof(c->nstate));
    if (c->groups != NULL) {
        memset(c->groups, 0, c->gcap * sizeof(*c->groups));
    }
    c->gn = 0;
    c->pd_head = c->pd_n = 0;
    c->pa_head = c->pa_n = 0;
    c->due_min = UINT64_MAX;
    c->watermark = watermark;
    c->next = watermark;
}

/* A delivery in flight at a handover: the window grows up to it (the
 * offsets passed on the way are what pick would hand out next, so they
 * wait, visible at once), and it is in flight until due_ms. */
static void br_cursor_restore_inflight(br_cursor_t *c, int64_t offset, int32_t attempt,
                                       uint32_t group, uint64_t now_ms, uint64_t due_ms)
{
    while (c->next <= offset) {
        int64_t off;
        br_cursor_slot_t *s = br_cursor_grow(c, &off);
        if (!s) {
            continue;
        }
        s->prev = BR_CURSOR_UNSEEN;
        s->due = 0;
        br_cursor_set_state(c, s, BR_CURSOR_WAITING);
        br_cursor_due_at(c, 0);
    }
    br_cursor_slot_t *s = br_cursor_slot(c, offset);
    if (s->state != BR_CURSOR_WAITING) {
        return; /* done meanwhile (a checked record never says so) */
    }
    br_cursor_group_set(c, s, offset, group);
    s->attempt = attempt;
    s->due = due_ms;
    s->delivered_at = now_ms;
    br_cursor_set_state(c, s, BR_CURSOR_INFLIGHT);
    br_cursor_due_at(c, due_ms);
}

static mq_err_t br_cursor_replay_snapshot(br_cursor_t *c, const uint8_t *rec, size_t len,
                                          uint64_t now_ms, uint64_t wall_ms)
{
    bool v2 = rec[1] == BR_CURSOR_SNAP_V2;
    size_t hdr = v2 ? BR_CURSOR_SNAP2_HDR : BR_CURSOR_SNAP_HDR;
    if (len < hdr) {
        return MQ_ECORRUPT;
    }
    uint64_t wm = mq_get_le64(rec + 2);
    uint32_t nranges = mq_get_le32(rec + 10);
    uint32_t natt = mq_get_le32(rec + 14);
    uint32_t ninfl = v2 ? mq_get_le32(rec + 18) : 0;
    if (wm >= INT64_MAX || len != hdr + BR_CURSOR_SNAP_ITEM * ((uint64_t)nranges + natt) +
                                      BR_CURSOR_SNAP_INFL * (uint64_t)ninfl) {
        return MQ_ECORRUPT;
    }
    const uint8_t *ranges = rec + hdr;
    const uint8_t *atts = ranges + (size_t)nranges * BR_CURSOR_SNAP_ITEM;
    const uint8_t *infl = atts + (size_t)natt * BR_CURSOR_SNAP_ITEM;
    /* Check everything before touching the cursor. */
    uint64_t prev_end = wm;
    for (uint32_t i = 0; i < nranges; i++) {
        uint64_t first = mq_get_le64(ranges + (size_t)i * BR_CURSOR_SNAP_ITEM);
        uint32_t n = mq_get_le32(ranges + (size_t)i * BR_CURSOR_SNAP_ITEM + 8);
        if (n == 0 || first < prev_end || first > (uint64_t)INT64_MAX - 1 - n) {
            return MQ_ECORRUPT;
        }
        prev_end = first + n;
    }
    uint64_t prev_off = wm;
    for (uint32_t i = 0; i < natt; i++) {
        uint64_t off = mq_get_le64(atts + (size_t)i * BR_CURSOR_SNAP_ITEM);
        uint32_t attempt = mq_get_le32(atts + (size_t)i * BR_CURSOR_SNAP_ITEM + 8);
        if (off >= INT64_MAX || (i > 0 ? off <= prev_off : off < prev_off) || attempt == 0 ||
            attempt > INT32_MAX) {
            return MQ_ECORRUPT;
        }
        prev_off = off;
    }
    /* In-flight offsets ascend, lie within a window's reach of the
     * watermark, and are neither done nor among the attempts. */
    prev_off = wm;
    uint32_t k = 0; /* ranges ascend too: one merged walk */
    for (uint32_t i = 0; i < ninfl; i++) {
        const uint8_t *it = infl + (size_t)i * BR_CURSOR_SNAP_INFL;
        uint64_t off = mq_get_le64(it);
        uint32_t attempt = mq_get_le32(it + 8);
        if (off >= INT64_MAX || (i > 0 ? off <= prev_off : off < prev_off) || attempt == 0 ||
            attempt > INT32_MAX || off - wm >= BR_CURSOR_WINDOW_MAX) {
            return MQ_ECORRUPT;
        }
        while (k < nranges && mq_get_le64(ranges + (size_t)k * BR_CURSOR_SNAP_ITEM) +
                                      mq_get_le32(ranges + (size_t)k * BR_CURSOR_SNAP_ITEM + 8) <=
                                  off) {
            k++;
        }
        if (k < nranges && mq_get_le64(ranges + (size_t)k * BR_CURSOR_SNAP_ITEM) <= off) {
            return MQ_ECORRUPT;
        }
        prev_off = off;
    }

    br_cursor_reset(c, (int64_t)wm);
    for (uint32_t i = 0; i < nranges; i++) {
        int64_t first = (int64_t)mq_get_le64(ranges + (size_t)i * BR_CURSOR_SNAP_ITEM);
        uint32_t n = mq_get_le32(ranges + (size_t)i * BR_CURSOR_SNAP_ITEM + 8);
        br_cursor_pd_add(c, first, first + (int64_t)n);
    }
    for (uint32_t i = 0; i < natt; i++) {
        int64_t off = (int64_t)mq_get_le64(atts + (size_t)i * BR_CURSOR_SNAP_ITEM);
        int32_t attempt = (int32_t)mq_get_le32(atts + (size_t)i * BR_CURSOR_SNAP_ITEM + 8);
        br_cursor_pa_set(c, off, attempt);
    }
    br_cursor_advance(c);
    for (uint32_t i = 0; i < ninfl; i++) {
        const uint8_t *it = infl + (size_t)i * BR_CURSOR_SNAP_INFL;
        uint64_t deadline = mq_get_le64(it + 16);
        /* Wall-clock deadline -> this process's monotonic clock. */
        uint64_t due = deadline > wall_ms ? br_cursor_sat_add(now_ms, deadline - wall_ms) : now_ms;
        br_cursor_restore_inflight(c, (int64_t)mq_get_le64(it), (int32_t)mq_get_le32(it + 8),
                                   mq_get_le32(it + 12), now_ms, due);
    }
    return MQ_OK;
}

static void br_cursor_replay_ack(br_cursor_t *c, int64_t offset)
{
    if (offset < c->watermark) {
        return;
    }
    if (offset < c->next) {
        br_cursor_slot_t *s = br_cursor_slot(c, offset);
        if (s->state != BR_CURSOR_DONE) {
            br_cursor_done(c, s, offset);
        }
    } else {
        br_cursor_pd_add(c, offset, offset + 1);
    }
    br_cursor_advance(c);
}

mq_err_t br_cursor_replay(br_cursor_t *c, const uint8_t *rec, size_t len, uint64_t now_ms,
                          uint64_t wall_ms)
{
    if (rec == NULL || len < BR_CURSOR_REC_HDR ||
        !(rec[1] == BR_CURSOR_REC_VERSION ||
          (rec[0] == BR_CURSOR_REC_SNAPSHOT && rec[1] == BR_CURSOR_SNAP_V2))) {
        return MQ_ECORRUPT;
    }
    switch (rec[0]) {
    case BR_CURSOR_REC_ACK: {
        if (len < BR_CURSOR_REC_HDR + 4) {
            return MQ_ECORRUPT;
        }
        uint32_t n = mq_get_le32(rec + 2);
        if (len != BR_CURSOR_REC_HDR + 4 + 8 * (uint64_t)n) {
            return MQ_ECORRUPT;
        }
        const uint8_t *p = rec + BR_CURSOR_REC_HDR + 4;
        for (uint32_t i = 0; i < n; i++) {
            if (mq_get_le64(p + 8 * (size_t)i) >= INT64_MAX) {
                return MQ_ECORRUPT;
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            br_cursor_replay_ack(c, (int64_t)mq_get_le64(p + 8 * (size_t)i));
        }
        return MQ_OK;
    }
    case BR_CURSOR_REC_ATTEMPT: {
        if (len != BR_CURSOR_REC_HDR + BR_CURSOR_SNAP_ITEM) {
            return MQ_ECORRUPT;
        }
        uint64_t off = mq_get_le64(rec + 2);
        uint32_t attempt = mq_get_le32(rec + 10);
        if (off >= INT64_MAX || attempt == 0 || attempt > INT32_MAX) {
            return MQ_ECORRUPT;
        }
        if ((int64_t)off >= c->next) {
            br_cursor_pa_set(c, (int64_t)off, (int32_t)attempt);
        } else if ((int64_t)off >= c->watermark) {
            /* A window a handover snapshot restored: a later delivery of
             * an offset it had (its acks carry this attempt). */
            br_cursor_slot_t *s = br_cursor_slot(c, (int64_t)off);
            if (s->state != BR_CURSOR_DONE && s->attempt < (int32_t)attempt) {
                s->attempt = (int32_t)attempt;
            }
        }
        return MQ_OK;
    }
    case BR_CURSOR_REC_SNAPSHOT:
        return br_cursor_replay_snapshot(c, rec, len, now_ms, wall_ms);
    default:
        return MQ_ECORRUPT;
    }
}

void br_cursor_clamp(br_cursor_t *c, int64_t min)
{
    if (min <= c->watermark) {
        return;
    }
    int64_t stop = MQ_MIN(min, c->next);
    for (int64_t off = c->watermark; off < stop; off++) {
        br_cursor_slot_t *s = br_cursor_slot(c, off);
        if (s->state != BR_CURSOR_DONE) {
            br_cursor_done(c, s, off);
        }
    }
    br_cursor_advance(c);
    if (c->watermark >= min) {
        return;
    }
    /* The window is empty and below min: restart there, without what is
     * pending below it. */
    c->watermark = c->next = min;
    while (c->pd_head < c->pd_n && c->pd[c->pd_head].end <= min) {
        br_cursor_pd_pop(c);
    }
    if (c->pd_head < c->pd_n) {
        c->pd[c->pd_head].first = MQ_MAX(c->pd[c->pd_head].first, min);
    }
    br_cursor_advance(c);
}

/* --- stats ------------------------------------------------------------------------ */

void br_cursor_stats(const br_cursor_t *c, br_cursor_stats_t *out)
{
    out->watermark = c->watermark;
    out->next = c->next;
    out->inflight = c->nstate[BR_CURSOR_READING] + c->nstate[BR_CURSOR_INFLIGHT];
    out->waiting = c->nstate[BR_CURSOR_WAITING];
    uint64_t done = c->nstate[BR_CURSOR_DONE];
    for (size_t i = c->pd_head; i < c->pd_n; i++) {
        done += (uint64_t)(c->pd[i].end - c->pd[i].first);
    }
    out->done_above = (uint32_t)MQ_MIN(done, (uint64_t)UINT32_MAX);
}

/* --- receipt handles ------------------------------------------------------------ */

static uint32_t br_handle_crc(const char *text, size_t len, const char *topic, const char *group)
{
    uint32_t crc = mq_crc32c(0, text, len);
    crc = mq_crc32c(crc, topic, strlen(topic) + 1);
    return mq_crc32c(crc, group, strlen(group));
}

void br_handle_encode(const br_handle_t *h, const char *topic, const char *group,
                      char out[BR_HANDLE_MAX])
{
    MQ_ASSERT(h->queue >= 0 && h->offset >= 0 && h->attempt >= 1);
    int n = snprintf(out, BR_HANDLE_MAX,
                     BR_HANDLE_PREFIX "%" PRIx32 ".%" PRIx64 ".%" PRIx32 ".%" PRIx64,
                     (uint32_t)h->queue, (uint64_t)h->offset, (uint32_t)h->attempt, h->deadline_ms);
    MQ_ASSERT(n > 0 && n < BR_HANDLE_MAX - 9);
    uint32_t crc = br_handle_crc(out, (size_t)n, topic, group);
    snprintf(out + n, BR_HANDLE_MAX - (size_t)n, ".%08" PRIx32, crc);
}

/* Parses one lowercase hex field of 1..digits characters without leading
 * zeros, ended by a dot. */
static bool br_handle_field(const char **sp, size_t digits, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    size_t n = 0;
    for (; *s != '.'; s++, n++) {
        int d;
        if (*s >= '0' && *s <= '9') {
            d = *s - '0';
        } else if (*s >= 'a' && *s <= 'f') {
            d = *s - 'a' + 10;
        } else {
            return false;
        }
        if (n == digits || (n == 1 && v == 0)) {
            return false;
        }
        v = v << 4 | (uint64_t)d;
    }
    if (n == 0) {
        return false;
    }
    *sp = s + 1;
    *out = v;
    return true;
}

mq_err_t br_handle_decode(const char *s, const char *topic, const char *group, br_handle_t *out)
{
    MQ_ASSERT(topic != NULL && group != NULL);
    if (s == NULL || strnlen(s, BR_HANDLE_MAX) >= BR_HANDLE_MAX ||
        strncmp(s, BR_HANDLE_PREFIX, strlen(BR_HANDLE_PREFIX)) != 0) {
        return MQ_EINVAL;
    }
    const char *p = s + strlen(BR_HANDLE_PREFIX);
    uint64_t queue, offset, attempt, deadline, crc;
    if (!br_handle_field(&p, 8, &queue) || !br_handle_field(&p, 16, &offset) ||
        !br_handle_field(&p, 8, &attempt) || !br_handle_field(&p, 16, &deadline)) {
        return MQ_EINVAL;
    }
    size_t text_len = (size_t)(p - 1 - s);
    /* The CRC always has its 8 digits, leading zeros included. */
    if (strlen(p) != 8) {
        return MQ_EINVAL;
    }
    crc = 0;
    for (; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            crc = crc << 4 | (uint64_t)(*p - '0');
        } else if (*p >= 'a' && *p <= 'f') {
            crc = crc << 4 | (uint64_t)(*p - 'a' + 10);
        } else {
            return MQ_EINVAL;
        }
    }
    if (queue > INT32_MAX || offset > INT64_MAX || attempt == 0 || attempt > INT32_MAX ||
        crc != br_handle_crc(s, text_len, topic, group)) {
        return MQ_EINVAL;
    }
    out->queue = (int32_t)queue;
    out->offset = (int64_t)offset;
    out->attempt = (int32_t)attempt;
    out->deadline_ms = deadline;
    return MQ_OK;
}
