/*
 * session.h - a child serving its one connection.
 */
#ifndef ECHOD_SESSION_H
#define ECHOD_SESSION_H

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "opts.h"

/* What a session needs from whoever started it, besides the connection. */
struct session_ctx {
	const struct echod_opts *o;
	/* The signal mask inside ppoll(): the caller's flag-setting handlers
	 * (SIGTERM, SIGINT) open, everything else as the caller had it. */
	const sigset_t *waitmask;
	/* Raised by the caller's SIGTERM/SIGINT handler. */
	const volatile sig_atomic_t *term;
	/* Where the close report goes (struct conn_report), -1 for none. */
	int report_fd;
	/* The process whose death must end this one. */
	pid_t parent;
};

/*
 * session_run: confine this process (sandbox_child), serve the connection
 * fd (non-blocking) from peer until it ends, log its close line, send the
 * report and leave with exit_group(2). Called in the child right after
 * fork(), with the signals of the parent's handlers blocked, holding no
 * descriptor but fd, the report socket, stderr and /dev/null.
 */
void session_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
		 const struct session_ctx *ctx) __attribute__((noreturn));

#endif /* ECHOD_SESSION_H */
