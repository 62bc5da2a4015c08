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
 * - No signal but SIGKILL ends it without a drain: the other signals whose
 *   default is to terminate are handled (HUP logs the counters, QUIT
 *   drains like TERM) or ignored, and children die with it
 *   (PR_SET_PDEATHSIG, sandbox.c).
 * - Children report their counters once, over a socket that tells the
 *   parent who sent each report (stats.h): nothing a child can write
 *   changes another child's numbers or the server's state.
 * - A connection accepted when fork() then fails is kept (a few at most,
 *   the listener paused) and served when fork works again; given up with
 *   a FIN after the idle timeout.
 */
#define _GNU_SOURCE /* accept4, ppoll, struct ucred */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "sandbox.h"
#include "conn.h"
#include "stats.h"

static volatile sig_atomic_t got_chld, got_term, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGUSR1 || sig == SIGHUP)
		got_usr1 = 1;
	else
		got_term = 1;
}

/* The signals the loop handles: blocked except inside ppoll(). */
static const int handled[] = {SIGCHLD, SIGTERM, SIGINT,
			      SIGQUIT, SIGUSR1, SIGHUP};
/* Signals whose default action ends the process and that mean nothing to
 * echod: ignored, so that a stray one cannot end it without its drain.
 * (The fault signals, SEGV and the like, keep their default: they mean a
 * bug, and hiding one would be worse.) */
static const int ignored[] = {SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,  SIGIO,
			      SIGPWR,  SIGXCPU, SIGXFSZ,   SIGSTKFLT};

/* A child and the address it serves (for the per-address limit and the
 * log line if it dies abnormally). Open addressing, pid 0 = empty. */
struct child {
	pid_t pid;
	uint16_t port;
	uint8_t reported; /* its report was counted */
	uint8_t addr[16];
};

/* A connection accepted while fork() failed, waiting for a process. */
struct held {
	int fd;
	uint16_t port;
	uint8_t addr[16];
	int64_t since_ms;
	socklen_t len;
	struct sockaddr_storage ss;
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
	int report_rx, report_tx; /* the children's reports: ours, theirs */
	pid_t pid;
	sigset_t waitmask; /* the mask inside ppoll: handled signals open */
	struct child *kids;
	struct ipcount *ips; /* NULL without --max-per-ip */
	size_t mask;	     /* both tables: capacity - 1 */
	uint64_t seed;
	uint64_t active;
	int paused;	     /* at --max-conns: listener not polled */
	int resumed;	     /* accepting the backlog left by a pause */
	int64_t backoff_end; /* listener not polled before this time */
	struct held held[SERVER_HOLD_MAX];
	unsigned nheld;
	struct conn_ctx ctx; /* what every child is given */
	struct ratelim rl_accept, rl_fork, rl_reject, rl_report;
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
	if (sigismember(&p, SIGUSR1) || sigismember(&p, SIGHUP))
		got_usr1 = 1;
	if (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT) ||
	    sigismember(&p, SIGQUIT))
		got_term = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a warning of this kind may be logged now (at most one per
 * interval). When it may, *suppressed is how many were held back since
 * the last one, for the line to say. */
static int ratelim_take(struct ratelim *rl, unsigned long *suppressed)
{
	int64_t now = now_ms();

	if (rl->last_ms != 0 && now - rl->last_ms < SERVER_LOG_INTERVAL_MS) {
		rl->suppressed++;
		return 0;
	}
	*suppressed = rl->suppressed;
	rl->last_ms = now;
	rl->suppressed = 0;
	return 1;
}

/* Say how many lines of a kind were held back, if any: at each stats
 * line and at exit, so the count of a last burst is never lost. */
static void ratelim_flush(struct ratelim *rl, const char *what)
{
	if (rl->suppressed == 0)
		return;
	log_warnx("%s: %lu similar messages suppressed", what, rl->suppressed);
	rl->suppressed = 0;
}

static void ratelimited(struct ratelim *rl, const char *what, int err)
{
	unsigned long n;

	if (!ratelim_take(rl, &n))
		return;
	if (n > 0)
		log_warnx("%s: %s (%lu similar messages suppressed)", what,
			  strerror(err), n);
	else
		log_warnx("%s: %s", what, strerror(err));
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
	s->kids[i].reported = 0;
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
		stats.sandbox_kills++;
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
	stats.active--;
}

/* Count the reports waiting. The kernel stamps each with its sender's
 * pid (SO_PASSCRED), so a report is taken only from a child we forked and
 * only once: a child can state its own numbers, nobody else's. */
