// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: the generic netlink family "twinfs", the interface of the
 * membership daemon and of twinfsctl.  Commands: STATUS of the mounts,
 * the partner's mirror target (TARGET_START, TARGET_STOP, TARGET_STATUS),
 * SET_NODE, the failover steps of a mount (TAKEOVER, RELINQUISH, CONNECT,
 * DISCONNECT); events on the multicast group "events".  The wire format is
 * include/twinfs/twinfs_genl.h, the design Documentation/design.md,
 * "Genetlink".
 *
 * Every command and the events group need CAP_NET_ADMIN; each command has
 * a strict policy of its own.  The family lives in the initial network
 * namespace only.
 *
 * Locks:
 *   The genetlink core runs our commands one at a time (no parallel_ops),
 *   so SET_NODE and the STATUS readers of the node never race with each
 *   other; twinfs_genl_node is atomic for readers outside a command.
 *   twinfs_genl_mounts_lock: the list of mounted file systems.  It is held
 *   while a STATUS message is built from a super block, so
 *   twinfs_genl_unmounting() (start of put_super) waits for the reader and
 *   the super block stays whole while it is read.  Taken under the
 *   genetlink core's lock and under s_umount (mount, umount); inside it
 *   only the leaf locks of the accessors (change memory header, CP,
 *   mirror) are taken.  RELINQUISH, CONNECT and DISCONNECT count
 *   themselves as users of the mount's entry under it, drop it, and only
 *   then work (s_umount by trylock, the mirror); put_super waits for the
 *   users at its start, before it tears anything down, so umount(2)
 *   returns only once they are done and the file system is gone.
 *   twinfs_genl_takeover_lock: the armed takeover; a leaf lock.
 */
#include <linux/ctype.h>
#include <linux/mm.h>
#include <linux/ratelimit.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include "genl.h"
#include "cm.h"
#include "mirror.h"

struct twinfs_genl_mount {
	struct list_head list;
	struct super_block *sb;
	u64 id;				/* dump cursor; grows in list order */
	unsigned int users;		/* commands working on sb */
	bool dying;			/* put_super waits for users == 0 */
};

static LIST_HEAD(twinfs_genl_mounts);
static DEFINE_MUTEX(twinfs_genl_mounts_lock);	/* the list, next_id, users */
static DECLARE_WAIT_QUEUE_HEAD(twinfs_genl_users_wq);
static u64 twinfs_genl_next_id = 1;
static atomic64_t twinfs_genl_node = ATOMIC64_INIT(-1);
static bool twinfs_genl_registered;
static DEFINE_RATELIMIT_STATE(twinfs_genl_error_rs, 5 * HZ, 10);

/* TAKEOVER armed it; the mount with node=node ends it with an event. */
static struct {
	bool armed;
	u32 node;
	ktime_t start;
} twinfs_genl_armed;
static DEFINE_SPINLOCK(twinfs_genl_takeover_lock);

static struct genl_family twinfs_genl_family;

enum { TWINFS_GENL_GRP_EVENTS };

