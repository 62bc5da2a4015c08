"""Bulk transfer and half-close (SPEC section 3)."""

import hashlib
import os
import socket
import threading
import time

import harness as h


def _stream(port, total, block, shut=True):
    """Send total bytes from one thread while another reads the echo;
    returns (sha256 sent, sha256 received, bytes received, seconds)."""
    s = h.connect(port)
    sent = hashlib.sha256()
    recv = hashlib.sha256()
    got = [0]
    err = []
    base = os.urandom(block)

    def sender():
        try:
            off = 0
            i = 0
            while off < total:
                n = min(block, total - off)
                # A per-block counter keeps the stream from being periodic.
                chunk = i.to_bytes(8, "big") + base[8:n] if n >= 8 \
                    else base[:n]
                s.sendall(chunk)
                sent.update(chunk)
                off += n
                i += 1
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError as ex:
            err.append(ex)

    t0 = time.monotonic()
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        s.settimeout(h.T(30))
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            recv.update(chunk)
            got[0] += len(chunk)
            if not shut and got[0] >= total:
                break
    finally:
        t.join(h.T(30))
        s.close()
    h.check(not t.is_alive(), "sender thread did not finish")
    h.check(not err, "sender failed: %s" % err)
    return sent.hexdigest(), recv.hexdigest(), got[0], \
        time.monotonic() - t0


def case_transfer_100mb():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        total = 100 * 1024 * 1024
        a, b, n, secs = _stream(e.port, total, 256 * 1024)
        h.eq(n, total, "bytes echoed")
        h.eq(b, a, "sha256 of the echo")
        h.log("100 MiB echoed in %.2fs (%.0f MB/s each way)" %
              (secs, total / secs / 1e6))
        e.wait_log(r"close 127\.0\.0\.1:\d+ in=%d out=%d .*reason=eof" %
                   (total, total), h.T(5))
    finally:
        e.stop()


def case_rr_two_calls():
    """Request/response at a blocking server's floor (issue 12): once a
    connection is served, each 64-byte message costs its child one read()
    and one write(), and waiting for the next message no call of its own
    (no ppoll, no read that finds nothing). Counted with strace attached
    to the child over 200 round trips."""
    import shutil
    import signal
    import subprocess
    h.check(shutil.which("strace") is not None, "strace is not installed")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    st = None
    try:
        s = h.connect(e.port)
        msg = b"m" * 63 + b"\n"
        s.sendall(msg)
        h.eq(h.recv_exact(s, len(msg)), msg, "first echo")
        child = e.wait_children(1, h.T(5))[0]
        log = os.path.join(h.TMPDIR, "rr.strace")
        st = subprocess.Popen(["strace", "-qq", "-o", log, "-p", str(child)],
                              stderr=subprocess.PIPE)
        # strace is attached once the child's blocked read shows up.
        deadline = time.monotonic() + h.T(10)
        while True:
            try:
                with open(log) as f:
                    if "read(" in f.read():
                        break
            except OSError:
                pass
            h.check(time.monotonic() < deadline, "strace did not attach")
            time.sleep(0.02)
        n = 200
        for i in range(n):
            s.sendall(msg)
            h.eq(h.recv_exact(s, len(msg)), msg, "echo %d" % i)
        time.sleep(0.1)
        st.send_signal(signal.SIGINT)
        st.wait(h.T(10))
        with open(log) as f:
            lines = [ln for ln in f if "(" in ln and not ln.startswith("---")]
        # Attaching interrupts the blocked read(), which the child then
        # enters again (resetting its timeout once): count from the first
        # message read.
        first = next(i for i, ln in enumerate(lines)
                     if ln.startswith("read(") and ln.rstrip().endswith(
                         "= %d" % len(msg)))
        calls = [ln.split("(")[0] for ln in lines[first:]]
        counts = {c: calls.count(c) for c in set(calls)}
        h.log("child's calls over %d round trips: %r" % (n, counts))
        # setsockopt: the idle timeout is re-armed when more than
        # TIMEO_LATE_MS (conn.c) passed between an echo and the next
        # read, which a preemption on a loaded machine can cause now and
        # then; a message costs no call of its own for it.
        h.check(set(counts) <= {"read", "write", "setsockopt"},
                "calls other than read and write: %r" % counts)
        h.check(counts.get("setsockopt", 0) <= n // 50,
                "the idle timeout re-armed for more than 1 message in 50: "
                "%r" % counts)
        h.check(counts.get("write", 0) == n and
                counts.get("read", 0) <= n + 1,
                "expected %d writes and at most %d reads: %r"
                % (n, n + 1, counts))
        s.close()
    finally:
        if st is not None and st.poll() is None:
            st.kill()
            st.wait()
        e.stop()


