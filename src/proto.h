/*
 * proto.h - the echod protocol engine (pure: no system calls, no allocation,
 * no globals, no clock).
 *
 * The engine turns the byte stream a client sends into the byte stream echod
 * sends back, in one of three modes (SPEC section 2):
 *
 *   raw    RFC 862: every byte is echoed, in order, unchanged.
 *   line   messages end with a delimiter byte; a payload of at most max_msg
 *          bytes is echoed with its delimiter once complete; a longer one is
 *          answered "ERR too long" + delimiter once, as soon as the limit is
 *          passed, and discarded up to and including the next delimiter. At
 *          end of input an unterminated tail of at most max_msg bytes is
 *          echoed as it is.
 *   frame  a 4-byte big-endian length L then L bytes; the whole frame is
 *          echoed once complete; L = 0 is a valid empty frame; L > max_msg
 *          ends the stream with PROTO_E_TOO_LARGE, an incomplete frame at end
 *          of input with PROTO_E_TRUNCATED.
 *
 * The caller owns every buffer: the input, the output and the message buffer
 * in which line and frame mode hold the one message that is pending (at most
 * max_msg + PROTO_MSGBUF_SLACK bytes; raw mode holds nothing).
 */
#ifndef ECHOD_PROTO_H
#define ECHOD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_MSG_MIN     1u
#define PROTO_MAX_MSG_MAX     16777216u
#define PROTO_MAX_MSG_DEFAULT 65536u
#define PROTO_FRAME_HDR	      4u
/* The message buffer holds a payload plus a delimiter (line) or a header
 * (frame); 4 bytes cover both. */
#define PROTO_MSGBUF_SLACK 4u
/* The reply to an over-long line, without its delimiter. */
#define PROTO_ERR_TOO_LONG     "ERR too long"
#define PROTO_ERR_TOO_LONG_LEN 12u

enum proto_mode {
	PROTO_RAW = 0,
	PROTO_LINE = 1,
	PROTO_FRAME = 2,
};

/* Return values of proto_run(). Negative values are terminal errors. */
enum proto_status {
	PROTO_NEED_INPUT = 0,	/* all input consumed, all output emitted */
	PROTO_NEED_OUTPUT = 1,	/* out is full: call again with room */
	PROTO_DONE = 2,		/* eof given, everything emitted: finished */
	PROTO_E_TOO_LARGE = -1, /* frame mode: a length above max_msg */
	PROTO_E_TRUNCATED = -2, /* frame mode: input ended inside a frame */
	PROTO_E_ARGS = -3,	/* bad configuration or arguments */
};

/* Internal phases; a zero-filled struct proto starts in PROTO_S_START. */
enum proto_state {
	PROTO_S_START = 0, /* between messages */
	PROTO_S_MSG,	   /* line: collecting a payload in msgbuf */
	PROTO_S_DISCARD,   /* line: after an over-long payload, to delimiter */
	PROTO_S_HDR,	   /* frame: collecting the 4-byte header */
	PROTO_S_BODY,	   /* frame: collecting the payload in msgbuf */
	PROTO_S_EMIT,	   /* emitting msgbuf[emit_off..msg_len) */
	PROTO_S_EMIT_ERR,  /* line: emitting "ERR too long" + delimiter */
	PROTO_S_END,	   /* terminal: status in `end` */
};

/*
 * Where a message begins in the output of one proto_run() call, for a
 * caller that reports messages (echod -v) without interpreting the bytes
 * itself: the engine stays the only code that knows where a message ends.
 * The echoed message is hdr header bytes, len payload bytes and, in line
 * mode, the delimiter when it had one (not the unterminated tail at end
 * of input). out[off] is its first byte; the message may go on past what
 * this call produced (the rest follows in the next calls' output).
 */
struct proto_mark {
	size_t off;   /* offset in this call's out of the first byte */
	uint32_t len; /* payload bytes, without header or delimiter */
	uint8_t hdr;  /* bytes before the payload: PROTO_FRAME_HDR or 0 */
	uint8_t err;  /* 1: the "ERR too long" reply, payload is its text */
};

/*
 * Engine state. Set the configuration fields (mode, delim, max_msg, msgbuf,
 * msgbuf_cap) with proto_init() or by hand; every other field is valid when
 * zero-filled. In raw mode msgbuf may be NULL. The counters are for the
 * caller's statistics only; the engine never reads them.
 */
