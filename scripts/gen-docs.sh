#!/usr/bin/env bash
# Regenerates docs/config-bookie.md and docs/config-ledger-client.md from the
# key tables (bookie/bk_conf.h, common/ledger/lc_conf.h are the sources). With --check, fails when the
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
if [ "${1:-}" = "--check" ]; then
  rc=0
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
fi
