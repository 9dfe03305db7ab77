// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the change memory (seeds 001, 004), the NVRAM region in which
 * every change is recorded before the caller is answered.
 *
 * The region (format in include/twinfs/twinfs_cm.h) lives on a block
 * device given by nvram=, normally a pmem namespace.  twinfs keeps an image
 * of the whole region in memory: records are built in place in the image
 * and the sectors they cover are written with FUA.  On pmem that write is a
 * synchronous memcpy_flushcache inside submit_bio, works in every namespace
 * mode (raw, sector, fsdax) and costs a bio set-up; DAX would save that
 * but needs an fsdax namespace with struct pages.  Without nvram= the image
 * is all there is: a volatile change memory, which a crash loses.
 *
 * Writers pick a lane by thread, take room for their records (credit) when
 * the operation begins, and append under the lane's mutex only: threads of
 * different lanes never share a lock.  A record's seq is taken under its
 * lane's lock, so seqs increase along a lane.  An operation returns only
 * when every seq up to its own is durable (the durable watermark), so a
 * replay that stops at the first missing seq never drops an answered one.
 *
 * Group commit: a record's local write is done under its lane lock, but
 * with a partner its mirror ACK is not waited for there.  The record is in
 * flight (struct twinfs_cm_flight) until both halves are done; the last one
 * moves the watermark.  A user task waits for the watermark on its way back
 * to user space (task_work), after the operation let go of its VFS locks,
 * so operations of many threads on one inode or directory overlap their
 * round trips and the partner ACKs them in batches.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/random.h>
#include <linux/task_work.h>
#include <linux/sched/mm.h>
#include <linux/sysfs.h>
#include <linux/vmalloc.h>
#include <linux/wait_bit.h>
#include "cm.h"
#include "op.h"
#include "mirror.h"

#define TWINFS_CM_VOLATILE_SIZE	(16u << 20)
#define TWINFS_CM_DONE_RING	4096u	/* > records ever in flight */
/* Appends wait while this many records are not durable yet: the ring
 * holds them with room for every appender past the check. */
#define TWINFS_CM_FLIGHT_MAX	(TWINFS_CM_DONE_RING / 2)
#define TWINFS_CM_CP_PERMILLE	500u	/* fill that starts a CP */

struct twinfs_cm_lane {
	struct mutex lock;		/* st, reserved, device writes */
	struct twinfs_cm_lane_state st;
	u32 reserved;			/* credit of operations in flight */
	u32 index;
	u8 *base;			/* the lane in the region image */
};

struct twinfs_cm {
	struct super_block *sb;
	struct block_device *bdev;	/* NULL: volatile */
	char device[64];
	u8 *region;			/* image of the whole region */
	u64 size;
	u32 lane_count;
	u32 lane_size;
	struct twinfs_cm_lane *lanes;
	struct mutex hdr_lock;		/* hdr and its writes */
	struct twinfs_cm_header hdr;
	atomic64_t next_seq;		/* last seq handed out */
	atomic64_t durable;		/* every seq <= this is durable */
	atomic64_t done[TWINFS_CM_DONE_RING];
	wait_queue_head_t space_wq;	/* writers waiting for credit */
	atomic_t trims;			/* trims so far: room came back */
	atomic_t flights;		/* records waiting for their ACK */
	atomic_t waiters;		/* task_work waiters pending */
	u32 flights_max;		/* most records in flight at once */
	atomic64_t deferred;		/* waits done at return to user */
	bool failed;			/* a device write failed */
};

/* A record whose partner ACK may come after its lane lock is let go. */
struct twinfs_cm_flight {
	struct twinfs_mirror_req mr;
	struct twinfs_cm *cm;
	u64 seq;
	atomic_t halves;		/* the local write, the ACK */
};

/* A user task's wait for the watermark at its return to user space. */
struct twinfs_cm_waiter {
	struct callback_head work;
	struct twinfs_cm *cm;
	u64 seq;
};

static struct twinfs_cm *CM(struct super_block *sb)
{
	return TWINFS_SB(sb)->cm;
}

