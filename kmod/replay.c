// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: replay of the change memory at mount (seed 004: the partner
 * processes "exactly those file system changes not already processed").
 *
 * The disk holds every record up to its consistency point; the plan
 * (kmod/core/cm.c) lists the records after it, in seq order, up to the
 * first missing seq.  Each is applied once, as the operation it describes,
 * through the same inode operations a system call uses, on the inodes the
 * record names; creations take the inode numbers the record says, so the
 * records after them find their inodes.  Replayed operations append no
 * records.  A record that does not fit the file system (a name that should
 * exist and does not, an inode number that is taken) stops the mount:
 * nothing was written yet, the next attempt starts over.  After the replay
 * a consistency point writes the result and the change memory is emptied.
 */
#include <linux/namei.h>
#include <linux/pagemap.h>
#include <linux/highmem.h>
#include "cm.h"
#include "op.h"

struct twinfs_replay_ctx {
	struct super_block *sb;
	const struct twinfs_cm_rec_info *ri;
	const struct twinfs_cm_attrs *a;
	const char *why;
	u32 skipped;		/* records of files no longer linked */
};

static int twinfs_replay_bad(struct twinfs_replay_ctx *c, const char *why)
{
	c->why = why;
	return -EUCLEAN;
}

static struct inode *twinfs_replay_iget(struct twinfs_replay_ctx *c, u64 ino)
{
	struct inode *inode;

	if (ino > U32_MAX) {
		c->why = "inode number out of range";
		return ERR_PTR(-EUCLEAN);
	}
	inode = twinfs_iget(c->sb, (unsigned long)ino);
	if (IS_ERR(inode))
		c->why = "names an inode that cannot be read";
	else if (!inode->i_nlink && ino != TWINFS_ROOT_INO) {
		iput(inode);
		c->why = "names an inode that does not exist";
		inode = ERR_PTR(-EUCLEAN);
	}
	return inode;
}

/* A dentry for the directory with number ino. */
static struct dentry *twinfs_replay_dir(struct twinfs_replay_ctx *c, u64 ino)
{
	struct inode *inode = twinfs_replay_iget(c, ino);

	if (IS_ERR(inode))
		return ERR_CAST(inode);
	if (!S_ISDIR(inode->i_mode)) {
		iput(inode);
		c->why = "parent is not a directory";
		return ERR_PTR(-EUCLEAN);
	}
	return d_obtain_alias(inode);
}

/* The child dentry of name in parent (locked by the caller). */
static struct dentry *twinfs_replay_child(struct dentry *parent,
					  const char *name, u32 len)
{
	return lookup_one_len(name, parent, len);
}

/* The record's times: what the original operation set. */
static void twinfs_replay_times(struct inode *inode,
				const struct twinfs_cm_time *t)
{
	struct timespec64 ts = { .tv_sec = t->sec, .tv_nsec = t->nsec };

	inode->i_ctime = ts;
	inode->i_mtime = ts;
	twinfs_write_inode_meta(inode);
}

static int twinfs_replay_create(struct twinfs_replay_ctx *c)
{
	const struct twinfs_cm_attrs *a = c->a;
	struct twinfs_sb_info *sbi = TWINFS_SB(c->sb);
	struct dentry *parent, *child;
	struct inode *dir, *inode;
	char *target = NULL;
	umode_t mode = a->mode;
	int err;

	parent = twinfs_replay_dir(c, a->parent_ino);
	if (IS_ERR(parent))
		return PTR_ERR(parent);
	dir = d_inode(parent);
	inode_lock_nested(dir, I_MUTEX_PARENT);
	child = twinfs_replay_child(parent, a->name, a->name_len);
	if (IS_ERR(child)) {
		err = PTR_ERR(child);
		goto out_unlock;
	}
	if (d_really_is_positive(child)) {
		err = twinfs_replay_bad(c, "creates a name that exists");
		goto out_child;
	}
	/* A consistency point may have caught the inode that had this
	 * number between its last unlink and its eviction. */
	if (a->ino <= U32_MAX)
		twinfs_reap_orphan(c->sb, (unsigned long)a->ino);
	sbi->replay_ino = a->ino;
	switch (c->ri->op) {
	case TWINFS_CM_OP_CREATE:
		err = dir->i_op->create(&init_user_ns, dir, child, mode, true);
		break;
	case TWINFS_CM_OP_MKNOD:
		err = dir->i_op->mknod(&init_user_ns, dir, child, mode,
				       new_decode_dev(a->rdev));
		break;
	case TWINFS_CM_OP_MKDIR:
		err = dir->i_op->mkdir(&init_user_ns, dir, child,
				       mode & ~S_IFMT);
		break;
	default:
		target = kmemdup_nul(a->symlink, a->symlink_len, GFP_KERNEL);
		err = target ? dir->i_op->symlink(&init_user_ns, dir, child,
						  target) : -ENOMEM;
		kfree(target);
		break;
	}
	sbi->replay_ino = 0;
	if (err == -EEXIST)
		err = twinfs_replay_bad(c, "creates an inode number that is taken");
	if (err)
		goto out_child;
	inode = d_inode(child);
	inode->i_mode = mode;
	i_uid_write(inode, a->uid);
	i_gid_write(inode, a->gid);
	inode->i_generation = a->generation;
	inode->i_atime.tv_sec = a->ctime.sec;
	inode->i_atime.tv_nsec = a->ctime.nsec;
	twinfs_replay_times(inode, &a->ctime);
	twinfs_replay_times(dir, &a->ctime);
out_child:
	dput(child);
out_unlock:
	inode_unlock(dir);
	dput(parent);
	return err;
}

