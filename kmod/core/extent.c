// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Sorted extent arrays, the building block of an inode's extent map: the
 * inline array in the inode, the index array (depth 1) and each leaf block.
 */
#include "twinfs_core.h"

static u32 e_lblk(const struct twinfs_extent *e)
{
	return le32_to_cpu(e->e_lblk);
}

static u32 e_len(const struct twinfs_extent *e)
{
	return le32_to_cpu(e->e_len);
}

static u64 e_pblk(const struct twinfs_extent *e)
{
	return le64_to_cpu(e->e_pblk);
}

static u64 e_end(const struct twinfs_extent *e)
{
	return (u64)e_lblk(e) + e_len(e);
}

/* Index of the first extent starting after lblk (count if none). */
static u32 first_after(const struct twinfs_extent *ext, u32 count, u32 lblk)
{
	u32 lo = 0, hi = count, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (e_lblk(&ext[mid]) <= lblk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void twinfs_ext_lookup(const struct twinfs_extent *ext, u32 count, u32 lblk,
		       struct twinfs_ext_map_result *res)
{
	u32 i = first_after(ext, count, lblk);

	if (i > 0 && e_end(&ext[i - 1]) > lblk) {
		const struct twinfs_extent *e = &ext[i - 1];

		res->pblk = e_pblk(e) + (lblk - e_lblk(e));
		res->len = (u32)(e_end(e) - lblk);
		return;
	}
	res->pblk = 0;
	res->len = i < count ? e_lblk(&ext[i]) - lblk : 0;
}

int twinfs_ext_insert(struct twinfs_extent *ext, u32 count, u32 cap,
		      u32 lblk, u32 len, u64 pblk)
{
	u32 i = first_after(ext, count, lblk);
	u64 end = (u64)lblk + len;
	struct twinfs_extent *prev = i > 0 ? &ext[i - 1] : NULL;
	struct twinfs_extent *next = i < count ? &ext[i] : NULL;
	bool join_prev, join_next;

	if (!len || end > 0xffffffffull)
		return -EINVAL;
	if ((prev && e_end(prev) > lblk) || (next && end > e_lblk(next)))
		return -EEXIST;

	join_prev = prev && e_end(prev) == lblk &&
		    e_pblk(prev) + e_len(prev) == pblk &&
		    (u64)e_len(prev) + len <= 0xffffffffull;
	join_next = next && end == e_lblk(next) &&
		    pblk + len == e_pblk(next) &&
		    (u64)e_len(next) + len <= 0xffffffffull;

	if (join_prev && join_next &&
	    (u64)e_len(prev) + len + e_len(next) <= 0xffffffffull) {
		prev->e_len = cpu_to_le32(e_len(prev) + len + e_len(next));
		memmove(next, next + 1, (count - i - 1) * sizeof(*ext));
		return (int)count - 1;
	}
	if (join_prev) {
		prev->e_len = cpu_to_le32(e_len(prev) + len);
		return (int)count;
	}
	if (join_next) {
		next->e_lblk = cpu_to_le32(lblk);
		next->e_pblk = cpu_to_le64(pblk);
		next->e_len = cpu_to_le32(e_len(next) + len);
		return (int)count;
	}
	if (count >= cap)
		return -ENOSPC;
	memmove(&ext[i + 1], &ext[i], (count - i) * sizeof(*ext));
	ext[i].e_lblk = cpu_to_le32(lblk);
	ext[i].e_len = cpu_to_le32(len);
	ext[i].e_pblk = cpu_to_le64(pblk);
	return (int)count + 1;
}

u32 twinfs_ext_truncate(struct twinfs_extent *ext, u32 count, u32 from,
			void (*free_fn)(void *arg, u32 lblk, u64 pblk,
					u32 len),
			void *arg)
{
	u32 i, keep = 0;

	for (i = 0; i < count; i++) {
		struct twinfs_extent *e = &ext[i];
		u32 start = e_lblk(e);

		if (start >= from) {
			free_fn(arg, start, e_pblk(e), e_len(e));
			continue;
		}
		if (e_end(e) > from) {
			u32 cut = from - start;

			free_fn(arg, from, e_pblk(e) + cut, e_len(e) - cut);
			e->e_len = cpu_to_le32(cut);
		}
		ext[keep++] = *e;
	}
	return keep;
}

int twinfs_ext_check(const struct twinfs_extent *ext, u32 count, u64 lo,
		     u64 hi)
{
	u32 i;

	for (i = 0; i < count; i++) {
		const struct twinfs_extent *e = &ext[i];

		if (!e_len(e) || e_end(e) > 0xffffffffull)
			return -EUCLEAN;
		if (e_pblk(e) < lo || e_pblk(e) > hi ||
		    e_len(e) > hi - e_pblk(e))
			return -EUCLEAN;
		if (i && e_end(&ext[i - 1]) > e_lblk(e))
			return -EUCLEAN;
	}
	return 0;
}

int twinfs_ext_index_find(const struct twinfs_extent *idx, u32 count,
			  u32 lblk)
{
	u32 i;

	if (!count)
		return -1;
	i = first_after(idx, count, lblk);
	return i ? (int)i - 1 : 0;
}

int twinfs_ext_remove(struct twinfs_extent *ext, u32 count, u32 cap,
		      u32 lblk, u32 len)
{
	u32 i = first_after(ext, count, lblk);
	struct twinfs_extent *e;
	u64 end = (u64)lblk + len, e_stop;
	u32 head, tail;

	if (!i || !len)
		return -ENOENT;
	e = &ext[i - 1];
	e_stop = e_end(e);
	if (end > e_stop)
		return -ENOENT;
	head = lblk - e_lblk(e);
	tail = (u32)(e_stop - end);
	if (head && tail) {
		if (count >= cap)
			return -ENOSPC;
		memmove(&ext[i + 1], &ext[i], (count - i) * sizeof(*ext));
		ext[i].e_lblk = cpu_to_le32((u32)end);
		ext[i].e_len = cpu_to_le32(tail);
		ext[i].e_pblk = cpu_to_le64(e_pblk(e) + head + len);
		e->e_len = cpu_to_le32(head);
		return (int)count + 1;
	}
	if (head) {
		e->e_len = cpu_to_le32(head);
		return (int)count;
	}
	if (tail) {
		e->e_lblk = cpu_to_le32((u32)end);
		e->e_pblk = cpu_to_le64(e_pblk(e) + len);
		e->e_len = cpu_to_le32(tail);
		return (int)count;
	}
	memmove(e, e + 1, (count - i) * sizeof(*ext));
	return (int)count - 1;
}
