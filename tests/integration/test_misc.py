"""Options, IPv6, counters, resets, log levels and the sandbox (SPEC
section 3)."""

import datetime
import os
import re
import signal
import socket
import struct
import time

import harness as h


# --- options ------------------------------------------------------------------

# (arguments, a regex the error line must match: it names the problem)
BAD_OPTIONS = [
    (["--no-such-flag"], r"no-such-flag|unrecognized|unknown"),
    (["-p", "80x"], r"80x|port"),
    (["-p", "-1"], r"-1|port"),
    (["-p", "65536"], r"65536|port"),
    (["-p", "99999999999999999999"], r"99999999999999999999|port"),
    (["-p", ""], r"port|empty|invalid"),
    (["--max-msg", "0"], r"max-msg"),
    (["--max-msg", "16777217"], r"max-msg"),
    (["-m", "bogus"], r"bogus|mode"),
    (["--delim", "0xZZ"], r"0xZZ|delim"),
    (["--delim", "ab"], r"ab|delim"),
    (["-b", "not-an-address"], r"not-an-address|bind|address"),
    (["-c", "0"], r"max-conns|-c\b|\b0\b"),
    (["-c", "1000001"], r"max-conns|-c\b|1000001"),
    (["--max-per-ip", "1000001"], r"max-per-ip"),
    (["-t", "86401"], r"idle-timeout|-t\b|86401"),
    (["-t", "1s"], r"idle-timeout|-t\b|1s"),
    (["--backlog", "0"], r"backlog"),
    (["--backlog", "65536"], r"backlog"),
    (["--shutdown-timeout", "3601"], r"shutdown-timeout"),
    (["-p"], r"port|-p\b|argument"),
    (["extra-argument"], r"extra-argument|argument"),
]

# A delimiter that occurs in the reply "ERR too long" would split it: every
# byte of it, as one character and as 0xNN in both cases, is a usage error
# (while lf and nul, made of such letters, are fine: case line_*).
SPLITS_REPLY = r"invalid delimiter '%s': it occurs in the reply " \
    r'"ERR too long" and would split it$'
for _b in sorted(set("ERR too long")):
    for _spelling in (_b, "0x%02x" % ord(_b), "0X%02X" % ord(_b)):
        BAD_OPTIONS.append((["-m", "line", "--delim", _spelling],
                            SPLITS_REPLY % re.escape(_spelling)))


def case_bad_options():
    # A port we hold ourselves: an echod that tried to bind it before
    # validating the rest would report "Address already in use" instead.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    held = holder.getsockname()[1]
    failures = []
    try:
        for bad, rx in BAD_OPTIONS:
            argv = ["-b", "127.0.0.1", "-p", str(held)] + bad
            if bad[0] in ("-p", "-b"):
                argv = bad
            r = h.run_echod(argv)
            err = r.stderr.decode("utf-8", "replace")
            lines = [ln for ln in err.splitlines() if ln.strip()]
            what = "echod %s" % " ".join(bad)
            if r.returncode != 2:
                failures.append("%s: exit %d, expected 2; stderr %r" %
                                (what, r.returncode, err[:200]))
                continue
            if not lines or not re.search(rx, lines[0]):
                failures.append("%s: first stderr line %r does not name the"
                                " problem (/%s/)" % (what, lines[:1], rx))
            if len(lines) > 3:
                failures.append("%s: %d lines on stderr, expected one plus a"
                                " usage hint" % (what, len(lines)))
            if re.search(r"listening|in use", err):
                failures.append("%s: bound before validating: %r" %
                                (what, err[:200]))
            if r.stdout:
                failures.append("%s: wrote to stdout: %r" %
                                (what, r.stdout[:100]))
            h.log("ok: %s -> %s" % (what, lines[0] if lines else ""))
    finally:
        holder.close()
    h.check(not failures, "\n".join(failures))


