/*
 * sandbox.c - see sandbox.h.
 *
 * The filter's allow-list is the union of two lists: what the parent does
 * once it serves (accept4, fork, wait4, kill, ppoll, reading the children's
 * reports, logging) and what a child does (the child's confinement, the
 * serving loop, the lingering close, its report, leaving). Calls only the
 * parent needs are harmless in a child because of what sandbox_child()
 * took away: a child has no listener to accept on, cannot fork (RLIMIT_NPROC
 * 0 and no capabilities), and Landlock confines its signals to itself.
 * Where an argument narrows a call at no cost, the filter checks it.
 */
#define _GNU_SOURCE /* syscall, memfd_create */
#include "sandbox.h"
#include "conn.h" /* CONN_SIG_VERDICT */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef ECHOD_SANDBOX

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* Landlock's ABI, spelled out here: Debian 12's kernel headers predate the
 * network rules (ABI 4) and scoping (ABI 6). */
#define LL_CREATE_RULESET_VERSION 1u
#define LL_SCOPE_ABSTRACT_UNIX	  1ull
#define LL_SCOPE_SIGNAL		  2ull
#define LL_NET_BIND_TCP		  1ull
#define LL_NET_CONNECT_TCP	  2ull
#define LL_RULE_PATH_BENEATH	  1
#define LL_FS_WRITE_FILE	  (1ull << 1)
#define LL_FS_READ_FILE		  (1ull << 2)
#define LL_FS_REMOVE_FILE	  (1ull << 5)
#define LL_FS_MAKE_REG		  (1ull << 8)
#define LL_FS_TRUNCATE		  (1ull << 14)
struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

/* Into a ruleset: these rights beneath the folder dirfd. */
static int landlock_grant(int ruleset, int dirfd, uint64_t rights)
{
	struct ll_path_beneath_attr pb;

	pb.allowed_access = rights;
	pb.parent_fd = dirfd;
	return (int)syscall(SYS_landlock_add_rule, ruleset,
			    LL_RULE_PATH_BENEATH, &pb, 0);
}
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

static int landlock_abi; /* 0: none; probed by sandbox_install() */
static int installed;

#ifdef ECHOD_COVERAGE
/*
 * Coverage builds only (-DECHOD_COVERAGE=ON; SECURITY.md, "Coverage
 * builds"). gcov writes the counts of every process, children included
 * (coverage.h), as open(path, O_RDWR | O_CREAT, 0666), fcntl(F_SETLKW) to
 * lock the file against the other writers, fcntl(F_GETFL) and fstat
 * (fdopen), read, lseek, write, close, and malloc (brk). The least that
 * lets that through, in the one filter both parent and children run:
 *
 * - the filter allows exactly those shapes: openat only with those flags
 *   and that mode (any other open still dies by SIGSYS), fcntl only with
 *   those two commands, newfstatat only on a descriptor (AT_EMPTY_PATH),
 *   lseek, brk, and landlock_add_rule for the rule below. access() and
 *   mkdir(), which gcov tries only when it cannot open a file, fail with
 *   EACCES rather than kill: a build directory the children cannot write
 *   then costs gcov's "Cannot open" line, not a SIGSYS;
 * - each child's Landlock domain (and the metrics writer's) still
 *   handles every file system right and grants back only reading,
 *   writing and creating regular files beneath the build directory
 *   (ECHOD_COVERAGE_DIR), opened O_PATH by sandbox_install() before the
 *   filter (by sandbox_writer() in the writer, forked before it) and
 *   closed by each once confined;
 * - the uid drop stays: scripts/coverage.sh runs the tests with umask 000
 *   and makes the object directories writable, so that uid 65534 can
 *   update and create the .gcda files.
 */

static int coverage_dir = -1;

