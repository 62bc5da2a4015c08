/*
 * merge.c - echo-stress merge: the JSON reports of runs made at the same
 * time (several hosts, each with its share of the load) added up into one
 * report. Counts and bytes are summed, latency histograms are added bucket
 * by bucket (so every percentile of the merged report is that of all the
 * samples together, never an average of percentiles), rates are summed
 * (each report's over its own measure phase: right when the phases
 * overlap, which the start and end skews shown tell), and the hosts'
 * start-time skew is reported.
 */
#include "json.h"
#include "report.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORT_BYTES (64u << 20)

struct loader {
	const char *file;
	char why[256];
};

static int bad_field(struct loader *L, const char *what)
{
	if (!L->why[0])
		snprintf(L->why, sizeof(L->why), "no valid \"%s\"", what);
	return -1;
}

static int get_u64(struct loader *L, const struct json *o, const char *key,
		   uint64_t *v)
{
	return json_u64(json_get(o, key), v) < 0 ? bad_field(L, key) : 0;
}

static int get_u32(struct loader *L, const struct json *o, const char *key,
		   unsigned *v)
{
	uint64_t x;

	if (get_u64(L, o, key, &x) < 0 || x > UINT32_MAX)
		return bad_field(L, key);
	*v = (unsigned)x;
	return 0;
}

static int get_f64(struct loader *L, const struct json *o, const char *key,
		   double *v)
{
	return json_f64(json_get(o, key), v) < 0 ? bad_field(L, key) : 0;
}

static int get_str(struct loader *L, const struct json *o, const char *key,
		   char *buf, size_t n)
{
	const struct json *s = json_get(o, key);

	if (!s || s->type != JSON_STR)
		return bad_field(L, key);
	snprintf(buf, n, "%s", s->str);
	return 0;
}

static const struct json *get_obj(struct loader *L, const struct json *o,
				  const char *key)
{
	const struct json *v = json_get(o, key);

	if (!v || v->type != JSON_OBJ) {
		bad_field(L, key);
		return NULL;
	}
	return v;
}

/* A latency object: its buckets into h, checked against this build's
 * layout and against its count. */
static int load_hist(struct loader *L, const struct json *lat, const char *name,
		     struct hist *h)
{
	const struct json *o = get_obj(L, lat, name), *b;
	uint64_t total = 0;
	size_t i;

	hist_init(h);
	if (!o)
		return -1;
	b = json_get(o, "buckets");
	if (!b || b->type != JSON_ARR) {
		snprintf(L->why, sizeof(L->why),
			 "no \"%s\" histogram buckets (a report of an older "
			 "echo-stress?)",
			 name);
		return -1;
	}
	for (i = 0; i < b->n; i++) {
		const struct json *e = &b->kids[i];
		uint64_t lo, hi, n;
		unsigned idx;

		if (e->type != JSON_ARR || e->n != 3 ||
		    json_u64(&e->kids[0], &lo) < 0 ||
		    json_u64(&e->kids[1], &hi) < 0 ||
		    json_u64(&e->kids[2], &n) < 0 || lo > HIST_MAX_VALUE ||
		    hist_lowest_at(idx = hist_index(lo)) != lo ||
		    hist_value_at(idx) != hi) {
			snprintf(L->why, sizeof(L->why),
				 "\"%s\" bucket %zu is not one of this "
				 "histogram's buckets",
				 name, i);
			return -1;
		}
		h->counts[idx] += n;
		total += n;
	}
	if (get_u64(L, o, "count", &h->total) < 0 ||
	    get_u64(L, o, "min", &h->min) < 0 ||
	    get_u64(L, o, "max", &h->max) < 0 ||
	    get_f64(L, o, "sum", &h->sum) < 0 ||
	    get_f64(L, o, "sumsq", &h->sumsq) < 0)
		return -1;
	if (total != h->total) {
		snprintf(L->why, sizeof(L->why),
			 "\"%s\" buckets hold %llu samples, its count says "
			 "%llu",
			 name, (unsigned long long)total,
			 (unsigned long long)h->total);
		return -1;
	}
	return 0;
}