/*
 * Reads or writes len bytes of buf (vmalloc'd) at byte dev_off of bdev,
 * sector aligned, waiting for the I/O.  The change memory and the mirror
 * target both keep their data in vmalloc'd memory.
 */
int twinfs_vmem_io(struct block_device *bdev, blk_opf_t opf, u64 dev_off,
		   u8 *buf, u64 len)
{
	u64 done = 0;
	int err = 0;

	while (done < len && !err) {
		struct bio *bio = bio_alloc(bdev, BIO_MAX_VECS, opf, GFP_NOFS);

		bio->bi_iter.bi_sector = (dev_off + done) >> SECTOR_SHIFT;
		while (done < len) {
			u8 *p = buf + done;
			u32 n = min_t(u64, PAGE_SIZE - offset_in_page(p),
				      len - done);

			if (bio_add_page(bio, vmalloc_to_page(p), n,
					 offset_in_page(p)) != n)
				break;
			done += n;
		}
		err = submit_bio_wait(bio);
		bio_put(bio);
	}
	return err;
}

/* Reads or writes [off, off + len) of the region image, sector aligned. */
static int twinfs_cm_io(struct twinfs_cm *cm, blk_opf_t opf, u64 off,
			u64 len)
{
	u64 end = round_up(off + len, SECTOR_SIZE);

	off = round_down(off, SECTOR_SIZE);
	return twinfs_vmem_io(cm->bdev, opf, off, cm->region + off, end - off);
}

/* Writes [off, off + len) (sector aligned) to the device; a failure
 * makes the file system read-only. */
static int twinfs_cm_write_local(struct twinfs_cm *cm, u64 off, u64 len)
{
	int err;

	if (!cm->bdev)
		return 0;
	err = twinfs_cm_io(cm, REQ_OP_WRITE | REQ_SYNC | REQ_FUA, off, len);
	if (err && !cm->failed) {
		cm->failed = true;
		twinfs_err(cm->sb, "change memory: write to %s failed: %d; remounting read-only",
			   cm->device, err);
		cm->sb->s_flags |= SB_RDONLY;
	}
	return err;
}

/* The range is durable here and, when mirrored, on the partner. */
static int twinfs_cm_persist(struct twinfs_cm *cm, u64 off, u64 len)
{
	u64 end = round_up(off + len, SECTOR_SIZE);
	struct twinfs_mirror_req mr = {};
	int err;

	off = round_down(off, SECTOR_SIZE);
	len = end - off;
	/* Both copies are written at once; the caller hears of neither
	 * before both are durable. */
	twinfs_mirror_begin(cm->sb, cm->region, off, len, &mr);
	err = twinfs_cm_write_local(cm, off, len);
	twinfs_mirror_end(cm->sb, &mr);
	return err;
}

static void twinfs_cm_mark_durable(struct twinfs_cm *cm, u64 seq);

/* One half of a record in flight is done; the second one frees it and
 * moves the watermark. */
static void twinfs_cm_flight_half(struct twinfs_cm_flight *f)
{
	struct twinfs_cm *cm = f->cm;
	u64 seq = f->seq;

	if (!atomic_dec_and_test(&f->halves))
		return;
	kfree(f);
	twinfs_cm_mark_durable(cm, seq);
	if (atomic_dec_and_test(&cm->flights))
		wake_up_var(&cm->flights);
}

/* The mirror's completion of a record (ACKed, or failed and marked for
 * the tail resync: the local copy holds it either way). */
static void twinfs_cm_flight_acked(struct twinfs_mirror_req *r, int status)
{
	twinfs_cm_flight_half(container_of(r, struct twinfs_cm_flight, mr));
}

/*
 * Makes record seq at [off, off + len) of the image durable: the local
 * write now, the partner's ACK whenever it comes.  Lane lock held; the
 * lane's bytes stay as they are until a consistency point trims them,
 * and the trim's own header write is ACKed after this record's.
 */
