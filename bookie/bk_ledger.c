/*
 * bk_ledger: an open-addressing hash table (linear probing, power-of-two
 * capacity, load <= 1/2) of ledger states behind one mutex. Ledgers are never
 * removed here yet (garbage collection of deleted ledgers comes later), so
 * there are no tombstones.
 *
 * Dirty tracking: every change stamps the ledger with the next value of a
 * global change counter; a snapshot for a checkpoint collects ledgers stamped
 * after the last persisted counter value, and a successful checkpoint moves
 * that value to the snapshot's counter.
 */
#include "bk_ledger.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mq_log.h"
#include "mq_util.h"

typedef struct bk_ledger_slot {
    uint64_t id; /* 0 = empty; ledger ids are stored + 1 so 0 can be a ledger */
    bk_ledger_rec_t rec;
    uint64_t changed_seq;
    bool fence_durable;
} bk_ledger_slot_t;

struct bk_ledgers {
    pthread_mutex_t lock;
    bk_ledger_slot_t *slots;
    size_t cap;
    size_t count;
    uint64_t seq;           /* last change stamp handed out */
    uint64_t persisted_seq; /* changes up to here are in the index */
};

bk_ledgers_t *bk_ledgers_new(void)
{
    bk_ledgers_t *lt = mq_calloc(1, sizeof(*lt));
    pthread_mutex_init(&lt->lock, NULL);
    lt->cap = 1024;
    lt->slots = mq_calloc(lt->cap, sizeof(*lt->slots));
    return lt;
}

void bk_ledgers_free(bk_ledgers_t *lt)
{
    if (!lt) {
        return;
    }
    pthread_mutex_destroy(&lt->lock);
    free(lt->slots);
    free(lt);
}

static bk_ledger_slot_t *bk_ledgers_probe(bk_ledger_slot_t *slots, size_t cap, uint64_t key)
{
    size_t mask = cap - 1;
    size_t i = (size_t)mq_mix64(key) & mask;
    while (slots[i].id != 0 && slots[i].id != key) {
        i = (i + 1) & mask;
    }
    return &slots[i];
}

static void bk_ledgers_grow(bk_ledgers_t *lt)
{
    size_t ncap = lt->cap * 2;
    bk_ledger_slot_t *ns = mq_calloc(ncap, sizeof(*ns));
    for (size_t i = 0; i < lt->cap; i++) {
        if (lt->slots[i].id != 0) {
            *bk_ledgers_probe(ns, ncap, lt->slots[i].id) = lt->slots[i];
        }
    }
    free(lt->slots);
    lt->slots = ns;
    lt->cap = ncap;
}

/* Finds the ledger; creates an empty one when create is set. Lock held. */
static bk_ledger_slot_t *bk_ledgers_find(bk_ledgers_t *lt, uint64_t ledger_id, bool create,
                                         bool *created)
{
    uint64_t key = ledger_id + 1;
    bk_ledger_slot_t *s = bk_ledgers_probe(lt->slots, lt->cap, key);
    if (s->id == key) {
        return s;
    }
    if (!create) {
        return NULL;
    }
    if ((lt->count + 1) * 2 > lt->cap) {
        bk_ledgers_grow(lt);
        s = bk_ledgers_probe(lt->slots, lt->cap, key);
    }
    memset(s, 0, sizeof(*s));
    s->id = key;
    s->rec.lac = -1;
    lt->count++;
    if (created) {
        *created = true;
    }
    return s;
}

static void bk_ledgers_touch(bk_ledgers_t *lt, bk_ledger_slot_t *s)
{
    s->changed_seq = ++lt->seq;
}

static bool bk_ledgers_key_eq(const bk_ledger_rec_t *rec, const uint8_t *key, size_t key_len)
{
    return rec->master_key_len == key_len && memcmp(rec->master_key, key, key_len) == 0;
}

void bk_ledgers_load(bk_ledgers_t *lt, uint64_t ledger_id, const bk_ledger_rec_t *rec)
{
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, true, NULL);
    s->rec = *rec;
    s->fence_durable = rec->fenced;
    pthread_mutex_unlock(&lt->lock);
}

mq_err_t bk_ledgers_admit_add(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key,
                              size_t key_len, bool recovery, int64_t lac,
                              bk_ledger_verdict_t *verdict)
{
    MQ_ASSERT(key_len > 0 && key_len <= BK_MASTER_KEY_MAX);
    mq_err_t err = MQ_OK;
    bool created = false;
    *verdict = BK_LEDGER_OK;
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, true, &created);
    if (created) {
        memcpy(s->rec.master_key, key, key_len);
        s->rec.master_key_len = (uint8_t)key_len;
        *verdict = BK_LEDGER_CREATED;
        bk_ledgers_touch(lt, s);
    } else if (!bk_ledgers_key_eq(&s->rec, key, key_len)) {
        err = MQ_EUNAUTHORIZED;
    } else if (s->rec.fenced && !recovery) {
        err = MQ_EFENCED;
    }
    if (err == MQ_OK && lac > s->rec.lac) {
        s->rec.lac = lac;
        bk_ledgers_touch(lt, s);
    }
    pthread_mutex_unlock(&lt->lock);
    return err;
}

