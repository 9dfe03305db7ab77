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
 * A buffered write is a series of operations of at most TWINFS_WRITE_OP_MAX
 * bytes each (so one write never needs more change memory than a point can
 * free).  A failure before any byte of an operation is written, or at its
 * commit point, rolls back the size, times and every block it mapped, and
 * drops its pages beyond the old size.  Each operation's records carry its
 * bytes, read back from the page cache.  (Bytes overwritten inside the old
 * size are data, not metadata: the undo log does not hold them; data
 * journaling will.)
 */
static ssize_t twinfs_write_op(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	size_t count = iov_iter_count(from);
	size_t chunk = min_t(size_t, count, TWINFS_WRITE_OP_MAX);
	loff_t old_size = i_size_read(inode), old_pos = iocb->ki_pos;
	struct twinfs_rec_desc *d;
	struct twinfs_op op;
	ssize_t ret = 0;
	int err;

	iov_iter_truncate(from, chunk);
	twinfs_op_begin_credit(&op, inode->i_sb, "write",
			       twinfs_rec_write_credit(chunk));
	err = twinfs_op_inode(inode);
	twinfs_cp_data_dirtied(inode);
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
	if (!err && ret > 0) {
		d = twinfs_op_rec(&op, TWINFS_CM_OP_WRITE);
		d->inode = inode;
		d->pos = iocb->ki_pos - ret;
		d->len = ret;
	}
	err = twinfs_op_end(&op, err);
	iov_iter_reexpand(from, count - (chunk - iov_iter_count(from)));
	if (err) {
		truncate_pagecache(inode, old_size);
		iocb->ki_pos = old_pos;
		return err;
	}
	return ret;
}

static ssize_t twinfs_file_write_iter(struct kiocb *iocb,
				      struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret, done = 0;
	size_t want;

	inode_lock(inode);
	ret = generic_write_checks(iocb, from);
	while (ret > 0 && iov_iter_count(from)) {
		want = min_t(size_t, iov_iter_count(from), TWINFS_WRITE_OP_MAX);
		ret = twinfs_write_op(iocb, from);
		if (ret > 0)
			done += ret;
		if (ret < (ssize_t)want)
			break;
	}
	inode_unlock(inode);
	if (done)
		ret = generic_write_sync(iocb, done);
	return ret;
}

/*
 * Every operation returned with its records durable, so fsync has nothing
 * to write, except what the records do not hold: bytes written through
 * mmap (a consistency point takes them), and everything when the change
 * memory is volatile.  The inode's last record is waited for: the thread
 * that appended it may not have returned yet.
 */
int twinfs_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct inode *inode = file->f_mapping->host;
	struct super_block *sb = inode->i_sb;
	int err = 0, err2;

	if (xchg(&TWINFS_I(inode)->mmap_dirty, false) ||
	    twinfs_cm_volatile(sb))
		err = twinfs_cp_run(sb);
	else
		twinfs_cm_sync_inode(inode);
	err2 = file_check_and_advance_wb_err(file);
	return err ?: err2;
}

/* Blocks under a page written through mmap are allocated here, as an
 * operation without a record: the page's bytes reach the disk in the next
 * consistency point (or at fsync/msync, which runs one). */
static vm_fault_t twinfs_page_mkwrite(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	struct super_block *sb = inode->i_sb;
	struct twinfs_op op;
	int err;

	sb_start_pagefault(sb);
	file_update_time(vmf->vma->vm_file);
	filemap_invalidate_lock_shared(inode->i_mapping);
	twinfs_op_begin_credit(&op, sb, "mmap", 0);
	twinfs_cp_data_dirtied(inode);
	err = twinfs_op_inode(inode) ?:
	      block_page_mkwrite(vmf->vma, vmf, twinfs_get_block);
	/* On success the page stays locked: nothing may fail after this. */
	err = twinfs_op_end(&op, err > 0 ? 0 : err);
	if (!err)
		WRITE_ONCE(TWINFS_I(inode)->mmap_dirty, true);
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(sb);
	return block_page_mkwrite_return(err);
}

static const struct vm_operations_struct twinfs_file_vm_ops = {
	.fault		= filemap_fault,
	.map_pages	= filemap_map_pages,
	.page_mkwrite	= twinfs_page_mkwrite,
};

static int twinfs_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	vma->vm_ops = &twinfs_file_vm_ops;
	return 0;
}

const struct file_operations twinfs_file_operations = {
	.llseek		= generic_file_llseek,
	.read_iter	= generic_file_read_iter,
	.write_iter	= twinfs_file_write_iter,
	.mmap		= twinfs_file_mmap,
	.open		= generic_file_open,
	.fsync		= twinfs_fsync,
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
