/*
 * session.h - one connection served: the loop of read, engine, write,
 * flush, shut down and linger, with every effect on the world reached
 * through a small table of operations.
 *
 * Why a struct of operations rather than a link-time seam: the same
 * process must be able to run the production operations (conn.c: a socket,
 * ppoll, the clock) and, in tests and fuzz targets, simulated ones (a peer
 * and a kernel the fuzz input controls), many sessions side by side, with
 * no relinking; and the next callers (inetd mode, the PROXY protocol, a
 * zero-copy raw path) pass their own. An indirect call per system call
 * costs nothing next to the system call. (s2n-tls's send/recv callbacks,
 * OpenSSL's BIO pairs.)
 *
 * The session never blocks, allocates, reads a global or calls the
 * parent: its clock, its stop request and its waits come from the
 * operations, its buffers and counters belong to the caller.
 */
#ifndef ECHOD_SESSION_H
#define ECHOD_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "proxy.h"
#include "stats.h"

/* session_ops.read: nothing available now. */
#define SESSION_AGAIN (-2)

/* Readiness, for session_ops.wait. */
#define SESSION_EV_IN  1 /* readable, or the peer closed or failed */
#define SESSION_EV_OUT 2 /* writable */

struct session_ops {
	/* Read up to len bytes: > 0 read, 0 at the peer's EOF, SESSION_AGAIN,
	 * or -1 when the connection is gone. */
	ssize_t (*read)(void *io, void *buf, size_t len);
	/* Write up to len bytes: the bytes taken (0 when none fit now), or -1
	 * when the connection is gone. */
	ssize_t (*write)(void *io, const void *buf, size_t len);
	/* Send FIN after what was written. */
	void (*shutdown_wr)(void *io);
	/* Bytes written but not yet acknowledged by the peer (the FIN
	 * included), or -1 when unknown. */
	int (*outq)(void *io);
	/* Wait until one of `events` is ready, the clock reaches deadline_ms
	 * (-1: no deadline) or a stop request may have arrived. Returns the
	 * ready events (0: none, e.g. the deadline), or -1 when waiting
	 * failed (the session then ends as a reset). */
	int (*wait)(void *io, int events, int64_t deadline_ms);
	/* A monotonic clock in milliseconds. */
	int64_t (*now_ms)(void *io);
	/* Whether the server asked every connection to finish (shutdown). */
	int (*stopping)(void *io);
	/* Optional (NULL: read or write, then wait, as above): read or
	 * write, waiting in the call itself, as a blocking server does, so
	 * that a message costs one read and one write and waiting for the
	 * next costs no call of its own. read_wait returns like read, or
	 * SESSION_AGAIN at deadline_ms or when a stop request may have come;
	 * write_wait returns the bytes taken (all of len unless the deadline
	 * or a stop request came first), or -1 when the connection is gone.
	 * Used only while serving: closing and lingering poll. */
	ssize_t (*read_wait)(void *io, void *buf, size_t len,
			     int64_t deadline_ms);
	ssize_t (*write_wait)(void *io, const void *buf, size_t len,
			      int64_t deadline_ms);
	/* Optional, raw mode without -v (NULL: none): bytes go from the
	 * socket back to it through a pipe, never through the session's
	 * buffers (splice). pipe_open makes the pipe and returns the most one
	 * pipe_in may move (0: no pipe, the session goes on copying). pipe_in
	 * moves up to len bytes from the socket into the pipe, which is empty
	 * (returns as read_wait); pipe_out moves up to len bytes, no more
	 * than the pipe holds, to the socket, as write_wait when block is
	 * set, else as write. Used only with read_wait and write_wait. */
	size_t (*pipe_open)(void *io);
	ssize_t (*pipe_in)(void *io, size_t len, int64_t deadline_ms);
	ssize_t (*pipe_out)(void *io, size_t len, int block,
			    int64_t deadline_ms);
	/* -v (may be NULL): the engine echoed out[0..n), in which the
	 * messages marks[0..nmarks) begin (proto.h; raw mode has none). A
	 * message may begin in one call's out and end in a later one's. */
	void (*echoed)(void *io, const uint8_t *out, size_t n,
		       const struct proto_mark *marks, size_t nmarks);
	/* With cfg.proxy (may be NULL): the PROXY header is complete and
	 * says *r. Returns 0 to serve the client, or -1 to drop it at once
	 * (over --max-per-ip: the session ends with CLOSE_REJECTED, nothing
	 * sent, no lingering). */
	int (*proxied)(void *io, const struct proxy_result *r);
};

