/*
 * conn.c - see conn.h. The production side of session.h: the socket, the
 * monotonic clock, the shutdown flag of the control page.
 *
 * While serving, the socket is used as a blocking server uses it: read()
 * waits for the next message (SO_RCVTIMEO is the idle timeout) and write()
 * sends the echo whole (SO_SNDTIMEO), so a message costs two system calls
 * and waiting costs none of its own. A stop request must still end a
 * blocked call at once, without the race between checking a flag and
 * entering read() that ppoll()'s signal mask exists to close: the child
 * takes SIGTERM and SIGINT unblocked, without SA_RESTART, with a handler
 * that sets the flag and then makes the socket non-blocking. A signal that
 * comes inside read()/write() interrupts it (EINTR); one that comes just
 * before leaves a non-blocking socket, and the call returns EAGAIN at once.
 * Closing and lingering (after a stop, an error or idleness) poll with
 * ppoll() and MSG_DONTWAIT calls, as the socket may be either by then.
 */
#define _GNU_SOURCE /* ppoll */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "coverage.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "sandbox.h"
#include "session.h"
#include "stats.h"

struct conn {
	int fd;
	const sigset_t *waitmask;
	const volatile sig_atomic_t *term;
	/* SO_RCVTIMEO and SO_SNDTIMEO as last set, in ms (0: none, the
	 * kernel's default; -1: cannot be set, poll instead). */
	int64_t rcvtimeo, sndtimeo;
	volatile sig_atomic_t stop; /* the child's SIGTERM/SIGINT handler */
	int pipe[2]; /* raw bulk: the socket's bytes go round through it */
	struct session s;
	/* The client's address, formatted only when a line is logged:
	 * inet_ntop and snprintf would fault in text pages that a quiet
	 * child never needs. */
	const struct sockaddr *peer_sa;
	socklen_t peer_len;
	char peer[NET_ADDRSTRLEN];
	/* --proxy-protocol: the client the header named (peer_sa then
	 * points here), whether the accept line is out, and the parent
	 * that answers claims (0: no --max-per-ip, nothing to claim). */
	struct sockaddr_storage real;
	uint8_t accept_logged;
	pid_t claim_parent;
	int report_fd;
};

/* Leave the child. Not _exit(): sanitizer runtimes intercept it to run a
 * leak check, which needs system calls (clone, ptrace) the sandbox kills;
 * a child's heap dies with it anyway. */
__attribute__((noreturn)) static void conn_exit(int status)
{
	coverage_child_flush(); /* coverage builds only: see coverage.h */
	for (;;)
		syscall(SYS_exit_group, status);
}

/* The connection and its two buffers are one static block: untouched
 * pages of .bss cost nothing, the first bytes of the input buffer share a
 * page with the state (one page fault less per connection than a separate
 * mapping), and there is no mmap() to undo at exit. The signal handler
 * finds the connection here too: a variable of its own elsewhere would
 * cost each child a page of its own (copy on write). */
static struct {
	struct conn c;
	uint8_t in[SESSION_BUF_SIZE];
	uint8_t out[SESSION_BUF_SIZE];
} mem;

/* Installed only once mem.c.fd is the client. */
static void on_term(int sig)
{
	int e = errno;

	(void)sig;
	mem.c.stop = 1;
	/* A read() or write() about to block now returns at once. */
	(void)fcntl(mem.c.fd, F_SETFL, O_NONBLOCK);
	errno = e;
}

/* SIGTERM and SIGINT: the handler above, open from now on (they were
 * blocked since fork, so one sent meanwhile is taken here). */
