/*
 * proxy.c - the PROXY protocol header parser. See proxy.h for the contract.
 *
 * Pure: only the standard headers for memset/memcmp and assert. One byte at
 * a time through a state machine, so that every split of the input, down to
 * single bytes, takes the same path; a v1 line is held (107 bytes at most)
 * and parsed at its CRLF, a v2 header is decoded as it passes.
 */
#include "proxy.h"

#include <assert.h>
#include <string.h>

/* CRC32C (Castagnoli, reflected polynomial 0x82f63b78), RFC 4960 appendix
 * B: crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8), from 0xffffffff, the
 * result inverted. */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu,
    0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu,
    0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u,
    0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
    0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u,
    0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
    0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu,
    0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u, 0xc288cab2u,
    0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u,
    0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu,
    0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u,
    0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
    0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u, 0x96bf4dccu,
    0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u,
    0x0f36e6f7u, 0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
    0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u,
    0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu, 0x90a324fau,
    0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu,
    0xceb018deu, 0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu,
    0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u, 0xb7072f64u, 0xa457dc90u,
    0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u,
    0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu,
    0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
    0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u,
    0x97baa1bau, 0x84ea524eu, 0x7681d14du, 0x2892ed69u, 0xdaf96e6au,
    0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u,
    0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au,
    0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u,
    0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
    0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu, 0x8ecee914u,
    0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u,
    0x07198540u, 0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
    0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au,
    0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u,
    0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u,
    0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u,
    0x988c474du, 0x6ae7c44eu, 0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u,
    0xad7d5351u,
};

static uint32_t crc32c_byte(uint32_t crc, uint8_t b)
{
	return crc32c_table[(crc ^ b) & 0xffu] ^ (crc >> 8);
}

/* p->v1fam once the keyword is known. */
#define V1_TCP4	   4u
#define V1_TCP6	   6u
#define V1_UNKNOWN 1u
/* "PROXY " then the keyword with the byte that ends it. */
#define V1_SIG_LEN 6u
static const char v1_sig[] = "PROXY ";
static const struct {
	const char *text;
	uint8_t fam;
} v1_keys[] = {
    {"TCP4 ", V1_TCP4},
    {"TCP6 ", V1_TCP6},
    {"UNKNOWN ", V1_UNKNOWN},
    {"UNKNOWN\r", V1_UNKNOWN},
};

int proxy_init(struct proxy *p, enum proxy_accept which)
{
	if (p == NULL)
		return PROXY_E_ARGS;
	memset(p, 0, sizeof(*p));
	switch (which) {
	case PROXY_ACCEPT_V1:
	case PROXY_ACCEPT_V2:
	case PROXY_ACCEPT_ANY:
		p->accept = which;
		return 0;
	default:
		return PROXY_E_ARGS;
	}
}

const char *proxy_status_str(int status)
{
	switch (status) {
	case PROXY_NEED_MORE:
		return "need more";
	case PROXY_DONE:
		return "done";
	case PROXY_E_SIGNATURE:
		return "bad signature";
	case PROXY_E_V1_SYNTAX:
		return "bad v1 line";
	case PROXY_E_V1_TOO_LONG:
		return "v1 line too long";
	case PROXY_E_VERSION:
		return "bad version";
	case PROXY_E_COMMAND:
		return "bad command";
	case PROXY_E_FAMILY:
		return "bad family";
	case PROXY_E_LENGTH:
		return "bad length";
	case PROXY_E_TLV:
		return "bad TLV";
	case PROXY_E_CRC:
		return "CRC32C mismatch";
	case PROXY_E_ARGS:
		return "bad arguments";
	default:
		return "unknown status";
	}
}

/* ---- v1 ---- */

/* A decimal number of 1 to 5 digits, no leading zero, at most max. */
static int parse_dec(const uint8_t *s, size_t n, uint32_t max, uint32_t *v)
{
	uint32_t x = 0;
	size_t i;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint32_t)(s[i] - '0');
		if (x > max)
			return -1;
	}
	*v = x;
	return 0;
}

/* Dotted quad, 2.1: "exactly 4 integers in the range [0..255] inclusive
 * written in decimal representation separated by exactly one dot", no
 * heading zeroes. */
