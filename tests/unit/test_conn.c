/*
 * test_conn.c - one connection served for real (src/conn.c: conn_run(),
 * in a child of the test, over a socket pair) on what an integration test
 * cannot make happen on demand: the sandbox refusing the child, an engine
 * configuration the session refuses, no memory for the message buffer,
 * socket timeouts that cannot be set or a SIGTERM handler that cannot be
 * installed (the child then polls), ppoll() failing or interrupted, a
 * full report socket, an echo the socket does not take at once; raw bulk
 * through the pipe (splice), without a pipe or with one refused its size,
 * with the socket's timeouts lost after a clock jump, to a client that
 * stops reading or sending; a stop request seen at each point where the
 * child looks for one; and the -v lines of raw mode.
 *
 * The PROXY protocol: the accept and close lines naming the client the
 * header named (IPv4, IPv6, LOCAL), no header at all or a bad one, the
 * peer checked in inetd mode; and --max-per-ip's claim, the test acting
 * as the parent: answered yes or no (after signals from others that the
 * child must ignore), never sent, never answered (the clock jumps past
 * CONN_VERDICT_WAIT_MS instead of sleeping through it), sigtimedwait()
 * interrupted or failing, a stop request during the wait.
 *
 * sandbox_child() is replaced (--wrap) by a stand-in that confines
 * nothing (test_sandbox.c and the integration tests prove the real one):
 * the child must stay able to write its coverage counts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "fault.h"
#include "log.h"
#include "stats.h"

FAULT_WRAP(int, ppoll,
	   (struct pollfd * p, nfds_t n, const struct timespec *t,
	    const sigset_t *m),
	   (p, n, t, m), -1)
/* The monotonic clock jumps by clock_jump_ms once the pipe is made (a
 * child descheduled for that long), so that every deadline computed
 * before is off by it. */
static int64_t clock_offset_ms, clock_jump_ms;
int __real_clock_gettime(clockid_t c, struct timespec *ts);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts);
int __wrap_clock_gettime(clockid_t c, struct timespec *ts)
{
	int r = __real_clock_gettime(c, ts);

	if (r == 0 && c == CLOCK_MONOTONIC && clock_offset_ms > 0) {
		ts->tv_sec += (time_t)(clock_offset_ms / 1000);
		ts->tv_nsec += (long)(clock_offset_ms % 1000) * 1000000;
		if (ts->tv_nsec >= 1000000000L) {
			ts->tv_sec++;
			ts->tv_nsec -= 1000000000L;
		}
	}
	return r;
}

static struct fault fault_pipe2;
int __real_pipe2(int fds[2], int fl);
int __wrap_pipe2(int fds[2], int fl);
int __wrap_pipe2(int fds[2], int fl)
{
	if (fault_fire(&fault_pipe2))
		return -1;
	clock_offset_ms += clock_jump_ms;
	return __real_pipe2(fds, fl);
}

/* fcntl: in the child, F_SETPIPE_SZ (the raw bulk pipe's size) and the
 * SIGTERM handler's F_SETFL. */
FAULT_WRAP_FCNTL()

/* setsockopt: fault_setsockopt fails any call; timeo_fail_from[0] (for
 * SO_RCVTIMEO) and [1] (SO_SNDTIMEO), when set, fail that option from its
 * n-th setting on (1: the first). */
static struct fault fault_setsockopt;
static unsigned timeo_fail_from[2], timeo_calls[2];
int __real_setsockopt(int fd, int lvl, int name, const void *v, socklen_t l);
int __wrap_setsockopt(int fd, int lvl, int name, const void *v, socklen_t l);
int __wrap_setsockopt(int fd, int lvl, int name, const void *v, socklen_t l)
{
	int k = name == SO_SNDTIMEO;

	if (fault_fire(&fault_setsockopt))
		return -1;
	if (lvl == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
	    timeo_fail_from[k] > 0 && ++timeo_calls[k] >= timeo_fail_from[k]) {
		errno = ENOPROTOOPT;
		return -1;
	}
	return __real_setsockopt(fd, lvl, name, v, l);
}

/* control_stopping: the shutdown flag, raised from its n-th reading on
 * (0: never). */
static unsigned stop_from, stop_calls;
/* Once a claim is sent (--max-per-ip behind a proxy): the clock jumps by
 * claim_jump_ms, and with claim_stops the stop flag rises. */
static int64_t claim_jump_ms;
static int claim_stops, claim_stop_now;
int __real_control_stopping(void);
int __wrap_control_stopping(void);
int __wrap_control_stopping(void)
{
	if (claim_stop_now || (stop_from > 0 && ++stop_calls >= stop_from))
		return 1;
	return __real_control_stopping();
}
FAULT_WRAP(int, sigaction,
	   (int sig, const struct sigaction *sa, struct sigaction *old),
	   (sig, sa, old), -1)

