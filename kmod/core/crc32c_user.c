// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Table-driven crc32c (Castagnoli) for the user-space build of the core. */
#include "twinfs_shim.h"

static u32 crc_table[256];
static int crc_table_ready;

static void crc_table_init(void)
{
	u32 i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[i] = c;
	}
	crc_table_ready = 1;
}

/* Same convention as the kernel's crc32c(): no pre/post inversion. */
u32 twinfs_crc32c(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;

	if (!crc_table_ready)
		crc_table_init();
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}
