/*
 * test_sandbox.c - echod's sandbox (src/sandbox.c): one filter loaded by
 * the parent and inherited, plus the per-child confinement. Each case runs
 * the real shape: a "server" process installs the filter once and forks a
 * child that confines itself (sandbox_child) and then tries a call. What a
 * child needs must work; what it must not do must fail, by SIGSYS or by
 * an error, with no effect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "opts.h"
#include "sandbox.h"

/* Leave without the libc/sanitizer exit paths, which may make system
 * calls the filter kills (as session.c does). */
static void child_exit(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
}

/* The status a "server" leaves with, from its child's wait status: the
 * child's exit status, or 128 + the signal that killed it. */
static int encode(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/*
 * Fork a server that installs the filter, forks a child that runs
 * sandbox_child() and then fn(fd, server pid) on its end of a socket
 * pair, and leaves with encode(child's status). Returns the server's pid;
 * *peer is the test's end of the pair.
 */
static pid_t spawn_sandboxed(int (*fn)(int, pid_t), int *peer)
{
	char err[256];
	int sv[2], st;
	pid_t server, child;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		close(sv[0]);
		if (sandbox_install(err, sizeof(err)) < 0) {
			fprintf(stderr, "sandbox_install: %s\n", err);
			child_exit(101);
		}
		child = fork();
		if (child < 0)
			child_exit(102);
		if (child == 0) {
			if (sandbox_child(getppid()) < 0)
				child_exit(100);
			child_exit(fn(sv[1], getppid()));
		}
		close(sv[1]);
		while (waitpid(child, &st, 0) < 0)
			;
		child_exit(encode(st));
	}
	close(sv[1]);
	*peer = sv[0];
	return server;
}

/* Reap the server, close peer, return what its child did (encode()). */
static int reap(pid_t pid, int peer)
{
	int st = 0;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(peer);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int setup(void **state)
{
	(void)state;
	/* A child that dies early must fail an assertion, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* What the serving loop needs: read, write, ppoll, shutdown, close, the
 * clock, the send queue, a message buffer, the raw bulk pipe at its size,
 * the report. */
static int serving_calls(int fd, pid_t server)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct timespec ts = {5, 0}; /* the test answers at once; a loaded
					machine may take a while */
	char b[8];
	void *m;
	int q, pp[2];

	(void)server;
	if (write(fd, "ping", 4) != 4)
		return 1;
	if (ppoll(&pfd, 1, &ts, NULL) != 1)
		return 2;
	if (read(fd, b, sizeof(b)) != 4 || memcmp(b, "pong", 4) != 0)
		return 3;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 4;
	if (ioctl(fd, SIOCOUTQ, &q) != 0)
		return 5;
	m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || munmap(m, 1 << 20) != 0)
		return 6;
	if (pipe2(pp, O_CLOEXEC) != 0 ||
	    fcntl(pp[1], F_SETPIPE_SZ, CONN_PIPE_SIZE) < CONN_PIPE_SIZE ||
	    close(pp[0]) != 0 || close(pp[1]) != 0)
		return 10;
	if (send(fd, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
		return 7;
	if (shutdown(fd, SHUT_WR) != 0)
		return 8;
	if (close(fd) != 0)
		return 9;
	return 0;
}

static void test_serving_calls_allowed(void **state)
{
	int peer;
	pid_t pid;
	char b[8];

	(void)state;
	pid = spawn_sandboxed(serving_calls, &peer);
	assert_int_equal(read(peer, b, 4), 4);
	assert_memory_equal(b, "ping", 4);
	assert_int_equal(write(peer, "pong", 4), 4);
	assert_int_equal(read(peer, b, 1), 1);
	assert_int_equal(reap(pid, peer), 0);
}

static int show_status(int fd, pid_t server)
{
	char b;

	(void)server;
	if (write(fd, "in", 2) != 2)
		return 1;
	/* Wait (in an allowed call) while the test reads our status. */
	return read(fd, &b, 1) == 1 ? 0 : 1;
}

/* The value of "Key:" in /proc/pid/status (or limits), tabs and all. */
static void proc_line(pid_t pid, const char *file, const char *key, char *out,
		      size_t len)
{
	char path[64], line[256];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0) {
			snprintf(out, len, "%s", line + strlen(key));
			break;
		}
	fclose(f);
}

static pid_t only_child(pid_t server)
{
	char path[64], buf[64];
	FILE *f;
	int c = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)server,
		 (int)server);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	c = atoi(buf);
	assert_true(c > 0);
	return (pid_t)c;
}