static void read_reports(struct server *s)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct conn_report r;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *c;
	struct ucred cred;
	struct child *k;
	unsigned long n;
	ssize_t got;
	int i, ok;

	for (i = 0; i < SERVER_REPORT_BATCH; i++) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = &r;
		iov.iov_len = sizeof(r);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.b;
		mh.msg_controllen = sizeof(cm.b);
		got = recvmsg(s->report_rx, &mh, MSG_DONTWAIT);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return;
		ok = 0;
		c = CMSG_FIRSTHDR(&mh);
		if (got == (ssize_t)sizeof(r) && !(mh.msg_flags & MSG_TRUNC) &&
		    r.magic == CONN_REPORT_MAGIC && c != NULL &&
		    c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			k = kid_find(s, cred.pid);
			if (k != NULL && !k->reported) {
				k->reported = 1;
				stats_add_report(&r);
				/* Children that dropped lines leave before
				 * they can say so: the parent does. */
				if (r.log_dropped > 0)
					log_dropped_elsewhere(r.log_dropped);
				ok = 1;
			}
		}
		if (!ok) {
			stats.bad_reports++;
			if (ratelim_take(&s->rl_report, &n))
				log_warnx("report refused (%lu similar "
					  "messages suppressed)",
					  n);
		}
	}
}

/* Reap every child that has exited. A child sends its report before it
 * exits, so once waitpid() has returned it the report is queued: read
 * the queue after waitpid() and before the child leaves the table. */
static void reap(struct server *s, int block)
{
	pid_t pids[SERVER_REPORT_BATCH];
	int sts[SERVER_REPORT_BATCH];
	int i, n;

	do {
		n = 0;
		while (n < SERVER_REPORT_BATCH &&
		       (pids[n] = waitpid(-1, &sts[n], block ? 0 : WNOHANG)) >
			   0)
			n++;
		if (n > 0)
			read_reports(s);
		for (i = 0; i < n; i++)
			child_gone(s, pids[i], sts[i]);
	} while (n == SERVER_REPORT_BATCH);
}

/* ---- accepting ---- */

static void log_reject(struct server *s, const struct sockaddr *sa,
		       socklen_t len, uint32_t count)
{
	char who[NET_ADDRSTRLEN];
	unsigned long n;

	if (!ratelim_take(&s->rl_reject, &n))
		return;
	net_addr_str(sa, len, who, sizeof(who));
	if (n > 0)
		log_warnx("reject %s reason=max-per-ip active=%u (%lu similar "
			  "messages suppressed)",
			  who, count, n);
	else
		log_warnx("reject %s reason=max-per-ip active=%u", who, count);
}

static void backoff(struct server *s)
{
	s->backoff_end = now_ms() + SERVER_BACKOFF_MS;
}

/* Fork the child that serves fd. Returns 0, or -1 when fork() failed
 * (fd still open, the caller's to keep or close). */
static int spawn(struct server *s, int fd, const struct sockaddr *sa,
		 socklen_t len, const uint8_t key[16], uint16_t port)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* Before a byte is read, the child holds nothing of the
		 * parent's but stderr, /dev/null and its side of the report
		 * socket (echod.c closed the rest at start). */
		close(s->lfd);
		close(s->report_rx);
		conn_run(fd, sa, len, &s->ctx);
	}
	if (pid < 0) {
		int err = errno;

		stats.fork_failures++;
		ratelimited(&s->rl_fork, "fork", err);
		backoff(s);
		return -1;
	}
	close(fd);
	kid_add(s, pid, key, port);
	s->active++;
	stats.active++;
	if (s->active > stats.peak)
		stats.peak = s->active;
	return 0;
}

/* Keep a connection fork() could not take: it is served when fork works
 * again. Its per-address slot stays taken meanwhile. */
static void hold(struct server *s, int fd, const struct sockaddr_storage *ss,
		 socklen_t len, const uint8_t key[16], uint16_t port)
{
	struct held *h = &s->held[s->nheld++];

	h->fd = fd;
	h->ss = *ss;
	h->len = len;
	h->port = port;
	h->since_ms = now_ms();
	memcpy(h->addr, key, 16);
}

static void unhold(struct server *s, unsigned i)
{
	s->held[i] = s->held[--s->nheld];
}

/* Close a held connection with a FIN, not a reset: drop what the client
 * sent (close() with unread input answers RST) first. */
