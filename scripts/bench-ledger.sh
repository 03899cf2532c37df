#!/usr/bin/env bash
# Benchmarks the ledger client against 5 bookies on this machine, in one run,
# and prints the rows recorded in docs/BENCHMARKS.md:
#   - the replicated ceiling: `mqbench disk --writers 3` (three journals on
#     one disk, as three replicas of each entry are), aggregate / 3
#   - mqbench ledger at (5,3,2), (3,3,3) and (1,1,1) with 1 KiB and 16 KiB
#     entries, and (5,3,2) 1 KiB with 1 in flight for latency
#
#   ./scripts/bench-ledger.sh [--dir DIR] [--quick]
#
# DIR (default ./data/bench-ledger) must be on the disk to measure; it is
# wiped. Needs a build (scripts/build.sh). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${BUILD_DIR:-build}
DIR=data/bench-ledger
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "bench-ledger.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
rm -rf "$DIR"; mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
SECS=5; N1K=200000; N16K=20000; NLAT=20000
if [ "$QUICK" = 1 ]; then SECS=2; N1K=30000; N16K=3000; NLAT=2000; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "mem: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r)"
echo "disk: $(df -h "$DIR" | awk 'NR==2 {print $1, $2}') ($(findmnt -no FSTYPE -T "$DIR"))"
echo "build: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"

echo; echo "== replicated ceiling: mqbench disk --writers 3 (before)"
"$BIN/tools/mqbench" disk --dir "$DIR" --writers 3 --batch 16k,64k,256k --seconds "$SECS" --file-mb 128

ZKDIR="$DIR/zk"
ZK=$("$ROOT/scripts/zookeeper.sh" start --dir "$ZKDIR")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$ROOT/scripts/zookeeper.sh" stop --dir "$ZKDIR" || true
}
trap cleanup EXIT
for i in 1 2 3 4 5; do
  port=$(free_port)
  cat > "$DIR/bookie-$i.conf" <<EOF
bookiePort=$port
bindAddress=127.0.0.1
zkServers=$ZK
journalDirectories=$DIR/bookie-$i/journal
ledgerDirectories=$DIR/bookie-$i/ledgers
EOF
  "$BIN/bookie/mqbookie" -c "$DIR/bookie-$i.conf" > "$DIR/bookie-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3 4 5; do
  until grep -q "bookie started" "$DIR/bookie-$i.log"; do
    kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || { cat "$DIR/bookie-$i.log"; exit 1; }
    sleep 0.1
  done
done
echo; echo "== 5 bookies up (defaults: journalSyncData=true)"

run() { # E Qw Qa size inflight entries ledgers
  echo; echo "-- ($1,$2,$3) $4 B, $5 in flight: mqbench ledger --ensemble $1 --write-quorum $2 --ack-quorum $3 --size $4 --inflight $5 --entries $6 --ledgers $7"
  "$BIN/tools/mqbench" ledger --zk "$ZK" --ensemble "$1" --write-quorum "$2" --ack-quorum "$3" \
    --size "$4" --inflight "$5" --entries "$6" --ledgers "$7" | grep -E 'throughput|latency|failed'
}
run 5 3 2 1024 1 "$NLAT" 1
run 5 3 2 1024 256 $((N1K / 4)) 4
run 5 3 2 16384 64 $((N16K / 4)) 4
run 3 3 3 1024 256 $((N1K / 4)) 4
run 3 3 3 16384 64 $((N16K / 4)) 4
run 1 1 1 1024 256 $((N1K / 4)) 4
run 1 1 1 16384 64 $((N16K / 4)) 4
echo
for i in 1 2 3 4 5; do
  echo "bookie $i RSS: $(awk '/VmHWM/ {printf "peak %.0f MiB", $2/1024}' /proc/${PIDS[$((i - 1))]}/status)"
done
cleanup; trap - EXIT

echo; echo "== replicated ceiling (after)"
"$BIN/tools/mqbench" disk --dir "$DIR" --writers 3 --batch 16k,64k,256k --seconds "$SECS" --file-mb 128
rm -rf "$DIR"
