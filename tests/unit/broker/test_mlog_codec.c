/*
 * The managed log's codecs without ZooKeeper or bookies: the queue record
 * (encode -> decode is the identity on random records; the encoded text is
 * the documented one; every class of bad input is MQ_ECORRUPT with a reason;
 * truncations and byte flips, with the checksum recomputed so the parser
 * itself is exercised, never crash; the encoder refuses what it could not
 * read back), the entry format (round trip, reading from an offset, every
 * class of corruption, truncations and flips), the znode path rules, and the
 * entry search (finds the right entry in O(log n) probes on random ledgers,
 * with and without a known end).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br_mlog_int.h"
#include "mq_crc32c.h"
#include "mq_test.h"
#include "mq_util.h"

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;

static uint64_t t_rand(void)
{
    t_rng = mq_mix64(t_rng);
    return t_rng;
}

static uint64_t t_below(uint64_t n)
{
    return n ? t_rand() % n : 0;
}

/* --- queue record ---------------------------------------------------------- */

/* A random valid record: n ledgers tiling the offsets, the last maybe open. */
static void t_random_record(br_mlog_info_t *rec, size_t n, bool open_last)
{
    memset(rec, 0, sizeof(*rec));
    rec->min_offset = (int64_t)t_below(1000000000000ull);
    rec->nledgers = n;
    rec->ledgers = n ? calloc(n, sizeof(*rec->ledgers)) : NULL;
    uint64_t id = 1 + t_below(1000);
    int64_t first = rec->min_offset;
    for (size_t i = 0; i < n; i++) {
        br_mlog_ledger_info_t *l = &rec->ledgers[i];
        l->ledger = id;
        id += 1 + t_below(100000);
        l->first_offset = first;
        l->ctime_ms = 1700000000000ull + t_below(1000000000);
        if (open_last && i + 1 == n) {
            l->entries = -1;
            l->messages = -1;
            l->mtime_ms = 0;
        } else {
            l->entries = (int64_t)t_below(60000);
            l->messages = l->entries ? l->entries + (int64_t)t_below(1000000) : 0;
            l->mtime_ms = l->ctime_ms + t_below(100000000);
        }
        if (l->entries > 0) {
            first += l->messages;
        }
    }
}

static bool t_record_equal(const br_mlog_info_t *a, const br_mlog_info_t *b)
{
    if (a->min_offset != b->min_offset || a->nledgers != b->nledgers) {
        return false;
    }
    for (size_t i = 0; i < a->nledgers; i++) {
        const br_mlog_ledger_info_t *x = &a->ledgers[i];
        const br_mlog_ledger_info_t *y = &b->ledgers[i];
        if (x->ledger != y->ledger || x->first_offset != y->first_offset ||
            x->entries != y->entries || x->messages != y->messages || x->ctime_ms != y->ctime_ms ||
            x->mtime_ms != y->mtime_ms) {
            return false;
        }
    }
    return true;
}

static void test_record_round_trip(void)
{
    for (int round = 0; round < 300; round++) {
        br_mlog_info_t rec;
        t_random_record(&rec, (size_t)t_below(40), t_below(2) == 0);
        char *data;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(br_mlog_record_encode(&rec, &data, &len), MQ_OK);
        CU_ASSERT_EQUAL(strlen(data), len);
        br_mlog_info_t back;
        char why[256];
        CU_ASSERT_EQUAL_FATAL(br_mlog_record_decode(data, len, &back, why, sizeof(why)), MQ_OK);
        CU_ASSERT_TRUE(t_record_equal(&rec, &back));
        CU_ASSERT_EQUAL(back.version, -1);
        CU_ASSERT_EQUAL(back.max_offset, br_mlog_record_end(&rec));
        br_mlog_info_t copy;
        br_mlog_info_copy(&copy, &back);
        CU_ASSERT_TRUE(t_record_equal(&copy, &back));
        br_mlog_info_fini(&copy);
        br_mlog_info_fini(&back);
        br_mlog_info_fini(&rec);
        free(data);
    }
}

