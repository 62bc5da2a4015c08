#!/usr/bin/env bash
# soak_churn.sh - by-hand soak of echod under connection churn (not in CI).
#
#   stress/soak_churn.sh [-d SECONDS] [-i SECONDS] [-m N] [ECHOD [ECHO_STRESS]]
#
#   -d SECONDS  how long the load runs (default 600)
#   -i SECONDS  sampling interval (default 10)
#   -m N        abort when more than N processes on the machine sit in D
#               state for two samples in a row (default 3)
#   ECHOD, ECHO_STRESS  the binaries (default build/src/echod and
#               build/stress/echo-stress of this checkout); nothing is built
#
# It starts echod (sandbox on) on 127.0.0.1 with -q, then two echo-stress
# runs against it for the whole duration:
#   churn:  echo-stress -c 50 --churn 3        (a new connection every 3
#           round trips: thousands of forks a second, unpaced)
#   steady: echo-stress -c 300 --abuse reset=20 (300 steady connections and
#           20 clients that keep connecting and resetting)
# Every interval it prints the connection totals, echod's CPU time (utime +
# stime of the parent, of its reaped children and of the live ones, from
# /proc) and the number of processes in D state on the whole machine. If
# more than N sit in D state for two samples in a row it prints their
# /proc/PID/stack (when readable), kills what it started (by pid) and exits
# 3. At the end: connections made, errors, echo-stress's summary lines, the
# peak D-state count and echod's CPU microseconds per connection.
#
# Safety: a binary whose children each compile and load their own seccomp
# filter must NOT be soaked (sustained churn of per-child filters wedged
# the kernel's BPF allocator, and the machine, on a 6.18 kernel). Before
# any load the script opens one connection and compares the child's
# Seccomp_filters with the parent's: a child with more filters than its
# parent (or a parent with none) makes it refuse, unless SOAK_FORCE=1.
#
# Exit status: 0 load finished without errors, 1 errors reported by
# echo-stress or echod, 2 usage or setup problem, 3 aborted (D state, echod
# died).

set -u

DURATION=600
INTERVAL=10
DMAX=3

usage() {
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while getopts "d:i:m:h" opt; do
	case $opt in
	d) DURATION=$OPTARG ;;
	i) INTERVAL=$OPTARG ;;
	m) DMAX=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
for v in "$DURATION" "$INTERVAL" "$DMAX"; do
	case $v in
	'' | *[!0-9]*) echo "soak: not a number: '$v'" >&2; usage ;;
	esac
done
if [ "$DURATION" -lt 1 ] || [ "$INTERVAL" -lt 1 ]; then
	usage
fi

root=$(cd "$(dirname "$0")/.." && pwd)
ECHOD=${1:-$root/build/src/echod}
STRESS=${2:-$root/build/stress/echo-stress}
for b in "$ECHOD" "$STRESS"; do
	if [ ! -x "$b" ]; then
		echo "soak: $b is not an executable (build first, or pass the" \
			"paths: $0 ECHOD ECHO_STRESS)" >&2
		exit 2
	fi
done
if "$ECHOD" --version 2>&1 | grep -q "sandbox: off"; then
	echo "soak: $ECHOD was built without the sandbox" >&2
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/echod-soak.XXXXXX") || exit 2
TICK=$(getconf CLK_TCK)
ECHOD_PID=
CHURN_PID=
STEADY_PID=
START=$(date +%s)

