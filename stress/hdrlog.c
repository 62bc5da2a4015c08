/*
 * hdrlog.c - HdrHistogram V2 compressed encoding and interval log (see
 * hdrlog.h).
 *
 * V2 encoding, all integers big-endian: cookie 0x1c849313, payload length,
 * normalizing index offset (0), significant digits, lowest discernible
 * value (int64), highest trackable value (int64), integer to double ratio
 * (the bits of 1.0), then the counts from index 0 to the index of the
 * maximum as ZigZag LEB128 varints, a run of n > 1 zero counts written as
 * -n. Compressed: cookie 0x1c849314, the length of the zlib stream, the zlib
 * stream of all that. With zlib (ST_HAVE_ZLIB) the stream is deflated at
 * level 9; without, it is a valid zlib stream of stored blocks, which every
 * reader inflates the same.
 */
#include "hdrlog.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef ST_HAVE_ZLIB
#include <zlib.h>
#endif

#define HDR_HEADER_LEN 40

struct buf {
	uint8_t *p;
	size_t n;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* ZigZag, then LEB128 (at most 9 bytes: the ninth takes 8 whole bits). */
static size_t put_zz(uint8_t *p, int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 0;

	while (n < 8 && u >= 0x80) {
		p[n++] = (uint8_t)(u | 0x80);
		u >>= 7;
	}
	p[n++] = (uint8_t)u;
	return n;
}

/* The uncompressed V2 encoding of h. */
static int encode_v2(const struct hist *h, struct buf *out)
{
	unsigned limit = hist_index(h->max) + 1, i = 0;
	uint8_t *p = malloc(HDR_HEADER_LEN + 9 * (size_t)limit);
	size_t n = HDR_HEADER_LEN;
	union {
		double d;
		uint64_t u;
	} one = {1.0};

	if (!p)
		return -1;
	while (i < limit) {
		uint64_t c = h->counts[i++];
		int64_t zeros = 0;

		if (c == 0) {
			zeros = 1;
			while (i < limit && h->counts[i] == 0) {
				zeros++;
				i++;
			}
		}
		n += put_zz(p + n, zeros > 1 ? -zeros : (int64_t)c);
	}
	put32(p, HDR_V2_COOKIE);
	put32(p + 4, (uint32_t)(n - HDR_HEADER_LEN));
	put32(p + 8, 0);
	put32(p + 12, HDR_SIGNIFICANT_DIGITS);
	put64(p + 16, 1);
	put64(p + 24, HIST_MAX_VALUE);
	put64(p + 32, one.u);
	out->p = p;
	out->n = n;
	return 0;
}

#ifdef ST_HAVE_ZLIB
static int zlib_wrap(const struct buf *in, struct buf *out)
{
	uLongf n = compressBound((uLong)in->n);

	out->p = malloc(n);
	if (!out->p)
		return -1;
	if (compress2(out->p, &n, in->p, (uLong)in->n, 9) != Z_OK) {
		free(out->p);
		return -1;
	}
	out->n = n;
	return 0;
}
#else
/* RFC 1950 around RFC 1951 stored blocks: no compression, same format. */
static int zlib_wrap(const struct buf *in, struct buf *out)
{
	size_t blocks = in->n / 65535 + 1, i, off = 0, n = 2;
	uint32_t a = 1, b = 0;

	out->p = malloc(2 + blocks * 5 + in->n + 4);
	if (!out->p)
		return -1;
	out->p[0] = 0x78; /* deflate, 32 KiB window */
	out->p[1] =
	    0x01; /* no preset dictionary, fastest; (0x7801 % 31 == 0) */
	for (i = 0; i < blocks; i++) {
		size_t len = in->n - off < 65535 ? in->n - off : 65535;

		out->p[n++] = i + 1 == blocks ? 1 : 0; /* BFINAL, BTYPE 00 */
		out->p[n++] = (uint8_t)len;
		out->p[n++] = (uint8_t)(len >> 8);
		out->p[n++] = (uint8_t)~len;
		out->p[n++] = (uint8_t)(~len >> 8);
		memcpy(out->p + n, in->p + off, len);
		n += len;
		off += len;
	}
	for (i = 0; i < in->n; i++) {
		a = (a + in->p[i]) % 65521;
		b = (b + a) % 65521;
	}
	put32(out->p + n, (b << 16) | a);
	out->n = n + 4;
	return 0;
}
#endif

static char *base64(const uint8_t *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/";
	char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 |
			     (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = 0;
	return s;
}

char *hdr_encode_compressed(const struct hist *h)
{
	struct buf raw, z;
	uint8_t *all;
	char *s;

	if (encode_v2(h, &raw) < 0)
		return NULL;
	if (zlib_wrap(&raw, &z) < 0) {
		free(raw.p);
		return NULL;
	}
	free(raw.p);
	all = malloc(8 + z.n);
	if (!all) {
		free(z.p);
		return NULL;
	}
	put32(all, HDR_V2_COMPRESSED_COOKIE);
	put32(all + 4, (uint32_t)z.n);
	memcpy(all + 8, z.p, z.n);
	free(z.p);
	s = base64(all, 8 + z.n);
	free(all);
	return s;
}

int hdrlog_header(FILE *f, double start_unix, const char *comment)
{
	time_t t = (time_t)start_unix;
	struct tm tm;
	char date[64];

	/* Java's Date.toString(): "Wed Sep 09 08:24:39 PDT 2015" */
	if (!localtime_r(&t, &tm) ||
	    !strftime(date, sizeof(date), "%a %b %d %H:%M:%S %Z %Y", &tm))
		date[0] = 0;
	if (comment)
		fprintf(f, "#%s\n", comment);
	fprintf(f, "#[Histogram log format version 1.3]\n");
	fprintf(f, "#[StartTime: %.3f (seconds since epoch), %s]\n", start_unix,
		date);
	fprintf(f, "#[BaseTime: %.3f (seconds since epoch)]\n", start_unix);
	fprintf(f, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
		   "\"Interval_Compressed_Histogram\"\n");
	return ferror(f) ? -1 : 0;
}

int hdrlog_interval(FILE *f, double start_s, double len_s, const struct hist *h)
{
	char *s = hdr_encode_compressed(h);

	if (!s)
		return -1;
	fprintf(f, "%.3f,%.3f,%.3f,%s\n", start_s, len_s,
		(double)h->max / 1000.0, s);
	free(s);
	return ferror(f) ? -1 : 0;
}
