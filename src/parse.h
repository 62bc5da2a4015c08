/*
 * parse.h - the command-line spellings shared by echod, echo-client and
 * echo-stress, so that a value one of them accepts means the same to the
 * others, and the way they quote a bad argument back. Pure: no I/O, no
 * allocation.
 */
#ifndef ECHOD_PARSE_H
#define ECHOD_PARSE_H

#include <getopt.h>
#include <stddef.h>
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
 * Returns 0 and sets *out, or, leaving *out alone, PARSE_DELIM_BAD (not a
 * spelling of one byte) or PARSE_DELIM_SPLITS_REPLY (a byte of
 * PROTO_ERR_TOO_LONG). The second is refused here rather than by each
 * program so that echod and the two clients cannot disagree about it.
 */
#define PARSE_DELIM_BAD		 (-1)
#define PARSE_DELIM_SPLITS_REPLY (-2)
int parse_delim(const char *s, uint8_t *out);

/* Why PARSE_DELIM_SPLITS_REPLY, worded the same by all three programs. */
#define PARSE_DELIM_SPLITS_WHY                                                 \
	"it occurs in the reply \"" PROTO_ERR_TOO_LONG "\" and would split it"

/*
 * parse_delim_splits_reply: 1 when byte d occurs in the line-mode reply
 * PROTO_ERR_TOO_LONG, else 0. Such a delimiter would end the reply early
 * and make its tail look like one more message to every client.
 */
int parse_delim_splits_reply(uint8_t d);

/* parse_mode: "raw", "line" or "frame". Returns 0 and sets *out, or -1. */
int parse_mode(const char *s, enum proto_mode *out);

/*
 * Arguments quoted in error messages come from whoever wrote the command
 * line (a script, a config file, an attacker): a newline or an escape
 * sequence in one must not reach the terminal or the log as it is.
 * PARSE_ESC_CUT source bytes at most are shown; a buffer of PARSE_ESC_SIZE
 * bytes holds an 80-character argument whole, while one of control bytes
 * (4 characters each) is cut earlier, so that a message with an argument
 * still fits a 256-byte line.
 */
#define PARSE_ESC_CUT  80u
#define PARSE_ESC_SIZE 128u

/*
 * parse_escape_bytes: src[0..n) as printable ASCII into dst: \n, \t, \r,
 * \\ and \" as backslash escapes, any other byte below 0x20 or from 0x7f
 * up as \xNN; at most `cut` source bytes, and no more than fits dst;
 * "..." appended when cut. Always NUL-terminated (when dstlen > 0).
 * The same output as echod's -v message log. Returns dst.
 */
char *parse_escape_bytes(char *dst, size_t dstlen, const void *src, size_t n,
			 size_t cut);

/* parse_escape: parse_escape_bytes of the C string src. */
char *parse_escape(char *dst, size_t dstlen, const char *src, size_t cut);

/*
 * parse_getopt_error: why getopt_long() refused an option, as one line
 * (no newline) in dst, the option escaped: "unknown option '-x'",
 * "unknown option '--bogus'", "ambiguous option '--max'", "option
 * '--quiet' takes no argument", "option '-p' requires an argument".
 * Call it when getopt_long(), with opterr = 0 and an optstring starting
 * with ':', returned c ('?' or ':'); opt is optopt, word argv[optind - 1].
 * The programs print this instead of getopt's own messages, which would
 * show the argument raw, and instead of argv[optind - 1] alone, which
 * names the argument before "-x5" (getopt has not yet left that word).
 */
void parse_getopt_error(char *dst, size_t dstlen, int c, int opt,
			const char *word, const char *shortopts,
			const struct option *longopts);

/*
 * An address block for --proxy-from: the 16-byte form of net_addr_key()
 * (IPv4 as ::ffff:a.b.c.d, so that an IPv4 client on a dual-stack socket
 * and an IPv4 block compare alike) and how many leading bits must match
 * (an IPv4 /n is 96 + n of them).
 */
struct parse_cidr {
	uint8_t addr[16]; /* the bits past `bits` are zero */
	uint8_t bits;	  /* 0-128 */
};

/*
 * parse_cidr: "10.0.0.0/8", "2001:db8::/32", or a bare address (/32,
 * /128); an IPv6 block may be written in brackets ("[::1]/128"). The
 * prefix length is decimal without leading zeros, within the family's
 * width; host bits set below the prefix ("10.0.0.1/8") are refused, as
 * they usually mean a typo. Returns 0 and sets *out, or -1.
 */
int parse_cidr(const char *s, struct parse_cidr *out);

/*
 * parse_cidr_list: a comma-separated list of parse_cidr() blocks into
 * out[0..max), the count in *n. Returns 0, or -1 with *bad pointing at
 * the first block that is not one (NULL when there are more than max,
 * or an empty element).
 */
int parse_cidr_list(const char *s, struct parse_cidr *out, size_t max,
		    size_t *n, const char **bad);

/* parse_cidr_match: whether the 16-byte key (net_addr_key) is in c. */
int parse_cidr_match(const struct parse_cidr *c, const uint8_t key[16]);

/* parse_cidr_list_match: whether it is in any of list[0..n). */
int parse_cidr_list_match(const struct parse_cidr *list, size_t n,
			  const uint8_t key[16]);

#endif /* ECHOD_PARSE_H */
