/*
 * test_session.c - the session (src/session.c) on states the fuzz target
 * (fuzz/session_fuzz.c) reaches only by chance: configurations refused,
 * the connection gone at the first read or after a wait, a protocol error
 * in input buffered before a shutdown request (the close already under
 * way keeps its reason), and a client that takes its echoes a few bytes
 * at a time while it keeps sending (input left over behind the engine).
 * The operations here have no blocking calls: the session waits in
 * ops->wait (blocking_ops adds read_wait and write_wait, which wait
 * inside the call).
 *
 * The PROXY header phase (SPEC 8): the header in one read with data
 * behind it, one byte per read, over several reads; malformed, cut by
 * EOF, late (its own deadline, not the idle timeout), interrupted by a
 * stop request or a reset; the client refused by ops->proxied; each with
 * and without the blocking operations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "proxy.h"
#include "session.h"

/* A peer: input to read (then EOF, or -1 when `gone`), output kept. */
static struct peer {
	const uint8_t *in;
	size_t in_len, in_off;
	int gone_at_first_read;
	int again_then_gone; /* nothing at first, then the connection is gone */
	int reads;
	size_t wmax; /* most bytes a write takes (0: all) */
	int stopping;
	size_t rmax;		/* most bytes a read gives (0: all it can) */
	int alternate;		/* every other read finds nothing (AGAIN) */
	int open;		/* the input ends in AGAIN, not EOF */
	int gone_at_end;	/* the input ends in -1, not EOF */
	size_t stop_at;		/* stopping once this many bytes are read */
	int64_t wait_step;	/* a wait lasts this long at most (0: until
				   its deadline) */
	int wait_fails;		/* wait() returns -1 */
	int alt_reads;		/* reads made, for `alternate` */
	int proxied_calls;	/* ops->proxied */
	int proxied_ret;	/* what it returns */
	struct proxy_result pr; /* what it was told */
	uint8_t out[1024];
	size_t out_len;
	int64_t now;
	int shut;
} peer;

static ssize_t p_read(void *io, void *buf, size_t len)
{
	size_t n;

	(void)io;
	if (peer.gone_at_first_read)
		return -1;
	if (peer.again_then_gone)
		return peer.reads++ == 0 ? SESSION_AGAIN : -1;
	if (peer.alternate && peer.alt_reads++ % 2 == 0)
		return SESSION_AGAIN;
	n = peer.in_len - peer.in_off;
	if (n > len)
		n = len;
	if (peer.rmax > 0 && n > peer.rmax)
		n = peer.rmax;
	if (n == 0)
		return peer.open ? SESSION_AGAIN : peer.gone_at_end ? -1 : 0;
	memcpy(buf, peer.in + peer.in_off, n);
	peer.in_off += n;
	if (peer.stop_at > 0 && peer.in_off >= peer.stop_at)
		peer.stopping = 1;
	return (ssize_t)n;
}

static ssize_t p_write(void *io, const void *buf, size_t len)
{
	(void)io;
	if (peer.wmax > 0 && len > peer.wmax)
		len = peer.wmax;
	if (len > sizeof(peer.out) - peer.out_len)
		len = sizeof(peer.out) - peer.out_len;
	memcpy(peer.out + peer.out_len, buf, len);
	peer.out_len += len;
	return (ssize_t)len;
}

static void p_shutdown_wr(void *io)
{
	(void)io;
	peer.shut = 1;
}

static int p_outq(void *io)
{
	(void)io;
	return 0;
}

/* Time passes until the deadline, or wait_step of it. */
static void pass_time(int64_t deadline)
{
	if (peer.wait_step > 0 &&
	    (deadline < 0 || peer.now + peer.wait_step < deadline))
		peer.now += peer.wait_step;
	else if (deadline > peer.now)
		peer.now = deadline;
}

static int p_wait(void *io, int events, int64_t deadline)
{
	(void)io;
	if (peer.wait_fails)
		return -1;
	pass_time(deadline);
	return events;
}

