/*
 * session.c - see session.h. One connection's loop, over the operations
 * of session.h: production passes a socket (conn.c), tests and fuzz
 * targets a simulated peer and kernel.
 *
 * Memory is bounded whatever the client does: one input buffer, one output
 * buffer and the engine's message buffer. Reading stops while the output
 * buffer is full and the input buffer holds what the engine cannot take
 * (back-pressure), so a client that sends but never reads stalls and is
 * closed by the idle timeout.
 *
 * The phases (session.h): SERVING reads, runs the engine and writes.
 * CLOSING (the server closes first: protocol error, idle timeout,
 * shutdown, no memory) reads nothing more; what was read is still echoed
 * and flushed. LINGERING: the sending side is shut down (FIN after the
 * last echo) and input is read and dropped, so that the caller's close()
 * finds no unread data and does not answer with a reset that would
 * destroy echoes still queued (RFC 1122 4.2.2.13); it lasts while the
 * client still takes echoes. A client's half-close is not a phase:
 * SERVING ends when all it is owed is sent.
 */
#include "session.h"

#include <limits.h>
#include <string.h>

int session_init(struct session *s, const struct session_cfg *cfg,
		 const struct session_ops *ops, void *io, uint8_t *in,
		 uint8_t *out, uint8_t *msgbuf, size_t msgcap)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->io = io;
	s->cfg = *cfg;
	s->in = in;
	s->out = out;
	if (cfg->bufsize == 0 || in == NULL || out == NULL)
		return -1;
	s->start_ms = s->progress_ms = ops->now_ms(io);
	if (cfg->mode != PROTO_RAW && msgbuf == NULL) {
		/* Served as a close: FIN, linger, the close reason. */
		if (proto_init(&s->p, PROTO_RAW, 0, PROTO_MAX_MSG_MIN, NULL,
			       0) != 0)
			return -1;
		s->p.mode = cfg->mode;
		s->engine_end = 1;
		s->phase = SESSION_CLOSING;
		s->reason = CLOSE_NOMEM;
		return 0;
	}
	if (proto_init(&s->p, cfg->mode, cfg->delim, cfg->max_msg, msgbuf,
		       msgcap) != 0 ||
	    (cfg->proxy != 0 && proxy_init(&s->px, cfg->proxy) != 0))
		return -1;
	if (ops->echoed != NULL) {
		/* The engine says where messages begin: nothing else here
		 * reads the client's bytes. */
		s->p.marks = s->marks;
		s->p.marks_cap = SESSION_MARKS;
	}
	return 0;
}

/* The server decides to close first: stop reading, flush, then linger. */
static void start_close(struct session *s, enum close_reason why)
{
	if (s->phase != SESSION_SERVING)
		return;
	s->phase = SESSION_CLOSING;
	if (s->reason == CLOSE_NONE || s->reason == CLOSE_EOF)
		s->reason = why;
	/* A flush may stall for at most the linger time from now on. */
	s->progress_ms = s->ops->now_ms(s->io);
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
	return !s->engine_end && s->pipe_cap == 0 &&
	       s->out_len < s->cfg.bufsize &&
	       (s->in_len > 0 || s->in_eof || s->engine_owes);
}

