#!/usr/bin/env bash
# clusterfuzzlite.sh SRC_DIR WORK_DIR CLANG FUZZ_TARGETS_TXT
#
# Runs .clusterfuzzlite/build.sh here as OSS-Fuzz's base-builder would
# (ASan, libFuzzer): in WORK_DIR (emptied first) it lays out SRC (the tree
# as $SRC/echod, a symbolic link; build.sh beside it as the Dockerfile puts
# it), WORK and OUT, runs build.sh from $SRC/echod with CC, CXX, CFLAGS,
# CXXFLAGS, LIB_FUZZING_ENGINE, SRC, WORK and OUT set, then checks that
# $OUT has, for every target in FUZZ_TARGETS_TXT (the list that
# fuzz/CMakeLists.txt writes in the enclosing build): the binary, its
# NAME_seed_corpus.zip holding every seed, NAME.dict when the target has a
# dictionary, and that the binary runs -runs=100 over its seeds.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 SRC_DIR WORK_DIR CLANG FUZZ_TARGETS_TXT" >&2; exit 2; }
tree=$(cd "$1" && pwd) work=$2 clang=$3 targets=$4
fail() { echo "clusterfuzzlite: FAIL: $*" >&2; exit 1; }
command -v zip >/dev/null || fail "zip is not installed (apt-get install zip)"

mkdir -p "$work" && work=$(cd "$work" && pwd)
# A build directory inside the tree that $SRC/echod links to (CI builds in
# build-ci/ at the top of the tree) makes CMake see the sources through two
# paths and put the binaries elsewhere: lay $SRC, $WORK and $OUT out in a
# temporary directory of their own then.
case "$work/" in
"$tree"/*)
	work=$(mktemp -d "${TMPDIR:-/tmp}/echod-clusterfuzzlite.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	;;
esac
rm -rf "$work" && mkdir -p "$work/src" "$work/work" "$work/out" "$work/check"
ln -s "$tree" "$work/src/echod"
cp "$tree/.clusterfuzzlite/build.sh" "$work/src/build.sh"

clangxx=${clang}++
command -v "$clangxx" >/dev/null || clangxx=clang++
flags="-fsanitize=address,fuzzer-no-link -O1 -g"
echo "== .clusterfuzzlite/build.sh (CC=$clang CFLAGS=\"$flags\" LIB_FUZZING_ENGINE=-fsanitize=fuzzer)"
(cd "$work/src/echod" &&
	env -u CFLAGS -u CXXFLAGS -u LDFLAGS \
		CC="$clang" CXX="$clangxx" CFLAGS="$flags" CXXFLAGS="$flags" \
		LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
		SRC="$work/src" WORK="$work/work" OUT="$work/out" \
		bash -eu "$work/src/build.sh") >"$work/build.log" 2>&1 ||
	{ tail -60 "$work/build.log"; fail "build.sh failed"; }
grep '^build.sh:' "$work/build.log" || true

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
n=0
while IFS=$'\t' read -r name corpus dict; do
	[ -n "$name" ] || continue
	n=$((n + 1))
	bin=$work/out/$name zipf=$work/out/${name}_seed_corpus.zip
	[ -x "$bin" ] || fail "no \$OUT/$name"
	[ -f "$zipf" ] || fail "no \$OUT/${name}_seed_corpus.zip"
	if [ "$dict" != - ]; then
		cmp -s "$dict" "$work/out/$name.dict" || fail "no \$OUT/$name.dict equal to $dict"
	fi
	seeds=$work/check/$name
	mkdir -p "$seeds"
	(cd "$seeds" && cmake -E tar xf "$zipf") || fail "cannot unpack ${name}_seed_corpus.zip"
	want=$(find "$corpus" -type f | wc -l)
	got=$(find "$seeds" -type f | wc -l)
	[ "$got" = "$want" ] || fail "${name}_seed_corpus.zip has $got seeds, corpus/$name $want"
	# The seeds directory is listed last and a scratch one first, so that
	# libFuzzer writes nothing among the unpacked seeds.
	mkdir -p "$work/check/$name-new"
	"$bin" -runs=100 -artifact_prefix="$work/check/$name-" \
		"$work/check/$name-new" "$seeds" >"$work/check/$name.log" 2>&1 ||
		{ tail -40 "$work/check/$name.log"; fail "\$OUT/$name -runs=100 failed"; }
	echo "ok $name: binary, ${name}_seed_corpus.zip ($got seeds)$([ "$dict" != - ] && echo ", $name.dict"), -runs=100: $(grep -o 'Done [0-9]* runs.*' "$work/check/$name.log")"
done <"$targets"
[ "$n" -gt 0 ] || fail "no fuzz target listed in $targets"

rm -rf "$work"
echo "clusterfuzzlite: all passed ($n targets)"