static void test_record_text(void)
{
    br_mlog_ledger_info_t ls[2] = {
        {17, 0, 1200, 50000, 1763735000123ull, 1763735999000ull},
        {23, 50000, -1, -1, 1763735999000ull, 0},
    };
    br_mlog_info_t rec = {0, -1, ls, 2, -1};
    char *data;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(br_mlog_record_encode(&rec, &data, &len), MQ_OK);
    const char *body = "# LedgerMQ queue log\n"
                       "version=1\n"
                       "minOffset=0\n"
                       "ledger=17,0,1200,50000,1763735000123,1763735999000\n"
                       "ledger=23,50000,-1,-1,1763735999000,0\n";
    char want[512];
    snprintf(want, sizeof(want), "%schecksum=%08x\n", body, mq_crc32c(0, body, strlen(body)));
    CU_ASSERT_STRING_EQUAL(data, want);
    CU_ASSERT_EQUAL(br_mlog_record_end(&rec), -1);
    ls[1].entries = 10;
    ls[1].messages = 30;
    ls[1].mtime_ms = 1;
    CU_ASSERT_EQUAL(br_mlog_record_end(&rec), 50030);
    br_mlog_info_t empty = {42, 0, NULL, 0, -1};
    CU_ASSERT_EQUAL(br_mlog_record_end(&empty), 42);
    free(data);
}

/* body + its checksum line. */
static char *t_seal(const char *body)
{
    size_t n = strlen(body);
    char *out = malloc(n + 32);
    snprintf(out, n + 32, "%schecksum=%08x\n", body, mq_crc32c(0, body, n));
    return out;
}

static void t_expect_corrupt(const char *data, size_t len, const char *reason)
{
    br_mlog_info_t out;
    char why[256];
    mq_err_t err = br_mlog_record_decode(data, len, &out, why, sizeof(why));
    if (err != MQ_ECORRUPT || (reason && !strstr(why, reason))) {
        fprintf(stderr, "\n  record '%.*s': err=%s why='%s', want '%s'\n", (int)MQ_MIN(len, 200u),
                data, mq_err_name(err), why, reason ? reason : "");
    }
    CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
    if (reason) {
        CU_ASSERT_PTR_NOT_NULL(strstr(why, reason));
    }
    CU_ASSERT_EQUAL(out.nledgers, 0);
    CU_ASSERT_PTR_NULL(out.ledgers);
}

static void t_expect_corrupt_body(const char *body, const char *reason)
{
    char *data = t_seal(body);
    t_expect_corrupt(data, strlen(data), reason);
    free(data);
}

#define T_HEAD "# LedgerMQ queue log\nversion=1\n"

