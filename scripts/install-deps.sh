#!/usr/bin/env bash
# Installs every Debian package LedgerMQ needs to build, test and run, and
# only those that are missing. Idempotent and non-interactive. Needs root or
# sudo. Debian 12 (bookworm).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config git
  # gRPC core C API (client and admin APIs), protobuf/nanopb code generation
  libgrpc-dev nanopb libnanopb-dev python3-protobuf protobuf-compiler
  # ZooKeeper: C client (zookeeper_mt) and the server, run by scripts/zookeeper.sh
  libzookeeper-mt-dev zookeeper
  # event loop, index, config, tests
  libuv1-dev librocksdb-dev libinih-dev libcunit1-dev
  # SHA-256 for ledger master keys (OpenSSL's libcrypto; gRPC depends on it too)
  libssl-dev
  # format check and measurement tools
  clang-format-14 valgrind linux-perf procps
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages' services must not start on install (ZooKeeper is run by our scripts).
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
