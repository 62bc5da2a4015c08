#!/bin/sh
# coverage.sh - line and branch coverage of all of src/, children of echod
# included, over the whole ctest suite plus every fuzz corpus; a gate on
# echod's own files (SPEC section 6, "Coverage").
#
#   scripts/coverage.sh [BUILD_DIR]
#
# BUILD_DIR (default build-coverage) is configured with gcc and
# -DECHOD_COVERAGE=ON if it has no CMakeCache.txt yet (a build directory
# configured otherwise is refused). Then:
#  1. build; reset the counters (every .gcda deleted);
#  2. run the whole ctest suite, -j2 (tests under RESOURCE_LOCK cpu_heavy
#     never run beside each other), then every corpus through
#     fuzz/NAME_replay (BUILD/fuzz/fuzz_targets.txt: NAME, corpus, dict);
#  3. report with gcovr (JSON in BUILD/coverage.json; HTML too with
#     COVERAGE_HTML=1) every file of src/: lines and branches.
# Branches are counted as gcovr --exclude-unreachable-branches counts them
# (none on a line that holds no code, such as a lone closing brace);
# --exclude-throw-branches would only matter for C++ and is not given.
# The branches of a line that is nothing but an X-macro expansion
# (STATS_FIELDS(X) in stats.c) are not counted either (its line is): the
# macro body is pasted once per field onto that one line, gcov cannot tell
# the copies apart, and most of their outcomes belong to no field (only
# the first field has no separator before it, only fields sharing a
# metric name share its HELP line). The fields are covered by the tests of
# the text they produce (tests/unit/test_stats.c).
#
# The gate, on echod's own files: the sources compiled into the echod
# binary (the compile units of its debug information, so the libraries it
# links count exactly as far as it links them) and the headers of src/.
# echo_client.c is reported, not gated. It fails (exit 1) when their
# total is under COV_MIN_LINES % of lines (95) or COV_MIN_BRANCHES % of
# branches (90), or when one of their uncovered lines is not listed in
# tests/coverage-exceptions.txt (format in that file's header). Entries
# that match no uncovered line are printed as stale, not failed: a line a
# timing-dependent test reaches on some runs must not fail the others.
# A failing test fails the script too, after the report.
#
# Children: a coverage build makes each child of echod write its counts
# before it leaves (src/coverage.h), as uid 65534 when the tests run as
# root and inside a sandbox that lets gcov write beneath the build
# directory only (src/sandbox.c). Hence umask 000 while the tests run
# and world-writable object directories: the children can then update
# and create .gcda files whoever created them first.
#
# SRC_DIR overrides the source tree (default: this script's parent).
set -eu

SRC_DIR=${SRC_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD_DIR=${1:-build-coverage}
COV_MIN_LINES=${COV_MIN_LINES:-95}
COV_MIN_BRANCHES=${COV_MIN_BRANCHES:-90}
EXCEPTIONS=${EXCEPTIONS:-$SRC_DIR/tests/coverage-exceptions.txt}

command -v gcovr >/dev/null ||
	{ echo "coverage.sh: gcovr not found (apt-get install gcovr)" >&2; exit 1; }
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
	mkdir -p "$BUILD_DIR"
	CC=gcc cmake -S "$SRC_DIR" -B "$BUILD_DIR" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DECHOD_COVERAGE=ON \
		-DECHOD_WERROR=ON >"$BUILD_DIR/configure.log" 2>&1 ||
		{ cat "$BUILD_DIR/configure.log"; exit 1; }
fi
grep -q '^ECHOD_COVERAGE:BOOL=ON$' "$BUILD_DIR/CMakeCache.txt" ||
	{ echo "coverage.sh: $BUILD_DIR is not a -DECHOD_COVERAGE=ON build" >&2; exit 1; }
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
ROOT=$(cd "$SRC_DIR" && pwd)
cmake --build "$BUILD_DIR" -j2 >"$BUILD_DIR/build.log" 2>&1 ||
	{ tail -50 "$BUILD_DIR/build.log"; exit 1; }

# --- counters to zero, writable by the children --------------------------
# As root, the children run as uid 65534: every folder above the build
# directory must let others through, or their counts are lost.
if [ "$(id -u)" = 0 ]; then
	d=$BUILD_DIR
	while [ "$d" != / ]; do
		case $(stat -c %A "$d") in
		*x | *t) ;;
		*) echo "coverage.sh: $d is not searchable by others: the" \
			"children (uid 65534) could not write their counts" >&2
		   exit 1 ;;
		esac
		d=$(dirname "$d")
	done
