// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the partner's end of the mirror link.  The module keeps, on a
 * device of the partner's own NVRAM, a byte-for-byte copy of the owner's
 * change-memory region: every WRITE the owner sends is written there with
 * FUA and then ACKed.  Started and stopped through
 * /sys/fs/twinfs/mirror_target (root only):
 *
 *   start <port> <device> <keyfile> [rdma|tcp]
 *   stop
 *
 * With rdma (the default) the target also listens for rdma_cm on port + 1
 * and offers RDMA to an owner that asks for it (mirror_rdma.c); the TCP
 * connection of that owner then stays up beside the RDMA one, and its end
 * ends both.
 *
 * Takeover: stop the target (it holds the device exclusively), then mount
 * the owner's file system with nvram=<device>,node=<owner's node>: the
 * mount replays, from this copy, the records after the last consistency
 * point.  While the owner resynchronises the copy (SYNC_BEGIN .. SYNC_DONE)
 * the copy's header area says "partial", so a takeover cannot mount a copy
 * that is half old, half new.  One owner is served at a time; a peer that
 * fails the handshake,
 * or sends a malformed frame, is logged and dropped, and the target goes
 * on listening.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kthread.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <crypto/algapi.h>
#include <net/sock.h>
#include <net/tcp.h>
#include "mirror.h"
#include "cm.h"

struct twinfs_target {
	struct socket *listen;
	struct socket *conn;		/* the owner being served, or NULL */
	struct task_struct *thread;
	struct block_device *bdev;
	struct twinfs_mirror_key key;
	char device[64];
	u16 port;
	u64 size;
	u8 *buf;			/* one payload */
	u8 *hdr;			/* the header area during a resync */
	bool syncing;			/* the copy is partial: SYNC_BEGIN seen,
					 * SYNC_DONE not yet */
	bool hdr_seen;			/* a WRITE filled t->hdr */
	u64 epoch;			/* mirror session of the whole copy */
	u64 writes, conns, refused, resyncs;
	struct sockaddr_in peer;
	u32 owner_node;
	bool rdma;			/* offering RDMA: listening on rdma_port */
	u16 rdma_port;
};

static DEFINE_MUTEX(twinfs_target_lock);	/* twinfs_target */
static struct twinfs_target *twinfs_target;

#define tgt_info(fmt, ...) pr_info("twinfs: mirror target: " fmt "\n", ##__VA_ARGS__)
#define tgt_err(fmt, ...) pr_err_ratelimited("twinfs: mirror target: " fmt "\n", ##__VA_ARGS__)


static int twinfs_target_frame(void *ctx, u16 type, u64 off, u32 len,
			       const u8 *data);

