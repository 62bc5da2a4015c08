/*
 * fault.h - make a library or system call fail on chosen calls, in unit
 * tests that need an error no real run produces on demand (a socket()
 * that fails, a write that fails after a partial one).
 *
 * The test is linked with -Wl,--wrap=NAME (echod_unit(... WRAP NAME) in
 * CMakeLists.txt): every call to NAME in the code under test (and in any
 * library linked in, libgcov included) then goes to __wrap_NAME, which the
 * test defines with FAULT_WRAP and which calls the real function
 * (__real_NAME) unless a fault is armed:
 *
 *   FAULT_WRAP(int, socket, (int d, int t, int p), (d, t, p), -1)
 *   ...
 *   fault_arm(&fault_socket, 0, 1, EMFILE);  // the next call fails once
 *
 * Unarmed, a wrapper is the function itself. Faults are disarmed by
 * fault_reset() (call it in each test's teardown) so that nothing armed
 * outlives its test (gcov writes its counts at exit through the same
 * calls).
 */
#ifndef ECHOD_TEST_FAULT_H
#define ECHOD_TEST_FAULT_H

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>

struct fault {
	unsigned skip;	/* calls let through first */
	unsigned times; /* then calls that fail (UINT_MAX: every one) */
	int err;	/* the errno they fail with */
	unsigned calls; /* calls made (counted while armed or not) */
};

#define FAULT_ALWAYS UINT_MAX

static inline void fault_arm(struct fault *f, unsigned skip, unsigned times,
			     int err)
{
	f->skip = skip;
	f->times = times;
	f->err = err;
	f->calls = 0;
}

/* Whether this call must fail; if so errno is set. */
static inline int fault_fire(struct fault *f)
{
	f->calls++;
	if (f->times == 0)
		return 0;
	if (f->skip > 0) {
		f->skip--;
		return 0;
	}
	if (f->times != FAULT_ALWAYS)
		f->times--;
	errno = f->err;
	return 1;
}

/* A wrapper: __wrap_name fails with `failed` (errno set) when the fault
 * fault_name fires, else calls the real name. */
#define FAULT_WRAP(ret, name, params, args, failed)                            \
	static struct fault fault_##name;                                      \
	ret __real_##name params;                                              \
	ret __wrap_##name params;                                              \
	ret __wrap_##name params                                               \
	{                                                                      \
		if (fault_fire(&fault_##name))                                 \
			return failed;                                         \
		return __real_##name args;                                     \
	}

/* fcntl() takes a third argument by cmd; the wrapper passes on one
 * pointer-sized word, as glibc's own fcntl reads it. The fault takes
 * every cmd, or only fault_fcntl_cmd when that is set. */
#define FAULT_WRAP_FCNTL()                                                     \
	static struct fault fault_fcntl;                                       \
	static int fault_fcntl_cmd;                                            \
	int __real_fcntl(int fd, int cmd, ...);                                \
	int __wrap_fcntl(int fd, int cmd, ...);                                \
	int __wrap_fcntl(int fd, int cmd, ...)                                 \
	{                                                                      \
		va_list ap;                                                    \
		void *arg;                                                     \
		va_start(ap, cmd);                                             \
		arg = va_arg(ap, void *);                                      \
		va_end(ap);                                                    \
		if ((fault_fcntl_cmd == 0 || cmd == fault_fcntl_cmd) &&        \
		    fault_fire(&fault_fcntl))                                  \
			return -1;                                             \
		return __real_fcntl(fd, cmd, arg);                             \
	}

/*
 * A script of results for write() (link with WRAP write; one
 * FAULT_WRITE_SCRIPT in the test file): step n > 0 writes min(n, asked)
 * bytes for real, n < 0 fails with errno -n, 0 returns 0; calls past the
 * script are the real write. fault_write_script(0, NULL) ends a script.
 */
struct fault_wscript {
	int n, i;
	long step[8];
};

#define FAULT_WRITE_SCRIPT()                                                   \
	static struct fault_wscript fault_wscript;                             \
	ssize_t __real_write(int fd, const void *b, size_t n);                 \
	ssize_t __wrap_write(int fd, const void *b, size_t n);                 \
	ssize_t __wrap_write(int fd, const void *b, size_t n)                  \
	{                                                                      \
		long s;                                                        \
		if (fault_wscript.i >= fault_wscript.n)                        \
			return __real_write(fd, b, n);                         \
		s = fault_wscript.step[fault_wscript.i++];                     \
		if (s > 0)                                                     \
			return __real_write(fd, b,                             \
					    (size_t)s < n ? (size_t)s : n);    \
		if (s == 0)                                                    \
			return 0;                                              \
		errno = (int)-s;                                               \
		return -1;                                                     \
	}                                                                      \
	static void fault_write_script(int n, const long *steps)               \
	{                                                                      \
		if (n > 0)                                                     \
			memcpy(fault_wscript.step, steps,                      \
			       (size_t)n * sizeof(*steps));                    \
		fault_wscript.n = n;                                           \
		fault_wscript.i = 0;                                           \
	}

#endif /* ECHOD_TEST_FAULT_H */