static const struct genl_multicast_group twinfs_genl_mcgrps[] = {
	[TWINFS_GENL_GRP_EVENTS] = {
		.name = TWINFS_GENL_MCGRP_EVENTS,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

/* ---- policies: one per command, nothing else is accepted ---- */

static const struct nla_policy twinfs_status_policy[TWINFS_A_MAX + 1] = {
	[TWINFS_A_DEVICE] = { .type = NLA_NUL_STRING,
			      .len = TWINFS_GENL_DEVICE_MAX },
	/* Exactly TWINFS_GENL_UUID_LEN bytes: checked in the doit, so that a
	 * wrong length is -EINVAL (the core's exact-length check says
	 * -ERANGE). */
	[TWINFS_A_UUID] = { .type = NLA_BINARY },
};

static const struct nla_policy twinfs_target_start_policy[TWINFS_A_MAX + 1] = {
	[TWINFS_A_PORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[TWINFS_A_TARGET_DEVICE] = { .type = NLA_NUL_STRING,
				     .len = TWINFS_GENL_PATH_MAX },
	[TWINFS_A_KEY_FILE] = { .type = NLA_NUL_STRING,
				.len = TWINFS_GENL_KEY_FILE_MAX },
	[TWINFS_A_TRANSPORT] = { .type = NLA_NUL_STRING,
				 .len = TWINFS_GENL_TRANSPORT_MAX },
};

/* TARGET_STOP and TARGET_STATUS take no attribute at all. */
static const struct nla_policy twinfs_empty_policy[TWINFS_A_MAX + 1] = {};

static const struct nla_policy twinfs_set_node_policy[TWINFS_A_MAX + 1] = {
	[TWINFS_A_NODE_ID] = NLA_POLICY_MAX(NLA_U32, TWINFS_MAX_NODES - 1),
};

static const struct nla_policy twinfs_takeover_policy[TWINFS_A_MAX + 1] = {
	[TWINFS_A_MOUNT_NODE] = NLA_POLICY_MAX(NLA_U32, TWINFS_MAX_NODES - 1),
};

/* ---- messages ---- */

static int twinfs_genl_put_id(struct sk_buff *skb, struct super_block *sb)
{
	if (nla_put_string(skb, TWINFS_A_DEVICE, sb->s_id) ||
	    nla_put(skb, TWINFS_A_UUID, TWINFS_GENL_UUID_LEN, &sb->s_uuid))
		return -EMSGSIZE;
	return 0;
}

static int twinfs_genl_put_node(struct sk_buff *skb)
{
	s64 node = atomic64_read(&twinfs_genl_node);

	if (node >= 0 && nla_put_u32(skb, TWINFS_A_NODE_ID, node))
		return -EMSGSIZE;
	return 0;
}

/* One STATUS message about sb; the caller holds twinfs_genl_mounts_lock. */
static int twinfs_genl_fill_status(struct sk_buff *skb, u32 portid, u32 seq,
				   int flags, struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_mirror_info mi;
	u64 size, used;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &twinfs_genl_family, flags,
			  TWINFS_CMD_STATUS);
	if (!hdr)
		return -EMSGSIZE;
	twinfs_cm_stats(sb, &size, &used);
	twinfs_mirror_info(sb, &mi);
	if (twinfs_genl_put_id(skb, sb) || twinfs_genl_put_node(skb) ||
	    nla_put_u32(skb, TWINFS_A_MOUNT_NODE, sbi->opts.node) ||
	    (sbi->opts.partner &&
	     nla_put_string(skb, TWINFS_A_PARTNER, sbi->opts.partner)) ||
	    nla_put_string(skb, TWINFS_A_MIRROR_STATE, mi.state) ||
	    (mi.transport &&
	     (nla_put_string(skb, TWINFS_A_TRANSPORT, mi.transport) ||
	      nla_put_u64_64bit(skb, TWINFS_A_MIRROR_WRITES, mi.writes,
				TWINFS_A_PAD) ||
	      nla_put_u64_64bit(skb, TWINFS_A_MIRROR_RESYNCS, mi.resyncs,
				TWINFS_A_PAD) ||
	      nla_put_u64_64bit(skb, TWINFS_A_MIRROR_TAIL_RESYNCS,
				mi.tail_resyncs, TWINFS_A_PAD))) ||
	    nla_put_string(skb, TWINFS_A_CM_DEVICE, twinfs_cm_device(sb)) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CM_USED, used, TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CM_SIZE, size, TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_LAST_SEQ, twinfs_cm_last_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CP_SEQ, twinfs_cp_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CP_COUNT, twinfs_cp_count(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_RECORDS_REPLAYED,
			      sbi->records_replayed, TWINFS_A_PAD) ||
	    (sb_rdonly(sb) && nla_put_flag(skb, TWINFS_A_READ_ONLY))) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* ---- commands ---- */

static struct twinfs_genl_mount *twinfs_genl_find_mount(struct genl_info *info)
{
	struct nlattr *dev = info->attrs[TWINFS_A_DEVICE];
	struct nlattr *uuid = info->attrs[TWINFS_A_UUID];
	struct twinfs_genl_mount *m;

	lockdep_assert_held(&twinfs_genl_mounts_lock);
	list_for_each_entry(m, &twinfs_genl_mounts, list) {
		if (dev && nla_strcmp(dev, m->sb->s_id))
			continue;
		if (uuid && memcmp(nla_data(uuid), &m->sb->s_uuid,
				   TWINFS_GENL_UUID_LEN))
			continue;
		return m;
	}
	return NULL;
}

static struct super_block *twinfs_genl_find(struct genl_info *info)
{
	struct twinfs_genl_mount *m = twinfs_genl_find_mount(info);

	return m ? m->sb : NULL;
}

/* A command that names a mount: DEVICE or UUID, and a UUID of 16 bytes. */
static int twinfs_genl_check_id(struct genl_info *info, const char *missing)
{
	if (!info->attrs[TWINFS_A_DEVICE] && !info->attrs[TWINFS_A_UUID]) {
		NL_SET_ERR_ATTR_MISS(info->extack, NULL, TWINFS_A_DEVICE);
		/* A literal of the caller's: what NL_SET_ERR_MSG() stores. */
		if (info->extack)
			info->extack->_msg = missing;
		return -EINVAL;
	}
	if (info->attrs[TWINFS_A_UUID] &&
	    nla_len(info->attrs[TWINFS_A_UUID]) != TWINFS_GENL_UUID_LEN) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[TWINFS_A_UUID],
				    "UUID must be 16 bytes");
		return -EINVAL;
	}
	return 0;
}

/*
 * The mount DEVICE or UUID names, for a command to work on: the caller is
 * one of its users until twinfs_genl_put_mount(), and put_super waits for
 * the users before it tears the file system down.  A mount whose mount(2)
 * has not returned yet (not SB_BORN) or whose put_super has begun is not
 * found.
 */
static struct twinfs_genl_mount *twinfs_genl_get_mount(struct genl_info *info,
							const char *missing)
{
	struct twinfs_genl_mount *m;
	int err;

	err = twinfs_genl_check_id(info, missing);
	if (err)
		return ERR_PTR(err);
	mutex_lock(&twinfs_genl_mounts_lock);
	m = twinfs_genl_find_mount(info);
	if (m && (m->dying || !(READ_ONCE(m->sb->s_flags) & SB_BORN)))
		m = NULL;
	if (m)
		m->users++;
	mutex_unlock(&twinfs_genl_mounts_lock);
	if (!m) {
		GENL_SET_ERR_MSG(info, "no twinfs file system with that device or uuid is mounted");
		return ERR_PTR(-ENODEV);
	}
	return m;
}

static void twinfs_genl_put_mount(struct twinfs_genl_mount *m)
{
	mutex_lock(&twinfs_genl_mounts_lock);
	if (!--m->users)
		wake_up_all(&twinfs_genl_users_wq);
	mutex_unlock(&twinfs_genl_mounts_lock);
}

static int twinfs_genl_status_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct super_block *sb;
	struct sk_buff *msg;
	int err;

	err = twinfs_genl_check_id(info, "STATUS needs DEVICE or UUID (or a dump for every mount)");
	if (err)
		return err;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&twinfs_genl_mounts_lock);
	sb = twinfs_genl_find(info);
	if (!sb) {
		mutex_unlock(&twinfs_genl_mounts_lock);
		GENL_SET_ERR_MSG(info, "no twinfs file system with that device or uuid is mounted");
		err = -ENODEV;
		goto out_msg;
	}
	err = twinfs_genl_fill_status(msg, info->snd_portid, info->snd_seq, 0,
				      sb);
	mutex_unlock(&twinfs_genl_mounts_lock);
	if (err)
		goto out_msg;
	return genlmsg_reply(msg, info);

