"""Hardening findings F1-F7 (SPEC section 3): each case proves one fix.

F1  lingering close at shutdown and after a protocol error lasts while a
    slow client still takes echoes (no RST that destroys queued echoes);
    bytes dropped while lingering are `discarded=`, not `in=`.
F2  logging never blocks serving or shutdown (stalled stderr pipe).
F3  no signal but SIGKILL ends echod without its drain; children die
    with the parent.
F4  raw mode echoes TCP urgent bytes inline.
F5  a connection accepted when fork() fails is held, never reset.
F6  a child that cannot get memory closes cleanly, counted.
F7  rate-limited log lines never lose their suppressed count.

Every case talks to 127.0.0.1 only, bounds every wait and stops only the
processes it started (by pid).
"""

import fcntl
import os
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time

import harness as h


# --- helpers -----------------------------------------------------------------

def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def close_kv(e, cp, timeout=None, start=0):
    """The close line of client port cp and its key=value pairs."""
    line = e.close_line(cp, timeout or h.T(10), start)
    return line, h.parse_kv(line)


def kv_int(kv, key, line):
    h.check(key in kv and re.match(r"\d+$", kv[key]),
            "close line has no %s=N: %s" % (key, line))
    return int(kv[key])


def tcp_queues(lport, rport):
    """(tx_queue, rx_queue) of the IPv4 socket 127.0.0.1:lport ->
    127.0.0.1:rport, from /proc/net/tcp, or None."""
    want_l = "0100007F:%04X" % lport
    want_r = "0100007F:%04X" % rport
    with open("/proc/net/tcp") as f:
        for ln in f:
            fl = ln.split()
            if len(fl) > 4 and fl[1] == want_l and fl[2] == want_r:
                tx, rx = fl[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


class Flow:
    """One connection driven by two threads.

    The sender writes a repeating deterministic stream (block, over and
    over) as fast as the socket takes it, with a send timeout so that it
    never blocks for good, pausing while the client is owed `owed_max`
    bytes (so that the drain time stays bounded however large the kernel
    lets echod's receive queue grow). When `inject` is set it finishes the current
    `align`-sized unit, sends `inject`, and from then on sends junk.
    `throttle` paces it (at most ~300 KB/s) once the server only discards.

    The reader takes echoes at about `rate` bytes/s (token bucket) and
    checks every byte against the stream: what it receives must be a
    prefix of what was sent. It records a clean EOF, a reset, or any other
    error."""

    def __init__(self, s, block, rate, align=1, owed_max=8000000):
        self.s = s
        self.block = block
        self.bb = block + block
        self.L = len(block)
        self.rate = rate
        self.align = align
        self.owed_max = owed_max
        self.sent = 0
        self.received = 0
        self.inject = None
        self.bad_at = None
        self.junk = 0
        self.junk_max = 64 << 20
        self.throttle = False
        self.eof = False
        self.reset = None
        self.recv_err = None
        self.send_err = None
        self.send_err_at = None
        self.mismatch = None
        self.stop = threading.Event()
        self.done = threading.Event()
        s.settimeout(0.2)
        self.ts = threading.Thread(target=self._sender, daemon=True)
        self.tr = threading.Thread(target=self._reader, daemon=True)

    def start(self):
        self.ts.start()
        self.tr.start()

    def owed(self):
        return self.sent - self.received

    def _send_some(self, data):
        try:
            return self.s.send(data)
        except socket.timeout:
            return 0

    def _sender(self):
        junk = b"J" * 16384
        try:
            while not self.stop.is_set() and not self.done.is_set():
                if self.bad_at is not None:
                    if self.junk >= self.junk_max:
                        return
                    self.junk += self._send_some(junk)
                    time.sleep(0.05)
                    continue
                lim = 65536
                if self.inject is not None:
                    r = self.sent % self.align
                    if r == 0:
                        left = self.inject
                        while left and not self.stop.is_set():
                            left = left[self._send_some(left):]
                        self.bad_at = self.sent
                        continue
                    lim = self.align - r
                elif not self.throttle and self.owed() >= self.owed_max:
                    time.sleep(0.01)
                    continue
                if self.throttle:
                    lim = min(lim, 16384)
                o = self.sent % self.L
                self.sent += self._send_some(self.bb[o:o + lim])
                if self.throttle:
                    time.sleep(0.05)
        except OSError as ex:  # the server is gone: stop sending
            # The socket reports an error once: a reset the sender sees
            # is not seen again by the reader, which then reads EOF.
            self.send_err = ex
            self.send_err_at = self.received

    def _reader(self):
        burst = max(4096, int(self.rate / 10))
        tokens, last = 0.0, time.monotonic()
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                tokens = min(tokens + (now - last) * self.rate, burst)
                last = now
                if tokens < 1024:
                    time.sleep(0.01)
                    continue
                try:
                    d = self.s.recv(min(int(tokens), 65536))
                except socket.timeout:
                    continue
                except ConnectionResetError as ex:
                    self.reset = ex
                    return
                except OSError as ex:
                    self.recv_err = ex
                    return
                if not d:
                    self.eof = True
                    return
                o = self.received % self.L
                if d != self.bb[o:o + len(d)]:
                    i = next(k for k in range(len(d))
                             if d[k] != self.bb[o + k])
                    self.mismatch = self.received + i
                    return
                self.received += len(d)
                tokens -= len(d)
        finally:
            self.done.set()

    def halt(self):
        self.stop.set()
        for th in (self.ts, self.tr):
            if th.ident is not None:
                th.join(h.T(5))

    def outcome(self):
        if self.mismatch is not None:
            what = "echo differs from the stream at byte %d" % self.mismatch
        elif self.reset is not None:
            what = "connection reset after %d bytes" % self.received
        elif self.recv_err is not None:
            what = "recv error %r after %d bytes" % (self.recv_err,
                                                     self.received)
        elif self.eof:
            what = "EOF after %d bytes" % self.received
        else:
            what = "no EOF yet after %d bytes" % self.received
        if self.send_err is not None:
            what += " (the sender got %r when %d bytes had been received)" \
                % (self.send_err, self.send_err_at)
        return what


def wait_backpressure(e, f, cp, owed_min, timeout):
    """Wait until the client owes owed_min bytes and echod is clearly in
    back-pressure: its socket holds >= 512 KiB of unacknowledged echoes
    and >= 256 KiB of unread input."""
    deadline = time.monotonic() + timeout
    t0 = next_log = time.monotonic()
    while True:
        q = tcp_queues(e.port, cp)
        if f.owed() >= owed_min and q and q[0] >= 512 << 10 and \
                q[1] >= 256 << 10:
            h.log("back-pressure after %.1fs" % (time.monotonic() - t0))
            return q
        if time.monotonic() >= next_log:
            h.log("waiting for back-pressure: owed %d, echod's socket "
                  "(tx, rx) %s" % (f.owed(), q))
            next_log += 2
        h.check(not f.done.is_set(),
                "connection ended early: %s" % f.outcome())
        h.check(time.monotonic() < deadline,
                "no back-pressure within %.0fs: owed %d, echod's socket "
                "(tx, rx) %s" % (timeout, f.owed(), q))
        time.sleep(0.1)


def stop_if_alive(e):
    """e.stop() unless echod already died (the failure being reported):
    then its orphans are left to the harness's teardown."""
    if e.alive():
        e.stop()
    else:
        e.stopped = True


def _uid_procs(uid):
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = h.proc_status(int(d))
            if st and int(st.get("Uid", "-1 0").split()[0]) == uid:
                n += int(st.get("Threads", "1"))  # NPROC counts threads
    return n


def nproc_echod(args, allowed_children=2):
    """echod as an unprivileged uid whose RLIMIT_NPROC leaves room for
    allowed_children children (as case fork_failure of test_limits.py),
    run from a copy the uid can reach. Returns (echod, tmpdir)."""
    uid = 63000 + os.getpid() % 1000
    limit = _uid_procs(uid) + 1 + allowed_children

    def pre():
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    tmp = tempfile.mkdtemp(prefix="echod-nproc-")
    os.chmod(tmp, 0o755)
    binary = os.path.join(tmp, "echod")
    shutil.copy2(h.ECHOD, binary)
    os.chmod(binary, 0o755)
    saved, h.ECHOD = h.ECHOD, binary
    try:
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"] + list(args),
                    preexec_fn=pre)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        h.ECHOD = saved
    return e, tmp


