"""Shared harness of echod's integration tests (Python 3 stdlib only).

Every test script ends with ``harness.main(globals())`` and is run as

    python3 test_x.py --echod PATH [--budget SECONDS] CASE

where CASE names a function ``case_CASE(h)`` of the script.  The harness
starts real echod processes on port 0, reads their stderr in a background
thread, and tears everything down in ``finally`` blocks.  Every wait is
bounded; the whole case is also bounded by an alarm (``--budget``).

ECHOD_VALGRIND=1 wraps every echod in valgrind memcheck (children followed
across fork), multiplies every timeout by 10 and fails the case when any
valgrind log reports an error.
"""

import argparse
import ctypes
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

VALGRIND = os.environ.get("ECHOD_VALGRIND", "") not in ("", "0")
SCALE = 10.0 if VALGRIND else 1.0

ECHOD = None
TMPDIR = None
_servers = []
_procs = []


class TestFailure(AssertionError):
    pass


def T(seconds):
    """A timeout scaled for valgrind."""
    return seconds * SCALE


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what):
    if actual != expected:
        a = repr(actual)
        e = repr(expected)
        if len(a) > 300:
            a = a[:300] + "...(%d)" % len(actual)
        if len(e) > 300:
            e = e[:300] + "...(%d)" % len(expected)
        raise TestFailure("%s: expected %s, got %s" % (what, e, a))


def log(msg):
    sys.stdout.write("[%7.3f] %s\n" % (time.monotonic() - _t0, msg))
    sys.stdout.flush()


_t0 = time.monotonic()


# --- processes -------------------------------------------------------------

def _become_subreaper():
    # Orphans of echod (children that outlive it) are re-parented to us, so
    # a leak is visible and can be cleaned up instead of escaping the test.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def proc_stat(pid):
    """(state, ppid, utime+stime in ticks) of pid, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[11]) + int(rest[12])


def children(pid):
    """[(child_pid, state)] of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st and st[1] == pid:
            out.append((int(d), st[0]))
    return out


def proc_status(pid):
    """/proc/pid/status as a dict, or None when pid is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    d = {}
    for ln in lines:
        k, _, v = ln.partition(":")
        d[k] = v.strip()
    return d


def cpu_seconds(pid):
    st = proc_stat(pid)
    return st[2] / os.sysconf("SC_CLK_TCK") if st else 0.0


def _reap_orphans():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _own_pids():
    mine = {p.pid for p in _procs}
    mine |= {s.proc.pid for s in _servers}
    return mine


def stray_children():
    """Children of this test process that it did not start itself: echod
    children re-parented here after echod exited."""
    _reap_orphans()
    mine = _own_pids()
    return [(p, s) for p, s in children(os.getpid())
            if p not in mine and s != "Z"]


def popen(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def terminate(p, timeout=10):
    """Stop a process started with popen(): SIGTERM, then SIGKILL after
    T(timeout) seconds."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(T(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --- echod -----------------------------------------------------------------

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)\s*$")


def echod_argv(args, use_vg=None):
    """The command line that runs echod with args (under valgrind when the
    suite runs under valgrind)."""
    argv = [ECHOD] + list(args)
    if VALGRIND if use_vg is None else use_vg:
        argv = ["valgrind", "--tool=memcheck", "--trace-children=yes",
                "--child-silent-after-fork=no", "--track-fds=no",
                "--log-file=%s/vg.%%p.log" % TMPDIR,
                "--error-exitcode=99", "--leak-check=no"] + argv
    return argv


def run_echod(args, timeout=10):
    """Run echod to completion (options that make it exit at once)."""
    return subprocess.run(echod_argv(args), capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=T(timeout))


