// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: consistency points (seed 001: the change memory is written to
 * the storage medium, then its copy is deleted; seed 004: output to the
 * disk is delayed without delaying answers).
 *
 * Metadata buffers are never marked dirty for the block device: a change
 * puts the buffer (pinned) in the current set instead, so nothing reaches
 * the disk between consistency points.  A consistency point:
 *
 *   1. takes the freeze lock exclusively (no operation runs, so the
 *      metadata is exactly the result of every record up to seq S), swaps
 *      the set and copies its buffers; lets operations go on;
 *   2. writes file data back (every write up to S is then on disk; blocks
 *      freed after S stay busy, so data never lands on a block the disk
 *      still gives to someone else);
 *   3. writes the copies to the journal, then the header "committed, S"
 *      (preflush + FUA), then the copies home, then the header "S, empty";
 *   4. trims the change memory up to S and frees the busy blocks of 1.
 *
 * A crash before the committed header leaves the disk at the previous
 * point; after it, mount writes the journal home again.  Either way the
 * disk holds exactly the records up to its c_cp_seq.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/pagemap.h>
#include <linux/percpu-rwsem.h>
#include <linux/sched/mm.h>
#include <linux/workqueue.h>
#include "cm.h"
#include "op.h"
#include "genl.h"

enum { BH_Twinfs_Changed = BH_PrivateStart + 1 };
BUFFER_FNS(Twinfs_Changed, twinfs_changed)
TAS_BUFFER_FNS(Twinfs_Changed, twinfs_changed)

struct twinfs_cp_set {
	struct buffer_head **bhs;
	u32 count;
};

struct twinfs_cp {
	struct super_block *sb;
	struct percpu_rw_semaphore freeze;
	struct mutex mutex;		/* one consistency point at a time */
	spinlock_t lock;		/* cur and its set */
	struct twinfs_cp_set sets[2];
	struct twinfs_cp_set *cur;
	u32 cap;			/* blocks one point can journal */
	bool overflowed;
	u64 area;			/* first block of the node's area */
	u32 area_blocks;
	struct twinfs_cp_header hdr;	/* as last written */
	struct page *hdr_page;
	u64 cp_seq;
	u32 gen;			/* busy generation; freeze lock */
	struct workqueue_struct *wq;
	struct delayed_work work;
	unsigned long interval;		/* jiffies */
	bool running;
	wait_queue_head_t room_wq;	/* operations waiting for a point */
	/* mount: a committed journal to write home */
	struct page **jpages;
	u64 *jhome;
	u32 jcount;
};

static struct twinfs_cp *CP(struct super_block *sb)
{
	return TWINFS_SB(sb)->cp;
}

/* ---- block I/O from pages, bypassing the buffer cache ---- */

struct twinfs_io {
	atomic_t pending;
	struct completion done;
	int err;
};

static void twinfs_io_end(struct bio *bio)
{
	struct twinfs_io *io = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(io->err, -EIO);
	bio_put(bio);
	if (atomic_dec_and_test(&io->pending))
		complete(&io->done);
}

static void twinfs_io_init(struct twinfs_io *io)
{
	atomic_set(&io->pending, 1);
	init_completion(&io->done);
	io->err = 0;
}

static void twinfs_io_add(struct super_block *sb, struct twinfs_io *io,
			  blk_opf_t opf, u64 blk, struct page *page)
{
	struct bio *bio = bio_alloc(sb->s_bdev, 1, opf, GFP_NOFS);

	bio->bi_iter.bi_sector = blk << (TWINFS_BLOCK_SHIFT - SECTOR_SHIFT);
	__bio_add_page(bio, page, TWINFS_BLOCK_SIZE, 0);
	bio->bi_private = io;
	bio->bi_end_io = twinfs_io_end;
	atomic_inc(&io->pending);
	submit_bio(bio);
}

static int twinfs_io_wait(struct twinfs_io *io)
{
	if (!atomic_dec_and_test(&io->pending))
		wait_for_completion_io(&io->done);
	return io->err;
}

static int twinfs_io_one(struct super_block *sb, blk_opf_t opf, u64 blk,
			 struct page *page)
{
	struct twinfs_io io;

	twinfs_io_init(&io);
	twinfs_io_add(sb, &io, opf, blk, page);
	return twinfs_io_wait(&io);
}

/* ---- the header ---- */

