#!/usr/bin/env python3
"""Fault injection on the real echod (SPEC section 6, tests/faults/).

Every case runs the real echod binary with one (or two) system calls made
to fail by strace's --inject while scripted clients talk to it, then checks
SPEC's invariants:

  - the parent survives; a fault before it serves (socket, bind, listen,
    the sandbox) ends it with one clear line and status 1;
  - no client ever receives a wrong byte: every client sends a known
    pattern and checks that what comes back is a prefix of it (a close or
    a reset is acceptable, a wrong or reordered byte never);
  - no zombie child outlives the load by more than a second, no child
    outlives its connection;
  - after SIGTERM echod exits 0 within a bound, its last `stats` line says
    active=0, accepted >= the connections the clients saw served and <=
    the connections they made, bad_reports=0, and (when no report was
    faulted) bytes_out >= the bytes the clients received;
  - warnings stay rate-limited (<= 2 a second per kind from the parent) and
    the parent does not spin;
  - nothing is killed by a signal (SIGSYS would mean a fault path makes a
    call the sandbox forbids).

How a fault is aimed (README.md says why):

  start     strace starts echod: the fault hits its start-up (before and
            while it begins to listen and loads its sandbox)
  parent    strace attaches to the running parent without -f, once it waits
            in its loop: only the parent is traced; `when=N` counts the
            parent's calls from then on
  children  strace -f attaches to the running parent: calls the parent no
            longer makes once it serves (read, sendto, shutdown, ioctl,
            mmap, the confinement calls) fail in children only, counted per
            child from its fork. `write` too, when echod's stderr is a
            socket: log lines then go out with send(), and write() is only
            the children's echo.
  both      strace -f attached to the parent, a call both make (ppoll,
            close, write with stderr a pipe)

Each injected call is replaced by getpid(2) (`syscall=getpid`), which the
sandbox allows: strace's default replacement, syscall -1, is itself killed
by echod's seccomp filter.

Usage:
  faults.py --echod PATH [-j 2] [-k PATTERN] [--list] [-v]
Prints one line per case and "N cases run, F failed"; exits 1 on any
failure. Python 3 stdlib only; needs strace and root (ptrace attach).
"""

import argparse
import fnmatch
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402  (proc_stat, children, parse_kv, pattern)

IDLE_S = 1          # echod -t: the idle client is closed after ~1 s
SHUTDOWN_S = 2      # echod --shutdown-timeout
STALL_S = 3.5       # a client that sees no progress this long gives up
WAIT_STALL_S = 1.5  # the same, where the fault may keep it waiting
DRAIN_STALL_S = 7.0  # the held client, after SIGTERM
EXIT_BOUND_S = 10.0  # echod must exit this soon after SIGTERM
ZOMBIE_MAX_S = 1.0  # a zombie older than this after the load: failure
SPIN_CPU = 0.6      # parent CPU / wall over the load: above is a spin
SPIN_CSW = 3000     # parent context switches a second (traced): a spin
RATE_MAX = 2        # warning lines a second per kind (parent)
PPOLL_NR = "271"    # x86_64 ppoll: the parent waits in its loop
CASE_BUDGET_S = 60

# Known echod bugs the project has accepted as expected failures until they
# are fixed (only with the lead's approval: README.md). XFAIL: case name ->
# reason; such a case that fails prints XFAIL and does not fail the run, one
# that passes prints XPASS. KNOWN_CHECKS: the key of a check that fails at
# random in any case because of one bug -> reason; its failures become
# notes.
XFAIL = {}
KNOWN_CHECKS = {}

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z echod\[(\d+)\]: "
                    r"(.*)$")
KINDS = {"accept": re.compile(r"\baccept: "),
         "fork": re.compile(r"\bfork: "),
         "ppoll": re.compile(r"\bppoll\b"),
         "report": re.compile(r"report refused")}
FLUSH_RE = re.compile(r"^[a-z ]+: \d+ similar messages suppressed$")


# --- the matrix ------------------------------------------------------------

class Case:
    """One fault case.

    inject: [(syscall, error, when)], error an errno name or "retval=N".
    target: start | parent | children | both (see the module docstring).
    expect: serve    echod goes on serving; the probe connection made after
                     the load must be echoed in full
            degrade  service may stop while the fault lasts (clients may
                     wait in the backlog); no probe
            child    a fault in every child (strace counts per process):
                     each connection is served in full or closed, and the
                     parent still accepts and forks: the probe is answered
                     (echoed or closed), never left waiting
            refuse   children cannot confine themselves: every connection
                     is closed unserved, the parent logs each child's
                     status 1 and goes on
            fatal    echod exits 1 at start with one clear line
            either   a start-up fault echod may survive (then: serve) or
                     refuse to start (then: fatal)
    lossless: no connection may be lost (a parent-side transient fault:
              SPEC says survived, served again, "never reset").
    waive: checks this case cannot meet by construction, with the reason
           (README.md): zombie, active, bytes, stats, eof, wait, killed,
           spin, probe, fired.
    """

    def __init__(self, name, target, inject, expect="serve", mode="raw",
                 opts=(), stderr="pipe", lossless=False, waive=None):
        self.name = name
        self.target = target
        self.inject = inject
        self.expect = expect
        self.mode = mode
        self.opts = list(opts)
        self.stderr = stderr
        self.lossless = lossless
        self.waive = dict(waive or {})


CASES = []


def _tag(when):
    return {"1+": "every", "1+2": "everyother"}.get(when, when)


def add(target, sc, errs, whens, **kw):
    """Cases for syscall sc: each errno of errs at each when of whens."""
    suffix = kw.pop("suffix", "")
    for err in errs:
        for when in whens:
            k = dict(kw)
            if target in ("children", "both"):
                k.setdefault("expect", "child")
            per = k.pop("per_when", {}).get(when, {})
            k.update(per)
            name = "%s.%s.%s.%s" % (target, sc, err.replace("retval=", "ret"),
                                    _tag(when))
            mode = k.get("mode", "raw")
            if mode != "raw":
                name += "." + mode
            if suffix:
                name += "." + suffix
            CASES.append(Case(name, target, [(sc, err, when)], **k))


