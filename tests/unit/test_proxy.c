/*
 * test_proxy.c - cmocka unit tests of the PROXY protocol parser
 * (src/proxy.c, SPEC section 8; HAProxy's proxy-protocol.txt).
 *
 * Most tests are rows of (versions accepted, input, expected status, the
 * byte that shows an error, expected fields, comment). One runner feeds
 * each row in several ways - at once followed by client data, one byte per
 * call, seeded random splits with empty calls, and every incomplete prefix
 * on its own - and every way must give the same status, bytes consumed and
 * result. A row accepted for any version is run again for its own version
 * alone (same answer) and for the other one alone (PROXY_E_SIGNATURE at the
 * first byte). After every call the runner checks the contract of
 * proxy_parse(): consumed <= len, NEED_MORE with all consumed and a zero
 * result, terminal statuses staying terminal.
 *
 * Inputs handed to the parser are heap blocks of exactly the offered size
 * (outside cmocka's padded allocator), so that ASan and Valgrind see a read
 * past them. Rows that carry a CRC32C TLV give the offset of its value; the
 * runner computes the checksum (bitwise, apart from proxy.c's table) and
 * writes it there, or a wrong one for the rows that want PROXY_E_CRC; one
 * row carries a checksum computed by hand (Python) instead.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"
#include "../../fuzz/ref_crc32c.h"

#define S(s) (const uint8_t *)(s), sizeof(s) - 1

struct pcase {
	enum proxy_accept acc;
	const uint8_t *in;
	size_t len;
	int status;
	size_t at; /* error: 1 + the index of the byte that shows it */
	uint8_t command;
	uint8_t proxied;
	const char *src, *dst; /* proxied: the addresses as text */
	uint16_t sport, dport;
	uint32_t tlvs;
	uint8_t crc32c; /* the result's flag */
	size_t crc_at;	/* offset of a CRC32C value the runner fills in */
	int crc_bad;	/* fill it in wrong */
	const char *what;
};

#define ANY PROXY_ACCEPT_ANY
#define V1  PROXY_ACCEPT_V1
#define V2  PROXY_ACCEPT_V2
#define LOC PROXY_CMD_LOCAL
#define PRX PROXY_CMD_PROXY

/* v1, addresses used / kept; a rejection at byte `at`. */
#define OK1(in, src, dst, sp, dp, what)                                        \
	{                                                                      \
		ANY, S(in), PROXY_DONE, 0, PRX, 1, src, dst, sp, dp, 0, 0, 0,  \
		    0, what                                                    \
	}
#define KEEP1(in, what)                                                        \
	{                                                                      \
		ANY, S(in), PROXY_DONE, 0, PRX, 0, NULL, NULL, 0, 0, 0, 0, 0,  \
		    0, what                                                    \
	}
#define BAD(in, st, at, what)                                                  \
	{                                                                      \
		ANY, S(in), st, at, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0, what   \
	}
#define BADA(acc, in, st, at, what)                                            \
	{                                                                      \
		acc, S(in), st, at, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0, what   \
	}
/* v1: a line whose fields are wrong, found at its LF. */
#define BADL(in, what)                                                         \
	{                                                                      \
		ANY, S(in), PROXY_E_V1_SYNTAX, sizeof(in) - 1, 0, 0, NULL,     \
		    NULL, 0, 0, 0, 0, 0, 0, what                               \
	}
#define MORE(in, what)                                                         \
	{                                                                      \
		ANY, S(in), PROXY_NEED_MORE, 0, 0, 0, NULL, NULL, 0, 0, 0, 0,  \
		    0, 0, what                                                 \
	}
/* v2: addresses used / kept, with TLV count and CRC32C offset. */
#define OK2(in, src, dst, sp, dp, tlvs, crc, crc_at, what)                     \
	{                                                                      \
		ANY, S(in), PROXY_DONE, 0, PRX, 1, src, dst, sp, dp, tlvs,     \
		    crc, crc_at, 0, what                                       \
	}
#define KEEP2(in, cmd, tlvs, crc, crc_at, what)                                \
	{                                                                      \
		ANY, S(in), PROXY_DONE, 0, cmd, 0, NULL, NULL, 0, 0, tlvs,     \
		    crc, crc_at, 0, what                                       \
	}
#define BADCRC(in, crc_at, what)                                               \
	{                                                                      \
		ANY, S(in), PROXY_E_CRC, sizeof(in) - 1, 0, 0, NULL, NULL, 0,  \
		    0, 0, 0, crc_at, 1, what                                   \
	}

/* v2 pieces. The address blocks: 192.0.2.1:41000 -> 198.51.100.7:443 and
 * [2001:db8::1]:41000 -> [2001:db8::2]:443. */
#define SIG    "\r\n\r\n\0\r\nQUIT\n"
#define A4     "\xc0\x00\x02\x01\xc6\x33\x64\x07\xa0\x28\x01\xbb"
#define A4_SRC "192.0.2.1"
#define A4_DST "198.51.100.7"
#define A6                                                                     \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"                           \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\xa0\x28\x01\xbb"
#define A6_SRC	"2001:db8::1"
#define A6_DST	"2001:db8::2"
#define P4(len) SIG "\x21\x11" len A4
#define P6(len) SIG "\x21\x21" len A6
#define CRC0	"\x03\0\x04\0\0\0\0" /* value filled in by the runner */
#define X16	"xxxxxxxxxxxxxxxx"
#define X64	X16 X16 X16 X16
#define X128	X64 X64