static int twinfs_cp_write_header(struct twinfs_cp *cp)
{
	u32 copy;
	int err;

	le64_add_cpu(&cp->hdr.c_update, 1);
	twinfs_csum_set(&cp->hdr, sizeof(cp->hdr),
			offsetof(struct twinfs_cp_header, c_checksum));
	copy = le64_to_cpu(cp->hdr.c_update) % 2;
	memcpy(page_address(cp->hdr_page), &cp->hdr, sizeof(cp->hdr));
	err = twinfs_io_one(cp->sb, REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH |
			    REQ_FUA, cp->area + copy, cp->hdr_page);
	if (err)
		twinfs_err(cp->sb, "consistency point: cannot write the header: %d",
			   err);
	return err;
}

static bool twinfs_cp_header_ok(struct super_block *sb,
				const struct twinfs_cp_header *h, u32 node)
{
	return le32_to_cpu(h->c_magic) == TWINFS_CP_MAGIC &&
	       twinfs_csum_ok(h, sizeof(*h),
			      offsetof(struct twinfs_cp_header, c_checksum)) &&
	       le32_to_cpu(h->c_version) == TWINFS_FORMAT_VERSION &&
	       !memcmp(h->c_uuid, sb->s_uuid.b, sizeof(h->c_uuid)) &&
	       le32_to_cpu(h->c_node_id) == node;
}

int twinfs_cp_init(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_cp *cp;
	u32 i;
	int err;

	cp = kzalloc(sizeof(*cp), GFP_KERNEL);
	if (!cp)
		return -ENOMEM;
	cp->sb = sb;
	sbi->cp = cp;
	mutex_init(&cp->mutex);
	spin_lock_init(&cp->lock);
	init_waitqueue_head(&cp->room_wq);
	INIT_DELAYED_WORK(&cp->work, NULL);
	cp->area_blocks = sbi->geo.node_area_blocks;
	cp->area = sbi->geo.node_area_start +
		   (u64)sbi->opts.node * cp->area_blocks;
	/* n images need n + ceil(n / per) blocks after the two headers. */
	cp->cap = (u32)(((u64)(cp->area_blocks - TWINFS_CP_HDR_BLOCKS) *
			 TWINFS_CP_JENTS_PER_BLOCK) /
			(TWINFS_CP_JENTS_PER_BLOCK + 1));
	cp->interval = msecs_to_jiffies(sbi->opts.cp_interval_ms);
	err = percpu_init_rwsem(&cp->freeze);
	if (err)
		goto out_free;
	err = -ENOMEM;
	cp->hdr_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!cp->hdr_page)
		goto out_rwsem;
	for (i = 0; i < 2; i++) {
		cp->sets[i].bhs = kvmalloc_array(cp->cap, sizeof(void *),
						 GFP_KERNEL);
		if (!cp->sets[i].bhs)
			goto out_sets;
	}
	cp->cur = &cp->sets[0];
	cp->wq = alloc_workqueue("twinfs-cp/%s", WQ_MEM_RECLAIM | WQ_UNBOUND,
				 1, sb->s_id);
	if (!cp->wq)
		goto out_sets;
	return 0;

out_sets:
	kvfree(cp->sets[0].bhs);
	kvfree(cp->sets[1].bhs);
	__free_page(cp->hdr_page);
out_rwsem:
	percpu_free_rwsem(&cp->freeze);
out_free:
	kfree(cp);
	sbi->cp = NULL;
	return err;
}

static void twinfs_cp_free_journal(struct twinfs_cp *cp)
{
	u32 i;

	for (i = 0; i < cp->jcount; i++)
		if (cp->jpages[i])
			__free_page(cp->jpages[i]);
	kvfree(cp->jpages);
	kvfree(cp->jhome);
	cp->jpages = NULL;
	cp->jhome = NULL;
	cp->jcount = 0;
}

/* Drops every change not yet written (failed mount, or after umount's
 * last point, when the set is empty). */
static void twinfs_cp_drop_set(struct twinfs_cp_set *set)
{
	u32 i;

	for (i = 0; i < set->count; i++) {
		clear_buffer_twinfs_changed(set->bhs[i]);
		brelse(set->bhs[i]);
	}
	set->count = 0;
}

void twinfs_cp_destroy(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	if (!cp)
		return;
	twinfs_cp_drop_set(&cp->sets[0]);
	twinfs_cp_drop_set(&cp->sets[1]);
	twinfs_cp_free_journal(cp);
	destroy_workqueue(cp->wq);
	kvfree(cp->sets[0].bhs);
	kvfree(cp->sets[1].bhs);
	__free_page(cp->hdr_page);
	percpu_free_rwsem(&cp->freeze);
	kfree(cp);
	TWINFS_SB(sb)->cp = NULL;
}

