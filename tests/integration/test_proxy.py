#!/usr/bin/env python3
"""PROXY protocol (SPEC section 8): --proxy-protocol v1|v2|any,
--proxy-from, --proxy-timeout.

Every header here is built by hand, byte by byte, from HAProxy's
proxy-protocol.txt (versions 1 and 2, CRC32C of RFC 4960 appendix B),
independently of echod's parser; then the same behaviour behind a real
HAProxy (Debian's haproxy, send-proxy and send-proxy-v2).

What each case checks, in echod's log: a proxied connection's accept line
names the header's source and the proxy (`accept SRC:SPORT via
127.0.0.1:PEERPORT`), its close line names the source and counts in=/out=
only the bytes after the header; LOCAL (v2) and UNKNOWN (v1) keep the
proxy's own address (`accept 127.0.0.1:PEERPORT`, no "via"); a malformed
header closes with `protocol-error: bad proxy header` and nothing echoed;
a header that does not arrive in time with `protocol-error: proxy header
timeout`; a peer outside --proxy-from is closed by the parent at once
(`reject ADDR:PORT reason=untrusted-proxy`, counted)."""

import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import harness as h

# --- building headers (proxy-protocol.txt) -----------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CMD_LOCAL, CMD_PROXY = 0x0, 0x1
FAM_UNSPEC, FAM_TCP4, FAM_UDP4, FAM_TCP6, FAM_UNIX = 0x00, 0x11, 0x12, \
    0x21, 0x31
TLV_ALPN, TLV_AUTHORITY, TLV_CRC32C, TLV_NOOP, TLV_UNIQUE_ID = 1, 2, 3, 4, 5
TLV_SSL, SSL_VERSION, SSL_CN = 0x20, 0x21, 0x22


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# RFC 3720 B.4 check value: a wrong table would make every CRC case fail
# for the test's own fault.
assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA


def v1(fam, src, dst, sport, dport):
    """A version 1 line: PROXY TCP4|TCP6 src dst sport dport CRLF."""
    return b"PROXY %s %s %s %d %d\r\n" % (fam.encode(), src.encode(),
                                          dst.encode(), sport, dport)


def v2(cmd, fam, body, length=None, ver=2):
    """A version 2 header: signature, version/command, family, length
    (big-endian; the body's own unless told), body."""
    if length is None:
        length = len(body)
    return V2_SIG + bytes([(ver << 4) | cmd, fam]) + \
        struct.pack(">H", length) + body


def addr4(src, dst, sport, dport):
    return socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack(">HH", sport, dport)


def addr6(src, dst, sport, dport):
    return socket.inet_pton(socket.AF_INET6, src) + \
        socket.inet_pton(socket.AF_INET6, dst) + \
        struct.pack(">HH", sport, dport)


def tlv(typ, value):
    return bytes([typ]) + struct.pack(">H", len(value)) + value


def ssl_tlv(subs, client=0x01, verify=0):
    """PP2_TYPE_SSL: client (1 byte), verify (4), then sub-TLVs."""
    return tlv(TLV_SSL, bytes([client]) + struct.pack(">I", verify) + subs)


def v2_crc(cmd, fam, addrs, before=b"", after=b"", flip=0):
    """A v2 header with a PP2_TYPE_CRC32C TLV between the TLVs `before`
    and `after`: the CRC32C of the whole header with the TLV's value
    zeroed, stored big-endian (XORed with flip, to make a wrong one)."""
    body = addrs + before + tlv(TLV_CRC32C, bytes(4)) + after
    hdr = v2(cmd, fam, body)
    off = 16 + len(addrs) + len(before) + 3
    return hdr[:off] + struct.pack(">I", crc32c(hdr) ^ flip) + hdr[off + 4:]


def v2_tcp4(src, sport, tlvs=b"", dst="192.0.2.1", dport=7):
    return v2(CMD_PROXY, FAM_TCP4, addr4(src, dst, sport, dport) + tlvs)


def v2_tcp6(src, sport, tlvs=b"", dst="2001:db8::2", dport=7):
    return v2(CMD_PROXY, FAM_TCP6, addr6(src, dst, sport, dport) + tlvs)


def v1_tcp4(src, sport, dst="192.0.2.1", dport=7):
    return v1("TCP4", src, dst, sport, dport)


# --- echod and clients -------------------------------------------------------

def start(version="any", frm="127.0.0.0/8", extra=(), bind="127.0.0.1"):
    args = ["-p", "0"]
    if bind:
        args += ["-b", bind]
    args += ["--proxy-protocol", version, "--proxy-from", frm, "-t", "30"]
    return h.Echod(args + list(extra))


_sport = [41000]


def next_sport():
    """A fresh source port for a header: each connection's log lines are
    then told apart by the address the header claims."""
    _sport[0] += 1
    return _sport[0]


def fmt(addr, port):
    """An address as echod logs it (net_addr_str)."""
    return "[%s]:%d" % (addr, port) if ":" in addr else "%s:%d" % (addr, port)


def exchange(s, first, data, timeout=None, what="echo"):
    """Send first + data in one sendall (from a thread, so that a large
    echo cannot deadlock us) while reading len(data) bytes back."""
    err = []

    def sender():
        try:
            s.sendall(first + data)
        except OSError as ex:
            err.append(ex)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        got = h.recv_exact(s, len(data), timeout) if data else b""
    except ConnectionResetError:
        raise h.TestFailure("%s: connection reset instead of the echo of "
                            "%d bytes" % (what, len(data)))
    except h.TestFailure as ex:
        raise h.TestFailure("%s: %s (echod closed or stalled instead of "
                            "echoing the bytes after the header)"
                            % (what, ex))
    finally:
        t.join(h.T(10))
    h.check(not err, "%s: sending the header and data failed: %s"
            % (what, err[:1]))
    return got


def served(e, header, data, host="127.0.0.1", bind=None, what="echo"):
    """A client sends header + data in ONE sendall and must get exactly
    data back (nothing of the header), then EOF after its half-close.
    Returns the client's port."""
    s = h.connect(e.port, host, bind=bind)
    try:
        cp = h.cport(s)
        got = exchange(s, header, data, what=what)
        if got != data and got[:len(header)] == header[:len(got)]:
            raise h.TestFailure("%s: the PROXY header was echoed: got %r"
                                % (what, got[:80]))
        h.eq(got, data, "%s: the bytes after the header" % what)
        s.shutdown(socket.SHUT_WR)
        try:
            rest = h.recv_all(s)
        except ConnectionResetError:
            raise h.TestFailure("%s: reset after the echo instead of EOF"
                                % what)
        h.eq(rest, b"", "%s: bytes after the echo and the half-close "
             "(the header echoed late?)" % what)
        return cp
    finally:
        s.close()


