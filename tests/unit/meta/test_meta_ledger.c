/*
 * meta_ledger without ZooKeeper: encode -> decode is the identity on random
 * records (many segments, custom keys with odd values); every class of bad
 * input is MQ_ECORRUPT with a precise reason; truncations at every length,
 * single-byte flips and byte replacements (with the checksum recomputed, so
 * the parser itself is exercised) either decode to a valid record or are
 * rejected, never crash (run under ASan with exact-size buffers); the encoder
 * refuses what could not be read back; znode path layout; segment lookup;
 * replace_bookie; custom keys; copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_ledger.h"
#include "meta_store.h"
#include "mq_crc32c.h"
#include "mq_test.h"
#include "mq_util.h"

/* --- helpers ------------------------------------------------------------ */

static uint64_t t_rng = 0x1234567887654321ull;

static uint64_t t_rand(void)
{
    t_rng = mq_mix64(t_rng);
    return t_rng;
}

static uint64_t t_below(uint64_t n)
{
    return n ? t_rand() % n : 0;
}

static const char t_digest[] = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";

static bool t_md_equal(const meta_ledger_t *a, const meta_ledger_t *b)
{
    if (a->id != b->id || a->ensemble_size != b->ensemble_size ||
        a->write_quorum != b->write_quorum || a->ack_quorum != b->ack_quorum ||
        a->state != b->state || a->last_entry_id != b->last_entry_id || a->length != b->length ||
        a->ctime_ms != b->ctime_ms || strcmp(a->master_key_digest, b->master_key_digest) != 0 ||
        a->nsegments != b->nsegments || a->ncustom != b->ncustom) {
        return false;
    }
    for (size_t s = 0; s < a->nsegments; s++) {
        if (a->segments[s].first_entry != b->segments[s].first_entry) {
            return false;
        }
        for (int i = 0; i < a->ensemble_size; i++) {
            if (strcmp(a->segments[s].bookies[i], b->segments[s].bookies[i]) != 0) {
                return false;
            }
        }
    }
    for (size_t i = 0; i < a->ncustom; i++) {
        if (strcmp(a->custom[i].key, b->custom[i].key) != 0 ||
            strcmp(a->custom[i].value, b->custom[i].value) != 0) {
            return false;
        }
    }
    return true;
}

/* A random bookie id: 1..127 bytes of anything but ',', '\n' and NUL. */
static void t_random_id(char *out)
{
    size_t n = 1 + t_below(t_below(4) == 0 ? META_BOOKIE_ID_MAX - 1 : 24);
    for (size_t i = 0; i < n; i++) {
        char c;
        do {
            c = (char)(1 + t_below(255));
        } while (c == ',' || c == '\n');
        out[i] = c;
    }
    out[n] = '\0';
}

static void t_random_record(meta_ledger_t *md, size_t max_segments, size_t max_custom)
{
    static const char keych[] = "ABCXYZabcxyz0189._-";
    int e = 1 + (int)t_below(META_MAX_ENSEMBLE);
    int qw = 1 + (int)t_below((uint64_t)e);
    int qa = 1 + (int)t_below((uint64_t)qw);
    char ids[META_MAX_ENSEMBLE][META_BOOKIE_ID_MAX];
    const char *ens[META_MAX_ENSEMBLE];
    for (int i = 0; i < e; i++) {
        snprintf(ids[i], sizeof(ids[i]), "bookie-%d:3181", i);
        ens[i] = ids[i];
    }
    char digest[META_DIGEST_HEX + 1];
    for (int i = 0; i < META_DIGEST_HEX; i++) {
        digest[i] = "0123456789abcdefABCDEF"[t_below(22)];
    }
    digest[META_DIGEST_HEX] = '\0';
    meta_ledger_init(md, 1 + t_below(9999999999999999999ull), e, qw, qa, ens, digest);
    md->state = (meta_ledger_state_t)(1 + t_below(3));
    md->last_entry_id = (int64_t)t_below(1000000000000ull) - 1;
    md->length = t_below(1ull << 62);
    md->ctime_ms = t_below(1ull << 45);
    size_t nseg = 1 + t_below(max_segments);
    int64_t first = 0;
    for (size_t s = 0; s < nseg; s++) {
        if (s > 0) {
            first += 1 + (int64_t)t_below(t_below(2) ? 10 : 1000000);
            meta_ledger_replace_bookie(md, first, (int)t_below((uint64_t)e), "placeholder");
        }
        meta_segment_t *seg = &md->segments[md->nsegments - 1];
        for (int i = 0; i < e; i++) {
            bool dup;
            do {
                t_random_id(seg->bookies[i]);
                dup = false;
                for (int k = 0; k < i; k++) {
                    dup = dup || strcmp(seg->bookies[k], seg->bookies[i]) == 0;
                }
            } while (dup);
        }
    }
    size_t ncustom = t_below(max_custom + 1);
    for (size_t c = 0; c < ncustom; c++) {
        char key[40];
        size_t kn = 1 + t_below(30);
        for (size_t i = 0; i < kn; i++) {
            key[i] = keych[t_below(sizeof(keych) - 1)];
        }
        key[kn] = '\0';
        char value[120];
        size_t vn = t_below(100);
        for (size_t i = 0; i < vn; i++) {
            char ch;
            do {
                ch = (char)(1 + t_below(255));
            } while (ch == '\n');
            value[i] = ch;
        }
        value[vn] = '\0';
        /* set_custom overwrites a repeated key: keys stay distinct. */
        meta_ledger_set_custom(md, key, value);
    }
}

