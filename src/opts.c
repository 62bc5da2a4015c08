/*
 * opts.c - echod's command line. See opts.h.
 */
#include "opts.h"
#include "parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Long-only options get values outside the range of characters. */
enum {
	OPT_DELIM = 256,
	OPT_MAX_MSG,
	OPT_MAX_PER_IP,
	OPT_BACKLOG,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_VERSION,
	OPT_SYSLOG,
	OPT_METRICS_INTERVAL,
	OPT_METRICS_FILE,
	OPT_PROXY_PROTOCOL,
	OPT_PROXY_FROM,
	OPT_PROXY_TIMEOUT,
};

static const struct option long_opts[] = {
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"mode", required_argument, NULL, 'm'},
    {"delim", required_argument, NULL, OPT_DELIM},
    {"max-msg", required_argument, NULL, OPT_MAX_MSG},
    {"max-conns", required_argument, NULL, 'c'},
    {"max-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
    {"idle-timeout", required_argument, NULL, 't'},
    {"backlog", required_argument, NULL, OPT_BACKLOG},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
    {"inetd", no_argument, NULL, 'i'},
    {"syslog", no_argument, NULL, OPT_SYSLOG},
    {"metrics-interval", required_argument, NULL, OPT_METRICS_INTERVAL},
    {"metrics-file", required_argument, NULL, OPT_METRICS_FILE},
    {"proxy-protocol", required_argument, NULL, OPT_PROXY_PROTOCOL},
    {"proxy-from", required_argument, NULL, OPT_PROXY_FROM},
    {"proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Leading ':' makes getopt report a missing argument as ':'. */
static const char short_opts[] = ":p:b:m:c:t:iqvh";

/* The options that only make sense for a listening server: --inetd
 * serves one connection someone else accepted. */
static const char *listening_opt(int c)
{
	switch (c) {
	case 'p':
		return "--port";
	case 'b':
		return "--bind";
	case 'c':
		return "--max-conns";
	case OPT_MAX_PER_IP:
		return "--max-per-ip";
	case OPT_BACKLOG:
		return "--backlog";
	case OPT_SHUTDOWN_TIMEOUT:
		return "--shutdown-timeout";
	case OPT_METRICS_FILE:
		return "--metrics-file";
	default:
		return NULL;
	}
}

/* The help text, with the defaults and ranges filled in from opts.h. */
static char help_text[3584];

const char *opts_help(void)
{
	snprintf(
	    help_text, sizeof(help_text),
	    "Usage: echod [options]\n"
	    "A fork-per-connection TCP echo server (RFC 862).\n"
	    "\n"
	    "  -p, --port N              TCP port, 0 picks a free one "
	    "(default %u)\n"
	    "  -b, --bind ADDR           IPv4 or IPv6 address to listen on\n"
	    "                            (default: all interfaces, "
	    "dual-stack)\n"
	    "  -m, --mode MODE           raw, line or frame (default raw)\n"
	    "      --delim C             line delimiter: lf, nul, 0xNN or one "
	    "character\n"
	    "                            (default lf)\n"
	    "      --max-msg N           largest message in line and frame "
	    "mode,\n"
	    "                            %u-%u (default %u)\n"
	    "  -c, --max-conns N         most connections served at once, "
	    "1-%u\n"
	    "                            (default %u)\n"
	    "      --max-per-ip N        most concurrent connections per "
	    "client address,\n"
	    "                            0-%u, 0: no limit (default %u)\n"
	    "  -t, --idle-timeout S      close a connection idle for S "
	    "seconds,\n"
	    "                            0-%u, 0: never (default %u)\n"
	    "      --backlog N           listen backlog, 1-%u (default %u)\n"
	    "      --shutdown-timeout S  on SIGTERM, seconds children may "
	    "drain before\n"
	    "                            SIGKILL, 0-%u (default %u)\n"
	    "  -i, --inetd               serve the connection already open on "
	    "fd 0\n"
	    "                            (inetd, tcpserver, systemd "
	    "Accept=yes) and exit\n"
	    "      --syslog              log to syslog (daemon, ident echod) "
	    "instead of\n"
	    "                            stderr\n"
	    "      --metrics-file PATH   write the counters there in "
	    "Prometheus "
	    "text format\n"
	    "                            (node_exporter's textfile "
	    "collector)\n"
	    "      --metrics-interval S  rewrite it and send systemd STATUS= "
	    "every S\n"
	    "                            seconds, %u-%u (default %u)\n"
	    "      --proxy-protocol V    every connection starts with a PROXY "
	    "protocol\n"
	    "                            header: v1, v2 or any (default "
	    "off)\n"
	    "      --proxy-from CIDR,... the proxies allowed to send one "
	    "(required with\n"
	    "                            --proxy-protocol); others are "
	    "closed at once\n"
	    "      --proxy-timeout S     seconds a proxy may take to send the "
	    "whole\n"
	    "                            header, %u-%u (default %u)\n"
	    "  -q, --quiet               log errors and warnings only\n"
	    "  -v, --verbose             also log each message (escaped, cut "
	    "at %u bytes)\n"
	    "  -h, --help                show this help and exit\n"
	    "      --version             show the version and the sandbox, "
	    "and exit\n"
	    "\n"
	    "Logs go to stderr (with --inetd, to syslog when stderr is the "
	    "connection).\nSIGTERM, SIGINT, SIGQUIT: drain and exit; SIGUSR1, "
	    "SIGHUP: log the counters\n(and rewrite the metrics file).\n",
	    OPTS_PORT_DEFAULT, PROTO_MAX_MSG_MIN, PROTO_MAX_MSG_MAX,
	    PROTO_MAX_MSG_DEFAULT, OPTS_MAX_CONNS_MAX, OPTS_MAX_CONNS_DEFAULT,
	    OPTS_MAX_PER_IP_MAX, OPTS_MAX_PER_IP_DEFAULT, OPTS_IDLE_TIMEOUT_MAX,
	    OPTS_IDLE_TIMEOUT_DEFAULT, OPTS_BACKLOG_MAX, OPTS_BACKLOG_DEFAULT,
	    OPTS_SHUTDOWN_TIMEOUT_MAX, OPTS_SHUTDOWN_TIMEOUT_DEFAULT,
	    OPTS_METRICS_INTERVAL_MIN, OPTS_METRICS_INTERVAL_MAX,
	    OPTS_METRICS_INTERVAL_DEFAULT, OPTS_PROXY_TIMEOUT_MIN,
	    OPTS_PROXY_TIMEOUT_MAX, OPTS_PROXY_TIMEOUT_DEFAULT,
	    (unsigned)LOG_MSG_CUT);
	return help_text;
}

const char *opts_mode_name(enum proto_mode mode)
{
	switch (mode) {
	case PROTO_RAW:
		return "raw";
	case PROTO_LINE:
		return "line";
	case PROTO_FRAME:
		return "frame";
	}
	return "unknown";
}

void opts_defaults(struct echod_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->port = OPTS_PORT_DEFAULT;
	o->bind_family = AF_INET6;
	o->bind6 = in6addr_any;
	o->mode = PROTO_RAW;
	o->delim = '\n';
	o->max_msg = PROTO_MAX_MSG_DEFAULT;
	o->max_conns = OPTS_MAX_CONNS_DEFAULT;
	o->max_per_ip = OPTS_MAX_PER_IP_DEFAULT;
	o->idle_timeout = OPTS_IDLE_TIMEOUT_DEFAULT;
	o->backlog = OPTS_BACKLOG_DEFAULT;
	o->shutdown_timeout = OPTS_SHUTDOWN_TIMEOUT_DEFAULT;
	o->metrics_interval = OPTS_METRICS_INTERVAL_DEFAULT;
	o->proxy_timeout = OPTS_PROXY_TIMEOUT_DEFAULT;
	o->verbosity = OPTS_INFO;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
						      const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * Strict decimal: digits only (no sign, no space, no base prefix), no
 * trailing garbage, no overflow, within [min, max].
 */
static int parse_bind(struct echod_opts *o, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(s);

	if (inet_pton(AF_INET, s, &o->bind4) == 1) {
		o->bind_family = AF_INET;
		o->bind_set = 1;
		return 0;
	}
	/* "[::1]" as written in URLs is accepted too. */
	if (n >= 2 && n < sizeof(buf) && s[0] == '[' && s[n - 1] == ']') {
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = '\0';
		s = buf;
	}
	if (inet_pton(AF_INET6, s, &o->bind6) == 1) {
		o->bind_family = AF_INET6;
		o->bind_set = 1;
		return 0;
	}
	return -1;
}

/* An argument as error messages quote it: escaped and cut, since it may
 * hold a newline or a terminal escape sequence. buf: PARSE_ESC_SIZE bytes. */
static const char *esc(char *buf, const char *arg)
{
	return parse_escape(buf, PARSE_ESC_SIZE, arg, PARSE_ESC_CUT);
}

/* Parse a number option; on error the message names the option. */
static int num_opt(const char *what, const char *arg, unsigned long min,
		   unsigned long max, uint32_t *out, char *err, size_t errlen)
{
	char q[PARSE_ESC_SIZE];
	uint64_t v = 0;

	if (parse_u64(arg, min, max, &v) == 0) {
		*out = (uint32_t)v; /* every range here fits in 32 bits */
		return 0;
	}
	return fail(err, errlen, "invalid %s '%s' (expected %lu-%lu)", what,
		    esc(q, arg), min, max);
}

int opts_parse(struct echod_opts *o, int argc, char **argv, char *err,
	       size_t errlen)
{
	char q[PARSE_ESC_SIZE];
	const char *listening = NULL; /* the first listening option given */
	uint32_t v = 0;
	int c;

	opts_defaults(o);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* optind = 0 makes glibc reinitialise getopt completely, so that
	 * repeated calls (unit tests) start afresh. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) !=
	       -1) {
		if (listening == NULL)
			listening = listening_opt(c);
		switch (c) {
		case 'p':
			if (num_opt("port", optarg, 0, OPTS_PORT_MAX, &v, err,
				    errlen) < 0)
				return -1;
			o->port = (uint16_t)v;
			o->port_set = 1;
			break;
		case 'b':
			if (parse_bind(o, optarg) < 0)
				return fail(
				    err, errlen,
				    "invalid bind address '%s' "
				    "(expected an IPv4 or IPv6 address)",
				    esc(q, optarg));
			break;
		case 'm':
			if (parse_mode(optarg, &o->mode) < 0)
				return fail(err, errlen,
					    "invalid mode '%s' (expected raw, "
					    "line or frame)",
					    esc(q, optarg));
			break;
		case OPT_DELIM:
			switch (parse_delim(optarg, &o->delim)) {
			case 0:
				break;
			case PARSE_DELIM_SPLITS_REPLY:
				return fail(err, errlen,
					    "invalid delimiter "
					    "'%s': " PARSE_DELIM_SPLITS_WHY,
					    esc(q, optarg));
			default:
				return fail(err, errlen,
					    "invalid delimiter '%s' (expected "
					    "lf, nul, 0xNN or a single "
					    "character)",
					    esc(q, optarg));
			}
			break;
		case OPT_MAX_MSG:
			if (num_opt("max-msg", optarg, PROTO_MAX_MSG_MIN,
				    PROTO_MAX_MSG_MAX, &o->max_msg, err,
				    errlen) < 0)
				return -1;
			break;
		case 'c':
			if (num_opt("max-conns", optarg, 1, OPTS_MAX_CONNS_MAX,
				    &o->max_conns, err, errlen) < 0)
				return -1;
			break;
		case OPT_MAX_PER_IP:
			if (num_opt("max-per-ip", optarg, 0,
				    OPTS_MAX_PER_IP_MAX, &o->max_per_ip, err,
				    errlen) < 0)
				return -1;
			break;
		case 't':
			if (num_opt("idle-timeout", optarg, 0,
				    OPTS_IDLE_TIMEOUT_MAX, &o->idle_timeout,
				    err, errlen) < 0)
				return -1;
			break;
		case OPT_BACKLOG:
			if (num_opt("backlog", optarg, 1, OPTS_BACKLOG_MAX,
				    &o->backlog, err, errlen) < 0)
				return -1;
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (num_opt("shutdown-timeout", optarg, 0,
				    OPTS_SHUTDOWN_TIMEOUT_MAX,
				    &o->shutdown_timeout, err, errlen) < 0)
				return -1;
			break;
		case 'i':
			o->inetd = 1;
			break;
		case OPT_SYSLOG:
			o->syslog = 1;
			break;
		case OPT_METRICS_FILE:
			if (optarg[0] == '\0' ||
			    optarg[strlen(optarg) - 1] == '/')
				return fail(err, errlen,
					    "invalid metrics file '%s' "
					    "(expected a file name)",
					    esc(q, optarg));
			o->metrics_file = optarg;
			break;
		case OPT_METRICS_INTERVAL:
			if (num_opt("metrics-interval", optarg,
				    OPTS_METRICS_INTERVAL_MIN,
				    OPTS_METRICS_INTERVAL_MAX,
				    &o->metrics_interval, err, errlen) < 0)
				return -1;
			break;
		case OPT_PROXY_PROTOCOL:
			if (strcmp(optarg, "v1") == 0)
				o->proxy = PROXY_ACCEPT_V1;
			else if (strcmp(optarg, "v2") == 0)
				o->proxy = PROXY_ACCEPT_V2;
			else if (strcmp(optarg, "any") == 0)
				o->proxy = PROXY_ACCEPT_ANY;
			else
				return fail(err, errlen,
					    "invalid proxy protocol '%s' "
					    "(expected v1, v2 or any)",
					    esc(q, optarg));
			break;
		case OPT_PROXY_FROM: {
			const char *bad = NULL;

			if (parse_cidr_list(optarg, o->proxy_from,
					    OPTS_PROXY_FROM_MAX,
					    &o->nproxy_from, &bad) < 0) {
				if (bad != NULL)
					return fail(
					    err, errlen,
					    "invalid proxy address block "
					    "'%s' (expected an IPv4 or IPv6 "
					    "address or CIDR block, e.g. "
					    "10.0.0.0/8)",
					    parse_escape_bytes(
						q, sizeof(q), bad,
						strcspn(bad, ","),
						PARSE_ESC_CUT));
				return fail(err, errlen,
					    "invalid --proxy-from '%s' "
					    "(expected 1-%d comma-separated "
					    "address blocks)",
					    esc(q, optarg),
					    OPTS_PROXY_FROM_MAX);
			}
			break;
		}
		case OPT_PROXY_TIMEOUT:
			if (num_opt("proxy-timeout", optarg,
				    OPTS_PROXY_TIMEOUT_MIN,
				    OPTS_PROXY_TIMEOUT_MAX, &o->proxy_timeout,
				    err, errlen) < 0)
				return -1;
			break;
		case 'q':
			o->verbosity = OPTS_QUIET;
			break;
		case 'v':
			o->verbosity = OPTS_VERBOSE;
			break;
		case 'h':
			o->help = 1;
			return 0;
		case OPT_VERSION:
			o->version = 1;
			return 0;
		default:
			/* '?' or ':'; opterr = 0 keeps getopt's own message,
			 * which would show the argument raw, off stderr. */
			parse_getopt_error(err, errlen, c, optopt,
					   argv[optind - 1], short_opts,
					   long_opts);
			return -1;
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'",
			    esc(q, argv[optind]));
	if (o->inetd && listening != NULL)
		return fail(err, errlen,
			    "%s cannot be used with --inetd (it serves the "
			    "one connection on fd 0)",
			    listening);
	if (o->proxy != 0 && o->nproxy_from == 0)
		return fail(err, errlen,
			    "--proxy-protocol needs --proxy-from (the proxies "
			    "allowed to send a header)");
	if (o->proxy == 0 && o->nproxy_from > 0)
		return fail(err, errlen,
			    "--proxy-from needs --proxy-protocol v1, v2 or "
			    "any");
	return 0;
}
