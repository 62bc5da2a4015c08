/*
 * coverage.h - children's coverage counts, in coverage builds only.
 *
 * A child of echod leaves with exit_group(2) (conn.c: no libc exit path,
 * whose handlers may make calls the sandbox kills), so gcov's exit-time
 * writer never runs in it and everything a child executes (the session,
 * the child's side of conn.c, net.c, log.c...) would count as never run.
 * coverage_child_flush() writes the process's counts (merged into the
 * .gcda files under F_SETLKW locks, so concurrent children are safe) right
 * before that exit_group. The counts a child inherited from its parent at
 * fork() are written again, which only inflates the parent's line counts
 * (never whether a line ran); it is also what keeps the parent's lines
 * when a test SIGKILLs the parent, whose own exit-time write then never
 * happens.
 *
 * Built with -DECHOD_COVERAGE=ON (which defines ECHOD_COVERAGE), the
 * sandbox lets the calls of that write through and grants the children
 * the build directory (sandbox.c, SECURITY.md "Coverage builds");
 * otherwise this is an empty function and nothing changes.
 */
#ifndef ECHOD_COVERAGE_H
#define ECHOD_COVERAGE_H

#ifdef ECHOD_COVERAGE
/* libgcov's (gcc >= 11; compiler-rt's profile runtime has it too). */
void __gcov_dump(void);

static inline void coverage_child_flush(void)
{
	__gcov_dump();
}
#else
static inline void coverage_child_flush(void)
{
}
#endif

#endif /* ECHOD_COVERAGE_H */
