/*
 * server.h - the parent: accepts, forks, reaps and signals; nothing else.
 */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include "opts.h"

/*
 * server_init: allocate the connection table and the children's report
 * socket, and install the signal handlers (the signals stay blocked until
 * server_run waits). Called before the listener exists, so that a script that
 * signals echod as soon as it reads "listening on" always finds the handlers in
 * place. Returns 0 or -1 (out of memory).
 */
int server_init(const struct echod_opts *o);

/*
 * server_run: install the sandbox (from here on the parent runs under the
 * filter its children inherit), serve listen_fd until SIGTERM, SIGINT or
 * SIGQUIT, then drain the children within the shutdown timeout, log the
 * counters and return the exit status (0). control_init() and
 * server_init() must have run.
 */
int server_run(int listen_fd);

#endif /* ECHOD_SERVER_H */