/* Run the engine over the buffered input while there is output room. */
static void pump(struct session *s)
{
	size_t c, prod;
	int r;

	if (s->pipe_cap > 0) {
		/* The pipe is a raw engine that copies nothing: done at the
		 * client's EOF, once the pipe is emptied. */
		if (s->in_eof && !s->engine_end) {
			s->engine_end = 1;
			if (s->reason == CLOSE_NONE)
				s->reason = CLOSE_EOF;
		}
		return;
	}
	while (engine_can_run(s)) {
		r = proto_run(&s->p, s->in + s->in_off, s->in_len, s->in_eof,
			      s->out + s->out_len, s->cfg.bufsize - s->out_len,
			      &c, &prod);
		if (s->ops->echoed != NULL && prod > 0)
			s->ops->echoed(s->io, s->out + s->out_len, prod,
				       s->p.marks, s->p.marks_n);
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

/* Send what is owed; with block, through ops->write_wait, waiting up to
 * deadline. Returns -1 when the connection is gone. */
static int flush(struct session *s, int block, int64_t deadline)
{
	ssize_t n;

	if (s->out_len == s->out_off)
		return 0;
	if (s->pipe_cap > 0)
		n = s->ops->pipe_out(s->io, s->out_len - s->out_off, block,
				     deadline);
	else if (block)
		n = s->ops->write_wait(s->io, s->out + s->out_off,
				       s->out_len - s->out_off, deadline);
	else
		n = s->ops->write(s->io, s->out + s->out_off,
				  s->out_len - s->out_off);
	if (n < 0) {
		set_reset(s);
		return -1;
	}
	if (n > 0) {
		s->out_off += (size_t)n;
		s->rep.bytes_out += (size_t)n;
		s->progress_ms = s->ops->now_ms(s->io);
	}
	if (s->out_off == s->out_len) {
		s->out_off = 0;
		s->out_len = 0;
	}
	return 0;
}

/* Read from the client into the input buffer; with block, through
 * ops->read_wait, waiting up to deadline. Returns -1 when the connection
 * is gone. */
static int fill(struct session *s, int block, int64_t deadline)
{
	void *at;
	size_t room;
	ssize_t n;

	if (s->pipe_cap > 0) {
		/* Only into an empty pipe: its room is counted in slots that
		 * only the kernel sees, so nothing here could tell a full pipe
		 * from a quiet client. */
		n = s->ops->pipe_in(s->io, s->pipe_cap,
				    block ? deadline : s->ops->now_ms(s->io));
		if (n > 0) {
			s->out_len += (size_t)n;
			s->rep.bytes_in += (size_t)n;
			s->progress_ms = s->ops->now_ms(s->io);
			return 0;
		}
		goto none;
	}
	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len);
		s->in_off = 0;
	}
	at = s->in + s->in_len;
	room = s->cfg.bufsize - s->in_len;
	n = block ? s->ops->read_wait(s->io, at, room, deadline)
		  : s->ops->read(s->io, at, room);
	if (n > 0 && (size_t)n == room && s->p.mode == PROTO_RAW)
		s->bulk = 1;
	if (n > 0) {
		s->in_len += (size_t)n;
		s->rep.bytes_in += (size_t)n;
		s->progress_ms = s->ops->now_ms(s->io);
		return 0;
	}
none:
	if (n == SESSION_AGAIN)
		return 0;
	if (n < 0) {
		set_reset(s);
		return -1;
	}
	s->in_eof = 1; /* n == 0 */
	return 0;
}

/* Raw bulk: once a read filled the whole input buffer and nothing is
 * owed, the rest of the connection goes through the pipe, if the caller
 * has one (rr and churn, with their small messages, never get here: a
 * message costs one read and one write either way, and no pipe is made
 * for them). */
static void try_pipe(struct session *s)
{
	if (!s->bulk || s->pipe_tried || s->phase != SESSION_SERVING ||
	    s->ops->pipe_open == NULL || s->ops->echoed != NULL ||
	    s->ops->read_wait == NULL || s->ops->write_wait == NULL ||
	    s->in_len > 0 || s->out_len > s->out_off || s->in_eof ||
	    s->engine_end)
		return;
	s->pipe_tried = 1;
	s->pipe_cap = s->ops->pipe_open(s->io);
	s->out_len = s->out_off = 0;
}

/* LINGERING: read and drop what the client still sends, so that close()
 * finds an empty receive queue. Returns 1 when bytes were dropped, 0 when
 * none were there, -1 at the client's EOF or on error: nothing more to
 * wait for. */
static int discard(struct session *s)
{
	/* The input buffer is free once lingering. */
	ssize_t n = s->ops->read(s->io, s->in, s->cfg.bufsize);

	if (n == SESSION_AGAIN)
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
	s->ops->shutdown_wr(s->io);
	s->phase = SESSION_LINGERING;
	s->rep.bytes_in -= s->in_len;
	s->rep.discarded += s->in_len;
	s->in_len = 0;
	s->in_off = 0;
	s->outq = INT_MAX;
	s->progress_ms = s->ops->now_ms(s->io);
}

/* LINGERING: whether to go on. The count of unacknowledged bytes (the
 * FIN included) says whether the client still takes echoes: 0 means it
 * has them all, a smaller count than before means progress. */
