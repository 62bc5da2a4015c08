/*
 * test_parse.c - unit tests of the spellings and messages the three
 * programs share (src/parse.c): --delim and the bytes of "ERR too long",
 * the escaping of arguments quoted in error messages, and the messages for
 * options getopt_long refuses (driven through the real getopt_long, whose
 * optind/optopt conventions parse_getopt_error depends on); the address
 * blocks of --proxy-from (the IPv4 mapping, prefixes that end inside a
 * byte, the spellings refused, lists).
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"

/* No byte a terminal would act on: below 0x20, DEL, or above (UTF-8 and
 * C1 controls). */
static void assert_printable(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			fail_msg("byte 0x%02x in \"%s\"", *p, s);
}

static void test_delim_spellings(void **state)
{
	static const struct {
		const char *arg;
		int want_rc;
		uint8_t want;
	} cases[] = {
	    {"lf", 0, '\n'},
	    {"nul", 0, 0},
	    {"0x00", 0, 0},
	    {"0x0a", 0, '\n'},
	    {"0X0A", 0, '\n'},
	    {";", 0, ';'},
	    {"|", 0, '|'},
	    {"0xff", 0, 0xff},
	    {"x", 0, 'x'},
	    {"e", 0, 'e'}, /* the check is case-sensitive: 'E' is in it */
	    {"r", 0, 'r'},
	    {"L", 0, 'L'},
	    {"", PARSE_DELIM_BAD, 0},
	    {"0x", PARSE_DELIM_BAD, 0},
	    {"0x1", PARSE_DELIM_BAD, 0},
	    {"0x100", PARSE_DELIM_BAD, 0},
	    {"0xgg", PARSE_DELIM_BAD, 0},
	    {"LF", PARSE_DELIM_BAD, 0},
	    {"lf ", PARSE_DELIM_BAD, 0},
	    /* Every byte of "ERR too long", as one character and as 0xNN:
	     * 'l' and 'n' alone are refused, the words "lf" and "nul" not. */
	    {"E", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"R", PARSE_DELIM_SPLITS_REPLY, 0},
	    {" ", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"t", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"o", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"l", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"n", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"g", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x45", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0X52", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x20", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x74", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x6F", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x6c", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0x6E", PARSE_DELIM_SPLITS_REPLY, 0},
	    {"0X67", PARSE_DELIM_SPLITS_REPLY, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t d = 0x99;
		int rc = parse_delim(cases[i].arg, &d);

		print_message("--delim '%s'\n", cases[i].arg);
		assert_int_equal(rc, cases[i].want_rc);
		/* *out is set on success only. */
		assert_int_equal(d, rc == 0 ? cases[i].want : 0x99);
	}
}

static void test_delim_splits_reply(void **state)
{
	static const char reply[] = "ERR too long";
	unsigned b;

	(void)state;
	for (b = 0; b < 256; b++) {
		int in = b != 0 && strchr(reply, (int)b) != NULL;
		char hex[5];
		uint8_t d = 0x99;

		assert_int_equal(parse_delim_splits_reply((uint8_t)b), in);
		/* parse_delim agrees for the 0xNN spelling of every byte. */
		snprintf(hex, sizeof(hex), "0x%02x", b);
		assert_int_equal(parse_delim(hex, &d),
				 in ? PARSE_DELIM_SPLITS_REPLY : 0);
		if (!in)
			assert_int_equal(d, b);
	}
	assert_string_equal(PARSE_DELIM_SPLITS_WHY,
			    "it occurs in the reply \"ERR too long\" and would "
			    "split it");
}

static void test_escape_classes(void **state)
{
	static const char in[] = "a\n\t\r\\\"'\x1b\x7f\x80\xff z\0y";
	char out[128];

	(void)state;
	parse_escape_bytes(out, sizeof(out), in, sizeof(in) - 1, 80);
	assert_string_equal(out, "a\\n\\t\\r\\\\\\\"'\\x1b\\x7f\\x80\\xff "
				 "z\\x00y");
	/* The C-string form stops at the NUL. */
	parse_escape(out, sizeof(out), in, 80);
	assert_string_equal(out, "a\\n\\t\\r\\\\\\\"'\\x1b\\x7f\\x80\\xff z");
	parse_escape(out, sizeof(out), "", 80);
	assert_string_equal(out, "");
	parse_escape(out, sizeof(out), "8\n0\x1b", PARSE_ESC_CUT);
	assert_string_equal(out, "8\\n0\\x1b");
	assert_printable(out);
}

static void test_escape_cut(void **state)
{
	char arg[300], out[PARSE_ESC_SIZE], big[1024];
	size_t i;

	(void)state;
	/* Exactly PARSE_ESC_CUT printable bytes: whole, no "...". */
	memset(arg, 'a', PARSE_ESC_CUT);
	arg[PARSE_ESC_CUT] = '\0';
	parse_escape(out, sizeof(out), arg, PARSE_ESC_CUT);
	assert_int_equal(strlen(out), PARSE_ESC_CUT);
	assert_memory_equal(out, arg, PARSE_ESC_CUT);
	/* One more: cut at PARSE_ESC_CUT source bytes, "..." added. */
	arg[PARSE_ESC_CUT] = 'b';
	arg[PARSE_ESC_CUT + 1] = '\0';
	parse_escape(out, sizeof(out), arg, PARSE_ESC_CUT);
	assert_int_equal(strlen(out), PARSE_ESC_CUT + 3);
	assert_string_equal(out + PARSE_ESC_CUT, "...");
	/* Control bytes, 4 output characters each: the buffer cuts first,
	 * never in the middle of an escape, and "..." still fits. */
	memset(arg, 0x1b, sizeof(arg) - 1);
	arg[sizeof(arg) - 1] = '\0';
	parse_escape(out, sizeof(out), arg, PARSE_ESC_CUT);
	assert_true(strlen(out) < sizeof(out));
	assert_true(strlen(out) >= 3);
	assert_string_equal(out + strlen(out) - 3, "...");
	assert_int_equal((strlen(out) - 3) % 4, 0);
	for (i = 0; i + 3 < strlen(out); i += 4)
		assert_memory_equal(out + i, "\\x1b", 4);
	assert_printable(out);
	/* A large enough buffer shows PARSE_ESC_CUT of them. */
	parse_escape(big, sizeof(big), arg, PARSE_ESC_CUT);
	assert_int_equal(strlen(big), PARSE_ESC_CUT * 4 + 3);
	/* No cut at all. */
	parse_escape(big, sizeof(big), "abc", SIZE_MAX);
	assert_string_equal(big, "abc");
}

static void test_escape_small_buffers(void **state)
{
	char out[16];
	size_t len;

	(void)state;
	/* dstlen 0: nothing written. */
	memset(out, 'Z', sizeof(out));
	parse_escape(out, 0, "abc", 80);
	assert_int_equal(out[0], 'Z');
	/* Every size from 1: NUL-terminated within dstlen, nothing past. */
	for (len = 1; len < sizeof(out); len++) {
		memset(out, 'Z', sizeof(out));
		parse_escape(out, len, "abcdef\n\x01", 80);
		assert_true(memchr(out, '\0', len) != NULL);
		if (len < sizeof(out))
			assert_int_equal(out[len], 'Z');
		assert_printable(out);
	}
	memset(out, 'Z', sizeof(out));
	parse_escape(out, 8, "abcdefgh", 80);
	assert_string_equal(out, "abcd...");
}

/*
 * Run getopt_long over argv (argv[0] added) until it refuses an option,
 * then describe the refusal with parse_getopt_error. Returns 0 when
 * getopt_long accepted everything.
 */
static const char t_short[] = ":p:qvh";
static const struct option t_long[] = {
    {"port", required_argument, NULL, 'p'},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"max-msg", required_argument, NULL, 256},
    {"max-conns", required_argument, NULL, 257},
    {"version", no_argument, NULL, 258},
    {NULL, 0, NULL, 0},
};

static int refuse(char *msg, size_t msglen, ...)
{
	char *argv[16];
	va_list ap;
	int argc = 1, c;
	char *a;

	argv[0] = (char *)"prog";
	va_start(ap, msglen);
	while ((a = va_arg(ap, char *)) != NULL && argc < 15)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, t_short, t_long, NULL)) != -1)
		if (c == '?' || c == ':') {
			parse_getopt_error(msg, msglen, c, optopt,
					   argv[optind - 1], t_short, t_long);
			return 1;
		}
	return 0;
}

