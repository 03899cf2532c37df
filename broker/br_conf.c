/*
 * br_conf: the key table generated from BR_CONF_KEYS, and the translation of
 * the ledger keys into the ledger client's configuration.
 */
#include "br_conf.h"

#define MQ_CONF_KEY_OF_br_conf_t(...) MQ_CONF_KEY_ENTRY(br_conf_t, __VA_ARGS__)

const mq_conf_key_t br_conf_keys[] = {BR_CONF_KEYS(MQ_CONF_KEY_OF(br_conf_t))};
const size_t br_conf_nkeys = sizeof(br_conf_keys) / sizeof(br_conf_keys[0]);

mq_err_t br_conf_ledger(const br_conf_t *c, lc_client_conf_t *out, char *errbuf, size_t errlen)
{
    /* The broker's table holds every ledger-client key under the same name
     * (its ZooKeeper keys have broker defaults), so copy them by name. */
    lc_conf_t lc;
#define BR_CONF_COPY(name, ...) lc.name = c->name;
    LC_CONF_KEYS(BR_CONF_COPY)
#undef BR_CONF_COPY
    return lc_conf_apply(&lc, out, errbuf, errlen);
}