/* link, unlink, rmdir: a name in a directory and the inode it names. */
static int twinfs_replay_name(struct twinfs_replay_ctx *c)
{
	const struct twinfs_cm_attrs *a = c->a;
	struct dentry *parent, *child, *old = NULL;
	struct inode *dir, *inode = NULL;
	int err;

	parent = twinfs_replay_dir(c, a->parent_ino);
	if (IS_ERR(parent))
		return PTR_ERR(parent);
	dir = d_inode(parent);
	if (c->ri->op == TWINFS_CM_OP_LINK) {
		inode = twinfs_replay_iget(c, a->ino);
		if (IS_ERR(inode)) {
			dput(parent);
			return PTR_ERR(inode);
		}
		old = d_obtain_alias(inode);
		if (IS_ERR(old)) {
			dput(parent);
			return PTR_ERR(old);
		}
	}
	inode_lock_nested(dir, I_MUTEX_PARENT);
	child = twinfs_replay_child(parent, a->name, a->name_len);
	if (IS_ERR(child)) {
		err = PTR_ERR(child);
		goto out_unlock;
	}
	if (c->ri->op == TWINFS_CM_OP_LINK) {
		err = d_really_is_positive(child) ?
		      twinfs_replay_bad(c, "links to a name that exists") :
		      dir->i_op->link(old, dir, child);
		goto out_child;
	}
	if (d_really_is_negative(child) || d_inode(child)->i_ino != a->ino) {
		err = twinfs_replay_bad(c, "removes a name that does not name the inode");
		goto out_child;
	}
	inode_lock(d_inode(child));
	if (c->ri->op == TWINFS_CM_OP_UNLINK)
		err = dir->i_op->unlink(dir, child);
	else
		err = dir->i_op->rmdir(dir, child);
	inode_unlock(d_inode(child));
	if (!err)
		d_delete(child);
out_child:
	if (!err)
		twinfs_replay_times(dir, &a->ctime);
	d_drop(child);
	dput(child);
out_unlock:
	inode_unlock(dir);
	dput(old);
	dput(parent);
	return err;
}