static int twinfs_cm_persist_record(struct twinfs_cm *cm, u64 off, u64 len,
				    u64 seq)
{
	u64 end = round_up(off + len, SECTOR_SIZE);
	struct twinfs_cm_flight *f;
	u32 n;
	int err;

	if (!TWINFS_SB(cm->sb)->mirror ||
	    !(f = kmalloc(sizeof(*f), GFP_NOFS))) {
		err = twinfs_cm_persist(cm, off, len);
		twinfs_cm_mark_durable(cm, seq);
		return err;
	}
	off = round_down(off, SECTOR_SIZE);
	len = end - off;
	memset(&f->mr, 0, sizeof(f->mr));
	f->mr.done = twinfs_cm_flight_acked;
	f->cm = cm;
	f->seq = seq;
	atomic_set(&f->halves, 2);
	n = atomic_inc_return(&cm->flights);
	if (n > READ_ONCE(cm->flights_max))	/* a statistic: racy is fine */
		WRITE_ONCE(cm->flights_max, n);
	twinfs_mirror_begin(cm->sb, cm->region, off, len, &f->mr);
	if (!f->mr.sent)	/* degraded: the chunk is marked */
		atomic_dec(&f->halves);
	err = twinfs_cm_write_local(cm, off, len);
	twinfs_cm_flight_half(f);
	return err;
}

/* Writes the header to the copy after the current one.  hdr_lock held. */
static int twinfs_cm_write_header(struct twinfs_cm *cm)
{
	u32 copy;

	le64_add_cpu(&cm->hdr.h_update, 1);
	twinfs_cm_header_seal(&cm->hdr);
	copy = le64_to_cpu(cm->hdr.h_update) % 2;
	memcpy(cm->region + copy * TWINFS_CM_HDR_COPY, &cm->hdr,
	       sizeof(cm->hdr));
	return twinfs_cm_persist(cm, copy * TWINFS_CM_HDR_COPY,
				 TWINFS_CM_HDR_COPY);
}