static int twinfs_target_handshake(struct twinfs_target *t, struct socket *s)
{
	struct twinfs_mirror_hello hello;
	struct twinfs_mirror_frame f;
	u8 chal[TWINFS_MIRROR_NONCE + TWINFS_MIRROR_MAC];
	u8 mac[TWINFS_MIRROR_MAC];
	struct twinfs_mirror_rdma_offer offer;
	struct twinfs_rdma_session rs;
	u64 epoch;
	bool ask;
	int err;

	err = twinfs_mirror_recv(s, &f, &hello, sizeof(hello));
	if (err)
		return err;
	if (le16_to_cpu(f.f_type) != TWINFS_MIRROR_HELLO ||
	    le32_to_cpu(f.f_len) != sizeof(hello) ||
	    le32_to_cpu(hello.h_version) != TWINFS_MIRROR_VERSION ||
	    (le16_to_cpu(f.f_flags) & ~TWINFS_MIRROR_F_RDMA))
		return -EBADMSG;
	ask = le16_to_cpu(f.f_flags) & TWINFS_MIRROR_F_RDMA;
	if (le64_to_cpu(hello.h_region_size) > t->size) {
		tgt_err("owner's change memory (%llu bytes) does not fit %s (%llu bytes)",
			le64_to_cpu(hello.h_region_size), t->device, t->size);
		return -ENOSPC;
	}
	get_random_bytes(chal, TWINFS_MIRROR_NONCE);
	err = twinfs_mirror_mac(&t->key, "twinfs-s", hello.h_nonce, chal,
				chal + TWINFS_MIRROR_NONCE) ?:
	      twinfs_mirror_send(s, TWINFS_MIRROR_CHALLENGE, 0, 0, chal,
				 sizeof(chal)) ?:
	      twinfs_mirror_recv(s, &f, mac, sizeof(mac));
	if (err)
		return err;
	if (le16_to_cpu(f.f_type) != TWINFS_MIRROR_AUTH ||
	    le32_to_cpu(f.f_len) != sizeof(mac) || f.f_flags)
		return -EBADMSG;
	err = twinfs_mirror_mac(&t->key, "twinfs-c", chal, hello.h_nonce,
				chal + TWINFS_MIRROR_NONCE);
	if (err)
		return err;
	if (crypto_memneq(mac, chal + TWINFS_MIRROR_NONCE, sizeof(mac)))
		return -EKEYREJECTED;
	t->owner_node = le32_to_cpu(hello.h_node_id);
	/* Same session and a whole copy: the owner sends only what changed. */
	epoch = t->syncing ? 0 : t->epoch;
	if (!ask || !t->rdma)
		return twinfs_mirror_send(s, TWINFS_MIRROR_READY, epoch, 0, NULL,
					  0);
	/* Before READY: the owner connects as soon as it has the offer. */
	memset(&rs, 0, sizeof(rs));
	err = twinfs_mirror_mac(&t->key, "twinfs-r", hello.h_nonce, chal,
				rs.token);
	if (err)
		return err;
	rs.peer = t->peer;
	rs.port = t->rdma_port;
	rs.size = le64_to_cpu(hello.h_region_size);
	rs.sock = s;
	rs.frame = twinfs_target_frame;
	rs.ctx = t;
	twinfs_rdma_target_begin(&rs);
	memzero_explicit(rs.token, sizeof(rs.token));
	offer.o_port = cpu_to_le16(t->rdma_port);
	offer.o_recv_depth = 0;
	offer.o_flags = 0;
	return twinfs_mirror_send_flags(s, TWINFS_MIRROR_READY,
					TWINFS_MIRROR_F_RDMA, epoch, 0, &offer,
					sizeof(offer));
}

static int twinfs_target_write(struct twinfs_target *t, u64 off,
			       const u8 *data, u32 len)
{
	int err = twinfs_vmem_io(t->bdev, REQ_OP_WRITE | REQ_SYNC | REQ_FUA,
				 off, (void *)data, len);

	if (err)
		tgt_err("cannot write %s: %d", t->device, err);
	return err;
}

/* The mirror session a whole copy's header area (in t->hdr) names. */
static u64 twinfs_target_epoch(struct twinfs_target *t)
{
	const struct twinfs_cm_header *h;
	int copy;

	copy = twinfs_cm_header_pick(t->hdr, t->size, NULL);
	if (copy < 0)
		return 0;
	h = (const void *)(t->hdr + copy * TWINFS_CM_HDR_COPY);
	return le64_to_cpu(h->h_mirror_epoch);
}

/* SYNC_BEGIN: the copy is partial on NVRAM before the first resync byte. */
static int twinfs_target_sync_begin(struct twinfs_target *t)
{
	memset(t->hdr, 0, TWINFS_CM_HDR_AREA);
	*(__le32 *)t->hdr = cpu_to_le32(TWINFS_CM_PARTIAL_MAGIC);
	*(__le32 *)(t->hdr + TWINFS_CM_HDR_COPY) =
		cpu_to_le32(TWINFS_CM_PARTIAL_MAGIC);
	t->syncing = true;
	t->hdr_seen = false;
	t->epoch = 0;
	return twinfs_target_write(t, 0, t->hdr, TWINFS_CM_HDR_AREA);
}

/* A WRITE: during a resync the header area goes to t->hdr only. */
static int twinfs_target_apply(struct twinfs_target *t, u64 off, u32 len,
			       const u8 *data)
{
	u32 skip = 0;

	if (t->syncing && off < TWINFS_CM_HDR_AREA) {
		skip = min_t(u64, len, TWINFS_CM_HDR_AREA - off);
		memcpy(t->hdr + off, data, skip);
		if (!off && skip == TWINFS_CM_HDR_AREA)
			t->hdr_seen = true;
	}
	if (skip == len)
		return 0;
	return twinfs_target_write(t, off + skip, data + skip, len - skip);
}

