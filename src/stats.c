/*
 * stats.c - see stats.h.
 */
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS */
#include "stats.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

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
    [CLOSE_PROXY_BAD] = "protocol-error: bad proxy header",
    [CLOSE_PROXY_TIMEOUT] = "protocol-error: proxy header timeout",
    [CLOSE_REJECTED] = "rejected",
};

const char *close_reason_text(enum close_reason r)
{
	return (unsigned)r < CLOSE_REASONS ? reason_text[r] : "unknown";
}

void stats_add_report(struct stats *st, const struct conn_report *r)
{
	static const int64_t bounds[] = STATS_DURATION_BOUNDS_MS;
	size_t b = 0;

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
	while (b < sizeof(bounds) / sizeof(bounds[0]) &&
	       r->duration_ms > bounds[b])
		b++;
	st->duration_bucket[b]++;
	st->duration_count++;
	st->duration_sum_ms +=
	    r->duration_ms > 0 ? (uint64_t)r->duration_ms : 0;
}

char *stats_format(const struct stats *s, char *buf, size_t len)
{
	size_t o = 0;
	int n;

	buf[0] = '\0';
#define STATS_KV(f, metric, type, help)                                        \
	n = snprintf(buf + o, len - o, "%s" #f "=%llu", o ? " " : "",          \
		     (unsigned long long)s->f);                                \
	if (n > 0 && (size_t)n < len - o)                                      \
		o += (size_t)n;
	STATS_FIELDS(STATS_KV)
#undef STATS_KV
	return buf;
}

/* Append to buf[*o..len); returns -1 once it does not fit. */
__attribute__((format(printf, 4, 5))) static int
put(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *o, len - *o, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *o)
		return -1;
	*o += (size_t)n;
	return 0;
}

/* The name of a metric up to its labels. */
static size_t base_len(const char *metric)
{
	const char *b = strchr(metric, '{');

	return b != NULL ? (size_t)(b - metric) : strlen(metric);
}

int stats_prometheus(const struct stats *s, const struct stats_info *in,
		     char *buf, size_t len)
{
	static const int64_t bounds[] = STATS_DURATION_BOUNDS_MS;
	const char *prev = "";
	size_t o = 0, b, bl;
	uint64_t cum = 0;
	int bad = 0;

#define STATS_PROM(f, metric, type, help)                                      \
	bl = base_len(metric);                                                 \
	if (bl != base_len(prev) || strncmp(prev, metric, bl) != 0)            \
		bad |= put(buf, len, &o,                                       \
			   "# HELP echod_%.*s %s\n# TYPE echod_%.*s %s\n",     \
			   (int)bl, metric, help, (int)bl, metric, #type);     \
	bad |= put(buf, len, &o, "echod_%s %llu\n", metric,                    \
		   (unsigned long long)s->f);                                  \
	prev = metric;
	STATS_FIELDS(STATS_PROM)
#undef STATS_PROM
	bad |= put(buf, len, &o,
		   "# HELP echod_connection_duration_seconds How long "
		   "connections lasted (those that reported).\n"
		   "# TYPE echod_connection_duration_seconds histogram\n");
	for (b = 0; b < STATS_DURATION_BUCKETS; b++) {
		cum += s->duration_bucket[b];
		if (b < sizeof(bounds) / sizeof(bounds[0]))
			bad |= put(buf, len, &o,
				   "echod_connection_duration_seconds_bucket"
				   "{le=\"%lld.%03lld\"} %llu\n",
				   (long long)(bounds[b] / 1000),
				   (long long)(bounds[b] % 1000),
				   (unsigned long long)cum);
		else
			bad |= put(buf, len, &o,
				   "echod_connection_duration_seconds_bucket"
				   "{le=\"+Inf\"} %llu\n",
				   (unsigned long long)cum);
	}
	bad |= put(buf, len, &o,
		   "echod_connection_duration_seconds_sum %llu.%03llu\n"
		   "echod_connection_duration_seconds_count %llu\n",
		   (unsigned long long)(s->duration_sum_ms / 1000),
		   (unsigned long long)(s->duration_sum_ms % 1000),
		   (unsigned long long)s->duration_count);
	bad |=
	    put(buf, len, &o,
		"# HELP echod_build_info The running echod.\n"
		"# TYPE echod_build_info gauge\n"
		"echod_build_info{version=\"%s\",sandbox=\"%s\"} 1\n"
		"# HELP echod_start_time_seconds When echod started, in "
		"seconds since the epoch.\n"
		"# TYPE echod_start_time_seconds gauge\n"
		"echod_start_time_seconds %lld.%03lld\n",
		in->version, in->sandbox, (long long)(in->start_unix_ms / 1000),
		(long long)(in->start_unix_ms % 1000));
	return bad ? -1 : (int)o;
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
