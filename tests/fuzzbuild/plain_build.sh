#!/usr/bin/env bash
# plain_build.sh SRC_DIR WORK_DIR CC FUZZ_TARGETS_TXT
#
# Proves SPEC section 6: a plain `cmake -B build && cmake --build build`
# needs only cmake, a C compiler and libseccomp-dev. In WORK_DIR (emptied
# first), with compiler CC and cmocka and Python 3 hidden from CMake
# (CMAKE_DISABLE_FIND_PACKAGE_cmocka/_Python3, which the top-level
# CMakeLists.txt honours):
#   1. no option: configure says the tests are not built, BUILD_TESTING is
#      OFF in the cache, and the build gives src/echod, src/echo-client and
#      stress/echo-stress (and, when CC is clang, fuzz/NAME, the libFuzzer
#      binary, for every target in FUZZ_TARGETS_TXT), none linked with
#      cmocka, and no test is registered;
#   2. -DBUILD_TESTING=OFF: configure looks for neither cmocka nor Python;
#   3. -DBUILD_TESTING=ON with cmocka hidden: configure stops and says why.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 SRC_DIR WORK_DIR CC FUZZ_TARGETS_TXT" >&2; exit 2; }
src=$1 work=$2 cc=$3 targets=$4
jobs=$(nproc 2>/dev/null || echo 2)
fail() { echo "plain_build: FAIL: $*" >&2; exit 1; }
hide=(-DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON -DCMAKE_DISABLE_FIND_PACKAGE_Python3=ON)

rm -rf "$work" && mkdir -p "$work"
export CC=$cc
unset CFLAGS LDFLAGS

echo "== 1. CC=$cc cmake -B build (cmocka and Python 3 hidden) && cmake --build build"
b=$work/build
cmake -S "$src" -B "$b" "${hide[@]}" >"$work/configure1.log" 2>&1 ||
	{ cat "$work/configure1.log"; fail "configure without cmocka"; }
grep -q 'Tests not built: cmocka' "$work/configure1.log" ||
	{ cat "$work/configure1.log"; fail "configure did not say why tests are off"; }
grep -qx 'BUILD_TESTING:BOOL=OFF' "$b/CMakeCache.txt" || fail "BUILD_TESTING not OFF"
cmake --build "$b" -j"$jobs" >"$work/build1.log" 2>&1 ||
	{ tail -40 "$work/build1.log"; fail "build without cmocka"; }
for p in src/echod src/echo-client stress/echo-stress; do
	[ -x "$b/$p" ] || fail "no $p"
	echo "built $p"
done
if grep -rqs cmocka "$b"/src/CMakeFiles/*/link.txt "$b"/stress/CMakeFiles/*/link.txt; then
	fail "a program links cmocka"
fi
ntests=$(cd "$b" && ctest -N | sed -n 's/^Total Tests: //p')
[ "${ntests:-0}" = 0 ] || fail "$ntests tests registered with BUILD_TESTING off"
case $("$cc" --version 2>/dev/null | head -1) in
*clang*)
	n=0
	while IFS=$'\t' read -r name _; do
		[ -n "$name" ] || continue
		[ -x "$b/fuzz/$name" ] || fail "CC=$cc, no option: no fuzz/$name (libFuzzer)"
		echo "built fuzz/$name (libFuzzer)"
		n=$((n + 1))
	done <"$targets"
	[ "$n" -gt 0 ] || fail "no fuzz target listed in $targets"
	;;
esac

echo "== 2. -DBUILD_TESTING=OFF: neither cmocka nor Python looked for"
b=$work/off
cmake -S "$src" -B "$b" -DBUILD_TESTING=OFF >"$work/configure2.log" 2>&1 ||
	{ cat "$work/configure2.log"; fail "configure -DBUILD_TESTING=OFF"; }
if grep -E '^(CMOCKA_|Python3_)' "$b/CMakeCache.txt"; then
	fail "-DBUILD_TESTING=OFF still looks for a test dependency"
fi

echo "== 3. -DBUILD_TESTING=ON with cmocka hidden: configure stops"
b=$work/on
if cmake -S "$src" -B "$b" -DBUILD_TESTING=ON -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON \
	>"$work/configure3.log" 2>&1; then
	fail "-DBUILD_TESTING=ON configured without cmocka"
fi
grep -q 'libcmocka-dev' "$work/configure3.log" ||
	{ cat "$work/configure3.log"; fail "no hint to install cmocka"; }

rm -rf "$work"
echo "plain_build: all passed"