def case_option_escape():
    """An option error quotes the bad argument escaped (as -v logs
    messages), so a newline or a terminal escape sequence in an argument
    never reaches stderr as it is; a long one is cut with "..."."""
    cases = [
        (["-p", "8\n0\x1b"], r"invalid port '8\\n0\\x1b' \(expected"),
        (["-b", "\x1b[31m::1\r\n"],
         r"invalid bind address '\\x1b\[31m::1\\r\\n'"),
        (["-m", "line\nx\x7f"], r"invalid mode 'line\\nx\\x7f'"),
        (["--delim", "\n\x1b"], r"invalid delimiter '\\n\\x1b'"),
        (["-t", "\t1"], r"invalid idle-timeout '\\t1'"),
        (["extra\n\x1b[2J"], r"unexpected argument 'extra\\n\\x1b\[2J'"),
        (["--bogus\n\x1b"], r"unknown option '--bogus\\n\\x1b'"),
        (["-\x1b"], r"unknown option '-\\x1b'"),
        (["-q\n"], r"unknown option '-\\n'"),
        (["-p", "\x1b" * 300],
         r"invalid port '(\\x1b)+\.\.\.' \(expected 0-65535\)$"),
        (["-p", "9" * 300],
         r"invalid port '9{80}\.\.\.' \(expected 0-65535\)$"),
    ]
    failures = []
    for args, rx in cases:
        r = h.run_echod(args)
        raw = r.stderr
        what = "echod %s" % ascii(args)[:80]
        if r.returncode != 2:
            failures.append("%s: exit %d, expected 2" % (what, r.returncode))
        # Only the line ends may be control bytes.
        bad = sorted({b for b in raw if (b < 0x20 and b != 0x0a) or b >= 0x7f})
        if bad:
            failures.append("%s: raw bytes %s on stderr: %r" %
                            (what, ["0x%02x" % b for b in bad], raw[:100]))
        lines = raw.decode("ascii", "replace").splitlines()
        if len(lines) != 2 or "--help" not in lines[1]:
            failures.append("%s: want one line and the usage hint, got %r" %
                            (what, lines))
            continue
        if not re.search(rx, lines[0]):
            failures.append("%s: %r does not show the argument escaped "
                            "(/%s/)" % (what, lines[0][:160], rx))
        h.log("ok: %s -> %s" % (what, lines[0]))
    h.check(not failures, "\n".join(failures))


def case_help():
    r = h.run_echod(["--help"])
    h.eq(r.returncode, 0, "--help exit status")
    text = r.stdout.decode()
    for opt in ("--port", "--bind", "--mode", "--delim", "--max-msg",
                "--max-conns", "--max-per-ip", "--idle-timeout", "--backlog",
                "--shutdown-timeout", "-q", "-v", "--help", "--version",
                "-p", "-b", "-m", "-c", "-t", "-h"):
        h.check(re.search(r"(^|[\s,])%s\b" % re.escape(opt), text),
                "--help does not list %s:\n%s" % (opt, text))
    r2 = h.run_echod(["-h"])
    h.eq(r2.returncode, 0, "-h exit status")
    h.eq(r2.stdout, r.stdout, "-h output")
    r3 = h.run_echod(["--version"])
    h.eq(r3.returncode, 0, "--version exit status")
    h.check(re.search(rb"\d+\.\d+", r3.stdout), "--version prints no "
            "version: %r" % r3.stdout)


def case_port_in_use():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        r = h.run_echod(["-b", "127.0.0.1", "-p", str(port)])
        err = r.stderr.decode("utf-8", "replace")
        h.check(r.returncode != 0, "echod started on a port in use")
        h.check(re.search(r"(?i)in use", err), "error does not say the "
                "address is in use: %r" % err)
        h.check("listening" not in err, "claims to listen: %r" % err)
    finally:
        holder.close()


# --- IPv6 ---------------------------------------------------------------------

def case_ipv6_loopback():
    e = h.Echod(["-p", "0", "-b", "::1"])
    try:
        h.check(e.addr in ("[::1]", "::1"), "listening address %r" % e.addr)
        cp = h.roundtrip(e.port, b"over IPv6\n", host="::1")
        e.wait_log(r"close \[::1\]:%d\b.*reason=eof" % cp, h.T(5))
        # Bound to ::1 only: not reachable over IPv4.
        try:
            s = h.connect(e.port, "127.0.0.1", timeout=h.T(2))
            s.close()
            # The port may belong to someone else on 127.0.0.1; only a
            # served echo would be wrong.
        except OSError:
            pass
    finally:
        e.stop()


