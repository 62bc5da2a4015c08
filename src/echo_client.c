/*
 * echo_client.c - echo-client: type a line, see the echo (SPEC section 4).
 *
 * One message at a time: read a line from stdin, send it in the chosen
 * framing, wait until its whole echo is back and printed, then read the
 * next line. Sending and receiving share one poll loop, so a message larger
 * than the socket buffers cannot deadlock against a server that applies
 * back-pressure, and a line-mode "ERR too long" that arrives while the
 * client is still sending is read at once.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "clock.h"
#include "parse.h"
#include "proto.h"

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

#define PROG "echo-client"

/*
 * Defaults and limits of the client.
 */
#define CLIENT_HOST_DEFAULT    "127.0.0.1"
#define CLIENT_PORT_DEFAULT    "9999"
#define CLIENT_TIMEOUT_DEFAULT 10.0
#define CLIENT_TIMEOUT_MAX     86400.0
/* The largest payload echod accepts; frame lengths above it are refused by
 * every echod, so the client neither sends nor accepts them by default. */
#define CLIENT_MAX_MSG_DEFAULT PROTO_MAX_MSG_MAX
/* Receive buffer and stdin read size: one loopback socket buffer's worth. */
#define CLIENT_IO_CHUNK 65536u
#define CLIENT_PROMPT	"Input: "

enum { EXIT_USAGE = 2 };

struct client_opts {
	enum proto_mode mode;
	int mode_set;
	uint8_t delim;
	int delim_set;
	uint64_t count; /* 0: no limit */
	uint32_t max_msg;
	int timeout_ms; /* -1: wait forever */
	const char *host;
	const char *port;
};

/* What the echo of the message being exchanged still owes. */
struct answer {
	enum proto_mode mode;
	uint8_t delim;
	uint32_t max_msg;
	uint64_t want; /* raw: bytes; line: delimiters; frame: frames */
	uint8_t hdr[PROTO_FRAME_HDR];
	size_t hdr_len;	    /* frame: header bytes received */
	uint64_t body_left; /* frame: payload bytes still to come */
};

/* stdin, read with read(2) into a growing buffer: poll(2) on fd 0 then
 * tells the truth, which it would not with stdio's hidden buffer. */
struct linereader {
	char *buf;
	size_t cap, start, end;
	size_t scanned; /* bytes after start known to hold no newline */
	int eof;
	int overlong; /* discarding a line longer than the limit */
	size_t overlong_len;
};

struct client {
	struct client_opts o;
	int fd;
	char peer[NI_MAXHOST + NI_MAXSERV + 4]; /* "[addr]:port" */
	uint8_t rx[CLIENT_IO_CHUNK];
	size_t rx_off, rx_len; /* received bytes not yet given to an answer */
	int stdout_bol;	       /* the last byte written to stdout was '\n' */
	uint64_t sent, answered;
	int refused; /* lines not sent because of --max-msg */
};

static void errx_line(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void errx_line(const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s\n", line);
}

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		PROG ": %s\nTry '" PROG " --help' for more information.\n",
		line);
	exit(EXIT_USAGE);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [options] [HOST [PORT]]\n"
		"Send each line of standard input to an echo server and print "
		"its echo.\n"
		"\n"
		"  -m, --mode MODE   framing: raw (default), line or frame\n"
		"      --delim C     line delimiter: lf (default), nul, 0xNN "
		"or one character;\n"
		"                    implies -m line\n"
		"  -n, --count N     stop after N messages have been answered\n"
		"      --max-msg N   do not send a line longer than N bytes, "
		"nor accept\n"
		"                    an echoed frame longer than that "
		"(1-16777216, default\n"
		"                    16777216)\n"
		"  -t, --timeout S   give up when connecting or waiting for an "
		"echo makes no\n"
		"                    progress for S seconds (default 10; 0: "
		"wait forever)\n"
		"  -h, --help        show this help and exit\n"
		"      --version     show the version and exit\n"
		"\n"
		"HOST defaults to 127.0.0.1 and PORT to 9999; host names and "
		"IPv6 addresses\n"
		"work, and each address of a name is tried in turn.\n"
		"\n"
		"raw   sends the line with its newline and waits for as many "
		"bytes back;\n"
		"line  sends the line ended by the delimiter instead of the "
		"newline and waits\n"
		"      for one delimited reply (a server's \"ERR too long\" "
		"counts as one);\n"
		"frame sends a 4-byte big-endian length and the line without "
		"its newline\n"
		"      and waits for one frame.\n"
		"Each echo is printed on standard output on a line of its own "
		"(the delimiter\n"
		"or frame header replaced by a newline). The prompt "
		"\"" CLIENT_PROMPT "\" is shown\n"
		"only when standard input is a terminal. At end of input the "
		"client shuts\n"
		"down its sending side and reads until the server closes.\n"
		"\n"
		"Exit status: 0 every message was answered; 1 an error, a line "
		"not sent, or\n"
		"the server closed with a message unanswered; 2 bad usage.\n");
}