static int twinfs_replay_rename(struct twinfs_replay_ctx *c)
{
	const struct twinfs_cm_attrs *a = c->a;
	struct dentry *p1, *p2, *d1 = NULL, *d2 = NULL, *trap;
	unsigned int flags = 0;
	int err;

	p1 = twinfs_replay_dir(c, a->parent_ino);
	if (IS_ERR(p1))
		return PTR_ERR(p1);
	p2 = twinfs_replay_dir(c, a->new_parent_ino);
	if (IS_ERR(p2)) {
		dput(p1);
		return PTR_ERR(p2);
	}
	if (a->flags & TWINFS_CM_RENAME_NOREPLACE)
		flags |= RENAME_NOREPLACE;
	trap = lock_rename(p2, p1);
	d1 = twinfs_replay_child(p1, a->name, a->name_len);
	if (IS_ERR(d1)) {
		err = PTR_ERR(d1);
		d1 = NULL;
		goto out;
	}
	d2 = twinfs_replay_child(p2, a->new_name, a->new_name_len);
	if (IS_ERR(d2)) {
		err = PTR_ERR(d2);
		d2 = NULL;
		goto out;
	}
	err = -EUCLEAN;
	if (d_really_is_negative(d1) || d_inode(d1)->i_ino != a->ino) {
		c->why = "renames a name that does not name the inode";
		goto out;
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_TARGET_INO) ?
	    (d_really_is_negative(d2) || d_inode(d2)->i_ino != a->target_ino) :
	    d_really_is_positive(d2)) {
		c->why = "rename target differs from the record";
		goto out;
	}
	if (d1 == trap || d2 == trap) {
		c->why = "renames a directory into itself";
		goto out;
	}
	err = d_inode(p1)->i_op->rename(&init_user_ns, d_inode(p1), d1,
					d_inode(p2), d2, flags);
	if (!err) {
		twinfs_replay_times(d_inode(p1), &a->ctime);
		twinfs_replay_times(d_inode(p2), &a->ctime);
	}
out:
	if (d1) {
		d_drop(d1);
		dput(d1);
	}
	if (d2) {
		d_drop(d2);
		dput(d2);
	}
	unlock_rename(p2, p1);
	dput(p1);
	dput(p2);
	return err;
}

static void twinfs_replay_ts(struct timespec64 *ts,
			     const struct twinfs_cm_time *t)
{
	ts->tv_sec = t->sec;
	ts->tv_nsec = t->nsec;
}

static int twinfs_replay_setattr(struct twinfs_replay_ctx *c)
{
	const struct twinfs_cm_attrs *a = c->a;
	struct iattr ia = { .ia_valid = ATTR_CTIME | ATTR_FORCE };
	struct dentry *dentry;
	struct inode *inode;
	int err;

	inode = twinfs_replay_iget(c, a->ino);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	dentry = d_obtain_alias(inode);
	if (IS_ERR(dentry))
		return PTR_ERR(dentry);
	twinfs_replay_ts(&ia.ia_ctime, &a->ctime);
	if (c->ri->op == TWINFS_CM_OP_TRUNCATE) {
		ia.ia_valid |= ATTR_SIZE | ATTR_MTIME;
		ia.ia_size = a->size;
		ia.ia_mtime = ia.ia_ctime;
		if (!S_ISREG(inode->i_mode)) {
			dput(dentry);
			return twinfs_replay_bad(c, "truncates a file that is not regular");
		}
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_MODE)) {
		ia.ia_valid |= ATTR_MODE;
		ia.ia_mode = (inode->i_mode & S_IFMT) | (a->mode & ~S_IFMT);
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_UID)) {
		ia.ia_valid |= ATTR_UID;
		ia.ia_uid = make_kuid(&init_user_ns, a->uid);
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_GID)) {
		ia.ia_valid |= ATTR_GID;
		ia.ia_gid = make_kgid(&init_user_ns, a->gid);
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_ATIME)) {
		ia.ia_valid |= ATTR_ATIME | ATTR_ATIME_SET;
		twinfs_replay_ts(&ia.ia_atime, &a->atime);
	}
	if (twinfs_cm_has(a, TWINFS_CM_A_MTIME)) {
		ia.ia_valid |= ATTR_MTIME | ATTR_MTIME_SET;
		twinfs_replay_ts(&ia.ia_mtime, &a->mtime);
	}
	inode_lock(inode);
	err = inode->i_op->setattr(&init_user_ns, dentry, &ia);
	inode_unlock(inode);
	dput(dentry);
	return err;
}

