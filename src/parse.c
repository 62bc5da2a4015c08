/*
 * parse.c - see parse.h.
 */
#include "parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull would accept leading spaces, a sign and wrap "-1". */
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int parse_delim(const char *s, uint8_t *out)
{
	if (strcmp(s, "lf") == 0) {
		*out = '\n';
		return 0;
	}
	if (strcmp(s, "nul") == 0) {
		*out = '\0';
		return 0;
	}
	if (s[0] != '\0' && s[1] == '\0') {
		*out = (uint8_t)s[0];
		return 0;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && hexval(s[2]) >= 0 &&
	    hexval(s[3]) >= 0 && s[4] == '\0') {
		*out = (uint8_t)(hexval(s[2]) << 4 | hexval(s[3]));
		return 0;
	}
	return -1;
}

int parse_mode(const char *s, enum proto_mode *out)
{
	static const char *const names[] = {[PROTO_RAW] = "raw",
					    [PROTO_LINE] = "line",
					    [PROTO_FRAME] = "frame"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum proto_mode)i;
			return 0;
		}
	return -1;
}
