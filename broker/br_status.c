/*
 * br_status: see br_status.h.
 */
#include "br_status.h"

apache_rocketmq_v2_Code br_status_code(mq_err_t err)
{
    switch (err) {
    case MQ_OK:
        return apache_rocketmq_v2_Code_OK;
    case MQ_EINVAL:
    case MQ_EBADREQ:
    case MQ_EPROTO:
        return apache_rocketmq_v2_Code_BAD_REQUEST;
    case MQ_ETOOLARGE:
        return apache_rocketmq_v2_Code_MESSAGE_BODY_TOO_LARGE;
    case MQ_ENOTFOUND:
        return apache_rocketmq_v2_Code_TOPIC_NOT_FOUND;
    case MQ_ETIMEDOUT:
        return apache_rocketmq_v2_Code_PROXY_TIMEOUT;
    case MQ_ETOOMANY:
    case MQ_EAGAIN:
        return apache_rocketmq_v2_Code_TOO_MANY_REQUESTS;
    case MQ_EUNAUTHORIZED:
        return apache_rocketmq_v2_Code_UNAUTHORIZED;
    case MQ_ECORRUPT:
        return apache_rocketmq_v2_Code_MESSAGE_CORRUPTED;
    case MQ_ENOMEM:
    case MQ_EIO:
    case MQ_ENOLEDGER:
    case MQ_ENOENTRY:
    case MQ_EFENCED:
    case MQ_EREADONLY:
    case MQ_ECONN:
    case MQ_ECLOSED:
    case MQ_EEXIST:
    case MQ_EBADVERSION:
    case MQ_ESESSION:
    case MQ_ENOSPC:
    case MQ_ECONFIG:
    case MQ_ENOTEMPTY:
    case MQ_ESHUTDOWN:
    case MQ_ECOOKIE:
    case MQ_EZK:
    case MQ_ENOTENOUGHBOOKIES:
    case MQ_ENOTOWNER:
        return apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR;
    }
    return apache_rocketmq_v2_Code_INTERNAL_ERROR;
}

bool br_status_retriable(apache_rocketmq_v2_Code code)
{
    switch (code) {
    case apache_rocketmq_v2_Code_INTERNAL_ERROR:
    case apache_rocketmq_v2_Code_INTERNAL_SERVER_ERROR:
    case apache_rocketmq_v2_Code_PROXY_TIMEOUT:
    case apache_rocketmq_v2_Code_TOO_MANY_REQUESTS:
    case apache_rocketmq_v2_Code_HA_NOT_AVAILABLE:
    case apache_rocketmq_v2_Code_MASTER_PERSISTENCE_TIMEOUT:
    case apache_rocketmq_v2_Code_SLAVE_PERSISTENCE_TIMEOUT:
        return true;
    default:
        return false;
    }
}
