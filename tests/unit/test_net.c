/*
 * test_net.c - the socket helpers (src/net.c) on the errors no real run
 * produces on demand: a write that fails after a partial one, EINTR,
 * each call of net_listen() failing, IPv6 missing; and the address
 * formats. Listeners bind loopback addresses only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "net.h"
#include "opts.h"

FAULT_WRAP(int, socket, (int d, int t, int p), (d, t, p), -1)
FAULT_WRAP(int, setsockopt,
	   (int fd, int lvl, int name, const void *v, socklen_t l),
	   (fd, lvl, name, v, l), -1)
FAULT_WRAP(int, bind, (int fd, const struct sockaddr *sa, socklen_t l),
	   (fd, sa, l), -1)
FAULT_WRAP(int, listen, (int fd, int n), (fd, n), -1)
FAULT_WRAP(int, getsockname, (int fd, struct sockaddr *sa, socklen_t *l),
	   (fd, sa, l), -1)
FAULT_WRAP(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n), -1)

FAULT_WRITE_SCRIPT()

static int teardown(void **state)
{
	(void)state;
	memset(&fault_socket, 0, sizeof(struct fault));
	memset(&fault_setsockopt, 0, sizeof(struct fault));
	memset(&fault_bind, 0, sizeof(struct fault));
	memset(&fault_listen, 0, sizeof(struct fault));
	memset(&fault_getsockname, 0, sizeof(struct fault));
	memset(&fault_read, 0, sizeof(struct fault));
	fault_write_script(0, NULL);
	return 0;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void drain_exact(int fd, const char *want, size_t n)
{
	char b[64];

	assert_true(n <= sizeof(b));
	assert_int_equal(__real_read(fd, b, n), (ssize_t)n);
	assert_memory_equal(b, want, n);
}

/* A partial write, then an error: the bytes written are reported first,
 * the error on the next call. */
static void test_write_partial_then_error(void **state)
{
	static const long steps[] = {3, -EPIPE, -EPIPE};
	int sv[2];

	(void)state;
	pair(sv);
	fault_write_script(3, steps);
	assert_int_equal(net_write(sv[0], "abcdefgh", 8), 3);
	drain_exact(sv[1], "abc", 3);
	errno = 0;
	assert_int_equal(net_write(sv[0], "defgh", 5), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
	close(sv[1]);
}

/* An error on the first write is -1 with errno. */
static void test_write_error_first(void **state)
{
	static const long steps[] = {-ECONNRESET};
	int sv[2];

	(void)state;
	pair(sv);
	fault_write_script(1, steps);
	assert_int_equal(net_write(sv[0], "ab", 2), -1);
	assert_int_equal(errno, ECONNRESET);
	close(sv[0]);
	close(sv[1]);
}

/* Short writes and EINTR are retried until everything is written. */
static void test_write_short_and_eintr(void **state)
{
	static const long steps[] = {2, -EINTR, 1, -EINTR, -EINTR, 100};
	int sv[2];

	(void)state;
	pair(sv);
	fault_write_script(6, steps);
	assert_int_equal(net_write(sv[0], "abcdefgh", 8), 8);
	assert_int_equal(fault_wscript.i, 6);
	drain_exact(sv[1], "abcdefgh", 8);
	close(sv[0]);
	close(sv[1]);
}

/* A full socket (EAGAIN) after a partial write: what was written; before
 * any byte: 0. A write that returns 0 ends the call as well. */
static void test_write_full(void **state)
{
	static const long partial[] = {4, -EAGAIN};
	static const long none[] = {-EWOULDBLOCK};
	static const long zero[] = {2, 0};
	int sv[2];

	(void)state;
	pair(sv);
	fault_write_script(2, partial);
	assert_int_equal(net_write(sv[0], "abcdefgh", 8), 4);
	drain_exact(sv[1], "abcd", 4);
	fault_write_script(1, none);
	assert_int_equal(net_write(sv[0], "abcdefgh", 8), 0);
	fault_write_script(2, zero);
	assert_int_equal(net_write(sv[0], "abcdefgh", 8), 2);
	drain_exact(sv[1], "ab", 2);
	assert_int_equal(net_write(sv[0], "", 0), 0);
	close(sv[0]);
	close(sv[1]);
}

/* A real full socket: a non-blocking socket pair written until it takes
 * no more. */
static void test_write_real_full(void **state)
{
	static char big[1 << 16];
	int sv[2], i;
	ssize_t n = 1;

	(void)state;
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	for (i = 0; i < 1000 && n > 0; i++)
		n = net_write(sv[0], big, sizeof(big));
	assert_int_equal(n, 0);
	close(sv[1]);
	n = net_write(sv[0], big, 1);
	assert_int_equal(n, -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
}

static void test_read(void **state)
{
	char b[8];
	int sv[2];

	(void)state;
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(net_read(sv[0], b, sizeof(b)), NET_AGAIN);
	assert_int_equal(__real_write(sv[1], "xy", 2), 2);
	/* EINTR is retried. */
	fault_arm(&fault_read, 0, 2, EINTR);
	assert_int_equal(net_read(sv[0], b, sizeof(b)), 2);
	assert_int_equal(fault_read.calls, 3);
	assert_memory_equal(b, "xy", 2);
	fault_arm(&fault_read, 0, 1, EWOULDBLOCK);
	assert_int_equal(net_read(sv[0], b, sizeof(b)), NET_AGAIN);
	fault_arm(&fault_read, 0, 1, ECONNRESET);
	assert_int_equal(net_read(sv[0], b, sizeof(b)), -1);
	assert_int_equal(errno, ECONNRESET);
	close(sv[1]);
	assert_int_equal(net_read(sv[0], b, sizeof(b)), 0);
	close(sv[0]);
}

static void test_addr_str(void **state)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	struct sockaddr_un_like {
		sa_family_t f;
		char path[20];
	} su;
	char b[NET_ADDRSTRLEN];

	(void)state;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = htons(53422);
	s4.sin_addr.s_addr = htonl(0x7f000001);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s4, sizeof(s4), b, sizeof(b)),
	    "127.0.0.1:53422");
	/* Too short for its family. */
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s4, sizeof(s4) - 1, b, sizeof(b)),
	    "unknown");

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(7);
	s6.sin6_addr = in6addr_loopback;
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "[::1]:7");
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6) - 1, b, sizeof(b)),
	    "unknown");
	/* IPv4-mapped: shown as IPv4. */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr),
			 1);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "10.1.2.3:7");
	/* Almost mapped (::fffe:...): IPv6. */
	assert_int_equal(inet_pton(AF_INET6, "::fffe:a01:203", &s6.sin6_addr),
			 1);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "[::fffe:a01:203]:7");
	assert_int_equal(inet_pton(AF_INET6, "1::ffff:a01:203", &s6.sin6_addr),
			 1);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "[1::ffff:a01:203]:7");
	assert_int_equal(
	    inet_pton(AF_INET6, "0:1::ffff:a01:203", &s6.sin6_addr), 1);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "[0:1::ffff:a01:203]:7");
	assert_int_equal(
	    inet_pton(AF_INET6, "::1:0:ffff:a01:203", &s6.sin6_addr), 1);
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&s6, sizeof(s6), b, sizeof(b)),
	    "[::1:0:ffff:a01:203]:7");

	memset(&su, 0, sizeof(su));
	su.f = AF_UNIX;
	assert_string_equal(
	    net_addr_str((struct sockaddr *)&su, sizeof(su), b, sizeof(b)),
	    "unknown");
}