def _related(e, *keys):
    """echod's log lines that mention any of keys (for failure messages)."""
    return [ln for ln in list(e.lines) if any(k in ln for k in keys)]


def want_log(e, rx, what, keys, start=0, timeout=None):
    try:
        return e.wait_log(rx, timeout or h.T(5), start, what=what)
    except h.TestFailure as ex:
        raise h.TestFailure("%s\n  related log lines: %s" %
                            (ex, _related(e, *keys) or "none"))


def check_proxied(e, cp, src, sport, n, reason="eof", peer="127.0.0.1",
                  what=""):
    """The log of a connection whose header named src:sport, from the
    proxy peer:cp, with n bytes after the header echoed."""
    real = fmt(src, sport)
    via = fmt(peer, cp)
    want_log(e, r"accept %s via %s\s*$" % (re.escape(real), re.escape(via)),
             "%s: accept line 'accept %s via %s'" % (what, real, via),
             [real, ":%d" % cp])
    m = want_log(e, r"close %s in=(\d+) out=(\d+) .*reason=(.+?)\s*$"
                 % re.escape(real),
                 "%s: close line naming %s" % (what, real),
                 [real, ":%d" % cp])
    h.eq(int(m.group(1)), n, "%s: in= (only the bytes after the header)"
         % what)
    h.eq(int(m.group(2)), n, "%s: out=" % what)
    h.eq(m.group(3), reason, "%s: close reason" % what)
    h.check(not e.find(r"close %s\b" % re.escape(via)),
            "%s: a close line names the proxy %s instead of %s"
            % (what, via, real))


def check_own(e, cp, n, reason="eof", peer="127.0.0.1", what=""):
    """The log of a connection that keeps the proxy's own address (v2
    LOCAL, v1 UNKNOWN): accept without "via", close naming peer:cp."""
    own = fmt(peer, cp)
    want_log(e, r"accept %s\s*$" % re.escape(own),
             "%s: accept line 'accept %s' (no via)" % (what, own),
             [":%d" % cp])
    m = want_log(e, r"close %s in=(\d+) out=(\d+) .*reason=(.+?)\s*$"
                 % re.escape(own), "%s: close line of %s" % (what, own),
                 [":%d" % cp])
    h.eq(int(m.group(1)), n, "%s: in=" % what)
    h.eq(int(m.group(2)), n, "%s: out=" % what)
    h.eq(m.group(3), reason, "%s: close reason" % what)


def proxied_ok(e, header, src, sport, data=None, what=""):
    data = data if data is not None else b"after the header %d\n" % sport
    cp = served(e, header, data, what=what)
    check_proxied(e, cp, src, sport, len(data), what=what)
    h.log("ok: %s (%d header bytes, %d data bytes)" % (what, len(header),
                                                       len(data)))
    return cp


def own_ok(e, header, data, what=""):
    cp = served(e, header, data, what=what)
    check_own(e, cp, len(data), what=what)
    h.log("ok: %s" % what)
    return cp


def closed_without_echo(s, timeout=None):
    """Read until the server closes: (bytes received, 'eof'|'reset')."""
    s.settimeout(timeout or h.T(10))
    buf = bytearray()
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return bytes(buf), "reset"
        except socket.timeout:
            raise h.TestFailure("the server did not close within %.1fs; got "
                                "%r" % (timeout or h.T(10), bytes(buf[:80])))
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk


def refused(e, header, what, data=b"data after the header\n",
            reason="protocol-error: bad proxy header"):
    """A trusted client sends header + data: the connection must be closed
    with nothing echoed and the close reason given. Returns a failure
    message or None."""
    s = h.connect(e.port)
    cp = h.cport(s)
    try:
        try:
            s.sendall(header + data)
        except OSError:
            pass
        try:
            got, how = closed_without_echo(s)
        except h.TestFailure as ex:
            return "%s: %s" % (what, ex)
    finally:
        s.close()
    if got:
        return "%s: %d bytes echoed: %r" % (what, len(got), got[:60])
    try:
        r = e.wait_close(cp)
    except h.TestFailure as ex:
        return "%s: %s; related lines %s" % (what, ex,
                                             _related(e, ":%d" % cp))
    if r != reason:
        return "%s: close reason %r, expected %r" % (what, r, reason)
    via = e.find(r"accept .* via 127\.0\.0\.1:%d\b" % cp)
    if via:
        return "%s: served as proxied: %s" % (what, via[0].string)
    h.log("ok: %s refused (%s at the client)" % (what, how))
    return None


# --- options -----------------------------------------------------------------

# (arguments, what the one error line must name)
BAD_PROXY_OPTIONS = [
    (["--proxy-protocol", "v1"], r"proxy[- ]from"),
    (["--proxy-protocol", "any"], r"proxy[- ]from"),
    (["--proxy-from", "127.0.0.1"], r"proxy[- ]protocol"),
    (["--proxy-protocol", "v3", "--proxy-from", "127.0.0.1"],
     r"v3|proxy[- ]protocol"),
    (["--proxy-protocol", "", "--proxy-from", "127.0.0.1"],
     r"''|proxy[- ]protocol"),
    (["--proxy-protocol", "any", "--proxy-from", "10.0.0.0/33"],
     r"/33|proxy[- ]from"),
    (["--proxy-protocol", "any", "--proxy-from", "::1/129"],
     r"/129|proxy[- ]from"),
    (["--proxy-protocol", "any", "--proxy-from", "garbage"],
     r"garbage|proxy[- ]from"),
    (["--proxy-protocol", "any", "--proxy-from", "127.0.0.1,garbage"],
     r"garbage|proxy[- ]from"),
    (["--proxy-protocol", "any", "--proxy-from", "127.0.0.1",
      "--proxy-timeout", "0"], r"proxy[- ]timeout"),
    (["--proxy-protocol", "any", "--proxy-from", "127.0.0.1",
      "--proxy-timeout", "61"], r"proxy[- ]timeout|61"),
    (["--proxy-protocol", "any", "--proxy-from", "127.0.0.1",
      "--proxy-timeout", "1s"], r"1s|proxy[- ]timeout"),
]


