/*
 * test_opts.c - unit tests of echod's option parser (src/opts.c).
 *
 * Every numeric option gets the same adversarial table: the range ends,
 * one past them, signs, spaces, trailing garbage, other bases, overflow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opts.h"

#define MAXARGS 32

/* Parse a NULL-terminated list of arguments (argv[0] is added). */
static int parse(struct echod_opts *o, char *err, size_t errlen, ...)
{
	char *argv[MAXARGS + 2];
	va_list ap;
	int argc = 1;
	char *a;

	argv[0] = (char *)"echod";
	va_start(ap, errlen);
	while ((a = va_arg(ap, char *)) != NULL && argc <= MAXARGS)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return opts_parse(o, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
	assert_int_equal(o.port, 9999);
	assert_int_equal(o.bind_set, 0);
	assert_int_equal(o.bind_family, AF_INET6);
	assert_int_equal(o.mode, PROTO_RAW);
	assert_int_equal(o.delim, '\n');
	assert_int_equal(o.max_msg, 65536);
	assert_int_equal(o.max_conns, 1024);
	assert_int_equal(o.max_per_ip, 0);
	assert_int_equal(o.idle_timeout, 120);
	assert_int_equal(o.backlog, 1024);
	assert_int_equal(o.shutdown_timeout, 10);
	assert_int_equal(o.verbosity, OPTS_INFO);
	assert_int_equal(o.help, 0);
	assert_int_equal(o.version, 0);
	/* No PROXY protocol unless asked for. */
	assert_int_equal(o.proxy, 0);
	assert_int_equal(o.nproxy_from, 0);
	assert_int_equal(o.proxy_timeout, 5);
}

static void test_all_options(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "-p", "0", "-b",
			       "127.0.0.1", "-m", "line", "--delim", "nul",
			       "--max-msg", "1", "-c", "1", "--max-per-ip", "3",
			       "-t", "0", "--backlog", "1",
			       "--shutdown-timeout", "0", "-v", NULL),
			 0);
	assert_int_equal(o.port, 0);
	assert_int_equal(o.bind_set, 1);
	assert_int_equal(o.bind_family, AF_INET);
	assert_int_equal(o.bind4.s_addr, htonl(0x7f000001));
	assert_int_equal(o.mode, PROTO_LINE);
	assert_int_equal(o.delim, 0);
	assert_int_equal(o.max_msg, 1);
	assert_int_equal(o.max_conns, 1);
	assert_int_equal(o.max_per_ip, 3);
	assert_int_equal(o.idle_timeout, 0);
	assert_int_equal(o.backlog, 1);
	assert_int_equal(o.shutdown_timeout, 0);
	assert_int_equal(o.verbosity, OPTS_VERBOSE);
}

static void test_long_forms(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "--port=65535", "--bind",
			       "::1", "--mode=frame", "--max-conns", "1000000",
			       "--idle-timeout", "86400", "--quiet", NULL),
			 0);
	assert_int_equal(o.port, 65535);
	assert_int_equal(o.bind_family, AF_INET6);
	assert_true(IN6_IS_ADDR_LOOPBACK(&o.bind6));
	assert_int_equal(o.mode, PROTO_FRAME);
	assert_int_equal(o.max_conns, 1000000);
	assert_int_equal(o.idle_timeout, 86400);
	assert_int_equal(o.verbosity, OPTS_QUIET);
	/* The last of -q and -v wins. */
	assert_int_equal(parse(&o, err, sizeof(err), "-q", "-v", NULL), 0);
	assert_int_equal(o.verbosity, OPTS_VERBOSE);
	/* Brackets as in URLs. */
	assert_int_equal(parse(&o, err, sizeof(err), "-b", "[::]", NULL), 0);
	assert_int_equal(o.bind_set, 1);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&o.bind6));
}

struct numcase {
	const char *opt;
	const char *arg;
	int ok;
	uint32_t want;
};

static uint32_t field(const struct echod_opts *o, const char *opt)
{
	if (strcmp(opt, "-p") == 0)
		return o->port;
	if (strcmp(opt, "--max-msg") == 0)
		return o->max_msg;
	if (strcmp(opt, "-c") == 0)
		return o->max_conns;
	if (strcmp(opt, "--max-per-ip") == 0)
		return o->max_per_ip;
	if (strcmp(opt, "-t") == 0)
		return o->idle_timeout;
	if (strcmp(opt, "--backlog") == 0)
		return o->backlog;
	if (strcmp(opt, "--metrics-interval") == 0)
		return o->metrics_interval;
	if (strcmp(opt, "--proxy-timeout") == 0)
		return o->proxy_timeout;
	return o->shutdown_timeout;
}

