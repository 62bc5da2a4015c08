#!/usr/bin/env python3
"""echod --inetd (SPEC section 7) under the programs that run it: tcpserver
(ucspi-tcp), openbsd-inetd and systemd-socket-activate --inetd; usage
errors; logs kept off the connection (to syslog when stderr is the
client, as inetd sets it)."""
import os
import re
import shutil
import socket
import subprocess
import time
import harness as h


def need(prog):
    path = shutil.which(prog)
    h.check(path is not None, "%s is not installed (the test command "
            "installs it)" % prog)
    return path


def wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            h.check(time.monotonic() < deadline,
                    "nothing listens on port %d" % port)
            time.sleep(0.05)




def line_session(port, lines):
    """Send lines, read their echo, half-close; returns what came back
    and the client's port."""
    s = h.connect(port)
    try:
        cp = h.cport(s)
        data = b"".join(lines)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return h.recv_all(s), cp
    finally:
        s.close()


def case_tcpserver():
    """tcpserver accepts, echod -i serves fd 0 as a forked child would
    (line mode, the accept/close lines with the client's real address on
    tcpserver's stderr), one process per connection, several at once."""
    tcpserver = need("tcpserver")
    port = h.free_port()
    p = h.popen([tcpserver, "-q", "-H", "-R", "127.0.0.1", str(port)] +
                h.echod_argv(["-i", "-m", "line", "--max-msg", "8"]),
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        socks = [h.connect(port) for _ in range(3)]
        for i, s in enumerate(socks):
            s.sendall(b"hi %d\n" % i)
        for i, s in enumerate(socks):
            h.eq(h.recv_exact(s, 5), b"hi %d\n" % i, "echo %d" % i)
        got, cp = line_session(port, [b"short\n", b"x" * 20 + b"\n",
                                      b"tail"])
        h.eq(got, b"short\nERR too long\ntail", "line mode, --max-msg")
        for s in socks:
            s.close()
        time.sleep(0.5)
        h.terminate(p)
        err = p.stderr.read().decode()
        h.log(err)
        h.check(re.search(r"echod\[\d+\]: accept 127\.0\.0\.1:%d$" % cp,
                          err, re.M), "no accept line for port %d" % cp)
        h.check(re.search(r"close 127\.0\.0\.1:%d in=%d out=%d .*"
                          r"reason=eof$" % (cp, 31, 23), err, re.M),
                "no close line for port %d: %s" % (cp, err))
        # wait_port's probe, the three held ones, the line session
        h.eq(len(re.findall(r"\]: close ", err)), 5, "close lines")
    finally:
        h.terminate(p)


def case_inetd_proxy():
    """--inetd behind a balancer: the same session reads the PROXY header
    (one more caller of the same code): the accept line names the client
    the header names, the header is not echoed, the bytes after it in the
    same segment are; with no parent, echod -i itself closes a peer
    outside --proxy-from, before reading a byte."""
    tcpserver = need("tcpserver")
    port = h.free_port()
    p = h.popen([tcpserver, "-q", "-H", "-R", "127.0.0.1", str(port)] +
                h.echod_argv(["-i", "--proxy-protocol", "any",
                              "--proxy-from", "127.0.0.0/30"]),
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        hdr = b"PROXY TCP4 203.0.113.7 127.0.0.1 41000 7\r\n"
        got, cp = line_session(port, [hdr + b"hello\n"])
        h.eq(got, b"hello\n", "the bytes after the header, not the header")
        s = h.connect(port, bind="127.0.0.9")
        cp9 = h.cport(s)
        try:
            s.sendall(hdr + b"no\n")
            h.eq(h.recv_all(s), b"", "an untrusted peer gets nothing")
        except ConnectionResetError:
            pass
        finally:
            s.close()
        time.sleep(0.5)
        h.terminate(p)
        err = p.stderr.read().decode()
        h.log(err)
        h.check(re.search(r"accept 203\.0\.113\.7:41000 via "
                          r"127\.0\.0\.1:%d$" % cp, err, re.M),
                "no 'accept ... via' line for port %d" % cp)
        h.check(re.search(r"close 203\.0\.113\.7:41000 in=6 out=6 .*"
                          r"reason=eof$", err, re.M), "no close line")
        h.check(re.search(r"reject 127\.0\.0\.9:%d "
                          r"reason=untrusted-proxy$" % cp9, err, re.M),
                "no reject line for the untrusted peer")
        h.check(not re.search(r"(accept|close) 127\.0\.0\.9:%d" % cp9,
                              err), "the untrusted peer was served")
    finally:
        h.terminate(p)


def case_socket_activate():
    """systemd's Accept=yes, as systemd-socket-activate --inetd runs it:
    fd 0 (and 1) the connection, echod -i serves it raw, 1 MB intact."""
    ssa = need("systemd-socket-activate")
    port = h.free_port()
    p = h.popen([ssa, "--accept", "--inetd", "-l",
                 "127.0.0.1:%d" % port] +
                h.echod_argv(["-i"]), stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        data = h.pattern(1 << 20, 3)
        s = h.connect(port)
        try:
            got = bytearray()
            s.setblocking(False)
            sent = 0
            deadline = time.monotonic() + h.T(20)
            while len(got) < len(data):
                h.check(time.monotonic() < deadline, "echo stalled")
                if sent < len(data):
                    try:
                        sent += s.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                try:
                    b = s.recv(65536)
                    h.check(b != b"", "EOF after %d bytes" % len(got))
                    got += b
                except BlockingIOError:
                    time.sleep(0.001)
            h.eq(bytes(got), data, "1 MB echoed")
        finally:
            s.close()
    finally:
        h.terminate(p)


SYSLOG_WRAP = r"""
set -e
mount -t tmpfs -o mode=0755 tmpfs /dev
mknod -m 666 /dev/null c 1 3
touch /dev/log
mount --bind "$1" /dev/log
shift
exec "$@"
"""


def case_inetd_syslog():
    """openbsd-inetd hands echod the connection as fds 0, 1 and 2: the
    client gets its echo and not one byte of log; the accept and close
    lines arrive at syslog (facility daemon, ident echod), here a socket
    bound over /dev/log in a private mount namespace."""
    inetd = need("inetd")
    unshare = need("unshare")
    port = h.free_port()
    logsock = os.path.join(h.TMPDIR, "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(logsock)
    os.chmod(logsock, 0o666)
    rx.settimeout(h.T(5))
    conf = os.path.join(h.TMPDIR, "inetd.conf")
    with open(conf, "w") as f:
        f.write("127.0.0.1:%d stream tcp nowait root %s echod %s\n" % (
            port, h.ECHOD, " ".join(["-i", "-m", "line"])))
    p = h.popen([unshare, "-m", "--propagation", "private", "sh", "-c",
                 SYSLOG_WRAP, "wrap", logsock, inetd, "-d", conf],
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        time.sleep(0.3)
        while True:  # the probe connection of wait_port
            try:
                rx.settimeout(0.5)
                rx.recv(4096)
            except socket.timeout:
                break
        rx.settimeout(h.T(5))
        got, cp = line_session(port, [b"one\n", b"two\n"])
        h.eq(got, b"one\ntwo\n", "echo, and nothing else, to the client")
        msgs = []
        deadline = time.monotonic() + h.T(5)
        while not any(" close " in m for m in msgs):
            h.check(time.monotonic() < deadline,
                    "no close line at syslog: %r" % msgs)
            msgs.append(rx.recv(4096).decode())
        h.log("syslog: %r" % msgs)
        mine = [m for m in msgs if ":%d" % cp in m]
        h.check(any(re.match(r"<30>echod\[\d+\]: accept 127\.0\.0\.1:%d$"
                             % cp, m) for m in mine),
                "accept line (daemon.info) missing: %r" % msgs)
        h.check(any(re.match(r"<30>echod\[\d+\]: close 127\.0\.0\.1:%d "
                             r"in=8 out=8 .*reason=eof$" % cp, m)
                    for m in mine), "close line missing: %r" % msgs)
    finally:
        h.terminate(p)
        rx.close()


def case_syslog_standalone():
    """--syslog for the listening server: the parent's lines and its
    children's go to /dev/log as datagrams (facility daemon: notice for
    "listening on", info for accept/close), nothing to stderr."""
    unshare = need("unshare")
    port = h.free_port()
    logsock = os.path.join(h.TMPDIR, "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(logsock)
    rx.settimeout(h.T(5))
    p = h.popen([unshare, "-m", "--propagation", "private", "sh", "-c",
                 SYSLOG_WRAP, "wrap", logsock] +
                h.echod_argv(["--syslog", "-p", str(port), "-b",
                              "127.0.0.1"], use_vg=False),
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        msgs = [rx.recv(4096).decode()]
        h.check(re.match(r"<29>echod\[\d+\]: listening on 127\.0\.0\.1:%d$"
                         % port, msgs[0]), "first line: %r" % msgs)
        got, cp = line_session(port, [b"syslog\n"])
        h.eq(got, b"syslog\n", "echo")
        deadline = time.monotonic() + h.T(5)
        while not any("close 127.0.0.1:%d " % cp in m for m in msgs):
            h.check(time.monotonic() < deadline, "no close line: %r" % msgs)
            msgs.append(rx.recv(4096).decode())
        h.check(any(re.match(r"<30>echod\[\d+\]: accept 127\.0\.0\.1:%d$"
                             % cp, m) for m in msgs), "accept: %r" % msgs)
        h.terminate(p)
        h.eq(p.stderr.read(), b"", "nothing on stderr")
    finally:
        h.terminate(p)
        rx.close()


def case_inetd_no_syslog():
    """stderr is the connection and there is no syslog: the logs are
    dropped, the client still gets exactly its echo."""
    inetd = need("inetd")
    unshare = need("unshare")
    port = h.free_port()
    conf = os.path.join(h.TMPDIR, "inetd.conf")
    with open(conf, "w") as f:
        f.write("127.0.0.1:%d stream tcp nowait root %s echod -i -v\n"
                % (port, h.ECHOD))
    wrap = "set -e; mount -t tmpfs tmpfs /dev; mknod -m 666 /dev/null " \
           "c 1 3; exec \"$@\""
    p = h.popen([unshare, "-m", "--propagation", "private", "sh", "-c",
                 wrap, "wrap", inetd, "-d", conf],
                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        data = h.pattern(100000, 9)
        s = h.connect(port)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            h.eq(h.recv_all(s), data, "raw echo, no log bytes mixed in")
        finally:
            s.close()
    finally:
        h.terminate(p)


def case_inetd_sandboxed():
    """The process serving an inetd connection is confined as a child is:
    seccomp filter, uid 65534 (root started it), no capabilities."""
    tcpserver = need("tcpserver")
    port = h.free_port()
    p = h.popen([tcpserver, "-q", "-H", "-R", "127.0.0.1", str(port)] +
                h.echod_argv(["-i"], use_vg=False), stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL)
    try:
        wait_port(port, h.T(5))
        s = h.connect(port)
        try:
            s.sendall(b"x")
            h.eq(h.recv_exact(s, 1), b"x", "echo")
            # The probe connection's echod may still be leaving.
            deadline = time.monotonic() + h.T(5)
            while True:
                kids = [pid for pid, st in h.children(p.pid) if st != "Z"]
                if len(kids) <= 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            h.eq(len(kids), 1, "one echod under tcpserver")
            st = h.proc_status(kids[0])
            h.log("%r" % {k: st.get(k) for k in
                          ("Seccomp", "Uid", "CapEff", "NoNewPrivs")})
            h.eq(st.get("Seccomp"), "2", "seccomp filter mode")
            if os.geteuid() == 0:
                h.eq(st["Uid"].split()[0], "65534", "uid")
            h.eq(st.get("CapEff"), "0000000000000000", "capabilities")
        finally:
            s.close()
    finally:
        h.terminate(p)


def case_inetd_usage():
    """--inetd with a listening option, or with fd 0 that is not a
    connected TCP socket (a file, a listening socket), is a usage error:
    status 2, a message, nothing served."""
    for extra in (["-p", "7"], ["-b", "127.0.0.1"], ["-c", "5"],
                  ["--max-per-ip", "2"], ["--backlog", "9"],
                  ["--shutdown-timeout", "1"]):
        r = h.run_echod(["-i"] + extra)
        h.eq(r.returncode, 2, "status with %r" % extra)
        h.check(b"cannot be used with --inetd" in r.stderr,
                "message for %r: %r" % (extra, r.stderr))
    r = h.run_echod(["-i"])
    h.eq(r.returncode, 2, "fd 0 /dev/null")
    h.check(b"fd 0 is not a connected TCP socket" in r.stderr, r.stderr)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    try:
        r = subprocess.run(h.echod_argv(["-i"]), stdin=ls.fileno(),
                           capture_output=True, timeout=h.T(10))
        h.eq(r.returncode, 2, "fd 0 a listening socket")
    finally:
        ls.close()


if __name__ == "__main__":
    h.main(globals())
