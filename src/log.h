/*
 * log.h - echod's logging: stderr, one line per event, one write(2) per line
 * so that lines from many children never interleave:
 *
 *   2026-11-25T13:40:01.123Z echod[1234]: listening on [::]:9999
 *
 * Safe after fork() and inside the sandbox: no allocation, no stdio, no
 * time zone files (the UTC date is computed by hand), the pid is cached.
 * Never blocks: a line stderr cannot take at once is dropped and counted,
 * and the next line that gets through is preceded by
 * "log: N lines dropped (stderr stalled)".
 * Never call it from a signal handler.
 */
#ifndef ECHOD_LOG_H
#define ECHOD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERROR = 0, /* shown with -q */
	LOG_LEVEL_INFO = 1,  /* the default */
	LOG_LEVEL_DEBUG = 2, /* -v */
};

/* log_init: set the program name, the level and cache the pid. */
void log_init(const char *prog, enum log_level level);
/* log_reinit_pid: cache the pid again (in a child, after fork). */
void log_reinit_pid(void);
/* log_set_nonblocking: make every later write to stderr non-blocking
 * (see log.c); call once at start. Returns 0, or -1 when stderr stays
 * blocking (a terminal that cannot be reopened). */
int log_set_nonblocking(void);
/* Where --syslog sends lines (the local syslog socket). */
#define LOG_SYSLOG_PATH "/dev/log"
/* log_open_syslog: from now on every line is one datagram to
 * LOG_SYSLOG_PATH (facility daemon), over a socket connected now, before
 * the sandbox. Returns 0, or -1 (errno set) and logging stays as it was. */
int log_open_syslog(void);
/* log_discard: drop every later line (inetd mode with stderr the client's
 * connection and no syslog: no byte of log may reach the client). */
void log_discard(void);
/* log_dropped_total: lines this process dropped because stderr was
 * stalled. */
uint64_t log_dropped_total(void);
/* log_dropped_elsewhere: n lines another process dropped (a child's
 * report), to be announced with this process's next line that gets
 * through. Not added to log_dropped_total(). */
void log_dropped_elsewhere(uint64_t n);
/* log_enabled: whether messages of this level are written. */
int log_enabled(enum log_level level);

/* Informational (hidden by -q). */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Always shown, even with -q: the lines scripts rely on ("listening on",
 * the final counters). */
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning with ": " and strerror(errno) appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning without errno. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Shown with -v only. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line at this level, without errno, from a caller that passes its
 * arguments on (server_sys.c, for the server loop's lines). */
void log_vprint(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* An error, then exit(1). */
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * log_escape: write src[0..n) to dst as printable ASCII (\n, \t, \\, \",
 * \xNN), at most `cut` source bytes, "..." appended when cut; always
 * NUL-terminated. Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const void *src, size_t n,
		 size_t cut);

#endif /* ECHOD_LOG_H */
