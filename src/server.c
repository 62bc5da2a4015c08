/*
 * server.c - the parent loop, in the manner of inetd, tcpserver and
 * s6-tcpserverd:
 *
 * - The signals it handles (CHLD, TERM, INT, USR1) stay blocked except
 *   inside ppoll() (the pselect pattern), and their handlers only set a
 *   flag: the loop does the work, so nothing unsafe ever runs in a handler
 *   (CVE-2024-6387) and no signal is lost between a check and the wait.
 *   Children are forked with them blocked, so a SIGTERM sent at once after
 *   fork() waits for the child's own handler.
 * - At --max-conns the listener is not polled (s6): new connections wait in
 *   the backlog until a child exits.
 * - Accept and fork errors are logged at most once a second per kind, and
 *   those that mean "out of resources" pause the listener briefly.
 * - The parent stays small: no buffers, no stdio; fork() copies its page
 *   tables, so every page it dirties makes each connection dearer.
 */
#define _GNU_SOURCE /* accept4, ppoll, memfd_create */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "session.h"
#include "stats.h"

static volatile sig_atomic_t got_chld, got_term, got_usr1;

int server_stopping(void)
{
	return got_term != 0;
}

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

/* A child and the address it serves (for the per-address limit and the
 * log line if it dies abnormally). Open addressing, pid 0 = empty. */
struct child {
	pid_t pid;
	uint16_t port;
	uint8_t addr[16];
};

/* Active connections per client address; count 0 = empty. */
struct ipcount {
	uint32_t count;
	uint8_t addr[16];
};

struct ratelim {
	int64_t last_ms;
	unsigned long suppressed;
};

struct server {
	const struct echod_opts *o;
	int lfd;
	sigset_t waitmask; /* the mask inside ppoll: handled signals open */
	struct child *kids;
	struct ipcount *ips; /* NULL without --max-per-ip */
	size_t mask;	     /* both tables: capacity - 1 */
	uint64_t seed;
	uint64_t active;
	int paused;	     /* at --max-conns: listener not polled */
	int resumed;	     /* accepting the backlog left by a pause */
	int64_t backoff_end; /* listener not polled before this time */
	struct ratelim rl_accept, rl_fork, rl_reject;
};

/*
 * ppoll() delivers the signals it unblocks only when it has to wait: when
 * a descriptor is ready at once it restores the mask with the signals
 * still pending. Under a connection flood the listener is always ready,
 * so the pending set is read after every wake-up, or SIGTERM and SIGCHLD
 * would starve.
 */
static void check_pending(void)
{
	sigset_t p;

	if (sigpending(&p) < 0)
		return;
	if (sigismember(&p, SIGCHLD))
		got_chld = 1;
	if (sigismember(&p, SIGUSR1))
		got_usr1 = 1;
	if (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT))
		got_term = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ratelimited(struct ratelim *rl, const char *what, int err)
{
	int64_t now = now_ms();

	if (rl->last_ms != 0 && now - rl->last_ms < SERVER_LOG_INTERVAL_MS) {
		rl->suppressed++;
		return;
	}
	if (rl->suppressed > 0)
		log_warnx("%s: %s (%lu similar messages suppressed)", what,
			  strerror(err), rl->suppressed);
	else
		log_warnx("%s: %s", what, strerror(err));
	rl->last_ms = now;
	rl->suppressed = 0;
}

/* ---- tables ---- */