out_msg:
	nlmsg_free(msg);
	return err;
}

/* cb->args[0]: the id of the next mount to dump. */
static int twinfs_genl_status_dumpit(struct sk_buff *skb,
				     struct netlink_callback *cb)
{
	struct twinfs_genl_mount *m;
	int err = 0;

	mutex_lock(&twinfs_genl_mounts_lock);
	list_for_each_entry(m, &twinfs_genl_mounts, list) {
		if (m->id < cb->args[0])
			continue;
		err = twinfs_genl_fill_status(skb, NETLINK_CB(cb->skb).portid,
					      cb->nlh->nlmsg_seq, NLM_F_MULTI,
					      m->sb);
		if (err)
			break;
		cb->args[0] = m->id + 1;
	}
	mutex_unlock(&twinfs_genl_mounts_lock);
	/* A full skb ends this part; the next call goes on after it. */
	if (err == -EMSGSIZE && skb->len)
		return skb->len;
	return err ?: skb->len;
}

/* A path for the target's "start <port> <device> <keyfile>" command: one
 * word, absolute. */
static bool twinfs_genl_path_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if (isspace(*s) || !isprint(*s))
			return false;
	return true;
}

static int twinfs_genl_target_start(struct sk_buff *skb,
				    struct genl_info *info)
{
	struct nlattr **a = info->attrs;
	const char *dev, *key, *tr = "rdma";
	char *cmd;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, TWINFS_A_PORT)) {
		GENL_SET_ERR_MSG(info, "TARGET_START needs PORT");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, TWINFS_A_TARGET_DEVICE)) {
		GENL_SET_ERR_MSG(info, "TARGET_START needs TARGET_DEVICE");
		return -EINVAL;
	}
	if (GENL_REQ_ATTR_CHECK(info, TWINFS_A_KEY_FILE)) {
		GENL_SET_ERR_MSG(info, "TARGET_START needs KEY_FILE");
		return -EINVAL;
	}
	dev = nla_data(a[TWINFS_A_TARGET_DEVICE]);
	key = nla_data(a[TWINFS_A_KEY_FILE]);
	if (!twinfs_genl_path_ok(dev)) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[TWINFS_A_TARGET_DEVICE],
				    "TARGET_DEVICE must be an absolute path without white space");
		return -EINVAL;
	}
	if (!twinfs_genl_path_ok(key)) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[TWINFS_A_KEY_FILE],
				    "KEY_FILE must be an absolute path without white space");
		return -EINVAL;
	}
	if (a[TWINFS_A_TRANSPORT]) {
		tr = nla_data(a[TWINFS_A_TRANSPORT]);
		if (strcmp(tr, "tcp") && strcmp(tr, "rdma")) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[TWINFS_A_TRANSPORT],
					    "TRANSPORT must be tcp or rdma");
			return -EOPNOTSUPP;
		}
	}
	cmd = kasprintf(GFP_KERNEL, "start %u %s %s %s",
			nla_get_u16(a[TWINFS_A_PORT]), dev, key, tr);
	if (!cmd)
		return -ENOMEM;
	err = twinfs_target_command(cmd);
	kfree(cmd);
	if (err == -EBUSY)
		GENL_SET_ERR_MSG(info, "the mirror target runs already; stop it first");
	else if (err)
		GENL_SET_ERR_MSG(info, "the mirror target did not start (the kernel log says why)");
	return err;
}