static int parse_ipv4(const uint8_t *s, size_t n, uint8_t out[4])
{
	size_t i = 0, k;

	for (k = 0; k < 4; k++) {
		size_t start = i;
		uint32_t v;

		while (i < n && s[i] != '.')
			i++;
		if (parse_dec(s + start, i - start, 255, &v) != 0)
			return -1;
		out[k] = (uint8_t)v;
		if (k < 3) {
			if (i == n)
				return -1;
			i++; /* the dot */
		}
	}
	return i == n ? 0 : -1;
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * IPv6 text as inet_pton(AF_INET6) takes it (RFC 4291 2.2): groups of 1 to
 * 4 hex digits separated by single colons, at most one "::" standing for
 * one or more zero groups, the last 32 bits optionally a dotted quad (no
 * leading zeros), 128 bits exactly, no zone. Written here, not taken from
 * libc, so that nothing depends on the locale or the C library.
 */
static int parse_ipv6(const uint8_t *s, size_t n, uint8_t out[16])
{
	uint16_t w[8];
	size_t i = 0, nw = 0, k;
	int gap = -1; /* index in w where "::" stands */

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 0;
		i = 2;
	}
	while (i < n) {
		size_t start = i;
		uint32_t v = 0;
		int d;

		while (i < n && i - start < 5 && (d = hex_value(s[i])) >= 0) {
			v = v << 4 | (uint32_t)d;
			i++;
		}
		if (i < n && s[i] == '.') {
			/* An IPv4 tail: the rest, as two last groups. */
			uint8_t q[4];

			if (nw > 6 || parse_ipv4(s + start, n - start, q) != 0)
				return -1;
			w[nw++] = (uint16_t)(q[0] << 8 | q[1]);
			w[nw++] = (uint16_t)(q[2] << 8 | q[3]);
			i = n;
			break;
		}
		if (i == start || i - start > 4 || nw == 8)
			return -1;
		w[nw++] = (uint16_t)v;
		if (i == n)
			break;
		if (s[i] != ':')
			return -1;
		i++;
		if (i < n && s[i] == ':') {
			if (gap >= 0)
				return -1;
			gap = (int)nw;
			i++;
		} else if (i == n) {
			return -1; /* a single trailing colon */
		}
	}
	if (gap < 0 ? nw != 8 : nw > 7)
		return -1;
	memset(out, 0, 16);
	for (k = 0; k < nw; k++) {
		/* Groups after the gap go to the end. */
		size_t at = gap >= 0 && k >= (size_t)gap ? 8 - nw + k : k;

		at &= 7u; /* already < 8: says so to the compiler */

		out[2 * at] = (uint8_t)(w[k] >> 8);
		out[2 * at + 1] = (uint8_t)w[k];
	}
	return 0;
}

/* The complete line, CRLF included, in p->line[0..p->pos). */
static int v1_line(struct proxy *p)
{
	const uint8_t *s = p->line;
	const size_t end = p->pos - 2; /* the CR */
	const uint8_t *f[4];
	size_t flen[4], i = V1_SIG_LEN + 5, k;
	uint8_t src[16] = {0}, dst[16] = {0};
	uint32_t sport, dport;
	int ok;

	memset(&p->res, 0, sizeof(p->res));
	p->res.version = 1;
	p->res.command = PROXY_CMD_PROXY;
	p->res.family = AF_UNSPEC;
	p->res.header_len = p->pos;
	if (p->v1fam == V1_UNKNOWN)
		return PROXY_DONE; /* 2.1: the rest is ignored */

	/* src SP dst SP sport SP dport: four fields, single spaces. */
	for (k = 0; k < 4; k++) {
		f[k] = s + i;
		while (i < end && s[i] != ' ')
			i++;
		flen[k] = (size_t)(s + i - f[k]);
		if (flen[k] == 0)
			return PROXY_E_V1_SYNTAX;
		if (k < 3) {
			if (i == end)
				return PROXY_E_V1_SYNTAX;
			i++;
		}
	}
	if (i != end)
		return PROXY_E_V1_SYNTAX;
	if (p->v1fam == V1_TCP4)
		ok = parse_ipv4(f[0], flen[0], src) == 0 &&
		     parse_ipv4(f[1], flen[1], dst) == 0;
	else
		ok = parse_ipv6(f[0], flen[0], src) == 0 &&
		     parse_ipv6(f[1], flen[1], dst) == 0;
	if (!ok || parse_dec(f[2], flen[2], 65535, &sport) != 0 ||
	    parse_dec(f[3], flen[3], 65535, &dport) != 0)
		return PROXY_E_V1_SYNTAX;
	p->res.proxied = 1;
	p->res.family = p->v1fam == V1_TCP4 ? AF_INET : AF_INET6;
	memcpy(p->res.src, src, sizeof(src));
	memcpy(p->res.dst, dst, sizeof(dst));
	p->res.src_port = (uint16_t)sport;
	p->res.dst_port = (uint16_t)dport;
	return PROXY_DONE;
}

