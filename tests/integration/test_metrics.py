#!/usr/bin/env python3
"""--metrics-file (SPEC section 7): the counters in Prometheus' text format,
read back with a real Prometheus parser (the prometheus_client package's,
Debian's python3-prometheus-client, run by /usr/bin/python3), rewritten
atomically on the interval, on SIGUSR1 and at exit, and never making the
parent wait on a slow disk."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import harness as h

PARSER = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + "".join("|%s=%s" % kv for kv in sorted(s.labels.items()))
        out[key] = s.value
    out["#type:" + fam.name] = fam.type
print(json.dumps(out))
"""


def parse(path):
    """The file through prometheus_client's parser: {sample: value}."""
    r = subprocess.run(["/usr/bin/python3", "-c", PARSER, path],
                       capture_output=True, text=True, timeout=h.T(20))
    h.check(r.returncode == 0, "Prometheus parser refused %s: %s\n%s"
            % (path, r.stderr, open(path).read()))
    return json.loads(r.stdout)


def wait_value(path, key, want, timeout):
    deadline = time.monotonic() + timeout
    m = {}
    while time.monotonic() < deadline:
        if os.path.exists(path):
            m = parse(path)
            if m.get(key) == want:
                return m
        time.sleep(0.2)
    h.check(False, "%s never became %r in %s (last: %r)" % (
        key, want, path, m.get(key)))


def case_metrics_file():
    """Every metric of SPEC 7 with HELP and TYPE, counters as counters,
    the duration histogram, build info and start time; updated on the
    interval; the final counts written at exit."""
    d = os.path.join(h.TMPDIR, "textfile")
    os.mkdir(d)
    path = os.path.join(d, "echod.prom")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "-m", "line",
                 "--metrics-file", path, "--metrics-interval", "1"])
    try:
        for i in range(3):
            h.roundtrip(e.port, b"metric %d\n" % i)
        m = wait_value(path, "echod_connections_accepted_total", 3.0,
                       h.T(10))
        h.log(json.dumps(m, indent=0)[:3000])
        for name in ("connections_accepted", "connections_deferred",
                     "fork_failures", "received_bytes", "sent_bytes",
                     "messages", "protocol_errors", "idle_timeouts",
                     "resets", "sandbox_kills", "connections_rejected"):
            h.eq(m.get("#type:echod_" + name), "counter", name)
        for name in ("connections_active", "connections_peak",
                     "build_info", "start_time_seconds"):
            h.eq(m.get("#type:echod_" + name), "gauge", name)
        h.eq(m.get("#type:echod_connection_duration_seconds"), "histogram",
             "duration")
        h.eq(m["echod_connections_active"], 0.0, "active")
        h.eq(m["echod_received_bytes_total"], 27.0, "received bytes")
        h.eq(m["echod_sent_bytes_total"], 27.0, "sent bytes")
        h.eq(m["echod_messages_total"], 3.0, "messages")
        h.eq(m["echod_connection_duration_seconds_count"], 3.0,
             "durations")
        h.eq(m["echod_connection_duration_seconds_bucket|le=+Inf"], 3.0,
             "+Inf bucket")
        for reason in ("max-per-ip", "untrusted-proxy"):
            h.eq(m["echod_connections_rejected_total|reason=" + reason], 0.0,
                 "rejected " + reason)
        info = [k for k in m if k.startswith("echod_build_info|")]
        h.eq(len(info), 1, "build_info")
        h.check("|sandbox=" in info[0] and "|version=" in info[0], info[0])
        started = m["echod_start_time_seconds"]
        h.check(abs(started - time.time()) < 60, "start time %r" % started)
        # The temporary file is hidden and gone; nothing else is left.
        h.eq(sorted(os.listdir(d)), ["echod.prom"], "folder")
        h.roundtrip(e.port, b"last\n")
        e.stop()
        m = parse(path)
        h.eq(m["echod_connections_accepted_total"], 4.0, "final count")
        h.eq(m["echod_sent_bytes_total"], 32.0, "final bytes")
    finally:
        e.stop()


def case_metrics_sigusr1():
    """SIGUSR1 rewrites the file at once (the interval here is an hour);
    a reader never sees a partial file (rename)."""
    d = os.path.join(h.TMPDIR, "m")
    os.mkdir(d)
    path = os.path.join(d, "echod.prom")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--metrics-file", path,
                 "--metrics-interval", "3600"])
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            try:
                with open(path) as f:
                    t = f.read()
            except FileNotFoundError:
                continue
            if not t.endswith("\n") or "echod_start_time_seconds" not in t:
                bad.append(t[-80:])

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i in range(1, 6):
            h.roundtrip(e.port, b"usr1\n")
            e.wait_log(r"close \S+ in=5", h.T(5))
            time.sleep(0.2)  # the report reaches the parent
            os.kill(e.pid, signal.SIGUSR1)
            wait_value(path, "echod_connections_accepted_total", float(i),
                       h.T(5))
    finally:
        stop.set()
        t.join(h.T(5))
        e.stop()
    h.eq(bad, [], "partial files seen")


def case_metrics_slow_disk():
    """The file's folder stalls (the writer's temporary file is a FIFO
    nobody reads: its open() blocks for ever): the parent goes on
    accepting and serving, and still exits promptly at SIGTERM."""
    d = os.path.join(h.TMPDIR, "stall")
    os.mkdir(d)
    path = os.path.join(d, "echod.prom")
    os.mkfifo(os.path.join(d, ".echod.prom.tmp"))
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--metrics-file", path,
                 "--metrics-interval", "1"])
    try:
        time.sleep(1.5)  # the writer is stuck in open()
        t0 = time.monotonic()
        for i in range(50):
            h.roundtrip(e.port, b"stalled %d\n" % i)
        served = time.monotonic() - t0
        for _ in range(3):
            os.kill(e.pid, signal.SIGUSR1)
        for i in range(50):
            h.roundtrip(e.port, b"still %d\n" % i)
        h.log("100 round trips with the metrics writer stuck: %.2fs "
              "(first 50: %.2fs)" % (time.monotonic() - t0, served))
        t1 = time.monotonic()
        os.kill(e.pid, signal.SIGTERM)
        h.eq(e.wait_exit(h.T(10)), 0, "exit status")
        h.log("exit %.2fs after SIGTERM, the writer still stuck"
              % (time.monotonic() - t1))
    finally:
        # Free the writer: it finishes into the FIFO and leaves.
        fd = os.open(os.path.join(d, ".echod.prom.tmp"),
                     os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + h.T(5)
        while h.stray_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.close(fd)
        e.stop()


def case_metrics_errors():
    """A folder that does not exist stops echod at start (status 1, a
    message); --metrics-file with --inetd is a usage error."""
    r = h.run_echod(["-p", "0", "--metrics-file",
                     os.path.join(h.TMPDIR, "nope", "x.prom")])
    h.eq(r.returncode, 1, "status")
    h.check(b"--metrics-file" in r.stderr and b"No such file" in r.stderr,
            r.stderr)
    r = h.run_echod(["-i", "--metrics-file", "/tmp/x.prom"])
    h.eq(r.returncode, 2, "with --inetd")
    r = h.run_echod(["--metrics-file", "/tmp/"])
    h.eq(r.returncode, 2, "a folder")


if __name__ == "__main__":
    h.main(globals())