/* Decodes exactly len bytes from a buffer of exactly that size (ASan sees
 * any read past it). */
static mq_err_t t_decode_exact(const char *data, size_t len, meta_ledger_t *out, char *why,
                               size_t why_len)
{
    char *copy = mq_malloc(len ? len : 1);
    memcpy(copy, data, len);
    mq_err_t err = meta_ledger_decode(copy, len, out, why, why_len);
    free(copy);
    return err;
}

/* A decode that succeeded must be a record the encoder accepts, and a
 * fixed point of encode -> decode. */
static void t_check_valid(const meta_ledger_t *md)
{
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(md, &text, &len), MQ_OK);
    meta_ledger_t again;
    CU_ASSERT_EQUAL(meta_ledger_decode(text, len, &again, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(t_md_equal(md, &again));
    meta_ledger_fini(&again);
    free(text);
}

/* The body (everything above the checksum line) plus its checksum line. */
static char *t_seal(const char *body, size_t *len)
{
    size_t n = strlen(body);
    char *out = mq_malloc(n + 32);
    memcpy(out, body, n);
    *len = n + (size_t)snprintf(out + n, 32, "checksum=%08x\n", mq_crc32c(0, body, n));
    return out;
}

/* --- round trips --------------------------------------------------------- */

static void test_round_trip_random(void)
{
    for (int round = 0; round < 300; round++) {
        meta_ledger_t md;
        t_random_record(&md, round % 10 == 0 ? 300 : 6, round % 3 == 0 ? 20 : 2);
        char *text = NULL;
        size_t len = 0;
        CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(&md, &text, &len), MQ_OK);
        CU_ASSERT_EQUAL(strlen(text), len);
        meta_ledger_t back;
        char why[256];
        mq_err_t err = t_decode_exact(text, len, &back, why, sizeof(why));
        CU_ASSERT_EQUAL(err, MQ_OK);
        if (err != MQ_OK) {
            fprintf(stderr, "round %d: %s\n", round, why);
        } else {
            CU_ASSERT_TRUE(t_md_equal(&md, &back));
            CU_ASSERT_EQUAL(back.version, -1);
            /* And the text is canonical: encoding the decoded copy gives
             * the same bytes. */
            char *text2;
            size_t len2;
            CU_ASSERT_EQUAL(meta_ledger_encode(&back, &text2, &len2), MQ_OK);
            CU_ASSERT_TRUE(len2 == len && memcmp(text, text2, len) == 0);
            free(text2);
        }
        meta_ledger_fini(&back);
        meta_ledger_fini(&md);
        free(text);
    }
}

static void test_round_trip_many_segments(void)
{
    const char *ens[] = {"a:1", "b:1", "c:1"};
    meta_ledger_t md;
    meta_ledger_init(&md, 42, 3, 2, 2, ens, t_digest);
    for (int s = 1; s < 5000; s++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d:1", s);
        meta_ledger_replace_bookie(&md, (int64_t)s * 7, s % 3, id);
    }
    CU_ASSERT_EQUAL(md.nsegments, 5000);
    for (int c = 0; c < 500; c++) {
        char key[32];
        char value[32];
        snprintf(key, sizeof(key), "k.%d", c);
        snprintf(value, sizeof(value), "v=%d,x", c);
        meta_ledger_set_custom(&md, key, value);
    }
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(&md, &text, &len), MQ_OK);
    meta_ledger_t back;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_decode(text, len, &back, NULL, 0), MQ_OK);
    CU_ASSERT_TRUE(t_md_equal(&md, &back));
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&back, "k.499"), "v=499,x");
    meta_ledger_fini(&back);
    meta_ledger_fini(&md);
    free(text);
}

static void test_encoded_form(void)
{
    const char *ens[] = {"b1:3181", "b2:3181", "b3:3181"};
    meta_ledger_t md;
    meta_ledger_init(&md, 17, 3, 2, 2, ens, t_digest);
    md.ctime_ms = 1763735000123ull;
    meta_ledger_replace_bookie(&md, 1500, 1, "b4:3181");
    meta_ledger_set_custom(&md, "topic", "orders");
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(meta_ledger_encode(&md, &text, &len), MQ_OK);
    char body[1024];
    snprintf(body, sizeof(body),
             "# LedgerMQ ledger metadata\nversion=1\nid=17\nensembleSize=3\nwriteQuorumSize=2\n"
             "ackQuorumSize=2\nstate=OPEN\nlastEntryId=-1\nlength=0\nctime=1763735000123\n"
             "masterKeyDigest=%s\nensemble.0=b1:3181,b2:3181,b3:3181\n"
             "ensemble.1500=b1:3181,b4:3181,b3:3181\ncustom.topic=orders\n",
             t_digest);
    size_t want_len;
    char *want = t_seal(body, &want_len);
    CU_ASSERT_EQUAL(len, want_len);
    CU_ASSERT_STRING_EQUAL(text, want);
    free(want);
    free(text);
    meta_ledger_fini(&md);
    /* fini twice is harmless. */
    meta_ledger_fini(&md);
    CU_ASSERT_PTR_NULL(md.segments);
}

/* --- corruption ---------------------------------------------------------- */

/* A valid body (no checksum line); cases replace one piece of it. */
static char t_base[2048];

static void t_base_init(void)
{
    snprintf(t_base, sizeof(t_base),
             "# LedgerMQ ledger metadata\nversion=1\nid=17\nensembleSize=3\nwriteQuorumSize=2\n"
             "ackQuorumSize=2\nstate=OPEN\nlastEntryId=-1\nlength=0\nctime=1763735000123\n"
             "masterKeyDigest=%s\nensemble.0=b1:3181,b2:3181,b3:3181\n"
             "ensemble.1500=b1:3181,b4:3181,b3:3181\ncustom.topic=orders\n",
             t_digest);
}

