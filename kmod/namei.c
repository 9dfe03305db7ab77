// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: name operations: lookup, create, link, unlink, mkdir, rmdir,
 * symlink, mknod, rename.
 *
 * Each modifying operation runs as one twinfs operation (op.h): it logs
 * the attributes of every existing inode it changes before changing them,
 * and its helpers log the directory blocks, allocations and mappings.  On
 * any error, or an injected fault at its commit point, the operation is
 * rolled back and a new inode it made is dropped without a trace.  Only
 * after the commit does the dcache learn of the change.
 */
#include "op.h"
#include "fault.h"

static struct dentry *twinfs_lookup(struct inode *dir, struct dentry *dentry,
				    unsigned int flags)
{
	struct inode *inode = NULL;
	u32 ino;
	int err;

	if (dentry->d_name.len > TWINFS_NAME_MAX)
		return ERR_PTR(-ENAMETOOLONG);
	err = twinfs_dir_lookup(dir, &dentry->d_name, &ino);
	if (err == -ENOENT)
		return d_splice_alias(NULL, dentry);
	if (err)
		return ERR_PTR(err);
	inode = twinfs_iget(dir->i_sb, ino);
	return d_splice_alias(inode, dentry);
}

/* The record of a committing name operation. */
static void twinfs_rec_names(struct twinfs_op *op, u16 cm_op, struct inode *dir,
			     struct dentry *dentry, struct inode *inode)
{
	struct twinfs_rec_desc *d = twinfs_op_rec(op, cm_op);

	d->dir = dir;
	d->name = &dentry->d_name;
	d->inode = inode;
}

static void twinfs_touch_dir(struct inode *dir)
{
	dir->i_mtime = dir->i_ctime = current_time(dir);
	mark_inode_dirty(dir);
}

/* Ends an operation that created inode (may be an ERR_PTR); on success
 * the dentry gets it, on failure it is dropped. */
static int twinfs_end_create(struct twinfs_op *op, struct dentry *dentry,
			     struct inode *inode, int err)
{
	if (IS_ERR(inode))
		return twinfs_op_end(op, PTR_ERR(inode));
	err = twinfs_op_end(op, err);
	if (err) {
		twinfs_discard_new_inode(inode);
		return err;
	}
	d_instantiate_new(dentry, inode);
	return 0;
}

static int twinfs_make_node(struct inode *dir, struct dentry *dentry,
			    umode_t mode, dev_t rdev, const char *opname)
{
	struct inode *inode;
	struct twinfs_op op;
	int err;

	twinfs_op_begin(&op, dir->i_sb, opname);
	err = twinfs_op_inode(dir);
	inode = err ? ERR_PTR(err) : twinfs_new_inode(dir, mode, NULL);
	if (!IS_ERR(inode)) {
		if (!S_ISREG(mode)) {
			inode->i_rdev = rdev;
			init_special_inode(inode, mode, rdev);
		}
		err = twinfs_dir_add(dir, &dentry->d_name, inode->i_ino, mode);
		if (!err) {
			twinfs_touch_dir(dir);
			twinfs_rec_names(&op, S_ISREG(mode) ? TWINFS_CM_OP_CREATE :
					 TWINFS_CM_OP_MKNOD, dir, dentry, inode);
		}
	}
	return twinfs_end_create(&op, dentry, inode, err);
}

static int twinfs_mknod(struct user_namespace *ns, struct inode *dir,
			struct dentry *dentry, umode_t mode, dev_t rdev)
{
	return twinfs_make_node(dir, dentry, mode, rdev, "mknod");
}

static int twinfs_create(struct user_namespace *ns, struct inode *dir,
			 struct dentry *dentry, umode_t mode, bool excl)
{
	return twinfs_make_node(dir, dentry, mode, 0, "create");
}

static int twinfs_symlink(struct user_namespace *ns, struct inode *dir,
			  struct dentry *dentry, const char *symname)
{
	unsigned int len = strlen(symname) + 1;
	struct inode *inode;
	struct twinfs_op op;
	int err;

