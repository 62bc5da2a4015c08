/*
 * test_parse.c - unit tests of the spellings and messages the three
 * programs share (src/parse.c): --delim and the bytes of "ERR too long",
 * the escaping of arguments quoted in error messages, and the messages for
 * options getopt_long refuses (driven through the real getopt_long, whose
 * optind/optopt conventions parse_getopt_error depends on).
 */
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
