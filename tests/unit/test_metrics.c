/*
 * test_metrics.c - --metrics-file's writer (src/metrics.c): snapshots
 * written as files replaced whole, the last one on disk before
 * metrics_finish() returns, and each failure: no folder, no socket pair,
 * no fork, a writer that cannot confine itself, cannot create, write or
 * rename its file, cannot format the text, is interrupted, or is sent
 * something that is no snapshot.
 *
 * The writer is a child of the test. It leaves with _exit(), which the
 * test wraps (--wrap) so that a coverage build's counts of the writer are
 * written first (echod's children do that in conn.c, coverage.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "coverage.h"
#include "fault.h"
#include "metrics.h"

void __real__exit(int status) __attribute__((noreturn));
void __wrap__exit(int status) __attribute__((noreturn));
void __wrap__exit(int status)
{
	coverage_child_flush();
	__real__exit(status);
}

FAULT_WRAP(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv), -1)
FAULT_WRAP(pid_t, fork, (void), (), -1)
FAULT_WRAP(int, sandbox_writer, (int dirfd), (dirfd), -1)
FAULT_WRAP(int, renameat, (int a, const char *o, int b, const char *n),
	   (a, o, b, n), -1)
FAULT_WRAP(ssize_t, recv, (int fd, void *b, size_t n, int fl), (fd, b, n, fl),
	   -1)
FAULT_WRAP(int, stats_prometheus,
	   (const struct stats *st, const struct stats_info *in, char *b,
	    size_t n),
	   (st, in, b, n), -1)

/* openat: variadic (the mode). */
static struct fault fault_openat;
int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	va_start(ap, flags);
	if (flags & (O_CREAT | __O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (fault_fire(&fault_openat))
		return -1;
	return __real_openat(dirfd, path, flags, mode);
}

/* write: only to the metrics file (descriptors above stderr). */
static struct fault fault_write;
ssize_t __real_write(int fd, const void *b, size_t n);
ssize_t __wrap_write(int fd, const void *b, size_t n);
ssize_t __wrap_write(int fd, const void *b, size_t n)
{
	if (fd > STDERR_FILENO && fault_fire(&fault_write))
		return -1;
	return __real_write(fd, b, n);
}

static char dir[64], path[128];
static const struct stats_info info = {"9.9.9", "seccomp", 1000};

static int setup(void **state)
{
	(void)state;
	memset(&fault_socketpair, 0, sizeof(struct fault));
	memset(&fault_fork, 0, sizeof(struct fault));
	memset(&fault_sandbox_writer, 0, sizeof(struct fault));
	memset(&fault_renameat, 0, sizeof(struct fault));
	memset(&fault_recv, 0, sizeof(struct fault));
	memset(&fault_stats_prometheus, 0, sizeof(struct fault));
	memset(&fault_openat, 0, sizeof(struct fault));
	memset(&fault_write, 0, sizeof(struct fault));
	snprintf(dir, sizeof(dir), "/tmp/echod-test-metrics-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* The writer may run as another uid: any may write here. */
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(path, sizeof(path), "%s/echod.prom", dir);
	return 0;
}

static int teardown(void **state)
{
	char p[192];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s/.echod.prom.tmp", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

/* The file's text, NUL-terminated ("" when there is none). */
static void read_file(char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Wait until the file says accepted=want (10 s at most). */
static int wait_for(unsigned want)
{
	static char text[16384];
	char line[64];
	int i;

	snprintf(line, sizeof(line), "echod_connections_accepted_total %u\n",
		 want);
	for (i = 0; i < 1000; i++) {
		read_file(text, sizeof(text));
		if (strstr(text, line) != NULL)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* The writer's exit status (it is our only child). */
static int writer_status(void)
{
	int st;

	assert_true(waitpid(-1, &st, 0) > 0);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_snapshots(void **state)
{
	struct stats st;
	int fd;

	(void)state;
	memset(&st, 0, sizeof(st));
	fd = metrics_start(path, &info);
	assert_true(fd >= 0);
	st.accepted = 1;
	metrics_send(fd, &st);
	assert_true(wait_for(1));
	st.accepted = 2;
	metrics_send(fd, &st);
	assert_true(wait_for(2));
	/* The last one is on disk when metrics_finish() returns. */
	st.accepted = 3;
	metrics_finish(fd, &st, 5000);
	assert_true(wait_for(3));
	assert_int_equal(writer_status(), 0);
	metrics_send(-1, &st);	     /* no writer: nothing */
	metrics_finish(-1, &st, 10); /* likewise */
}

/* A file name without a folder: the current one. */
static void test_relative(void **state)
{
	char cwd[256];
	struct stats st;
	int fd;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	fd = metrics_start("echod.prom", &info);
	assert_int_equal(chdir(cwd), 0);
	assert_true(fd >= 0);
	memset(&st, 0, sizeof(st));
	st.accepted = 7;
	metrics_finish(fd, &st, 5000);
	assert_true(wait_for(7));
	assert_int_equal(writer_status(), 0);
}

static void test_start_fails(void **state)
{
	char nodir[192];
	int fd0 = dup(0);

	(void)state;
	close(fd0);
	snprintf(nodir, sizeof(nodir), "%s/missing/echod.prom", dir);
	assert_int_equal(metrics_start(nodir, &info), -1);
	assert_int_equal(errno, ENOENT);
	fault_arm(&fault_socketpair, 0, 1, EMFILE);
	assert_int_equal(metrics_start(path, &info), -1);
	assert_int_equal(errno, EMFILE);
	fault_arm(&fault_fork, 0, 1, EAGAIN);
	assert_int_equal(metrics_start(path, &info), -1);
	assert_int_equal(errno, EAGAIN);
	/* Nothing left open. */
	assert_int_equal(dup(0), fd0);
	close(fd0);
}

/* Each of the writer's failures, armed before it is forked: it says so
 * (on stderr) and goes on, or leaves. */
static void writer_fails(struct fault *f, int err, int status)
{
	struct stats st;
	int fd;

	memset(&st, 0, sizeof(st));
	fault_arm(f, 0, 1, err);
	fd = metrics_start(path, &info);
	f->times = 0; /* the test's own calls are not the writer's */
	assert_true(fd >= 0);
	st.accepted = 11;
	metrics_send(fd, &st);
	st.accepted = 12;
	metrics_finish(fd, &st, 5000);
	if (status == 0)
		assert_true(wait_for(12));
	assert_int_equal(writer_status(), status);
}

static void test_writer_fails(void **state)
{
	(void)state;
	writer_fails(&fault_sandbox_writer, EPERM, 1);
	writer_fails(&fault_openat, EACCES, 0);
	writer_fails(&fault_write, ENOSPC, 0);
	writer_fails(&fault_renameat, EBUSY, 0);
	writer_fails(&fault_stats_prometheus, 0, 0);
	writer_fails(&fault_recv, EINTR, 0);
	writer_fails(&fault_write, EINTR, 0); /* retried */
}

/* Something that is no snapshot: the writer leaves (status 1). */
static void test_not_a_snapshot(void **state)
{
	int fd;

	(void)state;
	fd = metrics_start(path, &info);
	assert_true(fd >= 0);
	assert_int_equal(send(fd, "abc", 3, 0), 3);
	assert_int_equal(writer_status(), 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_relative, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_snapshot, setup,
					    teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
