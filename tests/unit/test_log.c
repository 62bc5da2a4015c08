/*
 * test_log.c - echod's logging (src/log.c): log_escape, the line format
 * (the UTC date computed by hand, checked against gmtime_r over four
 * centuries), long lines cut, the levels, stderr as a pipe, a socket, a
 * file or a terminal-like device, and what happens when stderr does not
 * take a line: EINTR, short writes, lines dropped and announced.
 *
 * log.c keeps its state in statics (where stderr goes, the dropped
 * lines), so each case that writes runs in a child of its own with stderr
 * redirected (capture()); the test process asserts on what came out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "log.h"
#include "opts.h"

FAULT_WRAP(int, fstat, (int fd, struct stat *st), (fd, st), -1)
FAULT_WRAP(ssize_t, send, (int fd, const void *b, size_t n, int fl),
	   (fd, b, n, fl), -1)
FAULT_WRAP(int, socket, (int d, int t, int p), (d, t, p), -1)

/* open and fcntl are variadic: one optional argument, passed on. */
static struct fault fault_open;
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	va_start(ap, flags);
	if (flags & (O_CREAT | __O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (fault_fire(&fault_open))
		return -1;
	return __real_open(path, flags, mode);
}

FAULT_WRAP_FCNTL()

FAULT_WRITE_SCRIPT()

/* clock_gettime(CLOCK_REALTIME): the time the log line says, when set. */
static int fake_time_on;
static struct timespec fake_time;
int __real_clock_gettime(clockid_t c, struct timespec *ts);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts)
{
	if (c == CLOCK_REALTIME && fake_time_on) {
		*ts = fake_time;
		return 0;
	}
	return __real_clock_gettime(c, ts);
}

/* ---- running a case with stderr redirected ---- */

enum sink { SINK_PIPE, SINK_SOCKET, SINK_FILE, SINK_DEVNULL };

/*
 * Fork; the child points stderr at a new sink of that kind, runs fn and
 * exits with fn's result. Returns the child's exit status (128 + signal
 * if it was killed); what it wrote to stderr is in out (NUL-terminated).
 */
