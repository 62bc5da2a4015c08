/*
 * server_sys.c - see server_sys.h. The production side of server.h:
 *
 * - The signals the loop handles (CHLD, TERM, INT, QUIT, USR1, HUP) stay
 *   blocked except inside ppoll() (the pselect pattern), and their
 *   handlers only set a flag, which the wait hands to the loop as
 *   SERVER_SIG_* bits. Children are forked with them blocked, so a SIGTERM
 *   sent at once after fork() waits for the child's own handler.
 * - No signal but SIGKILL ends the parent without a drain: the other
 *   signals whose default is to terminate are handled (HUP logs the
 *   counters, QUIT drains like TERM) or ignored, and children die with it
 *   (PR_SET_PDEATHSIG, sandbox.c).
 * - Children report their counters once, over a socket that tells the
 *   parent who sent each report (stats.h).
 * - The flags are the only globals: signal handlers need them, and only
 *   these operations read them.
 */
#define _GNU_SOURCE /* accept4, ppoll, struct ucred */
#include "server_sys.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "sandbox.h"
#include "stats.h"

static volatile sig_atomic_t got_chld, got_term, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGUSR1 || sig == SIGHUP)
		got_usr1 = 1;
	else
		got_term = 1;
}

/* The signals the loop handles: blocked except inside ppoll(). */
static const int handled[] = {SIGCHLD, SIGTERM, SIGINT,
			      SIGQUIT, SIGUSR1, SIGHUP};
/* Signals whose default action ends the process and that mean nothing to
 * echod: ignored, so that a stray one cannot end it without its drain.
 * (The fault signals, SEGV and the like, keep their default: they mean a
 * bug, and hiding one would be worse.) */
static const int ignored[] = {SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,  SIGIO,
			      SIGPWR,  SIGXCPU, SIGXFSZ,   SIGSTKFLT};

/* ---- server.h's operations over the kernel ---- */

