// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: inodes: the in-memory inode cache, reading and writing on-disk
 * inodes, creation, eviction and attribute changes.
 */
#include <linux/random.h>
#include <linux/writeback.h>
#include "op.h"
#include "cm.h"
#include "fault.h"

#define INODE_CSUM_OFF offsetof(struct twinfs_inode, i_checksum)

static struct kmem_cache *twinfs_inode_cachep;

struct inode *twinfs_alloc_inode(struct super_block *sb)
{
	struct twinfs_inode_info *ei;

	ei = alloc_inode_sb(sb, twinfs_inode_cachep, GFP_KERNEL);
	if (!ei)
		return NULL;
	ei->ext_depth = 0;
	ei->ext_count = 0;
	ei->flags = 0;
	ei->undone = false;
	/* Records before the inode came in may be about it. */
	ei->rec_seq = TWINFS_SB(sb)->cm ? twinfs_cm_last_seq(sb) : 0;
	memset(ei->ext, 0, sizeof(ei->ext));
	return &ei->vfs_inode;
}

void twinfs_free_inode(struct inode *inode)
{
	kmem_cache_free(twinfs_inode_cachep, TWINFS_I(inode));
}

static void twinfs_inode_init_once(void *obj)
{
	struct twinfs_inode_info *ei = obj;

	init_rwsem(&ei->map_sem);
	inode_init_once(&ei->vfs_inode);
}

int twinfs_inode_cache_init(void)
{
	twinfs_inode_cachep = kmem_cache_create("twinfs_inode_cache",
						sizeof(struct twinfs_inode_info),
						0, SLAB_RECLAIM_ACCOUNT |
						SLAB_MEM_SPREAD | SLAB_ACCOUNT,
						twinfs_inode_init_once);
	return twinfs_inode_cachep ? 0 : -ENOMEM;
}

void twinfs_inode_cache_destroy(void)
{
	rcu_barrier();	/* free_inode callbacks run after a grace period */
	kmem_cache_destroy(twinfs_inode_cachep);
}

void twinfs_set_inode_ops(struct inode *inode)
{
	if (S_ISREG(inode->i_mode)) {
		inode->i_op = &twinfs_file_inode_operations;
		inode->i_fop = &twinfs_file_operations;
		inode->i_mapping->a_ops = &twinfs_aops;
	} else if (S_ISDIR(inode->i_mode)) {
		inode->i_op = &twinfs_dir_inode_operations;
		inode->i_fop = &twinfs_dir_operations;
	} else if (S_ISLNK(inode->i_mode)) {
		inode->i_op = &twinfs_symlink_inode_operations;
		inode_nohighmem(inode);
		inode->i_mapping->a_ops = &twinfs_aops;
	} else {
		inode->i_op = &twinfs_special_inode_operations;
		init_special_inode(inode, inode->i_mode, inode->i_rdev);
	}
}

static bool twinfs_ino_valid(struct super_block *sb, unsigned long ino)
{
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;

	return ino && ino < (u64)g->ag_count * g->inodes_per_ag;
}

static struct buffer_head *twinfs_read_inode_block(struct super_block *sb,
						   unsigned long ino,
						   u32 *offset)
{
	u64 blk = twinfs_ino_block(&TWINFS_SB(sb)->geo, ino, offset);
	struct buffer_head *bh = sb_bread(sb, blk);

	if (!bh)
		twinfs_err(sb, "cannot read inode %lu (block %llu)", ino, blk);
	return bh;
}

static bool twinfs_mode_valid(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
	case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		return true;
	}
	return false;
}

