/*
 * br_conf: mqbroker's configuration keys, declared once. Names follow
 * RocketMQ's broker.properties where it has the setting (brokerClusterName,
 * brokerName, brokerIP1, grpcServerPort as the RocketMQ proxy calls it,
 * defaultTopicQueueNums, autoCreateTopicEnable, maxMessageSize,
 * fileReservedTime), BookKeeper's for ZooKeeper and the ledgers (zkServers,
 * ensembleSize, ...), Pulsar's managed-ledger ideas for rollover. The docs
 * (docs/config-broker.md) and `mqbroker --help-config` come from this table.
 */
#ifndef BR_CONF_H
#define BR_CONF_H

#include "lc_conf.h"
#include "mq_config.h"

/* X(name, type, default, min, max, doc) */
#define BR_CONF_OWN_KEYS(X)                                                                        \
    X(brokerClusterName, STR, "DefaultCluster", 0, 0,                                              \
      "Cluster name reported to clients and admin")                                                \
    X(brokerName, STR, "", 0, 0,                                                                   \
      "Unique broker id in the cluster (default: broker-<grpcServerPort>)")                        \
    X(brokerIP1, STR, "127.0.0.1", 0, 0,                                                           \
      "Address advertised to clients in routes (host or IP, no port)")                             \
    X(listenAddress, STR, "0.0.0.0", 0, 0, "Address the gRPC server binds")                        \
    X(grpcServerPort, INT, "8081", 0, 65535,                                                       \
      "gRPC port: RocketMQ 5 MessagingService and the admin API (0: any free port)")               \
    X(httpServerPort, INT, "0", 0, 65535,                                                          \
      "Admin HTTP port (/heartbeat, /metrics, /api/v1/broker/state); 0: off")                      \
    X(zkServers, STR, "127.0.0.1:2181", 0, 0, "ZooKeeper connect string (host:port,...)")          \
    X(zkTimeout, INT, "4000", 1000, 600000,                                                        \
      "ZooKeeper session timeout, ms: a dead broker's queues move after about this long")          \
    X(zkLedgersRootPath, STR, "/ledgermq", 0, 0, "Root znode of the LedgerMQ cluster")             \
    X(defaultTopicQueueNums, INT, "4", 1, 1024, "Queues of an auto-created topic")                 \
    X(autoCreateTopicEnable, BOOL, "true", 0, 0,                                                   \
      "Create an unknown topic on first route query or send")                                      \
    X(maxMessageSize, INT, "4194304", 1, 67108864, "Largest message body accepted, bytes")         \
    X(fileReservedTime, INT, "72", 0, 87600,                                                       \
      "Retention: closed ledgers older than this are deleted, hours")                              \
    X(retentionCheckIntervalSec, INT, "120", 1, 86400, "How often retention runs, s")              \
    X(sendLingerMicros, INT, "500", 0, 100000,                                                     \
      "Messages of one queue arriving within this are packed into one entry (a message after "     \
      "a quiet spell this long goes at once), us")                                                 \
    X(maxEntryBytes, INT, "1048576", 4096, 67108864, "Largest packed entry, bytes")                \
    X(sendQueueStickyMicros, INT, "1000", 0, 1000000,                                              \
      "Normal messages go to one local queue per slice of this length (0: round robin)")           \
    X(sendWindowEntries, INT, "16", 1, 64,                                                         \
      "Entries of one queue in flight to the bookies at once; later messages pack into the next")  \
    X(ledgerRolloverSizeMB, INT, "1024", 1, 1048576, "Start a new ledger after this many MB")      \
    X(ledgerRolloverEntries, INT, "50000", 1, 100000000,                                           \
      "Start a new ledger after this many entries")                                                \
    X(ledgerRolloverMinutes, INT, "240", 1, 525600, "Start a new ledger after this age, minutes")  \
    X(tailCacheSizeMB, INT, "16", 0, 65536,                                                        \
      "Hot-tail read cache shared by all owned queues, MB (a queue takes at most its share, or "   \
      "256 KiB)")                                                                                  \
    X(readCacheSizeMB, INT, "8", 0, 65536,                                                         \
      "Cache of entries read back from bookies, shared by the queues that read back, MB "          \
      "(consumers take an entry a few messages at a time; 0: none)")                               \
    X(rebalanceIntervalSec, INT, "5", 1, 3600, "Leader: how often assignments are re-checked, s")  \
    X(loadReportIntervalMs, INT, "1000", 100, 600000,                                              \
      "How often the load report is refreshed, ms")                                                \
    X(overloadFactor, DOUBLE, "1.5", 1.0, 100.0,                                                   \
      "Leader: shed queues from a broker above this times the average msgs/s")                     \
    X(loadBalancerSheddingGracePeriodMinutes, DOUBLE, "1", 0.0, 1440.0,                            \
      "Leader: a broker that shed queues keeps its lowered queue count this long (Pulsar's "       \
      "name), minutes; 0: counts even out again at once")                                          \
    X(grpcThreads, INT, "1", 1, 64, "gRPC completion-queue threads")                               \
    X(workerThreads, INT, "0", 0, 64,                                                              \
      "Executor threads for queue work (0: on the ledger client's loop thread)")                   \
    X(forwardTimeoutMs, INT, "5000", 100, 600000,                                                  \
      "How long a send may wait for its queue's owner (handover, forwarding), ms")                 \
    X(autoCreateSubscriptionGroup, BOOL, "true", 0, 0,                                             \
      "Create an unknown consumer group with the defaults on first use")                           \
    X(minInvisibleTimeMillsForRecv, INT, "10000", 0, 43200000,                                     \
      "Smallest invisible duration a ReceiveMessage may ask for, ms")                              \
    X(maxInvisibleTimeMills, INT, "43200000", 1000, 604800000,                                     \
      "Largest invisible duration (ReceiveMessage, ChangeInvisibleDuration), ms")                  \
    X(defaultInvisibleTimeMills, INT, "60000", 1000, 43200000,                                     \
      "Invisible duration when a receive names none (push consumers, auto-renew), ms")             \
    X(grpcClientConsumerMinLongPollingTimeoutMillis, INT, "0", 0, 600000,                          \
      "Shortest long-polling time a receive may ask for, ms")                                      \
    X(grpcClientConsumerMaxLongPollingTimeoutMillis, INT, "20000", 0, 600000,                      \
      "Longest a receive waits for messages before answering empty, ms")                           \
    X(consumeWindowMessages, INT, "16384", 16, 1048576,                                            \
      "Messages of one queue a group may have delivered but not done (in flight, waiting, acked "  \
      "above its oldest undone)")                                                                  \
    X(cursorCompactEntries, INT, "1000", 10, 10000000,                                             \
      "Cursor-ledger entries after which the cursor state is rewritten into a new ledger")         \
    X(logLevel, STR, "info", 0, 0, "Log level: error, warn, info or debug")

#define BR_CONF_KEYS(X) BR_CONF_OWN_KEYS(X) LC_CONF_LEDGER_KEYS(X)

typedef struct br_conf {
    BR_CONF_KEYS(MQ_CONF_FIELD)
} br_conf_t;

extern const mq_conf_key_t br_conf_keys[];
extern const size_t br_conf_nkeys;

/* Fills the ledger-client configuration from the broker's (strings
 * borrowed); MQ_ECONFIG with a message when the quorums are inconsistent. */
mq_err_t br_conf_ledger(const br_conf_t *c, lc_client_conf_t *out, char *errbuf, size_t errlen);

#endif