def build_matrix():
    # A persistent fault that takes a resource forever cannot leave the
    # server able to serve: those cases expect "degrade".
    W_ZOMBIE = {"zombie": "wait4 never succeeds: no child can be reaped",
                "active": "no child is ever reaped, so none leaves the "
                          "count"}
    W_WRITE = {"stats": "the parent's log lines, the stats line included, "
                        "cannot be written"}
    W_REPORT = {"bytes": "a child's report is what carries its bytes"}
    W_CLOSE = {"eof": "strace's failed close() leaves the descriptor open "
                      "(Linux always frees it): the peer may see no FIN"}

    # ---- start: before and while echod starts to listen ----------------
    fatal = dict(expect="fatal")
    add("start", "socket", ["EMFILE", "ENFILE", "EACCES", "ENOBUFS",
                            "EAFNOSUPPORT"], ["1"], **fatal)
    add("start", "bind", ["EADDRINUSE", "EACCES", "EADDRNOTAVAIL",
                          "ENOMEM"], ["1"], **fatal)
    add("start", "listen", ["EADDRINUSE", "EOPNOTSUPP"], ["1"], **fatal)
    add("start", "getsockname", ["ENOBUFS"], ["1"], **fatal)
    add("start", "socketpair", ["EMFILE", "ENFILE"], ["1"], **fatal)
    # setsockopt: 1 SO_PASSCRED (report socket), 2 SO_SNDBUFFORCE
    # (falls back to SO_SNDBUF), 3 SO_REUSEADDR, 4 SO_OOBINLINE
    add("start", "setsockopt", ["EINVAL"], ["1"], suffix="passcred", **fatal)
    add("start", "setsockopt", ["EPERM"], ["2"], suffix="sndbufforce",
        expect="either")
    add("start", "setsockopt", ["ENOPROTOOPT"], ["3"], suffix="reuseaddr",
        **fatal)
    add("start", "setsockopt", ["ENOPROTOOPT"], ["4"], suffix="oobinline",
        **fatal)
    add("start", "memfd_create", ["EMFILE", "ENOMEM"], ["1"], **fatal)
    add("start", "ftruncate", ["EPERM"], ["1"], **fatal)
    # mmap: 1 the control page (rw), 2 its read-only view, 3 the child table
    add("start", "mmap", ["ENOMEM"], ["1", "2", "3"], **fatal)
    # fcntl: 1 F_SETPIPE_SZ (best effort), 2 F_ADD_SEALS
    add("start", "fcntl", ["EPERM"], ["1"], suffix="setpipesz",
        expect="either")
    add("start", "fcntl", ["EINVAL"], ["2"], suffix="addseals", **fatal)
    # madvise: 1 the control page (MADV_DONTFORK), 2 the child table
    add("start", "madvise", ["EINVAL"], ["1"], suffix="control", **fatal)
    add("start", "madvise", ["EINVAL"], ["2"], suffix="table",
        expect="either")
    # openat: 1 /dev/null for stdin/stdout, 2 /proc/self/fd/2
    add("start", "openat", ["ENFILE"], ["1"], suffix="devnull",
        expect="either")
    add("start", "openat", ["EACCES"], ["2"], suffix="procfd",
        expect="either")
    # dup2: 1 and 2 stdin and stdout onto /dev/null, 3 stderr reopened
    add("start", "dup2", ["EBUSY"], ["1"], expect="either")
    add("start", "dup2", ["EINTR"], ["3"], expect="either")
    add("start", "newfstatat", ["ENOMEM"], ["1"], expect="either")
    add("start", "close_range", ["EINVAL"], ["1"], expect="either")
    # getrandom: 1 glibc's start-up, 2 the table's hash seed
    add("start", "getrandom", ["ENOSYS"], ["2"], expect="either")
    # rt_sigaction: 1 SIGPIPE ignored, 2 SIGCHLD, 3 SIGTERM handlers
    add("start", "rt_sigaction", ["EINVAL"], ["1", "2", "3"],
        expect="either")
    add("start", "rt_sigprocmask", ["EINVAL"], ["1"], expect="either")
    # the listening line, the first log line
    add("start", "write", ["EAGAIN", "EPIPE"], ["1"], expect="either")
    # after "listening on": the Landlock probe, no_new_privs, the filter
    add("start", "landlock_create_ruleset", ["EOPNOTSUPP", "EINVAL"],
        ["1"], expect="either")
    add("start", "prctl", ["EINVAL"], ["1", "2"], **fatal)
    add("start", "seccomp", ["ENOMEM", "EINVAL"], ["1+"], **fatal)

    # ---- parent: the serving loop --------------------------------------
    lossless = dict(lossless=True)
    # accept4: errors that pause (back-off) and errors that go on at once
    add("parent", "accept4", ["EMFILE", "ENOMEM"], ["1", "3"], **lossless)
    add("parent", "accept4", ["ENFILE"], ["1"], **lossless)
    add("parent", "accept4", ["ENOBUFS"], ["3"], **lossless)
    add("parent", "accept4", ["EMFILE", "ENOMEM"], ["1+"], expect="degrade",
        waive={"wait": "no connection can be accepted while accept4 fails"})
    add("parent", "accept4", ["ECONNABORTED"], ["1", "1+2"], **lossless)
    add("parent", "accept4", ["EPROTO", "EINTR", "EAGAIN"], ["1+2"],
        **lossless)
    add("parent", "accept4", ["EPERM"], ["1"], **lossless)
    # Linux passes pending network errors on (accept(2)): retry
    add("parent", "accept4", ["ENETDOWN", "EBADF"], ["1"], **lossless)
    # clone (fork): the connection is held and served when fork works
    add("parent", "clone", ["EAGAIN", "ENOMEM"], ["1", "3"], **lossless)
    add("parent", "clone", ["ENOSPC", "EPERM"], ["1"], **lossless)
    add("parent", "clone", ["EAGAIN", "ENOMEM"], ["1+"], expect="degrade",
        waive={"wait": "no child can serve while fork fails; the backlog "
                       "waits"})
    # the same in line and frame mode
    add("parent", "clone", ["EAGAIN"], ["1"], mode="line", **lossless)
    add("parent", "accept4", ["EMFILE"], ["1"], mode="frame", **lossless)
    # wait4
    add("parent", "wait4", ["EINTR", "ECHILD"], ["1", "3"])
    add("parent", "wait4", ["EINVAL"], ["1"])
    add("parent", "wait4", ["ECHILD"], ["1+"], expect="degrade",
        waive=W_ZOMBIE)
    # kill: only at the drain
    add("parent", "kill", ["ESRCH", "EPERM", "EINVAL"], ["1"],
        waive={"killed": "the SIGTERM was lost: SIGKILL ends the child"})
    add("parent", "kill", ["ESRCH", "EPERM"], ["1+"])
    # without an idle timeout a child that misses SIGTERM only leaves when
    # SIGKILL comes: if that fails too, the drain must still end
    W_KILLED = {"killed": "the SIGTERM was lost: SIGKILL ends the child",
                "bytes": "a child ended by SIGKILL sends no report",
                "active": "when SIGKILL fails too, the child outlives the "
                          "drain (the stats say so) and dies with the "
                          "parent (PR_SET_PDEATHSIG)"}
    add("parent", "kill", ["EPERM"], ["1", "1+"], opts=["-t", "0"],
        suffix="t0", waive=W_KILLED)
    # ppoll (the parent's loop and drain)
    add("parent", "ppoll", ["EINTR"], ["1", "1+2"])
    add("parent", "ppoll", ["ENOMEM"], ["1", "3"])
    add("parent", "ppoll", ["EFAULT"], ["1"])
    add("parent", "ppoll", ["EINVAL"], ["3"])
    add("parent", "ppoll", ["ENOMEM"], ["1+"], expect="degrade",
        waive={"wait": "the parent cannot wait for a connection while "
                       "ppoll fails"})
    # rt_sigtimedwait: taking signals ppoll left pending (zero timeout)
    add("parent", "rt_sigtimedwait", ["EINTR", "EINVAL"], ["1", "1+"])
    # recvmsg: the children's reports
    add("parent", "recvmsg", ["EINTR"], ["1", "1+2"])
    add("parent", "recvmsg", ["ENOMEM"], ["1", "2", "3"])
    add("parent", "recvmsg", ["EAGAIN"], ["1"])
    add("parent", "recvmsg", ["EFAULT"], ["2"])
    # (not EAGAIN on every other call: with MSG_DONTWAIT a kernel says
    # EAGAIN only when the queue is empty, and a report that is queued
    # but said absent is what the parent cannot tell from a lost one)
    add("parent", "recvmsg", ["ENOMEM"], ["1+2"])
    add("parent", "recvmsg", ["ENOMEM"], ["1+"], expect="degrade",
        waive=W_REPORT)
    # write: the parent's log lines
    add("parent", "write", ["EAGAIN", "EIO", "EINTR"], ["1"])
    add("parent", "write", ["EAGAIN", "EPIPE"], ["1+"], waive=W_WRITE)
    # close: the parent's copy of each connection
    add("parent", "close", ["EINTR"], ["1"], waive=W_CLOSE)
    add("parent", "close", ["EIO"], ["3"], waive=W_CLOSE)

    # ---- children: confinement, before the first byte ------------------
    # strace counts calls per process: when=1 fails the call in every
    # child (each makes it once).
    refuse = dict(expect="refuse")
    add("children", "setgroups", ["EPERM", "ENOMEM", "EINVAL"], ["1"],
        **refuse)
    add("children", "setresgid", ["EPERM", "EAGAIN"], ["1"], **refuse)
    add("children", "setresuid", ["EPERM", "EAGAIN", "EINVAL"], ["1"],
        **refuse)
    add("children", "capset", ["EPERM", "EINVAL"], ["1"], **refuse)
    add("children", "prlimit64", ["EPERM", "EINVAL"], ["1"], **refuse)
    add("children", "prctl", ["EINVAL", "EPERM"], ["1"], **refuse)
    # the parent seems gone before PR_SET_PDEATHSIG took effect
    add("children", "getppid", ["retval=1"], ["1"], **refuse)
    add("children", "landlock_create_ruleset", ["EOPNOTSUPP", "EINVAL",
                                                "E2BIG"], ["1"], **refuse)
    add("children", "landlock_restrict_self", ["EPERM", "EINVAL"], ["1"],
        **refuse)
    ok = dict(expect="serve", lossless=True)  # nothing may be lost
    add("children", "set_robust_list", ["EINVAL"], ["1"], **ok)
    # ---- children: serving ----------------------------------------------
    # errors that end the connection (a close or a reset, never a wrong
    # byte) and errors to retry (EINTR, EAGAIN: nothing may be lost)
    # (a socket's read also returns its pending error: tcp(7))
    add("children", "read", ["ECONNRESET"], ["1", "2"])
    add("children", "read", ["ETIMEDOUT", "ENOMEM"], ["2"])
    add("children", "read", ["EIO"], ["1"])
    add("children", "read", ["ECONNRESET"], ["1+"])
    add("children", "read", ["EBADF", "EFAULT"], ["3"])
    add("children", "read", ["EINTR"], ["1", "1+2"], **ok)
    add("children", "read", ["EAGAIN"], ["3", "1+2"], **ok)
    add("children", "write", ["EPIPE"], ["1", "2", "1+"], stderr="socket")
    add("children", "write", ["ECONNRESET"], ["2"], stderr="socket")
    add("children", "write", ["EIO", "ENOBUFS"], ["3"], stderr="socket")
    add("children", "write", ["EAGAIN"], ["2", "1+2"], stderr="socket", **ok)
    add("children", "write", ["EINTR"], ["1", "1+2"], stderr="socket", **ok)
    add("children", "write", ["EINTR"], ["1"], mode="line", stderr="socket",
        **ok)
    # sendto: the child's report, after its connection is closed
    add("children", "sendto", ["EAGAIN"], ["1"], **ok)
    add("children", "sendto", ["EINTR"], ["1+2"], **ok)
    add("children", "sendto", ["ENOBUFS", "EPIPE"], ["1"],
        expect="serve", lossless=True, waive=W_REPORT)
    add("children", "sendto", ["EAGAIN"], ["1+"], expect="serve",
        lossless=True, waive=W_REPORT)
    # serving blocking (conn.c): the socket timeouts and the SIGTERM
    # handler; when either cannot be had the child polls instead
    add("children", "setsockopt", ["EINVAL", "ENOMEM"], ["1"], **ok)
    add("children", "setsockopt", ["ENOBUFS"], ["1+"], **ok)
    add("children", "rt_sigaction", ["EINVAL"], ["1", "2"], **ok)
    add("children", "rt_sigprocmask", ["EINVAL"], ["1"], **ok)
    # raw bulk through a pipe (the "big" client fills a read): no pipe
    # means copying on; splice's retryable errors lose nothing, the others
    # end the connection (never a wrong byte)
    add("children", "pipe2", ["EMFILE", "ENFILE"], ["1"], **ok)
    # F_SETPIPE_SZ refused (the user past fs.pipe-user-pages-soft): no
    # pipe either, copying goes on
    add("children", "fcntl", ["EPERM"], ["1"], **ok)
    add("children", "splice", ["EAGAIN", "EINTR"], ["1", "1+2"], **ok)
    add("children", "splice", ["ENOMEM", "EIO"], ["2"])
    add("children", "splice", ["EPIPE"], ["1+"])
    # the lingering close (idle timeout, drain)
    add("children", "shutdown", ["ENOTCONN", "EINVAL"], ["1"], **ok)
    add("children", "ioctl", ["ENOTTY"], ["1", "1+"], **ok)
    add("children", "ioctl", ["EINVAL"], ["1"], **ok)
    # line and frame mode: the message buffer
    for mode in ("line", "frame"):
        add("children", "mmap", ["ENOMEM", "EAGAIN"], ["1"], mode=mode)
    add("children", "read", ["ECONNRESET"], ["2"], mode="frame")
    add("children", "read", ["EINTR"], ["1+2"], mode="line", **ok)
    add("children", "write", ["EAGAIN"], ["1+2"], mode="frame",
        stderr="socket", **ok)
    add("children", "exit_group", ["EINTR"], ["1"], **ok)

    # ---- both: calls the parent and every child make --------------------
    add("both", "ppoll", ["EINTR"], ["1", "1+2"], **ok)
    add("both", "ppoll", ["ENOMEM", "EINVAL"], ["1", "2"])
    add("both", "ppoll", ["EINTR"], ["1+2"], mode="line", **ok)
    add("both", "write", ["EAGAIN", "EPIPE"], ["1", "2"])
    add("both", "write", ["EINTR"], ["1+2"], **ok)
    add("both", "close", ["EINTR"], ["1"], waive=W_CLOSE)
    add("both", "close", ["EIO"], ["4"], waive=W_CLOSE)

    # ---- two faults at once ---------------------------------------------
    # fork fails for good and the held connections are given up: their
    # input cannot be dropped (recv fails), then no FIN (shutdown fails)
    CASES.append(Case("parent.clone.EAGAIN.every+recvfrom.EIO.1", "parent",
                      [("clone", "EAGAIN", "1+"), ("recvfrom", "EIO", "1")],
                      expect="degrade",
                      waive={"wait": "no child can serve while fork "
                                     "fails"}))
    CASES.append(Case("parent.clone.EAGAIN.every+shutdown.EINVAL.1",
                      "parent",
                      [("clone", "EAGAIN", "1+"), ("shutdown", "EINVAL",
                                                     "1")],
                      expect="degrade",
                      waive={"wait": "no child can serve while fork "
                                     "fails"}))
    # accept and fork both fail once
    CASES.append(Case("parent.accept4.EMFILE.2+clone.EAGAIN.2", "parent",
                      [("accept4", "EMFILE", "2"), ("clone", "EAGAIN",
                                                    "2")],
                      lossless=True))