log() { printf '[%5ds] %s\n' $(($(date +%s) - START)) "$*"; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Fields of /proc/PID/stat after "pid (comm) ", into the array F (F[0] is
# the state, F[1] the ppid, F[11] utime, F[12] stime, F[13] cutime, F[14]
# cstime). No subprocess: this runs for every process every sample.
stat_fields() {
	local line
	F=()
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	read -r -a F <<<"${line##*) }"
}

# The pids of pid's children (any state), from /proc.
kids_of() {
	local f pid
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		stat_fields "$pid" && [ "${F[1]}" = "$1" ] && echo "$pid"
	done
}

# Stop one process we started: TERM, a bounded wait, then KILL. Returns
# its exit status.
stop_pid() { # pid grace_seconds
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "pid $pid ignored SIGTERM for $2 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

cleanup() {
	local p kids=
	# echo-stress's workers and echod's children, by pid, in case their
	# parents cannot take them down themselves.
	for p in "$CHURN_PID" "$STEADY_PID"; do
		alive "$p" && kids="$kids $(kids_of "$p")"
	done
	stop_pid "$CHURN_PID" 15
	stop_pid "$STEADY_PID" 15
	for p in $kids; do
		alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	if alive "$ECHOD_PID"; then
		kids=$(kids_of "$ECHOD_PID")
		stop_pid "$ECHOD_PID" 20
		for p in $kids; do
			alive "$p" && kill -KILL "$p" 2>/dev/null
		done
	fi
	CHURN_PID=''
	STEADY_PID=''
	ECHOD_PID=''
}
trap cleanup EXIT
trap 'echo "soak: interrupted; logs in $work" >&2; exit 3' INT TERM

# utime+stime of echod's whole tree, in ticks: the parent, its reaped
# children (cutime, cstime) and the live ones.
tree_ticks() {
	local total=0 p
	stat_fields "$ECHOD_PID" &&
		total=$((F[11] + F[12] + F[13] + F[14]))
	for p in $(kids_of "$ECHOD_PID"); do
		stat_fields "$p" && total=$((total + F[11] + F[12]))
	done
	echo "$total"
}

# Processes in D state on the machine: "stat pid comm" lines.
dstate() {
	if command -v ps >/dev/null; then
		timeout 10 ps -eo stat,pid,comm | awk '$1 ~ /^D/'
	else
		local f pid
		for f in /proc/[0-9]*; do
			pid=${f#/proc/}
			stat_fields "$pid" && [ "${F[0]}" = D ] &&
				echo "D $pid $(cat "$f/comm" 2>/dev/null)"
		done
	fi
}

# echod's counters: SIGUSR1 makes it log a stats line (even with -q).
echod_stats() {
	local n
	n=$(grep -c " stats " "$work/echod.log")
	kill -USR1 "$ECHOD_PID" 2>/dev/null || return
	for _ in $(seq 1 30); do
		[ "$(grep -c " stats " "$work/echod.log")" -gt "$n" ] && break
		sleep 0.1
	done
	grep " stats " "$work/echod.log" | tail -1 | sed 's/^.* stats //'
}

kv() { # key stats-line
	echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# The number of connections an echo-stress run has opened so far, from its
# once-a-second progress line.
opened_so_far() {
	grep -o '([0-9]* opened)' "$1" 2>/dev/null | tail -1 | tr -dc 0-9
}

# --- echod ---------------------------------------------------------------

"$ECHOD" -q -p 0 -b 127.0.0.1 </dev/null >/dev/null 2>"$work/echod.log" &
ECHOD_PID=$!
port=
for _ in $(seq 1 100); do
	port=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$work/echod.log" |
		head -1 | sed 's/.*://')
	[ -n "$port" ] && break
	alive "$ECHOD_PID" || break
	sleep 0.1
done
if [ -z "$port" ]; then
	echo "soak: echod did not start:" >&2
	cat "$work/echod.log" >&2
	cleanup
	exit 2
fi
log "echod pid $ECHOD_PID on 127.0.0.1:$port; logs in $work"

# --- preflight: the children must share the parent's filter ---------------

pfilters=$(awk '/^Seccomp_filters:/ { print $2 }' "/proc/$ECHOD_PID/status")
cfilters=
if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
	printf 'preflight\n' >&3
	read -r -t 5 _ <&3
	for p in $(kids_of "$ECHOD_PID"); do
		cfilters=$(awk '/^Seccomp_filters:/ { print $2 }' \
			"/proc/$p/status" 2>/dev/null)
		[ -n "$cfilters" ] && break
	done
	exec 3>&-
fi
log "preflight: Seccomp_filters parent=${pfilters:-?} child=${cfilters:-?}"
if [ -z "$pfilters" ] || [ -z "$cfilters" ] || [ "$pfilters" -lt 1 ] ||
	[ "$cfilters" -gt "$pfilters" ]; then
	if [ "${SOAK_FORCE:-0}" = 1 ]; then
		log "preflight: children load filters of their own; SOAK_FORCE=1, going on"
	else
		echo "soak: refusing: echod's children do not just inherit the parent's" \
			"seccomp filter (parent ${pfilters:-?}, child ${cfilters:-?});" \
			"sustained churn of per-child filters can wedge the kernel." \
			"SOAK_FORCE=1 overrides." >&2
		cleanup
		exit 2
	fi
fi

# --- load ------------------------------------------------------------------

"$STRESS" -c 50 --churn 3 -d "$DURATION" --json "$work/churn.json" \
	127.0.0.1 "$port" >"$work/churn.out" 2>"$work/churn.err" </dev/null &
CHURN_PID=$!
"$STRESS" -c 300 -d "$DURATION" --abuse reset=20 --json "$work/steady.json" \
	127.0.0.1 "$port" >"$work/steady.out" 2>"$work/steady.err" </dev/null &
STEADY_PID=$!
log "echo-stress churn pid $CHURN_PID, steady pid $STEADY_PID, ${DURATION}s"

peak_d=0
prev_bad=0
aborted=
deadline=$(($(date +%s) + DURATION + 120))
while alive "$CHURN_PID" || alive "$STEADY_PID"; do
	sleep "$INTERVAL"
	if ! alive "$ECHOD_PID"; then
		aborted="echod (pid $ECHOD_PID) died"
		break
	fi
	st=$(echod_stats)
	ticks=$(tree_ticks)
	dlist=$(dstate)
	nd=$(printf '%s' "$dlist" | grep -c .)
	[ "$nd" -gt "$peak_d" ] && peak_d=$nd
	log "churn opened $(opened_so_far "$work/churn.err"), steady opened" \
		"$(opened_so_far "$work/steady.err"); echod accepted=$(kv accepted "$st")" \
		"active=$(kv active "$st") fork_failures=$(kv fork_failures "$st")" \
		"sandbox_kills=$(kv sandbox_kills "$st"); echod CPU" \
		"$((ticks * 1000 / TICK)) ms; D state: $nd"
	if [ "$nd" -gt "$DMAX" ]; then
		printf '%s\n' "$dlist" | sed 's/^/    D: /'
		if [ "$prev_bad" = 1 ]; then
			aborted="$nd processes in D state for two samples in a row"
			for p in $(printf '%s\n' "$dlist" | awk '{ print $2 }'); do
				echo "--- /proc/$p/stack ($(cat "/proc/$p/comm" 2>/dev/null)):"
				timeout 5 cat "/proc/$p/stack" 2>&1 | sed 's/^/    /'
			done
			break
		fi
		prev_bad=1
	else
		prev_bad=0
	fi
	if [ "$(date +%s)" -gt "$deadline" ]; then
		aborted="echo-stress still running $((DURATION + 120)) s after the start"
		break
	fi
done

if [ -n "$aborted" ]; then
	log "ABORT: $aborted"
	cleanup
	echo "soak: aborted ($aborted); logs in $work" >&2
	exit 3
fi
wait "$CHURN_PID"
churn_rc=$?
wait "$STEADY_PID"
steady_rc=$?
CHURN_PID=
STEADY_PID=

# --- results -------------------------------------------------------------

# Let the last children go, then the final counters and CPU time.
for _ in $(seq 1 50); do
	[ -z "$(kids_of "$ECHOD_PID")" ] && break
	sleep 0.1
done
st=$(echod_stats)
ticks=$(tree_ticks)
accepted=$(kv accepted "$st")
stop_pid "$ECHOD_PID" 20
echod_rc=$?
ECHOD_PID=

summary() { # file
	sed -n '/^phases:/,/^result:/p' "$1"
}
opened() { # file
	awk '/^connections:/ { print $2 }' "$1"
}
errors() { # file: the "total" of the errors line plus abusers' errors
	awk '/^errors:/ { for (i = 3; i <= NF; i += 2) s += $i }
	     /^abuse / { for (i = 1; i < NF; i++) if ($i ~ /^errors/) s += $(i + 1) }
	     END { print s + 0 }' "$1"
}
abuse_connects() {
	awk '/^abuse / { for (i = 2; i <= NF; i++)
			if ($i ~ /^connects/) s += $(i - 1) }
	     END { print s + 0 }' "$1"
}

echo
echo "=== churn: echo-stress -c 50 --churn 3 -d $DURATION (exit $churn_rc)"
summary "$work/churn.out"
echo "=== steady: echo-stress -c 300 --abuse reset=20 -d $DURATION" \
	"(exit $steady_rc)"
summary "$work/steady.out"
echo "=== echod"
echo "final counters: $st"
grep -E "SIGSYS|error|fatal" "$work/echod.log" | grep -v " stats " | head -20
echo "=== soak summary"
c1=$(opened "$work/churn.out")
c2=$(opened "$work/steady.out")
c3=$(abuse_connects "$work/steady.out")
e1=$(errors "$work/churn.out")
e2=$(errors "$work/steady.out")
echo "connections made: churn ${c1:-?}, steady ${c2:-?}, abusive ${c3:-?};" \
	"echod accepted ${accepted:-?}"
echo "errors: churn ${e1:-?}, steady ${e2:-?}; echod" \
	"sandbox_kills=$(kv sandbox_kills "$st")" \
	"fork_failures=$(kv fork_failures "$st")" \
	"log_dropped=$(kv log_dropped "$st")"
echo "peak D-state processes: $peak_d"
if [ -n "$accepted" ] && [ "$accepted" -gt 0 ]; then
	echo "echod CPU: $((ticks * 1000000 / TICK)) us in all," \
		"$((ticks * 1000000 / TICK / accepted)) us per connection"
fi
echo "logs: $work"

rc=0
if [ "$churn_rc" != 0 ] || [ "$steady_rc" != 0 ] || [ "${e1:-1}" != 0 ] ||
	[ "${e2:-1}" != 0 ] || [ "$(kv sandbox_kills "$st")" != 0 ] ||
	[ "$echod_rc" != 0 ]; then
	rc=1
fi
exit $rc
