/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: in-memory structures shared by the files of twinfs.ko.
 *
 * Locking (outermost first):
 *   1. VFS i_rwsem of directories and files (the VFS takes it).
 *   1a. twinfs_op_begin(): change-memory credit, then the consistency
 *      point freeze lock, shared (cm.h has the locks of cm and cp).
 *   2. twinfs_inode_info.map_sem: the inode's extent map (read to look a
 *      block up, write to allocate or truncate).  Taken by get_block from
 *      page-cache paths that do not hold i_rwsem (readahead, writeback).
 *   3. twinfs_ag.lock: one allocation group's bitmaps and free counts.  No
 *      lock covers all groups: allocators of different groups never meet.
 *   4. buffer lock of an inode-table block while an inode is copied in.
 * Directory blocks are changed only under the directory's i_rwsem held
 * exclusively; lookup and readdir read them under the shared lock.
 */
#ifndef TWINFS_H
#define TWINFS_H

#include <linux/fs.h>
#include <linux/buffer_head.h>
#include <linux/kobject.h>
#include <linux/percpu_counter.h>
#include <linux/rwsem.h>
#include <linux/mutex.h>
#include "twinfs_core.h"

#define TWINFS_LINK_MAX 65000
#define TWINFS_CP_INTERVAL_MS 5000u
#define TWINFS_MIRROR_TIMEOUT_MS 2000u

/*
 * A metadata buffer whose checksum and structure were checked after it was
 * read from disk (or that twinfs formatted itself): later readers trust
 * it, so a block is verified once per read, not once per use, and never
 * while another thread is half-way through changing it.
 */
enum { BH_Twinfs_Verified = BH_PrivateStart };
BUFFER_FNS(Twinfs_Verified, twinfs_verified)

/* Mount options. */
enum twinfs_errors { TWINFS_ERRORS_CONTINUE, TWINFS_ERRORS_RO };

struct twinfs_mount_opts {
	enum twinfs_errors errors;
	bool fault_inject;		/* test mounts: arm fault points */
	char *nvram;			/* change memory device, or NULL */
	char *partner;			/* mirror partner a.b.c.d[:port] */
	char *cluster_key;		/* file holding the cluster key */
	bool mirror_required;		/* mirror=required */
	bool mirror_tcp;		/* mirror_transport=tcp: never RDMA */
	u32 mirror_timeout_ms;		/* partner silent this long: gone */
	u32 node;			/* this node's id (its CP area) */
	u32 cp_interval_ms;		/* consistency point period */
};

struct twinfs_cm;
struct twinfs_cp;
struct twinfs_mirror;

struct twinfs_fault;

struct twinfs_ag {
	struct mutex lock;		/* bitmaps, view, busy, counts */
	u32 free_blocks;
	u32 free_inodes;
	u8 *view;			/* block bitmap | busy[0] | busy[1] */
	u8 *busy[2];			/* freed, per CP generation */
	u32 nbusy[2];
};

struct twinfs_sb_info {
	struct super_block *sb;
	struct buffer_head *sbh;	/* the superblock, block 0 */
	struct twinfs_geometry geo;
	u32 dirhash_seed;
	struct twinfs_ag *ags;
	struct percpu_counter free_blocks;
	struct percpu_counter free_inodes;
	atomic_t dir_rotor;		/* spreads new directories over groups */
	struct twinfs_mount_opts opts;
	struct twinfs_fault *fault;	/* NULL unless fault_inject */
	atomic64_t ops_rolled_back;
	atomic64_t pages_restored;
	struct twinfs_cm *cm;		/* change memory (nvram.c) */
	struct twinfs_cp *cp;		/* consistency points (cp.c) */
	struct twinfs_mirror *mirror;	/* partner link (mirror.c) */
	bool replaying;			/* mount: records are replayed */
	u64 replay_ino;			/* replay: the inode to create */
	u64 records_replayed;
	struct kobject kobj;		/* /sys/fs/twinfs/<dev> */
	struct completion kobj_unregister;
};

struct twinfs_inode_info {
	struct rw_semaphore map_sem;	/* the extent map below */
	u16 ext_depth;
	u16 ext_count;
	struct twinfs_extent ext[TWINFS_INLINE_EXTENTS];
	u32 flags;
	bool undone;			/* creation rolled back: free nothing */
	bool mmap_dirty;		/* written through mmap since fsync */
	u32 data_gen;			/* CP generation of the last data */
	u64 rec_seq;			/* fsync waits for this seq */
	struct inode vfs_inode;
};

static inline struct twinfs_sb_info *TWINFS_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

static inline struct twinfs_inode_info *TWINFS_I(struct inode *inode)
{
	return container_of(inode, struct twinfs_inode_info, vfs_inode);
}

