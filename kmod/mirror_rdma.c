// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the RDMA transport of the mirror link (issue 6), both ends.
 * Documentation/rdma-transport.md is the design; the wire additions are in
 * include/twinfs/twinfs_mirror.h.
 *
 * The TCP connection of mirror.c / mirror_target.c stays: it carries the
 * HMAC handshake and the offer of RDMA, and its keepalive notices a dead
 * peer.  When the partner offers RDMA, the owner's mirror thread calls
 * twinfs_rdma_connect(): rdma_cm to the offered port, one RC queue pair, a
 * token in the REQ's private data binding the connection to the
 * authenticated TCP session.  The partner keeps a DRAM image of the
 * owner's region, registered for remote write with FRWR in pieces, and
 * describes it with KEYS frames.  Each mirrored range is RDMA WRITEs from
 * the owner's image (DMA-mapped page by page once, pd->local_dma_lkey) to
 * the same offset of the partner's image, then a SEND of the WRITE frame;
 * the partner writes the range from its image to its NVRAM device with
 * FUA and SENDs the ACK frame.  Every frame SENT to the partner is
 * answered by one ACK, which also returns the credit (a receive buffer).
 *
 * Owner (struct twinfs_rdma): one per mirror connection, owned by the
 * mirror thread, which alone creates and closes it.  Submitters call
 * twinfs_rdma_submit() under mirror.c's send_lock.  Completions run in the
 * CQ's workqueue (IB_POLL_WORKQUEUE); ACKs reach mirror.c through
 * ops->acked(), a failure through ops->broken() (once).
 *
 * Partner (struct twinfs_rdma_srv): at most one, the owner the target is
 * serving.  It is created in the listener's CONNECT_REQUEST handler, only
 * for the TCP session the target thread declared with
 * twinfs_rdma_target_begin(), and destroyed only by
 * twinfs_rdma_target_end(), called by the target thread when that TCP
 * session ends.  A failure on the RDMA side shuts the TCP socket down so
 * that the target thread gets there.
 *
 * Locks:
 *  - rc->lock (spinlock): the owner's free send contexts and credits.
 *  - twinfs_rdma_conns_lock (mutex): the list of owner connections, for
 *    device removal only (taken at connect, close and removal).
 *  - twinfs_rdma_srv_lock (mutex): the partner's listener, its session and
 *    its connection pointer; taken by the target thread, the listener's
 *    CONNECT_REQUEST handler and device removal, never on the data path.
 *  - srv->lock (spinlock): srv->dead against posting (a handler must not
 *    post to a queue pair being torn down).
 * The data path takes rc->lock (owner) or nothing (partner: one CQ, one
 * work item at a time).
 */
#include <crypto/algapi.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <rdma/ib_cm.h>
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>
#include "mirror.h"
#include "cm.h"

/* Test only: the owner corrupts its token (a hostile connection request
 * from an authenticated address), to check the partner refuses it. */
static bool twinfs_rdma_bad_token;
module_param_named(mirror_rdma_bad_token, twinfs_rdma_bad_token, bool, 0600);
MODULE_PARM_DESC(mirror_rdma_bad_token,
		 "test only: send a wrong token in the rdma connection request");

#define TWINFS_RDMA_TX		64u	/* owner: chains in flight */
#define TWINFS_RDMA_RX		64u	/* receives posted, each end */
/* The owner's receives: one ACK per credit, plus the KEYS frames, whose
 * buffers are reposted only after the last one let the owner start. */
#define TWINFS_RDMA_RX_OWNER	(TWINFS_RDMA_RX + 4)
#define TWINFS_RDMA_KEYS_MAX	16u	/* regions per KEYS frame */
#define TWINFS_RDMA_BUF		(sizeof(struct twinfs_mirror_frame) + \
				 TWINFS_RDMA_KEYS_MAX * \
				 sizeof(struct twinfs_mirror_rdma_mr))
/* Pages of one mirrored range: TWINFS_MIRROR_PAYLOAD_MAX, not aligned. */
#define TWINFS_RDMA_PAGES	(TWINFS_MIRROR_PAYLOAD_MAX / PAGE_SIZE + 1)
/* RDMA WRITE work requests of one range: split by the SGE limit (at least
 * 8) and by the partner's piece boundaries. */
#define TWINFS_RDMA_WRS		(TWINFS_RDMA_PAGES / 8 + 8)
/* rdma_cm: 4.096 us * 2^14 = 67 ms an attempt; rxe retries forever with a
 * retry count of 7, so 6 (7 attempts, about half a second). */
#define TWINFS_RDMA_ACK_TIMEOUT	14
#define TWINFS_RDMA_RETRY	6

#define rdma_err(fmt, ...) pr_err_ratelimited("twinfs: mirror: " fmt "\n", ##__VA_ARGS__)
#define tgt_info(fmt, ...) pr_info("twinfs: mirror target: " fmt "\n", ##__VA_ARGS__)
#define tgt_err(fmt, ...) pr_err_ratelimited("twinfs: mirror target: " fmt "\n", ##__VA_ARGS__)

/* A receive buffer (both ends), with the partner's ACK buffer beside it. */
struct twinfs_rdma_rx {
	struct ib_cqe cqe;
	void *ctx;			/* struct twinfs_rdma or _srv */
	void *buf;
	u64 dma;
	struct ib_cqe ack_cqe;		/* partner: the ACK of this receive */
	struct twinfs_mirror_frame *ack;
	u64 ack_dma;
};

