/*
 * test_echod.c - echod's main() (src/echod.c, compiled here with main
 * renamed echod_main) when a step of its start fails: each must end echod
 * with one clear line and status 1 before it listens (SPEC section 6),
 * or, for stderr that cannot be made non-blocking, go on with a warning.
 * The steps are replaced (--wrap) by stand-ins that fail on demand; the
 * integration tests start the real thing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "net.h"
#include "opts.h"
#include "sandbox.h"
#include "server_sys.h"
#include "stats.h"

int echod_main(int argc, char **argv);

FAULT_WRAP(int, log_set_nonblocking, (void), (), -1)
FAULT_WRAP(int, log_open_syslog, (void), (), -1)
FAULT_WRAP(int, server_sys_notify_init, (struct server_sys * x, uint32_t s),
	   (x, s), -1)
FAULT_WRAP(int, control_init, (void), (), -1)
FAULT_WRAP(int, server_sys_init,
	   (struct server_sys * x, const struct echod_opts *o), (x, o), -1)

static struct fault fault_net_listen, fault_sandbox_install, fault_open;

int __real_net_listen(const struct echod_opts *o, char *name, size_t namelen,
		      char *err, size_t errlen);
int __wrap_net_listen(const struct echod_opts *o, char *name, size_t namelen,
		      char *err, size_t errlen);
int __wrap_net_listen(const struct echod_opts *o, char *name, size_t namelen,
		      char *err, size_t errlen)
{
	if (fault_fire(&fault_net_listen)) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		return -1;
	}
	return __real_net_listen(o, name, namelen, err, errlen);
}

/* Never installed for real here. */
int __wrap_sandbox_install(char *err, size_t errlen);
int __wrap_sandbox_install(char *err, size_t errlen)
{
	if (fault_fire(&fault_sandbox_install)) {
		snprintf(err, errlen, "seccomp_load: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The loop is not run: main() returns what it would. */
int __wrap_server_sys_run(struct server_sys *x, int listen_fd);
int __wrap_server_sys_run(struct server_sys *x, int listen_fd)
{
	(void)x;
	close(listen_fd);
	return 0;
}

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

/* inetd mode: the connection echod finds on fd 0 (-1: none). */
static int inetd_fd = -1;
/* systemd's LISTEN_FDS for the child (NULL: unset), with LISTEN_PID its
 * own pid. */
static const char *listen_fds;

/*
 * Run echod_main(args) in a child with stderr on a pipe (stdin closed
 * when close_stdin, inetd_fd on it when set); its exit status and what it
 * wrote on stderr. Faults armed by the caller apply in the child.
 */
static int run(const char *const *args, int close_stdin, char *out,
	       size_t outlen)
{
	char *argv[16];
	int ep[2], st, argc = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	argv[argc++] = (char *)"echod";
	while (*args != NULL && argc < 15)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	assert_int_equal(pipe(ep), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ep[0]);
		dup2(ep[1], STDERR_FILENO);
		close(ep[1]);
		if (close_stdin)
			close(STDIN_FILENO);
		if (inetd_fd >= 0)
			dup2(inetd_fd, STDIN_FILENO);
		if (listen_fds != NULL) {
			char pid_s[16];

			snprintf(pid_s, sizeof(pid_s), "%d", (int)getpid());
			setenv("LISTEN_PID", pid_s, 1);
			setenv("LISTEN_FDS", listen_fds, 1);
		}
		exit(echod_main(argc, argv));
	}
	close(ep[1]);
	while (got + 1 < outlen &&
	       (n = read(ep[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(ep[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static int setup(void **state)
{
	(void)state;
	memset(&fault_log_set_nonblocking, 0, sizeof(struct fault));
	memset(&fault_control_init, 0, sizeof(struct fault));
	memset(&fault_server_sys_init, 0, sizeof(struct fault));
	memset(&fault_net_listen, 0, sizeof(struct fault));
	memset(&fault_sandbox_install, 0, sizeof(struct fault));
	memset(&fault_open, 0, sizeof(struct fault));
	memset(&fault_log_open_syslog, 0, sizeof(struct fault));
	memset(&fault_server_sys_notify_init, 0, sizeof(struct fault));
	listen_fds = NULL;
	return 0;
}

static const char *const loopback[] = {"-p", "0", "-b", "127.0.0.1", NULL};

/* Everything works: "listening on", the settings, status 0. */
static void test_starts(void **state)
{
	char out[4096];

	(void)state;
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ": listening on 127.0.0.1:"));
	assert_non_null(strstr(out, ": mode=raw "));
}

static void test_stderr_stays_blocking(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_log_set_nonblocking, 0, 1, EIO);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ": stderr stays blocking: a stalled "
				    "terminal can stall echod: Input/output "
				    "error\n"));
	assert_non_null(strstr(out, ": listening on 127.0.0.1:"));
}

static void test_no_control_page(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_control_init, 0, 1, ENOMEM);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": cannot map the control page: Cannot "
				    "allocate memory\n"));
	assert_null(strstr(out, "listening"));
}

static void test_no_tables(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_server_sys_init, 0, 1, ENOMEM);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": cannot allocate the connection table "
				    "or the report socket: Cannot allocate "
				    "memory\n"));
}

