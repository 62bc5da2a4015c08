#!/usr/bin/env python3
"""bench.py - echod against its anchors and its limit (stress/BENCH.md).

Usually run through stress/bench.sh, which builds what is missing and the
bare fork loop, then calls this file. Python standard library only.

Every server runs on 127.0.0.1, is started here on a free port and stopped
here by pid. For each run (runs are interleaved: run 1 of every server, then
run 2 of every server, ...) and each server: start it, run the scenarios
churn, rr, stream (echo-stress --json) and hold (the built-in hold client),
stop it. Rates come from echo-stress; the server's CPU is the utime+stime of
its whole process tree, sampled from /proc before and after each scenario
(see BENCH.md for the method). Results are medians over the runs; ratios
are computed within each run and their median is reported.

The same file is the hold client: bench.py --hold-client HOST PORT N.
"""

import argparse
import errno
import json
import os
import platform
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_SERVERS = ["echod", "epoll_echo", "forkecho", "socat", "tcpserver",
               "inetd"]
# the fork-based anchors; forkecho is the minimal blocking fork echo
ANCHORS = ["forkecho", "socat", "tcpserver", "inetd"]
ALL_SCENARIOS = ["churn", "rr", "stream", "stream4", "pstream", "hold"]
HOLD_SIZE = 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc


def proc_stat(pid):
    """(ppid, utime+stime+cutime+cstime in ticks) or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(b")") + 2 :].split()
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def ppid_map():
    m = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        m[int(name)] = int(s[s.rindex(b")") + 2 :].split()[1])
    return m


def descendants(root):
    """Every live descendant of root (this kernel has no
    /proc/PID/task/TID/children, so the whole of /proc is scanned)."""
    kids = {}
    for pid, ppid in ppid_map().items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def tree_cpu(root):
    """CPU seconds of root's tree: its own utime+stime, its reaped
    children's (cutime+cstime), and the same four fields of every live
    descendant. Only exact when no descendant exits during the scan, hence
    the quiescence wait before each sample."""
    st = proc_stat(root)
    if st is None:
        return None
    ticks = st[1]
    for pid in descendants(root):
        s = proc_stat(pid)
        if s:
            ticks += s[1]
    return ticks / CLK_TCK


def smaps_pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_kib(root):
    pids = [root] + descendants(root)
    return sum(smaps_pss_kib(p) for p in pids), len(pids)


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def listening(port):
    """Is something listening on 127.0.0.1:port (or any address)?"""
    want = f":{port:04X}"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and p[1].endswith(want):
                        return True
        except OSError:
            pass
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_sysctl(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


# ---------------------------------------------------------------- servers

started = []  # every Popen this process started, for the cleanup


def popen(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    started.append(p)
    return p


def stop_proc(p, grace):
    """Stop a process we started and whatever it left behind: SIGTERM by
    pid, then SIGKILL of its process group (it leads its own session, so
    the group is ours) once it exits or the grace time runs out."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"bench: pid {p.pid} did not die")
    if p in started:
        started.remove(p)


def cleanup(*_):
    for p in list(started):
        stop_proc(p, 2)