static int load(struct loader *L, const struct json *j, struct st_report *R)
{
	const struct json *c, *t, *ph, *cn, *lat, *er, *fe, *ab, *v;
	uint64_t u;
	unsigned e, k;

	memset(R, 0, sizeof(*R));
	if (!(c = get_obj(L, j, "config")) ||
	    !(t = get_obj(L, j, "times_unix")) ||
	    !(ph = get_obj(L, j, "phases")) ||
	    !(cn = get_obj(L, j, "connections")) ||
	    !(lat = get_obj(L, j, "latency_us")) ||
	    !(er = get_obj(L, j, "errors")) ||
	    !(fe = get_obj(L, j, "first_errors")) ||
	    !(ab = get_obj(L, j, "abuse")))
		return -1;
	if (get_str(L, c, "host", R->host, sizeof(R->host)) < 0 ||
	    get_str(L, c, "port", R->port, sizeof(R->port)) < 0 ||
	    get_str(L, c, "mode", R->mode, sizeof(R->mode)) < 0 ||
	    get_u32(L, c, "connections", &R->conns) < 0 ||
	    get_u32(L, c, "workers", &R->workers) < 0 ||
	    get_u32(L, c, "pipeline", &R->pipeline) < 0 ||
	    get_u32(L, c, "sources", &R->sources) < 0 ||
	    get_u32(L, c, "delim", &R->delim) < 0 ||
	    get_f64(L, c, "duration_s", &R->duration) < 0 ||
	    get_f64(L, c, "rate", &R->rate) < 0 ||
	    get_f64(L, c, "connect_rate", &R->connect_rate) < 0 ||
	    get_f64(L, c, "connect_timeout_s", &R->connect_timeout) < 0 ||
	    get_f64(L, c, "timeout_s", &R->timeout) < 0 ||
	    get_u64(L, c, "messages_per_conn", &R->messages_per_conn) < 0 ||
	    get_u64(L, c, "churn", &R->churn) < 0 ||
	    get_u32(L, c, "size_min", &R->size_min) < 0 ||
	    get_u32(L, c, "size_max", &R->size_max) < 0 ||
	    get_u32(L, c, "max_msg", &R->max_msg) < 0)
		return -1;
	get_str(L, j, "client_host", R->client_host, sizeof(R->client_host));
	L->why[0] = 0; /* client_host is optional */
	if (get_f64(L, t, "start", &R->start_unix) < 0 ||
	    get_f64(L, t, "measure_start", &R->measure_start_unix) < 0 ||
	    get_f64(L, t, "measure_end", &R->measure_end_unix) < 0 ||
	    get_f64(L, t, "end", &R->end_unix) < 0 ||
	    get_f64(L, ph, "connect_s", &R->connect_s) < 0 ||
	    get_f64(L, ph, "measure_s", &R->measure_s) < 0 ||
	    get_f64(L, ph, "drain_s", &R->drain_s) < 0 ||
	    get_f64(L, ph, "total_s", &R->total_s) < 0 ||
	    get_u64(L, cn, "opened", &R->opened) < 0 ||
	    get_u64(L, cn, "opened_measure_phase", &R->opened_measure) < 0 ||
	    get_f64(L, cn, "per_s_connect_phase", &R->conn_per_s_connect) < 0 ||
	    get_f64(L, cn, "per_s_measure_phase", &R->conn_per_s_measure) < 0 ||
	    get_u64(L, j, "messages", &R->messages) < 0 ||
	    get_u64(L, j, "bytes_sent", &R->bytes_sent) < 0 ||
	    get_u64(L, j, "bytes_received", &R->bytes_recv) < 0 ||
	    get_f64(L, j, "messages_per_s", &R->msgs_per_s) < 0 ||
	    get_f64(L, j, "mb_per_s", &R->mb_per_s) < 0 ||
	    get_u32(L, j, "workers_died", &R->died) < 0 ||
	    load_hist(L, lat, "round_trip", &R->rt) < 0 ||
	    load_hist(L, lat, "connect", &R->connect) < 0)
		return -1;
	if (R->opened_measure > R->opened)
		return bad_field(L, "opened_measure_phase");
	for (e = 0; e < E_NERR; e++) {
		if (get_u64(L, er, st_err_names[e], &R->err[e]) < 0)
			return -1;
		R->errors += R->err[e];
		v = json_get(fe, st_err_names[e]);
		if (v) {
			if (get_u64(L, v, "conn", &R->first[e].conn) < 0 ||
			    get_u64(L, v, "offset", &R->first[e].offset) < 0)
				return -1;
			R->first[e].set = 1;
		}
	}
	v = json_get(j, "connect_other_errno");
	if (v && v->type == JSON_STR)
		snprintf(R->errno_other, sizeof(R->errno_other), "%s", v->str);
	for (k = 1; k < K_NKINDS; k++) {
		const struct json *a = get_obj(L, ab, st_kind_names[k]);
		struct st_abuse_stats *s = &R->abuse[k];

		if (!a || get_u32(L, a, "clients", &R->abuse_clients[k]) < 0 ||
		    get_u64(L, a, "connects", &s->connects) < 0 ||
		    get_u64(L, a, "connect_failed", &s->connect_failed) < 0 ||
		    get_u64(L, a, "bytes_sent", &s->bytes_sent) < 0 ||
		    get_u64(L, a, "bytes_received", &s->bytes_received) < 0 ||
		    get_u64(L, a, "closed_by_server", &s->closed_by_server) <
			0 ||
		    get_u64(L, a, "resets_sent", &s->resets_sent) < 0 ||
		    get_u64(L, a, "err_replies", &s->err_replies) < 0 ||
		    get_u64(L, a, "errors", &s->errors) < 0 ||
		    get_u64(L, a, "open_at_end", &s->open_at_end) < 0)
			return -1;
	}
	v = json_get(j, "exit_status");
	if (json_u64(v, &u) < 0)
		return bad_field(L, "exit_status");
	R->status = u != 0 || R->errors || R->died;
	return 0;
}

