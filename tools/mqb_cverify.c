/*
 * mqb_cverify: see mqb_cverify.h.
 *
 * The log's message ids sit back to back in one arena, indexed by an
 * open-addressing table; each FIFO message group's records are kept in
 * stored order (queue, offset), with the position below which all were
 * delivered, so the order check of a first delivery is O(1) amortised.
 */
#include "mqb_cverify.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mq_crc32c.h"
#include "mq_util.h"
#include "mqc_vlog.h"

#define MQB_CV_EXAMPLES 5

/* One message of the verify log. */
typedef struct mqb_crec {
    int32_t queue;
    int64_t offset;
    uint32_t crc;
    uint32_t id_off; /* into the id arena */
    int32_t group;   /* message group index, -1 for normal messages */
    uint32_t gpos;   /* position in its group's stored order */
    uint32_t deliveries;
    uint8_t state;
} mqb_crec_t;

typedef struct mqb_cgroup {
    uint32_t start; /* its records in gorder[start, start + n) */
    uint32_t n;
    uint32_t next; /* positions below were all delivered */
} mqb_cgroup_t;

struct mqb_cverify {
    mqb_crec_t *recs;
    size_t n;
    char *ids; /* NUL-terminated ids back to back */
    size_t ids_len;
    size_t ids_cap;
    uint32_t *table; /* open addressing: record index + 1, 0 free */
    size_t mask;
    mqb_cgroup_t *groups;
    size_t ngroups;
    uint32_t *gorder;
    /* results */
    uint64_t acked;   /* records whose acknowledgement was confirmed */
    uint64_t unknown; /* records whose acknowledgement went unanswered */
    uint64_t dup_raw, dup_noack, dup_unconfirmed, dup_after_ack;
    uint64_t dup_attempt1; /* repeats that came with delivery attempt 1 */
    uint64_t out_of_order, corrupt, stored_twice, unexpected;
    char ooo_examples[MQB_CV_EXAMPLES][160];
    char dup_examples[MQB_CV_EXAMPLES][160];
};