def case_ipv6_dual_stack():
    e = h.Echod(["-p", "0"])
    try:
        c4 = h.roundtrip(e.port, b"v4\n", host="127.0.0.1")
        c6 = h.roundtrip(e.port, b"v6\n", host="::1")
        e.wait_log(r"close (::ffff:)?127\.0\.0\.1:%d\b" % c4, h.T(5))
        e.wait_log(r"close \[::1\]:%d\b" % c6, h.T(5))
        h.check(not e.find(r"::ffff:"), "IPv4 clients logged as mapped "
                "IPv6 addresses")
    finally:
        e.stop()


# --- counters, resets, log levels ---------------------------------------------

def case_counters():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line"])
    try:
        # signals_at_start covers a SIGUSR1 sent the moment echod listens.
        time.sleep(0.2)
        st0 = e.stats()
        h.eq(h.stat_int(st0, "accepted"), 0, "accepted before any client")
        sent = 0
        ports = []
        for i in range(3):
            s = h.connect(e.port)
            ports.append(h.cport(s))
            try:
                for j in range(4):
                    msg = b"message %d.%d\n" % (i, j)
                    s.sendall(msg)
                    h.eq(h.recv_exact(s, len(msg)), msg, "echo")
                    sent += len(msg)
            finally:
                s.close()
            # One at a time: the next connects after this child is reaped.
            e.wait_close(ports[-1])
            e.wait_no_children()
        st = e.stats()
        h.log("stats: %s" % st)
        h.eq(h.stat_int(st, "accepted"), 3, "accepted")
        h.eq(h.stat_int(st, "active"), 0, "active")
        h.eq(h.stat_int(st, "peak"), 1, "peak")
        h.eq(h.stat_int(st, "bytes_in", "in"), sent, "bytes in")
        h.eq(h.stat_int(st, "bytes_out", "out"), sent, "bytes out")
        h.eq(h.stat_int(st, "messages", "msgs"), 12, "messages")
        h.eq(h.stat_int(st, "resets"), 0, "resets")
        h.eq(h.stat_int(st, "idle_timeouts", "idle", "timeouts"), 0,
             "idle timeouts")
        mk = e.mark()
        e.stop()
        final = e.find(r"stats (.*)$", mk)
        h.check(final, "no stats line at exit")
        kv = h.parse_kv(final[-1].group(1))
        h.eq(h.stat_int(kv, "accepted"), 3, "accepted at exit")
        h.eq(h.stat_int(kv, "bytes_in", "in"), sent, "bytes in at exit")
    finally:
        e.stop()


