/*
 * test_proto.c - cmocka unit tests of the protocol engine (src/proto.c).
 *
 * Most tests are rows of (mode, delimiter, max_msg, input, expected output,
 * expected final status, expected counters, comment). One runner feeds each
 * row in several ways - the whole input at once, one byte per call, one byte
 * of output room per call, both, and seeded random splits - and every way
 * must give the same output, status and counters (SPEC 2, oracle property
 * 3). After every call the runner checks the contract of proto_run(): the
 * meaning of each status, progress, the bound on pending state, and that
 * nothing is written past *produced.
 *
 * Input and message buffers handed to the engine are plain heap blocks of
 * exactly the offered size, so that ASan and Valgrind catch any access past
 * them (cmocka's test_malloc() pads blocks and fills them with a pattern);
 * the message buffer is left uninitialised so that MSan catches a read of a
 * byte the engine never stored. Output room is followed by guard bytes and
 * kept filled with a canary, which catches stray writes in every build.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* Frame lengths every length field is tried with (STYLE.md). */
static const uint32_t adversarial_len[] = {
    0, 1, 0 /* max */, 1 /* max + 1 */, 0x7fffffffu, 0x80000000u, 0xffffffffu,
};
#define ADV_MAX	  2 /* index of the entries relative to max_msg */
#define ADV_MAX_1 3

struct tcase {
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	const uint8_t *in;
	size_t inlen;
	const uint8_t *out;
	size_t outlen;
	int status;
	uint64_t messages;
	uint64_t errors;
	const char *what;
	int zeroed; /* skip proto_init: run on a zero-filled struct */
};

/* A row, and a row run on a zero-filled struct (raw mode, max_msg 0). */
#define ROW(...)                                                               \
	{                                                                      \
		__VA_ARGS__, 0                                                 \
	}
#define ZROW(...)                                                              \
	{                                                                      \
		PROTO_RAW, 0, 0, __VA_ARGS__, 1                                \
	}
#define S(s)	     (const uint8_t *)(s), sizeof(s) - 1
#define RAW	     PROTO_RAW, '\n', PROTO_MAX_MSG_DEFAULT
#define LINE(d, max) PROTO_LINE, (d), (max)
#define FRAME(max)   PROTO_FRAME, '\n', (max)
#define ERR_LF	     "ERR too long\n"
#define DONE	     PROTO_DONE
#define TOO_LARGE    PROTO_E_TOO_LARGE
#define TRUNCATED    PROTO_E_TRUNCATED
/* `errors` counts ERR replies and both frame errors, truncated included. */
#define TRUNC_ERRORS 1

