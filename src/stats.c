/*
 * stats.c - see stats.h.
 */
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS */
#include "stats.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

struct stats stats;

struct control {
	uint64_t shutdown;
};

/* The parent's writable view (not inherited) and everyone's read-only
 * view of the same page. */
static struct control *control_rw;
static const struct control *control_ro;

static const char *const reason_text[CLOSE_REASONS] = {
    [CLOSE_NONE] = "eof",
    [CLOSE_EOF] = "eof",
    [CLOSE_IDLE] = "idle-timeout",
    [CLOSE_TOO_LARGE] = "protocol-error: frame too large",
    [CLOSE_TRUNCATED] = "protocol-error: truncated frame",
    [CLOSE_ENGINE] = "protocol-error: bad arguments",
    [CLOSE_RESET] = "reset",
    [CLOSE_SHUTDOWN] = "shutdown",
    [CLOSE_NOMEM] = "resource-error: out of memory",
};

const char *close_reason_text(enum close_reason r)
{
	return (unsigned)r < CLOSE_REASONS ? reason_text[r] : "unknown";
}

void stats_add_report(struct stats *st, const struct conn_report *r)
{
	st->bytes_in += r->bytes_in;
	st->bytes_out += r->bytes_out;
	st->discarded += r->discarded;
	st->messages += r->messages;
	st->protocol_errors += r->protocol_errors;
	st->log_dropped += r->log_dropped;
	if (r->reason == CLOSE_IDLE)
		st->idle_timeouts++;
	else if (r->reason == CLOSE_RESET)
		st->resets++;
	else if (r->reason == CLOSE_NOMEM)
		st->resource_errors++;
}

char *stats_format(const struct stats *s, char *buf, size_t len)
{
	snprintf(
	    buf, len,
	    "accepted=%llu active=%llu peak=%llu deferred=%llu "
	    "rejected_per_ip=%llu fork_failures=%llu bytes_in=%llu "
	    "bytes_out=%llu discarded=%llu messages=%llu "
	    "protocol_errors=%llu idle_timeouts=%llu resets=%llu "
	    "resource_errors=%llu sandbox_kills=%llu log_dropped=%llu "
	    "bad_reports=%llu",
	    (unsigned long long)s->accepted, (unsigned long long)s->active,
	    (unsigned long long)s->peak, (unsigned long long)s->deferred,
	    (unsigned long long)s->rejected_per_ip,
	    (unsigned long long)s->fork_failures,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)s->discarded, (unsigned long long)s->messages,
	    (unsigned long long)s->protocol_errors,
	    (unsigned long long)s->idle_timeouts, (unsigned long long)s->resets,
	    (unsigned long long)s->resource_errors,
	    (unsigned long long)s->sandbox_kills,
	    (unsigned long long)s->log_dropped,
	    (unsigned long long)s->bad_reports);
	return buf;
}

int control_init(void)
{
	long page = sysconf(_SC_PAGESIZE);
	void *rw = MAP_FAILED, *ro;
	int fd;

	fd = memfd_create("echod-control", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, page) < 0)
		goto fail;
	rw =
	    mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED || madvise(rw, (size_t)page, MADV_DONTFORK) < 0)
		goto fail;
	/* From now on no mapping of the page can be writable, nor made so
	 * with mprotect (the kernel clears VM_MAYWRITE): only the mapping
	 * above, which children do not inherit, writes. */
	if (fcntl(fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE |
		      F_SEAL_SEAL) < 0)
		goto fail;
	ro = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED)
		goto fail;
	close(fd);
	control_rw = rw;
	control_ro = ro;
	return 0;
fail:
	if (rw != MAP_FAILED)
		munmap(rw, (size_t)page);
	close(fd);
	return -1;
}

void control_shutdown(void)
{
	__atomic_store_n(&control_rw->shutdown, 1, __ATOMIC_RELEASE);
}

int control_stopping(void)
{
	return control_ro != NULL &&
	       __atomic_load_n(&control_ro->shutdown, __ATOMIC_ACQUIRE) != 0;
}