fi
find "$BUILD_DIR" -name '*.gcda' -delete
find "$BUILD_DIR" -name '*.gcno' -exec dirname {} + | sort -u |
	while IFS= read -r d; do chmod 0777 "$d"; done
umask 000

# --- the whole suite, then every corpus -----------------------------------
t0=$(date +%s)
tests_rc=0
(cd "$BUILD_DIR" && ctest -j2 --output-on-failure) || tests_rc=$?
t1=$(date +%s)
list=$BUILD_DIR/fuzz/fuzz_targets.txt
[ -s "$list" ] || { echo "coverage.sh: no fuzz targets in $list" >&2; exit 1; }
tab=$(printf '\t')
while IFS="$tab" read -r name corpus _; do
	echo "== replay corpus of $name: $corpus"
	"$BUILD_DIR/fuzz/${name}_replay" "$corpus" >/dev/null || tests_rc=1
done <"$list"
t2=$(date +%s)
echo "== ctest $((t1 - t0))s, corpora $((t2 - t1))s"

# --- report and gate --------------------------------------------------------
# echod's compile units, from its debug information.
readelf --debug-dump=info --dwarf-depth=1 "$BUILD_DIR/src/echod" 2>/dev/null |
	sed -n 's/.*DW_AT_name *:.* \([^ ]*\.c\)$/\1/p' >"$BUILD_DIR/echod-units.txt"
[ -s "$BUILD_DIR/echod-units.txt" ] ||
	{ echo "coverage.sh: no debug information in $BUILD_DIR/src/echod (configure with -g, e.g. RelWithDebInfo)" >&2; exit 1; }

html=
if [ "${COVERAGE_HTML:-0}" = 1 ]; then
	mkdir -p "$BUILD_DIR/coverage-html"
	html="--html-details $BUILD_DIR/coverage-html/index.html"
fi
# shellcheck disable=SC2086 # $html is two words or none
gcovr -r "$ROOT" --filter 'src/' --exclude-unreachable-branches -j 2 \
	--exclude-branches-by-pattern '^\s*STATS_FIELDS\(\w+\)\s*$' \
	--json "$BUILD_DIR/coverage.json" $html "$BUILD_DIR"

gate_rc=0
python3 - "$ROOT" "$BUILD_DIR/coverage.json" "$BUILD_DIR/echod-units.txt" \
	"$EXCEPTIONS" "$COV_MIN_LINES" "$COV_MIN_BRANCHES" <<'EOF' || gate_rc=$?
import collections, json, os, re, sys

root, cov, units, exc_path, min_lines, min_br = sys.argv[1:]
min_lines, min_br = float(min_lines), float(min_br)

def rel(p):
    p = os.path.normpath(os.path.join(root, p))
    return os.path.relpath(p, root)

gated = set()
for ln in open(units):
    p = rel(ln.strip())
    if p.startswith("src/"):
        gated.add(p)

data = json.load(open(cov))
files = {}
for f in data["files"]:
    name = rel(f["file"])
    if not name.startswith("src/"):
        continue
    lines = [l for l in f["lines"]
             if not l.get("gcovr/noncode") and not l.get("gcovr/excluded")]
    files[name] = lines
for name in files:
    if name.endswith(".h"):
        gated.add(name)

