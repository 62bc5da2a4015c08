/*
 * stats.c - see stats.h.
 */
#include "stats.h"

#include <stdio.h>
#include <sys/mman.h>

struct stats *stats;

int stats_init(void)
{
	void *p = mmap(NULL, sizeof(struct stats), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	stats = p;
	return 0;
}

char *stats_format(char *buf, size_t len)
{
	const struct stats *s = stats;

	snprintf(buf, len,
		 "accepted=%llu active=%llu peak=%llu deferred=%llu "
		 "rejected_per_ip=%llu fork_failures=%llu bytes_in=%llu "
		 "bytes_out=%llu messages=%llu protocol_errors=%llu "
		 "idle_timeouts=%llu resets=%llu sandbox_kills=%llu",
		 (unsigned long long)stats_get(&s->accepted),
		 (unsigned long long)stats_get(&s->active),
		 (unsigned long long)stats_get(&s->peak),
		 (unsigned long long)stats_get(&s->deferred),
		 (unsigned long long)stats_get(&s->rejected_per_ip),
		 (unsigned long long)stats_get(&s->fork_failures),
		 (unsigned long long)stats_get(&s->bytes_in),
		 (unsigned long long)stats_get(&s->bytes_out),
		 (unsigned long long)stats_get(&s->messages),
		 (unsigned long long)stats_get(&s->protocol_errors),
		 (unsigned long long)stats_get(&s->idle_timeouts),
		 (unsigned long long)stats_get(&s->resets),
		 (unsigned long long)stats_get(&s->sandbox_kills));
	return buf;
}
