/*
 * session_fuzz.c - fuzz target of one connection's loop (src/session.c),
 * the production code unchanged, driven through its operations by a
 * simulated peer and kernel that the fuzz input controls (SPEC section 6).
 *
 * Input: a 9-byte header (mode, delimiter, --max-msg, buffer size, idle
 * and linger timeouts, the client's stream length), the client's bytes,
 * then a schedule: one byte is taken each time the session calls an
 * operation and says what the simulated world does (how many bytes a read
 * or a write moves, EAGAIN, a reset, the client's half-close, readiness,
 * how far the clock jumps, a shutdown request). When the schedule runs
 * out the world turns benign (everything arrives, the client reads all,
 * time passes) and the session must finish within a bounded number of
 * calls.
 *
 * Oracle, checked at every call and at the end:
 * - delivered bytes are, in order and without gap or duplicate, a prefix
 *   of what the engine produces for the bytes the session consumed (a
 *   fresh engine run over them is the reference), and all of it when the
 *   session ends with nothing pending and no reset;
 * - memory stays bounded: buffers within their size, the engine within
 *   its message bound;
 * - no spin: between two waits at most a few calls may make no progress;
 * - the sending side is shut down only after everything owed is flushed;
 * - the close reason matches what happened (a reset only after an error,
 *   shutdown only after a request, idle only after the clock passed the
 *   idle timeout, eof only after the client's half-close);
 * Header byte 6: 0xff no message buffer; else bit 6 -v (ops->echoed),
 * bit 5 the blocking operations (read_wait, write_wait), bit 4 the pipe
 * (pipe_open returns 0 to 15 from bits 0-3: 0 refuses it).
 * - with -v (header byte 6 bit 6): what ops->echoed is shown is, in order,
 *   a prefix of the reference output that covers everything delivered, and
 *   its message marks are the reference engine's marks for that prefix.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_LEN	   9u
#define BUF_MAX	   64u	 /* largest session buffer tried */
#define MSG_MAX	   48u	 /* largest --max-msg tried */
#define STREAM_MAX 4096u /* longest client stream */
/* Most the engine can make of it: an "ERR too long" reply (13 bytes) for
 * every 2 bytes (--max-msg 1). */
#define OUT_MAX (STREAM_MAX * 7 + 64)
/* Calls without progress allowed between two waits. The loop needs a
 * few (a write that takes nothing, a read that finds nothing, the send
 * queue); more means it spins. */
#define SPIN_MAX 8
/* Calls allowed after the schedule ran out: a benign world must let the
 * session finish. */
#define BENIGN_MAX 200000

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(what, __LINE__);                                  \
	} while (0)

static void fail(const char *what, int line)
{
	fprintf(stderr,
		"session_fuzz: oracle violated: %s (session_fuzz.c:%d)\n", what,
		line);
	abort();
}

/* The simulated world. */
struct sim {
	struct session *s;
	/* the client's stream and how much of it is in the kernel's receive
	 * queue (arrived) and read by the session */
	const uint8_t *stream;
	size_t stream_len, arrived, read_off;
	int half_closed; /* the client sent FIN after the stream */
	/* what the client received */
	uint8_t delivered[OUT_MAX];
	size_t delivered_len;
	size_t unacked; /* written, not acknowledged (outq) */
	int fin_sent, fin_acked;
	/* the schedule */
	const uint8_t *sched;
	size_t sched_len, sched_off;
	long benign_calls;
	/* time and requests */
	int64_t now;
	int stop;
	int64_t stop_at;	  /* when the stop was requested (-1: never) */
	int errored;		  /* an operation returned an error */
	int64_t last_progress_ms; /* as the harness sees it */
	int spin;		  /* calls without progress since a wait */
	int waits;
	uint32_t idle_ms;
	/* the pipe (header byte 6 bit 4): what the session moved into it and
	 * not yet out, as the kernel would hold it */
	size_t pipe_cap, pipe_len;
	uint8_t pipe[BUF_MAX];
	/* -v: what ops->echoed was shown, and where messages begin in it
	 * (the arrays last: a run clears the struct up to them) */
	size_t echoed_len, nmarks;
	uint8_t echoed[OUT_MAX];
	struct proto_mark marks[STREAM_MAX + 2];
};