static int linger_more(struct session *s, int64_t now)
{
	int q, k;

	if (s->in_eof)
		return 0; /* nothing unread: close() sends FIN, no reset */
	q = s->ops->outq(s->io);
	if (q == 0) {
		/* All delivered. Drop what already arrived, so that close()
		 * sends a reset only if more comes later. */
		for (k = 0; k < 16 && discard(s) > 0; k++)
			;
		return 0;
	}
	if (q > 0 && q < s->outq) {
		s->outq = q;
		s->progress_ms = now;
	}
	return now < s->progress_ms + (int64_t)s->cfg.linger_ms;
}

/* Serving: when the connection counts as idle (-1: never). */
static int64_t idle_deadline(const struct session *s)
{
	return s->cfg.idle_ms > 0 ? s->progress_ms + s->cfg.idle_ms : -1;
}

/* One turn's decision: what to wait for and until when. Returns 0 to
 * wait, 1 to go round again at once, -1 when the session is over. */
static int plan(struct session *s, int *events, int64_t *deadline)
{
	int64_t now;
	int pending, want_read;

	pending = s->out_len > s->out_off;
	if (s->phase == SESSION_SERVING && s->engine_end && !pending) {
		if (s->reason == CLOSE_EOF)
			return -1; /* half-close served in full */
		start_close(s, s->reason);
	}
	if (s->phase == SESSION_CLOSING && !pending) {
		start_linger(s);
		if (s->in_eof)
			return -1;
	}
	now = s->ops->now_ms(s->io);
	if (s->phase == SESSION_LINGERING && !linger_more(s, now))
		return -1;
	/* While flushing before a server-side close nothing is read: a client
	 * that floods without reading must not keep us busy; only the
	 * lingering close reads (and drops) input. */
	if (s->phase == SESSION_SERVING)
		want_read =
		    !s->in_eof && !s->engine_end &&
		    (s->pipe_cap > 0 ? !pending : s->in_len < s->cfg.bufsize);
	else
		want_read = s->phase == SESSION_LINGERING;
	*events =
	    (want_read ? SESSION_EV_IN : 0) | (pending ? SESSION_EV_OUT : 0);
	if (*events == 0)
		return -1;

	if (s->phase == SESSION_LINGERING)
		*deadline = now + s->cfg.linger_poll_ms;
	else if (s->phase == SESSION_CLOSING)
		*deadline = s->progress_ms + s->cfg.linger_ms;
	else
		*deadline = idle_deadline(s);
	if (*deadline >= 0 && now >= *deadline) {
		if (s->phase == SESSION_CLOSING)
			return -1; /* the flush stalled */
		start_close(s, CLOSE_IDLE);
		return 1;
	}
	return 0;
}

/* The header could not be had: close as the engine would after an
 * error (FIN, linger), or end at once at the client's EOF before any of
 * it (a health check that connects and leaves). */
static void header_fail(struct session *s, enum close_reason why)
{
	s->engine_end = 1;
	if (why == CLOSE_EOF) {
		s->reason = CLOSE_EOF;
		return;
	}
	if (why == CLOSE_PROXY_BAD || why == CLOSE_PROXY_TIMEOUT)
		s->rep.protocol_errors++;
	start_close(s, why);
}

/* The PROXY header, before the engine sees a byte: read with its own
 * deadline (a peer that trickles it cannot hold the child longer, and
 * the idle timeout, which any byte renews, does not replace it), parsed
 * as it comes. The parser takes no byte past the header, so what follows
 * it in the same read stays in the input buffer, the engine's. Returns -1
 * when the session is over, else 0 (served on, or closing). */
