/*
 * lc_conf: the key table generated from LC_CONF_KEYS, and its translation
 * into an lc_client_conf_t.
 */
#include "lc_conf.h"

#include <stdio.h>

#define MQ_CONF_KEY_OF_lc_conf_t(...) MQ_CONF_KEY_ENTRY(lc_conf_t, __VA_ARGS__)

const mq_conf_key_t lc_conf_keys[] = {LC_CONF_KEYS(MQ_CONF_KEY_OF(lc_conf_t))};
const size_t lc_conf_nkeys = sizeof(lc_conf_keys) / sizeof(lc_conf_keys[0]);

mq_err_t lc_conf_apply(const lc_conf_t *c, lc_client_conf_t *out, char *errbuf, size_t errlen)
{
    if (c->ackQuorumSize > c->writeQuorumSize || c->writeQuorumSize > c->ensembleSize) {
        snprintf(errbuf, errlen,
                 "need ackQuorumSize <= writeQuorumSize <= ensembleSize (got %lld, %lld, %lld)",
                 (long long)c->ackQuorumSize, (long long)c->writeQuorumSize,
                 (long long)c->ensembleSize);
        return MQ_ECONFIG;
    }
    lc_client_conf_default(out);
    out->zk_servers = c->zkServers;
    out->zk_session_timeout_ms = (int)c->zkTimeout;
    out->root = c->zkLedgersRootPath;
    out->ensemble_size = (int)c->ensembleSize;
    out->write_quorum = (int)c->writeQuorumSize;
    out->ack_quorum = (int)c->ackQuorumSize;
    out->add_timeout_ms = (uint32_t)c->addEntryTimeoutSec * 1000u;
    out->read_timeout_ms = (uint32_t)c->readEntryTimeoutSec * 1000u;
    out->speculative_read_timeout_ms = (uint32_t)c->speculativeReadTimeout;
    out->password = c->ledgerPassword;
    return MQ_OK;
}