/* Whether c may appear in the fields of a TCP4/TCP6 line. */
static int v1_field_char(uint8_t c)
{
	return hex_value(c) >= 0 || c == '.' || c == ':' || c == ' ' ||
	       c == '\r';
}

static int v1_byte(struct proxy *p, uint8_t b)
{
	const uint32_t n = p->pos; /* b's index in the line */
	const uint8_t prev = n > 0 ? p->line[n - 1] : 0;
	size_t k;

	p->line[n] = b;
	p->pos = n + 1;
	if (n < V1_SIG_LEN) {
		if (b != (uint8_t)v1_sig[n])
			return PROXY_E_SIGNATURE;
	} else if (p->v1fam == 0) {
		/* The keyword: line[6..n] must begin one of v1_keys. */
		int any = 0;

		for (k = 0; k < sizeof(v1_keys) / sizeof(v1_keys[0]); k++) {
			size_t klen = strlen(v1_keys[k].text);

			if (n - V1_SIG_LEN < klen &&
			    memcmp(p->line + V1_SIG_LEN, v1_keys[k].text,
				   n - V1_SIG_LEN + 1) == 0) {
				any = 1;
				if (n - V1_SIG_LEN + 1 == klen)
					p->v1fam = v1_keys[k].fam;
			}
		}
		if (!any)
			return PROXY_E_FAMILY;
	} else {
		/* 2.1: "must not tolerate a single CR or LF character to end
		 * the line". */
		if (prev == '\r')
			return b == '\n' ? v1_line(p) : PROXY_E_V1_SYNTAX;
		if (b == '\n')
			return PROXY_E_V1_SYNTAX;
		if (p->v1fam != V1_UNKNOWN && !v1_field_char(b))
			return PROXY_E_V1_SYNTAX;
	}
	/* 2.1: "If the CRLF sequence is not found in the first 107
	 * characters, the receiver should declare the line invalid." */
	if (p->pos == PROXY_V1_MAX_LEN)
		return PROXY_E_V1_TOO_LONG;
	return PROXY_NEED_MORE;
}

/* ---- v2 ---- */

static uint32_t v2_addr_len(uint8_t fam)
{
	switch (fam) {
	case PROXY_FAM_TCP4:
		return PROXY_V2_ADDR4_LEN;
	case PROXY_FAM_TCP6:
		return PROXY_V2_ADDR6_LEN;
	default:
		return 0;
	}
}

/* Byte k of the address block: src, dst, sport, dport, network order. */
static void v2_addr_byte(struct proxy_result *r, uint8_t fam, uint32_t k,
			 uint8_t b)
{
	const uint32_t alen = fam == PROXY_FAM_TCP4 ? 4 : 16;

	if (k < alen)
		r->src[k] = b;
	else if (k < 2 * alen)
		r->dst[k - alen] = b;
	else if (k == 2 * alen)
		r->src_port = (uint16_t)(b << 8);
	else if (k == 2 * alen + 1)
		r->src_port = (uint16_t)(r->src_port | b);
	else if (k == 2 * alen + 2)
		r->dst_port = (uint16_t)(b << 8);
	else
		r->dst_port = (uint16_t)(r->dst_port | b);
}

