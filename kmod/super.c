// SPDX-License-Identifier: GPL-2.0
/*
 * twinfs: mount, superblock, statfs, mount options and module entry points.
 */
#include <linux/module.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/statfs.h>
#include <linux/seq_file.h>
#include <linux/blkdev.h>
#include "twinfs.h"
#include "fault.h"
#include "cm.h"
#include "mirror.h"
#include "genl.h"

void twinfs_msg(struct super_block *sb, const char *level, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	printk("%stwinfs (%s): %pV\n", level, sb ? sb->s_id : "?", &vaf);
	va_end(args);
}

/* EVENT_ERROR for a corruption report: the function and the format, not
 * the values (the kernel log has those); any context. */
static void twinfs_corrupt_event(struct super_block *sb, const char *func,
				 const char *fmt)
{
	char text[TWINFS_GENL_MESSAGE_MAX + 1];

	snprintf(text, sizeof(text), "corruption in %s: %s", func, fmt);
	twinfs_genl_notify_error(sb, -EUCLEAN, text);
}

void twinfs_corrupt(struct super_block *sb, const char *func,
		    const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	pr_err_ratelimited("twinfs (%s): corruption in %s: %pV\n",
			   sb->s_id, func, &vaf);
	va_end(args);
	twinfs_corrupt_event(sb, func, fmt);
	if (TWINFS_SB(sb)->opts.errors == TWINFS_ERRORS_RO && !sb_rdonly(sb)) {
		twinfs_err(sb, "remounting read-only (errors=remount-ro)");
		sb->s_flags |= SB_RDONLY;
	}
}

/* Writes the superblock with the given state; waits when sync. */
static int twinfs_write_super(struct super_block *sb, u32 state, bool sync)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_super *raw = (struct twinfs_super *)sbi->sbh->b_data;

	lock_buffer(sbi->sbh);
	raw->s_state = cpu_to_le32(state);
	twinfs_csum_set(raw, sizeof(*raw),
			offsetof(struct twinfs_super, s_checksum));
	unlock_buffer(sbi->sbh);
	mark_buffer_dirty(sbi->sbh);
	if (!sync)
		return 0;
	return sync_dirty_buffer(sbi->sbh);
}

static void twinfs_take_string(char **dst, struct fs_parameter *param)
{
	kfree(*dst);
	*dst = param->string;
	param->string = NULL;
}

/* The strings of a copy of the options are its own. */
static int twinfs_opts_dup(struct twinfs_mount_opts *dst,
			   const struct twinfs_mount_opts *src)
{
	*dst = *src;
	dst->nvram = kstrdup(src->nvram, GFP_KERNEL);
	dst->partner = kstrdup(src->partner, GFP_KERNEL);
	dst->cluster_key = kstrdup(src->cluster_key, GFP_KERNEL);
	if ((src->nvram && !dst->nvram) || (src->partner && !dst->partner) ||
	    (src->cluster_key && !dst->cluster_key))
		return -ENOMEM;
	return 0;
}

static void twinfs_opts_free(struct twinfs_mount_opts *o)
{
	kfree(o->nvram);
	kfree(o->partner);
	kfree(o->cluster_key);
}

static void twinfs_put_super(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);

	twinfs_genl_unmounting(sb);
	twinfs_cp_stop(sb);
	twinfs_sysfs_unregister(sb);
	twinfs_fault_exit(sb);
	/* The last point takes what evicting the inodes freed; its trim
	 * reaches the partner too. */
	if (!sb_rdonly(sb) && !twinfs_cp_run(sb))
		twinfs_write_super(sb, TWINFS_STATE_CLEAN, true);
	twinfs_mirror_stop(sb);
	twinfs_cp_destroy(sb);
	twinfs_cm_close(sb);
	twinfs_alloc_destroy(sb);
	brelse(sbi->sbh);
	sb->s_fs_info = NULL;
	twinfs_opts_free(&sbi->opts);
	kfree(sbi);
	twinfs_genl_notify_unmounted(sb);
}

/* sync(2), syncfs(2), umount: a consistency point. */
static int twinfs_sync_fs(struct super_block *sb, int wait)
{
	if (!wait) {
		twinfs_cp_kick(sb);
		return 0;
	}
	return twinfs_cp_run(sb);
}