static const struct tcase table[] = {
    /* raw: RFC 862, every byte back, nothing held */
    ROW(RAW, S(""), S(""), DONE, 0, 0, "raw: empty input"),
    ROW(RAW, S("\0a\0\377\n\0"), S("\0a\0\377\n\0"), DONE, 0, 0,
	"raw: binary with NULs, 0xff and a newline"),
    ROW(RAW, S("hello\nworld"), S("hello\nworld"), DONE, 0, 0,
	"raw: lines are not messages, the tail is not held"),
    ROW(PROTO_RAW, '\n', 1, S("abcdef\n"), S("abcdef\n"), DONE, 0, 0,
	"raw: max_msg does not limit raw mode"),
    ZROW(S("\0\0\0\5x\n"), S("\0\0\0\5x\n"), DONE, 0, 0,
	 "raw: zero-filled struct echoes"),
    ZROW(S(""), S(""), DONE, 0, 0, "raw: zero-filled struct, empty input"),

    /* line, '\n', max_msg 5 */
    ROW(LINE('\n', 5), S(""), S(""), DONE, 0, 0, "line: empty input"),
    ROW(LINE('\n', 5), S("hello\n"), S("hello\n"), DONE, 1, 0,
	"line: payload of exactly max_msg is echoed with its delimiter"),
    ROW(LINE('\n', 5), S("hello!\n"), S(ERR_LF), DONE, 0, 1,
	"line: payload of max_msg + 1 gets one ERR"),
    ROW(LINE('\n', 5), S("hello!\nok\n"), S(ERR_LF "ok\n"), DONE, 1, 1,
	"line: the message after an ERR is echoed"),
    ROW(LINE('\n', 5), S("hello world, this is far too long\nok\n"),
	S(ERR_LF "ok\n"), DONE, 1, 1,
	"line: way over: one ERR, discarded through the delimiter"),
    ROW(LINE('\n', 5), S("abcdefghijklmnopqrstuvwxyz"), S(ERR_LF), DONE, 0, 1,
	"line: over-long line never terminated: only the ERR reply"),
    ROW(LINE('\n', 5), S("abc"), S("abc"), DONE, 1, 0,
	"line: unterminated tail echoed as it is"),
    ROW(LINE('\n', 5), S("hello"), S("hello"), DONE, 1, 0,
	"line: unterminated tail of exactly max_msg echoed"),
    ROW(LINE('\n', 5), S("hello!"), S(ERR_LF), DONE, 0, 1,
	"line: unterminated tail of max_msg + 1 gets the ERR"),
    ROW(LINE('\n', 5), S("\n\n\n"), S("\n\n\n"), DONE, 3, 0,
	"line: empty lines are messages"),
    ROW(LINE('\n', 5), S("a\nbb\nccc\n"), S("a\nbb\nccc\n"), DONE, 3, 0,
	"line: several messages in one chunk"),
    ROW(LINE('\n', 5), S("a\nbb\nccc"), S("a\nbb\nccc"), DONE, 3, 0,
	"line: several messages then a tail"),
    ROW(LINE('\n', 5), S("toolong\ntoolong!\nab\n"), S(ERR_LF ERR_LF "ab\n"),
	DONE, 1, 2, "line: two over-long lines, one ERR each"),
    ROW(LINE('\n', 5), S("ab\ntoolong\ncd"), S("ab\n" ERR_LF "cd"), DONE, 2, 1,
	"line: ERR between a message and a tail"),
    ROW(LINE('\n', 5), S("hello!\n\n"), S(ERR_LF "\n"), DONE, 1, 1,
	"line: the delimiter ending a discard is not an empty message"),
    ROW(LINE('\n', 5), S("a\0b\r\n"), S("a\0b\r\n"), DONE, 1, 0,
	"line: NUL and CR are payload in lf mode"),
    ROW(LINE('\n', 5), S("toolong\nabcdef"), S(ERR_LF ERR_LF), DONE, 0, 2,
	"line: over-long tail after an over-long line"),

    /* line, NUL delimiter (the classic client's strings) */
    ROW(LINE(0, 5), S("ab\0cd\0"), S("ab\0cd\0"), DONE, 2, 0,
	"line nul: two strings"),
    ROW(LINE(0, 5), S("a\nb\0"), S("a\nb\0"), DONE, 1, 0,
	"line nul: lf is payload"),
    ROW(LINE(0, 5), S("hello!\0ok\0"), S("ERR too long\0ok\0"), DONE, 1, 1,
	"line nul: the ERR reply ends with NUL"),
    ROW(LINE(0, 5), S("\0\0"), S("\0\0"), DONE, 2, 0,
	"line nul: empty strings"),
    ROW(LINE(0, 5), S("abc"), S("abc"), DONE, 1, 0,
	"line nul: unterminated tail"),

    /* line, arbitrary delimiters */
    ROW(LINE(';', 5), S("a;bb;"), S("a;bb;"), DONE, 2, 0,
	"line ';': two messages"),
    ROW(LINE(';', 5), S("a\nb;c"), S("a\nb;c"), DONE, 2, 0,
	"line ';': lf is payload, tail echoed"),
    ROW(LINE(';', 5), S("toolong;ok;"), S("ERR too long;ok;"), DONE, 1, 1,
	"line ';': ERR reply ends with ';'"),
    ROW(LINE(0xff, 5), S("\001\000\377\377"), S("\001\000\377\377"), DONE, 2, 0,
	"line 0xff: NUL in payload, then an empty message"),
    ROW(LINE(0xff, 5), S("\377\377\377"), S("\377\377\377"), DONE, 3, 0,
	"line 0xff: three empty messages"),
    ROW(LINE(0xff, 5), S("abcdefg\377x\377"), S("ERR too long\377x\377"), DONE,
	1, 1, "line 0xff: ERR reply ends with 0xff"),
    ROW(LINE('E', 5),
	S("ab"
	  "E"
	  "toolongE"
	  "cE"),
	S("abE"
	  "ERR too longE"
	  "cE"),
	DONE, 2, 1, "line 'E': delimiter that also occurs in the ERR text"),

    /* line, smallest limits */
    ROW(LINE('\n', 1), S("a\n"), S("a\n"), DONE, 1, 0,
	"line max 1: one-byte payload"),
    ROW(LINE('\n', 1), S("\n"), S("\n"), DONE, 1, 0,
	"line max 1: empty message"),
    ROW(LINE('\n', 1), S("ab\n"), S(ERR_LF), DONE, 0, 1,
	"line max 1: two bytes get the ERR"),
    ROW(LINE('\n', 1), S("ab\nc\n"), S(ERR_LF "c\n"), DONE, 1, 1,
	"line max 1: message after the ERR"),
    ROW(LINE('\n', 1), S("a"), S("a"), DONE, 1, 0, "line max 1: one-byte tail"),
    ROW(LINE('\n', 1), S("ab"), S(ERR_LF), DONE, 0, 1,
	"line max 1: two-byte tail gets the ERR"),
    ROW(LINE('\n', 1), S("a\nb\n\n"), S("a\nb\n\n"), DONE, 3, 0,
	"line max 1: several messages"),
    ROW(LINE('\n', 2), S("ab\n"), S("ab\n"), DONE, 1, 0,
	"line max 2: payload of max"),
    ROW(LINE('\n', 2), S("abc\n"), S(ERR_LF), DONE, 0, 1,
	"line max 2: payload of max + 1"),
    ROW(LINE('\n', 2), S("abc\nde\nf"), S(ERR_LF "de\nf"), DONE, 2, 1,
	"line max 2: ERR, message, tail"),
    ROW(LINE('\n', 2), S("ab"), S("ab"), DONE, 1, 0, "line max 2: tail of max"),
    ROW(LINE('\n', 2), S("abc"), S(ERR_LF), DONE, 0, 1,
	"line max 2: tail of max + 1"),

    /* frame, max_msg 5 */
    ROW(FRAME(5), S(""), S(""), DONE, 0, 0, "frame: empty input"),
    ROW(FRAME(5), S("\0\0\0\0"), S("\0\0\0\0"), DONE, 1, 0,
	"frame: L = 0 is an empty frame"),
    ROW(FRAME(5), S("\0\0\0\1x"), S("\0\0\0\1x"), DONE, 1, 0, "frame: L = 1"),
    ROW(FRAME(5), S("\0\0\0\5hello"), S("\0\0\0\5hello"), DONE, 1, 0,
	"frame: L = max_msg"),
    ROW(FRAME(5), S("\0\0\0\6hello!"), S(""), TOO_LARGE, 0, 1,
	"frame: L = max_msg + 1"),
    ROW(FRAME(5), S("\0\0\0\1a\0\0\0\6hello!"), S("\0\0\0\1a"), TOO_LARGE, 1, 1,
	"frame: frames before a too-large one are still emitted"),
    ROW(FRAME(5), S("\0\0\0\6"), S(""), TOO_LARGE, 0, 1,
	"frame: a too-large header alone is too large, not truncated"),
    ROW(FRAME(5), S("\0\0\0\6hello!\0\0\0\1a"), S(""), TOO_LARGE, 0, 1,
	"frame: nothing after a too-large frame is echoed"),
    ROW(FRAME(5), S("\0\0"), S(""), TRUNCATED, 0, TRUNC_ERRORS,
	"frame: incomplete header at eof"),
    ROW(FRAME(5), S("\0\0\0\5hel"), S(""), TRUNCATED, 0, TRUNC_ERRORS,
	"frame: incomplete body at eof"),
    ROW(FRAME(5), S("\0\0\0\1a\0\0\0\5hel"), S("\0\0\0\1a"), TRUNCATED, 1,
	TRUNC_ERRORS, "frame: frames before a truncated one are kept"),
    ROW(FRAME(5), S("\0\0\0\1a\0\0"), S("\0\0\0\1a"), TRUNCATED, 1,
	TRUNC_ERRORS, "frame: frame then an incomplete header"),
    ROW(FRAME(5), S("\0\0\0\2ab\0\0\0\0"), S("\0\0\0\2ab\0\0\0\0"), DONE, 2, 0,
	"frame: two frames back to back"),
    ROW(FRAME(5), S("\0\0\0\4\0\0\0\4\0\0\0\0"), S("\0\0\0\4\0\0\0\4\0\0\0\0"),
	DONE, 2, 0, "frame: a payload that looks like a header"),
    ROW(FRAME(5), S("\0\0\0\3a\nb"), S("\0\0\0\3a\nb"), DONE, 1, 0,
	"frame: the delimiter means nothing in frame mode"),
    ROW(FRAME(5), S("\377\377\377\377"), S(""), TOO_LARGE, 0, 1,
	"frame: L = 0xffffffff"),
    ROW(FRAME(5), S("\200\0\0\0"), S(""), TOO_LARGE, 0, 1,
	"frame: L = 0x80000000 (not a negative length)"),
    ROW(FRAME(5), S("\177\377\377\377"), S(""), TOO_LARGE, 0, 1,
	"frame: L = 0x7fffffff"),
    ROW(FRAME(1), S("\0\0\0\0\0\0\0\1z"), S("\0\0\0\0\0\0\0\1z"), DONE, 2, 0,
	"frame max 1: L = 0 then L = max"),
    ROW(FRAME(1), S("\0\0\0\2ab"), S(""), TOO_LARGE, 0, 1,
	"frame max 1: L = 2"),
    ROW(FRAME(1), S("\1\0\0\0z"), S(""), TOO_LARGE, 0, 1,
	"frame max 1: the length is big-endian (0x01000000, not 1)"),
    ROW(FRAME(PROTO_MAX_MSG_MAX), S("\1\0\0\0abc"), S(""), TRUNCATED, 0,
	TRUNC_ERRORS, "frame max 16M: L = 0x01000000 is accepted, then cut"),
    ROW(FRAME(PROTO_MAX_MSG_MAX), S("\1\0\0\1"), S(""), TOO_LARGE, 0, 1,
	"frame max 16M: L = 0x01000001"),
    ROW(FRAME(PROTO_MAX_MSG_MAX), S("\0\0\0\2hi"), S("\0\0\0\2hi"), DONE, 1, 0,
	"frame max 16M: a small frame"),
};

