/*
 * test_server.c - the parent's two hash tables (src/server.c): the child
 * table (keyed by pid) and the per-address table (keyed by a seeded hash
 * of the client's address), both open addressing with linear probing and
 * backward-shift deletion. The cases place entries in clusters that wrap
 * around the end of the table and delete from them, so that every way an
 * entry may or may not move into the hole is taken (both orders of the
 * hole and the entry, each side of the home test), and check after every
 * step that each live entry is still found from its home.
 *
 * The server runs for real (server_serve) over a scripted kernel: each
 * wait() performs the next step of the script (a connection from an
 * address, served by a chosen pid; a child's exit; SIGTERM) and checks the
 * tables, which belong to the test. fuzz/server_fuzz.c explores the same
 * books at random; this pins the wrap-around cases down.
 *
 * With the PROXY protocol (SPEC 8): peers outside --proxy-from closed and
 * counted at once; nothing counted in the address table at accept, the
 * children's claims of the address their header named granted, refused
 * over --max-per-ip (and logged), released when the child leaves, and
 * refused as bad reports when they come twice, from a stranger or
 * without the PROXY protocol.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "server.h"

#define SLOTS	  16 /* server_slots(MAX_CONNS) */
#define MASK	  (SLOTS - 1)
#define MAX_CONNS 8
#define SEED	  0x5eedull

/* The homes, as server.c computes them: the test finds pids and
 * addresses that collide where it wants. Checked against where the
 * server puts them (step_check). */
static size_t pid_home(pid_t pid)
{
	return (size_t)(((uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ull) >>
			32) &
	       MASK;
}

static void key_of(uint32_t ip, uint8_t key[16])
{
	memset(key, 0, 16);
	key[10] = key[11] = 0xff;
	key[12] = (uint8_t)(ip >> 24);
	key[13] = (uint8_t)(ip >> 16);
	key[14] = (uint8_t)(ip >> 8);
	key[15] = (uint8_t)ip;
}

static size_t addr_home(uint32_t ip)
{
	uint8_t key[16];
	uint64_t h = SEED ^ 0xcbf29ce484222325ull;
	int i;

	key_of(ip, key);
	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	return (size_t)h & MASK;
}

/* The n-th pid (from 1000 up) whose home is `home`. */
static pid_t pid_at(size_t home, int n)
{
	pid_t p;

	for (p = 1000;; p++)
		if (pid_home(p) == home && n-- == 0)
			return p;
}

/* The n-th address 10.0.x.y whose home is `home`. */
static uint32_t ip_at(size_t home, int n)
{
	uint32_t ip;

	for (ip = 0x0a000001;; ip++)
		if (addr_home(ip) == home && n-- == 0)
			return ip;
}

/* ---- the scripted kernel ---- */

enum step_kind {
	CONNECT,
	EXIT,
	EXIT_STRANGER,
	TERM,
	AT,
	IPAT,
	REFUSED, /* a connection from ip, closed unserved */
	HELD,	 /* a connection from ip that fork() cannot take */
	CLAIM,	 /* pid claims ip:where (CONN_CLAIM_MAGIC) */
	REPORT,	 /* pid sends its report */
	JUNK,	 /* pid sends a message of no known kind */
	TICK,	 /* pid ms pass */
	COUNT,	 /* ip's count in the address table is pid */
};

struct step {
	enum step_kind kind;
	pid_t pid;   /* CONNECT: the pid serving it; EXIT: the one leaving;
			AT: the pid in slot `where` (0: empty); IPAT: the
			count in slot `ipwhere`; CLAIM, REPORT, JUNK: the
			sender; TICK: ms; COUNT: the count */
	uint32_t ip; /* CONNECT, REFUSED, HELD, CLAIM, COUNT; IPAT: the
			address in slot `ipwhere` */
	int where;   /* CONNECT: the slot the pid must land in (-1: any);
			CLAIM: the client's port */
	int ipwhere; /* CONNECT: the address's slot (-1: any) */
};

struct live {
	pid_t pid;
	uint32_t ip;
};

static struct sim {
	const struct step *steps;
	int nsteps, next;
	struct server srv;
	struct stats st;
	struct server_child kids[SLOTS];
	struct server_ipcount ips[SLOTS];
	int use_ips;
	/* the model: who lives */
	struct live live[MAX_CONNS];
	int nlive;
	/* pending effects for the server's next calls */
	int accept_pending;
	uint32_t accept_ip;
	pid_t spawn_pid;
	pid_t exits[2 * MAX_CONNS];
	int nexits;
	int strangers; /* exits of pids we never forked, reaped */
	int64_t now;
	int waits_in_drain;
	int exit_on_term; /* children leave when SIGTERMed */
	pid_t unkillable; /* kill() of this pid has no effect */
	unsigned logs[SERVER_LOG_KINDS];
	unsigned kills[2];  /* SIGTERM, SIGKILL sent */
	int spawn_fails;    /* the next spawn() fails (EAGAIN) */
	unsigned closes[2]; /* SERVER_CLOSE_NOW, SERVER_CLOSE_FIN */
	/* the children's messages waiting: report() returns them in order */
	struct {
		struct conn_report r;
		pid_t pid;
	} q[4];
	int nq, qnext;
	/* ops->verdict's answers, in order */
	struct {
		pid_t pid;
		int ok;
	} verdicts[8];
	int nverdicts;
	/* every line logged, the kind first */
	char lines[32][192];
	unsigned line_kind[32];
	int nlines;
} sim;

static int op_accept(void *io, struct sockaddr_storage *ss, socklen_t *len,
		     int *err)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	(void)io;
	if (!sim.accept_pending) {
		*err = EAGAIN;
		return -1;
	}
	sim.accept_pending = 0;
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(40000);
	s4->sin_addr.s_addr = htonl(sim.accept_ip);
	*len = sizeof(*s4);
	return 100;
}