/* Checks an on-disk inode before anything of it is believed. */
static int twinfs_check_raw_inode(struct super_block *sb, unsigned long ino,
				  const struct twinfs_inode *raw)
{
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;
	u16 depth = le16_to_cpu(raw->i_ext_depth);
	u16 count = le16_to_cpu(raw->i_ext_count);
	const char *why = NULL;

	if (!twinfs_csum_ok(raw, TWINFS_INODE_SIZE, INODE_CSUM_OFF))
		why = "checksum mismatch";
	else if (!twinfs_mode_valid(le16_to_cpu(raw->i_mode)))
		why = "invalid mode";
	else if (depth > 1 || count > TWINFS_INLINE_EXTENTS)
		why = "invalid extent map header";
	else if (depth == 0 &&
		 twinfs_ext_check(raw->i_ext, count, g->first_ag_block,
				  g->blocks))
		why = "invalid extents";
	if (!why)
		return 0;
	twinfs_corrupt(sb, __func__, "inode %lu: %s", ino, why);
	return -EUCLEAN;
}

static void twinfs_raw_to_inode(struct inode *inode,
				const struct twinfs_inode *raw)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);

	inode->i_mode = le16_to_cpu(raw->i_mode);
	i_uid_write(inode, le32_to_cpu(raw->i_uid));
	i_gid_write(inode, le32_to_cpu(raw->i_gid));
	set_nlink(inode, le32_to_cpu(raw->i_nlink));
	inode->i_size = le64_to_cpu(raw->i_size);
	inode->i_blocks = le64_to_cpu(raw->i_blocks) <<
			  (TWINFS_BLOCK_SHIFT - 9);
	inode->i_atime.tv_sec = le64_to_cpu(raw->i_atime);
	inode->i_atime.tv_nsec = le32_to_cpu(raw->i_atime_ns);
	inode->i_mtime.tv_sec = le64_to_cpu(raw->i_mtime);
	inode->i_mtime.tv_nsec = le32_to_cpu(raw->i_mtime_ns);
	inode->i_ctime.tv_sec = le64_to_cpu(raw->i_ctime);
	inode->i_ctime.tv_nsec = le32_to_cpu(raw->i_ctime_ns);
	inode->i_generation = le32_to_cpu(raw->i_generation);
	inode->i_rdev = new_decode_dev(le32_to_cpu(raw->i_rdev));
	ei->flags = le32_to_cpu(raw->i_flags);
	ei->ext_depth = le16_to_cpu(raw->i_ext_depth);
	ei->ext_count = le16_to_cpu(raw->i_ext_count);
	memcpy(ei->ext, raw->i_ext, sizeof(ei->ext));
}

static struct inode *__twinfs_iget(struct super_block *sb, unsigned long ino,
				   bool orphan_ok)
{
	const struct twinfs_inode *raw;
	struct buffer_head *bh;
	struct inode *inode;
	u32 off;
	int err;

	if (!twinfs_ino_valid(sb, ino)) {
		twinfs_corrupt(sb, __func__, "inode number %lu out of range", ino);
		return ERR_PTR(-EUCLEAN);
	}
	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;

	bh = twinfs_read_inode_block(sb, ino, &off);
	if (!bh) {
		err = -EIO;
		goto fail;
	}
	raw = (const struct twinfs_inode *)(bh->b_data + off);
	err = twinfs_check_raw_inode(sb, ino, raw);
	if (err) {
		brelse(bh);
		goto fail;
	}
	twinfs_raw_to_inode(inode, raw);
	brelse(bh);
	if (!inode->i_nlink && !orphan_ok) {
		twinfs_corrupt(sb, __func__, "inode %lu: in use with no links", ino);
		err = -EUCLEAN;
		goto fail;
	}
	twinfs_set_inode_ops(inode);
	unlock_new_inode(inode);
	return inode;

fail:
	iget_failed(inode);
	return ERR_PTR(err);
}

enum { TWINFS_INO_FREE, TWINFS_INO_LINKED, TWINFS_INO_ORPHAN };

