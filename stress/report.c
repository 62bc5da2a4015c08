/*
 * report.c - the final summary, the JSON report and the HdrHistogram file.
 */
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const st_err_names[E_NERR] = {
    "mismatch",	       "short_echo",   "extra_bytes",	  "reset",
    "timeout",	       "closed",       "connect_refused", "connect_reset",
    "connect_timeout", "connect_other"};

const char *const st_kind_names[K_NKINDS] = {
    "measured", "slowloris", "noread", "idle", "reset", "oversize"};

static double secs(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1e9 : 0.0;
}

static double per(double n, double s)
{
	return s > 0 ? n / s : 0.0;
}

/* The workers' results, added up, and the configuration they ran. */
static void collect(const struct st_config *cfg, const struct st_control *ctl,
		    const struct st_times *t, unsigned died,
		    struct st_report *R)
{
	static const char *const modes[] = {"raw", "line", "frame"};
	unsigned i, e, k;
	int other = 0;

	memset(R, 0, sizeof(*R));
	snprintf(R->host, sizeof(R->host), "%s", cfg->host);
	snprintf(R->port, sizeof(R->port), "%s", cfg->port);
	snprintf(R->mode, sizeof(R->mode), "%s", modes[cfg->mode]);
	if (gethostname(R->client_host, sizeof(R->client_host) - 1) < 0)
		R->client_host[0] = 0;
	R->conns = cfg->conns;
	R->workers = cfg->workers;
	R->pipeline = cfg->pipeline;
	R->sources = cfg->nsources;
	R->delim = cfg->delim;
	R->duration = cfg->duration;
	R->rate = cfg->rate;
	R->connect_rate = cfg->connect_rate;
	R->connect_timeout = cfg->connect_timeout;
	R->timeout = cfg->timeout;
	R->messages_per_conn = cfg->messages;
	R->churn = cfg->churn;
	R->size_min = cfg->size_min;
	R->size_max = cfg->size_max;
	R->max_msg = cfg->max_msg;
	memcpy(R->abuse_clients, cfg->abuse, sizeof(R->abuse_clients));

	R->start_unix = (double)t->start / 1e9 + t->unix_offset;
	R->measure_start_unix = (double)t->measure_start / 1e9 + t->unix_offset;
	R->measure_end_unix = (double)t->measure_end / 1e9 + t->unix_offset;
	R->end_unix = (double)t->end / 1e9 + t->unix_offset;
	R->connect_s = secs(t->start, t->connect_end);
	R->measure_s = secs(t->measure_start, t->measure_end);
	R->drain_s = secs(t->measure_end, t->end);
	R->total_s = secs(t->start, t->end);

