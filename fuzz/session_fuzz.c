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
 * calls. SESSION_FUZZ_TRACE=1 in the environment prints every read, write
 * and wait and a summary of the run (the replay driver tells an input's
 * story).
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
 *
 * The PROXY protocol (SPEC 8): header byte 7 bit 4 set: cfg.proxy, and
 * PX_LEN more header bytes follow the 9 (the client's stream after them):
 *   x0  bits 0-1 versions accepted (0 any, 1 v1, 2 v2, 3 any); bits 2-3
 *       ops->proxied (0 NULL, 1 and 2 returns 0, 3 returns -1); bits 4-5
 *       the stream's start (0, 1 a valid header from the encoder below; 2
 *       that header with one byte changed, or cut short with nothing
 *       after it; 3 the client's bytes alone, header or not); bit 6 the
 *       client sends nothing at all
 *   x1  proxy_ms: (x1 & 0x7f) times 100 (bit 7) or 10
 *   x2  the header: bit 0 v1 / v2. v1: bits 1-2 TCP4, TCP6, UNKNOWN,
 *       UNKNOWN with a tail (length from x4), bits 3-4 the IPv6 text form
 *       (inet_ntop, full %x, full %04X, inet_ntop in upper case). v2: bits
 *       1-2 the family (TCP4, TCP6, UNSPEC, TCP4), bit 3 LOCAL
 *   x3  v1 TCP6: the zero groups of the source address; v2: the TLVs
 *       (bit 0 ALPN, 1 AUTHORITY, 2 SSL with two sub-TLVs, bits 3-4 NOOP,
 *       UNIQUE_ID of x4 % 129 bytes, a custom type of x5 % 40 bytes, bit 5
 *       CRC32C, bit 6 the CRC32C first, bit 7 a 300-byte custom TLV)
 *   x4-x7 the source address (v4; v6 as 8 groups from them); the
 *       destination is derived from it
 *   x8-x9, x10-x11 the source and destination ports (big-endian)
 *   x12 x2 = 2: where the change is (x12 * length / 256); x13 what is
 *       xored into that byte, 0: the stream is cut there
 * The encoder (enc_v1, enc_v2) builds the header apart from src/proxy.c:
 * its text by snprintf and inet_ntop, its CRC32C bitwise. Oracle, besides
 * the above for the bytes after the header:
 * - the expected header: the encoder's (x0 bits 4-5 < 2, the version
 *   accepted), else what proxy_parse() says of the whole stream at once
 *   (where it ends, or the byte that shows it is bad, or that it is cut);
 * - nothing is written (nor ops->proxied called) before the session has
 *   read the whole header and the parser said it is one; ops->proxied is
 *   called once, with exactly the expected addresses, ports, command,
 *   family, TLV count, CRC32C flag and length; -1 from it: CLOSE_REJECTED
 *   and nothing written, no FIN; a header's bytes are neither echoed nor
 *   counted (bytes_in + discarded = bytes read - header bytes taken);
 * - a header is accepted only when the read that brought its last byte
 *   was made before start + proxy_ms; CLOSE_PROXY_TIMEOUT only once the
 *   clock reached that, with the header not read in full and (without
 *   the blocking operations, where every read waits first) not arrived in
 *   full before it; CLOSE_PROXY_BAD exactly when the byte that shows it
 *   bad was read, or at EOF inside it; EOF before any byte: CLOSE_EOF; a
 *   failed header: nothing written, bytes_in 0, one protocol error, the
 *   reason one of these, reset (after an error) or shutdown (after a
 *   request);
 * - an idle close (in every mode) only idle_ms after the last byte read
 *   or written, which the header's end counts as.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proto.h"
#include "proxy.h"
#include "session.h"
#include "ref_crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_LEN	   9u
#define PX_LEN	   14u	 /* the PROXY part of the header (byte 7 bit 4) */
#define PHDR_MAX   640u	 /* the longest header the encoder makes */
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

/* SESSION_FUZZ_TRACE=1 in the environment: every call on stderr. */
static int tracing = -1;