	if (len > dir->i_sb->s_blocksize)
		return -ENAMETOOLONG;
	twinfs_op_begin(&op, dir->i_sb, "symlink");
	err = twinfs_op_inode(dir);
	inode = err ? ERR_PTR(err) :
		twinfs_new_inode(dir, S_IFLNK | 0777, symname);
	if (!IS_ERR(inode)) {
		twinfs_cp_data_dirtied(inode);
		err = twinfs_fault(dir->i_sb, TWINFS_FAULT_SYMLINK) ?:
		      page_symlink(inode, symname, len) ?:
		      twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
				     inode->i_mode);
		if (!err) {
			twinfs_touch_dir(dir);
			twinfs_rec_names(&op, TWINFS_CM_OP_SYMLINK, dir, dentry,
					 inode);
			op.rec[0].symlink = symname;
		}
	}
	return twinfs_end_create(&op, dentry, inode, err);
}

static int twinfs_link(struct dentry *old_dentry, struct inode *dir,
		       struct dentry *dentry)
{
	struct inode *inode = d_inode(old_dentry);
	struct twinfs_op op;
	int err;

	if (inode->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;
	twinfs_op_begin(&op, dir->i_sb, "link");
	err = twinfs_op_inode(dir) ?: twinfs_op_inode(inode) ?:
	      twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
			     inode->i_mode);
	if (!err) {
		inode->i_ctime = current_time(inode);
		inode_inc_link_count(inode);
		twinfs_touch_dir(dir);
		twinfs_rec_names(&op, TWINFS_CM_OP_LINK, dir, dentry, inode);
	}
	err = twinfs_op_end(&op, err);
	if (err)
		return err;
	ihold(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static int twinfs_unlink(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	struct twinfs_op op;
	int err;

	twinfs_op_begin(&op, dir->i_sb, "unlink");
	err = twinfs_op_inode(dir) ?: twinfs_op_inode(inode) ?:
	      twinfs_dir_remove(dir, &dentry->d_name);
	if (!err) {
		twinfs_touch_dir(dir);
		inode->i_ctime = dir->i_ctime;
		inode_dec_link_count(inode);
		twinfs_rec_names(&op, TWINFS_CM_OP_UNLINK, dir, dentry, inode);
	}
	return twinfs_op_end(&op, err);
}

static int twinfs_mkdir(struct user_namespace *ns, struct inode *dir,
			struct dentry *dentry, umode_t mode)
{
	struct inode *inode;
	struct twinfs_op op;
	int err;

	if (dir->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;
	twinfs_op_begin(&op, dir->i_sb, "mkdir");
	err = twinfs_op_inode(dir);
	inode = err ? ERR_PTR(err) : twinfs_new_inode(dir, S_IFDIR | mode, NULL);
	if (!IS_ERR(inode)) {
		set_nlink(inode, 2);
		err = twinfs_dir_init(inode, dir) ?:
		      twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
				     inode->i_mode);
		if (!err) {
			inode_inc_link_count(dir);
			twinfs_touch_dir(dir);
			twinfs_rec_names(&op, TWINFS_CM_OP_MKDIR, dir, dentry,
					 inode);
		}
	}
	return twinfs_end_create(&op, dentry, inode, err);
}

static int twinfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	struct twinfs_op op;
	int err;

	err = twinfs_dir_is_empty(inode);
	if (err <= 0)
		return err ?: -ENOTEMPTY;
	twinfs_op_begin(&op, dir->i_sb, "rmdir");
	err = twinfs_op_inode(dir) ?: twinfs_op_inode(inode) ?:
	      twinfs_dir_remove(dir, &dentry->d_name);
	if (!err) {
		clear_nlink(inode);
		inode->i_ctime = current_time(inode);
		mark_inode_dirty(inode);
		inode_dec_link_count(dir);
		twinfs_touch_dir(dir);
		twinfs_rec_names(&op, TWINFS_CM_OP_RMDIR, dir, dentry, inode);
	}
	return twinfs_op_end(&op, err);
}

static void twinfs_rec_rename(struct twinfs_op *op, struct inode *old_dir,
			      struct dentry *old_dentry, struct inode *new_dir,
			      struct dentry *new_dentry, unsigned int flags)
{
	struct twinfs_rec_desc *d = twinfs_op_rec(op, TWINFS_CM_OP_RENAME);

