#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12), then builds
# with gcc and clang at -Werror and runs every check CI runs:
#   ctest in release (gcc), ASan+UBSan (clang) and MSan (clang: engine,
#   unit tests, corpus replay) builds; coverage of src/ over the whole
#   suite and every corpus, gated (scripts/coverage.sh); unit tests, corpus
#   replay and the integration suite under Valgrind memcheck; libFuzzer for
#   FUZZ_SECONDS (default 120) and AFL++ for AFL_SECONDS (default 60), each
#   divided between the fuzz targets (libFuzzer at least 30 s each, AFL++
#   at least 15 s: a second engine over the same corpus, kept short so the
#   whole run stays well under 30 minutes), from their corpus/NAME/.
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
	strace gdb zip zlib1g-dev ucspi-tcp openbsd-inetd haproxy systemd util-linux \
	python3-prometheus-client gcovr mandoc
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

# Every fuzz target: fuzz_targets.txt (written by fuzz/CMakeLists.txt)
# has one line per target: NAME, corpus directory, dictionary or "-".
fuzz_targets() { # build dir: sets the array targets, one line each
	local list=$1/fuzz/fuzz_targets.txt
	[ -s "$list" ] || { echo "no fuzz targets listed in $list"; exit 1; }
	mapfile -t targets <"$list"
}

mkdir -p "$root/build-ci"
B=$root/build-ci

# HdrHistogram's JavaScript implementation reads echo-stress's interval
# logs in stress_hdr_log (npm registry; Debian has no package for it).
# Node.js and npm may come from elsewhere than Debian (NodeSource's
# nodejs, which conflicts with Debian's npm): Debian's only when missing.
command -v node >/dev/null && command -v npm >/dev/null ||
	deps_install nodejs npm
if [ ! -d "$B/node/node_modules/hdr-histogram-js" ]; then
	step "npm install hdr-histogram-js"
	npm install --silent --no-audit --no-fund --prefix "$B/node" \
		hdr-histogram-js@3 >/dev/null
fi
export NODE_PATH=$B/node/node_modules ECHOD_REQUIRE_HDR_JS=1

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

# --- 5b. coverage ------------------------------------------------------------
# A gcc coverage build (its children write their counts too): the whole
# suite and every corpus; fails under 95 % of lines or 90 % of branches of
# echod's own files, or on an uncovered line not in
# tests/coverage-exceptions.txt.
step "coverage"
scripts/coverage.sh "$B/coverage"

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
fuzz_targets "$B/vg"
for line in "${targets[@]}"; do
	IFS=$'\t' read -r name corpus _ <<<"$line"
	"${vg[@]}" "$B/vg/fuzz/${name}_replay" "$corpus"
done
step "Valgrind: integration and client suites (children traced)"
ECHOD_VALGRIND=1 run_ctest "$B/vg" -L 'integration|client' -LE novalgrind

# --- 7. fuzzing, time-boxed --------------------------------------------------
# The total time of each fuzzer is shared by the targets (minimums above).
share() { # total seconds, number of targets, least seconds each
	local each=$(($1 / $2))
	echo $((each < $3 ? $3 : each))
}

step "libFuzzer (ASan+UBSan): ${FUZZ_SECONDS}s shared by the targets"
CC=clang build "$B/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_FUZZ=ON -DECHOD_ASAN=ON -DECHOD_UBSAN=ON
fuzz_targets "$B/fuzz"
secs=$(share "$FUZZ_SECONDS" "${#targets[@]}" 30)
rm -rf "$B/fuzz-work"
for line in "${targets[@]}"; do
	IFS=$'\t' read -r name corpus dict <<<"$line"
	step "libFuzzer: $name for ${secs}s"
	w=$B/fuzz-work/$name
	mkdir -p "$w/corpus" "$w/artifacts"
	dict_arg=()
	[ "$dict" = - ] || dict_arg=(-dict="$dict")
	"$B/fuzz/fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
		"${dict_arg[@]}" -artifact_prefix="$w/artifacts/" "$w/corpus" "$corpus"
	if [ -n "$(ls -A "$w/artifacts")" ]; then
		echo "libFuzzer left artifacts for $name:"; ls -l "$w/artifacts"; exit 1
	fi
done

step "AFL++: ${AFL_SECONDS}s shared by the targets"
CC=afl-clang-fast build "$B/afl" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_AFL=ON
fuzz_targets "$B/afl"
secs=$(share "$AFL_SECONDS" "${#targets[@]}" 15)
rm -rf "$B/afl-out" && mkdir -p "$B/afl-out"
for line in "${targets[@]}"; do
	IFS=$'\t' read -r name corpus dict <<<"$line"
	step "AFL++: $name for ${secs}s"
	out=$B/afl-out/$name
	dict_arg=()
	[ "$dict" = - ] || dict_arg=(-x "$dict")
	# The AFL++ build is not sanitized; afl-fuzz refuses our ASAN_OPTIONS.
	env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u MSAN_OPTIONS \
		AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
		AFL_NO_AFFINITY=1 AFL_QUIET=1 \
		timeout -k 10 $((secs + 60)) \
		afl-fuzz -V "$secs" -i "$corpus" -o "$out" "${dict_arg[@]}" \
		-- "$B/afl/fuzz/${name}_afl" >"$B/afl-$name.log" 2>&1 ||
		{ tail -30 "$B/afl-$name.log"; exit 1; }
	grep -E 'execs_done|execs_per_sec|saved_crashes|saved_hangs|bitmap_cvg' "$out/default/fuzzer_stats" || true
	crashes=$(find "$out/default/crashes" -type f -name 'id:*' | wc -l)
	if [ "$crashes" != 0 ]; then
		echo "AFL++ found $crashes crashes in $name:"; ls "$out/default/crashes"; exit 1
	fi
done

step "all checks passed"
