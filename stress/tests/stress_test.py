#!/usr/bin/env python3
"""echo-stress verifier tests: one case per ctest test.

Each case starts a server on 127.0.0.1 port 0 (epoll_echo, bad_echo with a
fault, or echod), reads its real port from the "listening on" line, runs
echo-stress against it with --json, and checks the exit status and the
counts. Everything is bounded in time; servers are stopped by pid.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ARGS = None
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


class Server:
    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        self.port = None
        while time.time() < deadline:
            line = self.p.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on .*:(\d+)\s*$", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise SystemExit("server did not say 'listening on': %r" % argv)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def stress(port, *opts, timeout=30):
    fd, js = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    argv = [ARGS.stress, "--json", js] + [str(o) for o in opts] + \
        ["127.0.0.1", str(port)]
    print("$ " + " ".join(argv))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    sys.stdout.write(r.stdout)
    try:
        with open(js) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        print(r.stderr)
        rep = None
        check(False, "JSON report readable (%s)" % e)
    os.unlink(js)
    return r, rep


def with_server(argv, fn):
    s = Server(argv)
    try:
        fn(s.port)
    finally:
        s.stop()


def good_run(mode, extra=()):
    def run(port):
        r, rep = stress(port, "-c", 16, "-j", 2, "-d", 2, "-m", mode,
                        "-s", "0-3000" if mode != "raw" else "1-3000",
                        *extra)
        check(r.returncode == 0, "exit 0 against a correct server")
        if rep:
            check(rep["errors"]["total"] == 0, "no errors")
            check(rep["messages"] > 100, "messages were echoed (%d)" %
                  rep["messages"])
            check(rep["bytes_received"] == rep["bytes_sent"],
                  "every byte sent came back verified")
            check(rep["latency_us"]["round_trip"]["count"] ==
                  rep["messages"], "one latency sample per message")
            for key in ("config", "phases", "connections", "messages",
                        "bytes_sent", "bytes_received", "messages_per_s",
                        "mb_per_s", "latency_us", "errors", "first_errors",
                        "abuse", "exit_status"):
                check(key in rep, "JSON has '%s'" % key)
        return rep
    with_server([ARGS.good, "-p", "0"], run)


def fault_run(fault, kind, opts=("-c", 4, "-j", 1, "-d", 2, "-s", 64),
              min_offset=None):
    def run(port):
        r, rep = stress(port, "--timeout", 2, *opts)
        check(r.returncode == 1, "exit 1 against the '%s' server (got %d)"
              % (fault, r.returncode))
        if rep:
            check(rep["errors"][kind] > 0, "'%s' counted (%d)" %
                  (kind, rep["errors"][kind]))
            first = rep["first_errors"].get(kind)
            check(first is not None, "first '%s' located" % kind)
            if first and min_offset is not None:
                check(first["offset"] >= min_offset[0] and
                      first["offset"] <= min_offset[1],
                      "first %s at byte %d of the connection" %
                      (kind, first["offset"]))
    with_server([ARGS.bad, "--fault", fault, "-p", "0"], run)


def case_good_raw():
    good_run("raw")


def case_good_line():
    good_run("line", ("--delim", "nul"))


def case_good_frame():
    good_run("frame")


def case_good_open_loop():
    def run(port):
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 2, "--rate", 400)
        check(r.returncode == 0, "exit 0")
        if rep:
            n = rep["messages"]
            check(600 <= n <= 900, "open loop kept the rate (%d msgs)" % n)
            p99 = rep["latency_us"]["round_trip"]["p99"]
            check(p99 < 200000, "p99 %d us is low" % p99)
    with_server([ARGS.good, "-p", "0"], run)


def case_churn():
    def run(port):
        r, rep = stress(port, "-c", 8, "-j", 2, "-d", 2, "--churn", 3)
        check(r.returncode == 0, "exit 0 with churn")
        if rep:
            c = rep["connections"]
            check(c["opened_measure_phase"] > 50,
                  "reconnected in the measure phase (%d)" %
                  c["opened_measure_phase"])
            check(rep["latency_us"]["connect"]["count"] == c["opened"],
                  "one connect sample per connection")
            check(rep["errors"]["total"] == 0, "no errors")
    with_server([ARGS.good, "-p", "0"], run)


def case_flip():
    # bad_echo flips byte 999 of each connection: that is the first error
    fault_run("flip", "mismatch", min_offset=(999, 999))


def case_drop():
    fault_run("drop", "mismatch", min_offset=(999, 1100))


def case_dup():
    fault_run("dup", "mismatch", min_offset=(999, 1100))


def case_extra():
    fault_run("extra", "extra_bytes")


def case_close():
    fault_run("close", "short_echo")


def case_stall():
    def run(port):
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 4, "--rate", 200,
                        timeout=40)
        if rep:
            p99 = rep["latency_us"]["round_trip"]["p99"]
            check(p99 >= 500000, "open-loop p99 %d us shows the 1 s stalls"
                  % p99)
            check(rep["messages"] >= 600, "the schedule was kept (%d)" %
                  rep["messages"])
    with_server([ARGS.bad, "--fault", "stall", "-p", "0"], run)


def case_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r, rep = stress(port, "-c", 5, "-j", 1, "-d", 1)
    check(r.returncode == 1, "exit 1 when nothing listens")
    if rep:
        check(rep["errors"]["connect_refused"] == 5, "5 refused")


def case_abuse():
    def run(port):
        r, rep = stress(port, "-c", 8, "-j", 2, "-d", 3, "-m", "line",
                        "--max-msg", 1000, "-s", "1-500",
                        "--abuse", "slowloris=2", "--abuse", "noread=2",
                        "--abuse", "idle=2", "--abuse", "reset=2",
                        "--abuse", "oversize=2")
        check(r.returncode == 0, "measured clients pass beside abusers")
        if rep:
            check(rep["errors"]["total"] == 0, "no measured errors")
            a = rep["abuse"]
            for k in ("slowloris", "noread", "idle", "reset", "oversize"):
                check(a[k]["clients"] == 2 and a[k]["connects"] >= 2,
                      "%s clients connected" % k)
            check(a["reset"]["resets_sent"] >= 20, "resets sent (%d)" %
                  a["reset"]["resets_sent"])
            check(a["noread"]["bytes_sent"] > 65536, "noread pushed bytes")
            check(a["noread"]["bytes_received"] == 0, "noread never read")
            check(a["slowloris"]["bytes_sent"] >= 2, "slowloris trickled")
            check(a["idle"]["bytes_sent"] == 0, "idle said nothing")
            check(a["oversize"]["bytes_sent"] > 1000, "oversize sent")
            check("abuse" in r.stdout, "abuse reported in the summary")
    with_server([ARGS.good, "-p", "0"], run)


def case_echod_line_abuse():
    def run(port):
        r, rep = stress(port, "-c", 8, "-j", 2, "-d", 3, "-m", "line",
                        "--max-msg", 1000, "-s", "1-500",
                        "--abuse", "oversize=2", "--abuse", "reset=1",
                        "--abuse", "idle=1")
        check(r.returncode == 0, "echod: measured clients pass")
        if rep:
            check(rep["errors"]["total"] == 0, "no measured errors")
            check(rep["abuse"]["oversize"]["err_replies"] > 0,
                  "echod answered 'ERR too long'")
    with_server([ARGS.echod, "-p", "0", "-b", "127.0.0.1", "-m", "line",
                 "--max-msg", "1000"], run)


def case_hdr():
    def run(port):
        fd, hdr = tempfile.mkstemp(suffix=".hdr")
        os.close(fd)
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 1, "--hdr", hdr)
        check(r.returncode == 0, "exit 0")
        lines = open(hdr).read().splitlines()
        os.unlink(hdr)
        check(lines[0].split() == ["Value", "Percentile", "TotalCount",
                                   "1/(1-Percentile)"], "header line")
        check(lines[1] == "", "blank line after the header")
        rows = [l for l in lines[2:] if l and not l.startswith("#")]
        last_p, last_v, last_c = -1.0, -1.0, -1
        ok = True
        for row in rows[:-1]:
            f = row.split()
            v, p, c, inv = float(f[0]), float(f[1]), int(f[2]), float(f[3])
            ok &= len(f) == 4 and p > last_p and v >= last_v and c >= last_c
            ok &= abs(inv - 1.0 / (1.0 - p)) < 0.01 * inv + 0.01
            last_p, last_v, last_c = p, v, c
        check(len(rows) > 10 and ok, "%d rows, monotonic, 4 columns" %
              len(rows))
        f = rows[-1].split()
        total = rep["latency_us"]["round_trip"]["count"] if rep else -1
        check(len(f) == 3 and float(f[1]) == 1.0 and int(f[2]) == total,
              "last row: percentile 1.0 and the total count")
        foot = [l for l in lines if l.startswith("#[")]
        check(len(foot) == 3 and
              re.match(r"#\[Mean    = +[\d.]+, StdDeviation   = +[\d.]+\]$",
                       foot[0]) and
              re.match(r"#\[Max     = +[\d.]+, Total count    = +%d\]$" %
                       total, foot[1]) and
              re.match(r"#\[Buckets = +\d+, SubBuckets     = +\d+\]$",
                       foot[2]), "footer lines")
        if rep:
            mx = float(foot[1].split("=")[1].split(",")[0])
            check(abs(mx * 1000 - rep["latency_us"]["round_trip"]["max"])
                  < 1.0, "max in ms matches the JSON")
    with_server([ARGS.good, "-p", "0"], run)


def case_bad_options():
    bad = [["--bogus"], ["-c", "0"], ["-c", "12x"], ["-c"], ["-j", "0"],
           ["-d", "-1"], ["-d", "abc"], ["-n", "0"], ["-s", "5-3"],
           ["-s", "x"], ["-m", "tcp"], ["--delim", "ab"],
           ["--delim", "0x100"], ["--max-msg", "0"],
           ["--max-msg", "16777217"], ["--rate", "0"],
           ["--churn", "0"], ["--abuse", "flood=1"], ["--abuse", "idle"],
           ["--abuse", "idle=0"], ["--abuse", "oversize=1"],
           ["-m", "line", "-s", "70000"], ["--timeout", "0"],
           ["host", "70000"], ["host", "1", "extra"],
           ["no.such.host.invalid", "1"]]
    for b in bad:
        r = subprocess.run([ARGS.stress] + b, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(lines) == 2 and
              lines[0].startswith("echo-stress: ") and "--help" in lines[1]
              and r.stdout == "",
              "%s -> exit 2 with one line + hint (got %d: %r)" %
              (" ".join(b), r.returncode, r.stderr.strip()))
    r = subprocess.run([ARGS.stress, "--help"], stdout=subprocess.PIPE,
                       text=True, timeout=10)
    check(r.returncode == 0 and "--abuse KIND=N" in r.stdout and
          "--connect-rate" in r.stdout, "--help prints the usage, exit 0")


def run_usage(args):
    """echo-stress with args that must be refused before anything runs:
    (exit status, stderr bytes, stdout bytes)."""
    r = subprocess.run([ARGS.stress] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    return r.returncode, r.stderr, r.stdout


def case_delim_splits_reply():
    # A delimiter that occurs in echod's reply "ERR too long" would split
    # that reply (--abuse oversize gets one per message): every byte of
    # it, as one character and as 0xNN in both cases, is a usage error.
    for b in sorted(set("ERR too long")):
        for spelling in (b, "0x%02x" % ord(b), "0X%02X" % ord(b)):
            rc, err, out = run_usage(["-m", "line", "--delim", spelling,
                                      "127.0.0.1", "1"])
            lines = err.decode("ascii", "replace").splitlines()
            want = ("echo-stress: --delim: invalid delimiter '%s': it occurs"
                    " in the reply \"ERR too long\" and would split it"
                    % spelling)
            check(rc == 2 and len(lines) == 2 and lines[0] == want and
                  "--help" in lines[1] and out == b"",
                  "--delim %r -> exit 2, the reason and a hint (got %d: %r)"
                  % (spelling, rc, lines))
    # The words lf and nul are made of such letters but are fine.
    for spelling in ("lf", "nul", ";", "|", "0x0a", "0x00"):
        rc, err, out = run_usage(["--delim", spelling, "--help"])
        check(rc == 0, "--delim %r --help -> exit 0 (got %d: %r)" %
              (spelling, rc, err[:200]))


def case_option_escape():
    # An error quotes the bad argument escaped, never a raw newline or
    # terminal escape; a long one is cut with "...".
    cases = [
        (["-c", "1\n\x1b[2J"], r"--connections: '1\\n\\x1b\[2J' is .*"),
        (["-d", "\x1b"], r"--duration: '\\x1b' is .*"),
        (["-s", "\r-\x7f"], r"--size: '\\r' is .*"),
        (["-s", "1\t"], r"--size: '1\\t' is .*"),
        (["-m", "line\n"], r"--mode: 'line\\n' is .*"),
        (["--delim", "\n\x1b"], r"--delim: '\\n\\x1b' is .*"),
        (["--abuse", "idle\n"], r"--abuse: 'idle\\n' is not KIND=N"),
        (["--abuse", "\x1bx=1"], r"--abuse: unknown kind '\\x1bx' .*"),
        (["--abuse", "idle=\n"], r"--abuse: '\\n' is .*"),
        (["a", "1", "x\ny"], r"too many arguments: 'x\\ny'"),
        (["h\x1b", "1\n"], r"PORT: '1\\n' is .*"),
        (["--bogus\x1b\n"], r"unknown option '--bogus\\x1b\\n'"),
        (["-\x1b"], r"unknown option '-\\x1b'"),
        (["-d", "1", "-x5"], r"unknown option '-x'"),
        (["-c", "\x1b" * 300], r"--connections: '(\\x1b)+\.\.\.' is not "
         r"a whole number .*"),
        (["no\x1b[31m.invalid\n", "1"],
         r"cannot resolve 'no\\x1b\[31m\.invalid\\n' port '1': .*"),
    ]
    for args, rx in cases:
        rc, err, out = run_usage(args)
        what = ascii(args)[:80]
        raw = sorted({b for b in err if (b < 0x20 and b != 0x0a) or b >= 0x7f})
        lines = err.decode("ascii", "replace").splitlines()
        check(rc == 2 and not raw and len(lines) == 2 and
              "--help" in lines[1] and
              re.fullmatch("echo-stress: " + rx, lines[0]) is not None,
              "%s -> exit 2, argument escaped (/%s/) (got %d: %r)" %
              (what, rx, rc, err[:160]))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--stress", required=True)
    ap.add_argument("--good", required=True)
    ap.add_argument("--bad", required=True)
    ap.add_argument("--echod")
    ap.add_argument("case")
    ARGS = ap.parse_args()
    fn = globals().get("case_" + ARGS.case)
    if fn is None:
        raise SystemExit("unknown case " + ARGS.case)
    fn()
    print("FAIL: %d checks" % len(FAILS) if FAILS else "PASS")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
