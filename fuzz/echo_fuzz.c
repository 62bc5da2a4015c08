/*
 * echo_fuzz.c - fuzz target of the protocol engine (SPEC sections 2 and 6).
 *
 * Input layout: a 6-byte header, then the client's byte stream.
 *
 *   byte 0  bits 0-1 mode (0 raw, 1 line, 2 frame, 3 line)
 *           bits 2-3 delimiter (0/1 '\n', 2 NUL, 3 byte 1)
 *           bit  4   configure by hand instead of proto_init()
 *   byte 1  the delimiter when bits 2-3 of byte 0 are 3
 *   byte 2  bits 6-7 how max_msg is drawn: 0/1 tiny 1..16 (low 4 bits),
 *           2 medium 1..16384 (low 6 bits and byte 3), 3 big (table[byte 3])
 *   byte 3  see byte 2
 *   byte 4-5 seed of the chunking and output capacities
 *
 * The oracle, every property checked on every input (any violation aborts):
 *   1. reference equivalence: the engine fed the whole stream at once gives
 *      the output and final status of ref_run(), a model written apart from
 *      proto.c (whole stream in, whole output out);
 *   2. split invariance: the stream fed in seeded random chunks with seeded
 *      random output capacities gives the same output, status and counters;
 *   3. progress and the return contract of every call, with a call budget;
 *   4. bounded state: proto_pending() within the mode's bound after every
 *      call, consumed <= inlen, produced <= outcap;
 *   5. terminal statuses stay terminal;
 *   6. message marks (proto.h, struct proto_mark): where each echoed
 *      message begins, its payload length, header and kind are exactly the
 *      reference model's, whole and split (half the split runs record
 *      marks into 1 to 4 slots, so a full mark array stops calls too).
 * Memory safety comes from the sanitizers: the engine's output window, its
 * input window and its message buffer each end exactly where a heap block
 * ends, so a byte written or read past them is caught by ASan.
 */
#include "proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_LEN 6u
/* Message buffers up to this size are allocated exactly, per input. */
#define EXACT_MSGBUF_MAX (1u << 20)
/* Largest output window and input window offered to a single call. */
#define WIN_MAX 4096u

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(what, __LINE__);                                  \
	} while (0)

static void fail(const char *what, int line)
{
	fprintf(stderr, "echo_fuzz: oracle violated: %s (echo_fuzz.c:%d)\n",
		what, line);
	abort();
}

struct cfg {
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	int by_hand;
	uint64_t seed;
};

struct result {
	int status;
	uint8_t *out;
	size_t len;
	uint64_t messages;
	uint64_t errors;
	struct proto_mark *marks; /* off: in the whole output */
	size_t nmarks, marks_cap;
};

static void add_mark(struct result *r, size_t off, size_t len, uint8_t hdr,
		     uint8_t err)
{
	CHECK(r->nmarks < r->marks_cap, "more messages than input bytes");
	r->marks[r->nmarks].off = off;
	r->marks[r->nmarks].len = (uint32_t)len;
	r->marks[r->nmarks].hdr = hdr;
	r->marks[r->nmarks].err = err;
	r->nmarks++;
}

static void check_marks(const struct result *a, const struct result *b,
			const char *what)
{
	size_t k;

	CHECK(a->nmarks == b->nmarks, what);
	for (k = 0; k < a->nmarks; k++)
		CHECK(a->marks[k].off == b->marks[k].off &&
			  a->marks[k].len == b->marks[k].len &&
			  a->marks[k].hdr == b->marks[k].hdr &&
			  a->marks[k].err == b->marks[k].err,
		      what);
}

/* ---- reference model: the SPEC text, one mode at a time ---- */

static void put(struct result *r, const void *b, size_t n)
{
	memcpy(r->out + r->len, b, n);
	r->len += n;
}

