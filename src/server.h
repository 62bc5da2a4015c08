/*
 * server.h - the parent: accepts, forks, reaps, signals and keeps the
 * books; nothing else. Its loop and bookkeeping (the child table, the
 * per-address counts, connections held while fork() fails, the pause at
 * --max-conns and the resume, the back-off, rate-limited warnings, the
 * children's reports, reaping, the drain with SIGTERM then SIGKILL) reach
 * the world only through a table of operations.
 *
 * Why a struct of operations, as in session.h: the same code runs against
 * the kernel in echod (server_sys.c: accept4, fork, waitpid, kill, ppoll,
 * the clock, the signal flags) and against a simulated kernel in
 * fuzz/server_fuzz.c, which decides every accept, fork, exit, signal and
 * clock tick and checks the books after every call. The server reads no
 * global: its clock, the signals that arrived, its tables and its counters
 * all come from the caller, so a harness can run it in-process, as often
 * as it likes, and every interleaving it finds replays exactly.
 *
 * The shape of the seam follows what the parent needs from a kernel, one
 * call each: the operations are the system calls it made before (fork
 * and the child's side of it are one "spawn"), and signals are not
 * handlers but a set of bits that the wait reports, because the parent
 * only ever looks at them after waiting (SIGCHLD, SIGTERM and the rest are
 * blocked except inside ppoll(), server_sys.c).
 */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "opts.h"
#include "stats.h"

/* Signals that arrived, as server_ops.wait reports them. */
#define SERVER_SIG_CHLD	 1u /* SIGCHLD: children may have exited */
#define SERVER_SIG_STATS 2u /* SIGUSR1, SIGHUP: log the counters */
#define SERVER_SIG_TERM	 4u /* SIGTERM, SIGINT, SIGQUIT: drain, return */

/* Readiness, from server_ops.wait. */
#define SERVER_EV_LISTENER 1 /* a connection (or an error) to accept */
#define SERVER_EV_REPORTS  2 /* children's reports queued */

/* server_ops.close: how. NOW: close() (the parent's copy of a child's
 * connection, one over --max-per-ip). FIN: drop what the client sent,
 * FIN, close: a held connection given up, never a reset. */
#define SERVER_CLOSE_NOW 0
#define SERVER_CLOSE_FIN 1

/* server_ops.report: what was read. */
#define SERVER_REPORT_NONE (-1) /* nothing queued */
#define SERVER_REPORT_BAD  0	/* a message that is no report */
#define SERVER_REPORT_OK   1	/* a report-sized message and its sender */

/* What a log line is about (server_ops.log), so that a harness can count
 * the lines of each kind. The first five are rate-limited: at most one
 * line per kind per SERVER_LOG_INTERVAL_MS, each saying how many were
 * held back since the last one. */
enum server_log {
	SERVER_LOG_ACCEPT = 0, /* accept() failed */
	SERVER_LOG_FORK,       /* fork() failed */
	SERVER_LOG_REJECT,     /* a connection over --max-per-ip */
	SERVER_LOG_REPORT,     /* a child's report refused */
	SERVER_LOG_WAIT,       /* waiting (ppoll) failed */
	SERVER_LOG_CHILD,      /* a child died of a signal or exit status */
	SERVER_LOG_GIVE_UP,    /* a held connection closed unserved */
	SERVER_LOG_SHUTDOWN,   /* the drain began (informational) */
	SERVER_LOG_KILL,       /* the drain's deadline: SIGKILL */
	SERVER_LOG_STATS,      /* the counters (always shown) */
	SERVER_LOG_KINDS       /* count */
};
#define SERVER_LOG_RATELIMITED 5 /* kinds [0, 5) are rate-limited */
/* Or'ed into a rate-limited kind: the line only says how many lines of
 * that kind were held back ("fork: 3 similar messages suppressed"), at
 * each stats line and at exit so that no count is lost. */
#define SERVER_LOG_SUMMARY 0x100u

