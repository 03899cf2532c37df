/*
 * mq_err: the one error list of LedgerMQ.
 *
 * Every function that can fail returns mq_err_t: MQ_OK (0) on success, a
 * negative code otherwise. The list below is an X-macro; it generates the enum,
 * mq_err_str() (the message), mq_err_name() (the symbol) and
 * mq_err_retriable(). Wire status codes (bookie protocol, later RocketMQ and
 * gRPC) map to and from these through one table each, next to their codec.
 * errno is converted once, at the syscall, with mq_err_from_errno().
 */
#ifndef MQ_ERR_H
#define MQ_ERR_H

#include <stdbool.h>

/* X(name, value, retriable, message) */
#define MQ_ERR_LIST(X)                                                                             \
    X(MQ_OK, 0, false, "success")                                                                  \
    X(MQ_EINVAL, -1, false, "invalid argument")                                                    \
    X(MQ_ENOMEM, -2, true, "out of memory")                                                        \
    X(MQ_EIO, -3, true, "input/output error")                                                      \
    X(MQ_ECORRUPT, -4, false, "data is corrupt (checksum or format mismatch)")                     \
    X(MQ_EPROTO, -5, false, "protocol error")                                                      \
    X(MQ_ENOLEDGER, -6, false, "no such ledger")                                                   \
    X(MQ_ENOENTRY, -7, false, "no such entry")                                                     \
    X(MQ_EFENCED, -8, false, "ledger is fenced")                                                   \
    X(MQ_EUNAUTHORIZED, -9, false, "master key mismatch")                                          \
    X(MQ_EREADONLY, -10, true, "bookie is read-only")                                              \
    X(MQ_ETOOLARGE, -11, false, "too large")                                                       \
    X(MQ_EBADREQ, -12, false, "bad request")                                                       \
    X(MQ_ETIMEDOUT, -13, true, "timed out")                                                        \
    X(MQ_ECONN, -14, true, "connection failed or lost")                                            \
    X(MQ_ECLOSED, -15, false, "closed")                                                            \
    X(MQ_EEXIST, -16, false, "already exists")                                                     \
    X(MQ_ENOTFOUND, -17, false, "not found")                                                       \
    X(MQ_EBADVERSION, -18, true, "version mismatch (compare-and-set lost)")                        \
    X(MQ_ESESSION, -19, true, "ZooKeeper session expired or lost")                                 \
    X(MQ_EAGAIN, -20, true, "resource temporarily unavailable, try again")                         \
    X(MQ_ENOSPC, -21, false, "no space left on device")                                            \
    X(MQ_ECONFIG, -22, false, "configuration error")                                               \
    X(MQ_ENOTEMPTY, -23, false, "not empty")                                                       \
    X(MQ_ESHUTDOWN, -24, true, "shutting down")                                                    \
    X(MQ_ETOOMANY, -25, true, "too many requests")                                                 \
    X(MQ_ECOOKIE, -26, false, "cookie mismatch: storage does not belong here")                     \
    X(MQ_EZK, -27, true, "ZooKeeper error")                                                        \
    X(MQ_ENOTENOUGHBOOKIES, -28, true, "not enough bookies")                                       \
    X(MQ_ENOTOWNER, -29, true, "this broker does not own the queue")

typedef enum mq_err {
#define MQ_ERR_ENUM(name, value, retriable, msg) name = value,
    MQ_ERR_LIST(MQ_ERR_ENUM)
#undef MQ_ERR_ENUM
        MQ_ERR__END
} mq_err_t;

/* Message for humans, e.g. "ledger is fenced". Never NULL. */
const char *mq_err_str(mq_err_t err);
/* Symbol, e.g. "MQ_EFENCED". Never NULL. */
const char *mq_err_name(mq_err_t err);
/* True when retrying the same operation later may succeed. */
bool mq_err_retriable(mq_err_t err);
/* Converts an errno value (at the syscall that set it) to our list. */
mq_err_t mq_err_from_errno(int errnum);

#endif
