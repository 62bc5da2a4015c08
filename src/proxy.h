/*
 * proxy.h - the PROXY protocol header parser, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt; SPEC section 8). Pure like the engine: no system
 * calls, no allocation, no globals, no clock, no locale.
 *
 * A load balancer that speaks the PROXY protocol sends one header before
 * the client's data, carrying the client's address. proxy_parse() is fed
 * the connection's first bytes in any split, down to one byte at a time,
 * and says when the header is complete, how many bytes of the last call it
 * took, and what it carried. It never takes a byte past the header: what
 * follows it is the client's data. The state is a caller-owned struct of
 * fixed size (sizeof(struct proxy)): the v1 line (at most 107 bytes) is
 * held, a v2 header (up to 16 + 65535 bytes) is not: its fields are decoded
 * as they pass, its TLVs walked and its CRC32C computed on the fly.
 *
 * v1 (2.1 of the text), strict: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst
 * SP sport SP dport CRLF, or "PROXY UNKNOWN" followed by CRLF or by SP and
 * anything up to the first CRLF; single spaces; IPv4 as four decimal
 * numbers 0-255 without leading zeros; IPv6 as inet_pton() takes it (1-4
 * hex digits a group, one "::" at most, an IPv4 tail allowed, no zone; the
 * parser is its own, not libc's); ports 0-65535 without leading zeros;
 * CRLF within the first PROXY_V1_MAX_LEN bytes. A byte is rejected as soon
 * as no valid line can contain it:
 *   - bytes 0-5 not "PROXY "                              PROXY_E_SIGNATURE
 *   - the bytes from 6 on not a prefix of "TCP4 ", "TCP6 ",
 *     "UNKNOWN " or "UNKNOWN\r"                           PROXY_E_FAMILY
 *   - after that, a LF not preceded by CR, a CR not followed
 *     by LF, or in a TCP4/TCP6 line a byte outside
 *     [0-9A-Fa-f.: ] and CR LF                            PROXY_E_V1_SYNTAX
 *   - at the CRLF, a TCP4/TCP6 line whose four fields are
 *     not exactly the above                               PROXY_E_V1_SYNTAX
 *   - the PROXY_V1_MAX_LEN-th byte not the LF that ends
 *     the line                                            PROXY_E_V1_TOO_LONG
 *
 * v2 (2.2 of the text): the 12-byte signature; the version nibble 2
 * (PROXY_E_VERSION); the command LOCAL or PROXY (PROXY_E_COMMAND); the
 * family and transport byte 0x11 (TCP over IPv4), 0x21 (TCP over IPv6) or
 * 0x00 (UNSPEC), whatever the command: UDP (0x12, 0x22), UNIX (0x31, 0x32)
 * and unassigned values are PROXY_E_FAMILY, echod serving TCP only; the
 * length, which must hold the family's address block (12, 36 or 0 bytes;
 * else PROXY_E_LENGTH) and whose rest must be TLVs exactly. LOCAL skips
 * the address block (the text: "must not assume zero is presented for
 * LOCAL"); with UNSPEC the TLVs start right after the 16 fixed bytes. Every
 * TLV is checked against the bytes the length leaves, never against its
 * own claim (PROXY_E_TLV): a TLV header needs 3 bytes; its value must end
 * within the header; PP2_TYPE_CRC32C must be 4 bytes and occur once;
 * PP2_TYPE_UNIQUE_ID at most 128 bytes (2.2.5); PP2_TYPE_SSL at least 5
 * bytes (client, verify) and its sub-TLVs must fill the rest exactly, each
 * within it. Other types, known or not, are skipped (2.2). When a CRC32C
 * TLV is present, the CRC32C (RFC 4960 appendix B) of the whole header with
 * that TLV's value taken as zeros must equal it (big-endian), else
 * PROXY_E_CRC. Header cap: PROXY_V2_MAX_LEN, the protocol's own maximum
 * (16 + 65535). A lower cap would buy no memory (nothing of the header is
 * held) and would refuse legitimate headers carrying a client certificate
 * (PP2_SUBTYPE_SSL_CLIENT_CERT); the caller's header deadline bounds the
 * time a slow sender can take.
 *
 * The error is reported at the byte that shows it: the signature, version,
 * command, family bytes themselves; the length at its second byte; a TLV
 * or sub-TLV that cannot fit at its first byte, a bad length or type at
 * its third; the CRC at the header's last byte.
 */
#ifndef ECHOD_PROXY_H
#define ECHOD_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h> /* AF_INET, AF_INET6, AF_UNSPEC */

