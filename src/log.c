/*
 * log.c - see log.h.
 */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "log.h"
#include "opts.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "echod";
static enum log_level log_level = LOG_LEVEL_INFO;
static long log_pid;
static int log_use_send; /* stderr is a socket: send(MSG_DONTWAIT) */
static int log_fd = STDERR_FILENO;
static int log_syslog;		/* log_fd is /dev/log: one datagram per line */
static uint64_t log_dropped;	/* lines this process could not write */
static uint64_t log_unreported; /* of those, not yet announced */

void log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log_level = level;
	log_pid = (long)getpid();
}

void log_reinit_pid(void)
{
	log_pid = (long)getpid();
	/* The parent counts and announces its own drops. */
	log_dropped = 0;
	log_unreported = 0;
}

/* A stalled reader of stderr (a pipe nobody drains, a terminal after
 * XOFF) must never stop serving or shutdown: every write is non-blocking
 * and a line that does not fit at once is dropped and counted. O_NONBLOCK
 * belongs to the open file description, which echod shares with whoever
 * else holds it (the shell's terminal, the other end of a pipeline), so
 * pipes and terminals are reopened through /proc as a description of our
 * own; a socket (the journal's stream) gets MSG_DONTWAIT per send. */
int log_set_nonblocking(void)
{
	struct stat st;
	int fd, fl;

	if (fstat(STDERR_FILENO, &st) < 0)
		return -1;
	if (S_ISSOCK(st.st_mode)) {
		log_use_send = 1;
		return 0;
	}
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return 0; /* a regular file does not stall */
	fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0) {
		if (fd != STDERR_FILENO) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	} else if (S_ISFIFO(st.st_mode)) {
		fl = fcntl(STDERR_FILENO, F_GETFL);
		if (fl < 0 ||
		    fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK) < 0)
			return -1;
	} else {
		return -1;
	}
	/* Room for bursts (a thousand children closing at once) before
	 * anything is dropped; best effort, the kernel caps it. */
	if (S_ISFIFO(st.st_mode))
		(void)fcntl(STDERR_FILENO, F_SETPIPE_SZ, LOG_PIPE_SIZE);
	return 0;
}

/* Connected before the sandbox (which forbids socket and connect): the
 * children inherit it, and a line is one send(). glibc's syslog() is not
 * used: it reconnects by itself when the socket fails, and it reads the
 * time zone files. */
int log_open_syslog(void)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, LOG_SYSLOG_PATH, sizeof(LOG_SYSLOG_PATH));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	log_fd = fd;
	log_use_send = 1;
	log_syslog = 1;
	return 0;
}

void log_discard(void)
{
	log_fd = -1;
}

void log_dropped_elsewhere(uint64_t n)
{
	log_unreported += n;
}

uint64_t log_dropped_total(void)
{
	return log_dropped;
}

int log_enabled(enum log_level level)
{
	return level <= log_level;
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm): gmtime_r
 * may open /etc/localtime on first use, which the sandbox forbids. */
static void civil(long days, int *y, int *m, int *d)
{
	long z = days + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned long doe = (unsigned long)(z - era * 146097);
	unsigned long yoe =
	    (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned long mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)((long)yoe + era * 400 + (*m <= 2));
}

/* "2026-11-25T13:40:01.123Z echod[1234]: " into buf, or for syslog
 * "<28>echod[1234]: " (facility daemon, the severity; no time stamp: the
 * receiver adds its own, in its own time zone); returns its length. */
