// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: change records of operations (seed 004: "a descriptor of a file
 * system change").  An operation describes what it did in a twinfs_rec_desc
 * while it runs; when it commits, the record is built straight into its
 * slot of the change memory from the descriptor and the inodes' state,
 * which the operation's locks still hold still.  A record names inodes by
 * number and carries the numbers an operation created, so a replay makes
 * the same inodes.  Writes carry their data, at most TWINFS_CM_DATA_MAX
 * bytes a record, read back from the page cache.
 */
#include <linux/pagemap.h>
#include <linux/highmem.h>
#include "cm.h"

#define TWINFS_REC_FIXED	512u	/* attributes other than names/data */

u32 twinfs_rec_write_credit(u32 len)
{
	u32 parts = max_t(u32, 1, DIV_ROUND_UP(len, TWINFS_CM_DATA_MAX));

	return parts * twinfs_cm_rec_size(TWINFS_CM_DATA_MAX +
					   TWINFS_REC_FIXED);
}

u32 twinfs_rec_parts(const struct twinfs_rec_desc *d)
{
	if (d->op == TWINFS_CM_OP_WRITE)
		return DIV_ROUND_UP(d->len, TWINFS_CM_DATA_MAX);
	return 1;
}

u32 twinfs_rec_part_max(const struct twinfs_rec_desc *d, u32 part)
{
	u32 len = TWINFS_REC_FIXED;

	if (d->op == TWINFS_CM_OP_WRITE)
		len += min_t(u32, d->len - part * TWINFS_CM_DATA_MAX,
			     TWINFS_CM_DATA_MAX);
	if (d->name)
		len += d->name->len;
	if (d->new_name)
		len += d->new_name->len;
	if (d->symlink)
		len += strlen(d->symlink);
	return twinfs_cm_rec_size(len);
}

static void twinfs_rec_time(struct twinfs_cm_builder *b, u16 type,
			    const struct timespec64 *t)
{
	twinfs_cm_put_time(b, type, t->tv_sec, (u32)t->tv_nsec);
}

static void twinfs_rec_name(struct twinfs_cm_builder *b, u16 type,
			    const struct qstr *q)
{
	twinfs_cm_put_bytes(b, type, q->name, q->len);
}

/* The attributes a new inode was made with. */
static void twinfs_rec_new_inode(struct twinfs_cm_builder *b,
				 const struct twinfs_rec_desc *d)
{
	struct inode *inode = d->inode;

	twinfs_cm_put_u64(b, TWINFS_CM_A_PARENT_INO, d->dir->i_ino);
	twinfs_rec_name(b, TWINFS_CM_A_NAME, d->name);
	twinfs_cm_put_u64(b, TWINFS_CM_A_INO, inode->i_ino);
	twinfs_cm_put_u32(b, TWINFS_CM_A_MODE, inode->i_mode);
	twinfs_cm_put_u32(b, TWINFS_CM_A_UID, i_uid_read(inode));
	twinfs_cm_put_u32(b, TWINFS_CM_A_GID, i_gid_read(inode));
	twinfs_cm_put_u32(b, TWINFS_CM_A_GENERATION, inode->i_generation);
	twinfs_rec_time(b, TWINFS_CM_A_CTIME, &inode->i_ctime);
	if (d->op == TWINFS_CM_OP_MKNOD)
		twinfs_cm_put_u32(b, TWINFS_CM_A_RDEV,
				  new_encode_dev(inode->i_rdev));
	if (d->op == TWINFS_CM_OP_SYMLINK)
		twinfs_cm_put_bytes(b, TWINFS_CM_A_SYMLINK_TARGET, d->symlink,
				    strlen(d->symlink));
}

static void twinfs_rec_setattr(struct twinfs_cm_builder *b,
			       const struct twinfs_rec_desc *d)
{
	struct inode *inode = d->inode;
	unsigned int v = d->ia_valid;

	twinfs_cm_put_u64(b, TWINFS_CM_A_INO, inode->i_ino);
	twinfs_rec_time(b, TWINFS_CM_A_CTIME, &inode->i_ctime);
	if (v & ATTR_MODE)
		twinfs_cm_put_u32(b, TWINFS_CM_A_MODE,
				  inode->i_mode & ~S_IFMT);
	if (v & ATTR_UID)
		twinfs_cm_put_u32(b, TWINFS_CM_A_UID, i_uid_read(inode));
	if (v & ATTR_GID)
		twinfs_cm_put_u32(b, TWINFS_CM_A_GID, i_gid_read(inode));
	if (v & ATTR_ATIME)
		twinfs_rec_time(b, TWINFS_CM_A_ATIME, &inode->i_atime);
	if (v & ATTR_MTIME)
		twinfs_rec_time(b, TWINFS_CM_A_MTIME, &inode->i_mtime);
}