/* Decodes t_base with from replaced by to (sealed with a right checksum);
 * expects MQ_ECORRUPT with a reason containing want. */
static void t_expect_corrupt(const char *from, const char *to, const char *want)
{
    char body[4096];
    const char *at = strstr(t_base, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - t_base), t_base, to, at + strlen(from));
    size_t len;
    char *text = t_seal(body, &len);
    meta_ledger_t md;
    char why[256] = "";
    mq_err_t err = t_decode_exact(text, len, &md, why, sizeof(why));
    if (err != MQ_ECORRUPT || !strstr(why, want)) {
        fprintf(stderr, "\n  case '%s' -> '%s': err=%s why='%s' (wanted '%s')\n", from, to,
                mq_err_name(err), why, want);
    }
    CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, want));
    /* A failed decode leaves nothing to free, and fini is harmless. */
    CU_ASSERT_PTR_NULL(md.segments);
    CU_ASSERT_PTR_NULL(md.custom);
    meta_ledger_fini(&md);
    free(text);
}

static void test_base_is_valid(void)
{
    size_t len;
    char *text = t_seal(t_base, &len);
    meta_ledger_t md;
    char why[256] = "";
    CU_ASSERT_EQUAL(meta_ledger_decode(text, len, &md, why, sizeof(why)), MQ_OK);
    CU_ASSERT_STRING_EQUAL(why, "");
    CU_ASSERT_EQUAL(md.id, 17);
    CU_ASSERT_EQUAL(md.ensemble_size, 3);
    CU_ASSERT_EQUAL(md.write_quorum, 2);
    CU_ASSERT_EQUAL(md.ack_quorum, 2);
    CU_ASSERT_EQUAL(md.state, META_LEDGER_OPEN);
    CU_ASSERT_EQUAL(md.last_entry_id, -1);
    CU_ASSERT_EQUAL(md.ctime_ms, 1763735000123ull);
    CU_ASSERT_EQUAL(md.nsegments, 2);
    CU_ASSERT_EQUAL(md.segments[1].first_entry, 1500);
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[1], "b4:3181");
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&md, "topic"), "orders");
    meta_ledger_fini(&md);
    free(text);
}

static void test_corrupt_keys(void)
{
    t_expect_corrupt("length=0\n", "length=0\nfoo=1\n", "unknown key 'foo'");
    t_expect_corrupt("length=0\n", "length=0\nid=17\n", "duplicate key id");
    t_expect_corrupt("length=0\n", "length=0\nstate=CLOSED\n", "duplicate key state");
    t_expect_corrupt("state=OPEN\n", "", "missing key state");
    t_expect_corrupt("id=17\n", "", "missing key id");
    t_expect_corrupt("ctime=1763735000123\n", "", "missing key ctime");
    t_expect_corrupt("lastEntryId=-1\n", "", "missing key lastEntryId");
    t_expect_corrupt("length=0\n", "length 0\n", "no '='");
    t_expect_corrupt("length=0\n", "length=0\n\n", "no '='");
    t_expect_corrupt("length=0\n", "length=0\nchecksum=00000000\n", "checksum is not the last");
    t_expect_corrupt("length=0\n", "length=0\n=5\n", "unknown key ''");
    t_expect_corrupt("length=0\n", "length=0\nLength=0\n", "unknown key 'Length'");
    t_expect_corrupt("length=0\n", "length=0\n# comment\n", "no '='");
    /* Header and version. */
    t_expect_corrupt("# LedgerMQ ledger metadata\n", "", "bad first line");
    t_expect_corrupt("# LedgerMQ ledger metadata\n", "# LedgerMQ ledger metadatA\n",
                     "bad first line");
    t_expect_corrupt("version=1\n", "version=2\n", "unsupported format version '2'");
    t_expect_corrupt("version=1\n", "version=01\n", "unsupported format version");
    t_expect_corrupt("version=1\n", "", "expected version");
    t_expect_corrupt("version=1\nid=17\n", "id=17\nversion=1\n", "expected version");
    t_expect_corrupt("length=0\n", "length=0\nversion=1\n", "duplicate key version");
}

