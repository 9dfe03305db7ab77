// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the extent map of an inode, file block -> disk block.
 *
 * Depth 0 keeps up to TWINFS_INLINE_EXTENTS extents in the inode.  When
 * they overflow the map becomes depth 1: the inode keeps index entries and
 * each points at a leaf block of up to TWINFS_EXT_LEAF_MAX extents; a full
 * leaf splits in two.  The sorted-array algorithms are the portable core's
 * (core/extent.c); this file adds the blocks, the locking (map_sem, see
 * twinfs.h) and get_block for the page cache.
 */
#include "op.h"
#include "fault.h"

#define LEAF_CSUM_OFF offsetof(struct twinfs_ext_leaf, l_checksum)

static struct buffer_head *twinfs_read_leaf(struct inode *inode, u64 pblk,
					    int *err)
{
	struct super_block *sb = inode->i_sb;
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;

	if (pblk < g->first_ag_block || pblk >= g->blocks) {
		twinfs_corrupt(sb, __func__, "inode %lu: extent leaf at bad block %llu",
			       inode->i_ino, pblk);
		*err = -EUCLEAN;
		return NULL;
	}
	bh = sb_bread(sb, pblk);
	if (!bh) {
		twinfs_err(sb, "inode %lu: cannot read extent leaf %llu",
			   inode->i_ino, pblk);
		*err = -EIO;
		return NULL;
	}
	leaf = (struct twinfs_ext_leaf *)bh->b_data;
	if (buffer_twinfs_verified(bh))
		return bh;
	if (le32_to_cpu(leaf->l_magic) != TWINFS_EXT_LEAF_MAGIC ||
	    le32_to_cpu(leaf->l_ino) != inode->i_ino ||
	    le32_to_cpu(leaf->l_count) > TWINFS_EXT_LEAF_MAX ||
	    !twinfs_csum_ok(leaf, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF) ||
	    twinfs_ext_check(leaf->l_ext, le32_to_cpu(leaf->l_count),
			     g->first_ag_block, g->blocks)) {
		twinfs_corrupt(sb, __func__, "inode %lu: corrupt extent leaf at block %llu",
			       inode->i_ino, pblk);
		brelse(bh);
		*err = -EUCLEAN;
		return NULL;
	}
	set_buffer_twinfs_verified(bh);
	return bh;
}

static void twinfs_leaf_dirty(struct inode *inode, struct buffer_head *bh)
{
	twinfs_csum_set(bh->b_data, TWINFS_BLOCK_SIZE, LEAF_CSUM_OFF);
	twinfs_meta_dirty(inode->i_sb, bh);
}

/* Looks lblk up.  Caller holds map_sem. */
static int twinfs_map_lookup(struct inode *inode, u32 lblk,
			     struct twinfs_ext_map_result *res)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int i, err = 0;

	if (ei->ext_depth == 0) {
		twinfs_ext_lookup(ei->ext, ei->ext_count, lblk, res);
		return 0;
	}
	i = twinfs_ext_index_find(ei->ext, ei->ext_count, lblk);
	if (i < 0) {
		res->pblk = 0;
		res->len = 0;
		return 0;
	}
	bh = twinfs_read_leaf(inode, le64_to_cpu(ei->ext[i].e_pblk), &err);
	if (!bh)
		return err;
	leaf = (struct twinfs_ext_leaf *)bh->b_data;
	twinfs_ext_lookup(leaf->l_ext, le32_to_cpu(leaf->l_count), lblk, res);
	brelse(bh);
	/* A hole ends where the next leaf begins. */
	if (!res->pblk && i + 1 < ei->ext_count) {
		u32 next = le32_to_cpu(ei->ext[i + 1].e_lblk);

		if (!res->len || lblk + res->len > next)
			res->len = next - lblk;
	}
	return 0;
}

