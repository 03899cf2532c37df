#!/usr/bin/env bash
# Benchmarks one bookie (journal fsync on) against the disk it writes to, in
# one run, and prints the rows recorded in docs/BENCHMARKS.md:
#   - mqbench disk: raw group-commit fdatasync bandwidth of the same directory
#   - mqbench bookie: 1 KiB entries at 1, 16 and 256 in flight; 64 KiB entries
#   - the bookie's journal group size (bytes per fdatasync) and peak RSS
#
#   ./scripts/bench-bookie.sh [--dir DIR] [--quick]
#
# DIR (default ./data/bench) must be on the disk to measure; it is wiped.
# Needs a build (scripts/build.sh). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${BUILD_DIR:-build}
DIR=data/bench
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "bench-bookie.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
rm -rf "$DIR"; mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
SECS=5; N1=20000; N16=100000; N256=400000; N64K=15000
if [ "$QUICK" = 1 ]; then SECS=2; N1=3000; N16=20000; N256=60000; N64K=2000; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_get() { # port path
  exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3; cat <&3; exec 3<&-
}
metric() { http_get "$HTTP" /metrics | awk -v k="$1" '$1==k {print $2}'; }

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
echo "mem: $(free -g | awk '/Mem:/ {print $2}') GiB; kernel $(uname -r); $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "disk: $(df -h "$DIR" | awk 'NR==2 {print $1, $2}') ($(findmnt -no FSTYPE -T "$DIR"))"
echo "build: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(grep -m1 CMAKE_BUILD_TYPE:STRING "$BIN/CMakeCache.txt" | cut -d= -f2)"

echo; echo "== mqbench disk --dir $DIR (before)"
"$BIN/tools/mqbench" disk --dir "$DIR" --batch 4k,64k,256k,1m --seconds "$SECS"

ZKDIR="$DIR/zk"
ZK=$("$ROOT/scripts/zookeeper.sh" start --dir "$ZKDIR")
PORT=$(free_port); HTTP=$(free_port)
cat > "$DIR/bookie.conf" <<EOF
bookiePort=$PORT
bindAddress=127.0.0.1
zkServers=$ZK
journalDirectories=$DIR/bookie/journal
ledgerDirectories=$DIR/bookie/ledgers
httpServerEnabled=true
httpServerPort=$HTTP
EOF
"$BIN/bookie/mqbookie" -c "$DIR/bookie.conf" > "$DIR/bookie.log" 2>&1 &
BK=$!
cleanup() {
  kill -TERM "$BK" 2>/dev/null || true; wait "$BK" 2>/dev/null || true
  "$ROOT/scripts/zookeeper.sh" stop --dir "$ZKDIR" || true
}
trap cleanup EXIT
until grep -q "bookie started" "$DIR/bookie.log"; do
  kill -0 "$BK" 2>/dev/null || { cat "$DIR/bookie.log"; exit 1; }
  sleep 0.1
done
echo; echo "== bookie: $(grep -o 'bookie started.*' "$DIR/bookie.log")"

run() { # label size inflight entries ledgers
  local s0 b0 s1 b1
  s0=$(metric bookie_journal_syncs_total); b0=$(metric bookie_journal_bytes_total)
  echo; echo "-- $1: mqbench bookie --size $2 --inflight $3 --entries $4 --ledgers $5"
  "$BIN/tools/mqbench" bookie --bookies "127.0.0.1:$PORT" --size "$2" --inflight "$3" \
    --entries "$4" --ledgers "$5" | grep -E 'throughput|latency|failed'
  s1=$(metric bookie_journal_syncs_total); b1=$(metric bookie_journal_bytes_total)
  awk -v s=$((s1 - s0)) -v b=$((b1 - b0)) 'BEGIN { if (s > 0) printf "journal: %d fdatasyncs, %.1f KiB per sync\n", s, b / s / 1024 }'
}
run "1 KiB, 1 in flight" 1024 1 "$N1" 1
run "1 KiB, 16 in flight" 1024 16 "$N16" 4
run "1 KiB, 256 in flight" 1024 256 "$N256" 4
run "64 KiB, 64 in flight" 64k 64 "$N64K" 4
echo; echo "bookie RSS: $(awk '/VmHWM/ {printf "peak %.0f MiB", $2/1024}' /proc/$BK/status), $(awk '/VmRSS/ {printf "now %.0f MiB", $2/1024}' /proc/$BK/status)"
echo "bookie CPU: $(awk '{printf "%.1f s user, %.1f s system", $14/100, $15/100}' /proc/$BK/stat)"
cleanup; trap - EXIT

echo; echo "== mqbench disk --dir $DIR (after)"
"$BIN/tools/mqbench" disk --dir "$DIR" --batch 64k,256k,1m --seconds "$SECS"
rm -rf "$DIR"
