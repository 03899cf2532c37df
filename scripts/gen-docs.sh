#!/usr/bin/env bash
# Regenerates docs/config-bookie.md from mqbookie's key table (the table in
# bookie/bk_conf.h is the single source). With --check, fails when the
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
if [ "${1:-}" = "--check" ]; then
  if ! diff -u docs/config-bookie.md <(gen); then
    echo "docs/config-bookie.md is stale: run scripts/gen-docs.sh" >&2
    exit 1
  fi
else
  gen > docs/config-bookie.md
fi
