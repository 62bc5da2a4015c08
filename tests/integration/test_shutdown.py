"""SIGTERM with live connections (SPEC section 3)."""

import os
import signal
import socket
import threading
import time

import harness as h


def case_sigterm_drain():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--shutdown-timeout", "5"])
    port = e.port
    s = h.connect(port)
    cp = h.cport(s)
    try:
        s.sendall(b"warm up\n")
        h.eq(h.recv_exact(s, 8), b"warm up\n", "echo")
        # Echoes in flight: sent, not yet read by the client.
        data = h.pattern(64 * 1024, 5)
        s.sendall(data)
        time.sleep(0.3)
        mk = e.mark()
        t0 = time.monotonic()
        e.stopped = True  # stopped by hand below
        os.kill(e.pid, signal.SIGTERM)
        # The listener is closed at once.
        deadline = time.monotonic() + h.T(2)
        probes = 0
        while True:
            try:
                c = h.connect(port, timeout=h.T(0.25))
                c.close()
                probes += 1  # raced the signal: may have been accepted
            except ConnectionRefusedError:
                break
            except (ConnectionResetError, socket.timeout):
                # Queued as the listener closed (reset), or a SYN the
                # closing listener dropped (the client would retry).
                probes += 1
            h.check(time.monotonic() < deadline,
                    "new connections still accepted after SIGTERM")
            time.sleep(0.02)
        try:
            got = h.recv_all(s, h.T(6))
        except ConnectionResetError:
            raise h.TestFailure("reset instead of the owed echoes and EOF")
        h.eq(got, data, "echoes owed at SIGTERM, then EOF")
        s.close()  # our EOF ends echod's lingering close
        rc = e.wait_exit(h.T(6))
        secs = time.monotonic() - t0
        h.eq(rc, 0, "exit status after SIGTERM")
        h.log("exited %.2fs after SIGTERM" % secs)
        h.check(secs < h.T(5.5), "exit took %.2fs, shutdown-timeout is 5s"
                % secs)
        e.reader.join(h.T(5))
        h.eq(e.wait_close(cp, h.T(1), mk), "shutdown", "close reason")
        st = e.find(r"stats (.*)$", mk)
        h.check(st, "no final stats line")
        kv = h.parse_kv(st[-1].group(1))
        acc = h.stat_int(kv, "accepted")
        h.check(1 <= acc <= 1 + probes, "final accepted counter %d with "
                "%d racing probes" % (acc, probes))
        h.check(not h.stray_children(), "children left behind")
        # The port can be bound again immediately by a new echod.
        e2 = h.Echod(["-p", str(port), "-b", "127.0.0.1"])
        try:
            h.eq(e2.port, port, "port of the restarted echod")
            h.roundtrip(port, b"reborn\n")
        finally:
            e2.stop()
    finally:
        s.close()


def case_sigterm_kill():
    # --shutdown-timeout 1 with a client that never reads: the child cannot
    # flush, is SIGKILLed, and echod still exits 0 in about a second.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--shutdown-timeout", "1"])
    s = h.connect(e.port)
    try:
        s.setblocking(False)
        sent = 0
        block = b"K" * 65536
        deadline = time.monotonic() + h.T(5)
        stuck_since = None
        while time.monotonic() < deadline:
            try:
                sent += s.send(block)
                stuck_since = None
            except BlockingIOError:
                stuck_since = stuck_since or time.monotonic()
                if time.monotonic() - stuck_since > 0.5:
                    break
                time.sleep(0.02)
        h.log("client stuck after %d bytes" % sent)
        kids = e.wait_children(1, h.T(2))
        t0 = time.monotonic()
        e.stopped = True
        os.kill(e.pid, signal.SIGTERM)
        rc = e.wait_exit(h.T(4))
        secs = time.monotonic() - t0
        h.log("exited %.2fs after SIGTERM" % secs)
        h.eq(rc, 0, "exit status")
        h.check(secs >= 0.8, "exited after %.2fs: did not wait for the "
                "child" % secs)
        h.check(secs <= h.T(2.5), "exit took %.2fs with --shutdown-timeout"
                " 1" % secs)
        deadline = time.monotonic() + h.T(2)
        while any(h.proc_stat(k) and h.proc_stat(k)[0] != "Z" for k in kids):
            h.check(time.monotonic() < deadline, "child still alive")
            time.sleep(0.05)
        h.check(not h.stray_children(), "children left behind")
        e.reader.join(h.T(5))
        h.check(e.find(r"stats "), "no final stats line")
    finally:
        s.close()


def case_sigterm_under_flood():
    # Clients that keep the listen backlog non-empty must not starve the
    # signal: SIGTERM still closes the listener and echod exits promptly,
    # and children are still reaped while the flood goes on.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    stop = threading.Event()
    counts = [0, 0]  # connections made, refused

    def flooder():
        end = time.monotonic() + h.T(8)
        while not stop.is_set() and time.monotonic() < end:
            try:
                c = socket.create_connection(("127.0.0.1", e.port),
                                             timeout=h.T(2))
                c.close()
                counts[0] += 1
            except ConnectionRefusedError:
                counts[1] += 1
                time.sleep(0.01)
            except OSError:
                time.sleep(0.01)

    ts = [threading.Thread(target=flooder, daemon=True) for _ in range(6)]
    for t in ts:
        t.start()
    try:
        time.sleep(1.5)
        zombies = sum(1 for _, st in e.children() if st == "Z")
        live = len(e.live_children())
        h.log("after 1.5s of flood: %d connections, %d zombies, %d live "
              "children" % (counts[0], zombies, live))
        t0 = time.monotonic()
        e.stopped = True
        os.kill(e.pid, signal.SIGTERM)
        rc = e.wait_exit(h.T(6))
        secs = time.monotonic() - t0
        h.log("exited %.2fs after SIGTERM under flood" % secs)
        h.eq(rc, 0, "exit status")
        h.check(secs < h.T(2), "SIGTERM took %.2fs under a connection "
                "flood" % secs)
        h.check(zombies <= 50, "%d zombies during the flood: children "
                "not reaped while connections keep coming" % zombies)
    finally:
        stop.set()
        for t in ts:
            t.join(h.T(5))


def case_sigint():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    h.roundtrip(e.port, b"x")
    e.stopped = True
    os.kill(e.pid, signal.SIGINT)
    h.eq(e.wait_exit(h.T(5)), 0, "exit status after SIGINT")


if __name__ == "__main__":
    h.main(globals())
