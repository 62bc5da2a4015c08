/*
 * proto.c - the echod protocol engine. See proto.h for the contract.
 *
 * Pure: the only headers are the standard ones for memcpy/memchr and
 * assert. The engine is a state machine driven by proto_run(); every state
 * either makes progress (consumes input or produces output) or returns.
 */
#include "proto.h"

#include <assert.h>
#include <string.h>

/* "ERR too long" plus the delimiter. */
#define ERR_REPLY_LEN (PROTO_ERR_TOO_LONG_LEN + 1u)

size_t proto_msgbuf_size(uint32_t max_msg)
{
	return (size_t)max_msg + PROTO_MSGBUF_SLACK;
}

static int config_ok(const struct proto *p)
{
	if (p->marks != NULL && p->marks_cap == 0)
		return 0;
	switch (p->mode) {
	case PROTO_RAW:
		return 1;
	case PROTO_LINE:
	case PROTO_FRAME:
		return p->max_msg >= PROTO_MAX_MSG_MIN &&
		       p->max_msg <= PROTO_MAX_MSG_MAX && p->msgbuf != NULL &&
		       p->msgbuf_cap >= proto_msgbuf_size(p->max_msg);
	default:
		return 0;
	}
}

int proto_init(struct proto *p, enum proto_mode mode, uint8_t delim,
	       uint32_t max_msg, uint8_t *msgbuf, size_t msgbuf_cap)
{
	if (p == NULL)
		return PROTO_E_ARGS;
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->delim = delim;
	p->max_msg = max_msg;
	p->msgbuf = msgbuf;
	p->msgbuf_cap = msgbuf_cap;
	/* proto_run() needs no max_msg in raw mode (a zero-filled struct is a
	 * raw engine), but a caller asking for one gets it checked. */
	if (!config_ok(p) || max_msg < PROTO_MAX_MSG_MIN ||
	    max_msg > PROTO_MAX_MSG_MAX) {
		memset(p, 0, sizeof(*p));
		return PROTO_E_ARGS;
	}
	return 0;
}

size_t proto_pending(const struct proto *p)
{
	return p->msg_len;
}