static int twinfs_genl_target_stop(struct sk_buff *skb, struct genl_info *info)
{
	return twinfs_target_command("stop");
}

static int twinfs_genl_target_status(struct sk_buff *skb,
				     struct genl_info *info)
{
	struct twinfs_target_info ti;
	struct sk_buff *msg;
	void *hdr;

	twinfs_target_info(&ti);
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &twinfs_genl_family, 0,
				TWINFS_CMD_TARGET_STATUS);
	if (!hdr)
		goto too_big;
	if (nla_put_string(msg, TWINFS_A_TARGET_STATE,
			   ti.listening ? "listening" : "stopped"))
		goto too_big;
	if (ti.listening &&
	    (nla_put_u16(msg, TWINFS_A_PORT, ti.port) ||
	     nla_put_string(msg, TWINFS_A_TARGET_DEVICE, ti.device) ||
	     nla_put_string(msg, TWINFS_A_TRANSPORT,
			    ti.rdma ? "rdma" : "tcp") ||
	     nla_put_u64_64bit(msg, TWINFS_A_TARGET_SIZE, ti.size,
			       TWINFS_A_PAD) ||
	     (ti.serving && nla_put_flag(msg, TWINFS_A_TARGET_SERVING)) ||
	     nla_put_u64_64bit(msg, TWINFS_A_TARGET_WRITES, ti.writes,
			       TWINFS_A_PAD) ||
	     nla_put_u64_64bit(msg, TWINFS_A_TARGET_CONNECTIONS, ti.conns,
			       TWINFS_A_PAD) ||
	     nla_put_u64_64bit(msg, TWINFS_A_TARGET_REFUSED, ti.refused,
			       TWINFS_A_PAD)))
		goto too_big;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