/* What the inode table (or the inode cache) says of inode ino. */
static int twinfs_ino_state(struct super_block *sb, unsigned long ino)
{
	const struct twinfs_inode *raw;
	struct buffer_head *bh;
	struct inode *inode;
	int state;
	u32 off;

	if (!twinfs_ino_valid(sb, ino))
		return TWINFS_INO_FREE;
	inode = ilookup(sb, ino);
	if (inode) {
		state = inode->i_nlink ? TWINFS_INO_LINKED : TWINFS_INO_ORPHAN;
		iput(inode);
		return state;
	}
	bh = twinfs_read_inode_block(sb, ino, &off);
	if (!bh)
		return TWINFS_INO_LINKED;	/* let iget report the error */
	raw = (const struct twinfs_inode *)(bh->b_data + off);
	if (!le16_to_cpu(raw->i_mode))
		state = TWINFS_INO_FREE;
	else if (le32_to_cpu(raw->i_nlink))
		state = TWINFS_INO_LINKED;
	else
		state = TWINFS_INO_ORPHAN;
	brelse(bh);
	return state;
}

/* Whether inode ino exists with a link (replay: the records of a file
 * that was unlinked while open name it after its last unlink). */
bool twinfs_inode_linked(struct super_block *sb, unsigned long ino)
{
	return twinfs_ino_state(sb, ino) == TWINFS_INO_LINKED;
}

struct inode *twinfs_iget(struct super_block *sb, unsigned long ino)
{
	return __twinfs_iget(sb, ino, false);
}

/*
 * Frees inode ino if it is an orphan: in use with no link left (a crash
 * caught it between its last unlink and its eviction).  Returns true if
 * it did.  Not inside an operation.
 */
bool twinfs_reap_orphan(struct super_block *sb, unsigned long ino)
{
	struct inode *inode;
	bool orphan;

	if (twinfs_ino_state(sb, ino) != TWINFS_INO_ORPHAN)
		return false;
	inode = __twinfs_iget(sb, ino, true);
	if (IS_ERR(inode))
		return false;
	orphan = !inode->i_nlink;
	if (orphan)
		twinfs_info(sb, "freeing orphan inode %lu", ino);
	iput(inode);		/* nlink 0: evicted and freed now */
	return orphan;
}

static void twinfs_inode_to_raw(struct inode *inode, struct twinfs_inode *raw)
{
	struct twinfs_inode_info *ei = TWINFS_I(inode);

	memset(raw, 0, sizeof(*raw));
	raw->i_mode = cpu_to_le16(inode->i_mode);
	raw->i_uid = cpu_to_le32(i_uid_read(inode));
	raw->i_gid = cpu_to_le32(i_gid_read(inode));
	raw->i_nlink = cpu_to_le32(inode->i_nlink);
	raw->i_size = cpu_to_le64(inode->i_size);
	raw->i_blocks = cpu_to_le64(inode->i_blocks >>
				    (TWINFS_BLOCK_SHIFT - 9));
	raw->i_atime = cpu_to_le64(inode->i_atime.tv_sec);
	raw->i_atime_ns = cpu_to_le32(inode->i_atime.tv_nsec);
	raw->i_mtime = cpu_to_le64(inode->i_mtime.tv_sec);
	raw->i_mtime_ns = cpu_to_le32(inode->i_mtime.tv_nsec);
	raw->i_ctime = cpu_to_le64(inode->i_ctime.tv_sec);
	raw->i_ctime_ns = cpu_to_le32(inode->i_ctime.tv_nsec);
	raw->i_generation = cpu_to_le32(inode->i_generation);
	raw->i_flags = cpu_to_le32(ei->flags);
	raw->i_rdev = cpu_to_le32(new_encode_dev(inode->i_rdev));
	down_read(&ei->map_sem);
	raw->i_ext_depth = cpu_to_le16(ei->ext_depth);
	raw->i_ext_count = cpu_to_le16(ei->ext_count);
	memcpy(raw->i_ext, ei->ext, ei->ext_count * sizeof(ei->ext[0]));
	up_read(&ei->map_sem);
	twinfs_csum_set(raw, TWINFS_INODE_SIZE, INODE_CSUM_OFF);
}

/*
 * Copies the inode into its inode-table block (clear writes zeros).  The
 * block goes to disk in the next consistency point; the copy is made under
 * the buffer lock, so a point copies either all of it or none.
 */