static void test_corrupt_numbers(void)
{
    t_expect_corrupt("id=17\n", "id=17x\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=017\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=-17\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=+17\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id= 17\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=0\n", "id=0 out of range");
    t_expect_corrupt("id=17\n", "id=10000000000000000000\n", "out of range");
    t_expect_corrupt("id=17\n", "id=18446744073709551616\n", "bad value for id");
    t_expect_corrupt("id=17\n", "id=99999999999999999999999\n", "bad value for id");
    t_expect_corrupt("length=0\n", "length=-1\n", "bad value for length");
    t_expect_corrupt("length=0\n", "length=9223372036854775808\n", "length=9223372036854775808");
    t_expect_corrupt("ctime=1763735000123\n", "ctime=1.5\n", "bad value for ctime");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=-2\n", "lastEntryId=-2 below -1");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=-0\n", "bad value for lastEntryId");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=--1\n", "bad value for lastEntryId");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=-\n", "bad value for lastEntryId");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=9223372036854775808\n",
                     "bad value for lastEntryId");
    t_expect_corrupt("lastEntryId=-1\n", "lastEntryId=-9223372036854775808\n", "below -1");
    t_expect_corrupt("ensembleSize=3\n", "ensembleSize=17\n", "ensembleSize=17 out of range");
    t_expect_corrupt("ensembleSize=3\n", "ensembleSize=0\n", "ensembleSize=0 out of range");
    t_expect_corrupt("ensembleSize=3\n", "ensembleSize=4294967299\n", "bad value for ensemble");
    t_expect_corrupt("writeQuorumSize=2\n", "writeQuorumSize=4\n", "writeQuorumSize=4 out");
    t_expect_corrupt("writeQuorumSize=2\n", "writeQuorumSize=0\n", "writeQuorumSize=0 out");
    t_expect_corrupt("ackQuorumSize=2\n", "ackQuorumSize=3\n", "ackQuorumSize=3 out");
    t_expect_corrupt("ackQuorumSize=2\n", "ackQuorumSize=0\n", "ackQuorumSize=0 out");
    t_expect_corrupt("state=OPEN\n", "state=open\n", "bad state 'open'");
    t_expect_corrupt("state=OPEN\n", "state=\n", "bad state ''");
    t_expect_corrupt("state=OPEN\n", "state=OPEN \n", "bad state 'OPEN '");
    t_expect_corrupt("state=OPEN\n", "state=CLOSED\r\n", "bad state 'CLOSED?'");
    t_expect_corrupt("masterKeyDigest=0", "masterKeyDigest=", "masterKeyDigest");
    t_expect_corrupt("masterKeyDigest=0", "masterKeyDigest=g", "masterKeyDigest");
    t_expect_corrupt("masterKeyDigest=0", "masterKeyDigest=00", "masterKeyDigest");
}

static void test_corrupt_segments(void)
{
    t_expect_corrupt("ensemble.0=", "ensemble.5=", "first segment starts at entry 5, not 0");
    t_expect_corrupt("ensemble.1500=", "ensemble.0=", "strictly increase");
    t_expect_corrupt("ensemble.1500=b1:3181,b4:3181,b3:3181\n",
                     "ensemble.1500=b1:3181,b4:3181,b3:3181\nensemble.1000=a,b,c\n",
                     "strictly increase");
    t_expect_corrupt("ensemble.1500=b1:3181,b4:3181,b3:3181\n",
                     "ensemble.1500=b1:3181,b4:3181,b3:3181\nensemble.1500=a,b,c\n",
                     "strictly increase");
    t_expect_corrupt("ensemble.1500=", "ensemble.-3=", "bad first entry");
    t_expect_corrupt("ensemble.1500=", "ensemble.01500=", "bad first entry");
    t_expect_corrupt("ensemble.1500=", "ensemble.=", "bad first entry");
    t_expect_corrupt("ensemble.1500=", "ensemble.x=", "bad first entry");
    t_expect_corrupt("ensemble.0=b1:3181,b2:3181,b3:3181\nensemble.1500=b1:3181,b4:3181,b3:3181\n",
                     "", "no ensemble");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "b1:3181,b4:3181", "bookie 2: empty bookie id");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "b1:3181,b4:3181,b3:3181,b5:1",
                     "more than ensembleSize=3");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "b1:3181,b4:3181,b1:3181", "appears twice");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "b1:3181,,b3:3181", "empty bookie id");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "b1:3181,b4:3181,", "empty bookie id");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", ",b1:3181,b4:3181", "empty bookie id");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "", "empty bookie id");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q",
                     "more than 16 bookies");
    char longid[300];
    memset(longid, 'x', META_BOOKIE_ID_MAX);
    snprintf(longid + META_BOOKIE_ID_MAX, sizeof(longid) - META_BOOKIE_ID_MAX, ",b4:1,b3:1");
    t_expect_corrupt("b1:3181,b4:3181,b3:3181", longid, "bookie id of 128 bytes");
    /* 127 bytes is the longest id: valid. */
    longid[META_BOOKIE_ID_MAX - 1] = '\0';
    char body[4096];
    const char *at = strstr(t_base, "b1:3181,b4:3181");
    snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - t_base), t_base, longid, at + 7);
    size_t len;
    char *text = t_seal(body, &len);
    meta_ledger_t md;
    CU_ASSERT_EQUAL(meta_ledger_decode(text, len, &md, NULL, 0), MQ_OK);
    CU_ASSERT_EQUAL(strlen(md.segments[1].bookies[0]), META_BOOKIE_ID_MAX - 1);
    meta_ledger_fini(&md);
    free(text);
}

static void test_corrupt_custom(void)
{
    t_expect_corrupt("custom.topic=", "custom.to pic=", "outside [A-Za-z0-9._-]");
    t_expect_corrupt("custom.topic=", "custom.to/pic=", "outside [A-Za-z0-9._-]");
    t_expect_corrupt("custom.topic=", "custom.t\xc3\xa9=", "outside [A-Za-z0-9._-]");
    t_expect_corrupt("custom.topic=", "custom.=", "empty custom key");
    t_expect_corrupt("custom.topic=orders\n", "custom.topic=orders\ncustom.topic=x\n",
                     "duplicate custom key 'topic'");
    /* A value with a newline cannot exist in the text: its rest is a line
     * of its own. */
    t_expect_corrupt("custom.topic=orders\n", "custom.topic=ord\ners\n", "no '='");
    /* Odd but legal values. */
    char body[4096];
    const char *at = strstr(t_base, "orders");
    snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - t_base), t_base, "a=b,c\r\t\x01\xff",
             at + 6);
    size_t len;
    char *text = t_seal(body, &len);
    meta_ledger_t md;
    CU_ASSERT_EQUAL(meta_ledger_decode(text, len, &md, NULL, 0), MQ_OK);
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&md, "topic"), "a=b,c\r\t\x01\xff");
    t_check_valid(&md);
    meta_ledger_fini(&md);
    free(text);
}

