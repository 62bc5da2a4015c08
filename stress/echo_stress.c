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
#include "parse.h"
#include "proto.h"
#include "report.h"

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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const kind_names[K_NKINDS] = {
    "measured", "slowloris", "noread", "idle", "reset", "oversize"};

static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: echo-stress [options] [HOST [PORT]]   (default "
		"127.0.0.1 " ST_DEFAULT_PORT ")\n"
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
		"      --connect-timeout S  per connect (default %g)\n"
		"      --timeout S       per echo (default %g)\n"
		"      --json FILE       write the full report as JSON\n"
		"      --hdr FILE        write the round-trip latency "
		"distribution\n"
		"                        (HdrHistogram text format, ms)\n"
		"  -h, --help            this help\n"
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
		if ((size_t)(eq - s) == strlen(kind_names[k]) &&
		    !strncmp(s, kind_names[k], (size_t)(eq - s)))
			break;
	if (k == K_NKINDS)
		bad("--abuse: unknown kind '%s' (slowloris, noread, idle, "
		    "reset, oversize)",
		    parse_escape_bytes(q, sizeof(q), s, (size_t)(eq - s),
				       PARSE_ESC_CUT));
	cfg->abuse[k] += (unsigned)num_opt("--abuse", eq + 1, 1, 100000);
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
	O_TIMEOUT
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

/* Raise the descriptor limit and say now, not mid-run, what cannot work. */
static void check_limits(const struct st_config *cfg)
{
	unsigned per = (cfg->total_slots + cfg->workers - 1) / cfg->workers;
	long lo, hi, range;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < (rlim_t)per + 16) {
			fprintf(
			    stderr,
			    "echo-stress: cannot open %u connections: each "
			    "of %u workers needs %u descriptors, the limit "
			    "is %llu (ulimit -Hn); use more workers (-j) or "
			    "raise the limit\n",
			    cfg->total_slots, cfg->workers, per + 16,
			    (unsigned long long)rl.rlim_cur);
			exit(1);
		}
	}
	lo = read_sysctl("/proc/sys/net/ipv4/ip_local_port_range", &hi);
	range = lo > 0 && hi >= lo ? hi - lo + 1 : 0;
	if (range > 0 && cfg->total_slots > (unsigned long)range) {
		fprintf(stderr,
			"echo-stress: cannot open %u connections to one "
			"address: only %ld local ports "
			"(net.ipv4.ip_local_port_range %ld %ld)\n",
			cfg->total_slots, range, lo, hi);
		exit(1);
	}
	if (cfg->churn && range > 0 &&
	    read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse", NULL) == 0)
		fprintf(stderr,
			"echo-stress: warning: net.ipv4.tcp_tw_reuse is 0: "
			"churn leaves a port in TIME_WAIT per connection and "
			"may run out of the %ld local ports within a minute\n",
			range);
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

static void progress(const struct st_config *cfg, const struct st_control *ctl,
		     double t, uint64_t *lm, uint64_t *lb, double dt)
{
	uint64_t open = 0, msgs = 0, bytes = 0, errs = 0, opened = 0;
	static const char *const names[] = {"connect", "measure", "drain"};
	unsigned i;

	for (i = 0; i < cfg->workers; i++) {
		open += __atomic_load_n(&ctl->w[i].p_open, __ATOMIC_RELAXED);
		msgs += __atomic_load_n(&ctl->w[i].p_msgs, __ATOMIC_RELAXED);
		bytes += __atomic_load_n(&ctl->w[i].p_bytes, __ATOMIC_RELAXED);
		errs += __atomic_load_n(&ctl->w[i].p_errors, __ATOMIC_RELAXED);
		opened +=
		    __atomic_load_n(&ctl->w[i].p_opened, __ATOMIC_RELAXED);
	}
	fprintf(stderr,
		"[%6.1fs] %-7s %llu open (%llu opened), %.0f msg/s, "
		"%.2f MB/s, %llu errors\n",
		t, names[ctl->phase], (unsigned long long)open,
		(unsigned long long)opened, (double)(msgs - *lm) / dt,
		(double)(bytes - *lb) / dt / 1e6, (unsigned long long)errs);
	*lm = msgs;
	*lb = bytes;
}

int main(int argc, char **argv)
{
	struct st_config cfg;
	struct st_control *ctl;
	struct st_times times;
	pid_t *pids;
	size_t shsz;
	unsigned i, k, died = 0, alive;
	uint64_t meas_first = 0, abuse_first, t0, tprog, lm = 0, lb = 0;
	int st;

	parse_args(&cfg, argc, argv);
	resolve(&cfg);
	check_limits(&cfg);
	build_pattern(&cfg);

	shsz = sizeof(*ctl) + cfg.workers * sizeof(struct st_shared);
	ctl = mmap(NULL, shsz, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(cfg.workers, sizeof(*pids));
	if (ctl == MAP_FAILED || !pids) {
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
		"workers, %s mode\n",
		cfg.host, cfg.port, cfg.conns, cfg.total_slots - cfg.conns,
		cfg.workers,
		cfg.mode == ST_RAW    ? "raw"
		: cfg.mode == ST_LINE ? "line"
				      : "frame");
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
		if (now - tprog >= 1000000000ull) {
			progress(&cfg, ctl, (double)(now - t0) / 1e9, &lm, &lb,
				 (double)(now - tprog) / 1e9);
			tprog = now;
		}
	}
	times.start = t0;
	times.measure_start = ctl->measure_start_ns;
	times.end = st_now_ns();
	if (!times.connect_end)
		times.connect_end = times.measure_start = times.end;
	if (!times.measure_end)
		times.measure_end = times.end;
	st = report(&cfg, ctl, &times, died, kind_names);
	free(pids);
	free((void *)cfg.pat);
	munmap(ctl, shsz);
	return st;
}
