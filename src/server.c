/*
 * server.c - the parent's loop and books, in the manner of inetd,
 * tcpserver and s6-tcpserverd, over server.h's operations (server_sys.c
 * gives it the kernel, fuzz/server_fuzz.c a simulated one):
 *
 * - Signals reach it as bits from the wait, never as handlers: the loop
 *   does the work, so nothing unsafe ever runs in a handler
 *   (CVE-2024-6387), and nothing arrives between a check and the wait.
 * - At --max-conns the listener is not polled (s6): new connections wait in
 *   the backlog until a child exits.
 * - Accept and fork errors are logged at most once a second per kind, and
 *   those that mean "out of resources" pause the listener briefly.
 * - The parent stays small: no buffers, the tables are the caller's;
 *   fork() copies its page tables, so every page it dirties makes each
 *   connection dearer.
 * - Children report their counters once; the operations say who sent
 *   each report, and one is taken per child we forked: nothing a child can
 *   write changes another child's numbers or the server's state.
 * - A connection accepted when fork() then fails is kept (a few at most,
 *   the listener paused) and served when fork works again; given up with
 *   a FIN after the idle timeout.
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include "net.h"

__attribute__((format(printf, 3, 4))) static void
say(struct server *s, unsigned kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s->ops->log(s->io, kind, fmt, ap);
	va_end(ap);
}

static int64_t now_ms(struct server *s)
{
	return s->ops->now_ms(s->io);
}

/* What each rate-limited kind is called in its lines. */
static const char *const rl_name[SERVER_LOG_RATELIMITED] = {
    [SERVER_LOG_ACCEPT] = "accept", [SERVER_LOG_FORK] = "fork",
    [SERVER_LOG_REJECT] = "reject", [SERVER_LOG_REPORT] = "report refused",
    [SERVER_LOG_WAIT] = "ppoll",
};

/* Whether a warning of this kind may be logged now (at most one per
 * interval). When it may, *suppressed is how many were held back since
 * the last one, for the line to say. */
static int ratelim_take(struct server *s, unsigned kind,
			unsigned long *suppressed)
{
	struct server_ratelim *rl = &s->rl[kind];
	int64_t now = now_ms(s);

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
static void ratelim_flush(struct server *s, unsigned kind)
{
	struct server_ratelim *rl = &s->rl[kind];

	if (rl->suppressed == 0)
		return;
	say(s, kind | SERVER_LOG_SUMMARY, "%s: %lu similar messages suppressed",
	    rl_name[kind], rl->suppressed);
	rl->suppressed = 0;
}

/* "accept: Too many open files", rate-limited. */
static void ratelimited(struct server *s, unsigned kind, int err)
{
	unsigned long n;

	if (!ratelim_take(s, kind, &n))
		return;
	if (n > 0)
		say(s, kind, "%s: %s (%lu similar messages suppressed)",
		    rl_name[kind], strerror(err), n);
	else
		say(s, kind, "%s: %s", rl_name[kind], strerror(err));
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
	uint64_t h = s->cfg.seed ^ 0xcbf29ce484222325ull;
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

static struct server_child *kid_find(struct server *s, pid_t pid)
{
	size_t i;

	for (i = pid_home(s, pid); s->kids[i].pid != 0; i = (i + 1) & s->mask)
		if (s->kids[i].pid == pid)
			return &s->kids[i];
	return NULL;
}

/* Whether a connection counts against --max-per-ip when accepted: with
 * the PROXY protocol it counts once its child claims the address the
 * header named. */
static int count_at_accept(const struct server *s)
{
	return s->ips != NULL && !s->cfg.proxy;
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
	s->kids[i].claimed = 0;
	s->kids[i].counted = (uint8_t)count_at_accept(s);
	memcpy(s->kids[i].addr, addr, 16);
}

static void kid_del(struct server *s, struct server_child *c)
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

static struct server_ipcount *ip_slot(struct server *s, const uint8_t addr[16])
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
	struct server_ipcount *e = ip_slot(s, addr);
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
	struct server_child *c = kid_find(s, pid);
	char who[NET_ADDRSTRLEN] = "?";

	if (c != NULL)
		key_str(c->addr, c->port, who, sizeof(who));
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) {
		s->st->sandbox_kills++;
		say(s, SERVER_LOG_CHILD,
		    "child %ld (%s) killed by SIGSYS: sandbox violation",
		    (long)pid, who);
	} else if (WIFSIGNALED(st)) {
		say(s, SERVER_LOG_CHILD,
		    "child %ld (%s) killed by signal %d (%s)", (long)pid, who,
		    WTERMSIG(st), strsignal(WTERMSIG(st)));
	} else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
		say(s, SERVER_LOG_CHILD, "child %ld (%s) exited with status %d",
		    (long)pid, who, WEXITSTATUS(st));
	}
	if (c == NULL)
		return;
	if (c->counted)
		ip_release(s, c->addr);
	kid_del(s, c);
	s->active--;
	s->st->active--;
}