static pid_t op_spawn(void *io, int fd, const struct sockaddr *sa,
		      socklen_t len, int *err)
{
	(void)io;
	(void)fd;
	(void)sa;
	(void)len;
	if (sim.spawn_fails) {
		sim.spawn_fails = 0;
		*err = EAGAIN;
		return -1;
	}
	assert_true(sim.spawn_pid > 0);
	return sim.spawn_pid;
}

static void op_close(void *io, int fd, int how)
{
	(void)io;
	(void)fd;
	sim.closes[how == SERVER_CLOSE_FIN]++;
}

static pid_t op_reap(void *io, int *status, int block)
{
	(void)io;
	(void)block;
	if (sim.nexits == 0)
		return sim.nlive > 0 || sim.srv.active > 0 ? 0 : -1;
	*status = 0;
	return sim.exits[--sim.nexits];
}

static void forget(pid_t pid)
{
	int i;

	for (i = 0; i < sim.nlive; i++)
		if (sim.live[i].pid == pid) {
			sim.live[i] = sim.live[--sim.nlive];
			return;
		}
	fail_msg("pid %d is not alive", (int)pid);
}

static void op_kill(void *io, pid_t pid, int sig)
{
	(void)io;
	sim.kills[sig == SIGKILL]++;
	if (pid == sim.unkillable)
		return;
	if (sig == SIGKILL || sim.exit_on_term) {
		forget(pid);
		sim.exits[sim.nexits++] = pid;
	}
}

static void op_shutdown(void *io)
{
	(void)io;
}

static int64_t op_now(void *io)
{
	(void)io;
	return sim.now;
}

static int op_report(void *io, struct conn_report *r, pid_t *pid)
{
	(void)io;
	if (sim.qnext == sim.nq) {
		sim.nq = sim.qnext = 0;
		return SERVER_REPORT_NONE;
	}
	*r = sim.q[sim.qnext].r;
	*pid = sim.q[sim.qnext].pid;
	sim.qnext++;
	return SERVER_REPORT_OK;
}

static void op_verdict(void *io, pid_t pid, int ok)
{
	(void)io;
	assert_true(sim.nverdicts < 8);
	sim.verdicts[sim.nverdicts].pid = pid;
	sim.verdicts[sim.nverdicts].ok = ok;
	sim.nverdicts++;
}

__attribute__((format(printf, 3, 0))) static void
op_log(void *io, unsigned kind, const char *fmt, va_list ap)
{
	(void)io;
	sim.logs[kind & 0xff]++;
	if (sim.nlines < 32) {
		vsnprintf(sim.lines[sim.nlines], sizeof(sim.lines[0]), fmt, ap);
		sim.line_kind[sim.nlines++] = kind;
	}
}

/* How many lines of this kind say exactly `want`. */
static int logged(unsigned kind, const char *want)
{
	int i, n = 0;

	for (i = 0; i < sim.nlines; i++)
		n +=
		    sim.line_kind[i] == kind && strcmp(sim.lines[i], want) == 0;
	return n;
}

/* The address's count in the server's table (0: not there). */
static uint32_t count_of(uint32_t ip)
{
	uint8_t key[16];
	size_t i;

	key_of(ip, key);
	for (i = 0; i < SLOTS; i++)
		if (sim.ips[i].count > 0 &&
		    memcmp(sim.ips[i].addr, key, 16) == 0)
			return sim.ips[i].count;
	return 0;
}