/* Decimal digits only: strtoull alone would accept "-1", " 5" and "0x10". */
static int parse_timeout(const char *s, int *ms)
{
	char *end;
	double v;

	if (*s == '\0' || strspn(s, "0123456789.") != strlen(s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v < 0 || v > CLIENT_TIMEOUT_MAX)
		return -1;
	if (v == 0) {
		*ms = -1;
		return 0;
	}
	/* Rounded up: a timeout below a millisecond is not no timeout. */
	*ms = (int)(v * 1000.0);
	if (*ms < v * 1000.0)
		(*ms)++;
	return 0;
}

/* An argument as error messages quote it: escaped and cut, since it may
 * hold a newline or a terminal escape sequence. buf: PARSE_ESC_SIZE bytes. */
static const char *esc(char *buf, const char *arg)
{
	return parse_escape(buf, PARSE_ESC_SIZE, arg, PARSE_ESC_CUT);
}

static void parse_args(int argc, char **argv, struct client_opts *o)
{
	enum { OPT_DELIM = 256, OPT_MAX_MSG, OPT_VERSION };
	static const char shortopts[] = ":m:n:t:h";
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"delim", required_argument, NULL, OPT_DELIM},
	    {"count", required_argument, NULL, 'n'},
	    {"max-msg", required_argument, NULL, OPT_MAX_MSG},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {NULL, 0, NULL, 0},
	};
	char q[PARSE_ESC_SIZE], why[256];
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->mode = PROTO_RAW;
	o->delim = '\n';
	o->max_msg = CLIENT_MAX_MSG_DEFAULT;
	o->timeout_ms = (int)(CLIENT_TIMEOUT_DEFAULT * 1000);
	o->host = CLIENT_HOST_DEFAULT;
	o->port = CLIENT_PORT_DEFAULT;

	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_mode(optarg, &o->mode) < 0)
				usage_error("invalid mode '%s' (raw, line or "
					    "frame)",
					    esc(q, optarg));
			o->mode_set = 1;
			break;
		case OPT_DELIM:
			switch (parse_delim(optarg, &o->delim)) {
			case 0:
				break;
			case PARSE_DELIM_SPLITS_REPLY:
				usage_error("invalid delimiter "
					    "'%s': " PARSE_DELIM_SPLITS_WHY,
					    esc(q, optarg));
			default:
				usage_error("invalid delimiter '%s' (lf, nul, "
					    "0xNN or one character)",
					    esc(q, optarg));
			}
			o->delim_set = 1;
			break;
		case 'n':
			if (parse_u64(optarg, 1, UINT64_MAX, &v) < 0)
				usage_error("invalid count '%s' (a number of "
					    "messages, at least 1)",
					    esc(q, optarg));
			o->count = v;
			break;
		case OPT_MAX_MSG:
			if (parse_u64(optarg, PROTO_MAX_MSG_MIN,
				      PROTO_MAX_MSG_MAX, &v) < 0)
				usage_error("invalid --max-msg '%s' (1 to %u)",
					    esc(q, optarg), PROTO_MAX_MSG_MAX);
			o->max_msg = (uint32_t)v;
			break;
		case 't':
			if (parse_timeout(optarg, &o->timeout_ms) < 0)
				usage_error("invalid timeout '%s' (seconds, 0 "
					    "to 86400)",
					    esc(q, optarg));
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf(PROG " (echod) " ECHOD_VERSION "\n");
			exit(0);
		default:
			/* '?' or ':'; opterr = 0 keeps getopt's own message,
			 * which would show the argument raw, off stderr. */
			parse_getopt_error(why, sizeof(why), c, optopt,
					   argv[optind - 1], shortopts,
					   longopts);
			usage_error("%s", why);
		}
	}
	if (o->delim_set) {
		if (o->mode_set && o->mode != PROTO_LINE)
			usage_error("--delim applies only to -m line");
		o->mode = PROTO_LINE;
	}
	if (optind < argc)
		o->host = argv[optind++];
	if (optind < argc)
		o->port = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", esc(q, argv[optind]));
	if (o->host[0] == '\0')
		usage_error("empty host name");
	/* A numeric port is checked here so that "80x" or "70000" is a usage
	 * error; anything else is a service name for getaddrinfo. */
	if (o->port[0] >= '0' && o->port[0] <= '9') {
		if (parse_u64(o->port, 1, 65535, &v) < 0)
			usage_error("invalid port '%s' (1 to 65535)",
				    esc(q, o->port));
	} else if (o->port[0] == '\0') {
		usage_error("empty port");
	}
}