struct proto {
	/* configuration */
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg; /* PROTO_MAX_MSG_MIN..PROTO_MAX_MSG_MAX */
	uint8_t *msgbuf; /* line/frame: >= max_msg + PROTO_MSGBUF_SLACK bytes */
	size_t msgbuf_cap;
	/* Optional (NULL: none): every message whose first byte a call
	 * emits is recorded in marks[0..marks_n), marks_n reset by each call.
	 * A call stops (PROTO_NEED_OUTPUT) rather than start a message when
	 * marks_cap are recorded; raw mode records nothing. Set by hand after
	 * proto_init(); marks_cap >= 1 when marks is set. */
	struct proto_mark *marks;
	size_t marks_cap;
	size_t marks_n;

	/* incremental state */
	enum proto_state state;
	int end;	/* the status returned once state is PROTO_S_END */
	size_t msg_len; /* bytes held in msgbuf */
	size_t
	    emit_off; /* PROTO_S_EMIT/EMIT_ERR: bytes of it already emitted */
	size_t need;  /* PROTO_S_BODY: payload bytes still to come */

	/* statistics */
	uint64_t messages; /* messages echoed (raw: not counted) */
	uint64_t errors;   /* "ERR too long" replies, frame errors (both) */
};

/*
 * proto_init: set the configuration of *p and zero its state.
 * Returns 0, or PROTO_E_ARGS (state left zeroed, mode raw) when mode is
 * unknown, max_msg is outside PROTO_MAX_MSG_MIN..MAX, or line/frame mode is
 * asked for without a msgbuf of at least proto_msgbuf_size(max_msg) bytes.
 */
int proto_init(struct proto *p, enum proto_mode mode, uint8_t delim,
	       uint32_t max_msg, uint8_t *msgbuf, size_t msgbuf_cap);

/* proto_msgbuf_size: bytes of message buffer line/frame mode need. */
size_t proto_msgbuf_size(uint32_t max_msg);

/*
 * proto_run: feed in[0..inlen) to the engine and write what it echoes to
 * out[0..outcap). eof != 0 says no input follows in[0..inlen).
 *
 * Sets *consumed (bytes of in taken, 0..inlen) and *produced (bytes written
 * to out, 0..outcap) on every path. Input that was not consumed must be
 * offered again, first, on the next call. in may be NULL when inlen is 0;
 * out may be NULL when outcap is 0.
 *
 * Returns:
 *   PROTO_NEED_INPUT   all of in consumed and nothing left to emit (eof == 0)
 *   PROTO_NEED_OUTPUT  out is full (or outcap was 0), or marks_cap marks
 *                      were recorded, with more to emit or input left;
 *                      call again with room
 *   PROTO_DONE         eof was given, everything consumed and emitted
 *   PROTO_E_TOO_LARGE  frame mode: a frame longer than max_msg
 *   PROTO_E_TRUNCATED  frame mode: input ended inside a frame
 *   PROTO_E_ARGS       inconsistent configuration or NULL buffers
 * The errors are reported only after every byte owed before them has been
 * emitted (in this or an earlier call); the bytes produced by the call that
 * returns an error must be delivered. PROTO_DONE and the errors are terminal:
 * later calls consume and produce nothing and return the same value.
 * Every call that returns NEED_INPUT or NEED_OUTPUT with outcap > 0 and
 * inlen > 0 (or pending output) either consumed or produced something.
 */
int proto_run(struct proto *p, const uint8_t *in, size_t inlen, int eof,
	      uint8_t *out, size_t outcap, size_t *consumed, size_t *produced);

/* The frame header (RFC-style network byte order), for the engine and for
 * every program that writes or reads frames, so that one spelling of it
 * exists. */
static inline uint32_t proto_frame_len(const uint8_t h[PROTO_FRAME_HDR])
{
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
	       (uint32_t)h[2] << 8 | (uint32_t)h[3];
}

static inline void proto_frame_hdr(uint8_t h[PROTO_FRAME_HDR], uint32_t len)
{
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
}

/* proto_pending: bytes the engine holds (message buffer plus header). */
size_t proto_pending(const struct proto *p);

/* proto_status_str: a short text for a status ("frame too large", ...). */
const char *proto_status_str(int status);

#endif /* ECHOD_PROTO_H */
