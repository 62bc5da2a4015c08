#!/usr/bin/env python3
"""proxy_seeds.py - writes the named seeds of corpus/proxy_fuzz/.

The input layout is documented in fuzz/proxy_fuzz.c: byte 0 selects the
versions accepted (bits 0-1: any, v1, v2, any) and the mode (bits 2-3:
encode, encode, raw, mutate), bytes 1-2 seed the splits, then come the raw
bytes (raw mode) or the encoder's field stream (encode; mutate after 3
bytes saying what to change). Headers here are built by this script, with
its own CRC32C, apart from the parser and from the harness's encoder. Run it
from the top of the tree to regenerate the seeds:
python3 fuzz/proxy_seeds.py
"""
import os
import struct

ANY, V1, V2 = 0, 1, 2
ENCODE, RAW, MUTATE = 0, 2, 3
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
DATA = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def crc32c(b):
    c = 0xffffffff
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xffffffff


assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 check value


def seed(mode, payload, acc=ANY, s=0x1234):
    return bytes([acc | mode << 2, s & 0xff, s >> 8]) + payload


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def v2(cmd, fam, addr=b"", tlvs=b"", crc=None, length=None):
    """crc: None none, 'good' appended and right, 'bad' appended and off."""
    body = addr + tlvs
    if crc is not None:
        body += tlv(0x03, b"\0\0\0\0")
    n = len(body) if length is None else length
    h = SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", n) + body
    if crc is not None:
        c = crc32c(h) ^ (1 if crc == "bad" else 0)
        h = h[:-4] + struct.pack(">I", c)
    return h


A4 = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 41000, 443)
A6 = (bytes.fromhex("20010db8000000000000000000000001") +
      bytes.fromhex("20010db8000000000000000000000002") +
      struct.pack(">HH", 41000, 443))
SSL = tlv(0x20, b"\x07\0\0\0\0" + tlv(0x21, b"TLSv1.3") +
          tlv(0x22, b"example.com") + tlv(0x23, b"TLS_AES_128_GCM_SHA256") +
          tlv(0x24, b"RSA-SHA256") + tlv(0x25, b"RSA2048") +
          tlv(0x26, b"secp256r1") + tlv(0x27, b"rsa_pss_rsae_sha256") +
          tlv(0x28, b"\x30\x82\x01\x0a"))
FF6 = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

