/*
 * bk_conf: the key table generated from BK_CONF_KEYS.
 */
#include "bk_conf.h"

#define MQ_CONF_KEY_OF_bk_conf_t(...) MQ_CONF_KEY_ENTRY(bk_conf_t, __VA_ARGS__)

const mq_conf_key_t bk_conf_keys[] = {BK_CONF_KEYS(MQ_CONF_KEY_OF(bk_conf_t))};
const size_t bk_conf_nkeys = sizeof(bk_conf_keys) / sizeof(bk_conf_keys[0]);
