/*
 * test_session.c - the session (src/session.c) on states the fuzz target
 * (fuzz/session_fuzz.c) reaches only by chance: configurations refused,
 * the connection gone at the first read or after a wait, a protocol error
 * in input buffered before a shutdown request (the close already under
 * way keeps its reason), and a client that takes its echoes a few bytes
 * at a time while it keeps sending (input left over behind the engine).
 * The operations here have no blocking calls: the session waits in
 * ops->wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
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
	n = peer.in_len - peer.in_off;
	if (n > len)
		n = len;
	if (n > 0)
		memcpy(buf, peer.in + peer.in_off, n);
	peer.in_off += n;
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

static int p_wait(void *io, int events, int64_t deadline)
{
	(void)io;
	if (deadline > peer.now)
		peer.now = deadline;
	return events;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_refused),
	    cmocka_unit_test(test_gone_at_first_read),
	    cmocka_unit_test(test_error_while_closing),
	    cmocka_unit_test(test_gone_after_wait),
	    cmocka_unit_test(test_slow_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
