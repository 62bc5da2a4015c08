/*
 * session.h - a child serving its one connection.
 */
#ifndef ECHOD_SESSION_H
#define ECHOD_SESSION_H

#include <signal.h>
#include <sys/socket.h>

#include "opts.h"

/*
 * session_run: serve the connection fd (non-blocking) from peer until it
 * ends, log its close line and _exit(). Called in the child right after
 * fork() with the signals of `blocked` blocked; listen_fd is closed here.
 */
void session_run(int fd, const struct sockaddr *peer, socklen_t peerlen,
		 const struct echod_opts *o, int listen_fd,
		 const sigset_t *blocked) __attribute__((noreturn));

#endif /* ECHOD_SESSION_H */