static int twinfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_super *raw = (struct twinfs_super *)sbi->sbh->b_data;
	u64 meta = (u64)sbi->geo.ag_count * twinfs_ag_meta_blocks(&sbi->geo);

	buf->f_type = TWINFS_MAGIC;
	buf->f_bsize = sb->s_blocksize;
	buf->f_blocks = sbi->geo.blocks - sbi->geo.first_ag_block - meta;
	buf->f_bfree = percpu_counter_sum_positive(&sbi->free_blocks);
	buf->f_bavail = buf->f_bfree;
	buf->f_files = (u64)sbi->geo.ag_count * sbi->geo.inodes_per_ag - 1;
	buf->f_ffree = percpu_counter_sum_positive(&sbi->free_inodes);
	buf->f_namelen = TWINFS_NAME_MAX;
	buf->f_fsid = uuid_to_fsid(raw->s_uuid);
	return 0;
}

static int twinfs_show_options(struct seq_file *seq, struct dentry *root)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(root->d_sb);

	if (sbi->opts.errors == TWINFS_ERRORS_RO)
		seq_puts(seq, ",errors=remount-ro");
	if (sbi->opts.fault_inject)
		seq_puts(seq, ",fault_inject");
	if (sbi->opts.nvram)
		seq_show_option(seq, "nvram", sbi->opts.nvram);
	if (sbi->opts.node)
		seq_printf(seq, ",node=%u", sbi->opts.node);
	if (sbi->opts.cp_interval_ms != TWINFS_CP_INTERVAL_MS)
		seq_printf(seq, ",cp_interval_ms=%u", sbi->opts.cp_interval_ms);
	if (sbi->opts.partner)
		seq_show_option(seq, "partner", sbi->opts.partner);
	if (sbi->opts.cluster_key)
		seq_show_option(seq, "cluster_key", sbi->opts.cluster_key);
	if (sbi->opts.mirror_required)
		seq_puts(seq, ",mirror=required");
	if (sbi->opts.mirror_tcp)
		seq_puts(seq, ",mirror_transport=tcp");
	return 0;
}

static const struct super_operations twinfs_sops = {
	.alloc_inode	= twinfs_alloc_inode,
	.free_inode	= twinfs_free_inode,
	.write_inode	= twinfs_write_inode,
	.evict_inode	= twinfs_evict_inode,
	.put_super	= twinfs_put_super,
	.sync_fs	= twinfs_sync_fs,
	.statfs		= twinfs_statfs,
	.show_options	= twinfs_show_options,
};

enum { Opt_errors, Opt_fault_inject, Opt_nvram, Opt_node, Opt_cp_interval,
       Opt_partner, Opt_cluster_key, Opt_mirror, Opt_mirror_timeout,
       Opt_mirror_transport };

static const struct constant_table twinfs_param_mirror_transport[] = {
	{ "auto",	0 },
	{ "tcp",	1 },
	{}
};

static const struct constant_table twinfs_param_mirror[] = {
	{ "degraded",	0 },
	{ "required",	1 },
	{}
};

static const struct constant_table twinfs_param_errors[] = {
	{ "continue",	TWINFS_ERRORS_CONTINUE },
	{ "remount-ro",	TWINFS_ERRORS_RO },
	{}
};

static const struct fs_parameter_spec twinfs_param_spec[] = {
	fsparam_enum("errors", Opt_errors, twinfs_param_errors),
	fsparam_flag("fault_inject", Opt_fault_inject),
	fsparam_string("nvram", Opt_nvram),
	fsparam_u32("node", Opt_node),
	fsparam_u32("cp_interval_ms", Opt_cp_interval),
	fsparam_string("partner", Opt_partner),
	fsparam_string("cluster_key", Opt_cluster_key),
	fsparam_enum("mirror", Opt_mirror, twinfs_param_mirror),
	fsparam_u32("mirror_timeout_ms", Opt_mirror_timeout),
	fsparam_enum("mirror_transport", Opt_mirror_transport,
		     twinfs_param_mirror_transport),
	{}
};