/* Allocates and formats an empty extent leaf. */
static struct buffer_head *twinfs_new_leaf(struct inode *inode, u64 goal,
					   int *err)
{
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	u64 pblk;
	u32 got;

	/* Leaves are structure, not content: a rolled-back operation leaves
	 * them in place (possibly empty), so their allocation is not logged. */
	*err = twinfs_fault(inode->i_sb, TWINFS_FAULT_MAP_LEAF) ?:
	       twinfs_alloc_blocks(inode, goal, 1, &pblk, &got);
	if (*err)
		return NULL;
	bh = sb_getblk(inode->i_sb, pblk);
	if (!bh) {
		twinfs_free_blocks(inode, pblk, 1);
		*err = -ENOMEM;
		return NULL;
	}
	lock_buffer(bh);
	memset(bh->b_data, 0, TWINFS_BLOCK_SIZE);
	leaf = (struct twinfs_ext_leaf *)bh->b_data;
	leaf->l_magic = cpu_to_le32(TWINFS_EXT_LEAF_MAGIC);
	leaf->l_ino = cpu_to_le32(inode->i_ino);
	set_buffer_uptodate(bh);
	set_buffer_twinfs_verified(bh);
	unlock_buffer(bh);
	inode->i_blocks += TWINFS_BLOCK_SIZE >> 9;
	return bh;
}

/* Depth 0 -> 1: the inline extents move into a new leaf. */
static int twinfs_map_deepen(struct inode *inode)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int err;

	bh = twinfs_new_leaf(inode, le64_to_cpu(ei->ext[0].e_pblk), &err);
	if (!bh)
		return err;
	leaf = (struct twinfs_ext_leaf *)bh->b_data;
	memcpy(leaf->l_ext, ei->ext, ei->ext_count * sizeof(ei->ext[0]));
	leaf->l_count = cpu_to_le32(ei->ext_count);
	twinfs_leaf_dirty(inode, bh);
	memset(ei->ext, 0, sizeof(ei->ext));
	ei->ext[0].e_pblk = cpu_to_le64(bh->b_blocknr);
	ei->ext_count = 1;
	ei->ext_depth = 1;
	brelse(bh);
	return 0;
}

/* Splits the full leaf of index entry i; its upper half moves. */
static int twinfs_split_leaf(struct inode *inode, int i,
			     struct buffer_head *old_bh)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *old = (struct twinfs_ext_leaf *)old_bh->b_data;
	struct twinfs_ext_leaf *new;
	u32 count = le32_to_cpu(old->l_count), mid = count / 2;
	struct buffer_head *bh;
	int err;

	if (ei->ext_count >= TWINFS_INLINE_EXTENTS) {
		twinfs_warn(inode->i_sb, "inode %lu: extent map full (file too fragmented)",
			    inode->i_ino);
		return -ENOSPC;
	}
	bh = twinfs_new_leaf(inode, old_bh->b_blocknr + 1, &err);
	if (!bh)
		return err;
	new = (struct twinfs_ext_leaf *)bh->b_data;
	memcpy(new->l_ext, &old->l_ext[mid], (count - mid) * sizeof(old->l_ext[0]));
	new->l_count = cpu_to_le32(count - mid);
	memset(&old->l_ext[mid], 0, (count - mid) * sizeof(old->l_ext[0]));
	old->l_count = cpu_to_le32(mid);
	twinfs_leaf_dirty(inode, bh);
	twinfs_leaf_dirty(inode, old_bh);

	memmove(&ei->ext[i + 2], &ei->ext[i + 1],
		(ei->ext_count - i - 1) * sizeof(ei->ext[0]));
	ei->ext[i + 1].e_lblk = new->l_ext[0].e_lblk;
	ei->ext[i + 1].e_len = 0;
	ei->ext[i + 1].e_pblk = cpu_to_le64(bh->b_blocknr);
	ei->ext_count++;
	brelse(bh);
	return 0;
}

/* Adds lblk..+len -> pblk to the map.  Caller holds map_sem for write. */
static int twinfs_map_insert(struct inode *inode, u32 lblk, u32 len, u64 pblk)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int i, n, err = 0;

	if (ei->ext_depth == 0) {
		n = twinfs_ext_insert(ei->ext, ei->ext_count,
				      TWINFS_INLINE_EXTENTS, lblk, len, pblk);
		if (n >= 0) {
			ei->ext_count = n;
			return 0;
		}
		if (n != -ENOSPC)
			return n;
		err = twinfs_map_deepen(inode);
		if (err)
			return err;
	}
	for (;;) {
		i = twinfs_ext_index_find(ei->ext, ei->ext_count, lblk);
		bh = twinfs_read_leaf(inode, le64_to_cpu(ei->ext[i].e_pblk),
				      &err);
		if (!bh)
			return err;
		leaf = (struct twinfs_ext_leaf *)bh->b_data;
		n = twinfs_ext_insert(leaf->l_ext, le32_to_cpu(leaf->l_count),
				      TWINFS_EXT_LEAF_MAX, lblk, len, pblk);
		if (n >= 0) {
			leaf->l_count = cpu_to_le32(n);
			twinfs_leaf_dirty(inode, bh);
			brelse(bh);
			return 0;
		}
		if (n == -ENOSPC)
			n = twinfs_split_leaf(inode, i, bh);
		brelse(bh);
		if (n)
			return n;
	}
}