class Server:
    def __init__(self, name, cfg, tmp):
        self.name, self.cfg, self.tmp = name, cfg, tmp
        self.proc = None
        self.port = None
        self.base = 0  # descendants it keeps while idle

    def argv(self):
        c = self.cfg
        if self.name == "echod":
            return [
                c.echod, "-p", "0", "-b", "127.0.0.1", "-c", "12000",
                "-t", "0", "-q",
            ] + shlex.split(c.echod_args)
        if self.name == "epoll_echo":
            return [c.epoll_echo, "-p", "0", "-b", "127.0.0.1"]
        if self.name == "forkecho":
            return [c.forkecho, "0"]  # prints its port
        if self.name == "socat":
            return [
                "socat",
                f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,"
                "backlog=1024",
                "PIPE",
            ]
        if self.name == "tcpserver":
            # -1 prints the port; -b: the default backlog of 20 drops
            # SYNs; -l: without it each child looks its own address up
            # in DNS
            return [
                "tcpserver", "-1", "-c", "12000", "-b", "1024", "-H", "-R",
                "-l", "localhost",
                "127.0.0.1", "0", "cat",
            ]
        if self.name == "inetd":
            # -d keeps it in the foreground (its pid is ours) and logs a
            # line per connection; -R lifts the default of 256
            # connections a minute, after which it stops the service
            return [
                "inetd", "-d", "-R", "100000000", "-q", "1024",
                os.path.join(self.tmp, "inetd.conf"),
            ]
        raise ValueError(self.name)

    def start(self):
        out = os.path.join(self.tmp, f"{self.name}.out")
        err = os.path.join(self.tmp, f"{self.name}.err")
        if self.name == "socat":
            self.port = free_port()
        elif self.name == "inetd":
            # internal services are bound by service name: echo is port 7
            self.port = 7
            if listening(7):
                raise RuntimeError("port 7 is in use: cannot run inetd")
            with open(os.path.join(self.tmp, "inetd.conf"), "w") as f:
                f.write("127.0.0.1:echo stream tcp nowait root internal\n")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: "
                    + tail(err)
                )
            if self.name in ("echod", "epoll_echo"):
                with open(err, errors="replace") as f:
                    for line in f:
                        if "listening on " in line:
                            self.port = int(line.rsplit(":", 1)[1])
            elif self.name in ("tcpserver", "forkecho"):
                with open(out) as f:
                    s = f.read().strip()
                    if s.isdigit():
                        self.port = int(s)
            if self.port and listening(self.port):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{self.name} did not start: " + tail(err))
        time.sleep(0.2)
        self.base = len(descendants(self.proc.pid))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def quiesce(self, timeout=20.0):
        """Wait until the tree is back to its idle size; True if it is."""
        deadline = time.monotonic() + timeout
        while True:
            if len(descendants(self.proc.pid)) <= self.base:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def stop(self):
        if self.proc:
            stop_proc(self.proc, 15)
            self.proc = None


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- scenarios


def stress_args(scen, dur):
    if scen == "churn":
        return ["--churn", "1", "-c", "8", "-s", "64", "-d", str(dur)]
    if scen == "rr":
        return ["-c", "100", "-s", "64", "-d", str(dur)]
    if scen == "stream":
        return ["-c", "1", "-s", "65536", "-d", str(dur)]
    if scen == "stream4":
        return ["-c", "1", "-s", "65536", "--pipeline", "4", "-d", str(dur)]
    raise ValueError(scen)


def run_stress(cfg, srv, scen, tmp, tag):
    res = {"scenario": scen}
    res["quiescent_before"] = srv.quiesce()
    jf = os.path.join(tmp, f"{tag}.json")
    lf = os.path.join(tmp, f"{tag}.log")
    argv = [cfg.stress] + stress_args(scen, cfg.duration)
    argv += ["--json", jf, "127.0.0.1", str(srv.port)]
    c0 = tree_cpu(srv.proc.pid)
    with open(lf, "wb") as lo:
        p = popen(argv, stdin=subprocess.DEVNULL, stdout=lo, stderr=lo)
        try:
            p.wait(timeout=cfg.duration + 120)
        except subprocess.TimeoutExpired:
            res["timeout"] = True
        stop_proc(p, 2)
    res["quiescent_after"] = srv.quiesce()
    c1 = tree_cpu(srv.proc.pid)
    res["exit_status"] = p.returncode
    try:
        with open(jf) as f:
            j = json.load(f)
    except (OSError, ValueError):
        res["error"] = "no JSON from echo-stress: " + tail(lf)
        return res
    conns = j["connections"]["opened"]
    msgs = j["messages"]
    rx = j["bytes_received"]
    res.update(
        connections=conns,
        messages=msgs,
        bytes_received=rx,
        measure_s=j["phases"]["measure_s"],
        total_s=j["phases"]["total_s"],
        conn_per_s=j["connections"]["per_s_measure_phase"],
        msgs_per_s=j["messages_per_s"],
        mb_per_s=j["mb_per_s"],
        rt_p50_us=j["latency_us"]["round_trip"]["p50"],
        rt_p99_us=j["latency_us"]["round_trip"]["p99"],
        rt_max_us=j["latency_us"]["round_trip"]["max"],
        # the whole histogram, for stress/plot.py's percentile curves
        rt_buckets=j["latency_us"]["round_trip"].get("buckets"),
        errors=j["errors"]["total"] + j["connections"]["failed"],
    )
    if c0 is not None and c1 is not None:
        cpu = c1 - c0
        res["server_cpu_s"] = cpu
        if scen == "churn" and conns:
            res["cpu_us_per_conn"] = cpu * 1e6 / conns
        if msgs:
            res["cpu_us_per_msg"] = cpu * 1e6 / msgs
        if rx:
            res["cpu_us_per_mb"] = cpu * 1e6 / (rx / 1e6)
    return res


