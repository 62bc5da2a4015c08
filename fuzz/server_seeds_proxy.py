#!/usr/bin/env python3
"""PROXY seeds for corpus/server_fuzz/ (layout: fuzz/server_fuzz.c)."""
import os, sys


def hdr(c=4, per_ip=0, pids=0, idle=1, shutdown=1, seed=0):
    return bytes([(c - 1) | per_ip << 3 | pids << 5,
                  idle | shutdown << 2 | seed << 4])


def proxy(blocks=(), deny_exits=False):
    """the prefix: --proxy-from blocks (indices into blocks[] of
    server_fuzz.c; none: claims without --proxy-protocol)."""
    b = list(blocks) + [0] * (3 - len(blocks))
    return bytes([0xf8 | len(blocks) | (4 if deny_exits else 0),
                  b[0] | b[1] << 4, b[2]])


def ev(what, arg=0):
    return bytes([0x80 | what << 3 | arg])


CONNECT, REPORT, REPORT2, EXIT, EXIT_STATUS, SIGSYS, SIGKILL, SIGSEGV, \
    FORGED, MALFORMED, SIGNAL, FLOOD, BADMAGIC, FAULT, CLAIM, CLAIM_ALL = range(16)
USR1, HUP, TERM, INT, QUIT, CHLD = 0, 1, 2, 3, 4, 5
FORK_EAGAIN = 5
# claim senders
LIVE, LIVE_THEN_EXITS, EXITED, STRANGER = range(4)


def conn(addr=0, two=False):
    return ev(CONNECT, addr | (4 if two else 0))


def claim(child=0, addr=0, port=0, who=LIVE, twice=False):
    return ev(CLAIM, child | (4 if twice else 0)) + bytes([addr | port << 2 | who << 4])


def wait(step=0, mode=0, chld=False):
    return bytes([step | mode << 3 | (0x20 if chld else 0)])


ACC_OK = b"\x00"
SPAWN_OK = b"\x00"
SPAWN_EAGAIN = b"\x06"
SPAWN_REUSE = b"\x20"
REAP = b"\x00"

# blocks (server_fuzz.c): 0 192.0.2.0/24 {0,1}, 1 2001:db8::/32 {2},
# 2 198.51.100.7 {3}, 3 10.0.0.0/8 {}, 7 ::/0 {all}, 10 0.0.0.0/0 {0,1,3}
seeds = {
    "proxy-untrusted-peers-closed": hdr(c=4) + proxy([0]) + conn(2) + conn(3, True) + conn(1) + wait() + ACC_OK * 4 + SPAWN_OK + ACC_OK,
    "proxy-untrusted-flood-rate-limited": hdr(c=2) + proxy([3, 8]) + ev(FLOOD, 0) + ev(FLOOD, 2) + wait() + ACC_OK * 8 + wait(6) + ACC_OK * 9,
    "proxy-three-blocks-mixed": hdr(c=8) + proxy([1, 2, 13]) + conn(0) + conn(1) + conn(2) + conn(3) + wait() + (ACC_OK + SPAWN_OK) * 2 + ACC_OK * 3,
    "proxy-claims-same-address-second-denied": hdr(c=4, per_ip=1) + proxy([7]) + conn(0, True) + conn(2) + wait() + (ACC_OK + SPAWN_OK) * 3 + ACC_OK + claim(0, 1) + claim(1, 1) + claim(2, 2) + wait(1) + ev(EXIT, 0) + wait(chld=True) + REAP + REAP + conn(3) + wait() + ACC_OK + SPAWN_REUSE + ACC_OK + claim(0, 1, 1) + wait(1),
    "proxy-claim-twice-stranger-dead": hdr(c=4, per_ip=2) + proxy([10]) + conn(0, True) + wait() + (ACC_OK + SPAWN_OK) * 2 + ACC_OK + claim(0, 0, twice=True) + claim(1, 3, 0, STRANGER) + claim(1, 0, 3, LIVE_THEN_EXITS) + wait(1, chld=True) + REAP + REAP + wait(1),
    "proxy-claim-from-exited-child": hdr(c=2, per_ip=1) + proxy([0]) + conn(0) + wait() + ACC_OK + SPAWN_OK + ACC_OK + ev(EXIT, 0) + claim(0, 2, 1, EXITED) + wait(1, chld=True) + REAP + REAP,
    "proxy-claim-all-collide-denied-exit": hdr(c=6, per_ip=2) + proxy([7], deny_exits=True) + ev(FLOOD, 2) + wait() + (ACC_OK + SPAWN_OK) * 6 + ev(CLAIM_ALL, 3) + wait(1) + wait(1, chld=True) + REAP * 5,
    "proxy-counted-child-exits-released": hdr(c=3, per_ip=1) + proxy([0, 1]) + conn(0) + conn(2) + wait() + (ACC_OK + SPAWN_OK) * 2 + ACC_OK + claim(0, 2) + wait(1) + ev(SIGKILL, 0) + wait(1, chld=True) + REAP + REAP + wait(1) + claim(0, 2) + wait(1),
    "proxy-no-per-ip-claims-refused": hdr(c=2) + proxy([7]) + conn(3) + wait() + ACC_OK + SPAWN_OK + ACC_OK + claim(0, 1) + ev(CLAIM_ALL, 4) + wait(1),
    "claims-without-proxy-refused": hdr(c=2, per_ip=1) + proxy([]) + conn(0) + wait() + ACC_OK + SPAWN_OK + ACC_OK + claim(0, 3) + claim(0, 0, who=STRANGER) + wait(1),
    "proxy-fork-fails-held-not-counted": hdr(c=2, per_ip=1, idle=1) + proxy([0]) + conn(0, True) + wait() + ACC_OK + SPAWN_EAGAIN + wait(5) + SPAWN_OK + wait() + ACC_OK + SPAWN_OK + ACC_OK + claim(0, 3) + claim(1, 3) + wait(1),
    "proxy-drain-claims-while-draining": hdr(c=3, per_ip=1, shutdown=2) + proxy([7]) + conn(0, True) + wait() + (ACC_OK + SPAWN_OK) * 2 + ACC_OK + ev(SIGNAL, TERM) + wait(1) + claim(0, 0) + claim(1, 0) + b"\x00" + wait(1),
}
here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "corpus", "server_fuzz")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
print(len(seeds), "seeds")