static void test_record_corrupt(void)
{
    static const struct {
        const char *body;
        const char *reason;
    } cases[] = {
        {"# LedgerMQ ledger metadata\nversion=1\nminOffset=0\n", "bad first line"},
        {"# LedgerMQ queue log\n", "no version line"},
        {"# LedgerMQ queue log\nminOffset=0\n", "expected version=1"},
        {"# LedgerMQ queue log\nversion=2\nminOffset=0\n", "expected version=1"},
        {"# LedgerMQ queue log\nversion=01\nminOffset=0\n", "expected version=1"},
        {T_HEAD, "missing minOffset"},
        {T_HEAD "minOffset=0\nminOffset=0\n", "duplicate minOffset"},
        {T_HEAD "minOffset=-1\n", "negative"},
        {T_HEAD "minOffset=-0\n", "bad minOffset"},
        {T_HEAD "minOffset=007\n", "bad minOffset"},
        {T_HEAD "minOffset=99999999999999999999\n", "bad minOffset"},
        {T_HEAD "minOffset=0\nfoo=1\n", "unknown key"},
        {T_HEAD "minOffset=0\njunk\n", "no '='"},
        {T_HEAD "minOffset=0\nchecksum=00000000\n", "unknown key"},
        {T_HEAD "minOffset=0\nledger=1,0,1,1,5\n", "6 fields"},
        {T_HEAD "minOffset=0\nledger=1,0,1,1,5,6,7\n", "6 fields"},
        {T_HEAD "minOffset=0\nledger=1,0,1,1,5,\n", "bad number"},
        {T_HEAD "minOffset=0\nledger=1,0,1,x,5,6\n", "bad number"},
        {T_HEAD "minOffset=0\nledger=1,0,+1,1,5,6\n", "bad number"},
        {T_HEAD "minOffset=0\nledger=1,0,1,1,-5,6\n", "bad number"},
        {T_HEAD "minOffset=0\nledger=0,0,1,1,5,6\n", "out of range"},
        {T_HEAD "minOffset=0\nledger=10000000000000000000,0,1,1,5,6\n", "out of range"},
        {T_HEAD "minOffset=0\nledger=5,0,1,1,5,6\nledger=5,1,1,1,5,6\n", "not above"},
        {T_HEAD "minOffset=0\nledger=5,0,1,1,5,6\nledger=4,1,1,1,5,6\n", "not above"},
        {T_HEAD "minOffset=0\nledger=5,1,1,1,5,6\n", "tile"},
        {T_HEAD "minOffset=0\nledger=5,0,2,10,5,6\nledger=6,9,1,1,5,6\n", "tile"},
        {T_HEAD "minOffset=0\nledger=5,0,2,10,5,6\nledger=6,11,1,1,5,6\n", "tile"},
        {T_HEAD "minOffset=0\nledger=5,0,-1,-1,5,0\nledger=6,0,1,1,5,6\n", "not the last"},
        {T_HEAD "minOffset=0\nledger=5,0,-1,3,5,0\n", "open but"},
        {T_HEAD "minOffset=0\nledger=5,0,-1,-1,5,9\n", "open but"},
        {T_HEAD "minOffset=0\nledger=5,0,-2,-1,5,0\n", "do not agree"},
        {T_HEAD "minOffset=0\nledger=5,0,3,2,5,6\n", "do not agree"},
        {T_HEAD "minOffset=0\nledger=5,0,0,2,5,6\n", "do not agree"},
        {T_HEAD "minOffset=0\nledger=5,0,2,-1,5,6\n", "do not agree"},
        {T_HEAD "minOffset=0\nledger=5,0,1,1,9223372036854775808,6\n", "time out of range"},
        {T_HEAD "minOffset=9223372036854775800\nledger=5,9223372036854775800,1,100,5,6\n",
         "past the largest"},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        t_expect_corrupt_body(cases[i].body, cases[i].reason);
    }
    /* Framing. */
    t_expect_corrupt("", 0, "empty");
    const char *ok_body = T_HEAD "minOffset=0\n";
    char *good = t_seal(ok_body);
    size_t glen = strlen(good);
    br_mlog_info_t out;
    CU_ASSERT_EQUAL(br_mlog_record_decode(good, glen, &out, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(out.nledgers, 0);
    CU_ASSERT_EQUAL(out.max_offset, 0);
    br_mlog_info_fini(&out);
    t_expect_corrupt(good, glen - 1, "newline");
    char *bad = strdup(good);
    bad[3] ^= 1;
    t_expect_corrupt(bad, glen, "checksum mismatch");
    bad[3] ^= 1;
    bad[glen - 2] = 'G';
    t_expect_corrupt(bad, glen, "bad checksum line");
    memcpy(bad + glen - 9, "ABCDEF01", 8);
    t_expect_corrupt(bad, glen, "bad checksum line");
    free(bad);
    bad = malloc(glen + 1);
    memcpy(bad, good, glen);
    bad[5] = '\0';
    t_expect_corrupt(bad, glen, "NUL byte");
    free(bad);
    t_expect_corrupt(ok_body, strlen(ok_body), "missing checksum");
    t_expect_corrupt("garbage", 7, NULL);
    free(good);
    /* Too many ledgers: refused before anything is allocated. */
    size_t n = BR_MLOG_MAX_LEDGERS + 1;
    size_t cap = strlen(T_HEAD) + 32 + n * 8;
    char *big = malloc(cap);
    size_t at = (size_t)snprintf(big, cap, T_HEAD "minOffset=0\n");
    for (size_t i = 0; i < n; i++) {
        memcpy(big + at, "ledger=\n", 8);
        at += 8;
    }
    big[at] = '\0';
    t_expect_corrupt_body(big, "ledgers (at most");
    free(big);
}

/* Every prefix, and every single-byte change of a real record (checksum
 * recomputed over the changed body), decodes or is refused; never crashes;
 * whatever decodes re-encodes. Exact-size copies so ASan sees overreads. */
static void test_record_mutations(void)
{
    br_mlog_info_t rec;
    t_random_record(&rec, 4, true);
    char *data;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(br_mlog_record_encode(&rec, &data, &len), MQ_OK);
    size_t body = len - 18; /* "checksum=xxxxxxxx\n" */
    for (size_t cut = 0; cut < len; cut++) {
        char *p = malloc(cut ? cut : 1);
        memcpy(p, data, cut);
        br_mlog_info_t out;
        CU_ASSERT_EQUAL(br_mlog_record_decode(p, cut, &out, NULL, 0), MQ_ECORRUPT);
        free(p);
    }
    static const char subst[] = {'0', '1', '9', '-', ',', '=', '\n', 'x', ' ', '\0', (char)0xff};
    int ok = 0;
    for (size_t i = 0; i < body; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            char *b = malloc(body + 1);
            memcpy(b, data, body);
            b[i] = subst[k];
            b[body] = '\0';
            char *sealed = malloc(body + 32);
            memcpy(sealed, b, body);
            int n = snprintf(sealed + body, 32, "checksum=%08x\n", mq_crc32c(0, b, body));
            size_t slen = body + (size_t)n;
            char *exact = malloc(slen);
            memcpy(exact, sealed, slen);
            br_mlog_info_t out;
            mq_err_t err = br_mlog_record_decode(exact, slen, &out, NULL, 0);
            CU_ASSERT_TRUE(err == MQ_OK || err == MQ_ECORRUPT);
            if (err == MQ_OK) {
                ok++;
                char *again;
                CU_ASSERT_EQUAL(br_mlog_record_encode(&out, &again, NULL), MQ_OK);
                free(again);
                br_mlog_info_fini(&out);
            }
            free(exact);
            free(sealed);
            free(b);
        }
    }
    /* Some digit changes still make a valid record. */
    CU_ASSERT_TRUE(ok > 0);
    free(data);
    br_mlog_info_fini(&rec);
}

static void test_record_encoder_refuses(void)
{
    br_mlog_ledger_info_t ls[2] = {
        {5, 0, 2, 10, 1, 2},
        {6, 10, -1, -1, 3, 0},
    };
    br_mlog_info_t rec = {0, -1, ls, 2, -1};
    char *data = NULL;
    CU_ASSERT_EQUAL(br_mlog_record_encode(&rec, &data, NULL), MQ_OK);
    free(data);
    ls[1].first_offset = 11;
    CU_ASSERT_EQUAL(br_mlog_record_encode(&rec, &data, NULL), MQ_EINVAL);
    ls[1].first_offset = 10;
    ls[0].entries = -1;
    ls[0].messages = -1;
    ls[0].mtime_ms = 0;
    CU_ASSERT_EQUAL(br_mlog_record_encode(&rec, &data, NULL), MQ_EINVAL);
    ls[0].entries = 2;
    ls[0].messages = 10;
    rec.min_offset = -3;
    CU_ASSERT_EQUAL(br_mlog_record_encode(&rec, &data, NULL), MQ_EINVAL);
    rec.min_offset = 0;
    ls[1].ledger = 5;
    CU_ASSERT_EQUAL(br_mlog_record_encode(&rec, &data, NULL), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_record_encode(NULL, &data, NULL), MQ_EINVAL);
}

static void test_path(void)
{
    char p[BR_MLOG_PATH_MAX];
    CU_ASSERT_EQUAL(br_mlog_path("/ledgermq", "orders", 3, p, sizeof(p)), MQ_OK);
    CU_ASSERT_STRING_EQUAL(p, "/ledgermq/topics/orders/queues/3");
    CU_ASSERT_EQUAL(br_mlog_path("/x/", "%RETRY%g_1", 0, p, sizeof(p)), MQ_OK);
    CU_ASSERT_STRING_EQUAL(p, "/x/topics/%RETRY%g_1/queues/0");
    CU_ASSERT_EQUAL(br_mlog_path("/x", "a/b", 0, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", "", 0, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", ".", 0, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", "..", 0, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", "a\nb", 0, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", "t", -1, p, sizeof(p)), MQ_EINVAL);
    CU_ASSERT_EQUAL(br_mlog_path("/x", "t", 1, p, 8), MQ_EINVAL);
    char longt[BR_MLOG_TOPIC_MAX + 2];
    memset(longt, 'a', sizeof(longt) - 1);
    longt[sizeof(longt) - 1] = '\0';
    CU_ASSERT_EQUAL(br_mlog_path("/x", longt, 1, p, sizeof(p)), MQ_EINVAL);
}

/* --- entries ------------------------------------------------------------------ */

typedef struct t_entry {
    uint8_t *p;
    size_t len;
    size_t n;
    uint8_t **datas;
    size_t *lens;
    int64_t base;
} t_entry_t;

static void t_entry_make(t_entry_t *e, size_t n, int64_t base, size_t maxlen)
{
    e->n = n;
    e->base = base;
    e->datas = calloc(n, sizeof(*e->datas));
    e->lens = calloc(n, sizeof(*e->lens));
    for (size_t i = 0; i < n; i++) {
        e->lens[i] = (size_t)t_below(maxlen + 1);
        e->datas[i] = malloc(e->lens[i] ? e->lens[i] : 1);
        for (size_t k = 0; k < e->lens[i]; k++) {
            e->datas[i][k] = (uint8_t)t_rand();
        }
    }
    e->len = br_mlog_entry_size(e->lens, n);
    e->p = malloc(e->len);
    br_mlog_entry_encode(e->p, base, 1763735000123ull, (const void *const *)e->datas, e->lens, n);
}

static void t_entry_free(t_entry_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->datas[i]);
    }
    free(e->datas);
    free(e->lens);
    free(e->p);
}

static void test_entry_round_trip(void)
{
    for (int round = 0; round < 200; round++) {
        t_entry_t e;
        size_t n = 1 + (size_t)t_below(50);
        t_entry_make(&e, n, (int64_t)t_below(1ull << 40), 300);
        size_t want = BR_MLOG_ENTRY_HDR;
        for (size_t i = 0; i < n; i++) {
            want += BR_MLOG_MSG_HDR + e.lens[i];
        }
        CU_ASSERT_EQUAL(e.len, want);
        br_mlog_entry_hdr_t h;
        br_mlog_msg_t *msgs = calloc(n, sizeof(*msgs));
        size_t got = 0;
        CU_ASSERT_EQUAL_FATAL(br_mlog_entry_decode(e.p, e.len, &h, 0, msgs, n, &got), MQ_OK);
        CU_ASSERT_EQUAL(h.count, n);
        CU_ASSERT_EQUAL(h.base, e.base);
        CU_ASSERT_EQUAL(h.time_ms, 1763735000123ull);
        CU_ASSERT_EQUAL_FATAL(got, n);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(msgs[i].offset, e.base + (int64_t)i);
            CU_ASSERT_EQUAL(msgs[i].len, e.lens[i]);
            CU_ASSERT_TRUE(msgs[i].len == 0 || memcmp(msgs[i].data, e.datas[i], msgs[i].len) == 0);
        }
        /* From an offset inside, at most max. */
        size_t from = (size_t)t_below(n);
        size_t max = 1 + (size_t)t_below(n);
        CU_ASSERT_EQUAL(
            br_mlog_entry_decode(e.p, e.len, NULL, e.base + (int64_t)from, msgs, max, &got), MQ_OK);
        CU_ASSERT_EQUAL(got, MQ_MIN(max, n - from));
        if (got > 0) {
            CU_ASSERT_EQUAL(msgs[0].offset, e.base + (int64_t)from);
            CU_ASSERT_EQUAL(msgs[0].len, e.lens[from]);
        }
        /* Header only. */
        CU_ASSERT_EQUAL(br_mlog_entry_decode(e.p, e.len, &h, 0, NULL, 0, NULL), MQ_OK);
        free(msgs);
        t_entry_free(&e);
    }
}

