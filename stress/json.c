/*
 * json.c - a small recursive-descent JSON reader (RFC 8259), see json.h.
 * Nesting is limited (JSON_MAX_DEPTH) so that no input can exhaust the
 * stack; \u escapes are decoded to UTF-8 (surrogate pairs joined).
 */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct parser {
	const char *p, *end, *start;
	char *err;
	size_t errlen;
	int failed;
};

static int fail(struct parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->failed)
		return -1;
	ps->failed = 1;
	n = snprintf(ps->err, ps->errlen,
		     "byte %zu: ", (size_t)(ps->p - ps->start));
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, "unexpected character");
	ps->p += n;
	return 0;
}

static int hex4(struct parser *ps, unsigned *v)
{
	int i;

	*v = 0;
	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	for (i = 0; i < 4; i++) {
		char c = *ps->p++;

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return fail(ps, "bad \\u escape");
	}
	return 0;
}

static size_t utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at ps->p (the opening quote), decoded into a malloc'd buffer:
 * never longer than its escaped form. */
static int string(struct parser *ps, char **out)
{
	const char *q = ++ps->p;
	char *s, *o;

	while (q < ps->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= ps->end)
		return fail(ps, "unterminated string");
	s = o = malloc((size_t)(q - ps->p) + 1);
	if (!s)
		return fail(ps, "out of memory");
	while (*ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p++;
		unsigned cp, lo;

		if (c < 0x20) {
			free(s);
			return fail(ps, "control character in a string");
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		switch (*ps->p++) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '/':
			*o++ = '/';
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u':
			if (hex4(ps, &cp) < 0) {
				free(s);
				return -1;
			}
			if (cp >= 0xd800 && cp < 0xdc00 &&
			    ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
			    ps->p[1] == 'u') {
				const char *save = ps->p;

				ps->p += 2;
				if (hex4(ps, &lo) < 0) {
					free(s);
					return -1;
				}
				if (lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
				else
					ps->p = save;
			}
			/* 6 escaped bytes (12 for a pair) give at most 4 */
			o += utf8(o, cp);
			break;
		default:
			free(s);
			return fail(ps, "bad escape");
		}
	}
	ps->p++;
	*o = 0;
	*out = s;
	return 0;
}

static int number(struct parser *ps, struct json *j)
{
	const char *b = ps->p;
	char *end;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "unexpected character");
	while (ps->p < ps->end &&
	       ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' ||
		*ps->p == 'e' || *ps->p == 'E' || *ps->p == '+' ||
		*ps->p == '-'))
		ps->p++;
	j->type = JSON_NUM;
	j->str = malloc((size_t)(ps->p - b) + 1);
	if (!j->str)
		return fail(ps, "out of memory");
	memcpy(j->str, b, (size_t)(ps->p - b));
	j->str[ps->p - b] = 0;
	errno = 0;
	j->num = strtod(j->str, &end);
	if (*end || errno == EINVAL) {
		ps->p = b;
		return fail(ps, "bad number");
	}
	return 0;
}

static int value(struct parser *ps, struct json *j, int depth);

/* An array or an object: members appended to j, grown by doubling. */
static int members(struct parser *ps, struct json *j, int depth, int obj)
{
	size_t cap = 0;

	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
		ps->p++;
		return 0;
	}
	for (;;) {
		char *key = NULL;

		if (j->n == cap) {
			size_t nc = cap ? 2 * cap : 8;
			struct json *k = realloc(j->kids, nc * sizeof(*k));
			char **ks = NULL;

			if (k)
				j->kids = k;
			if (obj) {
				ks = realloc(j->keys, nc * sizeof(*ks));
				if (ks)
					j->keys = ks;
			}
			if (!k || (obj && !ks))
				return fail(ps, "out of memory");
			cap = nc;
		}
		skip_ws(ps);
		if (obj) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a member name");
			if (string(ps, &key) < 0)
				return -1;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return fail(ps, "expected ':'");
			}
			ps->p++;
			j->keys[j->n] = key;
		}
		memset(&j->kids[j->n], 0, sizeof(j->kids[j->n]));
		j->n++;
		if (value(ps, &j->kids[j->n - 1], depth + 1) < 0)
			return -1;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
			ps->p++;
			return 0;
		}
		return fail(ps, obj ? "expected ',' or '}'"
				    : "expected ',' or ']'");
	}
}

static int value(struct parser *ps, struct json *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return fail(ps, "nested too deep");
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end");
	switch (*ps->p) {
	case '{':
		j->type = JSON_OBJ;
		return members(ps, j, depth, 1);
	case '[':
		j->type = JSON_ARR;
		return members(ps, j, depth, 0);
	case '"':
		j->type = JSON_STR;
		return string(ps, &j->str);
	case 't':
		j->type = JSON_BOOL;
		j->boolean = 1;
		return literal(ps, "true");
	case 'f':
		j->type = JSON_BOOL;
		return literal(ps, "false");
	case 'n':
		j->type = JSON_NULL;
		return literal(ps, "null");
	default:
		return number(ps, j);
	}
}

static void json_clear(struct json *j)
{
	size_t i;

	for (i = 0; i < j->n; i++) {
		json_clear(&j->kids[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->kids);
	free(j->keys);
	free(j->str);
}

void json_free(struct json *j)
{
	if (j) {
		json_clear(j);
		free(j);
	}
}

struct json *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct parser ps = {text, text + len, text, err, errlen, 0};
	struct json *j = calloc(1, sizeof(*j));

	if (!j) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (value(&ps, j, 0) == 0) {
		skip_ws(&ps);
		if (ps.p == ps.end)
			return j;
		fail(&ps, "text after the value");
	}
	json_free(j);
	return NULL;
}

const struct json *json_get(const struct json *j, const char *key)
{
	size_t i;

	if (!j || j->type != JSON_OBJ)
		return NULL;
	for (i = 0; i < j->n; i++)
		if (!strcmp(j->keys[i], key))
			return &j->kids[i];
	return NULL;
}

int json_u64(const struct json *j, uint64_t *out)
{
	const char *s;
	uint64_t v = 0;

	if (!j || j->type != JSON_NUM)
		return -1;
	for (s = j->str; *s; s++) {
		if (*s < '0' || *s > '9' ||
		    v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

int json_f64(const struct json *j, double *out)
{
	if (!j || j->type != JSON_NUM)
		return -1;
	*out = j->num;
	return 0;
}