/* Milliseconds left until deadline for poll(); -1 when there is none. */
static int ms_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - clock_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static int64_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
}

/*
 * The one place that finishes a write: short writes and EINTR are retried,
 * and a non-blocking descriptor (stdout may be one, shared with a parent
 * that set O_NONBLOCK) is waited for. Returns 0, or -1 with errno set.
 */
static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = {.fd = fd,
						     .events = POLLOUT};

				if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
					return -1;
				continue;
			}
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void out_write(struct client *c, const void *buf, size_t len)
{
	if (len == 0)
		return;
	if (write_all(STDOUT_FILENO, buf, len) < 0) {
		errx_line("write to stdout: %s", strerror(errno));
		exit(1);
	}
	c->stdout_bol = ((const char *)buf)[len - 1] == '\n';
}

/* Keeps stdout one echo per line even when an echo was cut short. */
static void out_end_line(struct client *c)
{
	if (!c->stdout_bol)
		out_write(c, "\n", 1);
}

static void format_peer(const struct sockaddr *sa, socklen_t len, char *buf,
			size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, size, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%s", host, serv);
	else
		snprintf(buf, size, "%s:%s", host, serv);
}

/* Non-blocking connect so that -t bounds it; returns 0 or an errno. */
static int connect_one(int fd, const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int64_t deadline = deadline_in(timeout_ms);
	socklen_t len = sizeof(int);
	int err = 0, r;

	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	/* EINTR: the connection goes on in the background, as EINPROGRESS. */
	if (errno != EINPROGRESS && errno != EINTR)
		return errno;
	for (;;) {
		r = poll(&pfd, 1, ms_left(deadline));
		if (r > 0)
			break;
		if (r == 0)
			return ETIMEDOUT;
		if (errno != EINTR)
			return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

/* Tries every address of host in turn; on failure prints one line (the last
 * address's error) and exits 1. */
static void client_connect(struct client *c)
{
	struct addrinfo hints, *res, *ai;
	char host[256];
	const char *h = c->o.host;
	size_t hl = strlen(h);
	int r, err = 0;

	/* Accept the URL spelling of an IPv6 literal, "[::1]". */
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']' &&
	    hl - 2 < sizeof(host)) {
		memcpy(host, h + 1, hl - 2);
		host[hl - 2] = '\0';
		h = host;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* No AI_ADDRCONFIG: it hides ::1 on hosts whose only IPv6 address is
	 * the loopback, which is exactly where a test server listens. */
	r = getaddrinfo(h, c->o.port, &hints, &res);
	if (r != 0) {
		const char *why =
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r);
		char qh[PARSE_ESC_SIZE], qp[PARSE_ESC_SIZE];

		/* HOST and PORT are arguments too: quoted escaped. */
		errx_line("resolve %s port %s: %s", esc(qh, c->o.host),
			  esc(qp, c->o.port), why);
		exit(1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		format_peer(ai->ai_addr, ai->ai_addrlen, c->peer,
			    sizeof(c->peer));
		c->fd = socket(ai->ai_family,
			       ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (c->fd < 0) {
			err = errno;
			continue;
		}
		err = connect_one(c->fd, ai, c->o.timeout_ms);
		if (err == 0)
			break;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		errx_line("connect to %s: %s", c->peer, strerror(err));
		exit(1);
	}
}

static void answer_start(struct answer *a, const struct client_opts *o,
			 uint64_t want)
{
	memset(a, 0, sizeof(*a));
	a->mode = o->mode;
	a->delim = o->delim;
	a->max_msg = o->max_msg;
	a->want = want;
}

/*
 * Gives rx bytes to the echo being awaited and prints them; returns how
 * many were part of it. Bytes after the end of the echo stay in rx for the
 * next message, as they would in any stream protocol.
 */
static size_t answer_feed(struct client *c, struct answer *a, const uint8_t *p,
			  size_t len)
{
	size_t used = 0, n;
	const uint8_t *d;

	while (used < len && a->want > 0) {
		switch (a->mode) {
		case PROTO_RAW:
			n = len - used;
			if (n > a->want)
				n = (size_t)a->want;
			out_write(c, p + used, n);
			used += n;
			a->want -= n;
			break;
		case PROTO_LINE:
			/* One delimited reply per delimiter sent, so an
			 * "ERR too long" + delimiter answers its message like
			 * an echo does; the last delimiter prints as a
			 * newline. */
			d = memchr(p + used, a->delim, len - used);
			if (d == NULL) {
				out_write(c, p + used, len - used);
				used = len;
				break;
			}
			n = (size_t)(d - (p + used));
			a->want--;
			out_write(c, p + used, a->want == 0 ? n : n + 1);
			used += n + 1;
			break;
		case PROTO_FRAME:
			if (a->hdr_len < PROTO_FRAME_HDR) {
				a->hdr[a->hdr_len++] = p[used++];
				if (a->hdr_len < PROTO_FRAME_HDR)
					break;
				a->body_left = proto_frame_len(a->hdr);
				if (a->body_left > a->max_msg) {
					out_end_line(c);
					errx_line(
					    "%s sent a frame of %llu "
					    "bytes, more than --max-msg "
					    "%u",
					    c->peer,
					    (unsigned long long)a->body_left,
					    a->max_msg);
					exit(1);
				}
			} else {
				n = len - used;
				if (n > a->body_left)
					n = (size_t)a->body_left;
				out_write(c, p + used, n);
				used += n;
				a->body_left -= n;
			}
			if (a->hdr_len == PROTO_FRAME_HDR &&
			    a->body_left == 0) {
				a->want--;
				a->hdr_len = 0;
			}
			break;
		}
	}
	/* raw: the echo is the line, newline included, except for a last
	 * line without one; line and frame: the delimiter or the header is
	 * not printed, and an empty message still prints its line. */
	if (a->want == 0 && a->mode == PROTO_RAW)
		out_end_line(c);
	else if (a->want == 0)
		out_write(c, "\n", 1);
	return used;
}

/* Feeds what rx holds to the answer; returns 1 when the answer is done. */
static int answer_drain_rx(struct client *c, struct answer *a)
{
	size_t used;

	if (a->want == 0)
		return 1;
	used = answer_feed(c, a, c->rx + c->rx_off, c->rx_len);
	c->rx_off += used;
	c->rx_len -= used;
	if (c->rx_len == 0)
		c->rx_off = 0;
	return a->want == 0;
}

static void fatal_io(struct client *c, const char *what, int err)
    __attribute__((noreturn));

static void fatal_io(struct client *c, const char *what, int err)
{
	out_end_line(c);
	errx_line("%s %s: %s", what, c->peer, strerror(err));
	exit(1);
}

static void server_closed(struct client *c) __attribute__((noreturn));

static void server_closed(struct client *c)
{
	out_end_line(c);
	errx_line("server closed the connection");
	exit(c->answered == c->sent && !c->refused ? 0 : 1);
}

/* Receives into the empty rx buffer: 1 data, 0 nothing yet, exits on EOF or
 * an error. */
static int rx_fill(struct client *c)
{
	ssize_t n;

	for (;;) {
		n = recv(c->fd, c->rx, sizeof(c->rx), 0);
		if (n > 0) {
			c->rx_off = 0;
			c->rx_len = (size_t)n;
			return 1;
		}
		if (n == 0)
			server_closed(c);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		fatal_io(c, "receive from", errno);
	}
}

/*
 * Sends iov[0..iovcnt) while reading the echo described by *a; returns when
 * both are done. Exits with a message on timeout (no progress for -t
 * seconds), on a reset, and when the server closes first.
 */
static void exchange(struct client *c, struct iovec *iov, int iovcnt,
		     struct answer *a)
{
	int64_t deadline = deadline_in(c->o.timeout_ms);
	int send_closed = 0, i;

	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = 0};
		int done = answer_drain_rx(c, a);
		int more = 0;
		int r;

		while (iovcnt > 0 && iov[0].iov_len == 0) {
			iov++;
			iovcnt--;
		}
		more = iovcnt > 0;
		if (done && !more)
			return;
		if (more && send_closed) {
			/* The server stopped reading for good: what it
			 * still had to say has been read by now, or will be
			 * at EOF. */
			if (done)
				server_closed(c);
			more = 0;
		}
		if (more)
			pfd.events |= POLLOUT;
		if (!done)
			pfd.events |= POLLIN;
		r = poll(&pfd, 1, ms_left(deadline));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			errx_line("poll: %s", strerror(errno));
			exit(1);
		}
		if (r == 0) {
			out_end_line(c);
			errx_line("%s: no echo within %g s", c->peer,
				  c->o.timeout_ms / 1000.0);
			exit(1);
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !done) {
			if (rx_fill(c))
				deadline = deadline_in(c->o.timeout_ms);
		}
		if ((pfd.revents & (POLLOUT | POLLHUP | POLLERR)) && more) {
			struct msghdr mh = {.msg_iov = iov,
					    .msg_iovlen = (size_t)iovcnt};
			ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EPIPE)
					send_closed = 1;
				else if (errno != EINTR && errno != EAGAIN &&
					 errno != EWOULDBLOCK)
					fatal_io(c, "send to", errno);
				continue;
			}
			deadline = deadline_in(c->o.timeout_ms);
			for (i = 0; i < iovcnt && n > 0; i++) {
				size_t k = (size_t)n < iov[i].iov_len
					       ? (size_t)n
					       : iov[i].iov_len;

				iov[i].iov_base = (char *)iov[i].iov_base + k;
				iov[i].iov_len -= k;
				n -= (ssize_t)k;
			}
		}
	}
}

