/*
 * hist.h - a log-linear latency histogram in the manner of HdrHistogram:
 * values from 1 to HIST_MAX_VALUE (microseconds: 1 us .. about 1.2 h) with
 * 2 significant decimal digits (relative error below 1/128), fixed size, no
 * allocation, so a worker can keep it in shared memory and the parent can
 * merge by adding counts.
 */
#ifndef ECHO_STRESS_HIST_H
#define ECHO_STRESS_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS  7 /* 128 sub-buckets per power of two */
#define HIST_SUB_HALF  (1u << HIST_SUB_BITS)
#define HIST_SUB_COUNT (2u * HIST_SUB_HALF)
#define HIST_TOP_BIT   32 /* values below 2^32 us are tracked exactly */
#define HIST_MAX_VALUE ((UINT64_C(1) << HIST_TOP_BIT) - 1)
#define HIST_BUCKETS   (HIST_TOP_BIT - HIST_SUB_BITS) /* for --hdr */
#define HIST_COUNTS                                                            \
	(HIST_SUB_COUNT + (HIST_TOP_BIT - HIST_SUB_BITS - 1) * HIST_SUB_HALF)

struct hist {
	uint64_t total;
	uint64_t min, max; /* min is 0 while total is 0 */
	double sum, sumsq; /* for the mean and standard deviation */
	uint64_t counts[HIST_COUNTS];
};

void hist_init(struct hist *h);
/* hist_index: the bucket of value v (v <= HIST_MAX_VALUE); hist_lowest_at
 * and hist_value_at: the lowest and the highest value of bucket i (the
 * latter is what percentiles report, as HdrHistogram does). */
unsigned hist_index(uint64_t v);
uint64_t hist_lowest_at(unsigned i);
uint64_t hist_value_at(unsigned i);
/* hist_record: values above HIST_MAX_VALUE are clamped to it. */
void hist_record(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* hist_percentile: the value at percentile p (0..100); 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);
double hist_stddev(const struct hist *h);
/*
 * hist_write_hdr: HdrHistogram's percentile distribution text (the
 * "Value Percentile TotalCount 1/(1-Percentile)" table and the #[...]
 * footer), values divided by scale (1000: microseconds shown as ms).
 */
void hist_write_hdr(const struct hist *h, FILE *f, double scale);

#endif /* ECHO_STRESS_HIST_H */