static double dmax(double a, double b)
{
	return a > b ? a : b;
}

static double dmin(double a, double b)
{
	return a < b ? a : b;
}

/* Add report O (the i-th) to the merged report M. */
static void add(struct st_report *M, const struct st_report *O, unsigned i)
{
	unsigned e, k;

	if (i == 0) {
		*M = *O;
		return;
	}
	if (strcmp(M->host, O->host) != 0 || strcmp(M->port, O->port) != 0) {
		snprintf(M->host, sizeof(M->host), "(several)");
		snprintf(M->port, sizeof(M->port), "(several)");
	}
	if (strcmp(M->client_host, O->client_host) != 0)
		snprintf(M->client_host, sizeof(M->client_host), "(several)");
	M->conns += O->conns;
	M->workers += O->workers;
	M->sources += O->sources;
	M->rate += O->rate;
	M->connect_rate += O->connect_rate;
	for (k = 1; k < K_NKINDS; k++)
		M->abuse_clients[k] += O->abuse_clients[k];
	M->start_unix = dmin(M->start_unix, O->start_unix);
	M->end_unix = dmax(M->end_unix, O->end_unix);
	M->connect_s = dmax(M->connect_s, O->connect_s);
	M->measure_s = dmax(M->measure_s, O->measure_s);
	M->drain_s = dmax(M->drain_s, O->drain_s);
	M->opened += O->opened;
	M->opened_measure += O->opened_measure;
	M->messages += O->messages;
	M->bytes_sent += O->bytes_sent;
	M->bytes_recv += O->bytes_recv;
	for (e = 0; e < E_NERR; e++) {
		M->err[e] += O->err[e];
		if (!M->first[e].set && O->first[e].set)
			M->first[e] = O->first[e];
	}
	M->errors += O->errors;
	if (!M->errno_other[0])
		memcpy(M->errno_other, O->errno_other, sizeof(M->errno_other));
	for (k = 1; k < K_NKINDS; k++) {
		struct st_abuse_stats *a = &M->abuse[k];
		const struct st_abuse_stats *b = &O->abuse[k];

		a->connects += b->connects;
		a->connect_failed += b->connect_failed;
		a->bytes_sent += b->bytes_sent;
		a->bytes_received += b->bytes_received;
		a->closed_by_server += b->closed_by_server;
		a->resets_sent += b->resets_sent;
		a->err_replies += b->err_replies;
		a->errors += b->errors;
		a->open_at_end += b->open_at_end;
	}
	hist_merge(&M->rt, &O->rt);
	hist_merge(&M->connect, &O->connect);
	M->conn_per_s_connect += O->conn_per_s_connect;
	M->conn_per_s_measure += O->conn_per_s_measure;
	M->msgs_per_s += O->msgs_per_s;
	M->mb_per_s += O->mb_per_s;
	M->died += O->died;
	M->status |= O->status;
}