static mq_err_t t_decode(const uint8_t *p, size_t len)
{
    /* An exact-size copy, so that an overread is an ASan report. */
    uint8_t *c = malloc(len ? len : 1);
    memcpy(c, p, len);
    br_mlog_msg_t msgs[8];
    size_t n;
    mq_err_t err = br_mlog_entry_decode(c, len, NULL, 0, msgs, 8, &n);
    free(c);
    return err;
}

static void test_entry_corrupt(void)
{
    t_entry_t e;
    t_entry_make(&e, 5, 1000, 40);
    uint8_t *p = malloc(e.len + 8);
    CU_ASSERT_EQUAL(t_decode(e.p, e.len), MQ_OK);
    /* Every truncation. */
    for (size_t cut = 0; cut < e.len; cut++) {
        CU_ASSERT_EQUAL(t_decode(e.p, cut), MQ_ECORRUPT);
    }
    /* A trailing byte. */
    memcpy(p, e.p, e.len);
    p[e.len] = 0;
    CU_ASSERT_EQUAL(t_decode(p, e.len + 1), MQ_ECORRUPT);
    /* Magic, version. */
    memcpy(p, e.p, e.len);
    p[0] ^= 0xff;
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    memcpy(p, e.p, e.len);
    p[1] = 2;
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    /* Counts: zero, one too many, one too few, huge. */
    uint32_t counts[] = {0, 6, 4, 0xffffffffu, 0x40000000u};
    for (size_t i = 0; i < MQ_ARRAY_LEN(counts); i++) {
        memcpy(p, e.p, e.len);
        mq_put_le32(p + 2, counts[i]);
        CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    }
    /* Bases: negative, and a range past INT64_MAX. */
    memcpy(p, e.p, e.len);
    mq_put_le64(p + 6, (uint64_t)-1);
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    mq_put_le64(p + 6, (uint64_t)INT64_MAX - 2);
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    mq_put_le64(p + 6, (uint64_t)INT64_MAX - 5);
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_OK);
    /* A message length running past the end, or huge. */
    memcpy(p, e.p, e.len);
    mq_put_le32(p + BR_MLOG_ENTRY_HDR, (uint32_t)e.len);
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    mq_put_le32(p + BR_MLOG_ENTRY_HDR, 0xffffffffu);
    CU_ASSERT_EQUAL(t_decode(p, e.len), MQ_ECORRUPT);
    /* Every single-byte change decodes or is refused, never crashes. */
    for (size_t i = 0; i < e.len; i++) {
        for (int v = 0; v < 256; v += 51) {
            memcpy(p, e.p, e.len);
            p[i] = (uint8_t)v;
            mq_err_t err = t_decode(p, e.len);
            CU_ASSERT_TRUE(err == MQ_OK || err == MQ_ECORRUPT);
        }
    }
    CU_ASSERT_EQUAL(br_mlog_entry_decode(NULL, 0, NULL, 0, NULL, 0, NULL), MQ_ECORRUPT);
    CU_ASSERT_EQUAL(br_mlog_entry_decode(NULL, 5, NULL, 0, NULL, 0, NULL), MQ_EINVAL);
    free(p);
    t_entry_free(&e);
}

