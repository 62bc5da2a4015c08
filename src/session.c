/*
 * session.c - a child serving its one connection: read, proto_run, write,
 * over a non-blocking socket and ppoll(), inside the seccomp sandbox.
 *
 * Memory is bounded whatever the client does: one input buffer, one output
 * buffer and the engine's message buffer. Reading stops while the output
 * buffer is full and the input buffer holds what the engine cannot take
 * (back-pressure), so a client that sends but never reads stalls and is
 * closed by the idle timeout.
 */
#define _GNU_SOURCE /* accept4, ppoll, memfd_create */
#include "session.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "proto.h"
#include "sandbox.h"
#include "server.h"
#include "stats.h"

enum reason {
	REASON_NONE = 0,
	REASON_EOF,
	REASON_IDLE,
	REASON_TOO_LARGE,
	REASON_TRUNCATED,
	REASON_ENGINE,
	REASON_RESET,
	REASON_SHUTDOWN,
};

/* The close reasons, exactly as SPEC section 3 and the log parsers know
 * them. */
static const char *const reason_text[] = {
    [REASON_NONE] = "eof",
    [REASON_EOF] = "eof",
    [REASON_IDLE] = "idle-timeout",
    [REASON_TOO_LARGE] = "protocol-error: frame too large",
    [REASON_TRUNCATED] = "protocol-error: truncated frame",
    [REASON_ENGINE] = "protocol-error: bad arguments",
    [REASON_RESET] = "reset",
    [REASON_SHUTDOWN] = "shutdown",
};

struct session {
	int fd;
	int verbose;
	uint32_t idle_ms; /* 0: never */
	struct proto p;
	uint8_t *in, *out;
	size_t in_off, in_len;	 /* unconsumed input: in[in_off..+in_len) */
	size_t out_off, out_len; /* unsent output: out[out_off..out_len) */
	int in_eof;		 /* the client shut down its sending side */
	int engine_end;		 /* proto_run returned DONE or an error */
	int engine_owes; /* proto_run said NEED_OUTPUT: it holds output */
	int closing;	 /* the server closes first (reason set) */
	int wr_shut;	 /* shutdown(SHUT_WR) done: lingering */
	enum reason reason;
	uint64_t bytes_in, bytes_out, messages, errors;
	int64_t start_ms, progress_ms, linger_end_ms;
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

/* Raised when the parent's shutdown flag is seen after a wake-up. */
static int session_term;

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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* The server decides to close first: flush, shut down, linger. */
static void start_close(struct session *s, enum reason why)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->reason == REASON_NONE || s->reason == REASON_EOF)
		s->reason = why;
	/* A flush may stall for at most the linger time from now on. */
	s->progress_ms = now_ms();
}

