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
int twinfs_mirror_send_flags(struct socket *s, u16 type, u16 flags, u64 id,
			     u64 off, const void *payload, u32 len);
/* A frame header (and its crcs) in memory; whether one is well formed:
 * magic, header crc, only known flags (each end checks the type's). */
void twinfs_mirror_frame_init(struct twinfs_mirror_frame *f, u16 type,
			      u16 flags, u64 id, u64 off, const void *payload,
			      u32 len);
bool twinfs_mirror_frame_ok(const struct twinfs_mirror_frame *f);
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
	unsigned long sent_at;		/* jiffies, for the watchdog */
	/* NULL: twinfs_mirror_end() waits.  Else nobody does: done() is
	 * called once, off the pending list, when the ACK comes or the link
	 * fails (the range then is marked for the tail resync), from the
	 * ACK's context (the mirror thread, the CQ's workqueue). */
	void (*done)(struct twinfs_mirror_req *r, int status);
};

int twinfs_mirror_start(struct super_block *sb);
void twinfs_mirror_stop(struct super_block *sb);
/* Sends [off, off + len) (at most TWINFS_MIRROR_PAYLOAD_MAX bytes) of the
 * region image to the partner; twinfs_mirror_end() waits for its ACK, so
 * the local write can go on in between (or r->done is called).  Without a
 * partner, or degraded, r->sent is false and neither happens. */
void twinfs_mirror_begin(struct super_block *sb, const u8 *region, u64 off,
			 u32 len, struct twinfs_mirror_req *r);
void twinfs_mirror_end(struct super_block *sb, struct twinfs_mirror_req *r);
/* mirror=required and the partner is not there: wait (bounded). */
int twinfs_mirror_ready(struct super_block *sb);
ssize_t twinfs_mirror_show(struct super_block *sb, char *buf);
/* What the mirror line says, for genetlink: transport NULL and state
 * "none" without a partner. */
struct twinfs_mirror_info {
	const char *transport;		/* "tcp" or "rdma" */
	const char *state;		/* "degraded", "disconnected",
					 * "resyncing", "mirrored" */
	u64 writes, resyncs, tail_resyncs;
};
void twinfs_mirror_info(struct super_block *sb, struct twinfs_mirror_info *mi);
/* Genetlink DISCONNECT and CONNECT of a mount's partner link; -EOPNOTSUPP
 * without partner=.  The caller holds an active reference to sb. */
int twinfs_mirror_disconnect(struct super_block *sb);
int twinfs_mirror_reconnect(struct super_block *sb);

/* mirror_rdma.c: the RDMA transport (Documentation/rdma-transport.md) */
struct twinfs_rdma;

struct twinfs_rdma_ops {
	/* An ACK arrived for the frame id (the CQ's workqueue). */
	void (*acked)(void *ctx, u64 id);
	/* The connection failed (once): drop the TCP link too; the mirror
	 * thread then calls twinfs_rdma_close(). */
	void (*broken)(void *ctx, int err);
};

struct twinfs_rdma_conf {
	struct sockaddr_in addr;	/* partner, with the offered port */
	const u8 *region;		/* the owner's image, vmalloc'd */
	u64 size;
	u32 node_id;
	u8 token[TWINFS_MIRROR_MAC];
	unsigned int timeout_ms;	/* for each connect step */
	const struct twinfs_rdma_ops *ops;
	void *ctx;
};

struct twinfs_rdma *twinfs_rdma_connect(const struct twinfs_rdma_conf *conf,
					const char **why);
/* A frame of type (a WRITE: after the RDMA WRITEs of [off, off + len) of
 * the image); every frame is answered by an ACK with its id. */
int twinfs_rdma_submit(struct twinfs_rdma *rc, u16 type, u64 id, u64 off,
		       u32 len);
void twinfs_rdma_shutdown(struct twinfs_rdma *rc);
void twinfs_rdma_close(struct twinfs_rdma *rc);
const char *twinfs_rdma_device(struct twinfs_rdma *rc);
unsigned int twinfs_rdma_pieces(struct twinfs_rdma *rc);

/* The partner's side: the TCP session an RDMA connection may join. */
struct twinfs_rdma_session {
	u8 token[TWINFS_MIRROR_MAC];	/* HMAC(key, "twinfs-r" | cn | sn) */
	struct sockaddr_in peer;	/* the owner's address */
	u16 port;			/* the rdma_cm port */
	u64 size;			/* the owner's region */
	struct socket *sock;		/* shut down when RDMA fails */
	/* Checks and applies a frame (a WRITE's bytes at data), as for one
	 * that came over TCP; 0: the transport ACKs it. */
	int (*frame)(void *ctx, u16 type, u64 off, u32 len, const u8 *data);
	void *ctx;
};

int twinfs_rdma_listen(u16 rdma_port);
void twinfs_rdma_unlisten(void);
void twinfs_rdma_target_begin(const struct twinfs_rdma_session *s);
void twinfs_rdma_target_end(void);
const char *twinfs_rdma_target_transport(void);
int twinfs_rdma_init(void);
void twinfs_rdma_exit(void);

/* mirror_target.c: the partner's end */
struct twinfs_target_info {
	bool listening;
	bool serving;			/* an owner is connected */
	bool partial;			/* copy=partial: a resync is unfinished */
	bool rdma;			/* RDMA is offered */
	u16 port;
	char device[64];
	u64 size, writes, resyncs, conns, refused;
	const char *transport;		/* of the connection, or "none" */
};
void twinfs_target_info(struct twinfs_target_info *ti);
/* Stops the target; ti: what it held (listening false if none ran). */
void twinfs_target_stop_info(struct twinfs_target_info *ti);
ssize_t twinfs_target_show(char *buf);
int twinfs_target_command(const char *cmd);
void twinfs_target_exit(void);

#endif /* TWINFS_MIRROR_KERNEL_H */