/* Messages: every line starts with "twinfs (<dev>):". */
__printf(3, 4)
void twinfs_msg(struct super_block *sb, const char *level, const char *fmt, ...);
#define twinfs_err(sb, fmt, ...) twinfs_msg(sb, KERN_ERR, fmt, ##__VA_ARGS__)
#define twinfs_warn(sb, fmt, ...) twinfs_msg(sb, KERN_WARNING, fmt, ##__VA_ARGS__)
#define twinfs_info(sb, fmt, ...) twinfs_msg(sb, KERN_INFO, fmt, ##__VA_ARGS__)
/* Reports corruption found at run time and applies errors=. */
__printf(3, 4)
void twinfs_corrupt(struct super_block *sb, const char *func,
		    const char *fmt, ...);

/* super.c */
extern struct file_system_type twinfs_fs_type;

/* inode.c */
struct inode *twinfs_iget(struct super_block *sb, unsigned long ino);
bool twinfs_inode_linked(struct super_block *sb, unsigned long ino);
bool twinfs_reap_orphan(struct super_block *sb, unsigned long ino);
struct inode *twinfs_new_inode(struct inode *dir, umode_t mode,
			       const char *symname);
void twinfs_discard_new_inode(struct inode *inode);
int twinfs_write_inode(struct inode *inode, struct writeback_control *wbc);
int twinfs_write_inode_meta(struct inode *inode);
void twinfs_evict_inode(struct inode *inode);
int twinfs_setattr(struct user_namespace *ns, struct dentry *dentry,
		   struct iattr *attr);
int twinfs_getattr(struct user_namespace *ns, const struct path *path,
		   struct kstat *stat, u32 mask, unsigned int flags);
void twinfs_set_inode_ops(struct inode *inode);
struct inode *twinfs_alloc_inode(struct super_block *sb);
void twinfs_free_inode(struct inode *inode);
int twinfs_inode_cache_init(void);
void twinfs_inode_cache_destroy(void);

/* extent_map.c */
int twinfs_map_blocks(struct inode *inode, u32 lblk, u32 max, bool create,
		      u64 *pblk, u32 *len, bool *is_new);
int twinfs_get_block(struct inode *inode, sector_t iblock,
		     struct buffer_head *bh, int create);
int twinfs_truncate_blocks(struct inode *inode, u32 from);
int twinfs_map_unmap(struct inode *inode, u32 lblk, u32 len, u64 pblk);
int twinfs_map_remap(struct inode *inode, u32 lblk, u32 len, u64 pblk);

/* alloc.c */
int twinfs_alloc_init(struct super_block *sb);
void twinfs_alloc_destroy(struct super_block *sb);
int twinfs_alloc_blocks(struct inode *inode, u64 goal, u32 want, u64 *pblk,
			u32 *got);
void twinfs_unalloc_bits(struct super_block *sb, u32 ag, bool inode_map,
			 u32 bit, u32 count);
void twinfs_free_blocks(struct inode *inode, u64 pblk, u32 len);
int twinfs_alloc_ino(struct super_block *sb, struct inode *dir,
		     struct inode *inode, bool is_dir, unsigned long *ino);
void twinfs_free_ino(struct super_block *sb, unsigned long ino);

/* dir.c */
extern const struct file_operations twinfs_dir_operations;
int twinfs_dir_init(struct inode *dir, struct inode *parent);
int twinfs_dir_lookup(struct inode *dir, const struct qstr *name, u32 *ino);
int twinfs_dir_add(struct inode *dir, const struct qstr *name, u32 ino,
		   umode_t mode);
int twinfs_dir_remove(struct inode *dir, const struct qstr *name);
int twinfs_dir_replace(struct inode *dir, const struct qstr *name, u32 ino,
		       umode_t mode);
int twinfs_dir_set_parent(struct inode *dir, u32 parent);
int twinfs_dir_is_empty(struct inode *dir);

/* namei.c */
extern const struct inode_operations twinfs_dir_inode_operations;
extern const struct inode_operations twinfs_special_inode_operations;

/* file.c */
extern const struct file_operations twinfs_file_operations;
extern const struct inode_operations twinfs_file_inode_operations;
extern const struct inode_operations twinfs_symlink_inode_operations;
extern const struct address_space_operations twinfs_aops;
int twinfs_fsync(struct file *file, loff_t start, loff_t end, int datasync);

/* sysfs.c */
int twinfs_sysfs_init(void);
void twinfs_sysfs_exit(void);
int twinfs_sysfs_register(struct super_block *sb);
void twinfs_sysfs_unregister(struct super_block *sb);

#endif /* TWINFS_H */
