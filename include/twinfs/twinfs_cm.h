/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * twinfs change memory format (NVRAM, later mirrored to the partner), shared
 * by twinfs.ko, the portable core and the user-space tools.  Every
 * multi-byte field is little endian.  Documentation/design.md, section
 * "Change memory format", describes it; keep the two in step.
 *
 * A change-memory region of R bytes:
 *
 *   0       header area, 4 KiB: two copies of struct twinfs_cm_header, at
 *           0 and 2048; the valid copy with the higher h_update is the
 *           header (a torn header write leaves the other copy)
 *   4096    lane 0, lane 1, ... lane L-1, each h_lane_size bytes
 *
 * A lane is a ring of records.  Each record starts on a 64-byte boundary
 * of its lane with a struct twinfs_cm_rec header, then r_len payload bytes,
 * then padding to the next 64-byte boundary (a record never straddles a
 * cache line with another record).  Records of one lap of the ring carry
 * the lap's generation r_lane_gen; a writer that cannot fit a record
 * before the end of the lane starts the next lap at offset 0 with the
 * generation plus one.  h_lanes[] says where each lane's oldest live
 * record is (l_head) and its generation (l_gen).
 *
 * The payload is a sequence of attributes, each a struct twinfs_cm_attr
 * followed by a_len value bytes, packed without padding.
 */
#ifndef TWINFS_CM_H
#define TWINFS_CM_H

#include <linux/types.h>
#include "twinfs_format.h"

#define TWINFS_CM_MAGIC		0x5457434du	/* "TWCM" */
#define TWINFS_CM_VERSION	1u
/*
 * The first word of both header copies of a partner's mirror copy while a
 * resync runs (the rest of the header area zero): the copy is incomplete
 * and must not be mounted (include/twinfs/twinfs_mirror.h, SYNC_BEGIN).
 */
#define TWINFS_CM_PARTIAL_MAGIC	0x54574350u	/* "TWCP" */
#define TWINFS_CM_HDR_AREA	4096u		/* header area: two copies */
#define TWINFS_CM_HDR_COPY	2048u		/* bytes of one copy */
#define TWINFS_CM_LANES_DEFAULT	16u
#define TWINFS_CM_LANES_MAX	64u
#define TWINFS_CM_LANE_ALIGN	4096u		/* lane sizes are pages */
#define TWINFS_CM_LANE_MIN	(128u << 10)	/* two maximal records */
#define TWINFS_CM_LANE_MAX	(1u << 30)

struct twinfs_cm_lane_desc {
	__le32 l_head;			/* offset of the oldest live record */
	__le32 l_gen;			/* generation of the lap l_head is in */
};

struct twinfs_cm_header {
	__le32 h_magic;			/* TWINFS_CM_MAGIC */
	__le32 h_version;		/* TWINFS_CM_VERSION */
	__u8   h_uuid[16];		/* of the file system (s_uuid) */
	__le32 h_node_id;		/* the node whose changes these are */
	__le32 h_lane_count;		/* L, 1 .. TWINFS_CM_LANES_MAX */
	__le64 h_region_size;		/* R, bytes */
	__le32 h_lane_size;		/* bytes, multiple of 4096 */
	__le32 h_flags;			/* none defined: 0 */
	__le64 h_cp_seq;		/* last seq of the last durable CP */
	__le64 h_update;		/* header writes; copy h_update % 2 */
	struct twinfs_cm_lane_desc h_lanes[TWINFS_CM_LANES_MAX];
	/* The owner's mirror session (random, 0: none): a partner whose whole
	 * copy carries it is sent only what changed since (a tail resync). */
	__le64 h_mirror_epoch;
	__u8   h_pad[TWINFS_CM_HDR_COPY - 72 - 8 * TWINFS_CM_LANES_MAX - 4];
	__le32 h_checksum;		/* crc32c of the copy, this field 0 */
};

/* ---- records ---- */
#define TWINFS_CM_REC_MAGIC	0x54574352u	/* "TWCR" */
#define TWINFS_CM_REC_ALIGN	64u
#define TWINFS_CM_REC_HDR_SIZE	40u
/* Bytes one record may take in a lane, padding included. */
#define TWINFS_CM_REC_MAX	65536u
#define TWINFS_CM_PAYLOAD_MAX	(TWINFS_CM_REC_MAX - TWINFS_CM_REC_HDR_SIZE)