def case_proxy_usage():
    """Usage errors of the three options (status 2, one line naming the
    problem, nothing bound); --help lists them; valid values start."""
    failures = []
    for bad, rx in BAD_PROXY_OPTIONS:
        what = "echod %s" % " ".join(repr(a) if a == "" else a for a in bad)
        try:
            r = h.run_echod(["-p", "0", "-b", "127.0.0.1"] + bad, timeout=3)
        except subprocess.TimeoutExpired:
            failures.append("%s: accepted (still running after 3 s), "
                            "expected a usage error" % what)
            continue
        err = r.stderr.decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if r.returncode != 2:
            failures.append("%s: exit %s, expected 2; stderr %r" %
                            (what, r.returncode, err[:200]))
            continue
        first = lines[0] if lines else ""
        if re.search(r"(?i)unknown option|unrecognized", first):
            failures.append("%s: option not known: %r" % (what, first))
        elif not re.search(rx, first):
            failures.append("%s: first stderr line %r does not name the "
                            "problem (/%s/)" % (what, first, rx))
        if len(lines) > 3:
            failures.append("%s: %d lines on stderr, expected one plus a "
                            "usage hint" % (what, len(lines)))
        if re.search(r"listening", err):
            failures.append("%s: bound before validating" % what)
        h.log("%s -> %s" % (what, first))
    r = h.run_echod(["--help"])
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    for opt in ("--proxy-protocol", "--proxy-from", "--proxy-timeout"):
        if opt not in out:
            failures.append("--help does not mention %s" % opt)
    h.check(not failures, "\n".join(failures))
    # Valid values: every version, a list mixing families, CIDRs and bare
    # addresses, both ends of --proxy-timeout.
    for args in (["--proxy-protocol", "v1", "--proxy-from", "127.0.0.1"],
                 ["--proxy-protocol", "v2", "--proxy-from",
                  "10.0.0.0/8,::1,127.0.0.0/8,2001:db8::/32",
                  "--proxy-timeout", "1"],
                 ["--proxy-protocol", "any", "--proxy-from", "0.0.0.0/0",
                  "--proxy-timeout", "60"]):
        e = h.Echod(["-p", "0", "-b", "127.0.0.1"] + args)
        e.stop()


# --- trust -------------------------------------------------------------------

def case_proxy_untrusted():
    """A peer outside --proxy-from is closed by the parent at once, even
    with a valid header, even before it sends anything; logged with its
    own address and port, counted in the stats line (SIGUSR1 and exit)."""
    e = start("any", frm="10.0.0.0/8")
    try:
        s = h.connect(e.port)
        cp = h.cport(s)
        try:
            try:
                s.sendall(v1_tcp4("203.0.113.7", 41000) + b"echo me\n")
            except OSError:
                pass
            got, how = closed_without_echo(s, h.T(5))
        finally:
            s.close()
        h.eq(got, b"", "bytes echoed to an untrusted peer")
        h.log("untrusted peer 127.0.0.1:%d: %s" % (cp, how))
        want_log(e, r"reject 127\.0\.0\.1:%d reason=untrusted-proxy\b" % cp,
                 "reject line of 127.0.0.1:%d" % cp, [":%d" % cp])
        # Closed at once: not after a header deadline (5 s) or idle timeout.
        s = h.connect(e.port)
        cp2 = h.cport(s)
        try:
            t0 = time.monotonic()
            got, how = closed_without_echo(s, h.T(3))
            secs = time.monotonic() - t0
        finally:
            s.close()
        h.eq(got, b"", "bytes sent to a silent untrusted peer")
        h.check(secs < h.T(2), "a silent untrusted peer was closed after "
                "%.1fs, expected at once" % secs)
        time.sleep(0.2)
        for p in (cp, cp2):
            h.check(not e.find(r"(accept|close) \S*:%d\b" % p),
                    "a child served the untrusted peer's port %d: %s" %
                    (p, _related(e, ":%d" % p)))
        st = e.stats()
        h.eq(h.stat_int(st, "rejected_untrusted_proxy"), 2,
             "rejected_untrusted_proxy in the SIGUSR1 stats line")
        h.eq(h.stat_int(st, "rejected_per_ip"), 0, "rejected_per_ip")
        h.check(e.alive(), "echod died")
        mk = e.mark()
        e.stop()
        final = e.find(r"stats (.*)$", mk)
        h.check(final, "no stats line at exit")
        h.eq(h.stat_int(h.parse_kv(final[-1].group(1)),
                        "rejected_untrusted_proxy"), 2,
             "rejected_untrusted_proxy in the stats line at exit")
    finally:
        e.stop()


def _untrusted(e, host, what, bind=None):
    s = h.connect(e.port, host, bind=bind)
    cp = h.cport(s)
    try:
        try:
            s.sendall(v1_tcp4("203.0.113.9", next_sport()) + b"no\n")
        except OSError:
            pass
        got, _ = closed_without_echo(s, h.T(5))
    finally:
        s.close()
    h.eq(got, b"", "%s: bytes echoed to an untrusted peer" % what)
    want_log(e, r"reject %s reason=untrusted-proxy\b" % re.escape(
        fmt(bind or host, cp)), "%s: reject line" % what, [":%d" % cp])
    h.log("ok: %s rejected" % what)


def case_proxy_trust_dual_stack():
    """On a dual-stack listener an IPv4 peer matches IPv4 CIDRs (not as
    ::ffff:a.b.c.d); ::1 matches ::1; a list takes either; bare addresses
    and CIDRs both work."""
    e4 = start("any", frm="127.0.0.0/8", bind=None)
    e6 = start("any", frm="::1", bind=None)
    both = start("any", frm="10.0.0.0/8,::1/128,127.0.0.1", bind=None)
    try:
        sp = next_sport()
        cp = served(e4, v1_tcp4("203.0.113.7", sp), b"v4 peer\n",
                    what="IPv4 peer, 127.0.0.0/8")
        check_proxied(e4, cp, "203.0.113.7", sp, 8, what="IPv4 peer")
        h.check(not e4.find(r"::ffff:"), "an IPv4 peer logged as mapped")
        _untrusted(e4, "::1", "::1 with --proxy-from 127.0.0.0/8")

        sp = next_sport()
        cp = served(e6, v2_tcp6("2001:db8::1", sp), b"v6 peer\n",
                    host="::1", what="::1 peer, --proxy-from ::1")
        check_proxied(e6, cp, "2001:db8::1", sp, 8, peer="::1",
                      what="::1 peer")
        _untrusted(e6, "127.0.0.1", "127.0.0.1 with --proxy-from ::1")

        for host in ("127.0.0.1", "::1"):
            sp = next_sport()
            cp = served(both, v1_tcp4("198.51.100.4", sp), b"list\n",
                        host=host, what="%s in a list" % host)
            check_proxied(both, cp, "198.51.100.4", sp, 5, peer=host,
                          what="%s in a list" % host)
        _untrusted(both, "127.0.0.1", "127.0.0.2 not in the list",
                   bind="127.0.0.2")
    finally:
        for e in (e4, e6, both):
            e.stop()


