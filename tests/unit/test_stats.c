/*
 * test_stats.c - the counters and the control page (src/stats.c): the
 * reports added up, the counters line, the close reasons, and
 * control_init() with each of its calls failing (no descriptor or
 * mapping left behind), then for real: a flag only the parent's mapping
 * writes, seen through a read-only mapping that cannot be made writable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "stats.h"

FAULT_WRAP(int, memfd_create, (const char *name, unsigned fl), (name, fl), -1)
FAULT_WRAP(int, ftruncate, (int fd, off_t len), (fd, len), -1)
FAULT_WRAP(void *, mmap,
	   (void *a, size_t len, int prot, int fl, int fd, off_t off),
	   (a, len, prot, fl, fd, off), MAP_FAILED)
FAULT_WRAP(int, madvise, (void *a, size_t len, int adv), (a, len, adv), -1)

FAULT_WRAP_FCNTL()

/* munmap: counted, to see the failure paths undo the writable mapping. */
static unsigned munmaps;
int __real_munmap(void *a, size_t len);
int __wrap_munmap(void *a, size_t len);
int __wrap_munmap(void *a, size_t len)
{
	munmaps++;
	return __real_munmap(a, len);
}

static int teardown(void **state)
{
	(void)state;
	memset(&fault_memfd_create, 0, sizeof(struct fault));
	memset(&fault_ftruncate, 0, sizeof(struct fault));
	memset(&fault_mmap, 0, sizeof(struct fault));
	memset(&fault_madvise, 0, sizeof(struct fault));
	memset(&fault_fcntl, 0, sizeof(struct fault));
	return 0;
}

static void test_reasons(void **state)
{
	(void)state;
	assert_string_equal(close_reason_text(CLOSE_EOF), "eof");
	assert_string_equal(close_reason_text(CLOSE_NOMEM),
			    "resource-error: out of memory");
	/* The PROXY protocol's (SPEC 8): two protocol errors, and a
	 * connection dropped over --max-per-ip once the header named it. */
	assert_string_equal(close_reason_text(CLOSE_PROXY_BAD),
			    "protocol-error: bad proxy header");
	assert_string_equal(close_reason_text(CLOSE_PROXY_TIMEOUT),
			    "protocol-error: proxy header timeout");
	assert_string_equal(close_reason_text(CLOSE_REJECTED), "rejected");
	assert_int_equal(CLOSE_REJECTED + 1, CLOSE_REASONS);
	assert_string_equal(close_reason_text(CLOSE_REASONS), "unknown");
	assert_string_equal(close_reason_text((enum close_reason) - 1),
			    "unknown");
}

static void test_reports(void **state)
{
	struct stats st;
	struct conn_report r;
	char buf[768];
	uint32_t why;

	(void)state;
	memset(&st, 0, sizeof(st));
	memset(&r, 0, sizeof(r));
	r.bytes_in = 10;
	r.bytes_out = 9;
	r.discarded = 1;
	r.messages = 3;
	r.protocol_errors = 1;
	r.log_dropped = 2;
	for (why = 0; why < CLOSE_REASONS; why++) {
		r.reason = why;
		stats_add_report(&st, &r);
	}
	assert_int_equal(st.bytes_in, 10 * CLOSE_REASONS);
	assert_int_equal(st.bytes_out, 9 * CLOSE_REASONS);
	assert_int_equal(st.discarded, CLOSE_REASONS);
	assert_int_equal(st.messages, 3 * CLOSE_REASONS);
	assert_int_equal(st.protocol_errors, CLOSE_REASONS);
	assert_int_equal(st.log_dropped, 2 * CLOSE_REASONS);
	assert_int_equal(st.idle_timeouts, 1);
	assert_int_equal(st.resets, 1);
	assert_int_equal(st.resource_errors, 1);
	st.accepted = 7;
	st.bad_reports = 4;
	stats_format(&st, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "accepted=7 active=0 peak=0 ", 27), 0);
	assert_non_null(strstr(buf, " idle_timeouts=1 resets=1 "));
	assert_non_null(strstr(buf, " bad_reports=4"));
}

/* The counters line in a buffer of any size: NUL-terminated inside it,
 * nothing written past it; whole when it fits. */
static void test_format_bounded(void **state)
{
	static char full[1024], buf[1024];
	struct stats st;
	size_t k, n;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.accepted = 123456789;
	st.bad_reports = 42;
	stats_format(&st, full, sizeof(full));
	n = strlen(full);
	assert_true(n > 100 && n < sizeof(full) - 1);
	for (k = 1; k <= n + 1; k++) {
		memset(buf, 'x', sizeof(buf));
		stats_format(&st, buf, k);
		assert_true(strlen(buf) < k);
		assert_int_equal(buf[k], 'x');
	}
	assert_string_equal(buf, full);
}

/* The counters in Prometheus' text format: each metric with its HELP
 * and TYPE once (labelled ones share them), the duration histogram
 * cumulative, the build and start time; and a buffer one byte short, or
 * any shorter, is refused whole. */