static void t_expect_frame(const char *text, size_t len, const char *want)
{
    meta_ledger_t md;
    char why[256] = "";
    mq_err_t err = t_decode_exact(text, len, &md, why, sizeof(why));
    if (err != MQ_ECORRUPT || !strstr(why, want)) {
        fprintf(stderr, "\n  frame case: err=%s why='%s' (wanted '%s')\n", mq_err_name(err), why,
                want);
    }
    CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, want));
    meta_ledger_fini(&md);
}

static void test_corrupt_framing(void)
{
    size_t len;
    char *text = t_seal(t_base, &len);
    char buf[4096];
    CU_ASSERT_FATAL(len < sizeof(buf));
    t_expect_frame("", 0, "empty record");
    /* No checksum line at all. */
    t_expect_frame(t_base, strlen(t_base), "missing checksum line");
    /* Mismatch: one content byte changed. */
    memcpy(buf, text, len);
    buf[strstr(text, "id=17") - text + 3] = '8';
    t_expect_frame(buf, len, "checksum mismatch");
    /* Bad checksum lines. */
    size_t body = strlen(t_base);
    memcpy(buf, text, len);
    for (size_t i = body + 9; i < body + 17; i++) {
        if (buf[i] >= 'a') {
            buf[i] = (char)(buf[i] - 'a' + 'A');
        }
    }
    bool has_letter = strpbrk(text + body + 9, "abcdef") != NULL;
    if (has_letter) {
        t_expect_frame(buf, len, "bad checksum line");
    }
    memcpy(buf, text, len);
    memcpy(buf + body + 9, "xyz", 3);
    t_expect_frame(buf, len, "bad checksum line");
    memcpy(buf, text, len);
    buf[len - 1] = ' ';
    buf[len] = '\n';
    t_expect_frame(buf, len + 1, "bad checksum line");
    t_expect_frame(text, len - 1, "does not end with a newline");
    memcpy(buf, text, len);
    memcpy(buf + len, "x\n", 2);
    t_expect_frame(buf, len + 2, "missing checksum line");
    /* A NUL byte anywhere. */
    memcpy(buf, text, len);
    buf[40] = '\0';
    t_expect_frame(buf, len, "NUL byte at offset 40");
    /* Checksum of a body without a header. */
    free(text);
    text = t_seal("version=1\n", &len);
    t_expect_frame(text, len, "bad first line");
    free(text);
    text = t_seal("", &len);
    t_expect_frame(text, len, "no header line");
    free(text);
}

static void test_too_many_segments(void)
{
    /* 100001 segments is refused before anything is allocated for them. */
    size_t cap = 100002 * 24 + 4096;
    char *body = mq_malloc(cap);
    size_t n = (size_t)snprintf(body, cap,
                                "# LedgerMQ ledger metadata\nversion=1\nid=17\nensembleSize=1\n"
                                "writeQuorumSize=1\nackQuorumSize=1\nstate=OPEN\nlastEntryId=-1\n"
                                "length=0\nctime=1\nmasterKeyDigest=%s\n",
                                t_digest);
    for (int s = 0; s <= 100000; s++) {
        n += (size_t)snprintf(body + n, cap - n, "ensemble.%d=b\n", s);
    }
    size_t len;
    char *text = t_seal(body, &len);
    meta_ledger_t md;
    char why[256] = "";
    CU_ASSERT_EQUAL(meta_ledger_decode(text, len, &md, why, sizeof(why)), MQ_ECORRUPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "more than 100000 segments"));
    free(text);
    free(body);
}

/* --- robustness ----------------------------------------------------------- */

static char *t_sample(size_t *len)
{
    const char *ens[] = {"b1:3181", "b2:3181", "b3:3181", "b4:3181"};
    meta_ledger_t md;
    meta_ledger_init(&md, 123456789, 4, 3, 2, ens, t_digest);
    md.state = META_LEDGER_CLOSED;
    md.last_entry_id = 20001;
    md.length = 987654;
    meta_ledger_replace_bookie(&md, 100, 2, "b5:3181");
    meta_ledger_replace_bookie(&md, 20000, 0, "b6:3181");
    meta_ledger_set_custom(&md, "topic", "orders");
    meta_ledger_set_custom(&md, "queue", "3");
    char *text;
    CU_ASSERT_EQUAL(meta_ledger_encode(&md, &text, len), MQ_OK);
    meta_ledger_fini(&md);
    return text;
}

static void test_truncations(void)
{
    size_t len;
    char *text = t_sample(&len);
    for (size_t n = 0; n < len; n++) {
        meta_ledger_t md;
        mq_err_t err = t_decode_exact(text, n, &md, NULL, 0);
        CU_ASSERT_EQUAL(err, MQ_ECORRUPT);
        if (err == MQ_OK) {
            meta_ledger_fini(&md);
        }
    }
    meta_ledger_t md;
    CU_ASSERT_EQUAL(t_decode_exact(text, len, &md, NULL, 0), MQ_OK);
    meta_ledger_fini(&md);
    free(text);
}