# --- version 1 ---------------------------------------------------------------

def case_proxy_v1_tcp4():
    """v1 TCP4: header and data in one segment, header alone then data,
    the address and port bounds, 256 KB right behind the header."""
    e = start("v1")
    try:
        sp = next_sport()
        proxied_ok(e, v1_tcp4("203.0.113.7", sp), "203.0.113.7", sp,
                   what="v1 TCP4, header and data in one sendall")
        # The header alone, then the data later.
        sp = next_sport()
        s = h.connect(e.port)
        try:
            cp = h.cport(s)
            s.sendall(v1_tcp4("203.0.113.8", sp))
            h.expect_silence(s, 0.3)
            s.sendall(b"later\n")
            h.eq(h.recv_exact(s, 6), b"later\n", "data after a lone header")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        check_proxied(e, cp, "203.0.113.8", sp, 6, what="v1 lone header")
        proxied_ok(e, v1("TCP4", "255.255.255.255", "0.0.0.0", 65535, 0),
                   "255.255.255.255", 65535, what="v1 TCP4 bounds")
        sp = next_sport()
        proxied_ok(e, v1("TCP4", "0.0.0.0", "255.255.255.255", sp, 65535),
                   "0.0.0.0", sp, what="v1 TCP4 0.0.0.0")
        sp = next_sport()
        proxied_ok(e, v1_tcp4("192.0.2.200", sp), "192.0.2.200", sp,
                   data=h.pattern(256 * 1024, 1), what="v1 + 256 KB")
    finally:
        e.stop()


def case_proxy_v1_tcp6():
    """v1 TCP6: logged as [addr]:port, compressed as inet_ntop writes it;
    the longest valid line (104 bytes); an IPv4 tail."""
    e = start("v1")
    try:
        sp = next_sport()
        proxied_ok(e, v1("TCP6", "2001:db8::1", "2001:db8::2", sp, 7),
                   "2001:db8::1", sp, what="v1 TCP6")
        full = ":".join(["ffff"] * 8)
        line = v1("TCP6", full, full, 65535, 65535)
        h.eq(len(line), 104, "length of the longest TCP6 line")
        proxied_ok(e, line, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   65535, what="v1 TCP6 longest line")
        sp = next_sport()
        src = "2001:DB8:0:0:0:0:0:AB"
        proxied_ok(e, v1("TCP6", src, "::1", sp, 7), "2001:db8::ab", sp,
                   what="v1 TCP6 uncompressed upper case")
        sp = next_sport()
        tail = "64:ff9b::192.0.2.33"
        want = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(
            socket.AF_INET6, tail))
        proxied_ok(e, v1("TCP6", tail, "::1", sp, 7), want, sp,
                   what="v1 TCP6 with an IPv4 tail")
    finally:
        e.stop()


def case_proxy_v1_unknown():
    """v1 UNKNOWN (bare, with addresses, and a 107-byte line, the longest
    allowed): the proxy's own address is kept."""
    e = start("v1")
    try:
        own_ok(e, b"PROXY UNKNOWN\r\n", b"unknown bare\n",
               what="v1 UNKNOWN")
        own_ok(e, b"PROXY UNKNOWN 2001:db8::1 2001:db8::2 41000 7\r\n",
               b"unknown with addresses\n", what="v1 UNKNOWN with addresses")
        line = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
        h.eq(len(line), 107, "line length")
        own_ok(e, line, b"107\n", what="v1 UNKNOWN of 107 bytes")
    finally:
        e.stop()


# --- version 2 ---------------------------------------------------------------

def case_proxy_v2_tcp4():
    """v2 PROXY TCP4: header and data in one segment; the header alone."""
    e = start("v2")
    try:
        sp = next_sport()
        proxied_ok(e, v2_tcp4("203.0.113.7", sp), "203.0.113.7", sp,
                   what="v2 TCP4")
        proxied_ok(e, v2_tcp4("255.255.255.255", 65535, dport=0),
                   "255.255.255.255", 65535, what="v2 TCP4 bounds")
        sp = next_sport()
        s = h.connect(e.port)
        try:
            cp = h.cport(s)
            s.sendall(v2_tcp4("198.51.100.1", sp))
            h.expect_silence(s, 0.3)
            s.sendall(b"\r\n\r\n\x00later")
            h.eq(h.recv_exact(s, 10), b"\r\n\r\n\x00later",
                 "data after a lone header (starting like a signature)")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        check_proxied(e, cp, "198.51.100.1", sp, 10, what="v2 lone header")
    finally:
        e.stop()


def case_proxy_v2_tcp6():
    """v2 PROXY TCP6: logged as [addr]:port."""
    e = start("v2")
    try:
        sp = next_sport()
        proxied_ok(e, v2_tcp6("2001:db8::1", sp), "2001:db8::1", sp,
                   what="v2 TCP6")
        sp = next_sport()
        proxied_ok(e, v2_tcp6("2001:db8:1:2:3:4:5:6", sp),
                   "2001:db8:1:2:3:4:5:6", sp, what="v2 TCP6 full")
    finally:
        e.stop()


def case_proxy_v2_tlvs():
    """v2 with TLVs (ALPN, AUTHORITY, NOOP, UNIQUE_ID, an unassigned
    type, an empty one) skipped; the largest header the protocol allows
    (16 + 65535 bytes) with data right behind it."""
    e = start("v2")
    try:
        tlvs = (tlv(TLV_ALPN, b"h2") + tlv(TLV_AUTHORITY, b"example.com") +
                tlv(TLV_NOOP, bytes(7)) + tlv(TLV_UNIQUE_ID, bytes(range(16)))
                + tlv(0xE0, b"custom") + tlv(TLV_NOOP, b""))
        sp = next_sport()
        proxied_ok(e, v2_tcp4("203.0.113.7", sp, tlvs), "203.0.113.7", sp,
                   what="v2 TCP4 with TLVs")
        sp = next_sport()
        proxied_ok(e, v2_tcp6("2001:db8::7", sp, tlvs), "2001:db8::7", sp,
                   what="v2 TCP6 with TLVs")
        sp = next_sport()
        big = tlv(TLV_NOOP, b"\x00" * (65535 - 12 - 3))
        hdr = v2_tcp4("203.0.113.9", sp, big)
        h.eq(len(hdr), 16 + 65535, "largest header")
        proxied_ok(e, hdr, "203.0.113.9", sp, data=h.pattern(100000, 2),
                   what="v2 of 65551 bytes + 100 kB")
        sp = next_sport()
        ssl = ssl_tlv(tlv(SSL_VERSION, b"TLSv1.3") + tlv(SSL_CN, b"client"))
        proxied_ok(e, v2_tcp4("203.0.113.11", sp, ssl + tlvs),
                   "203.0.113.11", sp, what="v2 with an SSL TLV")
        sp = next_sport()
        uid = tlv(TLV_UNIQUE_ID, b"u" * 128)
        proxied_ok(e, v2_tcp4("203.0.113.10", sp, uid), "203.0.113.10", sp,
                   what="v2 UNIQUE_ID of 128 bytes")
    finally:
        e.stop()


