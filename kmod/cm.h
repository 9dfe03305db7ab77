/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: change memory and consistency points (seeds 001, 004).
 *
 * Every modifying operation appends change records describing it to the
 * change memory (an NVRAM region, nvram.c) and returns only when they are
 * durable.  Metadata reaches the shared disk only in consistency points
 * (cp.c): a snapshot of every metadata block changed since the last one,
 * taken while no operation runs, written atomically through a journal in
 * the node's area.  After a crash, mount writes a committed journal home
 * and replays (replay.c) exactly the records after the last consistency
 * point.  Documentation/design.md, "Change memory" and "Consistency
 * points", gives the whole model.
 *
 * Locks (outermost first; see twinfs.h for the rest):
 *   cp->mutex         one consistency point at a time
 *   cp->freeze        percpu rwsem: operations (and evictions that free)
 *                     read, the snapshot of a consistency point writes
 *   lane->lock        one lane's ring and its device writes
 *   cm->hdr_lock      the change-memory header and its writes
 *   cp->lock          spinlock of the set of changed metadata buffers
 */
#ifndef TWINFS_CM_KERNEL_H
#define TWINFS_CM_KERNEL_H

#include "twinfs.h"
#include "twinfs_cm_core.h"

struct twinfs_op;
struct twinfs_cm;
struct twinfs_cm_lane;

/* ---- nvram.c: the change memory ---- */

/* What mount found in the change memory, before anything is changed. */
struct twinfs_cm_found {
	struct twinfs_cm_scan_ent *ents;	/* kvmalloc'd, plan order */
	u32 n;
	struct twinfs_cm_plan plan;
};

int twinfs_vmem_io(struct block_device *bdev, blk_opf_t opf, u64 dev_off,
		   u8 *buf, u64 len);
int twinfs_cm_open(struct super_block *sb, const char *path);
void twinfs_cm_close(struct super_block *sb);
/* Scans every lane and plans the replay after cp_seq; every record to
 * replay is decoded once here, so a corrupt one refuses the mount before
 * anything is written.  -EUCLEAN with a message on corruption. */
int twinfs_cm_scan(struct super_block *sb, u64 cp_seq,
		   struct twinfs_cm_found *found);
/* The record of a scan entry. */
int twinfs_cm_decode(struct super_block *sb,
		     const struct twinfs_cm_scan_ent *e,
		     struct twinfs_cm_rec_info *ri, struct twinfs_cm_attrs *a);
/* Empties every lane (after replay and its consistency point) and goes
 * on numbering after last_seq. */
int twinfs_cm_reset(struct super_block *sb, u64 last_seq);
/* Operations: room for credit bytes of records in a lane (may sleep and
 * start a consistency point), then the records, then durability. */
struct twinfs_cm_lane *twinfs_cm_get_credit(struct super_block *sb,
					    u32 credit);
void twinfs_cm_put_credit(struct super_block *sb, struct twinfs_cm_lane *l,
			  u32 credit);
int twinfs_cm_append_op(struct super_block *sb, struct twinfs_op *op);
/* Waits until the inode's last record is durable. */
void twinfs_cm_sync_inode(struct inode *inode);
/* After a consistency point up to cp_seq: frees the records it holds. */
int twinfs_cm_trim(struct super_block *sb, u64 cp_seq);
u64 twinfs_cm_last_seq(struct super_block *sb);
/* Replay: the seq of the last record applied. */
void twinfs_cm_set_seq(struct super_block *sb, u64 seq);
void twinfs_cm_stats(struct super_block *sb, u64 *size, u64 *used);
/* sysfs group_commit: records in flight now and at most, waits deferred
 * to the return to user space. */
ssize_t twinfs_cm_group_commit_show(struct super_block *sb, char *buf);
const char *twinfs_cm_device(struct super_block *sb);
bool twinfs_cm_volatile(struct super_block *sb);
struct twinfs_cm_header_info {
	const u8 *region;		/* the image */
	u64 size;
};
void twinfs_cm_info(struct super_block *sb, struct twinfs_cm_header_info *i);
int twinfs_cm_set_mirror_epoch(struct super_block *sb, u64 epoch);
bool twinfs_cm_wants_cp(struct super_block *sb);

/* ---- record.c: what an operation's records say ---- */

struct twinfs_rec_desc {
	u16 op;				/* TWINFS_CM_OP_* */
	u32 flags;			/* rename flags */
	unsigned int ia_valid;		/* setattr: ATTR_* changed */
	struct inode *dir, *inode, *new_dir, *target;
	const struct qstr *name, *new_name;
	const char *symlink;
	loff_t pos;			/* write */
	u32 len;
};

/* Bytes of the largest record a name operation appends. */
#define TWINFS_REC_NAME_CREDIT	8192u
/* A write operation covers at most this many bytes of a write(2). */
#define TWINFS_WRITE_OP_MAX	(4 * TWINFS_CM_DATA_MAX)

u32 twinfs_rec_write_credit(u32 len);
u32 twinfs_rec_parts(const struct twinfs_rec_desc *d);
u32 twinfs_rec_part_max(const struct twinfs_rec_desc *d, u32 part);
/* Builds record part of d into b (begun by the caller). */
int twinfs_rec_encode(struct twinfs_cm_builder *b,
		      const struct twinfs_rec_desc *d, u32 part);

/* ---- cp.c: consistency points ---- */

int twinfs_cp_init(struct super_block *sb);
/* Reads the node's CP area: header, and a committed journal (verified,
 * kept in memory); *cp_seq is what the disk holds once it is home. */
int twinfs_cp_load(struct super_block *sb, u64 *cp_seq);
/* Writes a committed journal home (mount, read-write). */
int twinfs_cp_recover(struct super_block *sb);
void twinfs_cp_start(struct super_block *sb);
void twinfs_cp_stop(struct super_block *sb);
void twinfs_cp_destroy(struct super_block *sb);
int twinfs_cp_run(struct super_block *sb);
void twinfs_cp_kick(struct super_block *sb);
/* A changed metadata buffer: it goes to disk in the next CP only. */
void twinfs_meta_dirty(struct super_block *sb, struct buffer_head *bh);
/* Operations hold the freeze lock shared; throttled when the next CP
 * would not fit its journal. */
void twinfs_cp_enter(struct super_block *sb);
/* The same lock, never throttled (evictions that free). */
void twinfs_cp_hold(struct super_block *sb);
void twinfs_cp_leave(struct super_block *sb);
/* Replay: true when the changed blocks should go out before more. */
bool twinfs_cp_wants_run(struct super_block *sb);
/* Which busy map a free goes to (stable under the freeze lock). */
u32 twinfs_cp_gen(struct super_block *sb);
/* An operation dirties the inode's pages: a point taken later must find
 * them even if the inode is evicted first (twinfs_evict_inode). */
static inline void twinfs_cp_data_dirtied(struct inode *inode)
{
	TWINFS_I(inode)->data_gen = twinfs_cp_gen(inode->i_sb);
}
u64 twinfs_cp_seq(struct super_block *sb);
u64 twinfs_cp_count(struct super_block *sb);
u32 twinfs_cp_dirty(struct super_block *sb);

/* ---- replay.c ---- */

int twinfs_replay(struct super_block *sb, struct twinfs_cm_found *found);

/* alloc.c: blocks freed since the consistency point of generation gen
 * may be allocated again (that point is on disk). */
void twinfs_busy_release(struct super_block *sb, u32 gen);

#endif /* TWINFS_CM_KERNEL_H */
