/*
 * hdrlog.h - HdrHistogram's V2 compressed histogram encoding and its
 * interval log (the format HistogramLogWriter writes and HdrHistogram's log
 * readers, HistogramLogProcessor and the plotters read).
 *
 * struct hist has exactly HdrHistogram's layout for lowest discernible
 * value 1, highest trackable value HIST_MAX_VALUE and 2 significant digits
 * (256 sub-buckets, 128 per further power of two), so its counts array is
 * encoded as it is.
 */
#ifndef ECHO_STRESS_HDRLOG_H
#define ECHO_STRESS_HDRLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define HDR_V2_COOKIE		 0x1c849313u /* 0x1c849303 | word size 0x10 */
#define HDR_V2_COMPRESSED_COOKIE 0x1c849314u /* 0x1c849304 | 0x10 */
#define HDR_SIGNIFICANT_DIGITS	 2

/*
 * hdr_encode_compressed: h as HdrHistogram's V2 compressed encoding,
 * base64 (standard alphabet, padded), into a malloc'd string; NULL when out
 * of memory.
 */
char *hdr_encode_compressed(const struct hist *h);

/*
 * An interval log: hdrlog_header once, then one hdrlog_interval line per
 * interval. Timestamps are seconds relative to the start time, which is
 * also logged as the base time. Values are microseconds; Interval_Max is
 * in milliseconds (max / 1000), as HistogramLogWriter's max value unit
 * ratio would give for microsecond values.
 */
int hdrlog_header(FILE *f, double start_unix, const char *comment);
int hdrlog_interval(FILE *f, double start_s, double len_s,
		    const struct hist *h);

#endif /* ECHO_STRESS_HDRLOG_H */