static void set_reset(struct session *s)
{
	if (s->reason == REASON_NONE || s->reason == REASON_EOF)
		s->reason = REASON_RESET;
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
	int r, eof;

	while (engine_can_run(s)) {
		eof = s->in_eof;
		r = proto_run(&s->p, s->in + s->in_off, s->in_len, eof,
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
		if (s->p.messages != s->messages) {
			stats_add(&stats->messages,
				  s->p.messages - s->messages);
			s->messages = s->p.messages;
		}
		if (s->p.errors != s->errors) {
			stats_add(&stats->protocol_errors,
				  s->p.errors - s->errors);
			s->errors = s->p.errors;
		}
		if (r == PROTO_DONE) {
			s->engine_end = 1;
			if (s->reason == REASON_NONE)
				s->reason = REASON_EOF;
		} else if (r < 0) {
			s->engine_end = 1;
			start_close(s, r == PROTO_E_TOO_LARGE ? REASON_TOO_LARGE
				       : r == PROTO_E_TRUNCATED
					   ? REASON_TRUNCATED
					   : REASON_ENGINE);
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
		s->bytes_out += (size_t)n;
		stats_add(&stats->bytes_out, (uint64_t)n);
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
	s->bytes_in += (size_t)n;
	stats_add(&stats->bytes_in, (uint64_t)n);
	s->progress_ms = now_ms();
	return 0;
}

/* While closing: read and drop what the client still sends, so that our
 * close() finds an empty receive queue and sends FIN, not RST. Returns -1
 * at the client's EOF or on error: nothing more to wait for. */
static int discard(struct session *s)
{
	uint8_t scratch[4096];
	ssize_t n = net_read(s->fd, scratch, sizeof(scratch));

	if (n == NET_AGAIN)
		return 0;
	if (n <= 0) {
		s->in_eof = 1;
		return -1;
	}
	s->bytes_in += (size_t)n;
	stats_add(&stats->bytes_in, (uint64_t)n);
	return 0;
}

static void serve(struct session *s, const sigset_t *waitmask)
{
	struct pollfd pfd;
	struct timespec ts;
	int64_t deadline, now;
	int r, pending, want_read;

	/* The client's first bytes have usually arrived while we forked:
	 * read before the first wait, saving a ppoll() per connection. */
	if (fill(s) < 0)
		return;
	for (;;) {
		if ((session_term || server_stopping()) && !s->closing)
			start_close(s, REASON_SHUTDOWN);
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
		if (s->engine_end && !pending && !s->closing) {
			if (s->reason == REASON_EOF)
				return; /* half-close served in full */
			start_close(s, s->reason);
		}
		if (s->closing && !pending && !s->wr_shut) {
			shutdown(s->fd, SHUT_WR);
			s->wr_shut = 1;
			s->linger_end_ms = now_ms() + SESSION_LINGER_MS;
			if (s->in_eof)
				return;
		}
		/* While flushing before a server-side close nothing is read:
		 * a client that floods without reading must not keep us busy;
		 * only the lingering close reads (and drops) input. */
		if (s->closing)
			want_read = s->wr_shut && !s->in_eof;
		else
			want_read = !s->in_eof && !s->engine_end &&
				    s->in_len < SESSION_BUF_SIZE;
		pfd.fd = s->fd;
		pfd.events =
		    (short)((want_read ? POLLIN : 0) | (pending ? POLLOUT : 0));
		pfd.revents = 0;
		if (pfd.events == 0)
			return;

		if (s->wr_shut)
			deadline = s->linger_end_ms;
		else if (s->closing)
			deadline = s->progress_ms + SESSION_LINGER_MS;
		else if (s->idle_ms > 0)
			deadline = s->progress_ms + s->idle_ms;
		else
			deadline = -1;
		if (deadline >= 0) {
			now = now_ms();
			if (now >= deadline) {
				if (s->closing)
					return; /* flush stalled or linger
						   over */
				start_close(s, REASON_IDLE);
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
		/* A ready descriptor makes ppoll() return with the signals it
		 * unblocked still pending (see server.c), so a busy connection
		 * would not see SIGTERM: the parent raises the shared shutdown
		 * flag before it signals, and a memory load here costs no
		 * system call per wake-up. */
		if (r > 0 && stats_get(&stats->shutdown))
			session_term = 1;
		if (r == 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)) ||
		    !want_read)
			continue;
		if (s->closing) {
			if (discard(s) < 0)
				return;
		} else if (fill(s) < 0) {
			return;
		}
	}
}

void session_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
		 const struct echod_opts *o, int listen_fd,
		 const sigset_t *waitmask)
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
	size_t msgcap = 0;
	uint8_t *msgbuf = NULL;
	int64_t dur;

	/* The signal dispositions stay the parent's: its handlers only set
	 * flags, so a SIGTERM or SIGINT (which the parent sends at shutdown,
	 * and a terminal sends to the whole group) raises the flag that
	 * server_stopping() reads; SIGUSR1 and SIGCHLD set flags nobody here
	 * reads. Four sigaction() calls and their page faults less per
	 * connection. */
	close(listen_fd);
	log_reinit_pid();

	s->fd = fd;
	s->verbose = log_enabled(LOG_LEVEL_DEBUG);
	s->idle_ms = o->idle_timeout * 1000u;
	s->start_ms = s->progress_ms = now_ms();
	s->in = mem.in;
	s->out = mem.out;
	s->peer_sa = peer; /* the parent's accept buffer, ours after fork */
	s->peer_len = peerlen;

	if (o->mode != PROTO_RAW) {
		/* Up to 16 MiB: mapped, so only the pages a message really
		 * uses are ever populated. */
		msgcap = proto_msgbuf_size(o->max_msg);
		msgbuf = mmap(NULL, msgcap, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (msgbuf == MAP_FAILED) {
			log_warn("close %s: mmap %zu bytes", peer_str(s),
				 msgcap);
			session_exit(1);
		}
	}
	if (proto_init(&s->p, o->mode, o->delim, o->max_msg, msgbuf, msgcap) !=
	    0) {
		log_warnx("close %s: bad engine configuration", peer_str(s));
		session_exit(1);
	}
	/* Before the first byte from the client is read. */
	if (sandbox_enter() < 0) {
		log_warn("close %s: cannot enter the sandbox", peer_str(s));
		session_exit(1);
	}
	if (log_enabled(LOG_LEVEL_INFO))
		log_info("accept %s", peer_str(s));

	serve(s, waitmask);

	close(fd);
	if (s->reason == REASON_IDLE)
		stats_add(&stats->idle_timeouts, 1);
	else if (s->reason == REASON_RESET)
		stats_add(&stats->resets, 1);
	if (log_enabled(LOG_LEVEL_INFO)) {
		dur = now_ms() - s->start_ms;
		log_info("close %s in=%llu out=%llu duration=%lld.%03llds "
			 "reason=%s",
			 peer_str(s), (unsigned long long)s->bytes_in,
			 (unsigned long long)s->bytes_out,
			 (long long)(dur / 1000), (long long)(dur % 1000),
			 reason_text[s->reason]);
	}
	session_exit(0);
}