/* send: fault_send applies to the report, fault_send_echo to the echoes
 * sent to the client. */
static struct fault fault_send, fault_send_echo;
static int report_fd = -1;
ssize_t __real_send(int fd, const void *b, size_t n, int fl);
ssize_t __wrap_send(int fd, const void *b, size_t n, int fl);
ssize_t __wrap_send(int fd, const void *b, size_t n, int fl)
{
	ssize_t r;

	if (fault_fire(fd == report_fd ? &fault_send : &fault_send_echo))
		return -1;
	r = __real_send(fd, b, n, fl);
	if (r >= 0 && fd == report_fd && n == sizeof(struct conn_report) &&
	    ((const struct conn_report *)b)->magic == CONN_CLAIM_MAGIC) {
		clock_offset_ms += claim_jump_ms;
		claim_stop_now = claim_stops;
	}
	return r;
}
FAULT_WRAP(int, sigtimedwait,
	   (const sigset_t *set, siginfo_t *si, const struct timespec *ts),
	   (set, si, ts), -1)
FAULT_WRAP(void *, mmap,
	   (void *a, size_t len, int prot, int fl, int fd, off_t off),
	   (a, len, prot, fl, fd, off), MAP_FAILED)

/* The sandbox: refused when sandbox_fails, else nothing done. */
static int sandbox_fails;
int __wrap_sandbox_child(pid_t parent);
int __wrap_sandbox_child(pid_t parent)
{
	(void)parent;
	if (sandbox_fails) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

struct outcome {
	int status;	/* exit status, 128 + signal */
	char err[4096]; /* the child's stderr */
	char echo[256]; /* the first bytes the client received */
	size_t echo_len;
	size_t echo_total; /* all the bytes it received */
	int echo_ok;	   /* and they are a prefix of what it sent */
	int has_report;
	struct conn_report rep;
};

/* What the client does. */
struct client {
	const uint8_t *in; /* sent, then a half-close (NULL: nothing sent,
			      its side kept open) */
	size_t len;
	size_t pause_at; /* after this many bytes sent, pause_ms without a
			    call (0: none) */
	int pause_ms;
	int noread; /* send until the socket takes nothing for 300 ms, read
		       nothing until the child has left */
	int no_halfclose; /* after sending it all, keep reading until the
			     child closes */
};

static struct echod_opts opts;
static volatile sig_atomic_t term;

/* The parent's side of a claim: the test reads it from the report
 * socket (claim_fd) and answers `verdict` (-1: no answer), after a
 * signal from a stranger and one from itself that is no answer
 * (verdict_noise). */
static int claim_fd = -1, claim_seen, claim_eof, verdict = -1, verdict_noise;
static struct conn_report claim_got;
/* inetd mode: no parent (ctx.parent 0), nobody checked the peer. */
static int no_parent;

static void answer_claim(pid_t pid)
{
	union sigval v;
	pid_t h;
	int st;

	/* The child may have left without a claim (its socket closed). */
	if (recv(claim_fd, &claim_got, sizeof(claim_got), 0) <= 0) {
		claim_eof = 1;
		return;
	}
	claim_seen = 1;
	if (verdict_noise) {
		/* Queued by another process: not the parent's answer. */
		h = fork();
		assert_true(h >= 0);
		if (h == 0) {
			v.sival_int = 1;
			_exit(sigqueue(pid, CONN_SIG_VERDICT, v) == 0 ? 0 : 1);
		}
		assert_int_equal(waitpid(h, &st, 0), h);
		assert_int_equal(st, 0);
		/* From the parent, but kill()ed, not queued. */
		assert_int_equal(kill(pid, CONN_SIG_VERDICT), 0);
	}
	if (verdict >= 0) {
		v.sival_int = verdict;
		assert_int_equal(sigqueue(pid, CONN_SIG_VERDICT, v), 0);
	}
}

static void take_echo(struct outcome *o, const struct client *cl,
		      const uint8_t *b, size_t n)
{
	size_t k = sizeof(o->echo) - o->echo_len;

	if (k > n)
		k = n;
	memcpy(o->echo + o->echo_len, b, k);
	o->echo_len += k;
	if (cl->in == NULL || o->echo_total + n > cl->len ||
	    memcmp(cl->in + o->echo_total, b, n) != 0)
		o->echo_ok = 0;
	o->echo_total += n;
}

/* The client's side: send and receive at once (a large echo would
 * otherwise fill both directions), as struct client says. */
static void client_run(int fd, const struct client *cl, struct outcome *o,
		       pid_t pid, int *st)
{
	static uint8_t buf[1 << 16];
	struct pollfd p, pp[2];
	size_t sent = 0;
	int paused = 0, eof = 0, waited = 0;
	ssize_t n;

	o->echo_ok = 1;
	if (cl->noread) {
		fcntl(fd, F_SETFL, O_NONBLOCK);
		p.fd = fd;
		p.events = POLLOUT;
		while (sent < cl->len && poll(&p, 1, 300) == 1 &&
		       (n = write(fd, cl->in + sent, cl->len - sent)) > 0)
			sent += (size_t)n;
		assert_int_equal(waitpid(pid, st, 0), pid);
		waited = 1;
	}
	/* Nothing to send: the half-close at once. */
	if (cl->in != NULL && cl->len == 0 && !cl->no_halfclose)
		shutdown(fd, SHUT_WR);
	/* Non-blocking: a write takes what fits, and the echo is read while
	 * the rest waits. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (!eof) {
		p.fd = fd;
		p.events = POLLIN;
		if (cl->in != NULL && !cl->noread && sent < cl->len)
			p.events |= POLLOUT;
		pp[0] = p;
		pp[1].fd =
		    claim_fd >= 0 && !claim_seen && !claim_eof ? claim_fd : -1;
		pp[1].events = POLLIN;
		pp[1].revents = 0;
		assert_true(poll(pp, 2, 30000) >= 1);
		p = pp[0];
		if (pp[1].revents & POLLIN)
			answer_claim(pid);
		if (p.revents & POLLOUT) {
			size_t k = cl->len - sent;

			if (cl->pause_at > 0 && !paused &&
			    sent < cl->pause_at && k > cl->pause_at - sent)
				k = cl->pause_at - sent;
			n = write(fd, cl->in + sent, k);
			if (n < 0 && errno == EAGAIN)
				n = 0;
			else if (n < 0)
				assert_int_equal(errno, EPIPE);
			sent = n < 0 ? cl->len : sent + (size_t)n;
			if (cl->pause_at > 0 && !paused &&
			    sent >= cl->pause_at) {
				paused = 1;
				usleep((useconds_t)cl->pause_ms * 1000);
			}
			if (sent == cl->len && !cl->no_halfclose)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, buf, sizeof(buf));
			if (n > 0)
				take_echo(o, cl, buf, (size_t)n);
			else if (n == 0 || errno != EAGAIN)
				eof = 1;
		}
	}
	if (!waited)
		assert_int_equal(waitpid(pid, st, 0), pid);
}

/*
 * Serve one connection in a child, at this log level, with or without a
 * report socket, the client doing what cl says. Faults armed by the
 * caller apply in the child.
 */
static void serve_client(const struct client *cl, int level, int report,
			 struct outcome *o)
{
	int sv[2], rp[2], ep[2], st;
	struct sockaddr_in peer;
	struct conn_ctx ctx;
	sigset_t none;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, rp), 0);
	assert_int_equal(pipe(ep), 0);
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons(40000);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		close(rp[0]);
		close(ep[0]);
		dup2(ep[1], STDERR_FILENO);
		close(ep[1]);
		log_init("echod", (enum log_level)level);
		sigemptyset(&none);
		ctx.o = &opts;
		ctx.waitmask = &none;
		ctx.term = &term;
		ctx.report_fd = report_fd = report ? rp[1] : -1;
		ctx.parent = no_parent ? 0 : getppid();
		/* As server_sys.c leaves it: blocked from birth, taken with
		 * sigtimedwait(). */
		sigemptyset(&none);
		sigaddset(&none, CONN_SIG_VERDICT);
		sigprocmask(SIG_BLOCK, &none, NULL);
		sigemptyset(&none);
		conn_run(sv[1], (struct sockaddr *)&peer, sizeof(peer), &ctx);
	}
	close(sv[1]);
	close(rp[1]);
	close(ep[1]);
	claim_fd =
	    opts.proxy != 0 && opts.max_per_ip > 0 && report ? rp[0] : -1;
	claim_seen = claim_eof = 0;
	memset(&claim_got, 0, sizeof(claim_got));
	client_run(sv[0], cl, o, pid, &st);
	/* A claim the child did not wait for is still queued. */
	if (claim_fd >= 0 && !claim_seen &&
	    recv(claim_fd, &claim_got, sizeof(claim_got), MSG_DONTWAIT) > 0)
		claim_seen = 1;
	claim_fd = -1;
	close(sv[0]);
	while (got + 1 < sizeof(o->err) &&
	       (n = read(ep[0], o->err + got, sizeof(o->err) - 1 - got)) > 0)
		got += (size_t)n;
	o->err[got] = '\0';
	close(ep[0]);
	o->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
	n = recv(rp[0], &o->rep, sizeof(o->rep), MSG_DONTWAIT);
	o->has_report = n == (ssize_t)sizeof(o->rep);
	close(rp[0]);
}