const char *proto_status_str(int status)
{
	switch (status) {
	case PROTO_NEED_INPUT:
		return "need input";
	case PROTO_NEED_OUTPUT:
		return "need output";
	case PROTO_DONE:
		return "eof";
	case PROTO_E_TOO_LARGE:
		return "frame too large";
	case PROTO_E_TRUNCATED:
		return "truncated frame";
	case PROTO_E_ARGS:
		return "bad arguments";
	default:
		return "unknown status";
	}
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Whether no message may begin in this call: its marks are all used. */
static int marks_full(const struct proto *p)
{
	return p->marks != NULL && p->marks_n == p->marks_cap;
}

/* A message begins at out[off]; the caller checked marks_full(). */
static void mark(struct proto *p, size_t off, size_t len, uint8_t hdr,
		 uint8_t err)
{
	if (p->marks == NULL)
		return;
	p->marks[p->marks_n].off = off;
	p->marks[p->marks_n].len = (uint32_t)len;
	p->marks[p->marks_n].hdr = hdr;
	p->marks[p->marks_n].err = err;
	p->marks_n++;
}

/* The payload of the message held in msgbuf[0..msg_len): without the frame
 * header, and without the delimiter that ends a line (an unterminated tail
 * cannot end with one). */
static size_t held_payload(const struct proto *p)
{
	if (p->mode == PROTO_FRAME)
		return p->msg_len - PROTO_FRAME_HDR;
	return p->msg_len -
	       (p->msg_len > 0 && p->msgbuf[p->msg_len - 1] == p->delim);
}

/* Enter the terminal state; the status is returned now and on every call. */
static int finish(struct proto *p, int status)
{
	p->state = PROTO_S_END;
	p->end = status;
	return status;
}

int proto_run(struct proto *p, const uint8_t *in, size_t inlen, int eof,
	      uint8_t *out, size_t outcap, size_t *consumed, size_t *produced)
{
	size_t i = 0; /* input consumed */
	size_t o = 0; /* output produced */
	int st;

	if (consumed != NULL)
		*consumed = 0;
	if (produced != NULL)
		*produced = 0;
	if (p == NULL || consumed == NULL || produced == NULL ||
	    (in == NULL && inlen > 0) || (out == NULL && outcap > 0) ||
	    !config_ok(p))
		return PROTO_E_ARGS;
	p->marks_n = 0;

	for (;;) {
		switch (p->state) {
		case PROTO_S_START:
			if (p->mode == PROTO_RAW) {
				/* RFC 862: what arrives goes back, unchanged.
				 */
				size_t n = min_size(inlen - i, outcap - o);
				if (n > 0)
					memcpy(out + o, in + i, n);
				i += n;
				o += n;
				if (i < inlen) {
					st = PROTO_NEED_OUTPUT;
					goto out;
				}
				st = eof ? finish(p, PROTO_DONE)
					 : PROTO_NEED_INPUT;
				goto out;
			}
			if (i == inlen) {
				st = eof ? finish(p, PROTO_DONE)
					 : PROTO_NEED_INPUT;
				goto out;
			}
			p->msg_len = 0;
			p->state =
			    p->mode == PROTO_LINE ? PROTO_S_MSG : PROTO_S_HDR;
			break;

		case PROTO_S_MSG: {
			/* Line mode: payload so far in msgbuf[0..msg_len). */
			size_t room = p->max_msg - p->msg_len;
			size_t avail = inlen - i;
			size_t scan;
			const uint8_t *d;

			if (avail == 0) {
				if (!eof) {
					st = PROTO_NEED_INPUT;
					goto out;
				}
				if (p->msg_len == 0) {
					p->state = PROTO_S_START;
					break;
				}
				/* Unterminated tail: echoed as it is. */
				p->messages++;
				p->emit_off = 0;
				p->state = PROTO_S_EMIT;
				break;
			}
			/* Within room + 1 bytes either the delimiter shows up
			 * or the limit is passed. */
			scan = min_size(avail, room + 1);
			d = memchr(in + i, p->delim, scan);
			if (d != NULL) {
				size_t k = (size_t)(d - (in + i)) + 1;
				p->messages++;
				if (p->msg_len == 0 && k <= outcap - o &&
				    !marks_full(p)) {
					/* Whole line in the input and room in
					 * out: no copy through msgbuf. */
					mark(p, o, k - 1, 0, 0);
					memcpy(out + o, in + i, k);
					o += k;
					i += k;
					p->state = PROTO_S_START;
					break;
				}
				memcpy(p->msgbuf + p->msg_len, in + i, k);
				p->msg_len += k;
				i += k;
				p->emit_off = 0;
				p->state = PROTO_S_EMIT;
				break;
			}
			if (avail <= room) {
				memcpy(p->msgbuf + p->msg_len, in + i, avail);
				p->msg_len += avail;
				i += avail;
				break;
			}
			/* The payload now exceeds max_msg: reply once, then
			 * discard up to and including the next delimiter. */
			i += scan;
			p->msg_len = 0;
			p->errors++;
			p->emit_off = 0;
			p->state = PROTO_S_EMIT_ERR;
			break;
		}

		case PROTO_S_DISCARD: {
			const uint8_t *d;

			if (i == inlen) {
				if (!eof) {
					st = PROTO_NEED_INPUT;
					goto out;
				}
				p->state = PROTO_S_START;
				break;
			}
			d = memchr(in + i, p->delim, inlen - i);
			if (d != NULL) {
				i = (size_t)(d - in) + 1;
				p->state = PROTO_S_START;
			} else {
				i = inlen;
			}
			break;
		}

		case PROTO_S_HDR: {
			/* Frame mode: header so far in msgbuf[0..msg_len). */
			size_t avail = inlen - i;
			size_t n;
			uint32_t len;

			if (avail == 0) {
				if (!eof) {
					st = PROTO_NEED_INPUT;
					goto out;
				}
				p->errors++;
				st = finish(p, PROTO_E_TRUNCATED);
				goto out;
			}
			if (p->msg_len == 0 && avail >= PROTO_FRAME_HDR) {
				len = proto_frame_len(in + i);
				if (len > p->max_msg) {
					p->errors++;
					st = finish(p, PROTO_E_TOO_LARGE);
					goto out;
				}
				n = PROTO_FRAME_HDR + (size_t)len;
				if (n <= avail && n <= outcap - o &&
				    !marks_full(p)) {
					/* Whole frame in the input and room
					 * in out: no copy through msgbuf. */
					mark(p, o, len, PROTO_FRAME_HDR, 0);
					memcpy(out + o, in + i, n);
					o += n;
					i += n;
					p->messages++;
					p->state = PROTO_S_START;
					break;
				}
			}
			n = min_size(PROTO_FRAME_HDR - p->msg_len, avail);
			memcpy(p->msgbuf + p->msg_len, in + i, n);
			p->msg_len += n;
			i += n;
			if (p->msg_len < PROTO_FRAME_HDR)
				break;
			len = proto_frame_len(p->msgbuf);
			if (len > p->max_msg) {
				p->errors++;
				st = finish(p, PROTO_E_TOO_LARGE);
				goto out;
			}
			p->need = len;
			p->state = PROTO_S_BODY;
			break;
		}

		case PROTO_S_BODY: {
			size_t n;

			if (p->need == 0) {
				p->messages++;
				p->emit_off = 0;
				p->state = PROTO_S_EMIT;
				break;
			}
			if (i == inlen) {
				if (!eof) {
					st = PROTO_NEED_INPUT;
					goto out;
				}
				p->errors++;
				st = finish(p, PROTO_E_TRUNCATED);
				goto out;
			}
			n = min_size(p->need, inlen - i);
			memcpy(p->msgbuf + p->msg_len, in + i, n);
			p->msg_len += n;
			p->need -= n;
			i += n;
			break;
		}

		case PROTO_S_EMIT: {
			size_t n =
			    min_size(p->msg_len - p->emit_off, outcap - o);

			if (p->emit_off == 0 && n > 0) {
				if (marks_full(p)) {
					st = PROTO_NEED_OUTPUT;
					goto out;
				}
				mark(p, o, held_payload(p),
				     p->mode == PROTO_FRAME ? PROTO_FRAME_HDR
							    : 0,
				     0);
			}
			if (n > 0)
				memcpy(out + o, p->msgbuf + p->emit_off, n);
			o += n;
			p->emit_off += n;
			if (p->emit_off < p->msg_len) {
				st = PROTO_NEED_OUTPUT;
				goto out;
			}
			p->msg_len = 0;
			p->emit_off = 0;
			p->state = PROTO_S_START;
			break;
		}

		case PROTO_S_EMIT_ERR: {
			size_t n =
			    min_size(ERR_REPLY_LEN - p->emit_off, outcap - o);
			size_t k;

			if (p->emit_off == 0 && n > 0) {
				if (marks_full(p)) {
					st = PROTO_NEED_OUTPUT;
					goto out;
				}
				mark(p, o, PROTO_ERR_TOO_LONG_LEN, 0, 1);
			}
			for (k = 0; k < n; k++, p->emit_off++)
				out[o + k] =
				    p->emit_off < PROTO_ERR_TOO_LONG_LEN
					? (uint8_t)
					      PROTO_ERR_TOO_LONG[p->emit_off]
					: p->delim;
			o += n;
			if (p->emit_off < ERR_REPLY_LEN) {
				st = PROTO_NEED_OUTPUT;
				goto out;
			}
			p->emit_off = 0;
			p->state = PROTO_S_DISCARD;
			break;
		}

		case PROTO_S_END:
			st = p->end;
			goto out;

		default:
			assert(!"proto: state corrupt");
			st = finish(p, PROTO_E_ARGS);
			goto out;
		}
	}
out:
	*consumed = i;
	*produced = o;
	return st;
}
