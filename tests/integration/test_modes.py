"""echod's three protocol modes end to end (SPEC sections 2 and 3)."""

import socket
import struct
import subprocess
import threading
import time

import harness as h


def run_tool(argv, data, timeout):
    p = h.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise h.TestFailure("%s did not finish within %.1fs" %
                            (argv[0], timeout))
    h.check(p.returncode == 0, "%s exited %d: %r" %
            (" ".join(argv), p.returncode, err[-300:]))
    return out


# --- raw ----------------------------------------------------------------------

def case_raw_nc():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        data = b"".join(b"line %d of the nc round trip\n" % i
                        for i in range(2000))
        out = run_tool(["nc", "-N", "127.0.0.1", str(e.port)], data,
                       h.T(20))
        h.eq(out, data, "nc -N echo")
        e.wait_log(r"close 127\.0\.0\.1:\d+ .*reason=eof", h.T(5))
    finally:
        e.stop()


def case_raw_binary():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        data = bytes(range(256)) * 64 + b"\0" * 1000 + h.pattern(30000)
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            s.sendall(data)
            h.eq(h.recv_exact(s, len(data)), data, "binary echo")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        line = e.close_line(cp)
        h.check("in=%d" % len(data) in line and "out=%d" % len(data) in line
                and "reason=eof" in line, "close line: %r" % line)
    finally:
        e.stop()


def case_raw_socat():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        data = h.pattern(200000, seed=7)
        out = run_tool(["socat", "-t", str(int(h.T(5))), "-",
                        "TCP:127.0.0.1:%d" % e.port], data, h.T(20))
        h.eq(out, data, "socat echo")
    finally:
        e.stop()


def case_raw_nul_strings():
    # The classic client writes a C string with its terminating NUL and
    # reads the same number of bytes back.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        s = h.connect(e.port)
        try:
            for word in (b"hello", b"", b"a longer string, with spaces"):
                msg = word + b"\0"
                s.sendall(msg)
                h.eq(h.recv_exact(s, len(msg)), msg, "NUL string echo")
        finally:
            s.close()
    finally:
        e.stop()


# --- line ---------------------------------------------------------------------

def _line_roundtrips(args, delim):
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line"] + args)
    try:
        s = h.connect(e.port)
        try:
            for payload in (b"one", b"", b"two three", b"x" * 1000):
                msg = payload + delim
                s.sendall(msg)
                h.eq(h.recv_exact(s, len(msg)), msg, "line echo")
            # A split message is echoed only once complete.
            s.sendall(b"par")
            h.expect_silence(s, 0.3)
            s.sendall(b"tial" + delim + b"next" + delim)
            want = b"partial" + delim + b"next" + delim
            h.eq(h.recv_exact(s, len(want)), want, "reassembled lines")
            # Other bytes (including LF when it is not the delimiter) are
            # just payload.
            if delim != b"\n":
                msg = b"a\nb\rc" + delim
                s.sendall(msg)
                h.eq(h.recv_exact(s, len(msg)), msg, "payload with LF")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
    finally:
        e.stop()


def case_line_lf():
    _line_roundtrips([], b"\n")


def case_line_nul():
    _line_roundtrips(["--delim", "nul"], b"\0")


def case_line_hex():
    _line_roundtrips(["--delim", "0x3b"], b";")


def case_line_char():
    _line_roundtrips(["--delim", ";"], b";")


def case_line_max_msg():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line",
                 "--max-msg", "100"])
    try:
        s = h.connect(e.port)
        try:
            exact = b"e" * 100 + b"\n"
            s.sendall(exact)
            h.eq(h.recv_exact(s, len(exact)), exact, "max-msg payload echo")
            # 101 bytes: one ERR reply, the rest of the line discarded,
            # even when it arrives in pieces.
            s.sendall(b"L" * 101)
            h.eq(h.recv_exact(s, 13), b"ERR too long\n", "over-long reply")
            s.sendall(b"M" * 5000)
            h.expect_silence(s, 0.3)
            s.sendall(b"MMM\nok\n")
            h.eq(h.recv_exact(s, 3), b"ok\n", "next message after ERR")
            # A second over-long line gets its own single reply.
            s.sendall(b"Z" * 300 + b"\n" + b"fine\n")
            want = b"ERR too long\nfine\n"
            h.eq(h.recv_exact(s, len(want)), want, "second ERR then echo")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
    finally:
        e.stop()


