/*
 * echo-stress - load and abuse generator for echo servers (SPEC section 5).
 *
 * The parent parses options, checks that the connections can be had
 * (descriptors, local ports), builds the payload pattern, forks the workers
 * (worker.c) and steers the phases through shared memory: connect, measure
 * (the --duration clock starts only once every connection is up), drain.
 * Workers leave their counters and histograms in the same shared block;
 * the parent merges them and reports (report.c).
 */
#define _GNU_SOURCE /* getaddrinfo under -std=c11 */
#include "stress.h"
#include "hdrlog.h"
#include "parse.h"
#include "proto.h"
#include "report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: echo-stress [options] [HOST [PORT]]   (default "
		"127.0.0.1 " ST_DEFAULT_PORT ")\n"
		"       echo-stress merge [--json FILE] [--hdr FILE] "
		"REPORT.json...\n"
		"                        add up the JSON reports of "
		"simultaneous runs\n"
		"  -c, --connections N   concurrent connections (default %d)\n"
		"  -j, --workers N       worker processes (default: CPUs)\n"
		"  -d, --duration S      measure for S seconds (default %g "
		"unless -n)\n"
		"  -n, --messages N      stop after N messages per connection\n"
		"  -s, --size B|MIN-MAX  payload bytes per message (default "
		"%d)\n"
		"  -m, --mode MODE       raw, line or frame (default raw)\n"
		"      --delim C         line delimiter: lf, nul, 0xNN or one "
		"character\n"
		"      --max-msg N       server's largest message (default "
		"%u)\n"
		"      --rate R          open loop: R messages/s in total, "
		"latency from\n"
		"                        the intended send time\n"
		"      --connect-rate R  open at most R connections/s\n"
		"      --churn K         reconnect after K round trips\n"
		"      --abuse KIND=N    add N abusive clients; KIND: "
		"slowloris, noread,\n"
		"                        idle, reset, oversize (repeatable)\n"
		"      --pipeline N      up to N messages in flight per "
		"connection, each\n"
		"                        verified in order (default 1)\n"
		"      --source LIST     bind connections to these local "
		"addresses in turn:\n"
		"                        ADDR[,ADDR...], each an address or "
		"an IPv4 range\n"
		"                        A-B (127.0.0.2-127.0.0.101 on "
		"loopback)\n"
		"      --proxy v1|v2     start each connection with a PROXY "
		"protocol header\n"
		"                        (text v1 or binary v2) from a made-up "
		"client\n"
		"                        address of 198.18.0.0/15, its own for "
		"each\n"
		"                        connection, never expected back nor "
		"counted\n"
		"      --dry-run         check options and limits, then exit\n"
		"      --connect-timeout S  per connect (default %g)\n"
		"      --timeout S       per echo (default %g)\n"
		"      --json FILE       write the full report as JSON\n"
		"      --hdr FILE        write the round-trip latency "
		"distribution\n"
		"                        (HdrHistogram text format, ms)\n"
		"      --hdr-log FILE    write round-trip latency as an "
		"HdrHistogram\n"
		"                        interval log, one histogram a second "
		"(us)\n"
		"  -h, --help            this help\n"
		"Bytes sent and echoed count messages (framing included), "
		"never a PROXY header.\n"
		"Exit status: 0 no errors, 1 errors or mismatches, 2 usage.\n",
		ST_DEFAULT_CONNS, ST_DEFAULT_DURATION, ST_DEFAULT_SIZE,
		PROTO_MAX_MSG_DEFAULT, ST_DEFAULT_CONN_TIMEOUT,
		ST_DEFAULT_ECHO_TIMEOUT);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad(const char *fmt, ...)
{
	va_list ap;

	fputs("echo-stress: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'echo-stress --help' for more information.\n", stderr);
	exit(2);
}

/* An argument as error messages quote it: escaped and cut, since it may
 * hold a newline or a terminal escape sequence. buf: PARSE_ESC_SIZE bytes. */
static const char *esc(char *buf, const char *arg)
{
	return parse_escape(buf, PARSE_ESC_SIZE, arg, PARSE_ESC_CUT);
}

static uint64_t num_opt(const char *opt, const char *s, uint64_t lo,
			uint64_t hi)
{
	char q[PARSE_ESC_SIZE];
	uint64_t v;

	if (parse_u64(s, lo, hi, &v) < 0)
		bad("%s: '%s' is not a whole number from %llu to %llu", opt,
		    esc(q, s), (unsigned long long)lo, (unsigned long long)hi);
	return v;
}

static double parse_pos(const char *opt, const char *s, double hi)
{
	char q[PARSE_ESC_SIZE];
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > hi)
		bad("%s: '%s' is not a number above 0 and at most %g", opt,
		    esc(q, s), hi);
	return v;
}

