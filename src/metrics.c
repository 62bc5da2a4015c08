/*
 * metrics.c - see metrics.h.
 *
 * Why a process of its own: the parent runs under the seccomp filter its
 * children inherit, which allows no open(), no rename() (a compromised
 * child must not have them), and a parent that wrote a file itself could
 * stall on a slow disk while clients wait in the backlog. So the parent
 * only sends a snapshot of its counters, never waiting (MSG_DONTWAIT: a
 * busy writer misses a snapshot, the next one carries everything), and
 * the writer, forked before the filter and confined by Landlock to the
 * metrics file's folder, formats it (stats_prometheus) and replaces the
 * file atomically: write a temporary file in the same folder, then
 * rename() it over PATH, as node_exporter's textfile collector requires.
 * The writer reads nothing but the parent's snapshots.
 */
#define _GNU_SOURCE
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "coverage.h"
#include "log.h"
#include "sandbox.h"

/* Room for the text: about 3 KB today. */
#define METRICS_TEXT_MAX 16384

static int write_all(int fd, const char *b, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One snapshot to the file: temporary file, then rename. */
static void write_file(int dirfd, const char *base, const char *tmp,
		       const struct stats *st, const struct stats_info *in)
{
	/* On the writer's stack: a static buffer would sit in .bss among
	 * the pages every child dirties, and push one more into each. */
	char text[METRICS_TEXT_MAX];
	int n = stats_prometheus(st, in, text, sizeof(text)), fd;

	if (n < 0)
		return;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("metrics: %s", tmp);
		return;
	}
	if (write_all(fd, text, (size_t)n) < 0 || close(fd) < 0) {
		log_warn("metrics: writing %s", tmp);
		unlinkat(dirfd, tmp, 0);
		return;
	}
	if (renameat(dirfd, tmp, dirfd, base) < 0)
		log_warn("metrics: renaming %s", tmp);
}

__attribute__((noreturn)) static void
writer(int sock, int dirfd, const char *base, const struct stats_info *in)
{
	char tmp[NAME_MAX + 1];
	struct stats st;
	ssize_t got;

	/* Hidden from the collector, which reads only *.prom. */
	snprintf(tmp, sizeof(tmp), ".%.200s.tmp", base);
	log_reinit_pid();
	if (sandbox_writer(dirfd) < 0) {
		log_warn("metrics: cannot confine the writer");
		coverage_child_flush();
		_exit(1);
	}
	for (;;) {
		got = recv(sock, &st, sizeof(st), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got != (ssize_t)sizeof(st)) {
			coverage_child_flush();	 /* coverage builds only */
			_exit(got == 0 ? 0 : 1); /* the parent is done */
		}
		write_file(dirfd, base, tmp, &st, in);
	}
}

int metrics_start(const char *path, const struct stats_info *in)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base = path;
	int sv[2], dirfd, e;
	pid_t pid;

	if (slash != NULL) {
		snprintf(dir, sizeof(dir), "%.*s",
			 slash == path ? 1 : (int)(slash - path), path);
		base = slash + 1;
	}
	/* The folder is checked here, so that a wrong one stops echod at
	 * start rather than a writer later. */
	dirfd =
	    open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0) {
		int lo = sv[1] < dirfd ? sv[1] : dirfd;
		int hi = sv[1] < dirfd ? dirfd : sv[1];

		/* Nothing of the server's: its socket, its folder, stderr. */
		close_range(STDERR_FILENO + 1, (unsigned)lo - 1, 0);
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		close_range((unsigned)hi + 1, ~0u, 0);
		/* Not killed by a terminal's ^C, nor by a SIGUSR1 or SIGTERM
		 * sent to every echod process (pkill, systemctl kill): it
		 * leaves when the parent closes its end, after the last
		 * file. */
		static const int quiet[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1,
					    SIGUSR2, SIGTERM, SIGALRM, SIGPIPE};
		size_t k;

		for (k = 0; k < sizeof(quiet) / sizeof(quiet[0]); k++)
			signal(quiet[k], SIG_IGN);
		writer(sv[1], dirfd, base, in);
	}
	close(sv[1]);
	close(dirfd);
	return sv[0];
fail:
	e = errno;
	close(dirfd);
	errno = e;
	return -1;
}

void metrics_send(int fd, const struct stats *st)
{
	if (fd >= 0)
		(void)send(fd, st, sizeof(*st), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void metrics_finish(int fd, const struct stats *st, int wait_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000};

	if (fd < 0)
		return;
	metrics_send(fd, st);
	shutdown(fd, SHUT_WR);
	/* The writer closes its end once the last file is in place. */
	(void)ppoll(&p, 1, &ts, NULL);
	close(fd);
}