class Pipe:
    """Line-oriented talk with the hold client, every read with a
    deadline so that a stuck client cannot hang the benchmark."""

    def __init__(self, p):
        self.p, self.buf = p, b""

    def send(self, s):
        self.p.stdin.write((s + "\n").encode())
        self.p.stdin.flush()

    def line(self, timeout):
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError("hold client: no answer in time")
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError("hold client exited early")
                self.buf += chunk
        finally:
            sel.close()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().split()


def run_hold(cfg, srv, n, tmp, tag):
    res = {"scenario": "hold", "n": n}
    res["quiescent_before"] = srv.quiesce()
    lf = os.path.join(tmp, f"{tag}.log")
    budget = 60 + n / 50
    with open(lf, "wb") as lo:
        p = popen(
            [sys.executable, os.path.abspath(__file__), "--hold-client",
             "127.0.0.1", str(srv.port), str(n), "--timeout", str(budget)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=lo,
        )
    io = Pipe(p)
    try:
        io.line(30)  # ready: the client has built everything it needs
        m0 = mem_available_kib()
        cl0 = smaps_pss_kib(p.pid)
        pss0, _ = tree_pss_kib(srv.proc.pid)
        c0 = tree_cpu(srv.proc.pid)
        io.send("go")
        w = io.line(budget + 30)  # held K ERRORS SECONDS
        held, errs, secs = int(w[1]), int(w[2]), float(w[3])
        time.sleep(cfg.settle)
        # MemAvailable first: the /proc scans below allocate in this process
        m1 = mem_available_kib()
        cl1 = smaps_pss_kib(p.pid)
        pss1, procs = tree_pss_kib(srv.proc.pid)
        io.send("again")
        w = io.line(budget + 30)  # done OK ERRORS
        ok2, errs2 = int(w[1]), int(w[2])
        p.wait(timeout=30)
    except (RuntimeError, ValueError, IndexError,
            subprocess.TimeoutExpired) as e:
        res["error"] = f"{e}: " + tail(lf)
        stop_proc(p, 2)
        srv.quiesce()
        return res
    stop_proc(p, 2)
    res["quiescent_after"] = srv.quiesce(60)
    c1 = tree_cpu(srv.proc.pid)
    res.update(
        held=held,
        errors=errs + errs2 + (held - ok2),
        open_s=secs,
        open_per_s=held / secs if secs > 0 else None,
        tree_processes=procs,
        client_pss_kib=cl1 - cl0,
    )
    if held:
        res["pss_kib_per_conn"] = (pss1 - pss0) / held
        res["system_kib_per_conn"] = ((m0 - m1) - (cl1 - cl0)) / held
        if c0 is not None and c1 is not None:
            res["cpu_us_per_conn"] = (c1 - c0) * 1e6 / held
    return res


def run_pstream(cfg, srv, tmp, tag):
    """One connection, a writer thread sending 64 KiB blocks without
    waiting for their echo while this thread reads and checks the echo:
    a continuous stream. The stream scenario's echo-stress keeps one
    message in flight (no --pipeline), which against servers that echo in chunks smaller than the message,
    without TCP_NODELAY, meets Nagle on their side and delayed ACK on the
    client's (about one message per 40 ms)."""
    res = {"scenario": "pstream"}
    res["quiescent_before"] = srv.quiesce()
    pat = os.urandom(65536)
    pat2 = pat + pat
    buf = bytearray(65536)
    mv = memoryview(buf)
    werr = []
    stop = threading.Event()
    c0 = tree_cpu(srv.proc.pid)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    except OSError as e:
        res["error"] = f"connect: {e}"
        return res
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def writer():
        try:
            while not stop.is_set():
                s.sendall(pat)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            werr.append(str(e))

    th = threading.Thread(target=writer, daemon=True)
    rx = rx_meas = bad = 0
    t0 = time.monotonic()
    end = t0 + cfg.duration
    th.start()
    try:
        while True:
            if not stop.is_set() and time.monotonic() >= end:
                rx_meas = rx
                stop.set()
            n = s.recv_into(mv, 65536)
            if n == 0:
                break
            o = rx % 65536
            if bytes(mv[:n]) != pat2[o:o + n]:
                bad += 1
                break
            rx += n
    except OSError as e:
        werr.append(f"read: {e}")
    stop.set()
    th.join(15)
    s.close()
    res["quiescent_after"] = srv.quiesce()
    c1 = tree_cpu(srv.proc.pid)
    meas = (time.monotonic() - t0) if not rx_meas else cfg.duration
    res.update(
        bytes_received=rx,
        mb_per_s=(rx_meas or rx) / meas / 1e6,
        errors=bad + len(werr),
    )
    if werr or bad:
        res["detail"] = "; ".join(werr) + (" mismatch" if bad else "")
    if c0 is not None and c1 is not None and rx:
        res["server_cpu_s"] = c1 - c0
        res["cpu_us_per_mb"] = (c1 - c0) * 1e6 / (rx / 1e6)
    return res


def run_forkloop(cfg):
    out = {}
    for key, path in (("dynamic", cfg.forkloop), ("static", cfg.forkloop_static)):
        if not path or not os.access(path, os.X_OK):
            continue
        r = subprocess.run(
            [path, str(cfg.fork_iters)], capture_output=True, timeout=300
        )
        if r.returncode == 0:
            out[key] = json.loads(r.stdout)
    return out


# ---------------------------------------------------------------- hold client


def hold_client(host, port, n, timeout):
    """Open n connections, echo HOLD_SIZE bytes once on each, hold them
    all, and on "again" echo once more on each and close. Talks to the
    orchestrator on stdin/stdout: ready / go / held K E S / again / done."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def payload(i, rnd):
        head = i.to_bytes(4, "big") + rnd.to_bytes(1, "big")
        return (head * 13)[:HOLD_SIZE]

    # everything allocated up front, so that the memory the orchestrator
    # sees this process gain is mostly its sockets
    socks = [None] * n
    got = [b""] * n
    sel = selectors.EpollSelector()
    window = min(n, 512)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1

    t0 = time.monotonic()
    deadline = t0 + timeout
    nxt, inflight, held, errors = 0, {}, [], 0

    def fail(i):
        nonlocal errors
        errors += 1
        s = socks[i]
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        socks[i] = None
        inflight.pop(i, None)

    while (nxt < n or inflight) and time.monotonic() < deadline:
        while nxt < n and len(inflight) < window:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            r = s.connect_ex((host, port))
            if r not in (0, errno.EINPROGRESS):
                s.close()
                errors += 1
            else:
                socks[nxt] = s
                inflight[nxt] = "connect"
                sel.register(s, selectors.EVENT_WRITE, nxt)
            nxt += 1
        for key, _ in sel.select(0.5):
            i = key.data
            s = socks[i]
            try:
                if inflight[i] == "connect":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        fail(i)
                        continue
                    if s.send(payload(i, 0)) != HOLD_SIZE:
                        fail(i)
                        continue
                    inflight[i] = "read"
                    sel.modify(s, selectors.EVENT_READ, i)
                    continue
                d = s.recv(4096)
            except OSError:
                fail(i)
                continue
            if not d:
                fail(i)
                continue
            got[i] += d
            if len(got[i]) >= HOLD_SIZE:
                if got[i] != payload(i, 0):
                    fail(i)
                    continue
                sel.unregister(s)
                del inflight[i]
                got[i] = b""
                held.append(i)
    for i in list(inflight):
        fail(i)
    print(f"held {len(held)} {errors} {time.monotonic() - t0:.3f}",
          flush=True)
    if sys.stdin.readline().strip() != "again":
        return 1

    deadline = time.monotonic() + timeout
    waiting, ok, errors = set(), 0, 0
    for i in held:
        try:
            if socks[i].send(payload(i, 1)) == HOLD_SIZE:
                sel.register(socks[i], selectors.EVENT_READ, i)
                waiting.add(i)
                continue
        except OSError:
            pass
        errors += 1
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            i = key.data
            try:
                d = socks[i].recv(4096)
            except OSError:
                d = b""
            got[i] += d
            if not d or len(got[i]) >= HOLD_SIZE:
                if got[i] == payload(i, 1):
                    ok += 1
                else:
                    errors += 1
                sel.unregister(socks[i])
                waiting.discard(i)
    errors += len(waiting)
    for s in socks:
        if s is not None:
            s.close()
    print(f"done {ok} {errors}", flush=True)
    return 0


# ---------------------------------------------------------------- summary


# each load scenario's rate and server CPU per unit of work (result keys)
RATE_CPU = {
    "churn": ("conn_per_s", "cpu_us_per_conn"),
    "rr": ("msgs_per_s", "cpu_us_per_msg"),
    "stream": ("mb_per_s", "cpu_us_per_mb"),
    "stream4": ("mb_per_s", "cpu_us_per_mb"),
    "pstream": ("mb_per_s", "cpu_us_per_mb"),
}


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


METRICS = [
    # (scenario, key, higher is better)
    ("churn", "conn_per_s", True),
    ("churn", "cpu_us_per_conn", False),
    ("rr", "msgs_per_s", True),
    ("rr", "cpu_us_per_msg", False),
    ("stream", "mb_per_s", True),
    ("stream", "cpu_us_per_mb", False),
    ("stream4", "mb_per_s", True),
    ("stream4", "cpu_us_per_mb", False),
    ("pstream", "mb_per_s", True),
    ("pstream", "cpu_us_per_mb", False),
    ("hold", "pss_kib_per_conn", False),
    ("hold", "system_kib_per_conn", False),
]


def get(run, server, scen, key):
    r = run["servers"].get(server, {}).get(scen)
    if not r or r.get("error"):
        return None
    return r.get(key)


def summarize(runs, servers):
    medians = {}
    for s in servers:
        medians[s] = {}
        for scen, key, _ in METRICS + [("hold", "held", True),
                                       ("hold", "n", True),
                                       ("hold", "open_per_s", True)]:
            medians[s][f"{scen}.{key}"] = med(
                [get(r, s, scen, key) for r in runs]
            )
        medians[s]["errors"] = sum(
            (r["servers"].get(s, {}).get(sc) or {}).get("errors") or 0
            for r in runs for sc in ALL_SCENARIOS
        )
        medians[s]["failures"] = sum(
            1 for r in runs for sc in ALL_SCENARIOS
            if (r["servers"].get(s, {}).get(sc) or {}).get("error")
        )
    fl = {k: med([r["forkloop"].get(k, {}).get("cpu_us_per_fork")
                  for r in runs]) for k in ("dynamic", "static")}

    ratios = {}
    if "echod" in servers:
        anchors = [a for a in ANCHORS if a in servers]
        for scen, key, higher in METRICS:
            vs_best, vs_epoll = [], []
            for r in runs:
                e = get(r, "echod", scen, key)
                if e is None:
                    continue
                av = [get(r, a, scen, key) for a in anchors]
                av = [v for v in av if v is not None]
                if av:
                    best = max(av) if higher else min(av)
                    if best:
                        vs_best.append(e / best)
                p = get(r, "epoll_echo", scen, key)
                if p:
                    vs_epoll.append(e / p)
            ratios[f"{scen}.{key}"] = {
                "vs_best_anchor": med(vs_best),
                "vs_epoll_echo": med(vs_epoll),
            }
        per_fork = []
        for r in runs:
            e = get(r, "echod", "churn", "cpu_us_per_conn")
            f = r["forkloop"].get("dynamic", {}).get("cpu_us_per_fork")
            if e is not None and f:
                per_fork.append(e / f)
        ratios["churn.cpu_us_per_conn"]["vs_forkloop"] = med(per_fork)
    return medians, fl, ratios


def targets(medians, ratios, cfg):
    """The targets of stress/BENCH.md, judged on this run's figures."""
    if "echod" not in medians:
        return []
    m = medians["echod"]

    def rat(k, which):
        return ratios.get(k, {}).get(which)

    out = []

    def add(name, value, ok, goal):
        out.append({
            "target": name, "goal": goal, "value": value,
            "met": None if value is None else bool(ok),
        })

    v = rat("churn.cpu_us_per_conn", "vs_forkloop")
    add("churn CPU per conn vs bare fork loop", v, v is not None and v <= 1.5,
        "<= 1.5x")
    v = rat("churn.conn_per_s", "vs_best_anchor")
    add("churn conn/s vs best fork anchor", v, v is not None and v >= 3,
        ">= 3x")
    v = rat("rr.msgs_per_s", "vs_best_anchor")
    add("rr msgs/s vs best fork anchor", v, v is not None and v >= 1.2,
        ">= 1.2x")
    v = m.get("rr.cpu_us_per_msg")
    add("rr server CPU per msg (us)", v, v is not None and v <= 25, "<= 25")
    v = m.get("stream.mb_per_s")
    add("stream MB/s", v, v is not None and v >= 1200, ">= 1200")
    v = rat("stream.mb_per_s", "vs_best_anchor")
    add("stream MB/s vs best fork anchor", v, v is not None and v >= 1.2,
        ">= 1.2x")
    v = m.get("pstream.mb_per_s")
    add("pstream MB/s", v, v is not None and v >= 1200, ">= 1200")
    v = rat("pstream.mb_per_s", "vs_best_anchor")
    add("pstream MB/s vs best fork anchor", v, v is not None and v >= 1.2,
        ">= 1.2x")
    v = m.get("hold.held")
    v = None if v is None else int(v)
    add("hold: connections held at once", v,
        v is not None and v >= 10000, ">= 10000")
    v = m.get("hold.pss_kib_per_conn")
    add("hold PSS KiB per conn", v, v is not None and v <= 32, "<= 32")
    v = m.get("hold.system_kib_per_conn")
    add("hold system KiB per conn", v, v is not None and v <= 120, "<= 120")
    return out


def fmt(v, nd=0):
    if v is None:
        return "-"
    if nd == 0:
        return f"{v:,.0f}"
    return f"{v:,.{nd}f}"


def table(medians, fl, ratios, tg, servers, cfg):
    L = []
    L.append(f"Median of {cfg.runs} interleaved run(s), {cfg.duration} s "
             "per scenario; CPU = server process tree, utime+stime, "
             "children included.")
    L.append("")
    L.append("| server | churn conn/s | CPU µs/conn | rr msgs/s | CPU µs/msg "
             "| stream MB/s | CPU µs/MB | stream4 MB/s | CPU µs/MB "
             "| pstream MB/s | CPU µs/MB | hold N | KiB/held conn PSS / system |")
    L.append("| --- |" + " ---: |" * 12)
    for s in servers:
        m = medians[s]
        held, n = m["hold.held"], m["hold.n"]
        hn = "-" if n is None else (
            fmt(n) if held == n else f"{fmt(held)}/{fmt(n)}")
        pss, sysm = m["hold.pss_kib_per_conn"], m["hold.system_kib_per_conn"]
        mem = "-" if pss is None else f"{fmt(pss, 1)} / {fmt(sysm, 1)}"
        flag = ""
        if m["errors"] or m["failures"]:
            flag = f" (!{m['errors']} err, {m['failures']} failed)"
        L.append(
            f"| {s}{flag} | {fmt(m['churn.conn_per_s'])} "
            f"| {fmt(m['churn.cpu_us_per_conn'])} "
            f"| {fmt(m['rr.msgs_per_s'])} | {fmt(m['rr.cpu_us_per_msg'], 1)} "
            f"| {fmt(m['stream.mb_per_s'])} "
            f"| {fmt(m['stream.cpu_us_per_mb'])} "
            f"| {fmt(m['stream4.mb_per_s'])} "
            f"| {fmt(m['stream4.cpu_us_per_mb'])} "
            f"| {fmt(m['pstream.mb_per_s'])} "
            f"| {fmt(m['pstream.cpu_us_per_mb'])} | {hn} | {mem} |"
        )
    for k in ("dynamic", "static"):
        if fl.get(k) is not None:
            L.append(f"| bare fork loop ({k}) | | {fmt(fl[k])} "
                     "(per fork+_exit+waitpid) |" + " |" * 10)
    if ratios:
        L.append("")
        L.append("echod ratios (median of the per-run ratios; rates: >1 is "
                 "better, costs: <1 is better):")
        L.append("")
        L.append("| metric | echod / best fork anchor | echod / epoll_echo |")
        L.append("| --- | ---: | ---: |")
        for scen, key, _ in METRICS:
            r = ratios.get(f"{scen}.{key}", {})
            L.append(f"| {scen} {key} | {fmt(r.get('vs_best_anchor'), 2)} "
                     f"| {fmt(r.get('vs_epoll_echo'), 2)} |")
        v = ratios.get("churn.cpu_us_per_conn", {}).get("vs_forkloop")
        L.append(f"| churn cpu_us_per_conn / bare fork loop (dynamic) "
                 f"| {fmt(v, 2)} | |")
    if tg:
        L.append("")
        L.append("Targets (stress/BENCH.md):")
        L.append("")
        L.append("| target | goal | echod | met |")
        L.append("| --- | --- | ---: | --- |")
        for t in tg:
            v = t["value"]
            vs = fmt(v, 2) if isinstance(v, float) else fmt(v)
            met = {None: "n/a", True: "yes", False: "NO"}[t["met"]]
            L.append(f"| {t['target']} | {t['goal']} | {vs} | {met} |")
    return "\n".join(L)


# ---------------------------------------------------------------- main


def parse(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        prog="bench.sh",
        description="Benchmark echod against fork-based anchors and the "
        "single-process epoll echo (stress/BENCH.md); see stress/BENCH.md.",
    )
    ap.add_argument("--build", default=os.path.join(here, "..", "build-bench"),
                    help="build directory holding src/echod and stress/")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 run, 1 s scenarios, hold 200")
    ap.add_argument("--runs", type=int, help="interleaved runs (default 3)")
    ap.add_argument("--duration", type=float,
                    help="seconds per churn/rr/stream scenario (default 5)")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS),
                    help="comma list from " + ",".join(ALL_SERVERS))
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma list from " + ",".join(ALL_SCENARIOS))
    ap.add_argument("--hold", type=int,
                    help="held connections for echod and epoll_echo "
                    "(default 10000)")
    ap.add_argument("--hold-anchor", type=int,
                    help="held connections for the fork-based anchors "
                    "(default 2000)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between 'all held' and the memory sample")
    ap.add_argument("--fork-iters", type=int,
                    help="iterations of the bare fork loop (default 2000)")
    ap.add_argument("--echod-args", default="",
                    help="extra echod options, one shell-quoted string")
    ap.add_argument("--json",
                    help="where to write every figure (default "
                    "BUILD/bench-results.json)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory of logs")
    ap.add_argument("--forkloop", help=argparse.SUPPRESS)
    ap.add_argument("--forkloop-static", help=argparse.SUPPRESS)
    c = ap.parse_args(argv)
    q = c.quick
    c.runs = c.runs or (1 if q else 3)
    c.duration = c.duration or (1 if q else 5)
    c.hold = c.hold or (200 if q else 10000)
    c.hold_anchor = c.hold_anchor or (200 if q else 2000)
    c.fork_iters = c.fork_iters or (300 if q else 2000)
    if q:
        c.settle = min(c.settle, 0.5)
    if c.duration == int(c.duration):
        c.duration = int(c.duration)
    c.build = os.path.abspath(c.build)
    c.json = c.json or os.path.join(c.build, "bench-results.json")
    c.echod = os.path.join(c.build, "src", "echod")
    c.stress = os.path.join(c.build, "stress", "echo-stress")
    c.epoll_echo = os.path.join(c.build, "stress", "epoll_echo")
    c.forkloop = c.forkloop or os.path.join(c.build, "stress", "forkloop")
    c.forkecho = os.path.join(c.build, "stress", "forkecho")
    c.forkloop_static = c.forkloop_static or os.path.join(
        c.build, "stress", "forkloop-static")
    for name, lst, allowed in (("--servers", c.servers, ALL_SERVERS),
                               ("--scenarios", c.scenarios, ALL_SCENARIOS)):
        bad = [x for x in lst.split(",") if x not in allowed]
        if bad:
            ap.error(f"{name}: unknown {', '.join(bad)}")
    if c.runs < 1 or c.duration <= 0 or c.hold < 1 or c.hold_anchor < 1:
        ap.error("--runs, --duration, --hold, --hold-anchor must be positive")
    return c