static void test_byte_flips(void)
{
    size_t len;
    char *text = t_sample(&len);
    char *buf = mq_malloc(len);
    int rejected = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, text, len);
            buf[i] = (char)(buf[i] ^ (1 << bit));
            meta_ledger_t md;
            mq_err_t err = t_decode_exact(buf, len, &md, NULL, 0);
            CU_ASSERT_TRUE(err == MQ_OK || err == MQ_ECORRUPT);
            if (err == MQ_OK) {
                t_check_valid(&md);
                meta_ledger_fini(&md);
            } else {
                rejected++;
            }
        }
    }
    /* CRC32C catches every single-byte change above the checksum line. */
    CU_ASSERT_EQUAL(rejected, (int)len * 8);
    free(buf);
    free(text);
}

/* Replacements with the checksum recomputed: what the parser itself sees. */
static void test_byte_replacements_resealed(void)
{
    static const char subst[] = {'\n', ',', '=',  '.', '-',    '0',    '9',    'a',
                                 'Z',  ' ', '\r', '#', '\x01', '\x7f', '\x80', '\xff'};
    size_t len;
    char *text = t_sample(&len);
    size_t body = len - 18; /* "checksum=xxxxxxxx\n" */
    CU_ASSERT_EQUAL_FATAL(strncmp(text + body, "checksum=", 9), 0);
    char *buf = mq_malloc(body + 1);
    int ok = 0;
    int bad = 0;
    for (size_t i = 0; i < body; i++) {
        for (size_t k = 0; k < sizeof(subst) + 1; k++) {
            memcpy(buf, text, body);
            buf[body] = '\0';
            if (k < sizeof(subst)) {
                buf[i] = subst[k];
            } else {
                /* Delete the byte. */
                memmove(buf + i, buf + i + 1, body - i);
            }
            size_t n;
            char *sealed = t_seal(buf, &n);
            meta_ledger_t md;
            char why[256] = "";
            mq_err_t err = t_decode_exact(sealed, n, &md, why, sizeof(why));
            CU_ASSERT_TRUE(err == MQ_OK || err == MQ_ECORRUPT);
            if (err == MQ_OK) {
                ok++;
                t_check_valid(&md);
                meta_ledger_fini(&md);
            } else {
                bad++;
                CU_ASSERT_NOT_EQUAL(why[0], '\0');
            }
            free(sealed);
        }
    }
    /* Both happen: e.g. a digit of a count changes into another digit. */
    CU_ASSERT_TRUE(ok > 0);
    CU_ASSERT_TRUE(bad > 0);
    free(buf);
    free(text);
}

/* --- encoder refusals ------------------------------------------------------- */

static void t_expect_einval(meta_ledger_t *md)
{
    char *text = (char *)"untouched";
    size_t len = 7;
    CU_ASSERT_EQUAL(meta_ledger_encode(md, &text, &len), MQ_EINVAL);
    CU_ASSERT_STRING_EQUAL(text, "untouched");
    CU_ASSERT_EQUAL(len, 7);
}

static void test_encode_refuses(void)
{
    const char *ens[] = {"a:1", "b:1", "c:1"};
    meta_ledger_t md;
    meta_ledger_init(&md, 5, 3, 3, 2, ens, t_digest);

    snprintf(md.segments[0].bookies[1], META_BOOKIE_ID_MAX, "b,x");
    t_expect_einval(&md);
    snprintf(md.segments[0].bookies[1], META_BOOKIE_ID_MAX, "b\nx");
    t_expect_einval(&md);
    md.segments[0].bookies[1][0] = '\0';
    t_expect_einval(&md);
    snprintf(md.segments[0].bookies[1], META_BOOKIE_ID_MAX, "a:1");
    t_expect_einval(&md);
    memset(md.segments[0].bookies[1], 'y', META_BOOKIE_ID_MAX);
    t_expect_einval(&md);
    snprintf(md.segments[0].bookies[1], META_BOOKIE_ID_MAX, "b:1");

    md.ack_quorum = 4;
    t_expect_einval(&md);
    md.ack_quorum = 2;
    md.write_quorum = 4;
    t_expect_einval(&md);
    md.write_quorum = 3;
    md.ensemble_size = 17;
    t_expect_einval(&md);
    md.ensemble_size = 3;
    md.id = 0;
    t_expect_einval(&md);
    md.id = 10000000000000000000ull;
    t_expect_einval(&md);
    md.id = 5;
    md.state = (meta_ledger_state_t)7;
    t_expect_einval(&md);
    md.state = META_LEDGER_CLOSED;
    md.last_entry_id = -2;
    t_expect_einval(&md);
    md.last_entry_id = 10;
    md.master_key_digest[5] = 'z';
    t_expect_einval(&md);
    md.master_key_digest[5] = '5';
    md.master_key_digest[63] = '\0';
    t_expect_einval(&md);
    md.master_key_digest[63] = 'f';

    meta_ledger_set_custom(&md, "bad key", "v");
    t_expect_einval(&md);
    free(md.custom[0].key);
    md.custom[0].key = mq_strdup("good");
    meta_ledger_set_custom(&md, "good", "line\nbreak");
    t_expect_einval(&md);
    meta_ledger_set_custom(&md, "good", "fine");
    meta_ledger_set_custom(&md, "other", "x");
    free(md.custom[1].key);
    md.custom[1].key = mq_strdup("good");
    t_expect_einval(&md);
    free(md.custom[1].key);
    md.custom[1].key = mq_strdup("other");
    meta_ledger_set_custom(&md, "", "x");
    t_expect_einval(&md);
    md.ncustom = 2;
    free(md.custom[2].key);
    free(md.custom[2].value);

    meta_ledger_replace_bookie(&md, 50, 0, "d:1");
    md.segments[1].first_entry = 0;
    t_expect_einval(&md);
    md.segments[1].first_entry = 50;
    md.segments[0].first_entry = 1;
    t_expect_einval(&md);
    md.segments[0].first_entry = 0;

    char *text;
    size_t len;
    CU_ASSERT_EQUAL(meta_ledger_encode(&md, &text, &len), MQ_OK);
    t_check_valid(&md);
    free(text);
    CU_ASSERT_EQUAL(meta_ledger_encode(NULL, &text, &len), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_ledger_encode(&md, NULL, &len), MQ_EINVAL);
    meta_ledger_t empty;
    CU_ASSERT_EQUAL(meta_ledger_decode("x", 1, NULL, NULL, 0), MQ_EINVAL);
    CU_ASSERT_EQUAL(meta_ledger_decode(NULL, 3, &empty, NULL, 0), MQ_EINVAL);
    meta_ledger_fini(&md);
}