static const struct numcase numcases[] = {
    {"-p", "0", 1, 0},
    {"-p", "1", 1, 1},
    {"-p", "65535", 1, 65535},
    {"-p", "65536", 0, 0},
    {"-p", "80x", 0, 0},
    {"-p", "x80", 0, 0},
    {"-p", "", 0, 0},
    {"-p", "-1", 0, 0},
    {"-p", "+1", 0, 0},
    {"-p", " 1", 0, 0},
    {"-p", "1 ", 0, 0},
    {"-p", "0x50", 0, 0},
    {"-p", "1e3", 0, 0},
    {"-p", "2147483647", 0, 0},
    {"-p", "2147483648", 0, 0},
    {"-p", "4294967295", 0, 0},
    {"-p", "4294967296", 0, 0},
    {"-p", "18446744073709551616", 0, 0},
    {"-p", "00080", 1, 80},
    {"--max-msg", "0", 0, 0},
    {"--max-msg", "1", 1, 1},
    {"--max-msg", "16777216", 1, 16777216},
    {"--max-msg", "16777217", 0, 0},
    {"--max-msg", "4294967296", 0, 0},
    {"-c", "0", 0, 0},
    {"-c", "1", 1, 1},
    {"-c", "1000000", 1, 1000000},
    {"-c", "1000001", 0, 0},
    {"--max-per-ip", "0", 1, 0},
    {"--max-per-ip", "1000000", 1, 1000000},
    {"--max-per-ip", "1000001", 0, 0},
    {"-t", "0", 1, 0},
    {"-t", "86400", 1, 86400},
    {"-t", "86401", 0, 0},
    {"-t", "1.5", 0, 0},
    {"--backlog", "0", 0, 0},
    {"--backlog", "1", 1, 1},
    {"--backlog", "65535", 1, 65535},
    {"--backlog", "65536", 0, 0},
    {"--shutdown-timeout", "0", 1, 0},
    {"--shutdown-timeout", "3600", 1, 3600},
    {"--shutdown-timeout", "3601", 0, 0},
    {"--metrics-interval", "0", 0, 0},
    {"--metrics-interval", "1", 1, 1},
    {"--metrics-interval", "3600", 1, 3600},
    {"--metrics-interval", "3601", 0, 0},
    {"--proxy-timeout", "0", 0, 0},
    {"--proxy-timeout", "1", 1, 1},
    {"--proxy-timeout", "60", 1, 60},
    {"--proxy-timeout", "61", 0, 0},
    {"--proxy-timeout", "05", 1, 5},
    {"--proxy-timeout", "-5", 0, 0},
    {"--proxy-timeout", "4294967297", 0, 0},
};

/* --inetd serves one accepted connection: every listening option is a
 * usage error with it, in either order; the others are fine. */
static void test_inetd(void **state)
{
	static const char *const listening[][2] = {
	    {"-p", "7"},	{"-b", "127.0.0.1"},
	    {"-c", "3"},	{"--max-per-ip", "1"},
	    {"--backlog", "9"}, {"--shutdown-timeout", "1"},
	};
	struct echod_opts o;
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "-i", "-m", "line", "-t",
			       "5", "--syslog", "-v", NULL),
			 0);
	assert_true(o.inetd && o.syslog);
	assert_int_equal(o.mode, PROTO_LINE);
	assert_int_equal(parse(&o, err, sizeof(err), "--inetd", NULL), 0);
	assert_true(o.inetd && !o.syslog);
	for (i = 0; i < sizeof(listening) / sizeof(listening[0]); i++) {
		assert_int_equal(parse(&o, err, sizeof(err), "-i",
				       listening[i][0], listening[i][1], NULL),
				 -1);
		assert_non_null(strstr(err, "cannot be used with --inetd"));
		assert_int_equal(parse(&o, err, sizeof(err), listening[i][0],
				       listening[i][1], "--inetd", NULL),
				 -1);
		assert_non_null(strstr(err, "cannot be used with --inetd"));
	}
	assert_int_equal(parse(&o, err, sizeof(err), "-p", "7", NULL), 0);
	assert_true(o.port_set);
	assert_int_equal(parse(&o, err, sizeof(err), NULL), 0);
	assert_false(o.port_set);
}

