/*
 * br_cluster_rec: the text records the broker keeps in ZooKeeper, and their
 * framing (shared by br_topic).
 *
 * Every record has the shape of our ledger metadata (meta_ledger.c):
 *
 *   # LedgerMQ <kind>
 *   version=1
 *   ...lines...
 *   checksum=<CRC32C of every byte above, 8 lowercase hex digits>
 *
 * The writer (br_rec_buf_t) appends lines and seals the record with the
 * checksum; the reader (br_rec_reader_t) checks the framing once (no NUL, a
 * final newline, the checksum, the header, "version=1") and then hands out
 * the body lines. Decoders never trust their input: every value is parsed
 * canonically and bounded, and anything else is MQ_ECORRUPT with a reason.
 *
 * The cluster's own records (br_cluster.h, ZooKeeper layout):
 *   brokers/available/<id>    broker: id, cluster, endpoint, load figures
 *   brokers/assignments/<id>  assignment: "broker=<id>", then one
 *                             "<topic> <queue>" line per queue, sorted by
 *                             topic (bytewise) then queue, no duplicates
 *   ownership/<topic>/<queue> owner: id and endpoint
 *
 * Pure functions, any thread.
 */
#ifndef BR_CLUSTER_REC_H
#define BR_CLUSTER_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "br_cluster.h"
#include "br_topic.h"
#include "mq_err.h"

/* --- framing ------------------------------------------------------------- */

typedef struct br_rec_buf {
    char *p;
    size_t len;
    size_t cap;
} br_rec_buf_t;

/* Starts a record: "# LedgerMQ <kind>\nversion=1\n". */
void br_rec_begin(br_rec_buf_t *b, const char *kind);
void br_rec_add(br_rec_buf_t *b, const char *s, size_t n);
void br_rec_printf(br_rec_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the checksum line and hands the record over (free() it). */
char *br_rec_finish(br_rec_buf_t *b, size_t *len);

typedef struct br_rec_reader {
    const char *data;
    size_t body; /* bytes the checksum covers */
    size_t at;   /* next line */
    int line;    /* number of the line last returned, from 1 */
    char *why;   /* br_rec_open's, for br_rec_next_key and br_rec_keys_done */
    size_t why_len;
    unsigned seen; /* keys br_rec_next_key returned, one bit each */
    mq_err_t err;  /* MQ_ECORRUPT once br_rec_next_key met a bad key */
} br_rec_reader_t;

/* Checks the framing of a record of the given kind and positions the reader
 * after the version line. MQ_ECORRUPT (why says what) or MQ_OK. */
mq_err_t br_rec_open(br_rec_reader_t *r, const char *data, size_t len, const char *kind, char *why,
                     size_t why_len);
/* The next body line (without its newline); false at the end. */
bool br_rec_next(br_rec_reader_t *r, const char **s, size_t *n);
/* The next body line as "key=value" with key one of keys[0..nkeys) (at most
 * 32) that the body has not held before: true with *k (its index), *v and
 * *vn. False at the end, or on an unknown or repeated key (then
 * br_rec_keys_done says MQ_ECORRUPT). */
bool br_rec_next_key(br_rec_reader_t *r, const char *const *keys, size_t nkeys, size_t *k,
                     const char **v, size_t *vn);
/* After br_rec_next_key's loop: MQ_OK when the body held every key once,
 * MQ_ECORRUPT (why says what) otherwise. */
mq_err_t br_rec_keys_done(br_rec_reader_t *r, const char *const *keys, size_t nkeys);
/* Splits "key=value" at the first '='; false when there is none. */
bool br_rec_kv(const char *s, size_t n, size_t *kn, const char **v, size_t *vn);
/* Whether the n bytes at k are exactly key. */
bool br_rec_key_is(const char *k, size_t kn, const char *key);
/* Canonical unsigned decimal (no sign, no leading zero, no overflow). */
bool br_rec_u64(const char *s, size_t n, uint64_t *out);
/* A finite, non-negative number as "%.17g" writes it (digits, '.', 'e',
 * '+', '-' only). */
bool br_rec_double(const char *s, size_t n, double *out);
/* Copies n bytes of visible ASCII (0x21..0x7e) into dst (NUL-terminated);
 * false when n is 0 (unless empty_ok), does not fit cap, or holds other
 * bytes. */
bool br_rec_str(const char *s, size_t n, char *dst, size_t cap, bool empty_ok);
/* printf into a reason buffer (NULL or 0-sized: nothing). */
void br_rec_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- names and paths ----------------------------------------------------- */

/* Room for any znode path of the broker layout (root included). */
#define BR_PATH_MAX 512

/* Writes root (trailing '/' dropped) followed by the formatted suffix into
 * out; false when it does not fit. */
bool br_rec_path(char *out, size_t cap, const char *root, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A broker id: 1..BR_ID_MAX-1 visible ASCII bytes, no '/'. */
bool br_rec_id_valid(const char *id);
/* An endpoint: 1..BR_ENDPOINT_MAX-1 visible ASCII bytes. */
bool br_rec_endpoint_valid(const char *ep);

/* --- the cluster's records ----------------------------------------------- */

/* One queue of a topic. */
typedef struct br_qid {
    char topic[BR_TOPIC_NAME_MAX + 1];
    int queue;
} br_qid_t;

/* Orders by topic (bytewise), then queue: qsort/bsearch comparator. */
int br_qid_cmp(const void *a, const void *b);

/* The registration record. MQ_EINVAL when bi does not encode (bad id,
 * endpoint, cluster or a load figure that is negative or not finite). */
mq_err_t br_rec_broker_encode(const br_broker_info_t *bi, char **out, size_t *len);
mq_err_t br_rec_broker_decode(const char *data, size_t len, br_broker_info_t *out, char *why,
                              size_t why_len);

/* The ownership record. */
mq_err_t br_rec_owner_encode(const char *id, const char *endpoint, char **out, size_t *len);
mq_err_t br_rec_owner_decode(const char *data, size_t len, char id[BR_ID_MAX],
                             char endpoint[BR_ENDPOINT_MAX], char *why, size_t why_len);

/* The assignment record of broker id: qs must be sorted by br_qid_cmp,
 * without duplicates (MQ_EINVAL otherwise). */
mq_err_t br_rec_assign_encode(const char *id, const br_qid_t *qs, size_t n, char **out,
                              size_t *len);
/* *qs is malloc'ed (free it; NULL when n is 0). At most BR_REC_ASSIGN_MAX
 * queues. */
#define BR_REC_ASSIGN_MAX 1000000
mq_err_t br_rec_assign_decode(const char *data, size_t len, char id[BR_ID_MAX], br_qid_t **qs,
                              size_t *n, char *why, size_t why_len);

#endif