	d->dir = old_dir;
	d->name = &old_dentry->d_name;
	d->inode = d_inode(old_dentry);
	d->new_dir = new_dir;
	d->new_name = &new_dentry->d_name;
	d->target = d_inode(new_dentry);
	if (flags & RENAME_NOREPLACE)
		d->flags = TWINFS_CM_RENAME_NOREPLACE;
}

/* The directory changes of a rename; the caller logged the inodes. */
static int twinfs_rename_entries(struct inode *old_dir, struct dentry *old_dentry,
				 struct inode *new_dir, struct dentry *new_dentry)
{
	struct inode *old = d_inode(old_dentry);
	struct inode *target = d_inode(new_dentry);
	int err;

	if (target)
		err = twinfs_dir_replace(new_dir, &new_dentry->d_name,
					 old->i_ino, old->i_mode);
	else
		err = twinfs_dir_add(new_dir, &new_dentry->d_name, old->i_ino,
				     old->i_mode);
	err = err ?: twinfs_dir_remove(old_dir, &old_dentry->d_name);
	if (!err && S_ISDIR(old->i_mode) && old_dir != new_dir)
		err = twinfs_dir_set_parent(old, new_dir->i_ino);
	return err;
}

static int twinfs_rename(struct user_namespace *ns, struct inode *old_dir,
			 struct dentry *old_dentry, struct inode *new_dir,
			 struct dentry *new_dentry, unsigned int flags)
{
	struct inode *old = d_inode(old_dentry);
	struct inode *target = d_inode(new_dentry);
	bool is_dir = S_ISDIR(old->i_mode);
	struct twinfs_op op;
	int err;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if (target && S_ISDIR(target->i_mode)) {
		err = twinfs_dir_is_empty(target);
		if (err <= 0)
			return err ?: -ENOTEMPTY;
	}
	if (is_dir && !target && old_dir != new_dir &&
	    new_dir->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;

	twinfs_op_begin(&op, old_dir->i_sb, "rename");
	err = twinfs_op_inode(old_dir) ?:
	      (new_dir != old_dir ? twinfs_op_inode(new_dir) : 0) ?:
	      (target ? twinfs_op_inode(target) : 0) ?:
	      twinfs_rename_entries(old_dir, old_dentry, new_dir, new_dentry);
	if (!err) {
		if (target) {
			target->i_ctime = current_time(target);
			if (S_ISDIR(target->i_mode))
				clear_nlink(target);
			else
				drop_nlink(target);
			mark_inode_dirty(target);
		}
		if (is_dir) {
			drop_nlink(old_dir);
			if (!target)
				inc_nlink(new_dir);
		}
		twinfs_touch_dir(old_dir);
		if (new_dir != old_dir)
			twinfs_touch_dir(new_dir);
		twinfs_rec_rename(&op, old_dir, old_dentry, new_dir,
				  new_dentry, flags);
	}
	err = twinfs_op_end(&op, err);
	if (err)
		return err;
	/* The moved inode is not locked for a directory: only its ctime
	 * changes, after the commit. */
	old->i_ctime = current_time(old);
	mark_inode_dirty(old);
	return 0;
}

const struct inode_operations twinfs_dir_inode_operations = {
	.create		= twinfs_create,
	.lookup		= twinfs_lookup,
	.link		= twinfs_link,
	.unlink		= twinfs_unlink,
	.symlink	= twinfs_symlink,
	.mkdir		= twinfs_mkdir,
	.rmdir		= twinfs_rmdir,
	.mknod		= twinfs_mknod,
	.rename		= twinfs_rename,
	.setattr	= twinfs_setattr,
	.getattr	= twinfs_getattr,
};

const struct inode_operations twinfs_special_inode_operations = {
	.setattr	= twinfs_setattr,
	.getattr	= twinfs_getattr,
};
