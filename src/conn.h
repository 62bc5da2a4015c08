/*
 * conn.h - serving one accepted connection for real: the socket, the
 * clock and the stop request behind session.h's operations, the sandbox,
 * the accept and close lines, the report to the parent.
 */
#ifndef ECHOD_CONN_H
#define ECHOD_CONN_H

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "opts.h"

/* The parent's answer to a child's claim (server.h, --max-per-ip with the
 * PROXY protocol): sigqueue()d with the verdict as its value. Blocked in
 * the parent from the start, so every child is born with it blocked and
 * takes it with sigtimedwait(). */
#define CONN_SIG_VERDICT (SIGRTMIN + 1)
/* How long a child waits for that answer before it gives the client up. */
#define CONN_VERDICT_WAIT_MS 5000

/* What a connection needs from whoever started it, besides the socket. */
struct conn_ctx {
	const struct echod_opts *o;
	/* The signal mask inside ppoll(): the caller's flag-setting handlers
	 * (SIGTERM, SIGINT) open, everything else as the caller had it. */
	const sigset_t *waitmask;
	/* Raised by the caller's SIGTERM/SIGINT handler. */
	const volatile sig_atomic_t *term;
	/* Where the close report goes (struct conn_report), -1 for none. */
	int report_fd;
	/* The process whose death must end this one (0: none, inetd mode). */
	pid_t parent;
};

/*
 * conn_run: confine this process (sandbox_child), serve the connection fd
 * (a blocking socket: see conn.c) from peer until it ends, log its close
 * line, send the report and leave with exit_group(2). Called in the child
 * right after fork(), with the signals of the parent's handlers blocked,
 * or in inetd mode by echod itself (no report, parent 0), holding no
 * descriptor but fd, the report socket, the log and /dev/null.
 */
void conn_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
	      const struct conn_ctx *ctx) __attribute__((noreturn));

#endif /* ECHOD_CONN_H */