build_matrix()


# --- clients ---------------------------------------------------------------

def messages(mode, seed, n, size):
    """n messages of size bytes in the framing of mode (valid input: the
    echo is the input, byte for byte)."""
    out = []
    for i in range(n):
        body = h.pattern(size, seed * 1000 + i)
        if mode == "line":
            body = bytes(0x41 + b % 26 for b in body) + b"\n"
        elif mode == "frame":
            body = struct.pack(">I", len(body)) + body
        out.append(body)
    return out


class Ctx:
    def __init__(self, mode, stall):
        self.mode = mode
        self.stall = stall  # a client's patience without progress
        self.stop = threading.Event()  # the held client stops sending


class Conn:
    """A scripted client. kind: rt (send, check the echo, close), half
    (then shut down its sending side and expect EOF), idle (then wait for
    the server's idle close), held (trickle until told to stop, then
    expect the rest of the echo and EOF: the drain)."""

    def __init__(self, label, kind, chunks, gap=0.02):
        self.label = label
        self.kind = kind
        self.chunks = list(chunks)
        self.gap = gap
        self.sent = bytearray()
        self.got = bytearray()
        self.outcome = None
        self.detail = ""
        self.connected = False
        self.cport = None
        self.done = threading.Event()

    def served(self):
        return len(self.got) > 0

    def run(self, port, ctx):
        try:
            self._run(port, ctx)
        except Exception as ex:  # noqa: BLE001 - recorded, judged later
            if self.outcome is None:
                self.outcome = "error"
                self.detail = "%s: %s" % (type(ex).__name__, ex)
        finally:
            self.done.set()

    def _run(self, port, ctx):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(3)
            try:
                s.connect(("127.0.0.1", port))
            except OSError as ex:
                self.outcome = "connect-error"
                self.detail = str(ex)
                return
            self.connected = True
            self.cport = s.getsockname()[1]
            s.setblocking(False)
            self._pump(s, ctx)
        finally:
            s.close()

    def _pump(self, s, ctx):
        queue = list(self.chunks)
        cur = b""
        next_at = time.monotonic()
        shut = eof = False
        last = time.monotonic()
        trickle = 0
        stop_seen = None
        while True:
            now = time.monotonic()
            held_on = self.kind == "held" and not ctx.stop.is_set()
            if held_on and not queue and not cur and now >= next_at:
                queue.append(messages(ctx.mode, 900 + trickle, 1, 40)[0])
                trickle += 1
            if not cur and queue and now >= next_at:
                cur = queue.pop(0)
                next_at = now + (0.25 if self.kind == "held" else self.gap)
            if self.kind == "held" and ctx.stop.is_set() and stop_seen is None:
                stop_seen = now
                last = now
            sending_done = not cur and not queue and not held_on
            if self.kind == "half" and sending_done and not shut:
                shut = True
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError as ex:  # the server closed first
                    self.outcome = "reset"
                    self.detail = str(ex)
                    return
            complete = sending_done and len(self.got) == len(self.sent)
            if complete and self.kind == "rt":
                self.outcome = "full"
                return
            if eof:
                self.outcome = "full" if complete else "closed"
                return
            stall = DRAIN_STALL_S if stop_seen is not None else ctx.stall
            if now - last > stall:
                self.outcome = "noeof" if complete else "timeout"
                self.detail = "no progress for %.1fs (sent %d, got %d)" % (
                    stall, len(self.sent), len(self.got))
                return
            wait = 0.1
            if queue and not cur:
                wait = min(wait, max(0.0, next_at - now))
            try:
                r, w, _ = select.select([s], [s] if cur else [], [], wait)
                if w:
                    n = s.send(cur[:65536])
                    self.sent += cur[:n]
                    cur = cur[n:]
                    last = time.monotonic()
                if r:
                    data = s.recv(65536)
                    if not data:
                        eof = True
                        continue
                    self.got += data
                    last = time.monotonic()
                    n = len(self.got)
                    if n > len(self.sent) or self.got != self.sent[:n]:
                        i = next((k for k in range(min(n, len(self.sent)))
                                  if self.got[k] != self.sent[k]),
                                 len(self.sent))
                        self.outcome = "wrong"
                        self.detail = ("byte %d: got %r, sent %r" %
                                       (i, bytes(self.got[i:i + 16]),
                                        bytes(self.sent[i:i + 16])))
                        return
            except (ConnectionResetError, BrokenPipeError) as ex:
                self.outcome = "reset"
                self.detail = str(ex)
                return
            except BlockingIOError:
                pass

    def summary(self):
        return "%s:%s(%s sent=%d got=%d)%s" % (
            self.label, self.outcome, self.kind, len(self.sent),
            len(self.got), (" " + self.detail) if self.detail else "")


