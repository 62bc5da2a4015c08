/*
 * test_sandbox_faults.c - the sandbox's error paths and kernel variants
 * (src/sandbox.c), which test_sandbox.c (the real filter on the real
 * kernel) cannot reach: libseccomp failing at each rule, at load, without
 * no_new_privs; each step of a child's confinement failing; and a kernel
 * of each Landlock ABI (none, 1 to 6), whose ruleset must say what that
 * ABI knows. libseccomp, the set*id and Landlock system calls are
 * replaced (--wrap) so that nothing is loaded or confined for real: each
 * case runs in a child of its own all the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h>

#include "fault.h"
#include "sandbox.h"

/* ---- libseccomp ---- */

static struct fault fault_init, fault_rule_array, fault_rule, fault_load;
static unsigned rules_added;

scmp_filter_ctx __real_seccomp_init(uint32_t def);
scmp_filter_ctx __wrap_seccomp_init(uint32_t def);
scmp_filter_ctx __wrap_seccomp_init(uint32_t def)
{
	if (fault_fire(&fault_init))
		return NULL;
	return __real_seccomp_init(def);
}

int __real_seccomp_rule_add_array(scmp_filter_ctx c, uint32_t act, int nr,
				  unsigned n, const struct scmp_arg_cmp *a);
int __wrap_seccomp_rule_add_array(scmp_filter_ctx c, uint32_t act, int nr,
				  unsigned n, const struct scmp_arg_cmp *a);
int __wrap_seccomp_rule_add_array(scmp_filter_ctx c, uint32_t act, int nr,
				  unsigned n, const struct scmp_arg_cmp *a)
{
	rules_added++;
	if (fault_fire(&fault_rule_array))
		return -EINVAL;
	return __real_seccomp_rule_add_array(c, act, nr, n, a);
}

/* sandbox.c adds these without argument checks. */
int __real_seccomp_rule_add(scmp_filter_ctx c, uint32_t act, int nr, unsigned n,
			    ...);
int __wrap_seccomp_rule_add(scmp_filter_ctx c, uint32_t act, int nr, unsigned n,
			    ...);
int __wrap_seccomp_rule_add(scmp_filter_ctx c, uint32_t act, int nr, unsigned n,
			    ...)
{
	rules_added++;
	if (n != 0)
		return -E2BIG; /* not a call sandbox.c makes */
	if (fault_fire(&fault_rule))
		return -ENOMEM;
	return __real_seccomp_rule_add(c, act, nr, 0);
}

/* Never loads for real: the filter itself is test_sandbox.c's. */
int __wrap_seccomp_load(scmp_filter_ctx c);
int __wrap_seccomp_load(scmp_filter_ctx c)
{
	(void)c;
	if (fault_fire(&fault_load))
		return -EFAULT;
	return 0;
}

/* prctl is variadic: four arguments at most, passed on. */
static struct fault fault_prctl;
int __real_prctl(int op, ...);
int __wrap_prctl(int op, ...);
int __wrap_prctl(int op, ...)
{
	va_list ap;
	unsigned long a[4];
	int i;

	va_start(ap, op);
	for (i = 0; i < 4; i++)
		a[i] = va_arg(ap, unsigned long);
	va_end(ap);
	if (fault_fire(&fault_prctl))
		return -1;
	return __real_prctl(op, a[0], a[1], a[2], a[3]);
}

/* setrlimit: the sanitizer runtimes call it (RLIMIT_CORE) before they
 * are set up, when nothing instrumented may run: only RLIMIT_NPROC, the
 * sandbox's, goes further than the real call. */
static struct fault fault_setrlimit;
int __real_setrlimit(__rlimit_resource_t r, const struct rlimit *l);
int __wrap_setrlimit(__rlimit_resource_t r, const struct rlimit *l)
    __attribute__((no_sanitize("address", "undefined")));
int __wrap_setrlimit(__rlimit_resource_t r, const struct rlimit *l)
{
	if (r != RLIMIT_NPROC)
		return __real_setrlimit(r, l);
	if (fault_fire(&fault_setrlimit))
		return -1;
	return __real_setrlimit(r, l);
}

/* open: made to fail in a coverage build's case below (sandbox.c opens
 * the build directory); defined in every build, so that the link is the
 * same. */
