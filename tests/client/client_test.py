#!/usr/bin/env python3
"""Tests of echo-client (SPEC section 4) against real servers on loopback.

Usage: client_test.py --client PATH [--echod PATH] CASE [CASE...]
       client_test.py --client PATH [--echod PATH] --list

Each case starts its own server on port 0 (a small Python server in a
thread, or a real echod when --echod is given), runs echo-client against
it and checks stdout, stderr and the exit status exactly. A case that cannot
run (echod missing for an echod case) fails: nothing is skipped silently.
"""

import argparse
import os
import pty
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

CLIENT = None
ECHOD = None
RUN_TIMEOUT = 30
# ECHOD_VALGRIND=1 (the suite's Valgrind pass) runs echo-client under
# memcheck; an error makes it exit 99, which no case expects.
VALGRIND = os.environ.get("ECHOD_VALGRIND", "") not in ("", "0")
CLIENT_PREFIX = (["valgrind", "-q", "--tool=memcheck", "--error-exitcode=99",
                  "--leak-check=full", "--errors-for-leak-kinds=definite"]
                 if VALGRIND else [])


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def check_eq(got, want, what):
    if got != want:
        g, w = repr(got), repr(want)
        raise Fail("%s:\n  got  %s\n  want %s" % (what, g[:400], w[:400]))


# --------------------------------------------------------------------------
# Python servers: one thread, accepts connections until stopped, each
# connection served by handler(conn, server) in a thread of its own.


class PyServer:
    def __init__(self, handler, family=socket.AF_INET, host="127.0.0.1"):
        self.handler = handler
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []  # bytes received, per connection
        self.eof_seen = []  # per connection: the client half-closed
        self.errors = []
        self.stop_flag = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                idx = len(self.received)
                self.received.append(b"")
                self.eof_seen.append(False)
            threading.Thread(target=self._serve, args=(conn, idx),
                             daemon=True).start()

    def _serve(self, conn, idx):
        conn.settimeout(20)
        try:
            self.handler(Conn(self, conn, idx))
        except Exception as e:  # reported by the case via server.errors
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stop_flag = True
        self.thread.join(5)
        self.sock.close()


class Conn:
    """A served connection that records what it receives."""

    def __init__(self, server, sock, idx):
        self.server, self.sock, self.idx = server, sock, idx
        self.buf = b""

    def recv(self, n=65536):
        d = self.sock.recv(n)
        with self.server.lock:
            self.server.received[self.idx] += d
            if not d:
                self.server.eof_seen[self.idx] = True
        return d

    def fill(self, n):
        """Reads until self.buf holds n bytes; False at EOF."""
        while len(self.buf) < n:
            d = self.recv()
            if not d:
                return False
            self.buf += d
        return True

    def take(self, n):
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def send(self, data):
        self.sock.sendall(data)


def raw_echo(c):
    while True:
        d = c.recv()
        if not d:
            return
        c.send(d)


def make_line_echo(delim=b"\n", max_msg=65536, close_after=None):
    """SPEC section 2 line mode; closes after close_after messages."""

    def handler(c):
        n = 0
        discarding = False
        while True:
            i = c.buf.find(delim)
            if i < 0:
                if not discarding and len(c.buf) > max_msg:
                    c.send(b"ERR too long" + delim)
                    discarding = True
                if discarding:
                    c.buf = b""
                d = c.recv()
                if not d:
                    if c.buf and not discarding:
                        c.send(c.buf)
                    return
                c.buf += d
                continue
            msg = c.take(i + 1)
            if discarding:
                discarding = False
                continue
            if i > max_msg:
                c.send(b"ERR too long" + delim)
            else:
                c.send(msg)
            n += 1
            if close_after is not None and n >= close_after:
                c.sock.shutdown(socket.SHUT_WR)
                # Lingering close, as echod does: read until the client's
                # EOF so that closing sends no reset.
                while c.recv():
                    pass
                return

    return handler


def frame_echo(c):
    while True:
        if not c.fill(4):
            return
        (n,) = struct.unpack(">I", c.buf[:4])
        if not c.fill(4 + n):
            return
        c.send(c.take(4 + n))


# --------------------------------------------------------------------------
# Real echod


