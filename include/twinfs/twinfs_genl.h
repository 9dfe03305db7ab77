/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * twinfs generic netlink family: the interface between twinfs.ko and its
 * user space (twinfsctl, twinfsd).  Documentation/design.md, section
 * "Genetlink", describes it; keep the two in step.
 *
 * Family "twinfs", version 1, in the initial network namespace only.
 * Every command needs CAP_NET_ADMIN (-EPERM otherwise); so does joining
 * the multicast group "events" on kernels that check group flags at bind
 * time (6.1 does not; twinfsctl checks itself).  Each command has its own
 * strict attribute policy: an attribute the command does not take, a wrong
 * type or length, or a string longer than its limit is refused with -EINVAL
 * and an extended-ACK message naming the attribute; integers out of range
 * (PORT 0, NODE_ID >= TWINFS_MAX_NODES) with -ERANGE.
 *
 * Commands (request attributes -> reply):
 *   STATUS        doit:   DEVICE or UUID -> one STATUS message
 *                 dumpit: nothing -> one STATUS message per mount
 *                 (DEVICE, UUID, NODE_ID if set, MOUNT_NODE, PARTNER if
 *                 any, MIRROR_STATE, with a partner TRANSPORT,
 *                 MIRROR_WRITES, MIRROR_RESYNCS, MIRROR_TAIL_RESYNCS,
 *                 CM_DEVICE,
 *                 CM_USED, CM_SIZE, LAST_SEQ, CP_SEQ, CP_COUNT,
 *                 RECORDS_REPLAYED, READ_ONLY if so)
 *   TARGET_START  PORT, TARGET_DEVICE, KEY_FILE[, TRANSPORT] -> ACK;
 *                 -EBUSY when a target runs already
 *   TARGET_STOP   nothing -> ACK (also when none runs)
 *   TARGET_STATUS nothing -> TARGET_STATE, and when listening PORT,
 *                 TARGET_DEVICE, TARGET_SIZE, TARGET_SERVING, TARGET_WRITES,
 *                 TARGET_CONNECTIONS, TARGET_REFUSED
 *   SET_NODE      NODE_ID -> ACK
 *   TAKEOVER      MOUNT_NODE (the lost holder's node) -> one TAKEOVER
 *                 message: MOUNT_NODE, and when a target ran
 *                 TARGET_DEVICE, TARGET_WRITES, TARGET_SERVING if an owner
 *                 was still connected.  Stops this node's mirror target and
 *                 arms the takeover: the next mount with node=MOUNT_NODE
 *                 (which replays the copy) sends EVENT_TAKEOVER_DONE.
 *                 -ESTALE when the copy's resync did not finish.
 *   RELINQUISH    DEVICE or UUID -> one RELINQUISH message: DEVICE, UUID,
 *                 CP_SEQ, LAST_SEQ, CM_USED.  Writes a consistency point
 *                 (every record on the shared disk, the change memory and
 *                 its mirror copy trimmed) so that the umount that
 *                 follows has nothing left to write.
 *   CONNECT       DEVICE or UUID -> ACK.  Lets the mount's partner link
 *                 connect again after DISCONNECT, and makes a link that
 *                 waits between attempts try at once (the partner's
 *                 target is back); the event MIRROR_STATE says when it is
 *                 mirrored.  -EOPNOTSUPP for a mount without partner=.
 *   DISCONNECT    DEVICE or UUID -> ACK once the link is down.  The mount
 *                 goes on with local NVRAM only ("disconnected", marking
 *                 what the partner lacks for a tail resync) and does not
 *                 reconnect until CONNECT.
 *
 * Events, multicast to "events" (command = the event):
 *   EVENT_MOUNTED       DEVICE, UUID, MOUNT_NODE, CP_SEQ, RECORDS_REPLAYED
 *   EVENT_UNMOUNTED     DEVICE, UUID
 *   EVENT_CP_DONE       DEVICE, UUID, CP_SEQ
 *   EVENT_MIRROR_STATE  DEVICE, UUID, MIRROR_STATE, TRANSPORT
 *   EVENT_ERROR         DEVICE, UUID (when known), ERRNO, MESSAGE
 *   EVENT_TAKEOVER_DONE DEVICE, UUID, MOUNT_NODE, CP_SEQ, RECORDS_REPLAYED,
 *                       TAKEOVER_MS (from TAKEOVER to the mount's end)
 */
#ifndef TWINFS_GENL_H
#define TWINFS_GENL_H

#define TWINFS_GENL_NAME		"twinfs"
#define TWINFS_GENL_VERSION		1
#define TWINFS_GENL_MCGRP_EVENTS	"events"

/* Longest strings accepted (bytes, without the NUL). */
#define TWINFS_GENL_DEVICE_MAX		31	/* s_id */
#define TWINFS_GENL_PATH_MAX		63	/* TARGET_DEVICE */
#define TWINFS_GENL_KEY_FILE_MAX	127	/* KEY_FILE */
#define TWINFS_GENL_TRANSPORT_MAX	15	/* "tcp", "rdma" */
#define TWINFS_GENL_UUID_LEN		16
#define TWINFS_GENL_MESSAGE_MAX		127	/* EVENT_ERROR text */

enum twinfs_genl_cmd {
	TWINFS_CMD_UNSPEC,
	TWINFS_CMD_STATUS,
	TWINFS_CMD_TARGET_START,
	TWINFS_CMD_TARGET_STOP,
	TWINFS_CMD_TARGET_STATUS,
	TWINFS_CMD_SET_NODE,
	/* Events: sent by the module only; a request with one is refused. */
	TWINFS_CMD_EVENT_MOUNTED,
	TWINFS_CMD_EVENT_UNMOUNTED,
	TWINFS_CMD_EVENT_CP_DONE,
	TWINFS_CMD_EVENT_MIRROR_STATE,
	TWINFS_CMD_EVENT_ERROR,
	/* Requests again (added after the events: numbers never change). */
	TWINFS_CMD_TAKEOVER,
	TWINFS_CMD_RELINQUISH,
	TWINFS_CMD_CONNECT,
	TWINFS_CMD_DISCONNECT,
	/* Event. */
	TWINFS_CMD_EVENT_TAKEOVER_DONE,

	__TWINFS_CMD_MAX,
	TWINFS_CMD_MAX = __TWINFS_CMD_MAX - 1
};

enum twinfs_genl_attr {
	TWINFS_A_UNSPEC,
	TWINFS_A_PAD,			/* alignment of the u64s */
	TWINFS_A_DEVICE,		/* string: block device ("vda") */
	TWINFS_A_UUID,			/* binary, 16 bytes */
	TWINFS_A_NODE_ID,		/* u32: this machine's node (SET_NODE) */
	TWINFS_A_MOUNT_NODE,		/* u32: the mount's node= (its CP area) */
	TWINFS_A_PARTNER,		/* string: partner= of the mount */
	TWINFS_A_MIRROR_STATE,		/* string: none, degraded,
					 * disconnected, resyncing, mirrored */
	TWINFS_A_TRANSPORT,		/* string: tcp or rdma */
	TWINFS_A_CM_DEVICE,		/* string: the change memory's device */
	TWINFS_A_CM_USED,		/* u64: bytes */
	TWINFS_A_CM_SIZE,		/* u64: bytes */
	TWINFS_A_LAST_SEQ,		/* u64 */
	TWINFS_A_CP_SEQ,		/* u64 */
	TWINFS_A_CP_COUNT,		/* u64 */
	TWINFS_A_RECORDS_REPLAYED,	/* u64 */
	TWINFS_A_READ_ONLY,		/* flag */
	TWINFS_A_PORT,			/* u16: TCP port of the target */
	TWINFS_A_TARGET_DEVICE,		/* string: path of the copy's device */
	TWINFS_A_KEY_FILE,		/* string: path of the cluster key */
	TWINFS_A_TARGET_STATE,		/* string: stopped, listening */
	TWINFS_A_TARGET_SIZE,		/* u64: bytes of the copy's device */
	TWINFS_A_TARGET_SERVING,	/* flag: an owner is connected */
	TWINFS_A_TARGET_WRITES,		/* u64 */
	TWINFS_A_TARGET_CONNECTIONS,	/* u64 */
	TWINFS_A_TARGET_REFUSED,	/* u64 */
	TWINFS_A_ERRNO,			/* s32: negative errno */
	TWINFS_A_MESSAGE,		/* string */
	TWINFS_A_TAKEOVER_MS,		/* u32: TAKEOVER to mounted */
	TWINFS_A_MIRROR_WRITES,		/* u64: ranges ACKed by the partner */
	TWINFS_A_MIRROR_RESYNCS,	/* u64: resyncs since mount */
	TWINFS_A_MIRROR_TAIL_RESYNCS,	/* u64: of them, tail resyncs */

	__TWINFS_A_MAX,
	TWINFS_A_MAX = __TWINFS_A_MAX - 1
};

#endif /* TWINFS_GENL_H */