def hold_children(e, n):
    """n connections served by children (one echo each), kept open."""
    socks = []
    for _ in range(n):
        s = h.connect(e.port)
        socks.append(s)
        s.sendall(b"x")
        h.eq(h.recv_exact(s, 1), b"x", "echo within the process limit")
    e.wait_children(n, h.T(5), exact=True)
    return socks


def peek(s):
    """What a socket holds right now: None (nothing), b"" (EOF), data, or
    "reset"."""
    s.setblocking(False)
    try:
        return s.recv(16)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return "reset"
    finally:
        s.settimeout(h.T(10))


# --- F1: lingering close -----------------------------------------------------

def case_linger_sigterm_slow_reader():
    """F1: at SIGTERM a client that reads slowly (~200 KB/s) while echod
    owes it megabytes receives every byte echod sent, then a clean EOF
    (never ECONNRESET), the bytes are a prefix of what it sent and their
    count is the close line's out=; echod then exits 0. Before the fix the
    2 s linger ended and close() sent RST: most of the echoes were lost."""
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--shutdown-timeout", "120"])
    s = f = None
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        # At least 1.5 MB owed at 200 KB/s: a drain of 8 s or more, four
        # times the old 2 s linger.
        f = Flow(s, h.pattern((1 << 20) + 4099, 11), rate=200000)
        f.start()
        q = wait_backpressure(e, f, cp, 1500000, h.T(30))
        h.log("owed %d bytes (received %d); echod's socket tx=%d rx=%d: "
              "SIGTERM" % (f.owed(), f.received, q[0], q[1]))
        mk = e.mark()
        t0 = time.monotonic()
        os.kill(e.pid, signal.SIGTERM)
        f.throttle = True
        # Draining a few MB at 200 KB/s takes 10-20 s; echod may take 120.
        h.check(f.done.wait(h.T(110)), "no EOF within %.0fs of SIGTERM: %s"
                % (h.T(110), f.outcome()))
        secs = time.monotonic() - t0
        f.halt()
        h.log("%s, %.1fs after SIGTERM (sent %d)" % (f.outcome(), secs,
                                                     f.sent))
        h.check(f.mismatch is None, f.outcome())
        line, kv = close_kv(e, cp, h.T(10), mk)
        h.log(line)
        h.check(f.reset is None and f.recv_err is None and f.eof,
                "%s; echod says %s" % (f.outcome(), line))
        h.eq(e.wait_close(cp, h.T(1), mk), "shutdown", "close reason")
        h.eq(f.received, kv_int(kv, "out", line),
             "bytes received (%s) vs out= of the close line" % f.outcome())
        s.close()
        rc = e.wait_exit(h.T(15))
        h.eq(rc, 0, "echod's exit status after the drain")
    finally:
        if f is not None:
            f.halt()
        if s is not None:
            s.close()
        e.stop()


