#!/usr/bin/env python3
"""server_seeds.py - writes the named seeds of corpus/server_fuzz/.

The input layout is documented in fuzz/server_fuzz.c: a 2-byte header
(-c - 1 | --max-per-ip << 3 | pid spacing << 5; idle timeout | shutdown
timeout << 2 | table seed << 4), then the schedule: bytes with the top bit
set are events of the world (0x80 | what << 3 | argument), applied before
the next call that asks the kernel something; the first byte below 0x80
decides that call's result. When the schedule runs out the world turns
benign and SIGTERM arrives. SERVER_FUZZ_TRACE=1 makes the replay driver
print every call, which is how each seed below was checked to do what its
name says. Run it from the top of the tree to regenerate the seeds:
python3 fuzz/server_seeds.py

corpus/server_fuzz/find-*.bin are not written here: they are the
minimized inputs that found bugs in src/server.c (see its history), kept
so that ctest replays them in every build.
"""
import os


def hdr(c=4, per_ip=0, pids=0, idle=1, shutdown=1, seed=0):
    return bytes([(c - 1) | per_ip << 3 | pids << 5,
                  idle | shutdown << 2 | seed << 4])


def ev(what, arg=0):
    return bytes([0x80 | what << 3 | arg])


# events (fuzz/server_fuzz.c EV_*)
CONNECT, REPORT, REPORT2, EXIT, EXIT_STATUS, SIGSYS, SIGKILL, SIGSEGV, \
    FORGED, MALFORMED, SIGNAL, FLOOD, BADMAGIC, FAULT = range(14)
# EV_SIGNAL arguments
USR1, HUP, TERM, INT, QUIT, CHLD = 0, 1, 2, 3, 4, 5
# EV_FAULT arguments
CLEAR, EMFILE, ENFILE, ENOBUFS, ENOMEM, FORK_EAGAIN, FORK_ENOMEM, \
    WAIT_ENOMEM = range(8)


def conn(addr=0, two=False):
    return ev(CONNECT, addr | (4 if two else 0))


# decision bytes
def wait(step=0, mode=0, chld=False):
    """step: 0 none, 1 1 ms, 2 7 ms, 3 40 ms, 4 to the deadline,
    5 past the back-off, 6 one log interval, 7 past every timeout;
    mode: 0 true readiness, 1 spurious, 2 fails (ENOMEM), 3 interrupted."""
    return bytes([step | mode << 3 | (0x20 if chld else 0)])


ACC_OK = b"\x00"
ACC = {e: bytes([8 + i]) for i, e in enumerate(
    ["ECONNABORTED", "EPROTO", "EPERM", "EMFILE", "ENFILE", "ENOBUFS",
     "ENOMEM", "EINTR"])}
SPAWN_OK = b"\x00"
SPAWN_EAGAIN = b"\x06"
SPAWN_ENOMEM = b"\x07"
SPAWN_DIES = b"\x08"      # the child exits before the server files it
SPAWN_SIGSYS = b"\x10"    # ... killed by the sandbox at once
SPAWN_STUBBORN = b"\x18"  # ignores SIGTERM: only SIGKILL ends it
SPAWN_REUSE = b"\x20"     # gets the pid freed last
REAP = b"\x00"
TERM_EXITS = b"\x01"      # a child told SIGTERM exits at once
TERM_LATER = b"\x00"


def serve_one(addr=0):
    """A connection arrives, is accepted and given a child."""
    return conn(addr) + wait() + ACC_OK + SPAWN_OK + ACC_OK


