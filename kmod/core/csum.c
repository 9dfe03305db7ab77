// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Checksums of on-disk structures: crc32c of the whole structure with its
 * checksum field taken as zero. */
#include "twinfs_core.h"

u32 twinfs_csum_block(const void *buf, size_t len, size_t csum_off)
{
	static const u8 zero[4];
	const u8 *p = buf;
	u32 crc = ~0u;

	crc = twinfs_crc32c(crc, p, csum_off);
	crc = twinfs_crc32c(crc, zero, sizeof(zero));
	crc = twinfs_crc32c(crc, p + csum_off + 4, len - csum_off - 4);
	return ~crc;
}

void twinfs_csum_set(void *buf, size_t len, size_t csum_off)
{
	__le32 c = cpu_to_le32(twinfs_csum_block(buf, len, csum_off));

	memcpy((u8 *)buf + csum_off, &c, sizeof(c));
}

bool twinfs_csum_ok(const void *buf, size_t len, size_t csum_off)
{
	__le32 c;

	memcpy(&c, (const u8 *)buf + csum_off, sizeof(c));
	return le32_to_cpu(c) == twinfs_csum_block(buf, len, csum_off);
}