def case_linger_frame_too_large_slow_reader():
    """F1: after a frame header over --max-msg, a client reading at ~500
    KB/s that is owed megabytes of valid echoes receives every valid frame
    sent before the bad header (all checked), then a clean EOF; the close
    line says `protocol-error: frame too large`, out= is what the client
    got and discarded=N > 0 counts the bytes echod read and dropped while
    lingering. Before the fix the 2 s linger ended with RST: echoes
    lost."""
    payload = 32768
    nfr = 31
    pat = h.pattern(payload * nfr, 12)
    block = b"".join(frame(pat[i * payload:(i + 1) * payload])
                     for i in range(nfr))
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame",
                 "--max-msg", "65536"])
    s = f = None
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        f = Flow(s, block, rate=500000, align=payload + 4)
        f.start()
        q = wait_backpressure(e, f, cp, 4000000, h.T(30))
        mk = e.mark()
        f.inject = struct.pack(">I", 0x7fffffff)
        deadline = time.monotonic() + h.T(20)
        while f.bad_at is None:
            h.check(time.monotonic() < deadline and not f.done.is_set(),
                    "bad header not sent: %s" % f.outcome())
            time.sleep(0.01)
        h.log("owed %d (echod's socket tx=%d rx=%d); bad header sent at "
              "stream offset %d" % (f.owed(), q[0], q[1], f.bad_at))
        t0 = time.monotonic()
        h.check(f.done.wait(h.T(60)), "no EOF within %.0fs: %s"
                % (h.T(60), f.outcome()))
        f.halt()
        h.log("%s, %.1fs after the bad header; %d junk bytes sent after it"
              % (f.outcome(), time.monotonic() - t0, f.junk))
        h.check(f.mismatch is None, f.outcome())
        line, kv = close_kv(e, cp, h.T(10), mk)
        h.log(line)
        h.check(f.reset is None and f.recv_err is None and f.eof,
                "%s of %d owed; echod says %s" % (f.outcome(), f.bad_at,
                                                  line))
        h.eq(f.received, f.bad_at, "bytes echoed (%s): every valid frame "
             "before the bad header" % f.outcome())
        h.eq(e.wait_close(cp, h.T(1), mk), "protocol-error: frame too large",
             "close reason")
        h.eq(kv_int(kv, "out", line), f.received, "out= of the close line")
        h.check(kv_int(kv, "discarded", line) > 0,
                "discarded= should count the bytes dropped while lingering:"
                " %s" % line)
    finally:
        if f is not None:
            f.halt()
        if s is not None:
            s.close()
        e.stop()