static void ref_line_msg(struct result *r, const uint8_t *msg, size_t n,
			 int terminated, const struct cfg *c)
{
	if (n > c->max_msg) {
		add_mark(r, r->len, PROTO_ERR_TOO_LONG_LEN, 0, 1);
		put(r, PROTO_ERR_TOO_LONG, PROTO_ERR_TOO_LONG_LEN);
		put(r, &c->delim, 1);
		r->errors++;
		return;
	}
	if (!terminated && n == 0)
		return;
	add_mark(r, r->len, n, 0, 0);
	put(r, msg, n);
	if (terminated)
		put(r, &c->delim, 1);
	r->messages++;
}

/* r->out must hold ref_out_bound() bytes. */
static void ref_run(const struct cfg *c, const uint8_t *s, size_t n,
		    struct result *r)
{
	size_t start = 0, i;

	r->len = 0;
	r->messages = 0;
	r->errors = 0;
	r->nmarks = 0;
	r->status = PROTO_DONE;
	switch (c->mode) {
	case PROTO_RAW:
		put(r, s, n);
		break;
	case PROTO_LINE:
		for (i = 0; i < n; i++) {
			if (s[i] == c->delim) {
				ref_line_msg(r, s + start, i - start, 1, c);
				start = i + 1;
			}
		}
		ref_line_msg(r, s + start, n - start, 0, c);
		break;
	case PROTO_FRAME:
		while (start < n) {
			uint32_t len;

			if (n - start < 4) {
				r->status = PROTO_E_TRUNCATED;
				break;
			}
			len = (uint32_t)s[start] << 24 |
			      (uint32_t)s[start + 1] << 16 |
			      (uint32_t)s[start + 2] << 8 | s[start + 3];
			if (len > c->max_msg) {
				r->status = PROTO_E_TOO_LARGE;
				break;
			}
			if (n - start - 4 < len) {
				r->status = PROTO_E_TRUNCATED;
				break;
			}
			add_mark(r, r->len, len, PROTO_FRAME_HDR, 0);
			put(r, s + start, 4 + (size_t)len);
			r->messages++;
			start += 4 + (size_t)len;
		}
		break;
	}
}

static size_t ref_out_bound(const struct cfg *c, const uint8_t *s, size_t n)
{
	size_t i, pieces = 1;

	if (c->mode != PROTO_LINE)
		return n;
	for (i = 0; i < n; i++)
		pieces += s[i] == c->delim;
	return n + pieces * (PROTO_ERR_TOO_LONG_LEN + 1);
}

/* ---- driving the engine ---- */

