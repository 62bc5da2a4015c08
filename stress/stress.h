/*
 * stress.h - what echo-stress's parent and its worker processes share: the
 * configuration (set before fork, read-only after), and the shared-memory
 * block through which workers publish progress and their final results.
 */
#ifndef ECHO_STRESS_H
#define ECHO_STRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hist.h"

/* Tunables. */
#define ST_DEFAULT_PORT		"9999"
#define ST_DEFAULT_CONNS	10
#define ST_DEFAULT_DURATION	10.0 /* s, when neither -d nor -n is given */
#define ST_DEFAULT_SIZE		64   /* payload bytes */
#define ST_MAX_SIZE		16777216u
#define ST_MAX_CONNS		1000000u
#define ST_MAX_WORKERS		256u
#define ST_DEFAULT_CONN_TIMEOUT 10.0 /* s */
#define ST_DEFAULT_ECHO_TIMEOUT 10.0 /* s */
#define ST_PENDING_CONNECTS	512 /* per worker: keeps listen backlogs sane */
#define ST_PAT_WINDOWS		65536u /* distinct payload start offsets */
#define ST_RETRY_NS		100000000ull  /* reconnect back-off, 100 ms */
#define ST_SLOWLORIS_NS		2000000000ull /* one byte every 2 s */
#define ST_ABUSE_PERIOD_NS	100000000ull  /* reset/oversize: every 100 ms */
#define ST_RXBUF		(256u * 1024u)
#define ST_MAX_PIPELINE		1024u
#define ST_MAX_INFLIGHT		(1u << 24) /* connections x --pipeline */
#define ST_MAX_SOURCES		65536u
/* --proxy: the made-up client of the connection with global index i is
 * ST_PROXY_NET + i % ST_PROXY_NADDR (198.18.0.0/15, RFC 2544's
 * benchmarking range), port ST_PROXY_PORT0 + i % ST_PROXY_NPORT; the pair
 * repeats only after lcm(131072, 64512) = 8257536 connections. */
#define ST_PROXY_NET	 0xc6120000u /* 198.18.0.0 */
#define ST_PROXY_NADDR	 131072u
#define ST_PROXY_PORT0	 1024u
#define ST_PROXY_NPORT	 64512u
#define ST_PROXY_PAIRS	 8257536ull  /* lcm(NADDR, NPORT) */
#define ST_PROXY_DST6	 0xc6120001u /* 198.18.0.1: dst for IPv6 servers */
#define ST_PROXY_HDR_MAX 108u	     /* v1 <= 107 bytes, v2 TCP4 28 */
#define ST_FD_SLACK                                                            \
	16 /* descriptors a worker needs besides its                           \
	      connections */

enum st_mode { ST_RAW, ST_LINE, ST_FRAME };

enum st_proxy { ST_PROXY_NONE = 0, ST_PROXY_V1 = 1, ST_PROXY_V2 = 2 };

enum st_kind { /* what a connection slot is */
	       K_MEASURED = 0,
	       K_SLOWLORIS,
	       K_NOREAD,
	       K_IDLE,
	       K_RESET,
	       K_OVERSIZE,
	       K_NKINDS
};

/* Errors of measured clients; each also remembers where it first struck. */
enum st_err {
	E_MISMATCH = 0,
	E_SHORT,   /* connection closed before the whole echo arrived */
	E_EXTRA,   /* more bytes echoed than were sent */
	E_RESET,   /* connection reset (or EPIPE) while in use */
	E_TIMEOUT, /* an echo not complete within --timeout */
	E_CLOSED,  /* server closed between messages */
	E_CONN_REFUSED,
	E_CONN_RESET,
	E_CONN_TIMEOUT,
	E_CONN_OTHER,
	E_NERR
};

struct st_config {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char host[256], port[32];
	unsigned conns, workers;
	unsigned total_slots; /* measured plus abusive */
	double duration;      /* s; 0: none */
	uint64_t messages;    /* per connection; 0: none */
	uint32_t size_min, size_max;
	enum st_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	double rate, connect_rate; /* 0: closed loop / all at once */
	uint64_t churn;
	unsigned abuse[K_NKINDS]; /* abusive clients per kind */
	double connect_timeout, timeout;
	unsigned pipeline; /* messages in flight per connection, >= 1 */
	/* --source: local addresses, connection id i binds to i % nsources */
	struct sockaddr_storage *sources;
	unsigned nsources;
	int dry_run; /* --dry-run: check options and limits, then exit */
	/* --proxy: the header's version, and its destination (the server's
	 * IPv4 address, else ST_PROXY_DST6) in host order */
	enum st_proxy proxy;
	uint32_t proxy_dst;
	uint16_t proxy_dport;
	const char *json, *hdr, *hdr_log;
	/* Payload pattern: random bytes (never the delimiter in line mode);
	 * message i of connection c is a window of it chosen by hash(c, i). */
	const uint8_t *pat;
	size_t patlen;
};

struct st_first {
	uint64_t conn, offset;
	int set;
};

struct st_abuse_stats {
	uint64_t connects, connect_failed, bytes_sent, bytes_received;
	uint64_t closed_by_server, resets_sent, err_replies, errors;
	uint64_t open_at_end;
};

/*
 * --hdr-log: a worker records the round trips completed in second k of the
 * measure phase (and of the drain after it) in h[k % 2]. At the end of
 * second k it waits until the parent has taken second k - 1 (ack >= k),
 * clears that buffer for second k + 1 and publishes k as complete
 * (pub = k + 1); the parent takes each published second and acknowledges
 * it. So the parent never reads the buffer being written, and is at most
 * one second behind.
 */
struct st_ivlog {
	uint64_t pub, ack;
	struct hist h[2];
};

/* One worker's slot in shared memory. */
struct st_shared {
	/* progress, written by the worker with relaxed atomic stores */
	uint64_t p_open, p_msgs, p_bytes, p_errors, p_opened, p_pending;
	int connect_done, measure_done, finished;
	/* results, written once before finished is set */
	uint64_t opened, opened_measure, messages, bytes_sent, bytes_recv;
	uint64_t err[E_NERR];
	struct st_first first[E_NERR];
	int first_errno_other;
	struct st_abuse_stats abuse[K_NKINDS];
	/* --proxy: connections given a header (the worker's count n: its
	 * global indexes are wid + k * workers, k < n), headers wholly sent */
	uint64_t proxy_conns, proxy_sent;
	struct hist rt, connect;
	struct st_ivlog iv;
};

/* The shared block: phase control from the parent, then one slot each. */
enum st_phase { PH_CONNECT = 0, PH_MEASURE, PH_DRAIN };
struct st_control {
	int phase;
	uint64_t measure_start_ns;
	struct st_shared w[];
};

uint64_t st_now_ns(void);
/* worker_run: serve slots [first, first + n) of the global id space. */
/* worker_run: serve measured ids [meas_first, +n_meas) and, per abuse kind
 * k, abuse[k] clients with ids from abuse_first on; never returns. */
void worker_run(const struct st_config *cfg, struct st_control *ctl,
		unsigned wid, uint64_t meas_first, unsigned n_meas,
		uint64_t abuse_first, const unsigned abuse[K_NKINDS])
    __attribute__((noreturn));
/* st_mix64: splitmix64's finalizer, the pattern's only randomness. */
static inline uint64_t st_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#endif /* ECHO_STRESS_H */