static int prefix(char *buf, size_t len, int severity)
{
	struct timespec ts;
	long days, secs;
	int y, mo, d, n;

	if (log_syslog) {
		n = snprintf(buf, len, "<%d>%s[%ld]: ", 3 * 8 + severity,
			     log_prog, log_pid);
		return n < 0 ? 0 : n >= (int)len ? (int)len - 1 : n;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	days = ts.tv_sec / 86400;
	secs = ts.tv_sec % 86400;
	civil(days, &y, &mo, &d);
	n = snprintf(buf, len,
		     "%04d-%02d-%02dT%02ld:%02ld:%02ld.%03ldZ %s[%ld]: ", y, mo,
		     d, secs / 3600, secs / 60 % 60, secs % 60,
		     ts.tv_nsec / 1000000, log_prog, log_pid);
	return n < 0 ? 0 : n >= (int)len ? (int)len - 1 : n;
}

/* One line, written at once or not at all: -1 when it would block or
 * the reader is gone. A pipe takes a line of at most PIPE_BUF bytes whole
 * or not at all; a terminal may take part of it, and the rest is tried
 * once more. */
static int emit(const char *b, size_t len)
{
	ssize_t w;
	int tries = 0;

	if (log_fd < 0)
		return -1;
	if (log_syslog && len > 0 && b[len - 1] == '\n')
		len--; /* a datagram is the line */
	while (len > 0) {
		if (log_use_send)
			w = send(log_fd, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			w = write(log_fd, b, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0 || ++tries > 2)
			return -1;
		b += w;
		len -= (size_t)w;
	}
	return 0;
}

/* syslog(3)'s severities, for the syslog prefix. */
enum {
	SEV_ERR = 3,
	SEV_WARNING = 4,
	SEV_NOTICE = 5,
	SEV_INFO = 6,
	SEV_DEBUG = 7
};

__attribute__((format(printf, 3, 0))) static void
vlog(int sev, const char *sfx, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n, k, saved = errno;
	size_t len;

	n = prefix(line, sizeof(line), sev);
	k = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (k > 0)
		n += k;
	if (sfx != NULL && (size_t)n < sizeof(line)) {
		k = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", sfx);
		if (k > 0)
			n += k;
	}
	/* Keep room for the newline; mark a cut line. */
	if ((size_t)n > sizeof(line) - 2) {
		n = (int)sizeof(line) - 2;
		memcpy(line + n - 3, "...", 3);
	}
	line[n++] = '\n';
	len = (size_t)n;
	if (log_unreported > 0) {
		/* Say what was lost before the first line that gets through. */
		char note[128];
		int m = prefix(note, sizeof(note), SEV_WARNING);

		m += snprintf(note + m, sizeof(note) - (size_t)m,
			      "log: %llu lines dropped (stderr stalled)\n",
			      (unsigned long long)log_unreported);
		if (emit(note, (size_t)m) < 0) {
			log_dropped++;
			log_unreported++;
			errno = saved;
			return;
		}
		log_unreported = 0;
	}
	if (emit(line, len) < 0) {
		log_dropped++;
		log_unreported++;
	}
	errno = saved;
}

#define LOG_FN(name, level, sev, with_errno)                                   \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		const char *sfx = with_errno ? strerror(errno) : NULL;         \
		va_list ap;                                                    \
		if (!log_enabled(level))                                       \
			return;                                                \
		va_start(ap, fmt);                                             \
		vlog(sev, sfx, fmt, ap);                                       \
		va_end(ap);                                                    \
	}

LOG_FN(log_info, LOG_LEVEL_INFO, SEV_INFO, 0)
LOG_FN(log_notice, LOG_LEVEL_ERROR, SEV_NOTICE, 0)
LOG_FN(log_warn, LOG_LEVEL_ERROR, SEV_WARNING, 1)
LOG_FN(log_warnx, LOG_LEVEL_ERROR, SEV_WARNING, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, SEV_DEBUG, 0)

void log_vprint(enum log_level level, const char *fmt, va_list ap)
{
	if (log_enabled(level))
		vlog(level == LOG_LEVEL_ERROR ? SEV_WARNING : SEV_INFO, NULL,
		     fmt, ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SEV_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

char *log_escape(char *dst, size_t dstlen, const void *src, size_t n,
		 size_t cut)
{
	/* One escaping for -v and for option errors (parse.c). */
	return parse_escape_bytes(dst, dstlen, src, n, cut);
}