/* The text's worst cases (2.1): 56, 104, 15 and 107 bytes. */
#define FF6	   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#define MAX4_LINE  "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
#define MAX6_LINE  "PROXY TCP6 " FF6 " " FF6 " 65535 65535\r\n"
#define WORST_LINE "PROXY UNKNOWN " FF6 " " FF6 " 65535 65535\r\n"
/* "PROXY UNKNOWN " and 91 bytes and CRLF: 107; one more byte: 108. */
#define U91 X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct pcase table[] = {
    /* ---- v1 accepted (2.1) ---- */
    OK1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1",
	"192.168.0.11", 56324, 443, "v1: the text's example"),
    OK1(MAX4_LINE, "255.255.255.255", "255.255.255.255", 65535, 65535,
	"v1: the text's longest TCP4 line, 56 bytes"),
    OK1("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", "0.0.0.0", "0.0.0.0", 0, 0,
	"v1: zeros are single digits"),
    OK1("PROXY TCP4 10.0.0.1 10.20.100.200 1 10\r\n", "10.0.0.1",
	"10.20.100.200", 1, 10, "v1: numbers with inner zeros"),
    OK1(MAX6_LINE, FF6, FF6, 65535, 65535,
	"v1: the text's longest TCP6 line, 104 bytes"),
    OK1("PROXY TCP6 2001:db8::1 2001:db8::2 41000 443\r\n", A6_SRC, A6_DST,
	41000, 443, "v1: TCP6 compressed"),
    OK1("PROXY TCP6 :: ::1 0 1\r\n", "::", "::1", 0, 1,
	"v1: TCP6 all zeros and loopback"),
    OK1("PROXY TCP6 2001:DB8:0:0:0:0:0:1 0001:0db8::0002 5 6\r\n", A6_SRC,
	"1:db8::2", 5, 6, "v1: TCP6 upper case, full form, 4-digit groups"),
    OK1("PROXY TCP6 ::ffff:192.0.2.1 64:ff9b::198.51.100.7 7 8\r\n",
	"::ffff:192.0.2.1", "64:ff9b::198.51.100.7", 7, 8,
	"v1: TCP6 with an IPv4 tail"),
    OK1("PROXY TCP6 1:2:3:4:5:6:1.2.3.4 1:2:3:4:5:6:7:8 9 9\r\n",
	"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:8", 9, 9,
	"v1: TCP6 six groups and an IPv4 tail"),
    OK1("PROXY TCP6 1:: 1:2:3:4:5:6:7:: 1 2\r\n", "1::", "1:2:3:4:5:6:7:0", 1,
	2, "v1: TCP6 trailing ::, and :: for a single group"),
    OK1("PROXY TCP6 ::2:3:4:5:6:7:8 1:2:3::6:7:8 1 2\r\n", "0:2:3:4:5:6:7:8",
	"1:2:3:0:0:6:7:8", 1, 2, "v1: TCP6 leading and inner ::"),
    KEEP1("PROXY UNKNOWN\r\n", "v1: UNKNOWN, the short form, 15 bytes"),
    KEEP1(WORST_LINE, "v1: UNKNOWN, the text's worst case, 107 bytes"),
    KEEP1("PROXY UNKNOWN " U91 "\r\n",
	  "v1: UNKNOWN with anything, exactly 107 bytes"),
    KEEP1("PROXY UNKNOWN \r\n", "v1: UNKNOWN, a space and nothing"),
    KEEP1("PROXY UNKNOWN \x01\xff\0 garbage: 1.2.3.4  \r\n",
	  "v1: UNKNOWN ignores what precedes the CRLF"),

    /* ---- v1 rejected ---- */
    BAD("GET / HTTP/1.1\r\n", PROXY_E_SIGNATURE, 1, "v1: no header at all"),
    BAD("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_E_SIGNATURE, 1,
	"v1: lower case PROXY"),
    BAD("PROXZ", PROXY_E_SIGNATURE, 5, "v1: PROXZ"),
    BAD("PROXY\r\n", PROXY_E_SIGNATURE, 6, "v1: no space after PROXY"),
    BAD("PROXY\tTCP4", PROXY_E_SIGNATURE, 6, "v1: a tab for the space"),
    BAD("PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_E_FAMILY, 7,
	"v1: two spaces after PROXY"),
    BAD("PROXY \r\n", PROXY_E_FAMILY, 7, "v1: no keyword"),
    BAD("PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_E_FAMILY, 8,
	"v1: UDP4 is no keyword"),
    BAD("PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_E_FAMILY, 10, "v1: TCP5"),
    BAD("PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", PROXY_E_FAMILY, 7,
	"v1: lower case keyword"),
    BAD("PROXY TCP4\r\n", PROXY_E_FAMILY, 11, "v1: TCP4 without fields"),
    BADL("PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "v1: two spaces after TCP4"),
    BAD("PROXY UNKNOWNX\r\n", PROXY_E_FAMILY, 14, "v1: UNKNOWNX"),
    BAD("PROXY UNKNOWN\n", PROXY_E_FAMILY, 14, "v1: UNKNOWN and a lone LF"),
    BAD("PROXY UNKNOWN\rX", PROXY_E_V1_SYNTAX, 15, "v1: UNKNOWN, CR, no LF"),
    BAD("PROXY UNKNOWN abc\ndef\r\n", PROXY_E_V1_SYNTAX, 18,
	"v1: UNKNOWN with a lone LF before the CRLF"),
    BAD("PROXY UNKNOWN abc\rdef\r\n", PROXY_E_V1_SYNTAX, 19,
	"v1: UNKNOWN with a lone CR before the CRLF"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_E_V1_SYNTAX, 31,
	"v1: LF without CR"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", PROXY_E_V1_SYNTAX, 32,
	"v1: CR CR LF"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PROXY_E_V1_SYNTAX, 32,
	"v1: CR then a field byte"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", PROXY_E_V1_SYNTAX, 28,
	"v1: a sign is not a field byte"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", PROXY_E_V1_SYNTAX, 30,
	"v1: a minus is not a field byte"),
    BAD("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", PROXY_E_V1_SYNTAX, 19,
	"v1: a tab between fields"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n", PROXY_E_V1_SYNTAX, 31,
	"v1: a NUL in the line"),
    BAD("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", PROXY_E_V1_SYNTAX, 19,
	"v1: no zone in an IPv6 address"),
    BAD("PROXY TCP6 2001:db8::g ::1 1 2\r\n", PROXY_E_V1_SYNTAX, 22,
	"v1: g is no hex digit"),
    BADL("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1: leading zero in an octet"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n",
	 "v1: leading zero in the last octet"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n", "v1: 00 octet"),
    BADL("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "v1: octet 256"),
    BADL("PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n", "v1: a four-digit octet"),
    BADL("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "v1: three octets"),
    BADL("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "v1: five octets"),
    BADL("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "v1: an empty octet"),
    BADL("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", "v1: a trailing dot"),
    BADL("PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n", "v1: a leading dot"),
    BADL("PROXY TCP4 a.b.c.d 5.6.7.8 1 2\r\n", "v1: hex in an IPv4 address"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "v1: leading zero in a port"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", "v1: port 00"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "v1: port 65536"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "v1: port 99999"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 100000 1\r\n", "v1: a six-digit port"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 4294967297 1\r\n",
	 "v1: a port that wraps 32 bits"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "v1: hex in a port"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1: no destination port"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1: a fifth field"),
    BADL("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
	 "v1: two spaces between fields"),
    BADL("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1: a space before the CRLF"),
    BADL("PROXY TCP4 \r\n", "v1: TCP4 and nothing"),
    BADL("PROXY TCP4 ::1 ::1 1 2\r\n", "v1: TCP4 with IPv6 addresses"),
    BADL("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "v1: TCP6 with IPv4 addresses"),
    BADL("PROXY TCP6 ::: ::1 1 2\r\n", "v1: :::"),
    BADL("PROXY TCP6 1::2::3 ::1 1 2\r\n", "v1: two ::"),
    BADL("PROXY TCP6 12345:: ::1 1 2\r\n", "v1: a five-digit group"),
    BADL("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "v1: seven groups without ::"),
    BADL("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "v1: nine groups"),
    BADL("PROXY TCP6 1:2:3:4::5:6:7:8 ::1 1 2\r\n",
	 "v1: :: standing for no group"),
    BADL("PROXY TCP6 :1::2 ::1 1 2\r\n", "v1: a single leading colon"),
    BADL("PROXY TCP6 1::2: ::1 1 2\r\n", "v1: a single trailing colon"),
    BADL("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n",
	 "v1: leading zero in an IPv4 tail"),
    BAD("PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n", PROXY_E_V1_SYNTAX, 42,
	"v1: an IPv4 tail past 128 bits"),
    BADL("PROXY TCP6 ::1.2.3.4:5 ::1 1 2\r\n",
	 "v1: a group after the IPv4 tail"),
    BADL("PROXY TCP6 ::1.2.3 ::1 1 2\r\n", "v1: a short IPv4 tail"),
    BADL("PROXY TCP6 ::a.2.3.4 ::1 1 2\r\n", "v1: hex in an IPv4 tail"),
    BAD("PROXY UNKNOWN " U91 "x\r\n", PROXY_E_V1_TOO_LONG, 107,
	"v1: 108 bytes: the 107th is the CR"),
    MORE("PROXY UNKNOWN " U91 "\r", "v1: 106 bytes, the LF would be the 107th"),
    BAD("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n",
	PROXY_E_V1_TOO_LONG, 107,
	"v1: valid fields, 116 bytes: longer than the text allows"),
    BAD("PROXY TCP4 1111111111111111111111111111111111111111111111111111111"
	"1111111111111111111111111111111111111111111111111111",
	PROXY_E_V1_TOO_LONG, 107, "v1: no CRLF ever"),
    BAD("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\x80", PROXY_E_V1_SYNTAX, 33,
	"v1: CR and a byte past ASCII"),
    MORE("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r",
	 "v1: everything but the LF"),

    /* ---- version selection (2.2) ---- */
    BADA(V2, "PROXY UNKNOWN\r\n", PROXY_E_SIGNATURE, 1, "v2 only: a v1 header"),
    BADA(V1, SIG "\x21\x11\0\x0c" A4, PROXY_E_SIGNATURE, 1,
	 "v1 only: a v2 header"),
    BAD("\x16\x03\x01\x02\0\x01", PROXY_E_SIGNATURE, 1,
	"any: a TLS ClientHello"),
    BAD("", PROXY_NEED_MORE, 0, "any: nothing yet"),

    /* ---- v2 accepted (2.2) ---- */
    OK2(P4("\0\x0c"), A4_SRC, A4_DST, 41000, 443, 0, 0, 0,
	"v2: PROXY TCP4, addresses only"),
    OK2(P6("\0\x24"), A6_SRC, A6_DST, 41000, 443, 0, 0, 0,
	"v2: PROXY TCP6, addresses only"),
    OK2(SIG "\x21\x11\0\x0c\0\0\0\0\xff\xff\xff\xff\0\0\xff\xff", "0.0.0.0",
	"255.255.255.255", 0, 65535, 0, 0, 0, "v2: extreme values"),
    KEEP2(SIG "\x20\0\0\0", LOC, 0, 0, 0, "v2: LOCAL UNSPEC, the health check"),
    KEEP2(SIG "\x20\x11\0\x0c" A4, LOC, 0, 0, 0,
	  "v2: LOCAL with an address block: skipped, not used"),
    KEEP2(SIG "\x20\x21\0\x27" A6 "\x04\0\0", LOC, 1, 0, 0,
	  "v2: LOCAL TCP6 with a TLV after the addresses"),
    KEEP2(SIG "\x21\0\0\0", PRX, 0, 0, 0,
	  "v2: PROXY UNSPEC: the connection's addresses kept"),
    KEEP2(SIG "\x21\0\0\x07\x04\0\x04"
	      "abcd",
	  PRX, 1, 0, 0, "v2: PROXY UNSPEC, TLVs right after 16 bytes"),
    KEEP2(SIG "\x20\0\0\x03\x04\0\0", LOC, 1, 0, 0,
	  "v2: LOCAL UNSPEC with an empty NOOP"),
    OK2(P4("\0\x10") "\x01\0\x01"
		     "h",
	A4_SRC, A4_DST, 41000, 443, 1, 0, 0, "v2: ALPN"),
    OK2(P4("\0\x1a") "\x02\0\x0b"
		     "example.com",
	A4_SRC, A4_DST, 41000, 443, 1, 0, 0, "v2: AUTHORITY"),
    OK2(P4("\0\x0f") "\x04\0\0", A4_SRC, A4_DST, 41000, 443, 1, 0, 0,
	"v2: NOOP, empty"),
    OK2(P4("\0\x14") "\x04\0\x05\0\0\0\0\0", A4_SRC, A4_DST, 41000, 443, 1, 0,
	0, "v2: NOOP with padding"),
    OK2(P4("\0\x8f") "\x05\0\x80" X128, A4_SRC, A4_DST, 41000, 443, 1, 0, 0,
	"v2: UNIQUE_ID of 128 bytes, the most"),
    OK2(P4("\0\x0f") "\x05\0\0", A4_SRC, A4_DST, 41000, 443, 1, 0, 0,
	"v2: UNIQUE_ID, empty"),
    OK2(P4("\0\x14") "\x20\0\x05\x01\0\0\0\0", A4_SRC, A4_DST, 41000, 443, 1, 0,
	0, "v2: SSL, client and verify only"),
    OK2(P4("\0\x52") "\x20\0\x43\x07\0\0\0\0"
		     "\x21\0\x07TLSv1.3"
		     "\x22\0\x0b"
		     "example.com"
		     "\x23\0\x16TLS_AES_128_GCM_SHA256"
		     "\x24\0\x0aRSA-SHA256",
	A4_SRC, A4_DST, 41000, 443, 1, 0, 0,
	"v2: SSL with version, CN, cipher, sig_alg sub-TLVs"),
    OK2(P4("\0\x3a") "\x20\0\x2b\x01\0\0\0\x01"
		     "\x25\0\x07RSA2048"
		     "\x26\0\x09secp256r1"
		     "\x27\0\x04rsae"
		     "\x28\0\x03\x30\x01\x00"
		     "\x99\0\0",
	A4_SRC, A4_DST, 41000, 443, 1, 0, 0,
	"v2: SSL with key_alg, group, sig_scheme, cert, unknown, empty"),
    OK2(P4("\0\x13") "\x30\0\x04"
		     "blue",
	A4_SRC, A4_DST, 41000, 443, 1, 0, 0, "v2: NETNS"),
    OK2(P4("\0\x1f") "\xe0\0\x01\x01\xef\0\0\xf0\0\0\xf7\0\0\xff\0\0\0\0\0",
	A4_SRC, A4_DST, 41000, 443, 6, 0, 0,
	"v2: custom, experimental, future and type 0 TLVs skipped"),
    OK2(P4("\0\x13") CRC0, A4_SRC, A4_DST, 41000, 443, 1, 1, 31,
	"v2: CRC32C alone"),
    OK2(P4("\0\x18") "\x01\0\x02"
		     "h2"
		     "\x03\0\x04\x9a\xd4\xcb\xd0",
	A4_SRC, A4_DST, 41000, 443, 2, 1, 0,
	"v2: CRC32C computed apart (Python), after ALPN"),
    OK2(P6("\0\x36") "\x04\0\x02zz" CRC0 "\x02\0\x03"
		     "a.b",
	A6_SRC, A6_DST, 41000, 443, 3, 1, 60, "v2: CRC32C between TLVs, TCP6"),
    KEEP2(SIG "\x20\0\0\x07" CRC0, LOC, 1, 1, 19, "v2: LOCAL with a CRC32C"),

    /* ---- v2 rejected ---- */
    BAD("\r\n\r\n\0\r\nQUIT\r", PROXY_E_SIGNATURE, 12,
	"v2: last signature byte"),
    BAD("\r\n\r\n\x01", PROXY_E_SIGNATURE, 5, "v2: the NUL is no string end"),
    BAD("\r\r", PROXY_E_SIGNATURE, 2, "v2: CR CR"),
    BAD(SIG "\x11\x11\0\x0c" A4, PROXY_E_VERSION, 13, "v2: version 1"),
    BAD(SIG "\x31\x11\0\x0c" A4, PROXY_E_VERSION, 13, "v2: version 3"),
    BAD(SIG "\x01\x11\0\x0c" A4, PROXY_E_VERSION, 13, "v2: version 0"),
    BAD(SIG "\xf1\x11\0\x0c" A4, PROXY_E_VERSION, 13, "v2: version 15"),
    BAD(SIG "\x22\x11\0\x0c" A4, PROXY_E_COMMAND, 13, "v2: command 2"),
    BAD(SIG "\x2f\x11\0\x0c" A4, PROXY_E_COMMAND, 13, "v2: command 15"),
    BAD(SIG "\x21\x12\0\x0c" A4, PROXY_E_FAMILY, 14, "v2: UDP over IPv4"),
    BAD(SIG "\x21\x22\0\x24" A6, PROXY_E_FAMILY, 14, "v2: UDP over IPv6"),
    BAD(SIG "\x21\x31\0\xd8", PROXY_E_FAMILY, 14, "v2: UNIX stream"),
    BAD(SIG "\x21\x32\0\xd8", PROXY_E_FAMILY, 14, "v2: UNIX datagram"),
    BAD(SIG "\x20\x31\0\0", PROXY_E_FAMILY, 14,
	"v2: LOCAL UNIX is refused too"),
    BAD(SIG "\x21\x10\0\x0c", PROXY_E_FAMILY, 14,
	"v2: IPv4, unspecified transport"),
    BAD(SIG "\x21\x01\0\0", PROXY_E_FAMILY, 14,
	"v2: unspecified family, stream"),
    BAD(SIG "\x21\x41\0\0", PROXY_E_FAMILY, 14, "v2: family 4"),
    BAD(SIG "\x21\x13\0\x0c", PROXY_E_FAMILY, 14, "v2: transport 3"),
    BAD(SIG "\x21\xff\xff\xff", PROXY_E_FAMILY, 14, "v2: family 0xff"),
    BAD(SIG "\x21\x11\0\0", PROXY_E_LENGTH, 16, "v2: TCP4, length 0"),
    BAD(SIG "\x21\x11\0\x0b" A4, PROXY_E_LENGTH, 16,
	"v2: TCP4, length 11: one short of the addresses"),
    BAD(SIG "\x21\x21\0\x23" A6, PROXY_E_LENGTH, 16,
	"v2: TCP6, length 35: one short of the addresses"),
    BAD(SIG "\x21\x21\0\x0c" A4, PROXY_E_LENGTH, 16,
	"v2: TCP6 with a TCP4 length"),
    BAD(SIG "\x20\x21\0\x0c" A4, PROXY_E_LENGTH, 16,
	"v2: LOCAL too: the family's addresses must fit"),
    BAD(P4("\0\x0d") "\x04", PROXY_E_TLV, 29,
	"v2: one byte after the addresses: no TLV fits"),
    BAD(P4("\0\x0e") "\x04\0", PROXY_E_TLV, 29,
	"v2: two bytes after the addresses: no TLV fits"),
    BAD(P4("\0\x0f") "\x04\0\x01", PROXY_E_TLV, 31,
	"v2: TLV value one past the header"),
    BAD(P4("\0\x10") "\x04\0\x02x", PROXY_E_TLV, 31,
	"v2: TLV value one past the header, some of it there"),
    BAD(P4("\0\x10") "\x04\xff\xff", PROXY_E_TLV, 31, "v2: TLV length 0xffff"),
    BAD(P4("\0\x10") "\x04\x80\0", PROXY_E_TLV, 31, "v2: TLV length 0x8000"),
    BAD(P4("\0\x10") "\x04\x7f\xff", PROXY_E_TLV, 31, "v2: TLV length 0x7fff"),
    BAD(P4("\0\x12") "\x04\0\x01x\x04\0", PROXY_E_TLV, 33,
	"v2: a second TLV cut by the length"),
    BAD(P4("\0\x12") "\x03\0\x03\0\0\0", PROXY_E_TLV, 31,
	"v2: CRC32C of 3 bytes"),
    BAD(P4("\0\x14") "\x03\0\x05\0\0\0\0\0", PROXY_E_TLV, 31,
	"v2: CRC32C of 5 bytes"),
    BAD(P4("\0\x1a") "\x03\0\x04\0\0\0\0\x03\0\x04\0\0\0\0", PROXY_E_TLV, 38,
	"v2: two CRC32C TLVs"),
    BAD(P4("\0\x90") "\x05\0\x81" X128 "x", PROXY_E_TLV, 31,
	"v2: UNIQUE_ID of 129 bytes"),
    BAD(P4("\0\x13") "\x20\0\x04\x01\0\0\0", PROXY_E_TLV, 31,
	"v2: SSL shorter than client and verify"),
    BAD(P4("\0\x0f") "\x20\0\0", PROXY_E_TLV, 31, "v2: SSL, empty"),
    BAD(P4("\0\x16") "\x20\0\x07\x01\0\0\0\0\x21\0", PROXY_E_TLV, 37,
	"v2: SSL sub-TLV header cut: 2 bytes left"),
    BAD(P4("\0\x15") "\x20\0\x06\x01\0\0\0\0\x21", PROXY_E_TLV, 37,
	"v2: SSL sub-TLV header cut: 1 byte left"),
    BAD(P4("\0\x19") "\x20\0\x09\x01\0\0\0\0\x21\0\x02x\x04", PROXY_E_TLV, 39,
	"v2: SSL sub-TLV one past the SSL TLV, inside the header"),
    BAD(P4("\0\x17") "\x20\0\x08\x01\0\0\0\0\x21\xff\xff", PROXY_E_TLV, 39,
	"v2: SSL sub-TLV length 0xffff"),
    BADCRC(P4("\0\x13") CRC0, 31, "v2: CRC32C wrong"),
    BADCRC(P6("\0\x36") "\x04\0\x02zz" CRC0 "\x02\0\x03"
			"a.b",
	   60, "v2: CRC32C wrong, TCP6, among TLVs"),
    BAD(P4("\0\x13") "\x03\0\x04\x9a\xd4\xcb\xd0", PROXY_E_CRC, 35,
	"v2: another header's CRC32C"),
    MORE(SIG "\x21\x11\0\x13" A4 "\x03\0\x04\0",
	 "v2: the length is not all there yet"),
};

/* "PROXY UNKNOWN " U91 "\r\n" is the longest line the text allows. */
_Static_assert(sizeof("PROXY UNKNOWN " U91 "\r\n") - 1 == PROXY_V1_MAX_LEN,
	       "U91");
_Static_assert(sizeof(WORST_LINE) - 1 == PROXY_V1_MAX_LEN, "worst line");
_Static_assert(sizeof(MAX6_LINE) - 1 == 104, "TCP6 line");
_Static_assert(sizeof(MAX4_LINE) - 1 == 56, "TCP4 line");

/* Bytes that follow every header: the client's, never to be consumed. */
static const uint8_t client_data[] = "\r\n\r\n\0\r\nQUIT\nPROXY GET /\r\n";
#define CLIENT_LEN (sizeof(client_data) - 1)

enum way {
	WAY_AT_ONCE,  /* header and client data in one call */
	WAY_BYTEWISE, /* one byte per call */
	WAY_RANDOM,   /* seeded random chunks, some empty */
	WAY_COUNT,
};
static const char *const way_name[WAY_COUNT] = {"at once", "byte by byte",
						"random splits"};
#define RANDOM_SEEDS 3
#define CHUNK_MAX    23u
/* Prefixes of headers longer than this are sampled, not all tried. */
#define PREFIX_ALL  4096u
#define PREFIX_STEP 1009u

static unsigned long n_checks, n_runs;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		n_checks++;                                                    \
		if (!(cond))                                                   \
			fail_msg(__VA_ARGS__);                                 \
	} while (0)

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* An uninitialised block of exactly n bytes, outside cmocka's allocator. */
static uint8_t *raw_alloc(size_t n)
{
	uint8_t *b = malloc(n > 0 ? n : 1);

	assert_non_null(b);
	return b;
}

/* A row's input, the CRC32C filled in, then the client's data. */
static uint8_t *row_input(const struct pcase *c, size_t *n)
{
	uint8_t *b = raw_alloc(c->len + CLIENT_LEN);

	memcpy(b, c->in, c->len);
	memcpy(b + c->len, client_data, CLIENT_LEN);
	if (c->crc_at != 0) {
		uint32_t crc;

		assert_true(c->crc_at + 4 <= c->len);
		memset(b + c->crc_at, 0, 4);
		crc = ref_crc32c(b, c->len) ^ (uint32_t)c->crc_bad;
		b[c->crc_at] = (uint8_t)(crc >> 24);
		b[c->crc_at + 1] = (uint8_t)(crc >> 16);
		b[c->crc_at + 2] = (uint8_t)(crc >> 8);
		b[c->crc_at + 3] = (uint8_t)crc;
	}
	*n = c->len + CLIENT_LEN;
	return b;
}

static void set_addr(const char *text, uint8_t out[16], int *family)
{
	memset(out, 0, 16);
	*family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(*family, text, out), 1);
}

static void row_result(const struct pcase *c, struct proxy_result *e)
{
	memset(e, 0, sizeof(*e));
	e->version = c->in[0] == 'P' ? 1 : 2;
	e->command = c->command;
	e->proxied = c->proxied;
	e->family = AF_UNSPEC;
	if (c->proxied) {
		set_addr(c->src, e->src, &e->family);
		set_addr(c->dst, e->dst, &e->family);
		e->src_port = c->sport;
		e->dst_port = c->dport;
	}
	e->tlvs = c->tlvs;
	e->crc32c = c->crc32c;
	e->header_len = c->len;
}

static int same_result(const struct proxy_result *a,
		       const struct proxy_result *b)
{
	return a->version == b->version && a->command == b->command &&
	       a->proxied == b->proxied && a->crc32c == b->crc32c &&
	       a->family == b->family && memcmp(a->src, b->src, 16) == 0 &&
	       memcmp(a->dst, b->dst, 16) == 0 && a->src_port == b->src_port &&
	       a->dst_port == b->dst_port && a->tlvs == b->tlvs &&
	       a->header_len == b->header_len;
}

static int zero_result(const struct proxy_result *r)
{
	struct proxy_result z;

	memset(&z, 0, sizeof(z));
	return memcmp(r, &z, sizeof(z)) == 0;
}

/* One call, with the checks that hold for any call. */
static int call(struct proxy *p, const uint8_t *in, size_t len, size_t *used,
		struct proxy_result *r, const char *what, const char *how)
{
	const int was_end = p->state == PROXY_S_END;
	int st;

	*used = (size_t)-1;
	memset(r, 0xa5, sizeof(*r));
	st = proxy_parse(p, in, len, used, r);
	CHECK(st >= PROXY_E_CRC && st <= PROXY_DONE, "\"%s\" %s: status %d",
	      what, how, st);
	CHECK(*used <= len, "\"%s\" %s: consumed %zu of %zu", what, how, *used,
	      len);
	if (st == PROXY_NEED_MORE)
		CHECK(*used == len, "\"%s\" %s: NEED_MORE with %zu of %zu",
		      what, how, *used, len);
	else if (len > 0 && !was_end)
		CHECK(*used > 0, "\"%s\" %s: error without a byte", what, how);
	if (st != PROXY_DONE)
		CHECK(zero_result(r), "\"%s\" %s: %s with a result", what, how,
		      proxy_status_str(st));
	return st;
}

/* Feed in[0..n) one way; return the final status, the bytes taken. */
static int run_way(enum proxy_accept acc, const uint8_t *in, size_t n,
		   enum way way, uint32_t seed, const char *what, size_t *taken,
		   struct proxy_result *r)
{
	struct proxy p;
	uint8_t *chunk = raw_alloc(CHUNK_MAX);
	size_t pos = 0, calls = 0, used;
	uint32_t rng = seed;
	int st;

	assert_int_equal(proxy_init(&p, acc), 0);
	for (;;) {
		size_t len;
		const uint8_t *at;

		switch (way) {
		case WAY_AT_ONCE:
			len = n - pos;
			break;
		case WAY_BYTEWISE:
			len = pos < n ? 1 : 0;
			break;
		default: {
			uint32_t x = xorshift32(&rng);

			len = x % 5 == 0 ? 0 : 1 + (x >> 8) % CHUNK_MAX;
			if (len > n - pos)
				len = n - pos;
			break;
		}
		}
		if (len == 0) {
			at = NULL;
		} else if (pos + len == n) {
			at = in + pos; /* ends where the block ends */
		} else {
			memcpy(chunk + CHUNK_MAX - len, in + pos, len);
			at = chunk + CHUNK_MAX - len;
		}
		if (len > CHUNK_MAX && at != in + pos)
			fail_msg("chunk too large");
		st = call(&p, at, len, &used, r, what, way_name[way]);
		calls++;
		pos += used;
		if (st != PROXY_NEED_MORE || pos == n)
			break;
		CHECK(calls <= 8 * n + 16, "\"%s\" %s: %zu calls", what,
		      way_name[way], calls);
	}
	if (st != PROXY_NEED_MORE) {
		/* Terminal: the same answer, nothing taken. */
		struct proxy_result again;
		int st2 = call(&p, in, n, &used, &again, what, "after the end");

		CHECK(st2 == st && used == 0,
		      "\"%s\" %s: after %d, %d and %zu consumed", what,
		      way_name[way], st, st2, used);
		if (st == PROXY_DONE)
			CHECK(same_result(&again, r),
			      "\"%s\" %s: result changed after the end", what,
			      way_name[way]);
	}
	free(chunk);
	*taken = pos;
	return st;
}

/* Run a row for one accept mode, expecting status and `at` taken. */
static void run_row_as(const struct pcase *c, enum proxy_accept acc, int status,
		       size_t at)
{
	struct proxy_result e, r;
	size_t n, taken, k;
	uint8_t *in = row_input(c, &n);
	size_t feed = status == PROXY_NEED_MORE ? c->len : n;
	static uint32_t seed = 0x2545f491u;

	row_result(c, &e);
	for (int w = 0; w < WAY_COUNT; w++) {
		for (int s = 0; s < (w == WAY_RANDOM ? RANDOM_SEEDS : 1); s++) {
			/* Only the last piece of in ends the heap block, so
			 * the input is copied to fit for each way. */
			uint8_t *copy = raw_alloc(feed);
			int st;

			memcpy(copy, in, feed);
			st = run_way(acc, copy, feed, (enum way)w,
				     seed += 0x9e3779b9u, c->what, &taken, &r);
			CHECK(
			    st == status,
			    "\"%s\" (accept %d) %s: %d (%s), expected %d (%s)",
			    c->what, acc, way_name[w], st, proxy_status_str(st),
			    status, proxy_status_str(status));
			CHECK(taken == at,
			      "\"%s\" (accept %d) %s: consumed %zu, expected "
			      "%zu",
			      c->what, acc, way_name[w], taken, at);
			if (status == PROXY_DONE)
				CHECK(same_result(&r, &e),
				      "\"%s\" (accept %d) %s: result differs",
				      c->what, acc, way_name[w]);
			free(copy);
		}
	}
	/* Every prefix short of the deciding byte is incomplete. */
	for (k = 0; k + 1 < at || (status == PROXY_NEED_MORE && k < at); k++) {
		uint8_t *copy;
		int st;

		if (at > PREFIX_ALL && k % PREFIX_STEP != 0)
			continue;
		copy = raw_alloc(k);
		memcpy(copy, in, k);
		st = run_way(acc, copy, k, WAY_AT_ONCE, 0, c->what, &taken, &r);
		CHECK(st == PROXY_NEED_MORE && taken == k,
		      "\"%s\" (accept %d): prefix of %zu: %d, %zu consumed",
		      c->what, acc, k, st, taken);
		free(copy);
	}
	free(in);
	n_runs++;
}

/* A row as given, then for its own version only (the same answer), then
 * for the other version only (no signature). */
static void run_row(const struct pcase *c)
{
	size_t at = c->status == PROXY_DONE || c->status == PROXY_NEED_MORE
			? c->len
			: c->at;

	run_row_as(c, c->acc, c->status, at);
	if (c->acc != PROXY_ACCEPT_ANY || c->len == 0)
		return;
	if (c->in[0] == 'P') {
		run_row_as(c, PROXY_ACCEPT_V1, c->status, at);
		run_row_as(c, PROXY_ACCEPT_V2, PROXY_E_SIGNATURE, 1);
	} else if (c->in[0] == '\r') {
		run_row_as(c, PROXY_ACCEPT_V2, c->status, at);
		run_row_as(c, PROXY_ACCEPT_V1, PROXY_E_SIGNATURE, 1);
	}
}

static void test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		run_row(&table[i]);
}

/* 2.1: the example line, and the request after it untouched. */
static void test_text_example(void **state)
{
	static const char msg[] =
	    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
	    "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
	uint8_t *in = raw_alloc(sizeof(msg) - 1);
	struct proxy p;
	struct proxy_result r;
	size_t used;

	(void)state;
	memcpy(in, msg, sizeof(msg) - 1);
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_V1), 0);
	assert_int_equal(proxy_parse(&p, in, sizeof(msg) - 1, &used, &r),
			 PROXY_DONE);
	assert_int_equal(used, 47);
	assert_memory_equal(in + used, "GET / HTTP/1.1\r\n", 16);
	assert_int_equal(r.family, AF_INET);
	assert_memory_equal(r.src, "\xc0\xa8\x00\x01", 4);
	assert_memory_equal(r.dst, "\xc0\xa8\x00\x0b", 4);
	assert_int_equal(r.src_port, 56324);
	assert_int_equal(r.dst_port, 443);
	free(in);
}

/* Each signature byte changed, each version alone: refused at it. */
static void test_signature_bytes(void **state)
{
	static const uint8_t v2[] = SIG "\x21\x11\0\x0c" A4;
	static const uint8_t v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	uint8_t *in =
	    raw_alloc(sizeof(v1) > sizeof(v2) ? sizeof(v1) : sizeof(v2));
	size_t k, used;
	int bit;

	(void)state;
	for (k = 0; k < PROXY_V2_SIG_LEN; k++) {
		for (bit = 0; bit < 8; bit++) {
			struct proxy_result r;
			int st;

			memcpy(in, v2, sizeof(v2) - 1);
			in[k] ^= (uint8_t)(1u << bit);
			st = run_way(PROXY_ACCEPT_V2, in, sizeof(v2) - 1,
				     WAY_AT_ONCE, 0, "v2 signature", &used, &r);
			CHECK(st == PROXY_E_SIGNATURE && used == k + 1,
			      "v2 signature byte %zu bit %d: %d at %zu", k, bit,
			      st, used);
			st =
			    run_way(PROXY_ACCEPT_ANY, in, sizeof(v2) - 1,
				    WAY_BYTEWISE, 0, "v2 signature", &used, &r);
			CHECK(st == PROXY_E_SIGNATURE,
			      "v2 signature byte %zu bit %d, any: %d", k, bit,
			      st);
			if (k >= 6)
				continue;
			memcpy(in, v1, sizeof(v1) - 1);
			in[k] ^= (uint8_t)(1u << bit);
			st =
			    run_way(PROXY_ACCEPT_V1, in, sizeof(v1) - 1,
				    WAY_BYTEWISE, 0, "v1 signature", &used, &r);
			CHECK(st == PROXY_E_SIGNATURE && used == k + 1,
			      "v1 signature byte %zu bit %d: %d at %zu", k, bit,
			      st, used);
		}
	}
	free(in);
}

/*
 * A v2 header of family fam whose length field is len, filled to it: the
 * addresses, then one NOOP TLV when 3 bytes or more are left, else the
 * bytes left. Run as a table row.
 */
static void run_length(uint8_t fam, uint32_t len, int status, size_t at,
		       const char *what)
{
	size_t alen = fam == PROXY_FAM_TCP4   ? 12
		      : fam == PROXY_FAM_TCP6 ? 36
					      : 0;
	size_t total = 16 + (size_t)len, rest;
	uint8_t *h = calloc(1, total + alen); /* room for the addresses */
	struct pcase c;

	assert_non_null(h);
	memcpy(h, SIG, PROXY_V2_SIG_LEN);
	h[12] = 0x21;
	h[13] = fam;
	h[14] = (uint8_t)(len >> 8);
	h[15] = (uint8_t)len;
	if (alen == 12)
		memcpy(h + 16, A4, 12);
	else if (alen == 36)
		memcpy(h + 16, A6, 36);
	rest = len >= alen ? len - alen : 0;
	if (rest >= 3) {
		h[16 + alen] = PROXY_TLV_NOOP;
		h[17 + alen] = (uint8_t)((rest - 3) >> 8);
		h[18 + alen] = (uint8_t)(rest - 3);
	}
	memset(&c, 0, sizeof(c));
	c.acc = PROXY_ACCEPT_ANY;
	c.in = h;
	c.len = len < alen ? 16 : total;
	c.status = status;
	c.at = at;
	c.command = PRX;
	c.proxied = alen > 0;
	c.src = alen == 12 ? A4_SRC : A6_SRC;
	c.dst = alen == 12 ? A4_DST : A6_DST;
	c.sport = 41000;
	c.dport = 443;
	c.tlvs = rest >= 3;
	c.what = what;
	run_row(&c);
	free(h);
}

/* The length field: 0, 1, the addresses' size and around it, 0x7fff,
 * 0x8000, 0xffff (STYLE.md's adversarial table, for 16 bits). */
static void test_v2_length_table(void **state)
{
	(void)state;
	run_length(PROXY_FAM_TCP4, 0, PROXY_E_LENGTH, 16, "TCP4 len 0");
	run_length(PROXY_FAM_TCP4, 1, PROXY_E_LENGTH, 16, "TCP4 len 1");
	run_length(PROXY_FAM_TCP4, 11, PROXY_E_LENGTH, 16, "TCP4 len 11");
	run_length(PROXY_FAM_TCP4, 12, PROXY_DONE, 0, "TCP4 len 12");
	run_length(PROXY_FAM_TCP4, 13, PROXY_E_TLV, 29, "TCP4 len 13");
	run_length(PROXY_FAM_TCP4, 14, PROXY_E_TLV, 29, "TCP4 len 14");
	run_length(PROXY_FAM_TCP4, 15, PROXY_DONE, 0, "TCP4 len 15");
	run_length(PROXY_FAM_TCP4, 0x7fff, PROXY_DONE, 0, "TCP4 len 0x7fff");
	run_length(PROXY_FAM_TCP4, 0x8000, PROXY_DONE, 0, "TCP4 len 0x8000");
	run_length(PROXY_FAM_TCP4, 0xffff, PROXY_DONE, 0, "TCP4 len 0xffff");
	run_length(PROXY_FAM_TCP6, 0, PROXY_E_LENGTH, 16, "TCP6 len 0");
	run_length(PROXY_FAM_TCP6, 12, PROXY_E_LENGTH, 16, "TCP6 len 12");
	run_length(PROXY_FAM_TCP6, 35, PROXY_E_LENGTH, 16, "TCP6 len 35");
	run_length(PROXY_FAM_TCP6, 36, PROXY_DONE, 0, "TCP6 len 36");
	run_length(PROXY_FAM_TCP6, 37, PROXY_E_TLV, 53, "TCP6 len 37");
	run_length(PROXY_FAM_TCP6, 0xffff, PROXY_DONE, 0, "TCP6 len 0xffff");
	run_length(PROXY_FAM_UNSPEC, 0, PROXY_DONE, 0, "UNSPEC len 0");
	run_length(PROXY_FAM_UNSPEC, 1, PROXY_E_TLV, 17, "UNSPEC len 1");
	run_length(PROXY_FAM_UNSPEC, 2, PROXY_E_TLV, 17, "UNSPEC len 2");
	run_length(PROXY_FAM_UNSPEC, 3, PROXY_DONE, 0, "UNSPEC len 3");
	run_length(PROXY_FAM_UNSPEC, 0xffff, PROXY_DONE, 0,
		   "UNSPEC len 0xffff");
}

/* A TLV's length against what the header leaves (`room` bytes for its
 * value): 0, 1, room - 1, room, room + 1, 0x7fff, 0x8000, 0xffff. */
static void test_tlv_length_table(void **state)
{
	static const uint32_t room = 40;
	const uint32_t lens[] = {0,	   1,	   room - 1, room,
				 room + 1, 0x7fff, 0x8000,   0xffff};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		const uint32_t hl = 12 + 3 + room;
		uint8_t *h = calloc(1, 16 + hl);
		struct pcase c;
		char what[64];

		assert_non_null(h);
		memcpy(h, SIG "\x21\x11", 14);
		h[15] = (uint8_t)hl;
		memcpy(h + 16, A4, 12);
		h[28] = PROXY_TLV_ALPN;
		h[29] = (uint8_t)(lens[i] >> 8);
		h[30] = (uint8_t)lens[i];
		if (lens[i] < room && room - lens[i] >= 3) {
			/* the rest: a second TLV */
			h[31 + lens[i]] = PROXY_TLV_NOOP;
			h[33 + lens[i]] = (uint8_t)(room - lens[i] - 3);
		}
		snprintf(what, sizeof(what), "TLV length %u of room %u",
			 lens[i], room);
		memset(&c, 0, sizeof(c));
		c.acc = PROXY_ACCEPT_ANY;
		c.in = h;
		c.len = 16 + hl;
		c.command = PRX;
		c.proxied = 1;
		c.src = A4_SRC;
		c.dst = A4_DST;
		c.sport = 41000;
		c.dport = 443;
		c.what = what;
		if (lens[i] == room) {
			c.status = PROXY_DONE;
			c.tlvs = 1;
		} else if (lens[i] < room && room - lens[i] >= 3) {
			c.status = PROXY_DONE;
			c.tlvs = 2;
		} else if (lens[i] < room) {
			/* 1 or 2 bytes left: no TLV header fits */
			c.status = PROXY_E_TLV;
			c.at = 31 + lens[i] + 1;
		} else {
			c.status = PROXY_E_TLV;
			c.at = 31;
		}
		run_row(&c);
		free(h);
	}
}

/* The largest header, 16 + 65535 bytes: SSL, every sub-TLV, NOOPs and a
 * CRC32C at the very end; fed every way, one byte at a time included. */
static void test_max_header(void **state)
{
	const size_t total = PROXY_V2_MAX_LEN;
	uint8_t *h = calloc(1, total);
	size_t off = 16 + 36, n = 0;
	struct pcase c;
	uint8_t t;

	(void)state;
	assert_non_null(h);
	memcpy(h, SIG "\x21\x21\xff\xff", 16);
	memcpy(h + 16, A6, 36);
	/* SSL with one empty sub-TLV of each type 0x21..0x28 */
	h[off] = PROXY_TLV_SSL;
	h[off + 2] = 5 + 8 * 3;
	h[off + 3] = 0x07;
	for (t = 0; t < 8; t++)
		h[off + 8 + 3 * t] = (uint8_t)(0x21 + t);
	off += 3 + 5 + 8 * 3;
	n++;
	while (total - off > 7 + 3) {
		size_t v = total - off - 7 - 3;

		if (v > 1000)
			v = 1000;
		h[off] = PROXY_TLV_NOOP;
		h[off + 1] = (uint8_t)(v >> 8);
		h[off + 2] = (uint8_t)v;
		memset(h + off + 3, 0xee, v);
		off += 3 + v;
		n++;
	}
	/* the NOOPs end where the CRC32C TLV begins */
	assert_int_equal(off, total - 7);
	memcpy(h + off, CRC0, 7);
	n++;
	memset(&c, 0, sizeof(c));
	c.acc = PROXY_ACCEPT_ANY;
	c.in = h;
	c.len = total;
	c.status = PROXY_DONE;
	c.command = PRX;
	c.proxied = 1;
	c.src = A6_SRC;
	c.dst = A6_DST;
	c.sport = 41000;
	c.dport = 443;
	c.tlvs = (uint32_t)n;
	c.crc32c = 1;
	c.crc_at = total - 4;
	c.what = "v2: 16 + 65535 bytes";
	run_row(&c);
	c.status = PROXY_E_CRC;
	c.at = total;
	c.crc_bad = 1;
	c.what = "v2: 16 + 65535 bytes, CRC32C wrong";
	run_row(&c);
	free(h);
}

/* The IPv6 and IPv4 texts against inet_pton (glibc: no leading zeros in
 * dotted quads), whatever their verdict. */
static void test_address_forms(void **state)
{
	static const char *const v6[] = {
	    "::",
	    "::1",
	    "1::",
	    "1::1",
	    "::ffff:1.2.3.4",
	    "::1.2.3.4",
	    "1:2:3:4:5:6:7:8",
	    "1:2:3:4:5:6:7::",
	    "::2:3:4:5:6:7:8",
	    "1:2:3:4:5:6::8",
	    "1:2:3:4:5::7:8",
	    "1:2:3:4:5:6:1.2.3.4",
	    "1:2:3:4:5::1.2.3.4",
	    "1:2:3:4:5:6:7:1.2.3.4",
	    "1:2:3:4:5:6::1.2.3.4",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    "FFFF:0000:AbCd:0:0:0:0:1",
	    "0000:0000:0000:0000:0000:0000:0000:0000",
	    "00000::",
	    "12345::",
	    "1:2:3:4:5:6:7:8:9",
	    "1:2:3:4:5:6:7",
	    ":",
	    ":::",
	    "::::",
	    ":1::",
	    "1:",
	    "1::2:",
	    ":1:2:3:4:5:6:7:8",
	    "1:2:3:4:5:6:7:8:",
	    "1::2::3",
	    "::1.2.3",
	    "::1.2.3.4.5",
	    "::1.2.3.04",
	    "::256.1.1.1",
	    "::1.2.3.4:1",
	    "::1.2.3.4::",
	    "1.2.3.4",
	    "::a.b.c.d",
	    "::0.0.0.0",
	    "::1:2.3.4.5",
	    "1:2:3:4:5:6:7:8.1.1.1",
	    "::12.34.56.78",
	    ".",
	    "::.",
	    "::1.",
	    "1.2.3.4::",
	    "a:b:c:d:e:f:a:b",
	    "a:b:c:d:e:f:0.0.0.0",
	    "0:0:0:0:0:0:0.0.0.0",
	};
	static const char *const v4[] = {
	    "0.0.0.0",	   "255.255.255.255", "1.2.3.4",  "01.2.3.4",
	    "1.2.3.04",	   "1.2.3.256",	      "1.2.3",	  "1.2.3.4.5",
	    "1..2.3",	   ".1.2.3",	      "1.2.3.",	  "1000.1.1.1",
	    "100.100.1.1", "99.199.249.255",  "00.1.1.1", "1.2.3.4a",
	    "::1",	   "a.b.c.d",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v6) / sizeof(v6[0]) + sizeof(v4) / sizeof(v4[0]);
	     i++) {
		int six = i < sizeof(v6) / sizeof(v6[0]);
		const char *a =
		    six ? v6[i] : v4[i - sizeof(v6) / sizeof(v6[0])];
		char line[160];
		uint8_t want[16] = {0}, *in;
		int ok = inet_pton(six ? AF_INET6 : AF_INET, a, want) == 1;
		struct proxy p;
		struct proxy_result r;
		size_t used, n;
		int st;

		n = (size_t)snprintf(line, sizeof(line),
				     "PROXY TCP%c %s %s 1 2\r\n",
				     six ? '6' : '4', a, a);
		in = raw_alloc(n);
		memcpy(in, line, n);
		assert_int_equal(proxy_init(&p, PROXY_ACCEPT_V1), 0);
		st = proxy_parse(&p, in, n, &used, &r);
		CHECK(ok ? st == PROXY_DONE : st == PROXY_E_V1_SYNTAX,
		      "address \"%s\": inet_pton says %d, parser %d (%s)", a,
		      ok, st, proxy_status_str(st));
		if (ok && st == PROXY_DONE)
			CHECK(memcmp(r.src, want, 16) == 0 &&
				  memcmp(r.dst, want, 16) == 0 &&
				  r.family == (six ? AF_INET6 : AF_INET),
			      "address \"%s\": parsed differently", a);
		free(in);
	}
}

static void test_init(void **state)
{
	struct proxy p;

	(void)state;
	assert_int_equal(proxy_init(NULL, PROXY_ACCEPT_ANY), PROXY_E_ARGS);
	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(proxy_init(&p, (enum proxy_accept)0), PROXY_E_ARGS);
	assert_int_equal(p.accept, 0);
	assert_int_equal(p.state, PROXY_S_START);
	assert_int_equal(proxy_init(&p, (enum proxy_accept)4), PROXY_E_ARGS);
	assert_int_equal(proxy_init(&p, (enum proxy_accept) - 1), PROXY_E_ARGS);
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_V1), 0);
	assert_int_equal(p.accept, PROXY_ACCEPT_V1);
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_V2), 0);
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_ANY), 0);
	assert_int_equal(p.pos, 0);
}