static void parse_size(struct st_config *cfg, const char *s)
{
	const char *dash = strchr(s, '-');
	char lo[32], q[PARSE_ESC_SIZE];

	if (!dash) {
		cfg->size_min = cfg->size_max =
		    (uint32_t)num_opt("--size", s, 0, ST_MAX_SIZE);
		return;
	}
	if ((size_t)(dash - s) >= sizeof(lo) || dash == s)
		bad("--size: '%s' is not B or MIN-MAX", esc(q, s));
	memcpy(lo, s, (size_t)(dash - s));
	lo[dash - s] = 0;
	cfg->size_min = (uint32_t)num_opt("--size", lo, 0, ST_MAX_SIZE);
	cfg->size_max = (uint32_t)num_opt("--size", dash + 1, 0, ST_MAX_SIZE);
	if (cfg->size_min > cfg->size_max)
		bad("--size: MIN %u is above MAX %u", cfg->size_min,
		    cfg->size_max);
}

static void parse_delim_opt(struct st_config *cfg, const char *s)
{
	char q[PARSE_ESC_SIZE];

	switch (parse_delim(s, &cfg->delim)) {
	case 0:
		return;
	case PARSE_DELIM_SPLITS_REPLY:
		bad("--delim: invalid delimiter '%s': " PARSE_DELIM_SPLITS_WHY,
		    esc(q, s));
	default:
		bad("--delim: '%s' is not lf, nul, 0xNN or one character",
		    esc(q, s));
	}
}

static void parse_abuse(struct st_config *cfg, const char *s)
{
	const char *eq = strchr(s, '=');
	char q[PARSE_ESC_SIZE];
	int k;

	if (!eq)
		bad("--abuse: '%s' is not KIND=N", esc(q, s));
	for (k = 1; k < K_NKINDS; k++)
		if ((size_t)(eq - s) == strlen(st_kind_names[k]) &&
		    !strncmp(s, st_kind_names[k], (size_t)(eq - s)))
			break;
	if (k == K_NKINDS)
		bad("--abuse: unknown kind '%s' (slowloris, noread, idle, "
		    "reset, oversize)",
		    parse_escape_bytes(q, sizeof(q), s, (size_t)(eq - s),
				       PARSE_ESC_CUT));
	cfg->abuse[k] += (unsigned)num_opt("--abuse", eq + 1, 1, 100000);
}

static void add_source(struct st_config *cfg, const struct sockaddr_storage *ss,
		       const char *item)
{
	char q[PARSE_ESC_SIZE];

	if (cfg->nsources >= ST_MAX_SOURCES)
		bad("--source: more than %u addresses (at '%s')",
		    ST_MAX_SOURCES, esc(q, item));
	if (cfg->nsources % 64 == 0) {
		void *p = realloc(cfg->sources,
				  (cfg->nsources + 64) * sizeof(*cfg->sources));

		if (!p) {
			fprintf(stderr, "echo-stress: out of memory\n");
			exit(1);
		}
		cfg->sources = p;
	}
	cfg->sources[cfg->nsources++] = *ss;
}

/* One numeric address, IPv4 or IPv6, port 0; -1 if it is none. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* --source ADDR[,ADDR...], each item an address or an IPv4 range A-B. */
static void parse_source(struct st_config *cfg, const char *arg)
{
	char q[PARSE_ESC_SIZE], item[128], lo[64];
	const char *p = arg;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		struct sockaddr_storage a, b;
		char *dash;

		if (n == 0 || n >= sizeof(item))
			bad("--source: '%s' is not ADDR[,ADDR...] or A-B",
			    esc(q, arg));
		memcpy(item, p, n);
		item[n] = 0;
		dash = strchr(item, '-');
		if (!dash) {
			if (parse_addr(item, &a) < 0)
				bad("--source: '%s' is not an IPv4 or IPv6 "
				    "address",
				    esc(q, item));
			add_source(cfg, &a, item);
		} else {
			uint32_t x, y;

			if ((size_t)(dash - item) >= sizeof(lo))
				bad("--source: '%s' is not an IPv4 range A-B",
				    esc(q, item));
			memcpy(lo, item, (size_t)(dash - item));
			lo[dash - item] = 0;
			if (parse_addr(lo, &a) < 0 ||
			    parse_addr(dash + 1, &b) < 0 ||
			    a.ss_family != AF_INET || b.ss_family != AF_INET)
				bad("--source: '%s' is not an IPv4 range A-B",
				    esc(q, item));
			x = ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr);
			y = ntohl(((struct sockaddr_in *)&b)->sin_addr.s_addr);
			if (x > y)
				bad("--source: range '%s' runs backwards",
				    esc(q, item));
			if (y - x >= ST_MAX_SOURCES)
				bad("--source: range '%s' has more than %u "
				    "addresses",
				    esc(q, item), ST_MAX_SOURCES);
			for (;; x++) {
				((struct sockaddr_in *)&a)->sin_addr.s_addr =
				    htonl(x);
				add_source(cfg, &a, item);
				if (x == y)
					break;
			}
		}
		if (!end)
			break;
		p = end + 1;
	}
}

enum {
	O_DELIM = 256,
	O_MAXMSG,
	O_RATE,
	O_CRATE,
	O_CHURN,
	O_ABUSE,
	O_JSON,
	O_HDR,
	O_CTIMEOUT,
	O_TIMEOUT,
	O_PIPELINE,
	O_SOURCE,
	O_HDRLOG,
	O_DRYRUN,
	O_PROXY
};