static void test_numbers(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(numcases) / sizeof(numcases[0]); i++) {
		const struct numcase *c = &numcases[i];
		struct echod_opts o;
		char err[256];
		int r = parse(&o, err, sizeof(err), c->opt, c->arg, NULL);

		print_message("%s '%s'\n", c->opt, c->arg);
		if (c->ok) {
			assert_int_equal(r, 0);
			assert_int_equal(field(&o, c->opt), c->want);
		} else {
			assert_int_equal(r, -1);
			assert_non_null(strstr(err, "invalid"));
			/* The message quotes the bad value and the range. */
			assert_non_null(strstr(err, c->arg));
			assert_non_null(strstr(err, "(expected "));
		}
	}
}

static void test_port_message(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "-p", "80x", NULL), -1);
	assert_string_equal(err, "invalid port '80x' (expected 0-65535)");
	assert_int_equal(parse(&o, err, sizeof(err), "--max-msg", "0", NULL),
			 -1);
	assert_string_equal(err, "invalid max-msg '0' (expected 1-16777216)");
}

static void test_delim(void **state)
{
	static const struct {
		const char *arg;
		int ok;
		uint8_t want;
	} cases[] = {
	    {"lf", 1, '\n'},   {"nul", 1, 0},	  {"0x00", 1, 0},
	    {"0x0a", 1, '\n'}, {"0XFF", 1, 0xff}, {"0x7e", 1, '~'},
	    {";", 1, ';'},     {"x", 1, 'x'},	  {"0", 1, '0'},
	    {"", 0, 0},	       {"0x", 0, 0},	  {"0x1", 0, 0},
	    {"0x100", 0, 0},   {"0xgg", 0, 0},	  {"ab", 0, 0},
	    {"LF", 0, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct echod_opts o;
		char err[256];
		int r =
		    parse(&o, err, sizeof(err), "--delim", cases[i].arg, NULL);

		print_message("--delim '%s'\n", cases[i].arg);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_int_equal(o.delim, cases[i].want);
		} else {
			assert_int_equal(r, -1);
			assert_non_null(strstr(err, "invalid delimiter"));
		}
	}
}

/*
 * A delimiter that occurs in the reply "ERR too long" would split that reply
 * into two messages: refused in every spelling, the message says why, and
 * the words lf and nul (whose letters are in the reply) stay valid.
 */
static void test_delim_splits_reply(void **state)
{
	static const char reply_bytes[] = "ERRtolng "; /* each distinct byte */
	static const struct {
		const char *arg;
		uint8_t want;
	} ok[] = {
	    {"lf", '\n'}, {"nul", 0}, {";", ';'},     {"0x0a", '\n'},
	    {"0x00", 0},  {"|", '|'}, {"0X0A", '\n'}, {"e", 'e'},
	};
	size_t i;

	(void)state;
	for (i = 0; reply_bytes[i] != '\0'; i++) {
		const unsigned char b = (unsigned char)reply_bytes[i];
		char spell[3][8];
		size_t k;

		snprintf(spell[0], sizeof(spell[0]), "%c", b);
		snprintf(spell[1], sizeof(spell[1]), "0x%02x", b);
		snprintf(spell[2], sizeof(spell[2]), "0X%02X", b);
		for (k = 0; k < 3; k++) {
			struct echod_opts o;
			char err[256], want[128];
			int r = parse(&o, err, sizeof(err), "-m", "line",
				      "--delim", spell[k], NULL);

			print_message("--delim '%s'\n", spell[k]);
			assert_int_equal(r, -1);
			snprintf(want, sizeof(want),
				 "invalid delimiter '%s': it occurs in the "
				 "reply \"ERR too long\" and would split it",
				 spell[k]);
			assert_string_equal(err, want);
		}
	}
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct echod_opts o;
		char err[256];

		print_message("--delim '%s'\n", ok[i].arg);
		assert_int_equal(
		    parse(&o, err, sizeof(err), "--delim", ok[i].arg, NULL), 0);
		assert_int_equal(o.delim, ok[i].want);
	}
}