too_big:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

static int twinfs_genl_set_node(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, TWINFS_A_NODE_ID)) {
		GENL_SET_ERR_MSG(info, "SET_NODE needs NODE_ID");
		return -EINVAL;
	}
	atomic64_set(&twinfs_genl_node,
		     nla_get_u32(info->attrs[TWINFS_A_NODE_ID]));
	return 0;
}

/* TAKEOVER: this node's copy of node's change memory is about to be
 * mounted (and replayed) by the caller. */
static int twinfs_genl_takeover(struct sk_buff *skb, struct genl_info *info)
{
	struct twinfs_target_info ti;
	struct sk_buff *msg;
	u32 node;
	void *hdr;

	if (GENL_REQ_ATTR_CHECK(info, TWINFS_A_MOUNT_NODE)) {
		GENL_SET_ERR_MSG(info, "TAKEOVER needs MOUNT_NODE (the node taken over)");
		return -EINVAL;
	}
	node = nla_get_u32(info->attrs[TWINFS_A_MOUNT_NODE]);
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	twinfs_target_stop_info(&ti);
	if (ti.listening && ti.partial) {
		nlmsg_free(msg);
		pr_warn("twinfs: takeover of node %u refused: the copy on %s is partial (its resync did not finish)\n",
			node, ti.device);
		GENL_SET_ERR_MSG(info, "this node's copy is partial (its resync did not finish): it cannot be taken over");
		return -ESTALE;
	}
	if (ti.serving)
		pr_warn("twinfs: takeover of node %u: its owner was still connected to this node's copy\n",
			node);
	spin_lock(&twinfs_genl_takeover_lock);
	twinfs_genl_armed.armed = true;
	twinfs_genl_armed.node = node;
	twinfs_genl_armed.start = ktime_get();
	spin_unlock(&twinfs_genl_takeover_lock);
	pr_info("twinfs: takeover of node %u armed%s%s\n", node,
		ti.listening ? "; mirror target stopped, copy on " : "",
		ti.listening ? ti.device : "");

	hdr = genlmsg_put_reply(msg, info, &twinfs_genl_family, 0,
				TWINFS_CMD_TAKEOVER);
	if (!hdr || nla_put_u32(msg, TWINFS_A_MOUNT_NODE, node) ||
	    (ti.listening &&
	     (nla_put_string(msg, TWINFS_A_TARGET_DEVICE, ti.device) ||
	      nla_put_u64_64bit(msg, TWINFS_A_TARGET_WRITES, ti.writes,
				TWINFS_A_PAD) ||
	      (ti.serving && nla_put_flag(msg, TWINFS_A_TARGET_SERVING))))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* RELINQUISH: a consistency point now, so the umount that follows has
 * nothing left to write and the partner's copy is trimmed. */
static int twinfs_genl_relinquish(struct sk_buff *skb, struct genl_info *info)
{
	struct twinfs_genl_mount *m;
	struct super_block *sb;
	struct sk_buff *msg;
	u64 size, used;
	void *hdr;
	int err;

	m = twinfs_genl_get_mount(info, "RELINQUISH needs DEVICE or UUID");
	if (IS_ERR(m))
		return PTR_ERR(m);
	sb = m->sb;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	err = -ENOMEM;
	if (!msg)
		goto out_put;
	/* Not down_read(): an umount holding s_umount waits for our use. */
	if (!down_read_trylock(&sb->s_umount)) {
		GENL_SET_ERR_MSG(info, "an umount or remount of the file system is under way");
		err = -EBUSY;
		goto out_msg;
	}
	err = sync_filesystem(sb);
	up_read(&sb->s_umount);
	if (err) {
		GENL_SET_ERR_MSG(info, "the consistency point failed (the kernel log says why)");
		goto out_msg;
	}
	twinfs_cm_stats(sb, &size, &used);
	twinfs_info(sb, "relinquish: consistency point %llu written, change memory %llu of %llu bytes",
		    twinfs_cp_seq(sb), used, size);
	hdr = genlmsg_put_reply(msg, info, &twinfs_genl_family, 0,
				TWINFS_CMD_RELINQUISH);
	err = -EMSGSIZE;
	if (!hdr || twinfs_genl_put_id(msg, sb) ||
	    nla_put_u64_64bit(msg, TWINFS_A_CP_SEQ, twinfs_cp_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(msg, TWINFS_A_LAST_SEQ, twinfs_cm_last_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(msg, TWINFS_A_CM_USED, used, TWINFS_A_PAD))
		goto out_msg;
	genlmsg_end(msg, hdr);
	twinfs_genl_put_mount(m);
	return genlmsg_reply(msg, info);

out_msg:
	nlmsg_free(msg);
out_put:
	twinfs_genl_put_mount(m);
	return err;
}

/* CONNECT and DISCONNECT of a mount's partner link. */
static int twinfs_genl_link(struct genl_info *info, bool up)
{
	struct twinfs_genl_mount *m;
	int err;

	m = twinfs_genl_get_mount(info, up ? "CONNECT needs DEVICE or UUID" :
					     "DISCONNECT needs DEVICE or UUID");
	if (IS_ERR(m))
		return PTR_ERR(m);
	err = up ? twinfs_mirror_reconnect(m->sb) :
		   twinfs_mirror_disconnect(m->sb);
	if (err == -EOPNOTSUPP)
		GENL_SET_ERR_MSG(info, "the file system is mounted without partner=: it has no partner link");
	else if (err == -ETIMEDOUT)
		GENL_SET_ERR_MSG(info, "the partner link did not go down in time");
	twinfs_genl_put_mount(m);
	return err;
}

static int twinfs_genl_connect(struct sk_buff *skb, struct genl_info *info)
{
	return twinfs_genl_link(info, true);
}

static int twinfs_genl_disconnect(struct sk_buff *skb, struct genl_info *info)
{
	return twinfs_genl_link(info, false);
}

static const struct genl_ops twinfs_genl_ops[] = {
	{
		.cmd = TWINFS_CMD_STATUS,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_status_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_status_doit,
		.dumpit = twinfs_genl_status_dumpit,
	},
	{
		.cmd = TWINFS_CMD_TARGET_START,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_target_start_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_target_start,
	},
	{
		.cmd = TWINFS_CMD_TARGET_STOP,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_empty_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_target_stop,
	},
	{
		.cmd = TWINFS_CMD_TARGET_STATUS,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_empty_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_target_status,
	},
	{
		.cmd = TWINFS_CMD_SET_NODE,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_set_node_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_set_node,
	},
	{
		.cmd = TWINFS_CMD_TAKEOVER,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_takeover_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_takeover,
	},
	{
		.cmd = TWINFS_CMD_RELINQUISH,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_status_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_relinquish,
	},
	{
		.cmd = TWINFS_CMD_CONNECT,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_status_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_connect,
	},
	{
		.cmd = TWINFS_CMD_DISCONNECT,
		.flags = GENL_ADMIN_PERM,
		.policy = twinfs_status_policy,
		.maxattr = TWINFS_A_MAX,
		.doit = twinfs_genl_disconnect,
	},
};

static struct genl_family twinfs_genl_family __ro_after_init = {
	.name = TWINFS_GENL_NAME,
	.version = TWINFS_GENL_VERSION,
	.maxattr = TWINFS_A_MAX,
	.module = THIS_MODULE,
	.ops = twinfs_genl_ops,
	.n_ops = ARRAY_SIZE(twinfs_genl_ops),
	.mcgrps = twinfs_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(twinfs_genl_mcgrps),
	.resv_start_op = TWINFS_CMD_UNSPEC,
};

/* ---- events ---- */

/* A message for an event about sb (may be NULL), or NULL when nobody
 * listens or there is no memory (an event is not worth failing for). */
static struct sk_buff *twinfs_genl_event_new(u8 cmd, struct super_block *sb,
					     gfp_t gfp, void **hdr)
{
	struct sk_buff *skb;

	if (!READ_ONCE(twinfs_genl_registered) ||
	    !genl_has_listeners(&twinfs_genl_family, &init_net,
				TWINFS_GENL_GRP_EVENTS))
		return NULL;
	skb = genlmsg_new(NLMSG_GOODSIZE, gfp);
	if (!skb)
		return NULL;
	*hdr = genlmsg_put(skb, 0, 0, &twinfs_genl_family, 0, cmd);
	if (!*hdr || (sb && twinfs_genl_put_id(skb, sb))) {
		nlmsg_free(skb);
		return NULL;
	}
	return skb;
}

static void twinfs_genl_event_send(struct sk_buff *skb, void *hdr, gfp_t gfp)
{
	genlmsg_end(skb, hdr);
	/* -ESRCH: the last listener left meanwhile. */
	genlmsg_multicast(&twinfs_genl_family, skb, 0, TWINFS_GENL_GRP_EVENTS,
			  gfp);
}

void twinfs_genl_notify_unmounted(struct super_block *sb)
{
	struct sk_buff *skb;
	void *hdr;

	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_UNMOUNTED, sb, GFP_NOFS,
				    &hdr);
	if (skb)
		twinfs_genl_event_send(skb, hdr, GFP_NOFS);
}

void twinfs_genl_notify_cp_done(struct super_block *sb, u64 cp_seq)
{
	struct sk_buff *skb;
	void *hdr;

	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_CP_DONE, sb, GFP_NOFS,
				    &hdr);
	if (!skb)
		return;
	if (nla_put_u64_64bit(skb, TWINFS_A_CP_SEQ, cp_seq, TWINFS_A_PAD)) {
		nlmsg_free(skb);
		return;
	}
	twinfs_genl_event_send(skb, hdr, GFP_NOFS);
}

void twinfs_genl_notify_mirror_state(struct super_block *sb,
				     const char *state, const char *transport)
{
	struct sk_buff *skb;
	void *hdr;

	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_MIRROR_STATE, sb,
				    GFP_NOFS, &hdr);
	if (!skb)
		return;
	if (nla_put_string(skb, TWINFS_A_MIRROR_STATE, state) ||
	    (transport && nla_put_string(skb, TWINFS_A_TRANSPORT, transport))) {
		nlmsg_free(skb);
		return;
	}
	twinfs_genl_event_send(skb, hdr, GFP_NOFS);
}

void twinfs_genl_notify_error(struct super_block *sb, int err,
			      const char *msg)
{
	char text[TWINFS_GENL_MESSAGE_MAX + 1];
	struct sk_buff *skb;
	void *hdr;

	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_ERROR, sb, GFP_ATOMIC,
				    &hdr);
	if (!skb)
		return;
	if (!__ratelimit(&twinfs_genl_error_rs)) {
		nlmsg_free(skb);
		return;
	}
	strscpy(text, msg, sizeof(text));
	if (nla_put_s32(skb, TWINFS_A_ERRNO, err) ||
	    nla_put_string(skb, TWINFS_A_MESSAGE, text)) {
		nlmsg_free(skb);
		return;
	}
	twinfs_genl_event_send(skb, hdr, GFP_ATOMIC);
}