/* --- paths ---------------------------------------------------------------- */

static void t_path_is(const char *root, uint64_t id, const char *want)
{
    char path[256];
    meta_ledger_path(root, id, path, sizeof(path));
    if (strcmp(path, want) != 0) {
        fprintf(stderr, "\n  path of %llu: %s (wanted %s)\n", (unsigned long long)id, path, want);
    }
    CU_ASSERT_STRING_EQUAL(path, want);
}

static void test_paths(void)
{
    t_path_is("/ledgermq", 1, "/ledgermq/ledgers/000/0000/0000/0000/L0001");
    t_path_is("/ledgermq", 1234, "/ledgermq/ledgers/000/0000/0000/0000/L1234");
    t_path_is("/ledgermq", 12345, "/ledgermq/ledgers/000/0000/0000/0001/L2345");
    t_path_is("/ledgermq", 2147483648ull, "/ledgermq/ledgers/000/0000/0021/4748/L3648");
    t_path_is("/ledgermq", 1234567890123456789ull, "/ledgermq/ledgers/123/4567/8901/2345/L6789");
    t_path_is("/ledgermq", 9999999999999999999ull, "/ledgermq/ledgers/999/9999/9999/9999/L9999");
    /* Not a valid ledger id, but still a path of its own. */
    t_path_is("/ledgermq", UINT64_MAX, "/ledgermq/ledgers/1844/6744/0737/0955/L1615");
    t_path_is("/ledgermq/", 1, "/ledgermq/ledgers/000/0000/0000/0000/L0001");
    t_path_is("/a/b", 7, "/a/b/ledgers/000/0000/0000/0000/L0007");
    t_path_is("", 7, "/ledgers/000/0000/0000/0000/L0007");
    t_path_is("/", 7, "/ledgers/000/0000/0000/0000/L0007");
    t_path_is(NULL, 7, "/ledgers/000/0000/0000/0000/L0007");
    /* Too small: empty rather than a different path. */
    char small[20] = "junk";
    meta_ledger_path("/ledgermq", 1, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "");
    /* Distinct ids, distinct paths, and they sort like the ids. */
    char a[128];
    char b[128];
    for (int i = 0; i < 1000; i++) {
        uint64_t x = 1 + t_below(9999999999999999998ull);
        meta_ledger_path("/r", x, a, sizeof(a));
        meta_ledger_path("/r", x + 1, b, sizeof(b));
        CU_ASSERT_TRUE(strcmp(a, b) < 0);
    }
}

/* --- segments, replace, custom, copy ------------------------------------------ */

static void test_segment_lookup(void)
{
    const char *ens[] = {"a", "b", "c"};
    meta_ledger_t md;
    meta_ledger_init(&md, 9, 3, 2, 2, ens, t_digest);
    CU_ASSERT_PTR_EQUAL(meta_ledger_segment(&md, 0), &md.segments[0]);
    CU_ASSERT_PTR_EQUAL(meta_ledger_segment(&md, INT64_MAX), &md.segments[0]);
    CU_ASSERT_PTR_NULL(meta_ledger_segment(&md, -1));
    meta_ledger_replace_bookie(&md, 10, 0, "d");
    meta_ledger_replace_bookie(&md, 20, 1, "e");
    meta_ledger_replace_bookie(&md, 1000, 2, "f");
    CU_ASSERT_EQUAL_FATAL(md.nsegments, 4);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 0)->first_entry, 0);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 9)->first_entry, 0);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 10)->first_entry, 10);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 19)->first_entry, 10);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 20)->first_entry, 20);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 999)->first_entry, 20);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, 1000)->first_entry, 1000);
    CU_ASSERT_EQUAL(meta_ledger_segment(&md, INT64_MAX)->first_entry, 1000);
    CU_ASSERT_PTR_EQUAL(meta_ledger_last_segment(&md), &md.segments[3]);
    CU_ASSERT_PTR_NULL(meta_ledger_segment(NULL, 0));
    CU_ASSERT_PTR_NULL(meta_ledger_last_segment(NULL));
    meta_ledger_fini(&md);

    /* Many segments against a linear scan. */
    meta_ledger_init(&md, 9, 3, 2, 2, ens, t_digest);
    int64_t first = 0;
    for (int s = 1; s < 2000; s++) {
        first += 1 + (int64_t)t_below(50);
        meta_ledger_replace_bookie(&md, first, s % 3, s % 2 ? "x" : "y");
    }
    for (int k = 0; k < 20000; k++) {
        int64_t e = (int64_t)t_below((uint64_t)first + 100);
        size_t want = 0;
        for (size_t s = 0; s < md.nsegments; s++) {
            if (md.segments[s].first_entry <= e) {
                want = s;
            }
        }
        CU_ASSERT_PTR_EQUAL(meta_ledger_segment(&md, e), &md.segments[want]);
    }
    meta_ledger_fini(&md);
}

