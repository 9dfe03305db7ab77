/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: mirroring the change memory to the partner (seeds 001, 004).
 * Wire format: include/twinfs/twinfs_mirror.h.  mirror_link.c has what both
 * ends share (frames over a kernel TCP socket, the HMAC handshake),
 * mirror.c the owner's end (one per mount with partner=), mirror_target.c
 * the partner's end (one per module, started through sysfs).
 */
#ifndef TWINFS_MIRROR_KERNEL_H
#define TWINFS_MIRROR_KERNEL_H

#include <linux/net.h>
#include <linux/in.h>
#include "twinfs.h"
#include "../include/twinfs/twinfs_mirror.h"

struct crypto_shash;

/* mirror_link.c */
struct twinfs_mirror_key {
	struct crypto_shash *tfm;	/* hmac(sha256) keyed with the file */
};

int twinfs_mirror_key_load(struct twinfs_mirror_key *k, const char *path);
void twinfs_mirror_key_put(struct twinfs_mirror_key *k);
/* HMAC(key, label | a | b), each nonce TWINFS_MIRROR_NONCE bytes. */
int twinfs_mirror_mac(struct twinfs_mirror_key *k, const char *label,
		      const u8 *a, const u8 *b, u8 *mac);
int twinfs_mirror_send(struct socket *s, u16 type, u64 id, u64 off,
		       const void *payload, u32 len);
/* Receives a frame with a payload of at most max bytes into buf.  0 or a
 * negative errno; -EBADMSG for a malformed frame. */
int twinfs_mirror_recv(struct socket *s, struct twinfs_mirror_frame *f,
		       void *buf, u32 max);
int twinfs_mirror_parse_addr(const char *str, struct sockaddr_in *sin);
void twinfs_mirror_tune(struct socket *s, long sndtimeo);

/* mirror.c: the owner's end */
struct twinfs_mirror_req {
	struct list_head list;
	u64 id;
	u64 off;			/* the range, for a tail resync */
	u32 len;
	int status;			/* 1 pending, 0 acked, < 0 failed */
	bool sent;
};

int twinfs_mirror_start(struct super_block *sb);
void twinfs_mirror_stop(struct super_block *sb);
/* Sends [off, off + len) (at most TWINFS_MIRROR_PAYLOAD_MAX bytes) of the
 * region image to the partner; twinfs_mirror_end() waits for its ACK, so
 * the local write can go on in between.  Without a partner, or degraded,
 * both do nothing. */
void twinfs_mirror_begin(struct super_block *sb, const u8 *region, u64 off,
			 u32 len, struct twinfs_mirror_req *r);
void twinfs_mirror_end(struct super_block *sb, struct twinfs_mirror_req *r);
/* mirror=required and the partner is not there: wait (bounded). */
int twinfs_mirror_ready(struct super_block *sb);
ssize_t twinfs_mirror_show(struct super_block *sb, char *buf);

/* mirror_target.c: the partner's end */
ssize_t twinfs_target_show(char *buf);
int twinfs_target_command(const char *cmd);
void twinfs_target_exit(void);

#endif /* TWINFS_MIRROR_KERNEL_H */