/* The next schedule byte, or -1 once the world is benign. */
static int next(struct sim *w)
{
	if (w->sched_off < w->sched_len)
		return w->sched[w->sched_off++];
	CHECK(++w->benign_calls < BENIGN_MAX,
	      "the session does not finish in a benign world");
	return -1;
}

static void no_progress(struct sim *w)
{
	CHECK(++w->spin <= SPIN_MAX,
	      "calls without progress and no wait (spin)");
}

static void progress(struct sim *w)
{
	w->spin = 0;
	w->last_progress_ms = w->now;
}

static void check_bounds(const struct session *s)
{
	CHECK(s->in_off + s->in_len <= s->cfg.bufsize, "input buffer overrun");
	CHECK(s->out_off <= s->out_len &&
		  s->out_len <=
		      (s->pipe_cap > 0 ? s->pipe_cap : s->cfg.bufsize),
	      "output buffer overrun");
	CHECK(proto_pending(&s->p) <= s->cfg.max_msg + PROTO_MSGBUF_SLACK,
	      "engine holds more than one message");
}

static ssize_t op_read(void *io, void *buf, size_t len)
{
	struct sim *w = io;
	int b = next(w);
	size_t avail, n;

	check_bounds(w->s);
	CHECK(len > 0, "read of 0 bytes");
	/* More of the stream arrives. */
	if (b < 0)
		w->arrived = w->stream_len;
	else if ((b & 0xc0) != 0xc0)
		w->arrived += (size_t)(b & 0x3f);
	if (w->arrived > w->stream_len)
		w->arrived = w->stream_len;
	if (b >= 0 && b == 0xff) {
		w->errored = 1;
		return -1; /* ECONNRESET */
	}
	if (b < 0 || (b & 0xe0) == 0xc0)
		w->half_closed = w->arrived == w->stream_len;
	avail = w->arrived - w->read_off;
	if (avail == 0) {
		if (w->half_closed) {
			progress(w);
			return 0;
		}
		no_progress(w);
		return SESSION_AGAIN;
	}
	n = avail < len ? avail : len;
	if (b >= 0 && (b & 7) != 0 && n > (size_t)(b & 7))
		n = (size_t)(b & 7); /* a short read */
	memcpy(buf, w->stream + w->read_off, n);
	w->read_off += n;
	progress(w);
	return (ssize_t)n;
}

static ssize_t op_write(void *io, const void *buf, size_t len)
{
	struct sim *w = io;
	int b = next(w);
	size_t n = len;

	check_bounds(w->s);
	CHECK(len > 0, "write of 0 bytes");
	CHECK(!w->fin_sent, "write after shutdown(SHUT_WR)");
	if (b >= 0) {
		if (b == 0xfe) {
			w->errored = 1;
			return -1; /* EPIPE */
		}
		if ((b & 0x0f) == 0) {
			no_progress(w);
			return 0; /* the socket is full */
		}
		if (n > (size_t)(b & 0x0f))
			n = (size_t)(b & 0x0f);
	}
	CHECK(w->delivered_len + n <= sizeof(w->delivered),
	      "more output than the engine can produce");
	memcpy(w->delivered + w->delivered_len, buf, n);
	w->delivered_len += n;
	w->unacked += n;
	progress(w);
	return (ssize_t)n;
}

static void op_shutdown_wr(void *io)
{
	struct sim *w = io;
	const struct session *s = w->s;

	CHECK(!w->fin_sent, "shutdown(SHUT_WR) twice");
	/* Everything owed is flushed: nothing buffered, nothing more the
	 * engine could produce now. */
	CHECK(s->out_len == s->out_off, "shutdown before the flush");
	CHECK(s->engine_end || !s->engine_owes,
	      "shutdown while the engine still holds output");
	w->fin_sent = 1;
	progress(w);
}

static int op_outq(void *io)
{
	struct sim *w = io;

	no_progress(w);
	return (int)w->unacked + (w->fin_sent && !w->fin_acked);
}

