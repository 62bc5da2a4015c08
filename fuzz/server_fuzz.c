/*
 * server_fuzz.c - fuzz target of the parent's loop and books
 * (src/server.c), the production code unchanged, driven through its
 * operations by a simulated kernel that the fuzz input controls (SPEC
 * section 6).
 *
 * Input: a 2-byte header, then a schedule.
 *   byte 0: bits 0-2 -c - 1 (1..8); bits 3-4 --max-per-ip (0..3); bits 5-7
 *           the spacing of the pids the kernel hands out (collisions and
 *           reuse in the child table)
 *   byte 1: bits 0-1 the idle timeout (0..3 s); bits 2-3 the shutdown
 *           timeout (0..3 s); bits 4-7 the seed of the address table
 * The schedule is read one byte at a time. At every operation that asks
 * the kernel something (accept, spawn, reap, kill with SIGTERM, wait, and
 * reading a report), bytes with the top bit set are events of the world,
 * applied in turn (a connection arrives, a child reports, exits or is
 * killed, a signal arrives, a resource runs out or comes back); then,
 * except for a report, the first byte below 0x80 decides the operation's
 * result (which error, which exited child, how far the clock moves, ...):
 * see the EV_* and the op_* functions. Signals are seen at the next wait,
 * as the real server sees them; time moves only inside wait, so every
 * clock the server reads is one the harness knows. When the schedule runs
 * out the world turns benign: SIGTERM arrives, every call succeeds,
 * children exit when told to (those that ignore SIGTERM when killed), and
 * the server must return within a bounded number of calls.
 * SERVER_FUZZ_TRACE=1 in the environment prints every call (the replay
 * driver makes a readable story of an input).
 *
 * The PROXY protocol: the schedule may start with a 3-byte prefix, 0xf8 |
 * a, then the --proxy-from blocks (byte 1 bits 0-3 and 4-7, byte 2 bits
 * 0-3: indices into blocks[], CIDR strings built with parse_cidr() whose
 * peers the harness knows by hand). a bits 0-1: how many blocks, 0 for no
 * --proxy-protocol; bit 2: a child told no leaves at once without a
 * report (conn.c). After the prefix, event types 14 and 15 are claims
 * (struct conn_report with CONN_CLAIM_MAGIC: the address a PROXY header
 * named, from a pool of CLAIM_ADDRS so that they collide): EV_CLAIM from
 * a live child, a child that dies right after, one that already exited
 * or a pid that is none of ours, once or twice; EV_CLAIM_ALL from every
 * live child. Without the prefix they do nothing, as before.
 *
 * Oracle, checked at every call that finds the books settled (accept,
 * spawn, kill, wait, shutdown) and at the end; the first three also at
 * every call:
 * - active never above -c, and active + held never above it;
 * - the child table holds exactly the children spawned and not yet
 *   reaped, each with its address; active (and the counter) equal their
 *   number; a child is reaped once, only after it exited, and never
 *   signalled after it was reaped (its pid may be someone else's);
 * - per-address counts equal the live and held connections of each
 *   address, never above --max-per-ip; the held table is the connections
 *   whose fork failed and that were neither served nor given up;
 * - the listener is polled exactly when active + held < -c, nothing is
 *   held and no back-off runs, and a wait without the listener wakes by
 *   the end of the back-off when something needs it; nothing is accepted
 *   or spawned once SIGTERM arrived;
 * - every accepted descriptor is closed exactly once: at once when
 *   rejected or handed to a child, with a FIN when given up (after the
 *   idle timeout, or at shutdown);
 * - rate-limited warnings: at most one line per kind per
 *   SERVER_LOG_INTERVAL_MS, and the lines plus the counts of suppressed
 *   lines they state equal the events of that kind, nothing left unsaid
 *   at exit; one line per child that died abnormally;
 * - counters (accepted, fork_failures, rejected_per_ip, deferred, peak,
 *   sandbox_kills, bad_reports, resource_errors and the reports' bytes)
 *   equal what the harness saw; a report counts when it is the first
 *   from a child we forked, whatever else is in the queue;
 * - --proxy-protocol: a peer outside --proxy-from is closed at once
 *   (before any other call), never given a child, and counted in
 *   rejected_untrusted_proxy and the rate-limited reject lines; nothing is
 *   counted against --max-per-ip at accept (held connections neither);
 *   a claim is read as the model says: the first claim of a child still
 *   in the server's table (live, exited, or reaped in the batch being
 *   read), with --proxy-protocol and --max-per-ip, gets exactly one
 *   verdict, before any other call: yes while fewer than --max-per-ip
 *   children are counted under that address (the child is then counted
 *   and filed under the address and port claimed), no otherwise
 *   (rejected_per_ip, a reject line); any other claim (a second one, a
 *   stranger's, without --proxy-protocol or --max-per-ip) gets none and
 *   counts as a refused report; every count equals the children in the
 *   table counted under it (so a counted child's count goes when it is
 *   reaped) and never exceeds --max-per-ip; each child's claimed and
 *   counted flags are the model's;
 * - the drain: the listener closed once, the held connections given up,
 *   every child sent SIGTERM before the first wait, SIGKILL only at the
 *   deadline, a blocking reap only when a child will exit, the loop
 *   returns with no child left; no spin (a wait that returns at once with
 *   nothing to do twice in a row).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include "parse.h"
#include "server.h"
#include "stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR_LEN 2u
#define POOL	64u   /* pids the simulated kernel hands out */
#define FD_MAX	1024u /* connections per run */
#define FD_BASE 100
#define QMAX	512u /* reports queued: the socket's send buffer */
#define ADDRS	4u   /* client addresses; 0 and 1 are one key */
#define KEYS	3u
/* Calls allowed after the schedule ran out. */
#define BENIGN_MAX 20000
/* An event byte has the top bit set; bits 3-6 say what, 0-2 an argument. */
#define EV_CONNECT     0  /* a connection from address arg & 3; arg & 4: two */
#define EV_REPORT      1  /* live child arg reports */
#define EV_REPORT2     2  /* live child arg reports twice */
#define EV_EXIT	       3  /* live child arg reports and exits 0 */
#define EV_EXIT_STATUS 4  /* live child arg exits with status 3 */
#define EV_SIGSYS      5  /* live child arg killed by the sandbox */
#define EV_SIGKILL     6  /* live child arg killed by SIGKILL (OOM) */
#define EV_SIGSEGV     7  /* live child arg crashes */
#define EV_FORGED      8  /* reports from pids that are no child of ours */
#define EV_MALFORMED   9  /* a message that is no report */
#define EV_SIGNAL      10 /* a signal to the parent */
#define EV_FLOOD       11 /* eight connections from address arg & 3 */
#define EV_BADMAGIC    12 /* live child arg sends a report with a bad magic */
#define EV_FAULT       13 /* a resource runs out until further notice */
/* 14, 15: nothing, unless the claims prefix came (then as below) */
#define EV_CLAIM     14 /* a claim (arg, and the next byte: see claim_event) */
#define EV_CLAIM_ALL 15 /* every live child claims address arg & 3 */
#define CLAIM_ADDRS  4u /* the addresses PROXY headers name */

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(what, __LINE__);                                  \
	} while (0)

/* SERVER_FUZZ_TRACE=1 in the environment: every call on stderr. */
static int tracing = -1;

