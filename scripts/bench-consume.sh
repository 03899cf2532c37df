#!/usr/bin/env bash
# Benchmarks the consume path on this machine, in one run, and prints the
# rows recorded in docs/BENCHMARKS.md: ZooKeeper, 5 bookies (journal fsync
# on), one broker, ledgers (5,3,2), 1 KiB messages:
#   - produce and consume together at saturation (8-queue topic): does the
#     consumer keep up?
#   - end-to-end latency (store -> delivery, born -> delivery) at 5k msg/s
#   - a backlog of N messages in one queue, then a new group's first
#     message (the oldest, read cold from the bookies) and readMessages at
#     random offsets
#
#   ./scripts/bench-consume.sh [--dir DIR] [--quick] [--backlog N]
#
# DIR (default ./data/bench-consume) is wiped. Needs a build
# (scripts/build.sh). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${BUILD_DIR:-build}
DIR=data/bench-consume
SECS=20s
BACKLOG=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --quick) SECS=5s; BACKLOG=100000; shift ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    *) echo "bench-consume.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
rm -rf "$DIR"; mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "mem: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r)"
echo "build: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$ROOT/scripts/zookeeper.sh" stop --dir "$DIR/zk" >/dev/null 2>&1 || true
}
trap cleanup EXIT
ZK=$("$ROOT/scripts/zookeeper.sh" start --dir "$DIR/zk")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for i in 1 2 3 4 5; do
  cat > "$DIR/bookie-$i.conf" <<EOC
bookiePort=$(free_port)
bindAddress=127.0.0.1
zkServers=$ZK
journalDirectories=$DIR/bookie-$i/journal
ledgerDirectories=$DIR/bookie-$i/ledgers
EOC
  "$BIN/bookie/mqbookie" -c "$DIR/bookie-$i.conf" > "$DIR/bookie-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3 4 5; do
  until grep -q "bookie started" "$DIR/bookie-$i.log"; do sleep 0.1; done
done
BPORT=$(free_port)
cat > "$DIR/broker.conf" <<EOC
brokerName=bench-broker
brokerIP1=127.0.0.1
listenAddress=127.0.0.1
grpcServerPort=$BPORT
zkServers=$ZK
EOC
"$BIN/broker/mqbroker" -c "$DIR/broker.conf" > "$DIR/broker.log" 2>&1 &
PIDS+=($!)
until grep -q "broker started" "$DIR/broker.log"; do sleep 0.1; done
EP=127.0.0.1:$BPORT
echo; echo "== 5 bookies and 1 broker up (journalSyncData=true, ledgers (5,3,2))"
"$BIN/tools/mqadmin" -n "$EP" updateTopic -t bench -w 8 >/dev/null
"$BIN/tools/mqadmin" -n "$EP" updateTopic -t lat -w 8 >/dev/null
"$BIN/tools/mqadmin" -n "$EP" updateTopic -t backlog -w 1 >/dev/null

both() { # label, produce args, consume args
  local label=$1 pargs=$2 cargs=$3
  echo; echo "-- $label"
  echo "   mqbench produce --endpoints $EP --size 1024 $pargs"
  echo "   mqbench consume --endpoints $EP $cargs"
  "$BIN/tools/mqbench" consume --endpoints "$EP" --quiet $cargs > "$DIR/consume.out" 2>&1 &
  local cpid=$!
  "$BIN/tools/mqbench" produce --endpoints "$EP" --size 1024 --quiet $pargs | grep -E "throughput|latency"
  wait $cpid || true
  # A consumer that could not start prints no figures: show what it said.
  grep -E "received|throughput|latency|acked|first error|first message" "$DIR/consume.out" |
    sed 's/^/   consume: /' || tail -5 "$DIR/consume.out" | sed 's/^/   consume (no figures): /'
}
both "saturation: produce --max (batches of 32) while 4 consumers consume" \
  "--topic bench --producers 8 --max --batch 32 --inflight 16 --duration $SECS" \
  "--topic bench --group g-sat --consumers 4 --batch 32 --duration $SECS"
both "end to end at 5k msg/s" \
  "--topic lat --producers 4 --rate 5000 --batch 1 --duration $SECS" \
  "--topic lat --group g-lat --consumers 2 --batch 32 --duration $SECS"

echo; echo "-- backlog: $BACKLOG messages in one queue"
# mqbench produce runs for a time (it has no message count): open loop at
# 40k msg/s into the one queue, BACKLOG messages.
"$BIN/tools/mqbench" produce --endpoints "$EP" --topic backlog --size 1024 --quiet \
  --producers 8 --rate 40000 --batch 32 --duration "$(((BACKLOG + 39999) / 40000))s" |
  grep -E "sent|throughput"
"$BIN/tools/mqadmin" -n "$EP" topicStatus -t backlog | sed 's/^/   /'
for g in cold-1 cold-2 cold-3; do
  t0=$(date +%s%N)
  first=$("$BIN/tools/mqbench" consume --endpoints "$EP" --topic backlog --group "$g" \
    --consumers 1 --batch 1 --count 1 --quiet | grep "first message" || true)
  t1=$(date +%s%N)
  echo "   new group $g (offset 0, cold): ${first:-no message}; whole process $(( (t1 - t0) / 1000 )) us"
done
for off in 0 $((BACKLOG / 3)) $((BACKLOG / 2)) $((BACKLOG * 9 / 10)) $((BACKLOG - 1)); do
  t0=$(date +%s%N)
  took=$("$BIN/tools/mqadmin" -n "$EP" readMessages -t backlog -q 0 -o "$off" -m 1 2>&1 >/dev/null |
    grep -o "first after [0-9.]* ms" || true)
  t1=$(date +%s%N)
  echo "   readMessages offset $off: ${took:-no message}; whole process $(( (t1 - t0) / 1000 )) us"
done
cleanup; trap - EXIT
rm -rf "$DIR"
