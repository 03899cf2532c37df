/*
 * mq_err: tables generated from MQ_ERR_LIST, and the errno mapping.
 * Pure functions, any thread.
 */
#include "mq_err.h"

#include <errno.h>
#include <stddef.h>

typedef struct mq_err_desc {
    mq_err_t err;
    const char *name;
    const char *msg;
    bool retriable;
} mq_err_desc_t;

static const mq_err_desc_t mq_err_descs[] = {
#define MQ_ERR_DESC(name, value, retriable, msg) {name, #name, msg, retriable},
    MQ_ERR_LIST(MQ_ERR_DESC)
#undef MQ_ERR_DESC
};

static const mq_err_desc_t *mq_err_find(mq_err_t err)
{
    /* Codes are 0, -1, -2, ... in list order, so the index is -err. */
    int idx = -(int)err;
    if (idx < 0 || idx >= (int)(sizeof(mq_err_descs) / sizeof(mq_err_descs[0]))) {
        return NULL;
    }
    return &mq_err_descs[idx];
}

const char *mq_err_str(mq_err_t err)
{
    const mq_err_desc_t *d = mq_err_find(err);
    return d ? d->msg : "unknown error";
}

const char *mq_err_name(mq_err_t err)
{
    const mq_err_desc_t *d = mq_err_find(err);
    return d ? d->name : "MQ_E?";
}

bool mq_err_retriable(mq_err_t err)
{
    const mq_err_desc_t *d = mq_err_find(err);
    return d ? d->retriable : false;
}

mq_err_t mq_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return MQ_OK;
    case EINVAL:
        return MQ_EINVAL;
    case ENOMEM:
        return MQ_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return MQ_ENOSPC;
    case ENOENT:
        return MQ_ENOTFOUND;
    case EEXIST:
        return MQ_EEXIST;
    case ENOTEMPTY:
        return MQ_ENOTEMPTY;
    case EAGAIN:
    case EINTR:
        return MQ_EAGAIN;
    case ETIMEDOUT:
        return MQ_ETIMEDOUT;
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENOTCONN:
        return MQ_ECONN;
    case EROFS:
        return MQ_EREADONLY;
    default:
        return MQ_EIO;
    }
}
