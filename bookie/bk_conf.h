/*
 * bk_conf: every configuration key of mqbookie, declared once. Key names are
 * BookKeeper's (bk_server.conf) where BookKeeper has the same setting; the
 * table gives type, default, range and meaning, from which `mqbookie
 * --help-config` and docs/config-bookie.md come. Loaded once at startup.
 */
#ifndef BK_CONF_H
#define BK_CONF_H

#include "mq_config.h"

/* X(name, type, default, min, max, doc) */
#define BK_CONF_KEYS(X)                                                                            \
    X(bookieId, STR, "", 0, 0,                                                                     \
      "Identity of this bookie in ZooKeeper; empty means advertisedAddress:bookiePort")            \
    X(bookiePort, INT, "3181", 1, 65535, "TCP port of the bookie protocol")                        \
    X(bindAddress, STR, "0.0.0.0", 0, 0, "Address the bookie protocol listens on")                 \
    X(advertisedAddress, STR, "127.0.0.1", 0, 0,                                                   \
      "Address clients use to reach this bookie (registered in ZooKeeper)")                        \
    X(zkServers, STR, "127.0.0.1:2181", 0, 0, "ZooKeeper connect string (host:port,...)")          \
    X(zkTimeout, INT, "10000", 1000, 600000, "ZooKeeper session timeout, ms")                      \
    X(zkLedgersRootPath, STR, "/ledgermq", 0, 0, "Root znode of the LedgerMQ cluster")             \
    X(journalDirectories, STR, "data/bookie/journal", 0, 0,                                        \
      "Journal directory (one; put it on the fastest device)")                                     \
    X(ledgerDirectories, STR, "data/bookie/ledgers", 0, 0,                                         \
      "Comma-separated ledger directories: entry logs, index, lastMark")                           \
    X(journalSyncData, BOOL, "true", 0, 0,                                                         \
      "fdatasync the journal before acknowledging an add (false risks acknowledged data)")         \
    X(journalInlineWrites, BOOL, "true", 0, 0,                                                     \
      "With journalSyncData: the network thread writes and syncs the journal once per event-loop " \
      "iteration instead of waking the journal writer thread")                                     \
    X(journalMaxGroupWaitMSec, INT, "2", 0, 1000,                                                  \
      "Longest a journal record waits for its group to be written while a sync is under way")      \
    X(journalBufferedWritesThreshold, INT, "524288", 4096, 67108864,                               \
      "Write the journal group once this many bytes are waiting")                                  \
    X(journalMaxSizeMB, INT, "64", 1, 2048,                                                        \
      "Size of each journal file (preallocated, zero-filled, recycled), MiB")                      \
    X(journalPreAllocSizeMB, INT, "1", 1, 1024,                                                    \
      "New journal files are zero-filled and synced this much at a time, at the writer's pace, "   \
      "MiB")                                                                                       \
    X(journalAlignmentSize, INT, "4096", 512, 65536,                                               \
      "Journal writes start on multiples of this (a block with acked data is never rewritten)")    \
    X(journalMaxBackups, INT, "5", 0, 1000, "Old journal files kept for reuse after a checkpoint") \
    X(logSizeLimit, INT, "1073741824", 1048576, 4026531840LL,                                      \
      "Size at which the active entry log rotates, bytes")                                         \
    X(flushInterval, INT, "10000", 100, 3600000,                                                   \
      "Checkpoint interval (each wait drawn within +-25%, so bookies do not checkpoint in step): " \
      "write cache to entry logs and index, then trim the journal, ms")                            \
    X(dbStorage_writeCacheMaxSizeMb, INT, "64", 1, 65536,                                          \
      "Write cache size, MiB; a checkpoint starts at half (+-25%), adds pause when full")          \
    X(dbStorage_rocksDB_blockCacheSize, INT, "16777216", 0, 68719476736LL,                         \
      "RocksDB block cache for the index, bytes")                                                  \
    X(numReadWorkerThreads, INT, "2", 1, 64, "Threads that serve reads from storage")              \
    X(maxPendingAddRequestsPerThread, INT, "10000", 16, 1000000,                                   \
      "Adds waiting for the journal before the bookie stops reading from clients")                 \
    X(nettyMaxFrameSizeBytes, INT, "5253120", 65536, 67108864,                                     \
      "Largest request frame; larger ones are refused with TOO_LARGE")                             \
    X(diskUsageThreshold, DOUBLE, "0.95", 0, 1,                                                    \
      "Disk usage above which the bookie becomes read-only")                                       \
    X(diskUsageLwmThreshold, DOUBLE, "0.90", 0, 1,                                                 \
      "Disk usage below which a read-only bookie becomes writable again")                          \
    X(diskCheckInterval, INT, "10000", 50, 3600000, "Disk usage check interval, ms")               \
    X(readOnlyModeEnabled, BOOL, "true", 0, 0,                                                     \
      "Become read-only when disks fill (false: refuse adds and stay registered as writable)")     \
    X(httpServerEnabled, BOOL, "false", 0, 0, "Serve /heartbeat, /metrics and /api/v1 over HTTP")  \
    X(httpServerPort, INT, "8000", 0, 65535, "HTTP admin port (0: any free port)")                 \
    X(logLevel, STR, "info", 0, 0, "Log level: error, warn, info or debug")

typedef struct bk_conf {
    BK_CONF_KEYS(MQ_CONF_FIELD)
} bk_conf_t;

extern const mq_conf_key_t bk_conf_keys[];
extern const size_t bk_conf_nkeys;

#endif
