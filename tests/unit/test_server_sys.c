/*
 * test_server_sys.c - the parent's operations over the kernel
 * (src/server_sys.c) on the errors a real run does not produce on demand:
 * each call of server_sys_init() failing, ppoll() failing in the loop,
 * the report socket failing to read (the retries and the back-off), and
 * messages on it that are no report (short, truncated, without or with
 * other credentials).
 *
 * server_sys_init() installs signal handlers and blocks signals, so each
 * case runs in a child of its own. The loop runs for real on a loopback
 * listener; its children are this file's conn_run(), which only sends a
 * report (conn.c has its own tests).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "conn.h"
#include "fault.h"
#include "log.h"
#include "net.h"
#include "server_sys.h"
#include "stats.h"

FAULT_WRAP(void *, mmap,
	   (void *a, size_t len, int prot, int fl, int fd, off_t off),
	   (a, len, prot, fl, fd, off), MAP_FAILED)
FAULT_WRAP(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv), -1)
FAULT_WRAP(int, socket, (int d, int t, int p), (d, t, p), -1)
FAULT_WRAP(int, setsockopt,
	   (int fd, int lvl, int name, const void *v, socklen_t l),
	   (fd, lvl, name, v, l), -1)
FAULT_WRAP(ssize_t, getrandom, (void *b, size_t n, unsigned fl), (b, n, fl), -1)
FAULT_WRAP(int, sigaction,
	   (int sig, const struct sigaction *sa, struct sigaction *old),
	   (sig, sa, old), -1)
FAULT_WRAP(int, sigprocmask, (int how, const sigset_t *s, sigset_t *old),
	   (how, s, old), -1)
FAULT_WRAP(int, ppoll,
	   (struct pollfd * p, nfds_t n, const struct timespec *t,
	    const sigset_t *m),
	   (p, n, t, m), -1)

/* recvmsg: `fail` calls fail with fail_err first; then each call that
 * receives a message is altered as tamper[] says, in order. */
enum tamper { T_NONE, T_SHORT, T_TRUNC, T_NOCRED, T_OTHERCMSG };
static struct {
	int fail, fail_err;
	enum tamper tamper[8];
	int n, i;
} rscript;

ssize_t __real_recvmsg(int fd, struct msghdr *mh, int fl);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int fl);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int fl)
{
	ssize_t got;

	if (rscript.fail > 0) {
		rscript.fail--;
		errno = rscript.fail_err;
		return -1;
	}
	got = __real_recvmsg(fd, mh, fl);
	if (got <= 0 || rscript.i >= rscript.n)
		return got;
	switch (rscript.tamper[rscript.i++]) {
	case T_NONE:
		break;
	case T_SHORT:
		got = 3;
		break;
	case T_TRUNC:
		mh->msg_flags |= MSG_TRUNC;
		break;
	case T_NOCRED:
		mh->msg_controllen = 0;
		break;
	case T_OTHERCMSG:
		CMSG_FIRSTHDR(mh)->cmsg_type = SCM_RIGHTS + 100;
		break;
	}
	return got;
}

/* The children: a report, then leave. */
void conn_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
	      const struct conn_ctx *ctx)
{
	struct conn_report r;

	(void)peer;
	(void)peerlen;
	close(fd);
	memset(&r, 0, sizeof(r));
	r.magic = CONN_REPORT_MAGIC;
	r.bytes_in = 1;
	if (send(ctx->report_fd, &r, sizeof(r), MSG_DONTWAIT) != sizeof(r))
		exit(3);
	exit(0);
}

/* Run fn in a child; its exit status (128 + signal when killed). */
static int in_child(int (*fn)(void))
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		exit(fn());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static struct echod_opts opts;
static struct server_sys srv;

static void loopback_opts(uint32_t max_per_ip)
{
	opts_defaults(&opts);
	opts.port = 0;
	opts.bind_set = 1;
	opts.bind_family = AF_INET;
	opts.bind4.s_addr = htonl(INADDR_LOOPBACK);
	opts.max_conns = 8;
	opts.max_per_ip = max_per_ip;
	opts.shutdown_timeout = 2;
}

/* ---- server_sys_init(), each call failing ---- */

static int init_ok(void)
{
	loopback_opts(2);
	return server_sys_init(&srv, &opts) == 0 ? 0 : 10;
}

static int init_fails(struct fault *f, unsigned skip, int err,
		      uint32_t max_per_ip)
{
	loopback_opts(max_per_ip);
	fault_arm(f, skip, 1, err);
	if (server_sys_init(&srv, &opts) != -1)
		return 10;
	return errno == err ? 0 : 11;
}

static int kids_table(void)
{
	return init_fails(&fault_mmap, 0, ENOMEM, 0);
}

static int ips_table(void)
{
	return init_fails(&fault_mmap, 1, ENOMEM, 2);
}

static int no_socketpair(void)
{
	return init_fails(&fault_socketpair, 0, EMFILE, 0);
}