static int twinfs_parse_param(struct fs_context *fc,
			      struct fs_parameter *param)
{
	struct twinfs_mount_opts *opts = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, twinfs_param_spec, param, &result);
	if (opt < 0)
		return opt;
	switch (opt) {
	case Opt_errors:
		opts->errors = result.uint_32;
		break;
	case Opt_fault_inject:
		opts->fault_inject = true;
		break;
	case Opt_nvram:
		twinfs_take_string(&opts->nvram, param);
		break;
	case Opt_partner:
		twinfs_take_string(&opts->partner, param);
		break;
	case Opt_cluster_key:
		twinfs_take_string(&opts->cluster_key, param);
		break;
	case Opt_mirror:
		opts->mirror_required = result.uint_32;
		break;
	case Opt_mirror_transport:
		opts->mirror_tcp = result.uint_32;
		break;
	case Opt_mirror_timeout:
		if (result.uint_32 < 100 || result.uint_32 > 600000)
			return invalfc(fc, "mirror_timeout_ms=%u: 100 .. 600000",
				       result.uint_32);
		opts->mirror_timeout_ms = result.uint_32;
		break;
	case Opt_node:
		if (result.uint_32 >= TWINFS_MAX_NODES)
			return invalfc(fc, "node=%u: at most %u nodes",
				       result.uint_32, TWINFS_MAX_NODES);
		opts->node = result.uint_32;
		break;
	case Opt_cp_interval:
		if (result.uint_32 < 10 || result.uint_32 > 3600000)
			return invalfc(fc, "cp_interval_ms=%u: 10 .. 3600000",
				       result.uint_32);
		opts->cp_interval_ms = result.uint_32;
		break;
	}
	return 0;
}

/* Reads and validates the superblock; fills sbi->geo. */
static int twinfs_load_super(struct super_block *sb)
{
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	u64 dev_blocks = bdev_nr_bytes(sb->s_bdev) >> TWINFS_BLOCK_SHIFT;
	struct twinfs_super *raw;
	const char *why = NULL;
	int err;

	sbi->sbh = sb_bread(sb, 0);
	if (!sbi->sbh) {
		twinfs_err(sb, "cannot read the superblock");
		return -EIO;
	}
	raw = (struct twinfs_super *)sbi->sbh->b_data;
	err = twinfs_super_check(raw, dev_blocks, &sbi->geo, &why);
	if (err) {
		if (le32_to_cpu(raw->s_magic) == TWINFS_MAGIC &&
		    le32_to_cpu(raw->s_version) != TWINFS_FORMAT_VERSION)
			twinfs_err(sb, "%s %u (this module reads version %u)",
				   why, le32_to_cpu(raw->s_version),
				   TWINFS_FORMAT_VERSION);
		else
			twinfs_err(sb, "%s", why);
		return err;
	}
	sbi->dirhash_seed = le32_to_cpu(raw->s_dirhash_seed);
	return 0;
}

