#!/usr/bin/env python3
"""echo-stress verifier tests: one case per ctest test.

Each case starts a server on 127.0.0.1 port 0 (epoll_echo, bad_echo with a
fault, or echod), reads its real port from the "listening on" line, runs
echo-stress against it with --json, and checks the exit status and the
counts. Everything is bounded in time; servers are stopped by pid.
"""
import argparse
import base64
import json
import math
import os
import re
import resource
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

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


def case_pipeline_good():
    # Several messages in flight per connection, every framing: all
    # verified, one latency sample per message, counts exact with -n.
    def run(port):
        for mode, size, depth in (("raw", "1-3000", 8), ("line", "0-3000", 8),
                                  ("frame", "0-3000", 32)):
            r, rep = stress(port, "-c", 8, "-j", 2, "-n", 300, "-m", mode,
                            "-s", size, "--pipeline", depth)
            check(r.returncode == 0, "%s --pipeline %d: exit 0" %
                  (mode, depth))
            if rep:
                check(rep["messages"] == 8 * 300 and
                      rep["errors"]["total"] == 0,
                      "%s: 2400 messages, no errors (%d)" %
                      (mode, rep["messages"]))
                check(rep["bytes_received"] == rep["bytes_sent"],
                      "%s: every byte sent came back verified" % mode)
                check(rep["latency_us"]["round_trip"]["count"] ==
                      rep["messages"], "%s: one sample per message" % mode)
                check(rep["config"]["pipeline"] == depth,
                      "JSON config shows the pipeline depth")
        # with --churn: the window never crosses a reconnect
        r, rep = stress(port, "-c", 4, "-j", 1, "-n", 200, "--churn", 7,
                        "--pipeline", 5)
        check(r.returncode == 0, "--churn 7 --pipeline 5: exit 0")
        if rep:
            check(rep["messages"] == 800 and rep["errors"]["total"] == 0,
                  "800 messages, no errors (%d)" % rep["messages"])
            check(rep["connections"]["opened"] == 4 * 29,
                  "a new connection every 7 round trips (%d)" %
                  rep["connections"]["opened"])
    with_server([ARGS.good, "-p", "0"], run)


def case_pipeline_faults():
    # Every fault of bad_echo is still caught with 8 messages in flight,
    # and located at the byte where it struck. An extra byte inside a
    # pipelined stream reads as a wrong byte of the next message, so it
    # may be counted as a mismatch rather than as extra bytes.
    opts = ("-c", 4, "-j", 1, "-d", 1, "-s", 64, "--pipeline", 8)
    cases = (("flip", ("mismatch",), (999, 999)),
             ("drop", ("mismatch",), (999, 1100)),
             ("dup", ("mismatch",), (999, 1100)),
             ("extra", ("extra_bytes", "mismatch"), (1000, 1700)),
             # the server closes with our next messages unread: its
             # kernel resets, which may cut echoes already on their way
             ("close", ("short_echo", "reset"), (0, 1000 + 16384)))
    for fault, kinds, (lo, hi) in cases:
        def run(port):
            r, rep = stress(port, "--timeout", 2, *opts)
            check(r.returncode == 1, "exit 1 against '%s' with --pipeline 8"
                  " (got %d)" % (fault, r.returncode))
            if not rep:
                return
            n = sum(rep["errors"][k] for k in kinds)
            check(n > 0, "'%s' caught as %s (%d)" % (fault, "/".join(kinds),
                                                       n))
            firsts = [rep["first_errors"][k]["offset"] for k in kinds
                      if k in rep["first_errors"]]
            check(firsts and lo <= min(firsts) <= hi,
                  "first error of '%s' at byte %s, in %d..%d" %
                  (fault, firsts, lo, hi))
        with_server([ARGS.bad, "--fault", fault, "-p", "0"], run)


def case_pipeline_swap():
    # bad_echo --fault swap echoes lines 2 and 3 in swapped order: with
    # messages in flight the order is checked (a mismatch at line 2, bytes
    # 65..129 with 64-byte payloads); with one in flight line 2 is never
    # echoed alone, so it times out. Either way: caught.
    def run(port):
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 1, "-m", "line",
                        "-s", 64, "--pipeline", 8, "--timeout", 2)
        check(r.returncode == 1, "exit 1 against swapped messages")
        if rep:
            check(rep["errors"]["mismatch"] > 0, "ordering error counted as "
                  "a mismatch (%d)" % rep["errors"]["mismatch"])
            f = rep["first_errors"].get("mismatch")
            check(f is not None and 65 <= f["offset"] <= 129,
                  "located in the second message (%s)" % f)
        r, rep = stress(port, "-c", 2, "-j", 1, "-d", 1, "-m", "line",
                        "-s", 64, "--timeout", 0.5)
        check(r.returncode == 1, "--pipeline 1: caught too")
        if rep:
            check(rep["errors"]["timeout"] > 0, "as a timeout (%d)" %
                  rep["errors"]["timeout"])
    with_server([ARGS.bad, "--fault", "swap", "-p", "0"], run)


