/*
 * bad_echo - a deliberately broken echo server, to prove that echo-stress's
 * verifier notices each kind of breakage.
 *
 * usage: bad_echo --fault KIND [-p PORT] [-b ADDR]
 *   flip   flips the low bit of every 1000th byte of each connection
 *   drop   drops every 1000th byte
 *   dup    sends every 1000th byte twice
 *   extra  after the read that holds byte 1000, sends one byte more
 *   close  after 1000 bytes, echoes half of the next read and closes
 *   stall  serves nothing for 1 s out of every 2 s (correct bytes)
 *   swap   echoes lines 2 and 3 of each connection ('\n'-delimited, the
 *          second at most HOLD bytes) in swapped order, the rest intact:
 *          an ordering error that only a pipelining client can see
 *   none   a correct echo
 * Prints "listening on ADDR:PORT" on stderr like echod.
 */
#define _GNU_SOURCE /* accept4, memmem, epoll_pwait2 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ	 16384
#define EVERY	 1000
#define STALL_MS 1000
#define HOLD	 4096

enum fault { F_NONE, F_FLIP, F_DROP, F_DUP, F_EXTRA, F_CLOSE, F_STALL, F_SWAP };

struct conn {
	int fd;
	unsigned long long seen;  /* bytes read so far */
	unsigned long long lines; /* swap: delimiters read so far */
	size_t off, len, held;
	unsigned char out[2 * BUFSZ];
	unsigned char hold[HOLD]; /* swap: line 2, until line 3 is out */
};

static enum fault fault;
static int ep;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c);
}

static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w =
		    send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -1;
		}
		c->off += (size_t)w;
	}
	c->off = c->len = 0;
	return 0;
}

/* Copy in[0..n) to the output, breaking it as the fault says. Returns 1
 * when the connection must be closed after this output. */
static int transform(struct conn *c, const unsigned char *in, size_t n)
{
	size_t i;
	int extra = 0;

	if (fault == F_CLOSE && c->seen + n > EVERY) {
		memcpy(c->out, in, n / 2);
		c->len = n / 2;
		c->seen += n;
		return 1;
	}
	for (i = 0; i < n; i++) {
		unsigned char b = in[i];
		int hit = (++c->seen % EVERY) == 0;

		if (fault == F_SWAP) {
			if (c->lines == 1 && c->held < HOLD)
				c->hold[c->held++] = b;
			else if (c->lines != 1)
				c->out[c->len++] = b;
			if (b == '\n' && ++c->lines == 3) {
				memcpy(c->out + c->len, c->hold, c->held);
				c->len += c->held;
			}
			continue;
		}
		if (hit && fault == F_FLIP)
			b ^= 1;
		if (hit && fault == F_DROP)
			continue;
		c->out[c->len++] = b;
		if (hit && fault == F_DUP)
			c->out[c->len++] = b;
		if (hit && fault == F_EXTRA)
			extra = 1;
	}
	if (extra)
		c->out[c->len++] = '!';
	return 0;
}

static void serve(struct conn *c)
{
	unsigned char in[BUFSZ];
	struct epoll_event e;
	ssize_t r;
	int f, last;

	if (c->len > 0) {
		f = flush(c);
		if (f < 0) {
			conn_free(c);
		} else if (f == 0) {
			e.events = EPOLLIN;
			e.data.ptr = c;
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
		}
		return;
	}
	r = read(c->fd, in, sizeof(in));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		conn_free(c);
		return;
	}
	last = transform(c, in, (size_t)r);
	f = flush(c);
	if (f < 0 || last) {
		conn_free(c);
	} else if (f == 1) {
		e.events = EPOLLOUT;
		e.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"fault", 1, NULL, 'f'},
					   {NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1", *port = "0", *fs = "none";
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	struct epoll_event e, evs[256];
	long long t0;
	int lfd, o, n, i, one = 1;

	while ((o = getopt_long(argc, argv, "p:b:f:", lo, NULL)) != -1) {
		if (o == 'p')
			port = optarg;
		else if (o == 'b')
			addr = optarg;
		else if (o == 'f')
			fs = optarg;
		else
			return 2;
	}
	if (!strcmp(fs, "flip"))
		fault = F_FLIP;
	else if (!strcmp(fs, "drop"))
		fault = F_DROP;
	else if (!strcmp(fs, "dup"))
		fault = F_DUP;
	else if (!strcmp(fs, "extra"))
		fault = F_EXTRA;
	else if (!strcmp(fs, "close"))
		fault = F_CLOSE;
	else if (!strcmp(fs, "stall"))
		fault = F_STALL;
	else if (!strcmp(fs, "swap"))
		fault = F_SWAP;
	else if (strcmp(fs, "none") != 0) {
		fprintf(stderr, "bad_echo: unknown fault '%s'\n", fs);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(addr, port, &hints, &ai) != 0)
		return 2;
	lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(lfd, 1024) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0) {
		perror("bad_echo");
		return 1;
	}
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
		    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
	fprintf(stderr, "listening on %s:%s\n", host, serv);
	ep = epoll_create1(0);
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
	t0 = now_ms();
	for (;;) {
		long long t = (now_ms() - t0) % (2 * STALL_MS);

		if (fault == F_STALL && t >= STALL_MS) {
			/* the second half of each 2 s: serve nothing */
			usleep((useconds_t)(2 * STALL_MS - t) * 1000);
			continue;
		}
		n = epoll_wait(ep, evs, 256,
			       fault == F_STALL ? (int)(STALL_MS - t) : -1);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int fd;

			if (c) {
				serve(c);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >=
			       0) {
				c = calloc(1, sizeof(*c));
				if (!c) {
					close(fd);
					continue;
				}
				c->fd = fd;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				e.events = EPOLLIN;
				e.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
			}
		}
	}
}