/* The third byte of a TLV header: the TLV's checks, its next state. */
static int v2_tlv(struct proxy *p)
{
	const uint32_t vlen = (uint32_t)p->tlv[1] << 8 | p->tlv[2];

	/* Against what the header's length leaves, never the TLV's claim. */
	if (vlen > p->total - p->pos)
		return PROXY_E_TLV;
	p->res.tlvs++;
	p->left = vlen;
	switch (p->tlv[0]) {
	case PROXY_TLV_CRC32C:
		/* 2.2.3: a 32-bit value; one checksum per header. */
		if (vlen != 4 || p->res.crc32c)
			return PROXY_E_TLV;
		p->res.crc32c = 1;
		p->crc_want = 0;
		p->state = PROXY_S_V2_CRC;
		return PROXY_NEED_MORE;
	case PROXY_TLV_SSL:
		/* 2.2.6: client (1) and verify (4), then sub-TLVs. */
		if (vlen < PROXY_TLV_SSL_HDR_LEN)
			return PROXY_E_TLV;
		p->ssl_left = vlen;
		p->state = PROXY_S_V2_SSL;
		return PROXY_NEED_MORE;
	case PROXY_TLV_UNIQUE_ID:
		/* 2.2.5: "up to 128 bytes". */
		if (vlen > PROXY_UNIQUE_ID_MAX)
			return PROXY_E_TLV;
		break;
	default:
		break;
	}
	p->state = vlen > 0 ? PROXY_S_V2_VALUE : PROXY_S_V2_TLV;
	return PROXY_NEED_MORE;
}

/* After a sub-TLV, or the SSL TLV's fixed part: more sub-TLVs or done. */
static enum proxy_state v2_ssl_next(const struct proxy *p)
{
	return p->ssl_left > 0 ? PROXY_S_V2_SUB : PROXY_S_V2_TLV;
}

static int v2_byte(struct proxy *p, uint8_t b)
{
	const uint32_t n = p->pos; /* b's index in the header */
	struct proxy_result *r = &p->res;
	uint32_t vlen;
	int st;

	p->pos = n + 1;
	/* 2.2.3: the CRC is computed with the checksum field as zeros. */
	p->crc = crc32c_byte(p->crc, p->state == PROXY_S_V2_CRC ? 0 : b);
	switch (p->state) {
	case PROXY_S_V2_HDR:
		if (n < PROXY_V2_SIG_LEN)
			return b == (uint8_t)PROXY_V2_SIG[n]
				   ? PROXY_NEED_MORE
				   : PROXY_E_SIGNATURE;
		if (n == 12) {
			if (b >> 4 != 2)
				return PROXY_E_VERSION;
			if ((b & 0xfu) > PROXY_CMD_PROXY)
				return PROXY_E_COMMAND;
			p->v2cmd = b & 0xfu;
			return PROXY_NEED_MORE;
		}
		if (n == 13) {
			if (b != PROXY_FAM_UNSPEC && b != PROXY_FAM_TCP4 &&
			    b != PROXY_FAM_TCP6)
				return PROXY_E_FAMILY;
			p->v2fam = b;
			return PROXY_NEED_MORE;
		}
		if (n == 14) {
			p->total = (uint32_t)b << 8;
			return PROXY_NEED_MORE;
		}
		p->total |= b;
		if (p->total < v2_addr_len(p->v2fam))
			return PROXY_E_LENGTH;
		p->total += PROXY_V2_HDR_LEN;
		memset(r, 0, sizeof(*r));
		r->version = 2;
		r->command = p->v2cmd;
		r->family = AF_UNSPEC;
		r->header_len = p->total;
		if (p->v2cmd == PROXY_CMD_PROXY &&
		    p->v2fam != PROXY_FAM_UNSPEC) {
			r->proxied = 1;
			r->family =
			    p->v2fam == PROXY_FAM_TCP4 ? AF_INET : AF_INET6;
		}
		p->state = v2_addr_len(p->v2fam) > 0 ? PROXY_S_V2_ADDR
						     : PROXY_S_V2_TLV;
		break;

	case PROXY_S_V2_ADDR:
		/* LOCAL: the block is skipped, the family ignored (2.2). */
		if (r->proxied)
			v2_addr_byte(r, p->v2fam, n - PROXY_V2_HDR_LEN, b);
		if (p->pos == PROXY_V2_HDR_LEN + v2_addr_len(p->v2fam))
			p->state = PROXY_S_V2_TLV;
		break;

	case PROXY_S_V2_TLV:
		if (p->tlv_n == 0 && p->total - n < 3)
			return PROXY_E_TLV; /* no room for type and length */
		p->tlv[p->tlv_n++] = b;
		if (p->tlv_n < 3)
			return PROXY_NEED_MORE;
		p->tlv_n = 0;
		st = v2_tlv(p);
		if (st != PROXY_NEED_MORE)
			return st;
		break;

	case PROXY_S_V2_VALUE:
		if (--p->left == 0)
			p->state = PROXY_S_V2_TLV;
		break;

	case PROXY_S_V2_CRC:
		p->crc_want = p->crc_want << 8 | b;
		if (--p->left == 0)
			p->state = PROXY_S_V2_TLV;
		break;

	case PROXY_S_V2_SSL:
		p->ssl_left--;
		if (++p->tlv_n == PROXY_TLV_SSL_HDR_LEN) {
			p->tlv_n = 0;
			p->state = v2_ssl_next(p);
		}
		break;

	case PROXY_S_V2_SUB:
		if (p->tlv_n == 0 && p->ssl_left < 3)
			return PROXY_E_TLV;
		p->tlv[p->tlv_n++] = b;
		p->ssl_left--;
		if (p->tlv_n < 3)
			return PROXY_NEED_MORE;
		p->tlv_n = 0;
		vlen = (uint32_t)p->tlv[1] << 8 | p->tlv[2];
		if (vlen > p->ssl_left)
			return PROXY_E_TLV;
		p->left = vlen;
		p->state = vlen > 0 ? PROXY_S_V2_SUB_VAL : v2_ssl_next(p);
		break;

	case PROXY_S_V2_SUB_VAL:
		p->ssl_left--;
		if (--p->left == 0)
			p->state = v2_ssl_next(p);
		break;

	default:
		assert(!"proxy: state corrupt");
		return PROXY_E_ARGS;
	}
	if (p->pos < p->total)
		return PROXY_NEED_MORE;
	/* The header's last byte: every TLV was bounded by it, so none is
	 * left open. */
	assert(p->state == PROXY_S_V2_TLV && p->tlv_n == 0);
	if (r->crc32c && ~p->crc != p->crc_want)
		return PROXY_E_CRC;
	return PROXY_DONE;
}

