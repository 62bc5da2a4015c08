/*
 * opts.h - echod's command line (SPEC section 3) and every tunable of the
 * server in one block.
 *
 * opts_parse() is pure enough to unit-test: it never exits, never prints
 * and never touches the network; errors come back as one line of text in a
 * caller-provided buffer.
 */
#ifndef ECHOD_OPTS_H
#define ECHOD_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "parse.h"
#include "proto.h"
#include "proxy.h"

/*
 * Defaults and ranges of the options (SPEC section 3 fixes them).
 */
#define OPTS_PORT_DEFAULT	      9999u
#define OPTS_PORT_MAX		      65535u
#define OPTS_MAX_CONNS_DEFAULT	      1024u
#define OPTS_MAX_CONNS_MAX	      1000000u
#define OPTS_MAX_PER_IP_DEFAULT	      0u /* no limit */
#define OPTS_MAX_PER_IP_MAX	      1000000u
#define OPTS_IDLE_TIMEOUT_DEFAULT     120u
#define OPTS_IDLE_TIMEOUT_MAX	      86400u
#define OPTS_BACKLOG_DEFAULT	      1024u
#define OPTS_BACKLOG_MAX	      65535u
#define OPTS_SHUTDOWN_TIMEOUT_DEFAULT 10u
#define OPTS_SHUTDOWN_TIMEOUT_MAX     3600u
#define OPTS_METRICS_INTERVAL_DEFAULT 10u
#define OPTS_METRICS_INTERVAL_MIN     1u
#define OPTS_METRICS_INTERVAL_MAX     3600u
#define OPTS_PROXY_TIMEOUT_DEFAULT    5u
#define OPTS_PROXY_TIMEOUT_MIN	      1u
#define OPTS_PROXY_TIMEOUT_MAX	      60u
/* Address blocks --proxy-from takes. */
#define OPTS_PROXY_FROM_MAX 16
/* Listening sockets systemd may pass (LISTEN_FDS). */
#define OPTS_LISTEN_FDS_MAX 16

/*
 * Tunables of the server. SECURITY.md lists the same limits.
 */
/* Each child's input and output buffer (with the message buffer, one
 * anonymous mapping made in the child: untouched pages cost nothing, so
 * even --max-msg 16777216 costs only what a connection really uses). 64 KiB
 * matches the default socket buffers on Linux loopback, so one read or write
 * moves what the kernel has; the two buffers plus the message buffer bound a
 * child's memory whatever the client does (back-pressure stops reading when
 * both are full). */
#define SESSION_BUF_SIZE 65536u
/* Lingering close: after the server closes first it shuts down its
 * sending side and discards input while the client still takes echoes,
 * until the client's EOF or until everything sent was acknowledged, so the
 * client reads every echo and then EOF rather than a reset (RFC 1122
 * 4.2.2.13: unread data at close() sends RST, and the kernel then drops
 * what it had not sent). It gives up after this long without progress
 * (the send queue not shrinking, the flush not moving). */
#define SESSION_LINGER_MS 2000
/* While lingering, how often the send queue (SIOCOUTQ) is looked at when
 * nothing else wakes the child. */
#define SESSION_LINGER_POLL_MS 100
/* How long a child waits, at most, for room in the parent's report queue
 * before it leaves without reporting. */
#define SESSION_REPORT_WAIT_S 1
/* Connections the parent keeps when fork() fails after accept(), to serve
 * them as soon as fork works again; the listener is paused meanwhile, so
 * the rest wait in the backlog. */
#define SERVER_HOLD_MAX 4
/* After EMFILE/ENFILE/ENOBUFS/ENOMEM or a fork failure the parent stops
 * polling the listener this long: retrying at once would spin at 100 %
 * CPU while resources are exhausted. */
#define SERVER_BACKOFF_MS 100
/* Connections accepted per wake-up of the parent. Signals are delivered
 * only while it waits in ppoll(), so a flood that keeps the backlog full
 * must not keep it in the accept loop: after this many it goes back to
 * reap children and see SIGTERM. One extra ppoll() per batch is nothing
 * next to a fork per connection. */
#define SERVER_ACCEPT_BATCH 8
/* Children's reports read per wake-up, and children reaped per batch
 * before their reports are read. */
#define SERVER_REPORT_BATCH 64
/* Send buffer of the children's report socket: about 4,000 reports queued
 * before a closing child has to wait for the parent. */
