/*
 * proxy_fuzz.c - fuzz target of the PROXY protocol parser (src/proxy.c,
 * SPEC section 8).
 *
 * Input layout:
 *
 *   byte 0   bits 0-1 versions accepted: 0 any, 1 v1, 2 v2, 3 any
 *            bits 2-3 mode: 0, 1 encode; 2 raw; 3 mutate
 *   byte 1-2 seed of the random splits
 *   then     raw: the bytes the connection starts with, parsed as they are;
 *            encode: a field stream (below) from which the encoder builds
 *            a header; the bytes it leaves are the client's data, sent
 *            after the header;
 *            mutate: 3 bytes (what to change: class, index, xor), then the
 *            field stream as in encode; the header built is changed in one
 *            byte before it is parsed.
 *
 * The field stream, read a byte at a time (zeros once it is exhausted):
 *   version      bit 0: 0 v1, 1 v2
 *   v1           keyword (% 3: TCP4, TCP6, UNKNOWN); TCP4/TCP6: addresses
 *                (4 or 16 bytes each), ports (2 bytes each, big-endian), an
 *                IPv6 text form (% 5: inet_ntop, full %x, full %04X, first
 *                zero run compressed, dotted IPv4 tail); UNKNOWN: a tail
 *                length (0: "PROXY UNKNOWN\r\n"; else SP and that many
 *                bytes % 92, CR and LF replaced)
 *   v2           command (bit 0) and family (bits 1-2: UNSPEC, TCP4, TCP6,
 *                TCP4); the address block (12 or 36 bytes, LOCAL too); a
 *                TLV byte (bits 0-2 TLV count, bit 3 a CRC32C TLV, bits
 *                4-6 its place among the TLVs, bit 7 long values allowed);
 *                for each TLV a kind (% 8: ALPN, AUTHORITY, NOOP, UNIQUE_ID,
 *                SSL, NETNS, custom 0xE0-0xEF, any other type), a length
 *                (% 32; with bit 7, 0xff reads a 16-bit length whose value
 *                is a pattern, not stream bytes) and the value; SSL: client,
 *                verify (4), up to 3 sub-TLVs (type, length % 16, value)
 *
 * The oracle (any violation aborts):
 *   1. encode: the encoder in this file, written apart from proxy.c (its
 *      CRC32C bitwise, its text by snprintf and inet_ntop), knows the
 *      fields it wrote; the parser must return exactly them (version,
 *      command, proxied, family, addresses, ports, TLV count, CRC32C flag)
 *      and consume exactly the header: header_len bytes, the client data
 *      untouched; the same for the whole input at once, one byte at a time
 *      and seeded random splits (split invariance); a header of a version
 *      not accepted is PROXY_E_SIGNATURE at its first byte;
 *   2. reference equivalence, every mode: ref_parse(), a whole-buffer
 *      parser in this file (inet_pton for the addresses, offsets and a
 *      bitwise CRC32C for v2), gives the status, the bytes consumed (the
 *      header, the bytes up to the one that showed an error, or all) and
 *      the result of the incremental parser; in encode mode it must also
 *      agree with the encoder;
 *   3. the return contract of every call: consumed <= len; NEED_MORE with
 *      all consumed and a zero result; DONE and errors with > 0 consumed;
 *      terminal statuses stay terminal (nothing consumed, same result);
 *      v1 headers at most 107 bytes, v2 exactly 16 + their length field;
 *   4. raw and mutate: a DONE result re-encodes (canonical text or a bare
 *      v2 header) to a header that parses to the same fields;
 *   5. mutate (a byte xored, or a 16-bit length, the header's or a TLV's,
 *      moved by -4..-1 or 1..4 when bit 7 of the xor byte is clear): a
 *      changed signature byte is PROXY_E_SIGNATURE, a changed
 *      version nibble PROXY_E_VERSION, a command above 1 PROXY_E_COMMAND,
 *      a changed CRC32C value PROXY_E_CRC, a changed v2 address byte (no
 *      CRC32C) parses to the changed address; anything else as (2) says.
 * Memory: each call's input is copied to the end of a heap block, and the
 * whole input is a heap block of exactly its size, so ASan sees a read
 * past it.
 */
#define _GNU_SOURCE
#include "proxy.h"
#include "ref_crc32c.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIN_MAX 4096u
/* Room for the largest header and a little client data. */
#define BUF_MAX (PROXY_V2_MAX_LEN + 64u)

#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond))                                                   \
			fail(what, __LINE__);                                  \
	} while (0)