static void coverage_open_dir(void)
{
	coverage_dir =
	    open(ECHOD_COVERAGE_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Into the child's ruleset: gcov's files beneath the build directory. */
static int coverage_grant(int ruleset)
{
	if (coverage_dir < 0)
		return 0; /* no counts from children, gcov says why */
	return landlock_grant(ruleset, coverage_dir,
			      LL_FS_READ_FILE | LL_FS_WRITE_FILE |
				  LL_FS_MAKE_REG);
}

/* A child holds no descriptor it does not need. */
static void coverage_child_done(void)
{
	if (coverage_dir >= 0)
		close(coverage_dir);
	coverage_dir = -1;
}
#else
static inline void coverage_child_done(void)
{
}
#endif

const char *sandbox_name(void)
{
	return "seccomp";
}

const char *sandbox_features(void)
{
	if (!installed)
		return "off";
	return landlock_abi >= 6 ? "seccomp+landlock" : "seccomp";
}

static void probe_landlock(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
			 LL_CREATE_RULESET_VERSION);

	landlock_abi = v > 0 ? (int)v : 0;
}

/* Every file system right this ABI knows: handled and never granted, so
 * the child can open, create, execute or truncate nothing by path. */
static uint64_t landlock_fs_rights(int abi)
{
	uint64_t r = (1ull << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */

	if (abi >= 2)
		r |= 1ull << 13; /* REFER */
	if (abi >= 3)
		r |= 1ull << 14; /* TRUNCATE */
	if (abi >= 5)
		r |= 1ull << 15; /* IOCTL_DEV */
	return r;
}

/* The process's own Landlock domain: no file system access but what
 * grant_fd (-1: none) gives, no TCP bind or connect, signals and abstract
 * unix sockets scoped to itself. */
static int enter_landlock(int grant_fd, uint64_t grant)
{
	struct ll_ruleset_attr a;
	size_t size;
	int fd, rc;

	if (landlock_abi == 0)
		return 0;
	memset(&a, 0, sizeof(a));
	a.handled_access_fs = landlock_fs_rights(landlock_abi);
	size = sizeof(a.handled_access_fs);
	if (landlock_abi >= 4) {
		a.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (landlock_abi >= 6) {
		a.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		size = sizeof(a);
	}
	fd = (int)syscall(SYS_landlock_create_ruleset, &a, size, 0);
	if (fd < 0)
		return -1;
	if (grant_fd >= 0 &&
	    landlock_grant(fd, grant_fd, grant & a.handled_access_fs) < 0) {
		close(fd);
		return -1;
	}
#ifdef ECHOD_COVERAGE
	if (coverage_grant(fd) < 0) {
		close(fd);
		return -1;
	}
#endif
	rc = (int)syscall(SYS_landlock_restrict_self, fd, 0);
	close(fd);
	return rc;
}

int sandbox_child(pid_t parent)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[2];
	struct rlimit none = {0, 0};
	int rc;

	/* Raw system calls: glibc's set*id wrappers synchronise threads with
	 * signals, which a single-threaded child does not need. */
	if (getuid() == 0 || geteuid() == 0) {
		if (syscall(SYS_setgroups, 0, NULL) < 0 ||
		    syscall(SYS_setresgid, SANDBOX_CHILD_GID, SANDBOX_CHILD_GID,
			    SANDBOX_CHILD_GID) < 0 ||
		    syscall(SYS_setresuid, SANDBOX_CHILD_UID, SANDBOX_CHILD_UID,
			    SANDBOX_CHILD_UID) < 0)
			return -1;
	}
	/* A non-root parent may hold capabilities (CAP_SYS_RESOURCE would
	 * lift RLIMIT_NPROC): none survive into a child. */
	memset(caps, 0, sizeof(caps));
	if (syscall(SYS_capset, &hdr, caps) < 0)
		return -1;
	/* fork() checks RLIMIT_NPROC against every process of the real uid,
	 * so with 0 (and no way to raise a hard limit) a child can start
	 * neither a process nor a thread. Root is exempt, hence the uid. */
	if (setrlimit(RLIMIT_NPROC, &none) < 0)
		return -1;
	/* After the uid change, which clears it. If the parent died before
	 * this, nobody would send the signal: leave at once. */
	if (parent > 0 &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)) {
		errno = ESRCH;
		return -1;
	}
	rc = enter_landlock(-1, 0);
	coverage_child_done(); /* coverage builds only */
	return rc;
}

static int allow(scmp_filter_ctx ctx, int nr, unsigned n,
		 const struct scmp_arg_cmp *args)
{
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, args);
}

