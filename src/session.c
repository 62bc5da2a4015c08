/*
 * session.c - a child serving its one connection: read, proto_run, write,
 * over a non-blocking socket and ppoll(), inside the sandbox.
 *
 * Memory is bounded whatever the client does: one input buffer, one output
 * buffer and the engine's message buffer. Reading stops while the output
 * buffer is full and the input buffer holds what the engine cannot take
 * (back-pressure), so a client that sends but never reads stalls and is
 * closed by the idle timeout.
 *
 * A session goes through three phases. SERVING: read, run the engine,
 * write. CLOSING (the server closes first: protocol error, idle timeout,
 * shutdown, no memory): nothing more is read; what was read is still
 * echoed and flushed. LINGERING: the sending side is shut down (FIN after
 * the last echo) and input is read and dropped, so that close() does not
 * find unread data and answer with a reset that would destroy echoes still
 * queued; it lasts while the client still takes echoes. A client's
 * half-close is not a phase: SERVING ends when all it is owed is sent.
 */
#define _GNU_SOURCE /* ppoll */
#include "session.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "proto.h"
#include "sandbox.h"
#include "stats.h"

enum phase {
	PH_SERVING = 0,
	PH_CLOSING,
	PH_LINGERING,
};

struct session {
	int fd;
	int verbose;
	enum phase phase;
	enum close_reason reason;
	uint32_t idle_ms; /* 0: never */
	const volatile sig_atomic_t *term;
	struct proto p;
	uint8_t *in, *out;
	size_t in_off, in_len;	 /* unconsumed input: in[in_off..+in_len) */
	size_t out_off, out_len; /* unsent output: out[out_off..out_len) */
	int in_eof;		 /* the client shut down its sending side */
	int engine_end;		 /* proto_run returned DONE or an error */
	int engine_owes; /* proto_run said NEED_OUTPUT: it holds output */
	int outq;	 /* LINGERING: unacknowledged bytes last seen */
	struct conn_report rep; /* the counters, sent to the parent */
	int64_t start_ms, progress_ms;
	/* -v: frame boundaries in the echoed stream */
	uint8_t hdr[PROTO_FRAME_HDR];
	size_t hdr_len, frame_left;
	/* The client's address, formatted only when a line is logged:
	 * inet_ntop and snprintf would fault in text pages that a quiet
	 * child never needs. */
	const struct sockaddr *peer_sa;
	socklen_t peer_len;
	char peer[NET_ADDRSTRLEN];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Leave the child. Not _exit(): sanitizer runtimes intercept it to run a
 * leak check, which needs system calls (clone, ptrace) the sandbox kills;
 * a child's heap dies with it anyway. */
__attribute__((noreturn)) static void session_exit(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
}

static const char *peer_str(struct session *s)
{
	if (s->peer[0] == '\0')
		net_addr_str(s->peer_sa, s->peer_len, s->peer, sizeof(s->peer));
	return s->peer;
}

static void log_msg(struct session *s, const uint8_t *b, size_t n, size_t len)
{
	char esc[LOG_MSG_CUT * 4 + 4];

	log_debug("msg %s len=%zu \"%s\"", peer_str(s), len,
		  log_escape(esc, sizeof(esc), b, n, LOG_MSG_CUT));
}

/* -v: log each message the engine echoes (raw mode: each chunk, as raw
 * mode has no messages). A message split over two output chunks is
 * logged in two pieces. */
static void log_echo(struct session *s, const uint8_t *b, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		switch (s->p.mode) {
		case PROTO_LINE: {
			const uint8_t *d = memchr(b + i, s->p.delim, n - i);

			k = d != NULL ? (size_t)(d - (b + i)) + 1 : n - i;
			log_msg(s, b + i, k, k);
			i += k;
			break;
		}
		case PROTO_FRAME:
			if (s->frame_left > 0) {
				k = n - i < s->frame_left ? n - i
							  : s->frame_left;
				s->frame_left -= k;
				i += k;
				break;
			}
			while (s->hdr_len < PROTO_FRAME_HDR && i < n)
				s->hdr[s->hdr_len++] = b[i++];
			if (s->hdr_len < PROTO_FRAME_HDR)
				break;
			s->hdr_len = 0;
			s->frame_left = (size_t)s->hdr[0] << 24 |
					(size_t)s->hdr[1] << 16 |
					(size_t)s->hdr[2] << 8 | s->hdr[3];
			k = n - i < s->frame_left ? n - i : s->frame_left;
			log_msg(s, b + i, k, s->frame_left);
			break;
		default:
			log_msg(s, b, n, n);
			i = n;
			break;
		}
	}
}