static size_t pid_home(const struct server *s, pid_t pid)
{
	return (size_t)(((uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ull) >>
			32) &
	       s->mask;
}

/* Keyed so that clients cannot choose addresses that collide. */
static size_t addr_home(const struct server *s, const uint8_t addr[16])
{
	uint64_t h = s->seed ^ 0xcbf29ce484222325ull;
	int i;

	for (i = 0; i < 16; i++) {
		h ^= addr[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	return (size_t)h & s->mask;
}

/* Linear probing with backward-shift deletion (no tombstones): j's entry
 * may move into the hole at i unless its home lies cyclically in (i, j]. */
static int can_move(size_t home, size_t i, size_t j)
{
	if (i <= j)
		return home <= i || home > j;
	return home <= i && home > j;
}

static struct child *kid_find(struct server *s, pid_t pid)
{
	size_t i;

	for (i = pid_home(s, pid); s->kids[i].pid != 0; i = (i + 1) & s->mask)
		if (s->kids[i].pid == pid)
			return &s->kids[i];
	return NULL;
}

static void kid_add(struct server *s, pid_t pid, const uint8_t addr[16],
		    uint16_t port)
{
	size_t i = pid_home(s, pid);

	while (s->kids[i].pid != 0)
		i = (i + 1) & s->mask;
	s->kids[i].pid = pid;
	s->kids[i].port = port;
	memcpy(s->kids[i].addr, addr, 16);
}

static void kid_del(struct server *s, struct child *c)
{
	size_t i = (size_t)(c - s->kids), j = i;

	for (;;) {
		j = (j + 1) & s->mask;
		if (s->kids[j].pid == 0)
			break;
		if (can_move(pid_home(s, s->kids[j].pid), i, j)) {
			s->kids[i] = s->kids[j];
			i = j;
		}
	}
	s->kids[i].pid = 0;
}

static struct ipcount *ip_slot(struct server *s, const uint8_t addr[16])
{
	size_t i;

	for (i = addr_home(s, addr); s->ips[i].count != 0;
	     i = (i + 1) & s->mask)
		if (memcmp(s->ips[i].addr, addr, 16) == 0)
			return &s->ips[i];
	memcpy(s->ips[i].addr, addr, 16);
	return &s->ips[i];
}

static void ip_release(struct server *s, const uint8_t addr[16])
{
	struct ipcount *e = ip_slot(s, addr);
	size_t i, j;

	if (e->count == 0 || --e->count > 0)
		return;
	i = j = (size_t)(e - s->ips);
	for (;;) {
		j = (j + 1) & s->mask;
		if (s->ips[j].count == 0)
			break;
		if (can_move(addr_home(s, s->ips[j].addr), i, j)) {
			s->ips[i] = s->ips[j];
			i = j;
		}
	}
	s->ips[i].count = 0;
}

static void *table_alloc(size_t n, size_t size)
{
	/* Anonymous pages: only those a connection touches are ever
	 * populated, so a large --max-conns costs nothing up front. */
	void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Children never look at the parent's tables, and with hashed slots
	 * every page of them ends up populated: without this, each fork()
	 * would copy their page tables and each child's exit tear them down
	 * (192 pages at -c 12000). */
	(void)madvise(p, n * size, MADV_DONTFORK);
	return p;
}

static char *key_str(const uint8_t addr[16], uint16_t port, char *buf,
		     size_t len)
{
	struct sockaddr_in6 s6;

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(port);
	memcpy(&s6.sin6_addr, addr, 16);
	return net_addr_str((struct sockaddr *)&s6, sizeof(s6), buf, len);
}

/* ---- children ---- */

static void child_gone(struct server *s, pid_t pid, int st)
{
	struct child *c = kid_find(s, pid);
	char who[NET_ADDRSTRLEN] = "?";

	if (c != NULL)
		key_str(c->addr, c->port, who, sizeof(who));
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) {
		stats_add(&stats->sandbox_kills, 1);
		log_warnx("child %ld (%s) killed by SIGSYS: sandbox violation",
			  (long)pid, who);
	} else if (WIFSIGNALED(st)) {
		log_warnx("child %ld (%s) killed by signal %d (%s)", (long)pid,
			  who, WTERMSIG(st), strsignal(WTERMSIG(st)));
	} else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
		log_warnx("child %ld (%s) exited with status %d", (long)pid,
			  who, WEXITSTATUS(st));
	}
	if (c == NULL)
		return;
	if (s->ips != NULL)
		ip_release(s, c->addr);
	kid_del(s, c);
	s->active--;
	stats_sub(&stats->active, 1);
}

static void reap(struct server *s, int block)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, block ? 0 : WNOHANG)) > 0)
		child_gone(s, pid, st);
}

static void signal_children(struct server *s, int sig)
{
	size_t i;

	for (i = 0; i <= s->mask; i++)
		if (s->kids[i].pid != 0)
			kill(s->kids[i].pid, sig);
}

/* ---- accepting ---- */

static void log_reject(struct server *s, const struct sockaddr *sa,
		       socklen_t len, uint32_t count)
{
	char who[NET_ADDRSTRLEN];
	int64_t now = now_ms();

	if (s->rl_reject.last_ms != 0 &&
	    now - s->rl_reject.last_ms < SERVER_LOG_INTERVAL_MS) {
		s->rl_reject.suppressed++;
		return;
	}
	net_addr_str(sa, len, who, sizeof(who));
	if (s->rl_reject.suppressed > 0)
		log_warnx("reject %s reason=max-per-ip active=%u (%lu similar "
			  "messages suppressed)",
			  who, count, s->rl_reject.suppressed);
	else
		log_warnx("reject %s reason=max-per-ip active=%u", who, count);
	s->rl_reject.last_ms = now;
	s->rl_reject.suppressed = 0;
}

static void backoff(struct server *s)
{
	s->backoff_end = now_ms() + SERVER_BACKOFF_MS;
}

