/*
 * sandbox.h - the children's seccomp filter.
 *
 * Building a libseccomp filter costs far more than a fork, so the parent
 * builds it once (sandbox_prepare), keeps only the compiled BPF program and
 * each child installs that (sandbox_enter): two prctl() calls.
 */
#ifndef ECHOD_SANDBOX_H
#define ECHOD_SANDBOX_H

#include <stddef.h>

/* sandbox_name: "seccomp" when compiled in, else "off". */
const char *sandbox_name(void);

/* sandbox_prepare: build the filter. Returns 0, or -1 with the reason in
 * err. A build without the sandbox returns 0. */
int sandbox_prepare(char *err, size_t errlen);

/* sandbox_enter: install the prepared filter in this process. Returns 0 or
 * -1 with errno. Afterwards any system call outside the list kills the
 * process with SIGSYS. */
int sandbox_enter(void);

#endif /* ECHOD_SANDBOX_H */