/* No byte a terminal would act on (below 0x20, DEL and above). */
static void assert_printable(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			fail_msg("byte 0x%02x in \"%s\"", *p, s);
}

/*
 * Every error message that quotes an argument shows it escaped: a newline
 * or an ESC in an argument must not reach the terminal.
 */
static void test_errors_escape_arguments(void **state)
{
	static const struct {
		const char *args[3];
		const char *want; /* a substring of the message */
	} cases[] = {
	    {{"-p", "8\n0\x1b"}, "invalid port '8\\n0\\x1b'"},
	    {{"--max-msg", "\n\x1b"}, "invalid max-msg '\\n\\x1b'"},
	    {{"-c", "\n\x1b"}, "invalid max-conns '\\n\\x1b'"},
	    {{"--max-per-ip", "\n\x1b"}, "invalid max-per-ip '\\n\\x1b'"},
	    {{"-t", "\n\x1b"}, "invalid idle-timeout '\\n\\x1b'"},
	    {{"--backlog", "\n\x1b"}, "invalid backlog '\\n\\x1b'"},
	    {{"--shutdown-timeout", "\n\x1b"},
	     "invalid shutdown-timeout '\\n\\x1b'"},
	    {{"-b", "\x1b[31m::1\n"}, "invalid bind address '\\x1b[31m::1\\n'"},
	    {{"-m", "raw\n\x1b"}, "invalid mode 'raw\\n\\x1b'"},
	    {{"--delim", "\n\x1b"}, "invalid delimiter '\\n\\x1b'"},
	    {{"--delim", "\x7f\xff"}, "invalid delimiter '\\x7f\\xff'"},
	    {{"--proxy-timeout", "\n\x1b"}, "invalid proxy-timeout '\\n\\x1b'"},
	    {{"--proxy-protocol", "v1\n\x1b"},
	     "invalid proxy protocol 'v1\\n\\x1b'"},
	    {{"--proxy-from", "::1,\x1b[31m\n"},
	     "invalid proxy address block '\\x1b[31m\\n'"},
	    {{"--proxy-from", "::1,\n,\x1b"},
	     "invalid proxy address block '\\n'"},
	    {{"--proxy-from", ",\n\x1b"}, "invalid --proxy-from ',\\n\\x1b'"},
	    {{"extra\n\x1b"}, "unexpected argument 'extra\\n\\x1b'"},
	    {{"--bogus\n\x1b"}, "unknown option '--bogus\\n\\x1b'"},
	    {{"--quiet=\n\x1b"}, "option '--quiet' takes no argument"},
	    {{"-\x1b"}, "unknown option '-\\x1b'"},
	    {{"-q\n"}, "unknown option '-\\n'"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		struct echod_opts o;
		char err[256];

		print_message("case %zu: %s\n", i, cases[i].want);
		assert_int_equal(parse(&o, err, sizeof(err), a[0], a[1], a[2]),
				 -1);
		assert_non_null(strstr(err, cases[i].want));
		assert_printable(err);
	}
}

/* A long argument is cut ("...") so that the message still says what was
 * expected within the caller's 256-byte line, whatever its bytes. */
static void test_errors_cut_long_arguments(void **state)
{
	char arg[1000], err[256];
	struct echod_opts o;
	int fill;

	(void)state;
	for (fill = 0; fill < 2; fill++) {
		memset(arg, fill ? 0x1b : 'a', sizeof(arg) - 1);
		arg[sizeof(arg) - 1] = '\0';
		assert_int_equal(parse(&o, err, sizeof(err), "-p", arg, NULL),
				 -1);
		print_message("%s\n", err);
		assert_non_null(strstr(err, "...' (expected 0-65535)"));
		assert_printable(err);
		assert_int_equal(
		    parse(&o, err, sizeof(err), "--delim", arg, NULL), -1);
		assert_non_null(strstr(err, "...' (expected lf, nul"));
		assert_non_null(strstr(err, "character)"));
	}
}

/* getopt_long has not left "-x5" when it refuses x: the message names
 * "-x", not the argument before it. */
static void test_unknown_short_inside_word(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "--verbose", "-xq", NULL),
			 -1);
	assert_string_equal(err, "unknown option '-x'");
	assert_int_equal(parse(&o, err, sizeof(err), "-p", "80", "-x5", NULL),
			 -1);
	assert_string_equal(err, "unknown option '-x'");
	assert_int_equal(parse(&o, err, sizeof(err), "--help=1", NULL), -1);
	assert_string_equal(err, "option '--help' takes no argument");
}