static struct fault fault_open;
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode = 0;

	va_start(ap, flags);
	if (flags & (O_CREAT | __O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (fault_fire(&fault_open))
		return -1;
	return __real_open(path, flags, mode);
}

/* ---- identity ---- */

static uid_t fake_uid = (uid_t)-1, fake_euid = (uid_t)-1;
static pid_t fake_ppid;

uid_t __real_getuid(void);
uid_t __wrap_getuid(void);
uid_t __wrap_getuid(void)
{
	return fake_uid != (uid_t)-1 ? fake_uid : __real_getuid();
}

uid_t __real_geteuid(void);
uid_t __wrap_geteuid(void);
uid_t __wrap_geteuid(void)
{
	return fake_euid != (uid_t)-1 ? fake_euid : __real_geteuid();
}

pid_t __real_getppid(void);
pid_t __wrap_getppid(void);
pid_t __wrap_getppid(void)
{
	return fake_ppid != 0 ? fake_ppid : __real_getppid();
}

/* ---- syscall(): the set*id calls, capset, Landlock ---- */

enum { SC_FAIL = 1, SC_FAKE };
static struct {
	long nr;
	int mode;
	long value; /* SC_FAIL: the errno; SC_FAKE: the result */
} sc_rule[8];
static int sc_rules;
static int landlock_abi_fake = -1; /* -1: the kernel's */

/* What the last ruleset asked for. */
static struct {
	uint64_t fs, net, scoped;
	size_t size;
	int made, restricted;
} ruleset;

long __real_syscall(long nr, ...);
long __wrap_syscall(long nr, ...);
long __wrap_syscall(long nr, ...)
{
	va_list ap;
	long a[5];
	int i;

	va_start(ap, nr);
	/* Five at most: sandbox.c passes no more, and a sixth would be read
	 * from the caller's stack. */
	for (i = 0; i < 5; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_landlock_create_ruleset && a[0] == 0 && a[2] == 1 &&
	    landlock_abi_fake >= 0) {
		if (landlock_abi_fake == 0) {
			errno = EOPNOTSUPP;
			return -1;
		}
		return landlock_abi_fake;
	}
	for (i = 0; i < sc_rules; i++)
		if (sc_rule[i].nr == nr) {
			if (sc_rule[i].mode == SC_FAIL) {
				errno = (int)sc_rule[i].value;
				return -1;
			}
			return sc_rule[i].value;
		}
	if (nr == SYS_landlock_create_ruleset && a[0] != 0) {
		const uint64_t *attr = (const uint64_t *)a[0];

		ruleset.size = (size_t)a[1];
		ruleset.fs = attr[0];
		ruleset.net = ruleset.size >= 16 ? attr[1] : 0;
		ruleset.scoped = ruleset.size >= 24 ? attr[2] : 0;
		ruleset.made++;
	}
	if (nr == SYS_landlock_restrict_self) {
		/* Checked, never applied: the child must stay free to write
		 * its coverage counts. */
		ruleset.restricted++;
		return 0;
	}
	return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4]);
}

static void sc_set(long nr, int mode, long value)
{
	sc_rule[sc_rules].nr = nr;
	sc_rule[sc_rules].mode = mode;
	sc_rule[sc_rules].value = value;
	sc_rules++;
}

/* The set*id and capset calls succeed without effect (as if root). */
static void fake_identity_calls(void)
{
	sc_set(SYS_setgroups, SC_FAKE, 0);
	sc_set(SYS_setresgid, SC_FAKE, 0);
	sc_set(SYS_setresuid, SC_FAKE, 0);
	sc_set(SYS_capset, SC_FAKE, 0);
}

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN_RUNTIME 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define HAVE_LSAN_RUNTIME 1
#endif
#endif
#ifndef HAVE_LSAN_RUNTIME
/* Without a sanitizer runtime, sandbox.c's weak reference to the leak
 * check finds this one: the check before the filter is called. */
static int lsan_checks;
void __lsan_do_leak_check(void);
void __lsan_do_leak_check(void)
{
	lsan_checks++;
}
#endif

/* Run fn in a child: its exit status (128 + signal when killed). */
static int in_child(int (*fn)(void))
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		exit(fn());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static char err[256];

/* ---- sandbox_install() ---- */

static int install_ok(void)
{
	if (strcmp(sandbox_name(), "seccomp") != 0)
		return 10;
	if (strcmp(sandbox_features(), "off") != 0) /* not yet */
		return 11;
	if (sandbox_install(err, sizeof(err)) != 0)
		return 12;
#ifndef HAVE_LSAN_RUNTIME
	if (lsan_checks != 1)
		return 13;
#endif
	if (strcmp(sandbox_features(), "off") == 0)
		return 14;
	return rules_added < 200 ? (int)rules_added : 15;
}

static unsigned fail_rule_k;

static int install_rule_fails(void)
{
	fault_arm(&fault_rule_array, fail_rule_k, 1, 0);
	if (sandbox_install(err, sizeof(err)) != -1)
		return 10;
	return strcmp(err, "seccomp_rule_add: Invalid argument") == 0 ? 0 : 11;
}