static int read_header(struct session *s)
{
	int64_t deadline = s->start_ms + (int64_t)s->cfg.proxy_ms;
	struct proxy_result r;
	size_t c;
	int st;

	for (;;) {
		if (s->in_len > 0) {
			st = proxy_parse(&s->px, s->in + s->in_off, s->in_len,
					 &c, &r);
			s->in_off += c;
			s->in_len -= c;
			s->rep.bytes_in -= c; /* the header is not the data */
			if (s->in_len == 0)
				s->in_off = 0;
			if (st == PROXY_DONE)
				break;
			if (st < 0) {
				header_fail(s, CLOSE_PROXY_BAD);
				return 0;
			}
		}
		if (s->in_eof) {
			header_fail(s, s->px.pos > 0 ? CLOSE_PROXY_BAD
						     : CLOSE_EOF);
			return 0;
		}
		if (s->ops->stopping(s->io)) {
			header_fail(s, CLOSE_SHUTDOWN);
			return 0;
		}
		if (s->ops->now_ms(s->io) >= deadline) {
			header_fail(s, CLOSE_PROXY_TIMEOUT);
			return 0;
		}
		if (s->ops->read_wait != NULL) {
			if (fill(s, 1, deadline) < 0)
				return -1;
			continue;
		}
		/* What arrived while we forked first, then wait. */
		if (fill(s, 0, -1) < 0)
			return -1;
		if (s->in_len == 0 && !s->in_eof &&
		    s->ops->wait(s->io, SESSION_EV_IN, deadline) < 0) {
			set_reset(s);
			return -1;
		}
	}
	if (s->ops->proxied != NULL && s->ops->proxied(s->io, &r) < 0) {
		s->reason = CLOSE_REJECTED;
		return -1;
	}
	s->bulk = 0;
	s->progress_ms = s->ops->now_ms(s->io);
	return 0;
}

/* While serving, with the blocking operations: wait inside the read or
 * the write (a blocking server's two calls per message) rather than in
 * ops->wait. Pending output is sent first; reading resumes once it is
 * gone (the back-pressure is the same: nothing is read while the client
 * does not take its echoes). Returns 1 when done so, 0 when the caller
 * must wait, -1 when the connection is gone. */
static int serve_blocking(struct session *s, int events, int64_t deadline)
{
	if (s->phase != SESSION_SERVING)
		return 0;
	if (events & SESSION_EV_OUT)
		return s->ops->write_wait == NULL  ? 0
		       : flush(s, 1, deadline) < 0 ? -1
						   : 1;
	return s->ops->read_wait == NULL  ? 0
	       : fill(s, 1, deadline) < 0 ? -1
					  : 1;
}

void session_serve(struct session *s)
{
	int64_t deadline = -1;
	int ev, events = 0, r;

	/* The client's first bytes have usually arrived while we forked:
	 * read before the first wait, saving a wait per connection (a
	 * blocking read returns them at once anyway). */
	if (s->phase == SESSION_SERVING && s->cfg.proxy != 0) {
		if (read_header(s) < 0)
			goto done;
	} else if (s->phase == SESSION_SERVING && s->ops->read_wait == NULL &&
		   fill(s, 0, -1) < 0) {
		goto done;
	}
	for (;;) {
		if (s->phase == SESSION_SERVING && s->ops->stopping(s->io))
			start_close(s, CLOSE_SHUTDOWN);
		if (s->out_off > 0) {
			if (s->pipe_cap == 0)
				memmove(s->out, s->out + s->out_off,
					s->out_len - s->out_off);
			s->out_len -= s->out_off;
			s->out_off = 0;
		}
		pump(s);
		/* Serving with write_wait, the echo is written as a blocking
		 * server writes it: whole, waiting up to the idle deadline. */
		if (s->phase == SESSION_SERVING && s->ops->write_wait != NULL)
			r = flush(s, 1, idle_deadline(s));
		else
			r = flush(s, 0, -1);
		if (r < 0)
			goto done;
		try_pipe(s);
		/* Room freed by the write: let the engine go on first. */
		if (engine_can_run(s))
			continue;
		r = plan(s, &events, &deadline);
		if (r < 0)
			goto done;
		if (r > 0)
			continue;
		r = serve_blocking(s, events, deadline);
		if (r < 0)
			goto done;
		if (r > 0)
			continue;
		ev = s->ops->wait(s->io, events, deadline);
		if (ev < 0) {
			set_reset(s);
			goto done;
		}
		if (!(ev & SESSION_EV_IN) || !(events & SESSION_EV_IN))
			continue;
		if (s->phase == SESSION_LINGERING) {
			if (discard(s) < 0)
				goto done;
		} else if (fill(s, 0, -1) < 0) {
			goto done;
		}
	}
done:
	s->rep.messages = s->p.messages;
	s->rep.protocol_errors += s->p.errors;
	s->rep.reason = (uint32_t)s->reason;
	s->phase = SESSION_DONE;
}