static int take_term_signals(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigfillset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- session.h's operations over the socket ---- */

static ssize_t op_read(void *io, void *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(((struct conn *)io)->fd, buf, len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return SESSION_AGAIN;
	return n;
}

static ssize_t op_write(void *io, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(((struct conn *)io)->fd, buf, len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n;
}

static int op_stopping(void *io);
static int op_wait(void *io, int events, int64_t deadline);

/* The most one splice() into the pipe is asked for; the pipe's slots
 * bound it first. */
#define CONN_SPLICE_MAX (1u << 20)

/* Make the next blocking call on the socket return by deadline (-1:
 * never): SO_RCVTIMEO/SO_SNDTIMEO, set only when it must change. The
 * timeout counts from each call, so while messages come and go it stays
 * the idle timeout and is set once. It may end the call up to
 * TIMEO_EARLY_MS early (the session then waits again for the rest) or
 * TIMEO_LATE_MS late (the idle timeout is whole seconds; without the
 * tolerance, a millisecond passing between a write and the next read
 * would cost a call). Returns -1 when it cannot be set: poll instead. */
#define TIMEO_EARLY_MS 100
#define TIMEO_LATE_MS  10
static int set_timeo(struct conn *c, int opt, int64_t *cur, int64_t deadline)
{
	int64_t left = 0;
	struct timeval tv;

	if (*cur < 0)
		return -1;
	if (deadline >= 0) {
		left = deadline - clock_ms();
		if (left < 1)
			left = 1;
	}
	if (left == 0 ? *cur == 0
		      : *cur > 0 && *cur <= left + TIMEO_LATE_MS &&
			    *cur + TIMEO_EARLY_MS >= left)
		return 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	if (setsockopt(c->fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0) {
		*cur = -1;
		return -1;
	}
	*cur = left;
	return 0;
}

/* A blocking call ended without data: at the timeout, by a signal, or
 * because the handler made the socket non-blocking. */
static int blocked_out(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Before a blocking read or splice from the socket: 1 to go on, 0 for
 * SESSION_AGAIN (a stop request, or the deadline when polling), -1 when
 * waiting failed. Without the socket timeout it polls first, and the
 * call then finds what is there without blocking. */
static int before_read(struct conn *c, int64_t deadline)
{
	int ev;

	if (op_stopping(c))
		return 0;
	if (set_timeo(c, SO_RCVTIMEO, &c->rcvtimeo, deadline) == 0)
		return 1;
	ev = op_wait(c, SESSION_EV_IN, deadline);
	return ev < 0 ? -1 : ev > 0;
}

static ssize_t op_read_wait(void *io, void *buf, size_t len, int64_t deadline)
{
	struct conn *c = io;
	int r = before_read(c, deadline);
	ssize_t n;

	if (r <= 0)
		return r < 0 ? -1 : SESSION_AGAIN;
	n = read(c->fd, buf, len);
	if (n < 0 && blocked_out())
		return SESSION_AGAIN;
	return n;
}

/* ---- raw bulk without copies: socket -> pipe -> socket (splice) ----
 * The bytes stay in the kernel's pages: no copy into the session's
 * buffers and back, one call per direction per batch. The pipe's size is
 * the batch and the back-pressure bound (what the pipe holds while the
 * client does not read): CONN_PIPE_SIZE (opts.h), 64 slots, not the default
 * 16. A continuous stream then moves in a quarter of the calls (against
 * the default pipe, 9 interleaved runs of echo-stress --pipeline 4:
 * 1.26x the rate at 0.78x the CPU per MB; one message in flight, which
 * takes one splice each way either way: no change). An unprivileged
 * user's pipes share fs.pipe-user-pages-soft (16384 pages; the children
 * are all one user), and past it the kernel refuses a bigger pipe and
 * makes new ones of 2 slots: then no pipe at all, and the bytes go on
 * through the session's buffers, 64 KiB a call. Only with the blocking
 * calls: the socket's timeouts and the SIGTERM handler's O_NONBLOCK
 * govern splice() on the socket as they govern read() and write(). */
static size_t op_pipe_open(void *io)
{
	struct conn *c = io;

	if (c->rcvtimeo < 0 || c->sndtimeo < 0 || pipe2(c->pipe, O_CLOEXEC) < 0)
		return 0;
	if (fcntl(c->pipe[1], F_SETPIPE_SZ, CONN_PIPE_SIZE) < 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
		return 0;
	}
	return CONN_SPLICE_MAX;
}

static ssize_t op_pipe_in(void *io, size_t len, int64_t deadline)
{
	struct conn *c = io;
	int r = before_read(c, deadline);
	ssize_t n;

	if (r <= 0)
		return r < 0 ? -1 : SESSION_AGAIN;
	n = splice(c->fd, NULL, c->pipe[1], NULL, len, SPLICE_F_MOVE);
	if (n < 0 && blocked_out())
		return SESSION_AGAIN;
	return n;
}

static ssize_t op_pipe_out(void *io, size_t len, int block, int64_t deadline)
{
	struct conn *c = io;
	unsigned flags = SPLICE_F_MOVE;
	ssize_t n;

	if (block && (op_stopping(io) ||
		      set_timeo(c, SO_SNDTIMEO, &c->sndtimeo, deadline) < 0))
		block = 0;
	if (!block)
		flags |= SPLICE_F_NONBLOCK; /* MSG_DONTWAIT on the socket */
	n = splice(c->pipe[0], NULL, c->fd, NULL, len, flags);
	if (n < 0 && blocked_out())
		return 0;
	return n;
}

static ssize_t op_write_wait(void *io, const void *buf, size_t len,
			     int64_t deadline)
{
	struct conn *c = io;
	ssize_t n;

	if (op_stopping(io))
		return 0;
	if (set_timeo(c, SO_SNDTIMEO, &c->sndtimeo, deadline) < 0) {
		int ev = op_wait(io, SESSION_EV_OUT, deadline);

		return ev < 0 ? -1 : ev == 0 ? 0 : op_write(io, buf, len);
	}
	n = write(c->fd, buf, len);
	if (n < 0 && blocked_out())
		return 0;
	return n;
}

static void op_shutdown_wr(void *io)
{
	shutdown(((struct conn *)io)->fd, SHUT_WR);
}

static int op_outq(void *io)
{
	int q;

	return ioctl(((struct conn *)io)->fd, SIOCOUTQ, &q) == 0 ? q : -1;
}

static int op_wait(void *io, int events, int64_t deadline)
{
	struct conn *c = io;
	struct pollfd pfd;
	struct timespec ts;
	int r, ev = 0;

	pfd.fd = c->fd;
	pfd.events = (short)((events & SESSION_EV_IN ? POLLIN : 0) |
			     (events & SESSION_EV_OUT ? POLLOUT : 0));
	pfd.revents = 0;
	/* The signals are blocked except inside ppoll(): a SIGTERM can never
	 * slip in between the session's check and the wait. */
	r = ppoll(&pfd, 1, clock_until(deadline, &ts), c->waitmask);
	if (r < 0) {
		if (errno == EINTR)
			return 0;
		log_warn("ppoll");
		return -1;
	}
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
		ev |= SESSION_EV_IN;
	if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
		ev |= SESSION_EV_OUT;
	return ev;
}

static int64_t op_now_ms(void *io)
{
	(void)io;
	return clock_ms();
}

/* The flag in the control page covers a SIGTERM that ppoll() left
 * pending because the socket was ready (see server_sys.c): a memory load,
 * no system call per wake-up. */
static int op_stopping(void *io)
{
	struct conn *c = io;

	return c->stop || *c->term || control_stopping();
}

static const char *peer_str(struct conn *s)
{
	if (s->peer[0] == '\0')
		net_addr_str(s->peer_sa, s->peer_len, s->peer, sizeof(s->peer));
	return s->peer;
}

static void log_msg(struct conn *s, const uint8_t *b, size_t n, size_t len)
{
	char esc[LOG_MSG_CUT * 4 + 4];

	log_debug("msg %s len=%zu \"%s\"", peer_str(s), len,
		  log_escape(esc, sizeof(esc), b, n, LOG_MSG_CUT));
}

/* -v: one line per message the engine echoes, where the engine says it
 * begins (raw mode has no messages: one line per chunk). The payload shown
 * is what this chunk holds of it, cut at LOG_MSG_CUT; len= is its whole
 * length. */
static void op_echoed(void *io, const uint8_t *b, size_t n,
		      const struct proto_mark *m, size_t nm)
{
	struct conn *s = io;
	size_t k, at, shown;

	if (s->s.p.mode == PROTO_RAW) {
		log_msg(s, b, n, n);
		return;
	}
	for (k = 0; k < nm; k++) {
		at = m[k].off + m[k].hdr;
		shown = at < n ? n - at : 0;
		if (shown > m[k].len)
			shown = m[k].len;
		log_msg(s, b + at, shown, m[k].len);
	}
}

/* A report or a claim to the parent. A full queue (the parent busy) is
 * waited for a moment, never forever. Returns 0 when sent, else -1. */
static int to_parent(int fd, const struct conn_report *rep)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	struct timespec ts = {SESSION_REPORT_WAIT_S, 0};
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if (send(fd, rep, sizeof(*rep), MSG_DONTWAIT | MSG_NOSIGNAL) >=
		    0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		ppoll(&pfd, 1, &ts, NULL);
	}
	return -1;
}

/* Claim the client's address from the parent (--max-per-ip counts it
 * there, one claim at a time) and wait for the answer. Returns 1 to
 * serve, 0 to drop, -1 when no answer came. A stop request ends the wait
 * with a yes: the session then closes for the shutdown. */
static int claim(struct conn *c, const uint8_t key[16], uint16_t port)
{
	struct conn_report rep;
	struct timespec ts;
	siginfo_t si;
	sigset_t set;
	int64_t end = clock_ms() + CONN_VERDICT_WAIT_MS;

	memset(&rep, 0, sizeof(rep));
	rep.magic = CONN_CLAIM_MAGIC;
	memcpy(rep.addr, key, 16);
	rep.port = port;
	if (to_parent(c->report_fd, &rep) < 0)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, CONN_SIG_VERDICT);
	while (!op_stopping(c)) {
		if (clock_ms() >= end)
			return -1;
		clock_until(end, &ts);
		if (sigtimedwait(&set, &si, &ts) < 0) {
			if (errno != EINTR && errno != EAGAIN)
				return -1;
			continue;
		}
		if (si.si_code == SI_QUEUE && si.si_pid == c->claim_parent)
			return si.si_value.sival_int != 0;
	}
	return 1;
}

/* The PROXY header is in: the client it names is who the log lines, the
 * per-address limit and the metrics see from now on (LOCAL and UNKNOWN
 * keep the proxy's address). Logs "accept CLIENT via PROXY". */
static int op_proxied(void *io, const struct proxy_result *r)
{
	struct conn *c = io;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&c->real;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->real;
	const struct sockaddr *via =
	    NULL; /* the proxy, when it names another */
	socklen_t via_len = 0;
	char vias[NET_ADDRSTRLEN];
	uint8_t key[16];
	uint16_t port;
	int ok;

	if (r->proxied) {
		memset(&c->real, 0, sizeof(c->real));
		if (r->family == AF_INET) {
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, r->src, 4);
			s4->sin_port = htons(r->src_port);
		} else {
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, r->src, 16);
			s6->sin6_port = htons(r->src_port);
		}
		via = c->peer_sa;
		via_len = c->peer_len;
		c->peer_sa = (const struct sockaddr *)&c->real;
		c->peer_len = sizeof(c->real);
		c->peer[0] = '\0';
	}
	if (c->claim_parent != 0) {
		net_addr_key(c->peer_sa, key);
		port = net_addr_port(c->peer_sa);
		ok = claim(c, key, port);
		if (ok < 0)
			log_warnx("close %s: no answer from the parent to its "
				  "claim (--max-per-ip)",
				  peer_str(c));
		if (ok <= 0)
			return -1;
	}
	c->accept_logged = 1;
	if (!log_enabled(LOG_LEVEL_INFO))
		return 0;
	/* Formatted only now: with -q a child never faults in the text of
	 * inet_ntop and snprintf. */
	if (via != NULL)
		log_info("accept %s via %s", peer_str(c),
			 net_addr_str(via, via_len, vias, sizeof(vias)));
	else
		log_info("accept %s", peer_str(c));
	return 0;
}

/* .echoed is set in the child with -v only: without it the session makes
 * no call per engine run. */
static struct session_ops conn_ops = {
    .read = op_read,
    .write = op_write,
    .shutdown_wr = op_shutdown_wr,
    .outq = op_outq,
    .wait = op_wait,
    .now_ms = op_now_ms,
    .stopping = op_stopping,
    .read_wait = op_read_wait,
    .write_wait = op_write_wait,
    .pipe_open = op_pipe_open,
    .pipe_in = op_pipe_in,
    .pipe_out = op_pipe_out,
};

/* One report to the parent, before leaving. */
static void send_report(struct conn_report *rep, int fd)
{
	if (fd < 0)
		return;
	rep->magic = CONN_REPORT_MAGIC;
	rep->log_dropped = log_dropped_total();
	(void)to_parent(fd, rep);
}

void conn_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
	      const struct conn_ctx *ctx)
{
	struct conn *const c = &mem.c;
	struct session *const s = &c->s;
	const struct echod_opts *o = ctx->o;
	struct session_cfg cfg;
	size_t msgcap = 0;
	uint8_t *msgbuf = NULL;
	int64_t dur;

	/* SIGTERM and SIGINT (which the parent sends at shutdown, and a
	 * terminal sends to the whole group) get the child's own handler
	 * below (take_term_signals); the other dispositions stay the
	 * parent's: SIGUSR1, SIGHUP and SIGCHLD set flags nobody here reads,
	 * and the signals the parent ignores stay ignored. */
	log_reinit_pid();
	c->fd = fd;
	c->waitmask = ctx->waitmask;
	c->term = ctx->term;
	c->peer_sa = peer; /* the parent's accept buffer, ours after fork */
	c->peer_len = peerlen;

	/* Before the first byte from the client is read. */
	if (sandbox_child(ctx->parent) < 0) {
		log_warn("close %s: cannot enter the sandbox", peer_str(c));
		conn_exit(1);
	}
	if (take_term_signals() < 0) {
		/* The blocked signals then reach us only inside ppoll(). */
		c->rcvtimeo = c->sndtimeo = -1;
	}
	if (o->mode != PROTO_RAW) {
		/* Up to 16 MiB: mapped, so only the pages a message really
		 * uses are ever populated. NULL tells the session to close
		 * with resource-error: out of memory. */
		msgcap = proto_msgbuf_size(o->max_msg);
		msgbuf = mmap(NULL, msgcap, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (msgbuf == MAP_FAILED)
			msgbuf = NULL;
	}
	cfg.mode = o->mode;
	cfg.delim = o->delim;
	cfg.max_msg = o->max_msg;
	cfg.idle_ms = o->idle_timeout * 1000u;
	cfg.linger_ms = SESSION_LINGER_MS;
	cfg.linger_poll_ms = SESSION_LINGER_POLL_MS;
	cfg.bufsize = SESSION_BUF_SIZE;
	cfg.proxy = o->proxy;
	cfg.proxy_ms = o->proxy_timeout * 1000u;
	if (log_enabled(LOG_LEVEL_DEBUG))
		conn_ops.echoed = op_echoed;
	if (o->proxy != 0) {
		conn_ops.proxied = op_proxied;
		c->report_fd = ctx->report_fd;
		if (o->max_per_ip > 0 && ctx->report_fd >= 0)
			c->claim_parent = ctx->parent;
		uint8_t key[16];

		net_addr_key(peer, key);
		if (ctx->parent == 0 &&
		    !parse_cidr_list_match(o->proxy_from, o->nproxy_from,
					   key)) {
			/* inetd mode: no parent checked the peer. */
			log_warnx("reject %s reason=untrusted-proxy",
				  peer_str(c));
			conn_exit(0);
		}
	}
	if (session_init(s, &cfg, &conn_ops, c, mem.in, mem.out, msgbuf,
			 msgcap) != 0) {
		log_warnx("close %s: bad engine configuration", peer_str(c));
		conn_exit(1);
	}
	if (o->proxy == 0 && log_enabled(LOG_LEVEL_INFO))
		log_info("accept %s", peer_str(c));

	session_serve(s);

	close(fd);
	if (s->reason == CLOSE_REJECTED)
		conn_exit(0); /* the parent logged and counted it */
	if (o->proxy != 0 && !c->accept_logged && log_enabled(LOG_LEVEL_INFO))
		log_info("accept %s", peer_str(c)); /* no header came */
	dur = clock_ms() - s->start_ms;
	s->rep.duration_ms = dur;
	if (log_enabled(LOG_LEVEL_INFO))
		log_info("close %s in=%llu out=%llu discarded=%llu "
			 "duration=%lld.%03llds reason=%s",
			 peer_str(c), (unsigned long long)s->rep.bytes_in,
			 (unsigned long long)s->rep.bytes_out,
			 (unsigned long long)s->rep.discarded,
			 (long long)(dur / 1000), (long long)(dur % 1000),
			 close_reason_text(s->reason));
	send_report(&s->rep, ctx->report_fd);
	conn_exit(0);
}