static int twinfs_rdma_buf_map(struct ib_device *dev, void **buf, u64 *dma,
			       size_t len, enum dma_data_direction dir)
{
	*buf = kzalloc(len, GFP_KERNEL);
	if (!*buf)
		return -ENOMEM;
	*dma = ib_dma_map_single(dev, *buf, len, dir);
	if (ib_dma_mapping_error(dev, *dma)) {
		kfree(*buf);
		*buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void twinfs_rdma_buf_unmap(struct ib_device *dev, void **buf,
				  u64 dma, size_t len,
				  enum dma_data_direction dir)
{
	if (!*buf)
		return;
	ib_dma_unmap_single(dev, dma, len, dir);
	kfree(*buf);
	*buf = NULL;
}

static int twinfs_rdma_post_rx(struct ib_qp *qp, struct ib_pd *pd,
			       struct twinfs_rdma_rx *rx)
{
	struct ib_sge sge = {
		.addr = rx->dma,
		.length = TWINFS_RDMA_BUF,
		.lkey = pd->local_dma_lkey,
	};
	struct ib_recv_wr wr = {
		.wr_cqe = &rx->cqe,
		.sg_list = &sge,
		.num_sge = 1,
	};

	ib_dma_sync_single_for_device(pd->device, rx->dma, TWINFS_RDMA_BUF,
				      DMA_FROM_DEVICE);
	return ib_post_recv(qp, &wr, NULL);
}

/* The frame of a receive completion, checked; NULL if malformed. */
static const struct twinfs_mirror_frame *
twinfs_rdma_rx_frame(struct ib_device *dev, struct twinfs_rdma_rx *rx,
		     struct ib_wc *wc)
{
	const struct twinfs_mirror_frame *f = rx->buf;
	u32 len;

	ib_dma_sync_single_for_cpu(dev, rx->dma, TWINFS_RDMA_BUF,
				   DMA_FROM_DEVICE);
	if (wc->byte_len < sizeof(*f) || !twinfs_mirror_frame_ok(f))
		return NULL;
	len = le32_to_cpu(f->f_len);
	/* A WRITE's bytes came by RDMA WRITE: the frame has no payload. */
	if (le16_to_cpu(f->f_type) == TWINFS_MIRROR_WRITE)
		return wc->byte_len == sizeof(*f) && !f->f_data_crc ? f : NULL;
	if (wc->byte_len != sizeof(*f) + len ||
	    (len && ~twinfs_crc32c(~0u, (const u8 *)(f + 1), len) !=
	     le32_to_cpu(f->f_data_crc)))
		return NULL;
	return f;
}

/* ======================================================================
 * Owner
 * ====================================================================== */

struct twinfs_rdma_tx {
	struct twinfs_rdma *rc;
	struct ib_cqe send_cqe;		/* the signaled SEND */
	struct ib_cqe write_cqe;	/* unsignaled WRITEs: errors only */
	struct twinfs_mirror_frame *frame;
	u64 frame_dma;
	struct ib_rdma_wr wr[TWINFS_RDMA_WRS];
	struct ib_sge sge[TWINFS_RDMA_PAGES];
	struct ib_send_wr send;
	struct ib_sge send_sge;
	struct list_head free;
};

enum { RC_NONE, RC_ROUTE, RC_ESTABLISHED };

#define RC_BROKEN	0	/* failed or closing: post nothing more */
#define RC_KEYS		1	/* the partner's pieces are all known */
#define RC_UP		2	/* connected: failures go to ops->broken */

struct twinfs_rdma {
	struct twinfs_rdma_conf conf;
	struct rdma_cm_id *id;
	struct ib_device *dev;
	struct ib_pd *pd;
	struct ib_cq *cq;
	struct ib_qp *qp;
	u32 max_sge;
	wait_queue_head_t wq;
	int cm_state;			/* RC_*, or a negative errno */
	unsigned long flags;		/* RC_BROKEN, RC_KEYS, RC_UP */
	struct list_head node;		/* twinfs_rdma_conns */

	/* The owner's image: one DMA address per page, mapped at connect. */
	u64 *page_dma;
	unsigned long npages;

	/* The partner's image: pieces tiling [0, size). */
	struct twinfs_mirror_rdma_mr *rmr;
	u32 nrmr;
	u64 rcovered;

	spinlock_t lock;		/* free, credits */
	struct list_head free;
	unsigned int credits;		/* partner receives we may consume */
	struct twinfs_rdma_tx *tx;
	struct twinfs_rdma_rx *rx;
	char devname[IB_DEVICE_NAME_MAX];
};

static LIST_HEAD(twinfs_rdma_conns);
static DEFINE_MUTEX(twinfs_rdma_conns_lock);
static DECLARE_WAIT_QUEUE_HEAD(twinfs_rdma_gone);

/* Before RC_UP a failure only ends twinfs_rdma_connect(), which falls
 * back to TCP; after it, mirror.c hears of it (once). */
static void twinfs_rdma_fail(struct twinfs_rdma *rc, int err)
{
	if (test_and_set_bit(RC_BROKEN, &rc->flags))
		return;
	wake_up_all(&rc->wq);
	if (test_bit(RC_UP, &rc->flags))
		rc->conf.ops->broken(rc->conf.ctx, err);
}

static void twinfs_rdma_wc_error(struct twinfs_rdma *rc, struct ib_wc *wc,
				 const char *what)
{
	/* Flushes follow the first error or a disconnect: say nothing. */
	if (wc->status != IB_WC_WR_FLUSH_ERR &&
	    !test_bit(RC_BROKEN, &rc->flags))
		rdma_err("rdma %s to %pISpc failed: %s (%d)", what,
			 &rc->conf.addr, ib_wc_status_msg(wc->status),
			 wc->status);
	twinfs_rdma_fail(rc, wc->status == IB_WC_RETRY_EXC_ERR ?
			 -ETIMEDOUT : -ECONNRESET);
}

static void twinfs_rdma_send_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_tx *tx = container_of(wc->wr_cqe,
					struct twinfs_rdma_tx, send_cqe);
	struct twinfs_rdma *rc = tx->rc;

	if (wc->status != IB_WC_SUCCESS)
		twinfs_rdma_wc_error(rc, wc, "send");
	/* The chain is done with the frame and the SGEs either way (a
	 * flushed WR is done too).  The credit comes back with the ACK. */
	spin_lock(&rc->lock);
	list_add(&tx->free, &rc->free);
	spin_unlock(&rc->lock);
	wake_up_all(&rc->wq);
}

static void twinfs_rdma_write_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_tx *tx = container_of(wc->wr_cqe,
					struct twinfs_rdma_tx, write_cqe);

	/* Unsignaled: only an error completes here. */
	twinfs_rdma_wc_error(tx->rc, wc, "write");
}

static int twinfs_rdma_keys(struct twinfs_rdma *rc,
			    const struct twinfs_mirror_frame *f)
{
	const struct twinfs_mirror_rdma_mr *m = (const void *)(f + 1);
	u32 len = le32_to_cpu(f->f_len);
	u64 first = le64_to_cpu(f->f_off), total = le64_to_cpu(f->f_id);
	u32 n = len / sizeof(*m), i;

	if (test_bit(RC_KEYS, &rc->flags) || len % sizeof(*m) || !n ||
	    n > TWINFS_RDMA_KEYS_MAX || !total || total > 1u << 20 ||
	    (rc->nrmr && total != rc->nrmr) || first > total ||
	    n > total - first)
		return -EBADMSG;
	if (!rc->rmr) {
		rc->rmr = kvcalloc(total, sizeof(*rc->rmr), GFP_KERNEL);
		if (!rc->rmr)
			return -ENOMEM;
		rc->nrmr = total;
	}
	for (i = 0; i < n; i++) {
		if (!le32_to_cpu(m[i].m_len) || rc->rmr[first + i].m_len)
			return -EBADMSG;
		rc->rmr[first + i] = m[i];
		rc->rcovered += le32_to_cpu(m[i].m_len);
	}
	if (le16_to_cpu(f->f_flags) & TWINFS_MIRROR_F_LAST) {
		/* The pieces must tile exactly the region the owner has. */
		if (rc->rcovered != rc->conf.size)
			return -EBADMSG;
		for (i = 0; i < rc->nrmr; i++)
			if (!rc->rmr[i].m_len)
				return -EBADMSG;
		set_bit(RC_KEYS, &rc->flags);
		wake_up_all(&rc->wq);
	}
	return 0;
}

static void twinfs_rdma_recv_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_rx *rx = container_of(wc->wr_cqe,
					struct twinfs_rdma_rx, cqe);
	struct twinfs_rdma *rc = rx->ctx;
	const struct twinfs_mirror_frame *f;
	u64 id;
	int err = -EBADMSG;

	if (wc->status != IB_WC_SUCCESS) {
		twinfs_rdma_wc_error(rc, wc, "receive");
		return;
	}
	f = twinfs_rdma_rx_frame(rc->dev, rx, wc);
	if (!f)
		goto bad;
	switch (le16_to_cpu(f->f_type)) {
	case TWINFS_MIRROR_ACK:
		if (f->f_len || f->f_flags || f->f_off)
			goto bad;
		id = le64_to_cpu(f->f_id);
		/* Repost before counting the credit: the ACK means the
		 * partner has reposted the receive of its frame. */
		err = twinfs_rdma_post_rx(rc->qp, rc->pd, rx);
		if (err)
			goto bad;
		spin_lock(&rc->lock);
		rc->credits++;
		spin_unlock(&rc->lock);
		wake_up_all(&rc->wq);
		if (id)
			rc->conf.ops->acked(rc->conf.ctx, id);
		return;
	case TWINFS_MIRROR_RDMA_KEYS:
		err = twinfs_rdma_keys(rc, f) ?:
		      twinfs_rdma_post_rx(rc->qp, rc->pd, rx);
		if (err)
			goto bad;
		return;
	}
bad:
	if (!test_bit(RC_BROKEN, &rc->flags))
		rdma_err("malformed rdma frame from %pISpc (%d); dropping the link",
			 &rc->conf.addr, err);
	twinfs_rdma_fail(rc, err);
}

static struct twinfs_rdma_tx *twinfs_rdma_get_tx(struct twinfs_rdma *rc)
{
	struct twinfs_rdma_tx *tx = NULL;