def scenario(mode, idle=True):
    """The standard load: 10 connections of every kind, in raw, line or
    frame mode (without the client that waits for the idle timeout when
    the case turns it off). Returns (load, probe, held)."""
    def m(seed, n, size):
        return messages(mode, seed, n, size)
    load = [
        [Conn("seq1", "rt", m(1, 3, 60)), Conn("seq2", "rt", m(2, 2, 300)),
         Conn("seq3", "rt", m(3, 3, 40))],              # one after another
        [Conn("big", "rt", m(4, 2, 100) + [b"".join(m(5, 50, 4000))])],
        [Conn("par1", "rt", m(6, 4, 120))],
        [Conn("par2", "rt", m(7, 4, 1000))],
        [Conn("half", "half", m(8, 2, 200))],
    ]
    if idle:
        load.append([Conn("idle", "idle", m(9, 1, 50))])
    held = Conn("held", "held", m(10, 1, 80))
    probe = Conn("probe", "rt", m(11, 2, 100))
    return load, probe, held


# --- processes -------------------------------------------------------------

def listen_port(pid):
    """The TCP port pid listens on (from /proc), or None."""
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and f[9] in inodes:
                return int(f[1].rsplit(":", 1)[1], 16)
    return None


def status_field(pid, key):
    st = h.proc_status(pid)
    return st.get(key) if st else None