def case_discarded_not_in():
    """F1: bytes echod reads and drops after a protocol error are counted
    as discarded=, not in=. One burst: a valid frame (9 bytes), a header
    of 1000 bytes over --max-msg 16 and 5,000 more bytes, then SHUT_WR;
    the client reads the valid echo, then EOF. in= is what the engine
    took before the error: the 9 bytes of the valid frame, or 13 if the
    bad header reached echod split over two reads (then the engine had
    consumed it before it could judge it); in + discarded is everything
    sent. Before the fix there was no discarded= and in= counted every
    byte read."""
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame",
                 "--max-msg", "16"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        good = frame(b"hello")
        data = good + struct.pack(">I", 1000) + h.pattern(5000, 13)
        try:
            # All of it is in echod's receive queue before echod has
            # delivered its echo: its lingering close ends once all is
            # delivered, and bytes arriving after that would be reset.
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            try:
                got = h.recv_all(s, h.T(10))
            except ConnectionResetError:
                raise h.TestFailure("reset instead of EOF") from None
            h.eq(got, good, "the valid frame's echo, then EOF")
        finally:
            s.close()
        line, kv = close_kv(e, cp)
        h.log(line)
        h.eq(e.wait_close(cp), "protocol-error: frame too large",
             "close reason")
        bin_ = kv_int(kv, "in", line)
        disc = kv_int(kv, "discarded", line)
        h.check(bin_ in (9, 13), "in=%d: expected 9 (the valid frame) or "
                "13 (plus the bad header): %s" % (bin_, line))
        h.log("in=%d: the bad header was counted as %s" %
              (bin_, "input" if bin_ == 13 else "discarded"))
        h.eq(bin_ + disc, len(data), "in + discarded (bytes sent)")
        h.eq(kv_int(kv, "out", line), len(good), "out=")
    finally:
        e.stop()


# --- F2: logging never blocks ------------------------------------------------

class PipeReader:
    """Reads echod's stderr pipe in a thread until told to stop."""

    def __init__(self, fd):
        self.fd = fd
        self.lines = []
        self.partial = b""
        self.halt = threading.Event()
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.halt.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            d = os.read(self.fd, 65536)
            if not d:
                return
            data = self.partial + d
            *full, self.partial = data.split(b"\n")
            with self.cond:
                self.lines += [x.decode("utf-8", "replace") for x in full]
                self.cond.notify_all()

    def stop(self):
        self.halt.set()
        self.t.join(h.T(5))
        h.check(not self.t.is_alive(), "pipe reader did not stop")

    def wait(self, regex, timeout, what):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ln in self.lines:
                    m = rx.search(ln)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise h.TestFailure("no log line matching %r (%s) "
                                        "within %.1fs" % (regex, what,
                                                          timeout))
                self.cond.wait(left)