	spin_lock(&rc->lock);
	if (rc->credits && !list_empty(&rc->free)) {
		tx = list_first_entry(&rc->free, struct twinfs_rdma_tx, free);
		list_del(&tx->free);
		rc->credits--;
	}
	spin_unlock(&rc->lock);
	return tx;
}

static void twinfs_rdma_put_tx(struct twinfs_rdma *rc,
			       struct twinfs_rdma_tx *tx)
{
	spin_lock(&rc->lock);
	list_add(&tx->free, &rc->free);
	rc->credits++;
	spin_unlock(&rc->lock);
	wake_up_all(&rc->wq);
}

/* Index of the partner's piece holding offset off, and where it starts. */
static u32 twinfs_rdma_rmr_find(struct twinfs_rdma *rc, u64 off, u64 *base)
{
	u64 b = 0;
	u32 i;

	for (i = 0; i < rc->nrmr; i++) {
		u32 n = le32_to_cpu(rc->rmr[i].m_len);

		if (off < b + n)
			break;
		b += n;
	}
	*base = b;
	return i;
}

/* The RDMA WRITEs of [off, off + len) into tx; the number of WRs. */
static int twinfs_rdma_build_writes(struct twinfs_rdma *rc,
				    struct twinfs_rdma_tx *tx, u64 off,
				    u32 len)
{
	u64 pos, end = off + len, rbase;
	u32 nsge = 0, nwr = 0, wr_sge = 0, r;

	r = twinfs_rdma_rmr_find(rc, off, &rbase);
	for (pos = off; pos < end; ) {
		unsigned long pg = pos >> PAGE_SHIFT;
		u32 in = offset_in_page(pos);
		u64 rend;
		u32 n;

		if (r >= rc->nrmr || nsge == TWINFS_RDMA_PAGES)
			return -EIO;
		rend = rbase + le32_to_cpu(rc->rmr[r].m_len);
		n = min3((u64)PAGE_SIZE - in, end - pos, rend - pos);
		/* A new WR at the start, at the SGE limit and at a piece
		 * boundary of the partner's image. */
		if (!wr_sge || wr_sge == rc->max_sge) {
			struct ib_rdma_wr *w;

			if (nwr == TWINFS_RDMA_WRS)
				return -EIO;
			w = &tx->wr[nwr];
			memset(w, 0, sizeof(*w));
			w->wr.opcode = IB_WR_RDMA_WRITE;
			w->wr.wr_cqe = &tx->write_cqe;
			w->wr.sg_list = &tx->sge[nsge];
			w->remote_addr = le64_to_cpu(rc->rmr[r].m_iova) +
					 (pos - rbase);
			w->rkey = le32_to_cpu(rc->rmr[r].m_rkey);
			if (nwr)
				tx->wr[nwr - 1].wr.next = &w->wr;
			nwr++;
			wr_sge = 0;
		}
		tx->sge[nsge].addr = rc->page_dma[pg] + in;
		tx->sge[nsge].length = n;
		tx->sge[nsge].lkey = rc->pd->local_dma_lkey;
		ib_dma_sync_single_for_device(rc->dev, rc->page_dma[pg] + in, n,
					      DMA_TO_DEVICE);
		tx->wr[nwr - 1].wr.num_sge++;
		nsge++;
		wr_sge++;
		pos += n;
		if (pos == rend) {
			rbase = rend;
			r++;
			wr_sge = 0;
		}
	}
	return nwr;
}

/*
 * Sends a frame of type to the partner, after the RDMA WRITEs of
 * [off, off + len) of the image when it is a WRITE (other frames carry no
 * bytes and keep their place in the queue pair's order).  The bytes are
 * read by the device when the WRs execute, not now: mirror.c's ordering
 * (rdma-transport.md, "Ordering") needs exactly that, so there is no bounce
 * buffer and no payload crc.  Called under mirror.c's send_lock.
 */
int twinfs_rdma_submit(struct twinfs_rdma *rc, u16 type, u64 id, u64 off,
		       u32 len)
{
	struct twinfs_rdma_tx *tx = NULL;
	struct ib_send_wr *first;
	int nwr = 0;
	long left;

	if (type == TWINFS_MIRROR_WRITE &&
	    (!len || len > TWINFS_MIRROR_PAYLOAD_MAX ||
	     off > rc->conf.size || len > rc->conf.size - off))
		return -EINVAL;
	left = wait_event_timeout(rc->wq, test_bit(RC_BROKEN, &rc->flags) ||
				  (tx = twinfs_rdma_get_tx(rc)),
				  msecs_to_jiffies(rc->conf.timeout_ms));
	if (test_bit(RC_BROKEN, &rc->flags)) {
		if (tx)
			twinfs_rdma_put_tx(rc, tx);
		return -ENOTCONN;
	}
	if (!left || !tx)
		return -ETIMEDOUT;

	if (type == TWINFS_MIRROR_WRITE) {
		nwr = twinfs_rdma_build_writes(rc, tx, off, len);
		if (nwr <= 0) {
			rdma_err("cannot map %u bytes at %llu for rdma", len,
				 off);
			twinfs_rdma_put_tx(rc, tx);
			return -EIO;
		}
	}
	/* The frame: a WRITE's f_len is the length of the bytes the WRITEs
	 * placed; it has no payload of its own. */
	twinfs_mirror_frame_init(tx->frame, type, 0, id, off, NULL, len);
	ib_dma_sync_single_for_device(rc->dev, tx->frame_dma,
				      sizeof(*tx->frame), DMA_TO_DEVICE);
	memset(&tx->send, 0, sizeof(tx->send));
	tx->send_sge.addr = tx->frame_dma;
	tx->send_sge.length = sizeof(*tx->frame);
	tx->send_sge.lkey = rc->pd->local_dma_lkey;
	tx->send.wr_cqe = &tx->send_cqe;
	tx->send.sg_list = &tx->send_sge;
	tx->send.num_sge = 1;
	tx->send.opcode = IB_WR_SEND;
	tx->send.send_flags = IB_SEND_SIGNALED;
	if (nwr) {
		tx->wr[nwr - 1].wr.next = &tx->send;
		first = &tx->wr[0].wr;
	} else {
		first = &tx->send;
	}
	/* RC executes the chain in order at the partner: the frame's
	 * receive completes after the WRITEs' bytes are placed. */
	if (ib_post_send(rc->qp, first, NULL)) {
		twinfs_rdma_put_tx(rc, tx);
		twinfs_rdma_fail(rc, -EIO);
		return -EIO;
	}
	return 0;
}

static int twinfs_rdma_cm_handler(struct rdma_cm_id *id,
				  struct rdma_cm_event *ev)
{
	struct twinfs_rdma *rc = id->context;
	const struct twinfs_mirror_rdma_offer *rep;
	int err;

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		err = rdma_resolve_route(id, rc->conf.timeout_ms);
		if (err)
			WRITE_ONCE(rc->cm_state, err);
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		WRITE_ONCE(rc->cm_state, RC_ROUTE);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		/* The REP's private data: the partner's receive depth. */
		rep = ev->param.conn.private_data;
		if (ev->param.conn.private_data_len < sizeof(*rep) ||
		    !rep->o_recv_depth) {
			WRITE_ONCE(rc->cm_state, -EPROTO);
			break;
		}
		spin_lock(&rc->lock);
		rc->credits = min_t(unsigned int, TWINFS_RDMA_TX,
				    le16_to_cpu(rep->o_recv_depth));
		spin_unlock(&rc->lock);
		/* The KEYS receive may complete before this event (CQ and CM
		 * run in different workqueues): RC_KEYS is a separate bit. */
		cmpxchg(&rc->cm_state, RC_ROUTE, RC_ESTABLISHED);
		break;
	case RDMA_CM_EVENT_REJECTED:
		pr_warn("twinfs: mirror: %pISpc refused the rdma connection: %s\n",
			&rc->conf.addr, rdma_reject_msg(id, ev->status));
		WRITE_ONCE(rc->cm_state, -ECONNREFUSED);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		WRITE_ONCE(rc->cm_state, ev->status < 0 ? ev->status :
			   -EHOSTUNREACH);
		twinfs_rdma_fail(rc, -EHOSTUNREACH);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
	case RDMA_CM_EVENT_ADDR_CHANGE:
		twinfs_rdma_fail(rc, -ECONNRESET);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		/* The ib_client's remove() (below) closed the connection
		 * before the CM gets here, unless it was still being set up:
		 * then twinfs_rdma_connect() fails and closes it. */
		twinfs_rdma_fail(rc, -ENODEV);
		break;
	default:
		break;
	}
	wake_up_all(&rc->wq);
	return 0;	/* the id is destroyed by twinfs_rdma_close() */
}