static void parse_args(struct st_config *cfg, int argc, char **argv)
{
	static const char shortopts[] = ":c:j:d:n:s:m:h";
	static const struct option lo[] = {
	    {"connections", required_argument, NULL, 'c'},
	    {"workers", required_argument, NULL, 'j'},
	    {"duration", required_argument, NULL, 'd'},
	    {"messages", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 's'},
	    {"mode", required_argument, NULL, 'm'},
	    {"delim", required_argument, NULL, O_DELIM},
	    {"max-msg", required_argument, NULL, O_MAXMSG},
	    {"rate", required_argument, NULL, O_RATE},
	    {"connect-rate", required_argument, NULL, O_CRATE},
	    {"churn", required_argument, NULL, O_CHURN},
	    {"abuse", required_argument, NULL, O_ABUSE},
	    {"json", required_argument, NULL, O_JSON},
	    {"hdr", required_argument, NULL, O_HDR},
	    {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"pipeline", required_argument, NULL, O_PIPELINE},
	    {"source", required_argument, NULL, O_SOURCE},
	    {"dry-run", no_argument, NULL, O_DRYRUN},
	    {"proxy", required_argument, NULL, O_PROXY},
	    {"hdr-log", required_argument, NULL, O_HDRLOG},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char q[PARSE_ESC_SIZE], why[256];
	int o, workers_set = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->conns = ST_DEFAULT_CONNS;
	cfg->workers = ncpu > 0 ? (unsigned)ncpu : 1;
	cfg->size_min = cfg->size_max = ST_DEFAULT_SIZE;
	cfg->delim = '\n';
	cfg->max_msg = PROTO_MAX_MSG_DEFAULT;
	cfg->connect_timeout = ST_DEFAULT_CONN_TIMEOUT;
	cfg->timeout = ST_DEFAULT_ECHO_TIMEOUT;
	cfg->pipeline = 1;
	snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
	snprintf(cfg->port, sizeof(cfg->port), ST_DEFAULT_PORT);
	opterr = 0;
	while ((o = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		switch (o) {
		case 'c':
			cfg->conns = (unsigned)num_opt("--connections", optarg,
						       1, ST_MAX_CONNS);
			break;
		case 'j':
			cfg->workers = (unsigned)num_opt("--workers", optarg, 1,
							 ST_MAX_WORKERS);
			workers_set = 1;
			break;
		case 'd':
			cfg->duration = parse_pos("--duration", optarg, 1e7);
			break;
		case 'n':
			cfg->messages =
			    num_opt("--messages", optarg, 1, UINT64_MAX);
			break;
		case 's':
			parse_size(cfg, optarg);
			break;
		case 'm': {
			enum proto_mode m;

			if (parse_mode(optarg, &m) < 0)
				bad("--mode: '%s' is not raw, line or frame",
				    esc(q, optarg));
			cfg->mode = m == PROTO_RAW    ? ST_RAW
				    : m == PROTO_LINE ? ST_LINE
						      : ST_FRAME;
			break;
		}
		case O_DELIM:
			parse_delim_opt(cfg, optarg);
			break;
		case O_MAXMSG:
			cfg->max_msg = (uint32_t)num_opt("--max-msg", optarg,
							 PROTO_MAX_MSG_MIN,
							 PROTO_MAX_MSG_MAX);
			break;
		case O_RATE:
			cfg->rate = parse_pos("--rate", optarg, 1e9);
			break;
		case O_CRATE:
			cfg->connect_rate =
			    parse_pos("--connect-rate", optarg, 1e9);
			break;
		case O_CHURN:
			cfg->churn = num_opt("--churn", optarg, 1, UINT64_MAX);
			break;
		case O_ABUSE:
			parse_abuse(cfg, optarg);
			break;
		case O_JSON:
			cfg->json = optarg;
			break;
		case O_HDR:
			cfg->hdr = optarg;
			break;
		case O_CTIMEOUT:
			cfg->connect_timeout =
			    parse_pos("--connect-timeout", optarg, 86400);
			break;
		case O_TIMEOUT:
			cfg->timeout = parse_pos("--timeout", optarg, 86400);
			break;
		case O_SOURCE:
			parse_source(cfg, optarg);
			break;
		case O_HDRLOG:
			cfg->hdr_log = optarg;
			break;
		case O_DRYRUN:
			cfg->dry_run = 1;
			break;
		case O_PROXY:
			if (!strcmp(optarg, "v1"))
				cfg->proxy = ST_PROXY_V1;
			else if (!strcmp(optarg, "v2"))
				cfg->proxy = ST_PROXY_V2;
			else
				bad("--proxy: '%s' is not v1 or v2",
				    esc(q, optarg));
			break;
		case O_PIPELINE:
			cfg->pipeline = (unsigned)num_opt("--pipeline", optarg,
							  1, ST_MAX_PIPELINE);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			/* '?' or ':'; opterr = 0 keeps getopt's own message,
			 * which would show the argument raw, off stderr. */
			parse_getopt_error(why, sizeof(why), o, optopt,
					   argv[optind - 1], shortopts, lo);
			bad("%s", why);
		}
	}
	if (argc - optind > 2)
		bad("too many arguments: '%s'", esc(q, argv[optind + 2]));
	if (argc - optind >= 1)
		snprintf(cfg->host, sizeof(cfg->host), "%s", argv[optind]);
	if (argc - optind == 2) {
		num_opt("PORT", argv[optind + 1], 1, 65535);
		snprintf(cfg->port, sizeof(cfg->port), "%s", argv[optind + 1]);
	}
	if (cfg->mode == ST_RAW && cfg->size_min == 0)
		bad("--size: raw mode cannot send empty messages");
	if (cfg->mode != ST_RAW && cfg->size_max > cfg->max_msg)
		bad("--size: %u is above --max-msg %u: the server would refuse "
		    "it",
		    cfg->size_max, cfg->max_msg);
	if (cfg->mode == ST_RAW && cfg->abuse[K_OVERSIZE])
		bad("--abuse oversize needs -m line or -m frame");
	if ((uint64_t)cfg->conns * cfg->pipeline > ST_MAX_INFLIGHT)
		bad("--pipeline %u with %u connections: more than %u messages "
		    "in flight",
		    cfg->pipeline, cfg->conns, ST_MAX_INFLIGHT);
	if (!cfg->duration && !cfg->messages)
		cfg->duration = ST_DEFAULT_DURATION;
	cfg->total_slots = cfg->conns;
	for (o = 1; o < K_NKINDS; o++)
		cfg->total_slots += cfg->abuse[o];
	if (!workers_set && cfg->workers > cfg->total_slots)
		cfg->workers = cfg->total_slots;
	if (cfg->workers > cfg->total_slots)
		cfg->workers = cfg->total_slots;
}

static void resolve(struct st_config *cfg)
{
	struct addrinfo hints, *ai;
	char qh[PARSE_ESC_SIZE], qp[PARSE_ESC_SIZE];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	r = getaddrinfo(cfg->host, cfg->port, &hints, &ai);
	if (r == EAI_NONAME || r == EAI_ADDRFAMILY || r == EAI_NODATA) {
		hints.ai_flags = 0; /* loopback-only hosts have no ADDRCONFIG */
		r = getaddrinfo(cfg->host, cfg->port, &hints, &ai);
	}
	if (r != 0)
		bad("cannot resolve '%s' port '%s': %s", esc(qh, cfg->host),
		    esc(qp, cfg->port), gai_strerror(r));
	memcpy(&cfg->addr, ai->ai_addr, ai->ai_addrlen);
	cfg->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	/* --proxy: the headers' destination is the server when it is IPv4
	 * (the headers are TCP4), else a made-up one */
	if (cfg->addr.ss_family == AF_INET) {
		const struct sockaddr_in *a4 =
		    (const struct sockaddr_in *)&cfg->addr;

		cfg->proxy_dst = ntohl(a4->sin_addr.s_addr);
		cfg->proxy_dport = ntohs(a4->sin_port);
	} else {
		cfg->proxy_dst = ST_PROXY_DST6;
		cfg->proxy_dport =
		    ntohs(((const struct sockaddr_in6 *)&cfg->addr)->sin6_port);
	}
}

static long read_sysctl(const char *path, long *second)
{
	FILE *f = fopen(path, "r");
	long a = -1, b = -1;

	if (f) {
		if (fscanf(f, "%ld %ld", &a, &b) < 1)
			a = -1;
		fclose(f);
	}
	if (second)
		*second = b;
	return a;
}

/* Ports of [lo, hi] listed in net.ipv4.ip_local_reserved_ports ("a-b,c"):
 * connect() never picks them. */
static long reserved_ports(long lo, long hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_reserved_ports", "r");
	char buf[4096], *p, *tok, *save = NULL;
	long n = 0;

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	for (p = buf; (tok = strtok_r(p, ",\n", &save)); p = NULL) {
		long a, b;

		if (sscanf(tok, "%ld-%ld", &a, &b) != 2) {
			if (sscanf(tok, "%ld", &a) != 1)
				continue;
			b = a;
		}
		if (a < lo)
			a = lo;
		if (b > hi)
			b = hi;
		if (b >= a)
			n += b - a + 1;
	}
	return n;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)
				  ->sin_addr.s_addr) >>
			24) == 127;
	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(
		   &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf,
			    size_t n)
{
	const void *a =
	    ss->ss_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (!inet_ntop(ss->ss_family, a, buf, (socklen_t)n))
		snprintf(buf, n, "?");
	return buf;
}