/* Copies [pos, pos + len) of the file from the page cache. */
static int twinfs_rec_data(struct twinfs_cm_builder *b, struct inode *inode,
			   loff_t pos, u32 len)
{
	u8 *dst = twinfs_cm_put_space(b, TWINFS_CM_A_DATA, len);

	if (!dst)
		return b->err;
	while (len) {
		u32 off = offset_in_page(pos);
		u32 n = min_t(u32, len, PAGE_SIZE - off);
		struct page *page;
		void *src;

		page = read_mapping_page(inode->i_mapping, pos >> PAGE_SHIFT,
					 NULL);
		if (IS_ERR(page))
			return PTR_ERR(page);
		src = kmap_local_page(page);
		memcpy(dst, src + off, n);
		kunmap_local(src);
		put_page(page);
		dst += n;
		pos += n;
		len -= n;
	}
	return 0;
}

int twinfs_rec_encode(struct twinfs_cm_builder *b,
		      const struct twinfs_rec_desc *d, u32 part)
{
	loff_t pos;
	u32 len;

	switch (d->op) {
	case TWINFS_CM_OP_CREATE:
	case TWINFS_CM_OP_MKNOD:
	case TWINFS_CM_OP_MKDIR:
	case TWINFS_CM_OP_SYMLINK:
		twinfs_rec_new_inode(b, d);
		break;
	case TWINFS_CM_OP_LINK:
	case TWINFS_CM_OP_UNLINK:
	case TWINFS_CM_OP_RMDIR:
		twinfs_cm_put_u64(b, TWINFS_CM_A_PARENT_INO, d->dir->i_ino);
		twinfs_rec_name(b, TWINFS_CM_A_NAME, d->name);
		twinfs_cm_put_u64(b, TWINFS_CM_A_INO, d->inode->i_ino);
		twinfs_rec_time(b, TWINFS_CM_A_CTIME, &d->dir->i_ctime);
		break;
	case TWINFS_CM_OP_RENAME:
		twinfs_cm_put_u64(b, TWINFS_CM_A_PARENT_INO, d->dir->i_ino);
		twinfs_rec_name(b, TWINFS_CM_A_NAME, d->name);
		twinfs_cm_put_u64(b, TWINFS_CM_A_INO, d->inode->i_ino);
		twinfs_cm_put_u64(b, TWINFS_CM_A_NEW_PARENT_INO,
				  d->new_dir->i_ino);
		twinfs_rec_name(b, TWINFS_CM_A_NEW_NAME, d->new_name);
		if (d->target)
			twinfs_cm_put_u64(b, TWINFS_CM_A_TARGET_INO,
					  d->target->i_ino);
		if (d->flags)
			twinfs_cm_put_u32(b, TWINFS_CM_A_FLAGS, d->flags);
		twinfs_rec_time(b, TWINFS_CM_A_CTIME, &d->new_dir->i_ctime);
		break;
	case TWINFS_CM_OP_SETATTR:
		twinfs_rec_setattr(b, d);
		break;
	case TWINFS_CM_OP_TRUNCATE:
		twinfs_cm_put_u64(b, TWINFS_CM_A_INO, d->inode->i_ino);
		twinfs_cm_put_u64(b, TWINFS_CM_A_SIZE, i_size_read(d->inode));
		twinfs_rec_time(b, TWINFS_CM_A_CTIME, &d->inode->i_ctime);
		break;
	case TWINFS_CM_OP_WRITE:
		pos = d->pos + (loff_t)part * TWINFS_CM_DATA_MAX;
		len = min_t(u32, d->len - part * TWINFS_CM_DATA_MAX,
			    TWINFS_CM_DATA_MAX);
		twinfs_cm_put_u64(b, TWINFS_CM_A_INO, d->inode->i_ino);
		twinfs_cm_put_u64(b, TWINFS_CM_A_OFFSET, pos);
		twinfs_rec_time(b, TWINFS_CM_A_CTIME, &d->inode->i_ctime);
		if (twinfs_rec_data(b, d->inode, pos, len))
			return -EIO;
		break;
	default:
		return -EINVAL;
	}
	return b->err;
}