def case_reset():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        s.sendall(b"a" * 10000)
        h.recv_exact(s, 1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.sendall(b"b" * 100000)
        s.close()  # RST with data in both directions
        h.eq(e.wait_close(cp), "reset", "close reason")
        h.roundtrip(e.port, b"fine after a reset\n")
        e.wait_no_children()
        st = e.stats()
        h.eq(h.stat_int(st, "resets"), 1, "reset counter")
    finally:
        e.stop()


def case_verbose():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line", "-v"])
    try:
        s = h.connect(e.port)
        try:
            s.sendall(b"hello verbose\n")
            h.recv_exact(s, 14)
            long_msg = b"L" * 200 + b"\x01\n"
            s.sendall(long_msg)
            h.recv_exact(s, len(long_msg))
        finally:
            s.close()
        e.wait_log(r"hello verbose", h.T(5), what="-v message line")
        m = e.wait_log(r"LLLLLLLLLL", h.T(5), what="-v long message line")
        h.check("L" * 81 not in m.string, "-v message not cut at 80 bytes: "
                "%r" % m.string)
    finally:
        e.stop()


def msg_lines(e, cport, count, what):
    """The first count -v lines of the client on port cport, as
    (len, shown) pairs, waiting (bounded) for them."""
    rx = r'msg \S*:%d len=(\d+) "(.*)"$' % cport
    deadline = time.monotonic() + h.T(5)
    while True:
        got = [(int(m.group(1)), m.group(2)) for m in e.find(rx)]
        if len(got) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    h.check(len(got) >= count, "%s: %d of %d -v lines: %r"
            % (what, len(got), count, got))
    return got[:count]


def case_verbose_boundaries():
    """-v logs one line per message where the engine says it begins: the
    payload without delimiter or header, its whole length, whatever the
    segments; more messages in one read than the engine reports per run
    (SESSION_MARKS, 16) are all logged, once, in order."""
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line", "-v",
                 "--max-msg", "8"])
    try:
        s = h.connect(e.port)
        try:
            cport = s.getsockname()[1]
            many = b"".join(b"m%02d\n" % i for i in range(40))
            burst = b"a\nbb\n\n" + many + b"x" * 20 + b"\nlast"
            s.sendall(burst)
            s.shutdown(socket.SHUT_WR)
            want = b"a\nbb\n\n" + many + b"ERR too long\nlast"
            h.eq(h.recv_exact(s, len(want)), want, "line echo")
        finally:
            s.close()
        got = msg_lines(e, cport, 45, "line")
        h.eq(got[:3], [(1, "a"), (2, "bb"), (0, "")], "first lines")
        h.eq(got[3:43], [(3, "m%02d" % i) for i in range(40)],
             "40 messages of one segment")
        h.eq(got[43:], [(12, "ERR too long"), (4, "last")],
             "ERR reply and unterminated tail")
        h.eq(len(e.find(r'msg \S*:%d ' % cport)), 45, "no extra -v lines")
    finally:
        e.stop()

    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame", "-v"])
    try:
        s = h.connect(e.port)
        try:
            cport = s.getsockname()[1]
            s.sendall(struct.pack(">I", 5) + b"he")
            time.sleep(0.2)
            s.sendall(b"llo" + struct.pack(">I", 0) + struct.pack(">I", 3))
            time.sleep(0.2)
            s.sendall(b"\n\x00\xff")
            want = (struct.pack(">I", 5) + b"hello" + struct.pack(">I", 0) +
                    struct.pack(">I", 3) + b"\n\x00\xff")
            h.eq(h.recv_exact(s, len(want)), want, "frame echo")
        finally:
            s.close()
        got = msg_lines(e, cport, 3, "frame")
        h.eq(got, [(5, "hello"), (0, ""), (3, "\\n\\x00\\xff")],
             "one line per frame, payload only")
        h.eq(len(e.find(r'msg \S*:%d ' % cport)), 3, "no extra -v lines")
    finally:
        e.stop()


def case_quiet():
    port = h.free_port()
    e = h.Echod(["-q", "-p", str(port), "-b", "127.0.0.1"],
                wait_listen=False)
    try:
        deadline = time.monotonic() + h.T(10)
        while True:
            try:
                h.roundtrip(port, b"quiet\n")
                break
            except (ConnectionRefusedError, h.TestFailure):
                h.check(time.monotonic() < deadline and e.alive(),
                        "echod -q never served on port %d" % port)
                time.sleep(0.05)
        time.sleep(0.3)
        e.stop()
        info = [ln for ln in e.lines
                if re.search(r"\b(close|accept|connect(ion)?)\b.*127\.0\.0\.1",
                             ln)]
        h.check(not info, "-q still logs connections: %s" % info)
    finally:
        e.stop()


def case_log_format():
    # A local time zone 5 hours off UTC: timestamps must still be UTC.
    env = dict(os.environ, TZ="XYZ+05")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"], env=env)
    try:
        cp = h.roundtrip(e.port, b"log\n")
        e.wait_close(cp)
        mk = e.mark()
    finally:
        e.stop()
    h.check(len(e.lines) >= 3, "too few log lines: %s" % e.lines)
    for ln in e.lines:
        h.check(re.match(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?\b", ln),
                "log line without a UTC timestamp: %r" % ln)
        h.check(re.search(r"echod\[\d+\]", ln), "log line without "
                "echod[PID]: %r" % ln)
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)",
                 e.lines[0])
    ts = datetime.datetime(*map(int, m.groups()),
                           tzinfo=datetime.timezone.utc)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - ts)
               .total_seconds())
    h.check(skew < 120, "timestamp %r is not UTC (off by %.0fs)" %
            (e.lines[0][:30], skew))
    h.check(e.find(r"127\.0\.0\.1:%d" % cp, 0), "accept of the client not "
            "logged with its address and port")
    h.check(e.find(r"stats ", mk), "no stats line at exit")
    line = e.find(r"close 127\.0\.0\.1:%d .*" % cp)[0].string
    h.check(re.search(r"in=4 out=4 discarded=0 duration=\d+(\.\d+)?s reason=eof", line),
            "close line format: %r" % line)


