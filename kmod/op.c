// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: operation contexts: begin, record, commit, roll back (seed 000).
 * See op.h for the model and Documentation/design.md for why rollback
 * never has to notify another thread.
 */
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include "op.h"
#include "fault.h"
#include "mirror.h"

/* An operation's attributes as the undo log keeps them. */
struct twinfs_inode_attrs {
	umode_t mode;
	kuid_t uid;
	kgid_t gid;
	unsigned int nlink;
	loff_t size;
	struct timespec64 atime, mtime, ctime;
	u32 flags;
	dev_t rdev;
};

struct twinfs_bits_rec {
	u32 ag;
	u32 start;
	u32 count;
	u32 inode_map;
};

struct twinfs_map_rec {
	u64 pblk;
	u32 lblk;
	u32 len;
};

#define TWINFS_UNDO_SEG_SIZE (4096 - sizeof(struct twinfs_undo_seg))

static struct twinfs_undo_seg *twinfs_op_grow(void *ctx, u32 need)
{
	struct twinfs_op *op = ctx;
	struct twinfs_undo_seg *seg;
	u32 size = max_t(u32, need, TWINFS_UNDO_SEG_SIZE);

	if (twinfs_fault(op->sb, TWINFS_FAULT_UNDO_ALLOC))
		return NULL;
	seg = kmalloc(sizeof(*seg) + size, GFP_NOFS);
	if (seg)
		seg->size = size;
	return seg;
}

static void twinfs_op_release(void *ctx, struct twinfs_undo_seg *seg)
{
	kfree(seg);
}

void twinfs_op_begin_credit(struct twinfs_op *op, struct super_block *sb,
			    const char *name, u32 credit)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);

	op->magic = TWINFS_OP_MAGIC;
	op->sb = sb;
	op->name = name;
	op->lane = NULL;
	op->credit = 0;
	op->seq = 0;
	op->nrec = 0;
	op->ninodes = 0;
	/* mirror=required: no operation starts without the partner (it
	 * runs, and rolls back at its end, if the partner stays away). */
	op->begin_err = sbi->replaying ? 0 : twinfs_mirror_ready(sb);
	/* Room in the change memory first, then the freeze lock: waiting
	 * for room waits for a consistency point, which needs the lock. */
	if (!sbi->replaying) {
		op->lane = twinfs_cm_get_credit(sb, credit);
		op->credit = credit;
	}
	twinfs_cp_enter(sb);
	twinfs_undo_init(&op->log, twinfs_op_grow, twinfs_op_release, op);
	op->outer = current->journal_info;
	current->journal_info = op;
	/* No allocation inside an operation may recurse into a file system. */
	op->nofs = memalloc_nofs_save();
}

void twinfs_op_begin(struct twinfs_op *op, struct super_block *sb,
		     const char *name)
{
	twinfs_op_begin_credit(op, sb, name, TWINFS_REC_NAME_CREDIT);
}

struct twinfs_rec_desc *twinfs_op_rec(struct twinfs_op *op, u16 cm_op)
{
	struct twinfs_rec_desc *d;

	if (WARN_ON_ONCE(op->nrec >= ARRAY_SIZE(op->rec)))
		op->nrec--;
	d = &op->rec[op->nrec++];
	memset(d, 0, sizeof(*d));
	d->op = cm_op;
	return d;
}

static void twinfs_undo_attrs(struct inode *inode,
			      const struct twinfs_inode_attrs *a)
{
	inode->i_mode = a->mode;
	inode->i_uid = a->uid;
	inode->i_gid = a->gid;
	set_nlink(inode, a->nlink);
	i_size_write(inode, a->size);
	inode->i_atime = a->atime;
	inode->i_mtime = a->mtime;
	inode->i_ctime = a->ctime;
	TWINFS_I(inode)->flags = a->flags;
	inode->i_rdev = a->rdev;
	mark_inode_dirty(inode);
}

/* Recomputes a restored block's checksum under its buffer lock. */
static void twinfs_undo_block(struct super_block *sb, struct buffer_head *bh,
			      u16 tag)
{
	size_t off = 0;

	if (tag == TWINFS_TAG_DIR_HDR)
		off = offsetof(struct twinfs_dir_header, h_checksum);
	else if (tag == TWINFS_TAG_DIR_LEAF)
		off = offsetof(struct twinfs_dir_leaf_hdr, d_checksum);
	if (off) {
		lock_buffer(bh);
		twinfs_csum_set(bh->b_data, TWINFS_BLOCK_SIZE, off);
		unlock_buffer(bh);
	}
	twinfs_meta_dirty(sb, bh);
}

struct twinfs_rollback {
	struct twinfs_op *op;
	u64 pages;
	/* Blocks an undo could not unmap keep their allocation bits. */
	struct twinfs_map_rec pinned[4];
	int npinned;
};

