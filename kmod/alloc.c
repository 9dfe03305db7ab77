// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: block and inode allocation.
 *
 * Space is split into allocation groups, each with one block bitmap and one
 * inode bitmap block.  Each group has its own mutex, so threads allocating
 * in different groups never contend; the free totals are per-cpu counters.
 * Files allocate near their inode's group, new directories are spread over
 * the groups by a rotor.
 *
 * Blocks freed since the last consistency point are busy: the disk still
 * gives them to their old owner, and file data is written outside
 * consistency points, so they are not handed out again until the point
 * that frees them on disk is written (XFS keeps busy extents for the same
 * reason).  Each group keeps an allocation view (its bitmap plus its busy
 * blocks) and two busy maps, one per consistency-point generation.
 */
#include "op.h"
#include "fault.h"

static struct buffer_head *twinfs_read_bitmap(struct super_block *sb, u32 ag,
					      u32 which)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct buffer_head *bh;

	bh = sb_bread(sb, twinfs_ag_start(&sbi->geo, ag) + which);
	if (!bh)
		twinfs_err(sb, "cannot read %s bitmap of group %u",
			   which ? "inode" : "block", ag);
	return bh;
}

int twinfs_alloc_init(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_geometry *g = &sbi->geo;
	u64 free_blocks = 0, free_inodes = 0;
	struct buffer_head *bh;
	u32 ag;
	int err;

	sbi->ags = kvcalloc(g->ag_count, sizeof(*sbi->ags), GFP_KERNEL);
	if (!sbi->ags)
		return -ENOMEM;
	for (ag = 0; ag < g->ag_count; ag++) {
		struct twinfs_ag *a = &sbi->ags[ag];
		u32 size = twinfs_ag_size(g, ag);

		mutex_init(&a->lock);
		a->view = kzalloc(3 * TWINFS_BLOCK_SIZE, GFP_KERNEL);
		if (!a->view) {
			err = -ENOMEM;
			goto out_free;
		}
		a->busy[0] = a->view + TWINFS_BLOCK_SIZE;
		a->busy[1] = a->view + 2 * TWINFS_BLOCK_SIZE;
		bh = twinfs_read_bitmap(sb, ag, 0);
		if (!bh) {
			err = -EIO;
			goto out_free;
		}
		a->free_blocks = size - twinfs_bit_count((u8 *)bh->b_data, size);
		memcpy(a->view, bh->b_data, TWINFS_BLOCK_SIZE);
		brelse(bh);
		bh = twinfs_read_bitmap(sb, ag, 1);
		if (!bh) {
			err = -EIO;
			goto out_free;
		}
		a->free_inodes = g->inodes_per_ag -
			twinfs_bit_count((u8 *)bh->b_data, g->inodes_per_ag);
		brelse(bh);
		free_blocks += a->free_blocks;
		free_inodes += a->free_inodes;
	}
	err = percpu_counter_init(&sbi->free_blocks, free_blocks, GFP_KERNEL);
	if (err)
		goto out_free;
	err = percpu_counter_init(&sbi->free_inodes, free_inodes, GFP_KERNEL);
	if (err)
		goto out_blocks;
	return 0;

out_blocks:
	percpu_counter_destroy(&sbi->free_blocks);
out_free:
	for (ag = 0; ag < g->ag_count; ag++)
		kfree(sbi->ags[ag].view);
	kvfree(sbi->ags);
	sbi->ags = NULL;
	return err;
}

void twinfs_alloc_destroy(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	u32 ag;

	if (!sbi->ags)
		return;
	percpu_counter_destroy(&sbi->free_inodes);
	percpu_counter_destroy(&sbi->free_blocks);
	for (ag = 0; ag < sbi->geo.ag_count; ag++)
		kfree(sbi->ags[ag].view);
	kvfree(sbi->ags);
	sbi->ags = NULL;
}

/* A block leaves the disk bitmap; it stays out of the view until the
 * consistency point of this generation is on disk.  Group lock held. */
static void twinfs_busy_add(struct super_block *sb, struct twinfs_ag *a,
			    u32 bit)
{
	u32 w = twinfs_cp_gen(sb) & 1;

	if (!twinfs_bit_test(a->busy[w], bit)) {
		twinfs_bit_set(a->busy[w], bit);
		a->nbusy[w]++;
	}
}

void twinfs_busy_release(struct super_block *sb, u32 gen)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	u32 ag, i, w = gen & 1;
	struct buffer_head *bh;

	for (ag = 0; ag < sbi->geo.ag_count; ag++) {
		struct twinfs_ag *a = &sbi->ags[ag];
		u32 size = twinfs_ag_size(&sbi->geo, ag);

		if (!READ_ONCE(a->nbusy[w]))
			continue;
		bh = twinfs_read_bitmap(sb, ag, 0);
		mutex_lock(&a->lock);
		for (i = 0; i < size && bh; i++) {
			if (!twinfs_bit_test(a->busy[w], i))
				continue;
			twinfs_bit_clear(a->busy[w], i);
			if (!twinfs_bit_test((u8 *)bh->b_data, i) &&
			    !twinfs_bit_test(a->busy[!w], i))
				twinfs_bit_clear(a->view, i);
		}
		if (bh)
			a->nbusy[w] = 0;
		mutex_unlock(&a->lock);
		brelse(bh);
	}
}