def case_pipeline_open_loop():
    # Open loop keeps its schedule with a window, and still measures from
    # the intended send time: a server that stalls 1 s in 2 shows it.
    def run(port):
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 2, "--rate", 2000,
                        "--pipeline", 4)
        check(r.returncode == 0, "exit 0")
        if rep:
            n = rep["messages"]
            check(3200 <= n <= 4400, "open loop kept the rate (%d msgs)" % n)
    with_server([ARGS.good, "-p", "0"], run)

    def run_stall(port):
        r, rep = stress(port, "-c", 4, "-j", 1, "-d", 3, "--rate", 400,
                        "--pipeline", 8, timeout=40)
        if rep:
            p99 = rep["latency_us"]["round_trip"]["p99"]
            check(p99 >= 500000, "open-loop p99 %d us shows the 1 s stalls"
                  % p99)
            check(rep["messages"] >= 900, "the schedule was kept (%d)" %
                  rep["messages"])
    with_server([ARGS.bad, "--fault", "stall", "-p", "0"], run_stall)


class PyEcho:
    """An echo server in a thread of the test (selectors, non-blocking),
    noting the peer address of every connection it accepts."""

    def __init__(self, host="127.0.0.1"):
        self.ls = socket.socket(socket.AF_INET6 if ":" in host
                                else socket.AF_INET)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, 0))
        self.ls.listen(1024)
        self.ls.setblocking(False)
        self.port = self.ls.getsockname()[1]
        self.peers = []
        self.stopping = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.ls, selectors.EVENT_READ)
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.1):
                s = key.fileobj
                if s is self.ls:
                    try:
                        c, peer = s.accept()
                    except BlockingIOError:
                        continue
                    self.peers.append(peer)
                    c.setblocking(False)
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    d = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    d = b""
                if not d:
                    self.sel.unregister(s)
                    s.close()
                    continue
                s.setblocking(True)  # echoes here are small: send it all
                try:
                    s.sendall(d)
                except OSError:
                    pass
                s.setblocking(False)

    def stop(self):
        self.stopping = True
        self.t.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def case_source():
    # --source: connections spread round-robin over the local addresses
    # (a range and a list), as the server sees them.
    srv = PyEcho()
    try:
        r, rep = stress(srv.port, "-c", 20, "-j", 2, "-n", 20, "--pipeline",
                        4, "--source", "127.0.0.2-127.0.0.11")
        check(r.returncode == 0, "exit 0 with --source A-B")
        peers = [p[0] for p in srv.peers]
        want = ["127.0.0.%d" % i for i in range(2, 12)]
        check(sorted(set(peers)) == sorted(want),
              "the server saw 10 distinct peer addresses (%s)" %
              sorted(set(peers)))
        check(all(peers.count(a) == 2 for a in want),
              "two connections from each (%s)" %
              [peers.count(a) for a in want])
        if rep:
            check(rep["messages"] == 400 and rep["errors"]["total"] == 0,
                  "400 messages verified (%d)" % rep["messages"])
            check(rep["config"]["sources"] == 10, "JSON: 10 sources")
        srv.peers = []
        r, rep = stress(srv.port, "-c", 6, "-j", 1, "-n", 5, "--source",
                        "127.0.0.21,127.0.0.23-127.0.0.24")
        check(r.returncode == 0, "exit 0 with --source A,B-C")
        peers = sorted(p[0] for p in srv.peers)
        check(peers == ["127.0.0.21"] * 2 + ["127.0.0.23"] * 2 +
              ["127.0.0.24"] * 2, "list and range, round-robin (%s)" % peers)
    finally:
        srv.stop()


PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IP4 = rb"(" + _OCTET + rb"(?:\." + _OCTET + rb"){3})"
_PORT = rb"(0|[1-9][0-9]{0,4})"
PROXY_V1_RE = re.compile(rb"PROXY TCP4 " + _IP4 + rb" " + _IP4 + rb" " +
                         _PORT + rb" " + _PORT + rb"\r\n")
BENCH_NET = 0xc6120000  # 198.18.0.0/15, RFC 2544