class Echod:
    def __init__(self, *args):
        if not ECHOD:
            raise Fail("this case needs echod (--echod PATH)")
        self.proc = subprocess.Popen([ECHOD, "-p", "0", *args],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.port = None
        self.log = b""
        deadline = time.monotonic() + 10
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise Fail("echod did not report its port: %r" % self.log)
            r, _, _ = select.select([self.proc.stderr], [], [], left)
            if not r:
                continue
            line = self.proc.stderr.readline()
            self.log += line
            m = re.search(rb"listening on .*:(\d+)\s*$", line)
            if m:
                self.port = int(m.group(1))
        # Keep draining echod's log so that it never blocks on stderr.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log += line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------
# Running the client


def run_client(args, stdin=b"", timeout=RUN_TIMEOUT):
    p = subprocess.run([*CLIENT_PREFIX, CLIENT, *args], input=stdin, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_client_open_stdin(args, data, timeout=15):
    """Runs the client with data on a stdin that stays open (no EOF) until
    the client has exited; returns (rc, stdout, stderr), or None when the
    client did not exit by itself within timeout."""
    r, w = os.pipe()
    try:
        p = subprocess.Popen([*CLIENT_PREFIX, CLIENT, *args], stdin=r,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(r)
        r = -1
        os.write(w, data)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return None
        return p.returncode, out, err
    finally:
        if r >= 0:
            os.close(r)
        os.close(w)


def expect_ok(args, stdin, want_stdout):
    rc, out, err = run_client(args, stdin)
    check_eq(out, want_stdout, "stdout of %s (exit %d, stderr %r)" %
             (" ".join(args), rc, err[:300]))
    check_eq(err, b"", "stderr of %s" % " ".join(args))
    check_eq(rc, 0, "exit status of %s" % " ".join(args))


def one_error_line(err, pattern, what):
    lines = err.decode(errors="replace").splitlines()
    check(len(lines) == 1, "%s: want one line on stderr, got %r" %
          (what, lines))
    check(re.fullmatch(pattern, lines[0]),
          "%s: stderr %r does not match %r" % (what, lines[0], pattern))


LINES = [b"hello", b"", b"  spaces  inside ", b"caf\xc3\xa9 \xe2\x82\xac",
         b"tab\there", b"x" * 1000, b"last"]
INPUT = b"".join(l + b"\n" for l in LINES)


def with_server(handler, fn, **kw):
    s = PyServer(handler, **kw)
    try:
        fn(s)
    finally:
        s.stop()
    check(not s.errors, "server errors: %r" % s.errors)
    return s


def with_echod(args, fn):
    e = Echod(*args)
    try:
        fn(e)
    finally:
        e.stop()


# --------------------------------------------------------------------------
# Cases


def case_raw_roundtrip():
    def fn(s):
        expect_ok(["127.0.0.1", str(s.port)], INPUT, INPUT)
        check_eq(s.received, [INPUT], "bytes the server received")
        check(s.eof_seen[0], "the client did not half-close")

    with_server(raw_echo, fn)


def case_raw_no_final_newline():
    # The last line has no newline: sent as is, printed on a line.
    def fn(s):
        expect_ok(["-m", "raw", "127.0.0.1", str(s.port)], b"a\nbc",
                  b"a\nbc\n")
        check_eq(s.received, [b"a\nbc"], "bytes the server received")

    with_server(raw_echo, fn)


def case_line_roundtrip():
    def fn(s):
        expect_ok(["-m", "line", "127.0.0.1", str(s.port)], INPUT, INPUT)
        check_eq(s.received, [INPUT], "bytes the server received")

    with_server(make_line_echo(), fn)


def case_frame_roundtrip():
    def fn(s):
        expect_ok(["-m", "frame", "127.0.0.1", str(s.port)], INPUT, INPUT)
        want = b"".join(struct.pack(">I", len(l)) + l for l in LINES)
        check_eq(s.received, [want], "frames the server received")

    with_server(frame_echo, fn)


def case_delim_nul():
    # The classic client's NUL-terminated strings; --delim implies line.
    def fn(s):
        expect_ok(["--delim", "nul", "127.0.0.1", str(s.port)], INPUT,
                  INPUT)
        want = b"".join(l + b"\0" for l in LINES)
        check_eq(s.received, [want], "bytes the server received")

    with_server(make_line_echo(delim=b"\0"), fn)


def case_delim_other():
    # ';' and 0x2c: a delimiter inside a line splits it into messages,
    # each answered, and the line prints back whole.
    def fn(s):
        expect_ok(["-m", "line", "--delim", ";", "127.0.0.1", str(s.port)],
                  b"a;b\nc\n", b"a;b\nc\n")
        check_eq(s.received, [b"a;b;c;"], "bytes the server received")

    with_server(make_line_echo(delim=b";"), fn)

    def fn2(s):
        expect_ok(["--delim", "0x2c", "127.0.0.1", str(s.port)], b"x\n",
                  b"x\n")
        check_eq(s.received, [b"x,"], "bytes the server received")

    with_server(make_line_echo(delim=b","), fn2)


def case_line_err_too_long():
    # The server's "ERR too long" answers the message (and can arrive
    # while the client is still sending); the next line goes on.
    big = b"y" * 300000

    def fn(s):
        expect_ok(["-m", "line", "127.0.0.1", str(s.port)],
                  b"ok\n" + big + b"\nafter\n",
                  b"ok\nERR too long\nafter\n")

    with_server(make_line_echo(max_msg=10), fn)


def case_count():
    # -n 2 with more lines available and stdin never closed: the client
    # must stop by itself after two answers.
    def fn(s):
        res = run_client_open_stdin(["-n", "2", "127.0.0.1", str(s.port)],
                                    b"one\ntwo\nthree\nfour\n")
        check(res is not None, "-n 2 did not stop after two messages")
        rc, out, err = res
        check_eq(out, b"one\ntwo\n", "stdout")
        check_eq(err, b"", "stderr")
        check_eq(rc, 0, "exit status")
        time.sleep(0.2)
        check_eq(s.received, [b"one\ntwo\n"], "bytes the server received")
        check(s.eof_seen == [True], "server did not see the half-close")

    with_server(raw_echo, fn)


def case_eof_halfclose():
    # End of input: every echo printed, half-close seen by the server
    # before the client goes, exit 0.
    def handler(c):
        data = b""
        while True:
            d = c.recv()
            if not d:
                break
            data += d
            c.send(d)
        # After the client's EOF the server still talks; the client must
        # still be reading (it half-closed, it did not close).
        c.send(b"bye\n")

    def fn(s):
        expect_ok(["127.0.0.1", str(s.port)], b"1\n2\n3\n", b"1\n2\n3\nbye\n")
        check(s.eof_seen == [True], "server did not see the half-close")

    with_server(handler, fn)


def case_server_closes():
    # The server answers two messages and closes: the third is unanswered.
    def fn(s):
        rc, out, err = run_client(["-m", "line", "127.0.0.1", str(s.port)],
                                  b"a\nb\nc\nd\n")
        check_eq(out, b"a\nb\n", "stdout")
        check_eq(err, b"echo-client: server closed the connection\n",
                 "stderr")
        check_eq(rc, 1, "exit status")

    with_server(make_line_echo(close_after=2), fn)


def case_server_closes_idle():
    # The server closes while the client waits for input, every message
    # answered: reported at once, exit 0.
    def handler(c):
        c.fill(2)
        c.send(c.take(2))
        time.sleep(0.3)
        c.sock.shutdown(socket.SHUT_WR)
        while c.recv():
            pass

    def fn(s):
        res = run_client_open_stdin(["127.0.0.1", str(s.port)], b"a\n")
        check(res is not None, "client did not notice the close while idle")
        rc, out, err = res
        check_eq(out, b"a\n", "stdout")
        check_eq(err, b"echo-client: server closed the connection\n",
                 "stderr")
        check_eq(rc, 0, "exit status")

    with_server(handler, fn)


def closed_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def case_refused():
    port = closed_port()
    rc, out, err = run_client(["127.0.0.1", str(port)], b"x\n")
    one_error_line(err, r"echo-client: connect to 127\.0\.0\.1:%d: "
                   r"Connection refused" % port, "refused")
    check_eq(out, b"", "stdout")
    check_eq(rc, 1, "exit status")


def case_refused_ipv6():
    port = closed_port(socket.AF_INET6, "::1")
    rc, out, err = run_client(["::1", str(port)], b"x\n")
    one_error_line(err, r"echo-client: connect to \[::1\]:%d: "
                   r"Connection refused" % port, "refused")
    check_eq(rc, 1, "exit status")


def case_unknown_host():
    rc, out, err = run_client(["nosuch-host.invalid", "9999"], b"x\n")
    one_error_line(err, r"echo-client: resolve nosuch-host\.invalid port "
                   r"9999: .+", "unknown host")
    check_eq(out, b"", "stdout")
    check_eq(rc, 1, "exit status")


def case_reset():
    # The server reads, then resets the connection (SO_LINGER 0).
    def handler(c):
        c.fill(1)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))

    def fn(s):
        rc, out, err = run_client(["127.0.0.1", str(s.port)], b"hello\n")
        one_error_line(err, r"echo-client: (receive from|send to) "
                       r"127\.0\.0\.1:%d: Connection reset by peer" % s.port,
                       "reset")
        check_eq(rc, 1, "exit status")

    with_server(handler, fn)


def case_timeout():
    # A server that reads but never answers: -t 1 gives up in about 1 s.
    def handler(c):
        while c.recv():
            pass

    def fn(s):
        t0 = time.monotonic()
        rc, out, err = run_client(["-t", "1", "127.0.0.1", str(s.port)],
                                  b"hello\n")
        dt = time.monotonic() - t0
        one_error_line(err, r"echo-client: 127\.0\.0\.1:%d: no echo within "
                       r"1 s" % s.port, "timeout")
        check_eq(rc, 1, "exit status")
        check(0.9 <= dt < 5, "timeout took %.2f s" % dt)

    with_server(handler, fn)


def case_ipv6():
    def fn(s):
        expect_ok(["::1", str(s.port)], INPUT, INPUT)
        expect_ok(["-m", "raw", "[::1]", str(s.port)], b"v6\n", b"v6\n")

    with_server(raw_echo, fn, family=socket.AF_INET6, host="::1")


def case_localhost():
    def fn(s):
        expect_ok(["localhost", str(s.port)], b"by name\n", b"by name\n")

    with_server(raw_echo, fn)


def case_bad_options():
    bad = [["-m", "foo"], ["--mode"], ["-n", "0"], ["-n", "5x"],
           ["-n", "-1"], ["--delim", "0xZZ"], ["--delim", "abc"],
           ["--delim", ""], ["-m", "raw", "--delim", "nul"],
           ["-m", "frame", "--delim", "lf"], ["--bogus"], ["-x"],
           ["--max-msg", "0"], ["--max-msg", "16777217"], ["-t", "-1"],
           ["-t", "abc"], ["-t", "86401"], ["127.0.0.1", "70000"],
           ["127.0.0.1", "0"], ["127.0.0.1", "80x"], ["a", "1", "extra"],
           [""]]
    for args in bad:
        rc, out, err = run_client(args, b"x\n")
        lines = err.decode(errors="replace").splitlines()
        check_eq(rc, 2, "exit status of %r" % args)
        check(len(lines) == 2 and lines[0].startswith("echo-client: ") and
              "--help" in lines[1],
              "stderr of %r: want a line and a usage hint, got %r" %
              (args, lines))
        check_eq(out, b"", "stdout of %r" % args)


def case_delim_splits_reply():
    # A delimiter that occurs in echod's reply "ERR too long" would split
    # that reply into two answers: every byte of it, as one character and
    # as 0xNN in both cases, is refused before anything is sent (the port
    # is closed: a client that went ahead would exit 1, "refused").
    port = closed_port()
    for b in sorted(set("ERR too long")):
        for spelling in (b, "0x%02x" % ord(b), "0X%02X" % ord(b)):
            args = ["--delim", spelling, "127.0.0.1", str(port)]
            rc, out, err = run_client(args, b"x\n")
            lines = err.decode(errors="replace").splitlines()
            check_eq(rc, 2, "exit status of %r" % args)
            check(len(lines) == 2 and "--help" in lines[1],
                  "stderr of %r: want a line and a usage hint, got %r" %
                  (args, lines))
            check_eq(lines[0], "echo-client: invalid delimiter '%s': it "
                     "occurs in the reply \"ERR too long\" and would split "
                     "it" % spelling, "error line of %r" % args)
            check_eq(out, b"", "stdout of %r" % args)
    # The words lf and nul are made of such letters but are fine.
    for spelling in ("lf", "nul", ";", "|", "0x0a", "0x00"):
        rc, out, err = run_client(["--delim", spelling, "--help"])
        check_eq(rc, 0, "--delim %s --help: exit status (stderr %r)" %
                 (spelling, err))


def case_option_escape():
    # An error quotes the bad argument escaped, never a raw newline or
    # terminal escape; a long one is cut with "...".
    cases = [
        (["-m", "raw\n\x1b[2J"], r"invalid mode 'raw\\n\\x1b\[2J' .*"),
        (["--delim", "\n\x1b"], r"invalid delimiter '\\n\\x1b' .*"),
        (["-n", "1\r\x7f"], r"invalid count '1\\r\\x7f' .*"),
        (["--max-msg", "\t9"], r"invalid --max-msg '\\t9' .*"),
        (["-t", "\x1b"], r"invalid timeout '\\x1b' .*"),
        (["127.0.0.1", "80\n\x1b"], r"invalid port '80\\n\\x1b' .*"),
        (["a", "1", "x\ny"], r"unexpected argument 'x\\ny'"),
        (["--bogus\x1b\n"], r"unknown option '--bogus\\x1b\\n'"),
        (["-\x1b"], r"unknown option '-\\x1b'"),
        (["-m", "\x1b" * 300], r"invalid mode '(\\x1b)+\.\.\.' \(raw, "
         r"line or frame\)"),
    ]
    for args, rx in cases:
        rc, out, err = run_client(args, b"x\n")
        what = ascii(args)[:80]
        check_eq(rc, 2, "exit status of %s" % what)
        raw = sorted({b for b in err if (b < 0x20 and b != 0x0a) or b >= 0x7f})
        check(not raw, "%s: raw bytes %r on stderr: %r" %
              (what, raw, err[:100]))
        lines = err.decode("ascii", "replace").splitlines()
        check(len(lines) == 2 and "--help" in lines[1],
              "stderr of %s: want a line and a usage hint, got %r" %
              (what, lines))
        check(re.fullmatch("echo-client: " + rx, lines[0]),
              "%s: %r does not show the argument escaped (/%s/)" %
              (what, lines[0][:160], rx))
    # HOST and PORT reach the resolver's error message too (exit 1).
    rc, out, err = run_client(["no\x1b[31m.invalid\n", "echo\x1b"], b"x\n")
    check_eq(rc, 1, "exit status of an unresolvable host")
    check(all(b >= 0x20 and b < 0x7f for b in err.rstrip(b"\n")),
          "raw bytes on stderr: %r" % err[:200])
    check(b"no\\x1b[31m.invalid\\n port echo\\x1b" in err,
          "host and port not shown escaped: %r" % err[:200])


def case_help_version():
    rc, out, err = run_client(["--help"])
    check_eq(rc, 0, "--help exit status")
    check(out.startswith(b"Usage: echo-client "), "--help text: %r" % out)
    for word in (b"--mode", b"--delim", b"--count", b"--max-msg",
                 b"--timeout", b"--version"):
        check(word in out, "--help does not mention %r" % word)
    rc, out, err = run_client(["--version"])
    check_eq(rc, 0, "--version exit status")
    check(re.fullmatch(rb"echo-client \(echod\) \d+\.\d+\.\d+\n", out),
          "--version text: %r" % out)


def case_big_line_raw():
    # A 1 MiB line, far beyond any socket buffer: sending and reading must
    # overlap or the exchange would deadlock.
    rnd = random.Random(862)
    big = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                for _ in range(1 << 20))
    data = b"before\n" + big + b"\nafter\n"

    def fn(s):
        expect_ok(["127.0.0.1", str(s.port)], data, data)

    with_server(raw_echo, fn)