/* The mount that ends an armed TAKEOVER (same node=) says so. */
static void twinfs_genl_takeover_done(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct sk_buff *skb;
	bool mine;
	s64 ms = 0;
	void *hdr;

	spin_lock(&twinfs_genl_takeover_lock);
	mine = twinfs_genl_armed.armed &&
	       twinfs_genl_armed.node == sbi->opts.node;
	if (mine) {
		twinfs_genl_armed.armed = false;
		ms = ktime_ms_delta(ktime_get(), twinfs_genl_armed.start);
	}
	spin_unlock(&twinfs_genl_takeover_lock);
	if (!mine)
		return;
	twinfs_info(sb, "takeover of node %u done in %lld ms: %llu records replayed",
		    sbi->opts.node, ms, sbi->records_replayed);
	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_TAKEOVER_DONE, sb,
				    GFP_KERNEL, &hdr);
	if (!skb)
		return;
	if (nla_put_u32(skb, TWINFS_A_MOUNT_NODE, sbi->opts.node) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CP_SEQ, twinfs_cp_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_RECORDS_REPLAYED,
			      sbi->records_replayed, TWINFS_A_PAD) ||
	    nla_put_u32(skb, TWINFS_A_TAKEOVER_MS,
			min_t(s64, ms, U32_MAX))) {
		nlmsg_free(skb);
		return;
	}
	twinfs_genl_event_send(skb, hdr, GFP_KERNEL);
}

