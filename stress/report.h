/*
 * report.h - a run's results as one self-contained record, filled from the
 * workers' shared memory after a run or from JSON reports by `echo-stress
 * merge`, and the ways to show it: the summary on stdout, --json, --hdr.
 */
#ifndef ECHO_STRESS_REPORT_H
#define ECHO_STRESS_REPORT_H

#include "stress.h"

struct st_times { /* CLOCK_MONOTONIC ns */
	uint64_t start, connect_end, measure_start, measure_end, end;
	double unix_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC, s */
};

#define ST_MERGE_MAX 4096 /* reports one merge takes */

struct st_report {
	/* the configuration, as reported */
	char host[256], port[32], mode[8], client_host[256];
	unsigned conns, workers, pipeline, sources, delim;
	double duration, rate, connect_rate, connect_timeout, timeout;
	uint64_t messages_per_conn, churn;
	uint32_t size_min, size_max, max_msg;
	unsigned abuse_clients[K_NKINDS];
	/* wall-clock times, seconds since the epoch; phase lengths, s */
	double start_unix, measure_start_unix, measure_end_unix, end_unix;
	double connect_s, measure_s, drain_s, total_s;
	/* counts */
	uint64_t opened, opened_measure, messages, bytes_sent, bytes_recv;
	uint64_t err[E_NERR], errors;
	struct st_first first[E_NERR];
	char errno_other[128];
	struct st_abuse_stats abuse[K_NKINDS];
	struct hist rt, connect;
	/* rates: a run's over its phases; a merge's, the sum of its
	 * reports' (their measure phases overlapping) */
	double conn_per_s_connect, conn_per_s_measure, msgs_per_s, mb_per_s;
	unsigned died;
	int status;
	/* merge only: how many reports, and how far apart they ran */
	unsigned merged;
	double start_skew, measure_start_skew, measure_end_skew;
	double measure_overlap;
	const char **merged_files;
};

extern const char *const st_err_names[E_NERR];
extern const char *const st_kind_names[K_NKINDS];

/* report: after a run; returns the exit status (0 clean, 1 errors among
 * measured clients or output that could not be written). */
int report(const struct st_config *cfg, struct st_control *ctl,
	   const struct st_times *t, unsigned died);

/* The summary on f, the JSON report and the --hdr file: 0, or -1 with the
 * error said on stderr. */
void report_print(FILE *f, const struct st_report *r);
int report_write_json(const char *path, const struct st_report *r);
int report_write_hdr(const char *path, const struct st_report *r);

/* echo-stress merge [--json FILE] [--hdr FILE] FILE.json... */
int merge_main(int argc, char **argv);

#endif /* ECHO_STRESS_REPORT_H */