def case_proxy_v2_crc32c():
    """v2 with a correct PP2_TYPE_CRC32C TLV (first, between others, last;
    TCP4, TCP6, LOCAL) is accepted."""
    e = start("v2")
    try:
        sp = next_sport()
        hdr = v2_crc(CMD_PROXY, FAM_TCP4, addr4("203.0.113.7", "192.0.2.1",
                                                sp, 7))
        proxied_ok(e, hdr, "203.0.113.7", sp, what="v2 TCP4 CRC32C only")
        sp = next_sport()
        hdr = v2_crc(CMD_PROXY, FAM_TCP4, addr4("203.0.113.8", "192.0.2.1",
                                                sp, 7),
                     before=tlv(TLV_ALPN, b"http/1.1"),
                     after=tlv(TLV_AUTHORITY, b"echo.example") +
                     tlv(TLV_NOOP, bytes(5)))
        proxied_ok(e, hdr, "203.0.113.8", sp, what="v2 TCP4 CRC32C + TLVs")
        sp = next_sport()
        hdr = v2_crc(CMD_PROXY, FAM_TCP6, addr6("2001:db8::5", "::1", sp, 7),
                     before=tlv(TLV_UNIQUE_ID, b"id-42"))
        proxied_ok(e, hdr, "2001:db8::5", sp, what="v2 TCP6 CRC32C")
        own_ok(e, v2_crc(CMD_LOCAL, FAM_UNSPEC, b""), b"local crc\n",
               what="v2 LOCAL with CRC32C")
    finally:
        e.stop()


def case_proxy_v2_local():
    """v2 LOCAL (with an address block, which is ignored, and without),
    and PROXY with family UNSPEC: the proxy's own address is kept."""
    e = start("v2")
    try:
        own_ok(e, v2(CMD_LOCAL, FAM_UNSPEC, b""), b"local\n",
               what="v2 LOCAL UNSPEC")
        own_ok(e, v2(CMD_LOCAL, FAM_TCP4, addr4("203.0.113.7", "192.0.2.1",
                                                41000, 7)),
               b"local with addresses\n", what="v2 LOCAL TCP4 block")
        own_ok(e, v2(CMD_LOCAL, FAM_UNSPEC, tlv(TLV_NOOP, b"ab")),
               b"local tlv\n", what="v2 LOCAL with a TLV")
        own_ok(e, v2(CMD_PROXY, FAM_UNSPEC, b""), b"unspec\n",
               what="v2 PROXY UNSPEC")
        h.check(not e.find(r"accept .* via "), "a LOCAL connection logged "
                "with via: %s" % [m.string for m in e.find(r" via ")])
    finally:
        e.stop()


def case_proxy_byte_by_byte():
    """Header, then data, one byte per segment with small sleeps (v1
    TCP4, v1 TCP6, v2 with TLVs and a CRC32C): served as a whole."""
    e = start("any")
    try:
        cases = []
        sp = next_sport()
        cases.append((v1_tcp4("203.0.113.7", sp), "203.0.113.7", sp, "v1"))
        sp = next_sport()
        cases.append((v1("TCP6", "2001:db8::1", "2001:db8::2", sp, 7),
                      "2001:db8::1", sp, "v1 TCP6"))
        sp = next_sport()
        cases.append((v2_crc(CMD_PROXY, FAM_TCP4,
                             addr4("198.51.100.7", "192.0.2.1", sp, 7),
                             before=tlv(TLV_ALPN, b"h2"),
                             after=tlv(TLV_NOOP, bytes(3))),
                      "198.51.100.7", sp, "v2 CRC32C"))
        for hdr, src, sport, what in cases:
            data = b"byte by byte %s\n" % what.encode()
            s = h.connect(e.port)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                cp = h.cport(s)
                for b in hdr + data:
                    s.sendall(bytes([b]))
                    time.sleep(0.004)
                got = h.recv_exact(s, len(data))
                h.eq(got, data, "%s: echo of the data" % what)
                s.shutdown(socket.SHUT_WR)
                h.expect_eof(s)
            finally:
                s.close()
            check_proxied(e, cp, src, sport, len(data), what=what)
            h.log("ok: %s byte by byte" % what)
    finally:
        e.stop()


# --- malformed headers, versions -------------------------------------------

