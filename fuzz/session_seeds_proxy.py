#!/usr/bin/env python3
"""PROXY seeds for corpus/session_fuzz/ (layout: fuzz/session_fuzz.c)."""
import os, struct, sys

RAW, LINE, FRAME = 0, 1, 2


def hdr(mode, stream, px, max_msg=16, buf=16, idle=10, linger=5,
        verbose=False, blocking=False, nomem=False):
    flags = 0xff if nomem else ((0x40 if verbose else 0) | (0x20 if blocking else 0))
    return bytes([mode, 0, max_msg - 1, buf - 1, idle, linger, flags,
                  0x10 | ((len(stream) >> 8) & 0x0f), len(stream) & 0xff]) + px + stream


def px(accept=3, proxied=1, start=0, nothing=False, ms=0x85, kind=0, tlvs=0,
       a=(203, 0, 113, 7), sport=41000, dport=7, pos=0, xor=0):
    return bytes([accept | proxied << 2 | start << 4 | (0x40 if nothing else 0),
                  ms, kind, tlvs, *a, sport >> 8, sport & 255, dport >> 8,
                  dport & 255, pos, xor])


# v1: kind bit0 = 0, bits 1-2 fam (0 TCP4, 1 TCP6, 2 UNKNOWN, 3 UNKNOWN tail),
# bits 3-4 v6 form; v2: bit0 = 1, bits 1-2 fam (TCP4, TCP6, UNSPEC), bit 3 LOCAL
V1_TCP4, V1_TCP6, V1_UNK, V1_UNK_TAIL = 0, 2, 4, 6
V2_TCP4, V2_TCP6, V2_UNSPEC, V2_LOCAL = 1, 3, 5, 9
READ_ALL_EOF, READ_8, WAIT_JUMP, WAIT_DEADLINE, WAIT_STOP = 0xc0, 0x08, 0x60, 0x70, 0x8f
seeds = {
    "proxy-v1-tcp4-line": hdr(LINE, b"one\ntwo\n", px(kind=V1_TCP4)) + bytes([0x3f, 0x3f, READ_ALL_EOF]),
    "proxy-v1-tcp6-full-upper-raw": hdr(RAW, b"after the header", px(accept=1, kind=V1_TCP6 | 2 << 3, tlvs=0x18)) + bytes([0x3f] * 4 + [READ_ALL_EOF]),
    "proxy-v1-unknown-tail-no-proxied": hdr(LINE, b"hi\n", px(proxied=0, kind=V1_UNK_TAIL, a=(90, 3, 5, 7))) + bytes([0x3f] * 6 + [READ_ALL_EOF]),
    "proxy-v2-tcp6-tlvs-crc-blocking": hdr(RAW, b"data", px(accept=2, ms=0xff, kind=V2_TCP6, tlvs=0x27 | 0x18), blocking=True, buf=64) + bytes([0x40, 0x38, 0x40, 0x38, 0x40, 0x38, 0x40, READ_ALL_EOF, 0x4f, 0x0f]),
    "proxy-v2-local-rejected": hdr(LINE, b"x\n", px(proxied=3, kind=V2_LOCAL | 0x0, tlvs=0x61)) + bytes([0x3f] * 4),
    "proxy-v2-unspec-big-tlv-frame": hdr(FRAME, struct.pack(">I", 3) + b"abc", px(kind=V2_UNSPEC, tlvs=0x80 | 0x10 | 0x20), buf=64) + bytes([0x3f] * 12 + [READ_ALL_EOF]),
    "proxy-v1-slow-header-timeout": hdr(LINE, b"late\n", px(ms=0x02, kind=V1_TCP4)) + bytes([0x01, 0x00, 0x0f, 0x01, 0x00, 0x0f, 0x01, 0x00, 0x0f, 0x01, 0x00, 0x0f]),
    "proxy-v2-crc-mutated-bad": hdr(RAW, b"never echoed", px(start=2, kind=V2_TCP4, tlvs=0x20, pos=250, xor=0x01)) + bytes([0x3f] * 4),
    "proxy-v2-cut-eof-inside": hdr(RAW, b"", px(start=2, kind=V2_TCP4, tlvs=0x03, pos=128, xor=0)) + bytes([0x3f, READ_ALL_EOF]),
    "proxy-nothing-sent-eof": hdr(LINE, b"", px(nothing=True)) + bytes([READ_ALL_EOF]),
    "proxy-raw-bytes-not-a-header": hdr(LINE, b"GET / HTTP/1.0\r\n\r\n", px(start=3)) + bytes([0x3f, READ_ALL_EOF]),
    "proxy-raw-v1-header-and-data": hdr(LINE, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nping\n", px(start=3, accept=1)) + bytes([0x3f, 0x3f, READ_ALL_EOF]),
    "proxy-v1-to-v2-only-bad": hdr(LINE, b"a\n", px(accept=2, kind=V1_TCP4)) + bytes([0x3f, READ_ALL_EOF]),
    "proxy-idle-after-header": hdr(LINE, b"no newline", px(kind=V2_TCP4, ms=0xff), idle=1) + bytes([0x38, 0x00, 0x00, 0x0f, WAIT_JUMP, WAIT_DEADLINE]),
    "proxy-stop-during-header": hdr(LINE, b"z\n", px(kind=V1_TCP6)) + bytes([0x01, 0x00, WAIT_STOP, 0x3f]),
    "proxy-nomem": hdr(LINE, b"q\n", px(kind=V1_TCP4), nomem=True) + bytes([WAIT_DEADLINE, READ_8, 0xf0]),
}
here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "corpus", "session_fuzz")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
print(len(seeds), "seeds")
