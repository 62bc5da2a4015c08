/*
 * clock.h - the monotonic clock in milliseconds and a wait deadline as the
 * relative timeout ppoll() takes: one spelling for the child (conn.c) and
 * the parent (server_sys.c).
 */
#ifndef ECHOD_CLOCK_H
#define ECHOD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time left until deadline (ms of clock_ms(); a past one is 0) in
 * *ts, or NULL for no deadline (deadline < 0): ppoll()'s timeout. */
static inline const struct timespec *clock_until(int64_t deadline,
						 struct timespec *ts)
{
	int64_t left;

	if (deadline < 0)
		return NULL;
	left = deadline - clock_ms();
	if (left < 0)
		left = 0;
	ts->tv_sec = (time_t)(left / 1000);
	ts->tv_nsec = (long)(left % 1000) * 1000000;
	return ts;
}

#endif /* ECHOD_CLOCK_H */