static int op_wait(void *io, int events, int64_t deadline)
{
	struct sim *w = io;
	int b = next(w), ev = 0;
	int64_t step;

	check_bounds(w->s);
	CHECK(events != 0, "wait for nothing");
	CHECK((events & ~(SESSION_EV_IN | SESSION_EV_OUT)) == 0,
	      "wait for unknown events");
	w->spin = 0;
	w->waits++;
	if (b == 0xfd) {
		w->errored = 1;
		return -1; /* ppoll failed */
	}
	/* The clock: to the deadline, a little, or far past it. */
	if (b < 0)
		step = deadline >= 0 ? deadline - w->now : 10;
	else if ((b & 0x30) == 0x30)
		step = deadline >= 0 ? deadline - w->now : 1000;
	else if ((b & 0x30) == 0x20)
		step = (int64_t)w->idle_ms * 2 + 5000; /* a jump */
	else
		step = b & 0x0f;
	if (step < 0)
		step = 0;
	w->now += step;
	/* The client reads: acknowledgements. */
	if (b < 0 || (b & 0x40))
		w->unacked = 0;
	else if (w->unacked > 0)
		w->unacked -= w->unacked / 2 + 1 > w->unacked
				  ? w->unacked
				  : w->unacked / 2 + 1;
	if (w->fin_sent && w->unacked == 0 && (b < 0 || (b & 0x80)))
		w->fin_acked = 1;
	/* A shutdown request, once. */
	if (b >= 0 && (b & 0xcf) == 0x8f && !w->stop) {
		w->stop = 1;
		w->stop_at = w->now;
	}
	/* Readiness: reported only when true, or spuriously. */
	if ((events & SESSION_EV_IN) &&
	    (w->read_off < w->stream_len || w->half_closed || b < 0))
		ev |= SESSION_EV_IN;
	if (events & SESSION_EV_OUT)
		ev |= SESSION_EV_OUT;
	if (b >= 0 && (b & 0x0f) == 0x0e)
		ev = events; /* spurious wake-up */
	return ev;
}

static int64_t op_now(void *io)
{
	return ((struct sim *)io)->now;
}

static int op_stopping(void *io)
{
	return ((struct sim *)io)->stop;
}

static void op_echoed(void *io, const uint8_t *out, size_t n,
		      const struct proto_mark *m, size_t nm)
{
	struct sim *w = io;
	size_t k;

	CHECK(n > 0 && w->echoed_len + n <= sizeof(w->echoed),
	      "echoed: empty or more than the engine can make");
	CHECK(nm <= SESSION_MARKS, "echoed: more marks than slots");
	for (k = 0; k < nm; k++) {
		CHECK(m[k].off < n && (k == 0 || m[k].off > m[k - 1].off),
		      "echoed: a mark outside this output");
		CHECK(w->nmarks < sizeof(w->marks) / sizeof(w->marks[0]),
		      "echoed: more marks than messages");
		w->marks[w->nmarks] = m[k];
		w->marks[w->nmarks++].off += w->echoed_len;
	}
	memcpy(w->echoed + w->echoed_len, out, n);
	w->echoed_len += n;
}

/* The pipe (header byte 6 bit 4): its capacity from the header, 0 to
 * refuse; moves in and out through the simulated socket. */
static size_t op_pipe_open(void *io)
{
	struct sim *w = io;

	CHECK(w->s->p.mode == PROTO_RAW, "a pipe outside raw mode");
	CHECK(w->s->in_len == 0 && w->s->out_len == w->s->out_off,
	      "a pipe opened while bytes are owed");
	return w->pipe_cap;
}

static ssize_t op_pipe_in(void *io, size_t len, int64_t deadline)
{
	struct sim *w = io;
	ssize_t n;
	int ev;

	CHECK(w->pipe_len == 0, "pipe_in into a pipe that holds bytes");
	CHECK(len > 0 && len <= w->pipe_cap, "pipe_in beyond the pipe");
	ev = op_wait(io, SESSION_EV_IN, deadline);
	if (ev < 0)
		return -1;
	if (!(ev & SESSION_EV_IN))
		return SESSION_AGAIN;
	n = op_read(io, w->pipe, len);
	if (n > 0)
		w->pipe_len = (size_t)n;
	return n;
}