static int twinfs_update_inode(struct inode *inode, bool clear)
{
	struct super_block *sb = inode->i_sb;
	struct twinfs_inode raw;
	struct buffer_head *bh;
	u32 off;
	int err = 0;

	if (clear)
		memset(&raw, 0, sizeof(raw));
	else
		twinfs_inode_to_raw(inode, &raw);
	bh = twinfs_read_inode_block(sb, inode->i_ino, &off);
	if (!bh)
		return -EIO;
	lock_buffer(bh);
	memcpy(bh->b_data + off, &raw, sizeof(raw));
	unlock_buffer(bh);
	twinfs_meta_dirty(sb, bh);
	brelse(bh);
	return err;
}

int twinfs_write_inode_meta(struct inode *inode)
{
	return twinfs_update_inode(inode, false);
}

/* Every change an operation made is in the change memory already; what
 * writeback brings here (times) rides along with the next point. */
int twinfs_write_inode(struct inode *inode, struct writeback_control *wbc)
{
	return twinfs_update_inode(inode, false);
}

void twinfs_evict_inode(struct inode *inode)
{
	struct super_block *sb = inode->i_sb;
	bool undone = TWINFS_I(inode)->undone;
	bool drop = !inode->i_nlink && !is_bad_inode(inode);
	/* Freeing changes metadata: not while a consistency point copies
	 * it (an operation of this thread holds the lock already). */
	bool hold = (undone || drop) && !twinfs_cur_op(sb);
	void *op = current->journal_info;

	/* Eviction is never part of an operation: what it frees is final. */
	current->journal_info = NULL;
	if (hold)
		twinfs_cp_hold(sb);
	/* A consistency point taken since these pages were dirtied may
	 * hold this inode in its image and not have written its data yet:
	 * write it before the pages go (the blocks stay busy until then). */
	if (drop && !undone &&
	    TWINFS_I(inode)->data_gen != twinfs_cp_gen(sb))
		filemap_write_and_wait(&inode->i_data);
	truncate_inode_pages_final(&inode->i_data);
	if (undone) {
		/* A rolled-back creation: the rollback gave its blocks back;
		 * its number is freed only now that the inode is I_FREEING,
		 * so a concurrent create may take it at once. */
		invalidate_inode_buffers(inode);
		clear_inode(inode);
		twinfs_free_ino(sb, inode->i_ino);
		goto out;
	}
	if (drop) {
		inode->i_size = 0;
		twinfs_truncate_blocks(inode, 0);
	}
	invalidate_inode_buffers(inode);
	clear_inode(inode);
	if (drop) {
		twinfs_update_inode(inode, true);
		twinfs_free_ino(sb, inode->i_ino);
	}
out:
	if (hold)
		twinfs_cp_leave(sb);
	current->journal_info = op;
}

/* Drops a new inode whose creating operation rolled back; eviction frees
 * its number (see twinfs_evict_inode). */
void twinfs_discard_new_inode(struct inode *inode)
{
	TWINFS_I(inode)->undone = true;
	clear_nlink(inode);
	discard_new_inode(inode);
}

/*
 * Allocates and initialises a new inode for dir; the caller links it.  On
 * failure nothing stays allocated.
 */
struct inode *twinfs_new_inode(struct inode *dir, umode_t mode,
			       const char *symname)
{
	struct super_block *sb = dir->i_sb;
	unsigned long ino;
	struct inode *inode;
	int err;

	err = twinfs_fault(sb, TWINFS_FAULT_INODE_NEW);
	if (err)
		return ERR_PTR(err);
	inode = new_inode(sb);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	err = twinfs_alloc_ino(sb, dir, inode, S_ISDIR(mode), &ino);
	if (err) {
		make_bad_inode(inode);
		iput(inode);
		return ERR_PTR(err);
	}
	inode_init_owner(&init_user_ns, inode, dir, mode);
	inode->i_ino = ino;
	inode->i_blocks = 0;
	inode->i_mtime = inode->i_atime = inode->i_ctime = current_time(inode);
	inode->i_generation = get_random_u32();
	twinfs_set_inode_ops(inode);
	err = insert_inode_locked(inode);
	if (err) {
		twinfs_corrupt(sb, __func__, "inode %lu allocated twice", ino);
		twinfs_free_ino(sb, ino);
		make_bad_inode(inode);
		iput(inode);
		return ERR_PTR(-EUCLEAN);
	}
	twinfs_op_new_inode(inode);	/* room was reserved by alloc_ino */
	mark_inode_dirty(inode);
	return inode;
}