def case_signals_at_start():
    # A script that waits for "listening on" and then signals echod must
    # find the handlers in place: SIGUSR1 right away logs stats, SIGTERM
    # right away is a clean exit 0.
    for i in range(5 if h.VALGRIND else 20):
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
        try:
            os.kill(e.pid, signal.SIGUSR1)
            e.wait_log(r"stats accepted=0 ", h.T(5),
                       what="stats after SIGUSR1 at once (start %d)" % i)
        finally:
            e.stop()
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
        e.stop()


# --- sandbox ------------------------------------------------------------------

def case_sandbox():
    off, text = h.version_says_sandbox_off()
    h.check(not off, "built with the sandbox but --version says: %r" % text)
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        s = h.connect(e.port)
        try:
            s.sendall(b"sandboxed\n")
            h.eq(h.recv_exact(s, 10), b"sandboxed\n", "echo")
            kids = e.wait_children(1, h.T(5))
            st = h.proc_status(kids[0])
            h.check(st is not None, "child vanished")
            h.eq(st.get("Seccomp"), "2", "Seccomp of the child")
            # The sandbox must not get in the way of serving.
            s.sendall(b"again\n")
            h.eq(h.recv_exact(s, 6), b"again\n", "echo in the sandbox")
        finally:
            s.close()
        st = e.stats()
        h.eq(h.stat_int(st, "sandbox_kills", "sandbox"), 0, "sandbox kills")
    finally:
        e.stop()


def case_child_descriptors():
    """A child may use any descriptor it holds (seccomp filters calls, not
    descriptors): it must hold its client, stderr and /dev/null only, even
    when echod is started with a terminal-like stdin and a leaked fd."""
    r, w = os.pipe()
    try:
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"], stdin=r, pass_fds=(w,))
    finally:
        os.close(r)
    try:
        s = h.connect(e.port)
        try:
            s.sendall(b"fds\n")
            h.eq(h.recv_exact(s, 4), b"fds\n", "echo")
            kid = e.wait_children(1, h.T(5))[0]
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % kid):
                fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (kid, fd))
            h.log("child %d descriptors: %r" % (kid, fds))
            h.eq(fds.get(0), "/dev/null", "child stdin")
            h.eq(fds.get(1), "/dev/null", "child stdout")
            h.check(2 in fds, "child has no stderr")
            rest = [t for fd, t in fds.items() if fd > 2]
            # The client's TCP socket and the report socket to the parent
            # (unix, SOCK_SEQPACKET), nothing else.
            h.eq(len(rest), 2, "descriptors besides 0-2: %r" % rest)
            h.check(all(t.startswith("socket:[") for t in rest),
                    "not sockets: %r" % rest)
            inodes = set(t[len("socket:["):-1] for t in rest)
            unix = {}
            with open("/proc/net/unix") as f:
                next(f)
                for line in f:
                    p = line.split()
                    unix[p[6]] = p[4]  # inode -> type
            tcp = set()
            for name in ("/proc/net/tcp", "/proc/net/tcp6"):
                with open(name) as f:
                    next(f)
                    tcp.update(line.split()[9] for line in f)
            h.eq(sorted(unix.get(i, "-") for i in inodes), ["-", "0005"],
                 "one unix SOCK_SEQPACKET socket (the report) among %r"
                 % rest)
            h.eq(len(inodes & tcp), 1, "one TCP socket (the client)")
        finally:
            s.close()
    finally:
        os.close(w)
        e.stop()


def case_sandbox_off():
    off, text = h.version_says_sandbox_off()
    h.check(off, "built with -DECHOD_SANDBOX=OFF but --version says: %r"
            % text)


if __name__ == "__main__":
    h.main(globals())