/* "reject ADDR:PORT reason=max-per-ip active=N" (over the limit, with its
 * count) or "... reason=untrusted-proxy" (count NULL), rate-limited. */
static void log_reject(struct server *s, const uint8_t key[16], uint16_t port,
		       const uint32_t *count)
{
	const char *why = count != NULL ? "max-per-ip" : "untrusted-proxy";
	char who[NET_ADDRSTRLEN], act[24] = "";
	unsigned long n;

	if (!ratelim_take(s, SERVER_LOG_REJECT, &n))
		return;
	key_str(key, port, who, sizeof(who));
	if (count != NULL)
		snprintf(act, sizeof(act), " active=%u", *count);
	if (n > 0)
		say(s, SERVER_LOG_REJECT,
		    "reject %s reason=%s%s (%lu similar messages suppressed)",
		    who, why, act, n);
	else
		say(s, SERVER_LOG_REJECT, "reject %s reason=%s%s", who, why,
		    act);
}

/* A child's claim: the client its PROXY header named, to be counted
 * against --max-per-ip. One claim per child, answered at once; the
 * child serves only on a yes. */
static int take_claim(struct server *s, struct server_child *k,
		      const struct conn_report *r)
{
	struct server_ipcount *e;

	if (s->ips == NULL || !s->cfg.proxy || k->claimed)
		return -1;
	k->claimed = 1;
	e = ip_slot(s, r->addr);
	if (e->count >= s->cfg.max_per_ip) {
		s->st->rejected_per_ip++;
		log_reject(s, r->addr, r->port, &e->count);
		s->ops->verdict(s->io, k->pid, 0);
		return 0;
	}
	e->count++;
	memcpy(k->addr, r->addr, 16);
	k->port = r->port;
	k->counted = 1;
	s->ops->verdict(s->io, k->pid, 1);
	return 0;
}

/* Count the reports waiting, at most max of them. The operations say who
 * sent each (the kernel stamps it, SO_PASSCRED), so a report is taken
 * only from a child we forked and only once: a child can state its own
 * numbers, nobody else's. */
static void read_reports(struct server *s, int max)
{
	struct conn_report r;
	struct server_child *k;
	unsigned long n;
	pid_t pid;
	int i, got;

	for (i = 0; i < max; i++) {
		got = s->ops->report(s->io, &r, &pid);
		if (got == SERVER_REPORT_NONE)
			return;
		k = got == SERVER_REPORT_OK ? kid_find(s, pid) : NULL;
		if (k != NULL && r.magic == CONN_REPORT_MAGIC && !k->reported) {
			k->reported = 1;
			stats_add_report(s->st, &r);
			continue;
		}
		if (k != NULL && r.magic == CONN_CLAIM_MAGIC &&
		    take_claim(s, k, &r) == 0)
			continue;
		s->st->bad_reports++;
		if (ratelim_take(s, SERVER_LOG_REPORT, &n))
			say(s, SERVER_LOG_REPORT,
			    "report refused (%lu similar messages suppressed)",
			    n);
	}
}

/* Reap every child that has exited. A child sends its report before it
 * exits, so once reaped its report is queued: read the queue after
 * reaping and before the child leaves the table, all of it, as whatever
 * other children sent before may stand in front. */
static void reap(struct server *s, int block)
{
	pid_t pids[SERVER_REPORT_BATCH];
	int sts[SERVER_REPORT_BATCH];
	int i, n;

	do {
		n = 0;
		while (n < SERVER_REPORT_BATCH &&
		       (pids[n] = s->ops->reap(s->io, &sts[n], block)) > 0)
			n++;
		if (n > 0)
			read_reports(s, SERVER_REPORT_QUEUE_MAX);
		for (i = 0; i < n; i++)
			child_gone(s, pids[i], sts[i]);
	} while (n == SERVER_REPORT_BATCH);
}

/* ---- accepting ---- */

static void backoff(struct server *s)
{
	s->backoff_end = now_ms(s) + SERVER_BACKOFF_MS;
}

/* Start the child that serves fd. Returns 0 (fd closed, the child's
 * now), or -1 when fork() failed (fd still open, the caller's to keep or
 * close). */