static int sys_accept(void *io, struct sockaddr_storage *ss, socklen_t *len,
		      int *err)
{
	struct server_sys *x = io;
	int n = 1 + x->nmore, i, l, fd;
	socklen_t room = *len;

	/* Blocking: the child serves it as a blocking server does (conn.c);
	 * the parent itself never reads or writes it (MSG_DONTWAIT when it
	 * drops a held connection's input). Several listeners (systemd) are
	 * tried in turn from where the last accept left off, so that a busy
	 * one cannot starve the others. */
	for (i = 0; i < n; i++) {
		l = (x->next + i) % n;
		*len = room;
		fd = accept4(l == 0 ? x->lfd : x->more[l - 1],
			     (struct sockaddr *)ss, len, SOCK_CLOEXEC);
		if (fd >= 0) {
			x->next = (l + 1) % n;
			return fd;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			break;
	}
	*err = errno;
	return -1;
}

static void close_listeners(struct server_sys *x)
{
	int i;

	close(x->lfd);
	for (i = 0; i < x->nmore; i++)
		close(x->more[i]);
}

static pid_t sys_spawn(void *io, int fd, const struct sockaddr *sa,
		       socklen_t len, int *err)
{
	struct server_sys *x = io;
	pid_t pid = fork();

	if (pid == 0) {
		/* Before a byte is read, the child holds nothing of the
		 * parent's but stderr, /dev/null and its side of the report
		 * socket (echod.c closed the rest at start). */
		close_listeners(x);
		close(x->report_rx);
		/* Only the parent speaks to systemd and to the metrics
		 * writer. */
		if (x->notify_fd >= 0)
			close(x->notify_fd);
		if (x->metrics_fd >= 0)
			close(x->metrics_fd);
		conn_run(fd, sa, len, &x->ctx);
	}
	if (pid < 0)
		*err = errno;
	return pid;
}

static void sys_close(void *io, int fd, int how)
{
	int n = 0;

	(void)io;
	if (how == SERVER_CLOSE_FIN) {
		/* close() with unread input answers RST: drop what the
		 * client sent first, then FIN. */
		while (n++ < 16 &&
		       recv(fd, NULL, 1 << 20, MSG_DONTWAIT | MSG_TRUNC) > 0)
			;
		shutdown(fd, SHUT_WR);
	}
	close(fd);
}

static pid_t sys_reap(void *io, int *status, int block)
{
	(void)io;
	return waitpid(-1, status, block ? 0 : WNOHANG);
}

static void sys_kill(void *io, pid_t pid, int sig)
{
	(void)io;
	kill(pid, sig);
}

/*
 * ppoll() delivers the signals it unblocks only when it has to wait: when
 * a descriptor is ready at once it restores the mask with the signals
 * still pending. Under a connection flood the listener is always ready,
 * so pending signals are taken after every wake-up (or SIGTERM and
 * SIGCHLD would starve) with sigtimedwait(): taken, not peeked at with
 * sigpending(), which left them pending, so that each wake-up saw them
 * again and one SIGUSR1 logged the counters a dozen times.
 */
static void take_pending(const sigset_t *handled_set)
{
	static const struct timespec zero = {0, 0};
	int sig, n;

	for (n = 0; n < 8; n++) {
		sig = sigtimedwait(handled_set, NULL, &zero);
		if (sig < 0)
			return;
		on_signal(sig);
	}
}

/* Every --metrics-interval: systemd's STATUS= and a snapshot for the
 * metrics file; WATCHDOG=1 every half WATCHDOG_USEC; whatever the loop
 * is doing. Returns the deadline the wait must not sleep past. */
static int64_t periodic_due(struct server_sys *x, int64_t deadline)
{
	int64_t now;
	char msg[128];

	if (x->notify_fd < 0 && x->metrics_fd < 0)
		return deadline;
	now = clock_ms();
	if (now >= x->status_next) {
		snprintf(msg, sizeof(msg), "STATUS=%llu active, %llu accepted",
			 (unsigned long long)x->srv.st->active,
			 (unsigned long long)x->srv.st->accepted);
		server_sys_notify(x, msg);
		metrics_send(x->metrics_fd, x->srv.st);
		x->status_next = now + x->status_every;
	}
	if (x->watchdog_every > 0 && now >= x->watchdog_next) {
		server_sys_notify(x, "WATCHDOG=1");
		x->watchdog_next = now + x->watchdog_every;
	}
	if (deadline < 0 || x->status_next < deadline)
		deadline = x->status_next;
	if (x->watchdog_every > 0 && x->watchdog_next < deadline)
		deadline = x->watchdog_next;
	return deadline;
}

static int sys_wait(void *io, int listener, int64_t deadline, unsigned *sigs,
		    int *err)
{
	struct server_sys *x = io;
	struct pollfd pfd[1 + OPTS_LISTEN_FDS_MAX];
	struct timespec ts;
	int r, ev = 0, i, n = 1;

	/* After a failed read of the report socket, leave it alone for the
	 * back-off: it stays readable, and polling it would spin. */
	pfd[0].fd = clock_ms() < x->report_backoff_end ? -1 : x->report_rx;
	pfd[0].events = POLLIN;
	pfd[0].revents = 0;
	if (listener) {
		for (i = 0; i <= x->nmore; i++, n++) {
			pfd[n].fd = i == 0 ? x->lfd : x->more[i - 1];
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
		}
	}
	deadline = periodic_due(x, deadline);
	r = ppoll(pfd, (nfds_t)n, clock_until(deadline, &ts), &x->waitmask);
	if (r < 0 && errno != EINTR) {
		/* Not waiting would spin, and the signals are open only in
		 * ppoll(): take them here, and sleep the back-off. */
		*err = errno;
		ev = -1;
		take_pending(&x->handled);
		ts.tv_sec = 0;
		ts.tv_nsec = SERVER_BACKOFF_MS * 1000000L;
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	}
	if (r > 0) {
		take_pending(&x->handled);
		if (pfd[0].revents & POLLIN)
			ev |= SERVER_EV_REPORTS;
		for (i = 1; i < n; i++)
			if (pfd[i].revents & (POLLIN | POLLERR))
				ev |= SERVER_EV_LISTENER;
	}
	/* The handlers run only inside ppoll(): nothing can set a flag
	 * between these reads and clears. */
	*sigs = (got_chld ? SERVER_SIG_CHLD : 0) |
		(got_usr1 ? SERVER_SIG_STATS : 0) |
		(got_term ? SERVER_SIG_TERM : 0);
	got_chld = got_usr1 = got_term = 0;
	return ev;
}

static int sys_report(void *io, struct conn_report *r, pid_t *pid)
{
	struct server_sys *x = io;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *c;
	struct ucred cred;
	ssize_t got;
	int tries = 0;

	do {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = r;
		iov.iov_len = sizeof(*r);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		got = recvmsg(x->report_rx, &mh, MSG_DONTWAIT);
		/* A transient error (ENOMEM, a signal) must not make a queued
		 * report look absent: the caller would forget its child, and
		 * read the report later as a stranger's. */
	} while (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		 ++tries < SERVER_REPORT_TRIES);
	if (got < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			x->report_backoff_end = clock_ms() + SERVER_BACKOFF_MS;
		return SERVER_REPORT_NONE;
	}
	/* The kernel stamps each message with its sender (SO_PASSCRED). */
	c = CMSG_FIRSTHDR(&mh);
	if (got != (ssize_t)sizeof(*r) || (mh.msg_flags & MSG_TRUNC) ||
	    c == NULL || c->cmsg_level != SOL_SOCKET ||
	    c->cmsg_type != SCM_CREDENTIALS)
		return SERVER_REPORT_BAD;
	memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	*pid = cred.pid;
	return SERVER_REPORT_OK;
}

static void sys_shutdown(void *io)
{
	struct server_sys *x = io;

	close_listeners(x);
	control_shutdown();
	server_sys_notify(x, "STOPPING=1");
}

static int64_t sys_now_ms(void *io)
{
	(void)io;
	return clock_ms();
}

/* The counters' log_dropped is the children's lost lines (from their
 * reports) plus ours (log.c): fold ours in after every line. */
static void count_own_drops(struct server_sys *x)
{
	uint64_t own = log_dropped_total();

	x->srv.st->log_dropped += own - x->own_dropped;
	x->own_dropped = own;
}

__attribute__((format(printf, 3, 0))) static void
sys_log(void *io, unsigned kind, const char *fmt, va_list ap)
{
	struct server_sys *x = io;
	uint64_t kids = x->srv.st->log_dropped - x->own_dropped;

	/* Children that dropped lines leave before they can say so: log.c
	 * announces them before our next line that gets through. */
	if (kids > x->kids_announced) {
		log_dropped_elsewhere(kids - x->kids_announced);
		x->kids_announced = kids;
	}
	log_vprint(kind == SERVER_LOG_SHUTDOWN ? LOG_LEVEL_INFO
					       : LOG_LEVEL_ERROR,
		   fmt, ap);
	count_own_drops(x);
	/* SIGUSR1/SIGHUP: the metrics file too. */
	if (kind == SERVER_LOG_STATS)
		metrics_send(x->metrics_fd, x->srv.st);
}

static void sys_verdict(void *io, pid_t pid, int ok)
{
	union sigval v;

	(void)io;
	v.sival_int = ok;
	(void)sigqueue(pid, CONN_SIG_VERDICT, v);
}

static const struct server_ops sys_ops = {
    .accept = sys_accept,
    .spawn = sys_spawn,
    .close = sys_close,
    .reap = sys_reap,
    .kill = sys_kill,
    .wait = sys_wait,
    .report = sys_report,
    .shutdown = sys_shutdown,
    .now_ms = sys_now_ms,
    .verdict = sys_verdict,
    .log = sys_log,
};

/* ---- set-up ---- */

static void *table_alloc(size_t n, size_t size)
{
	/* Anonymous pages: only those a connection touches are ever
	 * populated, so a large --max-conns costs nothing up front. */
	void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Children never look at the parent's tables, and with hashed slots
	 * every page of them ends up populated: without this, each fork()
	 * would copy their page tables and each child's exit tear them down
	 * (192 pages at -c 12000). */
	(void)madvise(p, n * size, MADV_DONTFORK);
	return p;
}

/* Ignore a signal with the kernel's own call: glibc refuses to touch the
 * two real-time signals it reserves (32 and 33), whose default would
 * still end the process. */
static void ignore_signal(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa;

	memset(&ksa, 0, sizeof(ksa));
	ksa.handler = (void *)SIG_IGN;
	(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/* The children's report socket: SOCK_SEQPACKET keeps each report whole,
 * SO_PASSCRED makes the kernel say who sent it, and a send buffer large
 * enough that a burst of children closing at once rarely waits. */
static int report_socket(struct server_sys *x)
{
	int sv[2], on = 1, size = SERVER_REPORT_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) <
	    0)
		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size,
				 sizeof(size));
	x->report_rx = sv[0];
	x->report_tx = sv[1];
	return 0;
}