/* The blocking calls: a read that finds nothing waits (time passes)
 * and returns SESSION_AGAIN; a write is a write. */
static ssize_t p_read_wait(void *io, void *buf, size_t len, int64_t deadline)
{
	ssize_t n = p_read(io, buf, len);

	if (n == SESSION_AGAIN)
		pass_time(deadline);
	return n;
}

static ssize_t p_write_wait(void *io, const void *buf, size_t len,
			    int64_t deadline)
{
	(void)deadline;
	return p_write(io, buf, len);
}

static int p_proxied(void *io, const struct proxy_result *r)
{
	(void)io;
	peer.proxied_calls++;
	peer.pr = *r;
	return peer.proxied_ret;
}

static int64_t p_now(void *io)
{
	(void)io;
	return peer.now;
}

static int p_stopping(void *io)
{
	(void)io;
	return peer.stopping;
}

static const struct session_ops ops = {
    .read = p_read,
    .write = p_write,
    .shutdown_wr = p_shutdown_wr,
    .outq = p_outq,
    .wait = p_wait,
    .now_ms = p_now,
    .stopping = p_stopping,
    .proxied = p_proxied,
};

/* The same, waiting inside the reads and writes while serving. */
static const struct session_ops blocking_ops = {
    .read = p_read,
    .write = p_write,
    .shutdown_wr = p_shutdown_wr,
    .outq = p_outq,
    .wait = p_wait,
    .now_ms = p_now,
    .stopping = p_stopping,
    .read_wait = p_read_wait,
    .write_wait = p_write_wait,
    .proxied = p_proxied,
};

/* Without ops->proxied: the header is read and dropped, nobody told. */
static const struct session_ops silent_ops = {
    .read = p_read,
    .write = p_write,
    .shutdown_wr = p_shutdown_wr,
    .outq = p_outq,
    .wait = p_wait,
    .now_ms = p_now,
    .stopping = p_stopping,
};

static uint8_t in[64], out[64], msgbuf[256];

static struct session_cfg cfg_of(enum proto_mode mode)
{
	struct session_cfg c;

	memset(&c, 0, sizeof(c));
	c.mode = mode;
	c.delim = '\n';
	c.max_msg = 16;
	c.idle_ms = 1000;
	c.linger_ms = 100;
	c.linger_poll_ms = 10;
	c.bufsize = sizeof(in);
	return c;
}

static void test_init_refused(void **state)
{
	struct session s;
	struct session_cfg c = cfg_of(PROTO_LINE);

	(void)state;
	memset(&peer, 0, sizeof(peer));
	c.bufsize = 0;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    -1);
	c.bufsize = sizeof(in);
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, NULL, out, msgbuf, sizeof(msgbuf)),
	    -1);
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, NULL, msgbuf, sizeof(msgbuf)),
	    -1);
	/* A maximum the engine refuses. */
	c.max_msg = 0;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    -1);
	/* No message buffer: accepted, served as a close. */
	c.max_msg = 16;
	assert_int_equal(session_init(&s, &c, &ops, NULL, in, out, NULL, 0), 0);
	assert_int_equal(s.phase, SESSION_CLOSING);
	assert_int_equal(s.reason, CLOSE_NOMEM);
	session_serve(&s);
	assert_int_equal(s.phase, SESSION_DONE);
	assert_int_equal(s.reason, CLOSE_NOMEM);
	assert_true(peer.shut);
}

/* The connection is gone before a byte is read: a reset, nothing sent. */
static void test_gone_at_first_read(void **state)
{
	struct session s;
	struct session_cfg c = cfg_of(PROTO_RAW);

	(void)state;
	memset(&peer, 0, sizeof(peer));
	peer.gone_at_first_read = 1;
	assert_int_equal(session_init(&s, &c, &ops, NULL, in, out, NULL, 0), 0);
	session_serve(&s);
	assert_int_equal(s.phase, SESSION_DONE);
	assert_int_equal(s.reason, CLOSE_RESET);
	assert_int_equal(s.rep.reason, CLOSE_RESET);
	assert_int_equal(peer.out_len, 0);
	assert_false(peer.shut);
}

