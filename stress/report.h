/*
 * report.h - merging the workers' results and reporting them: the summary
 * on stdout, --json, --hdr, and the exit status.
 */
#ifndef ECHO_STRESS_REPORT_H
#define ECHO_STRESS_REPORT_H

#include "stress.h"

struct st_times { /* CLOCK_MONOTONIC ns */
	uint64_t start, connect_end, measure_start, measure_end, end;
};

/* report: returns the exit status (0 clean, 1 errors among measured). */
int report(const struct st_config *cfg, struct st_control *ctl,
	   const struct st_times *t, unsigned died,
	   const char *const kind_names[K_NKINDS]);

#endif /* ECHO_STRESS_REPORT_H */