class Echod:
    """A running echod: its stderr lines, its port, helpers to wait on its
    log and to stop it."""

    def __init__(self, args, preexec_fn=None, wait_listen=True,
                 valgrind=None, env=None, stdin=subprocess.DEVNULL,
                 pass_fds=()):
        self.args = list(args)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.port = None
        self.addr = None
        self.stopped = False
        use_vg = VALGRIND if valgrind is None else valgrind
        argv = echod_argv(self.args, use_vg)
        log("start: %s" % " ".join(argv))
        self.proc = subprocess.Popen(
            argv, stdin=stdin, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=preexec_fn, env=env,
            pass_fds=pass_fds)
        self.pid = self.proc.pid
        _servers.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if wait_listen:
            m = self.wait_log(LISTEN_RE, T(10), what="listening line")
            self.addr = m.group(1)
            self.port = int(m.group(2))
            log("echod pid %d listening on %s:%d" %
                (self.pid, self.addr, self.port))

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def mark(self):
        """Index of the next log line: pass as start= to wait only for lines
        logged after this point."""
        with self.cond:
            return len(self.lines)

    def find(self, regex, start=0):
        rx = re.compile(regex) if isinstance(regex, str) else regex
        with self.cond:
            return [m for m in (rx.search(ln) for ln in self.lines[start:])
                    if m]

    def wait_log(self, regex, timeout, start=0, what=None):
        """Wait (bounded) for a log line matching regex; return the match."""
        rx = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self.eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        raise TestFailure("no log line matching %r (%s) within %.1fs%s" %
                          (rx.pattern, what or "", timeout,
                           "; echod's stderr closed" if self.eof else ""))

    def wait_close(self, cport, timeout=None, start=0):
        """Wait for the close line of the client whose port is cport and
        return its reason."""
        m = self.wait_log(r"close \S*:%d\b.*reason=(.+?)\s*$" % cport,
                          timeout or T(5), start,
                          what="close of client port %d" % cport)
        return m.group(1)

    def close_line(self, cport, timeout=None, start=0):
        m = self.wait_log(r"(close \S*:%d\b.*)$" % cport,
                          timeout or T(5), start,
                          what="close of client port %d" % cport)
        return m.group(1)

    def stats(self, timeout=None):
        """Send SIGUSR1 and return the stats line's key=value pairs."""
        mk = self.mark()
        os.kill(self.pid, signal.SIGUSR1)
        m = self.wait_log(r"stats (.*)$", timeout or T(5), mk,
                          what="stats line after SIGUSR1")
        return parse_kv(m.group(1))

    def children(self):
        return children(self.pid)

    def live_children(self):
        return [p for p, s in children(self.pid) if s != "Z"]

    def wait_children(self, n, timeout, exact=False):
        """Wait until echod has at least (or exactly) n live children."""
        deadline = time.monotonic() + timeout
        while True:
            kids = self.live_children()
            if (len(kids) == n) if exact else (len(kids) >= n):
                return kids
            if time.monotonic() > deadline:
                raise TestFailure("echod has %d live children, wanted %s%d"
                                  % (len(kids), "" if exact else ">=", n))
            time.sleep(0.02)

    def wait_no_children(self, timeout=None):
        """Wait until every child of echod has exited and been reaped."""
        deadline = time.monotonic() + (timeout or T(5))
        while True:
            kids = self.children()
            if not kids:
                return
            if time.monotonic() > deadline:
                raise TestFailure("children of echod still there: %s" % kids)
            time.sleep(0.02)

    def alive(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("echod pid %d did not exit within %.1fs" %
                              (self.pid, timeout))

    def stop(self, timeout=None, expect_rc=0):
        """SIGTERM, bounded wait, check the exit status and that no child
        process is left behind."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        kids = [p for p, _ in self.children()]
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        rc = self.wait_exit(timeout or T(15))
        self.reader.join(T(5))
        check(expect_rc is None or rc == expect_rc,
              "echod exited with status %s, expected %s" % (rc, expect_rc))
        deadline = time.monotonic() + T(2)
        while True:
            left = [p for p in kids if proc_stat(p) and proc_stat(p)[0] != "Z"]
            left += [p for p, _ in stray_children() if p not in left]
            if not left:
                break
            if time.monotonic() > deadline:
                raise TestFailure("echod exited but left child processes %s"
                                  % left)
            time.sleep(0.05)
        return rc

    def kill(self):
        if self.alive():
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(T(5))
            except subprocess.TimeoutExpired:
                pass


def parse_kv(text):
    d = {}
    for tok in text.split():
        k, sep, v = tok.partition("=")
        if sep:
            d[k] = v
    return d


def stat_int(stats, *names):
    """The first of names present in a stats dict, as an int."""
    for n in names:
        if n in stats:
            return int(re.match(r"\d+", stats[n]).group(0))
    raise TestFailure("stats line has none of %s: %s" % (names, stats))


# --- clients ---------------------------------------------------------------

def connect(port, host="127.0.0.1", timeout=None, bind=None):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout or T(10))
    if bind:
        s.bind((bind, 0))
    s.connect((host, port))
    return s


def cport(s):
    return s.getsockname()[1]


def recv_exact(s, n, timeout=None):
    s.settimeout(timeout or T(10))
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(min(1 << 20, n - len(buf)))
        except socket.timeout:
            raise TestFailure("timed out after %d of %d bytes" %
                              (len(buf), n))
        if not chunk:
            raise TestFailure("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_all(s, timeout=None):
    """Read until EOF (bounded); raises on reset or timeout."""
    s.settimeout(timeout or T(10))
    buf = bytearray()
    while True:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            raise TestFailure("no EOF within timeout; got %d bytes: %r" %
                              (len(buf), bytes(buf[:80])))
        if not chunk:
            return bytes(buf)
        buf += chunk


def expect_eof(s, timeout=None):
    """The next read is a clean EOF (not data, not a reset)."""
    data = recv_all(s, timeout)
    eq(data, b"", "bytes before EOF")


def expect_silence(s, seconds):
    """Nothing arrives (no data, no EOF) for the given time."""
    s.settimeout(seconds)
    try:
        data = s.recv(65536)
    except socket.timeout:
        return
    raise TestFailure("expected silence, got %r" % data[:80])


def roundtrip(port, data, host="127.0.0.1", bind=None):
    s = connect(port, host, bind=bind)
    try:
        s.sendall(data)
        got = recv_exact(s, len(data))
        eq(got, data, "echo")
        return cport(s)
    finally:
        s.close()


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pattern(n, seed=0):
    """n deterministic pseudo-random bytes."""
    import hashlib
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


def version_says_sandbox_off():
    r = run_echod(["--version"])
    text = (r.stdout + r.stderr).decode("utf-8", "replace")
    return "sandbox: off" in text, text


# --- driver ----------------------------------------------------------------

class _Budget(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Budget("case exceeded its time budget")


def _teardown():
    errors = []
    for s in _servers:
        if s.alive():
            errors.append("echod pid %d still running at teardown" % s.pid)
            s.kill()
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    deadline = time.monotonic() + 3
    while stray_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, _ in stray_children():
        errors.append("stray process %d left behind" % pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap_orphans()
    if VALGRIND:
        for f in sorted(glob.glob(os.path.join(TMPDIR, "vg.*.log"))):
            with open(f, errors="replace") as fh:
                text = fh.read()
            if re.search(r"ERROR SUMMARY: [1-9]", text):
                errors.append("valgrind errors in %s:\n%s" % (f, text))
    return errors


def main(ns):
    global ECHOD, TMPDIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--echod", default=os.environ.get("ECHOD_BIN"))
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("case")
    a = ap.parse_args()
    check(a.echod and os.access(a.echod, os.X_OK),
          "echod binary not found: pass --echod PATH")
    ECHOD = os.path.abspath(a.echod)
    fn = ns.get("case_" + a.case)
    if fn is None:
        sys.stderr.write("unknown case %s\n" % a.case)
        sys.exit(2)
    if VALGRIND and not shutil.which("valgrind"):
        sys.stderr.write("ECHOD_VALGRIND=1 but valgrind is not installed\n")
        sys.exit(1)
    if VALGRIND:
        # memcheck cannot replace malloc in a static program: it reports
        # glibc's own start-up as errors and misses heap overflows.
        with open(ECHOD, "rb") as f:
            head = f.read(4096)
        if b"/ld-linux" not in head:
            sys.stderr.write("ECHOD_VALGRIND=1 needs a dynamically linked "
                             "echod: configure with -DECHOD_STATIC=OFF\n")
            sys.exit(1)
    _become_subreaper()
    TMPDIR = tempfile.mkdtemp(prefix="echod-integ-")
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(a.budget * SCALE))
    ok = False
    try:
        fn()
        ok = True
    except BaseException:
        traceback.print_exc(file=sys.stdout)
    finally:
        signal.alarm(0)
        errors = _teardown()
        for s in _servers:
            if not ok:
                print("---- stderr of echod pid %d (%s) ----" %
                      (s.pid, " ".join(s.args)))
                for ln in s.lines[-60:]:
                    print("  " + ln)
        for e in errors:
            print("TEARDOWN: " + e)
        if ok and not errors:
            shutil.rmtree(TMPDIR, ignore_errors=True)
        else:
            print("kept %s" % TMPDIR)
    print("%s: %s" % (a.case, "PASS" if ok and not errors else "FAIL"))
    sys.exit(0 if ok and not errors else 1)