static void test_mode_and_bind(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "-m", "raw", NULL), 0);
	assert_int_equal(o.mode, PROTO_RAW);
	assert_int_equal(parse(&o, err, sizeof(err), "-m", "RAW", NULL), -1);
	assert_non_null(strstr(err, "invalid mode 'RAW'"));
	assert_int_equal(parse(&o, err, sizeof(err), "-m", "", NULL), -1);
	assert_int_equal(parse(&o, err, sizeof(err), "-b", "localhost", NULL),
			 -1);
	assert_non_null(strstr(err, "invalid bind address 'localhost'"));
	assert_int_equal(parse(&o, err, sizeof(err), "-b", "1.2.3.256", NULL),
			 -1);
	assert_int_equal(parse(&o, err, sizeof(err), "-b", "[::1", NULL), -1);
	assert_int_equal(parse(&o, err, sizeof(err), "-b", "", NULL), -1);
	assert_int_equal(
	    parse(&o, err, sizeof(err), "-b", "::ffff:1.2.3.4", NULL), 0);
	assert_int_equal(o.bind_family, AF_INET6);
}

static void test_bad_usage(void **state)
{
	struct echod_opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "--bogus", NULL), -1);
	assert_string_equal(err, "unknown option '--bogus'");
	assert_int_equal(parse(&o, err, sizeof(err), "-x", NULL), -1);
	assert_string_equal(err, "unknown option '-x'");
	assert_int_equal(parse(&o, err, sizeof(err), "--max", "1", NULL), -1);
	assert_string_equal(err, "ambiguous option '--max'");
	assert_int_equal(parse(&o, err, sizeof(err), "--quiet=1", NULL), -1);
	assert_string_equal(err, "option '--quiet' takes no argument");
	assert_int_equal(parse(&o, err, sizeof(err), "-p", NULL), -1);
	assert_string_equal(err, "option '-p' requires an argument");
	assert_int_equal(parse(&o, err, sizeof(err), "--port", NULL), -1);
	assert_string_equal(err, "option '--port' requires an argument");
	assert_int_equal(parse(&o, err, sizeof(err), "extra", NULL), -1);
	assert_string_equal(err, "unexpected argument 'extra'");
	/* A unique prefix is accepted, as getopt_long does. */
	assert_int_equal(parse(&o, err, sizeof(err), "--max-m", "7", NULL), 0);
	assert_int_equal(o.max_msg, 7);
	/* A tiny buffer is truncated, not overrun. */
	{
		char small[8];

		memset(small, 'Z', sizeof(small));
		assert_int_equal(parse(&o, small, 4, "-p", "80x", NULL), -1);
		assert_int_equal(small[3], '\0');
		assert_int_equal(small[4], 'Z');
	}
}

static void test_help_version(void **state)
{
	struct echod_opts o;
	char err[256];
	const char *h = opts_help();

	(void)state;
	assert_int_equal(parse(&o, err, sizeof(err), "-h", NULL), 0);
	assert_int_equal(o.help, 1);
	/* --help wins over what follows it, even if that is wrong. */
	assert_int_equal(parse(&o, err, sizeof(err), "--help", "-p", "x", NULL),
			 0);
	assert_int_equal(o.help, 1);
	assert_int_equal(parse(&o, err, sizeof(err), "--version", NULL), 0);
	assert_int_equal(o.version, 1);
	assert_int_equal(o.help, 0);
	/* Every option and its default is in the help text. */
	assert_non_null(strstr(h, "--port N"));
	assert_non_null(strstr(h, "(default 9999)"));
	assert_non_null(strstr(h, "--bind ADDR"));
	assert_non_null(strstr(h, "--mode MODE"));
	assert_non_null(strstr(h, "--delim C"));
	assert_non_null(strstr(h, "(default 65536)"));
	assert_non_null(strstr(h, "--max-conns N"));
	assert_non_null(strstr(h, "(default 1024)"));
	assert_non_null(strstr(h, "--max-per-ip N"));
	assert_non_null(strstr(h, "--idle-timeout S"));
	assert_non_null(strstr(h, "(default 120)"));
	assert_non_null(strstr(h, "--backlog N"));
	assert_non_null(strstr(h, "--shutdown-timeout S"));
	assert_non_null(strstr(h, "(default 10)"));
	assert_non_null(strstr(h, "--quiet"));
	assert_non_null(strstr(h, "--verbose"));
	assert_non_null(strstr(h, "--version"));
	assert_non_null(strstr(h, "--proxy-protocol V"));
	assert_non_null(strstr(h, "v1, v2 or any (default off)"));
	assert_non_null(strstr(h, "--proxy-from CIDR,..."));
	assert_non_null(strstr(h, "--proxy-timeout S"));
	assert_non_null(strstr(h, "header, 1-60 (default 5)"));
}