/* Logs a mapping of new blocks so a rollback unmaps and frees them. */
static void twinfs_op_alloc_record(struct inode *inode, u32 lblk, u32 len,
				   u64 pblk)
{
	const struct twinfs_geometry *g = &TWINFS_SB(inode->i_sb)->geo;
	u32 ag = (u32)((pblk - g->first_ag_block) / g->ag_blocks);

	twinfs_op_bits(inode->i_sb, ag, false,
		       (u32)(pblk - twinfs_ag_start(g, ag)), len);
	twinfs_op_map(inode, TWINFS_TAG_MAP_INSERT, lblk, len, pblk);
}

/* The disk block after the one mapping lblk - 1: where to allocate next. */
static u64 twinfs_map_goal(struct inode *inode, u32 lblk)
{
	struct twinfs_ext_map_result res;

	if (!lblk || twinfs_map_lookup(inode, lblk - 1, &res) || !res.pblk)
		return 0;
	return res.pblk + 1;
}

/*
 * Maps up to max blocks from lblk.  On return *pblk is 0 for a hole (then
 * *len is the hole length, 0 meaning "to the end of the file").  With
 * create, a hole is filled with newly allocated blocks (*is_new set).
 */
int twinfs_map_blocks(struct inode *inode, u32 lblk, u32 max, bool create,
		      u64 *pblk, u32 *len, bool *is_new)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_map_result res;
	u64 new_pblk;
	u32 got;
	int err;

	*is_new = false;
	down_read(&ei->map_sem);
	err = twinfs_map_lookup(inode, lblk, &res);
	up_read(&ei->map_sem);
	if (err)
		return err;
	if (res.pblk || !create)
		goto out;

	down_write(&ei->map_sem);
	err = twinfs_map_lookup(inode, lblk, &res);
	if (err || res.pblk)
		goto out_unlock;
	if (res.len && res.len < max)
		max = res.len;
	/* Room for the two undo records first: once the blocks are mapped,
	 * recording them must not fail. */
	err = twinfs_op_reserve(inode->i_sb, 64);
	if (err)
		goto out_unlock;
	err = twinfs_alloc_blocks(inode, twinfs_map_goal(inode, lblk), max,
				  &new_pblk, &got);
	if (err)
		goto out_unlock;
	err = twinfs_fault(inode->i_sb, TWINFS_FAULT_MAP_INSERT) ?:
	      twinfs_map_insert(inode, lblk, got, new_pblk);
	if (err) {
		twinfs_free_blocks(inode, new_pblk, got);
		goto out_unlock;
	}
	twinfs_op_alloc_record(inode, lblk, got, new_pblk);
	inode->i_blocks += (blkcnt_t)got << (TWINFS_BLOCK_SHIFT - 9);
	mark_inode_dirty(inode);
	res.pblk = new_pblk;
	res.len = got;
	*is_new = true;
out_unlock:
	up_write(&ei->map_sem);
	if (err)
		return err;
out:
	*pblk = res.pblk;
	*len = res.pblk && res.len > max ? max : res.len;
	return 0;
}

int twinfs_get_block(struct inode *inode, sector_t iblock,
		     struct buffer_head *bh, int create)
{
	u32 max = bh->b_size >> inode->i_blkbits;
	bool is_new;
	u64 pblk;
	u32 len;
	int err;

	if (iblock > U32_MAX)
		return -EFBIG;
	if (!max)
		max = 1;
	err = twinfs_map_blocks(inode, (u32)iblock, max, create, &pblk, &len,
				&is_new);
	if (err || !pblk)
		return err;
	map_bh(bh, inode->i_sb, pblk);
	bh->b_size = (size_t)len << inode->i_blkbits;
	if (is_new)
		set_buffer_new(bh);
	return 0;
}

/* Drops the block-device buffers of a directory's blocks, so a stale copy
 * is never written over the blocks' next owner. */
