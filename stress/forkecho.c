/*
 * forkecho.c - the minimal correct fork-per-connection echo server, the
 * benchmark's strongest fork-based peer (stress/BENCH.md): a blocking
 * accept loop on 127.0.0.1, one child per connection that reads and writes
 * everything back until EOF, every child reaped (SIGCHLD). No sandbox, no
 * limits, no timeouts: what echod adds is measured against this.
 *
 *   forkecho [PORT]     prints the port it listens on (0: any), then serves
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int sig)
{
	int e = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_RESTART};
	socklen_t al = sizeof(a);
	int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c;
	static char buf[65536];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)(argc > 1 ? atoi(argv[1]) : 0));
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(l, 1024) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0) {
		perror("forkecho");
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		if (fork() == 0) {
			ssize_t n, w, o;

			while ((n = read(c, buf, sizeof(buf))) > 0)
				for (o = 0; o < n; o += w)
					if ((w = write(c, buf + o,
						       (size_t)(n - o))) <= 0)
						_exit(1);
			_exit(0);
		}
		close(c);
	}
}