/* The PROXY protocol (SPEC 8): --proxy-protocol and --proxy-from go
 * together, --proxy-timeout alone is harmless. */
static void test_proxy(void **state)
{
	static const struct {
		const char *arg;
		enum proxy_accept want;
	} versions[] = {
	    {"v1", PROXY_ACCEPT_V1},
	    {"v2", PROXY_ACCEPT_V2},
	    {"any", PROXY_ACCEPT_ANY},
	};
	struct echod_opts o;
	char err[256], many[512];
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol",
				       versions[i].arg, "--proxy-from",
				       "10.0.0.0/8", NULL),
				 0);
		assert_int_equal(o.proxy, versions[i].want);
		assert_int_equal(o.nproxy_from, 1);
		assert_int_equal(o.proxy_from[0].bits, 104);
		assert_int_equal(o.proxy_timeout, 5);
	}
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-from",
			       "127.0.0.1,[::1]/128,2001:db8::/32",
			       "--proxy-protocol=any", "--proxy-timeout", "60",
			       NULL),
			 0);
	assert_int_equal(o.proxy, PROXY_ACCEPT_ANY);
	assert_int_equal(o.nproxy_from, 3);
	assert_int_equal(o.proxy_from[2].bits, 32);
	assert_int_equal(o.proxy_timeout, 60);
	/* The last --proxy-from is the list. */
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "v1",
			       "--proxy-from", "1.1.1.1,2.2.2.2",
			       "--proxy-from", "::1", NULL),
			 0);
	assert_int_equal(o.nproxy_from, 1);
	assert_int_equal(o.proxy_from[0].bits, 128);
	assert_int_equal(o.proxy_from[0].addr[15], 1);
	/* --proxy-timeout without the protocol: accepted, unused. */
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-timeout", "1", NULL), 0);
	assert_int_equal(o.proxy, 0);
	assert_int_equal(o.proxy_timeout, 1);
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-timeout", "0",
			       "--proxy-protocol", "v1", "--proxy-from", "::1",
			       NULL),
			 -1);
	assert_string_equal(err, "invalid proxy-timeout '0' (expected 1-60)");
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "v2",
			       "--proxy-from", "::1", "--proxy-timeout", "61",
			       NULL),
			 -1);
	assert_string_equal(err, "invalid proxy-timeout '61' (expected 1-60)");

	/* --inetd is no listening option's company: it takes the header
	 * too (the child checks the peer against --proxy-from itself). */
	assert_int_equal(parse(&o, err, sizeof(err), "--inetd",
			       "--proxy-protocol", "v2", "--proxy-from",
			       "127.0.0.1", "--proxy-timeout", "3", NULL),
			 0);
	assert_true(o.inetd);
	assert_int_equal(o.proxy, PROXY_ACCEPT_V2);
	assert_int_equal(o.proxy_timeout, 3);
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "v1",
			       "--proxy-from", "::1", "-i", NULL),
			 0);
	/* ... but the listening options still are not. */
	assert_int_equal(parse(&o, err, sizeof(err), "-i", "--proxy-protocol",
			       "v1", "--proxy-from", "::1", "--max-per-ip", "1",
			       NULL),
			 -1);
	assert_non_null(strstr(err, "cannot be used with --inetd"));

	/* The versions, exactly. */
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "V1",
			       "--proxy-from", "::1", NULL),
			 -1);
	assert_string_equal(
	    err, "invalid proxy protocol 'V1' (expected v1, v2 or any)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-protocol", "", NULL), -1);
	assert_string_equal(
	    err, "invalid proxy protocol '' (expected v1, v2 or any)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-protocol", "v3", NULL), -1);
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-protocol", "off", NULL), -1);
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-protocol", "v1 ", NULL), -1);
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", NULL),
			 -1);
	assert_string_equal(err,
			    "option '--proxy-protocol' requires an argument");

	/* One without the other. */
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-protocol", "any", NULL), -1);
	assert_string_equal(err, "--proxy-protocol needs --proxy-from (the "
				 "proxies allowed to send a header)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-from", "10.0.0.0/8", NULL),
	    -1);
	assert_string_equal(
	    err, "--proxy-from needs --proxy-protocol v1, v2 or any");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--inetd", "--proxy-from", "::1", NULL),
	    -1);
	assert_string_equal(
	    err, "--proxy-from needs --proxy-protocol v1, v2 or any");

	/* A block that is none: the message quotes that block only. */
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "v1",
			       "--proxy-from", "10.0.0.0/8,10.0.0.1/8,::1",
			       NULL),
			 -1);
	assert_string_equal(
	    err, "invalid proxy address block '10.0.0.1/8' (expected an IPv4 "
		 "or IPv6 address or CIDR block, e.g. 10.0.0.0/8)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-from", "localhost", NULL), -1);
	assert_string_equal(
	    err, "invalid proxy address block 'localhost' (expected an IPv4 "
		 "or IPv6 address or CIDR block, e.g. 10.0.0.0/8)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-from", "10.0.0.0/08", NULL),
	    -1);
	assert_non_null(strstr(err, "block '10.0.0.0/08'"));
	/* The list itself wrong: empty elements, too many blocks. */
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-protocol", "v1",
			       "--proxy-from", "10.0.0.0/8,,::1", NULL),
			 -1);
	assert_string_equal(err, "invalid --proxy-from '10.0.0.0/8,,::1' "
				 "(expected 1-16 comma-separated address "
				 "blocks)");
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-from", "::1,", NULL), -1);
	assert_string_equal(err, "invalid --proxy-from '::1,' (expected 1-16 "
				 "comma-separated address blocks)");
	assert_int_equal(parse(&o, err, sizeof(err), "--proxy-from", "", NULL),
			 -1);
	assert_string_equal(err, "invalid --proxy-from '' (expected 1-16 "
				 "comma-separated address blocks)");
	for (k = 16; k <= 17; k++) {
		size_t at = 0;
		int b;

		for (b = 0; b < k; b++)
			at += (size_t)snprintf(many + at, sizeof(many) - at,
					       "%s10.0.0.%d", b ? "," : "", b);
		print_message("%d blocks\n", k);
		if (k == OPTS_PROXY_FROM_MAX) {
			assert_int_equal(parse(&o, err, sizeof(err),
					       "--proxy-protocol", "v1",
					       "--proxy-from", many, NULL),
					 0);
			assert_int_equal(o.nproxy_from, 16);
		} else {
			assert_int_equal(parse(&o, err, sizeof(err),
					       "--proxy-protocol", "v1",
					       "--proxy-from", many, NULL),
					 -1);
			assert_non_null(strstr(
			    err, "' (expected 1-16 comma-separated address "
				 "blocks)"));
			assert_true(strncmp(err,
					    "invalid --proxy-from '10.0.0.0,",
					    31) == 0);
		}
	}
	/* A long bad block is cut like any quoted argument. */
	memset(many, 'z', 300);
	many[300] = '\0';
	assert_int_equal(
	    parse(&o, err, sizeof(err), "--proxy-from", many, NULL), -1);
	assert_non_null(strstr(err, "...' (expected an IPv4 or IPv6"));
	assert_true(strlen(err) < sizeof(err) - 1);
	assert_non_null(strstr(err, "e.g. 10.0.0.0/8)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_all_options),
	    cmocka_unit_test(test_long_forms),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_inetd),
	    cmocka_unit_test(test_port_message),
	    cmocka_unit_test(test_delim),
	    cmocka_unit_test(test_delim_splits_reply),
	    cmocka_unit_test(test_errors_escape_arguments),
	    cmocka_unit_test(test_errors_cut_long_arguments),
	    cmocka_unit_test(test_unknown_short_inside_word),
	    cmocka_unit_test(test_mode_and_bind),
	    cmocka_unit_test(test_bad_usage),
	    cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_proxy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