/* Calls allowed with any arguments. */
static const int sandbox_any[] = {
    /* both */
    SCMP_SYS(read),  /* the client; reports (parent) */
    SCMP_SYS(write), /* the client; log lines; the report */
    SCMP_SYS(ppoll),
    SCMP_SYS(poll),
    SCMP_SYS(close),
    SCMP_SYS(clock_gettime), /* when the vDSO is not used (Valgrind) */
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(getpid),
    SCMP_SYS(getppid),
    SCMP_SYS(sendto),	/* log lines to a socket, the report (MSG_DONTWAIT) */
    SCMP_SYS(recvfrom), /* dropping a held connection's input */
    /* the parent */
    SCMP_SYS(accept4),
    SCMP_SYS(wait4),
    SCMP_SYS(rt_sigtimedwait), /* taking pending signals, zero timeout */
    SCMP_SYS(clock_nanosleep), /* the back-off when ppoll itself fails */
    SCMP_SYS(recvmsg),	       /* the children's reports, with credentials */
    /* a child */
    SCMP_SYS(set_robust_list), /* glibc, in the child of fork() */
    SCMP_SYS(shutdown),	       /* the lingering close */
    SCMP_SYS(munmap),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(setgroups),
    SCMP_SYS(setresgid),
    SCMP_SYS(setresuid),
    SCMP_SYS(capset),
    SCMP_SYS(landlock_create_ruleset),
    SCMP_SYS(landlock_restrict_self),
#ifdef ECHOD_SANITIZER_RUNTIME
    /* The ASan/UBSan runtimes: an alternate signal stack when a signal
     * arrives, their allocator's locks and page management. */
    SCMP_SYS(sigaltstack),
    SCMP_SYS(futex),
    SCMP_SYS(madvise),
    SCMP_SYS(sched_yield),
    SCMP_SYS(gettid),
#endif
    /* A child takes SIGTERM with a handler of its own (conn.c): its own
     * dispositions and mask only. */
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
};

/* SCMP_An() leaves datum_b to the compiler, which clang warns about. */
static struct scmp_arg_cmp arg(unsigned n, enum scmp_compare op, uint64_t a,
			       uint64_t b)
{
	struct scmp_arg_cmp c;

	c.arg = n;
	c.op = op;
	c.datum_a = a;
	c.datum_b = b;
	return c;
}

#ifdef ECHOD_COVERAGE
/* gcov's calls, as narrow as they go (see coverage_dir above). */
static int coverage_rules(scmp_filter_ctx ctx)
{
	static const int any[] = {SCMP_SYS(lseek), SCMP_SYS(brk),
				  SCMP_SYS(landlock_add_rule)};
	static const int refused[] = {SCMP_SYS(access), SCMP_SYS(mkdir),
				      SCMP_SYS(mkdirat)};
	struct scmp_arg_cmp a[2];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(any) / sizeof(any[0]); i++)
		if ((rc = allow(ctx, any[i], 0, NULL)) < 0)
			return rc;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
					   refused[i], 0)) < 0)
			return rc;
	a[0] = arg(2, SCMP_CMP_EQ, O_RDWR | O_CREAT, 0);
	a[1] = arg(3, SCMP_CMP_EQ, 0666, 0);
	if ((rc = allow(ctx, SCMP_SYS(openat), 2, a)) < 0)
		return rc;
	a[0] = arg(1, SCMP_CMP_EQ, F_SETLKW, 0);
	if ((rc = allow(ctx, SCMP_SYS(fcntl), 1, a)) < 0)
		return rc;
	a[0] = arg(1, SCMP_CMP_EQ, F_GETFL, 0);
	if ((rc = allow(ctx, SCMP_SYS(fcntl), 1, a)) < 0)
		return rc;
	a[0] = arg(3, SCMP_CMP_EQ, AT_EMPTY_PATH, 0);
	return allow(ctx, SCMP_SYS(newfstatat), 1, a);
}
#endif

