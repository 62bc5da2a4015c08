"""Limits and resource exhaustion: zombies, connection limits, idle timeout,
a client that never reads, descriptor flood, fork failure (SPEC section 3)."""

import os
import re
import resource
import shutil
import socket
import tempfile
import threading
import time

import harness as h


def case_no_zombies():
    n = 200 if h.VALGRIND else 1000
    workers = 4
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    try:
        errors = []
        max_z = [0]
        done = threading.Event()

        def worker(k):
            try:
                for i in range(n // workers):
                    msg = b"conn %d.%d\n" % (k, i)
                    s = h.connect(e.port)
                    try:
                        s.sendall(msg)
                        h.eq(h.recv_exact(s, len(msg)), msg, "echo")
                    finally:
                        s.close()
            except Exception as ex:  # reported by the main thread
                errors.append(ex)

        def sampler():
            while not done.is_set():
                z = sum(1 for _, st in e.children() if st == "Z")
                max_z[0] = max(max_z[0], z)
                time.sleep(0.05)

        ts = [threading.Thread(target=worker, args=(k,), daemon=True)
              for k in range(workers)]
        smp = threading.Thread(target=sampler, daemon=True)
        t0 = time.monotonic()
        smp.start()
        for t in ts:
            t.start()
        for t in ts:
            t.join(h.T(120))
        done.set()
        smp.join(h.T(5))
        secs = time.monotonic() - t0
        h.check(not any(t.is_alive() for t in ts), "clients did not finish")
        h.check(not errors, "client errors: %s" % errors[:3])
        h.log("%d connections in %.2fs (%.0f/s); at most %d zombies seen" %
              (n, secs, n / secs, max_z[0]))
        deadline = time.monotonic() + h.T(2)
        while True:
            kids = e.children()
            if not kids:
                break
            h.check(time.monotonic() < deadline,
                    "children of echod left after the clients: %s" % kids)
            time.sleep(0.02)
        st = e.stats()
        h.eq(h.stat_int(st, "accepted"), n, "accepted counter")
        h.eq(h.stat_int(st, "active"), 0, "active counter")
        h.eq(h.stat_int(st, "fork_failures", "fork_failed", "forkfail"), 0,
             "fork failures")
        h.check(e.alive(), "echod died")
    finally:
        e.stop()


def case_max_conns():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-c", "2"])
    socks = []
    try:
        a = h.connect(e.port)
        socks.append(a)
        b = h.connect(e.port)
        socks.append(b)
        for s in (a, b):
            s.sendall(b"held\n")
            h.eq(h.recv_exact(s, 5), b"held\n", "echo on a held connection")
        e.wait_children(2, h.T(5), exact=True)
        # The third completes its handshake in the listen backlog but is
        # not served while two are open.
        c = h.connect(e.port)
        socks.append(c)
        c.sendall(b"third\n")
        h.expect_silence(c, h.T(1))
        h.eq(len(e.live_children()), 2, "children at the limit")
        a.close()
        h.eq(h.recv_exact(c, 6, h.T(5)), b"third\n",
             "echo once a slot is free")
        b.close()
        c.close()
        deadline = time.monotonic() + h.T(5)
        while e.live_children():
            h.check(time.monotonic() < deadline, "children did not exit")
            time.sleep(0.02)
        st = e.stats()
        h.eq(h.stat_int(st, "accepted"), 3, "accepted counter")
        h.check(h.stat_int(st, "deferred") >= 1,
                "deferred counter not raised: %s" % st)
        h.eq(h.stat_int(st, "peak"), 2, "peak counter")
    finally:
        for s in socks:
            s.close()
        e.stop()


def case_max_per_ip():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--max-per-ip", "2"])
    socks = []
    try:
        for _ in range(2):
            s = h.connect(e.port)
            socks.append(s)
            s.sendall(b"ok\n")
            h.eq(h.recv_exact(s, 3), b"ok\n", "echo under the per-ip limit")
        mk = e.mark()
        third = h.connect(e.port)
        socks.append(third)
        tp = h.cport(third)
        try:
            third.sendall(b"nope\n")
        except OSError:
            pass
        try:
            got = h.recv_all(third, h.T(5))
        except ConnectionResetError:
            got = b""
        h.eq(got, b"", "bytes echoed to the connection over the limit")
        m = e.wait_log(r"(?i)(per-ip|per ip|reject|limit).*127\.0\.0\.1|"
                       r"127\.0\.0\.1.*(per-ip|per ip|reject|limit)",
                       h.T(5), mk, what="log line of the rejected connection")
        h.log("rejection logged: %s" % m.string)
        # Another client address is counted separately.
        h.roundtrip(e.port, b"other address\n", bind="127.0.0.2")
        st = e.stats()
        h.eq(h.stat_int(st, "rejected", "rejected_per_ip", "per_ip"), 1,
             "per-ip rejection counter")
        # Once one of the two closes, 127.0.0.1 is served again.
        socks[0].close()
        deadline = time.monotonic() + h.T(5)
        while True:
            s = h.connect(e.port)
            s.sendall(b"x")
            try:
                if h.recv_exact(s, 1, h.T(0.5)) == b"x":
                    break
            except (h.TestFailure, ConnectionResetError):
                pass
            finally:
                s.close()
            h.check(time.monotonic() < deadline,
                    "127.0.0.1 not served after a slot was freed")
            time.sleep(0.1)
    finally:
        for s in socks:
            s.close()
        e.stop()


def case_idle_timeout():
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-t", "1"])
    try:
        idle = h.connect(e.port)
        busy = h.connect(e.port)
        ip, bp = h.cport(idle), h.cport(busy)
        try:
            idle.sendall(b"hi")
            h.eq(h.recv_exact(idle, 2), b"hi", "echo")
            t0 = time.monotonic()
            res = {}

            def wait_idle():
                try:
                    res["data"] = h.recv_all(idle, h.T(5))
                except Exception as ex:
                    res["err"] = ex
                res["t"] = time.monotonic() - t0

            t = threading.Thread(target=wait_idle, daemon=True)
            t.start()
            # Meanwhile a byte every 0.5 s for 3 s keeps the other alive.
            end = time.monotonic() + 3
            while time.monotonic() < end:
                busy.sendall(b".")
                h.eq(h.recv_exact(busy, 1, h.T(2)), b".", "trickle echo")
                time.sleep(0.5)
            t.join(h.T(5))
            h.check("err" not in res, "idle client: %s" % res.get("err"))
            h.eq(res.get("data"), b"", "bytes before the idle EOF")
            h.check(0.8 <= res["t"] <= h.T(2.5),
                    "idle connection closed after %.2fs, expected ~1s"
                    % res["t"])
            h.eq(e.wait_close(ip), "idle-timeout", "idle close reason")
            h.check(not e.find(r"close \S*:%d\b" % bp),
                    "trickling connection was closed")
            busy.sendall(b"still")
            h.eq(h.recv_exact(busy, 5), b"still", "trickler still served")
        finally:
            idle.close()
            busy.close()
        h.eq(e.wait_close(bp), "eof", "trickler close reason")
        st = e.stats()
        h.eq(h.stat_int(st, "idle_timeouts", "idle", "timeouts"), 1,
             "idle timeout counter")
    finally:
        e.stop()


def private_kb(pid):
    """Memory the process alone holds (smaps_rollup Private_Clean +
    Private_Dirty, kB): shared libraries and pages still shared with the
    parent since fork are not its cost. None once it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            return sum(int(ln.split()[1]) for ln in f
                       if ln.startswith(("Private_Clean:", "Private_Dirty:")))
    except (OSError, ValueError):
        return None


def case_noread():
    # A client that sends 50 MB and never reads costs bounded memory and
    # is closed by the idle timeout; others are served meanwhile.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-t", "2"])
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        # The child's own memory once it serves, before the flood.
        s.sendall(b"x")
        h.eq(h.recv_exact(s, 1), b"x", "first echo")
        base_priv = private_kb(e.wait_children(1, h.T(5))[0])
        progress = [0]
        stop = threading.Event()

        def sender():
            block = b"N" * 65536
            s.settimeout(0.2)
            while progress[0] < 50 * 1024 * 1024 and not stop.is_set():
                try:
                    progress[0] += s.send(block)
                except socket.timeout:
                    continue
                except OSError:
                    return

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            kids = e.wait_children(1, h.T(5))
            child = kids[0]
            # Wait until the sender is stuck (back-pressure reached us).
            last, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + h.T(10)
            max_rss = max_priv = 0
            while time.monotonic() < deadline:
                st = h.proc_status(child)
                if st:
                    max_rss = max(max_rss, int(st["VmRSS"].split()[0]))
                max_priv = max(max_priv, private_kb(child) or 0)
                if progress[0] != last:
                    last, stable_since = progress[0], time.monotonic()
                elif time.monotonic() - stable_since > 0.5:
                    break
                time.sleep(0.05)
            h.log("client stuck after sending %d bytes; child VmRSS max "
                  "%d kB, private %d kB before the flood, %d kB max"
                  % (progress[0], max_rss, base_priv or 0, max_priv))
            h.check(progress[0] < 50 * 1024 * 1024,
                    "echod buffered everything: no back-pressure")
            # The flood grows the child by at most its two 64 KiB buffers
            # (touched on first use) and page-table slack: the rest stays
            # in the kernel's socket buffers, bounded by tcp_rmem/wmem.
            h.check(base_priv is not None and
                    max_priv - base_priv <= 512,
                    "child private memory grew from %s to %d kB under the "
                    "flood, expected at most 512 kB more"
                    % (base_priv, max_priv))
            if not h.VALGRIND:
                # Sanitizer builds map shadow memory: RSS is theirs.
                h.check(max_rss < 16 * 1024,
                        "child VmRSS %d kB, expected < 16 MB" % max_rss)
            # Another client is served while this one is stuck.
            h.roundtrip(e.port, b"served meanwhile\n")
            # -t 2 counts from echod's last progress, and a client that
            # stops reading still takes a trickle into its growing receive
            # window for a few seconds; then a stalled flush gets 2 s more.
            reason = e.wait_close(cp, h.T(12))
            h.eq(reason, "idle-timeout", "stuck client close reason")
            deadline = time.monotonic() + h.T(5)
            while child in e.live_children():
                h.check(time.monotonic() < deadline,
                        "stuck client's child did not exit")
                time.sleep(0.05)
        finally:
            stop.set()
            t.join(h.T(5))
            s.close()
    finally:
        e.stop()


def case_fd_flood_hold():
    # echod under RLIMIT_NOFILE 32 holds 100 connections at once: the
    # parent keeps no descriptor per connection.
    def pre():
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))

    e = h.Echod(["-p", "0", "-b", "127.0.0.1"], preexec_fn=pre)
    socks = []
    try:
        for i in range(100):
            socks.append(h.connect(e.port))
        for i, s in enumerate(socks):
            msg = b"conn %d\n" % i
            s.sendall(msg)
        for i, s in enumerate(socks):
            msg = b"conn %d\n" % i
            h.eq(h.recv_exact(s, len(msg), h.T(20)), msg, "echo %d" % i)
        h.check(e.alive(), "echod died")
        h.check(len(os.listdir("/proc/%d/fd" % e.pid)) < 32,
                "parent holds too many descriptors")
    finally:
        for s in socks:
            s.close()
        e.stop()


def case_fd_flood_emfile():
    # Take every free descriptor from the running parent (prlimit), so each
    # accept fails with EMFILE while 100 clients wait in the backlog.
    e = h.Echod(["-p", "0", "-b", "127.0.0.1"])
    socks = []
    try:
        nfd = len(os.listdir("/proc/%d/fd" % e.pid))
        old = resource.prlimit(e.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(e.pid, resource.RLIMIT_NOFILE, (nfd, old[1]))
        mk = e.mark()
        cpu0 = h.cpu_seconds(e.pid)
        t0 = time.monotonic()
        for i in range(100):
            socks.append(h.connect(e.port))
        for s in socks:
            s.sendall(b"wait\n")
        time.sleep(2.5)
        secs = time.monotonic() - t0
        cpu = h.cpu_seconds(e.pid) - cpu0
        errs = e.find(r"accept", mk)
        h.log("EMFILE for %.1fs: %d accept log lines, parent CPU %.2fs" %
              (secs, len(errs), cpu))
        h.check(e.alive(), "echod died under EMFILE")
        h.check(1 <= len(errs) <= 6,
                "expected a few rate-limited accept error lines, got %d"
                % len(errs))
        h.check(any(re.search(r"(?i)too many open files|EMFILE", m.string)
                    for m in errs), "accept error does not name EMFILE")
        h.check(cpu < 0.5 * secs, "parent spins under EMFILE: %.2fs CPU in "
                "%.2fs" % (cpu, secs))
        # Resources return: every waiting client is served, then a new one.
        resource.prlimit(e.pid, resource.RLIMIT_NOFILE, old)
        for i, s in enumerate(socks):
            h.eq(h.recv_exact(s, 5, h.T(20)), b"wait\n",
                 "echo to waiting client %d" % i)
        for s in socks:
            s.close()
        h.roundtrip(e.port, b"after the flood\n")
    finally:
        for s in socks:
            s.close()
        e.stop()


def _uid_procs(uid):
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = h.proc_status(int(d))
            if st and int(st.get("Uid", "-1 0").split()[0]) == uid:
                # RLIMIT_NPROC counts threads.
                n += int(st.get("Threads", "1"))
    return n


def case_fork_failure():
    # An unprivileged uid no other process uses, so that RLIMIT_NPROC
    # counts only echod and its children.
    uid = 64000 + os.getpid() % 1000
    base = _uid_procs(uid)
    allowed_children = 2
    limit = base + 1 + allowed_children

    def pre():
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    # The unprivileged uid must be able to reach the binary: the build tree
    # may sit below a directory only root can enter (a clone under /root),
    # so run a copy from a world-readable temporary directory.
    tmp = tempfile.mkdtemp(prefix="echod-nproc-")
    os.chmod(tmp, 0o755)
    binary = os.path.join(tmp, "echod")
    shutil.copy2(h.ECHOD, binary)
    os.chmod(binary, 0o755)
    saved, h.ECHOD = h.ECHOD, binary
    try:
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"], preexec_fn=pre)
    finally:
        h.ECHOD = saved
    socks = []
    try:
        mk = e.mark()
        for _ in range(allowed_children):
            s = h.connect(e.port)
            socks.append(s)
            s.sendall(b"x")
            h.eq(h.recv_exact(s, 1), b"x", "echo within the process limit")
        # More connections than processes allowed: fork fails.
        extra = []
        for _ in range(10):
            s = h.connect(e.port)
            extra.append(s)
            s.sendall(b"y")
        time.sleep(1.5)
        h.check(e.alive(), "echod died on fork failure")
        lines = e.find(r"(?i)fork", mk)
        h.log("%d fork log lines for 10 failed connections: %s" %
              (len(lines), [m.string for m in lines[:3]]))
        h.check(len(lines) >= 1, "fork failure not logged")
        h.check(len(lines) <= 5, "fork failures not rate-limited: %d lines"
                % len(lines))
        # What happened to the extra connections: each is either closed or
        # still waiting; none of them may be echoed while the limit holds.
        for s in extra:
            s.setblocking(False)
            try:
                data = s.recv(10)
            except BlockingIOError:
                data = None
            except ConnectionResetError:
                data = b""
            h.check(data in (None, b""), "a connection over the process "
                    "limit was served: %r" % data)
        for s in socks + extra:
            s.close()
        socks = []
        deadline = time.monotonic() + h.T(5)
        while e.live_children():
            h.check(time.monotonic() < deadline, "children did not exit")
            time.sleep(0.05)
        # Children gone: serving again.
        deadline = time.monotonic() + h.T(5)
        while True:
            try:
                h.roundtrip(e.port, b"again\n")
                break
            except (h.TestFailure, OSError) as ex:
                h.check(time.monotonic() < deadline,
                        "not served after the children exited: %s" % ex)
                time.sleep(0.2)
        st = e.stats()
        h.check(h.stat_int(st, "fork_failures", "fork_failed",
                           "forkfail") >= 1, "fork failure counter: %s" % st)
    finally:
        for s in socks:
            s.close()
        e.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