/* How the runner feeds a case (all must agree). */
enum way {
	WAY_AT_ONCE,  /* whole input with eof, output room for everything */
	WAY_BYTEWISE, /* one input byte per call, then an eof-only call */
	WAY_OUT1,     /* whole rest with eof, one byte of output room */
	WAY_BOTH1,    /* one byte in and one byte of room per call */
	WAY_RANDOM,   /* seeded random chunks (some empty) and room */
	WAY_COUNT,
};
static const char *const way_name[WAY_COUNT] = {
    "at once",	     "one byte at a time",
    "output room 1", "one byte in and out",
    "random splits",
};
#define RANDOM_SEEDS 3
#define CHUNK_MAX    17u
#define CANARY	     0xa5u
#define OUT_GUARD    16u

static unsigned long n_checks;
static unsigned long n_cases;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		n_checks++;                                                    \
		if (!(cond))                                                   \
			fail_msg(__VA_ARGS__);                                 \
	} while (0)
/* A check inside the runner names the case and the way of feeding it. */
#define RCHECK(cond, fmt, ...)                                                 \
	CHECK(cond, "case \"%s\" fed %s: " fmt, c->what, way_name[way],        \
	      ##__VA_ARGS__)

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static int is_terminal(int st)
{
	return st == PROTO_DONE || st < 0;
}

static size_t first_difference(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	return i;
}

/* An uninitialised block of exactly n bytes, outside cmocka's allocator. */
static uint8_t *raw_alloc(size_t n)
{
	uint8_t *b = malloc(n > 0 ? n : 1);

	assert_non_null(b);
	return b;
}

/*
 * Index of the first byte of out[made..size) that is no longer the canary,
 * or size. Large room is checked just past *produced and at its end only:
 * checking all of it after each of a million one-byte calls is quadratic.
 */
#define CANARY_WINDOW 32u
static size_t canary_damage(const uint8_t *out, size_t made, size_t size)
{
	size_t k, end = size;

	if (size - made > 2 * CANARY_WINDOW)
		end = made + CANARY_WINDOW;
	for (k = made; k < end && out[k] == CANARY; k++)
		;
	if (k < end || end == size)
		return k;
	for (k = size - CANARY_WINDOW; k < size && out[k] == CANARY; k++)
		;
	return k;
}

/* Feed case c to a fresh engine in the given way and check every call. */
static void run_way(const struct tcase *c, enum way way, uint32_t seed)
{
	const size_t bigcap = c->outlen + 64;
	const size_t bound =
	    c->mode == PROTO_RAW ? 0 : (size_t)c->max_msg + PROTO_MSGBUF_SLACK;
	struct proto p;
	uint8_t *msgbuf = NULL;
	uint8_t *in_all = NULL;
	uint8_t *chunk = raw_alloc(CHUNK_MAX);
	uint8_t *scratch;
	uint8_t *got = test_malloc(c->outlen + 1);
	size_t scratch_cap;
	size_t pos = 0, total = 0, calls = 0, empty_calls = 0, k;
	int st, eof_sent = 0;
	uint32_t rng = seed;

	if (c->zeroed) {
		memset(&p, 0, sizeof(p));
	} else {
		size_t cap = 0;

		if (c->mode != PROTO_RAW) {
			cap = proto_msgbuf_size(c->max_msg);
			msgbuf = raw_alloc(cap);
		}
		st = proto_init(&p, c->mode, c->delim, c->max_msg, msgbuf, cap);
		RCHECK(st == 0, "proto_init returned %d", st);
	}
	if (c->inlen > 0) {
		in_all = raw_alloc(c->inlen);
		memcpy(in_all, c->in, c->inlen);
	}
	scratch_cap = way == WAY_AT_ONCE || way == WAY_BYTEWISE ? bigcap
		      : way == WAY_RANDOM			? CHUNK_MAX
								: 1;
	scratch = raw_alloc(scratch_cap + OUT_GUARD);
	memset(scratch, CANARY, scratch_cap + OUT_GUARD);

	for (;;) {
		const size_t rest = c->inlen - pos;
		const uint8_t *in;
		size_t feed, cap = scratch_cap, used, made;
		uint64_t msgs_before = p.messages, errs_before = p.errors;
		int eof;

		switch (way) {
		case WAY_AT_ONCE:
		case WAY_OUT1:
			feed = rest;
			eof = 1;
			break;
		case WAY_BYTEWISE:
		case WAY_BOTH1:
			feed = rest > 0 ? 1 : 0;
			eof = rest == 0;
			break;
		default: {
			uint32_t r = xorshift32(&rng);

			cap = 1 + (r >> 8) % CHUNK_MAX;
			if (eof_sent) {
				/* eof promised that no input follows the
				 * rest: offer all of it again. */
				feed = rest;
				eof = 1;
				break;
			}
			feed = r % 8 == 0 ? 0 : 1 + (r >> 3) % CHUNK_MAX;
			if (feed > rest)
				feed = rest;
			eof = feed == rest && (rest == 0 || (r >> 20) & 1);
			break;
		}
		}
		if (feed == 0) {
			in = NULL;
		} else if (feed == rest) {
			in = in_all + pos; /* ends where the block ends */
		} else {
			memcpy(chunk + CHUNK_MAX - feed, in_all + pos, feed);
			in = chunk + CHUNK_MAX - feed;
		}
		eof_sent |= eof;
		if (feed == 0 && !eof)
			empty_calls++;

		used = made = (size_t)-1;
		st = proto_run(&p, in, feed, eof, scratch, cap, &used, &made);
		calls++;

		RCHECK(st == PROTO_NEED_INPUT || st == PROTO_NEED_OUTPUT ||
			   st == PROTO_DONE || st == PROTO_E_TOO_LARGE ||
			   st == PROTO_E_TRUNCATED,
		       "call %zu returned %d", calls, st);
		RCHECK(used <= feed, "call %zu consumed %zu of %zu", calls,
		       used, feed);
		RCHECK(made <= cap, "call %zu produced %zu into %zu", calls,
		       made, cap);
		k = canary_damage(scratch, made, scratch_cap + OUT_GUARD);
		RCHECK(k == scratch_cap + OUT_GUARD,
		       "call %zu wrote out[%zu] past *produced %zu", calls, k,
		       made);
		RCHECK(proto_pending(&p) <= bound,
		       "call %zu left %zu pending (bound %zu)", calls,
		       proto_pending(&p), bound);
		RCHECK(p.messages >= msgs_before && p.errors >= errs_before,
		       "call %zu decreased a counter", calls);
		if (st == PROTO_NEED_INPUT)
			RCHECK(used == feed && !eof,
			       "call %zu: NEED_INPUT with %zu of %zu consumed, "
			       "eof %d",
			       calls, used, feed, eof);
		if (st == PROTO_NEED_OUTPUT)
			RCHECK(
			    made == cap,
			    "call %zu: NEED_OUTPUT with %zu of %zu room used",
			    calls, made, cap);
		if (st == PROTO_DONE)
			RCHECK(
			    eof && used == feed,
			    "call %zu: DONE with eof %d, %zu of %zu consumed",
			    calls, eof, used, feed);
		if (st == PROTO_E_TRUNCATED)
			RCHECK(eof && used == feed,
			       "call %zu: TRUNCATED with eof %d, %zu of %zu "
			       "consumed",
			       calls, eof, used, feed);
		/* Progress (SPEC 2, property 4): a call that is not final
		 * consumes or produces, unless it was offered nothing. */
		if (!is_terminal(st))
			RCHECK(used > 0 || made > 0 ||
				   (st == PROTO_NEED_INPUT && feed == 0),
			       "call %zu made no progress (status %d)", calls,
			       st);

		RCHECK(total + made <= c->outlen,
		       "output exceeds the expected %zu bytes", c->outlen);
		memcpy(got + total, scratch, made);
		memset(scratch, CANARY, made);
		total += made;
		pos += used;
		if (is_terminal(st))
			break;
		RCHECK(calls <= c->inlen + c->outlen + empty_calls + 1,
		       "%zu calls for %zu bytes in and %zu out", calls,
		       c->inlen, c->outlen);
	}

	RCHECK(total == c->outlen, "produced %zu bytes, expected %zu", total,
	       c->outlen);
	k = first_difference(got, c->out, total);
	RCHECK(k == total,
	       "output differs at byte %zu: 0x%02x, expected 0x%02x", k, got[k],
	       c->out[k]);
	RCHECK(st == c->status, "final status %d (%s), expected %d (%s)", st,
	       proto_status_str(st), c->status, proto_status_str(c->status));
	RCHECK(p.messages == c->messages,
	       "messages %" PRIu64 ", expected %" PRIu64, p.messages,
	       c->messages);
	RCHECK(p.errors == c->errors, "errors %" PRIu64 ", expected %" PRIu64,
	       p.errors, c->errors);
	if (st != PROTO_E_TOO_LARGE)
		RCHECK(pos == c->inlen, "only %zu of %zu input bytes consumed",
		       pos, c->inlen);
	if (way == WAY_AT_ONCE)
		RCHECK(calls == 1, "took %zu calls with room for all", calls);

	/* Terminal statuses stay terminal, whatever is offered next. */
	for (int eof = 0; eof <= 1; eof++) {
		const uint8_t more[] = {'x', '\n', 0, 0, 0, 0};
		uint8_t out[8];
		size_t used = 1, made = 1;
		struct proto before = p;
		int again = proto_run(&p, more, sizeof(more), eof, out,
				      sizeof(out), &used, &made);

		RCHECK(again == st && used == 0 && made == 0,
		       "after %d, a call with eof %d returned %d, consumed "
		       "%zu, produced %zu",
		       st, eof, again, used, made);
		RCHECK(p.messages == before.messages &&
			   p.errors == before.errors,
		       "counters changed after the end");
	}

	free(scratch);
	free(in_all);
	free(msgbuf);
	test_free(got);
	free(chunk);
}

static void run_case(const struct tcase *c)
{
	static uint32_t seed = 0x2545f491u;

	for (int w = 0; w < WAY_RANDOM; w++)
		run_way(c, (enum way)w, 0);
	for (int i = 0; i < RANDOM_SEEDS; i++)
		run_way(c, WAY_RANDOM, seed += 0x9e3779b9u);
	n_cases++;
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		run_case(&table[i]);
}

/* A deterministic byte pattern with NULs, 0xff and newlines in it. */
static void fill_pattern(uint8_t *b, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(xorshift32(&seed) >> 13);
}

static void test_raw_large(void **state)
{
	const size_t n = (size_t)1 << 20;
	uint8_t *b = test_malloc(n);
	struct tcase c = ROW(RAW, b, n, b, n, DONE, 0, 0, "raw: 1 MiB binary");

	(void)state;
	fill_pattern(b, n, 7);
	assert_non_null(memchr(b, 0, n));
	run_case(&c);
	test_free(b);
}

/* A payload of max_msg letters (no delimiter in it) at the default limit. */
static void test_line_large(void **state)
{
	const size_t max = PROTO_MAX_MSG_DEFAULT;
	const size_t n = 2 * max + 16;
	uint8_t *in = test_malloc(n);
	uint8_t *out = test_malloc(n);
	struct tcase c;
	size_t i;

	(void)state;
	for (i = 0; i < n; i++)
		in[i] = (uint8_t)('a' + i % 26);

	in[max] = '\n';
	c = (struct tcase)ROW(LINE('\n', PROTO_MAX_MSG_DEFAULT), in, max + 1,
			      in, max + 1, DONE, 1, 0,
			      "line: 64 KiB payload of exactly max_msg");
	run_case(&c);

	/* max_msg + 1 payload bytes, "\n", then "ok\n". */
	in[max] = 'x';
	memcpy(in + max + 1, "\nok\n", 4);
	memcpy(out, ERR_LF "ok\n", 16);
	c = (struct tcase)ROW(LINE('\n', PROTO_MAX_MSG_DEFAULT), in, max + 5,
			      out, 16, DONE, 1, 1,
			      "line: 64 KiB + 1 payload, then a message");
	run_case(&c);

	/* Twice the limit without a delimiter up to eof. */
	c = (struct tcase)ROW(LINE('\n', PROTO_MAX_MSG_DEFAULT), in + max + 5,
			      n - max - 5, out, 13, DONE, 0, 1,
			      "line: 64 KiB over-long tail, never terminated");
	for (i = max + 5; i < n; i++)
		in[i] = (uint8_t)('a' + i % 26);
	run_case(&c);

	test_free(in);
	test_free(out);
}

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static void test_frame_large(void **state)
{
	const uint32_t max = PROTO_MAX_MSG_DEFAULT;
	const size_t n = PROTO_FRAME_HDR + max + 1;
	uint8_t *b = test_malloc(n);
	struct tcase c;

	(void)state;
	fill_pattern(b, n, 11);
	put_be32(b, max);
	c = (struct tcase)ROW(FRAME(PROTO_MAX_MSG_DEFAULT), b, n - 1, b, n - 1,
			      DONE, 1, 0, "frame: 64 KiB frame, L = max_msg");
	run_case(&c);
	put_be32(b, max + 1);
	c = (struct tcase)ROW(FRAME(PROTO_MAX_MSG_DEFAULT), b, n, b, 0,
			      TOO_LARGE, 0, 1,
			      "frame: 64 KiB + 1 frame, L = max_msg + 1");
	run_case(&c);
	test_free(b);
}

/*
 * The adversarial length table, at the smallest, a small, the default and
 * the largest max_msg, each frame alone and after a valid frame: a header
 * of L then min(L, BODY_MAX) payload bytes.
 */
#define BODY_MAX 300u
static void test_frame_length_table(void **state)
{
	static const uint32_t maxes[] = {1, 5, PROTO_MAX_MSG_DEFAULT,
					 PROTO_MAX_MSG_MAX};
	static const uint8_t lead[] = {0, 0, 0, 1, 'Z'};
	uint8_t in[sizeof(lead) + PROTO_FRAME_HDR + BODY_MAX];
	char what[96];

	(void)state;
	for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
		for (size_t a = 0;
		     a < sizeof(adversarial_len) / sizeof(adversarial_len[0]);
		     a++) {
			uint32_t len = adversarial_len[a];
			size_t body, framelen;

			if (a == ADV_MAX)
				len = maxes[m];
			else if (a == ADV_MAX_1)
				len = maxes[m] + 1;
			body = len < BODY_MAX ? len : BODY_MAX;
			framelen = PROTO_FRAME_HDR + body;
			for (int led = 0; led <= 1; led++) {
				size_t off = led ? sizeof(lead) : 0;
				struct tcase c = {.mode = PROTO_FRAME,
						  .max_msg = maxes[m]};

				memcpy(in, lead, sizeof(lead));
				put_be32(in + off, len);
				fill_pattern(in + off + PROTO_FRAME_HDR, body,
					     len ^ 0x5bd1e995u);
				snprintf(what, sizeof(what),
					 "frame max %" PRIu32 ": L = 0x%" PRIx32
					 "%s",
					 maxes[m], len,
					 led ? " after a frame" : "");
				c.what = what;
				c.in = in;
				c.inlen = off + framelen;
				c.out = in;
				c.messages = (uint64_t)led;
				if (len > maxes[m]) {
					c.outlen = off;
					c.status = TOO_LARGE;
					c.errors = 1;
				} else if (body < len) {
					c.outlen = off;
					c.status = TRUNCATED;
					c.errors = TRUNC_ERRORS;
				} else {
					c.outlen = off + framelen;
					c.status = DONE;
					c.messages++;
				}
				run_case(&c);
			}
		}
	}
}