def round_trips(port, n, workers=4, tag=b""):
    """n connections, `workers` at a time, each one echo of a short
    message within a bounded time; the first failure stops them all."""
    errors = []
    halt = threading.Event()
    count = [0]
    lock = threading.Lock()

    def worker(k):
        for i in range(n // workers):
            if halt.is_set():
                return
            msg = b"log %s%d.%d\n" % (tag, k, i)
            try:
                s = h.connect(port, timeout=h.T(5))
                try:
                    s.sendall(msg)
                    h.eq(h.recv_exact(s, len(msg), h.T(5)), msg, "echo")
                finally:
                    s.close()
            except Exception as ex:
                with lock:
                    errors.append("connection %d.%d (after %d served): %s"
                                  % (k, i, count[0], ex))
                halt.set()
                return
            with lock:
                count[0] += 1

    ts = [threading.Thread(target=worker, args=(k,), daemon=True)
          for k in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(h.T(90))
    h.check(not any(t.is_alive() for t in ts), "clients did not finish")
    h.check(not errors, "%s" % errors[:2])
    return count[0]


F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032


def pipe_fill(fd):
    """(bytes queued, capacity) of a pipe."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", buf)[0], fcntl.fcntl(fd, F_GETPIPE_SZ)


def stall_pipe(port, fd, n, tag):
    """At least n round trips, more (bounded) until the unread pipe is
    full; returns how many were served."""
    served = 0
    for k in range(4):
        served += round_trips(port, n if k == 0 else 500,
                              tag=b"%s%d." % (tag, k))
        queued, cap = pipe_fill(fd)
        if queued >= cap * 0.9:
            break
    h.log("%d connections served with stderr unread; the pipe holds %d "
          "of %d bytes" % (served, queued, cap))
    h.check(queued >= cap * 0.9, "test set-up: the pipe is not full "
            "(%d of %d bytes)" % (queued, cap))
    return served


def case_log_stalled_pipe():
    """F2: with stderr a full pipe nobody reads, 1,000 connections are
    still served (before the fix children blocked writing their accept
    line and clients hung); the lines that could not be written are
    counted (stats log_dropped=N > 0) and announced once writing works
    again (`log: N lines dropped`); with the pipe full again and 3 open
    connections echod still exits 0 within 5 s of SIGTERM
    (--shutdown-timeout 2; before the fix it did not exit). If echod
    enlarged its pipe, the test sets it back to 64 KiB (the size a user
    over fs.pipe-user-pages-soft gets at most) so that the connections
    surely fill it."""
    port = h.free_port()
    argv = h.echod_argv(["-p", str(port), "-b", "127.0.0.1",
                         "--shutdown-timeout", "2"])
    h.log("start: %s (stderr: a pipe nobody reads)" % " ".join(argv))
    p = h.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
    fd = p.stderr.fileno()
    socks = []
    rd = None
    try:
        deadline = time.monotonic() + h.T(10)
        while True:
            h.check(p.poll() is None, "echod exited with %s" % p.returncode)
            try:
                h.connect(port, timeout=h.T(1)).close()
                break
            except OSError:
                h.check(time.monotonic() < deadline,
                        "echod not listening on 127.0.0.1:%d" % port)
                time.sleep(0.05)
        cap = fcntl.fcntl(fd, F_GETPIPE_SZ)
        if cap > 65536:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 65536)
            h.log("echod's stderr pipe: %d bytes, set to %d" %
                  (cap, fcntl.fcntl(fd, F_GETPIPE_SZ)))
        t0 = time.monotonic()
        stall_pipe(port, fd, 1000, b"a")
        h.log("%.1fs" % (time.monotonic() - t0))
        h.check(p.poll() is None, "echod died: %s" % p.returncode)

        rd = PipeReader(fd)
        time.sleep(h.T(0.3))  # the stalled pipe drains
        os.kill(p.pid, signal.SIGUSR1)
        m = rd.wait(r"stats (.*)$", h.T(5), "stats after SIGUSR1")
        st = h.parse_kv(m.group(1))
        h.check(h.stat_int(st, "log_dropped") > 0,
                "log_dropped should count the lines lost: %s" % m.group(0))
        d = rd.wait(r"log: \d+ lines? dropped", h.T(5),
                    "announcement of the dropped lines")
        h.log("%s; %s" % (d.group(0), m.group(0)))
        rd.stop()

        # Stall the pipe again, then SIGTERM with connections open.
        stall_pipe(port, fd, 2000, b"b")
        for _ in range(3):
            s = h.connect(port)
            socks.append(s)
            s.sendall(b"hold\n")
            h.eq(h.recv_exact(s, 5), b"hold\n", "echo on a held connection")
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        try:
            rc = p.wait(h.T(5))
        except subprocess.TimeoutExpired:
            raise h.TestFailure("echod did not exit within %.0fs of SIGTERM "
                                "with its stderr pipe full" % h.T(5)) \
                from None
        h.log("exited with %d %.2fs after SIGTERM" %
              (rc, time.monotonic() - t0))
        h.eq(rc, 0, "exit status")
        deadline = time.monotonic() + h.T(2)
        while h.stray_children():
            h.check(time.monotonic() < deadline, "children left behind: %s"
                    % h.stray_children())
            time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
        if rd is not None:
            rd.halt.set()
        if p.poll() is None:
            p.kill()
            p.wait(h.T(5))


# --- F3: signals -------------------------------------------------------------

def case_signals_survived():
    """F3: signals whose default action would terminate echod (SIGHUP,
    SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ,
    SIGSTKFLT, real-time signals) leave the parent alive: an open
    connection still echoes and new ones are served. SIGHUP logs the
    counters like SIGUSR1. Before the fix the parent died (129, 140,
    142, ...)."""
    sigs = [("SIGHUP", signal.SIGHUP), ("SIGUSR2", signal.SIGUSR2),
            ("SIGALRM", signal.SIGALRM), ("SIGVTALRM", signal.SIGVTALRM),
            ("SIGPROF", signal.SIGPROF), ("SIGIO", signal.SIGIO),
            ("SIGPWR", signal.SIGPWR), ("SIGXCPU", signal.SIGXCPU),
            ("SIGXFSZ", signal.SIGXFSZ),
            ("SIGSTKFLT", getattr(signal, "SIGSTKFLT", 16)),
            ("SIGRTMIN", signal.SIGRTMIN),
            ("SIGRTMIN+5", signal.SIGRTMIN + 5),
            ("SIGRTMAX", signal.SIGRTMAX)]
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    s = h.connect(e.port)
    try:
        s.sendall(b"open\n")
        h.eq(h.recv_exact(s, 5), b"open\n", "echo")
        for name, sig in sigs:
            mk = e.mark()
            os.kill(e.pid, sig)
            time.sleep(h.T(0.1))
            h.check(e.alive(), "echod died of %s (status %s)" %
                    (name, e.proc.returncode))
            if name == "SIGHUP":
                m = e.wait_log(r"stats (.*)$", h.T(5), mk,
                               what="stats line after SIGHUP")
                h.check("accepted=" in m.group(1), "stats line: %s"
                        % m.group(0))
            msg = b"after %s\n" % name.encode()
            s.sendall(msg)
            h.eq(h.recv_exact(s, len(msg)), msg,
                 "echo on the open connection after %s" % name)
            h.roundtrip(e.port, b"new after %s\n" % name.encode())
            h.check(e.alive(), "echod died after %s (status %s)" %
                    (name, e.proc.returncode))
        h.log("survived %s" % ", ".join(n for n, _ in sigs))
    finally:
        s.close()
        stop_if_alive(e)


def case_parent_kill9_children_die():
    """F3: when the parent is killed with SIGKILL its children die with it
    (within 3 s) instead of serving on unsupervised. Before the fix they
    kept serving."""
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    socks = []
    kids = []
    try:
        for i in range(5):
            s = h.connect(e.port)
            socks.append(s)
            s.sendall(b"conn %d\n" % i)
            h.eq(h.recv_exact(s, 7), b"conn %d\n" % i, "echo")
        kids = e.wait_children(5, h.T(5), exact=True)
        h.log("children %s; SIGKILL to the parent %d" % (kids, e.pid))
        e.stopped = True
        os.kill(e.pid, signal.SIGKILL)
        e.proc.wait(h.T(5))
        deadline = time.monotonic() + 3.0
        while True:
            h.stray_children()  # reaps the orphans re-parented to us
            alive = [p for p in kids
                     if h.proc_stat(p) and h.proc_stat(p)[0] != "Z"]
            if not alive:
                break
            if time.monotonic() > deadline:
                # Show that they really still serve.
                socks[0].sendall(b"alive?\n")
                try:
                    got = h.recv_exact(socks[0], 7, h.T(1))
                except (h.TestFailure, OSError) as ex:
                    got = repr(ex)
                raise h.TestFailure("children %s still alive 3 s after the "
                                    "parent was killed (echo on their "
                                    "connection: %r)" % (alive, got))
            time.sleep(0.05)
        h.log("all children gone")
    finally:
        for s in socks:
            s.close()
        if not e.stopped:
            e.stop()
        for p in kids:  # only the children we saw, by pid
            st = h.proc_stat(p)
            if st and st[0] != "Z" and st[1] == os.getpid():
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 3
        while h.stray_children() and time.monotonic() < deadline:
            time.sleep(0.05)


# --- F4: urgent data ---------------------------------------------------------

def case_urgent_inline():
    """F4: raw mode echoes a TCP urgent byte inline, in order: "ab",
    "c" with MSG_OOB, "de" comes back as "abcde". Before the fix the
    urgent byte was dropped ("abde")."""
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        s = h.connect(e.port)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"ab")
            time.sleep(h.T(0.1))
            s.send(b"c", socket.MSG_OOB)
            time.sleep(h.T(0.1))
            s.sendall(b"de")
            got = bytearray()
            s.settimeout(h.T(1))
            while len(got) < 5:
                try:
                    d = s.recv(16)
                except socket.timeout:
                    break
                if not d:
                    break
                got += d
            h.eq(bytes(got), b"abcde", "echo of ab, urgent c, de")
        finally:
            s.close()
    finally:
        e.stop()


# --- F5: fork failure --------------------------------------------------------

def case_fork_fail_held():
    """F5: connections accepted while fork() fails (RLIMIT_NPROC) are held,
    never reset or closed, and every one is echoed once processes are free
    again. Before the fix they were closed at once with a reset."""
    e, tmp = nproc_echod([])
    socks, extra = [], []
    try:
        socks = hold_children(e, 2)
        mk = e.mark()
        for _ in range(10):
            s = h.connect(e.port)
            extra.append(s)
            s.sendall(b"y")
        time.sleep(1.5)
        h.check(e.alive(), "echod died on fork failure")
        h.check(e.find(r"(?i)fork", mk), "fork failure not logged")
        states = [peek(s) for s in extra]
        bad = [(i, st) for i, st in enumerate(states) if st is not None]
        h.check(not bad, "clients over the process limit (index, what they "
                "got) %s: they must wait, not be reset or closed" % bad)
        for s in socks:
            s.close()
        socks = []
        # Two processes at a time: each client is closed once echoed.
        left = {s.fileno(): (i, s) for i, s in enumerate(extra)}
        deadline = time.monotonic() + h.T(10)
        while left:
            wait = deadline - time.monotonic()
            h.check(wait > 0, "clients %s not echoed within %.0fs of the "
                    "processes being freed" %
                    (sorted(i for i, _ in left.values()), h.T(10)))
            r, _, _ = select.select(list(left), [], [], wait)
            for fd in r:
                i, s = left.pop(fd)
                got = peek(s)
                h.eq(got, b"y", "echo to held client %d" % i)
                s.close()
        h.log("all 10 held clients echoed")
        st = e.stats()
        h.check(h.stat_int(st, "fork_failures") >= 1,
                "fork failure counter: %s" % st)
    finally:
        for s in socks + extra:
            s.close()
        e.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def case_fork_fail_never_recovers():
    """F5: with fork() failing for good (both allowed children kept busy)
    and -t 2, the connections echod accepted meanwhile end with a clean
    EOF after the idle timeout: never an echo, never a reset (clients
    still in the backlog may see nothing). Before the fix they were
    reset at once."""
    e, tmp = nproc_echod(["-t", "2"])
    socks, extra = [], []
    try:
        socks = hold_children(e, 2)
        t0 = time.monotonic()
        for _ in range(10):
            s = h.connect(e.port)
            extra.append(s)
            s.sendall(b"y")
        res = {}  # index -> (seconds after connect, what)
        live = {s.fileno(): (i, s) for i, s in enumerate(extra)}
        end = t0 + h.T(7)
        next_tick = time.monotonic()
        while live and time.monotonic() < end:
            if time.monotonic() >= next_tick:
                # Keep the two children busy: the idle timeout must not
                # free their processes.
                for s in socks:
                    s.sendall(b".")
                    h.eq(h.recv_exact(s, 1, h.T(2)), b".", "trickle echo")
                next_tick = time.monotonic() + 0.5
            r, _, _ = select.select(list(live), [], [],
                                    max(0, min(next_tick, end)
                                        - time.monotonic()))
            for fd in r:
                i, s = live.pop(fd)
                res[i] = (time.monotonic() - t0, peek(s))
        h.log("outcomes (index: seconds, what): %s; silent: %s" %
              ({i: ("%.2f" % t, w) for i, (t, w) in sorted(res.items())},
               sorted(i for i, _ in live.values())))
        h.check(e.alive(), "echod died")
        for i, (t, what) in sorted(res.items()):
            h.check(what != "reset", "client %d reset after %.2fs" % (i, t))
            h.check(what == b"", "client %d got %r after %.2fs, expected "
                    "a clean EOF or nothing" % (i, what, t))
            h.check(t >= 1.0, "client %d closed after %.2fs: before the "
                    "idle timeout (2 s)" % (i, t))
        h.check(res, "no client saw a clean EOF within %.0fs" % h.T(7))
    finally:
        for s in socks + extra:
            s.close()
        e.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- F6: a child out of memory -----------------------------------------------

def case_child_oom():
    """F6: a child that cannot map its 16 MiB message buffer (RLIMIT_AS)
    closes its connection cleanly (EOF, no reset, no echo), logs reason
    `resource-error: out of memory` and counts it (resource_errors=1).
    Before the fix it exited with status 1 and the client got a reset."""
    e = None
    limit = None
    for mib in (12, 16, 24):
        lim = mib << 20

        def pre(lim=lim):
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

        try:
            e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line",
                         "--max-msg", "16777216"], preexec_fn=pre)
        except h.TestFailure as ex:
            h.log("RLIMIT_AS %d MiB: echod does not start (%s)" % (mib, ex))
            continue
        st = h.proc_status(e.pid)
        vm = int(st["VmSize"].split()[0]) << 10 if st else 0
        h.log("RLIMIT_AS %d MiB: echod runs, VmSize %d kB" % (mib, vm >> 10))
        if vm + (16 << 20) > lim:
            limit = mib
            break
        e.stop()
        e = None
    h.check(e is not None, "no RLIMIT_AS of 12, 16 or 24 MiB lets echod "
            "start but keeps a child from mapping 16 MiB (a sanitizer "
            "build?)")
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            s.sendall(b"hello\n")
            try:
                got = h.recv_all(s, h.T(5))
            except ConnectionResetError:
                raise h.TestFailure("reset instead of a clean EOF") from None
            h.eq(got, b"", "bytes before EOF")
        finally:
            s.close()
        reason = e.wait_close(cp, h.T(5))
        h.eq(reason, "resource-error: out of memory", "close reason")
        # The counters take the child's report once it is reaped.
        e.wait_no_children()
        st = e.stats()
        h.eq(h.stat_int(st, "resource_errors"), 1, "resource_errors")
        h.log("RLIMIT_AS %d MiB: %s" % (limit, e.close_line(cp)))
    finally:
        e.stop()


# --- F7: rate-limited logging ------------------------------------------------

FORK_LINE = re.compile(r"\bfork: (.*)$")
SUPPRESSED = re.compile(r"\b(\d+) similar messages suppressed")


def case_ratelimit_flush():
    """F7: fork fails again and again for ~2 s (more than 5 times a
    second); the rate-limited `fork:` lines plus their `N similar messages
    suppressed` counts add up to the final fork_failures counter: the
    count of the last burst is logged too. Before the fix it was lost."""
    e, tmp = nproc_echod([])
    socks, extra = [], []
    try:
        socks = hold_children(e, 2)
        mk = e.mark()
        for _ in range(15):
            s = h.connect(e.port)
            extra.append(s)
            s.sendall(b"y")
        time.sleep(2.2)
        st = e.stats()
        h.log("after 2.2 s of fork failures: fork_failures=%s" %
              st.get("fork_failures"))
        time.sleep(1.2)
        for s in socks + extra:
            s.close()
        socks, extra = [], []
        e.stop()
        fork_lines = [m.group(0) for m in e.find(FORK_LINE, mk)]
        finals = e.find(r"stats (.*)$", mk)
        h.check(finals, "no final stats line")
        failures = h.stat_int(h.parse_kv(finals[-1].group(1)),
                              "fork_failures")
        total = 0
        for ln in fork_lines:
            m = SUPPRESSED.search(ln)
            n = int(m.group(1)) if m else 0
            # "fork: N similar messages suppressed" is a count alone;
            # "fork: <error> (N similar ...)" is one failure plus N.
            alone = re.match(r"fork: \d+ similar messages suppressed", ln)
            total += n + (0 if alone else 1)
        h.log("fork lines: %s" % fork_lines)
        h.log("logged failures %d, fork_failures=%d" % (total, failures))
        h.check(failures >= 5, "fewer than 5 fork failures (%d): test "
                "set-up" % failures)
        h.check(any(SUPPRESSED.search(ln) for ln in fork_lines),
                "no `fork: ... N similar messages suppressed` line among "
                "%s" % fork_lines)
        h.check(total >= len(fork_lines), "logged count below line count")
        h.eq(total, failures, "fork failures accounted for in the log "
             "(printed + suppressed) vs the final fork_failures")
    finally:
        for s in socks + extra:
            s.close()
        e.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