static void test_addr_key(void **state)
{
	static const uint8_t zero[16];
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	struct sockaddr sa;
	uint8_t k[16], k2[16];

	(void)state;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_addr.s_addr = htonl(0x0a010203);
	net_addr_key((struct sockaddr *)&s4, k);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr),
			 1);
	net_addr_key((struct sockaddr *)&s6, k2);
	/* IPv4 and IPv4-mapped IPv6 are one client. */
	assert_memory_equal(k, k2, 16);
	assert_memory_equal(k2, &s6.sin6_addr, 16);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	memset(k, 0xaa, sizeof(k));
	net_addr_key(&sa, k);
	assert_memory_equal(k, zero, 16);
}

static void loopback4(struct echod_opts *o)
{
	opts_defaults(o);
	o->port = 0;
	o->bind_set = 1;
	o->bind_family = AF_INET;
	o->bind4.s_addr = htonl(INADDR_LOOPBACK);
}

static void test_listen_ok(void **state)
{
	struct echod_opts o;
	char name[NET_ADDRSTRLEN], err[128];
	int fd;

	(void)state;
	loopback4(&o);
	fd = net_listen(&o, name, sizeof(name), err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(strncmp(name, "127.0.0.1:", 10), 0);
	assert_true(strcmp(name, "127.0.0.1:0") != 0);
	close(fd);

	opts_defaults(&o);
	o.port = 0;
	o.bind_set = 1;
	o.bind_family = AF_INET6;
	o.bind6 = in6addr_loopback;
	fd = net_listen(&o, name, sizeof(name), err, sizeof(err));
	if (fd < 0) {
		/* A host without IPv6: the reason, and no fallback for an
		 * address given explicitly. */
		print_message("no IPv6 loopback here: %s\n", err);
		assert_int_equal(strncmp(err, "bind: ", 6), 0);
	} else {
		assert_int_equal(strncmp(name, "[::1]:", 6), 0);
		close(fd);
	}
}

/* Each call of net_listen() failing: -1, the call named in err, and no
 * descriptor left open. */
static void test_listen_each_call_fails(void **state)
{
	struct echod_opts o;
	char name[NET_ADDRSTRLEN], err[128];
	int probe, after;

	(void)state;
	loopback4(&o);
	probe = dup(0);
	close(probe);

	fault_arm(&fault_socket, 0, 1, EMFILE);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_string_equal(err, "socket: Too many open files");

	fault_arm(&fault_setsockopt, 0, 1, ENOMEM);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_string_equal(err,
			    "setsockopt SO_REUSEADDR: Cannot allocate memory");

	fault_arm(&fault_setsockopt, 1, 1, ENOPROTOOPT);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_string_equal(err,
			    "setsockopt SO_OOBINLINE: Protocol not available");

	fault_arm(&fault_bind, 0, 1, EADDRINUSE);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_string_equal(err, "bind: Address already in use");

	fault_arm(&fault_listen, 0, 1, EOPNOTSUPP);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(strncmp(err, "listen: ", 8), 0);

	fault_arm(&fault_getsockname, 0, 1, ENOBUFS);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(strncmp(err, "getsockname: ", 13), 0);

	/* No err buffer: the same -1, nothing written. */
	fault_arm(&fault_socket, 0, 1, EMFILE);
	assert_int_equal(net_listen(&o, name, sizeof(name), NULL, 0), -1);
	fault_arm(&fault_socket, 0, 1, EMFILE);
	strcpy(err, "untouched");
	assert_int_equal(net_listen(&o, name, sizeof(name), err, 0), -1);
	assert_string_equal(err, "untouched");

	/* Nothing leaked: the next descriptor is the one free before. */
	after = dup(0);
	assert_int_equal(after, probe);
	close(after);
}

/* The default address "::": dual-stack (IPV6_V6ONLY off), and IPv4 when
 * IPv6 is missing (EAFNOSUPPORT from socket(), EADDRNOTAVAIL from bind());
 * an address given explicitly never falls back. Every socket() is made to
 * fail here, so no wildcard address is ever bound. */
static void test_listen_default_and_fallback(void **state)
{
	struct echod_opts o;
	char name[NET_ADDRSTRLEN], err[128];

	(void)state;
	opts_defaults(&o);
	o.port = 0;
	assert_int_equal(o.bind_set, 0);
	assert_int_equal(o.bind_family, AF_INET6);

	/* The third option is IPV6_V6ONLY, on "::" only. */
	fault_arm(&fault_setsockopt, 2, 1, EINVAL);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_string_equal(err, "setsockopt IPV6_V6ONLY: Invalid argument");

	/* No IPv6: a second try with IPv4 (failing too, with its reason). */
	fault_arm(&fault_socket, 0, 2, EAFNOSUPPORT);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(fault_socket.calls, 2);
	assert_int_equal(strncmp(err, "socket: ", 8), 0);

	fault_arm(&fault_socket, 1, 1, EMFILE);
	fault_arm(&fault_bind, 0, 1, EADDRNOTAVAIL);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(fault_socket.calls, 2);
	assert_string_equal(err, "socket: Too many open files");

	/* Other errors: no second try. */
	fault_arm(&fault_socket, 0, 2, EMFILE);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(fault_socket.calls, 1);

	/* An explicit IPv6 address: no second try either. */
	o.bind_set = 1;
	o.bind6 = in6addr_loopback;
	fault_arm(&fault_socket, 0, 2, EAFNOSUPPORT);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(fault_socket.calls, 1);
	/* ... and no IPV6_V6ONLY for an address other than "::". */
	fault_arm(&fault_socket, 0, 0, 0);
	fault_arm(&fault_setsockopt, 2, 1, EINVAL);
	fault_arm(&fault_bind, 0, 1, EADDRNOTAVAIL);
	assert_int_equal(net_listen(&o, name, sizeof(name), err, sizeof(err)),
			 -1);
	assert_int_equal(fault_setsockopt.calls, 2);
	assert_string_equal(err, "bind: Cannot assign requested address");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_write_partial_then_error, teardown),
	    cmocka_unit_test_teardown(test_write_error_first, teardown),
	    cmocka_unit_test_teardown(test_write_short_and_eintr, teardown),
	    cmocka_unit_test_teardown(test_write_full, teardown),
	    cmocka_unit_test_teardown(test_write_real_full, teardown),
	    cmocka_unit_test_teardown(test_read, teardown),
	    cmocka_unit_test_teardown(test_addr_str, teardown),
	    cmocka_unit_test_teardown(test_addr_key, teardown),
	    cmocka_unit_test_teardown(test_listen_ok, teardown),
	    cmocka_unit_test_teardown(test_listen_each_call_fails, teardown),
	    cmocka_unit_test_teardown(test_listen_default_and_fallback,
				      teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, teardown);
}