static int step(struct proxy *p, uint8_t b)
{
	switch (p->state) {
	case PROXY_S_START:
		/* 2.2: told apart by the first byte, 'P' or CR. */
		if ((p->accept & PROXY_ACCEPT_V1) && b == (uint8_t)v1_sig[0]) {
			p->state = PROXY_S_V1;
			return v1_byte(p, b);
		}
		if ((p->accept & PROXY_ACCEPT_V2) &&
		    b == (uint8_t)PROXY_V2_SIG[0]) {
			p->state = PROXY_S_V2_HDR;
			p->crc = 0xffffffffu;
			return v2_byte(p, b);
		}
		return PROXY_E_SIGNATURE;
	case PROXY_S_V1:
		return v1_byte(p, b);
	default:
		return v2_byte(p, b);
	}
}

int proxy_parse(struct proxy *p, const uint8_t *in, size_t len,
		size_t *consumed, struct proxy_result *r)
{
	size_t i = 0;
	int st = PROXY_NEED_MORE;

	if (consumed != NULL)
		*consumed = 0;
	if (r != NULL)
		memset(r, 0, sizeof(*r));
	if (p == NULL || consumed == NULL || r == NULL ||
	    (in == NULL && len > 0) ||
	    (p->accept != PROXY_ACCEPT_V1 && p->accept != PROXY_ACCEPT_V2 &&
	     p->accept != PROXY_ACCEPT_ANY))
		return PROXY_E_ARGS;
	if (p->state == PROXY_S_END) {
		if (p->end == PROXY_DONE)
			*r = p->res;
		return p->end;
	}
	while (i < len && st == PROXY_NEED_MORE)
		st = step(p, in[i++]);
	*consumed = i;
	if (st != PROXY_NEED_MORE) {
		p->state = PROXY_S_END;
		p->end = st;
		if (st == PROXY_DONE)
			*r = p->res;
	}
	return st;
}
