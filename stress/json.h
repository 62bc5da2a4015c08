/*
 * json.h - a small JSON reader for `echo-stress merge`: the whole text to
 * a tree, numbers kept as their text too so that 64-bit counts are read
 * exactly.
 */
#ifndef ECHO_STRESS_JSON_H
#define ECHO_STRESS_JSON_H

#include <stddef.h>
#include <stdint.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
	enum json_type type;
	int boolean;
	double num;
	char *str; /* JSON_STR: the decoded string; JSON_NUM: its text */
	size_t n;  /* JSON_ARR, JSON_OBJ: number of members */
	struct json *kids; /* their values */
	char **keys;	   /* JSON_OBJ: their names */
};

/* json_parse: the tree of text[0..len), or NULL with a reason in err. */
struct json *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(struct json *j);

/* json_get: member key of an object; NULL if j is no object or has none. */
const struct json *json_get(const struct json *j, const char *key);
/* json_u64: an exact non-negative integer, or -1. */
int json_u64(const struct json *j, uint64_t *out);
/* json_f64: any number, or -1. */
int json_f64(const struct json *j, double *out);

#endif /* ECHO_STRESS_JSON_H */