/* ---- mount ---- */

static struct page *twinfs_cp_read(struct super_block *sb, u64 blk, int *err)
{
	struct page *page = alloc_page(GFP_KERNEL);

	if (!page) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = twinfs_io_one(sb, REQ_OP_READ, blk, page);
	if (*err) {
		twinfs_err(sb, "consistency point: cannot read block %llu: %d",
			   blk, *err);
		__free_page(page);
		return NULL;
	}
	return page;
}

static bool twinfs_cp_home_ok(struct super_block *sb, u64 blk)
{
	const struct twinfs_geometry *g = &TWINFS_SB(sb)->geo;

	return blk >= g->first_ag_block && blk < g->blocks;
}

/* Reads and verifies the committed journal; keeps the images. */
static int twinfs_cp_load_journal(struct twinfs_cp *cp)
{
	struct super_block *sb = cp->sb;
	u32 n = le32_to_cpu(cp->hdr.c_jblocks);
	u32 nd = le32_to_cpu(cp->hdr.c_jdesc_blocks);
	u32 crc = ~0u, i;
	struct page *page;
	int err = 0;

	if (nd != DIV_ROUND_UP(n, TWINFS_CP_JENTS_PER_BLOCK) || n > cp->cap) {
		twinfs_err(sb, "consistency point: journal of %u blocks with %u descriptor blocks does not fit the node area",
			   n, nd);
		return -EUCLEAN;
	}
	cp->jpages = kvcalloc(n, sizeof(*cp->jpages), GFP_KERNEL);
	cp->jhome = kvcalloc(n, sizeof(*cp->jhome), GFP_KERNEL);
	if (!cp->jpages || !cp->jhome)
		return -ENOMEM;
	cp->jcount = n;
	for (i = 0; i < nd && !err; i++) {
		const struct twinfs_cp_jent *je;
		u32 j;

		page = twinfs_cp_read(sb, cp->area + TWINFS_CP_HDR_BLOCKS + i,
				      &err);
		if (!page)
			break;
		je = page_address(page);
		crc = twinfs_crc32c(crc, je, TWINFS_BLOCK_SIZE);
		for (j = 0; j < TWINFS_CP_JENTS_PER_BLOCK; j++) {
			u32 k = i * TWINFS_CP_JENTS_PER_BLOCK + j;

			if (k >= n)
				break;
			cp->jhome[k] = le64_to_cpu(je[j].j_home);
			if (!twinfs_cp_home_ok(sb, cp->jhome[k]))
				err = -EUCLEAN;
		}
		__free_page(page);
	}
	if (!err && ~crc != le32_to_cpu(cp->hdr.c_jdesc_crc))
		err = -EUCLEAN;
	for (i = 0; i < n && !err; i++) {
		cp->jpages[i] = twinfs_cp_read(sb, cp->area +
					       TWINFS_CP_HDR_BLOCKS + nd + i,
					       &err);
	}
	if (err == -EUCLEAN)
		twinfs_err(sb, "consistency point: the committed journal is corrupt; refusing to mount");
	return err;
}

int twinfs_cp_load(struct super_block *sb, u64 *cp_seq)
{
	struct twinfs_cp *cp = CP(sb);
	u32 node = TWINFS_SB(sb)->opts.node;
	struct twinfs_cp_header *h[2];
	struct page *pg[2];
	int err = 0, best = -1, i;
	bool zero = true;

	for (i = 0; i < 2; i++) {
		pg[i] = twinfs_cp_read(sb, cp->area + i, &err);
		if (!pg[i]) {
			if (i)
				__free_page(pg[0]);
			return err;
		}
		h[i] = page_address(pg[i]);
		if (memchr_inv(h[i], 0, TWINFS_BLOCK_SIZE))
			zero = false;
		if (!twinfs_cp_header_ok(sb, h[i], node))
			continue;
		if (best < 0 || le64_to_cpu(h[i]->c_update) >
				le64_to_cpu(h[best]->c_update))
			best = i;
	}
	if (best >= 0) {
		memcpy(&cp->hdr, h[best], sizeof(cp->hdr));
	} else if (zero) {
		/* Never mounted: the point of mkfs, seq 0. */
		memset(&cp->hdr, 0, sizeof(cp->hdr));
		cp->hdr.c_magic = cpu_to_le32(TWINFS_CP_MAGIC);
		cp->hdr.c_version = cpu_to_le32(TWINFS_FORMAT_VERSION);
		memcpy(cp->hdr.c_uuid, sb->s_uuid.b, sizeof(cp->hdr.c_uuid));
		cp->hdr.c_node_id = cpu_to_le32(node);
		cp->hdr.c_update = cpu_to_le64(1);	/* next write: copy 0 */
	} else {
		twinfs_err(sb, "consistency point header of node %u is corrupt; refusing to mount",
			   node);
		err = -EUCLEAN;
	}
	__free_page(pg[0]);
	__free_page(pg[1]);
	if (err)
		return err;
	cp->cp_seq = le64_to_cpu(cp->hdr.c_cp_seq);
	if (le32_to_cpu(cp->hdr.c_jstate) == TWINFS_CP_JOURNAL_COMMITTED) {
		err = twinfs_cp_load_journal(cp);
		if (err)
			return err;
		*cp_seq = le64_to_cpu(cp->hdr.c_jseq);
	} else {
		*cp_seq = cp->cp_seq;
	}
	return 0;
}