void twinfs_genl_mounted(struct super_block *sb)
{
	struct twinfs_genl_mount *m;
	struct sk_buff *skb;
	void *hdr;

	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (m) {
		m->sb = sb;
		mutex_lock(&twinfs_genl_mounts_lock);
		m->id = twinfs_genl_next_id++;
		list_add_tail(&m->list, &twinfs_genl_mounts);
		mutex_unlock(&twinfs_genl_mounts_lock);
	} else {
		twinfs_warn(sb, "out of memory: genetlink STATUS will not list this mount");
	}

	skb = twinfs_genl_event_new(TWINFS_CMD_EVENT_MOUNTED, sb, GFP_KERNEL,
				    &hdr);
	if (!skb)
		goto takeover;
	if (nla_put_u32(skb, TWINFS_A_MOUNT_NODE, TWINFS_SB(sb)->opts.node) ||
	    nla_put_u64_64bit(skb, TWINFS_A_CP_SEQ, twinfs_cp_seq(sb),
			      TWINFS_A_PAD) ||
	    nla_put_u64_64bit(skb, TWINFS_A_RECORDS_REPLAYED,
			      TWINFS_SB(sb)->records_replayed, TWINFS_A_PAD))
		nlmsg_free(skb);
	else
		twinfs_genl_event_send(skb, hdr, GFP_KERNEL);
takeover:
	/* After MOUNTED, for a listener; also when nobody listens, so that
	 * the takeover is not left armed. */
	twinfs_genl_takeover_done(sb);
}

