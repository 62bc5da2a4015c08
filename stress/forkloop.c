/*
 * forkloop - the "bare fork loop" baseline of stress/bench.sh: the CPU that
 * fork + _exit + waitpid of a tiny process costs on this machine, so that
 * a forking server's CPU per connection can be reported as a ratio to it
 * (stress/BENCH.md gives the targets).
 *
 * usage: forkloop [N]   (default 2000 iterations)
 * Prints one JSON object on stdout:
 *   {"iterations": N, "cpu_us_per_fork": X, "wall_us_per_fork": Y}
 * where X counts parent and children (RUSAGE_SELF + RUSAGE_CHILDREN), as the
 * benchmark counts a server's whole process tree.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv_us(struct timeval t)
{
	return (double)t.tv_sec * 1e6 + (double)t.tv_usec;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	struct rusage self, kids;
	double t0, cpu;
	long i, n = 2000;
	char *end;

	if (argc > 2) {
		fputs("usage: forkloop [N]\n", stderr);
		return 2;
	}
	if (argc == 2) {
		errno = 0;
		n = strtol(argv[1], &end, 10);
		if (errno || *end || end == argv[1] || n < 1 || n > 10000000) {
			fprintf(stderr, "forkloop: bad count '%s'\n", argv[1]);
			return 2;
		}
	}
	t0 = now_us();
	for (i = 0; i < n; i++) {
		pid_t p = fork();

		if (p < 0) {
			perror("forkloop: fork");
			return 1;
		}
		if (p == 0)
			_exit(0);
		while (waitpid(p, NULL, 0) < 0)
			if (errno != EINTR) {
				perror("forkloop: waitpid");
				return 1;
			}
	}
	t0 = now_us() - t0;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	cpu = tv_us(self.ru_utime) + tv_us(self.ru_stime) +
	      tv_us(kids.ru_utime) + tv_us(kids.ru_stime);
	printf("{\"iterations\": %ld, \"cpu_us_per_fork\": %.1f, "
	       "\"wall_us_per_fork\": %.1f}\n",
	       n, cpu / (double)n, t0 / (double)n);
	return 0;
}