/* Valid messages whose every incomplete prefix is a case. */
struct valid_msg {
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	const uint8_t *msg;
	size_t len;
};
static const struct valid_msg valid_msgs[] = {
    {LINE('\n', 5), S("hello\n")},  {LINE('\n', 5), S("a\n")},
    {LINE(0, 5), S("ab\0")},	    {LINE(';', 3), S("a\n;")},
    {LINE(0xff, 5), S("\0\377")},   {LINE('\n', 1), S("a\n")},
    {FRAME(5), S("\0\0\0\0")},	    {FRAME(5), S("\0\0\0\1x")},
    {FRAME(5), S("\0\0\0\5hello")}, {FRAME(1), S("\0\0\0\1\n")},
};

/*
 * Every prefix of length 0..n-1 of a valid message, alone and after one
 * complete copy of it: with eof = 0 the engine echoes only the complete copy,
 * holds the prefix and asks for input; with eof = 1 the prefix is a line
 * tail (echoed) or a truncated frame (dropped).
 */
static void test_prefixes(void **state)
{
	uint8_t buf[64], out[64];
	char what[96];

	(void)state;
	for (size_t v = 0; v < sizeof(valid_msgs) / sizeof(valid_msgs[0]);
	     v++) {
		const struct valid_msg *m = &valid_msgs[v];

		for (size_t k = 0; k < m->len; k++) {
			for (int led = 0; led <= 1; led++) {
				const size_t off = led ? m->len : 0;
				const size_t n = off + k;
				uint8_t *mb =
				    raw_alloc(proto_msgbuf_size(m->max_msg));
				struct proto p;
				struct tcase c = {.mode = m->mode,
						  .delim = m->delim,
						  .max_msg = m->max_msg};
				size_t used, made, total = 0;
				int st;

				memcpy(buf, m->msg, m->len);
				memcpy(buf + off, m->msg, k);

				/* At once, eof = 0. */
				assert_int_equal(
				    proto_init(&p, m->mode, m->delim,
					       m->max_msg, mb,
					       proto_msgbuf_size(m->max_msg)),
				    0);
				st = proto_run(&p, n ? buf : NULL, n, 0, out,
					       sizeof(out), &used, &made);
				assert_int_equal(st, PROTO_NEED_INPUT);
				assert_int_equal(used, n);
				assert_int_equal(made, off);
				assert_memory_equal(out, m->msg, off);
				assert_int_equal(proto_pending(&p), k);

				/* One byte at a time, eof = 0. */
				assert_int_equal(
				    proto_init(&p, m->mode, m->delim,
					       m->max_msg, mb,
					       proto_msgbuf_size(m->max_msg)),
				    0);
				for (size_t i = 0; i < n; i++) {
					st = proto_run(
					    &p, buf + i, 1, 0, out + total,
					    sizeof(out) - total, &used, &made);
					assert_int_equal(st, PROTO_NEED_INPUT);
					assert_int_equal(used, 1);
					total += made;
				}
				assert_int_equal(total, off);
				assert_memory_equal(out, m->msg, off);
				assert_int_equal(proto_pending(&p), k);
				free(mb);

				/* eof = 1, every way. */
				snprintf(what, sizeof(what),
					 "prefix %zu of valid message %zu%s", k,
					 v, led ? " after a complete one" : "");
				c.what = what;
				c.in = buf;
				c.inlen = n;
				c.out = buf;
				c.messages = (uint64_t)led;
				if (m->mode == PROTO_LINE) {
					c.outlen = n;
					c.status = DONE;
					c.messages += k > 0;
				} else {
					c.outlen = off;
					c.status = k > 0 ? TRUNCATED : DONE;
					c.errors = k > 0 ? TRUNC_ERRORS : 0;
				}
				run_case(&c);
			}
		}
	}
}