def case_max_msg():
    # A line over --max-msg is not sent (one line on stderr); the others
    # are, and the exit status says something was refused.
    def fn(s):
        rc, out, err = run_client(["--max-msg", "4", "-m", "line",
                                   "127.0.0.1", str(s.port)],
                                  b"abcd\nabcde\n" + b"z" * 200000 + b"\nok\n")
        check_eq(out, b"abcd\nok\n", "stdout")
        lines = err.decode().splitlines()
        check_eq(lines, ["echo-client: line of 5 bytes not sent: longer "
                         "than --max-msg 4",
                         "echo-client: line of 200000 bytes not sent: "
                         "longer than --max-msg 4"], "stderr")
        check_eq(rc, 1, "exit status")
        check_eq(s.received, [b"abcd\nok\n"], "bytes the server received")

    with_server(make_line_echo(), fn)


def case_frame_too_large_reply():
    # A server answering with a frame over --max-msg is refused.
    def handler(c):
        c.fill(4)
        c.send(struct.pack(">I", 0x7fffffff) + b"junk")
        while c.recv():
            pass

    def fn(s):
        rc, out, err = run_client(["-m", "frame", "127.0.0.1", str(s.port)],
                                  b"hi\n")
        one_error_line(err, r"echo-client: 127\.0\.0\.1:%d sent a frame of "
                       r"2147483647 bytes, more than --max-msg 16777216" %
                       s.port, "frame sanity")
        check_eq(rc, 1, "exit status")

    with_server(handler, fn)