/* Checks a request frame: 0, or why it is refused. */
static const char *twinfs_target_check(struct twinfs_target *t, u16 type,
				       u64 off, u32 len)
{
	switch (type) {
	case TWINFS_MIRROR_WRITE:
		if (!len || off % SECTOR_SIZE || len % SECTOR_SIZE ||
		    off > t->size || len > t->size - off)
			return "bad request";
		return NULL;
	case TWINFS_MIRROR_SYNC_BEGIN:
		return len || off != TWINFS_CM_HDR_AREA ? "bad request" : NULL;
	case TWINFS_MIRROR_SYNC_DONE:
		return len || !t->syncing || !t->hdr_seen ?
			"bad request" : NULL;
	default:
		return "bad request";
	}
}

/*
 * One frame from the owner, over either transport (data: the WRITE's
 * bytes): checked, then applied; the caller ACKs it on 0.  Frames come one
 * at a time: the target thread's TCP loop, or the RDMA connection's
 * completion work, never both (see twinfs_target_serve()).
 */
static int twinfs_target_frame(void *ctx, u16 type, u64 off, u32 len,
			       const u8 *data)
{
	struct twinfs_target *t = ctx;
	const char *why;
	int err;

	why = twinfs_target_check(t, type, off, len);
	if (why) {
		tgt_err("%s (type %u, %u bytes at %llu) from %pISpc; dropping it",
			why, type, len, off, &t->peer);
		return -EBADMSG;
	}
	if (type == TWINFS_MIRROR_SYNC_BEGIN) {
		err = twinfs_target_sync_begin(t);
	} else if (type == TWINFS_MIRROR_SYNC_DONE) {
		err = twinfs_target_write(t, 0, t->hdr, TWINFS_CM_HDR_AREA);
		if (!err) {
			t->syncing = false;
			t->epoch = twinfs_target_epoch(t);
			t->resyncs++;
			tgt_info("copy of node %u in %s is complete",
				 t->owner_node, t->device);
		}
	} else {
		err = twinfs_target_apply(t, off, len, data);
		t->writes++;
	}
	return err;
}

/* Serves one owner until its connection ends.  Over RDMA nothing but the
 * end of the connection comes here. */
static void twinfs_target_serve(struct twinfs_target *t, struct socket *s)
{
	struct twinfs_mirror_frame f;
	u32 unacked = 0;
	const char *tr;
	int err;

	for (;;) {
		err = twinfs_mirror_recv(s, &f, t->buf,
					 TWINFS_MIRROR_PAYLOAD_MAX);
		if (err) {
			if (err == -EBADMSG)
				tgt_err("malformed frame from %pISpc; dropping it",
					&t->peer);
			return;
		}
		tr = twinfs_rdma_target_transport();
		if (tr && !strcmp(tr, "rdma")) {
			tgt_err("frame over tcp from %pISpc while its rdma connection is up; dropping it",
				&t->peer);
			return;
		}
		if (twinfs_target_frame(t, le16_to_cpu(f.f_type),
					le64_to_cpu(f.f_off),
					le32_to_cpu(f.f_len), t->buf))
			return;
		/* Group commit: while more frames are queued, one ACK later
		 * answers them all (they are applied in order). */
		if (++unacked < TWINFS_MIRROR_ACK_BATCH && tcp_inq(s->sk) > 0)
			continue;
		unacked = 0;
		if (twinfs_mirror_send_flags(s, TWINFS_MIRROR_ACK,
					     TWINFS_MIRROR_F_UPTO,
					     le64_to_cpu(f.f_id), 0, NULL, 0))
			return;
	}
}

