// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the owner's end of the mirror link (seed 001: the write is
 * stored in the first store and mirrored in the second, and the source is
 * answered when both hold it; seed 004: a copy of every change descriptor
 * on both servers).
 *
 * A mount with partner= keeps a TCP connection to the partner's mirror
 * target.  Every range the change memory makes durable locally (records,
 * header writes) is sent as a WRITE before the local write and waited for
 * after it, so the caller is answered only when both copies exist; writes
 * of different lanes are in flight together on the one connection
 * (pipelined, acknowledged by id).  A thread owns the connection: it
 * connects, authenticates, copies the whole region over (resync), then
 * reads ACKs.  When the partner goes away (an error, or no ACK within
 * mirror_timeout_ms) the pair is degraded: with mirror=degraded the
 * change memory goes on alone and says so, with mirror=required new
 * operations wait for the partner (bounded) and then fail with -ENOLINK.
 *
 * Tail resync: each mount is a mirror session with a random epoch, kept in
 * the change-memory header (so in the partner's copy too).  Every range
 * that did not reach the partner (sent while degraded, or not ACKed) marks
 * its chunk in m->dirty.  A partner that comes back with a whole copy of
 * this epoch (its READY says so) is sent only the marked chunks and the
 * header; any other partner gets the whole region.
 *
 * Transports: frames go out through m->xport, TCP (the connection itself)
 * or RDMA (mirror_rdma.c), which the thread sets up after the handshake
 * when the partner offers it and mirror_transport=auto.  Over RDMA the ACKs
 * come through twinfs_mirror_rdma_acked() (the CQ's workqueue), and the
 * TCP connection only carries keepalives; losing either ends both.
 *
 * Requests with a done() callback are not waited for (the change
 * memory's group commit): the ACK path completes them, and a watchdog
 * drops a link that left the oldest one unanswered for mirror_timeout_ms.
 *
 * Locks: m->send_lock (the socket's sending side, m->sock, m->rdma and
 * m->xport) is taken under a lane lock or the change-memory header lock;
 * m->lock (spinlock: the pending list, the state, m->dirty and
 * m->tail_ok) under neither or under send_lock.  Only the thread sets
 * m->sock and m->rdma.
 */
#include <crypto/algapi.h>
#include <linux/kthread.h>
#include <linux/random.h>
#include <linux/delay.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/tcp.h>
#include <net/sock.h>
#include <net/tcp.h>
#include "mirror.h"
#include "genl.h"
#include "cm.h"

enum twinfs_mirror_state { MIRROR_DOWN, MIRROR_SYNCING, MIRROR_MIRRORED };

static const char *const twinfs_mirror_state_name[] = {
	"degraded", "resyncing", "mirrored",
};

struct twinfs_mirror;

/* How frames reach the partner; called under send_lock. */
struct twinfs_mirror_transport {
	const char *name;
	int (*send)(struct twinfs_mirror *m, u16 type, u64 id, u64 off,
		    const u8 *data, u32 len);
};

struct twinfs_mirror {
	struct super_block *sb;
	struct sockaddr_in addr;
	struct twinfs_mirror_key key;
	struct mutex send_lock;
	spinlock_t lock;
	struct list_head pending;
	u64 next_id;
	struct socket *sock;
	struct socket *connecting;	/* being connected and authenticated */
	struct twinfs_rdma *rdma;	/* the RDMA connection, or NULL */
	const struct twinfs_mirror_transport *xport;
	u8 cnonce[TWINFS_MIRROR_NONCE];	/* the session's, for the token */
	u8 snonce[TWINFS_MIRROR_NONCE];
	bool rdma_offered;		/* READY offered RDMA on rdma_port */
	u16 rdma_port;
	char rdma_dev[32];		/* the device in use, for sysfs */
	enum twinfs_mirror_state state;
	struct task_struct *thread;
	wait_queue_head_t wq;
	unsigned long timeout;		/* jiffies */
	u64 writes;
	u64 resyncs;
	u64 tail_resyncs;
	u32 last_sent;			/* chunks the last resync sent */
	u64 epoch;			/* this mount's mirror session */
	u64 peer_epoch;			/* READY: the partner's whole copy's */
	unsigned long *dirty;		/* chunks the partner may lack */
	unsigned long *resync_map;	/* the resync's snapshot of dirty */
	u32 chunks;			/* of TWINFS_MIRROR_PAYLOAD_MAX bytes */
	bool tail_ok;			/* dirty is all the partner lacks */
	bool warned;
	bool stopping;			/* umount: a lost link is no news */
	bool paused;			/* DISCONNECT: no link until CONNECT */
	bool parked;			/* the thread waits for CONNECT */
	bool kick;			/* CONNECT: try now, not in a second */
	struct delayed_work watchdog;
};

static struct twinfs_mirror *MIR(struct super_block *sb)
{
	return TWINFS_SB(sb)->mirror;
}

/* Degraded by DISCONNECT is "disconnected": nobody tries to reconnect. */
static const char *twinfs_mirror_state_str(struct twinfs_mirror *m,
					   enum twinfs_mirror_state st)
{
	if (st == MIRROR_DOWN && READ_ONCE(m->paused))
		return "disconnected";
	return twinfs_mirror_state_name[st];
}

static int twinfs_mirror_tcp_send(struct twinfs_mirror *m, u16 type, u64 id,
				  u64 off, const u8 *data, u32 len)
{
	return twinfs_mirror_send(m->sock, type, id, off, data, len);
}

/* The bytes of a WRITE are read from the region image by the device; data
 * (the same bytes, or a copy of them) is not needed. */
static int twinfs_mirror_rdma_send(struct twinfs_mirror *m, u16 type, u64 id,
				   u64 off, const u8 *data, u32 len)
{
	return twinfs_rdma_submit(m->rdma, type, id, off, len);
}

static const struct twinfs_mirror_transport twinfs_mirror_tcp = {
	.name = "tcp",
	.send = twinfs_mirror_tcp_send,
};

static const struct twinfs_mirror_transport twinfs_mirror_rdma = {
	.name = "rdma",
	.send = twinfs_mirror_rdma_send,
};

static void twinfs_mirror_set_state(struct twinfs_mirror *m,
				    enum twinfs_mirror_state st)
{
	enum twinfs_mirror_state was;

	spin_lock(&m->lock);
	was = m->state;
	m->state = st;
	spin_unlock(&m->lock);
	/* A link going down after DISCONNECT: twinfs_mirror_disconnect()
	 * announces it. */
	if (was == st || READ_ONCE(m->stopping) ||
	    (st == MIRROR_DOWN && READ_ONCE(m->paused))) {
		wake_up_all(&m->wq);
		return;
	}
	twinfs_genl_notify_mirror_state(m->sb, twinfs_mirror_state_name[st],
					READ_ONCE(m->xport)->name);
	if (st == MIRROR_MIRRORED)
		twinfs_info(m->sb, "mirror: mirrored to %pISpc over %s",
			    &m->addr, READ_ONCE(m->xport)->name);
	else if (st == MIRROR_DOWN)
		twinfs_warn(m->sb, "mirror: partner %pISpc lost; %s",
			    &m->addr, TWINFS_SB(m->sb)->opts.mirror_required ?
			    "operations wait for it (mirror=required)" :
			    "going on with local NVRAM only (mirror=degraded)");
	wake_up_all(&m->wq);
}

static void twinfs_mirror_mark(struct twinfs_mirror *m, u64 off, u32 len);

/* Fails every request still waiting for an ACK. */
static void twinfs_mirror_fail_all(struct twinfs_mirror *m)
{
	struct twinfs_mirror_req *r, *n;
	LIST_HEAD(failed);

	spin_lock(&m->lock);
	list_for_each_entry_safe(r, n, &m->pending, list) {
		if (r->status != 1)
			continue;
		if (r->done)
			list_move_tail(&r->list, &failed);
		else
			r->status = -ENOTCONN;
	}
	spin_unlock(&m->lock);
	wake_up_all(&m->wq);
	list_for_each_entry_safe(r, n, &failed, list) {
		list_del(&r->list);
		twinfs_mirror_mark(m, r->off, r->len);
		r->done(r, -ENOTCONN);
	}
}

/* Drops the connection, or the attempt at one (a connect to a dead
 * partner would wait for its SYN timeout): whoever is blocked on the
 * socket wakes up. */
static void twinfs_mirror_break(struct twinfs_mirror *m)
{
	mutex_lock(&m->send_lock);
	if (m->connecting)
		kernel_sock_shutdown(m->connecting, SHUT_RDWR);
	if (m->sock)
		kernel_sock_shutdown(m->sock, SHUT_RDWR);
	if (m->rdma)
		twinfs_rdma_shutdown(m->rdma);
	mutex_unlock(&m->send_lock);
}

/* An ACK of request id arrived (over either transport); upto: of every
 * request up to id.  The pending list is in id order. */
static void twinfs_mirror_acked(struct twinfs_mirror *m, u64 id, bool upto)
{
	struct twinfs_mirror_req *r, *n;
	LIST_HEAD(done);
	bool wake = false;

	spin_lock(&m->lock);
	list_for_each_entry_safe(r, n, &m->pending, list) {
		if (r->id > id)
			break;
		if ((r->id != id && !upto) || r->status != 1)
			continue;
		if (r->done) {
			list_move_tail(&r->list, &done);
			m->writes++;
		} else {
			r->status = 0;
			wake = true;
		}
	}
	spin_unlock(&m->lock);
	if (wake)
		wake_up_all(&m->wq);
	list_for_each_entry_safe(r, n, &done, list) {
		list_del(&r->list);
		r->done(r, 0);
	}
}

static void twinfs_mirror_rdma_acked(void *ctx, u64 id)
{
	twinfs_mirror_acked(ctx, id, false);
}

/* The RDMA connection failed: end the TCP one, the thread does the rest.
 * m->sock stays until the thread has closed the RDMA connection. */
static void twinfs_mirror_rdma_broken(void *ctx, int err)
{
	struct twinfs_mirror *m = ctx;

	if (!READ_ONCE(m->stopping))
		twinfs_warn(m->sb, "mirror: rdma connection to %pISpc lost (%d); dropping the link",
			    &m->addr, err);
	kernel_sock_shutdown(m->sock, SHUT_RDWR);
}

static const struct twinfs_rdma_ops twinfs_mirror_rdma_ops = {
	.acked = twinfs_mirror_rdma_acked,
	.broken = twinfs_mirror_rdma_broken,
};

static int twinfs_mirror_handshake(struct twinfs_mirror *m, struct socket *s)
{
	struct twinfs_cm_header_info info;
	struct twinfs_mirror_hello hello = {};
	struct twinfs_mirror_frame f;
	u8 buf[TWINFS_MIRROR_NONCE + TWINFS_MIRROR_MAC];
	u8 mac[TWINFS_MIRROR_MAC];
	struct twinfs_mirror_rdma_offer offer;
	bool ask = !TWINFS_SB(m->sb)->opts.mirror_tcp;
	int err;

	m->rdma_offered = false;
	twinfs_cm_info(m->sb, &info);
	hello.h_version = cpu_to_le32(TWINFS_MIRROR_VERSION);
	hello.h_node_id = cpu_to_le32(TWINFS_SB(m->sb)->opts.node);
	memcpy(hello.h_uuid, m->sb->s_uuid.b, sizeof(hello.h_uuid));
	hello.h_region_size = cpu_to_le64(info.size);
	get_random_bytes(hello.h_nonce, sizeof(hello.h_nonce));
	err = twinfs_mirror_send_flags(s, TWINFS_MIRROR_HELLO,
				       ask ? TWINFS_MIRROR_F_RDMA : 0, m->epoch,
				       0,
				       &hello, sizeof(hello));
	if (err)
		return err;
	err = twinfs_mirror_recv(s, &f, buf, sizeof(buf));
	if (err)
		return err;
	if (le16_to_cpu(f.f_type) != TWINFS_MIRROR_CHALLENGE ||
	    le32_to_cpu(f.f_len) != sizeof(buf) || f.f_flags)
		return -EBADMSG;
	err = twinfs_mirror_mac(&m->key, "twinfs-s", hello.h_nonce, buf, mac);
	if (err)
		return err;
	if (crypto_memneq(mac, buf + TWINFS_MIRROR_NONCE, sizeof(mac)))
		return -EKEYREJECTED;
	err = twinfs_mirror_mac(&m->key, "twinfs-c", buf, hello.h_nonce, mac) ?:
	      twinfs_mirror_send(s, TWINFS_MIRROR_AUTH, 0, 0, mac, sizeof(mac)) ?:
	      twinfs_mirror_recv(s, &f, &offer, sizeof(offer));
	if (err)
		return err;
	if (le16_to_cpu(f.f_type) != TWINFS_MIRROR_READY)
		return -EBADMSG;
	m->peer_epoch = le64_to_cpu(f.f_id);
	/* An offer of RDMA only if asked for, and then with its payload. */
	if (le16_to_cpu(f.f_flags) & TWINFS_MIRROR_F_RDMA) {
		if (!ask || le32_to_cpu(f.f_len) != sizeof(offer) ||
		    !offer.o_port || offer.o_flags)
			return -EBADMSG;
		m->rdma_offered = true;
		m->rdma_port = le16_to_cpu(offer.o_port);
	} else if (f.f_flags || f.f_len) {
		return -EBADMSG;
	}
	memcpy(m->cnonce, hello.h_nonce, sizeof(m->cnonce));
	memcpy(m->snonce, buf, sizeof(m->snonce));
	return 0;
}

static int twinfs_mirror_connect(struct twinfs_mirror *m)
{
	struct socket *s;
	int err;

	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP,
			       &s);
	if (err)
		return err;
	twinfs_mirror_tune(s, 3 * HZ);
	mutex_lock(&m->send_lock);
	m->connecting = s;
	mutex_unlock(&m->send_lock);
	/* A DISCONNECT or umount that found no socket to shut down set
	 * paused or stopping before. */
	err = READ_ONCE(m->paused) || READ_ONCE(m->stopping) ? -ECONNABORTED :
	      kernel_connect(s, (struct sockaddr *)&m->addr, sizeof(m->addr),
			     0) ?: twinfs_mirror_handshake(m, s);
	mutex_lock(&m->send_lock);
	m->connecting = NULL;
	if (!err) {
		s->sk->sk_rcvtimeo = MAX_SCHEDULE_TIMEOUT;
		m->sock = s;
		m->xport = &twinfs_mirror_tcp;
	}
	mutex_unlock(&m->send_lock);
	if (err)
		sock_release(s);
	return err;
}

/* The partner may lack [off, off + len): a tail resync sends it.  m->lock */
static void twinfs_mirror_mark_locked(struct twinfs_mirror *m, u64 off,
				      u32 len)
{
	u64 first = off / TWINFS_MIRROR_PAYLOAD_MAX;
	u64 last = (off + len - 1) / TWINFS_MIRROR_PAYLOAD_MAX;

	if (last < m->chunks)
		bitmap_set(m->dirty, first, last - first + 1);
	else
		m->tail_ok = false;
}

static void twinfs_mirror_mark(struct twinfs_mirror *m, u64 off, u32 len)
{
	spin_lock(&m->lock);
	twinfs_mirror_mark_locked(m, off, len);
	spin_unlock(&m->lock);
}

/*
 * After the handshake: RDMA if the partner offered it, else (or when its
 * set-up fails) TCP, said in the log once per cause.  Nothing is sent
 * yet: the state is still degraded.
 */
static void twinfs_mirror_rdma_up(struct twinfs_mirror *m, const char **last)
{
	struct twinfs_cm_header_info info;
	struct twinfs_rdma_conf conf = {
		.addr = m->addr,
		.node_id = TWINFS_SB(m->sb)->opts.node,
		.timeout_ms = jiffies_to_msecs(m->timeout),
		.ops = &twinfs_mirror_rdma_ops,
		.ctx = m,
	};
	struct twinfs_rdma *rc;
	const char *why;

	if (TWINFS_SB(m->sb)->opts.mirror_tcp)
		return;
	if (!m->rdma_offered) {
		if (*last != (const char *)m)
			twinfs_info(m->sb, "mirror: partner %pISpc does not offer rdma; using tcp",
				    &m->addr);
		*last = (const char *)m;
		return;
	}
	twinfs_cm_info(m->sb, &info);
	conf.region = info.region;
	conf.size = info.size;
	conf.addr.sin_port = htons(m->rdma_port);
	if (twinfs_mirror_mac(&m->key, "twinfs-r", m->cnonce, m->snonce,
			      conf.token))
		return;
	rc = twinfs_rdma_connect(&conf, &why);
	memzero_explicit(conf.token, sizeof(conf.token));
	if (IS_ERR(rc)) {
		if (*last != why)
			twinfs_warn(m->sb, "mirror: no rdma to %pISpc: %s (%ld); using tcp",
				    &conf.addr, why, PTR_ERR(rc));
		*last = why;
		return;
	}
	*last = NULL;
	strscpy(m->rdma_dev, twinfs_rdma_device(rc), sizeof(m->rdma_dev));
	twinfs_info(m->sb, "mirror: rdma to %pISpc via %s set up (%u registered pieces of the partner's copy)",
		    &conf.addr, m->rdma_dev, twinfs_rdma_pieces(rc));
	mutex_lock(&m->send_lock);
	m->rdma = rc;
	m->xport = &twinfs_mirror_rdma;
	mutex_unlock(&m->send_lock);
}

/*
 * Sends one frame of @type that the partner ACKs; the caller waits with
 * twinfs_mirror_wait_req().  With @bounce, the @len bytes at @data are
 * copied there under send_lock and sent from the copy (over TCP;
 * RDMA reads them from the image after the post, which orders the same
 * way, see Documentation/rdma-transport.md, "Ordering"): a range the caller
 * does not hold still (a resync chunk) is then either copied after a lane
 * writer changed it or sent before that writer's own WRITE, so the partner
 * never ends with older bytes than an ACKed WRITE gave it.
 */
static int twinfs_mirror_submit(struct twinfs_mirror *m,
				struct twinfs_mirror_req *r, u16 type,
				const u8 *data, u64 off, u32 len, u8 *bounce)
{
	int err = -ENOTCONN;

	r->status = 1;
	r->sent_at = jiffies;
	mutex_lock(&m->send_lock);
	if (m->sock) {
		spin_lock(&m->lock);
		r->id = ++m->next_id;
		list_add_tail(&r->list, &m->pending);
		spin_unlock(&m->lock);
		if (bounce && len && !m->rdma) {
			memcpy(bounce, data, len);
			data = bounce;
		}
		err = m->xport->send(m, type, r->id, off, data, len);
		if (err) {
			kernel_sock_shutdown(m->sock, SHUT_RDWR);
			if (m->rdma)
				twinfs_rdma_shutdown(m->rdma);
			spin_lock(&m->lock);
			list_del(&r->list);
			spin_unlock(&m->lock);
		}
	}
	mutex_unlock(&m->send_lock);
	return err;
}

static int twinfs_mirror_wait_req(struct twinfs_mirror *m,
				  struct twinfs_mirror_req *r)
{
	long left;
	int st;

	left = wait_event_timeout(m->wq, READ_ONCE(r->status) != 1,
				  m->timeout);
	if (!left) {
		twinfs_err(m->sb, "mirror: no answer from %pISpc in %u ms; dropping the link",
			   &m->addr, jiffies_to_msecs(m->timeout));
		twinfs_mirror_break(m);
		wait_event(m->wq, READ_ONCE(r->status) != 1);
	}
	spin_lock(&m->lock);
	list_del(&r->list);
	st = r->status;
	spin_unlock(&m->lock);
	return st;
}

/* Sends one frame the partner ACKs and waits for the ACK. */
static int twinfs_mirror_call(struct twinfs_mirror *m, u16 type,
			      const u8 *data, u64 off, u32 len, u8 *bounce)
{
	struct twinfs_mirror_req r;
	int err;

	err = twinfs_mirror_submit(m, &r, type, data, off, len, bounce);
	return err ?: twinfs_mirror_wait_req(m, &r);
}

/*
 * Copies the region to the partner, ACK by ACK, between SYNC_BEGIN (the
 * partner marks its copy partial) and SYNC_DONE (complete again): all of
 * it, or with a whole copy of this session on the partner only the chunks
 * marked since and the header's.  Lanes change the image meanwhile;
 * twinfs_mirror_submit() says why a chunk copied under send_lock is still
 * right.  The state is already MIRROR_SYNCING: a writer that saw
 * MIRROR_DOWN marked its chunk (under m->lock) before the snapshot, any
 * later one sends its own WRITE.
 */
static int twinfs_mirror_resync(struct twinfs_mirror *m, u32 *sent)
{
	struct twinfs_cm_header_info info;
	u8 *bounce;
	bool tail;
	u32 c;
	int err;

	bounce = vmalloc(TWINFS_MIRROR_PAYLOAD_MAX);
	if (!bounce)
		return -ENOMEM;
	twinfs_cm_info(m->sb, &info);
	spin_lock(&m->lock);
	tail = m->tail_ok && m->peer_epoch == m->epoch;
	bitmap_copy(m->resync_map, m->dirty, m->chunks);
	bitmap_zero(m->dirty, m->chunks);
	m->tail_ok = false;		/* until this resync is done */
	spin_unlock(&m->lock);
	*sent = 0;
	err = twinfs_mirror_call(m, TWINFS_MIRROR_SYNC_BEGIN, NULL,
				 TWINFS_CM_HDR_AREA, 0, NULL);
	for (c = 0; c < m->chunks && !err; c++) {
		u64 off = (u64)c * TWINFS_MIRROR_PAYLOAD_MAX;
		u32 len = min_t(u64, info.size - off, TWINFS_MIRROR_PAYLOAD_MAX);

		/* Chunk 0 holds the header area. */
		if (tail && c && !test_bit(c, m->resync_map))
			continue;
		err = twinfs_mirror_call(m, TWINFS_MIRROR_WRITE,
					 info.region + off, off, len, bounce);
		(*sent)++;
		if (!err && READ_ONCE(m->stopping))
			err = -EINTR;
	}
	if (!err)
		err = twinfs_mirror_call(m, TWINFS_MIRROR_SYNC_DONE, NULL, 0, 0,
					 NULL);
	if (!err) {
		spin_lock(&m->lock);
		m->tail_ok = true;
		spin_unlock(&m->lock);
		if (tail)
			m->tail_resyncs++;
	}
	vfree(bounce);
	return err ?: tail;
}

struct twinfs_resync_work {
	struct work_struct work;
	struct twinfs_mirror *m;
};

static void twinfs_mirror_resync_fn(struct work_struct *work)
{
	struct twinfs_resync_work *w = container_of(work,
					struct twinfs_resync_work, work);
	struct twinfs_mirror *m = w->m;
	u32 sent;
	int ret;

	ret = twinfs_mirror_resync(m, &sent);
	if (ret < 0) {
		twinfs_mirror_break(m);
		return;
	}
	m->resyncs++;
	m->last_sent = sent;
	twinfs_info(m->sb, "mirror: %s resync: %u of %u chunks sent",
		    ret ? "tail" : "full", sent, m->chunks);
	twinfs_mirror_set_state(m, MIRROR_MIRRORED);
}

/* Reads ACKs until the connection ends (over RDMA: nothing comes). */
static void twinfs_mirror_receive(struct twinfs_mirror *m)
{
	struct twinfs_mirror_frame f;
	int err;

	for (;;) {
		err = twinfs_mirror_recv(m->sock, &f, NULL, 0);
		if (err) {
			if (err == -EBADMSG)
				twinfs_err(m->sb, "mirror: malformed frame from %pISpc; dropping the link",
					   &m->addr);
			return;
		}
		if (le16_to_cpu(f.f_type) != TWINFS_MIRROR_ACK ||
		    (le16_to_cpu(f.f_flags) & ~TWINFS_MIRROR_F_UPTO)) {
			twinfs_err(m->sb, "mirror: unexpected frame type %u flags %#x from %pISpc; dropping the link",
				   le16_to_cpu(f.f_type),
				   le16_to_cpu(f.f_flags), &m->addr);
			return;
		}
		twinfs_mirror_acked(m, le64_to_cpu(f.f_id),
				    le16_to_cpu(f.f_flags) &
				    TWINFS_MIRROR_F_UPTO);
	}
}

/* The mirror thread lets go of its (TCP) socket. */
static void twinfs_mirror_drop_sock(struct twinfs_mirror *m)
{
	struct socket *s;

	mutex_lock(&m->send_lock);
	s = m->sock;
	m->sock = NULL;
	mutex_unlock(&m->send_lock);
	sock_release(s);
}

static int twinfs_mirror_thread(void *arg)
{
	struct twinfs_mirror *m = arg;
	struct twinfs_resync_work w = { .m = m };
	const char *rdma_last = NULL;
	struct twinfs_rdma *rc;
	int err, last = 0;

	INIT_WORK_ONSTACK(&w.work, twinfs_mirror_resync_fn);
	while (!kthread_should_stop()) {
		if (READ_ONCE(m->stopping)) {
			/* umount: no new attempt; kthread_stop() wakes us. */
			wait_event_idle(m->wq, kthread_should_stop());
			break;
		}
		if (READ_ONCE(m->paused)) {
			/* No link, nothing in flight: DISCONNECT may return. */
			WRITE_ONCE(m->parked, true);
			wake_up_all(&m->wq);
			wait_event_idle(m->wq, !READ_ONCE(m->paused) ||
					kthread_should_stop());
			WRITE_ONCE(m->parked, false);
			continue;
		}
		WRITE_ONCE(m->kick, false);
		err = twinfs_mirror_connect(m);
		if (READ_ONCE(m->paused) || READ_ONCE(m->stopping)) {
			/* DISCONNECT came while connecting (it may have cut
			 * the attempt short); see twinfs_mirror_disconnect(). */
			if (!err)
				twinfs_mirror_drop_sock(m);
			continue;
		}
		if (err) {
			/* Said once per cause, not once per attempt. */
			if (err != last && err == -EKEYREJECTED)
				twinfs_err(m->sb, "mirror: partner %pISpc does not have the cluster key; refusing it, retrying",
					   &m->addr);
			else if (err != last)
				twinfs_warn(m->sb, "mirror: cannot reach partner %pISpc: %d; retrying",
					    &m->addr, err);
			last = err;
			wait_event_idle_timeout(m->wq, READ_ONCE(m->kick) ||
						READ_ONCE(m->paused) ||
						kthread_should_stop(), HZ);
			continue;
		}
		last = 0;
		twinfs_mirror_rdma_up(m, &rdma_last);
		twinfs_mirror_set_state(m, MIRROR_SYNCING);
		queue_work(system_unbound_wq, &w.work);
		twinfs_mirror_receive(m);
		/* The link is gone: nobody may send on it any more.  A sender
		 * waiting for an RDMA credit holds send_lock: wake it first
		 * (m->rdma changes only here). */
		if (m->rdma)
			twinfs_rdma_shutdown(m->rdma);
		mutex_lock(&m->send_lock);
		kernel_sock_shutdown(m->sock, SHUT_RDWR);
		mutex_unlock(&m->send_lock);
		twinfs_mirror_fail_all(m);
		flush_work(&w.work);
		mutex_lock(&m->send_lock);
		rc = m->rdma;
		m->rdma = NULL;
		m->xport = &twinfs_mirror_tcp;
		mutex_unlock(&m->send_lock);
		/* Before the socket: its broken() callback shuts it down. */
		twinfs_rdma_close(rc);
		twinfs_mirror_drop_sock(m);
		twinfs_mirror_set_state(m, MIRROR_DOWN);
	}
	destroy_work_on_stack(&w.work);
	return 0;
}

/* Nobody waits for a request with done(): drop a link that leaves the
 * oldest one unanswered for the timeout (its waiter would). */
static void twinfs_mirror_watchdog(struct work_struct *work)
{
	struct twinfs_mirror *m = container_of(to_delayed_work(work),
					       struct twinfs_mirror, watchdog);
	struct twinfs_mirror_req *r;
	bool late;

	spin_lock(&m->lock);
	r = list_first_entry_or_null(&m->pending, struct twinfs_mirror_req,
				     list);
	late = r && r->done && r->status == 1 &&
	       time_after(jiffies, r->sent_at + m->timeout);
	spin_unlock(&m->lock);
	if (late) {
		twinfs_err(m->sb, "mirror: no answer from %pISpc in %u ms; dropping the link",
			   &m->addr, jiffies_to_msecs(m->timeout));
		twinfs_mirror_break(m);
	}
	queue_delayed_work(system_wq, &m->watchdog, m->timeout / 2 + 1);
}

int twinfs_mirror_start(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_cm_header_info info;
	struct twinfs_mirror *m;
	int err;

	if (!sbi->opts.partner)
		return 0;
	if (!sbi->opts.cluster_key) {
		twinfs_err(sb, "partner= needs cluster_key=<file>");
		return -EINVAL;
	}
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	m->sb = sb;
	mutex_init(&m->send_lock);
	spin_lock_init(&m->lock);
	INIT_LIST_HEAD(&m->pending);
	init_waitqueue_head(&m->wq);
	INIT_DELAYED_WORK(&m->watchdog, twinfs_mirror_watchdog);
	m->xport = &twinfs_mirror_tcp;
	m->timeout = msecs_to_jiffies(sbi->opts.mirror_timeout_ms);
	err = twinfs_mirror_parse_addr(sbi->opts.partner, &m->addr);
	if (err) {
		twinfs_err(sb, "partner=%s: not an IPv4 address[:port]",
			   sbi->opts.partner);
		goto out_free;
	}
	err = twinfs_mirror_key_load(&m->key, sbi->opts.cluster_key);
	if (err) {
		twinfs_err(sb, "cluster_key=%s: cannot use it: %d (at least 16 bytes)",
			   sbi->opts.cluster_key, err);
		goto out_free;
	}
	twinfs_cm_info(sb, &info);
	m->chunks = DIV_ROUND_UP_ULL(info.size, TWINFS_MIRROR_PAYLOAD_MAX);
	m->dirty = bitmap_zalloc(m->chunks, GFP_KERNEL);
	m->resync_map = bitmap_zalloc(m->chunks, GFP_KERNEL);
	err = -ENOMEM;
	if (!m->dirty || !m->resync_map)
		goto out_key;
	m->epoch = get_random_u64() | 1;
	err = twinfs_cm_set_mirror_epoch(sb, m->epoch);
	if (err)
		goto out_key;
	sbi->mirror = m;
	m->thread = kthread_run(twinfs_mirror_thread, m, "twinfs-mirror/%s",
				sb->s_id);
	if (IS_ERR(m->thread)) {
		err = PTR_ERR(m->thread);
		sbi->mirror = NULL;
		goto out_key;
	}
	queue_delayed_work(system_wq, &m->watchdog, m->timeout / 2 + 1);
	return 0;
out_key:
	twinfs_mirror_key_put(&m->key);
out_free:
	bitmap_free(m->resync_map);
	bitmap_free(m->dirty);
	kfree(m);
	return err;
}

void twinfs_mirror_stop(struct super_block *sb)
{
	struct twinfs_mirror *m = MIR(sb);

	if (!m)
		return;
	WRITE_ONCE(m->stopping, true);
	cancel_delayed_work_sync(&m->watchdog);
	twinfs_mirror_break(m);
	kthread_stop(m->thread);
	twinfs_mirror_key_put(&m->key);
	TWINFS_SB(sb)->mirror = NULL;
	bitmap_free(m->resync_map);
	bitmap_free(m->dirty);
	kfree(m);
}

int twinfs_mirror_ready(struct super_block *sb)
{
	struct twinfs_mirror *m = MIR(sb);

	if (!m || !TWINFS_SB(sb)->opts.mirror_required ||
	    READ_ONCE(m->state) == MIRROR_MIRRORED)
		return 0;
	/* Disconnected on purpose: no partner comes until CONNECT. */
	if (!READ_ONCE(m->paused))
		wait_event_timeout(m->wq,
				   READ_ONCE(m->state) == MIRROR_MIRRORED,
				   m->timeout);
	if (READ_ONCE(m->state) == MIRROR_MIRRORED)
		return 0;
	if (!m->warned)
		twinfs_err(sb, "mirror: partner %pISpc is not there and mirror=required: failing the operation",
			   &m->addr);
	m->warned = true;
	return -ENOLINK;
}

/* Degraded: the range only marks its chunk (under m->lock, see resync). */
static bool twinfs_mirror_mark_if_down(struct twinfs_mirror *m, u64 off,
				       u32 len)
{
	bool down;

	spin_lock(&m->lock);
	down = m->state == MIRROR_DOWN;
	if (down)
		twinfs_mirror_mark_locked(m, off, len);
	spin_unlock(&m->lock);
	return down;
}

void twinfs_mirror_begin(struct super_block *sb, const u8 *region, u64 off,
			 u32 len, struct twinfs_mirror_req *r)
{
	struct twinfs_mirror *m = MIR(sb);

	r->sent = false;
	r->off = off;
	r->len = len;
	if (!m || WARN_ON_ONCE(len > TWINFS_MIRROR_PAYLOAD_MAX))
		return;
	if (READ_ONCE(m->state) != MIRROR_MIRRORED &&
	    twinfs_mirror_mark_if_down(m, off, len))
		return;
	/* The caller holds the lock that keeps these bytes still. */
	r->sent = !twinfs_mirror_submit(m, r, TWINFS_MIRROR_WRITE,
					region + off, off, len, NULL);
	if (!r->sent)
		twinfs_mirror_mark(m, off, len);
}

void twinfs_mirror_end(struct super_block *sb, struct twinfs_mirror_req *r)
{
	struct twinfs_mirror *m = MIR(sb);

	if (!r->sent)
		return;
	/* A failed ACK leaves the pair degraded: the local copy holds it. */
	if (!twinfs_mirror_wait_req(m, r))
		m->writes++;
	else
		twinfs_mirror_mark(m, r->off, r->len);
}

void twinfs_mirror_info(struct super_block *sb, struct twinfs_mirror_info *mi)
{
	struct twinfs_mirror *m = MIR(sb);

	mi->transport = m ? READ_ONCE(m->xport)->name : NULL;
	mi->state = m ? twinfs_mirror_state_str(m, READ_ONCE(m->state)) :
			"none";
	mi->writes = m ? m->writes : 0;
	mi->resyncs = m ? m->resyncs : 0;
	mi->tail_resyncs = m ? m->tail_resyncs : 0;
}

/*
 * DISCONNECT: paused is set before the link is broken.  The thread reads
 * it after publishing a new socket under send_lock, and twinfs_mirror_break()
 * shuts down whatever socket it finds under send_lock: either the thread
 * sees paused and drops its fresh link, or the break shuts that link down.
 * Returns once the thread is parked: its link is torn down, every request
 * failed and marked for the tail resync (bounded: a connect attempt gives
 * up after 3 s, a link after the mirror timeout).
 */
int twinfs_mirror_disconnect(struct super_block *sb)
{
	struct twinfs_mirror *m = MIR(sb);
	bool announced;

	if (!m)
		return -EOPNOTSUPP;
	announced = READ_ONCE(m->paused);
	WRITE_ONCE(m->paused, true);
	wake_up_all(&m->wq);		/* out of the wait between attempts */
	twinfs_mirror_break(m);
	if (!wait_event_timeout(m->wq, READ_ONCE(m->parked),
				m->timeout + 5 * HZ))
		return -ETIMEDOUT;
	if (!announced) {
		twinfs_info(sb, "mirror: disconnected from partner %pISpc on request; local NVRAM only until CONNECT",
			    &m->addr);
		twinfs_genl_notify_mirror_state(sb, "disconnected",
						READ_ONCE(m->xport)->name);
	}
	return 0;
}

/* CONNECT: no longer paused, and the next attempt is now. */
int twinfs_mirror_reconnect(struct super_block *sb)
{
	struct twinfs_mirror *m = MIR(sb);

	if (!m)
		return -EOPNOTSUPP;
	WRITE_ONCE(m->kick, true);
	if (READ_ONCE(m->paused)) {
		twinfs_info(sb, "mirror: connecting to partner %pISpc again on request",
			    &m->addr);
		WRITE_ONCE(m->paused, false);
		/* Down, no longer on purpose; the link's own events follow. */
		twinfs_genl_notify_mirror_state(sb, "degraded",
						READ_ONCE(m->xport)->name);
	}
	wake_up_all(&m->wq);
	return 0;
}

ssize_t twinfs_mirror_show(struct super_block *sb, char *buf)
{
	struct twinfs_mirror *m = MIR(sb);
	const struct twinfs_mirror_transport *x;

	if (!m)
		return sysfs_emit(buf, "none\n");
	x = READ_ONCE(m->xport);
	return sysfs_emit(buf, "%s %pISpc %s writes=%llu resyncs=%llu tail_resyncs=%llu last_resync=%u/%u%s%s\n",
			  x->name, &m->addr,
			  twinfs_mirror_state_str(m, READ_ONCE(m->state)),
			  m->writes, m->resyncs, m->tail_resyncs,
			  m->last_sent, m->chunks,
			  x == &twinfs_mirror_rdma ? " dev=" : "",
			  x == &twinfs_mirror_rdma ? m->rdma_dev : "");
}