/* --- search ---------------------------------------------------------------------- */

/* Runs a search for every offset of a synthetic ledger; returns the most
 * probes one took. */
static int t_search_all(const int64_t *bases, const uint32_t *counts, int64_t n, int64_t first,
                        bool known_end)
{
    int64_t end = bases[n - 1] + counts[n - 1];
    int worst = 0;
    for (int64_t off = first; off < end; off++) {
        br_mlog_search_t s;
        br_mlog_search_init(&s, n, first, known_end ? end : INT64_MAX);
        int probes = 0;
        int r = 0;
        int64_t e = -1;
        while (r != 1) {
            e = br_mlog_search_probe(&s, off);
            CU_ASSERT_FATAL(e >= 0 && e < n);
            probes++;
            r = br_mlog_search_apply(&s, off, e, bases[e], counts[e]);
            CU_ASSERT_FATAL(r >= 0);
        }
        CU_ASSERT_TRUE(bases[e] <= off && off < bases[e] + counts[e]);
        worst = MQ_MAX(worst, probes);
    }
    return worst;
}

static void test_search(void)
{
    for (int round = 0; round < 30; round++) {
        int64_t n = 1 + (int64_t)t_below(400);
        int64_t *bases = malloc((size_t)n * sizeof(*bases));
        uint32_t *counts = malloc((size_t)n * sizeof(*counts));
        int64_t first = (int64_t)t_below(100000);
        int64_t at = first;
        /* Skewed sizes: mostly 1, sometimes big, so interpolation misses. */
        for (int64_t i = 0; i < n; i++) {
            bases[i] = at;
            counts[i] = t_below(4) == 0 ? 1 + (uint32_t)t_below(50) : 1;
            at += counts[i];
        }
        int bound = 2 * (int)ceil(log2((double)n + 1)) + 1;
        int worst = t_search_all(bases, counts, n, first, true);
        CU_ASSERT_TRUE(worst <= bound);
        worst = t_search_all(bases, counts, n, first, false);
        CU_ASSERT_TRUE(worst <= bound);
        /* Offsets outside: no probe. */
        br_mlog_search_t s;
        br_mlog_search_init(&s, n, first, at);
        CU_ASSERT_EQUAL(br_mlog_search_probe(&s, at), -1);
        CU_ASSERT_EQUAL(br_mlog_search_probe(&s, first - 1), -1);
        /* An entry that contradicts the bounds is refused. */
        br_mlog_search_init(&s, n, first, at);
        CU_ASSERT_EQUAL(br_mlog_search_apply(&s, first, 0, first - 1, 1), -1);
        CU_ASSERT_EQUAL(br_mlog_search_apply(&s, first, 0, first, 0), -1);
        CU_ASSERT_EQUAL(br_mlog_search_apply(&s, first, n, first, 1), -1);
        CU_ASSERT_EQUAL(br_mlog_search_apply(&s, first, 0, at, 1), -1);
        free(bases);
        free(counts);
    }
    /* Even entries: interpolation lands on the first probe. */
    int64_t bases[1000];
    uint32_t counts[1000];
    for (int i = 0; i < 1000; i++) {
        bases[i] = 7 * i;
        counts[i] = 7;
    }
    CU_ASSERT_EQUAL(t_search_all(bases, counts, 1000, 0, true), 1);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"record: round trip of random records", test_record_round_trip},
        {"record: encoded form is the documented text", test_record_text},
        {"record: every class of bad input is corrupt", test_record_corrupt},
        {"record: truncations and byte changes never crash", test_record_mutations},
        {"record: the encoder refuses what breaks a rule", test_record_encoder_refuses},
        {"record: znode path rules", test_path},
        {"entry: round trip, reading from an offset", test_entry_round_trip},
        {"entry: every class of corruption", test_entry_corrupt},
        {"search: O(log n) probes, right entry", test_search},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("mlog_codec", tests, NULL, NULL);
}