static int twinfs_rdma_wait_cm(struct twinfs_rdma *rc, int state)
{
	if (!wait_event_timeout(rc->wq, READ_ONCE(rc->cm_state) >= state ||
				READ_ONCE(rc->cm_state) < 0 ||
				test_bit(RC_BROKEN, &rc->flags),
				msecs_to_jiffies(rc->conf.timeout_ms)))
		return -ETIMEDOUT;
	if (READ_ONCE(rc->cm_state) < 0)
		return READ_ONCE(rc->cm_state);
	return test_bit(RC_BROKEN, &rc->flags) ? -ECONNRESET : 0;
}

/* Maps every page of the owner's image once (DMA_TO_DEVICE). */
static int twinfs_rdma_map_region(struct twinfs_rdma *rc)
{
	unsigned long i, n = DIV_ROUND_UP(rc->conf.size, PAGE_SIZE);

	rc->page_dma = kvcalloc(n, sizeof(u64), GFP_KERNEL);
	if (!rc->page_dma)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const u8 *p = rc->conf.region + (i << PAGE_SHIFT);
		u64 a = ib_dma_map_page(rc->dev, vmalloc_to_page(p), 0,
					PAGE_SIZE, DMA_TO_DEVICE);

		if (ib_dma_mapping_error(rc->dev, a))
			return -ENOMEM;
		rc->page_dma[i] = a;
		rc->npages = i + 1;
	}
	return 0;
}

static void twinfs_rdma_free(struct twinfs_rdma *rc)
{
	unsigned long i;

	if (rc->qp) {
		/* Every posted WR completes (flushed) before the buffers it
		 * names go away. */
		ib_drain_qp(rc->qp);
		rdma_destroy_qp(rc->id);
		rc->qp = NULL;
	}
	if (rc->cq)
		ib_free_cq(rc->cq);
	for (i = 0; rc->rx && i < TWINFS_RDMA_RX_OWNER; i++)
		twinfs_rdma_buf_unmap(rc->dev, &rc->rx[i].buf, rc->rx[i].dma,
				      TWINFS_RDMA_BUF, DMA_FROM_DEVICE);
	for (i = 0; rc->tx && i < TWINFS_RDMA_TX; i++)
		twinfs_rdma_buf_unmap(rc->dev, (void **)&rc->tx[i].frame,
				      rc->tx[i].frame_dma,
				      sizeof(struct twinfs_mirror_frame),
				      DMA_TO_DEVICE);
	for (i = 0; i < rc->npages; i++)
		ib_dma_unmap_page(rc->dev, rc->page_dma[i], PAGE_SIZE,
				  DMA_TO_DEVICE);
	kvfree(rc->page_dma);
	kvfree(rc->tx);
	kvfree(rc->rx);
	kvfree(rc->rmr);
	if (rc->pd)
		ib_dealloc_pd(rc->pd);
	if (rc->id)
		rdma_destroy_id(rc->id);
	/* Only now is nothing of the device left: remove_one() waits. */
	mutex_lock(&twinfs_rdma_conns_lock);
	list_del_init(&rc->node);
	mutex_unlock(&twinfs_rdma_conns_lock);
	wake_up_all(&twinfs_rdma_gone);
	kfree(rc);
}

static int twinfs_rdma_create(struct twinfs_rdma *rc)
{
	struct ib_qp_init_attr qa = {};
	unsigned int i;
	int err;

	rc->dev = rc->id->device;
	strscpy(rc->devname, dev_name(&rc->dev->dev), sizeof(rc->devname));
	mutex_lock(&twinfs_rdma_conns_lock);
	list_add(&rc->node, &twinfs_rdma_conns);
	mutex_unlock(&twinfs_rdma_conns_lock);
	if (rc->dev->attrs.max_send_sge < 8)
		return -EOPNOTSUPP;
	rc->pd = ib_alloc_pd(rc->dev, 0);	/* never UNSAFE_GLOBAL_RKEY */
	if (IS_ERR(rc->pd)) {
		err = PTR_ERR(rc->pd);
		rc->pd = NULL;
		return err;
	}
	/* WORKQUEUE: the handlers take mirror.c's spinlock in process
	 * context, as every other user of it does. */
	rc->cq = ib_alloc_cq(rc->dev, rc, TWINFS_RDMA_TX *
			     (TWINFS_RDMA_WRS + 1) + TWINFS_RDMA_RX_OWNER + 2, 0,
			     IB_POLL_WORKQUEUE);
	if (IS_ERR(rc->cq)) {
		err = PTR_ERR(rc->cq);
		rc->cq = NULL;
		return err;
	}
	qa.qp_context = rc;
	qa.send_cq = rc->cq;
	qa.recv_cq = rc->cq;
	qa.qp_type = IB_QPT_RC;
	qa.sq_sig_type = IB_SIGNAL_REQ_WR;
	qa.cap.max_send_wr = TWINFS_RDMA_TX * (TWINFS_RDMA_WRS + 1) + 1;
	qa.cap.max_recv_wr = TWINFS_RDMA_RX_OWNER + 1;	/* +1: ib_drain_qp */
	qa.cap.max_send_sge = min_t(u32, rc->dev->attrs.max_send_sge, 32);
	qa.cap.max_recv_sge = 1;
	err = rdma_create_qp(rc->id, rc->pd, &qa);
	if (err)
		return err;
	rc->qp = rc->id->qp;
	rc->max_sge = qa.cap.max_send_sge;

	rc->tx = kvcalloc(TWINFS_RDMA_TX, sizeof(*rc->tx), GFP_KERNEL);
	rc->rx = kvcalloc(TWINFS_RDMA_RX_OWNER, sizeof(*rc->rx), GFP_KERNEL);
	if (!rc->tx || !rc->rx)
		return -ENOMEM;
	for (i = 0; i < TWINFS_RDMA_TX; i++) {
		struct twinfs_rdma_tx *tx = &rc->tx[i];

		tx->rc = rc;
		tx->send_cqe.done = twinfs_rdma_send_done;
		tx->write_cqe.done = twinfs_rdma_write_done;
		err = twinfs_rdma_buf_map(rc->dev, (void **)&tx->frame,
					  &tx->frame_dma, sizeof(*tx->frame),
					  DMA_TO_DEVICE);
		if (err)
			return err;
		list_add_tail(&tx->free, &rc->free);
	}
	for (i = 0; i < TWINFS_RDMA_RX_OWNER; i++) {
		struct twinfs_rdma_rx *rx = &rc->rx[i];

		rx->ctx = rc;
		rx->cqe.done = twinfs_rdma_recv_done;
		err = twinfs_rdma_buf_map(rc->dev, &rx->buf, &rx->dma,
					  TWINFS_RDMA_BUF, DMA_FROM_DEVICE);
		if (err)
			return err;
		/* Posted in INIT, before the connect: the partner sends
		 * KEYS as soon as it is established. */
		err = twinfs_rdma_post_rx(rc->qp, rc->pd, rx);
		if (err)
			return err;
	}
	return twinfs_rdma_map_region(rc);
}

/* Disconnects, waits for every posted WR, frees.  Process context, not a
 * CM or CQ handler of this connection. */
