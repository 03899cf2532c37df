#!/usr/bin/env bash
# ZooKeeper launcher for LedgerMQ scripts and tests: runs Debian's ZooKeeper
# (package `zookeeper`) with its own data dir and config on 127.0.0.1, on a
# free port, and waits until it answers "imok".
#
#   scripts/zookeeper.sh start --dir DIR [--port PORT] [--tick-ms MS]
#       starts in the background; prints "127.0.0.1:PORT" once it answers;
#       writes DIR/zk.pid and DIR/zk.port; logs to DIR/zk.log
#   scripts/zookeeper.sh run --dir DIR [--port PORT] [--tick-ms MS]
#       the same in the foreground (exec), for scripts that supervise it
#   scripts/zookeeper.sh stop --dir DIR
#       stops the instance started with `start`
#   scripts/zookeeper.sh wait HOST:PORT [SECONDS]
#       waits until a server answers ruok
#
# Without --port a free port is chosen (and another one tried if the chosen one
# is taken before ZooKeeper binds it).
set -euo pipefail

die() { echo "zookeeper.sh: $*" >&2; exit 1; }

zk_classpath() {
  local cp="/usr/share/java/zookeeper.jar"
  [ -f "$cp" ] || die "Debian's ZooKeeper is not installed (/usr/share/java/zookeeper.jar); run scripts/install-deps.sh"
  # zookeeper.jar's manifest names its dependencies (jute, netty, slf4j, ...).
  echo "$cp"
}

# True when something accepts connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

# ruok HOST PORT: prints the answer ("imok") or nothing.
ruok() {
  local host=$1 port=$2 ans=""
  ans=$( (exec 3<>"/dev/tcp/$host/$port" && printf 'ruok' >&3 && timeout 2 cat <&3) 2>/dev/null || true)
  printf '%s' "$ans"
}

wait_ready() { # host port seconds [pid]
  local host=$1 port=$2 secs=$3 pid=${4:-}
  local deadline=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ "$(ruok "$host" "$port")" = "imok" ]; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    sleep 0.1
  done
  return 1
}

write_config() { # dir port tick
  local dir=$1 port=$2 tick=$3
  mkdir -p "$dir/data"
  cat > "$dir/zoo.cfg" <<EOF
# Written by scripts/zookeeper.sh
tickTime=$tick
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
minSessionTimeout=$(( tick * 2 ))
maxSessionTimeout=$(( tick * 60 ))
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
}

java_cmd() { # dir
  local dir=$1
  echo java -Xms16m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dzookeeper.log.dir="$dir" -Dzookeeper.root.logger=WARN,CONSOLE \
    -cp "$(zk_classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
}

cmd=${1:-}; shift || true
dir=""; port=""; tick=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --tick-ms) tick=$2; shift 2 ;;
    *) if [ "$cmd" = wait ]; then break; fi; die "unknown option $1" ;;
  esac
done

case "$cmd" in
  start)
    [ -n "$dir" ] || die "start needs --dir"
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    fixed=$port
    for attempt in 1 2 3 4 5; do
      p=${fixed:-$(pick_port)}
      write_config "$dir" "$p" "$tick"
      # shellcheck disable=SC2046
      nohup $(java_cmd "$dir") >>"$dir/zk.log" 2>&1 < /dev/null &
      pid=$!
      echo "$pid" > "$dir/zk.pid"
      echo "$p" > "$dir/zk.port"
      rc=0; wait_ready 127.0.0.1 "$p" 60 "$pid" || rc=$?
      if [ $rc -eq 0 ]; then echo "127.0.0.1:$p"; exit 0; fi
      kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      [ -z "$fixed" ] || die "ZooKeeper did not start on port $p (see $dir/zk.log)"
      echo "zookeeper.sh: port $p failed (attempt $attempt), trying another" >&2
    done
    die "ZooKeeper did not start (see $dir/zk.log)"
    ;;
  run)
    [ -n "$dir" ] || die "run needs --dir"
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    p=${port:-$(pick_port)}
    write_config "$dir" "$p" "$tick"
    echo "$p" > "$dir/zk.port"
    # shellcheck disable=SC2046
    exec $(java_cmd "$dir")
    ;;
  stop)
    [ -n "$dir" ] || die "stop needs --dir"
    if [ -f "$dir/zk.pid" ]; then
      pid=$(cat "$dir/zk.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/zk.pid"
    fi
    ;;
  wait)
    target=${1:?wait needs HOST:PORT}; secs=${2:-30}
    wait_ready "${target%:*}" "${target##*:}" "$secs" || die "no answer from $target"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