static unsigned ceil_div(uint64_t a, uint64_t b)
{
	return (unsigned)((a + b - 1) / b);
}

/*
 * Every limit that can stop the run, checked before anything starts: each
 * one that would is said, with what to change, and the run does not start
 * (exit 1). Descriptors per worker process (raised to the hard limit
 * first), processes, local ports per source address, the system's open
 * file table, the source addresses themselves; warnings for what may
 * stop it later (conntrack table, TIME_WAIT under --churn).
 */
static void check_limits(const struct st_config *cfg)
{
	unsigned total = cfg->total_slots, per = ceil_div(total, cfg->workers);
	unsigned nsrc = cfg->nsources ? cfg->nsources : 1, i, bind_errs = 0;
	unsigned long long fd_lim = 0;
	long lo, hi, range = 0, rsv = 0, fmax, falloc, ct_max, ct_n;
	int fail = 0;
	struct rlimit rl;
	char a[INET6_ADDRSTRLEN];

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		fd_lim = rl.rlim_cur == RLIM_INFINITY
			     ? ULLONG_MAX
			     : (unsigned long long)rl.rlim_cur;
		if (fd_lim < (unsigned long long)per + ST_FD_SLACK) {
			unsigned want =
			    fd_lim > ST_FD_SLACK
				? ceil_div(total, fd_lim - ST_FD_SLACK)
				: 0;

			fprintf(stderr,
				"echo-stress: limit: descriptors: %u "
				"connections over %u workers need %u "
				"descriptors per worker, the limit per "
				"process is %llu (ulimit -Hn; the hard limit "
				"needs CAP_SYS_RESOURCE to be raised): ",
				total, cfg->workers, per + ST_FD_SLACK, fd_lim);
			if (want && want <= ST_MAX_WORKERS)
				fprintf(stderr, "use -j %u or more\n", want);
			else
				fprintf(stderr,
					"more than %u workers would "
					"be needed\n",
					ST_MAX_WORKERS);
			fail = 1;
		}
	}
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    geteuid() != 0 && rl.rlim_cur < (rlim_t)cfg->workers + 1) {
		fprintf(stderr,
			"echo-stress: limit: processes: %u workers, the limit "
			"is %llu processes (ulimit -u)\n",
			cfg->workers, (unsigned long long)rl.rlim_cur);
		fail = 1;
	}
	lo = read_sysctl("/proc/sys/net/ipv4/ip_local_port_range", &hi);
	if (lo > 0 && hi >= lo) {
		rsv = reserved_ports(lo, hi);
		range = hi - lo + 1 - rsv;
	}
	if (range > 0 && ceil_div(total, nsrc) > (unsigned long)range) {
		fprintf(stderr,
			"echo-stress: limit: local ports: %u connections to "
			"one server address from %u source address%s need %u "
			"ports per source address, there are %ld "
			"(net.ipv4.ip_local_port_range %ld %ld",
			total, nsrc, nsrc > 1 ? "es" : "",
			ceil_div(total, nsrc), range, lo, hi);
		if (rsv)
			fprintf(stderr, ", %ld reserved", rsv);
		fprintf(stderr, "): use --source with %u addresses or more%s\n",
			ceil_div(total, (uint64_t)range),
			is_loopback(&cfg->addr) &&
				cfg->addr.ss_family == AF_INET
			    ? " (on loopback: --source 127.0.0.2-127.0.0.N)"
			    : "");
		fail = 1;
	}
	/* fs.file-nr: allocated, free, maximum */
	falloc = read_sysctl("/proc/sys/fs/file-nr", NULL);
	fmax = read_sysctl("/proc/sys/fs/file-max", NULL);
	if (falloc >= 0 && fmax > 0) {
		uint64_t need = (uint64_t)total + 8u * cfg->workers;

		if ((uint64_t)falloc + need > (uint64_t)fmax) {
			fprintf(stderr,
				"echo-stress: limit: open files of the "
				"system: %ld in use, %llu more needed, the "
				"limit is %ld (fs.file-max)\n",
				falloc, (unsigned long long)need, fmax);
			fail = 1;
		} else if (is_loopback(&cfg->addr) &&
			   (uint64_t)falloc + 2 * need > (uint64_t)fmax) {
			fprintf(stderr,
				"echo-stress: warning: with the server on "
				"this host, both ends need %llu open files, "
				"above fs.file-max %ld\n",
				(unsigned long long)(2 * need), fmax);
		}
	}
	for (i = 0; i < cfg->nsources; i++) {
		const struct sockaddr_storage *src = &cfg->sources[i];
		int fd = socket(src->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1, err = 0;

		if (fd < 0) {
			err = errno;
		} else {
			setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT,
				   &one, sizeof(one));
			if (bind(fd, (const struct sockaddr *)src,
				 src->ss_family == AF_INET6
				     ? sizeof(struct sockaddr_in6)
				     : sizeof(struct sockaddr_in)) < 0)
				err = errno;
			close(fd);
		}
		if (err && bind_errs++ < 3) {
			fprintf(stderr,
				"echo-stress: limit: --source %s: cannot "
				"bind: %s%s\n",
				addr_str(src, a, sizeof(a)), strerror(err),
				err == EADDRNOTAVAIL
				    ? " (not an address of this host)"
				    : "");
			fail = 1;
		}
	}
	if (bind_errs > 3)
		fprintf(stderr,
			"echo-stress: limit: ... %u source addresses in all "
			"cannot be bound\n",
			bind_errs);
	/* A full conntrack table drops new connections silently. */
	ct_max = read_sysctl("/proc/sys/net/netfilter/nf_conntrack_max", NULL);
	ct_n = read_sysctl("/proc/sys/net/netfilter/nf_conntrack_count", NULL);
	if (ct_max > 0 && ct_n > 0 && (uint64_t)ct_n + total > (uint64_t)ct_max)
		fprintf(stderr,
			"echo-stress: warning: connection tracking is on, "
			"%ld of %ld entries in use (net.netfilter."
			"nf_conntrack_max): new connections beyond it are "
			"dropped\n",
			ct_n, ct_max);
	if (cfg->churn && range > 0 &&
	    read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse", NULL) == 0)
		fprintf(stderr,
			"echo-stress: warning: net.ipv4.tcp_tw_reuse is 0: "
			"churn leaves a port in TIME_WAIT per connection and "
			"may run out of the %ld local ports within a minute\n",
			range * nsrc);
	if (fail)
		exit(1);
	if (cfg->dry_run || total >= 1000) {
		fprintf(
		    stderr,
		    "echo-stress: limits: %u descriptors per worker of %llu, "
		    "%u local ports per source address of %ld, %u source "
		    "address%s, %u processes\n",
		    per + ST_FD_SLACK, fd_lim, ceil_div(total, nsrc), range,
		    nsrc, nsrc > 1 ? "es" : "", cfg->workers + 1);
	}
}

