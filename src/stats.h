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
	CLOSE_PROXY_BAD,     /* a malformed PROXY header, or EOF inside it */
	CLOSE_PROXY_TIMEOUT, /* no whole header within --proxy-timeout */
	CLOSE_REJECTED,	     /* over --max-per-ip once the header said who */
	CLOSE_REASONS	     /* count */
};

/* close_reason_text: exactly as SPEC section 3 and log parsers know them. */
const char *close_reason_text(enum close_reason r);

/*
 * Every counter, once: its field (also its name in the "stats" log line),
 * its metric (Prometheus text, after "echod_"; a {label} part shares the
 * HELP and TYPE of the name before it), counter or gauge, and the HELP
 * text. A new counter is one line here: the struct, the log line and the
 * metrics file follow.
 */
#define STATS_FIELDS(X)                                                        \
	X(accepted, "connections_accepted_total", counter,                     \
	  "Connections accepted.")                                             \
	X(active, "connections_active", gauge,                                 \
	  "Connections being served now (live children).")                     \
	X(peak, "connections_peak", gauge, "Most connections served at once.") \
	X(deferred, "connections_deferred_total", counter,                     \
	  "Connections accepted from the backlog after a pause at "            \
	  "--max-conns.")                                                      \
	X(rejected_per_ip,                                                     \
	  "connections_rejected_total{reason=\"max-per-ip\"}", counter,        \
	  "Connections closed at once, by reason.")                            \
	X(rejected_untrusted_proxy,                                            \
	  "connections_rejected_total{reason=\"untrusted-proxy\"}", counter,   \
	  "Connections closed at once, by reason.")                            \
	X(fork_failures, "fork_failures_total", counter, "fork() failures.")   \
	X(bytes_in, "received_bytes_total", counter,                           \
	  "Bytes read from clients and served.")                               \
	X(bytes_out, "sent_bytes_total", counter, "Bytes echoed to clients.")  \
	X(discarded, "discarded_bytes_total", counter,                         \
	  "Bytes read and dropped while closing.")                             \
	X(messages, "messages_total", counter,                                 \
	  "Messages echoed (line and frame mode).")                            \
	X(protocol_errors, "protocol_errors_total", counter,                   \
	  "ERR too long replies and frame errors.")                            \
	X(idle_timeouts, "idle_timeouts_total", counter,                       \
	  "Connections closed by the idle timeout.")                           \
	X(resets, "resets_total", counter, "Connections reset by clients.")    \
	X(resource_errors, "resource_errors_total", counter,                   \
	  "Connections closed for want of memory or of fork().")               \
	X(sandbox_kills, "sandbox_kills_total", counter,                       \
	  "Children killed by the seccomp filter (SIGSYS).")                   \
	X(log_dropped, "log_dropped_lines_total", counter,                     \
	  "Log lines dropped because the log stalled.")                        \
	X(bad_reports, "bad_reports_total", counter,                           \
	  "Children's reports refused.")

/* Upper bounds (seconds) of the connection-duration histogram's buckets,
 * +Inf last. */
#define STATS_DURATION_BOUNDS_MS                                               \
	{                                                                      \
		1, 10, 100, 1000, 10000, 60000, 600000, 3600000                \
	}
#define STATS_DURATION_BUCKETS 9 /* the bounds above and +Inf */

struct stats {
#define STATS_FIELD(f, metric, type, help) uint64_t f;
	STATS_FIELDS(STATS_FIELD)
#undef STATS_FIELD
	/* the duration of every connection that reported: per bucket (not
	 * cumulative), their count and sum */
	uint64_t duration_bucket[STATS_DURATION_BUCKETS];
	uint64_t duration_count;
	uint64_t duration_sum_ms;
};

/* One child's contribution, sent once before it exits; or, with
 * CONN_CLAIM_MAGIC, the client address a PROXY header named, which the
 * parent counts against --max-per-ip and answers (server.h). */
struct conn_report {
	uint32_t magic; /* CONN_REPORT_MAGIC or CONN_CLAIM_MAGIC */
	uint32_t reason;
	uint64_t bytes_in, bytes_out, discarded, messages, protocol_errors;
	uint64_t log_dropped;
	int64_t duration_ms;
	uint8_t addr[16]; /* claim: net_addr_key() form */
	uint16_t port;	  /* claim: host order */
	uint8_t pad[6];
};
#define CONN_REPORT_MAGIC 0x65636872u /* "echr" */
#define CONN_CLAIM_MAGIC  0x65636863u /* "echc" */

/* stats_add_report: add a child's report to the counters *st. */
void stats_add_report(struct stats *st, const struct conn_report *r);

/* stats_format: "accepted=1 active=0 ..." of *st into buf. Returns buf. */
char *stats_format(const struct stats *st, char *buf, size_t len);

/* What the metrics say besides the counters. */
struct stats_info {
	const char *version, *sandbox;
	int64_t start_unix_ms;
};

/* stats_prometheus: *st in Prometheus' text exposition format (HELP and
 * TYPE for each metric, the duration histogram, build info, start time)
 * into buf. Returns its length, or -1 when buf is too small. */
int stats_prometheus(const struct stats *st, const struct stats_info *in,
		     char *buf, size_t len);

/* control_init: map the control page (see above). Returns 0 or -1 with
 * errno. */
int control_init(void);
/* control_shutdown: raise the shutdown flag (parent). */
void control_shutdown(void);
/* control_stopping: whether the flag is raised (any process). */
int control_stopping(void);

#endif /* ECHOD_STATS_H */