raw = {
    # v1 accepted
    "v1-tcp4-text-example": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + DATA,
    "v1-tcp4-max": b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
    "v1-tcp4-zeros": b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\nx",
    "v1-tcp6-compressed": b"PROXY TCP6 2001:db8::1 2001:db8::2 41000 443\r\n" + DATA,
    "v1-tcp6-full-104": b"PROXY TCP6 " + FF6 + b" " + FF6 + b" 65535 65535\r\n",
    "v1-tcp6-ipv4-tail": b"PROXY TCP6 ::ffff:192.0.2.1 64:ff9b::198.51.100.7 1 2\r\n",
    "v1-tcp6-upper-zeros": b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 0001:0db8::0002 5 6\r\n",
    "v1-unknown-short": b"PROXY UNKNOWN\r\n" + DATA,
    "v1-unknown-worst-107": b"PROXY UNKNOWN " + FF6 + b" " + FF6 + b" 65535 65535\r\n",
    "v1-unknown-junk": b"PROXY UNKNOWN \x01\xff\x00 1.2.3.4\r\nrest",
    # v1 rejected
    "v1-reject-signature-http": b"GET / HTTP/1.1\r\n\r\n",
    "v1-reject-family-udp4": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-reject-leading-zero-octet": b"PROXY TCP4 10.0.0.1 01.2.3.4 1 2\r\n",
    "v1-reject-leading-zero-port": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
    "v1-reject-port-65536": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
    "v1-reject-lone-lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v1-reject-double-space": b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
    "v1-reject-ipv6-two-gaps": b"PROXY TCP6 1::2::3 ::1 1 2\r\n",
    "v1-reject-too-long": b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
    "v1-reject-tcp4-ipv6-addr": b"PROXY TCP4 ::1 ::1 1 2\r\n",
    "v1-reject-signature-proxz": b"PROXZ TCP4",
    "v1-reject-bad-char-sign": b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
    "v1-reject-three-octets": b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    "v1-reject-one-field": b"PROXY TCP4 1.2.3.4\r\n",
    "v1-reject-five-fields": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    "v1-reject-ipv6-nine-groups": b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
    "v1-reject-ipv6-trailing-colon": b"PROXY TCP6 1::2: ::1 1 2\r\n",
    "v1-reject-ipv6-short-ipv4-tail": b"PROXY TCP6 ::1.2.3 ::1 1 2\r\n",
    # v2 accepted
    "v2-proxy-tcp4": v2(1, 0x11, A4) + DATA,
    "v2-proxy-tcp6": v2(1, 0x21, A6) + DATA,
    "v2-local-unspec": v2(0, 0x00) + DATA,
    "v2-local-tcp4-block-skipped": v2(0, 0x11, A4),
    "v2-proxy-unspec-kept": v2(1, 0x00, b"", tlv(0x04, b"pad")),
    "v2-tlv-alpn": v2(1, 0x11, A4, tlv(0x01, b"h2")),
    "v2-tlv-authority": v2(1, 0x11, A4, tlv(0x02, b"example.com")),
    "v2-tlv-noop": v2(1, 0x11, A4, tlv(0x04, b"") + tlv(0x04, b"\0" * 5)),
    "v2-tlv-unique-id-128": v2(1, 0x11, A4, tlv(0x05, bytes(range(128)))),
    "v2-tlv-ssl-every-subtype": v2(1, 0x21, A6, SSL),
    "v2-tlv-netns": v2(1, 0x11, A4, tlv(0x30, b"blue")),
    "v2-tlv-custom-experiment-future": v2(1, 0x11, A4, tlv(0xe0, b"c") + tlv(0xf0, b"") + tlv(0xff, b"f") + tlv(0x00, b"")),
    "v2-crc-good-tcp4": v2(1, 0x11, A4, tlv(0x01, b"h2"), crc="good"),
    "v2-crc-good-tcp6-ssl": v2(1, 0x21, A6, SSL + tlv(0x02, b"a.b"), crc="good") + DATA,
    "v2-crc-good-local": v2(0, 0x00, b"", b"", crc="good"),
    # v2 rejected
    "v2-reject-signature": SIG[:7] + b"q" + SIG[8:] + b"\x21\x11\x00\x0c" + A4,
    "v2-reject-version-1": SIG + b"\x11\x11\x00\x0c" + A4,
    "v2-reject-command-2": SIG + b"\x22\x11\x00\x0c" + A4,
    "v2-reject-family-udp4": v2(1, 0x12, A4),
    "v2-reject-family-unix": v2(1, 0x31, b"\0" * 216),
    "v2-reject-length-short": v2(1, 0x11, A4[:11], length=11),
    "v2-reject-tlv-overrun": v2(1, 0x11, A4, b"\x04\x00\x05ab", length=17),
    "v2-reject-tlv-header-cut": v2(1, 0x11, A4, b"\x04\x00", length=14),
    "v2-reject-tlv-len-ffff": v2(1, 0x11, A4, b"\x04\xff\xffabc", length=18),
    "v2-reject-ssl-sub-overrun": v2(1, 0x11, A4, tlv(0x20, b"\x01\0\0\0\0\x21\x00\x09TLS")),
    "v2-reject-ssl-sub-header-cut": v2(1, 0x11, A4, tlv(0x20, b"\x01\0\0\0\0\x21\x00")),
    "v2-reject-ssl-too-short": v2(1, 0x11, A4, tlv(0x20, b"\x01\0\0")),
    "v2-reject-crc-len-3": v2(1, 0x11, A4, tlv(0x03, b"\0\0\0")),
    "v2-reject-two-crcs": v2(1, 0x11, A4, tlv(0x03, b"\0\0\0\0"), crc="good"),
    "v2-reject-unique-id-129": v2(1, 0x11, A4, tlv(0x05, b"u" * 129)),
    "v2-reject-crc-bad": v2(1, 0x11, A4, tlv(0x01, b"h2"), crc="bad"),
}

# Encoder field streams (see the layout in fuzz/proxy_fuzz.c).
def enc_v1(kind, form=0, addrs=b"", ports=b"", tail=None):
    if kind == 2:
        return bytes([0, 2]) + (bytes([tail[0]]) + tail[1] if tail else b"\0")
    return bytes([0, kind, form]) + addrs + ports


def enc_v2(cf, addr, tb, tlvs=b""):
    return bytes([1, cf]) + addr + bytes([tb]) + tlvs