static void test_prometheus(void **state)
{
	static char buf[16384], small[16384];
	const struct stats_info in = {"1.2.3", "seccomp+landlock",
				      1700000000123};
	struct stats st;
	struct conn_report r;
	char *p;
	int n, k, helps = 0;

	(void)state;
	memset(&st, 0, sizeof(st));
	memset(&r, 0, sizeof(r));
	st.accepted = 5;
	st.rejected_per_ip = 2;
	r.duration_ms = 5; /* the 0.010 s bucket */
	stats_add_report(&st, &r);
	r.duration_ms = 1000; /* 1.000 s: in the 1 s bucket */
	stats_add_report(&st, &r);
	r.duration_ms = 4000000; /* past the last bound */
	stats_add_report(&st, &r);
	n = stats_prometheus(&st, &in, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strlen(buf), (size_t)n);
	assert_non_null(
	    strstr(buf, "# TYPE echod_connections_accepted_total counter\n"
			"echod_connections_accepted_total 5\n"));
	assert_non_null(strstr(buf, "# TYPE echod_connections_active gauge\n"));
	assert_non_null(
	    strstr(buf, "echod_connections_rejected_total{reason=\"max-per-"
			"ip\"} 2\necho"));
	for (p = buf; (p = strstr(p, "# HELP echod_connections_rejected_"
				     "total ")) != NULL;
	     p++)
		helps++;
	assert_int_equal(helps, 1);
	assert_non_null(strstr(
	    buf, "echod_connection_duration_seconds_bucket{le=\"0.001\"} 0\n"
		 "echod_connection_duration_seconds_bucket{le=\"0.010\"} 1\n"));
	assert_non_null(strstr(
	    buf, "echod_connection_duration_seconds_bucket{le=\"1.000\"} 2\n"));
	assert_non_null(strstr(
	    buf, "echod_connection_duration_seconds_bucket{le=\"3600.000\"} "
		 "2\n"
		 "echod_connection_duration_seconds_bucket{le=\"+Inf\"} 3\n"
		 "echod_connection_duration_seconds_sum 4001.005\n"
		 "echod_connection_duration_seconds_count 3\n"));
	assert_non_null(strstr(buf, "echod_build_info{version=\"1.2.3\","
				    "sandbox=\"seccomp+landlock\"} 1\n"));
	assert_non_null(
	    strstr(buf, "echod_start_time_seconds 1700000000.123\n"));
	assert_int_equal(buf[n - 1], '\n');
	for (k = 0; k <= n; k++) {
		memset(small, 'x', sizeof(small));
		assert_int_equal(stats_prometheus(&st, &in, small, (size_t)k),
				 -1);
		assert_int_equal(small[k], 'x'); /* nothing past len */
	}
	assert_int_equal(stats_prometheus(&st, &in, small, (size_t)n + 1), n);
	assert_string_equal(small, buf);
}

/* The descriptor control_init() would get next, to see none leaked. */
static int next_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static void test_control_faults(void **state)
{
	int fd0 = next_fd();

	(void)state;
	fault_arm(&fault_memfd_create, 0, 1, EMFILE);
	assert_int_equal(control_init(), -1);
	assert_int_equal(errno, EMFILE);

	fault_arm(&fault_ftruncate, 0, 1, EFBIG);
	assert_int_equal(control_init(), -1);

	fault_arm(&fault_mmap, 0, 1, ENOMEM);
	assert_int_equal(control_init(), -1);

	/* From here the writable mapping exists and must be undone. */
	munmaps = 0;
	fault_arm(&fault_madvise, 0, 1, EINVAL);
	assert_int_equal(control_init(), -1);
	assert_int_equal(munmaps, 1);

	munmaps = 0;
	fault_arm(&fault_fcntl, 0, 1, EPERM); /* F_ADD_SEALS */
	assert_int_equal(control_init(), -1);
	assert_int_equal(munmaps, 1);

	munmaps = 0;
	fault_arm(&fault_mmap, 1, 1, ENOMEM); /* the read-only mapping */
	assert_int_equal(control_init(), -1);
	assert_int_equal(munmaps, 1);

	assert_int_equal(next_fd(), fd0);
	/* None of them left a flag to read. */
	assert_int_equal(control_stopping(), 0);
}

static void test_control(void **state)
{
	int fd0 = next_fd();
	FILE *maps;
	char line[512];
	unsigned long a = 0, b = 0;
	int found = 0;

	(void)state;
	assert_int_equal(control_stopping(), 0);
	assert_int_equal(control_init(), 0);
	assert_int_equal(next_fd(), fd0); /* the memfd is closed */
	assert_int_equal(control_stopping(), 0);
	control_shutdown();
	assert_int_equal(control_stopping(), 1);

	/* The read-only mapping: sealed, it cannot be made writable. */
	maps = fopen("/proc/self/maps", "r");
	assert_non_null(maps);
	while (fgets(line, sizeof(line), maps) != NULL)
		if (strstr(line, "echod-control") != NULL &&
		    strstr(line, " r--s ") != NULL &&
		    sscanf(line, "%lx-%lx", &a, &b) == 2)
			found = 1;
	fclose(maps);
	assert_true(found);
	assert_int_equal(mprotect((void *)a, b - a, PROT_READ | PROT_WRITE),
			 -1);
	assert_int_equal(errno, EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_reasons, teardown),
	    cmocka_unit_test_teardown(test_reports, teardown),
	    cmocka_unit_test_teardown(test_format_bounded, teardown),
	    cmocka_unit_test_teardown(test_prometheus, teardown),
	    cmocka_unit_test_teardown(test_control_faults, teardown),
	    cmocka_unit_test_teardown(test_control, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