static char *slurp(const char *path, size_t *len, char *why, size_t n)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, got = 0;

	if (!f) {
		snprintf(why, n, "%s", strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t r;

		if (got == cap) {
			char *p;

			if (cap >= MAX_REPORT_BYTES) {
				snprintf(why, n, "larger than %u MiB",
					 MAX_REPORT_BYTES >> 20);
				break;
			}
			cap = cap ? 2 * cap : 65536;
			p = realloc(buf, cap);
			if (!p) {
				snprintf(why, n, "out of memory");
				break;
			}
			buf = p;
		}
		r = fread(buf + got, 1, cap - got, f);
		got += r;
		if (r == 0) {
			if (ferror(f)) {
				snprintf(why, n, "%s", strerror(errno));
				break;
			}
			fclose(f);
			*len = got;
			return buf;
		}
	}
	fclose(f);
	free(buf);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: echo-stress merge [--json FILE] [--hdr FILE] "
		"REPORT.json...\n"
		"  Adds up the JSON reports (--json) of runs made at the same "
		"time, e.g. one\n"
		"  per host with --rate R/N each: counts and bytes summed, "
		"latency histograms\n"
		"  merged bucket by bucket, rates summed, start-time skew "
		"shown.\n"
		"      --json FILE       write the merged report as JSON\n"
		"      --hdr FILE        write its round-trip latency "
		"distribution\n"
		"                        (HdrHistogram text format, ms)\n"
		"Exit status: 0 no errors in any report, 1 errors (or a "
		"report that cannot\n"
		"be read), 2 usage.\n");
}

int merge_main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"json", required_argument, NULL, 'J'},
	    {"hdr", required_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *json_out = NULL, *hdr_out = NULL;
	struct st_report *M, *O;
	double ms_lo = 0, ms_hi = 0, me_lo = 0, me_hi = 0, s_hi = 0;
	int o, i, n, status;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (o) {
		case 'J':
			json_out = optarg;
			break;
		case 'H':
			hdr_out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"echo-stress merge: %s\n"
				"Try 'echo-stress merge --help' for more "
				"information.\n",
				o == ':' ? "an option needs an argument"
					 : "unknown option");
			return 2;
		}
	}
	n = argc - optind;
	if (n < 1 || n > ST_MERGE_MAX) {
		fprintf(stderr,
			"echo-stress merge: %s\nTry 'echo-stress merge --help' "
			"for more information.\n",
			n < 1 ? "no reports to merge" : "too many reports");
		return 2;
	}
	M = calloc(1, sizeof(*M));
	O = calloc(1, sizeof(*O));
	if (!M || !O) {
		fprintf(stderr, "echo-stress merge: out of memory\n");
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct loader L = {argv[optind + i], {0}};
		char perr[200];
		size_t len;
		char *text = slurp(L.file, &len, L.why, sizeof(L.why));
		struct json *j = NULL;

		if (text) {
			j = json_parse(text, len, perr, sizeof(perr));
			if (!j)
				snprintf(L.why, sizeof(L.why), "not JSON: %s",
					 perr);
			free(text);
		}
		if (!j || load(&L, j, O) < 0) {
			fprintf(stderr, "echo-stress merge: %s: %s\n", L.file,
				L.why);
			json_free(j);
			free(M);
			free(O);
			return 1;
		}
		json_free(j);
		add(M, O, (unsigned)i);
		if (i == 0 || O->measure_start_unix < ms_lo)
			ms_lo = O->measure_start_unix;
		if (i == 0 || O->measure_start_unix > ms_hi)
			ms_hi = O->measure_start_unix;
		if (i == 0 || O->measure_end_unix < me_lo)
			me_lo = O->measure_end_unix;
		if (i == 0 || O->measure_end_unix > me_hi)
			me_hi = O->measure_end_unix;
		if (i == 0 || O->start_unix > s_hi)
			s_hi = O->start_unix;
	}
	M->merged = (unsigned)n;
	M->merged_files = (const char **)(argv + optind);
	M->start_skew = s_hi - M->start_unix;
	M->measure_start_skew = ms_hi - ms_lo;
	M->measure_end_skew = me_hi - me_lo;
	M->measure_overlap = me_lo - ms_hi;
	M->measure_start_unix = ms_lo;
	M->measure_end_unix = me_hi;
	M->total_s = M->end_unix - M->start_unix;
	M->status = M->status || M->errors || M->died;
	report_print(stdout, M);
	status = M->status;
	if (json_out && report_write_json(json_out, M) < 0)
		status = 1;
	if (hdr_out && report_write_hdr(hdr_out, M) < 0)
		status = 1;
	free(M);
	free(O);
	return status;
}