static void queue(pid_t pid, uint32_t magic, uint32_t ip, uint16_t port)
{
	struct conn_report *r;

	assert_true(sim.nq < 4);
	r = &sim.q[sim.nq].r;
	memset(r, 0, sizeof(*r));
	r->magic = magic;
	r->reason = CLOSE_EOF;
	r->bytes_in = r->bytes_out = 7;
	key_of(ip, r->addr);
	r->port = port;
	sim.q[sim.nq++].pid = pid;
}

/* Every live entry is found from its home, nothing else is in the
 * tables, and the counts are the model's. */
static void check_tables(void)
{
	size_t i, j, used = 0;
	int k;

	for (k = 0; k < sim.nlive; k++) {
		pid_t pid = sim.live[k].pid;

		for (i = pid_home(pid); sim.kids[i].pid != pid;
		     i = (i + 1) & MASK)
			if (sim.kids[i].pid == 0)
				fail_msg("pid %d not found from its home %zu",
					 (int)pid, pid_home(pid));
	}
	for (i = 0; i < SLOTS; i++)
		used += sim.kids[i].pid != 0;
	assert_int_equal(used, sim.nlive);
	assert_int_equal(sim.srv.active, sim.nlive);
	if (!sim.use_ips)
		return;
	used = 0;
	for (k = 0; k < sim.nlive; k++) {
		uint32_t ip = sim.live[k].ip;
		uint8_t key[16];
		uint32_t want = 0;
		int m;

		key_of(ip, key);
		for (m = 0; m < sim.nlive; m++)
			want += sim.live[m].ip == ip;
		for (i = addr_home(ip); memcmp(sim.ips[i].addr, key, 16) != 0 ||
					sim.ips[i].count == 0;
		     i = (i + 1) & MASK)
			if (sim.ips[i].count == 0)
				fail_msg("address %08x not found from its "
					 "home %zu",
					 ip, addr_home(ip));
		assert_int_equal(sim.ips[i].count, want);
	}
	for (j = 0; j < SLOTS; j++)
		used += sim.ips[j].count;
	assert_int_equal(used, sim.nlive);
}

static int op_wait(void *io, int listener, int64_t deadline, unsigned *sigs,
		   int *err)
{
	const struct step *st;

	(void)io;
	(void)err;
	check_tables();
	if (sim.next > 0) {
		/* The step before has had its effect: where did it land? */
		st = &sim.steps[sim.next - 1];
		if (st->kind == CONNECT && st->where >= 0)
			assert_int_equal(sim.kids[st->where].pid, st->pid);
		if (st->kind == CONNECT && st->ipwhere >= 0) {
			uint8_t key[16];

			key_of(st->ip, key);
			assert_memory_equal(sim.ips[st->ipwhere].addr, key, 16);
		}
	}
	if (sim.next >= sim.nsteps) {
		/* Draining: time passes until the deadline. */
		sim.waits_in_drain++;
		assert_true(deadline > sim.now);
		sim.now = deadline;
		return 0;
	}
	st = &sim.steps[sim.next++];
	switch (st->kind) {
	case CONNECT:
		assert_true(listener);
		sim.accept_pending = 1;
		sim.accept_ip = st->ip;
		sim.spawn_pid = st->pid;
		sim.live[sim.nlive].pid = st->pid;
		sim.live[sim.nlive].ip = st->ip;
		sim.nlive++;
		return SERVER_EV_LISTENER;
	case EXIT:
		forget(st->pid);
		sim.exits[sim.nexits++] = st->pid;
		*sigs = SERVER_SIG_CHLD;
		return 0;
	case EXIT_STRANGER:
		sim.exits[sim.nexits++] = st->pid;
		sim.strangers++;
		*sigs = SERVER_SIG_CHLD;
		return 0;
	case TERM:
		*sigs = SERVER_SIG_TERM;
		return 0;
	case AT:
		assert_int_equal(sim.kids[st->where].pid, st->pid);
		return 0;
	case REFUSED:
	case HELD:
		assert_true(listener);
		sim.accept_pending = 1;
		sim.accept_ip = st->ip;
		sim.spawn_pid = 0; /* spawn() must not be called */
		if (st->kind == HELD) {
			sim.spawn_pid = st->pid;
			sim.spawn_fails = 1;
		}
		return SERVER_EV_LISTENER;
	case CLAIM:
		queue(st->pid, CONN_CLAIM_MAGIC, st->ip, (uint16_t)st->where);
		return SERVER_EV_REPORTS;
	case REPORT:
		queue(st->pid, CONN_REPORT_MAGIC, st->ip, 0);
		return SERVER_EV_REPORTS;
	case JUNK:
		queue(st->pid, 0x6a756e6bu, st->ip, 0);
		return SERVER_EV_REPORTS;
	case TICK:
		sim.now += st->pid;
		return 0;
	case COUNT:
		assert_int_equal(count_of(st->ip), (uint32_t)st->pid);
		return 0;
	case IPAT: {
		uint8_t key[16];

		assert_int_equal(sim.ips[st->ipwhere].count, (uint32_t)st->pid);
		if (st->pid > 0) {
			key_of(st->ip, key);
			assert_memory_equal(sim.ips[st->ipwhere].addr, key, 16);
		}
		return 0;
	}
	}
	return 0;
}

