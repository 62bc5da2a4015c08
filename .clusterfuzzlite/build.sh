#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build of every fuzz target of echod.
#
# Runs with the environment OSS-Fuzz gives a build script: CC, CXX, CFLAGS,
# CXXFLAGS (the sanitizer and -fsanitize=fuzzer-no-link), LIB_FUZZING_ENGINE
# (what a target links instead of -fsanitize=fuzzer), SRC (the tree is
# $SRC/echod), WORK (scratch) and OUT. Leaves in $OUT, for each target NAME
# that fuzz/CMakeLists.txt declares (echod_fuzz_target):
#   NAME                  the fuzz target
#   NAME_seed_corpus.zip  the seeds of corpus/NAME/
#   NAME.dict             fuzz/NAME.dict, when the target has one
# Writes nothing in $SRC. tests/fuzzbuild/ runs it under ctest.
tree=$SRC/echod
build=$WORK/echod-build

# A fuzzing-only build (the engine and the fuzz targets, no echod) with the
# flags exactly as given: build type None adds no -O or -g of its own.
cmake -S "$tree" -B "$build" \
	-DCMAKE_BUILD_TYPE=None \
	-DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" \
	-DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DCMAKE_CXX_FLAGS="${CXXFLAGS:-$CFLAGS}" \
	--no-warn-unused-cli \
	-DECHOD_FUZZ=ON -DBUILD_TESTING=OFF \
	-DECHOD_LIB_FUZZING_ENGINE="$LIB_FUZZING_ENGINE"

list=$build/fuzz/fuzz_targets.txt # NAME <tab> corpus dir <tab> dict or -
names=$(cut -f1 "$list")
[ -n "$names" ] || { echo "build.sh: no fuzz target in $list" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j"$(nproc)" --target $names

while IFS=$'\t' read -r name corpus dict; do
	cp "$build/fuzz/$name" "$OUT/$name"
	rm -f "$OUT/${name}_seed_corpus.zip"
	(cd "$corpus" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
	extra=
	if [ "$dict" != - ]; then
		cp "$dict" "$OUT/$name.dict"
		extra=", $name.dict"
	fi
	echo "build.sh: $OUT/$name, ${name}_seed_corpus.zip$extra"
done <"$list"