static bool twinfs_pinned(struct twinfs_rollback *rb, u64 pblk)
{
	int i;

	for (i = 0; i < rb->npinned; i++)
		if (pblk >= rb->pinned[i].pblk &&
		    pblk < rb->pinned[i].pblk + rb->pinned[i].len)
			return true;
	return false;
}

static void twinfs_undo_bits_rec(struct twinfs_rollback *rb,
				 const struct twinfs_bits_rec *b)
{
	struct super_block *sb = rb->op->sb;
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;
	u64 base = twinfs_ag_start(g, b->ag);
	u32 i;

	for (i = 0; i < b->count; i++) {
		if (!b->inode_map && twinfs_pinned(rb, base + b->start + i))
			continue;
		twinfs_unalloc_bits(sb, b->ag, b->inode_map, b->start + i, 1);
	}
}

static void twinfs_undo_map_rec(struct twinfs_rollback *rb, struct inode *inode,
				u16 tag, const struct twinfs_map_rec *m)
{
	int err;

	if (tag == TWINFS_TAG_MAP_INSERT)
		err = twinfs_map_unmap(inode, m->lblk, m->len, m->pblk);
	else
		err = twinfs_map_remap(inode, m->lblk, m->len, m->pblk);
	if (!err) {
		/* Blocks that filled a hole go back to being a hole: the pages
		 * over them (a block is a page) must not keep the rolled-back
		 * bytes, nor write them back into newly allocated blocks. */
		if (tag == TWINFS_TAG_MAP_INSERT && S_ISREG(inode->i_mode))
			truncate_pagecache_range(inode,
				(loff_t)m->lblk << TWINFS_BLOCK_SHIFT,
				((loff_t)(m->lblk + m->len) << TWINFS_BLOCK_SHIFT) - 1);
		return;
	}
	twinfs_err(inode->i_sb, "inode %lu: cannot undo %s of blocks %llu+%u: %d",
		   inode->i_ino, tag == TWINFS_TAG_MAP_INSERT ? "mapping" : "unmapping",
		   m->pblk, m->len, err);
	if (tag == TWINFS_TAG_MAP_INSERT && rb->npinned < ARRAY_SIZE(rb->pinned))
		rb->pinned[rb->npinned++] = *m;
}

/*
 * A truncate removed an extent leaf (its free deferred to the commit, which
 * will not come): if the rollback's remapping did not take the leaf back,
 * nothing references it any more.
 */
static void twinfs_undo_leaf_drop(struct inode *inode,
				  const struct twinfs_map_rec *m)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);
	bool referenced = false;
	int i;

	down_read(&ei->map_sem);
	for (i = 0; ei->ext_depth == 1 && i < ei->ext_count; i++)
		if (le64_to_cpu(ei->ext[i].e_pblk) == m->pblk)
			referenced = true;
	up_read(&ei->map_sem);
	/* (The truncate already took the leaf out of i_blocks.) */
	if (!referenced)
		twinfs_free_blocks(inode, m->pblk, 1);
}

static void twinfs_rollback_one(void *arg, const struct twinfs_undo_rec *rec,
				void *payload)
{
	struct twinfs_rollback *rb = arg;

	switch (rec->tag) {
	case TWINFS_TAG_DIR_HDR:
	case TWINFS_TAG_DIR_LEAF:
	case TWINFS_TAG_DIR_TABLE:
		twinfs_undo_block(rb->op->sb, rec->owner, rec->tag);
		brelse(rec->owner);
		rb->pages++;
		break;
	case TWINFS_TAG_INODE:
		twinfs_undo_attrs(rec->obj, payload);
		rb->pages++;
		break;
	case TWINFS_TAG_BITS:
		twinfs_undo_bits_rec(rb, payload);
		break;
	case TWINFS_TAG_MAP_INSERT:
	case TWINFS_TAG_MAP_REMOVE:
		twinfs_undo_map_rec(rb, rec->obj, rec->tag, payload);
		break;
	case TWINFS_TAG_NEW_INODE:
		TWINFS_I(rec->obj)->undone = true;
		break;
	case TWINFS_TAG_LEAF_DROP:
		twinfs_undo_leaf_drop(rec->obj, payload);
		break;
	}
}

static void twinfs_commit_one(void *arg, const struct twinfs_undo_rec *rec,
			      void *payload)
{
	const struct twinfs_map_rec *m = payload;

	switch (rec->tag) {
	case TWINFS_TAG_DIR_HDR:
	case TWINFS_TAG_DIR_LEAF:
	case TWINFS_TAG_DIR_TABLE:
		brelse(rec->owner);
		break;
	case TWINFS_TAG_FREE:
		twinfs_free_blocks(rec->obj, m->pblk, m->len);
		break;
	}
}

/* Every inode an operation changes goes through twinfs_op_inode() or
 * twinfs_op_new_inode() first. */