static int install_rule_nargs_fails(void)
{
	fault_arm(&fault_rule, fail_rule_k, 1, 0);
	if (sandbox_install(err, sizeof(err)) != -1)
		return 10;
	return strcmp(err, "seccomp_rule_add: Cannot allocate memory") == 0
		   ? 0
		   : 11;
}

static int install_init_fails(void)
{
	fault_arm(&fault_init, 0, 1, 0);
	if (sandbox_install(err, sizeof(err)) != -1)
		return 10;
	return strcmp(err, "seccomp_init failed") == 0 ? 0 : 11;
}

static int install_nnp_fails(void)
{
	fault_arm(&fault_prctl, 0, 1, EINVAL);
	if (sandbox_install(err, sizeof(err)) != -1)
		return 10;
	return strcmp(err, "prctl(PR_SET_NO_NEW_PRIVS): Invalid argument") == 0
		   ? 0
		   : 11;
}

static int install_load_fails(void)
{
	fault_arm(&fault_load, 0, 1, 0);
	if (sandbox_install(err, sizeof(err)) != -1)
		return 10;
	if (strcmp(err, "seccomp_load: Bad address") != 0)
		return 11;
	return strcmp(sandbox_features(), "off") == 0 ? 0 : 12;
}

static void test_install(void **state)
{
	int total, k, r;

	(void)state;
	total = in_child(install_ok);
	assert_true(total > 20 && total < 200);
	print_message("%d rules\n", total);
	/* Each rule failing in turn: add_rule_array for most, add_rule for
	 * those without argument checks. The counts tell them apart. */
	for (k = 0, r = 0; k < total; k++) {
		fail_rule_k = (unsigned)k;
		if (in_child(install_rule_fails) == 0)
			r++;
	}
	for (k = 0; k < total - r; k++) {
		fail_rule_k = (unsigned)k;
		assert_int_equal(in_child(install_rule_nargs_fails), 0);
	}
	/* All the rules: one path or the other failed each. */
	assert_true(r > 0 && r < total);
	assert_int_equal(in_child(install_init_fails), 0);
	assert_int_equal(in_child(install_nnp_fails), 0);
	assert_int_equal(in_child(install_load_fails), 0);
}

/* ---- sandbox_child() ---- */

static int child_ok_root(void)
{
	fake_uid = 0;
	fake_identity_calls();
	return sandbox_child(getppid());
}

static int child_ok_euid_root(void)
{
	fake_uid = 1000;
	fake_euid = 0;
	fake_identity_calls();
	return sandbox_child(getppid());
}

static int child_ok_user(void)
{
	fake_uid = 1000;
	fake_euid = 1000;
	/* no set*id call may be made: each would fail */
	sc_set(SYS_setgroups, SC_FAIL, EPERM);
	sc_set(SYS_setresgid, SC_FAIL, EPERM);
	sc_set(SYS_setresuid, SC_FAIL, EPERM);
	sc_set(SYS_capset, SC_FAKE, 0);
	return sandbox_child(getppid());
}

static long fail_nr;

/* The call fail_nr fails (the first rule that matches wins). */
static int child_call_fails(void)
{
	sc_set(fail_nr, SC_FAIL, EPERM);
	landlock_abi_fake = 6;
	if (sandbox_install(err, sizeof(err)) != 0)
		return 9;
	fake_uid = 0;
	fake_identity_calls();
	if (sandbox_child(getppid()) != -1)
		return 10;
	return errno == EPERM ? 0 : 11;
}

static int child_rlimit_fails(void)
{
	fake_uid = 0;
	fake_identity_calls();
	fault_arm(&fault_setrlimit, 0, 1, EPERM);
	return sandbox_child(getppid()) == -1 && errno == EPERM ? 0 : 10;
}

static int child_pdeathsig_fails(void)
{
	fake_uid = 0;
	fake_identity_calls();
	fault_arm(&fault_prctl, 0, 1, EINVAL);
	return sandbox_child(getppid()) == -1 && errno == ESRCH ? 0 : 10;
}

/* The parent died before the child asked for its death signal. */
static int child_orphan(void)
{
	pid_t parent = getppid();

	fake_uid = 0;
	fake_identity_calls();
	fake_ppid = 1;
	return sandbox_child(parent) == -1 && errno == ESRCH ? 0 : 10;
}

static void test_child(void **state)
{
	static const long calls[] = {SYS_setgroups, SYS_setresgid,
				     SYS_setresuid, SYS_capset,
				     SYS_landlock_create_ruleset};
	size_t i;

	(void)state;
	assert_int_equal(in_child(child_ok_root), 0);
	assert_int_equal(in_child(child_ok_euid_root), 0);
	assert_int_equal(in_child(child_ok_user), 0);
	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		fail_nr = calls[i];
		assert_int_equal(in_child(child_call_fails), 0);
	}