static int capture(enum sink kind, int (*fn)(void), char *out, size_t outlen)
{
	char path[] = "/tmp/echod-test-log-XXXXXX";
	int fds[2] = {-1, -1}, st, w = -1;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	switch (kind) {
	case SINK_PIPE:
		assert_int_equal(pipe(fds), 0);
		w = fds[1];
		break;
	case SINK_SOCKET:
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
		w = fds[1];
		break;
	case SINK_FILE:
		w = mkstemp(path);
		assert_true(w >= 0);
		break;
	case SINK_DEVNULL:
		w = __real_open("/dev/null", O_WRONLY);
		assert_true(w >= 0);
		break;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (fds[0] >= 0)
			close(fds[0]);
		dup2(w, STDERR_FILENO);
		close(w);
		exit(fn());
	}
	close(w);
	if (kind == SINK_FILE) {
		/* A file has no writer to wait for: read it once written. */
		assert_int_equal(waitpid(pid, &st, 0), pid);
		fds[0] = __real_open(path, O_RDONLY);
	}
	if (fds[0] >= 0) {
		while (got + 1 < outlen &&
		       (n = read(fds[0], out + got, outlen - 1 - got)) > 0)
			got += (size_t)n;
		close(fds[0]);
	}
	out[got] = '\0';
	if (kind == SINK_FILE)
		unlink(path);
	else
		assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* The line's text after "echod[pid]: ", the date checked. */
static const char *after_prefix(const char *line)
{
	static regex_t re;
	static int compiled;
	regmatch_t m;

	if (!compiled) {
		assert_int_equal(
		    regcomp(&re,
			    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
			    "[0-9]{2}\\.[0-9]{3}Z [a-z]+\\[[0-9]+\\]: ",
			    REG_EXTENDED),
		    0);
		compiled = 1;
	}
	if (regexec(&re, line, 1, &m, 0) != 0)
		fail_msg("not a log line: '%s'", line);
	return line + m.rm_eo;
}

/* ---- log_escape ---- */

static void test_escape(void **state)
{
	char out[64], tiny[6];

	(void)state;
	assert_string_equal(
	    log_escape(out, sizeof(out), "a\n\t\\\"\x01\x7f", 7, LOG_MSG_CUT),
	    "a\\n\\t\\\\\\\"\\x01\\x7f");
	assert_string_equal(log_escape(out, sizeof(out), "", 0, LOG_MSG_CUT),
			    "");
	assert_string_equal(log_escape(out, sizeof(out), "abcdef", 6, 3),
			    "abc...");
	/* Binary bytes, NUL included. */
	assert_string_equal(log_escape(out, sizeof(out), "\0\xff", 2, 80),
			    "\\x00\\xff");
	/* The destination bounds it, and it stays NUL-terminated. */
	log_escape(tiny, sizeof(tiny), "abcdefghij", 10, 80);
	assert_true(strlen(tiny) < sizeof(tiny));
	assert_int_equal(strncmp(tiny, "ab", 2), 0);
}

/* ---- the line format, the levels ---- */

static void vprint(enum log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vprint(enum log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vprint(l, fmt, ap);
	va_end(ap);
}

static int levels_info(void)
{
	log_init("echod", LOG_LEVEL_INFO);
	if (log_set_nonblocking() != 0)
		return 10;
	log_info("info %d", 42);
	log_debug("debug hidden");
	log_notice("notice");
	errno = ENOENT;
	log_warn("warn");
	if (errno != ENOENT) /* logging keeps errno */
		return 11;
	log_warnx("warnx");
	vprint(LOG_LEVEL_INFO, "vprint %s", "info");
	vprint(LOG_LEVEL_DEBUG, "vprint hidden");
	log_info("%s", ""); /* an empty message */
	return log_enabled(LOG_LEVEL_DEBUG) ? 12 : 0;
}

static int levels_quiet(void)
{
	log_init("echod", LOG_LEVEL_ERROR);
	log_info("hidden");
	log_notice("notice");
	log_warnx("warnx");
	return log_enabled(LOG_LEVEL_INFO) ? 12 : 0;
}

static int levels_debug(void)
{
	log_init("echod", LOG_LEVEL_DEBUG);
	log_debug("debug %s", "shown");
	return 0;
}

/* Split out into lines (at most 16), each checked for the prefix. */
static int lines_of(char *out, const char **lines, int max)
{
	int n = 0;
	char *s = out, *nl;

	while (*s != '\0' && n < max) {
		nl = strchr(s, '\n');
		assert_non_null(nl);
		*nl = '\0';
		lines[n++] = after_prefix(s);
		s = nl + 1;
	}
	return n;
}

static void test_levels(void **state)
{
	char out[4096];
	const char *l[16];

	(void)state;
	assert_int_equal(capture(SINK_PIPE, levels_info, out, sizeof(out)), 0);
	assert_non_null(strstr(out, " echod["));
	assert_int_equal(lines_of(out, l, 16), 6);
	assert_string_equal(l[0], "info 42");
	assert_string_equal(l[1], "notice");
	assert_string_equal(l[2], "warn: No such file or directory");
	assert_string_equal(l[3], "warnx");
	assert_string_equal(l[4], "vprint info");
	assert_string_equal(l[5], "");

	assert_int_equal(capture(SINK_PIPE, levels_quiet, out, sizeof(out)), 0);
	assert_int_equal(lines_of(out, l, 16), 2);
	assert_string_equal(l[0], "notice");
	assert_string_equal(l[1], "warnx");

	assert_int_equal(capture(SINK_PIPE, levels_debug, out, sizeof(out)), 0);
	assert_int_equal(lines_of(out, l, 16), 1);
	assert_string_equal(l[0], "debug shown");
}

/* The pid is cached: log_reinit_pid() takes the new one after fork(). */
static int pid_cached(void)
{
	pid_t pid;
	int st;

	log_init("echod", LOG_LEVEL_INFO);
	log_info("first");
	pid = fork();
	if (pid == 0) {
		log_info("stale");
		log_reinit_pid();
		log_info("fresh %ld", (long)getpid());
		exit(0);
	}
	waitpid(pid, &st, 0);
	return 0;
}

static void test_pid(void **state)
{
	char out[4096], want[64];
	const char *first, *stale, *fresh;
	char *a, *b, *c;

	(void)state;
	assert_int_equal(capture(SINK_PIPE, pid_cached, out, sizeof(out)), 0);
	a = out;
	b = strchr(a, '\n') + 1;
	c = strchr(b, '\n') + 1;
	first = strchr(a, '[');
	stale = strchr(b, '[');
	fresh = strchr(c, '[');
	/* The child's "stale" line carries the parent's pid. */
	assert_int_equal(
	    strncmp(first, stale, (size_t)(strchr(first, ']') - first)), 0);
	snprintf(want, sizeof(want), "[%ld]: fresh %ld\n",
		 strtol(fresh + 1, NULL, 10), strtol(fresh + 1, NULL, 10));
	assert_non_null(strstr(c, want));
	assert_true(
	    strncmp(first, fresh, (size_t)(strchr(first, ']') - first)) != 0);
}

/* ---- long lines ---- */

static int long_lines(void)
{
	static char big[3 * LOG_LINE_MAX];

	memset(big, 'x', sizeof(big) - 1);
	log_init("echod", LOG_LEVEL_INFO);
	log_info("%s", big);
	errno = EPERM;
	log_warn("%s", big); /* no room left for ": strerror" */
	errno = EPERM;
	log_warn("%.*s", LOG_LINE_MAX - 60, big); /* the suffix is cut */
	return 0;
}

static void test_long_lines(void **state)
{
	char out[4 * LOG_LINE_MAX];
	char *l1, *l2, *l3, *end;

	(void)state;
	assert_int_equal(capture(SINK_PIPE, long_lines, out, sizeof(out)), 0);
	l1 = out;
	l2 = strchr(l1, '\n') + 1;
	l3 = strchr(l2, '\n') + 1;
	end = strchr(l3, '\n') + 1;
	/* Each line is LOG_LINE_MAX - 1 bytes with its newline, cut with
	 * "...". */
	assert_int_equal(l2 - l1, LOG_LINE_MAX - 1);
	assert_int_equal(l3 - l2, LOG_LINE_MAX - 1);
	assert_int_equal(end - l3, LOG_LINE_MAX - 1);
	assert_memory_equal(l2 - 4, "...\n", 4);
	assert_memory_equal(l3 - 4, "...\n", 4);
	assert_memory_equal(end - 4, "...\n", 4);
	assert_null(memmem(l2, (size_t)(l3 - l2), "Operation", 9));
	/* The third: the message whole, the suffix cut. */
	assert_non_null(strstr(l3, "x: Operation"));
	assert_string_equal(end, "");
}

/* A program name longer than a line: the prefix alone, cut. */
static int long_prog(void)
{
	static char prog[2 * LOG_LINE_MAX];

	memset(prog, 'p', sizeof(prog) - 1);
	log_init(prog, LOG_LEVEL_INFO);
	log_info("lost");
	return 0;
}

static void test_long_prog(void **state)
{
	char out[4 * LOG_LINE_MAX];

	(void)state;
	assert_int_equal(capture(SINK_PIPE, long_prog, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), LOG_LINE_MAX - 1);
	assert_null(strstr(out, "lost"));
	assert_memory_equal(out + LOG_LINE_MAX - 5, "...\n", 4);
}

/* ---- the date ---- */

/* Times before 1970 are midnights: log.c splits tv_sec into days and
 * seconds with C's division, which rounds towards zero (a clock before
 * 1970 is not something echod supports). */
static const time_t dates[] = {
    0,		  /* 1970-01-01 */
    951782400,	  /* 2000-02-29 */
    951868800,	  /* 2000-03-01 */
    1709164800,	  /* 2024-02-29 */
    4107542399,	  /* 2100-02-28T23:59:59 */
    4107542400,	  /* 2100-03-01 */
    253402300799, /* 9999-12-31T23:59:59 */
    -86400,	  /* 1969-12-31 */
    -2203891200,  /* 1900-03-01 */
    -11644473600, /* 1601-01-01 */
    -62135596800, /* 0001-01-01 */
    -62162035200, /* 0000-03-01: the first day of era 0 */
    -62162121600, /* 0000-02-29: era -1 */
    -62167219200, /* 0000-01-01 */
};
#define NDATES (sizeof(dates) / sizeof(dates[0]))

static int log_dates(void)
{
	size_t i;

	log_init("echod", LOG_LEVEL_INFO);
	fake_time_on = 1;
	for (i = 0; i < NDATES; i++) {
		fake_time.tv_sec = dates[i];
		fake_time.tv_nsec = 123456789;
		log_info("d");
	}
	/* Four centuries from 1970 (2000 and 2100 show each leap-year
	 * rule): 28 Feb, 29 Feb (1 Mar when not a leap year), 1 Mar, 31 Dec. */
	for (i = 0; i < 400; i++) {
		static const int md[4][2] = {
		    {2, 28}, {2, 29}, {3, 1}, {12, 31}};
		struct tm tm;
		int k;

		for (k = 0; k < 4; k++) {
			memset(&tm, 0, sizeof(tm));
			tm.tm_year = 1970 + (int)i - 1900;
			tm.tm_mon = md[k][0] - 1;
			tm.tm_mday = md[k][1];
			tm.tm_hour = 12;
			fake_time.tv_sec = timegm(&tm);
			fake_time.tv_nsec = 0;
			log_info("d");
		}
	}
	fake_time_on = 0;
	return 0;
}

static void test_dates(void **state)
{
	static char out[2 * 1024 * 1024];
	char want[64], *line = out;
	struct tm tm;
	time_t t;
	size_t i;

	(void)state;
	assert_int_equal(capture(SINK_FILE, log_dates, out, sizeof(out)), 0);
	for (i = 0; i < NDATES + 1600; i++) {
		if (i < NDATES) {
			t = dates[i];
		} else {
			static const int md[4][2] = {
			    {2, 28}, {2, 29}, {3, 1}, {12, 31}};
			size_t k = i - NDATES;

			memset(&tm, 0, sizeof(tm));
			tm.tm_year = 1970 + (int)(k / 4) - 1900;
			tm.tm_mon = md[k % 4][0] - 1;
			tm.tm_mday = md[k % 4][1];
			tm.tm_hour = 12;
			t = timegm(&tm);
		}
		assert_non_null(gmtime_r(&t, &tm));
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 i < NDATES ? "123Z" : "000Z");
		if (strncmp(line, want, strlen(want)) != 0)
			fail_msg("time %lld: got '%.28s', want '%s'",
				 (long long)t, line, want);
		line = strchr(line, '\n');
		assert_non_null(line);
		line++;
	}
	assert_string_equal(line, "");
}

/* ---- where stderr goes ---- */

static int to_socket(void)
{
	log_init("echod", LOG_LEVEL_INFO);
	if (log_set_nonblocking() != 0)
		return 10;
	fault_arm(&fault_send, 0, 1, EINTR); /* retried */
	log_info("via send");
	return fault_send.calls == 2 ? 0 : 11;
}

static int to_file(void)
{
	log_init("echod", LOG_LEVEL_INFO);
	if (log_set_nonblocking() != 0)
		return 10;
	/* A regular file is left alone: still blocking. */
	if (__real_fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK)
		return 11;
	log_info("to a file");
	return 0;
}

static int to_devnull(void)
{
	int fl;

	log_init("echod", LOG_LEVEL_INFO);
	if (log_set_nonblocking() != 0)
		return 10;
	/* A character device is reopened as our own description. */
	fl = __real_fcntl(STDERR_FILENO, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK) ? 0 : 11;
}

static int pipe_reopened(void)
{
	int fl;

	if (log_set_nonblocking() != 0)
		return 10;
	fl = __real_fcntl(STDERR_FILENO, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK) ? 0 : 11;
}

/* The pipe cannot be reopened through /proc: O_NONBLOCK set on the
 * shared description instead; each failure of that is -1. */
static int pipe_no_proc(void)
{
	int fl;

	fault_arm(&fault_open, 0, 1, ENOENT);
	if (log_set_nonblocking() != 0)
		return 10;
	fl = __real_fcntl(STDERR_FILENO, F_GETFL);
	if (!(fl & O_NONBLOCK))
		return 11;
	fault_arm(&fault_open, 0, 1, ENOENT);
	fault_arm(&fault_fcntl, 0, 1, EBADF); /* F_GETFL */
	if (log_set_nonblocking() != -1)
		return 12;
	fault_arm(&fault_open, 0, 1, ENOENT);
	fault_arm(&fault_fcntl, 1, 1, EPERM); /* F_SETFL */
	if (log_set_nonblocking() != -1)
		return 13;
	return 0;
}

static int devnull_no_proc(void)
{
	fault_arm(&fault_open, 0, 1, EACCES);
	return log_set_nonblocking() == -1 ? 0 : 10;
}

static int no_fstat(void)
{
	fault_arm(&fault_fstat, 0, 1, EBADF);
	return log_set_nonblocking() == -1 ? 0 : 10;
}

/* --syslog: no socket to be had, or nobody listening at /dev/log. */
static int syslog_fails(void)
{
	fault_arm(&fault_socket, 0, 1, EMFILE);
	if (log_open_syslog() != -1 || errno != EMFILE)
		return 10;
	return 0;
}

static void test_syslog_fails(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(capture(SINK_PIPE, syslog_fails, out, sizeof(out)), 0);
}

static void test_stderr_kinds(void **state)
{
	char out[4096];
	const char *l[4];

	(void)state;
	assert_int_equal(capture(SINK_SOCKET, to_socket, out, sizeof(out)), 0);
	assert_int_equal(lines_of(out, l, 4), 1);
	assert_string_equal(l[0], "via send");
	assert_int_equal(capture(SINK_FILE, to_file, out, sizeof(out)), 0);
	assert_int_equal(lines_of(out, l, 4), 1);
	assert_string_equal(l[0], "to a file");
	assert_int_equal(capture(SINK_DEVNULL, to_devnull, out, sizeof(out)),
			 0);
	assert_int_equal(capture(SINK_PIPE, pipe_reopened, out, sizeof(out)),
			 0);
	assert_int_equal(capture(SINK_PIPE, pipe_no_proc, out, sizeof(out)), 0);
	assert_int_equal(
	    capture(SINK_DEVNULL, devnull_no_proc, out, sizeof(out)), 0);
	assert_int_equal(capture(SINK_PIPE, no_fstat, out, sizeof(out)), 0);
}

/* ---- lines stderr does not take ---- */

static int drops(void)
{
	static const long eintr[] = {-EINTR};
	static const long short3[] = {25, 10, 10};
	static const long full[] = {-EAGAIN};
	static const long zero[] = {0};
	static const long short2[] = {30};
	static const long note_fails[] = {-EAGAIN};

	log_init("echod", LOG_LEVEL_INFO);
	fault_write_script(1, eintr);
	log_info("after EINTR"); /* retried: written */
	if (log_dropped_total() != 0)
		return 10;
	fault_write_script(3, short3);
	log_info("cut three times"); /* 45 bytes, then given up */
	if (log_dropped_total() != 1)
		return 11;
	if (write(STDERR_FILENO, "\n", 1) != 1)
		return 14;
	fault_write_script(1, full);
	log_info("dropped: EAGAIN");
	fault_write_script(1, zero);
	log_info("dropped: 0");
	if (log_dropped_total() != 3)
		return 12;
	fault_write_script(1, short2);
	log_info("the announcement taken in two writes");
	/* Lines another process dropped are announced, not counted. */
	log_dropped_elsewhere(5);
	fault_write_script(1, note_fails);
	log_info("dropped with its announcement");
	log_info("after the drops");
	return log_dropped_total() == 4 ? 0 : 13;
}

static void test_drops(void **state)
{
	char out[8192];
	const char *l[16];
	int n;

	(void)state;
	assert_int_equal(capture(SINK_PIPE, drops, out, sizeof(out)), 0);
	n = lines_of(out, l, 16);
	assert_int_equal(n, 6);
	assert_string_equal(l[0], "after EINTR");
	/* l[1]: the 45 bytes of the line given up, ended by a newline */
	assert_string_equal(l[2], "log: 3 lines dropped (stderr stalled)");
	assert_string_equal(l[3], "the announcement taken in two writes");
	assert_string_equal(l[4], "log: 6 lines dropped (stderr stalled)");
	assert_string_equal(l[5], "after the drops");
}

static int fatal(void)
{
	log_init("echod", LOG_LEVEL_ERROR);
	log_fatal("cannot %s", "go on");
}

static void test_fatal(void **state)
{
	char out[4096];
	const char *l[4];

	(void)state;
	assert_int_equal(capture(SINK_PIPE, fatal, out, sizeof(out)), 1);
	assert_int_equal(lines_of(out, l, 4), 1);
	assert_string_equal(l[0], "cannot go on");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_levels),
	    cmocka_unit_test(test_pid),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_long_prog),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_stderr_kinds),
	    cmocka_unit_test(test_syslog_fails),
	    cmocka_unit_test(test_drops),
	    cmocka_unit_test(test_fatal),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