static void give_up(struct server *s, unsigned i, const char *why)
{
	struct held *h = &s->held[i];
	char who[NET_ADDRSTRLEN];
	int n = 0;

	while (n++ < 16 &&
	       recv(h->fd, NULL, 1 << 20, MSG_DONTWAIT | MSG_TRUNC) > 0)
		;
	shutdown(h->fd, SHUT_WR);
	close(h->fd);
	if (s->ips != NULL)
		ip_release(s, h->addr);
	stats.resource_errors++;
	log_warnx(
	    "close %s in=0 out=0 discarded=0 duration=0.000s "
	    "reason=resource-error: %s",
	    net_addr_str((struct sockaddr *)&h->ss, h->len, who, sizeof(who)),
	    why);
	unhold(s, i);
}

/* Serve the held connections while fork() works; give up those that
 * waited longer than the idle timeout. */
static void retry_held(struct server *s)
{
	int64_t now = now_ms();
	unsigned i = 0;
	struct held *h;

	while (i < s->nheld) {
		h = &s->held[i];
		if (spawn(s, h->fd, (struct sockaddr *)&h->ss, h->len, h->addr,
			  h->port) == 0) {
			unhold(s, i);
			continue;
		}
		if (s->o->idle_timeout > 0 &&
		    now - h->since_ms >= (int64_t)s->o->idle_timeout * 1000) {
			give_up(s, i, "cannot fork");
			continue;
		}
		i++;
	}
}

static void accept_some(struct server *s)
{
	struct sockaddr_storage ss;
	uint8_t key[16];
	uint16_t port;
	socklen_t len;
	int fd, n;

	for (n = 0; n < SERVER_ACCEPT_BATCH; n++) {
		if (s->active + s->nheld >= s->o->max_conns) {
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
		stats.accepted++;
		if (s->resumed)
			stats.deferred++;
		net_addr_key((struct sockaddr *)&ss, key);
		port = ntohs(ss.ss_family == AF_INET
				 ? ((struct sockaddr_in *)&ss)->sin_port
				 : ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (s->ips != NULL) {
			struct ipcount *e = ip_slot(s, key);

			if (e->count >= s->o->max_per_ip) {
				stats.rejected_per_ip++;
				close(fd);
				log_reject(s, (struct sockaddr *)&ss, len,
					   e->count);
				continue;
			}
			e->count++;
		}
		if (spawn(s, fd, (struct sockaddr *)&ss, len, key, port) < 0) {
			/* The listener stays paused while any is held. */
			if (s->nheld < SERVER_HOLD_MAX) {
				hold(s, fd, &ss, len, key, port);
			} else { /* cannot happen: paused before */
				close(fd);
				if (s->ips != NULL)
					ip_release(s, key);
			}
			return;
		}
	}
}

static void log_stats(struct server *s)
{
	char buf[768];

	ratelim_flush(&s->rl_accept, "accept");
	ratelim_flush(&s->rl_fork, "fork");
	ratelim_flush(&s->rl_reject, "reject");
	ratelim_flush(&s->rl_report, "report refused");
	log_notice("stats %s", stats_format(buf, sizeof(buf)));
}

static void signal_children(struct server *s, int sig)
{
	size_t i;

	for (i = 0; i <= s->mask; i++)
		if (s->kids[i].pid != 0)
			kill(s->kids[i].pid, sig);
}

static void drain(struct server *s)
{
	int64_t deadline, now;
	struct pollfd pfd;
	struct timespec ts;

	close(s->lfd);
	while (s->nheld > 0)
		give_up(s, 0, "shutdown");
	log_info("shutdown: closed the listener, %llu connections active, "
		 "waiting up to %us",
		 (unsigned long long)s->active, s->o->shutdown_timeout);
	control_shutdown();
	signal_children(s, SIGTERM);
	deadline = now_ms() + (int64_t)s->o->shutdown_timeout * 1000;
	pfd.fd = s->report_rx;
	pfd.events = POLLIN;
	while (s->active > 0) {
		reap(s, 0);
		read_reports(s);
		if (got_usr1) {
			got_usr1 = 0;
			log_stats(s);
		}
		now = now_ms();
		if (s->active == 0 || now >= deadline)
			break;
		ts.tv_sec = (time_t)((deadline - now) / 1000);
		ts.tv_nsec = (long)((deadline - now) % 1000) * 1000000;
		got_chld = 0;
		pfd.revents = 0;
		ppoll(&pfd, 1, &ts, &s->waitmask);
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

/* Ignore a signal with the kernel's own call: glibc refuses to touch the
 * two real-time signals it reserves (32 and 33), whose default would
 * still end the process. */
static void ignore_signal(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} ksa;

	memset(&ksa, 0, sizeof(ksa));
	ksa.handler = (void *)SIG_IGN;
	(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/* The children's report socket: SOCK_SEQPACKET keeps each report whole,
 * SO_PASSCRED makes the kernel say who sent it, and a send buffer large
 * enough that a burst of children closing at once rarely waits. */
static int report_socket(struct server *s)
{
	int sv[2], on = 1, size = SERVER_REPORT_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) <
	    0)
		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size,
				 sizeof(size));
	s->report_rx = sv[0];
	s->report_tx = sv[1];
	return 0;
}

static struct server srv;

int server_init(const struct echod_opts *o)
{
	struct server *s = &srv;
	struct sigaction sa;
	sigset_t block;
	size_t cap = 16, i;
	int sig;

	s->o = o;
	s->pid = getpid();
	while (cap < 2 * (size_t)o->max_conns)
		cap *= 2;
	s->mask = cap - 1;
	s->kids = table_alloc(cap, sizeof(*s->kids));
	if (o->max_per_ip > 0)
		s->ips = table_alloc(cap, sizeof(*s->ips));
	if (s->kids == NULL || (o->max_per_ip > 0 && s->ips == NULL))
		return -1;
	if (report_socket(s) < 0)
		return -1;
	if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) < 0)
		s->seed = (uint64_t)now_ms() ^ (uint64_t)getpid();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		sa.sa_flags = handled[i] == SIGCHLD ? SA_NOCLDSTOP : 0;
		sigaction(handled[i], &sa, NULL);
		sigaddset(&block, handled[i]);
	}
	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		ignore_signal(ignored[i]);
	for (sig = 32; sig <= 64; sig++) /* every real-time signal */
		ignore_signal(sig);
	sigprocmask(SIG_BLOCK, &block, &s->waitmask);
	for (i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigdelset(&s->waitmask, handled[i]);

	s->ctx.o = o;
	s->ctx.waitmask = &s->waitmask;
	s->ctx.term = &got_term;
	s->ctx.report_fd = s->report_tx;
	s->ctx.parent = s->pid;
	return 0;
}