struct server_ops {
	/* Accept one connection from the listener (non-blocking): its
	 * descriptor, the client's address in *ss (*len its size), or -1
	 * with the errno value in *err (EAGAIN: nothing waiting). */
	int (*accept)(void *io, struct sockaddr_storage *ss, socklen_t *len,
		      int *err);
	/* Start a child that serves fd (the child never returns here): its
	 * pid, or -1 with the errno value in *err when fork() failed. Either
	 * way fd stays open in the parent, the server's to close. */
	pid_t (*spawn)(void *io, int fd, const struct sockaddr *sa,
		       socklen_t len, int *err);
	/* Close an accepted connection's descriptor (SERVER_CLOSE_*). */
	void (*close)(void *io, int fd, int how);
	/* One exited child: its pid with its wait status in *status; 0 when
	 * none has exited (block 0) or -1 when there are no children. With
	 * block set, wait until one exits. */
	pid_t (*reap)(void *io, int *status, int block);
	/* Send sig to a child. */
	void (*kill)(void *io, pid_t pid, int sig);
	/* Wait until the children's reports are queued, the listener is
	 * ready (only when listener is set), the clock reaches deadline_ms
	 * (-1: none) or a signal arrives. Returns the SERVER_EV_* ready (0:
	 * none), or -1 with the errno value in *err; either way *sigs gets
	 * the SERVER_SIG_* that arrived since the last wait. */
	int (*wait)(void *io, int listener, int64_t deadline_ms, unsigned *sigs,
		    int *err);
	/* Read one queued report (SERVER_REPORT_*): *r and, as the kernel
	 * stamped it, the sender's pid. */
	int (*report)(void *io, struct conn_report *r, pid_t *pid);
	/* Shutdown begins: close the listener (the port can be bound again
	 * at once) and raise the children's stop flag. */
	void (*shutdown)(void *io);
	/* A monotonic clock in milliseconds. */
	int64_t (*now_ms)(void *io);
	/* With the PROXY protocol and --max-per-ip: answer a child's claim
	 * (ok 1: serve the address it named; 0: over the limit, drop). */
	void (*verdict)(void *io, pid_t pid, int ok);
	/* One log line: an enum server_log, maybe with SERVER_LOG_SUMMARY. */
	void (*log)(void *io, unsigned kind, const char *fmt, va_list ap)
	    __attribute__((format(printf, 3, 0)));
};

struct server_cfg {
	uint32_t max_conns;	     /* -c: children at once, at least 1 */
	uint32_t max_per_ip;	     /* 0: no limit */
	uint32_t idle_timeout_s;     /* a held connection is given up after
					this long; 0: never */
	uint32_t shutdown_timeout_s; /* the drain, before SIGKILL */
	uint64_t seed;		     /* keys the address table */
	/* --proxy-protocol: only peers in proxy_from[0..nproxy_from) are
	 * served; with max_per_ip, a child counts against the address its
	 * PROXY header names, which it claims (struct conn_report,
	 * CONN_CLAIM_MAGIC) and the parent answers with ops->verdict: the
	 * claims come one at a time, so two children of one client never
	 * both pass. Nothing is counted at accept then. */
	int proxy;
	const struct parse_cidr *proxy_from;
	size_t nproxy_from;
};

/* A child and the address it serves (for the per-address limit and the
 * log line if it dies abnormally). Open addressing, pid 0 = empty. */
struct server_child {
	pid_t pid;
	uint16_t port;
	uint8_t reported; /* its report was counted */
	uint8_t claimed;  /* its claim was answered */
	uint8_t counted;  /* addr holds one of the per-address counts */
	uint8_t addr[16];
};

/* Active connections per client address; count 0 = empty. */
struct server_ipcount {
	uint32_t count;
	uint8_t addr[16];
};

/* A connection accepted while fork() failed, waiting for a process. */
struct server_held {
	int fd;
	uint16_t port;
	uint8_t addr[16];
	int64_t since_ms;
	socklen_t len;
	struct sockaddr_storage ss;
};

struct server_ratelim {
	int64_t last_ms; /* 0: never logged */
	unsigned long suppressed;
};

struct server {
	const struct server_ops *ops;
	void *io;
	struct server_cfg cfg;
	struct stats *st;	    /* the counters, the caller's */
	struct server_child *kids;  /* the caller's tables */
	struct server_ipcount *ips; /* NULL without --max-per-ip */
	size_t mask;		    /* both tables: capacity - 1 */
	uint64_t active;	    /* children in the table */
	unsigned sigs;		    /* SERVER_SIG_* arrived, not handled */
	int paused;		    /* at --max-conns: listener not polled */
	int resumed;		    /* accepting the backlog left by a pause */
	int64_t backoff_end;	    /* listener not polled before this */
	struct server_held held[SERVER_HOLD_MAX];
	unsigned nheld;
	struct server_ratelim rl[SERVER_LOG_RATELIMITED];
};

/* server_slots: the entries each table needs for max_conns children (a
 * power of two, at least twice max_conns and at least 16). */
size_t server_slots(uint32_t max_conns);

/*
 * server_init: a server over the caller's tables: kids of server_slots()
 * zero-filled entries, and ips as many, or NULL when cfg->max_per_ip is 0;
 * st receives the counters. Nothing is called yet. Returns 0, or -1 on a
 * bad configuration.
 */
int server_init(struct server *s, const struct server_cfg *cfg,
		const struct server_ops *ops, void *io, struct stats *st,
		struct server_child *kids, struct server_ipcount *ips);

/*
 * server_serve: accept, spawn, reap and keep the books until
 * SERVER_SIG_TERM; then drain: stop listening, give up the held
 * connections, SIGTERM every child, wait up to the shutdown timeout,
 * SIGKILL what remains and reap it. Logs the counters and returns with
 * no child left.
 */
void server_serve(struct server *s);

#endif /* ECHOD_SERVER_H */
