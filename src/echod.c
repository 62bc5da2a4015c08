/*
 * echod.c - main: parse the options, prepare the sandbox and the shared
 * counters, listen, and hand over to the server loop.
 */
#define _GNU_SOURCE /* close_range */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "parse.h"
#include "opts.h"
#include "sandbox.h"
#include "server_sys.h"
#include "stats.h"

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

/* The address asked for, for the error message when listening fails. */
static char *wanted(const struct echod_opts *o, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (o->bind_family == AF_INET) {
		inet_ntop(AF_INET, &o->bind4, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, o->port);
	} else {
		inet_ntop(AF_INET6, &o->bind6, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, o->port);
	}
	return buf;
}

/*
 * A child may read and write any descriptor it holds (the sandbox filters
 * system calls, not descriptors), so it must hold nothing but its client
 * and stderr: stdin and stdout, which echod never uses, become /dev/null
 * (not a terminal a compromised child could read), and whatever else the
 * invoker leaked to us is closed.
 */
static void detach_descriptors(int keep_below)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	close_range((unsigned)keep_below, ~0u, 0);
}

/* Whether fds a and b are the same open socket (inetd gives a service
 * its connection as fds 0, 1 and 2). */
static int same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * inetd mode: serve the connection someone else accepted (inetd nowait,
 * tcpserver, systemd Accept=yes) on fd 0 exactly as a forked child serves
 * one (conn_run: the sandbox, the session, the log lines), then exit.
 * There is no parent of ours to report to or to outlive.
 */
static int serve_inetd(const struct echod_opts *o)
{
	static sigset_t none;
	static volatile sig_atomic_t term;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct conn_ctx ctx;
	char err[256];
	int type = 0, acc = 1, devnull;
	socklen_t tl = sizeof(type), al = sizeof(acc);

	if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM ||
	    getsockopt(STDIN_FILENO, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) <
		0 ||
	    acc != 0 ||
	    getpeername(STDIN_FILENO, (struct sockaddr *)&peer, &plen) < 0 ||
	    (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)) {
		dprintf(STDERR_FILENO,
			"echod: --inetd: fd 0 is not a connected TCP socket\n"
			"Try 'echod --help' for more information.\n");
		return 2;
	}
	close_range(STDERR_FILENO + 1, ~0u, 0); /* whatever we inherited */
	/* No byte of log may reach the client: when stderr is the
	 * connection, lines go to syslog or nowhere. */
	if (o->syslog || same_file(STDIN_FILENO, STDERR_FILENO)) {
		if (log_open_syslog() < 0) {
			if (!same_file(STDIN_FILENO, STDERR_FILENO))
				log_fatal("--syslog: cannot connect to %s: %s",
					  LOG_SYSLOG_PATH, strerror(errno));
			log_discard();
		}
	} else if (log_set_nonblocking() < 0) {
		log_warn("stderr stays blocking");
	}
	/* The child's descriptors: the client, the log, /dev/null. */
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, STDOUT_FILENO);
		if (same_file(STDIN_FILENO, STDERR_FILENO))
			dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	signal(SIGPIPE, SIG_IGN);
	if (sandbox_install(err, sizeof(err)) < 0)
		log_fatal("cannot install the sandbox: %s", err);
	memset(&ctx, 0, sizeof(ctx));
	ctx.o = o;
	ctx.waitmask = &none;
	ctx.term = &term;
	ctx.report_fd = -1;
	ctx.parent = 0; /* inetd's death does not end this connection */
	conn_run(STDIN_FILENO, (struct sockaddr *)&peer, plen, &ctx);
}

/*
 * systemd socket activation (Accept=no): LISTEN_PID is ours and LISTEN_FDS
 * listening stream sockets start at fd 3. Returns how many (0: none were
 * passed), or -1 with a message in err (a usage error: status 2). The
 * variables are unset either way, so that nothing later sees them.
 */