struct twinfs_cm_rec {
	__le32 r_magic;			/* TWINFS_CM_REC_MAGIC */
	__le32 r_hdr_crc;		/* crc32c of these 40 bytes, this 0 */
	__le64 r_seq;			/* global, 1, 2, 3, ... */
	__le64 r_acked_upto;		/* every seq <= this was durable */
	__le16 r_op;			/* TWINFS_CM_OP_* */
	__le16 r_flags;			/* none defined: 0 */
	__le32 r_len;			/* payload bytes */
	__le32 r_payload_crc;		/* crc32c of the payload */
	__le32 r_lane_gen;		/* lap of the ring the record is in */
	/* payload, then zero padding to TWINFS_CM_REC_ALIGN */
};

/* Operations.  Every record describes one completed VFS operation. */
enum twinfs_cm_op {
	TWINFS_CM_OP_CREATE = 1,
	TWINFS_CM_OP_MKNOD = 2,
	TWINFS_CM_OP_MKDIR = 3,
	TWINFS_CM_OP_SYMLINK = 4,
	TWINFS_CM_OP_LINK = 5,
	TWINFS_CM_OP_UNLINK = 6,
	TWINFS_CM_OP_RMDIR = 7,
	TWINFS_CM_OP_RENAME = 8,
	TWINFS_CM_OP_SETATTR = 9,
	TWINFS_CM_OP_TRUNCATE = 10,
	TWINFS_CM_OP_WRITE = 11,
};
#define TWINFS_CM_OP_MAX	11u

/* ---- payload attributes ---- */
struct twinfs_cm_attr {
	__le16 a_type;			/* TWINFS_CM_A_* */
	__le16 a_len;			/* value bytes following (no padding) */
};
#define TWINFS_CM_ATTR_HDR_SIZE	4u

enum twinfs_cm_attr_type {
	TWINFS_CM_A_PARENT_INO = 1,	/* __le64, directory of NAME */
	TWINFS_CM_A_INO = 2,		/* __le64, inode created/acted on */
	TWINFS_CM_A_NAME = 3,		/* 1..255 bytes, no '/', no NUL */
	TWINFS_CM_A_NEW_PARENT_INO = 4,	/* __le64, rename: new directory */
	TWINFS_CM_A_NEW_NAME = 5,	/* rename: new name, like NAME */
	TWINFS_CM_A_TARGET_INO = 6,	/* __le64, rename: inode replaced */
	TWINFS_CM_A_MODE = 7,		/* __le32 */
	TWINFS_CM_A_UID = 8,		/* __le32 */
	TWINFS_CM_A_GID = 9,		/* __le32 */
	TWINFS_CM_A_SIZE = 10,		/* __le64, truncate: new size */
	TWINFS_CM_A_ATIME = 11,		/* __le64 sec (signed), __le32 nsec */
	TWINFS_CM_A_MTIME = 12,		/* same */
	TWINFS_CM_A_CTIME = 13,		/* same; the operation's time */
	TWINFS_CM_A_RDEV = 14,		/* __le32, new_encode_dev() form */
	TWINFS_CM_A_OFFSET = 15,	/* __le64, write: file offset */
	TWINFS_CM_A_DATA = 16,		/* write: 1..TWINFS_CM_DATA_MAX bytes */
	TWINFS_CM_A_SYMLINK_TARGET = 17,/* 1..4095 bytes, no NUL */
	TWINFS_CM_A_GENERATION = 18,	/* __le32, new inode's i_generation */
	TWINFS_CM_A_FLAGS = 19,		/* __le32: rename flags, inode flags */
};
#define TWINFS_CM_A_MAX		19u

#define TWINFS_CM_TIME_SIZE	12u
#define TWINFS_CM_DATA_MAX	32768u
#define TWINFS_CM_SYMLINK_MAX	4095u
#define TWINFS_CM_MAX_FILE_SIZE	0x7fffffffffffffffull

/* FLAGS of a RENAME: the values of the kernel's RENAME_* flags. */
#define TWINFS_CM_RENAME_NOREPLACE	1u
#define TWINFS_CM_RENAME_EXCHANGE	2u

TWINFS_STATIC_ASSERT(sizeof(struct twinfs_cm_header) == TWINFS_CM_HDR_COPY,
		     "change memory header copy size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_cm_rec) == TWINFS_CM_REC_HDR_SIZE,
		     "change record header size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_cm_attr) == TWINFS_CM_ATTR_HDR_SIZE,
		     "change record attribute header size");

#endif /* TWINFS_CM_H */