static bool twinfs_cm_all_zero(const u8 *p, u32 len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/* A region never used by twinfs: lay a new header out. */
static int twinfs_cm_format(struct twinfs_cm *cm)
{
	u32 gens[TWINFS_CM_LANES_MAX], lane_size, i;
	int err;

	err = twinfs_cm_geometry(cm->size, TWINFS_CM_LANES_DEFAULT,
				 &lane_size);
	if (err) {
		twinfs_err(cm->sb, "change memory: %s is too small (%llu bytes)",
			   cm->device, cm->size);
		return err;
	}
	for (i = 0; i < TWINFS_CM_LANES_DEFAULT; i++)
		gens[i] = get_random_u32() >> 1;
	/* h_update 0 would be copy 0 again: write it as update 1 below. */
	twinfs_cm_header_init(&cm->hdr, cm->sb->s_uuid.b,
			      TWINFS_SB(cm->sb)->opts.node,
			      cm->size, TWINFS_CM_LANES_DEFAULT, lane_size,
			      gens);
	cm->hdr.h_update = cpu_to_le64(U64_MAX);	/* +1 wraps to 0 */
	return twinfs_cm_write_header(cm);
}

static int twinfs_cm_load_header(struct twinfs_cm *cm)
{
	struct super_block *sb = cm->sb;
	const char *why = NULL;
	int copy;

	copy = twinfs_cm_header_pick(cm->region, cm->size, &why);
	if (copy < 0 && le32_to_cpu(*(__le32 *)cm->region) ==
	    TWINFS_CM_PARTIAL_MAGIC) {
		twinfs_err(sb, "change memory: %s is a mirror copy whose resync did not finish (the owner died during it); it may lack acknowledged changes: refusing it",
			   cm->device);
		return -EUCLEAN;
	}
	if (copy < 0) {
		if (twinfs_cm_all_zero(cm->region, TWINFS_CM_HDR_AREA)) {
			twinfs_info(sb, "change memory: %s is new; formatting it",
				    cm->device);
			return twinfs_cm_format(cm);
		}
		twinfs_err(sb, "change memory: header of %s is corrupt: %s",
			   cm->device, why);
		return -EUCLEAN;
	}
	memcpy(&cm->hdr, cm->region + copy * TWINFS_CM_HDR_COPY,
	       sizeof(cm->hdr));
	if (memcmp(cm->hdr.h_uuid, sb->s_uuid.b, sizeof(cm->hdr.h_uuid))) {
		twinfs_err(sb, "change memory: %s belongs to file system %pU; refusing it (wipe it to reuse it)",
			   cm->device, cm->hdr.h_uuid);
		return -EINVAL;
	}
	if (le32_to_cpu(cm->hdr.h_node_id) != TWINFS_SB(sb)->opts.node) {
		twinfs_err(sb, "change memory: %s holds the changes of node %u, not of node %u",
			   cm->device, le32_to_cpu(cm->hdr.h_node_id),
			   TWINFS_SB(sb)->opts.node);
		return -EINVAL;
	}
	return 0;
}

static int twinfs_cm_setup_lanes(struct twinfs_cm *cm)
{
	u32 i;

	cm->lane_count = le32_to_cpu(cm->hdr.h_lane_count);
	cm->lane_size = le32_to_cpu(cm->hdr.h_lane_size);
	cm->lanes = kcalloc(cm->lane_count, sizeof(*cm->lanes), GFP_KERNEL);
	if (!cm->lanes)
		return -ENOMEM;
	for (i = 0; i < cm->lane_count; i++) {
		struct twinfs_cm_lane *l = &cm->lanes[i];

		mutex_init(&l->lock);
		l->index = i;
		l->base = cm->region + twinfs_cm_lane_offset(cm->lane_size, i);
		l->st.size = cm->lane_size;
		l->st.head = le32_to_cpu(cm->hdr.h_lanes[i].l_head);
		l->st.head_gen = le32_to_cpu(cm->hdr.h_lanes[i].l_gen);
		l->st.tail = l->st.head;	/* until the scan */
		l->st.tail_gen = l->st.head_gen;
	}
	return 0;
}

static int twinfs_cm_open_device(struct twinfs_cm *cm, const char *path)
{
	struct super_block *sb = cm->sb;
	int err;

	cm->bdev = blkdev_get_by_path(path, FMODE_READ | FMODE_WRITE |
				      FMODE_EXCL, cm);
	if (IS_ERR(cm->bdev)) {
		err = PTR_ERR(cm->bdev);
		cm->bdev = NULL;
		twinfs_err(sb, "change memory: cannot open %s: %d", path, err);
		return err;
	}
	cm->size = bdev_nr_bytes(cm->bdev);
	if (cm->size > (1ull << 32))
		cm->size = 1ull << 32;
	cm->region = vmalloc(cm->size);
	if (!cm->region)
		return -ENOMEM;
	err = twinfs_cm_io(cm, REQ_OP_READ, 0, cm->size);
	if (err)
		twinfs_err(sb, "change memory: cannot read %s: %d", path, err);
	return err;
}

int twinfs_cm_open(struct super_block *sb, const char *path)
{
	struct twinfs_cm *cm;
	int err;

	cm = kvzalloc(sizeof(*cm), GFP_KERNEL);
	if (!cm)
		return -ENOMEM;
	cm->sb = sb;
	mutex_init(&cm->hdr_lock);
	init_waitqueue_head(&cm->space_wq);
	TWINFS_SB(sb)->cm = cm;
	if (path) {
		strscpy(cm->device, path, sizeof(cm->device));
		err = twinfs_cm_open_device(cm, path);
	} else {
		strscpy(cm->device, "volatile", sizeof(cm->device));
		cm->size = TWINFS_CM_VOLATILE_SIZE;
		cm->region = vzalloc(cm->size);
		err = cm->region ? 0 : -ENOMEM;
		if (!err)
			twinfs_warn(sb, "no nvram= device: the change memory is volatile, a crash loses the changes since the last consistency point");
	}
	err = err ?: twinfs_cm_load_header(cm) ?: twinfs_cm_setup_lanes(cm);
	if (err)
		twinfs_cm_close(sb);
	return err;
}

void twinfs_cm_close(struct super_block *sb)
{
	struct twinfs_cm *cm = CM(sb);

	if (!cm)
		return;
	/* The mirror is stopped: every record in flight has completed, and
	 * the waiters only wait for the watermark. */
	wait_var_event(&cm->flights, !atomic_read(&cm->flights));
	wait_var_event(&cm->waiters, !atomic_read(&cm->waiters));
	if (cm->bdev)
		blkdev_put(cm->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	kfree(cm->lanes);
	vfree(cm->region);
	kvfree(cm);
	TWINFS_SB(sb)->cm = NULL;
}

/* The mirror session the header names from now on (mirror.c). */
int twinfs_cm_set_mirror_epoch(struct super_block *sb, u64 epoch)
{
	struct twinfs_cm *cm = CM(sb);
	int err;

	mutex_lock(&cm->hdr_lock);
	cm->hdr.h_mirror_epoch = cpu_to_le64(epoch);
	err = twinfs_cm_write_header(cm);
	mutex_unlock(&cm->hdr_lock);
	return err;
}

void twinfs_cm_info(struct super_block *sb, struct twinfs_cm_header_info *i)
{
	i->region = CM(sb)->region;
	i->size = CM(sb)->size;
}

bool twinfs_cm_volatile(struct super_block *sb)
{
	return !CM(sb)->bdev;
}

const char *twinfs_cm_device(struct super_block *sb)
{
	return CM(sb)->device;
}

/* ---- mount: scan and plan ---- */

static int twinfs_cm_scan_lane(struct twinfs_cm *cm, u32 i,
			       struct twinfs_cm_scan_ent *tmp, u32 max,
			       struct twinfs_cm_found *found)
{
	struct twinfs_cm_lane *l = &cm->lanes[i];
	struct twinfs_cm_scan res = {};
	struct twinfs_cm_scan_ent *all;
	const char *why = NULL;
	int err;

	err = twinfs_cm_lane_scan(l->base, cm->lane_size, i, l->st.head,
				  l->st.head_gen, tmp, max, &res, &why);
	if (err) {
		twinfs_err(cm->sb, "change memory: lane %u at offset %u: %s; refusing to mount (the disk and change memory are left as they are)",
			   i, res.bad_off, why ?: "bad lane state");
		return err == -EUCLEAN ? err : -EUCLEAN;
	}
	l->st.tail = res.tail;
	l->st.tail_gen = res.tail_gen;
	if (!res.count)
		return 0;
	all = kvrealloc(found->ents, found->n * sizeof(*all),
			(found->n + res.count) * sizeof(*all), GFP_KERNEL);
	if (!all)
		return -ENOMEM;
	memcpy(all + found->n, tmp, res.count * sizeof(*all));
	found->ents = all;
	found->n += res.count;
	return 0;
}

int twinfs_cm_decode(struct super_block *sb,
		     const struct twinfs_cm_scan_ent *e,
		     struct twinfs_cm_rec_info *ri, struct twinfs_cm_attrs *a)
{
	struct twinfs_cm *cm = CM(sb);
	const char *why = NULL;
	int err;

	err = twinfs_cm_rec_decode(cm->lanes[e->lane].base + e->off,
				   cm->lane_size - e->off, e->gen, ri, a, &why);
	if (err)
		twinfs_err(sb, "change memory: record seq %llu (lane %u, offset %u): %s; refusing to mount (the disk and change memory are left as they are)",
			   e->seq, e->lane, e->off, why);
	return err;
}

int twinfs_cm_scan(struct super_block *sb, u64 cp_seq,
		   struct twinfs_cm_found *found)
{
	struct twinfs_cm *cm = CM(sb);
	u32 max = cm->lane_size / TWINFS_CM_REC_ALIGN, i;
	struct twinfs_cm_scan_ent *tmp;
	struct twinfs_cm_rec_info ri;
	struct twinfs_cm_attrs a;
	const char *why = NULL;
	int err = 0;

	memset(found, 0, sizeof(*found));
	tmp = kvmalloc_array(max, sizeof(*tmp), GFP_KERNEL);
	if (!tmp)
		return -ENOMEM;
	for (i = 0; i < cm->lane_count && !err; i++)
		err = twinfs_cm_scan_lane(cm, i, tmp, max, found);
	kvfree(tmp);
	if (err)
		goto fail;
	err = twinfs_cm_plan_replay(found->ents, found->n, cp_seq,
				    &found->plan, &why);
	if (err) {
		twinfs_err(sb, "change memory: seq %llu: %s; refusing to mount (the disk and change memory are left as they are)",
			   found->plan.bad_seq, why);
		goto fail;
	}
	for (i = 0; i < found->plan.count; i++) {
		err = twinfs_cm_decode(sb, &found->ents[found->plan.first + i],
				       &ri, &a);
		if (err)
			goto fail;
	}
	atomic64_set(&cm->next_seq, max(found->plan.max_seq, cp_seq));
	atomic64_set(&cm->durable, atomic64_read(&cm->next_seq));
	return 0;
fail:
	kvfree(found->ents);
	found->ents = NULL;
	return err;
}

int twinfs_cm_reset(struct super_block *sb, u64 last_seq)
{
	struct twinfs_cm *cm = CM(sb);
	int err;
	u32 i;

	mutex_lock(&cm->hdr_lock);
	for (i = 0; i < cm->lane_count; i++) {
		struct twinfs_cm_lane *l = &cm->lanes[i];

		twinfs_cm_lane_reset(&l->st);
		cm->hdr.h_lanes[i].l_head = cpu_to_le32(l->st.head);
		cm->hdr.h_lanes[i].l_gen = cpu_to_le32(l->st.head_gen);
	}
	last_seq = max(last_seq, (u64)atomic64_read(&cm->next_seq));
	cm->hdr.h_cp_seq = cpu_to_le64(twinfs_cp_seq(sb));
	err = twinfs_cm_write_header(cm);
	mutex_unlock(&cm->hdr_lock);
	atomic64_set(&cm->next_seq, last_seq);
	atomic64_set(&cm->durable, last_seq);
	return err;
}

/* ---- appending ---- */

static bool twinfs_cm_room(struct twinfs_cm_lane *l, u32 credit)
{
	return twinfs_cm_lane_free(&l->st) >=
		(u64)l->reserved + credit + TWINFS_CM_REC_MAX;
}

static bool twinfs_cm_try_credit(struct twinfs_cm *cm,
				 struct twinfs_cm_lane *l, u32 credit)
{
	bool ok;

	mutex_lock(&l->lock);
	/* A failed device frees nothing: the append will fail. */
	ok = twinfs_cm_room(l, credit) || READ_ONCE(cm->failed);
	if (ok)
		l->reserved += credit;
	mutex_unlock(&l->lock);
	return ok;
}

/* The thread's own lane, or the next one with room: a lane is any
 * writer's, the lanes of one thread only spread its records. */
struct twinfs_cm_lane *twinfs_cm_get_credit(struct super_block *sb,
					    u32 credit)
{
	struct twinfs_cm *cm = CM(sb);
	u32 first = current->pid % cm->lane_count, i;
	int trims;

	for (;;) {
		trims = atomic_read(&cm->trims);
		for (i = 0; i < cm->lane_count; i++) {
			struct twinfs_cm_lane *l =
				&cm->lanes[(first + i) % cm->lane_count];

			if (twinfs_cm_try_credit(cm, l, credit))
				return l;
		}
		/* All full: throttle until a consistency point frees room. */
		twinfs_cp_kick(sb);
		wait_event_timeout(cm->space_wq,
				   atomic_read(&cm->trims) != trims, HZ);
	}
}

void twinfs_cm_put_credit(struct super_block *sb, struct twinfs_cm_lane *l,
			  u32 credit)
{
	mutex_lock(&l->lock);
	l->reserved -= credit;
	mutex_unlock(&l->lock);
}

static void twinfs_cm_mark_durable(struct twinfs_cm *cm, u64 seq)
{
	bool moved = false;
	u64 cur;

	atomic64_set(&cm->done[seq % TWINFS_CM_DONE_RING], seq);
	smp_mb();	/* publish done before reading the watermark */
	for (;;) {
		cur = atomic64_read(&cm->durable);
		if (atomic64_read(&cm->done[(cur + 1) % TWINFS_CM_DONE_RING]) !=
		    cur + 1)
			break;
		if (atomic64_cmpxchg(&cm->durable, cur, cur + 1) == cur)
			moved = true;
	}
	if (moved)
		wake_up_var(&cm->durable);
}

/* Appends one record part; lane lock held.  *seq is set even on error. */
static int twinfs_cm_append_part(struct twinfs_cm *cm,
				 struct twinfs_cm_lane *l,
				 const struct twinfs_rec_desc *d, u32 part,
				 u64 *seq)
{
	struct twinfs_cm_builder b;
	u32 max = twinfs_rec_part_max(d, part), off, gen;
	struct twinfs_cm_lane_state was = l->st;
	int size, err;

	*seq = 0;
	err = twinfs_cm_lane_reserve(&l->st, max, &off, &gen);
	if (err) {
		twinfs_err(cm->sb, "change memory: lane %u has no room for a record of %u bytes",
			   l->index, max);
		return err;
	}
	twinfs_cm_rec_begin(&b, l->base + off, max, d->op);
	err = twinfs_rec_encode(&b, d, part);
	if (err) {
		/* No seq was taken: give the room back. */
		l->st = was;
		twinfs_err(cm->sb, "change memory: cannot encode a record of operation %u: %d",
			   d->op, err);
		return err;
	}
	*seq = atomic64_inc_return(&cm->next_seq);
	size = twinfs_cm_rec_end(&b, *seq, atomic64_read(&cm->durable), gen);
	if (WARN_ON_ONCE(size < 0)) {
		/* Cannot happen: max bounds the record.  The seq stays a
		 * hole, which a replay reports rather than skips. */
		twinfs_cm_mark_durable(cm, *seq);
		return size;
	}
	/* The rest of the reservation was not used. */
	l->st.tail = off + size;
	l->st.tail_gen = gen;
	if (l->st.tail == l->st.size) {
		l->st.tail = 0;
		l->st.tail_gen++;
	}
	return twinfs_cm_persist_record(cm, (l->base - cm->region) + off,
					size, *seq);
}

static bool twinfs_cm_durable_upto(struct twinfs_cm *cm, u64 seq)
{
	return atomic64_read(&cm->durable) >= seq;
}

static void twinfs_cm_waiter_run(struct callback_head *work)
{
	struct twinfs_cm_waiter *w =
		container_of(work, struct twinfs_cm_waiter, work);
	struct twinfs_cm *cm = w->cm;

	wait_var_event(&cm->durable, twinfs_cm_durable_upto(cm, w->seq));
	kfree(w);
	if (atomic_dec_and_test(&cm->waiters))
		wake_up_var(&cm->waiters);
}

/*
 * Every record up to seq is durable before the caller hears of its
 * operation: a user task waits on its way back to user space (its VFS
 * locks are free by then, see the top of this file), anything else here.
 */
static void twinfs_cm_wait_durable(struct twinfs_cm *cm, u64 seq)
{
	struct twinfs_cm_waiter *w;

	if (twinfs_cm_durable_upto(cm, seq))
		return;
	if (!(current->flags & (PF_KTHREAD | PF_IO_WORKER | PF_EXITING))) {
		w = kmalloc(sizeof(*w), GFP_NOFS);
		if (w) {
			init_task_work(&w->work, twinfs_cm_waiter_run);
			w->cm = cm;
			w->seq = seq;
			atomic_inc(&cm->waiters);
			if (!task_work_add(current, &w->work, TWA_RESUME)) {
				atomic64_inc(&cm->deferred);
				return;
			}
			atomic_dec(&cm->waiters);
			kfree(w);
		}
	}
	wait_var_event(&cm->durable, twinfs_cm_durable_upto(cm, seq));
}

/* Appends the records of a committing operation; the caller hears of it
 * only when they and every record before them are durable.  The operation
 * still holds its locks, so records of dependent operations are in order. */
int twinfs_cm_append_op(struct super_block *sb, struct twinfs_op *op)
{
	struct twinfs_cm *cm = CM(sb);
	struct twinfs_cm_lane *l = op->lane;
	u64 seq, last = 0;
	int i, err = 0;
	u32 part;

	if (READ_ONCE(cm->failed))
		return -EIO;
	/* The done ring bounds the records in flight. */
	wait_var_event(&cm->durable,
		       atomic64_read(&cm->next_seq) - atomic64_read(&cm->durable) <
		       TWINFS_CM_FLIGHT_MAX);
	mutex_lock(&l->lock);
	l->reserved -= op->credit;
	op->credit = 0;
	for (i = 0; i < op->nrec && !err; i++)
		for (part = 0; part < twinfs_rec_parts(&op->rec[i]) && !err;
		     part++) {
			err = twinfs_cm_append_part(cm, l, &op->rec[i], part,
						    &seq);
			last = max(last, seq);
		}
	mutex_unlock(&l->lock);
	/* Under the operation's locks: fsync of any of them waits for it. */
	for (i = 0; last && i < op->ninodes; i++)
		WRITE_ONCE(TWINFS_I(op->inodes[i])->rec_seq, last);
	if (last)
		twinfs_cm_wait_durable(cm, last);
	op->seq = last;
	if (twinfs_cm_wants_cp(sb))
		twinfs_cp_kick(sb);
	return err;
}

/* fsync: the inode's last record is durable, even when the thread that
 * appended it has not returned yet (another one may have seen it). */
void twinfs_cm_sync_inode(struct inode *inode)
{
	struct twinfs_cm *cm = CM(inode->i_sb);
	u64 seq = READ_ONCE(TWINFS_I(inode)->rec_seq);

	wait_var_event(&cm->durable, twinfs_cm_durable_upto(cm, seq));
}

/* ---- trimming ---- */

int twinfs_cm_trim(struct super_block *sb, u64 cp_seq)
{
	struct twinfs_cm *cm = CM(sb);
	u32 i, off, gen;
	int err;

	mutex_lock(&cm->hdr_lock);
	for (i = 0; i < cm->lane_count; i++) {
		struct twinfs_cm_lane *l = &cm->lanes[i];

		mutex_lock(&l->lock);
		twinfs_cm_lane_first_after(l->base, &l->st, cp_seq, &off, &gen);
		if (twinfs_cm_lane_trim_to(&l->st, off, gen))
			twinfs_err(sb, "change memory: lane %u: cannot trim to %u", i, off);
		cm->hdr.h_lanes[i].l_head = cpu_to_le32(l->st.head);
		cm->hdr.h_lanes[i].l_gen = cpu_to_le32(l->st.head_gen);
		mutex_unlock(&l->lock);
	}
	cm->hdr.h_cp_seq = cpu_to_le64(cp_seq);
	err = twinfs_cm_write_header(cm);
	mutex_unlock(&cm->hdr_lock);
	atomic_inc(&cm->trims);
	wake_up_all(&cm->space_wq);
	return err;
}

/* ---- state ---- */

void twinfs_cm_set_seq(struct super_block *sb, u64 seq)
{
	atomic64_set(&CM(sb)->next_seq, seq);
	atomic64_set(&CM(sb)->durable, seq);
}

u64 twinfs_cm_last_seq(struct super_block *sb)
{
	return atomic64_read(&CM(sb)->next_seq);
}

ssize_t twinfs_cm_group_commit_show(struct super_block *sb, char *buf)
{
	struct twinfs_cm *cm = CM(sb);

	return sysfs_emit(buf, "in_flight=%d max_in_flight=%u deferred_waits=%lld\n",
			  atomic_read(&cm->flights), READ_ONCE(cm->flights_max),
			  atomic64_read(&cm->deferred));
}

void twinfs_cm_stats(struct super_block *sb, u64 *size, u64 *used)
{
	struct twinfs_cm *cm = CM(sb);
	u32 i;

	*size = cm->size;
	*used = 0;
	for (i = 0; i < cm->lane_count; i++)
		*used += twinfs_cm_lane_used(&cm->lanes[i].st);
}

/* Half the change memory in use (writers spill into other lanes). */
bool twinfs_cm_wants_cp(struct super_block *sb)
{
	struct twinfs_cm *cm = CM(sb);
	u64 used = 0;
	u32 i;

	for (i = 0; i < cm->lane_count; i++)
		used += twinfs_cm_lane_used(&cm->lanes[i].st) +
			READ_ONCE(cm->lanes[i].reserved);
	return twinfs_cm_fill_permille(used, (u64)cm->lane_size *
				       cm->lane_count) >= TWINFS_CM_CP_PERMILLE;
}
