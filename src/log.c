/*
 * log.c - see log.h.
 */
#include "log.h"
#include "opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "echod";
static enum log_level log_level = LOG_LEVEL_INFO;
static long log_pid;

void log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log_level = level;
	log_pid = (long)getpid();
}

void log_reinit_pid(void)
{
	log_pid = (long)getpid();
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

__attribute__((format(printf, 2, 0))) static void
vlog(const char *sfx, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	long days, secs;
	int y, mo, d, n, k, saved = errno;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	days = ts.tv_sec / 86400;
	secs = ts.tv_sec % 86400;
	civil(days, &y, &mo, &d);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02ld:%02ld:%02ld.%03ldZ %s[%ld]: ", y, mo,
		     d, secs / 3600, secs / 60 % 60, secs % 60,
		     ts.tv_nsec / 1000000, log_prog, log_pid);
	if (n < 0)
		n = 0;
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
	while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
		;
	errno = saved;
}

#define LOG_FN(name, level, with_errno)                                        \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		const char *sfx = with_errno ? strerror(errno) : NULL;         \
		va_list ap;                                                    \
		if (!log_enabled(level))                                       \
			return;                                                \
		va_start(ap, fmt);                                             \
		vlog(sfx, fmt, ap);                                            \
		va_end(ap);                                                    \
	}

LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_notice, LOG_LEVEL_ERROR, 0)
LOG_FN(log_warn, LOG_LEVEL_ERROR, 1)
LOG_FN(log_warnx, LOG_LEVEL_ERROR, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

char *log_escape(char *dst, size_t dstlen, const void *src, size_t n,
		 size_t cut)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t i, o = 0;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < n && i < cut; i++) {
		char e[4];
		size_t el = 0;
		unsigned char c = s[i];

		if (c == '\n' || c == '\t' || c == '\r' || c == '\\' ||
		    c == '"') {
			e[el++] = '\\';
			e[el++] = c == '\n'   ? 'n'
				  : c == '\t' ? 't'
				  : c == '\r' ? 'r'
					      : (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			e[el++] = '\\';
			e[el++] = 'x';
			e[el++] = hex[c >> 4];
			e[el++] = hex[c & 15];
		} else {
			e[el++] = (char)c;
		}
		if (o + el + 4 > dstlen) /* room for "..." and NUL */
			break;
		memcpy(dst + o, e, el);
		o += el;
	}
	if (i < n && o + 4 <= dstlen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}
