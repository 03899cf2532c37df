/*
 * lc_conf: the ledger client's configuration keys, declared once, for every
 * process that embeds a ledger client (brokers, mqbench, bookies'
 * replication workers). Names are BookKeeper client's where it has the
 * setting. A process includes LC_CONF_KEYS in its own key table and turns
 * the loaded values into an lc_client_conf_t with lc_conf_apply.
 */
#ifndef LC_CONF_H
#define LC_CONF_H

#include "lc_ledger.h"
#include "mq_config.h"

/* X(name, type, default, min, max, doc). The ZooKeeper keys and the ledger
 * keys are separate lists so a process with its own ZooKeeper defaults (the
 * broker) can take only the ledger ones. */
#define LC_CONF_ZK_KEYS(X)                                                                         \
    X(zkServers, STR, "127.0.0.1:2181", 0, 0, "ZooKeeper connect string (host:port,...)")          \
    X(zkTimeout, INT, "10000", 1000, 600000, "ZooKeeper session timeout, ms")                      \
    X(zkLedgersRootPath, STR, "/ledgermq", 0, 0, "Root znode of the LedgerMQ cluster")

#define LC_CONF_LEDGER_KEYS(X)                                                                     \
    X(ensembleSize, INT, "5", 1, 16, "Bookies a new ledger is striped over (E)")                   \
    X(writeQuorumSize, INT, "3", 1, 16, "Copies of each entry (Qw <= E)")                          \
    X(ackQuorumSize, INT, "2", 1, 16,                                                              \
      "Copies that must be durable before an add completes "                                       \
      "(Qa <= Qw)")                                                                                \
    X(addEntryTimeoutSec, INT, "5", 1, 3600,                                                       \
      "A bookie that does not acknowledge an add within this is replaced, s")                      \
    X(readEntryTimeoutSec, INT, "5", 1, 3600, "Read request timeout, s")                           \
    X(speculativeReadTimeout, INT, "500", 0, 600000,                                               \
      "Ask the next replica when a read has no answer after this, ms (0: never)")                  \
    X(ledgerPassword, STR, "", 0, 0, "Password the ledgers' master key derives from")

#define LC_CONF_KEYS(X) LC_CONF_ZK_KEYS(X) LC_CONF_LEDGER_KEYS(X)

typedef struct lc_conf {
    LC_CONF_KEYS(MQ_CONF_FIELD)
} lc_conf_t;

extern const mq_conf_key_t lc_conf_keys[];
extern const size_t lc_conf_nkeys;

/* Fills out from loaded values (strings borrowed from c); MQ_ECONFIG with a
 * message when the quorums are inconsistent. */
mq_err_t lc_conf_apply(const lc_conf_t *c, lc_client_conf_t *out, char *errbuf, size_t errlen);

#endif
