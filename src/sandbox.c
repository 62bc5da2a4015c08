/*
 * sandbox.c - see sandbox.h.
 *
 * The allow-list is what a child does after sandbox_enter(): the serving
 * loop (read, write, ppoll), the lingering close (shutdown), logging
 * (write to stderr, clock_gettime for the timestamp) and leaving (close,
 * exit_group). Nothing opens, maps, creates sockets or executes.
 */
#define _GNU_SOURCE /* accept4, ppoll, memfd_create */
#include "sandbox.h"

#ifdef ECHOD_SANDBOX

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Far more room than the allow-list compiles to (about 20 instructions). */
#define SANDBOX_MAX_INSNS 512

static const int sandbox_allowed[] = {
    SCMP_SYS(read),	     /* the client; net_read */
    SCMP_SYS(write),	     /* the client; log lines to stderr */
    SCMP_SYS(ppoll),	     /* the serving loop */
    SCMP_SYS(poll),	     /* what poll() becomes on some libcs */
    SCMP_SYS(shutdown),	     /* the lingering close */
    SCMP_SYS(close),	     /* the connection at the end */
    SCMP_SYS(clock_gettime), /* when the vDSO is not used (Valgrind) */
    SCMP_SYS(rt_sigreturn),  /* return from the SIGTERM handler */
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group), /* _exit() */
#ifdef ECHOD_SANITIZER_RUNTIME
    /* The ASan/UBSan runtimes switch to their alternate signal stack when
     * a signal (SIGTERM at shutdown) arrives. Release builds do not. */
    SCMP_SYS(sigaltstack),
#endif
};

static struct sock_filter sandbox_insns[SANDBOX_MAX_INSNS];
static struct sock_fprog sandbox_prog;

const char *sandbox_name(void)
{
	return "seccomp";
}

int sandbox_prepare(char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	size_t i, got = 0;
	ssize_t n;
	int fd = -1, rc;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	for (i = 0; i < sizeof(sandbox_allowed) / sizeof(sandbox_allowed[0]);
	     i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sandbox_allowed[i],
				      0);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp_rule_add: %s",
				 strerror(-rc));
			goto fail;
		}
	}
	/* The compiled program goes through a memfd and back into a static
	 * array, so children need neither libseccomp nor the heap. */
	fd = memfd_create("echod-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		goto fail;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_export_bpf: %s", strerror(-rc));
		goto fail;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "lseek: %s", strerror(errno));
		goto fail;
	}
	while ((n = read(fd, (char *)sandbox_insns + got,
			 sizeof(sandbox_insns) - got)) > 0)
		got += (size_t)n;
	if (n < 0 || got == 0 || got % sizeof(struct sock_filter) != 0 ||
	    got == sizeof(sandbox_insns)) {
		snprintf(err, errlen, "seccomp filter: unexpected size %zu",
			 got);
		goto fail;
	}
	close(fd);
	seccomp_release(ctx);
	sandbox_prog.len = (unsigned short)(got / sizeof(struct sock_filter));
	sandbox_prog.filter = sandbox_insns;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return -1;
}

int sandbox_enter(void)
{
	if (sandbox_prog.len == 0) {
		errno = EINVAL;
		return -1;
	}
	/* Without no_new_privs an unprivileged process may not install a
	 * filter (and a setuid exec could otherwise escape it). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sandbox_prog, 0, 0);
}

#else /* !ECHOD_SANDBOX */

const char *sandbox_name(void)
{
	return "off";
}

int sandbox_prepare(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return 0;
}

int sandbox_enter(void)
{
	return 0;
}

#endif /* ECHOD_SANDBOX */