static uint64_t rnd(uint64_t *x)
{
	/* splitmix64: deterministic, so a finding replays exactly. */
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Sizes skewed to the small ones, where the boundaries are. */
static size_t draw_size(uint64_t *x, size_t max)
{
	uint64_t r = rnd(x);
	size_t lim;

	switch (r & 3) {
	case 0:
		lim = 1;
		break;
	case 1:
		lim = 5;
		break;
	case 2:
		lim = 64;
		break;
	default:
		lim = max;
		break;
	}
	if (lim > max)
		lim = max;
	return 1 + (size_t)((r >> 2) % lim);
}

static size_t pending_bound(const struct cfg *c)
{
	switch (c->mode) {
	case PROTO_RAW:
		return 0;
	case PROTO_LINE:
		return (size_t)c->max_msg + 1;
	default:
		return (size_t)c->max_msg + PROTO_FRAME_HDR;
	}
}

static int is_terminal(int st)
{
	return st == PROTO_DONE || st < 0;
}

/* One call with the contract checks that hold for any call. */
static int run_checked(struct proto *p, const struct cfg *c, const uint8_t *in,
		       size_t inlen, int eof, uint8_t *out, size_t outcap,
		       size_t *consumed, size_t *produced)
{
	int st;

	*consumed = (size_t)-1;
	*produced = (size_t)-1;
	st = proto_run(p, in, inlen, eof, out, outcap, consumed, produced);
	CHECK(*consumed <= inlen, "consumed > inlen");
	CHECK(*produced <= outcap, "produced > outcap");
	CHECK(proto_pending(p) <= pending_bound(c), "pending over bound");
	switch (st) {
	case PROTO_NEED_INPUT:
		CHECK(!eof, "NEED_INPUT after eof");
		CHECK(*consumed == inlen, "NEED_INPUT with input left");
		break;
	case PROTO_NEED_OUTPUT:
		CHECK(*produced == outcap ||
			  (p->marks != NULL && p->marks_n == p->marks_cap),
		      "NEED_OUTPUT with room left");
		break;
	case PROTO_DONE:
		CHECK(eof, "DONE without eof");
		CHECK(*consumed == inlen, "DONE with input left");
		break;
	case PROTO_E_TOO_LARGE:
	case PROTO_E_TRUNCATED:
		CHECK(c->mode == PROTO_FRAME, "frame error outside frame mode");
		break;
	default:
		fail("unexpected status", __LINE__);
	}
	return st;
}

static int setup(struct proto *p, const struct cfg *c, uint8_t *msgbuf,
		 size_t cap)
{
	if (!c->by_hand)
		return proto_init(p, c->mode, c->delim, c->max_msg, msgbuf,
				  cap);
	/* proto.h: valid when zero-filled and the configuration set. */
	memset(p, 0, sizeof(*p));
	p->mode = c->mode;
	p->delim = c->delim;
	p->max_msg = c->max_msg;
	p->msgbuf = msgbuf;
	p->msgbuf_cap = cap;
	return 0;
}

/* Terminal statuses stay terminal: no input taken, no output given. */
static void check_terminal(struct proto *p, const struct cfg *c, int st,
			   const uint8_t *in, size_t inlen, uint8_t *out,
			   size_t outcap)
{
	size_t consumed = 1, produced = 1;
	int again =
	    proto_run(p, in, inlen, 1, out, outcap, &consumed, &produced);

	CHECK(again == st, "terminal status changed");
	CHECK(proto_pending(p) <= pending_bound(c), "pending over bound");
	CHECK(consumed == 0 && produced == 0, "terminal call made progress");
}

static void feed_whole(const struct cfg *c, const uint8_t *s, size_t n,
		       uint8_t *msgbuf, size_t cap, uint8_t *out, size_t outcap,
		       struct result *r)
{
	struct proto p;
	size_t consumed, produced;

	CHECK(setup(&p, c, msgbuf, cap) == 0, "proto_init refused config");
	p.marks = r->marks;
	p.marks_cap = r->marks_cap;
	r->status =
	    run_checked(&p, c, s, n, 1, out, outcap, &consumed, &produced);
	r->nmarks = p.marks_n;
	CHECK(is_terminal(r->status), "whole feed did not finish");
	r->out = out;
	r->len = produced;
	r->messages = p.messages;
	r->errors = p.errors;
	check_terminal(&p, c, r->status, s, n, out, outcap);
}

/*
 * Bytes arrive in seeded chunks; each call is offered every byte that has
 * arrived and was not consumed, copied to the end of inwin so that a read
 * past inlen leaves the heap block, and writes to the end of outwin.
 */
static void feed_split(const struct cfg *c, const uint8_t *s, size_t n,
		       uint8_t *msgbuf, size_t cap, uint8_t *inwin,
		       uint8_t *outwin, const struct result *whole,
		       uint8_t *acc, struct result *split)
{
	struct proto p;
	struct proto_mark slots[4];
	uint64_t x = c->seed;
	size_t pos = 0, arrived = 0, len = 0, calls = 0, k;
	size_t budget = 2 * n + whole->len + whole->nmarks + 16;
	int st;

	CHECK(setup(&p, c, msgbuf, cap) == 0, "proto_init refused config");
	split->nmarks = 0;
	if (rnd(&x) & 1) {
		p.marks = slots;
		p.marks_cap = 1 + (size_t)(rnd(&x) % 4);
	}
	arrived = draw_size(&x, n + 1) - 1;
	for (;;) {
		size_t inlen, outcap, consumed, produced;
		const uint8_t *in;
		uint8_t *out;
		uint64_t r = rnd(&x);
		int eof;

		/* Sometimes more arrives before the engine asked for it. */
		if ((r & 7) == 0 && arrived < n)
			arrived += draw_size(&x, n - arrived);
		inlen = arrived - pos;
		if (inlen > WIN_MAX)
			inlen = WIN_MAX;
		eof = pos + inlen == n;
		in = inwin + WIN_MAX - inlen;
		if (inlen > 0)
			memcpy(inwin + WIN_MAX - inlen, s + pos, inlen);
		else if (r & 8)
			in = NULL;
		/* Rarely no room at all, to probe the outcap == 0 paths. */
		if (((r >> 4) & 31) == 0) {
			outcap = 0;
			out = (r & 512) ? NULL : outwin + WIN_MAX;
		} else {
			outcap = draw_size(&x, WIN_MAX);
			out = outwin + WIN_MAX - outcap;
		}

		CHECK(++calls <= budget, "too many calls: engine stalls");
		st = run_checked(&p, c, in, inlen, eof, out, outcap, &consumed,
				 &produced);
		CHECK(len + produced <= whole->len, "split: output too long");
		for (k = 0; p.marks != NULL && k < p.marks_n; k++) {
			CHECK(slots[k].off < produced &&
				  (k == 0 || slots[k].off > slots[k - 1].off),
			      "split: mark outside this call's output");
			add_mark(split, len + slots[k].off, slots[k].len,
				 slots[k].hdr, slots[k].err);
		}
		if (produced > 0)
			memcpy(acc + len, out, produced);
		len += produced;
		pos += consumed;
		if (st == PROTO_NEED_OUTPUT && outcap > 0)
			CHECK(consumed + produced > 0, "call made no progress");
		if (st == PROTO_NEED_OUTPUT && outcap == 0)
			budget++;
		if (is_terminal(st))
			break;
		if (st == PROTO_NEED_INPUT && arrived == pos) {
			CHECK(arrived < n, "NEED_INPUT with all input given");
			arrived += draw_size(&x, n - arrived);
		}
	}
	CHECK(st == whole->status, "split: final status differs");
	CHECK(len == whole->len, "split: output length differs");
	CHECK(memcmp(acc, whole->out, len) == 0, "split: output differs");
	CHECK(p.messages == whole->messages, "split: message count differs");
	CHECK(p.errors == whole->errors, "split: error count differs");
	if (p.marks != NULL)
		check_marks(split, whole, "split: marks differ");
	inwin[WIN_MAX - 1] = c->delim;
	check_terminal(&p, c, st, inwin + WIN_MAX - 1, 1, outwin, WIN_MAX);
}

/* The argument checks of the API, once per process. */
static void check_args(void)
{
	uint8_t buf[PROTO_MSGBUF_SLACK + 1], out[1] = {0}, in[1] = {'\n'};
	struct proto p;
	size_t consumed = 1, produced = 1;
	int st;

	CHECK(proto_init(NULL, PROTO_RAW, 0, 1, NULL, 0) == PROTO_E_ARGS,
	      "init NULL");
	CHECK(proto_init(&p, (enum proto_mode)3, 0, 1, buf, sizeof(buf)) ==
		  PROTO_E_ARGS,
	      "init bad mode");
	CHECK(p.mode == PROTO_RAW && p.state == PROTO_S_START,
	      "refused init not zeroed");
	CHECK(proto_init(&p, PROTO_LINE, 0, 0, buf, sizeof(buf)) ==
		  PROTO_E_ARGS,
	      "init max_msg 0");
	CHECK(proto_init(&p, PROTO_FRAME, 0, PROTO_MAX_MSG_MAX + 1, buf,
			 sizeof(buf)) == PROTO_E_ARGS,
	      "init max_msg too big");
	CHECK(proto_init(&p, PROTO_RAW, 0, 0, NULL, 0) == PROTO_E_ARGS,
	      "init raw max_msg 0");
	CHECK(proto_init(&p, PROTO_RAW, 0, PROTO_MAX_MSG_MAX + 1, NULL, 0) ==
		  PROTO_E_ARGS,
	      "init raw max_msg too big");
	CHECK(proto_init(&p, PROTO_LINE, 0, 1, NULL, sizeof(buf)) ==
		  PROTO_E_ARGS,
	      "init msgbuf NULL");
	CHECK(proto_init(&p, PROTO_FRAME, 0, 2, buf, sizeof(buf)) ==
		  PROTO_E_ARGS,
	      "init msgbuf too small");
	CHECK(proto_msgbuf_size(1) == sizeof(buf), "proto_msgbuf_size");

	CHECK(proto_init(&p, PROTO_LINE, '\n', 1, buf, sizeof(buf)) == 0,
	      "init good config");
	CHECK(proto_run(NULL, in, 1, 0, out, 1, &consumed, &produced) ==
		      PROTO_E_ARGS &&
		  consumed == 0 && produced == 0,
	      "run p NULL");
	CHECK(proto_run(&p, in, 1, 0, out, 1, NULL, &produced) == PROTO_E_ARGS,
	      "run consumed NULL");
	CHECK(proto_run(&p, in, 1, 0, out, 1, &consumed, NULL) == PROTO_E_ARGS,
	      "run produced NULL");
	CHECK(proto_run(&p, NULL, 1, 0, out, 1, &consumed, &produced) ==
		  PROTO_E_ARGS,
	      "run in NULL");
	CHECK(proto_run(&p, in, 1, 0, NULL, 1, &consumed, &produced) ==
		  PROTO_E_ARGS,
	      "run out NULL");
	p.max_msg = 2; /* now msgbuf is too small for it */
	CHECK(proto_run(&p, in, 1, 0, out, 1, &consumed, &produced) ==
		  PROTO_E_ARGS,
	      "run inconsistent config");
	/* Line mode waiting in PROTO_S_MSG with an empty payload at eof: a
	 * consistent state that no input leads to (the engine enters it only
	 * with input at hand), but the engine handles it; reach it once. */
	p.max_msg = 1;
	p.state = PROTO_S_MSG;
	CHECK(proto_run(&p, NULL, 0, 1, out, 1, &consumed, &produced) ==
		      PROTO_DONE &&
		  consumed == 0 && produced == 0,
	      "empty message at eof");
#ifdef NDEBUG
	/* With assertions on, a corrupt state aborts by design. */
	p.state = (enum proto_state)99;
	st = proto_run(&p, in, 1, 0, out, 1, &consumed, &produced);
	CHECK(st == PROTO_E_ARGS && consumed == 0 && produced == 0,
	      "corrupt state");
	CHECK(proto_run(&p, in, 1, 0, out, 1, &consumed, &produced) == st,
	      "corrupt state not terminal");
#endif
	(void)st;
	for (st = PROTO_E_ARGS - 1; st <= PROTO_DONE + 1; st++)
		CHECK(proto_status_str(st) != NULL && *proto_status_str(st),
		      "status text");
}

static const uint32_t big_max[8] = {
    PROTO_MAX_MSG_MAX,	       PROTO_MAX_MSG_MAX - 1,
    PROTO_MAX_MSG_MAX / 2,     1u << 20,
    PROTO_MAX_MSG_DEFAULT,     PROTO_MAX_MSG_DEFAULT - 1,
    PROTO_MAX_MSG_DEFAULT + 1, 4096};

static void parse_cfg(const uint8_t *h, struct cfg *c)
{
	static const enum proto_mode modes[4] = {PROTO_RAW, PROTO_LINE,
						 PROTO_FRAME, PROTO_LINE};
	static const uint8_t delims[3] = {'\n', '\n', '\0'};
	unsigned dsel = (h[0] >> 2) & 3;

	c->mode = modes[h[0] & 3];
	c->delim = dsel == 3 ? h[1] : delims[dsel];
	c->by_hand = (h[0] >> 4) & 1;
	switch (h[2] >> 6) {
	case 0:
	case 1:
		c->max_msg = 1 + (h[2] & 15u);
		break;
	case 2:
		c->max_msg = 1 + ((h[2] & 63u) << 8 | h[3]);
		break;
	default:
		c->max_msg = big_max[h[3] & 7];
		break;
	}
	c->seed = (uint64_t)h[4] << 8 | h[5];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int args_checked;
	static uint8_t *big_msgbuf; /* for max_msg over EXACT_MSGBUF_MAX */
	struct cfg c;
	struct result ref, whole, split;
	const uint8_t *s;
	uint8_t *msgbuf = NULL, *mb, *inwin, *outwin, *refout, *wout, *acc;
	size_t n, cap = 0, bound;

	if (!args_checked) {
		check_args();
		args_checked = 1;
	}
	if (size < HDR_LEN)
		return 0;
	parse_cfg(data, &c);
	s = data + HDR_LEN;
	n = size - HDR_LEN;
	c.seed ^= (uint64_t)n << 16;

	if (c.mode != PROTO_RAW) {
		cap = proto_msgbuf_size(c.max_msg);
		if (cap <= EXACT_MSGBUF_MAX) {
			msgbuf = malloc(cap);
			mb = msgbuf;
		} else {
			/* Allocated once: the tail of it, so that overflow
			 * still leaves the heap block. */
			if (big_msgbuf == NULL)
				big_msgbuf = malloc(
				    proto_msgbuf_size(PROTO_MAX_MSG_MAX));
			mb = big_msgbuf == NULL
				 ? NULL
				 : big_msgbuf +
				       proto_msgbuf_size(PROTO_MAX_MSG_MAX) -
				       cap;
		}
		if (mb == NULL)
			abort();
	} else {
		mb = NULL;
	}

	bound = ref_out_bound(&c, s, n);
	refout = malloc(bound + 1);
	/* Room beyond the expected output: an engine that says too much is
	 * seen producing it, not stopped by a full buffer. */
	wout = malloc(bound + 64);
	acc = malloc(bound + 1);
	inwin = malloc(WIN_MAX);
	outwin = malloc(WIN_MAX);
	/* Every message takes at least one input byte. */
	ref.marks_cap = whole.marks_cap = split.marks_cap = n + 1;
	ref.marks = malloc(3 * (n + 1) * sizeof(struct proto_mark));
	if (!refout || !wout || !acc || !inwin || !outwin || !ref.marks)
		abort();
	whole.marks = ref.marks + (n + 1);
	split.marks = whole.marks + (n + 1);

	ref.out = refout;
	ref_run(&c, s, n, &ref);
	feed_whole(&c, s, n, mb, cap, wout, bound + 64, &whole);
	CHECK(whole.status == ref.status, "status differs from reference");
	CHECK(whole.len == ref.len, "output length differs from reference");
	CHECK(memcmp(whole.out, ref.out, ref.len) == 0,
	      "output differs from reference");
	CHECK(whole.messages == ref.messages, "message count differs");
	if (c.mode == PROTO_LINE)
		CHECK(whole.errors == ref.errors, "ERR count differs");
	check_marks(&whole, &ref, "marks differ from reference");

	feed_split(&c, s, n, mb, cap, inwin, outwin, &whole, acc, &split);

	free(ref.marks);
	free(outwin);
	free(inwin);
	free(acc);
	free(wout);
	free(refout);
	free(msgbuf);
	return 0;
}