void twinfs_genl_unmounting(struct super_block *sb)
{
	struct twinfs_genl_mount *m, *found = NULL;

	mutex_lock(&twinfs_genl_mounts_lock);
	list_for_each_entry(m, &twinfs_genl_mounts, list) {
		if (m->sb == sb) {
			found = m;
			break;
		}
	}
	if (found) {
		found->dying = true;
		while (found->users) {
			mutex_unlock(&twinfs_genl_mounts_lock);
			wait_event(twinfs_genl_users_wq, !READ_ONCE(found->users));
			mutex_lock(&twinfs_genl_mounts_lock);
		}
		list_del(&found->list);
		kfree(found);
	}
	mutex_unlock(&twinfs_genl_mounts_lock);
}

bool twinfs_genl_node_id(u32 *node)
{
	s64 n = atomic64_read(&twinfs_genl_node);

	if (n < 0)
		return false;
	*node = n;
	return true;
}

int twinfs_genl_init(void)
{
	int err;

	err = genl_register_family(&twinfs_genl_family);
	if (err) {
		pr_err("twinfs: cannot register the genetlink family: %d\n",
		       err);
		return err;
	}
	WRITE_ONCE(twinfs_genl_registered, true);
	return 0;
}

/* No mount is left (the module is going): only commands and listeners.
 * genl_unregister_family() waits for running commands and dumps and drops
 * every listener's membership of "events". */
void twinfs_genl_exit(void)
{
	WRITE_ONCE(twinfs_genl_registered, false);
	genl_unregister_family(&twinfs_genl_family);
	WARN_ON_ONCE(!list_empty(&twinfs_genl_mounts));
}
