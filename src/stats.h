/*
 * stats.h - counters shared by the parent and every child: one anonymous
 * shared page mapped before the first fork. Children add with atomic
 * instructions, so counting costs no system call.
 */
#ifndef ECHOD_STATS_H
#define ECHOD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct stats {
	uint64_t accepted;	  /* connections accepted (all) */
	uint64_t active;	  /* children serving now */
	uint64_t peak;		  /* most children at once */
	uint64_t deferred;	  /* accepted from the backlog after a pause at
				     --max-conns */
	uint64_t rejected_per_ip; /* closed at once: over --max-per-ip */
	uint64_t fork_failures;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t messages;	  /* messages echoed (line and frame mode) */
	uint64_t protocol_errors; /* "ERR too long" replies, frame errors */
	uint64_t idle_timeouts;
	uint64_t resets;
	uint64_t sandbox_kills; /* children killed by SIGSYS */
	/* Not a counter: raised by the parent before it sends SIGTERM at
	 * shutdown, read by children after every wake-up (session.c). */
	uint64_t shutdown;
};

/* The shared counters; NULL until stats_init(). */
extern struct stats *stats;

/* stats_init: map the shared page. Returns 0 or -1 with errno. */
int stats_init(void);

static inline void stats_add(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

static inline void stats_sub(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_sub(ctr, n, __ATOMIC_RELAXED);
}

static inline uint64_t stats_get(const uint64_t *ctr)
{
	return __atomic_load_n(ctr, __ATOMIC_RELAXED);
}

/* stats_format: "accepted=1 active=0 ..." into buf. Returns buf. */
char *stats_format(char *buf, size_t len);

#endif /* ECHOD_STATS_H */