int server_sys_init(struct server_sys *x, const struct echod_opts *o)
{
	struct server_child *kids;
	struct stats *st;
	struct server_ipcount *ips = NULL;
	struct server_cfg cfg;
	struct sigaction sa;
	sigset_t block;
	size_t slots = server_slots(o->max_conns), i;
	int sig;

	memset(x, 0, sizeof(*x));
	x->lfd = -1;
	x->notify_fd = -1;
	x->metrics_fd = -1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = o->max_conns;
	cfg.max_per_ip = o->max_per_ip;
	cfg.idle_timeout_s = o->idle_timeout;
	cfg.shutdown_timeout_s = o->shutdown_timeout;
	cfg.proxy = o->proxy != 0;
	cfg.proxy_from = o->proxy_from;
	cfg.nproxy_from = o->nproxy_from;
	kids = table_alloc(slots, sizeof(*kids));
	/* The counters change after every fork: in pages children do not
	 * inherit, like the tables. In the program's data, the parent's
	 * first write after each fork would leave the old page to the child
	 * (copy on write): 4 KiB more per held connection. */
	st = table_alloc(1, sizeof(*st));
	if (o->max_per_ip > 0)
		ips = table_alloc(slots, sizeof(*ips));
	if (kids == NULL || st == NULL || (o->max_per_ip > 0 && ips == NULL))
		return -1;
	if (report_socket(x) < 0)
		return -1;
	if (getrandom(&cfg.seed, sizeof(cfg.seed), GRND_NONBLOCK) < 0)
		cfg.seed = (uint64_t)clock_ms() ^ (uint64_t)getpid();
	if (server_init(&x->srv, &cfg, &sys_ops, x, st, kids, ips) < 0) {
		errno = EINVAL;
		return -1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		sa.sa_flags = handled[i] == SIGCHLD ? SA_NOCLDSTOP : 0;
		/* Without its handler a signal would end echod undrained or
		 * leave children unreaped: fail at start instead. */
		if (sigaction(handled[i], &sa, NULL) < 0)
			return -1;
		sigaddset(&block, handled[i]);
	}
	x->handled = block;
	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		ignore_signal(ignored[i]);
	for (sig = 32; sig <= 64; sig++) /* every real-time signal */
		ignore_signal(sig);
	/* Children are born with it blocked (conn.h): a blocked signal is
	 * queued even while ignored, for sigtimedwait() to take. */
	sigaddset(&block, CONN_SIG_VERDICT);
	if (sigprocmask(SIG_BLOCK, &block, &x->waitmask) < 0)
		return -1;
	for (i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigdelset(&x->waitmask, handled[i]);

	x->ctx.o = o;
	x->ctx.waitmask = &x->waitmask;
	x->ctx.term = &got_term;
	x->ctx.report_fd = x->report_tx;
	x->ctx.parent = getpid();
	return 0;
}

void server_sys_listen_more(struct server_sys *x, const int *fds, int n)
{
	int i;

	for (i = 0; i < n && x->nmore < OPTS_LISTEN_FDS_MAX - 1; i++)
		x->more[x->nmore++] = fds[i];
}

int server_sys_notify_init(struct server_sys *x, uint32_t status_every_s)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t n;
	uint64_t usec = 0;
	int fd;

	x->status_every = (int64_t)status_every_s * 1000;
	if (wd != NULL && parse_u64(wd, 1, UINT64_MAX / 2, &usec) == 0 &&
	    (wpid == NULL || (uint64_t)getpid() == strtoull(wpid, NULL, 10)))
		x->watchdog_every =
		    (int64_t)(usec / 2000) > 0 ? (int64_t)(usec / 2000) : 1;
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (path == NULL || path[0] == '\0') {
		unsetenv("NOTIFY_SOCKET");
		x->watchdog_every = 0;
		return 0;
	}
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: not NUL-terminated */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			    (path[0] == '/'));
	unsetenv("NOTIFY_SOCKET");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	x->notify_fd = fd;
	return 0;
}

void server_sys_notify(struct server_sys *x, const char *msg)
{
	if (x->notify_fd >= 0)
		(void)send(x->notify_fd, msg, strlen(msg),
			   MSG_DONTWAIT | MSG_NOSIGNAL);
}

int server_sys_run(struct server_sys *x, int listen_fd)
{
	x->lfd = listen_fd;
	x->status_next = clock_ms() + x->status_every;
	x->watchdog_next = clock_ms() + x->watchdog_every;
	count_own_drops(x);
	server_serve(&x->srv);
	/* The final counters are in the file before echod exits. */
	metrics_finish(x->metrics_fd, x->srv.st, SERVER_METRICS_WAIT_MS);
	return 0;
}