static void test_status(void **state)
{
	char v[128];
	int peer;
	pid_t pid, child;

	(void)state;
	pid = spawn_sandboxed(show_status, &peer);
	assert_int_equal(read(peer, v, 2), 2);
	child = only_child(pid);
	/* One filter, loaded by the server, inherited: the same count in
	 * both, and no second program compiled for the child. */
	proc_line(pid, "status", "Seccomp:", v, sizeof(v));
	assert_string_equal(v, "\t2\n");
	proc_line(pid, "status", "Seccomp_filters:", v, sizeof(v));
	assert_string_equal(v, "\t1\n");
	proc_line(child, "status", "Seccomp:", v, sizeof(v));
	assert_string_equal(v, "\t2\n");
	proc_line(child, "status", "Seccomp_filters:", v, sizeof(v));
	assert_string_equal(v, "\t1\n");
	proc_line(child, "status", "NoNewPrivs:", v, sizeof(v));
	assert_string_equal(v, "\t1\n");
	proc_line(child, "status", "CapEff:", v, sizeof(v));
	assert_string_equal(v, "\t0000000000000000\n");
	proc_line(child, "limits", "Max processes", v, sizeof(v));
	assert_non_null(strstr(v, " 0 "));
	if (geteuid() == 0) {
		proc_line(child, "status", "Uid:", v, sizeof(v));
		assert_string_equal(v, "\t65534\t65534\t65534\t65534\n");
		proc_line(child, "status", "Gid:", v, sizeof(v));
		assert_string_equal(v, "\t65534\t65534\t65534\t65534\n");
	}
	assert_int_equal(write(peer, "x", 1), 1);
	assert_int_equal(reap(pid, peer), 0);
}

/* Each must fail (return -1) or kill the child: the child exits 0 when
 * the call failed, 1 when it succeeded. */
static int which_forbidden;
static const char *const forbidden_name[] = {
    "openat /etc/passwd", "socket",	   "execve",	    "mmap exec",
    "mprotect",		  "fork",	   "kill server",   "kill server USR1",
    "setresuid 0",	  "ptrace server", "prctl nnp off", "clone thread",
    "kill init",	  "dup",	   "bind",	    "connect",
};
#define N_FORBIDDEN (sizeof(forbidden_name) / sizeof(forbidden_name[0]))

static long try_forbidden(int which, int fd, pid_t server)
{
	struct sockaddr_in sin;
	static char page[8192] __attribute__((aligned(4096)));

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	sin.sin_port = htons(9);
	switch (which) {
	case 0:
		return syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
	case 1:
		return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	case 2:
		return syscall(SYS_execve, "/bin/true", NULL, NULL);
	case 3:
		return (long)syscall(SYS_mmap, NULL, 4096,
				     PROT_READ | PROT_EXEC,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1,
				     0) == (long)MAP_FAILED
			   ? -1
			   : 0;
	case 4:
		return syscall(SYS_mprotect, page, 4096,
			       PROT_READ | PROT_WRITE | PROT_EXEC);
	case 5:
		return syscall(SYS_clone,
			       CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID |
				   SIGCHLD,
			       0, 0, 0, 0);
	case 6:
		return syscall(SYS_kill, server, SIGTERM);
	case 7:
		return syscall(SYS_kill, server, SIGUSR1);
	case 8:
		return syscall(SYS_setresuid, 0, 0, 0);
	case 9:
		return syscall(SYS_ptrace, PTRACE_ATTACH, server, 0, 0);
	case 10:
		return syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0);
	case 11:
		return syscall(SYS_clone,
			       CLONE_VM | CLONE_THREAD | CLONE_SIGHAND,
			       page + sizeof(page), 0, 0, 0);
	case 12:
		return syscall(SYS_kill, 1, SIGTERM);
	case 13:
		return syscall(SYS_dup, fd);
	case 14:
		return syscall(SYS_bind, fd, &sin, sizeof(sin));
	default:
		return syscall(SYS_connect, fd, &sin, sizeof(sin));
	}
}

static int forbidden(int fd, pid_t server)
{
	long r = try_forbidden(which_forbidden, fd, server);

	if (r == 0 && which_forbidden == 5)
		child_exit(3); /* the new process: it must not exist */
	return r < 0 ? 0 : 1;
}

