#!/usr/bin/env bash
# Checks (or with --fix, applies) .clang-format on every C file of ours.
# Generated code lives in build directories and is never checked.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$CF" ]; then
  echo "check-format: clang-format-14 not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(find common bookie broker tools tests -name '*.[ch]' | sort)
if [ "${1:-}" = "--fix" ]; then
  "$CF" -i "${files[@]}"
  exit 0
fi
"$CF" --dry-run -Werror "${files[@]}"
echo "check-format: ${#files[@]} files formatted"
