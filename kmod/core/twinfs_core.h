/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The portable core of twinfs: the algorithms that need no kernel service.
 * Compiled into twinfs.ko and into the user-space library libtwinfscore
 * (tools, unit tests, fuzzers).  Functions work on caller-owned buffers,
 * never allocate and never lock; errors are negative errno values.
 */
#ifndef TWINFS_CORE_H
#define TWINFS_CORE_H

#include "twinfs_shim.h"
#include "../../include/twinfs/twinfs_format.h"
#include "twinfs_undo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- checksums (csum.c) ---- */
u32 twinfs_csum_block(const void *buf, size_t len, size_t csum_off);
void twinfs_csum_set(void *buf, size_t len, size_t csum_off);
bool twinfs_csum_ok(const void *buf, size_t len, size_t csum_off);

/* ---- geometry (layout.c) ---- */
struct twinfs_geometry {
	u64 blocks;
	u64 node_area_start;
	u32 node_area_blocks;
	u32 max_nodes;
	u64 first_ag_block;
	u32 ag_blocks;
	u32 ag_count;
	u32 inodes_per_ag;
	u32 itable_blocks;
};

int twinfs_geometry_compute(u64 blocks, u32 max_nodes, u32 node_area_blocks,
			    u32 ag_blocks, u32 inodes_per_ag,
			    struct twinfs_geometry *g);
/* Validates a superblock read from disk; on success fills g (if non-NULL).
 * dev_blocks is the size of the device in blocks, 0 if unknown.  On error
 * *why is a static string naming the problem. */
int twinfs_super_check(const struct twinfs_super *sb, u64 dev_blocks,
		       struct twinfs_geometry *g, const char **why);
u64 twinfs_ag_start(const struct twinfs_geometry *g, u32 ag);
u32 twinfs_ag_size(const struct twinfs_geometry *g, u32 ag);
u32 twinfs_ag_meta_blocks(const struct twinfs_geometry *g);
u64 twinfs_ino_block(const struct twinfs_geometry *g, u64 ino, u32 *offset);

/* ---- bitmaps (bitmap.c), one block of bits, little-endian bit order ---- */
bool twinfs_bit_test(const u8 *map, u32 bit);
void twinfs_bit_set(u8 *map, u32 bit);
void twinfs_bit_clear(u8 *map, u32 bit);
u32 twinfs_bit_count(const u8 *map, u32 nbits);
/* First clear bit >= start below nbits, or nbits. */
u32 twinfs_bit_find_zero(const u8 *map, u32 nbits, u32 start);
/* Finds a run of clear bits: the first run of at least want bits at or after
 * goal, else the longest run found (at least 1 bit).  Returns its length and
 * start, or 0 if the map is full. */
u32 twinfs_bit_find_run(const u8 *map, u32 nbits, u32 goal, u32 want,
			u32 *start);

/* ---- extent arrays (extent.c) ---- */
struct twinfs_ext_map_result {
	u64 pblk;	/* 0 for a hole */
	u32 len;	/* blocks mapped (or hole length, 0: to the end) */
};

/* Looks up lblk in a sorted extent array. */
void twinfs_ext_lookup(const struct twinfs_extent *ext, u32 count, u32 lblk,
		       struct twinfs_ext_map_result *res);
/* Inserts [lblk, lblk+len) -> pblk into the sorted array of capacity cap,
 * merging with a neighbour when contiguous.  The range must be a hole.
 * Returns the new count, -ENOSPC if the array is full, -EEXIST if the range
 * overlaps an extent. */
int twinfs_ext_insert(struct twinfs_extent *ext, u32 count, u32 cap,
		      u32 lblk, u32 len, u64 pblk);
/* Removes every mapping at or beyond file block from.  For each range
 * released it calls free_fn(arg, lblk, pblk, len).  Returns the new
 * count. */
u32 twinfs_ext_truncate(struct twinfs_extent *ext, u32 count, u32 from,
			void (*free_fn)(void *arg, u32 lblk, u64 pblk,
					u32 len),
			void *arg);
/* Unmaps [lblk, lblk+len), which must lie inside one extent, splitting
 * it when the range is in its middle.  Returns the new count, -ENOSPC when
 * a split needs a slot the array does not have, -ENOENT when the range is
 * not mapped by one extent.  Frees nothing. */
int twinfs_ext_remove(struct twinfs_extent *ext, u32 count, u32 cap,
		      u32 lblk, u32 len);
/* Checks an array: sorted, no overlap, no zero length, blocks in
 * [lo, hi).  Returns 0 or -EUCLEAN. */
int twinfs_ext_check(const struct twinfs_extent *ext, u32 count, u64 lo,
		     u64 hi);
/* Index entries (depth 1): the entry whose range covers lblk, or -1. */
int twinfs_ext_index_find(const struct twinfs_extent *idx, u32 count,
			  u32 lblk);

/* ---- directories (dir.c) ---- */
u32 twinfs_dirhash(const char *name, u32 len, u32 seed);
/* Readdir order key of a hash: the hash with its bits reversed. */
u32 twinfs_dir_key(u32 hash);
/* Slot of the hash table for a hash at global depth depth. */
u32 twinfs_dir_slot(u32 hash, u32 depth);
/* The key range [first, last] of a leaf of local depth l holding suffix. */
void twinfs_dir_leaf_range(u32 suffix, u32 l, u32 *first, u32 *last);

void twinfs_dirleaf_init(void *blk, u32 dir_ino, u32 depth);
int twinfs_dirleaf_check(const void *blk, u32 dir_ino);
/* Offset of the entry named name, or -ENOENT. */
int twinfs_dirleaf_find(const void *blk, const char *name, u32 len, u32 hash);
/* Inserts an entry keeping key order: 0, or -ENOSPC if the leaf is full. */
int twinfs_dirleaf_insert(void *blk, const char *name, u32 len, u32 hash,
			  u32 ino, u8 type);
void twinfs_dirleaf_remove(void *blk, u32 off);
/* Moves the entries whose hash has bit `bit` set from old into new (which
 * must be initialised and empty).  Returns how many moved. */
u32 twinfs_dirleaf_split(void *old_blk, void *new_blk, u32 bit);
/* Offset of the first entry with key >= key, or -ENOENT. */
int twinfs_dirleaf_seek(const void *blk, u32 key);
/* Entry following the one at off, or -ENOENT. */
int twinfs_dirleaf_next(const void *blk, u32 off);
static inline const struct twinfs_dirent *
twinfs_dirleaf_entry(const void *blk, u32 off)
{
	return (const struct twinfs_dirent *)((const u8 *)blk + off);
}

void twinfs_dirhdr_init(struct twinfs_dir_header *h, u32 ino, u32 parent);
int twinfs_dirhdr_check(const struct twinfs_dir_header *h, u32 dir_ino);

#ifdef __cplusplus
}
#endif

#endif /* TWINFS_CORE_H */