/* Sends one line (newline excluded from payload) and prints its echo. */
static void send_line(struct client *c, char *line, size_t len, int has_nl)
{
	struct iovec iov[3];
	struct answer a;
	uint8_t hdr[PROTO_FRAME_HDR];
	uint8_t delim = c->o.delim;
	uint64_t want;
	int n = 0;

	switch (c->o.mode) {
	case PROTO_RAW:
		iov[n++] = (struct iovec){line, len + (has_nl ? 1 : 0)};
		want = len + (has_nl ? 1 : 0);
		if (want == 0)
			return;
		break;
	case PROTO_LINE:
		iov[n++] = (struct iovec){line, len};
		iov[n++] = (struct iovec){&delim, 1};
		want = 1;
		/* A delimiter inside the line (possible with --delim other
		 * than lf) splits it into messages; each gets one reply. */
		for (size_t i = 0; i < len; i++)
			want += (uint8_t)line[i] == delim;
		break;
	case PROTO_FRAME:
	default:
		proto_frame_hdr(hdr, (uint32_t)len);
		iov[n++] = (struct iovec){hdr, sizeof(hdr)};
		iov[n++] = (struct iovec){line, len};
		want = 1;
		break;
	}
	answer_start(&a, &c->o, want);
	c->sent++;
	exchange(c, iov, n, &a);
	c->answered++;
}