# The exceptions: "src/file.c: <the line's text, trimmed>  # reason".
entry_re = re.compile(r"^(?P<file>src/[^:\s]+):\s(?P<text>.*?)\s+#\s+(?P<why>\S.*)$")
allowed = collections.Counter()
where = {}
bad_entries = []
for n, ln in enumerate(open(exc_path), 1):
    s = ln.rstrip("\n")
    if not s.strip() or s.lstrip().startswith("#"):
        continue
    m = entry_re.match(s)
    if not m or not m.group("text").strip():
        bad_entries.append("%s:%d: not 'src/FILE: TEXT  # REASON': %s" % (exc_path, n, s))
        continue
    key = (m.group("file"), m.group("text").strip())
    allowed[key] += 1
    where.setdefault(key, n)

src_cache = {}
def text_of(name, n):
    if name not in src_cache:
        with open(os.path.join(root, name), errors="replace") as fh:
            src_cache[name] = fh.read().split("\n")
    t = src_cache[name]
    return t[n - 1].strip() if 0 < n <= len(t) else ""

def pct(a, b):
    return 100.0 * a / b if b else 100.0

print("\n%-22s %5s %14s %8s %14s %8s" % ("file", "gated", "lines", "%", "branches", "%"))
tot = [0, 0, 0, 0]
uncovered = collections.defaultdict(list)
for name in sorted(files):
    lines = files[name]
    lt = len(lines)
    lc = sum(1 for l in lines if l["count"] > 0)
    br = [b for l in lines for b in l.get("branches", [])]
    bt = len(br)
    bc = sum(1 for b in br if b["count"] > 0)
    g = name in gated
    print("%-22s %5s %6d/%-7d %7.1f%% %6d/%-7d %7.1f%%" %
          (name, "yes" if g else "no", lc, lt, pct(lc, lt), bc, bt, pct(bc, bt)))
    if g:
        tot[0] += lc; tot[1] += lt; tot[2] += bc; tot[3] += bt
        for l in lines:
            if l["count"] == 0:
                uncovered[name].append(l["line_number"])
print("%-22s %5s %6d/%-7d %7.1f%% %6d/%-7d %7.1f%%" %
      ("echod's files", "", tot[0], tot[1], pct(tot[0], tot[1]), tot[2], tot[3], pct(tot[2], tot[3])))

fail = list(bad_entries)
if pct(tot[0], tot[1]) < min_lines:
    fail.append("lines: %.2f%% of echod's files, under %g%%" % (pct(tot[0], tot[1]), min_lines))
if pct(tot[2], tot[3]) < min_br:
    fail.append("branches: %.2f%% of echod's files, under %g%%" % (pct(tot[2], tot[3]), min_br))

used = collections.Counter()
unlisted = []
print("\n== uncovered lines of echod's files (E: listed in %s)" % os.path.relpath(exc_path, root))
for name in sorted(uncovered):
    for n in uncovered[name]:
        t = text_of(name, n)
        key = (name, t)
        ok = used[key] < allowed[key]
        if ok:
            used[key] += 1
        else:
            unlisted.append("%s:%d: %s" % (name, n, t))
        print("  %s %s:%d: %s" % ("E" if ok else "!", name, n, t))
for u in unlisted:
    fail.append("uncovered, not in the exceptions: " + u)
for key, k in sorted(allowed.items()):
    if used[key] < k:
        print("stale exception (%s:%d): %s: %s (matches %d uncovered line(s) of %d listed)" %
              (os.path.relpath(exc_path, root), where[key], key[0], key[1], used[key], k))

if fail:
    print("\nCOVERAGE GATE FAILED:")
    for f in fail:
        print("  " + f)
    sys.exit(1)
print("\ncoverage gate passed: lines %.2f%% (>= %g%%), branches %.2f%% (>= %g%%), "
      "%d uncovered line(s), each listed" %
      (pct(tot[0], tot[1]), min_lines, pct(tot[2], tot[3]), min_br,
       sum(len(v) for v in uncovered.values())))
EOF

[ -n "$html" ] && echo "== HTML: $BUILD_DIR/coverage-html/index.html"
if [ "$tests_rc" != 0 ]; then
	echo "coverage.sh: some tests or corpus replays failed (see above)" >&2
	exit 1
fi
exit "$gate_rc"