/* Allocates up to want blocks in one group; returns how many (0: none). */
static u32 twinfs_alloc_in_ag(struct inode *inode, u32 ag, u32 goal,
			      u32 want, u64 *pblk, int *err)
{
	struct super_block *sb = inode->i_sb;
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_ag *a = &sbi->ags[ag];
	struct buffer_head *bh;
	u32 start, got, i;

	if (!READ_ONCE(a->free_blocks))
		return 0;
	bh = twinfs_read_bitmap(sb, ag, 0);
	if (!bh) {
		*err = -EIO;
		return 0;
	}
	mutex_lock(&a->lock);
	got = twinfs_bit_find_run(a->view, twinfs_ag_size(&sbi->geo, ag),
				  goal, want, &start);
	if (got) {
		for (i = 0; i < got; i++) {
			twinfs_bit_set((u8 *)bh->b_data, start + i);
			twinfs_bit_set(a->view, start + i);
		}
		a->free_blocks -= got;
		twinfs_meta_dirty(sb, bh);
	}
	mutex_unlock(&a->lock);
	brelse(bh);
	if (got) {
		percpu_counter_sub(&sbi->free_blocks, got);
		*pblk = twinfs_ag_start(&sbi->geo, ag) + start;
	}
	return got;
}

/*
 * Allocates a run of up to want blocks as close to goal as possible; at
 * least one block on success.  goal 0 means near the inode.
 */
int twinfs_alloc_blocks(struct inode *inode, u64 goal, u32 want, u64 *pblk,
			u32 *got)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(inode->i_sb);
	const struct twinfs_geometry *g = &sbi->geo;
	u32 ag, first_ag, goal_off, n, i;
	int err;

	err = twinfs_fault(inode->i_sb, TWINFS_FAULT_ALLOC_BLOCKS);
	if (err)
		return err;
	if (goal < g->first_ag_block || goal >= g->blocks)
		goal = twinfs_ag_start(g, inode->i_ino / g->inodes_per_ag);
	first_ag = (u32)((goal - g->first_ag_block) / g->ag_blocks);
	goal_off = (u32)(goal - twinfs_ag_start(g, first_ag));

	for (i = 0; i < g->ag_count; i++) {
		ag = (first_ag + i) % g->ag_count;
		n = twinfs_alloc_in_ag(inode, ag, i ? 0 : goal_off, want, pblk,
				       &err);
		if (err)
			return err;
		if (n) {
			*got = n;
			return 0;
		}
	}
	return -ENOSPC;
}

void twinfs_free_blocks(struct inode *inode, u64 pblk, u32 len)
{
	struct super_block *sb = inode->i_sb;
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_geometry *g = &sbi->geo;
	u32 ag, off, i, freed = 0;
	struct buffer_head *bh;

	if (pblk < g->first_ag_block || pblk + len > g->blocks || !len) {
		twinfs_corrupt(sb, __func__, "inode %lu frees blocks %llu+%u outside the data area",
			       inode->i_ino, pblk, len);
		return;
	}
	ag = (u32)((pblk - g->first_ag_block) / g->ag_blocks);
	off = (u32)(pblk - twinfs_ag_start(g, ag));
	if (off < twinfs_ag_meta_blocks(g) ||
	    off + len > twinfs_ag_size(g, ag)) {
		twinfs_corrupt(sb, __func__, "inode %lu frees blocks %llu+%u across group metadata",
			       inode->i_ino, pblk, len);
		return;
	}
	bh = twinfs_read_bitmap(sb, ag, 0);
	if (!bh)
		return;
	mutex_lock(&sbi->ags[ag].lock);
	for (i = 0; i < len; i++) {
		if (!twinfs_bit_test((u8 *)bh->b_data, off + i))
			continue;
		twinfs_bit_clear((u8 *)bh->b_data, off + i);
		twinfs_busy_add(sb, &sbi->ags[ag], off + i);
		freed++;
	}
	sbi->ags[ag].free_blocks += freed;
	twinfs_meta_dirty(sb, bh);
	mutex_unlock(&sbi->ags[ag].lock);
	brelse(bh);
	percpu_counter_add(&sbi->free_blocks, freed);
	if (freed != len)
		twinfs_corrupt(sb, __func__, "inode %lu freed %u already free blocks at %llu",
			       inode->i_ino, len - freed, pblk);
}

/* Picks the group for a new inode: near the parent, directories spread. */
static u32 twinfs_ino_goal_ag(struct super_block *sb, struct inode *dir,
			      bool is_dir)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	u32 count = sbi->geo.ag_count;

	if (is_dir && count > 1)
		return (u32)atomic_inc_return(&sbi->dir_rotor) % count;
	return dir ? (u32)(dir->i_ino / sbi->geo.inodes_per_ag) : 0;
}

#define TWINFS_ANY_INO U32_MAX