mq_err_t bk_ledgers_fence(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key, size_t key_len,
                          bk_ledger_verdict_t *verdict, bool *was_durable)
{
    MQ_ASSERT(key_len > 0 && key_len <= BK_MASTER_KEY_MAX);
    bool created = false;
    *verdict = BK_LEDGER_OK;
    *was_durable = false;
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, true, &created);
    if (created) {
        memcpy(s->rec.master_key, key, key_len);
        s->rec.master_key_len = (uint8_t)key_len;
        *verdict = BK_LEDGER_CREATED;
    } else if (!bk_ledgers_key_eq(&s->rec, key, key_len)) {
        pthread_mutex_unlock(&lt->lock);
        return MQ_EUNAUTHORIZED;
    }
    if (!s->rec.fenced) {
        s->rec.fenced = true;
        bk_ledgers_touch(lt, s);
    }
    *was_durable = s->fence_durable;
    pthread_mutex_unlock(&lt->lock);
    return MQ_OK;
}

void bk_ledgers_fence_durable(bk_ledgers_t *lt, uint64_t ledger_id)
{
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, false, NULL);
    if (s) {
        s->fence_durable = true;
    }
    pthread_mutex_unlock(&lt->lock);
}

void bk_ledgers_replay_key(bk_ledgers_t *lt, uint64_t ledger_id, const uint8_t *key, size_t key_len)
{
    if (key_len == 0 || key_len > BK_MASTER_KEY_MAX) {
        return;
    }
    pthread_mutex_lock(&lt->lock);
    bool created = false;
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, true, &created);
    if (created) {
        memcpy(s->rec.master_key, key, key_len);
        s->rec.master_key_len = (uint8_t)key_len;
        bk_ledgers_touch(lt, s);
    }
    pthread_mutex_unlock(&lt->lock);
}

void bk_ledgers_replay_fence(bk_ledgers_t *lt, uint64_t ledger_id)
{
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, false, NULL);
    if (s && !s->rec.fenced) {
        s->rec.fenced = true;
        s->fence_durable = true;
        bk_ledgers_touch(lt, s);
    }
    pthread_mutex_unlock(&lt->lock);
}

void bk_ledgers_replay_lac(bk_ledgers_t *lt, uint64_t ledger_id, int64_t lac)
{
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, false, NULL);
    if (s && lac > s->rec.lac) {
        s->rec.lac = lac;
        bk_ledgers_touch(lt, s);
    }
    pthread_mutex_unlock(&lt->lock);
}

mq_err_t bk_ledgers_get(bk_ledgers_t *lt, uint64_t ledger_id, bk_ledger_rec_t *out)
{
    pthread_mutex_lock(&lt->lock);
    bk_ledger_slot_t *s = bk_ledgers_find(lt, ledger_id, false, NULL);
    if (s && out) {
        *out = s->rec;
    }
    pthread_mutex_unlock(&lt->lock);
    return s ? MQ_OK : MQ_ENOLEDGER;
}

size_t bk_ledgers_count(bk_ledgers_t *lt)
{
    pthread_mutex_lock(&lt->lock);
    size_t n = lt->count;
    pthread_mutex_unlock(&lt->lock);
    return n;
}

void bk_ledgers_dirty(bk_ledgers_t *lt, bk_ledger_update_t **out, size_t *count, uint64_t *token)
{
    pthread_mutex_lock(&lt->lock);
    size_t n = 0;
    size_t cap = 16;
    bk_ledger_update_t *ups = mq_malloc(cap * sizeof(*ups));
    for (size_t i = 0; i < lt->cap; i++) {
        bk_ledger_slot_t *s = &lt->slots[i];
        if (s->id == 0 || s->changed_seq <= lt->persisted_seq) {
            continue;
        }
        if (n == cap) {
            cap *= 2;
            ups = mq_realloc(ups, cap * sizeof(*ups));
        }
        ups[n].ledger_id = s->id - 1;
        ups[n].rec = s->rec;
        n++;
    }
    *token = lt->seq;
    pthread_mutex_unlock(&lt->lock);
    *out = ups;
    *count = n;
}

void bk_ledgers_persisted(bk_ledgers_t *lt, uint64_t token)
{
    pthread_mutex_lock(&lt->lock);
    if (token > lt->persisted_seq) {
        lt->persisted_seq = token;
    }
    pthread_mutex_unlock(&lt->lock);
}
