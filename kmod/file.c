// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: regular files and symlinks through the page cache, with the
 * kernel's buffer-head helpers mapping pages to disk through get_block.
 */
#include "op.h"
#include "fault.h"
#include <linux/mpage.h>
#include <linux/uio.h>

static int twinfs_read_folio(struct file *file, struct folio *folio)
{
	return block_read_full_folio(folio, twinfs_get_block);
}

static void twinfs_readahead(struct readahead_control *rac)
{
	mpage_readahead(rac, twinfs_get_block);
}

static int twinfs_writepage(struct page *page, struct writeback_control *wbc)
{
	return block_write_full_page(page, twinfs_get_block, wbc);
}

static int twinfs_writepages(struct address_space *mapping,
			     struct writeback_control *wbc)
{
	return mpage_writepages(mapping, wbc, twinfs_get_block);
}

/*
 * A failed write beyond EOF may have allocated blocks: give them back.  In
 * a write operation the operation does it (twinfs_write_end_op).
 */
static void twinfs_write_failed(struct address_space *mapping, loff_t to)
{
	struct inode *inode = mapping->host;

	if (twinfs_cur_op(inode->i_sb))
		return;
	if (to > inode->i_size) {
		truncate_pagecache(inode, inode->i_size);
		twinfs_truncate_blocks(inode, (u32)((inode->i_size +
				TWINFS_BLOCK_SIZE - 1) >> TWINFS_BLOCK_SHIFT));
	}
}

static int twinfs_write_begin(struct file *file, struct address_space *mapping,
			      loff_t pos, unsigned int len,
			      struct page **pagep, void **fsdata)
{
	int err;

	err = twinfs_fault(mapping->host->i_sb, TWINFS_FAULT_WRITE_BEGIN) ?:
	      block_write_begin(mapping, pos, len, pagep, twinfs_get_block);
	if (err)
		twinfs_write_failed(mapping, pos + len);
	return err;
}

static int twinfs_write_end(struct file *file, struct address_space *mapping,
			    loff_t pos, unsigned int len, unsigned int copied,
			    struct page *page, void *fsdata)
{
	int ret = generic_write_end(file, mapping, pos, len, copied, page,
				    fsdata);

	if (ret < len)
		twinfs_write_failed(mapping, pos + len);
	return ret;
}

static sector_t twinfs_bmap(struct address_space *mapping, sector_t block)
{
	return generic_block_bmap(mapping, block, twinfs_get_block);
}

const struct address_space_operations twinfs_aops = {
	.dirty_folio		= block_dirty_folio,
	.invalidate_folio	= block_invalidate_folio,
	.read_folio		= twinfs_read_folio,
	.readahead		= twinfs_readahead,
	.writepage		= twinfs_writepage,
	.writepages		= twinfs_writepages,
	.write_begin		= twinfs_write_begin,
	.write_end		= twinfs_write_end,
	.bmap			= twinfs_bmap,
	.migrate_folio		= buffer_migrate_folio,
	.is_partially_uptodate	= block_is_partially_uptodate,
	.error_remove_page	= generic_error_remove_page,
};

/*
 * A buffered write is one operation: a failure before any byte is written,
 * or at the commit point, rolls back the size, times and every block it
 * mapped, and drops its pages beyond the old size.  (Bytes overwritten
 * inside the old size are data, not metadata: the undo log does not hold
 * them; data journaling will.)
 */
static ssize_t twinfs_file_write_iter(struct kiocb *iocb,
				      struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	loff_t old_size, old_pos;
	struct twinfs_op op;
	ssize_t ret;
	int err;

	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out_unlock;
	old_size = i_size_read(inode);
	old_pos = iocb->ki_pos;
	twinfs_op_begin(&op, inode->i_sb, "write");
	err = twinfs_op_inode(inode);
	if (!err) {
		/* Privileges, times, the copy and ki_pos, as the VFS does. */
		ret = __generic_file_write_iter(iocb, from);
		if (ret < 0)
			err = ret;
		else if (iov_iter_count(from))
			/* Short write: blocks a failed page mapped beyond the
			 * new size go back. */
			err = twinfs_truncate_blocks(inode,
				(u32)((i_size_read(inode) + TWINFS_BLOCK_SIZE - 1) >>
				      TWINFS_BLOCK_SHIFT));
	}
	err = twinfs_op_end(&op, err);
	if (err) {
		truncate_pagecache(inode, old_size);
		iocb->ki_pos = old_pos;
		ret = err;
	}
out_unlock:
	inode_unlock(inode);
	if (ret > 0)
		ret = generic_write_sync(iocb, ret);
	return ret;
}

const struct file_operations twinfs_file_operations = {
	.llseek		= generic_file_llseek,
	.read_iter	= generic_file_read_iter,
	.write_iter	= twinfs_file_write_iter,
	.mmap		= generic_file_mmap,
	.open		= generic_file_open,
	.fsync		= generic_file_fsync,
	.splice_read	= generic_file_splice_read,
	.splice_write	= iter_file_splice_write,
};

const struct inode_operations twinfs_file_inode_operations = {
	.setattr	= twinfs_setattr,
	.getattr	= twinfs_getattr,
};

const struct inode_operations twinfs_symlink_inode_operations = {
	.get_link	= page_get_link,
	.setattr	= twinfs_setattr,
	.getattr	= twinfs_getattr,
};
