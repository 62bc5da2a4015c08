#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12), then builds
# with gcc and clang at -Werror and runs every check CI runs:
#   ctest in release (gcc), ASan+UBSan (clang) and MSan (clang: engine,
#   unit tests, corpus replay) builds; unit tests, corpus replay and the
#   integration suite under Valgrind memcheck; libFuzzer for FUZZ_SECONDS
#   (default 120) and AFL++ for AFL_SECONDS (default 60) on the corpus.
# Any failure, sanitizer report, Valgrind error or fuzz finding fails it.
# Usage: scripts/check.sh            everything
#        QUICK=1 scripts/check.sh    release build + ctest only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
AFL_SECONDS=${AFL_SECONDS:-60}

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# --- 1. dependencies: install only what is missing ------------------------
. scripts/deps.sh
deps_install cmake make gcc libc6-dev clang clang-format libclang-rt-14-dev llvm-14 afl++ \
	libcmocka-dev libseccomp-dev valgrind netcat-openbsd socat python3 procps \
	strace gdb
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export MSAN_OPTIONS=${MSAN_OPTIONS:-abort_on_error=1}

build() { # dir, then cmake args
	local dir=$1; shift
	cmake -S "$root" -B "$dir" -DECHOD_WERROR=ON "$@" >"$dir.configure.log" 2>&1 ||
		{ cat "$dir.configure.log"; return 1; }
	cmake --build "$dir" -j"$jobs"
}
run_ctest() { # dir, then ctest args
	local dir=$1; shift
	(cd "$dir" && ctest --output-on-failure -j"$jobs" "$@")
}

mkdir -p "$root/build-ci"
B=$root/build-ci

# --- 2. every C file formatted as .clang-format says --------------------------
step "clang-format"
unformatted=()
while IFS= read -r f; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find src fuzz stress tests -name '*.[ch]')
if ((${#unformatted[@]})); then
	echo "not formatted (run clang-format -i): ${unformatted[*]}"; exit 1
fi

# --- 3. release build with gcc: the whole suite -----------------------------
step "gcc release build"
CC=gcc build "$B/gcc" -DCMAKE_BUILD_TYPE=RelWithDebInfo
step "ctest: gcc release"
run_ctest "$B/gcc"
[ "${QUICK:-0}" = 1 ] && { echo "QUICK=1: release checks only"; exit 0; }

# --- 4. clang with ASan+UBSan: the whole suite ------------------------------
step "clang ASan+UBSan build"
CC=clang build "$B/asan" -DCMAKE_BUILD_TYPE=Debug -DECHOD_ASAN=ON -DECHOD_UBSAN=ON
step "ctest: ASan+UBSan"
run_ctest "$B/asan"

# --- 5. clang with MSan: engine, unit tests, corpus replay ------------------
step "clang MSan build"
CC=clang build "$B/msan" -DCMAKE_BUILD_TYPE=Debug -DECHOD_MSAN=ON
step "ctest: MSan"
run_ctest "$B/msan"

# --- 6. Valgrind memcheck ----------------------------------------------------
# Valgrind 3.19 cannot run the seccomp() system call and gives false reports
# in a static glibc's start-up code, so this pass uses a dynamic build
# without the sandbox (its tests then check that --version says so); the
# sandbox itself is proven by the release and ASan+UBSan passes.
step "Valgrind build (dynamic, no sandbox)"
CC=gcc build "$B/vg" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_STATIC=OFF -DECHOD_SANDBOX=OFF
step "Valgrind: unit tests and corpus replay"
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
for t in "$B"/vg/tests/unit/test_proto "$B"/vg/tests/unit/test_opts; do
	"${vg[@]}" "$t"
done
"${vg[@]}" "$B/vg/fuzz/echo_fuzz_replay" "$root/corpus/echo_fuzz"
step "Valgrind: integration and client suites (children traced)"
ECHOD_VALGRIND=1 run_ctest "$B/vg" -L 'integration|client' -LE novalgrind

# --- 7. fuzzing, time-boxed --------------------------------------------------
step "libFuzzer (ASan+UBSan) for ${FUZZ_SECONDS}s"
CC=clang build "$B/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_FUZZ=ON -DECHOD_ASAN=ON -DECHOD_UBSAN=ON
rm -rf "$B/fuzz-work" && mkdir -p "$B/fuzz-work/corpus" "$B/fuzz-work/artifacts"
"$B/fuzz/fuzz/echo_fuzz" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
	-dict="$root/fuzz/echo_fuzz.dict" -artifact_prefix="$B/fuzz-work/artifacts/" \
	"$B/fuzz-work/corpus" "$root/corpus/echo_fuzz"
if [ -n "$(ls -A "$B/fuzz-work/artifacts")" ]; then
	echo "libFuzzer left artifacts:"; ls -l "$B/fuzz-work/artifacts"; exit 1
fi

step "AFL++ for ${AFL_SECONDS}s"
CC=afl-clang-fast build "$B/afl" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_AFL=ON
rm -rf "$B/afl-out"
# The AFL++ build is not sanitized; afl-fuzz refuses our ASAN_OPTIONS.
env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u MSAN_OPTIONS \
	AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
	AFL_NO_AFFINITY=1 AFL_QUIET=1 \
	timeout -k 10 $((AFL_SECONDS + 60)) \
	afl-fuzz -V "$AFL_SECONDS" -i "$root/corpus/echo_fuzz" -o "$B/afl-out" \
	-x "$root/fuzz/echo_fuzz.dict" -- "$B/afl/fuzz/echo_fuzz_afl" >"$B/afl.log" 2>&1 ||
	{ tail -30 "$B/afl.log"; exit 1; }
grep -E 'execs_done|execs_per_sec|saved_crashes|saved_hangs|bitmap_cvg' "$B/afl-out/default/fuzzer_stats" || true
crashes=$(find "$B/afl-out/default/crashes" -type f -name 'id:*' | wc -l)
if [ "$crashes" != 0 ]; then
	echo "AFL++ found $crashes crashes:"; ls "$B/afl-out/default/crashes"; exit 1
fi

step "all checks passed"