static int spawn(struct server *s, int fd, const struct sockaddr *sa,
		 socklen_t len, const uint8_t key[16], uint16_t port)
{
	int err = 0;
	pid_t pid = s->ops->spawn(s->io, fd, sa, len, &err);

	if (pid < 0) {
		s->st->fork_failures++;
		ratelimited(s, SERVER_LOG_FORK, err);
		backoff(s);
		return -1;
	}
	s->ops->close(s->io, fd, SERVER_CLOSE_NOW);
	kid_add(s, pid, key, port);
	s->active++;
	s->st->active++;
	if (s->active > s->st->peak)
		s->st->peak = s->active;
	return 0;
}

/* Keep a connection fork() could not take: it is served when fork works
 * again. Its per-address slot stays taken meanwhile. */
static void hold(struct server *s, int fd, const struct sockaddr_storage *ss,
		 socklen_t len, const uint8_t key[16], uint16_t port)
{
	struct server_held *h = &s->held[s->nheld++];

	h->fd = fd;
	h->ss = *ss;
	h->len = len;
	h->port = port;
	h->since_ms = now_ms(s);
	memcpy(h->addr, key, 16);
}

static void unhold(struct server *s, unsigned i)
{
	s->held[i] = s->held[--s->nheld];
}

/* Close a held connection with a FIN, not a reset. */
static void give_up(struct server *s, unsigned i, const char *why)
{
	struct server_held *h = &s->held[i];
	char who[NET_ADDRSTRLEN];

	s->ops->close(s->io, h->fd, SERVER_CLOSE_FIN);
	if (count_at_accept(s))
		ip_release(s, h->addr);
	s->st->resource_errors++;
	say(s, SERVER_LOG_GIVE_UP,
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
	int64_t now = now_ms(s);
	unsigned i = 0;
	struct server_held *h;

	while (i < s->nheld) {
		h = &s->held[i];
		if (spawn(s, h->fd, (struct sockaddr *)&h->ss, h->len, h->addr,
			  h->port) == 0) {
			unhold(s, i);
			continue;
		}
		if (s->cfg.idle_timeout_s > 0 &&
		    now - h->since_ms >=
			(int64_t)s->cfg.idle_timeout_s * 1000) {
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
	int fd, n, err;

	for (n = 0; n < SERVER_ACCEPT_BATCH; n++) {
		if (s->active + s->nheld >= s->cfg.max_conns)
			return; /* the loop pauses the listener */
		len = sizeof(ss);
		err = 0;
		fd = s->ops->accept(s->io, &ss, &len, &err);
		if (fd < 0) {
			switch (err) {
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
				ratelimited(s, SERVER_LOG_ACCEPT, err);
				continue;
			default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
				ratelimited(s, SERVER_LOG_ACCEPT, err);
				backoff(s);
				return;
			}
		}
		s->st->accepted++;
		if (s->resumed)
			s->st->deferred++;
		net_addr_key((struct sockaddr *)&ss, key);
		port = net_addr_port((struct sockaddr *)&ss);
		if (s->cfg.proxy &&
		    !parse_cidr_list_match(s->cfg.proxy_from,
					   s->cfg.nproxy_from, key)) {
			s->st->rejected_untrusted_proxy++;
			s->ops->close(s->io, fd, SERVER_CLOSE_NOW);
			log_reject(s, key, port, NULL);
			continue;
		}
		if (count_at_accept(s)) {
			struct server_ipcount *e = ip_slot(s, key);

			if (e->count >= s->cfg.max_per_ip) {
				s->st->rejected_per_ip++;
				s->ops->close(s->io, fd, SERVER_CLOSE_NOW);
				log_reject(s, key, port, &e->count);
				continue;
			}
			e->count++;
		}
		if (spawn(s, fd, (struct sockaddr *)&ss, len, key, port) < 0) {
			/* The listener stays paused while any is held. */
			if (s->nheld < SERVER_HOLD_MAX) {
				hold(s, fd, &ss, len, key, port);
			} else { /* cannot happen: paused before */
				s->ops->close(s->io, fd, SERVER_CLOSE_NOW);
				if (count_at_accept(s))
					ip_release(s, key);
			}
			return;
		}
	}
}

static void log_stats(struct server *s)
{
	char buf[768];
	unsigned k;

	for (k = 0; k < SERVER_LOG_RATELIMITED; k++)
		ratelim_flush(s, k);
	say(s, SERVER_LOG_STATS, "stats %s",
	    stats_format(s->st, buf, sizeof(buf)));
}

static void signal_children(struct server *s, int sig)
{
	size_t i;

	for (i = 0; i <= s->mask; i++)
		if (s->kids[i].pid != 0)
			s->ops->kill(s->io, s->kids[i].pid, sig);
}

static void drain(struct server *s)
{
	int64_t deadline, now;
	unsigned sigs;
	int err;

	s->ops->shutdown(s->io);
	while (s->nheld > 0)
		give_up(s, 0, "shutdown");
	say(s, SERVER_LOG_SHUTDOWN,
	    "shutdown: closed the listener, %llu connections active, "
	    "waiting up to %us",
	    (unsigned long long)s->active, s->cfg.shutdown_timeout_s);
	signal_children(s, SIGTERM);
	deadline = now_ms(s) + (int64_t)s->cfg.shutdown_timeout_s * 1000;
	while (s->active > 0) {
		reap(s, 0);
		read_reports(s, SERVER_REPORT_BATCH);
		if (s->sigs & SERVER_SIG_STATS) {
			s->sigs &= ~SERVER_SIG_STATS;
			log_stats(s);
		}
		now = now_ms(s);
		if (s->active == 0 || now >= deadline)
			break;
		s->sigs &= ~SERVER_SIG_CHLD;
		sigs = 0;
		(void)s->ops->wait(s->io, 0, deadline, &sigs, &err);
		s->sigs |= sigs;
	}
	if (s->active > 0) {
		say(s, SERVER_LOG_KILL,
		    "shutdown: %llu children still active after %us: SIGKILL",
		    (unsigned long long)s->active, s->cfg.shutdown_timeout_s);
		signal_children(s, SIGKILL);
		/* Bounded: a child SIGKILL did not reach (kill() failed) must
		 * not hold the exit; it dies with us (PR_SET_PDEATHSIG). */
		deadline = now_ms(s) + SERVER_KILL_WAIT_MS;
		while (s->active > 0) {
			reap(s, 0);
			now = now_ms(s);
			if (s->active == 0 || now >= deadline)
				break;
			sigs = 0;
			(void)s->ops->wait(s->io, 0, deadline, &sigs, &err);
		}
	}
}

size_t server_slots(uint32_t max_conns)
{
	size_t cap = 16;

	while (cap < 2 * (size_t)max_conns)
		cap *= 2;
	return cap;
}

int server_init(struct server *s, const struct server_cfg *cfg,
		const struct server_ops *ops, void *io, struct stats *st,
		struct server_child *kids, struct server_ipcount *ips)
{
	memset(s, 0, sizeof(*s));
	if (cfg->max_conns == 0 || kids == NULL ||
	    (cfg->max_per_ip > 0 && ips == NULL) ||
	    (cfg->proxy && (cfg->proxy_from == NULL || cfg->nproxy_from == 0 ||
			    (cfg->max_per_ip > 0 && ops->verdict == NULL))))
		return -1;
	s->ops = ops;
	s->io = io;
	s->cfg = *cfg;
	s->st = st;
	s->kids = kids;
	s->ips = cfg->max_per_ip > 0 ? ips : NULL;
	s->mask = server_slots(cfg->max_conns) - 1;
	return 0;
}

void server_serve(struct server *s)
{
	int64_t now, wake;
	unsigned sigs;
	int r, err, listening;

	while (!(s->sigs & SERVER_SIG_TERM)) {
		if (s->sigs & SERVER_SIG_CHLD) {
			s->sigs &= ~SERVER_SIG_CHLD;
			reap(s, 0);
		}
		if (s->sigs & SERVER_SIG_STATS) {
			s->sigs &= ~SERVER_SIG_STATS;
			log_stats(s);
		}
		now = now_ms(s);
		if (s->nheld > 0 && now >= s->backoff_end) {
			retry_held(s);
			now = now_ms(s);
		}
		/* The pause follows the books, wherever they changed (a batch
		 * of accepts that ends exactly at the limit included). */
		if (s->active + s->nheld >= s->cfg.max_conns) {
			s->paused = 1;
		} else if (s->paused) {
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
		sigs = 0;
		err = 0;
		r = s->ops->wait(s->io, listening, wake, &sigs, &err);
		s->sigs |= sigs;
		if (r < 0) {
			/* A wait that fails keeps failing (ENOMEM): without
			 * the limit, a line per turn of the loop. */
			ratelimited(s, SERVER_LOG_WAIT, err);
			backoff(s);
			continue;
		}
		if (r & SERVER_EV_REPORTS)
			read_reports(s, SERVER_REPORT_BATCH);
		/* SIGTERM stops accepting at once: what waits in the
		 * backlog is refused when the listener closes, not forked
		 * only to be told to shut down. */
		if (listening && (r & SERVER_EV_LISTENER) &&
		    !(s->sigs & SERVER_SIG_TERM))
			accept_some(s);
	}
	drain(s);
	log_stats(s);
}