/* A shutdown request with input buffered that the engine then refuses
 * (a frame over max_msg): the close under way keeps its reason, what was
 * echoed before stays echoed. */
static void test_error_while_closing(void **state)
{
	static const uint8_t frames[] = {0, 0, 0, 2, 'o', 'k', 0, 0, 1, 0};
	struct session s;
	struct session_cfg c = cfg_of(PROTO_FRAME);

	(void)state;
	memset(&peer, 0, sizeof(peer));
	peer.in = frames;
	peer.in_len = sizeof(frames);
	peer.stopping = 1;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    0);
	session_serve(&s);
	assert_int_equal(s.phase, SESSION_DONE);
	assert_int_equal(s.reason, CLOSE_SHUTDOWN);
	assert_int_equal(peer.out_len, 6);
	assert_memory_equal(peer.out, frames, 6);
	assert_int_equal(s.rep.protocol_errors, 1);
	assert_true(peer.shut);
}

/* Nothing to read at first, then the connection is gone: a reset. */
static void test_gone_after_wait(void **state)
{
	struct session s;
	struct session_cfg c = cfg_of(PROTO_RAW);

	(void)state;
	memset(&peer, 0, sizeof(peer));
	peer.again_then_gone = 1;
	assert_int_equal(session_init(&s, &c, &ops, NULL, in, out, NULL, 0), 0);
	session_serve(&s);
	assert_int_equal(s.reason, CLOSE_RESET);
	assert_int_equal(peer.reads, 2);
}

/* The client takes its echoes 10 bytes at a time while 600 bytes wait:
 * the engine stops with input left (no output room), and reading goes on
 * into the room behind it. Everything is echoed, in order. */
static void test_slow_reader(void **state)
{
	static uint8_t data[600];
	struct session s;
	struct session_cfg c = cfg_of(PROTO_RAW);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	memset(&peer, 0, sizeof(peer));
	peer.in = data;
	peer.in_len = sizeof(data);
	peer.wmax = 10;
	assert_int_equal(session_init(&s, &c, &ops, NULL, in, out, NULL, 0), 0);
	session_serve(&s);
	assert_int_equal(s.reason, CLOSE_EOF);
	assert_int_equal(peer.out_len, sizeof(data));
	assert_memory_equal(peer.out, data, sizeof(data));
}

/* ---- the PROXY header (cfg.proxy) ---- */

#define HDR_V1	   "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"
#define HDR_V1_LEN (sizeof(HDR_V1) - 1)
/* v2, LOCAL, UNSPEC, no address block: the proxy's own connection. */
#define HDR_V2_LOCAL	 "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
#define HDR_V2_LOCAL_LEN 16

static const struct session_ops *const both_ops[] = {&ops, &blocking_ops};

static struct session_cfg proxy_cfg(enum proto_mode mode)
{
	struct session_cfg c = cfg_of(mode);

	c.proxy = PROXY_ACCEPT_ANY;
	c.proxy_ms = 3000;
	return c;
}

/* The peer sends in[0..len) (then EOF unless told otherwise), starting
 * at t = 100. */
static void peer_sends(const void *data, size_t len)
{
	memset(&peer, 0, sizeof(peer));
	peer.in = data;
	peer.in_len = len;
	peer.now = 100;
}

static void serve_with(struct session *s, const struct session_cfg *c,
		       const struct session_ops *o)
{
	assert_int_equal(
	    session_init(s, c, o, NULL, in, out, msgbuf, sizeof(msgbuf)), 0);
	session_serve(s);
	assert_int_equal(s->phase, SESSION_DONE);
	assert_int_equal(s->rep.reason, (uint32_t)s->reason);
}