#define PROXY_V1_MAX_LEN    107u /* 2.1: worst case line, CRLF included */
#define PROXY_V2_SIG_LEN    12u
#define PROXY_V2_HDR_LEN    16u				/* signature + 4 */
#define PROXY_V2_MAX_LEN    (PROXY_V2_HDR_LEN + 65535u) /* see above */
#define PROXY_V2_ADDR4_LEN  12u
#define PROXY_V2_ADDR6_LEN  36u
#define PROXY_UNIQUE_ID_MAX 128u /* 2.2.5 */
/* The v2 signature (2.2); it holds a NUL: use PROXY_V2_SIG_LEN. */
#define PROXY_V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* v2 commands (low nibble of byte 13) and family bytes (byte 14). */
#define PROXY_CMD_LOCAL	   0x0u
#define PROXY_CMD_PROXY	   0x1u
#define PROXY_FAM_UNSPEC   0x00u
#define PROXY_FAM_TCP4	   0x11u
#define PROXY_FAM_UDP4	   0x12u
#define PROXY_FAM_TCP6	   0x21u
#define PROXY_FAM_UDP6	   0x22u
#define PROXY_FAM_UNIX	   0x31u
#define PROXY_FAM_UNIXDGRM 0x32u

/* v2 TLV types (2.2, 2.2.6 - 2.2.8). */
#define PROXY_TLV_ALPN		      0x01u
#define PROXY_TLV_AUTHORITY	      0x02u
#define PROXY_TLV_CRC32C	      0x03u
#define PROXY_TLV_NOOP		      0x04u
#define PROXY_TLV_UNIQUE_ID	      0x05u
#define PROXY_TLV_SSL		      0x20u
#define PROXY_TLV_SUBTYPE_SSL_VERSION 0x21u
#define PROXY_TLV_SUBTYPE_SSL_CN      0x22u
#define PROXY_TLV_SUBTYPE_SSL_CIPHER  0x23u
#define PROXY_TLV_SUBTYPE_SSL_SIG_ALG 0x24u
#define PROXY_TLV_SUBTYPE_SSL_KEY_ALG 0x25u
#define PROXY_TLV_SUBTYPE_SSL_GROUP   0x26u
#define PROXY_TLV_SUBTYPE_SSL_SIG_SCH 0x27u
#define PROXY_TLV_SUBTYPE_SSL_CERT    0x28u
#define PROXY_TLV_NETNS		      0x30u
#define PROXY_TLV_SSL_HDR_LEN	      5u /* client (1) + verify (4) */

/* Which versions a listener takes (SPEC 3, --proxy-protocol). */
enum proxy_accept {
	PROXY_ACCEPT_V1 = 1,
	PROXY_ACCEPT_V2 = 2,
	PROXY_ACCEPT_ANY = 3,
};

/* Return values of proxy_parse(). Negative values are terminal errors. */
enum proxy_status {
	PROXY_NEED_MORE = 0,	  /* all of in consumed, header incomplete */
	PROXY_DONE = 1,		  /* header complete: see *r */
	PROXY_E_SIGNATURE = -1,	  /* neither "PROXY " nor the v2 signature */
	PROXY_E_V1_SYNTAX = -2,	  /* v1: a malformed line */
	PROXY_E_V1_TOO_LONG = -3, /* v1: no CRLF within 107 bytes */
	PROXY_E_VERSION = -4,	  /* v2: version nibble not 2 */
	PROXY_E_COMMAND = -5,	  /* v2: command neither LOCAL nor PROXY */
	PROXY_E_FAMILY = -6,	  /* v2: not TCP4/TCP6/UNSPEC; v1: keyword */
	PROXY_E_LENGTH = -7,	  /* v2: length shorter than the addresses */
	PROXY_E_TLV = -8,	  /* v2: a TLV or sub-TLV out of bounds */
	PROXY_E_CRC = -9,	  /* v2: CRC32C mismatch */
	PROXY_E_ARGS = -10,	  /* bad configuration or arguments */
};

/* Internal phases; a zero-filled struct proxy starts in PROXY_S_START. */
enum proxy_state {
	PROXY_S_START = 0,  /* nothing seen yet */
	PROXY_S_V1,	    /* v1: collecting the line */
	PROXY_S_V2_HDR,	    /* v2: the 16 fixed bytes */
	PROXY_S_V2_ADDR,    /* v2: the address block */
	PROXY_S_V2_TLV,	    /* v2: type and length of a TLV */
	PROXY_S_V2_VALUE,   /* v2: a TLV's value, skipped */
	PROXY_S_V2_CRC,	    /* v2: the CRC32C TLV's 4-byte value */
	PROXY_S_V2_SSL,	    /* v2: client and verify of PP2_TYPE_SSL */
	PROXY_S_V2_SUB,	    /* v2: type and length of an SSL sub-TLV */
	PROXY_S_V2_SUB_VAL, /* v2: a sub-TLV's value, skipped */
	PROXY_S_END,	    /* terminal: status in `end` */
};

