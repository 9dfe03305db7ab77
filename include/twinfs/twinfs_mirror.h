/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * twinfs mirror link: the wire format between an owner's twinfs.ko and its
 * partner's (Documentation/design.md, "Mirroring").  Every multi-byte field
 * is little endian.  A frame is a struct twinfs_mirror_frame, then f_len
 * payload bytes.
 *
 * The partner keeps a byte-for-byte copy of the owner's change-memory
 * region on a device of its own; the owner sends every range it makes
 * durable locally (records and header writes) as a WRITE and answers its
 * caller only when the partner has ACKed it.  Takeover is a mount of the
 * file system with the copy as nvram= and the owner's node=.
 *
 * Handshake (client = owner, server = partner):
 *   C -> S  HELLO      payload struct twinfs_mirror_hello (client nonce)
 *   S -> C  CHALLENGE  payload server nonce, HMAC-SHA256(key, "twinfs-s" |
 *                      client nonce | server nonce)
 *   C -> S  AUTH       payload HMAC-SHA256(key, "twinfs-c" | server nonce |
 *                      client nonce)
 *   S -> C  READY      no payload
 * then C -> S WRITE (f_off, payload: the bytes), S -> C ACK (f_id of the
 * WRITE, once the bytes are durable on the partner).  Frames are applied
 * in order; under load one ACK with TWINFS_MIRROR_F_UPTO answers every
 * frame up to its f_id (the partner ACKs when no further frame is queued
 * on its socket, or after TWINFS_MIRROR_ACK_BATCH frames).  Anything else,
 * a bad checksum, a bad length or a failed HMAC closes the connection.
 *
 * Resync: every connection starts with one.  SYNC_BEGIN (f_off: the bytes
 * of the region's header area) makes the partner mark its copy partial on
 * its NVRAM before it ACKs; from then until SYNC_DONE it keeps WRITEs to
 * the header area in memory only, so the copy cannot be mounted while it
 * holds a mix of old and new bytes.  The owner then sends the whole region
 * as WRITEs (live WRITEs interleaved), then SYNC_DONE: the partner writes
 * the header it kept, and the copy is complete, before it ACKs.  A copy
 * left partial (the owner died mid-resync) is refused by a takeover mount.
 *
 * RDMA (Documentation/rdma-transport.md): an owner that may use it sets
 * TWINFS_MIRROR_F_RDMA in HELLO's f_flags; a partner that offers it answers
 * READY with the same flag and a struct twinfs_mirror_rdma_offer as payload.
 * The owner then connects with rdma_cm to the offered port, its REQ
 * carrying a struct twinfs_mirror_rdma_req whose token is
 * HMAC-SHA256(key, "twinfs-r" | client nonce | server nonce), and the
 * accepted connection's REP a struct twinfs_mirror_rdma_offer.  Over the
 * RC queue pair the partner SENDs KEYS frames (its registered copy), the
 * owner RDMA-WRITEs each range to the same offset of that copy and SENDs
 * the WRITE frame without payload (f_len the length, f_data_crc 0); the
 * partner SENDs the ACK as over TCP.  The TCP connection stays up; losing
 * either one ends both.
 */
#ifndef TWINFS_MIRROR_H
#define TWINFS_MIRROR_H

#include <linux/types.h>
#include "twinfs_format.h"

#define TWINFS_MIRROR_MAGIC	0x544d5752u	/* "RWMT" on the wire */
#define TWINFS_MIRROR_VERSION	3u
#define TWINFS_MIRROR_NONCE	32u
#define TWINFS_MIRROR_MAC	32u		/* HMAC-SHA256 */
#define TWINFS_MIRROR_PAYLOAD_MAX (256u << 10)
#define TWINFS_MIRROR_PORT	7790u

enum twinfs_mirror_type {
	TWINFS_MIRROR_HELLO = 1,
	TWINFS_MIRROR_CHALLENGE = 2,
	TWINFS_MIRROR_AUTH = 3,
	TWINFS_MIRROR_READY = 4,
	TWINFS_MIRROR_WRITE = 5,
	TWINFS_MIRROR_ACK = 6,
	/* S -> C over RDMA: payload struct twinfs_mirror_rdma_mr[]; f_off is
	 * the index of the first, f_id the number of regions in all. */
	TWINFS_MIRROR_RDMA_KEYS = 7,
	TWINFS_MIRROR_SYNC_BEGIN = 8,	/* f_off: header area bytes; ACKed */
	TWINFS_MIRROR_SYNC_DONE = 9,	/* no payload; ACKed */
};

/* f_flags: HELLO, the owner can use RDMA; READY, the partner offers it. */
#define TWINFS_MIRROR_F_RDMA	0x0001u
/* f_flags of a KEYS frame: the last of the set. */
#define TWINFS_MIRROR_F_LAST	0x0002u
/* f_flags of an ACK: every frame up to f_id (TCP). */
#define TWINFS_MIRROR_F_UPTO	0x0004u
#define TWINFS_MIRROR_F_KNOWN	(TWINFS_MIRROR_F_RDMA | TWINFS_MIRROR_F_LAST | \
				 TWINFS_MIRROR_F_UPTO)