def case_line_tail():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line",
                 "--max-msg", "64"])
    try:
        s = h.connect(e.port)
        try:
            s.sendall(b"done\nunterminated tail")
            h.eq(h.recv_exact(s, 5), b"done\n", "complete line")
            h.expect_silence(s, 0.3)
            s.shutdown(socket.SHUT_WR)
            h.eq(h.recv_all(s), b"unterminated tail", "tail at half-close")
        finally:
            s.close()
    finally:
        e.stop()


# --- frame --------------------------------------------------------------------

def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def case_frame_ok():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame",
                 "--max-msg", "1000"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            frames = [frame(b"hello"), frame(b""), frame(b"\0" * 1000),
                      frame(h.pattern(999))]
            data = b"".join(frames)
            s.sendall(data)
            h.eq(h.recv_exact(s, len(data)), data, "frames echo")
            # A frame sent a byte at a time is echoed once, whole.
            f = frame(b"slow")
            for b in f[:-1]:
                s.sendall(bytes([b]))
            h.expect_silence(s, 0.3)
            s.sendall(f[-1:])
            h.eq(h.recv_exact(s, len(f)), f, "byte-by-byte frame")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        h.eq(e.wait_close(cp), "eof", "close reason")
    finally:
        e.stop()


def case_frame_too_large():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame",
                 "--max-msg", "1000"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            good = frame(b"a" * 1000) + frame(b"")
            s.sendall(good + struct.pack(">I", 1001) + b"x" * 10)
            h.eq(h.recv_all(s), good, "echo before the bad frame, then EOF")
        finally:
            s.close()
        h.eq(e.wait_close(cp), "protocol-error: frame too large",
             "close reason")
        h.roundtrip(e.port, frame(b"still alive"))
    finally:
        e.stop()


def case_frame_truncated():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            good = frame(b"complete")
            s.sendall(good + struct.pack(">I", 10) + b"half")
            h.eq(h.recv_exact(s, len(good)), good, "complete frame")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        h.eq(e.wait_close(cp), "protocol-error: truncated frame",
             "close reason")
        # Truncated inside the header as well.
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            s.sendall(b"\0\0")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        h.eq(e.wait_close(cp), "protocol-error: truncated frame",
             "close reason (partial header)")
    finally:
        e.stop()


def case_lingering_close():
    # The client keeps sending megabytes after a bad frame header; echod
    # must not answer with a reset that would destroy the echoes already in
    # the client's receive queue.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "frame",
                 "--max-msg", "4096"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        good = b"".join(frame(h.pattern(4096, i)) for i in range(8))
        sent_err = []

        def sender():
            try:
                s.sendall(good + struct.pack(">I", 0x7fffffff))
                block = b"J" * 65536
                for _ in range(64):  # 4 MiB of junk after the bad header
                    s.sendall(block)
            except OSError as ex:
                sent_err.append(ex)

        t = threading.Thread(target=sender, daemon=True)
        try:
            # The echoes pile up unread in our receive queue first.
            t.start()
            time.sleep(0.5)
            try:
                got = h.recv_all(s, h.T(10))
            except ConnectionResetError:
                raise h.TestFailure("connection reset: echoes lost")
            h.eq(got, good, "echoes before the protocol error, then EOF")
        finally:
            t.join(h.T(10))
            s.close()
        h.eq(e.wait_close(cp), "protocol-error: frame too large",
             "close reason")
    finally:
        e.stop()


if __name__ == "__main__":
    h.main(globals())