/* The client sends `in` (a string) and half-closes ("": at once); NULL:
 * it sends nothing and keeps its side open. */
static void serve(const char *in, int level, int report, struct outcome *o)
{
	struct client cl;

	memset(&cl, 0, sizeof(cl));
	cl.in = (const uint8_t *)in;
	cl.len = in != NULL ? strlen(in) : 0;
	serve_client(&cl, level, report, o);
}

static int setup(void **state)
{
	(void)state;
	opts_defaults(&opts);
	sandbox_fails = 0;
	memset(&fault_ppoll, 0, sizeof(struct fault));
	memset(&fault_send, 0, sizeof(struct fault));
	memset(&fault_mmap, 0, sizeof(struct fault));
	memset(&fault_setsockopt, 0, sizeof(struct fault));
	memset(&fault_sigaction, 0, sizeof(struct fault));
	memset(&fault_send_echo, 0, sizeof(struct fault));
	memset(&fault_pipe2, 0, sizeof(struct fault));
	memset(&fault_fcntl, 0, sizeof(struct fault));
	fault_fcntl_cmd = 0;
	memset(&fault_sigtimedwait, 0, sizeof(struct fault));
	claim_jump_ms = 0;
	claim_stops = claim_stop_now = 0;
	verdict = -1;
	verdict_noise = 0;
	no_parent = 0;
	memset(timeo_fail_from, 0, sizeof(timeo_fail_from));
	memset(timeo_calls, 0, sizeof(timeo_calls));
	stop_from = stop_calls = 0;
	clock_offset_ms = clock_jump_ms = 0;
	return 0;
}