int twinfs_cp_recover(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);
	struct twinfs_io io;
	u32 i;
	int err;

	if (!cp->jcount &&
	    le32_to_cpu(cp->hdr.c_jstate) != TWINFS_CP_JOURNAL_COMMITTED)
		return 0;
	twinfs_io_init(&io);
	for (i = 0; i < cp->jcount; i++)
		twinfs_io_add(sb, &io, REQ_OP_WRITE, cp->jhome[i],
			      cp->jpages[i]);
	err = twinfs_io_wait(&io);
	if (err) {
		twinfs_err(sb, "consistency point: cannot write the journal home: %d",
			   err);
		return err;
	}
	/* Cached copies of those blocks are older than the journal. */
	invalidate_bdev(sb->s_bdev);
	cp->cp_seq = le64_to_cpu(cp->hdr.c_jseq);
	cp->hdr.c_cp_seq = cpu_to_le64(cp->cp_seq);
	cp->hdr.c_jstate = cpu_to_le32(TWINFS_CP_JOURNAL_EMPTY);
	err = twinfs_cp_write_header(cp);
	if (!err)
		twinfs_info(sb, "wrote the journal of consistency point %llu home (%u blocks)",
			    cp->cp_seq, cp->jcount);
	twinfs_cp_free_journal(cp);
	return err;
}

/* ---- changed metadata ---- */

void twinfs_meta_dirty(struct super_block *sb, struct buffer_head *bh)
{
	struct twinfs_cp *cp = CP(sb);
	bool kick = false;

	if (buffer_twinfs_changed(bh))
		return;
	spin_lock(&cp->lock);
	if (!test_set_buffer_twinfs_changed(bh)) {
		if (cp->cur->count < cp->cap) {
			get_bh(bh);
			cp->cur->bhs[cp->cur->count++] = bh;
			kick = cp->cur->count == cp->cap / 2;
		} else {
			/* Cannot happen while operations are throttled; if
			 * it does, the block goes out in place, outside the
			 * atomic point. */
			clear_buffer_twinfs_changed(bh);
			mark_buffer_dirty(bh);
			if (!cp->overflowed)
				twinfs_err(sb, "consistency point: more than %u changed blocks; writing in place",
					   cp->cap);
			cp->overflowed = true;
		}
	}
	spin_unlock(&cp->lock);
	if (kick)
		twinfs_cp_kick(sb);
}

void twinfs_cp_enter(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	/* Wait until the next point fits its journal (not in a replay,
	 * which takes its points itself). */
	while (READ_ONCE(cp->cur->count) >= cp->cap * 3 / 4 &&
	       READ_ONCE(cp->running)) {
		twinfs_cp_kick(sb);
		wait_event_timeout(cp->room_wq,
				   READ_ONCE(cp->cur->count) < cp->cap * 3 / 4,
				   HZ);
	}
	percpu_down_read(&cp->freeze);
}

void twinfs_cp_hold(struct super_block *sb)
{
	percpu_down_read(&CP(sb)->freeze);
}

bool twinfs_cp_wants_run(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	return READ_ONCE(cp->cur->count) >= cp->cap / 2;
}

void twinfs_cp_leave(struct super_block *sb)
{
	percpu_up_read(&CP(sb)->freeze);
}

u32 twinfs_cp_gen(struct super_block *sb)
{
	return READ_ONCE(CP(sb)->gen);
}