static void twinfs_forget_dir_blocks(struct inode *inode, u64 pblk, u32 len)
{
	struct buffer_head *bh;
	u32 i;

	if (!S_ISDIR(inode->i_mode))
		return;
	for (i = 0; i < len; i++) {
		bh = sb_find_get_block(inode->i_sb, pblk + i);
		if (bh)
			bforget(bh);
	}
}

/* Outside an operation: frees at once. */
static void twinfs_truncate_free(void *arg, u32 lblk, u64 pblk, u32 len)
{
	struct inode *inode = arg;

	twinfs_forget_dir_blocks(inode, pblk, len);
	twinfs_free_blocks(inode, pblk, len);
	inode->i_blocks -= (blkcnt_t)len << (TWINFS_BLOCK_SHIFT - 9);
}

/* Inside an operation the frees were logged in advance (deferred to the
 * commit); only the accounting changes now. */
static void twinfs_truncate_defer(void *arg, u32 lblk, u64 pblk, u32 len)
{
	struct inode *inode = arg;

	inode->i_blocks -= (blkcnt_t)len << (TWINFS_BLOCK_SHIFT - 9);
}

static bool twinfs_leaf_whole(struct twinfs_inode_info *ei, int i, u32 from)
{
	return le32_to_cpu(ei->ext[i].e_lblk) >= from && (i > 0 || from == 0);
}

/* Logs, for each range at or beyond from, its unmapping (undone by
 * mapping it again) and its free (done at commit). */
static int twinfs_truncate_log_one(struct inode *inode,
				   const struct twinfs_extent *ext, u32 count,
				   u32 from)
{
	u32 i;
	int err = 0;

	for (i = 0; i < count && !err; i++) {
		u32 l = le32_to_cpu(ext[i].e_lblk), n = le32_to_cpu(ext[i].e_len);
		u64 p = le64_to_cpu(ext[i].e_pblk);

		if ((u64)l + n <= from)
			continue;
		if (l < from) {
			p += from - l;
			n -= from - l;
			l = from;
		}
		err = twinfs_op_map(inode, TWINFS_TAG_MAP_REMOVE, l, n, p) ?:
		      twinfs_op_map(inode, TWINFS_TAG_FREE, l, n, p);
	}
	return err;
}

static int twinfs_truncate_log(struct inode *inode, u32 from)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int i, err = 0;

	if (ei->ext_depth == 0)
		return twinfs_truncate_log_one(inode, ei->ext, ei->ext_count,
					       from);
	for (i = ei->ext_count - 1; i >= 0 && !err; i--) {
		bh = twinfs_read_leaf(inode, le64_to_cpu(ei->ext[i].e_pblk),
				      &err);
		if (!bh)
			break;
		leaf = (struct twinfs_ext_leaf *)bh->b_data;
		err = twinfs_truncate_log_one(inode, leaf->l_ext,
					      le32_to_cpu(leaf->l_count), from);
		brelse(bh);
		if (!err && twinfs_leaf_whole(ei, i, from))
			err = twinfs_op_map(inode, TWINFS_TAG_FREE, 0, 1,
					    le64_to_cpu(ei->ext[i].e_pblk)) ?:
			      twinfs_op_map(inode, TWINFS_TAG_LEAF_DROP, 0, 1,
					    le64_to_cpu(ei->ext[i].e_pblk));
		else
			break;
	}
	return err;
}

/* Depth 1: frees leaves wholly at or beyond from, cuts the one across it. */
static int twinfs_truncate_leaves(struct inode *inode, u32 from,
				  void (*free_fn)(void *, u32, u64, u32))
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int i, err = 0;
	u32 n;

	for (i = ei->ext_count - 1; i >= 0; i--) {
		bool whole = twinfs_leaf_whole(ei, i, from);
		u64 leaf_pblk = le64_to_cpu(ei->ext[i].e_pblk);

		bh = twinfs_read_leaf(inode, leaf_pblk, &err);
		if (!bh)
			return err;
		leaf = (struct twinfs_ext_leaf *)bh->b_data;
		n = twinfs_ext_truncate(leaf->l_ext,
					le32_to_cpu(leaf->l_count), from,
					free_fn, inode);
		if (!whole) {
			leaf->l_count = cpu_to_le32(n);
			twinfs_leaf_dirty(inode, bh);
			brelse(bh);
			break;
		}
		bforget(bh);
		free_fn(inode, 0, leaf_pblk, 1);
		memset(&ei->ext[i], 0, sizeof(ei->ext[i]));
		ei->ext_count--;
	}
	if (!ei->ext_count)
		ei->ext_depth = 0;
	return 0;
}

