/* SPDX-License-Identifier: GPL-2.0 */
/*
 * twinfs: named fault-injection points.  Only a mount with the option
 * fault_inject has them armed (debugfs: /sys/kernel/debug/twinfs/<dev>/);
 * elsewhere twinfs_fault() is one pointer test.  A point fires only inside
 * an operation; its full name is "<operation>:<step>", e.g. "rename:dir_insert".
 */
#ifndef TWINFS_FAULT_H
#define TWINFS_FAULT_H

#include "twinfs.h"

#define TWINFS_FAULT_STEPS(X)		\
	X(UNDO_ALLOC, "undo_alloc")	\
	X(ALLOC_BLOCKS, "alloc_blocks")	\
	X(ALLOC_INODE, "alloc_inode")	\
	X(MAP_INSERT, "map_insert")	\
	X(MAP_LEAF, "map_leaf")		\
	X(TRUNCATE, "truncate")		\
	X(DIR_INSERT, "dir_insert")	\
	X(DIR_SPLIT, "dir_split")	\
	X(DIR_GROW, "dir_grow")		\
	X(DIR_NEW_LEAF, "dir_new_leaf")	\
	X(DIR_REMOVE, "dir_remove")	\
	X(DIR_REPLACE, "dir_replace")	\
	X(DIR_PARENT, "dir_parent")	\
	X(DIR_INIT, "dir_init")		\
	X(INODE_NEW, "inode_new")	\
	X(SYMLINK, "symlink")		\
	X(WRITE_BEGIN, "write_begin")	\
	X(SETATTR, "setattr")		\
	X(COMMIT, "commit")

#define TWINFS_FAULT_ENUM(id, name) TWINFS_FAULT_##id,
enum twinfs_fault_step {
	TWINFS_FAULT_STEPS(TWINFS_FAULT_ENUM)
	TWINFS_FAULT_NR
};
#undef TWINFS_FAULT_ENUM

int __twinfs_fault(struct super_block *sb, enum twinfs_fault_step step);

/* 0, or the injected error when the point fires. */
static inline int twinfs_fault(struct super_block *sb,
			       enum twinfs_fault_step step)
{
	if (likely(!TWINFS_SB(sb)->fault))
		return 0;
	return __twinfs_fault(sb, step);
}

int twinfs_fault_init(struct super_block *sb);
void twinfs_fault_exit(struct super_block *sb);
void twinfs_fault_module_init(void);
void twinfs_fault_module_exit(void);

#endif /* TWINFS_FAULT_H */
