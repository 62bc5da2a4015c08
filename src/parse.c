/*
 * parse.c - see parse.h.
 */
#include "parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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

int parse_delim_splits_reply(uint8_t d)
{
	/* The reply's bytes only: its terminating NUL is no part of it, so
	 * "nul" stays a valid delimiter. */
	return memchr(PROTO_ERR_TOO_LONG, d, PROTO_ERR_TOO_LONG_LEN) != NULL;
}

int parse_delim(const char *s, uint8_t *out)
{
	uint8_t d;

	/* The words first: "lf" and "nul" are spellings of 0x0a and 0x00,
	 * not of their letters. */
	if (strcmp(s, "lf") == 0)
		d = '\n';
	else if (strcmp(s, "nul") == 0)
		d = '\0';
	else if (s[0] != '\0' && s[1] == '\0')
		d = (uint8_t)s[0];
	else if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
		 hexval(s[2]) >= 0 && hexval(s[3]) >= 0 && s[4] == '\0')
		d = (uint8_t)(hexval(s[2]) << 4 | hexval(s[3]));
	else
		return PARSE_DELIM_BAD;
	if (parse_delim_splits_reply(d))
		return PARSE_DELIM_SPLITS_REPLY;
	*out = d;
	return 0;
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

char *parse_escape_bytes(char *dst, size_t dstlen, const void *src, size_t n,
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

char *parse_escape(char *dst, size_t dstlen, const char *src, size_t cut)
{
	/* One byte past the cut is enough to know whether to add "...", and
	 * spares scanning a huge argument. */
	size_t n = cut < SIZE_MAX ? strnlen(src, cut + 1) : strlen(src);

	return parse_escape_bytes(dst, dstlen, src, n, cut);
}

__attribute__((format(printf, 3, 4))) static void say(char *dst, size_t dstlen,
						      const char *fmt, ...)
{
	va_list ap;

	if (dst == NULL || dstlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(dst, dstlen, fmt, ap);
	va_end(ap);
}

void parse_getopt_error(char *dst, size_t dstlen, int c, int opt,
			const char *word, const char *shortopts,
			const struct option *longopts)
{
	char q[PARSE_ESC_SIZE];
	const char *name, *eq;
	size_t len, i, matches = 0;
	int is_long;

	/* word is a long option when it starts with "--" and is the word
	 * refused: with '?' a short option char that is not in shortopts
	 * means "-x" was refused inside a word getopt has not left, and word
	 * is the one before it ("--verbose -x"). A known short char in optopt
	 * with '?' is a long option given a value it does not take. */
	is_long = strncmp(word, "--", 2) == 0 &&
		  (c == ':' || opt == 0 || opt >= 256 ||
		   (opt != ':' && strchr(shortopts, opt) != NULL));
	if (!is_long) {
		char w[2] = {'-', (char)opt};

		parse_escape_bytes(q, sizeof(q), w, sizeof(w), PARSE_ESC_CUT);
		if (c == ':')
			say(dst, dstlen, "option '%s' requires an argument", q);
		else
			say(dst, dstlen, "unknown option '%s'", q);
		return;
	}
	name = word + 2;
	eq = strchr(name, '=');
	len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	parse_escape_bytes(q, sizeof(q), word, len + 2, PARSE_ESC_CUT);
	if (c == ':') {
		say(dst, dstlen, "option '%s' requires an argument", q);
		return;
	}
	/* getopt_long says only '?' (optopt 0) for an unknown name and for
	 * an ambiguous prefix; the table tells them apart. */
	for (i = 0; longopts[i].name != NULL; i++) {
		if (strncmp(longopts[i].name, name, len) != 0)
			continue;
		if (longopts[i].name[len] == '\0') {
			matches = 1;
			break;
		}
		matches++;
	}
	if (matches > 1) {
		say(dst, dstlen, "ambiguous option '%s'", q);
	} else if (matches == 1 && eq != NULL) {
		say(dst, dstlen, "option '%s' takes no argument", q);
	} else {
		/* The whole word, "=value" too: it may be what is wrong. */
		parse_escape(q, sizeof(q), word, PARSE_ESC_CUT);
		say(dst, dstlen, "unknown option '%s'", q);
	}
}

int parse_cidr(const char *s, struct parse_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(s, '/');
	size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	uint64_t bits = 0;
	struct parse_cidr c;
	unsigned width, i;
	int bracketed = n >= 2 && s[0] == '[' && s[n - 1] == ']';

	if (bracketed) {
		s++; /* "[::1]/128" */
		n -= 2;
	}
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(&c, 0, sizeof(c));
	if (!bracketed && inet_pton(AF_INET, buf, c.addr + 12) == 1) {
		c.addr[10] = c.addr[11] = 0xff;
		width = 32;
	} else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
		width = 128;
	} else {
		return -1;
	}
	if (slash != NULL && (parse_u64(slash + 1, 0, width, &bits) < 0 ||
			      (slash[1] == '0' && slash[2] != '\0')))
		return -1;
	if (slash == NULL)
		bits = width;
	c.bits = (uint8_t)(bits + 128 - width);
	for (i = c.bits; i < 128; i++)
		if (c.addr[i / 8] & (0x80u >> (i % 8)))
			return -1; /* host bits set */
	*out = c;
	return 0;
}

int parse_cidr_list(const char *s, struct parse_cidr *out, size_t max,
		    size_t *n, const char **bad)
{
	char one[INET6_ADDRSTRLEN + 8];
	const char *end;
	size_t len;

	*n = 0;
	*bad = NULL;
	for (;;) {
		end = strchr(s, ',');
		len = end != NULL ? (size_t)(end - s) : strlen(s);
		if (len == 0 || *n == max)
			return -1;
		*bad = s;
		if (len >= sizeof(one))
			return -1;
		memcpy(one, s, len);
		one[len] = '\0';
		if (parse_cidr(one, &out[*n]) < 0)
			return -1;
		*bad = NULL;
		++*n;
		if (end == NULL)
			return 0;
		s = end + 1;
	}
}

int parse_cidr_match(const struct parse_cidr *c, const uint8_t key[16])
{
	unsigned full = c->bits / 8u, rest = c->bits % 8u;
	uint8_t mask = (uint8_t)(0xffu << (8u - rest));

	if (memcmp(c->addr, key, full) != 0)
		return 0;
	return rest == 0 || ((key[full] ^ c->addr[full]) & mask) == 0;
}

int parse_cidr_list_match(const struct parse_cidr *list, size_t n,
			  const uint8_t key[16])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (parse_cidr_match(&list[i], key))
			return 1;
	return 0;
}
