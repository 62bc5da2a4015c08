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
	int lfd; /* the listener (the first, when systemd passed several) */
	int more[OPTS_LISTEN_FDS_MAX - 1]; /* the others */
	int nmore;
	int next; /* the listener accept() tries first (round robin) */
	/* systemd's NOTIFY_SOCKET (-1: none): READY=1, STATUS=, WATCHDOG=1,
	 * STOPPING=1, sent by the parent only */
	int notify_fd;
	int64_t status_every, status_next;     /* ms */
	int64_t watchdog_every, watchdog_next; /* ms; 0: no watchdog */
	int metrics_fd;		  /* the metrics writer (metrics.h), -1: none */
	int report_rx, report_tx; /* the children's reports: ours, theirs */
	sigset_t waitmask;	  /* the mask inside ppoll: handled signals
				     open */
	sigset_t handled;	  /* the signals the loop handles */
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

/* server_sys_listen_more: serve these listeners too (systemd passed
 * several); before server_sys_run(). */
void server_sys_listen_more(struct server_sys *x, const int *fds, int n);

/*
 * server_sys_notify_init: when NOTIFY_SOCKET is set, connect to it (a
 * path, or an abstract name after '@'), take WATCHDOG_USEC when
 * WATCHDOG_PID is unset or ours, and unset the variables. Before the
 * sandbox. Returns 0 (also when there is no NOTIFY_SOCKET), or -1 with
 * errno when the socket is set but cannot be reached.
 */
int server_sys_notify_init(struct server_sys *x, uint32_t status_every_s);

/* server_sys_notify: one datagram to NOTIFY_SOCKET, if there is one. */
void server_sys_notify(struct server_sys *x, const char *msg);

#endif /* ECHOD_SERVER_SYS_H */