static void test_echo_verbose_raw(void **state)
{
	struct outcome o;

	(void)state;
	serve("hello\n", LOG_LEVEL_DEBUG, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 6);
	assert_memory_equal(o.echo, "hello\n", 6);
	assert_non_null(strstr(o.err, "accept 127.0.0.1:40000\n"));
	/* raw mode: one line per chunk echoed */
	assert_non_null(strstr(o.err, "msg 127.0.0.1:40000 len=6 "
				      "\"hello\\n\"\n"));
	assert_non_null(strstr(o.err, "close 127.0.0.1:40000 in=6 out=6 "));
	assert_non_null(strstr(o.err, " reason=eof\n"));
	assert_true(o.has_report);
	assert_int_equal(o.rep.magic, CONN_REPORT_MAGIC);
	assert_int_equal(o.rep.bytes_in, 6);
	assert_int_equal(o.rep.reason, CLOSE_EOF);
}

/* Quiet (-q): no accept or close line; no report socket: none sent. */
static void test_quiet_no_report(void **state)
{
	struct outcome o;

	(void)state;
	serve("x", LOG_LEVEL_ERROR, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 1);
	assert_string_equal(o.err, "");
	assert_false(o.has_report);
}

static void test_sandbox_refused(void **state)
{
	struct outcome o;

	(void)state;
	sandbox_fails = 1;
	serve(NULL, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 1);
	assert_non_null(strstr(o.err, "close 127.0.0.1:40000: cannot enter "
				      "the sandbox: Operation not "
				      "permitted\n"));
	assert_false(o.has_report);
}

/* The options are trusted (opts.c checks them): a maximum the engine
 * refuses makes the child leave at once. */
static void test_bad_engine_config(void **state)
{
	struct outcome o;

	(void)state;
	opts.mode = PROTO_LINE;
	opts.max_msg = 0;
	serve(NULL, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 1);
	assert_non_null(
	    strstr(o.err, "close 127.0.0.1:40000: bad engine configuration\n"));
	assert_false(o.has_report);
}

/* No memory for the message buffer: served as a close, the reason said. */
static void test_no_msgbuf(void **state)
{
	struct outcome o;

	(void)state;
	opts.mode = PROTO_LINE;
	fault_arm(&fault_mmap, 0, 1, ENOMEM);
	serve("line\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 0);
	assert_true(o.has_report);
	assert_int_equal(o.rep.reason, CLOSE_NOMEM);
	assert_non_null(strstr(o.err, "reason=resource-error: out of memory"));
}

/* The socket's timeouts cannot be set: the child polls before each read
 * and write instead of blocking in them, and echoes all the same. */
static void test_no_socket_timeouts(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_setsockopt, 0, FAULT_ALWAYS, ENOPROTOOPT);
	serve("polled\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 7);
	assert_memory_equal(o.echo, "polled\n", 7);
	assert_int_equal(o.rep.reason, CLOSE_EOF);
}

/* No SIGTERM handler of its own: the child polls, with the parent's
 * signals open inside ppoll() only. */
static void test_no_term_handler(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_sigaction, 0, 1, EINVAL);
	serve("no handler", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 10);
	assert_int_equal(o.rep.reason, CLOSE_EOF);
}

/* ppoll() failing (the child polls: no socket timeouts): logged, the
 * connection ends as a reset. */
static void test_ppoll_fails(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_setsockopt, 0, FAULT_ALWAYS, ENOPROTOOPT);
	fault_arm(&fault_ppoll, 0, 1, ENOMEM);
	serve(NULL, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.err, "ppoll: Cannot allocate memory\n"));
	assert_true(o.has_report);
	assert_int_equal(o.rep.reason, CLOSE_RESET);
}

