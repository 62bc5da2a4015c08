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

enum step_kind { CONNECT, EXIT, EXIT_STRANGER, TERM, AT, IPAT };

struct step {
	enum step_kind kind;
	pid_t pid;   /* CONNECT: the pid serving it; EXIT: the one leaving;
			AT: the pid in slot `where` (0: empty); IPAT: the
			count in slot `ipwhere` */
	uint32_t ip; /* CONNECT; IPAT: the address in slot `ipwhere` */
	int where;   /* CONNECT: the slot the pid must land in (-1: any) */
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
	unsigned kills[2]; /* SIGTERM, SIGKILL sent */
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
	(void)err;
	assert_true(sim.spawn_pid > 0);
	return sim.spawn_pid;
}

static void op_close(void *io, int fd, int how)
{
	(void)io;
	(void)fd;
	(void)how;
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
	(void)r;
	(void)pid;
	return SERVER_REPORT_NONE;
}

static void op_log(void *io, unsigned kind, const char *fmt, va_list ap)
{
	(void)io;
	(void)fmt;
	(void)ap;
	sim.logs[kind & 0xff]++;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kids_wraparound),
	    cmocka_unit_test(test_ips_wraparound),
	    cmocka_unit_test(test_stranger_and_drain),
	    cmocka_unit_test(test_drain_kill_fails),
	    cmocka_unit_test(test_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