static void test_getopt_errors(void **state)
{
	static const struct {
		const char *args[4];
		const char *want;
	} cases[] = {
	    {{"-x"}, "unknown option '-x'"},
	    {{"-qx"}, "unknown option '-x'"},
	    /* getopt has not left "-x5" when it refuses x: argv[optind - 1]
	     * is the word before it, which must not be named. */
	    {{"-x5"}, "unknown option '-x'"},
	    {{"-p", "80", "-x5"}, "unknown option '-x'"},
	    {{"--verbose", "-xq"}, "unknown option '-x'"},
	    {{"--quiet", "-x"}, "unknown option '-x'"},
	    {{"-:"}, "unknown option '-:'"},
	    {{"--bogus"}, "unknown option '--bogus'"},
	    {{"--bogus=1"}, "unknown option '--bogus=1'"},
	    {{"--max", "1"}, "ambiguous option '--max'"},
	    {{"--quiet=1"}, "option '--quiet' takes no argument"},
	    {{"--help=1"}, "option '--help' takes no argument"},
	    {{"--version=1"}, "option '--version' takes no argument"},
	    {{"--ver=1"}, "ambiguous option '--ver'"},
	    {{"--verb=1"}, "option '--verb' takes no argument"},
	    {{"-p"}, "option '-p' requires an argument"},
	    {{"-qp"}, "option '-p' requires an argument"},
	    {{"--port"}, "option '--port' requires an argument"},
	    {{"--max-msg"}, "option '--max-msg' requires an argument"},
	    {{"-\x1b"}, "unknown option '-\\x1b'"},
	    {{"-q\n"}, "unknown option '-\\n'"},
	    {{"--\x1b[2J\n"}, "unknown option '--\\x1b[2J\\n'"},
	    {{"--bo\x1bgus=\n"}, "unknown option '--bo\\x1bgus=\\n'"},
	    {{"--quiet=\n"}, "option '--quiet' takes no argument"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		char msg[256];

		memset(msg, 0, sizeof(msg));
		print_message("case %zu: %s\n", i, cases[i].want);
		assert_int_equal(
		    refuse(msg, sizeof(msg), a[0], a[1], a[2], a[3], NULL), 1);
		assert_string_equal(msg, cases[i].want);
		assert_printable(msg);
	}
	/* Accepted: nothing to say. */
	{
		char msg[64] = "";

		assert_int_equal(refuse(msg, sizeof(msg), "-qv", "--port=1",
					"--max-m", "3", NULL),
				 0);
	}
}

static void test_getopt_error_bounds(void **state)
{
	char word[400], msg[256], small[8];

	(void)state;
	/* A huge unknown option of control bytes: cut, escaped, fits. */
	memset(word, 0x1b, sizeof(word) - 1);
	word[0] = word[1] = '-';
	word[sizeof(word) - 1] = '\0';
	assert_int_equal(refuse(msg, sizeof(msg), word, NULL), 1);
	assert_true(strncmp(msg, "unknown option '--\\x1b", 22) == 0);
	assert_non_null(strstr(msg, "...'"));
	assert_printable(msg);
	/* A tiny message buffer is truncated, not overrun. */
	memset(small, 'Z', sizeof(small));
	assert_int_equal(refuse(small, 4, "--bogus", NULL), 1);
	assert_int_equal(small[3], '\0');
	assert_int_equal(small[4], 'Z');
	/* No buffer at all is no crash. */
	assert_int_equal(refuse(NULL, 0, "--bogus", NULL), 1);
}

static void test_u64_and_mode(void **state)
{
	enum proto_mode m = PROTO_RAW;
	uint64_t v = 7;

	(void)state;
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v),
			 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v),
			 -1);
	assert_int_equal(parse_u64(" 1", 0, 9, &v), -1);
	assert_int_equal(parse_u64("", 0, 9, &v), -1);
	assert_int_equal(parse_mode("frame", &m), 0);
	assert_int_equal(m, PROTO_FRAME);
	assert_int_equal(parse_mode("Frame", &m), -1);
	assert_int_equal(m, PROTO_FRAME);
}