/* Random bytes, none of them the delimiter in line mode. */
static void build_pattern(struct st_config *cfg)
{
	size_t need = cfg->size_max, i;
	uint8_t *p;

	if (cfg->abuse[K_OVERSIZE] && need < (size_t)cfg->max_msg + 1)
		need = (size_t)cfg->max_msg + 1;
	if (need < 65536)
		need = 65536; /* noread and slowloris chunks */
	cfg->patlen = need + ST_PAT_WINDOWS;
	p = malloc(cfg->patlen);
	if (!p) {
		fprintf(stderr, "echo-stress: out of memory\n");
		exit(1);
	}
	for (i = 0; i < cfg->patlen; i += 8) {
		uint64_t r = st_mix64(i);
		size_t k;

		for (k = 0; k < 8 && i + k < cfg->patlen; k++) {
			p[i + k] = (uint8_t)(r >> (8 * k));
			if (cfg->mode == ST_LINE && p[i + k] == cfg->delim)
				p[i + k] ^= 0x55;
		}
	}
	cfg->pat = p;
}

/* --hdr-log: the parent's side of struct st_ivlog. */
struct ivc {
	FILE *f;
	const char *path;
	uint64_t *taken; /* per worker: seconds before this one are merged */
	uint64_t base;	 /* the first second not yet written */
	struct hist *pend;
	size_t npend; /* seconds base .. base + npend - 1, merged so far */
	int err;
};

