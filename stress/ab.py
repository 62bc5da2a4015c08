#!/usr/bin/env python3
"""ab.py - echod against echod: two or more builds or option sets, one run.

    stress/ab.py [--runs N] [--duration S] [--scenarios rr,stream,...]
                 [--stress-args ARGS] NAME='BINARY [ECHOD ARGS]' ...

Each NAME=... is one configuration: an echod binary and the options it is
started with (one shell-quoted string; bench.py adds -p 0 -b 127.0.0.1
-c 12000 -t 0 -q), or @KIND for one of bench.py's other servers
(@forkecho, @tcpserver, @inetd, @socat, @epoll_echo). The first configuration is the baseline. For each run
the configurations go in a fresh random order (interleaved, so that a
noisy minute hurts all of them), each is started, runs every scenario
(bench.py's churn, rr, stream, stream4, pstream; --stress-args is appended to
echo-stress's arguments, e.g. "-m line") and is stopped. Printed: every
run, then per configuration and scenario the median rate and server CPU
and the median of the per-run ratios to the baseline, the only figure
that means something on a shared machine. Python standard library only;
it imports bench.py beside it.

Example, line mode before and after a change:

    stress/ab.py --runs 5 --scenarios rr,stream --stress-args '-m line' \\
        before='/tmp/old/echod -m line' after='build-bench/src/echod -m line'
"""

import argparse
import json
import os
import random
import shlex
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

UNITS = {"churn": "conn/s", "rr": "msg/s", "stream": "MB/s",
         "stream4": "MB/s", "pstream": "MB/s"}
KEYS = bench.RATE_CPU


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog="ab.py", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(here, "..", "build-bench"),
                    help="build directory holding stress/echo-stress")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--scenarios", default="rr,stream")
    ap.add_argument("--stress-args", default="",
                    help="appended to echo-stress's arguments")
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("configs", nargs="+", metavar="NAME='BINARY [ARGS]'")
    a = ap.parse_args(argv)
    scens = a.scenarios.split(",")
    bad = [s for s in scens if s not in KEYS]
    if bad:
        ap.error("unknown scenario " + ",".join(bad))
    if "pstream" in scens and a.stress_args:
        ap.error("pstream is raw mode only: no --stress-args")
    confs = {}
    for c in a.configs:
        name, sep, rest = c.partition("=")
        words = shlex.split(rest)
        if not sep or not name or not words:
            ap.error(f"bad configuration {c!r}: NAME='BINARY [ARGS]'")
        if words[0].startswith("@"):
            if words[0][1:] not in bench.ALL_SERVERS or len(words) > 1:
                ap.error(f"{name}: @KIND is one of @"
                         + ", @".join(bench.ALL_SERVERS) + ", alone")
            confs[name] = (words[0], "")
            continue
        if not os.access(words[0], os.X_OK):
            ap.error(f"{name}: {words[0]} is not executable")
        confs[name] = (os.path.abspath(words[0]), shlex.join(words[1:]))
    cfg = bench.parse(["--build", a.build, "--duration", str(a.duration)])
    base_args = bench.stress_args
    extra = shlex.split(a.stress_args)
    bench.stress_args = lambda s, d: base_args(s, d) + extra
    res = {}  # (name, scen) -> [(rate, cpu)], one per run
    tmp = tempfile.mkdtemp(prefix="echod-ab.")
    for r in range(a.runs):
        order = list(confs)
        random.shuffle(order)
        for name in order:
            path, args = confs[name]
            kind = path[1:] if path.startswith("@") else "echod"
            if kind == "echod":
                cfg.echod, cfg.echod_args = path, args
            srv = bench.Server(kind, cfg, tmp)
            srv.start()
            try:
                for sc in scens:
                    if sc == "pstream":
                        x = bench.run_pstream(cfg, srv, tmp, "ab")
                    else:
                        x = bench.run_stress(cfg, srv, sc, tmp, "ab")
                    rk, ck = KEYS[sc]
                    rate, cpu = x.get(rk), x.get(ck)
                    err = x.get("error") or x.get("errors")
                    print(f"run {r + 1} {name:>12} {sc:>8} "
                          f"{(rate or 0):10.0f} {UNITS[sc]:6} {(cpu or 0):8.1f} µs CPU"
                          + (f"  error: {err}" if err else ""), flush=True)
                    res.setdefault((name, sc), []).append((rate, cpu))
            finally:
                srv.stop()
    base = next(iter(confs))
    print(f"\nmedians of {a.runs} runs; ratios: median of per-run ratios "
          f"to {base}")
    print("| config | scenario | rate | CPU µs | rate ratio | CPU ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    out = {}
    for sc in scens:
        for name in confs:
            v = res[(name, sc)]
            b = res[(base, sc)]
            ok = [(x, y) for x, y in zip(v, b)
                  if None not in x and None not in y]
            rr = [x[0] / y[0] for x, y in ok if y[0]]
            cr = [x[1] / y[1] for x, y in ok if y[1]]
            med = statistics.median
            row = {
                "rate": med([x for x, _ in v if x is not None] or [0]),
                "cpu": med([y for _, y in v if y is not None] or [0]),
                "rate_ratio": med(rr) if rr else None,
                "cpu_ratio": med(cr) if cr else None,
                "runs": v,
            }
            out.setdefault(name, {})[sc] = row
            f = (lambda z: "-" if z is None else f"{z:.3f}")
            print(f"| {name} | {sc} | {row['rate']:,.0f} | {row['cpu']:.1f} "
                  f"| {f(row['rate_ratio'])} | {f(row['cpu_ratio'])} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"configs": confs, "stress_args": a.stress_args,
                       "duration": a.duration, "results": out}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