/* ---- --proxy-from: address blocks ---- */

/* The 16-byte key of an address as net_addr_key() makes it: IPv4 as
 * ::ffff:a.b.c.d. */
static void key(const char *addr, uint8_t k[16])
{
	memset(k, 0, 16);
	if (inet_pton(AF_INET, addr, k + 12) == 1) {
		k[10] = k[11] = 0xff;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, addr, k), 1);
}

/* parse_cidr(s) must give the block `addr`/`bits` (in the 16-byte form). */
static void assert_cidr(const char *s, const char *addr, unsigned bits)
{
	struct parse_cidr c;
	uint8_t want[16];

	print_message("'%s'\n", s);
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(parse_cidr(s, &c), 0);
	key(addr, want);
	assert_memory_equal(c.addr, want, 16);
	assert_int_equal(c.bits, bits);
}

static void test_cidr_accepted(void **state)
{
	(void)state;
	/* IPv4: 96 bits of ::ffff: before the prefix. */
	assert_cidr("10.0.0.0/8", "10.0.0.0", 104);
	assert_cidr("192.168.1.0/24", "192.168.1.0", 120);
	assert_cidr("192.168.1.7", "192.168.1.7", 128);
	assert_cidr("192.168.1.7/32", "192.168.1.7", 128);
	assert_cidr("0.0.0.0/0", "0.0.0.0", 96);
	assert_cidr("128.0.0.0/1", "128.0.0.0", 97);
	/* IPv6, bare and in brackets. */
	assert_cidr("2001:db8::/32", "2001:db8::", 32);
	assert_cidr("::1", "::1", 128);
	assert_cidr("::1/128", "::1", 128);
	assert_cidr("[::1]/128", "::1", 128);
	assert_cidr("[::1]", "::1", 128);
	assert_cidr("[2001:db8::]/32", "2001:db8::", 32);
	assert_cidr("::/0", "::", 0);
	assert_cidr("[::]/0", "::", 0);
	assert_cidr("2001:db8::/127", "2001:db8::", 127);
	/* An IPv4 block spelled as IPv6 is the same block. */
	assert_cidr("::ffff:10.0.0.0/104", "10.0.0.0", 104);
	assert_cidr("::ffff:0:0/96", "0.0.0.0", 96);
	/* The longest address there is, with and without brackets. */
	assert_cidr("0000:0000:0000:0000:0000:0000:255.255.255.255/128",
		    "::255.255.255.255", 128);
	assert_cidr("[0000:0000:0000:0000:0000:0000:255.255.255.255]/128",
		    "::255.255.255.255", 128);
}