static int twinfs_target_thread(void *arg)
{
	struct twinfs_target *t = arg;
	struct socket *s;
	int err;

	while (!kthread_should_stop()) {
		err = kernel_accept(t->listen, &s, 0);
		if (err) {
			if (!kthread_should_stop())
				msleep_interruptible(100);
			continue;
		}
		memset(&t->peer, 0, sizeof(t->peer));
		kernel_getpeername(s, (struct sockaddr *)&t->peer);
		twinfs_mirror_tune(s, 5 * HZ);
		mutex_lock(&twinfs_target_lock);
		t->conn = s;
		mutex_unlock(&twinfs_target_lock);
		err = twinfs_target_handshake(t, s);
		if (err) {
			t->refused++;
			tgt_err("refused %pISpc: %s (%d)", &t->peer,
				err == -EKEYREJECTED ? "wrong cluster key" :
				err == -EBADMSG ? "malformed handshake" :
				"handshake failed", err);
		} else {
			t->conns++;
			tgt_info("serving node %u at %pISpc into %s",
				 t->owner_node, &t->peer, t->device);
			s->sk->sk_rcvtimeo = MAX_SCHEDULE_TIMEOUT;
			twinfs_target_serve(t, s);
			tgt_info("node %u at %pISpc went away", t->owner_node,
				 &t->peer);
		}
		/* Its RDMA connection, if any, ends with it. */
		twinfs_rdma_target_end();
		mutex_lock(&twinfs_target_lock);
		t->conn = NULL;
		mutex_unlock(&twinfs_target_lock);
		sock_release(s);
	}
	return 0;
}

static void twinfs_target_free(struct twinfs_target *t)
{
	if (t->listen)
		sock_release(t->listen);
	if (t->bdev)
		blkdev_put(t->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	twinfs_mirror_key_put(&t->key);
	vfree(t->hdr);
	vfree(t->buf);
	kfree(t);
}

static int twinfs_target_start(u16 port, const char *dev, const char *keyfile,
			       bool rdma)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_ANY),
		.sin_port = htons(port),
	};
	struct twinfs_target *t;
	int err;

	if (twinfs_target)
		return -EBUSY;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	strscpy(t->device, dev, sizeof(t->device));
	t->port = port;
	err = -ENOMEM;
	t->buf = vmalloc(TWINFS_MIRROR_PAYLOAD_MAX);
	t->hdr = vmalloc(TWINFS_CM_HDR_AREA);
	if (!t->buf || !t->hdr)
		goto fail;
	err = twinfs_mirror_key_load(&t->key, keyfile);
	if (err) {
		pr_err("twinfs: mirror target: cluster key %s: %d\n", keyfile,
		       err);
		goto fail;
	}
	t->bdev = blkdev_get_by_path(dev, FMODE_READ | FMODE_WRITE |
				     FMODE_EXCL, t);
	if (IS_ERR(t->bdev)) {
		err = PTR_ERR(t->bdev);
		t->bdev = NULL;
		pr_err("twinfs: mirror target: cannot open %s: %d\n", dev, err);
		goto fail;
	}
	t->size = bdev_nr_bytes(t->bdev);
	err = twinfs_vmem_io(t->bdev, REQ_OP_READ, 0, t->hdr,
			     TWINFS_CM_HDR_AREA);
	if (err)
		goto fail;
	/* A resync cut short by the owner's death left it partial. */
	t->syncing = le32_to_cpu(*(__le32 *)t->hdr) == TWINFS_CM_PARTIAL_MAGIC;
	t->epoch = t->syncing ? 0 : twinfs_target_epoch(t);
	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &t->listen);
	if (err)
		goto fail;
	sock_set_reuseaddr(t->listen->sk);
	err = kernel_bind(t->listen, (struct sockaddr *)&sin, sizeof(sin)) ?:
	      kernel_listen(t->listen, 4);
	if (err) {
		pr_err("twinfs: mirror target: cannot listen on port %u: %d\n",
		       port, err);
		goto fail;
	}
	if (rdma) {
		t->rdma_port = port + TWINFS_MIRROR_RDMA_PORT_DELTA;
		err = t->rdma_port ? twinfs_rdma_listen(t->rdma_port) : -EINVAL;
		if (err)
			pr_warn("twinfs: mirror target: no rdma listener on port %u (%d); offering tcp only\n",
				t->rdma_port, err);
		t->rdma = !err;
	}
	t->thread = kthread_run(twinfs_target_thread, t, "twinfs-target");
	if (IS_ERR(t->thread)) {
		err = PTR_ERR(t->thread);
		goto fail;
	}
	twinfs_target = t;
	if (t->rdma)
		tgt_info("listening on port %u (rdma on %u), copies into %s (%llu bytes)",
			 port, t->rdma_port, dev, t->size);
	else
		tgt_info("listening on port %u, copies into %s (%llu bytes)",
			 port, dev, t->size);
	return 0;
