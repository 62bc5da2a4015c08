#!/usr/bin/env python3
"""session_seeds.py - writes the named seeds of corpus/session_fuzz/.

The input layout is documented in fuzz/session_fuzz.c: a 9-byte header
(mode, delimiter choice, max-msg - 1, buffer size - 1, idle timeout, linger,
no-memory flag, stream length high/low), the client's stream, then the
schedule (one byte per operation the session calls). Run it from the top of
the tree to regenerate the seeds: python3 fuzz/session_seeds.py
"""
import os
import struct

RAW, LINE, FRAME = 0, 1, 2
LF, NUL, SEMI, FF = 0, 1, 2, 3


def hdr(mode, stream, delim=LF, max_msg=16, buf=16, idle=10, linger=5,
        nomem=False, verbose=False, blocking=False, pipe=None):
    # idle: units of 100 ms, 0x80 = never; verbose: -v (ops->echoed);
    # blocking: read_wait/write_wait, as production serves; pipe: the
    # capacity pipe_open returns (0: refused; None: no pipe operations)
    flags = 0xff if nomem else ((0x40 if verbose else 0) |
                                (0x20 if blocking else 0) |
                                (0x10 | pipe if pipe is not None else 0))
    return bytes([mode, delim, max_msg - 1, buf - 1, idle, linger, flags,
                  (len(stream) >> 8) & 0x0f,
                  len(stream) & 0xff]) + stream


def frame(p):
    return struct.pack(">I", len(p)) + p


# schedule bytes
READ_ALL_EOF = 0xc0        # read: half-close once everything arrived
READ_8 = 0x08              # read: 8 bytes arrive
READ_RESET = 0xff
WRITE_ALL = 0x0f           # write: up to 15 bytes
WRITE_FULL = 0x10          # write: socket full
WRITE_EPIPE = 0xfe
WAIT_DEADLINE = 0x70       # wait: to the deadline, client acks all
WAIT_JUMP = 0x60           # wait: far past the idle timeout, acks all
WAIT_STOP = 0x8f           # wait: a shutdown request
WAIT_SPURIOUS = 0x0e
WAIT_FAIL = 0xfd
WAIT_ACK_FIN = 0xc0 | 0x30  # to the deadline, acks all, FIN acked

