#!/usr/bin/env bash
# Benchmarks the produce path of mqbroker on this machine, in one run, and
# prints the rows recorded in docs/BENCHMARKS.md: ZooKeeper, 5 bookies
# (journal fsync on) and one broker, ledgers (5,3,2), 1 KiB messages:
#   - maximum throughput with batching (mqbench produce --max)
#   - send latency p50/p99/p999 at fixed 2k, 5k and 10k msg/s
#   - broker RSS with 1,000 queues owned
#
#   ./scripts/bench-broker.sh [--dir DIR] [--quick]
#
# DIR (default ./data/bench-broker) is wiped. BROKER_EXTRA (env) holds extra
# broker.conf lines, e.g. BROKER_EXTRA=$'sendLingerMicros=0'. Needs a build
# (scripts/build.sh). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${BUILD_DIR:-build}
DIR=data/bench-broker
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "bench-broker.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
rm -rf "$DIR"; mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
SECS=20s; NQUEUES=1000
if [ "$QUICK" = 1 ]; then SECS=5s; NQUEUES=100; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "mem: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r)"
echo "disk: $(df -h "$DIR" | awk 'NR==2 {print $1, $2}') ($(findmnt -no FSTYPE -T "$DIR"))"
echo "build: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"

ZKDIR="$DIR/zk"
ZK=$("$ROOT/scripts/zookeeper.sh" start --dir "$ZKDIR")
PIDS=()
BROKER_PID=""
cleanup() {
  [ -n "$BROKER_PID" ] && { kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$ROOT/scripts/zookeeper.sh" stop --dir "$ZKDIR" || true
}
trap cleanup EXIT
for i in 1 2 3 4 5; do
  port=$(free_port)
  cat > "$DIR/bookie-$i.conf" <<EOC
bookiePort=$port
bindAddress=127.0.0.1
zkServers=$ZK
journalDirectories=$DIR/bookie-$i/journal
ledgerDirectories=$DIR/bookie-$i/ledgers
EOC
  "$BIN/bookie/mqbookie" -c "$DIR/bookie-$i.conf" > "$DIR/bookie-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3 4 5; do
  until grep -q "bookie started" "$DIR/bookie-$i.log"; do
    kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || { cat "$DIR/bookie-$i.log"; exit 1; }
    sleep 0.1
  done
done
BPORT=$(free_port)
cat > "$DIR/broker.conf" <<EOC
brokerName=bench-broker
brokerIP1=127.0.0.1
listenAddress=127.0.0.1
grpcServerPort=$BPORT
zkServers=$ZK
${BROKER_EXTRA:-}
EOC
"$BIN/broker/mqbroker" -c "$DIR/broker.conf" > "$DIR/broker.log" 2>&1 &
BROKER_PID=$!
until grep -q "broker started" "$DIR/broker.log"; do
  kill -0 "$BROKER_PID" 2>/dev/null || { cat "$DIR/broker.log"; exit 1; }
  sleep 0.1
done
EP=127.0.0.1:$BPORT
echo; echo "== 5 bookies and 1 broker up (journalSyncData=true, ledgers (5,3,2))"
"$BIN/tools/mqadmin" -n "$EP" updateTopic -t bench -w 8 >/dev/null

run() { # label, mqbench produce args...
  local label=$1; shift
  echo; echo "-- $label: mqbench produce --endpoints $EP --topic bench --size 1024 $*"
  "$BIN/tools/mqbench" produce --endpoints "$EP" --topic bench --size 1024 --quiet "$@"
}
# Fixed rates first: after the saturation runs the bookies spend a while
# flushing hundreds of MB from their write caches, which shows in the tails.
for r in 2000 5000 10000; do
  run "fixed $r msg/s" --producers 4 --rate "$r" --batch 1 --duration "$SECS"
done
run "saturation, batches of 32" --producers 8 --max --batch 32 --inflight 16 --duration "$SECS"
run "saturation, batches of 1" --producers 8 --max --batch 1 --inflight 64 --duration "$SECS"
echo; echo "broker RSS after the runs: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$BROKER_PID/status)"

echo; echo "== $NQUEUES queues owned by the broker"
"$BIN/tools/mqadmin" -n "$EP" updateTopic -t many -w "$NQUEUES" >/dev/null
start=$(date +%s)
until [ "$(grep -c 'serving queue topic=many ' "$DIR/broker.log")" -ge "$NQUEUES" ]; do
  kill -0 "$BROKER_PID" 2>/dev/null || { tail "$DIR/broker.log"; exit 1; }
  sleep 0.5
done
echo "all $NQUEUES queues served after $(( $(date +%s) - start )) s"
echo "broker RSS with $NQUEUES queues owned, idle: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$BROKER_PID/status)"
run "1 KiB to $NQUEUES queues" --producers 4 --rate 5000 --batch 1 --duration 5s --topic many
echo "broker RSS with $NQUEUES queues owned: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$BROKER_PID/status) (peak $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$BROKER_PID/status))"
cleanup; trap - EXIT
rm -rf "$DIR"