static int no_passcred(void)
{
	return init_fails(&fault_setsockopt, 0, ENOMEM, 0);
}

static int no_sigaction(void)
{
	return init_fails(&fault_sigaction, 0, EINVAL, 0);
}

static int no_sigprocmask(void)
{
	return init_fails(&fault_sigprocmask, 0, EINVAL, 0);
}

/* SO_SNDBUFFORCE refused (no CAP_NET_ADMIN): SO_SNDBUF instead, no
 * failure. getrandom() failing: a seed from the clock and the pid. */
static int soft_failures(void)
{
	loopback_opts(2);
	fault_arm(&fault_setsockopt, 1, 1, EPERM);
	fault_arm(&fault_getrandom, 0, 1, ENOSYS);
	if (server_sys_init(&srv, &opts) != 0)
		return 10;
	if (fault_setsockopt.calls != 3 || fault_getrandom.calls != 1)
		return 11;
	return srv.srv.cfg.seed != 0 ? 0 : 12;
}

static int bad_config(void)
{
	loopback_opts(0);
	opts.max_conns = 0; /* refused by server_init() */
	if (server_sys_init(&srv, &opts) != -1)
		return 10;
	return errno == EINVAL ? 0 : 11;
}

/* NOTIFY_SOCKET: none, a path systemd would never give, no socket to be
 * had, nobody there; and one that works. */
static int notify_with(const char *path)
{
	if (srv.srv.ops == NULL && init_ok() != 0)
		return -9;
	if (path != NULL)
		setenv("NOTIFY_SOCKET", path, 1);
	else
		unsetenv("NOTIFY_SOCKET");
	return server_sys_notify_init(&srv, 0);
}

static int notify_none(void)
{
	return notify_with(NULL) == 0 && srv.notify_fd < 0 ? 0 : 10;
}

static int notify_relative(void)
{
	return notify_with("run/notify") == -1 && errno == EINVAL ? 0 : 10;
}

