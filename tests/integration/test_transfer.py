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
