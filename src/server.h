/*
 * server.h - the parent: accepts, forks, reaps and signals; nothing else.
 */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include "opts.h"

/*
 * server_init: allocate the connection table and install the signal
 * handlers (the signals stay blocked until server_run waits). Called
 * before the listener exists, so that a script that signals echod as soon
 * as it reads "listening on" always finds the handlers in place. Returns 0
 * or -1 (out of memory).
 */
int server_init(const struct echod_opts *o);

/*
 * server_run: serve listen_fd until SIGTERM or SIGINT, then drain the
 * children within the shutdown timeout, log the counters and return the
 * exit status (0). stats_init(), sandbox_prepare() and server_init() must
 * have run.
 */
int server_run(int listen_fd);

/*
 * server_stopping: whether SIGTERM or SIGINT has arrived. Children keep the
 * parent's flag-setting handlers, so in a child it says the same of the
 * child.
 */
int server_stopping(void);

#endif /* ECHOD_SERVER_H */