/* Engine fixture: line mode, '\n', max_msg 5. */
struct fixture {
	struct proto p;
	uint8_t *msgbuf;
	size_t cap;
};

static int setup_line5(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));

	f->cap = proto_msgbuf_size(5);
	f->msgbuf = raw_alloc(f->cap);
	if (proto_init(&f->p, PROTO_LINE, '\n', 5, f->msgbuf, f->cap) != 0)
		return -1;
	*state = f;
	return 0;
}

static int setup_frame5(void **state)
{
	struct fixture *f;

	if (setup_line5(state) != 0)
		return -1;
	f = *state;
	return proto_init(&f->p, PROTO_FRAME, 0, 5, f->msgbuf, f->cap) == 0
		   ? 0
		   : -1;
}

static int teardown_engine(void **state)
{
	struct fixture *f = *state;

	free(f->msgbuf);
	test_free(f);
	return 0;
}

/* SPEC 2: the ERR reply comes as soon as the limit is passed, not when the
 * delimiter or eof finally arrives. */
static void test_line_err_is_immediate(void **state)
{
	struct fixture *f = *state;
	const uint8_t *in = (const uint8_t *)"hello!more\nok\n";
	uint8_t out[32];
	size_t used, made, i;
	int st;

	for (i = 0; i < 5; i++) {
		st = proto_run(&f->p, in + i, 1, 0, out, sizeof(out), &used,
			       &made);
		assert_int_equal(st, PROTO_NEED_INPUT);
		assert_int_equal(made, 0);
	}
	st = proto_run(&f->p, in + 5, 1, 0, out, sizeof(out), &used, &made);
	assert_int_equal(st, PROTO_NEED_INPUT);
	assert_int_equal(used, 1);
	assert_int_equal(made, PROTO_ERR_TOO_LONG_LEN + 1);
	assert_memory_equal(out, ERR_LF, made);
	assert_int_equal(f->p.errors, 1);
	assert_int_equal(proto_pending(&f->p), 0);

	/* The rest of the long line is discarded, without a second ERR. */
	st = proto_run(&f->p, in + 6, 4, 0, out, sizeof(out), &used, &made);
	assert_int_equal(st, PROTO_NEED_INPUT);
	assert_int_equal(used, 4);
	assert_int_equal(made, 0);
	st = proto_run(&f->p, in + 10, 4, 0, out, sizeof(out), &used, &made);
	assert_int_equal(st, PROTO_NEED_INPUT);
	assert_int_equal(made, 3);
	assert_memory_equal(out, "ok\n", 3);
	assert_int_equal(f->p.errors, 1);
	assert_int_equal(f->p.messages, 1);
}