/*
 * Shrinking: before anything changes, unmap the range from user space and
 * write its dirty pages, so that until the operation commits the blocks
 * beyond the new size still hold the file's data and a rollback loses
 * nothing.  Caller holds the mapping's invalidate_lock.
 */
static int twinfs_prepare_shrink(struct inode *inode, loff_t size)
{
	unmap_mapping_range(inode->i_mapping, size + PAGE_SIZE - 1, 0, 1);
	return filemap_write_and_wait_range(inode->i_mapping, size, LLONG_MAX);
}

/* Page-cache side of a committed size change: cannot be undone. */
static void twinfs_finish_size(struct inode *inode, loff_t old, loff_t size)
{
	int err;

	if (size < old) {
		err = block_truncate_page(inode->i_mapping, size,
					  twinfs_get_block);
		if (err)
			twinfs_warn(inode->i_sb, "inode %lu: cannot zero the tail of the last block: %d",
				    inode->i_ino, err);
	}
	truncate_setsize(inode, size);
}

/* A size change and the other attributes are two records. */
static void twinfs_rec_setattr_op(struct twinfs_op *op, struct inode *inode,
				  bool resize, unsigned int valid)
{
	struct twinfs_rec_desc *d;

	valid &= ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_ATIME | ATTR_MTIME;
	if (resize) {
		d = twinfs_op_rec(op, TWINFS_CM_OP_TRUNCATE);
		d->inode = inode;
	}
	if (valid) {
		d = twinfs_op_rec(op, TWINFS_CM_OP_SETATTR);
		d->inode = inode;
		d->ia_valid = valid;
	}
}

int twinfs_setattr(struct user_namespace *ns, struct dentry *dentry,
		   struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	loff_t old = i_size_read(inode), size = attr->ia_size;
	bool resize = (attr->ia_valid & ATTR_SIZE) && size != old;
	struct twinfs_op op;
	int err;

	err = setattr_prepare(ns, dentry, attr);
	if (err)
		return err;
	if (resize && !S_ISREG(inode->i_mode))
		return -EINVAL;
	if (resize) {
		filemap_invalidate_lock(inode->i_mapping);
		if (size < old) {
			err = twinfs_prepare_shrink(inode, size);
			if (err)
				goto out_unlock;
		}
	}

	twinfs_op_begin(&op, inode->i_sb, resize ? "truncate" : "setattr");
	if (resize)
		twinfs_cp_data_dirtied(inode);	/* the zeroed tail */
	err = twinfs_fault(inode->i_sb, TWINFS_FAULT_SETATTR) ?:
	      twinfs_op_inode(inode);
	if (!err && resize)
		err = twinfs_truncate_blocks(inode, (u32)((size +
				TWINFS_BLOCK_SIZE - 1) >> TWINFS_BLOCK_SHIFT));
	if (!err) {
		if (resize)
			i_size_write(inode, size);
		setattr_copy(ns, inode, attr);
		mark_inode_dirty(inode);
		twinfs_rec_setattr_op(&op, inode, resize, attr->ia_valid);
	}
	err = twinfs_op_end(&op, err);
	if (!err && resize)
		twinfs_finish_size(inode, old, size);
out_unlock:
	if (resize)
		filemap_invalidate_unlock(inode->i_mapping);
	return err;
}

int twinfs_getattr(struct user_namespace *ns, const struct path *path,
		   struct kstat *stat, u32 mask, unsigned int flags)
{
	generic_fillattr(ns, d_inode(path->dentry), stat);
	stat->blksize = TWINFS_BLOCK_SIZE;
	return 0;
}