def available(c, name):
    if name == "echod":
        return os.access(c.echod, os.X_OK)
    if name == "epoll_echo":
        return os.access(c.epoll_echo, os.X_OK)
    if name == "forkecho":
        return os.access(c.forkecho, os.X_OK)
    return shutil.which(name) is not None


def main(argv):
    if argv[:1] == ["--hold-client"]:
        ap = argparse.ArgumentParser(prog="bench.py --hold-client")
        ap.add_argument("host")
        ap.add_argument("port", type=int)
        ap.add_argument("n", type=int)
        ap.add_argument("--timeout", type=float, default=120)
        a = ap.parse_args(argv[1:])
        return hold_client(a.host, a.port, a.n, a.timeout)

    cfg = parse(argv)
    if not os.access(cfg.stress, os.X_OK):
        log(f"bench: {cfg.stress} is not built")
        return 2
    servers = []
    for s in cfg.servers.split(","):
        if available(cfg, s):
            servers.append(s)
        else:
            log(f"bench: {s} not found, skipped")
    scenarios = [s for s in ALL_SCENARIOS if s in cfg.scenarios.split(",")]

    # servers inherit the raised limit: epoll_echo holds every connection
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = max(cfg.hold, cfg.hold_anchor) + 64
    if "hold" in scenarios and hard < need:
        log(f"bench: the descriptor limit {hard} is below {need}: "
            "lower --hold or raise ulimit -Hn")
        return 2
    tw = read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse")
    if tw == ["0"]:
        log("bench: warning: net.ipv4.tcp_tw_reuse is 0; churn may run "
            "out of local ports")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    tmp = tempfile.mkdtemp(prefix="echod-bench.")
    meta = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "clk_tck": CLK_TCK,
        "loadavg_start": os.getloadavg(),
        "tcp_tw_reuse": tw,
        "ip_local_port_range": read_sysctl(
            "/proc/sys/net/ipv4/ip_local_port_range"),
        "commands": {s: Server(s, cfg, tmp).argv() if s != "socat" else
                     ["socat", "TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,"
                      "fork,backlog=1024", "PIPE"] for s in servers},
        "scenarios": {s: ["echo-stress"] + stress_args(s, cfg.duration)
                      for s in scenarios
                      if s in ("churn", "rr", "stream", "stream4")},
    }
    runs = []
    t_start = time.monotonic()
    try:
        for r in range(cfg.runs):
            run = {"run": r + 1, "servers": {}}
            run["forkloop"] = run_forkloop(cfg)
            fl = run["forkloop"].get("dynamic", {}).get("cpu_us_per_fork")
            log(f"[run {r + 1}/{cfg.runs}] bare fork loop: {fmt(fl)} µs "
                "CPU per fork")
            # rotate the order so no server always runs first or last
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for s in order:
                srv = Server(s, cfg, tmp)
                res = run["servers"][s] = {}
                try:
                    srv.start()
                except RuntimeError as e:
                    log(f"[run {r + 1}] {s}: {e}")
                    for sc in scenarios:
                        res[sc] = {"scenario": sc, "error": str(e)}
                    srv.stop()
                    continue
                for sc in scenarios:
                    tag = f"r{r + 1}-{s}-{sc}"
                    if not srv.alive():
                        res[sc] = {"scenario": sc,
                                   "error": f"{s} died: "
                                   + tail(os.path.join(tmp, f"{s}.err"))}
                        continue
                    if sc == "pstream":
                        x = run_pstream(cfg, srv, tmp, tag)
                    elif sc == "hold":
                        n = cfg.hold if s in ("echod", "epoll_echo") \
                            else cfg.hold_anchor
                        x = run_hold(cfg, srv, n, tmp, tag)
                    else:
                        x = run_stress(cfg, srv, sc, tmp, tag)
                    res[sc] = x
                    log(f"[run {r + 1}/{cfg.runs}] {s:10} {sc:6} "
                        + brief(x))
                srv.stop()
            runs.append(run)
    finally:
        cleanup()
        if not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)

    medians, fl, ratios = summarize(runs, servers)
    tg = targets(medians, ratios, cfg)
    out = table(medians, fl, ratios, tg, servers, cfg)
    print(out)
    doc = {
        "meta": meta,
        "config": {k: getattr(cfg, k) for k in (
            "runs", "duration", "hold", "hold_anchor", "settle",
            "fork_iters", "echod_args", "quick")},
        "servers": servers,
        "runs": runs,
        "median": medians,
        "forkloop_cpu_us_per_fork": fl,
        "ratios": ratios,
        "targets": tg,
        "table": out,
    }
    with open(cfg.json, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"bench: {meta['elapsed_s']} s; figures in {cfg.json}")
    if cfg.keep:
        log(f"bench: logs in {tmp}")
    failed = sum(m["failures"] for m in medians.values())
    return 1 if failed else 0


