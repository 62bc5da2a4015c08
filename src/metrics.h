/*
 * metrics.h - --metrics-file: the counters in Prometheus' text format,
 * rewritten atomically by a writer process of their own (metrics.c says
 * why), for node_exporter's textfile collector.
 */
#ifndef ECHOD_METRICS_H
#define ECHOD_METRICS_H

#include "stats.h"

/*
 * metrics_start: fork the writer of path (before the sandbox; it confines
 * itself to path's folder). Returns the parent's end of their socket, or
 * -1 with errno.
 */
int metrics_start(const char *path, const struct stats_info *in);

/* metrics_send: hand the writer a snapshot; never waits (a busy writer
 * misses it, and the next snapshot has everything). fd -1: nothing. */
void metrics_send(int fd, const struct stats *st);

/* metrics_finish: the last snapshot, then wait up to wait_ms for the
 * writer to have it on disk, and close. */
void metrics_finish(int fd, const struct stats *st, int wait_ms);

#endif /* ECHOD_METRICS_H */
