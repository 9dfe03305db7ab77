// SPDX-License-Identifier: GPL-2.0 OR MIT
/* File-system geometry: where node areas, allocation groups, bitmaps and
 * inode tables are, computed from a few parameters so mkfs, fsck and the
 * kernel agree by construction. */
#include "twinfs_core.h"

/* A last group smaller than its own metadata plus this is not made. */
#define TWINFS_MIN_AG_DATA 16u

u32 twinfs_ag_meta_blocks(const struct twinfs_geometry *g)
{
	return 2 + g->itable_blocks;
}

int twinfs_geometry_compute(u64 blocks, u32 max_nodes, u32 node_area_blocks,
			    u32 ag_blocks, u32 inodes_per_ag,
			    struct twinfs_geometry *g)
{
	u64 rest;

	if (!max_nodes || max_nodes > TWINFS_MAX_NODES)
		return -EINVAL;
	if (!ag_blocks || ag_blocks > TWINFS_AG_BLOCKS_MAX || ag_blocks % 8)
		return -EINVAL;
	if (!inodes_per_ag || inodes_per_ag > TWINFS_AG_INODES_MAX ||
	    inodes_per_ag % TWINFS_INODES_PER_BLOCK)
		return -EINVAL;

	memset(g, 0, sizeof(*g));
	g->blocks = blocks;
	g->max_nodes = max_nodes;
	g->node_area_blocks = node_area_blocks;
	g->node_area_start = 2;
	g->first_ag_block = g->node_area_start +
			    (u64)max_nodes * node_area_blocks;
	g->ag_blocks = ag_blocks;
	g->inodes_per_ag = inodes_per_ag;
	g->itable_blocks = inodes_per_ag / TWINFS_INODES_PER_BLOCK;
	if (twinfs_ag_meta_blocks(g) + TWINFS_MIN_AG_DATA > ag_blocks)
		return -EINVAL;
	if (blocks <= g->first_ag_block)
		return -ENOSPC;
	rest = blocks - g->first_ag_block;
	if (rest / ag_blocks >= 0xffffffffull)
		return -EFBIG;
	g->ag_count = (u32)(rest / ag_blocks);
	if (rest % ag_blocks >= twinfs_ag_meta_blocks(g) + TWINFS_MIN_AG_DATA)
		g->ag_count++;
	if (!g->ag_count)
		return -ENOSPC;
	/* Inode numbers are 32-bit in directory entries. */
	if ((u64)g->ag_count * inodes_per_ag > 0xffffffffull)
		return -EFBIG;
	/* The file system ends where its last group ends. */
	if (g->first_ag_block + (u64)g->ag_count * ag_blocks < blocks)
		g->blocks = g->first_ag_block + (u64)g->ag_count * ag_blocks;
	return 0;
}

u64 twinfs_ag_start(const struct twinfs_geometry *g, u32 ag)
{
	return g->first_ag_block + (u64)ag * g->ag_blocks;
}

u32 twinfs_ag_size(const struct twinfs_geometry *g, u32 ag)
{
	u64 end = twinfs_ag_start(g, ag) + g->ag_blocks;

	if (end > g->blocks)
		return (u32)(g->blocks - twinfs_ag_start(g, ag));
	return g->ag_blocks;
}

u64 twinfs_ino_block(const struct twinfs_geometry *g, u64 ino, u32 *offset)
{
	u32 ag = (u32)(ino / g->inodes_per_ag);
	u32 idx = (u32)(ino % g->inodes_per_ag);

	if (offset)
		*offset = (idx % TWINFS_INODES_PER_BLOCK) * TWINFS_INODE_SIZE;
	return twinfs_ag_start(g, ag) + 2 + idx / TWINFS_INODES_PER_BLOCK;
}

int twinfs_super_check(const struct twinfs_super *sb, u64 dev_blocks,
		       struct twinfs_geometry *out, const char **why)
{
	struct twinfs_geometry g;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (le32_to_cpu(sb->s_magic) != TWINFS_MAGIC) {
		*why = "bad magic: not a twinfs file system";
		return -EINVAL;
	}
	if (le32_to_cpu(sb->s_version) != TWINFS_FORMAT_VERSION) {
		*why = "unsupported format version";
		return -EINVAL;
	}
	if (!twinfs_csum_ok(sb, sizeof(*sb),
			    offsetof(struct twinfs_super, s_checksum))) {
		*why = "superblock checksum mismatch";
		return -EUCLEAN;
	}
	if (le32_to_cpu(sb->s_block_size) != TWINFS_BLOCK_SIZE ||
	    le32_to_cpu(sb->s_inode_size) != TWINFS_INODE_SIZE) {
		*why = "unsupported block or inode size";
		return -EINVAL;
	}
	if (twinfs_geometry_compute(le64_to_cpu(sb->s_blocks),
				    le32_to_cpu(sb->s_max_nodes),
				    le32_to_cpu(sb->s_node_area_blocks),
				    le32_to_cpu(sb->s_ag_blocks),
				    le32_to_cpu(sb->s_inodes_per_ag), &g) ||
	    g.blocks != le64_to_cpu(sb->s_blocks) ||
	    g.first_ag_block != le64_to_cpu(sb->s_first_ag_block) ||
	    g.node_area_start != le64_to_cpu(sb->s_node_area_start) ||
	    g.ag_count != le32_to_cpu(sb->s_ag_count) ||
	    g.itable_blocks != le32_to_cpu(sb->s_itable_blocks) ||
	    le32_to_cpu(sb->s_root_ino) != TWINFS_ROOT_INO) {
		*why = "inconsistent superblock geometry";
		return -EUCLEAN;
	}
	if (dev_blocks && g.blocks > dev_blocks) {
		*why = "file system larger than the device";
		return -EINVAL;
	}
	if (out)
		*out = g;
	return 0;
}