static void fail(const char *what, int line)
{
	fprintf(stderr, "proxy_fuzz: oracle violated: %s (proxy_fuzz.c:%d)\n",
		what, line);
	abort();
}

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static void put16(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static int same_result(const struct proxy_result *a,
		       const struct proxy_result *b)
{
	return a->version == b->version && a->command == b->command &&
	       a->proxied == b->proxied && a->crc32c == b->crc32c &&
	       a->family == b->family && memcmp(a->src, b->src, 16) == 0 &&
	       memcmp(a->dst, b->dst, 16) == 0 && a->src_port == b->src_port &&
	       a->dst_port == b->dst_port && a->tlvs == b->tlvs &&
	       a->header_len == b->header_len;
}

static int is_zero_bytes(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

static int is_zero(const struct proxy_result *r)
{
	struct proxy_result z;

	memset(&z, 0, sizeof(z));
	return memcmp(r, &z, sizeof(z)) == 0;
}

/* ---- reference parser: the whole input at hand, the text's rules ---- */

static const char sig_v1[] = "PROXY ";
static const uint8_t sig_v2[PROXY_V2_SIG_LEN] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

struct outcome {
	int status;
	size_t used; /* header bytes; error: up to the bad byte; else all */
	struct proxy_result r;
};

static int set(struct outcome *o, int status, size_t used)
{
	o->status = status;
	o->used = used;
	if (status != PROXY_DONE)
		memset(&o->r, 0, sizeof(o->r));
	return status;
}

static int ref_port(const char *s, uint16_t *port)
{
	size_t n = strlen(s);
	unsigned long v;

	if (n < 1 || n > 5 || strspn(s, "0123456789") != n ||
	    (n > 1 && s[0] == '0'))
		return -1;
	v = strtoul(s, NULL, 10);
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* The fields of a complete TCP4/TCP6 line, s[0..n) without CRLF. */
static int ref_fields(int fam, const uint8_t *s, size_t n,
		      struct proxy_result *r)
{
	char buf[PROXY_V1_MAX_LEN + 1], *f[4];
	size_t i, spaces = 0;
	int af = fam == 4 ? AF_INET : AF_INET6;

	memcpy(buf, s, n);
	buf[n] = '\0';
	for (i = 0; i < n; i++)
		spaces += buf[i] == ' ';
	if (spaces != 3 || n == 0 || buf[0] == ' ' || buf[n - 1] == ' ' ||
	    strstr(buf, "  ") != NULL)
		return -1;
	f[0] = buf;
	for (i = 1; i < 4; i++) {
		f[i] = strchr(f[i - 1], ' ');
		*f[i]++ = '\0';
	}
	if (inet_pton(af, f[0], r->src) != 1 ||
	    inet_pton(af, f[1], r->dst) != 1 ||
	    ref_port(f[2], &r->src_port) != 0 ||
	    ref_port(f[3], &r->dst_port) != 0)
		return -1;
	r->family = af;
	r->proxied = 1;
	return 0;
}

static int v1_field_char(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F') || c == '.' || c == ':' || c == ' ' ||
	       c == '\r';
}

static int ref_v1(const uint8_t *d, size_t n, struct outcome *o)
{
	static const char *const keys[4] = {"TCP4 ", "TCP6 ", "UNKNOWN ",
					    "UNKNOWN\r"};
	static const int fams[4] = {4, 6, 0, 0};
	size_t lim = n < PROXY_V1_MAX_LEN ? n : PROXY_V1_MAX_LEN;
	size_t i, body = 0, k;
	int fam = -1;

	for (i = 0; i < 6; i++) {
		if (i == lim)
			return set(o, PROXY_NEED_MORE, n);
		if (d[i] != (uint8_t)sig_v1[i])
			return set(o, PROXY_E_SIGNATURE, i + 1);
	}
	/* The keyword: the longest match among the four, byte by byte. */
	for (i = 6; fam < 0; i++) {
		int alive = 0;

		if (i == lim)
			return set(o, PROXY_NEED_MORE, n);
		for (k = 0; k < 4; k++) {
			size_t kl = strlen(keys[k]);

			if (i - 6 < kl && memcmp(d + 6, keys[k], i - 5) == 0) {
				alive = 1;
				if (i - 5 == kl) {
					fam = fams[k];
					body = i + 1;
				}
			}
		}
		if (!alive)
			return set(o, PROXY_E_FAMILY, i + 1);
	}
	for (i = body; i < lim; i++) {
		if (d[i - 1] == '\r') {
			if (d[i] != '\n')
				return set(o, PROXY_E_V1_SYNTAX, i + 1);
			memset(&o->r, 0, sizeof(o->r));
			o->r.version = 1;
			o->r.command = PROXY_CMD_PROXY;
			o->r.family = AF_UNSPEC;
			o->r.header_len = i + 1;
			if (fam != 0 &&
			    ref_fields(fam, d + 11, i - 1 - 11, &o->r) != 0)
				return set(o, PROXY_E_V1_SYNTAX, i + 1);
			return set(o, PROXY_DONE, i + 1);
		}
		if (d[i] == '\n' || (fam != 0 && !v1_field_char(d[i])))
			return set(o, PROXY_E_V1_SYNTAX, i + 1);
	}
	if (lim == PROXY_V1_MAX_LEN)
		return set(o, PROXY_E_V1_TOO_LONG, PROXY_V1_MAX_LEN);
	return set(o, PROXY_NEED_MORE, n);
}

/* Error at header byte `at` (0-based) if the input reaches it. */
#define REF_FAIL(st, at)                                                       \
	return (n > (at) ? set(o, (st), (at) + 1) : set(o, PROXY_NEED_MORE, n))

static int ref_v2(const uint8_t *d, size_t n, struct outcome *o)
{
	size_t i, total, off, alen, crc_at = 0;
	unsigned cmd, fam;

	for (i = 0; i < PROXY_V2_SIG_LEN; i++) {
		if (i == n)
			return set(o, PROXY_NEED_MORE, n);
		if (d[i] != sig_v2[i])
			return set(o, PROXY_E_SIGNATURE, i + 1);
	}
	if (n < 13)
		return set(o, PROXY_NEED_MORE, n);
	if ((d[12] & 0xf0) != 0x20)
		return set(o, PROXY_E_VERSION, 13);
	cmd = d[12] & 0x0f;
	if (cmd > 1)
		return set(o, PROXY_E_COMMAND, 13);
	if (n < 14)
		return set(o, PROXY_NEED_MORE, n);
	fam = d[13];
	if (fam == 0x11)
		alen = 12;
	else if (fam == 0x21)
		alen = 36;
	else if (fam == 0x00)
		alen = 0;
	else
		return set(o, PROXY_E_FAMILY, 14);
	if (n < 16)
		return set(o, PROXY_NEED_MORE, n);
	if (be16(d + 14) < alen)
		return set(o, PROXY_E_LENGTH, 16);
	total = 16 + (size_t)be16(d + 14);

	memset(&o->r, 0, sizeof(o->r));
	for (off = 16 + alen; off < total;) {
		size_t vlen, vend;

		if (total - off < 3)
			REF_FAIL(PROXY_E_TLV, off);
		if (n < off + 3)
			return set(o, PROXY_NEED_MORE, n);
		vlen = be16(d + off + 1);
		vend = off + 3 + vlen;
		if (vend > total)
			REF_FAIL(PROXY_E_TLV, off + 2);
		o->r.tlvs++;
		if (d[off] == PROXY_TLV_CRC32C) {
			if (vlen != 4 || crc_at != 0)
				REF_FAIL(PROXY_E_TLV, off + 2);
			crc_at = off + 3;
		} else if (d[off] == PROXY_TLV_UNIQUE_ID && vlen > 128) {
			REF_FAIL(PROXY_E_TLV, off + 2);
		} else if (d[off] == PROXY_TLV_SSL) {
			size_t sub = off + 3 + 5;

			if (vlen < 5)
				REF_FAIL(PROXY_E_TLV, off + 2);
			while (sub < vend) {
				if (vend - sub < 3)
					REF_FAIL(PROXY_E_TLV, sub);
				if (n < sub + 3)
					return set(o, PROXY_NEED_MORE, n);
				if (sub + 3 + be16(d + sub + 1) > vend)
					REF_FAIL(PROXY_E_TLV, sub + 2);
				sub += 3 + (size_t)be16(d + sub + 1);
			}
		}
		off = vend;
	}
	if (n < total)
		return set(o, PROXY_NEED_MORE, n);
	if (crc_at != 0) {
		uint8_t *copy = malloc(total);
		uint32_t want =
		    (uint32_t)be16(d + crc_at) << 16 | be16(d + crc_at + 2);
		uint32_t got;

		CHECK(copy != NULL, "malloc");
		memcpy(copy, d, total);
		memset(copy + crc_at, 0, 4);
		got = ref_crc32c(copy, total);
		free(copy);
		if (got != want)
			return set(o, PROXY_E_CRC, total);
		o->r.crc32c = 1;
	}
	o->r.version = 2;
	o->r.command = (uint8_t)cmd;
	o->r.family = AF_UNSPEC;
	o->r.header_len = total;
	if (cmd == 1 && fam != 0) {
		size_t a = fam == 0x11 ? 4 : 16;

		o->r.proxied = 1;
		o->r.family = fam == 0x11 ? AF_INET : AF_INET6;
		memcpy(o->r.src, d + 16, a);
		memcpy(o->r.dst, d + 16 + a, a);
		o->r.src_port = be16(d + 16 + 2 * a);
		o->r.dst_port = be16(d + 16 + 2 * a + 2);
	}
	return set(o, PROXY_DONE, total);
}

static int ref_parse(enum proxy_accept acc, const uint8_t *d, size_t n,
		     struct outcome *o)
{
	if (n == 0)
		return set(o, PROXY_NEED_MORE, 0);
	if ((acc & PROXY_ACCEPT_V1) && d[0] == 'P')
		return ref_v1(d, n, o);
	if ((acc & PROXY_ACCEPT_V2) && d[0] == sig_v2[0])
		return ref_v2(d, n, o);
	return set(o, PROXY_E_SIGNATURE, 1);
}

/* ---- driving the parser ---- */

static uint64_t rnd(uint64_t *x)
{
	/* splitmix64: deterministic, so a finding replays exactly. */
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Sizes skewed to the small ones, where the boundaries are. */
static size_t draw_size(uint64_t *x, size_t max)
{
	static const size_t lims[4] = {1, 4, 24, WIN_MAX};
	uint64_t r = rnd(x);
	size_t lim = lims[r & 3];

	if (lim > max)
		lim = max;
	return 1 + (size_t)((r >> 2) % lim);
}

enum way { WAY_WHOLE, WAY_BYTES, WAY_RANDOM };

static int known_status(int st)
{
	return st >= PROXY_E_CRC && st <= PROXY_DONE;
}

/* Feed d[0..n) to a fresh parser in one way; check every call. */
static void feed(enum proxy_accept acc, const uint8_t *d, size_t n,
		 enum way way, uint64_t seed, uint8_t *win, struct outcome *o)
{
	struct proxy p;
	struct proxy_result r, again;
	size_t pos = 0, calls = 0, used;
	uint64_t x = seed;
	int st;

	CHECK(proxy_init(&p, acc) == 0, "proxy_init refused");
	for (;;) {
		size_t len;
		const uint8_t *in;

		switch (way) {
		case WAY_WHOLE:
			len = n - pos;
			break;
		case WAY_BYTES:
			len = n - pos > 0 ? 1 : 0;
			break;
		default:
			len = (rnd(&x) & 7) == 0 || pos == n
				  ? 0
				  : draw_size(&x, n - pos);
			break;
		}
		if (way == WAY_WHOLE) {
			in = d + pos; /* ends where the heap block ends */
		} else if (len == 0) {
			in = (x & 1) ? NULL : win + WIN_MAX;
		} else {
			memcpy(win + WIN_MAX - len, d + pos, len);
			in = win + WIN_MAX - len;
		}
		used = (size_t)-1;
		memset(&r, 0x5a, sizeof(r));
		st = proxy_parse(&p, in, len, &used, &r);
		calls++;
		CHECK(known_status(st), "unknown status");
		CHECK(used <= len, "consumed > len");
		if (st == PROXY_NEED_MORE) {
			CHECK(used == len, "NEED_MORE with input left");
			CHECK(is_zero(&r), "NEED_MORE with a result");
		} else {
			CHECK(used > 0, "final status without a byte");
			if (st != PROXY_DONE)
				CHECK(is_zero(&r), "error with a result");
		}
		pos += used;
		if (st != PROXY_NEED_MORE || pos == n)
			break;
		CHECK(calls <= 4 * n + 16, "too many calls");
	}
	o->status = st;
	o->used = pos;
	o->r = r;
	if (st == PROXY_DONE) {
		CHECK(r.header_len == pos, "header_len is not what was taken");
		CHECK(r.version == 1 ? pos <= PROXY_V1_MAX_LEN
				     : pos == 16u + be16(d + 14),
		      "header longer than its bound");
	}
	if (st == PROXY_NEED_MORE)
		return;
	/* Terminal: nothing more is taken, the same answer is given. */
	used = 1;
	st = proxy_parse(&p, d, n, &used, &again);
	CHECK(st == o->status && used == 0, "terminal status changed");
	CHECK(st == PROXY_DONE ? same_result(&again, &o->r) : is_zero(&again),
	      "terminal result changed");
}

static void check_same(const struct outcome *a, const struct outcome *b,
		       const char *what)
{
	CHECK(a->status == b->status, what);
	CHECK(a->used == b->used, what);
	if (a->status == PROXY_DONE)
		CHECK(same_result(&a->r, &b->r), what);
}

/* Whole, byte by byte, two random splits, and the reference: all agree. */
static void run_all(enum proxy_accept acc, const uint8_t *d, size_t n,
		    uint64_t seed, uint8_t *win, struct outcome *o)
{
	struct outcome b, ref;

	feed(acc, d, n, WAY_WHOLE, 0, win, o);
	feed(acc, d, n, WAY_BYTES, 0, win, &b);
	check_same(o, &b, "split: one byte at a time differs");
	feed(acc, d, n, WAY_RANDOM, seed, win, &b);
	check_same(o, &b, "split: random split differs");
	feed(acc, d, n, WAY_RANDOM, seed ^ 0x5bd1e995u, win, &b);
	check_same(o, &b, "split: random split differs");
	ref_parse(acc, d, n, &ref);
	check_same(o, &ref, "differs from the reference parser");
}

/* ---- the encoder ---- */

struct fields {
	const uint8_t *d;
	size_t n, i;
};

static uint8_t take(struct fields *f)
{
	return f->i < f->n ? f->d[f->i++] : 0;
}

static void take_n(struct fields *f, uint8_t *out, size_t k)
{
	size_t j;

	for (j = 0; j < k; j++)
		out[j] = take(f);
}

/* Where the encoder put things, for the mutations. */
struct layout {
	size_t addr_off, addr_len; /* address block or v1 address text */
	size_t tlv_off[16], ntlv;  /* top-level TLV headers (v2) */
	size_t crc_off;		   /* CRC32C value (v2), 0: none */
	size_t key_off, key_len;   /* v1 keyword */
};

static size_t ipv6_text(char *out, size_t cap, const uint8_t a[16], int form)
{
	unsigned g[8];
	size_t k, len = 0;
	int z0 = -1, z1 = -1;

	for (k = 0; k < 8; k++)
		g[k] = (unsigned)a[2 * k] << 8 | a[2 * k + 1];
	switch (form) {
	case 1:
	case 2:
		for (k = 0; k < 8; k++)
			len += (size_t)snprintf(out + len, cap - len,
						form == 1 ? "%s%x" : "%s%04X",
						k ? ":" : "", g[k]);
		return len;
	case 3:
		/* The first run of zero groups, even a single one. */
		for (k = 0; k < 8 && z0 < 0; k++)
			if (g[k] == 0)
				z0 = (int)k;
		if (z0 < 0)
			return ipv6_text(out, cap, a, 1);
		for (z1 = z0; z1 < 8 && g[z1] == 0; z1++)
			;
		for (k = 0; k < (size_t)z0; k++)
			len += (size_t)snprintf(out + len, cap - len, "%s%x",
						k ? ":" : "", g[k]);
		len += (size_t)snprintf(out + len, cap - len, "::");
		for (k = (size_t)z1; k < 8; k++)
			len +=
			    (size_t)snprintf(out + len, cap - len, "%s%x",
					     k > (size_t)z1 ? ":" : "", g[k]);
		return len;
	case 4:
		for (k = 0; k < 6; k++)
			len +=
			    (size_t)snprintf(out + len, cap - len, "%x:", g[k]);
		len += (size_t)snprintf(out + len, cap - len, "%u.%u.%u.%u",
					a[12], a[13], a[14], a[15]);
		return len;
	default:
		CHECK(inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL,
		      "inet_ntop");
		return strlen(out);
	}
}

static size_t enc_v1(struct fields *f, uint8_t *h, struct proxy_result *e,
		     struct layout *lay)
{
	char line[256], s[64], t[64];
	int kind = take(f) % 3;
	size_t len;

	e->version = 1;
	e->command = PROXY_CMD_PROXY;
	e->family = AF_UNSPEC;
	lay->key_off = 6;
	if (kind == 2) {
		size_t tail = take(f) % 93, k;

		lay->key_len = 7;
		len = (size_t)snprintf(line, sizeof(line), "PROXY UNKNOWN");
		if (tail > 0) {
			line[len++] = ' ';
			for (k = 1; k < tail; k++) {
				uint8_t c = take(f);

				line[len++] =
				    (char)(c == '\r' || c == '\n' ? 'x' : c);
			}
		}
		line[len++] = '\r';
		line[len++] = '\n';
	} else {
		int form = take(f) % 5;

		lay->key_len = 4;
		e->proxied = 1;
		e->family = kind == 0 ? AF_INET : AF_INET6;
		take_n(f, e->src, kind == 0 ? 4 : 16);
		take_n(f, e->dst, kind == 0 ? 4 : 16);
		e->src_port = (uint16_t)(take(f) << 8);
		e->src_port = (uint16_t)(e->src_port | take(f));
		e->dst_port = (uint16_t)(take(f) << 8);
		e->dst_port = (uint16_t)(e->dst_port | take(f));
		for (;;) {
			if (kind == 0) {
				CHECK(inet_ntop(AF_INET, e->src, s,
						sizeof(s)) != NULL &&
					  inet_ntop(AF_INET, e->dst, t,
						    sizeof(t)) != NULL,
				      "inet_ntop");
			} else {
				ipv6_text(s, sizeof(s), e->src, form);
				ipv6_text(t, sizeof(t), e->dst, form);
			}
			len = (size_t)snprintf(line, sizeof(line),
					       "PROXY TCP%c %s %s %u %u\r\n",
					       kind == 0 ? '4' : '6', s, t,
					       e->src_port, e->dst_port);
			if (len <= PROXY_V1_MAX_LEN)
				break;
			form = 0; /* the long forms can pass 107 bytes */
		}
		lay->addr_off = 11;
		lay->addr_len = strlen(s) + 1 + strlen(t);
	}
	memcpy(h, line, len);
	e->header_len = len;
	return len;
}

static void fill(struct fields *f, uint8_t *v, size_t n, int pattern)
{
	size_t j;

	if (!pattern) {
		take_n(f, v, n);
		return;
	}
	for (j = 0; j < n; j++)
		v[j] = (uint8_t)(j * 7 + 3);
}

/* One TLV at h[0..); returns its size, 0 if it does not fit in room. */
static size_t enc_tlv(struct fields *f, uint8_t *h, size_t room, int big)
{
	static const uint8_t types[8] = {
	    PROXY_TLV_ALPN, PROXY_TLV_AUTHORITY, PROXY_TLV_NOOP, 0,
	    PROXY_TLV_SSL,  PROXY_TLV_NETNS,	 0xe0,		 0};
	int kind = take(f) % 8;
	uint8_t type = types[kind];
	size_t vlen, k;
	uint8_t lb;
	int pattern = 0;

	if (kind == 3)
		type = PROXY_TLV_UNIQUE_ID;
	else if (kind == 6)
		type = (uint8_t)(0xe0 | (take(f) & 0x0f));
	else if (kind == 7) {
		type = take(f);
		/* The types with rules have their own kinds. */
		if (type == PROXY_TLV_CRC32C || type == PROXY_TLV_SSL ||
		    type == PROXY_TLV_UNIQUE_ID)
			type = PROXY_TLV_NOOP;
	}
	if (type == PROXY_TLV_SSL) {
		size_t nsub = take(f) % 4, off = 3 + 5;

		if (room < off)
			return 0;
		h[0] = type;
		take_n(f, h + 3, 5); /* client, verify */
		for (k = 0; k < nsub; k++) {
			uint8_t st = take(f);
			size_t sl = take(f) % 16;

			if (off + 3 + sl > room)
				break;
			h[off] = st;
			put16(h + off + 1, (uint32_t)sl);
			fill(f, h + off + 3, sl, 0);
			off += 3 + sl;
		}
		put16(h + 1, (uint32_t)(off - 3));
		return off;
	}
	lb = take(f);
	if (big && lb == 0xff) {
		vlen = (size_t)take(f) << 8;
		vlen |= take(f);
		pattern = 1;
		if (type == PROXY_TLV_UNIQUE_ID)
			vlen %= PROXY_UNIQUE_ID_MAX + 1;
	} else {
		vlen = lb % 32;
	}
	if (room < 3)
		return 0;
	if (vlen > room - 3)
		vlen = room - 3;
	h[0] = type;
	put16(h + 1, (uint32_t)vlen);
	fill(f, h + 3, vlen, pattern);
	return 3 + vlen;
}

static size_t enc_v2(struct fields *f, uint8_t *h, struct proxy_result *e,
		     struct layout *lay)
{
	static const uint8_t fams[4] = {PROXY_FAM_UNSPEC, PROXY_FAM_TCP4,
					PROXY_FAM_TCP6, PROXY_FAM_TCP4};
	uint8_t cf = take(f), tb;
	unsigned cmd = cf & 1u;
	uint8_t fam = fams[(cf >> 1) & 3];
	size_t alen = fam == PROXY_FAM_TCP4   ? 12
		      : fam == PROXY_FAM_TCP6 ? 36
					      : 0;
	size_t a = alen == 12 ? 4 : 16, off, ntlv, crc_place, k;
	int crc, big;

	memcpy(h, sig_v2, PROXY_V2_SIG_LEN);
	h[12] = (uint8_t)(0x20 | cmd);
	h[13] = fam;
	take_n(f, h + 16, alen);
	e->version = 2;
	e->command = (uint8_t)cmd;
	e->family = AF_UNSPEC;
	if (cmd == PROXY_CMD_PROXY && alen > 0) {
		e->proxied = 1;
		e->family = alen == 12 ? AF_INET : AF_INET6;
		memcpy(e->src, h + 16, a);
		memcpy(e->dst, h + 16 + a, a);
		e->src_port = be16(h + 16 + 2 * a);
		e->dst_port = be16(h + 16 + 2 * a + 2);
	}
	lay->addr_off = 16;
	lay->addr_len = alen;
	off = 16 + alen;
	tb = take(f);
	ntlv = tb & 7u;
	crc = (tb >> 3) & 1;
	crc_place = ((tb >> 4) & 7u) % (ntlv + 1);
	big = tb >> 7;
	for (k = 0; k <= ntlv; k++) {
		size_t room = PROXY_V2_MAX_LEN - off, got;

		if (crc && k == crc_place && room >= 7) {
			lay->tlv_off[lay->ntlv++] = off;
			h[off] = PROXY_TLV_CRC32C;
			put16(h + off + 1, 4);
			memset(h + off + 3, 0, 4);
			lay->crc_off = off + 3;
			e->crc32c = 1;
			e->tlvs++;
			off += 7;
			room -= 7;
		}
		if (k == ntlv)
			break;
		got = enc_tlv(f, h + off, room, big);
		if (got == 0)
			continue;
		lay->tlv_off[lay->ntlv++] = off;
		e->tlvs++;
		off += got;
	}
	put16(h + 14, (uint32_t)(off - 16));
	if (lay->crc_off != 0) {
		uint32_t c = ref_crc32c(h, off);

		put16(h + lay->crc_off, c >> 16);
		put16(h + lay->crc_off + 2, c & 0xffffu);
	}
	e->header_len = off;
	return off;
}

/* A header from a result: canonical text, or a v2 header without TLVs. */
static size_t reencode(const struct proxy_result *r, uint8_t *h)
{
	char s[64], t[64];

	if (r->version == 1) {
		if (!r->proxied)
			return (size_t)snprintf((char *)h, 32,
						"PROXY UNKNOWN\r\n");
		CHECK(inet_ntop(r->family, r->src, s, sizeof(s)) != NULL &&
			  inet_ntop(r->family, r->dst, t, sizeof(t)) != NULL,
		      "result address has no text");
		return (size_t)snprintf((char *)h, PROXY_V1_MAX_LEN + 1,
					"PROXY TCP%c %s %s %u %u\r\n",
					r->family == AF_INET ? '4' : '6', s, t,
					r->src_port, r->dst_port);
	}
	memcpy(h, sig_v2, PROXY_V2_SIG_LEN);
	h[12] = (uint8_t)(0x20 | r->command);
	if (!r->proxied) {
		h[13] = PROXY_FAM_UNSPEC;
		put16(h + 14, 0);
		return 16;
	}
	if (r->family == AF_INET) {
		h[13] = PROXY_FAM_TCP4;
		put16(h + 14, 12);
		memcpy(h + 16, r->src, 4);
		memcpy(h + 20, r->dst, 4);
		put16(h + 24, r->src_port);
		put16(h + 26, r->dst_port);
		return 28;
	}
	h[13] = PROXY_FAM_TCP6;
	put16(h + 14, 36);
	memcpy(h + 16, r->src, 16);
	memcpy(h + 32, r->dst, 16);
	put16(h + 48, r->src_port);
	put16(h + 50, r->dst_port);
	return 52;
}

/* Property 4: a DONE result is a header's, consistent in itself. */
static void check_result(const struct outcome *o, uint8_t *win)
{
	static uint8_t h[128];
	const struct proxy_result *r = &o->r;
	struct outcome back;
	size_t n;
	uint8_t *copy;

	if (o->status != PROXY_DONE)
		return;
	CHECK(r->version == 1 || r->version == 2, "version");
	CHECK(r->command <= PROXY_CMD_PROXY, "command");
	CHECK(r->proxied ? r->family == AF_INET || r->family == AF_INET6
			 : r->family == AF_UNSPEC && r->src_port == 0 &&
			       r->dst_port == 0,
	      "family and proxied disagree");
	CHECK(r->family != AF_INET || (is_zero_bytes(r->src + 4, 12) &&
				       is_zero_bytes(r->dst + 4, 12)),
	      "IPv4 address wider than 4 bytes");
	CHECK(r->version == 2 || (r->tlvs == 0 && !r->crc32c), "v1 with TLVs");
	n = reencode(r, h);
	copy = malloc(n);
	CHECK(copy != NULL, "malloc");
	memcpy(copy, h, n);
	feed(PROXY_ACCEPT_ANY, copy, n, WAY_WHOLE, 0, win, &back);
	free(copy);
	CHECK(back.status == PROXY_DONE && back.used == n,
	      "re-encoded result does not parse");
	CHECK(back.r.version == r->version && back.r.command == r->command &&
		  back.r.proxied == r->proxied && back.r.family == r->family &&
		  memcmp(back.r.src, r->src, 16) == 0 &&
		  memcmp(back.r.dst, r->dst, 16) == 0 &&
		  back.r.src_port == r->src_port &&
		  back.r.dst_port == r->dst_port,
	      "re-encoded result parses to other fields");
}

/* ---- mutations (property 5) ---- */

enum mclass {
	M_SIG,	   /* a signature byte */
	M_VERCMD,  /* v2: version and command; v1: a keyword byte */
	M_FAMILY,  /* v2: the family byte; v1: a byte of the line */
	M_LENGTH,  /* v2: a length byte; v1: the CR or the LF */
	M_ADDR,	   /* an address byte (v2) or address text byte (v1) */
	M_TLV,	   /* v2: a byte of a TLV header */
	M_CRC,	   /* v2: a byte of the CRC32C value */
	M_ANY,	   /* any byte of the header */
	M_CLASSES, /* count */
};

/* Add -4..-1 or 1..4 (from the low 3 bits of x) to a 16-bit big-endian
 * length: the off-by-one lengths that a bit flip rarely gives. */
static void add16(uint8_t *b, uint8_t x)
{
	int d = (int)(x & 7u) - 4;

	put16(b, (uint32_t)(be16(b) + (d >= 0 ? d + 1 : d)) & 0xffffu);
}

/* Change h[0..hlen) in one byte (two for a length); the status it must give, or
 * 0 when only the reference can tell (property 2 checks it then). */
static int mutate(uint8_t *h, size_t hlen, const struct layout *lay,
		  int version, uint8_t cls, uint8_t idx, uint8_t x,
		  struct proxy_result *e)
{
	enum mclass c = (enum mclass)(cls % M_CLASSES);
	size_t at;
	uint8_t b;

	if (x == 0)
		x = 1;
	if ((c == M_TLV && lay->ntlv == 0) || (c == M_CRC && !lay->crc_off) ||
	    (c == M_ADDR && lay->addr_len == 0) ||
	    (version == 1 && (c == M_TLV || c == M_CRC)))
		c = M_ANY;
	switch (c) {
	case M_SIG:
		h[idx % (version == 1 ? 6 : PROXY_V2_SIG_LEN)] ^= x;
		return PROXY_E_SIGNATURE;
	case M_VERCMD:
		if (version == 1) {
			h[lay->key_off + idx % lay->key_len] ^= x;
			return 0;
		}
		b = h[12] ^= x;
		if (b >> 4 != 2)
			return PROXY_E_VERSION;
		if ((b & 0xfu) > 1)
			return PROXY_E_COMMAND;
		return lay->crc_off ? PROXY_E_CRC : 0;
	case M_FAMILY:
		if (version == 1) {
			h[idx % hlen] ^= x;
			return 0;
		}
		b = h[13] ^= x;
		if (b != PROXY_FAM_UNSPEC && b != PROXY_FAM_TCP4 &&
		    b != PROXY_FAM_TCP6)
			return PROXY_E_FAMILY;
		return 0;
	case M_LENGTH:
		if (version == 1)
			h[hlen - 2 + idx % 2u] ^= x;
		else if (x & 0x80)
			h[14 + idx % 2u] ^= x;
		else
			add16(h + 14, x);
		return 0;
	case M_ADDR:
		at = lay->addr_off + idx % lay->addr_len;
		h[at] ^= x;
		if (version == 1)
			return 0;
		if (lay->crc_off)
			return PROXY_E_CRC;
		if (e->proxied) {
			size_t a = e->family == AF_INET ? 4 : 16;

			memcpy(e->src, h + 16, a);
			memcpy(e->dst, h + 16 + a, a);
			e->src_port = be16(h + 16 + 2 * a);
			e->dst_port = be16(h + 16 + 2 * a + 2);
		}
		return PROXY_DONE;
	case M_TLV:
		at = lay->tlv_off[idx % lay->ntlv];
		if ((idx / lay->ntlv) % 3 == 0 || (x & 0x80))
			h[at + (idx / lay->ntlv) % 3] ^= x;
		else
			add16(h + at + 1, x);
		return 0;
	case M_CRC:
		h[lay->crc_off + idx % 4] ^= x;
		return PROXY_E_CRC;
	default:
		h[((size_t)idx << 8 | (size_t)cls) % hlen] ^= x;
		return 0;
	}
}

/* ---- the API's argument checks, once per process ---- */

static void check_args(void)
{
	static const uint8_t in[2] = {'P', 'R'};
	struct proxy p;
	struct proxy_result r;
	size_t used = 1;
	int st;

	CHECK(proxy_init(NULL, PROXY_ACCEPT_ANY) == PROXY_E_ARGS, "init NULL");
	memset(&p, 0x5a, sizeof(p));
	CHECK(proxy_init(&p, (enum proxy_accept)0) == PROXY_E_ARGS &&
		  p.accept == 0 && p.state == PROXY_S_START && p.pos == 0,
	      "init 0 not refused and zeroed");
	CHECK(proxy_init(&p, (enum proxy_accept)4) == PROXY_E_ARGS,
	      "init 4 not refused");
	memset(&r, 0x5a, sizeof(r));
	CHECK(proxy_parse(&p, in, 2, &used, &r) == PROXY_E_ARGS && used == 0 &&
		  is_zero(&r) && p.state == PROXY_S_START,
	      "zero-filled struct without accept not refused");
	CHECK(proxy_init(&p, PROXY_ACCEPT_ANY) == 0, "init any");
	CHECK(proxy_parse(NULL, in, 2, &used, &r) == PROXY_E_ARGS && used == 0,
	      "parse p NULL");
	CHECK(proxy_parse(&p, in, 2, NULL, &r) == PROXY_E_ARGS &&
		  p.state == PROXY_S_START,
	      "parse consumed NULL");
	CHECK(proxy_parse(&p, in, 2, &used, NULL) == PROXY_E_ARGS &&
		  p.state == PROXY_S_START,
	      "parse r NULL");
	CHECK(proxy_parse(&p, NULL, 2, &used, &r) == PROXY_E_ARGS &&
		  p.state == PROXY_S_START,
	      "parse in NULL");
	CHECK(proxy_parse(&p, NULL, 0, &used, &r) == PROXY_NEED_MORE &&
		  used == 0,
	      "parse nothing");
	/* By hand: a zero-filled struct with accept set is a parser. */
	memset(&p, 0, sizeof(p));
	p.accept = PROXY_ACCEPT_V1;
	CHECK(proxy_parse(&p, in, 2, &used, &r) == PROXY_NEED_MORE && used == 2,
	      "zero-filled struct with accept set");
#ifdef NDEBUG
	/* With assertions on, a corrupt state aborts by design. */
	p.state = (enum proxy_state)99;
	st = proxy_parse(&p, in, 2, &used, &r);
	CHECK(st == PROXY_E_ARGS && used == 1 && is_zero(&r), "corrupt state");
#endif
	for (st = PROXY_E_ARGS - 1; st <= PROXY_DONE + 1; st++)
		CHECK(proxy_status_str(st) != NULL && *proxy_status_str(st),
		      "status text");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum proxy_accept accs[4] = {
	    PROXY_ACCEPT_ANY, PROXY_ACCEPT_V1, PROXY_ACCEPT_V2,
	    PROXY_ACCEPT_ANY};
	static int args_checked;
	static uint8_t *hbuf, *win;
	enum proxy_accept acc;
	struct fields f;
	struct proxy_result e;
	struct layout lay;
	struct outcome o;
	uint8_t cls = 0, idx = 0, x = 0, *buf;
	size_t n, hlen, dlen;
	uint64_t seed;
	int mode, version, want;

	if (!args_checked) {
		check_args();
		hbuf = malloc(BUF_MAX);
		win = malloc(WIN_MAX);
		CHECK(hbuf != NULL && win != NULL, "malloc");
		args_checked = 1;
	}
	if (size < 3)
		return 0;
	acc = accs[data[0] & 3];
	mode = (data[0] >> 2) & 3;
	seed =
	    (uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)size << 16;
	data += 3;
	n = size - 3;

	if (mode == 2) {
		/* Raw: the bytes as they come. */
		buf = malloc(n > 0 ? n : 1);
		CHECK(buf != NULL, "malloc");
		if (n > 0)
			memcpy(buf, data, n);
		run_all(acc, buf, n, seed, win, &o);
		check_result(&o, win);
		free(buf);
		return 0;
	}

	f.d = data;
	f.n = n;
	f.i = 0;
	if (mode == 3) {
		cls = take(&f);
		idx = take(&f);
		x = take(&f);
	}
	memset(&e, 0, sizeof(e));
	memset(&lay, 0, sizeof(lay));
	version = (take(&f) & 1) + 1;
	hlen = version == 1 ? enc_v1(&f, hbuf, &e, &lay)
			    : enc_v2(&f, hbuf, &e, &lay);
	dlen = f.i < n ? n - f.i : 0;
	buf = malloc(hlen + dlen);
	CHECK(buf != NULL, "malloc");
	memcpy(buf, hbuf, hlen);
	if (dlen > 0)
		memcpy(buf + hlen, data + f.i, dlen);

	if (mode != 3) {
		/* Property 1: the encoder's fields come back, exactly. */
		run_all(acc, buf, hlen + dlen, seed, win, &o);
		if (acc & (version == 1 ? PROXY_ACCEPT_V1 : PROXY_ACCEPT_V2)) {
			CHECK(o.status == PROXY_DONE,
			      "encoded header not accepted");
			CHECK(o.used == hlen, "consumed other than the header");
			CHECK(same_result(&o.r, &e),
			      "fields differ from the encoder's");
		} else {
			CHECK(o.status == PROXY_E_SIGNATURE && o.used == 1,
			      "version not accepted, yet no signature error");
		}
		free(buf);
		return 0;
	}

	/* Mutate: one byte changed (property 5), the reference for the
	 * rest. */
	want = mutate(buf, hlen, &lay, version, cls, idx, x, &e);
	run_all(acc, buf, hlen + dlen, seed, win, &o);
	check_result(&o, win);
	if (want != 0 &&
	    (acc & (version == 1 ? PROXY_ACCEPT_V1 : PROXY_ACCEPT_V2))) {
		CHECK(o.status == want, "mutation: not the expected status");
		if (want == PROXY_DONE)
			CHECK(o.used == hlen && same_result(&o.r, &e),
			      "mutated address not parsed as changed");
	}
	free(buf);
	return 0;
}
