/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: the operation context and its undo log (seed 000).
 *
 * Every modifying VFS operation runs between twinfs_op_begin() and
 * twinfs_op_end().  The context hangs off current->journal_info (as jbd2
 * handles do), so deep helpers (allocators, the extent map, directory
 * blocks) find it without an extra argument.  Before a helper changes a
 * range of a metadata block it records the range's before-image; changes
 * that other threads may interleave with (allocation bits, extent
 * mappings) are recorded logically and undone exactly; frees are deferred
 * to commit.  twinfs_op_end() with an error, or an injected fault at its
 * commit point, plays the log back.
 *
 * Records hold a reference to the buffers they saved (get_bh) but none to
 * inodes: every inode an operation changes is pinned by the system call
 * (its dentries or open file) until twinfs_op_end() returns.
 */
#ifndef TWINFS_OP_H
#define TWINFS_OP_H

#include "twinfs.h"
#include "cm.h"

#define TWINFS_OP_MAGIC 0x74776f70u

/* Record tags: which structure a record touches, how to undo it. */
enum twinfs_undo_tag {
	TWINFS_TAG_DIR_HDR = 1,		/* BYTES of a directory header */
	TWINFS_TAG_DIR_LEAF,		/* BYTES of a directory leaf */
	TWINFS_TAG_DIR_TABLE,		/* BYTES of a hash-table block */
	TWINFS_TAG_INODE,		/* CALL: restore inode attributes */
	TWINFS_TAG_BITS,		/* CALL: clear bits an allocation set */
	TWINFS_TAG_MAP_INSERT,		/* CALL: unmap an inserted range */
	TWINFS_TAG_MAP_REMOVE,		/* CALL: map a removed range again */
	TWINFS_TAG_FREE,		/* DEFER: free blocks at commit */
	TWINFS_TAG_NEW_INODE,		/* CALL: a created inode is undone */
	TWINFS_TAG_LEAF_DROP,		/* CALL: free a leaf a truncate removed */
};

struct twinfs_op {
	unsigned int magic;
	struct super_block *sb;
	const char *name;		/* "create", "rename", ... */
	void *outer;			/* current->journal_info before us */
	unsigned int nofs;		/* memalloc_nofs_save() cookie */
	struct twinfs_undo_log log;
	/* change records (cm.h), appended at commit */
	struct twinfs_cm_lane *lane;	/* NULL: appends nothing (replay) */
	u32 credit;			/* bytes promised in lane */
	u64 seq;			/* last record appended */
	int nrec;
	struct twinfs_rec_desc rec[2];
	int begin_err;			/* mirror=required, no partner */
	int ninodes;			/* inodes to copy to their table */
	struct inode *inodes[6];
};

/* The operation the current thread runs on sb, or NULL. */
static inline struct twinfs_op *twinfs_cur_op(struct super_block *sb)
{
	struct twinfs_op *op = current->journal_info;

	if (op && op->magic == TWINFS_OP_MAGIC && op->sb == sb)
		return op;
	return NULL;
}

void twinfs_op_begin(struct twinfs_op *op, struct super_block *sb,
		     const char *name);
/* An operation whose records may take credit bytes (a write). */
void twinfs_op_begin_credit(struct twinfs_op *op, struct super_block *sb,
			    const char *name, u32 credit);
/* The next record the operation will append, zeroed, with its op set. */
struct twinfs_rec_desc *twinfs_op_rec(struct twinfs_op *op, u16 cm_op);
/* Commits (err == 0 and no fault at the commit point) or rolls back. */
int twinfs_op_end(struct twinfs_op *op, int err);

/* Room for a few small records that must not fail later. */
int twinfs_op_reserve(struct super_block *sb, u32 bytes);
/* Before-image of bh->b_data[off, off + len). */
int twinfs_op_save(struct super_block *sb, struct buffer_head *bh,
		   enum twinfs_undo_tag tag, u32 off, u32 len);
/* Snapshot of an inode's attributes (not its extent map). */
int twinfs_op_inode(struct inode *inode);
/* A new inode: rolled back, it is dropped and its number is freed when
 * it is evicted (never while it is still hashed). */
int twinfs_op_new_inode(struct inode *inode);
/* Logical records. */
int twinfs_op_bits(struct super_block *sb, u32 ag, bool inode_map,
		   u32 start, u32 count);
int twinfs_op_map(struct inode *inode, enum twinfs_undo_tag tag, u32 lblk,
		  u32 len, u64 pblk);

#endif /* TWINFS_OP_H */
