#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (CTest: unit and
# integration). Exits non-zero on any failure; the last line is CTest's
# summary.
#
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -L unit         only unit tests (any ctest arguments)
#   SANITIZE=address ./scripts/test.sh   ASan+UBSan build in build-asan/
#   SANITIZE=thread  ./scripts/test.sh   TSan build in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
case "${SANITIZE:-}" in
  "") export BUILD_DIR=${BUILD_DIR:-build}; extra=() ;;
  address) export BUILD_DIR=${BUILD_DIR:-build-asan}; extra=(-DMQ_SANITIZE=address) ;;
  thread) export BUILD_DIR=${BUILD_DIR:-build-tsan}; extra=(-DMQ_SANITIZE=thread) ;;
  *) echo "SANITIZE must be address or thread" >&2; exit 2 ;;
esac
./scripts/build.sh "${extra[@]}"
cd "$BUILD_DIR"
exec ctest --output-on-failure --timeout 900 "$@"