static void test_args(void **state)
{
	static const uint8_t in[] = "PROXY ";
	struct proxy p;
	struct proxy_result r;
	size_t used = 9;

	(void)state;
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_ANY), 0);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(proxy_parse(NULL, in, 6, &used, &r), PROXY_E_ARGS);
	assert_int_equal(used, 0);
	assert_true(zero_result(&r));
	assert_int_equal(proxy_parse(&p, in, 6, NULL, &r), PROXY_E_ARGS);
	used = 9;
	assert_int_equal(proxy_parse(&p, in, 6, &used, NULL), PROXY_E_ARGS);
	assert_int_equal(used, 0);
	assert_int_equal(proxy_parse(&p, NULL, 6, &used, &r), PROXY_E_ARGS);
	/* None of that changed the state: the header still parses. */
	assert_int_equal(p.state, PROXY_S_START);
	assert_int_equal(proxy_parse(&p, NULL, 0, &used, &r), PROXY_NEED_MORE);
	assert_int_equal(proxy_parse(&p, in, 6, &used, &r), PROXY_NEED_MORE);
	assert_int_equal(used, 6);
	/* Accept spoiled by hand: refused, state kept. */
	p.accept = (enum proxy_accept)0;
	assert_int_equal(proxy_parse(&p, in, 1, &used, &r), PROXY_E_ARGS);
	assert_int_equal(used, 0);
	p.accept = PROXY_ACCEPT_V1;
	assert_int_equal(
	    proxy_parse(&p, (const uint8_t *)"UNKNOWN\r\n", 9, &used, &r),
	    PROXY_DONE);
	assert_int_equal(r.header_len, 15);
}

