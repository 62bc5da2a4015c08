/*
 * hist.c - log-linear histogram (see hist.h).
 *
 * Index layout: values 0..255 map to themselves; above that, each power of
 * two [2^e, 2^(e+1)) is split into 128 equal sub-buckets, so a bucket's
 * width is at most 1/128 of its lower bound.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < HIST_SUB_COUNT)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	shift = e - HIST_SUB_BITS;
	return HIST_SUB_COUNT + (e - HIST_SUB_BITS - 1) * HIST_SUB_HALF +
	       (unsigned)(v >> shift) - HIST_SUB_HALF;
}

uint64_t hist_lowest_at(unsigned i)
{
	unsigned e, sub;

	if (i < HIST_SUB_COUNT)
		return i;
	e = (i - HIST_SUB_COUNT) / HIST_SUB_HALF + HIST_SUB_BITS + 1;
	sub = (i - HIST_SUB_COUNT) % HIST_SUB_HALF + HIST_SUB_HALF;
	return (uint64_t)sub << (e - HIST_SUB_BITS);
}

uint64_t hist_value_at(unsigned i)
{
	unsigned e, sub;

	if (i < HIST_SUB_COUNT)
		return i;
	e = (i - HIST_SUB_COUNT) / HIST_SUB_HALF + HIST_SUB_BITS + 1;
	sub = (i - HIST_SUB_COUNT) % HIST_SUB_HALF + HIST_SUB_HALF;
	return (((uint64_t)sub + 1) << (e - HIST_SUB_BITS)) - 1;
}

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_record(struct hist *h, uint64_t v)
{
	if (v > HIST_MAX_VALUE)
		v = HIST_MAX_VALUE;
	h->counts[hist_index(v)]++;
	if (h->total == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->total++;
	h->sum += (double)v;
	h->sumsq += (double)v * (double)v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (src->total == 0)
		return;
	for (i = 0; i < HIST_COUNTS; i++)
		dst->counts[i] += src->counts[i];
	if (dst->total == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->total += src->total;
	dst->sum += src->sum;
	dst->sumsq += src->sumsq;
}

/* Bucket holding the value at percentile p, and the count up to it. */
static unsigned hist_find(const struct hist *h, double p, uint64_t *cum)
{
	uint64_t want, acc = 0;
	unsigned i;

	if (p > 100.0)
		p = 100.0;
	want = (uint64_t)ceil(p / 100.0 * (double)h->total);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_COUNTS; i++) {
		acc += h->counts[i];
		if (acc >= want)
			break;
	}
	if (i == HIST_COUNTS)
		i = HIST_COUNTS - 1;
	*cum = acc;
	return i;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t cum, v;

	if (h->total == 0)
		return 0;
	v = hist_value_at(hist_find(h, p, &cum));
	/* The bucket's top can overshoot what was seen; max is exact. */
	return v > h->max ? h->max : v;
}

double hist_mean(const struct hist *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}

double hist_stddev(const struct hist *h)
{
	double m, var;

	if (h->total == 0)
		return 0.0;
	m = hist_mean(h);
	var = h->sumsq / (double)h->total - m * m;
	return var > 0 ? sqrt(var) : 0.0;
}

void hist_write_hdr(const struct hist *h, FILE *f, double scale)
{
	/* HdrHistogram's default: 5 reporting ticks per half distance. */
	const double ticks = 5.0;
	double p = 0.0;
	uint64_t cum, v;
	unsigned i;

	fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile",
		"TotalCount", "1/(1-Percentile)");
	if (h->total > 0) {
		for (;;) {
			i = hist_find(h, p, &cum);
			v = hist_value_at(i);
			if (v > h->max)
				v = h->max;
			if (cum >= h->total)
				break;
			fprintf(f, "%12.3f %2.12f %10llu %14.2f\n",
				(double)v / scale, p / 100.0,
				(unsigned long long)cum,
				1.0 / (1.0 - p / 100.0));
			/* Halve the distance to 100 % every ticks steps. */
			p += 100.0 /
			     (ticks *
			      pow(2.0, floor(log2(100.0 / (100.0 - p))) + 1.0));
		}
		fprintf(f, "%12.3f %2.12f %10llu %14.2f\n",
			(double)h->max / scale, p / 100.0,
			(unsigned long long)h->total, 1.0 / (1.0 - p / 100.0));
		fprintf(f, "%12.3f %2.12f %10llu\n", (double)h->max / scale,
			1.0, (unsigned long long)h->total);
	}
	fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
		hist_mean(h) / scale, hist_stddev(h) / scale);
	fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
		(double)h->max / scale, (unsigned long long)h->total);
	fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n", HIST_BUCKETS,
		HIST_SUB_COUNT);
}
