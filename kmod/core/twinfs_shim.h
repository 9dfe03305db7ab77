/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The few definitions the portable core needs from its host: fixed-size
 * integer types, little-endian conversion, memory helpers, errno values and
 * crc32c.  In the kernel they come from the kernel; in user space (the
 * libtwinfscore library used by the tools, unit tests and fuzzers) from libc.
 * The core itself never allocates and never locks: callers own both.
 */
#ifndef TWINFS_SHIM_H
#define TWINFS_SHIM_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/kernel.h>
#include <linux/crc32c.h>
#include <asm/byteorder.h>

#include <linux/bitops.h>

static inline u32 twinfs_crc32c(u32 seed, const void *buf, size_t len)
{
	return crc32c(seed, buf, len);
}

static inline u32 twinfs_popcount8(u8 v)
{
	return hweight8(v);
}
#else
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <errno.h>
#include <endian.h>
#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le16(x) htole16(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)

#ifndef EUCLEAN
#define EUCLEAN 117
#endif

static inline u32 twinfs_popcount8(u8 v)
{
	return (u32)__builtin_popcount(v);
}

#ifdef __cplusplus
extern "C" {
#endif
u32 twinfs_crc32c(u32 seed, const void *buf, size_t len);
#ifdef __cplusplus
}
#endif
#endif /* __KERNEL__ */

#endif /* TWINFS_SHIM_H */