#define SERVER_REPORT_SNDBUF (4 * 1024 * 1024)
/* At most this many reports fit in the socket (the kernel doubles the
 * buffer, and each message costs it more than 512 bytes: 10,923 at 767
 * on Linux 6). Once children are reaped, their reports are somewhere in
 * the queue, behind whatever other children sent: the parent reads up to
 * this many, so that no flood of refused reports from one child can hide
 * another's. */
#define SERVER_REPORT_QUEUE_MAX (2 * SERVER_REPORT_SNDBUF / 512)
/* At exit, how long the parent waits for the metrics writer to have the
 * final counters on disk. */
#define SERVER_METRICS_WAIT_MS 1000
/* After SIGKILL at the end of a drain, how long the parent waits for the
 * children to be reaped before it exits anyway. */
#define SERVER_KILL_WAIT_MS 500
/* A failed read of the report socket is retried this many times before
 * the parent leaves it alone for the back-off. */
#define SERVER_REPORT_TRIES 4
/* Rate limit of repeated accept/fork error lines: at most one line per kind
 * per interval; the next line says how many were suppressed. */
#define SERVER_LOG_INTERVAL_MS 1000
/* Longest log line; longer lines are cut with "...". Lines are written with
 * one write(2), atomic for pipes up to PIPE_BUF (4096), so children never
 * interleave. */
#define LOG_LINE_MAX 1024
/* When stderr is a pipe, echod asks for a pipe buffer this large, so a
 * burst of log lines is not dropped while the reader catches up. */
#define LOG_PIPE_SIZE (1024 * 1024)
/* Raw bulk: the size a child asks for its socket -> pipe -> socket pipe
 * (conn.c says why this size, and what happens when the kernel refuses
 * it): what one pair of splice() calls moves, and what the pipe holds
 * while the client does not read. */
#define CONN_PIPE_SIZE (256 * 1024)
/* -v logs each message, escaped and cut at this many bytes. */
#define LOG_MSG_CUT 80

enum opts_verbosity {
	OPTS_QUIET = 0,	  /* -q: errors and warnings only */
	OPTS_INFO = 1,	  /* default */
	OPTS_VERBOSE = 2, /* -v: also each message */
};

struct echod_opts {
	uint16_t port;
	int port_set; /* -p given */
	/* bind address: bind_set == 0 means dual-stack "::" (or 0.0.0.0 when
	 * IPv6 is unavailable) */
	int bind_set;
	int bind_family; /* AF_INET or AF_INET6 */
	struct in_addr bind4;
	struct in6_addr bind6;
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	uint32_t max_conns;
	uint32_t max_per_ip;   /* 0: no limit */
	uint32_t idle_timeout; /* seconds, 0: never */
	uint32_t backlog;
	uint32_t shutdown_timeout; /* seconds */
	uint32_t metrics_interval; /* seconds: STATUS= and the metrics file */
	const char *metrics_file;  /* --metrics-file, or NULL */
	enum opts_verbosity verbosity;
	/* --proxy-protocol (0: off): every connection starts with a PROXY
	 * header, from a peer in proxy_from only */
	enum proxy_accept proxy;
	uint32_t proxy_timeout; /* seconds for the whole header */
	struct parse_cidr proxy_from[OPTS_PROXY_FROM_MAX];
	size_t nproxy_from;
	int inetd;   /* -i: serve the connection on fd 0 and exit */
	int syslog;  /* --syslog: log to syslog instead of stderr */
	int help;    /* -h/--help seen: print opts_help() and exit 0 */
	int version; /* --version seen */
};

/* opts_defaults: fill *o with the defaults of every option. */
void opts_defaults(struct echod_opts *o);

/*
 * opts_parse: parse argv[1..argc) (getopt_long; resets getopt's state, so
 * it can be called repeatedly) into *o, which starts from opts_defaults().
 * Returns 0 on success (check o->help and o->version), or -1 with one line
 * naming the problem (no program name, no newline) in err[0..errlen).
 * Stops at the first -h/--help or --version.
 */
int opts_parse(struct echod_opts *o, int argc, char **argv, char *err,
	       size_t errlen);

/* opts_help: the --help text (every option with its default). */
const char *opts_help(void);

/* opts_mode_name: "raw", "line" or "frame". */
const char *opts_mode_name(enum proto_mode mode);

#endif /* ECHOD_OPTS_H */