/* ppoll() interrupted: the session goes on. */
static void test_ppoll_eintr(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_setsockopt, 0, FAULT_ALWAYS, ENOPROTOOPT);
	fault_arm(&fault_ppoll, 0, 2, EINTR);
	serve("abc", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 3);
	assert_int_equal(o.rep.reason, CLOSE_EOF);
	assert_null(strstr(o.err, "ppoll"));
}

/* The report socket full (EAGAIN), then interrupted (EINTR): waited for,
 * sent on the next try. A third failure in a row gives up. */
static void test_report_retried(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_send, 0, 1, EAGAIN);
	serve("r", LOG_LEVEL_ERROR, 1, &o);
	assert_int_equal(o.status, 0);
	assert_true(o.has_report);
	assert_int_equal(o.rep.bytes_in, 1);

	fault_arm(&fault_send, 0, 1, EINTR);
	serve("r", LOG_LEVEL_ERROR, 1, &o);
	assert_true(o.has_report);

	fault_arm(&fault_send, 0, 2, EAGAIN);
	serve("r", LOG_LEVEL_ERROR, 1, &o);
	assert_int_equal(o.status, 0);
	assert_false(o.has_report);

	/* Another error: no retry. */
	fault_arm(&fault_send, 0, 1, ENOBUFS);
	serve("r", LOG_LEVEL_ERROR, 1, &o);
	assert_int_equal(o.status, 0);
	assert_false(o.has_report);
}

/* ---- bulk: raw mode through the pipe (splice) ---- */

#define BULK (1u << 20)
static uint8_t bulk[BULK];

static void bulk_client(struct client *cl)
{
	size_t i;

	for (i = 0; i < BULK; i++)
		bulk[i] = (uint8_t)(i * 7 + i / 4096);
	memset(cl, 0, sizeof(*cl));
	cl->in = bulk;
	cl->len = BULK;
}

static void assert_bulk_echoed(const struct outcome *o)
{
	assert_int_equal(o->status, 0);
	assert_true(o->echo_ok);
	assert_int_equal(o->echo_total, BULK);
	assert_int_equal(o->rep.reason, CLOSE_EOF);
	assert_int_equal(o->rep.bytes_in, BULK);
	assert_int_equal(o->rep.bytes_out, BULK);
}

static void test_bulk(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_bulk_echoed(&o);
}

/* No pipe to be had: the bytes go on through the session's buffers. */
static void test_bulk_no_pipe(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	fault_arm(&fault_pipe2, 0, FAULT_ALWAYS, EMFILE);
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_bulk_echoed(&o);
}

/* The pipe cannot have its size (the user is past
 * fs.pipe-user-pages-soft, F_SETPIPE_SZ fails with EPERM): no pipe, the
 * bytes go on through the session's buffers. */
static void test_bulk_small_pipe(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	fault_fcntl_cmd = F_SETPIPE_SZ;
	fault_arm(&fault_fcntl, 0, FAULT_ALWAYS, EPERM);
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_bulk_echoed(&o);
}

/* The socket's timeouts cannot be set again once the pipe is in use
 * (the clock jumped, the deadlines moved): the child polls before each
 * splice from the socket (the first poll interrupted), and splices to it
 * without blocking. */
static void test_bulk_timeouts_lost(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	opts.idle_timeout = 5;
	clock_jump_ms = 500;
	timeo_fail_from[0] = 2;
	timeo_fail_from[1] = 2;
	fault_arm(&fault_ppoll, 0, 1, EINTR);
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_bulk_echoed(&o);
}

/* Raw bulk, then a client that keeps its side open and sends nothing:
 * the splice from it ends at the receive timeout, the connection closes
 * as idle once everything is echoed. */
static void test_bulk_idle(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	cl.no_halfclose = 1;
	opts.idle_timeout = 1;
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.rep.reason, CLOSE_IDLE);
	assert_true(o.echo_ok);
	assert_int_equal(o.echo_total, BULK);
}

/* Raw bulk to a client that does not read: the splice to it ends at the
 * send timeout, the connection closes as idle. */
static void test_bulk_times_out(void **state)
{
	struct client cl;
	struct outcome o;

	(void)state;
	bulk_client(&cl);
	cl.noread = 1;
	opts.idle_timeout = 1;
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.rep.reason, CLOSE_IDLE);
	assert_true(o.echo_ok);
}