static int twinfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct twinfs_mount_opts *opts = fc->fs_private;
	struct twinfs_cm_found found = {};
	struct twinfs_sb_info *sbi;
	struct twinfs_super *raw;
	struct inode *root;
	ktime_t t0 = ktime_get(), t_scan, t_replay, t_end;
	u64 cp_seq = 0;
	int err;

	sbi = kzalloc(sizeof(*sbi), GFP_KERNEL);
	if (!sbi)
		return -ENOMEM;
	sbi->sb = sb;
	sb->s_fs_info = sbi;
	err = twinfs_opts_dup(&sbi->opts, opts);
	if (err)
		goto out_free;

	if (!sb_set_blocksize(sb, TWINFS_BLOCK_SIZE)) {
		twinfs_err(sb, "device does not support %u-byte blocks",
			   TWINFS_BLOCK_SIZE);
		err = -EINVAL;
		goto out_free;
	}
	/*
	 * The disk is shared: the other node may have written any block
	 * since this node last had it mounted, and the page cache of a
	 * block device that someone else keeps open (twinfsd's disk
	 * heartbeat, udev, blkid) outlives an umount.  Read from the disk.
	 */
	invalidate_bdev(sb->s_bdev);
	err = twinfs_load_super(sb);
	if (err)
		goto out_brelse;
	raw = (struct twinfs_super *)sbi->sbh->b_data;
	if (le32_to_cpu(raw->s_state) != TWINFS_STATE_CLEAN)
		twinfs_info(sb, "was not cleanly unmounted; recovering");
	if (sbi->opts.node >= sbi->geo.max_nodes) {
		twinfs_err(sb, "node=%u, but the file system has areas for %u nodes",
			   sbi->opts.node, sbi->geo.max_nodes);
		err = -EINVAL;
		goto out_brelse;
	}

	sb->s_magic = TWINFS_MAGIC;
	sb->s_op = &twinfs_sops;
	sb->s_maxbytes = (loff_t)U32_MAX << TWINFS_BLOCK_SHIFT;
	sb->s_time_gran = 1;
	sb->s_time_min = S64_MIN;
	sb->s_time_max = S64_MAX;
	memcpy(&sb->s_uuid, raw->s_uuid, sizeof(sb->s_uuid));

	/* Everything that decides whether the mount can go on is read and
	 * checked before anything is written. */
	err = twinfs_cp_init(sb);
	if (err)
		goto out_brelse;
	err = twinfs_cp_load(sb, &cp_seq) ?:
	      twinfs_cm_open(sb, sbi->opts.nvram) ?:
	      twinfs_cm_scan(sb, cp_seq, &found);
	if (err)
		goto out_cm;
	t_scan = ktime_get();
	if (sb_rdonly(sb) && (found.plan.count || cp_seq != twinfs_cp_seq(sb))) {
		twinfs_err(sb, "needs recovery (%u change records); mount it read-write",
			   found.plan.count);
		err = -EROFS;
		goto out_cm;
	}
	if (!sb_rdonly(sb)) {
		err = twinfs_cp_recover(sb);
		if (err)
			goto out_cm;
	}

	err = twinfs_alloc_init(sb);
	if (err)
		goto out_cm;

	root = twinfs_iget(sb, TWINFS_ROOT_INO);
	if (IS_ERR(root)) {
		err = PTR_ERR(root);
		twinfs_err(sb, "cannot read the root directory: %d", err);
		goto out_alloc;
	}
	if (!S_ISDIR(root->i_mode)) {
		iput(root);
		twinfs_err(sb, "root inode is not a directory");
		err = -EUCLEAN;
		goto out_alloc;
	}
	sb->s_root = d_make_root(root);
	if (!sb->s_root) {
		err = -ENOMEM;
		goto out_alloc;
	}

	err = twinfs_sysfs_register(sb);
	if (err)
		goto out_root;
	if (sbi->opts.fault_inject) {
		err = twinfs_fault_init(sb);
		if (err)
			goto out_sysfs;
	}

	t_replay = ktime_get();
	if (!sb_rdonly(sb)) {
		raw->s_mount_count = cpu_to_le64(le64_to_cpu(raw->s_mount_count) + 1);
		err = twinfs_write_super(sb, TWINFS_STATE_MOUNTED, true);
		if (err) {
			twinfs_err(sb, "cannot write the superblock: %d", err);
			goto out_sysfs;
		}
		err = twinfs_replay(sb, &found) ?: twinfs_mirror_start(sb);
		if (err)
			goto out_sysfs;
		twinfs_cp_start(sb);
	}
	kvfree(found.ents);
	/* Where a takeover's time goes: reading and scanning the change
	 * memory, the superblock and the tree, the replay with its point. */
	t_end = ktime_get();
	twinfs_info(sb, "mounted in %lld ms (change memory %lld, tree %lld, replay %lld): %llu blocks, %u groups, format version %u, change memory %s, consistency point %llu",
		    ktime_ms_delta(t_end, t0), ktime_ms_delta(t_scan, t0),
		    ktime_ms_delta(t_replay, t_scan),
		    ktime_ms_delta(t_end, t_replay),
		    sbi->geo.blocks, sbi->geo.ag_count, TWINFS_FORMAT_VERSION,
		    twinfs_cm_device(sb), twinfs_cp_seq(sb));
	twinfs_genl_mounted(sb);
	return 0;

out_sysfs:
	twinfs_fault_exit(sb);
	twinfs_sysfs_unregister(sb);
out_root:
	shrink_dcache_sb(sb);
	dput(sb->s_root);
	sb->s_root = NULL;
out_alloc:
	twinfs_alloc_destroy(sb);
out_cm:
	kvfree(found.ents);
	twinfs_cm_close(sb);
	twinfs_cp_destroy(sb);
out_brelse:
	brelse(sbi->sbh);
out_free:
	sb->s_fs_info = NULL;
	twinfs_opts_free(&sbi->opts);
	kfree(sbi);
	return err;
}

static int twinfs_get_tree(struct fs_context *fc)
{
	return get_tree_bdev(fc, twinfs_fill_super);
}