struct session_cfg {
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	uint32_t idle_ms;	 /* 0: never */
	uint32_t linger_ms;	 /* lingering and a stalled flush give up */
	uint32_t linger_poll_ms; /* how often the send queue is looked at */
	size_t bufsize;		 /* each of the input and output buffers */
	/* 0: none; else every connection starts with a PROXY header of
	 * these versions, which must be whole within proxy_ms */
	enum proxy_accept proxy;
	uint32_t proxy_ms;
};

/* Messages reported to ops->echoed per engine run (a run stops when they
 * are used up, and the session runs it again). */
#define SESSION_MARKS 16

/* The phases of a session, in order. */
enum session_phase {
	SESSION_SERVING = 0, /* read, run the engine, write */
	SESSION_CLOSING,     /* the server closes first: flush, read nothing */
	SESSION_LINGERING,   /* FIN sent: drop input while echoes drain */
	SESSION_DONE,	     /* the caller closes the connection */
};

struct session {
	const struct session_ops *ops;
	void *io;
	struct session_cfg cfg;
	enum session_phase phase;
	enum close_reason reason;
	struct proto p;
	struct proxy px; /* with cfg.proxy: the header's parser */
	struct proto_mark marks[SESSION_MARKS]; /* with ops->echoed only */
	uint8_t *in, *out;
	size_t in_off, in_len;	 /* unconsumed input: in[in_off..+in_len) */
	size_t out_off, out_len; /* unsent output: out[out_off..out_len) */
	/* > 0: raw bytes go through the pipe (ops->pipe_open), which holds
	 * the out_len - out_off owed; in, out and the engine are not used */
	size_t pipe_cap;
	uint8_t bulk;	    /* a read filled the input buffer: try the pipe */
	uint8_t pipe_tried; /* ops->pipe_open was called */
	/* What the data says, independent of the phase: */
	uint8_t in_eof;	     /* the peer shut down its sending side */
	uint8_t engine_end;  /* proto_run returned DONE or an error */
	uint8_t engine_owes; /* proto_run said NEED_OUTPUT: it holds output */
	int outq;	     /* LINGERING: unacknowledged bytes last seen */
	int64_t start_ms, progress_ms;
	struct conn_report rep; /* bytes, messages, errors, the reason */
};

/*
 * session_init: a session over caller-owned buffers: in and out of
 * cfg->bufsize bytes each, and in line and frame mode msgbuf of
 * proto_msgbuf_size(cfg->max_msg) bytes. msgbuf NULL in those modes means
 * it could not be had: the session then closes at once with the reason
 * CLOSE_NOMEM (FIN, linger). Returns 0, or -1 on a bad configuration.
 */
int session_init(struct session *s, const struct session_cfg *cfg,
		 const struct session_ops *ops, void *io, uint8_t *in,
		 uint8_t *out, uint8_t *msgbuf, size_t msgcap);

/*
 * session_serve: serve until the session is done (phase SESSION_DONE);
 * s->reason says why and s->rep holds the counters (duration excepted).
 * With cfg.proxy the PROXY header comes first (SPEC 8): read within
 * proxy_ms of the start (the idle timeout counts from its end), never
 * echoed nor counted in rep.bytes_in; the bytes after it, even in the same
 * read, are the client's. A malformed header (or EOF inside one) closes
 * with CLOSE_PROXY_BAD, a late one with CLOSE_PROXY_TIMEOUT, both counted
 * as a protocol error, after the usual FIN and lingering.
 * Every byte the engine produced for the bytes it consumed is written,
 * in order, unless the connection is gone (CLOSE_RESET) or a flush makes
 * no progress for linger_ms. The caller then closes the connection.
 */
void session_serve(struct session *s);

#endif /* ECHOD_SESSION_H */