static int add_rules(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp a[2];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(sandbox_any) / sizeof(sandbox_any[0]); i++)
		if ((rc = allow(ctx, sandbox_any[i], 0, NULL)) < 0)
			return rc;
	/* fork() as glibc makes it, nothing else: no threads, no new
	 * namespaces, no shared address space. */
	a[0] = arg(0, SCMP_CMP_EQ,
		   CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | SIGCHLD, 0);
	if ((rc = allow(ctx, SCMP_SYS(clone), 1, a)) < 0)
		return rc;
	/* clone3 takes its flags in memory the filter cannot read: say it
	 * does not exist, and libcs fall back to clone. */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc < 0)
		return rc;
	/* The parent signals children only to drain them. */
	a[0] = arg(1, SCMP_CMP_EQ, SIGTERM, 0);
	if ((rc = allow(ctx, SCMP_SYS(kill), 1, a)) < 0)
		return rc;
	a[0] = arg(1, SCMP_CMP_EQ, SIGKILL, 0);
	if ((rc = allow(ctx, SCMP_SYS(kill), 1, a)) < 0)
		return rc;
	/* ... and to answer a claim (--max-per-ip behind a proxy); the
	 * child takes the answer with rt_sigtimedwait. */
	a[0] = arg(1, SCMP_CMP_EQ, (uint64_t)CONN_SIG_VERDICT, 0);
	if ((rc = allow(ctx, SCMP_SYS(rt_sigqueueinfo), 1, a)) < 0)
		return rc;
	/* A child's message buffer: never executable. */
	a[0] = arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	if ((rc = allow(ctx, SCMP_SYS(mmap), 1, a)) < 0)
		return rc;
#ifdef ECHOD_SANITIZER_RUNTIME
	/* The sanitizer runtimes' allocators; still never executable. */
	if ((rc = allow(ctx, SCMP_SYS(mprotect), 1, a)) < 0)
		return rc;