def in_loop(pid):
    """The parent has its filter and waits in ppoll(): it serves."""
    if status_field(pid, "Seccomp") != "2":
        return False
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[0] == PPOLL_NR
    except (OSError, IndexError):
        return False


def ctx_switches(pid):
    st = h.proc_status(pid)
    if not st:
        return 0
    return (int(st.get("voluntary_ctxt_switches", 0)) +
            int(st.get("nonvoluntary_ctxt_switches", 0)))


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Lines:
    """echod's stderr, read in a thread (a pipe or a socket)."""

    def __init__(self, fileobj):
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, args=(fileobj,),
                                  daemon=True)
        self.t.start()

    def _read(self, f):
        try:
            for raw in f:
                with self.lock:
                    self.lines.append(raw.decode("utf-8", "replace")
                                      .rstrip("\n"))
        except (OSError, ValueError):
            pass

    def snapshot(self):
        with self.lock:
            return list(self.lines)


class ZombieWatch:
    """Samples echod's children: how long each has been a zombie."""

    def __init__(self, pid):
        self.pid = pid
        self.first = {}
        self.max_age_after = 0.0
        self.max_age_during = 0.0
        self.after = None  # when the load stopped
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            zs = set()
            for p, st in h.children(self.pid):
                if st == "Z":
                    zs.add(p)
                    self.first.setdefault(p, now)
            for p in list(self.first):
                if p not in zs:
                    del self.first[p]
            for p, t0 in self.first.items():
                age = now - t0
                if self.after is not None and now >= self.after:
                    self.max_age_after = max(self.max_age_after,
                                             now - max(t0, self.after))
                else:
                    self.max_age_during = max(self.max_age_during, age)
            time.sleep(0.05)


# --- one case --------------------------------------------------------------

class Result:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.notes = []
        self.log = []

    def fail(self, msg, key=None):
        if key in KNOWN_CHECKS:
            self.notes.append("known (%s): %s" % (KNOWN_CHECKS[key], msg))
        else:
            self.failures.append(msg)

    def note(self, msg):
        self.notes.append(msg)


def inject_args(case):
    args = []
    for sc, err, when in case.inject:
        what = err if err.startswith("retval=") else "error=" + err
        args += ["-e", "inject=%s:%s:when=%s:syscall=getpid" % (sc, what,
                                                                  when)]
    return args


def strace_argv(case, logpath, follow, tail):
    calls = sorted({sc for sc, _, _ in case.inject})
    argv = ["strace", "-qq", "-o", logpath, "-e", "signal=none",
            "-e", "trace=" + ",".join(calls)]
    if follow:
        argv.append("-f")
    return argv + inject_args(case) + tail


def injected(logpath, pid=0):
    """[(pid, line)] of the injected calls in strace's log (lines without
    a pid, strace without -f, are pid's)."""
    out = []
    try:
        with open(logpath, errors="replace") as f:
            for ln in f:
                if "(INJECTED)" in ln:
                    m = re.match(r"(\d+)\s+(.*)$", ln.rstrip())
                    if m:
                        out.append((int(m.group(1)), m.group(2)))
                    else:
                        out.append((pid, ln.rstrip()))
    except OSError:
        pass
    return out


