/*
 * minigen - the least a load generator can do, to show that echo-stress is
 * not the bottleneck: one process, one epoll loop, C connections each
 * keeping P messages of S bytes in flight, echoes read and counted, never
 * checked, no latency recorded. Prints messages/s.
 *
 * usage: minigen HOST PORT CONNS PIPELINE SECONDS [SIZE]   (IPv4)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct mconn {
	int fd;
	unsigned long owed; /* bytes to write */
	unsigned partial;   /* bytes of the current echo read */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write what is owed in as few calls as can be (the bytes are all 'x'). */
static int push(struct mconn *c, const char *fill, size_t fill_len)
{
	while (c->owed > 0) {
		size_t n = c->owed < fill_len ? c->owed : fill_len;
		ssize_t w = write(c->fd, fill, n);

		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->owed -= (unsigned long)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16], fill[1 << 16];
	struct epoll_event ev, evs[512];
	struct sockaddr_in sa;
	struct mconn *cs;
	unsigned conns, pipe, size = 64, i;
	unsigned long long done = 0;
	double secs, t0, t1;
	int ep, one = 1;

	if (argc < 6) {
		fprintf(stderr, "usage: minigen HOST PORT CONNS PIPELINE "
				"SECONDS [SIZE]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	conns = (unsigned)atoi(argv[3]);
	pipe = (unsigned)atoi(argv[4]);
	secs = atof(argv[5]);
	if (argc > 6)
		size = (unsigned)atoi(argv[6]);
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || !conns || !pipe ||
	    size < 1 || size > sizeof(fill) || secs <= 0)
		return 2;
	memset(fill, 'x', sizeof(fill));
	cs = calloc(conns, sizeof(*cs));
	ep = epoll_create1(0);
	if (!cs || ep < 0)
		return 1;
	for (i = 0; i < conns; i++) {
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (cs[i].fd < 0 ||
		    connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("minigen: connect");
			return 1;
		}
		setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	t0 = now_s();
	for (i = 0; i < conns; i++) {
		cs[i].owed = (unsigned long)pipe * size;
		if (push(&cs[i], fill, sizeof(fill)) < 0)
			return 1;
	}
	while ((t1 = now_s()) < t0 + secs) {
		int n = epoll_wait(ep, evs, 512, 100), k;

		for (k = 0; k < n; k++) {
			struct mconn *c = evs[k].data.ptr;
			ssize_t r = read(c->fd, buf, sizeof(buf));
			unsigned got;

			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				fprintf(stderr, "minigen: connection lost\n");
				return 1;
			}
			c->partial += (unsigned)r;
			got = c->partial / size;
			c->partial %= size;
			done += got;
			c->owed += (unsigned long)got * size;
			if (push(c, fill, sizeof(fill)) < 0)
				return 1;
		}
	}
	printf("minigen: %u connections, pipeline %u, %u-byte messages: "
	       "%llu messages in %.3f s, %.1f msg/s (unverified)\n",
	       conns, pipe, size, done, t1 - t0, (double)done / (t1 - t0));
	return 0;
}