__attribute__((format(printf, 1, 2))) static void trace(const char *fmt, ...)
{
	va_list ap;

	if (tracing < 0)
		tracing = getenv("SERVER_FUZZ_TRACE") != NULL;
	if (!tracing)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void fail(const char *what, int line)
{
	fprintf(stderr, "server_fuzz: oracle violated: %s (server_fuzz.c:%d)\n",
		what, line);
	abort();
}

enum { K_FREE = 0, K_LIVE, K_ZOMBIE };
enum { F_FREE = 0, F_ACCEPTED, F_HELD, F_SPAWNED, F_CLOSED };

/* A pid of the pool: the child that has it now. */
struct kid {
	int state;
	uint32_t inc; /* which child (pids are reused) */
	unsigned addr;
	uint16_t port;
	int fd;
	int status;
	uint8_t stubborn;  /* ignores SIGTERM (a flush that never ends) */
	uint8_t term_sent; /* SIGTERM from the server */
	uint8_t leaving;   /* will exit (SIGTERM taken) */
	uint8_t killed;	   /* SIGKILL from the server */
	/* its claim (--proxy-protocol): answered, granted (then the server
	 * counts it under caddr), the address and port it named */
	uint8_t answered, granted, caddr;
	uint16_t cport;
};

struct fdent {
	int state;
	unsigned addr;
	uint16_t port;
	int64_t since;
	int untrusted; /* outside --proxy-from: closed at once */
};

struct rep {
	int type; /* SERVER_REPORT_OK or _BAD */
	pid_t pid;
	uint32_t inc; /* the sender, 0: none of ours */
	uint32_t magic;
	uint8_t caddr; /* CONN_CLAIM_MAGIC: the address and port named */
	uint16_t cport;
};

struct pending {
	unsigned addr;
	uint16_t port;
};

struct sim {
	struct server *s;
	struct stats st;
	struct server_cfg cfg;
	const uint8_t *sched;
	size_t sched_len, sched_off;
	int benign;
	long benign_calls;
	int64_t now;
	pid_t pid_base, pid_step;
	unsigned pid_cursor;
	int last_freed; /* pool index, -1: none */
	uint32_t incs;
	struct kid kids[POOL];
	struct fdent fds[FD_MAX];
	unsigned nfds;
	/* kept as states change: children and descriptors in each state,
	 * and what each address's count should be (its unreaped children
	 * and held connections) */
	unsigned nkids[3], nfd[5], key_n[KEYS];
	struct pending backlog[64];
	unsigned nbacklog;
	uint16_t next_port;
	struct rep q[QMAX];
	unsigned qhead, qlen;
	unsigned sig_pending;
	int fault_accept, fault_fork, fault_wait; /* errno, 0: none */
	/* the phase */
	int term_delivered, shut, returned;
	int64_t drain_deadline;
	int kill_phase;
	/* the model */
	uint64_t m_accepted, m_fork_failures, m_rejected, m_deferred, m_peak;
	uint64_t m_sandbox_kills, m_bad_reports, m_bytes_in, m_give_ups;
	uint64_t m_abnormal, m_events[SERVER_LOG_RATELIMITED];
	int64_t m_backoff_end;
	int pause_seen, deferred_mode;
	uint64_t stats_delivered;
	uint8_t counted[FD_MAX + 1]; /* which child's report was counted */
	/* what was logged */
	uint64_t lines[SERVER_LOG_KINDS], said[SERVER_LOG_RATELIMITED];
	int64_t last_line[SERVER_LOG_RATELIMITED];
	/* no spin */
	int idle_waits;
	/* --proxy-protocol: the peers inside --proxy-from (a bit per
	 * address), claims on (the prefix), denied children leave at once */
	unsigned trusted;
	int claims, deny_exits;
	uint64_t m_untrusted, verdicts;
	int must_close;	 /* an untrusted peer's descriptor, -1: none */
	int verdict_due; /* a valid claim was read: its verdict next */
	pid_t verdict_pid;
	int verdict_ok;
	uint8_t reaping[POOL]; /* reaped, still in the server's table */
};

static const int accept_errs[] = {ECONNABORTED, EPROTO,	 EPERM,	 EMFILE,
				  ENFILE,	ENOBUFS, ENOMEM, EINTR};

/* ---- the world ---- */

static pid_t pid_of(const struct sim *w, unsigned i)
{
	return w->pid_base + (pid_t)i * w->pid_step;
}

static int kid_index(const struct sim *w, pid_t pid)
{
	unsigned i;

	for (i = 0; i < POOL; i++)
		if (pid_of(w, i) == pid)
			return (int)i;
	return -1;
}

static unsigned count_kids(const struct sim *w, int state)
{
	return w->nkids[state];
}

/* The n-th (mod their number) child in a state, or -1. */
static int nth_kid(const struct sim *w, int state, unsigned n)
{
	unsigned i, c = count_kids(w, state);

	if (c == 0)
		return -1;
	n %= c;
	for (i = 0; i < POOL; i++)
		if (w->kids[i].state == state && n-- == 0)
			return (int)i;
	return -1;
}

static unsigned unreaped(const struct sim *w)
{
	return count_kids(w, K_LIVE) + count_kids(w, K_ZOMBIE);
}

static unsigned held(const struct sim *w)
{
	return w->nfd[F_HELD];
}

static unsigned addr_key(unsigned addr)
{
	return addr <= 1 ? 0 : addr - 1;
}

static void set_kid(struct sim *w, unsigned i, int state)
{
	struct kid *k = &w->kids[i];

	if (k->state == K_FREE && state != K_FREE)
		w->key_n[addr_key(k->addr)]++;
	else if (k->state != K_FREE && state == K_FREE)
		w->key_n[addr_key(k->addr)]--;
	w->nkids[k->state]--;
	w->nkids[state]++;
	k->state = state;
}

static void set_fd(struct sim *w, struct fdent *f, int state)
{
	if (f->state != F_HELD && state == F_HELD)
		w->key_n[addr_key(f->addr)]++;
	else if (f->state == F_HELD && state != F_HELD)
		w->key_n[addr_key(f->addr)]--;
	w->nfd[f->state]--;
	w->nfd[state]++;
	f->state = state;
}

static void queue_report(struct sim *w, int type, pid_t pid, uint32_t inc,
			 uint32_t magic)
{
	struct rep *r;

	if (w->qlen == QMAX)
		return; /* the queue is full: the sender gives up */
	r = &w->q[(w->qhead + w->qlen++) % QMAX];
	r->type = type;
	r->pid = pid;
	r->inc = inc;
	r->magic = magic;
	r->caddr = 0;
	r->cport = 0;
}

/* A claim: the client address a PROXY header named (CLAIM_ADDRS). */
static void queue_claim(struct sim *w, pid_t pid, uint32_t inc, unsigned addr,
			uint16_t port)
{
	if (w->qlen == QMAX)
		return;
	queue_report(w, SERVER_REPORT_OK, pid, inc, CONN_CLAIM_MAGIC);
	w->q[(w->qhead + w->qlen - 1) % QMAX].caddr = (uint8_t)addr;
	w->q[(w->qhead + w->qlen - 1) % QMAX].cport = port;
	trace("  claim from pid %d (child #%u): address %u port %u\n", (int)pid,
	      inc, addr, port);
}

static void kid_report(struct sim *w, unsigned i, uint32_t magic)
{
	queue_report(w, SERVER_REPORT_OK, pid_of(w, i), w->kids[i].inc, magic);
}

/* A child exits; a clean exit sends its report first, as conn_run()
 * does (its error exits leave before serving, without one). */
static void kid_exit_as(struct sim *w, unsigned i, int status, int report)
{
	struct kid *k = &w->kids[i];

	if (k->state != K_LIVE)
		return;
	if (status == 0 && report)
		kid_report(w, i, CONN_REPORT_MAGIC);
	set_kid(w, i, K_ZOMBIE);
	k->status = status;
	w->sig_pending |= SERVER_SIG_CHLD;
}

static void kid_exit(struct sim *w, unsigned i, int status)
{
	kid_exit_as(w, i, status, 1);
}

static int sig_status(int sig)
{
	return sig & 0x7f; /* as wait() reports a death by signal */
}

static void connect_from(struct sim *w, unsigned addr)
{
	struct pending *p;

	if (w->nbacklog == sizeof(w->backlog) / sizeof(w->backlog[0]) ||
	    w->nfds + w->nbacklog >= FD_MAX)
		return; /* the backlog is full: the SYN is dropped */
	p = &w->backlog[w->nbacklog++];
	p->addr = addr % ADDRS;
	p->port = w->next_port++;
}

/* EV_CLAIM: arg bits 0-1 which child, bit 2 the claim sent twice; the
 * next schedule byte (0 when none): bits 0-1 the address named, bits 2-3
 * the port, bits 4-5 the sender: 0 a live child, 1 a live child that then
 * exits (its claim read after its death), 2 a child that exited (the
 * claim behind its report), 3 a pid that is no child of ours. */
static void claim_event(struct sim *w, unsigned arg)
{
	static const uint16_t ports[4] = {41000, 41001, 0, 65535};
	unsigned p = 0, who, n;
	int i;

	if (w->sched_off < w->sched_len)
		p = w->sched[w->sched_off++];
	who = (p >> 4) & 3;
	if (who == 3) {
		i = -1;
	} else {
		i = nth_kid(w, who == 2 ? K_ZOMBIE : K_LIVE, arg & 3);
		if (i < 0)
			return;
	}
	for (n = 0; n < (arg & 4 ? 2u : 1u); n++)
		queue_claim(
		    w, i < 0 ? 1 + (pid_t)(arg & 3) : pid_of(w, (unsigned)i),
		    i < 0 ? 0 : w->kids[i].inc, p & 3, ports[(p >> 2) & 3]);
	if (who == 1)
		kid_exit(w, (unsigned)i, 0);
}

static void event(struct sim *w, uint8_t b)
{
	unsigned type = (b >> 3) & 15, arg = b & 7, n;
	int i;

	trace("  event 0x%02x: type %u arg %u\n", b, type, arg);
	switch (type) {
	case EV_CONNECT:
		connect_from(w, arg & 3);
		if (arg & 4)
			connect_from(w, arg & 3);
		break;
	case EV_FLOOD:
		for (n = 0; n < 8; n++)
			connect_from(w, arg & 3);
		break;
	case EV_REPORT:
	case EV_REPORT2:
	case EV_BADMAGIC:
		if ((i = nth_kid(w, K_LIVE, arg)) < 0)
			break;
		kid_report(w, (unsigned)i,
			   type == EV_BADMAGIC ? 0x12345678u
					       : CONN_REPORT_MAGIC);
		if (type == EV_REPORT2)
			kid_report(w, (unsigned)i, CONN_REPORT_MAGIC);
		break;
	case EV_EXIT:
	case EV_EXIT_STATUS:
	case EV_SIGSYS:
	case EV_SIGKILL:
	case EV_SIGSEGV:
		if ((i = nth_kid(w, K_LIVE, arg)) < 0)
			break;
		kid_exit(w, (unsigned)i,
			 type == EV_EXIT	  ? 0
			 : type == EV_EXIT_STATUS ? 3 << 8
			 : type == EV_SIGSYS	  ? sig_status(SIGSYS)
			 : type == EV_SIGKILL	  ? sig_status(SIGKILL)
						  : sig_status(SIGSEGV));
		break;
	case EV_FORGED:
		/* pid 0: a sender outside our pid namespace; others: no
		 * child of ours (the pool never hands them out). */
		for (n = 0; n < (arg == 7 ? 70u : arg + 1); n++)
			queue_report(w, SERVER_REPORT_OK,
				     n & 1 ? 0 : 1 + (pid_t)n, 0,
				     CONN_REPORT_MAGIC);
		break;
	case EV_MALFORMED:
		for (n = 0; n <= arg; n++)
			queue_report(w, SERVER_REPORT_BAD, 0, 0, 0);
		break;
	case EV_SIGNAL: {
		static const unsigned sigs[8] = {SERVER_SIG_STATS,
						 SERVER_SIG_STATS,
						 SERVER_SIG_TERM,
						 SERVER_SIG_TERM,
						 SERVER_SIG_TERM,
						 SERVER_SIG_CHLD,
						 SERVER_SIG_STATS |
						     SERVER_SIG_TERM,
						 SERVER_SIG_CHLD};

		w->sig_pending |= sigs[arg];
		break;
	}
	case EV_CLAIM:
		if (w->claims)
			claim_event(w, arg);
		break;
	case EV_CLAIM_ALL:
		if (!w->claims)
			break;
		for (n = 0; n < POOL; n++)
			if (w->kids[n].state == K_LIVE) {
				queue_claim(w, pid_of(w, n), w->kids[n].inc,
					    arg & 3, (uint16_t)(40000 + n));
				if (arg & 4)
					queue_claim(w, pid_of(w, n),
						    w->kids[n].inc, arg & 3,
						    (uint16_t)(40000 + n));
			}
		break;
	case EV_FAULT:
		switch (arg) {
		case 0:
			w->fault_accept = w->fault_fork = w->fault_wait = 0;
			break;
		case 1:
		case 2:
		case 3:
		case 4:
			w->fault_accept = accept_errs[arg + 2];
			break;
		case 5:
			w->fault_fork = EAGAIN;
			break;
		case 6:
			w->fault_fork = ENOMEM;
			break;
		default:
			w->fault_wait = ENOMEM;
			break;
		}
		break;
	default:
		break;
	}
}

/* The benign world: children told to leave do. */
static void benign_step(struct sim *w)
{
	unsigned i;

	for (i = 0; i < POOL; i++)
		if (w->kids[i].state == K_LIVE && w->kids[i].leaving)
			kid_exit(w, i, 0);
}

/* Apply the events due now. Returns 0, or -1 once the world is benign. */
static int events(struct sim *w)
{
	while (w->sched_off < w->sched_len) {
		if (w->sched[w->sched_off] < 0x80)
			return 0;
		event(w, w->sched[w->sched_off++]);
	}
	if (!w->benign) {
		w->benign = 1;
		w->fault_accept = w->fault_fork = w->fault_wait = 0;
		w->sig_pending |= SERVER_SIG_TERM;
	}
	CHECK(++w->benign_calls < BENIGN_MAX,
	      "the server does not finish in a benign world");
	benign_step(w);
	return -1;
}

/* Apply the events due now and return the decision byte, or -1 once the
 * world is benign. */
static int next(struct sim *w)
{
	if (events(w) < 0)
		return -1;
	return w->sched[w->sched_off++];
}

/* ---- the oracle ---- */

static void sockaddr_of(unsigned addr, uint16_t port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, 192,
					   0,		2,	     1};
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (addr == 0 || addr == 3) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr =
		    htonl(addr == 0 ? 0xc0000201u : 0xc6336407u);
		*len = sizeof(*s4);
	} else {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr == 1 ? mapped : v6, 16);
		*len = sizeof(*s6);
	}
}