static void accept_some(struct server *s)
{
	struct sockaddr_storage ss;
	uint8_t key[16];
	uint16_t port;
	socklen_t len;
	pid_t pid;
	int fd, n;

	for (n = 0; n < SERVER_ACCEPT_BATCH; n++) {
		if (s->active >= s->o->max_conns) {
			s->paused = 1;
			return;
		}
		len = sizeof(ss);
		fd = accept4(s->lfd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				s->resumed = 0;
				return;
			case EINTR:
				continue;
			case ECONNABORTED:
			case EPROTO:
			case EPERM: /* a firewall said no: next one */
				ratelimited(&s->rl_accept, "accept", errno);
				continue;
			default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
				ratelimited(&s->rl_accept, "accept", errno);
				backoff(s);
				return;
			}
		}
		stats_add(&stats->accepted, 1);
		if (s->resumed)
			stats_add(&stats->deferred, 1);
		net_addr_key((struct sockaddr *)&ss, key);
		port = ntohs(ss.ss_family == AF_INET
				 ? ((struct sockaddr_in *)&ss)->sin_port
				 : ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (s->ips != NULL) {
			struct ipcount *e = ip_slot(s, key);

			if (e->count >= s->o->max_per_ip) {
				stats_add(&stats->rejected_per_ip, 1);
				close(fd);
				log_reject(s, (struct sockaddr *)&ss, len,
					   e->count);
				continue;
			}
		}
		pid = fork();
		if (pid == 0)
			session_run(fd, (struct sockaddr *)&ss, len, s->o,
				    s->lfd, &s->waitmask);
		if (pid < 0) {
			int err = errno;

			stats_add(&stats->fork_failures, 1);
			close(fd);
			ratelimited(&s->rl_fork, "fork", err);
			backoff(s);
			return;
		}
		close(fd);
		kid_add(s, pid, key, port);
		if (s->ips != NULL)
			ip_slot(s, key)->count++;
		s->active++;
		stats_add(&stats->active, 1);
		if (s->active > stats_get(&stats->peak))
			__atomic_store_n(&stats->peak, s->active,
					 __ATOMIC_RELAXED);
	}
}

static void log_stats(void)
{
	char buf[512];

	log_notice("stats %s", stats_format(buf, sizeof(buf)));
}

static void drain(struct server *s)
{
	int64_t deadline, now;
	struct timespec ts;

	close(s->lfd);
	log_info("shutdown: closed the listener, %llu connections active, "
		 "waiting up to %us",
		 (unsigned long long)s->active, s->o->shutdown_timeout);
	__atomic_store_n(&stats->shutdown, 1, __ATOMIC_RELEASE);
	signal_children(s, SIGTERM);
	deadline = now_ms() + (int64_t)s->o->shutdown_timeout * 1000;
	while (s->active > 0) {
		reap(s, 0);
		if (got_usr1) {
			got_usr1 = 0;
			log_stats();
		}
		now = now_ms();
		if (s->active == 0 || now >= deadline)
			break;
		ts.tv_sec = (time_t)((deadline - now) / 1000);
		ts.tv_nsec = (long)((deadline - now) % 1000) * 1000000;
		got_chld = 0;
		ppoll(NULL, 0, &ts, &s->waitmask);
	}
	if (s->active > 0) {
		log_warnx("shutdown: %llu children still active after %us: "
			  "SIGKILL",
			  (unsigned long long)s->active,
			  s->o->shutdown_timeout);
		signal_children(s, SIGKILL);
		reap(s, 1);
	}
}

static struct server srv;

int server_init(const struct echod_opts *o)
{
	struct server *s = &srv;
	struct sigaction sa;
	sigset_t block;
	size_t cap = 16;

	s->o = o;
	while (cap < 2 * (size_t)o->max_conns)
		cap *= 2;
	s->mask = cap - 1;
	s->kids = table_alloc(cap, sizeof(*s->kids));
	if (o->max_per_ip > 0)
		s->ips = table_alloc(cap, sizeof(*s->ips));
	if (s->kids == NULL || (o->max_per_ip > 0 && s->ips == NULL))
		return -1;
	if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) < 0)
		s->seed = (uint64_t)now_ms() ^ (uint64_t)getpid();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &s->waitmask);
	sigdelset(&s->waitmask, SIGCHLD);
	sigdelset(&s->waitmask, SIGTERM);
	sigdelset(&s->waitmask, SIGINT);
	sigdelset(&s->waitmask, SIGUSR1);
	return 0;
}

int server_run(int listen_fd)
{
	struct server *s = &srv;
	const struct echod_opts *o = s->o;
	struct pollfd pfd;
	struct timespec ts;
	int64_t now;
	int r, listening;

	s->lfd = listen_fd;
	while (!got_term) {
		if (got_chld) {
			got_chld = 0;
			reap(s, 0);
		}
		if (got_usr1) {
			got_usr1 = 0;
			log_stats();
		}
		if (s->paused && s->active < o->max_conns) {
			s->paused = 0;
			s->resumed = 1;
		}
		now = now_ms();
		listening = !s->paused && now >= s->backoff_end;
		pfd.fd = s->lfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (!s->paused && !listening) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)(s->backoff_end - now) * 1000000;
		}
		r = ppoll(&pfd, listening ? 1 : 0,
			  !s->paused && !listening ? &ts : NULL, &s->waitmask);
		if (r < 0 && errno != EINTR) {
			log_warn("ppoll");
			backoff(s);
		}
		if (r > 0)
			check_pending();
		if (r > 0 && (pfd.revents & (POLLIN | POLLERR)))
			accept_some(s);
	}
	drain(s);
	log_stats();
	return 0;
}