/*
 * Takes inode bit want of group ag (TWINFS_ANY_INO: the first free one).
 * 0 with *ino set; -ENOSPC when it is taken (or the group is full).
 */
static int twinfs_take_ino(struct super_block *sb, u32 ag, u32 want,
			   unsigned long *ino)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_geometry *g = &sbi->geo;
	struct twinfs_ag *a = &sbi->ags[ag];
	struct buffer_head *bh;
	u32 bit;

	bh = twinfs_read_bitmap(sb, ag, 1);
	if (!bh)
		return -EIO;
	mutex_lock(&a->lock);
	bit = want;
	if (want == TWINFS_ANY_INO)
		bit = twinfs_bit_find_zero((u8 *)bh->b_data,
					   g->inodes_per_ag, 0);
	else if (twinfs_bit_test((u8 *)bh->b_data, want))
		bit = g->inodes_per_ag;
	if (bit < g->inodes_per_ag) {
		twinfs_bit_set((u8 *)bh->b_data, bit);
		a->free_inodes--;
		twinfs_meta_dirty(sb, bh);
	}
	mutex_unlock(&a->lock);
	brelse(bh);
	if (bit >= g->inodes_per_ag)
		return -ENOSPC;
	percpu_counter_dec(&sbi->free_inodes);
	*ino = (unsigned long)ag * g->inodes_per_ag + bit;
	return 0;
}

/* Replay: the inode number the record says the operation made. */
static int twinfs_alloc_this_ino(struct super_block *sb, u64 want,
				 unsigned long *ino)
{
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;
	u32 ag = (u32)(want / g->inodes_per_ag);
	int err;

	if (want <= TWINFS_ROOT_INO || ag >= g->ag_count)
		return -EUCLEAN;
	err = twinfs_take_ino(sb, ag, (u32)(want % g->inodes_per_ag), ino);
	return err == -ENOSPC ? -EEXIST : err;
}

int twinfs_alloc_ino(struct super_block *sb, struct inode *dir,
		     struct inode *inode, bool is_dir, unsigned long *ino)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_geometry *g = &sbi->geo;
	u32 first = twinfs_ino_goal_ag(sb, dir, is_dir), i, ag;
	int err;

	/* The caller logs the new inode once it is hashed; make sure that
	 * record cannot fail. */
	err = twinfs_fault(sb, TWINFS_FAULT_ALLOC_INODE) ?:
	      twinfs_op_reserve(sb, 32);
	if (err)
		return err;
	if (sbi->replay_ino)
		return twinfs_alloc_this_ino(sb, sbi->replay_ino, ino);
	for (i = 0; i < g->ag_count; i++) {
		ag = (first + i) % g->ag_count;
		if (!READ_ONCE(sbi->ags[ag].free_inodes))
			continue;
		err = twinfs_take_ino(sb, ag, TWINFS_ANY_INO, ino);
		if (err != -ENOSPC)
			return err;
	}
	return -ENOSPC;
}

void twinfs_free_ino(struct super_block *sb, unsigned long ino)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_geometry *g = &sbi->geo;
	u32 ag = ino / g->inodes_per_ag, bit = ino % g->inodes_per_ag;
	struct buffer_head *bh;
	bool was_set;

	bh = twinfs_read_bitmap(sb, ag, 1);
	if (!bh)
		return;
	mutex_lock(&sbi->ags[ag].lock);
	was_set = twinfs_bit_test((u8 *)bh->b_data, bit);
	if (was_set) {
		twinfs_bit_clear((u8 *)bh->b_data, bit);
		sbi->ags[ag].free_inodes++;
		twinfs_meta_dirty(sb, bh);
	}
	mutex_unlock(&sbi->ags[ag].lock);
	brelse(bh);
	if (was_set)
		percpu_counter_inc(&sbi->free_inodes);
	else
		twinfs_corrupt(sb, __func__, "inode %lu was already free", ino);
}

/* Undoes an allocation: clears bits an operation set. */
void twinfs_unalloc_bits(struct super_block *sb, u32 ag, bool inode_map,
			 u32 bit, u32 count)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_ag *a = &sbi->ags[ag];
	struct buffer_head *bh;
	u32 i, cleared = 0;

	bh = twinfs_read_bitmap(sb, ag, inode_map);
	if (!bh)
		return;
	mutex_lock(&a->lock);
	for (i = 0; i < count; i++) {
		if (!twinfs_bit_test((u8 *)bh->b_data, bit + i))
			continue;
		twinfs_bit_clear((u8 *)bh->b_data, bit + i);
		if (!inode_map)
			twinfs_busy_add(sb, a, bit + i);
		cleared++;
	}
	if (inode_map)
		a->free_inodes += cleared;
	else
		a->free_blocks += cleared;
	twinfs_meta_dirty(sb, bh);
	mutex_unlock(&a->lock);
	brelse(bh);
	if (inode_map)
		percpu_counter_add(&sbi->free_inodes, cleared);
	else
		percpu_counter_add(&sbi->free_blocks, cleared);
	if (cleared != count)
		twinfs_corrupt(sb, __func__, "group %u: %u bits to undo were already clear",
			       ag, count - cleared);
}