/*
 * What a complete header says. When proxied is 0 the connection's own
 * addresses are kept (v2 LOCAL, v2 PROXY with family UNSPEC, v1 UNKNOWN,
 * the text's "use the real connection's parameters") and family is
 * AF_UNSPEC, the addresses and ports zero.
 */
struct proxy_result {
	uint8_t version; /* 1 or 2 */
	uint8_t command; /* PROXY_CMD_*; v1: PROXY_CMD_PROXY */
	uint8_t proxied; /* 1: src and dst are the client's */
	uint8_t crc32c;	 /* v2: 1 when a CRC32C TLV was present (it matched) */
	int family;	 /* AF_INET or AF_INET6 when proxied, else AF_UNSPEC */
	uint8_t src[16]; /* network order; AF_INET: bytes 0-3, the rest 0 */
	uint8_t dst[16]; /* idem */
	uint16_t src_port; /* host order */
	uint16_t dst_port; /* host order */
	uint32_t tlvs;	   /* v2: top-level TLVs walked, CRC32C included */
	size_t header_len; /* bytes of the header, CRLF or TLVs included */
};

/*
 * Parser state. Set `accept` with proxy_init() or by hand; every other field
 * is valid when zero-filled. sizeof(struct proxy) is all the parser keeps.
 */
struct proxy {
	/* configuration */
	enum proxy_accept accept;

	/* incremental state */
	enum proxy_state state;
	int end;	   /* the status returned once state is PROXY_S_END */
	uint32_t pos;	   /* header bytes taken so far */
	uint32_t total;	   /* v2: 16 + the length field, once known */
	uint32_t crc;	   /* v2: running CRC32C, before the final inversion */
	uint32_t crc_want; /* v2: the CRC32C TLV's value */
	uint32_t left;	   /* v2: bytes left in a TLV's or sub-TLV's value */
	uint32_t ssl_left; /* v2: bytes left in the PP2_TYPE_SSL value */
	uint8_t tlv[3];	   /* v2: type and length of the TLV being read */
	uint8_t tlv_n;	   /* v2: bytes of it read; SSL: client/verify read */
	uint8_t v2cmd;	   /* v2: the command */
	uint8_t v2fam;	   /* v2: the family and transport byte */
	uint8_t v1fam;	   /* v1: 4, 6, 1 (UNKNOWN); 0 before the keyword */
	uint8_t line[PROXY_V1_MAX_LEN]; /* v1: the line so far */
	struct proxy_result res; /* v2: filled as fields pass; v1: at CRLF */
};

/*
 * proxy_init: set *p to accept `which` and zero its state. Returns 0, or
 * PROXY_E_ARGS (p NULL, or which not a proxy_accept; *p is then zeroed, and
 * proxy_parse() refuses it with PROXY_E_ARGS).
 */
int proxy_init(struct proxy *p, enum proxy_accept which);

/*
 * proxy_parse: feed in[0..len) to the parser.
 *
 * Sets *consumed (bytes of in taken) and *r on every path: *r is the
 * header's result on PROXY_DONE and all zero otherwise. in may be NULL when
 * len is 0.
 *
 * Returns:
 *   PROXY_NEED_MORE  *consumed == len: every byte was header, and the header
 *                    goes on; call again with the next bytes
 *   PROXY_DONE       the header ended inside in: *consumed (> 0) is the
 *                    count of its bytes in this call; in[*consumed..len)
 *                    is the client's data, never looked at; r->header_len
 *                    counts the header across all calls
 *   PROXY_E_*        the header is malformed (see above); *consumed counts
 *                    the bytes up to and including the one that showed it
 *   PROXY_E_ARGS     p, consumed or r NULL, in NULL with len > 0, or
 *                    p->accept invalid; nothing consumed, no state changed
 * The result does not depend on how the bytes are split between calls.
 * PROXY_DONE and the errors but PROXY_E_ARGS are terminal: later calls
 * consume nothing and return the same status (and result).
 */
int proxy_parse(struct proxy *p, const uint8_t *in, size_t len,
		size_t *consumed, struct proxy_result *r);

/* proxy_status_str: a short text for a status ("bad signature", ...). */
const char *proxy_status_str(int status);

#endif /* ECHOD_PROXY_H */