/* The server decides to close first: stop reading, flush, then linger. */
static void start_close(struct session *s, enum close_reason why)
{
	if (s->phase != PH_SERVING)
		return;
	s->phase = PH_CLOSING;
	if (s->reason == CLOSE_NONE || s->reason == CLOSE_EOF)
		s->reason = why;
	/* A flush may stall for at most the linger time from now on. */
	s->progress_ms = now_ms();
}

static void set_reset(struct session *s)
{
	if (s->reason == CLOSE_NONE || s->reason == CLOSE_EOF)
		s->reason = CLOSE_RESET;
}

/* Whether proto_run has work: buffered input, the end of input, or output
 * it still holds (a long message emitted piecewise); and room for output.
 * Closing for shutdown or idleness, what was read is still echoed, but
 * nothing more is read. */
static int engine_can_run(const struct session *s)
{
	return !s->engine_end && s->out_len < SESSION_BUF_SIZE &&
	       (s->in_len > 0 || s->in_eof || s->engine_owes);
}

/* Run the engine over the buffered input while there is output room. */
static void pump(struct session *s)
{
	size_t c, prod;
	int r;

	while (engine_can_run(s)) {
		r = proto_run(&s->p, s->in + s->in_off, s->in_len, s->in_eof,
			      s->out + s->out_len,
			      SESSION_BUF_SIZE - s->out_len, &c, &prod);
		if (s->verbose && prod > 0)
			log_echo(s, s->out + s->out_len, prod);
		s->in_off += c;
		s->in_len -= c;
		if (s->in_len == 0)
			s->in_off = 0;
		s->out_len += prod;
		s->engine_owes = r == PROTO_NEED_OUTPUT;
		if (r == PROTO_DONE) {
			s->engine_end = 1;
			if (s->reason == CLOSE_NONE)
				s->reason = CLOSE_EOF;
		} else if (r < 0) {
			s->engine_end = 1;
			start_close(s, r == PROTO_E_TOO_LARGE ? CLOSE_TOO_LARGE
				       : r == PROTO_E_TRUNCATED
					   ? CLOSE_TRUNCATED
					   : CLOSE_ENGINE);
		} else if (r == PROTO_NEED_INPUT || (c == 0 && prod == 0)) {
			break;
		}
	}
}

/* Send what is owed. Returns -1 when the connection is gone. */
static int flush(struct session *s)
{
	ssize_t n;

	if (s->out_len == s->out_off)
		return 0;
	n = net_write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
	if (n < 0) {
		set_reset(s);
		return -1;
	}
	if (n > 0) {
		s->out_off += (size_t)n;
		s->rep.bytes_out += (size_t)n;
		s->progress_ms = now_ms();
	}
	if (s->out_off == s->out_len) {
		s->out_off = 0;
		s->out_len = 0;
	}
	return 0;
}

/* Read from the client into the input buffer. Returns -1 when the
 * connection is gone. */
static int fill(struct session *s)
{
	ssize_t n;

	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len);
		s->in_off = 0;
	}
	n = net_read(s->fd, s->in + s->in_len, SESSION_BUF_SIZE - s->in_len);
	if (n == NET_AGAIN)
		return 0;
	if (n < 0) {
		set_reset(s);
		return -1;
	}
	if (n == 0) {
		s->in_eof = 1;
		return 0;
	}
	s->in_len += (size_t)n;
	s->rep.bytes_in += (size_t)n;
	s->progress_ms = now_ms();
	return 0;
}

/* LINGERING: read and drop what the client still sends, so that close()
 * finds an empty receive queue. Returns 1 when bytes were dropped, 0 when
 * none were there, -1 at the client's EOF or on error: nothing more to
 * wait for. */
static int discard(struct session *s)
{
	/* The input buffer is free once lingering. */
	ssize_t n = net_read(s->fd, s->in, SESSION_BUF_SIZE);

	if (n == NET_AGAIN)
		return 0;
	if (n <= 0) {
		s->in_eof = 1;
		return -1;
	}
	s->rep.discarded += (size_t)n;
	return 1;
}