static uint64_t mqb_cv_hash(const char *s)
{
    /* FNV-1a, then mixed. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return mq_mix64(h);
}

static const char *mqb_cv_id(const mqb_cverify_t *v, uint32_t rec)
{
    return v->ids + v->recs[rec].id_off;
}

/* The record of message id, or -1. */
static int64_t mqb_cv_find(const mqb_cverify_t *v, const char *id)
{
    if (!v->table) {
        return -1;
    }
    for (size_t i = mqb_cv_hash(id) & v->mask;; i = (i + 1) & v->mask) {
        uint32_t slot = v->table[i];
        if (slot == 0) {
            return -1;
        }
        if (strcmp(mqb_cv_id(v, slot - 1), id) == 0) {
            return slot - 1;
        }
    }
}

typedef struct mqb_cload {
    mqb_cverify_t *v;
    size_t cap;
    char **gnames; /* group names during the load */
    uint32_t *gtable;
    size_t gmask;
    size_t gcap;
} mqb_cload_t;

/* The index of group name, added when new. */
static int32_t mqb_cv_group(mqb_cload_t *l, const char *name)
{
    mqb_cverify_t *v = l->v;
    if (v->ngroups * 2 >= l->gmask + 1) {
        size_t size = (l->gmask + 1) * 2;
        uint32_t *t = mq_calloc(size, sizeof(*t));
        for (size_t g = 0; g < v->ngroups; g++) {
            size_t i = mqb_cv_hash(l->gnames[g]) & (size - 1);
            while (t[i]) {
                i = (i + 1) & (size - 1);
            }
            t[i] = (uint32_t)g + 1;
        }
        free(l->gtable);
        l->gtable = t;
        l->gmask = size - 1;
    }
    size_t i = mqb_cv_hash(name) & l->gmask;
    for (; l->gtable[i]; i = (i + 1) & l->gmask) {
        if (strcmp(l->gnames[l->gtable[i] - 1], name) == 0) {
            return (int32_t)(l->gtable[i] - 1);
        }
    }
    if (v->ngroups == l->gcap) {
        l->gcap = l->gcap ? l->gcap * 2 : 64;
        l->gnames = mq_realloc(l->gnames, l->gcap * sizeof(*l->gnames));
    }
    l->gnames[v->ngroups] = mq_strdup(name);
    l->gtable[i] = (uint32_t)v->ngroups + 1;
    return (int32_t)v->ngroups++;
}

static bool mqb_cv_load_rec(const mqc_vrec_t *rec, void *arg)
{
    mqb_cload_t *l = arg;
    mqb_cverify_t *v = l->v;
    if (v->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        v->recs = mq_realloc(v->recs, l->cap * sizeof(*v->recs));
    }
    size_t idlen = strlen(rec->message_id) + 1;
    if (v->ids_len + idlen > v->ids_cap) {
        v->ids_cap = MQ_MAX(v->ids_cap * 2, v->ids_len + idlen + 65536);
        v->ids = mq_realloc(v->ids, v->ids_cap);
    }
    mqb_crec_t *r = &v->recs[v->n++];
    memset(r, 0, sizeof(*r));
    r->queue = rec->queue;
    r->offset = rec->offset;
    r->crc = rec->crc;
    r->id_off = (uint32_t)v->ids_len;
    memcpy(v->ids + v->ids_len, rec->message_id, idlen);
    v->ids_len += idlen;
    r->group = rec->group[0] ? mqb_cv_group(l, rec->group) : -1;
    return v->n < UINT32_MAX - 1 && v->ids_len < UINT32_MAX - 256;
}

typedef struct mqb_csort {
    int32_t group;
    int32_t queue;
    int64_t offset;
    uint32_t rec;
} mqb_csort_t;

static int mqb_cv_sort_cmp(const void *a, const void *b)
{
    const mqb_csort_t *x = a;
    const mqb_csort_t *y = b;
    if (x->group != y->group) {
        return x->group < y->group ? -1 : 1;
    }
    if (x->queue != y->queue) {
        return x->queue < y->queue ? -1 : 1;
    }
    if (x->offset != y->offset) {
        return x->offset < y->offset ? -1 : 1;
    }
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

mqb_cverify_t *mqb_cverify_load(const char *path)
{
    mqb_cverify_t *v = mq_calloc(1, sizeof(*v));
    mqb_cload_t l = {.v = v};
    l.gtable = mq_calloc(64, sizeof(*l.gtable));
    l.gmask = 63;
    uint64_t bad = 0;
    mq_err_t err = mqc_vlog_read(path, mqb_cv_load_rec, &l, &bad);
    for (size_t g = 0; g < v->ngroups; g++) {
        free(l.gnames[g]);
    }
    free(l.gnames);
    free(l.gtable);
    if (err == MQ_ECORRUPT) {
        fprintf(stderr, "mqbench consume: %s: malformed line %" PRIu64 "\n", path, bad);
        mqb_cverify_free(v);
        return NULL;
    }
    if (err != MQ_OK) {
        fprintf(stderr, "mqbench consume: cannot read %s: %s\n", path, mq_err_str(err));
        mqb_cverify_free(v);
        return NULL;
    }
    size_t size = 64;
    while (size < v->n * 2) {
        size *= 2;
    }
    v->table = mq_calloc(size, sizeof(*v->table));
    v->mask = size - 1;
    for (size_t r = 0; r < v->n; r++) {
        const char *id = mqb_cv_id(v, (uint32_t)r);
        size_t i = mqb_cv_hash(id) & v->mask;
        for (; v->table[i]; i = (i + 1) & v->mask) {
            if (strcmp(mqb_cv_id(v, v->table[i] - 1), id) == 0) {
                fprintf(stderr, "mqbench consume: %s: message id %s appears twice\n", path, id);
                mqb_cverify_free(v);
                return NULL;
            }
        }
        v->table[i] = (uint32_t)r + 1;
    }
    /* Stored order per message group. */
    v->groups = mq_calloc(v->ngroups ? v->ngroups : 1, sizeof(*v->groups));
    mqb_csort_t *s = mq_malloc((v->n ? v->n : 1) * sizeof(*s));
    size_t ns = 0;
    for (size_t r = 0; r < v->n; r++) {
        if (v->recs[r].group >= 0) {
            s[ns++] =
                (mqb_csort_t){v->recs[r].group, v->recs[r].queue, v->recs[r].offset, (uint32_t)r};
        }
    }
    qsort(s, ns, sizeof(*s), mqb_cv_sort_cmp);
    v->gorder = mq_malloc((ns ? ns : 1) * sizeof(*v->gorder));
    for (size_t i = 0; i < ns; i++) {
        mqb_cgroup_t *g = &v->groups[s[i].group];
        if (g->n == 0) {
            g->start = (uint32_t)i;
        }
        v->recs[s[i].rec].gpos = g->n++;
        v->gorder[i] = s[i].rec;
    }
    free(s);
    return v;
}

static void mqb_cv_example(char (*ex)[160], uint64_t count, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mqb_cv_example(char (*ex)[160], uint64_t count, const char *fmt, ...)
{
    if (count > MQB_CV_EXAMPLES) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex[count - 1], sizeof(ex[0]), fmt, ap);
    va_end(ap);
}

int64_t mqb_cverify_deliver(mqb_cverify_t *v, const mqc_delivery_t *d, bool ack)
{
    int64_t ri = mqb_cv_find(v, d->message_id);
    if (ri < 0) {
        v->unexpected++;
        return -1;
    }
    mqb_crec_t *r = &v->recs[ri];
    if (r->queue != d->queue_id || r->offset != d->queue_offset) {
        /* The same message id at another place: stored twice (a producer
         * retry whose first attempt was stored after all), not a
         * redelivery of the acknowledged one. */
        v->stored_twice++;
        return -1;
    }
    if (mq_crc32c(0, d->body, d->body_len) != r->crc) {
        v->corrupt++;
    }
    if (r->deliveries++ > 0) {
        v->dup_raw++;
        /* A redelivery counts its attempts; a repeat at attempt 1 was
         * handed out anew (a takeover that did not know it was in flight). */
        if (d->attempt <= 1) {
            v->dup_attempt1++;
        }
        switch (r->state) {
        case MQB_CV_NOACK:
            v->dup_noack++;
            break;
        case MQB_CV_UNKNOWN:
            v->dup_unconfirmed++;
            v->unknown--;
            break;
        case MQB_CV_ACKED:
            v->dup_after_ack++;
            mqb_cv_example(v->dup_examples, v->dup_after_ack,
                           "%s (queue %d offset %" PRId64 ") delivered again (attempt %d) after a "
                           "confirmed ack",
                           d->message_id, d->queue_id, d->queue_offset, d->attempt);
            v->acked--;
            break;
        default:
            v->dup_unconfirmed++;
            break;
        }
        r->state = ack ? MQB_CV_PENDING : MQB_CV_NOACK;
        return ri;
    }
    if (r->group >= 0) {
        mqb_cgroup_t *g = &v->groups[r->group];
        if (r->gpos == g->next) {
            while (g->next < g->n && v->recs[v->gorder[g->start + g->next]].deliveries > 0) {
                g->next++;
            }
        } else {
            /* An earlier message of its group was never delivered. */
            v->out_of_order++;
            const mqb_crec_t *want = &v->recs[v->gorder[g->start + g->next]];
            mqb_cv_example(v->ooo_examples, v->out_of_order,
                           "%s (queue %d offset %" PRId64
                           ") first delivered before %s (offset %" PRId64 ") of its group %s",
                           d->message_id, d->queue_id, d->queue_offset,
                           mqb_cv_id(v, v->gorder[g->start + g->next]), want->offset, d->group);
        }
    }
    r->state = ack ? MQB_CV_PENDING : MQB_CV_NOACK;
    return ri;
}

void mqb_cverify_ack(mqb_cverify_t *v, int64_t ri, int outcome)
{
    if (ri < 0) {
        return;
    }
    mqb_crec_t *r = &v->recs[ri];
    /* A later delivery may have moved the state on (and owns it now) only
     * if it came before this answer; then this answer is for an older
     * handle and says nothing about the latest delivery. */
    if (r->state == MQB_CV_PENDING) {
        r->state = (uint8_t)outcome;
        v->acked += outcome == MQB_CV_ACKED;
        v->unknown += outcome == MQB_CV_UNKNOWN;
    }
}

void mqb_cverify_free(mqb_cverify_t *v)
{
    if (!v) {
        return;
    }
    free(v->recs);
    free(v->ids);
    free(v->table);
    free(v->groups);
    free(v->gorder);
    free(v);
}

size_t mqb_cverify_size(const mqb_cverify_t *v)
{
    return v->n;
}

uint64_t mqb_cverify_acked(const mqb_cverify_t *v)
{
    return v->acked;
}

uint64_t mqb_cverify_unanswered(const mqb_cverify_t *v)
{
    return v->unknown;
}

bool mqb_cverify_report(const mqb_cverify_t *v, bool order)
{
    uint64_t missing = 0;
    uint64_t unacked = 0;
    const char *first_missing = NULL;
    for (size_t r = 0; r < v->n; r++) {
        if (v->recs[r].deliveries == 0) {
            if (missing++ == 0) {
                first_missing = mqb_cv_id(v, (uint32_t)r);
            }
        } else if (v->recs[r].state != MQB_CV_ACKED && v->recs[r].state != MQB_CV_UNKNOWN) {
            unacked++;
        }
    }
    printf("verify: %zu messages in the log, %" PRIu64 " acknowledged, %" PRIu64
           " with an unanswered ack, %" PRIu64 " missing, %" PRIu64
           " delivered but not acknowledged at the end\n",
           v->n, v->acked, v->unknown, missing, unacked);
    printf("duplicates: %" PRIu64 " (explained %" PRIu64 ": %" PRIu64
           " not acked on purpose, %" PRIu64 " ack failed or unanswered; after a confirmed "
           "ack: %" PRIu64 ")\n",
           v->dup_raw, v->dup_noack + v->dup_unconfirmed, v->dup_noack, v->dup_unconfirmed,
           v->dup_after_ack);
    printf("repeats at delivery attempt 1: %" PRIu64 "\n", v->dup_attempt1);
    if (order) {
        printf("order: %" PRIu64 " out of order in %zu message group(s)\n", v->out_of_order,
               v->ngroups);
    } else {
        printf("order: not checked (the group is not FIFO; --fifo checks anyway)\n");
    }
    printf("corrupt: %" PRIu64 "; stored twice (producer retries): %" PRIu64
           "; not in the log: %" PRIu64 "\n",
           v->corrupt, v->stored_twice, v->unexpected);
    if (first_missing) {
        printf("first missing: %s\n", first_missing);
    }
    for (uint64_t i = 0; order && i < MQ_MIN(v->out_of_order, MQB_CV_EXAMPLES); i++) {
        printf("out of order: %s\n", v->ooo_examples[i]);
    }
    for (uint64_t i = 0; i < MQ_MIN(v->dup_after_ack, MQB_CV_EXAMPLES); i++) {
        printf("duplicate: %s\n", v->dup_examples[i]);
    }
    return missing || v->corrupt || v->dup_after_ack || (order && v->out_of_order);
}