void twinfs_rdma_close(struct twinfs_rdma *rc)
{
	if (!rc)
		return;
	set_bit(RC_BROKEN, &rc->flags);
	wake_up_all(&rc->wq);
	if (rc->id && READ_ONCE(rc->cm_state) >= RC_ESTABLISHED)
		rdma_disconnect(rc->id);	/* QP to error: WRs flush */
	twinfs_rdma_free(rc);
}

/* Wakes whoever waits on the connection; twinfs_rdma_close() follows. */
void twinfs_rdma_shutdown(struct twinfs_rdma *rc)
{
	set_bit(RC_BROKEN, &rc->flags);
	wake_up_all(&rc->wq);
}

/*
 * Connects to the partner's rdma_cm listener after the TCP handshake
 * offered RDMA.  Sleeps; each step bounded by conf->timeout_ms.  Returns
 * the connection, ready for twinfs_rdma_submit(), or an ERR_PTR (the
 * caller then mirrors over TCP; *why says which step failed).
 */
struct twinfs_rdma *twinfs_rdma_connect(const struct twinfs_rdma_conf *conf,
					const char **why)
{
	struct twinfs_mirror_rdma_req q = {};
	struct rdma_conn_param cp = {};
	struct twinfs_rdma *rc;
	int err;

	*why = "out of memory";
	rc = kzalloc(sizeof(*rc), GFP_KERNEL);
	if (!rc)
		return ERR_PTR(-ENOMEM);
	rc->conf = *conf;
	init_waitqueue_head(&rc->wq);
	spin_lock_init(&rc->lock);
	INIT_LIST_HEAD(&rc->free);
	INIT_LIST_HEAD(&rc->node);
	rc->id = rdma_create_id(&init_net, twinfs_rdma_cm_handler, rc,
				RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(rc->id)) {
		err = PTR_ERR(rc->id);
		rc->id = NULL;
		*why = "cannot create an rdma_cm id";
		goto fail;
	}
	*why = "no rdma route to the partner";
	err = rdma_set_ack_timeout(rc->id, TWINFS_RDMA_ACK_TIMEOUT) ?:
	      rdma_resolve_addr(rc->id, NULL,
				(struct sockaddr *)&rc->conf.addr,
				rc->conf.timeout_ms) ?:
	      twinfs_rdma_wait_cm(rc, RC_ROUTE);
	if (err)
		goto fail;
	*why = "cannot set up the queue pair";
	err = twinfs_rdma_create(rc);
	if (err)
		goto fail;

	q.q_magic = cpu_to_le32(TWINFS_MIRROR_MAGIC);
	q.q_version = cpu_to_le16(TWINFS_MIRROR_VERSION);
	q.q_recv_depth = cpu_to_le16(TWINFS_RDMA_RX);
	q.q_node_id = cpu_to_le32(conf->node_id);
	memcpy(q.q_token, conf->token, sizeof(q.q_token));
	if (READ_ONCE(twinfs_rdma_bad_token))
		q.q_token[0] ^= 0x5a;
	cp.private_data = &q;
	cp.private_data_len = sizeof(q);
	cp.retry_count = TWINFS_RDMA_RETRY;
	cp.rnr_retry_count = TWINFS_RDMA_RETRY;	/* credits: RNR is a bug */
	cp.responder_resources = 0;	/* no RDMA READ either way */
	cp.initiator_depth = 0;
	*why = "the partner did not accept the connection";
	err = rdma_connect(rc->id, &cp) ?:
	      twinfs_rdma_wait_cm(rc, RC_ESTABLISHED);
	if (err)
		goto fail;
	*why = "no keys from the partner";
	if (!wait_event_timeout(rc->wq, test_bit(RC_KEYS, &rc->flags) ||
				test_bit(RC_BROKEN, &rc->flags),
				msecs_to_jiffies(rc->conf.timeout_ms)))
		err = -ETIMEDOUT;
	else if (!test_bit(RC_KEYS, &rc->flags))
		err = -ECONNRESET;
	if (err)
		goto fail;
	set_bit(RC_UP, &rc->flags);
	/* A failure between the KEYS and RC_UP was not reported: check. */
	if (test_bit(RC_BROKEN, &rc->flags)) {
		err = -ECONNRESET;
		goto fail;
	}
	return rc;
fail:
	twinfs_rdma_close(rc);
	return ERR_PTR(err);
}

const char *twinfs_rdma_device(struct twinfs_rdma *rc)
{
	return rc->devname;
}

unsigned int twinfs_rdma_pieces(struct twinfs_rdma *rc)
{
	return rc->nrmr;
}

/* ======================================================================
 * Partner
 * ====================================================================== */

struct twinfs_rdma_piece {
	struct sg_table sgt;
	int nents;			/* mapped entries, 0 unmapped */
	struct ib_mr *mr;
	u64 off, len;			/* in the image */
};

struct twinfs_rdma_srv {
	struct twinfs_rdma_session s;
	struct rdma_cm_id *id;
	struct ib_device *dev;
	struct ib_pd *pd;
	struct ib_cq *cq;
	struct ib_qp *qp;
	spinlock_t lock;		/* dead against posting */
	bool dead;
	bool established;
	unsigned long failed;		/* bit 0: told the target once */
	u8 *image;			/* vmalloc'd, s.size bytes */
	struct twinfs_rdma_piece *pc;
	u32 npc;
	struct twinfs_rdma_rx *rx;
	struct ib_reg_wr *reg;		/* one per piece */
	struct ib_send_wr *keys;	/* one per KEYS frame */
	struct ib_sge *keys_sge;
	void **keys_buf;
	u64 *keys_dma;
	u32 nkeys;
	struct ib_cqe reg_cqe, keys_cqe;
};

static DEFINE_MUTEX(twinfs_rdma_srv_lock);	/* the four below */
static struct rdma_cm_id *twinfs_rdma_listen_id;
static bool twinfs_rdma_session_on;
static struct twinfs_rdma_session twinfs_rdma_session;
static struct twinfs_rdma_srv *twinfs_rdma_srv;

/* The connection is lost: tell the target thread (once) by shutting the
 * TCP session down; it calls twinfs_rdma_target_end(). */
static void twinfs_rdma_srv_fail(struct twinfs_rdma_srv *srv, const char *why)
{
	if (test_and_set_bit(0, &srv->failed))
		return;
	if (why)
		tgt_err("rdma connection of %pISpc: %s; dropping it",
			&srv->s.peer, why);
	kernel_sock_shutdown(srv->s.sock, SHUT_RDWR);
}

static void twinfs_rdma_srv_wc(struct twinfs_rdma_srv *srv, struct ib_wc *wc,
			       const char *what)
{
	if (wc->status == IB_WC_WR_FLUSH_ERR || READ_ONCE(srv->dead)) {
		twinfs_rdma_srv_fail(srv, NULL);
		return;
	}
	tgt_err("rdma %s of %pISpc failed: %s (%d)", what, &srv->s.peer,
		ib_wc_status_msg(wc->status), wc->status);
	twinfs_rdma_srv_fail(srv, NULL);
}

static void twinfs_rdma_srv_reg_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_srv *srv = cq->cq_context;

	if (wc->status != IB_WC_SUCCESS)
		twinfs_rdma_srv_wc(srv, wc, "registration");
}

static void twinfs_rdma_srv_send_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_srv *srv = cq->cq_context;

	if (wc->status != IB_WC_SUCCESS)
		twinfs_rdma_srv_wc(srv, wc, "send");
}

static int twinfs_rdma_srv_ack(struct twinfs_rdma_srv *srv,
			       struct twinfs_rdma_rx *rx, u64 id)
{
	struct ib_sge sge = {
		.addr = rx->ack_dma,
		.length = sizeof(*rx->ack),
		.lkey = srv->pd->local_dma_lkey,
	};
	struct ib_send_wr wr = {
		.wr_cqe = &rx->ack_cqe,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IB_WR_SEND,
		.send_flags = IB_SEND_SIGNALED,
	};