/* STYLE.md: the state is valid when zero-filled, the configuration set. */
static void test_zero_filled(void **state)
{
	struct proxy p;
	struct proxy_result r;
	size_t used;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(proxy_parse(&p, (const uint8_t *)"P", 1, &used, &r),
			 PROXY_E_ARGS);
	p.accept = PROXY_ACCEPT_ANY;
	assert_int_equal(
	    proxy_parse(&p, (const uint8_t *)SIG "\x20\0\0\0", 16, &used, &r),
	    PROXY_DONE);
	assert_int_equal(used, 16);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.command, PROXY_CMD_LOCAL);
	assert_int_equal(r.proxied, 0);
	assert_int_equal(r.family, AF_UNSPEC);
}

static void test_status_str(void **state)
{
	int st;
	size_t i, j;
	const char *seen[16];

	(void)state;
	for (st = PROXY_E_ARGS; st <= PROXY_DONE; st++) {
		seen[st - PROXY_E_ARGS] = proxy_status_str(st);
		assert_non_null(seen[st - PROXY_E_ARGS]);
		assert_string_not_equal(seen[st - PROXY_E_ARGS],
					"unknown status");
	}
	for (i = 0; i < (size_t)(PROXY_DONE - PROXY_E_ARGS + 1); i++)
		for (j = i + 1; j < (size_t)(PROXY_DONE - PROXY_E_ARGS + 1);
		     j++)
			assert_string_not_equal(seen[i], seen[j]);
	assert_string_equal(proxy_status_str(PROXY_E_ARGS - 1),
			    "unknown status");
	assert_string_equal(proxy_status_str(PROXY_DONE + 1), "unknown status");
}