static void assert_told_v1(void)
{
	static const uint8_t src[4] = {192, 0, 2, 1};

	assert_int_equal(peer.proxied_calls, 1);
	assert_int_equal(peer.pr.version, 1);
	assert_int_equal(peer.pr.proxied, 1);
	assert_int_equal(peer.pr.family, AF_INET);
	assert_memory_equal(peer.pr.src, src, 4);
	assert_int_equal(peer.pr.src_port, 56324);
	assert_int_equal(peer.pr.dst_port, 443);
	assert_int_equal(peer.pr.header_len, HDR_V1_LEN);
}

/* A configuration proxy_init refuses is refused; a good one is not. */
static void test_proxy_init(void **state)
{
	struct session s;
	struct session_cfg c = proxy_cfg(PROTO_LINE);

	(void)state;
	memset(&peer, 0, sizeof(peer));
	c.proxy = (enum proxy_accept)7;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    -1);
	c.proxy = (enum proxy_accept) - 1;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    -1);
	c.proxy = PROXY_ACCEPT_V1;
	assert_int_equal(
	    session_init(&s, &c, &ops, NULL, in, out, msgbuf, sizeof(msgbuf)),
	    0);
	assert_int_equal(s.px.accept, PROXY_ACCEPT_V1);
	/* No message buffer: a close before any header is read. */
	assert_int_equal(session_init(&s, &c, &ops, NULL, in, out, NULL, 0), 0);
	session_serve(&s);
	assert_int_equal(s.reason, CLOSE_NOMEM);
	assert_int_equal(peer.proxied_calls, 0);
	assert_int_equal(peer.reads + peer.alt_reads, 0);
}

/* The header and data in one read: the data is echoed, the header is
 * neither echoed nor counted. */
static void test_proxy_header_and_data(void **state)
{
	static const char in1[] = HDR_V1 "hello\nworld\n";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_LINE);

		print_message("ops %zu\n", k);
		peer_sends(in1, sizeof(in1) - 1);
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_EOF);
		assert_int_equal(peer.out_len, 12);
		assert_memory_equal(peer.out, "hello\nworld\n", 12);
		assert_int_equal(s.rep.bytes_in, 12);
		assert_int_equal(s.rep.bytes_out, 12);
		assert_int_equal(s.rep.messages, 2);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_int_equal(s.rep.discarded, 0);
		assert_told_v1();
		assert_false(peer.shut);
	}
}

/* One byte per read, with nothing to read between them: the header is
 * taken whole, then the data, byte by byte. */
static void test_proxy_header_bytewise(void **state)
{
	static const char in1[] = HDR_V1 "abc";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		peer_sends(in1, sizeof(in1) - 1);
		peer.rmax = 1;
		peer.alternate = 1;
		peer.wait_step = 1; /* each byte 1 ms after the one before */
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_EOF);
		assert_int_equal(peer.out_len, 3);
		assert_memory_equal(peer.out, "abc", 3);
		assert_int_equal(s.rep.bytes_in, 3);
		assert_told_v1();
	}
}

/* Over several reads, the last one holding the end of the header and
 * the first bytes of the data (v1 and a v2 LOCAL header). */
static void test_proxy_header_split(void **state)
{
	static const char v1[] = HDR_V1 "0123456789";
	static const char v2[] = HDR_V2_LOCAL "0123456789";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		peer_sends(v1, sizeof(v1) - 1);
		peer.rmax = 20; /* 20 + 20 + 5 of header, then 5 of data */
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_EOF);
		assert_int_equal(peer.out_len, 10);
		assert_memory_equal(peer.out, "0123456789", 10);
		assert_int_equal(s.rep.bytes_in, 10);
		assert_told_v1();

		c.proxy = PROXY_ACCEPT_V2;
		peer_sends(v2, sizeof(v2) - 1);
		peer.rmax = 7;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_EOF);
		assert_int_equal(peer.out_len, 10);
		assert_memory_equal(peer.out, "0123456789", 10);
		assert_int_equal(s.rep.bytes_in, 10);
		assert_int_equal(peer.proxied_calls, 1);
		assert_int_equal(peer.pr.version, 2);
		assert_int_equal(peer.pr.command, PROXY_CMD_LOCAL);
		assert_int_equal(peer.pr.proxied, 0);
		assert_int_equal(peer.pr.header_len, HDR_V2_LOCAL_LEN);
	}
}