static int passed_listeners(const struct echod_opts *o, int *fds, char *err,
			    size_t errlen)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	uint64_t v = 0, p = 0;
	int i;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (pid == NULL || n == NULL || parse_u64(pid, 1, UINT32_MAX, &p) < 0 ||
	    p != (uint64_t)getpid())
		return 0;
	if (parse_u64(n, 0, OPTS_LISTEN_FDS_MAX, &v) < 0) {
		snprintf(err, errlen,
			 "LISTEN_FDS '%.16s': expected 0-%d passed sockets", n,
			 OPTS_LISTEN_FDS_MAX);
		return -1;
	}
	if (v > 0 && (o->port_set || o->bind_set)) {
		snprintf(err, errlen,
			 "-p and -b cannot be used with sockets passed by "
			 "systemd (LISTEN_FDS)");
		return -1;
	}
	for (i = 0; i < (int)v; i++) {
		int fd = 3 + i, type = 0, acc = 0, fl;
		socklen_t tl = sizeof(type), al = sizeof(acc);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
		    type != SOCK_STREAM ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 ||
		    !acc || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
			snprintf(err, errlen,
				 "passed fd %d is not a listening TCP socket",
				 fd);
			return -1;
		}
		/* As net_listen() makes its own: non-blocking, closed on
		 * exec, urgent bytes inline for the children. */
		fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		acc = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &acc,
				 sizeof(acc));
		fds[i] = fd;
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	struct echod_opts o;
	struct server_sys srv;
	char err[256], name[NET_ADDRSTRLEN];
	static char names[OPTS_LISTEN_FDS_MAX][NET_ADDRSTRLEN];
	int lfd, fds[OPTS_LISTEN_FDS_MAX], nfds, i, metrics_fd = -1;

	if (opts_parse(&o, argc, argv, err, sizeof(err)) < 0) {
		dprintf(STDERR_FILENO,
			"echod: %s\nTry 'echod --help' for more "
			"information.\n",
			err);
		return 2;
	}
	if (o.help) {
		fputs(opts_help(), stdout);
		return 0;
	}
	if (o.version) {
		printf("echod %s\nsandbox: %s\n", ECHOD_VERSION,
		       sandbox_name());
		return 0;
	}

	log_init("echod", (enum log_level)o.verbosity);
	if (o.inetd)
		return serve_inetd(&o);
	nfds = passed_listeners(&o, fds, err, sizeof(err));
	if (nfds < 0) {
		dprintf(STDERR_FILENO, "echod: %s\n", err);
		return 2;
	}
	detach_descriptors(3 + nfds);
	if (o.syslog && log_open_syslog() < 0)
		log_fatal("--syslog: cannot connect to %s: %s", LOG_SYSLOG_PATH,
			  strerror(errno));
	if (!o.syslog && log_set_nonblocking() < 0)
		log_warn("stderr stays blocking: a stalled terminal can stall "
			 "echod");
	/* A client that resets while we write must cost an EPIPE, not the
	 * process; children inherit this. */
	signal(SIGPIPE, SIG_IGN);
	if (o.metrics_file != NULL) {
		/* Before anything of the server's exists: the writer holds
		 * none of it (metrics.c). */
		struct stats_info info;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		info.version = ECHOD_VERSION;
		info.sandbox = sandbox_name();
		info.start_unix_ms =
		    (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		metrics_fd = metrics_start(o.metrics_file, &info);
		if (metrics_fd < 0)
			log_fatal("--metrics-file %s: %s", o.metrics_file,
				  strerror(errno));
	}
	if (control_init() < 0)
		log_fatal("cannot map the control page: %s", strerror(errno));
	if (server_sys_init(&srv, &o) < 0)
		log_fatal("cannot allocate the connection table or the report "
			  "socket: %s",
			  strerror(errno));
	srv.metrics_fd = metrics_fd;
	if (server_sys_notify_init(&srv, o.metrics_interval) < 0)
		log_fatal("NOTIFY_SOCKET: %s", strerror(errno));
	if (nfds > 0) {
		lfd = fds[0];
		server_sys_listen_more(&srv, fds + 1, nfds - 1);
		for (i = 0; i < nfds; i++) {
			/* Named now: the filter forbids getsockname(). */
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			snprintf(names[i], sizeof(names[i]), "fd %d", fds[i]);
			if (getsockname(fds[i], (struct sockaddr *)&ss, &sl) ==
			    0)
				net_addr_str((struct sockaddr *)&ss, sl,
					     names[i], sizeof(names[i]));
		}
	} else {
		lfd = net_listen(&o, name, sizeof(name), err, sizeof(err));
		if (lfd < 0)
			log_fatal("cannot listen on %s: %s",
				  wanted(&o, name, sizeof(name)), err);
	}
	/* Before "listening on": from here the parent runs under the filter
	 * its children inherit, and whoever reads that line (a script, a
	 * test that then lowers our limits) finds the sandbox in place. */
	if (sandbox_install(err, sizeof(err)) < 0)
		log_fatal("cannot install the sandbox: %s", err);
	if (nfds == 0)
		log_notice("listening on %s", name);
	for (i = 0; i < nfds; i++)
		log_notice("listening on %s", names[i]);
	if (nfds > 0)
		log_info("%d listening socket%s passed by systemd", nfds,
			 nfds > 1 ? "s" : "");
	server_sys_notify(&srv, "READY=1\nSTATUS=listening");
	log_info("mode=%s delim=0x%02x max-msg=%u max-conns=%u max-per-ip=%u "
		 "idle-timeout=%u backlog=%u shutdown-timeout=%u sandbox=%s",
		 opts_mode_name(o.mode), o.delim, o.max_msg, o.max_conns,
		 o.max_per_ip, o.idle_timeout, o.backlog, o.shutdown_timeout,
		 sandbox_name());
	log_info("sandbox: %s", sandbox_features());
	return server_sys_run(&srv, lfd);
}