u64 twinfs_cp_seq(struct super_block *sb)
{
	return READ_ONCE(CP(sb)->cp_seq);
}

u64 twinfs_cp_count(struct super_block *sb)
{
	return le64_to_cpu(READ_ONCE(CP(sb)->hdr.c_cp_count));
}

u32 twinfs_cp_dirty(struct super_block *sb)
{
	return READ_ONCE(CP(sb)->cur->count);
}

/* ---- the point itself ---- */

/* Writes back and waits on the data of every inode. */
static void twinfs_cp_write_data(struct super_block *sb)
{
	struct inode *inode, *put = NULL;

	spin_lock(&sb->s_inode_list_lock);
	list_for_each_entry(inode, &sb->s_inodes, i_sb_list) {
		struct address_space *m = inode->i_mapping;

		spin_lock(&inode->i_lock);
		if ((inode->i_state & (I_FREEING | I_WILL_FREE | I_NEW)) ||
		    (!mapping_tagged(m, PAGECACHE_TAG_DIRTY) &&
		     !mapping_tagged(m, PAGECACHE_TAG_WRITEBACK))) {
			spin_unlock(&inode->i_lock);
			continue;
		}
		__iget(inode);
		spin_unlock(&inode->i_lock);
		spin_unlock(&sb->s_inode_list_lock);
		filemap_write_and_wait(m);
		iput(put);
		put = inode;
		cond_resched();
		spin_lock(&sb->s_inode_list_lock);
	}
	spin_unlock(&sb->s_inode_list_lock);
	iput(put);
}

struct twinfs_cp_snap {
	struct twinfs_cp_set *set;
	struct page **pages;
	u64 seq;
	u32 gen;
};

/* Step 1: under the freeze lock, the metadata of every record <= seq. */
static int twinfs_cp_snapshot(struct twinfs_cp *cp, struct twinfs_cp_snap *s)
{
	struct super_block *sb = cp->sb;
	u32 i;

	percpu_down_write(&cp->freeze);
	spin_lock(&cp->lock);
	s->set = cp->cur;
	cp->cur = &cp->sets[cp->cur == &cp->sets[0]];
	spin_unlock(&cp->lock);
	s->seq = twinfs_cm_last_seq(sb);
	s->gen = cp->gen++;
	s->pages = kvcalloc(max_t(u32, s->set->count, 1), sizeof(*s->pages),
			    GFP_NOFS | __GFP_NOFAIL);
	for (i = 0; i < s->set->count; i++) {
		struct buffer_head *bh = s->set->bhs[i];

		s->pages[i] = alloc_page(GFP_NOFS | __GFP_NOFAIL);
		lock_buffer(bh);
		memcpy(page_address(s->pages[i]), bh->b_data,
		       TWINFS_BLOCK_SIZE);
		clear_buffer_twinfs_changed(bh);
		unlock_buffer(bh);
	}
	percpu_up_write(&cp->freeze);
	wake_up_all(&cp->room_wq);
	return 0;
}

/* Step 3: journal, commit, home. */
static int twinfs_cp_write_meta(struct twinfs_cp *cp, struct twinfs_cp_snap *s)
{
	struct super_block *sb = cp->sb;
	u32 n = s->set->count, nd = DIV_ROUND_UP(n, TWINFS_CP_JENTS_PER_BLOCK);
	struct page **desc;
	struct twinfs_io io;
	u32 crc = ~0u, i;
	int err;

	desc = kvcalloc(max_t(u32, nd, 1), sizeof(*desc),
			GFP_NOFS | __GFP_NOFAIL);
	for (i = 0; i < nd; i++)
		desc[i] = alloc_page(GFP_NOFS | __GFP_NOFAIL | __GFP_ZERO);
	for (i = 0; i < n; i++) {
		struct twinfs_cp_jent *je = page_address(desc[i /
						TWINFS_CP_JENTS_PER_BLOCK]);

		je += i % TWINFS_CP_JENTS_PER_BLOCK;
		je->j_home = cpu_to_le64(s->set->bhs[i]->b_blocknr);
		je->j_crc = cpu_to_le32(~twinfs_crc32c(~0u,
				page_address(s->pages[i]), TWINFS_BLOCK_SIZE));
	}
	twinfs_io_init(&io);
	for (i = 0; i < nd; i++) {
		crc = twinfs_crc32c(crc, page_address(desc[i]),
				    TWINFS_BLOCK_SIZE);
		twinfs_io_add(sb, &io, REQ_OP_WRITE,
			      cp->area + TWINFS_CP_HDR_BLOCKS + i, desc[i]);
	}
	for (i = 0; i < n; i++)
		twinfs_io_add(sb, &io, REQ_OP_WRITE,
			      cp->area + TWINFS_CP_HDR_BLOCKS + nd + i,
			      s->pages[i]);
	err = twinfs_io_wait(&io);
	if (err)
		goto out;
	cp->hdr.c_jstate = cpu_to_le32(TWINFS_CP_JOURNAL_COMMITTED);
	cp->hdr.c_jseq = cpu_to_le64(s->seq);
	cp->hdr.c_jblocks = cpu_to_le32(n);
	cp->hdr.c_jdesc_blocks = cpu_to_le32(nd);
	cp->hdr.c_jdesc_crc = cpu_to_le32(~crc);
	err = twinfs_cp_write_header(cp);
	if (err)
		goto out;
	twinfs_io_init(&io);
	for (i = 0; i < n; i++)
		twinfs_io_add(sb, &io, REQ_OP_WRITE, s->set->bhs[i]->b_blocknr,
			      s->pages[i]);
	err = twinfs_io_wait(&io);
out:
	for (i = 0; i < nd; i++)
		__free_page(desc[i]);
	kvfree(desc);
	if (err)
		twinfs_err(sb, "consistency point %llu: write failed: %d",
			   s->seq, err);
	return err;
}