static ssize_t op_pipe_out(void *io, size_t len, int block, int64_t deadline)
{
	struct sim *w = io;
	ssize_t n;

	CHECK(len == w->pipe_len, "pipe_out of other than what the pipe holds");
	if (block) {
		int ev = op_wait(io, SESSION_EV_OUT, deadline);

		if (ev < 0)
			return -1;
		if (!(ev & SESSION_EV_OUT))
			return 0;
	}
	n = op_write(io, w->pipe, len);
	if (n > 0) {
		memmove(w->pipe, w->pipe + n, w->pipe_len - (size_t)n);
		w->pipe_len -= (size_t)n;
	}
	return n;
}

static const struct session_ops sim_ops = {
    .read = op_read,
    .write = op_write,
    .shutdown_wr = op_shutdown_wr,
    .outq = op_outq,
    .wait = op_wait,
    .now_ms = op_now,
    .stopping = op_stopping,
};

/* The blocking operations (header byte 6 bit 5), as conn.c's behave: a
 * wait, then the call, with the schedule deciding both. */
static ssize_t op_read_wait(void *io, void *buf, size_t len, int64_t deadline)
{
	int ev = op_wait(io, SESSION_EV_IN, deadline);

	if (ev < 0)
		return -1;
	return ev & SESSION_EV_IN ? op_read(io, buf, len) : SESSION_AGAIN;
}

static ssize_t op_write_wait(void *io, const void *buf, size_t len,
			     int64_t deadline)
{
	int ev = op_wait(io, SESSION_EV_OUT, deadline);

	if (ev < 0)
		return -1;
	return ev & SESSION_EV_OUT ? op_write(io, buf, len) : 0;
}

/* The reference: a fresh engine over the consumed bytes, whole, with and
 * without the end of input. */
static size_t reference(const struct session_cfg *c, const uint8_t *in,
			size_t n, int eof, uint8_t *out, size_t cap,
			struct proto_mark *marks, size_t *nmarks)
{
	static uint8_t msgbuf[MSG_MAX + PROTO_MSGBUF_SLACK];
	struct proto p;
	size_t used, made;
	int r;

	CHECK(proto_init(&p, c->mode, c->delim, c->max_msg, msgbuf,
			 sizeof(msgbuf)) == 0,
	      "reference engine configuration");
	p.marks = marks;
	p.marks_cap = STREAM_MAX + 2;
	r = proto_run(&p, in, n, eof, out, cap, &used, &made);
	*nmarks = p.marks_n;
	CHECK(r != PROTO_NEED_OUTPUT, "reference output too small");
	return made;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t delims[] = {'\n', 0, ';', 0xff};
	static uint8_t in[BUF_MAX], out[BUF_MAX];
	static uint8_t msgbuf[MSG_MAX + PROTO_MSGBUF_SLACK];
	static uint8_t ref_eof[OUT_MAX], ref_no[OUT_MAX];
	static struct proto_mark ref_marks[STREAM_MAX + 2];
	static struct sim w;
	struct session_cfg cfg;
	struct session s;
	size_t n_eof, n_no, consumed, nref, k;
	static struct session_ops ops;
	int nomem, verbose;

	if (size < HDR_LEN)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.mode = (enum proto_mode)(data[0] % 3);
	cfg.delim = delims[data[1] & 3];
	cfg.max_msg = 1 + data[2] % MSG_MAX;
	cfg.bufsize = 1 + data[3] % BUF_MAX;
	cfg.idle_ms = (data[4] & 0x80) ? 0 : 100u * (data[4] & 0x7f);
	cfg.linger_ms = 1 + data[5] * 10u;
	cfg.linger_poll_ms = 1 + (data[5] & 0x0f);
	nomem = cfg.mode != PROTO_RAW && (data[6] & 0x80) && data[6] == 0xff;
	verbose = (data[6] & 0x40) != 0;
	ops = sim_ops;
	if (verbose)
		ops.echoed = op_echoed;
	if (data[6] & 0x20) {
		ops.read_wait = op_read_wait;
		ops.write_wait = op_write_wait;
	}
	if (data[6] & 0x10) {
		ops.pipe_open = op_pipe_open;
		ops.pipe_in = op_pipe_in;
		ops.pipe_out = op_pipe_out;
	}