/* An echo the socket does not take at once (EAGAIN) is sent again. */
static void test_echo_send_again(void **state)
{
	struct outcome o;

	(void)state;
	fault_arm(&fault_setsockopt, 0, FAULT_ALWAYS, ENOPROTOOPT);
	fault_arm(&fault_send_echo, 0, 1, EAGAIN);
	serve("again\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 6);
	assert_memory_equal(o.echo, "again\n", 6);
}

/* A client that sends and never reads: the blocked write ends at the
 * send timeout (the idle timeout) and the connection closes as idle. */
static void test_write_times_out(void **state)
{
	static uint8_t lines[4u << 20];
	struct client cl;
	struct outcome o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lines); i++)
		lines[i] = i % 64 == 63 ? '\n' : 'l';
	memset(&cl, 0, sizeof(cl));
	cl.in = lines;
	cl.len = sizeof(lines);
	cl.noread = 1;
	opts.mode = PROTO_LINE;
	opts.idle_timeout = 1;
	serve_client(&cl, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.rep.reason, CLOSE_IDLE);
	assert_true(o.echo_ok);
}

/* A stop request (the control page's flag) seen at any of the points the
 * child looks for it: the connection ends as a shutdown (or, once all is
 * echoed, as it would have), with no byte out of order. */
static void test_stop_anywhere(void **state)
{
	static const char lines[] = "one\ntwo\nthree\n";
	struct client cl;
	struct outcome o;
	unsigned k;

	(void)state;
	for (k = 1; k <= 24; k++) {
		setup(NULL);
		opts.mode = PROTO_LINE;
		stop_from = k;
		serve(lines, LOG_LEVEL_ERROR, 1, &o);
		assert_int_equal(o.status, 0);
		assert_true(o.rep.reason == CLOSE_SHUTDOWN ||
			    o.rep.reason == CLOSE_EOF);
		assert_true(o.echo_len <= sizeof(lines) - 1);
		assert_memory_equal(o.echo, lines, o.echo_len);
	}
	for (k = 1; k <= 24; k++) {
		setup(NULL);
		bulk_client(&cl);
		stop_from = k;
		serve_client(&cl, LOG_LEVEL_ERROR, 1, &o);
		assert_int_equal(o.status, 0);
		assert_true(o.rep.reason == CLOSE_SHUTDOWN ||
			    o.rep.reason == CLOSE_EOF);
		assert_true(o.echo_ok);
	}
}

/* ---- the PROXY protocol ---- */

#define HDR4	 "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"
#define HDR6	 "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n"
#define VIA	 " via 127.0.0.1:40000\n"
#define NOANSWER "no answer from the parent to its claim (--max-per-ip)\n"

/* --proxy-protocol any from `from`, --max-per-ip max. */
static void proxy_opts(const char *from, uint32_t max)
{
	opts.proxy = PROXY_ACCEPT_ANY;
	assert_int_equal(parse_cidr(from, &opts.proxy_from[0]), 0);
	opts.nproxy_from = 1;
	opts.max_per_ip = max;
}

/* The client sends n bytes (may hold NULs) and half-closes. */
static void serve_bytes(const void *in, size_t n, int level, int report,
			struct outcome *o)
{
	struct client cl;

	memset(&cl, 0, sizeof(cl));
	cl.in = in;
	cl.len = n;
	serve_client(&cl, level, report, o);
}

/* The key net_addr_key() makes of a text address. */
static void key_of(const char *a, uint8_t k[16])
{
	memset(k, 0, 16);
	if (inet_pton(AF_INET, a, k + 12) == 1) {
		k[10] = k[11] = 0xff;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, a, k), 1);
}

static void assert_claimed(const char *addr, uint16_t port)
{
	uint8_t k[16];

	assert_true(claim_seen);
	assert_int_equal(claim_got.magic, CONN_CLAIM_MAGIC);
	key_of(addr, k);
	assert_memory_equal(claim_got.addr, k, 16);
	assert_int_equal(claim_got.port, port);
}

/* The lines name the client the header names, the proxy after "via";
 * the header is not data. */
static void test_proxy_v4_v6(void **state)
{
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 0);
	serve(HDR4 "hello\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 6);
	assert_memory_equal(o.echo, "hello\n", 6);
	assert_non_null(strstr(o.err, "accept 192.0.2.1:56324" VIA));
	assert_non_null(strstr(o.err, "close 192.0.2.1:56324 in=6 out=6 "));
	assert_null(strstr(o.err, "accept 127.0.0.1"));
	assert_true(o.has_report);
	assert_int_equal(o.rep.reason, CLOSE_EOF);
	assert_int_equal(o.rep.bytes_in, 6);
	assert_false(claim_seen); /* no --max-per-ip: nothing claimed */

	serve(HDR6 "v6", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 2);
	assert_non_null(strstr(o.err, "accept [2001:db8::1]:1234" VIA));
	assert_non_null(strstr(o.err, "close [2001:db8::1]:1234 in=2 out=2 "));
	assert_int_equal(o.rep.bytes_in, 2);
}

/* v2 LOCAL (and v1 UNKNOWN): the proxy's own connection, named as it
 * is, no "via". */