fail:
	if (t->rdma)
		twinfs_rdma_unlisten();
	twinfs_target_free(t);
	return err;
}

static void twinfs_target_fill_info(struct twinfs_target *t,
				    struct twinfs_target_info *ti);

/* twinfs_target_lock is held (and dropped while the thread stops).  ti, if
 * given, says what the target held once its connection is gone: nothing
 * changes the copy any more; serving: whether an owner was connected. */
static void twinfs_target_stop(struct twinfs_target_info *ti)
{
	struct twinfs_target *t = twinfs_target;
	bool serving;

	if (!t)
		return;
	serving = t->conn;
	kernel_sock_shutdown(t->listen, SHUT_RDWR);
	if (t->conn)
		kernel_sock_shutdown(t->conn, SHUT_RDWR);
	twinfs_target = NULL;
	mutex_unlock(&twinfs_target_lock);
	if (t->rdma)
		twinfs_rdma_unlisten();
	kthread_stop(t->thread);
	mutex_lock(&twinfs_target_lock);
	tgt_info("stopped; %s is free", t->device);
	if (ti) {
		twinfs_target_fill_info(t, ti);
		ti->serving = serving;
	}
	twinfs_target_free(t);
}

void twinfs_target_stop_info(struct twinfs_target_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	mutex_lock(&twinfs_target_lock);
	twinfs_target_stop(ti);
	mutex_unlock(&twinfs_target_lock);
	if (!ti->transport)
		ti->transport = "none";
}

int twinfs_target_command(const char *cmd)
{
	char dev[64], key[128], tr[8] = "rdma";
	unsigned int port;
	int err = 0, n;

	mutex_lock(&twinfs_target_lock);
	n = sscanf(cmd, "start %u %63s %127s %7s", &port, dev, key, tr);
	if (n >= 3 && port && port < 65536 &&
	    (!strcmp(tr, "rdma") || !strcmp(tr, "tcp")))
		err = twinfs_target_start(port, dev, key, !strcmp(tr, "rdma"));
	else if (sysfs_streq(cmd, "stop"))
		twinfs_target_stop(NULL);
	else
		err = -EINVAL;
	mutex_unlock(&twinfs_target_lock);
	return err;
}

/* twinfs_target_lock */
static void twinfs_target_fill_info(struct twinfs_target *t,
				    struct twinfs_target_info *ti)
{
	ti->listening = true;
	ti->serving = t->conn;
	ti->partial = t->syncing;
	ti->rdma = t->rdma;
	ti->port = t->port;
	strscpy(ti->device, t->device, sizeof(ti->device));
	ti->size = t->size;
	ti->writes = t->writes;
	ti->resyncs = t->resyncs;
	ti->conns = t->conns;
	ti->refused = t->refused;
	ti->transport = twinfs_rdma_target_transport();
}

void twinfs_target_info(struct twinfs_target_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	mutex_lock(&twinfs_target_lock);
	if (twinfs_target)
		twinfs_target_fill_info(twinfs_target, ti);
	mutex_unlock(&twinfs_target_lock);
	if (!ti->transport)
		ti->transport = "none";
}

ssize_t twinfs_target_show(char *buf)
{
	struct twinfs_target_info ti;

	twinfs_target_info(&ti);
	if (!ti.listening)
		return sysfs_emit(buf, "stopped\n");
	return sysfs_emit(buf, "listening port=%u device=%s size=%llu serving=%s copy=%s writes=%llu resyncs=%llu connections=%llu refused=%llu rdma=%s transport=%s\n",
			  ti.port, ti.device, ti.size,
			  ti.serving ? "yes" : "no",
			  ti.partial ? "partial" : "whole", ti.writes,
			  ti.resyncs, ti.conns, ti.refused,
			  ti.rdma ? "yes" : "no", ti.transport);
}

void twinfs_target_exit(void)
{
	mutex_lock(&twinfs_target_lock);
	twinfs_target_stop(NULL);
	mutex_unlock(&twinfs_target_lock);
}
