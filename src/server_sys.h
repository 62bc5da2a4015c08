/*
 * server_sys.h - the server loop (server.h) run for real: server.h's
 * operations over the kernel (accept4, fork and the child's conn_run(),
 * waitpid, kill, ppoll with the signal flags, the monotonic clock, log.c),
 * the tables mapped out of the children's way, the children's report
 * socket, the signal handlers and the sandbox.
 */
#ifndef ECHOD_SERVER_SYS_H
#define ECHOD_SERVER_SYS_H

#include <signal.h>
#include <stdint.h>

#include "conn.h"
#include "opts.h"
#include "server.h"

/* Everything echod's parent keeps; main() owns it. */
struct server_sys {
	struct server srv;
	int lfd;
	int report_rx, report_tx;   /* the children's reports: ours, theirs */
	sigset_t waitmask;	    /* the mask inside ppoll: handled signals
				       open */
	sigset_t handled;	    /* the signals the loop handles */
	int64_t report_backoff_end; /* report socket not polled before */
	struct conn_ctx ctx;	    /* what every child is given */
	uint64_t own_dropped;	    /* our own dropped lines, in the counters */
	uint64_t kids_announced;    /* children's dropped lines announced */
};

/*
 * server_sys_init: map the tables, make the children's report socket and
 * install the signal handlers (the signals stay blocked until the loop
 * waits). Called before the listener exists, so that a script that
 * signals echod as soon as it reads "listening on" always finds the
 * handlers in place. Returns 0 or -1 with errno (out of memory).
 */
int server_sys_init(struct server_sys *x, const struct echod_opts *o);

/*
 * server_sys_run: serve listen_fd (the caller has installed the sandbox:
 * the parent runs under the filter its children inherit) until SIGTERM,
 * SIGINT or SIGQUIT, then drain the children within the shutdown timeout, log
 * the counters and return the exit status (0). control_init() and
 * server_sys_init() must have run.
 */
int server_sys_run(struct server_sys *x, int listen_fd);

#endif /* ECHOD_SERVER_SYS_H */
