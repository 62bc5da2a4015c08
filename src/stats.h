/*
 * stats.h - the server's counters, the children's reports and the
 * control word.
 *
 * Trust model (SECURITY.md): a child may be compromised by its client, so
 * it can write nothing that steers the server or other children.
 * - The counters live in the parent's own memory. A child adds its
 *   contribution (bytes, messages, the close reason) with one report, sent
 *   before it exits over a SOCK_SEQPACKET socket whose receiving end has
 *   SO_PASSCRED: the kernel stamps each report with the sender's pid, and
 *   the parent takes one report per child it forked. A child can lie about
 *   its own connection, nothing else.
 * - The control word (the shutdown flag) is a page the parent writes
 *   through a mapping children do not inherit (MADV_DONTFORK), while
 *   children see it through a read-only mapping of a sealed memfd that
 *   cannot be made writable, not even through /proc/<pid>/mem.
 */
#ifndef ECHOD_STATS_H
#define ECHOD_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Why a connection closed. */
enum close_reason {
	CLOSE_NONE = 0,
	CLOSE_EOF,
	CLOSE_IDLE,
	CLOSE_TOO_LARGE,
	CLOSE_TRUNCATED,
	CLOSE_ENGINE,
	CLOSE_RESET,
	CLOSE_SHUTDOWN,
	CLOSE_NOMEM,
	CLOSE_REASONS /* count */
};

/* close_reason_text: exactly as SPEC section 3 and log parsers know them. */
const char *close_reason_text(enum close_reason r);

struct stats {
	uint64_t accepted;	  /* connections accepted (all) */
	uint64_t active;	  /* children serving now */
	uint64_t peak;		  /* most children at once */
	uint64_t deferred;	  /* accepted from the backlog after a pause at
				     --max-conns */
	uint64_t rejected_per_ip; /* closed at once: over --max-per-ip */
	uint64_t fork_failures;
	uint64_t bytes_in; /* from reports: read and served */
	uint64_t bytes_out;
	uint64_t discarded;	  /* read and dropped in lingering closes */
	uint64_t messages;	  /* messages echoed (line and frame mode) */
	uint64_t protocol_errors; /* "ERR too long" replies, frame errors */
	uint64_t idle_timeouts;
	uint64_t resets;
	uint64_t resource_errors; /* children that could not get memory,
				     connections given up when fork failed */
	uint64_t sandbox_kills;	  /* children killed by SIGSYS */
	uint64_t log_dropped;	  /* log lines dropped by children (reports)
				     and the parent */
	uint64_t bad_reports;	  /* reports refused: unknown or repeated
				     sender, wrong size */
};

/* One child's contribution, sent once before it exits. */
struct conn_report {
	uint32_t magic; /* CONN_REPORT_MAGIC */
	uint32_t reason;
	uint64_t bytes_in, bytes_out, discarded, messages, protocol_errors;
	uint64_t log_dropped;
	int64_t duration_ms;
};
#define CONN_REPORT_MAGIC 0x65636872u /* "echr" */

/* echod's counters, kept by the parent (server_sys.c hands them to the
 * server loop). Children have a stale copy they never use. */
extern struct stats stats;

/* stats_add_report: add a child's report to the counters *st. */
void stats_add_report(struct stats *st, const struct conn_report *r);

/* stats_format: "accepted=1 active=0 ..." of *st into buf. Returns buf. */
char *stats_format(const struct stats *st, char *buf, size_t len);

/* control_init: map the control page (see above). Returns 0 or -1 with
 * errno. */
int control_init(void);
/* control_shutdown: raise the shutdown flag (parent). */
void control_shutdown(void);
/* control_stopping: whether the flag is raised (any process). */
int control_stopping(void);

#endif /* ECHOD_STATS_H */