static void test_forbidden(void **state)
{
	unsigned which;
	int peer, r, sig;
	pid_t pid;

	(void)state;
	for (which = 0; which < N_FORBIDDEN; which++) {
		which_forbidden = (int)which; /* read by the forked child */
		pid = spawn_sandboxed(forbidden, &peer);
		r = reap(pid, peer);
		sig = r > 128 ? r - 128 : 0;
		print_message("%-18s -> %s%s\n", forbidden_name[which],
			      r == 0	      ? "failed with an error"
			      : sig == SIGSYS ? "killed by SIGSYS"
					      : "NOT STOPPED",
			      "");
		/* The server got no signal (it reported normally) and the
		 * call either failed or killed the child by SIGSYS. */
		assert_true(r == 0 || sig == SIGSYS);
	}
}

/*
 * gcov's calls. A coverage build (-DECHOD_COVERAGE=ON, which defines
 * ECHOD_COVERAGE here too) lets exactly the calls with which gcov writes
 * a child's counts through the filter, and each child's Landlock domain
 * grants the build directory only (sandbox.c, SECURITY.md "Coverage
 * builds"); a release build kills every one of them. Each action is
 * asserted for the build it runs in: what a coverage build must allow,
 * refuse with an error, or still kill.
 */
#ifdef ECHOD_COVERAGE
static const int coverage_build = 1;
#define PROBE_DIR ECHOD_COVERAGE_DIR "/tests/unit/sandbox-probe"
#else
static const int coverage_build = 0;
#define PROBE_DIR "/tmp/echod-sandbox-probe"
#endif
#define KILLED	(128 + SIGSYS)
#define ALLOWED 0

static char inside[128], outside[128];
static int which_gcov;

static long gcov_sequence(void)
{
	struct flock lk;
	struct stat st;
	char b[8];
	int fd;

	fd = (int)syscall(SYS_openat, AT_FDCWD, inside, O_RDWR | O_CREAT, 0666);
	if (fd < 0)
		return -1;
	memset(&lk, 0, sizeof(lk));
	lk.l_type = F_WRLCK;
	lk.l_whence = SEEK_SET;
	if (syscall(SYS_fcntl, fd, F_SETLKW, &lk) < 0 ||
	    syscall(SYS_fcntl, fd, F_GETFL) < 0 ||
	    syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH) < 0 ||
	    syscall(SYS_read, fd, b, sizeof(b)) < 0 ||
	    syscall(SYS_lseek, fd, 0, SEEK_SET) < 0 ||
	    syscall(SYS_write, fd, "counts", 6) != 6)
		return -1;
	return syscall(SYS_close, fd);
}

static long try_gcov(int which, int fd)
{
	struct stat st;
	struct {
		uint64_t access;
		int32_t fd;
	} __attribute__((packed)) rule = {1ull << 2, -1};

	switch (which) {
	case 0:
		return syscall(SYS_openat, AT_FDCWD, outside, O_RDWR | O_CREAT,
			       0666);
	case 1:
		return gcov_sequence();
	case 2:
		return syscall(SYS_openat, AT_FDCWD, inside, O_RDWR | O_CREAT,
			       0644);
	case 3:
		return syscall(SYS_openat, AT_FDCWD, inside, O_RDWR);
	case 4:
		return syscall(SYS_fcntl, fd, F_GETFL);
	case 5:
		return syscall(SYS_fcntl, fd, F_SETFL, O_APPEND);
	case 6:
		return syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH);
	case 7:
		return syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", &st, 0);
	case 8:
		return syscall(SYS_lseek, fd, 0, SEEK_SET);
	case 9:
		return syscall(SYS_brk, 0);
	case 10:
		return syscall(SYS_access, "/etc/passwd", F_OK);
	case 11:
		return syscall(SYS_mkdir, outside, 0777);
	default:
		return syscall(SYS_landlock_add_rule, -1, 1, &rule, 0);
	}
}

/* The child's status: 0 when the call worked, its errno when it failed,
 * 128 + SIGSYS when it was killed. */
static int gcov_action(int fd, pid_t server)
{
	long r;

	(void)server;
	r = try_gcov(which_gcov, fd);
	return r >= 0 ? 0 : errno;
}

