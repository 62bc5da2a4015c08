/*
 * parse.h - the command-line spellings shared by echod, echo-client and
 * echo-stress, so that a value one of them accepts means the same to the
 * others. Pure: no I/O, no allocation.
 */
#ifndef ECHOD_PARSE_H
#define ECHOD_PARSE_H

#include <stdint.h>

#include "proto.h"

/*
 * parse_u64: s is a decimal number of digits only (no sign, no spaces, no
 * base prefix, nothing after it) within [min, max]. Returns 0 and sets
 * *out, or -1 leaving *out alone ("80x", "-1", "", overflow, out of range).
 */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * parse_delim: a line delimiter as SPEC section 3 spells it: "lf", "nul",
 * "0xNN" (exactly two hex digits, either case) or a single character.
 * Returns 0 and sets *out, or -1 leaving *out alone.
 */
int parse_delim(const char *s, uint8_t *out);

/* parse_mode: "raw", "line" or "frame". Returns 0 and sets *out, or -1. */
int parse_mode(const char *s, enum proto_mode *out);

#endif /* ECHOD_PARSE_H */