__attribute__((format(printf, 1, 2))) static void trace(const char *fmt, ...)
{
	va_list ap;

	if (tracing < 0)
		tracing = getenv("SESSION_FUZZ_TRACE") != NULL;
	if (!tracing)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
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
	/* --proxy-protocol (header byte 7 bit 4) */
	int proxy, has_proxied, proxied_reject, proxied_calls;
	int hdr_st;	/* expected: PROXY_DONE, PROXY_NEED_MORE or error */
	size_t hdr_end; /* DONE: its length; error: up to the bad byte */
	struct proxy_result hdr_want; /* DONE: what ops->proxied must get */
	size_t hdr_read;	      /* bytes read while the header was read */
	int64_t deadline;	      /* start + proxy_ms */
	int64_t t_arrived; /* when the whole header had arrived, -1: never */
	int64_t t_issued;  /* when the read that completed it was made */
	int64_t rw_issue;  /* in op_read_wait: when it was called, else -1 */
	int timeout_seen, idle_seen;
	long writes;	/* write calls that took bytes or not */
	int64_t t_data; /* the last read or write that moved bytes */
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

/* The session has the whole PROXY header (its parser said so). */
static int hdr_done(const struct session *s)
{
	return s->cfg.proxy != 0 && s->px.state == PROXY_S_END &&
	       s->px.end == PROXY_DONE;
}

static ssize_t op_read(void *io, void *buf, size_t len)
{
	struct sim *w = io;
	int b = next(w);
	int64_t issued = w->rw_issue >= 0 ? w->rw_issue : w->now;
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
	if (w->proxy && w->hdr_st == PROXY_DONE && w->t_arrived < 0 &&
	    w->arrived >= w->hdr_end)
		w->t_arrived = w->now;
	trace("%lld read %zu (byte %d): arrived %zu of %zu, read %zu\n",
	      (long long)w->now, len, b, w->arrived, w->stream_len,
	      w->read_off);
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
	/* Before the header's end every byte read is offered to the
	 * parser (the read that ends it may bring data too). */
	if (w->proxy && w->s->phase == SESSION_SERVING && !hdr_done(w->s)) {
		w->hdr_read += n;
		if (w->hdr_st == PROXY_DONE && w->t_issued < 0 &&
		    w->hdr_read >= w->hdr_end)
			w->t_issued = issued;
	}
	w->t_data = w->now;
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
	w->writes++;
	if (w->proxy)
		CHECK(hdr_done(w->s) && w->hdr_st == PROXY_DONE &&
			  w->hdr_read >= w->hdr_end &&
			  (!w->has_proxied ||
			   (w->proxied_calls == 1 && !w->proxied_reject)),
		      "a write before the PROXY header was read and accepted");
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
	trace("%lld write %zu (byte %d): %zu taken\n", (long long)w->now, len,
	      b, n);
	CHECK(w->delivered_len + n <= sizeof(w->delivered),
	      "more output than the engine can produce");
	memcpy(w->delivered + w->delivered_len, buf, n);
	w->delivered_len += n;
	w->unacked += n;
	if (n > 0)
		w->t_data = w->now;
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
	trace("%lld wait %d deadline %lld (byte %d): +%lld ms\n",
	      (long long)w->now, events, (long long)deadline, b,
	      (long long)step);
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

/* Every close the session decides reads the clock (start_close): the
 * idle and header timeouts are checked at that moment. */
static int64_t op_now(void *io)
{
	struct sim *w = io;
	const struct session *s = w->s;

	if (s->reason == CLOSE_IDLE && !w->idle_seen) {
		w->idle_seen = 1;
		CHECK(w->now >= w->t_data + (int64_t)w->idle_ms,
		      "idle close before idle_ms without a byte moved");
	}
	if (s->reason == CLOSE_PROXY_TIMEOUT && !w->timeout_seen) {
		w->timeout_seen = 1;
		CHECK(w->proxy && w->now >= w->deadline,
		      "header timeout before start + proxy_ms");
		CHECK(!(w->hdr_st == PROXY_DONE && w->hdr_read >= w->hdr_end),
		      "header timeout with the whole header read");
		/* Without the blocking operations the session reads what has
		 * arrived before it waits (with them every read waits first,
		 * and the clock may pass meanwhile). */
		CHECK(s->ops->read_wait != NULL || w->t_arrived < 0 ||
			  w->t_arrived >= w->deadline,
		      "header timeout though the header arrived in time");
	}
	return w->now;
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
	CHECK(!w->proxy || hdr_done(w->s), "echoed before the PROXY header");
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
	struct sim *w = io;
	ssize_t n;
	int ev;

	/* The bytes it returns were asked for now, whatever the wait. */
	w->rw_issue = w->now;
	ev = op_wait(io, SESSION_EV_IN, deadline);
	n = ev < 0		 ? -1
	    : ev & SESSION_EV_IN ? op_read(io, buf, len)
				 : SESSION_AGAIN;
	w->rw_issue = -1;
	return n;
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

/* ---- PROXY headers, built here apart from src/proxy.c ---- */

struct enc {
	uint8_t b[PHDR_MAX];
	size_t n;
	struct proxy_result r; /* what the header says */
};

static void put(struct enc *e, const void *p, size_t n)
{
	CHECK(e->n + n <= sizeof(e->b), "encoder: header too long");
	memcpy(e->b + e->n, p, n);
	e->n += n;
}

static void put8(struct enc *e, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(e, &b, 1);
}

static void put16(struct enc *e, unsigned v)
{
	put8(e, v >> 8);
	put8(e, v & 0xff);
}

/* 16 bytes of an IPv6 address from 4 seed bytes, the groups whose bit is
 * set in zeros left zero (runs for "::"). */
static void v6_from(uint8_t a[16], const uint8_t *seed, unsigned zeros,
		    unsigned rot)
{
	unsigned i;

	for (i = 0; i < 8; i++) {
		if ((zeros >> i) & 1) {
			a[2 * i] = a[2 * i + 1] = 0;
			continue;
		}
		a[2 * i] = seed[(i + rot) % 4];
		a[2 * i + 1] = seed[(i + rot + 1) % 4];
	}
}

static void v6_text(char *out, size_t len, const uint8_t a[16], unsigned form)
{
	unsigned g[8], i;

	for (i = 0; i < 8; i++)
		g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	switch (form & 3) {
	case 1:
		snprintf(out, len, "%x:%x:%x:%x:%x:%x:%x:%x", g[0], g[1], g[2],
			 g[3], g[4], g[5], g[6], g[7]);
		break;
	case 2:
		snprintf(out, len, "%04X:%04X:%04X:%04X:%04X:%04X:%04X:%04X",
			 g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
		break;
	default:
		CHECK(inet_ntop(AF_INET6, a, out, (socklen_t)len) != NULL,
		      "inet_ntop");
		if ((form & 3) == 3)
			for (i = 0; out[i] != '\0'; i++)
				out[i] = (char)toupper((unsigned char)out[i]);
		break;
	}
}

/* Version 1 (x as the header comment says). */
static void enc_v1(struct enc *e, const uint8_t *x)
{
	/* UNKNOWN's tail: anything but CR and LF. */
	static const char tail_bytes[] = "0123456789abcdefABCDEF:. -_/PROXY"
					 "\t\x01\x7f\x80\xff";
	unsigned fam = (x[2] >> 1) & 3, form = (x[2] >> 3) & 3, i, t;
	uint16_t sp = (uint16_t)(x[8] << 8 | x[9]);
	uint16_t dp = (uint16_t)(x[10] << 8 | x[11]);
	uint8_t src[16], dst[16];
	char line[200], s6[64], d6[64];
	int n;

	memset(&e->r, 0, sizeof(e->r));
	e->r.version = 1;
	e->r.command = PROXY_CMD_PROXY;
	e->r.family = AF_UNSPEC;
	if (fam == 0) {
		memcpy(src, x + 4, 4);
		dst[0] = x[7] ^ 0x5a;
		dst[1] = x[6];
		dst[2] = x[5] ^ 0xa5;
		dst[3] = x[4];
		n = snprintf(line, sizeof(line),
			     "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u %u %u\r\n",
			     src[0], src[1], src[2], src[3], dst[0], dst[1],
			     dst[2], dst[3], sp, dp);
		e->r.family = AF_INET;
		memcpy(e->r.src, src, 4);
		memcpy(e->r.dst, dst, 4);
	} else if (fam == 1) {
		v6_from(src, x + 4, x[3], 0);
		v6_from(dst, x + 4, (unsigned)(x[3] >> 4 | x[3] << 4) & 0xff,
			2);
		v6_text(s6, sizeof(s6), src, form);
		v6_text(d6, sizeof(d6), dst, form + 1);
		n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s %u %u\r\n",
			     s6, d6, sp, dp);
		e->r.family = AF_INET6;
		memcpy(e->r.src, src, 16);
		memcpy(e->r.dst, dst, 16);
	} else {
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN");
		if (fam == 3) {
			line[n++] = ' ';
			t = 1 + x[4] % 91; /* 107 bytes at most, CRLF in */
			for (i = 0; i < t; i++)
				line[n++] =
				    tail_bytes[(x[5] + i * x[6] +
						i * i * x[7]) %
					       (sizeof(tail_bytes) - 1)];
		}
		line[n++] = '\r';
		line[n++] = '\n';
	}
	CHECK(n > 0 && (size_t)n <= PROXY_V1_MAX_LEN, "encoder: v1 too long");
	if (fam < 2) {
		e->r.proxied = 1;
		e->r.src_port = sp;
		e->r.dst_port = dp;
	}
	put(e, line, (size_t)n);
	e->r.header_len = e->n;
}

static void tlv(struct enc *e, unsigned type, const void *v, size_t n)
{
	put8(e, type);
	put16(e, (unsigned)n);
	put(e, v, n);
	e->r.tlvs++;
}

/* Version 2 (x as the header comment says). */
static void enc_v2(struct enc *e, const uint8_t *x)
{
	static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	static const uint8_t fams[4] = {0x11, 0x21, 0x00, 0x11};
	static const uint8_t ssl[] = {
	    0x07, 0,   0,  0,	0, /* client, verify */
	    0x21, 0,   7,  'T', 'L', 'S', 'v', '1', '.', '3',	   /* version */
	    0x22, 0,   11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', /* CN */
	    'c',  'o', 'm'};
	uint8_t fam = fams[(x[2] >> 1) & 3], v[300], src[16], dst[16];
	unsigned local = (x[2] >> 3) & 1, tl = x[3], i;
	int crc = (tl & 0x20) != 0;
	size_t crc_at = 0, k;
	uint32_t c;

	memset(&e->r, 0, sizeof(e->r));
	e->r.version = 2;
	e->r.command = local ? PROXY_CMD_LOCAL : PROXY_CMD_PROXY;
	e->r.family = AF_UNSPEC;
	put(e, sig, sizeof(sig));
	put8(e, 0x20 | e->r.command);
	put8(e, fam);
	put16(e, 0); /* the length, below */
	if (fam == 0x11) {
		memcpy(src, x + 4, 4);
		for (i = 0; i < 4; i++)
			dst[i] = (uint8_t)(x[4 + (i + 1) % 4] ^ 0x3c);
		put(e, src, 4);
		put(e, dst, 4);
	} else if (fam == 0x21) {
		v6_from(src, x + 4, x[8], 1);
		v6_from(dst, x + 4, x[9], 3);
		put(e, src, 16);
		put(e, dst, 16);
	}
	if (fam != 0) {
		put16(e, (unsigned)(x[8] << 8 | x[9]));
		put16(e, (unsigned)(x[10] << 8 | x[11]));
	}
	if (!local && fam != 0) {
		e->r.proxied = 1;
		e->r.family = fam == 0x11 ? AF_INET : AF_INET6;
		memcpy(e->r.src, src, fam == 0x11 ? 4 : 16);
		memcpy(e->r.dst, dst, fam == 0x11 ? 4 : 16);
		e->r.src_port = (uint16_t)(x[8] << 8 | x[9]);
		e->r.dst_port = (uint16_t)(x[10] << 8 | x[11]);
	}
	for (k = 0; k < sizeof(v); k++)
		v[k] = (uint8_t)(x[5] + k * 7);
	if (crc && (tl & 0x40)) {
		crc_at = e->n + 3;
		tlv(e, 0x03, "\0\0\0\0", 4); /* PP2_TYPE_CRC32C */
	}
	if (tl & 1)
		tlv(e, 0x01, "h2", 2); /* ALPN */
	if (tl & 2)
		tlv(e, 0x02, "example.com", 11); /* AUTHORITY */
	if (tl & 4)
		tlv(e, 0x20, ssl, sizeof(ssl)); /* SSL */
	switch ((tl >> 3) & 3) {
	case 1:
		tlv(e, 0x04, "", 0); /* NOOP, empty */
		break;
	case 2:
		tlv(e, 0x05, v, x[4] % 129u); /* UNIQUE_ID, 0..128 */
		break;
	case 3:
		tlv(e, 0xe5, v, x[5] % 40u); /* a custom type */
		break;
	default:
		break;
	}
	if (tl & 0x80)
		tlv(e, 0xee, v, sizeof(v));
	if (crc && !(tl & 0x40)) {
		crc_at = e->n + 3;
		tlv(e, 0x03, "\0\0\0\0", 4);
	}
	e->b[14] = (uint8_t)((e->n - 16) >> 8);
	e->b[15] = (uint8_t)(e->n - 16);
	if (crc) {
		c = ref_crc32c(e->b, e->n);
		e->b[crc_at] = (uint8_t)(c >> 24);
		e->b[crc_at + 1] = (uint8_t)(c >> 16);
		e->b[crc_at + 2] = (uint8_t)(c >> 8);
		e->b[crc_at + 3] = (uint8_t)c;
		e->r.crc32c = 1;
	}
	e->r.header_len = e->n;
}

static void check_result(const struct proxy_result *g,
			 const struct proxy_result *r)
{
	CHECK(g->version == r->version && g->command == r->command,
	      "proxied: another version or command");
	CHECK(g->proxied == r->proxied && g->family == r->family,
	      "proxied: another family");
	CHECK(memcmp(g->src, r->src, 16) == 0 &&
		  memcmp(g->dst, r->dst, 16) == 0,
	      "proxied: other addresses");
	CHECK(g->src_port == r->src_port && g->dst_port == r->dst_port,
	      "proxied: other ports");
	CHECK(g->tlvs == r->tlvs && g->crc32c == r->crc32c,
	      "proxied: other TLVs");
	CHECK(g->header_len == r->header_len, "proxied: another length");
}

static int op_proxied(void *io, const struct proxy_result *r)
{
	struct sim *w = io;

	trace("%lld proxied: version %u command %u family %d length %zu\n",
	      (long long)w->now, r->version, r->command, r->family,
	      r->header_len);
	CHECK(w->proxy, "ops->proxied without --proxy-protocol");
	CHECK(++w->proxied_calls == 1, "ops->proxied called twice");
	CHECK(w->hdr_st == PROXY_DONE, "ops->proxied for what is no header");
	CHECK(w->hdr_read >= w->hdr_end,
	      "ops->proxied before the whole header was read");
	CHECK(w->writes == 0 && !w->fin_sent, "a write before ops->proxied");
	CHECK(w->t_issued >= 0 && w->t_issued < w->deadline,
	      "a header taken whose last byte was read after the deadline");
	check_result(r, &w->hdr_want);
	return w->proxied_reject ? -1 : 0;
}

/* The expected header of a proxy run (x: the PX_LEN bytes) and the
 * stream the client sends: the header, then its bytes. */
static void proxy_setup(struct sim *w, const uint8_t *x,
			enum proxy_accept accept, const uint8_t *client,
			size_t client_len)
{
	static uint8_t sbuf[PHDR_MAX + STREAM_MAX];
	static struct enc e;
	unsigned start = (x[0] >> 4) & 3;
	struct proxy ref;
	size_t len = 0, pos;

	memset(&e, 0, sizeof(e));
	w->hdr_st = PROXY_NEED_MORE;
	w->hdr_end = SIZE_MAX;
	if (start < 3) {
		if (x[2] & 1)
			enc_v2(&e, x);
		else
			enc_v1(&e, x);
		memcpy(sbuf, e.b, e.n);
		len = e.n;
		if (start == 2) {
			pos = (size_t)x[12] * e.n / 256;
			if (x[13] == 0)
				client_len = 0; /* EOF inside the header */
			if (x[13] == 0)
				len = pos;
			else
				sbuf[pos] ^= x[13];
		}
	}
	memcpy(sbuf + len, client, client_len);
	len += client_len;
	if (x[0] & 0x40)
		len = 0; /* the client sends nothing */
	w->stream = sbuf;
	w->stream_len = len;
	if (start < 2 && len > 0 && (accept & (1u << (e.r.version - 1))) != 0) {
		/* The encoder's header, whole. */
		w->hdr_st = PROXY_DONE;
		w->hdr_end = e.n;
		w->hdr_want = e.r;
		return;
	}
	/* Anything else: where the parser, given it all at once, says the
	 * header ends, or shows it bad, or that it is cut short. */
	CHECK(proxy_init(&ref, accept) == 0, "proxy_init");
	w->hdr_st = proxy_parse(&ref, sbuf, len, &pos, &w->hdr_want);
	CHECK(w->hdr_st != PROXY_E_ARGS, "reference parser: bad arguments");
	if (w->hdr_st != PROXY_NEED_MORE)
		w->hdr_end = pos;
}

/* The end of a proxy run: the header's part of the oracle. */
static void proxy_check(const struct sim *w, const struct session *s)
{
	if (hdr_done(s)) {
		CHECK(w->hdr_st == PROXY_DONE, "a header taken that is none");
		CHECK(w->hdr_read >= w->hdr_end,
		      "a header taken before it was read");
		CHECK(w->t_issued >= 0 && w->t_issued < w->deadline,
		      "a header taken whose last byte was read after the "
		      "deadline");
		CHECK(!w->has_proxied || w->proxied_calls == 1,
		      "a header taken without ops->proxied");
		if (w->has_proxied && w->proxied_reject)
			CHECK(s->reason == CLOSE_REJECTED && w->writes == 0 &&
				  !w->fin_sent && w->delivered_len == 0,
			      "ops->proxied said -1: must close at once, "
			      "nothing sent");
		return;
	}
	CHECK(w->proxied_calls == 0, "ops->proxied without a header");
	CHECK(!(w->hdr_st == PROXY_DONE && w->hdr_read >= w->hdr_end),
	      "the whole header read, yet not taken");
	CHECK(w->writes == 0 && s->rep.bytes_out == 0 && s->rep.bytes_in == 0,
	      "no header, yet bytes served");
	if (w->hdr_st < 0)
		CHECK((w->hdr_read >= w->hdr_end) ==
			  (s->reason == CLOSE_PROXY_BAD),
		      "a bad header: bad-proxy-header exactly once its bad "
		      "byte was read");
	switch (s->reason) {
	case CLOSE_PROXY_BAD:
		CHECK(w->hdr_st < 0 ||
			  (w->hdr_st == PROXY_NEED_MORE && w->half_closed &&
			   w->hdr_read == w->stream_len && w->stream_len > 0),
		      "bad proxy header: no bad byte, no EOF inside it");
		CHECK(s->rep.protocol_errors == 1,
		      "bad proxy header: not one protocol error");
		break;
	case CLOSE_PROXY_TIMEOUT:
		CHECK(w->timeout_seen && w->now >= w->deadline,
		      "header timeout before the deadline");
		CHECK(s->rep.protocol_errors == 1,
		      "header timeout: not one protocol error");
		break;
	case CLOSE_EOF:
		CHECK(w->half_closed && w->stream_len == 0 && w->hdr_read == 0,
		      "eof with header bytes sent");
		break;
	case CLOSE_RESET:
		CHECK(w->errored, "reset without an error");
		break;
	case CLOSE_SHUTDOWN:
		CHECK(w->stop, "shutdown without a request");
		break;
	default:
		CHECK(0, "no header: unexpected close reason");
	}
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
	size_t n_eof, n_no, consumed, nref, k, hdr_len, taken;
	const uint8_t *x = data + HDR_LEN, *client, *served;
	static struct session_ops ops;
	int nomem, verbose, proxy, hdone;

	if (size < HDR_LEN)
		return 0;
	proxy = (data[7] & 0x10) != 0;
	hdr_len = HDR_LEN + (proxy ? PX_LEN : 0);
	if (size < hdr_len)
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
	client = data + hdr_len;
	w.stream = client;
	w.stream_len = ((size_t)(data[7] & 0x0f) << 8 | data[8]);
	if (w.stream_len > size - hdr_len)
		w.stream_len = size - hdr_len;
	w.sched = client + w.stream_len;
	w.sched_len = size - hdr_len - w.stream_len;
	w.now = 1000;
	w.t_data = w.now;
	w.stop_at = -1;
	w.idle_ms = cfg.idle_ms;
	w.pipe_cap = data[6] & 0x0f;
	w.s = &s;
	w.hdr_st = PROXY_DONE; /* without the PROXY protocol: none, taken */
	w.t_arrived = w.t_issued = w.rw_issue = -1;
	if (proxy) {
		cfg.proxy = (x[0] & 3) == 0 ? PROXY_ACCEPT_ANY
					    : (enum proxy_accept)(x[0] & 3);
		cfg.proxy_ms = (x[1] & 0x7fu) * (x[1] & 0x80 ? 100u : 10u);
		w.proxy = 1;
		w.deadline = w.now + cfg.proxy_ms;
		w.has_proxied = ((x[0] >> 2) & 3) != 0;
		w.proxied_reject = ((x[0] >> 2) & 3) == 3;
		if (w.has_proxied)
			ops.proxied = op_proxied;
		proxy_setup(&w, x, cfg.proxy, client, w.stream_len);
	}

	CHECK(session_init(&s, &cfg, &ops, &w, in, out, nomem ? NULL : msgbuf,
			   nomem ? 0 : proto_msgbuf_size(cfg.max_msg)) == 0,
	      "session_init refused a valid configuration");
	w.last_progress_ms = w.now;
	session_serve(&s);
	CHECK(s.phase == SESSION_DONE, "session_serve returned before done");
	trace("session: reason %u, read %zu of %zu, in %llu "
	      "discarded %llu out %llu, clock %lld; proxy %d: "
	      "header %d end %zu read %zu, proxied %d%s, "
	      "deadline %lld\n",
	      (unsigned)s.reason, w.read_off, w.stream_len,
	      (unsigned long long)s.rep.bytes_in,
	      (unsigned long long)s.rep.discarded,
	      (unsigned long long)s.rep.bytes_out, (long long)w.now, proxy,
	      w.hdr_st, w.hdr_end, w.hdr_read, w.proxied_calls,
	      w.proxied_reject ? " (-1)" : "", (long long)w.deadline);

	/* The header's bytes, which the parser took: neither served nor
	 * dropped. The parser takes every byte offered while the header is
	 * read, up to its end or its bad byte. */
	hdone = hdr_done(&s);
	if (!proxy || nomem)
		taken = 0;
	else if (hdone || (w.hdr_st < 0 && w.hdr_read >= w.hdr_end))
		taken = w.hdr_end;
	else
		taken = w.hdr_read;
	if (proxy && !nomem)
		proxy_check(&w, &s);
	if (proxy && nomem)
		CHECK(w.proxied_calls == 0 && s.reason == CLOSE_NOMEM,
		      "no message buffer: the header is not read");
	served = w.stream + (hdone ? w.hdr_end : 0);

	/* The bytes the engine consumed: read minus dropped. */
	consumed = (size_t)s.rep.bytes_in;
	CHECK(s.rep.bytes_in + s.rep.discarded == w.read_off - taken,
	      "in + discarded differs from the bytes read after the header");
	if (s.reason == CLOSE_REJECTED) {
		/* proxy_check: nothing sent, no engine */
		CHECK(proxy && hdone && w.proxied_reject,
		      "rejected, but not by ops->proxied");
		return 0;
	}
	n_no = reference(&cfg, served, consumed, 0, ref_no, sizeof(ref_no),
			 ref_marks, &nref);
	n_eof = reference(&cfg, served, consumed, 1, ref_eof, sizeof(ref_eof),
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
		CHECK(w.idle_seen, "idle close not seen deciding");
		CHECK(!proxy || hdone, "idle close while reading the header");
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
	case CLOSE_PROXY_BAD:
	case CLOSE_PROXY_TIMEOUT:
		CHECK(proxy && !hdone, "a header error without a header");
		break;
	default:
		CHECK(0, "unexpected close reason");
	}
	return 0;
}