static bool twinfs_same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int twinfs_reconfigure(struct fs_context *fc)
{
	struct super_block *sb = fc->root->d_sb;
	struct twinfs_mount_opts *opts = fc->fs_private;
	struct twinfs_sb_info *sbi = TWINFS_SB(sb);
	struct twinfs_mount_opts keep;

	sync_filesystem(sb);
	if (opts->fault_inject != sbi->opts.fault_inject) {
		errorf(fc, "twinfs: fault_inject cannot change on remount");
		return -EINVAL;
	}
	if (opts->node != sbi->opts.node ||
	    !twinfs_same_str(opts->nvram, sbi->opts.nvram) ||
	    !twinfs_same_str(opts->partner, sbi->opts.partner) ||
	    !twinfs_same_str(opts->cluster_key, sbi->opts.cluster_key)) {
		errorf(fc, "twinfs: nvram=, node=, partner= and cluster_key= cannot change on remount");
		return -EINVAL;
	}
	/* fc frees its own copies of the strings */
	keep = sbi->opts;
	sbi->opts = *opts;
	sbi->opts.nvram = keep.nvram;
	sbi->opts.partner = keep.partner;
	sbi->opts.cluster_key = keep.cluster_key;
	if ((fc->sb_flags ^ sb->s_flags) & SB_RDONLY)
		twinfs_write_super(sb, (fc->sb_flags & SB_RDONLY) ?
				   TWINFS_STATE_CLEAN : TWINFS_STATE_MOUNTED,
				   true);
	if (!(fc->sb_flags & SB_RDONLY))
		twinfs_cp_start(sb);
	return 0;
}

static void twinfs_free_fc(struct fs_context *fc)
{
	struct twinfs_mount_opts *opts = fc->fs_private;

	if (opts)
		twinfs_opts_free(opts);
	kfree(opts);
}

static const struct fs_context_operations twinfs_context_ops = {
	.parse_param	= twinfs_parse_param,
	.get_tree	= twinfs_get_tree,
	.reconfigure	= twinfs_reconfigure,
	.free		= twinfs_free_fc,
};

static int twinfs_init_fs_context(struct fs_context *fc)
{
	struct twinfs_mount_opts *opts;

	opts = kzalloc(sizeof(*opts), GFP_KERNEL);
	if (!opts)
		return -ENOMEM;
	opts->cp_interval_ms = TWINFS_CP_INTERVAL_MS;
	opts->mirror_timeout_ms = TWINFS_MIRROR_TIMEOUT_MS;
	if (fc->purpose == FS_CONTEXT_FOR_RECONFIGURE &&
	    twinfs_opts_dup(opts, &TWINFS_SB(fc->root->d_sb)->opts)) {
		twinfs_opts_free(opts);
		kfree(opts);
		return -ENOMEM;
	}
	fc->fs_private = opts;
	fc->ops = &twinfs_context_ops;
	return 0;
}

struct file_system_type twinfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "twinfs",
	.init_fs_context	= twinfs_init_fs_context,
	.parameters		= twinfs_param_spec,
	.kill_sb		= kill_block_super,
	.fs_flags		= FS_REQUIRES_DEV,
};
MODULE_ALIAS_FS("twinfs");

static int __init twinfs_init(void)
{
	int err;

	err = twinfs_inode_cache_init();
	if (err)
		return err;
	err = twinfs_rdma_init();
	if (err)
		goto out_cache;
	err = twinfs_sysfs_init();
	if (err)
		goto out_rdma;
	twinfs_fault_module_init();
	err = twinfs_genl_init();
	if (err)
		goto out_fault;
	err = register_filesystem(&twinfs_fs_type);
	if (err)
		goto out_genl;
	pr_info("twinfs: format version %u loaded\n", TWINFS_FORMAT_VERSION);
	return 0;

out_genl:
	twinfs_genl_exit();
out_fault:
	twinfs_fault_module_exit();
	twinfs_sysfs_exit();
out_rdma:
	twinfs_rdma_exit();
out_cache:
	twinfs_inode_cache_destroy();
	return err;
}

static void __exit twinfs_exit(void)
{
	unregister_filesystem(&twinfs_fs_type);
	twinfs_genl_exit();
	twinfs_fault_module_exit();
	twinfs_sysfs_exit();
	twinfs_rdma_exit();
	twinfs_inode_cache_destroy();
}

module_init(twinfs_init);
module_exit(twinfs_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("twinfs cluster file system");
MODULE_AUTHOR("The twinfs developers");
MODULE_SOFTDEP("pre: crc32c");
