/*
 * epoll_echo - a minimal correct single-process epoll echo server (RFC 862):
 * the benchmark baseline ("the limit" in stress/BENCH.md) and the known-good
 * server of echo-stress's tests.
 *
 * usage: epoll_echo [-p PORT] [-b ADDR] [-j N]   (default 127.0.0.1, port
 * 9999; -p 0 picks a free port; prints "listening on ADDR:PORT" on stderr)
 *
 * -j N: N processes, each with its own listening socket on the same port
 * (SO_REUSEPORT: the kernel spreads new connections over them by a hash of
 * the addresses), for more connections than one process has descriptors.
 * The first binds (picking the port for -p 0), the others bind the port it
 * got; "listening on" is printed once all are bound. The others die with
 * the first (PR_SET_PDEATHSIG), so stopping it by its pid stops them all.
 *
 * Back-pressure: a connection with unsent echo bytes stops being read until
 * they are written, so a client that never reads costs one buffer.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ	   65536
#define MAX_EVENTS 512
#define MAX_PROCS  64

struct conn {
	int fd;
	size_t off, len; /* unsent echo: buf[off..len) */
	unsigned char buf[BUFSZ];
};

static int ep;

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void want(struct conn *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = c};

	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Write what is pending; 0 when all is out, 1 when blocked, -1 on error. */
static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w =
		    send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -1;
		}
		c->off += (size_t)w;
	}
	c->off = c->len = 0;
	return 0;
}

static void serve(struct conn *c, uint32_t ev)
{
	ssize_t r;
	int f;

	if (c->len > 0) { /* blocked on output: only EPOLLOUT was asked */
		f = flush(c);
		if (f < 0) {
			conn_free(c);
			return;
		}
		if (f == 0)
			want(c, EPOLLIN);
		return;
	}
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	r = read(c->fd, c->buf, BUFSZ);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) { /* EOF: nothing is owed, the echo went out already */
		conn_free(c);
		return;
	}
	c->off = 0;
	c->len = (size_t)r;
	f = flush(c);
	if (f < 0)
		conn_free(c);
	else if (f == 1)
		want(c, EPOLLOUT);
}

/* A listening socket on addr:port; SO_REUSEPORT when it is to be shared.
 * The bound address goes to ss. */
static int listen_on(const char *addr, const char *port, int share,
		     struct sockaddr_storage *ss, socklen_t *sl)
{
	struct addrinfo hints, *ai;
	int fd, one = 1, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	r = getaddrinfo(addr, port, &hints, &ai);
	if (r != 0) {
		fprintf(stderr, "epoll_echo: %s port %s: %s\n", addr, port,
			gai_strerror(r));
		exit(2);
	}
	*sl = sizeof(*ss);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (share &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, sl) < 0) {
		perror("epoll_echo: listen");
		exit(1);
	}
	freeaddrinfo(ai);
	return fd;
}

static void __attribute__((noreturn)) serve_forever(int lfd)
{
	struct epoll_event e, evs[MAX_EVENTS];
	int n, i;

	ep = epoll_create1(0);
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
	for (;;) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int fd, one = 1;

			if (c) {
				serve(c, evs[i].events);
				continue;
			}
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >=
			       0) {
				c = malloc(sizeof(*c));
				if (!c) {
					close(fd);
					continue;
				}
				c->fd = fd;
				c->off = c->len = 0;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				e.events = EPOLLIN;
				e.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
			}
		}
	}
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1", *port = "9999";
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	struct rlimit rl;
	pid_t first = getpid();
	int lfd, o, i, nproc = 1;

	while ((o = getopt(argc, argv, "p:b:j:h")) != -1) {
		switch (o) {
		case 'p':
			port = optarg;
			break;
		case 'b':
			addr = optarg;
			break;
		case 'j':
			nproc = atoi(optarg);
			if (nproc >= 1 && nproc <= MAX_PROCS)
				break;
			fprintf(stderr, "epoll_echo: -j: 1 to %d\n", MAX_PROCS);
			return 2;
		default:
			fprintf(stderr, "usage: epoll_echo [-p PORT] [-b "
					"ADDR] [-j PROCESSES]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IONBF, 0);
	lfd = listen_on(addr, port, nproc > 1, &ss, &sl);
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
		    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
	for (i = 1; i < nproc; i++) {
		struct sockaddr_storage ss2;
		socklen_t sl2;
		int fd = listen_on(host, serv, 1, &ss2, &sl2);
		pid_t pid = fork();

		if (pid < 0) {
			perror("epoll_echo: fork");
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != first)
				_exit(0);
			close(lfd);
			serve_forever(fd);
		}
		close(fd);
	}
	fprintf(stderr,
		ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n"
					 : "listening on %s:%s\n",
		host, serv);
	serve_forever(lfd);
}
