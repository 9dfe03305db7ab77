// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Allocation bitmaps: one block of bits, bit n in byte n / 8, bit n % 8. */
#include "twinfs_core.h"

bool twinfs_bit_test(const u8 *map, u32 bit)
{
	return map[bit >> 3] & (1u << (bit & 7));
}

void twinfs_bit_set(u8 *map, u32 bit)
{
	map[bit >> 3] |= (u8)(1u << (bit & 7));
}

void twinfs_bit_clear(u8 *map, u32 bit)
{
	map[bit >> 3] &= (u8)~(1u << (bit & 7));
}

u32 twinfs_bit_count(const u8 *map, u32 nbits)
{
	u32 n = 0, i;

	for (i = 0; i + 8 <= nbits; i += 8)
		n += twinfs_popcount8(map[i >> 3]);
	for (; i < nbits; i++)
		n += twinfs_bit_test(map, i);
	return n;
}

u32 twinfs_bit_find_zero(const u8 *map, u32 nbits, u32 start)
{
	u32 i = start;

	while (i < nbits) {
		if (!(i & 7) && map[i >> 3] == 0xff) {
			i += 8;
			continue;
		}
		if (!twinfs_bit_test(map, i))
			return i;
		i++;
	}
	return nbits;
}

static u32 run_length(const u8 *map, u32 nbits, u32 start, u32 want)
{
	u32 i = start;

	while (i < nbits && i - start < want && !twinfs_bit_test(map, i))
		i++;
	return i - start;
}

/* Searches runs starting in [from, to); a run may extend up to nbits. */
static u32 find_run_from(const u8 *map, u32 nbits, u32 from, u32 to,
			 u32 want, u32 *best_start, u32 *best_len)
{
	u32 i = from, len;

	while (i < to) {
		i = twinfs_bit_find_zero(map, to, i);
		if (i >= to)
			break;
		len = run_length(map, nbits, i, want);
		if (len > *best_len) {
			*best_len = len;
			*best_start = i;
			if (len >= want)
				return len;
		}
		i += len;
	}
	return 0;
}

u32 twinfs_bit_find_run(const u8 *map, u32 nbits, u32 goal, u32 want,
			u32 *start)
{
	u32 best_start = 0, best_len = 0;

	if (!want)
		want = 1;
	if (goal >= nbits)
		goal = 0;
	if (!find_run_from(map, nbits, goal, nbits, want, &best_start,
			   &best_len))
		find_run_from(map, nbits, 0, goal, want, &best_start,
			      &best_len);
	if (!best_len)
		return 0;
	*start = best_start;
	return best_len < want ? best_len : want;
}