static void ivc_open(struct ivc *v, const struct st_config *cfg)
{
	memset(v, 0, sizeof(*v));
	if (!cfg->hdr_log)
		return;
	v->path = cfg->hdr_log;
	v->f = fopen(cfg->hdr_log, "w");
	v->taken = calloc(cfg->workers, sizeof(*v->taken));
	if (!v->f || !v->taken) {
		fprintf(stderr, "echo-stress: %s: %s\n", cfg->hdr_log,
			strerror(errno));
		exit(1);
	}
}

static void ivc_header(struct ivc *v, uint64_t mono_start)
{
	struct timespec rt;
	double start;

	if (!v->f)
		return;
	clock_gettime(CLOCK_REALTIME, &rt);
	start = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9 -
		(double)(st_now_ns() - mono_start) / 1e9;
	if (hdrlog_header(v->f, start,
			  "[echo-stress round-trip latency: values in "
			  "microseconds, Interval_Max in ms]") < 0)
		v->err = 1;
}

/*
 * Take what the workers have published; write every second that all
 * running workers are past. final: the workers are gone, write the rest,
 * the last second end_s - base long.
 */
static void ivc_poll(struct ivc *v, struct st_control *ctl, unsigned nw,
		     const char *dead, int final, double end_s)
{
	uint64_t lim = UINT64_MAX, low = 0;
	unsigned i, run = 0;

	if (!v->f)
		return;
	if (!final)
		lim = v->base; /* nothing, unless a running worker is past */
	for (i = 0; i < nw; i++) {
		struct st_ivlog *iv = &ctl->w[i].iv;
		uint64_t pub = __atomic_load_n(&iv->pub, __ATOMIC_ACQUIRE);

		while (v->taken[i] < pub) {
			uint64_t k = v->taken[i];

			if (k >= v->base) {
				size_t j = (size_t)(k - v->base);

				if (j >= v->npend) {
					struct hist *p = realloc(
					    v->pend, (j + 1) * sizeof(*p));

					if (!p) {
						v->err = 1;
						return;
					}
					v->pend = p;
					while (v->npend <= j)
						hist_init(&v->pend[v->npend++]);
				}
				hist_merge(&v->pend[j], &iv->h[k % 2]);
			}
			v->taken[i]++;
			__atomic_store_n(&iv->ack, v->taken[i],
					 __ATOMIC_RELEASE);
		}
		if (!dead[i] &&
		    !__atomic_load_n(&ctl->w[i].finished, __ATOMIC_ACQUIRE)) {
			if (run == 0 || v->taken[i] < low)
				low = v->taken[i];
			run++;
		}
	}
	if (run > 0)
		lim = low;
	while (v->npend > 0 && (final || v->base < lim)) {
		double len = 1.0;

		if (final && v->npend == 1) {
			len = end_s - (double)v->base;
			len = len > 1.0 ? 1.0 : len < 0.001 ? 0.001 : len;
		}
		if (hdrlog_interval(v->f, (double)v->base, len, &v->pend[0]) <
		    0)
			v->err = 1;
		memmove(v->pend, v->pend + 1,
			(v->npend - 1) * sizeof(*v->pend));
		v->npend--;
		v->base++;
	}
}