def _malformed():
    a4 = addr4("203.0.113.7", "192.0.2.1", 41000, 7)
    a6 = addr6("2001:db8::1", "2001:db8::2", 41000, 7)
    good_crc = v2_crc(CMD_PROXY, FAM_TCP4, a4, before=tlv(TLV_ALPN, b"h2"))
    return [
        ("v2 wrong CRC32C", v2_crc(CMD_PROXY, FAM_TCP4, a4,
                                   before=tlv(TLV_ALPN, b"h2"), flip=1)),
        ("v2 CRC32C right but a later byte changed",
         good_crc[:-1] + bytes([good_crc[-1] ^ 0x20])),
        ("v1 leading zero in an address",
         b"PROXY TCP4 01.2.3.4 192.0.2.1 41000 7\r\n"),
        ("v1 octet 256", b"PROXY TCP4 203.0.113.256 192.0.2.1 41000 7\r\n"),
        ("v1 port 65536", b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 7\r\n"),
        ("v1 leading zero in a port",
         b"PROXY TCP4 203.0.113.7 192.0.2.1 041000 7\r\n"),
        ("v1 two spaces", b"PROXY TCP4  203.0.113.7 192.0.2.1 41000 7\r\n"),
        ("v1 LF without CR", b"PROXY TCP4 203.0.113.7 192.0.2.1 41000 7\n"),
        ("v1 TCP4 with an IPv6 address",
         b"PROXY TCP4 2001:db8::1 192.0.2.1 41000 7\r\n"),
        ("v1 TCP5", b"PROXY TCP5 203.0.113.7 192.0.2.1 41000 7\r\n"),
        ("v1 no CRLF within 107 bytes", b"PROXY UNKNOWN " + b"x" * 150),
        ("v1 CRLF ending at byte 108",
         b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n"),
        ("v2 family UDP over IPv4 (0x12)", v2(CMD_PROXY, FAM_UDP4, a4)),
        ("v2 family UNIX (0x31)", v2(CMD_PROXY, FAM_UNIX, bytes(216))),
        ("v2 length shorter than the address block",
         v2(CMD_PROXY, FAM_TCP4, a4[:8])),
        ("v2 TLV overrunning the header",
         v2(CMD_PROXY, FAM_TCP4, a4 + bytes([TLV_NOOP]) +
            struct.pack(">H", 10) + b"abcd")),
        # the length fields: 0, one short, the TLV's 0xffff
        ("v2 TCP4 length 0", v2(CMD_PROXY, FAM_TCP4, b"")),
        ("v2 TCP4 length 11", v2(CMD_PROXY, FAM_TCP4, a4[:11])),
        ("v2 TCP6 length 35", v2(CMD_PROXY, FAM_TCP6, a6[:35])),
        ("v2 TLV length 0xffff",
         v2(CMD_PROXY, FAM_TCP4, a4 + bytes([TLV_NOOP]) + b"\xff\xff" +
            bytes(8))),
        ("v2 TLV header cut (2 bytes left)",
         v2(CMD_PROXY, FAM_TCP4, a4 + bytes([TLV_NOOP, 0]))),
        ("v2 CRC32C TLV of 3 bytes",
         v2(CMD_PROXY, FAM_TCP4, a4 + tlv(TLV_CRC32C, b"abc"))),
        ("v2 two CRC32C TLVs",
         v2_crc(CMD_PROXY, FAM_TCP4, a4, after=tlv(TLV_CRC32C, bytes(4)))),
        ("v2 UNIQUE_ID of 129 bytes",
         v2(CMD_PROXY, FAM_TCP4, a4 + tlv(TLV_UNIQUE_ID, b"u" * 129))),
        ("v2 SSL TLV of 4 bytes",
         v2(CMD_PROXY, FAM_TCP4, a4 + tlv(TLV_SSL, bytes(4)))),
        ("v2 SSL sub-TLV overrunning the SSL TLV",
         v2(CMD_PROXY, FAM_TCP4, a4 + tlv(TLV_SSL, bytes(5) + bytes(
             [SSL_CN]) + struct.pack(">H", 9) + b"abc") + tlv(TLV_NOOP,
                                                              bytes(9)))),
        ("v2 version 1", v2(CMD_PROXY, FAM_TCP4, a4, ver=1)),
        ("v2 command 2", v2(2, FAM_TCP4, a4)),
        ("no header at all", b"hello\n"),
    ]


def case_proxy_malformed():
    """Each malformed header closes its connection with reason
    `protocol-error: bad proxy header` and not one byte echoed (not the
    header, not the data after it); echod goes on serving."""
    e = start("any")
    try:
        failures = []
        for what, hdr in _malformed():
            data = b"" if what == "no header at all" else b"data after\n"
            f = refused(e, hdr, what, data=data)
            if f:
                failures.append(f)
        h.check(not failures, "malformed headers:\n  " +
                "\n  ".join(failures))
        sp = next_sport()
        proxied_ok(e, v1_tcp4("203.0.113.7", sp), "203.0.113.7", sp,
                   what="a good header after the bad ones")
        h.check(e.alive(), "echod died")
    finally:
        e.stop()


def case_proxy_version_select():
    """--proxy-protocol v1 refuses version 2 headers and v2 refuses
    version 1 (bad proxy header); each serves its own; any serves both."""
    e1 = start("v1")
    e2 = start("v2")
    ea = start("any")
    try:
        failures = []
        sp = next_sport()
        for what, f in (
                ("v1 listener, v2 PROXY TCP4",
                 refused(e1, v2_tcp4("203.0.113.7", sp), "v2 to v1")),
                ("v1 listener, v2 LOCAL",
                 refused(e1, v2(CMD_LOCAL, FAM_UNSPEC, b""), "LOCAL to v1")),
                ("v2 listener, v1 TCP4",
                 refused(e2, v1_tcp4("203.0.113.7", sp), "v1 to v2")),
                ("v2 listener, v1 UNKNOWN",
                 refused(e2, b"PROXY UNKNOWN\r\n", "UNKNOWN to v2"))):
            if f:
                failures.append(f)
        h.check(not failures, "\n".join(failures))
        for e, hdr_of in ((e1, lambda s: v1_tcp4("203.0.113.7", s)),
                          (e2, lambda s: v2_tcp4("203.0.113.7", s)),
                          (ea, lambda s: v1_tcp4("203.0.113.7", s)),
                          (ea, lambda s: v2_tcp4("203.0.113.7", s))):
            sp = next_sport()
            proxied_ok(e, hdr_of(sp), "203.0.113.7", sp,
                       what="%s listener" % e.args[e.args.index(
                           "--proxy-protocol") + 1])
    finally:
        for e in (e1, e2, ea):
            e.stop()


# --- header deadline ---------------------------------------------------------

def _until_closed(s, t0, trickle=b"", step=0.1, limit=6.0):
    """Wait for the server to close s (sending trickle one byte per step
    meanwhile); (seconds since t0, bytes received)."""
    got = bytearray()
    i = 0
    s.settimeout(step)
    deadline = time.monotonic() + h.T(limit)
    while time.monotonic() < deadline:
        if i < len(trickle):
            try:
                s.send(trickle[i:i + 1])
                i += 1
            except OSError:
                return time.monotonic() - t0, bytes(got)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0, bytes(got)
        if not chunk:
            return time.monotonic() - t0, bytes(got)
        got += chunk
    raise h.TestFailure("not closed within %.1fs (got %r)" %
                        (h.T(limit), bytes(got[:80])))


def case_proxy_timeout():
    """--proxy-timeout 1 (with -t 30): half a v1 header, half a v2 header,
    nothing at all, and a v2 header trickled a byte every 0.1 s (progress,
    but too slow) are each closed about 1 s after the accept with reason
    `protocol-error: proxy header timeout`; a header that completes in
    time is served, and the deadline no longer applies after it."""
    e = start("any", extra=["--proxy-timeout", "1"])
    try:
        slow = v2_tcp4("203.0.113.7", 41000, tlv(TLV_NOOP, bytes(100)))
        for what, first, trickle in (
                ("half a v1 header", b"PROXY TCP4 203.0", b""),
                ("half a v2 header", V2_SIG + b"\x21\x11", b""),
                ("nothing", b"", b""),
                ("v2 header trickled", b"", slow)):
            s = h.connect(e.port)
            cp = h.cport(s)
            t0 = time.monotonic()
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if first:
                    s.sendall(first)
                secs, got = _until_closed(s, t0, trickle)
            finally:
                s.close()
            h.eq(got, b"", "%s: bytes echoed" % what)
            h.check(0.8 <= secs <= h.T(4), "%s: closed %.2fs after the "
                    "accept, expected about 1 s (--proxy-timeout 1)"
                    % (what, secs))
            h.eq(e.wait_close(cp), "protocol-error: proxy header timeout",
                 "%s: close reason" % what)
            h.log("ok: %s closed after %.2fs" % (what, secs))
        # In time, in three pieces over 0.45 s: served; then idle longer
        # than --proxy-timeout and still served (-t 30 holds).
        sp = next_sport()
        hdr = v1_tcp4("203.0.113.8", sp)
        s = h.connect(e.port)
        try:
            cp = h.cport(s)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in (hdr[:10], hdr[10:30], hdr[30:]):
                s.sendall(piece)
                time.sleep(0.15)
            s.sendall(b"in time\n")
            h.eq(h.recv_exact(s, 8), b"in time\n", "echo after a slow header")
            h.expect_silence(s, 1.6)
            s.sendall(b"later\n")
            h.eq(h.recv_exact(s, 6), b"later\n",
                 "echo after idling past --proxy-timeout")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        check_proxied(e, cp, "203.0.113.8", sp, 14, what="header in time")
    finally:
        e.stop()


# --- --max-per-ip counts the real client -------------------------------------

def _hold(e, hdr, msg, what):
    s = h.connect(e.port)
    try:
        got = exchange(s, hdr, msg, what=what)
    except BaseException:
        s.close()
        raise
    h.eq(got, msg, "%s: echo" % what)
    return s


def case_proxy_max_per_ip():
    """--max-per-ip 1 counts the address in the header, not the proxy's:
    two sources through one proxy address are both served; a second
    connection from a source already connected is rejected (`reject
    SRC:SPORT reason=max-per-ip active=1`, nothing echoed); once the
    first closes, that source is served again."""
    e = start("any", extra=["--max-per-ip", "1"])
    socks = []
    try:
        a = _hold(e, v1_tcp4("203.0.113.7", 41000), b"first\n", "first")
        socks.append(a)
        b = _hold(e, v2_tcp4("203.0.113.8", 41001), b"other source\n",
                  "another source through the same proxy address")
        socks.append(b)
        want_log(e, r"accept 203\.0\.113\.7:41000 via 127\.0\.0\.1:%d\s*$"
                 % h.cport(a), "accept of the first", ["203.0.113.7"])
        mk = e.mark()
        c = h.connect(e.port)
        socks.append(c)
        try:
            c.sendall(v2_tcp4("203.0.113.7", 41002) + b"over the limit\n")
        except OSError:
            pass
        got, how = closed_without_echo(c, h.T(5))
        h.eq(got, b"", "bytes echoed to the connection over the limit")
        want_log(e, r"reject 203\.0\.113\.7:41002 reason=max-per-ip "
                 r"active=1\b", "reject line of the second 203.0.113.7",
                 ["203.0.113.7", "reject"], start=mk)
        h.check(not e.find(r"accept 203\.0\.113\.7:41002\b"),
                "the connection over the limit was served")
        h.log("over the limit: closed (%s)" % how)
        # Both held connections still work.
        for s, msg in ((a, b"still\n"), (b, b"still too\n")):
            s.sendall(msg)
            h.eq(h.recv_exact(s, len(msg)), msg, "held connection")
        st = e.stats()
        h.eq(h.stat_int(st, "rejected_per_ip"), 1, "rejected_per_ip")
        h.eq(h.stat_int(st, "rejected_untrusted_proxy"), 0,
             "rejected_untrusted_proxy")
        a.close()
        want_log(e, r"close 203\.0\.113\.7:41000 ", "close of the first",
                 ["203.0.113.7:41000"])
        deadline = time.monotonic() + h.T(5)
        port = 41003
        while True:
            s = h.connect(e.port)
            try:
                s.sendall(v1_tcp4("203.0.113.7", port) + b"x")
                if h.recv_exact(s, 1, h.T(0.5)) == b"x":
                    break
            except (h.TestFailure, OSError):
                pass
            finally:
                s.close()
            h.check(time.monotonic() < deadline, "203.0.113.7 not served "
                    "again after its connection closed")
            port += 1
            time.sleep(0.1)
        want_log(e, r"accept 203\.0\.113\.7:%d via 127\.0\.0\.1:\d+\s*$"
                 % port, "accept once the first closed", ["203.0.113.7"])
    finally:
        for s in socks:
            s.close()
        e.stop()


# --- metrics -----------------------------------------------------------------

PARSER = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + "".join("|%s=%s" % kv for kv in sorted(s.labels.items()))
        out[key] = s.value
print(json.dumps(out))
"""

UNTRUSTED = "echod_connections_rejected_total|reason=untrusted-proxy"
PER_IP = "echod_connections_rejected_total|reason=max-per-ip"


def parse_metrics(path):
    r = subprocess.run(["/usr/bin/python3", "-c", PARSER, path],
                       capture_output=True, text=True, timeout=h.T(20))
    h.check(r.returncode == 0, "Prometheus parser refused %s: %s"
            % (path, r.stderr))
    return json.loads(r.stdout)


def case_proxy_metrics():
    """--metrics-file: echod_connections_rejected_total{reason=
    "untrusted-proxy"} counts the peers outside --proxy-from (after
    SIGUSR1 and at exit); a proxied connection is not counted there."""
    path = os.path.join(h.TMPDIR, "echod.prom")
    e = h.Echod(["-p", "0", "-b", "127.0.0.1", "--proxy-protocol", "any",
                 "--proxy-from", "10.0.0.0/8,127.0.0.2",
                 "--metrics-file", path, "--metrics-interval", "3600"])
    try:
        sp = next_sport()
        cp = served(e, v1_tcp4("203.0.113.7", sp), b"trusted\n",
                    bind="127.0.0.2", what="trusted 127.0.0.2")
        check_proxied(e, cp, "203.0.113.7", sp, 8, peer="127.0.0.2",
                      what="trusted 127.0.0.2")
        for _ in range(3):
            s = h.connect(e.port)
            try:
                try:
                    s.sendall(v1_tcp4("203.0.113.7", next_sport()))
                except OSError:
                    pass
                got, _ = closed_without_echo(s, h.T(5))
                h.eq(got, b"", "echo to an untrusted peer")
            finally:
                s.close()
        deadline = time.monotonic() + h.T(10)
        m = {}
        while True:
            st = e.stats()  # SIGUSR1 also rewrites the file
            time.sleep(0.2)
            if os.path.exists(path):
                m = parse_metrics(path)
                if m.get(UNTRUSTED) == 3.0:
                    break
            h.check(time.monotonic() < deadline, "%s is %r, expected 3 "
                    "(file %s)" % (UNTRUSTED, m.get(UNTRUSTED),
                                   "present" if m else "absent"))
            time.sleep(0.3)
        h.eq(m.get(PER_IP), 0.0, PER_IP)
        h.eq(h.stat_int(st, "rejected_untrusted_proxy"), 3,
             "rejected_untrusted_proxy in the stats line")
        e.stop()
        m = parse_metrics(path)
        h.eq(m.get(UNTRUSTED), 3.0, UNTRUSTED + " at exit")
    finally:
        e.stop()


# --- behind a real HAProxy ---------------------------------------------------

HAPROXY_CFG = """\
global
    maxconn 100

defaults
    mode tcp
    timeout connect 10s
    timeout client 10s
    timeout server 10s

frontend fe
    bind 127.0.0.1:%(fport)d
    default_backend be

backend be
    server echod 127.0.0.1:%(eport)d %(send)s
"""


def haproxy_bin():
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    h.check(os.access(path, os.X_OK), "haproxy is not installed (the test "
            "command installs Debian's haproxy)")
    return path


def listening(port, host="0100007F"):
    """Whether something listens on 127.0.0.1:port (/proc/net/tcp; no
    probe connection that HAProxy would forward to echod)."""
    want = "%s:%04X" % (host, port)
    with open("/proc/net/tcp") as f:
        for ln in f.readlines()[1:]:
            parts = ln.split()
            if parts[1] == want and parts[3] == "0A":
                return True
    return False


def start_haproxy(eport, send):
    """HAProxy in the foreground (-db) with a config of our own: a TCP
    frontend on a free port of 127.0.0.1, echod as the one server, with
    `send` (send-proxy or send-proxy-v2 ...). Returns (process, port)."""
    binary = haproxy_bin()
    fport = h.free_port()
    d = os.path.join(h.TMPDIR, "haproxy")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG % {"fport": fport, "eport": eport, "send": send})
    logf = open(os.path.join(d, "haproxy.log"), "wb")
    r = subprocess.run([binary, "-c", "-f", cfg], capture_output=True,
                       timeout=h.T(10))
    h.check(r.returncode == 0, "haproxy -c refused the config:\n%s" %
            (r.stdout + r.stderr).decode("utf-8", "replace"))
    p = h.popen([binary, "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                stdout=logf, stderr=subprocess.STDOUT, cwd=d)
    logf.close()
    h.log("haproxy pid %d on 127.0.0.1:%d -> echod :%d (%s)" %
          (p.pid, fport, eport, send))
    deadline = time.monotonic() + h.T(10)
    while not listening(fport):
        if p.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(d, "haproxy.log"), "rb") as f:
                out = f.read().decode("utf-8", "replace")
            h.terminate(p)
            raise h.TestFailure("haproxy did not listen on %d (exit %s):\n%s"
                                % (fport, p.poll(), out[-2000:]))
        time.sleep(0.05)
    return p, fport


def through_haproxy(send, health_local=False):
    """1 MB from 127.0.0.2 through HAProxy to echod, sha256-checked;
    echod logs the client (127.0.0.2 and its port) via HAProxy. With
    health_local, HAProxy's health checks (a v2 LOCAL header, then a
    reset) are served as connections from HAProxy itself."""
    e = start("any", frm="127.0.0.1")
    p = None
    try:
        p, fport = start_haproxy(e.port, send)
        data = h.pattern(1 << 20, 8)
        s = h.connect(fport, bind="127.0.0.2")
        try:
            cp = h.cport(s)
            got = exchange(s, b"", data, h.T(20), what="1 MB via HAProxy")
            h.eq(hashlib.sha256(got).hexdigest(),
                 hashlib.sha256(data).hexdigest(),
                 "sha256 of 1 MB echoed through HAProxy")
            s.shutdown(socket.SHUT_WR)
            h.expect_eof(s)
        finally:
            s.close()
        m = want_log(e, r"accept 127\.0\.0\.2:%d via 127\.0\.0\.1:(\d+)\s*$"
                     % cp, "accept line naming 127.0.0.2:%d via HAProxy" % cp,
                     ["127.0.0.2", "accept"])
        hport = int(m.group(1))
        h.check(hport not in (fport, e.port, cp), "via port %d" % hport)
        m = want_log(e, r"close 127\.0\.0\.2:%d in=(\d+) out=(\d+) .*"
                     r"reason=(.+?)\s*$" % cp, "close line of 127.0.0.2:%d"
                     % cp, ["127.0.0.2"])
        h.eq((int(m.group(1)), int(m.group(2))), (1 << 20, 1 << 20),
             "in=/out= (the header not counted)")
        h.eq(m.group(3), "eof", "close reason")
        if health_local:
            m = want_log(e, r"accept 127\.0\.0\.1:(\d+)\s*$",
                         "accept line of a health check (LOCAL: HAProxy's "
                         "own address, no via)", ["accept"])
            chk = int(m.group(1))
            r = e.wait_close(chk)
            h.check(r in ("reset", "eof"), "health check 127.0.0.1:%d "
                    "closed with reason %r, expected reset or eof"
                    % (chk, r))
            h.log("health check from 127.0.0.1:%d served (%s)" % (chk, r))
        bad = e.find(r"protocol-error")
        h.check(not bad, "protocol errors behind HAProxy: %s" %
                [b.string for b in bad])
        h.log("ok: 1 MB through HAProxy (%s), echod saw 127.0.0.2:%d via "
              "127.0.0.1:%d" % (send, cp, hport))
    finally:
        if p is not None:
            h.terminate(p)
        e.stop()


def case_proxy_haproxy_v1():
    """Behind HAProxy with send-proxy (version 1)."""
    through_haproxy("send-proxy")


def case_proxy_haproxy_v2():
    """Behind HAProxy with send-proxy-v2, with its CRC32C TLV, and its
    TCP health checks (which send LOCAL headers)."""
    through_haproxy("send-proxy-v2 proxy-v2-options crc32c check inter 500",
                    health_local=True)


if __name__ == "__main__":
    h.main(globals())