static void test_proxy_local(void **state)
{
	static const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
				    "abc";
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.1", 0);
	serve_bytes(local, sizeof(local) - 1, LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 3);
	assert_memory_equal(o.echo, "abc", 3);
	assert_non_null(strstr(o.err, "accept 127.0.0.1:40000\n"));
	assert_null(strstr(o.err, " via "));
	assert_non_null(strstr(o.err, "close 127.0.0.1:40000 in=3 out=3 "));

	serve("PROXY UNKNOWN\r\nxy", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.echo_len, 2);
	assert_non_null(strstr(o.err, "accept 127.0.0.1:40000\n"));
	assert_null(strstr(o.err, " via "));
}

/* No header, or a bad one: the accept line comes after the session,
 * with the close line and its reason; quiet, neither. */
static void test_proxy_no_header(void **state)
{
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 0);
	serve("", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_non_null(strstr(o.err, "accept 127.0.0.1:40000\n"));
	assert_non_null(strstr(o.err, "close 127.0.0.1:40000 in=0 out=0 "));
	assert_non_null(strstr(o.err, " reason=eof\n"));
	assert_int_equal(o.rep.reason, CLOSE_EOF);

	serve("GET / HTTP/1.0\r\n\r\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 0);
	assert_true(strstr(o.err, "accept 127.0.0.1:40000\n") <
		    strstr(o.err, "close 127.0.0.1:40000 in=0 out=0 "));
	assert_non_null(
	    strstr(o.err, " reason=protocol-error: bad proxy header\n"));
	assert_true(o.has_report);
	assert_int_equal(o.rep.reason, CLOSE_PROXY_BAD);
	assert_int_equal(o.rep.protocol_errors, 1);
	assert_int_equal(o.rep.bytes_in, 0);

	serve("GET / HTTP/1.0\r\n\r\n", LOG_LEVEL_ERROR, 1, &o);
	assert_string_equal(o.err, "");
	assert_int_equal(o.rep.reason, CLOSE_PROXY_BAD);
	serve(HDR4 "q", LOG_LEVEL_ERROR, 1, &o);
	assert_string_equal(o.err, "");
	assert_int_equal(o.echo_len, 1);
}

/* inetd mode: no parent checked the peer, the child does. */
static void test_proxy_inetd(void **state)
{
	struct outcome o;

	(void)state;
	no_parent = 1;
	proxy_opts("10.0.0.0/8", 0);
	serve(HDR4 "x", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 0);
	assert_non_null(
	    strstr(o.err, "reject 127.0.0.1:40000 reason=untrusted-proxy\n"));
	assert_false(o.has_report);

	proxy_opts("::ffff:127.0.0.1", 0);
	serve(HDR4 "x", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 1);
	assert_non_null(strstr(o.err, "accept 192.0.2.1:56324" VIA));
}

/* --max-per-ip: the child claims the client (IPv4, IPv6, or for LOCAL
 * the proxy's own address) and serves it on the parent's yes, taking
 * no signal from anyone else for it. */
static void test_proxy_claim_granted(void **state)
{
	static const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
				    "L";
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 1);
	verdict = 1;
	verdict_noise = 1;
	serve(HDR4 "hello\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("192.0.2.1", 56324);
	assert_int_equal(o.echo_len, 6);
	assert_non_null(strstr(o.err, "accept 192.0.2.1:56324" VIA));
	assert_true(o.has_report);
	assert_int_equal(o.rep.magic, CONN_REPORT_MAGIC);
	assert_int_equal(o.rep.bytes_in, 6);

	serve(HDR6 "6", LOG_LEVEL_INFO, 1, &o);
	assert_claimed("2001:db8::1", 1234);
	assert_int_equal(o.echo_len, 1);
	assert_non_null(strstr(o.err, "accept [2001:db8::1]:1234" VIA));

	verdict_noise = 0;
	serve_bytes(local, sizeof(local) - 1, LOG_LEVEL_ERROR, 1, &o);
	assert_claimed("127.0.0.1", 40000);
	assert_int_equal(o.echo_len, 1);
	assert_string_equal(o.err, "");
	assert_true(o.has_report);
}

/* The parent's no: dropped at once, nothing sent, no line (the parent
 * logs the rejection), no report (the parent counted it). */
static void test_proxy_claim_denied(void **state)
{
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 1);
	verdict = 0;
	verdict_noise = 1;
	serve(HDR4 "hello\n", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("192.0.2.1", 56324);
	assert_int_equal(o.echo_total, 0);
	assert_string_equal(o.err, "");
	assert_false(o.has_report);
}

/* No answer: the claim cannot be sent, the wait runs out (the clock
 * jumps past it), sigtimedwait() fails. Each drops the client with a
 * warning. */
static void test_proxy_claim_no_answer(void **state)
{
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 1);
	verdict = 1;
	fault_arm(&fault_send, 0, 1, ENOBUFS);
	serve(HDR4 "x", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_false(claim_seen);
	assert_int_equal(o.echo_total, 0);
	assert_non_null(strstr(o.err, "close 192.0.2.1:56324: " NOANSWER));
	assert_null(strstr(o.err, "accept "));
	assert_false(o.has_report);

	setup(NULL);
	proxy_opts("127.0.0.0/8", 1);
	claim_jump_ms = CONN_VERDICT_WAIT_MS + 1000;
	serve(HDR6 "x", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("2001:db8::1", 1234);
	assert_int_equal(o.echo_total, 0);
	assert_non_null(strstr(o.err, "close [2001:db8::1]:1234: " NOANSWER));
	assert_false(o.has_report);

	setup(NULL);
	proxy_opts("127.0.0.0/8", 1);
	fault_arm(&fault_sigtimedwait, 0, 1, EINVAL);
	serve(HDR4 "x", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("192.0.2.1", 56324);
	assert_int_equal(o.echo_total, 0);
	assert_non_null(strstr(o.err, "close 192.0.2.1:56324: " NOANSWER));
}

/* An interrupted wait goes on, and so does one that ends before its
 * deadline (EAGAIN); a stop request ends it with a yes, and the session
 * closes for the shutdown; without a report socket nothing is claimed. */
static void test_proxy_claim_wait(void **state)
{
	struct outcome o;

	(void)state;
	proxy_opts("127.0.0.0/8", 1);
	verdict = 1;
	fault_arm(&fault_sigtimedwait, 0, 2, EINTR);
	serve(HDR4 "ok", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("192.0.2.1", 56324);
	assert_int_equal(o.echo_len, 2);
	assert_true(o.has_report);
	/* EAGAIN: the wait's timeout, early; the deadline is not past. */
	setup(NULL);
	proxy_opts("127.0.0.0/8", 1);
	verdict = 1;
	fault_arm(&fault_sigtimedwait, 0, 1, EAGAIN);
	serve(HDR6 "ok", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("2001:db8::1", 1234);
	assert_int_equal(o.echo_len, 2);
	assert_true(o.has_report);

	setup(NULL);
	proxy_opts("127.0.0.0/8", 1);
	claim_stops = 1;
	serve(HDR4 "late", LOG_LEVEL_INFO, 1, &o);
	assert_int_equal(o.status, 0);
	assert_claimed("192.0.2.1", 56324);
	assert_non_null(strstr(o.err, "accept 192.0.2.1:56324" VIA));
	assert_non_null(strstr(o.err, " reason=shutdown\n"));
	assert_true(o.has_report);
	assert_int_equal(o.rep.reason, CLOSE_SHUTDOWN);

	setup(NULL);
	proxy_opts("127.0.0.0/8", 1);
	serve(HDR4 "nr", LOG_LEVEL_INFO, 0, &o);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.echo_len, 2);
	assert_non_null(strstr(o.err, "accept 192.0.2.1:56324" VIA));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_echo_verbose_raw, setup),
	    cmocka_unit_test_setup(test_quiet_no_report, setup),
	    cmocka_unit_test_setup(test_sandbox_refused, setup),
	    cmocka_unit_test_setup(test_bad_engine_config, setup),
	    cmocka_unit_test_setup(test_no_msgbuf, setup),
	    cmocka_unit_test_setup(test_no_socket_timeouts, setup),
	    cmocka_unit_test_setup(test_no_term_handler, setup),
	    cmocka_unit_test_setup(test_ppoll_fails, setup),
	    cmocka_unit_test_setup(test_ppoll_eintr, setup),
	    cmocka_unit_test_setup(test_report_retried, setup),
	    cmocka_unit_test_setup(test_bulk, setup),
	    cmocka_unit_test_setup(test_bulk_no_pipe, setup),
	    cmocka_unit_test_setup(test_bulk_small_pipe, setup),
	    cmocka_unit_test_setup(test_bulk_timeouts_lost, setup),
	    cmocka_unit_test_setup(test_bulk_times_out, setup),
	    cmocka_unit_test_setup(test_bulk_idle, setup),
	    cmocka_unit_test_setup(test_echo_send_again, setup),
	    cmocka_unit_test_setup(test_write_times_out, setup),
	    cmocka_unit_test_setup(test_stop_anywhere, setup),
	    cmocka_unit_test_setup(test_proxy_v4_v6, setup),
	    cmocka_unit_test_setup(test_proxy_local, setup),
	    cmocka_unit_test_setup(test_proxy_no_header, setup),
	    cmocka_unit_test_setup(test_proxy_inetd, setup),
	    cmocka_unit_test_setup(test_proxy_claim_granted, setup),
	    cmocka_unit_test_setup(test_proxy_claim_denied, setup),
	    cmocka_unit_test_setup(test_proxy_claim_no_answer, setup),
	    cmocka_unit_test_setup(test_proxy_claim_wait, setup),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
