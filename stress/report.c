/*
 * report.c - the final summary, the JSON report and the HdrHistogram file.
 */
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const err_names[E_NERR] = {
    "mismatch",	       "short_echo",   "extra_bytes",	  "reset",
    "timeout",	       "closed",       "connect_refused", "connect_reset",
    "connect_timeout", "connect_other"};

struct totals {
	uint64_t opened, opened_measure, messages, bytes_sent, bytes_recv;
	uint64_t err[E_NERR], errors;
	struct st_first first[E_NERR];
	int errno_other;
	struct st_abuse_stats abuse[K_NKINDS];
	struct hist rt, connect;
};

static void merge(const struct st_config *cfg, const struct st_control *ctl,
		  struct totals *T)
{
	unsigned i, e, k;

	memset(T, 0, sizeof(*T));
	hist_init(&T->rt);
	hist_init(&T->connect);
	for (i = 0; i < cfg->workers; i++) {
		const struct st_shared *s = &ctl->w[i];

		T->opened += s->opened;
		T->opened_measure += s->opened_measure;
		T->messages += s->messages;
		T->bytes_sent += s->bytes_sent;
		T->bytes_recv += s->bytes_recv;
		for (e = 0; e < E_NERR; e++) {
			T->err[e] += s->err[e];
			/* lowest connection id wins: stable across runs */
			if (s->first[e].set &&
			    (!T->first[e].set ||
			     s->first[e].conn < T->first[e].conn))
				T->first[e] = s->first[e];
		}
		if (!T->errno_other)
			T->errno_other = s->first_errno_other;
		for (k = 1; k < K_NKINDS; k++) {
			const struct st_abuse_stats *a = &s->abuse[k];
			struct st_abuse_stats *b = &T->abuse[k];

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
		hist_merge(&T->rt, &s->rt);
		hist_merge(&T->connect, &s->connect);
	}
	for (e = 0; e < E_NERR; e++)
		T->errors += T->err[e];
}

static double secs(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1e9 : 0.0;
}

static double per(double n, double s)
{
	return s > 0 ? n / s : 0.0;
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

static void json_lat(FILE *f, const char *name, const struct hist *h, int last)
{
	unsigned i;

	fprintf(f,
		"    \"%s\": {\"count\": %llu, \"min\": %llu, \"mean\": %.3f, "
		"\"stddev\": %.3f",
		name, (unsigned long long)h->total, (unsigned long long)h->min,
		hist_mean(h), hist_stddev(h));
	for (i = 0; i < 4; i++)
		fprintf(f, ", \"%s\": %llu", pct_names[i],
			(unsigned long long)hist_percentile(h, pcts[i]));
	fprintf(f, ", \"max\": %llu}%s\n", (unsigned long long)h->max,
		last ? "" : ",");
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

static int write_json(const struct st_config *cfg, const struct totals *T,
		      const struct st_times *t, double ms, int status,
		      unsigned died, const char *const kind_names[K_NKINDS])
{
	static const char *const modes[] = {"raw", "line", "frame"};
	FILE *f = fopen(cfg->json, "w");
	unsigned e, k;

	if (!f) {
		fprintf(stderr, "echo-stress: %s: %s\n", cfg->json,
			strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"config\": {\"host\": ");
	json_str(f, cfg->host);
	fprintf(f, ", \"port\": ");
	json_str(f, cfg->port);
	fprintf(f,
		", \"connections\": %u, \"workers\": %u, \"duration_s\": %g, "
		"\"messages_per_conn\": %llu, \"size_min\": %u, \"size_max\": "
		"%u, \"mode\": \"%s\", \"delim\": %u, \"max_msg\": %u, "
		"\"rate\": %g, \"connect_rate\": %g, \"churn\": %llu, "
		"\"connect_timeout_s\": %g, \"timeout_s\": %g},\n",
		cfg->conns, cfg->workers, cfg->duration,
		(unsigned long long)cfg->messages, cfg->size_min, cfg->size_max,
		modes[cfg->mode], cfg->delim, cfg->max_msg, cfg->rate,
		cfg->connect_rate, (unsigned long long)cfg->churn,
		cfg->connect_timeout, cfg->timeout);
	fprintf(f,
		"  \"phases\": {\"connect_s\": %.6f, \"measure_s\": %.6f, "
		"\"drain_s\": %.6f, \"total_s\": %.6f},\n",
		secs(t->start, t->connect_end), ms,
		secs(t->measure_end, t->end), secs(t->start, t->end));
	fprintf(
	    f,
	    "  \"connections\": {\"opened\": %llu, \"opened_connect_phase\": "
	    "%llu, \"opened_measure_phase\": %llu, \"failed\": %llu, "
	    "\"per_s_connect_phase\": %.3f, \"per_s_measure_phase\": "
	    "%.3f},\n",
	    (unsigned long long)T->opened,
	    (unsigned long long)(T->opened - T->opened_measure),
	    (unsigned long long)T->opened_measure,
	    (unsigned long long)(T->err[E_CONN_REFUSED] + T->err[E_CONN_RESET] +
				 T->err[E_CONN_TIMEOUT] + T->err[E_CONN_OTHER]),
	    per((double)(T->opened - T->opened_measure),
		secs(t->start, t->connect_end)),
	    per((double)T->opened_measure, ms));
	fprintf(f,
		"  \"messages\": %llu,\n  \"bytes_sent\": %llu,\n"
		"  \"bytes_received\": %llu,\n  \"messages_per_s\": %.3f,\n"
		"  \"mb_per_s\": %.3f,\n",
		(unsigned long long)T->messages,
		(unsigned long long)T->bytes_sent,
		(unsigned long long)T->bytes_recv, per((double)T->messages, ms),
		per((double)T->bytes_recv, ms) / 1e6);
	fprintf(f, "  \"latency_us\": {\n");
	json_lat(f, "round_trip", &T->rt, 0);
	json_lat(f, "connect", &T->connect, 1);
	fprintf(f, "  },\n  \"errors\": {");
	for (e = 0; e < E_NERR; e++)
		fprintf(f, "%s\"%s\": %llu", e ? ", " : "", err_names[e],
			(unsigned long long)T->err[e]);
	fprintf(f, ", \"total\": %llu},\n  \"first_errors\": {",
		(unsigned long long)T->errors);
	for (e = 0, k = 0; e < E_NERR; e++) {
		if (!T->first[e].set)
			continue;
		fprintf(f, "%s\"%s\": {\"conn\": %llu, \"offset\": %llu}",
			k++ ? ", " : "", err_names[e],
			(unsigned long long)T->first[e].conn,
			(unsigned long long)T->first[e].offset);
	}
	fprintf(f, "},\n  \"connect_other_errno\": ");
	json_str(f, T->errno_other ? strerror(T->errno_other) : "");
	fprintf(f, ",\n  \"abuse\": {");
	for (k = 1; k < K_NKINDS; k++) {
		const struct st_abuse_stats *a = &T->abuse[k];

		fprintf(f,
			"%s\n    \"%s\": {\"clients\": %u, \"connects\": %llu, "
			"\"connect_failed\": %llu, \"bytes_sent\": %llu, "
			"\"bytes_received\": %llu, \"closed_by_server\": %llu, "
			"\"resets_sent\": %llu, \"err_replies\": %llu, "
			"\"errors\": %llu, \"open_at_end\": %llu}",
			k > 1 ? "," : "", kind_names[k], cfg->abuse[k],
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
	fprintf(f,
		"\n  },\n  \"workers_died\": %u,\n  \"exit_status\": %d\n}\n",
		died, status);
	return fclose(f) == 0 ? 0 : -1;
}

int report(const struct st_config *cfg, struct st_control *ctl,
	   const struct st_times *t, unsigned died,
	   const char *const kind_names[K_NKINDS])
{
	struct totals *T = malloc(sizeof(*T));
	double ms = secs(t->measure_start, t->measure_end);
	int status;
	unsigned e, k;
	FILE *f = stdout;

	if (!T) {
		fprintf(stderr, "echo-stress: out of memory\n");
		return 1;
	}
	merge(cfg, ctl, T);
	status = T->errors || died ? 1 : 0;

	fprintf(f, "phases: connect %.3f s, measure %.3f s, drain %.3f s\n",
		secs(t->start, t->connect_end), ms,
		secs(t->measure_end, t->end));
	fprintf(f,
		"connections: %llu opened (%llu in connect phase, %.1f/s; "
		"%llu in measure phase, %.1f/s)\n",
		(unsigned long long)T->opened,
		(unsigned long long)(T->opened - T->opened_measure),
		per((double)(T->opened - T->opened_measure),
		    secs(t->start, t->connect_end)),
		(unsigned long long)T->opened_measure,
		per((double)T->opened_measure, ms));
	fprintf(f,
		"connect failures: refused %llu, reset %llu, timeout %llu, "
		"other %llu%s%s\n",
		(unsigned long long)T->err[E_CONN_REFUSED],
		(unsigned long long)T->err[E_CONN_RESET],
		(unsigned long long)T->err[E_CONN_TIMEOUT],
		(unsigned long long)T->err[E_CONN_OTHER],
		T->errno_other ? " - first other: " : "",
		T->errno_other ? strerror(T->errno_other) : "");
	fprintf(f,
		"messages: %llu (%.1f/s), bytes sent %llu, echoed %llu "
		"(%.2f MB/s)\n",
		(unsigned long long)T->messages, per((double)T->messages, ms),
		(unsigned long long)T->bytes_sent,
		(unsigned long long)T->bytes_recv,
		per((double)T->bytes_recv, ms) / 1e6);
	fprintf(f, "latency:\n");
	print_lat(f, "round-trip", &T->rt);
	print_lat(f, "connect", &T->connect);
	fprintf(f, "errors:");
	for (e = 0; e < E_NERR; e++)
		fprintf(f, " %s %llu", err_names[e],
			(unsigned long long)T->err[e]);
	fprintf(f, "\n");
	for (e = 0; e < E_NERR; e++)
		if (T->first[e].set)
			fprintf(f, "  first %s: connection %llu, byte %llu\n",
				err_names[e],
				(unsigned long long)T->first[e].conn,
				(unsigned long long)T->first[e].offset);
	for (k = 1; k < K_NKINDS; k++) {
		const struct st_abuse_stats *a = &T->abuse[k];

		if (!cfg->abuse[k])
			continue;
		fprintf(f,
			"abuse %s x%u (not measured): %llu connects, %llu "
			"failed, sent %llu B, received %llu B, closed by "
			"server %llu, resets sent %llu, ERR replies %llu, "
			"errors %llu, open at end %llu\n",
			kind_names[k], cfg->abuse[k],
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
	if (died)
		fprintf(f, "workers died: %u\n", died);
	fprintf(f, "result: %s\n", status ? "FAIL" : "PASS");
	fflush(f);

	if (cfg->json &&
	    write_json(cfg, T, t, ms, status, died, kind_names) < 0)
		status = 1;
	if (cfg->hdr) {
		FILE *h = fopen(cfg->hdr, "w");

		if (!h) {
			fprintf(stderr, "echo-stress: %s: %s\n", cfg->hdr,
				strerror(errno));
			status = 1;
		} else {
			hist_write_hdr(&T->rt, h, 1000.0);
			if (fclose(h) != 0)
				status = 1;
		}
	}
	free(T);
	return status;
}