	/* This buffer is free: the owner sends to rx again only after it
	 * had the previous ACK of rx (the credit). */
	twinfs_mirror_frame_init(rx->ack, TWINFS_MIRROR_ACK, 0, id, 0, NULL, 0);
	ib_dma_sync_single_for_device(srv->dev, rx->ack_dma, sizeof(*rx->ack),
				      DMA_TO_DEVICE);
	return ib_post_send(srv->qp, &wr, NULL);
}

/*
 * A frame from the owner (the CQ's work item, one at a time, in the queue
 * pair's order): a WRITE's bytes are in the image already.  The target
 * makes them durable on its NVRAM device (or handles the SYNC frame), then
 * the receive is reposted and the frame ACKed.
 */
static void twinfs_rdma_srv_recv_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct twinfs_rdma_rx *rx = container_of(wc->wr_cqe,
					struct twinfs_rdma_rx, cqe);
	struct twinfs_rdma_srv *srv = rx->ctx;
	const struct twinfs_mirror_frame *f;
	const u8 *data = NULL;
	u64 off, id;
	u16 type;
	u32 len;
	int err;

	if (wc->status != IB_WC_SUCCESS) {
		twinfs_rdma_srv_wc(srv, wc, "receive");
		return;
	}
	f = twinfs_rdma_rx_frame(srv->dev, rx, wc);
	if (!f) {
		twinfs_rdma_srv_fail(srv, "malformed frame");
		return;
	}
	type = le16_to_cpu(f->f_type);
	off = le64_to_cpu(f->f_off);
	len = le32_to_cpu(f->f_len);
	id = le64_to_cpu(f->f_id);
	if (type == TWINFS_MIRROR_WRITE) {
		if (off > srv->s.size || len > srv->s.size - off) {
			tgt_err("bad request (type %u, %u bytes at %llu) from %pISpc over rdma; dropping it",
				type, len, off, &srv->s.peer);
			twinfs_rdma_srv_fail(srv, NULL);
			return;
		}
		/* rxe and every x86 device are cache coherent: the image
		 * holds what the WRITEs placed (pieces mapped both ways). */
		data = srv->image + off;
	} else if (len || f->f_flags) {
		twinfs_rdma_srv_fail(srv, "payload in a control frame");
		return;
	}
	if (srv->s.frame(srv->s.ctx, type, off, len, data)) {
		twinfs_rdma_srv_fail(srv, NULL);
		return;
	}
	/* Repost before the ACK: the ACK returns the credit. */
	spin_lock(&srv->lock);
	err = srv->dead ? -ENOTCONN :
	      twinfs_rdma_post_rx(srv->qp, srv->pd, rx) ?:
	      twinfs_rdma_srv_ack(srv, rx, id);
	spin_unlock(&srv->lock);
	if (err)
		twinfs_rdma_srv_fail(srv, err == -ENOTCONN ? NULL :
				     "cannot post the ack");
}

/* Everything but the id and srv itself. */
static void twinfs_rdma_srv_release(struct twinfs_rdma_srv *srv)
{
	u32 i;

	/* The flushed completions of the drain are no news to anyone. */
	set_bit(0, &srv->failed);

	if (srv->qp) {
		ib_drain_qp(srv->qp);
		rdma_destroy_qp(srv->id);
		srv->qp = NULL;
	}
	if (srv->cq)
		ib_free_cq(srv->cq);
	for (i = 0; srv->pc && i < srv->npc; i++) {
		struct twinfs_rdma_piece *p = &srv->pc[i];

		if (p->mr)
			ib_dereg_mr(p->mr);
		if (p->nents)
			ib_dma_unmap_sg(srv->dev, p->sgt.sgl,
					p->sgt.orig_nents, DMA_BIDIRECTIONAL);
		sg_free_table(&p->sgt);
	}
	for (i = 0; srv->rx && i < TWINFS_RDMA_RX; i++) {
		twinfs_rdma_buf_unmap(srv->dev, &srv->rx[i].buf,
				      srv->rx[i].dma, TWINFS_RDMA_BUF,
				      DMA_FROM_DEVICE);
		twinfs_rdma_buf_unmap(srv->dev, (void **)&srv->rx[i].ack,
				      srv->rx[i].ack_dma,
				      sizeof(struct twinfs_mirror_frame),
				      DMA_TO_DEVICE);
	}
	for (i = 0; srv->keys_buf && i < srv->nkeys; i++)
		twinfs_rdma_buf_unmap(srv->dev, &srv->keys_buf[i],
				      srv->keys_dma[i], TWINFS_RDMA_BUF,
				      DMA_TO_DEVICE);
	kvfree(srv->keys_buf);
	kvfree(srv->keys_dma);
	kvfree(srv->keys_sge);
	kvfree(srv->keys);
	kvfree(srv->reg);
	kvfree(srv->rx);
	kvfree(srv->pc);
	vfree(srv->image);
	if (srv->pd)
		ib_dealloc_pd(srv->pd);
}

/* The image in pieces of at most the device's fast-registration list,
 * each an FRWR MR with a fresh key. */
static int twinfs_rdma_srv_register(struct twinfs_rdma_srv *srv)
{
	u32 max_pages = min_t(u32, srv->dev->attrs.max_fast_reg_page_list_len,
			      512);
	u64 piece = (u64)max_pages << PAGE_SHIFT;
	struct page **pages;
	u32 i, j;
	int err = 0, n;

	if (!max_pages || srv->s.size % PAGE_SIZE)
		return -EINVAL;
	srv->image = vzalloc(srv->s.size);
	if (!srv->image)
		return -ENOMEM;
	srv->npc = DIV_ROUND_UP(srv->s.size, piece);
	srv->pc = kvcalloc(srv->npc, sizeof(*srv->pc), GFP_KERNEL);
	pages = kvmalloc_array(max_pages, sizeof(*pages), GFP_KERNEL);
	if (!srv->pc || !pages) {
		kvfree(pages);
		return -ENOMEM;
	}
	for (i = 0; i < srv->npc && !err; i++) {
		struct twinfs_rdma_piece *p = &srv->pc[i];
		u32 np;

		p->off = (u64)i * piece;
		p->len = min(piece, srv->s.size - p->off);
		np = p->len >> PAGE_SHIFT;
		for (j = 0; j < np; j++)
			pages[j] = vmalloc_to_page(srv->image + p->off +
						   ((u64)j << PAGE_SHIFT));
		err = sg_alloc_table_from_pages(&p->sgt, pages, np, 0, p->len,
						GFP_KERNEL);
		if (err)
			break;
		n = ib_dma_map_sg(srv->dev, p->sgt.sgl, p->sgt.orig_nents,
				  DMA_BIDIRECTIONAL);
		if (n <= 0) {
			err = -ENOMEM;
			break;
		}
		p->nents = n;
		p->mr = ib_alloc_mr(srv->pd, IB_MR_TYPE_MEM_REG, np);
		if (IS_ERR(p->mr)) {
			err = PTR_ERR(p->mr);
			p->mr = NULL;
			break;
		}
		n = ib_map_mr_sg(p->mr, p->sgt.sgl, p->nents, NULL, PAGE_SIZE);
		if (n != p->nents) {
			err = n < 0 ? n : -EINVAL;
			break;
		}
		ib_update_fast_reg_key(p->mr, ib_inc_rkey(p->mr->rkey));
	}
	kvfree(pages);
	return err;
}