ADDR4 = bytes([203, 0, 113, 7, 127, 0, 0, 1])
ADDR6 = bytes.fromhex("fe800000000000000000000000000001") + bytes(15) + b"\x01"
PORTS = struct.pack(">HH", 41000, 7)
encode = {
    "enc-v1-tcp4": enc_v1(0, 0, ADDR4, PORTS) + DATA,
    "enc-v1-tcp6-ntop": enc_v1(1, 0, ADDR6, PORTS) + DATA,
    "enc-v1-tcp6-full-hex": enc_v1(1, 1, ADDR6, PORTS),
    "enc-v1-tcp6-full-upper": enc_v1(1, 2, ADDR6, PORTS),
    "enc-v1-tcp6-first-zero-run": enc_v1(1, 3, ADDR6, PORTS),
    "enc-v1-tcp6-ipv4-tail": enc_v1(1, 4, ADDR6, PORTS),
    "enc-v1-unknown-tail": enc_v1(2, tail=(40, b"any bytes at all \x00\x01\xff" + b"z" * 20)) + DATA,
    # v2 PROXY TCP4, 3 TLVs (ALPN "h2", SSL with one sub-TLV, NETNS), CRC32C second
    "enc-v2-tcp4-tlvs-crc": enc_v2(0x03, A4, 0x1b,
                                   b"\x00\x02h2" +
                                   b"\x04\x01\x07\0\0\0\0" + b"\x21\x03TLS" +
                                   b"\x05\x04blue") + DATA,
    # v2 PROXY TCP6, one TLV of 65000 pattern bytes (bit 7, length 0xff)
    "enc-v2-tcp6-big-tlv": enc_v2(0x05, A6, 0x81, b"\x02\xff\xfd\xe8") + DATA,
    "enc-v2-local-crc": enc_v2(0x00, b"", 0x08),
    "enc-v2-unspec-custom-tlvs": enc_v2(0x01, b"", 0x02, b"\x06\x0e\x01!\x07\x99\x02ab"),
}
mutate = {
    "mut-v2-signature": bytes([0, 5, 0x40]) + enc_v2(0x03, A4, 0x00),
    "mut-v2-version": bytes([1, 0, 0x10]) + enc_v2(0x03, A4, 0x00),
    "mut-v2-command": bytes([1, 0, 0x02]) + enc_v2(0x03, A4, 0x00),
    "mut-v2-family": bytes([2, 0, 0x30]) + enc_v2(0x03, A4, 0x00),
    "mut-v2-length": bytes([3, 1, 0x01]) + enc_v2(0x03, A4, 0x01, b"\x02\x02ab") + DATA,
    "mut-v2-address": bytes([4, 3, 0x80]) + enc_v2(0x05, A6, 0x00),
    "mut-v2-tlv-length": bytes([5, 2, 0x01]) + enc_v2(0x03, A4, 0x02, b"\x00\x02h2\x02\x03abc"),
    "mut-v2-crc-value": bytes([6, 1, 0x20]) + enc_v2(0x03, A4, 0x09, b"\x00\x02h2"),
    "mut-v1-keyword": bytes([1, 3, 0x02]) + enc_v1(0, 0, ADDR4, PORTS),
    "mut-v1-address-digit": bytes([4, 0, 0x01]) + enc_v1(0, 0, bytes([10, 0, 0, 1, 10, 0, 0, 2]), PORTS),
    "mut-v1-crlf": bytes([3, 1, 0x0f]) + enc_v1(1, 0, ADDR6, PORTS),
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "corpus", "proxy_fuzz")
os.makedirs(out, exist_ok=True)
count = 0
for name, data in raw.items():
    acc = ANY
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(seed(RAW, data, acc))
    count += 1
# The versions told apart: each header for the other version alone.
for name, data, acc in (("accept-v2-only-gets-v1", raw["v1-tcp4-max"], V2),
                        ("accept-v1-only-gets-v2", raw["v2-proxy-tcp4"], V1),
                        ("accept-v1-only-v1", raw["v1-unknown-short"], V1),
                        ("accept-v2-only-v2", raw["v2-crc-good-tcp4"], V2)):
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(seed(RAW, data, acc))
    count += 1
for name, data in list(encode.items()) + list(mutate.items()):
    mode = MUTATE if name.startswith("mut-") else ENCODE
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(seed(mode, data))
    count += 1
print("%d seeds in %s" % (count, os.path.normpath(out)))