static void twinfs_op_touch(struct twinfs_op *op, struct inode *inode)
{
	int i;

	for (i = 0; i < op->ninodes; i++)
		if (op->inodes[i] == inode)
			return;
	if (!WARN_ON_ONCE(op->ninodes >= ARRAY_SIZE(op->inodes)))
		op->inodes[op->ninodes++] = inode;
}

int twinfs_op_end(struct twinfs_op *op, int err)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(op->sb);
	struct twinfs_rollback rb = { .op = op };
	int i;

	if (!err)
		err = op->begin_err ?: twinfs_fault(op->sb, TWINFS_FAULT_COMMIT);
	/* The records go out while the operation holds its locks: an
	 * operation that depends on this one gets a higher seq. */
	if (!err && op->lane && op->nrec)
		err = twinfs_cm_append_op(op->sb, op);
	/* Undo and commit actions run outside the operation: what they
	 * allocate or free is final, not logged again. */
	current->journal_info = op->outer;
	if (!err) {
		twinfs_undo_commit(&op->log, twinfs_commit_one, NULL);
		/* The inode table holds every committed operation before the
		 * freeze lock is let go: a consistency point copies it. */
		for (i = 0; i < op->ninodes; i++)
			twinfs_write_inode_meta(op->inodes[i]);
	} else if (twinfs_undo_rollback(&op->log, twinfs_rollback_one, &rb)) {
		atomic64_inc(&sbi->ops_rolled_back);
		atomic64_add(rb.pages, &sbi->pages_restored);
	}
	if (op->lane && op->credit)
		twinfs_cm_put_credit(op->sb, op->lane, op->credit);
	twinfs_cp_leave(op->sb);
	memalloc_nofs_restore(op->nofs);
	op->magic = 0;
	return err;
}

int twinfs_op_reserve(struct super_block *sb, u32 bytes)
{
	struct twinfs_op *op = twinfs_cur_op(sb);

	return op ? twinfs_undo_reserve(&op->log, bytes) : 0;
}

int twinfs_op_save(struct super_block *sb, struct buffer_head *bh,
		   enum twinfs_undo_tag tag, u32 off, u32 len)
{
	struct twinfs_op *op = twinfs_cur_op(sb);
	int ret;

	if (!op)
		return 0;
	ret = twinfs_undo_save(&op->log, tag, bh, bh->b_data, off, len);
	if (ret == 1)
		get_bh(bh);
	return ret < 0 ? ret : 0;
}

int twinfs_op_inode(struct inode *inode)
{
	struct twinfs_op *op = twinfs_cur_op(inode->i_sb);
	struct twinfs_inode_attrs a;

	if (!op)
		return 0;
	twinfs_op_touch(op, inode);
	a.mode = inode->i_mode;
	a.uid = inode->i_uid;
	a.gid = inode->i_gid;
	a.nlink = inode->i_nlink;
	a.size = i_size_read(inode);
	a.atime = inode->i_atime;
	a.mtime = inode->i_mtime;
	a.ctime = inode->i_ctime;
	a.flags = TWINFS_I(inode)->flags;
	a.rdev = inode->i_rdev;
	return twinfs_undo_add(&op->log, TWINFS_UNDO_CALL, TWINFS_TAG_INODE,
			       inode, &a, sizeof(a));
}

int twinfs_op_new_inode(struct inode *inode)
{
	struct twinfs_op *op = twinfs_cur_op(inode->i_sb);

	if (!op)
		return 0;
	twinfs_op_touch(op, inode);
	return twinfs_undo_add(&op->log, TWINFS_UNDO_CALL, TWINFS_TAG_NEW_INODE,
			       inode, NULL, 0);
}

int twinfs_op_bits(struct super_block *sb, u32 ag, bool inode_map,
		   u32 start, u32 count)
{
	struct twinfs_op *op = twinfs_cur_op(sb);
	struct twinfs_bits_rec b = {
		.ag = ag, .start = start, .count = count,
		.inode_map = inode_map,
	};

	if (!op)
		return 0;
	return twinfs_undo_add(&op->log, TWINFS_UNDO_CALL, TWINFS_TAG_BITS,
			       NULL, &b, sizeof(b));
}

int twinfs_op_map(struct inode *inode, enum twinfs_undo_tag tag, u32 lblk,
		  u32 len, u64 pblk)
{
	struct twinfs_op *op = twinfs_cur_op(inode->i_sb);
	struct twinfs_map_rec m = { .pblk = pblk, .lblk = lblk, .len = len };

	if (!op)
		return 0;
	return twinfs_undo_add(&op->log, tag == TWINFS_TAG_FREE ?
			       TWINFS_UNDO_DEFER : TWINFS_UNDO_CALL, tag,
			       inode, &m, sizeof(m));
}