/* Not a header: closed as after a protocol error (FIN, linger), nothing
 * echoed, the client's bytes never counted as data. */
static void test_proxy_header_bad(void **state)
{
	static const char get[] = "GET / HTTP/1.0\r\n\r\n";
	static const char v2only[] = HDR_V1 "data";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		peer_sends(get, sizeof(get) - 1);
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_BAD);
		assert_int_equal(peer.out_len, 0);
		assert_true(peer.shut);
		assert_int_equal(s.rep.protocol_errors, 1);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(s.rep.bytes_out, 0);
		/* The byte that showed it was header; the rest is dropped. */
		assert_int_equal(s.rep.discarded, sizeof(get) - 2);
		assert_int_equal(peer.proxied_calls, 0);

		/* A v1 header where only v2 is taken. */
		c.proxy = PROXY_ACCEPT_V2;
		peer_sends(v2only, sizeof(v2only) - 1);
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_BAD);
		assert_int_equal(peer.out_len, 0);
		assert_true(peer.shut);
		assert_int_equal(s.rep.protocol_errors, 1);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.proxied_calls, 0);
	}
}

/* EOF before any byte (a health check): ends at once as eof, no FIN
 * of ours, no error. EOF inside the header: a bad header. */
static void test_proxy_header_eof(void **state)
{
	static const char part[] = "PROXY TCP4 192.0.2.1 ";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_LINE);

		print_message("ops %zu\n", k);
		peer_sends(NULL, 0);
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_EOF);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.out_len, 0);
		assert_false(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);

		peer_sends(part, sizeof(part) - 1);
		peer.rmax = 5;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_BAD);
		assert_int_equal(s.rep.protocol_errors, 1);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.out_len, 0);
		assert_true(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);
	}
}

/* No whole header within proxy_ms of the start: a protocol error, at
 * that deadline, not the idle timeout's, however the bytes trickle in
 * (each renews the idle timeout, none the header's). */
static void test_proxy_header_timeout(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		/* Silence after "PROXY ". */
		peer_sends(HDR_V1, 6);
		peer.open = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_TIMEOUT);
		assert_int_equal(s.start_ms, 100);
		assert_true(peer.now >= 100 + 3000);
		assert_int_equal(s.rep.protocol_errors, 1);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.out_len, 0);
		assert_true(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);

		/* Nothing at all. */
		peer_sends(NULL, 0);
		peer.open = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_TIMEOUT);
		assert_int_equal(s.rep.protocol_errors, 1);

		/* A byte every 400 ms, under the idle timeout (1 s) each
		 * time: the header's 3 s still end it. */
		peer_sends(HDR_V1, HDR_V1_LEN);
		peer.rmax = 1;
		peer.alternate = 1;
		peer.wait_step = 400;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_PROXY_TIMEOUT);
		assert_true(peer.in_off < HDR_V1_LEN);
		assert_true(peer.in_off >= 3000 / 400 - 1);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.proxied_calls, 0);

		/* A header in time, then silence: the idle timeout, counted
		 * from the header's end, past the header's deadline. */
		c.idle_ms = 5000;
		peer_sends(HDR_V1, HDR_V1_LEN);
		peer.open = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_IDLE);
		assert_true(peer.now >= 100 + 5000);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_int_equal(peer.proxied_calls, 1);
	}
}

/* A stop request before or during the header: closed for the shutdown,
 * no error, nothing echoed. */