/*
 * Returns 1 with the next line in line and len (newline excluded, has_nl set)
 * or a refused over-long line (line NULL, len its length); 0 when more
 * input is needed (or at end of input, when lr->eof is set).
 */
static int lr_next(struct linereader *lr, size_t limit, char **line,
		   size_t *len, int *has_nl)
{
	char *nl;

	if (lr->buf == NULL)
		return 0; /* nothing read yet */
	nl = memchr(lr->buf + lr->start + lr->scanned, '\n',
		    lr->end - lr->start - lr->scanned);
	if (nl == NULL) {
		lr->scanned = lr->end - lr->start;
		/* Over the limit without a newline yet: drop what is held
		 * so that a huge line costs no memory. */
		if (lr->scanned > limit) {
			lr->overlong = 1;
			lr->overlong_len += lr->scanned;
			lr->start = lr->end = lr->scanned = 0;
		}
		if (!lr->eof || (lr->scanned == 0 && !lr->overlong))
			return 0;
		*len = lr->scanned;
		*has_nl = 0;
	} else {
		*len = (size_t)(nl - (lr->buf + lr->start));
		*has_nl = 1;
	}
	*line = lr->buf + lr->start;
	lr->start += *len + (size_t)*has_nl;
	lr->scanned = 0;
	if (lr->overlong) {
		*len += lr->overlong_len;
		*line = NULL;
		lr->overlong = 0;
		lr->overlong_len = 0;
	} else if (*len > limit) {
		*line = NULL;
	}
	return 1;
}