	hist_init(&R->rt);
	hist_init(&R->connect);
	for (i = 0; i < cfg->workers; i++) {
		const struct st_shared *s = &ctl->w[i];

		R->opened += s->opened;
		R->opened_measure += s->opened_measure;
		R->messages += s->messages;
		R->bytes_sent += s->bytes_sent;
		R->bytes_recv += s->bytes_recv;
		for (e = 0; e < E_NERR; e++) {
			R->err[e] += s->err[e];
			/* lowest connection id wins: stable across runs */
			if (s->first[e].set &&
			    (!R->first[e].set ||
			     s->first[e].conn < R->first[e].conn))
				R->first[e] = s->first[e];
		}
		if (!other && s->first_errno_other) {
			other = s->first_errno_other;
			snprintf(R->errno_other, sizeof(R->errno_other), "%s",
				 strerror(other));
		}
		for (k = 1; k < K_NKINDS; k++) {
			const struct st_abuse_stats *a = &s->abuse[k];
			struct st_abuse_stats *b = &R->abuse[k];

			b->connects += a->connects;
			b->connect_failed += a->connect_failed;
			b->bytes_sent += a->bytes_sent;
			b->bytes_received += a->bytes_received;
			b->closed_by_server += a->closed_by_server;
			b->resets_sent += a->resets_sent;
			b->err_replies += a->err_replies;
			b->errors += a->errors;
			b->open_at_end += a->open_at_end;
		}
		hist_merge(&R->rt, &s->rt);
		hist_merge(&R->connect, &s->connect);
	}
	for (e = 0; e < E_NERR; e++)
		R->errors += R->err[e];
	R->conn_per_s_connect =
	    per((double)(R->opened - R->opened_measure), R->connect_s);
	R->conn_per_s_measure = per((double)R->opened_measure, R->measure_s);
	R->msgs_per_s = per((double)R->messages, R->measure_s);
	R->mb_per_s = per((double)R->bytes_recv, R->measure_s) / 1e6;
	R->died = died;
	R->status = R->errors || died ? 1 : 0;
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99_9"};

static void print_lat(FILE *f, const char *name, const struct hist *h)
{
	unsigned i;

	fprintf(f, "  %-11s", name);
	if (h->total == 0) {
		fprintf(f, " (none)\n");
		return;
	}
	for (i = 0; i < 4; i++)
		fprintf(f, " %s %.3f ms", i == 3 ? "p99.9" : pct_names[i],
			(double)hist_percentile(h, pcts[i]) / 1e3);
	fprintf(f, " max %.3f ms (n=%llu)\n", (double)h->max / 1e3,
		(unsigned long long)h->total);
}

void report_print(FILE *f, const struct st_report *R)
{
	unsigned e, k;

	if (R->merged)
		fprintf(f,
			"merged %u reports: start skew %.3f s, measure phase "
			"start skew %.3f s, end skew %.3f s, all measuring "
			"together for %.3f s\n",
			R->merged, R->start_skew, R->measure_start_skew,
			R->measure_end_skew, R->measure_overlap);
	fprintf(f, "phases: connect %.3f s, measure %.3f s, drain %.3f s\n",
		R->connect_s, R->measure_s, R->drain_s);
	fprintf(f,
		"connections: %llu opened (%llu in connect phase, %.1f/s; "
		"%llu in measure phase, %.1f/s)\n",
		(unsigned long long)R->opened,
		(unsigned long long)(R->opened - R->opened_measure),
		R->conn_per_s_connect, (unsigned long long)R->opened_measure,
		R->conn_per_s_measure);
	fprintf(f,
		"connect failures: refused %llu, reset %llu, timeout %llu, "
		"other %llu%s%s\n",
		(unsigned long long)R->err[E_CONN_REFUSED],
		(unsigned long long)R->err[E_CONN_RESET],
		(unsigned long long)R->err[E_CONN_TIMEOUT],
		(unsigned long long)R->err[E_CONN_OTHER],
		R->errno_other[0] ? " - first other: " : "", R->errno_other);
	fprintf(f,
		"messages: %llu (%.1f/s), bytes sent %llu, echoed %llu "
		"(%.2f MB/s)\n",
		(unsigned long long)R->messages, R->msgs_per_s,
		(unsigned long long)R->bytes_sent,
		(unsigned long long)R->bytes_recv, R->mb_per_s);
	fprintf(f, "latency:\n");
	print_lat(f, "round-trip", &R->rt);
	print_lat(f, "connect", &R->connect);
	fprintf(f, "errors:");
	for (e = 0; e < E_NERR; e++)
		fprintf(f, " %s %llu", st_err_names[e],
			(unsigned long long)R->err[e]);
	fprintf(f, "\n");
	for (e = 0; e < E_NERR; e++)
		if (R->first[e].set)
			fprintf(f, "  first %s: connection %llu, byte %llu\n",
				st_err_names[e],
				(unsigned long long)R->first[e].conn,
				(unsigned long long)R->first[e].offset);
	for (k = 1; k < K_NKINDS; k++) {
		const struct st_abuse_stats *a = &R->abuse[k];

		if (!R->abuse_clients[k])
			continue;
		fprintf(f,
			"abuse %s x%u (not measured): %llu connects, %llu "
			"failed, sent %llu B, received %llu B, closed by "
			"server %llu, resets sent %llu, ERR replies %llu, "
			"errors %llu, open at end %llu\n",
			st_kind_names[k], R->abuse_clients[k],
			(unsigned long long)a->connects,
			(unsigned long long)a->connect_failed,
			(unsigned long long)a->bytes_sent,
			(unsigned long long)a->bytes_received,
			(unsigned long long)a->closed_by_server,
			(unsigned long long)a->resets_sent,
			(unsigned long long)a->err_replies,
			(unsigned long long)a->errors,
			(unsigned long long)a->open_at_end);
	}
	if (R->died)
		fprintf(f, "workers died: %u\n", R->died);
	fprintf(f, "result: %s\n", R->status ? "FAIL" : "PASS");
	fflush(f);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_lat(FILE *f, const char *name, const struct hist *h, int last)
{
	unsigned i, n;

	fprintf(f,
		"    \"%s\": {\"count\": %llu, \"min\": %llu, \"mean\": %.3f, "
		"\"stddev\": %.3f",
		name, (unsigned long long)h->total, (unsigned long long)h->min,
		hist_mean(h), hist_stddev(h));
	for (i = 0; i < 4; i++)
		fprintf(f, ", \"%s\": %llu", pct_names[i],
			(unsigned long long)hist_percentile(h, pcts[i]));
	fprintf(f, ", \"max\": %llu", (unsigned long long)h->max);
	/* Enough to merge runs exactly (echo-stress merge) and to recompute
	 * any percentile: the sums, and every non-empty bucket as [lowest
	 * value, highest value, count]. */
	fprintf(f, ",\n      \"sum\": %.17g, \"sumsq\": %.17g, \"buckets\": [",
		h->sum, h->sumsq);
	for (i = 0, n = 0; i < HIST_COUNTS; i++) {
		if (!h->counts[i])
			continue;
		fprintf(f, "%s[%llu, %llu, %llu]", n++ ? ", " : "",
			(unsigned long long)hist_lowest_at(i),
			(unsigned long long)hist_value_at(i),
			(unsigned long long)h->counts[i]);
	}
	fprintf(f, "]}%s\n", last ? "" : ",");
}

int report_write_json(const char *path, const struct st_report *R)
{
	FILE *f = fopen(path, "w");
	unsigned e, k;

	if (!f) {
		fprintf(stderr, "echo-stress: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"config\": {\"host\": ");
	json_str(f, R->host);
	fprintf(f, ", \"port\": ");
	json_str(f, R->port);
	fprintf(f,
		", \"connections\": %u, \"workers\": %u, \"duration_s\": %g, "
		"\"messages_per_conn\": %llu, \"size_min\": %u, \"size_max\": "
		"%u, \"mode\": \"%s\", \"delim\": %u, \"max_msg\": %u, "
		"\"rate\": %g, \"connect_rate\": %g, \"churn\": %llu, "
		"\"connect_timeout_s\": %g, \"timeout_s\": %g, \"pipeline\": "
		"%u, \"sources\": %u},\n",
		R->conns, R->workers, R->duration,
		(unsigned long long)R->messages_per_conn, R->size_min,
		R->size_max, R->mode, R->delim, R->max_msg, R->rate,
		R->connect_rate, (unsigned long long)R->churn,
		R->connect_timeout, R->timeout, R->pipeline, R->sources);
	fprintf(f, "  \"client_host\": ");
	json_str(f, R->client_host);
	fprintf(f,
		",\n  \"times_unix\": {\"start\": %.6f, \"measure_start\": "
		"%.6f, \"measure_end\": %.6f, \"end\": %.6f},\n",
		R->start_unix, R->measure_start_unix, R->measure_end_unix,
		R->end_unix);
	fprintf(f,
		"  \"phases\": {\"connect_s\": %.6f, \"measure_s\": %.6f, "
		"\"drain_s\": %.6f, \"total_s\": %.6f},\n",
		R->connect_s, R->measure_s, R->drain_s, R->total_s);
	fprintf(
	    f,
	    "  \"connections\": {\"opened\": %llu, \"opened_connect_phase\": "
	    "%llu, \"opened_measure_phase\": %llu, \"failed\": %llu, "
	    "\"per_s_connect_phase\": %.3f, \"per_s_measure_phase\": "
	    "%.3f},\n",
	    (unsigned long long)R->opened,
	    (unsigned long long)(R->opened - R->opened_measure),
	    (unsigned long long)R->opened_measure,
	    (unsigned long long)(R->err[E_CONN_REFUSED] + R->err[E_CONN_RESET] +
				 R->err[E_CONN_TIMEOUT] + R->err[E_CONN_OTHER]),
	    R->conn_per_s_connect, R->conn_per_s_measure);
	fprintf(f,
		"  \"messages\": %llu,\n  \"bytes_sent\": %llu,\n"
		"  \"bytes_received\": %llu,\n  \"messages_per_s\": %.3f,\n"
		"  \"mb_per_s\": %.3f,\n",
		(unsigned long long)R->messages,
		(unsigned long long)R->bytes_sent,
		(unsigned long long)R->bytes_recv, R->msgs_per_s, R->mb_per_s);
	fprintf(f, "  \"latency_us\": {\n");
	json_lat(f, "round_trip", &R->rt, 0);
	json_lat(f, "connect", &R->connect, 1);
	fprintf(f, "  },\n  \"errors\": {");
	for (e = 0; e < E_NERR; e++)
		fprintf(f, "%s\"%s\": %llu", e ? ", " : "", st_err_names[e],
			(unsigned long long)R->err[e]);
	fprintf(f, ", \"total\": %llu},\n  \"first_errors\": {",
		(unsigned long long)R->errors);
	for (e = 0, k = 0; e < E_NERR; e++) {
		if (!R->first[e].set)
			continue;
		fprintf(f, "%s\"%s\": {\"conn\": %llu, \"offset\": %llu}",
			k++ ? ", " : "", st_err_names[e],
			(unsigned long long)R->first[e].conn,
			(unsigned long long)R->first[e].offset);
	}
	fprintf(f, "},\n  \"connect_other_errno\": ");
	json_str(f, R->errno_other);
	fprintf(f, ",\n  \"abuse\": {");
	for (k = 1; k < K_NKINDS; k++) {
		const struct st_abuse_stats *a = &R->abuse[k];

		fprintf(f,
			"%s\n    \"%s\": {\"clients\": %u, \"connects\": %llu, "
			"\"connect_failed\": %llu, \"bytes_sent\": %llu, "
			"\"bytes_received\": %llu, \"closed_by_server\": %llu, "
			"\"resets_sent\": %llu, \"err_replies\": %llu, "
			"\"errors\": %llu, \"open_at_end\": %llu}",
			k > 1 ? "," : "", st_kind_names[k], R->abuse_clients[k],
			(unsigned long long)a->connects,
			(unsigned long long)a->connect_failed,
			(unsigned long long)a->bytes_sent,
			(unsigned long long)a->bytes_received,
			(unsigned long long)a->closed_by_server,
			(unsigned long long)a->resets_sent,
			(unsigned long long)a->err_replies,
			(unsigned long long)a->errors,
			(unsigned long long)a->open_at_end);
	}
	fprintf(f, "\n  },\n");
	if (R->merged) {
		fprintf(f,
			"  \"merge\": {\"reports\": %u, \"start_skew_s\": "
			"%.6f, \"measure_start_skew_s\": %.6f, "
			"\"measure_end_skew_s\": %.6f, "
			"\"measure_overlap_s\": %.6f, \"files\": [",
			R->merged, R->start_skew, R->measure_start_skew,
			R->measure_end_skew, R->measure_overlap);
		for (k = 0; k < R->merged; k++) {
			fprintf(f, k ? ", " : "");
			json_str(f, R->merged_files[k]);
		}
		fprintf(f, "]},\n");
	}
	fprintf(f, "  \"workers_died\": %u,\n  \"exit_status\": %d\n}\n",
		R->died, R->status);
	if (fclose(f) != 0) {
		fprintf(stderr, "echo-stress: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int report_write_hdr(const char *path, const struct st_report *R)
{
	FILE *h = fopen(path, "w");

	if (!h) {
		fprintf(stderr, "echo-stress: %s: %s\n", path, strerror(errno));
		return -1;
	}
	hist_write_hdr(&R->rt, h, 1000.0);
	if (fclose(h) != 0) {
		fprintf(stderr, "echo-stress: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int report(const struct st_config *cfg, struct st_control *ctl,
	   const struct st_times *t, unsigned died)
{
	struct st_report *R = malloc(sizeof(*R));
	int status;

	if (!R) {
		fprintf(stderr, "echo-stress: out of memory\n");
		return 1;
	}
	collect(cfg, ctl, t, died, R);
	report_print(stdout, R);
	status = R->status;
	if (cfg->json && report_write_json(cfg->json, R) < 0)
		status = 1;
	if (cfg->hdr && report_write_hdr(cfg->hdr, R) < 0)
		status = 1;
	free(R);
	return status;
}
