/*
 * test_sandbox.c - the children's seccomp filter (src/sandbox.c): what a
 * sandboxed process may still do, and that anything else kills it with
 * SIGSYS. Each case runs in a forked child, as in echod.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox.h"

/* Leave a sandboxed child without the libc/sanitizer exit paths, which
 * may make system calls the filter kills (as session.c does). */
static void child_exit(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
}

/* Fork a child that enters the sandbox, runs fn on its end of a socket
 * pair and exits with fn's return value. Returns the pid; *peer is the
 * parent's end. */
static pid_t spawn_sandboxed(int (*fn)(int), int *peer)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (sandbox_enter() < 0)
			child_exit(100);
		child_exit(fn(sv[1]));
	}
	close(sv[1]);
	*peer = sv[0];
	return pid;
}

/* Reap pid, close peer, and return the wait status. */
static int reap(pid_t pid, int peer)
{
	int st = 0;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(peer);
	return st;
}

static int setup(void **state)
{
	char err[256];

	(void)state;
	/* A child that dies early must fail an assertion, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (sandbox_prepare(err, sizeof(err)) < 0) {
		fprintf(stderr, "sandbox_prepare: %s\n", err);
		return -1;
	}
	return 0;
}

/* What the serving loop needs: read, write, ppoll, shutdown, close and
 * the clock. */
static int serving_calls(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct timespec ts = {5, 0}; /* the parent answers at once; a loaded
					machine may take a while */
	char b[8];

	if (write(fd, "ping", 4) != 4)
		return 1;
	if (ppoll(&pfd, 1, &ts, NULL) != 1)
		return 2;
	if (read(fd, b, sizeof(b)) != 4 || memcmp(b, "pong", 4) != 0)
		return 3;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 4;
	if (shutdown(fd, SHUT_WR) != 0)
		return 5;
	if (close(fd) != 0)
		return 6;
	return 0;
}

static void test_serving_calls_allowed(void **state)
{
	int peer, st;
	pid_t pid;
	char b[8];

	(void)state;
	pid = spawn_sandboxed(serving_calls, &peer);
	assert_int_equal(read(peer, b, 4), 4);
	assert_memory_equal(b, "ping", 4);
	assert_int_equal(write(peer, "pong", 4), 4);
	st = reap(pid, peer);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int show_status(int fd)
{
	char b;

	if (write(fd, "in", 2) != 2)
		return 1;
	/* Wait (in an allowed call) while the parent reads our status. */
	return read(fd, &b, 1) == 1 ? 0 : 1;
}

static void test_seccomp_mode_2(void **state)
{
	char path[64], line[256];
	int peer, st, seen = 0;
	FILE *f;
	pid_t pid;

	(void)state;
	pid = spawn_sandboxed(show_status, &peer);
	assert_int_equal(read(peer, line, 2), 2);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Seccomp:", 8) == 0) {
			assert_string_equal(line, "Seccomp:\t2\n");
			seen = 1;
		}
	fclose(f);
	assert_true(seen);
	assert_int_equal(write(peer, "x", 1), 1);
	st = reap(pid, peer);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Each of these must kill the sandboxed process. */
static int which_forbidden;

static int forbidden(int fd)
{
	int which = which_forbidden;

	(void)fd;
	switch (which) {
	case 0:
		return (int)syscall(SYS_getppid);
	case 1:
		return (int)syscall(SYS_openat, AT_FDCWD, "/etc/passwd", 0);
	case 2:
		return (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	case 3:
		return (int)syscall(SYS_mmap, NULL, 4096, 3, 0x22, -1, 0);
	case 4:
		return (int)syscall(SYS_execve, "/bin/true", NULL, NULL);
	case 5:
		return (int)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	case 6:
		return (int)syscall(SYS_accept4, 0, NULL, NULL, 0);
	case 7:
		return (int)syscall(SYS_kill, 1, 0);
	default:
		return (int)syscall(SYS_prctl, PR_GET_SECCOMP);
	}
}

static void test_other_calls_killed(void **state)
{
	int which, st, peer;
	pid_t pid;

	(void)state;
	for (which = 0; which <= 8; which++) {
		which_forbidden = which; /* read by the forked child */
		pid = spawn_sandboxed(forbidden, &peer);
		st = reap(pid, peer);
		print_message("forbidden call %d: status 0x%x\n", which, st);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGSYS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serving_calls_allowed),
	    cmocka_unit_test(test_seccomp_mode_2),
	    cmocka_unit_test(test_other_calls_killed),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