/* The bytes of a write, through the page cache as write(2) puts them. */
static int twinfs_replay_write(struct twinfs_replay_ctx *c)
{
	const struct twinfs_cm_attrs *a = c->a;
	const struct address_space_operations *aops;
	loff_t pos = a->offset;
	const u8 *src = a->data;
	u32 left = a->data_len;
	struct twinfs_op op;
	struct inode *inode;
	int err = 0;

	inode = twinfs_replay_iget(c, a->ino);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	if (!S_ISREG(inode->i_mode)) {
		iput(inode);
		return twinfs_replay_bad(c, "writes to a file that is not regular");
	}
	aops = inode->i_mapping->a_ops;
	inode_lock(inode);
	twinfs_op_begin(&op, c->sb, "write");
	twinfs_cp_data_dirtied(inode);
	err = twinfs_op_inode(inode);
	while (!err && left) {
		u32 off = offset_in_page(pos);
		u32 n = min_t(u32, left, PAGE_SIZE - off);
		struct page *page;
		void *fsdata = NULL;
		int done;

		err = aops->write_begin(NULL, inode->i_mapping, pos, n, &page,
					&fsdata);
		if (err)
			break;
		memcpy_to_page(page, off, src, n);
		done = aops->write_end(NULL, inode->i_mapping, pos, n, n, page,
				       fsdata);
		if (done != n) {
			err = done < 0 ? done : -EIO;
			break;
		}
		pos += n;
		src += n;
		left -= n;
	}
	if (!err) {
		struct timespec64 ts;

		twinfs_replay_ts(&ts, &a->ctime);
		inode->i_mtime = inode->i_ctime = ts;
	}
	err = twinfs_op_end(&op, err);
	inode_unlock(inode);
	iput(inode);
	return err;
}

static int twinfs_replay_one(struct twinfs_replay_ctx *c)
{
	switch (c->ri->op) {
	case TWINFS_CM_OP_SETATTR:
	case TWINFS_CM_OP_TRUNCATE:
	case TWINFS_CM_OP_WRITE:
		/* A file unlinked while open took its changes with it. */
		if (c->a->ino <= U32_MAX &&
		    !twinfs_inode_linked(c->sb, (unsigned long)c->a->ino)) {
			c->skipped++;
			return 0;
		}
		break;
	}
	switch (c->ri->op) {
	case TWINFS_CM_OP_CREATE:
	case TWINFS_CM_OP_MKNOD:
	case TWINFS_CM_OP_MKDIR:
	case TWINFS_CM_OP_SYMLINK:
		return twinfs_replay_create(c);
	case TWINFS_CM_OP_LINK:
	case TWINFS_CM_OP_UNLINK:
	case TWINFS_CM_OP_RMDIR:
		return twinfs_replay_name(c);
	case TWINFS_CM_OP_RENAME:
		return twinfs_replay_rename(c);
	case TWINFS_CM_OP_SETATTR:
	case TWINFS_CM_OP_TRUNCATE:
		return twinfs_replay_setattr(c);
	case TWINFS_CM_OP_WRITE:
		return twinfs_replay_write(c);
	}
	return twinfs_replay_bad(c, "unknown operation");
}

int twinfs_replay(struct super_block *sb, struct twinfs_cm_found *found)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	const struct twinfs_cm_plan *plan = &found->plan;
	struct twinfs_replay_ctx c = { .sb = sb };
	struct twinfs_cm_rec_info ri;
	struct twinfs_cm_attrs a;
	u32 i;
	int err = 0;

	if (!plan->count)
		return twinfs_cm_reset(sb, plan->max_seq);
	sbi->replaying = true;
	c.ri = &ri;
	c.a = &a;
	for (i = 0; i < plan->count && !err; i++) {
		const struct twinfs_cm_scan_ent *e = &found->ents[plan->first + i];

		err = twinfs_cm_decode(sb, e, &ri, &a);
		if (err)
			break;
		/* A point taken now holds exactly the records so far. */
		twinfs_cm_set_seq(sb, e->seq - 1);
		if (twinfs_cp_wants_run(sb))
			err = twinfs_cp_run(sb);
		c.why = NULL;
		err = err ?: twinfs_replay_one(&c);
		twinfs_cm_set_seq(sb, e->seq);
		if (err)
			twinfs_err(sb, "replay: record seq %llu (operation %u): %s (%d); refusing to mount",
				   e->seq, ri.op, c.why ?: "failed", err);
	}
	sbi->replaying = false;
	shrink_dcache_sb(sb);
	if (err)
		return err;
	sbi->records_replayed = plan->count;
	err = twinfs_cp_run(sb) ?: twinfs_cm_reset(sb, plan->max_seq);
	if (!err)
		twinfs_info(sb, "replayed %u change records (seq %llu..%llu) after consistency point %llu (%u of files unlinked since); %u unacknowledged records at the tail discarded",
			    plan->count, found->ents[plan->first].seq,
			    plan->last_seq, found->ents[plan->first].seq - 1,
			    c.skipped, plan->discarded);
	return err;
}