def brief(x):
    if x.get("error"):
        return "ERROR " + x["error"]
    keys = {**RATE_CPU, "hold": ("held", "open_per_s", "pss_kib_per_conn",
                                 "system_kib_per_conn")
            }[x["scenario"]] + ("errors",)
    fmts = {
        "conn_per_s": "{:,.0f} conn/s", "cpu_us_per_conn": "{:,.0f} µs CPU/conn",
        "msgs_per_s": "{:,.0f} msg/s", "cpu_us_per_msg": "{:,.1f} µs CPU/msg",
        "mb_per_s": "{:,.0f} MB/s", "cpu_us_per_mb": "{:,.0f} µs CPU/MB",
        "held": "{} held", "open_per_s": "opened at {:,.0f}/s",
        "pss_kib_per_conn": "{:.1f} KiB PSS",
        "system_kib_per_conn": "{:.1f} KiB system", "errors": "{} errors",
    }
    parts = [fmts[k].format(x[k]) for k in keys if x.get(k) is not None]
    if x.get("quiescent_after") is False:
        parts.append("(tree not quiescent after)")
    if (x.get("rt_p99_us") or 0) >= 900000:
        # the first SYN retransmission comes after 1 s
        parts.append("(p99 round trip >= 0.9 s: dropped SYNs? suspect)")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