#endif
	/* The lingering close watches the socket's send queue. */
	a[0] = arg(1, SCMP_CMP_EQ, SIOCOUTQ, 0);
	if ((rc = allow(ctx, SCMP_SYS(ioctl), 1, a)) < 0)
		return rc;
	/* A child serves its socket blocking, with the idle timeout as the
	 * socket's timeouts, and its SIGTERM handler makes it non-blocking
	 * (conn.c). */
	a[0] = arg(1, SCMP_CMP_EQ, SOL_SOCKET, 0);
	a[1] = arg(2, SCMP_CMP_EQ, SO_RCVTIMEO, 0);
	if ((rc = allow(ctx, SCMP_SYS(setsockopt), 2, a)) < 0)
		return rc;
	a[1] = arg(2, SCMP_CMP_EQ, SO_SNDTIMEO, 0);
	if ((rc = allow(ctx, SCMP_SYS(setsockopt), 2, a)) < 0)
		return rc;
	a[0] = arg(1, SCMP_CMP_EQ, F_SETFL, 0);
	a[1] = arg(2, SCMP_CMP_EQ, O_NONBLOCK, 0);
	if ((rc = allow(ctx, SCMP_SYS(fcntl), 2, a)) < 0)
		return rc;
	/* Raw bulk goes socket -> pipe -> socket without copies (conn.c):
	 * a pipe of its own (it can name no file, reach no other process),
	 * sized within the user's pipe quota, and splice() between the
	 * descriptors it has. */
	a[0] = arg(1, SCMP_CMP_EQ, O_CLOEXEC, 0);
	if ((rc = allow(ctx, SCMP_SYS(pipe2), 1, a)) < 0)
		return rc;
	a[0] = arg(1, SCMP_CMP_EQ, F_SETPIPE_SZ, 0);
	if ((rc = allow(ctx, SCMP_SYS(fcntl), 1, a)) < 0)
		return rc;
	if ((rc = allow(ctx, SCMP_SYS(splice), 0, NULL)) < 0)
		return rc;
	a[0] = arg(0, SCMP_CMP_EQ, PR_SET_PDEATHSIG, 0);
	a[1] = arg(1, SCMP_CMP_EQ, SIGKILL, 0);
	if ((rc = allow(ctx, SCMP_SYS(prctl), 2, a)) < 0)
		return rc;
	/* setrlimit(RLIMIT_NPROC) on itself; lowering only, as the hard
	 * limit cannot be raised without a capability. */
	a[0] = arg(0, SCMP_CMP_EQ, 0, 0);
	a[1] = arg(1, SCMP_CMP_EQ, RLIMIT_NPROC, 0);
	if ((rc = allow(ctx, SCMP_SYS(prlimit64), 2, a)) < 0)
		return rc;
	a[0] = arg(0, SCMP_CMP_EQ, RLIMIT_NPROC, 0);
	if ((rc = allow(ctx, SCMP_SYS(setrlimit), 1, a)) < 0)
		return rc;
#ifdef ECHOD_COVERAGE
	if ((rc = coverage_rules(ctx)) < 0)
		return rc;
#endif
	return 0;
}

/* LeakSanitizer's exit-time check stops the world with clone and ptrace
 * and reads /proc, which the filter forbids the parent from now on: in
 * sanitizer builds it runs here instead (the parent allocates nothing
 * later). */
extern void __lsan_do_leak_check(void) __attribute__((weak));

int sandbox_install(char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc;

	if (__lsan_do_leak_check != NULL)
		__lsan_do_leak_check();
	probe_landlock();
#ifdef ECHOD_COVERAGE
	coverage_open_dir(); /* before the filter forbids it */
#endif
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	rc = add_rules(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_rule_add: %s", strerror(-rc));
		goto fail;
	}
	/* Without no_new_privs an unprivileged process may not install a
	 * filter (and a setuid exec could otherwise escape it). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s",
			 strerror(errno));
		goto fail;
	}
	rc = seccomp_load(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_load: %s", strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	installed = 1;
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}

int sandbox_writer(int dirfd)
{
	int rc;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	probe_landlock();
#ifdef ECHOD_COVERAGE
	/* Forked before sandbox_install(): its gcov counts need the build
	 * directory too. */
	if (coverage_dir < 0)
		coverage_open_dir();
#endif
	/* Write, create, replace (rename over) and truncate files beneath
	 * its folder; nothing else on any file system. */
	rc = enter_landlock(dirfd, LL_FS_WRITE_FILE | LL_FS_MAKE_REG |
				       LL_FS_REMOVE_FILE | LL_FS_TRUNCATE);
	coverage_child_done(); /* coverage builds only */
	return rc;
}

#else /* !ECHOD_SANDBOX */

int sandbox_writer(int dirfd)
{
	(void)dirfd;
	return 0;
}

const char *sandbox_name(void)
{
	return "off";
}

const char *sandbox_features(void)
{
	return "off";
}

int sandbox_install(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

/* Without the filter the per-child steps would still hold (uid, rlimit,
 * Landlock), but a build without the sandbox is for Valgrind, which
 * cannot follow them: only the parent-death signal is kept. */
int sandbox_child(pid_t parent)
{
	if (parent > 0 &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

#endif /* ECHOD_SANDBOX */
