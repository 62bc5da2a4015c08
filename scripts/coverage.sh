#!/bin/sh
# coverage.sh - line and branch coverage of the protocol engine (src/proto.c)
# reached by replaying the seed corpus through the fuzz harness.
#
#   scripts/coverage.sh [BUILD_DIR] [CORPUS_DIR...]
#
# BUILD_DIR defaults to build-coverage (configured with gcc and
# -DECHOD_COVERAGE=ON if it does not exist yet); the corpus defaults to
# corpus/echo_fuzz. SRC_DIR overrides the source tree (default: this
# script's parent). The counters are reset first, so the report covers this
# replay only. Exits non-zero if the replay fails.
set -eu

SRC_DIR=${SRC_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD_DIR=${1:-build-coverage}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- "$SRC_DIR/corpus/echo_fuzz"

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
	CC=${CC:-gcc} cmake -S "$SRC_DIR" -B "$BUILD_DIR" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_COVERAGE=ON >/dev/null
fi
cmake --build "$BUILD_DIR" -j2 --target echo_fuzz_replay >/dev/null

find "$BUILD_DIR" -name '*.gcda' -delete
"$BUILD_DIR/fuzz/echo_fuzz_replay" "$@"

# Paths as the build compiled them: -r is the source tree, the filter is
# relative to it.
ROOT=$(cd "$SRC_DIR" && pwd)
echo "== lines (Missing: line numbers never run)"
gcovr -r "$ROOT" --filter 'src/proto\.c$' "$BUILD_DIR"
echo "== branches (Missing: lines with a branch never taken)"
gcovr -r "$ROOT" --filter 'src/proto\.c$' --branches "$BUILD_DIR"
