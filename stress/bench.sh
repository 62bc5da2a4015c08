#!/bin/bash
# bench.sh - echod against the fork-based anchors (socat, tcpserver,
# openbsd-inetd), the single-process epoll echo and a bare fork loop, on
# loopback; the scenarios and targets of stress/BENCH.md.
#
#   stress/bench.sh [--build DIR] [--quick] [--runs N] [--servers LIST]
#                   [--hold N] [--json PATH] ...   (--help for all options)
#
# Builds what is missing in the build directory (Release, default
# build-bench at the top of the tree) and the bare fork loop
# (stress/forkloop.c, dynamic and static), then runs stress/bench.py.
# Every server is started on 127.0.0.1 and stopped by pid; an interrupted
# run stops them too (bench.py's signal handlers and exit path).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=$ROOT/build-bench
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	--build) BUILD=${args[i + 1]:?--build needs a directory} ;;
	--build=*) BUILD=${args[i]#--build=} ;;
	-h | --help) exec python3 "$HERE/bench.py" --help ;;
	esac
done

# Always (re)build: an incremental build is a no-op when nothing changed,
# and a stale echod would silently measure old code.
echo "bench: building echod, echo-stress, epoll_echo in $BUILD" >&2
[ -f "$BUILD/CMakeCache.txt" ] ||
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$BUILD" -j2 --target echod echo-stress epoll_echo >&2

# The baseline is a plain program built the ordinary way (dynamic glibc),
# plus a static build for reference.
CC=${CC:-cc}
mkdir -p "$BUILD/stress"
if [ ! -x "$BUILD/stress/forkloop" ] ||
	[ "$HERE/forkloop.c" -nt "$BUILD/stress/forkloop" ]; then
	"$CC" -std=c11 -O2 -Wall -Wextra -o "$BUILD/stress/forkloop" \
		"$HERE/forkloop.c"
	"$CC" -std=c11 -O2 -static -o "$BUILD/stress/forkloop-static" \
		"$HERE/forkloop.c" 2>/dev/null ||
		echo "bench: no static libc: static fork loop skipped" >&2
fi

# The minimal correct blocking fork echo: the strongest fork-based peer.
if [ ! -x "$BUILD/stress/forkecho" ] ||
	[ "$HERE/forkecho.c" -nt "$BUILD/stress/forkecho" ]; then
	"$CC" -std=c11 -O2 -Wall -Wextra -o "$BUILD/stress/forkecho" \
		"$HERE/forkecho.c"
fi

python3 "$HERE/bench.py" --build "$BUILD" "$@"

# The pictures, beside the JSON, with Debian's matplotlib when it is there
# (the Python on PATH may be another one).
json=$BUILD/bench-results.json
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	--json) json=${args[i + 1]} ;;
	--json=*) json=${args[i]#--json=} ;;
	esac
done
for py in /usr/bin/python3 python3; do
	if "$py" -c 'import matplotlib' 2>/dev/null; then
		"$py" "$HERE/plot.py" --out "$(dirname "$json")" "$json" >&2 &&
			echo "bench: plots in $(dirname "$json")" >&2
		break
	fi
done