/* CLOSING with nothing owed: send FIN after the last echo and linger.
 * Input the engine will never see is dropped, not served. */
static void start_linger(struct session *s)
{
	shutdown(s->fd, SHUT_WR);
	s->phase = PH_LINGERING;
	s->rep.bytes_in -= s->in_len;
	s->rep.discarded += s->in_len;
	s->in_len = 0;
	s->in_off = 0;
	s->outq = INT_MAX;
	s->progress_ms = now_ms();
}

/* LINGERING: whether to go on. The kernel's unacknowledged byte count
 * (SIOCOUTQ: unsent plus unacknowledged, the FIN included) says whether
 * the client still takes echoes: 0 means it has them all, a smaller
 * count than before means progress. */
static int linger_more(struct session *s, int64_t now)
{
	int q;

	if (s->in_eof)
		return 0; /* nothing unread: close() sends FIN, no reset */
	if (ioctl(s->fd, SIOCOUTQ, &q) == 0) {
		if (q == 0) {
			/* All delivered. Drop what already arrived, so that
			 * close() sends a reset only if more comes later. */
			for (q = 0; q < 16 && discard(s) > 0; q++)
				;
			return 0;
		}
		if (q < s->outq) {
			s->outq = q;
			s->progress_ms = now;
		}
	}
	return now < s->progress_ms + SESSION_LINGER_MS;
}

static void serve(struct session *s, const sigset_t *waitmask)
{
	struct pollfd pfd;
	struct timespec ts;
	int64_t deadline, now;
	int r, pending, want_read;

	/* The client's first bytes have usually arrived while we forked:
	 * read before the first wait, saving a ppoll() per connection. */
	if (s->phase == PH_SERVING && fill(s) < 0)
		return;
	for (;;) {
		/* The flag in the control page covers a SIGTERM that ppoll()
		 * left pending because the socket was ready (see server.c):
		 * a memory load, no system call per wake-up. */
		if (s->phase == PH_SERVING && (*s->term || control_stopping()))
			start_close(s, CLOSE_SHUTDOWN);
		if (s->out_off > 0) {
			memmove(s->out, s->out + s->out_off,
				s->out_len - s->out_off);
			s->out_len -= s->out_off;
			s->out_off = 0;
		}
		pump(s);
		if (flush(s) < 0)
			return;
		/* Room freed by the write: let the engine go on first. */
		if (engine_can_run(s))
			continue;
		pending = s->out_len > s->out_off;
		if (s->phase == PH_SERVING && s->engine_end && !pending) {
			if (s->reason == CLOSE_EOF)
				return; /* half-close served in full */
			start_close(s, s->reason);
		}
		if (s->phase == PH_CLOSING && !pending) {
			start_linger(s);
			if (s->in_eof)
				return;
		}
		now = now_ms();
		if (s->phase == PH_LINGERING && !linger_more(s, now))
			return;
		/* While flushing before a server-side close nothing is read:
		 * a client that floods without reading must not keep us busy;
		 * only the lingering close reads (and drops) input. */
		if (s->phase == PH_SERVING)
			want_read = !s->in_eof && !s->engine_end &&
				    s->in_len < SESSION_BUF_SIZE;
		else
			want_read = s->phase == PH_LINGERING;
		pfd.fd = s->fd;
		pfd.events =
		    (short)((want_read ? POLLIN : 0) | (pending ? POLLOUT : 0));
		pfd.revents = 0;
		if (pfd.events == 0)
			return;

		if (s->phase == PH_LINGERING) {
			deadline = now + SESSION_LINGER_POLL_MS;
		} else if (s->phase == PH_CLOSING) {
			deadline = s->progress_ms + SESSION_LINGER_MS;
		} else if (s->idle_ms > 0) {
			deadline = s->progress_ms + s->idle_ms;
		} else {
			deadline = -1;
		}
		if (deadline >= 0) {
			if (now >= deadline) {
				if (s->phase == PH_CLOSING)
					return; /* the flush stalled */
				start_close(s, CLOSE_IDLE);
				continue;
			}
			ts.tv_sec = (time_t)((deadline - now) / 1000);
			ts.tv_nsec = (long)((deadline - now) % 1000) * 1000000;
		}
		/* The signals are blocked except inside ppoll(): a SIGTERM
		 * can never slip in between the check above and the wait. */
		r = ppoll(&pfd, 1, deadline >= 0 ? &ts : NULL, waitmask);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_warn("ppoll");
			set_reset(s);
			return;
		}
		if (r == 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)) ||
		    !want_read)
			continue;
		if (s->phase == PH_LINGERING) {
			if (discard(s) < 0)
				return;
		} else if (fill(s) < 0) {
			return;
		}
	}
}

