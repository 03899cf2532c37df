#!/usr/bin/env bash
# Regenerates docs/config-bookie.md, docs/config-ledger-client.md and
# docs/config-broker.md from the key tables (bookie/bk_conf.h,
# common/ledger/lc_conf.h, broker/br_conf.h are the sources). With --check, fails when the
# committed file differs from what the build would generate.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}
gen() {
  cat <<'HDR'
# mqbookie configuration

Generated from `bookie/bk_conf.h` by `scripts/gen-docs.sh`; do not edit.
Keys follow BookKeeper's `bk_server.conf` names where BookKeeper has the same
setting. Files are `key=value` lines (`#` and `!` start comments); any key can
be overridden with `mqbookie --set key=value`. `mqbookie --help-config` prints
the same list.

HDR
  "$BIN/bookie/mqbookie" --help-config-markdown
}
gen_client() {
  cat <<'HDR'
# Ledger client configuration

Generated from `common/ledger/lc_conf.h` by `scripts/gen-docs.sh`; do not edit.
Every process that embeds a ledger client (brokers, `mqbench ledger -c FILE`)
takes these keys, named as BookKeeper's client names them where it has the
setting. `mqbench ledger --help-config` prints the same list.

HDR
  "$BIN/tools/mqbench" ledger --help-config-markdown
}
gen_broker() {
  cat <<'HDR'
# mqbroker configuration

Generated from `broker/br_conf.h` by `scripts/gen-docs.sh`; do not edit.
Keys follow RocketMQ's `broker.properties` names where RocketMQ has the same
setting (`brokerClusterName`, `brokerName`, `brokerIP1`, `grpcServerPort` as
the RocketMQ proxy calls it, `defaultTopicQueueNums`, `autoCreateTopicEnable`,
`maxMessageSize`, `fileReservedTime`), BookKeeper's for ZooKeeper and the
ledgers. Any key can be overridden with `mqbroker --set key=value`;
`mqbroker --help-config` prints the same list.

Failover: a broker that dies loses its ZooKeeper session after `zkTimeout`
(default 4000 ms; the ZooKeeper server's `minSessionTimeout`, 2 x tickTime,
must allow it); its queues are then fenced, recovered and served by another
broker, within about 6 s in all.

HDR
  "$BIN/broker/mqbroker" --help-config-markdown
}
if [ "${1:-}" = "--check" ]; then
  rc=0
  if ! diff -u docs/config-broker.md <(gen_broker); then
    echo "docs/config-broker.md is stale: run scripts/gen-docs.sh" >&2
    rc=1
  fi
  if ! diff -u docs/config-bookie.md <(gen); then
    echo "docs/config-bookie.md is stale: run scripts/gen-docs.sh" >&2
    rc=1
  fi
  if ! diff -u docs/config-ledger-client.md <(gen_client); then
    echo "docs/config-ledger-client.md is stale: run scripts/gen-docs.sh" >&2
    rc=1
  fi
  exit $rc
else
  gen > docs/config-bookie.md
  gen_client > docs/config-ledger-client.md
  gen_broker > docs/config-broker.md
fi