static void test_cidr_refused(void **state)
{
	static const char *const bad[] = {
	    "10.0.0.0/33",    /* past the family's width */
	    "::/129",	      /* idem */
	    "10.0.0.0/129",   /* an IPv4 prefix is not counted in 128 */
	    "10.0.0.1/8",     /* host bits set */
	    "10.0.0.0/0",     /* idem: every bit is a host bit */
	    "10.128.0.0/8",   /* one host bit, not byte-aligned */
	    "2001:db8::1/64", /* host bits set */
	    "::1/127",	      /* the last bit */
	    "10.0.0.0/08",    /* a leading zero */
	    "0.0.0.0/00",     /* idem */
	    "::/00",	      /* idem */
	    "10.0.0.0/",      /* no prefix after the slash */
	    "10.0.0.0/+8",    /* a sign */
	    "10.0.0.0/-0",    /* idem */
	    "10.0.0.0/ 8",    /* a space */
	    "10.0.0.0/8 ",    /* trailing garbage */
	    "10.0.0.0/8/8",   /* two slashes */
	    "10.0.0.0/0x8",   /* another base */
	    "/8",	      /* no address */
	    "/0",
	    "",
	    "garbage",
	    "garbage/8",
	    "10.0.0",	    /* not an address */
	    "10.0.0.256",   /* idem */
	    "010.0.0.0/8",  /* inet_pton: no leading zeros in IPv4 */
	    " 10.0.0.0/8",  /* a space */
	    "[::1",	    /* half a bracket */
	    "::1]",	    /* idem */
	    "[::1]]/128",   /* one too many */
	    "[]",	    /* nothing in them */
	    "[]/8",	    /* idem */
	    "[10.0.0.0]/8", /* brackets are for IPv6 */
	    "[",	    /* idem */
	    "fe80::1%eth0", /* a zone */
	    "localhost",
	};
	struct parse_cidr c, keep;
	char longest[128];
	size_t i;

	(void)state;
	memset(&keep, 0x5a, sizeof(keep));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("'%s'\n", bad[i]);
		c = keep;
		assert_int_equal(parse_cidr(bad[i], &c), -1);
		/* *out is left alone on failure */
		assert_memory_equal(&c, &keep, sizeof(c));
	}
	/* Longer than any address before the slash: refused before it is
	 * looked at (no overflow of the copy), however it ends. */
	memset(longest, '1', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(parse_cidr(longest, &c), -1);
	memcpy(longest + 100, "/8", 3);
	assert_int_equal(parse_cidr(longest, &c), -1);
	/* 46 and 48 characters, one and three past INET6_ADDRSTRLEN - 1. */
	assert_int_equal(
	    parse_cidr("0000:0000:0000:0000:0000:0000:255.255.255.2550", &c),
	    -1);
	assert_int_equal(
	    parse_cidr("[0000:0000:0000:0000:0000:0000:255.255.255.2550]", &c),
	    -1);
	assert_memory_equal(&c, &keep, sizeof(c));
}

