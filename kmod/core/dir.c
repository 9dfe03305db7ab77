// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Directory blocks: the name hash, the readdir key order and the leaf
 * operations of the extendible hash directories described in
 * include/twinfs/twinfs_format.h.
 */
#include "twinfs_core.h"

#define LEAF_HDR sizeof(struct twinfs_dir_leaf_hdr)
#define LEAF_CSUM_OFF offsetof(struct twinfs_dir_leaf_hdr, d_checksum)
#define HDR_CSUM_OFF offsetof(struct twinfs_dir_header, h_checksum)

/* FNV-1a over the name, seeded per file system, then a murmur3 finaliser
 * so that every output bit depends on every input bit (the table is indexed
 * by the low bits). */
u32 twinfs_dirhash(const char *name, u32 len, u32 seed)
{
	u32 h = 2166136261u ^ seed;
	u32 i;

	for (i = 0; i < len; i++) {
		h ^= (u8)name[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

u32 twinfs_dir_key(u32 h)
{
	h = ((h >> 1) & 0x55555555u) | ((h & 0x55555555u) << 1);
	h = ((h >> 2) & 0x33333333u) | ((h & 0x33333333u) << 2);
	h = ((h >> 4) & 0x0f0f0f0fu) | ((h & 0x0f0f0f0fu) << 4);
	h = ((h >> 8) & 0x00ff00ffu) | ((h & 0x00ff00ffu) << 8);
	return (h >> 16) | (h << 16);
}

u32 twinfs_dir_slot(u32 hash, u32 depth)
{
	return depth ? hash & (0xffffffffu >> (32 - depth)) : 0;
}

void twinfs_dir_leaf_range(u32 suffix, u32 l, u32 *first, u32 *last)
{
	u32 f = l ? twinfs_dir_key(suffix) & ~(0xffffffffu >> l) : 0;

	*first = f;
	*last = l ? f | (0xffffffffu >> l) : 0xffffffffu;
}

static struct twinfs_dir_leaf_hdr *leaf_hdr(void *blk)
{
	return blk;
}

static u32 leaf_used(const void *blk)
{
	return le16_to_cpu(((const struct twinfs_dir_leaf_hdr *)blk)->d_used);
}

static u32 leaf_count(const void *blk)
{
	return le16_to_cpu(((const struct twinfs_dir_leaf_hdr *)blk)->d_count);
}

static u32 ent_size(const struct twinfs_dirent *de)
{
	return TWINFS_DIRENT_SIZE(de->de_name_len);
}

static u32 ent_key(const struct twinfs_dirent *de)
{
	return twinfs_dir_key(le32_to_cpu(de->de_hash));
}

void twinfs_dirleaf_init(void *blk, u32 dir_ino, u32 depth)
{
	struct twinfs_dir_leaf_hdr *h = leaf_hdr(blk);

	memset(blk, 0, TWINFS_BLOCK_SIZE);
	h->d_magic = cpu_to_le32(TWINFS_DIR_LEAF_MAGIC);
	h->d_ino = cpu_to_le32(dir_ino);
	h->d_depth = cpu_to_le16((u16)depth);
	twinfs_csum_set(blk, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF);
}

int twinfs_dirleaf_check(const void *blk, u32 dir_ino)
{
	const struct twinfs_dir_leaf_hdr *h = blk;
	u32 off = LEAF_HDR, end, n = 0, prev_key = 0;

	if (le32_to_cpu(h->d_magic) != TWINFS_DIR_LEAF_MAGIC ||
	    le32_to_cpu(h->d_ino) != dir_ino ||
	    le16_to_cpu(h->d_depth) > TWINFS_DIR_MAX_DEPTH ||
	    leaf_used(blk) > TWINFS_DIR_LEAF_SPACE)
		return -EUCLEAN;
	if (!twinfs_csum_ok(blk, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF))
		return -EUCLEAN;
	end = LEAF_HDR + leaf_used(blk);
	while (off < end) {
		const struct twinfs_dirent *de = twinfs_dirleaf_entry(blk, off);
		u32 i;

		if (off + 10 > end || !de->de_name_len ||
		    off + ent_size(de) > end || !le32_to_cpu(de->de_ino))
			return -EUCLEAN;
		if (n && ent_key(de) < prev_key)
			return -EUCLEAN;
		for (i = 0; i < de->de_name_len; i++)
			if (de->de_name[i] == '/' || de->de_name[i] == '\0')
				return -EUCLEAN;
		prev_key = ent_key(de);
		off += ent_size(de);
		n++;
	}
	return n == leaf_count(blk) ? 0 : -EUCLEAN;
}

int twinfs_dirleaf_find(const void *blk, const char *name, u32 len, u32 hash)
{
	u32 off = LEAF_HDR, end = LEAF_HDR + leaf_used(blk);

	while (off < end) {
		const struct twinfs_dirent *de = twinfs_dirleaf_entry(blk, off);

		if (le32_to_cpu(de->de_hash) == hash &&
		    de->de_name_len == len && !memcmp(de->de_name, name, len))
			return (int)off;
		off += ent_size(de);
	}
	return -ENOENT;
}

int twinfs_dirleaf_insert(void *blk, const char *name, u32 len, u32 hash,
			  u32 ino, u8 type)
{
	struct twinfs_dir_leaf_hdr *h = leaf_hdr(blk);
	u32 size = TWINFS_DIRENT_SIZE(len);
	u32 key = twinfs_dir_key(hash);
	u32 off = LEAF_HDR, end = LEAF_HDR + leaf_used(blk);
	struct twinfs_dirent *de;

	if (!len || len > TWINFS_NAME_MAX)
		return -EINVAL;
	if (leaf_used(blk) + size > TWINFS_DIR_LEAF_SPACE)
		return -ENOSPC;
	while (off < end) {
		de = (struct twinfs_dirent *)((u8 *)blk + off);
		if (ent_key(de) > key)
			break;
		off += ent_size(de);
	}
	memmove((u8 *)blk + off + size, (u8 *)blk + off, end - off);
	de = (struct twinfs_dirent *)((u8 *)blk + off);
	memset(de, 0, size);
	de->de_ino = cpu_to_le32(ino);
	de->de_hash = cpu_to_le32(hash);
	de->de_name_len = (u8)len;
	de->de_type = type;
	memcpy(de->de_name, name, len);
	h->d_used = cpu_to_le16((u16)(leaf_used(blk) + size));
	h->d_count = cpu_to_le16((u16)(leaf_count(blk) + 1));
	twinfs_csum_set(blk, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF);
	return 0;
}

void twinfs_dirleaf_remove(void *blk, u32 off)
{
	struct twinfs_dir_leaf_hdr *h = leaf_hdr(blk);
	const struct twinfs_dirent *de = twinfs_dirleaf_entry(blk, off);
	u32 size = ent_size(de), end = LEAF_HDR + leaf_used(blk);

	memmove((u8 *)blk + off, (u8 *)blk + off + size, end - off - size);
	memset((u8 *)blk + end - size, 0, size);
	h->d_used = cpu_to_le16((u16)(leaf_used(blk) - size));
	h->d_count = cpu_to_le16((u16)(leaf_count(blk) - 1));
	twinfs_csum_set(blk, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF);
}

u32 twinfs_dirleaf_split(void *old_blk, void *new_blk, u32 bit)
{
	u32 off = LEAF_HDR, moved = 0;

	while (off < LEAF_HDR + leaf_used(old_blk)) {
		const struct twinfs_dirent *de =
			twinfs_dirleaf_entry(old_blk, off);
		u32 hash = le32_to_cpu(de->de_hash);

		if (!((hash >> bit) & 1)) {
			off += ent_size(de);
			continue;
		}
		/* Entries arrive in key order, so each append stays sorted. */
		twinfs_dirleaf_insert(new_blk, de->de_name, de->de_name_len,
				      hash, le32_to_cpu(de->de_ino),
				      de->de_type);
		twinfs_dirleaf_remove(old_blk, off);
		moved++;
	}
	return moved;
}

int twinfs_dirleaf_seek(const void *blk, u32 key)
{
	u32 off = LEAF_HDR, end = LEAF_HDR + leaf_used(blk);

	while (off < end) {
		const struct twinfs_dirent *de = twinfs_dirleaf_entry(blk, off);

		if (ent_key(de) >= key)
			return (int)off;
		off += ent_size(de);
	}
	return -ENOENT;
}

int twinfs_dirleaf_next(const void *blk, u32 off)
{
	off += ent_size(twinfs_dirleaf_entry(blk, off));
	return off < LEAF_HDR + leaf_used(blk) ? (int)off : -ENOENT;
}

void twinfs_dirhdr_init(struct twinfs_dir_header *h, u32 ino, u32 parent)
{
	memset(h, 0, sizeof(*h));
	h->h_magic = cpu_to_le32(TWINFS_DIR_HDR_MAGIC);
	h->h_ino = cpu_to_le32(ino);
	h->h_parent = cpu_to_le32(parent);
	h->h_next_leaf = cpu_to_le32(2);	/* leaf 1 is the first leaf */
	twinfs_csum_set(h, sizeof(*h), HDR_CSUM_OFF);
}

int twinfs_dirhdr_check(const struct twinfs_dir_header *h, u32 dir_ino)
{
	if (le32_to_cpu(h->h_magic) != TWINFS_DIR_HDR_MAGIC ||
	    le32_to_cpu(h->h_ino) != dir_ino ||
	    le32_to_cpu(h->h_depth) > TWINFS_DIR_MAX_DEPTH ||
	    le32_to_cpu(h->h_next_leaf) < 2 ||
	    le32_to_cpu(h->h_next_leaf) > TWINFS_DIR_TABLE_LBLK ||
	    !le32_to_cpu(h->h_parent))
		return -EUCLEAN;
	if (!twinfs_csum_ok(h, sizeof(*h), HDR_CSUM_OFF))
		return -EUCLEAN;
	return 0;
}