static const struct server_ops ops = {
    .accept = op_accept,
    .spawn = op_spawn,
    .close = op_close,
    .reap = op_reap,
    .kill = op_kill,
    .wait = op_wait,
    .report = op_report,
    .shutdown = op_shutdown,
    .now_ms = op_now,
    .log = op_log,
};

/* With the PROXY protocol and --max-per-ip the server answers claims. */
static const struct server_ops proxy_ops = {
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

static void run(const struct step *steps, int n, int use_ips)
{
	struct server_cfg cfg;

	memset(&sim, 0, sizeof(sim));
	sim.steps = steps;
	sim.nsteps = n;
	sim.use_ips = use_ips;
	sim.now = 1;
	sim.exit_on_term = 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = MAX_CONNS;
	cfg.max_per_ip = use_ips ? MAX_CONNS : 0;
	cfg.shutdown_timeout_s = 1;
	cfg.seed = SEED;
	assert_int_equal(server_slots(cfg.max_conns), SLOTS);
	assert_int_equal(server_init(&sim.srv, &cfg, &ops, NULL, &sim.st,
				     sim.kids, use_ips ? sim.ips : NULL),
			 0);
	server_serve(&sim.srv);
	assert_int_equal(sim.next, n);
	assert_int_equal(sim.srv.active, 0);
	assert_int_equal(sim.nlive, 0);
	check_tables();
}

#define C(pid, ip, where, ipwhere)                                             \
	{                                                                      \
		CONNECT, (pid), (ip), (where), (ipwhere)                       \
	}
#define X(pid)                                                                 \
	{                                                                      \
		EXIT, (pid), 0, -1, -1                                         \
	}
#define AT(pid, where)                                                         \
	{                                                                      \
		AT, (pid), 0, (where), -1                                      \
	}
#define IPAT(count, ip, where)                                                 \
	{                                                                      \
		IPAT, (count), (ip), -1, (where)                               \
	}

/*
 * The child table. A cluster [15, 0, 1, 2, 3] (homes 15, 15, 0, 15, 3)
 * loses its first entry: the hole moves from 15 to 2 (an entry past the
 * end moving back over it, then two before it), the entry at 3 stays
 * (its home lies between the hole and it). Then a cluster [14, 15, 0, 1]
 * (homes 14, 15, 15, 0) loses its first entry and nothing moves: each
 * home lies cyclically between the hole and the entry, past the end of
 * the table or not.
 */
static void test_kids_wraparound(void **state)
{
	const pid_t a = pid_at(15, 0), b = pid_at(15, 1), c = pid_at(0, 0),
		    d = pid_at(15, 2), e = pid_at(3, 0);
	const pid_t p = pid_at(14, 0), q = pid_at(15, 3), r = pid_at(15, 4),
		    s = pid_at(0, 1);
	const uint32_t ip = 0x7f000001;
	const struct step steps[] = {
	    C(a, ip, 15, -1),
	    C(b, ip, 0, -1),
	    C(c, ip, 1, -1),
	    C(d, ip, 2, -1),
	    C(e, ip, 3, -1),
	    X(a),
	    /* b, c, d moved back one slot each; e stayed */
	    AT(b, 15),
	    AT(c, 0),
	    AT(d, 1),
	    AT(0, 2),
	    AT(e, 3),
	    X(b),
	    X(c),
	    X(d),
	    X(e),
	    C(p, ip, 14, -1),
	    C(q, ip, 15, -1),
	    C(r, ip, 0, -1),
	    C(s, ip, 1, -1),
	    X(p),
	    /* nothing moved */
	    AT(0, 14),
	    AT(q, 15),
	    AT(r, 0),
	    AT(s, 1),
	    X(s),
	    X(r),
	    X(q),
	    {TERM, 0, 0, -1, -1},
	};

	(void)state;
	run(steps, (int)(sizeof(steps) / sizeof(steps[0])), 0);
}

/*
 * The per-address table, the same two clusters with addresses: each
 * address's count falls to 0 when its only child exits, and the entry is
 * deleted. A second child of an address keeps its entry.
 */
static void test_ips_wraparound(void **state)
{
	const uint32_t a = ip_at(15, 0), b = ip_at(15, 1), c = ip_at(0, 0),
		       d = ip_at(15, 2), e = ip_at(3, 0);
	const uint32_t p = ip_at(14, 0), q = ip_at(15, 3), r = ip_at(15, 4),
		       s = ip_at(0, 1);
	const struct step steps[] = {
	    C(2001, a, -1, 15),
	    C(2002, b, -1, 0),
	    C(2003, c, -1, 1),
	    C(2004, d, -1, 2),
	    C(2005, e, -1, 3),
	    C(2006, b, -1, 0),
	    X(2001),
	    /* b, c, d back one slot each, e stayed; b still counts 2 */
	    IPAT(2, b, 15),
	    IPAT(1, c, 0),
	    IPAT(1, d, 1),
	    IPAT(0, 0, 2),
	    IPAT(1, e, 3),
	    X(2002),
	    IPAT(1, b, 15),
	    X(2003),
	    X(2004),
	    X(2005),
	    X(2006),
	    C(2011, p, -1, 14),
	    C(2012, q, -1, 15),
	    C(2013, r, -1, 0),
	    C(2014, s, -1, 1),
	    X(2011),
	    /* nothing moved */
	    IPAT(0, 0, 14),
	    IPAT(1, q, 15),
	    IPAT(1, r, 0),
	    IPAT(1, s, 1),
	    X(2014),
	    X(2013),
	    X(2012),
	    {TERM, 0, 0, -1, -1},
	};

	(void)state;
	run(steps, (int)(sizeof(steps) / sizeof(steps[0])), 1);
}

/* A pid that is not ours is reaped and logged, the books untouched; the
 * drain waits for children that do not leave at SIGTERM, then SIGKILLs
 * them. */
static void test_stranger_and_drain(void **state)
{
	const struct step steps[] = {
	    C(3001, 0x7f000001, -1, -1),
	    {EXIT_STRANGER, 4242, 0, -1, -1},
	    C(3002, 0x7f000002, -1, -1),
	    {TERM, 0, 0, -1, -1},
	};
	struct server_cfg cfg;

	(void)state;
	memset(&sim, 0, sizeof(sim));
	sim.steps = steps;
	sim.nsteps = 4;
	sim.use_ips = 1;
	sim.now = 1;
	sim.exit_on_term = 0; /* they ignore SIGTERM */
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = MAX_CONNS;
	cfg.max_per_ip = 1;
	cfg.shutdown_timeout_s = 1;
	cfg.seed = SEED;
	assert_int_equal(
	    server_init(&sim.srv, &cfg, &ops, NULL, &sim.st, sim.kids, sim.ips),
	    0);
	server_serve(&sim.srv);
	assert_int_equal(sim.strangers, 1);
	assert_int_equal(sim.logs[SERVER_LOG_CHILD], 0); /* status 0 */
	assert_int_equal(sim.kills[0], 2);		 /* SIGTERM each */
	assert_int_equal(sim.kills[1], 2);		 /* then SIGKILL */
	assert_int_equal(sim.logs[SERVER_LOG_KILL], 1);
	assert_true(sim.waits_in_drain >= 1);
	assert_int_equal(sim.srv.active, 0);
	assert_int_equal(sim.st.accepted, 2);
}

/* A child SIGKILL does not reach (kill() failed): the drain waits for it
 * SERVER_KILL_WAIT_MS at most, then returns without it. */
static void test_drain_kill_fails(void **state)
{
	const struct step steps[] = {
	    C(3001, 0x7f000001, -1, -1),
	    C(3002, 0x7f000002, -1, -1),
	    {TERM, 0, 0, -1, -1},
	};
	struct server_cfg cfg;
	int64_t t0;

	(void)state;
	memset(&sim, 0, sizeof(sim));
	sim.steps = steps;
	sim.nsteps = 3;
	sim.now = 1;
	sim.unkillable = 3002;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = MAX_CONNS;
	cfg.shutdown_timeout_s = 2;
	cfg.seed = SEED;
	assert_int_equal(
	    server_init(&sim.srv, &cfg, &ops, NULL, &sim.st, sim.kids, NULL),
	    0);
	t0 = sim.now;
	server_serve(&sim.srv);
	/* SIGTERM's wait, then SIGKILL's: 2 s + SERVER_KILL_WAIT_MS. */
	assert_int_equal(sim.now - t0, 2000 + SERVER_KILL_WAIT_MS);
	assert_int_equal(sim.kills[0], 2);
	assert_int_equal(sim.kills[1], 2);
	assert_int_equal(sim.logs[SERVER_LOG_KILL], 1);
	assert_int_equal(sim.srv.active, 1);
	assert_int_equal(sim.kids[pid_home(3002)].pid, 3002);
}

static void test_bad_config(void **state)
{
	struct server s;
	struct server_cfg cfg;
	struct stats st;
	struct server_child kids[SLOTS];
	struct server_ipcount ips[SLOTS];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = 0;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, NULL),
			 -1);
	cfg.max_conns = 1;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, NULL, NULL),
			 -1);
	cfg.max_per_ip = 1;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, NULL),
			 -1);
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), 0);
	cfg.max_per_ip = 0;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), 0);
	assert_null(s.ips); /* no limit: no table */
	assert_int_equal(server_slots(1), 16);
	assert_int_equal(server_slots(8), 16);
	assert_int_equal(server_slots(9), 32);
	assert_int_equal(server_slots(1000000), 2097152);
}