/*
 * Frees every block at or beyond file block from.  Inside an operation
 * everything is logged before anything changes, so a failure leaves the
 * map untouched and a rollback maps the ranges again.
 */
int twinfs_truncate_blocks(struct inode *inode, u32 from)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	void (*free_fn)(void *, u32, u64, u32) = twinfs_truncate_free;
	int err = 0;

	down_write(&ei->map_sem);
	if (twinfs_cur_op(inode->i_sb)) {
		err = twinfs_fault(inode->i_sb, TWINFS_FAULT_TRUNCATE) ?:
		      twinfs_truncate_log(inode, from);
		if (err)
			goto out;
		free_fn = twinfs_truncate_defer;
	}
	if (ei->ext_depth == 0) {
		ei->ext_count = twinfs_ext_truncate(ei->ext, ei->ext_count,
						    from, free_fn, inode);
		memset(&ei->ext[ei->ext_count], 0,
		       (TWINFS_INLINE_EXTENTS - ei->ext_count) *
		       sizeof(ei->ext[0]));
	} else {
		err = twinfs_truncate_leaves(inode, from, free_fn);
	}
	mark_inode_dirty(inode);
out:
	up_write(&ei->map_sem);
	return err;
}

/* Undo of a mapping: unmaps [lblk, lblk+len), which must map to pblk. */
int twinfs_map_unmap(struct inode *inode, u32 lblk, u32 len, u64 pblk)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_map_result res;
	struct twinfs_ext_leaf *leaf;
	struct buffer_head *bh;
	int i, n, err;

	down_write(&ei->map_sem);
	err = twinfs_map_lookup(inode, lblk, &res);
	if (!err && (res.pblk != pblk || res.len < len))
		err = -ENOENT;
	while (!err) {
		if (ei->ext_depth == 0) {
			n = twinfs_ext_remove(ei->ext, ei->ext_count,
					      TWINFS_INLINE_EXTENTS, lblk, len);
			if (n >= 0) {
				ei->ext_count = n;
				memset(&ei->ext[n], 0, (TWINFS_INLINE_EXTENTS - n) *
				       sizeof(ei->ext[0]));
				break;
			}
			err = n == -ENOSPC ? twinfs_map_deepen(inode) : n;
			continue;
		}
		i = twinfs_ext_index_find(ei->ext, ei->ext_count, lblk);
		bh = twinfs_read_leaf(inode, le64_to_cpu(ei->ext[i].e_pblk),
				      &err);
		if (!bh)
			break;
		leaf = (struct twinfs_ext_leaf *)bh->b_data;
		n = twinfs_ext_remove(leaf->l_ext, le32_to_cpu(leaf->l_count),
				      TWINFS_EXT_LEAF_MAX, lblk, len);
		if (n >= 0) {
			leaf->l_count = cpu_to_le32(n);
			twinfs_leaf_dirty(inode, bh);
			brelse(bh);
			break;
		}
		err = n == -ENOSPC ? twinfs_split_leaf(inode, i, bh) : n;
		brelse(bh);
	}
	if (!err) {
		twinfs_forget_dir_blocks(inode, pblk, len);
		inode->i_blocks -= (blkcnt_t)len << (TWINFS_BLOCK_SHIFT - 9);
		mark_inode_dirty(inode);
	}
	up_write(&ei->map_sem);
	return err;
}

/*
 * Undo of an unmapping: maps the range again (its blocks were kept).  A
 * truncate logs every unmapping before it makes any, so when logging
 * fails part-way the range is still mapped: nothing to do then.
 */
int twinfs_map_remap(struct inode *inode, u32 lblk, u32 len, u64 pblk)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	struct twinfs_ext_map_result res;
	int err;

	down_write(&ei->map_sem);
	err = twinfs_map_lookup(inode, lblk, &res);
	if (!err && res.pblk == pblk && res.len >= len) {
		up_write(&ei->map_sem);
		return 0;
	}
	err = err ?: twinfs_map_insert(inode, lblk, len, pblk);
	if (!err) {
		inode->i_blocks += (blkcnt_t)len << (TWINFS_BLOCK_SHIFT - 9);
		mark_inode_dirty(inode);
	}
	up_write(&ei->map_sem);
	return err;
}