seeds = {
    # the happy path and the drain
    "one-connection-served": hdr() + serve_one() + ev(EXIT) + wait(1, chld=True) + REAP + REAP,
    "empty-run-sigterm": hdr(c=1),
    "drain-children-exit-on-sigterm": hdr(c=3) + conn(0, True) + conn(2) + wait() + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + ev(SIGNAL, TERM) + wait(2) + TERM_EXITS + TERM_LATER + TERM_EXITS,
    "drain-sigkill-stubborn-child": hdr(c=2, shutdown=2) + conn() + wait() + ACC_OK + SPAWN_STUBBORN + ACC_OK + ev(SIGNAL, TERM) + wait(1) + wait(3) + wait(4),
    "drain-zero-timeout-sigkill": hdr(c=2, shutdown=0) + conn(0, True) + wait() + ACC_OK + SPAWN_STUBBORN + ACC_OK + SPAWN_OK + ACC_OK + ev(SIGNAL, QUIT) + wait(0) + TERM_LATER,
    "drain-sigusr1-while-draining": hdr(c=2, shutdown=3) + conn() + wait() + ACC_OK + SPAWN_STUBBORN + ACC_OK + ev(SIGNAL, TERM) + wait(1) + ev(SIGNAL, USR1) + wait(3) + ev(SIGNAL, HUP) + wait(3) + wait(7),
    # the connection limit
    "limit-pause-and-resume-deferred": hdr(c=2) + conn(0, True) + conn(2, True) + wait() + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ev(EXIT, 0) + wait(1, chld=True) + REAP + REAP + wait() + ACC_OK + SPAWN_OK + ACC_OK,
    "limit-full-batch-of-eight": hdr(c=8) + ev(FLOOD, 2) + ev(CONNECT, 2) + wait() + ACC_OK * 8 + ev(EXIT, 3) + wait(1) + REAP,
    "limit-one-child": hdr(c=1) + conn(0, True) + wait() + ACC_OK + SPAWN_OK + ev(SIGSEGV, 0) + wait(2) + REAP + REAP + wait() + ACC_OK + SPAWN_OK + ACC_OK,
    # --max-per-ip
    "per-ip-reject-and-release": hdr(c=8, per_ip=1) + conn(0, True) + conn(1) + wait() + ACC_OK + SPAWN_OK + ACC_OK + ACC_OK + ACC_OK + ev(EXIT, 0) + wait(1) + REAP + REAP + conn(1) + wait() + ACC_OK + SPAWN_OK + ACC_OK,
    "per-ip-v4-and-mapped-share-a-count": hdr(c=6, per_ip=2, seed=5) + conn(0) + conn(1) + conn(1) + conn(3, True) + conn(2) + wait() + ACC_OK * 7,
    "per-ip-reject-flood-summary-at-exit": hdr(c=8, per_ip=1) + ev(FLOOD, 0) + ev(FLOOD, 1) + wait() + ACC_OK * 8 + wait(1) + ACC_OK * 8 + wait(6) + ev(FLOOD, 0) + ACC_OK * 8,
    # found by libFuzzer, kept for the table paths they reach: a rejected
    # line that states the suppressed count, the address table's
    # backward-shift deletion, the child table's deletion across its end
    "per-ip-reject-suppressed-count": bytes.fromhex("0f052cd9000000010000000000000006d800000000"),
    "address-table-backward-shift": bytes.fromhex("ffff8001de"),
    "child-table-delete-wraps-around": bytes.fromhex("47052ed8"),
    # accept errors
    "accept-emfile-backoff": hdr() + conn(0, True) + wait() + ACC["EMFILE"] + wait(4) + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK,
    "accept-every-error": hdr(c=8) + ev(FLOOD, 0) + wait() + ACC["ECONNABORTED"] + ACC["EPROTO"] + ACC["EPERM"] + ACC["EINTR"] + ACC["ENFILE"] + wait(5) + ACC["ENOBUFS"] + wait(5) + ACC["ENOMEM"] + wait(5) + ACC_OK + SPAWN_OK,
    "accept-persistent-enfile-then-recovers": hdr() + ev(FAULT, ENFILE) + conn(0, True) + wait() + ACC_OK + wait(5) + ACC_OK + wait(6) + ACC_OK + wait(5) + ev(FAULT, CLEAR) + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK,
    # fork failures
    "fork-fails-connection-held-then-served": hdr() + conn() + wait() + ACC_OK + SPAWN_EAGAIN + wait(4) + SPAWN_OK + wait() ,
    "fork-fails-held-given-up-after-idle": hdr(per_ip=1, idle=1) + conn(2) + wait() + ACC_OK + SPAWN_ENOMEM + wait(5) + SPAWN_EAGAIN + wait(7) + SPAWN_EAGAIN + conn(2) + wait(5) + ACC_OK + SPAWN_OK + ACC_OK,
    "fork-fails-held-given-up-at-shutdown": hdr(per_ip=2, idle=0) + conn(2) + wait() + ACC_OK + SPAWN_EAGAIN + ev(SIGNAL, TERM) + wait(5),
    "fork-persistent-failure-rate-limited": hdr(idle=3) + ev(FAULT, FORK_EAGAIN) + conn(0, True) + wait() + ACC_OK + SPAWN_OK + wait(5) + SPAWN_OK + wait(5) + SPAWN_OK + wait(7) + SPAWN_OK,
    "fork-held-per-ip-count": hdr(c=3, per_ip=1, idle=1) + conn(0, True) + wait() + ACC_OK + SPAWN_EAGAIN + wait(5) + SPAWN_OK + wait() + ACC_OK + ACC_OK,
    # children's deaths and reports
    "child-dies-before-filed": hdr() + conn() + wait() + ACC_OK + SPAWN_DIES + ACC_OK + wait(chld=True) + REAP + REAP,
    "child-sigsys-at-once": hdr() + conn(3) + wait() + ACC_OK + SPAWN_SIGSYS + ACC_OK + wait(1) + REAP,
    "children-exit-in-any-order-by-any-signal": hdr(c=6, pids=2) + conn(0, True) + conn(2, True) + conn(3) + wait() + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + ev(SIGSYS, 3) + ev(SIGKILL, 1) + ev(EXIT_STATUS, 0) + ev(SIGSEGV, 1) + ev(EXIT, 0) + wait(2) + b"\x03\x02\x01\x00\x00\x00",
    "pid-reused-after-reap": hdr(c=2) + conn(0, True) + wait() + ACC_OK + SPAWN_OK + ev(EXIT, 0) + ACC_OK + SPAWN_OK + ACC_OK + wait(chld=True) + REAP + REAP + conn(2) + wait() + ACC_OK + SPAWN_REUSE + ACC_OK + ev(REPORT2, 1) + wait(1),
    "pid-collisions-in-table": hdr(c=8, pids=5) + ev(FLOOD, 0) + wait() + (ACC_OK + SPAWN_OK) * 8 + ev(EXIT, 2) + ev(EXIT, 5) + ev(EXIT, 0) + wait(chld=True) + b"\x01\x01\x00\x00" + ev(FLOOD, 3) + wait() + (ACC_OK + SPAWN_REUSE) * 3,
    "reports-twice-forged-malformed": hdr(c=3) + conn(0, True) + wait() + ACC_OK + SPAWN_OK + ACC_OK + SPAWN_OK + ACC_OK + ev(REPORT2, 0) + ev(FORGED, 3) + ev(MALFORMED, 2) + ev(BADMAGIC, 1) + ev(REPORT, 1) + wait(1) + wait(6) + ev(FORGED, 0) + wait(1),
    "report-flood-before-a-child-exits": hdr(c=2) + conn() + wait() + ACC_OK + SPAWN_OK + ACC_OK + ev(FORGED, 7) + ev(FORGED, 7) + ev(EXIT, 0) + wait(chld=True) + REAP + REAP,
    # signals and the wait
    "signals-stats-hup-spurious-chld": hdr() + ev(SIGNAL, USR1) + wait() + ev(SIGNAL, HUP) + ev(SIGNAL, CHLD) + wait(1) + wait(1, chld=True) + REAP + ev(SIGNAL, INT) + wait(),
    "wait-fails-then-recovers": hdr() + conn() + wait(mode=2) + wait(mode=2) + wait(5, mode=2) + wait(5) + ACC_OK + SPAWN_OK + ACC_OK,
    "wait-persistent-failure": hdr() + ev(FAULT, WAIT_ENOMEM) + wait() + wait(1) + wait(6) + wait(6) + ev(FAULT, CLEAR) + wait(5),
    "wait-spurious-and-interrupted": hdr() + wait(mode=1) + ACC_OK + wait(mode=3) + conn() + wait(mode=3) + wait() + ACC_OK + SPAWN_OK + ACC_OK,
    "sigterm-with-backlog-not-accepted": hdr() + conn(3, True) + ev(SIGNAL, TERM) + wait(),
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "corpus", "server_fuzz")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), os.path.normpath(out)))