	memset(&w, 0, offsetof(struct sim, echoed));
	w.stream = data + HDR_LEN;
	w.stream_len = ((size_t)(data[7] & 0x0f) << 8 | data[8]);
	if (w.stream_len > size - HDR_LEN)
		w.stream_len = size - HDR_LEN;
	w.sched = w.stream + w.stream_len;
	w.sched_len = size - HDR_LEN - w.stream_len;
	w.now = 1000;
	w.stop_at = -1;
	w.idle_ms = cfg.idle_ms;
	w.pipe_cap = data[6] & 0x0f;
	w.s = &s;

	CHECK(session_init(&s, &cfg, &ops, &w, in, out, nomem ? NULL : msgbuf,
			   nomem ? 0 : proto_msgbuf_size(cfg.max_msg)) == 0,
	      "session_init refused a valid configuration");
	w.last_progress_ms = w.now;
	session_serve(&s);
	CHECK(s.phase == SESSION_DONE, "session_serve returned before done");

	/* The bytes the engine consumed: read minus dropped. */
	consumed = (size_t)s.rep.bytes_in;
	CHECK(s.rep.bytes_in + s.rep.discarded == w.read_off,
	      "in + discarded differs from the bytes read");
	n_no = reference(&cfg, w.stream, consumed, 0, ref_no, sizeof(ref_no),
			 ref_marks, &nref);
	n_eof = reference(&cfg, w.stream, consumed, 1, ref_eof, sizeof(ref_eof),
			  ref_marks, &nref);
	CHECK(s.rep.bytes_out == w.delivered_len,
	      "out= differs from delivered");
	/* In order, no gap, no duplicate: a prefix of the reference. The
	 * output without the end of input is a prefix of the one with it. */
	CHECK(w.delivered_len <= n_eof &&
		  memcmp(w.delivered, ref_eof, w.delivered_len) == 0,
	      "delivered bytes are not a prefix of the engine's output");
	if (!w.errored && s.out_len == s.out_off && s.reason != CLOSE_NOMEM)
		CHECK(w.delivered_len == n_eof || w.delivered_len == n_no,
		      "ended with nothing pending but not all was delivered");
	if (nomem)
		CHECK(s.reason == CLOSE_NOMEM && w.delivered_len == 0,
		      "no message buffer: must close as out of memory");
	if (verbose && !nomem) {
		/* Everything written was shown first, as the engine made it. */
		CHECK(w.echoed_len >= w.delivered_len &&
			  w.echoed_len <= n_eof &&
			  memcmp(w.echoed, ref_eof, w.echoed_len) == 0,
		      "-v: echoed is not the engine's output");
		CHECK(w.nmarks <= nref, "-v: more marks than messages");
		for (k = 0; k < w.nmarks; k++)
			CHECK(w.marks[k].off == ref_marks[k].off &&
				  w.marks[k].len == ref_marks[k].len &&
				  w.marks[k].hdr == ref_marks[k].hdr &&
				  w.marks[k].err == ref_marks[k].err,
			      "-v: a mark differs from the engine's");
		/* Every message begun in what was shown is marked. */
		CHECK(w.nmarks == nref ||
			  ref_marks[w.nmarks].off >= w.echoed_len,
		      "-v: a message shown without its mark");
	}

	/* The reason matches what happened. */
	switch (s.reason) {
	case CLOSE_RESET:
		CHECK(w.errored, "reset without an error");
		break;
	case CLOSE_SHUTDOWN:
		CHECK(w.stop, "shutdown without a request");
		break;
	case CLOSE_IDLE:
		CHECK(cfg.idle_ms > 0, "idle close with no idle timeout");
		break;
	case CLOSE_NONE:
	case CLOSE_EOF:
		CHECK(w.half_closed, "eof without the client's half-close");
		if (!w.errored)
			CHECK(w.delivered_len == n_eof,
			      "half-close served but not all delivered");
		break;
	case CLOSE_TOO_LARGE:
	case CLOSE_TRUNCATED:
		CHECK(cfg.mode == PROTO_FRAME,
		      "frame error outside frame mode");
		break;
	case CLOSE_NOMEM:
		CHECK(nomem, "out of memory with a message buffer");
		break;
	default:
		CHECK(0, "unexpected close reason");
	}
	return 0;
}
