/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * twinfs on-disk format, shared by twinfs.ko, the portable core and the
 * user-space tools.  Every multi-byte field is little endian.  The layout is
 * described in Documentation/on-disk-format.md; keep the two in step.
 *
 * Disk layout (all units are file-system blocks, TWINFS_BLOCK_SIZE bytes):
 *
 *   0                      superblock
 *   1                      disk heartbeat of twinfsd: one 512-byte sector
 *                          (struct twinfs_heartbeat) per node slot
 *   2 .. node_area_start-1 unused (none today: node_area_start is 2)
 *   node_area_start        max_nodes * node_area_blocks: per-node change
 *                          memory metadata and data journal
 *   first_ag_block         allocation group 0, then 1, ... ag_count-1
 *
 * Allocation group g starts at first_ag_block + g * ag_blocks:
 *   +0                     block bitmap (one bit per block of the group,
 *                          including the group's own metadata blocks)
 *   +1                     inode bitmap (one bit per inode of the group)
 *   +2 .. +2+itable_blocks inode table
 *   rest                   data and directory blocks
 *
 * Inode number ino lives in group ino / inodes_per_ag at index
 * ino % inodes_per_ag.  Inode 0 is never used; inode 1 is the root.
 */
#ifndef TWINFS_FORMAT_H
#define TWINFS_FORMAT_H

#include <linux/types.h>

#define TWINFS_MAGIC		0x54574653u	/* "TWFS" */
#define TWINFS_FORMAT_VERSION	1u
#define TWINFS_BLOCK_SHIFT	12
#define TWINFS_BLOCK_SIZE	(1u << TWINFS_BLOCK_SHIFT)
#define TWINFS_INODE_SIZE	256u
#define TWINFS_INODES_PER_BLOCK	(TWINFS_BLOCK_SIZE / TWINFS_INODE_SIZE)
#define TWINFS_ROOT_INO		1u
#define TWINFS_NAME_MAX		255u
#define TWINFS_MAX_NODES	8u
#define TWINFS_AG_BLOCKS_MAX	(TWINFS_BLOCK_SIZE * 8u)
#define TWINFS_AG_INODES_MAX	(TWINFS_BLOCK_SIZE * 8u)

/* Superblock states. */
#define TWINFS_STATE_CLEAN	1u	/* unmounted cleanly */
#define TWINFS_STATE_MOUNTED	2u	/* mounted, or not unmounted cleanly */

struct twinfs_super {
	__le32 s_magic;
	__le32 s_version;
	__le32 s_block_size;
	__le32 s_inode_size;
	__u8   s_uuid[16];
	__u8   s_label[32];
	__le64 s_blocks;		/* size of the file system in blocks */
	__le64 s_first_ag_block;
	__le32 s_ag_blocks;		/* blocks per allocation group */
	__le32 s_ag_count;
	__le32 s_inodes_per_ag;
	__le32 s_itable_blocks;		/* inode table blocks per group */
	__le64 s_node_area_start;
	__le32 s_node_area_blocks;	/* per node */
	__le32 s_max_nodes;
	__le32 s_root_ino;
	__le32 s_state;
	__le64 s_mkfs_time;
	__le64 s_mount_count;
	__le32 s_dirhash_seed;
	__le32 s_features;
	__u8   s_pad[3948];
	__le32 s_checksum;		/* crc32c of the block with this field 0 */
};

/* An extent: file blocks [e_lblk, e_lblk + e_len) at disk blocks e_pblk... */
struct twinfs_extent {
	__le32 e_lblk;
	__le32 e_len;
	__le64 e_pblk;
};

/*
 * Extent map of an inode.  Depth 0: i_ext[] holds up to
 * TWINFS_INLINE_EXTENTS extents sorted by e_lblk.  Depth 1: i_ext[] holds
 * index entries (e_lblk = first file block covered, e_pblk = leaf block,
 * e_len unused), each pointing at a leaf block (struct twinfs_ext_leaf).
 */
#define TWINFS_INLINE_EXTENTS	10u

struct twinfs_inode {
	__le16 i_mode;
	__le16 i_nlink_hi;		/* reserved */
	__le32 i_nlink;
	__le32 i_uid;
	__le32 i_gid;
	__le64 i_size;
	__le64 i_blocks;		/* blocks allocated, data and metadata */
	__le64 i_atime;
	__le64 i_mtime;
	__le64 i_ctime;
	__le32 i_atime_ns;
	__le32 i_mtime_ns;
	__le32 i_ctime_ns;
	__le32 i_generation;
	__le32 i_flags;
	__le32 i_rdev;
	__le16 i_ext_depth;
	__le16 i_ext_count;
	__le32 i_checksum;		/* crc32c of the inode with this field 0 */
	struct twinfs_extent i_ext[TWINFS_INLINE_EXTENTS];
	__u8   i_pad[8];
};

#define TWINFS_EXT_LEAF_MAGIC	0x54574558u	/* "TWEX" */
#define TWINFS_EXT_LEAF_MAX \
	((TWINFS_BLOCK_SIZE - 16u) / sizeof(struct twinfs_extent))

struct twinfs_ext_leaf {
	__le32 l_magic;
	__le32 l_count;
	__le32 l_ino;			/* owner, for fsck */
	__le32 l_checksum;		/* crc32c with this field 0 */
	struct twinfs_extent l_ext[TWINFS_EXT_LEAF_MAX];
};

/*
 * Directories are extendible hash tables kept in the directory's own file
 * blocks (see Documentation/on-disk-format.md):
 *   file block 0                    header (struct twinfs_dir_header)
 *   file blocks 1 ..                leaf blocks (struct twinfs_dir_leaf)
 *   file blocks TWINFS_DIR_TABLE_LBLK ..  hash table, 2^depth __le32 file
 *                                   block numbers of leaves, indexed by the
 *                                   low `depth` bits of the name hash
 * A leaf of local depth L holds every name whose hash has its low L bits
 * equal to the leaf's suffix; when full at L == depth the table doubles,
 * and at TWINFS_DIR_MAX_DEPTH leaves chain through d_next.  Entries in a
 * leaf are sorted by the bit-reversed hash, the readdir cookie order.
 */
#define TWINFS_DIR_HDR_MAGIC	0x54574448u	/* "TWDH" */
#define TWINFS_DIR_LEAF_MAGIC	0x5457444cu	/* "TWDL" */
#define TWINFS_DIR_TABLE_LBLK	(1u << 24)
#define TWINFS_DIR_MAX_DEPTH	20u
#define TWINFS_DIR_TABLE_PER_BLOCK (TWINFS_BLOCK_SIZE / 4u)

struct twinfs_dir_header {
	__le32 h_magic;
	__le32 h_depth;			/* global depth of the hash table */
	__le64 h_entries;		/* names in the directory */
	__le32 h_parent;		/* inode number of ".." */
	__le32 h_next_leaf;		/* next free leaf file block */
	__le32 h_ino;			/* owner, for fsck */
	__le32 h_checksum;		/* crc32c of the block, this field 0 */
	__u8   h_pad[TWINFS_BLOCK_SIZE - 32];
};

struct twinfs_dir_leaf_hdr {
	__le32 d_magic;
	__le32 d_ino;			/* owning directory */
	__le16 d_depth;			/* local depth */
	__le16 d_count;			/* entries */
	__le16 d_used;			/* bytes of entries after the header */
	__le16 d_pad;
	__le32 d_next;			/* overflow chain file block, 0: none */
	__le32 d_checksum;		/* crc32c of the block, this field 0 */
};

/* Entries are packed after the leaf header, each padded to 4 bytes. */
struct twinfs_dirent {
	__le32 de_ino;
	__le32 de_hash;
	__u8   de_name_len;
	__u8   de_type;			/* DT_* value */
	char   de_name[];
};

#define TWINFS_DIRENT_SIZE(len)	((10u + (len) + 3u) & ~3u)
#define TWINFS_DIR_LEAF_SPACE \
	(TWINFS_BLOCK_SIZE - sizeof(struct twinfs_dir_leaf_hdr))

/*
 * Consistency points (Documentation/design.md, "Consistency points").
 * Node n's area (node_area_start + n * node_area_blocks, node_area_blocks
 * blocks) holds:
 *
 *   +0, +1   two copies of struct twinfs_cp_header; the valid copy with
 *            the higher c_update is the header (a torn write leaves the
 *            other one)
 *   +2 ..    the CP journal: c_jdesc_blocks descriptor blocks (arrays of
 *            struct twinfs_cp_jent, one per journalled block, in order),
 *            then c_jblocks block images
 *
 * A consistency point copies every metadata block changed since the last
 * one into the journal, flushes, writes the header with c_jstate
 * TWINFS_CP_JOURNAL_COMMITTED and c_jseq, writes the blocks home, flushes,
 * and writes the header again with c_cp_seq = c_jseq and the journal
 * empty.  Mount finds a committed journal and writes it home first.  The
 * disk then holds exactly the changes of every change record with seq <=
 * c_cp_seq.  An all-zero area is a file system never mounted: c_cp_seq 0.
 */
#define TWINFS_CP_MAGIC		0x54574350u	/* "TWCP" */
#define TWINFS_CP_HDR_BLOCKS	2u
#define TWINFS_CP_JOURNAL_EMPTY		0u
#define TWINFS_CP_JOURNAL_COMMITTED	1u
#define TWINFS_CP_JENTS_PER_BLOCK	(TWINFS_BLOCK_SIZE / 16u)

struct twinfs_cp_header {
	__le32 c_magic;			/* TWINFS_CP_MAGIC */
	__le32 c_version;		/* TWINFS_FORMAT_VERSION */
	__u8   c_uuid[16];		/* the file system's s_uuid */
	__le32 c_node_id;
	__le32 c_jstate;		/* TWINFS_CP_JOURNAL_* */
	__le64 c_update;		/* header writes; copy c_update % 2 */
	__le64 c_cp_seq;		/* last change record on disk */
	__le64 c_cp_count;		/* consistency points written */
	__le64 c_jseq;			/* COMMITTED: c_cp_seq once home */
	__le32 c_jblocks;		/* COMMITTED: block images */
	__le32 c_jdesc_blocks;		/* COMMITTED: descriptor blocks */
	__le32 c_jdesc_crc;		/* crc32c of the descriptor blocks */
	__u8   c_pad[TWINFS_BLOCK_SIZE - 80];
	__le32 c_checksum;		/* crc32c of the block, this field 0 */
};

/* One journalled block: where it goes and the crc32c of its image.  Every
 * crc here is the standard crc32c (seed ~0, result inverted); c_jdesc_crc
 * covers the c_jdesc_blocks descriptor blocks, whole, in order. */
struct twinfs_cp_jent {
	__le64 j_home;
	__le32 j_crc;
	__le32 j_pad;
};

/*
 * The disk heartbeat (block TWINFS_HEARTBEAT_BLOCK, Documentation/
 * twinfsd.md "Disk heartbeat"): sector n (512 bytes at byte
 * TWINFS_HEARTBEAT_BLOCK * TWINFS_BLOCK_SIZE + n * 512) is written only by
 * the twinfsd of the node whose slot is n (its disk_area), every
 * disk_heartbeat_ms, with hb_counter one higher each time.  The other
 * nodes read the block and tell a dead node (its sector unchanged) from
 * one that is only cut off from the network.  twinfs.ko, mkfs (which
 * zeroes it) and fsck do not interpret it; a zero sector is a slot never
 * written.
 */
#define TWINFS_HEARTBEAT_BLOCK		1u
#define TWINFS_HEARTBEAT_MAGIC		0x54574842u	/* "TWHB" */
#define TWINFS_HEARTBEAT_VERSION	1u
#define TWINFS_HEARTBEAT_SECTOR		512u
#define TWINFS_HEARTBEAT_SLOTS		(TWINFS_BLOCK_SIZE / TWINFS_HEARTBEAT_SECTOR)

struct twinfs_heartbeat {
	__le32 hb_magic;		/* TWINFS_HEARTBEAT_MAGIC */
	__le32 hb_version;		/* TWINFS_HEARTBEAT_VERSION */
	__le32 hb_slot;			/* the sector's index in the block */
	__le32 hb_node_id;		/* the writer's corosync node id */
	__le64 hb_counter;		/* one higher at every write */
	__le64 hb_incarnation;		/* the writer's start, ns since 1970 */
	__le32 hb_interval_ms;		/* the writer's disk_heartbeat_ms */
	__u8   hb_pad[TWINFS_HEARTBEAT_SECTOR - 40];
	__le32 hb_checksum;		/* crc32c of the sector, this field 0 */
};

#ifdef __cplusplus
#define TWINFS_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define TWINFS_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_super) == TWINFS_BLOCK_SIZE,
		     "superblock is one block");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_inode) == TWINFS_INODE_SIZE,
		     "inode size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_ext_leaf) == TWINFS_BLOCK_SIZE,
		     "extent leaf is one block");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_dir_header) == TWINFS_BLOCK_SIZE,
		     "directory header is one block");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_cp_header) == TWINFS_BLOCK_SIZE,
		     "consistency point header is one block");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_cp_jent) == 16,
		     "journal entry size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_heartbeat) == TWINFS_HEARTBEAT_SECTOR,
		     "disk heartbeat is one sector");
TWINFS_STATIC_ASSERT(TWINFS_HEARTBEAT_SLOTS >= TWINFS_MAX_NODES,
		     "a heartbeat slot for every node");

#endif /* TWINFS_FORMAT_H */