static void test_replace_bookie(void)
{
    const char *ens[] = {"a", "b", "c"};
    meta_ledger_t md;
    meta_ledger_init(&md, 9, 3, 2, 2, ens, t_digest);
    /* At entry 0 of the only segment: in place. */
    meta_ledger_replace_bookie(&md, 0, 2, "z");
    CU_ASSERT_EQUAL(md.nsegments, 1);
    CU_ASSERT_STRING_EQUAL(md.segments[0].bookies[2], "z");
    /* Later: a new segment, the old one unchanged. */
    meta_ledger_replace_bookie(&md, 5, 1, "d");
    CU_ASSERT_EQUAL_FATAL(md.nsegments, 2);
    CU_ASSERT_EQUAL(md.segments[1].first_entry, 5);
    CU_ASSERT_STRING_EQUAL(md.segments[0].bookies[1], "b");
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[0], "a");
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[1], "d");
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[2], "z");
    /* Same first entry again (a second failure before any entry got
     * through): changed in place, no zero-length segment. */
    meta_ledger_replace_bookie(&md, 5, 0, "e");
    CU_ASSERT_EQUAL_FATAL(md.nsegments, 2);
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[0], "e");
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[1], "d");
    CU_ASSERT_STRING_EQUAL(md.segments[0].bookies[0], "a");
    /* A longer id over a shorter one leaves no trace of the old. */
    meta_ledger_replace_bookie(&md, 5, 1, "longer-name:3181");
    meta_ledger_replace_bookie(&md, 5, 1, "s");
    CU_ASSERT_STRING_EQUAL(md.segments[1].bookies[1], "s");
    CU_ASSERT_EQUAL(md.segments[1].bookies[1][2], '\0');
    meta_ledger_replace_bookie(&md, 9, 2, "f");
    CU_ASSERT_EQUAL(md.nsegments, 3);
    t_check_valid(&md);
    meta_ledger_fini(&md);
}

static void test_custom_copy_and_init(void)
{
    const char *ens[] = {"a", "b"};
    meta_ledger_t md;
    meta_ledger_init(&md, 3, 2, 2, 1, ens, NULL);
    CU_ASSERT_EQUAL(strlen(md.master_key_digest), META_DIGEST_HEX);
    CU_ASSERT_EQUAL(md.state, META_LEDGER_OPEN);
    CU_ASSERT_EQUAL(md.last_entry_id, -1);
    CU_ASSERT_EQUAL(md.version, -1);
    CU_ASSERT_TRUE(md.ctime_ms > 1600000000000ull);
    CU_ASSERT_PTR_NULL(meta_ledger_get_custom(&md, "x"));
    meta_ledger_set_custom(&md, "x", "1");
    meta_ledger_set_custom(&md, "y", "");
    meta_ledger_set_custom(&md, "x", "2");
    CU_ASSERT_EQUAL(md.ncustom, 2);
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&md, "x"), "2");
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&md, "y"), "");
    t_check_valid(&md);

    meta_ledger_t copy;
    meta_ledger_copy(&copy, &md);
    CU_ASSERT_TRUE(t_md_equal(&md, &copy));
    CU_ASSERT_PTR_NOT_EQUAL(copy.segments, md.segments);
    meta_ledger_set_custom(&copy, "x", "3");
    meta_ledger_replace_bookie(&copy, 4, 0, "c");
    CU_ASSERT_STRING_EQUAL(meta_ledger_get_custom(&md, "x"), "2");
    CU_ASSERT_EQUAL(md.nsegments, 1);
    meta_ledger_fini(&copy);
    meta_ledger_fini(&md);

    CU_ASSERT_STRING_EQUAL(meta_ledger_state_name(META_LEDGER_OPEN), "OPEN");
    CU_ASSERT_STRING_EQUAL(meta_ledger_state_name(META_LEDGER_IN_RECOVERY), "IN_RECOVERY");
    CU_ASSERT_STRING_EQUAL(meta_ledger_state_name(META_LEDGER_CLOSED), "CLOSED");
    CU_ASSERT_STRING_EQUAL(meta_ledger_state_name((meta_ledger_state_t)9), "UNKNOWN");
    CU_ASSERT_EQUAL(meta_stripe(7, 2, 5), 4);
}

static int t_init(void)
{
    t_base_init();
    return 0;
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"round trip: random records", test_round_trip_random},
        {"round trip: 5000 segments, 500 custom keys", test_round_trip_many_segments},
        {"encoded form is the documented text", test_encoded_form},
        {"the base record decodes", test_base_is_valid},
        {"corrupt: keys, header, version", test_corrupt_keys},
        {"corrupt: numbers and ranges", test_corrupt_numbers},
        {"corrupt: segments", test_corrupt_segments},
        {"corrupt: custom keys", test_corrupt_custom},
        {"corrupt: framing and checksum", test_corrupt_framing},
        {"corrupt: more than 100000 segments", test_too_many_segments},
        {"truncations at every length", test_truncations},
        {"single-bit flips", test_byte_flips},
        {"byte replacements, checksum recomputed", test_byte_replacements_resealed},
        {"encode refuses what cannot be read back", test_encode_refuses},
        {"znode path layout", test_paths},
        {"segment lookup", test_segment_lookup},
        {"replace_bookie", test_replace_bookie},
        {"custom keys, copy, init", test_custom_copy_and_init},
        CU_TEST_INFO_NULL,
    };
    return mq_test_run("meta_ledger", tests, t_init, NULL);
}