def run_case(case, echod, tmp, res):
    logpath = os.path.join(tmp, "strace.log")
    argv = [echod, "-p", "0", "-b", "127.0.0.1", "-m", case.mode,
            "-t", str(IDLE_S), "--shutdown-timeout", str(SHUTDOWN_S)]
    argv += case.opts
    theirs = None
    if case.stderr == "socket":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        err_arg = theirs.fileno()
    else:
        err_arg = subprocess.PIPE
    tracer = None
    if case.target == "start":
        top = subprocess.Popen(strace_argv(case, logpath, False,
                                           ["--"] + argv),
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err_arg)
        tracer = top
    else:
        top = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err_arg)
    if theirs is not None:
        theirs.close()
        lines = Lines(ours.makefile("rb"))
    else:
        lines = Lines(top.stderr)
    procs = [top]
    try:
        _run_case(case, echod, res, top, tracer, lines, logpath, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                kill_pid(p.pid)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        lines.t.join(2)
        res.log = lines.snapshot()


def find_echod(top, tracer, echod, deadline):
    """echod's pid: top itself, or the child of strace that runs echod
    (strace forks short-lived helpers of its own first)."""
    if tracer is None:
        return top.pid
    want = os.path.realpath(echod)
    while time.monotonic() < deadline:
        for p, st in h.children(top.pid):
            try:
                if st != "Z" and os.readlink("/proc/%d/exe" % p) == want:
                    return p
            except OSError:
                pass
        if top.poll() is not None:
            return None
        time.sleep(0.005)
    return None


def _run_case(case, echod, res, top, tracer, lines, logpath, procs):
    deadline = time.monotonic() + 10
    epid = find_echod(top, tracer, echod, deadline)
    # Wait until it serves (filter loaded, waiting in ppoll) or exits.
    port = None
    while time.monotonic() < deadline:
        if top.poll() is not None:
            break
        if epid and in_loop(epid):
            port = listen_port(epid)
            if port:
                break
        time.sleep(0.01)
    if port is None:
        if top.poll() is None:
            res.fail("echod neither served nor exited within 10 s")
            st = h.proc_status(epid) if epid else None
            try:
                with open("/proc/%d/syscall" % epid) as f:
                    sc = f.read().strip()
            except (OSError, TypeError):
                sc = "?"
            res.note("echod pid %s: state %s, Seccomp %s, TracerPid %s, "
                     "syscall %s, port %s" % (
                         epid, st and st.get("State"),
                         st and st.get("Seccomp"),
                         st and st.get("TracerPid"), sc,
                         epid and listen_port(epid)))
            return
        top.wait()
        lines.t.join(2)
        return check_fatal(case, res, top.returncode, lines, logpath)
    if case.expect == "fatal":
        res.fail("echod serves on port %d: expected it to refuse to start"
                 % port)
    res.note("port %d, echod pid %d" % (port, epid))

    if tracer is None:
        tracer = subprocess.Popen(
            strace_argv(case, logpath, case.target != "parent",
                        ["-p", str(epid)]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        procs.append(tracer)
        t_end = time.monotonic() + 10
        while status_field(epid, "TracerPid") != str(tracer.pid):
            if time.monotonic() > t_end or tracer.poll() is not None:
                err = b""
                if tracer.poll() is not None:
                    err = tracer.stderr.read()
                res.fail("strace did not attach: %r" % err[-300:])
                return
            time.sleep(0.01)

    # Where clients may wait in the backlog for good, they wait less.
    ctx = Ctx(case.mode, WAIT_STALL_S if case.waive.get("wait") else STALL_S)
    load, probe, held = scenario(case.mode, idle="-t" not in case.opts)
    zw = ZombieWatch(epid)
    cpu0, csw0, t0 = h.cpu_seconds(epid), ctx_switches(epid), \
        time.monotonic()
    alive_before_term = True
    try:
        threads = []

        def run_group(group):
            for c in group:
                c.run(port, ctx)

        for group in load:
            t = threading.Thread(target=run_group, args=(group,),
                                 daemon=True)
            t.start()
            threads.append(t)
        ht = threading.Thread(target=held.run, args=(port, ctx), daemon=True)
        ht.start()
        time.sleep(0.3)
        if top.poll() is None:
            os.kill(epid, signal.SIGUSR1)
        for t in threads:
            t.join(30)
        # The load has stopped (the held client stays): zombies and
        # children that outlive their connection.
        zw.after = time.monotonic()
        settle_end = zw.after + 3.5
        expect_live = 0 if held.done.is_set() else 1
        while True:
            now = time.monotonic()
            live = [p for p, st in h.children(epid) if st != "Z"]
            zombies = [p for p, st in h.children(epid) if st == "Z"]
            if len(live) <= expect_live and not zombies:
                break
            if zw.max_age_after > ZOMBIE_MAX_S + 0.1:
                break
            if now >= settle_end:
                break
            time.sleep(0.05)
        live = [p for p, st in h.children(epid) if st != "Z"]
        expect_live = 0 if held.done.is_set() else 1
        if len(live) > expect_live and not case.waive.get("wait"):
            res.fail("children outlived their connections: %d live "
                     "children 3.5 s after the load, expected <= %d"
                     % (len(live), expect_live))
        if case.expect in ("serve", "either", "child", "refuse"):
            probe.run(port, ctx)
        wall = time.monotonic() - t0
        cpu = h.cpu_seconds(epid) - cpu0
        csw = ctx_switches(epid) - csw0
        alive_before_term = top.poll() is None
    finally:
        zw.stop.set()
        zw.t.join(2)
    res.note("load: %.1fs, parent cpu %.2fs, %d context switches, zombie "
             "max age %.2fs during, %.2fs after" %
             (wall, cpu, csw, zw.max_age_during, zw.max_age_after))

    # SIGTERM: the drain.
    t_term = time.monotonic()
    term_mark = len(lines.snapshot())
    if alive_before_term:
        ctx.stop.set()
        time.sleep(0.05)
        os.kill(epid, signal.SIGTERM)
    rc = None
    try:
        proc = top
        rc = proc.wait(EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        res.fail("echod did not exit within %.0f s of SIGTERM" %
                 EXIT_BOUND_S)
        kill_pid(epid)
        try:
            rc = top.wait(5)
        except subprocess.TimeoutExpired:
            pass
    t_exit = time.monotonic() - t_term
    ctx.stop.set()
    ht.join(DRAIN_STALL_S + 2)
    if tracer is not top:
        try:
            tracer.wait(5)
        except subprocess.TimeoutExpired:
            kill_pid(tracer.pid)
    res.note("exit %s %.2fs after SIGTERM" % (rc, t_exit))
    if rc is not None and t_exit > SHUTDOWN_S + 1.5:
        res.fail("the drain took %.1f s (--shutdown-timeout %d)" %
                 (t_exit, SHUTDOWN_S))
    if rc is not None:
        lines.t.join(3)  # the last lines, up to EOF
    conns = [c for g in load for c in g] + [held]
    if case.expect in ("serve", "either", "child", "refuse"):
        conns.append(probe)
    evaluate(case, res, conns, probe, zw, rc, alive_before_term, lines,
             term_mark, logpath, epid, wall, cpu, csw)


def check_fatal(case, res, rc, lines, logpath):
    res.note("echod exited %s without serving" % rc)
    if case.expect not in ("fatal", "either"):
        res.fail("echod exited (status %s) before serving: expected it to "
                 "serve" % rc)
        return
    if rc != 1:
        res.fail("exit status %s, expected 1" % rc)
    ls = [ln for ln in lines.snapshot() if ln.strip()]
    own = [ln for ln in ls if LOG_RE.match(ln)]
    others = [ln for ln in ls if not LOG_RE.match(ln)]
    if others:
        res.fail("stderr lines that are not echod's log lines: %r" %
                 others[:3])
    if not own:
        res.fail("no message on stderr")
        return
    last = LOG_RE.match(own[-1]).group(3)
    if not re.match(r"(cannot |[a-z].*: )", last) or len(last) < 15:
        res.fail("the last line does not say what failed: %r" % last)
    errs = [ln for ln in own if re.search(r"\bcannot\b", ln)]
    if len(errs) != 1:
        res.fail("expected one line saying what failed, got %d: %r" %
                 (len(errs), errs))
    if not injected(logpath):
        res.fail("the fault never fired")


def evaluate(case, res, conns, probe, zw, rc, alive_before_term, lines,
             term_mark, logpath, epid, wall, cpu, csw):
    w = case.waive
    log = lines.snapshot()
    before = [LOG_RE.match(ln) for ln in log[:term_mark]]
    usr1_stats = [m for m in before if m and int(m.group(2)) == epid and
                  m.group(3).startswith("stats ")]
    if len(usr1_stats) > 1:
        res.fail("%d stats lines for one SIGUSR1" % len(usr1_stats),
                 key="usr1-once")
    final = [LOG_RE.match(ln) for ln in log[term_mark:]]
    final = [m.group(3) for m in final if m and int(m.group(2)) == epid
             and m.group(3).startswith("stats ")]
    parsed = [LOG_RE.match(ln) for ln in log]
    for ln, m in zip(log, parsed):
        if not m:
            res.fail("stderr line that is not a log line: %r" % ln[:200])
    parsed = [m for m in parsed if m]
    mine = [m for m in parsed if int(m.group(2)) == epid]
    inj = injected(logpath, epid)
    res.note("%d calls injected (%d in the parent)" %
             (len(inj), sum(1 for p, _ in inj if p == epid)))
    res.note("clients: " + "; ".join(c.summary() for c in conns))

    # The fault fired (otherwise the case proves nothing).
    if not inj and not w.get("fired"):
        res.fail("the fault never fired")

    # 1. no wrong byte, ever.
    for c in conns:
        if c.outcome == "wrong":
            res.fail("client %s received a wrong byte: %s" % (c.label,
                                                             c.detail))
        elif c.outcome in ("error",):
            res.fail("client %s: %s" % (c.label, c.detail))
        elif c.outcome == "connect-error" and alive_before_term:
            res.fail("client %s could not connect: %s" % (c.label,
                                                          c.detail))

    # 2. the parent survives.
    if not alive_before_term:
        res.fail("echod died during the load (status %s)" % rc)

    # 3. connections: closed or served, not stuck.
    for c in conns:
        if c.outcome == "timeout" and not w.get("wait"):
            res.fail("client %s neither served nor closed: %s" %
                     (c.label, c.detail))
        if c.outcome == "noeof" and not w.get("eof"):
            res.fail("client %s got its echo but no EOF: %s" %
                     (c.label, c.detail))
    if case.expect == "refuse":
        for c in conns:
            if c.served():
                res.fail("client %s was served although its child could "
                         "not confine itself" % c.label)
            if c.outcome not in ("closed", "reset"):
                res.fail("client %s: %s, expected a close" %
                         (c.label, c.outcome))
        for c in conns:
            if c.cport and not any(
                    re.search(r"child \d+ \(\S*:%d\) exited with status 1"
                              % c.cport, m.group(3)) for m in mine):
                res.fail("the parent did not log the exit of the child of "
                         "client %s (port %d)" % (c.label, c.cport))
        if not any("cannot enter the sandbox" in m.group(3)
                   for m in parsed):
            res.fail("no child said it cannot enter the sandbox")
    if case.expect in ("serve", "either") and not w.get("probe"):
        if probe.outcome != "full":
            res.fail("not served after the fault: probe %s" %
                     probe.summary())
    if case.expect == "child" and probe.outcome not in ("full", "closed",
                                                         "reset"):
        res.fail("the parent no longer serves: probe %s" % probe.summary())
    if case.lossless:
        lost = [c.summary() for c in conns if c.outcome != "full"]
        if lost:
            res.fail("connections lost to a transient parent fault: %s" %
                     "; ".join(lost))

    # 4. zombies, after the load.
    if zw.max_age_after > ZOMBIE_MAX_S and not w.get("zombie"):
        res.fail("a zombie child remained %.1f s after the load" %
                 zw.max_age_after)

    # 5. SIGTERM: exit 0, counters.
    if alive_before_term and rc != 0:
        res.fail("exit status %s after SIGTERM, expected 0" % rc)
    stats = final
    if not stats:
        if not w.get("stats"):
            res.fail("no stats line from the parent after SIGTERM")
    else:
        st = h.parse_kv(stats[-1][6:])
        res.note("final " + stats[-1])
        made = sum(1 for c in conns if c.connected)
        served = sum(1 for c in conns if c.served())
        got = sum(len(c.got) for c in conns)

        def num(k):
            return int(st.get(k, "-1"))
        if num("active") != 0 and not w.get("active"):
            res.fail("final stats: active=%s, expected 0" % st.get("active"))
        if num("accepted") < served:
            res.fail("final stats: accepted=%d < %d connections served" %
                     (num("accepted"), served))
        if num("accepted") > made:
            res.fail("final stats: accepted=%d > %d connections made" %
                     (num("accepted"), made))
        if num("bad_reports") != 0:
            res.fail("final stats: bad_reports=%s: a child's report was "
                     "refused" % st.get("bad_reports"))
        if num("bytes_out") < got and not w.get("bytes"):
            res.fail("final stats: bytes_out=%d < %d bytes the clients "
                     "received" % (num("bytes_out"), got))
        forks = sum(1 for p, ln in inj if p == epid and
                    ln.startswith("clone("))
        if forks and num("fork_failures") != forks:
            res.fail("final stats: fork_failures=%d, %d fork() calls "
                     "failed" % (num("fork_failures"), forks))

    # 6. rate-limited warnings; no spin.
    per = {}
    for m in mine:
        if FLUSH_RE.match(m.group(3)):
            continue  # the count of a burst, logged with each stats line
        for kind, rx in KINDS.items():
            if rx.search(m.group(3)):
                key = (kind, m.group(1))
                per[key] = per.get(key, 0) + 1
    worst = max(per.items(), key=lambda kv: kv[1], default=None)
    if worst and worst[1] > RATE_MAX:
        res.fail("%d '%s' warnings in the second %s (at most %d)" %
                 (worst[1], worst[0][0], worst[0][1], RATE_MAX))
    kid_ppoll = {}
    for m in parsed:
        if int(m.group(2)) != epid and KINDS["ppoll"].search(m.group(3)):
            kid_ppoll[m.group(2)] = kid_ppoll.get(m.group(2), 0) + 1
    if kid_ppoll and max(kid_ppoll.values()) > RATE_MAX:
        res.fail("a child logged %d ppoll warnings" %
                 max(kid_ppoll.values()))
    if not w.get("spin") and wall > 0:
        if cpu / wall > SPIN_CPU:
            res.fail("the parent spins: %.2f s CPU in %.2f s" % (cpu, wall))
        if csw / wall > SPIN_CSW:
            res.fail("the parent spins: %d context switches in %.2f s" %
                     (csw, wall))

    # 7. nothing killed by a signal.
    for m in mine:
        t = m.group(3)
        if "SIGSYS" in t or "sandbox violation" in t:
            res.fail("sandbox kill: %s" % t)
        elif "killed by signal" in t and not w.get("killed"):
            res.fail("%s" % t)


def worker(name, echod, keep):
    case = next((c for c in CASES if c.name == name), None)
    if case is None:
        print("RESULT " + json.dumps({"name": name, "ok": False,
                                      "failures": ["unknown case"]}))
        return
    h._become_subreaper()
    tmp = tempfile.mkdtemp(prefix="echod-fault-")
    res = Result(name)

    def on_alarm(signum, frame):
        raise TimeoutError("case exceeded %d s" % CASE_BUDGET_S)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(CASE_BUDGET_S)
    try:
        run_case(case, echod, tmp, res)
    except BaseException:  # noqa: BLE001 - reported as a failure
        res.fail("runner error: " + traceback.format_exc().strip()
                 .splitlines()[-1])
        res.note(traceback.format_exc())
    finally:
        signal.alarm(0)
    # Stray processes (children of echod re-parented to us).
    time.sleep(0.05)
    strays = []
    for p, st in h.children(os.getpid()):
        if st != "Z":
            strays.append(p)
            kill_pid(p)
    h._reap_orphans()
    if strays:
        res.fail("processes left behind: %s" % strays)
    if keep:
        res.note("strace log and files kept in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    strace_log = []
    if res.failures:
        strace_log = [ln for _, ln in injected(os.path.join(tmp,
                                                            "strace.log"))]
    skip = None
    if any(sc.startswith("landlock_") for sc, _, _ in case.inject) and \
            case.target != "start" and \
            not any("sandbox: seccomp+landlock" in ln for ln in res.log):
        skip = "skipped: this kernel has no Landlock (no landlock_* call)"
    print("RESULT " + json.dumps({
        "name": name, "ok": not res.failures or bool(skip), "skip": skip,
        "failures": res.failures,
        "notes": res.notes, "log": res.log[-80:],
        "injected": strace_log[:20]}))


# --- the census: which calls echod really makes -----------------------------

def census(echod):
    """Run echod under strace -f over a real session in each mode (a few
    connections of every kind, a SIGUSR1, a SIGTERM drain with a live
    connection) and print, per system call, how often the parent makes it
    at start-up (before its filter is loaded), the parent while it serves,
    and the children."""
    counts = {}
    errors = {}
    for mode in ("raw", "line", "frame"):
        tmp = tempfile.mkdtemp(prefix="echod-census-")
        log = os.path.join(tmp, "trace")
        argv = ["strace", "-f", "-qq", "-o", log, "-e", "signal=none", "--",
                echod, "-p", "0", "-b", "127.0.0.1", "-m", mode,
                "-t", str(IDLE_S), "--shutdown-timeout", str(SHUTDOWN_S)]
        top = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        lines = Lines(top.stderr)
        try:
            epid = find_echod(top, top, echod, time.monotonic() + 10)
            deadline = time.monotonic() + 10
            while not (epid and in_loop(epid) and listen_port(epid)):
                if time.monotonic() > deadline or top.poll() is not None:
                    raise RuntimeError("echod did not start: %s" %
                                       lines.snapshot()[-3:])
                time.sleep(0.01)
            port = listen_port(epid)
            ctx = Ctx(mode, STALL_S)
            load, probe, held = scenario(mode)
            ht = threading.Thread(target=held.run, args=(port, ctx),
                                  daemon=True)
            ht.start()
            for group in load:
                for c in group:
                    c.run(port, ctx)
            os.kill(epid, signal.SIGUSR1)
            probe.run(port, ctx)
            time.sleep(0.3)
            ctx.stop.set()
            os.kill(epid, signal.SIGTERM)
            top.wait(EXIT_BOUND_S)
            ht.join(DRAIN_STALL_S)
            bad = [c.summary() for g in load for c in g
                   if c.outcome != "full"]
            if bad or held.outcome != "full":
                raise RuntimeError("the session went wrong: %s %s" %
                                   (bad, held.summary()))
            serving = False  # the parent has loaded its filter
            with open(log, errors="replace") as f:
                for ln in f:
                    # "<... call resumed>" continues a call counted
                    m = re.match(r"(\d+)\s+(\w+)\(", ln)
                    if not m:
                        continue
                    pid, call = int(m.group(1)), m.group(2)
                    if pid == epid:
                        who = "serve" if serving else "start"
                        serving = serving or (
                            call == "seccomp" and
                            "SECCOMP_SET_MODE_FILTER, 0," in ln)
                    else:
                        who = "child"
                    counts.setdefault(call, {}).setdefault(who, 0)
                    counts[call][who] += 1
                    e = re.search(r"= -1 (E[A-Z0-9]+)", ln)
                    if e:
                        errors.setdefault(call, set()).add(e.group(1))
        finally:
            if top.poll() is None:
                kill_pid(top.pid)
                top.wait(5)
            shutil.rmtree(tmp, ignore_errors=True)
    print("%-26s %8s %8s %8s  %s" % ("system call", "start-up", "serving",
                                     "children", "errors seen"))
    for call in sorted(counts, key=lambda c: (-sum(counts[c].values()), c)):
        n = counts[call]
        print("%-26s %8s %8s %8s  %s" % (
            call, n.get("start", ""), n.get("serve", ""), n.get("child", ""),
            " ".join(sorted(errors.get(call, ())))))
    return 0


# --- the runner ------------------------------------------------------------

def select_cases(patterns):
    if not patterns:
        return list(CASES)
    out = []
    for c in CASES:
        for p in patterns:
            if fnmatch.fnmatch(c.name, p) or (not any(ch in p for ch in "*?[")
                                              and p in c.name):
                out.append(c)
                break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--echod", default=os.environ.get("ECHOD_BIN"))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-k", "--pattern", action="append", default=[],
                    help="run the cases whose name matches (glob, or a "
                         "substring); repeatable")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print every case's notes and log, not only "
                         "failures'")
    ap.add_argument("--keep", action="store_true",
                    help="keep each case's strace log")
    ap.add_argument("--census", action="store_true",
                    help="list the system calls echod makes over a real "
                         "session (strace -f), per process, and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cases = select_cases(a.pattern)
    if a.list:
        for c in cases:
            print("%-55s %-8s %s" % (c.name, c.expect,
                                     " ".join("%s:%s:%s" % i
                                              for i in c.inject)))
        print("%d cases" % len(cases))
        return 0
    if not a.echod or not os.access(a.echod, os.X_OK):
        sys.stderr.write("faults.py: pass --echod PATH\n")
        return 2
    echod = os.path.abspath(a.echod)
    if a.worker:
        worker(a.worker, echod, a.keep)
        return 0
    if a.census:
        return census(echod)
    # 77: skipped (ctest SKIP_RETURN_CODE), not failed
    if not shutil.which("strace"):
        print("faults.py: strace is not installed: skipped")
        return 77
    if os.geteuid() != 0:
        print("faults.py: needs root (ptrace attach; echod confines its "
              "children by changing uid): skipped")
        return 77
    if not cases:
        sys.stderr.write("faults.py: no case matches\n")
        return 2
    t_all = time.monotonic()
    pending = list(cases)
    running = []
    failed = []
    skipped = []
    nrun = 0
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    while pending or running:
        while pending and len(running) < max(1, a.jobs):
            c = pending.pop(0)
            argv = [sys.executable, os.path.abspath(__file__), "--echod",
                    echod, "--worker", c.name] + (["--keep"] if a.keep
                                                  else [])
            p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env)
            running.append((c, p, time.monotonic()))
        time.sleep(0.05)
        for item in list(running):
            c, p, t0 = item
            if p.poll() is None:
                if time.monotonic() - t0 > CASE_BUDGET_S + 30:
                    kill_pid(p.pid)
                continue
            running.remove(item)
            out = p.stdout.read().decode("utf-8", "replace")
            secs = time.monotonic() - t0
            r = None
            for ln in out.splitlines():
                if ln.startswith("RESULT "):
                    r = json.loads(ln[7:])
            if r is None:
                r = {"ok": False, "failures": ["worker died (status %s): %s"
                                               % (p.returncode, out[-500:])],
                     "notes": [], "log": []}
            nrun += 1
            ok = r["ok"]
            word = "ok" if ok else "FAIL"
            if r.get("skip"):
                word = "skip"
                skipped.append(c.name)
            elif c.name in XFAIL:
                word = "XPASS" if ok else "XFAIL"
            print("%-58s %-5s %5.1fs" % (c.name, word, secs))
            if word == "XFAIL":
                print("    expected failure: " + XFAIL[c.name])
            if r.get("skip"):
                print("    " + r["skip"])
            elif not ok and word != "XFAIL":
                failed.append(c.name)
            if not ok or a.verbose:
                for f in r.get("failures", []):
                    print("    FAIL: " + f)
                for n in r.get("notes", []):
                    print("    note: " + n)
                for ln in r.get("injected", []):
                    print("    strace: " + ln)
                if not ok or a.verbose:
                    for ln in r.get("log", [])[-40:]:
                        print("    log: " + ln)
            sys.stdout.flush()
    secs = time.monotonic() - t_all
    if failed:
        print("failed: " + " ".join(failed))
    if skipped:
        print("skipped: " + " ".join(skipped))
    print("%.0f s" % secs)
    print("%d cases run, %d failed" % (nrun, len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