static void test_gcov_calls(void **state)
{
	int landlock = syscall(SYS_landlock_create_ruleset, NULL, 0, 1) > 0;
	struct {
		const char *name;
		int release, coverage;
	} act[] = {
	    /* gcov's open, outside the build directory: Landlock says no
	     * (without Landlock, only the file permissions do). */
	    {"openat(outside, O_RDWR|O_CREAT, 0666)", KILLED,
	     landlock ? EACCES : ALLOWED},
	    {"gcov's write beneath the build directory", KILLED, ALLOWED},
	    {"openat(inside, O_RDWR|O_CREAT, 0644)", KILLED, KILLED},
	    {"openat(inside, O_RDWR)", KILLED, KILLED},
	    {"fcntl(F_GETFL)", KILLED, ALLOWED},
	    {"fcntl(F_SETFL, O_APPEND)", KILLED, KILLED},
	    {"newfstatat(fd, \"\", AT_EMPTY_PATH)", KILLED, ALLOWED},
	    {"newfstatat(\"/etc/passwd\")", KILLED, KILLED},
	    {"lseek(socket)", KILLED, ESPIPE},
	    {"brk", KILLED, ALLOWED},
	    {"access", KILLED, EACCES},
	    {"mkdir", KILLED, EACCES},
	    {"landlock_add_rule(-1)", KILLED, EBADF},
	};
	unsigned i;
	int peer, r, want;
	pid_t pid;

	(void)state;
	snprintf(inside, sizeof(inside), "%s/%d", PROBE_DIR, (int)getpid());
	snprintf(outside, sizeof(outside), "/tmp/echod-sandbox-outside-%d",
		 (int)getpid());
	/* The children may run as uid 65534. */
	if (mkdir(PROBE_DIR, 0777) < 0)
		assert_int_equal(errno, EEXIST);
	assert_int_equal(chmod(PROBE_DIR, 0777), 0);
	print_message("%s build, %s\n", coverage_build ? "coverage" : "release",
		      landlock ? "Landlock" : "no Landlock");
	for (i = 0; i < sizeof(act) / sizeof(act[0]); i++) {
		which_gcov = (int)i;
		unlink(inside);
		unlink(outside);
		rmdir(outside);
		pid = spawn_sandboxed(gcov_action, &peer);
		r = reap(pid, peer);
		want = coverage_build ? act[i].coverage : act[i].release;
		print_message("%-44s -> %s (%d)\n", act[i].name,
			      r == KILLED ? "killed by SIGSYS"
			      : r == 0	  ? "allowed"
					  : strerror(r),
			      r);
		assert_int_equal(r, want);
		if (i == 0 && landlock)
			assert_int_equal(access(outside, F_OK), -1);
		if (i == 1 && coverage_build) {
			char b[8] = "";
			int fd = open(inside, O_RDONLY);

			assert_true(fd >= 0);
			assert_int_equal(read(fd, b, sizeof(b)), 6);
			assert_memory_equal(b, "counts", 6);
			close(fd);
		}
	}
	unlink(inside);
	unlink(outside);
	rmdir(outside);
	rmdir(PROBE_DIR);
}

/* The server itself, under the same filter, can still fork and signal
 * its children (the drain needs SIGTERM and SIGKILL). */
static void test_server_can_fork_and_kill(void **state)
{
	char err[256];
	pid_t pid, c;
	int st;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_install(err, sizeof(err)) < 0)
			child_exit(101);
		c = fork();
		if (c < 0)
			child_exit(102);
		if (c == 0) {
			if (sandbox_child(getppid()) < 0)
				child_exit(100);
			for (;;) /* pause() is not on the list */
				ppoll(NULL, 0, NULL, NULL);
		}
		if (kill(c, SIGKILL) < 0)
			child_exit(103);
		while (waitpid(c, &st, 0) < 0)
			;
		child_exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? 0
								      : 104);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* A child dies with its server (PR_SET_PDEATHSIG). */
static int wait_forever(int fd, pid_t server)
{
	char b;

	(void)server;
	return read(fd, &b, 1) == 1 ? 0 : 1;
}

static void test_child_dies_with_server(void **state)
{
	int peer, st;
	char b[2];
	pid_t pid, child;

	(void)state;
	pid = spawn_sandboxed(wait_forever, &peer);
	/* The child is confined once the server shows it. */
	for (st = 0; st < 500; st++) {
		char path[64];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
			 (int)pid, (int)pid);
		f = fopen(path, "r");
		if (f != NULL && fgets(b, sizeof(b), f) != NULL) {
			fclose(f);
			break;
		}
		if (f != NULL)
			fclose(f);
		usleep(10000);
	}
	child = only_child(pid);
	usleep(100000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* The orphan is killed by the kernel at once. */
	for (st = 0; st < 300 && kill(child, 0) == 0; st++) {
		char v[64];

		proc_line(child, "status", "State:", v, sizeof(v));
		if (strstr(v, "Z") != NULL)
			break;
		usleep(10000);
	}
	assert_true(st < 300);
	close(peer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serving_calls_allowed),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_forbidden),
	    cmocka_unit_test(test_gcov_calls),
	    cmocka_unit_test(test_server_can_fork_and_kill),
	    cmocka_unit_test(test_child_dies_with_server),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