class ProxyEcho:
    """An echo server behind which a PROXY protocol sender must be: each
    connection (a thread of its own, bounded by a 10 s socket timeout) must
    start with one header of the given version, checked strictly here (not
    with echod's parser); the bytes after it are echoed and counted. Per
    connection it notes the header's fields, whether the first read held
    more than the header, and the bytes echoed; anything wrong is noted in
    self.errors."""

    def __init__(self, version):
        self.version = version
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1024)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()
        self.conns, self.errors, self.threads = [], [], []
        self.empty = 0  # closed or reset before a byte of header
        self.stopping = False
        self.t = threading.Thread(target=self.accept_loop, daemon=True)
        self.t.start()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            t = threading.Thread(target=self.serve, args=(c,), daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def header(self, buf):
        """(length, (src, sport, dst, dport)) of the header at the start
        of buf; (None, None) if more bytes are needed; raises ValueError
        for a bad one."""
        if self.version == 1:
            if not (b"PROXY "[:len(buf)] == buf[:6]):
                raise ValueError("v1: no 'PROXY ' (%r)" % buf[:16])
            end = buf.find(b"\r\n", 0, 107)
            if end < 0:
                if len(buf) >= 107 or b"\n" in buf[:107]:
                    raise ValueError("v1: no CRLF within 107 bytes (%r)" %
                                     buf[:107])
                return None, None
            line = buf[:end + 2]
            m = PROXY_V1_RE.fullmatch(line)
            if not m or int(m.group(3)) > 65535 or int(m.group(4)) > 65535:
                raise ValueError("v1: malformed line %r" % line)
            return len(line), (m.group(1).decode(), int(m.group(3)),
                               m.group(2).decode(), int(m.group(4)))
        if PROXY_V2_SIG[:len(buf)] != buf[:12]:
            raise ValueError("v2: bad signature %r" % buf[:12])
        if len(buf) < 16:
            return None, None
        if buf[12] != 0x21:
            raise ValueError("v2: version/command byte %#x, not 0x21" %
                             buf[12])
        if buf[13] != 0x11:
            raise ValueError("v2: family byte %#x, not 0x11 (TCP4)" % buf[13])
        n = struct.unpack(">H", buf[14:16])[0]
        if n != 12:
            raise ValueError("v2: length %d, not 12 (TCP4, no TLVs)" % n)
        if len(buf) < 28:
            return None, None
        src, dst = socket.inet_ntoa(buf[16:20]), socket.inet_ntoa(buf[20:24])
        sport, dport = struct.unpack(">HH", buf[24:28])
        return 28, (src, sport, dst, dport)

    def serve(self, c):
        rec = {"hdr": None, "with_data": False, "echoed": 0}
        buf, first = b"", None
        c.settimeout(10)
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    break
                if first is None:
                    first = len(d)
                buf += d
                n, info = self.header(buf)
                if n is None:
                    continue
                rec["hdr"] = info
                rec["with_data"] = first > n
                rest = buf[n:]
                while True:
                    c.sendall(rest)
                    rec["echoed"] += len(rest)
                    rest = c.recv(65536)
                    if not rest:
                        break
                break
            if rec["hdr"] is None and buf:
                raise ValueError("closed within the header (%r)" % buf)
        except ValueError as e:
            with self.lock:
                self.errors.append(str(e))
        except OSError:
            pass  # a reset (--abuse reset), or the end of the run
        finally:
            c.close()
            with self.lock:
                if rec["hdr"] is not None:
                    self.conns.append(rec)
                elif not buf:
                    self.empty += 1

    def stop(self):
        self.stopping = True
        self.t.join(5)
        self.ls.close()
        deadline = time.time() + 10
        for t in list(self.threads):
            t.join(max(0.1, deadline - time.time()))


def check_proxy_sources(srv, port, what):
    """Every header's made-up source distinct and in 198.18.0.0/15, its
    port 1024 + index % 64512 for the address's index, its destination
    the server."""
    srcs = [r["hdr"][0] for r in srv.conns]
    idx = [struct.unpack(">I", socket.inet_aton(a))[0] - BENCH_NET
           for a in srcs]
    check(len(set(srcs)) == len(srcs),
          "%s: %d connections, every source address distinct" %
          (what, len(srcs)))
    check(all(0 <= i < 131072 for i in idx),
          "%s: every source address in 198.18.0.0/15 (%s ...)" %
          (what, sorted(srcs)[:3]))
    check(all(r["hdr"][1] == 1024 + i % 64512 for r, i in
              zip(srv.conns, idx)), "%s: source port 1024 + index" % what)
    check(all(r["hdr"][2:] == ("127.0.0.1", port) for r in srv.conns),
          "%s: destination 127.0.0.1 port %d" % (what, port))


def case_proxy():
    # --proxy v1|v2: every connection starts with a PROXY header (checked
    # strictly by the server here), its made-up client address its own
    # across workers, reconnects (--churn) and abusive clients; the header
    # is neither echoed nor counted: the server's echoed bytes are exactly
    # the bytes echo-stress reports sent and verified.
    srv = ProxyEcho(1)
    try:
        r, rep = stress(srv.port, "-c", 6, "-j", 2, "-d", 1, "-m", "line",
                        "-s", "1-300", "--pipeline", 2, "--proxy", "v1",
                        "--abuse", "idle=1", "--abuse", "slowloris=1",
                        "--abuse", "reset=1")
    finally:
        srv.stop()
    print(r.stderr)
    check(r.returncode == 0, "v1 with abusers: exit 0 (%d)" % r.returncode)
    check(not srv.errors, "v1: every header well-formed (%s)" %
          srv.errors[:3])
    if rep:
        check(rep["errors"]["total"] == 0 and rep["messages"] > 100,
              "v1: %d messages verified, 0 errors" % rep["messages"])
        check(rep["abuse"]["idle"]["bytes_sent"] == 0,
              "v1: idle's header not counted as bytes it sent")
        # A reset client's connection may be cut before the server reads
        # its header; every other one must have brought a header.
        sure = rep["connections"]["opened"] + sum(
            rep["abuse"][k]["connects"] for k in ("idle", "slowloris"))
        n = sure + rep["abuse"]["reset"]["connects"]
        check(len(srv.conns) >= sure and len(srv.conns) + srv.empty >= n,
              "v1: a header on each of the %d connections (%d, %d cut "
              "before it)" % (n, len(srv.conns), srv.empty))
    check_proxy_sources(srv, srv.port, "v1")

    for v, mode in ((1, "raw"), (2, "frame")):
        srv = ProxyEcho(v)
        try:
            r, rep = stress(srv.port, "-c", 5, "-j", 3, "-n", 30, "--churn",
                            3, "-m", mode, "-s", "1-500", "--proxy",
                            "v%d" % v)
        finally:
            srv.stop()
        print(r.stderr)
        what = "v%d %s --churn 3 -j 3" % (v, mode)
        check(r.returncode == 0, "%s: exit 0 (%d)" % (what, r.returncode))
        check(not srv.errors, "%s: every header well-formed (%s)" %
              (what, srv.errors[:3]))
        check_proxy_sources(srv, srv.port, what)
        if rep:
            check(rep["messages"] == 150 and rep["errors"]["total"] == 0,
                  "%s: 150 messages verified, 0 errors (%d)" %
                  (what, rep["messages"]))
            check(len(srv.conns) == rep["connections"]["opened"] == 50 and
                  srv.empty == 0, "%s: 50 connections, each with a header "
                  "(%d)" % (what, len(srv.conns)))
            echoed = sum(c["echoed"] for c in srv.conns)
            check(echoed == rep["bytes_sent"] == rep["bytes_received"],
                  "%s: the bytes after the headers = bytes sent = bytes "
                  "verified (%d, %d, %d)" % (what, echoed, rep["bytes_sent"],
                                             rep["bytes_received"]))
        # The connect phase's 5 send their header alone; every reconnect
        # sends it in the same writev as its first message.
        alone = sum(not c["with_data"] for c in srv.conns)
        check(alone <= 5, "%s: reconnects send the header with the first "
              "message (%d of %d alone)" % (what, alone, len(srv.conns)))
        check("--proxy v%d: 50 headers sent of 50 connections, each from "
              "its own address of 198.18.0.0/15" % v in r.stderr,
              "%s: the headers are said on stderr" % what)

    for bad in ("v3", "V1", "1", ""):
        rc, err, out = run_usage(["--proxy", bad, "127.0.0.1", "1"])
        lines = err.decode().splitlines()
        check(rc == 2 and len(lines) == 2 and out == b"" and
              lines[0] == "echo-stress: --proxy: '%s' is not v1 or v2" % bad
              and "--help" in lines[1],
              "--proxy %r -> exit 2, one line and the hint (got %d: %r)" %
              (bad, rc, lines))


def run_limits(args, nofile=None):
    def lower():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    r = subprocess.run([ARGS.stress, "--dry-run"] + args + ["127.0.0.1", "9"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10, preexec_fn=lower)
    print("$ echo-stress --dry-run %s -> %d\n%s" % (" ".join(args),
                                                    r.returncode, r.stderr))
    return r.returncode, r.stderr


def case_limits():
    # Limits that would stop a run are said before it starts, each with
    # what to change; --dry-run checks without running.
    rc, err = run_limits(["-c", "2000", "-j", "1"], nofile=500)
    check(rc == 1 and re.search(r"limit: descriptors: 2000 connections over "
                                r"1 workers need 2016 .* limit per process "
                                r"is 500 .*use -j 5 or more", err),
          "descriptors per process: refused, -j 5 suggested")
    rc, err = run_limits(["-c", "2000", "-j", "5"], nofile=500)
    check(rc == 0 and "limits:" in err, "-j 5 fits in 500 descriptors")
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range")
                 .read().split())
    n = hi - lo + 1 + 1000
    w = (n + 899) // 900
    rc, err = run_limits(["-c", str(n), "-j", str(w)], nofile=1000)
    check(rc == 1 and re.search(r"limit: local ports: %d connections .* "
                                r"use --source with 2 addresses" % n, err)
          and "descriptors" not in err,
          "local ports of one address: refused, --source suggested")
    rc, err = run_limits(["-c", str(n), "-j", str(w), "--source",
                          "127.0.0.2-127.0.0.3"], nofile=1000)
    check(rc == 0, "two source addresses are enough")
    rc, err = run_limits(["-c", "3", "--source", "127.0.0.2,192.0.2.7"])
    check(rc == 1 and "--source 192.0.2.7: cannot bind" in err and
          "127.0.0.2" not in err, "an address not of this host: refused")
    rc, err = run_limits(["-c", "3", "--source", "::1"])
    check(rc == 2 and "::1 is IPv6, the server address is IPv4" in err,
          "family mismatch: usage error")


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(d))
    return kids