def run_on_pty(args, feed):
    """Runs the client with stdin and stdout on a pty; returns (rc, output).
    feed: list of (wait_for, send) pairs: once wait_for has appeared in the
    output, send is written to the terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(CLIENT, [CLIENT, *args])
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + 20
    steps = list(feed)
    try:
        while True:
            if steps and steps[0][0] in out:
                os.write(fd, steps.pop(0)[1])
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("pty run timed out; output so far %r" % out)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            try:
                d = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not d:
                break
            out += d
    finally:
        os.close(fd)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st), out


def case_tty_prompt():
    def fn(s):
        rc, out = run_on_pty(["127.0.0.1", str(s.port)],
                             [(b"Input: ", b"hello\n"),
                              (b"hello\r\nhello\r\nInput: ", b"\x04")])
        # The terminal echoes the typed line, then the echo follows, then
        # the next prompt; Ctrl-D ends the input.
        check_eq(out, b"Input: hello\r\nhello\r\nInput: \r\n", "pty output")
        check_eq(rc, 0, "exit status on a pty")
        # Without a terminal there is no prompt.
        expect_ok(["127.0.0.1", str(s.port)], b"hello\n", b"hello\n")

    with_server(raw_echo, fn)


def case_echod_line():
    def fn(e):
        expect_ok(["-m", "line", "127.0.0.1", str(e.port)], INPUT, INPUT)
        # Over echod's --max-msg: ERR too long answers it.
        expect_ok(["-m", "line", "127.0.0.1", str(e.port)],
                  b"short\n" + b"L" * 3000 + b"\nnext\n",
                  b"short\nERR too long\nnext\n")

    with_echod(["-m", "line", "--max-msg", "2000"], fn)


def case_echod_frame():
    def fn(e):
        expect_ok(["-m", "frame", "127.0.0.1", str(e.port)], INPUT, INPUT)
        # A frame over echod's --max-msg: echod closes, the client says so.
        rc, out, err = run_client(["-m", "frame", "127.0.0.1", str(e.port)],
                                  b"ok\n" + b"F" * 3000 + b"\nlost\n")
        check_eq(out, b"ok\n", "stdout")
        check_eq(err, b"echo-client: server closed the connection\n",
                 "stderr")
        check_eq(rc, 1, "exit status")

    with_echod(["-m", "frame", "--max-msg", "2000"], fn)


def case_echod_raw():
    rnd = random.Random(7)
    big = bytes(rnd.randrange(33, 127) for _ in range(1 << 20))

    def fn(e):
        expect_ok(["127.0.0.1", str(e.port)], INPUT, INPUT)
        expect_ok(["::1", str(e.port)], b"six\n", b"six\n")
        expect_ok(["127.0.0.1", str(e.port)], big + b"\n", big + b"\n")

    with_echod([], fn)


def case_echod_big():
    # 1 MiB messages in line and frame mode: echod holds the whole message,
    # then its echo (16 socket buffers' worth) must all come back.
    rnd = random.Random(9)
    big = bytes(rnd.randrange(33, 127) for _ in range(1 << 20))
    data = b"a\n" + big + b"\nb\n"
    for mode in ("line", "frame"):
        with_echod(["-m", mode, "--max-msg", str(2 << 20)],
                   lambda e: expect_ok(["-t", "5", "-m", mode, "127.0.0.1",
                                        str(e.port)], data, data))


def case_echod_delim_nul():
    def fn(e):
        expect_ok(["--delim", "nul", "127.0.0.1", str(e.port)], INPUT, INPUT)

    with_echod(["-m", "line", "--delim", "nul"], fn)


def case_echod_count():
    def fn(e):
        expect_ok(["-n", "3", "-m", "line", "127.0.0.1", str(e.port)],
                  INPUT, b"".join(l + b"\n" for l in LINES[:3]))

    with_echod(["-m", "line"], fn)


CASES = {name[5:]: fn for name, fn in globals().items()
         if name.startswith("case_")}


def main():
    global CLIENT, ECHOD
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True)
    ap.add_argument("--echod")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    CLIENT, ECHOD = os.path.abspath(a.client), a.echod
    if a.list:
        print("\n".join(CASES))
        return 0
    if not a.cases:
        ap.error("name at least one case (or --list)")
    failed = 0
    for name in a.cases:
        if name not in CASES:
            print("unknown case %s" % name)
            failed += 1
            continue
        t0 = time.monotonic()
        try:
            CASES[name]()
        except Fail as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
            continue
        print("ok   %s (%.2f s)" % (name, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