/* The KEYS frames and the REG_MR work requests that precede them. */
static int twinfs_rdma_srv_keys(struct twinfs_rdma_srv *srv)
{
	u32 i;
	int err;

	srv->nkeys = DIV_ROUND_UP(srv->npc, TWINFS_RDMA_KEYS_MAX);
	srv->reg = kvcalloc(srv->npc, sizeof(*srv->reg), GFP_KERNEL);
	srv->keys = kvcalloc(srv->nkeys, sizeof(*srv->keys), GFP_KERNEL);
	srv->keys_sge = kvcalloc(srv->nkeys, sizeof(*srv->keys_sge),
				 GFP_KERNEL);
	srv->keys_buf = kvcalloc(srv->nkeys, sizeof(void *), GFP_KERNEL);
	srv->keys_dma = kvcalloc(srv->nkeys, sizeof(u64), GFP_KERNEL);
	if (!srv->reg || !srv->keys || !srv->keys_sge || !srv->keys_buf ||
	    !srv->keys_dma)
		return -ENOMEM;
	srv->reg_cqe.done = twinfs_rdma_srv_reg_done;
	srv->keys_cqe.done = twinfs_rdma_srv_send_done;
	for (i = 0; i < srv->npc; i++) {
		struct ib_reg_wr *r = &srv->reg[i];

		r->wr.opcode = IB_WR_REG_MR;
		r->wr.wr_cqe = &srv->reg_cqe;
		r->mr = srv->pc[i].mr;
		r->key = srv->pc[i].mr->rkey;
		r->access = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE;
		r->wr.next = &srv->reg[i + 1].wr;
	}
	srv->reg[srv->npc - 1].wr.next = &srv->keys[0];
	for (i = 0; i < srv->nkeys; i++) {
		struct twinfs_mirror_rdma_mr *m;
		struct twinfs_mirror_frame *f;
		u32 first = i * TWINFS_RDMA_KEYS_MAX, n, k;

		n = min(srv->npc - first, TWINFS_RDMA_KEYS_MAX);
		err = twinfs_rdma_buf_map(srv->dev, &srv->keys_buf[i],
					  &srv->keys_dma[i], TWINFS_RDMA_BUF,
					  DMA_TO_DEVICE);
		if (err)
			return err;
		f = srv->keys_buf[i];
		m = (void *)(f + 1);
		for (k = 0; k < n; k++) {
			struct ib_mr *mr = srv->pc[first + k].mr;

			m[k].m_iova = cpu_to_le64(mr->iova);
			m[k].m_rkey = cpu_to_le32(mr->rkey);
			m[k].m_len = cpu_to_le32(srv->pc[first + k].len);
		}
		twinfs_mirror_frame_init(f, TWINFS_MIRROR_RDMA_KEYS,
					 i == srv->nkeys - 1 ?
					 TWINFS_MIRROR_F_LAST : 0, srv->npc,
					 first, m, n * sizeof(*m));
		ib_dma_sync_single_for_device(srv->dev, srv->keys_dma[i],
					      TWINFS_RDMA_BUF, DMA_TO_DEVICE);
		srv->keys_sge[i].addr = srv->keys_dma[i];
		srv->keys_sge[i].length = sizeof(*f) + n * sizeof(*m);
		srv->keys_sge[i].lkey = srv->pd->local_dma_lkey;
		srv->keys[i].wr_cqe = &srv->keys_cqe;
		srv->keys[i].sg_list = &srv->keys_sge[i];
		srv->keys[i].num_sge = 1;
		srv->keys[i].opcode = IB_WR_SEND;
		srv->keys[i].send_flags = IB_SEND_SIGNALED;
		srv->keys[i].next = i + 1 < srv->nkeys ? &srv->keys[i + 1] :
				    NULL;
	}
	return 0;
}

static int twinfs_rdma_srv_create(struct twinfs_rdma_srv *srv)
{
	struct ib_qp_init_attr qa = {};
	u32 i, sq;
	int err;

	srv->pd = ib_alloc_pd(srv->dev, 0);
	if (IS_ERR(srv->pd)) {
		err = PTR_ERR(srv->pd);
		srv->pd = NULL;
		return err;
	}
	err = twinfs_rdma_srv_register(srv);
	if (err)
		return err;
	/* Send queue: the registrations, the KEYS frames, one ACK per
	 * receive; +1 for ib_drain_qp. */
	sq = srv->npc + DIV_ROUND_UP(srv->npc, TWINFS_RDMA_KEYS_MAX) +
	     TWINFS_RDMA_RX + 1;
	/* WORKQUEUE: the receive handler sleeps in the FUA write. */
	srv->cq = ib_alloc_cq(srv->dev, srv, sq + TWINFS_RDMA_RX + 2, 0,
			      IB_POLL_WORKQUEUE);
	if (IS_ERR(srv->cq)) {
		err = PTR_ERR(srv->cq);
		srv->cq = NULL;
		return err;
	}
	qa.qp_context = srv;
	qa.send_cq = srv->cq;
	qa.recv_cq = srv->cq;
	qa.qp_type = IB_QPT_RC;
	qa.sq_sig_type = IB_SIGNAL_REQ_WR;
	qa.cap.max_send_wr = sq;
	qa.cap.max_recv_wr = TWINFS_RDMA_RX + 1;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	err = rdma_create_qp(srv->id, srv->pd, &qa);
	if (err)
		return err;
	srv->qp = srv->id->qp;
	srv->rx = kvcalloc(TWINFS_RDMA_RX, sizeof(*srv->rx), GFP_KERNEL);
	if (!srv->rx)
		return -ENOMEM;
	for (i = 0; i < TWINFS_RDMA_RX; i++) {
		struct twinfs_rdma_rx *rx = &srv->rx[i];

		rx->ctx = srv;
		rx->cqe.done = twinfs_rdma_srv_recv_done;
		rx->ack_cqe.done = twinfs_rdma_srv_send_done;
		err = twinfs_rdma_buf_map(srv->dev, &rx->buf, &rx->dma,
					  TWINFS_RDMA_BUF, DMA_FROM_DEVICE) ?:
		      twinfs_rdma_buf_map(srv->dev, (void **)&rx->ack,
					  &rx->ack_dma, sizeof(*rx->ack),
					  DMA_TO_DEVICE) ?:
		      twinfs_rdma_post_rx(srv->qp, srv->pd, rx);
		if (err)
			return err;
	}
	return twinfs_rdma_srv_keys(srv);
}

static bool twinfs_rdma_same_host(const struct sockaddr *a,
				  const struct sockaddr_in *b)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)a;

	return a->sa_family == AF_INET &&
	       s->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* CONNECT_REQUEST on the listener: a new id.  Non-zero: the CM destroys
 * it (after our rdma_reject). */
static int twinfs_rdma_srv_request(struct rdma_cm_id *id,
				   struct rdma_cm_event *ev)
{
	const struct twinfs_mirror_rdma_req *q = ev->param.conn.private_data;
	struct sockaddr *from = (struct sockaddr *)&id->route.addr.dst_addr;
	struct twinfs_mirror_rdma_offer rep = {};
	struct rdma_conn_param cp = {};
	struct twinfs_rdma_srv *srv;
	const char *why = NULL;
	int err;