/* A too-large length ends the stream as soon as the header is complete,
 * after the frames before it are delivered: the server need not wait. */
static void test_frame_too_large_is_immediate(void **state)
{
	struct fixture *f = *state;
	static const uint8_t in[] = {0, 0, 0, 1, 'a', 0x7f, 0xff, 0xff, 0xff};
	uint8_t out[16];
	size_t used, made;
	int st;

	st =
	    proto_run(&f->p, in, sizeof(in), 0, out, sizeof(out), &used, &made);
	assert_int_equal(st, PROTO_E_TOO_LARGE);
	assert_int_equal(made, 5);
	assert_memory_equal(out, in, 5);
	assert_int_equal(f->p.errors, 1);
	assert_int_equal(f->p.messages, 1);
	assert_string_equal(proto_status_str(st), "frame too large");
}

/* Output room 0 is legal: the engine takes a message and holds it. */
static void test_zero_room(void **state)
{
	struct fixture *f = *state;
	static const uint8_t in[] = "ab\ncd\n";
	uint8_t out[8];
	size_t used = 9, made = 9;
	int st;

	st = proto_run(&f->p, in, 6, 0, NULL, 0, &used, &made);
	assert_int_equal(st, PROTO_NEED_OUTPUT);
	assert_int_equal(made, 0);
	assert_in_range(used, 1, 3);
	assert_int_equal(proto_pending(&f->p), used);
	st = proto_run(&f->p, in + used, 6 - used, 1, out, sizeof(out), &used,
		       &made);
	assert_int_equal(st, PROTO_DONE);
	assert_int_equal(made, 6);
	assert_memory_equal(out, in, 6);
}

static void test_init_rejects(void **state)
{
	static const uint32_t bad_max[] = {0, PROTO_MAX_MSG_MAX + 1,
					   0xffffffffu};
	uint8_t mb[16];
	struct proto p;

	(void)state;
	memset(mb, 0, sizeof(mb));
	for (size_t i = 0; i < sizeof(bad_max) / sizeof(bad_max[0]); i++) {
		for (int mode = PROTO_RAW; mode <= PROTO_FRAME; mode++) {
			memset(&p, 0xee, sizeof(p));
			/* A huge cap, so that only max_msg is wrong. */
			assert_int_equal(proto_init(&p, (enum proto_mode)mode,
						    '\n', bad_max[i], mb,
						    SIZE_MAX),
					 PROTO_E_ARGS);
			/* Left zeroed: a rejected init still is a working
			 * raw engine. */
			assert_int_equal(p.mode, PROTO_RAW);
			assert_int_equal(p.state, PROTO_S_START);
			assert_null(p.msgbuf);
			assert_int_equal(p.messages, 0);
		}
	}
	/* Unknown modes. */
	assert_int_equal(
	    proto_init(&p, (enum proto_mode)3, '\n', 5, mb, sizeof(mb)),
	    PROTO_E_ARGS);
	assert_int_equal(
	    proto_init(&p, (enum proto_mode) - 1, '\n', 5, mb, sizeof(mb)),
	    PROTO_E_ARGS);
	/* A message buffer one byte short, or none. */
	assert_int_equal(
	    proto_init(&p, PROTO_LINE, '\n', 5, mb, proto_msgbuf_size(5) - 1),
	    PROTO_E_ARGS);
	assert_int_equal(
	    proto_init(&p, PROTO_FRAME, '\n', 5, mb, proto_msgbuf_size(5) - 1),
	    PROTO_E_ARGS);
	assert_int_equal(proto_init(&p, PROTO_LINE, '\n', 5, NULL, 0),
			 PROTO_E_ARGS);
	assert_int_equal(proto_init(&p, PROTO_FRAME, '\n', 5, NULL, 64),
			 PROTO_E_ARGS);
	assert_int_equal(proto_init(NULL, PROTO_RAW, '\n', 5, NULL, 0),
			 PROTO_E_ARGS);
}