def case_raw_bulk_spliced():
    """Raw bulk echo without copies (issue 12): once a read fills the
    child's buffer, the rest of the connection moves socket -> pipe ->
    socket with splice(); 20 MB come back intact, in= and out= count
    them, the pipe is 256 KiB (one F_SETPIPE_SZ), and the child makes far
    fewer read()/write() calls than 64 KiB pieces would need. strace -f
    follows the child from its fork."""
    import hashlib
    import shutil
    import signal
    import subprocess
    h.check(shutil.which("strace") is not None, "strace is not installed")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    st = None
    try:
        log = os.path.join(h.TMPDIR, "bulk.strace")
        st = subprocess.Popen(["strace", "-f", "-qq", "-o", log, "-e",
                               "trace=read,write,splice,pipe2,fcntl",
                               "-p", str(e.pid)], stderr=subprocess.PIPE)
        time.sleep(0.5)  # attached (no call of the parent is traced)
        total = 20 * 1024 * 1024
        data = h.pattern(1 << 20, 7)
        s = h.connect(e.port)
        cp = h.cport(s)
        got = hashlib.sha256()
        n_got = [0]

        def reader():
            while True:
                b = s.recv(1 << 16)
                if not b:
                    return
                got.update(b)
                n_got[0] += len(b)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        want = hashlib.sha256()
        for _ in range(total // len(data)):
            s.sendall(data)
            want.update(data)
        s.shutdown(socket.SHUT_WR)
        t.join(h.T(30))
        h.check(not t.is_alive(), "echo did not end")
        h.eq(n_got[0], total, "bytes echoed")
        h.eq(got.hexdigest(), want.hexdigest(), "sha256 of the echo")
        s.close()
        line = e.close_line(cp, h.T(5))
        h.check(" in=%d out=%d " % (total, total) in line, line)
        st.send_signal(signal.SIGINT)
        st.wait(h.T(10))
        st = None
        calls = {}
        with open(log) as f:
            for ln in f:
                name = ln.split(None, 1)[1].split("(")[0] if " " in ln \
                    else ""
                calls[name] = calls.get(name, 0) + 1
        h.log("child's calls: %r" % calls)
        h.eq(calls.get("pipe2", 0), 1, "one pipe")
        with open(log) as f:
            sized = [ln for ln in f if "F_SETPIPE_SZ" in ln]
        h.check(len(sized) == 1 and sized[0].rstrip().endswith(
            "= %d" % (256 << 10)), "the pipe not sized 256 KiB: %r" % sized)
        h.check(calls.get("splice", 0) >= 2, "no splice: %r" % calls)
        h.check(calls.get("read", 0) + calls.get("write", 0) < 40,
                "bulk still copied through read/write: %r" % calls)
    finally:
        if st is not None and st.poll() is None:
            st.kill()
            st.wait()
        e.stop()


def case_half_close():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        # Small enough to sit in socket buffers: send all, shut down the
        # sending side, and only then start reading.
        data = h.pattern(48 * 1024, 3)
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
            try:
                got = h.recv_all(s)
            except ConnectionResetError:
                raise h.TestFailure("reset instead of EOF after half-close")
            h.eq(got, data, "echo after half-close")
        finally:
            s.close()
        h.eq(e.wait_close(cp), "eof", "close reason")
        # Larger than every buffer on the path: reading concurrently.
        a, b, n, _ = _stream(e.port, 8 * 1024 * 1024, 100000)
        h.eq(n, 8 * 1024 * 1024, "bytes echoed after half-close")
        h.eq(b, a, "sha256 of the echo")
    finally:
        e.stop()


if __name__ == "__main__":
    h.main(globals())