/* Frames one cumulative ACK may answer at most. */
#define TWINFS_MIRROR_ACK_BATCH	64u
/* rdma_cm port of a target on TCP port p, unless it says otherwise. */
#define TWINFS_MIRROR_RDMA_PORT_DELTA	1u

struct twinfs_mirror_frame {
	__le32 f_magic;
	__le16 f_type;			/* TWINFS_MIRROR_* */
	__le16 f_flags;			/* 0 */
	__le64 f_id;			/* WRITE: request id; ACK: the same */
	__le64 f_off;			/* WRITE: offset in the region */
	__le32 f_len;			/* payload bytes */
	__le32 f_data_crc;		/* crc32c of the payload */
	__le32 f_pad;
	__le32 f_crc;			/* crc32c of the frame, this field 0 */
};

struct twinfs_mirror_hello {
	__le32 h_version;		/* TWINFS_MIRROR_VERSION */
	__le32 h_node_id;		/* the owner's node */
	__u8   h_uuid[16];		/* the file system */
	__le64 h_region_size;		/* bytes the copy must hold */
	__u8   h_nonce[TWINFS_MIRROR_NONCE];
};

/* READY payload with F_RDMA, and the private data of the REP. */
struct twinfs_mirror_rdma_offer {
	__le16 o_port;			/* rdma_cm port (RDMA_PS_TCP) */
	__le16 o_recv_depth;		/* receives the partner keeps posted */
	__le32 o_flags;			/* 0 */
};

/* Private data of the rdma_cm connection request (at most 56 bytes). */
struct twinfs_mirror_rdma_req {
	__le32 q_magic;			/* TWINFS_MIRROR_MAGIC */
	__le16 q_version;		/* TWINFS_MIRROR_VERSION */
	__le16 q_recv_depth;		/* receives the owner keeps posted */
	__le32 q_node_id;
	__le32 q_pad;
	__u8   q_token[TWINFS_MIRROR_MAC];
};

/* One registered piece of the partner's copy; the pieces tile [0, size). */
struct twinfs_mirror_rdma_mr {
	__le64 m_iova;			/* address for RDMA WRITE */
	__le32 m_rkey;
	__le32 m_len;
};

TWINFS_STATIC_ASSERT(sizeof(struct twinfs_mirror_rdma_offer) == 8,
		     "mirror rdma offer size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_mirror_rdma_req) == 48,
		     "mirror rdma request size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_mirror_rdma_mr) == 16,
		     "mirror rdma region size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_mirror_frame) == 40,
		     "mirror frame header size");
TWINFS_STATIC_ASSERT(sizeof(struct twinfs_mirror_hello) == 64,
		     "mirror hello size");

#endif /* TWINFS_MIRROR_H */
