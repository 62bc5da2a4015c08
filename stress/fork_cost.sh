#!/bin/sh
# fork_cost.sh - what one connection costs echod in CPU, against what a
# bare fork+_exit+waitpid costs on this machine.
#
#   stress/fork_cost.sh [-n N] ECHOD [ECHOD...]
#
# For each echod binary: start it on 127.0.0.1 port 0, make N sequential
# connections (connect, 64-byte echo, close) from one Python client, and
# read the server's process-tree CPU (utime+stime+cutime+cstime of the
# parent from /proc, children included once reaped) before and after.
# Then the same N iterations of fork+_exit+waitpid from a small C program,
# built dynamic and static. Prints microseconds of CPU per connection /
# per fork. Extra echod options may be given in $ECHOD_ARGS (e.g. -q).
# Loopback only; every process it starts is stopped by pid.
set -eu

N=2000
if [ "${1:-}" = "-n" ]; then
	N=$2
	shift 2
fi
[ $# -ge 1 ] || { echo "usage: $0 [-n N] ECHOD [ECHOD...]" >&2; exit 2; }

TMP=$(mktemp -d)
SRV=
cleanup() {
	if [ -n "$SRV" ]; then kill "$SRV" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
HZ=$(getconf CLK_TCK)

# utime+stime+cutime+cstime of a process, in clock ticks.
ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
}

# The baseline is bench.sh's: stress/forkloop.c, built dynamic and static.
HERE=$(cd "$(dirname "$0")" && pwd)
cc -O2 -o "$TMP/bare-dyn" "$HERE/forkloop.c"
cc -O2 -static -o "$TMP/bare-static" "$HERE/forkloop.c"

n=0
for bin in "$@"; do
	# A fresh log per server: the old one may still say "listening on".
	n=$((n + 1))
	LOG=$TMP/log.$n
	: >"$LOG"
	# shellcheck disable=SC2086 # ECHOD_ARGS is a list of options
	"$bin" -b 127.0.0.1 -p 0 ${ECHOD_ARGS:-} 2>"$LOG" &
	SRV=$!
	i=0
	while ! grep -q 'listening on' "$LOG"; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "$bin did not start" >&2; exit 1; }
		sleep 0.05
	done
	PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$LOG")
	T0=$(ticks "$SRV")
	python3 - "$PORT" "$N" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
msg = b"x" * 64
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(msg)
    got = b""
    while len(got) < 64:
        b = s.recv(64 - len(got))
        if not b:
            sys.exit("short echo")
        got += b
    if got != msg:
        sys.exit("bad echo")
    s.close()
PY
	# Let the last children exit and be reaped.
	sleep 0.5
	T1=$(ticks "$SRV")
	kill "$SRV"
	wait "$SRV" || true
	SRV=
	echo "echod $(file -b "$bin" | grep -q 'statically' && echo static || echo dynamic) ($bin): $(((T1 - T0) * 1000000 / HZ / N)) us CPU per connection"
done
cpu() { sed -n 's/.*"cpu_us_per_fork": *\([0-9.]*\).*/\1/p'; }
echo "bare fork+_exit+waitpid, dynamic: $("$TMP/bare-dyn" "$N" | cpu) us CPU per fork"
echo "bare fork+_exit+waitpid, static:  $("$TMP/bare-static" "$N" | cpu) us CPU per fork"