static int notify_too_long(void)
{
	char path[200];

	memset(path, 'n', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	return notify_with(path) == -1 && errno == EINVAL ? 0 : 10;
}

static int notify_no_socket(void)
{
	fault_arm(&fault_socket, 0, 1, EMFILE);
	return notify_with("/run/echod-test-notify") == -1 && errno == EMFILE
		   ? 0
		   : 10;
}

static int notify_nobody(void)
{
	int fd0, r;

	if (init_ok() != 0)
		return 9;
	fd0 = dup(0);
	close(fd0);
	r = notify_with("/nonexistent/echod-test-notify");
	if (r != -1 || errno != ENOENT)
		return 10;
	/* unset once read, and the socket closed */
	if (getenv("NOTIFY_SOCKET") != NULL)
		return 11;
	r = dup(0);
	close(r);
	return r == fd0 ? 0 : 12;
}

static int notify_abstract(void)
{
	struct sockaddr_un sa;
	char name[64], got[64];
	int l = socket(AF_UNIX, SOCK_DGRAM, 0);
	socklen_t len;
	ssize_t n;

	snprintf(name, sizeof(name), "@echod-test-notify-%d", (int)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	if (l < 0 || bind(l, (struct sockaddr *)&sa, len) < 0)
		return 10;
	if (notify_with(name) != 0 || srv.notify_fd < 0)
		return 11;
	server_sys_notify(&srv, "READY=1");
	n = recv(l, got, sizeof(got) - 1, MSG_DONTWAIT);
	if (n != 7 || memcmp(got, "READY=1", 7) != 0)
		return 12;
	return 0;
}

static void test_notify(void **state)
{
	(void)state;
	assert_int_equal(in_child(notify_none), 0);
	assert_int_equal(in_child(notify_relative), 0);
	assert_int_equal(in_child(notify_too_long), 0);
	assert_int_equal(in_child(notify_no_socket), 0);
	assert_int_equal(in_child(notify_nobody), 0);
	assert_int_equal(in_child(notify_abstract), 0);
}

static void test_init(void **state)
{
	(void)state;
	assert_int_equal(in_child(init_ok), 0);
	assert_int_equal(in_child(kids_table), 0);
	assert_int_equal(in_child(ips_table), 0);
	assert_int_equal(in_child(no_socketpair), 0);
	assert_int_equal(in_child(no_passcred), 0);
	assert_int_equal(in_child(no_sigaction), 0);
	assert_int_equal(in_child(no_sigprocmask), 0);
	assert_int_equal(in_child(soft_failures), 0);
	assert_int_equal(in_child(bad_config), 0);
}

/* ---- the loop: ppoll failing, reports unreadable or not reports ---- */

static int port_pipe[2];

static int serve(void)
{
	char name[NET_ADDRSTRLEN], err[128];
	int lfd;

	log_init("echod", LOG_LEVEL_INFO);
	loopback_opts(0);
	if (control_init() < 0 || server_sys_init(&srv, &opts) < 0)
		return 10;
	lfd = net_listen(&opts, name, sizeof(name), err, sizeof(err));
	if (lfd < 0)
		return 11;
	/* The first wait fails (ENOMEM): logged, a back-off, and on. */
	fault_arm(&fault_ppoll, 0, 1, ENOMEM);
	/* The first report is read only after four failed tries (the last
	 * sets the report back-off); the next four are no reports. */
	rscript.fail = 4;
	rscript.fail_err = ENOMEM;
	rscript.tamper[0] = T_NONE;
	rscript.tamper[1] = T_SHORT;
	rscript.tamper[2] = T_TRUNC;
	rscript.tamper[3] = T_NOCRED;
	rscript.tamper[4] = T_OTHERCMSG;
	rscript.n = 5;
	dprintf(port_pipe[1], "%s\n", name);
	close(port_pipe[1]);
	return server_sys_run(&srv, lfd);
}

/* The server's stderr, read line by line (not with stdio, whose buffer
 * would hide lines from poll). */
static struct {
	int fd;
	char buf[65536];
	size_t len;
} err_in;

/* Read stderr lines until one contains `want` (0 when 10 s pass without
 * one). The line, NUL-terminated, is left in line. */
static int wait_line(const char *want, char *line, size_t len)
{
	struct pollfd p = {.fd = err_in.fd, .events = POLLIN};
	char *nl;
	size_t n;
	ssize_t got;

	for (;;) {
		while ((nl = memchr(err_in.buf, '\n', err_in.len)) != NULL) {
			n = (size_t)(nl - err_in.buf) + 1;
			snprintf(line, len, "%.*s", (int)n, err_in.buf);
			memmove(err_in.buf, err_in.buf + n, err_in.len - n);
			err_in.len -= n;
			if (strstr(line, want) != NULL)
				return 1;
		}
		if (poll(&p, 1, 10000) != 1)
			return 0;
		got = read(err_in.fd, err_in.buf + err_in.len,
			   sizeof(err_in.buf) - err_in.len);
		if (got <= 0)
			return 0;
		err_in.len += (size_t)got;
	}
}

static pid_t server_pid;

/* A case that fails leaves no server behind. */
static int teardown(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = 0;
	return 0;
}

static void test_loop_errors(void **state)
{
	int errp[2], st, c, k;
	char line[1024], want[64], want2[32], *colon;
	struct sockaddr_in sin;
	FILE *f;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(port_pipe), 0);
	assert_int_equal(pipe(errp), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(port_pipe[0]);
		close(errp[0]);
		dup2(errp[1], STDERR_FILENO);
		close(errp[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		exit(serve());
	}
	server_pid = pid;
	close(port_pipe[1]);
	close(errp[1]);
	f = fdopen(port_pipe[0], "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	colon = strrchr(line, ':');
	assert_non_null(colon);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	err_in.fd = errp[0];
	err_in.len = 0;
	assert_true(
	    wait_line("ppoll: Cannot allocate memory", line, sizeof(line)));
	/* Five connections, one at a time: each child's report read (or
	 * refused) before the next, as the counters say. */
	for (k = 1; k <= 5; k++) {
		c = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(c >= 0);
		assert_int_equal(
		    connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
		close(c);
		snprintf(want, sizeof(want), "accepted=%d active=0 ", k);
		snprintf(want2, sizeof(want2), "bad_reports=%d\n", k - 1);
		for (st = 0; st < 200; st++) {
			kill(pid, SIGUSR1);
			if (!wait_line(" stats ", line, sizeof(line)))
				fail_msg("no stats line from the server");
			if (strstr(line, want) != NULL &&
			    strstr(line, "bytes_in=1 ") != NULL &&
			    strstr(line, want2) != NULL)
				break;
			usleep(20000);
		}
		if (st == 200)
			fail_msg("connection %d: last stats: %s", k, line);
	}
	kill(pid, SIGTERM);
	assert_true(wait_line("bad_reports=4", line, sizeof(line)));
	assert_non_null(strstr(line, "accepted=5 "));
	assert_non_null(strstr(line, "bytes_in=1 ")); /* only the first */
	close(errp[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	server_pid = 0;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* clock.h's deadline to timeout, which the parent's wait (and the
 * child's) pass to ppoll(): none, past (0: a wait must not block on a
 * deadline gone by while it was computed), future. */
static void test_clock_until(void **state)
{
	struct timespec ts;
	int64_t now = clock_ms();

	(void)state;
	assert_null(clock_until(-1, &ts));
	assert_ptr_equal(clock_until(now - 5000, &ts), &ts);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(ts.tv_nsec, 0);
	assert_ptr_equal(clock_until(clock_ms() + 1500, &ts), &ts);
	assert_true(ts.tv_sec == 1 || (ts.tv_sec == 0 && ts.tv_nsec > 0));
	assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	assert_int_equal(ts.tv_nsec % 1000000, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clock_until),
	    cmocka_unit_test(test_init),
	    cmocka_unit_test(test_notify),
	    cmocka_unit_test_teardown(test_loop_errors, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