seeds = {
    "raw-halfclose": hdr(RAW, b"hello, world\n") + bytes([READ_8, READ_8, READ_ALL_EOF, WRITE_ALL, WRITE_ALL]),
    "raw-benign": hdr(RAW, bytes(range(64))),
    "raw-short-writes": hdr(RAW, b"abcdefghijklmnop" * 4, buf=8) + bytes([0x3f, 0x01, 0x02, 0x01, WRITE_FULL, WAIT_SPURIOUS, 0x03]),
    "raw-reset-read": hdr(RAW, b"abc") + bytes([READ_8, WRITE_ALL, READ_RESET]),
    "raw-epipe": hdr(RAW, b"abcdef") + bytes([READ_8, WRITE_EPIPE]),
    "raw-idle": hdr(RAW, b"", idle=1) + bytes([0xc1, WAIT_JUMP, WAIT_DEADLINE]),
    "raw-idle-never": hdr(RAW, b"x", idle=0x80) + bytes([0xe0, WAIT_JUMP, WAIT_JUMP, 0x01]),
    "raw-shutdown": hdr(RAW, b"data before the stop") + bytes([READ_8, WRITE_ALL, WAIT_STOP, WRITE_ALL]),
    "raw-noread-backpressure": hdr(RAW, bytes(200), buf=4) + bytes([0x3f, WRITE_FULL, WRITE_FULL, 0x00, WRITE_FULL, WAIT_JUMP]),
    "raw-wait-fails": hdr(RAW, b"") + bytes([0xe0, WAIT_FAIL]),
    "line-lf": hdr(LINE, b"one\ntwo\nthree\n") + bytes([READ_8, READ_8, READ_ALL_EOF]),
    "line-tail": hdr(LINE, b"no newline at the end") + bytes([0x3f, READ_ALL_EOF]),
    "line-too-long": hdr(LINE, b"x" * 40 + b"\nok\n", max_msg=8) + bytes([0x3f, 0x3f, READ_ALL_EOF]),
    "line-nul": hdr(LINE, b"a\0bb\0", delim=NUL) + bytes([0x3f, READ_ALL_EOF]),
    "line-shutdown-partial": hdr(LINE, b"done\npartial") + bytes([0x3f, WAIT_STOP, WRITE_ALL, WAIT_ACK_FIN]),
    "line-nomem": hdr(LINE, b"hello\n", nomem=True) + bytes([WAIT_DEADLINE, READ_8, WAIT_ACK_FIN]),
    "line-tiny-buffers": hdr(LINE, b"ab\ncd\nef\n" * 5, buf=1, max_msg=3) + bytes([0x01] * 30),
    "frame-ok": hdr(FRAME, frame(b"hello") + frame(b"") + frame(b"world")) + bytes([0x3f, READ_ALL_EOF]),
    "frame-too-large": hdr(FRAME, frame(b"ok") + struct.pack(">I", 1000) + b"junk" * 10, max_msg=8) + bytes([0x3f, WRITE_ALL, WAIT_DEADLINE, 0x3f, WAIT_ACK_FIN]),
    "frame-too-large-slow-reader": hdr(FRAME, frame(b"12345678") * 4 + struct.pack(">I", 99) + b"z" * 30, max_msg=8, buf=6) + bytes([0x3f, 0x3f, 0x01, 0x02, 0x05, 0x01, 0x02, 0x01, 0x3f, 0x05, 0x01, 0x05]),
    "frame-truncated": hdr(FRAME, struct.pack(">I", 10) + b"abc") + bytes([0x3f, READ_ALL_EOF]),
    "frame-split-header": hdr(FRAME, frame(b"abcdef") * 3) + bytes([0x01, 0x01, 0x01, 0x01, 0x03, 0x3f]),
    "frame-linger-no-ack": hdr(FRAME, struct.pack(">I", 500) + b"x" * 20, max_msg=4) + bytes([0x3f, 0x3f, 0x00, 0x00, 0x00, 0x00]),
    "frame-shutdown-then-eof": hdr(FRAME, frame(b"aa") + frame(b"bb")) + bytes([READ_8, WAIT_STOP, READ_ALL_EOF, WRITE_ALL]),
    "verbose-line-many": hdr(LINE, b"a\n" * 40 + b"x" * 20 + b"\nend", max_msg=8, buf=64, verbose=True) + bytes([0x3f, 0x3f, READ_ALL_EOF]),
    "verbose-frame-split": hdr(FRAME, frame(b"hello") + frame(b"") + frame(b"0123456789"), buf=5, verbose=True) + bytes([0x02, 0x03, 0x01, 0x3f, 0x01, 0x02]),
    "blocking-raw-halfclose": hdr(RAW, b"hello, world\n", blocking=True) + bytes([READ_8, READ_8, READ_ALL_EOF, WRITE_ALL, WRITE_ALL]),
    "blocking-line-idle": hdr(LINE, b"one\ntwo", idle=1, blocking=True) + bytes([0x3f, WAIT_JUMP, WRITE_ALL, WAIT_DEADLINE]),
    "blocking-frame-shutdown": hdr(FRAME, frame(b"aa") + frame(b"bb"), blocking=True) + bytes([READ_8, WAIT_STOP, WRITE_ALL, WAIT_ACK_FIN]),
    "blocking-noread-backpressure": hdr(RAW, bytes(200), buf=4, blocking=True) + bytes([0x3f, WRITE_FULL, WRITE_FULL, 0x00, WRITE_FULL, WAIT_JUMP]),
    "blocking-reset": hdr(LINE, b"abc\n", blocking=True) + bytes([READ_8, WRITE_EPIPE]),
    "pipe-raw-bulk": hdr(RAW, bytes(range(200)), buf=8, blocking=True, pipe=15) + bytes([0x3f, 0x3f, 0x3f, WRITE_ALL, 0x3f, 0x02, WRITE_ALL] * 4),
    "pipe-raw-refused": hdr(RAW, bytes(100), buf=4, blocking=True, pipe=0) + bytes([0x3f, WRITE_ALL] * 8),
    "pipe-raw-shutdown": hdr(RAW, b"x" * 64, buf=4, blocking=True, pipe=7) + bytes([0x3f, 0x3f, WRITE_ALL, WAIT_STOP, 0x01, WRITE_FULL, WAIT_ACK_FIN]),
    "pipe-raw-halfclose": hdr(RAW, b"abcdefgh" * 8, buf=8, blocking=True, pipe=5) + bytes([0x3f, 0x3f, READ_ALL_EOF, WRITE_ALL, WRITE_ALL, WRITE_ALL]),
    "pipe-raw-reset": hdr(RAW, b"y" * 40, buf=2, blocking=True, pipe=3) + bytes([0x3f, 0x3f, WRITE_ALL, 0x3f, WRITE_EPIPE]),
    "verbose-raw": hdr(RAW, b"raw bytes, no messages", verbose=True) + bytes([READ_8, READ_ALL_EOF]),
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "corpus", "session_fuzz")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), os.path.normpath(out)))