static void twinfs_cp_release(struct twinfs_cp *cp, struct twinfs_cp_snap *s,
			      int err)
{
	u32 i;

	for (i = 0; i < s->set->count; i++) {
		if (err)	/* try again in the next point */
			twinfs_meta_dirty(cp->sb, s->set->bhs[i]);
		brelse(s->set->bhs[i]);
		__free_page(s->pages[i]);
	}
	s->set->count = 0;
	kvfree(s->pages);
}

int twinfs_cp_run(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);
	struct twinfs_cp_snap s;
	int err;

	if (sb_rdonly(sb))
		return 0;
	mutex_lock(&cp->mutex);
	twinfs_cp_snapshot(cp, &s);
	if (!s.set->count && s.seq == cp->cp_seq) {
		twinfs_cp_release(cp, &s, 0);
		twinfs_busy_release(sb, s.gen);
		mutex_unlock(&cp->mutex);
		return 0;
	}
	twinfs_cp_write_data(sb);
	err = s.set->count ? twinfs_cp_write_meta(cp, &s) : 0;
	if (!err) {
		cp->hdr.c_jstate = cpu_to_le32(TWINFS_CP_JOURNAL_EMPTY);
		cp->hdr.c_jblocks = 0;
		cp->hdr.c_jdesc_blocks = 0;
		cp->hdr.c_jdesc_crc = 0;
		cp->hdr.c_cp_seq = cpu_to_le64(s.seq);
		le64_add_cpu(&cp->hdr.c_cp_count, 1);
		err = twinfs_cp_write_header(cp);
	}
	if (!err) {
		WRITE_ONCE(cp->cp_seq, s.seq);
		twinfs_busy_release(sb, s.gen);
		err = twinfs_cm_trim(sb, s.seq);
	}
	twinfs_cp_release(cp, &s, err);
	mutex_unlock(&cp->mutex);
	if (!err)
		twinfs_genl_notify_cp_done(sb, READ_ONCE(cp->cp_seq));
	return err;
}

static void twinfs_cp_worker(struct work_struct *work)
{
	struct twinfs_cp *cp = container_of(to_delayed_work(work),
					    struct twinfs_cp, work);

	twinfs_cp_run(cp->sb);
	if (READ_ONCE(cp->running))
		queue_delayed_work(cp->wq, &cp->work, cp->interval);
}

void twinfs_cp_kick(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	if (READ_ONCE(cp->running))
		mod_delayed_work(cp->wq, &cp->work, 0);
}

void twinfs_cp_start(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	if (READ_ONCE(cp->running))
		return;

	INIT_DELAYED_WORK(&cp->work, twinfs_cp_worker);
	WRITE_ONCE(cp->running, true);
	queue_delayed_work(cp->wq, &cp->work, cp->interval);
}

void twinfs_cp_stop(struct super_block *sb)
{
	struct twinfs_cp *cp = CP(sb);

	if (!cp || !READ_ONCE(cp->running))
		return;
	WRITE_ONCE(cp->running, false);
	cancel_delayed_work_sync(&cp->work);
}