static void test_proxy_header_stop(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		peer_sends(HDR_V1 "x", HDR_V1_LEN + 1);
		peer.stopping = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_SHUTDOWN);
		/* Not a byte read as header or data: all dropped while
		 * lingering. */
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(s.rep.discarded, HDR_V1_LEN + 1);
		assert_int_equal(peer.out_len, 0);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_true(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);

		peer_sends(HDR_V1 "x", HDR_V1_LEN + 1);
		peer.rmax = 10;
		peer.stop_at = 20;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_SHUTDOWN);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.out_len, 0);
		assert_true(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);
	}
}

/* ops->proxied refuses the client (over --max-per-ip): the session ends
 * at once, nothing sent, no FIN, no lingering. */
static void test_proxy_rejected(void **state)
{
	static const char in1[] = HDR_V1 "hello\n";
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_LINE);

		print_message("ops %zu\n", k);
		peer_sends(in1, sizeof(in1) - 1);
		peer.proxied_ret = -1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_REJECTED);
		assert_int_equal(s.rep.reason, CLOSE_REJECTED);
		assert_int_equal(peer.out_len, 0);
		assert_int_equal(s.rep.bytes_out, 0);
		assert_int_equal(s.rep.messages, 0);
		assert_int_equal(s.rep.protocol_errors, 0);
		assert_false(peer.shut);
		assert_told_v1();
	}
}

/* Without ops->proxied the header is taken and the client served. */
static void test_proxy_no_callback(void **state)
{
	static const char in1[] = HDR_V1 "hi\n";
	struct session s;
	struct session_cfg c = proxy_cfg(PROTO_LINE);

	(void)state;
	peer_sends(in1, sizeof(in1) - 1);
	serve_with(&s, &c, &silent_ops);
	assert_int_equal(s.reason, CLOSE_EOF);
	assert_int_equal(peer.out_len, 3);
	assert_memory_equal(peer.out, "hi\n", 3);
	assert_int_equal(s.rep.bytes_in, 3);
	assert_int_equal(peer.proxied_calls, 0);
}

/* The connection gone during the header (a read's -1, or the wait
 * failing): a reset, nothing sent, no FIN. */
static void test_proxy_header_reset(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		print_message("ops %zu\n", k);
		peer_sends(HDR_V1, 10);
		peer.gone_at_end = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_RESET);
		assert_int_equal(peer.out_len, 0);
		assert_false(peer.shut);
		assert_int_equal(s.rep.bytes_in, 0);
		assert_int_equal(peer.proxied_calls, 0);

		peer_sends(NULL, 0);
		peer.gone_at_first_read = 1;
		serve_with(&s, &c, both_ops[k]);
		assert_int_equal(s.reason, CLOSE_RESET);
		assert_false(peer.shut);
	}
	/* Without read_wait the session waits in ops->wait between reads. */
	{
		struct session s;
		struct session_cfg c = proxy_cfg(PROTO_RAW);

		peer_sends(HDR_V1, 10);
		peer.open = 1;
		peer.wait_fails = 1;
		serve_with(&s, &c, &ops);
		assert_int_equal(s.reason, CLOSE_RESET);
		assert_false(peer.shut);
		assert_int_equal(peer.proxied_calls, 0);
		assert_int_equal(peer.in_off, 10);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_refused),
	    cmocka_unit_test(test_gone_at_first_read),
	    cmocka_unit_test(test_error_while_closing),
	    cmocka_unit_test(test_gone_after_wait),
	    cmocka_unit_test(test_slow_reader),
	    cmocka_unit_test(test_proxy_init),
	    cmocka_unit_test(test_proxy_header_and_data),
	    cmocka_unit_test(test_proxy_header_bytewise),
	    cmocka_unit_test(test_proxy_header_split),
	    cmocka_unit_test(test_proxy_header_bad),
	    cmocka_unit_test(test_proxy_header_eof),
	    cmocka_unit_test(test_proxy_header_timeout),
	    cmocka_unit_test(test_proxy_header_stop),
	    cmocka_unit_test(test_proxy_rejected),
	    cmocka_unit_test(test_proxy_no_callback),
	    cmocka_unit_test(test_proxy_header_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
