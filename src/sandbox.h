/*
 * sandbox.h - echod's sandbox: one seccomp filter for the whole process
 * tree, and a per-child confinement that needs no BPF.
 *
 * Why not a filter per child: compiling a seccomp program runs the kernel's
 * BPF JIT, and on some kernels (6.18 here) thousands of compilations a
 * second deadlock its program allocator and take the machine down
 * (SECURITY.md, F0). So the parent loads one filter into itself, once,
 * before the first fork; every child inherits it (the kernel shares an
 * inherited filter, it does not compile it again). That filter allows the
 * union of what the parent and a child do. What a child must not do but
 * the parent must (fork, signal, accept) is then taken away per child by
 * means that compile nothing: the listener closed, RLIMIT_NPROC 0 with an
 * unprivileged uid, no capabilities, and a Landlock domain of its own that
 * scopes signals, files and TCP binds/connects.
 */
#ifndef ECHOD_SANDBOX_H
#define ECHOD_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* The uid and gid children of a root parent run as (the kernel's
 * overflow ids, "nobody"/"nogroup" on Debian): unprivileged, owning no
 * files, and under RLIMIT_NPROC 0 unable to fork. */
#define SANDBOX_CHILD_UID 65534u
#define SANDBOX_CHILD_GID 65534u

/* sandbox_name: "seccomp" when compiled in, else "off". */
const char *sandbox_name(void);

/* sandbox_features: what this kernel gives, known after sandbox_install():
 * "seccomp+landlock", "seccomp" (no Landlock signal scoping: see
 * SECURITY.md) or "off". */
const char *sandbox_features(void);

/*
 * sandbox_install: build the filter and load it into the calling process
 * (the parent), with no_new_privs. Call once, after every descriptor,
 * mapping and signal disposition the parent needs exists and before the
 * first fork. Returns 0, or -1 with the reason in err. A build without
 * the sandbox returns 0.
 */
int sandbox_install(char *err, size_t errlen);

/*
 * sandbox_child: confine a freshly forked child before it reads a byte:
 * drop to SANDBOX_CHILD_UID when root, drop every capability, RLIMIT_NPROC
 * 0, SIGKILL when the parent (pid `parent`; 0: none, in inetd mode)
 * dies, and a Landlock domain
 * (no file system access, no TCP bind/connect, signals and abstract unix
 * sockets scoped to the child) where the kernel has it. Descriptors are
 * the caller's business. Returns 0, or -1 with errno (the caller must
 * then not serve).
 */
int sandbox_child(pid_t parent);

/*
 * sandbox_writer: confine the metrics writer (metrics.c), forked before
 * the filter: no new privileges, and a Landlock domain (where the kernel
 * has it) that allows writing, creating and replacing files beneath the
 * folder dirfd and nothing else. Returns 0 or -1 with errno.
 */
int sandbox_writer(int dirfd);

#endif /* ECHOD_SANDBOX_H */