/* Whether key(addr) is in parse_cidr(block). */
static int in_block(const char *block, const char *addr)
{
	struct parse_cidr c;
	uint8_t k[16];

	assert_int_equal(parse_cidr(block, &c), 0);
	key(addr, k);
	return parse_cidr_match(&c, k);
}

static void test_cidr_match(void **state)
{
	uint8_t mapped[16], k[16];

	(void)state;
	/* IPv4 blocks and IPv4 clients; an IPv4 client on a dual-stack
	 * socket (::ffff:a.b.c.d) has the same key. */
	assert_true(in_block("10.0.0.0/8", "10.1.2.3"));
	assert_true(in_block("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_false(in_block("10.0.0.0/8", "11.0.0.0"));
	assert_false(in_block("10.0.0.0/8", "9.255.255.255"));
	key("::ffff:10.1.2.3", mapped);
	key("10.1.2.3", k);
	assert_memory_equal(mapped, k, 16);
	/* An IPv4 block never matches an IPv6 client, even one ending in
	 * the same 32 bits. */
	assert_false(in_block("10.0.0.0/8", "::10.1.2.3"));
	assert_false(in_block("10.0.0.0/8", "2001:db8::a01:203"));
	/* 0.0.0.0/0: every IPv4 client, no IPv6 one. */
	assert_true(in_block("0.0.0.0/0", "0.0.0.0"));
	assert_true(in_block("0.0.0.0/0", "255.255.255.255"));
	assert_false(in_block("0.0.0.0/0", "::1"));
	assert_false(in_block("0.0.0.0/0", "2001:db8::1"));
	/* ::/0: everyone, IPv4 included. */
	assert_true(in_block("::/0", "::1"));
	assert_true(in_block("::/0", "ffff:ffff::1"));
	assert_true(in_block("::/0", "10.0.0.1"));
	/* An IPv6 block written over the mapped range takes IPv4 clients. */
	assert_true(in_block("::ffff:0:0/96", "192.0.2.1"));
	assert_false(in_block("::ffff:0:0/96", "::fffe:c000:201"));
	/* Bare addresses: that one only. */
	assert_true(in_block("192.168.1.7", "192.168.1.7"));
	assert_false(in_block("192.168.1.7", "192.168.1.6"));
	assert_false(in_block("192.168.1.7", "192.168.1.8"));
	assert_true(in_block("[::1]/128", "::1"));
	assert_false(in_block("[::1]/128", "::"));
	assert_false(in_block("[::1]/128", "::3"));
	/* Prefixes that end inside a byte: the bits before the cut count,
	 * the ones after it do not. /1 (IPv4: bit 97 of the key). */
	assert_true(in_block("128.0.0.0/1", "128.0.0.0"));
	assert_true(in_block("128.0.0.0/1", "255.255.255.255"));
	assert_false(in_block("128.0.0.0/1", "127.255.255.255"));
	assert_true(in_block("0.0.0.0/1", "127.255.255.255"));
	assert_false(in_block("0.0.0.0/1", "128.0.0.0"));
	assert_true(in_block("8000::/1", "8000::"));
	assert_true(in_block("8000::/1", "ffff::1"));
	assert_false(in_block("8000::/1", "7fff:ffff::"));
	assert_false(in_block("8000::/1", "10.0.0.1"));
	assert_true(in_block("::/1", "10.0.0.1")); /* the mapped range */
	/* /9 */
	assert_true(in_block("10.128.0.0/9", "10.128.0.0"));
	assert_true(in_block("10.128.0.0/9", "10.255.255.255"));
	assert_false(in_block("10.128.0.0/9", "10.127.255.255"));
	assert_false(in_block("10.128.0.0/9", "11.128.0.0"));
	assert_true(in_block("10.0.0.0/9", "10.127.0.1"));
	assert_false(in_block("10.0.0.0/9", "10.128.0.1"));
	assert_true(in_block("ff80::/9", "ff80::"));
	assert_true(in_block("ff80::/9", "ffff::"));
	assert_false(in_block("ff80::/9", "ff7f:ffff::"));
	assert_false(in_block("ff80::/9", "fe80::"));
	/* /127: two addresses */
	assert_true(in_block("2001:db8::/127", "2001:db8::"));
	assert_true(in_block("2001:db8::/127", "2001:db8::1"));
	assert_false(in_block("2001:db8::/127", "2001:db8::2"));
	assert_true(in_block("2001:db8::2/127", "2001:db8::3"));
	assert_false(in_block("2001:db8::2/127", "2001:db8::1"));
	assert_false(in_block("2001:db8::2/127", "2001:db8::4"));
	/* /31 of IPv4 (bit 127) */
	assert_true(in_block("192.0.2.4/31", "192.0.2.5"));
	assert_false(in_block("192.0.2.4/31", "192.0.2.6"));
	assert_false(in_block("192.0.2.4/31", "192.0.2.3"));
	/* /33 of IPv6: a bit of the fifth byte */
	assert_true(in_block("2001:db8:8000::/33", "2001:db8:ffff::1"));
	assert_false(in_block("2001:db8:8000::/33", "2001:db8:7fff::1"));
}

static void test_cidr_list(void **state)
{
	static const char three[] = "10.0.0.0/8,::1,[2001:db8::]/32";
	struct parse_cidr out[4];
	const char *bad = (const char *)1;
	uint8_t k[16];
	char s[160];
	size_t n = 99;

	(void)state;
	assert_int_equal(parse_cidr_list(three, out, 4, &n, &bad), 0);
	assert_int_equal(n, 3);
	assert_null(bad);
	assert_int_equal(out[0].bits, 104);
	assert_int_equal(out[1].bits, 128);
	assert_int_equal(out[2].bits, 32);
	/* One block. */
	assert_int_equal(parse_cidr_list("::/0", out, 4, &n, &bad), 0);
	assert_int_equal(n, 1);
	/* Exactly max, then one more: refused, bad NULL (no block of its
	 * own is wrong). */
	assert_int_equal(parse_cidr_list("1.1.1.1,2.2.2.2", out, 2, &n, &bad),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(
	    parse_cidr_list("1.1.1.1,2.2.2.2,3.3.3.3", out, 2, &n, &bad), -1);
	assert_null(bad);
	assert_int_equal(n, 2);
	/* Empty elements: refused, bad NULL. */
	assert_int_equal(parse_cidr_list("10.0.0.0/8,,::1", out, 4, &n, &bad),
			 -1);
	assert_null(bad);
	assert_int_equal(n, 1);
	assert_int_equal(parse_cidr_list("10.0.0.0/8,", out, 4, &n, &bad), -1);
	assert_null(bad);
	assert_int_equal(n, 1);
	assert_int_equal(parse_cidr_list(",10.0.0.0/8", out, 4, &n, &bad), -1);
	assert_null(bad);
	assert_int_equal(n, 0);
	assert_int_equal(parse_cidr_list("", out, 4, &n, &bad), -1);
	assert_null(bad);
	assert_int_equal(n, 0);
	assert_int_equal(parse_cidr_list(",", out, 4, &n, &bad), -1);
	assert_null(bad);
	/* A bad block: bad points at it (its text runs to the next comma),
	 * the blocks before it are counted. */
	snprintf(s, sizeof(s), "10.0.0.0/8,10.0.0.1/8,::1");
	assert_int_equal(parse_cidr_list(s, out, 4, &n, &bad), -1);
	assert_ptr_equal(bad, s + 11);
	assert_int_equal(n, 1);
	snprintf(s, sizeof(s), "x");
	assert_int_equal(parse_cidr_list(s, out, 4, &n, &bad), -1);
	assert_ptr_equal(bad, s);
	assert_int_equal(n, 0);
	snprintf(s, sizeof(s), "::1,2001:db8::/129");
	assert_int_equal(parse_cidr_list(s, out, 4, &n, &bad), -1);
	assert_ptr_equal(bad, s + 4);
	/* A bad block after max good ones: more than max wins, bad NULL. */
	assert_int_equal(parse_cidr_list("1.1.1.1,x", out, 1, &n, &bad), -1);
	assert_null(bad);
	/* An element too long for any block, in the middle or last: bad
	 * points at it. */
	memset(s, 0, sizeof(s));
	memcpy(s, "1.1.1.1,", 8);
	memset(s + 8, '1', 100);
	assert_int_equal(parse_cidr_list(s, out, 4, &n, &bad), -1);
	assert_ptr_equal(bad, s + 8);
	assert_int_equal(n, 1);
	memcpy(s + 108, ",::1", 5);
	assert_int_equal(parse_cidr_list(s, out, 4, &n, &bad), -1);
	assert_ptr_equal(bad, s + 8);
	/* The longest block and its brackets fit an element. */
	assert_int_equal(
	    parse_cidr_list(
		"::1,[0000:0000:0000:0000:0000:0000:255.255.255.255]/128", out,
		4, &n, &bad),
	    0);
	assert_int_equal(n, 2);

	/* parse_cidr_list_match: any of them. */
	assert_int_equal(parse_cidr_list(three, out, 4, &n, &bad), 0);
	key("10.9.9.9", k);
	assert_true(parse_cidr_list_match(out, n, k));
	key("::1", k);
	assert_true(parse_cidr_list_match(out, n, k));
	key("2001:db8:1::5", k);
	assert_true(parse_cidr_list_match(out, n, k));
	key("2001:db9::", k);
	assert_false(parse_cidr_list_match(out, n, k));
	key("11.0.0.0", k);
	assert_false(parse_cidr_list_match(out, n, k));
	/* The last block only, and none at all. */
	key("2001:db8::", k);
	assert_true(parse_cidr_list_match(out + 2, 1, k));
	assert_false(parse_cidr_list_match(out, 2, k));
	assert_false(parse_cidr_list_match(out, 0, k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delim_spellings),
	    cmocka_unit_test(test_delim_splits_reply),
	    cmocka_unit_test(test_escape_classes),
	    cmocka_unit_test(test_escape_cut),
	    cmocka_unit_test(test_escape_small_buffers),
	    cmocka_unit_test(test_getopt_errors),
	    cmocka_unit_test(test_getopt_error_bounds),
	    cmocka_unit_test(test_u64_and_mode),
	    cmocka_unit_test(test_cidr_accepted),
	    cmocka_unit_test(test_cidr_refused),
	    cmocka_unit_test(test_cidr_match),
	    cmocka_unit_test(test_cidr_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