#ifdef ECHOD_COVERAGE
	/* Coverage builds grant the build directory: that rule failing. */
	fail_nr = SYS_landlock_add_rule;
	assert_int_equal(in_child(child_call_fails), 0);
#endif
	assert_int_equal(in_child(child_rlimit_fails), 0);
	assert_int_equal(in_child(child_pdeathsig_fails), 0);
	assert_int_equal(in_child(child_orphan), 0);
}

/* ---- the metrics writer's confinement ---- */

static int writer_ok(void)
{
	int dirfd = open("/tmp", O_RDONLY | O_DIRECTORY);

	landlock_abi_fake = 6;
	if (dirfd < 0 || sandbox_writer(dirfd) != 0)
		return 10;
	return ruleset.made == 1 && ruleset.restricted == 1 ? 0 : 11;
}

static int writer_no_nnp(void)
{
	fault_arm(&fault_prctl, 0, 1, EINVAL);
	return sandbox_writer(0) == -1 && ruleset.made == 0 ? 0 : 10;
}

static int writer_no_grant(void)
{
	int dirfd = open("/tmp", O_RDONLY | O_DIRECTORY);

	landlock_abi_fake = 6;
	sc_set(SYS_landlock_add_rule, SC_FAIL, EBADF);
	if (dirfd < 0 || sandbox_writer(dirfd) != -1 || errno != EBADF)
		return 10;
	return ruleset.restricted == 0 ? 0 : 11;
}

static void test_writer(void **state)
{
	(void)state;
	assert_int_equal(in_child(writer_ok), 0);
	assert_int_equal(in_child(writer_no_nnp), 0);
	assert_int_equal(in_child(writer_no_grant), 0);
}

/* ---- each Landlock ABI ---- */

static int abi;

/* Landlock's rights, as the ABIs define them. */
#define FS_ABI1	  ((1ull << 13) - 1)
#define FS_REFER  (1ull << 13)
#define FS_TRUNC  (1ull << 14)
#define FS_IOCTL  (1ull << 15)
#define NET_TCP	  3ull /* BIND_TCP | CONNECT_TCP */
#define SCOPE_ALL 3ull /* ABSTRACT_UNIX_SOCKET | SIGNAL */

static int landlock_abi(void)
{
	uint64_t fs = FS_ABI1;

	landlock_abi_fake = abi;
	if (sandbox_install(err, sizeof(err)) != 0)
		return 10;
	if (strcmp(sandbox_features(),
		   abi >= 6 ? "seccomp+landlock" : "seccomp") != 0)
		return 11;
	fake_uid = 0;
	fake_identity_calls();
	if (sandbox_child(getppid()) != 0)
		return 12;
	if (abi == 0)
		return ruleset.made == 0 && ruleset.restricted == 0 ? 0 : 13;
	if (ruleset.made != 1 || ruleset.restricted != 1)
		return 14;
	if (abi >= 2)
		fs |= FS_REFER;
	if (abi >= 3)
		fs |= FS_TRUNC;
	if (abi >= 5)
		fs |= FS_IOCTL;
	if (ruleset.fs != fs)
		return 15;
	if (ruleset.size != (abi >= 6 ? 24u : abi >= 4 ? 16u : 8u))
		return 16;
	if (abi >= 4 && ruleset.net != NET_TCP)
		return 17;
	if (abi >= 6 && ruleset.scoped != SCOPE_ALL)
		return 18;
	return 0;
}

static void test_landlock_abis(void **state)
{
	(void)state;
	for (abi = 0; abi <= 7; abi++) {
		int r = in_child(landlock_abi);

		if (r != 0)
			fail_msg("Landlock ABI %d: case failed with %d", abi,
				 r);
	}
}

#ifdef ECHOD_COVERAGE
/* A coverage build whose build directory cannot be opened: the children
 * get no grant (and gcov says it cannot write); nothing else changes. */
static int no_build_dir(void)
{
	landlock_abi_fake = 6;
	fault_arm(&fault_open, 0, 1, ENOENT);
	if (sandbox_install(err, sizeof(err)) != 0)
		return 10;
	fake_uid = 0;
	fake_identity_calls();
	sc_set(SYS_landlock_add_rule, SC_FAIL, EBADF); /* must not be made */
	return sandbox_child(getppid()) == 0 && ruleset.restricted == 1 ? 0
									: 11;
}

static void test_coverage_no_build_dir(void **state)
{
	(void)state;
	assert_int_equal(in_child(no_build_dir), 0);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_install),
	    cmocka_unit_test(test_child),
	    cmocka_unit_test(test_landlock_abis),
	    cmocka_unit_test(test_writer),
#ifdef ECHOD_COVERAGE
	    cmocka_unit_test(test_coverage_no_build_dir),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