/* Reads stdin into the buffer; 1 data, 0 end of input. Exits on errors. */
static int lr_fill(struct linereader *lr)
{
	ssize_t n;

	if (lr->start > 0 && lr->start == lr->end)
		lr->start = lr->end = 0;
	if (lr->cap - lr->end < CLIENT_IO_CHUNK) {
		if (lr->start > 0) {
			memmove(lr->buf, lr->buf + lr->start,
				lr->end - lr->start);
			lr->end -= lr->start;
			lr->start = 0;
		}
		if (lr->cap - lr->end < CLIENT_IO_CHUNK) {
			size_t cap =
			    lr->cap ? lr->cap * 2 : 2 * CLIENT_IO_CHUNK;
			char *b = realloc(lr->buf, cap);

			if (b == NULL) {
				errx_line("read stdin: %s", strerror(ENOMEM));
				exit(1);
			}
			lr->buf = b;
			lr->cap = cap;
		}
	}
	for (;;) {
		n = read(STDIN_FILENO, lr->buf + lr->end, lr->cap - lr->end);
		if (n > 0) {
			lr->end += (size_t)n;
			return 1;
		}
		if (n == 0) {
			lr->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		errx_line("read stdin: %s", strerror(errno));
		exit(1);
	}
}

/*
 * Waits for stdin while watching the socket, so that a server that closes
 * an idle connection (its idle timeout, its shutdown) is reported at once
 * rather than at the next line.
 */
static void wait_input(struct client *c, struct linereader *lr)
{
	struct pollfd pfd[2] = {
	    {.fd = STDIN_FILENO, .events = POLLIN},
	    {.fd = c->fd, .events = POLLIN},
	};

	/* Bytes already waiting in rx belong to the next echo; the socket
	 * is not read further until then. */
	if (c->rx_len > 0)
		pfd[1].fd = -1;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			errx_line("poll: %s", strerror(errno));
			exit(1);
		}
		break;
	}
	if (pfd[1].revents != 0 && c->rx_len == 0)
		rx_fill(c);
	if (pfd[0].revents != 0)
		lr_fill(lr);
}

/* End of input or -n reached: half-close, print anything the server still
 * sends, and wait (bounded by -t) for its close. */
static int finish(struct client *c)
{
	int64_t deadline;

	if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
		fatal_io(c, "shutdown", errno);
	deadline = deadline_in(c->o.timeout_ms);
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		ssize_t n;
		int r;

		if (c->rx_len > 0) {
			out_write(c, c->rx + c->rx_off, c->rx_len);
			c->rx_len = c->rx_off = 0;
		}
		r = poll(&pfd, 1, ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* every echo is in; a slow close is no error */
		n = recv(c->fd, c->rx, sizeof(c->rx), 0);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fatal_io(c, "receive from", errno);
		}
		c->rx_len = (size_t)n;
		deadline = deadline_in(c->o.timeout_ms);
	}
	out_end_line(c);
	close(c->fd);
	return c->refused ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct client c;
	struct linereader lr = {0};
	int interactive, prompted = 0;

	parse_args(argc, argv, &c.o);
	/* A server that closes while a message is being sent must give
	 * EPIPE, not kill the client before it can say so. */
	signal(SIGPIPE, SIG_IGN);
	c.fd = -1;
	c.stdout_bol = 1;
	client_connect(&c);
	interactive = isatty(STDIN_FILENO);

	while (c.o.count == 0 || c.answered < c.o.count) {
		char *line;
		size_t len;
		int has_nl;

		if (interactive && !prompted) {
			out_write(&c, CLIENT_PROMPT, strlen(CLIENT_PROMPT));
			prompted = 1;
		}
		if (!lr_next(&lr, c.o.max_msg, &line, &len, &has_nl)) {
			if (lr.eof)
				break;
			wait_input(&c, &lr);
			continue;
		}
		if (prompted) {
			/* The prompt is not an echo: the terminal has echoed
			 * the typed line, so the next output starts a line. */
			c.stdout_bol = 1;
			prompted = 0;
		}
		if (line == NULL) {
			errx_line("line of %zu bytes not sent: longer than "
				  "--max-msg %u",
				  len, c.o.max_msg);
			c.refused++;
			continue;
		}
		send_line(&c, line, len, has_nl);
	}
	if (interactive && prompted)
		out_write(&c, "\n", 1);
	free(lr.buf);
	return finish(&c);
}