static int ivc_close(struct ivc *v)
{
	int err = v->err;

	if (v->f && fclose(v->f) != 0)
		err = 1;
	if (err)
		fprintf(stderr, "echo-stress: %s: cannot write the log\n",
			v->path);
	free(v->taken);
	free(v->pend);
	return err ? -1 : 0;
}

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int all_flag(const struct st_control *ctl, unsigned n, size_t off)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!__atomic_load_n(
			(const int *)((const char *)&ctl->w[i] + off),
			__ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

/* The line of progress each second: in the connect phase connections
 * (open of all, being connected, the rate), then messages. */
static void progress(const struct st_config *cfg, const struct st_control *ctl,
		     double t, uint64_t *lm, uint64_t *lb, uint64_t *lo,
		     double dt)
{
	uint64_t open = 0, msgs = 0, bytes = 0, errs = 0, opened = 0, pend = 0;
	static const char *const names[] = {"connect", "measure", "drain"};
	unsigned i;

	for (i = 0; i < cfg->workers; i++) {
		open += __atomic_load_n(&ctl->w[i].p_open, __ATOMIC_RELAXED);
		msgs += __atomic_load_n(&ctl->w[i].p_msgs, __ATOMIC_RELAXED);
		bytes += __atomic_load_n(&ctl->w[i].p_bytes, __ATOMIC_RELAXED);
		errs += __atomic_load_n(&ctl->w[i].p_errors, __ATOMIC_RELAXED);
		opened +=
		    __atomic_load_n(&ctl->w[i].p_opened, __ATOMIC_RELAXED);
		pend += __atomic_load_n(&ctl->w[i].p_pending, __ATOMIC_RELAXED);
	}
	if (ctl->phase == PH_CONNECT)
		fprintf(stderr,
			"[%6.1fs] connect %llu/%u open, %llu connecting, "
			"%.0f conn/s, %llu errors\n",
			t, (unsigned long long)open, cfg->total_slots,
			(unsigned long long)pend, (double)(opened - *lo) / dt,
			(unsigned long long)errs);
	else
		fprintf(stderr,
			"[%6.1fs] %-7s %llu open (%llu opened), %.0f msg/s, "
			"%.2f MB/s, %llu errors\n",
			t, names[ctl->phase], (unsigned long long)open,
			(unsigned long long)opened, (double)(msgs - *lm) / dt,
			(double)(bytes - *lb) / dt / 1e6,
			(unsigned long long)errs);
	*lm = msgs;
	*lb = bytes;
	*lo = opened;
}

/* --proxy: how many headers went out, and whether the made-up addresses
 * had to repeat (global indexes from ST_PROXY_NADDR on). */
static void proxy_summary(const struct st_config *cfg,
			  const struct st_control *ctl)
{
	uint64_t conns = 0, sent = 0, top = 0;
	unsigned i;

	if (!cfg->proxy)
		return;
	for (i = 0; i < cfg->workers; i++) {
		const struct st_shared *s = &ctl->w[i];
		uint64_t last;

		conns += s->proxy_conns;
		sent += s->proxy_sent;
		if (!s->proxy_conns)
			continue;
		last = (s->proxy_conns - 1) * cfg->workers + i;
		if (last + 1 > top)
			top = last + 1;
	}
	fprintf(stderr,
		"echo-stress: --proxy v%d: %llu headers sent of %llu "
		"connections, ",
		(int)cfg->proxy, (unsigned long long)sent,
		(unsigned long long)conns);
	if (top <= ST_PROXY_NADDR)
		fprintf(stderr, "each from its own address of 198.18.0.0/15\n");
	else
		fprintf(stderr,
			"the %u addresses of 198.18.0.0/15 repeated (address "
			"and port pairs repeat after %llu)\n",
			ST_PROXY_NADDR, ST_PROXY_PAIRS);
}

int main(int argc, char **argv)
{
	struct st_config cfg;
	struct st_control *ctl;
	struct st_times times;
	struct ivc ivc;
	pid_t *pids;
	char *dead;
	size_t shsz;
	unsigned i, k, died = 0, alive;
	uint64_t meas_first = 0, abuse_first, t0, tprog, lm = 0, lb = 0, lo = 0;
	int st;

	if (argc > 1 && !strcmp(argv[1], "merge"))
		return merge_main(argc - 1, argv + 1);
	parse_args(&cfg, argc, argv);
	resolve(&cfg);
	for (i = 0; i < cfg.nsources; i++) {
		char a[INET6_ADDRSTRLEN];

		if (cfg.sources[i].ss_family != cfg.addr.ss_family)
			bad("--source: %s is IPv%c, the server address is "
			    "IPv%c",
			    addr_str(&cfg.sources[i], a, sizeof(a)),
			    cfg.sources[i].ss_family == AF_INET ? '4' : '6',
			    cfg.addr.ss_family == AF_INET ? '4' : '6');
	}
	check_limits(&cfg);
	if (cfg.dry_run) {
		free(cfg.sources);
		return 0;
	}
	ivc_open(&ivc, &cfg);
	build_pattern(&cfg);

	shsz = sizeof(*ctl) + cfg.workers * sizeof(struct st_shared);
	ctl = mmap(NULL, shsz, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(cfg.workers, sizeof(*pids));
	dead = calloc(cfg.workers, 1);
	if (ctl == MAP_FAILED || !pids || !dead) {
		perror("echo-stress: mmap");
		return 1;
	}
	memset(ctl, 0, shsz);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	fflush(NULL);

	fprintf(stderr,
		"echo-stress: %s port %s, %u connections (+%u abusive), %u "
		"workers, %s mode%s\n",
		cfg.host, cfg.port, cfg.conns, cfg.total_slots - cfg.conns,
		cfg.workers,
		cfg.mode == ST_RAW    ? "raw"
		: cfg.mode == ST_LINE ? "line"
				      : "frame",
		cfg.proxy == ST_PROXY_V1   ? ", PROXY v1 headers"
		: cfg.proxy == ST_PROXY_V2 ? ", PROXY v2 headers"
					   : "");
	abuse_first = cfg.conns;
	t0 = st_now_ns();
	for (i = 0; i < cfg.workers; i++) {
		unsigned nm =
		    cfg.conns / cfg.workers + (i < cfg.conns % cfg.workers);
		unsigned ab[K_NKINDS] = {0};

		for (k = 1; k < K_NKINDS; k++)
			ab[k] = cfg.abuse[k] / cfg.workers +
				(i < cfg.abuse[k] % cfg.workers);
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("echo-stress: fork");
			return 1;
		}
		if (pids[i] == 0)
			worker_run(&cfg, ctl, i, meas_first, nm, abuse_first,
				   ab);
		meas_first += nm;
		for (k = 1; k < K_NKINDS; k++)
			abuse_first += ab[k];
	}

	memset(&times, 0, sizeof(times));
	tprog = t0;
	alive = cfg.workers;
	while (alive > 0) {
		uint64_t now;
		pid_t p;

		sleep_ms(10);
		now = st_now_ns();
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < cfg.workers; i++)
				if (pids[i] == p)
					break;
			if (i == cfg.workers)
				continue;
			alive--;
			if (!ctl->w[i].finished) {
				died++;
				dead[i] = 1;
				fprintf(stderr,
					"echo-stress: worker %u died (%s %d)\n",
					i,
					WIFSIGNALED(st) ? "signal" : "status",
					WIFSIGNALED(st) ? WTERMSIG(st)
							: WEXITSTATUS(st));
				/* its connections cannot finish the phase */
				ctl->w[i].connect_done = 1;
				ctl->w[i].measure_done = 1;
			}
		}
		if (ctl->phase == PH_CONNECT &&
		    (all_flag(ctl, cfg.workers,
			      offsetof(struct st_shared, connect_done)) ||
		     interrupted)) {
			times.connect_end = now;
			ctl->measure_start_ns = now;
			__atomic_store_n(&ctl->phase, PH_MEASURE,
					 __ATOMIC_RELEASE);
			fprintf(stderr,
				"echo-stress: connect phase done in "
				"%.3f s\n",
				(double)(now - t0) / 1e9);
			ivc_header(&ivc, now);
		}
		if (ctl->phase == PH_MEASURE &&
		    ((cfg.duration &&
		      now >= ctl->measure_start_ns +
				 (uint64_t)(cfg.duration * 1e9)) ||
		     all_flag(ctl, cfg.workers,
			      offsetof(struct st_shared, measure_done)) ||
		     interrupted)) {
			times.measure_end = now;
			__atomic_store_n(&ctl->phase, PH_DRAIN,
					 __ATOMIC_RELEASE);
			fprintf(stderr,
				"echo-stress: measure phase done in "
				"%.3f s, draining\n",
				(double)(now - ctl->measure_start_ns) / 1e9);
		}
		ivc_poll(&ivc, ctl, cfg.workers, dead, 0, 0);
		if (now - tprog >= 1000000000ull) {
			progress(&cfg, ctl, (double)(now - t0) / 1e9, &lm, &lb,
				 &lo, (double)(now - tprog) / 1e9);
			tprog = now;
		}
	}
	times.start = t0;
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		times.unix_offset = (double)rt.tv_sec +
				    (double)rt.tv_nsec / 1e9 -
				    (double)st_now_ns() / 1e9;
	}
	times.measure_start = ctl->measure_start_ns;
	times.end = st_now_ns();
	if (!times.connect_end)
		times.connect_end = times.measure_start = times.end;
	if (!times.measure_end)
		times.measure_end = times.end;
	ivc_poll(&ivc, ctl, cfg.workers, dead, 1,
		 (double)(times.end - times.measure_start) / 1e9);
	proxy_summary(&cfg, ctl);
	st = report(&cfg, ctl, &times, died);
	if (ivc_close(&ivc) < 0)
		st = 1;
	free(pids);
	free(dead);
	free(cfg.sources);
	free((void *)cfg.pat);
	munmap(ctl, shsz);
	return st;
}