/* The key the server should file an address under. */
static int key_of(const uint8_t a[16])
{
	static const uint8_t k0[16] = {[10] = 0xff, [11] = 0xff, 192, 0, 2, 1};
	static const uint8_t k1[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	static const uint8_t k2[16] = {[10] = 0xff, [11] = 0xff, 198,
				       51,	    100,	 7};

	if (memcmp(a, k0, 16) == 0)
		return 0;
	if (memcmp(a, k1, 16) == 0)
		return 1;
	if (memcmp(a, k2, 16) == 0)
		return 2;
	return -1;
}

/* The addresses claims name (net_addr_key() form): all distinct; the
 * last is also peer address 0's key. */
static const uint8_t claim_key[CLAIM_ADDRS][16] = {
    {[10] = 0xff, [11] = 0xff, 203, 0, 113, 7},
    {[10] = 0xff, [11] = 0xff, 203, 0, 113, 8},
    {0x20, 0x01, 0x0d, 0xb8, [15] = 7},
    {[10] = 0xff, [11] = 0xff, 192, 0, 2, 1},
};

/* Whether pool entry i's child is in the server's table: not reaped, or
 * reaped in the batch whose reports the server is reading (it leaves the
 * table after them). */
static int in_table(const struct sim *w, unsigned i)
{
	return w->kids[i].state != K_FREE || w->reaping[i];
}

/* The children in the table counted under claim address a. */
static unsigned claim_count(const struct sim *w, unsigned a)
{
	unsigned i, n = 0;

	for (i = 0; i < POOL; i++)
		if (in_table(w, i) && w->kids[i].granted &&
		    w->kids[i].caddr == a)
			n++;
	return n;
}

/* Checked at every call. */
static void check_always(struct sim *w)
{
	const struct server *s = w->s;

	CHECK(s->active <= w->cfg.max_conns, "more children than -c");
	CHECK(s->nheld <= SERVER_HOLD_MAX, "held table overrun");
	CHECK(s->active + s->nheld <= w->cfg.max_conns,
	      "children and held connections above -c");
}

/* Checked when no bookkeeping is half done: the server is about to
 * accept, spawn, signal, wait or shut down. fd (or -1) is a connection
 * just accepted and counted, on its way to a child. */
static void check_books(struct sim *w, int fd)
{
	const struct server *s = w->s;
	unsigned n = 0, i, k, per_key[KEYS];
	int j, key;
	size_t slot;

	check_always(w);
	/* The child table: exactly the unreaped children. */
	for (slot = 0; slot <= s->mask; slot++) {
		const struct server_child *c = &s->kids[slot];

		if (c->pid == 0)
			continue;
		n++;
		j = kid_index(w, c->pid);
		CHECK(j >= 0, "a pid in the table that was never a child");
		CHECK(w->kids[j].state == K_LIVE ||
			  w->kids[j].state == K_ZOMBIE,
		      "a reaped child still in the table");
		CHECK(c->claimed == w->kids[j].answered,
		      "a child's claim answered, or not, unlike the model");
		CHECK(c->counted == (w->cfg.proxy ? w->kids[j].granted
						  : w->cfg.max_per_ip > 0),
		      "a child counted, or not, unlike the model");
		if (w->kids[j].granted) {
			/* the client its PROXY header named */
			CHECK(c->port == w->kids[j].cport &&
				  memcmp(c->addr, claim_key[w->kids[j].caddr],
					 16) == 0,
			      "a child filed under another client than it "
			      "claimed");
			continue;
		}
		CHECK(c->port == w->kids[j].port,
		      "a child filed under another port");
		key = key_of(c->addr);
		CHECK(key >= 0 && (unsigned)key == addr_key(w->kids[j].addr),
		      "a child filed under another address");
	}
	CHECK(n == unreaped(w), "the child table misses children");
	CHECK(s->active == unreaped(w), "active differs from the children");
	CHECK(w->st.active == s->active, "the active counter differs");
	/* Held connections. */
	CHECK(s->nheld == held(w), "held table differs from fork failures");
	for (i = 0; i < s->nheld; i++) {
		int h = s->held[i].fd - FD_BASE;

		CHECK(h >= 0 && (unsigned)h < w->nfds &&
			  w->fds[h].state == F_HELD,
		      "a held entry that is no held connection");
		for (k = 0; k < i; k++)
			CHECK(s->held[k].fd != s->held[i].fd,
			      "a connection held twice");
	}
	/* Per-address counts: with the PROXY protocol, the children whose
	 * claim was granted, by the address claimed; nothing at accept. */
	if (w->cfg.max_per_ip > 0 && w->cfg.proxy) {
		int dup[CLAIM_ADDRS] = {0};
		unsigned a, cnt;
		size_t t;

		for (slot = 0; slot <= s->mask; slot++) {
			if (s->ips[slot].count == 0)
				continue;
			for (a = 0; a < CLAIM_ADDRS; a++)
				if (memcmp(s->ips[slot].addr, claim_key[a],
					   16) == 0)
					break;
			CHECK(a < CLAIM_ADDRS,
			      "a count for an address no child claimed");
			CHECK(!dup[a], "an address counted in two slots");
			dup[a] = 1;
			CHECK(s->ips[slot].count == claim_count(w, a),
			      "per-address count differs from the children "
			      "counted under it");
			/* and from the server's own table */
			for (cnt = 0, t = 0; t <= s->mask; t++)
				cnt +=
				    s->kids[t].pid != 0 && s->kids[t].counted &&
				    memcmp(s->kids[t].addr, claim_key[a], 16) ==
					0;
			CHECK(s->ips[slot].count == cnt,
			      "per-address count differs from the table's "
			      "counted children");
		}
		for (a = 0; a < CLAIM_ADDRS; a++) {
			CHECK(dup[a] || claim_count(w, a) == 0,
			      "a granted claim not counted");
			CHECK(claim_count(w, a) <= w->cfg.max_per_ip,
			      "per-address count above --max-per-ip");
		}
	} else if (w->cfg.max_per_ip > 0) {
		uint32_t seen[KEYS] = {0};
		int dup[KEYS] = {0};

		memcpy(per_key, w->key_n, sizeof(per_key));
		if (fd >= 0)
			per_key[addr_key(w->fds[fd - FD_BASE].addr)]++;
		for (slot = 0; slot <= s->mask; slot++) {
			if (s->ips[slot].count == 0)
				continue;
			key = key_of(s->ips[slot].addr);
			CHECK(key >= 0, "a count for an unknown address");
			CHECK(!dup[key], "an address counted in two slots");
			dup[key] = 1;
			seen[key] = s->ips[slot].count;
		}
		for (k = 0; k < KEYS; k++) {
			CHECK(seen[k] == per_key[k],
			      "per-address count differs from its connections");
			CHECK(seen[k] <= w->cfg.max_per_ip,
			      "per-address count above --max-per-ip");
		}
	}
	/* Descriptors handed to a child are closed in the parent. */
	CHECK(w->nfd[F_SPAWNED] + w->nfd[F_ACCEPTED] == (fd >= 0),
	      "an accepted descriptor neither served, held nor closed");
	/* Counters. */
	CHECK(w->st.accepted == w->m_accepted, "accepted differs");
	CHECK(w->st.fork_failures == w->m_fork_failures,
	      "fork_failures differs");
	CHECK(w->st.rejected_per_ip == w->m_rejected,
	      "rejected_per_ip differs");
	CHECK(w->st.rejected_untrusted_proxy == w->m_untrusted,
	      "rejected_untrusted_proxy differs");
	CHECK(w->st.deferred == w->m_deferred, "deferred differs");
	CHECK(w->st.peak == w->m_peak, "peak differs");
	CHECK(w->st.sandbox_kills == w->m_sandbox_kills,
	      "sandbox_kills differs");
	CHECK(w->st.bad_reports == w->m_bad_reports, "bad_reports differs");
	CHECK(w->st.bytes_in == w->m_bytes_in,
	      "the reports counted are not those of our children");
	CHECK(w->st.resource_errors == w->m_give_ups,
	      "resource_errors differs");
	/* Warnings: every event said or counted as suppressed. */
	for (k = 0; k < SERVER_LOG_RATELIMITED; k++)
		CHECK(w->m_events[k] ==
			  w->lines[k] + w->said[k] + s->rl[k].suppressed,
		      "a rate-limited event neither logged nor counted");
	CHECK(w->lines[SERVER_LOG_CHILD] == w->m_abnormal,
	      "not one line per child that died abnormally");
}

/* At every call but the clock, the log and the verdict: nothing the
 * server owes from the call before (an untrusted peer's close, a valid
 * claim's verdict). */
static void settled(struct sim *w)
{
	CHECK(w->must_close < 0, "an untrusted peer not closed at once");
	CHECK(!w->verdict_due, "a valid claim without its verdict");
}

/* progress: the call does something (not a wait, a clock or a log). */
static void op_begin(struct sim *w, int progress)
{
	check_always(w);
	CHECK(!w->returned, "an operation after server_serve returned");
	if (progress)
		w->idle_waits = 0;
}

/* ---- the operations ---- */

static void note_backoff(struct sim *w)
{
	w->m_backoff_end = w->now + SERVER_BACKOFF_MS;
}

/* settled(), at a call the server makes only once its books are done:
 * the children reaped before have left its table. */
static void settle(struct sim *w)
{
	settled(w);
	memset(w->reaping, 0, sizeof(w->reaping));
}

/* The pool entry of child #inc while the server may still know it, or -1. */
static int inc_index(const struct sim *w, uint32_t inc)
{
	unsigned i;

	for (i = 0; inc != 0 && i < POOL; i++)
		if (w->kids[i].inc == inc && in_table(w, i))
			return (int)i;
	return -1;
}

/* A claim read: what the server must make of it. The first claim of a
 * child in its table, with --proxy-protocol and --max-per-ip, gets a
 * verdict (yes while the address has fewer than --max-per-ip children
 * counted, the child then counted under it; no: rejected_per_ip); any
 * other is a refused report and gets none. */
static void take_claim_model(struct sim *w, const struct rep *q)
{
	int i = inc_index(w, q->inc);
	struct kid *k;

	if (i < 0 || !w->cfg.proxy || w->cfg.max_per_ip == 0 ||
	    w->kids[i].answered) {
		w->m_bad_reports++;
		w->m_events[SERVER_LOG_REPORT]++;
		return;
	}
	k = &w->kids[i];
	k->answered = 1;
	w->verdict_due = 1;
	w->verdict_pid = q->pid;
	w->verdict_ok = claim_count(w, q->caddr) < w->cfg.max_per_ip;
	if (w->verdict_ok) {
		k->granted = 1;
		k->caddr = q->caddr;
		k->cport = q->cport;
	} else {
		w->m_rejected++;
		w->m_events[SERVER_LOG_REJECT]++;
	}
}

static void op_verdict(void *io, pid_t pid, int ok)
{
	struct sim *w = io;
	int i = kid_index(w, pid);

	op_begin(w, 1);
	trace("%lld verdict pid %d: %s\n", (long long)w->now, (int)pid,
	      ok ? "serve" : "over --max-per-ip");
	CHECK(w->cfg.proxy && w->cfg.max_per_ip > 0,
	      "a verdict without --proxy-protocol and --max-per-ip");
	CHECK(w->verdict_due, "a verdict for no valid claim");
	CHECK(pid == w->verdict_pid && ok == w->verdict_ok,
	      "a verdict for another child, or the other answer");
	w->verdict_due = 0;
	w->verdicts++;
	/* Told no, the child leaves without a report (conn.c). */
	if (!ok && w->deny_exits && i >= 0 && w->kids[i].state == K_LIVE)
		kid_exit_as(w, (unsigned)i, 0, 0);
}

static int op_accept(void *io, struct sockaddr_storage *ss, socklen_t *len,
		     int *err)
{
	struct sim *w = io;
	int b, e = 0;
	struct pending p;
	struct fdent *f;

	op_begin(w, 1);
	settle(w);
	check_books(w, -1);
	CHECK(!w->term_delivered, "accept after SIGTERM");
	CHECK(!w->shut, "accept after the listener was closed");
	CHECK(unreaped(w) + held(w) < w->cfg.max_conns, "accept at -c");
	CHECK(held(w) == 0, "accept while a connection is held");
	b = next(w);
	if (w->pause_seen) {
		w->pause_seen = 0;
		w->deferred_mode = 1;
	}
	if (b >= 0 && (b & 15) >= 8)
		e = accept_errs[(b & 15) - 8];
	else if (b >= 0 && w->fault_accept)
		e = w->fault_accept;
	if ((e == ECONNABORTED || e == EPROTO || e == EPERM) &&
	    w->nbacklog == 0)
		e = EAGAIN; /* nothing to abort */
	if (e == 0 && w->nbacklog == 0)
		e = EAGAIN;
	if (e != 0) {
		*err = e;
		if (e == EAGAIN) {
			w->deferred_mode = 0;
		} else if (e != EINTR) {
			w->m_events[SERVER_LOG_ACCEPT]++;
			if (e != ECONNABORTED && e != EPROTO && e != EPERM)
				note_backoff(w);
		}
		if (e == ECONNABORTED || e == EPROTO || e == EPERM)
			memmove(w->backlog, w->backlog + 1,
				--w->nbacklog * sizeof(w->backlog[0]));
		trace("%lld accept -> %s\n", (long long)w->now, strerror(e));
		return -1;
	}
	p = w->backlog[0];
	memmove(w->backlog, w->backlog + 1,
		--w->nbacklog * sizeof(w->backlog[0]));
	sockaddr_of(p.addr, p.port, ss, len);
	f = &w->fds[w->nfds];
	f->addr = p.addr;
	set_fd(w, f, F_ACCEPTED);
	f->port = p.port;
	f->since = w->now;
	w->m_accepted++;
	if (w->deferred_mode)
		w->m_deferred++;
	f->untrusted = 0;
	if (w->cfg.proxy) {
		/* Outside --proxy-from: the server must close it at once;
		 * nothing is counted against --max-per-ip at accept. */
		if (!((w->trusted >> p.addr) & 1)) {
			f->untrusted = 1;
			w->m_untrusted++;
			w->m_events[SERVER_LOG_REJECT]++;
			w->must_close = FD_BASE + (int)w->nfds;
		}
	} else if (w->cfg.max_per_ip > 0) {
		/* Over --max-per-ip: the server must close it at once. */
		if (w->key_n[addr_key(p.addr)] >= w->cfg.max_per_ip) {
			w->m_rejected++;
			w->m_events[SERVER_LOG_REJECT]++;
		}
	}
	trace("%lld accept -> fd %d from address %u%s\n", (long long)w->now,
	      FD_BASE + (int)w->nfds, p.addr,
	      f->untrusted ? " (untrusted proxy)" : "");
	return FD_BASE + (int)w->nfds++;
}

static struct fdent *fd_ent(struct sim *w, int fd)
{
	CHECK(fd >= FD_BASE && (unsigned)(fd - FD_BASE) < w->nfds,
	      "a descriptor that was never accepted");
	return &w->fds[fd - FD_BASE];
}

static pid_t op_spawn(void *io, int fd, const struct sockaddr *sa,
		      socklen_t len, int *err)
{
	struct sim *w = io;
	struct fdent *f = fd_ent(w, fd);
	struct sockaddr_storage want;
	socklen_t wantlen;
	struct kid *k;
	unsigned i;
	int b, idx = -1;

	op_begin(w, 1);
	settle(w);
	CHECK(!f->untrusted, "a child for a peer outside --proxy-from");
	CHECK(f->state == F_ACCEPTED || f->state == F_HELD,
	      "spawn for a descriptor that is not waiting for a child");
	check_books(w, f->state == F_ACCEPTED ? fd : -1);
	CHECK(!w->term_delivered, "spawn after SIGTERM");
	CHECK(unreaped(w) + held(w) + (f->state == F_ACCEPTED) <=
		  w->cfg.max_conns,
	      "spawn above -c");
	sockaddr_of(f->addr, f->port, &want, &wantlen);
	CHECK(len == wantlen && memcmp(sa, &want, len) == 0,
	      "spawn with another client's address");
	b = next(w);
	if (b >= 0 && ((b & 7) >= 6 || w->fault_fork)) {
		*err = (b & 7) == 7    ? ENOMEM
		       : w->fault_fork ? w->fault_fork
				       : EAGAIN;
		w->m_fork_failures++;
		w->m_events[SERVER_LOG_FORK]++;
		note_backoff(w);
		set_fd(w, f, F_HELD);
		trace("%lld spawn fd %d -> %s\n", (long long)w->now, fd,
		      strerror(*err));
		return -1;
	}
	/* A pid: the most recently freed one (the kernel reuses pids), or
	 * the next free one after the last handed out. */
	if (b >= 0 && (b & 0x20) && w->last_freed >= 0 &&
	    w->kids[w->last_freed].state == K_FREE)
		idx = w->last_freed;
	for (i = 0; idx < 0 && i < POOL; i++) {
		unsigned c = (w->pid_cursor + i) % POOL;

		if (w->kids[c].state == K_FREE) {
			idx = (int)c;
			w->pid_cursor = c + 1;
		}
	}
	CHECK(idx >= 0, "pid pool exhausted");
	k = &w->kids[idx];
	memset(k, 0, sizeof(*k));
	k->inc = ++w->incs;
	k->addr = f->addr;
	k->fd = fd;
	k->port = f->port;
	set_kid(w, (unsigned)idx, K_LIVE);
	set_fd(w, f, F_SPAWNED);
	if (unreaped(w) > w->m_peak)
		w->m_peak = unreaped(w);
	/* The child may be gone before the server files it. */
	if (b >= 0 && ((b >> 3) & 3) == 1)
		kid_exit(w, (unsigned)idx, 0);
	else if (b >= 0 && ((b >> 3) & 3) == 2)
		kid_exit(w, (unsigned)idx, sig_status(SIGSYS));
	else if (b >= 0 && ((b >> 3) & 3) == 3)
		k->stubborn = 1;
	trace("%lld spawn fd %d -> pid %d%s\n", (long long)w->now, fd,
	      (int)pid_of(w, (unsigned)idx),
	      k->state == K_ZOMBIE ? " (already exited)"
	      : k->stubborn	   ? " (ignores SIGTERM)"
				   : "");
	return pid_of(w, (unsigned)idx);
}

static void op_close(void *io, int fd, int how)
{
	struct sim *w = io;
	struct fdent *f = fd_ent(w, fd);

	op_begin(w, 1);
	if (fd == w->must_close)
		w->must_close = -1;
	settle(w);
	trace("%lld close fd %d%s\n", (long long)w->now, fd,
	      how == SERVER_CLOSE_FIN ? " with a FIN" : "");
	CHECK(f->state != F_CLOSED, "a descriptor closed twice");
	if (how == SERVER_CLOSE_FIN) {
		/* Given up: only a held one, after the idle timeout or at
		 * shutdown. */
		CHECK(f->state == F_HELD, "FIN-close of a connection not held");
		CHECK(w->shut || (w->cfg.idle_timeout_s > 0 &&
				  w->now - f->since >=
				      (int64_t)w->cfg.idle_timeout_s * 1000),
		      "a held connection given up before the idle timeout");
		w->m_give_ups++;
	} else {
		CHECK(how == SERVER_CLOSE_NOW, "close: unknown how");
		CHECK(f->state == F_SPAWNED || f->state == F_ACCEPTED,
		      "close of a held connection without a FIN");
		if (f->state == F_ACCEPTED && f->untrusted) {
			CHECK(w->cfg.proxy, "untrusted without proxy");
		} else if (f->state == F_ACCEPTED) {
			/* only when over --max-per-ip, counted at accept */
			CHECK(w->cfg.max_per_ip > 0 && !w->cfg.proxy,
			      "a connection closed unserved");
			CHECK(w->key_n[addr_key(f->addr)] >= w->cfg.max_per_ip,
			      "a connection rejected under --max-per-ip");
		}
	}
	set_fd(w, f, F_CLOSED);
}

static pid_t op_reap(void *io, int *status, int block)
{
	struct sim *w = io;
	int b, i, j;

	op_begin(w, 1);
	settled(w);
	b = next(w);
	if (block && count_kids(w, K_ZOMBIE) == 0) {
		/* Only a child that was killed, or that took its SIGTERM,
		 * will ever exit. */
		for (j = 0; j < (int)POOL; j++)
			if (w->kids[j].state == K_LIVE &&
			    (w->kids[j].leaving ||
			     (w->kids[j].term_sent && !w->kids[j].stubborn)))
				break;
		if (j < (int)POOL)
			kid_exit(w, (unsigned)j, 0);
		else
			CHECK(count_kids(w, K_LIVE) == 0,
			      "a blocking reap that would never return");
	}
	i = nth_kid(w, K_ZOMBIE, b >= 0 ? (unsigned)b : 0);
	trace("%lld reap%s -> %d\n", (long long)w->now,
	      block ? " (blocking)" : "",
	      i < 0 ? count_kids(w, K_LIVE) > 0 ? 0 : -1
		    : (int)pid_of(w, (unsigned)i));
	if (i < 0)
		return count_kids(w, K_LIVE) > 0 ? 0 : -1;
	*status = w->kids[i].status;
	if (WIFSIGNALED(*status) && WTERMSIG(*status) == SIGSYS)
		w->m_sandbox_kills++;
	if (!(WIFEXITED(*status) && WEXITSTATUS(*status) == 0))
		w->m_abnormal++;
	set_kid(w, (unsigned)i, K_FREE);
	w->reaping[i] = 1; /* until its batch's reports are read */
	w->last_freed = i;
	return pid_of(w, (unsigned)i);
}

static void op_kill(void *io, pid_t pid, int sig)
{
	struct sim *w = io;
	int i = kid_index(w, pid), b;
	struct kid *k;

	op_begin(w, 1);
	settle(w);
	trace("%lld kill %d %s\n", (long long)w->now, (int)pid,
	      sig == SIGTERM   ? "SIGTERM"
	      : sig == SIGKILL ? "SIGKILL"
			       : "?");
	check_books(w, -1);
	CHECK(i >= 0 && w->kids[i].state != K_FREE,
	      "a signal to a pid that is no child of ours (any more)");
	CHECK(w->shut, "children signalled before shutdown");
	k = &w->kids[i];
	if (sig == SIGTERM) {
		CHECK(!k->term_sent, "SIGTERM twice");
		CHECK(!w->kill_phase, "SIGTERM after SIGKILL");
		k->term_sent = 1;
		if (k->state != K_LIVE || k->stubborn)
			return;
		b = next(w);
		if (b < 0 || (b & 1))
			kid_exit(w, (unsigned)i, 0);
		else
			k->leaving = 1;
		return;
	}
	CHECK(sig == SIGKILL, "a signal other than SIGTERM and SIGKILL");
	CHECK(w->now >= w->drain_deadline, "SIGKILL before the deadline");
	w->kill_phase = 1;
	CHECK(!k->killed, "SIGKILL twice");
	k->killed = 1;
	kid_exit(w, (unsigned)i, sig_status(SIGKILL)); /* at once */
}

static int op_wait(void *io, int listener, int64_t deadline, unsigned *sigs,
		   int *err)
{
	struct sim *w = io;
	int b, ev = 0, mode;
	int64_t step, wake;
	unsigned total = unreaped(w) + held(w);
	int want, must_wake;

	op_begin(w, 0);
	settle(w);
	check_books(w, -1);
	CHECK(deadline >= -1, "a deadline before the epoch");
	if (!w->shut) {
		/* Listen exactly when there is room, nothing held and no
		 * back-off. */
		want = total < w->cfg.max_conns && held(w) == 0 &&
		       w->now >= w->m_backoff_end;
		CHECK(listener == want,
		      want ? "listener not polled though there is room"
			   : "listener polled at -c, while holding or in "
			     "back-off");
		/* Wake for the end of the back-off when a held connection
		 * waits for it or the listener does. */
		must_wake = held(w) > 0 || (!want && total < w->cfg.max_conns);
		wake = w->m_backoff_end > w->now ? w->m_backoff_end : w->now;
		if (must_wake)
			CHECK(deadline >= 0 && deadline <= wake,
			      "no wake-up at the end of the back-off");
		if (total >= w->cfg.max_conns)
			w->pause_seen = 1;
	} else {
		unsigned i;

		/* Every child was told to finish before the first wait. */
		for (i = 0; i < POOL; i++)
			if (w->kids[i].state != K_FREE)
				CHECK(w->kids[i].term_sent,
				      "a child not sent SIGTERM at shutdown");
		CHECK(!listener, "listener polled after shutdown");
		CHECK(deadline >= 0 && deadline <= w->drain_deadline,
		      "drain waits past its deadline");
		CHECK(!w->kill_phase, "wait after SIGKILL");
	}
	b = next(w);
	/* Time. */
	if (b < 0) {
		step = deadline >= 0 ? deadline - w->now : 10;
	} else {
		switch (b & 7) {
		case 0:
			step = 0;
			break;
		case 1:
			step = 1;
			break;
		case 2:
			step = 7;
			break;
		case 3:
			step = 40;
			break;
		case 4:
			step = deadline >= 0 ? deadline - w->now : 100;
			break;
		case 5:
			step = SERVER_BACKOFF_MS + 1;
			break;
		case 6:
			step = SERVER_LOG_INTERVAL_MS;
			break;
		default:
			step = 7000; /* past every timeout */
			break;
		}
	}
	if (step < 0)
		step = 0;
	mode = b < 0 ? 0 : (b >> 3) & 3;
	if (b >= 0 && (b & 0x20))
		w->sig_pending |= SERVER_SIG_CHLD; /* spurious */
	if (b >= 0 && w->fault_wait)
		mode = 2;
	/* No spin: a wait that ends at once with nothing to do, twice in a
	 * row with nothing done between, is a busy loop. */
	if (deadline >= 0 && deadline <= w->now && w->sig_pending == 0 &&
	    w->qlen == 0 && !(listener && w->nbacklog > 0)) {
		CHECK(++w->idle_waits <= 2, "the loop spins");
	} else {
		w->idle_waits = 0;
	}
	w->now += step;
	trace("%lld wait%s deadline %lld: +%lld ms, signals %#x%s\n",
	      (long long)(w->now - step), listener ? " (listener)" : "",
	      (long long)deadline, (long long)step, w->sig_pending,
	      mode == 2	  ? ", fails"
	      : mode == 1 ? ", spurious"
			  : "");
	*sigs = w->sig_pending;
	if (w->sig_pending & SERVER_SIG_TERM)
		w->term_delivered = 1;
	if (w->sig_pending & SERVER_SIG_STATS)
		w->stats_delivered++;
	w->sig_pending = 0;
	if (mode == 2) {
		*err = ENOMEM;
		if (!w->shut) {
			w->m_events[SERVER_LOG_WAIT]++;
			note_backoff(w);
		}
		return -1;
	}
	if (mode == 3)
		return 0; /* interrupted */
	if (w->qlen > 0 || mode == 1)
		ev |= SERVER_EV_REPORTS;
	if (listener && (w->nbacklog > 0 || mode == 1))
		ev |= SERVER_EV_LISTENER;
	return ev;
}

static int op_report(void *io, struct conn_report *r, pid_t *pid)
{
	struct sim *w = io;
	struct rep q;

	op_begin(w, 0);
	settled(w);
	(void)events(w); /* a report may arrive meanwhile */
	if (w->qlen == 0) {
		/* All read: the children reaped before leave the table. */
		memset(w->reaping, 0, sizeof(w->reaping));
		return SERVER_REPORT_NONE;
	}
	trace("%lld report from pid %d (child #%u)%s\n", (long long)w->now,
	      (int)w->q[w->qhead].pid, w->q[w->qhead].inc,
	      w->q[w->qhead].type != SERVER_REPORT_OK ? ", malformed" : "");
	q = w->q[w->qhead];
	w->qhead = (w->qhead + 1) % QMAX;
	w->qlen--;
	memset(r, 0, sizeof(*r));
	r->magic = q.magic;
	r->reason = CLOSE_EOF;
	r->bytes_in = q.inc;
	*pid = q.pid;
	if (q.magic == CONN_CLAIM_MAGIC) {
		memcpy(r->addr, claim_key[q.caddr], 16);
		r->port = q.cport;
		take_claim_model(w, &q);
		return q.type;
	}
	/* The first report of a child we forked counts, with its magic,
	 * even when the child was reaped (and its pid reused) before the
	 * server read it: it was sent before the child exited. Anything else
	 * is refused. */
	if (q.type == SERVER_REPORT_OK && q.magic == CONN_REPORT_MAGIC &&
	    q.inc != 0 && !w->counted[q.inc]) {
		w->counted[q.inc] = 1;
		w->m_bytes_in += q.inc;
	} else {
		w->m_bad_reports++;
		w->m_events[SERVER_LOG_REPORT]++;
	}
	return q.type;
}

static void op_shutdown(void *io)
{
	struct sim *w = io;

	op_begin(w, 1);
	settle(w);
	trace("%lld shutdown\n", (long long)w->now);
	check_books(w, -1);
	CHECK(w->term_delivered, "shutdown without SIGTERM");
	CHECK(!w->shut, "shutdown twice");
	w->shut = 1;
	w->drain_deadline = w->now + (int64_t)w->cfg.shutdown_timeout_s * 1000;
}

static int64_t op_now(void *io)
{
	struct sim *w = io;

	op_begin(w, 0);
	return w->now;
}

/* The number before "similar messages suppressed", or 0. */
static unsigned long suppressed_in(const char *line)
{
	const char *m = strstr(line, " similar messages suppressed");
	const char *p = m;

	if (m == NULL)
		return 0;
	while (p > line && p[-1] >= '0' && p[-1] <= '9')
		p--;
	CHECK(p < m, "a suppressed count without a number");
	return strtoul(p, NULL, 10);
}

__attribute__((format(printf, 3, 0))) static void
op_log(void *io, unsigned kind, const char *fmt, va_list ap)
{
	static const char *const names[SERVER_LOG_RATELIMITED] = {
	    "accept: ", "fork: ", "reject ", "report refused", "ppoll: "};
	struct sim *w = io;
	char line[1200];
	unsigned k = kind & ~SERVER_LOG_SUMMARY;
	unsigned long n;

	op_begin(w, 0);
	vsnprintf(line, sizeof(line), fmt, ap);
	trace("%lld log %#x: %s\n", (long long)w->now, kind, line);
	CHECK(k < SERVER_LOG_KINDS, "a log line of an unknown kind");
	n = suppressed_in(line);
	if (kind & SERVER_LOG_SUMMARY) {
		CHECK(k < SERVER_LOG_RATELIMITED,
		      "a summary line of a kind that is not rate-limited");
		CHECK(n > 0, "a summary line with nothing suppressed");
		w->said[k] += n;
		return;
	}
	w->lines[k]++;
	if (k < SERVER_LOG_RATELIMITED) {
		CHECK(strncmp(line, names[k], strlen(names[k])) == 0,
		      "a rate-limited line of another kind");
		CHECK(w->lines[k] == 1 ||
			  w->now - w->last_line[k] >= SERVER_LOG_INTERVAL_MS,
		      "two warnings of a kind within the rate-limit interval");
		w->last_line[k] = w->now;
		w->said[k] += n;
	}
	if (k == SERVER_LOG_CHILD && strstr(line, "sandbox") != NULL)
		CHECK(strstr(line, "SIGSYS") != NULL,
		      "a sandbox kill logged without its signal");
}

static const struct server_ops sim_ops = {
    .accept = op_accept,
    .spawn = op_spawn,
    .close = op_close,
    .reap = op_reap,
    .kill = op_kill,
    .wait = op_wait,
    .report = op_report,
    .shutdown = op_shutdown,
    .now_ms = op_now,
    .verdict = op_verdict,
    .log = op_log,
};

/* --proxy-from blocks, and which of the peer addresses (sockaddr_of: 0
 * 192.0.2.1, 1 ::ffff:192.0.2.1, 2 2001:db8::1, 3 198.51.100.7) each
 * holds, worked out by hand. */
static const struct {
	const char *cidr;
	unsigned holds;
} blocks[16] = {
    {"192.0.2.0/24", 0x3},
    {"2001:db8::/32", 0x4},
    {"198.51.100.7", 0x8},
    {"10.0.0.0/8", 0x0},
    {"::ffff:192.0.2.1/128", 0x3},
    {"[2001:db8::]/127", 0x4},
    {"198.51.100.0/25", 0x8},
    {"::/0", 0xf},
    {"192.0.2.2/31", 0x0},
    {"2001:db8::1", 0x4},
    {"0.0.0.0/0", 0xb},
    {"198.51.100.6/31", 0x8},
    {"192.0.2.1/32", 0x3},
    {"2001:db8:0:0:1::/80", 0x0},
    {"198.51.100.8/29", 0x0},
    {"::ffff:0:0/96", 0xb},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const pid_t steps[8] = {1, 2, 16, 17, 256, 4096, 65536, 3};
	static struct server_child kids[16];
	static struct server_ipcount ips[16];
	static struct parse_cidr from[3];
	static struct sim w;
	struct server s;
	unsigned i, k, nfrom = 0, b[3];

	if (size < HDR_LEN)
		return 0;
	memset(&w, 0, sizeof(w));
	memset(kids, 0, sizeof(kids));
	memset(ips, 0, sizeof(ips));
	w.cfg.max_conns = 1 + (data[0] & 7);
	w.cfg.max_per_ip = (data[0] >> 3) & 3;
	w.cfg.idle_timeout_s = data[1] & 3;
	w.cfg.shutdown_timeout_s = (data[1] >> 2) & 3;
	w.cfg.seed = (uint64_t)(data[1] >> 4) * 0x9e3779b97f4a7c15ull;
	w.pid_base = 100;
	w.pid_step = steps[data[0] >> 5];
	w.last_freed = -1;
	w.nkids[K_FREE] = POOL;
	w.nfd[F_FREE] = FD_MAX;
	w.sched = data + HDR_LEN;
	w.sched_len = size - HDR_LEN;
	w.must_close = -1;
	/* The PROXY prefix: 0xf8 | a, then two bytes of --proxy-from blocks.
	 * a bits 0-1: how many blocks (0: no --proxy-protocol), bit 2: a
	 * child told no leaves at once. Claims (EV_CLAIM, EV_CLAIM_ALL) come
	 * only after it, with or without --proxy-protocol. */
	if (w.sched_len >= 3 && w.sched[0] >= 0xf8) {
		nfrom = w.sched[0] & 3;
		w.deny_exits = (w.sched[0] >> 2) & 1;
		b[0] = w.sched[1] & 15;
		b[1] = w.sched[1] >> 4;
		b[2] = w.sched[2] & 15;
		w.claims = 1;
		w.sched += 3;
		w.sched_len -= 3;
		for (i = 0; i < nfrom; i++) {
			CHECK(parse_cidr(blocks[b[i]].cidr, &from[i]) == 0,
			      "parse_cidr refused a block");
			w.trusted |= blocks[b[i]].holds;
		}
		if (nfrom > 0) {
			w.cfg.proxy = 1;
			w.cfg.proxy_from = from;
			w.cfg.nproxy_from = nfrom;
		}
	}
	w.now = 1000000; /* a monotonic clock is never 0 */
	w.next_port = 40000;
	w.s = &s;
	CHECK(server_slots(w.cfg.max_conns) <= 16, "table size");

	CHECK(server_init(&s, &w.cfg, &sim_ops, &w, &w.st, kids,
			  w.cfg.max_per_ip > 0 ? ips : NULL) == 0,
	      "server_init refused a valid configuration");
	server_serve(&s);
	w.returned = 1;

	/* The end: a drain that finished, nothing left behind. */
	CHECK(w.shut, "returned without shutting down");
	CHECK(unreaped(&w) == 0, "returned with children left");
	check_books(&w, -1);
	for (i = 0; i < w.nfds; i++)
		CHECK(w.fds[i].state == F_CLOSED, "a descriptor left open");
	for (k = 0; k < SERVER_LOG_RATELIMITED; k++)
		CHECK(s.rl[k].suppressed == 0,
		      "suppressed warnings never reported");
	CHECK(w.must_close < 0 && !w.verdict_due,
	      "returned owing a close or a verdict");
	CHECK(w.lines[SERVER_LOG_SHUTDOWN] == 1, "not one shutdown line");
	CHECK(w.lines[SERVER_LOG_KILL] == (uint64_t)w.kill_phase,
	      "a SIGKILL line without SIGKILL, or none with it");
	CHECK(w.lines[SERVER_LOG_STATS] >= 1 &&
		  w.lines[SERVER_LOG_STATS] <= w.stats_delivered + 1 &&
		  w.lines[SERVER_LOG_STATS] >= w.stats_delivered,
	      "not one stats line per SIGUSR1/SIGHUP, plus the last");
	return 0;
}