/* The whole state is the struct: bounded, whatever the header's size. */
static void test_state_size(void **state)
{
	(void)state;
	print_message("[ INFO     ] sizeof(struct proxy) = %zu bytes\n",
		      sizeof(struct proxy));
	assert_true(sizeof(struct proxy) <= 256);
}

#ifdef NDEBUG
/* With assertions off, a corrupt state ends the parse with
 * PROXY_E_ARGS (with them on it aborts). */
static void test_corrupt_state(void **state)
{
	struct proxy p;
	struct proxy_result r;
	size_t used;

	(void)state;
	assert_int_equal(proxy_init(&p, PROXY_ACCEPT_ANY), 0);
	p.state = (enum proxy_state)99;
	assert_int_equal(proxy_parse(&p, (const uint8_t *)"\r\n", 2, &used, &r),
			 PROXY_E_ARGS);
	assert_int_equal(used, 1);
	assert_int_equal(proxy_parse(&p, (const uint8_t *)"\r\n", 2, &used, &r),
			 PROXY_E_ARGS);
	assert_int_equal(used, 0);
}
#endif

static int report_counts(void **state)
{
	(void)state;
	print_message("[ INFO     ] %zu table rows, %lu row runs (each fed "
		      "%d ways and every prefix): %lu checks\n",
		      sizeof(table) / sizeof(table[0]), n_runs,
		      2 + RANDOM_SEEDS, n_checks);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_text_example),
	    cmocka_unit_test(test_signature_bytes),
	    cmocka_unit_test(test_v2_length_table),
	    cmocka_unit_test(test_tlv_length_table),
	    cmocka_unit_test(test_max_header),
	    cmocka_unit_test(test_address_forms),
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_zero_filled),
	    cmocka_unit_test(test_status_str),
	    cmocka_unit_test(test_state_size),
#ifdef NDEBUG
	    cmocka_unit_test(test_corrupt_state),
#endif
	};

	return cmocka_run_group_tests_name("proxy", tests, NULL, report_counts);
}
