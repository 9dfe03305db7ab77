// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: name operations: lookup, create, link, unlink, mkdir, rmdir,
 * symlink, mknod, rename.
 */
#include "twinfs.h"

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

/* Links a new inode into dir and the dcache; undoes the inode on error. */
static int twinfs_add_nondir(struct inode *dir, struct dentry *dentry,
			     struct inode *inode)
{
	int err = twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
				 inode->i_mode);

	if (err) {
		inode_dec_link_count(inode);
		discard_new_inode(inode);
		return err;
	}
	dir->i_mtime = dir->i_ctime = current_time(dir);
	mark_inode_dirty(dir);
	d_instantiate_new(dentry, inode);
	return 0;
}

static int twinfs_mknod(struct user_namespace *ns, struct inode *dir,
			struct dentry *dentry, umode_t mode, dev_t rdev)
{
	struct inode *inode = twinfs_new_inode(dir, mode, NULL);

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	if (!S_ISREG(mode)) {
		inode->i_rdev = rdev;
		init_special_inode(inode, mode, rdev);
	}
	return twinfs_add_nondir(dir, dentry, inode);
}

static int twinfs_create(struct user_namespace *ns, struct inode *dir,
			 struct dentry *dentry, umode_t mode, bool excl)
{
	return twinfs_mknod(ns, dir, dentry, mode, 0);
}

static int twinfs_symlink(struct user_namespace *ns, struct inode *dir,
			  struct dentry *dentry, const char *symname)
{
	unsigned int len = strlen(symname) + 1;
	struct inode *inode;
	int err;

	if (len > dir->i_sb->s_blocksize)
		return -ENAMETOOLONG;
	inode = twinfs_new_inode(dir, S_IFLNK | 0777, symname);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	err = page_symlink(inode, symname, len);
	if (err) {
		inode_dec_link_count(inode);
		discard_new_inode(inode);
		return err;
	}
	return twinfs_add_nondir(dir, dentry, inode);
}

static int twinfs_link(struct dentry *old_dentry, struct inode *dir,
		       struct dentry *dentry)
{
	struct inode *inode = d_inode(old_dentry);
	int err;

	if (inode->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;
	err = twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
			     inode->i_mode);
	if (err)
		return err;
	inode->i_ctime = current_time(inode);
	inode_inc_link_count(inode);
	ihold(inode);
	dir->i_mtime = dir->i_ctime = current_time(dir);
	mark_inode_dirty(dir);
	d_instantiate(dentry, inode);
	return 0;
}

static int twinfs_unlink(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	int err;

	err = twinfs_dir_remove(dir, &dentry->d_name);
	if (err)
		return err;
	dir->i_mtime = dir->i_ctime = inode->i_ctime = current_time(dir);
	mark_inode_dirty(dir);
	inode_dec_link_count(inode);
	return 0;
}

static int twinfs_mkdir(struct user_namespace *ns, struct inode *dir,
			struct dentry *dentry, umode_t mode)
{
	struct inode *inode;
	int err;

	if (dir->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;
	inode = twinfs_new_inode(dir, S_IFDIR | mode, NULL);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	set_nlink(inode, 2);
	err = twinfs_dir_init(inode, dir);
	if (!err)
		err = twinfs_dir_add(dir, &dentry->d_name, inode->i_ino,
				     inode->i_mode);
	if (err) {
		clear_nlink(inode);
		discard_new_inode(inode);
		return err;
	}
	inode_inc_link_count(dir);
	dir->i_mtime = dir->i_ctime = current_time(dir);
	d_instantiate_new(dentry, inode);
	return 0;
}

static int twinfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	struct inode *inode = d_inode(dentry);
	int err;

	err = twinfs_dir_is_empty(inode);
	if (err < 0)
		return err;
	if (!err)
		return -ENOTEMPTY;
	err = twinfs_dir_remove(dir, &dentry->d_name);
	if (err)
		return err;
	clear_nlink(inode);
	inode->i_ctime = current_time(inode);
	mark_inode_dirty(inode);
	inode_dec_link_count(dir);
	dir->i_mtime = dir->i_ctime = current_time(dir);
	return 0;
}

static int twinfs_rename(struct user_namespace *ns, struct inode *old_dir,
			 struct dentry *old_dentry, struct inode *new_dir,
			 struct dentry *new_dentry, unsigned int flags)
{
	struct inode *old = d_inode(old_dentry);
	struct inode *target = d_inode(new_dentry);
	bool is_dir = S_ISDIR(old->i_mode);
	int err;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if (target && S_ISDIR(target->i_mode)) {
		err = twinfs_dir_is_empty(target);
		if (err < 0)
			return err;
		if (!err)
			return -ENOTEMPTY;
	}
	if (is_dir && !target && old_dir != new_dir &&
	    new_dir->i_nlink >= TWINFS_LINK_MAX)
		return -EMLINK;

	if (target)
		err = twinfs_dir_replace(new_dir, &new_dentry->d_name,
					 old->i_ino, old->i_mode);
	else
		err = twinfs_dir_add(new_dir, &new_dentry->d_name, old->i_ino,
				     old->i_mode);
	if (err)
		return err;
	err = twinfs_dir_remove(old_dir, &old_dentry->d_name);
	if (err)
		return err;
	if (is_dir && old_dir != new_dir) {
		err = twinfs_dir_set_parent(old, new_dir->i_ino);
		if (err)
			return err;
	}

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
	old->i_ctime = current_time(old);
	mark_inode_dirty(old);
	old_dir->i_mtime = old_dir->i_ctime = current_time(old_dir);
	mark_inode_dirty(old_dir);
	if (new_dir != old_dir) {
		new_dir->i_mtime = new_dir->i_ctime = current_time(new_dir);
		mark_inode_dirty(new_dir);
	}
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