def sockets_of(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                    "socket:")
            except OSError:
                pass
    except OSError:
        pass
    return n


def gone(pid):
    """The process has exited (a zombie, or reaped)."""
    try:
        st = open("/proc/%d/stat" % pid).read()
    except OSError:
        return True
    return st.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def case_reuseport():
    # epoll_echo -j 3: three processes on one port (SO_REUSEPORT), the
    # connections spread over them; stopping the first stops them all.
    s = Server([ARGS.good, "-p", "0", "-j", "3"])
    try:
        kids = children_of(s.p.pid)
        check(len(kids) == 2, "two more processes (%s)" % kids)
        argv = [ARGS.stress, "-c", "60", "-j", "2", "-d", "2", "127.0.0.1",
                str(s.port)]
        st = subprocess.Popen(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        socks = []
        while st.poll() is None and sum(socks) != 63:
            time.sleep(0.1)
            socks = [sockets_of(p) for p in [s.p.pid] + kids]
        out, _ = st.communicate(timeout=30)
        check(st.returncode == 0, "echo-stress passes (%d)" % st.returncode)
        # one listener each, plus its share of the 60 connections
        check(sum(socks) == 63 and min(socks) >= 2,
              "60 connections spread over 3 processes (%s)" % socks)
    finally:
        s.stop()
    deadline = time.time() + 5
    while time.time() < deadline and not all(map(gone, kids)):
        time.sleep(0.05)
    check(all(map(gone, kids)), "the others died with the first (%s)" %
          [k for k in kids if not gone(k)])


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


def hdr_value_range(index, digits=2, lowest=1):
    """HdrHistogram's counts index -> (lowest, highest) equivalent value,
    from its definition (sub-bucket count 2^ceil(log2(2 * 10^digits)))."""
    sub_count_mag = (2 * 10 ** digits - 1).bit_length()
    half_mag = sub_count_mag - 1
    unit_mag = lowest.bit_length() - 1
    bucket = (index >> half_mag) - 1
    sub = (index & ((1 << half_mag) - 1)) + (1 << half_mag)
    if bucket < 0:
        sub -= 1 << half_mag
        bucket = 0
    lo = sub << (bucket + unit_mag)
    return lo, lo + (1 << (bucket + unit_mag)) - 1


def hdr_decode(b64):
    """An independent decoder of HdrHistogram's V2 compressed encoding:
    base64, the compressed cookie, zlib, the encoding header, ZigZag LEB128
    counts with negative runs of zeros. Returns (header dict, {index: n})."""
    raw = base64.b64decode(b64, validate=True)
    ccookie, clen = struct.unpack(">Ii", raw[:8])
    if ccookie != 0x1c849314 or clen != len(raw) - 8:
        raise ValueError("compressed cookie %#x, length %d of %d" %
                         (ccookie, clen, len(raw) - 8))
    data = zlib.decompress(raw[8:])
    (cookie, plen, norm, digits, lowest, highest,
     ratio) = struct.unpack(">Iiiiqqd", data[:40])
    if cookie != 0x1c849313 or plen != len(data) - 40:
        raise ValueError("cookie %#x, payload %d of %d" %
                         (cookie, plen, len(data) - 40))
    counts, idx, pos = {}, 0, 40
    while pos < len(data):
        v, shift, k = 0, 0, 0
        while True:
            b = data[pos]
            pos += 1
            k += 1
            if k == 9:  # the ninth byte takes all 8 bits
                v |= b << shift
                break
            v |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        v = (v >> 1) ^ -(v & 1)
        if v < 0:
            idx += -v
        else:
            if v:
                counts[idx] = v
            idx += 1
    hdr = dict(normalizing_offset=norm, digits=digits, lowest=lowest,
               highest=highest, ratio=ratio, length=idx)
    return hdr, counts


def case_hdr_log():
    # --hdr-log: HdrHistogram's interval log, decoded here from the format
    # (not with echo-stress's code): the header lines readers expect, one
    # histogram per second, and together exactly the run's histogram.
    def run(port):
        fd, log = tempfile.mkstemp(suffix=".hlog")
        os.close(fd)
        r, rep = stress(port, "-c", 8, "-j", 2, "-d", 2.5, "--pipeline", 4,
                        "--hdr-log", log)
        check(r.returncode == 0, "exit 0")
        lines = open(log).read().splitlines()
        js = hdr_js_read(log)
        os.unlink(log)
        head = [l for l in lines if l.startswith("#") or l.startswith('"')]
        body = lines[len(head):]
        check("#[Histogram log format version 1.3]" in head,
              "format version line")
        st = [re.match(r"#\[StartTime: (\d+\.\d{3}) \(seconds since epoch\)"
                       r", \w{3} \w{3} \d\d \d\d:\d\d:\d\d \S+ \d{4}\]$", l)
              for l in head]
        st = [m for m in st if m]
        check(len(st) == 1 and abs(float(st[0].group(1)) - time.time()) < 60,
              "StartTime line, seconds since the epoch and a date")
        check(st and "#[BaseTime: %s (seconds since epoch)]" % st[0].group(1)
              in head, "BaseTime line equal to the start time")
        check(head[-1] == '"StartTimestamp","Interval_Length","Interval_Max",'
              '"Interval_Compressed_Histogram"', "legend line, last")
        check(all(len(l) < 128 for l in head),
              "header lines short enough for HdrHistogram_c's reader")
        total, union, mx, ok = 0, {}, 0, True
        for k, line in enumerate(body):
            f = line.split(",")
            ok &= len(f) == 4 and f[0] == "%d.000" % k
            ln = float(f[1])
            ok &= ln == 1.0 if k < len(body) - 1 else 0 < ln <= 1.0
            hdr, counts = hdr_decode(f[3])
            ok &= hdr == dict(normalizing_offset=0, digits=2, lowest=1,
                              highest=2 ** 32 - 1, ratio=1.0,
                              length=hdr["length"])
            for i, n in counts.items():
                union[hdr_value_range(i)] = union.get(hdr_value_range(i),
                                                      0) + n
            total += sum(counts.values())
            if counts:
                top = hdr_value_range(max(counts))
                ok &= top[0] <= float(f[2]) * 1000 <= top[1]
                ok &= hdr["length"] == max(counts) + 1
            mx = max(mx, round(float(f[2]) * 1000))
        check(len(body) == 3 and ok, "%d intervals: 0, 1, 2 s, V2 headers, "
              "Interval_Max in ms inside the top bucket" % len(body))
        if rep:
            rt = rep["latency_us"]["round_trip"]
            check(total == rep["messages"] and total > 1000,
                  "decoded counts add up to the messages measured "
                  "(%d, %d)" % (total, rep["messages"]))
            check(union == {(lo, hi): n for lo, hi, n in rt["buckets"]},
                  "the intervals add up to the run's histogram, "
                  "bucket by bucket")
            check(mx == rt["max"], "max of the interval maxima is the "
                  "run's max (%d, %d)" % (mx, rt["max"]))
            if js is None:
                # The test command installs it and sets this: there, a
                # missing reader is a failure, not a skip.
                check(not os.environ.get("ECHOD_REQUIRE_HDR_JS"),
                      "hdr-histogram-js required but node cannot load it "
                      "(NODE_PATH=%s)" % os.environ.get("NODE_PATH"))
                print("skip the check with hdr-histogram-js: node cannot "
                      "load it (npm install hdr-histogram-js; NODE_PATH)")
            else:
                check(js["intervals"] == len(body) and
                      js["total"] == rep["messages"] and
                      [js["p50"], js["p99"], js["p999"]] ==
                      [rt["p50"], rt["p99"], rt["p99_9"]],
                      "hdr-histogram-js's HistogramLogReader reads the same "
                      "(%s)" % js)
    with_server([ARGS.good, "-p", "0"], run)


HDR_JS = r"""
const hdr = require("hdr-histogram-js");
const fs = require("fs");
const rd = new hdr.HistogramLogReader(fs.readFileSync(process.argv[1], "utf8"));
const acc = hdr.build({lowestDiscernibleValue: 1,
                       highestTrackableValue: 2 ** 32 - 1,
                       numberOfSignificantValueDigits: 2});
let n = 0, h;
while ((h = rd.nextIntervalHistogram()) != null) { n++; acc.add(h); }
console.log(JSON.stringify({intervals: n, total: acc.totalCount,
  p50: acc.getValueAtPercentile(50), p99: acc.getValueAtPercentile(99),
  p999: acc.getValueAtPercentile(99.9)}));
"""


def hdr_js_read(path):
    """The log read by HdrHistogram's JavaScript implementation, when node
    and the hdr-histogram-js package are there; else None."""
    try:
        r = subprocess.run(["node", "-e", HDR_JS, path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def percentile(buckets, total, mx, p):
    """The value at percentile p of a bucket list, as HdrHistogram (and
    echo-stress) define it: the top of the bucket holding the
    ceil(p% x total)-th sample, never above the exact max."""
    want = max(1, math.ceil(p / 100.0 * total))
    acc = 0
    for lo, hi, n in sorted(buckets):
        acc += n
        if acc >= want:
            return min(hi, mx)
    return mx


def case_merge():
    # Two runs at once against one server (different sizes, windows and
    # rates), merged: every count is the sum, the histogram is the sum
    # bucket by bucket, and the percentiles are those of all samples
    # together, computed here from the union of the two reports' buckets.
    def run(port):
        tmp = tempfile.mkdtemp()
        ja, jb = os.path.join(tmp, "a.json"), os.path.join(tmp, "b.json")
        jm, hm = os.path.join(tmp, "m.json"), os.path.join(tmp, "m.hdr")
        base = [ARGS.stress, "-j", "1", "127.0.0.1", str(port)]
        pa = subprocess.Popen(base + ["-c", "6", "-n", "400", "-s", "1-500",
                                      "--pipeline", "3", "--rate", "2400",
                                      "--json", ja],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        pb = subprocess.Popen(base + ["-c", "4", "-n", "300", "-s", "64",
                                      "--rate", "1500", "--json", jb],
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        check(pa.wait(30) == 0 and pb.wait(30) == 0, "both runs pass")
        r = subprocess.run([ARGS.stress, "merge", "--json", jm, "--hdr", hm,
                            ja, jb], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        sys.stdout.write(r.stdout + r.stderr)
        check(r.returncode == 0, "merge: exit 0")
        a, b, m = [json.load(open(f)) for f in (ja, jb, jm)]
        check(m["messages"] == 6 * 400 + 4 * 300 == a["messages"] +
              b["messages"], "messages: the sum (%d)" % m["messages"])
        for key in ("bytes_sent", "bytes_received"):
            check(m[key] == a[key] + b[key], "%s: the sum" % key)
        check(m["connections"]["opened"] == 10 and
              m["config"]["connections"] == 10, "connections: the sum")
        check(m["config"]["rate"] == 3900 and m["config"]["workers"] == 2,
              "rate and workers: the sum")
        check(abs(m["messages_per_s"] - a["messages_per_s"] -
                  b["messages_per_s"]) < 0.01, "rates: the sum")
        for name in ("round_trip", "connect"):
            la, lb, lm = (x["latency_us"][name] for x in (a, b, m))
            union = {}
            for lo, hi, n in la["buckets"] + lb["buckets"]:
                union[(lo, hi)] = union.get((lo, hi), 0) + n
            merged = {(lo, hi): n for lo, hi, n in lm["buckets"]}
            check(merged == union, "%s: histogram = the sum, bucket by "
                  "bucket (%d buckets)" % (name, len(union)))
            check(lm["count"] == la["count"] + lb["count"] and
                  lm["max"] == max(la["max"], lb["max"]) and
                  lm["min"] == min(la["min"], lb["min"]),
                  "%s: count summed, max = max, min = min" % name)
            ub = [[lo, hi, n] for (lo, hi), n in union.items()]
            want = [percentile(ub, lm["count"], lm["max"], p)
                    for p in (50, 90, 99, 99.9)]
            got = [lm[k] for k in ("p50", "p90", "p99", "p99_9")]
            check(got == want, "%s: percentiles of the union %s, not an "
                  "average of %s and %s" % (name, want,
                                            [la[k] for k in ("p50", "p99")],
                                            [lb[k] for k in ("p50", "p99")]))
            mean = (la["sum"] + lb["sum"]) / lm["count"]
            check(abs(lm["mean"] - mean) < 0.001, "%s: exact mean" % name)
        mg = m.get("merge", {})
        ta, tb = a["times_unix"], b["times_unix"]
        want = {"start_skew_s": abs(ta["start"] - tb["start"]),
                "measure_start_skew_s": abs(ta["measure_start"] -
                                            tb["measure_start"]),
                "measure_end_skew_s": abs(ta["measure_end"] -
                                          tb["measure_end"]),
                "measure_overlap_s": min(ta["measure_end"],
                                         tb["measure_end"]) -
                max(ta["measure_start"], tb["measure_start"])}
        check(mg.get("reports") == 2 and
              all(abs(mg[k] - v) < 1e-5 for k, v in want.items()) and
              mg["start_skew_s"] < 5, "start skews and overlap shown, from "
              "the reports' times (%s)" % mg)
        rows = [l.split() for l in open(hm)
                if len(l.split()) == 3 and not l.startswith("#")]
        check(rows and rows[-1][2] == str(m["messages"]),
              "--hdr of the merge: total count %s" % (rows and rows[-1][2]))
        check("merged 2 reports" in r.stdout and "result: PASS" in r.stdout,
              "summary says what was merged")
    with_server([ARGS.good, "-p", "0"], run)

    # A report with errors makes the merge fail; bad input is said.
    def run_bad(port):
        r, rep = stress(port, "-c", 2, "-j", 1, "-d", 1, "-s", 64,
                        "--timeout", 1)
        fd, jf = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        json.dump(rep, open(jf, "w"), indent=1)  # pretty-printed: fine
        m = subprocess.run([ARGS.stress, "merge", jf, jf],
                           stdout=subprocess.PIPE, text=True, timeout=30)
        check(m.returncode == 1 and "result: FAIL" in m.stdout and
              "mismatch %d" % (2 * rep["errors"]["mismatch"]) in m.stdout,
              "errors of a report: summed, merge exit 1")
        with open(jf, "w") as f:
            f.write('{"config": {"host": "x"')
        for args, rc in (([jf], 1), (["/nonexistent.json"], 1), ([], 2),
                         (["--bogus", jf], 2)):
            m = subprocess.run([ARGS.stress, "merge"] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=30)
            check(m.returncode == rc and m.stderr.startswith(
                "echo-stress merge: ") and m.stdout == "",
                "merge %s -> exit %d, said (%r)" % (args, rc,
                                                   m.stderr.strip()))
        os.unlink(jf)
    with_server([ARGS.bad, "--fault", "flip", "-p", "0"], run_bad)


def case_progress():
    # A long connect phase (--connect-rate) shows, each second, how many
    # connections are open of all, how many are being connected and the
    # rate; the measure phase shows messages.
    def run(port):
        argv = [ARGS.stress, "-c", "40", "-j", "2", "-d", "1",
                "--connect-rate", "15", "127.0.0.1", str(port)]
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        print(r.stderr)
        check(r.returncode == 0, "exit 0")
        conn = re.findall(r"^\[ *[\d.]+s\] connect (\d+)/40 open, (\d+) "
                          r"connecting, (\d+) conn/s, 0 errors$", r.stderr,
                          re.M)
        check(len(conn) >= 2 and all(int(o) < 40 for o, _, _ in conn) and
              int(conn[0][0]) < int(conn[-1][0]) and
              all(8 <= int(c) <= 25 for _, _, c in conn),
              "connect phase: open/all, connecting and conn/s each second "
              "(%s)" % conn)
        check(re.search(r"^\[ *[\d.]+s\] measure 40 open \(40 opened\), "
                        r"\d+ msg/s", r.stderr, re.M) or
              "measure phase done" in r.stderr,
              "measure phase: messages")
    with_server([ARGS.good, "-p", "0"], run)


def case_plot():
    # stress/plot.py: the percentile curve from a report's buckets agrees
    # with the report's own percentiles; PNGs drawn when matplotlib is
    # there.
    plot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "plot.py")

    def run(port):
        tmp = tempfile.mkdtemp()
        r, rep = stress(port, "-c", 4, "-j", 1, "-n", 500, "-s", "1-300")
        check(r.returncode == 0 and rep is not None, "a run to plot")
        jf = os.path.join(tmp, "r.json")
        json.dump(rep, open(jf, "w"))
        d = subprocess.run([sys.executable, plot, "--data", "run=" + jf],
                           stdout=subprocess.PIPE, text=True, timeout=60)
        check(d.returncode == 0, "plot.py --data: exit 0")
        s = json.loads(d.stdout)[0]
        rt = rep["latency_us"]["round_trip"]
        check(s["label"] == "run" and
              [round(s["at"][k] * 1000) for k in ("50", "99", "99.9")] ==
              [rt["p50"], rt["p99"], rt["p99_9"]],
              "curve at 50/99/99.9 %% = the report's p50/p99/p99.9 (%s)" %
              s["at"])
        c = s["curve"]
        check(len(c) > 100 and c[0][0] == 50.0 and
              abs(c[-1][0] - 99.99) < 1e-9 and
              all(a[1] <= b[1] for a, b in zip(c, c[1:])),
              "curve: 50 %% to 99.99 %%, never decreasing (%d points)" %
              len(c))
        p = subprocess.run([sys.executable, plot, "--out", tmp, "run=" + jf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        if "needs matplotlib" in p.stderr:
            print("skip drawing: " + p.stderr.strip())
        else:
            pngs = p.stdout.split()
            check(p.returncode == 0 and len(pngs) == 2 and
                  all(open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
                      for f in pngs), "latency.png and rates.png drawn")
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
           ["--pipeline", "0"], ["--pipeline", "1025"],
           ["-c", "20000", "--pipeline", "1000"], ["--source", ""],
           ["--source", "127.0.0.1,"], ["--source", "300.1.1.1"],
           ["--source", "127.0.0.9-127.0.0.2"],
           ["--source", "::1-::2"], ["--source", "10.0.0.0-10.1.0.0"],
           ["--proxy", "v3"], ["--proxy"], ["no.such.host.invalid", "1"]]
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