/* ---- the PROXY protocol ---- */

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))
#define REFUSE(ip)                                                             \
	{                                                                      \
		REFUSED, 0, (ip), -1, -1                                       \
	}
#define CLAIMS(pid, ip, port)                                                  \
	{                                                                      \
		CLAIM, (pid), (ip), (port), -1                                 \
	}
#define COUNTS(n, ip)                                                          \
	{                                                                      \
		COUNT, (n), (ip), -1, -1                                       \
	}
#define TICKS(ms)                                                              \
	{                                                                      \
		TICK, (ms), 0, -1, -1                                          \
	}
#define TERMS                                                                  \
	{                                                                      \
		TERM, 0, 0, -1, -1                                             \
	}

static struct parse_cidr proxies[2];

/* Serve the script with --proxy-protocol, the proxies 127.0.0.0/8 and
 * 10.0.0.0/8, --max-per-ip max (0: none). */
static void run_proxy(const struct step *steps, int n, uint32_t max_per_ip,
		      int proxy)
{
	struct server_cfg cfg;

	memset(&sim, 0, sizeof(sim));
	sim.steps = steps;
	sim.nsteps = n;
	sim.now = 1;
	sim.exit_on_term = 1;
	assert_int_equal(parse_cidr("127.0.0.0/8", &proxies[0]), 0);
	assert_int_equal(parse_cidr("10.0.0.0/8", &proxies[1]), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = MAX_CONNS;
	cfg.max_per_ip = max_per_ip;
	cfg.shutdown_timeout_s = 1;
	cfg.seed = SEED;
	cfg.proxy = proxy;
	cfg.proxy_from = proxies;
	cfg.nproxy_from = 2;
	assert_int_equal(server_init(&sim.srv, &cfg, &proxy_ops, NULL, &sim.st,
				     sim.kids, sim.ips),
			 0);
	server_serve(&sim.srv);
	assert_int_equal(sim.next, n);
	assert_int_equal(sim.srv.active, 0);
	assert_int_equal(sim.nlive, 0);
	check_tables();
}

/* Peers outside --proxy-from are closed at once (no child), counted,
 * and logged at most once a second, the next line saying how many were
 * held back. */
static void test_proxy_untrusted(void **state)
{
	const struct step steps[] = {
	    REFUSE(IP(192, 0, 2, 1)),
	    C(5001, IP(10, 1, 2, 3), -1, -1),
	    REFUSE(IP(192, 0, 2, 2)),
	    REFUSE(IP(11, 0, 0, 1)),
	    TICKS(SERVER_LOG_INTERVAL_MS),
	    REFUSE(IP(9, 255, 255, 255)),
	    C(5002, IP(127, 0, 0, 1), -1, -1),
	    X(5001),
	    X(5002),
	    TERMS,
	};

	(void)state;
	run_proxy(steps, (int)(sizeof(steps) / sizeof(steps[0])), 0, 1);
	assert_int_equal(sim.st.accepted, 6);
	assert_int_equal(sim.st.rejected_untrusted_proxy, 4);
	assert_int_equal(sim.st.rejected_per_ip, 0);
	assert_int_equal(sim.closes[0], 4 + 2); /* 4 refused, 2 served */
	assert_int_equal(sim.logs[SERVER_LOG_REJECT], 2);
	assert_int_equal(logged(SERVER_LOG_REJECT, "reject 192.0.2.1:40000 "
						   "reason=untrusted-proxy"),
			 1);
	assert_int_equal(logged(SERVER_LOG_REJECT,
				"reject 9.255.255.255:40000 "
				"reason=untrusted-proxy (2 similar "
				"messages suppressed)"),
			 1);
	assert_int_equal(sim.nverdicts, 0);
}

/* --max-per-ip behind proxies: every connection from a proxy is served
 * and nothing is counted at accept (the proxy's address would count all
 * of its clients as one); each child claims the client its header named,
 * one claim answered at a time. */
static void test_proxy_claims(void **state)
{
	const uint32_t proxy = IP(127, 0, 0, 1), client = IP(192, 0, 2, 7),
		       other = IP(198, 51, 100, 9);
	const struct step steps[] = {
	    C(6001, proxy, -1, -1),
	    C(6002, proxy, -1, -1), /* over the limit, were it counted */
	    C(6003, proxy, -1, -1),
	    COUNTS(0, proxy),
	    CLAIMS(6001, client, 5555),
	    COUNTS(1, client),
	    CLAIMS(6002, client, 5556), /* the same client: over */
	    COUNTS(1, client),
	    CLAIMS(6003, other, 7),
	    COUNTS(1, other),
	    X(6002), /* held nothing: releases nothing */
	    COUNTS(1, client),
	    CLAIMS(6001, other, 5555), /* a second claim: refused */
	    CLAIMS(7777, other, 1),    /* a pid we never forked */
	    COUNTS(1, client),
	    COUNTS(1, other),
	    {REPORT, 6001, 0, -1, -1}, /* its report still counts */
	    X(6001),
	    COUNTS(0, client),
	    C(6004, proxy, -1, -1),
	    CLAIMS(6004, client, 5557), /* free again */
	    COUNTS(1, client),
	    C(6005, proxy, -1, -1),
	    C(6006, proxy, -1, -1),
	    CLAIMS(6005, client, 5558), /* over, logged */
	    CLAIMS(6006, client, 5559), /* over, held back */
	    TICKS(SERVER_LOG_INTERVAL_MS),
	    C(6007, proxy, -1, -1),
	    CLAIMS(6007, client, 5560), /* over, logged with the count */
	    X(6003),
	    X(6004),
	    X(6005),
	    X(6006),
	    X(6007),
	    COUNTS(0, client),
	    COUNTS(0, other),
	    TERMS,
	};
	static const struct {
		pid_t pid;
		int ok;
	} want[] = {
	    {6001, 1}, {6002, 0}, {6003, 1}, {6004, 1},
	    {6005, 0}, {6006, 0}, {6007, 0},
	};
	size_t i;

	(void)state;
	run_proxy(steps, (int)(sizeof(steps) / sizeof(steps[0])), 1, 1);
	assert_int_equal(sim.nverdicts, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(sim.verdicts[i].pid, want[i].pid);
		assert_int_equal(sim.verdicts[i].ok, want[i].ok);
	}
	assert_int_equal(sim.st.accepted, 7);
	assert_int_equal(sim.st.rejected_per_ip, 4);
	assert_int_equal(sim.st.rejected_untrusted_proxy, 0);
	assert_int_equal(sim.st.bad_reports, 2);
	assert_int_equal(sim.st.bytes_in, 7); /* 6001's report */
	assert_int_equal(sim.logs[SERVER_LOG_REJECT], 2);
	assert_int_equal(logged(SERVER_LOG_REJECT,
				"reject 192.0.2.7:5556 reason=max-per-ip "
				"active=1"),
			 1);
	assert_int_equal(logged(SERVER_LOG_REJECT,
				"reject 192.0.2.7:5560 reason=max-per-ip "
				"active=1 (2 similar messages suppressed)"),
			 1);
	/* The second bad report held back, and said so at exit. */
	assert_int_equal(sim.logs[SERVER_LOG_REPORT], 2);
	assert_int_equal(logged(SERVER_LOG_REPORT | SERVER_LOG_SUMMARY,
				"report refused: 1 similar messages "
				"suppressed"),
			 1);
}

/* A claim is refused as a bad report when nothing counts claims: no
 * PROXY protocol (the address was counted at accept), or no
 * --max-per-ip. */
static void test_proxy_claim_refused(void **state)
{
	const uint32_t a = IP(10, 0, 0, 1), client = IP(192, 0, 2, 1);
	const struct step plain[] = {
	    C(8001, a, -1, -1),
	    COUNTS(1, a),
	    CLAIMS(8001, client, 1),
	    COUNTS(1, a),
	    COUNTS(0, client),
	    X(8001),
	    COUNTS(0, a),
	    TERMS,
	};
	const struct step nolimit[] = {
	    C(8002, a, -1, -1),
	    CLAIMS(8002, client, 1),
	    X(8002),
	    TERMS,
	};

	(void)state;
	run_proxy(plain, (int)(sizeof(plain) / sizeof(plain[0])), 1, 0);
	assert_int_equal(sim.st.bad_reports, 1);
	assert_int_equal(sim.nverdicts, 0);
	run_proxy(nolimit, (int)(sizeof(nolimit) / sizeof(nolimit[0])), 0, 1);
	assert_int_equal(sim.st.bad_reports, 1);
	assert_int_equal(sim.nverdicts, 0);
	assert_null(sim.srv.ips);
}

/* A connection from a proxy that fork() cannot take is held, and given
 * up at shutdown with nothing to release (it was never counted). */
static void test_proxy_held(void **state)
{
	const uint32_t proxy = IP(127, 0, 0, 1);
	const struct step steps[] = {
	    C(9001, proxy, -1, -1),
	    {HELD, 9002, proxy, -1, -1},
	    COUNTS(0, proxy),
	    X(9001),
	    TERMS,
	};

	(void)state;
	run_proxy(steps, (int)(sizeof(steps) / sizeof(steps[0])), 1, 1);
	assert_int_equal(sim.st.fork_failures, 1);
	assert_int_equal(sim.closes[1], 1); /* the FIN of give_up */
	assert_int_equal(sim.st.resource_errors, 1);
	assert_int_equal(logged(SERVER_LOG_GIVE_UP,
				"close 127.0.0.1:40000 in=0 out=0 "
				"discarded=0 duration=0.000s "
				"reason=resource-error: shutdown"),
			 1);
}

/* Without the PROXY protocol, for comparison: the address is counted at
 * accept and one over the limit is closed there (the same log line);
 * a second report and a message of no known kind from a child are bad
 * reports; a held connection given up releases its count. */
static void test_plain_per_ip(void **state)
{
	const uint32_t a = IP(10, 0, 0, 1), b = IP(10, 0, 0, 2);
	const struct step steps[] = {
	    C(4001, a, -1, -1),
	    REFUSE(a),
	    COUNTS(1, a),
	    {REPORT, 4001, 0, -1, -1},
	    {REPORT, 4001, 0, -1, -1},
	    {JUNK, 4001, 0, -1, -1},
	    {HELD, 4002, b, -1, -1},
	    COUNTS(1, b),
	    X(4001),
	    TERMS,
	};

	(void)state;
	run_proxy(steps, (int)(sizeof(steps) / sizeof(steps[0])), 1, 0);
	assert_int_equal(sim.st.rejected_per_ip, 1);
	assert_int_equal(sim.st.rejected_untrusted_proxy, 0);
	assert_int_equal(logged(SERVER_LOG_REJECT,
				"reject 10.0.0.1:40000 reason=max-per-ip "
				"active=1"),
			 1);
	assert_int_equal(sim.st.bad_reports, 2);
	assert_int_equal(sim.st.bytes_in, 7);
	assert_int_equal(sim.closes[1], 1);
	assert_int_equal(count_of(a), 0);
	assert_int_equal(count_of(b), 0);
	assert_int_equal(sim.nverdicts, 0);
}

/* The PROXY protocol needs its list of proxies, and with --max-per-ip an
 * operation to answer claims. */
static void test_proxy_bad_config(void **state)
{
	struct server s;
	struct server_cfg cfg;
	struct stats st;
	struct server_child kids[SLOTS];
	struct server_ipcount ips[SLOTS];

	(void)state;
	assert_int_equal(parse_cidr("::1", &proxies[0]), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_conns = 1;
	cfg.proxy = 1;
	assert_int_equal(
	    server_init(&s, &cfg, &proxy_ops, NULL, &st, kids, ips), -1);
	cfg.proxy_from = proxies;
	assert_int_equal(
	    server_init(&s, &cfg, &proxy_ops, NULL, &st, kids, ips), -1);
	cfg.nproxy_from = 1;
	assert_int_equal(
	    server_init(&s, &cfg, &proxy_ops, NULL, &st, kids, ips), 0);
	cfg.proxy_from = NULL;
	assert_int_equal(
	    server_init(&s, &cfg, &proxy_ops, NULL, &st, kids, ips), -1);
	cfg.proxy_from = proxies;
	/* --max-per-ip: the verdict operation is needed. */
	cfg.max_per_ip = 2;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), -1);
	assert_int_equal(
	    server_init(&s, &cfg, &proxy_ops, NULL, &st, kids, ips), 0);
	/* Without --max-per-ip, or without the PROXY protocol, it is not. */
	cfg.max_per_ip = 0;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), 0);
	cfg.max_per_ip = 2;
	cfg.proxy = 0;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), 0);
	cfg.proxy_from = NULL;
	cfg.nproxy_from = 0;
	assert_int_equal(server_init(&s, &cfg, &ops, NULL, &st, kids, ips), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kids_wraparound),
	    cmocka_unit_test(test_ips_wraparound),
	    cmocka_unit_test(test_stranger_and_drain),
	    cmocka_unit_test(test_drain_kill_fails),
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_proxy_untrusted),
	    cmocka_unit_test(test_proxy_claims),
	    cmocka_unit_test(test_proxy_claim_refused),
	    cmocka_unit_test(test_proxy_held),
	    cmocka_unit_test(test_plain_per_ip),
	    cmocka_unit_test(test_proxy_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
