#!/usr/bin/env python3
"""echod under systemd's protocols (SPEC section 7): socket activation
(LISTEN_FDS, Accept=no) as systemd-socket-activate passes sockets, and
readiness (NOTIFY_SOCKET: READY=1, STATUS=, WATCHDOG=1, STOPPING=1)."""
import os
import re
import shutil
import socket
import subprocess
import time
import harness as h


def read_lines(p, n, timeout):
    """The first n stderr lines of p (bounded)."""
    lines = []
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stderr.fileno(), False)
    buf = b""
    while len(lines) < n and time.monotonic() < deadline:
        try:
            b = p.stderr.read()
        except (BlockingIOError, TypeError):
            b = None
        if b:
            buf += b
            *done, buf = buf.split(b"\n")
            lines += [x.decode() for x in done]
        else:
            time.sleep(0.02)
    return lines




def case_socket_activation():
    """systemd-socket-activate passes two listeners (IPv4 and IPv6):
    echod serves both, logs each as listening, binds nothing of its own,
    and its children do not see LISTEN_FDS."""
    ssa = shutil.which("systemd-socket-activate")
    h.check(ssa is not None, "systemd-socket-activate is not installed")
    p4, p6 = h.free_port(), h.free_port("::1")
    p = h.popen([ssa, "-l", "127.0.0.1:%d" % p4, "-l", "[::1]:%d" % p6] +
                h.echod_argv(["-m", "line"]), stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL)
    try:
        # systemd-socket-activate starts the service at the first
        # connection, as systemd does; the first round trip waits for it.
        deadline = time.monotonic() + h.T(10)
        while True:
            try:
                h.roundtrip(p4, b"first\n")
                break
            except OSError:
                h.check(time.monotonic() < deadline, "no listener")
                time.sleep(0.05)
        lines = read_lines(p, 4, h.T(10))
        h.log("\n".join(lines))
        listening = [ln for ln in lines if "listening on" in ln]
        h.check(any(ln.endswith("listening on 127.0.0.1:%d" % p4)
                    for ln in listening), "v4 listener: %r" % lines)
        h.check(any(ln.endswith("listening on [::1]:%d" % p6)
                    for ln in listening), "v6 listener: %r" % lines)
        for host, port in (("127.0.0.1", p4), ("::1", p6)):
            for i in range(3):
                h.roundtrip(port, b"via %s %d\n" % (host.encode(), i),
                            host=host)  # checks the echo
        # echod did not open a socket of its own on the default port
        out = subprocess.run(["ss", "-ltnp"], capture_output=True,
                             text=True).stdout
        mine = [ln for ln in out.splitlines() if "pid=%d," % p.pid in ln]
        h.eq(len(mine), 2, "listeners held by echod: %r" % mine)
    finally:
        h.terminate(p)


def case_socket_activation_errors():
    """A passed fd that is not a listening TCP socket, or -p with passed
    sockets, is a usage error (status 2) with a message."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    conn = socket.socket()  # not listening
    try:
        for fd, extra, want in (
                (conn, [], "passed fd 3 is not a listening TCP socket"),
                (ls, ["-p", "0"], "-p and -b cannot be used with sockets")):
            os.dup2(fd.fileno(), 3, inheritable=True)
            try:
                r = subprocess.run(
                    ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"',
                     "sh"] + h.echod_argv(extra, use_vg=False),
                    pass_fds=(3,), capture_output=True, timeout=h.T(10),
                    stdin=subprocess.DEVNULL)
            finally:
                os.close(3)
            h.eq(r.returncode, 2, "status for %r" % want)
            h.check(want.encode() in r.stderr, "message %r: %r"
                    % (want, r.stderr))
    finally:
        ls.close()
        conn.close()


def notify_run(addr, bind_path, env_extra, seconds, args=()):
    """echod with NOTIFY_SOCKET=addr; returns the datagrams received
    within `seconds` and after SIGTERM, with their arrival times."""
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(bind_path)
    rx.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=addr, **env_extra)
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"] + list(args), env=env)
    got = []
    t0 = time.monotonic()
    try:
        h.roundtrip(e.port, b"ready\n")  # checks the echo
        while time.monotonic() - t0 < seconds:
            try:
                got.append((time.monotonic() - t0, rx.recv(512).decode()))
            except socket.timeout:
                pass
        e.stop()
        while True:
            try:
                got.append((time.monotonic() - t0, rx.recv(512).decode()))
            except socket.timeout:
                break
    finally:
        e.stop()
        rx.close()
    return got


def case_notify():
    """NOTIFY_SOCKET (a path): READY=1 once listening, STATUS= with the
    counts every --metrics-interval, WATCHDOG=1 every half WATCHDOG_USEC,
    STOPPING=1 when the drain starts, nothing after."""
    path = os.path.join(h.TMPDIR, "notify.sock")
    got = notify_run(path, path, {"WATCHDOG_USEC": "600000"}, 2.5,
                     ["--metrics-interval", "1"])
    h.log("%r" % got)
    msgs = [m for _, m in got]
    h.check(msgs and msgs[0].startswith("READY=1"), "READY=1 first: %r"
            % msgs)
    status = [m for m in msgs if m.startswith("STATUS=") and
              "accepted" in m]
    h.check(len(status) >= 2, "STATUS= each second: %r" % msgs)
    h.check(any(re.match(r"STATUS=0 active, 1 accepted$", m)
                for m in status), "counts in STATUS=: %r" % status)
    dogs = [t for t, m in got if m == "WATCHDOG=1"]
    h.check(len(dogs) >= 6, "WATCHDOG=1 every 0.3 s: %r" % got)
    h.eq(msgs[-1], "STOPPING=1", "last message")


def case_notify_abstract():
    """NOTIFY_SOCKET=@name is an abstract socket; WATCHDOG_PID of another
    process means no watchdog."""
    name = "echod-test-%d" % os.getpid()
    got = notify_run("@" + name, "\0" + name,
                     {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, 1.0)
    msgs = [m for _, m in got]
    h.log("%r" % msgs)
    h.check(msgs and msgs[0].startswith("READY=1"), "READY=1: %r" % msgs)
    h.check("WATCHDOG=1" not in msgs, "watchdog for another pid: %r"
            % msgs)
    h.eq(msgs[-1], "STOPPING=1", "last message")


if __name__ == "__main__":
    h.main(globals())
