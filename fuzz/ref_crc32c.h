/*
 * ref_crc32c.h - CRC32C (RFC 4960 appendix B) bit by bit: the reference
 * the PROXY tests and fuzz targets check src/proxy.c's table-driven CRC
 * against, and build their v2 headers' PP2_TYPE_CRC32C with. Independent
 * of proxy.c on purpose; one copy for every harness.
 */
#ifndef ECHOD_REF_CRC32C_H
#define ECHOD_REF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t ref_crc32c(const uint8_t *d, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= d[i];
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
	}
	return ~c;
}

#endif /* ECHOD_REF_CRC32C_H */