/* The address asked for, in the message: IPv4, IPv6 in brackets. */
static void test_cannot_listen(void **state)
{
	static const char *const v6[] = {"-p", "7", "-b", "::1", NULL};
	static const char *const v4[] = {"-p", "7", "-b", "127.0.0.1", NULL};
	char out[4096];

	(void)state;
	fault_arm(&fault_net_listen, 0, 1, EADDRINUSE);
	assert_int_equal(run(v6, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": cannot listen on [::1]:7: bind: "
				    "Address already in use\n"));
	fault_arm(&fault_net_listen, 0, 1, EADDRINUSE);
	assert_int_equal(run(v4, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": cannot listen on 127.0.0.1:7: bind: "
				    "Address already in use\n"));
}

static void test_no_sandbox(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_sandbox_install, 0, 1, EINVAL);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": cannot install the sandbox: "
				    "seccomp_load: Invalid argument\n"));
	assert_null(strstr(out, "listening"));
}

/* /dev/null cannot be opened: stdin and stdout are left as they are;
 * /dev/null opened as fd 0 (stdin was closed): kept there. Either way
 * echod starts. */
static void test_detach_descriptors(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_open, 0, 1, ENFILE);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ": listening on 127.0.0.1:"));
	assert_int_equal(run(loopback, 1, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ": listening on 127.0.0.1:"));
}

/* --syslog and no syslog daemon to talk to: said on stderr, status 1. */
static void test_no_syslog(void **state)
{
	static const char *const args[] = {"--syslog", "-p",	    "0",
					   "-b",       "127.0.0.1", NULL};
	char out[4096];

	(void)state;
	fault_arm(&fault_log_open_syslog, 0, 1, ECONNREFUSED);
	assert_int_equal(run(args, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": --syslog: cannot connect to /dev/log: "
				    "Connection refused\n"));
}

/* systemd's LISTEN_FDS that is no count of sockets: a usage error. */
static void test_bad_listen_fds(void **state)
{
	static const char *const none[] = {NULL};
	char out[4096];

	(void)state;
	listen_fds = "many";
	assert_int_equal(run(none, 0, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "echod: LISTEN_FDS 'many': expected 0-"));
}

/* NOTIFY_SOCKET that cannot be used: fatal before listening. */
static void test_no_notify_socket(void **state)
{
	char out[4096];

	(void)state;
	fault_arm(&fault_server_sys_notify_init, 0, 1, ECONNREFUSED);
	assert_int_equal(run(loopback, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": NOTIFY_SOCKET: Connection refused\n"));
	assert_null(strstr(out, "listening"));
}

/* A loopback TCP connection: *server is echod's end (inetd's fd 0). */
static void tcp_pair(int *client, int *server)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(*client, (struct sockaddr *)&sin, sizeof(sin)),
			 0);
	*server = accept(l, NULL, NULL);
	assert_true(*server >= 0);
	close(l);
}

/* inetd mode, stderr not the connection: --syslog failing is fatal (on
 * stderr); without --syslog, stderr that stays blocking is a warning,
 * and a sandbox that cannot be installed is fatal. Nothing reaches the
 * client. */
static void test_inetd_start_fails(void **state)
{
	static const char *const syslog[] = {"--inetd", "--syslog", NULL};
	static const char *const plain[] = {"--inetd", NULL};
	char out[4096], b[8];
	int c;

	(void)state;
	tcp_pair(&c, &inetd_fd);
	fault_arm(&fault_log_open_syslog, 0, 1, ENOENT);
	assert_int_equal(run(syslog, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, ": --syslog: cannot connect to /dev/log: "
				    "No such file or directory\n"));

	fault_arm(&fault_log_set_nonblocking, 0, 1, EIO);
	fault_arm(&fault_sandbox_install, 0, 1, EINVAL);
	assert_int_equal(run(plain, 0, out, sizeof(out)), 1);
	assert_non_null(
	    strstr(out, ": stderr stays blocking: Input/output error\n"));
	assert_non_null(strstr(out, ": cannot install the sandbox: "
				    "seccomp_load: Invalid argument\n"));
	close(inetd_fd);
	inetd_fd = -1;
	/* The client got nothing but the close. */
	assert_int_equal(read(c, b, sizeof(b)), 0);
	close(c);
}

/* The mode names main() logs ("mode=raw"); a value opts_parse() never
 * yields has a name too. */
static void test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(opts_mode_name(PROTO_RAW), "raw");
	assert_string_equal(opts_mode_name(PROTO_LINE), "line");
	assert_string_equal(opts_mode_name(PROTO_FRAME), "frame");
	assert_string_equal(opts_mode_name((enum proto_mode)7), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_starts, setup),
	    cmocka_unit_test_setup(test_stderr_stays_blocking, setup),
	    cmocka_unit_test_setup(test_no_control_page, setup),
	    cmocka_unit_test_setup(test_no_tables, setup),
	    cmocka_unit_test_setup(test_cannot_listen, setup),
	    cmocka_unit_test_setup(test_no_sandbox, setup),
	    cmocka_unit_test_setup(test_detach_descriptors, setup),
	    cmocka_unit_test_setup(test_no_syslog, setup),
	    cmocka_unit_test_setup(test_bad_listen_fds, setup),
	    cmocka_unit_test_setup(test_no_notify_socket, setup),
	    cmocka_unit_test_setup(test_inetd_start_fails, setup),
	    cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
