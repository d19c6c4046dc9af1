#!/bin/sh
# The whole test suite: install what it needs (Debian 12, as root), configure, build, and
# run every ctest test. Exits non-zero on any failure. .ci/run calls this and nothing else.
#   scripts/test.sh                 # RelWithDebInfo build in build/
#   PRESET=asan scripts/test.sh     # ASan+UBSan build in build-asan/ (or PRESET=tsan)
#   scripts/test.sh -R Store        # extra arguments go to ctest
set -eu
cd "$(dirname "$0")/.."
PRESET="${PRESET:-default}"
scripts/deps.sh
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j "$(nproc)"
ctest --preset "$PRESET" -j "$(nproc)" --timeout 900 "$@"
