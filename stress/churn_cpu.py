#!/usr/bin/env python3
"""churn_cpu.py - server CPU per connection of several echod binaries under
the same paced connection churn, interleaved, in one run.

    stress/churn_cpu.py --stress build/stress/echo-stress \\
        [--rate 1000] [--seconds 3] [--runs 3] NAME=ECHOD [NAME=ECHOD ...]

Each run starts one echod (-q, 127.0.0.1, port 0), drives echo-stress -c 8
--churn 1 --rate RATE for SECONDS (RATE new connections a second, each one
64-byte round trip), stops echod with SIGTERM and takes the CPU time of its
whole tree from wait4() (the parent plus every child it reaped), divided by
the connections echod accepted. Runs of the binaries alternate so that a
noisy neighbour hits them alike; the median per binary is printed, and each
as a ratio to the first.

The churn is paced on purpose: a binary whose children each compile a
seccomp filter must never see thousands of connections a second for more
than a few seconds on these machines (it wedged a kernel). The default
(1,000/s for 3 s) is far from that and still gives a steady per-connection
figure.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time


def one_run(echod, stress, rate, seconds):
    proc = subprocess.Popen([echod, "-q", "-p", "0", "-b", "127.0.0.1",
                             "-c", "64"], stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    port = None
    lines = []
    deadline = time.monotonic() + 10
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on \S*:(\d+)", line)
        if m:
            port = m.group(1)
    if port is None:
        proc.kill()
        proc.wait()
        sys.exit("echod did not start: %s" % "".join(lines))
    try:
        st = subprocess.run([stress, "-c", "8", "-j", "1", "--churn", "1",
                             "--rate", str(rate), "-d", str(seconds),
                             "127.0.0.1", port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=seconds + 60)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    rest = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    m = re.findall(r"stats accepted=(\d+)", rest)
    accepted = int(m[-1]) if m else 0
    if st.returncode != 0 or accepted == 0:
        sys.exit("run failed (echo-stress %d, accepted %d):\n%s%s" %
                 (st.returncode, accepted, st.stdout[-2000:], rest[-2000:]))
    cpu = ru.ru_utime + ru.ru_stime
    return accepted, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stress", required=True)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("servers", nargs="+", metavar="NAME=ECHOD")
    a = ap.parse_args()
    if a.rate * a.seconds > 20000:
        sys.exit("refusing more than 20,000 connections per run (see the "
                 "docstring)")
    servers = [s.split("=", 1) for s in a.servers]
    per = {name: [] for name, _ in servers}
    for r in range(a.runs):
        for name, path in servers:
            acc, cpu = one_run(path, a.stress, a.rate, a.seconds)
            us = cpu / acc * 1e6
            per[name].append(us)
            print("run %d %-12s %6d connections  %.3f CPU-s  %.1f us/conn"
                  % (r + 1, name, acc, cpu, us), flush=True)
    base = statistics.median(per[servers[0][0]])
    print("\nmedian server CPU per connection (%d runs, %d conn/s for %d s)"
          % (a.runs, a.rate, a.seconds))
    for name, _ in servers:
        med = statistics.median(per[name])
        print("  %-12s %7.1f us/conn  %.2fx %s" %
              (name, med, med / base, servers[0][0]))


if __name__ == "__main__":
    main()