	mutex_lock(&twinfs_rdma_srv_lock);
	if (ev->param.conn.private_data_len < sizeof(*q) ||
	    le32_to_cpu(q->q_magic) != TWINFS_MIRROR_MAGIC ||
	    le16_to_cpu(q->q_version) != TWINFS_MIRROR_VERSION)
		why = "malformed request";
	else if (!twinfs_rdma_session_on)
		why = "no authenticated session";
	else if (twinfs_rdma_srv)
		why = "already connected";
	else if (!twinfs_rdma_same_host(from, &twinfs_rdma_session.peer))
		why = "not the address of the session";
	else if (crypto_memneq(q->q_token, twinfs_rdma_session.token,
			       sizeof(q->q_token)))
		why = "bad token";
	if (why) {
		mutex_unlock(&twinfs_rdma_srv_lock);
		tgt_err("rejected rdma connection from %pISpc: %s", from, why);
		rdma_reject(id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
		return 1;
	}
	srv = kzalloc(sizeof(*srv), GFP_KERNEL);
	if (!srv) {
		err = -ENOMEM;
		goto reject;
	}
	srv->s = twinfs_rdma_session;
	srv->id = id;
	srv->dev = id->device;
	spin_lock_init(&srv->lock);
	id->context = srv;
	err = twinfs_rdma_srv_create(srv);
	if (err)
		goto free;
	rep.o_port = cpu_to_le16(twinfs_rdma_session.port);
	rep.o_recv_depth = cpu_to_le16(TWINFS_RDMA_RX);
	cp.private_data = &rep;
	cp.private_data_len = sizeof(rep);
	cp.retry_count = TWINFS_RDMA_RETRY;
	cp.rnr_retry_count = TWINFS_RDMA_RETRY;
	cp.responder_resources = 0;
	cp.initiator_depth = 0;
	err = rdma_accept(id, &cp);
	if (err)
		goto free;
	twinfs_rdma_srv = srv;
	mutex_unlock(&twinfs_rdma_srv_lock);
	tgt_info("rdma connection of node %u at %pISpc on %s: %u pieces of the copy registered",
		 le32_to_cpu(q->q_node_id), from, dev_name(&srv->dev->dev),
		 srv->npc);
	return 0;
free:
	id->context = NULL;
	twinfs_rdma_srv_release(srv);
	kfree(srv);
reject:
	mutex_unlock(&twinfs_rdma_srv_lock);
	tgt_err("cannot accept the rdma connection of %pISpc: %d", from, err);
	rdma_reject(id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
	return 1;
}

static int twinfs_rdma_srv_handler(struct rdma_cm_id *id,
				   struct rdma_cm_event *ev)
{
	struct twinfs_rdma_srv *srv = id->context;
	int err;

	if (id == twinfs_rdma_listen_id)
		return 0;	/* wildcard listener: no device of its own */
	switch (ev->event) {
	case RDMA_CM_EVENT_CONNECT_REQUEST:
		return twinfs_rdma_srv_request(id, ev);
	case RDMA_CM_EVENT_ESTABLISHED:
		if (!srv)
			return 0;
		/* The queue pair is in RTS now: register the pieces, then
		 * tell the owner their keys (same send queue: in order). */
		spin_lock(&srv->lock);
		err = srv->dead ? 0 : ib_post_send(srv->qp, &srv->reg[0].wr,
						   NULL);
		srv->established = !err;
		spin_unlock(&srv->lock);
		if (err)
			twinfs_rdma_srv_fail(srv, "cannot post the keys");
		return 0;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_ADDR_CHANGE:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		if (srv)
			twinfs_rdma_srv_fail(srv, NULL);
		return 0;
	default:
		return 0;
	}
}

/* The target on TCP port: listen for rdma_cm on rdma_port.  A target
 * without it serves TCP only. */
int twinfs_rdma_listen(u16 rdma_port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_ANY),
		.sin_port = htons(rdma_port),
	};
	struct rdma_cm_id *id;
	int err;

	id = rdma_create_id(&init_net, twinfs_rdma_srv_handler, NULL,
			    RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(id))
		return PTR_ERR(id);
	err = rdma_bind_addr(id, (struct sockaddr *)&sin) ?:
	      rdma_listen(id, 4);
	if (err) {
		rdma_destroy_id(id);
		return err;
	}
	mutex_lock(&twinfs_rdma_srv_lock);
	twinfs_rdma_listen_id = id;
	mutex_unlock(&twinfs_rdma_srv_lock);
	return 0;
}

void twinfs_rdma_unlisten(void)
{
	struct rdma_cm_id *id;

	mutex_lock(&twinfs_rdma_srv_lock);
	id = twinfs_rdma_listen_id;
	mutex_unlock(&twinfs_rdma_srv_lock);
	if (id)
		rdma_destroy_id(id);	/* waits for its handlers */
	mutex_lock(&twinfs_rdma_srv_lock);
	twinfs_rdma_listen_id = NULL;
	mutex_unlock(&twinfs_rdma_srv_lock);
}

/* The target thread authenticated a TCP session: from now on an rdma_cm
 * connection from that address with that session's token is accepted. */
void twinfs_rdma_target_begin(const struct twinfs_rdma_session *s)
{
	mutex_lock(&twinfs_rdma_srv_lock);
	twinfs_rdma_session = *s;
	twinfs_rdma_session_on = true;
	mutex_unlock(&twinfs_rdma_srv_lock);
}

/* The TCP session ended: its RDMA connection goes too.  Target thread. */
void twinfs_rdma_target_end(void)
{
	struct twinfs_rdma_srv *srv;

	mutex_lock(&twinfs_rdma_srv_lock);
	twinfs_rdma_session_on = false;
	memzero_explicit(twinfs_rdma_session.token,
			 sizeof(twinfs_rdma_session.token));
	srv = twinfs_rdma_srv;
	mutex_unlock(&twinfs_rdma_srv_lock);
	if (!srv)
		return;
	spin_lock(&srv->lock);
	srv->dead = true;
	spin_unlock(&srv->lock);
	set_bit(0, &srv->failed);
	if (srv->established)
		rdma_disconnect(srv->id);	/* QP to error: WRs flush */
	/* Handlers that still run see srv->dead and post nothing. */
	twinfs_rdma_srv_release(srv);
	rdma_destroy_id(srv->id);
	kfree(srv);
	mutex_lock(&twinfs_rdma_srv_lock);
	twinfs_rdma_srv = NULL;
	mutex_unlock(&twinfs_rdma_srv_lock);
	wake_up_all(&twinfs_rdma_gone);
}

/* The transport of the session being served: "rdma", "tcp" or NULL. */
const char *twinfs_rdma_target_transport(void)
{
	const char *t = NULL;

	mutex_lock(&twinfs_rdma_srv_lock);
	if (twinfs_rdma_session_on)
		t = twinfs_rdma_srv ? "rdma" : "tcp";
	mutex_unlock(&twinfs_rdma_srv_lock);
	return t;
}

/* ======================================================================
 * Device removal (both ends)
 * ====================================================================== */

static bool twinfs_rdma_on(struct ib_device *dev)
{
	struct twinfs_rdma *rc;
	bool found = false;

	mutex_lock(&twinfs_rdma_conns_lock);
	list_for_each_entry(rc, &twinfs_rdma_conns, node)
		found |= rc->dev == dev;
	mutex_unlock(&twinfs_rdma_conns_lock);
	mutex_lock(&twinfs_rdma_srv_lock);
	found |= twinfs_rdma_srv && twinfs_rdma_srv->dev == dev;
	mutex_unlock(&twinfs_rdma_srv_lock);
	return found;
}

/*
 * The device goes away (rdma link delete, driver unload): every connection
 * on it must be gone before this returns (ib clients are removed before
 * rdma_cm's own, which then delivers DEVICE_REMOVAL).  Fail them; the
 * threads that own them (the mirror thread, the target thread) close them
 * when their TCP connection, shut down by the failure, returns; wait.
 */
static void twinfs_rdma_remove_one(struct ib_device *dev, void *client_data)
{
	struct twinfs_rdma *rc;

	mutex_lock(&twinfs_rdma_conns_lock);
	list_for_each_entry(rc, &twinfs_rdma_conns, node)
		if (rc->dev == dev)
			twinfs_rdma_fail(rc, -ENODEV);
	mutex_unlock(&twinfs_rdma_conns_lock);
	mutex_lock(&twinfs_rdma_srv_lock);
	if (twinfs_rdma_srv && twinfs_rdma_srv->dev == dev)
		twinfs_rdma_srv_fail(twinfs_rdma_srv, "device removed");
	mutex_unlock(&twinfs_rdma_srv_lock);
	wait_event(twinfs_rdma_gone, !twinfs_rdma_on(dev));
}

static int twinfs_rdma_add_one(struct ib_device *dev)
{
	return 0;
}

static struct ib_client twinfs_rdma_client = {
	.name = "twinfs_mirror",
	.add = twinfs_rdma_add_one,
	.remove = twinfs_rdma_remove_one,
};

int twinfs_rdma_init(void)
{
	return ib_register_client(&twinfs_rdma_client);
}

void twinfs_rdma_exit(void)
{
	ib_unregister_client(&twinfs_rdma_client);
}
