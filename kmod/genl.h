/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: the generic netlink family "twinfs" (genl.c).  Commands and
 * attributes: include/twinfs/twinfs_genl.h; Documentation/design.md,
 * "Genetlink".
 *
 * The notify functions multicast an event to the group "events"; they do
 * nothing when nobody listens or the family is not registered, never fail
 * and never sleep on a lock of the caller's.  They allocate with GFP_NOFS
 * (so they may be called with file system locks held, not in atomic
 * context), twinfs_genl_notify_error() with GFP_ATOMIC (any context).
 */
#ifndef TWINFS_GENL_KERNEL_H
#define TWINFS_GENL_KERNEL_H

#include "twinfs.h"
#include "../include/twinfs/twinfs_genl.h"

int twinfs_genl_init(void);
void twinfs_genl_exit(void);

/* The end of a successful mount: STATUS lists sb from now on, and
 * EVENT_MOUNTED goes out. */
void twinfs_genl_mounted(struct super_block *sb);
/* The start of put_super: STATUS no longer looks at sb once this returns. */
void twinfs_genl_unmounting(struct super_block *sb);

void twinfs_genl_notify_unmounted(struct super_block *sb);
void twinfs_genl_notify_cp_done(struct super_block *sb, u64 cp_seq);
/* state: "degraded", "resyncing", "mirrored"; transport: "tcp", "rdma". */
void twinfs_genl_notify_mirror_state(struct super_block *sb,
				     const char *state, const char *transport);
/* sb may be NULL; msg is cut at TWINFS_GENL_MESSAGE_MAX bytes. */
void twinfs_genl_notify_error(struct super_block *sb, int err,
			      const char *msg);

/* SET_NODE's value; false when it was never set. */
bool twinfs_genl_node_id(u32 *node);

#endif /* TWINFS_GENL_KERNEL_H */