/* One report to the parent, before leaving. A full queue (the parent
 * busy) is waited for a moment, never forever. */
static void send_report(struct session *s, int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	struct timespec ts = {SESSION_REPORT_WAIT_S, 0};
	int tries;

	if (fd < 0)
		return;
	s->rep.magic = CONN_REPORT_MAGIC;
	s->rep.reason = (uint32_t)s->reason;
	s->rep.log_dropped = log_dropped_total();
	for (tries = 0; tries < 2; tries++) {
		if (send(fd, &s->rep, sizeof(s->rep),
			 MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 ||
		    (errno != EAGAIN && errno != EINTR))
			return;
		ppoll(&pfd, 1, &ts, NULL);
	}
}

void session_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
		 const struct session_ctx *ctx)
{
	/* The session and its two buffers are one static block: untouched
	 * pages of .bss cost nothing, the first bytes of the input buffer
	 * share a page with the session (one page fault less per connection
	 * than a separate mapping), and there is no mmap() to undo at exit. */
	static struct {
		struct session s;
		uint8_t in[SESSION_BUF_SIZE];
		uint8_t out[SESSION_BUF_SIZE];
	} mem;
	struct session *const s = &mem.s;
	const struct echod_opts *o = ctx->o;
	size_t msgcap = 0;
	uint8_t *msgbuf = NULL;
	int64_t dur;

	/* The signal dispositions stay the parent's: its handlers only set
	 * flags, so a SIGTERM or SIGINT (which the parent sends at shutdown,
	 * and a terminal sends to the whole group) raises *ctx->term;
	 * SIGUSR1, SIGHUP and SIGCHLD set flags nobody here reads, and the
	 * signals the parent ignores stay ignored. Some sigaction() calls and
	 * their page faults less per connection. */
	log_reinit_pid();
	s->fd = fd;
	s->term = ctx->term;
	s->verbose = log_enabled(LOG_LEVEL_DEBUG);
	s->idle_ms = o->idle_timeout * 1000u;
	s->start_ms = s->progress_ms = now_ms();
	s->in = mem.in;
	s->out = mem.out;
	s->peer_sa = peer; /* the parent's accept buffer, ours after fork */
	s->peer_len = peerlen;

	/* Before the first byte from the client is read. */
	if (sandbox_child(ctx->parent) < 0) {
		log_warn("close %s: cannot enter the sandbox", peer_str(s));
		session_exit(1);
	}
	if (o->mode != PROTO_RAW) {
		/* Up to 16 MiB: mapped, so only the pages a message really
		 * uses are ever populated. */
		msgcap = proto_msgbuf_size(o->max_msg);
		msgbuf = mmap(NULL, msgcap, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (msgbuf == MAP_FAILED) {
			/* Served as a close: FIN, linger, the close line. */
			msgbuf = NULL;
			s->engine_end = 1;
			start_close(s, CLOSE_NOMEM);
		}
	}
	if (s->phase == PH_SERVING &&
	    proto_init(&s->p, o->mode, o->delim, o->max_msg, msgbuf, msgcap) !=
		0) {
		log_warnx("close %s: bad engine configuration", peer_str(s));
		session_exit(1);
	}
	if (log_enabled(LOG_LEVEL_INFO))
		log_info("accept %s", peer_str(s));

	serve(s, ctx->waitmask);

	close(fd);
	s->rep.messages = s->p.messages;
	s->rep.protocol_errors = s->p.errors;
	dur = now_ms() - s->start_ms;
	s->rep.duration_ms = dur;
	if (log_enabled(LOG_LEVEL_INFO))
		log_info("close %s in=%llu out=%llu discarded=%llu "
			 "duration=%lld.%03llds reason=%s",
			 peer_str(s), (unsigned long long)s->rep.bytes_in,
			 (unsigned long long)s->rep.bytes_out,
			 (unsigned long long)s->rep.discarded,
			 (long long)(dur / 1000), (long long)(dur % 1000),
			 close_reason_text(s->reason));
	send_report(s, ctx->report_fd);
	session_exit(0);
}