int server_run(int listen_fd)
{
	struct server *s = &srv;
	const struct echod_opts *o = s->o;
	struct pollfd pfd[2];
	struct timespec ts;
	char err[256];
	int64_t now, wake;
	int r, listening;

	s->lfd = listen_fd;
	if (sandbox_install(err, sizeof(err)) < 0)
		log_fatal("cannot install the sandbox: %s", err);
	log_info("sandbox: %s", sandbox_features());
	pfd[0].fd = s->report_rx;
	pfd[0].events = POLLIN;
	pfd[1].fd = s->lfd;
	pfd[1].events = POLLIN;
	while (!got_term) {
		if (got_chld) {
			got_chld = 0;
			reap(s, 0);
		}
		if (got_usr1) {
			got_usr1 = 0;
			log_stats(s);
		}
		now = now_ms();
		if (s->nheld > 0 && now >= s->backoff_end) {
			retry_held(s);
			now = now_ms();
		}
		if (s->paused && s->active + s->nheld < o->max_conns) {
			s->paused = 0;
			s->resumed = 1;
		}
		listening =
		    !s->paused && s->nheld == 0 && now >= s->backoff_end;
		/* Without the listener, wake for the end of the back-off (a
		 * held connection to retry, or listening again). */
		wake = !listening && !s->paused ? s->backoff_end
		       : s->nheld > 0		? s->backoff_end
						: -1;
		if (wake >= 0) {
			if (wake < now)
				wake = now;
			ts.tv_sec = (time_t)((wake - now) / 1000);
			ts.tv_nsec = (long)((wake - now) % 1000) * 1000000;
		}
		pfd[0].revents = pfd[1].revents = 0;
		r = ppoll(pfd, listening ? 2 : 1, wake >= 0 ? &ts : NULL,
			  &s->waitmask);
		if (r < 0 && errno != EINTR) {
			log_warn("ppoll");
			backoff(s);
		}
		if (r > 0)
			check_pending();
		if (r > 0 && (pfd[0].revents & POLLIN))
			read_reports(s);
		if (r > 0 && listening && (pfd[1].revents & (POLLIN | POLLERR)))
			accept_some(s);
	}
	drain(s);
	log_stats(s);
	return 0;
}