static void test_init_accepts(void **state)
{
	const size_t big = proto_msgbuf_size(PROTO_MAX_MSG_MAX);
	uint8_t *mb = raw_alloc(big);
	uint8_t small[5];
	struct proto p;

	(void)state;
	assert_int_equal(proto_msgbuf_size(1), 1 + PROTO_MSGBUF_SLACK);
	assert_int_equal(big, (size_t)PROTO_MAX_MSG_MAX + PROTO_MSGBUF_SLACK);
	for (int mode = PROTO_LINE; mode <= PROTO_FRAME; mode++) {
		memset(&p, 0xee, sizeof(p));
		assert_int_equal(proto_init(&p, (enum proto_mode)mode, ';', 1,
					    small, sizeof(small)),
				 0);
		assert_int_equal(p.mode, mode);
		assert_int_equal(p.delim, ';');
		assert_int_equal(p.max_msg, 1);
		assert_int_equal(p.state, PROTO_S_START);
		assert_int_equal(p.msg_len, 0);
		assert_int_equal(p.messages, 0);
		assert_int_equal(p.errors, 0);
		assert_int_equal(proto_init(&p, (enum proto_mode)mode, '\n',
					    PROTO_MAX_MSG_MAX, mb, big),
				 0);
		assert_int_equal(p.max_msg, PROTO_MAX_MSG_MAX);
	}
	/* Raw mode needs no message buffer. */
	assert_int_equal(proto_init(&p, PROTO_RAW, '\n', 5, NULL, 0), 0);
	free(mb);
}

/* proto_init on a used engine starts it afresh, counters included. */
static void test_init_resets(void **state)
{
	struct fixture *f = *state;
	uint8_t out[32];
	size_t used, made;

	assert_int_equal(proto_run(&f->p, (const uint8_t *)"a\ntoolong\nbc", 12,
				   0, out, sizeof(out), &used, &made),
			 PROTO_NEED_INPUT);
	assert_int_equal(f->p.messages, 1);
	assert_int_equal(f->p.errors, 1);
	assert_int_equal(proto_pending(&f->p), 2);
	assert_int_equal(
	    proto_init(&f->p, PROTO_LINE, '\n', 5, f->msgbuf, f->cap), 0);
	assert_int_equal(f->p.messages, 0);
	assert_int_equal(f->p.errors, 0);
	assert_int_equal(proto_pending(&f->p), 0);
	assert_int_equal(proto_run(&f->p, (const uint8_t *)"x\n", 2, 1, out,
				   sizeof(out), &used, &made),
			 PROTO_DONE);
	assert_int_equal(made, 2);
	assert_memory_equal(out, "x\n", 2);
}

/* A rejected call reports PROTO_E_ARGS, sets both outputs to 0 and leaves
 * the engine untouched. */
static void expect_args_error(struct proto *p, const uint8_t *in, size_t inlen,
			      uint8_t *out, size_t outcap, size_t *consumed,
			      size_t *produced)
{
	struct proto before;

	if (consumed != NULL)
		*consumed = 77;
	if (produced != NULL)
		*produced = 77;
	if (p != NULL)
		memcpy(&before, p, sizeof(before));
	assert_int_equal(
	    proto_run(p, in, inlen, 0, out, outcap, consumed, produced),
	    PROTO_E_ARGS);
	if (consumed != NULL)
		assert_int_equal(*consumed, 0);
	if (produced != NULL)
		assert_int_equal(*produced, 0);
	if (p != NULL)
		assert_memory_equal(&before, p, sizeof(before));
}

static void test_run_args(void **state)
{
	struct fixture *f = *state;
	static const uint8_t in[] = "ab\n";
	uint8_t out[8];
	size_t used, made;
	struct proto bad;

	expect_args_error(&f->p, NULL, 3, out, sizeof(out), &used, &made);
	expect_args_error(&f->p, in, 3, NULL, sizeof(out), &used, &made);
	expect_args_error(&f->p, in, 3, out, sizeof(out), NULL, &made);
	expect_args_error(&f->p, in, 3, out, sizeof(out), &used, NULL);
	expect_args_error(NULL, in, 3, out, sizeof(out), &used, &made);

	/* Inconsistent configuration set by hand. */
	bad = f->p;
	bad.msgbuf = NULL;
	expect_args_error(&bad, in, 3, out, sizeof(out), &used, &made);
	bad = f->p;
	bad.msgbuf_cap = proto_msgbuf_size(5) - 1;
	expect_args_error(&bad, in, 3, out, sizeof(out), &used, &made);
	bad = f->p;
	bad.max_msg = 0;
	expect_args_error(&bad, in, 3, out, sizeof(out), &used, &made);
	bad = f->p;
	bad.max_msg = PROTO_MAX_MSG_MAX + 1;
	bad.msgbuf_cap = SIZE_MAX;
	expect_args_error(&bad, in, 3, out, sizeof(out), &used, &made);
	bad = f->p;
	bad.mode = (enum proto_mode)3;
	expect_args_error(&bad, in, 3, out, sizeof(out), &used, &made);

	/* The rejected calls did not disturb the engine. */
	assert_int_equal(
	    proto_run(&f->p, in, 3, 1, out, sizeof(out), &used, &made),
	    PROTO_DONE);
	assert_int_equal(made, 3);
	assert_memory_equal(out, in, 3);

	/* NULL buffers with zero lengths are not errors. */
	assert_int_equal(proto_run(&f->p, NULL, 0, 0, NULL, 0, &used, &made),
			 PROTO_DONE);
}

static void test_zero_filled_struct(void **state)
{
	struct proto p;
	static const uint8_t in[] = {'a', 0, '\n', 0xff, 0, 0, 0, 9};
	uint8_t out[sizeof(in)];
	size_t used, made;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(proto_run(&p, in, sizeof(in), 0, out, 3, &used, &made),
			 PROTO_NEED_OUTPUT);
	assert_int_equal(used, 3);
	assert_int_equal(made, 3);
	assert_int_equal(proto_run(&p, in + 3, sizeof(in) - 3, 1, out + 3,
				   sizeof(out) - 3, &used, &made),
			 PROTO_DONE);
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(proto_pending(&p), 0);
	assert_int_equal(p.messages, 0);
}

static void test_status_str(void **state)
{
	static const int all[] = {PROTO_NEED_INPUT,  PROTO_NEED_OUTPUT,
				  PROTO_DONE,	     PROTO_E_TOO_LARGE,
				  PROTO_E_TRUNCATED, PROTO_E_ARGS};

	(void)state;
	assert_string_equal(proto_status_str(PROTO_E_TOO_LARGE),
			    "frame too large");
	assert_string_equal(proto_status_str(PROTO_E_TRUNCATED),
			    "truncated frame");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *s = proto_status_str(all[i]);

		assert_non_null(s);
		assert_true(s[0] != '\0');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(s, proto_status_str(all[j]));
	}
	assert_non_null(proto_status_str(42));
	assert_non_null(proto_status_str(-42));
}

/* Counters over a connection fed in several calls. */
static void test_counters(void **state)
{
	struct fixture *f = *state;
	static const char *const chunks[] = {"a\nb", "b\ntoo", "long\n\n",
					     "xxxxxxxxxxxxx", "\nlast"};
	uint8_t out[64];
	size_t used, made;

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		size_t n = strlen(chunks[i]);

		assert_int_equal(proto_run(&f->p, (const uint8_t *)chunks[i], n,
					   0, out, sizeof(out), &used, &made),
				 PROTO_NEED_INPUT);
		assert_int_equal(used, n);
	}
	/* "a", "bb", "" echoed; "toolong" and the x's answered with ERR. */
	assert_int_equal(f->p.messages, 3);
	assert_int_equal(f->p.errors, 2);
	assert_int_equal(
	    proto_run(&f->p, NULL, 0, 1, out, sizeof(out), &used, &made),
	    PROTO_DONE);
	assert_int_equal(made, 4);
	assert_int_equal(f->p.messages, 4); /* the tail "last" */
	assert_int_equal(f->p.errors, 2);
}

static void test_frame_counters(void **state)
{
	struct fixture *f = *state;
	static const uint8_t in[] = {0,	  0,   0, 0, 0, 0, 0,  2,
				     'h', 'i', 0, 0, 0, 6, 'x'};
	uint8_t out[32];
	size_t used, made;

	assert_int_equal(
	    proto_run(&f->p, in, sizeof(in), 0, out, sizeof(out), &used, &made),
	    PROTO_E_TOO_LARGE);
	assert_int_equal(made, 10);
	assert_int_equal(f->p.messages, 2);
	assert_int_equal(f->p.errors, 1);
	/* Terminal: the counters do not move any more. */
	assert_int_equal(
	    proto_run(&f->p, in, sizeof(in), 1, out, sizeof(out), &used, &made),
	    PROTO_E_TOO_LARGE);
	assert_int_equal(used, 0);
	assert_int_equal(made, 0);
	assert_int_equal(f->p.messages, 2);
	assert_int_equal(f->p.errors, 1);
}

#ifdef NDEBUG
/* With assertions off, a corrupt state fails safe instead of running on. */
static void test_corrupt_state(void **state)
{
	struct fixture *f = *state;
	uint8_t out[8];
	size_t used = 5, made = 5;

	f->p.state = (enum proto_state)99;
	assert_int_equal(proto_run(&f->p, (const uint8_t *)"a\n", 2, 0, out,
				   sizeof(out), &used, &made),
			 PROTO_E_ARGS);
	assert_int_equal(used, 0);
	assert_int_equal(made, 0);
}
#endif

/* Marks: where each message begins, payload length, header, kind; a full
 * mark array stops the call (NEED_OUTPUT) and the next call goes on. */
static void test_marks(void **state)
{
	static const uint8_t in[] = "a\nbb\n\nxxxxxxx\nlast";
	uint8_t msgbuf[5 + PROTO_MSGBUF_SLACK], out[64];
	struct proto p;
	struct proto_mark m[2];
	size_t used, made, off = 0, got = 0, pos = 0;
	/* payload lengths, errors and offsets in the whole output */
	static const struct {
		size_t off;
		uint32_t len;
		uint8_t err;
	} want[] = {{0, 1, 0}, {2, 2, 0}, {5, 0, 0}, {6, 12, 1}, {19, 4, 0}};
	int st, calls = 0;

	(void)state;
	assert_int_equal(
	    proto_init(&p, PROTO_LINE, '\n', 5, msgbuf, sizeof(msgbuf)), 0);
	p.marks = m;
	p.marks_cap = 2;
	do {
		st = proto_run(&p, in + pos, sizeof(in) - 1 - pos, 1, out + off,
			       sizeof(out) - off, &used, &made);
		assert_true(p.marks_n <= 2);
		for (size_t k = 0; k < p.marks_n; k++, got++) {
			assert_true(got < 5);
			assert_int_equal(off + m[k].off, want[got].off);
			assert_int_equal(m[k].len, want[got].len);
			assert_int_equal(m[k].err, want[got].err);
			assert_int_equal(m[k].hdr, 0);
		}
		pos += used;
		off += made;
		assert_true(++calls < 10);
	} while (st == PROTO_NEED_OUTPUT);
	assert_int_equal(st, PROTO_DONE);
	assert_int_equal(got, 5);
	assert_int_equal(calls, 3);
	assert_memory_equal(out, "a\nbb\n\nERR too long\nlast", off);

	/* Frame mode: the header is not payload; marks_cap 0 is refused. */
	{
		static const uint8_t fr[] = {0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0};
		uint8_t fbuf[8 + PROTO_MSGBUF_SLACK];

		assert_int_equal(
		    proto_init(&p, PROTO_FRAME, 0, 8, fbuf, sizeof(fbuf)), 0);
		p.marks = m;
		p.marks_cap = 0;
		assert_int_equal(proto_run(&p, fr, sizeof(fr), 1, out,
					   sizeof(out), &used, &made),
				 PROTO_E_ARGS);
		p.marks_cap = 2;
		assert_int_equal(proto_run(&p, fr, sizeof(fr), 1, out,
					   sizeof(out), &used, &made),
				 PROTO_DONE);
		assert_int_equal(p.marks_n, 2);
		assert_int_equal(m[0].off, 0);
		assert_int_equal(m[0].len, 2);
		assert_int_equal(m[0].hdr, PROTO_FRAME_HDR);
		assert_int_equal(m[1].off, 6);
		assert_int_equal(m[1].len, 0);
	}
}

static int report_counts(void **state)
{
	(void)state;
	print_message("[ INFO     ] %lu cases (%zu table rows), each fed %d "
		      "ways: %lu runner checks\n",
		      n_cases, sizeof(table) / sizeof(table[0]),
		      WAY_RANDOM + RANDOM_SEEDS, n_checks);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_raw_large),
	    cmocka_unit_test(test_line_large),
	    cmocka_unit_test(test_frame_large),
	    cmocka_unit_test(test_frame_length_table),
	    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test_setup_teardown(test_line_err_is_immediate,
					    setup_line5, teardown_engine),
	    cmocka_unit_test_setup_teardown(test_frame_too_large_is_immediate,
					    setup_frame5, teardown_engine),
	    cmocka_unit_test_setup_teardown(test_zero_room, setup_line5,
					    teardown_engine),
	    cmocka_unit_test(test_init_rejects),
	    cmocka_unit_test(test_init_accepts),
	    cmocka_unit_test_setup_teardown(test_init_resets, setup_line5,
					    teardown_engine),
	    cmocka_unit_test_setup_teardown(test_run_args, setup_line5,
					    teardown_engine),
	    cmocka_unit_test(test_zero_filled_struct),
	    cmocka_unit_test(test_status_str),
	    cmocka_unit_test(test_marks),
	    cmocka_unit_test_setup_teardown(test_counters, setup_line5,
					    teardown_engine),
	    cmocka_unit_test_setup_teardown(test_frame_counters, setup_frame5,
					    teardown_engine),
#ifdef NDEBUG
	    cmocka_unit_test_setup_teardown(test_corrupt_state, setup_line5,
					    teardown_engine),
#endif
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, report_counts);
}
